/*
 * Lock under faults (3-member clusters, both backends, one body). Worker processes, each with
 * its own client, take one lock in turn while the leader is killed and restarted, a follower is
 * stopped and resumed, and one worker is stopped while it holds the lock, past its session TTL.
 *
 * Inside the lock, workers use a fenced resource kept in shared memory (the checker): it
 * refuses a token lower than the highest it has seen, and it remembers every holder that was
 * still inside when a newer one came in. That is only correct when the older holder's session
 * had expired: a superseded hold whose session survived is an overlap, a violation. So is a
 * fresh hold whose token does not exceed every earlier one. The stopped worker, once resumed,
 * must find its token refused and coord_lock_held() false.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"

#define WORKERS 4
#define VICTIM 3
#define ACQUIRE_MS 5000
#define PACE_MS 10 /* between a worker's holds: leaves the 2 cores to the servers */
#define MAX_SUPERSEDED 64

typedef struct superseded {
    int id;
    uint64_t session, token;
} superseded;

typedef struct checker {
    /* Process-shared and robust. Taken by workers' main threads only, never while the victim
     * may be stopped (it is stopped in fx_parked), so nobody waits for a stopped process. */
    pthread_mutex_t mu;
    int inside; /* worker inside, -1: none */
    uint64_t inside_token, inside_session;
    uint64_t max_token;
    int last; /* worker of the latest hold */
    long entries, backwards, refused;
    long continued; /* a worker got its own last token again: its release had failed */
    superseded sup[MAX_SUPERSEDED];
    int nsup;
    /* The victim's story. */
    _Atomic uint64_t victim_token;
    _Atomic int victim_refused, victim_accepted, victim_release_rc;
    _Atomic int64_t victim_learned_ms; /* resume -> coord_lock_held() false; -1: never */
} checker;

static void chk_lock(checker *k) {
    if (pthread_mutex_lock(&k->mu) == EOWNERDEAD) pthread_mutex_consistent(&k->mu);
}

/* A fresh hold begins (`session`: the client's session when the acquire began). */
static void chk_enter(checker *k, int id, uint64_t token, uint64_t session) {
    chk_lock(k);
    k->entries++;
    if (token < k->max_token || (token == k->max_token && id != k->last)) {
        k->backwards++;
        fprintf(stderr, "worker %d holds with token %llu after worker %d's %llu\n", id,
                (unsigned long long)token, k->last, (unsigned long long)k->max_token);
    } else if (token == k->max_token) {
        /* Nobody held in between (they would have a higher token): the lock stayed ours. */
        k->continued++;
    }
    k->last = id;
    if (k->inside >= 0 && k->inside != id && k->nsup < MAX_SUPERSEDED)
        k->sup[k->nsup++] = (superseded){k->inside, k->inside_session, k->inside_token};
    k->inside = id;
    k->inside_token = token;
    k->inside_session = session;
    if (token > k->max_token) k->max_token = token;
    pthread_mutex_unlock(&k->mu);
}

/* An operation on the resource under `token`: accepted only from the newest holder. */
static bool chk_use(checker *k, int id, uint64_t token) {
    chk_lock(k);
    bool ok = k->inside == id && k->inside_token == token && token == k->max_token;
    if (!ok) k->refused++;
    pthread_mutex_unlock(&k->mu);
    return ok;
}

static void chk_exit(checker *k, int id, uint64_t token) {
    chk_lock(k);
    if (k->inside == id && k->inside_token == token) k->inside = -1;
    pthread_mutex_unlock(&k->mu);
}

/* On a failed wait: what the lock's queue holds now (a ZooKeeper contender is
 * "_c_<handle uuid>-lock-<seq>", an etcd one "<lease>-<handle uuid>"). */
static void list_queue(fx_run *run) {
    fx_dump(run, "lock/faults");
}

static bool victim_superseded(fx_run *run) {
    checker *k = run->scn;
    chk_lock(k);
    bool yes = k->max_token > atomic_load(&k->victim_token);
    pthread_mutex_unlock(&k->mu);
    return yes;
}

/* The victim takes the lock and is stopped holding it; once resumed it carries on as a paused
 * process would, with the token it had. */
static void victim_hold(fx_run *run, int id, coord_client *c, coord_lock *l) {
    checker *k = run->scn;
    uint64_t session = coord_client_session(c), token = 0;
    int rc = coord_lock_acquire(l, ACQUIRE_MS);
    if (!rc) rc = coord_lock_token(l, &token);
    if (rc) {
        fx_err(run, id, rc);
        fx_nap(50);
        return; /* asked again on the next turn */
    }
    chk_enter(k, id, token, session);
    atomic_store(&k->victim_token, token);
    fx_parked(run);
    int64_t resumed = coord__now_ms();
    if (chk_use(k, id, token))
        atomic_store(&k->victim_accepted, 1);
    else
        atomic_store(&k->victim_refused, 1);
    while (coord_lock_held(l) && coord__now_ms() - resumed < FX_WAIT_MS)
        fx_nap(1);
    atomic_store(&k->victim_learned_ms, coord_lock_held(l) ? -1 : coord__now_ms() - resumed);
    chk_exit(k, id, token);
    atomic_store(&k->victim_release_rc, coord_lock_release(l));
}

static int lock_worker(fx_run *run, int id, coord_client *c) {
    checker *k = run->scn;
    coord_lock *l;
    int rc = coord_lock_new(&l, c, "faults");
    if (rc) return fx_fail(run, id, "coord_lock_new: %s", coord_err_name(rc));
    while (!fx_stopping(run)) {
        if (id == VICTIM && fx_park_requested(run)) {
            victim_hold(run, id, c, l);
            continue;
        }
        uint64_t session = coord_client_session(c), token = 0;
        int64_t t0 = coord__now_ms();
        rc = coord_lock_acquire(l, ACQUIRE_MS);
        if (!rc) rc = coord_lock_token(l, &token);
        if (rc) {
            fx_err(run, id, rc);
            fx_nap(50);
            continue;
        }
        chk_enter(k, id, token, session);
        fx_nap(1);
        chk_use(k, id, token); /* refused only if the hold was superseded: judged at the end */
        chk_exit(k, id, token);
        rc = coord_lock_release(l);
        if (rc)
            fx_err(run, id, rc);
        else
            fx_ok(run, id, t0);
        atomic_store(&run->sh->w[id].session, coord_client_session(c));
        fx_nap(PACE_MS);
    }
    coord_lock_free(l);
    return 0;
}

static void lock_faults(void **state) {
    fx_run *run = fx_prepare(state, "lock", WORKERS, VICTIM, sizeof(checker));
    checker *k = run->scn;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&k->mu, &a);
    pthread_mutexattr_destroy(&a);
    k->inside = k->last = -1;
    run->diagnose = list_queue;
    atomic_store(&k->victim_learned_ms, -1);
    atomic_store(&k->victim_release_rc, 1);

    fx_launch(run, lock_worker);
    fx_await_ops(run, 20);
    fx_kill_leader(run);
    fx_pause_follower(run);
    fx_pause_victim(run, true, NULL, victim_superseded);
    fx_finish(run);

    /* A superseded hold is legitimate only if its session expired since. */
    long overlaps = 0;
    for (int i = 0; i < k->nsup; i++)
        if (atomic_load(&run->sh->w[k->sup[i].id].session) == k->sup[i].session) {
            print_error("worker %d (session %llu, token %llu) was superseded in a live session\n",
                        k->sup[i].id, (unsigned long long)k->sup[i].session,
                        (unsigned long long)k->sup[i].token);
            overlaps++;
        }
    long violations = k->backwards + overlaps + atomic_load(&k->victim_accepted);
    int refused = atomic_load(&k->victim_refused);
    int64_t learned = atomic_load(&k->victim_learned_ms);
    int release_rc = atomic_load(&k->victim_release_rc);
    char extra[256];
    snprintf(extra, sizeof extra,
             "holds %ld (%ld kept over a failed release), tokens going back %ld, overlaps %ld, "
             "stale uses refused %ld (victim's %s), "
             "victim's coord_lock_held() false %lld ms after resume, its release %s",
             k->entries, k->continued, k->backwards, overlaps, k->refused,
             refused ? "refused" : "ACCEPTED", (long long)learned, coord_err_name(release_rc));
    pthread_mutex_destroy(&k->mu);
    fx_report(run, violations, extra);
    assert_int_equal(violations, 0);
    assert_int_equal(refused, 1);
    assert_true(learned >= 0);
    assert_int_equal(release_rc, COORD_ENOTHELD);
}

int main(void) {
    const struct CMUnitTest tests[] = {FX_TESTS(lock_faults)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
