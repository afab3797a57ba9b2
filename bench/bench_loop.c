/*
 * coord-bench loop: loop mode (coord_options.loop) driven from one thread with poll(2) on
 * coord_client_fd + coord_client_process, against the blocking API in the same run (bench.c
 * tells how): counter adds with 1, 8 and 64 in flight on one client, and lock hand-offs among 64
 * async waiters on one client.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOOP_WAITERS 64  /* async lock waiters, a handle each, on the loop client */
#define LOOP_MIN_OPS 200 /* the least adds or hand-offs a loop measurement makes */
#define LOOP_ADD_SCALE 4 /* an in-flight level of N makes min(N, 4) x the blocking slice's adds */
#define TARGET_ADDS_ZK 4.0
#define TARGET_ADDS_ETCD 2.0
#define TARGET_HANDOFFS 0.9

static const int in_flight[] = {1, 8, 64};
#define LEVELS ((int)(sizeof in_flight / sizeof *in_flight))

/* ---------- the loop ---------- */

/*
 * Poll the loop client's descriptor and run coord_client_process until *pending is 0 (every
 * done of the measurement has run). 0, or -1 with `err` set when the deadline passed or process
 * failed.
 */
static int spin(coord_client *c, const int *pending, int64_t deadline_ns, char *err, size_t cap) {
    while (*pending > 0) {
        int64_t left = (deadline_ns - now_ns()) / 1000000;
        if (left <= 0) {
            snprintf(err, cap, "%d operations still pending at the deadline", *pending);
            return -1;
        }
        struct pollfd p = {.fd = coord_client_fd(c), .events = POLLIN};
        int t = coord_client_timeout(c);
        if (t < 0 || t > left) t = (int)left;
        if (poll(&p, 1, t) < 0 && errno != EINTR) {
            snprintf(err, cap, "poll: %s", strerror(errno));
            return -1;
        }
        int n = coord_client_process(c);
        if (n < 0) {
            snprintf(err, cap, "coord_client_process: %s: %s", coord_strerror(n),
                     coord_last_error());
            return -1;
        }
    }
    return 0;
}

/* A loop measurement's deadline: far beyond what its total should take. */
static int64_t loop_deadline(int64_t ms) {
    return now_ns() + (20 * ms + 10000) * 1000000;
}

/* ---------- counter adds ---------- */

typedef struct add_run add_run;

typedef struct add_slot {
    add_run *run;
    int64_t t0; /* when its add started */
} add_slot;

struct add_run {
    coord_counter *k;
    uint64_t total, started;
    int pending; /* adds in flight */
    uint64_t ok, failed;
    int64_t end_ns; /* the last done */
    samples lat;
    char err[600];
};

static void add_done(int rc, int64_t value, void *payload);

static void add_start(add_slot *s) {
    add_run *run = s->run;
    s->t0 = now_ns();
    int rc = coord_counter_add_async(run->k, 1, add_done, s);
    if (rc) {
        snprintf(run->err, sizeof run->err, "coord_counter_add_async: %s: %s", coord_strerror(rc),
                 coord_last_error());
        return;
    }
    run->started++;
    run->pending++;
}

static void add_done(int rc, int64_t value, void *payload) {
    (void)value;
    add_slot *s = payload;
    add_run *run = s->run;
    int64_t t1 = now_ns();
    run->pending--;
    run->end_ns = t1;
    if (rc) {
        run->failed++;
        if (!run->err[0])
            snprintf(run->err, sizeof run->err, "add: %s: %s", coord_strerror(rc),
                     coord_last_error());
        return;
    }
    run->ok++;
    if (samples_add(&run->lat, t1 - s->t0) && !run->err[0])
        snprintf(run->err, sizeof run->err, "latency samples: out of memory");
    /* the next add on this slot: N stay in flight until the total is reached */
    if (!run->err[0] && run->started < run->total) add_start(s);
}

/*
 * `n` adds in flight on `k` (the loop client's) until `total` have been made, added to `r`
 * (one slice); successful and failed adds to *ok and *failed. 0, or -1 with `err` set.
 */
static int loop_adds(coord_client *c, coord_counter *k, int n, uint64_t total, int64_t ms,
                     result *r, uint64_t *ok, uint64_t *failed, char *err, size_t cap) {
    add_slot *slots = calloc((size_t)n, sizeof *slots);
    if (!slots) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    add_run run = {.k = k, .total = total};
    int64_t t0 = now_ns();
    for (int i = 0; i < n && !run.err[0] && run.started < total; i++) {
        slots[i].run = &run;
        add_start(&slots[i]);
    }
    int rc = spin(c, &run.pending, loop_deadline(ms), err, cap);
    if (!rc && run.err[0]) {
        snprintf(err, cap, "%s", run.err);
        rc = -1;
    }
    if (!rc) {
        r->cycles += run.ok;
        r->elapsed_ns += run.end_ns - t0;
        r->slices++;
        if (samples_append(&r->lat, &run.lat)) {
            snprintf(err, cap, "out of memory");
            rc = -1;
        }
    }
    *ok += run.ok;
    *failed += run.failed;
    free(run.lat.v);
    free(slots);
    return rc;
}

/* The blocking API's sequential add: one thread of a non-loop client, as the counter mode's
 * uncontended scenario. */
typedef struct seq_worker {
    bench_thread t;
    coord_counter *k;
} seq_worker;

static void *seq_worker_main(void *arg) {
    seq_worker *w = arg;
    if (bench_ready(&w->t)) {
        while (bench_going(&w->t)) {
            int64_t t0 = now_ns();
            int rc = coord_counter_add(w->k, 1, NULL);
            int64_t t1 = now_ns();
            if (rc) {
                bench_fail_rc(&w->t, rc, "add");
                break;
            }
            if (bench_sample(&w->t, t1 - t0)) break;
        }
    }
    return NULL;
}

/* ---------- lock hand-offs ---------- */

typedef struct hand_run hand_run;

enum { W_WAITING, W_RELEASING, W_IDLE };

typedef struct waiter {
    hand_run *run;
    coord_lock *l;
    int state;
} waiter;

struct hand_run {
    waiter w[LOOP_WAITERS];
    uint64_t acquired;     /* acquires done */
    uint64_t warm, target; /* timed from acquire `warm` to acquire `warm + target` */
    int64_t t0, t1;        /* when those ran */
    int64_t release_ns;    /* when the latest release started */
    int pending;           /* dones to come */
    bool stopping, canceled;
    samples hand;
    char err[600];
};

static void on_acquired(int rc, void *payload);

static void hand_fail(hand_run *run, const char *what, int rc) {
    if (!run->err[0])
        snprintf(run->err, sizeof run->err, "%s: %s: %s", what, coord_strerror(rc),
                 coord_last_error());
    run->stopping = true;
}

/* Stop: end the waits in flight (their done runs with COORD_ECANCELED); holds and releases in
 * flight end by themselves. */
static void hand_stop(hand_run *run) {
    run->stopping = true;
    if (run->canceled) return;
    run->canceled = true;
    for (int i = 0; i < LOOP_WAITERS; i++)
        if (run->w[i].state == W_WAITING) coord_lock_cancel(run->w[i].l);
}

static void on_released(int rc, void *payload) {
    waiter *w = payload;
    hand_run *run = w->run;
    run->pending--;
    w->state = W_IDLE;
    if (rc) {
        hand_fail(run, "release", rc);
        hand_stop(run);
        return;
    }
    if (run->stopping) return;
    if ((rc = coord_lock_acquire_async(w->l, -1, on_acquired, w))) {
        hand_fail(run, "coord_lock_acquire_async", rc);
        hand_stop(run);
        return;
    }
    w->state = W_WAITING;
    run->pending++;
}

static void on_acquired(int rc, void *payload) {
    waiter *w = payload;
    hand_run *run = w->run;
    int64_t t = now_ns();
    run->pending--;
    w->state = W_IDLE;
    if (rc) {
        if (!(run->stopping && rc == COORD_ECANCELED)) {
            hand_fail(run, "acquire", rc);
            hand_stop(run);
        }
        return;
    }
    if (!run->stopping) {
        run->acquired++;
        if (run->acquired == run->warm) run->t0 = t;
        if (run->acquired > run->warm && samples_add(&run->hand, t - run->release_ns)) {
            snprintf(run->err, sizeof run->err, "latency samples: out of memory");
            hand_stop(run);
        }
        if (run->acquired == run->warm + run->target) {
            run->t1 = t;
            hand_stop(run);
        }
    }
    run->release_ns = now_ns();
    if ((rc = coord_lock_release_async(w->l, on_released, w))) {
        hand_fail(run, "coord_lock_release_async", rc);
        hand_stop(run);
        return;
    }
    w->state = W_RELEASING;
    run->pending++;
}

/*
 * LOOP_WAITERS handles of one lock on the loop client, each acquiring asynchronously, releasing
 * as soon as its acquire's done runs and acquiring again once the release's done runs; timed
 * over `target` hand-offs after LOOP_WAITERS untimed ones (every handle has queued once), added
 * to `r` (one slice). 0, or -1 with `err` set.
 */
static int loop_handoffs(coord_client *c, const char *name, uint64_t target, int64_t ms, result *r,
                         char *err, size_t cap) {
    hand_run *run = calloc(1, sizeof *run);
    if (!run) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    run->warm = LOOP_WAITERS;
    run->target = target;
    int rc = 0;
    for (int i = 0; i < LOOP_WAITERS && !rc; i++) {
        run->w[i] = (waiter){.run = run, .state = W_IDLE};
        if ((rc = coord_lock_new(&run->w[i].l, c, name))) hand_fail(run, "coord_lock_new", rc);
    }
    for (int i = 0; i < LOOP_WAITERS && !rc; i++) {
        if ((rc = coord_lock_acquire_async(run->w[i].l, -1, on_acquired, &run->w[i]))) {
            hand_fail(run, "coord_lock_acquire_async", rc);
            hand_stop(run);
        } else {
            run->w[i].state = W_WAITING;
            run->pending++;
        }
    }
    int ret = spin(c, &run->pending, loop_deadline(ms), err, cap);
    if (!ret && run->err[0]) {
        snprintf(err, cap, "%s", run->err);
        ret = -1;
    }
    if (!ret) {
        r->handoffs += run->target;
        r->cycles += run->target;
        r->elapsed_ns += run->t1 - run->t0;
        r->slices++;
        if (samples_append(&r->hand, &run->hand)) {
            snprintf(err, cap, "out of memory");
            ret = -1;
        }
    }
    for (int i = 0; i < LOOP_WAITERS; i++)
        coord_lock_free(run->w[i].l);
    free(run->hand.v);
    free(run);
    return ret;
}

/* The blocking API's contended hand-off, as the lock mode's contended scenario: DEFAULT_THREADS
 * threads on one non-loop client, a coord_lock handle each on one lock, acquire(-1) + release;
 * every cycle is a hand-off. */
typedef struct contend_worker {
    bench_thread t;
    coord_client *c;
    const char *name;
} contend_worker;

static void *contend_worker_main(void *arg) {
    contend_worker *w = arg;
    coord_lock *l = NULL;
    int rc = coord_lock_new(&l, w->c, w->name);
    if (rc) bench_fail_rc(&w->t, rc, "coord_lock_new");
    /* warm-up cycle */
    if (!rc && (rc = coord_lock_acquire(l, -1))) bench_fail_rc(&w->t, rc, "acquire (warm-up)");
    if (!rc && (rc = coord_lock_release(l))) bench_fail_rc(&w->t, rc, "release (warm-up)");
    if (bench_ready(&w->t)) {
        while (bench_going(&w->t)) {
            int64_t t0 = now_ns();
            rc = coord_lock_acquire(l, -1);
            int64_t t1 = now_ns();
            if (rc) {
                bench_fail_rc(&w->t, rc, "acquire");
                break;
            }
            if (bench_sample(&w->t, t1 - t0)) break;
            if ((rc = coord_lock_release(l))) {
                bench_fail_rc(&w->t, rc, "release");
                break;
            }
        }
    }
    coord_lock_free(l);
    return NULL;
}

/* ---------- output ---------- */

static void json_row(const result *r) {
    printf("{\"name\":");
    json_str(r->name);
    printf(",\"in_flight\":%d,\"ops\":%" PRIu64 ",\"elapsed_s\":%.3f,\"ops_per_s\":%.1f",
           r->threads, r->cycles, r->elapsed_s, r->rate);
    if (r->lat.n) printf(",\"p50_ms\":%.3f,\"p99_ms\":%.3f", r->p50_ms, r->p99_ms);
    if (r->hand.n)
        printf(",\"handoff_p50_ms\":%.3f,\"handoff_p99_ms\":%.3f", r->handoff_p50_ms,
               r->handoff_p99_ms);
    printf(",\"slices\":%d}", r->slices);
}

static void print_row(const result *r, const char *what) {
    bool hand = r->hand.n && !r->lat.n;
    printf("%-14s %9d %9" PRIu64 " %10.1f %10.3f %10.3f   %s\n", r->name, r->threads, r->cycles,
           r->rate, hand ? r->handoff_p50_ms : r->p50_ms, hand ? r->handoff_p99_ms : r->p99_ms,
           what);
}

/* ---------- the mode ---------- */

/* The rate of `r` so far, per second; 0 before its first slice. */
static double rate_so_far(const result *r) {
    return r->elapsed_ns > 0 ? (double)r->cycles * 1e9 / (double)r->elapsed_ns : 0;
}

/* How many operations the loop turn of `ms` of `own` makes: what its own rate so far makes in
 * that time or, on its first turn, what the blocking rate so far makes times `scale`; at least
 * LOOP_MIN_OPS. */
static uint64_t loop_total(const result *own, const result *blocking, int64_t ms, int scale) {
    double n = own->slices ? rate_so_far(own) * (double)ms / 1000
                           : rate_so_far(blocking) * (double)ms / 1000 * scale;
    return n < LOOP_MIN_OPS ? LOOP_MIN_OPS : (uint64_t)n;
}

int mode_loop(const bench_opts *o) {
    coord_client *bc = bench_connect(o), *lc = NULL;
    if (!bc) return 1;
    coord_options lo = COORD_OPTIONS_INIT;
    lo.loop = true;
    int rc = coord_client_open(&lc, o->uri, &lo);
    if (rc) {
        fprintf(stderr, "coord-bench: connect (loop mode): %s: %s\n", coord_strerror(rc),
                coord_last_error());
        coord_client_close(bc);
        return 1;
    }
    const char *backend = coord_client_backend(bc);
    bool zk = !strcmp(backend, "zookeeper");
    double target_adds = zk ? TARGET_ADDS_ZK : TARGET_ADDS_ETCD;
    char seq_name[96], add_name[96], lock_name[3][96];
    snprintf(seq_name, sizeof seq_name, "bench-%ld-loop-seq", (long)getpid());
    snprintf(add_name, sizeof add_name, "bench-%ld-loop-adds", (long)getpid());
    snprintf(lock_name[0], sizeof lock_name[0], "bench-%ld-loop-contended", (long)getpid());
    snprintf(lock_name[1], sizeof lock_name[1], "bench-%ld-loop-waiters", (long)getpid());
    snprintf(lock_name[2], sizeof lock_name[2], "bench-%ld-loop-contended-64", (long)getpid());

    result seq = {.name = "blocking-seq", .threads = 1};
    result adds[LEVELS];
    char add_names[LEVELS][24];
    for (int i = 0; i < LEVELS; i++) {
        snprintf(add_names[i], sizeof add_names[i], "loop-%d", in_flight[i]);
        adds[i] = (result){.name = add_names[i], .threads = in_flight[i]};
    }
    result con = {.name = "blocking-8", .threads = DEFAULT_THREADS, .locks = 1};
    result con64 = {.name = "blocking-64", .threads = LOOP_WAITERS, .locks = 1};
    result hand = {.name = "loop-waiters", .threads = LOOP_WAITERS, .locks = 1};
    coord_counter *sk = NULL, *lk = NULL, *rk = NULL; /* rk: lk's counter read on bc */
    uint64_t add_ok = 0, add_failed = 0;
    int64_t before = 0, after = 0;
    bool exact = false;
    char err[600] = "";
    int failed = 0;

    if ((rc = coord_counter_new(&sk, bc, seq_name, NULL)) ||
        (rc = coord_counter_new(&lk, lc, add_name, NULL)) ||
        (rc = coord_counter_new(&rk, bc, add_name, NULL))) {
        fprintf(stderr, "coord-bench: coord_counter_new: %s: %s\n", coord_strerror(rc),
                coord_last_error());
        failed = 1;
        goto out;
    }
    /* warm-ups: the keys made, the handles' caches filled, the loop client's threads started */
    if ((rc = coord_counter_add(sk, 1, NULL))) {
        fprintf(stderr, "coord-bench: add (warm-up): %s: %s\n", coord_strerror(rc),
                coord_last_error());
        failed = 1;
        goto out;
    }
    {
        result warm = {.name = "warm-up"};
        if (loop_adds(lc, lk, 1, 1, 1000, &warm, &add_ok, &add_failed, err, sizeof err)) {
            fprintf(stderr, "coord-bench: async add (warm-up): %s\n", err);
            failed = 1;
        }
        result_free(&warm);
        if (failed) goto out;
    }
    if ((rc = coord_counter_get(rk, &before))) {
        fprintf(stderr, "coord-bench: read %s: %s: %s\n", add_name, coord_strerror(rc),
                coord_last_error());
        failed = 1;
        goto out;
    }
    before -= (int64_t)add_ok; /* the warm-up add is checked too */

    if (!o->json)
        printf("coord-bench loop: backend %s, prefix %s, %d s per blocking scenario in %d "
               "slices, each interleaved with the loop scenarios\n",
               backend, coord_client_prefix(bc), o->seconds, raw_slices(o));
    /* Blocking and loop turns interleaved as raw and uncontended are (bench.c, raw_turn). A
     * loop turn makes a fixed number of operations, from the blocking rate measured so far. */
    for (int k = 0; k < 2 * raw_slices(o) && !failed; k++) {
        int64_t ms;
        if (raw_turn(o, k, &ms)) { /* turn 0 is one: it sets the loop turns' totals */
            seq_worker sw = {.k = sk};
            if (bench_run_threads(&sw, sizeof sw, 1, seq_worker_main, ms, NULL, NULL, &seq, NULL,
                                  0))
                failed = 1;
            contend_worker cw[LOOP_WAITERS];
            for (int i = 0; i < LOOP_WAITERS; i++)
                cw[i] = (contend_worker){.c = bc, .name = lock_name[0]};
            if (!failed && bench_run_threads(cw, sizeof *cw, DEFAULT_THREADS, contend_worker_main,
                                             ms, NULL, NULL, &con, NULL, 0))
                failed = 1;
            /* the same queue's length as loop-waiters: a thread per waiter */
            for (int i = 0; i < LOOP_WAITERS; i++)
                cw[i] = (contend_worker){.c = bc, .name = lock_name[2]};
            if (!failed && bench_run_threads(cw, sizeof *cw, LOOP_WAITERS, contend_worker_main, ms,
                                             NULL, NULL, &con64, NULL, 0))
                failed = 1;
            continue;
        }
        for (int i = 0; i < LEVELS && !failed; i++) {
            int scale = in_flight[i] < LOOP_ADD_SCALE ? in_flight[i] : LOOP_ADD_SCALE;
            if (loop_adds(lc, lk, in_flight[i], loop_total(&adds[i], &seq, ms, scale), ms, &adds[i],
                          &add_ok, &add_failed, err, sizeof err)) {
                fprintf(stderr, "coord-bench: %s: %s\n", adds[i].name, err);
                failed = 1;
            }
        }
        if (!failed && loop_handoffs(lc, lock_name[1], loop_total(&hand, &con64, ms, 1), ms, &hand,
                                     err, sizeof err)) {
            fprintf(stderr, "coord-bench: %s: %s\n", hand.name, err);
            failed = 1;
        }
    }
    if ((rc = coord_counter_get(rk, &after)))
        fprintf(stderr, "coord-bench: read %s: %s: %s\n", add_name, coord_strerror(rc),
                coord_last_error());
    exact = !rc && !add_failed && after - before == (int64_t)add_ok;
    if (!exact) failed = 1;

    result_finish(&seq);
    result_finish(&con);
    result_finish(&con64);
    result_finish(&hand);
    for (int i = 0; i < LEVELS; i++)
        result_finish(&adds[i]);
    double add_ratio = ratio(adds[LEVELS - 1].rate, seq.rate);
    double hand_ratio = ratio(hand.rate, con64.rate), hand_ratio8 = ratio(hand.rate, con.rate);
    bool met_adds = add_ratio >= target_adds, met_hand = hand_ratio >= TARGET_HANDOFFS;
    if (o->json) {
        printf("{\"mode\":\"loop\",\"backend\":");
        json_str(backend);
        printf(",\"seconds\":%d,\"slices\":%d,\"counter\":{\"blocking\":", o->seconds,
               raw_slices(o));
        json_row(&seq);
        printf(",\"loop\":[");
        for (int i = 0; i < LEVELS; i++) {
            if (i) putchar(',');
            json_row(&adds[i]);
        }
        printf("],\"successful_adds\":%" PRIu64 ",\"failed_adds\":%" PRIu64
               ",\"value_before\":%" PRId64 ",\"value_after\":%" PRId64 ",\"exact\":%s",
               add_ok, add_failed, before, after, exact ? "true" : "false");
        printf(
            ",\"loop_%d_over_blocking\":%.3f,\"target\":%.1f,\"met\":%s},\"lock\":{\"blocking\":",
            in_flight[LEVELS - 1], add_ratio, target_adds, met_adds ? "true" : "false");
        json_row(&con64);
        printf(",\"blocking_8\":");
        json_row(&con);
        printf(",\"loop\":");
        json_row(&hand);
        printf(",\"loop_over_blocking\":%.3f,\"target\":%.1f,\"met\":%s,"
               "\"loop_over_blocking_8\":%.3f},\"ok\":%s}\n",
               hand_ratio, TARGET_HANDOFFS, met_hand ? "true" : "false", hand_ratio8,
               failed ? "false" : "true");
        goto out;
    }
    printf("%-14s %9s %9s %10s %10s %10s\n", "scenario", "in flight", "ops", "ops/s", "p50 ms",
           "p99 ms");
    print_row(&seq, "blocking coord_counter_add, 1 thread (non-loop client)");
    for (int i = 0; i < LEVELS; i++)
        print_row(&adds[i], "coord_counter_add_async, 1 loop thread");
    printf("loop-%d / blocking-seq = %.2f   (adds/s; target >= %.1f on %s)  %s\n",
           in_flight[LEVELS - 1], add_ratio, target_adds, backend, met(met_adds));
    printf("loop-1 / blocking-seq  = %.2f   loop-8 / blocking-seq = %.2f\n",
           ratio(adds[0].rate, seq.rate), ratio(adds[1].rate, seq.rate));
    printf("counter %s went from %" PRId64 " to %" PRId64 ", successful async adds %" PRIu64
           " (1 warm-up), failed %" PRIu64 ": %s\n",
           add_name, before, after, add_ok, add_failed, exact ? "exact" : "MISMATCH");
    print_row(&con, "blocking acquire+release, 8 threads, a handle each (lock mode's contended; "
                    "acquire latency)");
    print_row(&con64, "the same with 64 threads: loop-waiters' queue length (acquire latency)");
    print_row(&hand, "async acquire+release, 64 handles, 1 loop thread (hand-off latency)");
    printf("loop-waiters / blocking-64 = %.2f   (hand-offs/s, 64 waiters each; target >= %.1f)  "
           "%s\n",
           hand_ratio, TARGET_HANDOFFS, met(met_hand));
    printf("loop-waiters / blocking-8  = %.2f   blocking-64 / blocking-8 = %.2f   (the queue's "
           "length: every look lists it)\n",
           hand_ratio8, ratio(con64.rate, con.rate));
    if (failed && exact)
        printf("a scenario failed (above): the figures cover the turns before it\n");
out:
    coord_counter_free(sk);
    coord_counter_free(lk);
    coord_counter_free(rk);
    coord_client_close(lc);
    coord_client_close(bc);
    result_free(&seq);
    result_free(&con);
    result_free(&con64);
    result_free(&hand);
    for (int i = 0; i < LEVELS; i++)
        result_free(&adds[i]);
    return failed;
}
