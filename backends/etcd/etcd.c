/*
 * etcd backend over the v3 JSON gateway (libcurl + cJSON).
 *
 * Threads: callers' threads issue unary requests on pooled curl handles (HTTP keep-alive per
 * handle); one keepalive thread renews the lease every TTL/3 and replaces it when it expired; one
 * watch thread drives every watch stream of the connection with a curl multi handle.
 */
#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_codec.h"
#include "internal.h"

#define MAX_BODY (64u << 20) /* largest unary answer accepted */
#define MAX_LINE (64u << 20) /* largest watch message accepted */
#define POOL_MAX 16          /* idle curl handles kept */

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
};

struct etcd {
    coord_conn base;
    const coord_config *cfg;
    char **endpoints; /* "http://h:p" */
    size_t nendpoints;
    _Atomic int current; /* endpoint in use */

    pthread_mutex_t mu; /* guards the fields below and the pool */
    pthread_cond_t cv;
    CURL *pool[POOL_MAX];
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
};

/* ---------- HTTP ---------- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    resp *r = ud;
    size_t add = sz * n;
    if (r->len + add > MAX_BODY) {
        r->too_big = true;
        return 0;
    }
    if (r->len + add + 1 > r->cap) { /* grow geometrically: answers arrive in 16 KiB chunks */
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + add + 1)
            cap *= 2;
        if (cap > MAX_BODY + 1) cap = MAX_BODY + 1;
        char *b = realloc(r->body, cap);
        if (!b) return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = 0;
    return add;
}

static CURL *handle_get(etcd *e) {
    pthread_mutex_lock(&e->mu);
    CURL *h = e->npool ? e->pool[--e->npool] : NULL;
    pthread_mutex_unlock(&e->mu);
    return h ? h : curl_easy_init();
}

static void handle_put(etcd *e, CURL *h) {
    if (!h) return;
    pthread_mutex_lock(&e->mu);
    if (e->npool < POOL_MAX) {
        e->pool[e->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&e->mu);
    if (h) curl_easy_cleanup(h);
}

/* Options every request of this connection shares (TLS, timeouts). */
static void setup_handle(etcd *e, CURL *h) {
    const coord_uri *u = e->cfg->uri;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    const char *ca = coord_uri_param(u, "ca"), *cert = coord_uri_param(u, "cert");
    if (ca) curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    if (cert) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, coord_uri_param(u, "key"));
    }
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
}

static struct curl_slist *make_headers(etcd *e, uint64_t *gen) {
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    pthread_mutex_lock(&e->mu);
    if (gen) *gen = e->token_gen;
    if (hd && e->token) {
        size_t n = strlen(e->token) + 32;
        char *line = malloc(n);
        if (line) {
            /* The raw token: etcd before 3.5.32 does not strip a "Bearer " prefix. */
            snprintf(line, n, "Authorization: %s", e->token);
            struct curl_slist *t = curl_slist_append(hd, line);
            free(line);
            if (t) hd = t;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return hd;
}

typedef enum { TRY_OK, TRY_NEXT, TRY_FAIL } try_result;

/* An OpenSSL alert by which a server refuses the client's certificate (or its absence). */
static bool cert_alert(const char *why) {
    return strstr(why, "alert") && (strstr(why, "certificate") || strstr(why, "unknown ca") ||
                                    strstr(why, "access denied"));
}

/*
 * A TLS connection broke before any answer: was it the server refusing this client's
 * certificate? With TLS 1.3 a server says so only after the client has finished its handshake,
 * and the alert is often lost with the connection, so libcurl reports a send or receive error
 * like a dying server's. A TLS 1.2 handshake gets the refusal inside the handshake itself, so
 * one is tried to tell. True, with the alert in `why`, for a refusal.
 */
static bool tls_refused(etcd *e, int ep, CURLcode cc, char *why, size_t cap, int64_t budget_ms) {
    if (strncmp(e->endpoints[ep], "https:", 6) != 0) return false;
    if (cc != CURLE_SEND_ERROR && cc != CURLE_RECV_ERROR && cc != CURLE_GOT_NOTHING) return false;
    if (cert_alert(why)) return true;
    CURL *h = budget_ms > 0 ? curl_easy_init() : NULL;
    if (!h) return false;
    char buf[CURL_ERROR_SIZE] = "";
    setup_handle(e, h);
    curl_easy_setopt(h, CURLOPT_URL, e->endpoints[ep]);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION,
                     (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, buf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, budget_ms < 1000 ? (long)budget_ms : 1000L);
    CURLcode dc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (dc != CURLE_SSL_CONNECT_ERROR || !cert_alert(buf)) return false;
    snprintf(why, cap, "%s", buf);
    return true;
}

/* A request body handed to curl by a read callback, so we know whether any of it left, and so
 * curl cannot silently send a write a second time: it re-sends a request on its own when a
 * reused connection turns out dead, which it can only do by rewinding the body. */
typedef struct body {
    const char *data;
    size_t len, off;
    bool sent;
    bool rewindable; /* idempotent requests may be re-sent */
} body;

static size_t on_read(char *buf, size_t sz, size_t n, void *ud) {
    body *b = ud;
    size_t take = b->len - b->off < sz * n ? b->len - b->off : sz * n;
    memcpy(buf, b->data + b->off, take);
    b->off += take;
    if (take) b->sent = true;
    return take;
}

static int on_seek(void *ud, curl_off_t offset, int origin) {
    body *b = ud;
    if (!b->rewindable || origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_FAIL;
    b->off = 0;
    return CURL_SEEKFUNC_OK;
}

/* One POST to one endpoint. TRY_NEXT only when the request cannot have reached the server, or
 * may safely be repeated. */
static try_result post_once(etcd *e, CURL *h, int ep, const char *path, const char *json,
                            bool idempotent, struct curl_slist *hd, int64_t budget_ms, resp *r,
                            long *status, int *err) {
    char url[600];
    snprintf(url, sizeof url, "%s%s", e->endpoints[ep], path);
    body b = {json, strlen(json), 0, false, idempotent};
    curl_easy_reset(h);
    setup_handle(e, h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &b);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &b);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b.len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    long ct = e->cfg->connect_timeout_ms < budget_ms ? e->cfg->connect_timeout_ms : (long)budget_ms;
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ct > 0 ? ct : 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, budget_ms > 0 ? (long)budget_ms : 1L);
    char why[CURL_ERROR_SIZE] = ""; /* libcurl's detail (never holds the request's body) */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, why);
    int64_t t0 = coord__now_ms();
    CURLcode cc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    *status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (cc == CURLE_OK) return TRY_OK;
    if (!why[0]) snprintf(why, sizeof why, "%s", curl_easy_strerror(cc));
    if (*status == 0 && !r->len &&
        tls_refused(e, ep, cc, why, sizeof why, budget_ms - (coord__now_ms() - t0))) {
        /* Refused in the handshake: nothing was applied. */
        bool cert = coord_uri_param(e->cfg->uri, "cert") != NULL;
        *err = coord_seterr(
            COORD_EAUTH, "etcd %s: TLS: the server refused this client%s: %s", e->endpoints[ep],
            cert ? "'s certificate" : " without a certificate (cert= and key=)", why);
        return TRY_FAIL;
    }
    if (b.sent && !idempotent && !r->too_big) {
        if (cc == CURLE_GOT_NOTHING) *status = -1; /* see below: maybe a rejected token */
        *err = coord_seterr(cc == CURLE_OPERATION_TIMEDOUT ? COORD_ETIMEDOUT : COORD_EUNAVAILABLE,
                            "etcd %s%s: %s after the request was sent; it may have been applied",
                            e->endpoints[ep], path, why);
        return TRY_FAIL;
    }
    if (r->too_big) {
        *err = coord_seterr(COORD_EPROTO, "etcd %s: answer larger than %u bytes", e->endpoints[ep],
                            MAX_BODY);
        return TRY_FAIL;
    }
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        *err = coord_seterr(COORD_EUNAVAILABLE, "etcd %s: %s", e->endpoints[ep], why);
        return TRY_NEXT;
    case CURLE_OPERATION_TIMEDOUT:
        *err = coord_seterr(COORD_ETIMEDOUT, "etcd %s%s: %s", e->endpoints[ep], path, why);
        return TRY_FAIL;
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
        *err = coord_seterr(COORD_EAUTH, "etcd %s: TLS: %s", e->endpoints[ep], why);
        return TRY_FAIL;
    case CURLE_GOT_NOTHING:
        /* etcd 3.4.23 answers auth errors with an empty reply (etcd-io/etcd#15256). */
        *err = coord_seterr(COORD_EUNAVAILABLE, "etcd %s%s: empty reply", e->endpoints[ep], path);
        *status = -1;
        return TRY_FAIL;
    default:
        *err = coord_seterr(COORD_EUNAVAILABLE, "etcd %s%s: %s", e->endpoints[ep], path, why);
        return TRY_FAIL;
    }
}

static int authenticate(etcd *e, CURL *h, int ep, int64_t budget_ms, uint64_t seen_gen);

/*
 * POST `req` to `path`, failing over between endpoints. Requests are only re-sent to another
 * member when they were not delivered (connection refused) or the member said it is unavailable
 * before doing anything (503), unless `idempotent`, so a write is never applied twice by us.
 * On success `*out` is the parsed JSON answer.
 */
static int call(etcd *e, const char *path, cJSON *req, bool idempotent, int timeout_ms,
                cJSON **out) {
    char *json = cJSON_PrintUnformatted(req);
    if (!json) return coord_seterr(COORD_ENOMEM, "out of memory");
    CURL *h = handle_get(e);
    if (!h) {
        free(json);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    int64_t deadline = coord__now_ms() + timeout_ms;
    int ep = atomic_load(&e->current);
    int rc = COORD_EUNAVAILABLE;
    bool reauthed = false, unavailable = false;
    size_t tries = 0;
    while (1) {
        int64_t budget = deadline - coord__now_ms();
        if (budget <= 0) {
            if (rc == COORD_EUNAVAILABLE && tries == 0)
                rc = coord_seterr(COORD_ETIMEDOUT, "etcd %s: timed out", path);
            break;
        }
        /* A member that stopped answering (paused, partitioned) must not take the whole budget
         * of a request that another member could answer: an attempt gets half of what is left,
         * at least 250 ms. */
        int64_t attempt = budget;
        if (idempotent && e->nendpoints > 1 && budget > 250)
            attempt = budget / 2 > 250 ? budget / 2 : 250;
        uint64_t gen;
        struct curl_slist *hd = make_headers(e, &gen);
        resp r = {0};
        long status = 0;
        try_result t = post_once(e, h, ep, path, json, idempotent, hd, attempt, &r, &status, &rc);
        curl_slist_free_all(hd);
        tries++;
        if (rc == COORD_ETIMEDOUT && t != TRY_OK && e->nendpoints > 1) {
            /* Later calls start at the next member rather than wait on this one again. */
            int cur = ep;
            atomic_compare_exchange_strong(&e->current, &cur, (ep + 1) % (int)e->nendpoints);
        }
        if (t == TRY_NEXT || (t == TRY_OK && status == 503) ||
            (t == TRY_FAIL && rc == COORD_EUNAVAILABLE))
            unavailable = true;
        if (t == TRY_OK) {
            if (status == 200) {
                rc = etcd_parse_body(r.body, r.len, out);
                if (rc == 0) atomic_store(&e->current, ep);
                free(r.body);
                break;
            }
            int grpc;
            char msg[256];
            rc = etcd_parse_error(status, r.body, r.len, &grpc, msg, sizeof msg);
            free(r.body);
            const char *who = e->cfg->uri->user;
            if (rc == COORD_EAUTH) /* say who was refused (never with what password) */
                coord_seterr(rc, "etcd %s%s: %s (%s%s%s)", e->endpoints[ep], path, msg,
                             who ? "as user \""
                                 : "authentication needed: no user:password@ in the URI",
                             who ? who : "", who ? "\"" : "");
            else if (rc == COORD_ENOTFOUND && strstr(msg, "lease")) {
                /* The session's lease expired before the keepalive noticed: say so, and have
                 * the keepalive find out now, so the session is replaced at once. */
                rc = coord_seterr(COORD_ESESSION, "etcd %s%s: %s (session expired)",
                                  e->endpoints[ep], path, msg);
                pthread_mutex_lock(&e->mu);
                e->kick = true;
                pthread_cond_broadcast(&e->cv);
                pthread_mutex_unlock(&e->mu);
            } else
                coord_seterr(rc, "etcd %s%s: %s", e->endpoints[ep], path, msg);
            if (rc == COORD_EAUTH && status == 401 && e->cfg->uri->user && !reauthed) {
                reauthed = true;
                int arc = authenticate(e, h, ep, deadline - coord__now_ms(), gen);
                if (arc) {
                    rc = arc;
                    break;
                }
                continue; /* same endpoint, new token */
            }
            /* A 503 after a write reached a member ("request timed out", "leader changed")
             * leaves its outcome open: only repeatable requests go to the next member. */
            if (idempotent && rc == COORD_EUNAVAILABLE)
                t = TRY_NEXT;
            else
                break;
        } else {
            free(r.body);
            if (t == TRY_FAIL && status == -1 && e->cfg->uri->user && !reauthed) {
                /* Renew the token either way; repeat only what may be repeated. */
                reauthed = true;
                if (authenticate(e, h, ep, deadline - coord__now_ms(), gen) == 0 && idempotent)
                    continue;
            }
            if (t == TRY_FAIL && idempotent && rc != COORD_EAUTH && rc != COORD_EPROTO)
                t = TRY_NEXT;
            if (t == TRY_FAIL) break;
        }
        /* TRY_NEXT: the next member; after a full round, pause briefly before another. */
        ep = (ep + 1) % (int)e->nendpoints;
        if (tries % e->nendpoints == 0) {
            int64_t left = deadline - coord__now_ms();
            if (left <= 0) break;
            struct timespec ts = {0, (left < 100 ? left : 100) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (rc == COORD_ETIMEDOUT && unavailable)
        /* Time ran out while members were refusing or unavailable: that is the cause. */
        rc = coord_seterr(COORD_EUNAVAILABLE, "etcd %s: no member available within %d ms (%s)",
                          path, timeout_ms, coord_last_error());
    handle_put(e, h);
    free(json);
    return rc;
}

/* Successful authentications, process-wide: tests check that a revoked token was replaced. */
static _Atomic uint64_t authentications;
uint64_t coord__etcd_authentications(void);
uint64_t coord__etcd_authentications(void) {
    return atomic_load(&authentications);
}

/* Obtain a token with the URI's credentials, unless another thread already replaced the one
 * that was rejected (`seen_gen`). */
static int authenticate(etcd *e, CURL *h, int ep, int64_t budget_ms, uint64_t seen_gen) {
    pthread_mutex_lock(&e->mu);
    bool fresh = e->token_gen != seen_gen;
    pthread_mutex_unlock(&e->mu);
    if (fresh) return 0;
    if (budget_ms <= 0) return coord_seterr(COORD_ETIMEDOUT, "etcd: timed out authenticating");
    cJSON *req = cJSON_CreateObject();
    if (!req || !cJSON_AddStringToObject(req, "name", e->cfg->uri->user) ||
        !cJSON_AddStringToObject(req, "password", e->cfg->uri->password)) {
        cJSON_Delete(req);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    char *json = cJSON_PrintUnformatted(req);
    cJSON *pw = cJSON_GetObjectItemCaseSensitive(req, "password");
    explicit_bzero(pw->valuestring, strlen(pw->valuestring)); /* copies of the password */
    cJSON_Delete(req);
    if (!json) return coord_seterr(COORD_ENOMEM, "out of memory");
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    resp r = {0};
    long status = 0;
    int rc = 0;
    try_result t =
        post_once(e, h, ep, "/v3/auth/authenticate", json, true, hd, budget_ms, &r, &status, &rc);
    curl_slist_free_all(hd);
    explicit_bzero(json, strlen(json));
    free(json);
    if (t != TRY_OK) {
        free(r.body);
        return rc;
    }
    cJSON *j = NULL;
    if (status != 200) {
        int grpc;
        char msg[256];
        rc = etcd_parse_error(status, r.body, r.len, &grpc, msg, sizeof msg);
        free(r.body);
        if (rc != COORD_EUNAVAILABLE) rc = COORD_EAUTH;
        return coord_seterr(rc, "etcd %s: authentication as \"%s\" failed: %s", e->endpoints[ep],
                            e->cfg->uri->user, msg);
    }
    rc = etcd_parse_body(r.body, r.len, &j);
    free(r.body);
    if (rc) return rc;
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "token");
    if (!cJSON_IsString(tok) || !*tok->valuestring || strpbrk(tok->valuestring, "\r\n")) {
        cJSON_Delete(j);
        return coord_seterr(COORD_EPROTO, "etcd: authenticate answer without a token");
    }
    char *t2 = strdup(tok->valuestring);
    cJSON_Delete(j);
    if (!t2) return coord_seterr(COORD_ENOMEM, "out of memory");
    pthread_mutex_lock(&e->mu);
    if (e->token) explicit_bzero(e->token, strlen(e->token));
    free(e->token);
    e->token = t2;
    e->token_gen++;
    pthread_mutex_unlock(&e->mu);
    atomic_fetch_add(&authentications, 1);
    return 0;
}

/* Send a request built by the caller, consuming it; `built` false means building it ran out
 * of memory. */
static int send_built(etcd *e, const char *path, cJSON *req, bool built, bool idempotent,
                      int timeout_ms, cJSON **res) {
    int rc = built && req ? call(e, path, req, idempotent, timeout_ms, res)
                          : coord_seterr(COORD_ENOMEM, "out of memory");
    cJSON_Delete(req);
    return rc;
}

/* ---------- lease / session ---------- */

static int lease_grant(etcd *e, int timeout_ms) {
    cJSON *req = cJSON_CreateObject();
    int64_t ttl_s = (e->cfg->session_ttl_ms + 999) / 1000;
    if (!req || !etcd_add_i64(req, "TTL", ttl_s) || !etcd_add_i64(req, "ID", 0)) {
        cJSON_Delete(req);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    cJSON *res = NULL;
    /* Repeatable: a second grant only leaves an unused lease that expires by itself. */
    int rc = call(e, "/v3/lease/grant", req, true, timeout_ms, &res);
    cJSON_Delete(req);
    if (rc) return rc;
    int64_t id = 0, ttl = 0;
    if ((rc = etcd_get_i64(res, "ID", &id)) || (rc = etcd_get_i64(res, "TTL", &ttl))) {
        cJSON_Delete(res);
        return rc;
    }
    cJSON_Delete(res);
    if (id <= 0 || ttl <= 0) return coord_seterr(COORD_EPROTO, "etcd: lease grant without ID/TTL");
    if (ttl > 9000000000LL) /* etcd's MaxLeaseTTL; more would overflow in milliseconds */
        return coord_seterr(COORD_EPROTO, "etcd: lease TTL %lld out of range", (long long)ttl);
    pthread_mutex_lock(&e->mu);
    e->lease = id;
    e->lease_ttl_ms = ttl * 1000;
    e->session++;
    pthread_mutex_unlock(&e->mu);
    return 0;
}

/* One renewal. Returns 0 (renewed), COORD_ESESSION (the lease is gone) or a transport error. */
static int lease_keepalive(etcd *e, int64_t id, int timeout_ms) {
    cJSON *req = cJSON_CreateObject();
    if (!req || !etcd_add_i64(req, "ID", id)) {
        cJSON_Delete(req);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    cJSON *res = NULL;
    int rc = call(e, "/v3/lease/keepalive", req, true, timeout_ms, &res);
    cJSON_Delete(req);
    if (rc == COORD_ENOTFOUND)
        return coord_seterr(COORD_ESESSION, "etcd: lease %llx not found", (unsigned long long)id);
    if (rc) return rc;
    /* A stream answer: {"result":{...}} (or an error chunk) on one line. */
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(res, "result");
    int64_t ttl = 0;
    if (!cJSON_IsObject(r)) {
        int grpc;
        char msg[256];
        char *txt = cJSON_PrintUnformatted(res);
        rc = etcd_parse_error(0, txt, txt ? strlen(txt) : 0, &grpc, msg, sizeof msg);
        free(txt);
        cJSON_Delete(res);
        if (rc == COORD_ENOTFOUND) return coord_seterr(COORD_ESESSION, "etcd: lease not found");
        return coord_seterr(rc, "etcd: keepalive: %s", msg);
    }
    rc = etcd_get_i64(r, "TTL", &ttl);
    cJSON_Delete(res);
    if (rc) return rc;
    /* A missing (zero) TTL means the lease no longer exists. */
    return ttl > 0 ? 0 : coord_seterr(COORD_ESESSION, "etcd: lease expired");
}

static int lease_revoke(etcd *e, int64_t id, int timeout_ms) {
    cJSON *req = cJSON_CreateObject();
    if (!req || !etcd_add_i64(req, "ID", id)) {
        cJSON_Delete(req);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    cJSON *res = NULL;
    int rc = call(e, "/v3/lease/revoke", req, true, timeout_ms, &res);
    cJSON_Delete(req);
    cJSON_Delete(res);
    return rc;
}

static void report(etcd *e, coord_session_state st) {
    pthread_mutex_lock(&e->mu);
    bool change = e->state != st;
    e->state = st;
    pthread_mutex_unlock(&e->mu);
    if (change) e->cfg->on_state(e->cfg->core, st);
}

/* Sleep until `ms` from now or until the connection stops. Returns true when stopping. */
static bool nap(etcd *e, int64_t ms) {
    struct timespec dl = coord__deadline(ms);
    pthread_mutex_lock(&e->mu);
    while (!e->stopping && !e->kick)
        if (pthread_cond_timedwait(&e->cv, &e->mu, &dl)) break;
    e->kick = false;
    bool s = e->stopping;
    pthread_mutex_unlock(&e->mu);
    return s;
}

static void *keepalive_main(void *arg) {
    etcd *e = arg;
    int64_t last_ok = coord__now_ms();
    while (1) {
        pthread_mutex_lock(&e->mu);
        int64_t id = e->lease, ttl = e->lease_ttl_ms;
        coord_session_state st = e->state;
        pthread_mutex_unlock(&e->mu);
        /* Renew at TTL/3; when out of contact retry sooner. */
        int64_t period = ttl / 3;
        if (st != COORD_SESSION_CONNECTED && period > 500) period = 500;
        if (nap(e, period)) break;
        int64_t budget = ttl / 3 > 1000 ? ttl / 3 : 1000;
        if (budget > INT_MAX) budget = INT_MAX;
        int rc = lease_keepalive(e, id, (int)budget);
        if (rc == 0) {
            last_ok = coord__now_ms();
            report(e, COORD_SESSION_CONNECTED);
            continue;
        }
        if (rc != COORD_ESESSION) {
            report(e, COORD_SESSION_SUSPENDED);
            if (coord__now_ms() - last_ok <= ttl) continue;
            /* Out of contact for a whole TTL: the server has dropped the lease by now. */
        }
        report(e, COORD_SESSION_LOST);
        while (1) {
            if (lease_grant(e, e->cfg->timeout_ms) == 0) break;
            if (nap(e, 500)) return NULL;
        }
        last_ok = coord__now_ms();
        report(e, COORD_SESSION_CONNECTED);
    }
    return NULL;
}

/* ---------- watches ---------- */

static void watch_deliver(coord_watch *w, coord_watch_event ev, int64_t rev) {
    /* A key goes once: the check after the stream starts and the stream's own event may both
     * see the same deletion. */
    if (ev == COORD_EV_DELETED) {
        if (w->deleted_reported) return;
        w->deleted_reported = true;
    }
    w->fn(w->payload, ev, rev);
    if (ev == COORD_EV_DELETED && w->kind == COORD_WATCH_KEY) {
        /* Nothing is left to report: close the stream now, so the unwatch that follows (a lock
         * waiter's, on its hand-off path) finds it gone instead of waiting for this thread. */
        w->removing = true;
        curl_multi_wakeup(w->e->multi);
    }
}

static int on_watch_line(void *ctx, const char *line, size_t len) {
    coord_watch *w = ctx;
    etcd_watch_msg m;
    int rc = etcd_parse_watch_line(line, len, &m);
    if (rc) return rc;
    if (m.is_error) {
        int err = m.err ? m.err : COORD_EBACKEND;
        coord_seterr(err, "etcd watch: %s", m.msg);
        etcd_watch_msg_clear(&m);
        return err;
    }
    bool changed = false;
    if (m.created && w->next_rev == 0) w->next_rev = m.header_revision + 1;
    if (m.created && w->verify) {
        w->verify = false;
        if (m.header_revision > w->after) {
            if (w->kind == COORD_WATCH_KEY)
                w->need_check = true; /* did it go meanwhile? */
            else if (w->after > 0)
                changed = true; /* list again to be sure */
        }
    }
    if (m.canceled) {
        if (strstr(m.msg, "Unauthenticated") || strstr(m.msg, "invalid auth token"))
            w->unauth = true;
        int64_t compact = m.compact_revision;
        etcd_watch_msg_clear(&m);
        if (compact > 0) {
            /* History before `compact` is gone: the owner lists again; resume from there. */
            w->next_rev = compact;
            watch_deliver(w, COORD_EV_RESET, compact);
            return 1; /* end this stream, reconnect */
        }
        return coord_seterr(COORD_EBACKEND, "etcd watch canceled by the server");
    }
    int64_t rev = m.header_revision;
    for (size_t i = 0; i < m.nevents; i++) {
        etcd_event *ev = &m.events[i];
        if (ev->mod_revision < w->next_rev) continue; /* replay after reconnect */
        rev = ev->mod_revision;
        w->next_rev = rev + 1;
        if (w->kind == COORD_WATCH_KEY) {
            if (ev->is_delete) watch_deliver(w, COORD_EV_DELETED, rev);
        } else if (ev->keylen > w->dirlen &&
                   !memchr(ev->key + w->dirlen, '/', ev->keylen - w->dirlen)) {
            changed = true;
        }
    }
    etcd_watch_msg_clear(&m);
    if (changed) watch_deliver(w, COORD_EV_CHANGED, rev);
    return 0;
}

static size_t on_watch_data(char *p, size_t sz, size_t n, void *ud) {
    coord_watch *w = ud;
    size_t len = sz * n;
    if (w->status == 0) curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->status);
    if (w->status != 200) {
        size_t take =
            len < sizeof w->errbody - 1 - w->errlen ? len : sizeof w->errbody - 1 - w->errlen;
        memcpy(w->errbody + w->errlen, p, take);
        w->errlen += take;
        return len;
    }
    if (w->removing) return 0;
    int rc = etcd_lines_feed(&w->lines, p, len, on_watch_line, w);
    if (rc != 0) return 0; /* abort: reconnect (or reset) */
    w->failures = 0;
    return len;
}

/* Prepare `*h` (made on first use) to POST `json` to `path` of endpoint `ep` on the watch
 * thread's multi handle; the caller adds it. Nonzero when out of memory. */
static int multi_post(etcd *e, CURL **h, struct curl_slist **hdrs, uint64_t *gen, coord_watch *w,
                      int ep, const char *path, const char *json, curl_write_callback fn,
                      void *ud) {
    if (!*h && !(*h = curl_easy_init())) return 1;
    curl_slist_free_all(*hdrs);
    *hdrs = make_headers(e, gen);
    char url[600];
    snprintf(url, sizeof url, "%s%s", e->endpoints[ep], path);
    curl_easy_reset(*h);
    setup_handle(e, *h);
    curl_easy_setopt(*h, CURLOPT_URL, url);
    curl_easy_setopt(*h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(*h, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(*h, CURLOPT_WRITEFUNCTION, fn);
    curl_easy_setopt(*h, CURLOPT_WRITEDATA, ud);
    curl_easy_setopt(*h, CURLOPT_PRIVATE, w);
    curl_easy_setopt(*h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->cfg->connect_timeout_ms);
    return 0;
}

static int watch_start(etcd *e, coord_watch *w) {
    cJSON *req = cJSON_CreateObject();
    cJSON *cr = cJSON_AddObjectToObject(req, "create_request");
    if (!cr || !etcd_add_bytes(cr, "key", w->key, w->keylen) ||
        (w->relen && !etcd_add_bytes(cr, "range_end", w->range_end, w->relen)) ||
        (w->next_rev > 0 && !etcd_add_i64(cr, "start_revision", w->next_rev))) {
        cJSON_Delete(req);
        return COORD_ENOMEM;
    }
    free(w->body);
    w->body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!w->body) return COORD_ENOMEM;
    w->endpoint = atomic_load(&e->current);
    if (multi_post(e, &w->h, &w->hdrs, &w->gen, w, w->endpoint, "/v3/watch", w->body, on_watch_data,
                   w))
        return COORD_ENOMEM;
    /* A silent member (paused, partitioned) is noticed by TCP keepalive probes. */
    curl_easy_setopt(w->h, CURLOPT_TCP_KEEPIDLE, 2L);
    curl_easy_setopt(w->h, CURLOPT_TCP_KEEPINTVL, 1L);
    etcd_lines_reset(&w->lines);
    w->status = 0;
    w->errlen = 0;
    w->unauth = false;
    return curl_multi_add_handle(e->multi, w->h) == CURLM_OK ? 0 : COORD_EBACKEND;
}

/* Start the read that tells whether a KEY watch's key went before its stream started. */
static int check_start(etcd *e, coord_watch *w) {
    cJSON *req = cJSON_CreateObject();
    bool ok = req && etcd_add_bytes(req, "key", w->key, w->keylen) &&
              cJSON_AddBoolToObject(req, "keys_only", 1);
    free(w->cbody);
    w->cbody = ok ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    free(w->cresp.body);
    memset(&w->cresp, 0, sizeof w->cresp);
    if (!w->cbody || multi_post(e, &w->ch, &w->chdrs, &w->cgen, w, atomic_load(&e->current),
                                "/v3/kv/range", w->cbody, on_body, &w->cresp))
        return COORD_ENOMEM;
    curl_easy_setopt(w->ch, CURLOPT_TIMEOUT_MS, (long)e->cfg->timeout_ms);
    return curl_multi_add_handle(e->multi, w->ch) == CURLM_OK ? 0 : COORD_EBACKEND;
}

/* A token the server refused on the watch thread: replace it (unless another thread did), so
 * the streams and checks sent next carry a good one. Nothing else would: a watch can wait while
 * the application makes no call. */
static int watch_reauth(etcd *e, int ep, uint64_t gen) {
    if (!e->cfg->uri->user) return COORD_EAUTH;
    CURL *h = handle_get(e);
    int rc = h ? authenticate(e, h, ep, e->cfg->timeout_ms, gen) : COORD_ENOMEM;
    handle_put(e, h);
    return rc;
}

/* The check finished: report the deletion, or look again a little later (at once after a
 * refused token was replaced). */
static void check_done(etcd *e, coord_watch *w, CURLcode cc) {
    long status = 0;
    curl_easy_getinfo(w->ch, CURLINFO_RESPONSE_CODE, &status);
    cJSON *res = NULL;
    if (cc == CURLE_OK && status == 200 &&
        etcd_parse_body(w->cresp.body, w->cresp.len, &res) == 0) {
        /* Gone, or made again since the caller saw it (a lock handle reuses its key): either
         * way the entry the caller watches has been deleted. */
        const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "kvs"), 0);
        int64_t created = 0;
        if (!kv || (etcd_get_i64(kv, "create_revision", &created) == 0 && created > w->after))
            watch_deliver(w, COORD_EV_DELETED, 0);
    } else {
        w->need_check = true;
        w->check_at = coord__now_ms() + 200;
        if (status == 401 && watch_reauth(e, atomic_load(&e->current), w->cgen) == 0)
            w->check_at = 0;
    }
    cJSON_Delete(res);
    free(w->cresp.body);
    memset(&w->cresp, 0, sizeof w->cresp);
}

static void watch_free(coord_watch *w) {
    if (w->ch) curl_easy_cleanup(w->ch);
    curl_slist_free_all(w->chdrs);
    free(w->cbody);
    free(w->cresp.body);
    if (w->h) curl_easy_cleanup(w->h);
    curl_slist_free_all(w->hdrs);
    free(w->body);
    free(w->key);
    free(w->range_end);
    etcd_lines_free(&w->lines);
    free(w);
}

static int etcd_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms);

static void *watch_main(void *arg) {
    etcd *e = arg;
    while (1) {
        pthread_mutex_lock(&e->mu);
        if (e->stopping && !e->watches) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        /* Removals requested by unwatch, and streams that are due to (re)start. */
        int64_t now = coord__now_ms(), next_wake = now + 1000;
        coord_watch **pp = &e->watches;
        coord_watch *start[64];
        int nstart = 0;
        while (*pp) {
            coord_watch *w = *pp;
            if (w->removing) {
                if (w->h) curl_multi_remove_handle(e->multi, w->h);
                if (w->ch) curl_multi_remove_handle(e->multi, w->ch);
                *pp = w->next;
                w->removed = true;
                continue;
            }
            if (w->retry_at && w->retry_at <= now && nstart < 64) {
                w->retry_at = 0;
                start[nstart++] = w;
            } else if (w->retry_at && w->retry_at < next_wake) {
                next_wake = w->retry_at;
            }
            pp = &w->next;
        }
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);

        for (int i = 0; i < nstart; i++) {
            coord_watch *w = start[i];
            if (w->pending_deleted) {
                w->pending_deleted = false;
                watch_deliver(w, COORD_EV_DELETED, w->next_rev);
            }
            if (w->removing) continue; /* its key was gone already: no stream to open */
            if (watch_start(e, w)) w->retry_at = coord__now_ms() + 500;
        }
        int running = 0;
        curl_multi_perform(e->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(e->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            coord_watch *w = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&w);
            curl_multi_remove_handle(e->multi, msg->easy_handle);
            if (!w) continue;
            if (msg->easy_handle == w->ch) {
                check_done(e, w, msg->data.result);
                continue;
            }
            /* The stream ended: an error, a dead member, a compaction reset or an auth error.
             * Resume from next_rev, on the next member if this one failed. */
            /* A refused token: a new one, then a new stream at once (with the usual back-off
             * while no new one can be had, e.g. the password was changed). */
            if ((w->status == 401 || w->unauth) && watch_reauth(e, w->endpoint, w->gen) == 0)
                w->failures = 0;
            if (w->status != 200 || msg->data.result != CURLE_WRITE_ERROR) {
                int cur = atomic_load(&e->current);
                if (cur == w->endpoint)
                    atomic_compare_exchange_strong(&e->current, &cur,
                                                   (w->endpoint + 1) % (int)e->nendpoints);
            }
            w->failures++;
            int64_t backoff = w->failures <= 1 ? 0 : w->failures < 8 ? 50L << w->failures : 5000;
            w->retry_at = coord__now_ms() + backoff + 1;
        }
        /* Key watches whose stream started after the caller's revision: is the key still
         * there? */
        coord_watch *check[64];
        int ncheck = 0;
        now = coord__now_ms();
        pthread_mutex_lock(&e->mu);
        for (coord_watch *w = e->watches; w && ncheck < 64; w = w->next) {
            if (!w->need_check || w->removing) continue;
            if (w->check_at > now) {
                if (w->check_at < next_wake) next_wake = w->check_at;
                continue;
            }
            w->need_check = false;
            check[ncheck++] = w;
        }
        pthread_mutex_unlock(&e->mu);
        for (int i = 0; i < ncheck; i++)
            if (check_start(e, check[i])) {
                check[i]->need_check = true;
                check[i]->check_at = coord__now_ms() + 200;
            }
        if (ncheck) curl_multi_perform(e->multi, &running);
        int64_t wait = next_wake - coord__now_ms();
        if (wait > 1000) wait = 1000;
        if (wait < 0) wait = 0;
        curl_multi_poll(e->multi, NULL, 0, (int)wait, NULL);
    }
    return NULL;
}

static int etcd_watch(coord_conn *c, const char *path, int kind, int64_t after, coord_watch_fn fn,
                      void *payload, coord_watch **out) {
    etcd *e = (etcd *)c;
    coord_watch *w = calloc(1, sizeof *w);
    if (!w) return coord_seterr(COORD_ENOMEM, "out of memory");
    w->e = e;
    w->kind = kind;
    w->fn = fn;
    w->payload = payload;
    w->lines.max = MAX_LINE;
    size_t pl = strlen(path);
    if (kind == COORD_WATCH_CHILDREN) {
        w->key = malloc(pl + 2);
        w->range_end = malloc(pl + 2);
        if (!w->key || !w->range_end) goto oom;
        memcpy(w->key, path, pl);
        w->key[pl] = '/';
        w->key[pl + 1] = 0;
        w->keylen = w->dirlen = pl + 1;
        w->relen = etcd_prefix_end(w->key, w->keylen, w->range_end);
        w->range_end[w->relen] = 0;
    } else {
        if (!(w->key = strdup(path))) goto oom;
        w->keylen = pl;
    }
    w->after = after;
    w->verify = kind == COORD_WATCH_KEY;
    if (kind == COORD_WATCH_CHILDREN && after > 0) {
        /* A set watch resumes exactly after `after`, so a compacted history reports RESET. */
        w->next_rev = after + 1;
    } else if (after <= 0) {
        /* "From now" means from this call: learn the current revision (and, for a key, whether
         * it is already gone) so the stream's start can be compared with it. */
        cJSON *req = cJSON_CreateObject();
        if (!req || !etcd_add_bytes(req, "key", w->key, w->keylen) ||
            (w->relen && (!etcd_add_bytes(req, "range_end", w->range_end, w->relen) ||
                          !cJSON_AddBoolToObject(req, "count_only", 1)))) {
            cJSON_Delete(req);
            goto oom;
        }
        cJSON *res = NULL;
        int rc = call(e, "/v3/kv/range", req, true, e->cfg->timeout_ms, &res);
        cJSON_Delete(req);
        int64_t rev = 0;
        if (!rc) rc = etcd_header_rev(res, &rev);
        const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(res, "kvs");
        w->pending_deleted = kind == COORD_WATCH_KEY && !cJSON_GetArraySize(kvs);
        cJSON_Delete(res);
        if (rc) {
            watch_free(w);
            return rc;
        }
        w->after = rev;
        if (kind == COORD_WATCH_CHILDREN) w->next_rev = rev + 1;
    }
    w->retry_at = 1; /* start at the next loop */
    pthread_mutex_lock(&e->mu);
    w->next = e->watches;
    e->watches = w;
    pthread_mutex_unlock(&e->mu);
    curl_multi_wakeup(e->multi);
    *out = w;
    return 0;
oom:
    watch_free(w);
    return coord_seterr(COORD_ENOMEM, "out of memory");
}

static void etcd_unwatch(coord_conn *c, coord_watch *w) {
    etcd *e = (etcd *)c;
    if (!w) return;
    pthread_mutex_lock(&e->mu);
    w->removing = true;
    while (!w->removed) {
        pthread_mutex_unlock(&e->mu);
        curl_multi_wakeup(e->multi);
        pthread_mutex_lock(&e->mu);
        if (w->removed) break;
        struct timespec dl = coord__deadline(100);
        pthread_cond_timedwait(&e->cv, &e->mu, &dl);
    }
    pthread_mutex_unlock(&e->mu);
    watch_free(w);
}

/* ---------- KV ---------- */

static int lease_now(etcd *e, int64_t *id) {
    pthread_mutex_lock(&e->mu);
    *id = e->lease;
    pthread_mutex_unlock(&e->mu);
    return 0;
}

static int first_kv(const cJSON *answer, coord_kv *out, bool *found) {
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(answer, "kvs");
    *found = false;
    if (kvs && !cJSON_IsArray(kvs)) return coord_seterr(COORD_EPROTO, "etcd: kvs is not an array");
    const cJSON *kv = cJSON_GetArrayItem(kvs, 0);
    if (!kv) return 0;
    *found = true;
    return etcd_parse_kv(kv, 0, out);
}

/* get; `*lease` (may be NULL) receives the key's lease (0 for none). */
static int get_key(etcd *e, const char *path, coord_kv *out, int64_t *lease, int timeout_ms) {
    cJSON *req = cJSON_CreateObject();
    if (!req || !etcd_add_bytes(req, "key", path, strlen(path))) {
        cJSON_Delete(req);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    cJSON *res = NULL;
    int rc = call(e, "/v3/kv/range", req, true, timeout_ms, &res);
    cJSON_Delete(req);
    if (rc) return rc;
    bool found;
    rc = first_kv(res, out, &found);
    if (!rc && found && lease) {
        const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "kvs"), 0);
        *lease = 0;
        if (cJSON_GetObjectItemCaseSensitive(kv, "lease")) rc = etcd_get_i64(kv, "lease", lease);
        if (rc) coord_kv_clear(out);
    }
    cJSON_Delete(res);
    if (!rc && !found) rc = coord_seterr(COORD_ENOTFOUND, "%s does not exist", path);
    return rc;
}

static int etcd_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    return get_key((etcd *)c, path, out, NULL, timeout_ms);
}

static int etcd_get_own(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    etcd *e = (etcd *)c;
    int64_t lease = 0, mine = 0;
    int rc = get_key(e, path, out, &lease, timeout_ms);
    if (rc) return rc;
    lease_now(e, &mine);
    if (lease && lease == mine) return 0;
    coord_kv_clear(out);
    return coord_seterr(COORD_EEXISTS, "%s is not on this session's lease", path);
}

/* The single response of a Txn branch, by its expected type. */
static const cJSON *txn_response(const cJSON *res, int i, const char *type) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(res, "responses");
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rs, i), type);
}

static cJSON *compare_version(const char *path, int64_t expect) {
    cJSON *cmp = cJSON_CreateObject();
    if (!cmp || !etcd_add_bytes(cmp, "key", path, strlen(path)) ||
        !cJSON_AddStringToObject(cmp, "result", "EQUAL") ||
        !cJSON_AddStringToObject(cmp, "target", expect == 0 ? "CREATE" : "MOD") ||
        !etcd_add_i64(cmp, expect == 0 ? "create_revision" : "mod_revision", expect)) {
        cJSON_Delete(cmp);
        return NULL;
    }
    return cmp;
}

static cJSON *op_range(const char *path) {
    cJSON *op = cJSON_CreateObject();
    cJSON *r = cJSON_AddObjectToObject(op, "request_range");
    if (!r || !etcd_add_bytes(r, "key", path, strlen(path))) {
        cJSON_Delete(op);
        return NULL;
    }
    return op;
}

/* A request_put op; `lease` 0 for none. */
static cJSON *op_put(const char *key, const void *value, size_t len, int64_t lease) {
    cJSON *op = cJSON_CreateObject();
    cJSON *put = cJSON_AddObjectToObject(op, "request_put");
    if (!put || !etcd_add_bytes(put, "key", key, strlen(key)) ||
        (len && !etcd_add_bytes(put, "value", value, len)) ||
        (lease && !etcd_add_i64(put, "lease", lease))) {
        cJSON_Delete(op);
        return NULL;
    }
    return op;
}

/* An empty TxnRequest with its compare, success and failure arrays; NULL when out of memory. */
static cJSON *txn_new(cJSON **cmps, cJSON **succ, cJSON **fail) {
    cJSON *req = cJSON_CreateObject();
    *cmps = cJSON_AddArrayToObject(req, "compare");
    *succ = cJSON_AddArrayToObject(req, "success");
    *fail = cJSON_AddArrayToObject(req, "failure");
    if (!*cmps || !*succ || !*fail) {
        cJSON_Delete(req);
        return NULL;
    }
    return req;
}

static int etcd_put(coord_conn *c, const char *path, const void *value, size_t len, int64_t expect,
                    unsigned flags, coord_kv *out, int timeout_ms) {
    etcd *e = (etcd *)c;
    if (flags & COORD_PUT_SEQUENTIAL)
        return coord_seterr(COORD_ENOTSUP, "etcd has no sequential keys");
    int64_t lease = 0;
    if (flags & COORD_PUT_EPHEMERAL) lease_now(e, &lease);
    /* Txn: [compare] -> put, else read the current entry (one round trip for a conflict).
     * A conditional put learns its revision from the answer's header; only an unconditional
     * one reads back, as it cannot tell whether it created the key (the create revision). */
    bool readback = expect == COORD_VERSION_ANY;
    cJSON *cmps, *succ, *fail;
    cJSON *req = txn_new(&cmps, &succ, &fail);
    /* No prev_kv on an update: the create revision it would give (order, token) is not part of
     * the contract after a conditional update, and fetching the old entry costs the server a
     * read on every counter add. */
    cJSON *put = op_put(path, value, len, lease);
    bool ok = req && put && cJSON_AddItemToArray(succ, put);
    if (!ok) cJSON_Delete(put);
    ok = ok && cJSON_AddItemToArray(fail, op_range(path));
    if (ok && readback) ok = cJSON_AddItemToArray(succ, op_range(path));
    if (ok && !readback) ok = cJSON_AddItemToArray(cmps, compare_version(path, expect));
    cJSON *res = NULL;
    int rc = send_built(e, "/v3/kv/txn", req, ok, false, timeout_ms, &res);
    if (rc) return rc;
    bool succeeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded"));
    coord_kv cur = {0};
    bool found = false;
    if (succeeded && !readback) {
        int64_t rev = 0;
        rc = etcd_header_rev(res, &rev);
        if (!rc && rev <= 0) rc = coord_seterr(COORD_EPROTO, "etcd: txn answer without revision");
        if (!rc && !(cur.key = strdup(path))) rc = coord_seterr(COORD_ENOMEM, "out of memory");
        cur.version = rev;
        if (expect == COORD_VERSION_ABSENT) { /* created now */
            cur.order = rev;
            cur.token = (uint64_t)rev;
        }
        found = true;
    } else {
        const cJSON *rr = txn_response(res, succeeded ? 1 : 0, "response_range");
        if (!rr && succeeded) rc = coord_seterr(COORD_EPROTO, "etcd: txn answer without range");
        if (!rc && rr) rc = first_kv(rr, &cur, &found);
    }
    cJSON_Delete(res);
    if (rc) {
        coord_kv_clear(&cur);
        return rc;
    }
    if (succeeded && !found) {
        /* Deleted between our put and read in the same txn: impossible; the server is odd. */
        return coord_seterr(COORD_EPROTO, "etcd: key vanished inside a txn");
    }
    if (succeeded) { /* the caller knows what it wrote */
        free(cur.value);
        cur.value = NULL;
        cur.len = 0;
    }
    if (out)
        *out = cur;
    else
        coord_kv_clear(&cur);
    if (!succeeded)
        return coord_seterr(COORD_ECONFLICT, "%s: version %lld, expected %lld", path,
                            (long long)(found ? (out ? out->version : 1) : 0), (long long)expect);
    return 0;
}

static int etcd_del(coord_conn *c, const char *path, int64_t expect, int timeout_ms) {
    etcd *e = (etcd *)c;
    if (expect == COORD_VERSION_ANY) {
        /* Unconditional: a plain DeleteRange, lighter for the server than a Txn. */
        cJSON *req = cJSON_CreateObject();
        bool ok = req && etcd_add_bytes(req, "key", path, strlen(path));
        cJSON *res = NULL;
        int rc = send_built(e, "/v3/kv/deleterange", req, ok, false, timeout_ms, &res);
        if (rc) return rc;
        int64_t deleted = 0;
        rc = etcd_get_i64(res, "deleted", &deleted);
        cJSON_Delete(res);
        if (!rc && deleted == 0) rc = coord_seterr(COORD_ENOTFOUND, "%s does not exist", path);
        return rc;
    }
    cJSON *cmps, *succ, *fail;
    cJSON *req = txn_new(&cmps, &succ, &fail);
    cJSON *delop = cJSON_CreateObject();
    cJSON *del = cJSON_AddObjectToObject(delop, "request_delete_range");
    bool ok = req && del && etcd_add_bytes(del, "key", path, strlen(path));
    if (ok)
        ok = cJSON_AddItemToArray(succ, delop);
    else
        cJSON_Delete(delop);
    if (ok) ok = cJSON_AddItemToArray(fail, op_range(path));
    if (ok) ok = cJSON_AddItemToArray(cmps, compare_version(path, expect));
    cJSON *res = NULL;
    int rc = send_built(e, "/v3/kv/txn", req, ok, false, timeout_ms, &res);
    if (rc) return rc;
    bool succeeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded"));
    if (succeeded) {
        int64_t deleted = 0;
        const cJSON *dr = txn_response(res, 0, "response_delete_range");
        rc = dr ? etcd_get_i64(dr, "deleted", &deleted)
                : coord_seterr(COORD_EPROTO, "etcd: txn answer without delete");
        if (!rc && deleted == 0) rc = coord_seterr(COORD_ENOTFOUND, "%s does not exist", path);
    } else {
        const cJSON *rr = txn_response(res, 0, "response_range");
        const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(rr, "kvs");
        rc = cJSON_GetArraySize(kvs) ? coord_seterr(COORD_ECONFLICT, "%s changed", path)
                                     : coord_seterr(COORD_ENOTFOUND, "%s does not exist", path);
    }
    cJSON_Delete(res);
    return rc;
}

static int etcd_list(coord_conn *c, const char *path, unsigned flags, coord_kv **out, size_t *n,
                     int64_t *epoch, int timeout_ms) {
    etcd *e = (etcd *)c;
    size_t pl = strlen(path);
    char *dir = malloc(pl + 2), *end = malloc(pl + 2);
    cJSON *req = cJSON_CreateObject();
    int rc = 0;
    if (!dir || !end || !req) goto oom;
    memcpy(dir, path, pl);
    dir[pl] = '/';
    size_t el = etcd_prefix_end(dir, pl + 1, end);
    if (!etcd_add_bytes(req, "key", dir, pl + 1) || !etcd_add_bytes(req, "range_end", end, el) ||
        !cJSON_AddStringToObject(req, "sort_target", "CREATE") ||
        !cJSON_AddStringToObject(req, "sort_order", "ASCEND") ||
        ((flags & COORD_LIST_NAMES) && !cJSON_AddBoolToObject(req, "keys_only", 1)))
        goto oom;
    cJSON *res = NULL;
    rc = call(e, "/v3/kv/range", req, true, timeout_ms, &res);
    if (rc) goto done;
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(res, "kvs");
    if (kvs && !cJSON_IsArray(kvs)) {
        cJSON_Delete(res);
        rc = coord_seterr(COORD_EPROTO, "etcd: kvs is not an array");
        goto done;
    }
    int cnt = cJSON_GetArraySize(kvs);
    coord_kv *arr = cnt ? calloc((size_t)cnt, sizeof *arr) : NULL;
    size_t got = 0;
    if (cnt && !arr) {
        cJSON_Delete(res);
        goto oom;
    }
    const cJSON *kv;
    cJSON_ArrayForEach(kv, kvs) {
        coord_kv item;
        if ((rc = etcd_parse_kv(kv, pl + 1, &item))) break;
        if (!item.key[0] || strchr(item.key, '/')) { /* not a direct child */
            coord_kv_clear(&item);
            continue;
        }
        arr[got++] = item;
    }
    int64_t rev = 0;
    if (!rc) rc = etcd_header_rev(res, &rev);
    cJSON_Delete(res);
    if (rc) {
        coord_kv_array_free(arr, got);
        goto done;
    }
    *out = arr;
    *n = got;
    if (epoch) *epoch = rev;
    goto done;
oom:
    rc = coord_seterr(COORD_ENOMEM, "out of memory");
done:
    free(dir);
    free(end);
    cJSON_Delete(req);
    return rc;
}

/* ---------- lock queue (etcd concurrency.Mutex layout) ---------- */

/* A request_range op over the children of `dir` ("dir/" .. prefix end), one entry, by create
 * revision; `max_create` > 0 bounds it (the predecessor query of waitDeletes). */
static cJSON *op_queue_range(const char *dir, bool descend, int64_t max_create, int limit) {
    size_t dl = strlen(dir);
    char *pfx = malloc(dl + 2), *end = malloc(dl + 2);
    cJSON *op = cJSON_CreateObject();
    cJSON *r = cJSON_AddObjectToObject(op, "request_range");
    bool ok = pfx && end && r;
    if (ok) {
        memcpy(pfx, dir, dl);
        pfx[dl] = '/';
        size_t el = etcd_prefix_end(pfx, dl + 1, end);
        ok = etcd_add_bytes(r, "key", pfx, dl + 1) && etcd_add_bytes(r, "range_end", end, el) &&
             cJSON_AddStringToObject(r, "sort_target", "CREATE") &&
             cJSON_AddStringToObject(r, "sort_order", descend ? "DESCEND" : "ASCEND") &&
             etcd_add_i64(r, "limit", limit) &&
             (max_create <= 0 || etcd_add_i64(r, "max_create_revision", max_create));
    }
    free(pfx);
    free(end);
    if (!ok) {
        cJSON_Delete(op);
        return NULL;
    }
    return op;
}

/* kvs[0] of the range response at `i` of a txn answer; *found false when empty. */
static int txn_first_kv(const cJSON *res, int i, coord_kv *out, bool *found) {
    const cJSON *rr = txn_response(res, i, "response_range");
    if (!rr) {
        *found = false;
        return coord_seterr(COORD_EPROTO, "etcd: txn answer without range %d", i);
    }
    return first_kv(rr, out, found);
}

static int etcd_lock_enqueue(coord_conn *c, const char *dir, const char *tag, coord_kv *mine,
                             bool *first, coord_kv *pred, int64_t *after, int timeout_ms) {
    etcd *e = (etcd *)c;
    int64_t lease;
    lease_now(e, &lease);
    /* etcd's Mutex names its key by the lease alone, so two mutexes of one session would share
     * it; the handle's tag keeps handles of one client apart under the same prefix. */
    char *key = NULL;
    if (asprintf(&key, "%s/%llx-%s", dir, (unsigned long long)lease, tag) < 0)
        return coord_seterr(COORD_ENOMEM, "out of memory");
    cJSON *cmps, *succ, *fail;
    cJSON *req = txn_new(&cmps, &succ, &fail);
    bool ok = req && cJSON_AddItemToArray(succ, op_put(key, NULL, 0, lease));
    ok = ok && cJSON_AddItemToArray(cmps, compare_version(key, 0)) &&
         cJSON_AddItemToArray(succ, op_queue_range(dir, true, 0, 2)) &&
         cJSON_AddItemToArray(fail, op_range(key)) &&
         cJSON_AddItemToArray(fail, op_queue_range(dir, false, 0, 1));
    if (!ok) {
        cJSON_Delete(req);
        free(key);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    cJSON *res = NULL;
    /* Safe to resend: the compare makes a second attempt read the key the first one made. */
    int rc = call(e, "/v3/kv/txn", req, true, timeout_ms, &res);
    cJSON_Delete(req);
    if (rc) {
        free(key);
        return rc;
    }
    bool succeeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded"));
    int64_t myrev = 0;
    memset(pred, 0, sizeof *pred);
    rc = etcd_header_rev(res, after);
    const cJSON *rr = txn_response(res, 1, "response_range");
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(rr, "kvs");
    if (!rc && (!rr || (kvs && !cJSON_IsArray(kvs))))
        rc = coord_seterr(COORD_EPROTO, "etcd: lock txn answer without its range");
    if (!rc && succeeded) {
        /* Created now: the newest contender is ours, the next newest our predecessor. */
        myrev = *after;
        const cJSON *second = cJSON_GetArrayItem(kvs, 1);
        *first = second == NULL;
        if (second) rc = etcd_parse_kv(second, 0, pred);
    } else if (!rc) {
        /* Made by an earlier attempt of ours: compare with the owner, as etcd's Mutex does. */
        coord_kv self = {0}, owner = {0};
        bool found = false;
        rc = txn_first_kv(res, 0, &self, &found);
        if (!rc && !found) rc = coord_seterr(COORD_EPROTO, "etcd: lock key vanished in a txn");
        myrev = self.order;
        if (!rc && cJSON_GetArraySize(kvs) > 0)
            rc = etcd_parse_kv(cJSON_GetArrayItem(kvs, 0), 0, &owner);
        *first = !rc && (!owner.key || owner.order == myrev);
        coord_kv_clear(&self);
        coord_kv_clear(&owner);
    }
    cJSON_Delete(res);
    if (!rc && myrev <= 0) rc = coord_seterr(COORD_EPROTO, "etcd: no revision for the lock key");
    if (rc) {
        coord_kv_clear(pred);
        free(key);
        return rc;
    }
    memset(mine, 0, sizeof *mine);
    mine->key = key;
    mine->version = myrev;
    mine->order = myrev;
    mine->token = (uint64_t)myrev;
    return 0;
}

static int etcd_lock_predecessor(coord_conn *c, const char *dir, const coord_kv *mine,
                                 coord_kv *pred, int64_t *after, int timeout_ms) {
    etcd *e = (etcd *)c;
    /* One range: the two newest contenders up to mine, which is the first of them while it
     * exists (no other key has its create revision); the second is my predecessor. */
    cJSON *op = op_queue_range(dir, true, mine->order, 2);
    cJSON *req = op ? cJSON_DetachItemFromObject(op, "request_range") : NULL;
    cJSON_Delete(op);
    cJSON *res = NULL;
    int rc = send_built(e, "/v3/kv/range", req, req != NULL, true, timeout_ms, &res);
    if (rc) return rc;
    memset(pred, 0, sizeof *pred);
    coord_kv self = {0};
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(res, "kvs");
    if (kvs && !cJSON_IsArray(kvs)) rc = coord_seterr(COORD_EPROTO, "etcd: kvs is not an array");
    if (!rc && cJSON_GetArrayItem(kvs, 0)) rc = etcd_parse_kv(cJSON_GetArrayItem(kvs, 0), 0, &self);
    if (!rc && cJSON_GetArrayItem(kvs, 1)) rc = etcd_parse_kv(cJSON_GetArrayItem(kvs, 1), 0, pred);
    if (!rc) rc = etcd_header_rev(res, after);
    cJSON_Delete(res);
    if (!rc && (!self.key || self.order != mine->order || strcmp(self.key, mine->key)))
        rc = coord_seterr(COORD_ESESSION, "lock key %s is gone (session expired)", mine->key);
    coord_kv_clear(&self);
    if (rc) coord_kv_clear(pred);
    return rc;
}

/* ---------- lifecycle ---------- */

static void etcd_free(etcd *e) {
    for (int i = 0; i < e->npool; i++)
        curl_easy_cleanup(e->pool[i]);
    for (size_t i = 0; i < e->nendpoints; i++)
        free(e->endpoints[i]);
    free(e->endpoints);
    if (e->token) explicit_bzero(e->token, strlen(e->token));
    free(e->token);
    if (e->multi) curl_multi_cleanup(e->multi);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
}

static void stop_threads(etcd *e) {
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->multi) curl_multi_wakeup(e->multi);
    if (e->ka_started) pthread_join(e->ka_thread, NULL);
    if (e->w_started) pthread_join(e->w_thread, NULL);
}

static void etcd_close(coord_conn *c) {
    etcd *e = (etcd *)c;
    if (!e) return;
    stop_threads(e);
    /* Revoking deletes every key on the lease at once, rather than after the TTL. */
    lease_revoke(e, e->lease, e->cfg->timeout_ms < 2000 ? e->cfg->timeout_ms : 2000);
    etcd_free(e);
}

extern const coord_backend coord__etcd_backend;

static int etcd_open(coord_conn **out, const coord_config *cfg) {
    etcd *e = calloc(1, sizeof *e);
    if (!e) return coord_seterr(COORD_ENOMEM, "out of memory");
    e->base.backend = &coord__etcd_backend;
    e->cfg = cfg;
    e->state = COORD_SESSION_CONNECTED;
    pthread_mutex_init(&e->mu, NULL);
    coord__cond_init(&e->cv);
    const coord_uri *u = cfg->uri;
    bool tls = strcmp(u->scheme, "etcds") == 0;
    int rc = 0;
    e->endpoints = calloc(u->nhosts, sizeof *e->endpoints);
    if (!e->endpoints) goto oom;
    for (size_t i = 0; i < u->nhosts; i++) {
        char buf[400];
        bool v6 = strchr(u->hosts[i].host, ':') != NULL;
        snprintf(buf, sizeof buf, v6 ? "%s://[%s]:%d" : "%s://%s:%d", tls ? "https" : "http",
                 u->hosts[i].host, u->hosts[i].port);
        if (!(e->endpoints[i] = strdup(buf))) goto oom;
        e->nendpoints++;
    }
    if (!(e->multi = curl_multi_init())) goto oom;

    int64_t deadline = coord__now_ms() + cfg->connect_timeout_ms;
    if (u->user) {
        /* Any reachable member will do. */
        rc = COORD_EUNAVAILABLE;
        for (size_t i = 0; i < e->nendpoints && rc != 0 && rc != COORD_EAUTH; i++) {
            CURL *h = handle_get(e);
            if (!h) goto oom;
            rc = authenticate(e, h, (int)i, deadline - coord__now_ms(), 0);
            handle_put(e, h);
            if (rc == 0) atomic_store(&e->current, (int)i);
        }
        if (rc) goto fail;
    }
    int64_t left = deadline - coord__now_ms();
    if ((rc = lease_grant(e, left > 0 ? (int)left : 1))) {
        if (rc == COORD_ETIMEDOUT || rc == COORD_EUNAVAILABLE)
            coord_seterr(rc, "etcd: no member of %s reachable within %d ms: %s", u->hosts[0].host,
                         cfg->connect_timeout_ms, coord_last_error());
        goto fail;
    }
    e->session = 1;
    if (pthread_create(&e->ka_thread, NULL, keepalive_main, e)) {
        rc = coord_seterr(COORD_EBACKEND, "cannot start the keepalive thread");
        goto revoke;
    }
    e->ka_started = true;
    if (pthread_create(&e->w_thread, NULL, watch_main, e)) {
        rc = coord_seterr(COORD_EBACKEND, "cannot start the watch thread");
        goto revoke;
    }
    e->w_started = true;
    *out = &e->base;
    return 0;
revoke:
    stop_threads(e);
    lease_revoke(e, e->lease, 1000);
    etcd_free(e);
    return rc;
oom:
    rc = coord_seterr(COORD_ENOMEM, "out of memory");
fail:
    etcd_free(e);
    return rc;
}

static uint64_t etcd_session(coord_conn *c) {
    etcd *e = (etcd *)c;
    pthread_mutex_lock(&e->mu);
    uint64_t s = e->session;
    pthread_mutex_unlock(&e->mu);
    return s;
}

static int etcd_expire(coord_conn *c) {
    etcd *e = (etcd *)c;
    int64_t id;
    lease_now(e, &id);
    int rc = lease_revoke(e, id, e->cfg->timeout_ms);
    if (rc) return rc;
    /* Let the keepalive thread find out now rather than at its next renewal. */
    pthread_mutex_lock(&e->mu);
    e->kick = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

/* ca, cert and key (the TLS files) belong to etcds://; a client certificate needs its key. */
static int etcd_check_uri(const coord_uri *u) {
    static const char *const tls[] = {"ca", "cert", "key"};
    for (size_t i = 0; i < 3; i++)
        if (coord_uri_param(u, tls[i]) && strcmp(u->scheme, "etcds") != 0)
            return coord_seterr(COORD_EINVAL, "parameter \"%s\" needs the etcds:// scheme", tls[i]);
    if (!coord_uri_param(u, "cert") != !coord_uri_param(u, "key"))
        return coord_seterr(COORD_EINVAL, "a client certificate needs both cert= and key=");
    return 0;
}

static int etcd_global_init(void) {
    /* libcurl's global state, set up once for the process and never torn down, as other
     * libraries in the process may share it. */
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return coord_seterr(COORD_EBACKEND, "curl_global_init: %s", curl_easy_strerror(rc));
    return 0;
}

static const char *const etcd_schemes[] = {"etcd", "etcds", NULL};
static const char *const etcd_params[] = {"ca", "cert", "key", NULL};

const coord_backend coord__etcd_backend = {
    .version = COORD_BACKEND_VERSION,
    .name = "etcd",
    .schemes = etcd_schemes,
    .default_port = 2379,
    .params = etcd_params,
    .caps = 0,
    .check_uri = etcd_check_uri,
    .global_init = etcd_global_init,
    .open = etcd_open,
    .close = etcd_close,
    .session = etcd_session,
    .get = etcd_get,
    .get_own = etcd_get_own,
    .put = etcd_put,
    .del = etcd_del,
    .list = etcd_list,
    .watch = etcd_watch,
    .unwatch = etcd_unwatch,
    .expire = etcd_expire,
    .lock_enqueue = etcd_lock_enqueue,
    .lock_predecessor = etcd_lock_predecessor,
};
