/*
 * Distributed lock: a place in a queue of contenders (queue.c) whose first holds the lock. The
 * fencing token is the contender's creation number (etcd create revision, ZooKeeper czxid).
 */
#include <stdlib.h>

#include "internal.h"

struct coord_lock {
    coord__queue q;
    bool held; /* the queue's contender holds the lock, while its session (q.epoch) lasts */
    /* loop mode: the application's done of the acquire in flight, and a release in flight */
    coord_done_fn done;
    void *payload;
};

int coord_lock_new(coord_lock **out, coord_client *c, const char *name) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    coord_lock *l = calloc(1, sizeof *l);
    if (!l) return coord__oom();
    int rc = coord__queue_init(&l->q, c, "lock", name, "lock-");
    if (rc) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void coord_lock_cancel(coord_lock *l) {
    if (l) coord__queue_cancel(&l->q);
}

int coord_lock_acquire(coord_lock *l, int timeout_ms) {
    if (!l) return coord_seterr(COORD_EINVAL, "lock is NULL");
    if (coord_lock_held(l))
        return coord_seterr(COORD_EINVAL, "%s is already held by this handle", l->q.dir);
    l->held = false;
    int rc = coord__queue_enter(&l->q, NULL, 0, timeout_ms);
    if (rc == COORD_ETIMEDOUT)
        return coord_seterr(COORD_ETIMEDOUT, "%s not acquired within %d ms", l->q.dir, timeout_ms);
    if (rc) return rc;
    l->held = true;
    return 0;
}

bool coord_lock_held(const coord_lock *l) {
    return l && l->held && coord__session_epoch(l->q.c) == l->q.epoch;
}

int coord_lock_token(const coord_lock *l, uint64_t *out) {
    if (!l || !out) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (!coord_lock_held(l)) return coord_seterr(COORD_ENOTHELD, "lock is not held");
    *out = l->q.mine.token;
    return 0;
}

int coord_lock_release(coord_lock *l) {
    if (!l) return coord_seterr(COORD_EINVAL, "lock is NULL");
    bool held = coord_lock_held(l);
    if (!l->held) return coord_seterr(COORD_ENOTHELD, "lock is not held");
    l->held = false;
    if (!held) {
        coord_kv_clear(&l->q.mine);
        return coord_seterr(COORD_ENOTHELD, "lock was lost with its session");
    }
    /* Tried across reconnects for the operation timeout, then left to the client, which
     * deletes the contender as soon as a server answers: the handle holds nothing either way. */
    int rc = coord__queue_leave(&l->q, coord__client_timeout(l->q.c));
    if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION)
        return coord_seterr(COORD_ENOTHELD, "lock node vanished (session expired)");
    return rc;
}

bool coord__lock_waiting(coord_lock *l) {
    return coord__queue_waiting(&l->q);
}

coord_client *coord__lock_client(const coord_lock *l) {
    return l->q.c;
}

const coord_kv *coord__lock_entry(const coord_lock *l) {
    return coord_lock_held(l) ? &l->q.mine : NULL;
}

/* ---- loop mode ---- */

static void acquired(coord__queue *q, int rc, void *payload) {
    (void)payload;
    coord_lock *l = (coord_lock *)q;
    if (!rc) l->held = true;
    if (rc == COORD_ETIMEDOUT) coord_seterr(COORD_ETIMEDOUT, "%s not acquired in time", q->dir);
    l->done(rc, l->payload);
}

int coord_lock_acquire_async(coord_lock *l, int timeout_ms, coord_done_fn done, void *payload) {
    if (!l || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (coord_lock_held(l))
        return coord_seterr(COORD_EINVAL, "%s is already held by this handle", l->q.dir);
    if (l->q.leaving || coord__queue_entering(&l->q))
        return coord_seterr(COORD_EINVAL, "%s: an operation is in flight on this handle", l->q.dir);
    l->held = false;
    l->done = done;
    l->payload = payload;
    return coord__queue_enter_async(&l->q, NULL, 0, timeout_ms, acquired, NULL);
}

int coord_lock_release_async(coord_lock *l, coord_done_fn done, void *payload) {
    if (!l) return coord_seterr(COORD_EINVAL, "lock is NULL");
    if (l->q.leaving || coord__queue_entering(&l->q))
        return coord_seterr(COORD_EINVAL, "%s: an operation is in flight on this handle", l->q.dir);
    return coord__queue_release_async(&l->q, &l->held, done, payload);
}

void coord_lock_free(coord_lock *l) {
    if (!l) return;
    /* One try, then the client's: free does not wait for a server. */
    if (coord_lock_held(l)) coord__queue_leave(&l->q, 0);
    coord__queue_destroy(&l->q);
    free(l);
}
