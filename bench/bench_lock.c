/*
 * coord-bench lock: acquire + release cycles of coord_lock in the uncontended, contended,
 * parallel and custom scenarios, beside the raw bounds of the same run (bench.c tells how).
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

#include "internal.h" /* coord__lock_wakeups */

#define TARGET_CONTENDED_OVER_UNCONTENDED 0.8
#define TARGET_WS_OVER_HTTP_CONTENDED 1.5 /* --watch-paths: the watch stream's hand-off gain */

/* What the threads of one slice share. */
typedef struct lock_run {
    const bench_opts *o;
    coord_client *shared; /* NULL with --client-per-thread */
    char **names;         /* one lock name per lock */
    int nlocks;
    _Atomic uint64_t *releases;  /* per lock: releases started, to tell handoffs */
    _Atomic int64_t *release_ns; /* per lock: when the latest release started */
    result *r;
    uint64_t wakeups0; /* coord__lock_wakeups() when the gate opened */
} lock_run;

typedef struct lock_worker {
    bench_thread t;
    lock_run *run;
    samples handoff;
    uint64_t handoffs;
} lock_worker;

static void *lock_worker_main(void *arg) {
    lock_worker *w = arg;
    lock_run *run = w->run;
    int li = w->t.idx % run->nlocks;
    coord_client *c = run->shared, *own = NULL;
    coord_lock *l = NULL;
    int rc = 0;
    if (!c) {
        rc = coord_client_open(&own, run->o->uri, NULL);
        if (rc)
            bench_fail_rc(&w->t, rc, "connect");
        else
            c = own;
    }
    if (!rc && (rc = coord_lock_new(&l, c, run->names[li])))
        bench_fail_rc(&w->t, rc, "coord_lock_new");
    /* Warm-up cycle: parent nodes, connections, pooled handles. */
    if (!rc && (rc = coord_lock_acquire(l, -1))) bench_fail_rc(&w->t, rc, "acquire (warm-up)");
    if (!rc && (rc = coord_lock_release(l))) bench_fail_rc(&w->t, rc, "release (warm-up)");
    if (rc) { /* give up a hold now, so the others' warm-ups reach the gate */
        coord_lock_free(l);
        l = NULL;
    }
    if (bench_ready(&w->t)) {
        while (bench_going(&w->t)) {
            uint64_t r0 = atomic_load(&run->releases[li]);
            int64_t t0 = now_ns();
            rc = coord_lock_acquire(l, -1);
            int64_t t1 = now_ns();
            if (rc) {
                bench_fail_rc(&w->t, rc, "acquire");
                break;
            }
            /* Another handle released this lock while we were acquiring: we were handed it. */
            if (atomic_load(&run->releases[li]) != r0) {
                w->handoffs++;
                if (samples_add(&w->handoff, t1 - atomic_load(&run->release_ns[li]))) {
                    bench_fail(&w->t, "thread %d: latency samples: out of memory", w->t.idx);
                    break;
                }
            }
            if (bench_sample(&w->t, t1 - t0)) break;
            atomic_store(&run->release_ns[li], now_ns());
            atomic_fetch_add(&run->releases[li], 1);
            if ((rc = coord_lock_release(l))) {
                bench_fail_rc(&w->t, rc, "release");
                break;
            }
        }
    }
    coord_lock_free(l); /* releases a hold left by a failure */
    coord_client_close(own);
    return NULL;
}

/* Once every thread is warmed up: the wake-ups so far, left out of the scenario's. */
static void lock_started(void *ctx) {
    lock_run *run = ctx;
    run->wakeups0 = coord__lock_wakeups();
    if (!run->r->slices) run->r->wakeups_before = run->wakeups0;
}

/* Run one slice of `ms` milliseconds of a scenario, adding to `r`; 0, or -1 after printing why. */
static int lock_scenario(const bench_opts *o, coord_client *shared, result *r, int64_t ms) {
    int T = r->threads, L = r->locks;
    lock_run run = {.o = o, .shared = o->client_per_thread ? NULL : shared, .nlocks = L, .r = r};
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
    for (int i = 0; i < T; i++)
        ws[i].run = &run;
    ret =
        bench_run_threads(ws, sizeof *ws, T, lock_worker_main, ms, lock_started, &run, r, NULL, 0);
    for (int i = 0; i < T; i++) {
        if (samples_append(&r->hand, &ws[i].handoff)) ret = -1;
        r->handoffs += ws[i].handoffs;
    }
    r->wakeups_after = coord__lock_wakeups();
    r->wakeups += r->wakeups_after - run.wakeups0;
out:
    for (int i = 0; ws && i < T; i++)
        free(ws[i].handoff.v);
    free(ws);
    for (int i = 0; run.names && i < L; i++)
        free(run.names[i]);
    free(run.names);
    free(run.releases);
    free(run.release_ns);
    return ret;
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

/* One watch path of --watch-paths: its URI, client and the two scenarios. */
typedef struct watch_path {
    const char *name; /* "http", "ws" */
    bench_opts o;     /* the bench's options with this path's URI */
    char *uri;
    coord_client *c;
    result rs[2]; /* uncontended, contended */
} watch_path;

static void json_watch_path(const watch_path *p) {
    printf("{\"watch\":\"%s\",\"scenarios\":[", p->name);
    json_result(&p->rs[0]);
    putchar(',');
    json_result(&p->rs[1]);
    printf("],\"contended_over_uncontended\":%.3f}", ratio(p->rs[1].rate, p->rs[0].rate));
}

/*
 * --watch-paths: the uncontended and contended scenarios with watch=http and with watch=ws
 * appended to the URI, the paths alternating in WATCH_PATH_SLICES slices each (http ws | ws http
 * | http ws), --seconds in all per scenario and path, each on a client of its own opened once.
 */
static int lock_watch_paths(const bench_opts *o) {
    watch_path ps[2] = {{.name = "http"}, {.name = "ws"}};
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        char param[16];
        snprintf(param, sizeof param, "watch=%s", ps[i].name);
        ps[i].o = *o;
        ps[i].rs[0] = (result){.name = "uncontended", .threads = 1, .locks = 1};
        ps[i].rs[1] = (result){.name = "contended", .threads = DEFAULT_THREADS, .locks = 1};
        if (!(ps[i].uri = uri_with_param(o->uri, param))) {
            failed = 1;
            goto out;
        }
        ps[i].o.uri = ps[i].uri;
        if (!(ps[i].c = bench_connect(&ps[i].o))) {
            failed = 1;
            goto out;
        }
    }
    char shown[1024];
    if (!o->json)
        printf("coord-bench lock --watch-paths: backend %s, prefix %s, uri %s, %d s per scenario "
               "and path in %d slices, client %s\n",
               coord_client_backend(ps[0].c), coord_client_prefix(ps[0].c),
               shown_uri(o->uri, shown, sizeof shown), o->seconds, WATCH_PATH_SLICES,
               o->client_per_thread ? "per-thread" : "shared");
    int64_t total_ms = (int64_t)o->seconds * 1000;
    for (int k = 0; k < 2 * WATCH_PATH_SLICES && !failed; k++) {
        watch_path *p = &ps[watch_turn_ws(k) ? 1 : 0];
        int64_t ms = total_ms / WATCH_PATH_SLICES +
                     (k / 2 == WATCH_PATH_SLICES - 1 ? total_ms % WATCH_PATH_SLICES : 0);
        for (int i = 0; i < 2 && !failed; i++)
            if (lock_scenario(&p->o, p->c, &p->rs[i], ms)) failed = 1;
    }
    for (int i = 0; i < 2; i++) {
        result_finish(&ps[i].rs[0]);
        result_finish(&ps[i].rs[1]);
    }
    const result *hc = &ps[0].rs[1], *wu = &ps[1].rs[0], *wc = &ps[1].rs[1];
    double ws_over_http = ratio(wc->rate, hc->rate);
    double ws_c_over_u = ratio(wc->rate, wu->rate);
    bool met1 = ws_over_http >= TARGET_WS_OVER_HTTP_CONTENDED;
    bool met2 = ws_c_over_u >= TARGET_CONTENDED_OVER_UNCONTENDED;
    if (o->json) {
        printf("{\"mode\":\"lock-watch-paths\",\"backend\":");
        json_str(coord_client_backend(ps[0].c));
        printf(",\"seconds\":%d,\"slices\":%d,\"client\":\"%s\",\"paths\":[", o->seconds,
               WATCH_PATH_SLICES, o->client_per_thread ? "per-thread" : "shared");
        json_watch_path(&ps[0]);
        putchar(',');
        json_watch_path(&ps[1]);
        printf("],\"ws_over_http_contended\":%.3f,\"ws_contended_over_uncontended\":%.3f,"
               "\"targets\":{\"ws_over_http_contended\":%.1f,"
               "\"ws_contended_over_uncontended\":%.1f},\"met\":{\"ws_over_http_contended\":%s,"
               "\"ws_contended_over_uncontended\":%s},\"ok\":%s}\n",
               ws_over_http, ws_c_over_u, TARGET_WS_OVER_HTTP_CONTENDED,
               TARGET_CONTENDED_OVER_UNCONTENDED, met1 ? "true" : "false", met2 ? "true" : "false",
               failed ? "false" : "true");
        goto out;
    }
    printf("%-5s %-12s %7s %5s %8s %10s %10s %10s\n", "watch", "scenario", "threads", "locks",
           "cycles", "cycles/s", "acq p50 ms", "acq p99 ms");
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            printf("%-5s ", ps[i].name);
            print_row(&ps[i].rs[j]);
        }
    for (int i = 0; i < 2; i++)
        if (ps[i].rs[1].handoffs)
            printf("watch=%-4s contended handoff latency: p50 %.3f ms, p99 %.3f ms over %" PRIu64
                   " handoffs, %.2f wake-ups per handoff\n",
                   ps[i].name, ps[i].rs[1].handoff_p50_ms, ps[i].rs[1].handoff_p99_ms,
                   ps[i].rs[1].handoffs,
                   ratio((double)ps[i].rs[1].wakeups, (double)ps[i].rs[1].handoffs));
    printf("watch=http contended / uncontended = %.2f   (the per-watch path, for reference)\n",
           ratio(hc->rate, ps[0].rs[0].rate));
    printf("ws contended / http contended      = %.2f   (target >= %.1f)  %s\n", ws_over_http,
           TARGET_WS_OVER_HTTP_CONTENDED, met(met1));
    printf("ws contended / ws uncontended      = %.2f   (target >= %.1f)  %s\n", ws_c_over_u,
           TARGET_CONTENDED_OVER_UNCONTENDED, met(met2));
    if (failed) printf("a scenario failed (above): the figures cover the slices before it\n");
out:
    for (int i = 0; i < 2; i++) {
        coord_client_close(ps[i].c);
        free(ps[i].uri);
        result_free(&ps[i].rs[0]);
        result_free(&ps[i].rs[1]);
    }
    return failed;
}

int mode_lock(const bench_opts *o) {
    if (o->watch_paths) return lock_watch_paths(o);
    coord_client *c = bench_connect(o);
    if (!c) return 1;
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

    raw_result raw = {.r = {.name = "raw", .threads = 1, .locks = 1}};
    bool raw_ok = true;
    int failed = 0;
    for (int k = 0; k < 2 * raw_slices(o); k++) {
        int64_t ms;
        if (raw_turn(o, k, &ms))
            raw_ok = raw_ok && raw_slice(o, backend, RAW_LOCK, ms, &raw);
        else if (lock_scenario(o, c, &rs[0], ms))
            failed = 1;
    }
    raw.ran = raw_ok && raw.r.slices > 0;
    int64_t total_ms = (int64_t)o->seconds * 1000;
    /* The contended scenario's own raw bound, right after it. */
    raw_result rawc = {.r = {.name = "raw-contend", .threads = DEFAULT_THREADS, .locks = 1}};
    for (int i = 1; i < nrs; i++) {
        if (lock_scenario(o, c, &rs[i], total_ms)) failed = 1;
        if (i == 1) raw_contended(o, backend, DEFAULT_THREADS, total_ms, &rawc);
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
        json_raw(&raw, json_result, "uncontended_over_raw", u_over_raw);
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
        printf("(uncontended and raw measured interleaved in %d slices each)\n", raw_slices(o));
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
