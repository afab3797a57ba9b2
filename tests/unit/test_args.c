/*
 * Argument and name checks of every public handle, with no server: each is refused with
 * COORD_EINVAL before any traffic (a client of the fake backend counts the calls), and a client
 * of a real backend with nothing listening fails in bounded time.
 */
#include "testing.h"
#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Slot calls of `c` so far, every slot but session. */
static uint64_t traffic(coord_client *c) {
    uint64_t n = 0;
    for (int s = SLOT_GET; s < SLOT_COUNT; s++)
        n += fake_calls(c, (coord_slot)s);
    return n;
}

static void client_args(void **state) {
    coord_client *c = (coord_client *)1;
    assert_int_equal(coord_client_open(NULL, "fakezk://x/a", NULL), COORD_EINVAL);
    assert_int_equal(coord_client_open(&c, NULL, NULL), COORD_EINVAL);
    assert_null(c);
    assert_int_equal(coord_client_open(&c, "nope://x/a", NULL), COORD_EINVAL);
    assert_int_equal(coord_client_open(&c, "fakezk://x/a?bogus=1", NULL), COORD_EINVAL);
    coord_options o = COORD_OPTIONS_INIT;
    o.version = 99;
    assert_int_equal(coord_client_open(&c, "fakezk://x/a", &o), COORD_EINVAL);
    o = (coord_options)COORD_OPTIONS_INIT;
    o.timeout_ms = -1;
    assert_int_equal(coord_client_open(&c, "fakezk://x/a", &o), COORD_EINVAL);
    assert_int_equal(coord_options_init(NULL, COORD_OPTIONS_VERSION), COORD_EINVAL);
    assert_int_equal(coord_options_init(&o, 0), COORD_EINVAL);
    assert_int_equal(coord_options_init(&o, COORD_OPTIONS_VERSION), 0);
    /* a good one: the options win over the URI */
    o.timeout_ms = 1234;
    assert_int_equal(coord_client_open(&c, "fakezk://x/app?timeout_ms=99", &o), 0);
    assert_int_equal(coord__client_timeout(c), 1234);
    assert_string_equal(coord_client_prefix(c), "/app");
    assert_string_equal(coord_client_backend(c), "fake-zookeeper");
    assert_int_equal(coord_client_state(c), COORD_SESSION_CONNECTED);
    assert_true(coord_client_session(c) != 0);
    coord_client_close(c);
    assert_null(coord_client_backend(NULL));
    coord_client_close(NULL);
    (void)state;
}

/* Closing from a callback is refused (it would wait for its own thread). */
static coord_client *closing;
static int close_refused;
static void close_in_cb(coord_client *c, coord_session_state st, void *payload) {
    (void)payload;
    if (st != COORD_SESSION_SUSPENDED) return;
    coord_client_close(c);
    close_refused = strstr(coord_last_error(), "callback") != NULL;
    closing = c;
}

static void close_in_callback(void **state) {
    (void)state;
    coord_options o = COORD_OPTIONS_INIT;
    o.on_session = close_in_cb;
    coord_client *c = NULL;
    assert_int_equal(coord_client_open(&c, "fakezk://x/cb", &o), 0);
    fake_suspend(c);
    assert_int_equal(fake_sync(c, 2000), 0);
    assert_ptr_equal(closing, c);
    assert_true(close_refused);
    fake_resume(c);
    coord_client_close(c);
}

static void lock_args(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    uint64_t t0 = traffic(c);
    const char *const *bad = coord_test_bad_names;
    for (size_t i = 0; bad[i]; i++) {
        coord_lock *l = (coord_lock *)1;
        assert_int_equal(coord_lock_new(&l, c, bad[i]), COORD_EINVAL);
        assert_null(l);
    }
    coord_lock *l;
    assert_int_equal(coord_lock_new(&l, c, NULL), COORD_EINVAL);
    assert_int_equal(coord_lock_new(&l, NULL, "x"), COORD_EINVAL);
    assert_int_equal(coord_lock_new(NULL, c, "x"), COORD_EINVAL);
    assert_int_equal(coord_lock_acquire(NULL, 0), COORD_EINVAL);
    assert_int_equal(coord_lock_release(NULL), COORD_EINVAL);
    assert_int_equal(coord_lock_token(NULL, &(uint64_t){0}), COORD_EINVAL);
    assert_false(coord_lock_held(NULL));
    coord_lock_cancel(NULL);
    coord_lock_free(NULL);
    assert_int_equal(traffic(c), t0);
    coord_client_close(c);
}

static void counter_args(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    uint64_t t0 = traffic(c);
    coord_counter *k = (coord_counter *)1;
    const char *const *bad = coord_test_bad_names;
    for (size_t i = 0; bad[i]; i++) {
        assert_int_equal(coord_counter_new(&k, c, bad[i], NULL), COORD_EINVAL);
        assert_null(k);
    }
    assert_int_equal(coord_counter_new(&k, NULL, "x", NULL), COORD_EINVAL);
    assert_int_equal(coord_counter_new(NULL, c, "x", NULL), COORD_EINVAL);
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    o.format = 42;
    assert_int_equal(coord_counter_new(&k, c, "x", &o), COORD_EINVAL);
    o.format = 0;
    o.version = 7;
    assert_int_equal(coord_counter_new(&k, c, "x", &o), COORD_EINVAL);
    assert_int_equal(coord_counter_options_init(NULL, COORD_COUNTER_OPTIONS_VERSION), COORD_EINVAL);
    assert_int_equal(coord_counter_options_init(&o, 0), COORD_EINVAL);
    assert_int_equal(coord_counter_options_init(&o, COORD_COUNTER_OPTIONS_VERSION), 0);
    assert_int_equal(o.shards, 1);
    assert_int_equal(coord_counter_get(NULL, NULL), COORD_EINVAL);
    assert_int_equal(coord_counter_add(NULL, 1, NULL), COORD_EINVAL);
    assert_int_equal(coord_counter_cas(NULL, 1, 2), COORD_EINVAL);
    assert_int_equal(coord_counter_set(NULL, 1), COORD_EINVAL);
    assert_int_equal(coord_counter_new(&k, c, "x", NULL), 0);
    assert_int_equal(coord_counter_get(k, NULL), COORD_EINVAL);
    coord_counter_free(k);
    coord_counter_free(NULL);
    assert_int_equal(traffic(c), t0);
    coord_client_close(c);
}

static void ring_args(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    uint64_t t0 = traffic(c);
    coord_ring *r = (coord_ring *)1;
    const char *const *bad = coord_test_bad_names;
    for (size_t i = 0; bad[i]; i++) {
        assert_int_equal(coord_ring_new(&r, c, bad[i], NULL), COORD_EINVAL);
        assert_null(r);
    }
    assert_int_equal(coord_ring_new(&r, NULL, "g", NULL), COORD_EINVAL);
    assert_int_equal(coord_ring_new(NULL, c, "g", NULL), COORD_EINVAL);
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    o.placement = 99;
    assert_int_equal(coord_ring_new(&r, c, "g", &o), COORD_EINVAL);
    o = (coord_ring_options)COORD_RING_OPTIONS_INIT;
    o.version = 0;
    assert_int_equal(coord_ring_new(&r, c, "g", &o), COORD_EINVAL);
    assert_int_equal(traffic(c), t0); /* no traffic so far */
    assert_int_equal(coord_ring_new(&r, c, "g", NULL), 0);
    t0 = traffic(c);
    for (size_t i = 0; bad[i]; i++)
        assert_int_equal(coord_ring_join(r, bad[i], NULL, 0, 1), COORD_EINVAL);
    assert_int_equal(coord_ring_join(r, NULL, NULL, 0, 1), COORD_EINVAL);
    assert_int_equal(coord_ring_join(r, "m", NULL, 3, 1), COORD_EINVAL);
    assert_int_equal(coord_ring_join(r, "m", NULL, 0, COORD_RING_MAX_WEIGHT + 1), COORD_EINVAL);
    assert_int_equal(coord_ring_join(NULL, "m", NULL, 0, 1), COORD_EINVAL);
    assert_int_equal(coord_ring_leave(NULL), COORD_EINVAL);
    assert_int_equal(coord_ring_leave(r), COORD_EINVAL); /* not joined */
    char out[8];
    char *ids[2];
    size_t n = 9;
    char **all;
    assert_int_equal(coord_ring_lookup(NULL, "k", 1, out, sizeof out), COORD_EINVAL);
    assert_int_equal(coord_ring_lookup(r, NULL, 1, out, sizeof out), COORD_EINVAL);
    assert_int_equal(coord_ring_lookup(r, "k", 1, NULL, 0), COORD_EINVAL);
    assert_int_equal(coord_ring_lookup_n(r, "k", 1, 2, ids, NULL), COORD_EINVAL);
    assert_int_equal(coord_ring_lookup_n(r, "k", 1, 2, NULL, &n), COORD_EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(coord_ring_lookup_n(r, "k", 1, 2, ids, &n), COORD_ENOTFOUND);
    assert_int_equal(coord_ring_members(NULL, &all, &n), COORD_EINVAL);
    assert_int_equal(coord_ring_members(r, NULL, &n), COORD_EINVAL);
    assert_int_equal(coord_ring_members(r, &all, NULL), COORD_EINVAL);
    assert_int_equal(coord_ring_members(r, &all, &n), 0);
    assert_int_equal(n, 0);
    coord_ring_strings_free(all, n);
    assert_int_equal(coord_ring_epoch(NULL), 0);
    assert_int_equal(traffic(c), t0);
    coord_ring_free(r);
    coord_ring_free(NULL);
    coord_client_close(c);
}

/* Nothing listens on port 1: a real backend fails to connect within its connect timeout. */
static void unreachable(void **state) {
    (void)state;
    const char *schemes[] = {
#ifdef COORD_WITH_ZOOKEEPER
        "zk",
#endif
#ifdef COORD_WITH_ETCD
        "etcd",
#endif
        NULL};
    for (size_t i = 0; schemes[i]; i++) {
        char uri[256];
        snprintf(uri, sizeof uri, "%s://127.0.0.1:1/x?connect_timeout_ms=1000", schemes[i]);
        coord_client *c = (coord_client *)1;
        int64_t t0 = coord__now_ms();
        int rc = coord_client_open(&c, uri, NULL);
        int64_t took = coord__now_ms() - t0;
        assert_true(rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT);
        assert_null(c);
        assert_true(strlen(coord_last_error()) > 0);
        assert_true(took < 1000 + 1500);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(client_args, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(close_in_callback, fake_setup, fake_teardown),
        FAKE_BOTH(lock_args),
        FAKE_BOTH(counter_args),
        FAKE_BOTH(ring_args),
        cmocka_unit_test(unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
