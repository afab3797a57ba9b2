/*
 * Conformance: the read-write lock on real servers, one body for both backends: readers share,
 * a writer is alone, a waiting writer is not passed by later readers, tokens, bad input, and the
 * invariants under load.
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

static coord_rwlock *rw(coord_client *c, const char *name) {
    coord_rwlock *l = NULL;
    if (coord_rwlock_new(&l, c, name)) fail_msg("rwlock_new: %s", coord_last_error());
    return l;
}

static void basics(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri);
    coord_rwlock *x;
    for (const char *const *n = coord_test_bad_names; *n; n++)
        assert_int_equal(coord_rwlock_new(&x, a, *n), COORD_EINVAL);
    coord_rwlock *la = rw(a, "b"), *lb = rw(b, "b");
    uint64_t t1, t2, t3;
    assert_false(coord_rwlock_held(la));
    assert_int_equal(coord_rwlock_unlock(la), COORD_ENOTHELD);
    assert_int_equal(coord_rwlock_token(la, &t1), COORD_ENOTHELD);
    assert_int_equal(coord_rwlock_wrlock(la, 0), 0);
    assert_true(coord_rwlock_held(la));
    assert_int_equal(coord_rwlock_rdlock(la, 0), COORD_EINVAL); /* no re-entry, no downgrade */
    assert_int_equal(coord_rwlock_token(la, &t1), 0);
    assert_int_equal(coord_rwlock_rdlock(lb, 0), COORD_ELOCKED);
    assert_int_equal(coord_rwlock_wrlock(lb, 200), COORD_ETIMEDOUT);
    assert_int_equal(coord_rwlock_unlock(la), 0);
    assert_int_equal(coord_rwlock_wrlock(lb, 0), 0);
    assert_int_equal(coord_rwlock_token(lb, &t2), 0);
    assert_true(t2 > t1); /* writers' tokens increase */
    assert_int_equal(coord_rwlock_unlock(lb), 0);
    /* readers share, and have tokens too */
    assert_int_equal(coord_rwlock_rdlock(la, 0), 0);
    assert_int_equal(coord_rwlock_rdlock(lb, 0), 0);
    assert_int_equal(coord_rwlock_token(lb, &t3), 0);
    assert_true(t3 > t2);
    assert_int_equal(coord_rwlock_wrlock(la, 0), COORD_EINVAL); /* no upgrade */
    coord_rwlock *lc = rw(b, "b");
    assert_int_equal(coord_rwlock_wrlock(lc, 0), COORD_ELOCKED);
    assert_int_equal(coord_rwlock_unlock(la), 0);
    assert_int_equal(coord_rwlock_wrlock(lc, 0), COORD_ELOCKED); /* one reader left */
    assert_int_equal(coord_rwlock_unlock(lb), 0);
    assert_int_equal(coord_rwlock_wrlock(lc, 0), 0);
    coord_rwlock_free(lc); /* unlocks */
    assert_int_equal(coord_rwlock_wrlock(la, 0), 0);
    assert_int_equal(coord_rwlock_unlock(la), 0);
    coord_rwlock_free(lb);
    coord_rwlock_free(la);
    coord_rwlock_free(NULL);
    coord_rwlock_cancel(NULL);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

typedef struct taker {
    coord_rwlock *l;
    bool write;
    int timeout_ms, rc;
    pthread_t th;
} taker;

static void *take_main(void *arg) {
    taker *t = arg;
    t->rc = t->write ? coord_rwlock_wrlock(t->l, t->timeout_ms)
                     : coord_rwlock_rdlock(t->l, t->timeout_ms);
    return NULL;
}

static size_t queued(coord_client *c, const char *name) {
    /* Entries under the lock: ZooKeeper's are its children, etcd's sit in read/ and write/. */
    coord_conn *k = coord__client_conn(c);
    size_t total = 0;
    const char *subs[] = {"", "/read", "/write"};
    for (int i = 0; i < 3; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/rwlock/%s%s", coord_client_prefix(c), name, subs[i]);
        coord_kv *kids = NULL;
        size_t n = 0;
        if (k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000))
            fail_msg("list %s: %s", dir, coord_last_error());
        for (size_t j = 0; j < n; j++)
            if (strcmp(kids[j].key, "read") && strcmp(kids[j].key, "write")) total++;
        coord_kv_array_free(kids, n);
    }
    return total;
}

static void await_queued(coord_client *c, const char *name, size_t want) {
    struct timespec nap = {0, 5 * 1000000L};
    for (int64_t end = coord__now_ms() + 10000; queued(c, name) != want && coord__now_ms() < end;)
        nanosleep(&nap, NULL);
    assert_int_equal(queued(c, name), want);
}

/* A reader holds; a writer waits; a reader arriving after the writer waits too (no starvation);
 * arrival order decides. */
static void writer_not_starved(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri), *c = open_same(uri);
    coord_rwlock *la = rw(a, "fair"), *lw = rw(b, "fair"), *lr = rw(c, "fair");
    assert_int_equal(coord_rwlock_rdlock(la, 0), 0);
    taker w = {lw, true, 20000, 1};
    pthread_create(&w.th, NULL, take_main, &w);
    await_queued(a, "fair", 2);
    assert_int_equal(coord_rwlock_rdlock(lr, 0), COORD_ELOCKED); /* behind the writer */
    taker r = {lr, false, 20000, 1};
    pthread_create(&r.th, NULL, take_main, &r);
    await_queued(a, "fair", 3);
    assert_int_equal(coord_rwlock_unlock(la), 0);
    pthread_join(w.th, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(r.rc, 1); /* still waiting for the writer */
    assert_int_equal(coord_rwlock_unlock(lw), 0);
    pthread_join(r.th, NULL);
    assert_int_equal(r.rc, 0);
    /* a cancel ends a wait and leaves nothing */
    taker w2 = {lw, true, -1, 1};
    pthread_create(&w2.th, NULL, take_main, &w2);
    await_queued(a, "fair", 2);
    coord_rwlock_cancel(lw);
    pthread_join(w2.th, NULL);
    assert_int_equal(w2.rc, COORD_ECANCELED);
    await_queued(a, "fair", 1);
    assert_int_equal(coord_rwlock_unlock(lr), 0);
    coord_rwlock_free(lr);
    coord_rwlock_free(lw);
    coord_rwlock_free(la);
    coord_client_close(c);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* ---- invariants under load: 2 clients x 3 threads, every third take a write ---- */

typedef struct shared {
    int readers, writers, most_readers, overlaps, errors;
} shared;

typedef struct worker {
    coord_client *c;
    shared *s;
    int id;
} worker;

static void *load_main(void *arg) {
    worker *w = arg;
    shared *s = w->s;
    coord_rwlock *l;
    if (coord_rwlock_new(&l, w->c, "load")) {
        __atomic_add_fetch(&s->errors, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    for (int i = 0; i < 15; i++) {
        bool write = (i + w->id) % 3 == 0;
        int rc = write ? coord_rwlock_wrlock(l, 30000) : coord_rwlock_rdlock(l, 30000);
        if (rc) {
            print_error("take: %s: %s\n", coord_err_name(rc), coord_last_error());
            __atomic_add_fetch(&s->errors, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        if (write) {
            if (__atomic_add_fetch(&s->writers, 1, __ATOMIC_SEQ_CST) != 1 ||
                __atomic_load_n(&s->readers, __ATOMIC_SEQ_CST) != 0)
                __atomic_add_fetch(&s->overlaps, 1, __ATOMIC_SEQ_CST);
        } else {
            int r = __atomic_add_fetch(&s->readers, 1, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&s->writers, __ATOMIC_SEQ_CST) != 0)
                __atomic_add_fetch(&s->overlaps, 1, __ATOMIC_SEQ_CST);
            int most = __atomic_load_n(&s->most_readers, __ATOMIC_SEQ_CST);
            while (r > most && !__atomic_compare_exchange_n(&s->most_readers, &most, r, false,
                                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                ;
        }
        struct timespec hold = {0, 10 * 1000000L};
        nanosleep(&hold, NULL);
        if (write)
            __atomic_sub_fetch(&s->writers, 1, __ATOMIC_SEQ_CST);
        else
            __atomic_sub_fetch(&s->readers, 1, __ATOMIC_SEQ_CST);
        if (coord_rwlock_unlock(l)) __atomic_add_fetch(&s->errors, 1, __ATOMIC_SEQ_CST);
    }
    coord_rwlock_free(l);
    return NULL;
}

static void invariants_under_load(void **state) {
    char *uri;
    coord_client *c[2];
    c[0] = coord_test_open(state, NULL, NULL, &uri);
    c[1] = open_same(uri);
    shared s = {0};
    worker w[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (worker){c[i % 2], &s, i};
        pthread_create(&th[i], NULL, load_main, &w[i]);
    }
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    print_message("    90 takes, at most %d readers at once, %d overlaps\n", s.most_readers,
                  s.overlaps);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.overlaps, 0);
    assert_true(s.most_readers >= 2); /* readers did share */
    assert_int_equal(queued(c[0], "load"), 0);
    coord_client_close(c[1]);
    coord_client_close(c[0]);
    free(uri);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COORD_CONFORMANCE(basics),
        COORD_CONFORMANCE(writer_not_starved),
        COORD_CONFORMANCE(invariants_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
