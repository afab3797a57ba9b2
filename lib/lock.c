/*
 * Distributed lock, written once over the backend's lock queue slots: enqueue a contender, and
 * until it is first, watch only its immediate predecessor (no herd, FIFO). The fencing token is
 * the contender's creation number (etcd create revision, ZooKeeper czxid).
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct coord_lock {
    coord_client *c;
    char *dir;
    bool held;
    uint64_t epoch; /* coord__session_epoch() when the hold began */
    coord_kv mine;
    /* A waiting acquire sleeps on `cv` with the client's waiter mutex, woken alone by its
     * predecessor's deletion, a cancel or (through `listener`) the loss of the session: a
     * condition shared by the client's waiters would wake all of them at every hand-off. */
    pthread_cond_t cv;
    coord__listener listener;
    bool woken; /* guarded by the client's waiter mutex */
    _Atomic bool cancel;
    /* Names this handle's contenders: the same for every attempt of the handle (lock_enqueue's
     * contract). etcd keeps every key ever made under the prefix in its index until a
     * compaction, and each queue range walks them all, so a fresh key per acquire would slow
     * every later acquire down. A contender the handle left behind (see orphans in internal.h)
     * is deleted before its next enqueue, so the tag names one contender at a time. */
    char tag[37];
};

static _Atomic uint64_t lock_wakeups;

uint64_t coord__lock_wakeups(void) {
    return atomic_load(&lock_wakeups);
}

static void on_session(void *payload, coord_session_state st) {
    coord_lock *l = payload;
    if (st == COORD_SESSION_LOST) coord__client_signal(l->c, &l->cv);
}

int coord_lock_new(coord_lock **out, coord_client *c, const char *name) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    coord_lock *l = calloc(1, sizeof *l);
    if (!l) return coord__oom();
    int rc = coord__path(&l->dir, c, "lock", name);
    if (!rc) rc = coord__uuid(l->tag);
    if (!rc && coord__cond_init(&l->cv))
        rc = coord_seterr(COORD_ENOMEM, "pthread_cond_init failed");
    if (rc) {
        free(l->dir);
        free(l);
        return rc;
    }
    l->c = c;
    l->listener = (coord__listener){.fn = on_session, .payload = l};
    coord__client_listen(c, &l->listener);
    *out = l;
    return 0;
}

static void on_predecessor(void *payload, coord_watch_event ev, int64_t rev) {
    (void)rev;
    coord_lock *l = payload;
    if (ev == COORD_EV_DELETED) atomic_fetch_add(&lock_wakeups, 1);
    coord__client_lock(l->c);
    l->woken = true;
    pthread_cond_signal(&l->cv);
    coord__client_unlock(l->c);
}

void coord_lock_cancel(coord_lock *l) {
    if (!l) return;
    atomic_store(&l->cancel, true);
    coord__client_signal(l->c, &l->cv);
}

/* A cancel asked for: consume it. */
static bool canceled(coord_lock *l) {
    return atomic_exchange(&l->cancel, false);
}

/* Time left for one backend call: the client's operation timeout, within the deadline. */
static int op_budget(const coord_lock *l, int64_t deadline) {
    int t = coord__client_timeout(l->c);
    if (deadline == INT64_MAX) return t;
    int64_t left = deadline - coord__now_ms();
    if (left < 1) left = 1;
    return left < t ? (int)left : t;
}

/* Delete our contender (l->mine, cleared after), trying for `timeout_ms`, then leaving it to
 * the client (see orphans in internal.h). Its path is ours alone: the tag is in it. */
static int remove_contender(coord_lock *l, uint64_t epoch, int timeout_ms) {
    coord__orphan_ref o = {l, l->mine.key, NULL, COORD_VERSION_ANY, epoch};
    int rc = coord__orphan_delete(l->c, &o, timeout_ms);
    coord_kv_clear(&l->mine);
    return rc;
}

/* Remove our contender after a failed, timed-out or abandoned attempt: one try, then the
 * client's, so the caller's answer is not held up. */
static void withdraw(coord_lock *l, uint64_t epoch0) {
    coord__error_buf saved;
    coord__error_save(&saved); /* keep the caller's detail */
    remove_contender(l, epoch0, 0);
    coord__error_restore(&saved);
}

/*
 * A waiter's look or watch failed for want of a server (a member failing over, a connection
 * being re-established): the session, and with it our place in the queue, may well survive, so
 * pause (up to a second, growing) and look again, until the deadline, a cancel or the loss of
 * the session decides. True when the caller should look again.
 */
static bool transient(coord_lock *l, int rc, int64_t deadline, uint64_t epoch0, int *pause_ms) {
    if (rc != COORD_EUNAVAILABLE && rc != COORD_ETIMEDOUT) return false;
    int64_t now = coord__now_ms();
    if (now >= deadline || coord__session_epoch(l->c) != epoch0) return false;
    *pause_ms = *pause_ms ? (*pause_ms < 500 ? *pause_ms * 2 : 1000) : 20;
    int64_t until = now + *pause_ms < deadline ? now + *pause_ms : deadline;
    coord__client_lock(l->c);
    /* Woken early by a session change or a cancel, which the loop then handles. */
    while (coord__now_ms() < until && coord__session_epoch(l->c) == epoch0 &&
           !atomic_load(&l->cancel))
        coord__client_wait_cv(l->c, &l->cv, until);
    coord__client_unlock(l->c);
    return true;
}

int coord_lock_acquire(coord_lock *l, int timeout_ms) {
    if (!l) return coord_seterr(COORD_EINVAL, "lock is NULL");
    if (coord_lock_held(l))
        return coord_seterr(COORD_EINVAL, "%s is already held by this handle", l->dir);
    if (l->held) coord_kv_clear(&l->mine); /* a hold lost with its session */
    l->held = false;
    coord_conn *k = coord__client_conn(l->c);
    const coord_backend *be = k->backend;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : coord__now_ms() + timeout_ms;
    uint64_t epoch0 = coord__session_epoch(l->c);
    int rc;
    bool first = false;
    coord_kv pred = {0};
    int64_t after = 0;
    int pause_ms = 0;
    if (canceled(l)) return coord_seterr(COORD_ECANCELED, "acquire of %s canceled", l->dir);
    int budget = timeout_ms == 0 ? coord__client_timeout(l->c) : op_budget(l, deadline);
    /* What this handle left on the server goes first: the new contender comes after it. */
    if ((rc = coord__orphan_settle(l->c, l, budget))) return rc;
    rc = be->lock_enqueue(k, l->dir, l->tag, &l->mine, &first, &pred, &after, budget);
    if (rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT) {
        /* Perhaps made, under a name never learnt: whatever carries the tag is to go. */
        coord__orphan_ref o = {l, l->dir, l->tag, 0, epoch0};
        coord__orphan_hand(l->c, &o);
    }
    if (rc) return rc;
    while (!first) {
        if (timeout_ms == 0) {
            coord_kv_clear(&pred);
            withdraw(l, epoch0);
            return coord_seterr(COORD_ELOCKED, "%s is held by another owner", l->dir);
        }
        if (coord__session_epoch(l->c) != epoch0) {
            coord_kv_clear(&pred);
            withdraw(l, epoch0);
            return coord_seterr(COORD_ESESSION, "session expired while waiting for %s", l->dir);
        }
        if (canceled(l)) {
            coord_kv_clear(&pred);
            withdraw(l, epoch0);
            return coord_seterr(COORD_ECANCELED, "acquire of %s canceled", l->dir);
        }
        if (!pred.key) { /* not known from the enqueue, or a predecessor left: look */
            rc = be->lock_predecessor(k, l->dir, &l->mine, &pred, &after, op_budget(l, deadline));
            if (rc && transient(l, rc, deadline, epoch0, &pause_ms)) continue;
            if (rc) {
                withdraw(l, epoch0);
                return rc;
            }
        }
        if (!pred.key) break; /* every older contender is gone: ours */
        coord__client_lock(l->c);
        l->woken = false;
        coord__client_unlock(l->c);
        coord_watch *w = NULL;
        rc = be->watch(k, pred.key, COORD_WATCH_KEY, after, on_predecessor, l, &w);
        coord_kv_clear(&pred);
        if (rc && transient(l, rc, deadline, epoch0, &pause_ms)) continue;
        if (rc) {
            withdraw(l, epoch0);
            return rc;
        }
        pause_ms = 0;
        coord__client_lock(l->c);
        bool timed_out = false;
        while (!l->woken && coord__session_epoch(l->c) == epoch0 && !atomic_load(&l->cancel)) {
            if (coord__client_wait_cv(l->c, &l->cv, deadline) != 0 && coord__now_ms() >= deadline) {
                timed_out = !l->woken;
                break;
            }
        }
        coord__client_unlock(l->c);
        be->unwatch(k, w);
        if (timed_out) {
            withdraw(l, epoch0);
            return coord_seterr(COORD_ETIMEDOUT, "%s not acquired within %d ms", l->dir,
                                timeout_ms);
        }
        /* Woken: the predecessor left (or the session changed); look again. */
    }
    if (coord__session_epoch(l->c) != epoch0) {
        withdraw(l, epoch0);
        return coord_seterr(COORD_ESESSION, "session expired while acquiring %s", l->dir);
    }
    l->held = true;
    l->epoch = epoch0;
    return 0;
}

bool coord_lock_held(const coord_lock *l) {
    return l && l->held && coord__session_epoch(l->c) == l->epoch;
}

int coord_lock_token(const coord_lock *l, uint64_t *out) {
    if (!l || !out) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (!coord_lock_held(l)) return coord_seterr(COORD_ENOTHELD, "lock is not held");
    *out = l->mine.token;
    return 0;
}

int coord_lock_release(coord_lock *l) {
    if (!l) return coord_seterr(COORD_EINVAL, "lock is NULL");
    bool held = coord_lock_held(l);
    if (!l->held) return coord_seterr(COORD_ENOTHELD, "lock is not held");
    l->held = false;
    if (!held) {
        coord_kv_clear(&l->mine);
        return coord_seterr(COORD_ENOTHELD, "lock was lost with its session");
    }
    /* Tried across reconnects for the operation timeout, then left to the client, which
     * deletes the contender as soon as a server answers: the handle holds nothing either way. */
    int rc = remove_contender(l, l->epoch, coord__client_timeout(l->c));
    if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION)
        return coord_seterr(COORD_ENOTHELD, "lock node vanished (session expired)");
    return rc;
}

void coord_lock_free(coord_lock *l) {
    if (!l) return;
    /* One try, then the client's: free does not wait for a server. */
    if (coord_lock_held(l)) remove_contender(l, l->epoch, 0);
    coord__client_unlisten(l->c, &l->listener);
    pthread_cond_destroy(&l->cv);
    coord_kv_clear(&l->mine);
    free(l->dir);
    free(l);
}
