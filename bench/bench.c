/*
 * coord-bench: throughput and latency of the coord recipes, next to the bound of the bare
 * backend client measured in the same run. This file is the harness (samples, results, the
 * thread runner, the raw bounds' dispatch, output, command line); each mode has a file of its
 * own (bench_lock.c, bench_counter.c, bench_ring.c, bench_election.c, bench_semaphore.c,
 * bench_rwlock.c, bench_kv.c, bench_queue.c, bench_loop.c) and each bare client too
 * (raw_zk.c, raw_etcd.c). Figures and how to read them: bench/README.md.
 *
 *   coord-bench lock --uri zk://127.0.0.1:2181/bench [--threads T] [--locks L] [--seconds S]
 *                    [--client-per-thread] [--raw-lease] [--json]
 *   coord-bench lock --uri etcd://127.0.0.1:2379/bench --watch-paths [--seconds S] [--json]
 *   coord-bench counter --uri etcd://127.0.0.1:2379/bench [--seconds S] [--json]
 *
 *   coord-bench ring [--uri URI [--watch-paths]] [--json]
 *   coord-bench election --uri URI [--seconds S] [--client-per-thread] [--json]
 *   coord-bench semaphore --uri URI [--seconds S] [--client-per-thread] [--json]
 *   coord-bench rwlock --uri URI [--seconds S] [--client-per-thread] [--json]
 *   coord-bench kv --uri URI [--seconds S] [--json]
 *   coord-bench queue --uri URI [--seconds S] [--client-per-thread] [--json]
 *   coord-bench loop --uri URI [--seconds S] [--json]
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
 * lock --watch-paths (etcd): the uncontended and contended scenarios only, once with watch=http
 * (a streaming HTTP request per watch) and once with watch=ws (every watch of the client on one
 * WebSocket stream) appended to the URI ('?' or '&'), a client per path opened once; the paths
 * alternate in 3 slices each (http ws | ws http | http ws), S seconds in all per scenario and
 * path, so that background load weighs on both. Printed: both paths' rows and hand-offs, and
 * ws contended / http contended (target >= 1.5) and ws contended / ws uncontended (>= 0.8).
 * ring --uri --watch-paths does the same for the membership convergence: 50 joins per path in
 * 3 alternating slices, and ws / http of the join's p50 (target <= 1.0: no slower).
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
 *
 * election: "handoff", 8 candidates (a coord_election handle each, on one shared client, or
 * one client each with --client-per-thread) on one election, each resigning as soon as it leads
 * and campaigning again; a cycle is coord_election_campaign(-1), timed, + coord_election_resign,
 * so cycles/s is hand-offs/s. Its raw bound, interleaved with it in slices as in the lock mode:
 * 8 threads of the bare client running the backend's native election with the recipe's steps
 * and the same values:
 *   ZooKeeper: Curator's LeaderLatch on one shared handle: zoo_create EPHEMERAL|SEQUENCE
 *              "_c_<id>-latch-" with the value + zoo_get_children, zoo_wexists on the
 *              predecessor and zoo_get_children again when it fires, zoo_delete to resign;
 *   etcd:      concurrency.Election, keys on one lease: txn (create_revision(key)==0 ? put key
 *              value lease), range for the newest key created before ours, a watch stream on it
 *              from the range's revision until it is deleted, again; deleterange to resign.
 * "failover": 3 candidates, a client each, observing with on_leader; the leader revokes its own
 * session (the backend's expire slot, coord__client_conn), and the figure is the time from just
 * before that call to the next leader's on_leader(mine) callback; the revoked candidate then
 * opens a new client and campaigns again at the back of the queue (untimed).
 *
 * semaphore: scenarios uncontended (1 thread) and contended (8 threads), on a semaphore of 4
 * (SEMAPHORE_LEASES), a coord_semaphore handle per thread on one shared client (one client each
 * with --client-per-thread); a cycle is coord_semaphore_acquire(-1), timed, +
 * coord_semaphore_release. The contended scenario fails when more than 4 threads are seen
 * holding at once. The raw bound, interleaved with the uncontended scenario in slices as in the
 * lock mode, is one thread of the bare client making the server requests an uncontended cycle
 * of coord makes (Curator's InterProcessSemaphoreV2 steps: the internal lock, the lease, its
 * count, the lock's release; the lease's release), its keys on one lease granted once on etcd:
 *   ZooKeeper: zoo_create2 EPHEMERAL|SEQUENCE "locks/_c_<id>-lock-" + zoo_get_children(locks),
 *              zoo_create2 EPHEMERAL|SEQUENCE "leases/_c_<id>-lease-" +
 *              zoo_get_children(leases), zoo_delete(lock); zoo_delete(lease) (6 requests);
 *   etcd:      txn (create_revision(locks/key)==0 ? put + the 2 newest of locks/), the same txn
 *              on leases/, deleterange(lock); deleterange(lease) (4 requests).
 *
 * rwlock: "readers", 8 threads read-locking one coord_rwlock (a handle each, one shared client
 * or one each with --client-per-thread); a cycle is coord_rwlock_rdlock(-1), timed, +
 * coord_rwlock_unlock. Its raw bound, interleaved with it in slices: 8 bare clients (a
 * connection each) read-locking one lock with the requests coord makes:
 *   ZooKeeper: zoo_create2 EPHEMERAL|SEQUENCE "_c_<id>-__READ__" + zoo_get_children (no
 *              "__WRIT__" before it), zoo_delete;
 *   etcd:      txn (create_revision(read/key)==0 ? put + the 2 newest of write/, none), then
 *              deleterange.
 * "mixed": 7 readers and 1 writer (coord_rwlock_wrlock) on one lock; the readers' and the
 * writer's cycles are told apart, and the run fails when a reader and the writer are seen
 * holding at once. Its raw bound, "raw-mixed", run right after it: 8 threads (thread 0 writing)
 * running the backend's read-write lock algorithm with the recipe's steps, as raw-contend does
 * for the lock: Curator's InterProcessReadWriteLock on one shared ZooKeeper handle (a reader
 * watches the last writer before it, a writer the node just before it, and lists again when it
 * fires); on etcd the read/ and write/ keys on one lease, the enqueue txn reading the 2 newest
 * of the lock (a reader: of write/), a watch stream per wait with the check read, a range for
 * the next older one once it goes.
 *
 * kv: "put" (coord_kv_put of a 64-byte value, any version), "get" (coord_kv_get) and "txn"
 * (coord_txn_new + a check of one key's version + puts of two others + coord_txn_commit), one
 * thread each on one client, each interleaved in slices with its raw bound (as in the lock
 * mode): one thread of the bare client sending what coord sends for the operation, read in the
 * backends' put, kv_get and txn slots:
 *   ZooKeeper: put = zoo_multi of one setData (version -1) (coord's txn of one PUT; zoo_set is
 *              what a bare client would send, and the bound sends it); get = zoo_get; txn =
 *              zoo_multi [check(a, version), setData(b, -1), setData(c, -1)] (coord's optimistic
 *              multi: no read before it when every key exists and the check names a version);
 *   etcd:      put = POST /v3/kv/txn (no compare ? put key : range key keys_only), get = POST
 *              /v3/kv/range key, txn = POST /v3/kv/txn (mod_revision(a) == v ? put b, put c :
 *              range a, b, c keys_only), built by the backend's codec (etcd_txn_request) as the
 *              backend builds them.
 * "watch": a writer (a client of its own) puts a key and waits until the watcher
 * (coord_kv_watch_new on the other client) has reported that version; the latency is from the
 * put's return to the report (0 when the report came first). Its raw bound, run right after it:
 * ZooKeeper a data watch (zoo_awget, the watcher re-reading and re-arming with zoo_awget when it
 * fires) and etcd a watch stream (POST /v3/watch) whose events carry the revision, the writer on
 * a connection of its own.
 *
 * queue: 1 producer (a client of its own) keeping the queue QUEUE_BACKLOG items ahead, and 1 or
 * 4 consumers (a coord_queue handle each, on one shared client or one each with
 * --client-per-thread), either taking (coord_queue_take) or claiming and acking
 * (coord_queue_claim + coord_item_ack); a cycle is one item, timed from the call to its return
 * (with the ack). Every item is checked to come out once. Each scenario's raw bound,
 * interleaved with it in slices as in the lock mode: the same producer and consumers on bare
 * clients, making the requests coord makes per item (lib/workqueue.c); as coord's consumers of
 * one client, they pass over the items another is trying or took since its listing (feed_try)
 * and on ZooKeeper share one handle (etcd: a libcurl handle each); with --client-per-thread each
 * is on its own:
 *   ZooKeeper: put = zoo_create PERSISTENT_SEQUENTIAL "qn-"; take = get_children(items) +
 *              get_children(claims) + zoo_get(first unclaimed) + zoo_multi [create + delete of
 *              its claim node (absent), delete(item, version)]; claim = the two listings +
 *              zoo_create EPHEMERAL claim + zoo_get(item), ack = zoo_multi [check(claim),
 *              delete(item, version), delete(claim, version)];
 *   etcd:      put = POST /v3/kv/txn (create_revision(<dir>/<UnixNano>) == 0 ? put); the two
 *              listings are ranges keys_only sorted by create revision; take = range(item) + txn
 *              (version(claim) == 0 and mod_revision(item) == v ? delete item); claim = txn
 *              (create_revision(claim) == 0 ? put on the lease) + range(item), ack = txn
 *              (create_revision(claim) == c, mod_revision(item) == v, mod_revision(claim) == m ?
 *              delete both); the txns built by the backend's codec.
 * A consumer that loses an item to another moves to the next one of its listing, in both; one
 * that finds none open sleeps 200 us and lists again (coord's waits on a watch).
 *
 * loop: loop mode (coord_options.loop) on one client, driven from the bench's thread with
 * poll(2) on coord_client_fd and coord_client_process, against the blocking API on a non-loop
 * client of the same kind in the same run. Counter adds: 1, 8 and 64 coord_counter_add_async
 * in flight on one handle (each done starts the next add until the turn's total), adds/s and
 * each add's latency from its call to its done, against "blocking-seq", one thread calling
 * coord_counter_add (the counter mode's uncontended scenario); the loop counter's value is
 * checked against the successful adds. Lock hand-offs: 64 coord_lock handles of one lock on the
 * loop client, each calling coord_lock_acquire_async(-1), releasing with
 * coord_lock_release_async as soon as its done runs and acquiring again once the release's done
 * runs, timed over a fixed number of hand-offs after 64 untimed ones, against "blocking-64"
 * (64 threads, a handle each on one lock of one non-loop client, acquire(-1) + release: every
 * cycle a hand-off, among as many waiters) and "blocking-8" (the same with 8 threads, the lock
 * mode's contended scenario; on ZooKeeper the shorter queue is faster, as every look lists it).
 * The blocking scenarios run S / 3 seconds in each of 3 slices, interleaved with the loop
 * turns as raw and uncontended are (blocking first); a loop turn makes a fixed number of
 * operations, set before it starts: what its own rate so far makes in S / 3, or on its first
 * turn what the blocking rate makes (adds: times min(N, 4) at N in flight); at least 200. Targets:
 * loop-64 / blocking-seq >= 4 on ZooKeeper and >= 2 on etcd; loop-waiters / blocking-64 >= 0.9
 * (loop-waiters / blocking-8 printed too).
 *
 * Every multi-threaded measurement, scenario or raw bound, goes through one runner
 * (bench_run_threads): threads set up and warm up, wait at a gate, loop until a common deadline,
 * and their cycles, latencies and span are added up. Only the operation is timed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef COORD_WITH_ETCD
#include <curl/curl.h> /* the bare etcd client's process-wide set-up */
#endif

int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------- latency samples ---------- */

int samples_add(samples *s, int64_t ns) {
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

int samples_append(samples *dst, const samples *src) {
    for (size_t i = 0; i < src->n; i++)
        if (samples_add(dst, src->v[i])) return -1;
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void samples_sort(samples *s) {
    if (s->n) qsort(s->v, s->n, sizeof *s->v, cmp_i64);
}

double pct_ms(const samples *s, double p) {
    if (!s->n) return 0;
    size_t rank = (size_t)(p * (double)s->n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > s->n) rank = s->n;
    return (double)s->v[rank - 1] / 1e6;
}

/* ---------- results ---------- */

void result_finish(result *r) {
    samples_sort(&r->lat);
    samples_sort(&r->hand);
    r->elapsed_s = (double)r->elapsed_ns / 1e9;
    r->rate = r->elapsed_s > 0 ? (double)r->cycles / r->elapsed_s : 0;
    r->p50_ms = pct_ms(&r->lat, 0.50);
    r->p99_ms = pct_ms(&r->lat, 0.99);
    r->handoff_p50_ms = pct_ms(&r->hand, 0.50);
    r->handoff_p99_ms = pct_ms(&r->hand, 0.99);
}

void result_free(result *r) {
    free(r->lat.v);
    free(r->hand.v);
    r->lat = (samples){0};
    r->hand = (samples){0};
}

/* ---------- the thread runner ---------- */

struct bench_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int waiting; /* threads neither at the gate nor dropped out */
    bool open;
    int64_t start_ns, deadline_ns; /* written before the gate opens */
    atomic_bool abort;
};

bool bench_ready(bench_thread *t) {
    bench_run *run = t->run;
    bool ok = !t->err[0];
    pthread_mutex_lock(&run->mu);
    run->waiting--;
    pthread_cond_broadcast(&run->cv);
    while (ok && !run->open)
        pthread_cond_wait(&run->cv, &run->mu);
    pthread_mutex_unlock(&run->mu);
    return ok && !atomic_load(&run->abort);
}

bool bench_going(bench_thread *t) {
    if (!atomic_load(&t->run->abort) && now_ns() < t->run->deadline_ns) return true;
    t->end_ns = now_ns();
    return false;
}

int bench_sample(bench_thread *t, int64_t ns) {
    if (samples_add(&t->lat, ns)) {
        bench_fail(t, "out of memory");
        return -1;
    }
    t->cycles++;
    return 0;
}

void bench_fail(bench_thread *t, const char *fmt, ...) {
    if (!t->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->err, sizeof t->err, fmt, ap);
        va_end(ap);
    }
    atomic_store(&t->run->abort, true);
}

void bench_fail_rc(bench_thread *t, int rc, const char *what) {
    bench_fail(t, "thread %d: %s: %s: %s", t->idx, what, coord_strerror(rc), coord_last_error());
}

static bench_thread *item_at(void *items, size_t size, int i) {
    return (bench_thread *)(void *)((char *)items + (size_t)i * size);
}

/* A failure of the run: the first into `err`, or each on stderr when `err` is NULL. */
static void run_failed(const result *r, const char *why, char *err, size_t errcap) {
    if (!err)
        fprintf(stderr, "coord-bench: %s: %s\n", r->name, why);
    else if (!err[0])
        snprintf(err, errcap, "%s", why);
}

int bench_run_threads(void *items, size_t size, int n, void *(*fn)(void *), int64_t ms,
                      void (*on_start)(void *), void *ctx, result *r, char *err, size_t errcap) {
    bench_run run = {.waiting = n};
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    atomic_init(&run.abort, false);
    char why[600] = "";
    int started = 0;
    for (int i = 0; i < n; i++) {
        bench_thread *t = item_at(items, size, i);
        t->run = &run;
        t->idx = i;
        int prc = pthread_create(&t->th, NULL, fn, t);
        if (prc) {
            snprintf(why, sizeof why, "cannot start thread %d: %s", i, strerror(prc));
            atomic_store(&run.abort, true);
            pthread_mutex_lock(&run.mu);
            run.waiting -= n - i;
            pthread_mutex_unlock(&run.mu);
            break;
        }
        started++;
    }
    pthread_mutex_lock(&run.mu);
    while (run.waiting > 0)
        pthread_cond_wait(&run.cv, &run.mu);
    pthread_mutex_unlock(&run.mu);
    if (on_start) on_start(ctx);
    pthread_mutex_lock(&run.mu);
    run.start_ns = now_ns();
    run.deadline_ns = run.start_ns + ms * 1000000;
    run.open = true;
    pthread_cond_broadcast(&run.cv);
    pthread_mutex_unlock(&run.mu);

    bool failed = why[0] != 0;
    if (failed) run_failed(r, why, err, errcap);
    int64_t end = run.start_ns;
    for (int i = 0; i < started; i++) {
        bench_thread *t = item_at(items, size, i);
        pthread_join(t->th, NULL);
        if (t->err[0]) {
            run_failed(r, t->err, err, errcap);
            failed = true;
        }
        if (samples_append(&r->lat, &t->lat)) {
            run_failed(r, "out of memory", err, errcap);
            failed = true;
        }
        r->cycles += t->cycles;
        if (t->end_ns > end) end = t->end_ns;
        free(t->lat.v);
        t->lat = (samples){0};
    }
    r->elapsed_ns += end - run.start_ns;
    r->slices++;
    pthread_mutex_destroy(&run.mu);
    pthread_cond_destroy(&run.cv);
    return failed ? -1 : 0;
}

/* ---------- raw bounds ---------- */

int ms_or(int v, int dflt) {
    return v > 0 ? v : dflt;
}

static const raw_client *const raw_clients[] = {
#ifdef COORD_WITH_ZOOKEEPER
    &raw_zk_client,
#endif
#ifdef COORD_WITH_ETCD
    &raw_etcd_client,
#endif
    NULL,
};

/* The bare client of `backend` and the bench's URI parsed for it; false with out->err set. */
static bool raw_setup(const bench_opts *o, const char *backend, const raw_client **rc,
                      coord_uri **u, raw_result *out) {
    *rc = NULL;
    for (size_t i = 0; raw_clients[i]; i++)
        if (!strcmp(raw_clients[i]->backend, backend)) *rc = raw_clients[i];
    if (!*rc) {
        snprintf(out->err, sizeof out->err, "no raw client for %s in this build", backend);
        return false;
    }
    int err = coord_uri_parse(u, o->uri);
    if (err)
        snprintf(out->err, sizeof out->err, "%s: %.400s", coord_strerror(err), coord_last_error());
    return !err;
}

/* `n` threads of a raw bound's `fn`, key i + first_key each, for `ms`, added to out->r. */
static bool raw_tasks_run(const bench_opts *o, const coord_uri *u, void *(*fn)(void *), int n,
                          int first_key, int64_t ms, raw_result *out) {
    raw_task *ts = calloc((size_t)n, sizeof *ts);
    if (!ts) {
        snprintf(out->err, sizeof out->err, "out of memory");
        return false;
    }
    for (int i = 0; i < n; i++)
        ts[i] = (raw_task){.u = u, .key = first_key + i, .lease = o->raw_lease};
    int rc = bench_run_threads(ts, sizeof *ts, n, fn, ms, NULL, NULL, &out->r, out->err,
                               sizeof out->err);
    if (!out->method) out->method = ts[0].method;
    free(ts);
    return rc == 0;
}

bool raw_slice(const bench_opts *o, const char *backend, raw_kind kind, int64_t ms,
               raw_result *out) {
    const raw_client *rc;
    coord_uri *u = NULL;
    bool ok = raw_setup(o, backend, &rc, &u, out);
    if (ok) {
        void *(*fn)(void *) = kind == RAW_COUNTER     ? rc->counter
                              : kind == RAW_SEMAPHORE ? rc->semaphore
                              : kind == RAW_KV_PUT    ? rc->kv_put
                              : kind == RAW_KV_GET    ? rc->kv_get
                              : kind == RAW_KV_TXN    ? rc->kv_txn
                                                      : rc->lock;
        ok = raw_tasks_run(o, u, fn, 1, 0, ms, out);
    }
    coord_uri_free(u);
    return ok;
}

bool raw_watch(const bench_opts *o, const char *backend, int64_t ms, raw_result *out) {
    const raw_client *rc;
    coord_uri *u = NULL;
    if (raw_setup(o, backend, &rc, &u, out)) rc->watch(u, ms, out);
    out->ran = u && !out->err[0];
    coord_uri_free(u);
    return out->ran;
}

bool raw_queue(const bench_opts *o, const char *backend, int consumers, bool claim, int64_t ms,
               raw_result *out) {
    const raw_client *rc;
    coord_uri *u = NULL;
    if (raw_setup(o, backend, &rc, &u, out))
        rc->queue(u, consumers, claim, !o->client_per_thread, ms, out);
    out->ran = u && !out->err[0];
    coord_uri_free(u);
    return out->ran;
}

bool raw_parallel_counter(const bench_opts *o, const char *backend, int threads, int64_t ms,
                          raw_result *out) {
    const raw_client *rc;
    coord_uri *u = NULL;
    out->ran = raw_setup(o, backend, &rc, &u, out) &&
               raw_tasks_run(o, u, rc->counter, threads, 1, ms, out);
    coord_uri_free(u);
    return out->ran;
}

bool raw_readers(const bench_opts *o, const char *backend, int threads, int64_t ms,
                 raw_result *out) {
    const raw_client *rc;
    coord_uri *u = NULL;
    bool ok =
        raw_setup(o, backend, &rc, &u, out) && raw_tasks_run(o, u, rc->reader, threads, 0, ms, out);
    coord_uri_free(u);
    return ok;
}

bool raw_contended(const bench_opts *o, const char *backend, int threads, int64_t ms,
                   raw_result *out) {
    const raw_client *rc;
    coord_uri *u = NULL;
    if (raw_setup(o, backend, &rc, &u, out)) rc->contended(u, threads, ms, out);
    out->ran = u && !out->err[0];
    coord_uri_free(u);
    return out->ran;
}

bool raw_mixed(const bench_opts *o, const char *backend, int threads, int64_t ms, raw_result *out) {
    const raw_client *rc;
    coord_uri *u = NULL;
    if (raw_setup(o, backend, &rc, &u, out)) rc->mixed(u, threads, ms, out);
    out->ran = u && !out->err[0];
    coord_uri_free(u);
    return out->ran;
}

bool raw_election(const bench_opts *o, const char *backend, int threads, int64_t ms,
                  raw_result *out) {
    const raw_client *rc;
    coord_uri *u = NULL;
    if (raw_setup(o, backend, &rc, &u, out)) rc->election(u, threads, ms, out);
    bool ok = u && !out->err[0];
    coord_uri_free(u);
    return ok;
}

int raw_slices(const bench_opts *o) {
    return o->seconds * 2 > 3 ? o->seconds * 2 : 3;
}

bool raw_turn(const bench_opts *o, int k, int64_t *ms) {
    int64_t total_ms = (int64_t)o->seconds * 1000;
    int slice = k / 2, n = raw_slices(o);
    *ms = total_ms / n + (slice == n - 1 ? total_ms % n : 0);
    return (k % 2 == 0) == (slice % 2 == 0);
}

/* ---------- the etcd watch paths ---------- */

char *uri_with_param(const char *uri, const char *param) {
    char *out;
    if (asprintf(&out, "%s%c%s", uri, strchr(uri, '?') ? '&' : '?', param) < 0) {
        fprintf(stderr, "coord-bench: out of memory\n");
        return NULL;
    }
    return out;
}

bool watch_turn_ws(int k) {
    return (k % 2 == 0) != ((k / 2) % 2 == 0);
}

/* ---------- the queue mode's feed ---------- */

#define FEED_CAP (1u << 22)

int feed_init(bench_feed *f) {
    memset(f, 0, sizeof *f);
    if (!(f->seen = calloc(FEED_CAP, 1))) return -1;
    f->cap = FEED_CAP;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    return 0;
}

void feed_destroy(bench_feed *f) {
    if (!f->seen) return;
    free(f->seen);
    f->seen = NULL;
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
}

bool feed_room(bench_feed *f, bench_thread *t) {
    pthread_mutex_lock(&f->mu);
    bool going;
    while ((going = bench_going(t)) && f->produced - f->consumed >= QUEUE_BACKLOG) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 5000000; /* looks at the deadline every 5 ms */
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&f->cv, &f->mu, &dl);
    }
    pthread_mutex_unlock(&f->mu);
    return going;
}

size_t feed_next(bench_feed *f, char *buf, size_t cap) {
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->produced;
    pthread_mutex_unlock(&f->mu);
    int len = snprintf(buf, cap, "item-%llu", (unsigned long long)n);
    return len > 0 ? (size_t)len : 0;
}

void feed_put(bench_feed *f) {
    pthread_mutex_lock(&f->mu);
    f->produced++;
    pthread_mutex_unlock(&f->mu);
}

int feed_got(bench_feed *f, bench_thread *t, const void *data, size_t len) {
    char buf[32];
    unsigned long long n;
    char extra;
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, data, len);
    buf[len] = 0;
    if (sscanf(buf, "item-%llu%c", &n, &extra) != 1) {
        bench_fail(t, "thread %d: an item not of this run: \"%s\"", t->idx, buf);
        return -1;
    }
    pthread_mutex_lock(&f->mu);
    bool again = n < f->cap && f->seen[n];
    if (n < f->cap) f->seen[n] = 1;
    f->consumed++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (again) {
        bench_fail(t, "thread %d: item %llu delivered twice", t->idx, n);
        return -1;
    }
    return 0;
}

uint64_t feed_since(bench_feed *f) {
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->ndone;
    pthread_mutex_unlock(&f->mu);
    return n;
}

int feed_try(bench_feed *f, uint64_t since, const char *name) {
    pthread_mutex_lock(&f->mu);
    int slot = -1;
    bool pass = false;
    for (int i = 0; i < FEED_TRYING && !pass; i++) {
        if (!f->trying[i][0] && slot < 0) slot = i;
        pass = !strncmp(f->trying[i], name, sizeof f->trying[i] - 1);
    }
    if (f->ndone - since > FEED_DONE) since = f->ndone - FEED_DONE;
    for (uint64_t d = since; d < f->ndone && !pass; d++)
        pass = !strncmp(f->done[d % FEED_DONE], name, sizeof f->done[0] - 1);
    if (pass || slot < 0)
        slot = -1;
    else
        snprintf(f->trying[slot], sizeof f->trying[slot], "%s", name);
    pthread_mutex_unlock(&f->mu);
    return slot;
}

void feed_tried(bench_feed *f, int slot, bool taken) {
    pthread_mutex_lock(&f->mu);
    if (taken) memcpy(f->done[f->ndone++ % FEED_DONE], f->trying[slot], sizeof f->done[0]);
    f->trying[slot][0] = 0;
    pthread_mutex_unlock(&f->mu);
}

/* ---------- output ---------- */

coord_client *bench_connect(const bench_opts *o) {
    coord_client *c = NULL;
    int rc = coord_client_open(&c, o->uri, NULL);
    if (rc)
        fprintf(stderr, "coord-bench: connect: %s: %s\n", coord_strerror(rc), coord_last_error());
    return c;
}

double ratio(double a, double b) {
    return b > 0 ? a / b : 0;
}

const char *shown_uri(const char *uri, char *buf, size_t cap) {
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

void json_raw(const raw_result *raw, void (*emit)(const result *), const char *ratio_name,
              double ratio) {
    if (raw->ran) {
        emit(&raw->r);
        printf(",\"raw_method\":");
        json_str(raw->method);
        printf(",\"%s\":%.3f", ratio_name, ratio);
    } else {
        printf("null,\"raw_error\":");
        json_str(raw->err);
        printf(",\"%s\":null", ratio_name);
    }
}

void json_str(const char *s) {
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

const char *met(bool ok) {
    return ok ? "met" : "MISSED";
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
    {"election", mode_election, false,
     "hand-offs/s of 8 candidates vs the raw native election; failover after a revoked session"},
    {"semaphore", mode_semaphore, false,
     "uncontended acquire+release vs the raw bound; 8 threads on a semaphore of 4"},
    {"rwlock", mode_rwlock, false, "8 readers vs 8 bare readers; 7 readers + 1 writer"},
    {"kv", mode_kv, false, "put, get, 3-operation txn vs the raw requests; watch delivery latency"},
    {"queue", mode_queue, false,
     "1 producer, 1 and 4 consumers, take and claim+ack, items/s vs the raw requests"},
    {"loop", mode_loop, false,
     "loop mode: adds with 1/8/64 in flight, hand-offs of 64 async waiters, vs the blocking API"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: coord-bench MODE --uri URI [--seconds S] [--json]\n"
               "       coord-bench lock --uri URI [--threads T] [--locks L] [--seconds S] "
               "[--client-per-thread] [--raw-lease] [--watch-paths] [--json]\n"
               "  URI defaults to COORD_URI; S defaults to 3 seconds per scenario;\n"
               "lock options:\n"
               "  --threads/--locks add a \"custom\" scenario (defaults 8 threads, 1 lock)\n"
               "  --client-per-thread: a client per thread (default: one shared client); also for\n"
               "  counter, election (its hand-off scenario), semaphore, rwlock and queue (its\n"
               "  consumers)\n"
               "  --raw-lease: etcd raw bound on a lease granted once (default: lease-less key)\n"
               "  --watch-paths (etcd URI; lock and ring): the uncontended and contended\n"
               "  scenarios (ring: the convergence) with watch=http and with watch=ws appended\n"
               "  to the URI, interleaved in slices, and the ratios ws / http\n"
               "ring: the placements need no server; with --uri (or COORD_URI) membership\n"
               "  convergence is measured too (--seconds is not used)\n"
               "modes:\n");
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
        fprintf(f, "  %-9s %s\n", modes[i].name, modes[i].help);
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
        } else if (!strcmp(a, "--watch-paths")) {
            o.watch_paths = true;
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
        (o.threads || o.locks || o.raw_lease ||
         (o.client_per_thread && m->run != mode_counter && m->run != mode_election &&
          m->run != mode_semaphore && m->run != mode_rwlock && m->run != mode_queue))) {
        fprintf(stderr,
                "coord-bench: --threads, --locks and --raw-lease are lock options, and "
                "--client-per-thread a lock, counter, election, semaphore, rwlock and queue one, "
                "not %s ones\n",
                m->name);
        return 2;
    }
    if (!o.uri && !m->no_server) {
        fprintf(stderr, "coord-bench: no URI: pass --uri or set COORD_URI\n");
        return 2;
    }
    if (o.watch_paths && m->run != mode_lock && m->run != mode_ring) {
        fprintf(stderr, "coord-bench: --watch-paths is a lock and ring option, not a %s one\n",
                m->name);
        return 2;
    }
    if (o.watch_paths && (!o.uri || strncmp(o.uri, "etcd", 4) || strstr(o.uri, "watch="))) {
        fprintf(stderr, "coord-bench: --watch-paths wants an etcd:// or etcds:// URI without "
                        "a watch= parameter of its own\n");
        return 2;
    }
#ifdef COORD_WITH_ETCD
    curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
    int rc = m->run(&o);
#ifdef COORD_WITH_ETCD
    curl_global_cleanup();
#endif
    return rc;
}
