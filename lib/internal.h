/* Internal declarations shared by the core and the backends (not installed). */
#ifndef COORD_INTERNAL_H
#define COORD_INTERNAL_H

#include <stdint.h>
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

#endif
