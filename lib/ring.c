/*
 * Ring membership (coord.h, "Ring membership"). Members are ephemeral entries of
 * "<prefix>/group/<group>"; every ring watches that directory and, on each change, lists it and
 * swaps in a new immutable hash ring. Lookups only take a reference on the current snapshot, so
 * they never wait for the network nor for a rebuild.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "internal.h"

/* One member set and its hash ring; immutable once published. */
typedef struct snap {
    _Atomic int refs;
    coord_hashring *h;
    uint64_t epoch;
    char **ids; /* sorted */
    unsigned *weights;
    size_t n;
} snap;

struct coord_ring {
    coord_client *c;
    coord__closer closer;    /* loop mode: a ring freed after the close */
    struct join_op *joining; /* loop mode: the join in flight (the loop's thread) */
    char *dir;
    coord_ring_options opts;
    coord_watch *w;
    coord__listener listener;

    /* Held only to take a reference on, or to replace, the current snapshot. */
    pthread_mutex_t snap_mu;
    snap *cur;

    /* Worker: lists after watch events, registers again after a session was replaced. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stop, dirty, session_event;

    /* Serialises refreshes (worker, join, leave) and guards the membership below. */
    pthread_mutex_t op_mu;
    char *member; /* NULL: not joined */
    char *member_path;
    unsigned char *value;
    size_t vlen;
    uint64_t epoch;  /* coord__session_epoch() of the registration's session */
    int64_t version; /* the registered entry's version: leave deletes only that entry */
};

/* ---------- member value codec (pure) ---------- */

#define MAGIC                                                                                      \
    "\xff"                                                                                         \
    "coord-weight="
#define MAGIC_LEN (sizeof MAGIC - 1)

int coord__member_encode(const void *data, size_t len, unsigned weight, unsigned char **out,
                         size_t *outlen) {
    bool plain = weight == 1 && !(len >= MAGIC_LEN && memcmp(data, MAGIC, MAGIC_LEN) == 0);
    char head[MAGIC_LEN + 16];
    size_t hl = plain ? 0 : (size_t)snprintf(head, sizeof head, "%s%u\n", MAGIC, weight);
    unsigned char *v = malloc(hl + len + 1);
    if (!v) return coord__oom();
    memcpy(v, head, hl);
    if (len) memcpy(v + hl, data, len);
    *out = v;
    *outlen = hl + len;
    return 0;
}

void coord__member_decode(const void *value, size_t len, unsigned *weight, size_t *data_off) {
    const unsigned char *v = value;
    *weight = 1;
    *data_off = 0;
    if (len < MAGIC_LEN || memcmp(v, MAGIC, MAGIC_LEN) != 0) return;
    uint64_t w = 0;
    size_t i = MAGIC_LEN;
    for (; i < len && i < MAGIC_LEN + 11 && v[i] >= '0' && v[i] <= '9'; i++)
        w = w * 10 + (uint64_t)(v[i] - '0');
    /* A malformed envelope counts as plain data of weight 1: every reader decides alike. */
    if (i == MAGIC_LEN || i >= len || v[i] != '\n' || w > COORD_RING_MAX_WEIGHT) return;
    *weight = (unsigned)w;
    *data_off = i + 1;
}

uint64_t coord__ring_epoch(const char *const *ids, const unsigned *weights, size_t n) {
    if (n == 0) return 0;
    XXH3_state_t *st = XXH3_createState();
    if (!st) return 0;
    XXH3_64bits_reset(st);
    for (size_t i = 0; i < n; i++) {
        unsigned char w[4] = {(unsigned char)weights[i], (unsigned char)(weights[i] >> 8),
                              (unsigned char)(weights[i] >> 16), (unsigned char)(weights[i] >> 24)};
        XXH3_64bits_update(st, ids[i], strlen(ids[i]) + 1);
        XXH3_64bits_update(st, w, sizeof w);
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h ? h : 1; /* 0 is the empty set */
}

/* ---------- snapshots ---------- */

static void snap_unref(snap *s) {
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    coord_hashring_free(s->h);
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
    free(s->weights);
    free(s);
}

static snap *snap_get(coord_ring *r) {
    pthread_mutex_lock(&r->snap_mu);
    snap *s = r->cur;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&r->snap_mu);
    return s;
}

static int cmp_member(const void *a, const void *b) {
    const coord_kv *x = a, *y = b;
    return strcmp(x->key, y->key);
}

/* Build the snapshot of a listing (sorted by id), taking the keys out of `kv`; `*out` stays NULL
 * when the set has the epoch `unchanged` (the hash ring, the costly part, is then not built). */
static int snap_build(const coord_ring *r, coord_kv *kv, size_t n, const snap *unchanged,
                      snap **out) {
    *out = NULL;
    snap *s = calloc(1, sizeof *s);
    if (!s) return coord__oom();
    atomic_init(&s->refs, 1);
    if (n) qsort(kv, n, sizeof *kv, cmp_member);
    s->ids = n ? calloc(n, sizeof *s->ids) : NULL;
    s->weights = n ? calloc(n, sizeof *s->weights) : NULL;
    if (n && (!s->ids || !s->weights)) {
        snap_unref(s);
        return coord__oom();
    }
    for (size_t i = 0; i < n; i++) {
        size_t off;
        coord__member_decode(kv[i].value, kv[i].len, &s->weights[i], &off);
        s->ids[i] = kv[i].key;
        kv[i].key = NULL;
        s->n++;
    }
    s->epoch = coord__ring_epoch((const char *const *)s->ids, s->weights, s->n);
    if (unchanged && unchanged->epoch == s->epoch) {
        snap_unref(s);
        return 0;
    }
    int rc = coord_hashring_build(&s->h, (const char *const *)s->ids, s->weights, s->n, &r->opts);
    if (rc) {
        snap_unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Ids in `a` but not in `b` (both sorted); the result points into `a`. */
static size_t diff(const snap *a, const snap *b, const char **out) {
    size_t i = 0, j = 0, k = 0;
    while (i < a->n) {
        int c = j < b->n ? strcmp(a->ids[i], b->ids[j]) : -1;
        if (c < 0)
            out[k++] = a->ids[i++];
        else if (c > 0)
            j++;
        else
            i++, j++;
    }
    return k;
}

/* List the group and publish the member set if it changed. Called with op_mu held. */
typedef struct change_call {
    coord_ring *r;
    const coord_ring_change *ch;
} change_call;

static void change_now(void *arg, int rc) {
    (void)rc;
    change_call *c = arg;
    c->r->opts.on_change(c->r, c->ch, c->r->opts.payload);
}

static int refresh(coord_ring *r) {
    coord_conn *k = coord__client_conn(r->c);
    coord_kv *kv = NULL;
    size_t n = 0;
    int rc = k->backend->list(k, r->dir, 0, &kv, &n, NULL, coord__client_timeout(r->c));
    if (rc) return rc;
    snap *s, *old = r->cur;
    rc = snap_build(r, kv, n, old, &s);
    coord_kv_array_free(kv, n);
    if (rc || !s) return rc; /* an error, or the same member set */
    pthread_mutex_lock(&r->snap_mu);
    r->cur = s;
    pthread_mutex_unlock(&r->snap_mu);
    if (old && r->opts.on_change) {
        const char **joined = s->n ? malloc(s->n * sizeof *joined) : NULL;
        const char **left = old->n ? malloc(old->n * sizeof *left) : NULL;
        if ((!s->n || joined) && (!old->n || left)) {
            coord_ring_change ch = {.epoch = s->epoch,
                                    .joined = joined,
                                    .njoined = diff(s, old, joined),
                                    .left = left,
                                    .nleft = diff(old, s, left)};
            /* in loop mode inside coord_client_process */
            change_call call = {r, &ch};
            coord__loop_call(r->c, r, change_now, &call);
        }
        free(joined);
        free(left);
    }
    snap_unref(old);
    return 0;
}

/* ---------- registration ---------- */

/* Register this handle's member in the current session. Called with op_mu held. */
static int register_member(coord_ring *r) {
    coord_conn *k = coord__client_conn(r->c);
    uint64_t epoch = coord__session_epoch(r->c);
    int timeout = coord__client_timeout(r->c);
    coord_kv kv = {0};
    int rc = k->backend->put(k, r->member_path, r->value, r->vlen, COORD_VERSION_ABSENT,
                             COORD_PUT_EPHEMERAL, &kv, timeout);
    if (rc == COORD_ECONFLICT && k->backend->version >= 2 && k->backend->get_own) {
        /* Ours with this value (an attempt of this session whose answer was lost): registered. */
        coord_kv_clear(&kv);
        if (k->backend->get_own(k, r->member_path, &kv, timeout) == 0 && kv.len == r->vlen &&
            (!kv.len || !memcmp(kv.value, r->value, kv.len)))
            rc = 0;
    }
    int64_t version = kv.version;
    coord_kv_clear(&kv);
    if (rc == COORD_ECONFLICT)
        return coord_seterr(COORD_EEXISTS, "member %s of %s is held by another live session",
                            r->member, r->dir);
    if (rc == 0) {
        r->epoch = epoch;
        r->version = version > 0 ? version : 0;
    }
    return rc;
}

/* Forget the membership (op_mu held). */
static void member_clear(coord_ring *r) {
    free(r->member);
    free(r->member_path);
    free(r->value);
    r->member = r->member_path = NULL;
    r->value = NULL;
}

/* Delete our member entry, trying for `timeout_ms`, then leaving it to the client (see orphans in
 * internal.h); 0 when it is gone or handed over. Called with op_mu held. */
static int unregister_member(coord_ring *r, int timeout_ms) {
    coord__orphan_ref o = {r, r->member_path, NULL, r->version, r->epoch};
    int rc = coord__orphan_delete(r->c, &o, timeout_ms);
    return rc == COORD_ENOTFOUND || rc == COORD_ESESSION ? 0 : rc; /* gone with its session */
}

static void on_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)ev;
    (void)rev;
    coord_ring *r = payload;
    pthread_mutex_lock(&r->mu);
    r->dirty = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void on_session(void *payload, coord_session_state st) {
    coord_ring *r = payload;
    if (st != COORD_SESSION_CONNECTED) return;
    pthread_mutex_lock(&r->mu);
    r->session_event = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* After an attempt: on failure ask again (`*again`) at a time backing off from `base_ms` up to
 * 32 times it; on success reset the failure count. */
static int64_t retry_at(int rc, int *fails, int64_t base_ms, bool *again) {
    if (!rc) {
        *fails = 0;
        return 0;
    }
    *again = true;
    if (*fails < 5) ++*fails;
    return coord__now_ms() + (base_ms << *fails);
}

static void *worker(void *arg) {
    coord_ring *r = arg;
    int64_t list_at = 0, join_at = 0;
    int list_fail = 0, join_fail = 0;
    pthread_mutex_lock(&r->mu);
    /* loop mode: a ring freed after the close reaches no server */
    while (!r->stop && !coord__client_closed(r->c)) {
        int64_t now = coord__now_ms();
        bool do_list = r->dirty && now >= list_at;
        bool do_join = r->session_event && now >= join_at;
        if (!do_list && !do_join) {
            int64_t at = INT64_MAX;
            if (r->dirty) at = list_at;
            if (r->session_event && join_at < at) at = join_at;
            if (at == INT64_MAX)
                pthread_cond_wait(&r->cv, &r->mu);
            else {
                struct timespec dl = coord__deadline(at - now);
                pthread_cond_timedwait(&r->cv, &r->mu, &dl);
            }
            continue;
        }
        if (do_list) r->dirty = false;
        if (do_join) r->session_event = false;
        pthread_mutex_unlock(&r->mu);

        pthread_mutex_lock(&r->op_mu);
        int jrc = 0, lrc = 0;
        if (do_join && r->member && coord__session_epoch(r->c) != r->epoch &&
            coord_client_state(r->c) == COORD_SESSION_CONNECTED)
            jrc = register_member(r); /* the old session's entry may linger a moment: retried */
        if (do_list) lrc = refresh(r);
        pthread_mutex_unlock(&r->op_mu);

        pthread_mutex_lock(&r->mu);
        if (do_join) join_at = retry_at(jrc, &join_fail, 50, &r->session_event);
        if (do_list) list_at = retry_at(lrc, &list_fail, 25, &r->dirty);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---------- public API ---------- */

/* The ring's thread and watch end (coord_client_close, for a ring freed after it). */
static void ring_shut(void *arg) {
    coord_ring *r = arg;
    coord_conn *k = coord__client_conn(r->c);
    coord__client_unlisten(r->c, &r->listener);
    if (r->w) k->backend->unwatch(k, r->w);
    r->w = NULL;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        r->started = false;
    }
}

int coord_ring_new(coord_ring **out, coord_client *c, const char *group,
                   const coord_ring_options *opts) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    /* The hash ring checks the options (version, placement) before any traffic. */
    coord_hashring *probe = NULL;
    int rc = coord_hashring_build(&probe, NULL, NULL, 0, opts);
    if (rc) return rc;
    coord_hashring_free(probe);
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    if (opts) o = *opts;
    coord_ring *r = calloc(1, sizeof *r);
    if (!r) return coord__oom();
    rc = coord__path(&r->dir, c, "group", group);
    if (rc) {
        free(r);
        return rc;
    }
    r->c = c;
    coord__client_ref(c); /* loop mode: freed after the close */
    r->opts = o;
    pthread_mutex_init(&r->snap_mu, NULL);
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->op_mu, NULL);
    coord__cond_init(&r->cv);
    r->listener.fn = on_session;
    r->listener.payload = r;
    coord__client_listen(c, &r->listener);
    r->closer = (coord__closer){.fn = ring_shut, .payload = r};
    coord__client_on_close(c, &r->closer);
    coord_conn *k = coord__client_conn(c);
    /* Watch first, then list: a change after the listing is always reported. */
    rc = k->backend->watch(k, r->dir, COORD_WATCH_CHILDREN, 0, on_event, r, &r->w);
    if (!rc) {
        pthread_mutex_lock(&r->op_mu);
        rc = refresh(r);
        pthread_mutex_unlock(&r->op_mu);
    }
    if (!rc && pthread_create(&r->thread, NULL, worker, r) != 0)
        rc = coord_seterr(COORD_ENOMEM, "cannot start the ring thread");
    if (rc) {
        coord_ring_free(r);
        return rc;
    }
    r->started = true;
    *out = r;
    return 0;
}

int coord_ring_join(coord_ring *r, const char *member_id, const void *data, size_t len,
                    unsigned weight) {
    if (!r) return coord_seterr(COORD_EINVAL, "ring is NULL");
    int rc = coord_name_check(member_id);
    if (rc) return rc;
    if (!data && len) return coord_seterr(COORD_EINVAL, "data is NULL with length %zu", len);
    if (weight > COORD_RING_MAX_WEIGHT)
        return coord_seterr(COORD_EINVAL, "weight %u is above %u", weight, COORD_RING_MAX_WEIGHT);
    pthread_mutex_lock(&r->op_mu);
    if (r->member) {
        rc = coord_seterr(COORD_EINVAL, "this ring handle already joined as %s", r->member);
        goto out;
    }
    if (asprintf(&r->member_path, "%s/%s", r->dir, member_id) < 0) {
        r->member_path = NULL;
        rc = coord__oom();
        goto out;
    }
    if (!(r->member = strdup(member_id)) ||
        coord__member_encode(data, len, weight, &r->value, &r->vlen)) {
        rc = coord__oom();
        goto fail;
    }
    /* A join of this id and data whose outcome was unknown made this join's entry, if it made
     * one; whatever else this handle left goes first, so the new entry comes after it. */
    int timeout = coord__client_timeout(r->c);
    coord_kv kv = {0};
    rc = coord__orphan_adopt(r->c, r, r->member_path, r->value, r->vlen, &kv, timeout);
    if (rc == 0) {
        r->epoch = coord__session_epoch(r->c);
        r->version = kv.version;
        coord_kv_clear(&kv);
    } else if (rc == COORD_ENOTFOUND && !(rc = coord__orphan_settle(r->c, r, timeout))) {
        uint64_t epoch = coord__session_epoch(r->c);
        rc = register_member(r);
        if (coord__no_server(rc)) {
            /* Perhaps applied: the client removes it unless a retry of this join adopts it. */
            coord__orphan_ref o = {r, r->member_path, NULL, 0, epoch};
            coord__orphan_hand(r->c, &o);
        }
    }
    if (rc) goto fail;
    refresh(r); /* our own ring shows us at once; the watch would tell the worker anyway */
    goto out;
fail:
    member_clear(r);
out:
    pthread_mutex_unlock(&r->op_mu);
    return rc;
}

int coord_ring_leave(coord_ring *r) {
    if (!r) return coord_seterr(COORD_EINVAL, "ring is NULL");
    pthread_mutex_lock(&r->op_mu);
    int rc = 0;
    if (!r->member) {
        /* Not joined; a join of unknown outcome may have left an entry: remove it now. */
        if (coord__orphan_has(r->c, r))
            rc = coord__orphan_settle(r->c, r, coord__client_timeout(r->c));
        else
            rc = coord_seterr(COORD_EINVAL, "this ring handle has not joined");
    } else if (!(rc = unregister_member(r, coord__client_timeout(r->c)))) {
        member_clear(r);
        refresh(r);
    }
    pthread_mutex_unlock(&r->op_mu);
    return rc;
}

int coord_ring_lookup(coord_ring *r, const void *key, size_t keylen, char *member, size_t cap) {
    if (!r || (!key && keylen) || !member) return coord_seterr(COORD_EINVAL, "NULL argument");
    snap *s = snap_get(r);
    const char *id = coord_hashring_lookup(s->h, key, keylen);
    int rc = 0;
    if (!id)
        rc = coord_seterr(COORD_ENOTFOUND, "ring %s has no members", r->dir);
    else if (strlen(id) >= cap)
        rc = coord_seterr(COORD_EINVAL, "member id needs %zu bytes, buffer has %zu", strlen(id) + 1,
                          cap);
    else
        memcpy(member, id, strlen(id) + 1);
    snap_unref(s);
    return rc;
}

int coord_ring_lookup_n(coord_ring *r, const void *key, size_t keylen, size_t n, char **members,
                        size_t *count) {
    if (count) *count = 0;
    if (!r || (!key && keylen) || (!members && n) || !count)
        return coord_seterr(COORD_EINVAL, "NULL argument");
    snap *s = snap_get(r);
    const char **ids = n ? malloc(n * sizeof *ids) : NULL;
    int rc = 0;
    if (n && !ids) {
        rc = coord__oom();
    } else if (!s->n) {
        rc = coord_seterr(COORD_ENOTFOUND, "ring %s has no members", r->dir);
    } else {
        size_t got = coord_hashring_lookup_n(s->h, key, keylen, n, ids);
        for (size_t i = 0; i < got && !rc; i++)
            if (!(members[i] = strdup(ids[i]))) {
                while (i--) {
                    free(members[i]);
                    members[i] = NULL;
                }
                rc = coord__oom();
            }
        if (!rc) *count = got;
    }
    free(ids);
    snap_unref(s);
    return rc;
}

int coord_ring_members(coord_ring *r, char ***ids, size_t *count) {
    if (ids) *ids = NULL;
    if (count) *count = 0;
    if (!r || !ids || !count) return coord_seterr(COORD_EINVAL, "NULL argument");
    snap *s = snap_get(r);
    int rc = 0;
    char **v = calloc(s->n + 1, sizeof *v);
    for (size_t i = 0; v && i < s->n; i++)
        if (!(v[i] = strdup(s->ids[i]))) {
            coord_ring_strings_free(v, i);
            v = NULL;
        }
    if (!v)
        rc = coord__oom();
    else
        *ids = v, *count = s->n;
    snap_unref(s);
    return rc;
}

uint64_t coord_ring_epoch(const coord_ring *r) {
    if (!r) return 0;
    snap *s = snap_get((coord_ring *)r);
    uint64_t e = s->epoch;
    snap_unref(s);
    return e;
}

static void join_reap(coord_ring *r);

static int leave_fn(void *r) {
    return coord_ring_leave(r);
}

int coord_ring_leave_async(coord_ring *r, coord_done_fn done, void *payload) {
    if (!r) return coord_seterr(COORD_EINVAL, "ring is NULL");
    return coord__handle_call(r->c, r, r, leave_fn, NULL, done, payload);
}

static void coord_ring_free_later(void *obj) {
    coord_ring_free(obj);
}

void coord_ring_free(coord_ring *r) {
    if (!r) return;
    /* from its own callback (loop mode): once the callback has returned */
    if (coord__loop_defer(r->c, r, coord_ring_free_later, r)) return;
    coord__calls_reap(r->c, r); /* loop mode: its leaves in flight end first */
    coord__client_off_close(r->c, &r->closer);
    join_reap(r);
    coord_conn *k = coord__client_conn(r->c);
    bool closed = coord__client_closed(r->c); /* loop mode: the watch went with it */
    coord__client_unlisten(r->c, &r->listener);
    if (r->w && !closed) k->backend->unwatch(k, r->w);
    if (r->started) {
        coord__loop_forget(r->c, r); /* the ring's thread may wait for the loop's: this one */
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        coord__loop_unforget(r->c, r);
    }
    if (r->member && !closed) unregister_member(r, 0); /* one try, then the client's */
    member_clear(r);
    snap_unref(r->cur);
    pthread_mutex_destroy(&r->snap_mu);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->op_mu);
    pthread_cond_destroy(&r->cv);
    coord__client_unref(r->c);
    free(r->dir);
    free(r);
}

/* Loop mode: a join as a job (its change callback runs inside process). */
typedef struct join_op {
    coord__aop op;
    coord_ring *r;
    char *id;
    void *data;
    size_t len;
    unsigned weight;
    coord_done_fn done;
    void *payload;
} join_op;

static void join_job(void *arg, uint64_t tag) {
    (void)tag;
    join_op *j = arg;
    coord__aop_finish(&j->op, coord_ring_join(j->r, j->id, j->data, j->len, j->weight));
}

static void joined(coord__aop *op, int rc) {
    join_op *j = (join_op *)op;
    if (j->r) j->r->joining = NULL;
    coord_done_fn done = j->done;
    void *payload = j->payload;
    free(j->id);
    free(j->data);
    free(j);
    done(rc, payload);
}

/* A ring freed with its join in flight: the join ends first, its done runs now. */
static void join_reap(coord_ring *r) {
    join_op *j = r->joining;
    if (!j) return;
    coord__loop_forget(r->c, r); /* its change callback may wait for this thread */
    coord__loop_unjob(r->c, j);
    coord__loop_unforget(r->c, r);
    j->r = NULL;
    r->joining = NULL;
    coord__aop_reap(&j->op);
}

int coord_ring_join_async(coord_ring *r, const char *member_id, const void *data, size_t len,
                          unsigned weight, coord_done_fn done, void *payload) {
    if (!r || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    int rc = coord_name_check(member_id);
    if (rc) return rc;
    if (!data && len) return coord_seterr(COORD_EINVAL, "data is NULL with length %zu", len);
    if (r->joining) return coord_seterr(COORD_EINVAL, "a join is in flight on this ring handle");
    join_op *j = calloc(1, sizeof *j);
    if (!j || !(j->id = strdup(member_id)) || !(j->data = malloc(len ? len : 1))) {
        if (j) free(j->id);
        free(j);
        return coord__oom();
    }
    if (len) memcpy(j->data, data, len);
    j->op.deliver = joined;
    j->r = r;
    j->len = len;
    j->weight = weight;
    j->done = done;
    j->payload = payload;
    if ((rc = coord__aop_start(r->c, &j->op))) {
        free(j->id);
        free(j->data);
        free(j);
        return rc;
    }
    r->joining = j;
    /* closing meanwhile: done runs at the close */
    if ((rc = coord__loop_job(r->c, 0, join_job, j, 0))) coord__aop_finish(&j->op, rc);
    return 0;
}
