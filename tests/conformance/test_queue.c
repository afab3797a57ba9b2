/*
 * Work queue: one body, built twice (dual.h): against real servers (both backends) and, with
 * COORD_TEST_FAKE, against the fake backend, where lost answers on put, claim and ack are
 * injected.
 */
#include "dual.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *under(coord_client *c, const char *what) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", coord_client_prefix(c), what) < 0) fail_msg("out of memory");
    return p;
}

/* Entries under `dir` (a full path), through the backend. */
static size_t entries(coord_client *c, const char *dir) {
    coord_conn *k = coord__client_conn(c);
    coord_kv *kids = NULL;
    size_t n = 0;
    if (k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 5000))
        fail_msg("list %s: %s", dir, coord_last_error());
    coord_kv_array_free(kids, n);
    return n;
}

/* Wait (bounded) until `dir` has `n` entries. */
static void await_entries(coord_client *c, const char *dir, size_t n) {
    int64_t deadline = coord__now_ms() + 10000;
    size_t got;
    while ((got = entries(c, dir)) != n && coord__now_ms() < deadline) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL); /* polling the server's state: there is no event to wait on */
    }
    if (got != n) fail_msg("%s has %zu entries, expected %zu", dir, got, n);
}

static void take_is(coord_queue *q, const char *want) {
    void *d = NULL;
    size_t len = 0;
    int rc = coord_queue_take(q, &d, &len, 0);
    if (rc) fail_msg("take: %s", coord_last_error());
    assert_int_equal(len, strlen(want));
    assert_memory_equal(d, want, len);
    free(d);
}

static coord_item *claim_is(coord_queue *q, const char *want) {
    coord_item *it = NULL;
    int rc = coord_queue_claim(q, &it, 0);
    if (rc) fail_msg("claim: %s", coord_last_error());
    size_t len = 0;
    const void *d = coord_item_data(it, &len);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(d, want, len);
    return it;
}

static size_t size_of(coord_queue *q) {
    size_t n = 99;
    assert_int_equal(coord_queue_size(q, &n), 0);
    return n;
}

static void queue_fifo(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    coord_queue *q;
    assert_int_equal(coord_queue_new(&q, c, "jobs"), 0);
    assert_int_equal(size_of(q), 0);
    void *d;
    size_t len;
    assert_int_equal(coord_queue_take(q, &d, &len, 0), COORD_ENOTFOUND);
    assert_int_equal(coord_queue_take(q, &d, &len, 100), COORD_ETIMEDOUT);
    coord_item *it;
    assert_int_equal(coord_queue_claim(q, &it, 0), COORD_ENOTFOUND);
    char v[16];
    for (int i = 0; i < 5; i++) {
        snprintf(v, sizeof v, "job%d", i);
        assert_int_equal(coord_queue_put(q, v, strlen(v)), 0);
    }
    assert_int_equal(coord_queue_put(q, NULL, 0), 0); /* an empty item */
    assert_int_equal(size_of(q), 6);
    for (int i = 0; i < 5; i++) {
        snprintf(v, sizeof v, "job%d", i);
        take_is(q, v);
    }
    take_is(q, "");
    assert_int_equal(size_of(q), 0);
    /* The layout other tools read: ZooKeeper's qn- items (etcd: time-named keys). */
    assert_int_equal(coord_queue_put(q, "x", 1), 0);
    coord_conn *k = coord__client_conn(c);
    char *dir = under(c, "queue/jobs");
    coord_kv *kids = NULL;
    size_t n = 0;
    assert_int_equal(k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 5000), 0);
    assert_int_equal(n, 1);
    if (k->backend->caps & COORD_CAP_SEQUENTIAL)
        assert_int_equal(strncmp(kids[0].key, "qn-", 3), 0);
    else
        assert_true(strspn(kids[0].key, "0123456789") == strlen(kids[0].key));
    coord_kv_array_free(kids, n);
    free(dir);
    coord_queue_free(q);
    coord_client_close(c);
}

static void queue_claims(void **state) {
    char *uri;
    coord_client *a = OPEN(state, NULL, &uri);
    coord_client *b = OPEN_URI(uri);
    coord_queue *qa, *qb;
    assert_int_equal(coord_queue_new(&qa, a, "jobs"), 0);
    assert_int_equal(coord_queue_new(&qb, b, "jobs"), 0);
    assert_int_equal(coord_queue_put(qa, "a", 1), 0);
    assert_int_equal(coord_queue_put(qa, "b", 1), 0);
    assert_int_equal(coord_queue_put(qa, "c", 1), 0);
    coord_item *ia = claim_is(qa, "a");
    assert_int_equal(size_of(qb), 2); /* claimed items are not counted */
    coord_item *ib = claim_is(qb, "b");
    take_is(qb, "c"); /* a take skips claimed items */
    void *d;
    size_t len;
    assert_int_equal(coord_queue_take(qb, &d, &len, 0), COORD_ENOTFOUND);
    /* Given back: at its place, the head. */
    assert_int_equal(coord_item_nack(ia), 0);
    assert_int_equal(size_of(qb), 1);
    ia = claim_is(qb, "a");
    assert_int_equal(coord_item_ack(ia), 0);
    assert_int_equal(coord_item_ack(ib), 0);
    assert_int_equal(size_of(qa), 0);
    char *claims = under(a, "queue-claims/jobs"), *items = under(a, "queue/jobs");
    assert_int_equal(entries(a, claims), 0);
    assert_int_equal(entries(a, items), 0);
    /* A claimer whose session ends gives the item back at its place; its ack then fails. */
    assert_int_equal(coord_queue_put(qa, "d", 1), 0);
    assert_int_equal(coord_queue_put(qa, "e", 1), 0);
    coord_item *id = claim_is(qa, "d");
    coord_conn *k = coord__client_conn(a);
    assert_int_equal(k->backend->expire(k), 0);
    await_entries(b, claims, 0);
    /* Back for the claimer's own client too, though its item handle still lives. */
    coord_queue *qa2;
    assert_int_equal(coord_queue_new(&qa2, a, "jobs"), 0);
    coord_item *local = NULL;
    int rc = COORD_ESESSION;
    for (int i = 0; i < 100 && (rc == COORD_ESESSION || rc == COORD_EUNAVAILABLE); i++)
        if ((rc = coord_queue_claim(qa2, &local, 0)) == COORD_ESESSION ||
            rc == COORD_EUNAVAILABLE) {
            struct timespec ts = {0, 20000000}; /* the new session is on its way */
            nanosleep(&ts, NULL);
        }
    if (rc) fail_msg("claim on the claimer's client: %s", coord_last_error());
    size_t llen = 0;
    const void *ld = coord_item_data(local, &llen);
    assert_int_equal(llen, 1);
    assert_memory_equal(ld, "d", 1);
    assert_int_equal(coord_item_nack(local), 0);
    coord_queue_free(qa2);
    coord_item *again = claim_is(qb, "d");
    assert_int_equal(coord_item_ack(id), COORD_ESESSION);
    assert_int_equal(size_of(qb), 1);
    assert_int_equal(coord_item_ack(again), 0);
    take_is(qb, "e");
    assert_int_equal(coord_item_ack(NULL), COORD_EINVAL);
    assert_int_equal(coord_item_nack(NULL), COORD_EINVAL);
    free(claims);
    free(items);
    free(uri);
    coord_queue_free(qa);
    coord_queue_free(qb);
    coord_client_close(b);
    coord_client_close(a);
}

typedef struct taker {
    coord_queue *q;
    bool claim;
    int timeout_ms;
    _Atomic int rc; /* 1 while waiting */
    char got[16];
    pthread_t th;
} taker;

static void *taker_main(void *arg) {
    taker *t = arg;
    void *d = NULL;
    size_t len = 0;
    int rc;
    if (t->claim) {
        coord_item *it = NULL;
        rc = coord_queue_claim(t->q, &it, t->timeout_ms);
        if (!rc) {
            const void *p = coord_item_data(it, &len);
            snprintf(t->got, sizeof t->got, "%.*s", (int)len, (const char *)p);
            rc = coord_item_ack(it);
        }
    } else {
        rc = coord_queue_take(t->q, &d, &len, t->timeout_ms);
        if (!rc) snprintf(t->got, sizeof t->got, "%.*s", (int)len, (const char *)d);
        free(d);
    }
    atomic_store(&t->rc, rc);
    return NULL;
}

static void await_done(taker *t) {
    int64_t deadline = coord__now_ms() + 10000;
    while (atomic_load(&t->rc) == 1 && coord__now_ms() < deadline) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    assert_int_not_equal(atomic_load(&t->rc), 1);
    pthread_join(t->th, NULL);
}

typedef struct local_consumer {
    coord_client *c;
    bool claim;
    _Atomic int *seen; /* per item */
    int got, bad;
    pthread_t th;
} local_consumer;

static void *local_consumer_main(void *arg) {
    local_consumer *lc = arg;
    coord_queue *q = NULL;
    if (coord_queue_new(&q, lc->c, "local")) {
        lc->bad++;
        return NULL;
    }
    for (;;) {
        void *d = NULL;
        size_t len = 0;
        coord_item *it = NULL;
        int rc = lc->claim ? coord_queue_claim(q, &it, 0) : coord_queue_take(q, &d, &len, 0);
        if (rc == COORD_ENOTFOUND) break;
        if (rc) {
            lc->bad++;
            break;
        }
        const void *p = it ? coord_item_data(it, &len) : d;
        char v[16];
        snprintf(v, sizeof v, "%.*s", (int)len, (const char *)p);
        int i = atoi(v);
        if (i < 0 || i >= 60 || atomic_fetch_add(&lc->seen[i], 1)) lc->bad++;
        lc->got++;
        if (it && coord_item_ack(it)) lc->bad++;
        free(d);
    }
    coord_queue_free(q);
    return NULL;
}

/* Four consumers of one client, each with a handle of its own, share 60 items without racing
 * each other for one: one try an item, none lost (workqueue.c, "trying"). Takes, then claims. */
static void queue_local_consumers(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    coord_queue *q;
    assert_int_equal(coord_queue_new(&q, c, "local"), 0);
    for (int round = 0; round < 2; round++) {
        char v[16];
        for (int i = 0; i < 60; i++) {
            snprintf(v, sizeof v, "%d", i);
            assert_int_equal(coord_queue_put(q, v, strlen(v)), 0);
        }
        _Atomic int seen[60];
        for (int i = 0; i < 60; i++)
            atomic_init(&seen[i], 0);
        local_consumer lc[4];
        uint64_t t0 = coord__queue_tries();
        for (int i = 0; i < 4; i++) {
            lc[i] = (local_consumer){.c = c, .claim = round == 1, .seen = seen};
            assert_int_equal(pthread_create(&lc[i].th, NULL, local_consumer_main, &lc[i]), 0);
        }
        int got = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(lc[i].th, NULL);
            assert_int_equal(lc[i].bad, 0);
            got += lc[i].got;
        }
        assert_int_equal(got, 60); /* each item once (seen[] counts) */
        uint64_t n = coord__queue_tries() - t0;
        print_message("    %s: %llu tries for 60 items\n", round ? "claim" : "take",
                      (unsigned long long)n);
        assert_int_equal(n, 60);
        assert_int_equal(size_of(q), 0);
    }
    coord_queue_free(q);
    coord_client_close(c);
}

/* Waiting takers and claimers are served one per item, in the order they came. */
static void queue_waiters(void **state) {
    char *uri;
    coord_client *a = OPEN(state, NULL, &uri);
    coord_client *b = OPEN_URI(uri);
    char *waiters = under(a, "queue-waiters/jobs");
    taker t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (taker){.claim = i == 1, .timeout_ms = 20000};
        atomic_store(&t[i].rc, 1);
        assert_int_equal(coord_queue_new(&t[i].q, i % 2 ? b : a, "jobs"), 0);
        pthread_create(&t[i].th, NULL, taker_main, &t[i]);
        await_entries(a, waiters, (size_t)i + 1); /* in this order */
    }
    coord_queue *p;
    assert_int_equal(coord_queue_new(&p, a, "jobs"), 0);
    assert_int_equal(coord_queue_put(p, "one", 3), 0);
    await_done(&t[0]);
    assert_int_equal(atomic_load(&t[0].rc), 0);
    assert_string_equal(t[0].got, "one");
    assert_int_equal(atomic_load(&t[1].rc), 1); /* one item, one taker */
    assert_int_equal(atomic_load(&t[2].rc), 1);
    assert_int_equal(coord_queue_put(p, "two", 3), 0);
    await_done(&t[1]);
    assert_string_equal(t[1].got, "two");
    assert_int_equal(atomic_load(&t[1].rc), 0);
    assert_int_equal(atomic_load(&t[2].rc), 1);
    assert_int_equal(coord_queue_put(p, "three", 5), 0);
    await_done(&t[2]);
    assert_string_equal(t[2].got, "three");
    await_entries(a, waiters, 0);
    /* A claim given back by an ended session wakes a waiter. */
    coord_client *x = OPEN_URI(uri);
    coord_queue *qx;
    assert_int_equal(coord_queue_new(&qx, x, "jobs"), 0);
    assert_int_equal(coord_queue_put(qx, "four", 4), 0);
    coord_item *held = claim_is(qx, "four");
    t[0] = (taker){.q = t[0].q, .claim = true, .timeout_ms = 20000};
    atomic_store(&t[0].rc, 1);
    pthread_create(&t[0].th, NULL, taker_main, &t[0]);
    await_entries(a, waiters, 1);
    coord_conn *k = coord__client_conn(x);
    assert_int_equal(k->backend->expire(k), 0);
    await_done(&t[0]);
    assert_int_equal(atomic_load(&t[0].rc), 0);
    assert_string_equal(t[0].got, "four");
    assert_int_equal(coord_item_ack(held), COORD_ESESSION);
    /* A waiting take canceled from another thread. */
    t[0] = (taker){.q = t[0].q, .timeout_ms = 20000};
    atomic_store(&t[0].rc, 1);
    pthread_create(&t[0].th, NULL, taker_main, &t[0]);
    await_entries(a, waiters, 1);
    coord_queue_cancel(t[0].q);
    await_done(&t[0]);
    assert_int_equal(atomic_load(&t[0].rc), COORD_ECANCELED);
    await_entries(a, waiters, 0);
    coord_queue_cancel(NULL);
    coord_queue_free(qx);
    coord_client_close(x);
    for (int i = 0; i < 3; i++)
        coord_queue_free(t[i].q);
    coord_queue_free(p);
    free(waiters);
    free(uri);
    coord_client_close(b);
    coord_client_close(a);
}

static void queue_bad_input(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    coord_queue *q;
    assert_int_equal(coord_queue_new(NULL, c, "q"), COORD_EINVAL);
    assert_int_equal(coord_queue_new(&q, NULL, "q"), COORD_EINVAL);
    for (size_t i = 0; coord_test_bad_names[i]; i++)
        assert_int_equal(coord_queue_new(&q, c, coord_test_bad_names[i]), COORD_EINVAL);
    assert_int_equal(coord_queue_new(&q, c, "q"), 0);
    assert_int_equal(coord_queue_put(q, NULL, 1), COORD_EINVAL);
    unsigned char *big = calloc(1, COORD_VALUE_MAX + 1);
    assert_int_equal(coord_queue_put(q, big, COORD_VALUE_MAX + 1), COORD_EINVAL);
    free(big);
    void *d;
    size_t len;
    assert_int_equal(coord_queue_take(q, NULL, &len, 0), COORD_EINVAL);
    assert_int_equal(coord_queue_take(q, &d, NULL, 0), COORD_EINVAL);
    assert_int_equal(coord_queue_claim(q, NULL, 0), COORD_EINVAL);
    assert_int_equal(coord_queue_size(q, NULL), COORD_EINVAL);
    assert_null(coord_item_data(NULL, &len));
    assert_int_equal(len, 0);
#ifdef COORD_TEST_FAKE
    uint64_t sent = 0;
    for (int s = 0; s < SLOT_COUNT; s++)
        if (s != SLOT_OPEN && s != SLOT_SESSION) sent += fake_calls(c, (coord_slot)s);
    assert_int_equal(sent, 0);
#endif
    coord_queue_free(q);
    coord_queue_free(NULL);
    coord_client_close(c);
}

#ifdef COORD_TEST_FAKE
/* Lost answers: a claim made but not learnt is given back by the client; an ack whose answer
 * is lost either applied (the item is gone) or not (the claim goes, the item comes back). */
static void queue_lost_answers(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    coord_queue *q;
    assert_int_equal(coord_queue_new(&q, c, "jobs"), 0);
    char *claims = under(c, "queue-claims/jobs/"), *items = under(c, "queue/jobs/");
    fault_once(c, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_queue_put(q, "a", 1), COORD_ETIMEDOUT); /* applied */
    assert_int_equal(fake_count(items), 1);
    fault_once(c, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER); /* the claim's create */
    coord_item *it;
    assert_int_equal(coord_queue_claim(q, &it, 0), COORD_ETIMEDOUT);
    assert_int_equal(fake_await_count(claims, 0, 5000), 0);
    it = claim_is(q, "a");
    fault_once(c, SLOT_TXN, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_item_ack(it), COORD_ETIMEDOUT);
    assert_int_equal(fake_count(items), 0);
    assert_int_equal(fake_await_count(claims, 0, 5000), 0);
    assert_int_equal(coord_queue_put(q, "b", 1), 0);
    it = claim_is(q, "b");
    fault_once(c, SLOT_TXN, 1, COORD_ETIMEDOUT, FAULT_BEFORE);
    assert_int_equal(coord_item_ack(it), COORD_ETIMEDOUT);
    assert_int_equal(fake_await_count(claims, 0, 5000), 0);
    it = claim_is(q, "b"); /* not acked: back */
    assert_int_equal(coord_item_ack(it), 0);
    /* A take whose answer is lost took the item or not; nothing else changes. */
    assert_int_equal(coord_queue_put(q, "c", 1), 0);
    fault_once(c, SLOT_TXN, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    void *d;
    size_t len;
    assert_int_equal(coord_queue_take(q, &d, &len, 0), COORD_EUNAVAILABLE);
    take_is(q, "c");
    /* A server that goes away while a taker waits: it gets the item once it is back. */
    fake_server_down();
    assert_int_equal(coord_queue_take(q, &d, &len, 0), COORD_EUNAVAILABLE);
    fake_server_up();
    free(claims);
    free(items);
    coord_queue_free(q);
    coord_client_close(c);
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        BOTH(queue_fifo),         BOTH(queue_claims),          BOTH(queue_waiters),
        BOTH(queue_bad_input),    BOTH(queue_local_consumers),
#ifdef COORD_TEST_FAKE
        BOTH(queue_lost_answers),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
