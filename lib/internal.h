/* Internal declarations shared by the core and the backends (not installed). */
#ifndef COORD_INTERNAL_H
#define COORD_INTERNAL_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <time.h>

#include "coord/sys/backend.h"

/* Built-in backends (defined in backends/<name>/), present when compiled in. */
extern const coord_backend coord__zk_backend;
extern const coord_backend coord__etcd_backend;

/* Monotonic clock in milliseconds. */
static inline int64_t coord__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Absolute CLOCK_MONOTONIC deadline `ms` from now, for pthread_cond_timedwait on a condition
 * variable created with coord__cond_init. */
struct timespec coord__deadline(int64_t ms);
int coord__cond_init(pthread_cond_t *cv);

/* The connection under a client: for the testing library and the recipes. */
coord_conn *coord__client_conn(coord_client *c);
int coord__client_timeout(const coord_client *c);

/* Expired sessions so far (a hold taken at one value is gone once it changes). */
uint64_t coord__client_lost(const coord_client *c);
/* The client's waiter mutex, under which waiters sleep on condition variables of their own
 * (made with coord__cond_init): wait_cv (mutex held) until signalled or until the absolute
 * monotonic `deadline_ms` (INT64_MAX: no bound); signal takes the mutex and wakes one. */
void coord__client_lock(coord_client *c);
void coord__client_unlock(coord_client *c);
int coord__client_wait_cv(coord_client *c, pthread_cond_t *cv, int64_t deadline_ms);
void coord__client_signal(coord_client *c, pthread_cond_t *cv);

/* Session state listeners of one client, called on a backend thread for every change before the
 * application's callback; `fn` must not block. After unlisten returns it is not running. */
typedef struct coord__listener {
    void (*fn)(void *payload, coord_session_state st);
    void *payload;
    struct coord__listener *next;
} coord__listener;
void coord__client_listen(coord_client *c, coord__listener *l);
void coord__client_unlisten(coord_client *c, coord__listener *l);

/* "<prefix>/<kind>/<name>" after checking the name; malloc'd. */
int coord__path(char **out, const coord_client *c, const char *kind, const char *name);

/* A random RFC 4122 version 4 UUID in canonical form (37 bytes with the NUL). */
int coord__uuid(char out[37]);

/* Counter value codec (pure): decode a stored value in `format`; encode into `out`. */
int coord__counter_decode(int format, const void *data, size_t len, int64_t *out);
size_t coord__counter_encode(int format, int64_t v, unsigned char out[24]);

/* Ring member value codec (pure). A member's value is its data, verbatim when its weight is 1;
 * otherwise (or when the data itself starts with the marker) "\xff" "coord-weight=<w>\n" and
 * the data. decode never fails: a malformed marker reads as plain data of weight 1. */
int coord__member_encode(const void *data, size_t len, unsigned weight, unsigned char **out,
                         size_t *outlen);
void coord__member_decode(const void *value, size_t len, unsigned *weight, size_t *data_off);
/* The epoch of a member set sorted by id: a digest of (id, weight) pairs, 0 for the empty set. */
uint64_t coord__ring_epoch(const char *const *ids, const unsigned *weights, size_t n);

/* Test hook: while > 0, a ring join's registration that succeeds is reported as COORD_ETIMEDOUT
 * (and the count goes down), as when the server applied it but its answer was lost. */
extern _Atomic int coord__test_ring_lose_answers;

/* Lock statistics for tests and benchmarks: waiter wake-ups by a predecessor's deletion. */
uint64_t coord__lock_wakeups(void);

/* Bytes a built hash ring holds (for coord-bench); 0 for NULL. */
size_t coord__hashring_bytes(const coord_hashring *h);

/* Error helpers (error.c). coord__oom records COORD_ENOMEM with the detail "out of memory"
 * without allocating and returns COORD_ENOMEM, for `return coord__oom();`. error_save and
 * error_restore keep the calling thread's detail across clean-up that may overwrite it (a
 * withdrawal after a failed acquire), so the caller still sees why its call failed. */
#define COORD__ERROR_MAX 1024
typedef struct coord__error_buf {
    char text[COORD__ERROR_MAX];
} coord__error_buf;
int coord__oom(void);
void coord__error_save(coord__error_buf *b);
void coord__error_restore(const coord__error_buf *b);

#endif
