/*
 * Work queue (coord.h, "Work queue"): items in "<prefix>/queue/<name>" in the servers' order of
 * puts (ZooKeeper's qn- sequential nodes, as its queue recipe, zoo_queue and Curator's
 * SimpleDistributedQueue make them; etcd keys named by time, as etcd's recipe makes them, ordered
 * by create revision). A claim is an ephemeral "<prefix>/queue-claims/<name>/<item name>": the
 * item stays, invisible to others, until the claimer acks it (one transaction that checks the
 * claim, deletes the item and the claim) or its session ends. A take is one transaction too:
 * delete the item if nobody claims it.
 *
 * Takers and claimers that must wait queue up as contenders of "<prefix>/queue-waiters/<name>"
 * (lib/queue.c: each watches only its predecessor) and only the first one watches the items and
 * the claims, so a put, a nack or a claim its session gave back wakes one waiter.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

struct coord_queue {
    coord_client *c;
    char *dir, *claims;
    bool sequential; /* the backend names sequential entries (COORD_CAP_SEQUENTIAL) */
    coord__queue wq; /* this handle's place among waiters; its cv also serves the first's wait */
    struct take_op *taking; /* loop mode: the take in flight (the client's waiter mutex) */
    int contended;   /* tries left that start off the head: consumers of other clients race us */
    int64_t lost_at; /* when a try last lost (coord__now_ms) */
    uint64_t draw;   /* xorshift state for those starts and for spreading after a loss */
};

/* A draw below `span` (> 0): consumers of other processes must not draw alike, so the state
 * starts from the handle's address and the clock. */
static size_t draw_below(coord_queue *q, size_t span) {
    if (!q->draw) q->draw = ((uint64_t)(uintptr_t)q ^ (uint64_t)coord__now_ms() << 20) | 1;
    q->draw ^= q->draw << 13;
    q->draw ^= q->draw >> 7;
    q->draw ^= q->draw << 17;
    return (size_t)(q->draw % span);
}

/*
 * Consumers of one client that listed the queue together would all go for its head, and all but
 * one would lose it: a wasted read and transaction each, 1.8 losses an item with 4 consumers on
 * one client (measured on ZooKeeper), so 4 consumers went no faster than 1. So consumers of this
 * process tell each other, per client, which items they are trying, which claims they hold, and
 * which items they took or acked lately:
 * - an item another consumer is trying is passed over, and tried last, once that try has ended
 *   without taking it;
 * - an item a claim of this client holds is not open to a listing older than the claim (a
 *   newer listing of the claims tells by itself, and tells too when the claim went with its
 *   session);
 * - an item taken or acked since the listing began is gone; one taken before it began and
 *   listed anyway is a new item of the same name (a queue made again), and is tried.
 */
typedef struct trying {
    const coord_client *c;
    const char *dir, *name; /* the item's directory (dirlen bytes of `dir`) and name */
    size_t dirlen;
    uint64_t held_at; /* a claim held since then (done_count), made by its try; 0 for a try */
    struct trying *next;
} trying;

static pthread_mutex_t trying_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t trying_cv = PTHREAD_COND_INITIALIZER; /* a try ended */
static trying *trying_now;

/* Items taken or acked lately: a hash of client, directory and name, and when (done_count, which
 * counts those and the claims made). A listing older than the oldest of them (1024 items taken
 * since it began) may cost a loss more. */
#define DONE_KEEP 1024
static struct { uint64_t hash, at; } done_ring[DONE_KEEP];
static uint64_t done_count;
static size_t done_next;

static _Atomic uint64_t tries;

uint64_t coord__queue_tries(void) {
    return atomic_load(&tries);
}

static uint64_t item_hash(const coord_client *c, const char *dir, size_t dirlen, const char *name) {
    return XXH3_64bits_withSeed(name, strlen(name),
                                XXH3_64bits_withSeed(dir, dirlen, (uint64_t)(uintptr_t)c));
}

/* Where the record of taken items stands, read before a listing. */
static uint64_t done_now(void) {
    pthread_mutex_lock(&trying_mu);
    uint64_t n = done_count;
    pthread_mutex_unlock(&trying_mu);
    return n;
}

static void done_note(const coord_client *c, const char *dir, size_t dirlen, const char *name) {
    uint64_t h = item_hash(c, dir, dirlen, name);
    pthread_mutex_lock(&trying_mu);
    done_ring[done_next].hash = h;
    done_ring[done_next].at = ++done_count;
    done_next = (done_next + 1) % DONE_KEEP;
    pthread_mutex_unlock(&trying_mu);
}

static bool same_item(const trying *a, const trying *b) {
    return a->c == b->c && a->dirlen == b->dirlen && !strcmp(a->name, b->name) &&
           !memcmp(a->dir, b->dir, a->dirlen);
}

typedef enum { ITEM_FREE, ITEM_BUSY, ITEM_GONE } item_state;

/* In one look: the item of `t` is gone (taken, or claimed, since `since`), busy (another consumer
 * tries it; with `wait`, wait for that try to end and look again), or free: then `t` goes on the
 * list. */
static item_state trying_begin(trying *t, uint64_t since, bool wait) {
    uint64_t h = item_hash(t->c, t->dir, t->dirlen, t->name);
    pthread_mutex_lock(&trying_mu);
    item_state st;
    for (;;) {
        st = ITEM_FREE;
        for (size_t i = 0; i < DONE_KEEP && st == ITEM_FREE; i++)
            if (done_ring[i].hash == h && done_ring[i].at > since) st = ITEM_GONE;
        for (const trying *o = trying_now; o && st == ITEM_FREE; o = o->next)
            if (same_item(o, t)) {
                if (!o->held_at)
                    st = ITEM_BUSY;
                else if (o->held_at > since)
                    st = ITEM_GONE;
            }
        if (st != ITEM_BUSY || !wait) break;
        pthread_cond_wait(&trying_cv, &trying_mu);
    }
    if (st == ITEM_FREE) {
        t->next = trying_now;
        trying_now = t;
    }
    pthread_mutex_unlock(&trying_mu);
    return st;
}

/* Take `t` off the list, putting `by` (a claim now held, when not NULL) in its place. */
static void trying_end(trying *t, trying *by) {
    pthread_mutex_lock(&trying_mu);
    trying **p = &trying_now;
    while (*p != t)
        p = &(*p)->next;
    if (by) {
        by->held_at = ++done_count;
        by->next = t->next;
        *p = by;
    } else {
        *p = t->next;
    }
    if (!t->held_at) pthread_cond_broadcast(&trying_cv);
    pthread_mutex_unlock(&trying_mu);
}

/* A held claim's ack or nack begins: its item is busy until it ends (item_free), as during a try,
 * since an ack applied before the acker hears of it is not in the record of taken items yet. */
static void trying_again(trying *t) {
    pthread_mutex_lock(&trying_mu);
    t->held_at = 0;
    pthread_mutex_unlock(&trying_mu);
}

struct coord_item {
    coord_queue *q;
    char *item, *claim; /* full paths */
    int64_t item_version;
    coord_kv mine;  /* the claim as created: version and token for the ack's check */
    uint64_t epoch; /* the session that made the claim */
    void *data;
    size_t len;
    trying held; /* on the trying list while the claim is held (when held.c is set) */
};

int coord_queue_new(coord_queue **out, coord_client *c, const char *name) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    coord_conn *k = coord__client_conn(c);
    if (!k->backend->kv_get || !k->backend->txn)
        return coord_seterr(COORD_ENOTSUP, "the %s backend has no work queues", k->backend->name);
    coord_queue *q = calloc(1, sizeof *q);
    if (!q) return coord__oom();
    q->c = c;
    q->sequential = (k->backend->caps & COORD_CAP_SEQUENTIAL) != 0;
    int rc = coord__path(&q->dir, c, "queue", name);
    if (!rc) rc = coord__path(&q->claims, c, "queue-claims", name);
    if (!rc) rc = coord__queue_init(&q->wq, c, "queue-waiters", name, "lock-");
    if (rc) {
        free(q->dir);
        free(q->claims);
        free(q);
        return rc;
    }
    *out = q;
    return 0;
}

static void take_reap(coord_queue *q);

void coord_queue_free(coord_queue *q) {
    if (!q) return;
    take_reap(q);
    coord__calls_reap(q->c, q); /* loop mode: its puts, and its items' acks and nacks, end first */
    coord__queue_destroy(&q->wq);
    free(q->dir);
    free(q->claims);
    free(q);
}

static int check_data(const void *data, size_t len) {
    if (!data && len) return coord_seterr(COORD_EINVAL, "data is NULL with length %zu", len);
    if (len > COORD_VALUE_MAX)
        return coord_seterr(COORD_EINVAL, "item of %zu bytes exceeds %u", len, COORD_VALUE_MAX);
    return 0;
}

int coord_queue_put(coord_queue *q, const void *data, size_t len) {
    if (!q) return coord_seterr(COORD_EINVAL, "queue is NULL");
    int rc = check_data(data, len);
    if (rc) return rc;
    coord_conn *k = coord__client_conn(q->c);
    int timeout = coord__client_timeout(q->c);
    if (!data) data = ""; /* a value, not ZooKeeper's null data */
    if (q->sequential) {
        char *path = NULL;
        if (asprintf(&path, "%s/qn-", q->dir) < 0) return coord__oom();
        rc = k->backend->put(k, path, data, len, COORD_VERSION_ABSENT, COORD_PUT_SEQUENTIAL, NULL,
                             timeout);
        free(path);
        return rc;
    }
    /* No sequential names (etcd): the recipe's "<dir>/<UnixNano>", created only if new. */
    for (int attempt = 0; attempt < 16; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        char *path = NULL;
        if (asprintf(&path, "%s/%lld", q->dir,
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec + attempt) < 0)
            return coord__oom();
        rc = k->backend->put(k, path, data, len, COORD_VERSION_ABSENT, 0, NULL, timeout);
        free(path);
        if (rc != COORD_ECONFLICT) return rc;
    }
    return coord_seterr(COORD_ECONFLICT, "queue %s: no free item name", q->dir);
}

/* ---------- the items and the claims ---------- */

typedef struct view {
    coord_kv *items, *claims;
    size_t nitems, nclaims;
} view;

static void view_free(view *v) {
    coord_kv_array_free(v->items, v->nitems);
    coord_kv_array_free(v->claims, v->nclaims);
    memset(v, 0, sizeof *v);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const coord_kv *)a)->key, ((const coord_kv *)b)->key);
}

/* The items in order and the claims (sorted by name, for lookups). */
static int look(coord_queue *q, view *v) {
    memset(v, 0, sizeof *v);
    coord_conn *k = coord__client_conn(q->c);
    int timeout = coord__client_timeout(q->c);
    int rc = k->backend->list(k, q->dir, COORD_LIST_NAMES, &v->items, &v->nitems, NULL, timeout);
    if (!rc)
        rc = k->backend->list(k, q->claims, COORD_LIST_NAMES, &v->claims, &v->nclaims, NULL,
                              timeout);
    if (rc) {
        view_free(v);
        return rc;
    }
    if (v->nclaims > 1) qsort(v->claims, v->nclaims, sizeof *v->claims, cmp_name);
    return 0;
}

/* Whether the i-th item may be taken: not claimed, and (ZooKeeper) a "qn-" item, as other tools
 * of the family skip foreign children too. */
static bool open_item(const coord_queue *q, const view *v, size_t i) {
    const char *name = v->items[i].key;
    if (q->sequential && strncmp(name, "qn-", 3) != 0) return false;
    coord_kv key = {.key = (char *)name};
    return !v->nclaims || !bsearch(&key, v->claims, v->nclaims, sizeof *v->claims, cmp_name);
}

static char *join(const char *dir, const char *name) {
    char *p = NULL;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

int coord_queue_size(coord_queue *q, size_t *out) {
    if (!q || !out) return coord_seterr(COORD_EINVAL, "NULL argument");
    *out = 0;
    view v;
    int rc = look(q, &v);
    if (rc) return rc;
    size_t n = 0;
    for (size_t i = 0; i < v.nitems; i++)
        n += open_item(q, &v, i);
    view_free(&v);
    *out = n;
    return 0;
}

/*
 * Try `one` on the open items of one look, oldest first, until it takes one (0) or fails
 * otherwise than by losing the item to someone else (COORD_ENOTFOUND, COORD_ECONFLICT: next).
 * Items another consumer of this client is trying are passed over, and tried last (see trying).
 * Consumers of other clients that lost the head race for the same next items: after a loss, the
 * next try goes to one of the few items after it, drawn at random, so that they spread (no herd
 * on the head; every open item is still tried once). A lone consumer never loses and goes in
 * order.
 */
static int claim_one(coord_queue *q, const char *name, void *arg);

static int each_open(coord_queue *q, int (*one)(coord_queue *, const char *name, void *arg),
                     void *arg) {
    view v;
    uint64_t since = done_now();
    int rc = look(q, &v);
    if (rc) return rc;
    /* order: the open items, in the order they are tried; passed: those passed over */
    size_t *order = v.nitems ? malloc(2 * v.nitems * sizeof *order) : NULL, n = 0, npassed = 0;
    if (v.nitems && !order) {
        view_free(&v);
        return coord__oom();
    }
    size_t *passed = order + v.nitems, dirlen = strlen(q->dir);
    for (size_t i = 0; i < v.nitems; i++)
        if (open_item(q, &v, i)) order[n++] = i;
    if (q->contended > 0 && n > 1 && coord__now_ms() - q->lost_at < 1000) {
        /* Lately lost to consumers of other clients, who go for the head too: start at one of
         * the first eight, drawn at random, for the next 8 tries within a second of the loss (4
         * consumers on 4 clients took 0.68-0.79 as many items a second as 1 on ZooKeeper starting
         * at the head, 1.1-1.4 so). */
        q->contended--;
        size_t span = n < 8 ? n : 8, pick = draw_below(q, span), x = order[0];
        order[0] = order[pick];
        order[pick] = x;
    }
    rc = COORD_ENOTFOUND;
    for (size_t at = 0; at < n + npassed && rc == COORD_ENOTFOUND; at++) {
        bool last_round = at >= n;
        size_t i = last_round ? passed[at - n] : order[at];
        trying t = {q->c, q->dir, v.items[i].key, dirlen, 0, NULL};
        item_state st = trying_begin(&t, since, last_round);
        if (st == ITEM_BUSY) passed[npassed++] = i;
        if (st != ITEM_FREE) continue;
        rc = one(q, t.name, arg);
        atomic_fetch_add(&tries, 1);
        /* A claim keeps its item on the list until it is acked or given back. */
        coord_item *it = !rc && one == claim_one ? *(coord_item **)arg : NULL;
        if (it) {
            size_t dl = strlen(it->item) - strlen(t.name) - 1;
            it->held = (trying){q->c, it->item, it->item + dl + 1, dl, 0, NULL};
        }
        trying_end(&t, it ? &it->held : NULL);
        if (rc != COORD_ENOTFOUND && rc != COORD_ECONFLICT) break;
        if (!last_round) { /* lost (the item went to someone else) */
            q->contended = 8;
            q->lost_at = coord__now_ms();
        }
        if (rc == COORD_ECONFLICT && at + 2 < n) { /* lost: spread over the next few */
            size_t span = n - at - 1 < 4 ? n - at - 1 : 4;
            size_t pick = at + 1 + draw_below(q, span), x = order[at + 1];
            order[at + 1] = order[pick];
            order[pick] = x;
        }
        rc = COORD_ENOTFOUND;
    }
    free(order);
    view_free(&v);
    return rc;
}

/* Take item `name`: read it, then delete it if nobody claims it (one transaction). */
static int take_one(coord_queue *q, const char *name, void *arg) {
    void **res = arg; /* [0]: data, [1]: &len */
    coord_conn *k = coord__client_conn(q->c);
    int timeout = coord__client_timeout(q->c);
    char *item = join(q->dir, name), *claim = join(q->claims, name);
    coord_kv kv = {0};
    int rc = item && claim ? 0 : coord__oom();
    if (!rc) rc = k->backend->get(k, item, &kv, timeout);
    if (!rc) {
        coord_op ops[2] = {{.type = COORD_OP_CHECK, .path = claim, .version = 0},
                           {.type = COORD_OP_DEL, .path = item, .version = kv.version}};
        size_t failed = 2;
        rc = k->backend->txn(k, ops, 2, NULL, &failed, timeout);
    }
    if (!rc) {
        done_note(q->c, q->dir, strlen(q->dir), name);
        *(void **)res[0] = kv.value;
        *(size_t *)res[1] = kv.len;
        kv.value = NULL;
    }
    coord_kv_clear(&kv);
    free(item);
    free(claim);
    return rc;
}

static int try_take(coord_queue *q, void *arg) {
    return each_open(q, take_one, arg);
}

static void item_free(coord_item *it) {
    if (it->held.c) trying_end(&it->held, NULL);
    coord_kv_clear(&it->mine);
    free(it->item);
    free(it->claim);
    free(it->data);
    free(it);
}

/* Claim item `name`: create its claim, then read the item (gone meanwhile: the next one). */
static int claim_one(coord_queue *q, const char *name, void *arg) {
    coord_conn *k = coord__client_conn(q->c);
    int timeout = coord__client_timeout(q->c);
    coord_item *it = calloc(1, sizeof *it);
    if (!it) return coord__oom();
    it->q = q;
    it->epoch = coord__session_epoch(q->c);
    int rc =
        (it->item = join(q->dir, name)) && (it->claim = join(q->claims, name)) ? 0 : coord__oom();
    /* The claim holds the handle's tag: who claims it, for people looking. */
    if (!rc)
        rc = k->backend->put(k, it->claim, q->wq.tag, strlen(q->wq.tag), COORD_VERSION_ABSENT,
                             COORD_PUT_EPHEMERAL, &it->mine, timeout);
    if (coord__no_server(rc)) {
        /* Perhaps made: the client deletes it if it is ours. */
        coord__orphan_ref o = {q, it->claim, NULL, 0, it->epoch};
        coord__orphan_hand(q->c, &o);
    }
    coord_kv kv = {0};
    if (!rc && (rc = k->backend->get(k, it->item, &kv, timeout))) {
        /* Gone (taken, acked) or unreadable: give the claim back. */
        coord__error_buf saved;
        coord__error_save(&saved);
        coord__orphan_ref o = {q, it->claim, NULL, it->mine.version, it->epoch};
        coord__orphan_delete(q->c, &o, 0);
        coord__error_restore(&saved);
    }
    if (!rc) {
        it->item_version = kv.version;
        it->data = kv.value;
        it->len = kv.len;
        kv.value = NULL;
        *(coord_item **)arg = it;
        it = NULL;
    }
    coord_kv_clear(&kv);
    if (it) item_free(it);
    return rc;
}

static int try_claim(coord_queue *q, void *arg) {
    return each_open(q, claim_one, arg);
}

/* One try, or wait among the waiters, then as their first (watching items and claims) until a
 * try succeeds or `timeout_ms` passes. */
static int wait_for(coord_queue *q, int timeout_ms, int (*try)(coord_queue *, void *), void *arg) {
    int rc = try(q, arg);
    if (rc != COORD_ENOTFOUND) return rc;
    if (timeout_ms == 0) return coord_seterr(COORD_ENOTFOUND, "queue %s is empty", q->dir);
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : coord__now_ms() + timeout_ms;
    int left = timeout_ms < 0 ? -1 : timeout_ms;
    rc = coord__queue_enter(&q->wq, NULL, 0, left);
    if (rc == COORD_ETIMEDOUT)
        return coord_seterr(COORD_ETIMEDOUT, "queue %s: no item within %d ms", q->dir, timeout_ms);
    if (rc) return rc;
    coord_conn *k = coord__client_conn(q->c);
    coord_watch *wi = NULL, *wc = NULL;
    coord__client_lock(q->c);
    q->wq.woken = false;
    coord__client_unlock(q->c);
    rc = k->backend->watch(k, q->dir, COORD_WATCH_CHILDREN, 0, coord__queue_wake, &q->wq, &wi);
    if (!rc)
        rc = k->backend->watch(k, q->claims, COORD_WATCH_CHILDREN, 0, coord__queue_wake, &q->wq,
                               &wc);
    while (!rc) {
        rc = try(q, arg);
        if (rc != COORD_ENOTFOUND) break;
        rc = 0;
        coord__client_lock(q->c);
        while (!q->wq.woken && coord__session_epoch(q->c) == q->wq.epoch &&
               !atomic_load(&q->wq.cancel) && coord__now_ms() < deadline)
            coord__client_wait_cv(q->c, &q->wq.cv, deadline);
        q->wq.woken = false;
        coord__client_unlock(q->c);
        if (atomic_exchange(&q->wq.cancel, false))
            rc = coord_seterr(COORD_ECANCELED, "wait on queue %s canceled", q->dir);
        else if (coord__session_epoch(q->c) != q->wq.epoch)
            rc = coord_seterr(COORD_ESESSION, "session expired while waiting on queue %s", q->dir);
        else if (coord__now_ms() >= deadline)
            rc =
                coord_seterr(COORD_ETIMEDOUT, "queue %s: no item within %d ms", q->dir, timeout_ms);
    }
    if (wi) k->backend->unwatch(k, wi);
    if (wc) k->backend->unwatch(k, wc);
    coord__error_buf saved;
    coord__error_save(&saved);
    coord__queue_leave(&q->wq, coord__client_timeout(q->c)); /* the next waiter's turn */
    coord__error_restore(&saved);
    return rc;
}

static void take_cancel(struct take_op *t);

void coord_queue_cancel(coord_queue *q) {
    if (!q) return;
    coord__queue_cancel(&q->wq);
    coord__client_lock(q->c);
    if (q->taking) take_cancel(q->taking);
    coord__client_unlock(q->c);
}

int coord_queue_take(coord_queue *q, void **data, size_t *len, int timeout_ms) {
    if (!q || !data || !len) return coord_seterr(COORD_EINVAL, "NULL argument");
    *data = NULL;
    *len = 0;
    void *res[2] = {data, len};
    return wait_for(q, timeout_ms, try_take, res);
}

int coord_queue_claim(coord_queue *q, coord_item **item, int timeout_ms) {
    if (!q || !item) return coord_seterr(COORD_EINVAL, "NULL argument");
    *item = NULL;
    return wait_for(q, timeout_ms, try_claim, item);
}

const void *coord_item_data(const coord_item *it, size_t *len) {
    if (len) *len = it ? it->len : 0;
    return it ? (it->data ? it->data : "") : NULL;
}

int coord_item_ack(coord_item *it) {
    if (!it) return coord_seterr(COORD_EINVAL, "item is NULL");
    coord_queue *q = it->q;
    if (it->held.c) trying_again(&it->held);
    int rc;
    if (coord__session_epoch(q->c) != it->epoch) {
        rc = coord_seterr(COORD_ESESSION, "the claim of %s ended with its session", it->item);
    } else {
        coord_conn *k = coord__client_conn(q->c);
        coord_op ops[3] = {{.type = COORD_OP_HELD,
                            .path = it->claim,
                            .version = it->mine.version,
                            .token = it->mine.token},
                           {.type = COORD_OP_DEL, .path = it->item, .version = it->item_version},
                           {.type = COORD_OP_DEL, .path = it->claim, .version = it->mine.version}};
        size_t failed = 3;
        rc = k->backend->txn(k, ops, 3, NULL, &failed, coord__client_timeout(q->c));
        if (!rc && it->held.c) done_note(q->c, it->held.dir, it->held.dirlen, it->held.name);
        if (rc == COORD_ECONFLICT)
            rc = coord_seterr(COORD_ESESSION, "the claim of %s is no longer this session's",
                              it->item);
        if (coord__no_server(rc)) {
            /* Applied or not: the claim goes either way (the item reappears if not). */
            coord__error_buf saved;
            coord__error_save(&saved);
            coord__orphan_ref o = {q, it->claim, NULL, it->mine.version, it->epoch};
            coord__orphan_hand(q->c, &o);
            coord__error_restore(&saved);
        }
    }
    item_free(it);
    return rc;
}

int coord_item_nack(coord_item *it) {
    if (!it) return coord_seterr(COORD_EINVAL, "item is NULL");
    coord_queue *q = it->q;
    if (it->held.c) trying_again(&it->held);
    int rc = 0;
    if (coord__session_epoch(q->c) == it->epoch) {
        coord__orphan_ref o = {q, it->claim, NULL, it->mine.version, it->epoch};
        rc = coord__orphan_delete(q->c, &o, coord__client_timeout(q->c));
        if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION) rc = 0; /* given back already */
    }
    item_free(it);
    return rc;
}

/*
 * Loop mode: a take as jobs. A try; when the queue is empty, a watch on its items (and claims,
 * whose deletion by a nack returns an item) and a timer each queue the next try. Async takers
 * of one client do not queue among the waiters as blocking ones do: each try races, and the
 * server gives every item to one taker.
 */
typedef struct take_op {
    coord__aop op;
    coord__stepper st; /* the tries, woken by the watches, a cancel and the deadline */
    coord_queue *q;
    int timeout_ms;
    int64_t deadline;
    void *data;
    size_t len;
    coord_watch *wi, *wc; /* armed by the first step (the stepper's mutex) */
    void (*done)(int rc, void *data, size_t len, void *payload);
    void (*claim_done)(int rc, coord_item *it, void *payload); /* a claim instead of a take */
    coord_item *item;
    void *payload;
} take_op;

#define TAKE_OF(stp) ((take_op *)((char *)(stp)-offsetof(take_op, st)))

static void take_unwatch(take_op *t) {
    coord_conn *k = coord__client_conn(t->q->c);
    pthread_mutex_lock(&t->st.mu);
    coord_watch *wi = t->wi, *wc = t->wc;
    t->wi = t->wc = NULL;
    pthread_mutex_unlock(&t->st.mu);
    if (wi) k->backend->unwatch(k, wi);
    if (wc) k->backend->unwatch(k, wc);
}

/* One try, and the watches before the first wait: 1 while the take waits, else its result. */
static int take_try(coord__stepper *st) {
    take_op *t = TAKE_OF(st);
    coord_queue *q = t->q;
    void *res[2] = {&t->data, &t->len};
    int rc = t->claim_done ? try_claim(q, &t->item) : try_take(q, res);
    if (rc != COORD_ENOTFOUND) return rc;
    if (t->timeout_ms == 0) return coord_seterr(COORD_ENOTFOUND, "queue %s is empty", q->dir);
    if (atomic_exchange(&q->wq.cancel, false))
        return coord_seterr(COORD_ECANCELED, "wait on queue %s canceled", q->dir);
    if (coord__now_ms() >= t->deadline)
        return coord_seterr(COORD_ETIMEDOUT, "queue %s: no item within %d ms", q->dir,
                            t->timeout_ms);
    if (t->wi) return 1; /* the next event or the deadline tries again */
    /* the first wait: watch, then try again (an item made meanwhile) */
    coord_conn *k = coord__client_conn(q->c);
    coord_watch *wi = NULL, *wc = NULL;
    rc = k->backend->watch(k, q->dir, COORD_WATCH_CHILDREN, 0, coord__stepper_event, st, &wi);
    if (!rc)
        rc =
            k->backend->watch(k, q->claims, COORD_WATCH_CHILDREN, 0, coord__stepper_event, st, &wc);
    pthread_mutex_lock(&st->mu);
    t->wi = wi;
    t->wc = wc;
    pthread_mutex_unlock(&st->mu);
    if (rc) return rc;
    if (t->deadline != INT64_MAX) coord__stepper_timer(st, t->deadline);
    coord__stepper_wake(st, 0); /* runs this step again */
    return 1;
}

static void take_cancel(take_op *t) {
    coord__stepper_wake(&t->st, 0); /* the try sees the cancel flag */
}

static void take_end(coord__stepper *st, int rc) {
    take_op *t = TAKE_OF(st);
    take_unwatch(t);
    coord__aop_finish(&t->op, rc); /* last: its delivery frees t */
}

static void taken(coord__aop *op, int rc) {
    take_op *t = (take_op *)op;
    if (t->q) {
        coord__client_lock(t->q->c);
        t->q->taking = NULL;
        coord__client_unlock(t->q->c);
    }
    void (*done)(int, void *, size_t, void *) = t->done;
    void (*claim_done)(int, coord_item *, void *) = t->claim_done;
    void *payload = t->payload, *data = rc ? NULL : t->data;
    size_t len = rc ? 0 : t->len;
    coord_item *it = rc ? NULL : t->item;
    if (rc) free(t->data);
    if (rc && t->item) item_free(t->item);
    coord__stepper_destroy(&t->st);
    free(t);
    if (claim_done)
        claim_done(rc, it, payload);
    else
        done(rc, data, len, payload);
}

/* A handle freed with its take in flight: the take's done runs now. */
static void take_reap(coord_queue *q) {
    if (!coord__client_loop(q->c)) return;
    coord__client_lock(q->c);
    take_op *t = q->taking;
    coord__client_unlock(q->c);
    if (!t) return;
    coord__stepper_halt(&t->st);
    coord__loop_unjob(q->c, &t->st); /* a running step may still arm its watches */
    take_unwatch(t);
    coord__aop_reap(&t->op);
}

static void take_abort(coord__aop *op) {
    take_unwatch((take_op *)op);
}

static int wait_async(coord_queue *q, int timeout_ms, take_op *proto) {
    coord__client_lock(q->c);
    bool busy = q->taking != NULL;
    coord__client_unlock(q->c);
    if (busy)
        return coord_seterr(COORD_EINVAL, "queue %s: a take is in flight on this handle", q->dir);
    take_op *t = calloc(1, sizeof *t);
    if (!t) return coord__oom();
    t->op.deliver = taken;
    t->op.abort = take_abort;
    t->q = q;
    t->timeout_ms = timeout_ms;
    t->deadline = timeout_ms < 0 ? INT64_MAX : coord__now_ms() + timeout_ms;
    t->done = proto->done;
    t->claim_done = proto->claim_done;
    t->payload = proto->payload;
    coord__stepper_init(&t->st, q->c, take_try, take_end);
    int rc = coord__aop_start(q->c, &t->op);
    if (rc) {
        coord__stepper_destroy(&t->st);
        free(t);
        return rc;
    }
    coord__client_lock(q->c);
    q->taking = t;
    coord__client_unlock(q->c);
    coord__stepper_wake(&t->st, 0); /* the first try */
    return 0;
}

int coord_queue_take_async(coord_queue *q, int timeout_ms,
                           void (*done)(int rc, void *data, size_t len, void *payload),
                           void *payload) {
    if (!q || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    take_op proto = {.done = done, .payload = payload};
    return wait_async(q, timeout_ms, &proto);
}

int coord_queue_claim_async(coord_queue *q, int timeout_ms,
                            void (*done)(int rc, coord_item *item, void *payload), void *payload) {
    if (!q || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    take_op proto = {.claim_done = done, .payload = payload};
    return wait_async(q, timeout_ms, &proto);
}

/* coord_queue_put as a call on the handle (many in flight; a put touches no handle state): the
 * data is copied into the call's argument. */
typedef struct put_arg {
    coord_queue *q;
    size_t len;
    unsigned char data[];
} put_arg;

static int put_fn(void *arg) {
    put_arg *p = arg;
    return coord_queue_put(p->q, p->data, p->len);
}

static void put_release(void *arg, bool ran) {
    (void)ran;
    free(arg);
}

int coord_queue_put_async(coord_queue *q, const void *data, size_t len, coord_done_fn done,
                          void *payload) {
    if (!q || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    int rc = check_data(data, len);
    if (rc) return rc;
    put_arg *p = malloc(sizeof *p + len);
    if (!p) return coord__oom();
    p->q = q;
    p->len = len;
    if (len) memcpy(p->data, data, len);
    rc = coord__handle_call(q->c, q, p, put_fn, put_release, done, payload);
    if (rc) free(p);
    return rc;
}

/* coord_queue_size as a job; the done gets the size. */
typedef struct size_arg {
    coord_queue *q;
    size_t size;
    void (*done)(int rc, size_t size, void *payload);
    void *payload;
} size_arg;

static int size_fn(void *arg) {
    size_arg *a = arg;
    return coord_queue_size(a->q, &a->size);
}

static void size_done(int rc, void *arg) {
    size_arg *a = arg;
    a->done(rc, rc ? 0 : a->size, a->payload);
    free(a);
}

int coord_queue_size_async(coord_queue *q, void (*done)(int rc, size_t size, void *payload),
                           void *payload) {
    if (!q || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    size_arg *a = malloc(sizeof *a);
    if (!a) return coord__oom();
    *a = (size_arg){.q = q, .done = done, .payload = payload};
    int rc = coord__handle_call(q->c, q, a, size_fn, NULL, size_done, a);
    if (rc) free(a);
    return rc;
}

/* An item's ack or nack as a job: the item is the call's from then on (freed by the ack or
 * nack, or after the done when the call was canceled at close). */
static int ack_fn(void *it) {
    return coord_item_ack(it);
}

static int nack_fn(void *it) {
    return coord_item_nack(it);
}

static void item_release(void *it, bool ran) {
    if (!ran) item_free(it);
}

int coord_item_ack_async(coord_item *it, coord_done_fn done, void *payload) {
    if (!it) return coord_seterr(COORD_EINVAL, "item is NULL");
    return coord__handle_call(it->q->c, it->q, it, ack_fn, item_release, done, payload);
}

int coord_item_nack_async(coord_item *it, coord_done_fn done, void *payload) {
    if (!it) return coord_seterr(COORD_EINVAL, "item is NULL");
    return coord__handle_call(it->q->c, it->q, it, nack_fn, item_release, done, payload);
}
