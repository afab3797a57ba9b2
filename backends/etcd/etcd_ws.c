/*
 * etcd backend, the multiplexed watch stream (watch=ws, the default): every watch of a
 * connection on one WebSocket to the gateway's /v3/watch, as etcd's Go client multiplexes them
 * on one gRPC stream. Each text frame sent is one WatchRequest (create_request, cancel_request,
 * progress_request); each frame received one WatchResponse, routed by its watch_id. Creates are
 * answered in the order they were sent, so the n-th `created` answers the n-th create.
 *
 * libcurl opens the connection (CURLOPT_CONNECT_ONLY: TLS, certificates and client certificates
 * stay libcurl's) and moves the bytes (curl_easy_send/curl_easy_recv); wslay frames them. Only
 * the watch thread touches the stream. Design notes: docs/etcd-watch-stream.md.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <wslay/wslay.h>

#include "etcd_int.h"

/* Silence on the stream (etcd sends nothing while no watched key changes) longer than this
 * sends a progress_request; no frame within PROBE_WAIT_MS of it replaces the stream. */
#define PROBE_IDLE_MS 2000
#define PROBE_WAIT_MS 3000
#define HEAD_MAX 8192 /* largest upgrade answer head accepted */

struct etcd_ws {
    CURL *h;
    curl_socket_t fd;
    wslay_event_context_ptr ctx;
    bool up;
    int ep; /* member the stream is on */
    int failures;
    int64_t retry_at; /* next connect attempt */
    int64_t last_rx;  /* last frame received (or connect) */
    int64_t probe_at; /* progress_request outstanding since (0: none) */
    bool upgrading;   /* the upgrade request sent, its answer being read into `head` */
    char *head;
    size_t got;
    char key[32];
    int64_t up_deadline;
    bool broken;       /* set by callbacks: close at the end of the step */
    bool auth_refused; /* the server refused the (missing) token: fall back to http */
    /* bytes received with the upgrade answer's head */
    char *extra;
    size_t nextra, offextra;
    /* creates awaiting `created`, in the order sent (NULL: its watch was removed meanwhile) */
    coord_watch **fifo;
    size_t fhead, flen, fcap;
    /* watches created on the stream, by increasing watch_id (etcd numbers them in order) */
    coord_watch **act;
    size_t nact, cact;
    etcd *e;
};

etcd_ws *etcd_ws_new(void) {
    etcd_ws *ws = calloc(1, sizeof *ws);
    if (ws) ws->fd = CURL_SOCKET_BAD;
    return ws;
}

/* ---------- pure helpers ---------- */

int etcd_ws_request(const char *hostport, const unsigned char nonce[16], const char *token,
                    char **out, char key_out[32]) {
    EVP_EncodeBlock((unsigned char *)key_out, nonce, 16); /* 24 characters and a NUL */
    const char *fmt = "GET /v3/watch HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                      "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n";
    /* etcd 3.4's gateway does not pass this on to the server (see etcd_ws_step), but a later
     * one may. */
    if (asprintf(out, fmt, hostport, key_out, token ? "Authorization: " : "", token ? token : "",
                 token ? "\r\n" : "") < 0) {
        *out = NULL;
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    return 0;
}

/* A header's value in an answer head (case-insensitive name), copied to `val`. */
static bool head_field(const char *head, size_t len, const char *name, char *val, size_t cap) {
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', len), *end = head + len;
    while (p && p + 1 < end) {
        p++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            size_t n = (size_t)(ve - v) < cap - 1 ? (size_t)(ve - v) : cap - 1;
            memcpy(val, v, n);
            val[n] = 0;
            return true;
        }
        p = eol < end ? eol : NULL;
    }
    return false;
}

int etcd_ws_check_answer(const char *head, size_t len, const char *key) {
    if (len < 12 || strncmp(head, "HTTP/1.1 ", 9) != 0)
        return coord_seterr(COORD_EPROTO, "etcd watch stream: not an HTTP answer");
    if (strncmp(head + 9, "101", 3) != 0) {
        const char *eol = memchr(head, '\r', len);
        int n = eol ? (int)(eol - head) : (int)(len < 80 ? len : 80);
        /* e.g. a proxy or a server without the WebSocket gateway: no stream to be had here */
        return coord_seterr(COORD_ENOTSUP, "etcd watch stream refused: %.*s", n, head);
    }
    char up[32], acc[64];
    if (!head_field(head, len, "upgrade", up, sizeof up) || strcasecmp(up, "websocket") != 0)
        return coord_seterr(COORD_EPROTO, "etcd watch stream: no Upgrade: websocket");
    if (!head_field(head, len, "sec-websocket-accept", acc, sizeof acc))
        return coord_seterr(COORD_EPROTO, "etcd watch stream: no Sec-WebSocket-Accept");
    char cat[64 + 40];
    int n = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, (size_t)n, sha);
    char want[40];
    EVP_EncodeBlock((unsigned char *)want, sha, SHA_DIGEST_LENGTH);
    if (strcmp(want, acc) != 0)
        return coord_seterr(COORD_EPROTO, "etcd watch stream: wrong Sec-WebSocket-Accept");
    return 0;
}

/* ---------- the routing tables ---------- */

static coord_watch *act_find(etcd_ws *ws, int64_t wid, size_t *at) {
    size_t lo = 0, hi = ws->nact;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ws->act[mid]->wid < wid)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (at) *at = lo;
    return lo < ws->nact && ws->act[lo]->wid == wid ? ws->act[lo] : NULL;
}

static int act_add(etcd_ws *ws, coord_watch *w) {
    if (ws->nact == ws->cact) {
        size_t c = ws->cact ? ws->cact * 2 : 64;
        coord_watch **n = realloc(ws->act, c * sizeof *n);
        if (!n) return COORD_ENOMEM;
        ws->act = n;
        ws->cact = c;
    }
    size_t at;
    act_find(ws, w->wid, &at); /* ids grow: nearly always the end */
    memmove(ws->act + at + 1, ws->act + at, (ws->nact - at) * sizeof *ws->act);
    ws->act[at] = w;
    ws->nact++;
    return 0;
}

static void act_del(etcd_ws *ws, coord_watch *w) {
    size_t at;
    if (act_find(ws, w->wid, &at) != w) return;
    memmove(ws->act + at, ws->act + at + 1, (ws->nact - at - 1) * sizeof *ws->act);
    ws->nact--;
}

static int fifo_push(etcd_ws *ws, coord_watch *w) {
    if (ws->flen == ws->fcap) {
        size_t c = ws->fcap ? ws->fcap * 2 : 64;
        coord_watch **n = malloc(c * sizeof *n);
        if (!n) return COORD_ENOMEM;
        for (size_t i = 0; i < ws->flen; i++)
            n[i] = ws->fifo[(ws->fhead + i) % ws->fcap];
        free(ws->fifo);
        ws->fifo = n;
        ws->fcap = c;
        ws->fhead = 0;
    }
    ws->fifo[(ws->fhead + ws->flen++) % ws->fcap] = w;
    return 0;
}

static bool fifo_pop(etcd_ws *ws, coord_watch **w) {
    if (!ws->flen) return false;
    *w = ws->fifo[ws->fhead];
    ws->fhead = (ws->fhead + 1) % ws->fcap;
    ws->flen--;
    return true;
}

/* ---------- frames ---------- */

static int send_json(etcd_ws *ws, cJSON *req) {
    char *s = req ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    if (!s) return COORD_ENOMEM;
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)s, strlen(s)};
    int rc = wslay_event_queue_msg(ws->ctx, &msg); /* copies */
    free(s);
    if (rc == WSLAY_ERR_NOMEM) return COORD_ENOMEM;
    if (rc) {
        ws->broken = true;
        return COORD_EBACKEND;
    }
    return 0;
}

static void send_cancel(etcd_ws *ws, int64_t wid) {
    cJSON *req = cJSON_CreateObject();
    cJSON *cr = req ? cJSON_AddObjectToObject(req, "cancel_request") : NULL;
    if (!cr || !etcd_add_i64(cr, "watch_id", wid)) {
        cJSON_Delete(req);
        return; /* the watch stays on the server: its events find no watch and are dropped */
    }
    send_json(ws, req);
}

int etcd_ws_create(etcd *e, coord_watch *w) {
    etcd_ws *ws = e->ws;
    cJSON *req = cJSON_CreateObject();
    cJSON *cr = req ? cJSON_AddObjectToObject(req, "create_request") : NULL;
    if (!cr || !etcd_add_bytes(cr, "key", w->key, w->keylen) ||
        (w->relen && !etcd_add_bytes(cr, "range_end", w->range_end, w->relen)) ||
        (w->next_rev > 0 && !etcd_add_i64(cr, "start_revision", w->next_rev))) {
        cJSON_Delete(req);
        return COORD_ENOMEM;
    }
    if (fifo_push(ws, w)) {
        cJSON_Delete(req);
        return COORD_ENOMEM;
    }
    int rc = send_json(ws, req);
    if (rc) {
        ws->flen--; /* not sent: not awaited */
        return rc;
    }
    w->ws = WS_CREATING;
    return 0;
}

void etcd_ws_forget(etcd *e, coord_watch *w) {
    etcd_ws *ws = e->ws;
    if (!ws) return;
    if (w->ws == WS_CREATING) {
        for (size_t i = 0; i < ws->flen; i++)
            if (ws->fifo[(ws->fhead + i) % ws->fcap] == w)
                ws->fifo[(ws->fhead + i) % ws->fcap] = NULL; /* cancel when created */
    } else if (w->ws == WS_ACTIVE) {
        act_del(ws, w);
        if (ws->up) send_cancel(ws, w->wid);
    }
    w->ws = WS_NONE;
}

/* ---------- wslay callbacks ---------- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud) {
    (void)flags;
    etcd_ws *ws = ud;
    if (ws->offextra < ws->nextra) {
        size_t n = ws->nextra - ws->offextra < len ? ws->nextra - ws->offextra : len;
        memcpy(buf, ws->extra + ws->offextra, n);
        ws->offextra += n;
        return (ssize_t)n;
    }
    size_t got = 0;
    CURLcode cc = curl_easy_recv(ws->h, buf, len, &got);
    if (cc == CURLE_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (cc != CURLE_OK || got == 0) { /* an error, or the member closed the connection */
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)got;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud) {
    (void)flags;
    etcd_ws *ws = ud;
    size_t sent = 0;
    CURLcode cc = curl_easy_send(ws->h, data, len, &sent);
    if (cc == CURLE_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (cc != CURLE_OK) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)sent;
}

static int on_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud) {
    (void)ud;
    if (getrandom(buf, len, 0) != (ssize_t)len) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

/* The server's words for a request without a (valid) token. */
static bool auth_refusal(const char *msg) {
    return strstr(msg, "user name is empty") || strstr(msg, "invalid auth token") ||
           strstr(msg, "Unauthenticated") || strstr(msg, "permission denied");
}

/* The stream lost one watch on the server's side: start it again (at once after a compaction,
 * which already reported RESET; after a back-off otherwise). */
static void lost(etcd_ws *ws, coord_watch *w, bool at_once) {
    act_del(ws, w);
    w->ws = WS_NONE;
    if (at_once)
        w->retry_at = 1;
    else
        etcd_watch_retry(w);
}

static void on_message(etcd_ws *ws, const char *data, size_t len) {
    etcd_watch_msg m;
    if (etcd_parse_watch_line(data, len, &m)) {
        ws->broken = true;
        return;
    }
    if (m.is_error) { /* the stream failed as a whole */
        if (ws->e->token && auth_refusal(m.msg)) ws->auth_refused = true;
        ws->broken = true;
        etcd_watch_msg_clear(&m);
        return;
    }
    ws->failures = 0;
    coord_watch *w = NULL;
    if (m.created) {
        if (!fifo_pop(ws, &w)) { /* a `created` nobody asked for */
            ws->broken = true;
            etcd_watch_msg_clear(&m);
            return;
        }
        if (m.canceled || m.watch_id < 0) { /* refused */
            if (ws->e->token && auth_refusal(m.msg)) ws->auth_refused = true;
            if (w) lost(ws, w, false);
            etcd_watch_msg_clear(&m);
            return;
        }
        if (!w) { /* removed while its create was on the way */
            send_cancel(ws, m.watch_id);
            etcd_watch_msg_clear(&m);
            return;
        }
        w->wid = m.watch_id;
        w->ws = WS_ACTIVE;
        w->failures = 0;
        if (act_add(ws, w)) {
            send_cancel(ws, m.watch_id);
            lost(ws, w, false);
            etcd_watch_msg_clear(&m);
            return;
        }
    } else if (m.watch_id < 0) { /* a progress report */
        etcd_watch_msg_clear(&m);
        return;
    } else if (!(w = act_find(ws, m.watch_id, NULL))) { /* canceled by us meanwhile */
        etcd_watch_msg_clear(&m);
        return;
    }
    bool canceled = m.canceled;
    if (canceled && !m.compact_revision && ws->e->token && auth_refusal(m.msg))
        ws->auth_refused = true;
    int rc = etcd_watch_apply(w, &m);
    if (rc == 1 || canceled) {
        lost(ws, w, rc == 1);
    } else if (rc < 0) {
        send_cancel(ws, w->wid);
        lost(ws, w, false);
    }
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud) {
    (void)ctx;
    etcd_ws *ws = ud;
    ws->last_rx = coord__now_ms();
    ws->probe_at = 0;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        on_message(ws, (const char *)arg->msg, arg->msg_length);
    else if (arg->opcode == WSLAY_CONNECTION_CLOSE)
        ws->broken = true;
}

/* ---------- connection ---------- */

bool etcd_ws_up(etcd *e) {
    return e->ws && e->ws->up;
}

static int wait_fd(curl_socket_t fd, short ev, int64_t deadline) {
    int64_t left = deadline - coord__now_ms();
    if (left <= 0) return COORD_ETIMEDOUT;
    struct pollfd p = {fd, ev, 0};
    int n = poll(&p, 1, (int)left);
    return n > 0 ? 0 : n == 0 ? COORD_ETIMEDOUT : COORD_EBACKEND;
}

/* Open the connection to member `ep` and send the upgrade request; its answer is read by
 * ws_upgrade_read as it comes (a member that accepts connections but does not answer, e.g.
 * paused, must not hold up the watch thread), all within the connect timeout. */
static int ws_connect(etcd *e, etcd_ws *ws, int ep) {
    int64_t deadline = coord__now_ms() + e->cfg->connect_timeout_ms;
    char url[600];
    snprintf(url, sizeof url, "%s/v3/watch", e->endpoints[ep]);
    if (!(ws->h = curl_easy_init())) return COORD_ENOMEM;
    etcd_setup_handle(e, ws->h);
    curl_easy_setopt(ws->h, CURLOPT_URL, url);
    curl_easy_setopt(ws->h, CURLOPT_CONNECT_ONLY, 1L);
    /* The upgrade is HTTP/1.1: no ALPN offer of h2 (a connection libcurl took for HTTP/2 would
     * not carry our bytes as they are). */
    curl_easy_setopt(ws->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(ws->h, CURLOPT_SSL_ENABLE_ALPN, 0L);
    curl_easy_setopt(ws->h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->cfg->connect_timeout_ms);
    curl_easy_setopt(ws->h, CURLOPT_TCP_KEEPIDLE, 2L);
    curl_easy_setopt(ws->h, CURLOPT_TCP_KEEPINTVL, 1L);
    CURLcode cc = curl_easy_perform(ws->h);
    if (cc != CURLE_OK)
        return coord_seterr(COORD_EUNAVAILABLE, "etcd watch stream: %s", curl_easy_strerror(cc));
    if (curl_easy_getinfo(ws->h, CURLINFO_ACTIVESOCKET, &ws->fd) != CURLE_OK ||
        ws->fd == CURL_SOCKET_BAD)
        return coord_seterr(COORD_EBACKEND, "etcd watch stream: no socket");

    unsigned char nonce[16];
    if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        return coord_seterr(COORD_EBACKEND, "getrandom: %s", strerror(errno));
    const char *hostport = strstr(e->endpoints[ep], "://") + 3;
    char key[32], *req = NULL;
    pthread_mutex_lock(&e->mu);
    int rc = etcd_ws_request(hostport, nonce, e->token, &req, key);
    pthread_mutex_unlock(&e->mu);
    if (rc) return rc;
    size_t len = strlen(req), off = 0;
    while (off < len && rc == 0) {
        size_t n = 0;
        cc = curl_easy_send(ws->h, req + off, len - off, &n);
        if (cc == CURLE_AGAIN)
            rc = wait_fd(ws->fd, POLLOUT, deadline);
        else if (cc != CURLE_OK)
            rc = coord_seterr(COORD_EUNAVAILABLE, "etcd watch stream: %s", curl_easy_strerror(cc));
        else
            off += n;
    }
    explicit_bzero(req, len);
    free(req);
    if (rc) return rc;

    if (!(ws->head = malloc(HEAD_MAX))) return COORD_ENOMEM;
    ws->got = 0;
    memcpy(ws->key, key, sizeof ws->key);
    ws->up_deadline = deadline;
    return 0;
}

/* Read the upgrade's answer as far as it came, without waiting: 1 while its head is not all
 * there, 0 when the stream is up, or a negative coord_err. */
static int ws_upgrade_read(etcd_ws *ws) {
    char *head = ws->head, *end = NULL;
    int rc = 0;
    while (!end && rc == 0) {
        if (ws->got == HEAD_MAX) {
            rc = coord_seterr(COORD_EPROTO, "etcd watch stream: answer head too long");
            break;
        }
        size_t n = 0;
        CURLcode cc = curl_easy_recv(ws->h, head + ws->got, HEAD_MAX - ws->got, &n);
        if (cc == CURLE_AGAIN) return 1;
        if (cc != CURLE_OK || n == 0) {
            rc = coord_seterr(COORD_EUNAVAILABLE, "etcd watch stream: closed during upgrade");
        } else {
            size_t from = ws->got >= 3 ? ws->got - 3 : 0;
            ws->got += n;
            for (size_t i = from; i + 4 <= ws->got && !end; i++)
                if (memcmp(head + i, "\r\n\r\n", 4) == 0) end = head + i + 4;
        }
    }
    if (!rc) rc = etcd_ws_check_answer(head, (size_t)(end - head), ws->key);
    if (!rc && end < head + ws->got) {
        ws->nextra = (size_t)(head + ws->got - end);
        ws->offextra = 0;
        if (!(ws->extra = malloc(ws->nextra)))
            rc = COORD_ENOMEM;
        else
            memcpy(ws->extra, end, ws->nextra);
    }
    free(ws->head);
    ws->head = NULL;
    if (rc) return rc;

    struct wslay_event_callbacks cbs = {on_recv, on_send, on_genmask, NULL, NULL, NULL, on_msg};
    if (wslay_event_context_client_init(&ws->ctx, &cbs, ws)) return COORD_ENOMEM;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, MAX_LINE);
    return 0;
}

static void ws_teardown(etcd_ws *ws) {
    if (ws->e) atomic_store(&ws->e->ws_member, -1);
    if (ws->ctx) wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
    if (ws->h) curl_easy_cleanup(ws->h);
    ws->h = NULL;
    ws->fd = CURL_SOCKET_BAD;
    free(ws->extra);
    ws->extra = NULL;
    ws->nextra = ws->offextra = 0;
    free(ws->head);
    ws->head = NULL;
    ws->upgrading = false;
    ws->up = false;
    ws->broken = false;
    ws->probe_at = 0;
}

void etcd_ws_close(etcd *e) {
    etcd_ws *ws = e->ws;
    if (!ws) return;
    /* Every watch starts again, from its next revision, once a stream is up. */
    coord_watch *w;
    while (fifo_pop(ws, &w))
        if (w) {
            w->ws = WS_NONE;
            w->retry_at = 1;
        }
    for (size_t i = 0; i < ws->nact; i++) {
        ws->act[i]->ws = WS_NONE;
        ws->act[i]->retry_at = 1;
    }
    ws->nact = 0;
    ws->fhead = 0;
    ws_teardown(ws);
}

/* The stream failed: close it, move to the next member if this one is still current, and
 * connect again after a back-off (at once the first time). */
static void ws_failed(etcd *e, etcd_ws *ws) {
    etcd_ws_close(e);
    int cur = atomic_load(&e->current);
    if (cur == ws->ep)
        atomic_compare_exchange_strong(&e->current, &cur, (ws->ep + 1) % (int)e->nendpoints);
    ws->failures++;
    int64_t backoff = ws->failures <= 1 ? 0 : ws->failures < 8 ? 50L << ws->failures : 5000;
    ws->retry_at = coord__now_ms() + backoff;
}

/* An authenticated client whose token the gateway did not pass on: its watches go back to
 * per-watch HTTP streams, which carry the token, for the life of the connection. */
static void fall_back(etcd *e) {
    etcd_ws_close(e);
    e->ws_mode = false;
}

void etcd_ws_step(etcd *e, int64_t *next_wake, curl_socket_t *fd, short *events) {
    etcd_ws *ws = e->ws;
    *fd = CURL_SOCKET_BAD;
    *events = 0;
    int64_t now = coord__now_ms();
    if (!ws->up) {
        if (!ws->upgrading) {
            if (ws->retry_at > now) {
                if (ws->retry_at < *next_wake) *next_wake = ws->retry_at;
                return;
            }
            ws->e = e;
            ws->ep = atomic_load(&e->current);
            int rc = ws_connect(e, ws, ws->ep);
            if (rc) {
                ws_failed(e, ws);
                if (ws->retry_at < *next_wake) *next_wake = ws->retry_at;
                return;
            }
            ws->upgrading = true;
        }
        int rc = ws_upgrade_read(ws);
        if (rc == 1) {
            if (coord__now_ms() < ws->up_deadline) { /* wait for the rest */
                *fd = ws->fd;
                *events = POLLIN;
                if (ws->up_deadline < *next_wake) *next_wake = ws->up_deadline;
                return;
            }
            rc = coord_seterr(COORD_ETIMEDOUT, "etcd watch stream: the upgrade went unanswered");
        }
        ws->upgrading = false;
        if (rc == COORD_ENOTSUP) { /* answered, but not with a WebSocket: per-watch streams */
            fall_back(e);
            *next_wake = 0;
            return;
        }
        if (rc) {
            ws_failed(e, ws);
            if (ws->retry_at < *next_wake) *next_wake = ws->retry_at;
            return;
        }
        ws->up = true;
        atomic_store(&e->ws_member, ws->ep);
        ws->last_rx = coord__now_ms();
        *next_wake = 0; /* the watches waiting for a stream: create them now */
    }
    if (wslay_event_recv(ws->ctx) != 0) ws->broken = true;
    if (!ws->broken && wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0)
        ws->broken = true;
    now = coord__now_ms();
    if (!ws->broken && !ws->probe_at && now - ws->last_rx >= PROBE_IDLE_MS) {
        cJSON *req = cJSON_CreateObject();
        if (req && cJSON_AddObjectToObject(req, "progress_request") && send_json(ws, req) == 0) {
            ws->probe_at = now;
            if (wslay_event_send(ws->ctx) != 0) ws->broken = true;
        } else if (req && !ws->broken) {
            cJSON_Delete(req);
        }
    }
    int wait = PROBE_WAIT_MS > e->cfg->timeout_ms ? PROBE_WAIT_MS : e->cfg->timeout_ms;
    if (ws->probe_at && now - ws->probe_at >= wait) {
        coord_seterr(COORD_ETIMEDOUT, "etcd watch stream: no answer for %d ms", wait);
        ws->broken = true;
    }
    if (!ws->broken && !wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx))
        ws->broken = true; /* closed */
    if (ws->auth_refused) {
        ws->auth_refused = false;
        fall_back(e);
        *next_wake = 0;
        return;
    }
    if (ws->broken) {
        ws_failed(e, ws);
        *next_wake = 0;
        return;
    }
    int64_t due = ws->probe_at ? ws->probe_at + wait : ws->last_rx + PROBE_IDLE_MS;
    if (due < *next_wake) *next_wake = due;
    *fd = ws->fd;
    *events = POLLIN | (wslay_event_want_write(ws->ctx) ? POLLOUT : 0);
}

void etcd_ws_free(etcd_ws *ws) {
    if (!ws) return;
    ws_teardown(ws);
    free(ws->fifo);
    free(ws->act);
    free(ws);
}
