/*
 * Counting semaphore (coord.h, "Semaphore"), Curator's InterProcessSemaphoreV2 algorithm: a
 * waiter first takes the semaphore's internal lock ("locks", a coord lock, so waiters queue in
 * arrival order, each watching only its predecessor), then makes its lease and, holding the lock,
 * waits until the leases are at most the limit. Only the lock holder watches the leases, so a
 * release wakes one waiter.
 */
#include <stdatomic.h>
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
        if (rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT) {
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

void coord_semaphore_cancel(coord_semaphore *s) {
    if (!s) return;
    coord__queue_cancel(&s->lk);
    coord__queue_cancel(&s->q);
}

void coord_semaphore_free(coord_semaphore *s) {
    if (!s) return;
    if (coord_semaphore_held(s)) coord__queue_leave(&s->q, 0); /* one try, then the client's */
    coord__queue_destroy(&s->lk);
    coord__queue_destroy(&s->q);
    free(s->path);
    free(s->leases);
    free(s);
}
