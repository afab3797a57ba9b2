/*
 * The in-memory backend of the unit tier (fake_backend.h). One mutex guards the server (entries,
 * directories, connections, watches); each connection has an event queue and a thread that
 * delivers its watch events and session states with no lock of the fake held.
 */
#include "fake_backend.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testing.h"

typedef struct entry {
    char *path;
    unsigned char *value;
    size_t len;
    int64_t create_rev, mod_rev; /* global revisions of the creation and of the last write */
    int64_t updates;             /* writes since the creation (ZooKeeper version - 1) */
    int64_t seq;                 /* the sequence suffix of a sequential name, else -1 */
    uint64_t owner;              /* the session of an ephemeral entry, else 0 */
} entry;

/* What the server knows of a parent path: ZooKeeper's child version and sequence counter. */
typedef struct dirinfo {
    char *path;
    int64_t cversion, nextseq;
} dirinfo;

typedef struct fconn fconn;

struct coord_watch {
    fconn *k;
    char *path;
    int kind;
    coord_watch_fn fn;
    void *payload;
    bool done; /* a KEY watch that reported the deletion */
    struct coord_watch *next;
};

typedef enum item_kind { IT_WATCH, IT_STATE, IT_RENEW, IT_ANSWER } item_kind;

typedef struct item {
    item_kind kind;
    coord_watch *w;
    coord_watch_event ev;
    int64_t rev;
    coord_session_state st;
    /* IT_ANSWER: the answer of a del_async (rc, and its detail when it failed) */
    void (*done)(void *arg, int rc);
    void *arg;
    int rc;
    char *msg;
    struct item *next;
} item;

struct fconn {
    coord_conn base;
    const coord_config *cfg;
    bool etcd;
    /* Guarded by the server's mutex. */
    uint64_t session;
    bool dead;      /* the session ended on the server and is not replaced yet */
    bool suspended; /* cut off from the server */
    int64_t cut_at; /* since when (coord__now_ms: the library's clock, test clock included) */
    fconn *next;
    _Atomic uint64_t calls[SLOT_COUNT];
    /* The event queue and its thread. */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    item *head, *tail;
    bool stop;
    coord_watch *running; /* the watch whose fn runs now */
    uint64_t queued, delivered;
    pthread_t th;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* broadcast at every write, for fake_await_count */
    entry **ents;
    size_t n, cap;
    dirinfo *dirs;
    size_t ndirs, capdirs;
    int64_t rev;
    uint64_t next_session;
    bool down;
    fconn *conns;
    coord_watch *watches;
    _Atomic uint64_t calls[SLOT_COUNT];
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER,
         .changed = PTHREAD_COND_INITIALIZER,
         .next_session = 0x7e57000};

static void count(fconn *k, coord_slot s) {
    atomic_fetch_add(&srv.calls[s], 1);
    if (k) atomic_fetch_add(&k->calls[s], 1);
}

/* ---------- event queue ---------- */

/* Queue an event for `k`'s thread. Called with the server's mutex held. */
static void enqueue(fconn *k, item *it) {
    pthread_mutex_lock(&k->qmu);
    if (k->tail)
        k->tail->next = it;
    else
        k->head = it;
    k->tail = it;
    k->queued++;
    pthread_cond_broadcast(&k->qcv);
    pthread_mutex_unlock(&k->qmu);
}

static void push(fconn *k, item_kind kind, coord_watch *w, coord_watch_event ev, int64_t rev,
                 coord_session_state st) {
    item *it = calloc(1, sizeof *it);
    if (!it) abort(); /* a test helper: no way to report it */
    *it = (item){.kind = kind, .w = w, .ev = ev, .rev = rev, .st = st};
    enqueue(k, it);
}

/* Run an answer's done on this thread, with its detail set here; free the item. */
static void answer(item *it, int rc) {
    if (rc) coord_seterr(rc, "%s", it->msg ? it->msg : "fake: the connection closed");
    it->done(it->arg, rc);
    free(it->msg);
    free(it);
}

static void renew(fconn *k);

static void *dispatcher(void *arg) {
    fconn *k = arg;
    pthread_mutex_lock(&k->qmu);
    for (;;) {
        while (!k->head && !k->stop)
            pthread_cond_wait(&k->qcv, &k->qmu);
        if (k->stop) break;
        item *it = k->head;
        k->head = it->next;
        if (!k->head) k->tail = NULL;
        k->running = it->w;
        pthread_mutex_unlock(&k->qmu);
        if (it->kind == IT_WATCH)
            it->w->fn(it->w->payload, it->ev, it->rev);
        else if (it->kind == IT_STATE)
            k->cfg->on_state(k->cfg->core, it->st);
        else if (it->kind == IT_RENEW)
            renew(k);
        if (it->kind == IT_ANSWER)
            answer(it, it->rc);
        else
            free(it);
        pthread_mutex_lock(&k->qmu);
        k->running = NULL;
        k->delivered++;
        pthread_cond_broadcast(&k->qcv);
    }
    pthread_mutex_unlock(&k->qmu);
    return NULL;
}

/* ---------- the tree (server's mutex held) ---------- */

static int64_t seq_of(const char *name) {
    size_t n = strlen(name);
    if (n < 10) return -1;
    int64_t v = 0;
    for (size_t i = n - 10; i < n; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static const char *base_of(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static entry *find(const char *path, size_t *at) {
    for (size_t i = 0; i < srv.n; i++)
        if (strcmp(srv.ents[i]->path, path) == 0) {
            if (at) *at = i;
            return srv.ents[i];
        }
    return NULL;
}

/* Is `path` a direct child of `dir`? */
static bool child_of(const char *path, const char *dir) {
    size_t dl = strlen(dir);
    return strncmp(path, dir, dl) == 0 && path[dl] == '/' && path[dl + 1] &&
           !strchr(path + dl + 1, '/');
}

static dirinfo *dir_of(const char *path) {
    const char *s = strrchr(path, '/');
    size_t dl = s ? (size_t)(s - path) : 0;
    for (size_t i = 0; i < srv.ndirs; i++)
        if (strlen(srv.dirs[i].path) == dl && strncmp(srv.dirs[i].path, path, dl) == 0)
            return &srv.dirs[i];
    if (srv.ndirs == srv.capdirs) {
        size_t cap = srv.capdirs ? srv.capdirs * 2 : 16;
        dirinfo *d = realloc(srv.dirs, cap * sizeof *d);
        if (!d) return NULL;
        srv.dirs = d;
        srv.capdirs = cap;
    }
    dirinfo *d = &srv.dirs[srv.ndirs];
    if (!(d->path = strndup(path, dl))) return NULL;
    d->cversion = 0;
    d->nextseq = 0;
    srv.ndirs++;
    return d;
}

static dirinfo *dir_find(const char *dir) {
    for (size_t i = 0; i < srv.ndirs; i++)
        if (strcmp(srv.dirs[i].path, dir) == 0) return &srv.dirs[i];
    return NULL;
}

/* Tell the watches of `path` and of its parent: `deleted` (the key is gone) or a change of the
 * parent's children (`set`: a name came or went; else a value changed). */
static void notify(const char *path, bool deleted, bool set) {
    pthread_cond_broadcast(&srv.changed);
    for (coord_watch *w = srv.watches; w; w = w->next) {
        if (w->done) continue;
        if (w->kind == COORD_WATCH_KEY && deleted && strcmp(w->path, path) == 0) {
            w->done = true;
            push(w->k, IT_WATCH, w, COORD_EV_DELETED, srv.rev, 0);
        } else if (w->kind == COORD_WATCH_CHILDREN && child_of(path, w->path) &&
                   (set || w->k->etcd)) {
            push(w->k, IT_WATCH, w, COORD_EV_CHANGED, srv.rev, 0);
        } else if (w->kind == COORD_WATCH_DATA && strcmp(w->path, path) == 0) {
            push(w->k, IT_WATCH, w, COORD_EV_CHANGED, srv.rev, 0);
        }
    }
}

static void remove_at(size_t i) {
    entry *e = srv.ents[i];
    srv.ents[i] = srv.ents[--srv.n];
    srv.rev++;
    dirinfo *d = dir_of(e->path);
    if (d) d->cversion++;
    notify(e->path, true, true);
    free(e->path);
    free(e->value);
    free(e);
}

static int set_value(entry *e, const void *value, size_t len) {
    unsigned char *v = malloc(len + 1);
    if (!v) return coord_seterr(COORD_ENOMEM, "out of memory");
    if (len) memcpy(v, value, len);
    free(e->value);
    e->value = v;
    e->len = len;
    return 0;
}

/* Create `path` (the sequence suffix appended when `seq`); the new entry or NULL (ENOMEM). */
static entry *create(const char *path, const void *value, size_t len, uint64_t owner, bool seq) {
    dirinfo *d = dir_of(path);
    if (!d) return NULL;
    if (srv.n == srv.cap) {
        size_t cap = srv.cap ? srv.cap * 2 : 64;
        entry **ents = realloc(srv.ents, cap * sizeof *ents);
        if (!ents) return NULL;
        srv.ents = ents;
        srv.cap = cap;
    }
    entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->seq = -1;
    if (seq) {
        e->seq = d->nextseq++;
        if (asprintf(&e->path, "%s%010" PRId64, path, e->seq) < 0) e->path = NULL;
    } else {
        e->path = strdup(path);
    }
    if (!e->path || set_value(e, value, len)) {
        free(e->path);
        free(e);
        return NULL;
    }
    e->seq = seq_of(base_of(e->path));
    e->owner = owner;
    e->create_rev = e->mod_rev = ++srv.rev;
    d->cversion++;
    srv.ents[srv.n++] = e;
    notify(e->path, false, true);
    return e;
}

/* Delete every entry of `session` (it ended). */
static void end_session(uint64_t session) {
    for (size_t i = 0; i < srv.n;)
        if (srv.ents[i]->owner == session)
            remove_at(i);
        else
            i++;
}

static int64_t version_of(const fconn *k, const entry *e) {
    return k->etcd ? e->mod_rev : e->updates + 1;
}

static int64_t order_of(const fconn *k, const entry *e) {
    return k->etcd ? e->create_rev : e->seq >= 0 ? e->seq : e->create_rev;
}

/* Fill `out` from `e`: `key` is the full path or the last segment; value copied when asked. */
static int fill(const fconn *k, const entry *e, coord_kv *out, bool base, bool value) {
    memset(out, 0, sizeof *out);
    out->key = strdup(base ? base_of(e->path) : e->path);
    if (value) {
        out->value = malloc(e->len + 1);
        if (out->value && e->len) memcpy(out->value, e->value, e->len);
        out->len = e->len;
    }
    out->version = version_of(k, e);
    out->order = order_of(k, e);
    out->token = (uint64_t)e->create_rev;
    if (!out->key || (value && !out->value)) {
        coord_kv_clear(out);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    return 0;
}

/* The state every slot checks first. */
static int reachable(const fconn *k) {
    if (k->suspended) return coord_seterr(COORD_EUNAVAILABLE, "fake: the server is unreachable");
    if (k->dead) return coord_seterr(COORD_ESESSION, "fake: the session expired");
    return 0;
}

/* ---------- session slots ---------- */

static int slot_open(coord_conn **out, const coord_config *cfg, const coord_backend *be) {
    count(NULL, SLOT_OPEN);
    fconn *k = calloc(1, sizeof *k);
    if (!k) return coord_seterr(COORD_ENOMEM, "out of memory");
    k->base.backend = be;
    k->cfg = cfg;
    k->etcd = be == &coord_fake_etcd_backend;
    pthread_mutex_init(&k->qmu, NULL);
    coord__cond_init(&k->qcv);
    pthread_mutex_lock(&srv.mu);
    int rc = 0;
    if (srv.down)
        rc = coord_seterr(COORD_EUNAVAILABLE, "fake: the server is down");
    else if (pthread_create(&k->th, NULL, dispatcher, k) != 0)
        rc = coord_seterr(COORD_ENOMEM, "fake: cannot start the event thread");
    if (rc) {
        pthread_mutex_unlock(&srv.mu);
        pthread_cond_destroy(&k->qcv);
        pthread_mutex_destroy(&k->qmu);
        free(k);
        return rc;
    }
    k->session = ++srv.next_session;
    k->next = srv.conns;
    srv.conns = k;
    pthread_mutex_unlock(&srv.mu);
    *out = &k->base;
    return 0;
}

static int slot_zk_open(coord_conn **out, const coord_config *cfg) {
    return slot_open(out, cfg, &coord_fake_zk_backend);
}

static int slot_etcd_open(coord_conn **out, const coord_config *cfg) {
    return slot_open(out, cfg, &coord_fake_etcd_backend);
}

static void slot_close(coord_conn *c) {
    fconn *k = (fconn *)c;
    count(k, SLOT_CLOSE);
    pthread_mutex_lock(&srv.mu);
    for (fconn **pp = &srv.conns; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    if (!k->dead) end_session(k->session);
    /* Watches left behind break the slot's contract; drop them so nothing fires into freed
     * memory (ASan and valgrind then point at the leak). */
    for (coord_watch **pp = &srv.watches; *pp;)
        if ((*pp)->k == k)
            *pp = (*pp)->next;
        else
            pp = &(*pp)->next;
    pthread_mutex_unlock(&srv.mu);
    pthread_mutex_lock(&k->qmu);
    k->stop = true;
    pthread_cond_broadcast(&k->qcv);
    pthread_mutex_unlock(&k->qmu);
    pthread_join(k->th, NULL);
    for (item *it = k->head, *nx; it; it = nx) {
        nx = it->next;
        if (it->kind == IT_ANSWER) { /* the slot's contract: once, by close at the latest */
            free(it->msg);
            it->msg = NULL;
            answer(it, COORD_ESESSION);
        } else {
            free(it);
        }
    }
    pthread_cond_destroy(&k->qcv);
    pthread_mutex_destroy(&k->qmu);
    free(k);
}

static uint64_t slot_session(coord_conn *c) {
    fconn *k = (fconn *)c;
    count(k, SLOT_SESSION);
    pthread_mutex_lock(&srv.mu);
    uint64_t s = k->session;
    pthread_mutex_unlock(&srv.mu);
    return s;
}

/* End k's session on the server; report LOST and replace it unless k is cut off. Server's
 * mutex held. */
static void expire_locked(fconn *k) {
    if (k->dead) return;
    end_session(k->session);
    k->dead = true;
    if (!k->suspended) {
        push(k, IT_STATE, NULL, 0, 0, COORD_SESSION_LOST);
        push(k, IT_RENEW, NULL, 0, 0, 0);
    }
}

/* On k's thread: take a new session once the server is reachable. */
static void renew(fconn *k) {
    pthread_mutex_lock(&srv.mu);
    if (k->dead && !k->suspended) {
        k->session = ++srv.next_session;
        k->dead = false;
        push(k, IT_STATE, NULL, 0, 0, COORD_SESSION_CONNECTED);
        for (coord_watch *w = srv.watches; w; w = w->next)
            if (w->k == k && !w->done) push(k, IT_WATCH, w, COORD_EV_RESET, 0, 0);
    }
    pthread_mutex_unlock(&srv.mu);
}

static int slot_expire(coord_conn *c) {
    fconn *k = (fconn *)c;
    count(k, SLOT_EXPIRE);
    pthread_mutex_lock(&srv.mu);
    int rc = k->suspended ? reachable(k) : 0;
    if (!rc) expire_locked(k);
    pthread_mutex_unlock(&srv.mu);
    return rc;
}

/* ---------- KV slots ---------- */

/* get and kv_get: the fake has no valueless parents, so an entry always has a value. */
static int read_entry(coord_conn *c, coord_slot slot, const char *path, coord_kv *out) {
    fconn *k = (fconn *)c;
    count(k, slot);
    pthread_mutex_lock(&srv.mu);
    int rc = reachable(k);
    entry *e = rc ? NULL : find(path, NULL);
    if (!rc && !e) rc = coord_seterr(COORD_ENOTFOUND, "fake: %s does not exist", path);
    if (!rc) rc = fill(k, e, out, false, true);
    pthread_mutex_unlock(&srv.mu);
    return rc;
}

static int slot_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    (void)timeout_ms;
    return read_entry(c, SLOT_GET, path, out);
}

static int slot_get_own(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    (void)timeout_ms;
    fconn *k = (fconn *)c;
    count(k, SLOT_GET_OWN);
    pthread_mutex_lock(&srv.mu);
    int rc = reachable(k);
    entry *e = rc ? NULL : find(path, NULL);
    if (!rc && !e) rc = coord_seterr(COORD_ENOTFOUND, "fake: %s does not exist", path);
    if (!rc && e->owner != k->session)
        rc =
            coord_seterr(COORD_EEXISTS, "fake: %s is not an ephemeral entry of this session", path);
    if (!rc) rc = fill(k, e, out, false, true);
    pthread_mutex_unlock(&srv.mu);
    return rc;
}

static int slot_put(coord_conn *c, const char *path, const void *value, size_t len, int64_t expect,
                    unsigned flags, coord_kv *out, int timeout_ms) {
    (void)timeout_ms;
    fconn *k = (fconn *)c;
    count(k, SLOT_PUT);
    if (out) memset(out, 0, sizeof *out);
    if ((flags & COORD_PUT_SEQUENTIAL) && k->etcd)
        return coord_seterr(COORD_ENOTSUP, "fake etcd: no sequential names");
    if ((flags & COORD_PUT_SEQUENTIAL) && expect > 0)
        return coord_seterr(COORD_EINVAL, "a sequential put can only create");
    if (!value && len) return coord_seterr(COORD_EINVAL, "value is NULL with length %zu", len);
    pthread_mutex_lock(&srv.mu);
    int rc = reachable(k);
    uint64_t owner = (flags & COORD_PUT_EPHEMERAL) ? k->session : 0;
    entry *e = rc || (flags & COORD_PUT_SEQUENTIAL) ? NULL : find(path, NULL);
    if (rc) {
        /* unreachable */
    } else if (!e && expect > 0) {
        rc = coord_seterr(COORD_ECONFLICT, "fake: %s does not exist", path);
        if (out) out->version = 0;
    } else if (e &&
               (expect == COORD_VERSION_ABSENT || (expect > 0 && expect != version_of(k, e)))) {
        rc = coord_seterr(COORD_ECONFLICT, "fake: %s is at version %" PRId64 ", not %" PRId64, path,
                          version_of(k, e), expect);
        if (out) {
            if (k->etcd)
                fill(k, e, out, false, true); /* the Txn's failure branch */
            else
                out->version = -1; /* ZooKeeper: read again */
        }
    } else if (!e) {
        if (!(e = create(path, value, len, owner, flags & COORD_PUT_SEQUENTIAL)))
            rc = coord_seterr(COORD_ENOMEM, "out of memory");
    } else if (!(rc = set_value(e, value, len))) {
        e->updates++;
        e->mod_rev = ++srv.rev;
        if (k->etcd) e->owner = owner; /* etcd: a put sets the lease; ZooKeeper keeps it */
        notify(e->path, false, false);
    }
    if (!rc && out) rc = fill(k, e, out, false, false);
    pthread_mutex_unlock(&srv.mu);
    return rc;
}

static int slot_del(coord_conn *c, const char *path, int64_t expect, int timeout_ms) {
    (void)timeout_ms;
    fconn *k = (fconn *)c;
    count(k, SLOT_DEL);
    if (expect == COORD_VERSION_ABSENT)
        return coord_seterr(COORD_EINVAL, "delete of an absent version");
    pthread_mutex_lock(&srv.mu);
    size_t at = 0;
    int rc = reachable(k);
    entry *e = rc ? NULL : find(path, &at);
    if (!rc && !e)
        rc = coord_seterr(COORD_ENOTFOUND, "fake: %s does not exist", path);
    else if (!rc && expect != COORD_VERSION_ANY && expect != version_of(k, e))
        rc = coord_seterr(COORD_ECONFLICT, "fake: %s is at version %" PRId64 ", not %" PRId64, path,
                          version_of(k, e), expect);
    else if (!rc)
        remove_at(at);
    pthread_mutex_unlock(&srv.mu);
    return rc;
}

/* The delete made at once; its answer queued behind the events it caused, as ZooKeeper sends a
 * watch's notification before the reply to the write that fired it. */
static int slot_del_async(coord_conn *c, const char *path, int64_t expect,
                          void (*done)(void *arg, int rc), void *arg) {
    fconn *k = (fconn *)c;
    if (expect == COORD_VERSION_ABSENT)
        return coord_seterr(COORD_EINVAL, "delete of an absent version");
    item *it = calloc(1, sizeof *it);
    if (!it) return coord_seterr(COORD_ENOMEM, "out of memory");
    int rc = slot_del(c, path, expect, 1);
    *it = (item){.kind = IT_ANSWER, .done = done, .arg = arg, .rc = rc};
    if (rc && !(it->msg = strdup(coord_last_error()))) abort(); /* a test helper */
    pthread_mutex_lock(&srv.mu);
    enqueue(k, it);
    pthread_mutex_unlock(&srv.mu);
    return 0;
}

static int slot_kv_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    (void)timeout_ms;
    return read_entry(c, SLOT_KV_GET, path, out);
}

/* Whether op `o` holds against the state before the transaction; else a detail. */
static bool txn_holds(const fconn *k, const coord_op *o) {
    entry *e = find(o->path, NULL);
    int64_t v = e ? version_of(k, e) : 0;
    switch (o->type) {
    case COORD_OP_CHECK:
        if (v == o->version) return true;
        coord_seterr(COORD_ECONFLICT,
                     "fake: txn: check of %s failed: version %" PRId64 ", expected %" PRId64,
                     o->path, v, o->version);
        return false;
    case COORD_OP_PUT:
    case COORD_OP_DEL:
        if ((o->type == COORD_OP_PUT || e) && (o->version == COORD_VERSION_ANY || v == o->version))
            return true;
        coord_seterr(COORD_ECONFLICT, "fake: txn: %s %s: version %" PRId64 ", expected %" PRId64,
                     o->type == COORD_OP_PUT ? "put" : "delete", o->path, v, o->version);
        return false;
    case COORD_OP_HELD:
        if (e && (uint64_t)e->create_rev == o->token) return true;
        coord_seterr(COORD_ECONFLICT, "fake: txn: lock entry %s is no longer held", o->path);
        return false;
    default:
        coord_seterr(COORD_EINVAL, "fake: txn: unknown operation %d", o->type);
        return false;
    }
}

static int slot_txn(coord_conn *c, const coord_op *ops, size_t n, int64_t *versions, size_t *failed,
                    int timeout_ms) {
    (void)timeout_ms;
    fconn *k = (fconn *)c;
    count(k, SLOT_TXN);
    if (n == 0 || n > 64) return coord_seterr(COORD_EINVAL, "fake: txn of %zu operations", n);
    pthread_mutex_lock(&srv.mu);
    int rc = reachable(k);
    for (size_t i = 0; !rc && i < n; i++)
        if (!txn_holds(k, &ops[i])) {
            rc = ops[i].type >= COORD_OP_CHECK && ops[i].type <= COORD_OP_HELD ? COORD_ECONFLICT
                                                                               : COORD_EINVAL;
            if (failed) *failed = i;
        }
    for (size_t i = 0; !rc && i < n; i++) {
        size_t at = 0;
        entry *e = find(ops[i].path, &at);
        if (ops[i].type == COORD_OP_DEL) {
            remove_at(at);
        } else if (ops[i].type == COORD_OP_PUT) {
            if (!e) {
                if (!(e = create(ops[i].path, ops[i].value, ops[i].len, 0, false)))
                    rc = coord_seterr(COORD_ENOMEM, "out of memory");
            } else if (!(rc = set_value(e, ops[i].value, ops[i].len))) {
                e->updates++;
                e->mod_rev = ++srv.rev;
                if (k->etcd) e->owner = 0;
                notify(e->path, false, false);
            }
            if (!rc && versions) versions[i] = version_of(k, e);
        }
    }
    pthread_mutex_unlock(&srv.mu);
    return rc;
}

static const fconn *sort_conn;

static int cmp_order(const void *a, const void *b) {
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    int64_t ox = order_of(sort_conn, x), oy = order_of(sort_conn, y);
    return ox < oy ? -1 : ox > oy ? 1 : strcmp(x->path, y->path);
}

/* The children of `dir` sorted by order (the lock queue: only sequential names on ZooKeeper).
 * Server's mutex held; the caller frees the array (not the entries). */
static int children(const fconn *k, const char *dir, bool contenders, entry ***out, size_t *n) {
    entry **v = malloc((srv.n + 1) * sizeof *v);
    if (!v) return coord_seterr(COORD_ENOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < srv.n; i++)
        if (child_of(srv.ents[i]->path, dir) && (!contenders || k->etcd || srv.ents[i]->seq >= 0))
            v[m++] = srv.ents[i];
    sort_conn = k; /* under the server's mutex */
    qsort(v, m, sizeof *v, cmp_order);
    *out = v;
    *n = m;
    return 0;
}

/* etcd's read-write lock keeps readers and writers in "read/" and "write/" of the queue. */
static const char *kind_sub(const char *kind) {
    if (kind && !strcmp(kind, "__READ__")) return "read";
    if (kind && !strcmp(kind, "__WRIT__")) return "write";
    return NULL;
}

/* `e` is in the queue `dir`: a child of it, or on etcd of its "read/" or "write/". */
static bool in_queue(const fconn *k, const entry *e, const char *dir) {
    if (child_of(e->path, dir)) return true;
    if (!k->etcd) return false;
    size_t dl = strlen(dir);
    if (strncmp(e->path, dir, dl) || e->path[dl] != '/') return false;
    const char *rest = e->path + dl + 1;
    return (!strncmp(rest, "read/", 5) && !strchr(rest + 5, '/')) ||
           (!strncmp(rest, "write/", 6) && !strchr(rest + 6, '/'));
}

/* `e` (in the queue `dir`) is a contender of `kind` (NULL: any). */
static bool of_kind(const fconn *k, const entry *e, const char *dir, const char *kind) {
    if (!kind) return true;
    if (!k->etcd) return strstr(base_of(e->path), kind) != NULL;
    const char *sub = kind_sub(kind);
    size_t dl = strlen(dir);
    return sub ? !strncmp(e->path + dl + 1, sub, strlen(sub)) : child_of(e->path, dir);
}

/* The contenders of the queue `dir` in order (children() with etcd's subdirectories). */
static int queue_of(const fconn *k, const char *dir, entry ***out, size_t *n) {
    entry **v = malloc((srv.n + 1) * sizeof *v);
    if (!v) return coord_seterr(COORD_ENOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < srv.n; i++)
        if (in_queue(k, srv.ents[i], dir) && (k->etcd || srv.ents[i]->seq >= 0))
            v[m++] = srv.ents[i];
    sort_conn = k; /* under the server's mutex */
    qsort(v, m, sizeof *v, cmp_order);
    *out = v;
    *n = m;
    return 0;
}

/* The contender `only` (NULL: any) waits for before v[at]: its index, or -1. */
static ptrdiff_t waits_for(const fconn *k, entry **v, size_t at, const char *dir,
                           const char *only) {
    for (size_t i = at; i-- > 0;)
        if (of_kind(k, v[i], dir, only)) return (ptrdiff_t)i;
    return -1;
}

/* COORD_LIST_TREE: the first segments of every entry under `dir`, once each. Server's mutex held.
 */
static int tree_names(const char *dir, coord_kv **out, size_t *n) {
    size_t dl = strlen(dir), m = 0;
    coord_kv *kv = calloc(srv.n + 1, sizeof *kv);
    if (!kv) return coord_seterr(COORD_ENOMEM, "out of memory");
    for (size_t i = 0; i < srv.n; i++) {
        const char *p = srv.ents[i]->path;
        if (strncmp(p, dir, dl) != 0 || p[dl] != '/' || !p[dl + 1]) continue;
        const char *seg = p + dl + 1, *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        bool seen = false;
        for (size_t j = 0; j < m && !seen; j++)
            seen = strlen(kv[j].key) == len && !strncmp(kv[j].key, seg, len);
        if (seen) continue;
        if (!(kv[m].key = strndup(seg, len))) {
            coord_kv_array_free(kv, m);
            return coord_seterr(COORD_ENOMEM, "out of memory");
        }
        m++;
    }
    *out = kv;
    *n = m;
    return 0;
}

static int slot_list(coord_conn *c, const char *path, unsigned flags, coord_kv **out, size_t *n,
                     int64_t *epoch, int timeout_ms) {
    (void)timeout_ms;
    fconn *k = (fconn *)c;
    count(k, SLOT_LIST);
    pthread_mutex_lock(&srv.mu);
    if (flags & COORD_LIST_TREE) {
        int rc = reachable(k);
        if (!rc) rc = tree_names(path, out, n);
        if (!rc && epoch) *epoch = srv.rev;
        pthread_mutex_unlock(&srv.mu);
        return rc;
    }
    entry **v = NULL;
    size_t m = 0;
    int rc = reachable(k);
    if (!rc) rc = children(k, path, false, &v, &m);
    coord_kv *kv = NULL;
    if (!rc && !(kv = calloc(m + 1, sizeof *kv))) rc = coord_seterr(COORD_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m; i++)
        if ((rc = fill(k, v[i], &kv[i], true, !(flags & COORD_LIST_NAMES))) == 0 &&
            (flags & COORD_LIST_NAMES) && !k->etcd)
            kv[i].order = v[i]->seq >= 0 ? v[i]->seq : 0;
    if (!rc) {
        dirinfo *d = dir_find(path);
        if (epoch) *epoch = k->etcd ? srv.rev : (d ? d->cversion : 0) + 1;
        *out = kv;
        *n = m;
    } else {
        coord_kv_array_free(kv, m);
    }
    pthread_mutex_unlock(&srv.mu);
    free(v);
    return rc;
}

static int slot_watch(coord_conn *c, const char *path, int kind, int64_t after, coord_watch_fn fn,
                      void *payload, coord_watch **out) {
    fconn *k = (fconn *)c;
    count(k, SLOT_WATCH);
    if (kind != COORD_WATCH_KEY && kind != COORD_WATCH_CHILDREN && kind != COORD_WATCH_DATA)
        return coord_seterr(COORD_EINVAL, "fake: unknown watch kind %d", kind);
    coord_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    w->k = k;
    w->kind = kind;
    w->fn = fn;
    w->payload = payload;
    pthread_mutex_lock(&srv.mu);
    int rc = reachable(k);
    if (!rc) {
        w->next = srv.watches;
        srv.watches = w;
        entry *e = kind == COORD_WATCH_KEY ? find(path, NULL) : NULL;
        /* Absent, or (etcd, watching from `after`) made again since: a deletion happened after
         * the caller's read, and etcd replays it from its history. */
        if (kind == COORD_WATCH_KEY && (!e || (k->etcd && after > 0 && e->create_rev > after))) {
            w->done = true;
            push(k, IT_WATCH, w, COORD_EV_DELETED, srv.rev, 0);
        } else if (kind == COORD_WATCH_CHILDREN && k->etcd && after > 0 && after < srv.rev) {
            /* etcd replays the history since `after`: report a change if a child moved. */
            bool moved = false;
            for (size_t i = 0; i < srv.n && !moved; i++)
                moved = child_of(srv.ents[i]->path, path) && srv.ents[i]->mod_rev > after;
            if (moved) push(k, IT_WATCH, w, COORD_EV_CHANGED, srv.rev, 0);
        }
    }
    pthread_mutex_unlock(&srv.mu);
    if (rc) {
        free(w->path);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

static void slot_unwatch(coord_conn *c, coord_watch *w) {
    fconn *k = (fconn *)c;
    count(k, SLOT_UNWATCH);
    if (!w) return;
    pthread_mutex_lock(&srv.mu);
    for (coord_watch **pp = &srv.watches; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    pthread_mutex_unlock(&srv.mu);
    pthread_mutex_lock(&k->qmu);
    for (item **pp = &k->head; *pp;) {
        item *it = *pp;
        if (it->w == w) {
            *pp = it->next;
            free(it);
            k->delivered++; /* dropped: counts as done for fake_sync */
        } else {
            pp = &it->next;
        }
    }
    k->tail = NULL;
    for (item *it = k->head; it; it = it->next)
        k->tail = it;
    /* Never from w's own fn (the contract); from another callback, w is not the running one. */
    while (k->running == w && !pthread_equal(pthread_self(), k->th))
        pthread_cond_wait(&k->qcv, &k->qmu);
    pthread_cond_broadcast(&k->qcv);
    pthread_mutex_unlock(&k->qmu);
    free(w->path);
    free(w);
}

/* ---------- lock queue ---------- */

static int dup_key(coord_kv *kv, const entry *e, int64_t order) {
    memset(kv, 0, sizeof *kv);
    if (!(kv->key = strdup(e->path))) return coord_seterr(COORD_ENOMEM, "out of memory");
    kv->order = order;
    return 0;
}

/* Curator's InterProcessMutex: an ephemeral sequential `_c_<tag>-lock-`. Unlike the ZooKeeper
 * backend the fake never loses a create within the call, so it never looks for an earlier one;
 * what an earlier attempt of the tag left stays (the core must delete it before enqueueing). */
static int zk_enqueue(fconn *k, const char *dir, const char *tag, const char *kind,
                      const char *only, const void *value, size_t len, coord_kv *mine, bool *first,
                      coord_kv *pred, int64_t *after) {
    char *path = NULL;
    if (asprintf(&path, "%s/_c_%s-%s", dir, tag, kind) < 0) path = NULL;
    int rc = 0;
    entry *me = NULL;
    if (!path || !(me = create(path, value, len, k->session, true)))
        rc = coord_seterr(COORD_ENOMEM, "out of memory");
    entry **v = NULL;
    size_t n = 0, at = 0;
    if (!rc) rc = queue_of(k, dir, &v, &n);
    while (!rc && v[at] != me)
        at++;
    ptrdiff_t p = rc ? -1 : waits_for(k, v, at, dir, only);
    if (!rc) rc = fill(k, me, mine, false, false);
    if (!rc && p >= 0) rc = dup_key(pred, v[p], v[p]->seq);
    if (!rc) {
        *first = p < 0;
        *after = 0;
    } else {
        coord_kv_clear(mine);
    }
    free(v);
    free(path);
    return rc;
}

/* etcd's concurrency.Mutex: `<lease hex>-<tag>` on the lease, found again when it exists. */
static int etcd_enqueue(fconn *k, const char *dir, const char *tag, const char *kind,
                        const char *only, const void *value, size_t len, coord_kv *mine,
                        bool *first, coord_kv *pred, int64_t *after) {
    char *path = NULL;
    const char *sub = kind_sub(kind);
    if (asprintf(&path, "%s%s%s/%" PRIx64 "-%s", dir, sub ? "/" : "", sub ? sub : "", k->session,
                 tag) < 0)
        return coord_seterr(COORD_ENOMEM, "out of memory");
    entry *me = find(path, NULL);
    bool made = !me;
    int rc = 0;
    if (!me && !(me = create(path, value, len, k->session, false)))
        rc = coord_seterr(COORD_ENOMEM, "out of memory");
    entry **v = NULL;
    size_t n = 0, at = 0;
    if (!rc) rc = queue_of(k, dir, &v, &n);
    while (!rc && v[at] != me)
        at++;
    ptrdiff_t p = rc ? -1 : waits_for(k, v, at, dir, only);
    if (!rc) rc = fill(k, me, mine, false, false);
    if (!rc) {
        mine->version = mine->order;       /* as the backend: the create revision */
        *first = p < 0 && (made || !only); /* an old key with `only`: the core asks */
        *after = srv.rev;
        /* Only a fresh key learns its predecessor in the same exchange. */
        if (made && p >= 0) rc = dup_key(pred, v[p], v[p]->create_rev);
        if (rc) coord_kv_clear(mine);
    }
    free(v);
    free(path);
    return rc;
}

static int slot_lock_enqueue(coord_conn *c, const char *dir, const char *tag, const char *kind,
                             const char *only, const void *value, size_t len, coord_kv *mine,
                             bool *first, coord_kv *pred, int64_t *after, int timeout_ms) {
    (void)timeout_ms;
    fconn *k = (fconn *)c;
    count(k, SLOT_LOCK_ENQUEUE);
    memset(pred, 0, sizeof *pred);
    pthread_mutex_lock(&srv.mu);
    int rc = reachable(k);
    if (!rc)
        rc = k->etcd ? etcd_enqueue(k, dir, tag, kind, only, value, len, mine, first, pred, after)
                     : zk_enqueue(k, dir, tag, kind, only, value, len, mine, first, pred, after);
    pthread_mutex_unlock(&srv.mu);
    return rc;
}

static int slot_lock_predecessor(coord_conn *c, const char *dir, const coord_kv *mine,
                                 const char *only, coord_kv *pred, int64_t *after, int timeout_ms) {
    (void)timeout_ms;
    fconn *k = (fconn *)c;
    count(k, SLOT_LOCK_PREDECESSOR);
    memset(pred, 0, sizeof *pred);
    pthread_mutex_lock(&srv.mu);
    entry **v = NULL;
    size_t n = 0, at = 0;
    int rc = reachable(k);
    if (!rc) rc = queue_of(k, dir, &v, &n);
    while (!rc && at < n && strcmp(v[at]->path, mine->key) != 0)
        at++;
    if (!rc && (at == n || (k->etcd && v[at]->create_rev != mine->order)))
        rc = coord_seterr(COORD_ESESSION, "fake: lock entry %s is gone", mine->key);
    ptrdiff_t p = rc ? -1 : waits_for(k, v, at, dir, only);
    if (!rc && p >= 0) rc = dup_key(pred, v[p], order_of(k, v[p]));
    if (!rc) *after = k->etcd ? srv.rev : 0;
    pthread_mutex_unlock(&srv.mu);
    free(v);
    return rc;
}

static int slot_queue_head(coord_conn *c, const char *dir, coord_kv *out, int timeout_ms) {
    (void)timeout_ms;
    fconn *k = (fconn *)c;
    count(k, SLOT_QUEUE_HEAD);
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&srv.mu);
    entry **v = NULL;
    size_t n = 0;
    int rc = reachable(k);
    if (!rc) rc = children(k, dir, true, &v, &n);
    if (!rc && n == 0) rc = coord_seterr(COORD_ENOTFOUND, "fake: %s has no contender", dir);
    if (!rc) rc = fill(k, v[0], out, false, true);
    if (!rc) out->order = order_of(k, v[0]);
    pthread_mutex_unlock(&srv.mu);
    free(v);
    return rc;
}

/* ---------- tables ---------- */

static const char *const zk_schemes[] = {"fakezk", "fake", NULL};
static const char *const etcd_schemes[] = {"fakeetcd", NULL};

#define FAKE_SLOTS                                                                                 \
    .close = slot_close, .session = slot_session, .get = slot_get, .put = slot_put,                \
    .del = slot_del, .list = slot_list, .watch = slot_watch, .unwatch = slot_unwatch,              \
    .expire = slot_expire, .lock_enqueue = slot_lock_enqueue,                                      \
    .lock_predecessor = slot_lock_predecessor, .queue_head = slot_queue_head,                      \
    .get_own = slot_get_own, .kv_get = slot_kv_get, .txn = slot_txn

/* The binary counter formats are ZooKeeper's (the bit exists from table version 3 on). */
#ifdef COORD_CAP_BINARY_COUNTERS
#define FAKE_ZK_CAPS (COORD_CAP_BINARY_COUNTERS | COORD_CAP_SEQUENTIAL)
#else
#define FAKE_ZK_CAPS 0u
#endif

const coord_backend coord_fake_zk_backend = {
    .version = COORD_BACKEND_VERSION,
    .name = "fake-zookeeper",
    .schemes = zk_schemes,
    .default_port = 1,
    .caps = FAKE_ZK_CAPS,
    .open = slot_zk_open,
    FAKE_SLOTS,
    .del_async = slot_del_async, /* as ZooKeeper's: etcd's has none */
};

const coord_backend coord_fake_etcd_backend = {
    .version = COORD_BACKEND_VERSION,
    .name = "fake-etcd",
    .schemes = etcd_schemes,
    .default_port = 1,
    .caps = 0,
    .open = slot_etcd_open,
    FAKE_SLOTS,
};

/* ---------- test controls ---------- */

static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static int reg_rc;

static void reg(void) {
    if ((reg_rc = coord_backend_register(&coord_fake_zk_backend))) return;
    if ((reg_rc = coord_backend_register(&coord_fake_etcd_backend))) return;
    if ((reg_rc = fault_wrap(&coord_fake_zk_backend))) return;
    reg_rc = fault_wrap(&coord_fake_etcd_backend);
}

int fake_register(void) {
    pthread_once(&reg_once, reg);
    return reg_rc;
}

static fconn *conn_of(coord_client *c) {
    if (!c) return NULL;
    coord_conn *k = fault_inner(coord__client_conn(c));
    return k->backend == &coord_fake_zk_backend || k->backend == &coord_fake_etcd_backend
               ? (fconn *)k
               : NULL;
}

coord_conn *fake_conn(coord_client *c) {
    fconn *k = conn_of(c);
    return k ? &k->base : NULL;
}

uint64_t fake_calls(coord_client *c, coord_slot slot) {
    if (slot >= SLOT_COUNT) return 0;
    fconn *k = conn_of(c);
    return c ? (k ? atomic_load(&k->calls[slot]) : 0) : atomic_load(&srv.calls[slot]);
}

void fake_calls_reset(coord_client *c) {
    fconn *k = conn_of(c);
    for (int i = 0; i < SLOT_COUNT; i++) {
        if (k) atomic_store(&k->calls[i], 0);
        if (!c) atomic_store(&srv.calls[i], 0);
    }
}

void fake_expire(coord_client *c) {
    fconn *k = conn_of(c);
    if (!k) return;
    pthread_mutex_lock(&srv.mu);
    expire_locked(k);
    pthread_mutex_unlock(&srv.mu);
}

void fake_compact(coord_client *c) {
    fconn *k = conn_of(c);
    if (!k) return;
    pthread_mutex_lock(&srv.mu);
    for (coord_watch *w = srv.watches; w; w = w->next)
        if (w->k == k && !w->done) push(k, IT_WATCH, w, COORD_EV_RESET, srv.rev, 0);
    pthread_mutex_unlock(&srv.mu);
}

static void suspend_locked(fconn *k) {
    if (k->suspended) return;
    k->suspended = true;
    k->cut_at = coord__now_ms();
    push(k, IT_STATE, NULL, 0, 0, COORD_SESSION_SUSPENDED);
}

/* A session lives while its client reaches the server (its keepalives arrive), and ends once
 * its client has been cut off for its TTL, by the library's clock: coord__clock_advance moves
 * sessions towards their end as it moves the library's deadlines. */
static void ttl_check_locked(fconn *k) {
    int ttl = k->cfg->session_ttl_ms > 0 ? k->cfg->session_ttl_ms : 10000;
    if (k->suspended && !k->dead && coord__now_ms() - k->cut_at >= ttl) expire_locked(k);
}

void fake_tick(void) {
    pthread_mutex_lock(&srv.mu);
    for (fconn *k = srv.conns; k; k = k->next)
        ttl_check_locked(k);
    pthread_mutex_unlock(&srv.mu);
}

static void resume_locked(fconn *k) {
    if (!k->suspended) return;
    ttl_check_locked(k);
    k->suspended = false;
    if (k->dead) {
        push(k, IT_STATE, NULL, 0, 0, COORD_SESSION_LOST);
        push(k, IT_RENEW, NULL, 0, 0, 0);
    } else {
        push(k, IT_STATE, NULL, 0, 0, COORD_SESSION_CONNECTED);
    }
}

void fake_suspend(coord_client *c) {
    fconn *k = conn_of(c);
    if (!k) return;
    pthread_mutex_lock(&srv.mu);
    suspend_locked(k);
    pthread_mutex_unlock(&srv.mu);
}

void fake_resume(coord_client *c) {
    fconn *k = conn_of(c);
    if (!k) return;
    pthread_mutex_lock(&srv.mu);
    if (!srv.down) resume_locked(k);
    pthread_mutex_unlock(&srv.mu);
}

void fake_server_down(void) {
    pthread_mutex_lock(&srv.mu);
    srv.down = true;
    for (fconn *k = srv.conns; k; k = k->next)
        suspend_locked(k);
    pthread_mutex_unlock(&srv.mu);
}

void fake_server_up(void) {
    pthread_mutex_lock(&srv.mu);
    srv.down = false;
    for (fconn *k = srv.conns; k; k = k->next)
        resume_locked(k);
    pthread_mutex_unlock(&srv.mu);
}

/* Wait until k's thread has delivered everything queued; false on timeout. */
static bool drained(fconn *k, int64_t deadline) {
    bool ok = true;
    pthread_mutex_lock(&k->qmu);
    while (k->delivered != k->queued && ok) {
        if (pthread_equal(pthread_self(), k->th)) break; /* from a callback: cannot wait */
        struct timespec dl = coord__deadline(deadline - coord__now_ms());
        if (pthread_cond_timedwait(&k->qcv, &k->qmu, &dl) && coord__now_ms() >= deadline)
            ok = k->delivered == k->queued;
    }
    pthread_mutex_unlock(&k->qmu);
    return ok;
}

int fake_sync(coord_client *c, int timeout_ms) {
    int64_t deadline = coord__now_ms() + timeout_ms;
    if (c) {
        fconn *k = conn_of(c);
        return !k || drained(k, deadline) ? 0 : coord_seterr(COORD_ETIMEDOUT, "fake_sync");
    }
    /* Every connection, until one pass finds them all drained (a delivery may queue more). */
    for (;;) {
        pthread_mutex_lock(&srv.mu);
        size_t n = 0;
        for (fconn *k = srv.conns; k; k = k->next)
            n++;
        fconn **v = calloc(n + 1, sizeof *v);
        n = 0;
        for (fconn *k = srv.conns; v && k; k = k->next)
            v[n++] = k;
        pthread_mutex_unlock(&srv.mu);
        if (!v) return coord_seterr(COORD_ENOMEM, "out of memory");
        bool all = true, quiet = true;
        for (size_t i = 0; i < n; i++) {
            pthread_mutex_lock(&v[i]->qmu);
            quiet = quiet && v[i]->delivered == v[i]->queued;
            pthread_mutex_unlock(&v[i]->qmu);
            all = all && drained(v[i], deadline);
        }
        free(v);
        if (!all) return coord_seterr(COORD_ETIMEDOUT, "fake_sync");
        if (quiet) return 0;
    }
}

size_t fake_count(const char *prefix) {
    pthread_mutex_lock(&srv.mu);
    size_t m = 0;
    for (size_t i = 0; i < srv.n; i++)
        if (!prefix || strncmp(srv.ents[i]->path, prefix, strlen(prefix)) == 0) m++;
    pthread_mutex_unlock(&srv.mu);
    return m;
}

static size_t count_locked(const char *prefix) {
    size_t m = 0;
    for (size_t i = 0; i < srv.n; i++)
        if (!prefix || strncmp(srv.ents[i]->path, prefix, strlen(prefix)) == 0) m++;
    return m;
}

int fake_await_count(const char *prefix, size_t n, int timeout_ms) {
    /* srv.changed uses the realtime clock (a static initializer). */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv.mu);
    size_t m;
    while ((m = count_locked(prefix)) != n &&
           pthread_cond_timedwait(&srv.changed, &srv.mu, &dl) == 0) {
    }
    m = count_locked(prefix);
    pthread_mutex_unlock(&srv.mu);
    return m == n ? 0
                  : coord_seterr(COORD_ETIMEDOUT, "fake: %zu entries under %s, not %zu", m,
                                 prefix ? prefix : "/", n);
}

int64_t fake_revision(void) {
    pthread_mutex_lock(&srv.mu);
    int64_t r = srv.rev;
    pthread_mutex_unlock(&srv.mu);
    return r;
}

int fake_write(const char *path, const void *value, size_t len, coord_client *ephemeral_of) {
    fconn *k = conn_of(ephemeral_of);
    pthread_mutex_lock(&srv.mu);
    uint64_t owner = k ? k->session : 0;
    entry *e = find(path, NULL);
    int rc = 0;
    if (!e) {
        if (!create(path, value, len, owner, false))
            rc = coord_seterr(COORD_ENOMEM, "out of memory");
    } else if (!(rc = set_value(e, value, len))) {
        e->updates++;
        e->mod_rev = ++srv.rev;
        e->owner = owner;
        notify(e->path, false, false);
    }
    pthread_mutex_unlock(&srv.mu);
    return rc;
}

int fake_remove(const char *path) {
    pthread_mutex_lock(&srv.mu);
    size_t at = 0;
    int rc = find(path, &at) ? 0 : coord_seterr(COORD_ENOTFOUND, "fake: %s does not exist", path);
    if (!rc) remove_at(at);
    pthread_mutex_unlock(&srv.mu);
    return rc;
}

void *fake_value(const char *path, size_t *len) {
    pthread_mutex_lock(&srv.mu);
    entry *e = find(path, NULL);
    void *v = e ? malloc(e->len + 1) : NULL;
    if (v) {
        if (e->len) memcpy(v, e->value, e->len);
        ((char *)v)[e->len] = 0;
        if (len) *len = e->len;
    }
    pthread_mutex_unlock(&srv.mu);
    return v;
}

/* ---------- cmocka helpers ---------- */

int fake_setup(void **state) {
    if (fake_register()) fail_msg("fake_register: %s", coord_last_error());
    (void)state;
    return 0;
}

int fake_teardown(void **state) {
    (void)state;
    fault_clear(NULL);
    fake_server_up();
    if (fake_sync(NULL, 5000)) fail_msg("fake: events still queued after 5 s");
    return 0;
}

bool fake_is_etcd(void **state) {
    return strstr((const char *)*state, "etcd") != NULL;
}

coord_client *fake_open_uri(const char *uri, void *rec) {
    coord_options o = COORD_OPTIONS_INIT;
    if (rec) {
        coord_test_states_init(rec);
        o.on_session = coord_test_states_cb;
        o.payload = rec;
    }
    coord_client *c = NULL;
    int rc = coord_client_open(&c, uri, &o);
    if (rc) fail_msg("open %s: %s: %s", uri, coord_strerror(rc), coord_last_error());
    return c;
}

coord_client *fake_open(void **state, const char *params, void *rec, char **uri_out) {
    static _Atomic int n;
    char *uri = NULL;
    if (asprintf(&uri, "%s://local/unit/p%ld-%d%s%s", (const char *)*state, (long)getpid(),
                 atomic_fetch_add(&n, 1), params ? "?" : "", params ? params : "") < 0)
        fail_msg("out of memory");
    coord_client *c = fake_open_uri(uri, rec);
    if (uri_out)
        *uri_out = uri;
    else
        free(uri);
    return c;
}
