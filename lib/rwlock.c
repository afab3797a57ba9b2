/*
 * Read-write lock (coord.h, "Read-write lock"): readers and writers queue in one queue
 * (queue.c) in arrival order; a writer waits for whoever is just before it, a reader only for
 * the last writer queued before it, so readers overlap and a waiting writer is not starved by
 * later readers. Curator's InterProcessReadWriteLock names on ZooKeeper, etcd's recipe layout
 * (read/ and write/) on etcd.
 */
#include <stdlib.h>

#include "internal.h"

#define READER "__READ__"
#define WRITER "__WRIT__"

struct coord_rwlock {
    coord__queue q;
    bool held; /* while its session (q.epoch) lasts */
    bool write;
    coord_done_fn done; /* loop mode: the wait's */
};

int coord_rwlock_new(coord_rwlock **out, coord_client *c, const char *name) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    coord_rwlock *l = calloc(1, sizeof *l);
    if (!l) return coord__oom();
    int rc = coord__queue_init(&l->q, c, "rwlock", name, WRITER);
    if (rc) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

bool coord_rwlock_held(const coord_rwlock *l) {
    return l && l->held && coord__session_epoch(l->q.c) == l->q.epoch;
}

/* Ready the queue for a reader or a writer: 0 when the handle may wait. */
static int take_begin(coord_rwlock *l, bool write) {
    if (!l) return coord_seterr(COORD_EINVAL, "rwlock is NULL");
    if (coord_rwlock_held(l))
        return coord_seterr(COORD_EINVAL, "%s is already held by this handle", l->q.dir);
    if (l->q.leaving || coord__queue_entering(&l->q))
        return coord_seterr(COORD_EINVAL, "%s: an operation is in flight on this handle", l->q.dir);
    l->held = false;
    l->write = write;
    l->q.kind = write ? WRITER : READER;
    l->q.only = write ? NULL : WRITER; /* a reader waits for writers alone */
    return 0;
}

static int take_end(coord_rwlock *l, int rc, int timeout_ms) {
    if (rc == COORD_ETIMEDOUT)
        return coord_seterr(COORD_ETIMEDOUT, "%s not %s-locked within %d ms", l->q.dir,
                            l->write ? "write" : "read", timeout_ms);
    if (!rc) l->held = true;
    return rc;
}

static int take(coord_rwlock *l, bool write, int timeout_ms) {
    int rc = take_begin(l, write);
    if (rc) return rc;
    return take_end(l, coord__queue_enter(&l->q, NULL, 0, timeout_ms), timeout_ms);
}

static void taken(coord__queue *q, int rc, void *payload) {
    coord_rwlock *l = (coord_rwlock *)q;
    l->done(take_end(l, rc, l->q.aw.timeout_ms), payload);
}

static int take_async(coord_rwlock *l, bool write, int timeout_ms, coord_done_fn done,
                      void *payload) {
    if (!done) return coord_seterr(COORD_EINVAL, "done is NULL");
    int rc = take_begin(l, write);
    if (rc) return rc;
    l->done = done;
    return coord__queue_enter_async(&l->q, NULL, 0, timeout_ms, taken, payload);
}

int coord_rwlock_rdlock_async(coord_rwlock *l, int timeout_ms, coord_done_fn done, void *payload) {
    return take_async(l, false, timeout_ms, done, payload);
}

int coord_rwlock_wrlock_async(coord_rwlock *l, int timeout_ms, coord_done_fn done, void *payload) {
    return take_async(l, true, timeout_ms, done, payload);
}

int coord_rwlock_unlock_async(coord_rwlock *l, coord_done_fn done, void *payload) {
    if (!l) return coord_seterr(COORD_EINVAL, "rwlock is NULL");
    return coord__queue_release_async(&l->q, &l->held, done, payload);
}

int coord_rwlock_rdlock(coord_rwlock *l, int timeout_ms) {
    return take(l, false, timeout_ms);
}

int coord_rwlock_wrlock(coord_rwlock *l, int timeout_ms) {
    return take(l, true, timeout_ms);
}

int coord_rwlock_unlock(coord_rwlock *l) {
    if (!l) return coord_seterr(COORD_EINVAL, "rwlock is NULL");
    bool held = coord_rwlock_held(l);
    if (!l->held) return coord_seterr(COORD_ENOTHELD, "rwlock is not held");
    l->held = false;
    if (!held) {
        coord_kv_clear(&l->q.mine);
        return coord_seterr(COORD_ENOTHELD, "rwlock was lost with its session");
    }
    /* As a lock release: tried for the operation timeout, then the client's. */
    int rc = coord__queue_leave(&l->q, coord__client_timeout(l->q.c));
    if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION)
        return coord_seterr(COORD_ENOTHELD, "rwlock entry vanished (session expired)");
    return rc;
}

int coord_rwlock_token(const coord_rwlock *l, uint64_t *out) {
    if (!l || !out) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (!coord_rwlock_held(l)) return coord_seterr(COORD_ENOTHELD, "rwlock is not held");
    *out = l->q.mine.token;
    return 0;
}

void coord_rwlock_cancel(coord_rwlock *l) {
    if (l) coord__queue_cancel(&l->q);
}

void coord_rwlock_free(coord_rwlock *l) {
    if (!l) return;
    if (coord_rwlock_held(l)) coord__queue_leave(&l->q, 0); /* one try, then the client's */
    coord__queue_destroy(&l->q);
    free(l);
}
