/**
 * @file coord/loop/libevent.h
 * @brief Run a loop-mode coord client inside a libevent event_base (header-only adapter).
 *
 * @code
 * coord_options o = COORD_OPTIONS_INIT;
 * o.loop = true;
 * coord_client_open(&c, uri, &o);
 * struct event_base *base = event_base_new();
 * coord_event_attach(base, c);
 * ... coord_counter_add_async(k, 1, on_added, arg); event_base_dispatch(base);
 * coord_event_detach(c); // frees the adapter's two events and its state at once
 * coord_client_close(c);
 * event_base_free(base);
 * @endcode
 *
 * The adapter watches coord_client_fd() with an EV_READ|EV_PERSIST event (level-triggered:
 * readable while coord has work ready) and keeps a timer event armed from
 * coord_client_timeout(), re-armed after each coord_client_process() (-1: not pending; 0:
 * process runs on the loop's next turn). Every callback of the client, the `done` of each
 * `_async` call included, then runs on the loop's thread. Its state is a small allocation kept in
 * the client's loop-data slot (coord_client_set_loop_data), which it owns while attached.
 *
 * Needs libevent 2.x (Debian: libevent-dev; link with `pkg-config --libs libevent`).
 */
#ifndef COORD_LOOP_LIBEVENT_H
#define COORD_LOOP_LIBEVENT_H

#include <stdlib.h>

#include <coord.h>
#include <event2/event.h>

/** @cond COORD_INTERNAL */
#ifdef __cplusplus
#define COORD_EVENT__CAST(type, v) (static_cast<type>(v))
extern "C" {
#else
#define COORD_EVENT__CAST(type, v) ((type)(v))
#endif

/* The adapter's state, in the client's loop-data slot while attached. */
typedef struct coord_event__state {
    struct event *rd;    /* coord_client_fd, EV_READ|EV_PERSIST */
    struct event *timer; /* armed from coord_client_timeout */
    coord_client *c;
    int busy;     /* inside coord_client_process */
    int detached; /* coord_event_detach ran during process: free when it returns */
} coord_event__state;

static inline void coord_event__free(coord_event__state *s) {
    if (s->rd) event_free(s->rd);
    if (s->timer) event_free(s->timer);
    free(s);
}

/* Arm the timer from coord_client_timeout: not pending for -1, else due in that many ms. */
static inline void coord_event__arm(coord_event__state *s) {
    int ms = coord_client_timeout(s->c);
    if (ms < 0) {
        event_del(s->timer);
        return;
    }
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    event_add(s->timer, &tv);
}

/* Run what is ready, then re-arm; a detach made by a callback inside process frees the state
 * here, once process has returned. Both events call this. */
static inline void coord_event__run(evutil_socket_t fd, short what, void *arg) {
    coord_event__state *s = COORD_EVENT__CAST(coord_event__state *, arg);
    (void)fd;
    (void)what;
    s->busy = 1;
    coord_client_process(s->c);
    s->busy = 0;
    if (s->detached)
        coord_event__free(s);
    else
        coord_event__arm(s);
}
/** @endcond */

/**
 * Drive the loop-mode client `c` from the libevent loop `base`: a persistent read event on
 * coord_client_fd(c) calls coord_client_process(c) whenever it is readable, and a timer event
 * runs it when coord_client_timeout(c) says so. From then on every callback of `c` (each `done`
 * of an `_async` call, session, ring, election and watch callbacks) runs on the loop's thread,
 * inside event_base_dispatch / event_base_loop.
 *
 * Ownership: the adapter allocates a small state with its two events and keeps it in the
 * client's loop-data slot (coord_client_set_loop_data) until coord_event_detach; the application
 * must not use that slot meanwhile. `base` and `c` stay the caller's; both must outlive the
 * attachment: detach before coord_client_close and before event_base_free.
 *
 * Thread: the loop's thread only (the one that runs `base`).
 *
 * @return 0 when attached. COORD_EINVAL when `base` or `c` is NULL, `c` is not in loop mode
 * (coord_options.loop), `c` is attached already (its loop-data slot is taken), or libevent
 * refuses to watch the descriptor; COORD_ENOMEM when the state or an event cannot be allocated.
 * On an error nothing is set: no event is left and the loop-data slot is unchanged.
 */
static inline int coord_event_attach(struct event_base *base, coord_client *c) {
    if (!base || !c) return COORD_EINVAL;
    int fd = coord_client_fd(c);
    if (fd < 0 || coord_client_loop_data(c)) return COORD_EINVAL;
    coord_event__state *s = COORD_EVENT__CAST(coord_event__state *, calloc(1, sizeof *s));
    if (!s) return COORD_ENOMEM;
    s->c = c;
    s->rd = event_new(base, fd, EV_READ | EV_PERSIST, coord_event__run, s);
    s->timer = event_new(base, -1, 0, coord_event__run, s);
    if (!s->rd || !s->timer) {
        coord_event__free(s);
        return COORD_ENOMEM;
    }
    if (event_add(s->rd, NULL) != 0) {
        coord_event__free(s);
        return COORD_EINVAL;
    }
    coord_client_set_loop_data(c, s);
    coord_event__arm(s);
    return 0;
}

/**
 * Stop driving `c`: its two events are deleted and freed with the adapter's state at once (no
 * coord callback runs from this loop any more), and the loop-data slot is cleared. NULL-safe;
 * does nothing when `c` is not attached. May be called from a callback of `c` running inside the
 * loop (a `done`): the state is then freed once coord_client_process has returned.
 *
 * Thread: the loop's thread only.
 */
static inline void coord_event_detach(coord_client *c) {
    coord_event__state *s =
        c ? COORD_EVENT__CAST(coord_event__state *, coord_client_loop_data(c)) : NULL;
    if (!s) return;
    coord_client_set_loop_data(c, NULL);
    if (s->busy) {
        s->detached = 1;
        event_del(s->rd);
        event_del(s->timer);
        return;
    }
    coord_event__free(s);
}

#ifdef __cplusplus
}
#endif

#endif
