/*
 * coord-bench queue: items/s of 1 and 4 consumers of a work queue fed by 1 producer, taking or
 * claiming and acking, each beside the raw bound of the same requests in the same run (bench.c
 * tells how).
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

#define TARGET_QUEUE_OVER_RAW 0.8
#define QUEUE_MANY 4      /* the consumers of the second scenario of each kind */
#define QUEUE_WAIT_MS 200 /* a consumer's wait for an item, between looks at the deadline */

/* What the threads of one scenario share. */
typedef struct q_run {
    const bench_opts *o;
    coord_client *shared; /* the consumers'; NULL with --client-per-thread */
    const char *name;
    bool claim;
    bench_feed feed;
} q_run;

/* Thread 0 produces, the others consume. */
typedef struct q_worker {
    bench_thread t;
    q_run *run;
} q_worker;

static void q_produce(q_worker *w, coord_queue *q) {
    char buf[32];
    if (!bench_ready(&w->t)) return;
    while (feed_room(&w->run->feed, &w->t)) {
        size_t len = feed_next(&w->run->feed, buf, sizeof buf);
        int rc = coord_queue_put(q, buf, len);
        if (rc) {
            bench_fail_rc(&w->t, rc, "coord_queue_put");
            return;
        }
        feed_put(&w->run->feed);
    }
}

/* One item: 1 when got (its latency into *lat), 0 when none came in QUEUE_WAIT_MS, -1 failed. */
static int q_consume(q_worker *w, coord_queue *q, int64_t *lat) {
    int64_t t0 = now_ns();
    void *data = NULL;
    size_t len = 0;
    coord_item *it = NULL;
    int rc = w->run->claim ? coord_queue_claim(q, &it, QUEUE_WAIT_MS)
                           : coord_queue_take(q, &data, &len, QUEUE_WAIT_MS);
    if (rc == COORD_ETIMEDOUT) return 0;
    if (rc) {
        bench_fail_rc(&w->t, rc, w->run->claim ? "coord_queue_claim" : "coord_queue_take");
        return -1;
    }
    int bad = 0;
    if (it) {
        const void *d = coord_item_data(it, &len);
        bad = feed_got(&w->run->feed, &w->t, d, len);
        rc = coord_item_ack(it);
        if (rc) {
            bench_fail_rc(&w->t, rc, "coord_item_ack");
            return -1;
        }
    } else {
        bad = feed_got(&w->run->feed, &w->t, data, len);
        free(data);
    }
    *lat = now_ns() - t0;
    return bad ? -1 : 1;
}

static void *q_worker_main(void *arg) {
    q_worker *w = arg;
    q_run *run = w->run;
    bool producer = w->t.idx == 0;
    coord_client *c = producer ? NULL : run->shared, *own = NULL;
    coord_queue *q = NULL;
    int rc = 0;
    if (!c) {
        rc = coord_client_open(&own, run->o->uri, NULL);
        if (rc)
            bench_fail_rc(&w->t, rc, "connect");
        else
            c = own;
    }
    if (!rc && (rc = coord_queue_new(&q, c, run->name)))
        bench_fail_rc(&w->t, rc, "coord_queue_new");
    if (producer) {
        q_produce(w, q);
    } else if (bench_ready(&w->t)) {
        int64_t lat;
        while (bench_going(&w->t)) {
            int got = q_consume(w, q, &lat);
            if (got < 0 || (got > 0 && bench_sample(&w->t, lat))) break;
        }
    }
    coord_queue_free(q);
    coord_client_close(own);
    return NULL;
}

/* Take what the scenario left in its queue (untimed). */
static void q_drain(coord_client *c, const char *name) {
    coord_queue *q = NULL;
    if (coord_queue_new(&q, c, name)) return;
    for (int i = 0; i < 10 * QUEUE_BACKLOG; i++) {
        void *data = NULL;
        size_t len;
        if (coord_queue_take(q, &data, &len, 0)) break;
        free(data);
    }
    coord_queue_free(q);
}

/* One scenario of `consumers` consumers for --seconds. 0, or -1 after printing why. */
static int q_scenario(const bench_opts *o, coord_client *shared, const char *name, bool claim,
                      result *r, int64_t ms) {
    int n = r->threads + 1;
    q_run run = {
        .o = o, .shared = o->client_per_thread ? NULL : shared, .name = name, .claim = claim};
    q_worker *ws = calloc((size_t)n, sizeof *ws);
    if (!ws || feed_init(&run.feed)) {
        free(ws);
        fprintf(stderr, "coord-bench: out of memory\n");
        return -1;
    }
    for (int i = 0; i < n; i++)
        ws[i].run = &run;
    int ret = bench_run_threads(ws, sizeof *ws, n, q_worker_main, ms, NULL, NULL, r, NULL, 0);
    feed_destroy(&run.feed);
    free(ws);
    q_drain(shared, name);
    return ret;
}

static void json_result(const result *r) {
    printf("{\"name\":");
    json_str(r->name);
    printf(",\"consumers\":%d,\"items\":%" PRIu64 ",\"elapsed_s\":%.3f,\"items_per_s\":%.1f,"
           "\"item_p50_ms\":%.3f,\"item_p99_ms\":%.3f}",
           r->threads, r->cycles, r->elapsed_s, r->rate, r->p50_ms, r->p99_ms);
}

static void print_row(const result *r) {
    printf("%-14s %9d %8" PRIu64 " %10.1f %11.3f %11.3f\n", r->name, r->threads, r->cycles, r->rate,
           r->p50_ms, r->p99_ms);
}

enum { Q_TAKE1, Q_TAKE4, Q_CLAIM1, Q_CLAIM4, Q_SCENARIOS };

int mode_queue(const bench_opts *o) {
    coord_client *c = bench_connect(o);
    if (!c) return 1;
    const char *backend = coord_client_backend(c);
    static const char *const names[Q_SCENARIOS] = {"take-1", "take-4", "claim-1", "claim-4"};
    static const char *const raw_names[Q_SCENARIOS] = {"raw-take-1", "raw-take-4", "raw-claim-1",
                                                       "raw-claim-4"};
    if (!o->json)
        printf("coord-bench queue: backend %s, prefix %s, %d s per scenario, 1 producer (a client "
               "of its own) at most %d items ahead, consumers' client %s\n",
               backend, coord_client_prefix(c), o->seconds, QUEUE_BACKLOG,
               o->client_per_thread ? "per-thread" : "shared (a coord_queue handle each)");
    result sc[Q_SCENARIOS];
    raw_result raw[Q_SCENARIOS];
    int failed = 0;
    for (int i = 0; i < Q_SCENARIOS; i++) {
        bool claim = i >= Q_CLAIM1;
        int consumers = i % 2 ? QUEUE_MANY : 1;
        sc[i] = (result){.name = names[i], .threads = consumers, .locks = 1};
        raw[i] = (raw_result){.r = {.name = raw_names[i], .threads = consumers, .locks = 1}};
        char qname[64];
        snprintf(qname, sizeof qname, "bench-%ld-%s", (long)getpid(), names[i]);
        /* interleaved with its raw bound in slices, as the other modes' (bench.c, raw_turn) */
        bool raw_ok = true;
        for (int k = 0; k < 2 * raw_slices(o) && !failed; k++) {
            int64_t ms;
            if (raw_turn(o, k, &ms))
                raw_ok = raw_ok && raw_queue(o, backend, consumers, claim, ms, &raw[i]);
            else if (q_scenario(o, c, qname, claim, &sc[i], ms))
                failed = 1;
        }
        raw[i].ran = raw_ok && raw[i].r.slices > 0;
    }
    coord_client_close(c);
    double rt[Q_SCENARIOS];
    bool ok[Q_SCENARIOS];
    for (int i = 0; i < Q_SCENARIOS; i++) {
        result_finish(&sc[i]);
        result_finish(&raw[i].r);
        rt[i] = raw[i].ran ? ratio(sc[i].rate, raw[i].r.rate) : 0;
        ok[i] = raw[i].ran && rt[i] >= TARGET_QUEUE_OVER_RAW;
    }
    double take41 = ratio(sc[Q_TAKE4].rate, sc[Q_TAKE1].rate);
    double claim41 = ratio(sc[Q_CLAIM4].rate, sc[Q_CLAIM1].rate);
    if (o->json) {
        printf("{\"mode\":\"queue\",\"backend\":");
        json_str(backend);
        printf(",\"seconds\":%d,\"backlog\":%d,\"client\":\"%s\",\"scenarios\":[", o->seconds,
               QUEUE_BACKLOG, o->client_per_thread ? "per-thread" : "shared");
        for (int i = 0; i < Q_SCENARIOS; i++) {
            if (i) putchar(',');
            json_result(&sc[i]);
        }
        printf("],\"raws\":[");
        for (int i = 0; i < Q_SCENARIOS; i++) {
            if (i) putchar(',');
            printf("{\"scenario\":\"%s\",\"raw\":", names[i]);
            json_raw(&raw[i], json_result, "over_raw", rt[i]);
            putchar('}');
        }
        printf("],\"take_4_over_1\":%.3f,\"claim_4_over_1\":%.3f,\"targets\":{\"over_raw\":%.1f,"
               "\"4_over_1\":1.0},\"targets_met\":{\"take_4_over_1\":%s,\"claim_4_over_1\":%s,"
               "\"take_4_over_raw\":%s,\"claim_4_over_raw\":%s},\"ok\":%s}\n",
               take41, claim41, TARGET_QUEUE_OVER_RAW, take41 >= 1.0 ? "true" : "false",
               claim41 >= 1.0 ? "true" : "false", ok[Q_TAKE4] ? "true" : "false",
               ok[Q_CLAIM4] ? "true" : "false", failed ? "false" : "true");
        goto out;
    }
    printf("%-14s %9s %8s %10s %11s %11s\n", "scenario", "consumers", "items", "items/s",
           "item p50 ms", "item p99 ms");
    for (int i = 0; i < Q_SCENARIOS; i++) {
        print_row(&sc[i]);
        if (raw[i].ran) print_row(&raw[i].r);
    }
    for (int i = 0; i < Q_SCENARIOS; i++) {
        if (raw[i].ran)
            printf("%-8s / raw = %.2f   (target >= %.1f: %s)\n", names[i], rt[i],
                   TARGET_QUEUE_OVER_RAW, met(ok[i]));
        else
            printf("%s: raw bound not measured: %s\n", names[i], raw[i].err);
    }
    for (int i = 0; i < Q_SCENARIOS; i += 2)
        if (raw[i].ran) printf("raw %s = %s\n", i ? "claim" : "take", raw[i].method);
    printf("take:  4 consumers / 1 = %.2f   (target >= 1.0: %s)\n", take41, met(take41 >= 1.0));
    printf("claim: 4 consumers / 1 = %.2f   (target >= 1.0: %s)\n", claim41, met(claim41 >= 1.0));
    printf("(every item came out once; each scenario and its raw bound interleaved in %d slices "
           "each)\n",
           raw_slices(o));
out:
    for (int i = 0; i < Q_SCENARIOS; i++) {
        result_free(&sc[i]);
        result_free(&raw[i].r);
    }
    return failed;
}
