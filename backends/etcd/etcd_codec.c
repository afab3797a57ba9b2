/* etcd JSON gateway codec: see etcd_codec.h. */
#include "etcd_codec.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *etcd_b64(const void *data, size_t len) {
    if (len > (size_t)INT32_MAX / 2) return NULL;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out) return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

int etcd_unb64(const char *s, void **out, size_t *len) {
    size_t n = strlen(s);
    if (n % 4 != 0 || n > (size_t)INT32_MAX / 2)
        return coord_seterr(COORD_EPROTO, "etcd: bad base64 length %zu", n);
    /* Only the alphabet, then at most two '='. EVP_DecodeBlock alone also takes leading and
     * trailing whitespace and a trailing run of '-' (PEM leniency) and decodes fewer bytes. */
    size_t pad = 0;
    if (n >= 1 && s[n - 1] == '=') pad++;
    if (n >= 2 && s[n - 2] == '=') pad++;
    for (size_t i = 0; i + pad < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return coord_seterr(COORD_EPROTO, "etcd: malformed base64%s",
                                c == '=' ? " padding" : "");
    }
    unsigned char *buf = malloc(n / 4 * 3 + 1);
    if (!buf) return coord_seterr(COORD_ENOMEM, "out of memory");
    int got = n ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
    if (got < 0) {
        free(buf);
        return coord_seterr(COORD_EPROTO, "etcd: malformed base64");
    }
    /* EVP_DecodeBlock counts the bytes that '=' padding stands for; take them back. */
    *len = (size_t)got - pad;
    buf[*len] = 0;
    *out = buf;
    return 0;
}

int etcd_get_i64(const cJSON *obj, const char *field, int64_t *out) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, field);
    *out = 0;
    if (!f || cJSON_IsNull(f)) return 0;
    if (cJSON_IsString(f)) {
        const char *s = f->valuestring;
        if (!*s || !((*s >= '0' && *s <= '9') || *s == '-'))
            return coord_seterr(COORD_EPROTO, "etcd: field %s is not an integer: \"%.40s\"", field,
                                s);
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (*end || errno)
            return coord_seterr(COORD_EPROTO, "etcd: field %s is not an int64: \"%.40s\"", field,
                                s);
        *out = v;
        return 0;
    }
    if (cJSON_IsNumber(f)) {
        double d = f->valuedouble;
        if (d != d || d > 9007199254740991.0 || d < -9007199254740991.0 || (double)(int64_t)d != d)
            return coord_seterr(COORD_EPROTO, "etcd: field %s is not an exact integer", field);
        *out = (int64_t)d;
        return 0;
    }
    return coord_seterr(COORD_EPROTO, "etcd: field %s has the wrong JSON type", field);
}

cJSON *etcd_add_i64(cJSON *obj, const char *field, int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return cJSON_AddStringToObject(obj, field, buf);
}

cJSON *etcd_add_bytes(cJSON *obj, const char *field, const void *data, size_t len) {
    char *b = etcd_b64(data, len);
    if (!b) return NULL;
    cJSON *r = cJSON_AddStringToObject(obj, field, b);
    free(b);
    return r;
}

size_t etcd_prefix_end(const char *prefix, size_t len, char *out) {
    memcpy(out, prefix, len);
    while (len > 0) {
        unsigned char c = (unsigned char)out[len - 1];
        if (c < 0xff) {
            out[len - 1] = (char)(c + 1);
            return len;
        }
        len--;
    }
    out[0] = 0;
    return 1;
}

static int get_bytes(const cJSON *obj, const char *field, bool required, void **out, size_t *len) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!f) {
        if (required) return coord_seterr(COORD_EPROTO, "etcd: missing field %s", field);
        *out = calloc(1, 1);
        *len = 0;
        return *out ? 0 : coord_seterr(COORD_ENOMEM, "out of memory");
    }
    if (!cJSON_IsString(f))
        return coord_seterr(COORD_EPROTO, "etcd: field %s is not a string", field);
    return etcd_unb64(f->valuestring, out, len);
}

int etcd_parse_kv(const cJSON *kv, size_t strip, coord_kv *out) {
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(kv)) return coord_seterr(COORD_EPROTO, "etcd: kv is not an object");
    void *key = NULL;
    size_t klen = 0;
    int64_t create = 0;
    int rc = get_bytes(kv, "key", true, &key, &klen);
    if (rc) return rc;
    if (klen < strip || memchr(key, 0, klen)) {
        free(key);
        return coord_seterr(COORD_EPROTO, "etcd: unexpected key in answer");
    }
    if (strip) memmove(key, (char *)key + strip, klen - strip + 1);
    out->key = key;
    if ((rc = get_bytes(kv, "value", false, &out->value, &out->len)) ||
        (rc = etcd_get_i64(kv, "mod_revision", &out->version)) ||
        (rc = etcd_get_i64(kv, "create_revision", &create))) {
        coord_kv_clear(out);
        return rc;
    }
    if (out->version <= 0 || create <= 0) {
        coord_kv_clear(out);
        return coord_seterr(COORD_EPROTO, "etcd: kv without revisions");
    }
    out->order = create;
    out->token = (uint64_t)create;
    return 0;
}

int etcd_parse_body(const char *body, size_t len, cJSON **out) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    while (j && end && end < body + len && *end && strchr(" \t\r\n", *end))
        end++;
    if (!j || !cJSON_IsObject(j) || (end && end < body + len)) {
        cJSON_Delete(j);
        return coord_seterr(COORD_EPROTO, "etcd: answer is not a JSON object: \"%.*s\"",
                            (int)(len < 80 ? len : 80), len ? body : "");
    }
    *out = j;
    return 0;
}

int etcd_header_rev(const cJSON *resp, int64_t *rev) {
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(resp, "header");
    *rev = 0;
    if (!h) return 0;
    if (!cJSON_IsObject(h)) return coord_seterr(COORD_EPROTO, "etcd: header is not an object");
    return etcd_get_i64(h, "revision", rev);
}

int etcd_grpc_to_coord(int code) {
    switch (code) {
    case 0:
        return 0;
    case 3:  /* InvalidArgument */
    case 11: /* OutOfRange: compacted revision, bad range */
        return COORD_EINVAL;
    case 4: /* DeadlineExceeded */
        return COORD_ETIMEDOUT;
    case 5: /* NotFound: lease not found */
        return COORD_ENOTFOUND;
    case 6: /* AlreadyExists */
        return COORD_EEXISTS;
    case 7:  /* PermissionDenied */
    case 16: /* Unauthenticated */
        return COORD_EAUTH;
    case 8:  /* ResourceExhausted */
    case 10: /* Aborted */
    case 14: /* Unavailable: no leader, request timed out, stopping */
        return COORD_EUNAVAILABLE;
    case 12: /* Unimplemented */
        return COORD_ENOTSUP;
    default:
        return COORD_EBACKEND;
    }
}

static int http_to_coord(long status) {
    switch (status) {
    case 400:
        return COORD_EINVAL;
    case 401:
    case 403:
        return COORD_EAUTH;
    case 404:
        return COORD_ENOTFOUND;
    case 408:
    case 504:
        return COORD_ETIMEDOUT;
    case 409:
        return COORD_EEXISTS;
    case 429:
    case 502:
    case 503:
        return COORD_EUNAVAILABLE;
    default:
        return COORD_EBACKEND;
    }
}

static void copy_msg(char *msg, size_t cap, const char *s, size_t n) {
    if (!cap) return;
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) /* keep messages printable on one line */
        msg[i] = ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f) ? ' ' : s[i];
    msg[n] = 0;
}

int etcd_parse_error(long http_status, const char *body, size_t len, int *grpc_code, char *msg,
                     size_t cap) {
    *grpc_code = -1;
    char scratch[1];
    if (cap == 0) { /* callers that only want the code */
        msg = scratch;
        cap = sizeof scratch;
    }
    copy_msg(msg, cap, "", 0);
    cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    if (cJSON_IsObject(j)) {
        const cJSON *src = j;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (cJSON_IsObject(e)) src = e; /* stream error chunk */
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(src, "code");
        if (!cJSON_IsNumber(code)) code = cJSON_GetObjectItemCaseSensitive(src, "grpc_code");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(src, "message");
        if (!cJSON_IsString(m) && cJSON_IsString(e)) m = e;
        if (cJSON_IsNumber(code) && code->valuedouble >= 0 && code->valuedouble < 64)
            *grpc_code = (int)code->valuedouble;
        if (cJSON_IsString(m)) copy_msg(msg, cap, m->valuestring, strlen(m->valuestring));
    } else if (body && len) {
        copy_msg(msg, cap, body, len);
        /* Plain-text routing errors end with a newline. */
        size_t l = strlen(msg);
        while (l && msg[l - 1] == ' ')
            msg[--l] = 0;
    }
    cJSON_Delete(j);
    if (!msg[0] && cap)
        snprintf(msg, cap, "HTTP status %ld with %s body", http_status,
                 len ? "an unreadable" : "an empty");
    /* etcd answers a request without a token to a server with authentication enabled with
     * InvalidArgument "user name is empty" (rpctypes.ErrGRPCUserEmpty). */
    if (*grpc_code == 3 && strstr(msg, "user name is empty")) return COORD_EAUTH;
    if (*grpc_code > 0) return etcd_grpc_to_coord(*grpc_code);
    return http_status ? http_to_coord(http_status) : COORD_EPROTO;
}

void etcd_watch_msg_clear(etcd_watch_msg *m) {
    for (size_t i = 0; i < m->nevents; i++)
        free(m->events[i].key);
    free(m->events);
    memset(m, 0, sizeof *m);
}

static int parse_event(const cJSON *ev, etcd_event *out) {
    if (!cJSON_IsObject(ev))
        return coord_seterr(COORD_EPROTO, "etcd: watch event is not an object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
    if (type && !(cJSON_IsString(type) || cJSON_IsNumber(type)))
        return coord_seterr(COORD_EPROTO, "etcd: watch event type has the wrong JSON type");
    out->is_delete = type && ((cJSON_IsString(type) && !strcmp(type->valuestring, "DELETE")) ||
                              (cJSON_IsNumber(type) && type->valuedouble == 1));
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
    if (!cJSON_IsObject(kv)) return coord_seterr(COORD_EPROTO, "etcd: watch event without kv");
    void *key;
    int rc = get_bytes(kv, "key", true, &key, &out->keylen);
    if (rc) return rc;
    out->key = key;
    if ((rc = etcd_get_i64(kv, "mod_revision", &out->mod_revision)) ||
        (rc = etcd_get_i64(kv, "version", &out->version)))
        return rc;
    if (out->mod_revision <= 0)
        return coord_seterr(COORD_EPROTO, "etcd: watch event without mod_revision");
    return 0;
}

int etcd_parse_watch_line(const char *line, size_t len, etcd_watch_msg *m) {
    memset(m, 0, sizeof *m);
    cJSON *j;
    int rc = etcd_parse_body(line, len, &j);
    if (rc) return rc;
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (!res && err) {
        m->is_error = true;
        m->err = etcd_parse_error(0, line, len, &m->grpc_code, m->msg, sizeof m->msg);
        cJSON_Delete(j);
        return 0;
    }
    if (!cJSON_IsObject(res)) {
        cJSON_Delete(j);
        return coord_seterr(COORD_EPROTO, "etcd: watch line without result: \"%.*s\"",
                            (int)(len < 80 ? len : 80), line);
    }
    m->created = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created"));
    m->canceled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"));
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(res, "cancel_reason");
    if (cJSON_IsString(reason))
        copy_msg(m->msg, sizeof m->msg, reason->valuestring, strlen(reason->valuestring));
    if ((rc = etcd_get_i64(res, "watch_id", &m->watch_id)) ||
        (rc = etcd_get_i64(res, "compact_revision", &m->compact_revision)) ||
        (rc = etcd_header_rev(res, &m->header_revision)))
        goto fail;
    const cJSON *evs = cJSON_GetObjectItemCaseSensitive(res, "events");
    if (evs) {
        if (!cJSON_IsArray(evs)) {
            rc = coord_seterr(COORD_EPROTO, "etcd: watch events is not an array");
            goto fail;
        }
        int n = cJSON_GetArraySize(evs);
        if (n > 0) {
            m->events = calloc((size_t)n, sizeof *m->events);
            if (!m->events) {
                rc = coord_seterr(COORD_ENOMEM, "out of memory");
                goto fail;
            }
            const cJSON *ev;
            cJSON_ArrayForEach(ev, evs) {
                rc = parse_event(ev, &m->events[m->nevents]);
                if (m->events[m->nevents].key) m->nevents++;
                if (rc) goto fail;
            }
        }
    }
    cJSON_Delete(j);
    return 0;
fail:
    cJSON_Delete(j);
    etcd_watch_msg_clear(m);
    return rc;
}

int etcd_lines_feed(etcd_lines *lb, const char *data, size_t n, etcd_line_fn fn, void *ctx) {
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (lb->len + take > lb->max)
            return coord_seterr(COORD_EPROTO, "etcd: stream line longer than %zu bytes", lb->max);
        if (lb->len + take + 1 > lb->cap) {
            size_t cap = lb->cap ? lb->cap : 4096;
            while (cap < lb->len + take + 1)
                cap *= 2;
            char *b = realloc(lb->buf, cap);
            if (!b) return coord_seterr(COORD_ENOMEM, "out of memory");
            lb->buf = b;
            lb->cap = cap;
        }
        memcpy(lb->buf + lb->len, data, take);
        lb->len += take;
        lb->buf[lb->len] = 0;
        if (!nl) break;
        data += take + 1;
        n -= take + 1;
        size_t l = lb->len;
        lb->len = 0;
        /* Blank lines (and a stray "\r") occur between messages on some gateways. */
        while (l && (lb->buf[l - 1] == '\r' || lb->buf[l - 1] == ' '))
            l--;
        if (l == 0) continue;
        int rc = fn(ctx, lb->buf, l);
        if (rc) return rc;
    }
    return 0;
}

void etcd_lines_reset(etcd_lines *lb) {
    lb->len = 0;
}

void etcd_lines_free(etcd_lines *lb) {
    free(lb->buf);
    lb->buf = NULL;
    lb->len = lb->cap = 0;
}

/* ---------- transactions ---------- */

/* Whether ops[i] has a compare (and so a failure range): all but an unconditional put. */
static bool txn_compared(const coord_op *op) {
    return op->type != COORD_OP_PUT || op->version >= 0;
}

/* slot[i]: the failure range of ops[i] (SIZE_MAX without a compare); ops on one path share one.
 * Returns the number of ranges. */
static size_t txn_slots(const coord_op *ops, size_t n, size_t *slot) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        slot[i] = SIZE_MAX;
        if (!txn_compared(&ops[i])) continue;
        for (size_t j = 0; j < i && slot[i] == SIZE_MAX; j++)
            if (slot[j] != SIZE_MAX && strcmp(ops[j].path, ops[i].path) == 0) slot[i] = slot[j];
        if (slot[i] == SIZE_MAX) slot[i] = k++;
    }
    return k;
}

int etcd_txn_check(const coord_op *ops, size_t n) {
    if (!ops || n == 0 || n > COORD_TXN_MAX)
        return coord_seterr(COORD_EINVAL, "txn: %zu operations (1 to %d)", ops ? n : 0,
                            COORD_TXN_MAX);
    for (size_t i = 0; i < n; i++) {
        const coord_op *op = &ops[i];
        if (!op->path || op->path[0] != '/')
            return coord_seterr(COORD_EINVAL, "txn: operation %zu has no absolute path", i);
        bool ok;
        switch (op->type) {
        case COORD_OP_CHECK:
            ok = op->version >= 0;
            break;
        case COORD_OP_PUT:
            ok = op->version >= COORD_VERSION_ANY && (op->value || op->len == 0);
            break;
        case COORD_OP_DEL:
            ok = op->version >= COORD_VERSION_ANY;
            break;
        case COORD_OP_HELD:
            ok = op->token > 0 && op->token <= (uint64_t)INT64_MAX;
            break;
        default:
            return coord_seterr(COORD_EINVAL, "txn: operation %zu has unknown type %d", i,
                                op->type);
        }
        if (!ok)
            return coord_seterr(COORD_EINVAL, "txn: operation %zu on %s is malformed", i, op->path);
    }
    return 0;
}

/* Append the compare `target` `result` `v` on `path` to `cmps`. */
static bool txn_cmp(cJSON *cmps, const char *path, const char *result, const char *target,
                    const char *field, int64_t v) {
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddItemToArray(cmps, c)) {
        cJSON_Delete(c);
        return false;
    }
    return etcd_add_bytes(c, "key", path, strlen(path)) &&
           cJSON_AddStringToObject(c, "result", result) &&
           cJSON_AddStringToObject(c, "target", target) && etcd_add_i64(c, field, v);
}

/* Append {"<type>":{"key":path}} to `arr`; the inner object, NULL when out of memory. */
static cJSON *txn_req(cJSON *arr, const char *type, const char *path) {
    cJSON *op = cJSON_CreateObject();
    if (!op || !cJSON_AddItemToArray(arr, op)) {
        cJSON_Delete(op);
        return NULL;
    }
    cJSON *r = cJSON_AddObjectToObject(op, type);
    return r && etcd_add_bytes(r, "key", path, strlen(path)) ? r : NULL;
}

cJSON *etcd_txn_request(const coord_op *ops, size_t n) {
    size_t slot[COORD_TXN_MAX];
    if (n > COORD_TXN_MAX) return NULL;
    txn_slots(ops, n, slot);
    cJSON *req = cJSON_CreateObject();
    cJSON *cmps = cJSON_AddArrayToObject(req, "compare");
    cJSON *succ = cJSON_AddArrayToObject(req, "success");
    cJSON *fail = cJSON_AddArrayToObject(req, "failure");
    bool ok = cmps && succ && fail;
    size_t ranges = 0;
    for (size_t i = 0; ok && i < n; i++) {
        const coord_op *op = &ops[i];
        const char *p = op->path;
        switch (op->type) {
        case COORD_OP_CHECK:
            ok = op->version > 0 ? txn_cmp(cmps, p, "EQUAL", "MOD", "mod_revision", op->version)
                                 : txn_cmp(cmps, p, "EQUAL", "VERSION", "version", 0);
            break;
        case COORD_OP_HELD:
            ok = txn_cmp(cmps, p, "EQUAL", "CREATE", "create_revision", (int64_t)op->token);
            break;
        case COORD_OP_PUT:
        case COORD_OP_DEL:
            if (op->version > 0)
                ok = txn_cmp(cmps, p, "EQUAL", "MOD", "mod_revision", op->version);
            else if (op->version == 0)
                ok = txn_cmp(cmps, p, "EQUAL", "VERSION", "version", 0);
            /* A delete needs a value to delete (at version > 0 the MOD compare says so). */
            if (ok && op->type == COORD_OP_DEL && op->version <= 0)
                ok = txn_cmp(cmps, p, "GREATER", "VERSION", "version", 0);
            if (ok && op->type == COORD_OP_PUT) {
                cJSON *put = txn_req(succ, "request_put", p);
                ok = put && (op->len == 0 || etcd_add_bytes(put, "value", op->value, op->len));
            } else if (ok)
                ok = txn_req(succ, "request_delete_range", p) != NULL;
            break;
        default:
            ok = false;
        }
        if (ok && slot[i] == ranges) { /* the first op on this path: its range */
            cJSON *r = txn_req(fail, "request_range", p);
            ok = r && cJSON_AddBoolToObject(r, "keys_only", 1);
            ranges++;
        }
    }
    if (!ok) {
        cJSON_Delete(req);
        return NULL;
    }
    return req;
}

int etcd_txn_explain(const cJSON *res, const coord_op *ops, size_t n, size_t *failed, char *msg,
                     size_t cap) {
    size_t slot[COORD_TXN_MAX];
    if (n > COORD_TXN_MAX) return coord_seterr(COORD_EINVAL, "txn: %zu operations", n);
    txn_slots(ops, n, slot);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(res, "responses");
    for (size_t i = 0; i < n; i++) {
        if (slot[i] == SIZE_MAX) continue;
        const cJSON *rr = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rs, (int)slot[i]),
                                                           "response_range");
        const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(rr, "kvs");
        if (!cJSON_IsObject(rr) || (kvs && !cJSON_IsArray(kvs)))
            return coord_seterr(COORD_EPROTO, "etcd: failed txn answer without range %zu", slot[i]);
        const cJSON *kv = cJSON_GetArrayItem(kvs, 0);
        coord_kv cur = {0};
        if (kv) {
            int rc = etcd_parse_kv(kv, 0, &cur);
            if (rc) return rc;
            if (strcmp(cur.key, ops[i].path) != 0) {
                coord_kv_clear(&cur);
                return coord_seterr(COORD_EPROTO, "etcd: failed txn answer on another key");
            }
        }
        int64_t have = cur.version; /* 0 when absent */
        uint64_t create = cur.token;
        coord_kv_clear(&cur);
        const coord_op *op = &ops[i];
        bool bad = false;
        if (op->type == COORD_OP_HELD) {
            if ((bad = have == 0 || create != op->token))
                snprintf(msg, cap, "txn: lock entry %s is no longer held", op->path);
        } else if (have == 0 &&
                   (op->type == COORD_OP_DEL || (op->type == COORD_OP_PUT && op->version > 0))) {
            bad = true;
            snprintf(msg, cap, "txn: %s has no value", op->path);
        } else if (op->version >= 0 && have != op->version) {
            bad = true;
            snprintf(msg, cap, "txn: check of %s failed: version %lld, expected %lld", op->path,
                     (long long)have, (long long)op->version);
        }
        if (bad) {
            *failed = i;
            return 0;
        }
    }
    *failed = n;
    snprintf(msg, cap, "txn: a condition failed");
    return 0;
}
