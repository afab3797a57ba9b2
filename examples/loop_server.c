/*
 * loop_server: a libuv TCP server that coordinates through coord without leaving its loop.
 *
 *   loop_server --uri zk://127.0.0.1:2181/demo [--port 7000] [--name NAME] [--id ID]
 *   loop_server --uri etcd://127.0.0.1:2379/demo --self-test 5
 *
 * One thread, one libuv loop, one loop-mode client attached with coord_uv_attach
 * (<coord/loop/libuv.h>). On that thread it
 *
 *  - campaigns for leadership of the election NAME (coord_election_campaign_async, the value
 *    being its address) and says when it leads;
 *  - joins the ring NAME as member ID (coord_ring_join_async) and reports the ring's changes;
 *  - listens on 127.0.0.1:PORT (0, the default: a port the system picks, printed) and answers
 *    each line a client sends with "count N": the number of requests served, counted in the
 *    counter NAME by coord_counter_add_async;
 *  - meanwhile keeps a lock acquire pending: two handles of the lock NAME take turns, the holder
 *    giving it back after --hold-ms (default 1000) while the other's coord_lock_acquire_async
 *    waits (so does the first one when another process holds the lock). Each answer says whether
 *    an acquire was pending when it was served.
 *
 * Nothing blocks the loop: no coord call waits for a server here (except opening the client and
 * the ring's first listing, before the loop runs). An async call the backend cannot do yet is
 * reported and the server goes on without it.
 *
 * It runs until SIGINT or SIGTERM. With --self-test N it connects to itself while its lock
 * acquires are pending, sends N lines, checks the N answers and exits: 0 when each answer came, 1
 * otherwise.
 *
 *   $ printf 'a\nb\n' | nc -q1 127.0.0.1 PORT
 *   count 1 (lock acquire pending)
 *   count 2 (lock acquire pending)
 */
#define _POSIX_C_SOURCE 200809L
#include <coord.h>
#include <coord/loop/libuv.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define LINE_MAX_LEN 1024 /* a longer request line closes the connection */
#define SELF_TEST_BOUND_MS 30000

typedef struct server server;

/* A client connection; freed once closed and no add of it is in flight. */
typedef struct conn {
    uv_tcp_t tcp;
    server *s;
    struct conn *prev, *next; /* the server's open connections */
    char line[LINE_MAX_LEN];
    size_t len;
    int refs; /* the connection itself until closed, plus one per add in flight */
    bool eof; /* the client has sent everything: close once its answers are written */
    bool closing;
    uv_shutdown_t shutdown;
} conn;

/* One request: a line whose add is in flight. */
typedef struct request {
    conn *cn;
    bool pending; /* a lock acquire was pending when it came */
} request;

/* One of the two lock handles. */
typedef struct turn {
    server *s;
    int i;
} turn;

struct server {
    uv_loop_t *loop;
    coord_client *c;
    coord_counter *k;
    coord_election *e;
    coord_ring *r;
    coord_lock *lk[2]; /* two handles of one lock, taking turns */
    turn turns[2];
    int holder;      /* index of the handle holding the lock, -1 */
    bool waiting[2]; /* an acquire of that handle is pending */
    int hold_ms;
    uv_tcp_t listener;
    uv_timer_t hold_timer, bound;
    uv_signal_t sigint, sigterm;
    conn *conns;
    const char *name, *id;
    char addr[64];
    long served, served_pending;
    bool stopping;
    /* --self-test */
    int self_test;
    bool self_started;
    uv_tcp_t self;
    uv_connect_t self_connect;
    char self_buf[4096];
    size_t self_len;
    int self_answers;
    int status;
};

static void say(const server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(const server *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("[loop_server %s] ", s->id);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static void report(const server *s, const char *what, int rc) {
    say(s, "%s: %s: %s", what, coord_strerror(rc), coord_last_error());
}

static bool acquire_pending(const server *s) {
    return s->waiting[0] || s->waiting[1];
}

static void start_self_test(server *s);
static void shutdown_server(server *s);

/* ---- the lock, taken in turns by two handles ---- */

static void on_locked(int rc, void *payload);

static void acquire(server *s, int i) {
    int rc = coord_lock_acquire_async(s->lk[i], -1, on_locked, &s->turns[i]);
    if (rc) {
        report(s, "lock: acquire", rc);
        start_self_test(s); /* serve without the lock */
        return;
    }
    s->waiting[i] = true;
}

static void on_unlocked(int rc, void *payload) {
    turn *t = payload;
    server *s = t->s;
    if (s->stopping) return;
    if (rc) report(s, "lock: release", rc);
    /* queue again, behind the other handle, whose acquire this release let through */
    acquire(s, t->i);
}

static void on_hold_over(uv_timer_t *t) {
    server *s = t->data;
    int i = s->holder;
    if (i < 0 || s->stopping) return;
    s->holder = -1;
    int rc = coord_lock_release_async(s->lk[i], on_unlocked, &s->turns[i]);
    if (rc) report(s, "lock: release", rc);
}

static void on_locked(int rc, void *payload) {
    turn *t = payload;
    server *s = t->s;
    s->waiting[t->i] = false;
    if (s->stopping) return; /* canceled by the shutdown */
    if (rc) {
        report(s, "lock: acquire", rc);
        start_self_test(s);
        return;
    }
    uint64_t token = 0;
    coord_lock_token(s->lk[t->i], &token);
    s->holder = t->i;
    say(s,
        "lock %s: handle %d holds it (token %" PRIu64 "), served %ld requests so far, %ld "
        "of them while an acquire was pending",
        s->name, t->i, token, s->served, s->served_pending);
    uv_timer_start(&s->hold_timer, on_hold_over, (uint64_t)s->hold_ms, 0);
}

/* ---- election and ring ---- */

static void on_campaign(int rc, void *payload) {
    server *s = payload;
    if (s->stopping) return;
    if (rc) {
        report(s, "election: campaign", rc);
        return;
    }
    uint64_t term = 0;
    coord_election_term(s->e, &term);
    say(s, "leading election %s (term %" PRIu64 ")", s->name, term);
}

static void on_joined(int rc, void *payload) {
    server *s = payload;
    if (s->stopping) return;
    if (rc)
        report(s, "ring: join", rc);
    else
        say(s, "joined ring %s as %s", s->name, s->id);
}

static void on_ring_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r;
    server *s = payload;
    for (size_t i = 0; i < ch->njoined; i++)
        say(s, "ring %s: %s joined", s->name, ch->joined[i]);
    for (size_t i = 0; i < ch->nleft; i++)
        say(s, "ring %s: %s left", s->name, ch->left[i]);
}

/* ---- connections ---- */

static void conn_unref(conn *cn) {
    if (--cn->refs == 0) free(cn);
}

static void on_conn_closed(uv_handle_t *h) {
    conn_unref(h->data);
}

static void on_shut(uv_shutdown_t *req, int status);
static void conn_close(conn *cn);

/* After the client's EOF and its last answer: shut down (the answers still queued are sent
 * first), then close. */
static void conn_finish(conn *cn) {
    if (cn->closing || !cn->eof || cn->refs > 1 || cn->shutdown.data) return;
    cn->shutdown.data = cn;
    if (uv_shutdown(&cn->shutdown, (uv_stream_t *)&cn->tcp, on_shut)) conn_close(cn);
}

static void conn_close(conn *cn) {
    if (cn->closing) return;
    cn->closing = true;
    if (cn->prev)
        cn->prev->next = cn->next;
    else
        cn->s->conns = cn->next;
    if (cn->next) cn->next->prev = cn->prev;
    uv_close((uv_handle_t *)&cn->tcp, on_conn_closed);
}

static void on_shut(uv_shutdown_t *req, int status) {
    (void)status;
    conn_close(req->data);
}

typedef struct wreq {
    uv_write_t w;
    char buf[128];
} wreq;

static void on_written(uv_write_t *w, int status) {
    (void)status;
    free(w);
}

static void on_counted(int rc, int64_t value, void *payload) {
    request *q = payload;
    conn *cn = q->cn;
    server *s = cn->s;
    if (!cn->closing && !s->stopping) {
        wreq *w = malloc(sizeof *w);
        if (w) {
            int n;
            if (rc)
                n = snprintf(w->buf, sizeof w->buf, "error %s\n", coord_strerror(rc));
            else
                n = snprintf(w->buf, sizeof w->buf, "count %" PRId64 "%s\n", value,
                             q->pending ? " (lock acquire pending)" : "");
            uv_buf_t b = uv_buf_init(w->buf, (unsigned)n);
            if (uv_write(&w->w, (uv_stream_t *)&cn->tcp, &b, 1, on_written)) free(w);
        }
        if (rc) report(s, "counter: add", rc);
    }
    free(q);
    bool last = cn->refs == 1;
    conn_unref(cn);
    if (!last) conn_finish(cn);
}

static void request_line(conn *cn) {
    server *s = cn->s;
    request *q = malloc(sizeof *q);
    if (!q) return;
    q->cn = cn;
    q->pending = acquire_pending(s);
    s->served++;
    if (q->pending) s->served_pending++;
    int rc = coord_counter_add_async(s->k, 1, on_counted, q);
    if (rc) {
        report(s, "counter: add", rc);
        free(q);
        return;
    }
    cn->refs++;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)h;
    (void)hint;
    static char chunk[65536]; /* one loop thread: the data is consumed before the next read */
    *buf = uv_buf_init(chunk, sizeof chunk);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
    conn *cn = st->data;
    if (n == UV_EOF) {
        cn->eof = true;
        uv_read_stop(st);
        conn_finish(cn);
        return;
    }
    if (n < 0) {
        conn_close(cn);
        return;
    }
    for (ssize_t i = 0; i < n && !cn->closing; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            request_line(cn);
            cn->len = 0;
        } else if (cn->len == sizeof cn->line) {
            conn_close(cn);
        } else {
            cn->line[cn->len++] = ch;
        }
    }
}

static void on_connection(uv_stream_t *listener, int status) {
    server *s = listener->data;
    if (status < 0 || s->stopping) return;
    conn *cn = calloc(1, sizeof *cn);
    if (!cn) return;
    cn->s = s;
    cn->refs = 1;
    uv_tcp_init(s->loop, &cn->tcp);
    cn->tcp.data = cn;
    cn->next = s->conns;
    if (s->conns) s->conns->prev = cn;
    s->conns = cn;
    if (uv_accept(listener, (uv_stream_t *)&cn->tcp) ||
        uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read))
        conn_close(cn);
}

/* ---- --self-test: a client of its own ---- */

static void on_self_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
    server *s = st->data;
    if (n < 0) {
        say(s, "self-test: connection ended after %d answers of %d", s->self_answers, s->self_test);
        s->status = 1;
        shutdown_server(s);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf->base[i];
        if (ch != '\n') {
            if (s->self_len < sizeof s->self_buf - 1) s->self_buf[s->self_len++] = ch;
            continue;
        }
        s->self_buf[s->self_len] = '\0';
        s->self_len = 0;
        s->self_answers++;
        say(s, "self-test: answer %d: %s", s->self_answers, s->self_buf);
        if (strncmp(s->self_buf, "count ", 6)) s->status = 1;
        if (s->self_answers == s->self_test) {
            say(s, "self-test: %d answers, %ld requests served while a lock acquire was pending",
                s->self_answers, s->served_pending);
            shutdown_server(s);
            return;
        }
    }
}

static void on_self_connected(uv_connect_t *req, int status) {
    server *s = req->data;
    if (status < 0) {
        say(s, "self-test: connect: %s", uv_strerror(status));
        s->status = 1;
        shutdown_server(s);
        return;
    }
    s->self.data = s;
    uv_read_start((uv_stream_t *)&s->self, on_alloc, on_self_read);
    for (int i = 0; i < s->self_test; i++) {
        wreq *w = malloc(sizeof *w);
        if (!w) break;
        int n = snprintf(w->buf, sizeof w->buf, "request %d\n", i + 1);
        uv_buf_t b = uv_buf_init(w->buf, (unsigned)n);
        if (uv_write(&w->w, (uv_stream_t *)&s->self, &b, 1, on_written)) free(w);
    }
}

static void start_self_test(server *s) {
    if (!s->self_test || s->self_started || s->stopping) return;
    s->self_started = true;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    struct sockaddr_storage me;
    int len = sizeof me;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&me, &len);
    a.sin_port = ((struct sockaddr_in *)&me)->sin_port;
    uv_tcp_init(s->loop, &s->self);
    s->self_connect.data = s;
    int rc =
        uv_tcp_connect(&s->self_connect, &s->self, (const struct sockaddr *)&a, on_self_connected);
    if (rc) {
        say(s, "self-test: connect: %s", uv_strerror(rc));
        s->status = 1;
        shutdown_server(s);
    }
}

static void on_bound(uv_timer_t *t) {
    server *s = t->data;
    say(s, "self-test: no answer within %d ms", SELF_TEST_BOUND_MS);
    s->status = 1;
    shutdown_server(s);
}

/* ---- shutdown ---- */

static void on_signal(uv_signal_t *h, int signum) {
    server *s = h->data;
    say(s, "signal %d: stopping", signum);
    shutdown_server(s);
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Close every handle of the loop and detach the client; uv_run then returns. */
static void shutdown_server(server *s) {
    if (s->stopping) return;
    s->stopping = true;
    while (s->conns)
        conn_close(s->conns);
    close_handle((uv_handle_t *)&s->listener);
    close_handle((uv_handle_t *)&s->hold_timer);
    close_handle((uv_handle_t *)&s->bound);
    close_handle((uv_handle_t *)&s->sigint);
    close_handle((uv_handle_t *)&s->sigterm);
    if (s->self_started) close_handle((uv_handle_t *)&s->self);
    coord_uv_detach(s->c);
}

/* ---- main ---- */

int main(int argc, char **argv) {
    const char *uri, *name = "loop_server", *id = NULL;
    int port = 0, self_test = 0, hold_ms = 1000;
    const ex_opt opts[] = {
        {"--name", &name, .name = 1},
        {"--id", &id, .name = 1},
        {"--port", .num = &port, .lo = 0, .hi = 65535},
        {"--hold-ms", .num = &hold_ms, .lo = 1, .hi = 3600000},
        {"--self-test", .num = &self_test, .lo = 0, .hi = 100000},
        {NULL},
    };
    int rc = ex_parse(argc, argv, "loop_server",
                      "usage: %s [--uri URI] [--port P] [--name NAME] [--id ID] [--hold-ms MS]\n"
                      "          [--self-test N]\n"
                      "  URI from --uri or COORD_URI; port 0 (default): the system picks one;\n"
                      "  NAME (default \"loop_server\") names the election, ring, counter and "
                      "lock;\n"
                      "  ID (default srv-<pid>) is the ring member; --self-test N: send itself "
                      "N requests, then exit\n",
                      opts, &uri);
    if (rc) return rc < 0 ? 0 : rc;
    char idbuf[32];
    if (!id) {
        snprintf(idbuf, sizeof idbuf, "srv-%ld", (long)getpid());
        id = idbuf;
    }

    server s = {.name = name, .id = id, .hold_ms = hold_ms, .self_test = self_test, .holder = -1};
    s.loop = uv_default_loop();
    /* The listener first, so the ring and the election can carry its address. */
    uv_tcp_init(s.loop, &s.listener);
    s.listener.data = &s;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    struct sockaddr_storage me;
    int len = sizeof me;
    if ((rc = uv_tcp_bind(&s.listener, (const struct sockaddr *)&a, 0)) ||
        (rc = uv_listen((uv_stream_t *)&s.listener, 128, on_connection)) ||
        (rc = uv_tcp_getsockname(&s.listener, (struct sockaddr *)&me, &len))) {
        fprintf(stderr, "loop_server: listen on 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
        return 1;
    }
    snprintf(s.addr, sizeof s.addr, "127.0.0.1:%d", ntohs(((struct sockaddr_in *)&me)->sin_port));

    coord_options o = COORD_OPTIONS_INIT;
    o.loop = true; /* every callback of the client runs on the loop's thread */
    if ((rc = coord_client_open(&s.c, uri, &o))) {
        fprintf(stderr, "loop_server: connect: %s: %s\n", coord_strerror(rc), coord_last_error());
        return 1;
    }
    coord_ring_options ro = COORD_RING_OPTIONS_INIT;
    ro.on_change = on_ring_change;
    ro.payload = &s;
    if ((rc = coord_counter_new(&s.k, s.c, name, NULL)) ||
        (rc = coord_election_new(&s.e, s.c, name, NULL)) ||
        (rc = coord_ring_new(&s.r, s.c, name, &ro)) || (rc = coord_lock_new(&s.lk[0], s.c, name)) ||
        (rc = coord_lock_new(&s.lk[1], s.c, name)) || (rc = coord_uv_attach(s.loop, s.c))) {
        fprintf(stderr, "loop_server: %s: %s: %s\n", name, coord_strerror(rc), coord_last_error());
        coord_lock_free(s.lk[0]);
        coord_lock_free(s.lk[1]);
        coord_ring_free(s.r);
        coord_election_free(s.e);
        coord_counter_free(s.k);
        coord_client_close(s.c);
        return 1;
    }
    say(&s, "serving on %s (%s backend); each line gets the request count", s.addr,
        coord_client_backend(s.c));

    uv_timer_init(s.loop, &s.hold_timer);
    s.hold_timer.data = &s;
    uv_timer_init(s.loop, &s.bound);
    s.bound.data = &s;
    if (self_test) uv_timer_start(&s.bound, on_bound, SELF_TEST_BOUND_MS, 0);
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);

    s.turns[0] = (turn){&s, 0};
    s.turns[1] = (turn){&s, 1};
    if ((rc = coord_election_campaign_async(s.e, s.addr, strlen(s.addr), -1, on_campaign, &s)))
        report(&s, "election: campaign (serving without it)", rc);
    if ((rc = coord_ring_join_async(s.r, s.id, s.addr, strlen(s.addr), 1, on_joined, &s)))
        report(&s, "ring: join (serving without it)", rc);
    acquire(&s, 0); /* one holds, the other waits behind it */
    acquire(&s, 1);
    start_self_test(&s); /* with --self-test: its requests come while the acquires are pending */

    uv_run(s.loop, UV_RUN_DEFAULT); /* until shutdown_server has closed every handle */

    /* The client is detached: what is still in flight ends with COORD_ECANCELED in the frees
     * and the close below (their dones see `stopping`). */
    coord_lock_cancel(s.lk[0]);
    coord_lock_cancel(s.lk[1]);
    coord_election_cancel(s.e);
    coord_lock_free(s.lk[0]);
    coord_lock_free(s.lk[1]);
    coord_ring_free(s.r);
    coord_election_free(s.e);
    coord_counter_free(s.k);
    coord_client_close(s.c);
    uv_run(s.loop, UV_RUN_DEFAULT); /* the adapter's closes */
    uv_loop_close(s.loop);
    say(&s, "stopped after %ld requests (%ld while a lock acquire was pending)", s.served,
        s.served_pending);
    return s.status;
}
