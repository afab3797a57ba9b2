/*
 * Counter under faults (3-member clusters, both backends). Every add either succeeded and is
 * counted exactly once, or failed and may or may not have been applied: succeeded <= final <=
 * succeeded + failed.
 *  - adds_under_faults: writer threads of one client, while a member is killed and restarted
 *    and the client's session is expired;
 *  - adds_under_fault_schedule: writer processes, each with its own client, under the fault
 *    suite's schedule (faults.h): leader killed and restarted, a follower stopped and resumed,
 *    one writer stopped past its session TTL.
 */
#include "faults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITERS 2
#define ADDS 300

typedef struct writer {
    coord_client *c;
    long ok, failed;
} writer;

static void *write_loop(void *p) {
    writer *w = p;
    coord_counter *k;
    if (coord_counter_new(&k, w->c, "faults", NULL)) return NULL;
    for (int i = 0; i < ADDS; i++) {
        if (coord_counter_add(k, 1, NULL) == 0)
            w->ok++;
        else
            w->failed++;
    }
    coord_counter_free(k);
    return NULL;
}

static void adds_under_faults(void **state) {
    const coord_test_backend *b = *state;
    char *uri = coord_test_uri(state, 1, "session_ttl_ms=4000&timeout_ms=2000");
    coord_client *c;
    if (coord_client_open(&c, uri, NULL)) fail_msg("open: %s", coord_last_error());
    writer ws[WRITERS];
    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        ws[i] = (writer){c, 0, 0};
        pthread_create(&th[i], NULL, write_loop, &ws[i]);
    }
    coord_test_servers("kill", b->servers_name, "1");
    coord_conn *k = coord__client_conn(c);
    /* With a member down, attaching to the session may take a few tries. */
    int rc = -1;
    for (int i = 0; i < 5 && rc != 0; i++)
        rc = k->backend->expire(k);
    assert_int_equal(rc, 0);
    coord_test_servers("restart", b->servers_name, "1");
    coord_test_servers("kill", b->servers_name, "3");
    coord_test_servers("restart", b->servers_name, "3");
    long ok = 0, failed = 0;
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        ok += ws[i].ok;
        failed += ws[i].failed;
    }
    assert_int_equal(ok + failed, WRITERS * ADDS);
    coord_counter *r;
    assert_int_equal(coord_counter_new(&r, c, "faults", NULL), 0);
    int64_t v = -1;
    int64_t end = coord__now_ms() + 15000;
    int grc;
    while ((grc = coord_counter_get(r, &v)) != 0 && coord__now_ms() < end)
        ;
    assert_int_equal(grc, 0);
    print_message("%s: %ld adds succeeded, %ld failed, final value %lld\n", b->scheme, ok, failed,
                  (long long)v);
    assert_true(v >= ok);
    assert_true(v <= ok + failed);
    coord_counter_free(r);
    coord_client_close(c);
    free(uri);
}

/* ---------- under the fault suite's schedule ---------- */

#define SCHED_WRITERS 3
#define SCHED_VICTIM 2
#define SCHED_PACE_MS 5 /* between a writer's adds: leaves the 2 cores to the servers */

typedef struct sched {
    _Atomic long attempts[SCHED_WRITERS];
} sched;

static int sched_writer(fx_run *run, int id, coord_client *c) {
    sched *s = run->scn;
    coord_counter *k;
    int rc = coord_counter_new(&k, c, "faults", NULL);
    if (rc) return fx_fail(run, id, "coord_counter_new: %s", coord_err_name(rc));
    while (!fx_stopping(run)) {
        int64_t t0 = coord__now_ms();
        atomic_fetch_add(&s->attempts[id], 1);
        rc = coord_counter_add(k, 1, NULL);
        if (rc) {
            fx_err(run, id, rc); /* the add may or may not have been applied */
            fx_nap(50);
            continue;
        }
        fx_ok(run, id, t0);
        fx_nap(SCHED_PACE_MS);
    }
    coord_counter_free(k);
    return 0;
}

static bool victim_adding(fx_run *run) {
    return coord__now_ms() - atomic_load(&run->sh->w[SCHED_VICTIM].last_ok_ms) < 500;
}

static void adds_under_fault_schedule(void **state) {
    fx_run *run = fx_prepare(state, "counter", SCHED_WRITERS, SCHED_VICTIM, sizeof(sched));
    sched *s = run->scn;
    fx_launch(run, sched_writer);
    fx_await_ops(run, 20);
    fx_kill_leader(run);
    fx_pause_follower(run);
    /* Stopped at any point, an add in flight or not. */
    fx_pause_victim(run, false, victim_adding, NULL);
    fx_finish(run);

    long ok = 0, failed = 0, attempts = 0;
    for (int i = 0; i < SCHED_WRITERS; i++) {
        ok += atomic_load(&run->sh->w[i].ops);
        failed += atomic_load(&run->sh->w[i].errors);
        attempts += atomic_load(&s->attempts[i]);
    }
    coord_client *c;
    if (coord_client_open(&c, run->uri, NULL)) fail_msg("open: %s", coord_last_error());
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "faults", NULL), 0);
    int64_t v = -1;
    int64_t end = coord__now_ms() + FX_WAIT_MS;
    int rc;
    while ((rc = coord_counter_get(k, &v)) != 0 && coord__now_ms() < end)
        fx_nap(100);
    assert_int_equal(rc, 0);
    coord_counter_free(k);
    coord_client_close(c);
    long violations = (v < ok) + (v > ok + failed) + (attempts != ok + failed);
    char extra[160];
    snprintf(extra, sizeof extra, "acknowledged %ld <= final %lld <= acknowledged + failed %ld", ok,
             (long long)v, ok + failed);
    fx_report(run, violations, extra);
    assert_int_equal(violations, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {COORD_CONFORMANCE(adds_under_faults),
                                       FX_TESTS(adds_under_fault_schedule)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
