/*
 * The fault-injecting shim (fault_backend.h): a table per wrapped backend, forwarding every slot
 * to it through a connection that holds the inner one, unless a rule acts on the call.
 */
#include "fault_backend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define MAX_WRAPPED 8
#define MAX_SCHEMES 4

/* One wrapped backend: the shim's table and its schemes ("fault+S"). */
typedef struct wrapped {
    coord_backend table;
    const coord_backend *inner;
    char names[MAX_SCHEMES][24];
    const char *schemes[MAX_SCHEMES + 1];
} wrapped;

typedef struct fconn {
    coord_conn base;
    const coord_backend *inner_be;
    coord_conn *inner;
    coord_uri uri;    /* the URI with the inner scheme (a shallow copy) */
    coord_config cfg; /* what the inner backend was opened with */
} fconn;

typedef struct rule {
    fault_rule r;
    coord_conn *conn; /* the shim's connection it applies to, NULL for all */
    int id, calls, hits;
    struct rule *next;
} rule;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static wrapped wraps[MAX_WRAPPED];
static size_t nwraps;
static rule *rules, **rules_tail = &rules;
static int next_id = 1;

static const char *const slot_names[SLOT_COUNT] = {
    "open",    "close",      "session", "get",    "put",          "del",
    "list",    "watch",      "unwatch", "expire", "lock_enqueue", "lock_predecessor",
    "get_own", "queue_head", "kv_get",  "txn"};

const char *coord_slot_name(coord_slot s) {
    return s < SLOT_COUNT ? slot_names[s] : "?";
}

static void sleep_ms(int ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The rule acting on this call of `slot` on `k` (counted), copied into `out`; false if none. */
static bool decide(coord_conn *k, coord_slot slot, fault_rule *out) {
    bool act = false;
    pthread_mutex_lock(&mu);
    for (rule *r = rules; r; r = r->next) {
        if (r->r.slot != slot || (r->conn && r->conn != k)) continue;
        int n = ++r->calls;
        bool in = n >= r->r.nth && (r->r.count == FAULT_PERSISTENT || n < r->r.nth + r->r.count);
        if (in && !act) {
            act = true;
            r->hits++;
            *out = r->r;
        }
    }
    pthread_mutex_unlock(&mu);
    return act;
}

static int fail(const fault_rule *r, const char *what) {
    return coord_seterr(r->code, "fault: %s %s (%s)", slot_names[r->slot],
                        r->when == FAULT_AFTER ? "applied, its answer lost" : "not sent",
                        what ? what : "");
}

/* Before the inner call: 1 when the rule replaces the call (the error is in *rc), 0 to call. */
static int before(coord_conn *k, coord_slot slot, fault_rule *r, bool *after, int *rc,
                  const char *what) {
    *after = false;
    if (!decide(k, slot, r)) return 0;
    if (r->when == FAULT_BEFORE) {
        sleep_ms(r->delay_ms);
        if (!r->code) return 0;
        *rc = fail(r, what);
        return 1;
    }
    *after = true;
    return 0;
}

/* After the inner call (which returned `rc`): the code to return. True in *drop when the
 * result must be dropped. */
static int settle(const fault_rule *r, bool after, int rc, bool *drop, const char *what) {
    *drop = false;
    if (!after) return rc;
    sleep_ms(r->delay_ms);
    if (!r->code) return rc;
    *drop = rc == 0;
    return fail(r, what);
}

static const wrapped *wrap_of_scheme(const char *scheme) {
    pthread_mutex_lock(&mu);
    const wrapped *w = NULL;
    for (size_t i = 0; i < nwraps && !w; i++)
        for (size_t j = 0; wraps[i].schemes[j] && !w; j++)
            if (strcmp(wraps[i].schemes[j], scheme) == 0) w = &wraps[i];
    pthread_mutex_unlock(&mu);
    return w;
}

/* ---------- slots ---------- */

static int f_open(coord_conn **out, const coord_config *cfg) {
    const wrapped *w = wrap_of_scheme(cfg->uri->scheme);
    if (!w) return coord_seterr(COORD_EINVAL, "fault: no wrapped backend for %s", cfg->uri->scheme);
    fconn *f = calloc(1, sizeof *f);
    if (!f) return coord_seterr(COORD_ENOMEM, "out of memory");
    f->base.backend = &w->table;
    f->inner_be = w->inner;
    f->uri = *cfg->uri;
    f->uri.scheme = (char *)cfg->uri->scheme + strlen("fault+");
    f->cfg = *cfg;
    f->cfg.uri = &f->uri;
    fault_rule r;
    bool after;
    int rc = 0;
    if (before(NULL, SLOT_OPEN, &r, &after, &rc, cfg->uri->scheme)) {
        free(f);
        return rc;
    }
    rc = f->inner_be->open(&f->inner, &f->cfg);
    bool drop;
    rc = settle(&r, after, rc, &drop, cfg->uri->scheme);
    if (drop) f->inner_be->close(f->inner);
    if (rc) {
        free(f);
        return rc;
    }
    *out = &f->base;
    return 0;
}

/* Forget the rules of connection `c` (NULL: every rule). */
static void drop_rules(coord_conn *c) {
    pthread_mutex_lock(&mu);
    for (rule **pp = &rules; *pp;) {
        rule *x = *pp;
        if (!c || x->conn == c) {
            *pp = x->next;
            free(x);
        } else {
            pp = &x->next;
        }
    }
    rules_tail = &rules;
    while (*rules_tail)
        rules_tail = &(*rules_tail)->next;
    pthread_mutex_unlock(&mu);
}

/* Slots that cannot fail: counted, and delayed when a rule says so. */
static void delay_only(coord_conn *c, coord_slot slot) {
    fault_rule r;
    if (decide(c, slot, &r)) sleep_ms(r.delay_ms);
}

static void f_close(coord_conn *c) {
    fconn *f = (fconn *)c;
    delay_only(c, SLOT_CLOSE);
    f->inner_be->close(f->inner);
    drop_rules(c);
    free(f);
}

static uint64_t f_session(coord_conn *c) {
    fconn *f = (fconn *)c;
    delay_only(c, SLOT_SESSION);
    return f->inner_be->session(f->inner);
}

/* The shape every failing slot shares: `CALL` runs the inner slot into rc, `DROP` undoes a
 * result that an "after" rule throws away. */
#define FORWARD(slot, what, CALL, DROP)                                                            \
    fault_rule r;                                                                                  \
    bool after, drop;                                                                              \
    int rc = 0;                                                                                    \
    if (before(c, slot, &r, &after, &rc, what)) return rc;                                         \
    CALL;                                                                                          \
    rc = settle(&r, after, rc, &drop, what);                                                       \
    if (drop) {                                                                                    \
        DROP;                                                                                      \
    }                                                                                              \
    return rc

static int f_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_GET, path, rc = f->inner_be->get(f->inner, path, out, timeout_ms),
            coord_kv_clear(out));
}

static int f_get_own(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_GET_OWN, path,
            rc = f->inner_be->get_own ? f->inner_be->get_own(f->inner, path, out, timeout_ms)
                                      : coord_seterr(COORD_ENOTSUP, "no get_own"),
            coord_kv_clear(out));
}

static int f_put(coord_conn *c, const char *path, const void *value, size_t len, int64_t expect,
                 unsigned flags, coord_kv *out, int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_PUT, path,
            rc = f->inner_be->put(f->inner, path, value, len, expect, flags, out, timeout_ms),
            if (out) coord_kv_clear(out));
}

static int f_del(coord_conn *c, const char *path, int64_t expect, int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_DEL, path, rc = f->inner_be->del(f->inner, path, expect, timeout_ms), (void)0);
}

/* A rule acts on a delete sent without waiting as on a blocking one: the delete is then made
 * with the inner del, and its answer given on the calling thread, after the rule's delay. */
static int f_del_async(coord_conn *c, const char *path, int64_t expect,
                       void (*done)(void *arg, int rc), void *arg) {
    fconn *f = (fconn *)c;
    fault_rule r;
    if (!decide(c, SLOT_DEL, &r)) return f->inner_be->del_async(f->inner, path, expect, done, arg);
    int rc;
    if (r.when == FAULT_BEFORE) {
        sleep_ms(r.delay_ms);
        rc = r.code ? fail(&r, path) : f->inner_be->del(f->inner, path, expect, f->cfg.timeout_ms);
    } else {
        bool drop;
        rc = settle(&r, true, f->inner_be->del(f->inner, path, expect, f->cfg.timeout_ms), &drop,
                    path);
    }
    done(arg, rc);
    return 0;
}

static int f_list(coord_conn *c, const char *path, unsigned flags, coord_kv **out, size_t *n,
                  int64_t *epoch, int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_LIST, path,
            rc = f->inner_be->list(f->inner, path, flags, out, n, epoch, timeout_ms), {
                coord_kv_array_free(*out, *n);
                *out = NULL;
                *n = 0;
            });
}

static int f_watch(coord_conn *c, const char *path, int kind, int64_t after_rev, coord_watch_fn fn,
                   void *payload, coord_watch **out) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_WATCH, path,
            rc = f->inner_be->watch(f->inner, path, kind, after_rev, fn, payload, out), {
                f->inner_be->unwatch(f->inner, *out);
                *out = NULL;
            });
}

static void f_unwatch(coord_conn *c, coord_watch *w) {
    fconn *f = (fconn *)c;
    delay_only(c, SLOT_UNWATCH);
    f->inner_be->unwatch(f->inner, w);
}

static int f_expire(coord_conn *c) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_EXPIRE, "",
            rc = f->inner_be->expire ? f->inner_be->expire(f->inner)
                                     : coord_seterr(COORD_ENOTSUP, "no expire"),
            (void)0);
}

static int f_lock_enqueue(coord_conn *c, const char *dir, const char *tag, const char *kind,
                          const char *only, const void *value, size_t len, coord_kv *mine,
                          bool *first, coord_kv *pred, int64_t *after_rev, int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_LOCK_ENQUEUE, dir,
            rc = f->inner_be->lock_enqueue(f->inner, dir, tag, kind, only, value, len, mine, first,
                                           pred, after_rev, timeout_ms),
            {
                coord_kv_clear(mine);
                coord_kv_clear(pred);
            });
}

static int f_lock_predecessor(coord_conn *c, const char *dir, const coord_kv *mine,
                              const char *only, coord_kv *pred, int64_t *after_rev,
                              int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(
        SLOT_LOCK_PREDECESSOR, dir,
        rc = f->inner_be->lock_predecessor(f->inner, dir, mine, only, pred, after_rev, timeout_ms),
        coord_kv_clear(pred));
}

static int f_queue_head(coord_conn *c, const char *dir, coord_kv *out, int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_QUEUE_HEAD, dir, rc = f->inner_be->queue_head(f->inner, dir, out, timeout_ms),
            coord_kv_clear(out));
}

static int f_kv_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_KV_GET, path, rc = f->inner_be->kv_get(f->inner, path, out, timeout_ms),
            coord_kv_clear(out));
}

static int f_txn(coord_conn *c, const coord_op *ops, size_t n, int64_t *versions, size_t *failed,
                 int timeout_ms) {
    fconn *f = (fconn *)c;
    FORWARD(SLOT_TXN, n ? ops[0].path : "",
            rc = f->inner_be->txn(f->inner, ops, n, versions, failed, timeout_ms), (void)0);
}

/* ---------- registration and rules ---------- */

int fault_wrap(const coord_backend *inner) {
    if (!inner || !inner->schemes) return coord_seterr(COORD_EINVAL, "fault: no table");
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nwraps; i++)
        if (wraps[i].inner == inner) {
            pthread_mutex_unlock(&mu);
            return 0;
        }
    if (nwraps == MAX_WRAPPED) {
        pthread_mutex_unlock(&mu);
        return coord_seterr(COORD_EINVAL, "fault: too many wrapped backends");
    }
    wrapped *w = &wraps[nwraps];
    memset(w, 0, sizeof *w);
    w->inner = inner;
    size_t n = 0;
    for (; inner->schemes[n] && n < MAX_SCHEMES; n++) {
        snprintf(w->names[n], sizeof w->names[n], "fault+%s", inner->schemes[n]);
        w->schemes[n] = w->names[n];
    }
    w->schemes[n] = NULL;
    /* Everything the inner table declares (version, port, parameters, caps, URI rules), with
     * the shim's slots. */
    w->table = *inner;
    w->table.schemes = w->schemes;
    w->table.open = f_open;
    w->table.close = f_close;
    w->table.session = f_session;
    w->table.get = f_get;
    w->table.put = f_put;
    w->table.del = f_del;
    w->table.list = f_list;
    w->table.watch = f_watch;
    w->table.unwatch = f_unwatch;
    w->table.expire = inner->expire ? f_expire : NULL;
    w->table.lock_enqueue = f_lock_enqueue;
    w->table.lock_predecessor = f_lock_predecessor;
    w->table.queue_head = f_queue_head;
    w->table.get_own = inner->get_own ? f_get_own : NULL;
    w->table.kv_get = inner->kv_get ? f_kv_get : NULL;
    w->table.txn = inner->txn ? f_txn : NULL;
    w->table.del_async = inner->del_async ? f_del_async : NULL;
    nwraps++;
    pthread_mutex_unlock(&mu);
    /* The registry takes its own lock; a failed registration leaves an unused slot here. */
    return coord_backend_register(&w->table);
}

static coord_conn *conn_of(coord_client *c) {
    return c ? coord__client_conn(c) : NULL;
}

int fault_add(coord_client *c, const fault_rule *r) {
    rule *x = calloc(1, sizeof *x);
    if (!x) return coord_seterr(COORD_ENOMEM, "out of memory");
    x->r = *r;
    if (x->r.nth < 1) x->r.nth = 1;
    if (x->r.count == 0) x->r.count = 1;
    x->conn = conn_of(c);
    pthread_mutex_lock(&mu);
    x->id = next_id++;
    *rules_tail = x;
    rules_tail = &x->next;
    int id = x->id;
    pthread_mutex_unlock(&mu);
    return id;
}

int fault_once(coord_client *c, coord_slot slot, int nth, int code, fault_when when) {
    fault_rule r = {.slot = slot, .nth = nth, .count = 1, .code = code, .when = when};
    return fault_add(c, &r);
}

int fault_always(coord_client *c, coord_slot slot, int nth, int code, fault_when when) {
    fault_rule r = {
        .slot = slot, .nth = nth, .count = FAULT_PERSISTENT, .code = code, .when = when};
    return fault_add(c, &r);
}

int fault_hits(int id) {
    int hits = 0;
    pthread_mutex_lock(&mu);
    for (rule *r = rules; r; r = r->next)
        if (r->id == id) hits = r->hits;
    pthread_mutex_unlock(&mu);
    return hits;
}

void fault_clear(coord_client *c) {
    drop_rules(conn_of(c));
}

coord_conn *fault_inner(coord_conn *k) {
    if (!k) return NULL;
    pthread_mutex_lock(&mu);
    bool mine = false;
    for (size_t i = 0; i < nwraps && !mine; i++)
        mine = k->backend == &wraps[i].table;
    pthread_mutex_unlock(&mu);
    return mine ? ((fconn *)k)->inner : k;
}
