/*
 * What every example needs and none is about: command-line options, a clock, and worker
 * processes forked and waited for. The coord calls stay in the examples themselves.
 */
#ifndef COORD_EXAMPLES_COMMON_H
#define COORD_EXAMPLES_COMMON_H

#include <stdint.h>
#include <sys/types.h>

/* One option taking a value: a string, a number in [lo, hi], or a coord name (checked with
 * coord_name_check). A table of them ends with an entry whose flag is NULL. */
typedef struct ex_opt {
    const char *flag; /* "--workers" */
    const char **str; /* a string (or a name, with `name`), or */
    int *num;         /* a number */
    int lo, hi;
    int name; /* non-zero: the string must be a valid coord name */
} ex_opt;

/*
 * Parse `--flag VALUE` options of `opts`, and --uri (default: the COORD_URI environment
 * variable) into *uri, which is required. Returns 0; 2 for bad usage, after printing why (or
 * `usage`, with "%s" for argv[0], when an option is unknown or lacks its value) on stderr; -1
 * after printing `usage` on stdout for -h or --help. `prog` prefixes the messages.
 */
int ex_parse(int argc, char **argv, const char *prog, const char *usage, const ex_opt *opts,
             const char **uri);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t ex_now_ms(void);
void ex_sleep_ms(long ms);

/*
 * Fork `n` workers, worker i running `fn(i, arg)` and exiting with what it returns, their pids
 * in pids[0..n). Output is flushed before each fork so that nothing is printed twice. Returns
 * how many started; a fork that fails is reported on stderr and ends the forking.
 */
int ex_fork_workers(const char *prog, int n, int (*fn)(int idx, void *arg), void *arg, pid_t *pids);

/* Wait for the `n` workers of pids[]; how many failed (a non-zero exit or a signal), each
 * reported on stderr. */
int ex_wait_workers(const char *prog, const pid_t *pids, int n);

#endif
