/*
 * Leader election under faults (3-member clusters, both backends, one body). Worker processes,
 * each with its own client and coord_election handle on the election "faults", campaign; the
 * leader writes a few times to a fenced resource in shared memory (the checker), stamping each
 * write with its term, then resigns and campaigns again. The fault suite's schedule runs
 * (faults.h): the cluster leader is killed and restarted, a follower is stopped and resumed,
 * and one worker, the victim, is stopped while it leads, past its session TTL.
 *
 * A worker writes only while coord_election_is_leader() says it leads. The checker is the
 * fence: it refuses a write whose term is older than the newest one written. It also keeps the
 * terms of successive leaderships, which must strictly increase, and judges overlaps by them:
 * a write under a term older than a leadership that began already, accepted or refused, means
 * two workers reported is_leader at once, which is only excused when the older one's session
 * has expired since (the paused victim). The victim, once resumed, writes with the term it had,
 * as a paused process would: the checker must refuse it, and is_leader must turn false.
 * Leadership must come back after each fault within the session TTL + 2 s.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"

#define WORKERS 4
#define VICTIM 3
#define CAMPAIGN_MS 5000
#define LEAD_WRITES 5 /* fenced writes per leadership */
#define PACE_MS 10    /* between a worker's leaderships: leaves the 2 cores to the servers */
#define SLACK_MS 2000 /* recovery bound: the session TTL + this */
#define MAX_NOTED 64

/* A leadership or write judged at the end: an overlap unless its session expired since. */
typedef struct noted {
    int id;
    uint64_t session, term;
} noted;

typedef struct checker {
    /* Process-shared and robust. Taken by workers' main threads only, never while the victim
     * may be stopped (it is stopped in fx_parked), so nobody waits for a stopped process. */
    pthread_mutex_t mu;
    int inside; /* worker leading now (between its first write and resigning), -1: none */
    uint64_t inside_term, inside_session;
    uint64_t max_term; /* newest term a leadership began with */
    uint64_t fence;    /* newest term written: older ones are refused */
    int last;          /* worker of the latest leadership */
    long leaderships, backwards, continued;
    long writes, refused, stale_accepted;
    noted sup[MAX_NOTED]; /* leaders superseded while leading */
    int nsup;
    noted ref[MAX_NOTED]; /* writes refused by the fence */
    int nref;
    /* The victim's story. */
    _Atomic uint64_t victim_term;
    _Atomic int victim_refused, victim_accepted, victim_leader_at_resume, victim_resign_rc;
    _Atomic int64_t victim_learned_ms; /* resume -> is_leader false; -1: never */
} checker;

static void chk_lock(checker *k) {
    if (pthread_mutex_lock(&k->mu) == EOWNERDEAD) pthread_mutex_consistent(&k->mu);
}

static void note(noted *v, int *n, int id, uint64_t session, uint64_t term) {
    if (*n < MAX_NOTED) v[(*n)++] = (noted){id, session, term};
}

/* A leadership begins with `term` (`session`: the client's session when the campaign began). */
static void chk_lead(checker *k, int id, uint64_t term, uint64_t session) {
    chk_lock(k);
    k->leaderships++;
    if (term < k->max_term || (term == k->max_term && id != k->last)) {
        k->backwards++;
        fprintf(stderr, "worker %d leads with term %llu after worker %d's %llu\n", id,
                (unsigned long long)term, k->last, (unsigned long long)k->max_term);
    } else if (term == k->max_term) {
        k->continued++; /* nobody led in between: the same leadership, kept over a resign */
    }
    k->last = id;
    if (k->inside >= 0 && k->inside != id)
        note(k->sup, &k->nsup, k->inside, k->inside_session, k->inside_term);
    k->inside = id;
    k->inside_term = term;
    k->inside_session = session;
    if (term > k->max_term) k->max_term = term;
    pthread_mutex_unlock(&k->mu);
}

/* A write stamped with `term`: refused when a newer term was written. */
static bool chk_write(checker *k, int id, uint64_t term, uint64_t session) {
    chk_lock(k);
    k->writes++;
    bool ok = term >= k->fence;
    if (ok) {
        k->fence = term;
        if (term < k->max_term) k->stale_accepted++; /* a newer leadership had begun */
    } else {
        k->refused++;
        note(k->ref, &k->nref, id, session, term);
    }
    pthread_mutex_unlock(&k->mu);
    return ok;
}

static void chk_resign(checker *k, int id, uint64_t term) {
    chk_lock(k);
    if (k->inside == id && k->inside_term == term) k->inside = -1;
    pthread_mutex_unlock(&k->mu);
}

/* On a failed wait: the candidates the election holds now. */
static void list_candidates(fx_run *run) {
    fx_dump(run, "election/faults");
}

static bool victim_superseded(fx_run *run) {
    checker *k = run->scn;
    chk_lock(k);
    bool yes = k->max_term > atomic_load(&k->victim_term);
    pthread_mutex_unlock(&k->mu);
    return yes;
}

/* Campaign until leading; the term in *term. 0, or the error (counted): a campaign that won
 * but whose term cannot be had (the client is SUSPENDED: is_leader is false) leaves the
 * candidacy in place, for step_down. */
static int lead(fx_run *run, int id, coord_election *e, uint64_t *term) {
    char value[16];
    int len = snprintf(value, sizeof value, "w%d", id);
    int rc = coord_election_campaign(e, value, (size_t)len, CAMPAIGN_MS);
    if (!rc) rc = coord_election_term(e, term);
    if (rc) fx_err(run, id, rc);
    return rc;
}

/* Step down. A handle whose resign failed is replaced, so that the next campaign starts clean.
 * 0, or 1 after fx_fail. */
static int step_down(fx_run *run, int id, coord_client *c, coord_election **e) {
    int rc = coord_election_resign(*e);
    if (!rc || rc == COORD_ENOTHELD) return 0; /* ENOTHELD: the candidacy ended (LOST) */
    fx_err(run, id, rc);
    coord_election_free(*e);
    *e = NULL;
    rc = coord_election_new(e, c, "faults", NULL);
    return rc ? fx_fail(run, id, "coord_election_new: %s", coord_err_name(rc)) : 0;
}

/* The victim leads and is stopped leading; once resumed it writes with the term it had, as a
 * paused process would, and waits to learn it no longer leads. */
static void victim_lead(fx_run *run, int id, coord_client *c, coord_election *e) {
    checker *k = run->scn;
    uint64_t session = coord_client_session(c), term = 0;
    if (lead(run, id, e, &term)) {
        fx_nap(50);
        return; /* step_down, then asked again on the next turn */
    }
    chk_lead(k, id, term, session);
    if (chk_write(k, id, term, session)) fx_ok(run, id, coord__now_ms());
    atomic_store(&k->victim_term, term);
    fx_parked(run);
    int64_t resumed = coord__now_ms();
    atomic_store(&k->victim_leader_at_resume, coord_election_is_leader(e));
    if (chk_write(k, id, term, session))
        atomic_store(&k->victim_accepted, 1);
    else
        atomic_store(&k->victim_refused, 1);
    while (coord_election_is_leader(e) && coord__now_ms() - resumed < FX_WAIT_MS)
        fx_nap(1);
    atomic_store(&k->victim_learned_ms,
                 coord_election_is_leader(e) ? -1 : coord__now_ms() - resumed);
    chk_resign(k, id, term);
    atomic_store(&k->victim_resign_rc, coord_election_resign(e));
}

static int election_worker(fx_run *run, int id, coord_client *c) {
    checker *k = run->scn;
    coord_election *e;
    int rc = coord_election_new(&e, c, "faults", NULL);
    if (rc) return fx_fail(run, id, "coord_election_new: %s", coord_err_name(rc));
    while (!fx_stopping(run)) {
        if (id == VICTIM && fx_park_requested(run)) {
            victim_lead(run, id, c, e);
            if (step_down(run, id, c, &e)) return 1;
            continue;
        }
        uint64_t session = coord_client_session(c), term = 0;
        if (lead(run, id, e, &term)) {
            if (step_down(run, id, c, &e)) return 1; /* never campaign over a candidacy */
            fx_nap(50);
            continue;
        }
        chk_lead(k, id, term, session);
        for (int i = 0; i < LEAD_WRITES && !fx_stopping(run); i++) {
            int64_t t0 = coord__now_ms();
            if (!coord_election_is_leader(e)) break; /* SUSPENDED, or the entry is gone */
            if (chk_write(k, id, term, session)) fx_ok(run, id, t0);
            fx_nap(2);
        }
        chk_resign(k, id, term);
        if (step_down(run, id, c, &e)) return 1;
        atomic_store(&run->sh->w[id].session, coord_client_session(c));
        fx_nap(PACE_MS);
    }
    coord_election_free(e);
    return 0;
}

/* Overlaps among `n` noted leaderships or writes: those whose session is still the worker's. */
static long live_overlaps(fx_run *run, const noted *v, int n, const char *what) {
    long overlaps = 0;
    for (int i = 0; i < n; i++)
        if (atomic_load(&run->sh->w[v[i].id].session) == v[i].session) {
            print_error("worker %d (session %llu, term %llu): %s in a live session\n", v[i].id,
                        (unsigned long long)v[i].session, (unsigned long long)v[i].term, what);
            overlaps++;
        }
    return overlaps;
}

static void election_faults(void **state) {
    fx_run *run = fx_prepare(state, "election", WORKERS, VICTIM, sizeof(checker));
    checker *k = run->scn;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&k->mu, &a);
    pthread_mutexattr_destroy(&a);
    k->inside = k->last = -1;
    run->diagnose = list_candidates;
    atomic_store(&k->victim_learned_ms, -1);
    atomic_store(&k->victim_resign_rc, 1);

    fx_launch(run, election_worker);
    fx_await_ops(run, 20);
    fx_kill_leader(run);
    fx_pause_follower(run);
    fx_pause_victim(run, true, NULL, victim_superseded);
    fx_finish(run);

    /* The victim's write is refused by design; any other refusal, or a superseded leadership,
     * in a session that survived is an overlap. */
    int nref = 0;
    for (int i = 0; i < k->nref; i++)
        if (k->ref[i].id != VICTIM || k->ref[i].term != atomic_load(&k->victim_term))
            k->ref[nref++] = k->ref[i];
    long overlaps = live_overlaps(run, k->sup, k->nsup, "superseded while leading") +
                    live_overlaps(run, k->ref, nref, "wrote as leader under an older term");
    long violations =
        k->backwards + overlaps + k->stale_accepted + atomic_load(&k->victim_accepted);
    /* Leadership back within the session TTL + 2 s of each fault (the victim's TTL for its
     * own stop: until then its session holds the leadership). */
    long slow = 0;
    char late[160] = "";
    for (int i = 0; i < atomic_load(&run->sh->nevents); i++) {
        const fx_event *ev = &run->sh->ev[i];
        int64_t took = atomic_load(&ev->first_ok_ms) - ev->at_ms;
        int64_t bound =
            (strcmp(ev->name, "client-stop") ? FX_WORKER_TTL_MS : FX_VICTIM_TTL_MS) + SLACK_MS;
        if (took > bound) {
            slow++;
            snprintf(late + strlen(late), sizeof late - strlen(late), " %s %lld > %lld", ev->name,
                     (long long)took, (long long)bound);
        }
    }
    int64_t takeover = run->victim_takeover_ms;
    int refused = atomic_load(&k->victim_refused);
    int64_t learned = atomic_load(&k->victim_learned_ms);
    int resign_rc = atomic_load(&k->victim_resign_rc);
    char extra[512];
    snprintf(extra, sizeof extra,
             "leaderships %ld (%ld kept over a resign), terms going back %ld, overlaps %ld, "
             "writes %ld, refused %ld, stale accepted %ld, recoveries over TTL + 2 s %ld%s, "
             "victim: is_leader %s at resume, its write %s, is_leader false %lld ms after "
             "resume, its resign %s",
             k->leaderships, k->continued, k->backwards, overlaps, k->writes, k->refused,
             k->stale_accepted, slow, late,
             atomic_load(&k->victim_leader_at_resume) ? "true" : "false",
             refused ? "refused" : "ACCEPTED", (long long)learned, coord_err_name(resign_rc));
    pthread_mutex_destroy(&k->mu);
    fx_report(run, violations, extra);
    assert_int_equal(violations, 0);
    assert_int_equal(slow, 0);
    assert_true(takeover >= 0 && takeover <= FX_VICTIM_TTL_MS + SLACK_MS);
    assert_int_equal(refused, 1);
    assert_true(learned >= 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {FX_TESTS(election_faults)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
