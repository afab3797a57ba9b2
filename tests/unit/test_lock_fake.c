/*
 * The lock recipe on the fake backend (no server), both flavours: acquire, try, timeout, cancel,
 * session loss, FIFO order, fencing tokens, release, and the paths where the backend fails
 * (before or after applying a call, transiently or for good), including a release cut off by a
 * dead server, which must strand nothing (the client deletes the contender once a server is back).
 */
#include "testing.h"
#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The lock's directory on the server, "<prefix>/lock/<name>/" (a prefix for fake_count). */
static char *dir_of(coord_client *c, const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/lock/%s/", coord_client_prefix(c), name) < 0) fail_msg("out of memory");
    return p;
}

/* An acquire on its own thread. */
typedef struct waiter {
    coord_lock *l;
    int timeout_ms;
    int rc;
    int64_t done_at;
    pthread_t th;
} waiter;

static void *wait_main(void *arg) {
    waiter *w = arg;
    w->rc = coord_lock_acquire(w->l, w->timeout_ms);
    w->done_at = coord__now_ms();
    return NULL;
}

static void start(waiter *w, coord_lock *l, int timeout_ms) {
    *w = (waiter){.l = l, .timeout_ms = timeout_ms, .rc = 1};
    assert_int_equal(pthread_create(&w->th, NULL, wait_main, w), 0);
}

static void basics(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    char *dir = dir_of(c, "b");
    coord_lock *l;
    uint64_t t1, t2;
    assert_int_equal(coord_lock_new(&l, c, "b"), 0);
    assert_int_equal(fake_count(dir), 0); /* _new makes no traffic */
    assert_false(coord_lock_held(l));
    assert_int_equal(coord_lock_token(l, &t1), COORD_ENOTHELD);
    assert_int_equal(coord_lock_release(l), COORD_ENOTHELD);
    assert_int_equal(coord_lock_acquire(l, 0), 0);
    assert_true(coord_lock_held(l));
    assert_int_equal(coord_lock_acquire(l, 0), COORD_EINVAL); /* held already */
    assert_int_equal(coord_lock_token(l, &t1), 0);
    assert_int_equal(coord_lock_token(l, NULL), COORD_EINVAL);
    assert_int_equal(fake_count(dir), 1);
    assert_int_equal(coord_lock_release(l), 0);
    assert_false(coord_lock_held(l));
    assert_int_equal(fake_count(dir), 0);
    assert_int_equal(coord_lock_release(l), COORD_ENOTHELD);
    assert_int_equal(coord_lock_acquire(l, 1000), 0);
    assert_int_equal(coord_lock_token(l, &t2), 0);
    assert_true(t2 > t1);
    /* free releases */
    coord_lock_free(l);
    assert_int_equal(fake_count(dir), 0);
    /* two handles of one client exclude each other */
    coord_lock *a, *b;
    assert_int_equal(coord_lock_new(&a, c, "b"), 0);
    assert_int_equal(coord_lock_new(&b, c, "b"), 0);
    assert_int_equal(coord_lock_acquire(a, -1), 0);
    assert_int_equal(coord_lock_acquire(b, 0), COORD_ELOCKED);
    coord_lock_free(a);
    assert_int_equal(coord_lock_acquire(b, 0), 0);
    coord_lock_free(b);
    assert_int_equal(fake_count(dir), 0);
    coord_client_close(c);
    free(dir);
}

static void try_and_timeout(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "t");
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "t"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "t"), 0);
    assert_int_equal(coord_lock_acquire(la, 0), 0);
    assert_int_equal(coord_lock_acquire(lb, 0), COORD_ELOCKED);
    assert_int_equal(fake_count(dir), 1); /* nothing left behind */
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_lock_acquire(lb, 150), COORD_ETIMEDOUT);
    int64_t took = coord__now_ms() - t0;
    assert_true(took >= 140 && took < 2000);
    assert_non_null(strstr(coord_last_error(), "within 150 ms"));
    assert_int_equal(fake_count(dir), 1);
    assert_false(coord_lock_held(lb));
    coord_lock_free(lb);
    coord_lock_free(la);
    coord_client_close(b);
    coord_client_close(a);
    assert_int_equal(fake_count(dir), 0);
    free(dir);
    free(uri);
}

static void cancel_wait(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "cx");
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "cx"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "cx"), 0);
    assert_int_equal(coord_lock_acquire(la, 0), 0);
    waiter w;
    start(&w, lb, -1);
    assert_int_equal(fake_await_count(dir, 2, 5000), 0);
    coord_lock_cancel(lb);
    pthread_join(w.th, NULL);
    assert_int_equal(w.rc, COORD_ECANCELED);
    assert_int_equal(fake_count(dir), 1);
    /* a cancel with no acquire running makes the next one return at once */
    coord_lock_cancel(lb);
    assert_int_equal(coord_lock_acquire(lb, -1), COORD_ECANCELED);
    assert_int_equal(fake_count(dir), 1);
    coord_lock_cancel(NULL);
    assert_int_equal(coord_lock_release(la), 0);
    assert_int_equal(coord_lock_acquire(lb, 1000), 0);
    coord_lock_free(lb);
    coord_lock_free(la);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(uri);
}

static void session_loss(void **state) {
    char *uri;
    coord_test_states ra;
    coord_client *a = fake_open(state, NULL, &ra, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "s");
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "s"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "s"), 0);
    /* while waiting: ESESSION, nothing left */
    assert_int_equal(coord_lock_acquire(la, 0), 0);
    waiter w;
    start(&w, lb, -1);
    assert_int_equal(fake_await_count(dir, 2, 5000), 0);
    fake_expire(b);
    pthread_join(w.th, NULL);
    assert_int_equal(w.rc, COORD_ESESSION);
    assert_int_equal(fake_sync(b, 2000), 0);
    assert_int_equal(fake_count(dir), 1);
    /* a look cut off for want of a server while the session ends: ESESSION, not EUNAVAILABLE
     * (the waiter's look after a's release is held 300 ms, and the session ends meanwhile) */
    assert_int_equal(coord_lock_acquire(lb, 0), COORD_ELOCKED);
    start(&w, lb, -1);
    assert_int_equal(fake_await_count(dir, 2, 5000), 0);
    int slow = fault_add(b, &(fault_rule){.slot = SLOT_LOCK_PREDECESSOR,
                                          .nth = 1,
                                          .count = FAULT_PERSISTENT,
                                          .code = COORD_EUNAVAILABLE,
                                          .delay_ms = 300});
    assert_int_equal(coord_lock_release(la), 0);
    /* no event tells the look began: look every 2 ms */
    struct timespec nap = {0, 2 * 1000000L};
    for (int64_t end = coord__now_ms() + 5000; fault_hits(slow) < 1 && coord__now_ms() < end;)
        nanosleep(&nap, NULL);
    assert_true(fault_hits(slow) >= 1);
    fake_expire(b);
    pthread_join(w.th, NULL);
    assert_int_equal(w.rc, COORD_ESESSION);
    fault_clear(b);
    assert_int_equal(fake_sync(b, 2000), 0);
    assert_int_equal(fake_await_count(dir, 0, 3000), 0);
    assert_int_equal(coord_lock_acquire(la, 1000), 0);
    /* while holding: held turns false, LOST reported, another acquires */
    fake_expire(a);
    assert_true(coord_test_states_wait(&ra, COORD_SESSION_LOST, 0, 2000) >= 0);
    assert_false(coord_lock_held(la));
    assert_int_equal(coord_lock_token(la, &(uint64_t){0}), COORD_ENOTHELD);
    assert_int_equal(coord_lock_acquire(lb, 1000), 0);
    assert_int_equal(coord_lock_release(la), COORD_ENOTHELD);
    /* the handle of the lost hold acquires again in the new session */
    assert_int_equal(fake_sync(a, 2000), 0);
    assert_int_equal(coord_lock_release(lb), 0);
    assert_int_equal(coord_lock_acquire(la, 1000), 0);
    assert_true(coord_lock_held(la));
    fake_expire(a);
    assert_int_equal(fake_sync(a, 2000), 0);
    coord_lock_free(la); /* lost: nothing to release */
    coord_lock_free(lb);
    coord_client_close(b);
    coord_client_close(a);
    assert_int_equal(fake_count(dir), 0);
    free(dir);
    free(uri);
}

/* Three contenders queue in order; each release wakes only the next; tokens increase. */
static void fifo(void **state) {
    char *uri;
    coord_client *c[4];
    c[0] = fake_open(state, NULL, NULL, &uri);
    for (int i = 1; i < 4; i++)
        c[i] = fake_open_uri(uri, NULL);
    char *dir = dir_of(c[0], "f");
    coord_lock *l[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(coord_lock_new(&l[i], c[i], "f"), 0);
    assert_int_equal(coord_lock_acquire(l[0], 0), 0);
    uint64_t tok[4];
    assert_int_equal(coord_lock_token(l[0], &tok[0]), 0);
    waiter w[4];
    for (int i = 1; i < 4; i++) {
        start(&w[i], l[i], 10000);
        assert_int_equal(fake_await_count(dir, (size_t)i + 1, 5000), 0); /* queued in order */
    }
    uint64_t wakeups = coord__lock_wakeups();
    for (int i = 1; i < 4; i++) {
        assert_int_equal(coord_lock_release(l[i - 1]), 0);
        pthread_join(w[i].th, NULL);
        assert_int_equal(w[i].rc, 0);
        assert_true(coord_lock_held(l[i]));
        for (int j = i + 1; j < 4; j++)
            assert_int_equal(w[j].rc, 1); /* still waiting */
        assert_int_equal(coord_lock_token(l[i], &tok[i]), 0);
        assert_true(tok[i] > tok[i - 1]);
        assert_int_equal(coord__lock_wakeups(), wakeups + (uint64_t)i); /* no herd */
    }
    assert_int_equal(coord_lock_release(l[3]), 0);
    for (int i = 0; i < 4; i++) {
        coord_lock_free(l[i]);
        coord_client_close(c[i]);
    }
    free(dir);
    free(uri);
}

/* Many threads on two clients: never two holders at once. */
typedef struct excl {
    coord_client *c;
    int inside, overlaps, errors;
} excl;

static void *excl_main(void *arg) {
    excl *e = arg;
    coord_lock *l;
    if (coord_lock_new(&l, e->c, "ex")) {
        __atomic_add_fetch(&e->errors, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    for (int i = 0; i < 30; i++) {
        int arc = coord_lock_acquire(l, 10000);
        if (arc) {
            print_error("acquire: %s: %s\n", coord_err_name(arc), coord_last_error());
            __atomic_add_fetch(&e->errors, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        if (__atomic_add_fetch(&e->inside, 1, __ATOMIC_SEQ_CST) != 1)
            __atomic_add_fetch(&e->overlaps, 1, __ATOMIC_SEQ_CST);
        __atomic_sub_fetch(&e->inside, 1, __ATOMIC_SEQ_CST);
        int rrc = coord_lock_release(l);
        if (rrc) {
            print_error("release: %s: %s\n", coord_err_name(rrc), coord_last_error());
            __atomic_add_fetch(&e->errors, 1, __ATOMIC_SEQ_CST);
        }
    }
    coord_lock_free(l);
    return NULL;
}

static void exclusion(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    excl ea = {.c = a}, eb = {.c = b};
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&th[i], NULL, excl_main, i % 2 ? &eb : &ea);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    /* the two clients' threads share one counter each; overlaps are counted per client and
     * across them by the server: nothing may be left either */
    assert_int_equal(ea.errors + eb.errors, 0);
    assert_int_equal(ea.overlaps + eb.overlaps, 0);
    char *dir = dir_of(a, "ex");
    assert_int_equal(fake_count(dir), 0);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(uri);
}

/* ---- fault paths ---- */

/* An enqueue that fails: before applying (nothing made), or after (made, answer lost: the
 * client removes it, and the handle's next acquire comes after it). */
static void enqueue_faults(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "e");
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "e"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "e"), 0);
    fault_once(a, SLOT_LOCK_ENQUEUE, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_lock_acquire(la, 1000), COORD_EUNAVAILABLE);
    assert_int_equal(fake_count(dir), 0);
    fault_once(a, SLOT_LOCK_ENQUEUE, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_lock_acquire(la, 1000), COORD_ETIMEDOUT);
    assert_false(coord_lock_held(la));
    /* the contender made goes (the client's orphan), so b is not held up by it */
    assert_int_equal(coord_lock_acquire(lb, 2000), 0);
    assert_int_equal(fake_count(dir), 1);
    assert_int_equal(coord_lock_release(lb), 0);
    /* made, answer lost, then at once acquire again: the old one goes first */
    fault_once(a, SLOT_LOCK_ENQUEUE, 1, COORD_EUNAVAILABLE, FAULT_AFTER);
    assert_int_equal(coord_lock_acquire(la, 1000), COORD_EUNAVAILABLE);
    assert_int_equal(coord_lock_acquire(la, 1000), 0);
    assert_int_equal(fake_count(dir), 1);
    assert_int_equal(coord_lock_acquire(lb, 0), COORD_ELOCKED);
    assert_int_equal(coord_lock_release(la), 0);
    assert_int_equal(fake_count(dir), 0);
    coord_lock_free(lb);
    coord_lock_free(la);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(uri);
}

/* A waiter whose look or watch fails for want of a server looks again and still gets the lock;
 * one that fails for good gives up and leaves nothing. */
static void waiter_faults(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "w");
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "w"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "w"), 0);
    assert_int_equal(coord_lock_acquire(la, 0), 0);
    /* transient: the watch twice, then the look, then fine */
    int fw = fault_add(
        b, &(fault_rule){.slot = SLOT_WATCH, .nth = 1, .count = 2, .code = COORD_EUNAVAILABLE});
    int fp = fault_once(b, SLOT_LOCK_PREDECESSOR, 1, COORD_ETIMEDOUT, FAULT_BEFORE);
    waiter w;
    start(&w, lb, 10000);
    assert_int_equal(fake_await_count(dir, 2, 5000), 0);
    /* the waiter is watching once the retries are through (failed calls never reach the fake;
     * no event tells a watch was made, so look every 5 ms) */
    struct timespec nap = {0, 5 * 1000000L};
    for (int64_t end = coord__now_ms() + 5000;
         coord__now_ms() < end && fake_calls(b, SLOT_WATCH) < 1;)
        nanosleep(&nap, NULL);
    assert_int_equal(fault_hits(fw), 2);
    assert_int_equal(coord_lock_release(la), 0);
    pthread_join(w.th, NULL);
    assert_int_equal(w.rc, 0);
    assert_true(fault_hits(fp) <= 1);
    assert_int_equal(coord_lock_release(lb), 0);
    /* persistent, not for want of a server: the acquire fails and withdraws */
    assert_int_equal(coord_lock_acquire(la, 0), 0);
    fault_always(b, SLOT_WATCH, 1, COORD_EBACKEND, FAULT_BEFORE);
    assert_int_equal(coord_lock_acquire(lb, 5000), COORD_EBACKEND);
    assert_int_equal(fake_count(dir), 1);
    fault_clear(b);
    /* persistent want of a server: waits out its deadline, then leaves nothing */
    fault_always(b, SLOT_LOCK_PREDECESSOR, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    fault_always(b, SLOT_WATCH, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    int64_t t0 = coord__now_ms();
    int rc = coord_lock_acquire(lb, 300);
    assert_true(rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT);
    assert_true(coord__now_ms() - t0 >= 250);
    fault_clear(b);
    assert_int_equal(fake_await_count(dir, 1, 3000), 0);
    /* the look finds our contender gone: the session is gone */
    fault_always(b, SLOT_LOCK_PREDECESSOR, 1, COORD_ESESSION, FAULT_BEFORE);
    fault_always(b, SLOT_WATCH, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_lock_acquire(lb, 2000), COORD_ESESSION);
    fault_clear(b);
    assert_int_equal(fake_await_count(dir, 1, 3000), 0);
    coord_lock_free(lb);
    coord_lock_free(la);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(uri);
}

/* A release whose delete does not get through: transient (retried within the call), applied but
 * answer lost (the retry finds it gone), persistent (handed to the client, deleted once the
 * calls get through again). Each returns 0, and the handle may acquire again at once. */
static void release_faults(void **state) {
    char *uri;
    coord_client *a = fake_open(state, "timeout_ms=300", NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "r");
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "r"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "r"), 0);

    assert_int_equal(coord_lock_acquire(la, 0), 0);
    fault_once(a, SLOT_DEL, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_lock_release(la), 0);
    assert_int_equal(fake_count(dir), 0);

    assert_int_equal(coord_lock_acquire(la, 0), 0);
    fault_once(a, SLOT_DEL, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_lock_release(la), 0);
    assert_int_equal(fake_count(dir), 0);
    assert_false(coord_lock_held(la));

    assert_int_equal(coord_lock_acquire(la, 0), 0);
    int f = fault_always(a, SLOT_DEL, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_lock_release(la), 0);
    assert_true(coord__now_ms() - t0 < 2000);
    assert_false(coord_lock_held(la));
    assert_true(fault_hits(f) >= 1);
    assert_int_equal(fake_count(dir), 1); /* handed to the client */
    waiter w;
    start(&w, lb, 5000);
    fault_clear(a);
    pthread_join(w.th, NULL);
    assert_int_equal(w.rc, 0); /* the client deleted it: b got the lock */
    assert_int_equal(coord_lock_release(lb), 0);
    assert_int_equal(fake_count(dir), 0);

    /* handed over, then an acquire at once: the old contender goes first */
    assert_int_equal(coord_lock_acquire(la, 0), 0);
    fault_add(
        a,
        &(fault_rule){
            .slot = SLOT_DEL, .nth = 1, .count = 3, .code = COORD_EUNAVAILABLE, .delay_ms = 120});
    assert_int_equal(coord_lock_release(la), 0);
    assert_int_equal(coord_lock_acquire(la, 2000), 0);
    assert_int_equal(fake_count(dir), 1);
    assert_int_equal(coord_lock_release(la), 0);
    fault_clear(a);
    coord_lock_free(lb);
    coord_lock_free(la);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(uri);
}

/* The reproduction: a holds, the server dies, a releases (0: handed over), the server
 * comes back with a's session alive; a idles; b acquires within 1 s. */
static void release_cut_off(void **state) {
    char *uri;
    coord_client *a = fake_open(state, "timeout_ms=300", NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "relcut");
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "relcut"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "relcut"), 0);
    assert_int_equal(coord_lock_acquire(la, 0), 0);
    fake_server_down();
    assert_int_equal(coord_lock_release(la), 0);
    assert_false(coord_lock_held(la));
    assert_int_equal(fake_count(dir), 1);
    fake_server_up();
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_lock_acquire(lb, 15000), 0);
    assert_true(coord__now_ms() - t0 < 1000);
    assert_int_equal(coord_lock_release(lb), 0);
    /* the same, and the session expires while the server is away: the entry went with it */
    assert_int_equal(coord_lock_acquire(la, 0), 0);
    fake_server_down();
    assert_int_equal(coord_lock_release(la), 0);
    assert_int_equal(coord__orphan_count(a), 1);
    fake_expire(a);
    assert_int_equal(fake_count(dir), 0);
    fake_server_up();
    assert_int_equal(fake_sync(a, 2000), 0);
    /* the client drops the orphan of the ended session */
    assert_int_equal(coord__orphan_count_within(a, 3000), 0);
    assert_int_equal(coord_lock_acquire(la, 1000), 0);
    assert_int_equal(fake_count(dir), 1);
    coord_lock_free(la);
    assert_int_equal(fake_count(dir), 0);
    coord_lock_free(lb);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(uri);
}

/* free of a held lock with no server: one try, then the client deletes it once back. */
static void free_cut_off(void **state) {
    char *uri;
    coord_client *a = fake_open(state, "timeout_ms=300", NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "fc");
    coord_lock *la;
    assert_int_equal(coord_lock_new(&la, a, "fc"), 0);
    assert_int_equal(coord_lock_acquire(la, 0), 0);
    fake_suspend(a);
    coord_lock_free(la);
    assert_int_equal(fake_count(dir), 1);
    fake_resume(a);
    assert_int_equal(fake_await_count(dir, 0, 2000), 0);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(uri);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        FAKE_BOTH(basics),         FAKE_BOTH(try_and_timeout),
        FAKE_BOTH(cancel_wait),    FAKE_BOTH(session_loss),
        FAKE_BOTH(fifo),           FAKE_BOTH(exclusion),
        FAKE_BOTH(enqueue_faults), FAKE_BOTH(waiter_faults),
        FAKE_BOTH(release_faults), FAKE_BOTH(release_cut_off),
        FAKE_BOTH(free_cut_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
