/*
 * ring_demo: worker processes join a group; a router maps keys to the live workers and shows
 * that keys move only away from a worker that leaves and only to a worker that joins.
 *
 *   ring_demo --uri zk://127.0.0.1:2181/demo --workers 4 --keys 10000 --group demo
 *   COORD_URI=etcd://127.0.0.1:2379/demo ring_demo
 *
 * The router (this process) forks N workers (default 4); each opens its own client, joins the
 * group as "worker-<i>" with its pid as data, and stays until it is told to leave (SIGTERM) or
 * is killed. The router waits until its ring shows all of them, prints how the K keys (default
 * 10000) spread, then:
 *   1. stops worker-0 with SIGTERM: it leaves at once;
 *   2. kills worker-1 with SIGKILL: it disappears when its session times out;
 *   3. starts worker-<N>, a new member.
 * After each change it prints the new epoch and how many keys moved, and checks that every
 * moved key came from the worker that went (or went to the one that came). Exit 0 when all
 * checks held, 1 otherwise, 2 for bad usage.
 */
#define _POSIX_C_SOURCE 200809L
#include <coord.h>
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define ID_MAX 64
#define WAIT_MS 20000 /* bound on every wait for the ring to show a change */

static volatile sig_atomic_t leave_now;

static void on_term(int sig) {
    (void)sig;
    leave_now = 1;
}

/* A worker process: join as worker-<idx>, tell the router, stay until SIGTERM, leave. */
static int worker(int idx, int ready_fd, const char *uri, const char *group) {
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    char id[ID_MAX], data[32];
    snprintf(id, sizeof id, "worker-%d", idx);
    snprintf(data, sizeof data, "pid=%ld", (long)getpid());
    coord_client *c;
    coord_ring *r;
    int rc = coord_client_open(&c, uri, NULL);
    if (rc) {
        fprintf(stderr, "%s: connect: %s: %s\n", id, coord_strerror(rc), coord_last_error());
        return 1;
    }
    if ((rc = coord_ring_new(&r, c, group, NULL)) ||
        (rc = coord_ring_join(r, id, data, strlen(data), 1))) {
        fprintf(stderr, "%s: join %s: %s: %s\n", id, group, coord_strerror(rc), coord_last_error());
        coord_client_close(c);
        return 1;
    }
    printf("  %s (pid %ld) joined\n", id, (long)getpid());
    if (write(ready_fd, "j", 1) != 1) leave_now = 1;
    close(ready_fd);
    while (!leave_now)
        pause();
    coord_ring_free(r); /* leaves the group */
    coord_client_close(c);
    return 0;
}

static pid_t start_worker(int idx, const char *uri, const char *group) {
    int fds[2];
    if (pipe(fds)) return -1;
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
        close(fds[0]);
        int st = worker(idx, fds[1], uri, group);
        fflush(NULL);
        _exit(st);
    }
    close(fds[1]);
    char ch;
    ssize_t n = p > 0 ? read(fds[0], &ch, 1) : -1;
    close(fds[0]);
    if (p > 0 && n != 1) {
        waitpid(p, NULL, 0);
        return -1;
    }
    return p;
}

/* The router's view: woken by the ring's change callback. */
typedef struct view {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int changes;
} view;

static void on_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r;
    view *v = payload;
    printf("  ring epoch %016" PRIx64 ":", ch->epoch);
    for (size_t i = 0; i < ch->njoined; i++)
        printf(" +%s", ch->joined[i]);
    for (size_t i = 0; i < ch->nleft; i++)
        printf(" -%s", ch->left[i]);
    printf("\n");
    pthread_mutex_lock(&v->mu);
    v->changes++;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
}

static bool is_member(coord_ring *r, const char *id) {
    char **ids;
    size_t n;
    if (coord_ring_members(r, &ids, &n)) return false;
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found = found || !strcmp(ids[i], id);
    coord_ring_strings_free(ids, n);
    return found;
}

/* Wait until `id` is (or is not) a member; false on timeout. */
static bool await(coord_ring *r, view *v, const char *id, bool present) {
    int64_t end = ex_now_ms() + WAIT_MS;
    pthread_mutex_lock(&v->mu);
    bool ok;
    while ((ok = is_member(r, id) == present) == false && ex_now_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&v->cv, &v->mu, &ts);
    }
    pthread_mutex_unlock(&v->mu);
    if (!ok)
        fprintf(stderr, "ring_demo: %s did not %s within %d ms\n", id,
                present ? "appear" : "disappear", WAIT_MS);
    return ok;
}

/* Map every key; owners[k] receives its member id. */
static bool map_keys(coord_ring *r, int keys, char (*owners)[ID_MAX]) {
    for (int k = 0; k < keys; k++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", k);
        int rc = coord_ring_lookup(r, key, strlen(key), owners[k], ID_MAX);
        if (rc) {
            fprintf(stderr, "ring_demo: lookup: %s: %s\n", coord_strerror(rc), coord_last_error());
            return false;
        }
    }
    return true;
}

/* Compare two mappings: keys may only move from `gone` or to `came`. */
static bool report_moves(const char *what, int keys, char (*before)[ID_MAX], char (*after)[ID_MAX],
                         const char *gone, const char *came, size_t members) {
    int moved = 0, wrong = 0;
    for (int k = 0; k < keys; k++) {
        if (!strcmp(before[k], after[k])) continue;
        moved++;
        if ((gone && strcmp(before[k], gone)) || (came && strcmp(after[k], came))) wrong++;
    }
    printf("%s: %d of %d keys moved (ideal about %d), %s\n", what, moved, keys,
           (int)(keys / (members ? members : 1)),
           wrong ? "SOME MOVED BETWEEN OTHER WORKERS" : "all of them from/to that worker only");
    return wrong == 0;
}

int main(int argc, char **argv) {
    const char *uri, *group = "demo";
    int workers = 4, keys = 10000;
    const ex_opt opts[] = {
        {"--group", &group},
        {"--workers", .num = &workers, .lo = 2, .hi = 1000},
        {"--keys", .num = &keys, .lo = 1, .hi = 10000000},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "ring_demo",
                      "usage: %s [--uri URI] [--workers N] [--keys K] [--group G]\n"
                      "  URI from --uri or COORD_URI; defaults: 4 workers (2..1000), 10000 keys, "
                      "group \"demo\"\n",
                      opts, &uri);
    if (rc) return rc < 0 ? 0 : rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    /* Workers first: a child must not inherit the router's client threads. */
    pid_t *pids = calloc((size_t)workers + 1, sizeof *pids);
    char(*before)[ID_MAX] = calloc((size_t)keys, ID_MAX);
    char(*after)[ID_MAX] = calloc((size_t)keys, ID_MAX);
    if (!pids || !before || !after) return 1;
    int status = 1;
    for (int i = 0; i < workers; i++)
        if ((pids[i] = start_worker(i, uri, group)) < 0) {
            fprintf(stderr, "ring_demo: worker-%d could not join\n", i);
            goto stop;
        }

    coord_client *c;
    rc = coord_client_open(&c, uri, NULL);
    if (rc) {
        fprintf(stderr, "ring_demo: connect: %s: %s\n", coord_strerror(rc), coord_last_error());
        goto stop;
    }
    view v = {.changes = 0};
    pthread_mutex_init(&v.mu, NULL);
    pthread_cond_init(&v.cv, NULL);
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    o.on_change = on_change;
    o.payload = &v;
    coord_ring *r;
    if ((rc = coord_ring_new(&r, c, group, &o))) {
        fprintf(stderr, "ring_demo: ring: %s: %s\n", coord_strerror(rc), coord_last_error());
        coord_client_close(c);
        goto stop;
    }
    bool ok = true;
    char id[ID_MAX];
    for (int i = 0; i < workers && ok; i++) {
        snprintf(id, sizeof id, "worker-%d", i);
        ok = await(r, &v, id, true);
    }
    ok = ok && map_keys(r, keys, before);
    if (ok) {
        printf("router: %d workers at epoch %016" PRIx64 "; keys per worker:", workers,
               coord_ring_epoch(r));
        for (int i = 0; i < workers; i++) {
            int n = 0;
            snprintf(id, sizeof id, "worker-%d", i);
            for (int k = 0; k < keys; k++)
                n += !strcmp(before[k], id);
            printf(" %d", n);
        }
        printf("\n");
    }

    /* 1. A worker that leaves cleanly. */
    if (ok) {
        printf("router: stopping worker-0 (it leaves the group)\n");
        kill(pids[0], SIGTERM);
        int64_t t0 = ex_now_ms();
        ok = await(r, &v, "worker-0", false) && map_keys(r, keys, after);
        if (ok) printf("router: worker-0 gone after %lld ms\n", (long long)(ex_now_ms() - t0));
        ok = ok && report_moves("leave", keys, before, after, "worker-0", NULL, workers);
        memcpy(before, after, (size_t)keys * ID_MAX);
    }
    /* 2. A worker that dies: its session times out. */
    if (ok) {
        printf("router: killing worker-1 (SIGKILL: gone when its session expires)\n");
        kill(pids[1], SIGKILL);
        int64_t t0 = ex_now_ms();
        ok = await(r, &v, "worker-1", false) && map_keys(r, keys, after);
        if (ok) printf("router: worker-1 gone after %lld ms\n", (long long)(ex_now_ms() - t0));
        ok = ok && report_moves("death", keys, before, after, "worker-1", NULL, workers - 1);
        memcpy(before, after, (size_t)keys * ID_MAX);
    }
    /* 3. A new worker. */
    if (ok) {
        printf("router: starting worker-%d\n", workers);
        pids[workers] = start_worker(workers, uri, group);
        snprintf(id, sizeof id, "worker-%d", workers);
        ok = pids[workers] > 0 && await(r, &v, id, true) && map_keys(r, keys, after);
        ok = ok && report_moves("join", keys, before, after, NULL, id, workers - 1);
    }
    coord_ring_free(r);
    coord_client_close(c);
    status = ok ? 0 : 1;
stop:
    for (int i = 0; i <= workers; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
            waitpid(pids[i], NULL, 0);
        }
    free(pids);
    free(before);
    free(after);
    printf("ring_demo: %s\n", status ? "FAILED" : "ok");
    return status;
}
