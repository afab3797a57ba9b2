/*
 * Leader election (coord.h, "Election"): candidates queue like lock contenders (queue.c) and the
 * first leads; its term is its entry's creation number. A worker thread per handle keeps what
 * needs I/O off the callers and the backend's threads: the leader reports of on_leader, and the
 * check that a leader whose client was suspended still leads once it is connected again.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct coord_election {
    coord__queue q;
    coord_election_options opts;
    coord__listener listener;
    coord__closer closer; /* loop mode: an election freed after the close */

    /* The candidacy. Written by the handle's thread (and, for `suspended` and `vanished`, by
     * the worker and the watch that notice); read without a lock by is_leader. */
    _Atomic bool campaigning, leading;
    _Atomic bool suspended; /* the client was SUSPENDED and the lead is not confirmed since */
    _Atomic bool vanished;  /* our entry was deleted while we led */
    /* The KEY watch on our entry while leading, armed by the worker (off the campaign's return
     * path, where it would cost each hand-off a round trip) once the lead has stood for
     * SELF_WATCH_AFTER_MS; mu guards it. */
    struct self_watch *self;
    bool arm_self;
    int64_t arm_at;
    uint64_t gen; /* bumped at each campaign and step-down: a stale self watch is ignored */

    pthread_mutex_t mu; /* guards self, arm_self, gen, my and my_epoch */
    coord__worker worker;
    /* Our entry while leading (key NULL otherwise), as a leader's own report shows it, and its
     * session: copies for the worker, which never reads `q`. */
    coord_kv my;
    uint64_t my_epoch;

    /* Observation (on_leader): touched by the worker only, after new. */
    coord_watch *dir_watch, *head_watch;
    char *head_key; /* the key head_watch watches */
    bool reported, rep_none, rep_mine;
    char *rep_key;
    int64_t rep_version;
    coord_kv last; /* the last leader reported (for the SUSPENDED report) */
};

int coord_election_options_init(coord_election_options *o, unsigned version) {
    if (!o) return coord_seterr(COORD_EINVAL, "options is NULL");
    if (version == 0 || version > COORD_ELECTION_OPTIONS_VERSION)
        return coord_seterr(COORD_EINVAL, "unsupported coord_election_options version %u", version);
    coord_election_options d = COORD_ELECTION_OPTIONS_INIT;
    *o = d;
    o->version = version;
    return 0;
}

static coord_conn *conn(const coord_election *e) {
    return coord__client_conn(e->q.c);
}

#define WHY_CONFIRM 1u /* also whether a suspended lead still stands */

/* How long a lead stands before the worker watches its entry. A deletion within that time is
 * reported when the watch is armed (the watch reports an absent entry at once), so a vanished
 * entry is noticed within this much more than a round trip; a lead given up sooner (a leader
 * that resigns at once, hand-offs in a burst) costs the servers no watch at all: a request
 * more per hand-off was a tenth of ZooKeeper's hand-off rate. */
#define SELF_WATCH_AFTER_MS 20

/* Ask the worker to look again. */
static void kick(coord_election *e, bool confirm) {
    coord__worker_kick(&e->worker, confirm ? WHY_CONFIRM : 0);
}

static void on_state(void *payload, coord_session_state st) {
    coord_election *e = payload;
    if (st == COORD_SESSION_SUSPENDED) atomic_store(&e->suspended, true);
    kick(e, st == COORD_SESSION_CONNECTED);
}

static void on_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)ev;
    (void)rev;
    kick(payload, false);
}

typedef struct self_watch {
    coord_election *e;
    uint64_t gen; /* the lead it watches */
    coord_watch *w;
} self_watch;

static void on_self(void *payload, coord_watch_event ev, int64_t rev) {
    (void)rev;
    self_watch *sw = payload;
    coord_election *e = sw->e;
    pthread_mutex_lock(&e->mu);
    if (ev == COORD_EV_DELETED && sw->gen == e->gen) atomic_store(&e->vanished, true);
    pthread_mutex_unlock(&e->mu);
    kick(e, false);
}

static void self_free(coord_election *e, self_watch *sw) {
    if (!sw) return;
    coord_conn *k = conn(e);
    if (!coord__client_closed(e->q.c)) k->backend->unwatch(k, sw->w);
    free(sw);
}

/* Watch our entry's deletion for the lead of generation `gen` (worker). */
static int arm_self(coord_election *e) {
    pthread_mutex_lock(&e->mu);
    bool want = e->arm_self && e->my.key;
    if (want && coord__now_ms() < e->arm_at) { /* not yet: see SELF_WATCH_AFTER_MS */
        coord__worker_kick_at(&e->worker, 0, e->arm_at);
        pthread_mutex_unlock(&e->mu);
        return 0;
    }
    e->arm_self = false;
    char *key = want ? strdup(e->my.key) : NULL;
    uint64_t gen = e->gen;
    pthread_mutex_unlock(&e->mu);
    if (!want) return 0;
    self_watch *sw = key ? calloc(1, sizeof *sw) : NULL;
    if (!sw) {
        free(key);
        pthread_mutex_lock(&e->mu);
        e->arm_self = true;
        pthread_mutex_unlock(&e->mu);
        return coord__oom();
    }
    sw->e = e;
    sw->gen = gen;
    coord_conn *k = conn(e);
    /* Reports the deletion at once if the entry is already gone. */
    int rc = k->backend->watch(k, key, COORD_WATCH_KEY, 0, on_self, sw, &sw->w);
    free(key);
    pthread_mutex_lock(&e->mu);
    bool current = !rc && e->gen == gen && !e->self;
    if (current) e->self = sw;
    if (rc && e->gen == gen) e->arm_self = true; /* try again */
    pthread_mutex_unlock(&e->mu);
    if (!rc && !current) self_free(e, sw); /* the lead it was for has ended */
    if (rc) free(sw);
    return rc;
}

bool coord_election_is_leader(const coord_election *e) {
    return e && atomic_load(&e->leading) && !atomic_load(&e->suspended) &&
           !atomic_load(&e->vanished) && coord__session_epoch(e->q.c) == e->q.epoch;
}

/* ---------- the worker ---------- */

/* is_leader from the worker's copies; mu held. */
static bool leads(const coord_election *e) {
    return e->my.key && atomic_load(&e->leading) && !atomic_load(&e->suspended) &&
           !atomic_load(&e->vanished) && coord__session_epoch(e->q.c) == e->my_epoch;
}

typedef struct report_call {
    coord_election *e;
    const coord_leader *l;
} report_call;

static void report_now(void *arg, int rc) {
    (void)rc;
    report_call *r = arg;
    r->e->opts.on_leader(r->e, r->l, r->e->opts.payload);
}

/* On the worker's thread; in loop mode inside coord_client_process. */
static void report(coord_election *e, const coord_kv *head, bool mine) {
    if (!e->opts.on_leader) return;
    coord_leader l = {0};
    if (head)
        l = (coord_leader){
            .value = head->value, .len = head->len, .term = head->token, .mine = mine};
    report_call r = {e, head ? &l : NULL};
    coord__loop_call(e->q.c, e, report_now, &r);
}

/* Point the data watch at the leader's entry (its proclaims), or at nothing. */
static int follow(coord_election *e, const char *key) {
    coord_conn *k = conn(e);
    if (e->head_key && key && !strcmp(e->head_key, key)) return 0;
    if (e->head_watch) k->backend->unwatch(k, e->head_watch);
    e->head_watch = NULL;
    free(e->head_key);
    e->head_key = NULL;
    if (!key) return 0;
    if (!(e->head_key = strdup(key))) return coord__oom();
    int rc = k->backend->watch(k, key, COORD_WATCH_DATA, 0, on_event, e, &e->head_watch);
    if (rc) {
        free(e->head_key);
        e->head_key = NULL;
    }
    return rc;
}

/* `kv`'s value becomes a copy of `len` bytes of `value` (never NULL, so a failed copy tells);
 * false when out of memory, the old value kept. */
static bool set_value(coord_kv *kv, const void *value, size_t len) {
    void *copy = malloc(len ? len : 1);
    if (!copy) return false;
    if (len) memcpy(copy, value, len);
    free(kv->value);
    kv->value = copy;
    kv->len = len;
    return true;
}

/* A copy of our entry as the leader's report shows it; mu held. */
static int own_entry(const coord_election *e, coord_kv *kv) {
    *kv = e->my;
    kv->value = NULL;
    if (!(kv->key = strdup(e->my.key)) || !set_value(kv, e->my.value, e->my.len)) {
        coord_kv_clear(kv);
        return coord__oom();
    }
    return 0;
}

/* Read the leader and report it if anything observers see changed. */
static int observe(coord_election *e) {
    if (coord_client_state(e->q.c) == COORD_SESSION_SUSPENDED) {
        /* Nothing can be read; a leading handle says it cannot know it still leads. */
        pthread_mutex_lock(&e->mu);
        bool lead = leads(e);
        pthread_mutex_unlock(&e->mu);
        if (e->reported && e->rep_mine && !lead) {
            e->rep_mine = false;
            report(e, &e->last, false);
        }
        return 0;
    }
    coord_conn *k = conn(e);
    coord_kv head = {0};
    /* A leader is the head: its own entry, which only it writes, makes the report without a
     * read and needs no data watch (a deletion ends the lead through the self watch). */
    pthread_mutex_lock(&e->mu);
    bool lead = leads(e);
    int rc = lead ? own_entry(e, &head) : 0;
    pthread_mutex_unlock(&e->mu);
    if (!lead) rc = k->backend->queue_head(k, e->q.dir, &head, coord__client_timeout(e->q.c));
    if (rc && rc != COORD_ENOTFOUND) return rc;
    bool none = rc == COORD_ENOTFOUND;
    /* A leader drops the data watch after its report, which must not wait for the unwatch
     * of the previous head (a round trip or two on a failover's path). */
    if (!lead && (rc = follow(e, none ? NULL : head.key))) {
        coord_kv_clear(&head);
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    bool mine = !none && e->my.key && !strcmp(e->my.key, head.key) && leads(e);
    pthread_mutex_unlock(&e->mu);
    bool same = e->reported && e->rep_none == none &&
                (none || (e->rep_key && !strcmp(e->rep_key, head.key) &&
                          e->rep_version == head.version && e->rep_mine == mine));
    if (!same) {
        e->reported = true;
        e->rep_none = none;
        e->rep_mine = mine;
        e->rep_version = none ? 0 : head.version;
        free(e->rep_key);
        e->rep_key = none ? NULL : strdup(head.key);
        coord_kv_clear(&e->last);
        e->last = head;
        memset(&head, 0, sizeof head);
        report(e, none ? NULL : &e->last, mine);
    }
    coord_kv_clear(&head);
    return lead ? follow(e, NULL) : 0;
}

/* After SUSPENDED, with the same session: is our entry still first? */
static int confirm(coord_election *e) {
    if (!atomic_load(&e->suspended)) return 0;
    if (coord_client_state(e->q.c) != COORD_SESSION_CONNECTED) return 0;
    coord_kv mine = {0};
    pthread_mutex_lock(&e->mu);
    bool ours = e->my.key && atomic_load(&e->leading) &&
                coord__session_epoch(e->q.c) == e->my_epoch; /* else lost: never again */
    if (ours) {
        mine.key = strdup(e->my.key);
        mine.order = e->my.order;
    }
    pthread_mutex_unlock(&e->mu);
    if (!ours) return 0;
    if (!mine.key) return coord__oom();
    coord_conn *k = conn(e);
    coord_kv pred = {0};
    int64_t after;
    int rc = k->backend->lock_predecessor(k, e->q.dir, &mine, NULL, &pred, &after,
                                          coord__client_timeout(e->q.c));
    coord_kv_clear(&mine);
    bool first = !rc && !pred.key;
    coord_kv_clear(&pred);
    if (rc == COORD_ESESSION) atomic_store(&e->vanished, true); /* our entry is gone */
    if (first) atomic_store(&e->suspended, false);
    return rc == COORD_ESESSION ? 0 : rc;
}

/* The worker's step. */
static int work(void *arg, unsigned why) {
    coord_election *e = arg;
    if (coord__client_closed(e->q.c)) return 0; /* loop mode: freed after the close */
    /* Each step regardless of the others: a watch that cannot be armed while suspended must not
     * hold back the report that the lead is uncertain. */
    int rc = arm_self(e);
    int crc = (why & WHY_CONFIRM) ? confirm(e) : 0;
    int orc = e->opts.on_leader ? observe(e) : 0;
    return rc ? rc : crc ? crc : orc;
}

/* ---------- public API ---------- */

/* The worker and the watches end (coord_client_close, for an election freed after it). */
static void election_shut(void *arg) {
    coord_election *e = arg;
    coord_conn *k = conn(e);
    coord__client_unlisten(e->q.c, &e->listener);
    if (e->dir_watch) k->backend->unwatch(k, e->dir_watch);
    e->dir_watch = NULL;
    coord__worker_stop(&e->worker);
    if (e->head_watch) k->backend->unwatch(k, e->head_watch);
    e->head_watch = NULL;
    self_free(e, e->self);
    e->self = NULL;
}

int coord_election_new(coord_election **out, coord_client *c, const char *name,
                       const coord_election_options *opts) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    coord_election_options o = COORD_ELECTION_OPTIONS_INIT;
    if (opts) {
        if (opts->version == 0 || opts->version > COORD_ELECTION_OPTIONS_VERSION)
            return coord_seterr(COORD_EINVAL, "unsupported coord_election_options version %u",
                                opts->version);
        o = *opts;
    }
    coord_election *e = calloc(1, sizeof *e);
    if (!e) return coord__oom();
    int rc = coord__queue_init(&e->q, c, "election", name, "latch-");
    if (rc) {
        free(e);
        return rc;
    }
    e->opts = o;
    pthread_mutex_init(&e->mu, NULL);
    if ((rc = coord__worker_init(&e->worker, work, e))) {
        pthread_mutex_destroy(&e->mu);
        coord__queue_destroy(&e->q);
        free(e);
        return rc;
    }
    e->listener = (coord__listener){.fn = on_state, .payload = e};
    coord__client_listen(c, &e->listener);
    e->closer = (coord__closer){.fn = election_shut, .payload = e};
    coord__client_on_close(c, &e->closer);
    if (o.on_leader) {
        /* Observe from now: watch the candidates, then read the leader (here, so the backend's
         * errors reach the caller); the worker reports it and every change after it. */
        coord_conn *k = conn(e);
        rc = k->backend->watch(k, e->q.dir, COORD_WATCH_CHILDREN, 0, on_event, e, &e->dir_watch);
        coord_kv head = {0};
        if (!rc) rc = k->backend->queue_head(k, e->q.dir, &head, coord__client_timeout(c));
        coord_kv_clear(&head);
        if (rc == COORD_ENOTFOUND) rc = 0;
        if (!rc) rc = coord__worker_start(&e->worker);
        if (!rc) kick(e, false);
        if (rc) {
            coord_election_free(e);
            return rc;
        }
    }
    *out = e;
    return 0;
}

static int check_value(const void *value, size_t len) {
    if (!value && len) return coord_seterr(COORD_EINVAL, "value is NULL with length %zu", len);
    if (len > COORD_VALUE_MAX)
        return coord_seterr(COORD_EINVAL, "value of %zu bytes is over the limit of %u", len,
                            COORD_VALUE_MAX);
    return 0;
}

/* Stop leading (our entry is gone or about to be). */
static void step_down(coord_election *e) {
    atomic_store(&e->leading, false);
    pthread_mutex_lock(&e->mu);
    self_watch *sw = e->self;
    e->self = NULL;
    e->arm_self = false;
    e->gen++;
    coord_kv_clear(&e->my);
    pthread_mutex_unlock(&e->mu);
    self_free(e, sw);
    kick(e, false);
}

/* A campaign's start: 0 when the handle may campaign (it then campaigns). */
static int campaign_begin(coord_election *e, const void *value, size_t len) {
    if (!e) return coord_seterr(COORD_EINVAL, "election is NULL");
    int rc = check_value(value, len);
    if (rc) return rc;
    /* A lead only suspended is still this handle's (its entry stands): no second entry. */
    bool leads = atomic_load(&e->leading) && !atomic_load(&e->vanished) &&
                 coord__session_epoch(e->q.c) == e->q.epoch;
    if (atomic_load(&e->campaigning) || leads || coord__queue_entering(&e->q))
        return coord_seterr(COORD_EINVAL, "this handle already campaigns in or leads %s", e->q.dir);
    if (atomic_load(&e->leading)) step_down(e); /* a lead lost with its session or entry */
    atomic_store(&e->campaigning, true);
    return 0;
}

/* A campaign's end, with what the queue's enter returned. */
static int campaign_end(coord_election *e, int rc, const void *value, size_t len) {
    if (rc == COORD_ELOCKED)
        rc = coord_seterr(COORD_ELOCKED, "another candidate leads %s", e->q.dir);
    if (!rc) {
        pthread_mutex_lock(&e->mu);
        coord_kv_clear(&e->my);
        e->my = e->q.mine;
        e->my.value = NULL;
        bool copied = (e->my.key = strdup(e->q.mine.key)) && set_value(&e->my, value, len);
        e->my_epoch = e->q.epoch;
        /* Our entry's deletion (an operator, a revoked lease) ends the lead: the worker watches
         * for it, and a deletion before that is reported when the watch is armed. */
        e->gen++;
        e->arm_self = true;
        e->arm_at = coord__now_ms() + SELF_WATCH_AFTER_MS;
        atomic_store(&e->vanished, false);
        pthread_mutex_unlock(&e->mu);
        if (!copied) rc = coord__oom();
        atomic_store(&e->suspended, coord_client_state(e->q.c) == COORD_SESSION_SUSPENDED);
    }
    if (!rc) rc = coord__worker_start(&e->worker);
    if (rc && e->q.mine.key && !coord__client_closed(e->q.c))
        coord__queue_leave(&e->q, 0); /* nothing left behind */
    if (!rc) atomic_store(&e->leading, true);
    atomic_store(&e->campaigning, false);
    if (!rc) kick(e, atomic_load(&e->suspended));
    return rc;
}

int coord_election_campaign(coord_election *e, const void *value, size_t len, int timeout_ms) {
    int rc = campaign_begin(e, value, len);
    if (rc) return rc;
    return campaign_end(e, coord__queue_enter(&e->q, value, len, timeout_ms), value, len);
}

/* Loop mode: the campaign's value (a copy) and the application's done, until it runs. */
typedef struct campaign_op {
    void *value;
    size_t len;
    coord_done_fn done;
    void *payload;
} campaign_op;

static void campaigned(coord__queue *q, int rc, void *payload) {
    coord_election *e = (coord_election *)q;
    campaign_op *op = payload;
    rc = campaign_end(e, rc, op->value, op->len);
    campaign_op o = *op;
    free(op->value);
    free(op);
    o.done(rc, o.payload);
}

int coord_election_campaign_async(coord_election *e, const void *value, size_t len, int timeout_ms,
                                  coord_done_fn done, void *payload) {
    if (!done) return coord_seterr(COORD_EINVAL, "done is NULL");
    int rc = campaign_begin(e, value, len);
    if (rc) return rc;
    campaign_op *op = calloc(1, sizeof *op);
    if (!op || !(op->value = malloc(len ? len : 1))) {
        free(op);
        atomic_store(&e->campaigning, false);
        return coord__oom();
    }
    if (len) memcpy(op->value, value, len);
    op->len = len;
    op->done = done;
    op->payload = payload;
    rc = coord__queue_enter_async(&e->q, op->value, len, timeout_ms, campaigned, op);
    if (rc) {
        free(op->value);
        free(op);
        atomic_store(&e->campaigning, false);
    }
    return rc;
}

bool coord__election_waiting(coord_election *e) {
    return coord__queue_waiting(&e->q);
}

int coord_election_proclaim(coord_election *e, const void *value, size_t len) {
    if (!e) return coord_seterr(COORD_EINVAL, "election is NULL");
    int rc = check_value(value, len);
    if (rc) return rc;
    if (!coord_election_is_leader(e))
        return coord_seterr(COORD_ENOTHELD, "this handle does not lead %s", e->q.dir);
    coord_conn *k = conn(e);
    coord_kv out = {0};
    /* Only the state of our entry we know: a changed or vanished entry is not ours to write.
     * Ephemeral keeps the key on the session's lease (etcd). */
    rc = k->backend->put(k, e->q.mine.key, value, len, e->q.mine.version, COORD_PUT_EPHEMERAL, &out,
                         coord__client_timeout(e->q.c));
    if (!rc) {
        e->q.mine.version = out.version;
        pthread_mutex_lock(&e->mu);
        /* The report observers get, ours included (out of memory: the old value stays). */
        if (e->my.key && set_value(&e->my, value, len)) e->my.version = out.version;
        pthread_mutex_unlock(&e->mu);
        kick(e, false);
    }
    coord_kv_clear(&out);
    if (rc == COORD_ECONFLICT || rc == COORD_ENOTFOUND) {
        atomic_store(&e->vanished, true);
        kick(e, false);
        return coord_seterr(COORD_ENOTHELD, "%s: this handle's entry is gone or was replaced",
                            e->q.dir);
    }
    return rc;
}

int coord_election_resign(coord_election *e) {
    if (!e) return coord_seterr(COORD_EINVAL, "election is NULL");
    if (atomic_load(&e->campaigning)) { /* a waiting candidate withdraws */
        coord__queue_cancel(&e->q);
        return 0;
    }
    if (!atomic_load(&e->leading))
        return coord_seterr(COORD_ENOTHELD, "this handle neither campaigns in nor leads %s",
                            e->q.dir);
    bool led = coord__session_epoch(e->q.c) == e->q.epoch && !atomic_load(&e->vanished);
    step_down(e);
    if (!led) {
        coord_kv_clear(&e->q.mine);
        return coord_seterr(COORD_ENOTHELD, "the lead of %s was lost", e->q.dir);
    }
    /* As a lock release: tried for the operation timeout, then the client's. */
    int rc = coord__queue_leave(&e->q, coord__client_timeout(e->q.c));
    if (rc == COORD_ENOTFOUND || rc == COORD_ESESSION)
        return coord_seterr(COORD_ENOTHELD, "the entry of %s vanished", e->q.dir);
    return rc;
}

int coord_election_term(const coord_election *e, uint64_t *out) {
    if (!e || !out) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (!coord_election_is_leader(e))
        return coord_seterr(COORD_ENOTHELD, "this handle does not lead %s", e->q.dir);
    *out = e->q.mine.token;
    return 0;
}

int coord_election_leader(coord_election *e, void **value, size_t *len, uint64_t *term) {
    if (value) *value = NULL;
    if (len) *len = 0;
    if (term) *term = 0;
    if (!e) return coord_seterr(COORD_EINVAL, "election is NULL");
    coord_conn *k = conn(e);
    coord_kv head = {0};
    int rc = k->backend->queue_head(k, e->q.dir, &head, coord__client_timeout(e->q.c));
    if (rc == COORD_ENOTFOUND) return coord_seterr(COORD_ENOTFOUND, "%s has no leader", e->q.dir);
    if (rc) return rc;
    if (value) {
        *value = head.value;
        head.value = NULL;
    }
    if (len) *len = head.len;
    if (term) *term = head.token;
    coord_kv_clear(&head);
    return 0;
}

/* coord_election_leader as a job; the done gets the leader. */
typedef struct leader_arg {
    coord_election *e;
    void *value;
    size_t len;
    uint64_t term;
    coord_election_leader_fn done;
    void *payload;
} leader_arg;

static int leader_fn(void *arg) {
    leader_arg *a = arg;
    return coord_election_leader(a->e, &a->value, &a->len, &a->term);
}

static void leader_done(int rc, void *arg) {
    leader_arg *a = arg;
    a->done(rc, rc ? NULL : a->value, rc ? 0 : a->len, rc ? 0 : a->term, a->payload);
    free(a->value);
    free(a);
}

int coord_election_leader_async(coord_election *e, coord_election_leader_fn done, void *payload) {
    if (!e || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    leader_arg *a = calloc(1, sizeof *a);
    if (!a) return coord__oom();
    a->e = e;
    a->done = done;
    a->payload = payload;
    int rc = coord__handle_call(e->q.c, e, a, leader_fn, NULL, leader_done, a);
    if (rc) free(a);
    return rc;
}

void coord_election_cancel(coord_election *e) {
    if (e) coord__queue_cancel(&e->q);
}

static void coord_election_free_later(void *obj) {
    coord_election_free(obj);
}

void coord_election_free(coord_election *e) {
    if (!e) return;
    /* from its own callback (loop mode): once the callback has returned */
    if (coord__loop_defer(e->q.c, e, coord_election_free_later, e)) return;
    coord__calls_reap(e->q.c, e); /* loop mode: its resigns and proclaims in flight end first */
    coord__client_off_close(e->q.c, &e->closer);
    coord__client_unlisten(e->q.c, &e->listener);
    coord_conn *k = conn(e);
    bool closed = coord__client_closed(e->q.c); /* loop mode: the watches went with it */
    if (e->dir_watch && !closed) k->backend->unwatch(k, e->dir_watch);
    coord__loop_forget(e->q.c, e); /* the worker may wait for the loop's thread: this one */
    coord__worker_stop(&e->worker);
    coord__loop_unforget(e->q.c, e);
    if (e->head_watch && !closed) k->backend->unwatch(k, e->head_watch);
    bool led = coord_election_is_leader(e) ||
               (atomic_load(&e->leading) && coord__session_epoch(e->q.c) == e->q.epoch);
    self_free(e, e->self);
    /* One try, then the client's: free does not wait for a server. */
    if (led) coord__queue_leave(&e->q, 0);
    coord__queue_destroy(&e->q);
    coord__worker_destroy(&e->worker); /* no watch is left to kick it */
    pthread_mutex_destroy(&e->mu);
    coord_kv_clear(&e->my);
    free(e->head_key);
    free(e->rep_key);
    coord_kv_clear(&e->last);
    free(e);
}

/* ---- loop mode: resign and proclaim as jobs ---- */

static int resign_fn(void *e) {
    return coord_election_resign(e);
}

int coord_election_resign_async(coord_election *e, coord_done_fn done, void *payload) {
    if (!e) return coord_seterr(COORD_EINVAL, "election is NULL");
    return coord__handle_call(e->q.c, e, e, resign_fn, NULL, done, payload);
}

typedef struct proclaim_arg {
    coord_election *e;
    size_t len;
    unsigned char value[]; /* a copy */
} proclaim_arg;

static int proclaim_fn(void *arg) {
    proclaim_arg *p = arg;
    return coord_election_proclaim(p->e, p->value, p->len);
}

static void proclaim_release(void *arg, bool ran) {
    (void)ran;
    free(arg);
}

int coord_election_proclaim_async(coord_election *e, const void *value, size_t len,
                                  coord_done_fn done, void *payload) {
    if (!e) return coord_seterr(COORD_EINVAL, "election is NULL");
    int rc = check_value(value, len);
    if (rc) return rc;
    proclaim_arg *p = malloc(sizeof *p + len);
    if (!p) return coord__oom();
    p->e = e;
    p->len = len;
    if (len) memcpy(p->value, value, len);
    rc = coord__handle_call(e->q.c, e, p, proclaim_fn, proclaim_release, done, payload);
    if (rc) free(p);
    return rc;
}
