/*
 * A fault-injecting shim around any backend table (SQLite's test VFS, for the seam).
 *
 * fault_wrap(inner) registers, for every scheme S of `inner`, the scheme `fault+S` served by a
 * table that forwards each slot to `inner` unless a rule says otherwise. So `fault+fakezk://x/app`
 * is the fake backend with faults, and `fault+zk://127.0.0.1:2181/app` a real ZooKeeper with
 * faults. The inner backend sees its own scheme in the URI.
 *
 * A rule matches calls of one slot (on one client, or on any). It counts them from 1 and acts on
 * the call numbered `nth`, and on the `count - 1` after it (count FAULT_PERSISTENT: on every call
 * from nth on). Acting means:
 *  - FAULT_BEFORE: wait `delay_ms`, then fail with `code` without calling the inner slot (the
 *    request never reached the server); with code 0, just delay and call.
 *  - FAULT_AFTER: call the inner slot, wait `delay_ms`, then drop its result (out-parameters
 *    freed; a watch made is removed; a connection opened is closed) and fail with `code`: the
 *    server applied the request but the answer was lost.
 * A rule on SLOT_DEL also acts on del_async (a backend that has it): the delete is then made
 * with the inner del and its answer given on the calling thread, before del_async returns.
 * The failure sets coord_last_error() to "fault: ...". Rules are checked in the order added;
 * the first whose call number is in range acts.
 */
#ifndef COORD_FAULT_BACKEND_H
#define COORD_FAULT_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "coord.h"
#include "coord/sys/backend.h"

/* The slots of coord_backend, for per-slot counters and rules. */
typedef enum coord_slot {
    SLOT_OPEN,
    SLOT_CLOSE,
    SLOT_SESSION,
    SLOT_GET,
    SLOT_PUT,
    SLOT_DEL,
    SLOT_LIST,
    SLOT_WATCH,
    SLOT_UNWATCH,
    SLOT_EXPIRE,
    SLOT_LOCK_ENQUEUE,
    SLOT_LOCK_PREDECESSOR,
    SLOT_GET_OWN,
    SLOT_QUEUE_HEAD,
    SLOT_KV_GET,
    SLOT_TXN,
    SLOT_COUNT
} coord_slot;

/* "get", "lock_enqueue", ... */
const char *coord_slot_name(coord_slot s);

#define FAULT_PERSISTENT (-1)

typedef enum fault_when { FAULT_BEFORE, FAULT_AFTER } fault_when;

typedef struct fault_rule {
    coord_slot slot;
    int nth;         /* first call acted on, from 1 (calls counted from when the rule is added) */
    int count;       /* calls acted on from nth: 1 = transient; FAULT_PERSISTENT = all */
    int code;        /* e.g. COORD_EUNAVAILABLE, COORD_ETIMEDOUT; 0: delay only */
    fault_when when; /* before the inner call, or after it (applied, answer lost) */
    int delay_ms;    /* wait this long first (before) or before answering (after) */
} fault_rule;

/* Register `fault+S` for each scheme S of `inner` (once per table; idempotent). The table must
 * outlive the process's clients. 0, or the registration's error. */
int fault_wrap(const coord_backend *inner);

/* Add a rule for the calls of client `c` (NULL: every client of the shim, and opens). Returns
 * the rule's id (> 0), for fault_hits. */
int fault_add(coord_client *c, const fault_rule *r);
/* Shorthands: fail the nth call of `slot` once / from then on, before or after applying it. */
int fault_once(coord_client *c, coord_slot slot, int nth, int code, fault_when when);
int fault_always(coord_client *c, coord_slot slot, int nth, int code, fault_when when);
/* Calls a rule has acted on so far. */
int fault_hits(int id);
/* Remove every rule of `c` (NULL: every rule). */
void fault_clear(coord_client *c);

/* The inner connection when `k` is one of the shim's, else `k` itself. */
coord_conn *fault_inner(coord_conn *k);

#endif
