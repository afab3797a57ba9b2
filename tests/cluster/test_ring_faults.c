/*
 * Ring membership under faults (3-member clusters, both backends, one body). Member processes
 * m0..m3 join the group "faults", each with its own client and ring; an observer process has a
 * ring too. The fault suite's schedule runs (faults.h); m3 is the victim, stopped past its
 * session TTL.
 *
 * The observer's operations are probe rounds: it joins the member "probe" through a second
 * ring handle, waits until every ring not stopped shows it, leaves, and waits until none shows
 * it, so a round that completes after a fault proves that writes and every ring's watch work
 * again. At the end every ring must show the same epoch and member set (m0..m3, the victim
 * registered again by its client), and no ring may ever have reported a member whose session
 * survived as left (a flap).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"

#define MEMBERS 4 /* m0..m3 */
#define VICTIM 3
#define OBSERVER 4
#define WORKERS 5
#define PROBE_BIT (1u << 15)
#define OTHER_BIT (1u << 31) /* an id that is none of ours */
#define ALL_MEMBERS ((1u << MEMBERS) - 1)

/* What one worker's ring shows, kept current by the worker. */
typedef struct view {
    _Atomic uint64_t epoch;
    _Atomic unsigned mask;      /* bit i: "m<i>"; PROBE_BIT; OTHER_BIT */
    _Atomic unsigned left_ever; /* every id on_change ever reported as left */
    _Atomic long changes;
    /* The changes of members (not of the probe), to tell a flap's story. */
    _Atomic int nhist;
    struct {
        int64_t at;
        unsigned left, joined;
    } hist[64];
} view;

typedef struct ring_scn {
    view v[WORKERS];
    _Atomic int probing; /* the observer runs probe rounds while set */
} ring_scn;

static unsigned id_bit(const char *id) {
    if (strcmp(id, "probe") == 0) return PROBE_BIT;
    if (id[0] == 'm' && id[1] >= '0' && id[1] < '0' + MEMBERS && !id[2]) return 1u << (id[1] - '0');
    return OTHER_BIT;
}

static fx_run *self; /* in a worker process: its run */

static void on_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r;
    view *v = payload;
    if (fx_stopping(self)) return; /* the members leaving at the end */
    atomic_fetch_add(&v->changes, 1);
    unsigned l = 0, j = 0;
    for (size_t i = 0; i < ch->nleft; i++)
        l |= id_bit(ch->left[i]);
    for (size_t i = 0; i < ch->njoined; i++)
        j |= id_bit(ch->joined[i]);
    atomic_fetch_or(&v->left_ever, l);
    if (!((l | j) & ~PROBE_BIT)) return;
    int k = atomic_fetch_add(&v->nhist, 1);
    if (k < 64) {
        v->hist[k].at = coord__now_ms();
        v->hist[k].left = l;
        v->hist[k].joined = j;
    }
}

/* Publish the ring's member set with its epoch (read twice so the pair is consistent). */
static void publish(fx_run *run, int id, coord_ring *r, view *v) {
    uint64_t e = coord_ring_epoch(r);
    char **ids;
    size_t n;
    int rc = coord_ring_members(r, &ids, &n);
    if (rc) {
        fx_err(run, id, rc);
        return;
    }
    unsigned mask = 0;
    for (size_t i = 0; i < n; i++)
        mask |= id_bit(ids[i]);
    coord_ring_strings_free(ids, n);
    if (coord_ring_epoch(r) != e) return; /* changed meanwhile: next time */
    atomic_store(&v->mask, mask);
    atomic_store(&v->epoch, e);
}

/* Does every ring that is not stopped show (or not show) the probe? */
static bool probe_seen(fx_run *run, bool in) {
    ring_scn *s = run->scn;
    for (int i = 0; i < WORKERS; i++) {
        if (atomic_load(&run->sh->w[i].stopped)) continue;
        if (((atomic_load(&s->v[i].mask) & PROBE_BIT) != 0) != in) return false;
    }
    return true;
}

enum { P_IDLE, P_JOIN, P_WAIT_IN, P_LEAVE, P_WAIT_OUT };

/* One step of the observer's probe rounds; returns the next state. */
static int probe_step(fx_run *run, int id, coord_ring *probe, int st, int64_t *t0) {
    ring_scn *s = run->scn;
    int rc;
    switch (st) {
    case P_IDLE:
        if (!atomic_load(&s->probing)) return P_IDLE;
        *t0 = coord__now_ms();
        return P_JOIN;
    case P_JOIN:
        rc = coord_ring_join(probe, "probe", NULL, 0, 1);
        if (rc == 0) return P_WAIT_IN;
        /* After a join of unknown outcome the retry completes it (the entry that attempt made
         * is the handle's own); only ETIMEDOUT and EUNAVAILABLE are expected here. */
        fx_err(run, id, rc);
        fx_nap(50);
        return P_JOIN;
    case P_WAIT_IN:
        return probe_seen(run, true) ? P_LEAVE : P_WAIT_IN;
    case P_LEAVE:
        rc = coord_ring_leave(probe);
        if (rc == 0) return P_WAIT_OUT;
        fx_err(run, id, rc);
        fx_nap(50);
        return P_LEAVE;
    default: /* P_WAIT_OUT */
        if (!probe_seen(run, false)) return P_WAIT_OUT;
        fx_ok(run, id, *t0);
        return P_IDLE;
    }
}

static int ring_worker(fx_run *run, int id, coord_client *c) {
    ring_scn *s = run->scn;
    view *v = &s->v[id];
    self = run;
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    o.on_change = on_change;
    o.payload = v;
    coord_ring *r = NULL, *probe = NULL;
    int rc = coord_ring_new(&r, c, "faults", &o);
    if (rc)
        return fx_fail(run, id, "coord_ring_new: %s: %s", coord_err_name(rc), coord_last_error());
    if (id < MEMBERS) {
        char name[16];
        snprintf(name, sizeof name, "m%d", id);
        rc = coord_ring_join(r, name, name, strlen(name), 1);
    } else {
        rc = coord_ring_new(&probe, c, "faults", NULL);
    }
    if (rc) {
        coord_ring_free(r);
        return fx_fail(run, id, "join/new: %s: %s", coord_err_name(rc), coord_last_error());
    }
    int st = P_IDLE;
    int64_t t0 = 0;
    while (!fx_stopping(run)) {
        publish(run, id, r, v);
        if (probe) st = probe_step(run, id, probe, st, &t0);
        fx_nap(5);
    }
    coord_ring_free(probe);
    coord_ring_free(r);
    return 0;
}

/* Every ring shows the victim (or none does). */
static bool victim_shown(fx_run *run, bool shown) {
    ring_scn *s = run->scn;
    for (int i = 0; i < WORKERS; i++)
        if (i != VICTIM && ((atomic_load(&s->v[i].mask) & (1u << VICTIM)) != 0) != shown)
            return false;
    return true;
}

static bool victim_present(fx_run *run) {
    return victim_shown(run, true);
}

static bool victim_gone(fx_run *run) {
    return victim_shown(run, false);
}

/* Every ring shows exactly m0..m3 with the epoch of that set. */
static bool converged(fx_run *run, uint64_t want) {
    ring_scn *s = run->scn;
    for (int i = 0; i < WORKERS; i++)
        if (atomic_load(&s->v[i].mask) != ALL_MEMBERS || atomic_load(&s->v[i].epoch) != want)
            return false;
    return true;
}

static void log_views(fx_run *run) {
    ring_scn *s = run->scn;
    for (int i = 0; i < WORKERS; i++)
        print_error("  ring of worker %d: members 0x%x, epoch %016llx, left ever 0x%x, "
                    "changes %ld, session %llu, LOST %d\n",
                    i, atomic_load(&s->v[i].mask), (unsigned long long)atomic_load(&s->v[i].epoch),
                    atomic_load(&s->v[i].left_ever), atomic_load(&s->v[i].changes),
                    (unsigned long long)atomic_load(&run->sh->w[i].session),
                    atomic_load(&run->sh->w[i].lost));
    for (int i = 0; i < WORKERS; i++) {
        int n = atomic_load(&s->v[i].nhist);
        for (int k = 0; k < n && k < 64; k++)
            print_error("  ring of worker %d at +%.3fs: left 0x%x, joined 0x%x\n", i,
                        (double)(s->v[i].hist[k].at - run->t0) / 1000.0, s->v[i].hist[k].left,
                        s->v[i].hist[k].joined);
    }
}

static void ring_faults(void **state) {
    fx_run *run = fx_prepare(state, "ring", WORKERS, VICTIM, sizeof(ring_scn));
    ring_scn *s = run->scn;
    run->victim_no_ops = true; /* members do no operations of their own: the observer probes */
    run->diagnose = log_views;
    const char *ids[MEMBERS] = {"m0", "m1", "m2", "m3"};
    unsigned weights[MEMBERS] = {1, 1, 1, 1};
    uint64_t want = coord__ring_epoch(ids, weights, MEMBERS);

    fx_launch(run, ring_worker);
    int64_t end = coord__now_ms() + FX_WAIT_MS;
    while (!converged(run, want)) {
        if (coord__now_ms() >= end) {
            log_views(run);
            fail_msg("ring: the members' rings did not converge at the start");
        }
        fx_nap(10);
    }
    atomic_store(&s->probing, 1);
    fx_await_ops(run, 5);
    fx_kill_leader(run);
    fx_pause_follower(run);
    fx_pause_victim(run, false, victim_present, victim_gone);
    fx_await_recovered(run);

    /* Healed: every ring converges to the same epoch and member set. */
    atomic_store(&s->probing, 0);
    end = coord__now_ms() + FX_WAIT_MS;
    while (!converged(run, want)) {
        if (coord__now_ms() >= end) {
            log_views(run);
            fail_msg("ring: rings did not converge within %d ms of the heal", FX_WAIT_MS);
        }
        fx_nap(5);
    }
    int64_t heal_ms = coord__now_ms() - run->victim_cont_ms;
    fx_finish(run);

    /* A member whose session survived must never have been reported as left. */
    unsigned survived = 0;
    for (int i = 0; i < MEMBERS; i++)
        if (atomic_load(&run->sh->w[i].session) == 1 && atomic_load(&run->sh->w[i].lost) == 0)
            survived |= 1u << i;
    long flaps = 0, changes = 0;
    for (int i = 0; i < WORKERS; i++) {
        unsigned left = atomic_load(&s->v[i].left_ever);
        changes += atomic_load(&s->v[i].changes);
        if (left & (survived | OTHER_BIT)) {
            print_error("the ring of worker %d reported 0x%x as left (survivors 0x%x)\n", i, left,
                        survived);
            flaps++;
        }
    }
    if (survived & (1u << VICTIM)) flaps++; /* its session must have expired */
    if (flaps) log_views(run);
    char extra[256];
    snprintf(extra, sizeof extra,
             "membership changes seen %ld, surviving members 0x%x, flaps %ld, all rings at "
             "epoch %016llx %lld ms after the victim resumed",
             changes, survived, flaps, (unsigned long long)want, (long long)heal_ms);
    fx_report(run, flaps, extra);
    assert_int_equal(flaps, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {FX_TESTS(ring_faults)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
