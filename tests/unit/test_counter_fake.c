/*
 * The counter recipe on the fake backend (no server), both flavours: operations, a conflict and
 * its retry (the current value in the same round trip on etcd, read again on ZooKeeper), a write
 * of unknown outcome reported and never retried, contention, sharding, the formats and their
 * capability check.
 */
#include "testing.h"
#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *key_of(coord_client *c, const char *rest) {
    char *p = NULL;
    if (asprintf(&p, "%s/counter/%s", coord_client_prefix(c), rest) < 0) fail_msg("out of memory");
    return p;
}

/* The stored value as a C string (caller frees). */
static char *stored(coord_client *c, const char *rest) {
    char *p = key_of(c, rest);
    char *v = fake_value(p, NULL);
    free(p);
    return v;
}

static void operations(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
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
    char *s = stored(c, "ops");
    assert_string_equal(s, "-2");
    free(s);
    assert_int_equal(coord_counter_cas(k, 3, 4), COORD_ECONFLICT);
    assert_int_equal(coord_counter_cas(k, -2, 10), 0);
    assert_int_equal(coord_counter_set(k, INT64_MAX), 0);
    assert_int_equal(coord_counter_add(k, 1, NULL), COORD_EINVAL); /* overflow */
    assert_int_equal(coord_counter_get(k, &v), 0);
    assert_int_equal(v, INT64_MAX);
    assert_int_equal(coord_counter_set(k, 0), 0);
    /* a value that is not a number */
    char *p = key_of(c, "ops");
    assert_int_equal(fake_write(p, "x1", 2, NULL), 0);
    assert_int_equal(coord_counter_get(k, &v), COORD_EPROTO);
    assert_int_equal(coord_counter_add(k, 1, NULL), COORD_EPROTO);
    assert_int_equal(fake_write(p, "", 0, NULL), 0); /* empty reads 0 */
    assert_int_equal(coord_counter_get(k, &v), 0);
    assert_int_equal(v, 0);
    coord_counter_free(k);
    coord_client_close(c);
    free(p);
}

/* Another writer moved the value since this handle's last look: the add conflicts once, then
 * lands on the fresh value. etcd returns the current entry with the conflict (no read);
 * ZooKeeper reads it again. */
static void conflict_retry(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_counter *ka, *kb;
    assert_int_equal(coord_counter_new(&ka, a, "cr", NULL), 0);
    assert_int_equal(coord_counter_new(&kb, b, "cr", NULL), 0);
    int64_t v;
    assert_int_equal(coord_counter_add(ka, 1, &v), 0);
    assert_int_equal(coord_counter_add(kb, 10, &v), 0);
    assert_int_equal(v, 11);
    fake_calls_reset(a);
    assert_int_equal(coord_counter_add(ka, 100, &v), 0);
    assert_int_equal(v, 111);
    assert_int_equal(fake_calls(a, SLOT_PUT), 2);
    assert_int_equal(fake_calls(a, SLOT_GET), fake_is_etcd(state) ? 0 : 1);
    /* uncontended: one round trip */
    fake_calls_reset(a);
    assert_int_equal(coord_counter_add(ka, 1, &v), 0);
    assert_int_equal(fake_calls(a, SLOT_PUT) + fake_calls(a, SLOT_GET), 1);
    /* cas whose write conflicts: the fresh value decides */
    assert_int_equal(coord_counter_add(kb, 1, &v), 0);
    assert_int_equal(v, 113);
    assert_int_equal(coord_counter_get(ka, &v), 0);
    assert_int_equal(coord_counter_set(kb, 7), 0);
    assert_int_equal(coord_counter_cas(ka, 113, 0), COORD_ECONFLICT); /* it is 7 */
    assert_int_equal(coord_counter_cas(ka, 7, 0), 0);
    assert_int_equal(coord_counter_get(kb, &v), 0);
    assert_int_equal(v, 0);
    /* the counter deleted behind the handle's back reads 0 again */
    char *p = key_of(a, "cr");
    assert_int_equal(fake_remove(p), 0);
    assert_int_equal(coord_counter_add(ka, 2, &v), 0);
    assert_int_equal(v, 2);
    coord_counter_free(kb);
    coord_counter_free(ka);
    coord_client_close(b);
    coord_client_close(a);
    free(p);
    free(uri);
}

/* A cas on a handle whose cached value is stale: the value on the server is the expected one,
 * so the cas succeeds (a refusal is decided on a value read during the call, never the cache). */
static void cas_stale_cache(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_counter *ka, *kb;
    assert_int_equal(coord_counter_new(&ka, a, "stale", NULL), 0);
    assert_int_equal(coord_counter_new(&kb, b, "stale", NULL), 0);
    assert_int_equal(coord_counter_add(ka, 1, NULL), 0);
    assert_int_equal(coord_counter_add(kb, 1, NULL), 0); /* 2; ka still sees 1 */
    int rc = coord_counter_cas(ka, 2, 10);
    coord_counter_free(kb);
    coord_counter_free(ka);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
    assert_int_equal(rc, 0);
}

/* Many adds from two clients at once: none lost, none doubled. */
typedef struct adder {
    coord_client *c;
    int errors;
} adder;

static void *add_main(void *arg) {
    adder *ad = arg;
    coord_counter *k;
    if (coord_counter_new(&k, ad->c, "many", NULL)) {
        ad->errors++;
        return NULL;
    }
    for (int i = 0; i < 50; i++)
        if (coord_counter_add(k, 1, NULL)) ad->errors++;
    coord_counter_free(k);
    return NULL;
}

static void exactness(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    adder ad[4] = {{a, 0}, {b, 0}, {a, 0}, {b, 0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, add_main, &ad[i]);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ad[i].errors, 0);
    }
    char *s = stored(a, "many");
    assert_string_equal(s, "200");
    free(s);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* An add whose answer is lost (applied or not) is reported, never retried: it cannot be applied
 * twice. The next add reads the value again. */
static void unknown_outcome(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    coord_counter *k;
    int64_t v;
    assert_int_equal(coord_counter_new(&k, c, "u", NULL), 0);
    assert_int_equal(coord_counter_add(k, 1, &v), 0);
    fake_calls_reset(c);
    fault_once(c, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_counter_add(k, 10, &v), COORD_ETIMEDOUT);
    assert_int_equal(fake_calls(c, SLOT_PUT), 1); /* not retried */
    char *s = stored(c, "u");
    assert_string_equal(s, "11"); /* applied */
    free(s);
    fault_once(c, SLOT_PUT, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_counter_add(k, 100, &v), COORD_EUNAVAILABLE);
    s = stored(c, "u");
    assert_string_equal(s, "11"); /* not applied, and not retried either */
    free(s);
    fake_calls_reset(c);
    assert_int_equal(coord_counter_add(k, 1, &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(fake_calls(c, SLOT_GET), 1); /* read again first */
    /* a read that fails is reported */
    fault_once(c, SLOT_GET, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_counter_get(k, &v), COORD_EUNAVAILABLE);
    fake_calls_reset(c);
    assert_int_equal(coord_counter_add(k, 1, &v), 0); /* the cache survives a failed read */
    assert_int_equal(v, 13);
    assert_int_equal(fake_calls(c, SLOT_GET), 0);
    /* a read that fails while the cache is unknown fails the add */
    fault_once(c, SLOT_PUT, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_counter_add(k, 1, &v), COORD_EUNAVAILABLE);
    fault_once(c, SLOT_GET, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_counter_add(k, 1, &v), COORD_EUNAVAILABLE);
    /* set and cas: the same */
    fault_once(c, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_AFTER);
    assert_int_equal(coord_counter_set(k, 7), COORD_ETIMEDOUT);
    s = stored(c, "u");
    assert_string_equal(s, "7");
    free(s);
    fault_once(c, SLOT_PUT, 1, COORD_ETIMEDOUT, FAULT_BEFORE);
    assert_int_equal(coord_counter_cas(k, 7, 8), COORD_ETIMEDOUT);
    assert_int_equal(coord_counter_cas(k, 7, 8), 0);
    coord_counter_free(k);
    coord_client_close(c);
}

/* Every write conflicting until the operation timeout: the add gives up with COORD_ETIMEDOUT
 * after backing off (and a cas after its second look). */
static void contention(void **state) {
    coord_client *c = fake_open(state, "timeout_ms=200", NULL, NULL);
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "hot", NULL), 0);
    int f = fault_always(c, SLOT_PUT, 1, COORD_ECONFLICT, FAULT_BEFORE);
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_counter_add(k, 1, NULL), COORD_ETIMEDOUT);
    int64_t took = coord__now_ms() - t0;
    assert_true(took >= 190 && took < 3000);
    assert_true(fault_hits(f) > 3);
    assert_non_null(strstr(coord_last_error(), "contention"));
    assert_int_equal(coord_counter_cas(k, 0, 1), COORD_ECONFLICT);
    fault_clear(c);
    assert_int_equal(coord_counter_add(k, 1, NULL), 0);
    coord_counter_free(k);
    coord_client_close(c);
}

static void sharded(void **state) {
    char *uri;
    coord_client *a = fake_open(state, NULL, NULL, &uri);
    coord_client *b = fake_open_uri(uri, NULL);
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    o.shards = 4;
    coord_counter *k[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(coord_counter_new(&k[i], i % 2 ? b : a, "sh", &o), 0);
    int64_t v;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++)
            assert_int_equal(coord_counter_add(k[i], i + 1, NULL), 0);
    assert_int_equal(coord_counter_get(k[0], &v), 0);
    assert_int_equal(v, 5 * (1 + 2 + 3 + 4));
    /* spread over the shards */
    char *dir = key_of(a, "sh/");
    assert_true(fake_count(dir) >= 2);
    /* a conflict moves the writer on to another shard */
    fault_once(a, SLOT_PUT, 1, COORD_ECONFLICT, FAULT_BEFORE);
    assert_int_equal(coord_counter_add(k[0], 100, NULL), 0);
    assert_int_equal(coord_counter_get(k[1], &v), 0);
    assert_int_equal(v, 150);
    assert_int_equal(coord_counter_cas(k[0], 150, 0), COORD_EINVAL);
    assert_int_equal(coord_counter_set(k[0], 0), COORD_EINVAL);
    /* children that are not shards are ignored; one that is not a number is an error */
    char *junk = key_of(a, "sh/notashard"), *big = key_of(a, "sh/99"), *bad = key_of(a, "sh/0");
    assert_int_equal(fake_write(junk, "5", 1, NULL), 0);
    assert_int_equal(fake_write(big, "5", 1, NULL), 0);
    assert_int_equal(coord_counter_get(k[1], &v), 0);
    assert_int_equal(v, 150);
    char *was = fake_value(bad, NULL);
    assert_int_equal(fake_write(bad, "9223372036854775807", 19, NULL), 0);
    assert_int_equal(coord_counter_get(k[1], &v), COORD_EPROTO); /* the sum overflows */
    assert_int_equal(fake_write(bad, "zz", 2, NULL), 0);
    assert_int_equal(coord_counter_get(k[1], &v), COORD_EPROTO);
    assert_int_equal(fake_write(bad, was ? was : "0", was ? strlen(was) : 1, NULL), 0);
    free(was);
    fault_once(a, SLOT_LIST, 1, COORD_EUNAVAILABLE, FAULT_BEFORE);
    assert_int_equal(coord_counter_get(k[0], &v), COORD_EUNAVAILABLE);
    for (int i = 0; i < 4; i++)
        coord_counter_free(k[i]);
    o.shards = 1025;
    assert_int_equal(coord_counter_new(&k[0], a, "sh", &o), COORD_EINVAL);
    coord_client_close(b);
    coord_client_close(a);
    free(dir);
    free(junk);
    free(big);
    free(bad);
    free(uri);
}

/* Binary formats where the backend declares them (the ZooKeeper-like fake), refused elsewhere. */
static void formats(void **state) {
    coord_client *c = fake_open(state, NULL, NULL, NULL);
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    coord_counter *k;
    o.format = COORD_COUNTER_INT64_BE;
    if (fake_is_etcd(state)) {
        assert_int_equal(coord_counter_new(&k, c, "f64", &o), COORD_EINVAL);
        o.format = COORD_COUNTER_INT32_BE;
        assert_int_equal(coord_counter_new(&k, c, "f32", &o), COORD_EINVAL);
        coord_client_close(c);
        return;
    }
    char *p64 = key_of(c, "f64"), *p32 = key_of(c, "f32");
    size_t len;
    assert_int_equal(coord_counter_new(&k, c, "f64", &o), 0);
    assert_int_equal(coord_counter_set(k, -2), 0);
    unsigned char *v = fake_value(p64, &len);
    assert_int_equal(len, 8);
    assert_memory_equal(v, "\xff\xff\xff\xff\xff\xff\xff\xfe", 8);
    free(v);
    int64_t n;
    assert_int_equal(coord_counter_add(k, 3, &n), 0);
    assert_int_equal(n, 1);
    coord_counter_free(k);
    o.format = COORD_COUNTER_INT32_BE;
    assert_int_equal(coord_counter_new(&k, c, "f32", &o), 0);
    assert_int_equal(coord_counter_set(k, 258), 0);
    v = fake_value(p32, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(v, "\x00\x00\x01\x02", 4);
    free(v);
    assert_int_equal(coord_counter_add(k, INT32_MAX, NULL), COORD_EINVAL);
    assert_int_equal(coord_counter_set(k, INT64_MAX), COORD_EINVAL);
    assert_int_equal(coord_counter_cas(k, 258, INT64_MIN), COORD_EINVAL);
    assert_int_equal(fake_write(p32, "abc", 3, NULL), 0);
    assert_int_equal(coord_counter_get(k, &n), COORD_EPROTO);
    coord_counter_free(k);
    coord_client_close(c);
    free(p64);
    free(p32);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        FAKE_BOTH(operations),      FAKE_BOTH(conflict_retry),  FAKE_BOTH(exactness),
        FAKE_BOTH(unknown_outcome), FAKE_BOTH(contention),      FAKE_BOTH(sharded),
        FAKE_BOTH(formats),         FAKE_BOTH(cas_stale_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
