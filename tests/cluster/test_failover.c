/*
 * Cluster faults on 3-member clusters (both backends, one body): each member in turn is killed
 * while a client works; operations go on through the other members, the session survives, and
 * a watch armed before the fault still reports after it.
 */
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct flag {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int deleted;
} flag;

static void on_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)rev;
    flag *f = payload;
    pthread_mutex_lock(&f->mu);
    if (ev == COORD_EV_DELETED) f->deleted++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Retry an unconditional write until it succeeds or `ms` pass; returns the last code. */
static int put_until(const coord_backend *be, coord_conn *k, const char *path, int ms) {
    int64_t end = coord__now_ms() + ms;
    int rc;
    do {
        rc = be->put(k, path, "v", 1, COORD_VERSION_ANY, 0, NULL, 2000);
    } while (rc != 0 && coord__now_ms() < end);
    return rc;
}

static void member_kill(void **state) {
    const coord_test_backend *b = *state;
    coord_test_states rec;
    coord_client *c =
        coord_test_open_on(state, 1, "session_ttl_ms=8000&timeout_ms=3000", &rec, NULL);
    coord_conn *k = coord__client_conn(c);
    const coord_backend *be = k->backend;
    int rc;
    char key[512], watched[512];
    snprintf(key, sizeof key, "%s/k", coord_client_prefix(c));
    for (int m = 1; m <= 3; m++) {
        char num[4];
        snprintf(num, sizeof num, "%d", m);
        snprintf(watched, sizeof watched, "%s/w%d", coord_client_prefix(c), m);
        assert_int_equal(be->put(k, watched, "x", 1, COORD_VERSION_ANY, 0, NULL, 3000), 0);
        flag f = {.deleted = 0};
        pthread_mutex_init(&f.mu, NULL);
        coord__cond_init(&f.cv);
        coord_watch *w;
        assert_int_equal(be->watch(k, watched, COORD_WATCH_KEY, 0, on_event, &f, &w), 0);

        coord_test_servers("kill", b->servers_name, num);
        rc = put_until(be, k, key, 15000);
        if (rc) fail_msg("member %d killed: writes did not resume: %s", m, coord_last_error());
        coord_kv kv;
        assert_int_equal(be->get(k, key, &kv, 3000), 0);
        coord_kv_clear(&kv);
        /* The watch armed before the fault still reports. */
        assert_int_equal(be->del(k, watched, COORD_VERSION_ANY, 3000), 0);
        struct timespec dl = coord__deadline(15000);
        pthread_mutex_lock(&f.mu);
        while (!f.deleted)
            if (pthread_cond_timedwait(&f.cv, &f.mu, &dl)) break;
        int got = f.deleted;
        pthread_mutex_unlock(&f.mu);
        assert_int_equal(got, 1);
        be->unwatch(k, w);
        pthread_mutex_destroy(&f.mu);
        pthread_cond_destroy(&f.cv);
        coord_test_servers("restart", b->servers_name, num);
    }
    /* One member down at a time never costs the session. */
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_LOST, 0, 0), -1);
    assert_int_equal(coord_client_session(c), 1);
    coord_client_close(c);
}

/* A member that stops answering (SIGSTOP: as a stalled VM or a partition would) for longer than
 * the session TTL, while the client talks to it: the client moves to another member, so
 * operations go on and the session survives. etcd starts at the first member. A ZooKeeper client
 * picks a member at random, and a stopped ZooKeeper leader stalls every write until its
 * followers give it up (syncLimit, 5 s here), which is another scenario (the fault workloads'
 * leader kill): so the ZooKeeper client is reopened until it talks to a follower, and that
 * follower is stopped. */
static void member_pause(void **state) {
    const coord_test_backend *b = *state;
    coord_test_states rec;
    const char *params = "session_ttl_ms=3000&timeout_ms=2000";
    coord_client *c = coord_test_open_on(state, 1, params, &rec, NULL);
    int victim = 1;
    if (strcmp(b->scheme, "zk") == 0) {
        int leader = coord_test_leader(b);
        for (int tries = 0; (victim = coord_test_peer_member(b)) == leader || !victim; tries++) {
            if (tries == 40) fail_msg("the client talked to the leader (%d) 40 times", leader);
            coord_client_close(c);
            c = coord_test_open_on(state, 1, params, &rec, NULL);
        }
    }
    char num[4];
    snprintf(num, sizeof num, "%d", victim);
    coord_conn *k = coord__client_conn(c);
    char key[512];
    snprintf(key, sizeof key, "%s/p", coord_client_prefix(c));
    assert_int_equal(put_until(k->backend, k, key, 5000), 0);
    coord_test_servers("pause", b->servers_name, num);
    /* Keep writing through 1.5 TTLs of silence; each write gets through within 3 s. */
    int64_t t0 = coord__now_ms(), worst = 0;
    int writes = 0;
    while (coord__now_ms() - t0 < 4500) {
        int64_t w0 = coord__now_ms();
        int rc = put_until(k->backend, k, key, 3000);
        if (rc) {
            char why[512];
            snprintf(why, sizeof why, "%s", coord_last_error());
            coord_test_servers("resume", b->servers_name, num);
            fail_msg("write %d with member %d stopped: %s", writes, victim, why);
        }
        if (coord__now_ms() - w0 > worst) worst = coord__now_ms() - w0;
        writes++;
    }
    coord_test_servers("resume", b->servers_name, num);
    print_message("%s: %d writes while member %d was stopped 4.5 s, slowest %lld ms\n", b->scheme,
                  writes, victim, (long long)worst);
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_LOST, 0, 0), -1);
    assert_int_equal(coord_client_session(c), 1);
    coord_client_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {COORD_CONFORMANCE(member_kill),
                                       COORD_CONFORMANCE(member_pause)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
