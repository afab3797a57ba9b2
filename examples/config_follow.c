/*
 * config_follow: instances follow a configuration key and apply each version they see.
 *
 *   config_follow --uri zk://127.0.0.1:2181/demo --followers 3 --versions 10 --key app/config
 *   COORD_URI=etcd://127.0.0.1:2379/demo config_follow --interval-ms 0
 *
 * N follower processes (--followers, default 3), each its own client, watch the key --key
 * (default "config-follow/config", at "<prefix>/kv/config-follow/config") with
 * coord_kv_watch_new: the watch reports the current value first, then every change, and each
 * follower "applies" (prints) each version of the configuration it is told about. Once every
 * follower has had its first report, this process writes versions 1..V (--versions, default 10,
 * one every --interval-ms, default 50) and then a final "stop" value, each with coord_kv_put
 * conditional on the key's version it read last (compare-and-set: a write by anybody else in
 * between is a conflict, and the writer reads again before it writes). A follower exits once it
 * has seen "stop".
 *
 * Values name the run ("run <pid>: version <n>", "run <pid>: stop"), so that a value left by an
 * earlier run is not taken for this one's. A watch may coalesce: when changes come faster than
 * they are delivered it skips to the latest value, so a follower may not see every version
 * (try --interval-ms 0), but it never sees an older one after a newer one and always sees the
 * last one. The checks: every follower saw the key's versions in increasing order and ended on
 * the last one (the "stop" this process wrote, at the version its put returned).
 * Exit 0 when every check held, 1 otherwise, 2 for bad options.
 */
#define _DEFAULT_SOURCE
#include <coord.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define MAX_FOLLOWERS 32

/* What a follower saw, in memory shared with this process (written by the follower only). */
typedef struct seen {
    atomic_bool ready;    /* had its first report: the watch is armed */
    atomic_bool failed;   /* gave up: no watch */
    bool stopped;         /* saw this run's "stop" */
    bool ordered;         /* the key's versions and this run's numbers only ever grew */
    int applied;          /* versions of this run applied */
    int last_n;           /* the last version number of this run applied, 0 for none */
    int64_t last_version; /* the key's version in the last report */
} seen;

typedef struct config {
    const char *uri, *key;
    int followers, versions, interval_ms;
    char run[32]; /* "run <pid>" */
    seen *seen;   /* [followers], shared */
} config;

/* ---------- a follower ---------- */

typedef struct follower {
    const config *cfg;
    int idx;
    seen *me;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int reports;
} follower;

/* What a value says: this run's version number (> 0), 0 for this run's "stop", -1 for anything
 * else (absent, another run's, not ours at all). */
static int parse(const config *cfg, const char *v, size_t len) {
    size_t rl = strlen(cfg->run);
    int n;
    char end;
    if (!v || len <= rl + 2 || memcmp(v, cfg->run, rl) || memcmp(v + rl, ": ", 2)) return -1;
    if (len == rl + 6 && !memcmp(v + rl + 2, "stop", 4)) return 0;
    if (sscanf(v + rl + 2, "version %d%c", &n, &end) == 1 && n > 0) return n;
    return -1;
}

/* Say which versions the watch skipped (from..to), if any. */
static void skipped(int idx, int from, int to) {
    if (from == to)
        printf("follower %d: version %d coalesced away\n", idx, from);
    else if (from < to)
        printf("follower %d: versions %d..%d coalesced away\n", idx, from, to);
}

/* The watch's reports, on its own thread, one at a time. */
static void on_change(const char *key, const void *value, size_t len, int64_t version,
                      void *payload) {
    follower *f = payload;
    seen *me = f->me;
    const config *cfg = f->cfg;
    int n = parse(cfg, value, len);
    bool again = f->reports > 0 && version == me->last_version; /* re-reported after a reset */
    if (f->reports++ && version < me->last_version) me->ordered = false;
    me->last_version = version;
    if (again) {
        printf("follower %d: key version %" PRId64 " reported again (the watch read it afresh)\n",
               f->idx, version);
    } else if (n > 0) {
        if (n <= me->last_n) me->ordered = false;
        skipped(f->idx, me->last_n + 1, n - 1);
        printf("follower %d: applies version %d (key %s at version %" PRId64 ")\n", f->idx, n, key,
               version);
        me->applied++;
        me->last_n = n;
    } else if (n == 0) {
        skipped(f->idx, me->last_n + 1, cfg->versions);
        printf("follower %d: stop (key version %" PRId64 "), last applied version %d\n", f->idx,
               version, me->last_n);
    } else if (!value) {
        printf("follower %d: %s is absent: waiting for this run's configuration\n", f->idx, key);
    } else {
        printf("follower %d: %s holds \"%.*s\", not this run's: waiting\n", f->idx, key,
               (int)(len < 60 ? len : 60), (const char *)value);
    }
    pthread_mutex_lock(&f->mu);
    me->stopped = n == 0;
    atomic_store(&me->ready, true);
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static int follower_main(int idx, void *arg) {
    const config *cfg = arg;
    follower f = {.cfg = cfg, .idx = idx, .me = &cfg->seen[idx]};
    f.me->ordered = true;
    pthread_mutex_init(&f.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f.cv, &ca);
    coord_client *c = NULL;
    coord_kv_watch *w = NULL;
    int rc = coord_client_open(&c, cfg->uri, NULL);
    if (!rc) rc = coord_kv_watch_new(&w, c, cfg->key, on_change, &f);
    if (rc) {
        fprintf(stderr, "follower %d: watch %s: %s: %s\n", idx, cfg->key, coord_strerror(rc),
                coord_last_error());
        atomic_store(&f.me->failed, true);
        coord_client_close(c);
        return 1;
    }
    /* Bounded: the writer starts within 20 s and writes at its pace. */
    int64_t deadline =
        ex_now_ms() + 30000 + (int64_t)(cfg->versions + 1) * (cfg->interval_ms + 1000);
    struct timespec until = {(time_t)(deadline / 1000), (long)(deadline % 1000) * 1000000L};
    pthread_mutex_lock(&f.mu);
    while (!f.me->stopped && ex_now_ms() < deadline)
        pthread_cond_timedwait(&f.cv, &f.mu, &until);
    bool stopped = f.me->stopped;
    pthread_mutex_unlock(&f.mu);
    coord_kv_watch_free(w); /* when it returns, on_change runs no more */
    coord_client_close(c);
    if (!stopped) fprintf(stderr, "follower %d: no \"stop\" within the run's time\n", idx);
    return stopped ? 0 : 1;
}

/* ---------- the writer ---------- */

/* Write `value` over the version *version the writer read last; on a conflict (somebody else
 * wrote in between) read the key again and retry, a few times. 0, or the error. */
static int cas_put(coord_client *c, const char *key, const char *value, int64_t *version) {
    int rc = COORD_ECONFLICT;
    for (int attempt = 0; attempt < 5 && rc == COORD_ECONFLICT; attempt++) {
        int64_t expect = *version;
        rc = coord_kv_put(c, key, value, strlen(value), expect, version);
        if (rc != COORD_ECONFLICT) break;
        printf("writer: %s moved past version %" PRId64 ": reading it again\n", key, expect);
        void *v = NULL;
        size_t len;
        int g = coord_kv_get(c, key, &v, &len, version);
        free(v);
        if (g == COORD_ENOTFOUND)
            *version = 0;
        else if (g)
            return g;
    }
    return rc;
}

/* Wait (at most `ms`) until every follower had its first report; false at once when one gave
 * up. */
static bool await_ready(const config *cfg, int ms) {
    for (int64_t deadline = ex_now_ms() + ms;; ex_sleep_ms(10)) {
        int n = 0;
        for (int i = 0; i < cfg->followers; i++) {
            if (atomic_load(&cfg->seen[i].failed)) return false;
            n += atomic_load(&cfg->seen[i].ready);
        }
        if (n == cfg->followers) return true;
        if (ex_now_ms() >= deadline) return false;
    }
}

/* The writer's part: read the key, write versions 1..V and "stop" by compare-and-set. 0 and
 * *final (the key's version of "stop"), or 1. */
static int write_versions(const config *cfg, int64_t *final) {
    coord_client *c = NULL;
    int rc = coord_client_open(&c, cfg->uri, NULL);
    void *v = NULL;
    size_t len;
    int64_t version = 0;
    if (!rc && (rc = coord_kv_get(c, cfg->key, &v, &len, &version)) == COORD_ENOTFOUND) rc = 0;
    free(v);
    if (!rc) printf("writer: %s is at version %" PRId64 "\n", cfg->key, version);
    char value[64];
    for (int n = 1; !rc && n <= cfg->versions + 1; n++) {
        if (n <= cfg->versions)
            snprintf(value, sizeof value, "%s: version %d", cfg->run, n);
        else
            snprintf(value, sizeof value, "%s: stop", cfg->run);
        if (!(rc = cas_put(c, cfg->key, value, &version)))
            printf("writer: \"%s\" written, key version %" PRId64 "\n", value, version);
        if (!rc && n <= cfg->versions) ex_sleep_ms(cfg->interval_ms);
    }
    if (rc)
        fprintf(stderr, "config_follow: writer: %s: %s: %s\n", cfg->key, coord_strerror(rc),
                coord_last_error());
    coord_client_close(c);
    *final = version;
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    config cfg = {.key = "config-follow/config", .followers = 3, .versions = 10, .interval_ms = 50};
    const ex_opt opts[] = {
        {"--key", &cfg.key},
        {"--followers", .num = &cfg.followers, .lo = 1, .hi = MAX_FOLLOWERS},
        {"--versions", .num = &cfg.versions, .lo = 1, .hi = 1000},
        {"--interval-ms", .num = &cfg.interval_ms, .lo = 0, .hi = 10000},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "config_follow",
                      "usage: %s [--uri URI] [--followers N] [--versions V] [--interval-ms MS] "
                      "[--key KEY]\n"
                      "  URI from --uri or COORD_URI; defaults: 3 followers, 10 versions, one "
                      "every 50 ms,\n  key \"config-follow/config\"\n",
                      opts, &cfg.uri);
    if (rc) return rc < 0 ? 0 : rc;
    setvbuf(stdout, NULL, _IOLBF, 0); /* so that the processes' lines do not mix */
    snprintf(cfg.run, sizeof cfg.run, "run %ld", (long)getpid());
    size_t size = sizeof(seen) * (size_t)cfg.followers;
    cfg.seen = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (cfg.seen == MAP_FAILED) {
        perror("config_follow: mmap");
        return 1;
    }

    /* The followers first: a process with threads (a client's) should not fork. */
    pid_t pids[MAX_FOLLOWERS];
    int started = ex_fork_workers("config_follow", cfg.followers, follower_main, &cfg, pids);
    int failures = started < cfg.followers;
    int64_t final = -1;
    if (!failures && !await_ready(&cfg, 20000)) {
        printf("config_follow: the followers are not all watching (within 20 s): FAILED\n");
        failures++;
    }
    if (!failures) failures += write_versions(&cfg, &final);
    if (failures) /* nothing more to wait for */
        for (int i = 0; i < started; i++)
            kill(pids[i], SIGTERM);
    failures += ex_wait_workers("config_follow", pids, started);

    for (int i = 0; i < started && final >= 0; i++) {
        const seen *s = &cfg.seen[i];
        bool ok = s->stopped && s->ordered && s->last_version == final;
        printf("follower %d: ended on key version %" PRId64 " (want %" PRId64 "), versions %s, "
               "applied %d of %d (%d coalesced away): %s\n",
               i, s->last_version, final, s->ordered ? "in increasing order" : "OUT OF ORDER",
               s->applied, cfg.versions, cfg.versions - s->applied, ok ? "ok" : "FAILED");
        failures += !ok;
    }
    munmap(cfg.seen, size);
    printf("config_follow: %s\n", failures ? "FAILED" : "every check held");
    return failures ? 1 : 0;
}
