/*
 * An in-memory backend for the unit tier: the recipes run against it with no server.
 *
 * One server per process holds a tree of entries (value, version, order, token, owner session),
 * a global revision and the watches; every client opened on a fake scheme talks to it, so two
 * clients contend for one lock. Two flavours follow the two real backends where the recipes take
 * different paths (the lock queue, conflicts, sequential names):
 *
 *  - `fakezk://` (also `fake://`), table coord_fake_zk_backend: ZooKeeper-like. version is the
 *    entry's update count + 1, token its creation zxid (the global revision), order the 10-digit
 *    sequence suffix of sequential names (else the zxid); sequential puts; lock contenders are
 *    `_c_<tag>-lock-<seq>`, Curator's layout (enqueue always makes a new one: it leaves an older
 *    contender of its tag to the core, which must delete it first); del_async, answered on the
 *    connection's event thread after the events the delete caused;
 *    a conflict does not return the current entry (version -1); a list's epoch is the parent's
 *    child version + 1; CHILDREN watches see only changes of the set of names.
 *  - `fakeetcd://`, table coord_fake_etcd_backend: etcd-like. version is the mod revision,
 *    order and token the create revision; no sequential puts (COORD_ENOTSUP); lock contenders
 *    are `<session hex>-<tag>`, etcd's Mutex layout, found again by enqueue; a conflict returns
 *    the current entry; a list's epoch is the revision; CHILDREN watches also see value updates.
 *
 * Host, port and credentials of the URI are ignored: `fakezk://local/app` is enough.
 *
 * Events (watch callbacks and session states) run on a thread of each connection, in the order
 * they happened, never under a lock of the fake. A KEY watch on an absent key reports
 * COORD_EV_DELETED at once; when a session is replaced every live watch of that connection
 * reports COORD_EV_RESET.
 *
 * Sessions: fake_expire() ends one as the server would (its ephemeral entries go, slots answer
 * COORD_ESESSION), then the connection reports LOST, takes a new session and reports CONNECTED.
 * fake_suspend()/fake_resume() cut one connection off (slots answer COORD_EUNAVAILABLE, state
 * SUSPENDED) and give it back (CONNECTED, or LOST first when the session expired meanwhile);
 * fake_server_down()/fake_server_up() do it to every connection and refuse opens in between.
 *
 * Every slot call is counted per connection and for the whole server (fake_calls).
 */
#ifndef COORD_FAKE_BACKEND_H
#define COORD_FAKE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord.h"
#include "coord/sys/backend.h"

#include "fault_backend.h" /* coord_slot */

extern const coord_backend coord_fake_zk_backend;
extern const coord_backend coord_fake_etcd_backend;

/* Register both fake tables (and the fault shim over each, see fault_backend.h); idempotent.
 * 0 or the registration's error. */
int fake_register(void);

/* The fake connection under a client, or under a fault shim's connection; NULL if none. */
coord_conn *fake_conn(coord_client *c);

/* Slot calls counted so far: by `c`'s connection, or by every connection when c is NULL. */
uint64_t fake_calls(coord_client *c, coord_slot slot);
/* Forget the counts of `c` (or of the server when NULL). */
void fake_calls_reset(coord_client *c);

/* End `c`'s session on the server now: its ephemeral entries are deleted (others' watches
 * fire), then the connection reports LOST, opens a new session and reports CONNECTED (once the
 * server is reachable). Returns at once; fake_sync() waits for the reports. */
void fake_expire(coord_client *c);
/* Tell every watch of `c` that history it resumes from was compacted (COORD_EV_RESET), as etcd
 * does to a watch resuming from a compacted revision. */
void fake_compact(coord_client *c);
/* Cut `c` off (SUSPENDED; slots fail with COORD_EUNAVAILABLE) or give it back (CONNECTED). */
void fake_suspend(coord_client *c);
void fake_resume(coord_client *c);
/* The same for every connection; opens fail with COORD_EUNAVAILABLE while the server is down. */
void fake_server_down(void);
void fake_server_up(void);
/* A connection cut off (fake_suspend, fake_server_down) for its session TTL by the library's
 * clock (coord__now_ms, which coord__clock_advance moves) has its session ended, as a server
 * ends a session whose keepalives stop: at fake_tick, or at fake_resume. A connected client's
 * session never ends by itself. */
void fake_tick(void);

/* Wait (up to timeout_ms) until every event queued so far for `c` (every connection when NULL)
 * has been delivered. 0, or COORD_ETIMEDOUT. */
int fake_sync(coord_client *c, int timeout_ms);

/* ---- for cmocka tests (testing.h) ---- */

/* One test body run on both flavours, each through the fault shim (`fault+fakezk://`,
 * `fault+fakeetcd://`): the prestate is the scheme; fake_setup registers the tables, and
 * fake_teardown removes every fault rule, brings the server back up and checks nothing is left
 * queued. */
#define FAKE_BOTH(fn)                                                                              \
    {"fakezk:" #fn, fn, fake_setup, fake_teardown, (void *)"fault+fakezk"}, {                      \
        "fakeetcd:" #fn, fn, fake_setup, fake_teardown, (void *)"fault+fakeetcd"                   \
    }
int fake_setup(void **state);
int fake_teardown(void **state);

/* The scheme under test ("fault+fakezk" or "fault+fakeetcd"): is it the etcd-like one? */
bool fake_is_etcd(void **state);

/*
 * Open a client of the flavour under test on a fresh prefix (unique per process and call) plus
 * `params` (may be NULL); with `rec` (a coord_test_states, may be NULL) session states are
 * recorded there. Fails the test when the open fails. `*uri_out` (may be NULL) receives the URI,
 * for more clients on the same prefix (fake_open_uri); the caller frees it.
 */
coord_client *fake_open(void **state, const char *params, void *rec, char **uri_out);
/* Another client on `uri` (states recorded in `rec` when not NULL). */
coord_client *fake_open_uri(const char *uri, void *rec);

/* Entries on the server whose path starts with `prefix` (every entry when NULL). */
size_t fake_count(const char *prefix);
/* Wait (up to timeout_ms) until exactly `n` entries start with `prefix`: 0, or COORD_ETIMEDOUT. */
int fake_await_count(const char *prefix, size_t n, int timeout_ms);
/* The current global revision (bumped by every write). */
int64_t fake_revision(void);
/* Write or delete an entry directly, as another party would (not counted, fires watches):
 * `ephemeral_of` is a client whose session will own it, or NULL for a persistent entry. */
int fake_write(const char *path, const void *value, size_t len, coord_client *ephemeral_of);
int fake_remove(const char *path);
/* Copy of an entry's value (caller frees; NULL when absent); `*len` gets its length. */
void *fake_value(const char *path, size_t *len);

#endif
