/**
 * @file
 * coord: coordinate processes through a ZooKeeper ensemble or an etcd cluster.
 *
 * One API over both backends; the backend is chosen at run time by the URI scheme
 * (`zk://`, `etcd://`, `etcds://`). See README.md for the URI forms.
 *
 * Conventions used throughout this header:
 *  - Fallible functions return 0 on success or a negative `coord_err` code. The detail of the
 *    calling thread's last failure is available from coord_last_error().
 *  - A `**out` result belongs to the caller and is released with its type's `_free`/`_close`.
 *    An array of strings the library returns is released with coord_strings_free; each string
 *    in it is its own allocation (free() releases one). Other returned strings are borrowed from
 *    the object that returned them, as each function says.
 *  - Destructors accept NULL.
 *  - Threads (@ref md_docs_threading "docs/threading.md"): a handle is used by one thread at a
 *    time unless its documentation or that page says otherwise; coord_client, coord_ring and a
 *    built coord_hashring may be shared by any number of threads. Callbacks run on a thread owned
 *    by the library, must not block, and must not free or close the object they report on.
 *
 * This header compiles as C99 and as C++ (tests/headertest builds it both ways with -pedantic).
 */
#ifndef COORD_H
#define COORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(COORD_STATIC)
#define COORD_EXTERN
#elif defined(_WIN32)
#ifdef COORD_BUILDING
#define COORD_EXTERN __declspec(dllexport)
#else
#define COORD_EXTERN __declspec(dllimport)
#endif
#else
#define COORD_EXTERN __attribute__((visibility("default")))
#endif

/**
 * Error codes, defined once. X(name, value, text). Numbers are never reused.
 * COORD_ENOTSUP: the operation or URI scheme is not available in this build or backend.
 * COORD_ECLOSED: the object is being closed (for example an acquire interrupted by close).
 */
#define COORD_ERRORS(X)                                                                            \
    X(COORD_OK, 0, "success")                                                                      \
    X(COORD_EINVAL, -1, "invalid argument")                                                        \
    X(COORD_ENOMEM, -2, "out of memory")                                                           \
    X(COORD_ETIMEDOUT, -3, "operation timed out")                                                  \
    X(COORD_EUNAVAILABLE, -4, "no cluster member could be reached")                                \
    X(COORD_ESESSION, -5, "session expired")                                                       \
    X(COORD_ELOCKED, -6, "lock is held by another owner")                                          \
    X(COORD_ENOTHELD, -7, "lock is not held by this handle")                                       \
    X(COORD_ECONFLICT, -8, "value changed concurrently (compare failed)")                          \
    X(COORD_EEXISTS, -9, "already exists")                                                         \
    X(COORD_ENOTFOUND, -10, "not found")                                                           \
    X(COORD_EAUTH, -11, "authentication failed or permission denied")                              \
    X(COORD_EPROTO, -12, "unexpected or malformed answer from the server")                         \
    X(COORD_EBACKEND, -13, "backend failure")                                                      \
    X(COORD_ENOTSUP, -14, "not supported by this build or backend")                                \
    X(COORD_ECLOSED, -15, "object is closing")                                                     \
    X(COORD_ECANCELED, -16, "operation canceled")

/** Error codes: the COORD_ERRORS table as an enumeration (0 or a negative value). */
typedef enum coord_err {
#define COORD_X_ENUM(name, value, text) name = value,
    COORD_ERRORS(COORD_X_ENUM)
#undef COORD_X_ENUM
} coord_err;

/** Static English text for an error code ("unknown error" for a code not in the table). */
COORD_EXTERN const char *coord_strerror(int err);

/** The symbolic name of an error code, e.g. "COORD_ETIMEDOUT". Static; never NULL. */
COORD_EXTERN const char *coord_err_name(int err);

/**
 * Detail of the calling thread's last failure (e.g. "etcd 127.0.0.1:2379: connection refused").
 * Never NULL; "" when no failure was recorded. Valid until the next coord call on this thread.
 */
COORD_EXTERN const char *coord_last_error(void);

/** Runtime version, e.g. "0.1.0". Compare with COORD_VERSION_STRING for header/library skew. */
COORD_EXTERN const char *coord_version(void);

/** A connection to the cluster and the session it holds (coord_client_open). */
typedef struct coord_client coord_client;

/** Session states reported to coord_options.on_session. */
typedef enum coord_session_state {
    /** A session is established (first connect, reconnect, or a new session after LOST). */
    COORD_SESSION_CONNECTED = 1,
    /** No contact with the cluster; the session may still be alive. Locks may still be held. */
    COORD_SESSION_SUSPENDED = 2,
    /** The session expired: locks held and memberships made through it are gone. The client
     *  opens a new session by itself and reports CONNECTED again. */
    COORD_SESSION_LOST = 3
} coord_session_state;

/** Name of a session state ("CONNECTED", "SUSPENDED", "LOST"). */
COORD_EXTERN const char *coord_session_state_name(coord_session_state s);

/**
 * Session-state callback. Runs on a library thread, once per transition, in order; it must not
 * block and must not close the client.
 */
typedef void (*coord_session_cb)(coord_client *c, coord_session_state state, void *payload);

/** The version of coord_options this header declares (coord_options.version). */
#define COORD_OPTIONS_VERSION 2

/**
 * Client options. Zero fields mean "use the URI's value, or the default". Explicit options win
 * over the URI. Fields are only ever appended; set `version` with COORD_OPTIONS_INIT.
 */
typedef struct coord_options {
    /** COORD_OPTIONS_VERSION (set by COORD_OPTIONS_INIT or coord_options_init). */
    unsigned version;
    /** ZooKeeper session timeout / etcd lease TTL (default 10000). */
    int session_ttl_ms;
    /** Default per-operation timeout (default 5000). */
    int timeout_ms;
    /** Time allowed for coord_client_open to establish a session (default 5000). */
    int connect_timeout_ms;
    /** Session-state callback, may be NULL. */
    coord_session_cb on_session;
    /** Passed to on_session as its last argument. */
    void *payload;
    /** Loop mode (version 2): every callback of the client runs inside coord_client_process,
     *  and the `_async` operations may be used. See "Loop mode" below and docs/loop.md. */
    bool loop;
} coord_options;

/** Initialiser with the defaults: `coord_options o = COORD_OPTIONS_INIT;`. */
#define COORD_OPTIONS_INIT                                                                         \
    { COORD_OPTIONS_VERSION, 0, 0, 0, NULL, NULL, false }

/** Initialise `opts` to the defaults of `version`. COORD_EINVAL for an unknown version or a NULL
 *  `opts`. */
COORD_EXTERN int coord_options_init(coord_options *opts, unsigned version);

/**
 * Connect to the cluster named by `uri` and establish a session.
 *
 * Blocks until a session exists or connect_timeout_ms elapses. `opts` may be NULL. On success
 * `*out` belongs to the caller (coord_client_close). On failure `*out` is NULL and nothing is left
 * running. Errors: COORD_EINVAL (malformed URI or options, unknown scheme), COORD_ENOTSUP (scheme
 * of a backend not built in), COORD_EUNAVAILABLE / COORD_ETIMEDOUT (no member reachable in
 * time), COORD_EAUTH, COORD_EPROTO, COORD_ENOMEM.
 */
COORD_EXTERN int coord_client_open(coord_client **out, const char *uri, const coord_options *opts);

/**
 * Release held locks, leave groups, end the session (ZooKeeper close / etcd lease revoke) and
 * free the client. NULL-safe. Every lock, counter and ring made from `c` must be freed first,
 * and no other thread may be using `c`. In loop mode operations may be in flight: their `done`
 * runs on the calling thread (COORD_ECANCELED when not finished) before close returns, and the
 * handles may then only be freed (docs/loop.md). Called from a session callback it does nothing but
 * record a detail in coord_last_error() (closing waits for the thread running the callback).
 */
COORD_EXTERN void coord_client_close(coord_client *c);

/** "zookeeper" or "etcd". The string is static. */
COORD_EXTERN const char *coord_client_backend(const coord_client *c);

/** The client's current session state (CONNECTED, SUSPENDED or LOST). */
COORD_EXTERN coord_session_state coord_client_state(const coord_client *c);

/**
 * A number that changes each time the client replaces its session (starts at 1). Locks and
 * memberships belong to one session; comparing this value tells whether one was replaced.
 */
COORD_EXTERN uint64_t coord_client_session(const coord_client *c);

/** The key/node prefix this client works under, e.g. "/coord". Borrowed from `c`. */
COORD_EXTERN const char *coord_client_prefix(const coord_client *c);

/**
 * Free an array of `n` strings returned by the library (coord_ring_members, and every later
 * function that returns an array of strings): each string, then the array `v`. NULL-safe; a
 * NULL entry is skipped. Each string is its own allocation, so a program may instead free them
 * one by one with free(), then the array.
 */
COORD_EXTERN void coord_strings_free(char **v, size_t n);

/**
 * Check a lock, counter, group or member name: 1 to 255 bytes, no '/', no control characters,
 * not "." or "..". Returns 0 or COORD_EINVAL (with a detail in coord_last_error()).
 */
COORD_EXTERN int coord_name_check(const char *name);

/* ------------------------------------------------------------------------------------------ */
/* Lock: a fair (FIFO), herd-free distributed mutex with fencing tokens.                      */

/** A handle on a named distributed lock (coord_lock_new). */
typedef struct coord_lock coord_lock;

/**
 * A handle on the lock `name` (1-255 bytes, no '/', no control characters, not "." or "..").
 * No network traffic. Many handles may share `c` (each used by one thread at a time: @ref
 * md_docs_threading "docs/threading.md"), and two handles exclude each other like two processes
 * do. Free with coord_lock_free before closing the client. Errors: COORD_EINVAL (bad name, NULL),
 * COORD_ENOMEM.
 *
 * On the servers: etcd keys "<prefix>/lock/<name>/<lease hex>-<uuid>" on the client's lease, in
 * the layout of etcd's concurrency.Mutex (so `etcdctl lock <prefix>/lock/<name>` and coord exclude
 * each other); ZooKeeper ephemeral sequential nodes "<prefix>/lock/<name>/_c_<uuid>-lock-<seq>"
 * (Apache Curator's InterProcessMutex layout).
 */
COORD_EXTERN int coord_lock_new(coord_lock **out, coord_client *c, const char *name);

/**
 * Acquire. `timeout_ms` < 0 waits as long as it takes; 0 tries once (COORD_ELOCKED when another
 * owner holds it); > 0 waits at most that long (COORD_ETIMEDOUT). Waiters are served in the order
 * they asked, and a release wakes only the next one. A failed or timed-out attempt leaves nothing
 * on the server. COORD_ESESSION when the session expired while waiting; COORD_EINVAL when this
 * handle already holds the lock; backend errors as for any operation.
 */
COORD_EXTERN int coord_lock_acquire(coord_lock *l, int timeout_ms);

/**
 * Release. COORD_ENOTHELD when the handle does not hold the lock (never acquired, released, or
 * lost with its session).
 *
 * When no server answers, the release keeps trying across reconnects for up to the client's
 * operation timeout (`timeout_ms`); what is still not done then is handed to the client, which
 * deletes exactly that contender as soon as it reaches a server again, while the session lives,
 * without the application calling anything. Either way it returns 0 and the handle holds nothing:
 * it may acquire again at once (its new contender comes after the old one is deleted). Other
 * failures (COORD_EAUTH...) are returned as they are.
 */
COORD_EXTERN int coord_lock_release(coord_lock *l);

/**
 * The fencing token of the current hold: strictly increasing across successive holders of the
 * lock (etcd: create revision of the holder's key; ZooKeeper: czxid of its node), so a resource
 * can refuse a stale holder. COORD_ENOTHELD without a hold.
 */
COORD_EXTERN int coord_lock_token(const coord_lock *l, uint64_t *out);

/** True while the handle holds the lock; false once released or lost with the session (no I/O). */
COORD_EXTERN bool coord_lock_held(const coord_lock *l);

/**
 * Make coord_lock_acquire on `l`, running in another thread, give up: it removes its waiter entry
 * and returns COORD_ECANCELED. When no acquire is running, the next one returns COORD_ECANCELED
 * at once (so a cancel racing with the start of an acquire is never lost). Does not touch a hold
 * already taken. The one lock function that may be called from any thread while another uses
 * the handle; not async-signal-safe (call it from a thread, e.g. one that waits for signals with
 * sigwait).
 */
COORD_EXTERN void coord_lock_cancel(coord_lock *l);

/** Release if held (one try; what it cannot delete is handed to the client as in
 * coord_lock_release), then free. NULL-safe. Does not wait for a server. */
COORD_EXTERN void coord_lock_free(coord_lock *l);

/* ------------------------------------------------------------------------------------------ */
/* Election: one leader at a time, in campaign order, with fenced terms.                      */

/** A handle on a named leader election (coord_election_new). */
typedef struct coord_election coord_election;

/** Values (election values, later KV values and queue items) are at most this many bytes. */
#define COORD_VALUE_MAX 1000000u

/** A leader as coord_election_options.on_leader reports it. */
typedef struct coord_leader {
    const void *value; /**< the leader's proclaimed value (borrowed for the call) */
    size_t len;        /**< length of `value` */
    uint64_t term;     /**< fencing token of that leadership, strictly increasing */
    bool mine;         /**< this handle is the leader (false while its client is SUSPENDED) */
} coord_leader;

/** Options of coord_election_new; start from COORD_ELECTION_OPTIONS_INIT. */
typedef struct coord_election_options {
    unsigned version; /**< COORD_ELECTION_OPTIONS_VERSION */
    /**
     * Called on every change of leader, of the leader's value (a proclaim) and of `mine`, and
     * with NULL when there is no leader. A handle with `on_leader` observes from coord_election_new
     * on and first reports the current state. Runs on a library thread; must not block, nor
     * call coord_election_free on `e`; the pointers are valid during the call only.
     */
    void (*on_leader)(coord_election *e, const coord_leader *leader, void *payload);
    void *payload; /**< passed to on_leader */
} coord_election_options;

/** The version of coord_election_options this header declares. */
#define COORD_ELECTION_OPTIONS_VERSION 1
/** Initializer of a coord_election_options with its defaults. */
#define COORD_ELECTION_OPTIONS_INIT                                                                \
    { COORD_ELECTION_OPTIONS_VERSION, NULL, NULL }

/** Set `*o` to COORD_ELECTION_OPTIONS_INIT for `version`. COORD_EINVAL for NULL or an unknown
 * version. */
COORD_EXTERN int coord_election_options_init(coord_election_options *o, unsigned version);

/**
 * A handle on the election `name` (a name as for locks). `opts` may be NULL. Without on_leader
 * no network traffic; with it, the handle reads the current leader and starts observing (the
 * backend's errors are then returned). Free with coord_election_free before closing the client.
 *
 * On the servers: etcd keys "<prefix>/election/<name>/<lease hex>-<uuid>" on the client's lease,
 * value = the proclaimed value, leader = lowest create revision (the layout of etcd's
 * concurrency.Election: `etcdctl elect <prefix>/election/<name>` campaigns in the same
 * election); ZooKeeper ephemeral sequential nodes "<prefix>/election/<name>/_c_<uuid>-latch-<seq>"
 * with the value as data (Apache Curator's LeaderLatch layout). On ZooKeeper every child whose
 * name ends in a 10-digit sequence is a candidate, in sequence order (Curator LeaderSelector's
 * "-lock-" and kazoo Election's "__lock__" nodes too).
 */
COORD_EXTERN int coord_election_new(coord_election **out, coord_client *c, const char *name,
                                    const coord_election_options *opts);

/**
 * Stand as a candidate with `value` (`len` bytes, at most COORD_VALUE_MAX) and wait to lead:
 * `timeout_ms` < 0 waits as long as it takes, 0 tries once (COORD_ELOCKED when another leads),
 * > 0 waits at most that long (COORD_ETIMEDOUT). 0 once this handle leads. Candidates lead in
 * the order they campaigned; each waits only for the one before it, so a resignation or a crash
 * wakes only the next. A failed, timed-out or canceled campaign leaves nothing on the server.
 * COORD_ESESSION when the session was lost (or the candidate's entry vanished) while waiting;
 * COORD_ECANCELED after coord_election_cancel; COORD_EINVAL when the handle already campaigns
 * or leads, or for a value over the limit.
 */
COORD_EXTERN int coord_election_campaign(coord_election *e, const void *value, size_t len,
                                         int timeout_ms);

/**
 * Replace the leader's value with `value` (every observer sees it). Leader only: COORD_ENOTHELD
 * when this handle does not lead (or no longer does: its entry is gone or was replaced).
 */
COORD_EXTERN int coord_election_proclaim(coord_election *e, const void *value, size_t len);

/**
 * Step down, or withdraw a candidacy a campaign left (none can, see campaign): the handle's
 * entry is deleted and the next candidate leads. As coord_lock_release, a deletion no server
 * answers is handed to the client after the operation timeout, and 0 is returned. COORD_ENOTHELD
 * when the handle neither campaigns nor leads.
 */
COORD_EXTERN int coord_election_resign(coord_election *e);

/**
 * True while this handle leads: false while the client is SUSPENDED (a leader that cannot reach
 * the servers cannot know it still leads), after the session was lost or the entry vanished
 * (deleted by someone else: noticed within a round trip, or within 20 ms plus a round trip of
 * the campaign's return, since a lead is watched once it has stood 20 ms; a leader that resigns
 * sooner costs the servers no watch). It turns true again when the same session comes back with
 * the entry still first. No I/O.
 */
COORD_EXTERN bool coord_election_is_leader(const coord_election *e);

/**
 * The term of this handle's leadership (etcd: the create revision of its key; ZooKeeper: the
 * czxid of its node): strictly increasing across successive leaders, so a resource can refuse
 * writes stamped with an older term. COORD_ENOTHELD when the handle does not lead.
 */
COORD_EXTERN int coord_election_term(const coord_election *e, uint64_t *out);

/**
 * The current leader of the election, from any client (a candidate or not): its value (the
 * caller frees it with free(); may be NULL when `len` is 0), length and term. `value`, `len` and
 * `term` may each be NULL. COORD_ENOTFOUND when there is no leader.
 */
COORD_EXTERN int coord_election_leader(coord_election *e, void **value, size_t *len,
                                       uint64_t *term);

/**
 * Make coord_election_campaign on `e`, running in another thread, give up (COORD_ECANCELED,
 * nothing left behind); as coord_lock_cancel, a cancel with no campaign running makes the next
 * one return COORD_ECANCELED at once. May be called from any thread.
 */
COORD_EXTERN void coord_election_cancel(coord_election *e);

/** Resign (one try; what it cannot delete is handed to the client), stop observing, free.
 * NULL-safe. */
COORD_EXTERN void coord_election_free(coord_election *e);

/* ------------------------------------------------------------------------------------------ */
/* Semaphore: at most max_leases holders across all clients, FIFO.                             */

/** A handle on a named counting semaphore (coord_semaphore_new). */
typedef struct coord_semaphore coord_semaphore;

/**
 * A handle on the semaphore `name` (a name as for locks) allowing `max_leases` holders at once.
 * No network traffic. COORD_EINVAL for a bad name or `max_leases` 0. Free with
 * coord_semaphore_free before closing the client.
 *
 * On the servers: the limit is stored as ASCII decimal in the persistent entry
 * "<prefix>/semaphore/<name>" when the semaphore is first used (a limit-less entry made by
 * another tool gets it); its children are "locks" (a coord lock: only its holder waits for a
 * free lease, so a release wakes one waiter) and "leases". ZooKeeper: lease nodes
 * "leases/_c_<uuid>-lease-<seq>", Apache Curator's InterProcessSemaphoreV2 layout, so Curator
 * processes given the same limit share the semaphore. etcd: lease keys
 * "leases/<lease hex>-<uuid>" on the client's lease.
 */
COORD_EXTERN int coord_semaphore_new(coord_semaphore **out, coord_client *c, const char *name,
                                     unsigned max_leases);

/**
 * Take one lease: `timeout_ms` < 0 waits as long as it takes, 0 tries once (COORD_ELOCKED when
 * every lease is taken), > 0 bounds the wait (COORD_ETIMEDOUT). Waiters are served in arrival
 * order. COORD_ECONFLICT, before any wait, when the semaphore's stored limit differs from this
 * handle's; COORD_EINVAL when the handle holds a lease already; COORD_ESESSION, COORD_ECANCELED
 * as for locks. A failed, timed-out or canceled acquire leaves nothing on the server.
 */
COORD_EXTERN int coord_semaphore_acquire(coord_semaphore *s, int timeout_ms);

/** Give the lease back (as coord_lock_release: a deletion no server answers is handed to the
 * client, and 0 returned). COORD_ENOTHELD when the handle holds none. */
COORD_EXTERN int coord_semaphore_release(coord_semaphore *s);

/** True while the handle holds a lease (false once released or lost with the session). No I/O. */
COORD_EXTERN bool coord_semaphore_held(const coord_semaphore *s);

/** Make a running coord_semaphore_acquire on `s` (or the next one) return COORD_ECANCELED, as
 * coord_lock_cancel. May be called from any thread. */
COORD_EXTERN void coord_semaphore_cancel(coord_semaphore *s);

/** Release the lease if held (one try, then the client's), then free. NULL-safe. */
COORD_EXTERN void coord_semaphore_free(coord_semaphore *s);

/* ------------------------------------------------------------------------------------------ */
/* Read-write lock: shared readers or one writer, fair in arrival order, fenced.               */

/** A handle on a named read-write lock (coord_rwlock_new). */
typedef struct coord_rwlock coord_rwlock;

/**
 * A handle on the read-write lock `name`. No network traffic. Free with coord_rwlock_free
 * before closing the client.
 *
 * On the servers: ZooKeeper ephemeral sequential nodes
 * "<prefix>/rwlock/<name>/_c_<uuid>-__READ__<seq>" and "..._c_<uuid>-__WRIT__<seq>" (Apache
 * Curator's InterProcessReadWriteLock layout); etcd keys
 * "<prefix>/rwlock/<name>/read/<lease hex>-<uuid>" and ".../write/..." on the client's lease,
 * ordered by create revision.
 */
COORD_EXTERN int coord_rwlock_new(coord_rwlock **out, coord_client *c, const char *name);

/**
 * Take the lock shared (any number of readers) or exclusive (one writer, no reader). Requests
 * are served in arrival order: a reader waits only for the last writer queued before it, a
 * writer for whoever is just before it, so a waiting writer is not starved by later readers.
 * `timeout_ms` as for coord_lock_acquire (COORD_ELOCKED on a try, COORD_ETIMEDOUT); COORD_EINVAL
 * when the handle holds the lock already (no re-entry, no upgrade); COORD_ESESSION,
 * COORD_ECANCELED as for locks. Nothing is left on the server by a failed attempt.
 */
COORD_EXTERN int coord_rwlock_rdlock(coord_rwlock *l, int timeout_ms);
/** See coord_rwlock_rdlock. */
COORD_EXTERN int coord_rwlock_wrlock(coord_rwlock *l, int timeout_ms);

/** Release what the handle holds (as coord_lock_release). COORD_ENOTHELD when it holds
 * neither. */
COORD_EXTERN int coord_rwlock_unlock(coord_rwlock *l);

/**
 * The fencing token of the handle's hold, reader or writer: the create revision / czxid of its
 * entry; writers' tokens strictly increase across successive writers. COORD_ENOTHELD when the
 * handle holds nothing.
 */
COORD_EXTERN int coord_rwlock_token(const coord_rwlock *l, uint64_t *out);

/** True while the handle holds the lock, shared or exclusive. No I/O. */
COORD_EXTERN bool coord_rwlock_held(const coord_rwlock *l);

/** Make a running rdlock/wrlock on `l` (or the next one) return COORD_ECANCELED. Any thread. */
COORD_EXTERN void coord_rwlock_cancel(coord_rwlock *l);

/** Unlock if held (one try, then the client's), then free. NULL-safe. */
COORD_EXTERN void coord_rwlock_free(coord_rwlock *l);

/* ------------------------------------------------------------------------------------------ */
/* Barriers: a barrier that holds waiters while raised, and a double barrier.                  */

/** A handle on a named barrier (coord_barrier_new). */
typedef struct coord_barrier coord_barrier;

/**
 * A handle on the barrier `name`. No network traffic. The barrier is raised while the persistent
 * entry "<prefix>/barrier/<name>" exists (the protocol of Curator's DistributedBarrier and
 * kazoo's Barrier, which share it), so it outlives the raiser's session.
 */
COORD_EXTERN int coord_barrier_new(coord_barrier **out, coord_client *c, const char *name);
/** Raise the barrier (idempotent: raising a raised barrier succeeds). */
COORD_EXTERN int coord_barrier_raise(coord_barrier *b);
/** Lower it, waking every waiter (lowering a barrier that is not raised succeeds). */
COORD_EXTERN int coord_barrier_lower(coord_barrier *b);
/**
 * Return 0 as soon as the barrier is not raised: `timeout_ms` < 0 waits as long as it takes, 0
 * only looks (COORD_ELOCKED while raised), > 0 bounds the wait (COORD_ETIMEDOUT);
 * COORD_ECANCELED after coord_barrier_cancel.
 */
COORD_EXTERN int coord_barrier_wait(coord_barrier *b, int timeout_ms);
/** Make a running coord_barrier_wait (or the next) return COORD_ECANCELED. Any thread. */
COORD_EXTERN void coord_barrier_cancel(coord_barrier *b);
/** Free the handle (the barrier stays as it is on the server). NULL-safe. */
COORD_EXTERN void coord_barrier_free(coord_barrier *b);

/** A handle on a named double barrier (coord_dbarrier_new). */
typedef struct coord_dbarrier coord_dbarrier;

/**
 * A handle on the double barrier `name` for `count` participants (COORD_EINVAL for 0). No network
 * traffic. On the servers: "<prefix>/dbarrier/<name>/" holds one ephemeral entry per participant
 * and a "ready" entry (the ZooKeeper recipe Curator's DistributedDoubleBarrier and kazoo's
 * DoubleBarrier follow); a participant that dies is counted out with its session.
 */
COORD_EXTERN int coord_dbarrier_new(coord_dbarrier **out, coord_client *c, const char *name,
                                    unsigned count);
/**
 * Enter: return once `count` participants have entered ("ready" exists; one arriving after that
 * passes at once). `timeout_ms` as for coord_barrier_wait (COORD_ELOCKED on a try that would
 * wait); an enter that fails or times out removes its entry. COORD_EINVAL when the handle has
 * entered already.
 */
COORD_EXTERN int coord_dbarrier_enter(coord_dbarrier *b, int timeout_ms);
/**
 * Leave: remove this participant's entry and return once every participant has left; the last
 * one removes "ready". COORD_ENOTHELD without enter. A timed-out leave has removed its entry.
 */
COORD_EXTERN int coord_dbarrier_leave(coord_dbarrier *b, int timeout_ms);
/** Make a running enter or leave (or the next) return COORD_ECANCELED. Any thread. */
COORD_EXTERN void coord_dbarrier_cancel(coord_dbarrier *b);
/** Leave if entered (one try, then the client's), then free. NULL-safe. */
COORD_EXTERN void coord_dbarrier_free(coord_dbarrier *b);

/* ------------------------------------------------------------------------------------------ */
/* Counter: an exact, linearizable distributed int64.                                          */

/** A handle on a named distributed counter (coord_counter_new). */
typedef struct coord_counter coord_counter;

/**
 * @name Counter formats
 * Stored formats (coord_counter_options.format). DECIMAL is ASCII (readable by etcdctl, zkCli.sh
 * and kazoo's Counter); the binary ones are Apache Curator's (DistributedAtomicLong, SharedCount),
 * ZooKeeper only.
 * @{
 */
#define COORD_COUNTER_DECIMAL 0  /**< ASCII decimal (the default). */
#define COORD_COUNTER_INT64_BE 1 /**< 8 bytes big-endian: Curator's DistributedAtomicLong. */
#define COORD_COUNTER_INT32_BE 2 /**< 4 bytes big-endian: Curator's SharedCount. */
/** @} */

/** The version of coord_counter_options this header declares. */
#define COORD_COUNTER_OPTIONS_VERSION 1

/** Counter options (coord_counter_new). Fields are only ever appended. */
typedef struct coord_counter_options {
    /** COORD_COUNTER_OPTIONS_VERSION (set by COORD_COUNTER_OPTIONS_INIT or
     *  coord_counter_options_init). */
    unsigned version;
    /** Keys that adds are spread over (default 1). With more than one, get sums them and
     *  cas/set are not available. */
    unsigned shards;
    /** COORD_COUNTER_DECIMAL (default), COORD_COUNTER_INT64_BE or COORD_COUNTER_INT32_BE. */
    int format;
} coord_counter_options;

/** Initialiser with the defaults: one shard, COORD_COUNTER_DECIMAL. */
#define COORD_COUNTER_OPTIONS_INIT                                                                 \
    { COORD_COUNTER_OPTIONS_VERSION, 1, COORD_COUNTER_DECIMAL }

/** Initialise `opts` to the defaults of `version`, as coord_options_init does. */
COORD_EXTERN int coord_counter_options_init(coord_counter_options *opts, unsigned version);

/**
 * A handle on the counter `name` (stored at "<prefix>/counter/<name>", shards at
 * "<prefix>/counter/<name>/<i>"). No network traffic.
 * Errors: COORD_EINVAL (bad name or options; a binary format on etcd), COORD_ENOMEM.
 */
COORD_EXTERN int coord_counter_new(coord_counter **out, coord_client *c, const char *name,
                                   const coord_counter_options *opts);

/** Read the value (the sum of the shards); a missing counter reads 0. COORD_EPROTO when a
 *  stored value is not a number in the counter's format. */
COORD_EXTERN int coord_counter_get(coord_counter *k, int64_t *out);

/**
 * Add `delta` atomically; `*out_new` (may be NULL) receives the value after this add (of this
 * handle's shard when sharded). One round trip when uncontended. COORD_EINVAL when the result
 * would overflow (nothing written). COORD_ETIMEDOUT / COORD_EUNAVAILABLE mean the outcome is
 * unknown: the add may or may not have been applied, and is never applied twice.
 */
COORD_EXTERN int coord_counter_add(coord_counter *k, int64_t delta, int64_t *out_new);

/** Set to `desired` if the value is `expected`, else COORD_ECONFLICT. Not on sharded counters. */
COORD_EXTERN int coord_counter_cas(coord_counter *k, int64_t expected, int64_t desired);

/** Set unconditionally. Not on sharded counters (COORD_EINVAL). */
COORD_EXTERN int coord_counter_set(coord_counter *k, int64_t value);

/** Free the handle (the counter stays on the server). NULL-safe. */
COORD_EXTERN void coord_counter_free(coord_counter *k);

/* ------------------------------------------------------------------------------------------ */
/* Ring: group membership with consistent hashing, and the hash ring itself.                  */

/** A group membership with its hash ring, kept up to date from the servers. */
typedef struct coord_ring coord_ring;

/** An immutable hash ring over a given member set, usable without any server. */
typedef struct coord_hashring coord_hashring;

/**
 * @name Placements
 * How keys map to members (coord_ring_options.placement).
 *
 * COORD_RING_DEFAULT: multi-probe consistent hashing over XXH3-64. Each member gets
 *   `weight * vnodes` points on a 32-bit circle; a key is hashed to 3 probe positions and belongs
 *   to the member of the point nearest to any probe (in either direction; ties go to the point
 *   first in circle order). Properties: the mapping is a pure function of the (id, weight) set,
 *   whatever the order the members are given in; when a member joins, leaves or changes weight,
 *   keys only move to or from that member; with the default vnodes the load of the busiest of 100
 *   equal members is within about 10% of the mean.
 *
 * COORD_RING_KETAMA: libketama's continuum, point for point: per member
 *   floorf((float)w/(float)W * 40.0 * n) MD5 digests of "<id>-<i>", 4 little-endian points per
 *   digest (w its weight, W the total, n the number of members of non-zero weight); a key hashes
 *   to the first 4 bytes of its MD5 read little-endian and belongs to the first point >= that
 *   hash, wrapping to the first point. Equal points go to the member given first (as libketama
 *   does with a stable qsort such as glibc's).
 *
 * COORD_RING_LIBMEMCACHED: libmemcached's weighted ketama (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED)
 *   with member ids "host:port": an id ending in ":11211" is hashed without that suffix
 *   ("host-<i>"), the digest count is computed in single precision as libmemcached does (39 rather
 *   than 40 digests at 50 or 100 equal members), equal points go to the member given first
 *   (libmemcached's server order). A coord ring and a libmemcached client given the same servers
 *   in the same order map every key alike.
 */
/** @{ */
#define COORD_RING_DEFAULT 0      /**< Multi-probe consistent hashing over XXH3-64. */
#define COORD_RING_KETAMA 1       /**< libketama's continuum. */
#define COORD_RING_LIBMEMCACHED 2 /**< libmemcached's weighted ketama. */
/** @} */

/** Points per unit of weight of COORD_RING_DEFAULT when coord_ring_options.vnodes is 0. A built
 *  ring holds about 10 bytes a point: some 12 MB for 10,000 members of weight 1. */
#define COORD_RING_VNODES_DEFAULT 128

/**
 * A change of a ring's member set, reported to coord_ring_options.on_change. The struct and
 * every string it points to are valid only during the callback; copy what you keep.
 */
typedef struct coord_ring_change {
    /** The new epoch (see coord_ring_epoch). */
    uint64_t epoch;
    /** Ids that joined since the previous report. */
    const char *const *joined;
    /** Number of ids in `joined`. */
    size_t njoined;
    /** Ids that left since the previous report. */
    const char *const *left;
    /** Number of ids in `left`. */
    size_t nleft;
} coord_ring_change;

/** The version of coord_ring_options this header declares. */
#define COORD_RING_OPTIONS_VERSION 1

/** Ring options (coord_ring_new, coord_hashring_build). Fields are only ever appended. */
typedef struct coord_ring_options {
    /** COORD_RING_OPTIONS_VERSION (set by COORD_RING_OPTIONS_INIT or coord_ring_options_init). */
    unsigned version;
    /** COORD_RING_DEFAULT (default), COORD_RING_KETAMA or COORD_RING_LIBMEMCACHED. */
    int placement;
    /** COORD_RING_DEFAULT: points per unit of weight; 0 = COORD_RING_VNODES_DEFAULT. Ignored by
     *  the compatible placements, whose point counts are fixed by the formats they follow. */
    unsigned vnodes;
    /** Member set changes of a coord_ring, may be NULL. Runs on a library thread and must not
     *  block. Not used by coord_hashring_build. */
    void (*on_change)(coord_ring *r, const coord_ring_change *change, void *payload);
    /** Passed to on_change as its last argument. */
    void *payload;
} coord_ring_options;

/** Initialiser with the defaults: COORD_RING_DEFAULT placement, default vnodes. */
#define COORD_RING_OPTIONS_INIT                                                                    \
    { COORD_RING_OPTIONS_VERSION, COORD_RING_DEFAULT, 0, NULL, NULL }

/** Initialise `opts` to the defaults of `version`, as coord_options_init does. */
COORD_EXTERN int coord_ring_options_init(coord_ring_options *opts, unsigned version);

/**
 * Build a hash ring over `n` members: `member_ids[i]` with weight `weights[i]` (`weights` may be
 * NULL: every weight is 1), placed as `opts` says (`opts` may be NULL: COORD_RING_DEFAULT with the
 * default vnodes). No I/O. On success `*out` belongs to the caller (coord_hashring_free); on
 * failure `*out` is NULL.
 *
 * Ids are any non-empty NUL-terminated strings, unique within the ring; the ring copies them, so
 * the arrays may be freed once this returns. The default and KETAMA placements give the same ring
 * whatever the order of the members; LIBMEMCACHED follows the given order for equal points, as
 * libmemcached follows its server order.
 *
 * Weight 0: a member of weight 0 owns no keys in the default and KETAMA placements (libketama
 * skips servers of weight 0: they do not count in n or W); LIBMEMCACHED counts it as weight 1,
 * as libmemcached does. A ring of no member, or only of members that own no keys, is valid: its
 * lookups find nothing.
 *
 * Errors: COORD_EINVAL (`out` NULL; `member_ids` NULL while n > 0; a NULL or empty id; the same id
 * twice; an unknown options version or placement; more than about 4 billion points in all, i.e.
 * weights times vnodes too large), COORD_ENOMEM, COORD_ENOTSUP (KETAMA or LIBMEMCACHED when the
 * crypto library refuses MD5, as in FIPS mode).
 */
COORD_EXTERN int coord_hashring_build(coord_hashring **out, const char *const *member_ids,
                                      const unsigned *weights, size_t n,
                                      const coord_ring_options *opts);

/**
 * The member that owns `key` (`keylen` bytes, any content; `key` may be NULL when `keylen` is 0).
 * The result points into the ring and stays valid until coord_hashring_free. NULL when the ring
 * has no member owning keys, or when `h` is NULL or `key` is NULL with `keylen` > 0. The default
 * placement never allocates; KETAMA and LIBMEMCACHED hash the key with OpenSSL's EVP_Digest,
 * which does, and return NULL in the unlikely event it fails. The ring is immutable: any number
 * of threads may look up at once.
 */
COORD_EXTERN const char *coord_hashring_lookup(const coord_hashring *h, const void *key,
                                               size_t keylen);

/**
 * Up to `n` distinct members for `key`, in the order met walking the circle clockwise from the
 * point that owns the key, so `members[0]` is coord_hashring_lookup's answer (replica sets, or
 * fallbacks in order). Fills `members[0..k)` with pointers into the ring (valid until
 * coord_hashring_free) and returns k = min(n, number of members owning keys). Returns 0 when `h`
 * or `members` is NULL, or `key` is NULL with `keylen` > 0. Allocates and is thread-safe like
 * coord_hashring_lookup.
 */
COORD_EXTERN size_t coord_hashring_lookup_n(const coord_hashring *h, const void *key, size_t keylen,
                                            size_t n, const char **members);

/** Free the ring. Every string it returned becomes invalid. NULL-safe. */
COORD_EXTERN void coord_hashring_free(coord_hashring *h);

/* Membership. A ring handle watches the group "<prefix>/group/<group>" (no polling) and keeps a
 * hash ring of its live members; it may also register one member of its own. */

/** Largest weight a member may join with. */
#define COORD_RING_MAX_WEIGHT 65535u

/**
 * Watch `group` (a name, see coord_name_check) and build its ring from the members present now,
 * so the ring is complete when this returns. `opts` may be NULL (defaults). The handle belongs
 * to the caller (coord_ring_free) and must be freed before its client.
 *
 * `opts->on_change` runs after every change of the member set, on the ring's own thread, or on
 * the caller's thread inside coord_ring_join / coord_ring_leave (which show the caller its own
 * change at once). It must not block and must not call coord_ring_join, coord_ring_leave or
 * coord_ring_free on the same ring; lookups are fine.
 *
 * Errors: COORD_EINVAL (NULL argument, bad group name, bad options), COORD_ENOMEM, and the
 * backend's errors for the first listing (COORD_EUNAVAILABLE, COORD_ETIMEDOUT, COORD_EAUTH...).
 */
COORD_EXTERN int coord_ring_new(coord_ring **out, coord_client *c, const char *group,
                                const coord_ring_options *opts);

/**
 * Register `member_id` in the group with `data` (`len` bytes, may be NULL when 0) as the value
 * of "<prefix>/group/<group>/<member_id>", ephemeral (ZooKeeper) or on the client's lease
 * (etcd): it goes when the process dies or its session expires. When the client replaces an
 * expired session, the member is registered again by itself.
 *
 * `weight` (0 to COORD_RING_MAX_WEIGHT) scales the member's share of keys; 0 keeps it listed but
 * owning nothing (e.g. while it drains) in the default and KETAMA placements, while LIBMEMCACHED,
 * like libmemcached, counts 0 as 1. With weight 1 the stored value is exactly `data`, so
 * kazoo's Party, tooz or etcdctl read it as is; other weights are stored as "\xff" "coord-weight=
 * <w>\n" followed by `data`.
 *
 * One membership per handle. Errors: COORD_EINVAL (bad id, weight, or this handle has joined
 * already), COORD_EEXISTS (the id is held by another live session), COORD_ENOMEM, backend errors.
 * After COORD_ETIMEDOUT or COORD_EUNAVAILABLE the member may or may not have been registered:
 * the client then removes whatever that attempt left as soon as it reaches a server, unless a
 * join again with the same id and data comes first and takes the entry as its own (one made by
 * this session, not another's); coord_ring_leave removes it at once.
 */
COORD_EXTERN int coord_ring_join(coord_ring *r, const char *member_id, const void *data, size_t len,
                                 unsigned weight);

/**
 * Remove this handle's member from the group at once (observers see it go without waiting for a
 * session timeout), or the entry a join with an unknown outcome may have left. COORD_EINVAL when
 * the handle has not joined (nor tried).
 *
 * When no server answers, leave keeps trying across reconnects for up to the client's operation
 * timeout, then hands the deletion of exactly that entry to the client, which completes it as
 * soon as it reaches a server again, while the session lives. Either way it returns 0 and the
 * handle is no longer a member: it may join again at once (the old entry is deleted first).
 * Failures no retry can cure (COORD_EAUTH...) are returned and the membership is kept.
 */
COORD_EXTERN int coord_ring_leave(coord_ring *r);

/**
 * Copy the id of the member owning `key` (`keylen` bytes) into `member` (`cap` bytes, NUL
 * included). Reads the current ring only: never blocks on the network, nor waits for an update
 * of the ring in progress. COORD_ENOTFOUND when no member owns keys, COORD_EINVAL for NULL
 * arguments or a buffer too small (ids are at most 255 bytes: 256 always suffices).
 */
COORD_EXTERN int coord_ring_lookup(coord_ring *r, const void *key, size_t keylen, char *member,
                                   size_t cap);

/**
 * Up to `n` distinct members for `key`, clockwise from its owner (replica sets): fills
 * `members[0..*count)` (an array of at least `n` pointers the caller provides) with copies that
 * belong to the caller. When the array came from malloc, coord_strings_free(members, *count)
 * frees the copies and the array; each copy is its own allocation, which free() releases (for
 * an array on the stack). Same reading rules and errors as coord_ring_lookup.
 */
COORD_EXTERN int coord_ring_lookup_n(coord_ring *r, const void *key, size_t keylen, size_t n,
                                     char **members, size_t *count);

/**
 * The current member ids, sorted: `*ids` is a new array of `*count` strings; free it with
 * coord_strings_free(*ids, *count). COORD_EINVAL for NULL arguments, COORD_ENOMEM.
 */
COORD_EXTERN int coord_ring_members(coord_ring *r, char ***ids, size_t *count);

/** The same as coord_strings_free, under its first name. */
COORD_EXTERN void coord_ring_strings_free(char **v, size_t n);

/**
 * The epoch of the current member set: a 64-bit digest of its (id, weight) pairs, 0 for an empty
 * set (and for NULL). It changes exactly when the member set changes, and two rings of the same
 * group that show the same epoch map every key to the same member, whichever client or backend
 * they run on. (A revision or a child version would differ between clients that saw the same set
 * at different times.) A set that comes back, e.g. after a leave and a join of the same id, has
 * its old epoch again.
 */
COORD_EXTERN uint64_t coord_ring_epoch(const coord_ring *r);

/** Leave (when joined), stop watching and free the handle. NULL-safe. */
COORD_EXTERN void coord_ring_free(coord_ring *r);

/* ------------------------------------------------------------------------------------------ */
/* Key-value space: values under "<prefix>/kv/", watches, transactions with fenced writes.    */

/**
 * Keys are one or more names joined by '/' (each a name as coord_name_check says: "a",
 * "svc/db/primary"), stored at "<prefix>/kv/<key>": other recipes' entries are out of reach.
 * Values are 0 to COORD_VALUE_MAX bytes of any content. A version identifies one state of a key:
 * 0 = absent, else etcd's mod revision or ZooKeeper's data version + 1 (which starts again at 1
 * when a deleted key is created again). A key that was never put reads COORD_ENOTFOUND on both
 * backends, also where ZooKeeper holds a node for it as the parent of deeper keys; deleting a key
 * leaves its deeper keys.
 *
 * Every call here blocks for at most the client's operation timeout and is safe from any thread.
 * Common errors: COORD_EINVAL (a NULL argument, a bad key, a value over COORD_VALUE_MAX: no
 * traffic), COORD_ENOTSUP (a backend without a key-value space), COORD_EUNAVAILABLE,
 * COORD_ETIMEDOUT (a write then may or may not have been applied), COORD_EAUTH, COORD_ENOMEM.
 */

/**
 * Read `key`: `*value` (malloc'd, NUL-terminated one byte past `*len` for convenience; the caller
 * frees it) and `*version` (may be NULL). COORD_ENOTFOUND when absent.
 */
COORD_EXTERN int coord_kv_get(coord_client *c, const char *key, void **value, size_t *len,
                              int64_t *version);

/**
 * Write `key` (`value` may be NULL when `len` is 0) if its version is `expect`: -1 whatever it
 * is, 0 only if absent, else only at that version (COORD_ECONFLICT otherwise). `*version` (may
 * be NULL) receives the new version.
 */
COORD_EXTERN int coord_kv_put(coord_client *c, const char *key, const void *value, size_t len,
                              int64_t expect, int64_t *version);

/**
 * Delete `key` if its version is `expect` (-1: any). COORD_ENOTFOUND when absent, COORD_ECONFLICT
 * when the version differs. Deeper keys ("key/x") stay.
 */
COORD_EXTERN int coord_kv_delete(coord_client *c, const char *key, int64_t expect);

/**
 * The names one level below `prefix` (a key, or "" for the top), sorted by strcmp, including
 * names that only lead to deeper keys: `*keys` is a new array of `*n` strings, freed with
 * coord_strings_free (NULL when `*n` is 0).
 */
COORD_EXTERN int coord_kv_list(coord_client *c, const char *prefix, char ***keys, size_t *n);

/** A watch on one key (coord_kv_watch_new). */
typedef struct coord_kv_watch coord_kv_watch;

/** What a watch reports: the key's value (NULL when absent or deleted) and version (0 then). The
 * bytes are borrowed for the call. */
typedef void (*coord_kv_watch_fn)(const char *key, const void *value, size_t len, int64_t version,
                                  void *payload);

/**
 * Watch `key`: `fn` reports its current value first (NULL if absent), then every change after
 * it, in order; when changes come faster than they are delivered, the reports skip to the latest
 * value (a watcher never sees an older state after a newer one, and always the last one). The
 * watch survives reconnects and failover, and reports the current value again after the session
 * was replaced or the history it resumes from was compacted (etcd), when it may have missed a
 * change. `fn` runs on the watch's own thread, one call at a time; it may call any coord
 * function except coord_kv_watch_free of this watch. The first report may come before this
 * returns. Errors: the common ones; the key need not exist.
 */
COORD_EXTERN int coord_kv_watch_new(coord_kv_watch **out, coord_client *c, const char *key,
                                    coord_kv_watch_fn fn, void *payload);

/** Stop the watch: when it returns, `fn` is not running and will not run again. Not from `fn`.
 * NULL-safe. Free every watch before its client. */
COORD_EXTERN void coord_kv_watch_free(coord_kv_watch *w);

/** A transaction being built (coord_txn_new): checks, puts and deletes applied all or nothing. */
typedef struct coord_txn coord_txn;

/** Most operations (checks, guard, puts and deletes together) one transaction takes. */
#define COORD_TXN_MAX 64

/** Start a transaction on `c`. Nothing is sent before coord_txn_commit. */
COORD_EXTERN int coord_txn_new(coord_txn **out, coord_client *c);

/**
 * Add: `key` must be at `version` when the transaction applies (0: absent). Checks are evaluated
 * against the state before the transaction's writes. COORD_EINVAL for a bad key or beyond
 * COORD_TXN_MAX operations; the transaction then keeps what it had.
 */
COORD_EXTERN int coord_txn_check(coord_txn *t, const char *key, int64_t version);

/** Add: write `key` (a key is written at most once per transaction: COORD_EINVAL otherwise). The
 * values of one transaction add up to at most COORD_VALUE_MAX bytes (what both servers take in
 * one request): COORD_EINVAL beyond. */
COORD_EXTERN int coord_txn_put(coord_txn *t, const char *key, const void *value, size_t len);

/** Add: delete `key`; the transaction fails with COORD_ECONFLICT when `key` is absent. */
COORD_EXTERN int coord_txn_delete(coord_txn *t, const char *key);

/**
 * Fence the transaction with `l`: it applies only if `l`'s entry is still the one this handle
 * acquired (etcd: the key's create revision; ZooKeeper: the node, checked inside the multi), so
 * a holder that lost its lock (paused past its session, its entry deleted) cannot write after
 * another holder took over. The lock must belong to the same client. At most one guard.
 */
COORD_EXTERN int coord_txn_guard(coord_txn *t, const coord_lock *l);

/**
 * Apply, all or nothing, in one request where the backend allows (etcd Txn; ZooKeeper multi,
 * preceded by reads where the multi cannot express an operation, repeated if they went stale).
 * 0 when applied; COORD_ECONFLICT when a check or the guard failed (coord_last_error() names
 * it), COORD_ENOTHELD when the guard's lock is not held by its handle at commit, COORD_EINVAL
 * for an empty transaction. After COORD_ETIMEDOUT or COORD_EUNAVAILABLE the outcome is unknown
 * (read to learn it); a guarded one is then either applied while the lock was held or not at
 * all. A transaction may be committed again (for instance after a conflict, with new checks
 * added to a new transaction instead: this one keeps its operations).
 */
COORD_EXTERN int coord_txn_commit(coord_txn *t);

/** The new version of the `i`-th operation (from 0, in the order added) after a successful
 * commit when it was a put; 0 otherwise. */
COORD_EXTERN int64_t coord_txn_version(const coord_txn *t, size_t i);

/** Free the transaction (committed or not). NULL-safe. */
COORD_EXTERN void coord_txn_free(coord_txn *t);

/* ------------------------------------------------------------------------------------------ */
/* Work queue: FIFO items, taken at most once or claimed at least once.                        */

/** A handle on a named queue (coord_queue_new). */
typedef struct coord_queue coord_queue;
/** A claimed item (coord_queue_claim), until coord_item_ack or coord_item_nack. */
typedef struct coord_item coord_item;

/**
 * Open the queue `name` (a name, see coord_name_check) at "<prefix>/queue/<name>", its claims at
 * "<prefix>/queue-claims/<name>". ZooKeeper items are persistent sequential "qn-<seq>" nodes
 * holding the item's bytes (ZooKeeper's queue recipe, zoo_queue and Curator's
 * SimpleDistributedQueue share them); etcd items are keys ordered by create revision (the etcd
 * recipe's layout). The handle is used by one thread at a time and freed before its client.
 */
COORD_EXTERN int coord_queue_new(coord_queue **out, coord_client *c, const char *name);

/** Append an item (`len` bytes up to COORD_VALUE_MAX; `data` may be NULL when 0). After
 * COORD_ETIMEDOUT or COORD_EUNAVAILABLE the item may or may not have been added. */
COORD_EXTERN int coord_queue_put(coord_queue *q, const void *data, size_t len);

/**
 * Remove the oldest item that is not claimed and give it to the caller (`*data` malloc'd, the
 * caller frees it): at most once, as a taker that dies afterwards loses it. `timeout_ms` 0: one
 * try, COORD_ENOTFOUND when empty; < 0: wait as long as it takes; > 0: at most that long
 * (COORD_ETIMEDOUT). Waiting takers and claimers queue up and only the first watches the queue,
 * so an item wakes one of them. Takers and claimers on handles of one client do not race each
 * other: one passes over an item another is trying (and takes the next); one that lost an item
 * to another client starts its next tries, for up to 8 tries or a second, at one of the eight
 * oldest. So consumers running at once take items close to, not strictly in, their order; a lone
 * consumer goes in order.
 */
COORD_EXTERN int coord_queue_take(coord_queue *q, void **data, size_t *len, int timeout_ms);

/**
 * Claim the oldest item that is not claimed (at least once): it stays in the queue, invisible to
 * other takers and claimers, until coord_item_ack removes it; if the claimer's session ends
 * first it becomes visible again at its place. `timeout_ms` as for coord_queue_take.
 */
COORD_EXTERN int coord_queue_claim(coord_queue *q, coord_item **item, int timeout_ms);

/** Make a take or claim waiting on this handle (or the next one to wait) return
 * COORD_ECANCELED. Any thread, also while another waits on the handle. NULL-safe. */
COORD_EXTERN void coord_queue_cancel(coord_queue *q);

/** The claimed item's bytes (owned by the item; `*len` may be NULL). */
COORD_EXTERN const void *coord_item_data(const coord_item *it, size_t *len);

/**
 * Remove the item for good and free the handle, in one transaction that also checks the claim is
 * still this session's: COORD_ESESSION when it was lost (the session ended: the item may be
 * delivered again and is left to whoever claims it now). After COORD_ETIMEDOUT or
 * COORD_EUNAVAILABLE the ack may or may not have applied; the claim is then given back as soon as
 * a server answers (the item reappears if the ack did not apply). The handle is freed in every
 * case. NULL: COORD_EINVAL.
 */
COORD_EXTERN int coord_item_ack(coord_item *it);

/** Give the item back (it becomes visible again at its place, the head when it was the oldest)
 * and free the handle; a claim that cannot be deleted now is handed to the client. */
COORD_EXTERN int coord_item_nack(coord_item *it);

/** Items that can be taken or claimed now (claimed ones are not counted). */
COORD_EXTERN int coord_queue_size(coord_queue *q, size_t *out);

/** Free the handle (claimed items stay claimed until acked, nacked or their session ends:
 * free them first). NULL-safe. */
COORD_EXTERN void coord_queue_free(coord_queue *q);

/* ------------------------------------------------------------------------------------------ */
/* Loop mode: coord inside an event loop (libuv, libevent, poll), with _async operations.      */

/**
 * The client's descriptor for an event loop (loop mode). It stays the same for the client's
 * life and is level-triggered: readable while coord_client_process has work to run. Watch it
 * for reading and never read, write or close it. -1 with COORD_EINVAL outside loop mode.
 */
COORD_EXTERN int coord_client_fd(const coord_client *c);

/** Milliseconds until coord_client_process must run even if the descriptor stays quiet; -1
 *  when no timer is due (coord's own timers run on its threads, see docs/loop.md); 0 when work
 *  is ready. */
COORD_EXTERN int coord_client_timeout(const coord_client *c);

/**
 * Run the work that is ready: completions of `_async` operations and the client's callbacks
 * (session, ring changes, election changes, watches), on the calling thread. Never blocks.
 * Returns the number of callbacks it ran, or a negative error (COORD_EINVAL outside loop mode).
 * One thread at a time per client (the loop's).
 */
COORD_EXTERN int coord_client_process(coord_client *c);

/** Keep the loop adapter's state (coord/loop/libuv.h, libevent.h) with the client; nothing
 *  outside loop mode. The client never reads or frees it. */
COORD_EXTERN void coord_client_set_loop_data(coord_client *c, void *data);
/** What coord_client_set_loop_data stored, NULL when nothing (or outside loop mode). */
COORD_EXTERN void *coord_client_loop_data(const coord_client *c);

/**
 * Completion of an `_async` operation: runs exactly once, inside coord_client_process, with the
 * code the blocking call would have returned, or COORD_ECANCELED after a cancel of the handle or
 * at coord_client_close (which runs every pending `done` on its own thread before it returns).
 *
 * Every `_async` call never blocks. It returns 0 when the operation started, or an error at once,
 * and then `done` never runs: COORD_EINVAL for a NULL argument, a client outside loop mode, or a
 * second wait on a lock or election handle that has one in flight.
 */
typedef void (*coord_done_fn)(int rc, void *payload);

/** coord_lock_acquire without blocking. The wait holds no thread: it is driven by the watch on
 *  the predecessor and a timer. coord_lock_cancel ends it with COORD_ECANCELED. */
COORD_EXTERN int coord_lock_acquire_async(coord_lock *l, int timeout_ms, coord_done_fn done,
                                          void *payload);
/** coord_lock_release without blocking. */
COORD_EXTERN int coord_lock_release_async(coord_lock *l, coord_done_fn done, void *payload);

/** coord_counter_get without blocking: `value` is the counter (the shards' sum), 0 when rc is
 *  not 0. It reads past the handle's cache, so it may be in flight beside adds. */
COORD_EXTERN int coord_counter_get_async(coord_counter *k,
                                         void (*done)(int rc, int64_t value, void *payload),
                                         void *payload);

/** coord_counter_add without blocking; many may be in flight on one handle. `value` is the
 *  counter after this add (as `out_new`), 0 when rc is not 0. */
COORD_EXTERN int coord_counter_add_async(coord_counter *k, int64_t delta,
                                         void (*done)(int rc, int64_t value, void *payload),
                                         void *payload);

/** coord_election_campaign without blocking: the wait holds no thread, as for the lock;
 *  coord_election_cancel ends it with COORD_ECANCELED. `value` is copied. */
COORD_EXTERN int coord_election_campaign_async(coord_election *e, const void *value, size_t len,
                                               int timeout_ms, coord_done_fn done, void *payload);

/** coord_ring_leave without blocking. */
COORD_EXTERN int coord_ring_leave_async(coord_ring *r, coord_done_fn done, void *payload);
/** coord_election_resign without blocking. */
COORD_EXTERN int coord_election_resign_async(coord_election *e, coord_done_fn done, void *payload);
/** coord_election_proclaim without blocking; `value` is copied. */
COORD_EXTERN int coord_election_proclaim_async(coord_election *e, const void *value, size_t len,
                                               coord_done_fn done, void *payload);
/** Done of coord_election_leader_async: the leader's `value` (valid during the call only), its
 *  length and term; NULL, 0 and 0 when rc is not 0 (COORD_ENOTFOUND when there is no leader). */
typedef void (*coord_election_leader_fn)(int rc, const void *value, size_t len, uint64_t term,
                                         void *payload);
/** coord_election_leader without blocking; it may be in flight beside the handle's campaign. */
COORD_EXTERN int coord_election_leader_async(coord_election *e, coord_election_leader_fn done,
                                             void *payload);
/** coord_barrier_raise / coord_barrier_lower without blocking. */
COORD_EXTERN int coord_barrier_raise_async(coord_barrier *b, coord_done_fn done, void *payload);
/** The lowering coord_barrier_raise_async. */
COORD_EXTERN int coord_barrier_lower_async(coord_barrier *b, coord_done_fn done, void *payload);
/** coord_item_ack / coord_item_nack without blocking: the item is the call's from then on (the
 *  application does not touch it again), freed when the call ends. */
COORD_EXTERN int coord_item_ack_async(coord_item *it, coord_done_fn done, void *payload);
/** The nack's coord_item_ack_async. */
COORD_EXTERN int coord_item_nack_async(coord_item *it, coord_done_fn done, void *payload);

/** coord_ring_join without blocking (the ring's change callback runs inside process too). */
COORD_EXTERN int coord_ring_join_async(coord_ring *r, const char *member_id, const void *data,
                                       size_t len, unsigned weight, coord_done_fn done,
                                       void *payload);

/** coord_queue_take without blocking: `done` receives the item's data (the application's to
 *  free(); NULL when rc is not 0). coord_queue_cancel ends a wait with COORD_ECANCELED. */
COORD_EXTERN int coord_queue_take_async(coord_queue *q, int timeout_ms,
                                        void (*done)(int rc, void *data, size_t len, void *payload),
                                        void *payload);

/** Done of coord_kv_get_async: `value` (NUL-terminated one byte past `len`) is valid during the
 *  call only; NULL, 0 and 0 when rc is not 0 (COORD_ENOTFOUND when absent). */
typedef void (*coord_kv_get_fn)(int rc, const void *value, size_t len, int64_t version,
                                void *payload);
/** coord_kv_get without blocking. The KV calls take the client: any number may be in flight. */
COORD_EXTERN int coord_kv_get_async(coord_client *c, const char *key, coord_kv_get_fn done,
                                    void *payload);
/** coord_kv_put without blocking; `value` is copied; `version` is the new version (0 when rc
 *  is not 0). */
COORD_EXTERN int coord_kv_put_async(coord_client *c, const char *key, const void *value, size_t len,
                                    int64_t expect,
                                    void (*done)(int rc, int64_t version, void *payload),
                                    void *payload);
/** coord_kv_delete without blocking. */
COORD_EXTERN int coord_kv_delete_async(coord_client *c, const char *key, int64_t expect,
                                       coord_done_fn done, void *payload);
/** coord_kv_list without blocking: `keys` (sorted) is valid during the call only. */
COORD_EXTERN int coord_kv_list_async(coord_client *c, const char *prefix,
                                     void (*done)(int rc, char **keys, size_t n, void *payload),
                                     void *payload);
/** coord_txn_commit without blocking; the transaction is not changed, committed again or freed
 *  until `done` has run (then coord_txn_version reads the new versions). COORD_EINVAL when a
 *  commit of it is in flight. */
COORD_EXTERN int coord_txn_commit_async(coord_txn *t, coord_done_fn done, void *payload);
/** coord_queue_put without blocking (`data` is copied); many may be in flight on one handle. */
COORD_EXTERN int coord_queue_put_async(coord_queue *q, const void *data, size_t len,
                                       coord_done_fn done, void *payload);
/** coord_queue_size without blocking: `size` is the open items' count, 0 when rc is not 0; many
 *  may be in flight on one handle. */
COORD_EXTERN int coord_queue_size_async(coord_queue *q,
                                        void (*done)(int rc, size_t size, void *payload),
                                        void *payload);
/** coord_semaphore_acquire without blocking: the waits (the internal lock, then the leases'
 *  count) hold no thread; coord_semaphore_cancel ends them with COORD_ECANCELED. */
COORD_EXTERN int coord_semaphore_acquire_async(coord_semaphore *s, int timeout_ms,
                                               coord_done_fn done, void *payload);
/** coord_semaphore_release without blocking. */
COORD_EXTERN int coord_semaphore_release_async(coord_semaphore *s, coord_done_fn done,
                                               void *payload);
/** coord_barrier_wait without blocking: a watch and a timer, no thread; coord_barrier_cancel
 *  ends it with COORD_ECANCELED. One wait in flight per handle. */
COORD_EXTERN int coord_barrier_wait_async(coord_barrier *b, int timeout_ms, coord_done_fn done,
                                          void *payload);
/** coord_dbarrier_enter without blocking: the wait for the count holds no thread;
 *  coord_dbarrier_cancel ends it. One enter or leave in flight per handle. */
COORD_EXTERN int coord_dbarrier_enter_async(coord_dbarrier *b, int timeout_ms, coord_done_fn done,
                                            void *payload);
/** coord_dbarrier_leave without blocking. */
COORD_EXTERN int coord_dbarrier_leave_async(coord_dbarrier *b, int timeout_ms, coord_done_fn done,
                                            void *payload);
/** coord_queue_claim without blocking: `item` is the application's (ack, nack), NULL when rc
 *  is not 0. One take or claim in flight per handle; coord_queue_cancel ends its wait. */
COORD_EXTERN int coord_queue_claim_async(coord_queue *q, int timeout_ms,
                                         void (*done)(int rc, coord_item *item, void *payload),
                                         void *payload);
/** coord_rwlock_rdlock / coord_rwlock_wrlock without blocking: the wait holds no thread, as
 *  for the lock; coord_rwlock_cancel ends it with COORD_ECANCELED. */
COORD_EXTERN int coord_rwlock_rdlock_async(coord_rwlock *l, int timeout_ms, coord_done_fn done,
                                           void *payload);
/** The writer's coord_rwlock_rdlock_async. */
COORD_EXTERN int coord_rwlock_wrlock_async(coord_rwlock *l, int timeout_ms, coord_done_fn done,
                                           void *payload);
/** coord_rwlock_unlock without blocking. */
COORD_EXTERN int coord_rwlock_unlock_async(coord_rwlock *l, coord_done_fn done, void *payload);

#ifdef __cplusplus
}
#endif

#endif
