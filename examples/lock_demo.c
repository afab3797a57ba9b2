/*
 * lock_demo: N worker processes take turns holding one distributed lock.
 *
 *   lock_demo --uri zk://127.0.0.1:2181/demo --workers 3 --rounds 5 --name demo
 *   COORD_URI=etcd://127.0.0.1:2379/demo lock_demo
 *
 * Each worker opens its own client (a session per process), then R times: acquires the lock
 * (waiting as long as it takes), prints its fencing token, stays ~50 ms in the critical section
 * and releases. Tokens grow strictly from one holder to the next, whatever the worker.
 * The parent waits for every worker and exits non-zero when any of them failed.
 */
#define _POSIX_C_SOURCE 200809L
#include <coord.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

/* Report a failed call of a worker; returns 1 (its exit status). */
static int fail(int idx, const char *what, const char *name, int rc) {
    fprintf(stderr, "worker %d pid %ld: %s%s%s: %s: %s\n", idx, (long)getpid(), what,
            name ? " " : "", name ? name : "", coord_strerror(rc), coord_last_error());
    return 1;
}

/* One worker process: its own client, R rounds of acquire / hold / release. Exit status. */
static int worker(int idx, const char *uri, const char *name, int rounds) {
    coord_client *c = NULL;
    int rc = coord_client_open(&c, uri, NULL);
    if (rc) return fail(idx, "connect", NULL, rc);
    coord_lock *l = NULL;
    rc = coord_lock_new(&l, c, name);
    if (rc) {
        fail(idx, "lock", name, rc);
        coord_client_close(c);
        return 1;
    }
    int status = 0;
    for (int r = 0; r < rounds && !status; r++) {
        uint64_t token = 0;
        if ((rc = coord_lock_acquire(l, -1))) {
            status = fail(idx, "acquire", name, rc);
        } else if ((rc = coord_lock_token(l, &token))) {
            status = fail(idx, "token", name, rc);
        } else {
            printf("worker %d pid %ld holds %s token %" PRIu64 "\n", idx, (long)getpid(), name,
                   token);
            ex_sleep_ms(50); /* the critical section */
            if ((rc = coord_lock_release(l))) status = fail(idx, "release", name, rc);
        }
    }
    coord_lock_free(l); /* releases a hold left by a failure above */
    coord_client_close(c);
    return status;
}

/* What each worker is given. */
typedef struct worker_args {
    const char *uri, *name;
    int rounds;
} worker_args;

static int run_worker(int idx, void *arg) {
    const worker_args *j = arg;
    return worker(idx, j->uri, j->name, j->rounds);
}

int main(int argc, char **argv) {
    worker_args j = {.name = "demo", .rounds = 5};
    int workers = 3;
    const ex_opt opts[] = {
        {"--name", &j.name, .name = 1},
        {"--workers", .num = &workers, .lo = 1, .hi = INT_MAX},
        {"--rounds", .num = &j.rounds, .lo = 1, .hi = INT_MAX},
        {NULL},
    };
    int rc =
        ex_parse(argc, argv, "lock_demo",
                 "usage: %s [--uri URI] [--workers N] [--rounds R] [--name NAME]\n"
                 "  URI from --uri or COORD_URI; defaults: 3 workers, 5 rounds, name \"demo\"\n",
                 opts, &j.uri);
    if (rc) return rc < 0 ? 0 : rc;
    /* Line-buffered, so that the workers' lines do not mix. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    pid_t *pids = calloc((size_t)workers, sizeof *pids);
    if (!pids) {
        fprintf(stderr, "lock_demo: out of memory\n");
        return 1;
    }
    int started = ex_fork_workers("lock_demo", workers, run_worker, &j, pids);
    int failed = (started < workers) + ex_wait_workers("lock_demo", pids, started);
    free(pids);
    if (failed) {
        fprintf(stderr, "lock_demo: %d of %d workers failed\n", failed, workers);
        return 1;
    }
    printf("lock_demo: %d workers x %d rounds on %s done\n", workers, j.rounds, j.name);
    return 0;
}
