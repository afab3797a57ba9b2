/*
 * semaphore: a distributed semaphore caps how many jobs run at once across processes.
 *
 *   semaphore --uri zk://127.0.0.1:2181/demo --workers 10 --max 3 --jobs 2 --name jobs
 *   COORD_URI=etcd://127.0.0.1:2379/demo semaphore
 *
 * W worker processes (each its own client and session) run J jobs each; a job holds one of the
 * semaphore's M leases for ~100 ms. The processes count the running jobs in shared memory: a
 * job that starts while M others run is a failure, and the peak is printed at the end (it
 * reaches M when there are more workers than leases). The semaphore keeps its limit on the
 * servers: every handle on "jobs" must say the same M (another M gets COORD_ECONFLICT).
 */
#define _DEFAULT_SOURCE
#include <coord.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

#define MAX_WORKERS 64

/* Shared by the worker processes (an anonymous shared mapping made before the forks). */
typedef struct shared {
    atomic_int running; /* jobs running now */
    atomic_int peak;    /* the most ever running at once */
} shared;

typedef struct job_args {
    const char *uri, *name;
    int max, jobs;
    shared *sh;
} job_args;

/* One job, holding a lease: count it in, check the cap, work, count it out. 0, or 1 when the
 * cap was exceeded. */
static int run_job(int idx, const job_args *a) {
    int now = atomic_fetch_add(&a->sh->running, 1) + 1;
    int peak = atomic_load(&a->sh->peak);
    while (now > peak && !atomic_compare_exchange_weak(&a->sh->peak, &peak, now)) {
    }
    printf("worker %d pid %ld: job running (%d of at most %d)\n", idx, (long)getpid(), now, a->max);
    ex_sleep_ms(100); /* the job */
    atomic_fetch_sub(&a->sh->running, 1);
    if (now <= a->max) return 0;
    fprintf(stderr, "worker %d: %d jobs ran at once, over the limit %d\n", idx, now, a->max);
    return 1;
}

/* A worker process: J times acquire a lease (waiting as long as it takes), run a job, release. */
static int worker(int idx, void *arg) {
    const job_args *a = arg;
    coord_client *c = NULL;
    coord_semaphore *s = NULL;
    int rc = coord_client_open(&c, a->uri, NULL);
    if (!rc) rc = coord_semaphore_new(&s, c, a->name, (unsigned)a->max);
    int status = 0;
    for (int j = 0; j < a->jobs && !rc && !status; j++) {
        if (!(rc = coord_semaphore_acquire(s, -1))) {
            status = run_job(idx, a);
            rc = coord_semaphore_release(s);
        }
    }
    if (rc)
        fprintf(stderr, "worker %d: semaphore %s: %s: %s\n", idx, a->name, coord_strerror(rc),
                coord_last_error());
    coord_semaphore_free(s); /* gives back a lease still held after a failure */
    coord_client_close(c);
    return rc || status;
}

int main(int argc, char **argv) {
    job_args a = {.name = "jobs", .max = 3, .jobs = 2};
    int workers = 10;
    const ex_opt opts[] = {
        {"--name", &a.name, .name = 1},
        {"--workers", .num = &workers, .lo = 1, .hi = MAX_WORKERS},
        {"--max", .num = &a.max, .lo = 1, .hi = 1000},
        {"--jobs", .num = &a.jobs, .lo = 1, .hi = 1000},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "semaphore",
                      "usage: %s [--uri URI] [--workers W] [--max M] [--jobs J] [--name NAME]\n"
                      "  URI from --uri or COORD_URI; defaults: 10 workers, at most 3 jobs at "
                      "once, 2 jobs each, name \"jobs\"\n",
                      opts, &a.uri);
    if (rc) return rc < 0 ? 0 : rc;
    setvbuf(stdout, NULL, _IOLBF, 0); /* so that the workers' lines do not mix */
    a.sh = mmap(NULL, sizeof *a.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (a.sh == MAP_FAILED) {
        perror("semaphore: mmap");
        return 1;
    }
    atomic_init(&a.sh->running, 0);
    atomic_init(&a.sh->peak, 0);

    pid_t pids[MAX_WORKERS];
    int started = ex_fork_workers("semaphore", workers, worker, &a, pids);
    int failed = (started < workers) + ex_wait_workers("semaphore", pids, started);
    int peak = atomic_load(&a.sh->peak);
    munmap(a.sh, sizeof *a.sh);
    printf("semaphore: %d workers x %d jobs, at most %d at once on %s: peak %d, %s\n", workers,
           a.jobs, a.max, a.name, peak, failed || peak > a.max ? "FAILED" : "ok");
    return failed || peak > a.max;
}
