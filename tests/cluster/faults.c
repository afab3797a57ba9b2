/* Fault suite harness: see faults.h. */
#include "faults.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The run in progress, for fx_teardown after a failed assertion. */
static fx_run *current;
static pid_t reaped_pid[FX_MAX_WORKERS];
static pid_t test_pid; /* the workers' parent */

void fx_nap(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static double secs(const fx_run *run) {
    return (double)(coord__now_ms() - run->t0) / 1000.0;
}

/* ---------- worker side ---------- */

bool fx_stopping(const fx_run *run) {
    return atomic_load(&run->sh->stop) != 0;
}

void fx_ok(fx_run *run, int id, int64_t started_ms) {
    fx_worker *w = &run->sh->w[id];
    int64_t now = coord__now_ms();
    atomic_fetch_add(&w->ops, 1);
    atomic_store(&w->last_ok_ms, now);
    int n = atomic_load(&run->sh->nevents);
    for (int i = 0; i < n; i++) {
        fx_event *e = &run->sh->ev[i];
        int64_t none = 0;
        if (e->at_ms <= started_ms) atomic_compare_exchange_strong(&e->first_ok_ms, &none, now);
    }
}

void fx_err(fx_run *run, int id, int rc) {
    fx_worker *w = &run->sh->w[id];
    atomic_fetch_add(&w->errors, 1);
    if (rc < 0 && -rc < FX_NCODES) {
        atomic_fetch_add(&w->codes[-rc], 1);
        snprintf(w->detail[-rc], sizeof w->detail[-rc], "%s", coord_last_error());
    }
}

int fx_fail(fx_run *run, int id, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(run->sh->w[id].failure, sizeof run->sh->w[id].failure, fmt, ap);
    va_end(ap);
    return 1;
}

bool fx_park_requested(const fx_run *run) {
    return atomic_load(&run->sh->park_req) && !atomic_load(&run->sh->parked);
}

void fx_parked(fx_run *run) {
    atomic_store(&run->sh->parked, 1);
    /* The test stops this process here; once it lets it go on, it sets resume_go. */
    while (!atomic_load(&run->sh->resume_go) && !fx_stopping(run))
        fx_nap(2);
    atomic_store(&run->sh->park_req, 0);
}

static void on_session(coord_client *c, coord_session_state st, void *payload) {
    (void)c;
    fx_worker *w = payload;
    atomic_store(&w->state, (int)st);
    if (st != COORD_SESSION_LOST) return;
    atomic_store(&w->lost_ms, coord__now_ms());
    atomic_fetch_add(&w->lost, 1);
}

static _Noreturn void worker_main(fx_run *run, int id, fx_body body) {
    /* Never outlive the test process, even when it is killed by ctest's timeout. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != test_pid) _exit(1); /* it died before prctl */
    fx_worker *w = &run->sh->w[id];
    coord_options o = COORD_OPTIONS_INIT;
    o.session_ttl_ms = id == run->victim ? FX_VICTIM_TTL_MS : FX_WORKER_TTL_MS;
    o.timeout_ms = FX_OP_TIMEOUT_MS;
    o.on_session = on_session;
    o.payload = w;
    coord_client *c = NULL;
    int rc = -1;
    for (int i = 0; i < 3 && rc; i++)
        rc = coord_client_open(&c, run->uri, &o);
    if (rc) _exit(fx_fail(run, id, "open: %s: %s", coord_err_name(rc), coord_last_error()));
    atomic_store(&w->session, coord_client_session(c));
    int st = body(run, id, c);
    atomic_store(&w->session, coord_client_session(c));
    coord_client_close(c);
    _exit(st); /* not exit(): the test's stdio buffers and handlers belong to the test process */
}

/* ---------- test side ---------- */

fx_run *fx_prepare(void **state, const char *scenario, int nworkers, int victim, size_t scn_size) {
    assert_true(nworkers > 0 && nworkers <= FX_MAX_WORKERS && victim < nworkers);
    const coord_test_backend *b = *state;
    char *uri = coord_test_uri(state, 1, NULL); /* skips without servers */
    assert_non_null(getenv("COORD_SERVERS"));
    /* A test killed in the middle of a fault (say by ctest's timeout) could not undo it. */
    coord_test_servers("heal", b->servers_name, NULL);
    fx_run *run = calloc(1, sizeof *run);
    assert_non_null(run);
    size_t head = (sizeof(fx_shared) + 63) & ~(size_t)63;
    run->map_len = head + scn_size;
    void *m = mmap(NULL, run->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    memset(m, 0, run->map_len);
    run->b = b;
    run->scenario = scenario;
    run->uri = uri;
    run->nworkers = nworkers;
    run->victim = victim;
    run->sh = m;
    run->scn = (char *)m + head;
    run->t0 = coord__now_ms();
    run->victim_takeover_ms = -1;
    for (int i = 0; i < FX_MAX_WORKERS; i++)
        reaped_pid[i] = 0;
    current = run;
    return run;
}

void fx_launch(fx_run *run, fx_body body) {
    fflush(NULL); /* nothing buffered gets written twice */
    test_pid = getpid();
    for (int i = 0; i < run->nworkers; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) worker_main(run, i, body);
        run->sh->w[i].pid = pid;
    }
}

/* Fail the test, after letting the scenario log what the servers hold. */
static _Noreturn void die(fx_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void die(fx_run *run, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (run->diagnose) run->diagnose(run);
    fail_msg("%s %s: %s", run->b->scheme, run->scenario, msg);
    abort(); /* fail_msg does not return */
}

/* Fail at once when a worker already exited (it never does before fx_finish). */
static void check_workers(fx_run *run) {
    for (int i = 0; i < run->nworkers; i++) {
        int st;
        if (reaped_pid[i] || waitpid(run->sh->w[i].pid, &st, WNOHANG) <= 0) continue;
        reaped_pid[i] = run->sh->w[i].pid;
        die(run, "worker %d exited early (status %d): %s", i, st, run->sh->w[i].failure);
    }
}

static long total_ops(const fx_run *run) {
    long n = 0;
    for (int i = 0; i < run->nworkers; i++)
        n += atomic_load(&run->sh->w[i].ops);
    return n;
}

void fx_await_ops(fx_run *run, long n) {
    long target = total_ops(run) + n;
    int64_t end = coord__now_ms() + FX_WAIT_MS;
    while (total_ops(run) < target) {
        check_workers(run);
        if (coord__now_ms() >= end)
            die(run, "%ld operations in %d ms, %ld expected", total_ops(run) - (target - n),
                FX_WAIT_MS, n);
        fx_nap(10);
    }
}

static int event(fx_run *run, const char *name, int member) {
    int i = atomic_load(&run->sh->nevents);
    assert_true(i < FX_MAX_EVENTS);
    fx_event *e = &run->sh->ev[i];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->at_ms = coord__now_ms();
    atomic_store(&run->sh->nevents, i + 1); /* publishes the fields above to fx_ok */
    print_message("  %s %s +%.1fs %s", run->b->scheme, run->scenario, secs(run), name);
    if (member) print_message(" (member %d)", member);
    print_message("\n");
    return i;
}

static void await_recovery(fx_run *run, int ev) {
    int64_t end = coord__now_ms() + FX_WAIT_MS;
    while (!atomic_load(&run->sh->ev[ev].first_ok_ms)) {
        check_workers(run);
        if (coord__now_ms() >= end)
            die(run, "no operation succeeded within %d ms of %s", FX_WAIT_MS, run->sh->ev[ev].name);
        fx_nap(10);
    }
}

static void servers(const char *verb, const fx_run *run, int member) {
    char num[4];
    snprintf(num, sizeof num, "%d", member);
    coord_test_servers(verb, run->b->servers_name, num);
}

void fx_kill_leader(fx_run *run) {
    int l = coord_test_leader(run->b);
    run->killed = l; /* for fx_teardown: set first, restarting a live member is harmless */
    servers("kill", run, l);
    int ev = event(run, "leader-kill", l);
    await_recovery(run, ev);
    fx_nap(FX_FAULT_HOLD_MS); /* the scenario: work on without the old leader for a while */
    servers("restart", run, l);
    run->killed = 0;
    /* The next fault starts once the workload recovered, so each one is measured alone. */
    await_recovery(run, event(run, "leader-back", l));
}

void fx_pause_follower(fx_run *run) {
    int l = coord_test_leader(run->b), f = l == 1 ? 2 : 1;
    run->paused = f;
    servers("pause", run, f);
    event(run, "follower-stop", f);
    fx_nap(FX_FOLLOWER_PAUSE_MS); /* the scenario: the workload meets a silent member */
    servers("resume", run, f);
    run->paused = 0;
    await_recovery(run, event(run, "follower-cont", f));
}

void fx_pause_victim(fx_run *run, bool park, bool (*ready)(fx_run *run),
                     bool (*taken_over)(fx_run *run)) {
    fx_shared *sh = run->sh;
    fx_worker *v = &sh->w[run->victim];
    /* A session lost to an earlier fault must be back, and what the old one held gone from
     * the servers (which can take a TTL), or this pause would prove nothing. */
    int64_t end = coord__now_ms() + FX_WAIT_MS + FX_VICTIM_PAUSE_MS;
    while ((atomic_load(&v->state) != 0 && atomic_load(&v->state) != COORD_SESSION_CONNECTED) ||
           (atomic_load(&v->lost) &&
            coord__now_ms() - atomic_load(&v->lost_ms) < FX_VICTIM_PAUSE_MS) ||
           (ready && !ready(run))) {
        check_workers(run);
        if (coord__now_ms() >= end)
            die(run, "the victim was not connected and working within %d ms", FX_WAIT_MS);
        fx_nap(10);
    }
    if (park) {
        atomic_store(&sh->park_req, 1);
        while (!atomic_load(&sh->parked)) {
            check_workers(run);
            if (coord__now_ms() >= end)
                die(run, "the victim did not get ready to be paused within %d ms", FX_WAIT_MS);
            fx_nap(5);
        }
    }
    int lost0 = atomic_load(&v->lost), st;
    atomic_store(&v->stopped, 1);
    assert_int_equal(kill(v->pid, SIGSTOP), 0);
    assert_int_equal(waitpid(v->pid, &st, WUNTRACED), v->pid); /* really stopped now */
    assert_true(WIFSTOPPED(st));
    run->victim_stop_ms = run->sh->ev[event(run, "client-stop", 0)].at_ms;
    /* Past the TTL, and until the others show the session is gone. */
    end = coord__now_ms() + FX_VICTIM_PAUSE_MS + FX_WAIT_MS;
    while (1) {
        int64_t now = coord__now_ms();
        bool over = taken_over ? taken_over(run) : true;
        if (taken_over && over && run->victim_takeover_ms < 0)
            run->victim_takeover_ms = now - run->victim_stop_ms;
        if (over && now - run->victim_stop_ms >= FX_VICTIM_PAUSE_MS) break;
        check_workers(run);
        if (now >= end)
            die(run, "%d ms after the victim was stopped, the others did not take over",
                FX_VICTIM_PAUSE_MS + FX_WAIT_MS);
        fx_nap(10);
    }
    run->victim_pause_ms = coord__now_ms() - run->victim_stop_ms;
    atomic_store(&sh->resume_go, 1);
    assert_int_equal(kill(v->pid, SIGCONT), 0);
    atomic_store(&v->stopped, 0);
    run->victim_cont_ms = run->sh->ev[event(run, "client-cont", 0)].at_ms;
    /* The resumed client must learn its session expired. */
    end = coord__now_ms() + FX_WAIT_MS;
    while (atomic_load(&v->lost) == lost0) {
        check_workers(run);
        if (coord__now_ms() >= end)
            die(run, "the resumed victim got no LOST within %d ms", FX_WAIT_MS);
        fx_nap(10);
    }
    run->victim_seen_ms = atomic_load(&v->lost_ms) - run->victim_cont_ms;
}

void fx_await_recovered(fx_run *run) {
    fx_shared *sh = run->sh;
    int n = atomic_load(&sh->nevents);
    for (int i = 0; i < n; i++)
        await_recovery(run, i);
    int64_t end = coord__now_ms() + FX_WAIT_MS;
    while (run->victim_cont_ms && !run->victim_no_ops &&
           atomic_load(&sh->w[run->victim].last_ok_ms) <= run->victim_cont_ms) {
        check_workers(run);
        if (coord__now_ms() >= end)
            die(run, "the resumed victim did not work again within %d ms", FX_WAIT_MS);
        fx_nap(10);
    }
}

void fx_finish(fx_run *run) {
    fx_shared *sh = run->sh;
    fx_await_recovered(run);
    atomic_store(&sh->stop, 1);
    int64_t end = coord__now_ms() + FX_WAIT_MS;
    for (int i = 0; i < run->nworkers; i++) {
        int st = 0;
        pid_t r = 0;
        while (!reaped_pid[i] && (r = waitpid(sh->w[i].pid, &st, WNOHANG)) == 0) {
            if (coord__now_ms() >= end) break;
            fx_nap(10);
        }
        if (r <= 0) die(run, "worker %d did not stop within %d ms", i, FX_WAIT_MS);
        reaped_pid[i] = sh->w[i].pid;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            die(run, "worker %d failed (status %d): %s", i, st, sh->w[i].failure);
    }
}

void fx_report(fx_run *run, long violations, const char *extra) {
    fx_shared *sh = run->sh;
    long ops = 0, errors = 0, codes[FX_NCODES] = {0};
    int lost_others = 0;
    for (int i = 0; i < run->nworkers; i++) {
        ops += atomic_load(&sh->w[i].ops);
        errors += atomic_load(&sh->w[i].errors);
        for (int k = 0; k < FX_NCODES; k++)
            codes[k] += atomic_load(&sh->w[i].codes[k]);
        if (i != run->victim) lost_others += atomic_load(&sh->w[i].lost);
    }
    char buf[1024];
    size_t at = 0;
#define ADD(...)                                                                                   \
    at += (size_t)snprintf(buf + at, at < sizeof buf ? sizeof buf - at : 0, __VA_ARGS__)
    ADD("REPORT %s %s: ops %ld, errors %ld", run->b->scheme, run->scenario, ops, errors);
    const char *sep = " (";
    for (int k = 1; k < FX_NCODES; k++)
        if (codes[k]) {
            ADD("%s%s %ld", sep, coord_err_name(-k) + 6, codes[k]); /* without "COORD_" */
            sep = ", ";
        }
    if (errors) ADD(")");
    ADD(", violations %ld, recovery ms:", violations);
    int n = atomic_load(&sh->nevents);
    for (int i = 0; i < n; i++)
        ADD(" %s %lld", sh->ev[i].name,
            (long long)(atomic_load(&sh->ev[i].first_ok_ms) - sh->ev[i].at_ms));
    if (run->victim_cont_ms && run->victim_takeover_ms >= 0)
        ADD("; victim: stopped %lld ms, others took over after %lld ms, LOST %lld ms after resume",
            (long long)run->victim_pause_ms, (long long)run->victim_takeover_ms,
            (long long)run->victim_seen_ms);
    else if (run->victim_cont_ms)
        ADD("; victim: stopped %lld ms, LOST %lld ms after resume", (long long)run->victim_pause_ms,
            (long long)run->victim_seen_ms);
    ADD("; other sessions lost %d; %.1f s", lost_others, secs(run));
    if (extra && *extra) ADD("; %s", extra);
#undef ADD
    print_message("%s\n", buf);
    for (int k = 1; k < FX_NCODES; k++) /* one example of each error, for the log */
        for (int i = 0; i < run->nworkers; i++)
            if (sh->w[i].detail[k][0]) {
                print_message("    %s e.g. worker %d: %s\n", coord_err_name(-k), i,
                              sh->w[i].detail[k]);
                break;
            }
    munmap(run->sh, run->map_len);
    free(run->uri);
    free(run);
    current = NULL;
}

int fx_teardown(void **state) {
    (void)state;
    fx_run *run = current;
    if (!run) return 0;
    current = NULL;
    for (int i = 0; i < run->nworkers; i++) {
        pid_t pid = run->sh->w[i].pid;
        if (pid <= 0 || reaped_pid[i]) continue;
        kill(pid, SIGKILL); /* also ends a stopped one */
        waitpid(pid, NULL, 0);
    }
    /* Leave the cluster whole for the next test; best effort, the failure is reported. */
    const char *script = getenv("COORD_SERVERS");
    char cmd[1024];
    if (script && run->paused) {
        snprintf(cmd, sizeof cmd, "'%s' resume %s %d >&2", script, run->b->servers_name,
                 run->paused);
        if (system(cmd) != 0) print_error("'%s' failed\n", cmd);
    }
    if (script && run->killed) {
        snprintf(cmd, sizeof cmd, "'%s' restart %s %d >&2", script, run->b->servers_name,
                 run->killed);
        if (system(cmd) != 0) print_error("'%s' failed\n", cmd);
    }
    munmap(run->sh, run->map_len);
    free(run->uri);
    free(run);
    return 0;
}

void fx_dump(fx_run *run, const char *what) {
    coord_client *c;
    if (coord_client_open(&c, run->uri, NULL)) return;
    coord_conn *k = coord__client_conn(c);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", coord_client_prefix(c), what);
    coord_kv *kv = NULL;
    size_t n = 0;
    int rc = k->backend->list(k, dir, 0, &kv, &n, NULL, 5000);
    print_error("%s (%s): %zu entries\n", dir, coord_err_name(rc), n);
    for (size_t i = 0; i < n; i++)
        print_error("  %s order %lld token %llu\n", kv[i].key, (long long)kv[i].order,
                    (unsigned long long)kv[i].token);
    coord_kv_array_free(kv, n);
    for (int i = 0; i < run->nworkers; i++) {
        print_error("  worker %d: ops %ld, errors %ld, %s\n", i, atomic_load(&run->sh->w[i].ops),
                    atomic_load(&run->sh->w[i].errors), run->sh->w[i].failure);
        for (int e = 1; e < FX_NCODES; e++)
            if (atomic_load(&run->sh->w[i].codes[e]))
                print_error("    %s %ld, the last: %s\n", coord_err_name(-e),
                            atomic_load(&run->sh->w[i].codes[e]), run->sh->w[i].detail[e]);
    }
    coord_client_close(c);
}
