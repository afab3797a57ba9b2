/*
 * Conformance: the counting semaphore on real servers, one body for both backends: never more
 * than the limit, FIFO with one waiter woken per release, the stored limit, try and bound,
 * session loss, cancel, bad input.
 */
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static coord_client *open_same(const char *uri) {
    coord_client *c = NULL;
    if (coord_client_open(&c, uri, NULL)) fail_msg("open %s: %s", uri, coord_last_error());
    return c;
}

static coord_semaphore *sem(coord_client *c, const char *name, unsigned max) {
    coord_semaphore *s = NULL;
    if (coord_semaphore_new(&s, c, name, max)) fail_msg("semaphore_new: %s", coord_last_error());
    return s;
}

/* Children of "<prefix>/semaphore/<name>/<sub>", read with the raw backend. */
static size_t children(coord_client *c, const char *name, const char *sub) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/semaphore/%s/%s", coord_client_prefix(c), name, sub);
    coord_conn *k = coord__client_conn(c);
    coord_kv *kids = NULL;
    size_t n = 0;
    if (k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000))
        fail_msg("list %s: %s", dir, coord_last_error());
    coord_kv_array_free(kids, n);
    return n;
}

static void await_children(coord_client *c, const char *name, const char *sub, size_t want) {
    struct timespec nap = {0, 5 * 1000000L};
    for (int64_t end = coord__now_ms() + 10000;
         children(c, name, sub) != want && coord__now_ms() < end;)
        nanosleep(&nap, NULL);
    assert_int_equal(children(c, name, sub), want);
}

static void basics(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_semaphore *s = NULL;
    assert_int_equal(coord_semaphore_new(&s, a, "b", 0), COORD_EINVAL);
    for (const char *const *n = coord_test_bad_names; *n; n++)
        assert_int_equal(coord_semaphore_new(&s, a, *n, 1), COORD_EINVAL);
    s = sem(a, "b", 2);
    assert_false(coord_semaphore_held(s));
    assert_int_equal(coord_semaphore_release(s), COORD_ENOTHELD);
    assert_int_equal(coord_semaphore_acquire(s, 0), 0);
    assert_true(coord_semaphore_held(s));
    assert_int_equal(coord_semaphore_acquire(s, 0), COORD_EINVAL); /* one lease per handle */
    /* the limit is stored as ASCII decimal in the semaphore's own entry */
    char path[512];
    snprintf(path, sizeof path, "%s/semaphore/b", coord_client_prefix(a));
    coord_conn *k = coord__client_conn(a);
    coord_kv kv = {0};
    assert_int_equal(k->backend->get(k, path, &kv, 3000), 0);
    assert_int_equal(kv.len, 1);
    assert_memory_equal(kv.value, "2", 1);
    coord_kv_clear(&kv);
    assert_int_equal(children(a, "b", "leases"), 1);
    /* a handle with another limit is refused before any wait */
    coord_semaphore *other = sem(a, "b", 3);
    assert_int_equal(coord_semaphore_acquire(other, -1), COORD_ECONFLICT);
    coord_semaphore_free(other);
    assert_int_equal(coord_semaphore_release(s), 0);
    assert_false(coord_semaphore_held(s));
    assert_int_equal(children(a, "b", "leases"), 0);
    assert_int_equal(coord_semaphore_release(s), COORD_ENOTHELD);
    coord_semaphore_free(s);
    coord_semaphore_free(NULL);
    coord_semaphore_cancel(NULL);
    coord_client_close(a);
    free(uri);
}

static void try_and_timeout(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri);
    coord_semaphore *sa = sem(a, "tt", 1), *sb = sem(b, "tt", 1);
    assert_int_equal(coord_semaphore_acquire(sa, 0), 0);
    assert_int_equal(coord_semaphore_acquire(sb, 0), COORD_ELOCKED);
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_semaphore_acquire(sb, 300), COORD_ETIMEDOUT);
    assert_true(coord__now_ms() - t0 >= 290);
    /* nothing left behind: one lease, no waiter in the lock */
    assert_int_equal(children(a, "tt", "leases"), 1);
    assert_int_equal(children(a, "tt", "locks"), 0);
    assert_int_equal(coord_semaphore_release(sa), 0);
    assert_int_equal(coord_semaphore_acquire(sb, 0), 0);
    coord_semaphore_free(sb); /* releases */
    await_children(a, "tt", "leases", 0);
    coord_semaphore_free(sa);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* ---- the limit under load: 3 clients x 4 threads x 30 rounds on a semaphore of 2 ---- */

#define LT_CLIENTS 3
#define LT_THREADS 4
#define LT_ROUNDS 30

typedef struct load {
    coord_client *c;
    int *inside, *most, *errors;
} load;

static void *load_main(void *arg) {
    load *l = arg;
    coord_semaphore *s;
    if (coord_semaphore_new(&s, l->c, "load", 2)) {
        __atomic_add_fetch(l->errors, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    for (int i = 0; i < LT_ROUNDS; i++) {
        int rc = coord_semaphore_acquire(s, 30000);
        if (rc) {
            print_error("acquire: %s: %s\n", coord_err_name(rc), coord_last_error());
            __atomic_add_fetch(l->errors, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        int now = __atomic_add_fetch(l->inside, 1, __ATOMIC_SEQ_CST);
        int most = __atomic_load_n(l->most, __ATOMIC_SEQ_CST);
        while (now > most && !__atomic_compare_exchange_n(l->most, &most, now, false,
                                                          __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            ;
        struct timespec ts = {0, 20 * 1000000L}; /* hold it a while: let others try to enter */
        nanosleep(&ts, NULL);
        __atomic_sub_fetch(l->inside, 1, __ATOMIC_SEQ_CST);
        if ((rc = coord_semaphore_release(s))) {
            print_error("release: %s: %s\n", coord_err_name(rc), coord_last_error());
            __atomic_add_fetch(l->errors, 1, __ATOMIC_SEQ_CST);
        }
    }
    coord_semaphore_free(s);
    return NULL;
}

static void limit_under_load(void **state) {
    char *uri;
    coord_client *c[LT_CLIENTS];
    c[0] = coord_test_open(state, NULL, NULL, &uri);
    for (int i = 1; i < LT_CLIENTS; i++)
        c[i] = open_same(uri);
    int inside = 0, most = 0, errors = 0;
    load l[LT_CLIENTS];
    pthread_t th[LT_CLIENTS * LT_THREADS];
    for (int i = 0; i < LT_CLIENTS; i++)
        l[i] = (load){c[i], &inside, &most, &errors};
    int64_t t0 = coord__now_ms();
    for (int i = 0; i < LT_CLIENTS * LT_THREADS; i++)
        pthread_create(&th[i], NULL, load_main, &l[i % LT_CLIENTS]);
    for (int i = 0; i < LT_CLIENTS * LT_THREADS; i++)
        pthread_join(th[i], NULL);
    print_message("    %d leases taken in %lld ms, at most %d at once (limit 2)\n",
                  LT_CLIENTS * LT_THREADS * LT_ROUNDS, (long long)(coord__now_ms() - t0), most);
    assert_int_equal(errors, 0);
    assert_true(most <= 2);
    assert_int_equal(most, 2); /* and the limit is used */
    assert_int_equal(children(c[0], "load", "leases"), 0);
    for (int i = 0; i < LT_CLIENTS; i++)
        coord_client_close(c[i]);
    free(uri);
}

/* ---- FIFO: waiters served in arrival order, a release wakes one ---- */

typedef struct waiter {
    coord_semaphore *s;
    int timeout_ms, rc;
    pthread_t th;
} waiter;

static void *wait_main(void *arg) {
    waiter *w = arg;
    w->rc = coord_semaphore_acquire(w->s, w->timeout_ms);
    return NULL;
}

static void fifo(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri), *c = open_same(uri);
    coord_semaphore *sa = sem(a, "fifo", 1), *sb = sem(b, "fifo", 1), *sc = sem(c, "fifo", 1);
    assert_int_equal(coord_semaphore_acquire(sa, 0), 0);
    waiter wb = {sb, 20000, 1}, wc = {sc, 20000, 1};
    pthread_create(&wb.th, NULL, wait_main, &wb);
    await_children(a, "fifo", "locks", 1); /* b holds the lock, waiting for a lease */
    await_children(a, "fifo", "leases", 2);
    pthread_create(&wc.th, NULL, wait_main, &wc);
    await_children(a, "fifo", "locks", 2); /* c queued behind b */
    assert_int_equal(coord_semaphore_release(sa), 0);
    pthread_join(wb.th, NULL);
    assert_int_equal(wb.rc, 0);
    assert_int_equal(wc.rc, 1); /* still waiting */
    assert_int_equal(coord_semaphore_release(sb), 0);
    pthread_join(wc.th, NULL);
    assert_int_equal(wc.rc, 0);
    assert_int_equal(coord_semaphore_release(sc), 0);
    coord_semaphore_free(sc);
    coord_semaphore_free(sb);
    coord_semaphore_free(sa);
    coord_client_close(c);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* A holder's session ends: its lease goes with it, a waiter gets one; a cancel gives up. */
static void session_loss_and_cancel(void **state) {
    char *uri;
    coord_test_states rec;
    coord_client *a = coord_test_open(state, "session_ttl_ms=3000", &rec, &uri);
    coord_client *b = open_same(uri);
    coord_semaphore *sa = sem(a, "sl", 1), *sb = sem(b, "sl", 1);
    assert_int_equal(coord_semaphore_acquire(sa, 0), 0);
    waiter wb = {sb, 20000, 1};
    pthread_create(&wb.th, NULL, wait_main, &wb);
    await_children(a, "sl", "leases", 2);
    coord_conn *k = coord__client_conn(a);
    assert_int_equal(k->backend->expire(k), 0);
    pthread_join(wb.th, NULL);
    assert_int_equal(wb.rc, 0);
    int lost = coord_test_states_wait(&rec, COORD_SESSION_LOST, 0, 10000);
    assert_true(lost >= 0);
    assert_false(coord_semaphore_held(sa));
    /* the client's new session (calls before it are refused with COORD_ESESSION) */
    assert_true(coord_test_states_wait(&rec, COORD_SESSION_CONNECTED, lost + 1, 10000) > lost);
    assert_int_equal(coord_semaphore_release(sa), COORD_ENOTHELD);
    /* a waits behind b; a cancel ends its wait and leaves nothing */
    waiter wa = {sa, -1, 1};
    pthread_create(&wa.th, NULL, wait_main, &wa);
    struct timespec nap = {0, 5 * 1000000L};
    for (int64_t end = coord__now_ms() + 10000;
         children(b, "sl", "leases") != 2 && wa.rc == 1 && coord__now_ms() < end;)
        nanosleep(&nap, NULL);
    if (wa.rc != 1) fail_msg("the waiting acquire returned %d: %s", wa.rc, coord_last_error());
    assert_int_equal(children(b, "sl", "leases"), 2);
    coord_semaphore_cancel(sa);
    pthread_join(wa.th, NULL);
    assert_int_equal(wa.rc, COORD_ECANCELED);
    await_children(b, "sl", "leases", 1);
    await_children(b, "sl", "locks", 0);
    assert_int_equal(coord_semaphore_acquire(sa, 0), COORD_ELOCKED); /* no stale cancel */
    coord_semaphore_free(sb);
    coord_semaphore_free(sa);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COORD_CONFORMANCE(basics),
        COORD_CONFORMANCE(try_and_timeout),
        COORD_CONFORMANCE(limit_under_load),
        COORD_CONFORMANCE(fifo),
        COORD_CONFORMANCE(session_loss_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
