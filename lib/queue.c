/*
 * A place in a queue of contenders, written once over the backend's queue slots for every
 * recipe that waits its turn (the lock, the election): enqueue a contender, and until it is
 * first, watch only its immediate predecessor (no herd, FIFO). What a contender leaves behind
 * when its delete or create has an unknown outcome goes to the client's orphans.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Atomic uint64_t wakeups;

uint64_t coord__lock_wakeups(void) {
    return atomic_load(&wakeups);
}

static void qw_kick(coord__queue *q);

static void on_session(void *payload, coord_session_state st) {
    coord__queue *q = payload;
    if (st == COORD_SESSION_LOST) {
        coord__client_signal(q->c, &q->cv);
        qw_kick(q);
    }
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
    coord__client_ref(c);
    return 0;
}

static void qw_abort(coord__aop *op);
static void leave_reap(coord__queue *q);

void coord__queue_enter_reap(coord__queue *q) {
    if (!coord__client_loop(q->c)) return;
    /* an async enter in flight ends here: its done runs now (COORD_ECANCELED) */
    coord__loop_unjob(q->c, q);
    if (coord__queue_entering(q)) {
        qw_abort(&q->aw.op);
        coord__aop_reap(&q->aw.op);
    }
}

void coord__queue_destroy(coord__queue *q) {
    if (!q->dir) return;
    if (coord__client_loop(q->c)) {
        leave_reap(q);
        coord__queue_enter_reap(q);
        if (q->mine.key && !coord__client_closed(q->c)) coord__queue_leave(q, 0);
    }
    coord__client_unlisten(q->c, &q->listener);
    coord__client_unref(q->c);
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
    qw_kick(payload);
}

void coord__queue_cancel(coord__queue *q) {
    atomic_store(&q->cancel, true);
    coord__client_signal(q->c, &q->cv);
    qw_kick(q);
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
    if (coord__no_server(rc) && coord__session_epoch(q->c) != q->epoch)
        return coord_seterr(COORD_ESESSION, "session expired while waiting for %s", q->dir);
    return rc;
}

/*
 * A waiter's look or watch failed for want of a server (a member failing over, a connection
 * being re-established): the session, and with it our place in the queue, may well survive, so
 * pause (up to a second, growing) and look again, until the deadline, a cancel or the loss of
 * the session decides. The end of the pause, or 0 when the failure decides.
 */
static int64_t pause_until(coord__queue *q, int rc, int64_t deadline, int *pause_ms) {
    if (!coord__no_server(rc)) return 0;
    int64_t now = coord__now_ms();
    if (now >= deadline || coord__session_epoch(q->c) != q->epoch) return 0;
    *pause_ms = *pause_ms ? (*pause_ms < 500 ? *pause_ms * 2 : 1000) : 20;
    return now + *pause_ms < deadline ? now + *pause_ms : deadline;
}

/* pause_until's pause, waited for. True when the caller should look again. */
static bool transient(coord__queue *q, int rc, int64_t deadline, int *pause_ms) {
    int64_t until = pause_until(q, rc, deadline, pause_ms);
    if (!until) return false;
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
    if (coord__no_server(rc)) {
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
        q->parked = true;
        while (!q->woken && coord__session_epoch(q->c) == q->epoch && !atomic_load(&q->cancel)) {
            if (coord__client_wait_cv(q->c, &q->cv, deadline) != 0 && coord__now_ms() >= deadline) {
                timed_out = !q->woken;
                break;
            }
        }
        q->parked = false;
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

/* ---- the same enter without a thread (loop mode) ---- */

enum { QW_IDLE, QW_RUN, QW_WAIT, QW_DONE };

static void qw_step(void *arg, uint64_t tag);

/* A wake-up (the predecessor's event, the session's loss, a cancel, the deadline): the next
 * step of a waiting enter is queued. Any thread. */
static void qw_wake(coord__queue *q, uint64_t gen) {
    coord__qwait *a = &q->aw;
    bool run = false;
    coord__client_lock(q->c);
    if (gen == a->gen) {
        a->woken = true;
        if (a->state == QW_WAIT && !a->scheduled) run = a->scheduled = true;
    }
    coord__client_unlock(q->c);
    if (run && coord__loop_job(q->c, 0, qw_step, q, gen)) {
        /* closing: the close aborts the wait */
    }
}

static void qw_kick(coord__queue *q) {
    if (!coord__client_loop(q->c)) return;
    coord__client_lock(q->c);
    uint64_t gen = q->aw.gen;
    coord__client_unlock(q->c);
    qw_wake(q, gen);
}

static void qw_deadline(void *arg, uint64_t tag) {
    qw_wake(arg, tag);
}

/* pause_until's pause, as a timer. True when the step was queued again. */
static bool qw_transient(coord__queue *q, int rc) {
    coord__qwait *a = &q->aw;
    int64_t until = pause_until(q, rc, a->deadline, &a->pause_ms);
    if (!until) return false;
    coord__client_lock(q->c);
    a->state = QW_WAIT;
    a->scheduled = true;
    uint64_t gen = a->gen;
    coord__client_unlock(q->c);
    return coord__loop_job(q->c, until, qw_step, q, gen) == 0;
}

static int qw_budget(const coord__queue *q) {
    if (coord__now_ms() >= q->aw.deadline) return coord__client_timeout(q->c);
    return op_budget(q, q->aw.deadline);
}

/* coord__queue_enter's body up to its next wait: 1 when a watch or a timer will queue the next
 * step, else the enter's result. */
static int qw_advance(coord__queue *q) {
    coord__qwait *a = &q->aw;
    coord_conn *k = coord__client_conn(q->c);
    const coord_backend *be = k->backend;
    int rc;
    if (!a->enqueued) {
        if (canceled(q)) return coord_seterr(COORD_ECANCELED, "%s %s canceled", q->recipe, q->dir);
        int budget = a->timeout_ms == 0 ? coord__client_timeout(q->c) : qw_budget(q);
        if ((rc = coord__orphan_settle(q->c, q, budget))) return rc;
        rc = be->lock_enqueue(k, q->dir, q->tag, q->kind, q->only, a->value, a->len, &q->mine,
                              &a->first, &a->pred, &a->after, budget);
        if (coord__no_server(rc)) {
            coord__orphan_ref o = {q, q->dir, q->tag, 0, coord__session_epoch(q->c)};
            coord__orphan_hand(q->c, &o);
        }
        if (rc) return lost_or(q, rc);
        a->enqueued = true;
    }
    while (!a->first) {
        bool lost = coord__session_epoch(q->c) != q->epoch; /* withdraw moves q->epoch */
        if (a->timeout_ms == 0 || lost || canceled(q)) {
            coord_kv_clear(&a->pred);
            withdraw(q);
            if (a->timeout_ms == 0)
                return coord_seterr(COORD_ELOCKED, "%s %s is held by another owner", q->recipe,
                                    q->dir);
            if (lost)
                return coord_seterr(COORD_ESESSION, "session expired while waiting for %s", q->dir);
            return coord_seterr(COORD_ECANCELED, "%s %s canceled", q->recipe, q->dir);
        }
        if (!a->pred.key) {
            rc = be->lock_predecessor(k, q->dir, &q->mine, q->only, &a->pred, &a->after,
                                      qw_budget(q));
            if (rc && qw_transient(q, rc)) return 1;
            if (rc) {
                rc = lost_or(q, rc);
                withdraw(q);
                return rc;
            }
        }
        if (!a->pred.key) break;
        if (coord__now_ms() >= a->deadline) {
            coord_kv_clear(&a->pred);
            withdraw(q);
            return coord_seterr(COORD_ETIMEDOUT, "%s %s: not first within %d ms", q->recipe, q->dir,
                                a->timeout_ms);
        }
        coord__client_lock(q->c);
        a->woken = false;
        coord__client_unlock(q->c);
        coord_watch *w = NULL;
        rc = be->watch(k, a->pred.key, COORD_WATCH_KEY, a->after, on_predecessor, q, &w);
        coord_kv_clear(&a->pred);
        if (rc && qw_transient(q, rc)) return 1;
        if (rc) {
            rc = lost_or(q, rc);
            withdraw(q);
            return rc;
        }
        a->pause_ms = 0;
        coord__client_lock(q->c);
        /* a wake-up between the checks above and the watch (woken was reset) */
        bool again = a->woken || atomic_load(&q->cancel) ||
                     coord__session_epoch(q->c) != q->epoch || coord__now_ms() >= a->deadline;
        if (!again) {
            a->w = w;
            a->state = QW_WAIT;
        }
        coord__client_unlock(q->c);
        if (!again) return 1;
        be->unwatch(k, w); /* woken while the watch was made: look again */
    }
    if (coord__session_epoch(q->c) != q->epoch) {
        withdraw(q);
        return coord_seterr(COORD_ESESSION, "session expired while waiting for %s", q->dir);
    }
    return 0;
}

static void qw_finish(coord__queue *q, int rc) {
    coord__qwait *a = &q->aw;
    coord__client_lock(q->c);
    a->state = QW_DONE;
    a->gen++; /* later wake-ups and timers of this attempt do nothing */
    coord__client_unlock(q->c);
    coord__loop_unjob(q->c, q); /* its deadline's timer */
    coord__aop_finish(&a->op, rc);
}

static void qw_step(void *arg, uint64_t tag) {
    coord__queue *q = arg;
    coord__qwait *a = &q->aw;
    coord__client_lock(q->c);
    bool stale = tag != a->gen || a->state == QW_DONE;
    if (!stale) {
        a->scheduled = false;
        a->state = QW_RUN;
    }
    coord_watch *w = stale ? NULL : a->w;
    if (w) a->w = NULL;
    coord__client_unlock(q->c);
    if (stale) return;
    coord_conn *k = coord__client_conn(q->c);
    if (w) k->backend->unwatch(k, w);
    int rc = qw_advance(q);
    if (rc != 1) qw_finish(q, rc);
}

static void qw_deliver(coord__aop *op, int rc) {
    coord__queue *q = (coord__queue *)((char *)op - offsetof(coord__queue, aw.op));
    coord__client_lock(q->c);
    q->aw.state = QW_IDLE;
    coord__client_unlock(q->c);
    q->aw.done(q, rc, q->aw.payload);
}

/* At close, the jobs stopped: drop the watch (the session's end takes the contender). */
static void qw_abort(coord__aop *op) {
    if (!op->c) return; /* never started */
    coord__queue *q = (coord__queue *)((char *)op - offsetof(coord__queue, aw.op));
    coord__client_lock(q->c);
    coord_watch *w = q->aw.w;
    q->aw.w = NULL;
    q->aw.state = QW_DONE;
    q->aw.gen++;
    coord__client_unlock(q->c);
    coord_conn *k = coord__client_conn(q->c);
    if (w) k->backend->unwatch(k, w);
    coord_kv_clear(&q->aw.pred);
}

bool coord__queue_waiting(coord__queue *q) {
    coord__client_lock(q->c);
    bool waiting = (q->aw.state == QW_WAIT && q->aw.enqueued && q->aw.w) || q->parked;
    coord__client_unlock(q->c);
    return waiting;
}

bool coord__queue_entering(coord__queue *q) {
    coord__client_lock(q->c);
    bool busy = q->aw.state != QW_IDLE;
    coord__client_unlock(q->c);
    return busy;
}

int coord__queue_enter_async(coord__queue *q, const void *value, size_t len, int timeout_ms,
                             void (*done)(coord__queue *q, int rc, void *payload), void *payload) {
    if (coord__queue_entering(q))
        return coord_seterr(COORD_EINVAL, "%s %s: a wait is already in flight on this handle",
                            q->recipe, q->dir);
    coord__qwait *a = &q->aw;
    coord_kv_clear(&q->mine); /* a contender lost with its session */
    coord_kv_clear(&a->pred);
    a->op = (coord__aop){.deliver = qw_deliver, .abort = qw_abort};
    int rc = coord__aop_start(q->c, &a->op);
    if (rc) return rc;
    a->done = done;
    a->payload = payload;
    a->value = value;
    a->len = len;
    a->timeout_ms = timeout_ms;
    a->deadline = timeout_ms < 0 ? INT64_MAX : coord__now_ms() + timeout_ms;
    a->enqueued = a->first = a->woken = false;
    a->pause_ms = 0;
    a->after = 0;
    a->w = NULL;
    q->epoch = coord__session_epoch(q->c);
    coord__client_lock(q->c);
    uint64_t gen = ++a->gen;
    a->state = QW_RUN;
    a->scheduled = true;
    coord__client_unlock(q->c);
    /* the step (a job) and, for a bounded wait, its deadline (a timer) */
    rc = coord__loop_job(q->c, 0, qw_step, q, gen);
    if (!rc && timeout_ms > 0) rc = coord__loop_job(q->c, a->deadline, qw_deadline, q, gen);
    if (rc) qw_finish(q, rc); /* closing meanwhile: done runs at the close */
    return 0;
}

/* ---- the leave without blocking (loop mode) ---- */

/*
 * A backend that sends a delete without waiting (del_async) has it sent from the caller's
 * thread, so a release costs no job thread's wake-up; its answer comes on a backend thread.
 * Otherwise the blocking leave runs as a job. An answer that leaves the outcome unknown hands
 * the entry to the client's orphans, as the blocking leave does once its budget is spent. A
 * handle freed, or a client closed, with the delete in flight waits for its answer (the backend
 * gives one within its detection of a dead connection), so no answer outlives them.
 */
typedef struct leave_op {
    coord__aop op;
    coord__queue *q; /* NULL once the handle is freed */
    void (*done)(coord__queue *q, int rc, void *payload);
    void *payload;
    /* del_async: the entry's path (ours) and session; `sent` until its answer came (mu) */
    char *path;
    uint64_t epoch;
    const void *owner;
    bool sent;
    _Atomic int refs; /* the delivery, and the answer while sent */
} leave_op;

/* The waits for an answer in flight (a free, a close): rare, so one condition for all. */
static pthread_mutex_t leave_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t leave_cv = PTHREAD_COND_INITIALIZER;

static void leave_unref(leave_op *r) {
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    free(r->path);
    free(r);
}

static void leave_job(void *arg, uint64_t tag) {
    (void)tag;
    leave_op *r = arg;
    coord__queue *q = r->q;
    coord__aop_finish(&r->op, coord__queue_leave(q, coord__client_timeout(q->c)));
}

/* The delete's answer, on a backend thread. */
static void leave_answer(void *arg, int rc) {
    leave_op *r = arg;
    if (coord__no_server(rc) && coord__session_epoch(r->op.c) != r->epoch) {
        rc = coord_seterr(COORD_ESESSION, "the session of %s has ended", r->path);
    } else if (coord__no_server(rc)) {
        coord__orphan_ref o = {r->owner, r->path, NULL, COORD_VERSION_ANY, r->epoch};
        rc = coord__orphan_hand(r->op.c, &o);
    }
    coord__aop_finish(&r->op, rc);
    pthread_mutex_lock(&leave_mu);
    r->sent = false;
    pthread_cond_broadcast(&leave_cv);
    pthread_mutex_unlock(&leave_mu);
    leave_unref(r);
}

/* Until the answer of a delete in flight came. */
static void leave_settle(leave_op *r) {
    pthread_mutex_lock(&leave_mu);
    while (r->sent)
        pthread_cond_wait(&leave_cv, &leave_mu);
    pthread_mutex_unlock(&leave_mu);
}

static void leave_abort(coord__aop *op) {
    leave_settle((leave_op *)op);
}

/* Send the delete of our entry without waiting: true when it went (the answer finishes `r`). */
static bool leave_send(coord__queue *q, leave_op *r) {
    coord_conn *k = coord__client_conn(q->c);
    if (!k->backend->del_async || !q->mine.key) return false;
    if (coord__session_epoch(q->c) != q->epoch) return false; /* the job answers at once */
    r->path = q->mine.key;
    r->epoch = q->epoch;
    r->owner = q;
    r->sent = true;
    atomic_store(&r->refs, 2);
    q->mine.key = NULL;
    if (k->backend->del_async(k, r->path, COORD_VERSION_ANY, leave_answer, r)) {
        q->mine.key = r->path; /* not sent: the job makes it */
        r->path = NULL;
        r->sent = false;
        atomic_store(&r->refs, 1);
        return false;
    }
    coord_kv_clear(&q->mine);
    return true;
}

static void left(coord__aop *op, int rc) {
    leave_op *r = (leave_op *)op;
    coord__queue *q = r->q;
    if (q) q->leaving = NULL;
    void (*done)(coord__queue *, int, void *) = r->done;
    void *payload = r->payload;
    leave_unref(r);
    done(q, rc, payload);
}

int coord__queue_leave_async(coord__queue *q, void (*done)(coord__queue *q, int rc, void *payload),
                             void *payload) {
    if (q->leaving || coord__queue_entering(q))
        return coord_seterr(COORD_EINVAL, "%s %s: an operation is in flight on this handle",
                            q->recipe, q->dir);
    leave_op *r = calloc(1, sizeof *r);
    if (!r) return coord__oom();
    *r = (leave_op){.op = {.deliver = left, .abort = leave_abort},
                    .q = q,
                    .done = done,
                    .payload = payload,
                    .refs = 1};
    int rc = coord__aop_start(q->c, &r->op);
    if (rc) {
        free(r);
        return rc;
    }
    q->leaving = r;
    if (leave_send(q, r)) return 0;
    /* closing meanwhile: done runs at the close */
    if ((rc = coord__loop_job(q->c, 0, leave_job, r, 0))) coord__aop_finish(&r->op, rc);
    return 0;
}

typedef struct release_ctx {
    coord_done_fn done;
    void *payload;
} release_ctx;

static void released(coord__queue *q, int rc, void *payload) {
    release_ctx r = *(release_ctx *)payload;
    free(payload);
    if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION)
        rc = coord_seterr(COORD_ENOTHELD, "%s %s: the entry vanished (session expired)", q->recipe,
                          q->dir);
    r.done(rc, r.payload);
}

int coord__queue_release_async(coord__queue *q, bool *held, coord_done_fn done, void *payload) {
    if (!done) return coord_seterr(COORD_EINVAL, "done is NULL");
    if (!coord__client_loop(q->c))
        return coord_seterr(COORD_EINVAL, "the client is not in loop mode (coord_options.loop)");
    if (!*held) return coord_seterr(COORD_ENOTHELD, "%s %s is not held", q->recipe, q->dir);
    if (coord__session_epoch(q->c) != q->epoch) {
        *held = false;
        coord_kv_clear(&q->mine);
        return coord_seterr(COORD_ENOTHELD, "%s %s was lost with its session", q->recipe, q->dir);
    }
    release_ctx *r = malloc(sizeof *r);
    if (!r) return coord__oom();
    *r = (release_ctx){done, payload};
    int rc = coord__queue_leave_async(q, released, r);
    if (rc)
        free(r);
    else
        *held = false; /* the handle holds nothing from now on, as the blocking release */
    return rc;
}

/* A handle freed with its leave in flight: the job ends first, its done runs now. */
static void leave_reap(coord__queue *q) {
    leave_op *r = q->leaving;
    if (!r) return;
    coord__loop_unjob(q->c, r);
    leave_settle(r);
    q->leaving = NULL;
    coord__aop_reap(&r->op); /* r->q still set: the done sees the handle, being freed */
}
