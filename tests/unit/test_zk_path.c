/* Unit tests for backends/zk/zk_path.h: sequence suffixes and path helpers. */
#include "testing.h"

#ifdef COORD_WITH_ZOOKEEPER

#include <string.h>

#include "zk_path.h"

static void seq_is(const char *name, int64_t want) {
    int64_t seq = -12345;
    if (!zk_sequence(name, &seq)) fail_msg("zk_sequence(\"%s\") = false", name);
    assert_int_equal(seq, want);
    /* seq may be NULL. */
    assert_true(zk_sequence(name, NULL));
}

static void not_seq(const char *name) {
    int64_t seq = -12345;
    if (zk_sequence(name, &seq)) fail_msg("zk_sequence(\"%s\") = true", name);
    assert_int_equal(seq, -12345); /* untouched */
    assert_false(zk_sequence(name, NULL));
}

static void test_curator_names(void **state) {
    (void)state;
    /* Curator InterProcessMutex with protection: _c_<uuid>-lock-<seq>. */
    seq_is("_c_8f1e2d3c-0a1b-4c5d-8e9f-0123456789ab-lock-0000000012", 12);
    seq_is("_c_8f1e2d3c-0a1b-4c5d-8e9f-0123456789ab-lease-0000000000", 0);
    /* Curator without protection, kazoo ("<uuid>__lock__"), leader latch. */
    seq_is("lock-0000000007", 7);
    seq_is("7f3c9b4e4bd24c4cbb8d0d0e8d9e2b1a__lock__0000000003", 3);
    seq_is("latch-0000000100", 100);
    seq_is("x-0000000000", 0);
    seq_is("x-2147483647", 2147483647); /* largest value of the server's int32 counter */
    seq_is("n-9999999999", 9999999999LL);
    seq_is("0000000042", 42);            /* exactly ten digits, no stem */
    seq_is("12345678901", 2345678901LL); /* only the last ten count */
}

static void test_not_sequences(void **state) {
    (void)state;
    not_seq("");
    not_seq("x");
    not_seq("lock");
    not_seq("000000001");   /* 9 digits */
    not_seq("x-000000012"); /* 9 digits after the dash */
    not_seq("lock-00000a0012");
    not_seq("lock-0000000012a");
    not_seq("lock-000000001 ");
    not_seq("lock- 000000001");
    not_seq("lock-+000000001");
    not_seq("lock--000000001"); /* a wrapped counter formatted by %010d */
    not_seq("lock-000000001/");
    not_seq("lock-0000000x12");
    not_seq("x0000000\xd9\xa1"
            "0"); /* non-ASCII digit bytes */
}

static void test_parent_len(void **state) {
    (void)state;
    assert_int_equal(zk_parent_len("/a/b"), 2);
    assert_int_equal(zk_parent_len("/a"), 0);
    assert_int_equal(zk_parent_len("/a/b/c"), 4);
    assert_int_equal(zk_parent_len("/coord/locks/x-0000000001"), strlen("/coord/locks"));
    assert_int_equal(zk_parent_len("/"), 0);
    /* The parent is a prefix of the path. */
    const char *p = "/app/group/member";
    size_t n = zk_parent_len(p);
    assert_int_equal(n, 10);
    assert_memory_equal(p, "/app/group", n);
}

static void test_basename(void **state) {
    (void)state;
    assert_string_equal(zk_basename("/a/b"), "b");
    assert_string_equal(zk_basename("/a"), "a");
    assert_string_equal(zk_basename("/a/b/lock-0000000012"), "lock-0000000012");
    assert_string_equal(zk_basename("/"), "");
    /* The result points into the argument. */
    const char *p = "/x/yz";
    assert_ptr_equal(zk_basename(p), p + 3);
    /* basename and parent_len split the path. */
    const char *q = "/coord/locks/_c_ab-lock-0000000005";
    assert_ptr_equal(zk_basename(q), q + zk_parent_len(q) + 1);
    int64_t seq = 0;
    assert_true(zk_sequence(zk_basename(q), &seq));
    assert_int_equal(seq, 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curator_names),
        cmocka_unit_test(test_not_sequences),
        cmocka_unit_test(test_parent_len),
        cmocka_unit_test(test_basename),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !COORD_WITH_ZOOKEEPER: zk_path.c is not part of the library */

static void test_zk_path_not_built(void **state) {
    (void)state;
    skip();
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_zk_path_not_built)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
