/*
 * The bare etcd client of coord-bench's raw bounds: the v3 JSON gateway over one keep-alive
 * libcurl handle per thread, doing what a recipe must do and nothing of the library (no session,
 * failover, retry or error handling beyond reporting). Requests and answers are encoded with the
 * backend's own codec (backends/etcd/etcd_codec.h), as the library's are.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd_codec.h"

/* The bound's answers are small (a few keys at most): a larger one fails the call. */
#define ANSWER_MAX 65536
#define STREAM_LINE_MAX (1 << 20)

typedef struct etcd_http {
    CURL *h;
    struct curl_slist *hdrs;
    char base[600];
    char *err; /* where a failure is told */
    size_t errlen;
    size_t len;
    char answer[ANSWER_MAX];
} etcd_http;

static size_t on_answer(char *p, size_t sz, size_t n, void *ud) {
    etcd_http *e = ud;
    size_t add = sz * n;
    if (add >= sizeof e->answer - e->len) return 0;
    memcpy(e->answer + e->len, p, add);
    e->len += add;
    e->answer[e->len] = 0;
    return add;
}

/* POST `json` to `path`; the parsed answer in *out. 0, or -1 with e->err set. */
static int post_str(etcd_http *e, const char *path, const char *json, cJSON **out) {
    char url[700];
    snprintf(url, sizeof url, "%s%s", e->base, path);
    e->len = 0;
    e->answer[0] = 0;
    curl_easy_setopt(e->h, CURLOPT_URL, url);
    curl_easy_setopt(e->h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(e->h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    CURLcode cc = curl_easy_perform(e->h);
    long status = 0;
    curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK) {
        snprintf(e->err, e->errlen, "POST %s: %s", url, curl_easy_strerror(cc));
        return -1;
    }
    if (status != 200) {
        snprintf(e->err, e->errlen, "POST %s: HTTP %ld: %.200s", url, status, e->answer);
        return -1;
    }
    if (etcd_parse_body(e->answer, e->len, out)) {
        snprintf(e->err, e->errlen, "POST %s: answer is not JSON", url);
        return -1;
    }
    return 0;
}

/* POST `req` (consumed; NULL when it could not be built) to `path`; the parsed answer in *out. */
static int post(etcd_http *e, const char *path, cJSON *req, cJSON **out) {
    char *json = req ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    if (!json) {
        snprintf(e->err, e->errlen, "out of memory");
        return -1;
    }
    int rc = post_str(e, path, json, out);
    free(json);
    return rc;
}

/* POST `json` to `path` and drop the answer. */
static int post_only(etcd_http *e, const char *path, const char *json) {
    cJSON *res = NULL;
    int rc = post_str(e, path, json, &res);
    cJSON_Delete(res);
    return rc;
}

/* A keep-alive libcurl handle on the URI's first member, authenticated when the URI names a
 * user. 0, or -1 with `err` set; http_close(e) either way. */
static int http_open(etcd_http *e, const coord_uri *u, char *err, size_t errlen) {
    e->err = err;
    e->errlen = errlen;
    bool tls = strcmp(u->scheme, "etcds") == 0;
    bool v6 = strchr(u->hosts[0].host, ':') != NULL;
    snprintf(e->base, sizeof e->base, v6 ? "%s://[%s]:%d" : "%s://%s:%d", tls ? "https" : "http",
             u->hosts[0].host, u->hosts[0].port);
    if (!(e->h = curl_easy_init())) {
        snprintf(e->err, e->errlen, "curl_easy_init failed");
        return -1;
    }
    curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e->h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, (long)ms_or(u->timeout_ms, 5000));
    curl_easy_setopt(e->h, CURLOPT_CONNECTTIMEOUT_MS, (long)ms_or(u->connect_timeout_ms, 5000));
    curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e->h, CURLOPT_WRITEDATA, e);
    const char *ca = coord_uri_param(u, "ca"), *cert = coord_uri_param(u, "cert");
    if (ca) curl_easy_setopt(e->h, CURLOPT_CAINFO, ca);
    if (cert) {
        curl_easy_setopt(e->h, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(e->h, CURLOPT_SSLKEY, coord_uri_param(u, "key"));
    }
    e->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, e->hdrs);
    if (u->user) {
        cJSON *req = cJSON_CreateObject(), *res = NULL;
        if (req) {
            cJSON_AddStringToObject(req, "name", u->user);
            cJSON_AddStringToObject(req, "password", u->password ? u->password : "");
        }
        if (post(e, "/v3/auth/authenticate", req, &res)) return -1;
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(res, "token");
        char *line = NULL;
        if (cJSON_IsString(tok) && asprintf(&line, "Authorization: %s", tok->valuestring) > 0) {
            e->hdrs = curl_slist_append(e->hdrs, line);
            curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, e->hdrs);
        }
        free(line);
        cJSON_Delete(res);
    }
    return 0;
}

static void http_close(etcd_http *e) {
    if (e->h) curl_easy_cleanup(e->h);
    curl_slist_free_all(e->hdrs);
    e->h = NULL;
    e->hdrs = NULL;
}

/* Delete the key of base64 `key64`, keeping the error told before (a clean-up). */
static void delete_quietly(etcd_http *e, const char *key64) {
    char req[700], scratch[600], *err = e->err;
    size_t errlen = e->errlen;
    snprintf(req, sizeof req, "{\"key\":\"%s\"}", key64);
    e->err = scratch;
    e->errlen = sizeof scratch;
    post_only(e, "/v3/kv/deleterange", req);
    e->err = err;
    e->errlen = errlen;
}

/*
 * A txn of one compare and, on success, a put and (when `range` is not NULL) a range: the
 * request, its parts to fill in *cmp, *put and *range; NULL when out of memory.
 */
static cJSON *txn_new(cJSON **cmp, cJSON **put, cJSON **range) {
    cJSON *req = cJSON_CreateObject();
    cJSON *cmps = cJSON_AddArrayToObject(req, "compare");
    cJSON *succ = cJSON_AddArrayToObject(req, "success");
    cJSON *putop = cJSON_CreateObject(), *rangeop = range ? cJSON_CreateObject() : NULL;
    *cmp = cJSON_CreateObject();
    if (!cmps || !succ || !*cmp || !putop || (range && !rangeop)) {
        cJSON_Delete(*cmp);
        cJSON_Delete(putop);
        cJSON_Delete(rangeop);
        cJSON_Delete(req);
        return NULL;
    }
    cJSON_AddItemToArray(cmps, *cmp);
    cJSON_AddItemToArray(succ, putop);
    *put = cJSON_AddObjectToObject(putop, "request_put");
    if (range) {
        cJSON_AddItemToArray(succ, rangeop);
        *range = cJSON_AddObjectToObject(rangeop, "request_range");
    }
    if (!*put || (range && !*range)) {
        cJSON_Delete(req);
        return NULL;
    }
    return req;
}

/* ---------- the lock bound ---------- */

typedef struct lock_keys {
    char *key, *key64;   /* the contender */
    char *dir, *dir_end; /* the prefix range */
    char lease[32];      /* "" for a lease-less key */
} lock_keys;

/* One uncontended lock cycle: the enqueue txn (timed, into *lat), then deleterange. */
static int etcd_lock_cycle(bench_thread *t, etcd_http *e, const lock_keys *k, int64_t *lat) {
    int64_t t0 = now_ns();
    cJSON *cmp, *put, *range, *res = NULL;
    cJSON *req = txn_new(&cmp, &put, &range);
    bool ok = req && etcd_add_bytes(cmp, "key", k->key, strlen(k->key)) &&
              cJSON_AddStringToObject(cmp, "target", "CREATE") &&
              cJSON_AddStringToObject(cmp, "result", "EQUAL") &&
              cJSON_AddStringToObject(cmp, "create_revision", "0") &&
              etcd_add_bytes(put, "key", k->key, strlen(k->key)) &&
              etcd_add_bytes(put, "value", "", 0) &&
              (!k->lease[0] || cJSON_AddStringToObject(put, "lease", k->lease)) &&
              etcd_add_bytes(range, "key", k->dir, strlen(k->dir)) &&
              etcd_add_bytes(range, "range_end", k->dir_end, strlen(k->dir_end)) &&
              cJSON_AddStringToObject(range, "sort_target", "CREATE") &&
              cJSON_AddStringToObject(range, "sort_order", "ASCEND") &&
              cJSON_AddStringToObject(range, "limit", "1");
    if (!ok) {
        cJSON_Delete(req);
        bench_fail(t, "out of memory");
        return -1;
    }
    if (post(e, "/v3/kv/txn", req, &res)) return -1;
    /* Ours, and first of the prefix: what an uncontended acquire must learn. */
    const cJSON *resps = cJSON_GetObjectItemCaseSensitive(res, "responses");
    const cJSON *rr =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(resps, 1), "response_range");
    const cJSON *k0 = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0), "key");
    bool first = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded")) &&
                 cJSON_IsString(k0) && strcmp(k0->valuestring, k->key64) == 0;
    cJSON_Delete(res);
    *lat = now_ns() - t0;
    if (!first) {
        bench_fail(t, "txn on %s: not created or not first", k->key);
        return -1;
    }
    char dreq[700];
    snprintf(dreq, sizeof dreq, "{\"key\":\"%s\"}", k->key64);
    if (post_str(e, "/v3/kv/deleterange", dreq, &res)) return -1;
    const cJSON *deleted = cJSON_GetObjectItemCaseSensitive(res, "deleted");
    bool gone = cJSON_IsString(deleted) && strcmp(deleted->valuestring, "1") == 0;
    cJSON_Delete(res);
    if (!gone) {
        bench_fail(t, "deleterange %s: nothing deleted", k->key);
        return -1;
    }
    return 0;
}

/* The keys of the lock bound, and its lease when the task asks for one. */
static int lock_setup(raw_task *rt, etcd_http *e, lock_keys *k) {
    const coord_uri *u = rt->u;
    if (asprintf(&k->dir, "%s/bench-raw-%ld/", u->prefix, (long)getpid()) < 0) k->dir = NULL;
    if (k->dir && asprintf(&k->key, "%sraw", k->dir) < 0) k->key = NULL;
    if (!k->dir || !k->key || !(k->dir_end = strdup(k->dir)) ||
        !(k->key64 = etcd_b64(k->key, strlen(k->key)))) {
        bench_fail(&rt->t, "out of memory");
        return -1;
    }
    k->dir_end[strlen(k->dir_end) - 1]++; /* "…/" -> "…0": the end of the prefix range */
    if (!rt->lease) return 0;
    cJSON *res = NULL;
    if (post_str(e, "/v3/lease/grant", "{\"TTL\":\"60\"}", &res)) return -1;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(res, "ID");
    if (cJSON_IsString(id)) snprintf(k->lease, sizeof k->lease, "%s", id->valuestring);
    cJSON_Delete(res);
    if (!k->lease[0]) {
        bench_fail(&rt->t, "lease grant: answer without an ID");
        return -1;
    }
    return 0;
}

static void *etcd_lock_main(void *arg) {
    raw_task *rt = arg;
    bench_thread *t = &rt->t;
    rt->method = rt->lease
                     ? "POST /v3/kv/txn (create_revision(key)==0 ? put key + range prefix sort "
                       "CREATE ASCEND limit 1) + POST /v3/kv/deleterange, one keep-alive libcurl "
                       "handle, key on one lease granted once"
                     : "POST /v3/kv/txn (create_revision(key)==0 ? put key + range prefix sort "
                       "CREATE ASCEND limit 1) + POST /v3/kv/deleterange, one keep-alive libcurl "
                       "handle, lease-less key";
    etcd_http *e = calloc(1, sizeof *e);
    lock_keys k = {0};
    int64_t lat;
    if (!e)
        bench_fail(t, "out of memory");
    else if (!http_open(e, rt->u, t->err, sizeof t->err) && !lock_setup(rt, e, &k))
        etcd_lock_cycle(t, e, &k, &lat); /* warm-up */
    if (bench_ready(t))
        while (bench_going(t))
            if (etcd_lock_cycle(t, e, &k, &lat) || bench_sample(t, lat)) break;
    if (e && e->h && k.lease[0]) {
        char req[64];
        snprintf(req, sizeof req, "{\"ID\":\"%s\"}", k.lease);
        post_only(e, "/v3/lease/revoke", req);
    }
    if (e) http_close(e);
    free(e);
    free(k.key);
    free(k.key64);
    free(k.dir);
    free(k.dir_end);
    return NULL;
}

/* ---------- the counter bound ---------- */

/* One add: a txn putting ++*value if the key's mod_revision is still *rev; the answer's header
 * revision is the key's new mod_revision. */
static int etcd_counter_add(bench_thread *t, etcd_http *e, const char *key, int64_t *rev,
                            long long *value, int64_t *lat) {
    char buf[24], revs[24];
    int64_t t0 = now_ns();
    int len = snprintf(buf, sizeof buf, "%lld", ++*value);
    snprintf(revs, sizeof revs, "%lld", (long long)*rev);
    cJSON *cmp, *put, *res = NULL;
    cJSON *req = txn_new(&cmp, &put, NULL);
    bool ok = req && etcd_add_bytes(cmp, "key", key, strlen(key)) &&
              cJSON_AddStringToObject(cmp, "target", "MOD") &&
              cJSON_AddStringToObject(cmp, "result", "EQUAL") &&
              cJSON_AddStringToObject(cmp, "mod_revision", revs) &&
              etcd_add_bytes(put, "key", key, strlen(key)) &&
              etcd_add_bytes(put, "value", buf, (size_t)len);
    if (!ok) {
        cJSON_Delete(req);
        bench_fail(t, "out of memory");
        return -1;
    }
    if (post(e, "/v3/kv/txn", req, &res)) return -1;
    bool succeeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded"));
    bool has_rev = etcd_header_rev(res, rev) == 0 && *rev > 0;
    cJSON_Delete(res);
    *lat = now_ns() - t0;
    if (!succeeded || !has_rev) {
        bench_fail(t, "txn on %.300s: %s", key,
                   succeeded ? "no header revision in the answer"
                             : "mod_revision differs (someone else wrote the key)");
        return -1;
    }
    return 0;
}

/* Put the counter's key and read its mod_revision (outside the timed loop). */
static int counter_setup(bench_thread *t, etcd_http *e, const char *key, int64_t *rev) {
    cJSON *req = cJSON_CreateObject(), *res = NULL;
    if (req &&
        (!etcd_add_bytes(req, "key", key, strlen(key)) || !etcd_add_bytes(req, "value", "0", 1))) {
        cJSON_Delete(req);
        req = NULL;
    }
    if (post(e, "/v3/kv/put", req, &res)) return -1;
    cJSON_Delete(res);
    res = NULL;
    req = cJSON_CreateObject();
    if (req && !etcd_add_bytes(req, "key", key, strlen(key))) {
        cJSON_Delete(req);
        req = NULL;
    }
    if (post(e, "/v3/kv/range", req, &res)) return -1;
    const cJSON *kv0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "kvs"), 0);
    bool ok = etcd_get_i64(kv0, "mod_revision", rev) == 0 && *rev > 0;
    cJSON_Delete(res);
    if (!ok) {
        bench_fail(t, "range %.300s: no mod_revision in the answer", key);
        return -1;
    }
    return 0;
}

static void *etcd_counter_main(void *arg) {
    raw_task *rt = arg;
    bench_thread *t = &rt->t;
    rt->method = "POST /v3/kv/txn (mod_revision(key)==last seen ? put key), one keep-alive "
                 "libcurl handle, lease-less key; header revision cached";
    etcd_http *e = calloc(1, sizeof *e);
    char *key = NULL, *key64 = NULL;
    int64_t rev = 0, lat;
    long long value = 0;
    if (!e ||
        asprintf(&key, "%s/bench-raw-%ld-%d/counter", rt->u->prefix, (long)getpid(), rt->key) < 0) {
        key = NULL;
        bench_fail(t, "out of memory");
    } else if (!http_open(e, rt->u, t->err, sizeof t->err) && !counter_setup(t, e, key, &rev)) {
        key64 = etcd_b64(key, strlen(key));              /* made: to remove at the end */
        etcd_counter_add(t, e, key, &rev, &value, &lat); /* warm-up */
    }
    if (bench_ready(t))
        while (bench_going(t))
            if (etcd_counter_add(t, e, key, &rev, &value, &lat) || bench_sample(t, lat)) break;
    if (e && e->h && key64) delete_quietly(e, key64);
    if (e) http_close(e);
    free(e);
    free(key);
    free(key64);
    return NULL;
}

/* ---------- the contended lock bound ---------- */

/*
 * Bare clients, a libcurl handle each plus one for their watch streams, running etcd's own
 * Mutex algorithm on one prefix with the steps the recipe must take: a txn that enqueues and
 * returns the two newest contenders; a watch stream on the predecessor only, which (like the
 * library's) starts "now", so a read then checks that the predecessor had not gone before the
 * stream started; once it goes, a read for any older contender left; a deleterange to release.
 */
typedef struct etcd_stream {
    etcd_http *e; /* for the check */
    char pred64[700];
    int64_t pred_created;
    etcd_lines lines;
    bool gone;
    bool from_rev; /* the stream starts at a revision the predecessor was seen at: no check */
} etcd_stream;

/* One line of the watch stream: the creation (then the check), or the predecessor's deletion.
 * Non-zero when the stream is to end. */
static int stream_line(void *ctx, const char *line, size_t len) {
    etcd_stream *s = ctx;
    etcd_watch_msg m;
    if (etcd_parse_watch_line(line, len, &m)) return 1;
    int stop = m.is_error;
    if (!stop && m.created && !s->from_rev) {
        char req[800];
        snprintf(req, sizeof req, "{\"key\":\"%s\",\"keys_only\":true}", s->pred64);
        cJSON *r = NULL;
        if (post_str(s->e, "/v3/kv/range", req, &r)) {
            stop = 1;
        } else {
            const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "kvs"), 0);
            int64_t created = 0;
            s->gone =
                !kv || etcd_get_i64(kv, "create_revision", &created) || created != s->pred_created;
            stop = s->gone;
        }
        cJSON_Delete(r);
    }
    for (size_t i = 0; i < m.nevents; i++)
        if (m.events[i].is_delete) s->gone = true, stop = 1;
    etcd_watch_msg_clear(&m);
    return stop;
}

static size_t on_stream(char *p, size_t sz, size_t n, void *ud) {
    etcd_stream *s = ud;
    /* Ending the stream (0) once the wait is over, as the library's unwatch does. */
    return etcd_lines_feed(&s->lines, p, sz * n, stream_line, s) ? 0 : sz * n;
}

typedef struct etcd_contender {
    bench_thread t;
    const coord_uri *u;
    const char *dir64, *end64;
    int64_t ms;
    const char *lease; /* the election's keys: on this lease, with value64 */
    char value64[64];
    char put_lease[48]; /* the read-write lock's keys: ",\"lease\":\"<id>\"" in their put */
    bool reader;        /* a reader: its own key is not in the range it waits on (write/) */
    etcd_http e, w;     /* requests; the watch stream */
    etcd_stream st;
    char key64[700];
    char req[2048];
} etcd_contender;

/* Watch the predecessor c->st.pred64 from `start_rev` (0: from now, then a read checks it had
 * not gone before) until it is deleted. 0 once it is gone, or -1 (failed). */
static int watch_gone(etcd_contender *c, int64_t start_rev) {
    c->st.gone = false;
    c->st.from_rev = start_rev > 0;
    etcd_lines_reset(&c->st.lines);
    if (start_rev > 0)
        snprintf(c->req, sizeof c->req,
                 "{\"create_request\":{\"key\":\"%s\",\"start_revision\":\"%lld\"}}", c->st.pred64,
                 (long long)start_rev);
    else
        snprintf(c->req, sizeof c->req, "{\"create_request\":{\"key\":\"%s\"}}", c->st.pred64);
    char url[700];
    snprintf(url, sizeof url, "%s/v3/watch", c->w.base);
    curl_easy_setopt(c->w.h, CURLOPT_URL, url);
    curl_easy_setopt(c->w.h, CURLOPT_POSTFIELDS, c->req);
    curl_easy_setopt(c->w.h, CURLOPT_POSTFIELDSIZE, (long)strlen(c->req));
    CURLcode cc = curl_easy_perform(c->w.h);
    if (c->st.gone) return 0;
    if (!c->t.err[0]) bench_fail(&c->t, "watch %.300s: %s", c->st.pred64, curl_easy_strerror(cc));
    return -1;
}

/* The contender `pred` (of the queue range) gone, and none older left: the lock is ours. */
static int wait_turn(etcd_contender *c, const cJSON *pred, int64_t mine, cJSON **res) {
    while (pred) {
        const cJSON *pk = cJSON_GetObjectItemCaseSensitive(pred, "key");
        if (!cJSON_IsString(pk) || etcd_get_i64(pred, "create_revision", &c->st.pred_created) ||
            !c->st.pred_created) {
            bench_fail(&c->t, "queue range: a contender without key");
            return -1;
        }
        snprintf(c->st.pred64, sizeof c->st.pred64, "%s", pk->valuestring);
        cJSON_Delete(*res);
        *res = NULL;
        if (watch_gone(c, 0)) return -1;
        snprintf(c->req, sizeof c->req,
                 "{\"key\":\"%s\",\"range_end\":\"%s\",\"sort_target\":\"CREATE\","
                 "\"sort_order\":\"DESCEND\",\"limit\":\"1\",\"max_create_revision\":\"%lld\"}",
                 c->dir64, c->end64, (long long)(mine - 1));
        if (post_str(&c->e, "/v3/kv/range", c->req, res)) return -1;
        pred = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(*res, "kvs"), 0);
    }
    return 0;
}

/* One cycle: enqueue, wait for the turn (timed, into *lat), release. *queued while the key
 * stands. */
static int contend_cycle(etcd_contender *c, bool *queued, int64_t *lat) {
    int64_t t0 = now_ns();
    cJSON *res = NULL;
    snprintf(c->req, sizeof c->req,
             "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
             "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"%s\"%s}},"
             "{\"request_range\":{\"key\":\"%s\",\"range_end\":\"%s\",\"sort_target\":"
             "\"CREATE\",\"sort_order\":\"DESCEND\",\"limit\":\"2\"}}]}",
             c->key64, c->key64, c->put_lease, c->dir64, c->end64);
    if (post_str(&c->e, "/v3/kv/txn", c->req, &res)) return -1;
    *queued = true;
    int64_t mine = 0;
    const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "responses"), 1),
        "response_range");
    /* Ours is the newest of the range, the next newest our predecessor; a reader's range holds
     * the writers alone, whose newest is its predecessor. */
    const cJSON *pred =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), c->reader ? 0 : 1);
    int rc = 0;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded")) ||
        etcd_header_rev(res, &mine) || mine <= 0) {
        bench_fail(&c->t, "enqueue txn on %s: not created", c->key64);
        rc = -1;
    }
    if (!rc) rc = wait_turn(c, pred, mine, &res);
    cJSON_Delete(res);
    if (rc) return -1;
    *lat = now_ns() - t0;
    snprintf(c->req, sizeof c->req, "{\"key\":\"%s\"}", c->key64);
    if (post_only(&c->e, "/v3/kv/deleterange", c->req)) return -1;
    *queued = false;
    return 0;
}

/*
 * One hand-off of etcd's concurrency.Election with the recipe's steps: Campaign's txn
 * (create_revision(key)==0 ? put key with the value on the lease); while a key of the election
 * was created before ours, a range for the newest such (max_create_revision = ours - 1) and a
 * watch on it until it is deleted; leading (timed, into *lat); Resign's deleterange. *queued
 * while the key stands. The watch starts "now" and a read checks the predecessor had not gone
 * before the stream started, as in the lock's bound: etcd's own Campaign watches from the
 * range's revision instead, which the server serves as a watch on the past, synced by a loop
 * that runs every 100 ms; on a busy election that costs a third of the hand-off rate (successive
 * runs here: 81 hand-offs/s from the range's revision, 106 from the next one, 129
 * this way), so this is the tighter bound.
 */
static int elect_cycle(etcd_contender *c, bool *queued, int64_t *lat) {
    int64_t t0 = now_ns(), mine = 0;
    cJSON *res = NULL;
    snprintf(c->req, sizeof c->req,
             "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
             "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"%s\","
             "\"value\":\"%s\",\"lease\":\"%s\"}}]}",
             c->key64, c->key64, c->value64, c->lease);
    if (post_str(&c->e, "/v3/kv/txn", c->req, &res)) return -1;
    *queued = true;
    bool made = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded")) &&
                !etcd_header_rev(res, &mine) && mine > 0;
    cJSON_Delete(res);
    if (!made) {
        bench_fail(&c->t, "campaign txn on %s: not created", c->key64);
        return -1;
    }
    for (;;) {
        snprintf(c->req, sizeof c->req,
                 "{\"key\":\"%s\",\"range_end\":\"%s\",\"sort_target\":\"CREATE\","
                 "\"sort_order\":\"DESCEND\",\"limit\":\"1\",\"max_create_revision\":\"%lld\","
                 "\"keys_only\":true}",
                 c->dir64, c->end64, (long long)(mine - 1));
        res = NULL;
        if (post_str(&c->e, "/v3/kv/range", c->req, &res)) return -1;
        const cJSON *pred = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "kvs"), 0);
        const cJSON *pk = cJSON_GetObjectItemCaseSensitive(pred, "key");
        if (pred &&
            (!cJSON_IsString(pk) || etcd_get_i64(pred, "create_revision", &c->st.pred_created))) {
            cJSON_Delete(res);
            bench_fail(&c->t, "predecessor range: a key without key or revision");
            return -1;
        }
        if (pred) snprintf(c->st.pred64, sizeof c->st.pred64, "%s", pk->valuestring);
        cJSON_Delete(res);
        if (!pred) break; /* none before ours: leading */
        if (watch_gone(c, 0)) return -1;
    }
    *lat = now_ns() - t0;
    snprintf(c->req, sizeof c->req, "{\"key\":\"%s\"}", c->key64);
    if (post_only(&c->e, "/v3/kv/deleterange", c->req)) return -1;
    *queued = false;
    return 0;
}

static void *etcd_contender_main(void *arg) {
    etcd_contender *c = arg;
    bench_thread *t = &c->t;
    bool queued = false;
    int64_t lat;
    c->st = (etcd_stream){.e = &c->e, .lines = {.max = STREAM_LINE_MAX}};
    if (!http_open(&c->e, c->u, t->err, sizeof t->err) &&
        !http_open(&c->w, c->u, t->err, sizeof t->err)) {
        curl_easy_setopt(c->w.h, CURLOPT_WRITEFUNCTION, on_stream);
        curl_easy_setopt(c->w.h, CURLOPT_WRITEDATA, &c->st);
        curl_easy_setopt(c->w.h, CURLOPT_TIMEOUT_MS, (long)(c->ms + 30000)); /* a stuck run ends */
    }
    int (*cycle)(etcd_contender *, bool *, int64_t *) =
        c->lease && !c->put_lease[0] ? elect_cycle : contend_cycle;
    if (bench_ready(t))
        while (bench_going(t))
            if (cycle(c, &queued, &lat) || bench_sample(t, lat)) break;
    if (queued && c->e.h) delete_quietly(&c->e, c->key64); /* an error left our key */
    http_close(&c->e);
    http_close(&c->w);
    etcd_lines_free(&c->st.lines);
    return NULL;
}

/* A lease for the election's keys (one for all the threads, as they share a coord client's
 * session): its ID in `id`, or "" with out->err set. */
static void lease_grant(etcd_http *e, char *id, size_t cap) {
    cJSON *res = NULL;
    id[0] = 0;
    if (post_str(e, "/v3/lease/grant", "{\"TTL\":\"60\"}", &res)) return;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, "ID");
    if (cJSON_IsString(v)) snprintf(id, cap, "%s", v->valuestring);
    cJSON_Delete(res);
    if (!id[0]) snprintf(e->err, e->errlen, "lease grant: answer without an ID");
}

/* A prefix range: base64 of "<dir>/" and of its end. */
typedef struct etcd_range {
    char *dir64, *end64;
} etcd_range;
static int range_of(const coord_uri *u, const char *suffix, etcd_range *r);
static void range_free(etcd_range *r);

typedef enum etcd_recipe { ETCD_LOCK, ETCD_ELECTION, ETCD_RWLOCK } etcd_recipe;

/* `threads` contenders on one prefix ("<prefix>/bench-raw-<pid><suffix>/"): etcd's Mutex;
 * concurrency.Election's keys "<lease hex>-c<i>" on one lease; or the read-write lock's
 * "write/<lease hex>-c0" (thread 0) and "read/<lease hex>-c<i>" on one lease, a reader waiting
 * on the writers' range "write/" alone. */
static void etcd_queue(const coord_uri *u, int threads, int64_t ms, raw_result *out,
                       const char *suffix, etcd_recipe recipe) {
    char *dir = NULL, *dir_end = NULL, *dir64 = NULL, *end64 = NULL, lease[32] = "";
    etcd_range writers = {0};
    etcd_http le = {0};
    if (recipe != ETCD_LOCK && !http_open(&le, u, out->err, sizeof out->err))
        lease_grant(&le, lease, sizeof lease);
    if (asprintf(&dir, "%s/bench-raw-%ld%s/", u->prefix, (long)getpid(), suffix) < 0) dir = NULL;
    etcd_contender *cs = calloc((size_t)threads, sizeof *cs);
    if (dir && (dir_end = strdup(dir))) {
        dir_end[strlen(dir_end) - 1]++;
        dir64 = etcd_b64(dir, strlen(dir));
        end64 = etcd_b64(dir_end, strlen(dir_end));
    }
    char wsuffix[64];
    snprintf(wsuffix, sizeof wsuffix, "%s/write", suffix);
    bool ok = cs && dir64 && end64 && (recipe != ETCD_RWLOCK || !range_of(u, wsuffix, &writers));
    for (int i = 0; ok && i < threads; i++) {
        char key[700], value[32];
        if (recipe == ETCD_ELECTION)
            snprintf(key, sizeof key, "%s%llx-c%d", dir, strtoull(lease, NULL, 10), i);
        else if (recipe == ETCD_RWLOCK)
            snprintf(key, sizeof key, "%s%s/%llx-c%d", dir, i ? "read" : "write",
                     strtoull(lease, NULL, 10), i);
        else
            snprintf(key, sizeof key, "%sc%d", dir, i);
        int vlen = snprintf(value, sizeof value, "candidate-%d", i);
        char *k64 = etcd_b64(key, strlen(key)), *v64 = etcd_b64(value, (size_t)vlen);
        bool reader = recipe == ETCD_RWLOCK && i > 0;
        cs[i] = (etcd_contender){.u = u,
                                 .dir64 = reader ? writers.dir64 : dir64,
                                 .end64 = reader ? writers.end64 : end64,
                                 .ms = ms,
                                 .lease = recipe != ETCD_LOCK ? lease : NULL,
                                 .reader = reader};
        if (recipe == ETCD_RWLOCK)
            snprintf(cs[i].put_lease, sizeof cs[i].put_lease, ",\"lease\":\"%s\"", lease);
        if (k64) snprintf(cs[i].key64, sizeof cs[i].key64, "%s", k64);
        if (v64) snprintf(cs[i].value64, sizeof cs[i].value64, "%s", v64);
        ok = k64 && v64;
        free(k64);
        free(v64);
    }
    if (!ok && !out->err[0])
        snprintf(out->err, sizeof out->err, "out of memory");
    else if (!out->err[0]) /* else the lease could not be granted */
        bench_run_threads(cs, sizeof *cs, threads, etcd_contender_main, ms, NULL, NULL, &out->r,
                          out->err, sizeof out->err);
    if (lease[0]) {
        char req[64], scratch[600];
        snprintf(req, sizeof req, "{\"ID\":\"%s\"}", lease);
        le.err = scratch; /* a failed revoke leaves a lease that expires by itself */
        le.errlen = sizeof scratch;
        post_only(&le, "/v3/lease/revoke", req);
    }
    http_close(&le);
    range_free(&writers);
    free(cs);
    free(dir);
    free(dir_end);
    free(dir64);
    free(end64);
}

static void etcd_contended(const coord_uri *u, int threads, int64_t ms, raw_result *out) {
    out->method = "etcd's Mutex with bare libcurl: POST /v3/kv/txn (create_revision(key)==0 ? put "
                  "key + 2 newest of the prefix by create revision); while a predecessor: POST "
                  "/v3/watch on it (a stream per wait) + a range checking it is still there once "
                  "the stream is up, then on its deletion a range for the newest older contender; "
                  "POST /v3/kv/deleterange to release";
    etcd_queue(u, threads, ms, out, "-contended", ETCD_LOCK);
}

static void etcd_election(const coord_uri *u, int threads, int64_t ms, raw_result *out) {
    out->method = "etcd's concurrency.Election with bare libcurl, keys on one lease: POST "
                  "/v3/kv/txn (create_revision(key)==0 ? put key, value, lease); while an older "
                  "key: POST /v3/kv/range for the newest one created before ours, POST /v3/watch "
                  "on it (a stream per wait) + a range checking it is still there once the "
                  "stream is up, until its deletion; "
                  "POST /v3/kv/deleterange to resign";
    etcd_queue(u, threads, ms, out, "-election", ETCD_ELECTION);
}

static void etcd_mixed(const coord_uri *u, int threads, int64_t ms, raw_result *out) {
    out->method = "etcd's rwlock recipe layout with bare libcurl, thread 0 writing, keys on one "
                  "lease: POST /v3/kv/txn (create_revision(key)==0 ? put key (write/ or read/) + "
                  "2 newest of the lock (a reader: of write/) by create revision); while a "
                  "predecessor: POST /v3/watch on it (a stream per wait) + a range checking it "
                  "is still there once the stream is up, then on its deletion a range for the "
                  "newest older one; POST /v3/kv/deleterange to unlock";
    etcd_queue(u, threads, ms, out, "-mixed", ETCD_RWLOCK);
}

/* ---------- the semaphore and readers' bounds ---------- */

/* The range of "<prefix>/bench-raw-<pid><suffix>/"; 0, or -1 when out of memory. */
static int range_of(const coord_uri *u, const char *suffix, etcd_range *r) {
    char *dir = NULL;
    r->dir64 = r->end64 = NULL;
    if (asprintf(&dir, "%s/bench-raw-%ld%s/", u->prefix, (long)getpid(), suffix) < 0) return -1;
    r->dir64 = etcd_b64(dir, strlen(dir));
    dir[strlen(dir) - 1]++;
    r->end64 = etcd_b64(dir, strlen(dir));
    free(dir);
    return r->dir64 && r->end64 ? 0 : -1;
}

static void range_free(etcd_range *r) {
    free(r->dir64);
    free(r->end64);
}

/* base64 of the key "<prefix>/bench-raw-<pid><suffix>/<lease hex>-raw<n>" into `out`. */
static int key_of(const coord_uri *u, const char *suffix, const char *lease, int n, char *out,
                  size_t cap) {
    char key[700];
    snprintf(key, sizeof key, "%s/bench-raw-%ld%s/%llx-raw%d", u->prefix, (long)getpid(), suffix,
             strtoull(lease, NULL, 10), n);
    char *k64 = etcd_b64(key, strlen(key));
    if (k64) snprintf(out, cap, "%s", k64);
    free(k64);
    return k64 ? 0 : -1;
}

/*
 * coord's enqueue, one txn: create_revision(key)==0 ? put key on the lease + the two newest of
 * `scope` by create revision. *n is how many the range gave, *newest_is_key whether the newest
 * is the key. 0, or -1 (failed).
 */
static int enqueue_txn(bench_thread *t, etcd_http *e, char *req, size_t cap, const char *key64,
                       const char *lease, const etcd_range *scope, int *n, bool *newest_is_key) {
    cJSON *res = NULL;
    snprintf(req, cap,
             "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
             "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"%s\","
             "\"lease\":\"%s\"}},{\"request_range\":{\"key\":\"%s\",\"range_end\":\"%s\","
             "\"sort_target\":\"CREATE\",\"sort_order\":\"DESCEND\",\"limit\":\"2\"}}]}",
             key64, key64, lease, scope->dir64, scope->end64);
    if (post_str(e, "/v3/kv/txn", req, &res)) return -1;
    const cJSON *rr = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "responses"), 1),
        "response_range");
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(rr, "kvs");
    const cJSON *k0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(kvs, 0), "key");
    bool made = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded"));
    *n = cJSON_GetArraySize(kvs);
    *newest_is_key = cJSON_IsString(k0) && !strcmp(k0->valuestring, key64);
    cJSON_Delete(res);
    if (!made) bench_fail(t, "enqueue txn on %.300s: not created", key64);
    return made ? 0 : -1;
}

static int delete_key(bench_thread *t, etcd_http *e, char *req, size_t cap, const char *key64) {
    cJSON *res = NULL;
    snprintf(req, cap, "{\"key\":\"%s\"}", key64);
    if (post_str(e, "/v3/kv/deleterange", req, &res)) return -1;
    const cJSON *deleted = cJSON_GetObjectItemCaseSensitive(res, "deleted");
    bool gone = cJSON_IsString(deleted) && strcmp(deleted->valuestring, "1") == 0;
    cJSON_Delete(res);
    if (!gone) bench_fail(t, "deleterange %.300s: nothing deleted", key64);
    return gone ? 0 : -1;
}

typedef struct etcd_sem {
    etcd_range locks, leases;
    char lock64[700], lease64[700];
    char lease[32]; /* the keys' lease */
    char req[2048];
} etcd_sem;

/* One uncontended semaphore cycle, coord's requests: the lock's enqueue txn (ours alone), the
 * lease's (ours the only one), the lock's deleterange (timed, into *lat); the lease's
 * deleterange. 0, or -1 (failed). */
static int etcd_semaphore_cycle(bench_thread *t, etcd_http *e, etcd_sem *s, int64_t *lat) {
    int n;
    bool ours;
    int64_t t0 = now_ns();
    if (enqueue_txn(t, e, s->req, sizeof s->req, s->lock64, s->lease, &s->locks, &n, &ours))
        return -1;
    if (n != 1 || !ours) {
        bench_fail(t, "lock txn: not first");
        return -1;
    }
    if (enqueue_txn(t, e, s->req, sizeof s->req, s->lease64, s->lease, &s->leases, &n, &ours))
        return -1;
    if (n != 1 || !ours) {
        bench_fail(t, "lease txn: not the only lease");
        return -1;
    }
    if (delete_key(t, e, s->req, sizeof s->req, s->lock64)) return -1;
    *lat = now_ns() - t0;
    return delete_key(t, e, s->req, sizeof s->req, s->lease64);
}

/* A lease for a bound's keys (granted once, outside the timed loop): its ID in `id`, or "" with
 * the thread failed. */
static void task_lease(bench_thread *t, etcd_http *e, char *id, size_t cap) {
    cJSON *res = NULL;
    id[0] = 0;
    if (post_str(e, "/v3/lease/grant", "{\"TTL\":\"60\"}", &res)) return;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, "ID");
    if (cJSON_IsString(v)) snprintf(id, cap, "%s", v->valuestring);
    cJSON_Delete(res);
    if (!id[0]) bench_fail(t, "lease grant: answer without an ID");
}

static void task_revoke(etcd_http *e, const char *id) {
    char req[64], scratch[600], *err = e->err;
    size_t errlen = e->errlen;
    snprintf(req, sizeof req, "{\"ID\":\"%s\"}", id);
    e->err = scratch; /* a failed revoke leaves a lease that expires by itself */
    e->errlen = sizeof scratch;
    post_only(e, "/v3/lease/revoke", req);
    e->err = err;
    e->errlen = errlen;
}

static void *etcd_semaphore_main(void *arg) {
    raw_task *rt = arg;
    bench_thread *t = &rt->t;
    rt->method = "the InterProcessSemaphoreV2 steps on etcd, as coord makes them, keys on one "
                 "lease granted once: POST /v3/kv/txn (create_revision(locks/key)==0 ? put + 2 "
                 "newest of locks/) (first), POST /v3/kv/txn (the same on leases/) (ours the "
                 "only lease), POST /v3/kv/deleterange of the lock key; deleterange of the lease "
                 "key to release; one keep-alive libcurl handle";
    etcd_http *e = calloc(1, sizeof *e);
    etcd_sem *s = calloc(1, sizeof *s);
    int64_t lat;
    if (!e || !s)
        bench_fail(t, "out of memory");
    else if (!http_open(e, rt->u, t->err, sizeof t->err)) {
        task_lease(t, e, s->lease, sizeof s->lease);
        if (s->lease[0] &&
            (range_of(rt->u, "-semaphore/locks", &s->locks) ||
             range_of(rt->u, "-semaphore/leases", &s->leases) ||
             key_of(rt->u, "-semaphore/locks", s->lease, 0, s->lock64, sizeof s->lock64) ||
             key_of(rt->u, "-semaphore/leases", s->lease, 0, s->lease64, sizeof s->lease64)))
            bench_fail(t, "out of memory");
        if (!t->err[0]) etcd_semaphore_cycle(t, e, s, &lat); /* warm-up */
    }
    if (bench_ready(t))
        while (bench_going(t))
            if (etcd_semaphore_cycle(t, e, s, &lat) || bench_sample(t, lat)) break;
    if (e && e->h && s && s->lease[0]) task_revoke(e, s->lease); /* its keys go with it */
    if (e) http_close(e);
    if (s) {
        range_free(&s->locks);
        range_free(&s->leases);
    }
    free(s);
    free(e);
    return NULL;
}

/* One read lock cycle, coord's requests: the reader's enqueue txn, whose range (write/) must be
 * empty (timed, into *lat); its deleterange. 0, or -1 (failed). */
static int etcd_reader_cycle(bench_thread *t, etcd_http *e, etcd_sem *s, int64_t *lat) {
    int n;
    bool ours;
    int64_t t0 = now_ns();
    if (enqueue_txn(t, e, s->req, sizeof s->req, s->lock64, s->lease, &s->locks, &n, &ours))
        return -1;
    *lat = now_ns() - t0;
    if (n) {
        bench_fail(t, "reader txn: a writer is queued");
        return -1;
    }
    return delete_key(t, e, s->req, sizeof s->req, s->lock64);
}

static void *etcd_reader_main(void *arg) {
    raw_task *rt = arg;
    bench_thread *t = &rt->t;
    rt->method = "etcd's rwlock recipe layout, as coord makes it, a bare client each, keys on a "
                 "lease granted once: POST /v3/kv/txn (create_revision(read/key)==0 ? put + 2 "
                 "newest of write/) (none: no writer before it), POST /v3/kv/deleterange to "
                 "unlock; one keep-alive libcurl handle";
    etcd_http *e = calloc(1, sizeof *e);
    etcd_sem *s = calloc(1, sizeof *s);
    int64_t lat;
    if (!e || !s)
        bench_fail(t, "out of memory");
    else if (!http_open(e, rt->u, t->err, sizeof t->err)) {
        task_lease(t, e, s->lease, sizeof s->lease);
        /* locks = the writers' range, lock64 = the reader's key */
        if (s->lease[0] &&
            (range_of(rt->u, "-rwlock/write", &s->locks) ||
             key_of(rt->u, "-rwlock/read", s->lease, rt->key, s->lock64, sizeof s->lock64)))
            bench_fail(t, "out of memory");
        if (!t->err[0]) etcd_reader_cycle(t, e, s, &lat); /* warm-up */
    }
    if (bench_ready(t))
        while (bench_going(t))
            if (etcd_reader_cycle(t, e, s, &lat) || bench_sample(t, lat)) break;
    if (e && e->h && s && s->lease[0]) task_revoke(e, s->lease);
    if (e) http_close(e);
    if (s) range_free(&s->locks);
    free(s);
    free(e);
    return NULL;
}

/* ---------- the key-value bounds ---------- */

static const char etcd_kv_value[KV_VALUE_LEN] =
    "coord-bench kv value, 64 bytes, the same in every put.";

/* The keys "<prefix>/bench-raw-<pid>-kv<i>/a", "b", "c" and their requests, built once with the
 * backend's codec as the backend builds coord's (etcd_txn_request). */
typedef struct etcd_kv {
    char *a, *b, *c, *a64;
    char *put_req, *get_req, *txn_req;
} etcd_kv;

static void etcd_kv_free(etcd_kv *k) {
    free(k->a);
    free(k->b);
    free(k->c);
    free(k->a64);
    free(k->put_req);
    free(k->get_req);
    free(k->txn_req);
}

/* The request of the ops, as text; NULL when out of memory. */
static char *txn_text(const coord_op *ops, size_t n) {
    cJSON *req = etcd_txn_request(ops, n);
    char *s = req ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    return s;
}

static int etcd_kv_setup(bench_thread *t, etcd_http *e, const coord_uri *u, etcd_kv *k) {
    long pid = (long)getpid();
    if (asprintf(&k->a, "%s/bench-raw-%ld-kv%d/a", u->prefix, pid, t->idx) < 0) k->a = NULL;
    if (asprintf(&k->b, "%s/bench-raw-%ld-kv%d/b", u->prefix, pid, t->idx) < 0) k->b = NULL;
    if (asprintf(&k->c, "%s/bench-raw-%ld-kv%d/c", u->prefix, pid, t->idx) < 0) k->c = NULL;
    if (!k->a || !k->b || !k->c || !(k->a64 = etcd_b64(k->a, strlen(k->a)))) {
        bench_fail(t, "out of memory");
        return -1;
    }
    /* The keys exist, and a's revision is what the txn checks. */
    int64_t rev = 0;
    const char *keys[] = {k->a, k->b, k->c};
    for (int i = 0; i < 3; i++) {
        coord_op op = {.type = COORD_OP_PUT,
                       .path = keys[i],
                       .value = etcd_kv_value,
                       .len = KV_VALUE_LEN,
                       .version = COORD_VERSION_ANY};
        cJSON *res = NULL;
        if (post(e, "/v3/kv/txn", etcd_txn_request(&op, 1), &res)) return -1;
        if (i == 0 && (etcd_header_rev(res, &rev) || rev <= 0)) {
            cJSON_Delete(res);
            bench_fail(t, "txn on %.300s: no header revision", keys[i]);
            return -1;
        }
        cJSON_Delete(res);
    }
    coord_op put = {.type = COORD_OP_PUT,
                    .path = k->a,
                    .value = etcd_kv_value,
                    .len = KV_VALUE_LEN,
                    .version = COORD_VERSION_ANY};
    coord_op txn[3] = {{.type = COORD_OP_CHECK, .path = k->a, .version = rev},
                       {.type = COORD_OP_PUT,
                        .path = k->b,
                        .value = etcd_kv_value,
                        .len = KV_VALUE_LEN,
                        .version = COORD_VERSION_ANY},
                       {.type = COORD_OP_PUT,
                        .path = k->c,
                        .value = etcd_kv_value,
                        .len = KV_VALUE_LEN,
                        .version = COORD_VERSION_ANY}};
    k->put_req = txn_text(&put, 1);
    k->txn_req = txn_text(txn, 3);
    if (asprintf(&k->get_req, "{\"key\":\"%s\"}", k->a64) < 0) k->get_req = NULL;
    if (!k->put_req || !k->txn_req || !k->get_req) {
        bench_fail(t, "out of memory");
        return -1;
    }
    return 0;
}

/* One kv operation, timed into *lat. The put's request, once made, also leaves a's revision
 * where the txn checks it: the put bound runs with no txn in between, so it need not follow. */
static int etcd_kv_cycle(bench_thread *t, etcd_http *e, etcd_kv *k, raw_kind kind, int64_t *lat) {
    int64_t t0 = now_ns();
    cJSON *res = NULL;
    const char *path = kind == RAW_KV_GET ? "/v3/kv/range" : "/v3/kv/txn";
    const char *req = kind == RAW_KV_PUT   ? k->put_req
                      : kind == RAW_KV_GET ? k->get_req
                                           : k->txn_req;
    if (post_str(e, path, req, &res)) return -1;
    bool ok = kind == RAW_KV_GET
                  ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "kvs")) == 1
                  : cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded"));
    cJSON_Delete(res);
    *lat = now_ns() - t0;
    if (!ok)
        bench_fail(t, "%s on %.300s: %s", path, k->a, kind == RAW_KV_GET ? "no key" : "failed");
    return ok ? 0 : -1;
}

static void *etcd_kv_main(raw_task *rt, raw_kind kind) {
    bench_thread *t = &rt->t;
    rt->method = kind == RAW_KV_PUT
                     ? "POST /v3/kv/txn (no compare; success: put key; failure: range key "
                       "keys_only), one keep-alive libcurl handle"
                 : kind == RAW_KV_GET ? "POST /v3/kv/range key, one keep-alive libcurl handle"
                                      : "POST /v3/kv/txn (mod_revision(a) == v ? put b, put c : "
                                        "range a, b, c keys_only), one keep-alive libcurl handle";
    etcd_http *e = calloc(1, sizeof *e);
    etcd_kv k = {0};
    int64_t lat;
    if (!e)
        bench_fail(t, "out of memory");
    else if (!http_open(e, rt->u, t->err, sizeof t->err) && !etcd_kv_setup(t, e, rt->u, &k))
        etcd_kv_cycle(t, e, &k, kind, &lat); /* warm-up */
    /* The put bound moves a's revision: a txn bound after it checks a fresh one (setup). */
    if (bench_ready(t))
        while (bench_going(t))
            if (etcd_kv_cycle(t, e, &k, kind, &lat) || bench_sample(t, lat)) break;
    if (e && e->h && k.a) {
        const char *keys[] = {k.a, k.b, k.c};
        for (int i = 0; i < 3; i++) {
            char *k64 = etcd_b64(keys[i], strlen(keys[i]));
            if (k64) delete_quietly(e, k64);
            free(k64);
        }
    }
    if (e) http_close(e);
    free(e);
    etcd_kv_free(&k);
    return NULL;
}

static void *etcd_kv_put_main(void *arg) {
    return etcd_kv_main(arg, RAW_KV_PUT);
}

static void *etcd_kv_get_main(void *arg) {
    return etcd_kv_main(arg, RAW_KV_GET);
}

static void *etcd_kv_txn_main(void *arg) {
    return etcd_kv_main(arg, RAW_KV_TXN);
}

/* ---------- the watch bound ---------- */

typedef struct etcd_watcher {
    etcd_http w; /* the stream's handle */
    char req[1024];
    etcd_lines lines;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool created, ended, stop;
    int64_t seen, seen_ns; /* the newest mod revision an event carried, and when */
    char err[600];
} etcd_watcher;

static int watcher_line(void *ctx, const char *line, size_t len) {
    etcd_watcher *w = ctx;
    etcd_watch_msg m;
    if (etcd_parse_watch_line(line, len, &m)) return 1;
    int64_t now = now_ns();
    pthread_mutex_lock(&w->mu);
    if (m.is_error) snprintf(w->err, sizeof w->err, "watch stream: %s", m.msg);
    if (m.created) w->created = true;
    for (size_t i = 0; i < m.nevents; i++)
        if (!m.events[i].is_delete && m.events[i].mod_revision > w->seen) {
            w->seen = m.events[i].mod_revision;
            w->seen_ns = now;
        }
    bool stop = w->stop || m.is_error;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    etcd_watch_msg_clear(&m);
    return stop;
}

static size_t on_watcher(char *p, size_t sz, size_t n, void *ud) {
    etcd_watcher *w = ud;
    return etcd_lines_feed(&w->lines, p, sz * n, watcher_line, w) ? 0 : sz * n;
}

static void *watcher_main(void *arg) {
    etcd_watcher *w = arg;
    char url[700];
    snprintf(url, sizeof url, "%s/v3/watch", w->w.base);
    curl_easy_setopt(w->w.h, CURLOPT_URL, url);
    curl_easy_setopt(w->w.h, CURLOPT_POSTFIELDS, w->req);
    curl_easy_setopt(w->w.h, CURLOPT_POSTFIELDSIZE, (long)strlen(w->req));
    CURLcode cc = curl_easy_perform(w->w.h);
    pthread_mutex_lock(&w->mu);
    if (!w->stop && !w->err[0])
        snprintf(w->err, sizeof w->err, "watch stream ended: %s", curl_easy_strerror(cc));
    w->ended = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

typedef struct etcd_watch_writer {
    bench_thread t;
    etcd_http *e;
    const char *put_req;
    etcd_watcher *w;
} etcd_watch_writer;

/* A put (the kv put's txn); its revision from the answer's header. */
static int watch_put(bench_thread *t, etcd_http *e, const char *req, int64_t *rev) {
    cJSON *res = NULL;
    if (post_str(e, "/v3/kv/txn", req, &res)) return -1;
    bool ok = !etcd_header_rev(res, rev) && *rev > 0;
    cJSON_Delete(res);
    if (!ok) bench_fail(t, "put txn: no header revision");
    return ok ? 0 : -1;
}

static int etcd_watch_cycle(etcd_watch_writer *ww, int64_t *lat) {
    int64_t rev = 0;
    if (watch_put(&ww->t, ww->e, ww->put_req, &rev)) return -1;
    int64_t done = now_ns();
    etcd_watcher *w = ww->w;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&w->mu);
    int wrc = 0;
    while (w->seen < rev && !w->ended && wrc == 0)
        wrc = pthread_cond_timedwait(&w->cv, &w->mu, &dl);
    bool got = w->seen >= rev;
    int64_t at = w->seen_ns;
    pthread_mutex_unlock(&w->mu);
    if (!got) {
        bench_fail(&ww->t, "the watch stream did not carry revision %lld: %s", (long long)rev,
                   w->err[0] ? w->err : "not within 5 s");
        return -1;
    }
    *lat = at > done ? at - done : 0;
    return 0;
}

static void *etcd_watch_writer_main(void *arg) {
    etcd_watch_writer *ww = arg;
    int64_t lat;
    etcd_watch_cycle(ww, &lat); /* warm-up */
    if (bench_ready(&ww->t))
        while (bench_going(&ww->t))
            if (etcd_watch_cycle(ww, &lat) || bench_sample(&ww->t, lat)) break;
    return NULL;
}

static void etcd_watch(const coord_uri *u, int64_t ms, raw_result *out) {
    out->method = "a writer POST /v3/kv/txn (the kv put's request) on a handle of its own; the "
                  "watcher a POST /v3/watch stream on the key, its events carrying the revision; "
                  "latency from the put's return to the event of its revision";
    etcd_http *e = calloc(1, sizeof *e);
    etcd_watcher *w = calloc(1, sizeof *w);
    char *key = NULL, *key64 = NULL, *put_req = NULL;
    bool started = false;
    if (!e || !w || asprintf(&key, "%s/bench-raw-%ld-watch/w", u->prefix, (long)getpid()) < 0) {
        key = NULL;
        snprintf(out->err, sizeof out->err, "out of memory");
    } else {
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        w->lines.max = STREAM_LINE_MAX;
        coord_op put = {.type = COORD_OP_PUT,
                        .path = key,
                        .value = etcd_kv_value,
                        .len = KV_VALUE_LEN,
                        .version = COORD_VERSION_ANY};
        key64 = etcd_b64(key, strlen(key));
        put_req = txn_text(&put, 1);
        if (!key64 || !put_req)
            snprintf(out->err, sizeof out->err, "out of memory");
        else if (!http_open(e, u, out->err, sizeof out->err) &&
                 !http_open(&w->w, u, out->err, sizeof out->err)) {
            snprintf(w->req, sizeof w->req, "{\"create_request\":{\"key\":\"%s\"}}", key64);
            curl_easy_setopt(w->w.h, CURLOPT_WRITEFUNCTION, on_watcher);
            curl_easy_setopt(w->w.h, CURLOPT_WRITEDATA, w);
            curl_easy_setopt(w->w.h, CURLOPT_TIMEOUT_MS, (long)(ms + 30000));
            started = pthread_create(&w->th, NULL, watcher_main, w) == 0;
            if (!started) snprintf(out->err, sizeof out->err, "cannot start the watcher");
        }
    }
    if (started) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 5;
        pthread_mutex_lock(&w->mu);
        while (!w->created && !w->ended)
            if (pthread_cond_timedwait(&w->cv, &w->mu, &dl)) break;
        bool created = w->created;
        pthread_mutex_unlock(&w->mu);
        if (!created)
            snprintf(out->err, sizeof out->err, "watch stream not created: %.500s", w->err);
        else {
            etcd_watch_writer ww = {.e = e, .put_req = put_req, .w = w};
            bench_run_threads(&ww, sizeof ww, 1, etcd_watch_writer_main, ms, NULL, NULL, &out->r,
                              out->err, sizeof out->err);
        }
        /* End the stream: its next line (the event of one more put) stops it. */
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_mutex_unlock(&w->mu);
        char scratch[600];
        e->err = scratch;
        e->errlen = sizeof scratch;
        post_only(e, "/v3/kv/txn", put_req);
        pthread_join(w->th, NULL);
    }
    if (e && e->h && key64) delete_quietly(e, key64);
    if (e) http_close(e);
    if (w) {
        http_close(&w->w);
        etcd_lines_free(&w->lines);
        if (key) {
            pthread_mutex_destroy(&w->mu);
            pthread_cond_destroy(&w->cv);
        }
    }
    free(e);
    free(w);
    free(key);
    free(key64);
    free(put_req);
}

/* ---------- the queue bound ---------- */

typedef struct etcd_qrun {
    const coord_uri *u;
    char *items, *claims; /* "<dir>/items", "<dir>/claims" (no trailing '/') */
    etcd_range items_r, claims_r;
    bool claim, shared;
    bench_feed feed;
} etcd_qrun;

typedef struct etcd_qworker {
    bench_thread t;
    etcd_qrun *run;
    etcd_http e;
    char lease[32];
    char req[4096];
} etcd_qworker;

/* The names below a range, in create order (keys_only, the prefix `dir` + '/' cut off). */
static int list_names(etcd_qworker *w, const etcd_range *r, const char *dir, cJSON **res,
                      const cJSON **kvs) {
    snprintf(w->req, sizeof w->req,
             "{\"key\":\"%s\",\"range_end\":\"%s\",\"sort_target\":\"CREATE\","
             "\"sort_order\":\"ASCEND\",\"keys_only\":true}",
             r->dir64, r->end64);
    (void)dir;
    if (post_str(&w->e, "/v3/kv/range", w->req, res)) return -1;
    *kvs = cJSON_GetObjectItemCaseSensitive(*res, "kvs");
    return 0;
}

/* The key of kvs[i] decoded (malloc'd), or NULL. */
static char *key_at(const cJSON *kvs, int i) {
    coord_kv kv = {0};
    if (etcd_parse_kv(cJSON_GetArrayItem(kvs, i), 0, &kv)) return NULL;
    char *k = kv.key;
    kv.key = NULL;
    coord_kv_clear(&kv);
    return k;
}

/* Take or claim + ack `item` (its claim key `claim`) the way coord does: 1 done (the item in
 * *kv), 0 gone or claimed meanwhile, -1 failed. */
static int etcd_qtry(etcd_qworker *w, const char *item, const char *claim, coord_kv *kv) {
    etcd_qrun *run = w->run;
    coord_kv mine = {0};
    int rc = 0; /* 1: next item */
    cJSON *res = NULL;
    if (run->claim) {
        /* The claim: coord's ephemeral put (create_revision == 0 ? put on the lease). */
        char *c64 = etcd_b64(claim, strlen(claim));
        snprintf(w->req, sizeof w->req,
                 "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"CREATE\","
                 "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"%s\","
                 "\"value\":\"cmF3\",\"lease\":\"%s\"}}],\"failure\":[{\"request_range\":"
                 "{\"key\":\"%s\"}}]}",
                 c64 ? c64 : "", c64 ? c64 : "", w->lease, c64 ? c64 : "");
        free(c64);
        rc = post_str(&w->e, "/v3/kv/txn", w->req, &res) ? -1 : 0;
        if (!rc && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded")))
            rc = 1; /* claimed meanwhile */
        if (!rc && (etcd_header_rev(res, &mine.version) || mine.version <= 0)) rc = -1;
        mine.token = (uint64_t)mine.version;
        cJSON_Delete(res);
        res = NULL;
    }
    if (!rc) { /* the item */
        char *i64 = etcd_b64(item, strlen(item));
        snprintf(w->req, sizeof w->req, "{\"key\":\"%s\"}", i64 ? i64 : "");
        free(i64);
        rc = post_str(&w->e, "/v3/kv/range", w->req, &res) ? -1 : 0;
        const cJSON *kv0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(res, "kvs"), 0);
        if (!rc && !kv0) rc = 1; /* taken meanwhile */
        if (!rc && etcd_parse_kv(kv0, 0, kv)) rc = -1;
        cJSON_Delete(res);
        res = NULL;
    }
    if (!rc) { /* take's or ack's txn, the backend's request */
        coord_op take[2] = {{.type = COORD_OP_CHECK, .path = claim, .version = 0},
                            {.type = COORD_OP_DEL, .path = item, .version = kv->version}};
        coord_op ack[3] = {
            {.type = COORD_OP_HELD, .path = claim, .version = mine.version, .token = mine.token},
            {.type = COORD_OP_DEL, .path = item, .version = kv->version},
            {.type = COORD_OP_DEL, .path = claim, .version = mine.version}};
        rc = post(&w->e, "/v3/kv/txn",
                  run->claim ? etcd_txn_request(ack, 3) : etcd_txn_request(take, 2), &res)
                 ? -1
                 : 0;
        if (!rc && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded")))
            rc = run->claim ? -1 : 1;
        cJSON_Delete(res);
    }
    if (rc < 0 && !w->t.err[0])
        bench_fail(&w->t, "%s of %.300s failed", run->claim ? "ack" : "take", item);
    return rc < 0 ? -1 : rc == 0;
}

/* One item the way coord's consumers of one client get it (the feed's pass-over included): 1
 * when got (timed into *lat), 0 when the queue had none open, -1 failed. */
static int etcd_qconsume(etcd_qworker *w, int64_t *lat) {
    etcd_qrun *run = w->run;
    int64_t t0 = now_ns();
    uint64_t since = feed_since(&run->feed);
    cJSON *ir = NULL, *cr = NULL;
    const cJSON *ikvs = NULL, *ckvs = NULL;
    if (list_names(w, &run->items_r, run->items, &ir, &ikvs) ||
        list_names(w, &run->claims_r, run->claims, &cr, &ckvs)) {
        cJSON_Delete(ir);
        return -1;
    }
    int got = 0, n = cJSON_GetArraySize(ikvs), nc = cJSON_GetArraySize(ckvs);
    size_t il = strlen(run->items) + 1, cl = strlen(run->claims) + 1;
    for (int i = 0; i < n && !got; i++) {
        char *item = key_at(ikvs, i), *claim = NULL;
        if (!item || asprintf(&claim, "%s/%s", run->claims, item + il) < 0) {
            free(item);
            bench_fail(&w->t, "out of memory");
            got = -1;
            break;
        }
        bool claimed = false;
        for (int j = 0; j < nc && !claimed; j++) {
            char *c = key_at(ckvs, j);
            claimed = c && !strcmp(c + cl, item + il);
            free(c);
        }
        int slot = claimed ? -1 : run->shared ? feed_try(&run->feed, since, item + il) : 0;
        if (slot >= 0) {
            coord_kv kv = {0};
            got = etcd_qtry(w, item, claim, &kv);
            if (run->shared) feed_tried(&run->feed, slot, got > 0);
            if (got > 0) {
                *lat = now_ns() - t0;
                got = feed_got(&run->feed, &w->t, kv.value, kv.len) ? -1 : 1;
            }
            coord_kv_clear(&kv);
        }
        free(item);
        free(claim);
    }
    cJSON_Delete(ir);
    cJSON_Delete(cr);
    return got;
}

static void *etcd_qworker_main(void *arg) {
    etcd_qworker *w = arg;
    etcd_qrun *run = w->run;
    bool producer = w->t.idx == 0;
    if (!http_open(&w->e, run->u, w->t.err, sizeof w->t.err) && !producer && run->claim)
        task_lease(&w->t, &w->e, w->lease, sizeof w->lease);
    if (bench_ready(&w->t)) {
        if (producer) {
            char buf[32];
            while (feed_room(&run->feed, &w->t)) {
                size_t len = feed_next(&run->feed, buf, sizeof buf);
                /* coord's put of an item: "<dir>/<UnixNano>", created only if new. */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                char key[700];
                snprintf(key, sizeof key, "%s/%lld", run->items,
                         (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
                char *k64 = etcd_b64(key, strlen(key)), *v64 = etcd_b64(buf, len);
                snprintf(w->req, sizeof w->req,
                         "{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":"
                         "\"CREATE\",\"create_revision\":\"0\"}],\"success\":[{\"request_put\":"
                         "{\"key\":\"%s\",\"value\":\"%s\"}}],\"failure\":[{\"request_range\":"
                         "{\"key\":\"%s\"}}]}",
                         k64 ? k64 : "", k64 ? k64 : "", v64 ? v64 : "", k64 ? k64 : "");
                free(k64);
                free(v64);
                cJSON *res = NULL;
                if (post_str(&w->e, "/v3/kv/txn", w->req, &res)) break;
                bool made = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded"));
                cJSON_Delete(res);
                if (!made) {
                    bench_fail(&w->t, "put of %.300s: exists", key);
                    break;
                }
                feed_put(&run->feed);
            }
        } else {
            int64_t lat = 0;
            while (bench_going(&w->t)) {
                int got = etcd_qconsume(w, &lat);
                if (got < 0 || (got > 0 && bench_sample(&w->t, lat))) break;
                if (!got) usleep(200); /* none open: the producer's turn */
            }
        }
    }
    if (w->e.h && w->lease[0]) task_revoke(&w->e, w->lease);
    http_close(&w->e);
    return NULL;
}

static void etcd_queue_bound(const coord_uri *u, int consumers, bool claim, bool shared, int64_t ms,
                             raw_result *out) {
#define ETCD_Q_CLAIM                                                                               \
    "coord's requests per item: POST /v3/kv/range of items/ and of claims/ (keys_only, by "        \
    "create revision), POST /v3/kv/txn (create_revision(claim) == 0 ? put on the lease) + "        \
    "range(item), POST /v3/kv/txn (create_revision(claim), mod_revision(item), "                   \
    "mod_revision(claim) ? delete both); the producer POST /v3/kv/txn "                            \
    "(create_revision(items/<UnixNano>) == 0 ? put); "
#define ETCD_Q_TAKE                                                                                \
    "coord's requests per item: POST /v3/kv/range of items/ and of claims/ (keys_only, by "        \
    "create revision), range(item) + POST /v3/kv/txn (version(claim) == 0, mod_revision(item) "    \
    "== v ? delete item); the producer POST /v3/kv/txn (create_revision(items/<UnixNano>) == 0 ? " \
    "put); "
#define ETCD_Q_SHARED                                                                              \
    "the consumers a libcurl handle each (as the backend's connections), passing over the items "  \
    "another is trying or took since their listing, as coord's consumers of one client do"
#define ETCD_Q_OWN                                                                                 \
    "the consumers a libcurl handle each, on their own, as coord's with --client-per-thread"
    out->method = claim ? (shared ? ETCD_Q_CLAIM ETCD_Q_SHARED : ETCD_Q_CLAIM ETCD_Q_OWN)
                        : (shared ? ETCD_Q_TAKE ETCD_Q_SHARED : ETCD_Q_TAKE ETCD_Q_OWN);
    etcd_qrun *run = calloc(1, sizeof *run);
    etcd_qworker *ws = calloc((size_t)consumers + 1, sizeof *ws);
    char suffix[64], sub[80];
    snprintf(suffix, sizeof suffix, "-queue-%s%d", claim ? "claim" : "take", consumers);
    bool ok = run && ws && !feed_init(&run->feed);
    if (ok) {
        long pid = (long)getpid();
        if (asprintf(&run->items, "%s/bench-raw-%ld%s/items", u->prefix, pid, suffix) < 0)
            run->items = NULL;
        if (asprintf(&run->claims, "%s/bench-raw-%ld%s/claims", u->prefix, pid, suffix) < 0)
            run->claims = NULL;
        snprintf(sub, sizeof sub, "%s/items", suffix);
        ok = run->items && run->claims && !range_of(u, sub, &run->items_r);
        snprintf(sub, sizeof sub, "%s/claims", suffix);
        ok = ok && !range_of(u, sub, &run->claims_r);
    }
    if (!ok) {
        snprintf(out->err, sizeof out->err, "out of memory");
    } else {
        run->u = u;
        run->claim = claim;
        run->shared = shared;
        for (int i = 0; i <= consumers; i++)
            ws[i].run = run;
        bench_run_threads(ws, sizeof *ws, consumers + 1, etcd_qworker_main, ms, NULL, NULL, &out->r,
                          out->err, sizeof out->err);
        /* What is left: the items (the claims went with their leases). */
        etcd_http e = {0};
        char scratch[600];
        if (!http_open(&e, u, scratch, sizeof scratch)) {
            snprintf(ws[0].req, sizeof ws[0].req, "{\"key\":\"%s\",\"range_end\":\"%s\"}",
                     run->items_r.dir64, run->items_r.end64);
            post_only(&e, "/v3/kv/deleterange", ws[0].req);
        }
        http_close(&e);
    }
    if (run) {
        feed_destroy(&run->feed);
        free(run->items);
        free(run->claims);
        range_free(&run->items_r);
        range_free(&run->claims_r);
    }
    free(run);
    free(ws);
}

const raw_client raw_etcd_client = {
    .backend = "etcd",
    .lock = etcd_lock_main,
    .counter = etcd_counter_main,
    .contended = etcd_contended,
    .election = etcd_election,
    .semaphore = etcd_semaphore_main,
    .reader = etcd_reader_main,
    .mixed = etcd_mixed,
    .kv_put = etcd_kv_put_main,
    .kv_get = etcd_kv_get_main,
    .kv_txn = etcd_kv_txn_main,
    .watch = etcd_watch,
    .queue = etcd_queue_bound,
};
