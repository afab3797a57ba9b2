/*
 * Key-value space, transactions and watches: one body, built twice: against real servers (both
 * backends, tests/conformance) and, with COORD_TEST_FAKE, against the fake backend through the
 * fault shim (tests/unit), where lost answers and compaction are injected.
 */
#include "dual.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void get_is(coord_client *c, const char *key, const char *want, int64_t version) {
    void *v = NULL;
    size_t len = 0;
    int64_t ver = -5;
    int rc = coord_kv_get(c, key, &v, &len, &ver);
    if (!want) {
        assert_int_equal(rc, COORD_ENOTFOUND);
        assert_null(v);
        assert_int_equal(ver, 0);
        return;
    }
    if (rc) fail_msg("get %s: %s", key, coord_last_error());
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    assert_int_equal(((char *)v)[len], 0);
    if (version) assert_int_equal(ver, version);
    free(v);
}

static void list_is(coord_client *c, const char *prefix, const char *const *want, size_t n) {
    char **keys = NULL;
    size_t got = 0;
    if (coord_kv_list(c, prefix, &keys, &got)) fail_msg("list %s: %s", prefix, coord_last_error());
    if (got != n) {
        for (size_t i = 0; i < got; i++)
            print_message("  listed %s\n", keys[i]);
        fail_msg("list \"%s\": %zu names, expected %zu", prefix, got, n);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(keys[i], want[i]);
    coord_strings_free(keys, got);
}

static void kv_basic(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    int64_t v1 = 0, v2 = 0, v3 = 0;
    get_is(c, "k", NULL, 0);
    assert_int_equal(coord_kv_delete(c, "k", -1), COORD_ENOTFOUND);
    assert_int_equal(coord_kv_put(c, "k", "one", 3, 0, &v1), 0);
    assert_true(v1 > 0);
    get_is(c, "k", "one", v1);
    assert_int_equal(coord_kv_put(c, "k", "x", 1, 0, NULL), COORD_ECONFLICT); /* not absent */
    assert_int_equal(coord_kv_put(c, "k", "two", 3, v1, &v2), 0);
    assert_true(v2 > v1);
    assert_int_equal(coord_kv_put(c, "k", "x", 1, v1, NULL), COORD_ECONFLICT); /* stale */
    get_is(c, "k", "two", v2);
    assert_int_equal(coord_kv_put(c, "k", NULL, 0, -1, &v3), 0); /* empty is a value */
    assert_true(v3 > v2);
    get_is(c, "k", "", v3);
    assert_int_equal(coord_kv_delete(c, "k", v2), COORD_ECONFLICT);
    assert_int_equal(coord_kv_delete(c, "k", v3), 0);
    get_is(c, "k", NULL, 0);
    assert_int_equal(coord_kv_delete(c, "k", -1), COORD_ENOTFOUND);
    assert_int_equal(coord_kv_put(c, "k", "x", 1, v3, NULL), COORD_ECONFLICT); /* absent now */
    assert_int_equal(coord_kv_put(c, "k", "back", 4, -1, &v1), 0);
    get_is(c, "k", "back", v1);
    coord_client_close(c);
}

static void kv_tree(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    static const char *const none[] = {NULL};
    list_is(c, "", none, 0);
    assert_int_equal(coord_kv_put(c, "a/b/c", "abc", 3, -1, NULL), 0);
    get_is(c, "a", NULL, 0); /* a parent only: never put */
    get_is(c, "a/b", NULL, 0);
    assert_int_equal(coord_kv_delete(c, "a/b", -1), COORD_ENOTFOUND);
    get_is(c, "a/b/c", "abc", 0);
    static const char *const top_a[] = {"a"};
    list_is(c, "", top_a, 1);
    static const char *const b[] = {"b"};
    list_is(c, "a", b, 1);
    int64_t va = 0;
    assert_int_equal(coord_kv_put(c, "a", "A", 1, 0, &va), 0); /* over its children */
    get_is(c, "a", "A", va);
    assert_int_equal(coord_kv_delete(c, "a", -1), 0); /* leaves a/b/c */
    get_is(c, "a", NULL, 0);
    get_is(c, "a/b/c", "abc", 0);
    list_is(c, "a", b, 1);
    assert_int_equal(coord_kv_put(c, "a", "again", 5, 0, NULL), 0);
    get_is(c, "a", "again", 0);
    assert_int_equal(coord_kv_put(c, "y/z", "", 0, -1, NULL), 0);
    assert_int_equal(coord_kv_put(c, "x", "x", 1, -1, NULL), 0);
    static const char *const top[] = {"a", "x", "y"};
    list_is(c, "", top, 3);
    static const char *const c_[] = {"c"};
    list_is(c, "a/b", c_, 1);
    list_is(c, "nothing/here", none, 0);
    coord_client_close(c);
}

static void kv_bad_input(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    static const char *const bad[] = {"", "/a", "a/", "a//b", ".", "a/..", "a/\x01", "../x"};
    void *v = NULL;
    size_t len;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(coord_kv_get(c, bad[i], &v, &len, NULL), COORD_EINVAL);
        assert_int_equal(coord_kv_put(c, bad[i], "x", 1, -1, NULL), COORD_EINVAL);
        assert_int_equal(coord_kv_delete(c, bad[i], -1), COORD_EINVAL);
    }
    char seg[300];
    memset(seg, 'x', sizeof seg - 1);
    seg[sizeof seg - 1] = 0;
    assert_int_equal(coord_kv_put(c, seg, "x", 1, -1, NULL), COORD_EINVAL);
    assert_int_equal(coord_kv_get(c, NULL, &v, &len, NULL), COORD_EINVAL);
    assert_int_equal(coord_kv_get(c, "k", NULL, &len, NULL), COORD_EINVAL);
    assert_int_equal(coord_kv_put(NULL, "k", "x", 1, -1, NULL), COORD_EINVAL);
    assert_int_equal(coord_kv_put(c, "k", NULL, 1, -1, NULL), COORD_EINVAL);
    assert_int_equal(coord_kv_put(c, "k", "x", 1, -2, NULL), COORD_EINVAL);
    assert_int_equal(coord_kv_delete(c, "k", 0), COORD_EINVAL);
    char **keys;
    size_t n;
    assert_int_equal(coord_kv_list(c, "a/", &keys, &n), COORD_EINVAL);
    assert_int_equal(coord_kv_list(c, NULL, &keys, &n), COORD_EINVAL);
    unsigned char *big = calloc(1, COORD_VALUE_MAX + 1);
    assert_int_equal(coord_kv_put(c, "k", big, COORD_VALUE_MAX + 1, -1, NULL), COORD_EINVAL);
    assert_non_null(strstr(coord_last_error(), "exceeds"));
    coord_txn *t;
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_commit(t), COORD_EINVAL); /* empty */
    assert_int_equal(coord_txn_put(t, "k", big, COORD_VALUE_MAX + 1), COORD_EINVAL);
    assert_int_equal(coord_txn_put(t, "k", "1", 1), 0);
    assert_int_equal(coord_txn_delete(t, "k"), COORD_EINVAL); /* written twice */
    assert_int_equal(coord_txn_check(t, "k", -1), COORD_EINVAL);
    for (int i = 1; i < COORD_TXN_MAX; i++)
        assert_int_equal(coord_txn_check(t, "k", 0), 0);
    assert_int_equal(coord_txn_check(t, "k", 0), COORD_EINVAL); /* the 65th */
    assert_int_equal(coord_txn_put(t, "/bad", "1", 1), COORD_EINVAL);
    coord_txn_free(t);
    free(big);
#ifdef COORD_TEST_FAKE
    /* None of the above reached the server. */
    assert_int_equal(fake_calls(c, SLOT_TXN) + fake_calls(c, SLOT_KV_GET), 0);
#endif
    get_is(c, "k", NULL, 0);
    coord_client_close(c);
}

static void kv_big_value(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    unsigned char *big = malloc(COORD_VALUE_MAX);
    for (size_t i = 0; i < COORD_VALUE_MAX; i++)
        big[i] = (unsigned char)(i * 131 + (i >> 9));
    assert_int_equal(coord_kv_put(c, "big", big, COORD_VALUE_MAX, 0, NULL), 0);
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(coord_kv_get(c, "big", &v, &len, NULL), 0);
    assert_int_equal(len, COORD_VALUE_MAX);
    assert_memory_equal(v, big, len);
    free(v);
    coord_txn *t;
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_put(t, "big2", big, COORD_VALUE_MAX), 0);
    assert_int_equal(coord_txn_put(t, "one-more", "x", 1), COORD_EINVAL); /* over the total */
    assert_int_equal(coord_txn_put(t, "empty", "", 0), 0);
    assert_int_equal(coord_txn_commit(t), 0);
    coord_txn_free(t);
    free(big);
    coord_client_close(c);
}

static void txn_basic(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    int64_t va = 0;
    assert_int_equal(coord_kv_put(c, "a", "1", 1, 0, &va), 0);
    coord_txn *t;
    /* All applied: a check, two puts (one creating a deep key), a delete. */
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_check(t, "a", va), 0);
    assert_int_equal(coord_txn_check(t, "b", 0), 0);
    assert_int_equal(coord_txn_put(t, "b", "2", 1), 0);
    assert_int_equal(coord_txn_put(t, "d/e", "3", 1), 0);
    assert_int_equal(coord_txn_delete(t, "a"), 0);
    assert_int_equal(coord_txn_commit(t), 0);
    int64_t vb = coord_txn_version(t, 2), vde = coord_txn_version(t, 3);
    assert_true(vb > 0 && vde > 0);
    assert_int_equal(coord_txn_version(t, 0), 0);
    coord_txn_free(t);
    get_is(c, "a", NULL, 0);
    get_is(c, "b", "2", vb);
    get_is(c, "d/e", "3", vde);
    /* None applied: the failed check is named. */
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_put(t, "x", "x", 1), 0);
    assert_int_equal(coord_txn_check(t, "b", vb + 1000), 0);
    assert_int_equal(coord_txn_delete(t, "d/e"), 0);
    assert_int_equal(coord_txn_commit(t), COORD_ECONFLICT);
    assert_non_null(strstr(coord_last_error(), "/kv/b"));
    coord_txn_free(t);
    get_is(c, "x", NULL, 0);
    get_is(c, "d/e", "3", vde);
    /* A delete of an absent key fails the whole transaction. */
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_put(t, "x", "x", 1), 0);
    assert_int_equal(coord_txn_delete(t, "nope"), 0);
    assert_int_equal(coord_txn_commit(t), COORD_ECONFLICT);
    assert_non_null(strstr(coord_last_error(), "/kv/nope"));
    coord_txn_free(t);
    get_is(c, "x", NULL, 0);
    /* A check that a key is absent fails once it exists; checks see the state before. */
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_check(t, "b", 0), 0);
    assert_int_equal(coord_txn_put(t, "x", "x", 1), 0);
    assert_int_equal(coord_txn_commit(t), COORD_ECONFLICT);
    coord_txn_free(t);
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_check(t, "x", 0), 0);
    assert_int_equal(coord_txn_put(t, "x", "x", 1), 0);
    assert_int_equal(coord_txn_check(t, "d", 0), 0); /* a parent only: absent */
    assert_int_equal(coord_txn_commit(t), 0);
    assert_int_equal(coord_txn_commit(t), COORD_ECONFLICT); /* x exists now */
    coord_txn_free(t);
    get_is(c, "x", "x", 0);
    get_is(c, "d/e", "3", vde);
    coord_client_close(c);
}

static void txn_guard(void **state) {
    char *uri;
    coord_client *a = OPEN(state, NULL, &uri);
    coord_client *b = OPEN_URI(uri);
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "owner"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "owner"), 0);
    coord_txn *t;
    assert_int_equal(coord_txn_new(&t, a), 0);
    assert_int_equal(coord_txn_guard(t, lb), COORD_EINVAL); /* another client's lock */
    assert_int_equal(coord_txn_guard(t, la), 0);
    assert_int_equal(coord_txn_guard(t, la), COORD_EINVAL); /* one guard */
    assert_int_equal(coord_txn_put(t, "data", "a1", 2), 0);
    assert_int_equal(coord_txn_commit(t), COORD_ENOTHELD); /* not acquired */
    assert_int_equal(coord_lock_acquire(la, 5000), 0);
    assert_int_equal(coord_txn_commit(t), 0);
    get_is(b, "data", "a1", 0);
    /* The holder's entry goes (an operator, a lease revoked) while the handle still thinks it
     * holds the lock; b takes over. a's fenced write is refused. */
    coord_conn *k = coord__client_conn(b);
    char *dir = NULL;
    assert_true(asprintf(&dir, "%s/lock/owner", coord_client_prefix(b)) > 0);
    coord_kv *kids = NULL;
    size_t n = 0;
    assert_int_equal(k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 5000), 0);
    assert_int_equal(n, 1);
    char *entry = NULL;
    assert_true(asprintf(&entry, "%s/%s", dir, kids[0].key) > 0);
    coord_kv_array_free(kids, n);
    assert_int_equal(k->backend->del(k, entry, COORD_VERSION_ANY, 5000), 0);
    assert_int_equal(coord_lock_acquire(lb, 5000), 0);
    coord_txn *tb;
    assert_int_equal(coord_txn_new(&tb, b), 0);
    assert_int_equal(coord_txn_guard(tb, lb), 0);
    assert_int_equal(coord_txn_put(tb, "data", "b1", 2), 0);
    assert_int_equal(coord_txn_commit(tb), 0);
    coord_txn_free(tb);
    assert_int_equal(coord_txn_commit(t), COORD_ECONFLICT);
    assert_non_null(strstr(coord_last_error(), "lock"));
    get_is(a, "data", "b1", 0);
    coord_txn_free(t);
    /* A guard alone (no other operation) asks whether the lock still holds. */
    assert_int_equal(coord_txn_new(&t, b), 0);
    assert_int_equal(coord_txn_guard(t, lb), 0);
    assert_int_equal(coord_txn_commit(t), 0);
    coord_txn_free(t);
    free(entry);
    free(dir);
    free(uri);
    coord_lock_free(la);
    coord_lock_free(lb);
    coord_client_close(b);
    coord_client_close(a);
}

/* ---- watches ---- */

#define REC_MAX 256
typedef struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    char value[REC_MAX][16]; /* "-" for absent */
    int64_t version[REC_MAX];
} rec;

static void rec_fn(const char *key, const void *value, size_t len, int64_t version, void *payload) {
    rec *r = payload;
    assert_string_equal(key, "w/k");
    pthread_mutex_lock(&r->mu);
    if (r->n < REC_MAX) {
        if (value)
            snprintf(r->value[r->n], sizeof r->value[r->n], "%.*s", (int)(len < 15 ? len : 15),
                     (const char *)value);
        else
            snprintf(r->value[r->n], sizeof r->value[r->n], "-");
        r->version[r->n] = version;
        r->n++;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Wait until the latest report is `want`; its index. */
static int rec_wait(rec *r, const char *want) {
    int64_t deadline = coord__now_ms() + 10000;
    pthread_mutex_lock(&r->mu);
    while (!(r->n && !strcmp(r->value[r->n - 1], want)) && coord__now_ms() < deadline) {
        struct timespec dl = coord__deadline(50);
        pthread_cond_timedwait(&r->cv, &r->mu, &dl);
    }
    int at = r->n && !strcmp(r->value[r->n - 1], want) ? r->n - 1 : -1;
    pthread_mutex_unlock(&r->mu);
    if (at < 0) fail_msg("the watch did not report \"%s\" within 10 s", want);
    return at;
}

/* Wait until there are `n` reports; their number. */
static int rec_wait_n(rec *r, int n) {
    int64_t deadline = coord__now_ms() + 10000;
    pthread_mutex_lock(&r->mu);
    while (r->n < n && coord__now_ms() < deadline) {
        struct timespec dl = coord__deadline(50);
        pthread_cond_timedwait(&r->cv, &r->mu, &dl);
    }
    int got = r->n;
    pthread_mutex_unlock(&r->mu);
    if (got < n) fail_msg("the watch made %d reports within 10 s, expected %d", got, n);
    return got - 1;
}

static void kv_watch(void **state) {
    coord_test_states st;
    coord_test_states_init(&st);
    coord_client *c = OPEN(state, &st, NULL);
    rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    coord__cond_init(&r.cv);
    coord_kv_watch *w;
    assert_int_equal(coord_kv_watch_new(&w, c, "/bad", rec_fn, &r), COORD_EINVAL);
    assert_int_equal(coord_kv_watch_new(&w, c, "w/k", NULL, &r), COORD_EINVAL);
    assert_int_equal(coord_kv_watch_new(&w, c, "w/k", rec_fn, &r), 0);
    assert_int_equal(rec_wait(&r, "-"), 0); /* absent at first */
    int64_t v1 = 0;
    assert_int_equal(coord_kv_put(c, "w/k", "v1", 2, 0, &v1), 0);
    int at = rec_wait(&r, "v1");
    assert_int_equal(r.version[at], v1);
    assert_int_equal(coord_kv_delete(c, "w/k", -1), 0);
    rec_wait(&r, "-");
    /* A burst: the reports are in order, may skip, and end with the last value. */
    char val[16];
    for (int i = 0; i < 40; i++) {
        snprintf(val, sizeof val, "n%d", i);
        assert_int_equal(coord_kv_put(c, "w/k", val, strlen(val), -1, NULL), 0);
    }
    at = rec_wait(&r, "n39");
    pthread_mutex_lock(&r.mu);
    for (int i = 1; i < r.n; i++)
        if (r.version[i] != 0 && r.version[i - 1] != 0)
            assert_true(r.version[i] > r.version[i - 1]);
    int before = r.n;
    pthread_mutex_unlock(&r.mu);
    /* A sibling's or a deeper key's change is not this key's. */
    assert_int_equal(coord_kv_put(c, "w/k2", "x", 1, -1, NULL), 0);
    assert_int_equal(coord_kv_put(c, "w/k/deeper", "x", 1, -1, NULL), 0);
    assert_int_equal(coord_kv_put(c, "w/k", "last", 4, -1, NULL), 0);
    at = rec_wait(&r, "last");
    assert_int_equal(at, before);
    /* A replaced session: the current value is reported again. */
    coord_conn *k = coord__client_conn(c);
    assert_int_equal(k->backend->expire(k), 0);
    int lost = coord_test_states_wait(&st, COORD_SESSION_LOST, 0, 20000);
    assert_true(lost >= 0);
    assert_true(coord_test_states_wait(&st, COORD_SESSION_CONNECTED, lost + 1, 20000) > lost);
    rec_wait_n(&r, before + 2);
    pthread_mutex_lock(&r.mu);
    assert_string_equal(r.value[r.n - 1], "last");
    pthread_mutex_unlock(&r.mu);
    coord_kv_watch_free(w);
    coord_client_close(c);
    pthread_cond_destroy(&r.cv);
}

#ifdef COORD_TEST_FAKE
/* ---- faults (fake backend only) ---- */

/* A write whose answer is lost may have applied: the caller learns it by reading. */
static void kv_lost_answers(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    fault_once(c, SLOT_TXN, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_kv_put(c, "k", "applied", 7, 0, NULL), COORD_ETIMEDOUT);
    get_is(c, "k", "applied", 0);
    fault_once(c, SLOT_TXN, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_kv_put(c, "k", "lost", 4, -1, NULL), COORD_EUNAVAILABLE);
    get_is(c, "k", "applied", 0);
    coord_txn *t;
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_put(t, "a", "1", 1), 0);
    assert_int_equal(coord_txn_delete(t, "k"), 0);
    fault_once(c, SLOT_TXN, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    fake_calls_reset(c);
    assert_int_equal(coord_txn_commit(t), COORD_ETIMEDOUT);
    assert_int_equal(fake_calls(c, SLOT_TXN), 1); /* not sent again by itself */
    get_is(c, "a", "1", 0);
    get_is(c, "k", NULL, 0);
    assert_int_equal(coord_txn_commit(t), COORD_ECONFLICT); /* k is gone: all or nothing */
    coord_txn_free(t);
    /* A delete whose answer is lost, then again: ENOTFOUND tells it applied. */
    fault_once(c, SLOT_TXN, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_kv_delete(c, "a", -1), COORD_ETIMEDOUT);
    assert_int_equal(coord_kv_delete(c, "a", -1), COORD_ENOTFOUND);
    coord_client_close(c);
}

/* A watch whose reads fail for a while, whose history is compacted, and whose key changes
 * between an event and the read that follows it. */
static void kv_watch_faults(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    rec r = {.mu = PTHREAD_MUTEX_INITIALIZER};
    coord__cond_init(&r.cv);
    assert_int_equal(coord_kv_put(c, "w/k", "v0", 2, -1, NULL), 0);
    /* The first reads fail: the watch keeps trying until one answers. */
    fault_rule fr = {.slot = SLOT_KV_GET, .nth = 1, .count = 3, .code = COORD_EUNAVAILABLE};
    fault_add(c, &fr);
    coord_kv_watch *w;
    assert_int_equal(coord_kv_watch_new(&w, c, "w/k", rec_fn, &r), 0);
    assert_int_equal(rec_wait(&r, "v0"), 0);
    /* Compaction: the current value again, though it did not change. */
    fake_compact(c);
    assert_int_equal(rec_wait_n(&r, 2), 1);
    assert_string_equal(r.value[1], "v0");
    /* The read after an event is slow; two changes land meanwhile: the last one is reported,
     * and nothing older after it. */
    fault_rule slow = {.slot = SLOT_KV_GET, .nth = 1, .count = 1, .delay_ms = 300};
    fault_add(c, &slow);
    assert_int_equal(coord_kv_put(c, "w/k", "v1", 2, -1, NULL), 0);
    assert_int_equal(coord_kv_put(c, "w/k", "v2", 2, -1, NULL), 0);
    assert_int_equal(coord_kv_put(c, "w/k", "v3", 2, -1, NULL), 0);
    int at = rec_wait(&r, "v3");
    assert_true(at >= 2 && at <= 4);
    assert_int_equal(fake_sync(c, 2000), 0);
    pthread_mutex_lock(&r.mu);
    assert_int_equal(r.n, at + 1); /* nothing after the latest value */
    pthread_mutex_unlock(&r.mu);
    coord_kv_watch_free(w);
    coord_client_close(c);
    pthread_cond_destroy(&r.cv);
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        BOTH(kv_basic),        BOTH(kv_tree),         BOTH(kv_bad_input), BOTH(kv_big_value),
        BOTH(txn_basic),       BOTH(txn_guard),       BOTH(kv_watch),
#ifdef COORD_TEST_FAKE
        BOTH(kv_lost_answers), BOTH(kv_watch_faults),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
