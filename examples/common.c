/* Helpers shared by the examples: see common.h. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <coord.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* An int in [lo, hi] from `s`; false when it is not one. */
static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

/* One option's value; 0, or 2 after printing why. */
static int take(const char *prog, const ex_opt *o, const char *v) {
    if (o->num) {
        if (parse_int(v, o->lo, o->hi, o->num)) return 0;
        if (o->lo == 1 && o->hi == INT_MAX)
            fprintf(stderr, "%s: %s wants a positive number, not \"%s\"\n", prog, o->flag, v);
        else
            fprintf(stderr, "%s: %s wants a number from %d to %d, not \"%s\"\n", prog, o->flag,
                    o->lo, o->hi, v);
        return 2;
    }
    int rc = o->name ? coord_name_check(v) : 0;
    if (rc) {
        fprintf(stderr, "%s: %s: %s: %s\n", prog, o->flag, coord_strerror(rc), coord_last_error());
        return 2;
    }
    *o->str = v;
    return 0;
}

int ex_parse(int argc, char **argv, const char *prog, const char *usage, const ex_opt *opts,
             const char **uri) {
    *uri = getenv("COORD_URI");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fprintf(stdout, usage, argv[0]);
            return -1;
        }
        const ex_opt *o = NULL;
        for (size_t k = 0; opts && opts[k].flag && !o; k++)
            if (!strcmp(a, opts[k].flag)) o = &opts[k];
        if ((!o && strcmp(a, "--uri")) || i + 1 >= argc) {
            fprintf(stderr, usage, argv[0]);
            return 2;
        }
        const char *v = argv[++i];
        if (!o)
            *uri = v;
        else if (take(prog, o, v))
            return 2;
    }
    if (!*uri) {
        fprintf(stderr, "%s: no URI: pass --uri or set COORD_URI\n", prog);
        return 2;
    }
    return 0;
}

int64_t ex_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ex_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

int ex_fork_workers(const char *prog, int n, int (*fn)(int idx, void *arg), void *arg,
                    pid_t *pids) {
    int started = 0;
    for (int i = 0; i < n; i++) {
        fflush(NULL);
        pid_t p = fork();
        if (p < 0) {
            fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
            break;
        }
        if (p == 0) {
            int st = fn(i, arg);
            fflush(NULL);
            _exit(st);
        }
        pids[i] = p;
        started++;
    }
    return started;
}

int ex_wait_workers(const char *prog, const pid_t *pids, int n) {
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int st;
        pid_t p;
        while ((p = waitpid(pids[i], &st, 0)) < 0 && errno == EINTR) {
        }
        if (p < 0) {
            fprintf(stderr, "%s: waitpid %ld: %s\n", prog, (long)pids[i], strerror(errno));
            failed++;
        } else if (WIFSIGNALED(st)) {
            fprintf(stderr, "%s: worker %d pid %ld killed by signal %d\n", prog, i, (long)p,
                    WTERMSIG(st));
            failed++;
        } else if (WEXITSTATUS(st) != 0) {
            fprintf(stderr, "%s: worker %d pid %ld failed (exit %d)\n", prog, i, (long)p,
                    WEXITSTATUS(st));
            failed++;
        }
    }
    return failed;
}
