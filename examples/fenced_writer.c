/*
 * fenced_writer: two writers behind one lock, each write a transaction guarded by the lock, so
 * that a writer paused past its session cannot write once the other one took over.
 *
 *   fenced_writer --uri zk://127.0.0.1:2181/demo --ttl-ms 3000 --units 3
 *   COORD_URI=etcd://127.0.0.1:2379/demo fenced_writer --key fenced-writer/data --name fw
 *
 * Two writer processes, A and B, each its own client (session TTL --ttl-ms, default 3000), take
 * the lock --name (default "fenced-writer"): A first, B once A has written. Holding it, a writer
 * works for --unit-ms (default 200), then writes "<writer>:<n>" to the key --key (default
 * "fenced-writer/data") and appends the same line to the log "<key>-log", in one transaction:
 * a check that the log is at the version just read, the two puts, and coord_txn_guard(lock),
 * which makes the commit apply only while the lock's entry is still this holder's.
 *
 * This process pauses A (SIGSTOP) just after one of its writes, in the middle of its next unit
 * of work, and keeps it paused longer than its session TTL, and until B has the lock (which it
 * gets once A's session ended) and has written. Then it resumes A, which knows nothing of the
 * pause and goes on with its write: the guard refuses it (COORD_ENOTHELD when A's client learnt
 * of the lost session first, COORD_ECONFLICT when the servers refused the guard's check; the
 * example prints which) and A stops. B writes --units (default 3) lines and releases. Checking
 * coord_lock_held before the write is not enough: the pause can fall between the check and the
 * write; the guard is checked by the servers, with the write.
 *
 * The checks: A's late write was refused, and the log (this run's part, after a "run <pid>"
 * line) has no write of A after B's first one. Exit 0 when every check held, 1 otherwise, 2 for
 * bad options.
 */
#define _DEFAULT_SOURCE
#include <coord.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* Shared by the writers and this process (an anonymous shared mapping made before the forks). */
typedef struct shared {
    atomic_int writes[2]; /* writes accepted, of A and of B */
    atomic_int refused;   /* the error that refused A's late write, 0 before */
    atomic_bool ended[2]; /* the writer's process is ending */
} shared;

typedef struct config {
    const char *uri, *name, *key;
    int ttl_ms, unit_ms, units;
    char log[300]; /* "<key>-log" */
    char run[32];  /* "run <pid>" */
    shared *sh;
} config;

static const char *const writer_name[2] = {"A", "B"};

/* ---------- a writer ---------- */

static int fail(const char *who, const char *what, int rc) {
    fprintf(stderr, "[%s] %s: %s: %s\n", who, what, coord_err_name(rc), coord_last_error());
    return 1;
}

/*
 * One write of "<who>:<n>", guarded by `l`: read the log, then in one transaction check that the
 * log is still at the version read, write the key and the log (this run's log, started afresh
 * when it holds another run's). 0 when applied; else the error, *what naming the step.
 */
static int write_once(coord_client *c, coord_lock *l, const config *cfg, const char *who, int n,
                      const char **what) {
    void *old = NULL;
    size_t len = 0;
    int64_t version = 0;
    *what = "read the log";
    int rc = coord_kv_get(c, cfg->log, &old, &len, &version);
    if (rc == COORD_ENOTFOUND) rc = 0;
    if (rc) return rc;
    char line[64];
    snprintf(line, sizeof line, "%s:%d", who, n);
    size_t rl = strlen(cfg->run);
    bool ours = old && len > rl && !memcmp(old, cfg->run, rl) && ((char *)old)[rl] == '\n';
    size_t size = (ours ? len : rl + 1) + strlen(line) + 2;
    char *log = malloc(size);
    if (log) snprintf(log, size, "%s%s%s\n", ours ? (char *)old : cfg->run, ours ? "" : "\n", line);
    free(old);
    if (!log) return COORD_ENOMEM;
    coord_txn *t = NULL;
    *what = "build the transaction";
    if (!(rc = coord_txn_new(&t, c)) && !(rc = coord_txn_check(t, cfg->log, version)) &&
        !(rc = coord_txn_put(t, cfg->key, line, strlen(line))) &&
        !(rc = coord_txn_put(t, cfg->log, log, strlen(log))) && !(rc = coord_txn_guard(t, l))) {
        *what = "commit";
        rc = coord_txn_commit(t);
    }
    coord_txn_free(t);
    free(log);
    return rc;
}

/* Hold the lock and write: B `units` times, A until a write of it is refused. Exit status. */
static int write_loop(coord_client *c, coord_lock *l, const config *cfg, int idx) {
    const char *who = writer_name[idx];
    shared *sh = cfg->sh;
    /* Bounded: A is paused and resumed within seconds, B writes a few units. */
    int64_t deadline = ex_now_ms() + 4 * cfg->ttl_ms + 30000 + 10 * cfg->unit_ms;
    int n = 1;
    while (idx == 1 ? n <= cfg->units : atomic_load(&sh->refused) == 0) {
        if (ex_now_ms() > deadline) {
            fprintf(stderr, "[%s] still writing after the example's time\n", who);
            return 1;
        }
        ex_sleep_ms(cfg->unit_ms); /* the work: a pause here makes the write below late */
        const char *what;
        int rc = write_once(c, l, cfg, who, n, &what);
        if (!rc) {
            printf("[%s] wrote %s:%d\n", who, who, n++);
            atomic_fetch_add(&sh->writes[idx], 1);
        } else if (!strcmp(what, "commit") && (rc == COORD_ENOTHELD || rc == COORD_ECONFLICT)) {
            printf("[%s] write %s:%d refused: %s (%s)\n", who, who, n, coord_err_name(rc),
                   coord_last_error());
            if (idx == 1) return 1; /* B is never deposed */
            atomic_store(&sh->refused, rc);
        } else if (rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT || rc == COORD_ESESSION) {
            /* No answer, or an ended session (A's, when it learns of it): try again. A guarded
             * commit of unknown outcome was applied while the lock was held, or not at all. */
            printf("[%s] %s for %s:%d: %s: trying again\n", who, what, who, n, coord_err_name(rc));
        } else {
            return fail(who, what, rc);
        }
    }
    return 0;
}

static int writer(int idx, const config *cfg) {
    const char *who = writer_name[idx];
    coord_options o = COORD_OPTIONS_INIT;
    o.session_ttl_ms = cfg->ttl_ms;
    coord_client *c = NULL;
    coord_lock *l = NULL;
    int rc = coord_client_open(&c, cfg->uri, &o);
    if (rc) return fail(who, "connect", rc);
    if ((rc = coord_lock_new(&l, c, cfg->name))) {
        coord_client_close(c);
        return fail(who, "lock", rc);
    }
    /* B asks for the lock once A holds it and has written. */
    for (int64_t until = ex_now_ms() + 20000;
         idx == 1 && !atomic_load(&cfg->sh->writes[0]) && ex_now_ms() < until;)
        ex_sleep_ms(10);
    int status = 1;
    uint64_t token = 0;
    if ((rc = coord_lock_acquire(l, 2 * cfg->ttl_ms + 20000)) ||
        (rc = coord_lock_token(l, &token))) {
        fail(who, "acquire", rc);
    } else {
        printf("[%s] holds lock %s, token %" PRIu64 "\n", who, cfg->name, token);
        status = write_loop(c, l, cfg, idx);
        rc = coord_lock_release(l);
        if (rc && rc != COORD_ENOTHELD) status = fail(who, "release", rc);
        printf("[%s] %s\n", who, idx == 0 ? "stops: its lock is lost" : "released the lock");
    }
    coord_lock_free(l);
    coord_client_close(c);
    return status;
}

static int writer_main(int idx, void *arg) {
    const config *cfg = arg;
    int status = writer(idx, cfg);
    atomic_store(&cfg->sh->ended[idx], true);
    return status;
}

/* ---------- the demo: pause A, check the log ---------- */

/* Wait (at most `ms`, and while it runs) until writer `idx` has more than `n` writes accepted. */
static bool await_writes(const shared *sh, int idx, int n, int ms) {
    for (int64_t deadline = ex_now_ms() + ms;; ex_sleep_ms(2)) {
        if (atomic_load(&sh->writes[idx]) > n) return true;
        if (ex_now_ms() >= deadline || atomic_load(&sh->ended[idx])) return false;
    }
}

/* Pause A just after a write, until B wrote; resume it. 0, or 1 when a step did not happen. */
static int pause_a(const config *cfg, pid_t a) {
    shared *sh = cfg->sh;
    if (!await_writes(sh, 0, 1, 20000 + 3 * cfg->unit_ms)) {
        printf("A did not write twice (within 20 s): FAILED\n");
        return 1;
    }
    /* Just after a write: A is in the work of its next unit. */
    await_writes(sh, 0, atomic_load(&sh->writes[0]), cfg->unit_ms + 5000);
    kill(a, SIGSTOP);
    int64_t t0 = ex_now_ms();
    int before = atomic_load(&sh->writes[0]);
    printf("paused A (SIGSTOP) after %d writes\n", before);
    bool b_wrote = await_writes(sh, 1, 0, cfg->ttl_ms + 15000);
    int64_t paused = ex_now_ms() - t0;
    if (paused <= cfg->ttl_ms) { /* etcd may end a lease a little before its TTL after the pause */
        ex_sleep_ms(cfg->ttl_ms + 100 - paused);
        paused = ex_now_ms() - t0;
    }
    kill(a, SIGCONT);
    if (!b_wrote) {
        printf("resumed A after %" PRId64 " ms: B did not write meanwhile: FAILED\n", paused);
        return 1;
    }
    printf("resumed A (SIGCONT) after %" PRId64 " ms paused (session TTL %d ms): B took the lock "
           "and wrote meanwhile\n",
           paused, cfg->ttl_ms);
    return 0;
}

/* Check the log: this run's, with no write of A after B's first. 0 when it held. */
static int check_log(const config *cfg) {
    coord_client *c = NULL;
    void *v = NULL, *last = NULL;
    size_t len = 0, llen = 0;
    int rc = coord_client_open(&c, cfg->uri, NULL);
    if (!rc) rc = coord_kv_get(c, cfg->log, &v, &len, NULL);
    if (!rc) rc = coord_kv_get(c, cfg->key, &last, &llen, NULL);
    coord_client_close(c);
    if (rc) {
        printf("log %s: %s: %s: FAILED\n", cfg->log, coord_err_name(rc), coord_last_error());
        free(v);
        free(last);
        return 1;
    }
    int a = 0, b = 0, a_after_b = 0, lines = 0;
    bool ours = false;
    const char *final = "";
    printf("log %s:", cfg->log);
    for (char *save = NULL, *s = strtok_r(v, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
        if (lines++ == 0) {
            ours = !strcmp(s, cfg->run);
            continue;
        }
        printf(" %s", s);
        final = s;
        if (!strncmp(s, "A:", 2)) {
            a++;
            a_after_b += b > 0;
        } else if (!strncmp(s, "B:", 2)) {
            b++;
        }
    }
    bool ok = ours && a > 0 && b == cfg->units && !a_after_b && !strcmp(final, last);
    printf("\nlog: %d writes of A, then %d of B, %d of A after B's first, key %s = \"%s\": %s\n", a,
           b, a_after_b, cfg->key, (char *)last, ok ? "ok" : "FAILED");
    if (!ours) printf("log: not this run's (\"%s\" expected first)\n", cfg->run);
    free(v);
    free(last);
    return !ok;
}

int main(int argc, char **argv) {
    config cfg = {.name = "fenced-writer",
                  .key = "fenced-writer/data",
                  .ttl_ms = 3000,
                  .unit_ms = 200,
                  .units = 3};
    const ex_opt opts[] = {
        {"--name", &cfg.name, .name = 1},
        {"--key", &cfg.key},
        {"--ttl-ms", .num = &cfg.ttl_ms, .lo = 1000, .hi = 60000},
        {"--unit-ms", .num = &cfg.unit_ms, .lo = 10, .hi = 10000},
        {"--units", .num = &cfg.units, .lo = 1, .hi = 1000},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "fenced_writer",
                      "usage: %s [--uri URI] [--ttl-ms MS] [--unit-ms MS] [--units N] [--name "
                      "NAME] [--key KEY]\n"
                      "  URI from --uri or COORD_URI; defaults: TTL 3000 ms, a write every 200 "
                      "ms, 3 writes of B,\n  lock \"fenced-writer\", key \"fenced-writer/data\" "
                      "(its log: the key + \"-log\")\n",
                      opts, &cfg.uri);
    if (rc) return rc < 0 ? 0 : rc;
    if (strlen(cfg.key) > 200) {
        fprintf(stderr, "fenced_writer: --key is longer than 200 bytes\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* so that the processes' lines do not mix */
    snprintf(cfg.log, sizeof cfg.log, "%s-log", cfg.key);
    snprintf(cfg.run, sizeof cfg.run, "run %ld", (long)getpid());
    cfg.sh = mmap(NULL, sizeof *cfg.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (cfg.sh == MAP_FAILED) {
        perror("fenced_writer: mmap");
        return 1;
    }

    /* The writers first: a process with threads (a client's) should not fork. */
    pid_t pids[2];
    int started = ex_fork_workers("fenced_writer", 2, writer_main, &cfg, pids);
    int failures = started < 2;
    if (!failures) failures += pause_a(&cfg, pids[0]);
    if (failures) /* nothing more to wait for */
        for (int i = 0; i < started; i++) {
            kill(pids[i], SIGTERM);
            kill(pids[i], SIGCONT);
        }
    failures += ex_wait_workers("fenced_writer", pids, started);
    int refused = atomic_load(&cfg.sh->refused);
    printf("A's write after the pause: %s\n", refused ? coord_err_name(refused) : "NOT REFUSED");
    failures += !refused;
    if (started == 2) failures += check_log(&cfg);
    munmap(cfg.sh, sizeof *cfg.sh);
    printf("fenced_writer: %s\n", failures ? "FAILED" : "every check held");
    return failures ? 1 : 0;
}
