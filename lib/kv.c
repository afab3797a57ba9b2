/*
 * Key-value space (coord.h, "Key-value space"): keys under "<prefix>/kv/", read and written
 * through the backend's kv_get and txn slots (a single put or delete is a transaction of one
 * operation, which each backend runs in one round trip), watches that re-read the key after each
 * event of a DATA watch, and transactions fenced by a lock's entry.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Longest key (all segments with their '/'): well inside ZooKeeper's and etcd's path limits. */
#define KEY_MAX 2048

/* The backend's key-value slots, or COORD_ENOTSUP. */
static int kv_conn(coord_client *c, coord_conn **out) {
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    coord_conn *k = coord__client_conn(c);
    if (!k->backend->kv_get || !k->backend->txn)
        return coord_seterr(COORD_ENOTSUP, "the %s backend has no key-value space",
                            k->backend->name);
    *out = k;
    return 0;
}

/* "<prefix>/kv/<key>" after checking `key` ("" only when `top`: "<prefix>/kv"). */
static int kv_path(const coord_client *c, const char *key, bool top, char **out) {
    *out = NULL;
    if (!key) return coord_seterr(COORD_EINVAL, "key is NULL");
    size_t n = strnlen(key, KEY_MAX + 1);
    if (n > KEY_MAX) return coord_seterr(COORD_EINVAL, "key is longer than %d bytes", KEY_MAX);
    if (n == 0 && !top) return coord_seterr(COORD_EINVAL, "key is empty");
    for (const char *s = key; n && *s;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        char seg[256];
        if (len == 0 || len >= sizeof seg)
            return coord_seterr(COORD_EINVAL, "key \"%.64s\": %s segment at byte %zu", key,
                                len ? "a too long" : "an empty", (size_t)(s - key));
        memcpy(seg, s, len);
        seg[len] = 0;
        if (coord_name_check(seg))
            return coord_seterr(COORD_EINVAL, "key \"%.64s\": segment at byte %zu: %s", key,
                                (size_t)(s - key), coord_last_error());
        s = e ? e + 1 : s + len;
        if (e && !*s) return coord_seterr(COORD_EINVAL, "key \"%.64s\" ends with '/'", key);
    }
    if (asprintf(out, n ? "%s/kv/%s" : "%s/kv", coord_client_prefix(c), key) < 0) {
        *out = NULL;
        return coord__oom();
    }
    return 0;
}

static int check_value(const void *value, size_t len) {
    if (!value && len) return coord_seterr(COORD_EINVAL, "value is NULL with length %zu", len);
    if (len > COORD_VALUE_MAX)
        return coord_seterr(COORD_EINVAL, "value of %zu bytes exceeds %u", len, COORD_VALUE_MAX);
    return 0;
}

/* ---------- single operations ---------- */

int coord_kv_get(coord_client *c, const char *key, void **value, size_t *len, int64_t *version) {
    coord_conn *k = NULL;
    char *path;
    if (!value || !len) return coord_seterr(COORD_EINVAL, "NULL argument");
    *value = NULL;
    *len = 0;
    if (version) *version = 0;
    int rc = kv_conn(c, &k);
    if (!rc) rc = kv_path(c, key, false, &path);
    if (rc) return rc;
    coord_kv kv = {0};
    rc = k->backend->kv_get(k, path, &kv, coord__client_timeout(c));
    free(path);
    if (rc) return rc;
    /* One byte more, zero, so a text value reads as a C string. */
    unsigned char *v = realloc(kv.value, kv.len + 1);
    if (!v) {
        coord_kv_clear(&kv);
        return coord__oom();
    }
    v[kv.len] = 0;
    *value = v;
    *len = kv.len;
    if (version) *version = kv.version;
    kv.value = NULL;
    coord_kv_clear(&kv);
    return 0;
}

/* One operation as a transaction of one. */
static int single(coord_client *c, coord_op *op, int64_t *version) {
    coord_conn *k = NULL;
    int rc = kv_conn(c, &k);
    if (rc) return rc;
    int64_t v = 0;
    size_t failed = 0;
    rc = k->backend->txn(k, op, 1, &v, &failed, coord__client_timeout(c));
    if (!rc && version) *version = v;
    return rc;
}

int coord_kv_put(coord_client *c, const char *key, const void *value, size_t len, int64_t expect,
                 int64_t *version) {
    char *path;
    if (version) *version = 0;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    if (expect < COORD_VERSION_ANY)
        return coord_seterr(COORD_EINVAL, "expect %lld is not -1, 0 or a version",
                            (long long)expect);
    int rc = check_value(value, len);
    if (!rc) rc = kv_path(c, key, false, &path);
    if (rc) return rc;
    coord_op op = {
        .type = COORD_OP_PUT, .path = path, .value = value, .len = len, .version = expect};
    rc = single(c, &op, version);
    free(path);
    return rc;
}

int coord_kv_delete(coord_client *c, const char *key, int64_t expect) {
    char *path;
    if (!c) return coord_seterr(COORD_EINVAL, "client is NULL");
    if (expect < COORD_VERSION_ANY || expect == COORD_VERSION_ABSENT)
        return coord_seterr(COORD_EINVAL, "expect %lld is not -1 or a version", (long long)expect);
    int rc = kv_path(c, key, false, &path);
    if (rc) return rc;
    coord_op op = {.type = COORD_OP_DEL, .path = path, .version = expect};
    rc = single(c, &op, NULL);
    if (rc == COORD_ECONFLICT && expect == COORD_VERSION_ANY) {
        rc = coord_seterr(COORD_ENOTFOUND, "key %s does not exist", key); /* the only condition */
    } else if (rc == COORD_ECONFLICT) {
        /* A transaction does not tell "absent" from "another version": one read does. */
        coord__error_buf saved;
        coord__error_save(&saved);
        coord_conn *k = coord__client_conn(c);
        coord_kv kv = {0};
        int grc = k->backend->kv_get(k, path, &kv, coord__client_timeout(c));
        coord_kv_clear(&kv);
        if (grc == COORD_ENOTFOUND)
            rc = coord_seterr(COORD_ENOTFOUND, "key %s does not exist", key);
        else
            coord__error_restore(&saved);
    }
    free(path);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int coord_kv_list(coord_client *c, const char *prefix, char ***keys, size_t *n) {
    coord_conn *k = NULL;
    char *path;
    if (!keys || !n) return coord_seterr(COORD_EINVAL, "NULL argument");
    *keys = NULL;
    *n = 0;
    int rc = kv_conn(c, &k);
    if (!rc) rc = kv_path(c, prefix, true, &path);
    if (rc) return rc;
    coord_kv *kids = NULL;
    size_t cnt = 0;
    rc = k->backend->list(k, path, COORD_LIST_NAMES | COORD_LIST_TREE, &kids, &cnt, NULL,
                          coord__client_timeout(c));
    free(path);
    if (rc) return rc;
    char **v = cnt ? calloc(cnt, sizeof *v) : NULL;
    if (cnt && !v) {
        coord_kv_array_free(kids, cnt);
        return coord__oom();
    }
    for (size_t i = 0; i < cnt; i++) {
        v[i] = kids[i].key; /* the array takes the names */
        kids[i].key = NULL;
    }
    coord_kv_array_free(kids, cnt);
    if (cnt > 1) qsort(v, cnt, sizeof *v, cmp_str); /* v is NULL when empty */
    *keys = v;
    *n = cnt;
    return 0;
}

/* ---------- transactions ---------- */

struct coord_txn {
    coord_client *c;
    size_t n;
    coord_op ops[COORD_TXN_MAX];
    int64_t versions[COORD_TXN_MAX];
    size_t bytes; /* of values: a request carries at most COORD_VALUE_MAX of them */
    const coord_lock *guard;
    bool committing; /* loop mode: a commit in flight (the loop's thread) */
};

int coord_txn_new(coord_txn **out, coord_client *c) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    coord_conn *k = NULL;
    int rc = kv_conn(c, &k);
    if (rc) return rc;
    coord_txn *t = calloc(1, sizeof *t);
    if (!t) return coord__oom();
    t->c = c;
    coord__client_ref(c); /* loop mode: freed after the close */
    *out = t;
    return 0;
}

/* Append an operation on `key` (the path and a copy of the value become the transaction's). */
static int add(coord_txn *t, int type, const char *key, const void *value, size_t len,
               int64_t version) {
    if (!t) return coord_seterr(COORD_EINVAL, "transaction is NULL");
    if (t->n + (t->guard != NULL) >= COORD_TXN_MAX)
        return coord_seterr(COORD_EINVAL, "a transaction takes at most %d operations",
                            COORD_TXN_MAX);
    /* Both servers refuse a request much over a megabyte (etcd's --max-request-bytes, ZooKeeper's
     * jute.maxbuffer, which closes the connection): refused here, with no traffic. */
    if (len > COORD_VALUE_MAX - t->bytes)
        return coord_seterr(COORD_EINVAL,
                            "a transaction carries at most %u bytes of values (%zu + %zu)",
                            COORD_VALUE_MAX, t->bytes, len);
    char *path;
    int rc = kv_path(t->c, key, false, &path);
    if (rc) return rc;
    if (type != COORD_OP_CHECK)
        for (size_t i = 0; i < t->n; i++)
            if (t->ops[i].type != COORD_OP_CHECK && !strcmp(t->ops[i].path, path)) {
                free(path);
                return coord_seterr(COORD_EINVAL, "key %s is written twice in one transaction",
                                    key);
            }
    void *copy = NULL;
    if (len && !(copy = malloc(len))) {
        free(path);
        return coord__oom();
    }
    if (len) memcpy(copy, value, len);
    t->bytes += len;
    t->ops[t->n++] =
        (coord_op){.type = type, .path = path, .value = copy, .len = len, .version = version};
    return 0;
}

int coord_txn_check(coord_txn *t, const char *key, int64_t version) {
    if (version < 0)
        return coord_seterr(COORD_EINVAL, "check of version %lld: 0 (absent) or a version",
                            (long long)version);
    return add(t, COORD_OP_CHECK, key, NULL, 0, version);
}

int coord_txn_put(coord_txn *t, const char *key, const void *value, size_t len) {
    int rc = check_value(value, len);
    return rc ? rc : add(t, COORD_OP_PUT, key, value, len, COORD_VERSION_ANY);
}

int coord_txn_delete(coord_txn *t, const char *key) {
    return add(t, COORD_OP_DEL, key, NULL, 0, COORD_VERSION_ANY);
}

int coord_txn_guard(coord_txn *t, const coord_lock *l) {
    if (!t || !l) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (t->guard) return coord_seterr(COORD_EINVAL, "the transaction has a guard already");
    if (coord__lock_client(l) != t->c)
        return coord_seterr(COORD_EINVAL, "the guard's lock belongs to another client");
    if (t->n >= COORD_TXN_MAX)
        return coord_seterr(COORD_EINVAL, "a transaction takes at most %d operations",
                            COORD_TXN_MAX);
    t->guard = l;
    return 0;
}

int coord_txn_commit(coord_txn *t) {
    if (!t) return coord_seterr(COORD_EINVAL, "transaction is NULL");
    memset(t->versions, 0, sizeof t->versions);
    if (t->n == 0 && !t->guard) return coord_seterr(COORD_EINVAL, "the transaction is empty");
    coord_conn *k = coord__client_conn(t->c);
    coord_op ops[COORD_TXN_MAX];
    int64_t versions[COORD_TXN_MAX] = {0};
    size_t n = t->n;
    memcpy(ops, t->ops, n * sizeof *ops);
    if (t->guard) {
        const coord_kv *mine = coord__lock_entry(t->guard);
        if (!mine)
            return coord_seterr(COORD_ENOTHELD, "the guard's lock is not held by its handle");
        ops[n++] = (coord_op){.type = COORD_OP_HELD,
                              .path = mine->key,
                              .version = mine->version,
                              .token = mine->token};
    }
    size_t failed = n;
    int rc = k->backend->txn(k, ops, n, versions, &failed, coord__client_timeout(t->c));
    if (!rc) memcpy(t->versions, versions, t->n * sizeof *versions);
    return rc;
}

int64_t coord_txn_version(const coord_txn *t, size_t i) {
    return t && i < t->n && t->ops[i].type == COORD_OP_PUT ? t->versions[i] : 0;
}

void coord_txn_free(coord_txn *t) {
    if (!t) return;
    coord__calls_reap(t->c, t); /* loop mode: its commit in flight ends first */
    for (size_t i = 0; i < t->n; i++) {
        free((char *)t->ops[i].path);
        free((void *)t->ops[i].value);
    }
    coord__client_unref(t->c);
    free(t);
}

/* ---------- watches ---------- */

struct coord_kv_watch {
    coord_client *c;
    char *key, *path;
    coord_kv_watch_fn fn;
    void *payload;
    coord_watch *w; /* touched by the worker only, after new */
    coord__listener listener;
    coord__closer closer; /* loop mode: a watch freed after the close */
    coord__worker worker;
    /* What was reported last (reported: at least once): a report is made when the state differs
     * (a key deleted and made again on ZooKeeper has its old version but another token). */
    bool reported;
    int64_t version;
    uint64_t token;
};

#define WHY_FORCE 1u /* report even an unchanged value: changes may have been missed */
#define WHY_REARM 2u /* the backend ended the watch: make a new one */

static void on_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)rev;
    coord_kv_watch *w = payload;
    coord__worker_kick(&w->worker, ev == COORD_EV_RESET   ? WHY_FORCE
                                   : ev == COORD_EV_ERROR ? WHY_REARM
                                                          : 0);
}

static void on_state(void *payload, coord_session_state st) {
    coord_kv_watch *w = payload;
    if (st == COORD_SESSION_LOST) coord__worker_kick(&w->worker, WHY_FORCE);
    if (st == COORD_SESSION_CONNECTED) coord__worker_kick(&w->worker, 0);
}

/* The worker's step: read the key and report it when it changed (or when forced). */
typedef struct watch_call {
    coord_kv_watch *w;
    const void *value;
    size_t len;
    int64_t version;
} watch_call;

static void report_now(void *arg, int rc) {
    (void)rc;
    watch_call *r = arg;
    r->w->fn(r->w->key, r->value, r->len, r->version, r->w->payload);
}

static int look(void *arg, unsigned why) {
    coord_kv_watch *w = arg;
    if (coord__client_closed(w->c)) return 0; /* loop mode: freed after the close */
    coord_conn *k = coord__client_conn(w->c);
    if (why & WHY_REARM) { /* a new watch, then the read covers the gap */
        if (w->w) k->backend->unwatch(k, w->w);
        w->w = NULL;
        int rc = k->backend->watch(k, w->path, COORD_WATCH_DATA, 0, on_event, w, &w->w);
        if (rc) return rc;
        why |= WHY_FORCE;
    }
    coord_kv kv = {0};
    int rc = k->backend->kv_get(k, w->path, &kv, coord__client_timeout(w->c));
    if (rc == COORD_ENOTFOUND) {
        memset(&kv, 0, sizeof kv);
        rc = 0;
    }
    if (rc) return rc;
    if ((why & WHY_FORCE) || !w->reported || kv.version != w->version || kv.token != w->token) {
        w->reported = true;
        w->version = kv.version;
        w->token = kv.token;
        bool present = kv.version != 0;
        /* on the worker's thread; in loop mode inside coord_client_process */
        watch_call r = {w, present ? (kv.value ? kv.value : (void *)"") : NULL,
                        present ? kv.len : 0, kv.version};
        coord__loop_call(w->c, w, report_now, &r);
    }
    coord_kv_clear(&kv);
    return 0;
}

/* The worker and the watch end (coord_client_close, for a watch freed after it). */
static void watch_shut(void *arg) {
    coord_kv_watch *w = arg;
    if (w->listener.fn) coord__client_unlisten(w->c, &w->listener);
    coord__worker_stop(&w->worker);
    coord_conn *k = coord__client_conn(w->c);
    if (w->w) k->backend->unwatch(k, w->w);
    w->w = NULL;
}

int coord_kv_watch_new(coord_kv_watch **out, coord_client *c, const char *key, coord_kv_watch_fn fn,
                       void *payload) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!fn) return coord_seterr(COORD_EINVAL, "fn is NULL");
    coord_conn *k = NULL;
    int rc = kv_conn(c, &k);
    if (rc) return rc;
    coord_kv_watch *w = calloc(1, sizeof *w);
    if (!w) return coord__oom();
    w->c = c;
    w->fn = fn;
    w->payload = payload;
    rc = coord__worker_init(&w->worker, look, w);
    if (rc) {
        free(w);
        return rc;
    }
    coord__client_ref(c); /* loop mode: freed after the close */
    w->closer = (coord__closer){.fn = watch_shut, .payload = w};
    coord__client_on_close(c, &w->closer);
    rc = kv_path(c, key, false, &w->path);
    if (!rc && !(w->key = strdup(key))) rc = coord__oom();
    /* Armed before the first read, so that no change falls between the two. */
    if (!rc) rc = k->backend->watch(k, w->path, COORD_WATCH_DATA, 0, on_event, w, &w->w);
    if (!rc) {
        w->listener = (coord__listener){.fn = on_state, .payload = w};
        coord__client_listen(c, &w->listener);
        rc = coord__worker_start(&w->worker);
    }
    if (rc) {
        coord_kv_watch_free(w);
        return rc;
    }
    coord__worker_kick(&w->worker, 0);
    *out = w;
    return 0;
}

static void coord_kv_watch_free_later(void *obj) {
    coord_kv_watch_free(obj);
}

void coord_kv_watch_free(coord_kv_watch *w) {
    if (!w) return;
    /* from its own callback (loop mode): once the callback has returned */
    if (coord__loop_defer(w->c, w, coord_kv_watch_free_later, w)) return;
    coord__client_off_close(w->c, &w->closer);
    if (w->listener.fn) coord__client_unlisten(w->c, &w->listener);
    coord__loop_forget(w->c, w);    /* the worker may wait for the loop's thread: this one */
    coord__worker_stop(&w->worker); /* the worker no longer touches w->w */
    coord__loop_unforget(w->c, w);
    coord_conn *k = coord__client_conn(w->c);
    if (w->w && !coord__client_closed(w->c))
        k->backend->unwatch(k, w->w); /* then no event kicks the worker */
    coord__worker_destroy(&w->worker);
    coord__client_unref(w->c);
    free(w->path);
    free(w->key);
    free(w);
}

/* ---- loop mode ---- */

/* The synchronous call's check of `key`, at the async call. */
static int check_key(const coord_client *c, const char *key, bool top) {
    char *p = NULL;
    int rc = kv_path(c, key, top, &p);
    free(p);
    return rc;
}

typedef struct kv_call {
    coord__call call;
    coord_client *c;
    char *key;
    void *value;
    size_t len;
    int64_t expect, version;
    char **keys;
    size_t n;
    coord_kv_get_fn get_done;
    void (*put_done)(int rc, int64_t version, void *payload);
    coord_done_fn del_done;
    void (*list_done)(int rc, char **keys, size_t n, void *payload);
    void *payload;
} kv_call;

static kv_call *kv_call_new(coord_client *c, const char *key, const void *value, size_t len) {
    kv_call *k = calloc(1, sizeof *k);
    if (!k || !(k->key = strdup(key ? key : "")) || !(k->value = malloc(len ? len : 1))) {
        if (k) free(k->key);
        free(k);
        coord__oom();
        return NULL;
    }
    if (len) memcpy(k->value, value, len);
    k->c = c;
    k->len = len;
    return k;
}

static void kv_call_free(kv_call *k) {
    free(k->key);
    free(k->value);
    coord_strings_free(k->keys, k->n);
    free(k);
}

static int kv_start(kv_call *k, int (*run)(coord__call *), void (*done)(coord__call *, int)) {
    k->call.run = run;
    k->call.done = done;
    int rc = coord__call_start(k->c, &k->call);
    if (rc) kv_call_free(k);
    return rc;
}

static int get_run(coord__call *call) {
    kv_call *k = (kv_call *)call;
    free(k->value);
    k->value = NULL;
    return coord_kv_get(k->c, k->key, &k->value, &k->len, &k->version);
}

static void get_done(coord__call *call, int rc) {
    kv_call *k = (kv_call *)call;
    k->get_done(rc, rc ? NULL : k->value, rc ? 0 : k->len, rc ? 0 : k->version, k->payload);
    kv_call_free(k);
}

int coord_kv_get_async(coord_client *c, const char *key, coord_kv_get_fn done, void *payload) {
    if (!c || !key || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    int rc = check_key(c, key, false);
    if (rc) return rc;
    kv_call *k = kv_call_new(c, key, NULL, 0);
    if (!k) return COORD_ENOMEM;
    k->get_done = done;
    k->payload = payload;
    return kv_start(k, get_run, get_done);
}

static int put_run(coord__call *call) {
    kv_call *k = (kv_call *)call;
    return coord_kv_put(k->c, k->key, k->value, k->len, k->expect, &k->version);
}

static void put_done(coord__call *call, int rc) {
    kv_call *k = (kv_call *)call;
    k->put_done(rc, rc ? 0 : k->version, k->payload);
    kv_call_free(k);
}

int coord_kv_put_async(coord_client *c, const char *key, const void *value, size_t len,
                       int64_t expect, void (*done)(int rc, int64_t version, void *payload),
                       void *payload) {
    if (!c || !key || !done || (!value && len)) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (len > COORD_VALUE_MAX)
        return coord_seterr(COORD_EINVAL, "value of %zu bytes is over the limit of %u", len,
                            COORD_VALUE_MAX);
    int rc = check_key(c, key, false);
    if (rc) return rc;
    kv_call *k = kv_call_new(c, key, value, len);
    if (!k) return COORD_ENOMEM;
    k->expect = expect;
    k->put_done = done;
    k->payload = payload;
    return kv_start(k, put_run, put_done);
}

static int del_run(coord__call *call) {
    kv_call *k = (kv_call *)call;
    return coord_kv_delete(k->c, k->key, k->expect);
}

static void del_done(coord__call *call, int rc) {
    kv_call *k = (kv_call *)call;
    k->del_done(rc, k->payload);
    kv_call_free(k);
}

int coord_kv_delete_async(coord_client *c, const char *key, int64_t expect, coord_done_fn done,
                          void *payload) {
    if (!c || !key || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    int rc = check_key(c, key, false);
    if (rc) return rc;
    kv_call *k = kv_call_new(c, key, NULL, 0);
    if (!k) return COORD_ENOMEM;
    k->expect = expect;
    k->del_done = done;
    k->payload = payload;
    return kv_start(k, del_run, del_done);
}

static int list_run(coord__call *call) {
    kv_call *k = (kv_call *)call;
    return coord_kv_list(k->c, k->key, &k->keys, &k->n);
}

static void list_done(coord__call *call, int rc) {
    kv_call *k = (kv_call *)call;
    k->list_done(rc, rc ? NULL : k->keys, rc ? 0 : k->n, k->payload);
    kv_call_free(k);
}

int coord_kv_list_async(coord_client *c, const char *prefix,
                        void (*done)(int rc, char **keys, size_t n, void *payload), void *payload) {
    if (!c || !prefix || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    int rc = check_key(c, prefix, true);
    if (rc) return rc;
    kv_call *k = kv_call_new(c, prefix, NULL, 0);
    if (!k) return COORD_ENOMEM;
    k->list_done = done;
    k->payload = payload;
    return kv_start(k, list_run, list_done);
}

/* A commit as a call on the transaction (coord__handle_call): its free ends the commit first. */
static int commit_fn(void *t) {
    return coord_txn_commit(t);
}

static void commit_release(void *arg, bool ran) {
    (void)ran;
    ((coord_txn *)arg)->committing = false;
}

int coord_txn_commit_async(coord_txn *t, coord_done_fn done, void *payload) {
    if (!t || !done) return coord_seterr(COORD_EINVAL, "NULL argument");
    if (t->committing)
        return coord_seterr(COORD_EINVAL, "a commit of this transaction is in flight");
    int rc = coord__handle_call(t->c, t, t, commit_fn, commit_release, done, payload);
    if (!rc) t->committing = true;
    return rc;
}
