/*
 * coord-bench counter: coord_counter_add in the uncontended, contended and sharded scenarios,
 * beside the raw bounds of the same run (bench.c tells how), each scenario's counter checked
 * for lost or doubled adds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COUNTER_SHARDS 8 /* shards of the "sharded" scenario */
#define TARGET_SHARDED_OVER_CONTENDED 3.0

typedef struct counter_run {
    coord_client *c;     /* shared by every thread, unless `own_uri` */
    const char *own_uri; /* --client-per-thread: each thread opens its own client (session) */
    const char *name;
    unsigned shards;
} counter_run;

typedef struct counter_worker {
    bench_thread t; /* t.cycles: successful timed adds */
    counter_run *run;
    uint64_t warm;   /* successful warm-up adds */
    uint64_t failed; /* failed adds: applied or not, unknown */
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

static void *counter_worker_main(void *arg) {
    counter_worker *w = arg;
    counter_run *run = w->run;
    coord_counter_options co = COORD_COUNTER_OPTIONS_INIT;
    co.shards = run->shards;
    coord_counter *k = NULL;
    coord_client *own = NULL;
    int rc = run->own_uri ? coord_client_open(&own, run->own_uri, NULL) : 0;
    if (rc) bench_fail_rc(&w->t, rc, "coord_client_open");
    if (!rc && (rc = coord_counter_new(&k, own ? own : run->c, run->name, &co)))
        bench_fail_rc(&w->t, rc, "coord_counter_new");
    /* Warm-up add: the key (and its parents) made, the handle's version cache filled. */
    if (!rc) {
        rc = coord_counter_add(k, 1, NULL);
        if (rc) {
            w->failed++;
            bench_fail_rc(&w->t, rc, "add (warm-up)");
        } else {
            w->warm++;
        }
    }
    if (bench_ready(&w->t)) {
        while (bench_going(&w->t)) {
            int64_t t0 = now_ns();
            rc = coord_counter_add(k, 1, NULL);
            int64_t t1 = now_ns();
            if (rc) {
                w->failed++;
                bench_fail_rc(&w->t, rc, "add");
                break;
            }
            if (bench_sample(&w->t, t1 - t0)) break;
        }
    }
    coord_counter_free(k);
    coord_client_close(own);
    return NULL;
}

/* Run one slice of `ms` milliseconds of a counter scenario, adding to `cr`; 0, or -1 after
 * printing why. */
static int counter_scenario(coord_client *c, const char *own_uri, counter_result *cr, int64_t ms) {
    int T = cr->r.threads;
    counter_run run = {.c = c, .own_uri = own_uri, .name = cr->counter, .shards = cr->shards};
    counter_worker *ws = calloc((size_t)T, sizeof *ws);
    if (!ws) {
        fprintf(stderr, "coord-bench: out of memory\n");
        return -1;
    }
    for (int i = 0; i < T; i++)
        ws[i].run = &run;
    int rc =
        bench_run_threads(ws, sizeof *ws, T, counter_worker_main, ms, NULL, NULL, &cr->r, NULL, 0);
    for (int i = 0; i < T; i++) {
        cr->ok += ws[i].t.cycles + ws[i].warm;
        cr->failed += ws[i].failed;
    }
    free(ws);
    return rc;
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

int mode_counter(const bench_opts *o) {
    coord_client *c = bench_connect(o);
    if (!c) return 1;
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

    raw_result rawr = {.r = {.name = "raw", .threads = 1}};
    bool raw_ok = true;
    for (int k = 0; k < 2 * raw_slices(o); k++) {
        int64_t ms;
        if (raw_turn(o, k, &ms))
            raw_ok = raw_ok && raw_slice(o, backend, RAW_COUNTER, ms, &rawr);
        else if (counter_scenario(c, own_uri, &cs[0], ms))
            failed = 1;
    }
    rawr.ran = raw_ok && rawr.r.slices > 0;
    int64_t total_ms = (int64_t)o->seconds * 1000;
    counter_result raw = {.r = rawr.r, .shards = 1};
    for (int i = 1; i < 3; i++)
        if (counter_scenario(c, own_uri, &cs[i], total_ms)) failed = 1;
    /* The server's ceiling for the sharded scenario, right after it. */
    raw_result rawpr = {.r = {.name = "raw-keys", .threads = DEFAULT_THREADS}};
    raw_parallel_counter(o, backend, DEFAULT_THREADS, total_ms, &rawpr);
    counter_result rawp = {.r = rawpr.r, .shards = COUNTER_SHARDS};
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
        printf("(uncontended and raw measured interleaved in %d slices each)\n", raw_slices(o));
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
