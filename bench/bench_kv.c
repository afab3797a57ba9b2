/*
 * coord-bench kv: put, get and a 3-operation transaction of the key-value space, each beside the
 * raw bound of the same requests in the same run, and the watch's delivery latency beside the
 * bare client's watch (bench.c tells how).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TARGET_KV_OVER_RAW 0.9
#define WATCH_WAIT_MS 5000 /* a report later than this fails the run */

typedef enum kv_op { KV_PUT, KV_GET, KV_TXN, KV_OPS } kv_op;

static const char *const kv_names[KV_OPS] = {"put", "get", "txn"};
static const raw_kind kv_raw[KV_OPS] = {RAW_KV_PUT, RAW_KV_GET, RAW_KV_TXN};

/* The keys of the run: "bench-<pid>/a" (put, get, the txn's check), "…/b", "…/c" (the txn's
 * puts), "…/w" (the watch). */
typedef struct kv_keys {
    char a[64], b[64], c[64], w[64];
    int64_t a_version; /* the txn checks it */
} kv_keys;

typedef struct kv_worker {
    bench_thread t;
    coord_client *c;
    kv_keys *k;
    kv_op op;
} kv_worker;

static const char kv_value[KV_VALUE_LEN] = "coord-bench kv value, 64 bytes, the same in every put.";

static int kv_cycle(kv_worker *w, int64_t *lat) {
    int64_t t0 = now_ns();
    int rc;
    if (w->op == KV_PUT) {
        int64_t v;
        rc = coord_kv_put(w->c, w->k->a, kv_value, sizeof kv_value, -1, &v);
        if (rc)
            bench_fail_rc(&w->t, rc, "coord_kv_put");
        else
            w->k->a_version = v;
    } else if (w->op == KV_GET) {
        void *val = NULL;
        size_t len = 0;
        rc = coord_kv_get(w->c, w->k->a, &val, &len, NULL);
        free(val);
        if (rc) bench_fail_rc(&w->t, rc, "coord_kv_get");
    } else {
        coord_txn *t = NULL;
        rc = coord_txn_new(&t, w->c);
        if (!rc) rc = coord_txn_check(t, w->k->a, w->k->a_version);
        if (!rc) rc = coord_txn_put(t, w->k->b, kv_value, sizeof kv_value);
        if (!rc) rc = coord_txn_put(t, w->k->c, kv_value, sizeof kv_value);
        if (!rc) rc = coord_txn_commit(t);
        coord_txn_free(t);
        if (rc) bench_fail_rc(&w->t, rc, "coord_txn_commit");
    }
    *lat = now_ns() - t0;
    return rc ? -1 : 0;
}

static void *kv_worker_main(void *arg) {
    kv_worker *w = arg;
    int64_t lat;
    kv_cycle(w, &lat); /* warm-up */
    if (bench_ready(&w->t))
        while (bench_going(&w->t))
            if (kv_cycle(w, &lat) || bench_sample(&w->t, lat)) break;
    return NULL;
}

static int kv_scenario(coord_client *c, kv_keys *k, kv_op op, result *r, int64_t ms) {
    kv_worker w = {.c = c, .k = k, .op = op};
    return bench_run_threads(&w, sizeof w, 1, kv_worker_main, ms, NULL, NULL, r, NULL, 0);
}

/* ---------- watch ---------- */

typedef struct kv_watch_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t seen;    /* the newest version reported */
    int64_t seen_ns; /* when */
} kv_watch_run;

static void on_report(const char *key, const void *value, size_t len, int64_t version,
                      void *payload) {
    (void)key;
    (void)value;
    (void)len;
    kv_watch_run *run = payload;
    int64_t now = now_ns();
    pthread_mutex_lock(&run->mu);
    if (version > run->seen) {
        run->seen = version;
        run->seen_ns = now;
    }
    pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

typedef struct kv_writer {
    bench_thread t;
    coord_client *c;
    const char *key;
    kv_watch_run *run;
} kv_writer;

/* One put, then wait for its report: the latency from the put's return into *lat. */
static int watch_cycle(kv_writer *w, int64_t *lat) {
    int64_t v = 0;
    int rc = coord_kv_put(w->c, w->key, kv_value, sizeof kv_value, -1, &v);
    int64_t done = now_ns();
    if (rc) {
        bench_fail_rc(&w->t, rc, "coord_kv_put");
        return -1;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += WATCH_WAIT_MS / 1000;
    pthread_mutex_lock(&w->run->mu);
    int wrc = 0;
    while (w->run->seen < v && wrc == 0)
        wrc = pthread_cond_timedwait(&w->run->cv, &w->run->mu, &dl);
    bool got = w->run->seen >= v;
    int64_t at = w->run->seen_ns;
    pthread_mutex_unlock(&w->run->mu);
    if (!got) {
        bench_fail(&w->t, "the watch did not report version %lld within %d ms", (long long)v,
                   WATCH_WAIT_MS);
        return -1;
    }
    *lat = at > done ? at - done : 0;
    return 0;
}

static void *kv_writer_main(void *arg) {
    kv_writer *w = arg;
    int64_t lat;
    watch_cycle(w, &lat); /* warm-up */
    if (bench_ready(&w->t))
        while (bench_going(&w->t))
            if (watch_cycle(w, &lat) || bench_sample(&w->t, lat)) break;
    return NULL;
}

/* The watch scenario: `c` watches, a client of its own writes. 0, or -1 after printing why. */
static int watch_scenario(const bench_opts *o, coord_client *c, const char *key, result *r) {
    coord_client *wc = bench_connect(o);
    if (!wc) return -1;
    kv_watch_run run = {.seen = 0};
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    coord_kv_watch *watch = NULL;
    int ret = -1;
    int rc = coord_kv_put(wc, key, kv_value, sizeof kv_value, -1, NULL);
    if (!rc) rc = coord_kv_watch_new(&watch, c, key, on_report, &run);
    if (rc) {
        fprintf(stderr, "coord-bench: watch: %s: %s\n", coord_strerror(rc), coord_last_error());
    } else {
        kv_writer w = {.c = wc, .key = key, .run = &run};
        ret = bench_run_threads(&w, sizeof w, 1, kv_writer_main, (int64_t)o->seconds * 1000, NULL,
                                NULL, r, NULL, 0);
    }
    coord_kv_watch_free(watch);
    coord_kv_delete(wc, key, -1);
    coord_client_close(wc);
    pthread_mutex_destroy(&run.mu);
    pthread_cond_destroy(&run.cv);
    return ret;
}

/* ---------- output ---------- */

static void json_result(const result *r) {
    printf("{\"name\":");
    json_str(r->name);
    printf(",\"cycles\":%" PRIu64 ",\"elapsed_s\":%.3f,\"ops_per_s\":%.1f,\"p50_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"slices\":%d}",
           r->cycles, r->elapsed_s, r->rate, r->p50_ms, r->p99_ms, r->slices);
}

static void print_row(const result *r) {
    printf("%-12s %8" PRIu64 " %10.1f %10.3f %10.3f\n", r->name, r->cycles, r->rate, r->p50_ms,
           r->p99_ms);
}

int mode_kv(const bench_opts *o) {
    coord_client *c = bench_connect(o);
    if (!c) return 1;
    const char *backend = coord_client_backend(c);
    kv_keys k;
    long pid = (long)getpid();
    snprintf(k.a, sizeof k.a, "bench-%ld/a", pid);
    snprintf(k.b, sizeof k.b, "bench-%ld/b", pid);
    snprintf(k.c, sizeof k.c, "bench-%ld/c", pid);
    snprintf(k.w, sizeof k.w, "bench-%ld/w", pid);
    if (!o->json)
        printf("coord-bench kv: backend %s, prefix %s, %d s per scenario, %d-byte values, one "
               "client\n",
               backend, coord_client_prefix(c), o->seconds, KV_VALUE_LEN);
    int failed = 0;
    /* The keys exist before the timed loops: put and the txn's puts update, the check names a
     * version. */
    const char *keys[] = {k.a, k.b, k.c};
    for (int i = 0; i < 3 && !failed; i++) {
        int rc =
            coord_kv_put(c, keys[i], kv_value, sizeof kv_value, -1, i == 0 ? &k.a_version : NULL);
        if (rc) {
            fprintf(stderr, "coord-bench: put %s: %s: %s\n", keys[i], coord_strerror(rc),
                    coord_last_error());
            failed = 1;
        }
    }
    result sc[KV_OPS], watch = {.name = "watch", .threads = 1, .locks = 1};
    raw_result raw[KV_OPS];
    bool raw_ok[KV_OPS];
    char raw_names[KV_OPS][16];
    for (int i = 0; i < KV_OPS; i++) {
        sc[i] = (result){.name = kv_names[i], .threads = 1, .locks = 1};
        snprintf(raw_names[i], sizeof raw_names[i], "raw-%s", kv_names[i]);
        raw[i] = (raw_result){.r = {.name = raw_names[i], .threads = 1, .locks = 1}};
        raw_ok[i] = true;
    }
    /* Each operation next to its own bound: raw | coord | coord | raw | raw | coord. */
    for (int i = 0; i < KV_OPS && !failed; i++) {
        for (int k2 = 0; k2 < 2 * raw_slices(o) && !failed; k2++) {
            int64_t ms;
            if (raw_turn(o, k2, &ms))
                raw_ok[i] = raw_ok[i] && raw_slice(o, backend, kv_raw[i], ms, &raw[i]);
            else if (kv_scenario(c, &k, (kv_op)i, &sc[i], ms))
                failed = 1;
        }
    }
    for (int i = 0; i < KV_OPS; i++)
        raw[i].ran = raw_ok[i] && raw[i].r.slices > 0;
    if (!failed && watch_scenario(o, c, k.w, &watch)) failed = 1;
    raw_result raww = {.r = {.name = "raw-watch", .threads = 1, .locks = 1}};
    if (!failed) raw_watch(o, backend, (int64_t)o->seconds * 1000, &raww);
    for (int i = 0; i < 3; i++)
        coord_kv_delete(c, keys[i], -1);
    coord_client_close(c);
    for (int i = 0; i < KV_OPS; i++) {
        result_finish(&sc[i]);
        result_finish(&raw[i].r);
    }
    result_finish(&watch);
    result_finish(&raww.r);

    double rt[KV_OPS];
    bool ok[KV_OPS];
    for (int i = 0; i < KV_OPS; i++) {
        rt[i] = raw[i].ran ? ratio(sc[i].rate, raw[i].r.rate) : 0;
        ok[i] = raw[i].ran && rt[i] >= TARGET_KV_OVER_RAW;
    }
    if (o->json) {
        printf("{\"mode\":\"kv\",\"backend\":");
        json_str(backend);
        printf(",\"seconds\":%d,\"value_bytes\":%d,\"scenarios\":[", o->seconds, KV_VALUE_LEN);
        for (int i = 0; i < KV_OPS; i++) {
            json_result(&sc[i]);
            putchar(',');
        }
        json_result(&watch);
        printf("]");
        for (int i = 0; i < KV_OPS; i++) {
            char rname[32];
            printf(",\"raw_%s\":", kv_names[i]);
            snprintf(rname, sizeof rname, "%s_over_raw", kv_names[i]);
            json_raw(&raw[i], json_result, rname, rt[i]);
        }
        printf(",\"raw_watch\":");
        if (raww.ran) {
            json_result(&raww.r);
            printf(",\"raw_watch_method\":");
            json_str(raww.method);
        } else {
            printf("null,\"raw_watch_error\":");
            json_str(raww.err);
        }
        printf(",\"targets\":{\"put_over_raw\":%.1f,\"get_over_raw\":%.1f,\"txn_over_raw\":%.1f},"
               "\"targets_met\":{\"put_over_raw\":%s,\"get_over_raw\":%s,\"txn_over_raw\":%s},"
               "\"ok\":%s}\n",
               TARGET_KV_OVER_RAW, TARGET_KV_OVER_RAW, TARGET_KV_OVER_RAW, ok[0] ? "true" : "false",
               ok[1] ? "true" : "false", ok[2] ? "true" : "false", failed ? "false" : "true");
        goto out;
    }
    printf("%-12s %8s %10s %10s %10s\n", "scenario", "ops", "ops/s", "p50 ms", "p99 ms");
    for (int i = 0; i < KV_OPS; i++) {
        print_row(&sc[i]);
        if (raw[i].ran) print_row(&raw[i].r);
    }
    for (int i = 0; i < KV_OPS; i++) {
        if (raw[i].ran) {
            printf("raw-%s = bare %s client, 1 thread: %s\n", kv_names[i], backend, raw[i].method);
            printf("%s / raw-%s %*s= %.2f   (target >= %.1f: %s)\n", kv_names[i], kv_names[i], 6,
                   "", rt[i], TARGET_KV_OVER_RAW, met(ok[i]));
        } else {
            printf("raw-%s not measured: %s\n", kv_names[i], raw[i].err);
        }
    }
    printf("(each operation and its raw bound measured interleaved in %d slices each)\n",
           raw_slices(o));
    printf("%-12s %8s %10s %10s %10s\n", "watch", "reports", "puts/s", "p50 ms", "p99 ms");
    print_row(&watch);
    if (raww.ran) {
        print_row(&raww.r);
        printf("raw-watch = bare %s clients, a writer and a watcher: %s\n", backend, raww.method);
    } else {
        printf("raw-watch not measured: %s\n", raww.err);
    }
    printf("watch latency: from a put's return (on a client of its own) to the watcher's report "
           "of its version\n");
out:
    for (int i = 0; i < KV_OPS; i++) {
        result_free(&sc[i]);
        result_free(&raw[i].r);
    }
    result_free(&watch);
    result_free(&raww.r);
    return failed;
}
