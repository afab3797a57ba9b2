/*
 * The fake backend and the fault shim themselves (no server): the slot contracts the recipes'
 * unit tests rely on, on both flavours, and each kind of fault.
 */
#include "testing.h"
#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An event recorder for watches. */
typedef struct events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ev[32];
    int n;
} events;

static void events_init(events *e) {
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    coord__cond_init(&e->cv);
}

static void on_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)rev;
    events *e = payload;
    pthread_mutex_lock(&e->mu);
    if (e->n < 32) e->ev[e->n++] = ev;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* Wait (bounded) for `n` events; the number seen. */
static int events_wait(events *e, int n) {
    struct timespec dl = coord__deadline(5000);
    pthread_mutex_lock(&e->mu);
    while (e->n < n && pthread_cond_timedwait(&e->cv, &e->mu, &dl) == 0) {
    }
    int got = e->n;
    pthread_mutex_unlock(&e->mu);
    return got;
}

static char *path_of(coord_client *c, const char *rest) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", coord_client_prefix(c), rest) < 0) fail_msg("out of memory");
    return p;
}

static void kv_contract(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    coord_conn *k = coord__client_conn(c);
    const coord_backend *be = k->backend;
    bool etcd = fake_is_etcd(state);
    char *p = path_of(c, "kv/a");
    coord_kv kv = {0};
    assert_int_equal(be->get(k, p, &kv, 1000), COORD_ENOTFOUND);
    assert_int_equal(be->put(k, p, "1", 1, COORD_VERSION_ABSENT, 0, &kv, 1000), 0);
    int64_t v1 = kv.version;
    uint64_t t1 = kv.token;
    assert_true(v1 > 0);
    coord_kv_clear(&kv);
    /* create again: conflict; etcd returns the entry, ZooKeeper asks to read again */
    assert_int_equal(be->put(k, p, "2", 1, COORD_VERSION_ABSENT, 0, &kv, 1000), COORD_ECONFLICT);
    assert_int_equal(kv.version, etcd ? v1 : -1);
    coord_kv_clear(&kv);
    assert_int_equal(be->put(k, p, "2", 1, v1, 0, &kv, 1000), 0);
    assert_true(kv.version != v1);
    coord_kv_clear(&kv);
    assert_int_equal(be->put(k, p, "3", 1, v1, 0, NULL, 1000), COORD_ECONFLICT);
    assert_int_equal(be->get(k, p, &kv, 1000), 0);
    assert_memory_equal(kv.value, "2", 1);
    assert_int_equal(kv.token, t1);
    int64_t v2 = kv.version;
    coord_kv_clear(&kv);
    assert_int_equal(be->del(k, p, v1, 1000), COORD_ECONFLICT);
    assert_int_equal(be->del(k, p, v2, 1000), 0);
    assert_int_equal(be->del(k, p, COORD_VERSION_ANY, 1000), COORD_ENOTFOUND);
    assert_int_equal(be->del(k, p, COORD_VERSION_ABSENT, 1000), COORD_EINVAL);
    assert_int_equal(be->put(k, p, "x", 1, 5, 0, &kv, 1000), COORD_ECONFLICT);
    assert_int_equal(kv.version, 0);
    coord_kv_clear(&kv);
    assert_int_equal(be->put(k, p, NULL, 3, COORD_VERSION_ANY, 0, NULL, 1000), COORD_EINVAL);
    /* sequential names: ZooKeeper only */
    char *q = path_of(c, "kv/seq-");
    int rc = be->put(k, q, NULL, 0, COORD_VERSION_ABSENT, COORD_PUT_SEQUENTIAL, &kv, 1000);
    if (etcd) {
        assert_int_equal(rc, COORD_ENOTSUP);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(strlen(kv.key), strlen(q) + 10);
        assert_int_equal(kv.order, 0);
        coord_kv_clear(&kv);
        assert_int_equal(be->put(k, q, NULL, 0, 3, COORD_PUT_SEQUENTIAL, NULL, 1000), COORD_EINVAL);
    }
    /* list: names in creation order, an epoch that moves */
    char *dir = path_of(c, "kv");
    char *b = path_of(c, "kv/b"), *a = path_of(c, "kv/a");
    assert_int_equal(be->put(k, b, "b", 1, COORD_VERSION_ANY, 0, NULL, 1000), 0);
    assert_int_equal(be->put(k, a, "a", 1, COORD_VERSION_ANY, COORD_PUT_EPHEMERAL, NULL, 1000), 0);
    coord_kv *kids = NULL;
    size_t n = 0;
    int64_t e1 = 0, e2 = 0;
    assert_int_equal(be->list(k, dir, 0, &kids, &n, &e1, 1000), 0);
    assert_int_equal(n, etcd ? 2 : 3);
    assert_string_equal(kids[n - 2].key, "b");
    assert_string_equal(kids[n - 1].key, "a");
    assert_memory_equal(kids[n - 1].value, "a", 1);
    coord_kv_array_free(kids, n);
    assert_int_equal(be->list(k, dir, COORD_LIST_NAMES, &kids, &n, &e2, 1000), 0);
    assert_int_equal(e1, e2);
    coord_kv_array_free(kids, n);
    assert_int_equal(be->list(k, b, 0, &kids, &n, NULL, 1000), 0); /* no children */
    assert_int_equal(n, 0);
    coord_kv_array_free(kids, n);
    /* get_own: an ephemeral entry of this session only */
    assert_int_equal(be->get_own(k, a, &kv, 1000), 0);
    coord_kv_clear(&kv);
    assert_int_equal(be->get_own(k, b, &kv, 1000), COORD_EEXISTS);
    assert_int_equal(be->get_own(k, dir, &kv, 1000), COORD_ENOTFOUND);
    assert_true(fake_calls(c, SLOT_PUT) >= 6);
    assert_true(fake_calls(NULL, SLOT_PUT) >= fake_calls(c, SLOT_PUT));
    assert_string_equal(coord_slot_name(SLOT_LOCK_PREDECESSOR), "lock_predecessor");
    coord_client_close(c);
    /* the ephemeral entry went with the session */
    assert_null(fake_value(a, NULL));
    size_t len = 0;
    char *val = fake_value(b, &len);
    assert_non_null(val);
    assert_int_equal(len, 1);
    free(val);
    assert_int_equal(fake_remove(b), 0);
    assert_int_equal(fake_remove(b), COORD_ENOTFOUND);
    if (!etcd) assert_true(fake_count(dir) == 1);
    free(dir);
    free(a);
    free(b);
    free(p);
    free(q);
}

static void watches(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    coord_conn *k = coord__client_conn(c);
    const coord_backend *be = k->backend;
    char *dir = path_of(c, "w"), *x = path_of(c, "w/x");
    events key, kids, gone;
    events_init(&key);
    events_init(&kids);
    events_init(&gone);
    coord_watch *wk, *wc, *wg;
    assert_int_equal(be->put(k, x, "1", 1, COORD_VERSION_ANY, 0, NULL, 1000), 0);
    assert_int_equal(be->watch(k, x, COORD_WATCH_KEY, 0, on_event, &key, &wk), 0);
    assert_int_equal(be->watch(k, dir, COORD_WATCH_CHILDREN, 0, on_event, &kids, &wc), 0);
    char *y = path_of(c, "w/y");
    assert_int_equal(be->watch(k, y, COORD_WATCH_KEY, 0, on_event, &gone, &wg), 0);
    assert_int_equal(events_wait(&gone, 1), 1); /* absent: at once */
    assert_int_equal(gone.ev[0], COORD_EV_DELETED);
    assert_int_equal(be->put(k, x, "2", 1, COORD_VERSION_ANY, 0, NULL, 1000), 0);
    assert_int_equal(fake_sync(c, 2000), 0);
    assert_int_equal(key.n, 0);
    assert_int_equal(kids.n, fake_is_etcd(state) ? 1 : 0); /* a value: etcd only */
    int before = kids.n;
    assert_int_equal(be->del(k, x, COORD_VERSION_ANY, 1000), 0);
    assert_int_equal(events_wait(&key, 1), 1);
    assert_int_equal(key.ev[0], COORD_EV_DELETED);
    assert_int_equal(events_wait(&kids, before + 1), before + 1);
    assert_int_equal(kids.ev[before], COORD_EV_CHANGED);
    /* a session replaced: RESET to the live watches */
    fake_expire(c);
    assert_int_equal(events_wait(&kids, before + 2), before + 2);
    assert_int_equal(kids.ev[before + 1], COORD_EV_RESET);
    assert_int_equal(fake_sync(c, 2000), 0);
    assert_int_equal(key.n, 1); /* a KEY watch reports once */
    be->unwatch(k, wk);
    be->unwatch(k, wc);
    be->unwatch(k, wg);
    assert_int_equal(be->watch(k, dir, 99, 0, on_event, &kids, &wc), COORD_EINVAL);
    coord_client_close(c);
    free(dir);
    free(x);
    free(y);
}

/* An unwatch waits for a running callback: the callback sleeps on a gate the test opens. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool in, open, after;
} gate;

static void gate_fn(void *payload, coord_watch_event ev, int64_t rev) {
    (void)ev, (void)rev;
    gate *g = payload;
    pthread_mutex_lock(&g->mu);
    g->in = true;
    pthread_cond_broadcast(&g->cv);
    struct timespec dl = coord__deadline(5000);
    while (!g->open && pthread_cond_timedwait(&g->cv, &g->mu, &dl) == 0) {
    }
    g->after = true;
    pthread_mutex_unlock(&g->mu);
}

typedef struct unwatch_arg {
    coord_conn *k;
    coord_watch *w;
} unwatch_arg;

static void *unwatcher(void *arg) {
    unwatch_arg *u = arg;
    u->k->backend->unwatch(u->k, u->w);
    return NULL;
}

static void unwatch_waits(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    coord_conn *k = coord__client_conn(c);
    char *x = path_of(c, "absent");
    gate g = {.in = false};
    pthread_mutex_init(&g.mu, NULL);
    coord__cond_init(&g.cv);
    unwatch_arg u = {.k = k};
    assert_int_equal(k->backend->watch(k, x, COORD_WATCH_KEY, 0, gate_fn, &g, &u.w), 0);
    struct timespec dl = coord__deadline(5000);
    pthread_mutex_lock(&g.mu);
    while (!g.in && pthread_cond_timedwait(&g.cv, &g.mu, &dl) == 0) {
    }
    assert_true(g.in);
    pthread_mutex_unlock(&g.mu);
    pthread_t th;
    pthread_create(&th, NULL, unwatcher, &u);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(th, NULL);
    assert_true(g.after); /* unwatch returned after the callback did */
    coord_client_close(c);
    free(x);
}

static void sessions(void **state) {
    coord_test_states rec;
    coord_client *c = fake_open(state, NULL, &rec, NULL);
    coord_conn *k = coord__client_conn(c);
    char *e = path_of(c, "eph");
    uint64_t s0 = coord_client_session(c);
    assert_int_equal(k->backend->put(k, e, "", 0, 0, COORD_PUT_EPHEMERAL, NULL, 1000), 0);
    /* suspended: unreachable, session kept */
    fake_suspend(c);
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_SUSPENDED, 0, 2000), 0);
    assert_int_equal(k->backend->get(k, e, &(coord_kv){0}, 1000), COORD_EUNAVAILABLE);
    fake_resume(c);
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_CONNECTED, 1, 2000), 1);
    char *val = fake_value(e, NULL);
    assert_non_null(val);
    free(val);
    assert_int_equal(coord_client_session(c), s0);
    /* expired: LOST, ephemeral entries gone, a new session, CONNECTED */
    assert_int_equal(k->backend->expire(k), 0);
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_LOST, 2, 2000), 2);
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_CONNECTED, 3, 2000), 3);
    assert_null(fake_value(e, NULL));
    assert_true(coord_client_session(c) != s0);
    /* expired while cut off: LOST only once back */
    fake_server_down();
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_SUSPENDED, 4, 2000), 4);
    coord_client *d = NULL;
    char uri[128];
    snprintf(uri, sizeof uri, "%s://local/x", (const char *)*state);
    assert_int_equal(coord_client_open(&d, uri, NULL), COORD_EUNAVAILABLE);
    assert_int_equal(k->backend->expire(k), COORD_EUNAVAILABLE);
    fake_expire(c);
    assert_int_equal(fake_sync(c, 2000), 0);
    assert_int_equal(rec.n, 5);
    fake_server_up();
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_LOST, 5, 2000), 5);
    assert_int_equal(coord_test_states_wait(&rec, COORD_SESSION_CONNECTED, 6, 2000), 6);
    assert_true(fake_calls(c, SLOT_EXPIRE) == 2);
    fake_calls_reset(c);
    assert_true(fake_calls(c, SLOT_EXPIRE) == 0);
    coord_client_close(c);
    free(e);
}

/* The lock queue slots on their own: order, predecessor, tag found again (etcd). */
static void lock_slots(void **state) {
    coord_client *a = fake_open(state, NULL, NULL, NULL);
    coord_conn *k = coord__client_conn(a);
    const coord_backend *be = k->backend;
    char *dir = path_of(a, "lock/q");
    coord_kv m1 = {0}, m2 = {0}, pred = {0};
    bool first = false;
    int64_t after = 0;
    assert_int_equal(
        be->lock_enqueue(k, dir, "t1", "lock-", NULL, NULL, 0, &m1, &first, &pred, &after, 1000),
        0);
    assert_true(first);
    assert_null(pred.key);
    assert_non_null(strstr(m1.key, "t1"));
    assert_int_equal(
        be->lock_enqueue(k, dir, "t2", "lock-", NULL, NULL, 0, &m2, &first, &pred, &after, 1000),
        0);
    assert_false(first);
    assert_string_equal(pred.key, m1.key);
    assert_true(m2.token > m1.token);
    coord_kv_clear(&pred);
    if (fake_is_etcd(state)) { /* the same tag finds its key again: not first, no predecessor */
        coord_kv again = {0};
        assert_int_equal(be->lock_enqueue(k, dir, "t2", "lock-", NULL, NULL, 0, &again, &first,
                                          &pred, &after, 1000),
                         0);
        assert_false(first);
        assert_null(pred.key);
        assert_string_equal(again.key, m2.key);
        coord_kv_clear(&again);
    }
    assert_int_equal(be->lock_predecessor(k, dir, &m2, NULL, &pred, &after, 1000), 0);
    assert_string_equal(pred.key, m1.key);
    coord_kv_clear(&pred);
    assert_int_equal(be->del(k, m1.key, COORD_VERSION_ANY, 1000), 0);
    assert_int_equal(be->lock_predecessor(k, dir, &m2, NULL, &pred, &after, 1000), 0);
    assert_null(pred.key);
    assert_int_equal(be->lock_predecessor(k, dir, &m1, NULL, &pred, &after, 1000), COORD_ESESSION);
    coord_kv_clear(&m1);
    coord_kv_clear(&m2);
    coord_client_close(a);
    free(dir);
}

/* The shim: before, after, transient, persistent, delays, per client. */
static void faults(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    coord_client *d = fake_open(state, NULL, NULL, NULL);
    coord_conn *k = coord__client_conn(c), *kd = coord__client_conn(d);
    const coord_backend *be = k->backend;
    assert_ptr_equal(fake_conn(c), fault_inner(k));
    assert_ptr_equal(fault_inner(fake_conn(c)), fake_conn(c));
    char *p = path_of(c, "f/a");
    /* before: not applied */
    int id = fault_once(c, SLOT_PUT, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(be->put(k, p, "1", 1, 0, 0, NULL, 1000), COORD_EUNAVAILABLE);
    assert_non_null(strstr(coord_last_error(), "fault: put"));
    assert_null(fake_value(p, NULL));
    assert_int_equal(be->put(kd, p, "d", 1, 0, 0, NULL, 1000), 0); /* only c's calls */
    assert_int_equal(be->del(kd, p, COORD_VERSION_ANY, 1000), 0);
    assert_int_equal(fault_hits(id), 1);
    /* transient: the next call goes through */
    assert_int_equal(be->put(k, p, "1", 1, 0, 0, NULL, 1000), 0);
    /* after: applied, answer lost */
    fault_once(c, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    coord_kv kv = {0};
    assert_int_equal(be->put(k, p, "2", 1, COORD_VERSION_ANY, 0, &kv, 1000), COORD_ETIMEDOUT);
    assert_null(kv.key);
    size_t len;
    char *v = fake_value(p, &len);
    assert_memory_equal(v, "2", 1);
    free(v);
    /* persistent from the 2nd call on */
    id = fault_always(c, SLOT_GET, 2, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(be->get(k, p, &kv, 1000), 0);
    coord_kv_clear(&kv);
    for (int i = 0; i < 3; i++)
        assert_int_equal(be->get(k, p, &kv, 1000), COORD_EUNAVAILABLE);
    assert_int_equal(fault_hits(id), 3);
    fault_clear(c);
    assert_int_equal(be->get(k, p, &kv, 1000), 0);
    coord_kv_clear(&kv);
    /* a delay only */
    fault_rule slow = {.slot = SLOT_GET, .nth = 1, .count = 1, .delay_ms = 50};
    fault_add(NULL, &slow);
    int64_t t0 = coord__now_ms();
    assert_int_equal(be->get(k, p, &kv, 1000), 0);
    assert_true(coord__now_ms() - t0 >= 50);
    coord_kv_clear(&kv);
    /* after on a list, a watch, an enqueue, a predecessor, get_own, del, expire: dropped */
    char *dir = path_of(c, "f");
    coord_kv *kids = (coord_kv *)1;
    size_t n = 7;
    fault_once(c, SLOT_LIST, 1, COORD_EUNAVAILABLE, FAULT_AFTER);
    assert_int_equal(be->list(k, dir, 0, &kids, &n, NULL, 1000), COORD_EUNAVAILABLE);
    assert_null(kids);
    assert_int_equal(n, 0);
    events ev;
    events_init(&ev);
    coord_watch *w = (coord_watch *)1;
    fault_once(c, SLOT_WATCH, 1, COORD_EUNAVAILABLE, FAULT_AFTER);
    assert_int_equal(be->watch(k, dir, COORD_WATCH_CHILDREN, 0, on_event, &ev, &w),
                     COORD_EUNAVAILABLE);
    assert_null(w);
    coord_kv mine = {0}, pred = {0};
    bool first;
    int64_t after;
    char *q = path_of(c, "f/q");
    fault_once(c, SLOT_LOCK_ENQUEUE, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(
        be->lock_enqueue(k, q, "tag", "lock-", NULL, NULL, 0, &mine, &first, &pred, &after, 1000),
        COORD_ETIMEDOUT);
    assert_null(mine.key);
    assert_int_equal(fake_count(q), 1); /* made, answer lost */
    fault_once(c, SLOT_LOCK_ENQUEUE, 1, COORD_ETIMEDOUT, FAULT_BEFORE);
    assert_int_equal(
        be->lock_enqueue(k, q, "tag2", "lock-", NULL, NULL, 0, &mine, &first, &pred, &after, 1000),
        COORD_ETIMEDOUT);
    assert_int_equal(fake_count(q), 1);
    assert_int_equal(
        be->lock_enqueue(k, q, "tag3", "lock-", NULL, NULL, 0, &mine, &first, &pred, &after, 1000),
        0);
    coord_kv_clear(&pred);
    fault_once(c, SLOT_LOCK_PREDECESSOR, 1, COORD_EUNAVAILABLE, FAULT_AFTER);
    assert_int_equal(be->lock_predecessor(k, q, &mine, NULL, &pred, &after, 1000),
                     COORD_EUNAVAILABLE);
    assert_null(pred.key);
    fault_once(c, SLOT_GET_OWN, 1, COORD_EUNAVAILABLE, FAULT_AFTER);
    assert_int_equal(be->get_own(k, mine.key, &kv, 1000), COORD_EUNAVAILABLE);
    assert_null(kv.key);
    fault_once(c, SLOT_DEL, 1, COORD_EUNAVAILABLE, FAULT_AFTER);
    assert_int_equal(be->del(k, mine.key, COORD_VERSION_ANY, 1000), COORD_EUNAVAILABLE);
    assert_int_equal(fake_count(q), 1);
    coord_kv_clear(&mine);
    fault_once(c, SLOT_EXPIRE, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(be->expire(k), COORD_EUNAVAILABLE);
    /* open: before and after (the session made is closed again) */
    char uri[128];
    snprintf(uri, sizeof uri, "%s://local/x", (const char *)*state);
    coord_client *e = NULL;
    fault_once(NULL, SLOT_OPEN, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_client_open(&e, uri, NULL), COORD_EUNAVAILABLE);
    fault_once(NULL, SLOT_OPEN, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_client_open(&e, uri, NULL), COORD_ETIMEDOUT);
    assert_null(e);
    fault_rule counted = {.slot = SLOT_SESSION, .count = FAULT_PERSISTENT};
    id = fault_add(d, &counted);
    coord_client_session(d);
    assert_int_equal(fault_hits(id), 1);
    coord_client_close(d);
    assert_int_equal(fault_hits(id), 0); /* its rules went with it */
    coord_client_close(c);
    free(p);
    free(q);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        FAKE_BOTH(kv_contract), FAKE_BOTH(watches),    FAKE_BOTH(unwatch_waits),
        FAKE_BOTH(sessions),    FAKE_BOTH(lock_slots), FAKE_BOTH(faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
