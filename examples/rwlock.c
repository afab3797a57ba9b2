/*
 * rwlock: readers and writers of one shared file behind a distributed read-write lock.
 *
 *   rwlock --uri zk://127.0.0.1:2181/demo --readers 4 --writers 2 --rounds 5 --name doc
 *   COORD_URI=etcd://127.0.0.1:2379/demo rwlock --file /tmp/doc.txt
 *
 * Writer processes take the lock exclusively and rewrite the file slowly, line by line, each
 * line stamped with their fencing token: without the lock a reader would see a torn write (the
 * lines of two writers, or half a file). The file is fenced: a writer whose token is not above
 * the one stamped in the file is refused, as a storage that checks tokens would refuse a stale
 * writer (one that lost the lock while paused). Reader processes take the lock shared (they
 * overlap) and check each read: whole, one token, never older than the last one they read.
 */
#define _DEFAULT_SOURCE
#include <coord.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

#define LINES 10 /* a write is this many lines, "TOKEN LINE" */
#define MAX_PROCS 64

typedef struct args {
    const char *uri, *name, *file;
    int readers, writers, rounds;
} args;

/* The file's content: its token, 0 when it is empty. -1 when it is torn (a line missing, out of
 * order, or of another token). */
static int read_file(const char *path, uint64_t *token) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    uint64_t t;
    int line, n = 0, torn = 0;
    *token = 0;
    while (fscanf(f, "%" SCNu64 " %d", &t, &line) == 2) {
        if (n == 0) *token = t;
        if (t != *token || line != n) torn = 1;
        n++;
    }
    fclose(f);
    return torn || (n != 0 && n != LINES) ? -1 : 0;
}

/* Holding the write lock with `token`: check the fence, then rewrite the file slowly. */
static int write_file(const char *path, uint64_t token) {
    uint64_t stamped;
    if (read_file(path, &stamped)) return fprintf(stderr, "torn file before a write\n"), 1;
    if (stamped >= token) {
        fprintf(stderr, "stale writer: token %" PRIu64 ", the file has %" PRIu64 "\n", token,
                stamped);
        return 1;
    }
    FILE *f = fopen(path, "w");
    if (!f) return perror(path), 1;
    for (int i = 0; i < LINES; i++) {
        fprintf(f, "%" PRIu64 " %d\n", token, i);
        fflush(f); /* a reader without the lock would see this half-written file */
        ex_sleep_ms(2);
    }
    return fclose(f) != 0;
}

/* One round of a reader (held: the read lock): the file is whole and not older than *last. */
static int check_read(int idx, const char *path, uint64_t *last) {
    uint64_t t;
    if (read_file(path, &t)) return fprintf(stderr, "reader %d: a torn write\n", idx), 1;
    if (t < *last) {
        fprintf(stderr, "reader %d: token %" PRIu64 " after %" PRIu64 "\n", idx, t, *last);
        return 1;
    }
    *last = t;
    ex_sleep_ms(20); /* reading on, while other readers read too */
    return 0;
}

/* A worker process: the first `writers` write, the others read, `rounds` times each. */
static int worker(int idx, void *arg) {
    const args *a = arg;
    int writer = idx < a->writers;
    coord_client *c = NULL;
    coord_rwlock *l = NULL;
    int rc = coord_client_open(&c, a->uri, NULL);
    if (!rc) rc = coord_rwlock_new(&l, c, a->name);
    int bad = 0, reads = 0;
    uint64_t last = 0, token = 0;
    for (int r = 0; r < a->rounds && !rc && !bad; r++) {
        rc = writer ? coord_rwlock_wrlock(l, -1) : coord_rwlock_rdlock(l, -1);
        if (rc) break;
        if (!(rc = coord_rwlock_token(l, &token)) && writer) {
            bad = write_file(a->file, token);
            printf("writer %d pid %ld: token %" PRIu64 " written\n", idx, (long)getpid(), token);
        } else if (!rc) {
            bad = check_read(idx, a->file, &last);
            reads++;
        }
        int urc = coord_rwlock_unlock(l);
        if (!rc) rc = urc;
    }
    if (rc)
        fprintf(stderr, "worker %d: rwlock %s: %s: %s\n", idx, a->name, coord_strerror(rc),
                coord_last_error());
    else if (!writer)
        printf("reader %d pid %ld: %d whole reads, last token %" PRIu64 "\n", idx, (long)getpid(),
               reads, last);
    coord_rwlock_free(l); /* unlocks a hold left by a failure */
    coord_client_close(c);
    return rc || bad;
}

int main(int argc, char **argv) {
    args a = {.name = "doc", .readers = 4, .writers = 2, .rounds = 5};
    const ex_opt opts[] = {
        {"--name", &a.name, .name = 1},
        {"--file", &a.file},
        {"--readers", .num = &a.readers, .lo = 0, .hi = MAX_PROCS / 2},
        {"--writers", .num = &a.writers, .lo = 0, .hi = MAX_PROCS / 2},
        {"--rounds", .num = &a.rounds, .lo = 1, .hi = 1000},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "rwlock",
                      "usage: %s [--uri URI] [--readers R] [--writers W] [--rounds N] "
                      "[--name NAME] [--file PATH]\n"
                      "  URI from --uri or COORD_URI; defaults: 4 readers, 2 writers, 5 rounds, "
                      "name \"doc\", a new temporary file\n",
                      opts, &a.uri);
    if (rc) return rc < 0 ? 0 : rc;
    setvbuf(stdout, NULL, _IOLBF, 0); /* so that the workers' lines do not mix */
    char tmpl[] = "/tmp/coord-rwlock-XXXXXX";
    if (!a.file) { /* an empty file: nothing written yet */
        int fd = mkstemp(tmpl);
        if (fd < 0) return perror("rwlock: mkstemp"), 1;
        close(fd);
        a.file = tmpl;
    }
    int n = a.readers + a.writers;
    pid_t pids[MAX_PROCS];
    int started = ex_fork_workers("rwlock", n, worker, &a, pids);
    int failed = (started < n) + ex_wait_workers("rwlock", pids, started);
    if (a.file == tmpl) unlink(tmpl);
    printf("rwlock: %d writers and %d readers x %d rounds on %s: %s\n", a.writers, a.readers,
           a.rounds, a.name, failed ? "FAILED" : "ok");
    return failed != 0;
}
