/*
 * Work queue under faults (3-member clusters, both backends, one body). Two producer workers put
 * numbered items ("<producer>:<n>", each producer its own numbering) and four consumer workers
 * claim them (coord_queue_claim), record each delivery in shared memory and ack it, while the
 * leader is killed and restarted, a follower is stopped and resumed, and one consumer is stopped
 * while it holds a claim, past its session TTL.
 *
 * Every item has counters in shared memory: how its put ended (0, or of unknown outcome: any
 * error counts as a "maybe put"), its deliveries, and its acks by result (0, unknown outcome:
 * COORD_ETIMEDOUT / COORD_EUNAVAILABLE, refused: anything else). Every delivery is followed by
 * exactly one ack, so an item delivered twice was acked at most once successfully unless the
 * queue handed one item to two consumers that both acked it. Once the schedule is over the
 * producers stop and the consumers drain the queue. The checks:
 *   - every item whose put returned 0 was acked with 0 (or with an unknown outcome that took it
 *     out of the queue): none lost;
 *   - every delivered item is one a producer put or may have put (no phantom items);
 *   - no item has two acks that returned 0 (exactly once after ack; a redelivery is explained by
 *     an ack that did not return 0, e.g. the stopped consumer's);
 *   - the stopped consumer, once resumed, has its ack refused, and its item was delivered to
 *     another consumer (redelivered once its session ended) and acked there;
 *   - the queue is empty at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"

#define PRODUCERS 2
#define CONSUMERS 4
#define WORKERS (PRODUCERS + CONSUMERS)
#define VICTIM (WORKERS - 1) /* a consumer */
#define MAX_ITEMS 8192       /* per producer */
#define CLAIM_MS 1000        /* a bounded claim: an empty queue returns COORD_ETIMEDOUT */
#define PUT_PACE_MS 20       /* per producer: about 100 items a second in all, at most */
#define MAX_BACKLOG 40       /* items put and not yet delivered that hold the producers back */
#define QUEUE "faults"

enum { PUT_NONE = 0, PUT_TRYING, PUT_OK, PUT_MAYBE };

typedef struct item {
    _Atomic int put; /* PUT_* */
    _Atomic int deliveries, acks_ok, acks_unknown, acks_refused;
    _Atomic int acked_by; /* consumer of the last ack that returned 0, + 1 */
} item;

typedef struct checker {
    item it[PRODUCERS][MAX_ITEMS];
    _Atomic int next[PRODUCERS]; /* items each producer attempted */
    _Atomic int stop_producers, producers_done;
    _Atomic long phantoms, claim_idle, puts_ok, puts_maybe;
    _Atomic long attempted, delivered; /* puts begun, first deliveries: the backlog */
    /* The victim's story: the item it held while stopped, its ack's result. */
    _Atomic int victim_item; /* producer * MAX_ITEMS + n, -1: none yet */
    _Atomic int victim_ack_rc;
    _Atomic int64_t victim_redelivered_ms; /* its item delivered to another: time */
} checker;

static bool unknown_outcome(int rc) {
    return rc == COORD_ETIMEDOUT || rc == COORD_EUNAVAILABLE;
}

static void list_queue(fx_run *run) {
    fx_dump(run, "queue/" QUEUE);
    fx_dump(run, "queue-claims/" QUEUE);
}

static int producer(fx_run *run, int id, coord_queue *q) {
    checker *k = run->scn;
    while (!fx_stopping(run) && !atomic_load(&k->stop_producers)) {
        int n = atomic_load(&k->next[id]);
        if (n == MAX_ITEMS) {
            fx_nap(50);
            continue;
        }
        /* Not faster than the consumers (etcd's are slower than the producers): the queue is
         * drained in a bounded time at the end. Puts that were not applied count as backlog. */
        if (atomic_load(&k->attempted) - atomic_load(&k->delivered) >
            MAX_BACKLOG + atomic_load(&k->puts_maybe)) {
            fx_nap(5);
            continue;
        }
        item *it = &k->it[id][n];
        atomic_fetch_add(&k->attempted, 1);
        atomic_store(&it->put, PUT_TRYING); /* before a consumer may see it */
        atomic_store(&k->next[id], n + 1);
        char data[32];
        int len = snprintf(data, sizeof data, "%d:%d", id, n);
        int64_t t0 = coord__now_ms();
        int rc = coord_queue_put(q, data, (size_t)len);
        if (rc == 0) {
            atomic_store(&it->put, PUT_OK);
            atomic_fetch_add(&k->puts_ok, 1);
            fx_ok(run, id, t0);
        } else {
            /* Whatever the error, the item may be in the queue: it may be delivered. */
            atomic_store(&it->put, PUT_MAYBE);
            atomic_fetch_add(&k->puts_maybe, 1);
            fx_err(run, id, rc);
            fx_nap(50);
        }
        fx_nap(PUT_PACE_MS);
    }
    atomic_fetch_add(&k->producers_done, 1);
    return 0;
}

/* The item a claim delivered, or NULL (counted as a phantom) when no producer put it. */
static item *delivered(checker *k, const coord_item *ci, int *index) {
    size_t len = 0;
    const char *d = coord_item_data(ci, &len);
    char buf[32];
    if (!d || len == 0 || len >= sizeof buf) goto phantom;
    memcpy(buf, d, len);
    buf[len] = '\0';
    int p, n, used = 0;
    if (sscanf(buf, "%d:%d%n", &p, &n, &used) != 2 || (size_t)used != len || p < 0 ||
        p >= PRODUCERS || n < 0 || n >= atomic_load(&k->next[p]))
        goto phantom;
    item *it = &k->it[p][n];
    if (atomic_load(&it->put) == PUT_NONE) goto phantom;
    if (atomic_fetch_add(&it->deliveries, 1) == 0) atomic_fetch_add(&k->delivered, 1);
    *index = p * MAX_ITEMS + n;
    return it;
phantom:
    fprintf(stderr, "a claim delivered an item no producer put: '%.*s'\n", (int)len, d ? d : "");
    atomic_fetch_add(&k->phantoms, 1);
    return NULL;
}

static void count_ack(fx_run *run, int id, item *it, int rc, int64_t t0) {
    if (rc == 0) {
        atomic_fetch_add(&it->acks_ok, 1);
        atomic_store(&it->acked_by, id + 1);
        fx_ok(run, id, t0);
        return;
    }
    atomic_fetch_add(unknown_outcome(rc) ? &it->acks_unknown : &it->acks_refused, 1);
    fx_err(run, id, rc);
}

/* The victim claims an item and is stopped holding it; once resumed it acks it, as a paused
 * process would: refused, as its session ended and the item went to another consumer. */
static void victim_hold(fx_run *run, int id, coord_queue *q) {
    checker *k = run->scn;
    coord_item *ci = NULL;
    int rc = coord_queue_claim(q, &ci, CLAIM_MS);
    if (rc) {
        if (rc != COORD_ETIMEDOUT) fx_err(run, id, rc);
        return; /* asked again on the next turn */
    }
    int index = -1;
    item *it = delivered(k, ci, &index);
    if (!it) {
        coord_item_ack(ci);
        return;
    }
    atomic_store(&k->victim_item, index);
    fx_parked(run);
    int64_t t0 = coord__now_ms();
    rc = coord_item_ack(ci);
    atomic_store(&k->victim_ack_rc, rc);
    count_ack(run, id, it, rc, t0);
}

static int consumer(fx_run *run, int id, coord_queue *q) {
    checker *k = run->scn;
    while (!fx_stopping(run)) {
        if (id == VICTIM && fx_park_requested(run)) {
            victim_hold(run, id, q);
            continue;
        }
        int64_t t0 = coord__now_ms();
        coord_item *ci = NULL;
        int rc = coord_queue_claim(q, &ci, CLAIM_MS);
        if (rc == COORD_ETIMEDOUT && atomic_load(&k->stop_producers)) {
            atomic_fetch_add(&k->claim_idle, 1); /* drained, most likely */
            continue;
        }
        if (rc) {
            fx_err(run, id, rc);
            fx_nap(20);
            continue;
        }
        int index = -1;
        item *it = delivered(k, ci, &index);
        if (!it) {
            coord_item_ack(ci);
            continue;
        }
        if (id != VICTIM && index == atomic_load(&k->victim_item))
            atomic_store(&k->victim_redelivered_ms, coord__now_ms());
        count_ack(run, id, it, coord_item_ack(ci), t0);
    }
    return 0;
}

static int queue_worker(fx_run *run, int id, coord_client *c) {
    coord_queue *q;
    int rc = coord_queue_new(&q, c, QUEUE);
    if (rc) return fx_fail(run, id, "coord_queue_new: %s", coord_err_name(rc));
    rc = id < PRODUCERS ? producer(run, id, q) : consumer(run, id, q);
    atomic_store(&run->sh->w[id].session, coord_client_session(c));
    coord_queue_free(q);
    return rc;
}

static bool victim_taken_over(fx_run *run) {
    checker *k = run->scn;
    return atomic_load(&k->victim_redelivered_ms) != 0;
}

/* Every item whose put returned 0 went through an ack (0, or of unknown outcome). */
static long unacked_puts(checker *k) {
    long n = 0;
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < atomic_load(&k->next[p]); i++) {
            item *it = &k->it[p][i];
            if (atomic_load(&it->put) == PUT_OK && !atomic_load(&it->acks_ok) &&
                !atomic_load(&it->acks_unknown))
                n++;
        }
    return n;
}

/* Stop the producers, then wait (bounded) until the consumers emptied the queue; returns how
 * long that took (ms), `*backlog` the items there were then. */
static int64_t drain(fx_run *run, long *backlog) {
    checker *k = run->scn;
    atomic_store(&k->stop_producers, 1);
    int64_t t0 = coord__now_ms(), end = t0 + FX_WAIT_MS;
    while (atomic_load(&k->producers_done) < PRODUCERS) {
        if (coord__now_ms() >= end) {
            list_queue(run);
            fail_msg("%s queue: the producers did not stop", run->b->scheme);
        }
        fx_nap(10);
    }
    coord_client *c;
    coord_options o = COORD_OPTIONS_INIT;
    o.timeout_ms = FX_OP_TIMEOUT_MS;
    assert_int_equal(coord_client_open(&c, run->uri, &o), 0);
    coord_queue *q;
    assert_int_equal(coord_queue_new(&q, c, QUEUE), 0);
    end = coord__now_ms() + FX_WAIT_MS;
    int empty = 0;
    size_t n = 0;
    long left = 0;
    int64_t shown = coord__now_ms();
    *backlog = -1;
    while (empty < 2) { /* twice, a claim timeout apart: no claim was being given back */
        n = (size_t)-1;
        int rc = coord_queue_size(q, &n);
        left = unacked_puts(k);
        if (rc == 0 && *backlog < 0) *backlog = (long)n;
        if (coord__now_ms() - shown >= 5000) {
            shown = coord__now_ms();
            print_message("  %s queue: draining, %zu items (%s), %ld put and not acked\n",
                          run->b->scheme, n, coord_err_name(rc), left);
        }
        empty = rc == 0 && n == 0 && left == 0 ? empty + 1 : 0;
        if (empty == 2) break;
        if (coord__now_ms() >= end) {
            list_queue(run);
            fail_msg("%s queue: not drained within %d ms: size %zu (%s), %ld items put and not "
                     "acked",
                     run->b->scheme, FX_WAIT_MS, n, coord_err_name(rc), left);
        }
        fx_nap(empty ? CLAIM_MS + 200 : 50);
    }
    coord_queue_free(q);
    coord_client_close(c);
    return coord__now_ms() - t0;
}

/* After the workers ended: what is left in the queue (their claims went with their sessions). */
static long queue_left(fx_run *run) {
    coord_client *c;
    coord_options o = COORD_OPTIONS_INIT;
    o.timeout_ms = FX_OP_TIMEOUT_MS;
    assert_int_equal(coord_client_open(&c, run->uri, &o), 0);
    coord_queue *q;
    assert_int_equal(coord_queue_new(&q, c, QUEUE), 0);
    size_t n = 0;
    int rc = coord_queue_size(q, &n);
    if (rc) fail_msg("coord_queue_size: %s: %s", coord_err_name(rc), coord_last_error());
    coord_queue_free(q);
    coord_client_close(c);
    return (long)n;
}

static void queue_faults(void **state) {
    fx_run *run = fx_prepare(state, "queue", WORKERS, VICTIM, sizeof(checker));
    checker *k = run->scn;
    run->diagnose = list_queue;
    atomic_store(&k->victim_item, -1);
    atomic_store(&k->victim_ack_rc, 1);

    fx_launch(run, queue_worker);
    fx_await_ops(run, 40);
    fx_kill_leader(run);
    fx_pause_follower(run);
    fx_pause_victim(run, true, NULL, victim_taken_over);
    fx_await_recovered(run);
    long backlog;
    int64_t drain_ms = drain(run, &backlog);
    fx_finish(run);
    long left = queue_left(run);

    long puts = 0, maybe = 0, maybe_delivered = 0, delivered_items = 0, deliveries = 0;
    long acks = 0, acks_unknown = 0, acks_refused = 0, redelivered = 0, lost = 0, twice = 0;
    long unknown_gone = 0;
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < atomic_load(&k->next[p]); i++) {
            item *it = &k->it[p][i];
            int put = atomic_load(&it->put), d = atomic_load(&it->deliveries);
            int ok = atomic_load(&it->acks_ok), unk = atomic_load(&it->acks_unknown);
            puts += put == PUT_OK;
            maybe += put == PUT_MAYBE;
            maybe_delivered += put == PUT_MAYBE && d > 0;
            delivered_items += d > 0;
            deliveries += d;
            acks += ok;
            acks_unknown += unk;
            acks_refused += atomic_load(&it->acks_refused);
            redelivered += d > 1;
            if (put == PUT_OK && ok == 0 && unk == 0) {
                print_error("item %d:%d put and never acked (%d deliveries)\n", p, i, d);
                lost++;
            }
            unknown_gone += ok == 0 && unk > 0;
            if (ok > 1) {
                print_error("item %d:%d acked %d times with 0 (%d deliveries)\n", p, i, ok, d);
                twice++;
            }
        }
    long phantoms = atomic_load(&k->phantoms);
    int vi = atomic_load(&k->victim_item);
    int victim_rc = atomic_load(&k->victim_ack_rc);
    item *v = vi >= 0 ? &k->it[vi / MAX_ITEMS][vi % MAX_ITEMS] : NULL;
    int v_deliveries = v ? atomic_load(&v->deliveries) : 0;
    int v_acked_by = v ? atomic_load(&v->acked_by) - 1 : -1;
    int64_t v_redelivered = atomic_load(&k->victim_redelivered_ms);
    long violations = lost + twice + phantoms + left + (victim_rc == 0);
    char extra[512];
    snprintf(extra, sizeof extra,
             "puts %ld ok + %ld of unknown outcome (%ld of them delivered), deliveries %ld of "
             "%ld items, acks %ld ok + %ld unknown (%ld items only so) + %ld refused, items "
             "redelivered %ld, acked twice %ld, lost %ld, phantoms %ld, left %ld; victim's item "
             "%d:%d delivered %d times, redelivered %lld ms after the stop, acked by worker %d, "
             "the victim's ack %s; %ld items drained in %lld ms",
             puts, maybe, maybe_delivered, deliveries, delivered_items, acks, acks_unknown,
             unknown_gone, acks_refused, redelivered, twice, lost, phantoms, left,
             vi >= 0 ? vi / MAX_ITEMS : -1, vi >= 0 ? vi % MAX_ITEMS : -1, v_deliveries,
             (long long)(v_redelivered ? v_redelivered - run->victim_stop_ms : -1), v_acked_by,
             coord_err_name(victim_rc), backlog, (long long)drain_ms);
    int64_t stop_ms = run->victim_stop_ms;
    fx_report(run, violations, extra);
    assert_int_equal(violations, 0);
    assert_true(puts > 0);
    assert_true(vi >= 0);
    assert_int_not_equal(victim_rc, 0);
    assert_true(v_deliveries >= 2); /* redelivered after the victim's session ended */
    assert_int_not_equal(v_acked_by, VICTIM);
    assert_true(v_redelivered > stop_ms);
}

int main(void) {
    const struct CMUnitTest tests[] = {FX_TESTS(queue_faults)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
