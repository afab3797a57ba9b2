/*
 * Counting semaphore (coord.h, "Semaphore"), Curator's InterProcessSemaphoreV2 algorithm: a
 * waiter first takes the semaphore's internal lock ("locks", a coord lock, so waiters queue in
 * arrival order, each watching only its predecessor), then makes its lease and, holding the lock,
 * waits until the leases are at most the limit. Only the lock holder watches the leases, so a
 * release wakes one waiter.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct coord_semaphore {
    coord_client *c;
    char *path, *leases;
    unsigned max;
    bool limit_ok;   /* the stored limit was found equal to ours */
    coord__queue lk; /* the internal lock: a "lock-" contender of "<name>/locks" */
    coord__queue q;  /* our lease: a "lease-" contender of "<name>/leases"; its cv and
                        listener also serve the wait for a free lease */
    bool held;
    struct sem_op *async; /* loop mode: the acquire in flight (the client's waiter mutex) */
};

int coord_semaphore_new(coord_semaphore **out, coord_client *c, const char *name,
                        unsigned max_leases) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    if (max_leases == 0) return coord_seterr(COORD_EINVAL, "a semaphore needs max_leases >= 1");
    coord_semaphore *s = calloc(1, sizeof *s);
    if (!s) return coord__oom();
    s->c = c;
    s->max = max_leases;
    int rc = coord__path(&s->path, c, "semaphore", name);
    char *locks = NULL;
    /* The lock and the leases live under the semaphore: "<name>/locks", "<name>/leases". */
    if (!rc && (asprintf(&locks, "%s/locks", s->path) < 0 ||
                asprintf(&s->leases, "%s/leases", s->path) < 0))
        rc = coord__oom();
    if (!rc) rc = coord__queue_init_at(&s->lk, c, locks, "semaphore", "lock-");
    if (!rc) rc = coord__queue_init_at(&s->q, c, s->leases, "semaphore", "lease-");
    free(locks);
    if (rc) {
        coord_semaphore_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* The stored limit equals ours: store it when the semaphore has none yet. */
static int check_limit(coord_semaphore *s, int timeout_ms) {
    if (s->limit_ok) return 0;
    coord_conn *k = coord__client_conn(s->c);
    char want[16];
    int wl = snprintf(want, sizeof want, "%u", s->max);
    for (int attempt = 0; attempt < 4; attempt++) {
        coord_kv kv = {0};
        int rc = k->backend->get(k, s->path, &kv, timeout_ms);
        if (rc == COORD_ENOTFOUND || (rc == 0 && kv.len == 0)) {
            /* None yet (or a limit-less entry another tool made): ours. */
            int64_t expect = rc ? COORD_VERSION_ABSENT : kv.version;
            coord_kv_clear(&kv);
            rc = k->backend->put(k, s->path, want, (size_t)wl, expect, 0, NULL, timeout_ms);
            if (rc == COORD_ECONFLICT) continue; /* someone else stored one: read it */
            if (!rc) s->limit_ok = true;
            return rc;
        }
        if (rc) return rc;
        bool same = kv.len == (size_t)wl && !memcmp(kv.value, want, kv.len);
        char got[24];
        snprintf(got, sizeof got, "%.*s", kv.len < 20 ? (int)kv.len : 20, (const char *)kv.value);
        coord_kv_clear(&kv);
        if (!same)
            return coord_seterr(COORD_ECONFLICT, "semaphore %s has the limit %s, not %u", s->path,
                                got, s->max);
        s->limit_ok = true;
        return 0;
    }
    return coord_seterr(COORD_ECONFLICT, "semaphore %s: its limit keeps changing", s->path);
}

static int64_t left_of(int64_t deadline, int fallback) {
    if (deadline == INT64_MAX) return fallback;
    int64_t l = deadline - coord__now_ms();
    return l < 1 ? 1 : l < fallback ? l : fallback;
}

/* Holding the lock: make our lease and wait until it is within the limit (or `deadline`,
 * INT64_MAX for none or for a try, whose calls get the operation timeout). */
static int take_lease(coord_semaphore *s, int timeout_ms, int64_t deadline) {
    coord_conn *k = coord__client_conn(s->c);
    int op = coord__client_timeout(s->c);
    coord_watch *w = NULL;
    /* The lease, as a contender of the leases' queue: Curator's "_c_<uuid>-lease-<seq>". */
    int rc = coord__orphan_settle(s->c, &s->q, (int)left_of(deadline, op));
    bool first = false;
    coord_kv pred = {0};
    int64_t after;
    if (!rc) {
        s->q.epoch = coord__session_epoch(s->c);
        rc = k->backend->lock_enqueue(k, s->leases, s->q.tag, "lease-", NULL, NULL, 0, &s->q.mine,
                                      &first, &pred, &after, (int)left_of(deadline, op));
        coord_kv_clear(&pred);
        if (coord__no_server(rc)) {
            coord__orphan_ref o = {&s->q, s->leases, s->q.tag, 0, s->q.epoch};
            coord__orphan_hand(s->c, &o);
        }
    }
    /* No older lease: ours is within the limit, whatever the count (a newer one is made only by
     * a later holder of the lock, whose count includes ours), so the uncontended path neither
     * watches nor lists the leases, as Curator's does not list them twice. Else watch them
     * before counting, so that a release after the count wakes us. */
    if (!rc && !first) {
        coord__client_lock(s->c);
        s->q.woken = false;
        coord__client_unlock(s->c);
        rc = k->backend->watch(k, s->leases, COORD_WATCH_CHILDREN, 0, coord__queue_wake, &s->q, &w);
    }
    while (!rc && !first) {
        coord_kv *kids = NULL;
        size_t n = 0;
        rc = k->backend->list(k, s->leases, COORD_LIST_NAMES, &kids, &n, NULL,
                              (int)left_of(deadline, op));
        /* Ours must be among them: gone, it went with its session, whatever the count says. */
        const char *me = strrchr(s->q.mine.key, '/') + 1;
        bool mine = false;
        for (size_t i = 0; !rc && i < n && !mine; i++)
            mine = !strcmp(kids[i].key, me);
        coord_kv_array_free(kids, n);
        if (rc) break;
        if (!mine) {
            rc = coord_seterr(COORD_ESESSION, "semaphore %s: the lease vanished (session lost)",
                              s->path);
            break;
        }
        if (n <= s->max) break; /* ours is within the limit */
        if (timeout_ms == 0) {
            rc = coord_seterr(COORD_ELOCKED, "semaphore %s: all %u leases are taken", s->path,
                              s->max);
            break;
        }
        coord__client_lock(s->c);
        while (!s->q.woken && !atomic_load(&s->q.cancel) &&
               coord__session_epoch(s->c) == s->q.epoch && coord__now_ms() < deadline)
            coord__client_wait_cv(s->c, &s->q.cv, deadline);
        s->q.woken = false;
        coord__client_unlock(s->c);
        if (atomic_exchange(&s->q.cancel, false))
            rc = coord_seterr(COORD_ECANCELED, "acquire of %s canceled", s->path);
        else if (coord__session_epoch(s->c) != s->q.epoch)
            rc = coord_seterr(COORD_ESESSION, "session expired while waiting for %s", s->path);
        else if (coord__now_ms() >= deadline)
            rc = coord_seterr(COORD_ETIMEDOUT, "semaphore %s: no lease within %d ms", s->path,
                              timeout_ms);
    }
    if (w) k->backend->unwatch(k, w);
    if (rc && s->q.mine.key) {
        coord__error_buf saved;
        coord__error_save(&saved);
        coord__queue_leave(&s->q, 0); /* nothing left behind */
        coord__error_restore(&saved);
    }
    return rc;
}

int coord_semaphore_acquire(coord_semaphore *s, int timeout_ms) {
    if (!s) return coord_seterr(COORD_EINVAL, "semaphore is NULL");
    if (coord_semaphore_held(s))
        return coord_seterr(COORD_EINVAL, "this handle holds a lease of %s already", s->path);
    s->held = false;
    coord_kv_clear(&s->q.mine);
    /* A cancel asked for before this acquire: consumed here, at both stages. */
    bool c1 = atomic_exchange(&s->q.cancel, false), c2 = atomic_exchange(&s->lk.cancel, false);
    if (c1 || c2) return coord_seterr(COORD_ECANCELED, "acquire of %s canceled", s->path);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : coord__now_ms() + timeout_ms;
    /* A try (0) gives each call the operation timeout: it only does not wait. */
    int64_t calls = timeout_ms == 0 ? INT64_MAX : deadline;
    int rc = check_limit(s, (int)left_of(calls, coord__client_timeout(s->c)));
    if (rc) return rc;
    /* Waiters queue on the lock; a cancel reaches the lock's wait too. */
    int left = timeout_ms < 0 ? -1 : timeout_ms == 0 ? 0 : (int)left_of(deadline, INT32_MAX);
    rc = coord__queue_enter(&s->lk, NULL, 0, left);
    if (rc == COORD_ELOCKED)
        return coord_seterr(COORD_ELOCKED, "semaphore %s: all %u leases are taken", s->path,
                            s->max);
    if (rc == COORD_ETIMEDOUT)
        return coord_seterr(COORD_ETIMEDOUT, "semaphore %s: no lease within %d ms", s->path,
                            timeout_ms);
    if (rc) return rc;
    rc = take_lease(s, timeout_ms, calls);
    coord__error_buf saved;
    coord__error_save(&saved);
    coord__queue_leave(&s->lk, coord__client_timeout(s->c)); /* the next waiter's turn */
    atomic_store(&s->q.cancel, false); /* a cancel that came after its stage's wait */
    atomic_store(&s->lk.cancel, false);
    coord__error_restore(&saved);
    if (rc) return rc;
    s->held = true;
    return 0;
}

bool coord_semaphore_held(const coord_semaphore *s) {
    return s && s->held && coord__session_epoch(s->c) == s->q.epoch;
}

int coord_semaphore_release(coord_semaphore *s) {
    if (!s) return coord_seterr(COORD_EINVAL, "semaphore is NULL");
    bool held = coord_semaphore_held(s);
    if (!s->held) return coord_seterr(COORD_ENOTHELD, "this handle holds no lease");
    s->held = false;
    if (!held) {
        coord_kv_clear(&s->q.mine);
        return coord_seterr(COORD_ENOTHELD, "the lease was lost with its session");
    }
    int rc = coord__queue_leave(&s->q, coord__client_timeout(s->c));
    if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION)
        return coord_seterr(COORD_ENOTHELD, "the lease vanished (session expired)");
    return rc;
}

static void sem_wake(struct sem_op *t);

void coord_semaphore_cancel(coord_semaphore *s) {
    if (!s) return;
    coord__queue_cancel(&s->lk);
    coord__queue_cancel(&s->q);
    coord__client_lock(s->c);
    struct sem_op *t = s->async;
    coord__client_unlock(s->c);
    if (t) sem_wake(t);
}

static void sem_reap(coord_semaphore *s);

void coord_semaphore_free(coord_semaphore *s) {
    if (!s) return;
    sem_reap(s);
    if (coord_semaphore_held(s)) coord__queue_leave(&s->q, 0); /* one try, then the client's */
    coord__queue_destroy(&s->lk);
    coord__queue_destroy(&s->q);
    free(s->path);
    free(s->leases);
    free(s);
}

/* ---- loop mode: the acquire as steps ----
 *
 * The limit's check (a job), the internal lock (the queue's async enter), then, holding it, the
 * lease and the count of leases (jobs), each count after a change of the leases (their watch),
 * the session's loss, a cancel or the deadline (a timer); the lock's release ends it. One step
 * at a time: a wake-up during a step makes it run again.
 */
typedef struct sem_op {
    coord__aop op;
    coord__stepper st; /* the lease's steps, holding the lock */
    coord_semaphore *s;
    int timeout_ms;
    int64_t deadline, calls;
    bool locked, leased;
    coord_watch *w;
    coord__listener listener;
    coord_done_fn done;
    void *payload;
} sem_op;

#define SEM_OF(stp) ((sem_op *)((char *)(stp)-offsetof(sem_op, st)))

static void sem_wake(sem_op *t) {
    coord__stepper_wake(&t->st, 0);
}

static void sem_state(void *payload, coord_session_state st) {
    if (st == COORD_SESSION_LOST) sem_wake(payload);
}

/* Holding the lock: the lease (once), then a count. 1 while waiting, else the result. */
static int sem_lease(coord__stepper *st) {
    sem_op *t = SEM_OF(st);
    coord_semaphore *s = t->s;
    coord_conn *k = coord__client_conn(s->c);
    int op = coord__client_timeout(s->c);
    int rc;
    if (!t->leased) {
        if ((rc = coord__orphan_settle(s->c, &s->q, (int)left_of(t->calls, op)))) return rc;
        bool first = false;
        coord_kv pred = {0};
        int64_t after;
        s->q.epoch = coord__session_epoch(s->c);
        rc = k->backend->lock_enqueue(k, s->leases, s->q.tag, "lease-", NULL, NULL, 0, &s->q.mine,
                                      &first, &pred, &after, (int)left_of(t->calls, op));
        coord_kv_clear(&pred);
        if (coord__no_server(rc)) {
            coord__orphan_ref o = {&s->q, s->leases, s->q.tag, 0, s->q.epoch};
            coord__orphan_hand(s->c, &o);
        }
        if (rc) return rc;
        t->leased = true;
        if (first) return 0; /* no older lease: within the limit (see take_lease) */
        coord_watch *w = NULL;
        rc = k->backend->watch(k, s->leases, COORD_WATCH_CHILDREN, 0, coord__stepper_event, st, &w);
        t->w = w;
        if (rc) return rc;
        if (t->deadline != INT64_MAX && t->timeout_ms > 0) coord__stepper_timer(st, t->deadline);
    }
    coord_kv *kids = NULL;
    size_t n = 0;
    rc = k->backend->list(k, s->leases, COORD_LIST_NAMES, &kids, &n, NULL,
                          (int)left_of(t->calls, op));
    const char *me = strrchr(s->q.mine.key, '/') + 1;
    bool mine = false;
    for (size_t i = 0; !rc && i < n && !mine; i++)
        mine = !strcmp(kids[i].key, me);
    coord_kv_array_free(kids, n);
    if (rc) return rc;
    if (!mine)
        return coord_seterr(COORD_ESESSION, "semaphore %s: the lease vanished (session lost)",
                            s->path);
    if (n <= s->max) return 0;
    if (t->timeout_ms == 0)
        return coord_seterr(COORD_ELOCKED, "semaphore %s: all %u leases are taken", s->path,
                            s->max);
    if (atomic_exchange(&s->q.cancel, false))
        return coord_seterr(COORD_ECANCELED, "acquire of %s canceled", s->path);
    if (coord__session_epoch(s->c) != s->q.epoch)
        return coord_seterr(COORD_ESESSION, "session expired while waiting for %s", s->path);
    if (coord__now_ms() >= t->deadline)
        return coord_seterr(COORD_ETIMEDOUT, "semaphore %s: no lease within %d ms", s->path,
                            t->timeout_ms);
    return 1;
}

/* The acquire's end (a job): the watch, the lease when it failed, the lock. */
static void sem_end(coord__stepper *st, int rc) {
    sem_op *t = SEM_OF(st);
    coord_semaphore *s = t->s;
    coord_conn *k = coord__client_conn(s->c);
    coord__client_unlisten(s->c, &t->listener);
    if (t->w) k->backend->unwatch(k, t->w);
    t->w = NULL;
    coord__error_buf saved;
    coord__error_save(&saved);
    if (rc && s->q.mine.key) coord__queue_leave(&s->q, 0); /* nothing left behind */
    if (t->locked) coord__queue_leave(&s->lk, coord__client_timeout(s->c)); /* the next's turn */
    atomic_store(&s->q.cancel, false);
    atomic_store(&s->lk.cancel, false);
    coord__error_restore(&saved);
    coord__aop_finish(&t->op, rc); /* last: its delivery frees t */
}

/* The internal lock's enter ended (inside process). */
static void sem_locked(coord__queue *q, int rc, void *payload) {
    (void)q;
    sem_op *t = payload;
    coord_semaphore *s = t->s;
    if (rc == COORD_ELOCKED)
        rc = coord_seterr(COORD_ELOCKED, "semaphore %s: all %u leases are taken", s->path, s->max);
    else if (rc == COORD_ETIMEDOUT)
        rc = coord_seterr(COORD_ETIMEDOUT, "semaphore %s: no lease within %d ms", s->path,
                          t->timeout_ms);
    if (rc) {
        coord__client_unlisten(s->c, &t->listener);
        coord__aop_finish(&t->op, rc);
        return;
    }
    t->locked = true;
    sem_wake(t);
}

/* The first job: the stored limit, then the internal lock. */
static void sem_start(void *arg, uint64_t tag) {
    (void)tag;
    sem_op *t = arg;
    coord_semaphore *s = t->s;
    int rc = check_limit(s, (int)left_of(t->calls, coord__client_timeout(s->c)));
    int left = t->timeout_ms < 0    ? -1
               : t->timeout_ms == 0 ? 0
                                    : (int)left_of(t->deadline, INT32_MAX);
    if (!rc) rc = coord__queue_enter_async(&s->lk, NULL, 0, left, sem_locked, t);
    if (rc) {
        coord__client_unlisten(s->c, &t->listener);
        coord__aop_finish(&t->op, rc);
    }
}

static void sem_deliver(coord__aop *op, int rc) {
    sem_op *t = (sem_op *)op;
    coord_semaphore *s = t->s;
    if (s) {
        coord__client_lock(s->c);
        s->async = NULL;
        coord__client_unlock(s->c);
        if (!rc) s->held = true;
    }
    coord_done_fn done = t->done;
    void *payload = t->payload;
    coord__stepper_destroy(&t->st);
    free(t);
    done(rc, payload);
}

/* At close, the jobs stopped: drop the watch and the listener. */
static void sem_abort(coord__aop *op) {
    sem_op *t = (sem_op *)op;
    coord_conn *k = coord__client_conn(t->s->c);
    coord__client_unlisten(t->s->c, &t->listener);
    if (t->w) k->backend->unwatch(k, t->w);
    t->w = NULL;
}

/* A semaphore freed with its acquire in flight: it ends, its done runs now. */
static void sem_reap(coord_semaphore *s) {
    if (!s->c || !coord__client_loop(s->c)) return;
    coord__client_lock(s->c);
    sem_op *t = s->async;
    coord__client_unlock(s->c);
    if (!t) return;
    coord__stepper_halt(&t->st);
    coord__loop_unjob(s->c, t); /* the first job */
    coord__loop_unjob(s->c, &t->st);
    coord__queue_enter_reap(&s->lk); /* the lock's enter, if in flight: sem_locked sees t */
    if (!coord__client_closed(s->c)) sem_abort(&t->op);
    coord__aop_reap(&t->op);
}

int coord_semaphore_acquire_async(coord_semaphore *s, int timeout_ms, coord_done_fn done,
                                  void *payload) {
    if (!s || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (coord_semaphore_held(s))
        return coord_seterr(COORD_EINVAL, "this handle holds a lease of %s already", s->path);
    coord__client_lock(s->c);
    bool busy = s->async != NULL;
    coord__client_unlock(s->c);
    if (busy || s->q.leaving)
        return coord_seterr(COORD_EINVAL, "semaphore %s: an operation is in flight", s->path);
    bool c1 = atomic_exchange(&s->q.cancel, false), c2 = atomic_exchange(&s->lk.cancel, false);
    if (c1 || c2) return coord_seterr(COORD_ECANCELED, "acquire of %s canceled", s->path);
    sem_op *t = calloc(1, sizeof *t);
    if (!t) return coord__oom();
    t->op = (coord__aop){.deliver = sem_deliver, .abort = sem_abort};
    t->s = s;
    t->timeout_ms = timeout_ms;
    t->deadline = timeout_ms < 0 ? INT64_MAX : coord__now_ms() + timeout_ms;
    t->calls = timeout_ms == 0 ? INT64_MAX : t->deadline;
    t->done = done;
    t->payload = payload;
    t->listener = (coord__listener){.fn = sem_state, .payload = t};
    coord__stepper_init(&t->st, s->c, sem_lease, sem_end);
    int rc = coord__aop_start(s->c, &t->op);
    if (rc) {
        coord__stepper_destroy(&t->st);
        free(t);
        return rc;
    }
    s->held = false;
    coord_kv_clear(&s->q.mine);
    coord__client_listen(s->c, &t->listener);
    coord__client_lock(s->c);
    s->async = t;
    coord__client_unlock(s->c);
    /* closing meanwhile: done runs at the close */
    if ((rc = coord__loop_job(s->c, 0, sem_start, t, 0))) {
        coord__client_unlisten(s->c, &t->listener);
        coord__aop_finish(&t->op, rc);
    }
    return 0;
}

int coord_semaphore_release_async(coord_semaphore *s, coord_done_fn done, void *payload) {
    if (!s) return coord_seterr(COORD_EINVAL, "semaphore is NULL");
    return coord__queue_release_async(&s->q, &s->held, done, payload);
}
