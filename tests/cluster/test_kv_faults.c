/*
 * Key-value space under faults (3-member clusters, both backends, one body each): the same
 * schedule as the other fault workloads (leader killed and restarted, a follower stopped and
 * resumed, one worker stopped past its session TTL) over two workloads.
 *
 * kv_guarded: contender workers take one lock and, holding it, read a shared sequence key and
 * commit a transaction guarded by the lock (coord_txn_guard) that puts the sequence's next value
 * and a data key "<worker>:<seq>". There is no version check in the transaction: only the guard
 * keeps two holders from writing the same sequence number. Shared memory records, for every
 * commit that returned 0, the sequence number it wrote and the lock token the worker held. The
 * checks: no sequence number was accepted twice, and the tokens of accepted commits, in the
 * order of the sequence (the order in which the servers applied them), never decrease: a holder
 * that lost its lock to a newer token never commits after it. The stopped worker holds the lock
 * and a transaction built with it; once resumed it commits it (no check, only the guard). The
 * connection may drop under that commit (an unknown outcome, which the issue allows): it then
 * commits again, as a program would, until it is told. No answer may be 0, the last must be a
 * refusal (COORD_ECONFLICT, COORD_ENOTHELD or COORD_ESESSION), and a key only that transaction
 * writes must be absent at the end: never applied. Refused commits of the other workers must
 * not have applied either (a sequence number only they wrote is not on the servers).
 *
 * kv_watch: a writer worker puts a counter "<n>:<ms>" into one key continuously; two watcher
 * workers (one of them the stopped worker, whose session is replaced) watch it. Each report's
 * version must exceed the one before, except a report of the same value again (after a reset,
 * a replaced session or a compaction); values never go back, except to a write whose outcome the
 * writer was not told (sent to a member that was then paused: the member proposes it when it
 * resumes, after later writes made through another member). At the end the writer puts a final
 * value, and each watcher's last report must be that value within a bounded wait.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"

#define ACQUIRE_MS 5000
#define PACE_MS 10

/* ---------- guarded writes ---------- */

#define G_WORKERS 3
#define G_VICTIM 2
#define MAX_SEQ 65536
#define SEQ_KEY "faults/seq"
#define DATA_KEY "faults/data"
#define STALE_KEY "faults/stale" /* written by the stopped worker's transaction only */

typedef struct commit {
    _Atomic int accepted;         /* commits of this sequence number that returned 0 */
    _Atomic int unknown, refused; /* that returned an unknown outcome, a refusal */
    _Atomic int worker;
    _Atomic uint64_t token;
} commit;

typedef struct g_checker {
    commit seq[MAX_SEQ];
    _Atomic long accepted, unknown, refused, overflow;
    _Atomic uint64_t victim_token;
    _Atomic long victim_seq;     /* the sequence value of its stale transaction */
    _Atomic int victim_rc;       /* its commit after the resume, once known (1: not yet) */
    _Atomic int victim_first_rc; /* its first attempt's answer */
    _Atomic int victim_rel_rc;   /* its release after that */
    _Atomic uint64_t max_token;
    /* Commits of the other workers the guard refused: their story, for the log. */
    _Atomic int nfenced;
    char fenced[4][320];
} g_checker;

static void g_diagnose(fx_run *run) {
    fx_dump(run, "lock/faults");
}

/* The sequence's current value (0 when absent). */
static int read_seq(coord_client *c, long *seq) {
    void *v = NULL;
    size_t len = 0;
    int rc = coord_kv_get(c, SEQ_KEY, &v, &len, NULL);
    if (rc == COORD_ENOTFOUND) {
        *seq = 0;
        return 0;
    }
    if (rc) return rc;
    *seq = strtol(v, NULL, 10);
    free(v);
    return 0;
}

/* A transaction guarded by `l` that puts `seq` and the data key (no check). */
static int build(coord_txn **t, coord_client *c, coord_lock *l, int id, long seq) {
    char s[32], d[48];
    int sl = snprintf(s, sizeof s, "%ld", seq), dl = snprintf(d, sizeof d, "%d:%ld", id, seq);
    int rc = coord_txn_new(t, c);
    if (rc) return rc;
    if ((rc = coord_txn_guard(*t, l)) || (rc = coord_txn_put(*t, SEQ_KEY, s, (size_t)sl)) ||
        (rc = coord_txn_put(*t, DATA_KEY, d, (size_t)dl))) {
        coord_txn_free(*t);
        *t = NULL;
    }
    return rc;
}

static void g_record(fx_run *run, int id, long seq, uint64_t token, int rc) {
    g_checker *k = run->scn;
    if (rc == 0) {
        atomic_fetch_add(&k->accepted, 1);
        if (seq <= 0 || seq >= MAX_SEQ) {
            atomic_fetch_add(&k->overflow, 1);
            return;
        }
        commit *cm = &k->seq[seq];
        atomic_store(&cm->worker, id);
        atomic_store(&cm->token, token);
        atomic_fetch_add(&cm->accepted, 1);
        uint64_t m = atomic_load(&k->max_token);
        while (token > m && !atomic_compare_exchange_weak(&k->max_token, &m, token))
            ;
    } else if (rc == COORD_ETIMEDOUT || rc == COORD_EUNAVAILABLE) {
        atomic_fetch_add(&k->unknown, 1);
        if (seq > 0 && seq < MAX_SEQ) atomic_fetch_add(&k->seq[seq].unknown, 1);
    } else {
        atomic_fetch_add(&k->refused, 1);
        if (seq > 0 && seq < MAX_SEQ) atomic_fetch_add(&k->seq[seq].refused, 1);
    }
}

static bool g_taken_over(fx_run *run) {
    g_checker *k = run->scn;
    return atomic_load(&k->max_token) > atomic_load(&k->victim_token);
}

/* The victim takes the lock, reads the sequence, builds its transaction and is stopped; once
 * resumed, it commits as a paused process would. */
static void g_victim(fx_run *run, int id, coord_client *c, coord_lock *l) {
    g_checker *k = run->scn;
    uint64_t token = 0;
    long seq = 0;
    coord_txn *t = NULL;
    int rc = coord_lock_acquire(l, ACQUIRE_MS);
    if (rc) {
        fx_err(run, id, rc);
        fx_nap(50);
        return;
    }
    if ((rc = coord_lock_token(l, &token)) || (rc = read_seq(c, &seq)) ||
        (rc = build(&t, c, l, id, seq + 1))) {
        fx_err(run, id, rc);
        coord_lock_release(l);
        return;
    }
    /* A key only this transaction writes: present at the end if it ever applied. */
    if ((rc = coord_txn_put(t, STALE_KEY, "stale", 5))) {
        fx_err(run, id, rc);
        coord_txn_free(t);
        coord_lock_release(l);
        return;
    }
    atomic_store(&k->victim_token, token);
    atomic_store(&k->victim_seq, seq + 1);
    fx_parked(run);
    rc = coord_txn_commit(t); /* at once: before the client may have noticed anything */
    atomic_store(&k->victim_first_rc, rc);
    /* The connection may drop under it (an unknown outcome): as a program would, it commits
     * again until it learns, and every answer must be a refusal. */
    for (int i = 0; i < 20 && (rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT); i++) {
        g_record(run, id, seq + 1, token, rc);
        fx_err(run, id, rc);
        fx_nap(100);
        rc = coord_txn_commit(t);
    }
    coord_txn_free(t);
    atomic_store(&k->victim_rc, rc);
    g_record(run, id, seq + 1, token, rc);
    if (rc) fx_err(run, id, rc);
    atomic_store(&k->victim_rel_rc, coord_lock_release(l));
}

static int guarded_worker(fx_run *run, int id, coord_client *c) {
    coord_lock *l;
    int rc = coord_lock_new(&l, c, "faults");
    if (rc) return fx_fail(run, id, "coord_lock_new: %s", coord_err_name(rc));
    while (!fx_stopping(run)) {
        if (id == G_VICTIM && fx_park_requested(run)) {
            g_victim(run, id, c, l);
            continue;
        }
        int64_t t0 = coord__now_ms();
        uint64_t token = 0;
        long seq = 0;
        coord_txn *t = NULL;
        uint64_t session = coord_client_session(c);
        rc = coord_lock_acquire(l, ACQUIRE_MS);
        if (rc) {
            fx_err(run, id, rc);
            fx_nap(50);
            continue;
        }
        if ((rc = coord_lock_token(l, &token)) || (rc = read_seq(c, &seq)) ||
            (rc = build(&t, c, l, id, seq + 1)) || (rc = coord_txn_commit(t)) != 0) {
            if (t) g_record(run, id, seq + 1, token, rc);
            fx_err(run, id, rc);
            g_checker *k = run->scn;
            int f = rc == COORD_ECONFLICT ? atomic_fetch_add(&k->nfenced, 1) : 4;
            if (f < 4)
                snprintf(k->fenced[f], sizeof k->fenced[f],
                         "worker %d at +%.1fs, token %llu, session %llu -> %llu, held %d: %s", id,
                         (double)(coord__now_ms() - run->t0) / 1000.0, (unsigned long long)token,
                         (unsigned long long)session, (unsigned long long)coord_client_session(c),
                         coord_lock_held(l), coord_last_error());
        } else {
            g_record(run, id, seq + 1, token, 0);
            fx_ok(run, id, t0);
        }
        coord_txn_free(t);
        rc = coord_lock_release(l);
        if (rc) fx_err(run, id, rc);
        atomic_store(&run->sh->w[id].session, coord_client_session(c));
        fx_nap(PACE_MS);
    }
    coord_lock_free(l);
    return 0;
}

static void kv_guarded(void **state) {
    fx_run *run = fx_prepare(state, "kv-guarded", G_WORKERS, G_VICTIM, sizeof(g_checker));
    g_checker *k = run->scn;
    run->diagnose = g_diagnose;
    atomic_store(&k->victim_rc, 1);
    atomic_store(&k->victim_rel_rc, 1);

    fx_launch(run, guarded_worker);
    fx_await_ops(run, 20);
    fx_kill_leader(run);
    fx_pause_follower(run);
    fx_pause_victim(run, true, NULL, g_taken_over);
    fx_finish(run);

    /* The servers' sequence now: every accepted commit is at or below it. */
    coord_client *c;
    coord_options o = COORD_OPTIONS_INIT;
    o.timeout_ms = FX_OP_TIMEOUT_MS;
    assert_int_equal(coord_client_open(&c, run->uri, &o), 0);
    long final_seq = -1;
    int rc = read_seq(c, &final_seq);
    assert_int_equal(rc, 0);
    void *v = NULL;
    size_t len = 0;
    int stale_rc = coord_kv_get(c, STALE_KEY, &v, &len, NULL);
    free(v);
    coord_client_close(c);

    long dup = 0, backwards = 0, gaps = 0, top = 0;
    uint64_t prev = 0;
    int prev_worker = -1;
    long prev_seq = 0;
    long refused_applied = 0; /* a sequence number only refused commits wrote reached the servers */
    for (long s = 1; s < MAX_SEQ; s++) {
        commit *cm = &k->seq[s];
        int n = atomic_load(&cm->accepted);
        if (!n && s <= final_seq && atomic_load(&cm->refused) && !atomic_load(&cm->unknown)) {
            print_error("sequence %ld is on the servers, written only by refused commits\n", s);
            refused_applied++;
        }
        if (!n) continue;
        if (s > top) top = s;
        if (s != prev_seq + 1) gaps++; /* commits of unknown outcome that applied */
        if (n > 1) {
            print_error("sequence %ld accepted %d times\n", s, n);
            dup++;
        }
        uint64_t tok = atomic_load(&cm->token);
        if (tok < prev) {
            print_error("sequence %ld accepted from worker %d with token %llu after worker "
                        "%d's token %llu (sequence %ld)\n",
                        s, atomic_load(&cm->worker), (unsigned long long)tok, prev_worker,
                        (unsigned long long)prev, prev_seq);
            backwards++;
        }
        prev = tok;
        prev_worker = atomic_load(&cm->worker);
        prev_seq = s;
    }
    int victim_rc = atomic_load(&k->victim_rc), rel_rc = atomic_load(&k->victim_rel_rc);
    long overflow = atomic_load(&k->overflow);
    int first_rc = atomic_load(&k->victim_first_rc);
    long violations = dup + backwards + overflow + refused_applied + (victim_rc == 0) +
                      (first_rc == 0) + (stale_rc != COORD_ENOTFOUND) + (final_seq < top);
    char extra[512];
    snprintf(extra, sizeof extra,
             "commits accepted %ld, of unknown outcome %ld, refused %ld; sequence on the "
             "servers %ld, highest accepted %ld, gaps %ld, accepted twice %ld, tokens going back "
             "%ld, refused and applied %ld; victim's stale commit (sequence %ld, token %llu) %s "
             "(first answer %s), its key %s, its release %s",
             atomic_load(&k->accepted), atomic_load(&k->unknown), atomic_load(&k->refused),
             final_seq, top, gaps, dup, backwards, refused_applied, atomic_load(&k->victim_seq),
             (unsigned long long)atomic_load(&k->victim_token), coord_err_name(victim_rc),
             coord_err_name(first_rc), stale_rc == COORD_ENOTFOUND ? "absent" : "PRESENT",
             coord_err_name(rel_rc));
    for (int i = 0; i < atomic_load(&k->nfenced) && i < 4; i++)
        print_message("    guard refused a commit of %s\n", k->fenced[i]);
    fx_report(run, violations, extra);
    assert_int_equal(violations, 0);
    assert_true(top > 0);
    assert_true(victim_rc == COORD_ECONFLICT || victim_rc == COORD_ENOTHELD ||
                victim_rc == COORD_ESESSION);
}

/* ---------- watches under failover ---------- */

#define W_WORKERS 3
#define W_WRITER 0
#define W_VICTIM 2 /* a watcher: its session is replaced, its watch must carry on */
#define WATCH_KEY "faults/watched"
#define WRITE_PACE_MS 20

#define W_UNKNOWN_MAX 256

typedef struct watcher {
    _Atomic long reports, rereports, backwards, skipped, late;
    _Atomic long last_n; /* -1: absent */
    _Atomic int64_t last_version;
} watcher;

typedef struct w_checker {
    watcher w[W_WORKERS];
    _Atomic long writes, unknown;
    _Atomic long unknown_n[W_UNKNOWN_MAX]; /* the counters of the first writes not answered */
    _Atomic int stop_writer;
    _Atomic long final_n; /* 0: not written yet */
    _Atomic int64_t final_version;
} w_checker;

typedef struct w_ctx {
    fx_run *run;
    int id;
} w_ctx;

static void w_diagnose(fx_run *run) {
    w_checker *k = run->scn;
    for (int i = 0; i < W_WORKERS; i++)
        if (i != W_WRITER)
            print_error("watcher %d: %ld reports, last %ld (version %lld)\n", i,
                        atomic_load(&k->w[i].reports), atomic_load(&k->w[i].last_n),
                        (long long)atomic_load(&k->w[i].last_version));
    print_error("final %ld (version %lld)\n", atomic_load(&k->final_n),
                (long long)atomic_load(&k->final_version));
    fx_dump(run, "kv/faults");
}

/* Whether the write of counter `n` was left without an answer (so may apply late). */
static bool unanswered(w_checker *k, long n) {
    long u = atomic_load(&k->unknown);
    for (long i = 0; i < u && i < W_UNKNOWN_MAX; i++)
        if (atomic_load(&k->unknown_n[i]) == n) return true;
    return false;
}

/* On the watch's thread. */
static void on_change(const char *key, const void *value, size_t len, int64_t version,
                      void *payload) {
    (void)key;
    w_ctx *x = payload;
    w_checker *k = x->run->scn;
    watcher *w = &k->w[x->id];
    long n = -1;
    long long at = 0;
    if (value) {
        char buf[64];
        size_t l = len < sizeof buf - 1 ? len : sizeof buf - 1;
        memcpy(buf, value, l);
        buf[l] = '\0';
        if (sscanf(buf, "%ld:%lld", &n, &at) != 2) n = -2;
    }
    long prev_n = atomic_load(&w->last_n);
    int64_t prev_v = atomic_load(&w->last_version);
    long reports = atomic_fetch_add(&w->reports, 1);
    if (reports > 0) {
        if (version == prev_v && n == prev_n) {
            atomic_fetch_add(&w->rereports, 1);
        } else if (version > prev_v && n >= 0 && n < prev_n && unanswered(k, n)) {
            atomic_fetch_add(&w->late, 1); /* applied after later writes: see the top */
            n = prev_n;
        } else if (version <= prev_v || n < prev_n || n == -2) {
            fprintf(stderr, "watcher %d: %ld (version %lld) after %ld (version %lld)\n", x->id, n,
                    (long long)version, prev_n, (long long)prev_v);
            atomic_fetch_add(&w->backwards, 1);
        } else if (prev_n >= 0 && n > prev_n + 1) {
            atomic_fetch_add(&w->skipped, n - prev_n - 1);
        }
    }
    atomic_store(&w->last_n, n);
    atomic_store(&w->last_version, version);
    /* A report of a write that started after a fault is that fault's recovery. */
    if (n > 0) fx_ok(x->run, x->id, (int64_t)at);
}

static int put_counter(coord_client *c, long n, int64_t *version) {
    char v[48];
    int len = snprintf(v, sizeof v, "%ld:%lld", n, (long long)coord__now_ms());
    return coord_kv_put(c, WATCH_KEY, v, (size_t)len, -1, version);
}

static int writer(fx_run *run, int id, coord_client *c) {
    w_checker *k = run->scn;
    long n = 0;
    while (!fx_stopping(run) && !atomic_load(&k->stop_writer)) {
        int64_t t0 = coord__now_ms();
        int rc = put_counter(c, ++n, NULL);
        if (rc == 0) {
            atomic_fetch_add(&k->writes, 1);
            fx_ok(run, id, t0);
        } else {
            long u = atomic_load(&k->unknown);
            if (u < W_UNKNOWN_MAX) atomic_store(&k->unknown_n[u], n);
            atomic_fetch_add(&k->unknown, 1);
            fx_err(run, id, rc);
            fx_nap(50);
        }
        fx_nap(WRITE_PACE_MS);
    }
    /* The final value, higher than any before, read back to be sure it is the last one. */
    int64_t end = coord__now_ms() + FX_WAIT_MS;
    long final = n + 1;
    while (coord__now_ms() < end) {
        int64_t version = 0, got = -1;
        int rc = put_counter(c, final, &version);
        void *v = NULL;
        size_t len;
        if (rc == 0) rc = coord_kv_get(c, WATCH_KEY, &v, &len, &got);
        long back = v ? strtol(v, NULL, 10) : -1;
        free(v);
        if (rc == 0 && got == version && back == final) {
            atomic_store(&k->final_version, version);
            atomic_store(&k->final_n, final);
            return 0;
        }
        if (rc) fx_err(run, id, rc);
        final++;
        fx_nap(100);
    }
    return fx_fail(run, id, "the final value could not be written within %d ms", FX_WAIT_MS);
}

static int watch_worker(fx_run *run, int id, coord_client *c) {
    if (id == W_WRITER) return writer(run, id, c);
    w_ctx x = {run, id};
    coord_kv_watch *w = NULL;
    int rc = coord_kv_watch_new(&w, c, WATCH_KEY, on_change, &x);
    for (int i = 0; i < 5 && rc; i++) {
        fx_nap(500);
        rc = coord_kv_watch_new(&w, c, WATCH_KEY, on_change, &x);
    }
    if (rc) return fx_fail(run, id, "coord_kv_watch_new: %s", coord_err_name(rc));
    while (!fx_stopping(run)) {
        atomic_store(&run->sh->w[id].session, coord_client_session(c));
        fx_nap(20);
    }
    coord_kv_watch_free(w);
    return 0;
}

static void kv_watch(void **state) {
    fx_run *run = fx_prepare(state, "kv-watch", W_WORKERS, W_VICTIM, sizeof(w_checker));
    w_checker *k = run->scn;
    run->diagnose = w_diagnose;
    for (int i = 0; i < W_WORKERS; i++)
        atomic_store(&k->w[i].last_n, -1);

    fx_launch(run, watch_worker);
    fx_await_ops(run, 40);
    fx_kill_leader(run);
    fx_pause_follower(run);
    fx_pause_victim(run, false, NULL, NULL);
    fx_await_recovered(run);

    /* The final value, then each watcher's last report must be it. */
    atomic_store(&k->stop_writer, 1);
    int64_t t_final = coord__now_ms(), end = t_final + FX_WAIT_MS;
    while (!atomic_load(&k->final_n)) {
        if (coord__now_ms() >= end) {
            w_diagnose(run);
            fail_msg("%s: the writer did not write its final value", run->b->scheme);
        }
        fx_nap(10);
    }
    long final = atomic_load(&k->final_n);
    int64_t final_version = atomic_load(&k->final_version);
    int64_t delivered_ms[W_WORKERS] = {0};
    for (int i = 0; i < W_WORKERS; i++) {
        if (i == W_WRITER) continue;
        while (atomic_load(&k->w[i].last_n) != final ||
               atomic_load(&k->w[i].last_version) != final_version) {
            if (coord__now_ms() >= end) {
                w_diagnose(run);
                fail_msg("%s: watcher %d's last report is %ld (version %lld), not the final "
                         "%ld (version %lld), %d ms after it was written",
                         run->b->scheme, i, atomic_load(&k->w[i].last_n),
                         (long long)atomic_load(&k->w[i].last_version), final,
                         (long long)final_version, FX_WAIT_MS);
            }
            fx_nap(5);
        }
        delivered_ms[i] = coord__now_ms() - t_final;
    }
    fx_finish(run);

    long violations = 0, reports = 0, rereports = 0, skipped = 0, late = 0;
    for (int i = 0; i < W_WORKERS; i++) {
        if (i == W_WRITER) continue;
        violations += atomic_load(&k->w[i].backwards);
        reports += atomic_load(&k->w[i].reports);
        rereports += atomic_load(&k->w[i].rereports);
        skipped += atomic_load(&k->w[i].skipped);
        late += atomic_load(&k->w[i].late);
        /* Nothing after the final value. */
        if (atomic_load(&k->w[i].last_n) != final) violations++;
    }
    char extra[400];
    snprintf(extra, sizeof extra,
             "writes %ld ok + %ld of unknown outcome, final value %ld (version %lld) seen by "
             "watchers %lld / %lld ms after it was written; reports %ld, same value again %ld, "
             "values skipped (coalesced) %ld, unanswered writes seen applied late %ld",
             atomic_load(&k->writes), atomic_load(&k->unknown), final, (long long)final_version,
             (long long)delivered_ms[1], (long long)delivered_ms[2], reports, rereports, skipped,
             late);
    fx_report(run, violations, extra);
    assert_int_equal(violations, 0);
    assert_true(reports > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {FX_TESTS(kv_guarded), FX_TESTS(kv_watch)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
