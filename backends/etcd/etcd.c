/*
 * etcd backend over the v3 JSON gateway (libcurl + cJSON): the lease and its keepalive, KV and
 * transactions, the lock queue, lifecycle and the table. Requests: etcd_http.c; watches:
 * etcd_watch.c.
 *
 * Threads: callers' threads issue unary requests on pooled curl handles (HTTP keep-alive per
 * handle); one keepalive thread renews the lease every TTL/3 and replaces it when it expired; one
 * watch thread drives every watch stream of the connection with a curl multi handle.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_int.h"

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
    int rc = etcd_call(e, "/v3/lease/grant", req, true, timeout_ms, &res);
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
    int rc = etcd_call(e, "/v3/lease/keepalive", req, true, timeout_ms, &res);
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
    int rc = etcd_call(e, "/v3/lease/revoke", req, true, timeout_ms, &res);
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
    int rc = etcd_call(e, "/v3/kv/range", req, true, timeout_ms, &res);
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

int etcd_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
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
    int rc = etcd_send_built(e, "/v3/kv/txn", req, ok, false, timeout_ms, &res);
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
        int rc = etcd_send_built(e, "/v3/kv/deleterange", req, ok, false, timeout_ms, &res);
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
    int rc = etcd_send_built(e, "/v3/kv/txn", req, ok, false, timeout_ms, &res);
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

static int cmp_key(const void *a, const void *b) {
    return strcmp(((const coord_kv *)a)->key, ((const coord_kv *)b)->key);
}

/* Sort `arr` by key and drop repeated keys; returns how many remain. */
static size_t unique_names(coord_kv *arr, size_t n) {
    qsort(arr, n, sizeof *arr, cmp_key);
    size_t k = 1;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(arr[i].key, arr[k - 1].key) == 0)
            coord_kv_clear(&arr[i]);
        else
            arr[k++] = arr[i];
    }
    return k;
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
    bool tree = flags & COORD_LIST_TREE;
    /* A tree listing is sorted by name in the core: the server need not sort by creation. */
    if (!etcd_add_bytes(req, "key", dir, pl + 1) || !etcd_add_bytes(req, "range_end", end, el) ||
        (!tree && !cJSON_AddStringToObject(req, "sort_target", "CREATE")) ||
        (!tree && !cJSON_AddStringToObject(req, "sort_order", "ASCEND")) ||
        ((flags & (COORD_LIST_NAMES | COORD_LIST_TREE)) &&
         !cJSON_AddBoolToObject(req, "keys_only", 1)))
        goto oom;
    cJSON *res = NULL;
    rc = etcd_call(e, "/v3/kv/range", req, true, timeout_ms, &res);
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
        char *slash = strchr(item.key, '/');
        if (tree && slash) *slash = 0;          /* "a/b/c" leads to "a" */
        if (!item.key[0] || (!tree && slash)) { /* not a direct child */
            coord_kv_clear(&item);
            continue;
        }
        if (tree) { /* a name, not an entry */
            item.version = item.order = 0;
            item.token = 0;
        }
        arr[got++] = item;
    }
    if (!rc && tree && got > 1) /* each name once */
        got = unique_names(arr, got);
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

/* ---------- transactions ---------- */

static int etcd_txn(coord_conn *c, const coord_op *ops, size_t n, int64_t *versions, size_t *failed,
                    int timeout_ms) {
    etcd *e = (etcd *)c;
    int rc = etcd_txn_check(ops, n);
    if (rc) return rc;
    cJSON *req = etcd_txn_request(ops, n), *res = NULL;
    /* Not repeatable: after a lost answer a second send could fail on the first one's writes
     * (or apply twice), so the outcome stays unknown to the caller. */
    rc = etcd_send_built(e, "/v3/kv/txn", req, req != NULL, false, timeout_ms, &res);
    if (rc) return rc;
    int64_t rev = 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "succeeded"))) {
        rc = etcd_header_rev(res, &rev);
        if (!rc && rev <= 0) rc = coord_seterr(COORD_EPROTO, "etcd: txn answer without revision");
        for (size_t i = 0; !rc && versions && i < n; i++)
            if (ops[i].type == COORD_OP_PUT) versions[i] = rev;
        cJSON_Delete(res);
        return rc;
    }
    /* The failure branch read every compared key: find the compare that failed. */
    char msg[1024];
    size_t which = n;
    rc = etcd_txn_explain(res, ops, n, &which, msg, sizeof msg);
    cJSON_Delete(res);
    if (rc) return rc;
    if (failed) *failed = which;
    return coord_seterr(COORD_ECONFLICT, "%s", msg);
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

/* The subdirectory of a queue's contenders of `kind`: etcd's read-write lock recipe keeps readers
 * and writers in "read/" and "write/"; the other recipes (Mutex, Election) share the queue's own
 * directory, whatever coord calls their contenders. */
static const char *kind_sub(const char *kind) {
    if (kind && !strcmp(kind, "__READ__")) return "read";
    if (kind && !strcmp(kind, "__WRIT__")) return "write";
    return NULL;
}

/* "<dir>" or "<dir>/<sub of kind>": where contenders of `kind` live. */
static char *kind_dir(const char *dir, const char *kind) {
    char *p = NULL;
    const char *sub = kind_sub(kind);
    if (asprintf(&p, "%s%s%s", dir, sub ? "/" : "", sub ? sub : "") < 0) p = NULL;
    return p;
}

static int etcd_lock_enqueue(coord_conn *c, const char *dir, const char *tag, const char *kind,
                             const char *only, const void *value, size_t len, coord_kv *mine,
                             bool *first, coord_kv *pred, int64_t *after, int timeout_ms) {
    etcd *e = (etcd *)c;
    int64_t lease;
    lease_now(e, &lease);
    /* etcd's Mutex names its key by the lease alone, so two mutexes of one session would share
     * it; the handle's tag keeps handles of one client apart under the same prefix. */
    char *key = NULL, *home = kind_dir(dir, kind), *scope = kind_dir(dir, only);
    if (!home || !scope || asprintf(&key, "%s/%llx-%s", home, (unsigned long long)lease, tag) < 0) {
        free(home);
        free(scope);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    free(home);
    cJSON *cmps, *succ, *fail;
    cJSON *req = txn_new(&cmps, &succ, &fail);
    bool ok = req && cJSON_AddItemToArray(succ, op_put(key, value, len, lease));
    /* Created now, ours is the newest: the newest two of the scope tell our predecessor. */
    ok = ok && cJSON_AddItemToArray(cmps, compare_version(key, 0)) &&
         cJSON_AddItemToArray(succ, op_queue_range(only ? scope : dir, true, 0, 2));
    free(scope);
    /* No failure branch: a key that exists already (a resend) is read by a second request. */
    if (!ok) {
        cJSON_Delete(req);
        free(key);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    cJSON *res = NULL;
    /* Safe to resend: the compare makes a second attempt read the key the first one made. */
    int rc = etcd_call(e, "/v3/kv/txn", req, true, timeout_ms, &res);
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
    if (!rc && succeeded && (!rr || (kvs && !cJSON_IsArray(kvs))))
        rc = coord_seterr(COORD_EPROTO, "etcd: lock txn answer without its range");
    if (!rc && succeeded && only) {
        /* The newest of that kind that is not ours (ours is the newest key of all). */
        myrev = *after;
        *first = true;
        for (int i = 0; !rc && *first && i < cJSON_GetArraySize(kvs); i++) {
            rc = etcd_parse_kv(cJSON_GetArrayItem(kvs, i), 0, pred);
            if (!rc && strcmp(pred->key, key) == 0)
                coord_kv_clear(pred);
            else if (!rc)
                *first = false;
        }
    } else if (!rc && succeeded) {
        /* Created now: the newest contender is ours, the next newest our predecessor. */
        myrev = *after;
        const cJSON *second = cJSON_GetArrayItem(kvs, 1);
        *first = second == NULL;
        if (second) rc = etcd_parse_kv(second, 0, pred);
    } else if (!rc) {
        /* Made by an earlier attempt of ours (a resend after a lost answer): compare with the
         * owner, as etcd's Mutex does. Read by a second request rather than a failure branch of
         * the txn, which etcd pays for on every enqueue (7% of an uncontended semaphore cycle);
         * the owner read later is only newer. */
        cJSON_Delete(res);
        res = NULL;
        coord_kv self = {0}, owner = {0};
        bool found = false, has_owner = false;
        cJSON *rd = txn_new(&cmps, &succ, &fail);
        bool built = rd && cJSON_AddItemToArray(succ, op_range(key)) &&
                     cJSON_AddItemToArray(succ, op_queue_range(dir, false, 0, 1));
        rc = etcd_send_built(e, "/v3/kv/txn", rd, built, true, timeout_ms, &res);
        if (!rc) rc = txn_first_kv(res, 0, &self, &found);
        if (!rc && !found)
            rc = coord_seterr(COORD_ESESSION, "lock key %s is gone (session expired)", key);
        if (!rc) rc = txn_first_kv(res, 1, &owner, &has_owner);
        if (!rc) rc = etcd_header_rev(res, after);
        myrev = self.order;
        *first = !rc && !only && (!has_owner || owner.order == myrev);
        /* With `only`, not first and no predecessor known: the core asks lock_predecessor. */
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

/* lock_predecessor with `only`: our key, and the newest of that kind older than ours, in one
 * txn of two ranges. */
static int predecessor_of_kind(etcd *e, const char *dir, const coord_kv *mine, const char *only,
                               coord_kv *pred, int64_t *after, int timeout_ms) {
    char *scope = kind_dir(dir, only);
    cJSON *cmps, *succ, *fail;
    cJSON *req = scope ? txn_new(&cmps, &succ, &fail) : NULL;
    bool ok = req && cJSON_AddItemToArray(succ, op_range(mine->key)) &&
              cJSON_AddItemToArray(succ, op_queue_range(scope, true, mine->order - 1, 1));
    free(scope);
    cJSON *res = NULL;
    int rc = etcd_send_built(e, "/v3/kv/txn", req, ok, true, timeout_ms, &res);
    if (rc) return rc;
    coord_kv self = {0};
    bool found = false, has_pred = false;
    rc = txn_first_kv(res, 0, &self, &found);
    if (!rc && (!found || self.order != mine->order))
        rc = coord_seterr(COORD_ESESSION, "lock key %s is gone (session expired)", mine->key);
    if (!rc) rc = txn_first_kv(res, 1, pred, &has_pred);
    if (!rc) rc = etcd_header_rev(res, after);
    cJSON_Delete(res);
    coord_kv_clear(&self);
    if (rc) coord_kv_clear(pred);
    return rc;
}

static int etcd_lock_predecessor(coord_conn *c, const char *dir, const coord_kv *mine,
                                 const char *only, coord_kv *pred, int64_t *after, int timeout_ms) {
    etcd *e = (etcd *)c;
    memset(pred, 0, sizeof *pred);
    if (only) return predecessor_of_kind(e, dir, mine, only, pred, after, timeout_ms);
    /* One range: the two newest contenders up to mine, which is the first of them while it
     * exists (no other key has its create revision); the second is my predecessor. */
    cJSON *op = op_queue_range(dir, true, mine->order, 2);
    cJSON *req = op ? cJSON_DetachItemFromObject(op, "request_range") : NULL;
    cJSON_Delete(op);
    cJSON *res = NULL;
    int rc = etcd_send_built(e, "/v3/kv/range", req, req != NULL, true, timeout_ms, &res);
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

static int etcd_queue_head(coord_conn *c, const char *dir, coord_kv *out, int timeout_ms) {
    etcd *e = (etcd *)c;
    memset(out, 0, sizeof *out);
    /* The oldest contender with its value: what etcd's Election.Leader reads. */
    cJSON *op = op_queue_range(dir, false, 0, 1);
    cJSON *req = op ? cJSON_DetachItemFromObject(op, "request_range") : NULL;
    cJSON_Delete(op);
    cJSON *res = NULL;
    int rc = etcd_send_built(e, "/v3/kv/range", req, req != NULL, true, timeout_ms, &res);
    if (rc) return rc;
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(res, "kvs");
    if (kvs && !cJSON_IsArray(kvs)) rc = coord_seterr(COORD_EPROTO, "etcd: kvs is not an array");
    const cJSON *kv = cJSON_GetArrayItem(kvs, 0);
    if (!rc && !kv) rc = coord_seterr(COORD_ENOTFOUND, "%s has no contender", dir);
    if (!rc) rc = etcd_parse_kv(kv, 0, out);
    cJSON_Delete(res);
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
    etcd_ws_free(e->ws);
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
    /* watch=ws (the default): every watch on one WebSocket stream; watch=http: one HTTP stream
     * each. With the one stream, few idle connections are kept for the unary requests and the
     * watch thread's reads, so a client holds a handful of connections however many wait. */
    const char *wm = coord_uri_param(u, "watch");
    e->ws_mode = !wm || strcmp(wm, "ws") == 0;
    e->pool_keep = POOL_MAX;
    atomic_store(&e->ws_member, -1);
    if (e->ws_mode) {
        if (!(e->ws = etcd_ws_new())) goto oom;
        e->pool_keep = POOL_WS_KEEP;
        curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, 1L);
    }

    int64_t deadline = coord__now_ms() + cfg->connect_timeout_ms;
    if (u->user) {
        /* Any reachable member will do. */
        rc = COORD_EUNAVAILABLE;
        for (size_t i = 0; i < e->nendpoints && rc != 0 && rc != COORD_EAUTH; i++) {
            CURL *h = etcd_handle_get(e);
            if (!h) goto oom;
            rc = etcd_authenticate(e, h, (int)i, deadline - coord__now_ms(), 0);
            etcd_handle_put(e, h);
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
    if (pthread_create(&e->w_thread, NULL, etcd_watch_main, e)) {
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
    const char *wm = coord_uri_param(u, "watch");
    if (wm && strcmp(wm, "ws") != 0 && strcmp(wm, "http") != 0)
        return coord_seterr(COORD_EINVAL, "parameter \"watch\" is ws or http, not \"%.20s\"", wm);
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
static const char *const etcd_params[] = {"ca", "cert", "key", "watch", NULL};

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
    .queue_head = etcd_queue_head,
    .kv_get = etcd_get,
    .txn = etcd_txn,
};
