/* Unit tests for lib/name.c: coord_name_check. */
#include "testing.h"

#include <string.h>

static void clear_last_error(void) {
    coord_seterr(0, "%s", "");
}

static void name_ok(const char *name) {
    clear_last_error();
    int rc = coord_name_check(name);
    if (rc != 0) fail_msg("coord_name_check(\"%s\") = %d (%s)", name, rc, coord_last_error());
}

static void name_bad(const char *name, const char *why) {
    clear_last_error();
    int rc = coord_name_check(name);
    if (rc != COORD_EINVAL) fail_msg("coord_name_check(%s) = %d, expected COORD_EINVAL", why, rc);
    if (!coord_last_error()[0]) fail_msg("no coord_last_error() detail for %s", why);
}

static void test_plain_names(void **state) {
    (void)state;
    name_ok("a");
    name_ok("lock");
    name_ok("my-lock_1.v2");
    name_ok("...");
    name_ok(".a");
    name_ok("a.");
    name_ok("..a");
    name_ok("a..b");
    name_ok("_c_8f1e2d3c-0a1b-4c5d-8e9f-0123456789ab-lock-0000000012");
    name_ok("0000000001");
    name_ok("a:b@c?d#e%f");
    name_ok("~");
}

static void test_null_and_empty(void **state) {
    (void)state;
    name_bad(NULL, "NULL");
    name_bad("", "\"\"");
}

static void test_slash(void **state) {
    (void)state;
    name_bad("a/b", "\"a/b\"");
    name_bad("/", "\"/\"");
    name_bad("/a", "\"/a\"");
    name_bad("a/", "\"a/\"");
    name_bad("//", "\"//\"");
}

static void test_dot_names(void **state) {
    (void)state;
    name_bad(".", "\".\"");
    name_bad("..", "\"..\"");
    name_ok("...");
    name_ok("....");
}

static void test_length(void **state) {
    (void)state;
    char buf[1024];
    memset(buf, 'x', sizeof buf);
    buf[255] = 0;
    name_ok(buf); /* 255 bytes */
    buf[255] = 'x';
    buf[256] = 0;
    name_bad(buf, "256 bytes");
    buf[256] = 'x';
    buf[1023] = 0;
    name_bad(buf, "1023 bytes");
    buf[1] = 0;
    name_ok(buf); /* 1 byte */

    /* 255 bytes of two-byte UTF-8 characters plus one ASCII byte. */
    size_t n = 0;
    while (n + 2 <= 254) {
        buf[n++] = '\xc3';
        buf[n++] = '\xb1';
    }
    buf[n++] = 'z';
    buf[n] = 0;
    assert_int_equal(strlen(buf), 255);
    name_ok(buf);
    buf[n++] = 'z';
    buf[n] = 0;
    name_bad(buf, "256 bytes of UTF-8");

    /* The length limit is checked before the other rules on the long string's tail. */
    memset(buf, 'a', 300);
    buf[300] = 0;
    buf[280] = '/';
    name_bad(buf, "300 bytes with '/' after byte 255");
}

static void test_control_chars(void **state) {
    (void)state;
    name_bad("\x01", "\"\\x01\"");
    name_bad("\x1f", "\"\\x1f\"");
    name_bad("\x7f", "\"\\x7f\"");
    name_bad("tab\t", "\"tab\\t\"");
    name_bad("new\nline", "\"new\\nline\"");
    name_bad("cr\r", "\"cr\\r\"");
    name_bad("a\x1b[0m", "escape sequence");
    name_bad("del\x7fx", "DEL in the middle");

    /* Every byte value in the middle of a name. */
    char buf[4] = {'a', 0, 'b', 0};
    for (int c = 1; c < 256; c++) {
        buf[1] = (char)c;
        int rc = coord_name_check(buf);
        if (c < 0x20 || c == 0x7f || c == '/')
            assert_int_equal(rc, COORD_EINVAL);
        else
            assert_int_equal(rc, 0);
    }
}

static void test_utf8_and_spaces(void **state) {
    (void)state;
    name_ok("\xc3\xb1");         /* ñ */
    name_ok("caf\xc3\xa9");      /* café */
    name_ok("\xe2\x82\xac");     /* € */
    name_ok("\xf0\x9f\x94\x92"); /* 🔒 */
    name_ok(" space");
    name_ok("space ");
    name_ok(" ");
    name_ok("a b");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_names),     cmocka_unit_test(test_null_and_empty),
        cmocka_unit_test(test_slash),           cmocka_unit_test(test_dot_names),
        cmocka_unit_test(test_length),          cmocka_unit_test(test_control_chars),
        cmocka_unit_test(test_utf8_and_spaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
