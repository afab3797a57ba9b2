/*
 * The election on the fake backend (no server), both flavours, where the rare paths are: a
 * leader whose client is suspended and comes back, its entry vanishing, a resign cut off by a
 * dead server (the next candidate still gets the lead, through the client's orphans), cancel,
 * faults while campaigning and while observing.
 */
#include "testing.h"
#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir_of(coord_client *c, const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/election/%s/", coord_client_prefix(c), name) < 0)
        fail_msg("out of memory");
    return p;
}

static coord_election *election(coord_client *c, const char *name,
                                const coord_election_options *o) {
    coord_election *e = NULL;
    if (coord_election_new(&e, c, name, o)) fail_msg("election_new: %s", coord_last_error());
    return e;
}

/* The latest on_leader report, and a wait for one. */
typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    bool none, mine;
    char value[64];
    uint64_t term;
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
    r->n++;
    r->none = !l;
    r->mine = l && l->mine;
    r->term = l ? l->term : 0;
    snprintf(r->value, sizeof r->value, "%.*s", l ? (int)l->len : 0,
             l ? (const char *)l->value : "");
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void await_report(recorder *r, const char *value, bool mine) {
    struct timespec dl = coord__deadline(5000);
    pthread_mutex_lock(&r->mu);
    bool ok = false;
    while (
        !(ok = r->n && (value ? !r->none && !strcmp(r->value, value) && r->mine == mine : r->none)))
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl)) break;
    bool none = r->none, m = r->mine;
    char last[64];
    snprintf(last, sizeof last, "%s", r->value);
    pthread_mutex_unlock(&r->mu);
    if (!ok)
        fail_msg("no report of %s (mine %d); last %s \"%s\" mine %d", value ? value : "none", mine,
                 none ? "none" : "leader", last, m);
}

static coord_election_options with(recorder *r) {
    coord_election_options o = COORD_ELECTION_OPTIONS_INIT;
    o.on_leader = on_leader;
    o.payload = r;
    return o;
}

/* Wait (bounded) until is_leader says `want`: it changes on a library thread. */
static void await_leading(coord_election *e, bool want) {
    struct timespec nap = {0, 2 * 1000000L};
    for (int64_t end = coord__now_ms() + 5000;
         coord_election_is_leader(e) != want && coord__now_ms() < end;)
        nanosleep(&nap, NULL);
    assert_true(coord_election_is_leader(e) == want);
}

/* SUSPENDED: the leader does not claim to lead, and says so; back with the same session and
 * the entry still first, it leads again without a new campaign. Observers report nothing while
 * suspended. */
static void suspension(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    recorder ra, rb;
    recorder_init(&ra);
    recorder_init(&rb);
    coord_election_options oa = with(&ra), ob = with(&rb);
    coord_election *ea = election(a, "s", &oa), *eb = election(b, "s", &ob);
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), 0);
    await_report(&ra, "a", true);
    await_report(&rb, "a", false);
    int seen_by_b = rb.n; /* a "none" may come first, depending on timing */
    uint64_t term;
    assert_int_equal(coord_election_term(ea, &term), 0);

    fake_suspend(a);
    assert_int_equal(fake_sync(a, 2000), 0);
    await_leading(ea, false);
    await_report(&ra, "a", false); /* the same leader, not mine */
    assert_int_equal(coord_election_term(ea, &term), COORD_ENOTHELD);
    assert_int_equal(coord_election_proclaim(ea, "x", 1), COORD_ENOTHELD);
    /* the entry stands: a second campaign would queue the handle behind itself */
    assert_int_equal(coord_election_campaign(ea, "again", 5, 0), COORD_EINVAL);
    int before = ra.n;

    fake_resume(a);
    await_leading(ea, true);
    await_report(&ra, "a", true);
    assert_true(ra.n > before);
    uint64_t again;
    assert_int_equal(coord_election_term(ea, &again), 0);
    assert_int_equal(again, term); /* the same lead, no new campaign */
    assert_int_equal(fake_sync(b, 2000), 0);
    assert_int_equal(rb.n, seen_by_b); /* the observer saw nothing change */

    /* suspended, then the session is lost: the lead never comes back, b takes over */
    fake_suspend(a);
    await_leading(ea, false);
    fake_expire(a);
    assert_int_equal(coord_election_campaign(eb, "b", 1, 0), 0);
    await_report(&rb, "b", true);
    fake_resume(a);
    assert_int_equal(fake_sync(a, 2000), 0);
    await_report(&ra, "b", false);
    assert_false(coord_election_is_leader(ea));
    assert_int_equal(coord_election_resign(ea), COORD_ENOTHELD);
    coord_election_free(eb);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* A campaign on its own thread. */
typedef struct cand {
    coord_election *e;
    const char *value;
    int timeout_ms, rc;
    pthread_t th;
} cand;

static void *campaign_main(void *arg) {
    cand *x = arg;
    x->rc = coord_election_campaign(x->e, x->value, strlen(x->value), x->timeout_ms);
    return NULL;
}

static void start(cand *x, coord_election *e, const char *value, int timeout_ms) {
    *x = (cand){.e = e, .value = value, .timeout_ms = timeout_ms, .rc = 1};
    assert_int_equal(pthread_create(&x->th, NULL, campaign_main, x), 0);
}

/* The full path of the candidate of `dir/` that is not `except` (NULL: the first). */
static char *other_entry(coord_client *c, const char *dir, const char *except) {
    coord_conn *k = fake_conn(c);
    char *d = strndup(dir, strlen(dir) - 1);
    coord_kv *kids = NULL;
    size_t n = 0;
    if (k->backend->list(k, d, COORD_LIST_NAMES, &kids, &n, NULL, 1000)) fail_msg("list");
    char *out = NULL;
    for (size_t i = 0; i < n && !out; i++) {
        char *p = NULL;
        if (asprintf(&p, "%s/%s", d, kids[i].key) < 0) fail_msg("out of memory");
        if (except && !strcmp(p, except))
            free(p);
        else
            out = p;
    }
    coord_kv_array_free(kids, n);
    free(d);
    return out;
}

/* The leader's entry is deleted by another party: the lead ends, on_leader says none; a waiting
 * candidate whose own entry vanishes does not report leadership on it. */
static void entry_vanishes(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "v");
    recorder ra;
    recorder_init(&ra);
    coord_election_options oa = with(&ra);
    coord_election *ea = election(a, "v", &oa), *eb = election(b, "v", NULL);
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), 0);
    await_report(&ra, "a", true);
    char *mine = other_entry(a, dir, NULL);
    assert_int_equal(fake_remove(mine), 0);
    free(mine);
    await_report(&ra, NULL, false);
    await_leading(ea, false);
    assert_int_equal(coord_election_proclaim(ea, "x", 1), COORD_ENOTHELD);
    assert_int_equal(coord_election_resign(ea), COORD_ENOTHELD);

    /* b waits behind a; b's own entry is deleted while it waits; a resigns: b does not lead */
    assert_int_equal(coord_election_campaign(ea, "a2", 2, 0), 0);
    char *lead = other_entry(a, dir, NULL);
    cand x;
    start(&x, eb, "b", 5000);
    assert_int_equal(fake_await_count(dir, 2, 3000), 0);
    char *theirs = other_entry(a, dir, lead);
    assert_int_equal(fake_remove(theirs), 0);
    assert_int_equal(coord_election_resign(ea), 0);
    pthread_join(x.th, NULL);
    assert_int_equal(x.rc, COORD_ESESSION);
    assert_false(coord_election_is_leader(eb));
    assert_int_equal(fake_count(dir), 0);
    free(theirs);
    free(lead);
    free(dir);
    coord_election_free(eb);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* A resign cut off by a dead server returns 0; the next candidate leads within a second of the
 * server's return, while the old leader idles. */
static void resign_cut_off(void **state) {
    char *uri;
    coord_client *a = fake_open(state, "timeout_ms=300", NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "rc");
    coord_election *ea = election(a, "rc", NULL), *eb = election(b, "rc", NULL);
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), 0);
    fake_server_down();
    assert_int_equal(coord_election_resign(ea), 0);
    assert_false(coord_election_is_leader(ea));
    assert_int_equal(fake_count(dir), 1);
    fake_server_up();
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_election_campaign(eb, "b", 1, 5000), 0);
    assert_true(coord__now_ms() - t0 < 1000);
    /* a may campaign again at once, behind b */
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), COORD_ELOCKED);
    assert_int_equal(fake_count(dir), 1);
    free(dir);
    coord_election_free(eb);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* Cancel: a running campaign gives up; one asked before the campaign starts makes it return at
 * once; nothing is left. */
static void cancel(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "c");
    coord_election *ea = election(a, "c", NULL), *eb = election(b, "c", NULL);
    coord_election_cancel(eb);
    assert_int_equal(coord_election_campaign(eb, "b", 1, 0), COORD_ECANCELED);
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), 0);
    cand x;
    start(&x, eb, "b", -1);
    assert_int_equal(fake_await_count(dir, 2, 3000), 0);
    coord_election_cancel(eb);
    pthread_join(x.th, NULL);
    assert_int_equal(x.rc, COORD_ECANCELED);
    assert_int_equal(fake_count(dir), 1);
    free(dir);
    coord_election_free(eb);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* Faults: an enqueue whose answer is lost leaves nothing once the client is done; a failure to
 * watch its own entry fails the campaign and withdraws it; an observer whose reads fail for a
 * while reports once they work. */
static void faults(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    char *dir = dir_of(a, "f");
    coord_election *ea = election(a, "f", NULL);
    fault_once(a, SLOT_LOCK_ENQUEUE, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), COORD_ETIMEDOUT);
    assert_int_equal(fake_await_count(dir, 0, 3000), 0); /* the client removed it */
    /* the watch of its own entry (armed after the campaign returns) fails once: armed again,
     * so the entry's deletion still ends the lead */
    fault_once(a, SLOT_WATCH, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), 0);
    assert_true(coord_election_is_leader(ea));
    for (int64_t end = coord__now_ms() + 3000;
         fake_calls(a, SLOT_WATCH) < 2 && coord__now_ms() < end;)
        nanosleep(&(struct timespec){0, 2 * 1000000L}, NULL);
    char *mine = other_entry(a, dir, NULL);
    assert_int_equal(fake_remove(mine), 0);
    free(mine);
    await_leading(ea, false);
    assert_int_equal(coord_election_campaign(ea, "a", 1, 0), 0);

    recorder rb;
    recorder_init(&rb);
    coord_election_options ob = with(&rb);
    coord_election *eb = election(b, "f", &ob);
    await_report(&rb, "a", false);
    fault_add(b, &(fault_rule){.slot = SLOT_QUEUE_HEAD,
                               .nth = 1,
                               .count = 3,
                               .code = COORD_EUNAVAILABLE,
                               .when = FAULT_BEFORE});
    assert_int_equal(coord_election_proclaim(ea, "a2", 2), 0);
    await_report(&rb, "a2", false); /* after three failed reads */
    char *v = NULL;
    size_t len;
    uint64_t term;
    assert_int_equal(coord_election_leader(eb, (void **)&v, &len, &term), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(v, "a2", 2);
    assert_int_equal(term, rb.term);
    free(v);
    free(dir);
    coord_election_free(eb);
    coord_election_free(ea);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        FAKE_BOTH(suspension), FAKE_BOTH(entry_vanishes), FAKE_BOTH(resign_cut_off),
        FAKE_BOTH(cancel),     FAKE_BOTH(faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
