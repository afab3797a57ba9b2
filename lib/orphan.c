/*
 * Orphans: entries of this client's session that no handle wants any more but the server may
 * still hold (see internal.h). One mechanism for every recipe: a delete that did not get through
 * keeps being tried, first by the caller for its budget, then by the client's orphan thread as
 * soon as a server answers, until the entry is gone or its session is.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct orphan {
    coord__orphan_ref ref; /* path and tag are this struct's own copies */
    bool busy;             /* an attempt on it is under way (thread or a settle) */
    int fails;
    int64_t next_at; /* the thread's next attempt */
    struct orphan *next;
} orphan;

struct coord__orphans {
    coord_client *c;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the thread's wake-ups, and the end of an attempt for settle */
    pthread_t thread;
    bool started, stop;
    coord__listener listener;
    orphan *head;
};

/* Delete one entry: 0 when it is gone or is not ours (any more), with *absent when it was not
 * there; COORD_ESESSION when our session has ended; else the failure. */
static int delete_one(coord_conn *k, const char *path, int64_t version, int timeout_ms,
                      bool *absent) {
    const coord_backend *be = k->backend;
    int rc;
    if (version > 0 || version == COORD_VERSION_ANY) {
        rc = be->del(k, path, version, timeout_ms);
    } else if (be->version >= 2 && be->get_own) {
        coord_kv kv = {0};
        rc = be->get_own(k, path, &kv, timeout_ms);
        if (rc == 0) rc = be->del(k, path, kv.version, timeout_ms);
        coord_kv_clear(&kv);
        if (rc == COORD_EEXISTS) rc = 0; /* another session's: not ours to delete */
    } else {
        rc = be->del(k, path, COORD_VERSION_ANY, timeout_ms);
    }
    if (rc == COORD_ENOTFOUND) *absent = true;
    /* Absent, or changed since: either way nothing of ours is left there. */
    return rc == COORD_ENOTFOUND || rc == COORD_ECONFLICT ? 0 : rc;
}

/* One attempt at an orphan, within `timeout_ms` for each call. */
static int attempt(coord_client *c, const coord__orphan_ref *o, int timeout_ms, bool *absent) {
    *absent = false;
    if (coord__session_epoch(c) != o->epoch)
        return coord_seterr(COORD_ESESSION, "the session of %s has ended", o->path);
    coord_conn *k = coord__client_conn(c);
    if (!o->tag) return delete_one(k, o->path, o->version, timeout_ms, absent);
    coord_kv *kids = NULL;
    size_t n = 0;
    int rc = k->backend->list(k, o->path, COORD_LIST_NAMES, &kids, &n, NULL, timeout_ms);
    for (size_t i = 0; !rc && i < n; i++) {
        if (!strstr(kids[i].key, o->tag)) continue;
        char *p = NULL;
        if (asprintf(&p, "%s/%s", o->path, kids[i].key) < 0) {
            rc = coord__oom();
            break;
        }
        bool gone;
        rc = delete_one(k, p, 0, timeout_ms, &gone);
        free(p);
    }
    coord_kv_array_free(kids, n);
    return rc;
}

static void on_state(void *payload, coord_session_state st) {
    struct coord__orphans *s = payload;
    if (st == COORD_SESSION_SUSPENDED) return;
    pthread_mutex_lock(&s->mu);
    for (orphan *o = s->head; o; o = o->next)
        o->next_at = 0; /* a server again, or a lost session to drop them for */
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void orphan_free(orphan *o) {
    if (!o) return;
    free((char *)o->ref.path);
    free((char *)o->ref.tag);
    free(o);
}

/* Unlink `o` from the list (mu held). */
static void unlink_orphan(struct coord__orphans *s, orphan *o) {
    for (orphan **pp = &s->head; *pp; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            return;
        }
}

/* After an attempt on `o` (mu held): drop it when done, else schedule the next one. The pause
 * grows to 250 ms at most, so an entry goes within a fraction of a second of a server's return
 * even where the backend reports CONNECTED late (etcd notices at its next keepalive). */
static void after_attempt(struct coord__orphans *s, orphan *o, int rc) {
    o->busy = false;
    if (coord__no_server(rc) && coord__session_epoch(s->c) == o->ref.epoch) {
        if (o->fails < 4) o->fails++;
        o->next_at = coord__now_ms() + (int64_t)(15 << o->fails);
    } else {
        unlink_orphan(s, o);
        orphan_free(o);
    }
    pthread_cond_broadcast(&s->cv);
}

static void *reaper(void *arg) {
    struct coord__orphans *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        int64_t now = coord__now_ms(), next = INT64_MAX;
        orphan *pick = NULL;
        for (orphan *o = s->head; o && !pick; o = o->next) {
            if (o->busy) continue;
            if (o->next_at <= now)
                pick = o;
            else if (o->next_at < next)
                next = o->next_at;
        }
        if (!pick) {
            if (next == INT64_MAX) {
                pthread_cond_wait(&s->cv, &s->mu);
            } else {
                struct timespec dl = coord__deadline(next - now);
                pthread_cond_timedwait(&s->cv, &s->mu, &dl);
            }
            continue;
        }
        pick->busy = true;
        coord__orphan_ref ref = pick->ref;
        pthread_mutex_unlock(&s->mu);
        bool absent;
        int rc = attempt(s->c, &ref, coord__client_timeout(s->c), &absent);
        pthread_mutex_lock(&s->mu);
        after_attempt(s, pick, rc);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The client's orphan state, made at the first need. Made under a mutex of its own, taken
 * before the client's listener mutex (coord__client_listen) and never inside a listener, so no
 * order with the client's other mutexes arises. */
static pthread_mutex_t make_mu = PTHREAD_MUTEX_INITIALIZER;

static struct coord__orphans *state(coord_client *c) {
    _Atomic(struct coord__orphans *) *sp = coord__client_orphans(c);
    struct coord__orphans *s = atomic_load(sp);
    if (s) return s;
    pthread_mutex_lock(&make_mu);
    if (!(s = atomic_load(sp)) && (s = calloc(1, sizeof *s))) {
        s->c = c;
        pthread_mutex_init(&s->mu, NULL);
        coord__cond_init(&s->cv);
        s->listener = (coord__listener){.fn = on_state, .payload = s};
        coord__client_listen(c, &s->listener);
        atomic_store(sp, s);
    }
    pthread_mutex_unlock(&make_mu);
    return s;
}

static orphan *orphan_new(const coord__orphan_ref *ref) {
    orphan *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->ref = *ref;
    o->ref.path = strdup(ref->path);
    o->ref.tag = ref->tag ? strdup(ref->tag) : NULL;
    if (!o->ref.path || (ref->tag && !o->ref.tag)) {
        orphan_free(o);
        return NULL;
    }
    return o;
}

int coord__orphan_hand(coord_client *c, const coord__orphan_ref *ref) {
    if (coord__session_epoch(c) != ref->epoch) return 0; /* gone with its session */
    struct coord__orphans *s = state(c);
    orphan *o = s ? orphan_new(ref) : NULL;
    if (!o) return coord__oom();
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (!s->started && !s->stop) {
        if (pthread_create(&s->thread, NULL, reaper, s) == 0)
            s->started = true;
        else
            rc = coord_seterr(COORD_ENOMEM, "cannot start the client's orphan thread");
    }
    if (!rc) {
        o->next = s->head;
        s->head = o;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) orphan_free(o);
    return rc;
}

int coord__orphan_delete(coord_client *c, const coord__orphan_ref *ref, int timeout_ms) {
    int64_t deadline = coord__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int pause_ms = 0;
    bool first = true;
    while (1) {
        int64_t left = deadline - coord__now_ms();
        int budget = timeout_ms > 0 ? (left > 1 ? (int)left : 1) : coord__client_timeout(c);
        bool absent;
        int rc = attempt(c, ref, budget, &absent);
        if (rc == 0) return first && absent ? COORD_ENOTFOUND : 0;
        if (!coord__no_server(rc)) return rc;
        first = false;
        int64_t now = coord__now_ms();
        if (now >= deadline || coord__session_epoch(c) != ref->epoch) break;
        /* Pause (woken early by a change of the session's state), then try again. */
        pause_ms = pause_ms ? (pause_ms < 200 ? pause_ms * 2 : 250) : 20;
        struct coord__orphans *s = state(c);
        if (!s) break;
        int64_t until = now + pause_ms < deadline ? now + pause_ms : deadline;
        struct timespec dl = coord__deadline(until - now);
        pthread_mutex_lock(&s->mu);
        pthread_cond_timedwait(&s->cv, &s->mu, &dl);
        pthread_mutex_unlock(&s->mu);
    }
    return coord__orphan_hand(c, ref);
}

/* The first orphan of `owner` (optionally at `path`) that no attempt is busy with, marked busy;
 * waits for busy ones. NULL when none is left. mu held. */
static orphan *claim(struct coord__orphans *s, const void *owner, const char *path) {
    while (1) {
        bool waiting = false;
        for (orphan *o = s->head; o; o = o->next) {
            if (o->ref.owner != owner || (path && (o->ref.tag || strcmp(o->ref.path, path))))
                continue;
            if (!o->busy) {
                o->busy = true;
                return o;
            }
            waiting = true;
        }
        if (!waiting) return NULL;
        pthread_cond_wait(&s->cv, &s->mu); /* an attempt ends within its own timeout */
    }
}

int coord__orphan_settle(coord_client *c, const void *owner, int timeout_ms) {
    struct coord__orphans *s = atomic_load(coord__client_orphans(c));
    if (!s) return 0;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    orphan *o;
    /* One attempt each: a failure stops the settle (the server is away), the rest stay. */
    while (!rc && (o = claim(s, owner, NULL))) {
        coord__orphan_ref ref = o->ref;
        pthread_mutex_unlock(&s->mu);
        bool absent;
        int arc = attempt(c, &ref, timeout_ms, &absent);
        pthread_mutex_lock(&s->mu);
        if (coord__no_server(arc) && coord__session_epoch(c) == ref.epoch) rc = arc;
        after_attempt(s, o, arc);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int coord__orphan_adopt(coord_client *c, const void *owner, const char *path, const void *value,
                        size_t len, coord_kv *out, int timeout_ms) {
    memset(out, 0, sizeof *out);
    struct coord__orphans *s = atomic_load(coord__client_orphans(c));
    if (!s) return COORD_ENOTFOUND;
    pthread_mutex_lock(&s->mu);
    orphan *o = claim(s, owner, path);
    pthread_mutex_unlock(&s->mu);
    if (!o) return COORD_ENOTFOUND;
    int rc = COORD_ENOTFOUND;
    coord_conn *k = coord__client_conn(c);
    if (coord__session_epoch(c) == o->ref.epoch && k->backend->version >= 2 &&
        k->backend->get_own) {
        rc = k->backend->get_own(k, path, out, timeout_ms);
        if (rc == 0 && !(out->len == len && (!len || !memcmp(out->value, value, len)))) {
            coord_kv_clear(out);
            rc = COORD_ENOTFOUND; /* ours, but with other data: the orphan stays to be deleted */
        } else if (rc == COORD_EEXISTS) {
            rc = COORD_ENOTFOUND;
        }
    }
    pthread_mutex_lock(&s->mu);
    if (rc == 0) { /* taken back: no longer an orphan */
        unlink_orphan(s, o);
        orphan_free(o);
        pthread_cond_broadcast(&s->cv);
    } else {
        o->busy = false;
        o->next_at = 0;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) coord_kv_clear(out);
    return rc;
}

bool coord__orphan_has(coord_client *c, const void *owner) {
    struct coord__orphans *s = atomic_load(coord__client_orphans(c));
    if (!s) return false;
    bool has = false;
    pthread_mutex_lock(&s->mu);
    for (orphan *o = s->head; o && !has; o = o->next)
        has = o->ref.owner == owner;
    pthread_mutex_unlock(&s->mu);
    return has;
}

size_t coord__orphan_count(coord_client *c) {
    return coord__orphan_count_within(c, 0);
}

size_t coord__orphan_count_within(coord_client *c, int timeout_ms) {
    struct coord__orphans *s = atomic_load(coord__client_orphans(c));
    if (!s) return 0;
    struct timespec dl = coord__deadline(timeout_ms);
    size_t n;
    pthread_mutex_lock(&s->mu);
    while (1) {
        n = 0;
        for (orphan *o = s->head; o; o = o->next)
            n++;
        /* after_attempt broadcasts each drop */
        if (!n || timeout_ms <= 0 || pthread_cond_timedwait(&s->cv, &s->mu, &dl)) break;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

void coord__orphans_stop(coord_client *c) {
    _Atomic(struct coord__orphans *) *sp = coord__client_orphans(c);
    struct coord__orphans *s = atomic_load(sp);
    if (!s) return;
    coord__client_unlisten(c, &s->listener);
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started) pthread_join(s->thread, NULL);
    while (s->head) {
        orphan *o = s->head;
        s->head = o->next;
        orphan_free(o);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    atomic_store(sp, NULL);
}
