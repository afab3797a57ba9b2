/* Internal declarations shared by the core and the backends (not installed). */
#ifndef COORD_INTERNAL_H
#define COORD_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <time.h>

#include "coord/sys/backend.h"

/* The backend registry (lib/registry.c): the table serving `scheme` (lower case), else
 * COORD_EINVAL "unknown URI scheme" with the schemes served; and the table's global_init, run
 * once per process before its first open. */
int coord__backend_find(const coord_backend **out, const char *scheme);
/* coord_uri_parse, also giving the table that serves the URI's scheme. */
int coord__uri_parse(coord_uri **out, const char *text, const coord_backend **table);
int coord__backend_global_init(const coord_backend *be);

/* Monotonic clock in milliseconds, plus what the tests moved it on by (coord__clock_advance). */
extern _Atomic int64_t coord__clock_offset;
static inline int64_t coord__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + coord__clock_offset;
}
/* For tests: move the library's clock on by `ms` (its deadlines and the timers of loop mode see
 * it at once), so that a timeout is tested without waiting for it. */
void coord__clock_advance(int64_t ms);

/* Absolute CLOCK_MONOTONIC deadline `ms` from now, for pthread_cond_timedwait on a condition
 * variable created with coord__cond_init. */
struct timespec coord__deadline(int64_t ms);
int coord__cond_init(pthread_cond_t *cv);

/* A call that failed for want of a server (none reachable, or none answered in time): a write
 * may or may not have been applied, and a retry or the orphans settle it. */
static inline bool coord__no_server(int rc) {
    return rc == COORD_EUNAVAILABLE || rc == COORD_ETIMEDOUT;
}

/* The connection under a client: for the testing library and the recipes. */
coord_conn *coord__client_conn(coord_client *c);
int coord__client_timeout(const coord_client *c);

/*
 * The session clock of the core, the one every recipe uses: the number of sessions this client
 * has lost, advanced when the backend reports COORD_SESSION_LOST and before any listener runs.
 * An ephemeral entry made at epoch E, or a hold taken then, belongs to a session that is still
 * current exactly while the epoch is E. Non-blocking, no I/O.
 */
uint64_t coord__session_epoch(const coord_client *c);
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

/* Handles with threads and watches of their own (rings, elections, KV watches) that loop mode
 * lets outlive coord_client_close: close calls `fn` first (while the backend still answers),
 * which stops the handle's thread and drops its watches; the later free finds them gone. A
 * free before the close removes its closer. */
typedef struct coord__closer {
    void (*fn)(void *payload);
    void *payload;
    struct coord__closer *next;
} coord__closer;
void coord__client_on_close(coord_client *c, coord__closer *k);
void coord__client_off_close(coord_client *c, coord__closer *k);

/*
 * Orphans (orphan.c): entries of this client's session that the server may still hold although
 * no handle wants them any more: a delete (release, leave, withdrawal) that did not get through,
 * or a create whose outcome is unknown (the connection dropped before the answer). The client
 * deletes each as soon as it has a server, while the session it belongs to lasts (Curator's
 * guaranteed delete); after that session the server has removed it anyway. Every recipe uses
 * these instead of remembering such entries itself.
 *
 * An orphan is one entry, `path`, or, with a `tag`, every child of the directory `path` whose
 * name contains `tag` (a sequential create whose name the client never learnt). `version`, when
 * known (> 0), limits the delete to that state of the entry; COORD_VERSION_ANY says the path
 * names only this entry (a unique tag and, on etcd, the lease are in it); otherwise (0) only an
 * entry the backend says is ours (get_own) is deleted. `owner` is the handle that left it, compared
 * and never dereferenced: the handle settles its orphans before it writes again, so its new entry
 * comes after the old one is deleted. `epoch` is coord__session_epoch() of the entry's session.
 */
typedef struct coord__orphan_ref {
    const void *owner;
    const char *path;
    const char *tag; /* NULL: `path` is the entry */
    int64_t version; /* > 0: that version; COORD_VERSION_ANY: the path is ours; 0: get_own */
    uint64_t epoch;
} coord__orphan_ref;
/* Delete the entry now, trying again across reconnects for up to `timeout_ms` (0: one attempt),
 * then hand what is not done to the client. 0 once it is gone or handed over; COORD_ENOTFOUND
 * when the first answer was that it is absent; COORD_ESESSION when its session has ended (so has
 * the entry); any other failure that no retry can cure (COORD_EAUTH...) as is, nothing handed. */
int coord__orphan_delete(coord_client *c, const coord__orphan_ref *o, int timeout_ms);
/* Hand the entry to the client without trying first (a create of unknown outcome). 0, or
 * COORD_ENOMEM. */
int coord__orphan_hand(coord_client *c, const coord__orphan_ref *o);
/* Delete every orphan of `owner` now (one attempt each within `timeout_ms`, after any attempt
 * the client is making on one of them): 0 when none is left, else the failure, and those left
 * stay with the client. */
int coord__orphan_settle(coord_client *c, const void *owner, int timeout_ms);
/* Whether `owner` left orphans the client still holds. */
bool coord__orphan_has(coord_client *c, const void *owner);
/* Take back the orphan of `owner` at exactly `path` if that entry exists, is ours and holds
 * `value`: 0 with `out` filled (the caller keeps the entry), COORD_ENOTFOUND when there is no
 * such orphan or entry (the orphan, if any, stays to be deleted), or a failure. */
int coord__orphan_adopt(coord_client *c, const void *owner, const char *path, const void *value,
                        size_t len, coord_kv *out, int timeout_ms);
/* Orphans the client holds now (for tests); _within waits up to timeout_ms for none to be left
 * (an entry's delete reaches the server before its answer reaches the client). */
size_t coord__orphan_count(coord_client *c);
size_t coord__orphan_count_within(coord_client *c, int timeout_ms);
/* For core.c: the client's orphan state, and its end at close (pending orphans are ephemeral
 * entries of the session that close ends, so they are dropped, not deleted). */
_Atomic(struct coord__orphans *) *coord__client_orphans(coord_client *c);
void coord__orphans_stop(coord_client *c);

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

/*
 * Loop mode (loop.c, docs/loop.md). A client opened with coord_options.loop has a coord__loop:
 * callbacks for coord_client_process, and a few threads running the round trips of _async
 * operations (jobs), none per pending operation.
 */
typedef struct coord__loop coord__loop;
typedef struct coord__loop_item {
    struct coord__loop_item *next;
    void (*fn)(void *arg, int rc);
    void *arg;
    int rc;
    bool owned;        /* malloc'd by coord__loop_post: freed once run */
    const void *owner; /* coord__loop_call: the handle, for coord__loop_forget */
    bool *ran;         /* coord__loop_call: set once it ran (or was dropped) */
} coord__loop_item;
/* The client's loop, NULL outside loop mode (core.c). */
coord__loop *coord__client_loop(coord_client *c);
/* Handles that may outlive coord_client_close in loop mode (it then only may free them) hold a
 * reference on the client's memory; closed tells them the backend is gone. */
void coord__client_ref(coord_client *c);
void coord__client_unref(coord_client *c);
bool coord__client_closed(const coord_client *c);
int coord__loop_open(coord__loop **out, coord_client *c);
/* At close, before the backend's: stop the jobs, drop the watches of the waits in flight
 * (abort), run every done (ECANCELED for those not finished) on the calling thread. */
void coord__loop_close(coord_client *c);
void coord__loop_free(coord__loop *l);
/* Whether the calling thread is inside coord_client_process of `c`. */
bool coord__loop_inside(const coord_client *c);
/* Queue fn(arg, rc) for process (any thread). */
int coord__loop_post(coord_client *c, void (*fn)(void *arg, int rc), void *arg, int rc);
/* Run fn(arg, 0) inside process and wait until it ran: a library thread's callback (a ring's,
 * an election's, a watch's) in loop mode. At once outside loop mode or inside process. Dropped
 * (the call returns) by coord__loop_forget(owner) and at close. */
void coord__loop_call(coord_client *c, const void *owner, void (*fn)(void *arg, int rc), void *arg);
void coord__loop_forget(coord_client *c, const void *owner);
/* A free of `owner` called inside its own callback (a ring freed from its change callback): true
 * when fn(obj) was put off until that callback has returned and let its thread go (the free
 * joins that thread); false: free now. */
bool coord__loop_defer(coord_client *c, const void *owner, void (*fn)(void *obj), void *obj);
/* A free: forget(owner), stop the handle's thread, unforget(owner). */
void coord__loop_unforget(coord_client *c, const void *owner);
/* Run fn(arg, tag) on a thread of the client's jobs at monotonic `at_ms` (0: now). */
int coord__loop_job(coord_client *c, int64_t at_ms, void (*fn)(void *arg, uint64_t tag), void *arg,
                    uint64_t tag);
/* Drop the queued jobs of `arg` and wait for a running one to end (not from that job). */
void coord__loop_unjob(coord_client *c, const void *arg);

/* An _async operation in flight: started (its client's pending list), finished once from any
 * thread (its delivery queued for process, with the finishing thread's error detail), then
 * delivered inside process: deliver(op, rc) runs the application's done. `abort`, when set, runs
 * at close for an unfinished one, with the jobs stopped. */
typedef struct coord__aop {
    struct coord__aop *next, *prev;
    coord_client *c;
    const void *owner; /* the handle it works on, for coord__calls_reap (NULL: none) */
    bool live;
    void (*deliver)(struct coord__aop *op, int rc);
    void (*abort)(struct coord__aop *op);
    coord__loop_item item;
    coord__error_buf err;
} coord__aop;
/* COORD_EINVAL outside loop mode, COORD_ECANCELED once the client is closing. */
int coord__aop_start(coord_client *c, coord__aop *op);

/* An _async call that is one blocking call without a wait (a KV read or write, a commit, a
 * put): `run` makes it on a job thread, `done` (inside process) calls the application's done
 * and frees the call. coord__call_start: 0 (done runs once), or the error (nothing runs, the
 * caller frees). */
typedef struct coord__call {
    coord__aop op;
    int (*run)(struct coord__call *call);
    void (*done)(struct coord__call *call, int rc);
} coord__call;
int coord__call_start(coord_client *c, coord__call *call);
/* The simplest coord__call: fn(arg) on a job thread, then inside process release(arg, ran) (may
 * be NULL; `ran`: fn ran, it did not when canceled at close) and done(rc, payload). `owner` is
 * the handle it works on: the handle's free calls coord__calls_reap(c, owner) first, so its
 * calls end and their dones run then. */
int coord__handle_call(coord_client *c, const void *owner, void *arg, int (*fn)(void *arg),
                       void (*release)(void *arg, bool ran), coord_done_fn done, void *payload);
void coord__calls_reap(coord_client *c, const void *owner);

/*
 * A wait as steps (loop mode): `step` runs as a job and returns 1 to wait for the next wake-up
 * (a watch event, a listener, a cancel, a timer: coord__stepper_wake from any thread), or the
 * wait's result, which `end` then receives on the same job thread (last: it may finish the
 * operation, whose delivery frees the stepper). One step at a time: a wake-up during a step
 * makes it run again. A wake-up's `stop` (a cancel, a deadline) stays for the steps to read.
 */
typedef struct coord__stepper {
    coord_client *c;
    int (*step)(struct coord__stepper *st);
    void (*end)(struct coord__stepper *st, int rc);
    pthread_mutex_t mu;
    bool scheduled, running, again, ended;
    int stop;
} coord__stepper;
void coord__stepper_init(coord__stepper *st, coord_client *c, int (*step)(coord__stepper *),
                         void (*end)(coord__stepper *, int));
void coord__stepper_destroy(coord__stepper *st);
void coord__stepper_wake(coord__stepper *st, int stop);
/* A watch callback whose payload is a stepper: a wake-up. */
void coord__stepper_event(void *payload, coord_watch_event ev, int64_t rev);
/* A wake-up with COORD_ETIMEDOUT at monotonic `at_ms`. */
void coord__stepper_timer(coord__stepper *st, int64_t at_ms);
/* The stop a wake-up left (0: none). */
int coord__stepper_stopped(coord__stepper *st);
/* No step runs from now on (a handle being freed); then coord__loop_unjob(c, st). */
void coord__stepper_halt(coord__stepper *st);
/* False when it was already finished (the first answer wins). */
bool coord__aop_finish(coord__aop *op, int rc);
/* A handle freed with `op` started: its done runs now, on the calling thread (ECANCELED when it
 * had not finished), and nothing of it is left queued. Jobs of the handle first (unjob). */
void coord__aop_reap(coord__aop *op);

/*
 * A place in a queue of contenders (queue.c), for every recipe that waits its turn: the lock,
 * the election. Embedded in the handle, which is its orphans' owner; one thread at a time but
 * for coord__queue_cancel.
 */
struct coord__queue;
/* An enter without a thread (coord__queue_enter_async): the steps of coord__queue_enter, each
 * a job, with the waits in between driven by the predecessor's watch, the session's listener,
 * a cancel and a timer. Guarded by the client's waiter mutex, but for what the running step
 * owns. */
typedef struct coord__qwait {
    coord__aop op;
    void (*done)(struct coord__queue *q, int rc, void *payload); /* inside process */
    void *payload;
    const void *value;
    size_t len;
    int timeout_ms;
    int64_t deadline;
    int state; /* QW_* of queue.c */
    bool scheduled, enqueued, first, woken;
    int pause_ms;
    coord_kv pred;
    int64_t after;
    coord_watch *w;
    uint64_t gen; /* the attempt: a stale timer or wake-up names an older one */
} coord__qwait;

typedef struct coord__queue {
    coord_client *c;
    char *dir;          /* "<prefix>/<recipe>/<name>" */
    const char *recipe; /* "lock", "election": the path segment and the word for messages */
    const char *kind;   /* the contenders' word on ZooKeeper: "lock-", "latch-" */
    const char *only;   /* NULL, or the kind this contender waits for (lock_enqueue) */
    /* Names this handle's contenders: the same for every attempt of the handle (lock_enqueue's
     * contract). etcd keeps every key ever made under the prefix in its index until a
     * compaction, and each queue range walks them all, so a fresh key per attempt would slow
     * every later one down. A contender the handle left behind (its orphan) is deleted before
     * its next enqueue, so the tag names one contender at a time. */
    char tag[37];
    coord_kv mine;  /* our contender (key, version, order, token) once enqueued */
    uint64_t epoch; /* coord__session_epoch() of the attempt */
    /* A waiting enter sleeps on `cv` with the client's waiter mutex, woken alone by its
     * predecessor's deletion, a cancel or (through `listener`) the loss of the session: a
     * condition shared by the client's waiters would wake all of them at every hand-off. */
    pthread_cond_t cv;
    coord__listener listener;
    bool woken;  /* guarded by the client's waiter mutex */
    bool parked; /* a blocking enter waits on its predecessor's watch (same mutex; for tests) */
    _Atomic bool cancel;
    coord__qwait aw;          /* coord__queue_enter_async */
    struct leave_op *leaving; /* coord__queue_leave_async in flight (the loop's thread) */
} coord__queue;
/* Check `name`, make the path and the tag, listen for the session's loss. */
int coord__queue_init(coord__queue *q, coord_client *c, const char *recipe, const char *name,
                      const char *kind);
/* The same for a queue at `dir` (a full path, already checked). */
int coord__queue_init_at(coord__queue *q, coord_client *c, const char *dir, const char *recipe,
                         const char *kind);
void coord__queue_destroy(coord__queue *q);
/* Enqueue a contender holding `value` and wait until it is first: `timeout_ms` < 0 waits as
 * long as it takes, 0 tries once (COORD_ELOCKED), > 0 bounds the wait (COORD_ETIMEDOUT). 0 with
 * q->mine and q->epoch set; COORD_ESESSION, COORD_ECANCELED or a backend error otherwise, and
 * then nothing of the attempt is left on the server (or it is the client's orphan). */
int coord__queue_enter(coord__queue *q, const void *value, size_t len, int timeout_ms);
/* Delete our contender as coord__orphan_delete does (0, COORD_ENOTFOUND, COORD_ESESSION or a
 * failure no retry cures); q->mine is cleared either way. */
int coord__queue_leave(coord__queue *q, int timeout_ms);
/* A watch callback (payload: the coord__queue) that wakes the queue's waiter alone: for a
 * recipe's own waits on q->cv and q->woken, under the client's waiter mutex. */
void coord__queue_wake(void *payload, coord_watch_event ev, int64_t rev);
/* Make a running or the next coord__queue_enter return COORD_ECANCELED. Any thread. */
void coord__queue_cancel(coord__queue *q);
/* coord__queue_enter as a job (loop mode): `done` runs inside process with what enter returns.
 * `value` stays the caller's until then. 0, or COORD_EINVAL (one in flight, not loop mode). */
int coord__queue_enter_async(coord__queue *q, const void *value, size_t len, int timeout_ms,
                             void (*done)(coord__queue *q, int rc, void *payload), void *payload);
/* coord__queue_leave as a job: `done` (inside process) gets what the leave returned; a handle
 * freed meanwhile runs it during the free. COORD_EINVAL when an enter or leave is in flight. */
int coord__queue_leave_async(coord__queue *q, void (*done)(coord__queue *q, int rc, void *payload),
                             void *payload);
/* A hold's release without blocking (lock, rwlock, semaphore lease): `*held` is the handle's
 * flag. COORD_ENOTHELD at once when it holds nothing or lost it with its session (q->epoch), as
 * the blocking releases say; else `done` gets the leave's result (COORD_ENOTHELD when the entry
 * had vanished) and `*held` is false from now on. */
int coord__queue_release_async(coord__queue *q, bool *held, coord_done_fn done, void *payload);
/* End an async enter in flight now (its done runs with COORD_ECANCELED, or with its result when
 * it had one): for a handle being freed (coord__queue_destroy does it too). */
void coord__queue_enter_reap(coord__queue *q);
/* Whether an async enter is in flight (the loop's thread); waiting: enqueued and watching its
 * predecessor (for tests). */
bool coord__queue_entering(coord__queue *q);
bool coord__queue_waiting(coord__queue *q);

/*
 * A recipe's background thread (worker.c): `step(arg, why)` runs after each coord__worker_kick,
 * with the `why` bits of every kick since its last run; a step that returns nonzero runs again
 * with them after a backoff (30 ms doubling to about 2 s). Kicks from any thread, also after
 * stop (then they do nothing); stop ends and joins the thread (not from `step`); destroy (after
 * the last kick can come) stops and frees.
 */
typedef struct coord__worker {
    int (*step)(void *arg, unsigned why);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    unsigned why;
    bool dirty, stop, started;
    int fails;
    int64_t retry_at;
} coord__worker;
int coord__worker_init(coord__worker *w, int (*step)(void *arg, unsigned why), void *arg);
int coord__worker_start(coord__worker *w);
void coord__worker_kick(coord__worker *w, unsigned why);
/* A kick that runs the step at `at_ms` (coord__now_ms's clock), or sooner with another kick. */
void coord__worker_kick_at(coord__worker *w, unsigned why, int64_t at_ms);
void coord__worker_stop(coord__worker *w);
void coord__worker_destroy(coord__worker *w);

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

/* For transactions fenced by a lock (kv.c): the lock's client, and its contender while the
 * handle holds it (NULL otherwise). */
coord_client *coord__lock_client(const coord_lock *l);
const coord_kv *coord__lock_entry(const coord_lock *l);

/* Whether the lock's async acquire is enqueued and waits on its predecessor (tests). */
bool coord__lock_waiting(coord_lock *l);
/* Whether the election's async campaign is enqueued and waits on its predecessor (tests). */
bool coord__election_waiting(coord_election *e);

/* Lock statistics for tests and benchmarks: waiter wake-ups by a predecessor's deletion. */
uint64_t coord__lock_wakeups(void);
/* Items the queue consumers of this process tried to take or claim, won or lost (workqueue.c):
 * tests check that consumers of one client do not race each other for one item. */
uint64_t coord__queue_tries(void);

/* Bytes a built hash ring holds (for coord-bench); 0 for NULL. */
size_t coord__hashring_bytes(const coord_hashring *h);

#endif
