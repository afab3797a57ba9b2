/**
 * @file coord/loop/libuv.h
 * @brief Run a loop-mode coord client inside a libuv loop (header-only adapter).
 *
 * @code
 * coord_options o = COORD_OPTIONS_INIT;
 * o.loop = true;
 * coord_client_open(&c, uri, &o);
 * coord_uv_attach(uv_default_loop(), c);
 * ... coord_counter_add_async(k, 1, on_added, arg); uv_run(uv_default_loop(), UV_RUN_DEFAULT);
 * coord_uv_detach(c);          // stops and closes the adapter's two handles
 * uv_run(loop, UV_RUN_NOWAIT); // lets libuv finish the closes (frees the adapter's state)
 * coord_client_close(c);
 * @endcode
 *
 * The adapter watches coord_client_fd() with a uv_poll_t for reading (libuv polls level-
 * triggered: readable while coord has work ready) and keeps a uv_timer_t armed from
 * coord_client_timeout(), re-armed after each coord_client_process() (-1: stopped; 0: process
 * runs on the loop's next turn). Every callback of the client, the `done` of each `_async` call
 * included, then runs on the loop's thread. Its state is a small allocation kept in the client's
 * loop-data slot (coord_client_set_loop_data), which it owns while attached.
 *
 * Needs libuv 1.x (Debian: libuv1-dev; link with `pkg-config --libs libuv`). A strict ISO C
 * build (-std=c99) must define _POSIX_C_SOURCE (200809L) for <uv.h> itself.
 */
#ifndef COORD_LOOP_LIBUV_H
#define COORD_LOOP_LIBUV_H

#include <stdint.h>
#include <stdlib.h>

#include <coord.h>
#include <uv.h>

/** @cond COORD_INTERNAL */
#ifdef __cplusplus
#define COORD_UV__CAST(type, v) (static_cast<type>(v))
#define COORD_UV__HANDLE(h) (reinterpret_cast<uv_handle_t *>(h))
extern "C" {
#else
#define COORD_UV__CAST(type, v) ((type)(v))
#define COORD_UV__HANDLE(h) ((uv_handle_t *)(h))
#endif

/* The adapter's state, in the client's loop-data slot while attached. */
typedef struct coord_uv__state {
    uv_poll_t poll;   /* watches coord_client_fd for reading */
    uv_timer_t timer; /* armed from coord_client_timeout */
    coord_client *c;
    int open;     /* handles not yet closed (the state is freed when it reaches 0) */
    int busy;     /* inside coord_client_process */
    int detached; /* coord_uv_detach ran (during process: the closes wait until it returns) */
} coord_uv__state;

static inline void coord_uv__on_close(uv_handle_t *h) {
    coord_uv__state *s = COORD_UV__CAST(coord_uv__state *, h->data);
    if (--s->open == 0) free(s);
}

static inline void coord_uv__close(coord_uv__state *s) {
    uv_poll_stop(&s->poll);
    uv_timer_stop(&s->timer);
    uv_close(COORD_UV__HANDLE(&s->poll), coord_uv__on_close);
    uv_close(COORD_UV__HANDLE(&s->timer), coord_uv__on_close);
}

static inline void coord_uv__on_timer(uv_timer_t *t);

/* Arm the timer from coord_client_timeout: stopped for -1, else due in that many ms. */
static inline void coord_uv__arm(coord_uv__state *s) {
    int ms = coord_client_timeout(s->c);
    if (ms < 0)
        uv_timer_stop(&s->timer);
    else
        uv_timer_start(&s->timer, coord_uv__on_timer, COORD_UV__CAST(uint64_t, ms), 0);
}

/* Run what is ready, then re-arm; a detach made by a callback inside process takes effect here
 * (the handles are closed once process has returned, so nothing freed is touched). */
static inline void coord_uv__run(coord_uv__state *s) {
    s->busy = 1;
    coord_client_process(s->c);
    s->busy = 0;
    if (s->detached)
        coord_uv__close(s);
    else
        coord_uv__arm(s);
}

static inline void coord_uv__on_timer(uv_timer_t *t) {
    coord_uv__run(COORD_UV__CAST(coord_uv__state *, t->data));
}

static inline void coord_uv__on_poll(uv_poll_t *p, int status, int events) {
    (void)status; /* an error on an eventfd cannot happen; process finds out what is ready */
    (void)events;
    coord_uv__run(COORD_UV__CAST(coord_uv__state *, p->data));
}
/** @endcond */

/**
 * Drive the loop-mode client `c` from the libuv loop `loop`: a uv_poll_t on coord_client_fd(c)
 * calls coord_client_process(c) whenever it is readable, and a uv_timer_t runs it when
 * coord_client_timeout(c) says so. From then on every callback of `c` (each `done` of an
 * `_async` call, session, ring, election and watch callbacks) runs on the loop's thread, inside
 * uv_run.
 *
 * Ownership: the adapter allocates a small state with its two handles and keeps it in the
 * client's loop-data slot (coord_client_set_loop_data) until coord_uv_detach; the application
 * must not use that slot meanwhile. `loop` and `c` stay the caller's; both must outlive the
 * attachment: detach before coord_client_close and before uv_loop_close.
 *
 * Thread: the loop's thread only (the one that runs uv_run on `loop`), like every libuv call.
 *
 * @return 0 when attached. COORD_EINVAL when `loop` or `c` is NULL, `c` is not in loop mode
 * (coord_options.loop), `c` is attached already (its loop-data slot is taken), or libuv refuses
 * to poll the descriptor; COORD_ENOMEM when the state cannot be allocated. On an error nothing
 * is set: no handle is left active and the loop-data slot is unchanged.
 */
static inline int coord_uv_attach(uv_loop_t *loop, coord_client *c) {
    if (!loop || !c) return COORD_EINVAL;
    int fd = coord_client_fd(c);
    if (fd < 0 || coord_client_loop_data(c)) return COORD_EINVAL;
    coord_uv__state *s = COORD_UV__CAST(coord_uv__state *, calloc(1, sizeof *s));
    if (!s) return COORD_ENOMEM;
    s->c = c;
    if (uv_poll_init(loop, &s->poll, fd) != 0) {
        free(s); /* not registered with the loop: nothing to close */
        return COORD_EINVAL;
    }
    uv_timer_init(loop, &s->timer);
    s->poll.data = s;
    s->timer.data = s;
    s->open = 2;
    if (uv_poll_start(&s->poll, UV_READABLE, coord_uv__on_poll) != 0) {
        coord_uv__close(s); /* the state goes with the closes, on the loop's next turn */
        return COORD_EINVAL;
    }
    coord_client_set_loop_data(c, s);
    coord_uv__arm(s);
    return 0;
}

/**
 * Stop driving `c`: its handles stop at once (no coord callback runs from this loop any more)
 * and are closed with uv_close; the adapter's state is freed by the close callbacks, so run the
 * loop once more (e.g. uv_run(loop, UV_RUN_NOWAIT), or the uv_run already in progress) before
 * uv_loop_close. The loop-data slot is cleared. NULL-safe; does nothing when `c` is not attached.
 * May be called from a callback of `c` running inside the loop (a `done`): the handles are then
 * closed once coord_client_process has returned.
 *
 * Thread: the loop's thread only.
 */
static inline void coord_uv_detach(coord_client *c) {
    coord_uv__state *s = c ? COORD_UV__CAST(coord_uv__state *, coord_client_loop_data(c)) : NULL;
    if (!s) return;
    coord_client_set_loop_data(c, NULL);
    s->detached = 1;
    if (s->busy) {
        uv_poll_stop(&s->poll); /* closed when process returns (coord_uv__run) */
        uv_timer_stop(&s->timer);
        return;
    }
    coord_uv__close(s);
}

#ifdef __cplusplus
}
#endif

#endif
