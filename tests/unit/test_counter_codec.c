/* Counter value codec: ASCII decimal and Curator's big-endian formats, strictly parsed. */
#include "testing.h"

#include <string.h>

static void decimal(void **state) {
    (void)state;
    int64_t v;
    unsigned char buf[24];
    assert_int_equal(coord__counter_decode(COORD_COUNTER_DECIMAL, "", 0, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(coord__counter_decode(COORD_COUNTER_DECIMAL, "42", 2, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(coord__counter_decode(COORD_COUNTER_DECIMAL, "-9223372036854775808", 20, &v),
                     0);
    assert_true(v == INT64_MIN);
    assert_int_equal(coord__counter_decode(COORD_COUNTER_DECIMAL, "9223372036854775807", 19, &v),
                     0);
    assert_true(v == INT64_MAX);
    const char *bad[] = {"9223372036854775808",
                         "-9223372036854775809",
                         "12a",
                         " 1",
                         "1 ",
                         "-",
                         "+1",
                         "0x10",
                         "99999999999999999999",
                         "1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(coord__counter_decode(COORD_COUNTER_DECIMAL, bad[i], strlen(bad[i]), &v),
                         COORD_EPROTO);
    size_t n = coord__counter_encode(COORD_COUNTER_DECIMAL, INT64_MIN, buf);
    assert_int_equal(n, 20);
    assert_memory_equal(buf, "-9223372036854775808", 20);
    for (int64_t x = -1000; x <= 1000; x += 7) {
        n = coord__counter_encode(COORD_COUNTER_DECIMAL, x, buf);
        assert_int_equal(coord__counter_decode(COORD_COUNTER_DECIMAL, buf, n, &v), 0);
        assert_true(v == x);
    }
}

static void binary(void **state) {
    (void)state;
    unsigned char buf[24];
    int64_t v;
    size_t n = coord__counter_encode(COORD_COUNTER_INT64_BE, -2, buf);
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "\xff\xff\xff\xff\xff\xff\xff\xfe", 8);
    assert_int_equal(coord__counter_decode(COORD_COUNTER_INT64_BE, buf, n, &v), 0);
    assert_true(v == -2);
    n = coord__counter_encode(COORD_COUNTER_INT32_BE, 258, buf);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "\x00\x00\x01\x02", 4);
    assert_int_equal(coord__counter_decode(COORD_COUNTER_INT32_BE, "\x80\x00\x00\x00", 4, &v), 0);
    assert_true(v == INT32_MIN);
    assert_int_equal(coord__counter_decode(COORD_COUNTER_INT32_BE, "\x00\x01", 2, &v),
                     COORD_EPROTO);
    assert_int_equal(coord__counter_decode(COORD_COUNTER_INT64_BE, "\x00\x00\x00\x01", 4, &v),
                     COORD_EPROTO);
    assert_int_equal(coord__counter_decode(COORD_COUNTER_INT64_BE, "", 0, &v), 0);
    assert_true(v == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(decimal), cmocka_unit_test(binary)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
