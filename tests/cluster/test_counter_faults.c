/*
 * Counter under faults (3-member clusters, both backends): while writers add, a member is killed
 * and restarted and the client's session is expired. Every add either succeeded and is counted
 * exactly once, or failed and may or may not have been applied: succeeded <= final <=
 * succeeded + failed.
 */
#include "testing.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {COORD_CONFORMANCE(adds_under_faults)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
