/*
 * Conformance: the counter, one body per test run against ZooKeeper and etcd on real servers.
 */
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define ADDS 250

typedef struct run {
    const char *name;
    unsigned shards;
    int64_t news[2 * THREADS * ADDS];
    int errors;
} run;

typedef struct arg {
    coord_client *c;
    run *r;
    int idx;
    int64_t sum;
} arg;

static void *adder(void *p) {
    arg *a = p;
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    o.shards = a->r->shards;
    coord_counter *k;
    if (coord_counter_new(&k, a->c, a->r->name, &o)) {
        __atomic_add_fetch(&a->r->errors, ADDS, __ATOMIC_SEQ_CST);
        return NULL;
    }
    for (int i = 0; i < ADDS; i++) {
        int64_t delta = (i % 9) + 1 + (a->idx % 3) * 10; /* varying and positive: results differ */
        int64_t nv;
        int rc = coord_counter_add(k, delta, &nv);
        if (rc) {
            fprintf(stderr, "add: %s\n", coord_last_error());
            __atomic_add_fetch(&a->r->errors, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        a->sum += delta;
        a->r->news[a->idx * ADDS + i] = nv;
    }
    coord_counter_free(k);
    return NULL;
}

static int cmp64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

static void exactness_with(void **state, unsigned shards) {
    /* This measures exactness, not latency: 8 writers on one key under valgrind can starve one
     * of them past the default 5 s contention bound. */
    char *uri = coord_test_uri(state, 0, "timeout_ms=60000");
    coord_client *c1 = NULL;
    if (coord_client_open(&c1, uri, NULL)) fail_msg("open %s: %s", uri, coord_last_error());
    coord_client *c2 = NULL;
    assert_int_equal(coord_client_open(&c2, uri, NULL), 0);
    run *r = calloc(1, sizeof *r);
    r->name = shards > 1 ? "sharded" : "exact";
    r->shards = shards;
    arg args[2 * THREADS];
    pthread_t th[2 * THREADS];
    for (int i = 0; i < 2 * THREADS; i++) {
        args[i] = (arg){i % 2 ? c2 : c1, r, i, 0};
        pthread_create(&th[i], NULL, adder, &args[i]);
    }
    int64_t want = 0;
    for (int i = 0; i < 2 * THREADS; i++) {
        pthread_join(th[i], NULL);
        want += args[i].sum;
    }
    assert_int_equal(r->errors, 0);
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    o.shards = shards;
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c1, r->name, &o), 0);
    int64_t got;
    assert_int_equal(coord_counter_get(k, &got), 0);
    assert_int_equal(got, want);
    if (shards == 1) {
        /* Every add saw its own distinct result: none was lost or applied twice. */
        qsort(r->news, 2 * THREADS * ADDS, sizeof *r->news, cmp64);
        for (size_t i = 1; i < 2 * THREADS * ADDS; i++)
            if (r->news[i] == r->news[i - 1])
                fail_msg("two adds returned %lld", (long long)r->news[i]);
    }
    coord_counter_free(k);
    free(r);
    coord_client_close(c2);
    coord_client_close(c1);
    free(uri);
}

static void exactness(void **state) {
    exactness_with(state, 1);
}

static void sharded(void **state) {
    exactness_with(state, 4);
    coord_client *c = coord_test_open(state, NULL, NULL, NULL);
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    o.shards = 4;
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "s2", &o), 0);
    assert_int_equal(coord_counter_cas(k, 0, 1), COORD_EINVAL);
    assert_int_equal(coord_counter_set(k, 1), COORD_EINVAL);
    coord_counter_free(k);
    coord_client_close(c);
}

static void operations(void **state) {
    coord_client *c = coord_test_open(state, NULL, NULL, NULL);
    coord_counter *k;
    int64_t v = -1;
    assert_int_equal(coord_counter_new(&k, c, "ops", NULL), 0);
    assert_int_equal(coord_counter_get(k, &v), 0);
    assert_int_equal(v, 0); /* missing reads 0 */
    assert_int_equal(coord_counter_add(k, 5, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(coord_counter_add(k, -7, NULL), 0);
    assert_int_equal(coord_counter_get(k, &v), 0);
    assert_int_equal(v, -2);
    assert_int_equal(coord_counter_cas(k, -2, 40), 0);
    assert_int_equal(coord_counter_cas(k, -2, 41), COORD_ECONFLICT);
    assert_int_equal(coord_counter_get(k, &v), 0);
    assert_int_equal(v, 40);
    assert_int_equal(coord_counter_set(k, INT64_MAX), 0);
    assert_int_equal(coord_counter_add(k, 1, NULL), COORD_EINVAL); /* overflow up */
    assert_int_equal(coord_counter_get(k, &v), 0);
    assert_int_equal(v, INT64_MAX); /* unchanged */
    assert_int_equal(coord_counter_set(k, INT64_MIN), 0);
    assert_int_equal(coord_counter_add(k, -1, NULL), COORD_EINVAL); /* overflow down */
    assert_int_equal(coord_counter_get(k, &v), 0);
    assert_int_equal(v, INT64_MIN);

    /* A second handle's write invalidates the first one's cache without losing anything. */
    coord_counter *k2;
    assert_int_equal(coord_counter_new(&k2, c, "ops", NULL), 0);
    assert_int_equal(coord_counter_set(k2, 100), 0);
    assert_int_equal(coord_counter_add(k, 1, &v), 0);
    assert_int_equal(v, 101);
    coord_counter_free(k2);

    /* The stored form is ASCII decimal, and a corrupted value is EPROTO, never overwritten. */
    coord_conn *kc = coord__client_conn(c);
    char path[512];
    snprintf(path, sizeof path, "%s/counter/ops", coord_client_prefix(c));
    coord_kv kv;
    assert_int_equal(kc->backend->get(kc, path, &kv, 2000), 0);
    assert_int_equal(kv.len, 3);
    assert_memory_equal(kv.value, "101", 3);
    coord_kv_clear(&kv);
    assert_int_equal(kc->backend->put(kc, path, "12abc", 5, COORD_VERSION_ANY, 0, NULL, 2000), 0);
    assert_int_equal(coord_counter_get(k, &v), COORD_EPROTO);
    assert_int_equal(coord_counter_add(k, 1, NULL), COORD_EPROTO);
    assert_int_equal(kc->backend->get(kc, path, &kv, 2000), 0);
    assert_memory_equal(kv.value, "12abc", 5);
    coord_kv_clear(&kv);
    coord_counter_free(k);
    coord_client_close(c);
}

/* Curator's binary formats (ZooKeeper only), read back by decoding the raw bytes. */
static void formats(void **state) {
    const coord_test_backend *b = *state;
    coord_client *c = coord_test_open(state, NULL, NULL, NULL);
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    coord_counter *k;
    o.format = COORD_COUNTER_INT64_BE;
    if (strcmp(b->scheme, "zk") != 0) {
        assert_int_equal(coord_counter_new(&k, c, "f64", &o), COORD_EINVAL);
        coord_client_close(c);
        return;
    }
    coord_conn *kc = coord__client_conn(c);
    char path[512];
    coord_kv kv;
    assert_int_equal(coord_counter_new(&k, c, "f64", &o), 0);
    assert_int_equal(coord_counter_add(k, -2, NULL), 0);
    snprintf(path, sizeof path, "%s/counter/f64", coord_client_prefix(c));
    assert_int_equal(kc->backend->get(kc, path, &kv, 2000), 0);
    assert_int_equal(kv.len, 8);
    assert_memory_equal(kv.value, "\xff\xff\xff\xff\xff\xff\xff\xfe", 8);
    coord_kv_clear(&kv);
    coord_counter_free(k);

    o.format = COORD_COUNTER_INT32_BE;
    assert_int_equal(coord_counter_new(&k, c, "f32", &o), 0);
    assert_int_equal(coord_counter_set(k, 258), 0);
    snprintf(path, sizeof path, "%s/counter/f32", coord_client_prefix(c));
    assert_int_equal(kc->backend->get(kc, path, &kv, 2000), 0);
    assert_int_equal(kv.len, 4);
    assert_memory_equal(kv.value, "\x00\x00\x01\x02", 4);
    coord_kv_clear(&kv);
    assert_int_equal(coord_counter_add(k, INT32_MAX, NULL), COORD_EINVAL); /* int32 overflow */
    int64_t v;
    assert_int_equal(coord_counter_get(k, &v), 0);
    assert_int_equal(v, 258);
    /* A 3-byte value is not this format. */
    assert_int_equal(kc->backend->put(kc, path, "abc", 3, COORD_VERSION_ANY, 0, NULL, 2000), 0);
    assert_int_equal(coord_counter_get(k, &v), COORD_EPROTO);
    coord_counter_free(k);
    coord_client_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COORD_CONFORMANCE(operations),
        COORD_CONFORMANCE(formats),
        COORD_CONFORMANCE(exactness),
        COORD_CONFORMANCE(sharded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
