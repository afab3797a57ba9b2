/*
 * The ring recipe on the fake backend (no server), both flavours: join, leave, lookups, the
 * rebuild on every change (the change callback's joined and left ids), a member id held by
 * another session, re-registration after a session loss, the unsure join (its answer lost), a
 * leave cut off by a dead server, and the worker's retries when listing fails.
 */
#include "testing.h"
#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *group_of(coord_client *c, const char *group, const char *member) {
    char *p = NULL;
    if (asprintf(&p, "%s/group/%s/%s", coord_client_prefix(c), group, member ? member : "") < 0)
        fail_msg("out of memory");
    return p;
}

static coord_ring *ring_with(coord_client *c, const char *group, coord_test_changes *rec) {
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    if (rec) {
        coord_test_changes_init(rec);
        o.on_change = coord_test_changes_cb;
        o.payload = rec;
    }
    coord_ring *r = NULL;
    int rc = coord_ring_new(&r, c, group, &o);
    if (rc) fail_msg("ring_new: %s", coord_last_error());
    return r;
}

static void join_leave(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_test_changes ch, chb;
    coord_ring *ra = ring_with(a, "g", &ch);
    coord_ring *rb = ring_with(b, "g", &chb);
    char out[64];
    assert_int_equal(coord_ring_epoch(ra), 0);
    assert_int_equal(coord_ring_lookup(ra, "k", 1, out, sizeof out), COORD_ENOTFOUND);
    assert_int_equal(coord_ring_join(ra, "m1", "data1", 5, 1), 0);
    assert_true(coord_test_ring_has(ra, "m1")); /* at once in the joining ring */
    assert_int_equal(coord_ring_join(ra, "m2", NULL, 0, 1), COORD_EINVAL); /* joined already */
    assert_int_equal(coord_ring_join(rb, "m2", "data2", 5, 3), 0);
    assert_true(coord_test_changes_wait(&ch, "m2", 1, 1, 5000));
    assert_int_equal(coord_ring_lookup(ra, "k", 1, out, sizeof out), 0);
    char out_b[64];
    /* the same epoch maps every key alike */
    assert_true(coord_test_changes_wait(&chb, "m1", 1, 1, 5000));
    assert_int_equal(coord_ring_epoch(ra), coord_ring_epoch(rb));
    for (int i = 0; i < 20; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "key%d", i);
        assert_int_equal(coord_ring_lookup(ra, key, (size_t)n, out, sizeof out), 0);
        assert_int_equal(coord_ring_lookup(rb, key, (size_t)n, out_b, sizeof out_b), 0);
        assert_string_equal(out, out_b);
    }
    assert_int_equal(coord_ring_lookup(ra, "k", 1, out, 2), COORD_EINVAL); /* too small */
    char *ids[3];
    size_t n = 0;
    assert_int_equal(coord_ring_lookup_n(ra, "k", 1, 3, ids, &n), 0);
    assert_int_equal(n, 2);
    assert_string_not_equal(ids[0], ids[1]);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    /* weights are stored with the data */
    char *p2 = group_of(a, "g", "m2");
    size_t len;
    char *v = fake_value(p2, &len);
    assert_non_null(strstr(v, "coord-weight=3"));
    free(v);
    /* leave: gone from every ring */
    assert_int_equal(coord_ring_leave(rb), 0);
    assert_int_equal(coord_ring_leave(rb), COORD_EINVAL); /* not joined */
    assert_true(coord_test_changes_wait(&ch, "m2", 0, 1, 5000));
    assert_false(coord_test_ring_has(ra, "m2"));
    assert_null(fake_value(p2, NULL));
    /* and back, under another id */
    assert_int_equal(coord_ring_join(rb, "m3", NULL, 0, 1), 0);
    assert_true(coord_test_changes_wait(&ch, "m3", 1, 1, 5000));
    /* free leaves */
    coord_ring_free(rb);
    assert_true(coord_test_changes_wait(&ch, "m3", 0, 1, 5000));
    coord_ring_free(ra);
    coord_test_changes_destroy(&ch);
    coord_test_changes_destroy(&chb);
    char *dir = group_of(a, "g", NULL);
    assert_int_equal(fake_count(dir), 0);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(p2);
    free(uri);
}

/* A member id held by another live session is COORD_EEXISTS; free once it goes. */
static void taken_id(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_ring *ra = ring_with(a, "t", NULL), *rb = ring_with(b, "t", NULL);
    assert_int_equal(coord_ring_join(ra, "same", "a", 1, 1), 0);
    assert_int_equal(coord_ring_join(rb, "same", "b", 1, 1), COORD_EEXISTS);
    assert_int_equal(coord_ring_leave(ra), 0);
    assert_int_equal(coord_ring_join(rb, "same", "b", 1, 1), 0);
    /* one handle of the same session with other data: taken too */
    coord_ring *rb2 = ring_with(b, "t", NULL);
    assert_int_equal(coord_ring_join(rb2, "same", "c", 1, 1), COORD_EEXISTS);
    coord_ring_free(rb2);
    coord_ring_free(rb);
    coord_ring_free(ra);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* A lost session takes the member with it; the client registers it again in the new one. */
static void session_loss(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_test_changes ch;
    coord_ring *ra = ring_with(a, "s", NULL);
    coord_ring *rb = ring_with(b, "s", &ch);
    assert_int_equal(coord_ring_join(ra, "ma", "x", 1, 1), 0);
    assert_true(coord_test_changes_wait(&ch, "ma", 1, 1, 5000));
    /* the re-registration is held back until the test has seen the member go, else the
     * other ring may never list the gap */
    fault_always(a, SLOT_PUT, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    fake_expire(a);
    assert_true(coord_test_changes_wait(&ch, "ma", 0, 1, 5000));
    fault_clear(a); /* the worker retries, backing off */
    assert_true(coord_test_changes_wait(&ch, "ma", 1, 2, 5000));
    char *p = group_of(a, "s", "ma");
    coord_kv kv = {0};
    coord_conn *k = coord__client_conn(a);
    assert_int_equal(k->backend->get_own(k, p, &kv, 1000), 0); /* in the new session */
    coord_kv_clear(&kv);
    coord_ring_free(ra);
    coord_ring_free(rb);
    coord_test_changes_destroy(&ch);
    coord_client_close(b);
    coord_client_close(a);
    free(p);
    free(uri);
}

/* A join whose answer is lost (applied or not) is unsure: a retry of the same join adopts the
 * entry it may have made; a leave, a join of another id or free removes it. */
static void unsure_join(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_ring *r = ring_with(a, "u", NULL);
    char *p = group_of(a, "u", "m"), *q = group_of(a, "u", "n"), *dir = group_of(a, "u", NULL);
    /* retried: adopted, one entry (the client's deletes of it fail meanwhile, else it could
     * remove the entry before the retry) */
    fault_always(a, SLOT_DEL, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    fault_once(a, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_ring_join(r, "m", "d", 1, 1), COORD_ETIMEDOUT);
    assert_int_equal(fake_count(dir), 1);
    assert_int_equal(coord_ring_join(r, "m", "d", 1, 1), 0);
    fault_clear(a);
    assert_int_equal(fake_count(dir), 1);
    assert_true(coord_test_ring_has(r, "m"));
    assert_int_equal(coord_ring_leave(r), 0);
    assert_int_equal(fake_count(dir), 0);
    /* left: removed */
    fault_once(a, SLOT_PUT, 1, COORD_EUNAVAILABLE, FAULT_AFTER);
    assert_int_equal(coord_ring_join(r, "m", "d", 1, 1), COORD_EUNAVAILABLE);
    int rc = coord_ring_leave(r); /* EINVAL: the client removed it already */
    assert_true(rc == 0 || rc == COORD_EINVAL);
    assert_int_equal(fake_count(dir), 0);
    /* not applied, then left: nothing to do */
    fault_once(a, SLOT_PUT, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_ring_join(r, "m", "d", 1, 1), COORD_EUNAVAILABLE);
    rc = coord_ring_leave(r);
    assert_true(rc == 0 || rc == COORD_EINVAL);
    /* another id: the unsure one goes first */
    fault_once(a, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_ring_join(r, "m", "d", 1, 1), COORD_ETIMEDOUT);
    assert_int_equal(coord_ring_join(r, "n", "d", 1, 1), 0);
    assert_null(fake_value(p, NULL));
    assert_int_equal(fake_count(dir), 1);
    assert_int_equal(coord_ring_leave(r), 0);
    /* the same id, other data: the old entry goes, the new one is made */
    fault_once(a, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_ring_join(r, "m", "d", 1, 1), COORD_ETIMEDOUT);
    assert_int_equal(coord_ring_join(r, "m", "other", 5, 1), 0);
    char *v = fake_value(p, NULL);
    assert_string_equal(v, "other");
    free(v);
    assert_int_equal(coord_ring_leave(r), 0);
    /* unsure and nobody asks again: the client removes it (its orphan) */
    coord_test_changes ch;
    coord_ring *rb = ring_with(b, "u", &ch);
    fault_once(a, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_ring_join(r, "m", "d", 1, 1), COORD_ETIMEDOUT);
    assert_int_equal(fake_await_count(dir, 0, 3000), 0);
    /* an entry of the id made by another session is not adopted */
    assert_int_equal(coord_ring_join(rb, "n", "d", 1, 1), 0);
    fault_once(a, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_BEFORE);
    assert_int_equal(coord_ring_join(r, "n", "d", 1, 1), COORD_ETIMEDOUT);
    assert_int_equal(coord_ring_join(r, "n", "d", 1, 1), COORD_EEXISTS);
    char *other = fake_value(q, NULL);
    assert_non_null(other);
    free(other);
    /* free of an unsure join removes it */
    fault_once(a, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_ring_join(r, "m", "d", 1, 1), COORD_ETIMEDOUT);
    coord_ring_free(r);
    assert_int_equal(fake_await_count(p, 0, 3000), 0);
    coord_ring_free(rb);
    coord_test_changes_destroy(&ch);
    coord_client_close(b);
    coord_client_close(a);
    free(p);
    free(q);
    free(dir);
    free(uri);
}

/* A leave cut off by a dead server returns 0 (handed to the client); once the server is back
 * the member disappears within a second, while a idles; the handle may join again at once. */
static void leave_cut_off(void **state) {
    char *uri;
    coord_client *a = fake_open(state, "timeout_ms=300", NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_test_changes ch;
    coord_ring *ra = ring_with(a, "l", NULL);
    coord_ring *rb = ring_with(b, "l", &ch);
    char *p = group_of(a, "l", "m");
    assert_int_equal(coord_ring_join(ra, "m", "d", 1, 1), 0);
    assert_true(coord_test_changes_wait(&ch, "m", 1, 1, 5000));
    fake_server_down();
    assert_int_equal(coord_ring_leave(ra), 0);
    assert_int_equal(fake_count(p), 1);
    fake_server_up();
    int64_t t0 = coord__now_ms();
    assert_true(coord_test_changes_wait(&ch, "m", 0, 1, 5000));
    assert_true(coord__now_ms() - t0 < 1000);
    assert_null(fake_value(p, NULL));
    /* applied, its answer lost: the retry finds it gone */
    assert_int_equal(coord_ring_join(ra, "m", "d", 1, 1), 0);
    assert_true(coord_test_changes_wait(&ch, "m", 1, 2, 5000));
    fault_once(a, SLOT_DEL, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_ring_leave(ra), 0);
    assert_null(fake_value(p, NULL));
    assert_int_equal(coord__orphan_count(a), 0);
    assert_true(coord_test_changes_wait(&ch, "m", 0, 2, 5000));
    /* cut off by faults on the delete alone (the server is fine): the same */
    assert_int_equal(coord_ring_join(ra, "m", "d", 1, 1), 0);
    assert_true(coord_test_changes_wait(&ch, "m", 1, 3, 5000));
    fault_always(a, SLOT_DEL, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_ring_leave(ra), 0);
    assert_int_equal(fake_count(p), 1);
    fault_clear(a);
    assert_true(coord_test_changes_wait(&ch, "m", 0, 3, 5000));
    /* left while cut off, then joined again at once: the old entry goes first */
    assert_int_equal(coord_ring_join(ra, "m", "d", 1, 1), 0);
    assert_true(coord_test_changes_wait(&ch, "m", 1, 4, 5000));
    fault_add(
        a,
        &(fault_rule){
            .slot = SLOT_DEL, .nth = 1, .count = 3, .code = COORD_EUNAVAILABLE, .delay_ms = 120});
    assert_int_equal(coord_ring_leave(ra), 0);
    assert_int_equal(coord_ring_join(ra, "m", "new", 3, 1), 0);
    char *v = fake_value(p, NULL);
    assert_string_equal(v, "new");
    free(v);
    /* an expired session drops the orphan: nothing to delete, nothing deleted */
    fake_server_down();
    assert_int_equal(coord_ring_leave(ra), 0);
    fake_expire(a);
    fake_server_up();
    assert_int_equal(fake_sync(a, 2000), 0);
    assert_int_equal(fake_await_count(p, 0, 2000), 0);
    /* the client's thread drops it once it sees the new session */
    assert_int_equal(coord__orphan_count_within(a, 3000), 0);
    coord_ring_free(ra);
    coord_ring_free(rb);
    coord_test_changes_destroy(&ch);
    coord_client_close(b);
    coord_client_close(a);
    free(p);
    free(uri);
}

/* Listing fails after a change: the worker retries, backing off, until the ring converges. */
static void worker_retries(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_test_changes ch;
    coord_ring *ra = ring_with(a, "w", &ch);
    coord_ring *rb = ring_with(b, "w", NULL);
    int f = fault_add(
        a, &(fault_rule){.slot = SLOT_LIST, .nth = 1, .count = 3, .code = COORD_EUNAVAILABLE});
    assert_int_equal(coord_ring_join(rb, "x", NULL, 0, 1), 0);
    assert_true(coord_test_changes_wait(&ch, "x", 1, 1, 5000));
    assert_int_equal(fault_hits(f), 3);
    /* a value update of a member is not a change of the set: same epoch */
    char *p = group_of(a, "w", "y");
    assert_int_equal(fake_write(p, "", 0, NULL), 0);
    assert_true(coord_test_changes_wait(&ch, "y", 1, 1, 5000));
    uint64_t e = coord_ring_epoch(ra);
    int changes = ch.changes;
    assert_int_equal(fake_write(p, "v", 1, NULL), 0);
    assert_int_equal(fake_sync(NULL, 2000), 0);
    assert_int_equal(coord_ring_epoch(ra), e);
    assert_int_equal(fake_remove(p), 0);
    assert_true(coord_test_changes_wait(&ch, "y", 0, 1, 5000));
    assert_int_equal(ch.changes, changes + 1);
    /* a ring whose first listing fails is not made (on a client of its own: the rule must not
     * meet a listing of ra's thread) */
    coord_client *d = fake_open_uri(uri, NULL);
    coord_ring *rc = NULL;
    fault_once(d, SLOT_LIST, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_ring_new(&rc, d, "w", NULL), COORD_EUNAVAILABLE);
    assert_null(rc);
    fault_once(d, SLOT_WATCH, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_ring_new(&rc, d, "w", NULL), COORD_EUNAVAILABLE);
    coord_client_close(d);
    coord_ring_free(rb);
    assert_true(coord_test_changes_wait(&ch, "x", 0, 1, 5000));
    coord_ring_free(ra);
    coord_test_changes_destroy(&ch);
    coord_client_close(b);
    coord_client_close(a);
    free(p);
    free(uri);
}

/* Many members, then half leave at once: every ring ends with the same set. */
static void churn(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_test_changes ch;
    coord_ring *watcher = ring_with(b, "c", &ch);
    coord_test_changes ch1;
    coord_ring *r[16];
    for (int i = 0; i < 16; i++) {
        char id[8];
        snprintf(id, sizeof id, "n%02d", i);
        r[i] = ring_with(a, "c", i == 1 ? &ch1 : NULL);
        assert_int_equal(coord_ring_join(r[i], id, id, strlen(id), (unsigned)(i % 3 + 1)), 0);
    }
    assert_true(coord_test_changes_wait(&ch, "n15", 1, 1, 5000));
    for (int i = 0; i < 16; i += 2)
        coord_ring_free(r[i]);
    assert_true(coord_test_changes_wait(&ch, "n14", 0, 1, 5000));
    assert_true(coord_test_changes_wait(&ch1, "n14", 0, 1, 5000));
    char **ids;
    size_t n;
    assert_int_equal(coord_ring_members(watcher, &ids, &n), 0);
    assert_int_equal(n, 8);
    coord_ring_strings_free(ids, n);
    assert_int_equal(coord_ring_epoch(watcher), coord_ring_epoch(r[1]));
    for (int i = 1; i < 16; i += 2)
        coord_ring_free(r[i]);
    coord_ring_free(watcher);
    coord_test_changes_destroy(&ch);
    coord_test_changes_destroy(&ch1);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        FAKE_BOTH(join_leave),  FAKE_BOTH(taken_id),      FAKE_BOTH(session_loss),
        FAKE_BOTH(unsure_join), FAKE_BOTH(leave_cut_off), FAKE_BOTH(worker_retries),
        FAKE_BOTH(churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
