/*
 * etcd backend, unary requests over the v3 JSON gateway: callers' threads issue them on pooled
 * curl handles (HTTP keep-alive per handle), fail over between members, and authenticate.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_int.h"

/* ---------- HTTP ---------- */

size_t etcd_on_body(char *p, size_t sz, size_t n, void *ud) {
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

CURL *etcd_handle_get(etcd *e) {
    pthread_mutex_lock(&e->mu);
    CURL *h = e->npool ? e->pool[--e->npool] : NULL;
    pthread_mutex_unlock(&e->mu);
    return h ? h : curl_easy_init();
}

void etcd_handle_put(etcd *e, CURL *h) {
    if (!h) return;
    CURL *stale[POOL_MAX];
    int nstale = 0;
    int64_t now = coord__now_ms();
    pthread_mutex_lock(&e->mu);
    if (e->npool < POOL_MAX) {
        e->pool_used[e->npool] = now;
        e->pool[e->npool++] = h;
        h = NULL;
    }
    /* Beyond pool_keep, handles (and their connections) unused for POOL_STALE_MS go: a burst
     * of requests keeps its connections for the next one, an idle client holds few. The
     * bottom of the stack is the least recently used. */
    while (e->npool > e->pool_keep && now - e->pool_used[0] > POOL_STALE_MS) {
        stale[nstale++] = e->pool[0];
        e->npool--;
        memmove(e->pool, e->pool + 1, (size_t)e->npool * sizeof *e->pool);
        memmove(e->pool_used, e->pool_used + 1, (size_t)e->npool * sizeof *e->pool_used);
    }
    pthread_mutex_unlock(&e->mu);
    if (h) curl_easy_cleanup(h);
    for (int i = 0; i < nstale; i++)
        curl_easy_cleanup(stale[i]);
}

/* Options every request of this connection shares (TLS, timeouts). */
void etcd_setup_handle(etcd *e, CURL *h) {
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

struct curl_slist *etcd_make_headers(etcd *e, uint64_t *gen) {
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
    etcd_setup_handle(e, h);
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

/* A request's body goes with its headers in one send (CURLOPT_POSTFIELDS: a read callback would
 * cost a second TCP segment, and the server a second wake-up, on every request). The prereq
 * callback runs each time curl is about to send the request: the first time marks it as possibly
 * delivered; a second time is curl re-sending on its own (a reused connection found dead), which
 * only a request that may be repeated is allowed, so a write is never sent twice by us. */
#if LIBCURL_VERSION_NUM < 0x075000
#error "libcurl 7.80 or later is needed (CURLOPT_PREREQFUNCTION)"
#endif
typedef struct body {
    bool sent;
    bool rewindable; /* idempotent requests may be re-sent */
} body;

static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port) {
    (void)ip, (void)local_ip, (void)port, (void)local_port;
    body *b = ud;
    if (b->sent && !b->rewindable) return CURL_PREREQFUNC_ABORT;
    b->sent = true;
    return CURL_PREREQFUNC_OK;
}

/* One POST to one endpoint. TRY_NEXT only when the request cannot have reached the server, or
 * may safely be repeated. */
static try_result post_once(etcd *e, CURL *h, int ep, const char *path, const char *json,
                            bool idempotent, struct curl_slist *hd, int64_t budget_ms, resp *r,
                            long *status, int *err) {
    char url[600];
    snprintf(url, sizeof url, "%s%s", e->endpoints[ep], path);
    body b = {false, idempotent};
    curl_easy_reset(h);
    etcd_setup_handle(e, h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, &b);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, etcd_on_body);
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

/*
 * POST `req` to `path`, failing over between endpoints. Requests are only re-sent to another
 * member when they were not delivered (connection refused) or the member said it is unavailable
 * before doing anything (503), unless `idempotent`, so a write is never applied twice by us.
 * On success `*out` is the parsed JSON answer.
 */
int etcd_call(etcd *e, const char *path, cJSON *req, bool idempotent, int timeout_ms, cJSON **out) {
    char *json = cJSON_PrintUnformatted(req);
    if (!json) return coord_seterr(COORD_ENOMEM, "out of memory");
    CURL *h = etcd_handle_get(e);
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
        struct curl_slist *hd = etcd_make_headers(e, &gen);
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
                int arc = etcd_authenticate(e, h, ep, deadline - coord__now_ms(), gen);
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
                if (etcd_authenticate(e, h, ep, deadline - coord__now_ms(), gen) == 0 && idempotent)
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
    etcd_handle_put(e, h);
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
int etcd_authenticate(etcd *e, CURL *h, int ep, int64_t budget_ms, uint64_t seen_gen) {
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
int etcd_send_built(etcd *e, const char *path, cJSON *req, bool built, bool idempotent,
                    int timeout_ms, cJSON **res) {
    int rc = built && req ? etcd_call(e, path, req, idempotent, timeout_ms, res)
                          : coord_seterr(COORD_ENOMEM, "out of memory");
    cJSON_Delete(req);
    return rc;
}
