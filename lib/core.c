/* Client lifecycle and session-state dispatch. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_SESSION_TTL_MS 10000
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_CONNECT_TIMEOUT_MS 5000

struct coord_client {
    const coord_backend *backend;
    coord_conn *conn;
    coord_uri *uri;
    coord_config cfg;
    coord_session_cb on_session;
    void *payload;
    _Atomic int state;
    /* Waiters of this client (lock acquires) sleep on condition variables of their own with
     * `mu`, so that an event wakes the one it concerns; `lost` counts expired sessions so a
     * hold can tell it outlived its session without any I/O. */
    pthread_mutex_t mu;
    _Atomic uint64_t lost;
    /* Recipes that keep state across sessions (ring memberships) hear of every state change. */
    pthread_mutex_t lmu;
    coord__listener *listeners;
    coord__closer *closers; /* lmu */
    /* Entries of this client the server may still hold, deleted in the background (orphan.c). */
    _Atomic(struct coord__orphans *) orphans;
    /* Loop mode (loop.c); handles keep the memory of a closed client until they are freed. */
    coord__loop *loop;
    _Atomic int refs;
    _Atomic bool closed;
};

static _Thread_local coord_client *in_callback;

const char *coord_version(void) {
    return COORD_VERSION_STRING;
}

int coord_options_init(coord_options *opts, unsigned version) {
    if (!opts) return coord_seterr(COORD_EINVAL, "options is NULL");
    if (version == 0 || version > COORD_OPTIONS_VERSION)
        return coord_seterr(COORD_EINVAL, "unsupported coord_options version %u (this library: %d)",
                            version, COORD_OPTIONS_VERSION);
    coord_options init = COORD_OPTIONS_INIT;
    *opts = init;
    opts->version = version;
    return 0;
}

struct timespec coord__deadline(int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ms < 0) ms = 0;
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int coord__cond_init(pthread_cond_t *cv) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

/* Loop mode: the application hears of a state inside process. */
static void session_in_loop(void *arg, int st) {
    coord_client *c = arg;
    c->on_session(c, (coord_session_state)st, c->payload);
}

static void on_state(void *core, coord_session_state st) {
    coord_client *c = core;
    atomic_store(&c->state, (int)st);
    if (st == COORD_SESSION_LOST) {
        pthread_mutex_lock(&c->mu);
        atomic_fetch_add(&c->lost, 1);
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_lock(&c->lmu);
    for (coord__listener *l = c->listeners; l; l = l->next)
        l->fn(l->payload, st);
    pthread_mutex_unlock(&c->lmu);
    if (c->on_session && c->loop) {
        coord__loop_post(c, session_in_loop, c, (int)st);
    } else if (c->on_session) {
        in_callback = c;
        c->on_session(c, st, c->payload);
        in_callback = NULL;
    }
}

void coord__client_listen(coord_client *c, coord__listener *l) {
    pthread_mutex_lock(&c->lmu);
    l->next = c->listeners;
    c->listeners = l;
    pthread_mutex_unlock(&c->lmu);
}

void coord__client_unlisten(coord_client *c, coord__listener *l) {
    pthread_mutex_lock(&c->lmu);
    for (coord__listener **pp = &c->listeners; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    pthread_mutex_unlock(&c->lmu);
}

void coord__client_on_close(coord_client *c, coord__closer *k) {
    pthread_mutex_lock(&c->lmu);
    k->next = c->closers;
    c->closers = k;
    pthread_mutex_unlock(&c->lmu);
}

void coord__client_off_close(coord_client *c, coord__closer *k) {
    pthread_mutex_lock(&c->lmu);
    for (coord__closer **pp = &c->closers; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    pthread_mutex_unlock(&c->lmu);
}

static int pick(int opt, int uri, int def) {
    return opt > 0 ? opt : uri > 0 ? uri : def;
}

int coord_client_open(coord_client **out, const char *uri, const coord_options *opts) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (opts && (opts->version == 0 || opts->version > COORD_OPTIONS_VERSION))
        return coord_seterr(COORD_EINVAL, "unsupported coord_options version %u", opts->version);
    if (opts && (opts->session_ttl_ms < 0 || opts->timeout_ms < 0 || opts->connect_timeout_ms < 0))
        return coord_seterr(COORD_EINVAL, "negative timeout in coord_options");

    /* The parser finds the table by scheme in the registry (lib/registry.c). */
    coord_uri *u;
    const coord_backend *b = NULL;
    int rc = coord__uri_parse(&u, uri, &b);
    if (rc) return rc;
    if ((rc = coord__backend_global_init(b))) {
        coord_uri_free(u);
        return rc;
    }
    coord_client *c = calloc(1, sizeof *c);
    if (!c) {
        coord_uri_free(u);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    c->backend = b;
    c->uri = u;
    c->cfg.uri = u;
    c->cfg.session_ttl_ms =
        pick(opts ? opts->session_ttl_ms : 0, u->session_ttl_ms, DEFAULT_SESSION_TTL_MS);
    c->cfg.timeout_ms = pick(opts ? opts->timeout_ms : 0, u->timeout_ms, DEFAULT_TIMEOUT_MS);
    c->cfg.connect_timeout_ms = pick(opts ? opts->connect_timeout_ms : 0, u->connect_timeout_ms,
                                     DEFAULT_CONNECT_TIMEOUT_MS);
    c->cfg.on_state = on_state;
    c->cfg.core = c;
    if (opts) {
        c->on_session = opts->on_session;
        c->payload = opts->payload;
    }
    atomic_init(&c->state, COORD_SESSION_CONNECTED);
    atomic_init(&c->lost, 0);
    atomic_init(&c->refs, 1);
    atomic_init(&c->closed, false);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->lmu, NULL);
    if (opts && opts->version >= 2 && opts->loop && (rc = coord__loop_open(&c->loop, c))) {
        pthread_mutex_destroy(&c->lmu);
        pthread_mutex_destroy(&c->mu);
        coord_uri_free(u);
        free(c);
        return rc;
    }
    if ((rc = b->open(&c->conn, &c->cfg))) {
        coord__loop_free(c->loop);
        pthread_mutex_destroy(&c->lmu);
        pthread_mutex_destroy(&c->mu);
        coord_uri_free(u);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void coord__client_ref(coord_client *c) {
    atomic_fetch_add(&c->refs, 1);
}

void coord__client_unref(coord_client *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    coord__loop_free(c->loop);
    pthread_mutex_destroy(&c->lmu);
    pthread_mutex_destroy(&c->mu);
    coord_uri_free(c->uri);
    free(c);
}

bool coord__client_closed(const coord_client *c) {
    return atomic_load(&((coord_client *)c)->closed);
}

coord__loop *coord__client_loop(coord_client *c) {
    return c->loop;
}

void coord_client_close(coord_client *c) {
    if (!c) return;
    if (in_callback || coord__loop_inside(c)) {
        /* Closing waits for the backend threads, one of which is running this callback. */
        coord_seterr(COORD_EINVAL, "coord_client_close called from a coord callback; ignored");
        return;
    }
    /* Loop mode: the operations in flight end first (their done runs here, on this thread),
     * while the backend still answers their unwatch. */
    coord__loop_close(c);
    /* Handles that outlive the close stop their threads and drop their watches now. */
    pthread_mutex_lock(&c->lmu);
    coord__closer *k = c->closers;
    c->closers = NULL;
    pthread_mutex_unlock(&c->lmu);
    for (coord__closer *next; k; k = next) {
        next = k->next;
        k->fn(k->payload);
    }
    coord__orphans_stop(c); /* before the session ends: ephemeral orphans go with it */
    c->backend->close(c->conn);
    /* Whatever a handle still holds went with the session: its frees must not reach out. */
    atomic_store(&c->closed, true);
    atomic_fetch_add(&c->lost, 1);
    coord__client_unref(c);
}

const char *coord_client_backend(const coord_client *c) {
    return c ? c->backend->name : NULL;
}

coord_session_state coord_client_state(const coord_client *c) {
    return (coord_session_state)atomic_load(&((coord_client *)c)->state);
}

uint64_t coord_client_session(const coord_client *c) {
    return c->backend->session(c->conn);
}

const char *coord_client_prefix(const coord_client *c) {
    return c->uri->prefix;
}

coord_conn *coord__client_conn(coord_client *c) {
    return c->conn;
}

int coord__client_timeout(const coord_client *c) {
    return c->cfg.timeout_ms;
}

uint64_t coord__session_epoch(const coord_client *c) {
    return atomic_load(&((coord_client *)c)->lost);
}

_Atomic(struct coord__orphans *) *coord__client_orphans(coord_client *c) {
    return &c->orphans;
}

void coord__client_lock(coord_client *c) {
    pthread_mutex_lock(&c->mu);
}

void coord__client_unlock(coord_client *c) {
    pthread_mutex_unlock(&c->mu);
}

void coord__client_signal(coord_client *c, pthread_cond_t *cv) {
    pthread_mutex_lock(&c->mu);
    pthread_cond_signal(cv);
    pthread_mutex_unlock(&c->mu);
}

int coord__client_wait_cv(coord_client *c, pthread_cond_t *cv, int64_t deadline_ms) {
    if (deadline_ms == INT64_MAX) return pthread_cond_wait(cv, &c->mu);
    struct timespec dl = coord__deadline(deadline_ms - coord__now_ms());
    return pthread_cond_timedwait(cv, &c->mu, &dl);
}
