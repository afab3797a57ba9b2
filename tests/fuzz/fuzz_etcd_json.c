/*
 * libFuzzer target: the etcd JSON gateway decoders (backends/etcd/etcd_codec.h). The input is a
 * response body, handed over without a terminating NUL and right before an unmapped page, as
 * the HTTP layer does (any read past `len`, even inside cJSON, faults). It goes through
 *   - etcd_parse_body: an object or COORD_EPROTO;
 *   - etcd_parse_error under several HTTP statuses and message capacities: the message stays
 *     within its capacity, NUL-terminated and free of control characters, the gRPC code is -1 or
 *     0..63 and the result is an error derived from it or from the status;
 *   - etcd_parse_watch_line: a message whose events all have a key and a positive mod_revision,
 *     cleared to zero by etcd_watch_msg_clear;
 *   - on every object of the parsed body: etcd_header_rev, etcd_parse_kv (with several strip
 *     lengths; a decoded kv has positive revisions, a NUL-terminated key and value), and
 *     etcd_get_i64 on each field (a value read back through etcd_add_i64 is the same);
 *   - on every string of the body: etcd_unb64, whose output re-encodes (etcd_b64) and decodes
 *     to the same bytes, never longer than the input allows;
 *   - on the raw bytes: etcd_unb64 as above, etcd_b64/etcd_unb64 round trip, etcd_prefix_end.
 */
#include <stdbool.h>

#include "fuzz_common.h"

#include "etcd_codec.h"

static void check_b64_roundtrip(const void *data, size_t len) {
    char *b = etcd_b64(data, len);
    FUZZ_CHECK(b != NULL);
    FUZZ_CHECK(strlen(b) == 4 * ((len + 2) / 3));
    void *back = NULL;
    size_t blen = 0;
    FUZZ_CHECK(etcd_unb64(b, &back, &blen) == 0);
    FUZZ_CHECK(blen == len && (len == 0 || memcmp(back, data, len) == 0));
    FUZZ_CHECK(((const char *)back)[blen] == 0);
    free(back);
    free(b);
}

static void check_unb64(const char *s) {
    void *out = NULL;
    size_t len = 0;
    int rc = etcd_unb64(s, &out, &len);
    FUZZ_CHECK(rc == 0 || rc == COORD_EPROTO);
    if (rc) {
        FUZZ_CHECK(out == NULL);
        return;
    }
    size_t n = strlen(s);
    FUZZ_CHECK(n % 4 == 0);
    FUZZ_CHECK(len <= n / 4 * 3 && len + 2 >= n / 4 * 3); /* padding stands for 0 to 2 bytes */
    FUZZ_CHECK(((const char *)out)[len] == 0);
    check_b64_roundtrip(out, len);
    free(out);
}

static void check_kv(const cJSON *obj, size_t strip) {
    coord_kv kv;
    int rc = etcd_parse_kv(obj, strip, &kv);
    FUZZ_CHECK(rc == 0 || rc == COORD_EPROTO);
    if (rc) return;
    FUZZ_CHECK(kv.key != NULL && kv.value != NULL);
    FUZZ_CHECK(kv.version > 0 && kv.order > 0 && kv.token == (uint64_t)kv.order);
    FUZZ_CHECK(((const char *)kv.value)[kv.len] == 0);
    /* The key is the decoded key minus `strip` bytes. */
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(obj, "key");
    FUZZ_CHECK(cJSON_IsString(k));
    void *full = NULL;
    size_t flen = 0;
    FUZZ_CHECK(etcd_unb64(k->valuestring, &full, &flen) == 0);
    FUZZ_CHECK(flen >= strip && strlen(kv.key) == flen - strip);
    FUZZ_CHECK(memcmp(kv.key, (char *)full + strip, flen - strip) == 0);
    free(full);
    coord_kv_clear(&kv);
}

static void check_i64(const cJSON *obj, const char *field) {
    int64_t v = 42;
    int rc = etcd_get_i64(obj, field, &v);
    FUZZ_CHECK(rc == 0 || rc == COORD_EPROTO);
    if (rc) return;
    cJSON *o = cJSON_CreateObject();
    FUZZ_CHECK(o != NULL);
    FUZZ_CHECK(etcd_add_i64(o, "f", v) != NULL);
    int64_t w = 0;
    FUZZ_CHECK(etcd_get_i64(o, "f", &w) == 0 && w == v);
    cJSON_Delete(o);
}

/* Every object and string of the tree. */
static void walk(const cJSON *node, size_t strip) {
    if (cJSON_IsString(node)) check_unb64(node->valuestring);
    if (cJSON_IsObject(node)) {
        int64_t rev = 42;
        int rc = etcd_header_rev(node, &rev);
        FUZZ_CHECK(rc == 0 || rc == COORD_EPROTO);
        check_kv(node, 0);
        if (strip) check_kv(node, strip);
        const cJSON *c;
        cJSON_ArrayForEach(c, node) {
            if (c->string) check_i64(node, c->string);
        }
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, node) {
        walk(c, strip);
    }
}

static void check_error(const char *body, size_t len, long status, size_t cap) {
    /* exactly `cap` bytes, so writing past them is an AddressSanitizer report */
    char *msg = malloc(cap ? cap : 1);
    FUZZ_CHECK(msg != NULL);
    if (!cap) msg[0] = 'x';
    int grpc = 1000;
    int rc = etcd_parse_error(status, body, len, &grpc, msg, cap);
    FUZZ_CHECK(rc < 0 && rc >= COORD_ECANCELED);
    FUZZ_CHECK(grpc >= -1 && grpc < 64);
    if (!cap) {
        FUZZ_CHECK(msg[0] == 'x'); /* untouched */
    } else {
        size_t ml = strnlen(msg, cap);
        FUZZ_CHECK(ml < cap);
        for (size_t i = 0; i < ml; i++)
            FUZZ_CHECK((unsigned char)msg[i] >= 0x20 && (unsigned char)msg[i] != 0x7f);
        if (cap > 1) FUZZ_CHECK(ml > 0); /* never an empty message */
    }
    if (grpc > 0 && rc != COORD_EAUTH) FUZZ_CHECK(rc == etcd_grpc_to_coord(grpc));
    if (grpc <= 0 && status == 0) FUZZ_CHECK(rc == COORD_EPROTO);
    free(msg);
}

static void check_watch_line(const char *line, size_t len) {
    etcd_watch_msg m;
    int rc = etcd_parse_watch_line(line, len, &m);
    FUZZ_CHECK(rc == 0 || rc == COORD_EPROTO);
    if (rc) {
        FUZZ_CHECK(m.events == NULL && m.nevents == 0);
        return;
    }
    if (m.is_error) {
        FUZZ_CHECK(m.err < 0 && m.nevents == 0);
        FUZZ_CHECK(memchr(m.msg, 0, sizeof m.msg) != NULL);
    }
    FUZZ_CHECK(m.nevents == 0 || m.events != NULL);
    for (size_t i = 0; i < m.nevents; i++) {
        FUZZ_CHECK(m.events[i].key != NULL);
        FUZZ_CHECK(m.events[i].key[m.events[i].keylen] == 0);
        FUZZ_CHECK(m.events[i].mod_revision > 0);
    }
    etcd_watch_msg_clear(&m);
    FUZZ_CHECK(m.events == NULL && m.nevents == 0 && !m.is_error && !m.created);
}

static void check_prefix_end(const uint8_t *p, size_t len) {
    char *out = malloc(len ? len : 1);
    FUZZ_CHECK(out != NULL);
    size_t r = etcd_prefix_end((const char *)p, len, out);
    size_t keep = len;
    while (keep && p[keep - 1] == 0xff)
        keep--;
    if (keep == 0) {
        FUZZ_CHECK(r == 1 && out[0] == 0); /* all keys */
    } else {
        FUZZ_CHECK(r == keep);
        FUZZ_CHECK(memcmp(out, p, keep - 1) == 0);
        FUZZ_CHECK((unsigned char)out[keep - 1] == p[keep - 1] + 1);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = fuzz_guarded(data, size, 0);
    if (!body) return 0;

    cJSON *j = (cJSON *)(uintptr_t)1;
    int rc = etcd_parse_body(body, size, &j);
    FUZZ_CHECK(rc == 0 || rc == COORD_EPROTO);
    if (rc == 0) {
        FUZZ_CHECK(cJSON_IsObject(j));
        walk(j, size % 5);
        cJSON_Delete(j);
    } else {
        FUZZ_CHECK(j == (cJSON *)(uintptr_t)1);
    }

    static const long statuses[] = {0, 200, 400, 401, 404, 429, 500, 503, 504};
    static const size_t caps[] = {0, 1, 7, 256};
    check_error(body, size, statuses[size % 9], caps[size % 4]);
    check_error(body, size, 0, 256);
    check_watch_line(body, size);

    /* the raw bytes as a base64 field (up to a NUL), and as data to encode */
    char *s = malloc(size + 1);
    FUZZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = 0;
    check_unb64(s);
    free(s);
    check_b64_roundtrip(data, size);
    check_prefix_end(data, size);
    return 0;
}
