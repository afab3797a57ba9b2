/* Ring member value codec and epoch digest: pure functions, no server. */
#include <stdlib.h>
#include <string.h>

#include "testing.h"

static void roundtrip(const char *data, size_t len, unsigned weight, bool plain) {
    unsigned char *v;
    size_t vl;
    assert_int_equal(coord__member_encode(data, len, weight, &v, &vl), 0);
    if (plain) {
        assert_int_equal(vl, len);
        if (len) assert_memory_equal(v, data, len);
    } else {
        assert_true(vl > len);
    }
    unsigned w;
    size_t off;
    coord__member_decode(v, vl, &w, &off);
    assert_int_equal(w, weight);
    assert_int_equal(vl - off, len);
    if (len) assert_memory_equal(v + off, data, len);
    free(v);
}

static void test_encode_decode(void **state) {
    (void)state;
    roundtrip("", 0, 1, true);
    roundtrip("host:1234", 9, 1, true); /* weight 1: the value is the data, for other readers */
    roundtrip("host:1234", 9, 7, false);
    roundtrip("", 0, COORD_RING_MAX_WEIGHT, false);
    roundtrip("drain", 5, 0, false); /* weight 0: a member that owns no keys */
    roundtrip("\0bin\xff", 5, 2, false);
    /* data that starts like the marker is always wrapped, so it reads back as itself */
    static const char tricky[] = "\xff"
                                 "coord-weight=9\nx";
    roundtrip(tricky, sizeof tricky - 1, 1, false);
}

static void test_decode_malformed(void **state) {
    (void)state;
    static const char *const bad[] = {
        "\xff"
        "coord-weight=",
        "\xff"
        "coord-weight=\n",
        "\xff"
        "coord-weight=12",
        "\xff"
        "coord-weight=99999999999\nx",
        "\xff"
        "coord-weight=4x\n",
        "\xff"
        "coord-weig",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned w = 0;
        size_t off = 99;
        coord__member_decode(bad[i], strlen(bad[i]), &w, &off);
        assert_int_equal(w, 1);
        assert_int_equal(off, 0);
    }
    unsigned w;
    size_t off;
    coord__member_decode(NULL, 0, &w, &off);
    assert_int_equal(w, 1);
}

static void test_epoch(void **state) {
    (void)state;
    const char *a[] = {"a", "b", "c"}, *b[] = {"a", "b", "d"}, *c[] = {"ab", "c"},
               *d[] = {"a", "bc"};
    unsigned w1[] = {1, 1, 1}, w2[] = {1, 2, 1};
    assert_true(coord__ring_epoch(NULL, NULL, 0) == 0);
    uint64_t e = coord__ring_epoch(a, w1, 3);
    assert_true(e != 0);
    assert_true(e == coord__ring_epoch(a, w1, 3));
    assert_true(e != coord__ring_epoch(b, w1, 3));
    assert_true(e != coord__ring_epoch(a, w2, 3));
    assert_true(e != coord__ring_epoch(a, w1, 2));
    /* ids are delimited: "ab"+"c" is not "a"+"bc" */
    assert_true(coord__ring_epoch(c, w1, 2) != coord__ring_epoch(d, w1, 2));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_epoch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
