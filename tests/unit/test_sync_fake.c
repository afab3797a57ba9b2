/*
 * Semaphore, read-write lock and barriers on the fake backend (no server), both flavours: the
 * paths that need faults or a session's end to reach: releases cut off by a dead server (nothing
 * stranded), cancel, session loss while waiting and while holding, creates whose answer is lost.
 */
#include "testing.h"
#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *under(coord_client *c, const char *what) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", coord_client_prefix(c), what) < 0) fail_msg("out of memory");
    return p;
}

/* ---- semaphore ---- */

typedef struct semwait {
    coord_semaphore *s;
    int timeout_ms, rc;
    pthread_t th;
} semwait;

static void *semwait_main(void *arg) {
    semwait *w = arg;
    w->rc = coord_semaphore_acquire(w->s, w->timeout_ms);
    return NULL;
}

static void semaphore_release_cut_off(void **state) {
    char *uri;
    coord_client *a = fake_open(state, "timeout_ms=300", NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *leases = under(a, "semaphore/s/leases/");
    coord_semaphore *sa, *sb;
    assert_int_equal(coord_semaphore_new(&sa, a, "s", 1), 0);
    assert_int_equal(coord_semaphore_new(&sb, b, "s", 1), 0);
    assert_int_equal(coord_semaphore_acquire(sa, 0), 0);
    fake_server_down();
    assert_int_equal(coord_semaphore_release(sa), 0); /* handed to the client */
    assert_false(coord_semaphore_held(sa));
    assert_int_equal(fake_count(leases), 1);
    fake_server_up();
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_semaphore_acquire(sb, 5000), 0);
    assert_true(coord__now_ms() - t0 < 1000);
    assert_int_equal(fake_count(leases), 1);
    /* a lease create whose answer is lost leaves nothing once the client is done */
    assert_int_equal(coord_semaphore_release(sb), 0);
    fault_once(a, SLOT_LOCK_ENQUEUE, 2, COORD_ETIMEDOUT, FAULT_AFTER); /* 1: lock, 2: lease */
    assert_int_equal(coord_semaphore_acquire(sa, 0), COORD_ETIMEDOUT);
    assert_int_equal(fake_await_count(leases, 0, 3000), 0);
    coord_semaphore_free(sb);
    coord_semaphore_free(sa);
    coord_client_close(b);
    coord_client_close(a);
    free(leases);
    free(uri);
}

static void semaphore_session_loss(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *leases = under(a, "semaphore/sl/leases/");
    coord_semaphore *sa, *sb;
    assert_int_equal(coord_semaphore_new(&sa, a, "sl", 1), 0);
    assert_int_equal(coord_semaphore_new(&sb, b, "sl", 1), 0);
    /* holding: the lease goes with the session */
    assert_int_equal(coord_semaphore_acquire(sa, 0), 0);
    semwait w = {sb, 5000, 1, 0};
    pthread_create(&w.th, NULL, semwait_main, &w);
    assert_int_equal(fake_await_count(leases, 2, 3000), 0);
    fake_expire(a);
    pthread_join(w.th, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(fake_sync(a, 2000), 0);
    assert_false(coord_semaphore_held(sa));
    assert_int_equal(coord_semaphore_release(sa), COORD_ENOTHELD);
    /* waiting: the wait ends with COORD_ESESSION and nothing is left */
    semwait wa = {sa, 5000, 1, 0};
    pthread_create(&wa.th, NULL, semwait_main, &wa);
    assert_int_equal(fake_await_count(leases, 2, 3000), 0);
    fake_expire(a);
    pthread_join(wa.th, NULL);
    assert_int_equal(wa.rc, COORD_ESESSION);
    assert_int_equal(fake_sync(a, 2000), 0);
    assert_int_equal(fake_await_count(leases, 1, 3000), 0);
    /* cancel while waiting */
    semwait wc = {sa, -1, 1, 0};
    pthread_create(&wc.th, NULL, semwait_main, &wc);
    assert_int_equal(fake_await_count(leases, 2, 3000), 0);
    coord_semaphore_cancel(sa);
    pthread_join(wc.th, NULL);
    assert_int_equal(wc.rc, COORD_ECANCELED);
    assert_int_equal(fake_await_count(leases, 1, 3000), 0);
    coord_semaphore_free(sb);
    coord_semaphore_free(sa);
    coord_client_close(b);
    coord_client_close(a);
    free(leases);
    free(uri);
}

/* ---- read-write lock ---- */

typedef struct rwwait {
    coord_rwlock *l;
    bool write;
    int timeout_ms, rc;
    pthread_t th;
} rwwait;

static void *rwwait_main(void *arg) {
    rwwait *w = arg;
    w->rc = w->write ? coord_rwlock_wrlock(w->l, w->timeout_ms)
                     : coord_rwlock_rdlock(w->l, w->timeout_ms);
    return NULL;
}

static void rwlock_faults(void **state) {
    char *uri;
    coord_client *a = fake_open(state, "timeout_ms=300", NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = under(a, "rwlock/rw/");
    coord_rwlock *la, *lb;
    assert_int_equal(coord_rwlock_new(&la, a, "rw"), 0);
    assert_int_equal(coord_rwlock_new(&lb, b, "rw"), 0);
    /* an unlock cut off: the writer b waits for gets in once the server is back */
    assert_int_equal(coord_rwlock_wrlock(la, 0), 0);
    fake_server_down();
    assert_int_equal(coord_rwlock_unlock(la), 0);
    fake_server_up();
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_rwlock_wrlock(lb, 5000), 0);
    assert_true(coord__now_ms() - t0 < 1000);
    /* a reader waiting for b's write: session loss ends its wait, cancel too */
    rwwait r = {la, false, 5000, 1, 0};
    pthread_create(&r.th, NULL, rwwait_main, &r);
    assert_int_equal(fake_await_count(dir, 2, 3000), 0);
    fake_expire(a);
    pthread_join(r.th, NULL);
    assert_int_equal(r.rc, COORD_ESESSION);
    assert_int_equal(fake_sync(a, 2000), 0);
    rwwait c = {la, false, -1, 1, 0};
    pthread_create(&c.th, NULL, rwwait_main, &c);
    assert_int_equal(fake_await_count(dir, 2, 3000), 0);
    coord_rwlock_cancel(la);
    pthread_join(c.th, NULL);
    assert_int_equal(c.rc, COORD_ECANCELED);
    assert_int_equal(fake_await_count(dir, 1, 3000), 0);
    /* holding a read lock when the session ends: no longer held */
    assert_int_equal(coord_rwlock_unlock(lb), 0);
    assert_int_equal(coord_rwlock_rdlock(la, 0), 0);
    fake_expire(a);
    assert_int_equal(fake_sync(a, 2000), 0);
    assert_false(coord_rwlock_held(la));
    assert_int_equal(coord_rwlock_unlock(la), COORD_ENOTHELD);
    assert_int_equal(coord_rwlock_wrlock(lb, 0), 0);
    coord_rwlock_free(lb);
    coord_rwlock_free(la);
    assert_int_equal(fake_await_count(dir, 0, 3000), 0);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(uri);
}

/* ---- barriers ---- */

static void barrier_faults(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_barrier *b;
    assert_int_equal(coord_barrier_new(&b, a, "g"), 0);
    fault_once(a, SLOT_PUT, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_barrier_raise(b), COORD_EUNAVAILABLE);
    assert_int_equal(coord_barrier_wait(b, 0), 0); /* not raised */
    assert_int_equal(coord_barrier_raise(b), 0);
    fault_once(a, SLOT_WATCH, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_barrier_wait(b, 100), COORD_EUNAVAILABLE);
    coord_barrier_cancel(b);
    assert_int_equal(coord_barrier_wait(b, -1), COORD_ECANCELED); /* a cancel asked before */
    assert_int_equal(coord_barrier_lower(b), 0);
    coord_barrier_free(b);

    /* double barrier: an enter whose create answer is lost, then times out, leaves nothing */
    char *dir = under(a, "dbarrier/d/");
    coord_dbarrier *d;
    assert_int_equal(coord_dbarrier_new(&d, a, "d", 2), 0);
    fault_once(a, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_dbarrier_enter(d, 200), COORD_ETIMEDOUT);
    assert_int_equal(fake_await_count(dir, 0, 3000), 0);
    /* the session ends while waiting to enter */
    assert_int_equal(coord_dbarrier_enter(d, 0), COORD_ELOCKED);
    assert_int_equal(fake_count(dir), 0);
    coord_dbarrier_free(d);
    coord_client_close(a);
    free(dir);
    free(uri);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        FAKE_BOTH(semaphore_release_cut_off),
        FAKE_BOTH(semaphore_session_loss),
        FAKE_BOTH(rwlock_faults),
        FAKE_BOTH(barrier_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
