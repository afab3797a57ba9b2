/*
 * A place in a queue of contenders, written once over the backend's queue slots for every
 * recipe that waits its turn (the lock, the election): enqueue a contender, and until it is
 * first, watch only its immediate predecessor (no herd, FIFO). What a contender leaves behind
 * when its delete or create has an unknown outcome goes to the client's orphans.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Atomic uint64_t wakeups;

uint64_t coord__lock_wakeups(void) {
    return atomic_load(&wakeups);
}

static void on_session(void *payload, coord_session_state st) {
    coord__queue *q = payload;
    if (st == COORD_SESSION_LOST) coord__client_signal(q->c, &q->cv);
}

int coord__queue_init(coord__queue *q, coord_client *c, const char *recipe, const char *name,
                      const char *kind) {
    char *dir = NULL;
    int rc = coord__path(&dir, c, recipe, name);
    if (!rc) rc = coord__queue_init_at(q, c, dir, recipe, kind);
    free(dir);
    return rc;
}

int coord__queue_init_at(coord__queue *q, coord_client *c, const char *dir, const char *recipe,
                         const char *kind) {
    memset(q, 0, sizeof *q);
    int rc = (q->dir = strdup(dir)) ? 0 : coord__oom();
    if (!rc) rc = coord__uuid(q->tag);
    if (!rc && coord__cond_init(&q->cv))
        rc = coord_seterr(COORD_ENOMEM, "pthread_cond_init failed");
    if (rc) {
        free(q->dir);
        q->dir = NULL;
        return rc;
    }
    q->c = c;
    q->recipe = recipe;
    q->kind = kind;
    q->listener = (coord__listener){.fn = on_session, .payload = q};
    coord__client_listen(c, &q->listener);
    return 0;
}

void coord__queue_destroy(coord__queue *q) {
    if (!q->dir) return;
    coord__client_unlisten(q->c, &q->listener);
    pthread_cond_destroy(&q->cv);
    coord_kv_clear(&q->mine);
    free(q->dir);
    q->dir = NULL;
}

void coord__queue_wake(void *payload, coord_watch_event ev, int64_t rev) {
    (void)ev;
    (void)rev;
    coord__queue *q = payload;
    coord__client_lock(q->c);
    q->woken = true;
    pthread_cond_signal(&q->cv);
    coord__client_unlock(q->c);
}

static void on_predecessor(void *payload, coord_watch_event ev, int64_t rev) {
    if (ev == COORD_EV_DELETED) atomic_fetch_add(&wakeups, 1);
    coord__queue_wake(payload, ev, rev);
}

void coord__queue_cancel(coord__queue *q) {
    atomic_store(&q->cancel, true);
    coord__client_signal(q->c, &q->cv);
}

/* A cancel asked for: consume it. */
static bool canceled(coord__queue *q) {
    return atomic_exchange(&q->cancel, false);
}

/* Time left for one backend call: the client's operation timeout, within the deadline. */
static int op_budget(const coord__queue *q, int64_t deadline) {
    int t = coord__client_timeout(q->c);
    if (deadline == INT64_MAX) return t;
    int64_t left = deadline - coord__now_ms();
    if (left < 1) left = 1;
    return left < t ? (int)left : t;
}

int coord__queue_leave(coord__queue *q, int timeout_ms) {
    /* Its path is ours alone: the tag is in it. */
    coord__orphan_ref o = {q, q->mine.key, NULL, COORD_VERSION_ANY, q->epoch};
    int rc = q->mine.key ? coord__orphan_delete(q->c, &o, timeout_ms) : 0;
    coord_kv_clear(&q->mine);
    return rc;
}

/* Remove our contender after a failed, timed-out or abandoned attempt: one try, then the
 * client's, so the caller's answer is not held up. */
static void withdraw(coord__queue *q) {
    coord__error_buf saved;
    coord__error_save(&saved); /* keep the caller's detail */
    /* The session may have been replaced while the contender was made, which then belongs to
     * the new one: the current session is the one to delete it in (its path is ours alone; in
     * an ended session it is gone anyway). */
    q->epoch = coord__session_epoch(q->c);
    coord__queue_leave(q, 0);
    coord__error_restore(&saved);
}

/* A failure for want of a server while the session ended is the session's end. */
static int lost_or(coord__queue *q, int rc) {
    if ((rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT) &&
        coord__session_epoch(q->c) != q->epoch)
        return coord_seterr(COORD_ESESSION, "session expired while waiting for %s", q->dir);
    return rc;
}

/*
 * A waiter's look or watch failed for want of a server (a member failing over, a connection
 * being re-established): the session, and with it our place in the queue, may well survive, so
 * pause (up to a second, growing) and look again, until the deadline, a cancel or the loss of
 * the session decides. True when the caller should look again.
 */
static bool transient(coord__queue *q, int rc, int64_t deadline, int *pause_ms) {
    if (rc != COORD_EUNAVAILABLE && rc != COORD_ETIMEDOUT) return false;
    int64_t now = coord__now_ms();
    if (now >= deadline || coord__session_epoch(q->c) != q->epoch) return false;
    *pause_ms = *pause_ms ? (*pause_ms < 500 ? *pause_ms * 2 : 1000) : 20;
    int64_t until = now + *pause_ms < deadline ? now + *pause_ms : deadline;
    coord__client_lock(q->c);
    /* Woken early by a session change or a cancel, which the loop then handles. */
    while (coord__now_ms() < until && coord__session_epoch(q->c) == q->epoch &&
           !atomic_load(&q->cancel))
        coord__client_wait_cv(q->c, &q->cv, until);
    coord__client_unlock(q->c);
    return true;
}

int coord__queue_enter(coord__queue *q, const void *value, size_t len, int timeout_ms) {
    coord_kv_clear(&q->mine); /* a contender lost with its session */
    coord_conn *k = coord__client_conn(q->c);
    const coord_backend *be = k->backend;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : coord__now_ms() + timeout_ms;
    q->epoch = coord__session_epoch(q->c);
    int rc;
    bool first = false;
    coord_kv pred = {0};
    int64_t after = 0;
    int pause_ms = 0;
    if (canceled(q)) return coord_seterr(COORD_ECANCELED, "%s %s canceled", q->recipe, q->dir);
    int budget = timeout_ms == 0 ? coord__client_timeout(q->c) : op_budget(q, deadline);
    /* What this handle left on the server goes first: the new contender comes after it. */
    if ((rc = coord__orphan_settle(q->c, q, budget))) return rc;
    rc = be->lock_enqueue(k, q->dir, q->tag, q->kind, q->only, value, len, &q->mine, &first, &pred,
                          &after, budget);
    if (rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT) {
        /* Perhaps made, under a name never learnt: whatever carries the tag is to go. */
        coord__orphan_ref o = {q, q->dir, q->tag, 0, coord__session_epoch(q->c)};
        coord__orphan_hand(q->c, &o);
    }
    if (rc) return lost_or(q, rc);
    while (!first) {
        if (timeout_ms == 0) {
            coord_kv_clear(&pred);
            withdraw(q);
            return coord_seterr(COORD_ELOCKED, "%s %s is held by another owner", q->recipe, q->dir);
        }
        if (coord__session_epoch(q->c) != q->epoch) {
            coord_kv_clear(&pred);
            withdraw(q);
            return coord_seterr(COORD_ESESSION, "session expired while waiting for %s", q->dir);
        }
        if (canceled(q)) {
            coord_kv_clear(&pred);
            withdraw(q);
            return coord_seterr(COORD_ECANCELED, "%s %s canceled", q->recipe, q->dir);
        }
        if (!pred.key) { /* not known from the enqueue, or a predecessor left: look */
            rc = be->lock_predecessor(k, q->dir, &q->mine, q->only, &pred, &after,
                                      op_budget(q, deadline));
            if (rc && transient(q, rc, deadline, &pause_ms)) continue;
            if (rc) {
                rc = lost_or(q, rc);
                withdraw(q);
                return rc;
            }
        }
        if (!pred.key) break; /* every older contender is gone: ours */
        coord__client_lock(q->c);
        q->woken = false;
        coord__client_unlock(q->c);
        coord_watch *w = NULL;
        rc = be->watch(k, pred.key, COORD_WATCH_KEY, after, on_predecessor, q, &w);
        coord_kv_clear(&pred);
        if (rc && transient(q, rc, deadline, &pause_ms)) continue;
        if (rc) {
            rc = lost_or(q, rc);
            withdraw(q);
            return rc;
        }
        pause_ms = 0;
        coord__client_lock(q->c);
        bool timed_out = false;
        while (!q->woken && coord__session_epoch(q->c) == q->epoch && !atomic_load(&q->cancel)) {
            if (coord__client_wait_cv(q->c, &q->cv, deadline) != 0 && coord__now_ms() >= deadline) {
                timed_out = !q->woken;
                break;
            }
        }
        coord__client_unlock(q->c);
        be->unwatch(k, w);
        if (timed_out) {
            withdraw(q);
            return coord_seterr(COORD_ETIMEDOUT, "%s %s: not first within %d ms", q->recipe, q->dir,
                                timeout_ms);
        }
        /* Woken: the predecessor left (or the session changed); look again. */
    }
    if (coord__session_epoch(q->c) != q->epoch) {
        withdraw(q);
        return coord_seterr(COORD_ESESSION, "session expired while waiting for %s", q->dir);
    }
    return 0;
}
