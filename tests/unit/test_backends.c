/*
 * Backend registry: a scheme whose backend is built in is served by it; one whose backend was
 * left out of the build fails with COORD_ENOTSUP naming that backend, and one no backend serves
 * with COORD_EINVAL naming the scheme, before any traffic. coord_backend_register checks a table
 * before it serves anything, and a registered table serves its schemes: default port, own
 * parameters, check_uri and a global_init run once.
 */
#include "testing.h"
#include "stub_backend.h"

#include <string.h>

/* Open `uri`: with `err` 0 the backend is built in, else the open fails with `err` and a detail
 * naming `what`. */
static void check(const char *uri, int err, const char *what) {
    coord_client *c = NULL;
    coord_options o = COORD_OPTIONS_INIT;
    o.connect_timeout_ms = 300;
    int rc = coord_client_open(&c, uri, &o);
    assert_null(c);
    if (!err) {
        /* Nothing listens on port 1: the backend tried and failed to connect. */
        assert_true(rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT);
    } else {
        assert_int_equal(rc, err);
        if (!strstr(coord_last_error(), what))
            fail_msg("detail \"%s\" lacks \"%s\"", coord_last_error(), what);
    }
}

static void registry(void **state) {
    (void)state;
#ifdef COORD_WITH_ZOOKEEPER
    int zk = 0;
#else
    int zk = COORD_ENOTSUP;
#endif
#ifdef COORD_WITH_ETCD
    int etcd = 0;
#else
    int etcd = COORD_ENOTSUP;
#endif
    check("zk://127.0.0.1:1/x", zk, "the zookeeper backend (scheme zk://)");
    check("etcd://127.0.0.1:1/x", etcd, "the etcd backend (scheme etcd://)");
    check("etcds://127.0.0.1:1/x", etcd, "the etcd backend (scheme etcds://)");
    check("nosuch://127.0.0.1:1/x", COORD_EINVAL, "unknown URI scheme \"nosuch\"");
    check("no_such://127.0.0.1:1/x", COORD_EINVAL, "unknown URI scheme: ");
}

/* ---------- a stub table ---------- */

static int opens, inits, init_rc;
static const coord_uri *seen_uri;

static int stub_open(coord_conn **out, const coord_config *cfg) {
    (void)out;
    opens++;
    seen_uri = cfg->uri;
    /* Checked here, while the URI is alive. */
    assert_int_equal(cfg->uri->hosts[0].port, 4242);
    assert_string_equal(coord_uri_param(cfg->uri, "color"), "blue");
    assert_null(coord_uri_param(cfg->uri, "shape"));
    return coord_seterr(COORD_EUNAVAILABLE, "stub: no server");
}
static int stub_check_uri(const coord_uri *u) {
    if (coord_uri_param(u, "shape") && strcmp(coord_uri_param(u, "shape"), "round") != 0)
        return coord_seterr(COORD_EINVAL, "stub: shape must be round");
    return 0;
}
static int stub_global_init(void) {
    inits++;
    return init_rc ? coord_seterr(init_rc, "stub: global init failed") : 0;
}

static const char *const stub_schemes[] = {"stub", "stub+s", NULL};
static const char *const stub_params[] = {"color", "shape", NULL};

static const coord_backend stub = {
    .version = COORD_BACKEND_VERSION,
    .name = "stub",
    .schemes = stub_schemes,
    .default_port = 4242,
    .params = stub_params,
    .check_uri = stub_check_uri,
    .global_init = stub_global_init,
    .open = stub_open,
    COORD_STUB_SLOTS,
};

/* Register `be` and expect COORD_EINVAL with `needle` in the detail. */
static void refused(const coord_backend *be, const char *needle) {
    coord_seterr(0, "%s", "");
    assert_int_equal(coord_backend_register(be), COORD_EINVAL);
    if (!strstr(coord_last_error(), needle))
        fail_msg("detail \"%s\" lacks \"%s\"", coord_last_error(), needle);
}

static void register_checks(void **state) {
    (void)state;
    refused(NULL, "NULL");
    coord_backend b = stub;
    b.version = COORD_BACKEND_VERSION - 1;
    refused(&b, "version");
    b = stub;
    b.name = NULL;
    refused(&b, "no name");
    b = stub;
    b.lock_predecessor = NULL;
    refused(&b, "lock_predecessor");
    b = stub;
    b.open = NULL;
    refused(&b, "open");
    b = stub;
    b.schemes = NULL;
    refused(&b, "no URI scheme");
    static const char *const none[] = {NULL};
    b.schemes = none;
    refused(&b, "no URI scheme");
    static const char *const upper[] = {"Stub", NULL};
    b.schemes = upper;
    refused(&b, "lower-case");
    static const char *const twice[] = {"dup", "dup", NULL};
    b.schemes = twice;
    refused(&b, "twice");
    b = stub;
    b.default_port = 0;
    refused(&b, "default_port");
    b.default_port = 65536;
    refused(&b, "default_port");
#ifdef COORD_WITH_ZOOKEEPER
    static const char *const zk[] = {"other", "zk", NULL};
    b = stub;
    b.schemes = zk;
    refused(&b, "already served by zookeeper");
#endif
    /* Nothing refused was registered. */
    check("dup://127.0.0.1:1/x", COORD_EINVAL, "dup://");
}

static void registered_table(void **state) {
    (void)state;
    assert_int_equal(coord_backend_register(&stub), 0);
    refused(&stub, "already served by stub");

    coord_uri *u = NULL;
    assert_int_equal(coord_uri_parse(&u, "STUB://h1,h2:7/app?color=red&color=blue&timeout_ms=9"),
                     0);
    assert_string_equal(u->scheme, "stub");
    assert_int_equal(u->hosts[0].port, 4242);
    assert_int_equal(u->hosts[1].port, 7);
    assert_int_equal(u->timeout_ms, 9);
    assert_string_equal(coord_uri_param(u, "color"), "blue"); /* the last one counts */
    assert_null(coord_uri_param(u, "shape"));
    assert_null(coord_uri_param(u, "timeout_ms")); /* common parameters are fields */
    assert_null(coord_uri_param(NULL, "color"));
    assert_null(coord_uri_param(u, NULL));
    coord_uri_free(u);
    /* Parameters of no table, empty values and check_uri's rule are refused. */
    u = (coord_uri *)(uintptr_t)1;
    assert_int_equal(coord_uri_parse(&u, "stub://h/app?ca=/x"), COORD_EINVAL);
    assert_null(u);
    assert_non_null(strstr(coord_last_error(), "color, shape"));
    assert_int_equal(coord_uri_parse(&u, "stub://h/app?color="), COORD_EINVAL);
    assert_int_equal(coord_uri_parse(&u, "stub+s://h/app?shape=square"), COORD_EINVAL);
    assert_string_equal(coord_last_error(), "stub: shape must be round");
    assert_int_equal(coord_uri_parse(&u, "stub+s://h/app?shape=round"), 0);
    coord_uri_free(u);

    /* global_init runs before the first open, again after a failure, then never again. */
    coord_client *c = NULL;
    init_rc = COORD_EBACKEND;
    assert_int_equal(coord_client_open(&c, "stub://h/app?color=blue", NULL), COORD_EBACKEND);
    assert_int_equal(inits, 1);
    assert_int_equal(opens, 0);
    init_rc = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(coord_client_open(&c, "stub+s://h/app?color=blue", NULL),
                         COORD_EUNAVAILABLE);
    assert_null(c);
    assert_int_equal(inits, 2);
    assert_int_equal(opens, 3);
    assert_non_null(seen_uri);
}

static void strerror_table(void **state) {
    (void)state;
    assert_string_equal(coord_strerror(0), "success");
    assert_string_equal(coord_err_name(COORD_ETIMEDOUT), "COORD_ETIMEDOUT");
    assert_string_equal(coord_strerror(12345), "unknown error");
    for (int e = COORD_ECANCELED; e <= 0; e++) {
        assert_true(strlen(coord_strerror(e)) > 0);
        assert_true(strncmp(coord_err_name(e), "COORD_", 6) == 0);
    }
    assert_non_null(coord_last_error());
    assert_string_equal(coord_version(), COORD_VERSION_STRING);
    assert_string_equal(coord_session_state_name(COORD_SESSION_LOST), "LOST");
    coord_client_close(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry), cmocka_unit_test(register_checks),
        cmocka_unit_test(registered_table), cmocka_unit_test(strerror_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
