/* Unit tests for the small contracts every part shares: the three *_options_init behave alike,
 * coord_strings_free frees what the library returns, and the error helpers of lib/error.c. */
#include "testing.h"

#include <stdlib.h>
#include <string.h>

/* An options_init refuses NULL and unknown versions with a detail, and sets the defaults and
 * the version it was given. */
static void test_options_init_alike(void **state) {
    (void)state;
    coord_options o;
    coord_counter_options k;
    coord_ring_options r;
    const coord_options od = COORD_OPTIONS_INIT;
    const coord_counter_options kd = COORD_COUNTER_OPTIONS_INIT;
    const coord_ring_options rd = COORD_RING_OPTIONS_INIT;

    assert_int_equal(coord_options_init(NULL, COORD_OPTIONS_VERSION), COORD_EINVAL);
    assert_string_equal(coord_last_error(), "options is NULL");
    assert_int_equal(coord_counter_options_init(NULL, COORD_COUNTER_OPTIONS_VERSION), COORD_EINVAL);
    assert_string_equal(coord_last_error(), "options is NULL");
    assert_int_equal(coord_ring_options_init(NULL, COORD_RING_OPTIONS_VERSION), COORD_EINVAL);
    assert_string_equal(coord_last_error(), "options is NULL");

    assert_int_equal(coord_options_init(&o, 0), COORD_EINVAL);
    assert_non_null(strstr(coord_last_error(), "version 0"));
    assert_int_equal(coord_counter_options_init(&k, COORD_COUNTER_OPTIONS_VERSION + 1),
                     COORD_EINVAL);
    assert_non_null(strstr(coord_last_error(), "coord_counter_options version"));
    assert_int_equal(coord_ring_options_init(&r, 0), COORD_EINVAL);
    assert_non_null(strstr(coord_last_error(), "coord_ring_options version 0"));

    memset(&o, 0x5a, sizeof o);
    memset(&k, 0x5a, sizeof k);
    memset(&r, 0x5a, sizeof r);
    assert_int_equal(coord_options_init(&o, COORD_OPTIONS_VERSION), 0);
    assert_int_equal(coord_counter_options_init(&k, COORD_COUNTER_OPTIONS_VERSION), 0);
    assert_int_equal(coord_ring_options_init(&r, COORD_RING_OPTIONS_VERSION), 0);
    assert_int_equal(o.version, COORD_OPTIONS_VERSION);
    assert_int_equal(k.version, COORD_COUNTER_OPTIONS_VERSION);
    assert_int_equal(r.version, COORD_RING_OPTIONS_VERSION);
    assert_int_equal(o.session_ttl_ms, od.session_ttl_ms);
    assert_null(o.on_session);
    assert_int_equal(k.shards, kd.shards);
    assert_int_equal(k.format, kd.format);
    assert_int_equal(r.placement, rd.placement);
    assert_int_equal(r.vnodes, rd.vnodes);
    assert_null(r.on_change);
}

static char **strings(size_t n) {
    char **v = calloc(n + 1, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup("member");
        assert_non_null(v[i]);
    }
    return v;
}

/* Under valgrind or ASan a leak or a wrong free here fails the run. */
static void test_strings_free(void **state) {
    (void)state;
    coord_strings_free(NULL, 0);
    coord_strings_free(NULL, 3);
    coord_strings_free(strings(0), 0);
    coord_strings_free(strings(4), 4);
    char **v = strings(3);
    free(v[1]); /* a string freed on its own, as programs may */
    v[1] = NULL;
    coord_strings_free(v, 3);
    coord_ring_strings_free(strings(2), 2); /* the alias */
}

static void test_oom(void **state) {
    (void)state;
    coord_seterr(0, "%s", "");
    assert_int_equal(coord__oom(), COORD_ENOMEM);
    assert_string_equal(coord_last_error(), "out of memory");
}

/* save/restore keep a detail across clean-up that records its own. */
static void test_error_save_restore(void **state) {
    (void)state;
    coord__error_buf saved;
    coord_seterr(COORD_ETIMEDOUT, "waited %d ms for %s", 250, "/coord/lock/x");
    coord__error_save(&saved);
    coord_seterr(COORD_ENOTFOUND, "clean-up: not found");
    assert_string_equal(coord_last_error(), "clean-up: not found");
    coord__error_restore(&saved);
    assert_string_equal(coord_last_error(), "waited 250 ms for /coord/lock/x");

    /* A detail as long as the buffer survives whole (cut to its size by coord_seterr). */
    char longer[COORD__ERROR_MAX + 100];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    coord_seterr(COORD_EPROTO, "%s", longer);
    coord__error_save(&saved);
    coord__oom();
    coord__error_restore(&saved);
    assert_int_equal(strlen(coord_last_error()), COORD__ERROR_MAX - 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init_alike),
        cmocka_unit_test(test_strings_free),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_error_save_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
