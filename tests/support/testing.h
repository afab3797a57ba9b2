/* Shared helpers for coord's test suites (not installed). */
#ifndef COORD_TESTING_H
#define COORD_TESTING_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "coord.h"
#include "coord/sys/backend.h"
#include "internal.h"

/* A backend under test: its scheme and the env variables that name its servers. */
typedef struct coord_test_backend {
    const char *scheme;       /* "zk" or "etcd" */
    const char *single;       /* env var with the single-node address list */
    const char *cluster;      /* env var with the 3-member address list */
    const char *servers_name; /* name for scripts/servers.sh ("zk", "etcd") */
} coord_test_backend;

extern const coord_test_backend coord_test_zk, coord_test_etcd;

/* One test body run against both backends: cmocka_unit_test_prestate(fn, &coord_test_zk)... */
#define COORD_CONFORMANCE(fn)                                                                      \
    {"zk:" #fn, fn, NULL, NULL, (void *)&coord_test_zk}, {                                         \
        "etcd:" #fn, fn, NULL, NULL, (void *)&coord_test_etcd                                      \
    }

/*
 * A URI for the backend with a fresh prefix unique to this process and call, plus `params`
 * (e.g. "session_ttl_ms=2000", may be NULL). Skips the test (or fails it when
 * COORD_TEST_REQUIRE_SERVERS=1) when the servers' environment is not set. Caller frees.
 */
char *coord_test_uri(void **state, int cluster, const char *params);

/* Run scripts/servers.sh with the given arguments (e.g. "kill", "etcd", "2"); asserts success. */
void coord_test_servers(const char *a1, const char *a2, const char *a3);
/* The member (1 to 3) that leads the backend's cluster now (servers.sh leader: waits out an
 * election); fails the test when there is none. */
int coord_test_leader(const coord_test_backend *b);
/* The cluster member (1 to 3) this process has an established TCP connection to (the first
 * found, from /proc), 0 when none: which member a client talks to. */
int coord_test_peer_member(const coord_test_backend *b);

/* Records session-state callbacks; wait for a given state with a bound. */
typedef struct coord_test_states {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int seen[64];
    int n;
} coord_test_states;

void coord_test_states_init(coord_test_states *s);
void coord_test_states_cb(coord_client *c, coord_session_state st, void *payload);
/* Wait until `st` has been recorded at index >= from; returns its index or -1 on timeout. */
int coord_test_states_wait(coord_test_states *s, int st, int from, int timeout_ms);

/*
 * Open a client on a fresh prefix of the backend under test (see coord_test_uri); with `rec`,
 * session states are recorded there. Fails the test when the open fails. `*uri_out` (may be
 * NULL) receives the URI, for more clients on the same prefix; the caller frees it.
 */
coord_client *coord_test_open(void **state, const char *params, coord_test_states *rec,
                              char **uri_out);
/* The same on the 3-member cluster when `cluster` is nonzero. */
coord_client *coord_test_open_on(void **state, int cluster, const char *params,
                                 coord_test_states *rec, char **uri_out);

/*
 * Records a ring's change callbacks (on_change = coord_test_changes_cb, payload = the recorder),
 * so a test can wait for a membership change without sleeping. Waits may also use `mu` and `cv`
 * directly: `cv` is broadcast after every callback.
 */
typedef struct coord_test_changes {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t epoch;                    /* of the last change */
    int changes;                       /* callbacks so far */
    char joined[64][64], left[64][64]; /* ids, in the order reported (the first 64 of each) */
    int njoined, nleft;
} coord_test_changes;

void coord_test_changes_init(coord_test_changes *w);
void coord_test_changes_destroy(coord_test_changes *w);
void coord_test_changes_cb(coord_ring *r, const coord_ring_change *ch, void *payload);
/* How many times `id` was reported as joined (joined != 0) or as left so far. */
int coord_test_changes_count(coord_test_changes *w, const char *id, int joined);
/* Wait until `id` has been reported as joined (or left) `times` times; false after timeout_ms. */
bool coord_test_changes_wait(coord_test_changes *w, const char *id, int joined, int times,
                             int timeout_ms);
/* A ring on `c` for `group`; with `rec`, its changes are recorded there (rec is initialised
 * here). Fails the test when the ring cannot be made. */
coord_ring *coord_test_ring_open(coord_client *c, const char *group, coord_test_changes *rec);
/* Whether `id` is a member in `r`'s current view. */
bool coord_test_ring_has(coord_ring *r, const char *id);

/* Successful etcd authentications so far, process-wide (kept by the etcd backend): a test checks
 * that a rejected token was replaced. Always 0 in a build without etcd. */
#ifdef COORD_WITH_ETCD
uint64_t coord__etcd_authentications(void);
#else
static inline uint64_t coord__etcd_authentications(void) {
    return 0;
}
#endif

/* Names every recipe must refuse with COORD_EINVAL (coord_name_check): empty, '/', "." and "..",
 * 256 bytes, control characters. NULL-terminated. */
extern const char *const coord_test_bad_names[];

#endif
