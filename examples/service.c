/*
 * service: a small job service built on the three recipes; the same binary runs on ZooKeeper or
 * etcd, whichever the URI names.
 *
 *   service --uri zk://127.0.0.1:2181/demo --id svc-a --jobs 8 --rounds 3
 *   COORD_URI=etcd://127.0.0.1:2379/demo service --expect 2 --report /tmp/report.txt
 *
 * Run several instances, each with its own --id (default <hostname>-<pid>). Each one:
 *   1. joins the ring group G (default "service") as its id and follows the group; with
 *      --expect N it first waits (at most --wait-ms) until N members are there, so instances
 *      started together share the work from the first round;
 *   2. runs R rounds (default 3) over the J jobs "job-0".."job-<J-1>" (default 8): it processes
 *      the jobs the ring maps to it. When the ring changes (an instance comes or goes) it checks
 *      again: a job it lost is left to its new owner, a job it gained is taken up in the same
 *      round;
 *   3. processes a job holding the lock "report", around the shared resource, a report: it
 *      adds 1 to the counter "jobs-done" and writes a line with the lock's fencing token and the
 *      counter's new value. With --report FILE the line is appended to FILE, which refuses a
 *      token not larger than the last one written (a stale holder); without it the line is only
 *      printed. The lock is held --hold-ms (default 20);
 *   4. after the last round joins "<G>-done" and waits (at most --wait-ms) until every member of
 *      G is there too, so that nobody takes over the jobs of an instance that has merely
 *      finished; then leaves both groups and closes its session.
 * On SIGINT or SIGTERM it stops after the current job, leaves the group and exits 0.
 *
 * With a stable membership every job is processed once per round, by its owner, so a report
 * shared by all instances ends with J*R lines and jobs-done values that follow each other.
 * Exit 0 on success (also when stopped by a signal), 1 on failure, 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L
#include <coord.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define ID_MAX 256          /* member ids are at most 255 bytes */
#define MAX_PASSES 20       /* passes over the jobs of one round while the ring keeps changing */
#define COUNTER "jobs-done" /* the shared counter */
#define LOCK "report"       /* the lock around the report */

typedef struct config {
    const char *uri, *group, *report;
    char id[ID_MAX];
    char done_group[ID_MAX];
    int jobs, rounds, expect, wait_ms, hold_ms, interval_ms;
} config;

/* Shared between the main thread, the signal thread and the ring callbacks. */
typedef struct state {
    const config *cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on ring changes and on a stop request */
    unsigned changes;  /* ring changes seen, guarded by mu */
    int stop_sig;      /* the signal that asked to stop, 0 while running; guarded by mu */
    bool exiting;      /* tells the signal thread to end; guarded by mu */
    coord_client *c;
    coord_ring *ring, *done;
    coord_lock *lock;
    coord_counter *counter;
    int processed; /* jobs this instance processed */
} state;

static int stop_signal(state *s) {
    pthread_mutex_lock(&s->mu);
    int sig = s->stop_sig;
    pthread_mutex_unlock(&s->mu);
    return sig;
}

static unsigned change_count(state *s) {
    pthread_mutex_lock(&s->mu);
    unsigned n = s->changes;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Wait until the ring changes again after `seen` changes, a stop is requested or `deadline`
 * (a ex_now_ms() time) passes. */
static void wait_change(state *s, unsigned seen, int64_t deadline) {
    struct timespec until = {(time_t)(deadline / 1000), (long)(deadline % 1000) * 1000000L};
    pthread_mutex_lock(&s->mu);
    while (s->changes == seen && !s->stop_sig && ex_now_ms() < deadline)
        pthread_cond_timedwait(&s->cv, &s->mu, &until); /* the condvar runs on CLOCK_MONOTONIC */
    pthread_mutex_unlock(&s->mu);
}

/* Waits for SIGINT/SIGTERM (blocked in every other thread) and turns them into a stop request. */
static void *signal_thread(void *arg) {
    state *s = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig)) continue;
        pthread_mutex_lock(&s->mu);
        bool exiting = s->exiting;
        bool first = !exiting && !s->stop_sig;
        if (first) s->stop_sig = sig;
        coord_lock *lock = s->lock; /* freed only after this thread has ended */
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (exiting) return NULL;
        if (first && lock) coord_lock_cancel(lock); /* a waiting acquire gives up at once */
        if (first)
            printf("[%s] %s: stopping after the current job\n", s->cfg->id,
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
}

static void on_session(coord_client *c, coord_session_state st, void *payload) {
    state *s = payload;
    printf("[%s] %s session %s\n", s->cfg->id, coord_client_backend(c),
           coord_session_state_name(st));
}

static void print_change(state *s, const char *what, const coord_ring_change *ch) {
    char line[1024];
    size_t n = 0;
    for (size_t i = 0; i < ch->njoined && n < sizeof line; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, " +%s", ch->joined[i]);
    for (size_t i = 0; i < ch->nleft && n < sizeof line; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, " -%s", ch->left[i]);
    printf("[%s] %s epoch %016" PRIx64 ":%s\n", s->cfg->id, what, ch->epoch, n ? line : "");
}

/* A change of either group: printed, and counted to wake the waits. */
static void changed(state *s, const char *what, const coord_ring_change *ch) {
    if (what) print_change(s, what, ch);
    pthread_mutex_lock(&s->mu);
    s->changes++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void on_ring_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r;
    changed(payload, "ring", ch);
}

static void on_done_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r;
    changed(payload, ch->njoined ? "finished group" : NULL, ch);
}

/* Report a failed coord call ("[id] what name: code: detail") and return -1. */
static int failed(const config *cfg, const char *what, const char *name, int rc) {
    fprintf(stderr, "[%s] %s%s%s: %s: %s\n", cfg->id, what, name ? " " : "", name ? name : "",
            coord_strerror(rc), coord_last_error());
    return -1;
}

static void job_name(int j, char *out, size_t cap) {
    snprintf(out, cap, "job-%d", j);
}

/* Whether the ring maps job `j` to this instance (false when nobody owns it, e.g. empty ring). */
static bool owns(state *s, int j) {
    char key[32], owner[ID_MAX];
    job_name(j, key, sizeof key);
    if (coord_ring_lookup(s->ring, key, strlen(key), owner, sizeof owner)) return false;
    return !strcmp(owner, s->cfg->id);
}

/* Every member of `ring` is also a member of `done` (the finished instances). */
static bool all_finished(state *s) {
    char **ids = NULL, **fin = NULL;
    size_t n = 0, nfin = 0;
    bool ok = !coord_ring_members(s->ring, &ids, &n) && !coord_ring_members(s->done, &fin, &nfin);
    for (size_t i = 0; ok && i < n; i++) {
        bool found = false;
        for (size_t k = 0; !found && k < nfin; k++)
            found = !strcmp(ids[i], fin[k]);
        ok = found;
    }
    coord_ring_strings_free(ids, n);
    coord_ring_strings_free(fin, nfin);
    return ok;
}

static size_t member_count(coord_ring *r) {
    char **ids;
    size_t n;
    if (coord_ring_members(r, &ids, &n)) return 0;
    coord_ring_strings_free(ids, n);
    return n;
}

/* The shared resource: append `line` after `token` unless the report already holds a token at
 * least as large (a stale holder). 0, 1 when refused, -1 on an I/O error. */
static int report_append(const char *path, uint64_t token, const char *line) {
    FILE *f = fopen(path, "a+");
    if (!f) return -1;
    uint64_t last = 0;
    char buf[1024];
    while (fgets(buf, sizeof buf, f)) {
        unsigned long long t;
        if (sscanf(buf, "%llu", &t) == 1) last = t;
    }
    if (token <= last) {
        fclose(f);
        return 1;
    }
    int rc = fprintf(f, "%" PRIu64 " %s\n", token, line) < 0 ? -1 : 0;
    if (fclose(f) != 0) rc = -1;
    return rc;
}

/* Process job `j` of round `round` if this instance still owns it once it holds the lock.
 * 0 when processed, 1 when left (it went to another member, or the hold was lost, or a stop was
 * requested while waiting), -1 on failure. */
static int process(state *s, int round, int j) {
    const config *cfg = s->cfg;
    char job[32];
    job_name(j, job, sizeof job);
    int rc;
    if ((rc = coord_lock_acquire(s->lock, -1)) == COORD_ECANCELED) return 1; /* stop requested */
    if (rc == COORD_ESESSION) { /* the client opens a new session by itself: try again */
        printf("[%s] round %d %s: session expired while waiting for the lock, job retried\n",
               cfg->id, round, job);
        return 1;
    }
    if (rc) return failed(cfg, "acquire", LOCK, rc);
    int result = 0;
    uint64_t token = 0, epoch = coord_ring_epoch(s->ring);
    if (!owns(s, j)) { /* the ring changed while we waited for the lock */
        printf("[%s] round %d %s: moved to another member while waiting, left to it\n", cfg->id,
               round, job);
        result = 1;
        goto release;
    }
    if ((rc = coord_lock_token(s->lock, &token))) {
        result = failed(cfg, "token", NULL, rc);
        goto release;
    }
    if (cfg->hold_ms) ex_sleep_ms(cfg->hold_ms); /* the work on the shared resource */
    if (!coord_lock_held(s->lock)) {
        printf("[%s] round %d %s: lock lost with the session (token %" PRIu64 "), job retried\n",
               cfg->id, round, job, token);
        result = 1;
        goto release;
    }
    int64_t value = 0;
    if ((rc = coord_counter_add(s->counter, 1, &value))) {
        result = failed(cfg, "add to", COUNTER, rc);
        goto release;
    }
    char line[ID_MAX + 128];
    snprintf(line, sizeof line, "%s round=%d %s epoch=%016" PRIx64 " %s=%" PRId64, cfg->id, round,
             job, epoch, COUNTER, value);
    if (cfg->report) {
        int ar = report_append(cfg->report, token, line);
        if (ar > 0)
            fprintf(stderr, "[%s] report %s refused the stale token %" PRIu64 "\n", cfg->id,
                    cfg->report, token);
        else if (ar < 0)
            fprintf(stderr, "[%s] report %s: %s\n", cfg->id, cfg->report, strerror(errno));
        if (ar) {
            result = -1;
            goto release;
        }
    }
    s->processed++;
    printf("[%s] round %d %s (epoch %016" PRIx64 "): report token %" PRIu64 ", %s = %" PRId64 "\n",
           cfg->id, round, job, epoch, token, COUNTER, value);
release:
    rc = coord_lock_release(s->lock);
    if (rc && rc != COORD_ENOTHELD) result = failed(cfg, "release", LOCK, rc);
    return result;
}

/* One round: process every job this instance owns, checking again while the ring changes.
 * 0, or -1 on failure. */
static int run_round(state *s, int round) {
    const config *cfg = s->cfg;
    bool *done = calloc((size_t)cfg->jobs, sizeof *done);
    if (!done) return -1;
    int status = 0;
    for (int pass = 0; pass < MAX_PASSES && !stop_signal(s); pass++) {
        unsigned seen = change_count(s);
        uint64_t epoch = coord_ring_epoch(s->ring);
        char mine[1024];
        size_t n = 0;
        int count = 0;
        for (int j = 0; j < cfg->jobs; j++)
            if (!done[j] && owns(s, j)) {
                count++;
                if (n < sizeof mine) n += (size_t)snprintf(mine + n, sizeof mine - n, " job-%d", j);
            }
        if (n >= sizeof mine) strcpy(mine + sizeof mine - 5, " ...");
        printf("[%s] round %d/%d%s, epoch %016" PRIx64 " (%zu members): owns %d of %d jobs%s%s\n",
               cfg->id, round, cfg->rounds, pass ? " (checking again)" : "", epoch,
               member_count(s->ring), count, cfg->jobs, count ? ":" : "", count ? mine : "");
        bool left = false;
        for (int j = 0; j < cfg->jobs && !stop_signal(s); j++) {
            if (done[j] || !owns(s, j)) continue;
            int rc = process(s, round, j);
            if (rc < 0) {
                status = -1;
                goto out;
            }
            if (rc == 0)
                done[j] = true;
            else
                left = true;
        }
        if (change_count(s) == seen && !left) goto out; /* no change: the round is complete */
        if (change_count(s) == seen) wait_change(s, seen, ex_now_ms() + 1000);
    }
    if (!stop_signal(s))
        printf("[%s] round %d: the ring kept changing, moving on after %d passes\n", cfg->id, round,
               MAX_PASSES);
out:
    free(done);
    return status;
}

/* 0, 2 for bad usage (message printed), -1 after --help. */
static int parse_args(config *cfg, int argc, char **argv) {
    const char *id = NULL;
    const ex_opt opts[] = {
        {"--id", &id},
        {"--group", &cfg->group},
        {"--report", &cfg->report},
        {"--jobs", .num = &cfg->jobs, .lo = 1, .hi = 100000},
        {"--rounds", .num = &cfg->rounds, .lo = 1, .hi = 1000000},
        {"--expect", .num = &cfg->expect, .lo = 1, .hi = 10000},
        {"--wait-ms", .num = &cfg->wait_ms, .lo = 0, .hi = INT_MAX},
        {"--hold-ms", .num = &cfg->hold_ms, .lo = 0, .hi = 60000},
        {"--interval-ms", .num = &cfg->interval_ms, .lo = 0, .hi = 3600000},
        {NULL},
    };
    int rc = ex_parse(
        argc, argv, "service",
        "usage: %s [--uri URI] [--id ID] [--group G] [--jobs J] [--rounds R] [--expect N]\n"
        "          [--wait-ms MS] [--hold-ms MS] [--interval-ms MS] [--report FILE]\n"
        "  URI from --uri or COORD_URI. Defaults: id <hostname>-<pid>, group \"service\",\n"
        "  8 jobs, 3 rounds, expect 1 member, wait 20000 ms for members, hold the lock 20 ms,\n"
        "  0 ms between rounds, report lines printed only.\n",
        opts, &cfg->uri);
    if (rc) return rc;
    if (id) {
        snprintf(cfg->id, sizeof cfg->id, "%s", id);
    } else {
        char host[ID_MAX] = "";
        if (gethostname(host, sizeof host - 1)) strcpy(host, "service");
        snprintf(cfg->id, sizeof cfg->id, "%.200s-%ld", host, (long)getpid());
    }
    if ((rc = coord_name_check(cfg->id)) || (rc = coord_name_check(cfg->group))) {
        fprintf(stderr, "service: --id/--group: %s: %s\n", coord_strerror(rc), coord_last_error());
        return 2;
    }
    if (strlen(cfg->group) > 250) {
        fprintf(stderr, "service: --group: at most 250 bytes\n");
        return 2;
    }
    snprintf(cfg->done_group, sizeof cfg->done_group, "%s-done", cfg->group);
    return 0;
}

/* Open the client and the handles, join the group. 0, -1 on failure or -2 for a malformed URI
 * (message printed). */
static int start(state *s, int64_t *before) {
    const config *cfg = s->cfg;
    coord_options o = COORD_OPTIONS_INIT;
    o.on_session = on_session;
    o.payload = s;
    int rc = coord_client_open(&s->c, cfg->uri, &o);
    const char *what = "connect";
    if (rc) goto fail;
    what = "counter " COUNTER;
    if ((rc = coord_counter_new(&s->counter, s->c, COUNTER, NULL)) ||
        (rc = coord_counter_get(s->counter, before)))
        goto fail;
    what = "lock " LOCK;
    coord_lock *lock;
    if ((rc = coord_lock_new(&lock, s->c, LOCK))) goto fail;
    pthread_mutex_lock(&s->mu); /* the signal thread cancels a wait on it */
    s->lock = lock;
    bool stopping = s->stop_sig != 0;
    pthread_mutex_unlock(&s->mu);
    if (stopping) coord_lock_cancel(lock); /* the signal came before the handle existed */
    coord_ring_options ro = COORD_RING_OPTIONS_INIT;
    ro.on_change = on_ring_change;
    ro.payload = s;
    what = "ring";
    if ((rc = coord_ring_new(&s->ring, s->c, cfg->group, &ro))) goto fail;
    char data[64];
    snprintf(data, sizeof data, "pid=%ld", (long)getpid());
    what = "join";
    if ((rc = coord_ring_join(s->ring, cfg->id, data, strlen(data), 1))) goto fail;
    printf("[%s] joined group \"%s\" on %s under %s; %s was %" PRId64 "\n", cfg->id, cfg->group,
           coord_client_backend(s->c), coord_client_prefix(s->c), COUNTER, *before);
    return 0;
fail:
    failed(cfg, what, NULL, rc);
    return !s->c && rc == COORD_EINVAL ? -2 : -1;
}

/* Join "<group>-done" and wait until every member of the group has joined it too. */
static int finish(state *s) {
    const config *cfg = s->cfg;
    coord_ring_options ro = COORD_RING_OPTIONS_INIT;
    ro.on_change = on_done_change;
    ro.payload = s;
    int rc = coord_ring_new(&s->done, s->c, cfg->done_group, &ro);
    if (!rc) rc = coord_ring_join(s->done, cfg->id, NULL, 0, 1);
    if (rc) return failed(cfg, "join", cfg->done_group, rc);
    int64_t deadline = ex_now_ms() + cfg->wait_ms;
    for (;;) {
        unsigned seen = change_count(s);
        if (all_finished(s) || stop_signal(s)) return 0;
        if (ex_now_ms() >= deadline) break;
        wait_change(s, seen, deadline);
    }
    printf("[%s] not every member finished within %d ms; leaving anyway\n", cfg->id, cfg->wait_ms);
    return 0;
}

int main(int argc, char **argv) {
    config cfg = {
        .group = "service", .jobs = 8, .rounds = 3, .expect = 1, .wait_ms = 20000, .hold_ms = 20};
    int rc = parse_args(&cfg, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* SIGINT/SIGTERM go to one thread that waits for them; every thread made from here on, the
     * library's included, inherits the blocked mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    state s = {.cfg = &cfg};
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s.mu, NULL);
    pthread_t sig_tid;
    if (pthread_create(&sig_tid, NULL, signal_thread, &s)) {
        fprintf(stderr, "service: cannot start the signal thread\n");
        return 1;
    }

    int status = 1;
    int64_t before = 0, after = 0;
    if ((rc = start(&s, &before))) {
        if (rc == -2) status = 2; /* a malformed URI is a usage error */
        goto out;
    }

    /* Wait for the expected members, so that instances started together share every round. */
    int64_t deadline = ex_now_ms() + cfg.wait_ms;
    size_t members;
    for (;;) {
        unsigned seen = change_count(&s); /* before looking, so no change goes unnoticed */
        members = member_count(s.ring);
        if (members >= (size_t)cfg.expect || stop_signal(&s) || ex_now_ms() >= deadline) break;
        wait_change(&s, seen, deadline);
    }
    if (members < (size_t)cfg.expect && !stop_signal(&s))
        printf("[%s] only %zu of %d members after %d ms; starting anyway\n", cfg.id, members,
               cfg.expect, cfg.wait_ms);

    int round = 0;
    while (round < cfg.rounds && !stop_signal(&s)) {
        if (run_round(&s, ++round)) goto out;
        if (round < cfg.rounds && cfg.interval_ms) {
            unsigned seen = change_count(&s);
            int64_t end = ex_now_ms() + cfg.interval_ms;
            while (ex_now_ms() < end &&
                   !stop_signal(&s)) { /* a ring change does not end the pause */
                wait_change(&s, seen, end);
                seen = change_count(&s);
            }
        }
    }
    if (!stop_signal(&s) && finish(&s)) goto out;
    if ((rc = coord_counter_get(s.counter, &after))) {
        failed(&cfg, "read", COUNTER, rc);
        goto out;
    }
    int sig = stop_signal(&s);
    if (sig)
        printf("[%s] stopped by %s in round %d: processed %d jobs; %s went from %" PRId64
               " to %" PRId64 "\n",
               cfg.id, sig == SIGINT ? "SIGINT" : "SIGTERM", round, s.processed, COUNTER, before,
               after);
    else
        printf("[%s] processed %d jobs in %d rounds; %s went from %" PRId64 " to %" PRId64 "\n",
               cfg.id, s.processed, cfg.rounds, COUNTER, before, after);
    status = 0;
out:;
    /* The signal thread ends first: it may be cancelling a wait on the lock freed below. */
    pthread_mutex_lock(&s.mu);
    s.exiting = true;
    pthread_mutex_unlock(&s.mu);
    pthread_kill(sig_tid, SIGTERM); /* blocked everywhere: only the signal thread takes it */
    pthread_join(sig_tid, NULL);
    bool opened = s.c != NULL;
    coord_ring_free(s.done); /* leaves "<group>-done" */
    coord_ring_free(s.ring); /* leaves the group */
    coord_lock_free(s.lock);
    coord_counter_free(s.counter);
    coord_client_close(s.c);
    if (opened) printf("[%s] left the group, session closed\n", cfg.id);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return status;
}
