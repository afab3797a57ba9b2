/*
 * coord-bench semaphore: acquire + release cycles of coord_semaphore, uncontended (beside the raw
 * bound of the same run) and with 8 threads on a semaphore of 4 (bench.c tells how).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the threads of one slice share. */
typedef struct sem_run {
    const bench_opts *o;
    coord_client *shared; /* NULL with --client-per-thread */
    const char *name;
    _Atomic int holders;     /* threads between their acquire's return and their release */
    _Atomic int max_holders; /* the most seen at once */
} sem_run;

typedef struct sem_worker {
    bench_thread t;
    sem_run *run;
} sem_worker;

static void *sem_worker_main(void *arg) {
    sem_worker *w = arg;
    sem_run *run = w->run;
    coord_client *c = run->shared, *own = NULL;
    coord_semaphore *s = NULL;
    int rc = 0;
    if (!c) {
        rc = coord_client_open(&own, run->o->uri, NULL);
        if (rc)
            bench_fail_rc(&w->t, rc, "connect");
        else
            c = own;
    }
    if (!rc && (rc = coord_semaphore_new(&s, c, run->name, SEMAPHORE_LEASES)))
        bench_fail_rc(&w->t, rc, "coord_semaphore_new");
    /* Warm-up cycle: parent nodes, the stored limit, connections. */
    if (!rc && (rc = coord_semaphore_acquire(s, -1))) bench_fail_rc(&w->t, rc, "acquire (warm-up)");
    if (!rc && (rc = coord_semaphore_release(s))) bench_fail_rc(&w->t, rc, "release (warm-up)");
    if (rc) { /* give up a lease now, so the others' warm-ups reach the gate */
        coord_semaphore_free(s);
        s = NULL;
    }
    if (bench_ready(&w->t)) {
        while (bench_going(&w->t)) {
            int64_t t0 = now_ns();
            rc = coord_semaphore_acquire(s, -1);
            int64_t t1 = now_ns();
            if (rc) {
                bench_fail_rc(&w->t, rc, "acquire");
                break;
            }
            /* Counted only while held for sure: a count over the limit is a real overlap. */
            int h = atomic_fetch_add(&run->holders, 1) + 1;
            for (int m = atomic_load(&run->max_holders);
                 h > m && !atomic_compare_exchange_weak(&run->max_holders, &m, h);)
                ;
            if (h > SEMAPHORE_LEASES)
                bench_fail(&w->t, "thread %d: %d holders at once, the limit is %d", w->t.idx, h,
                           SEMAPHORE_LEASES);
            bool stop = h > SEMAPHORE_LEASES || bench_sample(&w->t, t1 - t0);
            atomic_fetch_sub(&run->holders, 1); /* right before the release */
            if (stop) break;
            if ((rc = coord_semaphore_release(s))) {
                bench_fail_rc(&w->t, rc, "release");
                break;
            }
        }
    }
    coord_semaphore_free(s); /* releases a lease left by a failure */
    coord_client_close(own);
    return NULL;
}

/* One slice of `ms` of a scenario on the semaphore `name`, adding to `r`; 0, or -1 after
 * printing why. */
static int sem_scenario(const bench_opts *o, coord_client *shared, const char *name, result *r,
                        int64_t ms, int *max_holders) {
    int T = r->threads;
    sem_run run = {.o = o, .shared = o->client_per_thread ? NULL : shared, .name = name};
    atomic_init(&run.holders, 0);
    atomic_init(&run.max_holders, 0);
    sem_worker *ws = calloc((size_t)T, sizeof *ws);
    if (!ws) {
        fprintf(stderr, "coord-bench: out of memory\n");
        return -1;
    }
    for (int i = 0; i < T; i++)
        ws[i].run = &run;
    int ret = bench_run_threads(ws, sizeof *ws, T, sem_worker_main, ms, NULL, NULL, r, NULL, 0);
    int m = atomic_load(&run.max_holders);
    if (m > *max_holders) *max_holders = m;
    free(ws);
    return ret;
}

static void json_result(const result *r) {
    printf("{\"name\":");
    json_str(r->name);
    printf(",\"threads\":%d,\"max_leases\":%d,\"cycles\":%" PRIu64 ",\"elapsed_s\":%.3f,"
           "\"cycles_per_s\":%.1f,\"acquire_p50_ms\":%.3f,\"acquire_p99_ms\":%.3f,\"slices\":%d}",
           r->threads, SEMAPHORE_LEASES, r->cycles, r->elapsed_s, r->rate, r->p50_ms, r->p99_ms,
           r->slices);
}

static void print_row(const result *r) {
    printf("%-12s %7d %6d %8" PRIu64 " %10.1f %10.3f %10.3f\n", r->name, r->threads,
           SEMAPHORE_LEASES, r->cycles, r->rate, r->p50_ms, r->p99_ms);
}

int mode_semaphore(const bench_opts *o) {
    coord_client *c = bench_connect(o);
    if (!c) return 1;
    const char *backend = coord_client_backend(c);
    char uname[64], cname[64];
    snprintf(uname, sizeof uname, "bench-%ld-uncontended", (long)getpid());
    snprintf(cname, sizeof cname, "bench-%ld-contended", (long)getpid());
    if (!o->json)
        printf("coord-bench semaphore: backend %s, prefix %s, %d s per scenario, a semaphore of "
               "%d, client %s\n",
               backend, coord_client_prefix(c), o->seconds, SEMAPHORE_LEASES,
               o->client_per_thread
                   ? "per-thread (one coord_client and one coord_semaphore per thread)"
                   : "shared (one coord_client, one coord_semaphore handle per thread)");
    result unc = {.name = "uncontended", .threads = 1, .locks = 1};
    result con = {.name = "contended", .threads = DEFAULT_THREADS, .locks = 1};
    raw_result raw = {.r = {.name = "raw", .threads = 1, .locks = 1}};
    bool raw_ok = true;
    int failed = 0, unc_max = 0, con_max = 0;
    for (int k = 0; k < 2 * raw_slices(o); k++) {
        int64_t ms;
        if (raw_turn(o, k, &ms))
            raw_ok = raw_ok && raw_slice(o, backend, RAW_SEMAPHORE, ms, &raw);
        else if (sem_scenario(o, c, uname, &unc, ms, &unc_max))
            failed = 1;
    }
    raw.ran = raw_ok && raw.r.slices > 0;
    if (sem_scenario(o, c, cname, &con, (int64_t)o->seconds * 1000, &con_max)) failed = 1;
    coord_client_close(c);
    result_finish(&unc);
    result_finish(&con);
    result_finish(&raw.r);

    double u_over_raw = raw.ran ? ratio(unc.rate, raw.r.rate) : 0;
    double c_over_u = ratio(con.rate, unc.rate);
    bool unc_ok = raw.ran && u_over_raw >= TARGET_UNCONTENDED_OVER_RAW;
    if (o->json) {
        printf("{\"mode\":\"semaphore\",\"backend\":");
        json_str(backend);
        printf(",\"seconds\":%d,\"client\":\"%s\",\"scenarios\":[", o->seconds,
               o->client_per_thread ? "per-thread" : "shared");
        json_result(&unc);
        putchar(',');
        json_result(&con);
        printf("],\"raw\":");
        json_raw(&raw, json_result, "uncontended_over_raw", u_over_raw);
        printf(",\"contended_over_uncontended\":%.3f,\"contended_max_holders\":%d,"
               "\"targets\":{\"uncontended_over_raw\":%.1f},\"targets_met\":"
               "{\"uncontended_over_raw\":%s},\"ok\":%s}\n",
               c_over_u, con_max, TARGET_UNCONTENDED_OVER_RAW, unc_ok ? "true" : "false",
               failed ? "false" : "true");
        goto out;
    }
    printf("%-12s %7s %6s %8s %10s %10s %10s\n", "scenario", "threads", "leases", "cycles",
           "cycles/s", "acq p50 ms", "acq p99 ms");
    print_row(&unc);
    print_row(&con);
    if (raw.ran) {
        print_row(&raw.r);
        printf("raw = bare %s client, 1 thread: %s\n", backend, raw.method);
        printf("(uncontended and raw measured interleaved in %d slices each)\n", raw_slices(o));
        printf("uncontended / raw       = %.2f   (target >= %.1f: %s)\n", u_over_raw,
               TARGET_UNCONTENDED_OVER_RAW, met(unc_ok));
    } else {
        printf("raw bound not measured: %s\n", raw.err);
    }
    printf("contended / uncontended = %.2f   (%d threads on a semaphore of %d)\n", c_over_u,
           DEFAULT_THREADS, SEMAPHORE_LEASES);
    printf("contended: at most %d holders seen at once (limit %d)\n", con_max, SEMAPHORE_LEASES);
out:
    result_free(&unc);
    result_free(&con);
    result_free(&raw.r);
    return failed;
}
