/*
 * loop_poll: coord driven from a plain poll(2) loop (loop mode, no libuv or libevent needed).
 *
 *   loop_poll --uri zk://127.0.0.1:2181/demo
 *   COORD_URI=etcd://127.0.0.1:2379/demo loop_poll --adds 1000 --inflight 64 --name demo
 *
 * One loop-mode client, one thread. It adds 1 to the counter NAME (default "loop_poll") A times
 * (default 1000), keeping F adds in flight (default 64: each add's done starts the next), and
 * meanwhile takes the lock NAME with coord_lock_acquire_async, then gives it back with
 * coord_lock_release_async. The loop is the whole of the integration:
 *
 *   poll() on coord_client_fd() for reading, with coord_client_timeout() as its timeout, then
 *   coord_client_process(), which runs the dones on this thread.
 *
 * It prints the counter before and after, the adds' rate and the lock's fencing token, and exits
 * 0 when every add succeeded and the counter grew by exactly A (nobody else adding meanwhile),
 * 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <coord.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

#define BOUND_MS 60000 /* the whole run, at most */

typedef struct state {
    coord_counter *k;
    coord_lock *l;
    int adds, inflight; /* to make; at most in flight */
    int started, ok, failed;
    int64_t last; /* highest value an add returned */
    bool locked, lock_done, unlock_done;
    int lock_rc, unlock_rc;
    uint64_t token;
} state;

static void on_add(int rc, int64_t value, void *payload);

/* Start adds until `inflight` are in flight or all are started. */
static void top_up(state *s) {
    while (s->started < s->adds && s->started - s->ok - s->failed < s->inflight) {
        int rc = coord_counter_add_async(s->k, 1, on_add, s);
        if (rc) {
            fprintf(stderr, "loop_poll: add: %s: %s\n", coord_strerror(rc), coord_last_error());
            s->failed++; /* never started: its done will not run */
        }
        s->started++;
    }
}

static void on_add(int rc, int64_t value, void *payload) {
    state *s = payload;
    if (rc) {
        if (++s->failed <= 5)
            fprintf(stderr, "loop_poll: add failed, it may or may not have been applied: %s: %s\n",
                    coord_strerror(rc), coord_last_error());
    } else {
        s->ok++;
        if (value > s->last) s->last = value;
    }
    top_up(s); /* a done may start more work: it runs on the next process */
}

static void on_unlocked(int rc, void *payload) {
    state *s = payload;
    s->unlock_rc = rc;
    s->unlock_done = true;
}

static void on_locked(int rc, void *payload) {
    state *s = payload;
    s->lock_rc = rc;
    s->lock_done = true;
    if (rc) {
        s->unlock_done = true;
        return;
    }
    s->locked = true;
    coord_lock_token(s->l, &s->token);
    /* The critical section would go here; give the lock back at once. */
    rc = coord_lock_release_async(s->l, on_unlocked, s);
    if (rc) on_unlocked(rc, s);
}

static bool finished(const state *s) {
    return s->ok + s->failed == s->adds && s->lock_done && s->unlock_done;
}

int main(int argc, char **argv) {
    const char *uri, *name = "loop_poll";
    int adds = 1000, inflight = 64;
    const ex_opt opts[] = {
        {"--name", &name, .name = 1},
        {"--adds", .num = &adds, .lo = 1, .hi = INT_MAX},
        {"--inflight", .num = &inflight, .lo = 1, .hi = 100000},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "loop_poll",
                      "usage: %s [--uri URI] [--adds A] [--inflight F] [--name NAME]\n"
                      "  URI from --uri or COORD_URI; defaults: 1000 adds, 64 in flight, name "
                      "\"loop_poll\"\n",
                      opts, &uri);
    if (rc) return rc < 0 ? 0 : rc;

    coord_options o = COORD_OPTIONS_INIT;
    o.loop = true; /* every callback runs inside coord_client_process */
    coord_client *c;
    if ((rc = coord_client_open(&c, uri, &o))) {
        fprintf(stderr, "loop_poll: connect: %s: %s\n", coord_strerror(rc), coord_last_error());
        return 1;
    }
    state s = {.adds = adds, .inflight = inflight};
    int64_t before = 0;
    if ((rc = coord_counter_new(&s.k, c, name, NULL)) || (rc = coord_lock_new(&s.l, c, name)) ||
        (rc = coord_counter_get(s.k, &before))) {
        fprintf(stderr, "loop_poll: %s: %s: %s\n", name, coord_strerror(rc), coord_last_error());
        coord_counter_free(s.k);
        coord_client_close(c);
        return 1;
    }

    int64_t t0 = ex_now_ms();
    if ((rc = coord_lock_acquire_async(s.l, 10000, on_locked, &s))) {
        s.lock_rc = rc;
        s.lock_done = s.unlock_done = true;
    }
    top_up(&s);

    /* The event loop: wait for the descriptor (or coord's timeout), then let coord run. */
    int64_t end = t0 + BOUND_MS;
    while (!finished(&s) && ex_now_ms() < end) {
        struct pollfd p = {.fd = coord_client_fd(c), .events = POLLIN};
        int ms = coord_client_timeout(c);
        int64_t left = end - ex_now_ms();
        if (ms < 0 || ms > left) ms = (int)left;
        if (poll(&p, 1, ms) < 0 && errno != EINTR) {
            fprintf(stderr, "loop_poll: poll: %s\n", strerror(errno));
            break;
        }
        if ((rc = coord_client_process(c)) < 0) {
            fprintf(stderr, "loop_poll: process: %s: %s\n", coord_strerror(rc), coord_last_error());
            break;
        }
    }
    int64_t ms = ex_now_ms() - t0;
    int status = 0;
    if (!finished(&s)) {
        fprintf(stderr, "loop_poll: gave up after %d ms\n", BOUND_MS);
        status = 1;
    }

    int64_t after = 0;
    if ((rc = coord_counter_get(s.k, &after))) {
        fprintf(stderr, "loop_poll: read %s: %s: %s\n", name, coord_strerror(rc),
                coord_last_error());
        status = 1;
    }
    bool exact = s.failed == 0 && after - before == adds;
    printf("[%s] %d adds, %d in flight, in %" PRId64 " ms (%.0f/s): %d ok, %d failed; counter "
           "%s went from %" PRId64 " to %" PRId64 ": %s\n",
           coord_client_backend(c), adds, inflight, ms, ms > 0 ? adds * 1000.0 / (double)ms : 0.0,
           s.ok, s.failed, name, before, after, exact ? "exact" : "MISMATCH");
    if (!exact) status = 1;
    if (s.lock_rc)
        printf("[%s] lock %s: not taken: %s\n", coord_client_backend(c), name,
               coord_strerror(s.lock_rc));
    else
        printf("[%s] lock %s: taken (token %" PRIu64 ") and released: %s\n",
               coord_client_backend(c), name, s.token,
               s.unlock_rc ? coord_strerror(s.unlock_rc) : "ok");
    if (s.lock_rc || s.unlock_rc) status = 1;

    s.adds = s.started; /* a done run by the close below starts nothing */
    coord_lock_free(s.l);
    coord_counter_free(s.k);
    coord_client_close(c); /* runs the done of anything still in flight (COORD_ECANCELED) */
    return status;
}
