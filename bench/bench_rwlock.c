/*
 * coord-bench rwlock: read lock cycles of 8 readers on one coord_rwlock beside the raw bound of
 * 8 bare readers in the same run, and 7 readers with 1 writer (bench.c tells how).
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

#define TARGET_READERS_OVER_RAW 0.8

/* What the threads of one slice share. */
typedef struct rw_run {
    const bench_opts *o;
    coord_client *shared; /* NULL with --client-per-thread */
    const char *name;
    int writers;             /* threads 0 .. writers-1 write, the others read */
    _Atomic int readers_in;  /* readers between their rdlock's return and their unlock */
    _Atomic int max_readers; /* the most seen at once */
    _Atomic bool writer_in;  /* the writer between its wrlock's return and its unlock */
} rw_run;

typedef struct rw_worker {
    bench_thread t;
    rw_run *run;
    samples wlat; /* a writer's cycles, apart from the readers' */
    uint64_t wcycles;
} rw_worker;

static int rw_take(coord_rwlock *l, bool write) {
    return write ? coord_rwlock_wrlock(l, -1) : coord_rwlock_rdlock(l, -1);
}

/* Holding: mark it, and fail when the other kind holds too (each side marks itself before it
 * looks at the other, so an overlap is seen by whichever came second). */
static bool rw_enter(rw_worker *w, bool write) {
    rw_run *run = w->run;
    if (write) {
        atomic_store(&run->writer_in, true);
        int r = atomic_load(&run->readers_in);
        if (r) bench_fail(&w->t, "thread %d: write-locked while %d readers hold", w->t.idx, r);
        return !r;
    }
    int n = atomic_fetch_add(&run->readers_in, 1) + 1;
    for (int m = atomic_load(&run->max_readers);
         n > m && !atomic_compare_exchange_weak(&run->max_readers, &m, n);)
        ;
    bool writer = atomic_load(&run->writer_in);
    if (writer) bench_fail(&w->t, "thread %d: read-locked while the writer holds", w->t.idx);
    return !writer;
}

static void rw_leave(rw_worker *w, bool write) {
    if (write)
        atomic_store(&w->run->writer_in, false);
    else
        atomic_fetch_sub(&w->run->readers_in, 1);
}

static void *rw_worker_main(void *arg) {
    rw_worker *w = arg;
    rw_run *run = w->run;
    bool write = w->t.idx < run->writers;
    coord_client *c = run->shared, *own = NULL;
    coord_rwlock *l = NULL;
    int rc = 0;
    if (!c) {
        rc = coord_client_open(&own, run->o->uri, NULL);
        if (rc)
            bench_fail_rc(&w->t, rc, "connect");
        else
            c = own;
    }
    if (!rc && (rc = coord_rwlock_new(&l, c, run->name)))
        bench_fail_rc(&w->t, rc, "coord_rwlock_new");
    /* Warm-up cycle: parent nodes, connections. */
    if (!rc && (rc = rw_take(l, write))) bench_fail_rc(&w->t, rc, "lock (warm-up)");
    if (!rc && (rc = coord_rwlock_unlock(l))) bench_fail_rc(&w->t, rc, "unlock (warm-up)");
    if (rc) { /* give up a hold now, so the others' warm-ups reach the gate */
        coord_rwlock_free(l);
        l = NULL;
    }
    if (bench_ready(&w->t)) {
        while (bench_going(&w->t)) {
            int64_t t0 = now_ns();
            rc = rw_take(l, write);
            int64_t t1 = now_ns();
            if (rc) {
                bench_fail_rc(&w->t, rc, write ? "wrlock" : "rdlock");
                break;
            }
            bool stop = !rw_enter(w, write);
            if (!stop && write) {
                if (samples_add(&w->wlat, t1 - t0)) {
                    bench_fail(&w->t, "out of memory");
                    stop = true;
                }
                w->wcycles++;
            } else if (!stop) {
                stop = bench_sample(&w->t, t1 - t0) != 0;
            }
            rw_leave(w, write); /* right before the unlock */
            if (stop) break;
            if ((rc = coord_rwlock_unlock(l))) {
                bench_fail_rc(&w->t, rc, "unlock");
                break;
            }
        }
    }
    coord_rwlock_free(l); /* unlocks a hold left by a failure */
    coord_client_close(own);
    return NULL;
}

/* One slice of `ms` of a scenario: `r` gets the readers' cycles, `wr` (when not NULL) the
 * writers'. 0, or -1 after printing why. */
static int rw_scenario(const bench_opts *o, coord_client *shared, const char *name, int writers,
                       result *r, result *wr, int64_t ms, int *max_readers) {
    int T = DEFAULT_THREADS;
    rw_run run = {
        .o = o, .shared = o->client_per_thread ? NULL : shared, .name = name, .writers = writers};
    atomic_init(&run.readers_in, 0);
    atomic_init(&run.max_readers, 0);
    atomic_init(&run.writer_in, false);
    rw_worker *ws = calloc((size_t)T, sizeof *ws);
    if (!ws) {
        fprintf(stderr, "coord-bench: out of memory\n");
        return -1;
    }
    for (int i = 0; i < T; i++)
        ws[i].run = &run;
    int ret = bench_run_threads(ws, sizeof *ws, T, rw_worker_main, ms, NULL, NULL, r, NULL, 0);
    for (int i = 0; i < T; i++) {
        if (wr && ws[i].wcycles) {
            if (samples_append(&wr->lat, &ws[i].wlat)) ret = -1;
            wr->cycles += ws[i].wcycles;
        }
        free(ws[i].wlat.v);
    }
    if (wr) { /* the same span as the readers' */
        wr->elapsed_ns = r->elapsed_ns;
        wr->slices = r->slices;
    }
    int m = atomic_load(&run.max_readers);
    if (m > *max_readers) *max_readers = m;
    free(ws);
    return ret;
}

static void json_result(const result *r) {
    printf("{\"name\":");
    json_str(r->name);
    printf(",\"threads\":%d,\"cycles\":%" PRIu64 ",\"elapsed_s\":%.3f,\"cycles_per_s\":%.1f,"
           "\"acquire_p50_ms\":%.3f,\"acquire_p99_ms\":%.3f,\"slices\":%d}",
           r->threads, r->cycles, r->elapsed_s, r->rate, r->p50_ms, r->p99_ms, r->slices);
}

static void print_row(const result *r) {
    printf("%-14s %7d %8" PRIu64 " %10.1f %10.3f %10.3f\n", r->name, r->threads, r->cycles, r->rate,
           r->p50_ms, r->p99_ms);
}

int mode_rwlock(const bench_opts *o) {
    coord_client *c = bench_connect(o);
    if (!c) return 1;
    const char *backend = coord_client_backend(c);
    char rname[64], mname[64];
    snprintf(rname, sizeof rname, "bench-%ld-readers", (long)getpid());
    snprintf(mname, sizeof mname, "bench-%ld-mixed", (long)getpid());
    if (!o->json)
        printf("coord-bench rwlock: backend %s, prefix %s, %d s per scenario, client %s\n", backend,
               coord_client_prefix(c), o->seconds,
               o->client_per_thread
                   ? "per-thread (one coord_client and one coord_rwlock per thread)"
                   : "shared (one coord_client, one coord_rwlock handle per thread)");
    result rd = {.name = "readers", .threads = DEFAULT_THREADS, .locks = 1};
    result mr = {.name = "mixed-readers", .threads = DEFAULT_THREADS - 1, .locks = 1};
    result mw = {.name = "mixed-writer", .threads = 1, .locks = 1};
    raw_result raw = {.r = {.name = "raw", .threads = DEFAULT_THREADS, .locks = 1}};
    bool raw_ok = true;
    int failed = 0, rd_max = 0, mixed_max = 0;
    for (int k = 0; k < 2 * raw_slices(o); k++) {
        int64_t ms;
        if (raw_turn(o, k, &ms))
            raw_ok = raw_ok && raw_readers(o, backend, DEFAULT_THREADS, ms, &raw);
        else if (rw_scenario(o, c, rname, 0, &rd, NULL, ms, &rd_max))
            failed = 1;
    }
    raw.ran = raw_ok && raw.r.slices > 0;
    if (rw_scenario(o, c, mname, 1, &mr, &mw, (int64_t)o->seconds * 1000, &mixed_max)) failed = 1;
    /* The mixed scenario's own raw bound, right after it. */
    raw_result rawm = {.r = {.name = "raw-mixed", .threads = DEFAULT_THREADS, .locks = 1}};
    raw_mixed(o, backend, DEFAULT_THREADS, (int64_t)o->seconds * 1000, &rawm);
    coord_client_close(c);
    result_finish(&rd);
    result_finish(&mr);
    result_finish(&mw);
    result_finish(&raw.r);
    result_finish(&rawm.r);

    double mixed_rate = mr.rate + mw.rate;
    double m_over_rawm = rawm.ran ? ratio(mixed_rate, rawm.r.rate) : 0;
    double r_over_raw = raw.ran ? ratio(rd.rate, raw.r.rate) : 0;
    double m_over_r = ratio(mixed_rate, rd.rate);
    bool rd_ok = raw.ran && r_over_raw >= TARGET_READERS_OVER_RAW;
    if (o->json) {
        printf("{\"mode\":\"rwlock\",\"backend\":");
        json_str(backend);
        printf(",\"seconds\":%d,\"client\":\"%s\",\"scenarios\":[", o->seconds,
               o->client_per_thread ? "per-thread" : "shared");
        json_result(&rd);
        putchar(',');
        json_result(&mr);
        putchar(',');
        json_result(&mw);
        printf("],\"raw\":");
        json_raw(&raw, json_result, "readers_over_raw", r_over_raw);
        printf(",\"raw_mixed\":");
        if (rawm.ran) {
            json_result(&rawm.r);
            printf(",\"raw_mixed_method\":");
            json_str(rawm.method);
            printf(",\"mixed_over_raw_mixed\":%.3f", m_over_rawm);
        } else {
            printf("null,\"raw_mixed_error\":");
            json_str(rawm.err[0] ? rawm.err : "no raw client for this backend in this build");
            printf(",\"mixed_over_raw_mixed\":null");
        }
        printf(",\"readers_max_at_once\":%d,\"mixed_over_readers\":%.3f,"
               "\"targets\":{\"readers_over_raw\":%.1f},\"targets_met\":"
               "{\"readers_over_raw\":%s},\"ok\":%s}\n",
               rd_max, m_over_r, TARGET_READERS_OVER_RAW, rd_ok ? "true" : "false",
               failed ? "false" : "true");
        goto out;
    }
    printf("%-14s %7s %8s %10s %10s %10s\n", "scenario", "threads", "cycles", "cycles/s",
           "acq p50 ms", "acq p99 ms");
    print_row(&rd);
    print_row(&mr);
    print_row(&mw);
    if (raw.ran) {
        print_row(&raw.r);
        printf("raw = %d bare %s readers: %s\n", DEFAULT_THREADS, backend, raw.method);
        printf("(readers and raw measured interleaved in %d slices each)\n", raw_slices(o));
        printf("readers / raw           = %.2f   (target >= %.1f: %s)\n", r_over_raw,
               TARGET_READERS_OVER_RAW, met(rd_ok));
    } else {
        printf("raw bound not measured: %s\n", raw.err);
    }
    printf("readers: up to %d of %d held the read lock at once\n", rd_max, DEFAULT_THREADS);
    if (rawm.ran) {
        print_row(&rawm.r);
        printf("raw-mixed = %d bare threads, thread 0 writing: %s\n", DEFAULT_THREADS, rawm.method);
        printf("mixed / raw-mixed       = %.2f   (all cycles, readers' and writer's: the recipe "
               "against the same algorithm on bare calls)\n",
               m_over_rawm);
    } else {
        printf("raw mixed bound not measured: %s\n", rawm.err);
    }
    printf("mixed (%d readers + 1 writer) / readers = %.2f (all cycles); the writer held it "
           "alone in each of its %" PRIu64 " cycles, readers up to %d at once\n",
           DEFAULT_THREADS - 1, m_over_r, mw.cycles, mixed_max);
out:
    result_free(&rd);
    result_free(&mr);
    result_free(&mw);
    result_free(&raw.r);
    result_free(&rawm.r);
    return failed;
}
