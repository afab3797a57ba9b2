/*
 * Backend registry: a scheme whose backend is built in is served by it; one whose backend was
 * left out of the build fails with COORD_ENOTSUP naming that backend, before any traffic.
 */
#include "testing.h"

#include <string.h>

static void check(const char *uri, const char *backend, bool built) {
    coord_client *c = NULL;
    coord_options o = COORD_OPTIONS_INIT;
    o.connect_timeout_ms = 300;
    int rc = coord_client_open(&c, uri, &o);
    assert_null(c);
    if (built) {
        /* Nothing listens on port 1: the backend tried and failed to connect. */
        assert_true(rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT);
    } else {
        assert_int_equal(rc, COORD_ENOTSUP);
        assert_non_null(strstr(coord_last_error(), backend));
    }
}

static void registry(void **state) {
    (void)state;
#ifdef COORD_WITH_ZOOKEEPER
    bool zk = true;
#else
    bool zk = false;
#endif
#ifdef COORD_WITH_ETCD
    bool etcd = true;
#else
    bool etcd = false;
#endif
    check("zk://127.0.0.1:1/x", "zookeeper", zk);
    check("etcd://127.0.0.1:1/x", "etcd", etcd);
    check("etcds://127.0.0.1:1/x", "etcd", etcd);
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
    const struct CMUnitTest tests[] = {cmocka_unit_test(registry),
                                       cmocka_unit_test(strerror_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
