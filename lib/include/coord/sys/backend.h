/**
 * @file
 * The backend seam: for people writing a coord backend, not for applications.
 *
 * A backend is a const, versioned table of functions (coord_backend) registered under one or
 * more URI schemes. coord_client_open parses the URI, finds the table by scheme and calls `open`,
 * which returns a live connection (coord_conn) holding one session. Recipes (lock, counter,
 * ring) are written once in the core on top of the slots below; a slot exists per backend only
 * where the native mechanism differs.
 *
 * The data model the slots share:
 *  - Paths are absolute ("/app/counter/x"), already validated, no trailing '/'. The backend
 *    maps them to znodes or etcd keys; on ZooKeeper missing parents are created on demand.
 *  - A coord_kv carries an abstract `version`: 0 means "does not exist", any other value
 *    identifies one state of the entry (etcd: mod_revision; ZooKeeper: stat.version + 1).
 *    Conditional writes compare on it.
 *  - `order` sorts children in creation order (etcd create_revision; ZooKeeper the 10-digit
 *    sequence suffix for sequential nodes, else czxid) and `token` is a fencing number that
 *    strictly increases between successive creations (etcd create_revision; ZooKeeper czxid).
 *  - Ephemeral entries live as long as the connection's current session (ZooKeeper ephemeral
 *    node, etcd key attached to the client's lease).
 *
 * Common rules for every slot:
 *  - Blocking slots wait at most `timeout_ms` (> 0) and return COORD_ETIMEDOUT after that.
 *  - On failure they return a negative coord_err and set coord_last_error() through
 *    coord_seterr(); out-parameters are then untouched or freed, never half-owned.
 *  - Memory handed to the core (coord_kv fields, arrays) comes from malloc and is released by
 *    the core with coord_kv_clear / coord_kv_array_free.
 *  - Slots may be called from any thread at once; the backend serialises what it must.
 *  - Callbacks to the core (state, watch) run on a backend thread while the backend holds no
 *    lock the core could wait on.
 */
#ifndef COORD_SYS_BACKEND_H
#define COORD_SYS_BACKEND_H

#include <stdbool.h>

#include "../../coord.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coord_uri coord_uri;

/** One host of a URI. */
typedef struct coord_uri_host {
    char *host; /**< Host name or address, without brackets for IPv6. */
    int port;   /**< Port (the scheme's default when the URI gives none). */
} coord_uri_host;

/** The query parameters a backend declares (coord_backend.params), read with coord_uri_param(). */
typedef struct coord_uri_params coord_uri_params;

/** A parsed URI (lib/uri.c). All strings are NUL-terminated and owned by the struct. */
struct coord_uri {
    char *scheme;          /**< A scheme of a registered backend, in lower case ("zk", "etcds") */
    char *user;            /**< NULL when the URI has no credentials */
    char *password;        /**< NULL when the URI has no credentials */
    coord_uri_host *hosts; /**< The hosts, in the URI's order. */
    size_t nhosts;         /**< Number of `hosts` (at least 1). */
    char *prefix;          /**< "/coord" by default; no trailing '/' */
    /** The query parameters session_ttl_ms, timeout_ms and connect_timeout_ms; 0 when absent.
     *  @{ */
    int session_ttl_ms, timeout_ms, connect_timeout_ms;
    /** @} */
    /** The backend's own query parameters (opaque): read them with coord_uri_param(). */
    coord_uri_params *params;
};

/**
 * Parse `text` with the rules of the table serving its scheme. COORD_EINVAL with a detail on any
 * malformed part or an unknown scheme; COORD_ENOTSUP for the scheme of a backend left out of this
 * build. Pure: no I/O.
 */
COORD_EXTERN int coord_uri_parse(coord_uri **out, const char *text);
/** Free a parsed URI. NULL-safe. */
COORD_EXTERN void coord_uri_free(coord_uri *u);
/**
 * The decoded value of the backend's own query parameter `name` (one of coord_backend.params),
 * never empty; NULL when the URI does not give it (or `u` or `name` is NULL). Borrowed from `u`.
 * When the URI repeats a parameter, the last value counts.
 */
COORD_EXTERN const char *coord_uri_param(const coord_uri *u, const char *name);

/** Record the detail of a failure for coord_last_error(); returns `err` for tail calls. */
COORD_EXTERN int coord_seterr(int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** One entry as the slots exchange it (see the data model above). Fields come from malloc. */
typedef struct coord_kv {
    char *key;       /**< full path for get; child name (last segment) for list */
    void *value;     /**< The value's bytes (may be NULL when `len` is 0). */
    size_t len;      /**< Length of `value`. */
    int64_t version; /**< 0 = absent, see above */
    int64_t order;   /**< Creation order among siblings, see above. */
    uint64_t token;  /**< Fencing number, see above. */
} coord_kv;

/** Free `key` and `value` and zero the entry. NULL-safe. */
COORD_EXTERN void coord_kv_clear(coord_kv *kv);
/** Clear `n` entries of `kvs`, then free the array. NULL-safe. */
COORD_EXTERN void coord_kv_array_free(coord_kv *kvs, size_t n);

/** Passed to open: the resolved configuration and the core's session-state sink. */
typedef struct coord_config {
    const coord_uri *uri; /**< The parsed URI (hosts, prefix, credentials, TLS files). */
    /** The resolved values: the client's options, else the URI's, else the defaults. @{ */
    int session_ttl_ms, timeout_ms, connect_timeout_ms;
    /** @} */
    /**
     * The backend reports every session transition here, from its own thread, in order:
     * CONNECTED once a session exists, SUSPENDED when contact is lost, LOST when the session
     * expired; after LOST it opens a new session by itself and reports CONNECTED again.
     * Not called for the first CONNECTED inside `open`.
     */
    void (*on_state)(void *core, coord_session_state state);
    void *core; /**< The first argument of on_state. */
} coord_config;

/** A live connection. Backends embed it as the first member of their own struct. */
typedef struct coord_conn {
    const struct coord_backend *backend; /**< The table that opened the connection. */
} coord_conn;

/** Put flags. */
#define COORD_PUT_EPHEMERAL 0x1u  /**< tied to the current session */
#define COORD_PUT_SEQUENTIAL 0x2u /**< ZooKeeper: server appends a 10-digit sequence */

/** List flags. */
#define COORD_LIST_NAMES 0x1u /**< names and order only */
/** Every name one level below the path, also the names that only lead to deeper entries (etcd:
 * the first segments of every key under the path, once each); with COORD_LIST_NAMES. */
#define COORD_LIST_TREE 0x2u

/** `expect` values for conditional writes, besides a version from a coord_kv. */
#define COORD_VERSION_ANY (-1) /**< unconditional */
#define COORD_VERSION_ABSENT 0 /**< must not exist */

/** Watch kinds and events. */
#define COORD_WATCH_KEY 1      /**< one key: reports its deletion (or absence when armed) */
#define COORD_WATCH_CHILDREN 2 /**< a path's direct children: reports any change of the set */
/** One key's value: reports COORD_EV_CHANGED after any change of it (a write, its creation or
 * deletion), possibly more often; it lasts, and the caller reads the key to learn its state. */
#define COORD_WATCH_DATA 3

/** What a watch reports to its coord_watch_fn. */
typedef enum coord_watch_event {
    COORD_EV_DELETED = 1, /**< the watched key is gone (or was already gone) */
    COORD_EV_CHANGED = 2, /**< the watched set changed: list it again */
    COORD_EV_RESET = 3,   /**< events may have been missed (session replaced, history
                             compacted): list again from scratch */
    COORD_EV_ERROR = 4    /**< the watch ended with an error; no further events */
} coord_watch_event;

/** A watch's callback: `revision` is the event's etcd revision when known, else 0. */
typedef void (*coord_watch_fn)(void *payload, coord_watch_event ev, int64_t revision);
/** A watch made by coord_backend.watch and stopped by coord_backend.unwatch. */
typedef struct coord_watch coord_watch;

/**
 * Capability bits: recipes test these instead of a backend's name. Each bit is read by the core;
 * a new one comes with the recipe that needs it. (Bits 0x1, 0x2 and 0x4 were sequential names,
 * revisions and container parents, which no recipe read; they are not reused.)
 */
/** The Curator/kazoo binary counter formats (lib/counter.c refuses them without it). */
#define COORD_CAP_BINARY_COUNTERS 0x8u
/** COORD_PUT_SEQUENTIAL names entries (ZooKeeper): work queues then make ZooKeeper's "qn-"
 * items; without it they name items by time, as etcd's queue recipe does. */
#define COORD_CAP_SEQUENTIAL 0x10u

/** Operations of a transaction (coord_backend.txn). */
typedef enum coord_op_type {
    COORD_OP_CHECK = 1, /**< `path` is at `version` (0: has no value) */
    COORD_OP_PUT = 2,   /**< write `value` (`version`: COORD_VERSION_ANY, or the version it must be
                           at, 0 = has no value) */
    COORD_OP_DEL = 3,   /**< delete; fails when `path` has no value (`version` as for PUT) */
    COORD_OP_HELD = 4   /**< `path` is still the contender of `token` and `version` (a coord_kv
                           that lock_enqueue returned) */
} coord_op_type;

/** One operation of a transaction. Strings and bytes are borrowed for the call. */
typedef struct coord_op {
    int type;          /**< a coord_op_type */
    const char *path;  /**< full path */
    const void *value; /**< PUT: the bytes (may be NULL when `len` is 0) */
    size_t len;        /**< PUT: length of `value` */
    int64_t version;   /**< see coord_op_type */
    uint64_t token;    /**< HELD: the contender's token */
} coord_op;

/** The version of coord_backend this header declares. */
#define COORD_BACKEND_VERSION 5

/**
 * A backend: its identity, what it accepts in a URI, and its slots (see the rules at the top of
 * this file). Tables are registered with coord_backend_register and must stay valid (and
 * unchanged) for the life of the process.
 */
typedef struct coord_backend {
    unsigned version;           /**< COORD_BACKEND_VERSION the table was written against */
    const char *name;           /**< "zookeeper", "etcd": for messages and coord_client_backend */
    const char *const *schemes; /**< NULL-terminated URI schemes served, in lower case */
    int default_port;           /**< Port of a URI host written without one (1-65535) */
    /**
     * NULL-terminated names of the URI query parameters the backend accepts beyond the common
     * ones (session_ttl_ms, timeout_ms, connect_timeout_ms); NULL = none. The parser refuses
     * any other parameter and an empty value; the backend reads them with coord_uri_param().
     */
    const char *const *params;
    unsigned caps; /**< COORD_CAP_* bits */

    /**
     * Optional (NULL: no rule). Rules across a parsed URI that the parser cannot know (etcd: ca,
     * cert and key only with etcds://, cert and key both or neither). Pure: no I/O. Returns 0,
     * or COORD_EINVAL with a detail (coord_seterr) that quotes no credentials.
     */
    int (*check_uri)(const coord_uri *u);

    /**
     * Optional (NULL: nothing to do). Process-wide set-up the backend's libraries need (etcd:
     * curl_global_init), run by the core once per process before the first open through this
     * table, under the registry's lock (so it must not call coord_backend_register). Returns 0,
     * or a negative coord_err with a detail; after a failure it runs again at the next open.
     * Nothing is torn down: other code in the process may share that state.
     */
    int (*global_init)(void);

    /* --- methods (since version 1) --- */

    /**
     * Mandatory. Connect and establish a session within cfg->connect_timeout_ms. Blocks.
     * `cfg` stays valid until close. On failure nothing is left running.
     * Errors: COORD_EUNAVAILABLE, COORD_ETIMEDOUT, COORD_EAUTH, COORD_EPROTO, COORD_ENOMEM.
     */
    int (*open)(coord_conn **out, const coord_config *cfg);

    /**
     * Mandatory. End the session (ZooKeeper close, etcd lease revoke, bounded by timeout_ms),
     * stop every backend thread and free. Every watch must have been removed.
     */
    void (*close)(coord_conn *c);

    /**
     * Mandatory. A number that changes each time the backend replaced its session.
     * Non-blocking.
     */
    uint64_t (*session)(coord_conn *c);

    /**
     * Mandatory. Read one entry. COORD_ENOTFOUND when absent. `out` is filled with key,
     * value, version, order and token.
     */
    int (*get)(coord_conn *c, const char *path, coord_kv *out, int timeout_ms);

    /**
     * Mandatory. Write `path` if its version equals `expect` (COORD_VERSION_ANY: always;
     * COORD_VERSION_ABSENT: only create). With COORD_PUT_SEQUENTIAL the created name gets a
     * sequence suffix (COORD_ENOTSUP where the backend has none).
     * On success, `out` (may be NULL) receives the written entry: its key (the created name for
     * sequential puts) and version, and order and token when the put created the entry or was
     * unconditional (after a conditional update they may be 0); value is not copied back.
     * On COORD_ECONFLICT, `out` receives the current entry with its value (version 0 if absent)
     * when the backend got it in the same round trip (etcd: the Txn's failure branch), else it
     * has version -1 and the caller reads again (ZooKeeper).
     */
    int (*put)(coord_conn *c, const char *path, const void *value, size_t len, int64_t expect,
               unsigned flags, coord_kv *out, int timeout_ms);

    /**
     * Mandatory. Delete `path` if its version equals `expect` (COORD_VERSION_ANY: always).
     * COORD_ENOTFOUND when absent, COORD_ECONFLICT when the version differs.
     */
    int (*del)(coord_conn *c, const char *path, int64_t expect, int timeout_ms);

    /**
     * Mandatory. The direct children of `path`, sorted by `order`. With COORD_LIST_NAMES only
     * key and order are needed (ZooKeeper then reads no child; order comes from the sequence
     * suffix and is 0 for names without one); otherwise every field is filled. An absent
     * path lists as empty. `*epoch` (may be NULL) identifies the listed state: etcd the
     * revision of the read, ZooKeeper the parent's child version (cversion) + 1.
     */
    int (*list)(coord_conn *c, const char *path, unsigned flags, coord_kv **out, size_t *n,
                int64_t *epoch, int timeout_ms);

    /**
     * Mandatory. Watch `path` (kind COORD_WATCH_KEY, _CHILDREN or _DATA) for changes after
     * `after` (etcd: a revision already seen, 0 = from now; ignored by backends without
     * revisions). `fn` runs on a backend thread for each event, never concurrently with itself
     * for one watch. A KEY watch reports COORD_EV_DELETED once, at once if the key is absent.
     * A DATA watch reports COORD_EV_CHANGED for every change after `after` (ZooKeeper: after the
     * watch was armed; a change between an event and the re-arm is found by the re-arm's read).
     * The watch survives reconnects and failover; when events may have been missed (ZooKeeper
     * session replaced, etcd history compacted) it reports COORD_EV_RESET and goes on.
     */
    int (*watch)(coord_conn *c, const char *path, int kind, int64_t after, coord_watch_fn fn,
                 void *payload, coord_watch **out);

    /**
     * Mandatory. Stop a watch. When it returns, `fn` is not running and will not run again.
     * Must not be called from that watch's own `fn`.
     */
    void (*unwatch)(coord_conn *c, coord_watch *w);

    /**
     * Optional (NULL: COORD_ENOTSUP). End the current session on the server as if it had
     * expired (ZooKeeper: close a second handle on the same session id; etcd: revoke the
     * lease). For fault tests and for callers that must give up ephemeral state at once.
     */
    int (*expire)(coord_conn *c);

    /*
     * Queues of contenders (lib/queue.c: the lock, the election). `dir` is, e.g.,
     * "<prefix>/lock/<name>"; contenders are its children, ordered by `order`; the first holds
     * the lock or leads. The slots differ per backend because the native recipes do (etcd
     * concurrency.Mutex and Election, Curator InterProcessMutex and LeaderLatch). On ZooKeeper
     * every child whose name ends in a 10-digit sequence is a contender, whatever its prefix.
     */

    /**
     * Mandatory. Add an ephemeral contender named with `tag` and holding `value` (`len` bytes),
     * and learn in the same exchange whether it is first, in as few round trips as the backend
     * allows. `kind` is the recipe's word for its contenders as ZooKeeper tools spell it: "lock-"
     * (Curator InterProcessMutex), "latch-" (Curator LeaderLatch); ZooKeeper names the node
     * "_c_<tag>-<kind><seq>", etcd ignores it (its recipes share "<lease hex>" keys; coord's are
     * "<lease hex>-<tag>"). `tag` is a UUID per handle, the same for each of its attempts; the
     * core deletes whatever an earlier attempt of the handle left (every child of `dir` whose name
     * contains `tag`) before it enqueues again, so within one call the tag names only this
     * attempt's contender. `mine` receives the contender's full path (key), version, order and
     * token (not the value). When it is not first, `pred->key`
     * receives the contender just before it if the backend learnt that too (else NULL: ask
     * lock_predecessor), and `*after` the point to watch it from. Idempotent per tag: after a lost
     * connection within the call the backend finds a contender it may already have made for `tag`
     * rather than making a second one. The contender's name contains `tag`; on COORD_EUNAVAILABLE
     * or COORD_ETIMEDOUT it may exist, and the core removes it.
     *
     * `only` (NULL: any) makes the contender wait for contenders of that kind alone: `pred` and
     * `first` then concern the newest contender of kind `only` before it (a reader of a
     * read-write lock waits for the last writer queued before it). Kinds "__READ__" and
     * "__WRIT__" are Curator's InterProcessReadWriteLock names; on etcd their contenders live in
     * the subdirectories "read" and "write" of `dir` (etcd's recipe layout), ordered across
     * both by create revision.
     */
    int (*lock_enqueue)(coord_conn *c, const char *dir, const char *tag, const char *kind,
                        const char *only, const void *value, size_t len, coord_kv *mine,
                        bool *first, coord_kv *pred, int64_t *after, int timeout_ms);

    /**
     * Mandatory. The contender immediately before `mine` (of kind `only`, when not NULL, as in
     * lock_enqueue): `pred->key` is its full path, or NULL when there is none. `*after` receives
     * the point to watch `pred` from (etcd: the revision of the read). COORD_ESESSION when `mine`
     * no longer exists.
     */
    int (*lock_predecessor)(coord_conn *c, const char *dir, const coord_kv *mine, const char *only,
                            coord_kv *pred, int64_t *after, int timeout_ms);

    /**
     * Mandatory. The first contender of `dir` (in the order of lock_predecessor), with every
     * field: full path (key), value, version, order and token. COORD_ENOTFOUND when `dir` has
     * none. One consistent read where the backend allows (etcd); ZooKeeper lists, then reads the
     * first, and lists again if it went in between.
     */
    int (*queue_head)(coord_conn *c, const char *dir, coord_kv *out, int timeout_ms);

    /* --- methods added in version 2 --- */

    /**
     * Optional (NULL: the core takes every existing entry for another session's). Read `path`
     * as get does and say whose it is: 0 with `out` filled when it is an ephemeral entry of the
     * current session (ZooKeeper: ephemeralOwner is our session id; etcd: the key is on our
     * lease), COORD_EEXISTS when it exists otherwise, COORD_ENOTFOUND when it is absent. Lets a
     * caller whose create had an unknown outcome (timed out, connection lost) recognise the
     * entry that create made.
     */
    int (*get_own)(coord_conn *c, const char *path, coord_kv *out, int timeout_ms);

    /* --- methods added in version 4: the key-value space (lib/kv.c) and work queues ---
     *
     * A path "has a value" when it was written and not deleted since. On ZooKeeper a node can
     * exist without a value: the parents a write creates, and a deleted key that still has
     * deeper keys, are persistent nodes with no data (null, not empty) and read as absent
     * (version 0); other tools see them as ordinary nodes. Puts create missing parents that way
     * (never as containers, which the server would remove under a value). */

    /**
     * Optional (NULL: the key-value API and work queues answer COORD_ENOTSUP). Read `path` as
     * get does, but COORD_ENOTFOUND when it has no value (see above).
     */
    int (*kv_get)(coord_conn *c, const char *path, coord_kv *out, int timeout_ms);

    /**
     * Optional (NULL: as kv_get). Apply `ops` (1 to 64) all or nothing. Every CHECK, HELD and
     * the version conditions of PUT and DEL are evaluated against the state before the
     * transaction; a DEL (and a PUT with a version > 0) of a path with no value fails. The core
     * never writes one path twice in a transaction. A DEL of a path with deeper entries leaves
     * them (ZooKeeper: its node loses its value). HELD passes while the contender still exists
     * as that entry (etcd: its create revision is `token`; ZooKeeper: a check of the node at
     * `version` in the multi). One round trip where the backend allows (etcd Txn); ZooKeeper
     * runs one multi, preceded by reads where the multi cannot express an operation (a put
     * that creates or updates, a check that a node is absent), again if those reads went stale.
     *
     * Returns 0 with `versions[i]` (`versions` may be NULL) the new version of each PUT (other
     * entries untouched); COORD_ECONFLICT when a condition failed, with `*failed` the index of
     * one failed op (`n` when the backend cannot tell) and a detail naming it; or the usual
     * errors, after which the outcome is unknown when the request may have reached the server
     * (COORD_ETIMEDOUT, COORD_EUNAVAILABLE: the backend does not send it again).
     */
    int (*txn)(coord_conn *c, const coord_op *ops, size_t n, int64_t *versions, size_t *failed,
               int timeout_ms);

    /* --- methods added in version 5 --- */

    /**
     * Optional (NULL: the core runs `del` on a thread of its own). Send a delete as `del` does
     * and return without waiting for its answer, so that a loop-mode release starts its round
     * trip from the loop's thread. Returns 0 when the request went out (or was queued on the
     * session): `done(arg, rc)` then runs exactly once with what `del` would have returned (its
     * detail set with coord_seterr on that thread), on a backend thread, or on the calling
     * thread before del_async returns when the answer is known at once. `done` does not block
     * and makes no backend call. Any other return means nothing was sent and `done` never runs.
     *
     * There is no deadline: the answer comes as soon as the backend learns the outcome, at the
     * latest when it gives up on the connection (COORD_EUNAVAILABLE, outcome unknown). When the
     * session ends or the connection closes with the delete in flight, `done` runs with
     * COORD_ESESSION (the session's entries went with it), by `close` at the latest.
     */
    int (*del_async)(coord_conn *c, const char *path, int64_t expect,
                     void (*done)(void *arg, int rc), void *arg);
} coord_backend;

/**
 * Make `be` available to coord_client_open for each of its schemes. Call it before the first
 * coord_client_open (or coord_uri_parse) that uses one of them; `*be` must stay valid for the
 * life of the process, as a table cannot be removed. Thread-safe.
 *
 * Returns 0, or COORD_EINVAL with a detail when `be` is NULL, its version is not
 * COORD_BACKEND_VERSION, a mandatory slot (open, close, session, get, put, del, list, watch,
 * unwatch, lock_enqueue, lock_predecessor, queue_head) is NULL, it has no name or no scheme, a
 * scheme is not a lower-case word, default_port is outside 1-65535, or one of its schemes is
 * already served (by a built-in backend or a registered one).
 */
COORD_EXTERN int coord_backend_register(const coord_backend *be);

#ifdef __cplusplus
}
#endif

#endif
