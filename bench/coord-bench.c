/*
 * coord-bench: throughput and latency of the coord recipes, next to the bound of the bare
 * backend client measured in the same run.
 *
 *   coord-bench lock --uri zk://127.0.0.1:2181/bench [--threads T] [--locks L] [--seconds S]
 *                    [--client-per-thread] [--raw-lease] [--json]
 *   coord-bench counter --uri etcd://127.0.0.1:2379/bench [--seconds S] [--json]
 *
 *   coord-bench ring [--json]
 *
 * Modes are dispatched from a table (`modes` below).
 *
 * lock: scenarios uncontended (1 thread, 1 lock), contended (8 threads, 1 lock) and parallel
 * (8 threads, 8 locks), plus "custom" (T threads, default 8, over L locks, default 1, thread i
 * on lock i % L) when --threads or --locks is given. Each thread has its own coord_lock handle;
 * by default all share one client (one session), with --client-per-thread each opens its own.
 * A cycle is coord_lock_acquire(-1) + coord_lock_release. The raw bound is one thread of the
 * bare backend client doing what an uncontended acquire/release must do:
 *   ZooKeeper: zoo_create2 EPHEMERAL|SEQUENCE + zoo_get_children + zoo_delete (sync API);
 *   etcd:      POST /v3/kv/txn (create_revision(key)==0 ? put key + first of the prefix by create
 *              revision) + POST /v3/kv/deleterange, one keep-alive libcurl handle; the key is
 *              lease-less, or with --raw-lease on one lease granted before (and revoked after)
 *              the timed loop, like the library's keys.
 * Raw and uncontended run interleaved in 3 slices each (S seconds in all for each), so that
 * other load on the machine weighs on both alike; the other scenarios run S seconds each.
 * Acquire latency is the time coord_lock_acquire takes (raw: create/txn + list, before the
 * delete); handoff latency is from a release's start to the next holder's acquire returning.
 * Wake-ups are coord__lock_wakeups() (lib/internal.h, hence the static library): waiters woken
 * by their predecessor's deletion; a release should wake exactly one waiter.
 * The contended scenario has a raw bound of its own, run right after it: 8 threads of the bare
 * client running the backend's native lock algorithm with the recipe's steps, which tells what
 * the algorithm can reach on this machine apart from the library. etcd's Mutex: enqueue txn; a
 * watch stream on the predecessor, a range checking it had not gone before the stream started,
 * a range for older contenders after it goes; deleterange. Curator's lock on one shared
 * ZooKeeper client: create ephemeral sequential + get_children; exists watch on the predecessor,
 * get_children once it fires; delete.
 *
 * counter: scenarios uncontended (1 thread adding 1 to one counter), contended (8 threads on
 * one counter) and sharded (8 threads on a counter of 8 shards, coord_counter_options.shards);
 * every thread has its own coord_counter handle, all share one client. A cycle is one
 * coord_counter_add(k, 1) and its latency the time that call takes. The raw bound is one thread
 * of the bare backend client doing what an uncontended add must do, one conditional write on
 * the version seen last:
 *   ZooKeeper: zoo_set2(path, value, cached version, &stat), stat.version cached (sync API);
 *   etcd:      POST /v3/kv/txn (mod_revision(key) == last seen ? put key), the answer's header
 *              revision cached as the key's mod_revision, one keep-alive libcurl handle.
 * Raw and uncontended are interleaved in slices as in the lock mode. After the sharded scenario,
 * "raw-keys" runs 8 bare writers at once, each doing the raw bound's write on a key of its own:
 * the server's ceiling for 8 writers, which no sharding can pass. Each scenario's counter is
 * fresh ("bench-<pid>-<scenario>"): its value is read before and after, and the difference must
 * equal the successful adds (warm-up ones included), else the run fails.
 *
 * ring: the hash ring alone (coord_hashring_*, no server), for each placement: lookup time at
 * 10 / 100 / 1,000 / 10,000 members (mean over a loop of lookups cycling through 65,536
 * distinct keys, median of 7 runs; keys are independent, so the CPU may overlap consecutive
 * lookups), build time at 10,000 members (median of 5), the ring's memory, the share of keys
 * that move when a member joins a ring of 100 and when one leaves the 101 against the ideal
 * 1/101 (and whether any key moved between two other members), and max/mean keys per member at
 * 100 and 10,000 members (sampled: the key counts are printed). Targets apply to the default
 * placement. Member ids are "10.a.b.c:11211", so the libmemcached placement drops the port.
 * The raw bound, measured in the same run, is one random dependent memory access over a buffer
 * as large as the default ring at 10,000 members (a pointer chase over a random cycle of its
 * cache lines): the least a lookup in a ring beyond the caches can cost.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <coord.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef COORD_WITH_ZOOKEEPER
#include <zookeeper/zookeeper.h>
#endif
#ifdef COORD_WITH_ETCD
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#endif

#include "internal.h" /* coord__lock_wakeups; coord/sys/backend.h: coord_uri_parse */

#define DEFAULT_THREADS 8
#define RAW_SLICES 3 /* uncontended and raw alternate in this many slices each */
#define TARGET_UNCONTENDED_OVER_RAW 0.9
#define TARGET_CONTENDED_OVER_UNCONTENDED 0.8
#define COUNTER_SHARDS 8 /* counter mode: shards of the "sharded" scenario */
#define TARGET_SHARDED_OVER_CONTENDED 3.0

typedef struct bench_opts {
    const char *uri;
    int threads; /* custom scenario; 0 = not given */
    int locks;   /* custom scenario; 0 = not given */
    int seconds;
    bool json;
    bool client_per_thread;
    bool raw_lease; /* etcd raw bound: attach the key to a lease granted once */
} bench_opts;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------- latency samples ---------- */

typedef struct samples {
    int64_t *v; /* nanoseconds */
    size_t n, cap;
} samples;

static int samples_add(samples *s, int64_t ns) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        int64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns;
    return 0;
}

static int samples_append(samples *dst, const samples *src) {
    for (size_t i = 0; i < src->n; i++)
        if (samples_add(dst, src->v[i])) return -1;
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in milliseconds; 0 without samples. */
static double pct_ms(const samples *s, double p) {
    if (!s->n) return 0;
    size_t rank = (size_t)(p * (double)s->n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > s->n) rank = s->n;
    return (double)s->v[rank - 1] / 1e6;
}

/* ---------- results ---------- */

/* One scenario, possibly measured in several time slices that add up. */
typedef struct result {
    const char *name;
    int threads, locks;
    /* accumulated over the slices */
    int slices;
    samples lat;  /* acquire latencies */
    samples hand; /* handoffs: a release's start to the next holder's acquire returning */
    uint64_t cycles, handoffs;
    int64_t elapsed_ns;
    uint64_t wakeups_before, wakeups_after; /* coord__lock_wakeups() around the first/last slice */
    uint64_t wakeups;                       /* sum over the slices */
    /* figures, by result_finish */
    double elapsed_s, rate, p50_ms, p99_ms, handoff_p50_ms, handoff_p99_ms;
} result;

static void result_finish(result *r) {
    if (r->lat.n) qsort(r->lat.v, r->lat.n, sizeof *r->lat.v, cmp_i64);
    if (r->hand.n) qsort(r->hand.v, r->hand.n, sizeof *r->hand.v, cmp_i64);
    r->elapsed_s = (double)r->elapsed_ns / 1e9;
    r->rate = r->elapsed_s > 0 ? (double)r->cycles / r->elapsed_s : 0;
    r->p50_ms = pct_ms(&r->lat, 0.50);
    r->p99_ms = pct_ms(&r->lat, 0.99);
    r->handoff_p50_ms = pct_ms(&r->hand, 0.50);
    r->handoff_p99_ms = pct_ms(&r->hand, 0.99);
}

static void result_free(result *r) {
    free(r->lat.v);
    free(r->hand.v);
    r->lat = (samples){0};
    r->hand = (samples){0};
}

/* ---------- lock scenarios ---------- */

typedef struct lock_run {
    const bench_opts *o;
    coord_client *shared; /* NULL with --client-per-thread */
    char **names;         /* one lock name per lock */
    int nlocks;
    _Atomic uint64_t *releases;  /* per lock: releases started, to tell handoffs */
    _Atomic int64_t *release_ns; /* per lock: when the latest release started */
    pthread_barrier_t ready, go;
    int64_t start_ns, deadline_ns; /* written by the main thread between the barriers */
    atomic_bool abort;
} lock_run;

typedef struct lock_worker {
    lock_run *run;
    int idx;
    pthread_t th;
    samples lat, handoff;
    uint64_t cycles, handoffs;
    int64_t end_ns;
    int err;
    char errmsg[600];
} lock_worker;

static void worker_fail(lock_worker *w, int rc, const char *what) {
    w->err = rc;
    snprintf(w->errmsg, sizeof w->errmsg, "thread %d: %s: %s: %s", w->idx, what, coord_strerror(rc),
             coord_last_error());
    atomic_store(&w->run->abort, true);
}

static void *lock_worker_main(void *arg) {
    lock_worker *w = arg;
    lock_run *run = w->run;
    int li = w->idx % run->nlocks;
    coord_client *c = run->shared, *own = NULL;
    coord_lock *l = NULL;
    int rc = 0;
    if (!c) {
        rc = coord_client_open(&own, run->o->uri, NULL);
        if (rc)
            worker_fail(w, rc, "connect");
        else
            c = own;
    }
    if (!rc && (rc = coord_lock_new(&l, c, run->names[li]))) worker_fail(w, rc, "coord_lock_new");
    /* Warm-up cycle: parent nodes, connections, pooled handles. */
    if (!rc && (rc = coord_lock_acquire(l, -1))) worker_fail(w, rc, "acquire (warm-up)");
    if (!rc && (rc = coord_lock_release(l))) worker_fail(w, rc, "release (warm-up)");
    if (rc) { /* give up a hold now, so the others' warm-ups reach the barrier */
        coord_lock_free(l);
        l = NULL;
    }
    pthread_barrier_wait(&run->ready);
    pthread_barrier_wait(&run->go);
    while (!rc && !atomic_load(&run->abort) && now_ns() < run->deadline_ns) {
        uint64_t r0 = atomic_load(&run->releases[li]);
        int64_t t0 = now_ns();
        rc = coord_lock_acquire(l, -1);
        int64_t t1 = now_ns();
        if (rc) {
            worker_fail(w, rc, "acquire");
            break;
        }
        /* Another handle released this lock while we were acquiring: we were handed it. */
        if (atomic_load(&run->releases[li]) != r0) {
            w->handoffs++;
            if (samples_add(&w->handoff, t1 - atomic_load(&run->release_ns[li]))) {
                worker_fail(w, COORD_ENOMEM, "latency samples");
                break;
            }
        }
        if (samples_add(&w->lat, t1 - t0)) {
            worker_fail(w, COORD_ENOMEM, "latency samples");
            break;
        }
        atomic_store(&run->release_ns[li], now_ns());
        atomic_fetch_add(&run->releases[li], 1);
        if ((rc = coord_lock_release(l))) {
            worker_fail(w, rc, "release");
            break;
        }
        w->cycles++;
    }
    w->end_ns = now_ns();
    coord_lock_free(l); /* releases a hold left by a failure */
    coord_client_close(own);
    return NULL;
}

/* Run one slice of `ms` milliseconds of a scenario, adding to `r`; 0, or -1 after printing why. */
static int lock_scenario(const bench_opts *o, coord_client *shared, result *r, int64_t ms) {
    int T = r->threads, L = r->locks;
    lock_run run;
    memset(&run, 0, sizeof run);
    run.o = o;
    run.shared = o->client_per_thread ? NULL : shared;
    run.nlocks = L;
    atomic_init(&run.abort, false);
    run.names = calloc((size_t)L, sizeof *run.names);
    run.releases = calloc((size_t)L, sizeof *run.releases);
    run.release_ns = calloc((size_t)L, sizeof *run.release_ns);
    lock_worker *ws = calloc((size_t)T, sizeof *ws);
    int ret = -1;
    if (!run.names || !run.releases || !run.release_ns || !ws) {
        fprintf(stderr, "coord-bench: out of memory\n");
        goto out;
    }
    for (int i = 0; i < L; i++) {
        atomic_init(&run.releases[i], 0);
        atomic_init(&run.release_ns[i], 0);
        if (asprintf(&run.names[i], "bench-%ld-%s-%d", (long)getpid(), r->name, i) < 0) {
            run.names[i] = NULL;
            fprintf(stderr, "coord-bench: out of memory\n");
            goto out;
        }
    }
    pthread_barrier_init(&run.ready, NULL, (unsigned)T + 1);
    pthread_barrier_init(&run.go, NULL, (unsigned)T + 1);
    for (int i = 0; i < T; i++) {
        ws[i].run = &run;
        ws[i].idx = i;
        int prc = pthread_create(&ws[i].th, NULL, lock_worker_main, &ws[i]);
        if (prc) {
            /* The others already wait at barriers sized for T threads: nothing to recover. */
            fprintf(stderr, "coord-bench: %s: cannot start thread %d: %s\n", r->name, i,
                    strerror(prc));
            exit(1);
        }
    }
    pthread_barrier_wait(&run.ready);
    uint64_t wakeups0 = coord__lock_wakeups();
    if (!r->slices) r->wakeups_before = wakeups0;
    run.start_ns = now_ns();
    run.deadline_ns = run.start_ns + ms * 1000000;
    pthread_barrier_wait(&run.go);
    int64_t end = run.start_ns;
    bool failed = false;
    for (int i = 0; i < T; i++) {
        pthread_join(ws[i].th, NULL);
        if (ws[i].err) {
            fprintf(stderr, "coord-bench: %s: %s\n", r->name, ws[i].errmsg);
            failed = true;
        }
        if (samples_append(&r->lat, &ws[i].lat) || samples_append(&r->hand, &ws[i].handoff))
            failed = true;
        r->cycles += ws[i].cycles;
        r->handoffs += ws[i].handoffs;
        if (ws[i].end_ns > end) end = ws[i].end_ns;
    }
    r->wakeups_after = coord__lock_wakeups();
    r->wakeups += r->wakeups_after - wakeups0;
    r->elapsed_ns += end - run.start_ns;
    r->slices++;
    pthread_barrier_destroy(&run.ready);
    pthread_barrier_destroy(&run.go);
    ret = failed ? -1 : 0;
out:
    for (int i = 0; ws && i < T; i++) {
        free(ws[i].lat.v);
        free(ws[i].handoff.v);
    }
    free(ws);
    for (int i = 0; run.names && i < L; i++)
        free(run.names[i]);
    free(run.names);
    free(run.releases);
    free(run.release_ns);
    return ret;
}

/* ---------- raw bound: ZooKeeper C client ---------- */

#if defined(COORD_WITH_ZOOKEEPER) || defined(COORD_WITH_ETCD)
/* A URI time parameter, or its default when the URI leaves it out (0). */
static int ms_or(int v, int dflt) {
    return v > 0 ? v : dflt;
}
#endif

typedef struct raw_result {
    bool ran;
    const char *method;
    result r;
    char err[600];
} raw_result;

/* Lets the threads of a parallel raw bound start their timed loops together; a thread that
 * fails before it gets there drops out instead, so the others do not wait for it. */
typedef struct raw_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int expected, arrived;
} raw_gate;

static void gate_pass(raw_gate *g, bool drop) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    if (drop)
        g->expected--;
    else
        g->arrived++;
    if (g->arrived >= g->expected)
        pthread_cond_broadcast(&g->cv);
    else if (!drop)
        while (g->arrived < g->expected)
            pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* The bench's URI parsed for a bare client; NULL with out->err set. */
static coord_uri *raw_uri(const bench_opts *o, raw_result *out) {
    coord_uri *u = NULL;
    int rc = coord_uri_parse(&u, o->uri);
    if (rc)
        snprintf(out->err, sizeof out->err, "%s: %.400s", coord_strerror(rc), coord_last_error());
    return u;
}

/* The head of each thread of a parallel raw bound (the first member of its own struct). */
typedef struct raw_thread {
    pthread_t th;
    raw_gate *gate;
    raw_result res;
    int64_t start_ns, end_ns; /* its timed loop, when the thread records it */
} raw_thread;

/* Run `fn` on each of the `n` items (of `size` bytes, each starting with a raw_thread) in a
 * thread of its own, all passing `gate` together, and add up their results in *out: cycles,
 * latencies, and the span from the first start to the last end (or the longest loop). */
static bool raw_threads_run(void *items, size_t size, int n, void *(*fn)(void *), raw_gate *gate,
                            raw_result *out) {
    int started = 0;
    for (int i = 0; i < n; i++) {
        raw_thread *t = (raw_thread *)(void *)((char *)items + (size_t)i * size);
        t->gate = gate;
        if (pthread_create(&t->th, NULL, fn, t)) {
            snprintf(out->err, sizeof out->err, "cannot start raw thread %d", i);
            for (int j = i; j < n; j++)
                gate_pass(gate, true);
            break;
        }
        started++;
    }
    int64_t start = 0, end = 0, longest = 0;
    for (int i = 0; i < started; i++) {
        raw_thread *t = (raw_thread *)(void *)((char *)items + (size_t)i * size);
        pthread_join(t->th, NULL);
        raw_result *r = &t->res;
        if (r->err[0] && !out->err[0]) snprintf(out->err, sizeof out->err, "%s", r->err);
        if (samples_append(&out->r.lat, &r->r.lat) && !out->err[0])
            snprintf(out->err, sizeof out->err, "out of memory");
        out->r.cycles += r->r.cycles;
        if (!out->method) out->method = r->method;
        if (t->start_ns && (!start || t->start_ns < start)) start = t->start_ns;
        if (t->end_ns > end) end = t->end_ns;
        if (r->r.elapsed_ns > longest) longest = r->r.elapsed_ns;
        free(r->r.lat.v);
    }
    out->r.elapsed_ns = end > start ? end - start : longest;
    out->r.slices = 1;
    out->ran = !out->err[0] && started == n && n > 0;
    return out->ran;
}

#ifdef COORD_WITH_ZOOKEEPER
typedef struct zk_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;
    bool auth_done;
    int auth_rc;
} zk_wait;

static void raw_zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh;
    (void)path;
    zk_wait *zw = ctx;
    if (type != ZOO_SESSION_EVENT) return;
    pthread_mutex_lock(&zw->mu);
    zw->state = state;
    pthread_cond_broadcast(&zw->cv);
    pthread_mutex_unlock(&zw->mu);
}

static void raw_zk_auth_done(int rc, const void *data) {
    zk_wait *zw = (zk_wait *)data;
    pthread_mutex_lock(&zw->mu);
    zw->auth_done = true;
    zw->auth_rc = rc;
    pthread_cond_broadcast(&zw->cv);
    pthread_mutex_unlock(&zw->mu);
}

/* Create `path` and its missing ancestors as persistent nodes. */
static int raw_zk_mkdirs(zhandle_t *zh, const char *path, const struct ACL_vector *acl) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char saved = *p;
            *p = 0;
            int rc = zoo_create(zh, buf, NULL, -1, acl, 0, NULL, 0);
            if (rc != ZOK && rc != ZNODEEXISTS) return rc;
            *p = saved;
            if (!saved) return ZOK;
        }
    }
}

/* Connect the bare ZooKeeper client to the URI's hosts, with digest auth when the URI names a
 * user. The handle, or NULL with out->err set. `*acl` is what the bound's nodes are made with. */
static zhandle_t *raw_zk_open(const coord_uri *u, zk_wait *zw, const struct ACL_vector **acl,
                              raw_result *out) {
    char hosts[2048] = "";
    size_t hl = 0;
    for (size_t i = 0; i < u->nhosts && hl < sizeof hosts; i++) {
        bool v6 = strchr(u->hosts[i].host, ':') != NULL;
        hl += (size_t)snprintf(hosts + hl, sizeof hosts - hl, v6 ? "%s[%s]:%d" : "%s%s:%d",
                               i ? "," : "", u->hosts[i].host, u->hosts[i].port);
    }
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zhandle_t *zh =
        zookeeper_init(hosts, raw_zk_watcher, ms_or(u->session_ttl_ms, 10000), NULL, zw, 0);
    if (!zh) {
        snprintf(out->err, sizeof out->err, "zookeeper_init %.300s: %s", hosts, strerror(errno));
        return NULL;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms_or(u->connect_timeout_ms, 5000) / 1000 + 1;
    pthread_mutex_lock(&zw->mu);
    while (zw->state != ZOO_CONNECTED_STATE)
        if (pthread_cond_timedwait(&zw->cv, &zw->mu, &dl) == ETIMEDOUT) break;
    bool connected = zw->state == ZOO_CONNECTED_STATE;
    pthread_mutex_unlock(&zw->mu);
    if (!connected) {
        snprintf(out->err, sizeof out->err, "zookeeper %.300s: not connected within %d ms", hosts,
                 ms_or(u->connect_timeout_ms, 5000));
        zookeeper_close(zh);
        return NULL;
    }
    *acl = &ZOO_OPEN_ACL_UNSAFE;
    if (u->user) {
        char cred[512];
        snprintf(cred, sizeof cred, "%s:%s", u->user, u->password ? u->password : "");
        int rc = zoo_add_auth(zh, "digest", cred, (int)strlen(cred), raw_zk_auth_done, zw);
        pthread_mutex_lock(&zw->mu);
        while (rc == ZOK && !zw->auth_done)
            if (pthread_cond_timedwait(&zw->cv, &zw->mu, &dl) == ETIMEDOUT) break;
        if (rc == ZOK) rc = zw->auth_done ? zw->auth_rc : ZOPERATIONTIMEOUT;
        pthread_mutex_unlock(&zw->mu);
        if (rc != ZOK) {
            snprintf(out->err, sizeof out->err, "zookeeper digest auth: %s", zerror(rc));
            zookeeper_close(zh);
            return NULL;
        }
        *acl = &ZOO_CREATOR_ALL_ACL;
    }
    return zh;
}

static void raw_zk(const coord_uri *u, int64_t ms, raw_result *out) {
    out->method = "zoo_create2 EPHEMERAL|SEQUENCE + zoo_get_children + zoo_delete (sync API)";
    zk_wait zw = {.state = 0};
    pthread_mutex_init(&zw.mu, NULL);
    pthread_cond_init(&zw.cv, NULL);
    const struct ACL_vector *acl = NULL;
    char parent[1024] = "", child[1100];
    zhandle_t *zh = raw_zk_open(u, &zw, &acl, out);
    if (!zh) goto done;
    snprintf(parent, sizeof parent, "%s/bench-raw-%ld", u->prefix, (long)getpid());
    snprintf(child, sizeof child, "%s/_c_raw-lock-", parent);
    int rc = raw_zk_mkdirs(zh, parent, acl);
    if (rc != ZOK) {
        snprintf(out->err, sizeof out->err, "zookeeper create %.300s: %s", parent, zerror(rc));
        parent[0] = 0;
        goto done;
    }
    int64_t start = 0, deadline = 0;
    for (int warm = 1; warm >= 0; warm--) { /* one warm-up cycle, then the timed loop */
        start = now_ns();
        deadline = start + ms * 1000000;
        do {
            char made[1200];
            struct Stat st;
            struct String_vector kids;
            int64_t t0 = now_ns();
            rc = zoo_create2(zh, child, NULL, -1, acl, ZOO_EPHEMERAL_SEQUENTIAL, made, sizeof made,
                             &st);
            if (rc != ZOK) {
                snprintf(out->err, sizeof out->err, "zoo_create2 %.300s: %s", child, zerror(rc));
                goto done;
            }
            rc = zoo_get_children(zh, parent, 0, &kids);
            if (rc != ZOK) {
                snprintf(out->err, sizeof out->err, "zoo_get_children %.300s: %s", parent,
                         zerror(rc));
                goto done;
            }
            int64_t t1 = now_ns();
            int nkids = kids.count;
            deallocate_String_vector(&kids);
            if (nkids != 1) {
                snprintf(out->err, sizeof out->err, "%.300s: %d children, expected 1", parent,
                         nkids);
                goto done;
            }
            rc = zoo_delete(zh, made, -1);
            if (rc != ZOK) {
                snprintf(out->err, sizeof out->err, "zoo_delete %.300s: %s", made, zerror(rc));
                goto done;
            }
            if (!warm) {
                if (samples_add(&out->r.lat, t1 - t0)) {
                    snprintf(out->err, sizeof out->err, "out of memory");
                    goto done;
                }
                out->r.cycles++;
            }
        } while (!warm && now_ns() < deadline);
    }
    out->r.elapsed_ns += now_ns() - start;
    out->r.slices++;
done:
    if (zh && parent[0]) zoo_delete(zh, parent, -1);
    if (zh) zookeeper_close(zh);
    pthread_mutex_destroy(&zw.mu);
    pthread_cond_destroy(&zw.cv);
}

/* Counter bound: what an uncontended add must do, one conditional write on the version seen
 * last (the node is made, outside the timed loop, with version 0). */
/* `idx` names the key (parallel writers each have their own); `gate`, when not NULL, is passed
 * between the warm-up and the timed loop. */
static void raw_zk_counter(const coord_uri *u, int64_t ms, int idx, raw_gate *gate,
                           raw_result *out) {
    out->method = "zoo_set2(path, value, cached version, &stat) (sync API), stat.version cached";
    zk_wait zw = {.state = 0};
    pthread_mutex_init(&zw.mu, NULL);
    pthread_cond_init(&zw.cv, NULL);
    const struct ACL_vector *acl = NULL;
    char parent[1024] = "", node[1100] = "";
    zhandle_t *zh = raw_zk_open(u, &zw, &acl, out);
    if (!zh) goto done;
    snprintf(parent, sizeof parent, "%s/bench-raw-%ld-%d", u->prefix, (long)getpid(), idx);
    snprintf(node, sizeof node, "%s/counter", parent);
    int rc = raw_zk_mkdirs(zh, parent, acl);
    if (rc != ZOK) {
        snprintf(out->err, sizeof out->err, "zookeeper create %.300s: %s", parent, zerror(rc));
        parent[0] = 0;
        goto done;
    }
    struct Stat st;
    rc = zoo_create2(zh, node, "0", 1, acl, 0, NULL, 0, &st);
    if (rc != ZOK) {
        snprintf(out->err, sizeof out->err, "zoo_create2 %.300s: %s", node, zerror(rc));
        node[0] = 0;
        goto done;
    }
    int version = st.version;
    long long value = 0;
    int64_t start = 0, deadline = 0;
    for (int warm = 1; warm >= 0; warm--) { /* one warm-up cycle, then the timed loop */
        if (!warm) {
            gate_pass(gate, false);
            gate = NULL;
        }
        start = now_ns();
        deadline = start + ms * 1000000;
        do {
            char buf[24];
            int64_t t0 = now_ns();
            int len = snprintf(buf, sizeof buf, "%lld", ++value);
            rc = zoo_set2(zh, node, buf, len, version, &st);
            int64_t t1 = now_ns();
            if (rc != ZOK) {
                snprintf(out->err, sizeof out->err, "zoo_set2 %.300s version %d: %s", node, version,
                         zerror(rc));
                goto done;
            }
            version = st.version;
            if (!warm) {
                if (samples_add(&out->r.lat, t1 - t0)) {
                    snprintf(out->err, sizeof out->err, "out of memory");
                    goto done;
                }
                out->r.cycles++;
            }
        } while (!warm && now_ns() < deadline);
    }
    out->r.elapsed_ns += now_ns() - start;
    out->r.slices++;
done:
    gate_pass(gate, true);
    if (zh && node[0]) zoo_delete(zh, node, -1);
    if (zh && parent[0]) zoo_delete(zh, parent, -1);
    if (zh) zookeeper_close(zh);
    pthread_mutex_destroy(&zw.mu);
    pthread_cond_destroy(&zw.cv);
}
#endif

/* ---------- raw bound: etcd v3 JSON gateway over libcurl ---------- */

#ifdef COORD_WITH_ETCD
typedef struct http_buf {
    char *data;
    size_t len, cap;
} http_buf;

static size_t raw_on_body(char *p, size_t sz, size_t n, void *ud) {
    http_buf *b = ud;
    size_t add = sz * n;
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = 0;
    return add;
}

/* Base64 of `len` bytes (EVP_EncodeBlock: no line breaks); malloc'd. */
static char *b64(const void *data, size_t len) {
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static bool add_b64(cJSON *obj, const char *field, const void *data, size_t len) {
    char *s = b64(data, len);
    bool ok = s && cJSON_AddStringToObject(obj, field, s);
    free(s);
    return ok;
}

typedef struct etcd_http {
    CURL *h;
    struct curl_slist *hdrs;
    char base[600];
    http_buf resp;
    char *err;
    size_t errlen;
} etcd_http;

/* POST `json` to `path`; the parsed answer in *out. */
static int raw_etcd_post_str(etcd_http *e, const char *path, const char *json, cJSON **out) {
    char url[700];
    snprintf(url, sizeof url, "%s%s", e->base, path);
    e->resp.len = 0;
    curl_easy_setopt(e->h, CURLOPT_URL, url);
    curl_easy_setopt(e->h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(e->h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    CURLcode cc = curl_easy_perform(e->h);
    long status = 0;
    curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK) {
        snprintf(e->err, e->errlen, "POST %s: %s", url, curl_easy_strerror(cc));
        return -1;
    }
    if (status != 200) {
        snprintf(e->err, e->errlen, "POST %s: HTTP %ld: %.200s", url, status,
                 e->resp.data ? e->resp.data : "");
        return -1;
    }
    *out = cJSON_ParseWithLength(e->resp.data, e->resp.len);
    if (!*out) {
        snprintf(e->err, e->errlen, "POST %s: answer is not JSON", url);
        return -1;
    }
    return 0;
}

/* POST `req` (consumed) to `path`; the parsed answer in *out. */
static int raw_etcd_post(etcd_http *e, const char *path, cJSON *req, cJSON **out) {
    char *json = req ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    if (!json) {
        snprintf(e->err, e->errlen, "out of memory");
        return -1;
    }
    int rc = raw_etcd_post_str(e, path, json, out);
    free(json);
    return rc;
}

/* A keep-alive libcurl handle on the URI's first member, authenticated when the URI names a
 * user. 0, or -1 with e->err set; the caller frees e->h, e->hdrs and e->resp.data either way. */
static int raw_etcd_open(const coord_uri *u, etcd_http *e) {
    bool tls = strcmp(u->scheme, "etcds") == 0;
    bool v6 = strchr(u->hosts[0].host, ':') != NULL;
    snprintf(e->base, sizeof e->base, v6 ? "%s://[%s]:%d" : "%s://%s:%d", tls ? "https" : "http",
             u->hosts[0].host, u->hosts[0].port);
    if (!(e->h = curl_easy_init())) {
        snprintf(e->err, e->errlen, "curl_easy_init failed");
        return -1;
    }
    curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e->h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, (long)ms_or(u->timeout_ms, 5000));
    curl_easy_setopt(e->h, CURLOPT_CONNECTTIMEOUT_MS, (long)ms_or(u->connect_timeout_ms, 5000));
    curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, raw_on_body);
    curl_easy_setopt(e->h, CURLOPT_WRITEDATA, &e->resp);
    if (coord_uri_param(u, "ca")) curl_easy_setopt(e->h, CURLOPT_CAINFO, coord_uri_param(u, "ca"));
    if (coord_uri_param(u, "cert")) {
        curl_easy_setopt(e->h, CURLOPT_SSLCERT, coord_uri_param(u, "cert"));
        curl_easy_setopt(e->h, CURLOPT_SSLKEY, coord_uri_param(u, "key"));
    }
    e->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, e->hdrs);
    if (u->user) {
        cJSON *req = cJSON_CreateObject(), *res = NULL;
        if (req) {
            cJSON_AddStringToObject(req, "name", u->user);
            cJSON_AddStringToObject(req, "password", u->password ? u->password : "");
        }
        if (raw_etcd_post(e, "/v3/auth/authenticate", req, &res)) return -1;
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(res, "token");
        char *line = NULL;
        if (cJSON_IsString(tok) && asprintf(&line, "Authorization: %s", tok->valuestring) > 0) {
            e->hdrs = curl_slist_append(e->hdrs, line);
            curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, e->hdrs);
        }
        free(line);
        cJSON_Delete(res);
    }
    return 0;
}

static void raw_etcd(const coord_uri *u, int64_t ms, bool with_lease, raw_result *out) {
    out->method = with_lease
                      ? "POST /v3/kv/txn (create_revision(key)==0 ? put key + range prefix sort "
                        "CREATE ASCEND limit 1) + POST /v3/kv/deleterange, one keep-alive libcurl "
                        "handle, key on one lease granted once"
                      : "POST /v3/kv/txn (create_revision(key)==0 ? put key + range prefix sort "
                        "CREATE ASCEND limit 1) + POST /v3/kv/deleterange, one keep-alive libcurl "
                        "handle, lease-less key";
    char lease[32] = "";
    etcd_http e = {.err = out->err, .errlen = sizeof out->err};
    char *key = NULL, *dir = NULL, *dir_end = NULL, *key64 = NULL;
    cJSON *res = NULL;
    if (raw_etcd_open(u, &e)) goto done;
    if (asprintf(&dir, "%s/bench-raw-%ld/", u->prefix, (long)getpid()) < 0) dir = NULL;
    if (dir && asprintf(&key, "%sraw", dir) < 0) key = NULL;
    if (!dir || !key || !(dir_end = strdup(dir)) || !(key64 = b64(key, strlen(key)))) {
        snprintf(out->err, sizeof out->err, "out of memory");
        goto done;
    }
    dir_end[strlen(dir_end) - 1]++; /* "…/" -> "…0": the end of the prefix range */
    if (with_lease) {
        cJSON *req = cJSON_CreateObject();
        if (req) cJSON_AddStringToObject(req, "TTL", "60");
        if (raw_etcd_post(&e, "/v3/lease/grant", req, &res)) goto done;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(res, "ID");
        if (cJSON_IsString(id)) snprintf(lease, sizeof lease, "%s", id->valuestring);
        cJSON_Delete(res);
        res = NULL;
        if (!lease[0]) {
            snprintf(out->err, sizeof out->err, "lease grant: answer without an ID");
            goto done;
        }
    }
    int64_t start = 0, deadline = 0;
    for (int warm = 1; warm >= 0; warm--) { /* one warm-up cycle, then the timed loop */
        start = now_ns();
        deadline = start + ms * 1000000;
        do {
            int64_t t0 = now_ns();
            cJSON *req = cJSON_CreateObject();
            cJSON *cmps = cJSON_AddArrayToObject(req, "compare");
            cJSON *succ = cJSON_AddArrayToObject(req, "success");
            cJSON *cmp = cJSON_CreateObject(), *putop = cJSON_CreateObject(),
                  *rangeop = cJSON_CreateObject();
            bool ok = cmps && succ && cmp && putop && rangeop;
            if (ok) {
                cJSON_AddItemToArray(cmps, cmp);
                cJSON_AddItemToArray(succ, putop);
                cJSON_AddItemToArray(succ, rangeop);
            } else {
                cJSON_Delete(cmp);
                cJSON_Delete(putop);
                cJSON_Delete(rangeop);
            }
            cJSON *put = ok ? cJSON_AddObjectToObject(putop, "request_put") : NULL;
            cJSON *range = ok ? cJSON_AddObjectToObject(rangeop, "request_range") : NULL;
            ok = ok && put && range && add_b64(cmp, "key", key, strlen(key)) &&
                 cJSON_AddStringToObject(cmp, "target", "CREATE") &&
                 cJSON_AddStringToObject(cmp, "result", "EQUAL") &&
                 cJSON_AddStringToObject(cmp, "create_revision", "0") &&
                 add_b64(put, "key", key, strlen(key)) && add_b64(put, "value", "", 0) &&
                 (!lease[0] || cJSON_AddStringToObject(put, "lease", lease)) &&
                 add_b64(range, "key", dir, strlen(dir)) &&
                 add_b64(range, "range_end", dir_end, strlen(dir_end)) &&
                 cJSON_AddStringToObject(range, "sort_target", "CREATE") &&
                 cJSON_AddStringToObject(range, "sort_order", "ASCEND") &&
                 cJSON_AddStringToObject(range, "limit", "1");
            if (!ok) {
                cJSON_Delete(req);
                snprintf(out->err, sizeof out->err, "out of memory");
                goto done;
            }
            if (raw_etcd_post(&e, "/v3/kv/txn", req, &res)) goto done;
            /* Ours, and first of the prefix: what an uncontended acquire must learn. */
            const cJSON *resps = cJSON_GetObjectItemCaseSensitive(res, "responses");
            const cJSON *rr =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(resps, 1), "response_range");
            const cJSON *k0 = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0), "key");
            bool first = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded")) &&
                         cJSON_IsString(k0) && strcmp(k0->valuestring, key64) == 0;
            cJSON_Delete(res);
            res = NULL;
            int64_t t1 = now_ns();
            if (!first) {
                snprintf(out->err, sizeof out->err, "txn on %s: not created or not first", key);
                goto done;
            }
            cJSON *dreq = cJSON_CreateObject();
            if (dreq && !add_b64(dreq, "key", key, strlen(key))) {
                cJSON_Delete(dreq);
                dreq = NULL;
            }
            if (raw_etcd_post(&e, "/v3/kv/deleterange", dreq, &res)) goto done;
            const cJSON *deleted = cJSON_GetObjectItemCaseSensitive(res, "deleted");
            bool gone = cJSON_IsString(deleted) && strcmp(deleted->valuestring, "1") == 0;
            cJSON_Delete(res);
            res = NULL;
            if (!gone) {
                snprintf(out->err, sizeof out->err, "deleterange %s: nothing deleted", key);
                goto done;
            }
            if (!warm) {
                if (samples_add(&out->r.lat, t1 - t0)) {
                    snprintf(out->err, sizeof out->err, "out of memory");
                    goto done;
                }
                out->r.cycles++;
            }
        } while (!warm && now_ns() < deadline);
    }
    out->r.elapsed_ns += now_ns() - start;
    out->r.slices++;
done:
    if (e.h && lease[0]) {
        cJSON *req = cJSON_CreateObject();
        if (req) cJSON_AddStringToObject(req, "ID", lease);
        if (raw_etcd_post(&e, "/v3/lease/revoke", req, &res) == 0) cJSON_Delete(res);
    }
    if (e.h) curl_easy_cleanup(e.h);
    curl_slist_free_all(e.hdrs);
    free(e.resp.data);
    free(key);
    free(key64);
    free(dir);
    free(dir_end);
}

/* An int64 that the JSON gateway sends as a string (or a number); false when absent. */
static bool json_i64(const cJSON *obj, const char *field, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (cJSON_IsString(v)) {
        char *end;
        errno = 0;
        long long x = strtoll(v->valuestring, &end, 10);
        if (errno || end == v->valuestring || *end) return false;
        *out = x;
        return true;
    }
    if (cJSON_IsNumber(v)) {
        *out = (int64_t)v->valuedouble;
        return true;
    }
    return false;
}

/* Counter bound: what an uncontended add must do, one conditional write on the mod_revision
 * seen last. The key is put and its mod_revision read outside the timed loop; after each
 * successful txn (a single put) the answer's header revision is the key's new mod_revision. */
static void raw_etcd_counter(const coord_uri *u, int64_t ms, int idx, raw_gate *gate,
                             raw_result *out) {
    out->method = "POST /v3/kv/txn (mod_revision(key)==last seen ? put key), one keep-alive "
                  "libcurl handle, lease-less key; header revision cached";
    etcd_http e = {.err = out->err, .errlen = sizeof out->err};
    char *key = NULL;
    cJSON *res = NULL;
    bool made = false;
    if (raw_etcd_open(u, &e)) goto done;
    if (asprintf(&key, "%s/bench-raw-%ld-%d/counter", u->prefix, (long)getpid(), idx) < 0) {
        key = NULL;
        snprintf(out->err, sizeof out->err, "out of memory");
        goto done;
    }
    cJSON *req = cJSON_CreateObject();
    if (req && (!add_b64(req, "key", key, strlen(key)) || !add_b64(req, "value", "0", 1))) {
        cJSON_Delete(req);
        req = NULL;
    }
    if (raw_etcd_post(&e, "/v3/kv/put", req, &res)) goto done;
    made = true;
    cJSON_Delete(res);
    res = NULL;
    req = cJSON_CreateObject();
    if (req && !add_b64(req, "key", key, strlen(key))) {
        cJSON_Delete(req);
        req = NULL;
    }
    if (raw_etcd_post(&e, "/v3/kv/range", req, &res)) goto done;
    int64_t rev = 0;
    const cJSON *kv0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "kvs"), 0);
    if (!json_i64(kv0, "mod_revision", &rev) || rev <= 0) {
        snprintf(out->err, sizeof out->err, "range %.300s: no mod_revision in the answer", key);
        goto done;
    }
    cJSON_Delete(res);
    res = NULL;
    long long value = 0;
    int64_t start = 0, deadline = 0;
    for (int warm = 1; warm >= 0; warm--) { /* one warm-up cycle, then the timed loop */
        if (!warm) {
            gate_pass(gate, false);
            gate = NULL;
        }
        start = now_ns();
        deadline = start + ms * 1000000;
        do {
            char buf[24];
            int64_t t0 = now_ns();
            int len = snprintf(buf, sizeof buf, "%lld", ++value);
            req = cJSON_CreateObject();
            cJSON *cmps = cJSON_AddArrayToObject(req, "compare");
            cJSON *succ = cJSON_AddArrayToObject(req, "success");
            cJSON *cmp = cJSON_CreateObject(), *putop = cJSON_CreateObject();
            bool ok = cmps && succ && cmp && putop;
            if (ok) {
                cJSON_AddItemToArray(cmps, cmp);
                cJSON_AddItemToArray(succ, putop);
            } else {
                cJSON_Delete(cmp);
                cJSON_Delete(putop);
            }
            cJSON *put = ok ? cJSON_AddObjectToObject(putop, "request_put") : NULL;
            char revs[24];
            snprintf(revs, sizeof revs, "%lld", (long long)rev);
            ok = ok && put && add_b64(cmp, "key", key, strlen(key)) &&
                 cJSON_AddStringToObject(cmp, "target", "MOD") &&
                 cJSON_AddStringToObject(cmp, "result", "EQUAL") &&
                 cJSON_AddStringToObject(cmp, "mod_revision", revs) &&
                 add_b64(put, "key", key, strlen(key)) && add_b64(put, "value", buf, (size_t)len);
            if (!ok) {
                cJSON_Delete(req);
                snprintf(out->err, sizeof out->err, "out of memory");
                goto done;
            }
            if (raw_etcd_post(&e, "/v3/kv/txn", req, &res)) goto done;
            bool succeeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded"));
            bool has_rev =
                json_i64(cJSON_GetObjectItemCaseSensitive(res, "header"), "revision", &rev);
            cJSON_Delete(res);
            res = NULL;
            int64_t t1 = now_ns();
            if (!succeeded || !has_rev) {
                snprintf(out->err, sizeof out->err, "txn on %.300s: %s", key,
                         succeeded ? "no header revision in the answer"
                                   : "mod_revision differs (someone else wrote the key)");
                goto done;
            }
            if (!warm) {
                if (samples_add(&out->r.lat, t1 - t0)) {
                    snprintf(out->err, sizeof out->err, "out of memory");
                    goto done;
                }
                out->r.cycles++;
            }
        } while (!warm && now_ns() < deadline);
    }
    out->r.elapsed_ns += now_ns() - start;
    out->r.slices++;
done:
    gate_pass(gate, true);
    cJSON_Delete(res);
    if (e.h && made) {
        /* Remove the key; keep the error of the timed loop, if any. */
        char saved[sizeof out->err];
        memcpy(saved, out->err, sizeof saved);
        cJSON *dreq = cJSON_CreateObject();
        if (dreq && !add_b64(dreq, "key", key, strlen(key))) {
            cJSON_Delete(dreq);
            dreq = NULL;
        }
        res = NULL;
        if (raw_etcd_post(&e, "/v3/kv/deleterange", dreq, &res) == 0) cJSON_Delete(res);
        memcpy(out->err, saved, sizeof saved);
    }
    if (e.h) curl_easy_cleanup(e.h);
    curl_slist_free_all(e.hdrs);
    free(e.resp.data);
    free(key);
}
#endif

#ifdef COORD_WITH_ETCD
/*
 * The raw bound of the contended scenario on etcd: bare clients, a libcurl handle each plus one
 * for their watch streams, running etcd's own Mutex algorithm on one prefix with the steps the
 * recipe must take: a txn that enqueues and returns the two newest contenders; a watch stream on
 * the predecessor only, which (like the library's) starts "now", so a read then checks that the
 * predecessor had not gone before the stream started; once it goes, a read for any older
 * contender left; a deleterange to release. Nothing else of the library (no session, retry or
 * error handling beyond reporting).
 */
typedef struct raw_stream {
    etcd_http *e; /* for the check */
    const char *pred64;
    int64_t pred_created;
    http_buf buf;
    bool gone;
} raw_stream;

/* One line of the watch stream: the creation (then the check), or the predecessor's deletion.
 * False when the stream is to end. */
static bool raw_stream_line(raw_stream *s, const char *line, size_t len) {
    cJSON *msg = cJSON_ParseWithLength(line, len);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(msg, "result");
    bool go_on = res != NULL;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created"))) {
        char req[700];
        snprintf(req, sizeof req, "{\"key\":\"%s\",\"keys_only\":true}", s->pred64);
        cJSON *r = NULL;
        if (raw_etcd_post_str(s->e, "/v3/kv/range", req, &r)) {
            go_on = false;
        } else {
            const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "kvs"), 0);
            int64_t created = 0;
            s->gone =
                !kv || !json_i64(kv, "create_revision", &created) || created != s->pred_created;
            go_on = !s->gone;
        }
        cJSON_Delete(r);
    }
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(res, "events")) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
        if (cJSON_IsString(type) && !strcmp(type->valuestring, "DELETE")) {
            s->gone = true;
            go_on = false;
        }
    }
    cJSON_Delete(msg);
    return go_on;
}

static size_t raw_on_stream(char *p, size_t sz, size_t n, void *ud) {
    raw_stream *s = ud;
    if (!raw_on_body(p, sz, n, &s->buf)) return 0;
    char *nl;
    while ((nl = memchr(s->buf.data, '\n', s->buf.len))) {
        size_t len = (size_t)(nl - s->buf.data);
        bool go_on = raw_stream_line(s, s->buf.data, len);
        memmove(s->buf.data, nl + 1, s->buf.len - len - 1);
        s->buf.len -= len + 1;
        if (!go_on) return 0; /* ends the stream, as the library's unwatch does */
    }
    return sz * n;
}

typedef struct raw_contender {
    raw_thread t;
    const coord_uri *u;
    const char *dir, *dir_end;
    int64_t ms;
    int idx;
} raw_contender;

static void *raw_contender_main(void *arg) {
    raw_contender *c = arg;
    raw_result *out = &c->t.res;
    etcd_http e = {.err = out->err, .errlen = sizeof out->err};
    etcd_http w = {.err = out->err, .errlen = sizeof out->err};
    char *key = NULL, *key64 = NULL, *dir64 = b64(c->dir, strlen(c->dir)),
         *end64 = b64(c->dir_end, strlen(c->dir_end));
    bool passed = false, queued = false;
    cJSON *res = NULL;
    raw_stream st = {.e = &e};
    char req[2048];
    if (raw_etcd_open(c->u, &e) || raw_etcd_open(c->u, &w)) goto done;
    curl_easy_setopt(w.h, CURLOPT_WRITEFUNCTION, raw_on_stream);
    curl_easy_setopt(w.h, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(w.h, CURLOPT_TIMEOUT_MS, (long)(c->ms + 30000)); /* a stuck run ends */
    if (asprintf(&key, "%sc%d", c->dir, c->idx) < 0) key = NULL;
    if (!key || !(key64 = b64(key, strlen(key))) || !dir64 || !end64) {
        snprintf(out->err, sizeof out->err, "out of memory");
        goto done;
    }
    gate_pass(c->t.gate, false);
    passed = true;
    int64_t deadline = (c->t.start_ns = now_ns()) + c->ms * 1000000;
    while (now_ns() < deadline) {
        int64_t t0 = now_ns();
        snprintf(req, sizeof req,
                 "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
                 "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"%s\"}},"
                 "{\"request_range\":{\"key\":\"%s\",\"range_end\":\"%s\",\"sort_target\":"
                 "\"CREATE\",\"sort_order\":\"DESCEND\",\"limit\":\"2\"}}]}",
                 key64, key64, dir64, end64);
        if (raw_etcd_post_str(&e, "/v3/kv/txn", req, &res)) goto done;
        queued = true;
        int64_t mine = 0;
        const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "responses"), 1),
            "response_range");
        const cJSON *pred = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 1);
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded")) ||
            !json_i64(cJSON_GetObjectItemCaseSensitive(res, "header"), "revision", &mine)) {
            snprintf(out->err, sizeof out->err, "enqueue txn on %s: not created", key);
            goto done;
        }
        char pred64[700] = "";
        while (pred) {
            const cJSON *pk = cJSON_GetObjectItemCaseSensitive(pred, "key");
            st.pred_created = 0;
            if (!cJSON_IsString(pk) || !json_i64(pred, "create_revision", &st.pred_created)) {
                snprintf(out->err, sizeof out->err, "queue range: a contender without key");
                goto done;
            }
            snprintf(pred64, sizeof pred64, "%s", pk->valuestring);
            cJSON_Delete(res);
            res = NULL;
            st.pred64 = pred64;
            st.gone = false;
            st.buf.len = 0;
            snprintf(req, sizeof req, "{\"create_request\":{\"key\":\"%s\"}}", pred64);
            char url[700];
            snprintf(url, sizeof url, "%s/v3/watch", w.base);
            curl_easy_setopt(w.h, CURLOPT_URL, url);
            curl_easy_setopt(w.h, CURLOPT_POSTFIELDS, req);
            curl_easy_setopt(w.h, CURLOPT_POSTFIELDSIZE, (long)strlen(req));
            CURLcode cc = curl_easy_perform(w.h);
            if (!st.gone) {
                if (!out->err[0])
                    snprintf(out->err, sizeof out->err, "watch %.300s: %s", pred64,
                             curl_easy_strerror(cc));
                goto done;
            }
            snprintf(req, sizeof req,
                     "{\"key\":\"%s\",\"range_end\":\"%s\",\"sort_target\":\"CREATE\","
                     "\"sort_order\":\"DESCEND\",\"limit\":\"1\",\"max_create_revision\":\"%lld\"}",
                     dir64, end64, (long long)(mine - 1));
            if (raw_etcd_post_str(&e, "/v3/kv/range", req, &res)) goto done;
            pred = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "kvs"), 0);
        }
        cJSON_Delete(res);
        res = NULL;
        int64_t t1 = now_ns();
        if (samples_add(&out->r.lat, t1 - t0)) {
            snprintf(out->err, sizeof out->err, "out of memory");
            goto done;
        }
        out->r.cycles++;
        snprintf(req, sizeof req, "{\"key\":\"%s\"}", key64);
        if (raw_etcd_post_str(&e, "/v3/kv/deleterange", req, &res)) goto done;
        queued = false;
        cJSON_Delete(res);
        res = NULL;
    }
    c->t.end_ns = now_ns();
done:
    if (!passed) gate_pass(c->t.gate, true);
    cJSON_Delete(res);
    if (queued && e.h) { /* an error left our key: remove it, keeping the error */
        char saved[sizeof out->err];
        memcpy(saved, out->err, sizeof saved);
        snprintf(req, sizeof req, "{\"key\":\"%s\"}", key64);
        res = NULL;
        if (raw_etcd_post_str(&e, "/v3/kv/deleterange", req, &res) == 0) cJSON_Delete(res);
        memcpy(out->err, saved, sizeof saved);
    }
    for (etcd_http *h = &e; h; h = h == &e ? &w : NULL) {
        if (h->h) curl_easy_cleanup(h->h);
        curl_slist_free_all(h->hdrs);
        free(h->resp.data);
    }
    free(st.buf.data);
    free(key);
    free(key64);
    free(dir64);
    free(end64);
    return NULL;
}

/* `threads` raw contenders on one lock for `ms`; false (out->err set) when it failed. */
static bool raw_etcd_contended(const bench_opts *o, int threads, int64_t ms, raw_result *out) {
    out->method = "etcd's Mutex with bare libcurl: POST /v3/kv/txn (create_revision(key)==0 ? put "
                  "key + 2 newest of the prefix by create revision); while a predecessor: POST "
                  "/v3/watch on it (a stream per wait) + a range checking it is still there once "
                  "the stream is up, then on its deletion a range for the newest older contender; "
                  "POST /v3/kv/deleterange to release";
    coord_uri *u = raw_uri(o, out);
    if (!u) return false;
    char *dir = NULL, *dir_end = NULL;
    if (asprintf(&dir, "%s/bench-raw-%ld-contended/", u->prefix, (long)getpid()) < 0) dir = NULL;
    raw_contender *cs = calloc((size_t)threads, sizeof *cs);
    raw_gate gate = {.expected = threads};
    pthread_mutex_init(&gate.mu, NULL);
    pthread_cond_init(&gate.cv, NULL);
    if (!dir || !cs || !(dir_end = strdup(dir))) {
        snprintf(out->err, sizeof out->err, "out of memory");
    } else {
        dir_end[strlen(dir_end) - 1]++;
        for (int i = 0; i < threads; i++)
            cs[i] = (raw_contender){.u = u, .dir = dir, .dir_end = dir_end, .ms = ms, .idx = i};
        raw_threads_run(cs, sizeof *cs, threads, raw_contender_main, &gate, out);
    }
    pthread_mutex_destroy(&gate.mu);
    pthread_cond_destroy(&gate.cv);
    free(cs);
    free(dir);
    free(dir_end);
    coord_uri_free(u);
    return out->ran;
}
#endif

#ifdef COORD_WITH_ZOOKEEPER
/*
 * The raw bound of the contended scenario on ZooKeeper: threads sharing one bare client (as the
 * scenario's threads share one coord_client), each running Curator's lock algorithm with the
 * recipe's steps: create an ephemeral sequential node, list the children, and while a node with
 * a lower sequence exists, an exists watch on the one just before it, listing again once it
 * fires; delete to release.
 */
typedef struct raw_zk_turn {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool fired;
} raw_zk_turn;

static void raw_zk_fired(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh;
    (void)state;
    (void)path;
    raw_zk_turn *t = ctx;
    if (type == ZOO_SESSION_EVENT) return; /* the session's own, not the node's */
    pthread_mutex_lock(&t->mu);
    t->fired = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct raw_zk_contender {
    raw_thread t;
    zhandle_t *zh;
    const struct ACL_vector *acl;
    const char *dir;
    int64_t ms;
} raw_zk_contender;

static void *raw_zk_contender_main(void *arg) {
    raw_zk_contender *c = arg;
    raw_result *out = &c->t.res;
    raw_zk_turn t = {.fired = false};
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    char base[1100], mine[1200] = "", pred[1200];
    snprintf(base, sizeof base, "%s/lock-", c->dir);
    gate_pass(c->t.gate, false);
    int64_t deadline = (c->t.start_ns = now_ns()) + c->ms * 1000000;
    while (now_ns() < deadline) {
        int64_t t0 = now_ns();
        int rc = zoo_create(c->zh, base, "", 0, c->acl, ZOO_EPHEMERAL | ZOO_SEQUENCE, mine,
                            (int)sizeof mine);
        if (rc != ZOK) {
            snprintf(out->err, sizeof out->err, "zoo_create %.300s: %s", base, zerror(rc));
            mine[0] = 0;
            goto done;
        }
        const char *me = strrchr(mine, '/') + 1;
        for (;;) {
            struct String_vector kids = {0};
            rc = zoo_get_children(c->zh, c->dir, 0, &kids);
            if (rc != ZOK) {
                snprintf(out->err, sizeof out->err, "zoo_get_children: %s", zerror(rc));
                goto done;
            }
            /* Same prefix and 10-digit sequences: name order is sequence order. */
            qsort(kids.data, (size_t)kids.count, sizeof *kids.data, cmp_str);
            int at = -1;
            for (int i = 0; i < kids.count && at < 0; i++)
                if (!strcmp(kids.data[i], me)) at = i;
            if (at > 0) snprintf(pred, sizeof pred, "%s/%s", c->dir, kids.data[at - 1]);
            deallocate_String_vector(&kids);
            if (at < 0) {
                snprintf(out->err, sizeof out->err, "%.300s vanished", mine);
                goto done;
            }
            if (at == 0) break; /* first: the lock is ours */
            t.fired = false;
            struct Stat st;
            rc = zoo_wexists(c->zh, pred, raw_zk_fired, &t, &st);
            if (rc == ZNONODE) continue;
            if (rc != ZOK) {
                snprintf(out->err, sizeof out->err, "zoo_wexists: %s", zerror(rc));
                goto done;
            }
            pthread_mutex_lock(&t.mu);
            while (!t.fired)
                pthread_cond_wait(&t.cv, &t.mu);
            pthread_mutex_unlock(&t.mu);
        }
        if (samples_add(&out->r.lat, now_ns() - t0)) {
            snprintf(out->err, sizeof out->err, "out of memory");
            goto done;
        }
        out->r.cycles++;
        rc = zoo_delete(c->zh, mine, -1);
        mine[0] = 0;
        if (rc != ZOK) {
            snprintf(out->err, sizeof out->err, "zoo_delete: %s", zerror(rc));
            goto done;
        }
    }
    c->t.end_ns = now_ns();
done:
    if (mine[0]) zoo_delete(c->zh, mine, -1);
    pthread_mutex_destroy(&t.mu);
    pthread_cond_destroy(&t.cv);
    return NULL;
}

static bool raw_zk_contended(const bench_opts *o, int threads, int64_t ms, raw_result *out) {
    out->method = "Curator's lock with the bare client shared by the threads: zoo_create "
                  "EPHEMERAL|SEQUENCE + zoo_get_children; while a lower sequence exists: "
                  "zoo_wexists on the one just before it, zoo_get_children again once it fires; "
                  "zoo_delete to release (sync API)";
    coord_uri *u = raw_uri(o, out);
    if (!u) return false;
    zk_wait zw = {.state = 0};
    pthread_mutex_init(&zw.mu, NULL);
    pthread_cond_init(&zw.cv, NULL);
    const struct ACL_vector *acl = NULL;
    char dir[1024] = "";
    raw_zk_contender *cs = calloc((size_t)threads, sizeof *cs);
    raw_gate gate = {.expected = threads};
    pthread_mutex_init(&gate.mu, NULL);
    pthread_cond_init(&gate.cv, NULL);
    zhandle_t *zh = cs ? raw_zk_open(u, &zw, &acl, out) : NULL;
    if (!cs) snprintf(out->err, sizeof out->err, "out of memory");
    if (zh) {
        snprintf(dir, sizeof dir, "%s/bench-raw-%ld-contended", u->prefix, (long)getpid());
        int rc = raw_zk_mkdirs(zh, dir, acl);
        if (rc != ZOK) {
            snprintf(out->err, sizeof out->err, "zookeeper create %.300s: %s", dir, zerror(rc));
            dir[0] = 0;
        }
    }
    if (dir[0]) {
        for (int i = 0; i < threads; i++)
            cs[i] = (raw_zk_contender){.zh = zh, .acl = acl, .dir = dir, .ms = ms};
        raw_threads_run(cs, sizeof *cs, threads, raw_zk_contender_main, &gate, out);
    }
    if (zh && dir[0]) zoo_delete(zh, dir, -1);
    if (zh) zookeeper_close(zh);
    pthread_mutex_destroy(&gate.mu);
    pthread_cond_destroy(&gate.cv);
    pthread_mutex_destroy(&zw.mu);
    pthread_cond_destroy(&zw.cv);
    free(cs);
    coord_uri_free(u);
    return out->ran;
}
#endif

/* What the raw bound does: a lock cycle or a counter add. */
typedef enum raw_kind { RAW_LOCK, RAW_COUNTER } raw_kind;

/* One slice of `ms` of the raw bound for the URI's backend, added to out->r; false (out->err
 * set) when it could not be measured. */
static bool raw_slice(const bench_opts *o, const char *backend, raw_kind kind, int64_t ms,
                      raw_result *out) {
    coord_uri *u = raw_uri(o, out);
    if (!u) return false;
    bool tried = false;
#ifdef COORD_WITH_ZOOKEEPER
    if (!strcmp(backend, "zookeeper")) {
        if (kind == RAW_COUNTER)
            raw_zk_counter(u, ms, 0, NULL, out);
        else
            raw_zk(u, ms, out);
        tried = true;
    }
#endif
#ifdef COORD_WITH_ETCD
    if (!strcmp(backend, "etcd")) {
        if (kind == RAW_COUNTER)
            raw_etcd_counter(u, ms, 0, NULL, out);
        else
            raw_etcd(u, ms, o->raw_lease, out);
        tried = true;
    }
#endif
    (void)ms;
    (void)kind;
    if (!tried) snprintf(out->err, sizeof out->err, "no raw client for %s in this build", backend);
    coord_uri_free(u);
    return !out->err[0];
}

/*
 * The server's own ceiling for the sharded scenario: `threads` bare writers, each doing the raw
 * counter bound's conditional write on a key of its own, timed together for `ms`. No sharding
 * scheme can add faster than this, so it bounds the sharded / contended ratio on this machine.
 */
typedef struct raw_writer {
    raw_thread t;
    const coord_uri *u;
    const char *backend;
    int64_t ms;
    int idx;
} raw_writer;

static void *raw_writer_main(void *arg) {
    raw_writer *w = arg;
    bool tried = false;
#ifdef COORD_WITH_ZOOKEEPER
    if (!strcmp(w->backend, "zookeeper")) {
        raw_zk_counter(w->u, w->ms, w->idx, w->t.gate, &w->t.res);
        tried = true;
    }
#endif
#ifdef COORD_WITH_ETCD
    if (!strcmp(w->backend, "etcd")) {
        raw_etcd_counter(w->u, w->ms, w->idx, w->t.gate, &w->t.res);
        tried = true;
    }
#endif
    if (!tried) {
        gate_pass(w->t.gate, true);
        snprintf(w->t.res.err, sizeof w->t.res.err, "no raw client for %s in this build",
                 w->backend);
    }
    return NULL;
}

static bool raw_parallel_counter(const bench_opts *o, const char *backend, int threads, int64_t ms,
                                 raw_result *out) {
    coord_uri *u = raw_uri(o, out);
    if (!u) return false;
    raw_writer *ws = calloc((size_t)threads, sizeof *ws);
    raw_gate gate = {.expected = threads};
    pthread_mutex_init(&gate.mu, NULL);
    pthread_cond_init(&gate.cv, NULL);
    if (ws) {
        for (int i = 0; i < threads; i++)
            ws[i] = (raw_writer){.u = u, .backend = backend, .ms = ms, .idx = i + 1};
        raw_threads_run(ws, sizeof *ws, threads, raw_writer_main, &gate, out);
    } else {
        snprintf(out->err, sizeof out->err, "out of memory");
    }
    pthread_mutex_destroy(&gate.mu);
    pthread_cond_destroy(&gate.cv);
    free(ws);
    coord_uri_free(u);
    return out->ran;
}

/* ---------- lock mode: report ---------- */

static double ratio(double a, double b) {
    return b > 0 ? a / b : 0;
}

/* The URI as printed: credentials ("user:password@") replaced by "***@". */
static const char *shown_uri(const char *uri, char *buf, size_t cap) {
    const char *auth = strstr(uri, "://");
    if (!auth) return uri;
    auth += 3;
    const char *at = NULL;
    for (const char *p = auth; *p && *p != '/' && *p != '?'; p++)
        if (*p == '@') at = p;
    if (!at) return uri;
    snprintf(buf, cap, "%.*s***%s", (int)(auth - uri), uri, at);
    return buf;
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void json_result(const result *r) {
    printf("{\"name\":");
    json_str(r->name);
    printf(",\"threads\":%d,\"locks\":%d,\"cycles\":%" PRIu64 ",\"elapsed_s\":%.3f,"
           "\"cycles_per_s\":%.1f,\"acquire_p50_ms\":%.3f,\"acquire_p99_ms\":%.3f",
           r->threads, r->locks, r->cycles, r->elapsed_s, r->rate, r->p50_ms, r->p99_ms);
    if (strcmp(r->name, "raw"))
        printf(",\"handoffs\":%" PRIu64 ",\"handoff_p50_ms\":%.3f,\"handoff_p99_ms\":%.3f"
               ",\"wakeups\":%" PRIu64,
               r->handoffs, r->handoff_p50_ms, r->handoff_p99_ms, r->wakeups);
    printf(",\"slices\":%d", r->slices);
    putchar('}');
}

static void print_row(const result *r) {
    printf("%-12s %7d %5d %8" PRIu64 " %10.1f %10.3f %10.3f\n", r->name, r->threads, r->locks,
           r->cycles, r->rate, r->p50_ms, r->p99_ms);
}

static int mode_lock(const bench_opts *o) {
    coord_client *c = NULL;
    int rc = coord_client_open(&c, o->uri, NULL);
    if (rc) {
        fprintf(stderr, "coord-bench: connect: %s: %s\n", coord_strerror(rc), coord_last_error());
        return 1;
    }
    const char *backend = coord_client_backend(c);
    const char *client_kind = o->client_per_thread
                                  ? "per-thread (one coord_client and one coord_lock per thread)"
                                  : "shared (one coord_client, one coord_lock handle per thread)";
    result rs[4] = {
        {.name = "uncontended", .threads = 1, .locks = 1},
        {.name = "contended", .threads = DEFAULT_THREADS, .locks = 1},
        {.name = "parallel", .threads = DEFAULT_THREADS, .locks = DEFAULT_THREADS},
        {.name = "custom",
         .threads = o->threads ? o->threads : DEFAULT_THREADS,
         .locks = o->locks ? o->locks : 1},
    };
    int nrs = (o->threads || o->locks) ? 4 : 3;
    if (!o->json)
        printf("coord-bench lock: backend %s, prefix %s, %d s per scenario, client %s\n", backend,
               coord_client_prefix(c), o->seconds, client_kind);

    /* Uncontended and raw run interleaved (raw unc | unc raw | raw unc), so that a change of
     * background load on the machine weighs on both alike; S seconds in all for each. */
    raw_result raw;
    memset(&raw, 0, sizeof raw);
    raw.r.name = "raw";
    raw.r.threads = 1;
    raw.r.locks = 1;
    bool raw_ok = true;
    int failed = 0;
    int64_t total_ms = (int64_t)o->seconds * 1000;
    for (int k = 0; k < 2 * RAW_SLICES; k++) {
        int slice = k / 2;
        int64_t ms = total_ms / RAW_SLICES + (slice == RAW_SLICES - 1 ? total_ms % RAW_SLICES : 0);
        bool raw_turn = (k % 2 == 0) == (slice % 2 == 0);
        if (raw_turn) {
            if (raw_ok) raw_ok = raw_slice(o, backend, RAW_LOCK, ms, &raw);
        } else if (lock_scenario(o, c, &rs[0], ms)) {
            failed = 1;
        }
    }
    raw.ran = raw_ok && raw.r.slices > 0;
    /* The contended scenario's own raw bound, right after it. */
    raw_result rawc;
    memset(&rawc, 0, sizeof rawc);
    rawc.r.name = "raw-contend";
    rawc.r.threads = DEFAULT_THREADS;
    rawc.r.locks = 1;
    for (int i = 1; i < nrs; i++) {
        if (lock_scenario(o, c, &rs[i], total_ms)) failed = 1;
#ifdef COORD_WITH_ETCD
        if (i == 1 && !strcmp(backend, "etcd"))
            raw_etcd_contended(o, DEFAULT_THREADS, total_ms, &rawc);
#endif
#ifdef COORD_WITH_ZOOKEEPER
        if (i == 1 && !strcmp(backend, "zookeeper"))
            raw_zk_contended(o, DEFAULT_THREADS, total_ms, &rawc);
#endif
    }
    coord_client_close(c);
    for (int i = 0; i < nrs; i++)
        result_finish(&rs[i]);
    result_finish(&raw.r);
    result_finish(&rawc.r);

    const result *unc = &rs[0], *con = &rs[1];
    double u_over_raw = raw.ran ? ratio(unc->rate, raw.r.rate) : 0;
    double c_over_u = ratio(con->rate, unc->rate);
    double c_over_rc = rawc.ran ? ratio(con->rate, rawc.r.rate) : 0;
    double rc_over_raw = rawc.ran && raw.ran ? ratio(rawc.r.rate, raw.r.rate) : 0;
    double per_handoff = con->handoffs ? (double)con->wakeups / (double)con->handoffs : 0;

    if (o->json) {
        printf("{\"mode\":\"lock\",\"backend\":");
        json_str(backend);
        printf(",\"seconds\":%d,\"client\":\"%s\",\"scenarios\":[", o->seconds,
               o->client_per_thread ? "per-thread" : "shared");
        for (int i = 0; i < nrs; i++) {
            if (i) putchar(',');
            json_result(&rs[i]);
        }
        printf("],\"raw\":");
        if (raw.ran) {
            json_result(&raw.r);
            printf(",\"raw_method\":");
            json_str(raw.method);
            printf(",\"uncontended_over_raw\":%.3f", u_over_raw);
        } else {
            printf("null,\"raw_error\":");
            json_str(raw.err);
            printf(",\"uncontended_over_raw\":null");
        }
        printf(",\"raw_contended\":");
        if (rawc.ran) {
            json_result(&rawc.r);
            printf(",\"raw_contended_method\":");
            json_str(rawc.method);
            printf(",\"contended_over_raw_contended\":%.3f,\"raw_contended_over_raw\":%.3f",
                   c_over_rc, rc_over_raw);
        } else {
            printf("null,\"raw_contended_error\":");
            json_str(rawc.err[0] ? rawc.err : "no raw client for this backend in this build");
        }
        printf(",\"contended_over_uncontended\":%.3f,\"wakeups_before\":%" PRIu64
               ",\"wakeups_after\":%" PRIu64 ",\"handoffs\":%" PRIu64
               ",\"wakeups_per_handoff\":%.3f,\"targets\":{\"uncontended_over_raw\":%.1f,"
               "\"contended_over_uncontended\":%.1f,\"wakeups_per_handoff\":1.0},\"ok\":%s}\n",
               c_over_u, con->wakeups_before, con->wakeups_after, con->handoffs, per_handoff,
               TARGET_UNCONTENDED_OVER_RAW, TARGET_CONTENDED_OVER_UNCONTENDED,
               failed ? "false" : "true");
        goto out;
    }
    printf("%-12s %7s %5s %8s %10s %10s %10s\n", "scenario", "threads", "locks", "cycles",
           "cycles/s", "acq p50 ms", "acq p99 ms");
    for (int i = 0; i < nrs; i++)
        print_row(&rs[i]);
    if (raw.ran) {
        print_row(&raw.r);
        printf("raw = bare %s client, 1 thread: %s\n", backend, raw.method);
        printf("(uncontended and raw measured interleaved in %d slices each)\n", RAW_SLICES);
        printf("uncontended / raw       = %.2f   (target >= %.1f)\n", u_over_raw,
               TARGET_UNCONTENDED_OVER_RAW);
    } else {
        printf("raw bound not measured: %s\n", raw.err);
    }
    printf("contended / uncontended = %.2f   (handoff rate; target >= %.1f)\n", c_over_u,
           TARGET_CONTENDED_OVER_UNCONTENDED);
    if (rawc.ran) {
        print_row(&rawc.r);
        printf("raw-contend = %d bare threads on one lock: %s\n", DEFAULT_THREADS, rawc.method);
        printf("contended / raw-contend = %.2f   (the recipe against the same algorithm on bare "
               "calls)\n",
               c_over_rc);
        printf("raw-contend / raw       = %.2f   (the best handoff rate the algorithm reaches "
               "here, against the uncontended raw bound)\n",
               rc_over_raw);
    } else if (rawc.err[0]) {
        printf("raw contended bound not measured: %s\n", rawc.err);
    }
    for (int i = 0; i < nrs; i++)
        if (rs[i].handoffs)
            printf("%s handoff latency (release start -> next holder's acquire returns): "
                   "p50 %.3f ms, p99 %.3f ms over %" PRIu64 " handoffs\n",
                   rs[i].name, rs[i].handoff_p50_ms, rs[i].handoff_p99_ms, rs[i].handoffs);
    printf("contended wake-ups: coord__lock_wakeups() %" PRIu64 " before, %" PRIu64
           " after = %" PRIu64 " for %" PRIu64 " handoffs = %.2f per handoff "
           "(target ~1.0: a release wakes one waiter)\n",
           con->wakeups_before, con->wakeups_after, con->wakeups, con->handoffs, per_handoff);
out:
    for (int i = 0; i < 4; i++)
        result_free(&rs[i]);
    result_free(&raw.r);
    result_free(&rawc.r);
    return failed;
}

/* ---------- counter mode ---------- */

typedef struct counter_run {
    coord_client *c;     /* shared by every thread, unless `own_uri` */
    const char *own_uri; /* --client-per-thread: each thread opens its own client (session) */
    const char *name;
    unsigned shards;
    pthread_barrier_t ready, go;
    int64_t start_ns, deadline_ns; /* written by the main thread between the barriers */
    atomic_bool abort;
} counter_run;

typedef struct counter_worker {
    counter_run *run;
    int idx;
    pthread_t th;
    samples lat;
    uint64_t adds;   /* successful timed adds */
    uint64_t warm;   /* successful warm-up adds */
    uint64_t failed; /* failed adds: applied or not, unknown */
    int64_t end_ns;
    int err;
    char errmsg[600];
} counter_worker;

/* A counter scenario over its slices, and the check that no add was lost or doubled. */
typedef struct counter_result {
    result r; /* r.cycles: successful timed adds; r.locks unused */
    unsigned shards;
    char counter[96]; /* the counter's name, fresh for each run (pid) */
    uint64_t ok;      /* successful adds, warm-up ones included */
    uint64_t failed;
    int64_t before, after;
    bool have_before, have_after;
    int verdict; /* VERDICT_* */
} counter_result;

#define VERDICT_UNCHECKED -1 /* a value could not be read */
#define VERDICT_MISMATCH 0
#define VERDICT_EXACT 1
#define VERDICT_BOUNDS 2 /* adds of unknown outcome, and the value within what they allow */

static void counter_fail(counter_worker *w, int rc, const char *what) {
    w->err = rc;
    snprintf(w->errmsg, sizeof w->errmsg, "thread %d: %s: %s: %s", w->idx, what, coord_strerror(rc),
             coord_last_error());
    atomic_store(&w->run->abort, true);
}

static void *counter_worker_main(void *arg) {
    counter_worker *w = arg;
    counter_run *run = w->run;
    coord_counter_options co = COORD_COUNTER_OPTIONS_INIT;
    co.shards = run->shards;
    coord_counter *k = NULL;
    coord_client *own = NULL;
    int rc = run->own_uri ? coord_client_open(&own, run->own_uri, NULL) : 0;
    if (rc) counter_fail(w, rc, "coord_client_open");
    if (!rc && (rc = coord_counter_new(&k, own ? own : run->c, run->name, &co)))
        counter_fail(w, rc, "coord_counter_new");
    /* Warm-up add: the key (and its parents) made, the handle's version cache filled. */
    if (!rc) {
        rc = coord_counter_add(k, 1, NULL);
        if (rc) {
            w->failed++;
            counter_fail(w, rc, "add (warm-up)");
        } else {
            w->warm++;
        }
    }
    pthread_barrier_wait(&run->ready);
    pthread_barrier_wait(&run->go);
    while (!rc && !atomic_load(&run->abort) && now_ns() < run->deadline_ns) {
        int64_t t0 = now_ns();
        rc = coord_counter_add(k, 1, NULL);
        int64_t t1 = now_ns();
        if (rc) {
            w->failed++;
            counter_fail(w, rc, "add");
            break;
        }
        w->adds++;
        if (samples_add(&w->lat, t1 - t0)) {
            counter_fail(w, COORD_ENOMEM, "latency samples");
            break;
        }
    }
    w->end_ns = now_ns();
    coord_counter_free(k);
    coord_client_close(own);
    return NULL;
}

/* Run one slice of `ms` milliseconds of a counter scenario, adding to `cr`; 0, or -1 after
 * printing why. */
static int counter_scenario(coord_client *c, const char *own_uri, counter_result *cr, int64_t ms) {
    result *r = &cr->r;
    int T = r->threads;
    counter_run run;
    memset(&run, 0, sizeof run);
    run.c = c;
    run.own_uri = own_uri;
    run.name = cr->counter;
    run.shards = cr->shards;
    atomic_init(&run.abort, false);
    counter_worker *ws = calloc((size_t)T, sizeof *ws);
    if (!ws) {
        fprintf(stderr, "coord-bench: out of memory\n");
        return -1;
    }
    pthread_barrier_init(&run.ready, NULL, (unsigned)T + 1);
    pthread_barrier_init(&run.go, NULL, (unsigned)T + 1);
    for (int i = 0; i < T; i++) {
        ws[i].run = &run;
        ws[i].idx = i;
        int prc = pthread_create(&ws[i].th, NULL, counter_worker_main, &ws[i]);
        if (prc) {
            /* The others already wait at barriers sized for T threads: nothing to recover. */
            fprintf(stderr, "coord-bench: %s: cannot start thread %d: %s\n", r->name, i,
                    strerror(prc));
            exit(1);
        }
    }
    pthread_barrier_wait(&run.ready);
    run.start_ns = now_ns();
    run.deadline_ns = run.start_ns + ms * 1000000;
    pthread_barrier_wait(&run.go);
    int64_t end = run.start_ns;
    bool failed = false;
    for (int i = 0; i < T; i++) {
        pthread_join(ws[i].th, NULL);
        if (ws[i].err) {
            fprintf(stderr, "coord-bench: %s: %s\n", r->name, ws[i].errmsg);
            failed = true;
        }
        if (samples_append(&r->lat, &ws[i].lat)) failed = true;
        r->cycles += ws[i].adds;
        cr->ok += ws[i].adds + ws[i].warm;
        cr->failed += ws[i].failed;
        if (ws[i].end_ns > end) end = ws[i].end_ns;
        free(ws[i].lat.v);
    }
    r->elapsed_ns += end - run.start_ns;
    r->slices++;
    pthread_barrier_destroy(&run.ready);
    pthread_barrier_destroy(&run.go);
    free(ws);
    return failed ? -1 : 0;
}

/* Read the scenario's counter (the sum of its shards). 0, or -1 after printing why. */
static int counter_read(coord_client *c, const counter_result *cr, int64_t *out) {
    coord_counter_options co = COORD_COUNTER_OPTIONS_INIT;
    co.shards = cr->shards;
    coord_counter *k = NULL;
    int rc = coord_counter_new(&k, c, cr->counter, &co);
    if (!rc) rc = coord_counter_get(k, out);
    if (rc)
        fprintf(stderr, "coord-bench: %s: read counter %s: %s: %s\n", cr->r.name, cr->counter,
                coord_strerror(rc), coord_last_error());
    coord_counter_free(k);
    return rc ? -1 : 0;
}

static void counter_verdict(counter_result *cr) {
    int64_t delta;
    if (!cr->have_before || !cr->have_after) {
        cr->verdict = VERDICT_UNCHECKED;
    } else if (__builtin_sub_overflow(cr->after, cr->before, &delta) || delta < 0) {
        cr->verdict = VERDICT_MISMATCH;
    } else if ((uint64_t)delta == cr->ok && !cr->failed) {
        cr->verdict = VERDICT_EXACT;
    } else if ((uint64_t)delta >= cr->ok && (uint64_t)delta <= cr->ok + cr->failed) {
        cr->verdict = VERDICT_BOUNDS;
    } else {
        cr->verdict = VERDICT_MISMATCH;
    }
}

static const char *verdict_text(int v) {
    switch (v) {
    case VERDICT_EXACT:
        return "exact";
    case VERDICT_MISMATCH:
        return "MISMATCH";
    case VERDICT_BOUNDS:
        return "NOT VERIFIED (failed adds of unknown outcome; value within their bounds)";
    default:
        return "NOT VERIFIED (value not read)";
    }
}

static void json_counter_result(const counter_result *cr, bool raw) {
    const result *r = &cr->r;
    printf("{\"name\":");
    json_str(r->name);
    printf(",\"threads\":%d,\"shards\":%u,\"adds\":%" PRIu64 ",\"elapsed_s\":%.3f,"
           "\"adds_per_s\":%.1f,\"add_p50_ms\":%.3f,\"add_p99_ms\":%.3f,\"slices\":%d",
           r->threads, cr->shards, r->cycles, r->elapsed_s, r->rate, r->p50_ms, r->p99_ms,
           r->slices);
    if (!raw) {
        printf(",\"counter\":");
        json_str(cr->counter);
        printf(",\"successful_adds\":%" PRIu64 ",\"failed_adds\":%" PRIu64, cr->ok, cr->failed);
        if (cr->have_before)
            printf(",\"value_before\":%" PRId64, cr->before);
        else
            printf(",\"value_before\":null");
        if (cr->have_after)
            printf(",\"value_after\":%" PRId64, cr->after);
        else
            printf(",\"value_after\":null");
        printf(",\"exact\":%s", cr->verdict == VERDICT_EXACT      ? "true"
                                : cr->verdict == VERDICT_MISMATCH ? "false"
                                                                  : "null");
    }
    putchar('}');
}

static void print_counter_row(const counter_result *cr) {
    const result *r = &cr->r;
    printf("%-12s %7d %6u %9" PRIu64 " %10.1f %10.3f %10.3f\n", r->name, r->threads, cr->shards,
           r->cycles, r->rate, r->p50_ms, r->p99_ms);
}

static int mode_counter(const bench_opts *o) {
    coord_client *c = NULL;
    int rc = coord_client_open(&c, o->uri, NULL);
    if (rc) {
        fprintf(stderr, "coord-bench: connect: %s: %s\n", coord_strerror(rc), coord_last_error());
        return 1;
    }
    const char *backend = coord_client_backend(c);
    const char *own_uri = o->client_per_thread ? o->uri : NULL;
    counter_result cs[3] = {
        {.r = {.name = "uncontended", .threads = 1}, .shards = 1},
        {.r = {.name = "contended", .threads = DEFAULT_THREADS}, .shards = 1},
        {.r = {.name = "sharded", .threads = DEFAULT_THREADS}, .shards = COUNTER_SHARDS},
    };
    int failed = 0;
    for (int i = 0; i < 3; i++) {
        snprintf(cs[i].counter, sizeof cs[i].counter, "bench-%ld-%s", (long)getpid(), cs[i].r.name);
        cs[i].have_before = counter_read(c, &cs[i], &cs[i].before) == 0;
        if (!cs[i].have_before) failed = 1;
    }
    if (!o->json)
        printf("coord-bench counter: backend %s, prefix %s, %d s per scenario, %s\n", backend,
               coord_client_prefix(c), o->seconds,
               own_uri ? "a client per thread (a session per writer, as separate processes)"
                       : "client shared (one coord_client, one coord_counter handle per thread)");

    /* Uncontended and raw run interleaved (raw unc | unc raw | raw unc), as in the lock mode. */
    counter_result raw = {.r = {.name = "raw", .threads = 1}, .shards = 1};
    raw_result rawr;
    memset(&rawr, 0, sizeof rawr);
    bool raw_ok = true;
    int64_t total_ms = (int64_t)o->seconds * 1000;
    for (int k = 0; k < 2 * RAW_SLICES; k++) {
        int slice = k / 2;
        int64_t ms = total_ms / RAW_SLICES + (slice == RAW_SLICES - 1 ? total_ms % RAW_SLICES : 0);
        bool raw_turn = (k % 2 == 0) == (slice % 2 == 0);
        if (raw_turn) {
            if (raw_ok) raw_ok = raw_slice(o, backend, RAW_COUNTER, ms, &rawr);
        } else if (counter_scenario(c, own_uri, &cs[0], ms)) {
            failed = 1;
        }
    }
    rawr.ran = raw_ok && rawr.r.slices > 0;
    raw.r.cycles = rawr.r.cycles;
    raw.r.elapsed_ns = rawr.r.elapsed_ns;
    raw.r.slices = rawr.r.slices;
    raw.r.lat = rawr.r.lat;
    for (int i = 1; i < 3; i++)
        if (counter_scenario(c, own_uri, &cs[i], total_ms)) failed = 1;
    /* The server's ceiling for the sharded scenario, right after it. */
    counter_result rawp = {.r = {.name = "raw-keys", .threads = DEFAULT_THREADS},
                           .shards = COUNTER_SHARDS};
    raw_result rawpr;
    memset(&rawpr, 0, sizeof rawpr);
    raw_parallel_counter(o, backend, DEFAULT_THREADS, total_ms, &rawpr);
    rawp.r.cycles = rawpr.r.cycles;
    rawp.r.elapsed_ns = rawpr.r.elapsed_ns;
    rawp.r.slices = rawpr.r.slices;
    rawp.r.lat = rawpr.r.lat;
    result_finish(&rawp.r);
    for (int i = 0; i < 3; i++) {
        cs[i].have_after = counter_read(c, &cs[i], &cs[i].after) == 0;
        counter_verdict(&cs[i]);
        if (cs[i].verdict != VERDICT_EXACT) failed = 1;
        result_finish(&cs[i].r);
    }
    coord_client_close(c);
    result_finish(&raw.r);

    double u_over_raw = rawr.ran ? ratio(cs[0].r.rate, raw.r.rate) : 0;
    double s_over_c = ratio(cs[2].r.rate, cs[1].r.rate);
    double s_over_p = rawpr.ran ? ratio(cs[2].r.rate, rawp.r.rate) : 0;
    double p_over_c = rawpr.ran ? ratio(rawp.r.rate, cs[1].r.rate) : 0;
    if (o->json) {
        printf("{\"mode\":\"counter\",\"backend\":");
        json_str(backend);
        printf(",\"seconds\":%d,\"client\":\"%s\",\"scenarios\":[", o->seconds,
               own_uri ? "per-thread" : "shared");
        for (int i = 0; i < 3; i++) {
            if (i) putchar(',');
            json_counter_result(&cs[i], false);
        }
        printf("],\"raw\":");
        if (rawr.ran) {
            json_counter_result(&raw, true);
            printf(",\"raw_method\":");
            json_str(rawr.method);
            printf(",\"uncontended_over_raw\":%.3f", u_over_raw);
        } else {
            printf("null,\"raw_error\":");
            json_str(rawr.err);
            printf(",\"uncontended_over_raw\":null");
        }
        printf(",\"raw_parallel\":");
        if (rawpr.ran) {
            json_counter_result(&rawp, true);
            printf(",\"sharded_over_raw_parallel\":%.3f,\"raw_parallel_over_contended\":%.3f",
                   s_over_p, p_over_c);
        } else {
            printf("null,\"raw_parallel_error\":");
            json_str(rawpr.err);
        }
        printf(",\"sharded_over_contended\":%.3f,\"targets\":{\"uncontended_over_raw\":%.1f,"
               "\"sharded_over_contended\":%.1f},\"ok\":%s}\n",
               s_over_c, TARGET_UNCONTENDED_OVER_RAW, TARGET_SHARDED_OVER_CONTENDED,
               failed ? "false" : "true");
        goto out;
    }
    printf("%-12s %7s %6s %9s %10s %10s %10s\n", "scenario", "threads", "shards", "adds", "adds/s",
           "add p50 ms", "add p99 ms");
    for (int i = 0; i < 3; i++)
        print_counter_row(&cs[i]);
    if (rawr.ran) {
        print_counter_row(&raw);
        printf("raw = bare %s client, 1 thread: %s\n", backend, rawr.method);
        printf("(uncontended and raw measured interleaved in %d slices each)\n", RAW_SLICES);
        printf("uncontended / raw   = %.2f   (target >= %.1f)\n", u_over_raw,
               TARGET_UNCONTENDED_OVER_RAW);
    } else {
        printf("raw bound not measured: %s\n", rawr.err);
    }
    printf("sharded / contended = %.2f   (%d threads on %d shards vs on 1 key; target >= %.1f)\n",
           s_over_c, DEFAULT_THREADS, COUNTER_SHARDS, TARGET_SHARDED_OVER_CONTENDED);
    if (rawpr.ran) {
        print_counter_row(&rawp);
        printf("raw-keys = %d bare writers at once, a key each, the raw bound's write: the "
               "server's ceiling for the sharded scenario\n",
               DEFAULT_THREADS);
        printf("sharded / raw-keys  = %.2f   (the share of that ceiling the sharded counter "
               "reaches)\n",
               s_over_p);
        printf("raw-keys / contended = %.2f  (the most any sharding could gain over the contended "
               "counter on this machine)\n",
               p_over_c);
    } else {
        printf("raw-keys ceiling not measured: %s\n", rawpr.err);
    }
    for (int i = 0; i < 3; i++) {
        const counter_result *cr = &cs[i];
        printf("%s: counter %s", cr->r.name, cr->counter);
        if (cr->have_before && cr->have_after)
            printf(" went from %" PRId64 " to %" PRId64, cr->before, cr->after);
        printf(", successful adds %" PRIu64 " (%" PRIu64 " timed + %" PRIu64 " warm-up)", cr->ok,
               cr->r.cycles, cr->ok - cr->r.cycles);
        if (cr->failed) printf(", failed adds %" PRIu64 " (outcome unknown)", cr->failed);
        printf(": %s\n", verdict_text(cr->verdict));
    }
out:
    for (int i = 0; i < 3; i++)
        result_free(&cs[i].r);
    result_free(&raw.r);
    result_free(&rawp.r);
    return failed;
}

/* ---------- ring mode: the hash ring itself (no server) ---------- */

#define RING_TARGET_LOOKUP_100_NS 50.0
#define RING_TARGET_LOOKUP_10K_NS 100.0
#define RING_TARGET_BUILD_10K_MS 50.0
#define RING_TARGET_MOVED_RATIO 1.1
#define RING_TARGET_MAX_OVER_MEAN 1.10
#define RING_SIZES 4
#define RING_KEYS 65536  /* distinct keys cycled through by the lookup loops */
#define RING_RUNS 7      /* lookup loops and builds are timed this many times; the median counts */
#define RING_CHURN_N 100 /* join and leave measured on a ring of this many members */
#define RING_CHASE_STEPS 5000000 /* the raw bound: dependent accesses per run */
#define RING_CHASE_RUNS 5        /* the raw bound: runs; the median counts */

static const size_t ring_sizes[RING_SIZES] = {10, 100, 1000, 10000};

typedef struct ring_placement {
    const char *name;
    int placement;
    double lookup_ns[RING_SIZES];
    size_t bytes[RING_SIZES];
    double build_ms; /* at 10,000 members */
    /* The raw bound (default placement only), measured right after the lookups at 10,000
     * members: ns of one random dependent memory access over raw_bytes, the ring's size. */
    double raw_ns;
    size_t raw_bytes;
    /* One join (100 -> 101 members) and one leave (101 -> 100), over churn_keys keys. */
    size_t churn_keys;
    double joined_moved, left_moved, ideal_moved; /* fractions of the keys */
    size_t misplaced; /* keys moved between members that neither joined nor left */
    /* max/mean load at 100 and 10,000 members over balance_keys[] keys */
    size_t balance_keys[2];
    double max_over_mean[2];
} ring_placement;

/* "10.<a>.<b>.<c>:11211": memcached-style ids, so every placement hashes the same names. */
static char **ring_ids(size_t n) {
    char **ids = calloc(n + 1, sizeof *ids);
    for (size_t i = 0; ids && i <= n; i++)
        if (asprintf(&ids[i], "10.%zu.%zu.%zu:11211", i >> 16, (i >> 8) & 255, i & 255) < 0) {
            ids[i] = NULL;
            return NULL; /* the bench exits on failure; the leak does not matter */
        }
    return ids;
}

static void ring_ids_free(char **ids, size_t n) {
    for (size_t i = 0; ids && i <= n; i++)
        free(ids[i]);
    free(ids);
}

static coord_hashring *ring_build(const ring_placement *p, char *const *ids, size_t n) {
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    o.placement = p->placement;
    coord_hashring *h = NULL;
    int rc = coord_hashring_build(&h, (const char *const *)ids, NULL, n, &o);
    if (rc)
        fprintf(stderr, "coord-bench: ring %s, %zu members: %s: %s\n", p->name, n,
                coord_strerror(rc), coord_last_error());
    return h;
}

/* The keys the lookup loops cycle through, stored together with their lengths. */
typedef struct ring_keys {
    char (*key)[16];
    size_t *len;
} ring_keys;

/* Median over RING_RUNS of the mean time of `iters` lookups cycling through `keys`. */
static double ring_lookup_ns(const coord_hashring *h, const ring_keys *keys, size_t iters) {
    samples runs = {0};
    uintptr_t sink = 0;
    for (int r = 0; r < RING_RUNS; r++) {
        int64_t t0 = now_ns();
        for (size_t i = 0; i < iters; i++) {
            size_t k = i % RING_KEYS;
            sink += (uintptr_t)coord_hashring_lookup(h, keys->key[k], keys->len[k]);
        }
        if (samples_add(&runs, now_ns() - t0)) break;
    }
    qsort(runs.v, runs.n, sizeof *runs.v, cmp_i64);
    double ns = pct_ms(&runs, 0.5) * 1e6 / (double)iters;
    free(runs.v);
    return sink == 1 ? ns + 1e-9 : ns; /* keeps the loop from being optimised away */
}

/*
 * The raw bound of a lookup in a big ring: one random dependent memory access over a buffer as
 * large as the ring, i.e. a pointer chase over a random cyclic permutation of the buffer's cache
 * lines (each line holds the index of the next). A lookup in a ring far beyond the caches needs
 * at least one such access (its probes' accesses are independent and may overlap), so lookup
 * time over this is the figure that holds on a noisy machine. Mean ns per step of
 * RING_CHASE_STEPS, median of RING_CHASE_RUNS runs; 0 if out of memory.
 */
static double ring_chase_ns(size_t bytes) {
    size_t n = bytes / 64 > 2 ? bytes / 64 : 2;
    uint64_t *line = aligned_alloc(64, n * 64);
    size_t *order = malloc(n * sizeof *order);
    samples runs = {0};
    double ns = 0;
    if (!line || !order) goto out;
    uint64_t r = 0x9e3779b97f4a7c15ULL; /* xorshift64 */
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        size_t j = (size_t)(r % (i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++) /* one cycle through every line, in random order */
        line[order[i] * 8] = order[(i + 1) % n] * 8;
    uint64_t at = order[0] * 8;
    for (size_t i = 0; i < n; i++) /* warm-up: one lap */
        at = line[at];
    for (int k = 0; k < RING_CHASE_RUNS; k++) {
        int64_t t0 = now_ns();
        for (size_t i = 0; i < RING_CHASE_STEPS; i++)
            at = line[at];
        if (samples_add(&runs, now_ns() - t0)) goto out;
    }
    qsort(runs.v, runs.n, sizeof *runs.v, cmp_i64);
    ns = pct_ms(&runs, 0.5) * 1e6 / RING_CHASE_STEPS;
    if (at == 1) ns += 1e-9; /* keeps the chase from being optimised away */
out:
    free(runs.v);
    free(line);
    free(order);
    return ns;
}

/* Keys owned per member over `nkeys` keys "load:<i>", as max/mean. */
static double ring_max_over_mean(const coord_hashring *h, char **ids, size_t n, size_t nkeys) {
    /* Map the returned id (a pointer into the ring) back to its index through the digits of
     * the id, which ring_ids made unique. */
    size_t *count = calloc(n, sizeof *count);
    if (!count) return 0;
    char k[32];
    for (size_t i = 0; i < nkeys; i++) {
        int len = snprintf(k, sizeof k, "load:%zu", i);
        const char *id = coord_hashring_lookup(h, k, (size_t)len);
        unsigned a, b, c;
        if (!id || sscanf(id, "10.%u.%u.%u:", &a, &b, &c) != 3) continue;
        size_t j = (size_t)a << 16 | (size_t)b << 8 | c;
        if (j < n) count[j]++;
    }
    size_t mx = 0;
    for (size_t j = 0; j < n; j++)
        mx = count[j] > mx ? count[j] : mx;
    free(count);
    (void)ids;
    return (double)mx / ((double)nkeys / (double)n);
}

static int ring_measure(ring_placement *p, const ring_keys *keys) {
    char **ids = ring_ids(ring_sizes[RING_SIZES - 1]);
    if (!ids) return -1;
    bool md5 = p->placement != COORD_RING_DEFAULT; /* about 0.4 us a key through OpenSSL */
    for (int s = 0; s < RING_SIZES; s++) {
        coord_hashring *h = ring_build(p, ids, ring_sizes[s]);
        if (!h) goto fail;
        p->bytes[s] = coord__hashring_bytes(h);
        p->lookup_ns[s] = ring_lookup_ns(h, keys, md5 ? 100000 : 1000000);
        if (s == RING_SIZES - 1 && p->placement == COORD_RING_DEFAULT) {
            p->raw_bytes = p->bytes[s];
            p->raw_ns = ring_chase_ns(p->raw_bytes);
        }
        if (s == RING_SIZES - 1) {
            samples runs = {0};
            for (int r = 0; r < 5; r++) {
                int64_t t0 = now_ns();
                coord_hashring *b = ring_build(p, ids, ring_sizes[s]);
                int64_t t = now_ns() - t0;
                coord_hashring_free(b);
                if (!b || samples_add(&runs, t)) break;
            }
            qsort(runs.v, runs.n, sizeof *runs.v, cmp_i64);
            p->build_ms = pct_ms(&runs, 0.5);
            free(runs.v);
        }
        if (ring_sizes[s] == 100 || ring_sizes[s] == 10000) {
            int b = ring_sizes[s] == 100 ? 0 : 1;
            p->balance_keys[b] = md5 ? (b ? 2000000 : 1000000) : 10000000;
            p->max_over_mean[b] = ring_max_over_mean(h, ids, ring_sizes[s], p->balance_keys[b]);
        }
        coord_hashring_free(h);
    }

    /* Churn: ids[0..100) joined by ids[100]; then ids[37] leaves the 101. */
    size_t n = RING_CHURN_N;
    char *left[RING_CHURN_N];
    for (size_t i = 0, j = 0; i <= n; i++)
        if (i != 37) left[j++] = ids[i];
    coord_hashring *before = ring_build(p, ids, n), *joined = ring_build(p, ids, n + 1),
                   *after = ring_build(p, left, n);
    if (!before || !joined || !after) {
        coord_hashring_free(before);
        coord_hashring_free(joined);
        coord_hashring_free(after);
        goto fail;
    }
    p->churn_keys = md5 ? 200000 : 1000000;
    size_t jm = 0, lm = 0;
    char k[32];
    for (size_t i = 0; i < p->churn_keys; i++) {
        int len = snprintf(k, sizeof k, "churn:%zu", i);
        const char *x = coord_hashring_lookup(before, k, (size_t)len);
        const char *y = coord_hashring_lookup(joined, k, (size_t)len);
        const char *z = coord_hashring_lookup(after, k, (size_t)len);
        if (strcmp(x, y)) {
            jm++;
            if (strcmp(y, ids[n])) p->misplaced++;
        }
        if (strcmp(y, z)) {
            lm++;
            if (strcmp(y, ids[37])) p->misplaced++;
        }
    }
    coord_hashring_free(before);
    coord_hashring_free(joined);
    coord_hashring_free(after);
    p->joined_moved = (double)jm / (double)p->churn_keys;
    p->left_moved = (double)lm / (double)p->churn_keys;
    p->ideal_moved = 1.0 / (double)(n + 1);
    ring_ids_free(ids, ring_sizes[RING_SIZES - 1]);
    return 0;
fail:
    ring_ids_free(ids, ring_sizes[RING_SIZES - 1]);
    return -1;
}

static void json_ring_placement(const ring_placement *p) {
    printf("{\"placement\":");
    json_str(p->name);
    printf(",\"lookup_ns\":{");
    for (int s = 0; s < RING_SIZES; s++)
        printf("%s\"%zu\":%.1f", s ? "," : "", ring_sizes[s], p->lookup_ns[s]);
    printf("},\"bytes\":{");
    for (int s = 0; s < RING_SIZES; s++)
        printf("%s\"%zu\":%zu", s ? "," : "", ring_sizes[s], p->bytes[s]);
    printf("},\"build_ms_10000\":%.2f,\"churn_members\":%d,\"churn_keys\":%zu,"
           "\"join_moved\":%.5f,\"leave_moved\":%.5f,\"ideal_moved\":%.5f,\"join_ratio\":%.3f,"
           "\"leave_ratio\":%.3f,\"misplaced_keys\":%zu,\"max_over_mean\":{\"100\":%.3f,"
           "\"10000\":%.3f},\"balance_keys\":{\"100\":%zu,\"10000\":%zu}}",
           p->build_ms, RING_CHURN_N, p->churn_keys, p->joined_moved, p->left_moved, p->ideal_moved,
           ratio(p->joined_moved, p->ideal_moved), ratio(p->left_moved, p->ideal_moved),
           p->misplaced, p->max_over_mean[0], p->max_over_mean[1], p->balance_keys[0],
           p->balance_keys[1]);
}

static const char *met(bool ok) {
    return ok ? "met" : "MISSED";
}

/* The placements, measured without any server. A convergence part (rings of several clients
 * over --uri agreeing on one epoch) is to come beside it. */
static int ring_placements(const bench_opts *o) {
    ring_placement ps[3] = {{.name = "default", .placement = COORD_RING_DEFAULT},
                            {.name = "ketama", .placement = COORD_RING_KETAMA},
                            {.name = "libmemcached", .placement = COORD_RING_LIBMEMCACHED}};
    ring_keys keys = {malloc(RING_KEYS * sizeof *keys.key), malloc(RING_KEYS * sizeof *keys.len)};
    int failed = !keys.key || !keys.len;
    for (size_t i = 0; !failed && i < RING_KEYS; i++)
        keys.len[i] = (size_t)snprintf(keys.key[i], sizeof keys.key[i], "user:%08zx",
                                       i * 2654435761u % 4294967291u);
    for (int i = 0; !failed && i < 3; i++)
        if (ring_measure(&ps[i], &keys)) failed = 1;
    free(keys.key);
    free(keys.len);
    if (failed) return 1;

    const ring_placement *d = &ps[0];
    bool t_l100 = d->lookup_ns[1] <= RING_TARGET_LOOKUP_100_NS;
    bool t_l10k = d->lookup_ns[3] <= RING_TARGET_LOOKUP_10K_NS;
    bool t_build = d->build_ms <= RING_TARGET_BUILD_10K_MS;
    double jr = ratio(d->joined_moved, d->ideal_moved), lr = ratio(d->left_moved, d->ideal_moved);
    bool t_moved = jr <= RING_TARGET_MOVED_RATIO && lr <= RING_TARGET_MOVED_RATIO && !d->misplaced;
    bool t_balance = d->max_over_mean[0] <= RING_TARGET_MAX_OVER_MEAN;
    double over_raw = ratio(d->lookup_ns[3], d->raw_ns);
    if (o->json) {
        printf("{\"mode\":\"ring\",\"vnodes\":%d,\"raw_ns\":%.1f,\"raw_bytes\":%zu,"
               "\"raw_method\":\"pointer chase over a random cycle of the cache lines of a buffer "
               "the size of the default ring at 10000 members, %d steps, median of %d runs\","
               "\"lookup_ns_10000_over_raw\":%.3f,\"placements\":[",
               COORD_RING_VNODES_DEFAULT, d->raw_ns, d->raw_bytes, RING_CHASE_STEPS,
               RING_CHASE_RUNS, over_raw);
        for (int i = 0; i < 3; i++) {
            if (i) putchar(',');
            json_ring_placement(&ps[i]);
        }
        printf("],\"targets\":{\"lookup_ns_100\":%.0f,\"lookup_ns_10000\":%.0f,"
               "\"build_ms_10000\":%.0f,\"moved_ratio\":%.1f,\"max_over_mean_100\":%.2f},"
               "\"met\":{\"lookup_ns_100\":%s,\"lookup_ns_10000\":%s,\"build_ms_10000\":%s,"
               "\"moved_ratio\":%s,\"max_over_mean_100\":%s},\"ok\":%s}\n",
               RING_TARGET_LOOKUP_100_NS, RING_TARGET_LOOKUP_10K_NS, RING_TARGET_BUILD_10K_MS,
               RING_TARGET_MOVED_RATIO, RING_TARGET_MAX_OVER_MEAN, t_l100 ? "true" : "false",
               t_l10k ? "true" : "false", t_build ? "true" : "false", t_moved ? "true" : "false",
               t_balance ? "true" : "false", d->misplaced ? "false" : "true");
        return d->misplaced ? 1 : 0;
    }
    printf("coord-bench ring: the hash ring alone (coord_hashring_*), no server; default "
           "placement with %d vnodes\n",
           COORD_RING_VNODES_DEFAULT);
    printf("lookup: mean ns over a loop of lookups of %d distinct keys, median of %d runs\n",
           RING_KEYS, RING_RUNS);
    printf("%-13s %9s %9s %9s %9s %11s %9s %9s\n", "placement", "ns@10", "ns@100", "ns@1000",
           "ns@10000", "build@10000", "MB@100", "MB@10000");
    for (int i = 0; i < 3; i++) {
        const ring_placement *p = &ps[i];
        printf("%-13s %9.1f %9.1f %9.1f %9.1f %8.2f ms %9.3f %9.2f\n", p->name, p->lookup_ns[0],
               p->lookup_ns[1], p->lookup_ns[2], p->lookup_ns[3], p->build_ms,
               (double)p->bytes[1] / 1e6, (double)p->bytes[3] / 1e6);
    }
    printf("raw = one random dependent memory access over %.2f MB (the default ring at 10000 "
           "members): %.1f ns\n(pointer chase over a random cycle of its cache lines, %d steps, "
           "median of %d runs, measured right after the default lookups at 10000)\n",
           (double)d->raw_bytes / 1e6, d->raw_ns, RING_CHASE_STEPS, RING_CHASE_RUNS);
    printf("default lookup@10000 / raw = %.2f\n", over_raw);
    printf("\nchurn at %d members (ideal share moved 1/%d = %.5f); load as max/mean keys per "
           "member\n",
           RING_CHURN_N, RING_CHURN_N + 1, d->ideal_moved);
    printf("%-13s %9s %7s %9s %7s %10s %11s %13s\n", "placement", "join", "ratio", "leave", "ratio",
           "misplaced", "max/mean@100", "max/mean@10000");
    for (int i = 0; i < 3; i++) {
        const ring_placement *p = &ps[i];
        printf("%-13s %9.5f %7.3f %9.5f %7.3f %10zu %11.3f %13.3f\n", p->name, p->joined_moved,
               ratio(p->joined_moved, p->ideal_moved), p->left_moved,
               ratio(p->left_moved, p->ideal_moved), p->misplaced, p->max_over_mean[0],
               p->max_over_mean[1]);
    }
    printf("(misplaced: keys that moved between members that neither joined nor left; keys: %zu "
           "for churn, %zu/%zu for load at 100/10000 members (default), %zu/%zu (ketama "
           "placements), so sampling noise is about %.1f%%/%.1f%% of a member's load)\n",
           ps[0].churn_keys, ps[0].balance_keys[0], ps[0].balance_keys[1], ps[1].balance_keys[0],
           ps[1].balance_keys[1], 100.0 / sqrt((double)ps[0].balance_keys[0] / 100.0),
           100.0 / sqrt((double)ps[0].balance_keys[1] / 10000.0));
    printf("\ntargets (default placement):\n");
    printf("  lookup at 100 members    %7.1f ns  (<= %.0f)  %s\n", d->lookup_ns[1],
           RING_TARGET_LOOKUP_100_NS, met(t_l100));
    printf("  lookup at 10000 members  %7.1f ns  (<= %.0f) %s  (%.2f x raw %.1f ns)\n",
           d->lookup_ns[3], RING_TARGET_LOOKUP_10K_NS, met(t_l10k), over_raw, d->raw_ns);
    printf("  build of 10000 members   %7.2f ms  (<= %.0f)  %s\n", d->build_ms,
           RING_TARGET_BUILD_10K_MS, met(t_build));
    printf("  moved on join / leave    %.3f / %.3f x ideal  (<= %.1f, none misplaced)  %s\n", jr,
           lr, RING_TARGET_MOVED_RATIO, met(t_moved));
    printf("  max/mean at 100 members  %7.3f     (<= %.2f)  %s\n", d->max_over_mean[0],
           RING_TARGET_MAX_OVER_MEAN, met(t_balance));
    return d->misplaced ? 1 : 0;
}

#define RING_CONVERGE_SAMPLES 50
#define RING_TARGET_CONVERGE_P99_MS 100.0

#define RING_OBSERVERS 3
#define RING_WAIT_NS (10 * 1000000000LL)

/* An observer of the convergence run: its own client (session), woken by its ring's callback. */
typedef struct observer {
    coord_client *c;
    coord_ring *r;
    int64_t seen_at; /* when the awaited epoch was seen, 0 before */
    uint64_t want;   /* the epoch awaited */
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
} observer;

static void on_ring_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r;
    observer *ob = payload;
    pthread_mutex_lock(ob->mu);
    if (ch->epoch == ob->want && !ob->seen_at) ob->seen_at = now_ns();
    pthread_cond_broadcast(ob->cv);
    pthread_mutex_unlock(ob->mu);
}

/* Arm every observer for `want`, then (the change made by the caller) wait until each shows it;
 * the slowest's delay after t0, or -1 after RING_WAIT_NS. */
static void observers_arm(observer *obs, uint64_t want) {
    pthread_mutex_lock(obs[0].mu);
    for (int i = 0; i < RING_OBSERVERS; i++) {
        obs[i].seen_at = 0;
        obs[i].want = want;
    }
    pthread_mutex_unlock(obs[0].mu);
}

static int64_t observers_await(observer *obs, int64_t t0) {
    int64_t end = now_ns() + RING_WAIT_NS, last = 0;
    pthread_mutex_lock(obs[0].mu);
    for (int i = 0; i < RING_OBSERVERS; i++) {
        while (!obs[i].seen_at && coord_ring_epoch(obs[i].r) != obs[i].want) {
            if (now_ns() >= end) {
                pthread_mutex_unlock(obs[0].mu);
                return -1;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(obs[0].cv, obs[0].mu, &ts);
        }
        int64_t at = obs[i].seen_at ? obs[i].seen_at : now_ns();
        if (at > last) last = at;
    }
    pthread_mutex_unlock(obs[0].mu);
    return last - t0;
}

/* With --uri: membership convergence on the servers. One member joins and leaves
 * RING_CONVERGE_SAMPLES times; the time until every observer shows the change, beside the join
 * call itself (one write and one listing). */
static int ring_convergence(const bench_opts *o) {
    char group[64];
    snprintf(group, sizeof group, "bench-%ld", (long)getpid());
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    observer obs[RING_OBSERVERS] = {0};
    coord_client *mc = NULL;
    coord_ring *mr = NULL;
    samples join = {0}, leave = {0}, call = {0};
    int rc = 0;
    for (int i = 0; i < RING_OBSERVERS && !rc; i++) {
        obs[i].mu = &mu;
        obs[i].cv = &cv;
        coord_ring_options ro = COORD_RING_OPTIONS_INIT;
        ro.on_change = on_ring_change;
        ro.payload = &obs[i];
        if (!(rc = coord_client_open(&obs[i].c, o->uri, NULL)))
            rc = coord_ring_new(&obs[i].r, obs[i].c, group, &ro);
    }
    if (!rc && !(rc = coord_client_open(&mc, o->uri, NULL)))
        rc = coord_ring_new(&mr, mc, group, NULL);
    for (int s = 0; s < RING_CONVERGE_SAMPLES && !rc; s++) {
        uint64_t empty = coord_ring_epoch(obs[0].r);
        observers_arm(obs, UINT64_MAX); /* nothing to see until the join is known */
        int64_t t0 = now_ns();
        if ((rc = coord_ring_join(mr, "bench-member", NULL, 0, 1))) break;
        int64_t t1 = now_ns();
        observers_arm(obs, coord_ring_epoch(mr)); /* the joiner shows itself at once */
        int64_t d = observers_await(obs, t0);
        if (d < 0) break;
        observers_arm(obs, empty);
        int64_t t2 = now_ns();
        if ((rc = coord_ring_leave(mr))) break;
        int64_t e = observers_await(obs, t2);
        if (e < 0 || samples_add(&call, t1 - t0) || samples_add(&join, d) || samples_add(&leave, e))
            break;
    }
    bool complete = !rc && join.n == RING_CONVERGE_SAMPLES;
    if (rc)
        fprintf(stderr, "coord-bench ring: %s: %s\n", coord_strerror(rc), coord_last_error());
    else if (!complete)
        fprintf(stderr, "coord-bench ring: an observer did not converge within %lld s\n",
                RING_WAIT_NS / 1000000000LL);
    coord_ring_free(mr);
    coord_client_close(mc);
    for (int i = 0; i < RING_OBSERVERS; i++) {
        coord_ring_free(obs[i].r);
        coord_client_close(obs[i].c);
    }
    if (complete) {
        qsort(join.v, join.n, sizeof *join.v, cmp_i64);
        qsort(leave.v, leave.n, sizeof *leave.v, cmp_i64);
        qsort(call.v, call.n, sizeof *call.v, cmp_i64);
        double j50 = pct_ms(&join, 0.5), j99 = pct_ms(&join, 0.99);
        double l50 = pct_ms(&leave, 0.5), l99 = pct_ms(&leave, 0.99), c50 = pct_ms(&call, 0.5);
        bool met_p99 = j99 <= RING_TARGET_CONVERGE_P99_MS;
        char shown[1024];
        if (o->json) {
            printf("{\"mode\":\"ring-convergence\",\"uri\":");
            json_str(shown_uri(o->uri, shown, sizeof shown));
            printf(",\"samples\":%zu,\"observers\":%d,\"join_p50_ms\":%.3f,\"join_p99_ms\":%.3f,"
                   "\"leave_p50_ms\":%.3f,\"leave_p99_ms\":%.3f,\"join_call_p50_ms\":%.3f,"
                   "\"target_p99_ms\":%.0f,\"met\":%s}\n",
                   join.n, RING_OBSERVERS, j50, j99, l50, l99, c50, RING_TARGET_CONVERGE_P99_MS,
                   met_p99 ? "true" : "false");
        } else {
            printf("\nmembership convergence on %s: %zu joins and leaves of one member, %d "
                   "observer clients\n",
                   shown_uri(o->uri, shown, sizeof shown), join.n, RING_OBSERVERS);
            printf("  join  -> every observer updated  p50 %7.3f ms  p99 %7.3f ms  (p99 <= %.0f)  "
                   "%s\n",
                   j50, j99, RING_TARGET_CONVERGE_P99_MS, met(met_p99));
            printf("  leave -> every observer updated  p50 %7.3f ms  p99 %7.3f ms\n", l50, l99);
            printf("  bound: the join call itself (one write and one listing) p50 %.3f ms; an "
                   "observer\n  needs the server's notification and one listing after it\n",
                   c50);
        }
    }
    free(join.v);
    free(leave.v);
    free(call.v);
    return complete ? 0 : 1;
}

static int mode_ring(const bench_opts *o) {
    int rc = ring_placements(o);
    if (o->uri && ring_convergence(o)) rc = 1;
    return rc;
}

/* ---------- command line ---------- */

typedef struct mode {
    const char *name;
    int (*run)(const bench_opts *o);
    bool lock_opts; /* takes --threads, --locks, --raw-lease */
    const char *help;
    bool no_server; /* runs without --uri */
} mode;

static const mode modes[] = {
    {"lock", mode_lock, true,
     "uncontended / contended / parallel acquire+release, and the raw backend bound"},
    {"counter", mode_counter, false,
     "uncontended add vs the raw conditional write; 8 writers on 1 key vs on 8 shards"},
    {"ring", mode_ring, false,
     "hash ring placements (no server): lookup ns, build time, memory, churn, balance; "
     "with --uri also membership convergence",
     true},
};

static void usage(FILE *f) {
    fprintf(f, "usage: coord-bench MODE --uri URI [--seconds S] [--json]\n"
               "       coord-bench lock --uri URI [--threads T] [--locks L] [--seconds S] "
               "[--client-per-thread] [--raw-lease] [--json]\n"
               "  URI defaults to COORD_URI; S defaults to 3 seconds per scenario;\n"
               "lock options:\n"
               "  --threads/--locks add a \"custom\" scenario (defaults 8 threads, 1 lock)\n"
               "  --client-per-thread: a client per thread (default: one shared client); also for\n"
               "  counter\n"
               "  --raw-lease: etcd raw bound on a lease granted once (default: lease-less key)\n"
               "ring: the placements need no server; with --uri (or COORD_URI) membership\n"
               "  convergence is measured too (--seconds is not used)\n"
               "modes:\n");
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
        fprintf(f, "  %-8s %s\n", modes[i].name, modes[i].help);
}

static int parse_pos(const char *flag, const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 100000) {
        fprintf(stderr, "coord-bench: %s wants a number from 1 to 100000, not \"%s\"\n", flag, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const mode *m = NULL;
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
        if (!strcmp(argv[1], modes[i].name)) m = &modes[i];
    if (!m) {
        fprintf(stderr, "coord-bench: unknown mode \"%s\"\n", argv[1]);
        usage(stderr);
        return 2;
    }
    bench_opts o = {.uri = getenv("COORD_URI"), .seconds = 3};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--json")) {
            o.json = true;
        } else if (!strcmp(a, "--client-per-thread")) {
            o.client_per_thread = true;
        } else if (!strcmp(a, "--raw-lease")) {
            o.raw_lease = true;
        } else if (!strcmp(a, "--uri") && has_val) {
            o.uri = argv[++i];
        } else if (!strcmp(a, "--threads") && has_val) {
            if (parse_pos(a, argv[++i], &o.threads)) return 2;
        } else if (!strcmp(a, "--locks") && has_val) {
            if (parse_pos(a, argv[++i], &o.locks)) return 2;
        } else if (!strcmp(a, "--seconds") && has_val) {
            if (parse_pos(a, argv[++i], &o.seconds)) return 2;
        } else {
            fprintf(stderr, "coord-bench: unknown or incomplete option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!m->lock_opts &&
        (o.threads || o.locks || o.raw_lease || (o.client_per_thread && m->run != mode_counter))) {
        fprintf(stderr,
                "coord-bench: --threads, --locks and --raw-lease are lock options, and "
                "--client-per-thread a lock and counter one, not %s ones\n",
                m->name);
        return 2;
    }
    if (!o.uri && !m->no_server) {
        fprintf(stderr, "coord-bench: no URI: pass --uri or set COORD_URI\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = m->run(&o);
    curl_global_cleanup();
    return rc;
}
