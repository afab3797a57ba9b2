/*
 * Fault suite harness (tests/cluster): a workload runs in worker processes, each with its own
 * client, while the test process applies one fault schedule to the 3-member cluster of
 * scripts/servers.sh:
 *
 *   1. the leader is killed, the workload goes on without it, then it is restarted;
 *   2. a follower is stopped (SIGSTOP) for FX_FOLLOWER_PAUSE_MS, then resumed;
 *   3. one worker, the victim, is stopped for longer than its session TTL, then resumed.
 *
 * Each fault is an event; the workload stamps the first success of an operation that started
 * after it, which gives the recovery time. A fault starts once the workload recovered from the
 * one before, so that each is measured alone. Workers never reopen their client: whatever a fault
 * does, the same coord_client carries on (the library may replace an expired session inside).
 *
 * Counters shared between processes are atomics in one MAP_SHARED mapping, so a process stopped
 * at any point never holds anything another one waits for. Each test first heals the cluster
 * (scripts/servers.sh heal) and its teardown undoes a fault a failed assertion left in place.
 */
#ifndef COORD_FAULTS_H
#define COORD_FAULTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "testing.h"

#define FX_MAX_WORKERS 8
#define FX_MAX_EVENTS 8
#define FX_NCODES 17 /* -COORD_ECANCELED + 1: error codes counted by value */

#define FX_WORKER_TTL_MS 10000    /* survives every single-member fault */
#define FX_VICTIM_TTL_MS 3000     /* the paused client's session, expired on purpose */
#define FX_VICTIM_PAUSE_MS 4500   /* at least: the TTL plus the servers' expiry granularity */
#define FX_OP_TIMEOUT_MS 2000     /* per-operation timeout of every worker client */
#define FX_FOLLOWER_PAUSE_MS 3000 /* below ZooKeeper's 2/3 TTL: clients wait rather than move */
#define FX_FAULT_HOLD_MS 1000     /* workload run with the leader down once it works again */
#define FX_WAIT_MS 30000          /* bound of every wait for the workload or the cluster */

/* One fault, as the workload saw it. Times are CLOCK_MONOTONIC ms, the same in every process. */
typedef struct fx_event {
    char name[24];
    int64_t at_ms;
    _Atomic int64_t first_ok_ms; /* first success of an operation started at or after at_ms */
} fx_event;

/* A worker process. Written by the worker (and its client's callbacks), read by the test. */
typedef struct fx_worker {
    pid_t pid;
    _Atomic long ops, errors;
    _Atomic long codes[FX_NCODES];
    _Atomic uint64_t session; /* coord_client_session, kept current by the worker */
    _Atomic int state;        /* the last session state reported (0: CONNECTED at open) */
    _Atomic int lost;         /* LOST reports */
    _Atomic int64_t lost_ms;  /* time of the last one */
    _Atomic int64_t last_ok_ms;
    _Atomic int stopped;         /* set by the test while it holds the worker stopped */
    char failure[256];           /* why the worker gave up (it then exits 1) */
    char detail[FX_NCODES][160]; /* coord_last_error() of the last failure of each code */
} fx_worker;

typedef struct fx_shared {
    _Atomic int stop;
    _Atomic int nevents;
    fx_event ev[FX_MAX_EVENTS];
    fx_worker w[FX_MAX_WORKERS];
    /* Victim hand-shake for fx_pause_victim(park = true). */
    _Atomic int park_req, parked, resume_go;
} fx_shared;

typedef struct fx_run fx_run;

/* A workload: runs in worker `id`'s own process with its own client until fx_stopping();
 * returns 0, or 1 after fx_fail. Must not use cmocka's asserts (they belong to the test). */
typedef int (*fx_body)(fx_run *run, int id, coord_client *c);

struct fx_run {
    const coord_test_backend *b;
    const char *scenario;
    char *uri;
    int nworkers;
    int victim; /* worker paused past its TTL */
    fx_shared *sh;
    void *scn; /* the scenario's own shared state, in the same mapping */
    size_t map_len;
    int64_t t0;
    int killed, paused;         /* member numbers down or stopped now (cleanup), 0: none */
    int64_t victim_stop_ms;     /* client-stop event time */
    int64_t victim_cont_ms;     /* client-cont event time */
    int64_t victim_takeover_ms; /* stop -> the others took over (-1: not told) */
    int64_t victim_pause_ms;    /* how long it was stopped */
    int64_t victim_seen_ms;     /* cont -> the victim's LOST report */
    bool victim_no_ops;         /* the victim's work is not counted in operations (ring members) */
    /* Called before the test fails in a wait, to log what the servers hold (may be NULL). */
    void (*diagnose)(fx_run *run);
};

/* Map the shared state (plus `scn_size` bytes for the scenario, zeroed) and build the URI.
 * Nothing runs yet: the scenario initialises run->scn, then calls fx_launch. */
fx_run *fx_prepare(void **state, const char *scenario, int nworkers, int victim, size_t scn_size);

/* Fork the workers; each opens its client on the run's URI and runs `body`. */
void fx_launch(fx_run *run, fx_body body);

/* Wait (bounded) until the workers together completed `n` more operations. */
void fx_await_ops(fx_run *run, long n);

/*
 * The schedule, in order. The victim is stopped once its session is up and `ready` (may be
 * NULL) says its work shows, and with `park` once it reported (fx_parked) it holds what the
 * scenario wants it to hold. It stays stopped FX_VICTIM_PAUSE_MS, and until `taken_over` (may
 * be NULL) says the others saw its session go; once resumed it must report LOST.
 */
void fx_kill_leader(fx_run *run);
void fx_pause_follower(fx_run *run);
void fx_pause_victim(fx_run *run, bool park, bool (*ready)(fx_run *run),
                     bool (*taken_over)(fx_run *run));

/* Wait (bounded) until an operation succeeded after every fault, and one of the victim's
 * after its resumption (unless run->victim_no_ops): clients keep working. */
void fx_await_recovered(fx_run *run);

/* fx_await_recovered, then stop the workers and reap them (bounded); fails the test when one
 * failed. */
void fx_finish(fx_run *run);

/* Print the scenario's report line (ops, errors by code, violations, recovery per fault, plus
 * `extra`) and free the run. */
void fx_report(fx_run *run, long violations, const char *extra);

/* Teardown for every fault test: after a failure, kill leftover workers, resume a stopped
 * member and restart a killed one, so the next test finds the cluster whole. */
int fx_teardown(void **state);

/* Worker side. */
bool fx_stopping(const fx_run *run);
/* An operation that started at `started_ms` succeeded. */
void fx_ok(fx_run *run, int id, int64_t started_ms);
/* An operation failed with `rc`; the caller decides whether to back off. */
void fx_err(fx_run *run, int id, int rc);
/* Record why the worker gives up; returns 1 for `return fx_fail(...)`. */
int fx_fail(fx_run *run, int id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Victim, park mode: true when asked to park (then hold, call fx_parked, go on when it returns). */
bool fx_park_requested(const fx_run *run);
/* Tell the test the victim is ready to be stopped, and wait until it was stopped and resumed. */
void fx_parked(fx_run *run);
/* Sleep `ms` (workload pacing only). */
void fx_nap(int ms);
/* Diagnosis of a failed wait: the entries of "<prefix>/<dir>" read through a fresh client, and
 * each worker's counts and last error per code. */
void fx_dump(fx_run *run, const char *dir);

/* Both backends, with fx_teardown. */
#define FX_TESTS(fn)                                                                               \
    {"zk:" #fn, fn, NULL, fx_teardown, (void *)&coord_test_zk}, {                                  \
        "etcd:" #fn, fn, NULL, fx_teardown, (void *)&coord_test_etcd                               \
    }

#endif
