/*
 * Barriers (coord.h, "Barriers"). A barrier is one persistent entry that exists while raised
 * (Curator's DistributedBarrier and kazoo's Barrier share that protocol). A double barrier is the
 * ZooKeeper recipe Curator and kazoo follow: an ephemeral entry per participant and a "ready"
 * entry made by the participant that completes the count; on the way out the lowest participant
 * leaves last and removes "ready".
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* What a barrier or a double barrier waits with: a condition woken by its watch, a cancel or the
 * loss of the session. */
typedef struct waiter {
    coord_client *c;
    pthread_cond_t cv;
    coord__listener listener;
    bool woken; /* guarded by the client's waiter mutex */
    _Atomic bool cancel;
    struct wjob *async; /* loop mode: the wait in flight (the client's waiter mutex) */
} waiter;

static void wjob_wake(struct wjob *t, int stop);

static void waiter_wake(waiter *w) {
    coord__client_lock(w->c);
    w->woken = true;
    pthread_cond_signal(&w->cv);
    struct wjob *t = w->async;
    coord__client_unlock(w->c);
    if (t) wjob_wake(t, atomic_exchange(&w->cancel, false) ? COORD_ECANCELED : 0);
}

static void on_state(void *payload, coord_session_state st) {
    if (st != COORD_SESSION_SUSPENDED) waiter_wake(payload);
}

static void on_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)ev;
    (void)rev;
    waiter_wake(payload);
}

static int waiter_init(waiter *w, coord_client *c) {
    memset(w, 0, sizeof *w);
    w->c = c;
    if (coord__cond_init(&w->cv)) return coord_seterr(COORD_ENOMEM, "pthread_cond_init failed");
    w->listener = (coord__listener){.fn = on_state, .payload = w};
    coord__client_listen(c, &w->listener);
    coord__client_ref(c); /* loop mode: freed after the close */
    return 0;
}

static void waiter_destroy(waiter *w) {
    if (!w->c) return;
    coord__client_unlisten(w->c, &w->listener);
    pthread_cond_destroy(&w->cv);
    coord__client_unref(w->c);
}

/* Sleep until woken, canceled or `deadline` (INT64_MAX: no bound), having consumed the wake-up.
 * 0 when woken, COORD_ECANCELED, or COORD_ETIMEDOUT. */
static int waiter_sleep(waiter *w, int64_t deadline) {
    coord__client_lock(w->c);
    while (!w->woken && !atomic_load(&w->cancel) && coord__now_ms() < deadline)
        coord__client_wait_cv(w->c, &w->cv, deadline);
    bool woken = w->woken;
    w->woken = false;
    coord__client_unlock(w->c);
    if (atomic_exchange(&w->cancel, false)) return coord_seterr(COORD_ECANCELED, "wait canceled");
    return woken ? 0 : COORD_ETIMEDOUT;
}

/* The deadline of a wait; a try (0) has none for its calls, which get the operation timeout,
 * and it never sleeps. */
static int64_t deadline_of(int timeout_ms) {
    return timeout_ms <= 0 ? INT64_MAX : coord__now_ms() + timeout_ms;
}

/* The client's operation timeout, within the deadline. */
static int budget(coord_client *c, int64_t deadline) {
    int t = coord__client_timeout(c);
    if (deadline == INT64_MAX) return t;
    int64_t left = deadline - coord__now_ms();
    return left < 1 ? 1 : left < t ? (int)left : t;
}

/* ---------- barrier ---------- */

struct coord_barrier {
    char *path;
    waiter w;
};

int coord_barrier_new(coord_barrier **out, coord_client *c, const char *name) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    coord_barrier *b = calloc(1, sizeof *b);
    if (!b) return coord__oom();
    int rc = coord__path(&b->path, c, "barrier", name);
    if (!rc) rc = waiter_init(&b->w, c);
    if (rc) {
        free(b->path);
        free(b);
        return rc;
    }
    *out = b;
    return 0;
}

int coord_barrier_raise(coord_barrier *b) {
    if (!b) return coord_seterr(COORD_EINVAL, "barrier is NULL");
    coord_conn *k = coord__client_conn(b->w.c);
    int rc = k->backend->put(k, b->path, NULL, 0, COORD_VERSION_ABSENT, 0, NULL,
                             coord__client_timeout(b->w.c));
    return rc == COORD_ECONFLICT ? 0 : rc; /* raised already */
}

int coord_barrier_lower(coord_barrier *b) {
    if (!b) return coord_seterr(COORD_EINVAL, "barrier is NULL");
    coord_conn *k = coord__client_conn(b->w.c);
    int rc = k->backend->del(k, b->path, COORD_VERSION_ANY, coord__client_timeout(b->w.c));
    return rc == COORD_ENOTFOUND ? 0 : rc; /* not raised */
}

int coord_barrier_wait(coord_barrier *b, int timeout_ms) {
    if (!b) return coord_seterr(COORD_EINVAL, "barrier is NULL");
    coord_client *c = b->w.c;
    coord_conn *k = coord__client_conn(c);
    if (atomic_exchange(&b->w.cancel, false))
        return coord_seterr(COORD_ECANCELED, "wait on %s canceled", b->path);
    if (timeout_ms == 0) {
        coord_kv kv = {0};
        int rc = k->backend->get(k, b->path, &kv, coord__client_timeout(c));
        coord_kv_clear(&kv);
        if (rc == COORD_ENOTFOUND) return 0;
        return rc ? rc : coord_seterr(COORD_ELOCKED, "barrier %s is raised", b->path);
    }
    int64_t deadline = deadline_of(timeout_ms);
    coord__client_lock(c);
    b->w.woken = false;
    coord__client_unlock(c);
    /* A key watch reports the entry's deletion, at once when it is not there. */
    coord_watch *w = NULL;
    int rc = k->backend->watch(k, b->path, COORD_WATCH_KEY, 0, on_event, &b->w, &w);
    if (rc) return rc;
    rc = waiter_sleep(&b->w, deadline);
    k->backend->unwatch(k, w);
    if (rc == COORD_ETIMEDOUT)
        return coord_seterr(COORD_ETIMEDOUT, "barrier %s still raised after %d ms", b->path,
                            timeout_ms);
    return rc;
}

void coord_barrier_cancel(coord_barrier *b) {
    if (!b) return;
    atomic_store(&b->w.cancel, true);
    waiter_wake(&b->w);
}

static void wjob_reap(waiter *w);

void coord_barrier_free(coord_barrier *b) {
    if (!b) return;
    coord__calls_reap(b->w.c, b); /* loop mode: its raises and lowers in flight end first */
    wjob_reap(&b->w);
    waiter_destroy(&b->w);
    free(b->path);
    free(b);
}

/* ---------- double barrier ---------- */

struct coord_dbarrier {
    char *dir, *ready, *mine; /* "<prefix>/dbarrier/<name>", its "ready", our entry */
    unsigned count;
    bool entered;
    uint64_t epoch; /* the session our entry belongs to */
    waiter w;
};

#define READY "ready"

int coord_dbarrier_new(coord_dbarrier **out, coord_client *c, const char *name, unsigned count) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    if (count == 0) return coord_seterr(COORD_EINVAL, "a double barrier needs count >= 1");
    coord_dbarrier *b = calloc(1, sizeof *b);
    if (!b) return coord__oom();
    char tag[37];
    int rc = coord__path(&b->dir, c, "dbarrier", name);
    if (!rc) rc = coord__uuid(tag);
    if (!rc && (asprintf(&b->ready, "%s/" READY, b->dir) < 0 ||
                asprintf(&b->mine, "%s/%s", b->dir, tag) < 0))
        rc = coord__oom();
    if (!rc) rc = waiter_init(&b->w, c);
    if (rc) {
        free(b->dir);
        free(b->ready);
        free(b->mine);
        free(b);
        return rc;
    }
    b->count = count;
    *out = b;
    return 0;
}

/* The participants present (entries but "ready"), whether "ready" is there, and whether ours is
 * among them and lowest (first in name order, as every participant sorts them). */
static int census(coord_dbarrier *b, int timeout_ms, size_t *n, bool *ready, bool *mine,
                  bool *lowest) {
    coord_conn *k = coord__client_conn(b->w.c);
    coord_kv *kids = NULL;
    size_t nk = 0;
    int rc = k->backend->list(k, b->dir, COORD_LIST_NAMES, &kids, &nk, NULL, timeout_ms);
    if (rc) return rc;
    const char *me = strrchr(b->mine, '/') + 1;
    const char *low = NULL;
    *n = 0;
    *ready = *mine = false;
    for (size_t i = 0; i < nk; i++) {
        if (!strcmp(kids[i].key, READY)) {
            *ready = true;
            continue;
        }
        ++*n;
        if (!strcmp(kids[i].key, me)) *mine = true;
        if (!low || strcmp(kids[i].key, low) < 0) low = kids[i].key;
    }
    *lowest = *mine && low && !strcmp(low, me);
    coord_kv_array_free(kids, nk);
    return 0;
}

/* Remove our entry: one try, then the client's. */
static void drop_mine(coord_dbarrier *b) {
    coord__error_buf saved;
    coord__error_save(&saved);
    coord__orphan_ref o = {b, b->mine, NULL, COORD_VERSION_ANY, b->epoch};
    coord__orphan_delete(b->w.c, &o, 0);
    coord__error_restore(&saved);
}

/*
 * An enter or a leave, as steps a blocking call runs in a loop and an _async one runs as jobs:
 * each step looks at the participants and returns 1 to wait for a change (the watch, the
 * session, a cancel, the deadline), or the result, once its watch and, after a failure, our
 * entry are dropped. `stop` ends it at the next step with that code (a cancel, the deadline).
 */
typedef struct dstep {
    coord_dbarrier *b;
    int timeout_ms;
    int64_t deadline;
    coord_watch *w;
    void (*on_change)(void *payload, coord_watch_event ev, int64_t rev);
    void *payload;
    bool started, gone;
    int stop;
} dstep;

static int enter_end(dstep *d, int rc) {
    coord_dbarrier *b = d->b;
    coord_conn *k = coord__client_conn(b->w.c);
    if (d->w) k->backend->unwatch(k, d->w);
    d->w = NULL;
    if (rc == COORD_ETIMEDOUT)
        rc = coord_seterr(COORD_ETIMEDOUT, "%s: not %u entered within %d ms", b->dir, b->count,
                          d->timeout_ms);
    else if (rc == COORD_ECANCELED)
        rc = coord_seterr(COORD_ECANCELED, "enter of %s canceled", b->dir);
    if (rc) {
        drop_mine(b); /* nothing left behind */
        return rc;
    }
    b->entered = true;
    return 0;
}

static int enter_step(dstep *d) {
    coord_dbarrier *b = d->b;
    coord_client *c = b->w.c;
    coord_conn *k = coord__client_conn(c);
    int rc;
    if (d->stop) return enter_end(d, d->stop);
    if (!d->started) {
        d->started = true;
        b->epoch = coord__session_epoch(c);
        /* a former entry of ours first */
        if ((rc = coord__orphan_settle(c, b, budget(c, d->deadline)))) return rc;
        coord__client_lock(c);
        b->w.woken = false;
        coord__client_unlock(c);
        /* Watch, then look: a change after the listing is always reported. */
        if ((rc = k->backend->watch(k, b->dir, COORD_WATCH_CHILDREN, 0, d->on_change, d->payload,
                                    &d->w)))
            return rc;
        rc = k->backend->put(k, b->mine, NULL, 0, COORD_VERSION_ABSENT, COORD_PUT_EPHEMERAL, NULL,
                             budget(c, d->deadline));
        if (coord__no_server(rc)) {
            coord__orphan_ref o = {b, b->mine, NULL, 0, b->epoch}; /* perhaps made */
            coord__orphan_hand(c, &o);
        }
        if (rc) return enter_end(d, rc);
    }
    size_t n;
    bool ready, mine, lowest;
    if ((rc = census(b, budget(c, d->deadline), &n, &ready, &mine, &lowest)))
        return enter_end(d, rc);
    if (!mine)
        return enter_end(
            d, coord_seterr(COORD_ESESSION, "the entry of %s vanished (session lost)", b->dir));
    if (ready) return enter_end(d, 0);
    if (n >= b->count) { /* the count is complete: say so to everyone */
        rc = k->backend->put(k, b->ready, NULL, 0, COORD_VERSION_ABSENT, 0, NULL,
                             budget(c, d->deadline));
        return enter_end(d, rc == COORD_ECONFLICT ? 0 : rc);
    }
    if (d->timeout_ms == 0)
        return enter_end(d,
                         coord_seterr(COORD_ELOCKED, "%s: %zu of %u entered", b->dir, n, b->count));
    if (coord__session_epoch(c) != b->epoch)
        return enter_end(d, coord_seterr(COORD_ESESSION, "session lost while entering %s", b->dir));
    return 1;
}

static int leave_end(dstep *d, int rc) {
    coord_dbarrier *b = d->b;
    coord_conn *k = coord__client_conn(b->w.c);
    if (d->w) k->backend->unwatch(k, d->w);
    d->w = NULL;
    if (rc == COORD_ETIMEDOUT)
        rc = coord_seterr(COORD_ETIMEDOUT, "%s: still occupied after %d ms", b->dir, d->timeout_ms);
    else if (rc == COORD_ECANCELED)
        rc = coord_seterr(COORD_ECANCELED, "leave of %s canceled", b->dir);
    if (rc && !d->gone) drop_mine(b); /* a failed leave has left all the same */
    return rc;
}

static int leave_step(dstep *d) {
    coord_dbarrier *b = d->b;
    coord_client *c = b->w.c;
    coord_conn *k = coord__client_conn(c);
    int rc;
    if (d->stop) return leave_end(d, d->stop);
    if (!d->started) {
        d->started = true;
        b->entered = false; /* whatever happens below, the entry goes */
        coord__client_lock(c);
        b->w.woken = false;
        coord__client_unlock(c);
        if ((rc = k->backend->watch(k, b->dir, COORD_WATCH_CHILDREN, 0, d->on_change, d->payload,
                                    &d->w)))
            return leave_end(d, rc);
    }
    while (1) {
        size_t n;
        bool ready, mine, lowest;
        if ((rc = census(b, budget(c, d->deadline), &n, &ready, &mine, &lowest)))
            return leave_end(d, rc);
        if (!mine) d->gone = true;
        if (n == 0 || (n == 1 && mine)) {
            /* The last one: out, and "ready" with it. */
            if (mine) {
                coord__orphan_ref o = {b, b->mine, NULL, COORD_VERSION_ANY, b->epoch};
                rc = coord__orphan_delete(c, &o, budget(c, d->deadline));
                if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION) rc = 0;
                d->gone = true;
            }
            if (!rc) rc = k->backend->del(k, b->ready, COORD_VERSION_ANY, budget(c, d->deadline));
            return leave_end(d, rc == COORD_ENOTFOUND ? 0 : rc);
        }
        if (mine && !lowest) {
            /* Everyone but the lowest goes at once; the lowest waits for the rest. */
            coord__orphan_ref o = {b, b->mine, NULL, COORD_VERSION_ANY, b->epoch};
            rc = coord__orphan_delete(c, &o, budget(c, d->deadline));
            if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION) rc = 0;
            if (rc) return leave_end(d, rc);
            d->gone = true;
            continue;
        }
        if (d->timeout_ms == 0) return leave_end(d, COORD_ETIMEDOUT);
        return 1;
    }
}

/* A blocking enter or leave: its steps, sleeping in between. */
static int run_steps(coord_dbarrier *b, int timeout_ms, int (*step)(dstep *)) {
    dstep d = {.b = b,
               .timeout_ms = timeout_ms,
               .deadline = deadline_of(timeout_ms),
               .on_change = on_event,
               .payload = &b->w};
    int rc;
    while ((rc = step(&d)) == 1)
        d.stop = waiter_sleep(&b->w, d.deadline);
    return rc;
}

int coord_dbarrier_enter(coord_dbarrier *b, int timeout_ms) {
    if (!b) return coord_seterr(COORD_EINVAL, "double barrier is NULL");
    if (b->entered) return coord_seterr(COORD_EINVAL, "this handle has entered %s", b->dir);
    if (atomic_exchange(&b->w.cancel, false))
        return coord_seterr(COORD_ECANCELED, "enter of %s canceled", b->dir);
    return run_steps(b, timeout_ms, enter_step);
}

int coord_dbarrier_leave(coord_dbarrier *b, int timeout_ms) {
    if (!b) return coord_seterr(COORD_EINVAL, "double barrier is NULL");
    if (!b->entered) return coord_seterr(COORD_ENOTHELD, "this handle has not entered %s", b->dir);
    if (atomic_exchange(&b->w.cancel, false))
        return coord_seterr(COORD_ECANCELED, "leave of %s canceled", b->dir);
    return run_steps(b, timeout_ms, leave_step);
}

void coord_dbarrier_cancel(coord_dbarrier *b) {
    if (!b) return;
    atomic_store(&b->w.cancel, true);
    waiter_wake(&b->w);
}

void coord_dbarrier_free(coord_dbarrier *b) {
    if (!b) return;
    wjob_reap(&b->w);
    if (b->entered && !coord__client_closed(b->w.c)) drop_mine(b); /* else gone with it */
    waiter_destroy(&b->w);
    free(b->dir);
    free(b->ready);
    free(b->mine);
    free(b);
}

/* ---------- loop mode ---------- */

/*
 * A wait of a barrier or a double barrier as jobs: `step` runs on a job thread and returns 1 to
 * wait for a change (the watch it arms, the session, a cancel: the handle's waiter; the
 * deadline: a timer), each of which queues the next step, or its result. One step at a time: a
 * wake-up during a step makes it run again. `stop` (a cancel, the deadline) is handed to the
 * next step, which ends with it.
 */
typedef struct wjob {
    coord__aop op;
    coord__stepper st;
    waiter *w;
    int (*step)(struct wjob *t);
    int timeout_ms;
    dstep d;          /* a double barrier's enter or leave */
    coord_barrier *b; /* a barrier's wait */
    coord_watch *bw;  /* its watch */
    coord_done_fn done;
    void *payload;
} wjob;

#define WJOB_OF(stp) ((wjob *)((char *)(stp)-offsetof(wjob, st)))

static void wjob_wake(wjob *t, int stop) {
    coord__stepper_wake(&t->st, stop);
}

static int wjob_step(coord__stepper *st) {
    wjob *t = WJOB_OF(st);
    t->d.stop = coord__stepper_stopped(st);
    return t->step(t);
}

static void wjob_end(coord__stepper *st, int rc) {
    coord__aop_finish(&WJOB_OF(st)->op, rc); /* last: its delivery frees t */
}

static void wjob_deliver(coord__aop *op, int rc) {
    wjob *t = (wjob *)op;
    if (t->w) {
        coord__client_lock(t->w->c);
        t->w->async = NULL;
        coord__client_unlock(t->w->c);
    }
    coord_done_fn done = t->done;
    void *payload = t->payload;
    coord__stepper_destroy(&t->st);
    free(t);
    done(rc, payload);
}

/* Its watch (at close, the jobs stopped; or at the handle's free). */
static void wjob_abort(coord__aop *op) {
    wjob *t = (wjob *)op;
    coord_conn *k = coord__client_conn(t->w->c);
    coord_watch *w = t->bw ? t->bw : t->d.w;
    t->bw = t->d.w = NULL;
    if (w) k->backend->unwatch(k, w);
}

/* A handle freed with its wait in flight: it ends, its done runs now. */
static void wjob_reap(waiter *w) {
    if (!w->c || !coord__client_loop(w->c)) return;
    coord__client_lock(w->c);
    wjob *t = w->async;
    coord__client_unlock(w->c);
    if (!t) return;
    coord__stepper_halt(&t->st);
    coord__loop_unjob(w->c, &t->st);
    if (!coord__client_closed(w->c)) wjob_abort(&t->op);
    coord__aop_reap(&t->op);
}

static int wjob_start(waiter *w, int timeout_ms, int (*step)(wjob *), wjob *proto) {
    coord__client_lock(w->c);
    bool busy = w->async != NULL;
    coord__client_unlock(w->c);
    if (busy) return coord_seterr(COORD_EINVAL, "a wait is in flight on this handle");
    wjob *t = calloc(1, sizeof *t);
    if (!t) return coord__oom();
    *t = *proto;
    t->op = (coord__aop){.deliver = wjob_deliver, .abort = wjob_abort};
    t->w = w;
    t->step = step;
    t->timeout_ms = timeout_ms;
    t->d.timeout_ms = timeout_ms;
    t->d.deadline = deadline_of(timeout_ms);
    t->d.on_change = coord__stepper_event;
    t->d.payload = &t->st;
    coord__stepper_init(&t->st, w->c, wjob_step, wjob_end);
    int rc = coord__aop_start(w->c, &t->op);
    if (rc) {
        coord__stepper_destroy(&t->st);
        free(t);
        return rc;
    }
    coord__client_lock(w->c);
    w->async = t;
    coord__client_unlock(w->c);
    /* The timer first: the step may end the wait (and unjob the timer) at once. Closing
     * meanwhile: done runs at the close. */
    if (timeout_ms > 0) coord__stepper_timer(&t->st, t->d.deadline);
    coord__stepper_wake(&t->st, 0);
    return 0;
}

/* The barrier's wait: a try reads; a wait watches the entry, whose deletion (at once when it
 * is not there) ends it, as any wake-up ends coord_barrier_wait's sleep. */
static int barrier_step(wjob *t) {
    coord_barrier *b = t->b;
    coord_conn *k = coord__client_conn(b->w.c);
    int rc;
    if (t->d.stop || t->bw) {
        if (t->bw) k->backend->unwatch(k, t->bw);
        t->bw = NULL;
        if (t->d.stop == COORD_ETIMEDOUT)
            return coord_seterr(COORD_ETIMEDOUT, "barrier %s still raised after %d ms", b->path,
                                t->timeout_ms);
        if (t->d.stop == COORD_ECANCELED)
            return coord_seterr(COORD_ECANCELED, "wait on %s canceled", b->path);
        return 0;
    }
    if (t->timeout_ms == 0) {
        coord_kv kv = {0};
        rc = k->backend->get(k, b->path, &kv, coord__client_timeout(b->w.c));
        coord_kv_clear(&kv);
        if (rc == COORD_ENOTFOUND) return 0;
        return rc ? rc : coord_seterr(COORD_ELOCKED, "barrier %s is raised", b->path);
    }
    coord_watch *w = NULL;
    if ((rc = k->backend->watch(k, b->path, COORD_WATCH_KEY, 0, coord__stepper_event, &t->st, &w)))
        return rc;
    t->bw = w;
    return 1;
}

int coord_barrier_wait_async(coord_barrier *b, int timeout_ms, coord_done_fn done, void *payload) {
    if (!b || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (atomic_exchange(&b->w.cancel, false))
        return coord_seterr(COORD_ECANCELED, "wait on %s canceled", b->path);
    wjob proto = {.b = b, .done = done, .payload = payload};
    return wjob_start(&b->w, timeout_ms, barrier_step, &proto);
}

static int enter_job(wjob *t) {
    return enter_step(&t->d);
}

static int leave_job(wjob *t) {
    return leave_step(&t->d);
}

int coord_dbarrier_enter_async(coord_dbarrier *b, int timeout_ms, coord_done_fn done,
                               void *payload) {
    if (!b || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (b->entered) return coord_seterr(COORD_EINVAL, "this handle has entered %s", b->dir);
    if (atomic_exchange(&b->w.cancel, false))
        return coord_seterr(COORD_ECANCELED, "enter of %s canceled", b->dir);
    wjob proto = {.d = {.b = b}, .done = done, .payload = payload};
    return wjob_start(&b->w, timeout_ms, enter_job, &proto);
}

int coord_dbarrier_leave_async(coord_dbarrier *b, int timeout_ms, coord_done_fn done,
                               void *payload) {
    if (!b || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (!b->entered) return coord_seterr(COORD_ENOTHELD, "this handle has not entered %s", b->dir);
    if (atomic_exchange(&b->w.cancel, false))
        return coord_seterr(COORD_ECANCELED, "leave of %s canceled", b->dir);
    wjob proto = {.d = {.b = b}, .done = done, .payload = payload};
    return wjob_start(&b->w, timeout_ms, leave_job, &proto);
}

static int raise_fn(void *b) {
    return coord_barrier_raise(b);
}

static int lower_fn(void *b) {
    return coord_barrier_lower(b);
}

int coord_barrier_raise_async(coord_barrier *b, coord_done_fn done, void *payload) {
    if (!b) return coord_seterr(COORD_EINVAL, "barrier is NULL");
    return coord__handle_call(b->w.c, b, b, raise_fn, NULL, done, payload);
}

int coord_barrier_lower_async(coord_barrier *b, coord_done_fn done, void *payload) {
    if (!b) return coord_seterr(COORD_EINVAL, "barrier is NULL");
    return coord__handle_call(b->w.c, b, b, lower_fn, NULL, done, payload);
}
