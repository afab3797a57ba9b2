/*
 * leader: one active instance and N standbys; the active one works, and stamps each unit of work
 * with its term on a shared resource that refuses older terms.
 *
 *   leader --uri zk://127.0.0.1:2181/demo --standby 2 --ttl-ms 3000
 *   COORD_URI=etcd://127.0.0.1:2379/demo leader --journal /tmp/leader.journal
 *
 * The demo (this process) forks N+1 instances (--standby N, default 2). Each opens its own client
 * (session TTL --ttl-ms, default 3000) and campaigns in the election --name (default
 * "leader-demo") with the value "instance-<i>". The leader does a unit of work every --unit-ms
 * (default 200) and writes it to the journal stamped with its term; the others wait their turn,
 * each watching only the candidate before it.
 *
 * The shared resource is a journal file (default /tmp/leader-demo-<pid>.journal, emptied first),
 * standing for a storage service that checks fencing tokens: a write takes flock(2) on it (so the
 * check and the append are one step), reads the highest term written so far and is refused when
 * its own term is older; a refused write only leaves a "refused" note. Terms (etcd: the create
 * revision of the leader's key; ZooKeeper: the czxid of its node) grow from one leader to the
 * next, so a leader that was deposed without knowing it (paused, cut off) cannot write over its
 * successor's work when its write comes late. Checking coord_election_is_leader before each unit
 * is not enough for that: the pause can fall between the check and the write.
 *
 * The demo follows the election with on_leader and:
 *   1. kills the first leader with SIGKILL: its session ends after the TTL and the next candidate
 *      leads (checked: within TTL + 2 s, with a higher term);
 *   2. pauses that leader with SIGSTOP in the middle of a unit, waits for the next one to lead and
 *      write, resumes the paused one: its late write, stamped with its old term, is refused (it
 *      then stands by again, on a new session);
 *   3. stops the instances with SIGTERM (the leader resigns) and checks that the terms of the
 *      accepted writes never decrease.
 * Exit 0 when every check held, 1 otherwise, 2 for bad options.
 */
#define _DEFAULT_SOURCE /* flock */
#include <coord.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

typedef struct config {
    const char *uri, *name, *journal;
    int standby, ttl_ms, unit_ms;
} config;

/* ---------- the shared resource ---------- */

/* What the journal holds: accepted writes ("<term> <id> unit <n>"), those of `term`, whether a
 * write of `term` was refused ("refused <term> ..."), whether the accepted terms never
 * decrease, the highest term. */
typedef struct journal_view {
    int total, units;
    bool refused, ordered;
    uint64_t last;
} journal_view;

static journal_view journal_scan(FILE *f, uint64_t term) {
    journal_view v = {.ordered = true};
    char line[256];
    unsigned long long t;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "refused %llu", &t) == 1) {
            v.refused |= t == term;
        } else if (sscanf(line, "%llu", &t) == 1) {
            v.total++;
            v.units += t == term;
            v.ordered &= t >= v.last;
            if (t > v.last) v.last = t;
        }
    }
    return v;
}

static journal_view journal_read(const char *path, uint64_t term) {
    journal_view v = {.ordered = true};
    FILE *f = fopen(path, "r");
    if (!f) return v;
    flock(fileno(f), LOCK_SH);
    v = journal_scan(f, term);
    fclose(f); /* unlocks */
    return v;
}

/* Append unit `unit` of `id` with its `term`, unless the journal holds a newer term (then only the
 * refusal is noted). 0 written, 1 refused (*newest: the journal's term), -1 on an I/O error. */
static int journal_write(const char *path, uint64_t term, const char *id, int unit,
                         uint64_t *newest) {
    FILE *f = fopen(path, "a+");
    if (!f) return -1;
    flock(fileno(f), LOCK_EX);
    *newest = journal_scan(f, 0).last;
    bool refused = term < *newest;
    fseek(f, 0, SEEK_END);
    fprintf(f, "%s%" PRIu64 " %s unit %d\n", refused ? "refused " : "", term, id, unit);
    int rc = fclose(f) ? -1 : refused; /* unlocks */
    return rc;
}

/* ---------- an instance ---------- */

typedef struct instance {
    const config *cfg;
    char id[32];
    coord_election *e;
    atomic_bool stop;
} instance;

/* Takes SIGTERM (blocked in every other thread): stop, and end a campaign that waits. */
static void *stopper(void *arg) {
    instance *in = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    int sig;
    while (sigwait(&set, &sig)) {
    }
    atomic_store(&in->stop, true);
    coord_election_cancel(in->e);
    return NULL;
}

static int failed(const instance *in, const char *what, int rc) {
    fprintf(stderr, "[%s] %s: %s: %s\n", in->id, what, coord_strerror(rc), coord_last_error());
    return 1;
}

/* One turn: campaign, then work while leading, then resign. 0, or 1 on failure. */
static int serve(instance *in) {
    const config *cfg = in->cfg;
    int rc = coord_election_campaign(in->e, in->id, strlen(in->id), -1);
    if (rc == COORD_ECANCELED) return 0; /* SIGTERM */
    if (rc == COORD_ESESSION) return 0;  /* the client opens a new session: campaign again */
    if (rc) return failed(in, "campaign", rc);
    uint64_t term = 0, newest = 0;
    coord_election_term(in->e, &term);
    printf("[%s] leads, term %" PRIu64 "\n", in->id, term);
    int unit = 0;
    while (!atomic_load(&in->stop) && coord_election_is_leader(in->e)) {
        ex_sleep_ms(cfg->unit_ms); /* the work: a pause here makes the write below late */
        int w = journal_write(cfg->journal, term, in->id, unit + 1, &newest);
        if (w < 0) {
            perror(cfg->journal);
            return 1;
        }
        if (w > 0) {
            printf("[%s] unit %d refused: term %" PRIu64 " is older than the journal's %" PRIu64
                   "; standing by again\n",
                   in->id, unit + 1, term, newest);
            break;
        }
        unit++;
    }
    rc = coord_election_resign(in->e);
    if (rc && rc != COORD_ENOTHELD) return failed(in, "resign", rc);
    printf("[%s] %s; %d units of term %" PRIu64 " written\n", in->id,
           atomic_load(&in->stop) ? "resigned" : "no longer leads", unit, term);
    return 0;
}

static int instance_main(int idx, void *arg) {
    instance in = {.cfg = arg};
    snprintf(in.id, sizeof in.id, "instance-%d", idx);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread, so that all inherit it */
    coord_options o = COORD_OPTIONS_INIT;
    o.session_ttl_ms = in.cfg->ttl_ms;
    coord_client *c;
    int rc = coord_client_open(&c, in.cfg->uri, &o);
    if (rc) return failed(&in, "connect", rc);
    if ((rc = coord_election_new(&in.e, c, in.cfg->name, NULL))) {
        failed(&in, "election", rc);
        coord_client_close(c);
        return 1;
    }
    pthread_t tid;
    int status = 1;
    if (!pthread_create(&tid, NULL, stopper, &in)) {
        for (status = 0; !status && !atomic_load(&in.stop);)
            status = serve(&in);
        pthread_kill(tid, SIGTERM); /* ends the stopper if it still waits */
        pthread_join(tid, NULL);
    }
    coord_election_free(in.e);
    coord_client_close(c);
    return status;
}

/* ---------- the demo: watch, kill, pause ---------- */

typedef struct watch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int idx; /* the leading instance, -1 when none */
    uint64_t term;
} watch;

static void on_leader(coord_election *e, const coord_leader *leader, void *payload) {
    (void)e;
    watch *w = payload;
    char v[32] = "";
    int idx = -1;
    if (leader && leader->len < sizeof v) memcpy(v, leader->value, leader->len);
    if (leader) sscanf(v, "instance-%d", &idx);
    pthread_mutex_lock(&w->mu);
    w->idx = idx;
    w->term = leader ? leader->term : 0;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (leader)
        printf("  on_leader: %s, term %" PRIu64 "\n", v, leader->term);
    else
        printf("  on_leader: nobody leads\n");
}

/* Wait until an instance leads with another term than `old`: its index (and *term), -1 after
 * `ms` milliseconds. */
static int await_leader(watch *w, uint64_t old, int ms, uint64_t *term) {
    int64_t deadline = ex_now_ms() + ms;
    struct timespec until = {(time_t)(deadline / 1000), (long)(deadline % 1000) * 1000000L};
    pthread_mutex_lock(&w->mu);
    while ((w->idx < 0 || w->term == old) && ex_now_ms() < deadline)
        pthread_cond_timedwait(&w->cv, &w->mu, &until); /* on CLOCK_MONOTONIC */
    int idx = w->idx >= 0 && w->term != old ? w->idx : -1;
    *term = w->term;
    pthread_mutex_unlock(&w->mu);
    return idx;
}

/* Wait (at most `ms`) until the journal has more than `units` writes of `term`, or with `refused`
 * a refused one. */
static bool await_journal(const char *path, uint64_t term, int units, bool refused, int ms) {
    for (int64_t deadline = ex_now_ms() + ms;; ex_sleep_ms(5)) {
        journal_view v = journal_read(path, term);
        if (refused ? v.refused : v.units > units) return true;
        if (ex_now_ms() >= deadline) return false;
    }
}

/* Kill (SIGKILL) or pause (SIGSTOP, in the middle of a unit) the leader `idx` of term `term`;
 * the next leader's index and term when it leads within TTL + 2 s, else -1. */
static int depose(const config *cfg, watch *w, pid_t *pids, int idx, uint64_t *term, int sig) {
    int units = journal_read(cfg->journal, *term).units;
    bool works = await_journal(cfg->journal, *term, units, false, cfg->unit_ms + 5000);
    kill(pids[idx], sig); /* just after a write: the leader is in the work of its next unit */
    int64_t t0 = ex_now_ms();
    uint64_t old = *term;
    int next = await_leader(w, old, cfg->ttl_ms + 7000, term);
    int64_t took = ex_now_ms() - t0;
    printf("%s instance-%d (term %" PRIu64 "): ", sig == SIGKILL ? "killed" : "paused", idx, old);
    if (!works) {
        printf("it wrote nothing to the journal: FAILED\n");
        return -1;
    }
    if (next < 0 || took > cfg->ttl_ms + 2000 || *term <= old) {
        printf("no new leader with a higher term within TTL + 2 s (%d ms): FAILED\n",
               cfg->ttl_ms + 2000);
        return -1;
    }
    printf("instance-%d leads after %" PRId64 " ms, term %" PRIu64 ": ok\n", next, took, *term);
    return next;
}

int main(int argc, char **argv) {
    config cfg = {.name = "leader-demo", .standby = 2, .ttl_ms = 3000, .unit_ms = 200};
    char journal[64];
    snprintf(journal, sizeof journal, "/tmp/leader-demo-%ld.journal", (long)getpid());
    cfg.journal = journal;
    const ex_opt opts[] = {
        {"--name", &cfg.name, .name = 1},
        {"--journal", &cfg.journal},
        {"--standby", .num = &cfg.standby, .lo = 2, .hi = 32},
        {"--ttl-ms", .num = &cfg.ttl_ms, .lo = 1000, .hi = 60000},
        {"--unit-ms", .num = &cfg.unit_ms, .lo = 10, .hi = 10000},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "leader",
                      "usage: %s [--uri URI] [--standby N] [--ttl-ms MS] [--unit-ms MS] [--name "
                      "NAME] [--journal FILE]\n"
                      "  URI from --uri or COORD_URI; defaults: 2 standbys, TTL 3000 ms, a unit "
                      "of work every 200 ms,\n  name \"leader-demo\", journal "
                      "/tmp/leader-demo-<pid>.journal (emptied first)\n",
                      opts, &cfg.uri);
    if (rc) return rc < 0 ? 0 : rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    FILE *j = fopen(cfg.journal, "w");
    if (!j || fclose(j)) {
        perror(cfg.journal);
        return 1;
    }

    /* The instances first: a process with threads (a client's) should not fork. */
    int n = cfg.standby + 1, failures = 0;
    pid_t pids[33];
    int started = ex_fork_workers("leader", n, instance_main, &cfg, pids);
    watch w = {.idx = -1};
    pthread_mutex_init(&w.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cv, &ca);
    coord_client *c = NULL;
    coord_election *e = NULL;
    coord_election_options eo = COORD_ELECTION_OPTIONS_INIT;
    eo.on_leader = on_leader;
    eo.payload = &w;
    if ((rc = coord_client_open(&c, cfg.uri, NULL)) ||
        (rc = coord_election_new(&e, c, cfg.name, &eo))) { /* observes, never campaigns */
        fprintf(stderr, "leader: %s: %s\n", coord_strerror(rc), coord_last_error());
        failures++;
    }
    uint64_t term = 0;
    int first = !failures && started == n ? await_leader(&w, 0, 20000, &term) : -1;
    int second = -1, third = -1;
    if (first < 0 && !failures++) printf("no instance leads within 20 s: FAILED\n");
    if (first >= 0 && (second = depose(&cfg, &w, pids, first, &term, SIGKILL)) < 0) failures++;
    if (first >= 0) waitpid(pids[first], NULL, 0); /* reaped here; the others below */
    uint64_t paused_term = term;
    if (second >= 0 && (third = depose(&cfg, &w, pids, second, &term, SIGSTOP)) < 0) failures++;
    if (third >= 0) {
        bool wrote = await_journal(cfg.journal, term, 0, false, cfg.unit_ms + 5000);
        kill(pids[second], SIGCONT);
        bool refused = wrote && await_journal(cfg.journal, paused_term, 0, true, 5000);
        printf("resumed instance-%d: its late write of term %" PRIu64 " was %s\n", second,
               paused_term, refused ? "refused: ok" : "not refused: FAILED");
        failures += !refused;
    }
    if (second >= 0) kill(pids[second], SIGCONT); /* if it is still paused */

    int live = 0;
    for (int i = 0; i < started; i++)
        if (i != first) {
            kill(pids[i], SIGTERM);
            pids[live++] = pids[i];
        }
    failures += ex_wait_workers("leader", pids, live) + (started < n);
    coord_election_free(e);
    coord_client_close(c);
    journal_view v = journal_read(cfg.journal, 0);
    printf("journal %s: %d units written, terms %s\n", cfg.journal, v.total,
           v.ordered ? "never decrease: ok" : "DECREASE: FAILED");
    failures += !v.ordered;
    printf("leader: %s\n", failures ? "FAILED" : "every check held");
    return failures ? 1 : 0;
}
