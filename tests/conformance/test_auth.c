/*
 * Credentials and TLS on real servers (started by test_auth_tls.sh): digest ACLs on ZooKeeper,
 * users, roles and token renewal on etcd, and etcds:// with a verified CA and client certificate.
 * No failure may show a password: every coord_last_error() is checked against them (and the
 * script checks the test's stderr, where the ZooKeeper client logs).
 */
#include "testing.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Every password this file uses (also listed in test_auth_tls.sh, which greps stderr). */
static const char *const secrets[] = {"alicepw",      "rootpw",       "bobpw-8d2",
                                      "carolpw-5e1",  "wrong-pw-4c7", "Zq9secretpw",
                                      "Zq9se/cretpw", "Zq9se?cretpw", NULL};

/* The current detail must show no password, nor 4 bytes in a row of the URI test's one. */
static void no_secret(const char *what) {
    const char *m = coord_last_error();
    for (const char *const *s = secrets; *s; s++)
        if (strstr(m, *s)) fail_msg("%s: a password is in the error detail", what);
    static const char *const probe[] = {"Zq9secretpw", "Zq9se/cretpw", "Zq9se?cretpw"};
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i + 4 <= strlen(probe[k]); i++)
            if (memmem(m, strlen(m), probe[k] + i, 4))
                fail_msg("%s: part of a password is in the error detail", what);
}

/* `rc` must be `want`, with a detail and without a password in it. */
static void expect(int rc, int want, const char *what) {
    if (rc != want)
        fail_msg("%s: %s (%s), expected %s", what, coord_err_name(rc), coord_last_error(),
                 coord_err_name(want));
    if (want != 0 && !coord_last_error()[0]) fail_msg("%s: no detail", what);
    no_secret(what);
}

/* COORD_EAUTH whose detail says what went wrong. */
static void expect_auth(int rc, const char *what) {
    expect(rc, COORD_EAUTH, what);
    const char *m = coord_last_error();
    if (!strcasestr(m, "permission") && !strcasestr(m, "auth"))
        fail_msg("%s: the detail does not say permission or authentication: %s", what, m);
}

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

/* Open as `cred` with extra URI `params`; with `rec`, session states are recorded there. */
static int open_opts(coord_client **c, const coord_test_backend *b, const char *cred,
                     const char *prefix, const char *params, coord_test_states *rec) {
    char uri[512];
    snprintf(uri, sizeof uri, "%s://%s%s%s%s?connect_timeout_ms=3000%s", b->scheme, cred,
             *cred ? "@" : "", auth_hosts(b), prefix, params ? params : "");
    coord_options o = COORD_OPTIONS_INIT;
    if (rec) {
        coord_test_states_init(rec);
        o.on_session = coord_test_states_cb;
        o.payload = rec;
    }
    *c = NULL;
    return coord_client_open(c, uri, &o);
}

static int open_as(coord_client **c, const coord_test_backend *b, const char *cred,
                   const char *prefix) {
    return open_opts(c, b, cred, prefix, NULL, NULL);
}

static coord_client *must_open(const coord_test_backend *b, const char *cred, const char *prefix) {
    coord_client *c;
    int rc = open_as(&c, b, cred, prefix);
    expect(rc, 0, "open");
    return c;
}

/* The names one test uses: a prefix of its own in this process ("/coordtest/<tag><pid>") and,
 * under it, the directory of lock "L" and the entry of member "a" of group "g". */
typedef struct names {
    char prefix[128], lock_dir[192], member[192];
} names;

static names names_for(const char *tag) {
    names n;
    snprintf(n.prefix, sizeof n.prefix, "/coordtest/%s%ld", tag, (long)getpid());
    snprintf(n.lock_dir, sizeof n.lock_dir, "%s/lock/L", n.prefix);
    snprintf(n.member, sizeof n.member, "%s/group/g/a", n.prefix);
    return n;
}

/* Run etcdctl against the authenticated etcd, with `input` (may be NULL) on its stdin.
 * `what` names it in a failure: the command line holds passwords. */
static void etcdctl(const char *what, const char *input, const char *args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s%s%setcdctl --endpoints http://%s --dial-timeout 3s --command-timeout 5s %s "
             ">/dev/null 2>&1",
             input ? "printf '%s\\n' '" : "", input ? input : "", input ? "' | " : "",
             need("COORD_TEST_ETCD_AUTH"), args);
    int rc = system(cmd);
    if (rc != 0) fail_msg("etcdctl %s failed (%d)", what, rc);
}

/* Revoke alice's tokens: setting a password, even the same one, drops the user's simple tokens
 * (etcd 3.4). */
static void revoke_alice(void) {
    etcdctl("user passwd", "alicepw", "--user root:rootpw user passwd alice --interactive=false");
}

/* What one identity writes, another (wrong password, or none) cannot read. */
static void credentials_protect(void **state) {
    const coord_test_backend *b = *state;
    names nm = names_for("auth");
    const char *prefix = nm.prefix;
    char path[160];
    snprintf(path, sizeof path, "%s/secret", prefix);
    coord_client *good = must_open(b, "alice:alicepw", prefix);
    coord_conn *k = coord__client_conn(good);
    assert_int_equal(k->backend->put(k, path, "s", 1, COORD_VERSION_ANY, 0, NULL, 3000), 0);
    coord_kv kv;
    assert_int_equal(k->backend->get(k, path, &kv, 3000), 0);
    coord_kv_clear(&kv);

    const char *others[] = {"alice:wrong-pw-4c7", ""};
    for (size_t i = 0; i < 2; i++) {
        coord_client *bad;
        int rc = open_as(&bad, b, others[i], prefix);
        if (rc == 0) {
            coord_conn *kb = coord__client_conn(bad);
            rc = kb->backend->get(kb, path, &kv, 3000);
            coord_client_close(bad);
        }
        expect_auth(rc, i == 0 ? "wrong password" : "no credentials");
    }
    assert_int_equal(k->backend->del(k, path, COORD_VERSION_ANY, 3000), 0);
    coord_client_close(good);
}

/* A URI with credentials that does not parse: the detail shows no part of the password, even
 * when a '/' or '?' in it (not percent-encoded) moves the URI's delimiters. No traffic. */
static void uri_errors_hide_credentials(void **state) {
    (void)state;
    static const char *const bad[] = {
        "etcd://u:Zq9secretpw@bad host/x",
        "zk://u:Zq9secretpw@127.0.0.1:99999/x",
        "u:Zq9secretpw@127.0.0.1:2379/x",
        "u:Zq9secretpw://127.0.0.1:2379/x",
        "etcdx://u:Zq9secretpw@127.0.0.1/x",
        "etcd://u:Zq9se/cretpw@127.0.0.1/x",
        "etcd://u:Zq9se?cretpw@127.0.0.1/x",
        "zk://u:Zq9se/cretpw@127.0.0.1:2181/x",
        "etcd://u:Zq9secretpw@127.0.0.1//x",
        "etcd://u:Zq9secretpw@127.0.0.1/x?ca=/ca.pem",
        "etcd://u:Zq9secretpw@127.0.0.1/x?bogus=1",
        "zk://u:Zq9secretpw@127.0.0.1/x?session_ttl_ms=abc",
        "etcd://u:Zq9se%00cretpw@127.0.0.1/x",
        "etcd://u:Zq9secretpw@/x",
        "etcd://u:Zq9secretpw@[::1/x",
        "etcd://u:Zq9secretpw@h_#x/x",
        "etcds://u:Zq9secretpw@127.0.0.1/x?cert=/c.pem",
        "etcd://u:Zq9secretpw@127.0.0.1,/x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        coord_client *c = (coord_client *)1;
        char what[32];
        snprintf(what, sizeof what, "bad URI #%zu", i);
        expect(coord_client_open(&c, bad[i], NULL), COORD_EINVAL, what);
        assert_null(c);
    }
}

/* ZooKeeper digest ACLs: nodes are their creator's. In a prefix an operator made open to all,
 * another identity can neither list nor delete a held lock's node or a member's node, and its
 * own acquire and ring fail with COORD_EAUTH; the holder is unaffected. */
static void zk_creator_only(void **state) {
    (void)state;
    const coord_test_backend *b = &coord_test_zk;
    names nm = names_for("acl");
    const char *shared = nm.prefix, *dir = nm.lock_dir, *member = nm.member;
    coord_client *anon = must_open(b, "", shared); /* makes the prefix, open to all */
    coord_client *alice = must_open(b, "alice:alicepw", shared);
    coord_lock *l;
    assert_int_equal(coord_lock_new(&l, alice, "L"), 0);
    expect(coord_lock_acquire(l, 3000), 0, "alice acquires");
    coord_ring *r;
    expect(coord_ring_new(&r, alice, "g", NULL), 0, "alice's ring");
    expect(coord_ring_join(r, "a", "x", 1, 1), 0, "alice joins");
    coord_conn *ka = coord__client_conn(alice);
    coord_kv *kids;
    size_t n;
    assert_int_equal(ka->backend->list(ka, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000), 0);
    assert_int_equal(n, 1);
    char node[320];
    snprintf(node, sizeof node, "%s/%s", dir, kids[0].key);
    coord_kv_array_free(kids, n);

    coord_client *bob = must_open(b, "bob:bobpw-8d2", shared);
    coord_client *others[] = {bob, anon};
    for (int i = 0; i < 2; i++) {
        coord_conn *k = coord__client_conn(others[i]);
        expect_auth(k->backend->del(k, node, COORD_VERSION_ANY, 3000), "delete a held lock node");
        expect_auth(k->backend->del(k, member, COORD_VERSION_ANY, 3000), "delete a member node");
        expect_auth(k->backend->put(k, member, "evil", 4, COORD_VERSION_ANY, 0, NULL, 3000),
                    "overwrite a member node");
        expect_auth(k->backend->list(k, dir, 0, &kids, &n, NULL, 3000), "list a lock");
    }
    /* Bob's own recipes on alice's nodes: a clear refusal, not a wait or "not found". */
    coord_lock *lb;
    assert_int_equal(coord_lock_new(&lb, bob, "L"), 0);
    expect_auth(coord_lock_acquire(lb, 0), "bob's try-acquire");
    expect_auth(coord_lock_acquire(lb, 2000), "bob's acquire");
    assert_false(coord_lock_held(lb));
    coord_lock_free(lb);
    coord_ring *rb = NULL;
    expect_auth(coord_ring_new(&rb, bob, "g", NULL), "bob's ring on alice's group");
    assert_null(rb);

    /* Alice still holds her lock and her membership. */
    assert_true(coord_lock_held(l));
    coord_kv kv;
    assert_int_equal(ka->backend->get(ka, node, &kv, 3000), 0);
    coord_kv_clear(&kv);
    assert_true(coord_test_ring_has(r, "a"));
    assert_int_equal(ka->backend->get(ka, member, &kv, 3000), 0);
    assert_int_equal(kv.len, 1);
    coord_kv_clear(&kv);
    expect(coord_lock_release(l), 0, "alice releases");
    coord_lock_free(l);
    coord_ring_free(r);
    coord_client_close(bob);
    coord_client_close(alice);
    coord_client_close(anon);
}

/* A ZooKeeper digest with a wrong password is just another identity: the server accepts it.
 * Opening a prefix made by alice as anyone else fails at once with COORD_EAUTH, rather than
 * every read of a missing node looking empty. Ancestors above a prefix stay usable by all. */
static void zk_wrong_password(void **state) {
    (void)state;
    const coord_test_backend *b = &coord_test_zk;
    char prefix[160], top[128], other[160];
    snprintf(top, sizeof top, "/coordtest/pw%ld", (long)getpid());
    snprintf(prefix, sizeof prefix, "%s/alice", top);
    coord_client *alice = must_open(b, "alice:alicepw", prefix);
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, alice, "n", NULL), 0);
    expect(coord_counter_add(k, 1, NULL), 0, "alice adds");
    coord_counter_free(k);

    const char *others[] = {"alice:wrong-pw-4c7", "bob:bobpw-8d2", ""};
    for (int i = 0; i < 3; i++) {
        coord_client *c;
        int64_t t0 = coord__now_ms();
        expect_auth(open_as(&c, b, others[i], prefix), "open alice's prefix as someone else");
        assert_null(c);
        assert_true(coord__now_ms() - t0 < 3000);
        /* ...and each may still make its own prefix next to alice's (the parent she made is
         * not hers alone), but not remove hers. */
        snprintf(other, sizeof other, "%s/other%d", top, i);
        c = must_open(b, others[i], other);
        coord_conn *kc = coord__client_conn(c);
        expect_auth(kc->backend->del(kc, prefix, COORD_VERSION_ANY, 3000), "delete alice's prefix");
        coord_client_close(c);
    }
    coord_client_close(alice);
}

/* etcd roles: bob may only read the prefix, carol may not touch it. Both authenticate, so
 * opening works (it does not touch the prefix); every operation beyond their rights is
 * COORD_EAUTH, through the public API, and leaves nothing behind. */
static void etcd_no_permission(void **state) {
    (void)state;
    const coord_test_backend *b = &coord_test_etcd;
    names nm = names_for("perm");
    const char *prefix = nm.prefix, *dir = nm.lock_dir;
    coord_client *alice = must_open(b, "alice:alicepw", prefix);
    coord_counter *ka;
    assert_int_equal(coord_counter_new(&ka, alice, "k", NULL), 0);
    expect(coord_counter_add(ka, 5, NULL), 0, "alice adds");
    coord_ring *ra;
    expect(coord_ring_new(&ra, alice, "g", NULL), 0, "alice's ring");
    expect(coord_ring_join(ra, "a", NULL, 0, 1), 0, "alice joins");

    /* Each identity, and whether it may read the prefix. Writes are refused to both. */
    static const struct {
        const char *cred, *name;
        bool reads;
    } who[] = {
        {"bob:bobpw-8d2", "bob", true},        /* read-only on /coordtest/ */
        {"carol:carolpw-5e1", "carol", false}, /* rights on /other/ only */
    };
    int64_t v = 0;
    for (size_t i = 0; i < sizeof who / sizeof *who; i++) {
        char what[64];
#define AS(op) (snprintf(what, sizeof what, "%s: %s", who[i].name, op), what)
        coord_client *c = must_open(b, who[i].cred, prefix);
        coord_counter *kc;
        assert_int_equal(coord_counter_new(&kc, c, "k", NULL), 0);
        v = 0;
        int rc = coord_counter_get(kc, &v);
        if (who[i].reads) {
            expect(rc, 0, AS("read the counter"));
            assert_int_equal(v, 5);
        } else {
            expect_auth(rc, AS("read the counter"));
        }
        expect_auth(coord_counter_add(kc, 1, NULL), AS("add"));
        expect_auth(coord_counter_set(kc, 9), AS("set"));
        coord_counter_free(kc);
        coord_lock *l;
        assert_int_equal(coord_lock_new(&l, c, "L"), 0);
        expect_auth(coord_lock_acquire(l, 0), AS("try-acquire"));
        expect_auth(coord_lock_acquire(l, 2000), AS("acquire"));
        assert_false(coord_lock_held(l));
        coord_lock_free(l);
        coord_ring *r = NULL;
        rc = coord_ring_new(&r, c, "g", NULL);
        if (who[i].reads) { /* it may follow the group, not join it */
            expect(rc, 0, AS("watch the group"));
            assert_true(coord_test_ring_has(r, "a"));
            expect_auth(coord_ring_join(r, "b", NULL, 0, 1), AS("join"));
            assert_false(coord_test_ring_has(r, "b"));
            coord_ring_free(r);
        } else {
            expect_auth(rc, AS("watch the group"));
            assert_null(r);
        }
#undef AS
        coord_client_close(c);
    }

    /* Nothing was written for them. */
    expect(coord_counter_get(ka, &v), 0, "alice reads");
    assert_int_equal(v, 5);
    coord_conn *k = coord__client_conn(alice);
    coord_kv *kids;
    size_t n;
    assert_int_equal(k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000), 0);
    assert_int_equal(n, 0);
    coord_kv_array_free(kids, n);
    assert_true(coord_test_ring_has(ra, "a"));
    assert_false(coord_test_ring_has(ra, "b"));
    coord_counter_free(ka);
    coord_ring_free(ra);
    coord_client_close(alice);
}

/* etcd simple tokens expire (2 s on the test server, counted from their last use): the first
 * request after an idle spell is refused, a new token is obtained and the request repeated
 * without the caller seeing it; the new token then serves the next request as it is. */
static void etcd_token_renewal(void **state) {
    (void)state;
    coord_client *c;
    /* A 30 s session renews its lease every 10 s: nothing uses the token while the test waits
     * (the default 10 s would renew every 3.3 s, and each use keeps a token alive). */
    int rc = open_opts(&c, &coord_test_etcd, "root:rootpw", "/coordtest/renew",
                       "&session_ttl_ms=30000", NULL);
    expect(rc, 0, "open");
    coord_conn *k = coord__client_conn(c);
    assert_int_equal(
        k->backend->put(k, "/coordtest/renew/x", "1", 1, COORD_VERSION_ANY, 0, NULL, 3000), 0);
    uint64_t auths = coord__etcd_authentications();
    /* No event says that the server dropped a token: its expiry is a matter of time. etcd checks
     * token deadlines once a second, so 2 s of TTL are gone for sure after 4 s idle. */
    struct timespec idle = {4, 0};
    nanosleep(&idle, NULL);
    coord_kv kv;
    rc = k->backend->get(k, "/coordtest/renew/x", &kv, 3000);
    expect(rc, 0, "get after token expiry");
    assert_int_equal(kv.len, 1);
    coord_kv_clear(&kv);
    if (coord__etcd_authentications() <= auths)
        fail_msg("the get did not authenticate again: was the token still alive?");
    /* The replacement is kept: the next request is not refused. */
    auths = coord__etcd_authentications();
    rc = k->backend->get(k, "/coordtest/renew/x", &kv, 3000);
    expect(rc, 0, "get with the new token");
    coord_kv_clear(&kv);
    assert_true(coord__etcd_authentications() == auths);
    coord_client_close(c);
}

/* A revoked token (etcd 3.4 drops a user's simple tokens when its password is set, and every
 * token when authentication is turned off and on) is replaced by the next operation without the
 * application seeing an error; the lease, and the lock held on it, carry on. */
static void etcd_token_revoked(void **state) {
    (void)state;
    const coord_test_backend *b = &coord_test_etcd;
    names nm = names_for("revoke");
    const char *prefix = nm.prefix;
    coord_test_states st;
    coord_client *c;
    expect(open_opts(&c, b, "alice:alicepw", prefix, NULL, &st), 0, "open");
    uint64_t s0 = coord_client_session(c);
    coord_lock *l;
    assert_int_equal(coord_lock_new(&l, c, "L"), 0);
    expect(coord_lock_acquire(l, 3000), 0, "acquire");
    uint64_t token0;
    assert_int_equal(coord_lock_token(l, &token0), 0);
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "k", NULL), 0);
    expect(coord_counter_add(k, 1, NULL), 0, "add");

    for (int i = 0; i < 2; i++) {
        uint64_t auths = coord__etcd_authentications();
        if (i == 0) {
            revoke_alice();
        } else { /* turning authentication off and on drops every token */
            etcdctl("auth disable", NULL, "--user root:rootpw auth disable");
            etcdctl("auth enable", NULL, "auth enable");
        }
        int64_t v = 0;
        expect(coord_counter_add(k, 1, &v), 0, "add after the token was revoked");
        assert_int_equal(v, 2 + i);
        assert_true(coord__etcd_authentications() > auths); /* it was replaced */
    }
    assert_true(coord_lock_held(l));
    uint64_t token;
    assert_int_equal(coord_lock_token(l, &token), 0);
    assert_true(token == token0);
    assert_true(coord_client_session(c) == s0);
    assert_int_equal(coord_test_states_wait(&st, COORD_SESSION_LOST, 0, 0), -1);
    coord_client *root = must_open(b, "root:rootpw", prefix);
    coord_lock *lr;
    assert_int_equal(coord_lock_new(&lr, root, "L"), 0);
    expect(coord_lock_acquire(lr, 0), COORD_ELOCKED, "another client's try-acquire");
    expect(coord_lock_release(l), 0, "release");
    expect(coord_lock_acquire(lr, 3000), 0, "another client's acquire after the release");
    coord_lock_free(lr);
    coord_client_close(root);
    coord_counter_free(k);
    coord_lock_free(l);
    coord_client_close(c);
}

/* The lease is revoked while the client's token is revoked too: the keepalive thread finds the
 * lease gone and grants a new one, re-authenticating by itself; memberships come back. */
static void etcd_lease_lost_with_revoked_token(void **state) {
    (void)state;
    const coord_test_backend *b = &coord_test_etcd;
    names nm = names_for("lease");
    const char *prefix = nm.prefix, *dir = nm.lock_dir;
    coord_test_states st;
    coord_client *c;
    expect(open_opts(&c, b, "alice:alicepw", prefix, "&session_ttl_ms=3000", &st), 0, "open");
    uint64_t s0 = coord_client_session(c);
    coord_test_changes j;
    coord_ring *r = coord_test_ring_open(c, "g", &j);
    expect(coord_ring_join(r, "a", NULL, 0, 1), 0, "join");
    coord_lock *l;
    assert_int_equal(coord_lock_new(&l, c, "L"), 0);
    expect(coord_lock_acquire(l, 3000), 0, "acquire");
    /* The lock key is named after the lease: "<lease hex>-<uuid>". */
    coord_conn *k = coord__client_conn(c);
    coord_kv *kids;
    size_t n;
    assert_int_equal(k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000), 0);
    assert_int_equal(n, 1);
    char lease[32];
    snprintf(lease, sizeof lease, "%.*s", (int)strcspn(kids[0].key, "-"), kids[0].key);
    coord_kv_array_free(kids, n);

    uint64_t auths = coord__etcd_authentications();
    revoke_alice();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "--user root:rootpw lease revoke %s", lease);
    etcdctl("lease revoke", NULL, cmd);
    int lost = coord_test_states_wait(&st, COORD_SESSION_LOST, 0, 10000);
    if (lost < 0) fail_msg("LOST was not reported");
    if (coord_test_states_wait(&st, COORD_SESSION_CONNECTED, lost + 1, 10000) < 0)
        fail_msg("no new session after the lease was revoked");
    assert_true(coord_client_session(c) > s0);
    assert_true(coord__etcd_authentications() > auths);
    /* The membership is registered again in the new session. */
    if (!coord_test_changes_wait(&j, "a", 1, 2, 10000)) fail_msg("the member did not come back");
    assert_false(coord_lock_held(l)); /* it went with the lease */
    expect(coord_lock_acquire(l, 3000), 0, "acquire in the new session");
    expect(coord_lock_release(l), 0, "release");
    coord_lock_free(l);
    coord_ring_free(r);
    coord_test_changes_destroy(&j);
    coord_client_close(c);
}

/* A restarted etcd has forgotten every simple token. Watch streams that reconnect with the old
 * one are refused; the client re-authenticates for them too, with no call of its own to do it
 * for them: a ring keeps following its group. The lease and the lock survive the restart. */
static void etcd_restart_forgets_tokens(void **state) {
    (void)state;
    const coord_test_backend *b = &coord_test_etcd;
    const char *restart = need("COORD_TEST_ETCD_AUTH_RESTART");
    names nm = names_for("restart");
    const char *prefix = nm.prefix;
    coord_client *c = must_open(b, "alice:alicepw", prefix);
    uint64_t s0 = coord_client_session(c);
    coord_test_changes j;
    coord_ring *r = coord_test_ring_open(c, "g", &j);
    expect(coord_ring_join(r, "a", NULL, 0, 1), 0, "join");
    coord_lock *l;
    assert_int_equal(coord_lock_new(&l, c, "L"), 0);
    expect(coord_lock_acquire(l, 3000), 0, "acquire");

    if (system(restart) != 0) fail_msg("restarting etcd failed");
    coord_client *other = must_open(b, "root:rootpw", prefix);
    coord_ring *ro;
    expect(coord_ring_new(&ro, other, "g", NULL), 0, "the other's ring");
    expect(coord_ring_join(ro, "b", NULL, 0, 1), 0, "the other joins");
    if (!coord_test_changes_wait(&j, "b", 1, 1, 15000))
        fail_msg("the ring did not see the join after a restart");
    assert_true(coord_test_ring_has(r, "a"));
    assert_true(coord_lock_held(l));
    assert_true(coord_client_session(c) == s0);
    coord_lock *lo;
    assert_int_equal(coord_lock_new(&lo, other, "L"), 0);
    expect(coord_lock_acquire(lo, 0), COORD_ELOCKED, "the other's try-acquire");
    coord_lock_free(lo);
    expect(coord_lock_release(l), 0, "release");
    coord_lock_free(l);
    coord_ring_free(ro);
    coord_client_close(other);
    coord_ring_free(r);
    coord_test_changes_destroy(&j);
    coord_client_close(c);
}

static int open_tls(coord_client **c, const char *cred, const char *params) {
    char uri[1024];
    /* A TLS handshake under valgrind takes seconds: the bound is generous (a refused
     * certificate still fails at once). */
    snprintf(uri, sizeof uri, "etcds://%s%s/coordtest/tls?connect_timeout_ms=15000%s", cred,
             need("COORD_TEST_ETCD_TLS"), params);
    *c = NULL;
    return coord_client_open(c, uri, NULL);
}

/* The URI parameters naming the CA, the client certificate and its key in `d` (NULL: left out). */
static void tls_params(char *p, size_t size, const char *d, const char *ca, const char *cert,
                       const char *key) {
    int n = snprintf(p, size, "&ca=%s/%s", d, ca);
    if (cert) n += snprintf(p + n, size - (size_t)n, "&cert=%s/%s", d, cert);
    if (key) snprintf(p + n, size - (size_t)n, "&key=%s/%s", d, key);
}

static void etcd_tls(void **state) {
    (void)state;
    const char *d = need("COORD_TEST_TLS_DIR");
    char p[900];
    coord_client *c;
    tls_params(p, sizeof p, d, "ca.pem", "client.pem", "client.key");
    expect(open_tls(&c, "", p), 0, "etcds open");
    coord_conn *k = coord__client_conn(c);
    assert_int_equal(
        k->backend->put(k, "/coordtest/tls/x", "1", 1, COORD_VERSION_ANY, 0, NULL, 3000), 0);
    coord_client_close(c);

    /* Refused with COORD_EAUTH, with or without credentials (never sent: no session is made);
     * `detail`, when set, is in the message. */
    static const struct {
        const char *what, *ca, *cert, *key, *detail;
    } bad[] = {
        /* a server certificate from another CA */
        {"another CA", "other.pem", "client.pem", "client.key", "TLS"},
        /* the server requires a client certificate and refuses the handshake */
        {"no client certificate", "ca.pem", NULL, NULL, "TLS"},
        {"missing certificate file", "ca.pem", "missing.pem", "client.key", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        for (int cred = 0; cred < 2; cred++) {
            tls_params(p, sizeof p, d, bad[i].ca, bad[i].cert, bad[i].key);
            expect(open_tls(&c, cred ? "alice:alicepw@" : "", p), COORD_EAUTH, bad[i].what);
            if (bad[i].detail && !strstr(coord_last_error(), bad[i].detail))
                fail_msg("%s: \"%s\" is not in the detail: %s", bad[i].what, bad[i].detail,
                         coord_last_error());
            assert_null(c);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uri_errors_hide_credentials),
        COORD_CONFORMANCE(credentials_protect),
        cmocka_unit_test(zk_creator_only),
        cmocka_unit_test(zk_wrong_password),
        cmocka_unit_test(etcd_no_permission),
        cmocka_unit_test(etcd_token_renewal),
        cmocka_unit_test(etcd_token_revoked),
        cmocka_unit_test(etcd_lease_lost_with_revoked_token),
        cmocka_unit_test(etcd_restart_forgets_tokens),
        cmocka_unit_test(etcd_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
