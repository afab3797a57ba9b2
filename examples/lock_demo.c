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
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--uri URI] [--workers N] [--rounds R] [--name NAME]\n"
            "  URI from --uri or COORD_URI; defaults: 3 workers, 5 rounds, name \"demo\"\n",
            argv0);
}

/* A positive int from `s`, or -1. */
static int parse_count(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > INT_MAX) return -1;
    return (int)v;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* One worker process: its own client, R rounds of acquire / hold / release. Exit status. */
static int worker(int idx, const char *uri, const char *name, int rounds) {
    pid_t pid = getpid();
    coord_client *c = NULL;
    int rc = coord_client_open(&c, uri, NULL);
    if (rc) {
        fprintf(stderr, "worker %d pid %ld: connect: %s: %s\n", idx, (long)pid, coord_strerror(rc),
                coord_last_error());
        return 1;
    }
    coord_lock *l = NULL;
    rc = coord_lock_new(&l, c, name);
    if (rc) {
        fprintf(stderr, "worker %d pid %ld: lock %s: %s: %s\n", idx, (long)pid, name,
                coord_strerror(rc), coord_last_error());
        coord_client_close(c);
        return 1;
    }
    int status = 0;
    for (int r = 0; r < rounds; r++) {
        rc = coord_lock_acquire(l, -1);
        if (rc) {
            fprintf(stderr, "worker %d pid %ld: acquire %s: %s: %s\n", idx, (long)pid, name,
                    coord_strerror(rc), coord_last_error());
            status = 1;
            break;
        }
        uint64_t token = 0;
        rc = coord_lock_token(l, &token);
        if (rc) {
            fprintf(stderr, "worker %d pid %ld: token %s: %s: %s\n", idx, (long)pid, name,
                    coord_strerror(rc), coord_last_error());
            status = 1;
            break;
        }
        printf("worker %d pid %ld holds %s token %" PRIu64 "\n", idx, (long)pid, name, token);
        sleep_ms(50); /* the critical section */
        rc = coord_lock_release(l);
        if (rc) {
            fprintf(stderr, "worker %d pid %ld: release %s: %s: %s\n", idx, (long)pid, name,
                    coord_strerror(rc), coord_last_error());
            status = 1;
            break;
        }
    }
    coord_lock_free(l); /* releases a hold left by a failure above */
    coord_client_close(c);
    return status;
}

int main(int argc, char **argv) {
    const char *uri = getenv("COORD_URI");
    const char *name = "demo";
    int workers = 3, rounds = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            usage(argv[0]);
            return 2;
        }
        if (!strcmp(a, "--uri")) {
            uri = argv[++i];
        } else if (!strcmp(a, "--name")) {
            name = argv[++i];
        } else if (!strcmp(a, "--workers")) {
            if ((workers = parse_count(argv[++i])) < 0) {
                fprintf(stderr, "lock_demo: --workers wants a positive number, not \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--rounds")) {
            if ((rounds = parse_count(argv[++i])) < 0) {
                fprintf(stderr, "lock_demo: --rounds wants a positive number, not \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    if (!uri) {
        fprintf(stderr, "lock_demo: no URI: pass --uri or set COORD_URI\n");
        return 2;
    }
    int rc = coord_name_check(name);
    if (rc) {
        fprintf(stderr, "lock_demo: --name: %s: %s\n", coord_strerror(rc), coord_last_error());
        return 2;
    }
    /* Line-buffered, and nothing pending at fork, so workers' lines neither mix nor repeat. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    fflush(NULL);

    pid_t *pids = calloc((size_t)workers, sizeof *pids);
    if (!pids) {
        fprintf(stderr, "lock_demo: out of memory\n");
        return 1;
    }
    int failed = 0, started = 0;
    for (int i = 0; i < workers; i++) {
        pid_t p = fork();
        if (p < 0) {
            fprintf(stderr, "lock_demo: fork: %s\n", strerror(errno));
            failed++;
            break;
        }
        if (p == 0) {
            int st = worker(i, uri, name, rounds);
            fflush(NULL);
            _exit(st);
        }
        pids[i] = p;
        started++;
    }
    for (int i = 0; i < started; i++) {
        int st;
        pid_t p;
        while ((p = waitpid(pids[i], &st, 0)) < 0 && errno == EINTR) {
        }
        if (p < 0) {
            fprintf(stderr, "lock_demo: waitpid %ld: %s\n", (long)pids[i], strerror(errno));
            failed++;
        } else if (WIFSIGNALED(st)) {
            fprintf(stderr, "lock_demo: worker %d pid %ld killed by signal %d\n", i, (long)p,
                    WTERMSIG(st));
            failed++;
        } else if (WEXITSTATUS(st) != 0) {
            fprintf(stderr, "lock_demo: worker %d pid %ld failed (exit %d)\n", i, (long)p,
                    WEXITSTATUS(st));
            failed++;
        }
    }
    free(pids);
    if (failed) {
        fprintf(stderr, "lock_demo: %d of %d workers failed\n", failed, workers);
        return 1;
    }
    printf("lock_demo: %d workers x %d rounds on %s done\n", workers, rounds, name);
    return 0;
}
