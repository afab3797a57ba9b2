/*
 * counter_demo: N worker processes add to one distributed counter; the total must come out exact.
 *
 *   counter_demo --uri zk://127.0.0.1:2181/demo --workers 4 --adds 100 --name demo
 *   COORD_URI=etcd://127.0.0.1:2379/demo counter_demo --shards 8
 *
 * The parent reads the counter's starting value, forks N workers (default 4) and waits for
 * them. Each worker opens its own client (a session per process) and adds 1, A times (default
 * 100), to the counter NAME (default "demo"), spread over S shard keys when --shards S > 1 (the
 * parent then reads the sum of the shards). Each worker reports how many adds succeeded and how
 * many failed. An add that fails with an unknown outcome (timeout, connection lost) may or may
 * not have been applied - it is never applied twice - so with failures the counter may grow by
 * anything from the successful adds to the successful plus failed ones.
 * The parent then reads the final value and prints
 *
 *   expected +<successful> (up to +<successful + failed>), counter went from X to Y: exact
 *
 * or MISMATCH (exit 1) when Y - X is outside that range. Exactness assumes nobody else adds to
 * NAME meanwhile. Exit 1 as well when a worker could not run or report.
 */
#define _POSIX_C_SOURCE 200809L
#include <coord.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define MAX_PRINTED_FAILURES 5 /* per worker; later ones are only counted */

/* What a worker sends the parent, once, in one write (atomic: smaller than PIPE_BUF). */
typedef struct report {
    int32_t idx;
    int32_t ran; /* 1 when the worker got as far as adding */
    int64_t ok, failed;
} report;

/* Open a client and a handle on the counter. 0, or 1 after printing why (prefixed `who`). */
static int open_counter(const char *who, const char *uri, const char *name, unsigned shards,
                        coord_client **c, coord_counter **k) {
    *c = NULL;
    *k = NULL;
    int rc = coord_client_open(c, uri, NULL);
    if (rc) {
        fprintf(stderr, "%s: connect: %s: %s\n", who, coord_strerror(rc), coord_last_error());
        return 1;
    }
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    o.shards = shards;
    rc = coord_counter_new(k, *c, name, &o);
    if (rc) {
        fprintf(stderr, "%s: counter %s: %s: %s\n", who, name, coord_strerror(rc),
                coord_last_error());
        coord_client_close(*c);
        *c = NULL;
        return 1;
    }
    return 0;
}

/* Read the counter's value (the sum of its shards) with a client of its own. 0, or 1. */
static int read_counter(const char *uri, const char *name, unsigned shards, const char *when,
                        int64_t *out) {
    coord_client *c;
    coord_counter *k;
    if (open_counter("counter_demo", uri, name, shards, &c, &k)) return 1;
    int rc = coord_counter_get(k, out);
    if (rc)
        fprintf(stderr, "counter_demo: read %s value of %s: %s: %s\n", when, name,
                coord_strerror(rc), coord_last_error());
    coord_counter_free(k);
    coord_client_close(c);
    return rc ? 1 : 0;
}

/* One worker process: its own client, `adds` adds of 1. Reports on `fd`; exit status. */
static int worker(int idx, int fd, const char *uri, const char *name, unsigned shards, int adds) {
    char who[64];
    snprintf(who, sizeof who, "worker %d pid %ld", idx, (long)getpid());
    report rep = {.idx = idx};
    coord_client *c;
    coord_counter *k;
    int status = open_counter(who, uri, name, shards, &c, &k);
    if (!status) {
        rep.ran = 1;
        for (int i = 0; i < adds; i++) {
            int rc = coord_counter_add(k, 1, NULL);
            if (rc == 0) {
                rep.ok++;
                continue;
            }
            if (++rep.failed <= MAX_PRINTED_FAILURES)
                fprintf(stderr,
                        "%s: add %d of %d failed, it may or may not have been applied: %s: %s\n",
                        who, i + 1, adds, coord_strerror(rc), coord_last_error());
        }
        if (rep.failed > MAX_PRINTED_FAILURES)
            fprintf(stderr, "%s: %" PRId64 " adds failed in all\n", who, rep.failed);
        coord_counter_free(k);
        coord_client_close(c);
    }
    if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep) {
        fprintf(stderr, "%s: cannot report to the parent: %s\n", who, strerror(errno));
        status = 1;
    }
    return status;
}

/* What each worker is given. */
typedef struct worker_args {
    int rfd, fd; /* the report pipe's ends: the worker writes on fd */
    const char *uri, *name;
    int shards, adds;
} worker_args;

static int run_worker(int idx, void *arg) {
    const worker_args *a = arg;
    close(a->rfd);
    return worker(idx, a->fd, a->uri, a->name, (unsigned)a->shards, a->adds);
}

int main(int argc, char **argv) {
    const char *uri, *name = "demo";
    int workers = 4, adds = 100, shards = 1;
    const ex_opt opts[] = {
        {"--name", &name, .name = 1},
        {"--workers", .num = &workers, .lo = 1, .hi = 10000},
        {"--adds", .num = &adds, .lo = 1, .hi = INT_MAX},
        {"--shards", .num = &shards, .lo = 1, .hi = 1024},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "counter_demo",
                      "usage: %s [--uri URI] [--workers N] [--adds A] [--name NAME] [--shards S]\n"
                      "  URI from --uri or COORD_URI; defaults: 4 workers, 100 adds each, name "
                      "\"demo\",\n"
                      "  1 shard (S > 1 spreads the adds over S keys; reads sum them)\n",
                      opts, &uri);
    if (rc) return rc < 0 ? 0 : rc;

    /* The starting value, read (and the client closed) before forking: a child must not inherit
     * a client's threads and connections. */
    int64_t before;
    if (read_counter(uri, name, (unsigned)shards, "the starting", &before)) return 1;

    int fds[2];
    if (pipe(fds)) {
        fprintf(stderr, "counter_demo: pipe: %s\n", strerror(errno));
        return 1;
    }
    /* Line-buffered, so that the workers' lines do not mix. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    pid_t *pids = calloc((size_t)workers, sizeof *pids);
    report *reps = calloc((size_t)workers, sizeof *reps);
    char *got = calloc((size_t)workers, 1);
    if (!pids || !reps || !got) {
        fprintf(stderr, "counter_demo: out of memory\n");
        return 1;
    }
    worker_args wa = {fds[0], fds[1], uri, name, shards, adds};
    int started = ex_fork_workers("counter_demo", workers, run_worker, &wa, pids);
    int failed_workers = started < workers;
    close(fds[1]);
    /* Reports until every worker has closed its end (exited). */
    report rep;
    ssize_t n;
    while ((n = read(fds[0], &rep, sizeof rep)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n != (ssize_t)sizeof rep) {
            fprintf(stderr, "counter_demo: reading reports: %s\n",
                    n < 0 ? strerror(errno) : "short read");
            break;
        }
        if (rep.idx >= 0 && rep.idx < started && !got[rep.idx]) {
            reps[rep.idx] = rep;
            got[rep.idx] = 1;
        }
    }
    close(fds[0]);
    failed_workers += ex_wait_workers("counter_demo", pids, started);

    /* A worker without a report may have made up to `adds` adds, none of them known to have
     * succeeded: count them as failed (outcome unknown). */
    int64_t ok = 0, failed = 0;
    for (int i = 0; i < started; i++) {
        if (got[i]) {
            ok += reps[i].ok;
            failed += reps[i].failed;
        } else {
            failed += adds;
        }
    }
    free(pids);
    free(reps);
    free(got);

    int64_t after;
    if (read_counter(uri, name, (unsigned)shards, "the final", &after)) return 1;
    if (failed)
        printf("counter_demo: %" PRId64 " adds failed; each may or may not have been applied "
               "(never twice)\n",
               failed);
    int64_t delta;
    bool exact =
        !__builtin_sub_overflow(after, before, &delta) && delta >= ok && delta <= ok + failed;
    printf("expected +%" PRId64 " (up to +%" PRId64 "), counter went from %" PRId64 " to %" PRId64
           ": %s\n",
           ok, ok + failed, before, after, exact ? "exact" : "MISMATCH");
    if (!exact) return 1;
    if (failed_workers) {
        fprintf(stderr, "counter_demo: %d of %d workers failed\n", failed_workers, workers);
        return 1;
    }
    return 0;
}
