/*
 * Conformance: leader election, one body per test run against ZooKeeper and etcd on real
 * servers: try, bound, FIFO hand-off, terms, proclaim, observers, session loss, cancel, a
 * vanished entry, bad input.
 */
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static coord_client *open_same(const char *uri) {
    coord_client *c = NULL;
    if (coord_client_open(&c, uri, NULL)) fail_msg("open %s: %s", uri, coord_last_error());
    return c;
}

static coord_election *election(coord_client *c, const char *name,
                                const coord_election_options *o) {
    coord_election *e = NULL;
    if (coord_election_new(&e, c, name, o)) fail_msg("election_new: %s", coord_last_error());
    return e;
}

/* Candidates under the election's directory, read with the raw backend. */
static size_t candidates(coord_client *c, const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/election/%s", coord_client_prefix(c), name);
    coord_conn *k = coord__client_conn(c);
    coord_kv *kids = NULL;
    size_t n = 0;
    if (k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000))
        fail_msg("list %s: %s", dir, coord_last_error());
    coord_kv_array_free(kids, n);
    return n;
}

/* The leader's value as a string (NULL when none), read through `e`. */
static char *leader_of(coord_election *e, uint64_t *term) {
    void *v = NULL;
    size_t len = 0;
    int rc = coord_election_leader(e, &v, &len, term);
    if (rc == COORD_ENOTFOUND) return NULL;
    if (rc) fail_msg("leader: %s", coord_last_error());
    char *s = strndup(v ? v : "", len);
    free(v);
    return s;
}

static void assert_leader(coord_election *e, const char *want) {
    char *v = leader_of(e, NULL);
    if (!want) {
        if (v) fail_msg("expected no leader, found \"%s\"", v);
        return;
    }
    if (!v || strcmp(v, want))
        fail_msg("expected leader \"%s\", found \"%s\"", want, v ? v : "none");
    free(v);
}

/* ---- a recorder of on_leader reports ---- */

typedef struct report {
    char value[64]; /* "" for none */
    uint64_t term;
    bool mine, none;
} report;

typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    report r[256];
    int n;
} recorder;

static void recorder_init(recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    coord__cond_init(&r->cv);
}

static void on_leader(coord_election *e, const coord_leader *l, void *payload) {
    (void)e;
    recorder *r = payload;
    pthread_mutex_lock(&r->mu);
    if (r->n < 256) {
        report *x = &r->r[r->n++];
        x->none = !l;
        if (l) {
            snprintf(x->value, sizeof x->value, "%.*s", (int)l->len, (const char *)l->value);
            x->term = l->term;
            x->mine = l->mine;
        }
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Wait until the latest report is `value` (NULL: none) with `mine`; its index, or fail. */
static int await_report(recorder *r, const char *value, bool mine) {
    struct timespec dl = coord__deadline(10000);
    pthread_mutex_lock(&r->mu);
    int found = -1;
    while (found < 0) {
        if (r->n) {
            report *x = &r->r[r->n - 1];
            if (value ? (!x->none && !strcmp(x->value, value) && x->mine == mine) : x->none)
                found = r->n - 1;
        }
        if (found < 0 && pthread_cond_timedwait(&r->cv, &r->mu, &dl)) break;
    }
    int n = r->n;
    report last = n ? r->r[n - 1] : (report){.none = true};
    pthread_mutex_unlock(&r->mu);
    if (found < 0)
        fail_msg("no report of %s (mine %d) within 10 s; last: %s \"%s\" mine %d (%d reports)",
                 value ? value : "none", mine, last.none ? "none" : "leader", last.value, last.mine,
                 n);
    return found;
}

/* ---- tests ---- */

static void basics(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri);
    coord_election *ea = election(a, "basics", NULL), *eb = election(b, "basics", NULL);
    assert_int_equal(coord_election_leader(eb, NULL, NULL, NULL), COORD_ENOTFOUND);
    assert_false(coord_election_is_leader(ea));
    uint64_t t;
    assert_int_equal(coord_election_term(ea, &t), COORD_ENOTHELD);
    assert_int_equal(coord_election_proclaim(ea, "x", 1), COORD_ENOTHELD);
    assert_int_equal(coord_election_resign(ea), COORD_ENOTHELD);

    assert_int_equal(coord_election_campaign(ea, "a1", 2, 0), 0);
    assert_true(coord_election_is_leader(ea));
    assert_int_equal(coord_election_campaign(ea, "again", 5, 0), COORD_EINVAL);
    assert_int_equal(coord_election_term(ea, &t), 0);
    assert_true(t > 0);
    uint64_t seen;
    char *v = leader_of(eb, &seen);
    assert_string_equal(v, "a1");
    free(v);
    assert_int_equal(seen, t);
    assert_int_equal(candidates(a, "basics"), 1);

    /* a new value for every observer, the same term */
    assert_int_equal(coord_election_proclaim(ea, "a2", 2), 0);
    v = leader_of(eb, &seen);
    assert_string_equal(v, "a2");
    free(v);
    assert_int_equal(seen, t);
    assert_int_equal(coord_election_proclaim(eb, "b", 1), COORD_ENOTHELD);

    assert_int_equal(coord_election_resign(ea), 0);
    assert_false(coord_election_is_leader(ea));
    assert_leader(eb, NULL);
    assert_int_equal(candidates(a, "basics"), 0);
    assert_int_equal(coord_election_resign(ea), COORD_ENOTHELD);

    /* the next leader's term is higher */
    assert_int_equal(coord_election_campaign(eb, "b1", 2, 0), 0);
    uint64_t t2;
    assert_int_equal(coord_election_term(eb, &t2), 0);
    assert_true(t2 > t);
    coord_election_free(eb); /* resigns */
    assert_leader(ea, NULL);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

static void try_and_timeout(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri);
    coord_election *ea = election(a, "tt", NULL), *eb = election(b, "tt", NULL);
    assert_int_equal(coord_election_campaign(ea, "a", 1, -1), 0);
    assert_int_equal(coord_election_campaign(eb, "b", 1, 0), COORD_ELOCKED);
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_election_campaign(eb, "b", 1, 300), COORD_ETIMEDOUT);
    assert_true(coord__now_ms() - t0 >= 290);
    assert_false(coord_election_is_leader(eb));
    assert_int_equal(candidates(a, "tt"), 1); /* nothing left behind */
    assert_leader(eb, "a");
    coord_election_free(eb);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* ---- FIFO hand-off: three candidates, each waiting in a thread ---- */

typedef struct cand {
    coord_election *e;
    const char *value;
    int rc; /* 1 while waiting */
    pthread_t th;
} cand;

static void *campaign_main(void *arg) {
    cand *x = arg;
    x->rc = coord_election_campaign(x->e, x->value, strlen(x->value), 20000);
    return NULL;
}

static void fifo_handoff(void **state) {
    char *uri;
    coord_client *c[4];
    c[0] = coord_test_open(state, NULL, NULL, &uri);
    for (int i = 1; i < 4; i++)
        c[i] = open_same(uri);
    recorder rec;
    recorder_init(&rec);
    coord_election_options o = COORD_ELECTION_OPTIONS_INIT;
    o.on_leader = on_leader;
    o.payload = &rec;
    coord_election *obs = election(c[3], "fifo", &o); /* observes only */
    await_report(&rec, NULL, false);
    cand x[3] = {{.value = "c0"}, {.value = "c1"}, {.value = "c2"}};
    for (int i = 0; i < 3; i++)
        x[i].e = election(c[i], "fifo", NULL);
    assert_int_equal(coord_election_campaign(x[0].e, "c0", 2, 0), 0);
    await_report(&rec, "c0", false);
    for (int i = 1; i < 3; i++) {
        x[i].rc = 1;
        pthread_create(&x[i].th, NULL, campaign_main, &x[i]);
        /* campaign order: wait until this candidate is queued before starting the next */
        int64_t end = coord__now_ms() + 10000;
        while (candidates(c[0], "fifo") != (size_t)i + 1 && coord__now_ms() < end) {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
        }
        assert_int_equal(candidates(c[0], "fifo"), i + 1);
    }
    uint64_t terms[3];
    assert_int_equal(coord_election_term(x[0].e, &terms[0]), 0);
    uint64_t wakeups = coord__lock_wakeups();
    for (int i = 1; i < 3; i++) {
        assert_int_equal(coord_election_resign(x[i - 1].e), 0);
        pthread_join(x[i].th, NULL);
        assert_int_equal(x[i].rc, 0);
        assert_true(coord_election_is_leader(x[i].e));
        if (i == 1) assert_int_equal(x[2].rc, 1); /* still waiting: only the next woke */
        assert_int_equal(coord_election_term(x[i].e, &terms[i]), 0);
        assert_true(terms[i] > terms[i - 1]);
        assert_int_equal(coord__lock_wakeups(), wakeups + (uint64_t)i); /* no herd */
        await_report(&rec, x[i].value, false);
    }
    assert_int_equal(coord_election_resign(x[2].e), 0);
    await_report(&rec, NULL, false);
    coord_election_free(obs);
    for (int i = 0; i < 3; i++)
        coord_election_free(x[i].e);
    for (int i = 0; i < 4; i++)
        coord_client_close(c[i]);
    free(uri);
}

/* A candidate's own on_leader: mine while it leads, proclaims reach observers. */
static void observer_reports(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri);
    recorder ra, rb;
    recorder_init(&ra);
    recorder_init(&rb);
    coord_election_options oa = COORD_ELECTION_OPTIONS_INIT, ob = COORD_ELECTION_OPTIONS_INIT;
    oa.on_leader = ob.on_leader = on_leader;
    oa.payload = &ra;
    ob.payload = &rb;
    coord_election *ea = election(a, "obs", &oa), *eb = election(b, "obs", &ob);
    await_report(&ra, NULL, false);
    await_report(&rb, NULL, false);
    assert_int_equal(coord_election_campaign(ea, "v1", 2, 0), 0);
    await_report(&ra, "v1", true);
    await_report(&rb, "v1", false);
    assert_int_equal(coord_election_proclaim(ea, "v2", 2), 0);
    await_report(&ra, "v2", true);
    int i = await_report(&rb, "v2", false);
    assert_int_equal(rb.r[i].term, rb.r[i - 1].term); /* a proclaim keeps the term */
    assert_int_equal(coord_election_resign(ea), 0);
    await_report(&ra, NULL, false);
    await_report(&rb, NULL, false);
    coord_election_free(eb);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* The leader's session ends: the next candidate leads, the old one knows it does not. */
static void session_loss(void **state) {
    char *uri;
    coord_test_states rec;
    coord_client *a = coord_test_open(state, "session_ttl_ms=3000", &rec, &uri);
    coord_client *b = open_same(uri);
    coord_election *ea = election(a, "sl", NULL);
    cand xb = {.e = election(b, "sl", NULL), .value = "b", .rc = 1};
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), 0);
    pthread_create(&xb.th, NULL, campaign_main, &xb);
    int64_t end = coord__now_ms() + 10000;
    while (candidates(a, "sl") != 2 && coord__now_ms() < end) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    coord_conn *k = coord__client_conn(a);
    assert_int_equal(k->backend->expire(k), 0);
    pthread_join(xb.th, NULL);
    assert_int_equal(xb.rc, 0);
    assert_true(coord_election_is_leader(xb.e));
    int lost = coord_test_states_wait(&rec, COORD_SESSION_LOST, 0, 10000);
    assert_true(lost >= 0);
    assert_false(coord_election_is_leader(ea));
    uint64_t t;
    assert_int_equal(coord_election_term(ea, &t), COORD_ENOTHELD);
    assert_int_equal(coord_election_resign(ea), COORD_ENOTHELD);
    /* reads through a wait for its new session (before it they get COORD_ESESSION) */
    assert_true(coord_test_states_wait(&rec, COORD_SESSION_CONNECTED, lost + 1, 15000) > lost);
    assert_leader(ea, "b");
    coord_election_free(xb.e);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

static void cancel_wait(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri);
    coord_election *ea = election(a, "cw", NULL);
    cand xb = {.e = election(b, "cw", NULL), .value = "b", .rc = 1};
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), 0);
    pthread_create(&xb.th, NULL, campaign_main, &xb);
    int64_t end = coord__now_ms() + 10000;
    while (candidates(a, "cw") != 2 && coord__now_ms() < end) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    coord_election_cancel(xb.e);
    pthread_join(xb.th, NULL);
    assert_int_equal(xb.rc, COORD_ECANCELED);
    assert_int_equal(candidates(a, "cw"), 1);
    /* a waiting candidate may also withdraw with resign */
    xb.rc = 1;
    pthread_create(&xb.th, NULL, campaign_main, &xb);
    end = coord__now_ms() + 10000;
    while (candidates(a, "cw") != 2 && coord__now_ms() < end) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(coord_election_resign(xb.e), 0);
    pthread_join(xb.th, NULL);
    assert_int_equal(xb.rc, COORD_ECANCELED);
    assert_int_equal(candidates(a, "cw"), 1);
    coord_election_free(xb.e);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* An operator deletes the leader's entry: it stops leading at once and says so. */
static void entry_vanishes(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    recorder ra;
    recorder_init(&ra);
    coord_election_options o = COORD_ELECTION_OPTIONS_INIT;
    o.on_leader = on_leader;
    o.payload = &ra;
    coord_election *ea = election(a, "gone", &o);
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), 0);
    await_report(&ra, "a", true);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/election/gone", coord_client_prefix(a));
    coord_conn *k = coord__client_conn(a);
    coord_kv *kids = NULL;
    size_t n = 0;
    assert_int_equal(k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000), 0);
    assert_int_equal(n, 1);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, kids[0].key);
    coord_kv_array_free(kids, n);
    assert_int_equal(k->backend->del(k, path, COORD_VERSION_ANY, 3000), 0);
    await_report(&ra, NULL, false);
    int64_t end = coord__now_ms() + 5000;
    while (coord_election_is_leader(ea) && coord__now_ms() < end) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_false(coord_election_is_leader(ea));
    assert_int_equal(coord_election_proclaim(ea, "x", 1), COORD_ENOTHELD);
    /* it may campaign again */
    assert_int_equal(coord_election_campaign(ea, "a2", 2, 0), 0);
    await_report(&ra, "a2", true);
    coord_election_free(ea);
    coord_client_close(a);
    free(uri);
}

static void bad_input(void **state) {
    coord_client *a = coord_test_open(state, NULL, NULL, NULL);
    coord_election *e = NULL;
    for (const char *const *n = coord_test_bad_names; *n; n++)
        assert_int_equal(coord_election_new(&e, a, *n, NULL), COORD_EINVAL);
    assert_int_equal(coord_election_new(NULL, a, "x", NULL), COORD_EINVAL);
    assert_int_equal(coord_election_new(&e, NULL, "x", NULL), COORD_EINVAL);
    coord_election_options o = COORD_ELECTION_OPTIONS_INIT;
    o.version = 99;
    assert_int_equal(coord_election_new(&e, a, "x", &o), COORD_EINVAL);
    e = election(a, "bad", NULL);
    size_t big = COORD_VALUE_MAX + 1;
    char *v = calloc(1, big);
    assert_int_equal(coord_election_campaign(e, v, big, 0), COORD_EINVAL);
    assert_int_equal(coord_election_campaign(e, NULL, 3, 0), COORD_EINVAL);
    assert_int_equal(candidates(a, "bad"), 0);
    /* the largest value is fine */
    assert_int_equal(coord_election_campaign(e, v, COORD_VALUE_MAX, 0), 0);
    assert_int_equal(coord_election_proclaim(e, v, big), COORD_EINVAL);
    free(v);
    coord_election_free(e);
    coord_election_free(NULL);
    coord_election_cancel(NULL);
    assert_false(coord_election_is_leader(NULL));
    coord_client_close(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COORD_CONFORMANCE(basics),         COORD_CONFORMANCE(try_and_timeout),
        COORD_CONFORMANCE(fifo_handoff),   COORD_CONFORMANCE(observer_reports),
        COORD_CONFORMANCE(session_loss),   COORD_CONFORMANCE(cancel_wait),
        COORD_CONFORMANCE(entry_vanishes), COORD_CONFORMANCE(bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
