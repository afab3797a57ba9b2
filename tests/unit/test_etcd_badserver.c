/*
 * The etcd backend against a misbehaving server: a scripted HTTP/1.1 server on 127.0.0.1
 * (tests/support/fake_http.h) answers garbage, truncated or oversized JSON, error statuses,
 * closes mid-response or never answers. Every case must end with the documented error code and a
 * message, within a bound, without crashing, hanging or leaking (run under valgrind and ASan too).
 *
 * Most cases are rows of `cases` below: one request of the client answered badly, the code (and
 * part of the message) it must end with. The session cases are rows of `session_cases`: a script
 * under which the server drops the client's lease. The few cases that need code of their own
 * follow them.
 */
#include "fake_http.h"
#include "testing.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- a healthy etcd, as far as the client needs one ---------- */

typedef struct fixture {
    fake_http *s;
    coord_client *c;
    coord_test_states states;
    atomic_int ttl;  /* seconds, granted by the default answers */
    const void *row; /* the table row under test, if any */
} fixture;

/* What a healthy etcd answers for `path` (lease ids count the grants: 101, 102, ...). */
static fake_http_reply healthy(fake_http *s, const char *path, void *arg, char *buf, size_t size) {
    fixture *f = arg;
    int ttl = atomic_load(&f->ttl), id = 100 + fake_http_count(s, "/v3/lease/grant");
    fake_http_reply r = {FAKE_HTTP_JSON, 200, buf, 0};
    if (!strcmp(path, "/v3/lease/grant"))
        snprintf(buf, size,
                 "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"1\","
                 "\"raft_term\":\"2\"},\"ID\":\"%d\",\"TTL\":\"%d\"}",
                 id, ttl);
    else if (!strcmp(path, "/v3/lease/keepalive"))
        snprintf(buf, size,
                 "{\"result\":{\"header\":{\"revision\":\"1\"},\"ID\":\"%d\",\"TTL\":\"%d\"}}", id,
                 ttl);
    else if (!strcmp(path, "/v3/lease/revoke"))
        snprintf(buf, size, "{\"header\":{\"revision\":\"1\"}}");
    else if (!strcmp(path, "/v3/kv/range"))
        snprintf(buf, size, "{\"header\":{\"revision\":\"1\"},\"count\":\"0\"}");
    else if (!strcmp(path, "/v3/watch")) /* a created stream with nothing more to say */
        r = (fake_http_reply){FAKE_HTTP_STREAM, 200,
                              "{\"result\":{\"header\":{\"revision\":\"1\"},\"created\":true}}\n",
                              0};
    else
        r.kind = FAKE_HTTP_DEFAULT; /* 404 */
    return r;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->row = *state; /* the initial state: a table row, or NULL */
    atomic_init(&f->ttl, 10);
    f->s = fake_http_start(healthy, f);
    assert_non_null(f->s);
    coord_test_states_init(&f->states);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    /* Let the library leave cleanly (revoke) before the server goes. */
    fake_http_script(f->s, NULL, 0);
    coord_client_close(f->c);
    fake_http_stop(f->s);
    pthread_mutex_destroy(&f->states.mu);
    pthread_cond_destroy(&f->states.cv);
    free(f);
    return 0;
}

static int64_t open_at(fixture *f, int port, const char *params, int *rc) {
    char uri[256];
    /* The watch streams scripted here are the per-watch HTTP ones (watch=http). */
    snprintf(uri, sizeof uri, "etcd://127.0.0.1:%d/app?%s%swatch=http", port, params,
             *params ? "&" : "");
    coord_options o = COORD_OPTIONS_INIT;
    o.on_session = coord_test_states_cb;
    o.payload = &f->states;
    int64_t t0 = coord__now_ms();
    *rc = coord_client_open(&f->c, uri, &o);
    return coord__now_ms() - t0;
}

#define FAST "connect_timeout_ms=2000&timeout_ms=2000"

static coord_conn *open_ok(fixture *f, const char *params) {
    int rc;
    open_at(f, fake_http_port(f->s), params, &rc);
    if (rc) fail_msg("open: %s: %s", coord_err_name(rc), coord_last_error());
    return coord__client_conn(f->c);
}

/* The call failed with `want` (one of two codes when want2 != 0), a message, within `bound`. */
static void check_err(const char *what, int rc, int want, int want2, int64_t ms, int64_t bound) {
    const char *msg = coord_last_error();
    print_message("    %s: %s after %lld ms: %s\n", what, coord_err_name(rc), (long long)ms, msg);
    if (rc != want && (want2 == 0 || rc != want2))
        fail_msg("%s: got %s, want %s%s%s (%s)", what, coord_err_name(rc), coord_err_name(want),
                 want2 ? " or " : "", want2 ? coord_err_name(want2) : "", msg);
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);
    if (ms >= bound)
        fail_msg("%s: took %lld ms (bound %lld)", what, (long long)ms, (long long)bound);
}

/* ---------- one request answered badly: the table ---------- */

/* What the client does, and the request of it that the server answers badly. */
typedef enum op {
    OPEN,        /* coord_client_open: POST /v3/lease/grant */
    GET,         /* get: /v3/kv/range */
    LIST,        /* list: /v3/kv/range */
    PUT,         /* unconditional put: /v3/kv/txn */
    PUT_ABSENT,  /* put if absent (its version comes from the answer's header): /v3/kv/txn */
    DEL,         /* unconditional delete, a DeleteRange: /v3/kv/deleterange */
    DEL_VERSION, /* delete of version 5, a Txn: /v3/kv/txn */
    WATCH_KEY,   /* a key watch from now, whose initial read is /v3/kv/range */
    WATCH_STREAM /* a children watch from revision 5 (no initial read): its stream /v3/watch */
} op;

static const char *const op_path[] = {
    [OPEN] = "/v3/lease/grant",   [GET] = "/v3/kv/range",       [LIST] = "/v3/kv/range",
    [PUT] = "/v3/kv/txn",         [PUT_ABSENT] = "/v3/kv/txn",  [DEL] = "/v3/kv/deleterange",
    [DEL_VERSION] = "/v3/kv/txn", [WATCH_KEY] = "/v3/kv/range", [WATCH_STREAM] = "/v3/watch",
};

typedef struct bad_case {
    const char *name;
    op op;
    fake_http_reply reply; /* the answer to the op's request */
    int want, want2;       /* the code, or either of two when want2 != 0 (WATCH_STREAM: 0) */
    const char *detail;    /* part of the message, when set */
    int timeout_ms;        /* of the open, or of the call; 0: 2000 for OPEN, else 1000 */
    int min_tries;         /* requests the op's path gets at least (0: 1) */
    int max_tries;         /* ... and at most (0: no limit) */
} bad_case;

/* clang-format off */
#define JSON(status, body) {FAKE_HTTP_JSON, status, body, 0}
#define OK200(body) JSON(200, body)
#define CLOSED {FAKE_HTTP_CLOSE, 0, NULL, 0}
#define PARTIAL {FAKE_HTTP_PARTIAL, 0, NULL, 0}
#define HOLD {FAKE_HTTP_HOLD, 0, NULL, 0}
#define RAW(bytes) {FAKE_HTTP_RAW, 0, bytes, 0}
/* More than the library's 64 MiB cap on unary answers. */
#define HUGE_BODY {FAKE_HTTP_HUGE, 0, NULL, 70u << 20}
/* clang-format on */
#define NO_LEADER JSON(503, "{\"code\":14,\"message\":\"etcdserver: no leader\"}")
/* The expected code: one, or either of two. */
#define ONLY(code) code, 0
#define EITHER(code, code2) code, code2

static const bad_case cases[] = {
    /* coord_client_open, its lease grant answered badly */
    {"open_grant_not_json", OPEN, OK200("hello"), ONLY(COORD_EPROTO)},
    {"open_grant_truncated_json", OPEN, OK200("{\"header\":{\"revision\":\"1\"},\"ID\":\"12"),
     ONLY(COORD_EPROTO)},
    {"open_grant_without_id", OPEN, OK200("{\"header\":{\"revision\":\"1\"},\"TTL\":\"10\"}"),
     ONLY(COORD_EPROTO)},
    {"open_grant_empty_200", OPEN, OK200(""), ONLY(COORD_EPROTO)},
    {"open_grant_array", OPEN, OK200("[1,2,3]"), ONLY(COORD_EPROTO)},
    {"open_grant_null", OPEN, OK200("null"), ONLY(COORD_EPROTO)},
    {"open_grant_id_not_a_number", OPEN, OK200("{\"ID\":\"abc\",\"TTL\":\"10\"}"),
     ONLY(COORD_EPROTO)},
    {"open_grant_id_beyond_int64", OPEN, OK200("{\"ID\":\"99999999999999999999\",\"TTL\":\"10\"}"),
     ONLY(COORD_EPROTO)},
    {"open_grant_id_not_integer", OPEN, OK200("{\"ID\":1.5,\"TTL\":\"10\"}"), ONLY(COORD_EPROTO)},
    {"open_grant_id_object", OPEN, OK200("{\"ID\":{},\"TTL\":\"10\"}"), ONLY(COORD_EPROTO)},
    {"open_grant_id_negative", OPEN, OK200("{\"ID\":\"-5\",\"TTL\":\"10\"}"), ONLY(COORD_EPROTO)},
    {"open_grant_ttl_zero", OPEN, OK200("{\"ID\":\"123\",\"TTL\":\"0\"}"), ONLY(COORD_EPROTO)},
    {"open_grant_without_ttl", OPEN, OK200("{\"ID\":\"123\"}"), ONLY(COORD_EPROTO)},
    /* a TTL in seconds that overflows in milliseconds */
    {"open_grant_ttl_too_large", OPEN, OK200("{\"ID\":\"123\",\"TTL\":\"9223372036854775807\"}"),
     ONLY(COORD_EPROTO)},
    {"open_grant_unterminated_object", OPEN, OK200("{\"ID\":\"123\",\"TTL\":\"10\""),
     ONLY(COORD_EPROTO)},
    {"open_grant_trailing_garbage", OPEN, OK200("{\"ID\":\"123\",\"TTL\":\"10\"}garbage"),
     ONLY(COORD_EPROTO)},
    {"open_grant_binary", OPEN, OK200("\x01\x02\x03\xff\xfe"), ONLY(COORD_EPROTO)},
    /* the message keeps the transport's own words for the cause */
    {"open_grant_closed_unanswered", OPEN, CLOSED, ONLY(COORD_EUNAVAILABLE),
     .detail = "empty reply"},
    {"open_grant_closed_mid_body", OPEN, PARTIAL, EITHER(COORD_EUNAVAILABLE, COORD_EPROTO)},
    {"open_grant_not_http", OPEN, RAW("hello there\r\n\r\n"),
     EITHER(COORD_EPROTO, COORD_EUNAVAILABLE)},
    {"open_grant_bad_status_line", OPEN, RAW("HTTP/1.1 abc\r\nContent-Length: 2\r\n\r\n{}"),
     EITHER(COORD_EPROTO, COORD_EUNAVAILABLE)},
    {"open_grant_bad_chunking", OPEN,
     RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
     EITHER(COORD_EPROTO, COORD_EUNAVAILABLE)},
    {"open_grant_oversized", OPEN, HUGE_BODY, ONLY(COORD_EPROTO), .detail = "larger than",
     .timeout_ms = 10000},
    /* a 503 is retried until connect_timeout_ms; the server's message is kept */
    {"open_grant_503_no_leader", OPEN, NO_LEADER, ONLY(COORD_EUNAVAILABLE), .detail = "no leader",
     .min_tries = 2},
    {"open_grant_500_empty", OPEN, JSON(500, ""), ONLY(COORD_EBACKEND)},
    {"open_grant_500_garbage", OPEN, JSON(500, "\x01<html>oops"), ONLY(COORD_EBACKEND)},
    /* a gRPC code in the body wins over the HTTP status */
    {"open_grant_400_invalid_argument", OPEN,
     JSON(400, "{\"error\":\"x\",\"code\":3,\"message\":\"bad TTL\"}"), ONLY(COORD_EINVAL)},
    {"open_grant_401_unauthenticated", OPEN,
     JSON(401, "{\"code\":16,\"message\":\"invalid auth token\"}"), ONLY(COORD_EAUTH)},
    {"open_grant_500_code_out_of_range", OPEN, JSON(500, "{\"code\":1e300,\"message\":[]}"),
     ONLY(COORD_EBACKEND)},
    {"open_grant_500_code_negative", OPEN, JSON(500, "{\"code\":-7,\"message\":\"neg\"}"),
     ONLY(COORD_EBACKEND)},
    {"open_grant_never_answers", OPEN, HOLD, EITHER(COORD_ETIMEDOUT, COORD_EUNAVAILABLE),
     .timeout_ms = 1000},

    /* a read */
    {"get_not_json", GET, OK200("hello"), ONLY(COORD_EPROTO)},
    {"get_empty_200", GET, OK200(""), ONLY(COORD_EPROTO)},
    {"get_kvs_string", GET, OK200("{\"kvs\":\"notarray\"}"), ONLY(COORD_EPROTO)},
    {"get_kvs_object", GET, OK200("{\"kvs\":{\"a\":1}}"), ONLY(COORD_EPROTO)},
    {"get_kv_number", GET, OK200("{\"kvs\":[1]}"), ONLY(COORD_EPROTO)},
    {"get_kv_empty", GET, OK200("{\"kvs\":[{}]}"), ONLY(COORD_EPROTO)},
    {"get_key_not_base64", GET,
     OK200("{\"kvs\":[{\"key\":\"%%%%\",\"mod_revision\":\"1\",\"create_revision\":\"1\"}]}"),
     ONLY(COORD_EPROTO)},
    {"get_value_not_base64", GET,
     OK200("{\"kvs\":[{\"key\":\"L2FwcC94\",\"value\":\"a\",\"mod_revision\":\"1\","
           "\"create_revision\":\"1\"}]}"),
     ONLY(COORD_EPROTO)},
    {"get_kv_without_revisions", GET, OK200("{\"kvs\":[{\"key\":\"L2FwcC94\"}]}"),
     ONLY(COORD_EPROTO)},
    {"get_mod_revision_not_a_number", GET,
     OK200("{\"kvs\":[{\"key\":\"L2FwcC94\",\"mod_revision\":\"x\",\"create_revision\":\"1\"}]}"),
     ONLY(COORD_EPROTO)},
    {"get_create_revision_negative", GET,
     OK200("{\"kvs\":[{\"key\":\"L2FwcC94\",\"mod_revision\":\"1\",\"create_revision\":\"-1\"}]}"),
     ONLY(COORD_EPROTO)},
    {"get_key_number", GET,
     OK200("{\"kvs\":[{\"key\":7,\"mod_revision\":\"1\",\"create_revision\":\"1\"}]}"),
     ONLY(COORD_EPROTO)},
    {"get_key_padding_inside", GET,
     OK200("{\"kvs\":[{\"key\":\"L2Fw=HC9\",\"mod_revision\":\"1\",\"create_revision\":\"1\"}]}"),
     ONLY(COORD_EPROTO)},
    {"get_key_with_nul", GET,
     OK200("{\"kvs\":[{\"key\":\"L2FwAHg=\",\"mod_revision\":\"1\",\"create_revision\":\"1\"}]}"),
     ONLY(COORD_EPROTO)},
    {"get_unterminated_array", GET, OK200("{\"kvs\":["), ONLY(COORD_EPROTO)},
    /* transport failures of a repeatable read: retried until the timeout, then unavailable */
    {"get_closed_unanswered", GET, CLOSED, ONLY(COORD_EUNAVAILABLE)},
    {"get_closed_mid_body", GET, PARTIAL, EITHER(COORD_EUNAVAILABLE, COORD_EPROTO)},
    {"get_503_no_leader", GET, NO_LEADER, ONLY(COORD_EUNAVAILABLE)},
    {"get_never_answers", GET, HOLD, EITHER(COORD_ETIMEDOUT, COORD_EUNAVAILABLE)},
    {"get_500_empty", GET, JSON(500, ""), ONLY(COORD_EBACKEND)},
    {"get_oversized", GET, HUGE_BODY, ONLY(COORD_EPROTO), .timeout_ms = 10000},

    /* a listing */
    {"list_not_json", LIST, OK200("hello"), ONLY(COORD_EPROTO)},
    {"list_kv_number", LIST, OK200("{\"kvs\":[1]}"), ONLY(COORD_EPROTO)},
    {"list_kvs_string", LIST, OK200("{\"kvs\":\"notarray\"}"), ONLY(COORD_EPROTO)},
    /* the first entry, decoded already, is freed */
    {"list_second_kv_broken", LIST,
     OK200("{\"kvs\":[{\"key\":\"L2FwcC9kL2E=\",\"mod_revision\":\"1\",\"create_revision\":\"1\"},"
           "{\"key\":\"!!\"}]}"),
     ONLY(COORD_EPROTO)},
    {"list_header_string", LIST, OK200("{\"header\":\"x\",\"kvs\":[]}"), ONLY(COORD_EPROTO)},
    {"list_revision_not_a_number", LIST, OK200("{\"header\":{\"revision\":\"abc\"}}"),
     ONLY(COORD_EPROTO)},
    /* "/x" is not under the listed directory */
    {"list_key_outside_directory", LIST,
     OK200("{\"kvs\":[{\"key\":\"L3g=\",\"mod_revision\":\"1\",\"create_revision\":\"1\"}]}"),
     ONLY(COORD_EPROTO)},

    /* writes */
    {"put_not_json", PUT, OK200("hello"), ONLY(COORD_EPROTO)},
    {"put_without_responses", PUT, OK200("{\"succeeded\":true}"), ONLY(COORD_EPROTO)},
    {"put_responses_string", PUT, OK200("{\"succeeded\":true,\"responses\":\"x\"}"),
     ONLY(COORD_EPROTO)},
    {"put_range_kvs_string", PUT,
     OK200("{\"succeeded\":true,\"responses\":[{},{\"response_range\":{\"kvs\":\"x\"}}]}"),
     ONLY(COORD_EPROTO)},
    {"put_range_without_kvs", PUT,
     OK200("{\"succeeded\":true,\"responses\":[{},{\"response_range\":{}}]}"), ONLY(COORD_EPROTO)},
    {"put_failed_with_broken_kv", PUT,
     OK200(
         "{\"succeeded\":false,\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"?\"}]}}]}"),
     ONLY(COORD_EPROTO)},
    /* a write is not sent again after the connection dropped: it may have been applied (curl,
     * which re-sends on its own when a reused connection turns out dead, is stopped before a
     * second send) */
    {"put_closed_unanswered", PUT, CLOSED, ONLY(COORD_EUNAVAILABLE), .max_tries = 1},
    {"put_absent_without_header", PUT_ABSENT, OK200("{\"succeeded\":true}"), ONLY(COORD_EPROTO)},
    {"put_absent_revision_not_a_number", PUT_ABSENT,
     OK200("{\"succeeded\":true,\"header\":{\"revision\":\"x\"}}"), ONLY(COORD_EPROTO)},
    {"put_absent_revision_negative", PUT_ABSENT,
     OK200("{\"succeeded\":true,\"header\":{\"revision\":\"-4\"}}"), ONLY(COORD_EPROTO)},
    {"del_array", DEL, OK200("[]"), ONLY(COORD_EPROTO)},
    {"del_deleted_not_a_number", DEL, OK200("{\"deleted\":\"x\"}"), ONLY(COORD_EPROTO)},
    {"del_deleted_array", DEL, OK200("{\"deleted\":[]}"), ONLY(COORD_EPROTO)},
    {"del_version_array", DEL_VERSION, OK200("[]"), ONLY(COORD_EPROTO)},
    {"del_version_without_responses", DEL_VERSION, OK200("{\"succeeded\":true}"),
     ONLY(COORD_EPROTO)},
    {"del_version_deleted_not_a_number", DEL_VERSION,
     OK200("{\"succeeded\":true,\"responses\":[{\"response_delete_range\":{\"deleted\":\"x\"}}]}"),
     ONLY(COORD_EPROTO)},
    {"del_version_deleted_array", DEL_VERSION,
     OK200("{\"succeeded\":true,\"responses\":[{\"response_delete_range\":{\"deleted\":[]}}]}"),
     ONLY(COORD_EPROTO)},

    /* a key watch fails at once when its initial read cannot be used */
    {"watch_initial_read_revision_array", WATCH_KEY, OK200("{\"header\":{\"revision\":[]}}"),
     ONLY(COORD_EPROTO)},
    {"watch_initial_read_not_json", WATCH_KEY, OK200("garbage"), ONLY(COORD_EPROTO)},
    /* a broken stream reports no event and is started again (want 0: the watch itself works) */
    {"watch_stream_not_json", WATCH_STREAM, OK200("hello\n"), ONLY(0), .min_tries = 2},
    {"watch_stream_events_string", WATCH_STREAM, OK200("{\"result\":{\"events\":\"x\"}}\n"),
     ONLY(0), .min_tries = 2},
    {"watch_stream_event_key_not_base64", WATCH_STREAM,
     OK200("{\"result\":{\"events\":[{\"kv\":{\"key\":\"!\"}}]}}\n"), ONLY(0), .min_tries = 2},
    {"watch_stream_error_no_leader", WATCH_STREAM,
     OK200("{\"error\":{\"grpc_code\":14,\"message\":\"no leader\"}}\n"), ONLY(0), .min_tries = 2},
    {"watch_stream_500", WATCH_STREAM, JSON(500, "{\"code\":2,\"message\":\"boom\"}"), ONLY(0),
     .min_tries = 2},
    {"watch_stream_closed_mid_body", WATCH_STREAM, PARTIAL, ONLY(0), .min_tries = 2},
    {"watch_stream_closed_unanswered", WATCH_STREAM, CLOSED, ONLY(0), .min_tries = 2},
};

#define NCASES (sizeof cases / sizeof *cases)

static void on_watch_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)ev;
    (void)rev;
    atomic_fetch_add((atomic_int *)payload, 1);
}

/* The op of `k` on `conn`, which must fail; checks what it leaves. */
static int run_op(const bad_case *k, coord_conn *conn, int timeout) {
    coord_kv kv = {0}, *kvs = NULL;
    size_t n = 0;
    coord_watch *w = NULL;
    atomic_int events;
    atomic_init(&events, 0);
    int rc = COORD_EBACKEND;
    switch (k->op) {
    case GET:
        rc = conn->backend->get(conn, "/app/x", &kv, timeout);
        assert_null(kv.key);
        assert_null(kv.value);
        break;
    case LIST:
        rc = conn->backend->list(conn, "/app/d", 0, &kvs, &n, NULL, timeout);
        assert_null(kvs);
        break;
    case PUT:
    case PUT_ABSENT:
        rc = conn->backend->put(conn, "/app/x", "v", 1,
                                k->op == PUT ? COORD_VERSION_ANY : COORD_VERSION_ABSENT, 0, &kv,
                                timeout);
        coord_kv_clear(&kv);
        break;
    case DEL:
    case DEL_VERSION:
        rc = conn->backend->del(conn, "/app/x", k->op == DEL ? COORD_VERSION_ANY : 5, timeout);
        break;
    case WATCH_KEY:
        rc = conn->backend->watch(conn, "/app/k", COORD_WATCH_KEY, 0, on_watch_event, &events, &w);
        assert_null(w);
        break;
    case OPEN:
    case WATCH_STREAM:
        fail_msg("not a failing call");
    }
    return rc;
}

/* A watch whose stream is answered badly: no event, the stream is started again, and unwatching
 * it is quick. */
static void run_stream(fixture *f, const bad_case *k, coord_conn *conn) {
    atomic_int events;
    atomic_init(&events, 0);
    int w0 = fake_http_count(f->s, op_path[k->op]);
    coord_watch *w = NULL;
    int rc =
        conn->backend->watch(conn, "/app/w", COORD_WATCH_CHILDREN, 5, on_watch_event, &events, &w);
    if (rc) fail_msg("watch: %s: %s", coord_err_name(rc), coord_last_error());
    int want = w0 + (k->min_tries ? k->min_tries : 1);
    if (fake_http_wait(f->s, op_path[k->op], want, 5000) < want)
        fail_msg("the stream was not started again");
    int64_t t0 = coord__now_ms();
    conn->backend->unwatch(conn, w);
    assert_true(coord__now_ms() - t0 < 2000);
    assert_int_equal(atomic_load(&events), 0);
}

static void run_case(void **state) {
    fixture *f = *state;
    const bad_case *k = f->row;
    const char *path = op_path[k->op];
    int timeout = k->timeout_ms ? k->timeout_ms : k->op == OPEN ? 2000 : 1000;
    /* The bound: the timeout, plus a second or a fifth of it for the rest (half a second more
     * for a call, whose client was opened with FAST). */
    int64_t bound = timeout + (timeout / 5 > 1000 ? timeout / 5 : 1000) + (k->op == OPEN ? 0 : 500);
    coord_conn *conn = NULL;
    if (k->op != OPEN) conn = open_ok(f, FAST);
    fake_http_set(f->s, path, k->reply);
    int tries0 = fake_http_count(f->s, path);
    if (k->op == WATCH_STREAM) {
        run_stream(f, k, conn);
    } else {
        int rc;
        int64_t ms;
        if (k->op == OPEN) {
            char params[96];
            snprintf(params, sizeof params, "connect_timeout_ms=%d&timeout_ms=%d", timeout,
                     timeout);
            ms = open_at(f, fake_http_port(f->s), params, &rc);
            assert_null(f->c);
            assert_int_equal(fake_http_count(f->s, "/v3/lease/keepalive"), 0);
        } else {
            int64_t t0 = coord__now_ms();
            rc = run_op(k, conn, timeout);
            ms = coord__now_ms() - t0;
        }
        check_err(k->name, rc, k->want, k->want2, ms, bound);
        if (k->detail && !strstr(coord_last_error(), k->detail))
            fail_msg("\"%s\" is not in the message", k->detail);
    }
    int tries = fake_http_count(f->s, path) - tries0, min = k->min_tries ? k->min_tries : 1;
    if (tries < min) fail_msg("%s was asked %d times, at least %d expected", path, tries, min);
    if (k->max_tries && tries > k->max_tries)
        fail_msg("%s was asked %d times, at most %d expected", path, tries, k->max_tries);
    if (!conn) return;
    /* The client is still fine: a good answer works at once. */
    fake_http_set(f->s, "/v3/kv/range",
                  (fake_http_reply)OK200("{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":"
                                         "\"L2FwcC94\",\"value\":\"aGk=\",\"mod_revision\":\"3\","
                                         "\"create_revision\":\"2\"}]}"));
    coord_kv kv = {0};
    int rc = conn->backend->get(conn, "/app/x", &kv, 2000);
    if (rc) fail_msg("get after the case: %s: %s", coord_err_name(rc), coord_last_error());
    assert_string_equal(kv.key, "/app/x");
    assert_int_equal(kv.len, 2);
    assert_memory_equal(kv.value, "hi", 2);
    assert_int_equal(kv.version, 3);
    coord_kv_clear(&kv);
}

/* ---------- a session that the server drops: the table ---------- */

typedef struct session_case {
    const char *name;
    fake_http_rule rules[2]; /* the script from the open on (a NULL path ends it) */
    bool suspended_first;    /* SUSPENDED is reported before LOST */
} session_case;

#define WHILE_FIRST_LEASE .if_path = "/v3/lease/grant", .if_min = 1, .if_max = 1
#define NO_TTL "{\"result\":{\"header\":{\"revision\":\"1\"}}}"

static const session_case session_cases[] = {
    /* the keepalive answers without a TTL: the lease expired */
    {"lease_expired", {{"/v3/lease/keepalive", OK200(NO_TTL), WHILE_FIRST_LEASE}}, false},
    {"lease_not_found",
     {{"/v3/lease/keepalive",
       OK200("{\"error\":{\"grpc_code\":5,\"http_code\":404,"
             "\"message\":\"etcdserver: requested lease not found\"}}"),
       WHILE_FIRST_LEASE}},
     false},
    /* out of contact (malformed answers) for a whole TTL */
    {"keepalive_not_json", {{"/v3/lease/keepalive", OK200("hello"), WHILE_FIRST_LEASE}}, true},
};

#define NSESSION (sizeof session_cases / sizeof *session_cases)

static size_t nrules(const session_case *k) {
    size_t n = 0;
    while (n < sizeof k->rules / sizeof *k->rules && k->rules[n].path)
        n++;
    return n;
}

/* The session is lost and replaced by a new one, renewed normally; close revokes it. */
static void run_session_case(void **state) {
    fixture *f = *state;
    const session_case *k = f->row;
    atomic_store(&f->ttl, 3); /* keepalives every second */
    open_ok(f, "connect_timeout_ms=2000&timeout_ms=2000&session_ttl_ms=3000");
    assert_int_equal(coord_client_session(f->c), 1);
    fake_http_script(f->s, k->rules, nrules(k));
    int64_t t0 = coord__now_ms();
    int from = 0;
    if (k->suspended_first) {
        from = coord_test_states_wait(&f->states, COORD_SESSION_SUSPENDED, 0, 5000);
        assert_true(from >= 0);
    }
    int lost = coord_test_states_wait(&f->states, COORD_SESSION_LOST, from, 8000);
    assert_true(lost >= 0);
    int64_t t_lost = coord__now_ms() - t0;
    int again = coord_test_states_wait(&f->states, COORD_SESSION_CONNECTED, lost + 1, 5000);
    assert_true(again > lost);
    print_message("    LOST after %lld ms, CONNECTED again after %lld ms\n", (long long)t_lost,
                  (long long)(coord__now_ms() - t0));
    assert_true(fake_http_count(f->s, "/v3/lease/grant") >= 2);
    assert_int_equal(coord_client_session(f->c), 2);
    assert_int_equal(coord_client_state(f->c), COORD_SESSION_CONNECTED);
    /* The new lease is renewed normally. */
    int ka = fake_http_count(f->s, "/v3/lease/keepalive");
    assert_true(fake_http_wait(f->s, "/v3/lease/keepalive", ka + 1, 3000) > ka);
    assert_int_equal(coord_client_session(f->c), 2);
    coord_client_close(f->c);
    f->c = NULL;
    assert_true(fake_http_count(f->s, "/v3/lease/revoke") >= 1);
}

/* ---------- cases with code of their own ---------- */

static void unreachable(void **state) {
    fixture *f = *state;
    int port = fake_http_refused_port();
    assert_true(port > 0);
    int rc;
    int64_t ms = open_at(f, port, FAST, &rc);
    check_err("open", rc, COORD_EUNAVAILABLE, 0, ms, 3000);
    assert_null(f->c);
}

/* The lease expires and no new one can be granted (the cluster has no leader): the client keeps
 * trying for a new lease, stays LOST, and still closes within its timeouts (a grant attempt may
 * be in flight). */
static void lost_and_regrant_fails(void **state) {
    fixture *f = *state;
    atomic_store(&f->ttl, 3);
    open_ok(f, "connect_timeout_ms=2000&timeout_ms=2000&session_ttl_ms=3000");
    static const fake_http_rule script[] = {
        {"/v3/lease/keepalive", OK200(NO_TTL)},
        {"/v3/lease/grant", NO_LEADER, .if_path = "/v3/lease/grant", .if_min = 2},
    };
    fake_http_script(f->s, script, 2);
    int lost = coord_test_states_wait(&f->states, COORD_SESSION_LOST, 0, 5000);
    assert_true(lost >= 0);
    assert_true(fake_http_wait(f->s, "/v3/lease/grant", 4, 5000) >= 4);
    assert_int_equal(coord_client_state(f->c), COORD_SESSION_LOST);
    assert_int_equal(coord_test_states_wait(&f->states, COORD_SESSION_CONNECTED, lost + 1, 0), -1);
    int64_t t0 = coord__now_ms();
    coord_client_close(f->c);
    f->c = NULL;
    int64_t ms = coord__now_ms() - t0;
    print_message("    close took %lld ms\n", (long long)ms);
    assert_true(ms < 4000);
}

/* Everything hangs, the keepalive in flight and the revoke at close: close still returns within
 * its timeouts, having tried the revoke. */
static void close_while_server_hangs(void **state) {
    fixture *f = *state;
    atomic_store(&f->ttl, 3);
    open_ok(f, "connect_timeout_ms=1000&timeout_ms=1000&session_ttl_ms=3000");
    fake_http_set(f->s, NULL, (fake_http_reply)HOLD);
    int ka = fake_http_count(f->s, "/v3/lease/keepalive");
    assert_true(fake_http_wait(f->s, "/v3/lease/keepalive", ka + 1, 3000) > ka);
    int64_t t0 = coord__now_ms();
    coord_client_close(f->c);
    f->c = NULL;
    int64_t ms = coord__now_ms() - t0;
    print_message("    close took %lld ms\n", (long long)ms);
    assert_true(ms < 4000);
    assert_true(fake_http_count(f->s, "/v3/lease/revoke") >= 1);
}

/* The lock's enqueue txn is answered "not created" (the key exists: an earlier attempt was
 * applied and its answer lost). The enqueue's txn has no failure branch, so the backend reads
 * the key and the queue's owner by a second request, and holds the lock when the key is the
 * owner, with the key's create revision as its token. */
static void enqueue_finds_its_key(void **state) {
    fixture *f = *state;
    open_ok(f, FAST);
    /* "/app/lock/l/65-x" and the owner: the same key (create revision 5). */
#define KV5                                                                                        \
    "{\"key\":\"L2FwcC9sb2NrL2wvNjUteA==\",\"create_revision\":\"5\",\"mod_revision\":\"5\"}"
    static const fake_http_rule script[] = {
        {"/v3/kv/txn", OK200("{\"header\":{\"revision\":\"9\"},\"succeeded\":false}"),
         .if_path = "/v3/kv/txn", .if_min = 1, .if_max = 1},
        {"/v3/kv/txn",
         OK200("{\"header\":{\"revision\":\"9\"},\"succeeded\":true,\"responses\":["
               "{\"response_range\":{\"kvs\":[" KV5 "]}},{\"response_range\":{\"kvs\":[" KV5
               "]}}]}"),
         .if_path = "/v3/kv/txn", .if_min = 2, .if_max = 2},
        {"/v3/kv/deleterange", OK200("{\"header\":{\"revision\":\"10\"},\"deleted\":\"1\"}")},
    };
#undef KV5
    fake_http_script(f->s, script, sizeof script / sizeof *script);
    coord_lock *l = NULL;
    assert_int_equal(coord_lock_new(&l, f->c, "l"), 0);
    int rc = coord_lock_acquire(l, 0);
    if (rc) fail_msg("acquire: %s: %s", coord_err_name(rc), coord_last_error());
    uint64_t token = 0;
    assert_int_equal(coord_lock_token(l, &token), 0);
    assert_int_equal(token, 5);
    assert_int_equal(fake_http_count(f->s, "/v3/kv/txn"), 2);
    char *body = fake_http_last_body(f->s, "/v3/kv/txn");
    assert_non_null(body); /* the second request only reads */
    assert_null(strstr(body, "request_put"));
    assert_non_null(strstr(body, "request_range"));
    free(body);
    assert_int_equal(coord_lock_release(l), 0);
    coord_lock_free(l);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
    static const struct CMUnitTest code[] = {
        T(unreachable),
        T(lost_and_regrant_fails),
        T(close_while_server_hangs),
        T(enqueue_finds_its_key),
    };
    struct CMUnitTest tests[NCASES + NSESSION + sizeof code / sizeof *code];
    size_t n = 0;
    for (size_t i = 0; i < NCASES; i++)
        tests[n++] =
            (struct CMUnitTest){cases[i].name, run_case, setup, teardown, (void *)&cases[i]};
    for (size_t i = 0; i < NSESSION; i++)
        tests[n++] = (struct CMUnitTest){session_cases[i].name, run_session_case, setup, teardown,
                                         (void *)&session_cases[i]};
    for (size_t i = 0; i < sizeof code / sizeof *code; i++)
        tests[n++] = code[i];
    /* e.g. COORD_TEST_FILTER='get_*' to run a subset */
    const char *filter = getenv("COORD_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
