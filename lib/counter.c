/*
 * Distributed int64 counter, written once over the seam's conditional writes. An add costs one
 * round trip when uncontended: it writes on the version seen last (cached in the handle); on a
 * conflict the current value comes back in the same round trip where the backend allows (etcd
 * Txn failure branch) or is read again (ZooKeeper). A write whose outcome is unknown (timeout,
 * connection lost) is reported, never retried, so an add is never applied twice.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Atomic unsigned next_shard;

struct coord_counter {
    coord_client *c;
    char *path;   /* the counter, or the directory of its shards */
    char **shard; /* shard paths (shards > 1) */
    unsigned shards;
    int format;
    unsigned mine; /* the shard this handle adds to */
    /* Last seen state of the key this handle writes (cache for one-round-trip adds). */
    int64_t version; /* 0 = absent, -1 = unknown */
    int64_t value;
    /* loop mode: adds waiting for the next batch (one batch in flight per handle) */
    pthread_mutex_t amu;
    struct add_op *queued, **qtail;
    struct add_op *all; /* every add not delivered yet */
    bool flushing;
};

int coord__counter_decode(int format, const void *data, size_t len, int64_t *out) {
    const unsigned char *p = data;
    *out = 0;
    if (len == 0) return 0; /* an empty node (kazoo, Curator before the first write) reads 0 */
    if (format == COORD_COUNTER_INT64_BE || format == COORD_COUNTER_INT32_BE) {
        size_t want = format == COORD_COUNTER_INT64_BE ? 8 : 4;
        if (len != want)
            return coord_seterr(COORD_EPROTO, "counter value has %zu bytes, expected %zu", len,
                                want);
        uint64_t v = 0;
        for (size_t i = 0; i < want; i++)
            v = v << 8 | p[i];
        *out = want == 8 ? (int64_t)v : (int64_t)(int32_t)(uint32_t)v;
        return 0;
    }
    /* ASCII decimal: an optional '-', then 1 to 19 digits, nothing else. */
    size_t i = 0;
    bool neg = len > 1 && p[0] == '-';
    if (neg) i = 1;
    if (len - i > 19) return coord_seterr(COORD_EPROTO, "counter value is not an int64");
    uint64_t v = 0;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return coord_seterr(COORD_EPROTO, "counter value \"%.*s\" is not a decimal number",
                                (int)(len < 40 ? len : 40), (const char *)data);
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        return coord_seterr(COORD_EPROTO, "counter value is out of the int64 range");
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

size_t coord__counter_encode(int format, int64_t v, unsigned char out[24]) {
    if (format == COORD_COUNTER_INT64_BE || format == COORD_COUNTER_INT32_BE) {
        size_t n = format == COORD_COUNTER_INT64_BE ? 8 : 4;
        uint64_t u = (uint64_t)v;
        for (size_t i = 0; i < n; i++)
            out[n - 1 - i] = (unsigned char)(u >> (8 * i));
        return n;
    }
    return (size_t)snprintf((char *)out, 24, "%lld", (long long)v);
}

static int check_range(const coord_counter *k, int64_t v) {
    if (k->format == COORD_COUNTER_INT32_BE && (v < INT32_MIN || v > INT32_MAX))
        return coord_seterr(COORD_EINVAL, "%lld does not fit the counter's 32-bit format",
                            (long long)v);
    return 0;
}

int coord_counter_options_init(coord_counter_options *opts, unsigned version) {
    if (!opts) return coord_seterr(COORD_EINVAL, "options is NULL");
    if (version == 0 || version > COORD_COUNTER_OPTIONS_VERSION)
        return coord_seterr(COORD_EINVAL,
                            "unsupported coord_counter_options version %u (this library: %d)",
                            version, COORD_COUNTER_OPTIONS_VERSION);
    coord_counter_options init = COORD_COUNTER_OPTIONS_INIT;
    *opts = init;
    opts->version = version;
    return 0;
}

static void reap_queued(coord_counter *k);

void coord_counter_free(coord_counter *k) {
    if (!k) return;
    if (k->c) {
        if (coord__client_loop(k->c)) {
            coord__calls_reap(k->c, k); /* its reads in flight end first */
            coord__loop_unjob(k->c, k); /* the batch in flight ends first */
            reap_queued(k);
        }
        pthread_mutex_destroy(&k->amu);
        coord__client_unref(k->c);
    }
    for (unsigned i = 0; k->shard && i < k->shards; i++)
        free(k->shard[i]);
    free(k->shard);
    free(k->path);
    free(k);
}

int coord_counter_new(coord_counter **out, coord_client *c, const char *name,
                      const coord_counter_options *opts) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    if (opts) {
        if (opts->version == 0 || opts->version > COORD_COUNTER_OPTIONS_VERSION)
            return coord_seterr(COORD_EINVAL, "unsupported coord_counter_options version %u",
                                opts->version);
        o = *opts;
    }
    if (o.shards == 0) o.shards = 1;
    if (o.shards > 1024) return coord_seterr(COORD_EINVAL, "at most 1024 shards");
    if (o.format != COORD_COUNTER_DECIMAL && o.format != COORD_COUNTER_INT64_BE &&
        o.format != COORD_COUNTER_INT32_BE)
        return coord_seterr(COORD_EINVAL, "unknown counter format %d", o.format);
    if (o.format != COORD_COUNTER_DECIMAL &&
        !(coord__client_conn(c)->backend->caps & COORD_CAP_BINARY_COUNTERS))
        return coord_seterr(COORD_EINVAL,
                            "the binary (Curator) counter formats are not available on the %s "
                            "backend (ZooKeeper has them)",
                            coord_client_backend(c));
    coord_counter *k = calloc(1, sizeof *k);
    if (!k) return coord__oom();
    k->c = c;
    pthread_mutex_init(&k->amu, NULL);
    k->qtail = &k->queued;
    coord__client_ref(c);
    k->shards = o.shards;
    k->format = o.format;
    k->version = -1;
    int rc = coord__path(&k->path, c, "counter", name);
    if (!rc && k->shards > 1) {
        if (!(k->shard = calloc(k->shards, sizeof *k->shard))) rc = COORD_ENOMEM;
        for (unsigned i = 0; !rc && i < k->shards; i++)
            if (asprintf(&k->shard[i], "%s/%u", k->path, i) < 0) {
                k->shard[i] = NULL;
                rc = COORD_ENOMEM;
            }
        if (rc == COORD_ENOMEM) coord__oom();
        /* Spread writers: successive handles take successive shards (a random pick leaves
         * about a third of 8 shards unused under 8 writers). */
        k->mine = atomic_fetch_add(&next_shard, 1) % k->shards;
    }
    if (rc) {
        coord_counter_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

static const char *target(const coord_counter *k) {
    return k->shards > 1 ? k->shard[k->mine] : k->path;
}

/* Read the key this handle writes into the cache. */
static int refresh(coord_counter *k) {
    coord_conn *kc = coord__client_conn(k->c);
    coord_kv kv;
    int rc = kc->backend->get(kc, target(k), &kv, coord__client_timeout(k->c));
    if (rc == COORD_ENOTFOUND) {
        k->version = 0;
        k->value = 0;
        return 0;
    }
    if (rc) return rc;
    rc = coord__counter_decode(k->format, kv.value, kv.len, &k->value);
    k->version = rc ? -1 : kv.version;
    coord_kv_clear(&kv);
    return rc;
}

/* The counter's value, read past the cache (which a handle's adds in flight own). */
static int read_total(coord_counter *k, int64_t *out) {
    coord_conn *kc = coord__client_conn(k->c);
    if (k->shards == 1) {
        coord_kv kv;
        int rc = kc->backend->get(kc, k->path, &kv, coord__client_timeout(k->c));
        if (rc == COORD_ENOTFOUND) {
            *out = 0;
            return 0;
        }
        if (rc) return rc;
        rc = coord__counter_decode(k->format, kv.value, kv.len, out);
        coord_kv_clear(&kv);
        return rc;
    }
    /* All shards in one listing (one etcd range; ZooKeeper pipelines the reads). */
    coord_kv *kids = NULL;
    size_t n = 0;
    int rc = kc->backend->list(kc, k->path, 0, &kids, &n, NULL, coord__client_timeout(k->c));
    if (rc) return rc;
    int64_t sum = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char *end;
        unsigned long idx = strtoul(kids[i].key, &end, 10);
        if (*end || idx >= k->shards) continue; /* not one of our shards */
        int64_t v;
        if (!(rc = coord__counter_decode(k->format, kids[i].value, kids[i].len, &v)) &&
            __builtin_add_overflow(sum, v, &sum))
            rc = coord_seterr(COORD_EPROTO, "the shards' sum overflows int64");
    }
    coord_kv_array_free(kids, n);
    if (!rc) *out = sum;
    return rc;
}

int coord_counter_get(coord_counter *k, int64_t *out) {
    if (!k || !out) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (k->shards > 1) return read_total(k, out);
    int rc = refresh(k); /* and the next add writes on what it read */
    if (!rc) *out = k->value;
    return rc;
}

/* coord_counter_get_async's job; the done gets the value. */
typedef struct get_arg {
    coord_counter *k;
    int64_t value;
    void (*done)(int rc, int64_t value, void *payload);
    void *payload;
} get_arg;

static int get_fn(void *arg) {
    get_arg *a = arg;
    return read_total(a->k, &a->value);
}

static void get_done(int rc, void *arg) {
    get_arg *a = arg;
    a->done(rc, rc ? 0 : a->value, a->payload);
    free(a);
}

int coord_counter_get_async(coord_counter *k, void (*done)(int rc, int64_t value, void *payload),
                            void *payload) {
    if (!k || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    get_arg *a = malloc(sizeof *a);
    if (!a) return coord__oom();
    *a = (get_arg){.k = k, .done = done, .payload = payload};
    int rc = coord__handle_call(k->c, k, a, get_fn, NULL, get_done, a);
    if (rc) free(a);
    return rc;
}

/* Write `desired` on the cached version. 0, COORD_ECONFLICT (cache updated when the backend
 * returned the current entry, else invalidated) or an error. */
static int write_on_cache(coord_counter *k, int64_t desired) {
    coord_conn *kc = coord__client_conn(k->c);
    unsigned char buf[24];
    size_t len = coord__counter_encode(k->format, desired, buf);
    coord_kv cur = {0};
    int rc =
        kc->backend->put(kc, target(k), buf, len, k->version, 0, &cur, coord__client_timeout(k->c));
    if (rc == 0) {
        k->version = cur.version;
        k->value = desired;
    } else if (rc == COORD_ECONFLICT) {
        k->version = -1;
        if (cur.version == 0) {
            k->version = 0;
            k->value = 0;
        } else if (cur.version > 0 &&
                   coord__counter_decode(k->format, cur.value, cur.len, &k->value) == 0) {
            k->version = cur.version;
        }
    } else {
        k->version = -1; /* outcome unknown: read before the next write */
    }
    coord_kv_clear(&cur);
    return rc;
}

int coord_counter_add(coord_counter *k, int64_t delta, int64_t *out_new) {
    if (!k) return coord_seterr(COORD_EINVAL, "counter is NULL");
    int64_t deadline = coord__now_ms() + coord__client_timeout(k->c);
    unsigned backoff_us = 200;
    for (int attempt = 0;; attempt++) {
        if (k->version < 0) {
            int rc = refresh(k);
            if (rc) return rc;
        }
        int64_t desired;
        if (__builtin_add_overflow(k->value, delta, &desired))
            return coord_seterr(COORD_EINVAL, "adding %lld to %lld overflows int64",
                                (long long)delta, (long long)k->value);
        int rc = check_range(k, desired);
        if (rc) return rc;
        rc = write_on_cache(k, desired);
        if (rc == 0) {
            if (out_new) *out_new = desired;
            return 0;
        }
        if (rc != COORD_ECONFLICT) return rc;
        if (k->shards > 1) { /* another writer shares this shard: move on to the next one */
            k->mine = (k->mine + 1) % k->shards;
            k->version = -1;
        }
        if (coord__now_ms() >= deadline)
            return coord_seterr(COORD_ETIMEDOUT, "add on %s: too much contention", target(k));
        if (attempt >= 2) { /* heavy contention: back off, randomised, growing */
            struct timespec ts = {0,
                                  (long)(backoff_us / 2 + (unsigned)rand() % backoff_us) * 1000L};
            nanosleep(&ts, NULL);
            if (backoff_us < 20000) backoff_us *= 2;
        }
    }
}

int coord_counter_cas(coord_counter *k, int64_t expected, int64_t desired) {
    if (!k) return coord_seterr(COORD_EINVAL, "counter is NULL");
    if (k->shards > 1)
        return coord_seterr(COORD_EINVAL, "cas is not available on a sharded counter");
    int rc = check_range(k, desired);
    if (rc) return rc;
    /* The cache saves a round trip when it is right; a refusal is only ever decided on a value
     * read from the server during this call. */
    bool fresh = false;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (k->version < 0) {
            if ((rc = refresh(k))) return rc;
            fresh = true;
        }
        if (k->value != expected) {
            if (fresh)
                return coord_seterr(COORD_ECONFLICT, "counter is %lld, not %lld",
                                    (long long)k->value, (long long)expected);
            k->version = -1; /* perhaps stale: read before refusing */
            continue;
        }
        rc = write_on_cache(k, desired);
        if (rc != COORD_ECONFLICT) return rc;
        /* The conflict brought the current value back (etcd), or the next round reads it. */
        fresh = k->version >= 0;
    }
    return coord_seterr(COORD_ECONFLICT, "counter changed concurrently");
}

int coord_counter_set(coord_counter *k, int64_t value) {
    if (!k) return coord_seterr(COORD_EINVAL, "counter is NULL");
    if (k->shards > 1)
        return coord_seterr(COORD_EINVAL, "set is not available on a sharded counter");
    int rc = check_range(k, value);
    if (rc) return rc;
    coord_conn *kc = coord__client_conn(k->c);
    unsigned char buf[24];
    size_t len = coord__counter_encode(k->format, value, buf);
    coord_kv cur = {0};
    rc = kc->backend->put(kc, k->path, buf, len, COORD_VERSION_ANY, 0, &cur,
                          coord__client_timeout(k->c));
    k->version = rc ? -1 : cur.version;
    k->value = value;
    coord_kv_clear(&cur);
    return rc;
}

/* ---- loop mode: adds in flight, written in batches ---- */

/*
 * The adds made on a handle while its previous write is in flight wait for the next one, and
 * the next write adds them all at once (one round trip for the batch): each done gets the
 * value after its own add, in the order the adds were made, as if they had been written one
 * by one without anything in between. A batch whose sum would overflow is written add by add.
 */
typedef struct add_op {
    coord__aop op;
    struct add_op *next;
    struct add_op *all_next, **all_pprev; /* in k->all until delivered (k->amu) */
    coord_counter *k;
    bool queued; /* in k->queued (k->amu) */
    int64_t delta, value;
    void (*done)(int rc, int64_t value, void *payload);
    void *payload;
} add_op;

static void added(coord__aop *op, int rc) {
    add_op *a = (add_op *)op;
    /* Canceled at close while still queued: out of the handle's queue first. */
    coord_counter *k = a->k;
    pthread_mutex_lock(&k->amu);
    if (a->queued) {
        add_op **pp = &k->queued;
        while (*pp != a)
            pp = &(*pp)->next;
        *pp = a->next;
        if (k->qtail == &a->next) k->qtail = pp;
        a->queued = false;
    }
    *a->all_pprev = a->all_next;
    if (a->all_next) a->all_next->all_pprev = a->all_pprev;
    pthread_mutex_unlock(&k->amu);
    a->done(rc, rc ? 0 : a->value, a->payload);
    free(a);
}

static void flush_job(void *arg, uint64_t tag);

/* Write `batch` (the handle's cache is this job's alone) and finish each add. */
static void write_batch(coord_counter *k, add_op *batch) {
    int64_t sum = 0;
    bool whole = true;
    for (add_op *a = batch; a; a = a->next)
        if (__builtin_add_overflow(sum, a->delta, &sum)) whole = false;
    if (whole) {
        int64_t now = 0;
        int rc = coord_counter_add(k, sum, &now);
        int64_t v = now - sum;
        for (add_op *a = batch, *next; a; a = next) {
            next = a->next;
            v += a->delta;
            a->value = v;
            coord__aop_finish(&a->op, rc);
        }
        return;
    }
    for (add_op *a = batch, *next; a; a = next) {
        next = a->next;
        int rc = coord_counter_add(k, a->delta, &a->value);
        coord__aop_finish(&a->op, rc);
    }
}

static void flush_job(void *arg, uint64_t tag) {
    (void)tag;
    coord_counter *k = arg;
    pthread_mutex_lock(&k->amu);
    while (k->queued) {
        add_op *batch = k->queued;
        for (add_op *a = batch; a; a = a->next)
            a->queued = false;
        k->queued = NULL;
        k->qtail = &k->queued;
        pthread_mutex_unlock(&k->amu);
        write_batch(k, batch);
        pthread_mutex_lock(&k->amu);
    }
    k->flushing = false;
    pthread_mutex_unlock(&k->amu);
}

/* A handle freed with adds not delivered (the batch in flight ended first): each done runs now,
 * ECANCELED for those still queued. */
static void reap_queued(coord_counter *k) {
    pthread_mutex_lock(&k->amu);
    k->flushing = false;
    while (k->all) {
        add_op *a = k->all;
        pthread_mutex_unlock(&k->amu);
        coord__aop_reap(&a->op); /* its delivery unlinks it */
        pthread_mutex_lock(&k->amu);
    }
    pthread_mutex_unlock(&k->amu);
}

int coord_counter_add_async(coord_counter *k, int64_t delta,
                            void (*done)(int rc, int64_t value, void *payload), void *payload) {
    if (!k || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    add_op *a = calloc(1, sizeof *a);
    if (!a) return coord__oom();
    *a = (add_op){.op = {.deliver = added}, .delta = delta, .done = done, .payload = payload};
    int rc = coord__aop_start(k->c, &a->op);
    if (rc) {
        free(a);
        return rc;
    }
    a->k = k;
    pthread_mutex_lock(&k->amu);
    a->all_next = k->all;
    if (a->all_next) a->all_next->all_pprev = &a->all_next;
    a->all_pprev = &k->all;
    k->all = a;
    a->queued = true;
    *k->qtail = a;
    k->qtail = &a->next;
    bool start = !k->flushing;
    k->flushing = true;
    pthread_mutex_unlock(&k->amu);
    /* closing meanwhile: the close cancels the adds still queued */
    if (start && coord__loop_job(k->c, 0, flush_job, k, 0)) {
        pthread_mutex_lock(&k->amu);
        k->flushing = false;
        pthread_mutex_unlock(&k->amu);
    }
    return 0;
}
