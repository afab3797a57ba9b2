/*
 * Conformance: sessions and the backend seam, one body per test run against ZooKeeper and etcd
 * (real servers from scripts/servers.sh).
 */
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *path_of(coord_client *c, const char *rel) {
    char *p;
    assert_true(asprintf(&p, "%s/%s", coord_client_prefix(c), rel) > 0);
    return p;
}

static void open_close(void **state) {
    const coord_test_backend *b = *state;
    coord_client *c = coord_test_open(state, NULL, NULL, NULL);
    assert_string_equal(coord_client_backend(c), strcmp(b->scheme, "zk") ? "etcd" : "zookeeper");
    assert_int_equal(coord_client_state(c), COORD_SESSION_CONNECTED);
    assert_int_equal(coord_client_session(c), 1);
    assert_non_null(strstr(coord_client_prefix(c), "/coordtest/p"));
    coord_client_close(c);
}

/* The seam's KV contract: versions, conditional writes, deletes and listings. */
static void kv_contract(void **state) {
    coord_client *c = coord_test_open(state, NULL, NULL, NULL);
    coord_conn *k = coord__client_conn(c);
    const coord_backend *be = k->backend;
    char *dir = path_of(c, "kv"), *a = path_of(c, "kv/a"), *b = path_of(c, "kv/b");
    coord_kv kv = {0}, cur = {0};

    assert_int_equal(be->get(k, a, &kv, 2000), COORD_ENOTFOUND);
    assert_int_equal(be->put(k, a, "one", 3, COORD_VERSION_ABSENT, 0, &kv, 2000), 0);
    assert_true(kv.version > 0);
    assert_true(kv.token > 0);
    int64_t v1 = kv.version;
    uint64_t t1 = kv.token;
    coord_kv_clear(&kv);
    /* Creating again conflicts. */
    assert_int_equal(be->put(k, a, "x", 1, COORD_VERSION_ABSENT, 0, &cur, 2000), COORD_ECONFLICT);
    coord_kv_clear(&cur);
    assert_int_equal(be->get(k, a, &kv, 2000), 0);
    assert_int_equal(kv.len, 3);
    assert_memory_equal(kv.value, "one", 3);
    assert_int_equal(kv.version, v1);
    assert_int_equal(kv.token, t1);
    coord_kv_clear(&kv);
    /* A write on the right version succeeds and changes the version; a stale one conflicts. */
    assert_int_equal(be->put(k, a, "two", 3, v1, 0, &kv, 2000), 0);
    int64_t v2 = kv.version;
    assert_true(v2 != v1);
    /* Same creation; the contract lets a conditional update leave order and token 0 (etcd does,
     * to spare the server a read of the old entry on every counter add). */
    assert_true(kv.token == t1 || kv.token == 0);
    coord_kv_clear(&kv);
    assert_int_equal(be->put(k, a, "three", 5, v1, 0, &cur, 2000), COORD_ECONFLICT);
    assert_true(cur.version == v2 || cur.version == -1);
    coord_kv_clear(&cur);
    /* Unconditional writes create or overwrite. */
    assert_int_equal(be->put(k, b, "", 0, COORD_VERSION_ANY, COORD_PUT_EPHEMERAL, &kv, 2000), 0);
    assert_true(kv.token > t1); /* later creation, larger fencing number */
    coord_kv_clear(&kv);
    assert_int_equal(be->put(k, b, "bb", 2, COORD_VERSION_ANY, COORD_PUT_EPHEMERAL, NULL, 2000), 0);

    coord_kv *kids = NULL;
    size_t n = 0;
    int64_t epoch = 0;
    assert_int_equal(be->list(k, dir, 0, &kids, &n, &epoch, 2000), 0);
    assert_int_equal(n, 2);
    assert_string_equal(kids[0].key, "a");
    assert_string_equal(kids[1].key, "b");
    assert_memory_equal(kids[0].value, "two", 3);
    assert_memory_equal(kids[1].value, "bb", 2);
    assert_true(epoch > 0);
    coord_kv_array_free(kids, n);
    assert_int_equal(be->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 2000), 0);
    assert_int_equal(n, 2);
    coord_kv_array_free(kids, n);

    /* Deletes: stale version conflicts, right version deletes, absent is ENOTFOUND. */
    assert_int_equal(be->del(k, a, v1, 2000), COORD_ECONFLICT);
    assert_int_equal(be->del(k, a, v2, 2000), 0);
    assert_int_equal(be->del(k, a, COORD_VERSION_ANY, 2000), COORD_ENOTFOUND);
    assert_int_equal(be->put(k, a, "z", 1, v2, 0, &cur, 2000), COORD_ECONFLICT);
    coord_kv_clear(&cur);

    /* An absent directory lists as empty. */
    char *none = path_of(c, "nothing-here");
    assert_int_equal(be->list(k, none, 0, &kids, &n, NULL, 2000), 0);
    assert_int_equal(n, 0);
    free(none);

    /* Ephemeral entries end with the session: a second client sees b vanish on close. */
    coord_client_close(c);
    free(dir);
    free(a);
    free(b);
}

typedef struct events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int deleted, changed, reset;
} events;

static void on_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)rev;
    events *e = payload;
    pthread_mutex_lock(&e->mu);
    if (ev == COORD_EV_DELETED) e->deleted++;
    if (ev == COORD_EV_CHANGED) e->changed++;
    if (ev == COORD_EV_RESET) e->reset++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* Wait until *field >= want (bounded). */
static int wait_count(events *e, int *field, int want, int timeout_ms) {
    struct timespec dl = coord__deadline(timeout_ms);
    pthread_mutex_lock(&e->mu);
    while (*field < want)
        if (pthread_cond_timedwait(&e->cv, &e->mu, &dl)) break;
    int v = *field;
    pthread_mutex_unlock(&e->mu);
    return v;
}

static void watches(void **state) {
    coord_client *c = coord_test_open(state, NULL, NULL, NULL);
    coord_conn *k = coord__client_conn(c);
    const coord_backend *be = k->backend;
    char *dir = path_of(c, "w"), *a = path_of(c, "w/a"), *b = path_of(c, "w/b");
    events e = {.deleted = 0};
    pthread_mutex_init(&e.mu, NULL);
    coord__cond_init(&e.cv);

    /* A key watch on an absent key reports DELETED at once. */
    coord_watch *w;
    assert_int_equal(be->watch(k, a, COORD_WATCH_KEY, 0, on_event, &e, &w), 0);
    assert_int_equal(wait_count(&e, &e.deleted, 1, 5000), 1);
    be->unwatch(k, w);

    /* A key watch on a present key reports its deletion, not its update. */
    e.deleted = 0;
    assert_int_equal(be->put(k, a, "1", 1, COORD_VERSION_ABSENT, 0, NULL, 2000), 0);
    assert_int_equal(be->watch(k, a, COORD_WATCH_KEY, 0, on_event, &e, &w), 0);
    assert_int_equal(be->put(k, a, "2", 1, COORD_VERSION_ANY, 0, NULL, 2000), 0);
    assert_int_equal(be->del(k, a, COORD_VERSION_ANY, 2000), 0);
    assert_int_equal(wait_count(&e, &e.deleted, 1, 5000), 1);
    be->unwatch(k, w);

    /* A children watch reports creations and deletions of children. */
    assert_int_equal(be->watch(k, dir, COORD_WATCH_CHILDREN, 0, on_event, &e, &w), 0);
    /* The first creation also creates the parent on ZooKeeper: wait for a change either way. */
    assert_int_equal(be->put(k, a, "1", 1, COORD_VERSION_ABSENT, 0, NULL, 2000), 0);
    assert_true(wait_count(&e, &e.changed, 1, 5000) >= 1);
    pthread_mutex_lock(&e.mu);
    int before = e.changed;
    pthread_mutex_unlock(&e.mu);
    assert_int_equal(be->put(k, b, "1", 1, COORD_VERSION_ABSENT, 0, NULL, 2000), 0);
    assert_true(wait_count(&e, &e.changed, before + 1, 5000) > before);
    pthread_mutex_lock(&e.mu);
    before = e.changed;
    pthread_mutex_unlock(&e.mu);
    assert_int_equal(be->del(k, b, COORD_VERSION_ANY, 2000), 0);
    assert_true(wait_count(&e, &e.changed, before + 1, 5000) > before);
    be->unwatch(k, w);

    coord_client_close(c);
    pthread_mutex_destroy(&e.mu);
    pthread_cond_destroy(&e.cv);
    free(dir);
    free(a);
    free(b);
}

/* Session loss: LOST, then CONNECTED with a new session; ephemeral state is gone. */
static void session_loss(void **state) {
    coord_test_states rec;
    coord_client *c = coord_test_open(state, "session_ttl_ms=3000", &rec, NULL);
    coord_conn *k = coord__client_conn(c);
    const coord_backend *be = k->backend;
    char *eph = path_of(c, "eph");
    assert_int_equal(be->put(k, eph, "x", 1, COORD_VERSION_ABSENT, COORD_PUT_EPHEMERAL, NULL, 2000),
                     0);
    uint64_t s1 = coord_client_session(c);
    assert_int_equal(be->expire(k), 0);
    int lost = coord_test_states_wait(&rec, COORD_SESSION_LOST, 0, 10000);
    assert_true(lost >= 0);
    assert_true(coord_test_states_wait(&rec, COORD_SESSION_CONNECTED, lost + 1, 10000) > lost);
    assert_true(coord_client_session(c) > s1);
    coord_kv kv;
    assert_int_equal(be->get(k, eph, &kv, 2000), COORD_ENOTFOUND);
    /* The new session works for ephemeral state. */
    assert_int_equal(be->put(k, eph, "y", 1, COORD_VERSION_ABSENT, COORD_PUT_EPHEMERAL, NULL, 2000),
                     0);
    coord_client_close(c);
    free(eph);
}

/* A server that stops answering for less than the TTL: SUSPENDED, then CONNECTED with the same
 * session, never LOST. */
static void suspend_resume(void **state) {
    const coord_test_backend *b = *state;
    coord_test_states rec;
    coord_client *c = coord_test_open(state, "session_ttl_ms=9000&timeout_ms=2000", &rec, NULL);
    const char *addr = getenv(b->single);
    coord_test_servers("pause", b->servers_name, addr);
    int susp = coord_test_states_wait(&rec, COORD_SESSION_SUSPENDED, 0, 10000);
    coord_test_servers("resume", b->servers_name, addr);
    assert_true(susp >= 0);
    assert_true(coord_test_states_wait(&rec, COORD_SESSION_CONNECTED, susp + 1, 10000) > susp);
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_LOST, 0, 0), -1);
    assert_int_equal(coord_client_session(c), 1);
    coord_conn *k = coord__client_conn(c);
    char *p = path_of(c, "after");
    assert_int_equal(k->backend->put(k, p, "x", 1, COORD_VERSION_ANY, 0, NULL, 3000), 0);
    free(p);
    coord_client_close(c);
}

/* etcd: a watch resuming from a compacted revision reports RESET (its owner lists again) and
 * goes on reporting changes. */
static void etcd_watch_compacted(void **state) {
    (void)state;
    void *st = (void *)&coord_test_etcd;
    coord_client *c = coord_test_open(&st, NULL, NULL, NULL);
    coord_conn *k = coord__client_conn(c);
    const coord_backend *be = k->backend;
    char *dir = path_of(c, "cw"), *a = path_of(c, "cw/a");
    coord_kv kv;
    assert_int_equal(be->put(k, a, "1", 1, COORD_VERSION_ANY, 0, &kv, 2000), 0);
    int64_t old = kv.version;
    coord_kv_clear(&kv);
    assert_int_equal(be->put(k, a, "2", 1, COORD_VERSION_ANY, 0, &kv, 2000), 0);
    int64_t now = kv.version;
    coord_kv_clear(&kv);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "etcdctl --endpoints=http://%s compact %lld >/dev/null",
             getenv("COORD_TEST_ETCD"), (long long)now);
    assert_int_equal(system(cmd), 0);
    events e = {.deleted = 0};
    pthread_mutex_init(&e.mu, NULL);
    coord__cond_init(&e.cv);
    coord_watch *w;
    assert_int_equal(be->watch(k, dir, COORD_WATCH_CHILDREN, old - 1, on_event, &e, &w), 0);
    assert_int_equal(wait_count(&e, &e.reset, 1, 5000), 1);
    assert_int_equal(be->del(k, a, COORD_VERSION_ANY, 2000), 0);
    assert_true(wait_count(&e, &e.changed, 1, 5000) >= 1);
    be->unwatch(k, w);
    pthread_mutex_destroy(&e.mu);
    pthread_cond_destroy(&e.cv);
    coord_client_close(c);
    free(dir);
    free(a);
}

/* Explicit options win over the URI; bad options are refused before any traffic. */
static void options(void **state) {
    char *uri = coord_test_uri(state, 0, "timeout_ms=100000");
    coord_options o = COORD_OPTIONS_INIT;
    coord_client *c = NULL;
    o.version = 99;
    assert_int_equal(coord_client_open(&c, uri, &o), COORD_EINVAL);
    assert_int_equal(coord_options_init(&o, 1), 0);
    o.timeout_ms = -5;
    assert_int_equal(coord_client_open(&c, uri, &o), COORD_EINVAL);
    o.timeout_ms = 1234;
    assert_int_equal(coord_client_open(&c, uri, &o), 0);
    assert_int_equal(coord__client_timeout(c), 1234);
    coord_client_close(c);
    free(uri);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COORD_CONFORMANCE(open_close),
        COORD_CONFORMANCE(kv_contract),
        COORD_CONFORMANCE(watches),
        COORD_CONFORMANCE(options),
        COORD_CONFORMANCE(session_loss),
        COORD_CONFORMANCE(suspend_resume),
        cmocka_unit_test(etcd_watch_compacted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
