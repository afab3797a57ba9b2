/*
 * jobs: a producer and workers over a work queue with claims; a worker killed in the middle of
 * a job, whose job another worker redoes once the dead one's session has ended.
 *
 *   jobs --uri zk://127.0.0.1:2181/demo --workers 3 --jobs 10 --ttl-ms 3000
 *   COORD_URI=etcd://127.0.0.1:2379/demo jobs --name jobs --work-ms 300
 *
 * W worker processes (--workers, default 3), each its own client (session TTL --ttl-ms, default
 * 3000), claim items of the queue --name (default "jobs") with coord_queue_claim, work on each
 * for --work-ms (default 300) and ack it (coord_item_ack). A claimed item stays in the queue,
 * hidden from the other workers, until it is acked, or until its claimer's session ends: then it
 * is visible again, at its place, and another worker claims it (at least once). This process
 * is the producer: it puts J jobs (--jobs, default 10) into the queue, "run <pid> job <j>".
 *
 * Once a job is done, this process kills (SIGKILL) the next worker it finds in the middle of a
 * job, after its claim and before its ack; its job comes back when its session ends (about the
 * TTL later) and another worker does it. The workers count, in shared memory, how many times
 * each job was started and acked. The checks: every job was acked exactly once (none lost, none
 * done twice after an ack), the killed worker's job was started twice and acked by another
 * worker, and nothing of this run is left in the queue. Items left by an earlier run are
 * acked and dropped. Exit 0 when every check held, 1 otherwise, 2 for bad options.
 */
#define _DEFAULT_SOURCE
#include <coord.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

#define MAX_WORKERS 32
#define MAX_JOBS 1000

/* What a worker is doing, in shared memory: IDLE, working on job j (j + 1 > 0), ACKING, or
 * DOOMED (chosen by this process to be killed in the middle of its job). */
enum { IDLE = 0, ACKING = -1, DOOMED = -2 };

/* Shared by the workers and this process (an anonymous shared mapping made before the forks). */
typedef struct shared {
    atomic_int state[MAX_WORKERS];
    atomic_int started[MAX_JOBS]; /* times each job was claimed and begun */
    atomic_int acked[MAX_JOBS];   /* times each job was acked */
    atomic_int acked_by[MAX_JOBS];
    atomic_int acked_total;
    atomic_int ended; /* worker processes ending */
} shared;

typedef struct config {
    const char *uri, *name;
    int workers, jobs, ttl_ms, work_ms;
    char run[32]; /* "run <pid>" */
    shared *sh;
} config;

/* The job number of an item of this run, -1 for anything else (an earlier run's item). */
static int job_of(const config *cfg, const char *data, size_t len) {
    size_t rl = strlen(cfg->run);
    char buf[64];
    int j;
    char end;
    if (len >= sizeof buf || len <= rl || memcmp(data, cfg->run, rl)) return -1;
    memcpy(buf, data + rl, len - rl);
    buf[len - rl] = 0;
    return sscanf(buf, " job %d%c", &j, &end) == 1 && j >= 0 && j < cfg->jobs ? j : -1;
}

/* ---------- a worker ---------- */

static int fail(int idx, const char *what, int rc) {
    fprintf(stderr, "worker %d: %s: %s: %s\n", idx, what, coord_err_name(rc), coord_last_error());
    return 1;
}

/* Work on one claimed item and ack it. 0, or 1 on a failure. */
static int do_item(const config *cfg, int idx, coord_item *it) {
    shared *sh = cfg->sh;
    size_t len;
    const char *data = coord_item_data(it, &len);
    int j = job_of(cfg, data, len);
    if (j < 0) {
        printf("worker %d: drops \"%.*s\", left by another run\n", idx, (int)(len < 60 ? len : 60),
               data);
        int rc = coord_item_ack(it);
        return rc && rc != COORD_ESESSION ? fail(idx, "ack", rc) : 0;
    }
    int times = atomic_fetch_add(&sh->started[j], 1) + 1;
    atomic_store(&sh->state[idx], j + 1);
    if (times == 1)
        printf("worker %d: claims job %d\n", idx, j);
    else
        printf("worker %d: claims job %d again (start %d: its claimer's session ended)\n", idx, j,
               times);
    ex_sleep_ms(cfg->work_ms); /* the work */
    int working = j + 1;
    if (!atomic_compare_exchange_strong(&sh->state[idx], &working, ACKING))
        for (;;) /* DOOMED: killed in the middle of the job, before its ack */
            pause();
    int rc = coord_item_ack(it);
    atomic_store(&sh->state[idx], IDLE);
    if (rc == COORD_ESESSION) { /* the claim went with the session: somebody else redoes it */
        printf("worker %d: job %d: claim lost with the session, not acked\n", idx, j);
        return 0;
    }
    if (rc) return fail(idx, "ack", rc);
    atomic_fetch_add(&sh->acked[j], 1);
    atomic_store(&sh->acked_by[j], idx);
    atomic_fetch_add(&sh->acked_total, 1);
    printf("worker %d: acks job %d\n", idx, j);
    return 0;
}

static int worker(int idx, const config *cfg) {
    coord_options o = COORD_OPTIONS_INIT;
    o.session_ttl_ms = cfg->ttl_ms;
    coord_client *c = NULL;
    coord_queue *q = NULL;
    int rc = coord_client_open(&c, cfg->uri, &o);
    if (rc) return fail(idx, "connect", rc);
    if ((rc = coord_queue_new(&q, c, cfg->name))) {
        coord_client_close(c);
        return fail(idx, "queue", rc);
    }
    /* Bounded: the jobs, and one of them again after a TTL. */
    int64_t deadline =
        ex_now_ms() + 30000 + 3 * cfg->ttl_ms + (int64_t)cfg->jobs * cfg->work_ms / cfg->workers;
    int status = 0;
    while (!status && atomic_load(&cfg->sh->acked_total) < cfg->jobs) {
        if (ex_now_ms() > deadline) {
            fprintf(stderr, "worker %d: the jobs are not all done in the example's time\n", idx);
            status = 1;
            break;
        }
        coord_item *it = NULL;
        rc = coord_queue_claim(q, &it, 500); /* then look whether all is done */
        if (rc == COORD_ETIMEDOUT || rc == COORD_EUNAVAILABLE || rc == COORD_ESESSION) continue;
        if (rc)
            status = fail(idx, "claim", rc);
        else
            status = do_item(cfg, idx, it);
    }
    coord_queue_free(q);
    coord_client_close(c);
    return status;
}

static int worker_main(int idx, void *arg) {
    const config *cfg = arg;
    int status = worker(idx, cfg);
    atomic_fetch_add(&cfg->sh->ended, 1);
    return status;
}

/* ---------- the producer and the demo ---------- */

/* Kill (SIGKILL) the next worker found in the middle of a job; its index, -1 when none was
 * found within `ms`. *job: its job. */
static int kill_one(const config *cfg, const pid_t *pids, int ms, int *job) {
    shared *sh = cfg->sh;
    for (int64_t deadline = ex_now_ms() + ms;
         ex_now_ms() < deadline && atomic_load(&sh->ended) < cfg->workers; ex_sleep_ms(1)) {
        for (int i = 0; i < cfg->workers; i++) {
            int s = atomic_load(&sh->state[i]);
            /* DOOMED first, so that the worker cannot ack the job any more. */
            if (s > 0 && atomic_compare_exchange_strong(&sh->state[i], &s, DOOMED)) {
                kill(pids[i], SIGKILL);
                *job = s - 1;
                return i;
            }
        }
    }
    return -1;
}

/* Put the jobs. 0, or 1 after a failure. */
static int produce(const config *cfg) {
    coord_client *c = NULL;
    coord_queue *q = NULL;
    int rc = coord_client_open(&c, cfg->uri, NULL);
    if (!rc) rc = coord_queue_new(&q, c, cfg->name);
    for (int j = 0; !rc && j < cfg->jobs; j++) {
        char item[64];
        int n = snprintf(item, sizeof item, "%s job %d", cfg->run, j);
        rc = coord_queue_put(q, item, (size_t)n);
    }
    if (rc)
        fprintf(stderr, "jobs: producer: %s: %s\n", coord_err_name(rc), coord_last_error());
    else
        printf("producer: put %d jobs into queue %s\n", cfg->jobs, cfg->name);
    coord_queue_free(q);
    coord_client_close(c);
    return rc ? 1 : 0;
}

/* The queue's items that can be claimed now, -1 when it cannot be read. */
static long queue_size(const config *cfg) {
    coord_client *c = NULL;
    coord_queue *q = NULL;
    size_t n = 0;
    int rc = coord_client_open(&c, cfg->uri, NULL);
    if (!rc) rc = coord_queue_new(&q, c, cfg->name);
    if (!rc) rc = coord_queue_size(q, &n);
    if (rc) fprintf(stderr, "jobs: size: %s: %s\n", coord_err_name(rc), coord_last_error());
    coord_queue_free(q);
    coord_client_close(c);
    return rc ? -1 : (long)n;
}

int main(int argc, char **argv) {
    config cfg = {.name = "jobs", .workers = 3, .jobs = 10, .ttl_ms = 3000, .work_ms = 300};
    const ex_opt opts[] = {
        {"--name", &cfg.name, .name = 1},
        {"--workers", .num = &cfg.workers, .lo = 2, .hi = MAX_WORKERS},
        {"--jobs", .num = &cfg.jobs, .lo = 2, .hi = MAX_JOBS},
        {"--ttl-ms", .num = &cfg.ttl_ms, .lo = 1000, .hi = 60000},
        {"--work-ms", .num = &cfg.work_ms, .lo = 50, .hi = 10000},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "jobs",
                      "usage: %s [--uri URI] [--workers W] [--jobs J] [--ttl-ms MS] [--work-ms "
                      "MS] [--name NAME]\n"
                      "  URI from --uri or COORD_URI; defaults: 3 workers, 10 jobs of 300 ms, "
                      "TTL 3000 ms, queue \"jobs\"\n",
                      opts, &cfg.uri);
    if (rc) return rc < 0 ? 0 : rc;
    setvbuf(stdout, NULL, _IOLBF, 0); /* so that the processes' lines do not mix */
    snprintf(cfg.run, sizeof cfg.run, "run %ld", (long)getpid());
    cfg.sh = mmap(NULL, sizeof *cfg.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (cfg.sh == MAP_FAILED) {
        perror("jobs: mmap");
        return 1;
    }
    shared *sh = cfg.sh; /* zero-filled: every counter 0, every worker IDLE */

    /* The workers first: a process with threads (a client's) should not fork. */
    pid_t pids[MAX_WORKERS];
    int started = ex_fork_workers("jobs", cfg.workers, worker_main, &cfg, pids);
    int failures = (started < cfg.workers) || produce(&cfg);
    int victim = -1, job = -1;
    int64_t t0 = 0;
    for (int64_t until = ex_now_ms() + 20000; !failures && !atomic_load(&sh->acked_total) &&
                                              atomic_load(&sh->ended) < cfg.workers &&
                                              ex_now_ms() < until;)
        ex_sleep_ms(2);
    if (!failures && (victim = kill_one(&cfg, pids, 20000, &job)) < 0) {
        printf("no worker in the middle of a job (within 20 s): FAILED\n");
        failures++;
    }
    if (victim >= 0) {
        t0 = ex_now_ms();
        printf("killed worker %d (SIGKILL) in the middle of job %d: its claim stays until its "
               "session ends\n",
               victim, job);
        for (int64_t until = t0 + cfg.ttl_ms + 20000;
             atomic_load(&sh->started[job]) < 2 && ex_now_ms() < until;)
            ex_sleep_ms(5);
        if (atomic_load(&sh->started[job]) >= 2)
            printf("job %d claimed again %" PRId64 " ms after the kill (session TTL %d ms)\n", job,
                   ex_now_ms() - t0, cfg.ttl_ms);
        waitpid(pids[victim], NULL, 0); /* reaped here; the others below */
    }
    int live = 0;
    for (int i = 0; i < started; i++) {
        if (i == victim) continue;
        if (failures) kill(pids[i], SIGTERM); /* nothing more to wait for */
        pids[live++] = pids[i];
    }
    failures += ex_wait_workers("jobs", pids, live);

    int lost = 0, twice = 0;
    for (int j = 0; j < cfg.jobs; j++) {
        int a = atomic_load(&sh->acked[j]);
        lost += a == 0;
        twice += a > 1;
        if (a != 1) printf("job %d acked %d times: FAILED\n", j, a);
    }
    printf("jobs: %d jobs, %d acked, %d lost, %d acked more than once: %s\n", cfg.jobs,
           atomic_load(&sh->acked_total), lost, twice, lost || twice ? "FAILED" : "ok");
    failures += lost || twice;
    if (victim >= 0) {
        int s = atomic_load(&sh->started[job]), by = atomic_load(&sh->acked_by[job]);
        bool ok = s == 2 && atomic_load(&sh->acked[job]) == 1 && by != victim;
        printf("job %d of the killed worker %d: started %d times, acked by worker %d: %s\n", job,
               victim, s, by, ok ? "ok" : "FAILED");
        failures += !ok;
    }
    long left = queue_size(&cfg);
    printf("queue %s: %ld items left: %s\n", cfg.name, left, left == 0 ? "ok" : "FAILED");
    failures += left != 0;
    munmap(cfg.sh, sizeof *cfg.sh);
    printf("jobs: %s\n", failures ? "FAILED" : "every check held");
    return failures ? 1 : 0;
}
