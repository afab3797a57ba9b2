/*
 * coord-bench's harness, shared by its scenario files (bench_lock.c, bench_counter.c,
 * bench_ring.c, bench_election.c, bench_semaphore.c, bench_rwlock.c, bench_kv.c, bench_queue.c,
 * bench_loop.c) and its bare backend clients (raw_zk.c, raw_etcd.c): the options, latency
 * samples, results, the one thread runner every multi-threaded measurement uses, output helpers
 * and the raw bounds. What each mode measures is told at the top of bench.c.
 */
#ifndef COORD_BENCH_H
#define COORD_BENCH_H

#include <coord.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord/sys/backend.h" /* coord_uri: the bare clients connect where --uri points */

#define DEFAULT_THREADS 8
#define TARGET_UNCONTENDED_OVER_RAW 0.9
#define SEMAPHORE_LEASES 4 /* the semaphore mode's limit, also its raw bound's */
#define KV_VALUE_LEN 64    /* the kv mode's values, also its raw bounds' */
#define QUEUE_BACKLOG 32   /* the queue mode's producer keeps at most this many items ahead */

typedef struct bench_opts {
    const char *uri;
    int threads; /* custom scenario; 0 = not given */
    int locks;   /* custom scenario; 0 = not given */
    int seconds;
    bool json;
    bool client_per_thread;
    bool raw_lease;   /* etcd raw bound: attach the key to a lease granted once */
    bool watch_paths; /* etcd, lock and ring: watch=http against watch=ws in one run */
} bench_opts;

int64_t now_ns(void);

/* ---------- latency samples ---------- */

typedef struct samples {
    int64_t *v; /* nanoseconds */
    size_t n, cap;
} samples;

int samples_add(samples *s, int64_t ns);
int samples_append(samples *dst, const samples *src);
void samples_sort(samples *s);
/* Nearest-rank percentile of sorted samples, in milliseconds; 0 without samples. */
double pct_ms(const samples *s, double p);

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

void result_finish(result *r);
void result_free(result *r);

/* ---------- the thread runner ---------- */

typedef struct bench_run bench_run;

/*
 * The head of each measuring thread's own struct (its first member). A thread sets itself up
 * (connections, a warm-up cycle), calls bench_ready to wait at the gate with the others, then
 * loops while bench_going, recording each timed cycle with bench_sample.
 */
typedef struct bench_thread {
    pthread_t th;
    bench_run *run;
    int idx; /* 0 .. n-1 */
    samples lat;
    uint64_t cycles;
    int64_t end_ns; /* when its timed loop ended */
    char err[600];  /* why it failed; empty while it has not */
} bench_thread;

/* Wait at the gate until every thread is there, then true to start the timed loop; a thread
 * that failed its set-up (err set) drops out instead, so the others do not wait for it. */
bool bench_ready(bench_thread *t);
/* True while the timed loop is to go on: before the deadline and with no thread failed. */
bool bench_going(bench_thread *t);
/* One timed cycle of `ns`. 0, or -1 when out of memory (the thread has failed). */
int bench_sample(bench_thread *t, int64_t ns);
/* Record the thread's failure (the first one counts) and stop the others' loops. */
void bench_fail(bench_thread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* bench_fail with a coord error: "thread <idx>: <what>: <code>: <detail>". */
void bench_fail_rc(bench_thread *t, int rc, const char *what);

/*
 * Run `fn` on each of the `n` items (of `size` bytes, each starting with a bench_thread) in a
 * thread of its own; once all are at the gate, call `on_start(ctx)` (when not NULL) and let them
 * loop for `ms`. Adds their cycles and latencies to `r`, and the span from the gate's opening to
 * the last loop's end to r->elapsed_ns (one slice). 0, or -1 when a thread failed or could not
 * start: the first error in `err` when it is not NULL, else every one printed on stderr.
 */
int bench_run_threads(void *items, size_t size, int n, void *(*fn)(void *), int64_t ms,
                      void (*on_start)(void *), void *ctx, result *r, char *err, size_t errcap);

/* ---------- raw bounds: the bare backend clients ---------- */

typedef struct raw_result {
    bool ran;
    const char *method;
    result r;
    char err[600];
} raw_result;

/* One thread of a raw bound. */
typedef struct raw_task {
    bench_thread t;
    const coord_uri *u;
    int key;            /* names its keys: parallel writers each have their own */
    bool lease;         /* etcd lock bound: the key on a lease granted once */
    const char *method; /* what it measures, set by the client */
} raw_task;

/* A bare backend client. The thread bodies take a raw_task. */
typedef struct raw_client {
    const char *backend; /* coord_client_backend's name */
    /* What an uncontended acquire + release must do, in one thread. */
    void *(*lock)(void *task);
    /* What an uncontended add must do: one conditional write on the version seen last. */
    void *(*counter)(void *task);
    /* `threads` threads on one lock with the backend's native algorithm and the recipe's
     * steps, for `ms`; out->err set when it failed. */
    void (*contended)(const coord_uri *u, int threads, int64_t ms, raw_result *out);
    /* `threads` candidates on one election with the backend's native algorithm (etcd's
     * concurrency.Election, Curator's LeaderLatch), each resigning as soon as it leads and
     * campaigning again, for `ms`, added to out->r; out->err set when it failed. */
    void (*election)(const coord_uri *u, int threads, int64_t ms, raw_result *out);
    /* What an uncontended semaphore acquire + release must do, in one thread: Curator's
     * InterProcessSemaphoreV2 steps (the internal lock, the lease, its count, the lock's
     * release; the lease's release). */
    void *(*semaphore)(void *task);
    /* One reader of a read-write lock with a bare client of its own: enqueue a reader entry,
     * check no writer is before it, delete it; every task on one lock. */
    void *(*reader)(void *task);
    /* `threads` threads on one read-write lock with the backend's algorithm and the recipe's
     * steps, thread 0 writing and the others reading, each locking again as soon as it has
     * unlocked, for `ms`, added to out->r; out->err set when it failed. */
    void (*mixed)(const coord_uri *u, int threads, int64_t ms, raw_result *out);
    /* What one coord_kv_put (unconditional), coord_kv_get and 3-operation transaction (a
     * check of one key's version + puts of two others) send, in one thread. */
    void *(*kv_put)(void *task);
    void *(*kv_get)(void *task);
    void *(*kv_txn)(void *task);
    /* A writer putting a key and a watcher of it on a connection of its own, for `ms`: each
     * cycle a put, timed from its return until the watcher has seen its version (into
     * out->r.lat); out->err set when it failed. */
    void (*watch)(const coord_uri *u, int64_t ms, raw_result *out);
    /* 1 producer keeping the queue QUEUE_BACKLOG items ahead and `consumers` consumers making
     * the requests coord makes per item (take, or claim + ack), for `ms`: out->r gets the
     * consumers' items; out->err set when it failed. `shared`: as coord's consumers of one
     * client, they pass over each other's items (feed_try) and, on ZooKeeper, share one handle
     * (etcd: a connection each, as the backend's pool has); otherwise each is on its own. */
    void (*queue)(const coord_uri *u, int consumers, bool claim, bool shared, int64_t ms,
                  raw_result *out);
} raw_client;

#ifdef COORD_WITH_ZOOKEEPER
extern const raw_client raw_zk_client;
#endif
#ifdef COORD_WITH_ETCD
extern const raw_client raw_etcd_client;
#endif

/* A URI time parameter, or its default when the URI leaves it out (0). */
int ms_or(int v, int dflt);

/* What the raw bound does: a lock cycle or a counter add. */
typedef enum raw_kind {
    RAW_LOCK,
    RAW_COUNTER,
    RAW_SEMAPHORE,
    RAW_KV_PUT,
    RAW_KV_GET,
    RAW_KV_TXN
} raw_kind;

/* One slice of `ms` of the raw bound for `backend`, added to out->r; false (out->err set) when
 * it could not be measured. */
bool raw_slice(const bench_opts *o, const char *backend, raw_kind kind, int64_t ms,
               raw_result *out);
/* `threads` bare writers at once, each doing the raw counter bound's write on a key of its own:
 * the server's ceiling for the sharded counter. */
bool raw_parallel_counter(const bench_opts *o, const char *backend, int threads, int64_t ms,
                          raw_result *out);
/* The contended lock scenario's raw bound. */
bool raw_contended(const bench_opts *o, const char *backend, int threads, int64_t ms,
                   raw_result *out);
/* One slice of `threads` bare readers on one read-write lock (raw_client.reader), added to
 * out->r. */
bool raw_readers(const bench_opts *o, const char *backend, int threads, int64_t ms,
                 raw_result *out);
/* The mixed read-write lock scenario's raw bound (raw_client.mixed). */
bool raw_mixed(const bench_opts *o, const char *backend, int threads, int64_t ms, raw_result *out);
/* The kv watch's raw bound (raw_client.watch), added to out->r. */
bool raw_watch(const bench_opts *o, const char *backend, int64_t ms, raw_result *out);
/* The queue's raw bound (raw_client.queue), added to out->r. */
bool raw_queue(const bench_opts *o, const char *backend, int consumers, bool claim, int64_t ms,
               raw_result *out);
/* One slice of the election hand-off's raw bound (raw_client.election). */
bool raw_election(const bench_opts *o, const char *backend, int threads, int64_t ms,
                  raw_result *out);

/*
 * The uncontended scenario and its raw bound run interleaved in raw_slices(o) slices each (raw
 * unc | unc raw | raw unc ...), --seconds in all for each, so that a change of background load
 * on the machine weighs on both alike: for k in 0 .. 2 * raw_slices(o) - 1, whether turn k is
 * the raw bound's, and its length in *ms.
 */
bool raw_turn(const bench_opts *o, int k, int64_t *ms);
/* Slices of each side: two a second of --seconds (at least 3), so that a stall of the servers
 * (a JVM pause, a slow fsync) lands in a short slice of one side, not in a third of it. */
int raw_slices(const bench_opts *o);

/* ---------- the queue mode's feed ---------- */

/*
 * The one producer of a queue scenario (coord's or the raw bound's) keeps at most QUEUE_BACKLOG
 * items ahead of the consumers, so they always find work and the queue stays short (its listings
 * cost the same all along). Items are "item-<n>", n from 0 in order of puts; a consumer that
 * gets an item seen before fails the run (a take is at most once, an acked claim gone).
 */
#define FEED_TRYING 16 /* consumers of one bound trying items at once, at most */
#define FEED_DONE 256  /* the taken items a consumer may still find in its listing */
typedef struct bench_feed {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t produced, consumed;
    unsigned char *seen; /* one byte an item number below `cap` */
    size_t cap;
    /* the raw bounds' pass-over (feed_try) */
    char trying[FEED_TRYING][64], done[FEED_DONE][64];
    uint64_t ndone;
} bench_feed;

int feed_init(bench_feed *f);
void feed_destroy(bench_feed *f);
/* The producer: wait until fewer than QUEUE_BACKLOG items are ahead (or `t` is to stop: false),
 * then the next item's bytes into `buf`, returning their length. */
bool feed_room(bench_feed *f, bench_thread *t);
size_t feed_next(bench_feed *f, char *buf, size_t cap);
/* After the producer's put. */
void feed_put(bench_feed *f);
/* A consumer got an item: 0, or -1 with `t` failed when it was seen before or is not ours. */
int feed_got(bench_feed *f, bench_thread *t, const void *data, size_t len);

/*
 * The raw bounds' bare consumers tell each other what coord's consumers of one client do
 * (lib/workqueue.c): the items one of them is trying, which the others pass over, and the ones
 * taken since a listing began, which it may still show. Without it they race for the head, and
 * the bound would not make coord's requests. feed_since before a listing; feed_try for an item
 * of it (by name): a slot, or -1 to pass the item over; feed_tried(slot) when the try ends.
 */
uint64_t feed_since(bench_feed *f);
int feed_try(bench_feed *f, uint64_t since, const char *name);
void feed_tried(bench_feed *f, int slot, bool taken);

/* ---------- the etcd watch paths (--watch-paths) ---------- */

/* The watch=http and watch=ws runs of --watch-paths alternate in this many slices each. */
#define WATCH_PATH_SLICES 3
/* `uri` with the query parameter `param` ("watch=ws") appended after '?' or '&'; NULL when out
 * of memory (printed). The caller frees it. */
char *uri_with_param(const char *uri, const char *param);
/* Turn k (0 .. 2 * WATCH_PATH_SLICES - 1) of --watch-paths: whether it is watch=ws's (else
 * watch=http's), in the order http ws | ws http | http ws, so that a change of background load
 * weighs on both paths alike. */
bool watch_turn_ws(int k);

/* ---------- output ---------- */

/* A client on --uri for a mode; NULL after printing why. */
coord_client *bench_connect(const bench_opts *o);

double ratio(double a, double b);
/* The URI as printed: credentials ("user:password@") replaced by "***@". */
const char *shown_uri(const char *uri, char *buf, size_t cap);
/* `s` as a JSON string on stdout. */
void json_str(const char *s);
/* The value of a JSON line's "raw" member and what follows it: the raw bound's result (written
 * by the mode's `emit`), its method and `ratio_name` (the figure over the bound), or null with the
 * reason when it was not measured. */
void json_raw(const raw_result *raw, void (*emit)(const result *), const char *ratio_name,
              double ratio);
const char *met(bool ok);

/* ---------- modes ---------- */

int mode_lock(const bench_opts *o);
int mode_counter(const bench_opts *o);
int mode_ring(const bench_opts *o);
int mode_election(const bench_opts *o);
int mode_semaphore(const bench_opts *o);
int mode_rwlock(const bench_opts *o);
int mode_kv(const bench_opts *o);
int mode_queue(const bench_opts *o);
int mode_loop(const bench_opts *o);

#endif
