/* Unit tests for backends/etcd/etcd_codec.h: the etcd v3 JSON gateway codec (pure, no server). */
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_codec.h"

/* ---------- helpers ---------- */

static cJSON *json(const char *text) {
    cJSON *j = cJSON_Parse(text);
    if (!j) fail_msg("test JSON does not parse: %s", text);
    return j;
}

/* etcd_get_i64 on the field "f" of the object `text`. */
static int get_i64(const char *text, int64_t *out) {
    cJSON *j = json(text);
    int rc = etcd_get_i64(j, "f", out);
    cJSON_Delete(j);
    return rc;
}

static void unb64_bad(const char *s) {
    void *out = NULL;
    size_t len = 12345;
    int rc = etcd_unb64(s, &out, &len);
    if (rc != COORD_EPROTO) {
        if (rc == 0) free(out);
        fail_msg("etcd_unb64(\"%s\") = %d, expected COORD_EPROTO", s, rc);
    }
    assert_null(out);
}

/* ---------- base64 ---------- */

static void test_b64_vectors(void **state) {
    (void)state;
    /* RFC 4648 section 10: every padding variant. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        char *b = etcd_b64(plain[i], strlen(plain[i]));
        assert_non_null(b);
        assert_string_equal(b, enc[i]);
        free(b);
        void *out = NULL;
        size_t len = 999;
        assert_int_equal(etcd_unb64(enc[i], &out, &len), 0);
        assert_non_null(out);
        assert_int_equal(len, strlen(plain[i]));
        assert_memory_equal(out, plain[i], len);
        assert_int_equal(((char *)out)[len], 0); /* NUL-terminated for convenience */
        free(out);
    }
}

static void test_b64_all_bytes(void **state) {
    (void)state;
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    /* Every length from 0 to 256 over all byte values (NULs and 0xff included). */
    for (size_t n = 0; n <= sizeof all; n++) {
        char *b = etcd_b64(all, n);
        assert_non_null(b);
        assert_int_equal(strlen(b), 4 * ((n + 2) / 3));
        void *out = NULL;
        size_t len = 0;
        assert_int_equal(etcd_unb64(b, &out, &len), 0);
        assert_int_equal(len, n);
        if (n) assert_memory_equal(out, all, n);
        free(out);
        free(b);
    }
    /* Reversed order, and a buffer of only NUL bytes. */
    unsigned char rev[256], zeros[7] = {0};
    for (int i = 0; i < 256; i++)
        rev[i] = (unsigned char)(255 - i);
    const unsigned char *bufs[] = {rev, zeros};
    size_t lens[] = {sizeof rev, sizeof zeros};
    for (size_t k = 0; k < 2; k++) {
        char *b = etcd_b64(bufs[k], lens[k]);
        assert_non_null(b);
        void *out = NULL;
        size_t len = 0;
        assert_int_equal(etcd_unb64(b, &out, &len), 0);
        assert_int_equal(len, lens[k]);
        assert_memory_equal(out, bufs[k], lens[k]);
        free(out);
        free(b);
    }
    char *b = etcd_b64(zeros, 7);
    assert_string_equal(b, "AAAAAAAAAA==");
    free(b);
    b = etcd_b64("\xff\xff\xff", 3);
    assert_string_equal(b, "////");
    free(b);
    b = etcd_b64("\xfb\xff", 2);
    assert_string_equal(b, "+/8=");
    free(b);
}

static void test_b64_malformed(void **state) {
    (void)state;
    /* Bad length. */
    unb64_bad("Z");
    unb64_bad("Zm");
    unb64_bad("Zm9");
    unb64_bad("Zm9vY");
    unb64_bad("Zg=");
    unb64_bad("Zg");
    /* Bad characters (URL-safe alphabet, spaces, controls, non-ASCII). */
    unb64_bad("Zm9-");
    unb64_bad("Zm9_");
    unb64_bad("Zm!v");
    unb64_bad("Zm 9");
    unb64_bad("Zm\n9");
    unb64_bad("Zm9\xc3");
    unb64_bad("****");
    /* '=' in the middle or too much padding. */
    unb64_bad("Zm=v");
    unb64_bad("=m9v");
    unb64_bad("Zg==Zg==");
    unb64_bad("Z===");
    unb64_bad("====");
    unb64_bad("Zm9vY=E=");
    /* Whitespace or a run of '-' around the data: OpenSSL's EVP_DecodeBlock skips them (PEM
     * leniency) and decoded "foo" from each of these (found by tests/fuzz/fuzz_etcd_json). */
    unb64_bad("Zm9v    ");
    unb64_bad("    Zm9v");
    unb64_bad("Zm9v\n\n\n\n");
    unb64_bad("Zm9v\r\r\r\r");
    unb64_bad("Zm9v\t\t\t\t");
    unb64_bad("Zm9v----");
    unb64_bad("AAAA----");
    unb64_bad(" Zg=");
}

/* ---------- int64 fields ---------- */

static void test_get_i64(void **state) {
    (void)state;
    int64_t v = -1;
    assert_int_equal(get_i64("{\"f\":\"9223372036854775807\"}", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(get_i64("{\"f\":\"-9223372036854775808\"}", &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(get_i64("{\"f\":\"-5\"}", &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(get_i64("{\"f\":\"0\"}", &v), 0);
    assert_int_equal(v, 0);
    /* A lease ID that a double would round (nearest double: 7587862083327711232). */
    assert_int_equal(get_i64("{\"ID\":\"1\",\"f\":\"7587862083327711234\"}", &v), 0);
    assert_true(v == 7587862083327711234LL);
    /* Absent field: 0 (protobuf omits zero values). */
    v = 77;
    assert_int_equal(get_i64("{\"g\":\"5\"}", &v), 0);
    assert_int_equal(v, 0);
    v = 77;
    assert_int_equal(get_i64("{}", &v), 0);
    assert_int_equal(v, 0);
    /* Field names are case-sensitive. */
    v = 77;
    assert_int_equal(get_i64("{\"F\":\"5\"}", &v), 0);
    assert_int_equal(v, 0);
    /* JSON numbers (input side of etcd, older gateways). */
    assert_int_equal(get_i64("{\"f\":42}", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(get_i64("{\"f\":-42}", &v), 0);
    assert_int_equal(v, -42);
    assert_int_equal(get_i64("{\"f\":9007199254740991}", &v), 0);
    assert_true(v == 9007199254740991LL);
}

static void test_get_i64_malformed(void **state) {
    (void)state;
    static const char *const bad[] = {
        "{\"f\":1e300}",
        "{\"f\":-1e300}",
        "{\"f\":4.5}",
        "{\"f\":9007199254740993}",
        "{\"f\":7587862083327711234}", /* a lease ID as a double: not exact */
        "{\"f\":\"12x\"}",
        "{\"f\":\"\"}",
        "{\"f\":\"-\"}",
        "{\"f\":\" 5\"}",
        "{\"f\":\"5 \"}",
        "{\"f\":\"+5\"}",
        "{\"f\":\"0x10\"}",
        "{\"f\":\"1.5\"}",
        "{\"f\":\"9223372036854775808\"}",
        "{\"f\":\"-9223372036854775809\"}",
        "{\"f\":\"99999999999999999999999\"}",
        "{\"f\":true}",
        "{\"f\":false}",
        "{\"f\":{}}",
        "{\"f\":[1]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t v = 77;
        int rc = get_i64(bad[i], &v);
        if (rc != COORD_EPROTO)
            fail_msg("etcd_get_i64(%s) = %d, expected COORD_EPROTO", bad[i], rc);
    }
}

static void test_add_i64(void **state) {
    (void)state;
    static const int64_t vals[] = {0, 1, -5, 42, 7587862083327711234LL, INT64_MAX, INT64_MIN};
    static const char *const strs[] = {
        "0", "1", "-5", "42", "7587862083327711234", "9223372036854775807", "-9223372036854775808"};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        cJSON *o = cJSON_CreateObject();
        assert_non_null(o);
        cJSON *f = etcd_add_i64(o, "ID", vals[i]);
        assert_non_null(f);
        assert_true(cJSON_IsString(f));
        assert_string_equal(f->valuestring, strs[i]);
        char *txt = cJSON_PrintUnformatted(o);
        assert_non_null(txt);
        char want[64];
        snprintf(want, sizeof want, "{\"ID\":\"%s\"}", strs[i]);
        assert_string_equal(txt, want);
        free(txt);
        int64_t back = 1;
        assert_int_equal(etcd_get_i64(o, "ID", &back), 0);
        assert_true(back == vals[i]);
        cJSON_Delete(o);
    }
}

static void test_add_bytes(void **state) {
    (void)state;
    cJSON *o = cJSON_CreateObject();
    assert_non_null(etcd_add_bytes(o, "key", "/app/x", 6));
    assert_non_null(etcd_add_bytes(o, "value", "", 0));
    assert_non_null(etcd_add_bytes(o, "bin", "a\0b", 3));
    char *txt = cJSON_PrintUnformatted(o);
    assert_string_equal(txt, "{\"key\":\"L2FwcC94\",\"value\":\"\",\"bin\":\"YQBi\"}");
    free(txt);
    cJSON_Delete(o);
}

/* ---------- prefix range end ---------- */

static void test_prefix_end(void **state) {
    (void)state;
    char out[16];
    memset(out, '?', sizeof out);
    assert_int_equal(etcd_prefix_end("a/", 2, out), 2);
    assert_memory_equal(out, "a0", 2);

    memset(out, '?', sizeof out);
    assert_int_equal(etcd_prefix_end("a\xff", 2, out), 1);
    assert_memory_equal(out, "b", 1);

    memset(out, '?', sizeof out);
    assert_int_equal(etcd_prefix_end("\xff\xff", 2, out), 1);
    assert_int_equal(out[0], 0);

    memset(out, '?', sizeof out);
    assert_int_equal(etcd_prefix_end("ab\xff\xff", 4, out), 2);
    assert_memory_equal(out, "ac", 2);

    memset(out, '?', sizeof out);
    assert_int_equal(etcd_prefix_end("/coord/lock/", 12, out), 12);
    assert_memory_equal(out, "/coord/lock0", 12);

    /* Embedded NUL and 0xfe. */
    memset(out, '?', sizeof out);
    assert_int_equal(etcd_prefix_end("a\0", 2, out), 2);
    assert_memory_equal(out, "a\x01", 2);
    memset(out, '?', sizeof out);
    assert_int_equal(etcd_prefix_end("\xfe", 1, out), 1);
    assert_int_equal((unsigned char)out[0], 0xff);
}

/* ---------- KeyValue ---------- */

static int parse_kv(const char *text, size_t strip, coord_kv *kv) {
    cJSON *j = json(text);
    int rc = etcd_parse_kv(j, strip, kv);
    cJSON_Delete(j);
    return rc;
}

static void test_parse_kv(void **state) {
    (void)state;
    coord_kv kv;
    /* key "/a/k", value "v". */
    const char *full = "{\"key\":\"L2Evaw==\",\"create_revision\":\"3\",\"mod_revision\":\"5\","
                       "\"version\":\"2\",\"value\":\"dg==\",\"lease\":\"7587862083327711234\"}";
    assert_int_equal(parse_kv(full, 0, &kv), 0);
    assert_string_equal(kv.key, "/a/k");
    assert_int_equal(kv.len, 1);
    assert_memory_equal(kv.value, "v", 1);
    assert_int_equal(kv.version, 5);
    assert_int_equal(kv.order, 3);
    assert_int_equal(kv.token, 3);
    coord_kv_clear(&kv);
    assert_null(kv.key);

    /* Strip the "/a/" prefix. */
    assert_int_equal(parse_kv(full, 3, &kv), 0);
    assert_string_equal(kv.key, "k");
    coord_kv_clear(&kv);
    /* Strip everything. */
    assert_int_equal(parse_kv(full, 4, &kv), 0);
    assert_string_equal(kv.key, "");
    coord_kv_clear(&kv);
    /* Strip more than the key. */
    assert_int_equal(parse_kv(full, 5, &kv), COORD_EPROTO);
    assert_null(kv.key);
    assert_null(kv.value);

    /* Omitted value: empty, but a valid buffer. */
    assert_int_equal(
        parse_kv("{\"key\":\"L2Evaw==\",\"create_revision\":\"3\",\"mod_revision\":\"4\"}", 0, &kv),
        0);
    assert_string_equal(kv.key, "/a/k");
    assert_int_equal(kv.len, 0);
    assert_non_null(kv.value);
    assert_int_equal(kv.version, 4);
    coord_kv_clear(&kv);

    /* Binary value with NULs. */
    assert_int_equal(parse_kv("{\"key\":\"L2Evaw==\",\"create_revision\":\"3\","
                              "\"mod_revision\":\"4\",\"value\":\"YQBi\"}",
                              0, &kv),
                     0);
    assert_int_equal(kv.len, 3);
    assert_memory_equal(kv.value, "a\0b", 3);
    coord_kv_clear(&kv);

    /* Revisions as JSON numbers are accepted. */
    assert_int_equal(
        parse_kv("{\"key\":\"L2Evaw==\",\"create_revision\":7,\"mod_revision\":9}", 0, &kv), 0);
    assert_int_equal(kv.version, 9);
    assert_int_equal(kv.order, 7);
    coord_kv_clear(&kv);
}

static void test_parse_kv_malformed(void **state) {
    (void)state;
    static const char *const bad[] = {
        /* missing key */
        "{\"create_revision\":\"3\",\"mod_revision\":\"5\",\"value\":\"dg==\"}",
        /* omitted revisions (both, either) */
        "{\"key\":\"L2Evaw==\",\"value\":\"dg==\"}",
        "{\"key\":\"L2Evaw==\",\"mod_revision\":\"5\"}",
        "{\"key\":\"L2Evaw==\",\"create_revision\":\"3\"}",
        "{\"key\":\"L2Evaw==\",\"create_revision\":\"-3\",\"mod_revision\":\"5\"}",
        /* malformed fields */
        "{\"key\":\"L2Evaw=\",\"create_revision\":\"3\",\"mod_revision\":\"5\"}",
        /* base64 with trailing blanks or '-' (decoded "/a/" and "val" before the fix) */
        "{\"key\":\"L2Ev    \",\"create_revision\":\"3\",\"mod_revision\":\"5\"}",
        "{\"key\":\"Zm9v\",\"create_revision\":3,\"mod_revision\":5,\"value\":\"dmFs----\"}",
        "{\"key\":5,\"create_revision\":\"3\",\"mod_revision\":\"5\"}",
        "{\"key\":\"L2Evaw==\",\"create_revision\":\"3\",\"mod_revision\":\"5\",\"value\":\"d\"}",
        "{\"key\":\"L2Evaw==\",\"create_revision\":\"3\",\"mod_revision\":\"5\",\"value\":1}",
        "{\"key\":\"L2Evaw==\",\"create_revision\":\"3x\",\"mod_revision\":\"5\"}",
        "{\"key\":\"L2Evaw==\",\"create_revision\":\"3\",\"mod_revision\":true}",
        /* a key with a NUL byte ("a\0b") cannot be a C string */
        "{\"key\":\"YQBi\",\"create_revision\":\"3\",\"mod_revision\":\"5\"}",
        /* not an object */
        "[]",
        "\"L2Evaw==\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        coord_kv kv;
        memset(&kv, 0x5a, sizeof kv);
        int rc = parse_kv(bad[i], 0, &kv);
        if (rc != COORD_EPROTO) {
            if (rc == 0) coord_kv_clear(&kv);
            fail_msg("etcd_parse_kv(%s) = %d, expected COORD_EPROTO", bad[i], rc);
        }
        /* Nothing half-owned is left behind. */
        assert_null(kv.key);
        assert_null(kv.value);
    }
}

/* ---------- error bodies ---------- */

static int parse_error(long status, const char *body, int *grpc, char *msg, size_t cap) {
    return etcd_parse_error(status, body, body ? strlen(body) : 0, grpc, msg, cap);
}

static void test_error_v1_body(void **state) {
    (void)state;
    int grpc = 0;
    char msg[256];
    int rc = parse_error(400,
                         "{\"error\":\"etcdserver: authentication is not enabled\",\"code\":9,"
                         "\"message\":\"etcdserver: authentication is not enabled\"}",
                         &grpc, msg, sizeof msg);
    assert_int_equal(grpc, 9); /* FailedPrecondition */
    assert_string_equal(msg, "etcdserver: authentication is not enabled");
    /* Derived from the gRPC code, which the table maps to a generic backend failure. */
    assert_int_equal(rc, etcd_grpc_to_coord(9));
    assert_int_equal(rc, COORD_EBACKEND);

    /* v1 body with only "error" as text. */
    rc = parse_error(500, "{\"error\":\"boom\",\"code\":2}", &grpc, msg, sizeof msg);
    assert_int_equal(grpc, 2);
    assert_string_equal(msg, "boom");
    assert_int_equal(rc, COORD_EBACKEND);

    /* Lease not found: NotFound (5) on 404. */
    rc = parse_error(404,
                     "{\"error\":\"etcdserver: requested lease not found\",\"code\":5,"
                     "\"message\":\"etcdserver: requested lease not found\"}",
                     &grpc, msg, sizeof msg);
    assert_int_equal(grpc, 5);
    assert_int_equal(rc, COORD_ENOTFOUND);
}

static void test_error_v2_body(void **state) {
    (void)state;
    int grpc = 0;
    char msg[256];
    int rc = parse_error(401, "{\"code\":16,\"message\":\"etcdserver: invalid auth token\"}", &grpc,
                         msg, sizeof msg);
    assert_int_equal(rc, COORD_EAUTH);
    assert_int_equal(grpc, 16);
    assert_string_equal(msg, "etcdserver: invalid auth token");

    rc = parse_error(503, "{\"code\":14,\"message\":\"etcdserver: no leader\"}", &grpc, msg,
                     sizeof msg);
    assert_int_equal(rc, COORD_EUNAVAILABLE);
    assert_int_equal(grpc, 14);
    assert_string_equal(msg, "etcdserver: no leader");

    /* With details (ignored). */
    rc = parse_error(400,
                     "{\"code\":11,\"message\":\"etcdserver: mvcc: required revision has been "
                     "compacted\",\"details\":[]}",
                     &grpc, msg, sizeof msg);
    assert_int_equal(rc, COORD_EINVAL);
    assert_int_equal(grpc, 11);
    assert_string_equal(msg, "etcdserver: mvcc: required revision has been compacted");

    /* A JSON body without a code: the HTTP status decides. */
    rc = parse_error(503, "{\"message\":\"overloaded\"}", &grpc, msg, sizeof msg);
    assert_int_equal(rc, COORD_EUNAVAILABLE);
    assert_int_equal(grpc, -1);
    assert_string_equal(msg, "overloaded");
}

static void test_error_plain_and_empty(void **state) {
    (void)state;
    int grpc = 0;
    char msg[256];
    int rc = parse_error(404, "404 page not found\n", &grpc, msg, sizeof msg);
    assert_int_equal(rc, COORD_ENOTFOUND);
    assert_int_equal(grpc, -1);
    assert_string_equal(msg, "404 page not found");

    rc = parse_error(405, "Method Not Allowed\r\n", &grpc, msg, sizeof msg);
    assert_int_equal(rc, COORD_EBACKEND);
    assert_string_equal(msg, "Method Not Allowed");

    /* Empty body. */
    grpc = 0;
    rc = parse_error(500, "", &grpc, msg, sizeof msg);
    assert_int_equal(rc, COORD_EBACKEND);
    assert_int_equal(grpc, -1);
    assert_non_null(strstr(msg, "empty"));
    assert_non_null(strstr(msg, "500"));
    rc = parse_error(500, NULL, &grpc, msg, sizeof msg);
    assert_int_equal(rc, COORD_EBACKEND);
    assert_non_null(strstr(msg, "empty"));

    /* HTTP status mapping without a body. */
    static const long status[] = {400, 401, 403, 404, 408, 409, 429, 502, 503, 504, 500, 418};
    static const int want[] = {COORD_EINVAL,       COORD_EAUTH,        COORD_EAUTH,
                               COORD_ENOTFOUND,    COORD_ETIMEDOUT,    COORD_EEXISTS,
                               COORD_EUNAVAILABLE, COORD_EUNAVAILABLE, COORD_EUNAVAILABLE,
                               COORD_ETIMEDOUT,    COORD_EBACKEND,     COORD_EBACKEND};
    for (size_t i = 0; i < sizeof status / sizeof *status; i++) {
        assert_int_equal(parse_error(status[i], "", &grpc, msg, sizeof msg), want[i]);
        assert_true(msg[0] != 0);
    }

    /* Control characters in a message are made printable. */
    rc = parse_error(502, "bad\tgateway\x01!", &grpc, msg, sizeof msg);
    assert_int_equal(rc, COORD_EUNAVAILABLE);
    assert_string_equal(msg, "bad gateway !");
}

static void test_error_truncation(void **state) {
    (void)state;
    int grpc = 0;
    char msg[8];
    memset(msg, 'Z', sizeof msg);
    int rc = parse_error(401, "{\"code\":16,\"message\":\"etcdserver: invalid auth token\"}", &grpc,
                         msg, sizeof msg);
    assert_int_equal(rc, COORD_EAUTH);
    assert_string_equal(msg, "etcdser");
    char one[1] = {'Z'};
    rc = parse_error(404, "404 page not found\n", &grpc, one, sizeof one);
    assert_int_equal(rc, COORD_ENOTFOUND);
    assert_int_equal(one[0], 0);
}

static void test_error_stream_chunks(void **state) {
    (void)state;
    int grpc = 0;
    char msg[256];
    /* v1 gateway stream error. */
    int rc = parse_error(0,
                         "{\"error\":{\"grpc_code\":11,\"http_code\":400,\"message\":\"etcdserver: "
                         "mvcc: required revision has been compacted\",\"http_status\":\"Bad "
                         "Request\"}}",
                         &grpc, msg, sizeof msg);
    assert_int_equal(grpc, 11);
    assert_int_equal(rc, COORD_EINVAL);
    assert_string_equal(msg, "etcdserver: mvcc: required revision has been compacted");

    /* v2 gateway stream error. */
    rc = parse_error(0, "{\"error\":{\"code\":14,\"message\":\"x\"}}", &grpc, msg, sizeof msg);
    assert_int_equal(grpc, 14);
    assert_int_equal(rc, COORD_EUNAVAILABLE);
    assert_string_equal(msg, "x");

    /* v2 with details. */
    rc = parse_error(0, "{\"error\":{\"code\":16,\"message\":\"y\",\"details\":[]}}", &grpc, msg,
                     sizeof msg);
    assert_int_equal(grpc, 16);
    assert_int_equal(rc, COORD_EAUTH);

    /* Neither a code nor an HTTP status: a protocol error. */
    rc = parse_error(0, "{\"error\":{\"message\":\"z\"}}", &grpc, msg, sizeof msg);
    assert_int_equal(grpc, -1);
    assert_int_equal(rc, COORD_EPROTO);
    assert_string_equal(msg, "z");
    rc = parse_error(0, "garbage", &grpc, msg, sizeof msg);
    assert_int_equal(rc, COORD_EPROTO);
}

static void test_grpc_to_coord(void **state) {
    (void)state;
    assert_int_equal(etcd_grpc_to_coord(0), 0);
    assert_int_equal(etcd_grpc_to_coord(3), COORD_EINVAL);
    assert_int_equal(etcd_grpc_to_coord(4), COORD_ETIMEDOUT);
    assert_int_equal(etcd_grpc_to_coord(5), COORD_ENOTFOUND);
    assert_int_equal(etcd_grpc_to_coord(6), COORD_EEXISTS);
    assert_int_equal(etcd_grpc_to_coord(7), COORD_EAUTH);
    assert_int_equal(etcd_grpc_to_coord(11), COORD_EINVAL);
    assert_int_equal(etcd_grpc_to_coord(12), COORD_ENOTSUP);
    assert_int_equal(etcd_grpc_to_coord(14), COORD_EUNAVAILABLE);
    assert_int_equal(etcd_grpc_to_coord(16), COORD_EAUTH);
    assert_int_equal(etcd_grpc_to_coord(2), COORD_EBACKEND);
    assert_int_equal(etcd_grpc_to_coord(13), COORD_EBACKEND);
}

/* ---------- bodies and headers ---------- */

static void test_parse_body(void **state) {
    (void)state;
    cJSON *j = NULL;
    const char *ok = "{\"header\":{\"revision\":\"17\"},\"kvs\":[]}";
    assert_int_equal(etcd_parse_body(ok, strlen(ok), &j), 0);
    assert_non_null(j);
    int64_t rev = 0;
    assert_int_equal(etcd_header_rev(j, &rev), 0);
    assert_int_equal(rev, 17);
    cJSON_Delete(j);

    j = NULL;
    assert_int_equal(etcd_parse_body("[]", 2, &j), COORD_EPROTO);
    assert_null(j);
    assert_int_equal(etcd_parse_body("", 0, &j), COORD_EPROTO);
    assert_int_equal(etcd_parse_body("{\"a\":", 5, &j), COORD_EPROTO);
    assert_int_equal(etcd_parse_body("42", 2, &j), COORD_EPROTO);
    assert_null(j);

    /* Header absent: revision 0; header not an object: EPROTO. */
    j = json("{}");
    rev = 5;
    assert_int_equal(etcd_header_rev(j, &rev), 0);
    assert_int_equal(rev, 0);
    cJSON_Delete(j);
    j = json("{\"header\":5}");
    assert_int_equal(etcd_header_rev(j, &rev), COORD_EPROTO);
    cJSON_Delete(j);
}

static void test_parse_body_respects_len(void **state) {
    (void)state;
    /* The body is (pointer, length): bytes after `len` are not part of it. */
    cJSON *j = NULL;
    const char *buf = "nopeSECRET-BYTES-AFTER-THE-BODY";
    assert_int_equal(etcd_parse_body(buf, 4, &j), COORD_EPROTO);
    assert_null(j);
    /* Regression (fixed): backends/etcd/etcd_codec.c:146-147 the detail uses "%.80s" on `body`,
     * reading past `len` up to a NUL (over-read on a non-terminated buffer, e.g. under a fuzzer).
     */
    assert_null(strstr(coord_last_error(), "SECRET"));
}

/* ---------- watch stream lines ---------- */

static int watch_line(const char *line, etcd_watch_msg *m) {
    return etcd_parse_watch_line(line, strlen(line), m);
}

static void test_watch_created(void **state) {
    (void)state;
    etcd_watch_msg m;
    assert_int_equal(watch_line("{\"result\":{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\","
                                "\"revision\":\"7\",\"raft_term\":\"2\"},\"created\":true}}",
                                &m),
                     0);
    assert_false(m.is_error);
    assert_true(m.created);
    assert_false(m.canceled);
    assert_int_equal(m.header_revision, 7);
    assert_int_equal(m.watch_id, 0); /* omitted: first watcher */
    assert_int_equal(m.compact_revision, 0);
    assert_int_equal(m.nevents, 0);
    etcd_watch_msg_clear(&m);

    /* Another watcher id, and a progress-style line without created. */
    assert_int_equal(
        watch_line("{\"result\":{\"header\":{\"revision\":\"8\"},\"watch_id\":\"3\"}}", &m), 0);
    assert_false(m.created);
    assert_int_equal(m.watch_id, 3);
    assert_int_equal(m.header_revision, 8);
    etcd_watch_msg_clear(&m);
}

static void test_watch_events(void **state) {
    (void)state;
    etcd_watch_msg m;
    /* A PUT of /a/k (no "type" field) and a DELETE of /a/m. */
    const char *line =
        "{\"result\":{\"header\":{\"cluster_id\":\"14841639068965178418\",\"member_id\":"
        "\"10276657743932975437\",\"revision\":\"12\",\"raft_term\":\"2\"},\"events\":["
        "{\"kv\":{\"key\":\"L2Evaw==\",\"create_revision\":\"11\",\"mod_revision\":\"11\","
        "\"version\":\"1\",\"value\":\"dg==\"}},"
        "{\"type\":\"DELETE\",\"kv\":{\"key\":\"L2EvbQ==\",\"mod_revision\":\"12\"}}]}}";
    assert_int_equal(watch_line(line, &m), 0);
    assert_false(m.is_error);
    assert_false(m.created);
    assert_false(m.canceled);
    assert_int_equal(m.header_revision, 12);
    assert_int_equal(m.nevents, 2);
    assert_false(m.events[0].is_delete);
    assert_int_equal(m.events[0].keylen, 4);
    assert_memory_equal(m.events[0].key, "/a/k", 4);
    assert_int_equal(m.events[0].mod_revision, 11);
    assert_int_equal(m.events[0].version, 1);
    assert_true(m.events[1].is_delete);
    assert_int_equal(m.events[1].keylen, 4);
    assert_memory_equal(m.events[1].key, "/a/m", 4);
    assert_int_equal(m.events[1].mod_revision, 12);
    assert_int_equal(m.events[1].version, 0);
    etcd_watch_msg_clear(&m);
    assert_null(m.events);
    assert_int_equal(m.nevents, 0);

    /* Enum as a number, explicit "PUT", and an empty events array. */
    assert_int_equal(watch_line("{\"result\":{\"events\":[{\"type\":1,\"kv\":{\"key\":\"L2Evaw==\","
                                "\"mod_revision\":\"3\"}},{\"type\":\"PUT\",\"kv\":{\"key\":"
                                "\"L2EvbQ==\",\"mod_revision\":\"4\"}},{\"type\":0,\"kv\":{"
                                "\"key\":\"L2EvbQ==\",\"mod_revision\":5}}]}}",
                                &m),
                     0);
    assert_int_equal(m.nevents, 3);
    assert_true(m.events[0].is_delete);
    assert_false(m.events[1].is_delete);
    assert_false(m.events[2].is_delete);
    assert_int_equal(m.events[2].mod_revision, 5);
    etcd_watch_msg_clear(&m);
    assert_int_equal(watch_line("{\"result\":{\"header\":{\"revision\":\"2\"},\"events\":[]}}", &m),
                     0);
    assert_int_equal(m.nevents, 0);
    etcd_watch_msg_clear(&m);
}

static void test_watch_canceled(void **state) {
    (void)state;
    etcd_watch_msg m;
    assert_int_equal(watch_line("{\"result\":{\"header\":{\"revision\":\"9\"},\"canceled\":true,"
                                "\"compact_revision\":\"5\",\"cancel_reason\":\"etcdserver: "
                                "mvcc: required revision has been compacted\"}}",
                                &m),
                     0);
    assert_false(m.is_error);
    assert_true(m.canceled);
    assert_false(m.created);
    assert_int_equal(m.header_revision, 9);
    assert_int_equal(m.compact_revision, 5);
    assert_string_equal(m.msg, "etcdserver: mvcc: required revision has been compacted");
    etcd_watch_msg_clear(&m);
}

static void test_watch_error_line(void **state) {
    (void)state;
    etcd_watch_msg m;
    assert_int_equal(watch_line("{\"error\":{\"grpc_code\":11,\"http_code\":400,\"message\":"
                                "\"etcdserver: mvcc: required revision has been compacted\","
                                "\"http_status\":\"Bad Request\"}}",
                                &m),
                     0);
    assert_true(m.is_error);
    assert_int_equal(m.grpc_code, 11);
    assert_int_equal(m.err, COORD_EINVAL);
    assert_string_equal(m.msg, "etcdserver: mvcc: required revision has been compacted");
    etcd_watch_msg_clear(&m);

    assert_int_equal(watch_line("{\"error\":{\"code\":14,\"message\":\"x\"}}", &m), 0);
    assert_true(m.is_error);
    assert_int_equal(m.grpc_code, 14);
    assert_int_equal(m.err, COORD_EUNAVAILABLE);
    assert_string_equal(m.msg, "x");
    etcd_watch_msg_clear(&m);
}

static void test_watch_malformed(void **state) {
    (void)state;
    static const char *const bad[] = {
        "garbage",
        "",
        "{\"result\":{\"header\":{\"revision\":\"7\"},\"created\":tr",
        "{\"result\":{\"header\":",
        "[]",
        "null",
        "{\"result\":5}",
        "{\"result\":[]}",
        "{}",
        "{\"other\":{}}",
        "{\"result\":{\"events\":{}}}",
        "{\"result\":{\"events\":\"x\"}}",
        "{\"result\":{\"header\":{\"revision\":\"x\"}}}",
        "{\"result\":{\"header\":5}}",
        "{\"result\":{\"watch_id\":true}}",
        "{\"result\":{\"compact_revision\":\"1.5\"}}",
        /* events: not an object, without kv, bad key, without mod_revision, bad type */
        "{\"result\":{\"events\":[5]}}",
        "{\"result\":{\"events\":[{\"type\":\"DELETE\"}]}}",
        "{\"result\":{\"events\":[{\"kv\":{\"key\":\"L2Ev!w==\",\"mod_revision\":\"3\"}}]}}",
        "{\"result\":{\"events\":[{\"kv\":{\"mod_revision\":\"3\"}}]}}",
        "{\"result\":{\"events\":[{\"kv\":{\"key\":\"L2Evaw==\"}}]}}",
        "{\"result\":{\"events\":[{\"type\":true,\"kv\":{\"key\":\"L2Evaw==\",\"mod_revision\":"
        "\"3\"}}]}}",
        /* a good event then a bad one: nothing leaks */
        "{\"result\":{\"events\":[{\"kv\":{\"key\":\"L2Evaw==\",\"mod_revision\":\"3\"}},{\"kv\":{"
        "\"key\":\"L2EvbQ==\",\"mod_revision\":\"x\"}}]}}",
        "{\"result\":{\"events\":[{\"kv\":{\"key\":\"L2Evaw==\",\"mod_revision\":\"3\"}},7]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        etcd_watch_msg m;
        int rc = watch_line(bad[i], &m);
        if (rc != COORD_EPROTO) {
            if (rc == 0) etcd_watch_msg_clear(&m);
            fail_msg("etcd_parse_watch_line(%s) = %d, expected COORD_EPROTO", bad[i], rc);
        }
        assert_null(m.events);
        assert_int_equal(m.nevents, 0);
        assert_true(coord_last_error()[0] != 0);
    }
}

static void test_watch_line_respects_len(void **state) {
    (void)state;
    /* A line given as (pointer, length) inside a larger buffer. */
    etcd_watch_msg m;
    const char *buf = "{\"result\":5}SECRET-BYTES-AFTER-THE-LINE";
    assert_int_equal(etcd_parse_watch_line(buf, 12, &m), COORD_EPROTO);
    /* Regression (fixed): backends/etcd/etcd_codec.c:294 the detail uses "%.80s" on `line`, reading
     * past `len` up to a NUL (over-read on a non-terminated buffer, e.g. under a fuzzer). */
    assert_null(strstr(coord_last_error(), "SECRET"));
}

/* ---------- line framer ---------- */

typedef struct lines_ctx {
    char got[16][64];
    size_t n;
    int fail_at; /* return `fail_rc` for this (1-based) line; 0: never */
    int fail_rc;
} lines_ctx;

static int on_line(void *p, const char *line, size_t len) {
    lines_ctx *c = p;
    if (c->n >= 16 || len >= 64) fail_msg("unexpected line (n=%zu len=%zu)", c->n, len);
    assert_null(memchr(line, '\n', len));
    memcpy(c->got[c->n], line, len);
    c->got[c->n][len] = 0;
    c->n++;
    if (c->fail_at && (int)c->n == c->fail_at) return c->fail_rc;
    return 0;
}

static void test_lines_every_split(void **state) {
    (void)state;
    const char *in = "{\"result\":{\"a\":1}}\n{\"result\":{}}\nthird line\n";
    size_t n = strlen(in);
    /* Every split into three chunks at byte boundaries i <= j (empty chunks included). */
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            etcd_lines lb = {.max = 1024};
            lines_ctx c = {0};
            assert_int_equal(etcd_lines_feed(&lb, in, i, on_line, &c), 0);
            assert_int_equal(etcd_lines_feed(&lb, in + i, j - i, on_line, &c), 0);
            assert_int_equal(etcd_lines_feed(&lb, in + j, n - j, on_line, &c), 0);
            assert_int_equal(c.n, 3);
            assert_string_equal(c.got[0], "{\"result\":{\"a\":1}}");
            assert_string_equal(c.got[1], "{\"result\":{}}");
            assert_string_equal(c.got[2], "third line");
            etcd_lines_free(&lb);
            assert_null(lb.buf);
        }
    }
    /* Byte by byte. */
    etcd_lines lb = {.max = 1024};
    lines_ctx c = {0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(etcd_lines_feed(&lb, in + i, 1, on_line, &c), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.got[2], "third line");
    etcd_lines_free(&lb);
}

static void test_lines_merged_and_partial(void **state) {
    (void)state;
    etcd_lines lb = {.max = 1024};
    lines_ctx c = {0};
    /* Several messages in one chunk, the last one incomplete. */
    const char *chunk = "one\ntwo\nthree\nfou";
    assert_int_equal(etcd_lines_feed(&lb, chunk, strlen(chunk), on_line, &c), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.got[0], "one");
    assert_string_equal(c.got[1], "two");
    assert_string_equal(c.got[2], "three");
    assert_int_equal(etcd_lines_feed(&lb, "r\nfive", 6, on_line, &c), 0);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.got[3], "four");
    /* An empty chunk changes nothing. */
    assert_int_equal(etcd_lines_feed(&lb, "", 0, on_line, &c), 0);
    assert_int_equal(c.n, 4);
    assert_int_equal(etcd_lines_feed(&lb, "\n", 1, on_line, &c), 0);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.got[4], "five");
    /* Reset drops a partial line. */
    assert_int_equal(etcd_lines_feed(&lb, "stale", 5, on_line, &c), 0);
    etcd_lines_reset(&lb);
    assert_int_equal(etcd_lines_feed(&lb, "fresh\n", 6, on_line, &c), 0);
    assert_int_equal(c.n, 6);
    assert_string_equal(c.got[5], "fresh");
    etcd_lines_free(&lb);
    etcd_lines_free(&lb); /* idempotent */
}

static void test_lines_blank_and_crlf(void **state) {
    (void)state;
    etcd_lines lb = {.max = 1024};
    lines_ctx c = {0};
    const char *in = "\n\r\n{\"a\":1}\r\n\n\n\r\n{\"b\":2}\n\r\n";
    assert_int_equal(etcd_lines_feed(&lb, in, strlen(in), on_line, &c), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.got[0], "{\"a\":1}");
    assert_string_equal(c.got[1], "{\"b\":2}");
    /* "\r" and "\n" in separate chunks. */
    assert_int_equal(etcd_lines_feed(&lb, "{\"c\":3}\r", 8, on_line, &c), 0);
    assert_int_equal(etcd_lines_feed(&lb, "\n", 1, on_line, &c), 0);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.got[2], "{\"c\":3}");
    etcd_lines_free(&lb);
}

static void test_lines_max(void **state) {
    (void)state;
    /* Exactly max bytes: fine. */
    etcd_lines lb = {.max = 8};
    lines_ctx c = {0};
    assert_int_equal(etcd_lines_feed(&lb, "12345678\n", 9, on_line, &c), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.got[0], "12345678");
    /* max + 1 in one chunk. */
    assert_int_equal(etcd_lines_feed(&lb, "123456789\n", 10, on_line, &c), COORD_EPROTO);
    assert_true(coord_last_error()[0] != 0);
    assert_int_equal(c.n, 1);
    etcd_lines_free(&lb);

    /* Over max across chunks, before any newline arrives. */
    lb = (etcd_lines){.max = 8};
    assert_int_equal(etcd_lines_feed(&lb, "12345", 5, on_line, &c), 0);
    assert_int_equal(etcd_lines_feed(&lb, "6789", 4, on_line, &c), COORD_EPROTO);
    assert_int_equal(c.n, 1);
    etcd_lines_free(&lb);

    /* A long stream of short lines never trips the limit. */
    lb = (etcd_lines){.max = 8};
    lines_ctx c2 = {0};
    for (int i = 0; i < 1000; i++) {
        c2.n = 0;
        assert_int_equal(etcd_lines_feed(&lb, "1234567\n", 8, on_line, &c2), 0);
        assert_int_equal(c2.n, 1);
    }
    etcd_lines_free(&lb);
}

static int count_len(void *ctx, const char *line, size_t len) {
    (void)line;
    *(size_t *)ctx = len;
    return 0;
}

static void test_lines_big_line(void **state) {
    (void)state;
    etcd_lines lb = {.max = 100000};
    char *big = malloc(50001);
    assert_non_null(big);
    memset(big, 'x', 50000);
    big[50000] = '\n';
    size_t seen = 0;
    /* In uneven chunks so the buffer grows several times. */
    size_t off = 0, step = 1;
    while (off < 50001) {
        size_t take = 50001 - off < step ? 50001 - off : step;
        assert_int_equal(etcd_lines_feed(&lb, big + off, take, count_len, &seen), 0);
        off += take;
        step = step * 3 + 1;
    }
    assert_int_equal(seen, 50000);
    free(big);
    etcd_lines_free(&lb);
}

static void test_lines_callback_error(void **state) {
    (void)state;
    etcd_lines lb = {.max = 1024};
    lines_ctx c = {.fail_at = 2, .fail_rc = 7};
    const char *in = "a\nb\nc\n";
    assert_int_equal(etcd_lines_feed(&lb, in, strlen(in), on_line, &c), 7);
    assert_int_equal(c.n, 2); /* "c" was not delivered */
    etcd_lines_free(&lb);

    lb = (etcd_lines){.max = 1024};
    lines_ctx c2 = {.fail_at = 1, .fail_rc = COORD_EBACKEND};
    assert_int_equal(etcd_lines_feed(&lb, "x", 1, on_line, &c2), 0);
    assert_int_equal(etcd_lines_feed(&lb, "y\nz\n", 4, on_line, &c2), COORD_EBACKEND);
    assert_int_equal(c2.n, 1);
    assert_string_equal(c2.got[0], "xy");
    etcd_lines_free(&lb);
}

/* ---------- transactions ---------- */

/* The base64-decoded string field `f` of `obj` (malloc'd; the test frees it). */
static char *field_bytes(const cJSON *obj, const char *f) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f);
    void *out = NULL;
    size_t len = 0;
    if (!cJSON_IsString(v) || etcd_unb64(v->valuestring, &out, &len))
        fail_msg("field %s is not base64", f);
    return out;
}

/* Compare `i` of `req` is `result` `target` `value` (in `field`) on `key`. */
static void expect_cmp(const cJSON *req, int i, const char *key, const char *result,
                       const char *target, const char *field, const char *value) {
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(req, "compare"), i);
    assert_non_null(c);
    char *k = field_bytes(c, "key");
    assert_string_equal(k, key);
    free(k);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "result")->valuestring, result);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "target")->valuestring, target);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, field);
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, value);
}

/* Request `i` of branch `branch` is of `type` on `key`; returns the inner object. */
static const cJSON *expect_op(const cJSON *req, const char *branch, int i, const char *type,
                              const char *key) {
    const cJSON *op = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(req, branch), i);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(op, type);
    if (!r) fail_msg("%s[%d] is not a %s", branch, i, type);
    char *k = field_bytes(r, "key");
    assert_string_equal(k, key);
    free(k);
    return r;
}

static void test_txn_request(void **state) {
    (void)state;
    const coord_op ops[] = {
        {COORD_OP_CHECK, "/a", NULL, 0, 5, 0},
        {COORD_OP_CHECK, "/b", NULL, 0, 0, 0},
        {COORD_OP_PUT, "/c", "hi", 2, COORD_VERSION_ANY, 0},
        {COORD_OP_PUT, "/d", NULL, 0, 0, 0},
        {COORD_OP_DEL, "/e", NULL, 0, COORD_VERSION_ANY, 0},
        {COORD_OP_DEL, "/f", NULL, 0, 7, 0},
        {COORD_OP_HELD, "/g", NULL, 0, 9, 9},
        {COORD_OP_PUT, "/a", "x", 1, 5, 0},
    };
    size_t n = sizeof ops / sizeof ops[0];
    assert_int_equal(etcd_txn_check(ops, n), 0);
    cJSON *req = etcd_txn_request(ops, n);
    assert_non_null(req);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(req, "compare")), 7);
    expect_cmp(req, 0, "/a", "EQUAL", "MOD", "mod_revision", "5");
    expect_cmp(req, 1, "/b", "EQUAL", "VERSION", "version", "0");
    expect_cmp(req, 2, "/d", "EQUAL", "VERSION", "version", "0");
    expect_cmp(req, 3, "/e", "GREATER", "VERSION", "version", "0");
    expect_cmp(req, 4, "/f", "EQUAL", "MOD", "mod_revision", "7");
    expect_cmp(req, 5, "/g", "EQUAL", "CREATE", "create_revision", "9");
    expect_cmp(req, 6, "/a", "EQUAL", "MOD", "mod_revision", "5");
    /* Writes without a lease; an empty value is sent as no value (etcd's default). */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(req, "success")), 5);
    const cJSON *put = expect_op(req, "success", 0, "request_put", "/c");
    char *v = field_bytes(put, "value");
    assert_string_equal(v, "hi");
    free(v);
    assert_null(cJSON_GetObjectItemCaseSensitive(put, "lease"));
    put = expect_op(req, "success", 1, "request_put", "/d");
    assert_null(cJSON_GetObjectItemCaseSensitive(put, "value"));
    expect_op(req, "success", 2, "request_delete_range", "/e");
    expect_op(req, "success", 3, "request_delete_range", "/f");
    expect_op(req, "success", 4, "request_put", "/a");
    /* One keys_only range per compared path, in the order of the ops. */
    const char *ranges[] = {"/a", "/b", "/d", "/e", "/f", "/g"};
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(req, "failure")), 6);
    for (int i = 0; i < 6; i++) {
        const cJSON *r = expect_op(req, "failure", i, "request_range", ranges[i]);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "keys_only")));
        assert_null(cJSON_GetObjectItemCaseSensitive(r, "range_end"));
    }
    cJSON_Delete(req);

    /* A delete at version 0 can never apply: it must be absent and have a value. */
    const coord_op del0 = {COORD_OP_DEL, "/e", NULL, 0, 0, 0};
    req = etcd_txn_request(&del0, 1);
    expect_cmp(req, 0, "/e", "EQUAL", "VERSION", "version", "0");
    expect_cmp(req, 1, "/e", "GREATER", "VERSION", "version", "0");
    cJSON_Delete(req);
}

static void test_txn_check(void **state) {
    (void)state;
    coord_op ops[COORD_TXN_MAX + 1];
    for (size_t i = 0; i <= COORD_TXN_MAX; i++)
        ops[i] = (coord_op){COORD_OP_PUT, "/k", "v", 1, COORD_VERSION_ANY, 0};
    assert_int_equal(etcd_txn_check(ops, COORD_TXN_MAX), 0);
    assert_int_equal(etcd_txn_check(ops, COORD_TXN_MAX + 1), COORD_EINVAL);
    assert_int_equal(etcd_txn_check(ops, 0), COORD_EINVAL);
    assert_int_equal(etcd_txn_check(NULL, 1), COORD_EINVAL);
    const coord_op bad[] = {
        {0, "/k", NULL, 0, 0, 0},
        {COORD_OP_CHECK, "/k", NULL, 0, -1, 0},
        {COORD_OP_PUT, "/k", NULL, 3, 0, 0},
        {COORD_OP_PUT, "/k", "v", 1, -2, 0},
        {COORD_OP_DEL, "/k", NULL, 0, -2, 0},
        {COORD_OP_HELD, "/k", NULL, 0, 0, 0},
        {COORD_OP_HELD, "/k", NULL, 0, 0, UINT64_MAX},
        {COORD_OP_CHECK, NULL, NULL, 0, 0, 0},
        {COORD_OP_CHECK, "k", NULL, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (etcd_txn_check(&bad[i], 1) != COORD_EINVAL) fail_msg("bad op %zu accepted", i);
}

/* The answer of a failed txn whose failure branch found `entries` (JSON kvs arrays, "" for
 * none) in its ranges. */
static cJSON *failed_answer(const char *const *entries, size_t n) {
    char buf[4096];
    size_t at = (size_t)snprintf(buf, sizeof buf,
                                 "{\"header\":{\"revision\":\"40\"},\"succeeded\":false,"
                                 "\"responses\":[");
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s{\"response_range\":{%s}}",
                               i ? "," : "", entries[i]);
    snprintf(buf + at, sizeof buf - at, "]}");
    return json(buf);
}

/* "kvs":[...] for key `k` (base64 `k64`) at `mod` and `create`, as a keys_only answer. */
#define KVS(k64, mod, create)                                                                      \
    "\"kvs\":[{\"key\":\"" k64 "\",\"create_revision\":\"" #create "\",\"mod_revision\":\"" #mod   \
    "\",\"version\":\"1\"}],\"count\":\"1\""

/* etcd_txn_explain of `ops` against `res` (consumed) names op `want` with `detail`. */
static void expect_failed(const coord_op *ops, size_t n, cJSON *res, size_t want,
                          const char *detail) {
    size_t failed = 999;
    char msg[256];
    assert_int_equal(etcd_txn_explain(res, ops, n, &failed, msg, sizeof msg), 0);
    cJSON_Delete(res);
    assert_int_equal(failed, want);
    assert_string_equal(msg, detail);
}

static void test_txn_explain(void **state) {
    (void)state;
    /* "/a" = L2E=, "/b" = L2I=, "/c" = L2M= */
    const char *a14 = KVS("L2E=", 14, 12), *b20 = KVS("L2I=", 20, 20), *none = "";
    const coord_op check[] = {
        {COORD_OP_PUT, "/w", "w", 1, COORD_VERSION_ANY, 0}, /* no range */
        {COORD_OP_CHECK, "/a", NULL, 0, 14, 0},
        {COORD_OP_CHECK, "/b", NULL, 0, 19, 0},
    };
    expect_failed(check, 3, failed_answer((const char *[]){a14, b20}, 2), 2,
                  "txn: check of /b failed: version 20, expected 19");
    expect_failed(check, 3, failed_answer((const char *[]){none, b20}, 2), 1,
                  "txn: check of /a failed: version 0, expected 14");
    /* Nothing fails by the answer (it cannot happen, but the caller still gets a detail). */
    const coord_op ok[] = {{COORD_OP_CHECK, "/a", NULL, 0, 14, 0}};
    expect_failed(ok, 1, failed_answer((const char *[]){a14}, 1), 1, "txn: a condition failed");

    const coord_op absent[] = {{COORD_OP_CHECK, "/a", NULL, 0, 0, 0}};
    expect_failed(absent, 1, failed_answer((const char *[]){a14}, 1), 0,
                  "txn: check of /a failed: version 14, expected 0");
    const coord_op create[] = {{COORD_OP_PUT, "/a", "x", 1, 0, 0}};
    expect_failed(create, 1, failed_answer((const char *[]){a14}, 1), 0,
                  "txn: check of /a failed: version 14, expected 0");
    const coord_op update[] = {{COORD_OP_PUT, "/a", "x", 1, 3, 0}};
    expect_failed(update, 1, failed_answer((const char *[]){none}, 1), 0, "txn: /a has no value");
    expect_failed(update, 1, failed_answer((const char *[]){a14}, 1), 0,
                  "txn: check of /a failed: version 14, expected 3");
    const coord_op del[] = {{COORD_OP_DEL, "/a", NULL, 0, COORD_VERSION_ANY, 0}};
    expect_failed(del, 1, failed_answer((const char *[]){none}, 1), 0, "txn: /a has no value");
    const coord_op del_at[] = {{COORD_OP_DEL, "/a", NULL, 0, 13, 0}};
    expect_failed(del_at, 1, failed_answer((const char *[]){a14}, 1), 0,
                  "txn: check of /a failed: version 14, expected 13");
    /* The lock entry: gone, or made again (another create revision). */
    const coord_op held[] = {{COORD_OP_HELD, "/a", NULL, 0, 12, 12}};
    expect_failed(held, 1, failed_answer((const char *[]){a14}, 1), 1, "txn: a condition failed");
    expect_failed(held, 1, failed_answer((const char *[]){none}, 1), 0,
                  "txn: lock entry /a is no longer held");
    const coord_op held2[] = {{COORD_OP_HELD, "/a", NULL, 0, 11, 11}};
    expect_failed(held2, 1, failed_answer((const char *[]){a14}, 1), 0,
                  "txn: lock entry /a is no longer held");
    /* Ops on one path share its range. */
    const coord_op shared[] = {
        {COORD_OP_CHECK, "/a", NULL, 0, 14, 0},
        {COORD_OP_CHECK, "/b", NULL, 0, 20, 0},
        {COORD_OP_PUT, "/a", "x", 1, 15, 0},
    };
    expect_failed(shared, 3, failed_answer((const char *[]){a14, b20}, 2), 2,
                  "txn: check of /a failed: version 14, expected 15");

    /* Malformed answers: a range missing, on another key, or kvs not an array. */
    size_t failed = 999;
    char msg[64];
    cJSON *res = failed_answer((const char *[]){a14}, 1);
    assert_int_equal(etcd_txn_explain(res, shared, 3, &failed, msg, sizeof msg), COORD_EPROTO);
    cJSON_Delete(res);
    res = failed_answer((const char *[]){KVS("L2M=", 3, 3)}, 1);
    assert_int_equal(etcd_txn_explain(res, ok, 1, &failed, msg, sizeof msg), COORD_EPROTO);
    cJSON_Delete(res);
    res = failed_answer((const char *[]){"\"kvs\":{}"}, 1);
    assert_int_equal(etcd_txn_explain(res, ok, 1, &failed, msg, sizeof msg), COORD_EPROTO);
    cJSON_Delete(res);
    res = json("{\"succeeded\":false}");
    assert_int_equal(etcd_txn_explain(res, ok, 1, &failed, msg, sizeof msg), COORD_EPROTO);
    cJSON_Delete(res);
    assert_int_equal(failed, 999);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_vectors),
        cmocka_unit_test(test_b64_all_bytes),
        cmocka_unit_test(test_b64_malformed),
        cmocka_unit_test(test_get_i64),
        cmocka_unit_test(test_get_i64_malformed),
        cmocka_unit_test(test_add_i64),
        cmocka_unit_test(test_add_bytes),
        cmocka_unit_test(test_prefix_end),
        cmocka_unit_test(test_parse_kv),
        cmocka_unit_test(test_parse_kv_malformed),
        cmocka_unit_test(test_error_v1_body),
        cmocka_unit_test(test_error_v2_body),
        cmocka_unit_test(test_error_plain_and_empty),
        cmocka_unit_test(test_error_truncation),
        cmocka_unit_test(test_error_stream_chunks),
        cmocka_unit_test(test_grpc_to_coord),
        cmocka_unit_test(test_parse_body),
        cmocka_unit_test(test_parse_body_respects_len),
        cmocka_unit_test(test_watch_created),
        cmocka_unit_test(test_watch_events),
        cmocka_unit_test(test_watch_canceled),
        cmocka_unit_test(test_watch_error_line),
        cmocka_unit_test(test_watch_malformed),
        cmocka_unit_test(test_watch_line_respects_len),
        cmocka_unit_test(test_lines_every_split),
        cmocka_unit_test(test_lines_merged_and_partial),
        cmocka_unit_test(test_lines_blank_and_crlf),
        cmocka_unit_test(test_lines_max),
        cmocka_unit_test(test_lines_big_line),
        cmocka_unit_test(test_lines_callback_error),
        cmocka_unit_test(test_txn_request),
        cmocka_unit_test(test_txn_check),
        cmocka_unit_test(test_txn_explain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
