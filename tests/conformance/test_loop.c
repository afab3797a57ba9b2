/*
 * Loop mode on both backends (one body, real servers; and on the fake backend with faults, as
 * test_loop_fake): every done runs once, inside coord_client_process on the loop's thread, with
 * the code its blocking call would return; waits hold no thread (1,000 acquires in flight on one
 * client under 10 threads, served in FIFO order); cancel, close and the session's loss end what
 * is in flight with COORD_ECANCELED / COORD_ESESSION.
 */
#include "dual.h"

#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_t loop_thread;
static int outside; /* callbacks seen outside process or on another thread */

static void check_thread(coord_client *c) {
    if (!pthread_equal(pthread_self(), loop_thread) || !coord__loop_inside(c)) outside++;
}

/* Session states of the loop client, counted inside process. */
static int lost_seen, reconnected;

static void on_session(coord_client *c, coord_session_state st, void *payload) {
    (void)payload;
    check_thread(c);
    if (st == COORD_SESSION_LOST) lost_seen++;
    if (st == COORD_SESSION_CONNECTED && lost_seen) reconnected++;
}

static coord_client *open_loop_uri(void **state, const char *params, char **uri_out) {
#ifdef COORD_TEST_FAKE
    char *uri = NULL;
    coord_client_close(fake_open(state, params, NULL, &uri)); /* a fresh prefix */
#else
    char *uri = coord_test_uri(state, 0, params);
#endif
    coord_options o = COORD_OPTIONS_INIT;
    o.loop = true;
    o.on_session = on_session;
    lost_seen = reconnected = 0;
    coord_client *c = NULL;
    int rc = coord_client_open(&c, uri, &o);
    if (rc) fail_msg("open %s: %s", uri, coord_last_error());
    if (uri_out)
        *uri_out = uri;
    else
        free(uri);
    loop_thread = pthread_self();
    outside = 0;
    return c;
}

static coord_client *open_loop(void **state, const char *params) {
    return open_loop_uri(state, params, NULL);
}

/* Run the loop (poll on the client's fd, as an application does) until *flag reaches `want`;
 * false after `ms`. */
static bool run_until(coord_client *c, const int *flag, int want, int ms) {
    int64_t end = coord__now_ms() + ms;
    while (*flag < want) {
        int64_t left = end - coord__now_ms();
        if (left <= 0) return false;
        struct pollfd p = {.fd = coord_client_fd(c), .events = POLLIN};
        int t = coord_client_timeout(c);
        if (t < 0 || t > left) t = (int)left;
        poll(&p, 1, t);
        if (coord_client_process(c) < 0) fail_msg("process: %s", coord_last_error());
    }
    return true;
}

/* A done that records its code and order. */
typedef struct rec {
    coord_client *c;
    int rc, calls, order;
    int *seq;
    char why[160]; /* coord_last_error() inside the done */
} rec;

static void on_done(int rc, void *payload) {
    rec *r = payload;
    check_thread(r->c);
    if (rc) snprintf(r->why, sizeof r->why, "%s", coord_last_error());
    r->rc = rc;
    r->calls++;
    r->order = ++*r->seq;
}

static void not_loop_mode(void **state) {
    coord_client *c = OPEN(state, NULL, NULL);
    coord_lock *l;
    assert_int_equal(coord_lock_new(&l, c, "nl"), 0);
    int seq = 0;
    rec r = {c, 0, 0, 0, &seq};
    assert_int_equal(coord_lock_acquire_async(l, -1, on_done, &r), COORD_EINVAL);
    assert_int_equal(coord_client_fd(c), -1);
    assert_int_equal(coord_client_process(c), COORD_EINVAL);
    coord_lock_free(l);
    coord_client_close(c);
    assert_int_equal(r.calls, 0);
}

static void lock_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    int fd = coord_client_fd(c);
    assert_true(fd >= 0);
    coord_lock *h, *w[4];
    assert_int_equal(coord_lock_new(&h, c, "la"), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(coord_lock_new(&w[i], c, "la"), 0);
    int seq = 0, got = 0;
    rec rh = {c, -99, 0, 0, &seq}, rw[4];
    assert_int_equal(coord_lock_acquire_async(h, 5000, on_done, &rh), 0);
    /* a second wait on the same handle is refused, the first goes on */
    rec dup = {c, -99, 0, 0, &seq};
    assert_int_equal(coord_lock_acquire_async(h, 5000, on_done, &dup), COORD_EINVAL);
    assert_true(run_until(c, &rh.calls, 1, 10000));
    assert_int_equal(rh.rc, 0);
    assert_true(coord_lock_held(h));
    assert_int_equal(coord_client_fd(c), fd);
    /* a try that would wait, and a bounded wait that expires */
    rec rt = {c, -99, 0, 0, &seq};
    assert_int_equal(coord_lock_acquire_async(w[0], 0, on_done, &rt), 0);
    assert_true(run_until(c, &rt.calls, 1, 10000));
    assert_int_equal(rt.rc, COORD_ELOCKED);
    assert_int_equal(coord_lock_acquire_async(w[0], 300, on_done, &rt), 0);
    assert_true(run_until(c, &rt.calls, 2, 10000));
    assert_int_equal(rt.rc, COORD_ETIMEDOUT);
    /* four waiters in order, the third canceled */
    for (int i = 0; i < 4; i++) {
        rw[i] = (rec){c, -99, 0, 0, &seq};
        assert_int_equal(coord_lock_acquire_async(w[i], -1, on_done, &rw[i]), 0);
        /* each enqueued before the next: FIFO is the order of arrival at the server */
        int64_t end = coord__now_ms() + 5000;
        while (!coord__lock_waiting(w[i]) && coord__now_ms() < end)
            run_until(c, &got, 1, 5);
    }
    coord_lock_cancel(w[2]);
    assert_true(run_until(c, &rw[2].calls, 1, 10000));
    assert_int_equal(rw[2].rc, COORD_ECANCELED);
    int base = seq;
    rec rel = {c, -99, 0, 0, &seq};
    assert_int_equal(coord_lock_release_async(h, on_done, &rel), 0);
    assert_false(coord_lock_held(h));
    int order[] = {0, 1, 3};
    for (int j = 0; j < 3; j++) {
        int i = order[j];
        assert_true(run_until(c, &rw[i].calls, 1, 10000));
        assert_int_equal(rw[i].rc, 0);
        assert_true(coord_lock_held(w[i]));
        for (int o = 0; o < 4; o++)
            if (o != i && o != 2) assert_false(coord_lock_held(w[o]));
        rec r2 = {c, -99, 0, 0, &seq};
        assert_int_equal(coord_lock_release_async(w[i], on_done, &r2), 0);
        assert_true(run_until(c, &r2.calls, 1, 10000));
        assert_int_equal(r2.rc, 0);
    }
    /* the release's own done may come after the hand-offs it caused */
    assert_true(run_until(c, &rel.calls, 1, 10000));
    assert_int_equal(rel.rc, 0);
    assert_true(rw[0].order > base && rw[0].order < rw[1].order && rw[1].order < rw[3].order);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rw[i].calls, 1);
    assert_int_equal(rh.calls, 1);
    assert_int_equal(dup.calls, 0);
    assert_int_equal(outside, 0);
    for (int i = 0; i < 4; i++)
        coord_lock_free(w[i]);
    coord_lock_free(h);
    coord_client_close(c);
}

typedef struct adds {
    coord_client *c;
    int calls, bad;
    int64_t last;
} adds;

static void on_add(int rc, int64_t value, void *payload) {
    adds *a = payload;
    check_thread(a->c);
    if (rc || value != a->last + 1) a->bad++;
    a->last = value;
    a->calls++;
}

static void counter_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "ca", NULL), 0);
    adds a = {c, 0, 0, 0};
    /* 200 adds in flight at once: every done once, in order, each with the value after it */
    for (int i = 0; i < 200; i++)
        assert_int_equal(coord_counter_add_async(k, 1, on_add, &a), 0);
    assert_true(run_until(c, &a.calls, 200, 20000));
    assert_int_equal(a.bad, 0);
    assert_int_equal(a.last, 200);
    int64_t v = 0;
    assert_int_equal(coord_counter_get(k, &v), 0);
    assert_int_equal(v, 200);
    assert_int_equal(outside, 0);
    assert_int_equal(coord_counter_add_async(k, 1, NULL, &a), COORD_EINVAL);
    coord_counter_free(k);
    coord_client_close(c);
}

static void on_cancel_add(int rc, int64_t value, void *payload) {
    (void)value;
    rec *r = payload;
    check_thread(r->c);
    r->rc = rc;
    r->calls++;
}

/* Close with a wait, a release of unknown fate and adds in flight: each done runs once before
 * close returns, the waits' with COORD_ECANCELED; the handles may then only be freed. */
static void close_pending(void **state) {
    char *uri;
    coord_client *c = open_loop_uri(state, NULL, &uri);
    coord_client *other = NULL;
    assert_int_equal(coord_client_open(&other, uri, NULL), 0);
    free(uri);
    coord_lock *held, *l;
    assert_int_equal(coord_lock_new(&held, other, "cp"), 0);
    assert_int_equal(coord_lock_acquire(held, 5000), 0);
    assert_int_equal(coord_lock_new(&l, c, "cp"), 0);
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "cp", NULL), 0);
    int seq = 0;
    rec rl = {c, -99, 0, 0, &seq}, ra[8];
    assert_int_equal(coord_lock_acquire_async(l, -1, on_done, &rl), 0);
    for (int i = 0; i < 8; i++) {
        ra[i] = (rec){c, -99, 0, 0, &seq};
        assert_int_equal(coord_counter_add_async(k, 1, on_cancel_add, &ra[i]), 0);
    }
    int64_t end = coord__now_ms() + 5000;
    int got = 0;
    while (!coord__lock_waiting(l) && coord__now_ms() < end)
        run_until(c, &got, 1, 5);
    assert_true(coord__lock_waiting(l));
    coord_client_close(c);
    assert_int_equal(rl.calls, 1);
    assert_int_equal(rl.rc, COORD_ECANCELED);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(ra[i].calls, 1);
        assert_true(ra[i].rc == 0 || ra[i].rc == COORD_ECANCELED);
    }
    assert_int_equal(outside, 0);
    coord_lock_free(l);
    coord_counter_free(k);
    /* the closed client's contender went with its session: the holder's release hands over to
     * nobody, and a new handle gets the lock at once */
    assert_int_equal(coord_lock_release(held), 0);
    assert_int_equal(coord_lock_acquire(held, 0), 0);
    assert_int_equal(coord_lock_release(held), 0);
    coord_lock_free(held);
    coord_client_close(other);
}

/* A handle freed with its wait in flight: its done runs during the free (ECANCELED) and the
 * contender is withdrawn. */
static void free_pending(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_lock *h, *l;
    assert_int_equal(coord_lock_new(&h, c, "fp"), 0);
    assert_int_equal(coord_lock_new(&l, c, "fp"), 0);
    assert_int_equal(coord_lock_acquire(h, 5000), 0);
    int seq = 0, got = 0;
    rec rl = {c, -99, 0, 0, &seq};
    assert_int_equal(coord_lock_acquire_async(l, -1, on_done, &rl), 0);
    int64_t end = coord__now_ms() + 5000;
    while (!coord__lock_waiting(l) && coord__now_ms() < end)
        run_until(c, &got, 1, 5);
    coord_lock_free(l);
    assert_int_equal(rl.calls, 1);
    assert_int_equal(rl.rc, COORD_ECANCELED);
    assert_int_equal(coord_lock_release(h), 0);
    assert_int_equal(coord_lock_acquire(h, 0), 0); /* nobody left in the queue */
    assert_int_equal(coord_lock_release(h), 0);
    coord_lock_free(h);
    coord_client_close(c);
}

/* A release whose delete is in flight when its handle is freed, or its client closed: its done
 * runs once, during the free or the close, and the entry is gone (another client gets the
 * lock: a stranded entry of the live client would hold it for good). */
static void release_in_flight(void **state) {
    char *uri;
    coord_client *c = open_loop_uri(state, NULL, &uri);
    coord_client *other = OPEN_URI(uri);
    free(uri);
    coord_lock *o;
    assert_int_equal(coord_lock_new(&o, other, "rf"), 0);
    int seq = 0;
    for (int round = 0; round < 2; round++) {
        coord_lock *l;
        assert_int_equal(coord_lock_new(&l, c, "rf"), 0);
        rec ra = {c, -99, 0, 0, &seq}, rr = {c, -99, 0, 0, &seq};
        assert_int_equal(coord_lock_acquire_async(l, 5000, on_done, &ra), 0);
        assert_true(run_until(c, &ra.calls, 1, 10000));
        assert_int_equal(ra.rc, 0);
        assert_int_equal(coord_lock_release_async(l, on_done, &rr), 0);
        if (round == 0)
            coord_lock_free(l); /* the done runs during the free */
        else
            coord_client_close(c);
        assert_int_equal(rr.calls, 1);
        if (rr.rc != 0 && rr.rc != COORD_ECANCELED)
            fail_msg("release: %s (%s)", coord_err_name(rr.rc), rr.why);
        assert_int_equal(coord_lock_acquire(o, 10000), 0);
        assert_int_equal(coord_lock_release(o), 0);
        if (round == 1) coord_lock_free(l);
    }
    coord_lock_free(o);
    coord_client_close(other);
}

#ifdef COORD_TEST_FAKE
/* A release whose delete's answer is lost, or whose delete never reached the server, succeeds:
 * the client's orphans remove the entry. One whose session ended says COORD_ENOTHELD. */
static void release_faults(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_lock *l;
    assert_int_equal(coord_lock_new(&l, c, "rx"), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/lock/rx/", coord_client_prefix(c));
    int seq = 0;
    const int codes[] = {COORD_EUNAVAILABLE, COORD_ETIMEDOUT, COORD_ESESSION};
    const fault_when whens[] = {FAULT_AFTER, FAULT_BEFORE, FAULT_BEFORE};
    for (int i = 0; i < 3; i++) {
        rec ra = {c, -99, 0, 0, &seq}, rr = {c, -99, 0, 0, &seq};
        assert_int_equal(coord_lock_acquire_async(l, 5000, on_done, &ra), 0);
        assert_true(run_until(c, &ra.calls, 1, 10000));
        assert_int_equal(ra.rc, 0);
        assert_int_equal(fake_count(dir), 1);
        int id = fault_once(c, SLOT_DEL, 1, codes[i], whens[i]);
        assert_int_equal(coord_lock_release_async(l, on_done, &rr), 0);
        assert_true(run_until(c, &rr.calls, 1, 10000));
        assert_int_equal(fault_hits(id), 1);
        if (codes[i] == COORD_ESESSION) {
            assert_int_equal(rr.rc, COORD_ENOTHELD); /* (the fault's: the entry stays) */
        } else {
            if (rr.rc) fail_msg("release: %s (%s)", coord_err_name(rr.rc), rr.why);
            assert_int_equal(fake_await_count(dir, 0, 5000), 0);
            assert_int_equal(coord__orphan_count_within(c, 5000), 0);
        }
    }
    assert_int_equal(outside, 0);
    coord_lock_free(l);
    coord_client_close(c);
}
#endif

static int leader_reports;

static void on_leader(coord_election *e, const coord_leader *l, void *payload) {
    (void)e, (void)l;
    check_thread(payload);
    leader_reports++;
}

/* An observer's reports and a campaign behind a leader, all inside process. */
static void election_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_election_options o = COORD_ELECTION_OPTIONS_INIT;
    o.on_leader = on_leader;
    o.payload = c;
    coord_election *e1, *e2;
    leader_reports = 0;
    assert_int_equal(coord_election_new(&e1, c, "ea", &o), 0);
    assert_int_equal(coord_election_new(&e2, c, "ea", NULL), 0);
    int seq = 0;
    rec r1 = {c, -99, 0, 0, &seq}, r2 = {c, -99, 0, 0, &seq};
    assert_int_equal(coord_election_campaign_async(e1, "one", 3, 5000, on_done, &r1), 0);
    assert_int_equal(coord_election_campaign_async(e1, "one", 3, 5000, on_done, &r1), COORD_EINVAL);
    assert_true(run_until(c, &r1.calls, 1, 10000));
    assert_int_equal(r1.rc, 0);
    assert_true(coord_election_is_leader(e1));
    assert_int_equal(coord_election_campaign_async(e2, "two", 3, 0, on_done, &r2), 0);
    assert_true(run_until(c, &r2.calls, 1, 10000));
    assert_int_equal(r2.rc, COORD_ELOCKED);
    assert_int_equal(coord_election_campaign_async(e2, "two", 3, -1, on_done, &r2), 0);
    assert_true(run_until(c, &leader_reports, 1, 10000)); /* the observer saw "one" lead */
    int before = leader_reports;
    assert_int_equal(coord_election_resign(e1), 0);
    assert_true(run_until(c, &r2.calls, 2, 10000));
    assert_int_equal(r2.rc, 0);
    assert_true(coord_election_is_leader(e2));
    assert_true(run_until(c, &leader_reports, before + 1, 10000)); /* and the change after it */
    /* the leader proclaims a new value (the observer hears of it), then resigns */
    before = leader_reports;
    rec rp = {c, -99, 0, 0, &seq, ""};
    assert_int_equal(coord_election_proclaim_async(e2, "two-b", 5, on_done, &rp), 0);
    assert_true(run_until(c, &rp.calls, 1, 10000));
    assert_int_equal(rp.rc, 0);
    assert_true(run_until(c, &leader_reports, before + 1, 10000));
    assert_int_equal(coord_election_resign_async(e2, on_done, &rp), 0);
    assert_true(run_until(c, &rp.calls, 2, 10000));
    assert_int_equal(rp.rc, 0);
    assert_false(coord_election_is_leader(e2));
    assert_int_equal(outside, 0);
    coord_election_free(e1);
    coord_election_free(e2);
    coord_client_close(c);
}

static int ring_changes;

static void on_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r, (void)ch;
    check_thread(payload);
    ring_changes++;
}

static void ring_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    o.on_change = on_change;
    o.payload = c;
    coord_ring *r;
    ring_changes = 0;
    assert_int_equal(coord_ring_new(&r, c, "ra", &o), 0);
    int seq = 0;
    rec rj = {c, -99, 0, 0, &seq};
    assert_int_equal(coord_ring_join_async(r, "m1", "d", 1, 1, on_done, &rj), 0);
    assert_int_equal(coord_ring_join_async(r, "bad/name", "d", 1, 1, on_done, &rj), COORD_EINVAL);
    assert_true(run_until(c, &rj.calls, 1, 10000));
    assert_int_equal(rj.rc, 0);
    assert_true(run_until(c, &ring_changes, 1, 10000));
    assert_true(coord_test_ring_has(r, "m1"));
    assert_int_equal(coord_ring_leave_async(r, on_done, &rj), 0);
    assert_true(run_until(c, &rj.calls, 2, 10000));
    assert_int_equal(rj.rc, 0);
    assert_true(run_until(c, &ring_changes, 2, 10000)); /* its own leave, reported */
    assert_false(coord_test_ring_has(r, "m1"));
    assert_int_equal(outside, 0);
    coord_ring_free(r);
    coord_client_close(c);
}

typedef struct took {
    coord_client *c;
    int rc, calls;
    char data[16];
} took;

static void on_take(int rc, void *data, size_t len, void *payload) {
    took *t = payload;
    check_thread(t->c);
    t->rc = rc;
    t->calls++;
    snprintf(t->data, sizeof t->data, "%.*s", (int)len, data ? (char *)data : "");
    free(data);
}

static void queue_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_queue *q;
    assert_int_equal(coord_queue_new(&q, c, "qa"), 0);
    took t = {c, -99, 0, ""};
    assert_int_equal(coord_queue_take_async(q, 0, on_take, &t), 0);
    assert_true(run_until(c, &t.calls, 1, 10000));
    assert_int_equal(t.rc, COORD_ENOTFOUND);
    assert_int_equal(coord_queue_take_async(q, 300, on_take, &t), 0);
    assert_true(run_until(c, &t.calls, 2, 10000));
    assert_int_equal(t.rc, COORD_ETIMEDOUT);
    assert_int_equal(coord_queue_take_async(q, -1, on_take, &t), 0);
    assert_int_equal(coord_queue_take_async(q, -1, on_take, &t), COORD_EINVAL);
    int got = 0;
    run_until(c, &got, 1, 200); /* the take waits */
    assert_int_equal(t.calls, 2);
    assert_int_equal(coord_queue_put(q, "job", 3), 0);
    assert_true(run_until(c, &t.calls, 3, 10000));
    assert_int_equal(t.rc, 0);
    assert_string_equal(t.data, "job");
    assert_int_equal(coord_queue_take_async(q, -1, on_take, &t), 0);
    coord_queue_cancel(q);
    assert_true(run_until(c, &t.calls, 4, 10000));
    assert_int_equal(t.rc, COORD_ECANCELED);
    assert_int_equal(outside, 0);
    coord_queue_free(q);
    coord_client_close(c);
}

/* The reads' dones: a counter's value, a queue's size, an election's leader. */
typedef struct read_rec {
    coord_client *c;
    int rc, calls;
    int64_t value;
    uint64_t term;
    char data[16];
} read_rec;

static void on_count(int rc, int64_t value, void *payload) {
    read_rec *r = payload;
    check_thread(r->c);
    r->rc = rc;
    r->value = value;
    r->calls++;
}

static void on_size(int rc, size_t size, void *payload) {
    on_count(rc, (int64_t)size, payload);
}

static void on_leader_read(int rc, const void *value, size_t len, uint64_t term, void *payload) {
    read_rec *r = payload;
    on_count(rc, (int64_t)len, payload);
    r->term = term;
    snprintf(r->data, sizeof r->data, "%.*s", (int)len, value ? (const char *)value : "");
}

/* The reads that take a round trip, without blocking: a counter's get (beside adds in flight,
 * plain and sharded), a queue's size, an election's leader; and a free with one in flight. */
static void reads_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    read_rec r = {c, -99, 0, -1, 0, ""};
    /* counters: an absent one reads 0; a get beside 50 adds in flight reads what was written */
    coord_counter_options so = COORD_COUNTER_OPTIONS_INIT;
    so.shards = 4;
    coord_counter *k[2];
    assert_int_equal(coord_counter_new(&k[0], c, "ra", NULL), 0);
    assert_int_equal(coord_counter_new(&k[1], c, "ra-sharded", &so), 0);
    for (int i = 0; i < 2; i++) {
        int calls = r.calls;
        assert_int_equal(coord_counter_get_async(k[i], on_count, &r), 0);
        assert_true(run_until(c, &r.calls, calls + 1, 10000));
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.value, 0);
        adds a = {c, 0, 0, 0};
        for (int j = 0; j < 50; j++) {
            assert_int_equal(coord_counter_add_async(k[i], 1, on_add, &a), 0);
            if (j == 25) assert_int_equal(coord_counter_get_async(k[i], on_count, &r), 0);
        }
        assert_true(run_until(c, &a.calls, 50, 20000));
        assert_true(run_until(c, &r.calls, calls + 2, 10000));
        assert_int_equal(r.rc, 0);
        assert_true(r.value >= 0 && r.value <= 50);
        assert_int_equal(a.bad, 0);
        assert_int_equal(coord_counter_get_async(k[i], on_count, &r), 0);
        assert_true(run_until(c, &r.calls, calls + 3, 10000));
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.value, 50);
    }
    /* a queue's size */
    coord_queue *q;
    assert_int_equal(coord_queue_new(&q, c, "ra"), 0);
    int calls = r.calls;
    assert_int_equal(coord_queue_size_async(q, on_size, &r), 0);
    assert_true(run_until(c, &r.calls, calls + 1, 10000));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.value, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(coord_queue_put(q, "job", 3), 0);
    assert_int_equal(coord_queue_size_async(q, on_size, &r), 0);
    assert_true(run_until(c, &r.calls, calls + 2, 10000));
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.value, 3);
    /* an election's leader: none, then the candidate that leads, with its term */
    coord_election *e;
    assert_int_equal(coord_election_new(&e, c, "ra", NULL), 0);
    calls = r.calls;
    assert_int_equal(coord_election_leader_async(e, on_leader_read, &r), 0);
    assert_true(run_until(c, &r.calls, calls + 1, 10000));
    assert_int_equal(r.rc, COORD_ENOTFOUND);
    assert_int_equal(r.value, 0);
    assert_int_equal(coord_election_campaign(e, "one", 3, 5000), 0);
    uint64_t term = 0;
    assert_int_equal(coord_election_term(e, &term), 0);
    assert_int_equal(coord_election_leader_async(e, on_leader_read, &r), 0);
    assert_true(run_until(c, &r.calls, calls + 2, 10000));
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.data, "one");
    assert_int_equal(r.term, term);
    assert_int_equal(coord_election_resign(e), 0);
    assert_int_equal(outside, 0);
    assert_int_equal(coord_counter_get_async(NULL, on_count, &r), COORD_EINVAL);
    assert_int_equal(coord_queue_size_async(q, NULL, &r), COORD_EINVAL);
    assert_int_equal(coord_election_leader_async(e, NULL, &r), COORD_EINVAL);
    /* freed with a read in flight: its done runs once, by the free */
    calls = r.calls;
    assert_int_equal(coord_counter_get_async(k[0], on_count, &r), 0);
    coord_counter_free(k[0]);
    assert_int_equal(r.calls, calls + 1);
    assert_true(r.rc == 0 || r.rc == COORD_ECANCELED);
    assert_int_equal(coord_queue_size_async(q, on_size, &r), 0);
    coord_queue_free(q);
    assert_int_equal(r.calls, calls + 2);
    assert_int_equal(coord_election_leader_async(e, on_leader_read, &r), 0);
    coord_election_free(e);
    assert_int_equal(r.calls, calls + 3);
    coord_counter_free(k[1]);
    coord_client_close(c);
}

/* Wait (running the loop) until the lock's async acquire, and the election's campaign when
 * there is one, wait on their predecessors. */
static void until_both_waiting(coord_client *c, coord_lock *l, coord_election *e) {
    int64_t end = coord__now_ms() + 10000;
    int got = 0;
    while (!(coord__lock_waiting(l) && (!e || coord__election_waiting(e))) && coord__now_ms() < end)
        run_until(c, &got, 1, 5);
    assert_true(coord__lock_waiting(l));
    if (e) assert_true(coord__election_waiting(e));
}

static void until_waiting(coord_client *c, coord_lock *l) {
    until_both_waiting(c, l, NULL);
}

/* The session ends under a wait and a campaign: each done once, COORD_ESESSION; the client
 * goes on with its new session. */
static void session_loss(void **state) {
    char *uri;
    coord_client *c = open_loop_uri(state, "session_ttl_ms=2000", &uri);
    coord_client *other = OPEN_URI(uri);
    free(uri);
    coord_lock *held, *l;
    coord_election *lead, *e;
    assert_int_equal(coord_lock_new(&held, other, "sl"), 0);
    assert_int_equal(coord_lock_acquire(held, 5000), 0);
    assert_int_equal(coord_election_new(&lead, other, "sl", NULL), 0);
    assert_int_equal(coord_election_campaign(lead, "a", 1, 5000), 0);
    assert_int_equal(coord_lock_new(&l, c, "sl"), 0);
    assert_int_equal(coord_election_new(&e, c, "sl", NULL), 0);
    int seq = 0;
    rec rl = {c, -99, 0, 0, &seq}, re = {c, -99, 0, 0, &seq};
    assert_int_equal(coord_lock_acquire_async(l, -1, on_done, &rl), 0);
    assert_int_equal(coord_election_campaign_async(e, "b", 1, -1, on_done, &re), 0);
    /* both enqueued: an enqueue cut by the expiry would fail for want of a server */
    until_both_waiting(c, l, e);
    coord_conn *k = coord__client_conn(c);
    assert_int_equal(k->backend->expire(k), 0);
    assert_true(run_until(c, &rl.calls, 1, 20000));
    assert_true(run_until(c, &re.calls, 1, 20000));
    if (rl.rc != COORD_ESESSION || re.rc != COORD_ESESSION)
        fail_msg("acquire: %s (%s); campaign: %s (%s)", coord_err_name(rl.rc), rl.why,
                 coord_err_name(re.rc), re.why);
    /* the session callback runs inside process too; once the new session is there, the
     * handle waits again, and gets the lock once it is released */
    assert_true(run_until(c, &reconnected, 1, 20000));
    assert_int_equal(lost_seen, 1);
    assert_int_equal(coord_lock_acquire_async(l, 20000, on_done, &rl), 0);
    until_waiting(c, l);
    assert_int_equal(coord_lock_release(held), 0);
    assert_true(run_until(c, &rl.calls, 2, 20000));
    assert_int_equal(rl.rc, 0);
    assert_int_equal(rl.calls, 2);
    assert_int_equal(re.calls, 1);
    assert_int_equal(outside, 0);
    coord_lock_free(l);
    coord_election_free(e);
    coord_client_close(c);
    coord_lock_free(held);
    coord_election_free(lead);
    coord_client_close(other);
}

#ifdef COORD_TEST_FAKE
/* An enqueue applied whose answer is lost: the done reports it, and the contender it made is
 * deleted by the client (nothing stranded); a look and a watch that fail for want of a server
 * are retried after a pause, the wait goes on. */
static void faults_in_steps(void **state) {
    char *uri;
    coord_client *c = open_loop_uri(state, NULL, &uri);
    coord_client *other = OPEN_URI(uri);
    coord_lock *held, *l;
    assert_int_equal(coord_lock_new(&held, other, "fs"), 0);
    assert_int_equal(coord_lock_acquire(held, 5000), 0);
    assert_int_equal(coord_lock_new(&l, c, "fs"), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/lock/fs/", coord_client_prefix(c));
    int seq = 0;
    rec r = {c, -99, 0, 0, &seq};
    fault_once(c, SLOT_LOCK_ENQUEUE, 1, COORD_EUNAVAILABLE, FAULT_AFTER);
    assert_int_equal(coord_lock_acquire_async(l, -1, on_done, &r), 0);
    assert_true(run_until(c, &r.calls, 1, 10000));
    assert_int_equal(r.rc, COORD_EUNAVAILABLE);
    assert_int_equal(coord__orphan_count_within(c, 5000), 0);
    assert_int_equal(fake_await_count(dir, 1, 5000), 0); /* the holder's alone */
    /* the look, then the watch, fail once each */
    fault_once(c, SLOT_LOCK_PREDECESSOR, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    fault_once(c, SLOT_WATCH, 1, COORD_ETIMEDOUT, FAULT_BEFORE);
    assert_int_equal(coord_lock_acquire_async(l, 10000, on_done, &r), 0);
    int64_t end = coord__now_ms() + 10000;
    int got = 0;
    while (!coord__lock_waiting(l) && coord__now_ms() < end)
        run_until(c, &got, 1, 5);
    assert_true(coord__lock_waiting(l));
    assert_int_equal(coord_lock_release(held), 0);
    assert_true(run_until(c, &r.calls, 2, 10000));
    assert_int_equal(r.rc, 0);
    assert_int_equal(coord_lock_release(l), 0);
    /* a bounded wait that expires leaves nothing behind */
    assert_int_equal(coord_lock_acquire(held, 5000), 0);
    assert_int_equal(coord_lock_acquire_async(l, 200, on_done, &r), 0);
    assert_true(run_until(c, &r.calls, 3, 10000));
    assert_int_equal(r.rc, COORD_ETIMEDOUT);
    assert_int_equal(fake_await_count(dir, 1, 5000), 0);
    assert_int_equal(outside, 0);
    coord_lock_free(l);
    coord_client_close(c);
    coord_lock_release(held);
    coord_lock_free(held);
    coord_client_close(other);
    free(uri);
}
#endif

typedef struct kvrec {
    coord_client *c;
    int calls, rc;
    int64_t version;
    char text[64];
} kvrec;

static void on_get(int rc, const void *value, size_t len, int64_t version, void *payload) {
    kvrec *r = payload;
    check_thread(r->c);
    r->rc = rc;
    r->version = version;
    snprintf(r->text, sizeof r->text, "%.*s", (int)len, value ? (const char *)value : "");
    r->calls++;
}

static void on_put(int rc, int64_t version, void *payload) {
    kvrec *r = payload;
    check_thread(r->c);
    r->rc = rc;
    r->version = version;
    r->calls++;
}

static void on_list(int rc, char **keys, size_t n, void *payload) {
    kvrec *r = payload;
    check_thread(r->c);
    r->rc = rc;
    r->text[0] = 0;
    for (size_t i = 0; i < n; i++)
        snprintf(r->text + strlen(r->text), sizeof r->text - strlen(r->text), "%s,", keys[i]);
    r->calls++;
}

static void on_kvdone(int rc, void *payload) {
    kvrec *r = payload;
    check_thread(r->c);
    r->rc = rc;
    r->calls++;
}

/* KV reads and writes, a guarded commit and queue puts, many in flight at once. */
static void data_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    kvrec p[8], g = {c, 0, 0, 0, ""}, l = {c, 0, 0, 0, ""}, d = {c, 0, 0, 0, ""};
    for (int i = 0; i < 8; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "cfg/k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        p[i] = (kvrec){c, 0, -99, 0, ""};
        assert_int_equal(coord_kv_put_async(c, key, val, strlen(val), -1, on_put, &p[i]), 0);
    }
    assert_int_equal(coord_kv_put_async(c, "bad//key", "x", 1, -1, on_put, &p[0]), COORD_EINVAL);
    for (int i = 0; i < 8; i++) {
        assert_true(run_until(c, &p[i].calls, 1, 10000));
        assert_int_equal(p[i].rc, 0);
        assert_true(p[i].version > 0);
    }
    assert_int_equal(coord_kv_get_async(c, "cfg/k3", on_get, &g), 0);
    assert_int_equal(coord_kv_list_async(c, "cfg", on_list, &l), 0);
    assert_true(run_until(c, &g.calls, 1, 10000));
    assert_true(run_until(c, &l.calls, 1, 10000));
    assert_int_equal(g.rc, 0);
    assert_string_equal(g.text, "v3");
    assert_int_equal(g.version, p[3].version);
    assert_string_equal(l.text, "k0,k1,k2,k3,k4,k5,k6,k7,");
    /* a conditional delete at a stale version, then at the right one */
    assert_int_equal(coord_kv_delete_async(c, "cfg/k3", p[3].version + 100, on_kvdone, &d), 0);
    assert_true(run_until(c, &d.calls, 1, 10000));
    assert_int_equal(d.rc, COORD_ECONFLICT);
    assert_int_equal(coord_kv_delete_async(c, "cfg/k3", p[3].version, on_kvdone, &d), 0);
    assert_true(run_until(c, &d.calls, 2, 10000));
    assert_int_equal(d.rc, 0);
    assert_int_equal(coord_kv_get_async(c, "cfg/k3", on_get, &g), 0);
    assert_true(run_until(c, &g.calls, 2, 10000));
    assert_int_equal(g.rc, COORD_ENOTFOUND);
    /* a commit fenced by a lock this handle holds */
    coord_lock *lk;
    assert_int_equal(coord_lock_new(&lk, c, "fence"), 0);
    assert_int_equal(coord_lock_acquire(lk, 5000), 0);
    coord_txn *t;
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_check(t, "cfg/k1", p[1].version), 0);
    assert_int_equal(coord_txn_put(t, "cfg/k1", "new", 3), 0);
    assert_int_equal(coord_txn_guard(t, lk), 0);
    kvrec x = {c, 0, -99, 0, ""};
    assert_int_equal(coord_txn_commit_async(t, on_kvdone, &x), 0);
    assert_int_equal(coord_txn_commit_async(t, on_kvdone, &x), COORD_EINVAL);
    assert_true(run_until(c, &x.calls, 1, 10000));
    assert_int_equal(x.rc, 0);
    assert_int_equal(coord_txn_commit_async(t, on_kvdone, &x), 0); /* the check is stale now */
    assert_true(run_until(c, &x.calls, 2, 10000));
    assert_int_equal(x.rc, COORD_ECONFLICT);
    coord_txn_free(t);
    assert_int_equal(coord_lock_release(lk), 0);
    coord_lock_free(lk);
    /* ten puts in flight, then ten takes: FIFO */
    coord_queue *q;
    assert_int_equal(coord_queue_new(&q, c, "puts"), 0);
    kvrec pr[10];
    for (int i = 0; i < 10; i++) {
        char item[8];
        snprintf(item, sizeof item, "i%d", i);
        pr[i] = (kvrec){c, 0, -99, 0, ""};
        assert_int_equal(coord_queue_put_async(q, item, strlen(item), on_kvdone, &pr[i]), 0);
        assert_true(run_until(c, &pr[i].calls, 1, 10000)); /* in order: one at a time */
        assert_int_equal(pr[i].rc, 0);
    }
    for (int i = 0; i < 10; i++) {
        took tk = {c, -99, 0, ""};
        assert_int_equal(coord_queue_take_async(q, 5000, on_take, &tk), 0);
        assert_true(run_until(c, &tk.calls, 1, 10000));
        assert_int_equal(tk.rc, 0);
        char want[8];
        snprintf(want, sizeof want, "i%d", i);
        assert_string_equal(tk.data, want);
    }
    coord_queue_free(q);
    assert_int_equal(outside, 0);
    coord_client_close(c);
}

/* Readers overlap, a writer waits for them, a reader queued after the writer waits for it. */
static void rwlock_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_rwlock *r1, *r2, *w, *r3;
    assert_int_equal(coord_rwlock_new(&r1, c, "rw"), 0);
    assert_int_equal(coord_rwlock_new(&r2, c, "rw"), 0);
    assert_int_equal(coord_rwlock_new(&w, c, "rw"), 0);
    assert_int_equal(coord_rwlock_new(&r3, c, "rw"), 0);
    int seq = 0;
    rec a = {c, -99, 0, 0, &seq, ""}, b = {c, -99, 0, 0, &seq, ""}, cw = {c, -99, 0, 0, &seq, ""},
        d = {c, -99, 0, 0, &seq, ""}, u = {c, -99, 0, 0, &seq, ""};
    assert_int_equal(coord_rwlock_rdlock_async(r1, 5000, on_done, &a), 0);
    assert_true(run_until(c, &a.calls, 1, 10000));
    assert_int_equal(coord_rwlock_rdlock_async(r2, 5000, on_done, &b), 0);
    assert_true(run_until(c, &b.calls, 1, 10000));
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_true(coord_rwlock_held(r1) && coord_rwlock_held(r2));
    assert_int_equal(coord_rwlock_wrlock_async(w, 10000, on_done, &cw), 0);
    int got = 0;
    run_until(c, &got, 1, 300);
    assert_int_equal(cw.calls, 0); /* the readers hold it */
    assert_int_equal(coord_rwlock_rdlock_async(r3, 10000, on_done, &d), 0);
    run_until(c, &got, 1, 300);
    assert_int_equal(d.calls, 0); /* queued after the writer */
    assert_int_equal(coord_rwlock_unlock_async(r1, on_done, &u), 0);
    assert_int_equal(coord_rwlock_unlock_async(r2, on_done, &u), 0);
    assert_true(run_until(c, &cw.calls, 1, 10000));
    assert_int_equal(cw.rc, 0);
    assert_int_equal(d.calls, 0);
    assert_int_equal(coord_rwlock_unlock_async(w, on_done, &u), 0);
    assert_true(run_until(c, &d.calls, 1, 10000));
    assert_int_equal(d.rc, 0);
    assert_true(run_until(c, &u.calls, 3, 10000));
    assert_int_equal(u.rc, 0);
    assert_int_equal(outside, 0);
    coord_rwlock_free(r1);
    coord_rwlock_free(r2);
    coord_rwlock_free(w);
    coord_rwlock_free(r3);
    coord_client_close(c);
}

typedef struct claimed {
    coord_client *c;
    int rc, calls;
    coord_item *it;
} claimed;

static void on_claim(int rc, coord_item *it, void *payload) {
    claimed *r = payload;
    check_thread(r->c);
    r->rc = rc;
    r->it = it;
    r->calls++;
}

/* A barrier wait ends when the barrier is lowered (or times out, or is canceled); a claim
 * waits for an item, and the item is the claimer's to ack. */
static void barrier_claim_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_barrier *b;
    assert_int_equal(coord_barrier_new(&b, c, "ba"), 0);
    int seq = 0;
    rec r = {c, -99, 0, 0, &seq, ""};
    assert_int_equal(coord_barrier_wait_async(b, 0, on_done, &r), 0); /* not raised */
    assert_true(run_until(c, &r.calls, 1, 10000));
    assert_int_equal(r.rc, 0);
    rec rl = {c, -99, 0, 0, &seq, ""};
    assert_int_equal(coord_barrier_raise_async(b, on_done, &rl), 0);
    assert_true(run_until(c, &rl.calls, 1, 10000));
    assert_int_equal(rl.rc, 0);
    assert_int_equal(coord_barrier_wait_async(b, 0, on_done, &r), 0);
    assert_true(run_until(c, &r.calls, 2, 10000));
    assert_int_equal(r.rc, COORD_ELOCKED);
    assert_int_equal(coord_barrier_wait_async(b, 200, on_done, &r), 0);
    assert_true(run_until(c, &r.calls, 3, 10000));
    assert_int_equal(r.rc, COORD_ETIMEDOUT);
    assert_int_equal(coord_barrier_wait_async(b, -1, on_done, &r), 0);
    assert_int_equal(coord_barrier_wait_async(b, -1, on_done, &r), COORD_EINVAL);
    coord_barrier_cancel(b);
    assert_true(run_until(c, &r.calls, 4, 10000));
    assert_int_equal(r.rc, COORD_ECANCELED);
    assert_int_equal(coord_barrier_wait_async(b, -1, on_done, &r), 0);
    int got = 0;
    run_until(c, &got, 1, 200);
    assert_int_equal(r.calls, 4); /* still raised */
    assert_int_equal(coord_barrier_lower_async(b, on_done, &rl), 0);
    assert_true(run_until(c, &r.calls, 5, 10000));
    assert_true(run_until(c, &rl.calls, 2, 10000));
    assert_int_equal(rl.rc, 0);
    assert_int_equal(r.rc, 0);
    coord_barrier_free(b);

    coord_queue *q;
    assert_int_equal(coord_queue_new(&q, c, "cl"), 0);
    claimed cr = {c, -99, 0, NULL};
    assert_int_equal(coord_queue_claim_async(q, -1, on_claim, &cr), 0);
    run_until(c, &got, 1, 200);
    assert_int_equal(cr.calls, 0);
    assert_int_equal(coord_queue_put(q, "work", 4), 0);
    assert_true(run_until(c, &cr.calls, 1, 10000));
    assert_int_equal(cr.rc, 0);
    size_t len = 0;
    assert_memory_equal(coord_item_data(cr.it, &len), "work", 4);
    assert_int_equal(len, 4);
    /* given back (nack), claimed again, then acked */
    rec ra = {c, -99, 0, 0, &seq, ""};
    assert_int_equal(coord_item_nack_async(cr.it, on_done, &ra), 0);
    assert_true(run_until(c, &ra.calls, 1, 10000));
    assert_int_equal(ra.rc, 0);
    assert_int_equal(coord_queue_claim_async(q, 5000, on_claim, &cr), 0);
    assert_true(run_until(c, &cr.calls, 2, 10000));
    assert_int_equal(cr.rc, 0);
    assert_int_equal(coord_item_ack_async(cr.it, on_done, &ra), 0);
    assert_true(run_until(c, &ra.calls, 2, 10000));
    assert_int_equal(ra.rc, 0);
    size_t n = 9;
    assert_int_equal(coord_queue_size(q, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(outside, 0);
    coord_queue_free(q);
    coord_client_close(c);
}

/* Two leases: two holders at once, a third waits for a release; a try, a bounded wait and a
 * canceled one end as their blocking forms do. */
static void semaphore_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_semaphore *s[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(coord_semaphore_new(&s[i], c, "sa", 2), 0);
    int seq = 0;
    rec r[4], u = {c, -99, 0, 0, &seq, ""};
    for (int i = 0; i < 4; i++)
        r[i] = (rec){c, -99, 0, 0, &seq, ""};
    assert_int_equal(coord_semaphore_acquire_async(s[0], 5000, on_done, &r[0]), 0);
    assert_true(run_until(c, &r[0].calls, 1, 10000));
    assert_int_equal(coord_semaphore_acquire_async(s[1], 5000, on_done, &r[1]), 0);
    assert_true(run_until(c, &r[1].calls, 1, 10000));
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[1].rc, 0);
    assert_true(coord_semaphore_held(s[0]) && coord_semaphore_held(s[1]));
    assert_int_equal(coord_semaphore_acquire_async(s[3], 0, on_done, &r[3]), 0);
    assert_true(run_until(c, &r[3].calls, 1, 10000));
    assert_int_equal(r[3].rc, COORD_ELOCKED);
    assert_int_equal(coord_semaphore_acquire_async(s[3], 200, on_done, &r[3]), 0);
    assert_true(run_until(c, &r[3].calls, 2, 10000));
    assert_int_equal(r[3].rc, COORD_ETIMEDOUT);
    assert_int_equal(coord_semaphore_acquire_async(s[3], -1, on_done, &r[3]), 0);
    int got = 0;
    run_until(c, &got, 1, 200);
    coord_semaphore_cancel(s[3]);
    assert_true(run_until(c, &r[3].calls, 3, 10000));
    assert_int_equal(r[3].rc, COORD_ECANCELED);
    assert_int_equal(coord_semaphore_acquire_async(s[2], -1, on_done, &r[2]), 0);
    run_until(c, &got, 1, 300);
    assert_int_equal(r[2].calls, 0); /* both leases are taken */
    assert_int_equal(coord_semaphore_release_async(s[0], on_done, &u), 0);
    assert_false(coord_semaphore_held(s[0]));
    assert_true(run_until(c, &r[2].calls, 1, 10000));
    assert_int_equal(r[2].rc, 0);
    assert_true(coord_semaphore_held(s[2]));
    assert_true(run_until(c, &u.calls, 1, 10000));
    assert_int_equal(u.rc, 0);
    assert_int_equal(outside, 0);
    for (int i = 0; i < 4; i++)
        coord_semaphore_free(s[i]);
    coord_client_close(c);
}

/* Two participants of one client: the first enter waits for the second; both leave. */
static void dbarrier_async(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_dbarrier *a, *b;
    assert_int_equal(coord_dbarrier_new(&a, c, "db", 2), 0);
    assert_int_equal(coord_dbarrier_new(&b, c, "db", 2), 0);
    int seq = 0, got = 0;
    rec ra = {c, -99, 0, 0, &seq, ""}, rb = {c, -99, 0, 0, &seq, ""};
    assert_int_equal(coord_dbarrier_enter_async(a, 0, on_done, &ra), 0);
    assert_true(run_until(c, &ra.calls, 1, 10000));
    assert_int_equal(ra.rc, COORD_ELOCKED);
    assert_int_equal(coord_dbarrier_enter_async(a, 200, on_done, &ra), 0);
    assert_true(run_until(c, &ra.calls, 2, 10000));
    assert_int_equal(ra.rc, COORD_ETIMEDOUT);
    assert_int_equal(coord_dbarrier_enter_async(a, -1, on_done, &ra), 0);
    assert_int_equal(coord_dbarrier_enter_async(a, -1, on_done, &ra), COORD_EINVAL);
    coord_dbarrier_cancel(a);
    assert_true(run_until(c, &ra.calls, 3, 10000));
    assert_int_equal(ra.rc, COORD_ECANCELED);
    assert_int_equal(coord_dbarrier_enter_async(a, 10000, on_done, &ra), 0);
    run_until(c, &got, 1, 200);
    assert_int_equal(ra.calls, 3); /* one of two in */
    assert_int_equal(coord_dbarrier_enter_async(b, 10000, on_done, &rb), 0);
    assert_true(run_until(c, &ra.calls, 4, 10000));
    assert_true(run_until(c, &rb.calls, 1, 10000));
    assert_int_equal(ra.rc, 0);
    assert_int_equal(rb.rc, 0);
    assert_int_equal(coord_dbarrier_leave_async(a, 10000, on_done, &ra), 0);
    assert_int_equal(coord_dbarrier_leave_async(b, 10000, on_done, &rb), 0);
    assert_true(run_until(c, &ra.calls, 5, 10000));
    assert_true(run_until(c, &rb.calls, 2, 10000));
    assert_int_equal(ra.rc, 0);
    assert_int_equal(rb.rc, 0);
    assert_int_equal(outside, 0);
    coord_dbarrier_free(a);
    coord_dbarrier_free(b);
    coord_client_close(c);
}

#ifdef COORD_TEST_FAKE
/* Every bounded wait ends by the library's clock, not by time passing: each is an hour long,
 * and the clock is moved on by an hour. */
static void timeouts_by_the_clock(void **state) {
    char *uri;
    coord_client *c = open_loop_uri(state, NULL, &uri);
    coord_client *other = OPEN_URI(uri);
    free(uri);
    const int hour = 3600 * 1000;
    coord_lock *held, *l;
    coord_semaphore *s1, *s2;
    coord_barrier *b;
    coord_queue *q;
    coord_dbarrier *d;
    assert_int_equal(coord_lock_new(&held, other, "clk"), 0);
    assert_int_equal(coord_lock_acquire(held, 5000), 0);
    assert_int_equal(coord_lock_new(&l, c, "clk"), 0);
    assert_int_equal(coord_semaphore_new(&s1, other, "clk", 1), 0);
    assert_int_equal(coord_semaphore_acquire(s1, 5000), 0);
    assert_int_equal(coord_semaphore_new(&s2, c, "clk", 1), 0);
    assert_int_equal(coord_barrier_new(&b, c, "clk"), 0);
    assert_int_equal(coord_barrier_raise(b), 0);
    assert_int_equal(coord_queue_new(&q, c, "clk"), 0);
    assert_int_equal(coord_dbarrier_new(&d, c, "clk", 2), 0);
    int seq = 0;
    rec r[4];
    for (int i = 0; i < 4; i++)
        r[i] = (rec){c, -99, 0, 0, &seq, ""};
    took t = {c, -99, 0, ""};
    assert_int_equal(coord_lock_acquire_async(l, hour, on_done, &r[0]), 0);
    assert_int_equal(coord_semaphore_acquire_async(s2, hour, on_done, &r[1]), 0);
    assert_int_equal(coord_barrier_wait_async(b, hour, on_done, &r[2]), 0);
    assert_int_equal(coord_dbarrier_enter_async(d, hour, on_done, &r[3]), 0);
    assert_int_equal(coord_queue_take_async(q, hour, on_take, &t), 0);
    until_waiting(c, l);
    int64_t t0 = coord__now_ms();
    coord__clock_advance(hour + 1);
    for (int i = 0; i < 4; i++) {
        assert_true(run_until(c, &r[i].calls, 1, 10000));
        if (r[i].rc != COORD_ETIMEDOUT)
            fail_msg("wait %d: %s (%s)", i, coord_err_name(r[i].rc), r[i].why);
    }
    assert_true(run_until(c, &t.calls, 1, 10000));
    assert_int_equal(t.rc, COORD_ETIMEDOUT);
    print_message("hour-long waits ended %lld ms of real time after the clock moved\n",
                  (long long)(coord__now_ms() - t0 - hour - 1));
    assert_int_equal(outside, 0);
    coord_lock_free(l);
    coord_semaphore_free(s2);
    coord_barrier_free(b);
    coord_queue_free(q);
    coord_dbarrier_free(d);
    coord_client_close(c);
    coord_lock_free(held);
    coord_semaphore_free(s1);
    coord_client_close(other);
}
#endif

#ifdef COORD_TEST_FAKE
/* Sessions by the library's clock: a connected client keeps its session however far the clock
 * moves (its keepalives reach the server); cut off, it keeps it for half a TTL and loses it
 * once a TTL has passed on that clock, with no time passing: the server drops its lock at once, and
 * when the client is back its waiting acquire ends with COORD_ESESSION inside process, and the
 * session reports LOST then CONNECTED. */
static void sessions_by_the_clock(void **state) {
    char *uri;
    coord_client *c = open_loop_uri(state, "session_ttl_ms=2000", &uri);
    coord_client *other = OPEN_URI(uri);
    free(uri);
    const int ttl = 2000, hour = 3600 * 1000;
    coord_lock *mine, *theirs, *held, *l;
    assert_int_equal(coord_lock_new(&held, other, "kb"), 0);
    assert_int_equal(coord_lock_acquire(held, 5000), 0);
    assert_int_equal(coord_lock_new(&theirs, other, "ka"), 0);
    assert_int_equal(coord_lock_new(&mine, c, "ka"), 0);
    assert_int_equal(coord_lock_new(&l, c, "kb"), 0);
    int seq = 0;
    rec rm = {c, -99, 0, 0, &seq, ""}, rl = {c, -99, 0, 0, &seq, ""};
    assert_int_equal(coord_lock_acquire_async(mine, 5000, on_done, &rm), 0);
    assert_true(run_until(c, &rm.calls, 1, 10000));
    assert_int_equal(rm.rc, 0);
    assert_int_equal(coord_lock_acquire_async(l, -1, on_done, &rl), 0);
    until_waiting(c, l);

    coord__clock_advance(hour); /* connected: nothing ends */
    fake_tick();
    assert_int_equal(fake_sync(NULL, 5000), 0);
    assert_int_equal(coord_lock_acquire(theirs, 0), COORD_ELOCKED);
    int got = 0;
    run_until(c, &got, 1, 20);
    assert_int_equal(lost_seen, 0);
    assert_int_equal(rl.calls, 0);

    fake_suspend(c);
    coord__clock_advance(ttl / 2); /* cut off, not yet for a TTL (real time adds to it) */
    fake_tick();
    assert_int_equal(coord_lock_acquire(theirs, 0), COORD_ELOCKED);
    coord__clock_advance(ttl / 2 + 1);
    fake_tick(); /* the server ends the session: the lock is free at once */
    assert_int_equal(coord_lock_acquire(theirs, 0), 0);
    fake_resume(c);
    assert_true(run_until(c, &rl.calls, 1, 10000));
    if (rl.rc != COORD_ESESSION) fail_msg("acquire: %s (%s)", coord_err_name(rl.rc), rl.why);
    assert_true(run_until(c, &reconnected, 1, 10000));
    assert_int_equal(lost_seen, 1);
    assert_false(coord_lock_held(mine));
    assert_int_equal(outside, 0);
    coord_lock_free(l);
    coord_lock_free(mine);
    coord_client_close(c);
    assert_int_equal(coord_lock_release(theirs), 0);
    coord_lock_free(theirs);
    coord_lock_free(held);
    coord_client_close(other);
}
#endif

/* Callbacks that free the handle they report on (allowed in loop mode): the lock in its
 * acquire's done, the counter in an add's done (its other adds' dones run then), the ring in
 * its change callback, the election in its leader report, the watch in its report. */
typedef struct freer {
    coord_client *c;
    void *h;
    int calls;
} freer;

static void free_lock_done(int rc, void *payload) {
    freer *f = payload;
    check_thread(f->c);
    if (!rc) coord_lock_free(f->h);
    f->calls++;
}

static int adds_left;

static void free_counter_add(int rc, int64_t value, void *payload) {
    (void)rc, (void)value;
    freer *f = payload;
    check_thread(f->c);
    adds_left--;
    if (f->h) {
        coord_counter *k = f->h;
        f->h = NULL; /* the other adds' dones run inside this free */
        coord_counter_free(k);
    }
    f->calls++;
}

static void free_ring_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)ch;
    freer *f = payload;
    check_thread(f->c);
    if (f->calls++ == 0) coord_ring_free(r);
}

static void free_election_report(coord_election *e, const coord_leader *l, void *payload) {
    (void)l;
    freer *f = payload;
    check_thread(f->c);
    if (f->calls++ == 0) coord_election_free(e);
}

static void free_watch_report(const char *key, const void *value, size_t len, int64_t version,
                              void *payload) {
    (void)key, (void)value, (void)len, (void)version;
    freer *f = payload;
    check_thread(f->c);
    if (f->calls++ == 0) coord_kv_watch_free(f->h);
}

static void free_in_callbacks(void **state) {
    coord_client *c = open_loop(state, NULL);
    freer fl = {c, NULL, 0}, fk = {c, NULL, 0}, fr = {c, NULL, 0}, fe = {c, NULL, 0},
          fw = {c, NULL, 0};
    coord_lock *l;
    assert_int_equal(coord_lock_new(&l, c, "fic"), 0);
    fl.h = l;
    assert_int_equal(coord_lock_acquire_async(l, 5000, free_lock_done, &fl), 0);
    assert_true(run_until(c, &fl.calls, 1, 10000));
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "fic", NULL), 0);
    fk.h = k;
    adds_left = 16;
    for (int i = 0; i < 16; i++)
        assert_int_equal(coord_counter_add_async(k, 1, free_counter_add, &fk), 0);
    assert_true(run_until(c, &fk.calls, 16, 10000));
    assert_int_equal(adds_left, 0);
    coord_ring_options ro = COORD_RING_OPTIONS_INIT;
    ro.on_change = free_ring_change;
    ro.payload = &fr;
    coord_ring *r;
    assert_int_equal(coord_ring_new(&r, c, "fic", &ro), 0);
    coord_ring *peer;
    assert_int_equal(coord_ring_new(&peer, c, "fic", NULL), 0);
    assert_int_equal(coord_ring_join(peer, "m1", "d", 1, 1), 0); /* r's thread reports it */
    assert_true(run_until(c, &fr.calls, 1, 10000));
    coord_election_options eo = COORD_ELECTION_OPTIONS_INIT;
    eo.on_leader = free_election_report;
    eo.payload = &fe;
    coord_election *e;
    assert_int_equal(coord_election_new(&e, c, "fic", &eo), 0);
    assert_true(run_until(c, &fe.calls, 1, 10000));
    coord_kv_watch *w;
    assert_int_equal(coord_kv_watch_new(&w, c, "fic", free_watch_report, &fw), 0);
    fw.h = w;
    assert_true(run_until(c, &fw.calls, 1, 10000));
    int got = 0;
    run_until(c, &got, 1, 100); /* nothing more is reported by the freed handles */
    assert_int_equal(fr.calls, 1);
    assert_int_equal(fe.calls, 1);
    assert_int_equal(fw.calls, 1);
    assert_int_equal(outside, 0);
    coord_ring_free(peer);
    coord_client_close(c);
}

static void on_watch_report(const char *key, const void *value, size_t len, int64_t version,
                            void *payload) {
    (void)key, (void)value, (void)len, (void)version, (void)payload;
}

/* After the close, every kind of handle may be freed, holding, joined, leading or waiting. */
static void free_after_close(void **state) {
    coord_client *c = open_loop(state, NULL);
    coord_ring *r;
    coord_election *e;
    coord_semaphore *s;
    coord_rwlock *rw;
    coord_barrier *b;
    coord_dbarrier *d;
    coord_queue *q;
    coord_kv_watch *w;
    coord_txn *t;
    coord_counter *k;
    coord_lock *l;
    assert_int_equal(coord_ring_new(&r, c, "fac", NULL), 0);
    assert_int_equal(coord_ring_join(r, "m", "d", 1, 1), 0);
    assert_int_equal(coord_election_new(&e, c, "fac", NULL), 0);
    assert_int_equal(coord_election_campaign(e, "v", 1, 5000), 0);
    assert_int_equal(coord_semaphore_new(&s, c, "fac", 1), 0);
    assert_int_equal(coord_semaphore_acquire(s, 5000), 0);
    assert_int_equal(coord_rwlock_new(&rw, c, "fac"), 0);
    assert_int_equal(coord_rwlock_rdlock(rw, 5000), 0);
    assert_int_equal(coord_barrier_new(&b, c, "fac"), 0);
    assert_int_equal(coord_barrier_raise(b), 0);
    assert_int_equal(coord_dbarrier_new(&d, c, "fac", 2), 0);
    assert_int_equal(coord_queue_new(&q, c, "fac"), 0);
    assert_int_equal(coord_kv_watch_new(&w, c, "fac", on_watch_report, NULL), 0);
    assert_int_equal(coord_txn_new(&t, c), 0);
    assert_int_equal(coord_txn_put(t, "fac", "x", 1), 0);
    assert_int_equal(coord_counter_new(&k, c, "fac", NULL), 0);
    assert_int_equal(coord_lock_new(&l, c, "fac"), 0);
    assert_int_equal(coord_lock_acquire(l, 5000), 0);
    int seq = 0;
    rec rb = {c, -99, 0, 0, &seq, ""}, rd = {c, -99, 0, 0, &seq, ""};
    took tk = {c, -99, 0, ""};
    assert_int_equal(coord_barrier_wait_async(b, -1, on_done, &rb), 0);
    assert_int_equal(coord_dbarrier_enter_async(d, -1, on_done, &rd), 0);
    assert_int_equal(coord_queue_take_async(q, -1, on_take, &tk), 0);
    int got = 0;
    run_until(c, &got, 1, 100);
    coord_client_close(c);
    assert_int_equal(rb.calls, 1);
    assert_int_equal(rd.calls, 1);
    assert_int_equal(tk.calls, 1);
    assert_int_equal(tk.rc, COORD_ECANCELED);
    assert_false(coord_lock_held(l));
    coord_ring_free(r);
    coord_election_free(e);
    coord_semaphore_free(s);
    coord_rwlock_free(rw);
    coord_barrier_free(b);
    coord_dbarrier_free(d);
    coord_queue_free(q);
    coord_kv_watch_free(w);
    coord_txn_free(t);
    coord_counter_free(k);
    coord_lock_free(l);
    assert_int_equal(outside, 0);
}

static int threads_now(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

/* 1,000 (COORD_TEST_LOOP_WAITERS: fewer under valgrind and ThreadSanitizer) */
static int waiters_wanted(void) {
    const char *v = getenv("COORD_TEST_LOOP_WAITERS");
    return v && atoi(v) > 0 ? atoi(v) : 1000;
}

typedef struct waiter {
    coord_client *c;
    coord_lock *l;
    int index, order;
} waiter;

static int served, misordered, failed;

static void on_released(int rc, void *payload) {
    (void)payload;
    if (rc) failed++;
}

static void on_turn(int rc, void *payload) {
    waiter *w = payload;
    check_thread(w->c);
    if (rc) {
        failed++;
        served++;
        return;
    }
    if (w->index != served) misordered++;
    served++;
    if (coord_lock_release_async(w->l, on_released, NULL)) failed++;
}

/* 1,000 acquires in flight on 1,000 handles of one client, all behind one holder: at most 10
 * threads in the process, then served one by one in FIFO order. */
static void thousand_waiters(void **state) {
    const int WAITERS = waiters_wanted();
    coord_client *c = open_loop(state, "timeout_ms=20000");
    coord_lock *h;
    assert_int_equal(coord_lock_new(&h, c, "many"), 0);
    assert_int_equal(coord_lock_acquire(h, 5000), 0);
    waiter *w = calloc(WAITERS, sizeof *w);
    served = misordered = failed = 0;
    int got = 0;
    for (int i = 0; i < WAITERS; i++) {
        w[i] = (waiter){c, NULL, i, 0};
        assert_int_equal(coord_lock_new(&w[i].l, c, "many"), 0);
    }
    int64_t t0 = coord__now_ms();
    for (int i = 0; i < WAITERS; i++) {
        assert_int_equal(coord_lock_acquire_async(w[i].l, -1, on_turn, &w[i]), 0);
        /* FIFO is arrival order at the server: the next enqueues once this one is in */
        int64_t end = coord__now_ms() + 10000;
        while (!coord__lock_waiting(w[i].l) && coord__now_ms() < end)
            run_until(c, &got, 1, 1);
    }
    int peak = threads_now();
    print_message("%s: %d waiters queued in %lld ms, %d threads in the process\n",
                  coord_client_backend(c), WAITERS, (long long)(coord__now_ms() - t0), peak);
    for (int i = 0; i < WAITERS; i++)
        assert_true(coord__lock_waiting(w[i].l));
    assert_true(peak <= 10);
    t0 = coord__now_ms();
    assert_int_equal(coord_lock_release(h), 0);
    assert_true(run_until(c, &served, WAITERS, 120000));
    print_message("%s: %d hand-offs in %lld ms\n", coord_client_backend(c), WAITERS,
                  (long long)(coord__now_ms() - t0));
    assert_int_equal(failed, 0);
    assert_int_equal(misordered, 0);
    assert_int_equal(outside, 0);
    got = 0;
    run_until(c, &got, 1, 200); /* the last releases' dones */
    for (int i = 0; i < WAITERS; i++)
        coord_lock_free(w[i].l);
    free(w);
    coord_lock_free(h);
    coord_client_close(c);
}

int main(void) {
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        BOTH(not_loop_mode),
        BOTH(lock_async),
        BOTH(counter_async),
        BOTH(close_pending),
        BOTH(free_pending),
        BOTH(election_async),
        BOTH(ring_async),
        BOTH(queue_async),
        BOTH(reads_async),
        BOTH(session_loss),
        BOTH(data_async),
        BOTH(rwlock_async),
        BOTH(barrier_claim_async),
        BOTH(semaphore_async),
        BOTH(dbarrier_async),
        BOTH(free_in_callbacks),
        BOTH(free_after_close),
        BOTH(release_in_flight),
#ifdef COORD_TEST_FAKE
        BOTH(release_faults),
        BOTH(faults_in_steps),
        BOTH(timeouts_by_the_clock),
        BOTH(sessions_by_the_clock),
#endif
        BOTH(thousand_waiters),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
