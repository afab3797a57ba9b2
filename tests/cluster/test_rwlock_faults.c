/*
 * Read-write lock under faults (3-member clusters, both backends, one body). Worker processes,
 * each with its own client, take one rwlock, as readers in some rounds and as writers in others,
 * while the leader is killed and restarted, a follower is stopped and resumed, and one worker is
 * stopped while it holds the write lock, past its session TTL.
 *
 * Inside, workers are counted in shared memory (the checker), which also keeps a fenced storage:
 * a writer writes its token (coord_rwlock_token) into it, accepted only from the writer with the
 * highest token seen. As in the lock's workload, an occupant still inside when an incompatible
 * one came in (a reader or writer when a writer came, a writer when a reader came) is remembered,
 * and is a violation unless its session expired since. So is a writer whose token does not
 * exceed every earlier writer's, and a reader whose token is older than an accepted write (it
 * was queued before that writer, which should have waited for it). The stopped writer, once
 * resumed, must find its write refused and coord_rwlock_held() false.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"

#define WORKERS 5
#define VICTIM 4
#define ACQUIRE_MS 5000
#define READ_HOLD_MS 10 /* readers stay a little: their overlaps show */
#define WRITE_HOLD_MS 2
#define PACE_MS 10
#define MAX_SUSPECTS 64

/* An occupant that may have lost its hold: a violation while its session lives on. */
typedef struct suspect {
    int id;
    bool writer;
    uint64_t session, token;
    char why[16];
    long seen; /* times it was found */
} suspect;

typedef struct checker {
    /* Process-shared and robust. Taken by workers' main threads only, never while the victim
     * may be stopped (it is stopped in fx_parked), so nobody waits for a stopped process. */
    pthread_mutex_t mu;
    bool inside[WORKERS], writer[WORKERS];
    uint64_t session[WORKERS], token[WORKERS]; /* of each occupant inside */
    int readers, peak_readers;
    long reads, writes;
    /* The storage. */
    uint64_t max_token; /* the highest writer's token seen */
    int last;           /* writer of the latest write hold */
    uint64_t written;   /* the token of the latest accepted write */
    long accepted, refused, backwards, stale_accepted;
    suspect sus[MAX_SUSPECTS];
    int nsus;
    long sus_total;
    /* The victim's story. */
    _Atomic uint64_t victim_token;
    _Atomic int victim_refused, victim_accepted, victim_release_rc;
    _Atomic int64_t victim_learned_ms; /* resume -> coord_rwlock_held() false; -1: never */
} checker;

static void chk_lock(checker *k) {
    if (pthread_mutex_lock(&k->mu) == EOWNERDEAD) pthread_mutex_consistent(&k->mu);
}

/* Worker `id`'s hold is a suspect (kept once per hold and reason). */
static void suspect_add(checker *k, int id, const char *why) {
    k->sus_total++;
    suspect s = {id, k->writer[id], k->session[id], k->token[id], "", 0};
    snprintf(s.why, sizeof s.why, "%s", why);
    int j = 0;
    while (j < k->nsus && (k->sus[j].id != id || k->sus[j].token != s.token ||
                           k->sus[j].session != s.session || strcmp(k->sus[j].why, why)))
        j++;
    if (j == k->nsus && k->nsus < MAX_SUSPECTS) k->sus[k->nsus++] = s;
    if (j < k->nsus) k->sus[j].seen++;
}

/* A hold begins (`session`: the client's session once the lock was taken). */
static void chk_enter(checker *k, int id, bool writer, uint64_t token, uint64_t session) {
    chk_lock(k);
    if (writer) {
        k->writes++;
        if (token <= k->max_token) {
            k->backwards++;
            fprintf(stderr, "worker %d writes with token %llu after worker %d's %llu\n", id,
                    (unsigned long long)token, k->last, (unsigned long long)k->max_token);
        }
        k->last = id;
        if (token > k->max_token) k->max_token = token;
    } else {
        k->reads++;
    }
    for (int i = 0; i < WORKERS; i++)
        if (k->inside[i] && i != id && (writer || k->writer[i])) suspect_add(k, i, "overlapped");
    k->inside[id] = true;
    k->writer[id] = writer;
    k->session[id] = session;
    k->token[id] = token;
    if (!writer) {
        if (token < k->written) suspect_add(k, id, "read behind");
        if (++k->readers > k->peak_readers) k->peak_readers = k->readers;
    }
    pthread_mutex_unlock(&k->mu);
}

/* A write to the storage under `token`: accepted only from the newest writer, and then it must
 * be newer than the write before it. */
static bool chk_write(checker *k, int id, uint64_t token) {
    chk_lock(k);
    bool ok = k->inside[id] && k->writer[id] && k->token[id] == token && token == k->max_token;
    if (ok) {
        k->accepted++;
        if (token <= k->written) k->stale_accepted++;
        k->written = token;
    } else {
        k->refused++;
    }
    pthread_mutex_unlock(&k->mu);
    return ok;
}

static void chk_exit(checker *k, int id) {
    chk_lock(k);
    if (k->inside[id] && !k->writer[id]) k->readers--;
    k->inside[id] = false;
    pthread_mutex_unlock(&k->mu);
}

/* On a failed wait: the lock's queue now (ZooKeeper "_c_<uuid>-__READ__<seq>" and
 * "..-__WRIT__<seq>", etcd "read/<lease>-<uuid>" and "write/..."). */
static void list_queue(fx_run *run) {
    fx_dump(run, "rwlock/faults");
}

static bool victim_superseded(fx_run *run) {
    checker *k = run->scn;
    chk_lock(k);
    bool yes = k->max_token > atomic_load(&k->victim_token);
    pthread_mutex_unlock(&k->mu);
    return yes;
}

/* The victim takes the write lock and is stopped holding it; once resumed it writes, as a
 * paused process would, with the token it had. */
static void victim_hold(fx_run *run, int id, coord_client *c, coord_rwlock *l) {
    checker *k = run->scn;
    uint64_t token = 0;
    int rc = coord_rwlock_wrlock(l, ACQUIRE_MS);
    if (!rc) rc = coord_rwlock_token(l, &token);
    if (rc) {
        if (coord_rwlock_held(l)) coord_rwlock_unlock(l);
        fx_err(run, id, rc);
        fx_nap(50);
        return; /* asked again on the next turn */
    }
    chk_enter(k, id, true, token, coord_client_session(c));
    atomic_store(&k->victim_token, token);
    fx_parked(run);
    int64_t resumed = coord__now_ms();
    if (chk_write(k, id, token))
        atomic_store(&k->victim_accepted, 1);
    else
        atomic_store(&k->victim_refused, 1);
    while (coord_rwlock_held(l) && coord__now_ms() - resumed < FX_WAIT_MS)
        fx_nap(1);
    atomic_store(&k->victim_learned_ms, coord_rwlock_held(l) ? -1 : coord__now_ms() - resumed);
    chk_exit(k, id);
    atomic_store(&k->victim_release_rc, coord_rwlock_unlock(l));
}

static int rwlock_worker(fx_run *run, int id, coord_client *c) {
    checker *k = run->scn;
    coord_rwlock *l;
    int rc = coord_rwlock_new(&l, c, "faults");
    if (rc) return fx_fail(run, id, "coord_rwlock_new: %s", coord_err_name(rc));
    for (unsigned round = 0; !fx_stopping(run); round++) {
        if (id == VICTIM && fx_park_requested(run)) {
            victim_hold(run, id, c, l);
            continue;
        }
        bool writer = (round + (unsigned)id) % 3 == 0; /* a third of the holds, staggered */
        uint64_t token = 0;
        int64_t t0 = coord__now_ms();
        rc = writer ? coord_rwlock_wrlock(l, ACQUIRE_MS) : coord_rwlock_rdlock(l, ACQUIRE_MS);
        if (!rc) rc = coord_rwlock_token(l, &token);
        if (rc) {
            if (coord_rwlock_held(l)) coord_rwlock_unlock(l);
            fx_err(run, id, rc);
            fx_nap(50);
            continue;
        }
        chk_enter(k, id, writer, token, coord_client_session(c));
        if (writer) {
            fx_nap(WRITE_HOLD_MS);
            chk_write(k, id,
                      token); /* refused only if the hold was superseded: judged at the end */
        } else {
            fx_nap(READ_HOLD_MS);
        }
        chk_exit(k, id);
        rc = coord_rwlock_unlock(l);
        if (rc)
            fx_err(run, id, rc);
        else
            fx_ok(run, id, t0);
        atomic_store(&run->sh->w[id].session, coord_client_session(c));
        fx_nap(PACE_MS);
    }
    coord_rwlock_free(l);
    return 0;
}

static void rwlock_faults(void **state) {
    fx_run *run = fx_prepare(state, "rwlock", WORKERS, VICTIM, sizeof(checker));
    checker *k = run->scn;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&k->mu, &a);
    pthread_mutexattr_destroy(&a);
    k->last = -1;
    run->diagnose = list_queue;
    atomic_store(&k->victim_learned_ms, -1);
    atomic_store(&k->victim_release_rc, 1);

    fx_launch(run, rwlock_worker);
    fx_await_ops(run, 20);
    fx_kill_leader(run);
    fx_pause_follower(run);
    fx_pause_victim(run, true, NULL, victim_superseded);
    fx_finish(run);

    /* A superseded or out-of-order hold is legitimate only if its session expired since. */
    long overlaps = 0, behind = 0, explained = 0;
    for (int i = 0; i < k->nsus; i++) {
        suspect *s = &k->sus[i];
        if (atomic_load(&run->sh->w[s->id].session) != s->session) {
            explained += s->seen;
            continue;
        }
        print_error("worker %d (%s, session %llu, token %llu) %s in a live session\n", s->id,
                    s->writer ? "writer" : "reader", (unsigned long long)s->session,
                    (unsigned long long)s->token, s->why);
        if (!strcmp(s->why, "read behind"))
            behind += s->seen;
        else
            overlaps += s->seen;
    }
    /* Suspects beyond those kept cannot be judged: they count as violations. */
    long unjudged = k->sus_total - overlaps - behind - explained;
    long violations = k->backwards + overlaps + behind + unjudged + k->stale_accepted +
                      atomic_load(&k->victim_accepted);
    int refused = atomic_load(&k->victim_refused);
    int64_t learned = atomic_load(&k->victim_learned_ms);
    int release_rc = atomic_load(&k->victim_release_rc);
    char extra[400];
    snprintf(extra, sizeof extra,
             "reads %ld (peak readers %d), writes %ld (accepted %ld), writer overlaps %ld "
             "(%ld explained by a lost session, %ld unjudged), tokens going back %ld, reads behind "
             "a write %ld, "
             "stale writes accepted %ld, refused %ld (victim's %s), victim's "
             "coord_rwlock_held() false %lld ms after resume, its unlock %s",
             k->reads, k->peak_readers, k->writes, k->accepted, overlaps, explained, unjudged,
             k->backwards, behind, k->stale_accepted + atomic_load(&k->victim_accepted), k->refused,
             refused ? "refused" : "ACCEPTED", (long long)learned, coord_err_name(release_rc));
    int peak = k->peak_readers;
    pthread_mutex_destroy(&k->mu);
    fx_report(run, violations, extra);
    assert_int_equal(violations, 0);
    assert_true(peak >= 2); /* readers do share the lock */
    assert_int_equal(refused, 1);
    assert_true(learned >= 0);
    assert_int_equal(release_rc, COORD_ENOTHELD);
}

int main(void) {
    const struct CMUnitTest tests[] = {FX_TESTS(rwlock_faults)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
