/*
 * The WebSocket upgrade of the etcd watch stream (backends/etcd/etcd_ws.c), without a server:
 * the request it sends and its checks of the server's answer (RFC 6455 section 1.3's example).
 */
#include "testing.h"

#include <stdlib.h>
#include <string.h>

#include "etcd_int.h"

static const unsigned char sample_nonce[16] = "the sample nonce";

static void request_plain(void **state) {
    (void)state;
    char *req = NULL, key[32];
    assert_int_equal(etcd_ws_request("127.0.0.1:2379", sample_nonce, NULL, &req, key), 0);
    assert_string_equal(key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_string_equal(req, "GET /v3/watch HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n");
    free(req);
}

static void request_token(void **state) {
    (void)state;
    char *req = NULL, key[32];
    assert_int_equal(etcd_ws_request("[::1]:2379", sample_nonce, "tok.en", &req, key), 0);
    assert_non_null(strstr(req, "\r\nHost: [::1]:2379\r\n"));
    assert_non_null(strstr(req, "\r\nAuthorization: tok.en\r\n\r\n"));
    free(req);
}

#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static void answer_ok(void **state) {
    (void)state;
    const char *a = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n";
    assert_int_equal(etcd_ws_check_answer(a, strlen(a), "dGhlIHNhbXBsZSBub25jZQ=="), 0);
    /* names in any case, spaces around the value */
    const char *b = "HTTP/1.1 101 Switching Protocols\r\nupgrade:   WebSocket \r\n"
                    "sec-websocket-accept:" ACCEPT "\r\n\r\n";
    assert_int_equal(etcd_ws_check_answer(b, strlen(b), "dGhlIHNhbXBsZSBub25jZQ=="), 0);
}

/* A server that answers without switching: no WebSocket there (the client falls back). */
static void answer_not_switching(void **state) {
    (void)state;
    const char *cases[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\n\r\n",
        "HTTP/1.1 400 Bad Request\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = etcd_ws_check_answer(cases[i], strlen(cases[i]), "dGhlIHNhbXBsZSBub25jZQ==");
        if (rc != COORD_ENOTSUP) fail_msg("case %zu: %d", i, rc);
        assert_non_null(strstr(coord_last_error(), "refused"));
    }
}

static void answer_refused(void **state) {
    (void)state;
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    const char *cases[] = {
        "",
        "garbage\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nSec-WebSocket-Accept: " ACCEPT
        "\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        /* one string on two lines: the parentheses tell clang the concatenation is meant */
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"),
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = etcd_ws_check_answer(cases[i], strlen(cases[i]), key);
        if (rc != COORD_EPROTO) fail_msg("case %zu: %d", i, rc);
        assert_true(strlen(coord_last_error()) > 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_plain),
        cmocka_unit_test(request_token),
        cmocka_unit_test(answer_ok),
        cmocka_unit_test(answer_refused),
        cmocka_unit_test(answer_not_switching),
    };
    return cmocka_run_group_tests_name("etcd_ws_frame", tests, NULL, NULL);
}
