/*
 * Nothing stranded (both backends, single server): a lock release or a ring leave cut off by a
 * dead server returns 0 and hands its delete to the client, which completes it once the server is
 * back, while the application idles with its handle. Without that, the lock stays held (and the
 * member listed) for as long as the process lives.
 */
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A's operations give up after 1 s, so each cut-off call returns quickly. */
#define PARAMS "session_ttl_ms=20000&timeout_ms=1000"

/* Wait until a read through `c` succeeds: its connection is back. */
static void reachable(coord_client *c) {
    coord_conn *k = coord__client_conn(c);
    char path[512];
    snprintf(path, sizeof path, "%s/probe", coord_client_prefix(c));
    int64_t end = coord__now_ms() + 20000;
    int rc;
    do {
        coord_kv kv = {0};
        rc = k->backend->get(k, path, &kv, 1000);
        coord_kv_clear(&kv);
    } while (rc != 0 && rc != COORD_ENOTFOUND && coord__now_ms() < end);
    if (rc != 0 && rc != COORD_ENOTFOUND)
        fail_msg("client did not reconnect: %s", coord_last_error());
}

static void server_down(const coord_test_backend *b) {
    coord_test_servers("kill", b->servers_name, "1 single");
}

static void server_up(const coord_test_backend *b) {
    coord_test_servers("restart", b->servers_name, "1 single");
}

static void lock_release_cut_off(void **state) {
    const coord_test_backend *b = *state;
    char *uri;
    coord_client *a = coord_test_open(state, PARAMS, NULL, &uri);
    coord_client *bc = NULL;
    assert_int_equal(coord_client_open(&bc, uri, NULL), 0);
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "relcut"), 0);
    assert_int_equal(coord_lock_new(&lb, bc, "relcut"), 0);
    assert_int_equal(coord_lock_acquire(la, 5000), 0);

    server_down(b);
    assert_int_equal(coord_lock_release(la), 0); /* handed to the client */
    assert_false(coord_lock_held(la));
    assert_true(coord__orphan_count(a) >= 1);
    server_up(b);
    reachable(a);
    reachable(bc);

    /* A idles, holding its handle; B gets the lock within 1 s. */
    int64_t t0 = coord__now_ms();
    int rc = coord_lock_acquire(lb, 1000);
    if (rc) fail_msg("B did not acquire within 1 s of the server's return: %s", coord_last_error());
    printf("# B acquired %lld ms after both clients reached the server\n",
           (long long)(coord__now_ms() - t0));
    /* B may see the delete before A has its answer */
    assert_int_equal(coord__orphan_count_within(a, 2000), 0);
    assert_int_equal(coord_lock_release(lb), 0);

    /* The handle holds nothing and may acquire again at once. */
    assert_int_equal(coord_lock_acquire(la, 2000), 0);
    assert_int_equal(coord_lock_acquire(lb, 0), COORD_ELOCKED);
    assert_int_equal(coord_lock_release(la), 0);
    coord_lock_free(la);
    coord_lock_free(lb);
    coord_client_close(a);
    coord_client_close(bc);
    free(uri);
}

static void ring_leave_cut_off(void **state) {
    const coord_test_backend *b = *state;
    char *uri;
    coord_client *a = coord_test_open(state, PARAMS, NULL, &uri);
    coord_client *bc = NULL;
    assert_int_equal(coord_client_open(&bc, uri, NULL), 0);
    coord_ring *r;
    assert_int_equal(coord_ring_new(&r, a, "leavecut", NULL), 0);
    assert_int_equal(coord_ring_join(r, "m1", "d", 1, 1), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/group/leavecut/m1", coord_client_prefix(a));

    server_down(b);
    assert_int_equal(coord_ring_leave(r), 0); /* handed to the client */
    server_up(b);
    reachable(a);
    reachable(bc);

    /* The member is gone from the server within 1 s, while A idles with its ring. */
    coord_conn *k = coord__client_conn(bc);
    int64_t t0 = coord__now_ms(), end = t0 + 1000;
    int rc;
    do {
        coord_kv kv = {0};
        rc = k->backend->get(k, path, &kv, 1000);
        coord_kv_clear(&kv);
        if (rc == 0) {
            struct timespec ts = {0, 10 * 1000000L}; /* polling the server: no event to await */
            nanosleep(&ts, NULL);
        }
    } while (rc == 0 && coord__now_ms() < end);
    if (rc != COORD_ENOTFOUND)
        fail_msg("member still on the server 1 s after its return (%d: %s)", rc,
                 coord_last_error());
    printf("# member gone %lld ms after both clients reached the server\n",
           (long long)(coord__now_ms() - t0));

    /* The handle may join again at once. */
    assert_int_equal(coord_ring_join(r, "m1", "d", 1, 1), 0);
    coord_ring_free(r);
    coord_client_close(a);
    coord_client_close(bc);
    free(uri);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COORD_CONFORMANCE(lock_release_cut_off),
        COORD_CONFORMANCE(ring_leave_cut_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
