/*
 * Private to the etcd backend: what its files share.
 *   etcd_http.c   unary requests: the curl handle pool, one POST, failover between members,
 *                 authentication
 *   etcd_watch.c  the watch thread: every watch of a connection, on one WebSocket stream
 *                 (watch=ws, etcd_ws.c) or each on its own HTTP stream of one curl multi handle
 *   etcd_ws.c     the multiplexed WebSocket watch stream (wslay framing over libcurl)
 *   etcd.c        the lease and its keepalive thread, KV, the lock queue, lifecycle, the table
 */
#ifndef COORD_ETCD_INT_H
#define COORD_ETCD_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "etcd_codec.h"
#include "internal.h"

#define MAX_BODY (64u << 20) /* largest unary answer accepted */
#define MAX_LINE (64u << 20) /* largest watch message accepted */
#define POOL_MAX 16          /* idle curl handles kept */
#define POOL_WS_KEEP 3       /* watch=ws: idle handles kept however long unused */
#define POOL_STALE_MS 2000   /* watch=ws: others go when unused that long */

typedef struct etcd etcd;

/* An answer being received. */
typedef struct resp {
    char *body;
    size_t len, cap;
    bool too_big;
} resp;

struct coord_watch {
    etcd *e;
    struct coord_watch *next;
    char *key, *range_end; /* raw bytes, NUL-terminated */
    size_t keylen, relen;
    int kind;
    size_t dirlen;    /* CHILDREN: length of "dir/" to find direct children */
    int64_t next_rev; /* resume point: first revision not yet delivered */
    coord_watch_fn fn;
    void *payload;
    CURL *h;
    struct curl_slist *hdrs;
    char *body;
    etcd_lines lines;
    long status;
    char errbody[512];
    size_t errlen;
    int endpoint;
    int failures;
    int64_t retry_at;
    bool pending_deleted; /* KEY watch armed on an absent key: report at once */
    /* A first stream is opened "from now" so the server serves it at once (a start revision
     * already passed puts a watcher on etcd's 100 ms catch-up loop); `after` is what the caller
     * has seen, checked against the revision the stream starts at. */
    int64_t after;
    bool verify;     /* first `created` not yet seen */
    bool need_check; /* KEY: changes may have happened between `after` and the stream's start */
    /* The check is a range on the watch thread's multi handle, so it never holds up the
     * delivery of other watches' events. */
    CURL *ch;
    struct curl_slist *chdrs;
    char *cbody;
    resp cresp;
    int64_t check_at;
    bool deleted_reported;
    _Atomic bool removing; /* read by the stream callback without the lock */
    /* The server refused the stream's token (a 401, or a stream canceled as Unauthenticated,
     * which is how etcd 3.4 answers a watch with a token it no longer knows); `gen` and
     * `cgen` are the token generations the stream and the check were sent with. */
    bool unauth;
    uint64_t gen, cgen;
    bool removed, finished;
    /* watch=ws: where the watch stands on the connection's WebSocket stream (WS_*), and the
     * server's id for it once `created` came back. */
    int ws;
    int64_t wid;
};

enum { WS_NONE, WS_CREATING, WS_ACTIVE };

typedef struct etcd_ws etcd_ws;

struct etcd {
    coord_conn base;
    const coord_config *cfg;
    char **endpoints; /* "http://h:p" */
    size_t nendpoints;
    _Atomic int current; /* endpoint in use */

    pthread_mutex_t mu; /* guards the fields below and the pool */
    pthread_cond_t cv;
    CURL *pool[POOL_MAX];
    int64_t pool_used[POOL_MAX]; /* when each went back to the pool */
    int npool;
    char *token;          /* auth token, NULL without auth */
    uint64_t token_gen;   /* bumps on each re-authentication */
    int64_t lease;        /* current lease ID */
    int64_t lease_ttl_ms; /* granted TTL */
    uint64_t session;     /* bumps when the lease is replaced */
    bool stopping;
    bool kick; /* renew now rather than at the next period */
    coord_session_state state;

    pthread_t ka_thread;
    bool ka_started;

    /* watch thread */
    pthread_t w_thread;
    bool w_started;
    CURLM *multi;
    coord_watch *watches; /* guarded by mu; the thread owns curl state of each */
    /* watch=ws (the default): every watch on one WebSocket stream, owned by the watch thread;
     * false for watch=http, or after an authenticated client's token was refused on it. */
    bool ws_mode;
    etcd_ws *ws;
    _Atomic int ws_member; /* member the stream is up on, -1 when down (for tests) */
    int pool_keep; /* idle handles kept however long unused (POOL_MAX; fewer with watch=ws) */
};

/* ---------- etcd_http.c ---------- */

/* curl write callback appending to a `resp` (at most MAX_BODY bytes). */
size_t etcd_on_body(char *p, size_t sz, size_t n, void *ud);
/* A curl handle from the connection's pool (or a new one; NULL without memory), and back. */
CURL *etcd_handle_get(etcd *e);
void etcd_handle_put(etcd *e, CURL *h);
/* Options every request of this connection shares (TLS, timeouts). */
void etcd_setup_handle(etcd *e, CURL *h);
/* The request headers, with the auth token if any; `*gen` (may be NULL) its generation. */
struct curl_slist *etcd_make_headers(etcd *e, uint64_t *gen);
/* Obtain a token with the URI's credentials, unless another thread already replaced the one
 * that was rejected (`seen_gen`). */
int etcd_authenticate(etcd *e, CURL *h, int ep, int64_t budget_ms, uint64_t seen_gen);
/* POST `req` to `path` with failover (see etcd_http.c); `*out` is the parsed answer. */
int etcd_call(etcd *e, const char *path, cJSON *req, bool idempotent, int timeout_ms, cJSON **out);
/* Send a request built by the caller, consuming it; `built` false means building it ran out
 * of memory. */
int etcd_send_built(etcd *e, const char *path, cJSON *req, bool built, bool idempotent,
                    int timeout_ms, cJSON **res);

/* ---------- etcd_watch.c ---------- */

/* The watch thread of a connection (started by open). */
void *etcd_watch_main(void *arg);
/* The watch and unwatch slots. */
int etcd_watch(coord_conn *c, const char *path, int kind, int64_t after, coord_watch_fn fn,
               void *payload, coord_watch **out);
void etcd_unwatch(coord_conn *c, coord_watch *w);

/* Apply one decoded stream message to its watch (both paths). 0, 1 when the watch must start
 * again from `next_rev` (history compacted: RESET delivered), or a negative coord_err. */
int etcd_watch_apply(coord_watch *w, etcd_watch_msg *m);
/* A stream failed or was refused: back off, then start again (both paths). */
void etcd_watch_retry(coord_watch *w);

/* ---------- etcd_ws.c (watch thread only, except init/free) ---------- */

etcd_ws *etcd_ws_new(void);
void etcd_ws_free(etcd_ws *ws);
/* Is the stream up (creates can be sent)? */
bool etcd_ws_up(etcd *e);
/* Connect when down and due, then move frames both ways and route what arrives. `*next_wake`
 * is lowered to when the stream needs attention again; `*fd`/`*events` what to poll for
 * (fd CURL_SOCKET_BAD when none). */
void etcd_ws_step(etcd *e, int64_t *next_wake, curl_socket_t *fd, short *events);
/* Send a create for `w` (WS_CREATING) or a cancel for it (at removal). */
int etcd_ws_create(etcd *e, coord_watch *w);
void etcd_ws_forget(etcd *e, coord_watch *w);
/* Close the stream (every watch back to WS_NONE). */
void etcd_ws_close(etcd *e);

/* Pure helpers (unit-tested): the upgrade request for `hostport` with a 16-byte `nonce` and an
 * optional token (0, or COORD_ENOMEM), and the check of the server's answer head (0;
 * COORD_ENOTSUP when it did not switch protocols: the client falls back to watch=http;
 * COORD_EPROTO when it switched wrongly). */
int etcd_ws_request(const char *hostport, const unsigned char nonce[16], const char *token,
                    char **out, char key_out[32]);
int etcd_ws_check_answer(const char *head, size_t len, const char *key);

/* ---------- etcd.c ---------- */

/* The get slot (a watch checks its key with it). */
int etcd_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms);

#endif
