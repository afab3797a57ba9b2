/*
 * Conformance: barrier and double barrier on real servers, one body for both backends; the double
 * barrier's participants are separate processes, and one of them is killed.
 */
#include "testing.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static coord_client *open_same(const char *uri) {
    coord_client *c = NULL;
    if (coord_client_open(&c, uri, NULL)) fail_msg("open %s: %s", uri, coord_last_error());
    return c;
}

typedef struct bwait {
    coord_barrier *b;
    int timeout_ms, rc;
    pthread_t th;
} bwait;

static void *bwait_main(void *arg) {
    bwait *w = arg;
    w->rc = coord_barrier_wait(w->b, w->timeout_ms);
    return NULL;
}

static void barrier(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri);
    coord_barrier *ba, *bb;
    assert_int_equal(coord_barrier_new(&ba, a, "gate"), 0);
    assert_int_equal(coord_barrier_new(&bb, b, "gate"), 0);
    assert_int_equal(coord_barrier_wait(bb, 0), 0); /* not raised */
    assert_int_equal(coord_barrier_lower(ba), 0);   /* lowering a lowered one */
    assert_int_equal(coord_barrier_raise(ba), 0);
    assert_int_equal(coord_barrier_raise(ba), 0); /* idempotent */
    assert_int_equal(coord_barrier_wait(bb, 0), COORD_ELOCKED);
    assert_int_equal(coord_barrier_wait(bb, 200), COORD_ETIMEDOUT);
    bwait w[3]; /* a handle per waiting thread (one thread at a time per handle) */
    for (int i = 0; i < 3; i++) {
        w[i] = (bwait){NULL, 20000, 1};
        assert_int_equal(coord_barrier_new(&w[i].b, b, "gate"), 0);
        pthread_create(&w[i].th, NULL, bwait_main, &w[i]);
    }
    /* it outlives its raiser's session */
    coord_barrier_free(ba);
    coord_client_close(a);
    assert_int_equal(coord_barrier_wait(bb, 0), COORD_ELOCKED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w[i].rc, 1);
    coord_barrier *low;
    assert_int_equal(coord_barrier_new(&low, b, "gate"), 0);
    assert_int_equal(coord_barrier_lower(low), 0); /* wakes every waiter */
    for (int i = 0; i < 3; i++) {
        pthread_join(w[i].th, NULL);
        assert_int_equal(w[i].rc, 0);
        coord_barrier_free(w[i].b);
    }
    /* cancel */
    assert_int_equal(coord_barrier_raise(low), 0);
    bwait c = {bb, -1, 1};
    pthread_create(&c.th, NULL, bwait_main, &c);
    coord_barrier_cancel(bb);
    pthread_join(c.th, NULL);
    assert_int_equal(c.rc, COORD_ECANCELED);
    assert_int_equal(coord_barrier_lower(low), 0);
    assert_int_equal(coord_barrier_wait(bb, 0), 0);
    coord_barrier_free(low);
    coord_barrier_free(bb);
    coord_barrier_free(NULL);
    coord_barrier *x;
    for (const char *const *n = coord_test_bad_names; *n; n++)
        assert_int_equal(coord_barrier_new(&x, b, *n), COORD_EINVAL);
    coord_client_close(b);
    free(uri);
}

/* ---- double barrier ---- */

typedef struct dwait {
    coord_dbarrier *d;
    int timeout_ms, rc;
    bool leave;
    pthread_t th;
} dwait;

static void *dwait_main(void *arg) {
    dwait *w = arg;
    w->rc = w->leave ? coord_dbarrier_leave(w->d, w->timeout_ms)
                     : coord_dbarrier_enter(w->d, w->timeout_ms);
    return NULL;
}

static size_t entries(coord_client *c, const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/dbarrier/%s", coord_client_prefix(c), name);
    coord_conn *k = coord__client_conn(c);
    coord_kv *kids = NULL;
    size_t n = 0;
    if (k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000))
        fail_msg("list %s: %s", dir, coord_last_error());
    coord_kv_array_free(kids, n);
    return n;
}

/* Three participants on threads of three clients: nobody passes enter before all are in, nobody
 * passes leave before all are out; a timed-out enter leaves nothing. */
static void double_barrier(void **state) {
    char *uri;
    coord_client *c[3];
    c[0] = coord_test_open(state, NULL, NULL, &uri);
    c[1] = open_same(uri);
    c[2] = open_same(uri);
    coord_dbarrier *d[3];
    assert_int_equal(coord_dbarrier_new(&d[0], c[0], "db", 0), COORD_EINVAL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(coord_dbarrier_new(&d[i], c[i], "db", 3), 0);
    assert_int_equal(coord_dbarrier_leave(d[0], 100), COORD_ENOTHELD);
    assert_int_equal(coord_dbarrier_enter(d[0], 0), COORD_ELOCKED);
    assert_int_equal(coord_dbarrier_enter(d[0], 200), COORD_ETIMEDOUT);
    assert_int_equal(entries(c[0], "db"), 0); /* nothing left behind */
    dwait w[3];
    for (int i = 0; i < 2; i++) {
        w[i] = (dwait){d[i], 20000, 1, false};
        pthread_create(&w[i].th, NULL, dwait_main, &w[i]);
    }
    struct timespec nap = {0, 5 * 1000000L};
    for (int64_t end = coord__now_ms() + 10000; entries(c[0], "db") != 2 && coord__now_ms() < end;)
        nanosleep(&nap, NULL);
    assert_int_equal(w[0].rc, 1);
    assert_int_equal(w[1].rc, 1);
    assert_int_equal(coord_dbarrier_enter(d[2], 10000), 0); /* the third completes the count */
    for (int i = 0; i < 2; i++) {
        pthread_join(w[i].th, NULL);
        assert_int_equal(w[i].rc, 0);
    }
    assert_int_equal(coord_dbarrier_enter(d[2], 0), COORD_EINVAL); /* entered already */
    /* leave: two go first and wait; the third's leave releases everyone */
    for (int i = 0; i < 2; i++) {
        w[i] = (dwait){d[i], 20000, 1, true};
        pthread_create(&w[i].th, NULL, dwait_main, &w[i]);
    }
    nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL); /* give them time to (wrongly) pass */
    assert_int_equal(w[0].rc, 1);
    assert_int_equal(w[1].rc, 1);
    assert_int_equal(coord_dbarrier_leave(d[2], 10000), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(w[i].th, NULL);
        assert_int_equal(w[i].rc, 0);
    }
    assert_int_equal(entries(c[0], "db"), 0); /* "ready" went with the last */
    for (int i = 0; i < 3; i++) {
        coord_dbarrier_free(d[i]);
        coord_client_close(c[i]);
    }
    free(uri);
}

/* Participants in separate processes; one is killed after entering: the others' leave returns
 * once its session is gone (it is counted out). */
static void double_barrier_processes(void **state) {
    char *uri = coord_test_uri(state, 0, NULL);
    enum { N = 3 };
    pid_t pid[N];
    int done[2];
    assert_int_equal(pipe(done), 0);
    for (int i = 0; i < N; i++) {
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) {
            close(done[0]);
            char u[1024];
            snprintf(u, sizeof u, "%s%ssession_ttl_ms=2000", uri, strchr(uri, '?') ? "&" : "?");
            coord_client *c;
            coord_dbarrier *d;
            if (coord_client_open(&c, u, NULL) || coord_dbarrier_new(&d, c, "procs", N)) _exit(1);
            if (coord_dbarrier_enter(d, 20000)) _exit(2);
            if (write(done[1], "e", 1) != 1) _exit(3);
            if (i == 0) pause(); /* the victim: killed while inside */
            if (coord_dbarrier_leave(d, 20000)) _exit(4);
            if (write(done[1], "l", 1) != 1) _exit(5);
            coord_dbarrier_free(d);
            coord_client_close(c);
            free(uri); /* the parent's copy: a leak checker follows the child */
            _exit(0);
        }
    }
    close(done[1]);
    char ch;
    for (int i = 0; i < N; i++)
        if (read(done[0], &ch, 1) != 1 || ch != 'e') fail_msg("a participant did not enter");
    int64_t t0 = coord__now_ms();
    kill(pid[0], SIGKILL);
    for (int i = 1; i < N; i++)
        if (read(done[0], &ch, 1) != 1 || ch != 'l') fail_msg("a participant did not leave");
    print_message("    the others left %lld ms after the kill (session TTL 2000)\n",
                  (long long)(coord__now_ms() - t0));
    for (int i = 0; i < N; i++) {
        int st;
        waitpid(pid[i], &st, 0);
        if (i > 0) assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    close(done[0]);
    coord_client *obs = open_same(uri);
    assert_int_equal(entries(obs, "procs"), 0);
    coord_client_close(obs);
    free(uri);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COORD_CONFORMANCE(barrier),
        COORD_CONFORMANCE(double_barrier),
        COORD_CONFORMANCE(double_barrier_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
