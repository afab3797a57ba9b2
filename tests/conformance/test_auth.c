/*
 * Credentials and TLS on real servers (started by test_auth_tls.sh): digest ACLs on ZooKeeper,
 * users, roles and token renewal on etcd, and etcds:// with a verified CA and client certificate.
 */
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *need(const char *var) {
    const char *v = getenv(var);
    if (!v || !*v) {
        const char *req = getenv("COORD_TEST_REQUIRE_SERVERS");
        if (req && *req == '1') fail_msg("%s is not set (run test_auth_tls.sh)", var);
        skip();
    }
    return v;
}

/* The address of the server with credentials checking for this backend. */
static const char *auth_hosts(const coord_test_backend *b) {
    return need(strcmp(b->scheme, "zk") == 0 ? "COORD_TEST_ZK" : "COORD_TEST_ETCD_AUTH");
}

static int open_as(coord_client **c, const coord_test_backend *b, const char *cred,
                   const char *prefix) {
    char uri[512];
    snprintf(uri, sizeof uri, "%s://%s%s%s%s?connect_timeout_ms=3000", b->scheme, cred,
             *cred ? "@" : "", auth_hosts(b), prefix);
    *c = NULL;
    return coord_client_open(c, uri, NULL);
}

/* What one identity writes, another (wrong password, or none) cannot read. */
static void credentials_protect(void **state) {
    const coord_test_backend *b = *state;
    char prefix[128], path[160];
    snprintf(prefix, sizeof prefix, "/coordtest/auth%ld", (long)getpid());
    snprintf(path, sizeof path, "%s/secret", prefix);
    coord_client *good;
    int rc = open_as(&good, b, "alice:alicepw", prefix);
    if (rc) fail_msg("open as alice: %s", coord_last_error());
    coord_conn *k = coord__client_conn(good);
    assert_int_equal(k->backend->put(k, path, "s", 1, COORD_VERSION_ANY, 0, NULL, 3000), 0);
    coord_kv kv;
    assert_int_equal(k->backend->get(k, path, &kv, 3000), 0);
    coord_kv_clear(&kv);

    const char *others[] = {"alice:wrong", ""};
    for (size_t i = 0; i < 2; i++) {
        coord_client *bad;
        rc = open_as(&bad, b, others[i], prefix);
        if (rc == 0) {
            coord_conn *kb = coord__client_conn(bad);
            rc = kb->backend->get(kb, path, &kv, 3000);
            coord_client_close(bad);
        }
        if (rc != COORD_EAUTH)
            fail_msg("identity \"%s\": %s (%s), expected COORD_EAUTH", others[i],
                     coord_err_name(rc), coord_last_error());
        assert_true(strlen(coord_last_error()) > 0);
    }
    assert_int_equal(k->backend->del(k, path, COORD_VERSION_ANY, 3000), 0);
    coord_client_close(good);
}

/* etcd simple tokens expire (2 s on the test server); a rejected token is replaced. */
static void etcd_token_renewal(void **state) {
    (void)state;
    coord_client *c;
    int rc = open_as(&c, &coord_test_etcd, "root:rootpw", "/coordtest/renew");
    if (rc) fail_msg("open: %s", coord_last_error());
    coord_conn *k = coord__client_conn(c);
    assert_int_equal(
        k->backend->put(k, "/coordtest/renew/x", "1", 1, COORD_VERSION_ANY, 0, NULL, 3000), 0);
    /* The scenario is time itself: let the token lapse (the lease keepalive is a request too,
     * so a short TTL would keep the token alive; the default 10 s TTL renews every 3.3 s). */
    sleep(3);
    coord_kv kv;
    rc = k->backend->get(k, "/coordtest/renew/x", &kv, 3000);
    if (rc) fail_msg("get after token expiry: %s", coord_last_error());
    coord_kv_clear(&kv);
    coord_client_close(c);
}

static int open_tls(coord_client **c, const char *params) {
    char uri[1024];
    snprintf(uri, sizeof uri, "etcds://%s/coordtest/tls?connect_timeout_ms=3000%s",
             need("COORD_TEST_ETCD_TLS"), params);
    *c = NULL;
    return coord_client_open(c, uri, NULL);
}

static void etcd_tls(void **state) {
    (void)state;
    const char *d = need("COORD_TEST_TLS_DIR");
    char p[900];
    coord_client *c;
    snprintf(p, sizeof p, "&ca=%s/ca.pem&cert=%s/client.pem&key=%s/client.key", d, d, d);
    int rc = open_tls(&c, p);
    if (rc) fail_msg("etcds open: %s", coord_last_error());
    coord_conn *k = coord__client_conn(c);
    assert_int_equal(
        k->backend->put(k, "/coordtest/tls/x", "1", 1, COORD_VERSION_ANY, 0, NULL, 3000), 0);
    coord_client_close(c);

    /* A server certificate from another CA is refused. */
    snprintf(p, sizeof p, "&ca=%s/other.pem&cert=%s/client.pem&key=%s/client.key", d, d, d);
    assert_int_equal(open_tls(&c, p), COORD_EAUTH);
    assert_non_null(strstr(coord_last_error(), "TLS"));
    /* Without the client certificate the server refuses the handshake. */
    snprintf(p, sizeof p, "&ca=%s/ca.pem", d);
    rc = open_tls(&c, p);
    if (rc != COORD_EAUTH && rc != COORD_EUNAVAILABLE)
        fail_msg("without a client certificate: %s (%s)", coord_err_name(rc), coord_last_error());
    assert_null(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COORD_CONFORMANCE(credentials_protect),
        cmocka_unit_test(etcd_token_renewal),
        cmocka_unit_test(etcd_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
