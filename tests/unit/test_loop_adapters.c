/*
 * The event-loop adapters (coord/loop/libuv.h, coord/loop/libevent.h) on the fake backend, both
 * flavours: a loop-mode client attached to a libuv loop and to a libevent base runs 64 counter
 * adds in flight and a lock acquire that waits behind a holder (another client, blocking API);
 * each done runs once, inside coord_client_process on the loop's thread. Then the refusals of
 * attach, a detach from inside a done, and the loop left with nothing of the adapter's.
 */
#include "testing.h"
#include "fake_backend.h"

#include <coord/loop/libevent.h>
#include <coord/loop/libuv.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDS 64
#define BOUND_MS 10000

/* One run: what the dones saw. */
typedef struct run {
    coord_client *c;   /* loop mode, attached */
    coord_client *h;   /* the holder's client (blocking API) */
    coord_counter *k;  /* on c */
    coord_lock *w;     /* on c: the async acquire */
    coord_lock *hold;  /* on h: holds the lock until the acquire waits */
    pthread_t loop;    /* the loop's thread */
    int outside;       /* dones run outside process or on another thread */
    int adds, add_bad; /* add dones; ones with an error or a value seen already */
    bool seen[ADDS + 1];
    int acq_calls, acq_rc, rel_calls, rel_rc;
    bool released; /* the holder let go */
    bool early;    /* the acquire completed before the holder let go */
    bool finished;
    void (*stop)(struct run *r); /* end the loop (when finished) */
    void *ctx;                   /* the loop (uv_loop_t *, struct event_base *) */
} run;

static void check_thread(run *r) {
    if (!pthread_equal(pthread_self(), r->loop) || !coord__loop_inside(r->c)) r->outside++;
}

static void maybe_finish(run *r) {
    if (r->adds == ADDS && r->rel_calls == 1 && !r->finished) {
        r->finished = true;
        r->stop(r);
    }
}

static void on_add(int rc, int64_t value, void *payload) {
    run *r = payload;
    check_thread(r);
    if (rc || value < 1 || value > ADDS || r->seen[value])
        r->add_bad++;
    else
        r->seen[value] = true;
    r->adds++;
    maybe_finish(r);
}

static void on_released(int rc, void *payload) {
    run *r = payload;
    check_thread(r);
    r->rel_rc = rc;
    r->rel_calls++;
    maybe_finish(r);
}

static void on_acquired(int rc, void *payload) {
    run *r = payload;
    check_thread(r);
    r->acq_rc = rc;
    r->acq_calls++;
    if (!r->released) r->early = true;
    if (rc == 0 && coord_lock_release_async(r->w, on_released, r) != 0) r->rel_calls = -100;
}

/* Called every few ms from the loop: once the acquire waits behind the holder, release it. */
static void tick(run *r) {
    if (!r->released && coord__lock_waiting(r->w)) {
        if (coord_lock_release(r->hold) != 0) fail_msg("release: %s", coord_last_error());
        r->released = true;
    }
}

static coord_client *open_loop(const char *uri) {
    coord_options o = COORD_OPTIONS_INIT;
    o.loop = true;
    coord_client *c = NULL;
    int rc = coord_client_open(&c, uri, &o);
    if (rc) fail_msg("open %s: %s: %s", uri, coord_strerror(rc), coord_last_error());
    return c;
}

static char *new_uri(void **state) {
    static _Atomic int n;
    char *uri = NULL;
    if (asprintf(&uri, "%s://local/unit/adapters-p%ld-%d", (const char *)*state, (long)getpid(),
                 atomic_fetch_add(&n, 1)) < 0)
        fail_msg("out of memory");
    return uri;
}

/* Open both clients, hold the lock from the holder, start the adds and the acquire. */
static void start(void **state, run *r) {
    char *uri = new_uri(state);
    r->c = open_loop(uri);
    r->h = fake_open_uri(uri, NULL);
    free(uri);
    r->loop = pthread_self();
    assert_int_equal(coord_counter_new(&r->k, r->c, "adds", NULL), 0);
    assert_int_equal(coord_lock_new(&r->w, r->c, "l"), 0);
    assert_int_equal(coord_lock_new(&r->hold, r->h, "l"), 0);
    assert_int_equal(coord_lock_acquire(r->hold, 5000), 0);
    for (int i = 0; i < ADDS; i++)
        assert_int_equal(coord_counter_add_async(r->k, 1, on_add, r), 0);
    assert_int_equal(coord_lock_acquire_async(r->w, BOUND_MS, on_acquired, r), 0);
}

static void check_and_end(run *r) {
    assert_true(r->finished);
    assert_int_equal(r->outside, 0);
    assert_int_equal(r->adds, ADDS);
    assert_int_equal(r->add_bad, 0);
    for (int i = 1; i <= ADDS; i++)
        assert_true(r->seen[i]);
    assert_int_equal(r->acq_calls, 1);
    assert_int_equal(r->acq_rc, 0);
    assert_false(r->early);
    assert_int_equal(r->rel_calls, 1);
    assert_int_equal(r->rel_rc, 0);
    int64_t v = 0;
    assert_int_equal(coord_counter_get(r->k, &v), 0);
    assert_int_equal(v, ADDS);
    coord_counter_free(r->k);
    coord_lock_free(r->w);
    coord_lock_free(r->hold);
    coord_client_close(r->c);
    coord_client_close(r->h);
}

/* ---- libuv ---- */

static void luv_stop_run(run *r) {
    uv_stop(r->ctx);
}

static void luv_on_tick(uv_timer_t *t) {
    tick(t->data);
}

static void luv_on_bound(uv_timer_t *t) {
    run *r = t->data;
    uv_stop(r->ctx); /* r->finished stays false: the check fails */
}

static void luv_stop_bound(uv_timer_t *t) {
    uv_stop(t->data);
}

static void luv_closed(uv_handle_t *h) {
    (void)h;
}

static void with_libuv(void **state) {
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    run r = {.stop = luv_stop_run, .ctx = &loop};
    start(state, &r);
    /* refusals: NULLs, a client outside loop mode, a client attached already */
    assert_int_equal(coord_uv_attach(NULL, r.c), COORD_EINVAL);
    assert_int_equal(coord_uv_attach(&loop, NULL), COORD_EINVAL);
    assert_int_equal(coord_uv_attach(&loop, r.h), COORD_EINVAL);
    assert_null(coord_client_loop_data(r.c));
    assert_int_equal(coord_uv_attach(&loop, r.c), 0);
    assert_non_null(coord_client_loop_data(r.c));
    assert_int_equal(coord_uv_attach(&loop, r.c), COORD_EINVAL);

    uv_timer_t ticker, bound;
    uv_timer_init(&loop, &ticker);
    uv_timer_init(&loop, &bound);
    ticker.data = bound.data = &r;
    uv_timer_start(&ticker, luv_on_tick, 5, 5);
    uv_timer_start(&bound, luv_on_bound, BOUND_MS, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!r.finished)
        fail_msg("libuv: not every done ran in %d ms (adds %d, acquire %d, release %d)", BOUND_MS,
                 r.adds, r.acq_calls, r.rel_calls);

    coord_uv_detach(r.c);
    assert_null(coord_client_loop_data(r.c));
    coord_uv_detach(r.c); /* not attached: nothing */
    uv_close((uv_handle_t *)&ticker, luv_closed);
    uv_close((uv_handle_t *)&bound, luv_closed);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* finishes the closes */
    assert_int_equal(uv_loop_close(&loop), 0);          /* nothing of the adapter left */
    check_and_end(&r);
}

/* A done that detaches its own client, from inside process. */
typedef struct self_detach {
    coord_client *c;
    int calls;
    void (*detach)(coord_client *c);
} self_detach;

static void on_add_detach(int rc, int64_t value, void *payload) {
    (void)value;
    self_detach *d = payload;
    assert_int_equal(rc, 0);
    d->calls++;
    d->detach(d->c);
}

static void luv_detach_inside(void **state) {
    char *uri = new_uri(state);
    coord_client *c = open_loop(uri);
    free(uri);
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "d", NULL), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(coord_uv_attach(&loop, c), 0);
    self_detach d = {c, 0, coord_uv_detach};
    assert_int_equal(coord_counter_add_async(k, 1, on_add_detach, &d), 0);
    /* the bound keeps no loop alive: uv_run returns once the adapter's handles are closed */
    uv_timer_t bound;
    uv_timer_init(&loop, &bound);
    bound.data = &loop;
    uv_timer_start(&bound, luv_stop_bound, BOUND_MS, 0);
    uv_unref((uv_handle_t *)&bound);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(d.calls, 1);
    assert_null(coord_client_loop_data(c));
    uv_close((uv_handle_t *)&bound, luv_closed);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    coord_counter_free(k);
    coord_client_close(c);
}

/* ---- libevent ---- */

static void lev_stop_run(run *r) {
    event_base_loopbreak(r->ctx);
}

static void lev_on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    tick(arg);
}

/* Run `base` one turn at a time until *flag or BOUND_MS. */
static void lev_run_until(struct event_base *base, const bool *flag) {
    int64_t end = coord__now_ms() + BOUND_MS;
    while (!*flag && coord__now_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
}

static void with_libevent(void **state) {
    struct event_base *base = event_base_new();
    assert_non_null(base);
    run r = {.stop = lev_stop_run, .ctx = base};
    start(state, &r);
    assert_int_equal(coord_event_attach(NULL, r.c), COORD_EINVAL);
    assert_int_equal(coord_event_attach(base, NULL), COORD_EINVAL);
    assert_int_equal(coord_event_attach(base, r.h), COORD_EINVAL);
    assert_null(coord_client_loop_data(r.c));
    assert_int_equal(coord_event_attach(base, r.c), 0);
    assert_non_null(coord_client_loop_data(r.c));
    assert_int_equal(coord_event_attach(base, r.c), COORD_EINVAL);

    struct event *ticker = event_new(base, -1, EV_PERSIST, lev_on_tick, &r);
    assert_non_null(ticker);
    struct timeval five = {0, 5000};
    assert_int_equal(event_add(ticker, &five), 0);
    lev_run_until(base, &r.finished);
    if (!r.finished)
        fail_msg("libevent: not every done ran in %d ms (adds %d, acquire %d, release %d)",
                 BOUND_MS, r.adds, r.acq_calls, r.rel_calls);

    coord_event_detach(r.c);
    assert_null(coord_client_loop_data(r.c));
    coord_event_detach(r.c);
    event_free(ticker);
    assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
    event_base_free(base);
    check_and_end(&r);
}

static void lev_detach_inside(void **state) {
    char *uri = new_uri(state);
    coord_client *c = open_loop(uri);
    free(uri);
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "d", NULL), 0);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    assert_int_equal(coord_event_attach(base, c), 0);
    self_detach d = {c, 0, coord_event_detach};
    assert_int_equal(coord_counter_add_async(k, 1, on_add_detach, &d), 0);
    bool detached = false;
    int64_t end = coord__now_ms() + BOUND_MS;
    while (!detached && coord__now_ms() < end) {
        struct timeval ms10 = {0, 10000};
        event_base_loopexit(base, &ms10);
        event_base_dispatch(base);
        detached = d.calls > 0;
    }
    assert_int_equal(d.calls, 1);
    assert_null(coord_client_loop_data(c));
    assert_int_equal(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
    event_base_free(base);
    coord_counter_free(k);
    coord_client_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        FAKE_BOTH(with_libuv),
        FAKE_BOTH(luv_detach_inside),
        FAKE_BOTH(with_libevent),
        FAKE_BOTH(lev_detach_inside),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
