/*
 * Barriers (coord.h, "Barriers"). A barrier is one persistent entry that exists while raised
 * (Curator's DistributedBarrier and kazoo's Barrier share that protocol). A double barrier is the
 * ZooKeeper recipe Curator and kazoo follow: an ephemeral entry per participant and a "ready"
 * entry made by the participant that completes the count; on the way out the lowest participant
 * leaves last and removes "ready".
 */
#include <stdatomic.h>
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
    struct barrier_wait *async; /* loop mode: the wait in flight (the client's waiter mutex) */
} waiter;

static void bw_wake(struct barrier_wait *t, int rc);

static void waiter_wake(waiter *w) {
    coord__client_lock(w->c);
    w->woken = true;
    pthread_cond_signal(&w->cv);
    struct barrier_wait *t = w->async;
    coord__client_unlock(w->c);
    if (t) bw_wake(t, atomic_exchange(&w->cancel, false) ? COORD_ECANCELED : 0);
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
    return 0;
}

static void waiter_destroy(waiter *w) {
    if (!w->c) return;
    coord__client_unlisten(w->c, &w->listener);
    pthread_cond_destroy(&w->cv);
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

static void bw_reap(coord_barrier *b);

void coord_barrier_free(coord_barrier *b) {
    if (!b) return;
    bw_reap(b);
    waiter_destroy(&b->w);
    free(b->path);
    free(b);
}

/* Loop mode: the wait as a watch and a timer, no thread. The job that arms the watch ends the
 * wait itself when a wake-up came first; after it, a wake-up queues the end. */
typedef struct barrier_wait {
    coord__aop op;
    coord_barrier *b;
    int timeout_ms;
    coord_watch *w;
    pthread_mutex_t mu; /* w, armed, ended, rc */
    bool armed, ended;
    int rc;
    coord_done_fn done;
    void *payload;
} barrier_wait;

static void bw_finish(barrier_wait *t) {
    coord_barrier *b = t->b;
    coord_conn *k = coord__client_conn(b->w.c);
    pthread_mutex_lock(&t->mu);
    coord_watch *w = t->w;
    t->w = NULL;
    int rc = t->rc;
    pthread_mutex_unlock(&t->mu);
    if (w) k->backend->unwatch(k, w);
    coord__loop_unjob(b->w.c, t); /* the deadline's timer */
    if (rc == COORD_ETIMEDOUT)
        rc = coord_seterr(COORD_ETIMEDOUT, "barrier %s still raised after %d ms", b->path,
                          t->timeout_ms);
    else if (rc == COORD_ECANCELED)
        rc = coord_seterr(COORD_ECANCELED, "wait on %s canceled", b->path);
    coord__aop_finish(&t->op, rc);
}

static void bw_end_job(void *arg, uint64_t tag) {
    (void)tag;
    bw_finish(arg);
}

static void bw_wake(barrier_wait *t, int rc) {
    pthread_mutex_lock(&t->mu);
    bool end = !t->ended && t->armed;
    if (!t->ended) {
        t->ended = true;
        t->rc = rc;
    }
    pthread_mutex_unlock(&t->mu);
    if (end) coord__loop_job(t->b->w.c, 0, bw_end_job, t, 0);
}

static void bw_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)ev, (void)rev;
    bw_wake(payload, 0);
}

static void bw_timer(void *arg, uint64_t tag) {
    (void)tag;
    bw_wake(arg, COORD_ETIMEDOUT);
}

static void bw_arm(void *arg, uint64_t tag) {
    (void)tag;
    barrier_wait *t = arg;
    coord_barrier *b = t->b;
    coord_conn *k = coord__client_conn(b->w.c);
    int rc;
    if (t->timeout_ms == 0) {
        coord_kv kv = {0};
        rc = k->backend->get(k, b->path, &kv, coord__client_timeout(b->w.c));
        coord_kv_clear(&kv);
        rc = rc == COORD_ENOTFOUND ? 0
             : rc                  ? rc
                                   : coord_seterr(COORD_ELOCKED, "barrier %s is raised", b->path);
        coord__aop_finish(&t->op, rc);
        return;
    }
    coord_watch *w = NULL;
    rc = k->backend->watch(k, b->path, COORD_WATCH_KEY, 0, bw_event, t, &w);
    pthread_mutex_lock(&t->mu);
    t->w = w;
    t->armed = true;
    if (rc && !t->ended) {
        t->ended = true;
        t->rc = rc;
    }
    bool end = t->ended;
    pthread_mutex_unlock(&t->mu);
    if (end)
        bw_finish(t);
    else if (t->timeout_ms > 0)
        coord__loop_job(b->w.c, coord__now_ms() + t->timeout_ms, bw_timer, t, 0);
}

static void bw_deliver(coord__aop *op, int rc) {
    barrier_wait *t = (barrier_wait *)op;
    if (t->b) {
        coord__client_lock(t->b->w.c);
        t->b->w.async = NULL;
        coord__client_unlock(t->b->w.c);
    }
    coord_done_fn done = t->done;
    void *payload = t->payload;
    pthread_mutex_destroy(&t->mu);
    free(t);
    done(rc, payload);
}

/* At close, the jobs stopped: drop the watch. */
static void bw_abort(coord__aop *op) {
    barrier_wait *t = (barrier_wait *)op;
    pthread_mutex_lock(&t->mu);
    coord_watch *w = t->w;
    t->w = NULL;
    t->ended = true;
    pthread_mutex_unlock(&t->mu);
    coord_conn *k = coord__client_conn(t->b->w.c);
    if (w) k->backend->unwatch(k, w);
}

/* A barrier freed with its wait in flight: the wait ends, its done runs now. */
static void bw_reap(coord_barrier *b) {
    if (!b->w.c || !coord__client_loop(b->w.c)) return;
    coord__client_lock(b->w.c);
    barrier_wait *t = b->w.async;
    coord__client_unlock(b->w.c);
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->ended = true;
    pthread_mutex_unlock(&t->mu);
    coord__loop_unjob(b->w.c, t);
    if (!coord__client_closed(b->w.c)) bw_abort(&t->op);
    coord__aop_reap(&t->op);
}

int coord_barrier_wait_async(coord_barrier *b, int timeout_ms, coord_done_fn done, void *payload) {
    if (!b || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    coord__client_lock(b->w.c);
    bool busy = b->w.async != NULL;
    coord__client_unlock(b->w.c);
    if (busy) return coord_seterr(COORD_EINVAL, "barrier %s: a wait is in flight", b->path);
    if (atomic_exchange(&b->w.cancel, false))
        return coord_seterr(COORD_ECANCELED, "wait on %s canceled", b->path);
    barrier_wait *t = calloc(1, sizeof *t);
    if (!t) return coord__oom();
    *t = (barrier_wait){.op = {.deliver = bw_deliver, .abort = bw_abort},
                        .b = b,
                        .timeout_ms = timeout_ms,
                        .done = done,
                        .payload = payload};
    pthread_mutex_init(&t->mu, NULL);
    int rc = coord__aop_start(b->w.c, &t->op);
    if (rc) {
        pthread_mutex_destroy(&t->mu);
        free(t);
        return rc;
    }
    coord__client_lock(b->w.c);
    b->w.async = t;
    coord__client_unlock(b->w.c);
    /* closing meanwhile: done runs at the close */
    if ((rc = coord__loop_job(b->w.c, 0, bw_arm, t, 0))) coord__aop_finish(&t->op, rc);
    return 0;
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

int coord_dbarrier_enter(coord_dbarrier *b, int timeout_ms) {
    if (!b) return coord_seterr(COORD_EINVAL, "double barrier is NULL");
    if (b->entered) return coord_seterr(COORD_EINVAL, "this handle has entered %s", b->dir);
    coord_client *c = b->w.c;
    coord_conn *k = coord__client_conn(c);
    if (atomic_exchange(&b->w.cancel, false))
        return coord_seterr(COORD_ECANCELED, "enter of %s canceled", b->dir);
    int64_t deadline = deadline_of(timeout_ms);
    b->epoch = coord__session_epoch(c);
    int rc = coord__orphan_settle(c, b, budget(c, deadline)); /* a former entry of ours first */
    if (rc) return rc;
    coord__client_lock(c);
    b->w.woken = false;
    coord__client_unlock(c);
    coord_watch *w = NULL;
    /* Watch, then look: a change after the listing is always reported. */
    if ((rc = k->backend->watch(k, b->dir, COORD_WATCH_CHILDREN, 0, on_event, &b->w, &w)))
        return rc;
    rc = k->backend->put(k, b->mine, NULL, 0, COORD_VERSION_ABSENT, COORD_PUT_EPHEMERAL, NULL,
                         budget(c, deadline));
    if (rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT) {
        coord__orphan_ref o = {b, b->mine, NULL, 0, b->epoch}; /* perhaps made */
        coord__orphan_hand(c, &o);
    }
    while (!rc) {
        size_t n;
        bool ready, mine, lowest;
        if ((rc = census(b, budget(c, deadline), &n, &ready, &mine, &lowest))) break;
        if (!mine) {
            rc = coord_seterr(COORD_ESESSION, "the entry of %s vanished (session lost)", b->dir);
            break;
        }
        if (ready) break;
        if (n >= b->count) { /* the count is complete: say so to everyone */
            rc = k->backend->put(k, b->ready, NULL, 0, COORD_VERSION_ABSENT, 0, NULL,
                                 budget(c, deadline));
            if (rc == COORD_ECONFLICT) rc = 0;
            break;
        }
        if (timeout_ms == 0) {
            rc = coord_seterr(COORD_ELOCKED, "%s: %zu of %u entered", b->dir, n, b->count);
            break;
        }
        if (coord__session_epoch(c) != b->epoch) {
            rc = coord_seterr(COORD_ESESSION, "session lost while entering %s", b->dir);
            break;
        }
        rc = waiter_sleep(&b->w, deadline);
        if (rc == COORD_ETIMEDOUT)
            rc = coord_seterr(COORD_ETIMEDOUT, "%s: not %u entered within %d ms", b->dir, b->count,
                              timeout_ms);
    }
    k->backend->unwatch(k, w);
    if (rc) {
        drop_mine(b); /* nothing left behind */
        return rc;
    }
    b->entered = true;
    return 0;
}

int coord_dbarrier_leave(coord_dbarrier *b, int timeout_ms) {
    if (!b) return coord_seterr(COORD_EINVAL, "double barrier is NULL");
    if (!b->entered) return coord_seterr(COORD_ENOTHELD, "this handle has not entered %s", b->dir);
    coord_client *c = b->w.c;
    coord_conn *k = coord__client_conn(c);
    if (atomic_exchange(&b->w.cancel, false))
        return coord_seterr(COORD_ECANCELED, "leave of %s canceled", b->dir);
    int64_t deadline = deadline_of(timeout_ms);
    b->entered = false; /* whatever happens below, the entry goes */
    coord__client_lock(c);
    b->w.woken = false;
    coord__client_unlock(c);
    coord_watch *w = NULL;
    int rc = k->backend->watch(k, b->dir, COORD_WATCH_CHILDREN, 0, on_event, &b->w, &w);
    if (rc) {
        drop_mine(b);
        return rc;
    }
    bool gone = false; /* our entry is deleted */
    while (1) {
        size_t n;
        bool ready, mine, lowest;
        if ((rc = census(b, budget(c, deadline), &n, &ready, &mine, &lowest))) break;
        if (!mine) gone = true;
        if (n == 0 || (n == 1 && mine)) {
            /* The last one: out, and "ready" with it. */
            if (mine) {
                coord__orphan_ref o = {b, b->mine, NULL, COORD_VERSION_ANY, b->epoch};
                rc = coord__orphan_delete(c, &o, budget(c, deadline));
                if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION) rc = 0;
                gone = true;
            }
            if (!rc) rc = k->backend->del(k, b->ready, COORD_VERSION_ANY, budget(c, deadline));
            if (rc == COORD_ENOTFOUND) rc = 0;
            break;
        }
        if (mine && !lowest) {
            /* Everyone but the lowest goes at once; the lowest waits for the rest. */
            coord__orphan_ref o = {b, b->mine, NULL, COORD_VERSION_ANY, b->epoch};
            rc = coord__orphan_delete(c, &o, budget(c, deadline));
            if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION) rc = 0;
            if (rc) break;
            gone = true;
            continue;
        }
        rc = timeout_ms == 0 ? COORD_ETIMEDOUT : waiter_sleep(&b->w, deadline);
        if (rc == COORD_ETIMEDOUT)
            rc = coord_seterr(COORD_ETIMEDOUT, "%s: %zu still in after %d ms", b->dir, n,
                              timeout_ms);
        if (rc) break;
    }
    k->backend->unwatch(k, w);
    if (rc && !gone) drop_mine(b); /* a failed leave has left all the same */
    return rc;
}

void coord_dbarrier_cancel(coord_dbarrier *b) {
    if (!b) return;
    atomic_store(&b->w.cancel, true);
    waiter_wake(&b->w);
}

void coord_dbarrier_free(coord_dbarrier *b) {
    if (!b) return;
    if (b->entered) drop_mine(b);
    waiter_destroy(&b->w);
    free(b->dir);
    free(b->ready);
    free(b->mine);
    free(b);
}
