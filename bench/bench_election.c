/*
 * coord-bench election: hand-offs per second of 8 candidates on one election beside the raw
 * bound of the backend's native election in the same run, and the failover time after a
 * leader's session is revoked (bench.c tells how).
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
#include <time.h>
#include <unistd.h>

#include "internal.h" /* coord__client_conn: the backend's expire slot */

#define FAILOVER_CANDIDATES 3
#define FAILOVER_WAIT_MS 10000 /* bound of every wait of the failover scenario */
/* The failover clients' session TTL (the revoked candidate's new client waits for nothing
 * longer). */
#define FAILOVER_TTL_MS 2000
#define TARGET_HANDOFF_OVER_RAW 0.9
#define TARGET_FAILOVER_P99_MS 50.0

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------- hand-offs ---------- */

typedef struct handoff_run {
    const bench_opts *o;
    coord_client *shared; /* NULL with --client-per-thread */
    const char *name;
    _Atomic uint64_t resigns;  /* resignations started, to tell hand-offs */
    _Atomic int64_t resign_ns; /* when the latest one started */
} handoff_run;

typedef struct handoff_worker {
    bench_thread t;
    handoff_run *run;
    samples handoff;
    uint64_t handoffs;
} handoff_worker;

static void *handoff_main(void *arg) {
    handoff_worker *w = arg;
    handoff_run *run = w->run;
    coord_client *c = run->shared, *own = NULL;
    coord_election *e = NULL;
    char value[32];
    size_t len = (size_t)snprintf(value, sizeof value, "candidate-%d", w->t.idx);
    int rc = 0;
    if (!c) {
        rc = coord_client_open(&own, run->o->uri, NULL);
        if (rc)
            bench_fail_rc(&w->t, rc, "connect");
        else
            c = own;
    }
    if (!rc && (rc = coord_election_new(&e, c, run->name, NULL)))
        bench_fail_rc(&w->t, rc, "coord_election_new");
    /* Warm-up cycle: parent nodes, connections. */
    if (!rc && (rc = coord_election_campaign(e, value, len, -1)))
        bench_fail_rc(&w->t, rc, "campaign (warm-up)");
    if (!rc && (rc = coord_election_resign(e))) bench_fail_rc(&w->t, rc, "resign (warm-up)");
    if (rc) { /* withdraw now, so the others' warm-ups reach the gate */
        coord_election_free(e);
        e = NULL;
    }
    if (bench_ready(&w->t)) {
        while (bench_going(&w->t)) {
            uint64_t r0 = atomic_load(&run->resigns);
            int64_t t0 = now_ns();
            rc = coord_election_campaign(e, value, len, -1);
            int64_t t1 = now_ns();
            if (rc) {
                bench_fail_rc(&w->t, rc, "campaign");
                break;
            }
            /* Another candidate resigned while we were campaigning: it handed over to us. */
            if (atomic_load(&run->resigns) != r0) {
                w->handoffs++;
                if (samples_add(&w->handoff, t1 - atomic_load(&run->resign_ns))) {
                    bench_fail(&w->t, "thread %d: latency samples: out of memory", w->t.idx);
                    break;
                }
            }
            if (bench_sample(&w->t, t1 - t0)) break;
            atomic_store(&run->resign_ns, now_ns());
            atomic_fetch_add(&run->resigns, 1);
            if ((rc = coord_election_resign(e))) {
                bench_fail_rc(&w->t, rc, "resign");
                break;
            }
        }
    }
    coord_election_free(e); /* resigns a leadership a failure left */
    coord_client_close(own);
    return NULL;
}

/* One slice of `ms` of the hand-off scenario, added to `r`; 0, or -1 after printing why. */
static int handoff_slice(const bench_opts *o, coord_client *shared, const char *name, result *r,
                         int64_t ms) {
    int T = r->threads;
    handoff_run run = {.o = o, .shared = o->client_per_thread ? NULL : shared, .name = name};
    atomic_init(&run.resigns, 0);
    atomic_init(&run.resign_ns, 0);
    handoff_worker *ws = calloc((size_t)T, sizeof *ws);
    if (!ws) {
        fprintf(stderr, "coord-bench: out of memory\n");
        return -1;
    }
    for (int i = 0; i < T; i++)
        ws[i].run = &run;
    int ret = bench_run_threads(ws, sizeof *ws, T, handoff_main, ms, NULL, NULL, r, NULL, 0);
    for (int i = 0; i < T; i++) {
        if (samples_append(&r->hand, &ws[i].handoff)) ret = -1;
        r->handoffs += ws[i].handoffs;
        free(ws[i].handoff.v);
    }
    free(ws);
    return ret;
}

/* ---------- failover ---------- */

typedef struct failover_run {
    const bench_opts *o;
    const char *name;
    char dir[512]; /* the election's entries, for the backend's list slot */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int leader;         /* the candidate of the latest on_leader(mine) */
    int64_t leader_ns;  /* when it came */
    uint64_t leads;     /* on_leader(mine) reports so far */
    samples expire_lat; /* the expire call itself */
} failover_run;

typedef struct failover_worker {
    bench_thread t;
    failover_run *run;
    _Atomic bool reported; /* on_leader(mine) came for the current candidacy */
} failover_worker;

/* The first on_leader(mine) of a candidacy: who and when. */
static void on_leader(coord_election *e, const coord_leader *leader, void *payload) {
    (void)e;
    failover_worker *w = payload;
    if (!leader || !leader->mine || atomic_exchange(&w->reported, true)) return;
    int64_t now = now_ns();
    failover_run *run = w->run;
    pthread_mutex_lock(&run->mu);
    run->leader = w->t.idx;
    run->leader_ns = now;
    run->leads++;
    pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* Wait (bounded) until the election holds `n` entries: every other candidate waits behind the
 * leader, so that the revocation hands over to one already queued. 0, 1 when the run ended
 * meanwhile (a revoked candidate may then not come back), or an error. */
static int await_queued(bench_thread *t, coord_client *c, const char *dir, size_t n) {
    coord_conn *k = coord__client_conn(c);
    int64_t end = now_ns() + (int64_t)FAILOVER_WAIT_MS * 1000000;
    while (now_ns() < end) {
        if (!bench_going(t)) return 1;
        coord_kv *kv = NULL;
        size_t got = 0;
        int rc = k->backend->list(k, dir, COORD_LIST_NAMES, &kv, &got, NULL, 5000);
        coord_kv_array_free(kv, got);
        if (rc) return rc;
        if (got >= n) return 0;
        nap_ms(2);
    }
    return coord_seterr(COORD_ETIMEDOUT, "%s: fewer than %zu candidates queued after %d ms", dir, n,
                        FAILOVER_WAIT_MS);
}

/* Once leading: revoke the own session and time until another candidate's on_leader(mine). */
static int revoke_and_time(failover_worker *w, coord_client *c) {
    failover_run *run = w->run;
    coord_conn *k = coord__client_conn(c);
    pthread_mutex_lock(&run->mu);
    uint64_t leads0 = run->leads;
    pthread_mutex_unlock(&run->mu);
    int64_t t0 = now_ns();
    int rc = k->backend->expire(k);
    int64_t t1 = now_ns();
    if (rc) {
        bench_fail_rc(&w->t, rc, "expire");
        return rc;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += FAILOVER_WAIT_MS / 1000;
    pthread_mutex_lock(&run->mu);
    while (run->leads == leads0 || run->leader == w->t.idx)
        if (pthread_cond_timedwait(&run->cv, &run->mu, &dl)) break;
    bool next = run->leads != leads0 && run->leader != w->t.idx;
    int64_t at = run->leader_ns;
    int sr = next ? samples_add(&run->expire_lat, t1 - t0) : 0;
    pthread_mutex_unlock(&run->mu);
    if (!next) {
        bench_fail(&w->t, "thread %d: no other candidate led within %d ms of the revocation",
                   w->t.idx, FAILOVER_WAIT_MS);
        return -1;
    }
    if (sr) {
        bench_fail(&w->t, "out of memory");
        return -1;
    }
    return bench_sample(&w->t, at - t0);
}

/* One candidacy: a client of its own, campaign, and once leading (with the others queued)
 * revoke the session. 0 to go on, 1 when the run ended, -1 when failed. */
static int failover_round(failover_worker *w, const char *value, size_t len) {
    failover_run *run = w->run;
    coord_client *c = NULL;
    coord_election *e = NULL;
    coord_election_options eo = COORD_ELECTION_OPTIONS_INIT;
    eo.on_leader = on_leader;
    eo.payload = w;
    atomic_store(&w->reported, false);
    coord_options co = COORD_OPTIONS_INIT;
    co.session_ttl_ms = FAILOVER_TTL_MS;
    int rc = coord_client_open(&c, run->o->uri, &co);
    if (rc) {
        bench_fail_rc(&w->t, rc, "connect");
        return -1;
    }
    int ret = -1;
    if ((rc = coord_election_new(&e, c, run->name, &eo)))
        bench_fail_rc(&w->t, rc, "coord_election_new");
    else if ((rc = coord_election_campaign(e, value, len, FAILOVER_WAIT_MS)))
        bench_fail_rc(&w->t, rc, "campaign");
    else if ((rc = await_queued(&w->t, c, run->dir, FAILOVER_CANDIDATES)) == 1)
        ret = 1;
    else if (rc)
        bench_fail_rc(&w->t, rc, "listing the candidates");
    else
        ret = revoke_and_time(w, c) ? -1 : 0;
    coord_election_free(e);
    coord_client_close(c);
    return ret;
}

static void *failover_main(void *arg) {
    failover_worker *w = arg;
    char value[32];
    size_t len = (size_t)snprintf(value, sizeof value, "candidate-%d", w->t.idx);
    if (bench_ready(&w->t))
        while (bench_going(&w->t))
            if (failover_round(w, value, len)) break;
    return NULL;
}

static int failover_scenario(const bench_opts *o, coord_client *c, const char *name, result *r,
                             int64_t ms, samples *expire_lat) {
    failover_run run = {.o = o, .name = name, .leader = -1};
    snprintf(run.dir, sizeof run.dir, "%s/election/%s", coord_client_prefix(c), name);
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    failover_worker ws[FAILOVER_CANDIDATES];
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < FAILOVER_CANDIDATES; i++) {
        ws[i].run = &run;
        atomic_init(&ws[i].reported, false);
    }
    int ret = bench_run_threads(ws, sizeof *ws, FAILOVER_CANDIDATES, failover_main, ms, NULL, NULL,
                                r, NULL, 0);
    *expire_lat = run.expire_lat;
    pthread_mutex_destroy(&run.mu);
    pthread_cond_destroy(&run.cv);
    return ret;
}

/* ---------- output ---------- */

static void json_result(const result *r) {
    printf("{\"name\":");
    json_str(r->name);
    printf(",\"threads\":%d,\"cycles\":%" PRIu64 ",\"elapsed_s\":%.3f,\"cycles_per_s\":%.1f,"
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"slices\":%d",
           r->threads, r->cycles, r->elapsed_s, r->rate, r->p50_ms, r->p99_ms, r->slices);
    if (r->handoffs)
        printf(",\"handoffs\":%" PRIu64 ",\"handoff_p50_ms\":%.3f,\"handoff_p99_ms\":%.3f",
               r->handoffs, r->handoff_p50_ms, r->handoff_p99_ms);
    putchar('}');
}

static void print_row(const result *r) {
    printf("%-10s %7d %8" PRIu64 " %10.1f %10.3f %10.3f\n", r->name, r->threads, r->cycles, r->rate,
           r->p50_ms, r->p99_ms);
}

int mode_election(const bench_opts *o) {
    coord_client *c = bench_connect(o);
    if (!c) return 1;
    const char *backend = coord_client_backend(c);
    char hname[64], fname[64];
    snprintf(hname, sizeof hname, "bench-%ld-handoff", (long)getpid());
    snprintf(fname, sizeof fname, "bench-%ld-failover", (long)getpid());
    if (!o->json)
        printf("coord-bench election: backend %s, prefix %s, %d s per scenario, %s\n", backend,
               coord_client_prefix(c), o->seconds,
               o->client_per_thread ? "a client per candidate"
                                    : "one client shared by the hand-off candidates");
    result hand = {.name = "handoff", .threads = DEFAULT_THREADS, .locks = 1};
    raw_result raw = {.r = {.name = "raw", .threads = DEFAULT_THREADS, .locks = 1}};
    bool raw_ok = true;
    int failed = 0;
    for (int k = 0; k < 2 * raw_slices(o); k++) {
        int64_t ms;
        if (raw_turn(o, k, &ms))
            raw_ok = raw_ok && raw_election(o, backend, DEFAULT_THREADS, ms, &raw);
        else if (handoff_slice(o, c, hname, &hand, ms))
            failed = 1;
    }
    raw.ran = raw_ok && raw.r.slices > 0;
    /* Failover rounds are slow (a new client each): twice the time, for more samples. */
    result fo = {.name = "failover", .threads = FAILOVER_CANDIDATES, .locks = 1};
    samples expire_lat = {0};
    if (failover_scenario(o, c, fname, &fo, (int64_t)o->seconds * 2000, &expire_lat)) failed = 1;
    coord_client_close(c);
    result_finish(&hand);
    result_finish(&raw.r);
    result_finish(&fo);
    samples_sort(&expire_lat);

    double h_over_raw = raw.ran ? ratio(hand.rate, raw.r.rate) : 0;
    bool rate_ok = raw.ran && h_over_raw >= TARGET_HANDOFF_OVER_RAW;
    bool fo_ok = fo.cycles > 0 && fo.p99_ms <= TARGET_FAILOVER_P99_MS;
    if (o->json) {
        printf("{\"mode\":\"election\",\"backend\":");
        json_str(backend);
        printf(",\"seconds\":%d,\"client\":\"%s\",\"handoff\":", o->seconds,
               o->client_per_thread ? "per-thread" : "shared");
        json_result(&hand);
        printf(",\"raw\":");
        json_raw(&raw, json_result, "handoff_over_raw", h_over_raw);
        printf(",\"failover\":");
        json_result(&fo);
        printf(",\"expire_call_p50_ms\":%.3f,\"expire_call_p99_ms\":%.3f", pct_ms(&expire_lat, 0.5),
               pct_ms(&expire_lat, 0.99));
        printf(",\"targets\":{\"handoff_over_raw\":%.1f,"
               "\"failover_p99_ms\":%.1f},\"targets_met\":{\"handoff_over_raw\":%s,"
               "\"failover_p99_ms\":%s},\"ok\":%s}\n",
               TARGET_HANDOFF_OVER_RAW, TARGET_FAILOVER_P99_MS, rate_ok ? "true" : "false",
               fo_ok ? "true" : "false", failed ? "false" : "true");
        goto out;
    }
    printf("%-10s %7s %8s %10s %10s %10s\n", "scenario", "threads", "cycles", "cycles/s", "p50 ms",
           "p99 ms");
    print_row(&hand);
    if (raw.ran) {
        print_row(&raw.r);
        printf("handoff: a cycle is campaign (timed) + resign, so cycles/s = hand-offs/s\n");
        printf("raw = %d bare %s candidates: %s\n", DEFAULT_THREADS, backend, raw.method);
        printf("(handoff and raw measured interleaved in %d slices each)\n", raw_slices(o));
        printf("handoff / raw = %.2f   (target >= %.1f: %s)\n", h_over_raw, TARGET_HANDOFF_OVER_RAW,
               met(rate_ok));
    } else {
        printf("raw bound not measured: %s\n", raw.err);
    }
    if (hand.handoffs)
        printf("handoff latency (resign start -> next leader's campaign returns): p50 %.3f ms, "
               "p99 %.3f ms over %" PRIu64 " hand-offs\n",
               hand.handoff_p50_ms, hand.handoff_p99_ms, hand.handoffs);
    print_row(&fo);
    printf("failover: %d candidates, a client each; revocation (just before the backend's expire "
           "call) -> the next leader's on_leader(mine): p50 %.3f ms, p99 %.3f ms over %" PRIu64
           " revocations (target p99 <= %.0f ms: %s)\n",
           FAILOVER_CANDIDATES, fo.p50_ms, fo.p99_ms, fo.cycles, TARGET_FAILOVER_P99_MS,
           met(fo_ok));
    printf("the expire call itself (it returns once the revoked client saw its session end): "
           "p50 %.3f ms, p99 %.3f ms\n",
           pct_ms(&expire_lat, 0.5), pct_ms(&expire_lat, 0.99));
out:
    free(expire_lat.v);
    result_free(&hand);
    result_free(&raw.r);
    result_free(&fo);
    return failed;
}
