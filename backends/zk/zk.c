/*
 * ZooKeeper backend over the official multi-threaded C client (libzookeeper_mt, THREADED).
 *
 * Every operation uses the asynchronous API and waits on its own completion with a deadline, so
 * `timeout_ms` holds even when the synchronous API would wait for the whole session timeout.
 * A supervisor thread replaces the handle after the session expired (the C client never does),
 * re-arms the watches on the new handle and reports them RESET.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#include "internal.h"
#include "zk_expire.h"
#include "zk_path.h"

#define MAX_PATH 4096

typedef struct zk zk;

struct coord_watch {
    zk *z;
    struct coord_watch *next;
    char *path;
    int kind;
    coord_watch_fn fn;
    void *payload;
    pthread_mutex_t mu; /* serialises deliveries and guards the fields below */
    pthread_cond_t cv;
    int pending;        /* async arm calls not yet completed ... */
    uint64_t pend_sess; /* ... sent on the handle of this session number (zk.session) */
    bool dead;
    bool in_fn;
    /* KEY: `consumed`, the deletion came as the registered watch's event (the client drops a
     * watch as it fires); `absent`, an arm found the node gone, which leaves a watch for its
     * creation behind. CHILDREN: `absent`, the parent was absent at the last arm. */
    bool consumed, absent;
    /* DATA: the node's state (mzxid, 0 when absent) seen by the last arm, `seen` once one did:
     * a re-arm that finds another state reports the change it would otherwise miss. CHILDREN:
     * the parent's cversion the last arm saw, plus one for the change that fired it: a re-arm
     * that finds more reports them, for the listing the event's reader made may have gone out
     * before the re-arm (a change between the two fired nothing). */
    int64_t state;
    bool seen;
};

struct zk {
    coord_conn base;
    const coord_config *cfg;
    char *hosts;
    char *auth;          /* "user:password" or NULL */
    struct ACL above[2]; /* ACL of the nodes above the prefix when authenticated */
    struct ACL_vector above_acl;
    pthread_rwlock_t hlock; /* read: using zh; write: replacing it */
    zhandle_t *zh;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int zstate;       /* last state of the current handle */
    uint64_t session; /* bumps when the handle is replaced */
    bool replace;     /* the current session expired */
    bool stopping;
    coord_session_state state;
    bool opened;
    coord_watch *watches;
    struct adel *adels; /* deletes sent by zk_del_async, not answered yet */
    pthread_t sup;
    bool sup_started;
    /* Nodes a transaction's read found absent above a path it tested for absence (a queue's
     * claims directory before its first claim): the next test of a path under one of them
     * tests that node instead, with no read first. Hints only: the multi verifies them. */
    pthread_mutex_t hint_mu;
    char *absent[8];
    unsigned absent_next;
};

static void zk_log(const char *msg) {
    /* The C client logs every refused connection at ERROR; that is the session state's job. */
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("COORD_ZK_DEBUG") != NULL;
    if (verbose) fprintf(stderr, "zookeeper: %s\n", msg);
}

static int map_rc(int rc, const char *what, const char *path) {
    int err;
    switch (rc) {
    case ZOK:
        return 0;
    case ZNONODE:
        err = COORD_ENOTFOUND;
        break;
    case ZNODEEXISTS:
        err = COORD_EEXISTS;
        break;
    case ZBADVERSION:
        err = COORD_ECONFLICT;
        break;
    case ZCONNECTIONLOSS:
        err = COORD_EUNAVAILABLE;
        break;
    case ZOPERATIONTIMEOUT:
        err = COORD_ETIMEDOUT;
        break;
    case ZSESSIONEXPIRED:
    case ZSESSIONMOVED:
    case ZINVALIDSTATE:
    case ZCLOSING:
        err = COORD_ESESSION;
        break;
    case ZNOAUTH:
        /* "not authenticated" is ZooKeeper's word for any ACL refusal. */
        return coord_seterr(COORD_EAUTH, "zookeeper %s %s: permission denied by the ACL (%s, %d)",
                            what, path, zerror(rc), rc);
    case ZAUTHFAILED:
        err = COORD_EAUTH;
        break;
    case ZBADARGUMENTS:
        err = COORD_EINVAL;
        break;
    default:
        err = COORD_EBACKEND;
    }
    return coord_seterr(err, "zookeeper %s %s: %s (%d)", what, path, zerror(rc), rc);
}

/* ---------- async operations with a deadline ---------- */

typedef struct zop {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done;
    int rc;
    struct Stat stat;
    char *data;
    int datalen;
    bool nodata; /* get: the node's data is null (datalen then 0), not empty */
    char *name;
    struct String_vector kids;
    void *owned; /* freed with the op: buffers the completion writes into (multi results) */
} zop;

static zop *zop_new(void) {
    zop *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    pthread_mutex_init(&o->mu, NULL);
    coord__cond_init(&o->cv);
    o->refs = 2; /* the caller and the completion */
    return o;
}

static void zop_unref(zop *o) {
    pthread_mutex_lock(&o->mu);
    int r = --o->refs;
    pthread_mutex_unlock(&o->mu);
    if (r) return;
    free(o->data);
    free(o->name);
    free(o->owned);
    deallocate_String_vector(&o->kids);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o);
}

static void zop_finish(zop *o, int rc) {
    pthread_mutex_lock(&o->mu);
    o->rc = rc;
    o->done = true;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    zop_unref(o);
}

static void on_void(int rc, const void *d) {
    zop_finish((zop *)d, rc);
}

static void on_stat(int rc, const struct Stat *st, const void *d) {
    zop *o = (zop *)d;
    if (st) o->stat = *st;
    zop_finish(o, rc);
}

static void on_data(int rc, const char *v, int len, const struct Stat *st, const void *d) {
    zop *o = (zop *)d;
    if (rc == ZOK) {
        o->data = malloc(len > 0 ? (size_t)len + 1 : 1);
        if (!o->data)
            rc = ZSYSTEMERROR;
        else {
            if (len > 0) memcpy(o->data, v, (size_t)len);
            o->datalen = len > 0 ? len : 0;
            o->data[o->datalen] = 0;
            o->nodata = len < 0;
        }
        if (st) o->stat = *st;
    }
    zop_finish(o, rc);
}

static void on_name(int rc, const char *name, const struct Stat *st, const void *d) {
    zop *o = (zop *)d;
    if (rc == ZOK) {
        if (name && !(o->name = strdup(name))) rc = ZSYSTEMERROR;
        if (st) o->stat = *st;
    }
    zop_finish(o, rc);
}

static void on_kids(int rc, const struct String_vector *sv, const struct Stat *st, const void *d) {
    zop *o = (zop *)d;
    if (rc == ZOK && sv) {
        /* The client frees `sv` after we return: move its strings out. */
        o->kids = *sv;
        ((struct String_vector *)sv)->data = NULL;
        ((struct String_vector *)sv)->count = 0;
        if (st) o->stat = *st;
    }
    zop_finish(o, rc);
}

/* Wait for the completion or the deadline. On timeout the completion still owns a reference. */
static int zop_wait(zop *o, int64_t deadline) {
    struct timespec dl = coord__deadline(deadline - coord__now_ms());
    pthread_mutex_lock(&o->mu);
    while (!o->done)
        if (pthread_cond_timedwait(&o->cv, &o->mu, &dl)) break;
    bool done = o->done;
    pthread_mutex_unlock(&o->mu);
    return done ? 0 : -1;
}

/* Hold the current handle for issuing a call; NULL when there is no usable handle. */
static zhandle_t *zh_acquire(zk *z) {
    pthread_rwlock_rdlock(&z->hlock);
    if (!z->zh) pthread_rwlock_unlock(&z->hlock);
    return z->zh;
}

static void zh_release(zk *z) {
    pthread_rwlock_unlock(&z->hlock);
}

/* Run one async call (`issue` fills the op) and wait for it. Returns the ZooKeeper rc, or
 * ZOPERATIONTIMEOUT when the deadline passed. */
typedef int (*issue_fn)(zhandle_t *zh, zop *o, void *arg);

/* run, the op taking `owned` (malloc'd, may be NULL): whatever the outcome it is freed with the
 * op, so the completion may write into it after a deadline passed. */
static int run_owning(zk *z, issue_fn issue, void *arg, void *owned, int64_t deadline, zop **out) {
    zop *o = zop_new();
    if (!o) {
        free(owned);
        return ZSYSTEMERROR;
    }
    o->owned = owned;
    zhandle_t *zh = zh_acquire(z);
    int rc = zh ? issue(zh, o, arg) : ZINVALIDSTATE;
    if (zh) zh_release(z);
    if (rc != ZOK) {
        /* Not submitted: the completion will never run. */
        o->refs = 1;
        zop_unref(o);
        return rc;
    }
    if (zop_wait(o, deadline)) {
        zop_unref(o);
        return ZOPERATIONTIMEOUT;
    }
    rc = o->rc;
    *out = o;
    return rc;
}

static int run(zk *z, issue_fn issue, void *arg, int64_t deadline, zop **out) {
    return run_owning(z, issue, arg, NULL, deadline, out);
}

typedef struct args {
    const char *path;
    const char *value;
    int len;
    int version;
    int mode;
    const struct ACL_vector *acl;
} args;

static int issue_create(zhandle_t *zh, zop *o, void *a) {
    args *x = a;
    return zoo_acreate2(zh, x->path, x->value, x->len, x->acl, x->mode, on_name, o);
}
static int issue_set(zhandle_t *zh, zop *o, void *a) {
    args *x = a;
    return zoo_aset(zh, x->path, x->value, x->len, x->version, on_stat, o);
}
static int issue_get(zhandle_t *zh, zop *o, void *a) {
    return zoo_aget(zh, ((args *)a)->path, 0, on_data, o);
}
static int issue_delete(zhandle_t *zh, zop *o, void *a) {
    args *x = a;
    return zoo_adelete(zh, x->path, x->version, on_void, o);
}
static int issue_children(zhandle_t *zh, zop *o, void *a) {
    return zoo_aget_children2(zh, ((args *)a)->path, 0, on_kids, o);
}

/* The ACL of a node made at `len` bytes of a path: with credentials, the prefix and every node
 * under it are their creator's only; the nodes above the prefix (say "/apps" of "/apps/a") are
 * shared ground where others make their own prefixes, so they also let anyone read and create
 * (but not delete, write, or change the ACL). */
static const struct ACL_vector *acl_for(zk *z, size_t len) {
    if (!z->auth) return &ZOO_OPEN_ACL_UNSAFE;
    return len < strlen(z->cfg->uri->prefix) ? &z->above_acl : &ZOO_CREATOR_ALL_ACL;
}

static int64_t deadline_of(int timeout_ms) {
    return coord__now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
}

/* Create the ancestors of `path` (the prefix node as a persistent node, deeper ones as
 * containers that the server removes once empty). */
static int make_parents(zk *z, const char *path, int64_t deadline) {
    size_t plen = zk_parent_len(path);
    if (plen == 0) return ZOK;
    char parent[MAX_PATH];
    if (plen >= sizeof parent) return ZBADARGUMENTS;
    memcpy(parent, path, plen);
    parent[plen] = 0;
    size_t prefix_len = strlen(z->cfg->uri->prefix);
    for (int attempt = 0; attempt < 8; attempt++) {
        args a = {.path = parent,
                  .value = NULL,
                  .len = -1,
                  .acl = acl_for(z, plen),
                  .mode = plen > prefix_len ? ZOO_CONTAINER : ZOO_PERSISTENT};
        zop *o = NULL;
        int rc = run(z, issue_create, &a, deadline, &o);
        if (o) zop_unref(o);
        if (rc == ZOK || rc == ZNODEEXISTS) return ZOK;
        if (rc != ZNONODE) return rc;
        if ((rc = make_parents(z, parent, deadline)) != ZOK) return rc;
    }
    return ZNONODE;
}

static void fill_kv(coord_kv *kv, const struct Stat *st, const char *name) {
    int64_t seq;
    kv->version = (int64_t)st->version + 1;
    kv->token = (uint64_t)st->czxid;
    kv->order = name && zk_sequence(name, &seq) ? seq : st->czxid;
}

/* ---------- KV slots ---------- */

/* get; `*owner` (may be NULL) receives the node's ephemeralOwner; with `values`, a node with null
 * data (no value in the key-value space) is COORD_ENOTFOUND. */
static int get_node(zk *z, const char *path, coord_kv *out, int64_t *owner, bool values,
                    int timeout_ms) {
    args a = {.path = path};
    zop *o = NULL;
    int rc = run(z, issue_get, &a, deadline_of(timeout_ms), &o);
    if (rc != ZOK) {
        if (o) zop_unref(o);
        return map_rc(rc, "get", path);
    }
    if (values && o->nodata) {
        zop_unref(o);
        return coord_seterr(COORD_ENOTFOUND, "%s has no value", path);
    }
    if (owner) *owner = o->stat.ephemeralOwner;
    memset(out, 0, sizeof *out);
    out->key = strdup(path);
    out->value = o->data;
    out->len = (size_t)o->datalen;
    o->data = NULL;
    fill_kv(out, &o->stat, zk_basename(path));
    zop_unref(o);
    if (!out->key) {
        coord_kv_clear(out);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    return 0;
}

static int zk_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    return get_node((zk *)c, path, out, NULL, false, timeout_ms);
}

static int zk_kv_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    return get_node((zk *)c, path, out, NULL, true, timeout_ms);
}

static int zk_get_own(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    zk *z = (zk *)c;
    int64_t owner = 0;
    int rc = get_node(z, path, out, &owner, false, timeout_ms);
    if (rc) return rc;
    /* The session read after the node: one replaced meanwhile does not own it either. */
    zhandle_t *zh = zh_acquire(z);
    int64_t me = zh ? zoo_client_id(zh)->client_id : 0;
    if (zh) zh_release(z);
    if (me && owner == me) return 0;
    coord_kv_clear(out);
    return coord_seterr(COORD_EEXISTS, "%s is not an ephemeral node of this session", path);
}

static int do_create(zk *z, const char *path, const void *value, size_t len, unsigned flags,
                     int64_t deadline, coord_kv *out) {
    int mode = (flags & COORD_PUT_EPHEMERAL)
                   ? ((flags & COORD_PUT_SEQUENTIAL) ? ZOO_EPHEMERAL_SEQUENTIAL : ZOO_EPHEMERAL)
                   : ((flags & COORD_PUT_SEQUENTIAL) ? ZOO_PERSISTENT_SEQUENTIAL : ZOO_PERSISTENT);
    args a = {.path = path,
              .value = value,
              .len = (int)len,
              .acl = acl_for(z, strlen(path)),
              .mode = mode};
    for (int attempt = 0; attempt < 4; attempt++) {
        zop *o = NULL;
        int rc = run(z, issue_create, &a, deadline, &o);
        if (rc == ZOK) {
            if (out) {
                memset(out, 0, sizeof *out);
                out->key = o->name;
                o->name = NULL;
                fill_kv(out, &o->stat, out->key ? zk_basename(out->key) : NULL);
            }
            zop_unref(o);
            return ZOK;
        }
        if (o) zop_unref(o);
        if (rc != ZNONODE) return rc;
        if ((rc = make_parents(z, path, deadline)) != ZOK) return rc;
    }
    return ZNONODE;
}

static int zk_put(coord_conn *c, const char *path, const void *value, size_t len, int64_t expect,
                  unsigned flags, coord_kv *out, int timeout_ms) {
    zk *z = (zk *)c;
    int64_t deadline = deadline_of(timeout_ms);
    if (len > 0x7fffffff) return coord_seterr(COORD_EINVAL, "value too large");
    if ((flags & COORD_PUT_SEQUENTIAL) && expect > 0)
        return coord_seterr(COORD_EINVAL, "a sequential put can only create");
    if (out) memset(out, 0, sizeof *out);
    int rc;
    if (expect == COORD_VERSION_ABSENT || (flags & COORD_PUT_SEQUENTIAL)) {
        rc = do_create(z, path, value, len, flags, deadline, out);
        if (rc == ZNODEEXISTS) {
            if (out) out->version = -1;
            return coord_seterr(COORD_ECONFLICT, "%s already exists", path);
        }
        return map_rc(rc, "create", path);
    }
    for (int attempt = 0; attempt < 8; attempt++) {
        args a = {.path = path,
                  .value = value,
                  .len = (int)len,
                  .version = expect == COORD_VERSION_ANY ? -1 : (int)(expect - 1)};
        zop *o = NULL;
        rc = run(z, issue_set, &a, deadline, &o);
        if (rc == ZOK) {
            if (out) {
                out->key = strdup(path);
                fill_kv(out, &o->stat, zk_basename(path));
            }
            zop_unref(o);
            if (out && !out->key) return coord_seterr(COORD_ENOMEM, "out of memory");
            return 0;
        }
        if (o) zop_unref(o);
        if (rc == ZBADVERSION) {
            if (out) out->version = -1;
            return coord_seterr(COORD_ECONFLICT, "%s: version differs from %lld", path,
                                (long long)expect);
        }
        if (rc != ZNONODE) return map_rc(rc, "set", path);
        if (expect != COORD_VERSION_ANY) {
            if (out) out->version = 0;
            return coord_seterr(COORD_ECONFLICT, "%s does not exist", path);
        }
        /* Unconditional write of an absent node: create it; a racing creator sends us back to set.
         */
        rc = do_create(z, path, value, len, flags, deadline, out);
        if (rc != ZNODEEXISTS) return map_rc(rc, "create", path);
    }
    return coord_seterr(COORD_ECONFLICT, "%s: too much contention", path);
}

static int zk_del(coord_conn *c, const char *path, int64_t expect, int timeout_ms) {
    zk *z = (zk *)c;
    args a = {.path = path, .version = expect == COORD_VERSION_ANY ? -1 : (int)(expect - 1)};
    if (expect == COORD_VERSION_ABSENT)
        return coord_seterr(COORD_EINVAL, "delete of an absent version");
    zop *o = NULL;
    int rc = run(z, issue_delete, &a, deadline_of(timeout_ms), &o);
    if (o) zop_unref(o);
    return map_rc(rc, "delete", path);
}

/* A delete sent without waiting (zk_del_async), linked in z->adels until its answer. */
typedef struct adel {
    struct adel *next;
    zk *z;
    uint64_t session; /* z->session when sent: the handle it went out on */
    void (*done)(void *arg, int rc);
    void *arg;
    char path[]; /* for the detail */
} adel;

/* Unlink `a` from the deletes in flight (mu held). */
static void adel_unlink(zk *z, adel *a) {
    for (adel **pp = &z->adels; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            return;
        }
}

static void on_adel(int rc, const void *d) {
    adel *a = (adel *)d;
    pthread_mutex_lock(&a->z->mu);
    adel_unlink(a->z, a);
    pthread_mutex_unlock(&a->z->mu);
    a->done(a->arg, map_rc(rc, "delete", a->path));
    free(a);
}

/* After zookeeper_close of the handle of session `upto` (and older), no lock held: the deletes
 * it never answered (it need not run the completions, ZOOKEEPER-2894) ended with the session. */
static void adel_flush(zk *z, uint64_t upto) {
    adel *gone = NULL;
    pthread_mutex_lock(&z->mu);
    for (adel **pp = &z->adels; *pp;) {
        adel *a = *pp;
        if (a->session <= upto) {
            *pp = a->next;
            a->next = gone;
            gone = a;
        } else {
            pp = &a->next;
        }
    }
    pthread_mutex_unlock(&z->mu);
    while (gone) {
        adel *a = gone;
        gone = a->next;
        a->done(a->arg, coord_seterr(COORD_ESESSION, "zookeeper delete %s: the session ended first",
                                     a->path));
        free(a);
    }
}

static int zk_del_async(coord_conn *c, const char *path, int64_t expect,
                        void (*done)(void *arg, int rc), void *arg) {
    zk *z = (zk *)c;
    if (expect == COORD_VERSION_ABSENT)
        return coord_seterr(COORD_EINVAL, "delete of an absent version");
    size_t n = strlen(path) + 1;
    adel *a = malloc(sizeof *a + n);
    if (!a) return coord_seterr(COORD_ENOMEM, "out of memory");
    *a = (adel){.z = z, .done = done, .arg = arg};
    memcpy(a->path, path, n);
    zhandle_t *zh = zh_acquire(z);
    if (!zh) {
        free(a);
        return map_rc(ZINVALIDSTATE, "delete", path);
    }
    /* Linked first: the answer may come before zoo_adelete returns. */
    pthread_mutex_lock(&z->mu);
    a->session = z->session;
    a->next = z->adels;
    z->adels = a;
    pthread_mutex_unlock(&z->mu);
    int rc =
        zoo_adelete(zh, path, expect == COORD_VERSION_ANY ? -1 : (int)(expect - 1), on_adel, a);
    zh_release(z);
    if (rc != ZOK) { /* not sent: the completion never runs */
        pthread_mutex_lock(&z->mu);
        adel_unlink(z, a);
        pthread_mutex_unlock(&z->mu);
        free(a);
        return map_rc(rc, "delete", path);
    }
    return 0;
}

static int cmp_order(const void *a, const void *b) {
    const coord_kv *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int zk_list(coord_conn *c, const char *path, unsigned flags, coord_kv **out, size_t *n,
                   int64_t *epoch, int timeout_ms) {
    zk *z = (zk *)c;
    int64_t deadline = deadline_of(timeout_ms);
    args a = {.path = path};
    zop *o = NULL;
    int rc = run(z, issue_children, &a, deadline, &o);
    if (rc == ZNONODE) {
        if (o) zop_unref(o);
        *out = NULL;
        *n = 0;
        if (epoch) *epoch = 0;
        return 0;
    }
    if (rc != ZOK) {
        if (o) zop_unref(o);
        return map_rc(rc, "list", path);
    }
    int cnt = o->kids.count;
    coord_kv *arr = cnt ? calloc((size_t)cnt, sizeof *arr) : NULL;
    zop **gets = cnt && !(flags & COORD_LIST_NAMES) ? calloc((size_t)cnt, sizeof *gets) : NULL;
    if (cnt && (!arr || (!(flags & COORD_LIST_NAMES) && !gets))) {
        free(arr);
        free(gets);
        zop_unref(o);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    if (epoch) *epoch = (int64_t)o->stat.cversion + 1;
    size_t got = 0;
    rc = 0;
    char full[MAX_PATH];
    for (int i = 0; i < cnt && !rc; i++) {
        const char *name = o->kids.data[i];
        if (!(arr[i].key = strdup(name))) rc = coord_seterr(COORD_ENOMEM, "out of memory");
        int64_t seq = 0;
        /* A tree listing gives names (the core sorts them), whatever they end in. */
        arr[i].order = !(flags & COORD_LIST_TREE) && zk_sequence(name, &seq) ? seq : 0;
        if (!gets) continue;
        /* Pipeline the reads: issue all, then wait for all. */
        snprintf(full, sizeof full, "%s/%s", path, name);
        args g = {.path = full};
        zop *go = zop_new();
        zhandle_t *zh = go ? zh_acquire(z) : NULL;
        int irc = zh ? issue_get(zh, go, &g) : ZINVALIDSTATE;
        if (zh) zh_release(z);
        if (irc != ZOK) {
            if (go) {
                go->refs = 1;
                zop_unref(go);
            }
            rc = go ? map_rc(irc, "get", full) : coord_seterr(COORD_ENOMEM, "out of memory");
        } else {
            gets[i] = go;
        }
    }
    for (int i = 0; gets && i < cnt; i++) {
        if (!gets[i]) continue;
        if (!rc && zop_wait(gets[i], deadline)) rc = map_rc(ZOPERATIONTIMEOUT, "list", path);
        if (!rc && gets[i]->rc == ZOK) {
            arr[i].value = gets[i]->data;
            arr[i].len = (size_t)gets[i]->datalen;
            gets[i]->data = NULL;
            fill_kv(&arr[i], &gets[i]->stat, arr[i].key);
        } else if (!rc && gets[i]->rc != ZNONODE) {
            rc = map_rc(gets[i]->rc, "get", path);
        }
        zop_unref(gets[i]);
    }
    free(gets);
    zop_unref(o);
    /* Children deleted between the listing and their read are dropped. */
    for (int i = 0; i < cnt; i++) {
        if (!(flags & COORD_LIST_NAMES) && arr[i].version == 0) {
            coord_kv_clear(&arr[i]);
            continue;
        }
        arr[got++] = arr[i];
    }
    if (rc) {
        coord_kv_array_free(arr, got);
        return rc;
    }
    if (got > 1) qsort(arr, got, sizeof *arr, cmp_order);
    *out = arr;
    *n = got;
    return 0;
}

/* ---------- transactions (the key-value space) ---------- */

/* The largest request a server takes by default (jute.maxbuffer, 0xfffff). */
#define ZK_REQUEST_MAX 1048575

/* A node as a transaction's read saw it. */
typedef struct tnode {
    bool exists, nodata, parent; /* `parent`: the node's parent exists (PUT reads it) */
    int version;                 /* stat.version */
    int children;
    int64_t czxid;
} tnode;

/* The coord version of a read node: 0 when it has no value. */
static int64_t tnode_version(const tnode *t) {
    return t->exists && !t->nodata ? (int64_t)t->version + 1 : 0;
}

/* One operation of a multi and the transaction's operation it serves. */
typedef struct mop {
    int type; /* ZOO_CREATE_OP, ZOO_DELETE_OP, ZOO_SETDATA_OP or ZOO_CHECK_OP */
    size_t ti;
    const char *path;
    const char *value;
    int len; /* -1: null data */
    int version;
    bool held; /* the check of a HELD */
} mop;

typedef struct margs {
    int count;
    zoo_op_t *ops;
    zoo_op_result_t *res;
} margs;

static int issue_multi(zhandle_t *zh, zop *o, void *a) {
    margs *m = a;
    /* On a handle whose session has ended, zoo_amulti frees paths it does not own: each op's
     * init fails or is skipped, and a skipped op frees the stale path of the op before it (the
     * caller's string, freed again by its owner: a double free under ASan, after a client was
     * stopped past its session's end). Refuse first, with the code the client gives. */
    int state = zoo_state(zh);
    if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) return ZINVALIDSTATE;
    return zoo_amulti(zh, m->count, m->ops, m->res, on_void, o);
}

static int issue_exists(zhandle_t *zh, zop *o, void *a) {
    return zoo_aexists(zh, ((args *)a)->path, 0, on_stat, o);
}

/* A code one op of a multi fails with (the others then fail with the request's code). */
static bool op_failure(int rc) {
    return rc == ZNONODE || rc == ZNODEEXISTS || rc == ZBADVERSION || rc == ZNOTEMPTY ||
           rc == ZNOCHILDRENFOREPHEMERALS || rc == ZNOAUTH || rc == ZBADARGUMENTS ||
           rc == ZINVALIDACL;
}

/* Run the multi of `m`. `*bad` receives the index of the op that failed (-1 when none is
 * known); on success `vers[j]` the coord version a set or create of m[j] wrote. The results and
 * stats live in the op, so a completion after the deadline writes into memory it owns. */
static int run_multi(zk *z, const mop *m, int nm, int64_t deadline, int *bad, int64_t *vers) {
    zoo_op_t ops[2 * COORD_TXN_MAX];
    *bad = -1;
    void *block = calloc((size_t)nm, sizeof(zoo_op_result_t) + sizeof(struct Stat));
    if (!block) return ZSYSTEMERROR;
    zoo_op_result_t *res = block;
    struct Stat *st = (struct Stat *)(res + nm);
    for (int j = 0; j < nm; j++) {
        switch (m[j].type) {
        case ZOO_CREATE_OP:
            zoo_create_op_init(&ops[j], m[j].path, m[j].value, m[j].len,
                               acl_for(z, strlen(m[j].path)), ZOO_PERSISTENT, NULL, 0);
            break;
        case ZOO_DELETE_OP:
            zoo_delete_op_init(&ops[j], m[j].path, m[j].version);
            break;
        case ZOO_SETDATA_OP:
            zoo_set_op_init(&ops[j], m[j].path, m[j].value, m[j].len, m[j].version, &st[j]);
            break;
        default:
            zoo_check_op_init(&ops[j], m[j].path, m[j].version);
        }
    }
    /* The client serialises ops, paths and values in zoo_amulti: only `block` must outlive it. */
    margs a = {nm, ops, res};
    zop *o = NULL;
    int rc = run_owning(z, issue_multi, &a, block, deadline, &o);
    if (!o) return rc;
    if (rc == ZOK) {
        for (int j = 0; j < nm; j++)
            vers[j] = m[j].type == ZOO_SETDATA_OP  ? (int64_t)st[j].version + 1
                      : m[j].type == ZOO_CREATE_OP ? 1
                                                   : 0;
    } else if (op_failure(rc)) {
        /* Ops before the failed one answer ZOK, those after it ZRUNTIMEINCONSISTENCY. A failure
         * of the whole request (connection loss, session expiry) gives every op its code
         * instead: no op failed then, and the outcome may be unknown. */
        for (int j = 0; j < nm && *bad < 0; j++)
            if (res[j].err != ZOK && res[j].err != ZRUNTIMEINCONSISTENCY) *bad = j;
    }
    zop_unref(o);
    return rc;
}

static mop mop_of(int type, size_t ti, const char *path, const void *value, int len, int version) {
    return (mop){.type = type,
                 .ti = ti,
                 .path = path,
                 .value = value,
                 .len = len,
                 .version = version,
                 .held = false};
}

/* Create the missing ancestors of `path` below the prefix as persistent nodes with no value (not
 * containers: the server would remove one under a value set on it later). Each is created and
 * set in one multi, so that it is at data version 1: a conditional write or delete at version 1
 * (data version 0), every created key's first version, can then never pass on a node that only
 * leads to deeper keys. */
static int kv_parents(zk *z, const char *path, int64_t deadline) {
    size_t plen = zk_parent_len(path);
    if (plen <= strlen(z->cfg->uri->prefix)) return ZOK; /* made at open */
    char parent[MAX_PATH];
    if (plen >= sizeof parent) return ZBADARGUMENTS;
    memcpy(parent, path, plen);
    parent[plen] = 0;
    mop m[2] = {mop_of(ZOO_CREATE_OP, 0, parent, NULL, -1, 0),
                mop_of(ZOO_SETDATA_OP, 0, parent, NULL, -1, 0)};
    for (int attempt = 0; attempt < 8; attempt++) {
        int bad;
        int64_t mv[2];
        int rc = run_multi(z, m, 2, deadline, &bad, mv);
        if (rc == ZOK || rc == ZNODEEXISTS) return ZOK;
        if (rc != ZNONODE) return rc;
        if ((rc = kv_parents(z, parent, deadline)) != ZOK) return rc;
    }
    return ZNONODE;
}

/* Whether `a` is a proper ancestor of `p`. */
static bool is_ancestor(const char *a, const char *p) {
    size_t l = strlen(a);
    return strncmp(a, p, l) == 0 && p[l] == '/';
}

/* The shallowest node hinted absent above `path` (malloc'd), or NULL. */
static char *hint_absent(zk *z, const char *path) {
    const char *best = NULL;
    pthread_mutex_lock(&z->hint_mu);
    for (size_t i = 0; i < sizeof z->absent / sizeof z->absent[0]; i++)
        if (z->absent[i] && is_ancestor(z->absent[i], path) &&
            (!best || strlen(z->absent[i]) < strlen(best)))
            best = z->absent[i];
    char *r = best ? strdup(best) : NULL;
    pthread_mutex_unlock(&z->hint_mu);
    return r;
}

/* Record (`absent`) or forget a hint. */
static void hint_set(zk *z, const char *path, bool absent) {
    size_t n = sizeof z->absent / sizeof z->absent[0], i;
    pthread_mutex_lock(&z->hint_mu);
    for (i = 0; i < n && !(z->absent[i] && strcmp(z->absent[i], path) == 0); i++)
        ;
    if (i < n && !absent) {
        free(z->absent[i]);
        z->absent[i] = NULL;
    } else if (i == n && absent) {
        char *d = strdup(path);
        if (d) {
            i = z->absent_next++ % n;
            free(z->absent[i]);
            z->absent[i] = d;
        }
    }
    pthread_mutex_unlock(&z->hint_mu);
}

/* The multi of an optimistic first attempt, without a read (false when an op needs one). Checks
 * come first so that every condition sees the state before the writes. `hints[i]` receives the
 * hinted node a test of absence of op i uses (malloc'd, the caller frees every entry). */
static bool txn_fast(zk *z, const coord_op *ops, size_t n, mop *m, int *nm, char **hints) {
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        const coord_op *op = &ops[i];
        if (op->type == COORD_OP_DEL && op->version <= 0)
            return false; /* a delete needs the node's version and children */
        if (op->version > (int64_t)INT_MAX + 1)
            return false; /* no data version is that high: the read tells which it is */
        if (op->type == COORD_OP_CHECK && op->version > 0) {
            m[k++] = mop_of(ZOO_CHECK_OP, i, op->path, NULL, 0, (int)(op->version - 1));
        } else if (op->type == COORD_OP_CHECK) {
            /* A multi tests absence by creating the node and deleting it again (or a node
             * above it, known absent a moment ago: its parent exists, the path's may not). */
            const char *at = (hints[i] = hint_absent(z, op->path)) ? hints[i] : op->path;
            m[k++] = mop_of(ZOO_CREATE_OP, i, at, NULL, -1, 0);
            m[k++] = mop_of(ZOO_DELETE_OP, i, at, NULL, 0, -1);
        } else if (op->type == COORD_OP_HELD) {
            m[k] = mop_of(ZOO_CHECK_OP, i, op->path, NULL, 0, (int)(op->version - 1));
            m[k++].held = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const coord_op *op = &ops[i];
        if (op->type == COORD_OP_PUT && op->version == COORD_VERSION_ABSENT)
            m[k++] = mop_of(ZOO_CREATE_OP, i, op->path, op->value, (int)op->len, 0);
        else if (op->type == COORD_OP_PUT)
            m[k++] = mop_of(ZOO_SETDATA_OP, i, op->path, op->value, (int)op->len,
                            op->version > 0 ? (int)(op->version - 1) : -1);
        else if (op->type == COORD_OP_DEL)
            m[k++] = mop_of(ZOO_DELETE_OP, i, op->path, NULL, 0, (int)(op->version - 1));
    }
    *nm = k;
    return true;
}

/* One read of a transaction: the node of op `ti` (`self`) or one of its ancestors. */
typedef struct trd {
    char *path;
    size_t ti;
    bool self, exists;
    zop *o;
} trd;

static void trds_free(trd *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (r[i].o) zop_unref(r[i].o);
        free(r[i].path);
    }
    free(r);
}

/* Read, in one pipelined round trip, the node of every op (its data tells a null value), the
 * parent of every PUT (a create needs it) and every ancestor below the prefix of a CHECK of
 * absence (the shallowest absent one is the node the multi tests). Fills `t` and `*rds`
 * (ancestors in order of depth, after the op's own node). */
static int txn_read(zk *z, const coord_op *ops, size_t n, tnode *t, trd **rds, size_t *nrd,
                    int64_t deadline) {
    size_t prefix_len = strlen(z->cfg->uri->prefix), cap = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        cap++;
        if (ops[i].type == COORD_OP_PUT) cap++;
        if (ops[i].type == COORD_OP_CHECK && ops[i].version == 0)
            for (const char *p = ops[i].path; *p; p++)
                cap += *p == '/';
    }
    trd *r = calloc(cap, sizeof *r);
    if (!r) return coord_seterr(COORD_ENOMEM, "out of memory");
    memset(t, 0, n * sizeof *t);
    for (size_t i = 0; i < n; i++)
        t[i].parent = true; /* the prefix, made at open, when not read */
    int err = 0;
    for (size_t i = 0; i < n && !err; i++) {
        const char *path = ops[i].path;
        size_t len = strlen(path);
        /* The node, then its ancestors (shallowest first) where they matter. */
        for (size_t l = prefix_len + 1; l <= len && !err; l++) {
            bool self = l == len;
            if (!self && path[l] != '/') continue;
            if (!self && !(ops[i].type == COORD_OP_CHECK && ops[i].version == 0) &&
                !(ops[i].type == COORD_OP_PUT && l == zk_parent_len(path)))
                continue;
            trd *x = &r[k++];
            x->ti = i;
            x->self = self;
            if (!(x->path = strndup(path, l))) {
                err = coord_seterr(COORD_ENOMEM, "out of memory");
                break;
            }
            args a = {.path = x->path};
            if (!(x->o = zop_new())) {
                err = coord_seterr(COORD_ENOMEM, "out of memory");
                break;
            }
            zhandle_t *zh = zh_acquire(z);
            int rc = zh ? (self ? issue_get : issue_exists)(zh, x->o, &a) : ZINVALIDSTATE;
            if (zh) zh_release(z);
            if (rc != ZOK) {
                x->o->refs = 1; /* not submitted: the completion will never run */
                zop_unref(x->o);
                x->o = NULL;
                err = map_rc(rc, "get", x->path);
            }
        }
    }
    for (size_t j = 0; j < k; j++) {
        trd *x = &r[j];
        if (!x->o) continue;
        if (!err && zop_wait(x->o, deadline)) err = map_rc(ZOPERATIONTIMEOUT, "get", x->path);
        if (err) continue;
        if (x->o->rc != ZOK && x->o->rc != ZNONODE) {
            err = map_rc(x->o->rc, "get", x->path);
            continue;
        }
        x->exists = x->o->rc == ZOK;
        tnode *tn = &t[x->ti];
        if (x->self && x->exists) {
            tn->exists = true;
            tn->nodata = x->o->nodata;
            tn->version = x->o->stat.version;
            tn->children = x->o->stat.numChildren;
            tn->czxid = x->o->stat.czxid;
        } else if (!x->self && ops[x->ti].type == COORD_OP_PUT) {
            tn->parent = x->exists;
        }
        zop_unref(x->o);
        x->o = NULL;
    }
    if (err) {
        trds_free(r, k);
        return err;
    }
    *rds = r;
    *nrd = k;
    return 0;
}

/* Whether `path` is a proper ancestor of a node the transaction creates (it exists, made as a
 * parent, once the multi runs). */
static bool made_parent(const coord_op *ops, size_t n, const tnode *t, const char *path) {
    for (size_t i = 0; i < n; i++)
        if (ops[i].type == COORD_OP_PUT && !t[i].exists && is_ancestor(path, ops[i].path))
            return true;
    return false;
}

/* Evaluate every condition against the read state: COORD_ECONFLICT naming the first that fails. */
static int txn_eval(const coord_op *ops, size_t n, const tnode *t, size_t *failed) {
    for (size_t i = 0; i < n; i++) {
        const coord_op *op = &ops[i];
        int64_t have = tnode_version(&t[i]);
        *failed = i;
        switch (op->type) {
        case COORD_OP_CHECK:
            if (have != op->version)
                return coord_seterr(COORD_ECONFLICT,
                                    "txn: check of %s failed: version %lld, expected %lld",
                                    op->path, (long long)have, (long long)op->version);
            break;
        case COORD_OP_HELD:
            if (!t[i].exists || (uint64_t)t[i].czxid != op->token ||
                (int64_t)t[i].version + 1 != op->version)
                return coord_seterr(COORD_ECONFLICT, "txn: lock entry %s is no longer held",
                                    op->path);
            break;
        case COORD_OP_DEL:
            if (have == 0) return coord_seterr(COORD_ECONFLICT, "txn: %s has no value", op->path);
            /* fallthrough */
        default: /* PUT */
            if (op->version != COORD_VERSION_ANY && have != op->version)
                return coord_seterr(COORD_ECONFLICT,
                                    op->version == 0 ? "txn: %s exists (version %lld)"
                                                     : "txn: %s is at version %lld, expected %lld",
                                    op->path, (long long)have, (long long)op->version);
        }
    }
    *failed = n;
    return 0;
}

/* The exact multi of the read state (every condition holds in it). */
static int txn_exact(zk *z, const coord_op *ops, size_t n, const tnode *t, const trd *r, size_t nr,
                     mop *m) {
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        const coord_op *op = &ops[i];
        if (op->type == COORD_OP_HELD) {
            m[k] = mop_of(ZOO_CHECK_OP, i, op->path, NULL, 0, (int)(op->version - 1));
            m[k++].held = true;
        } else if (op->type == COORD_OP_CHECK && t[i].exists) {
            m[k++] = mop_of(ZOO_CHECK_OP, i, op->path, NULL, 0, t[i].version);
        } else if (op->type == COORD_OP_CHECK) {
            /* Absent: test the shallowest absent node above it (or itself) that the
             * transaction does not make as a parent; one it makes is at version 0. */
            const char *at = NULL;
            for (size_t j = 0; j < nr && !at; j++)
                if (r[j].ti == i && !r[j].self && !r[j].exists &&
                    !made_parent(ops, n, t, r[j].path))
                    at = r[j].path;
            if (!at && made_parent(ops, n, t, op->path)) {
                m[k++] = mop_of(ZOO_CHECK_OP, i, op->path, NULL, 0, 0);
                continue;
            }
            if (at) hint_set(z, at, true);
            if (!at) at = op->path;
            m[k++] = mop_of(ZOO_CREATE_OP, i, at, NULL, -1, 0);
            m[k++] = mop_of(ZOO_DELETE_OP, i, at, NULL, 0, -1);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const coord_op *op = &ops[i];
        if (op->type == COORD_OP_PUT && !t[i].exists)
            m[k++] = mop_of(ZOO_CREATE_OP, i, op->path, op->value, (int)op->len, 0);
        else if (op->type == COORD_OP_PUT)
            m[k++] = mop_of(ZOO_SETDATA_OP, i, op->path, op->value, (int)op->len, t[i].version);
        else if (op->type == COORD_OP_DEL &&
                 (t[i].children > 0 || made_parent(ops, n, t, op->path)))
            /* Deeper keys stay: the node only loses its value. */
            m[k++] = mop_of(ZOO_SETDATA_OP, i, op->path, NULL, -1, t[i].version);
        else if (op->type == COORD_OP_DEL)
            m[k++] = mop_of(ZOO_DELETE_OP, i, op->path, NULL, 0, t[i].version);
    }
    return k;
}

/* A multi that failed on a condition the reads may not have seen change. */
static bool txn_stale(int rc) {
    return rc == ZBADVERSION || rc == ZNONODE || rc == ZNODEEXISTS || rc == ZNOTEMPTY;
}

static int txn_done(const coord_op *ops, const mop *m, int nm, const int64_t *mv,
                    int64_t *versions) {
    for (int j = 0; versions && j < nm; j++)
        if (ops[m[j].ti].type == COORD_OP_PUT &&
            (m[j].type == ZOO_SETDATA_OP || m[j].type == ZOO_CREATE_OP))
            versions[m[j].ti] = mv[j];
    return 0;
}

static int zk_txn(coord_conn *c, const coord_op *ops, size_t n, int64_t *versions, size_t *failed,
                  int timeout_ms) {
    zk *z = (zk *)c;
    int64_t deadline = deadline_of(timeout_ms);
    size_t unused;
    if (!failed) failed = &unused;
    *failed = n;
    if (!ops || n == 0 || n > COORD_TXN_MAX)
        return coord_seterr(COORD_EINVAL, "txn: %zu operations (1 to %d)", n, COORD_TXN_MAX);
    size_t size = 64;
    for (size_t i = 0; i < n; i++) {
        const coord_op *op = &ops[i];
        bool ok = op->path && op->path[0] == '/';
        if (op->type == COORD_OP_PUT)
            ok = ok && op->len <= 0x7fffffff && (op->value || !op->len) &&
                 op->version >= COORD_VERSION_ANY;
        else if (op->type == COORD_OP_DEL)
            ok = ok && op->version >= COORD_VERSION_ANY;
        else if (op->type == COORD_OP_CHECK)
            ok = ok && op->version >= 0;
        else
            ok = ok && op->type == COORD_OP_HELD && op->version > 0;
        if (!ok) {
            *failed = i;
            return coord_seterr(COORD_EINVAL, "txn: operation %zu is malformed", i);
        }
        /* The multi's size, generously: path twice (a test of absence), value, headers, ACL. */
        size += 2 * strlen(op->path) + (op->type == COORD_OP_PUT ? op->len : 0) + 128;
    }
    /* A server drops the connection of a larger request (every call in flight with it). */
    if (size > ZK_REQUEST_MAX)
        return coord_seterr(COORD_EINVAL,
                            "txn: about %zu bytes, more than a ZooKeeper request takes (%d, the "
                            "default jute.maxbuffer)",
                            size, ZK_REQUEST_MAX);
    /* One write over a node that is there (at a version, or whatever it is): a plain setData,
     * which costs client and server less than a multi of one. A node not there yet takes the
     * general path, which makes it and its parents. */
    if (n == 1 && ops[0].type == COORD_OP_PUT && ops[0].version != COORD_VERSION_ABSENT &&
        ops[0].version <= (int64_t)INT_MAX + 1) {
        args a = {.path = ops[0].path,
                  .value = ops[0].value,
                  .len = (int)ops[0].len,
                  .version = ops[0].version == COORD_VERSION_ANY ? -1 : (int)(ops[0].version - 1)};
        zop *o = NULL;
        int src = run(z, issue_set, &a, deadline, &o);
        if (src == ZOK && versions) versions[0] = (int64_t)o->stat.version + 1;
        if (o) zop_unref(o);
        if (src == ZOK) return 0;
        if (src == ZBADVERSION) {
            *failed = 0;
            return coord_seterr(COORD_ECONFLICT, "txn: %s is not at version %lld", ops[0].path,
                                (long long)ops[0].version);
        }
        if (src != ZNONODE) return map_rc(src, "set", ops[0].path);
    }
    mop m[2 * COORD_TXN_MAX];
    int64_t mv[2 * COORD_TXN_MAX];
    int nm, bad = -1, rc = ZOK;
    char what[MAX_PATH]; /* the path a failure names */
    snprintf(what, sizeof what, "%s", ops[0].path);
    /* Optimistic: one multi from the versions the caller gave, no read. */
    char *hints[COORD_TXN_MAX] = {NULL};
    bool fast = txn_fast(z, ops, n, m, &nm, hints);
    if (fast) {
        rc = run_multi(z, m, nm, deadline, &bad, mv);
        if (bad >= 0) snprintf(what, sizeof what, "%s", m[bad].path);
        /* A hinted node that exists now is a hint no more. */
        if (rc == ZNODEEXISTS && bad >= 0 && hints[m[bad].ti] && m[bad].path == hints[m[bad].ti])
            hint_set(z, m[bad].path, false);
    }
    for (size_t i = 0; i < n; i++)
        free(hints[i]);
    if (fast) {
        if (rc == ZOK) return txn_done(ops, m, nm, mv, versions);
        if (bad >= 0 && m[bad].held) {
            *failed = m[bad].ti;
            return coord_seterr(COORD_ECONFLICT, "txn: lock entry %s is no longer held", what);
        }
        if (!txn_stale(rc)) return map_rc(rc, "multi", what);
        /* A version the caller gave that the node is not at (or a node gone) is the answer
         * itself: no read can make that condition hold (a lost race for a queue item). */
        const coord_op *op = bad >= 0 ? &ops[m[bad].ti] : NULL;
        if (op && (rc == ZBADVERSION || rc == ZNONODE) && op->version > 0 &&
            (m[bad].type == ZOO_CHECK_OP || m[bad].type == ZOO_SETDATA_OP ||
             m[bad].type == ZOO_DELETE_OP)) {
            *failed = m[bad].ti;
            return coord_seterr(COORD_ECONFLICT, "txn: %s %s, expected version %lld", what,
                                rc == ZNONODE ? "has no value" : "is at another version",
                                (long long)op->version);
        }
    }
    /* Read what the multi needs, then run the exact multi of that state; again if the state
     * changed in between (never after an outcome that is unknown). */
    tnode t[COORD_TXN_MAX];
    for (int attempt = 0; attempt < 16; attempt++) {
        if (attempt > 0 && coord__now_ms() >= deadline)
            return coord_seterr(COORD_ETIMEDOUT, "txn: no stable state of %s in time", what);
        trd *r = NULL;
        size_t nr = 0;
        int err = txn_read(z, ops, n, t, &r, &nr, deadline);
        if (err) return err;
        if ((err = txn_eval(ops, n, t, failed))) {
            trds_free(r, nr);
            return err;
        }
        nm = txn_exact(z, ops, n, t, r, nr, m);
        /* Parents of the creates first: persistent, with no value. */
        rc = ZOK;
        for (size_t i = 0; i < n && rc == ZOK; i++)
            if (ops[i].type == COORD_OP_PUT && !t[i].exists && !t[i].parent)
                if ((rc = kv_parents(z, ops[i].path, deadline)) != ZOK)
                    snprintf(what, sizeof what, "%s", ops[i].path);
        if (rc == ZOK) {
            rc = run_multi(z, m, nm, deadline, &bad, mv);
            if (bad >= 0) snprintf(what, sizeof what, "%s", m[bad].path);
        } else {
            bad = -1;
        }
        trds_free(r, nr);
        if (rc == ZOK) return txn_done(ops, m, nm, mv, versions);
        if (bad >= 0 && m[bad].held) {
            *failed = m[bad].ti;
            return coord_seterr(COORD_ECONFLICT, "txn: lock entry %s is no longer held", what);
        }
        if (!txn_stale(rc)) return map_rc(rc, bad >= 0 ? "multi" : "create", what);
    }
    *failed = n;
    return coord_seterr(COORD_ECONFLICT, "txn: too much contention on %s", what);
}

/* ---------- lock queue (Curator InterProcessMutex layout) ---------- */

/* Every child of `dir` ending in a 10-digit sequence is a contender, whatever its prefix
 * (Curator, kazoo with "-lock-", zoo_lock.c), ordered by that sequence. */
typedef struct contender {
    const char *name;
    int64_t seq;
} contender;

static int cmp_contender(const void *a, const void *b) {
    const contender *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* List `dir`; `*op` keeps the names alive (zop_unref when done). */
static int contenders(zk *z, const char *dir, int64_t deadline, zop **op, contender **out,
                      size_t *n) {
    args a = {.path = dir};
    *op = NULL;
    int rc = run(z, issue_children, &a, deadline, op);
    if (rc != ZOK) {
        if (*op) zop_unref(*op);
        *op = NULL;
        return map_rc(rc, "list", dir);
    }
    int cnt = (*op)->kids.count;
    contender *cs = malloc(((size_t)cnt + 1) * sizeof *cs);
    if (!cs) {
        zop_unref(*op);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (int i = 0; i < cnt; i++) {
        int64_t seq;
        if (zk_sequence((*op)->kids.data[i], &seq)) cs[k++] = (contender){(*op)->kids.data[i], seq};
    }
    qsort(cs, k, sizeof *cs, cmp_contender);
    *out = cs;
    *n = k;
    return 0;
}

/* Where `me` stands in `cs`, and the contender it waits for: the one just before it or, with
 * `only`, the last one of that kind before it (-1 when none). `at` is n when `me` is absent. */
static void place(const contender *cs, size_t n, const char *me, const char *only, size_t *at,
                  ptrdiff_t *pred) {
    *at = n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(cs[i].name, me) == 0) *at = i;
    *pred = -1;
    for (size_t i = *at < n ? *at : 0; i-- > 0 && *pred < 0;)
        if (!only || strstr(cs[i].name, only)) *pred = (ptrdiff_t)i;
}

static int zk_lock_enqueue(coord_conn *c, const char *dir, const char *tag, const char *kind,
                           const char *only, const void *value, size_t len, coord_kv *mine,
                           bool *first, coord_kv *pred, int64_t *after, int timeout_ms) {
    zk *z = (zk *)c;
    int64_t deadline = deadline_of(timeout_ms);
    char path[MAX_PATH], protect[128];
    snprintf(path, sizeof path, "%s/_c_%s-%s", dir, tag, kind);
    snprintf(protect, sizeof protect, "_c_%s-", tag);
    int rc;
    memset(mine, 0, sizeof *mine);
    bool unsure = false; /* a create whose outcome is unknown was sent */
    while (1) {
        if (!unsure) {
            rc = do_create(z, path, value, len, COORD_PUT_EPHEMERAL | COORD_PUT_SEQUENTIAL,
                           deadline, mine);
            if (rc == ZOK) break;
            if (rc != ZCONNECTIONLOSS && rc != ZOPERATIONTIMEOUT) return map_rc(rc, "create", path);
        }
        if (coord__now_ms() >= deadline) return map_rc(rc, "create", path);
        /* The create may have been applied before the connection dropped: a node carrying
         * our tag is ours (Curator's protected mode), so never make a second one. Until a
         * listing tells, no create: the caller hands what carries the tag to the orphans if
         * the deadline comes first. */
        unsure = true;
        zop *op;
        contender *cs;
        size_t n;
        int lrc = contenders(z, dir, deadline, &op, &cs, &n);
        if (lrc == COORD_ENOTFOUND) { /* no directory: nothing was made */
            unsure = false;
            continue;
        }
        if (lrc == COORD_EUNAVAILABLE || lrc == COORD_ETIMEDOUT) {
            rc = ZCONNECTIONLOSS;
            struct timespec ts = {0, 20000000L}; /* the client is reconnecting: no busy loop */
            nanosleep(&ts, NULL);
            continue;
        }
        if (lrc) return lrc;
        unsure = false;
        char found[MAX_PATH] = "";
        for (size_t i = 0; i < n; i++)
            if (strncmp(cs[i].name, protect, strlen(protect)) == 0)
                snprintf(found, sizeof found, "%s/%s", dir, cs[i].name);
        free(cs);
        zop_unref(op);
        if (found[0]) {
            int grc = zk_get(c, found, mine, (int)(deadline - coord__now_ms()));
            if (grc == 0) {
                free(mine->value);
                mine->value = NULL;
                mine->len = 0;
                break;
            }
            if (grc != COORD_ENOTFOUND) return grc;
        }
    }
    zop *op;
    contender *cs;
    size_t n;
    if ((rc = contenders(z, dir, deadline, &op, &cs, &n))) {
        coord_kv_clear(mine);
        return rc;
    }
    /* The same listing tells who is just before us: no second read before waiting. */
    memset(pred, 0, sizeof *pred);
    *after = 0;
    size_t at;
    ptrdiff_t p;
    place(cs, n, zk_basename(mine->key), only, &at, &p);
    *first = p < 0;
    if (p >= 0 && at < n) {
        if (asprintf(&pred->key, "%s/%s", dir, cs[p].name) < 0) pred->key = NULL;
        pred->order = cs[p].seq;
    }
    free(cs);
    zop_unref(op);
    if (at == n) {
        coord_kv_clear(mine);
        return coord_seterr(COORD_ESESSION, "lock node vanished right after its creation");
    }
    return 0;
}

static int zk_lock_predecessor(coord_conn *c, const char *dir, const coord_kv *mine,
                               const char *only, coord_kv *pred, int64_t *after, int timeout_ms) {
    zk *z = (zk *)c;
    zop *op;
    contender *cs;
    size_t n;
    memset(pred, 0, sizeof *pred);
    *after = 0;
    int rc = contenders(z, dir, deadline_of(timeout_ms), &op, &cs, &n);
    if (rc) return rc;
    size_t at;
    ptrdiff_t p;
    place(cs, n, zk_basename(mine->key), only, &at, &p);
    if (at == n) {
        rc = coord_seterr(COORD_ESESSION, "lock node %s is gone (session expired)", mine->key);
    } else if (p >= 0) {
        if (asprintf(&pred->key, "%s/%s", dir, cs[p].name) < 0) {
            pred->key = NULL;
            rc = coord_seterr(COORD_ENOMEM, "out of memory");
        }
        pred->order = cs[p].seq;
    }
    free(cs);
    zop_unref(op);
    return rc;
}

static int zk_queue_head(coord_conn *c, const char *dir, coord_kv *out, int timeout_ms) {
    zk *z = (zk *)c;
    int64_t deadline = deadline_of(timeout_ms);
    memset(out, 0, sizeof *out);
    while (1) {
        zop *op;
        contender *cs;
        size_t n;
        int rc = contenders(z, dir, deadline, &op, &cs, &n);
        if (rc) return rc;
        char first[MAX_PATH] = "";
        int64_t seq = 0;
        if (n) {
            snprintf(first, sizeof first, "%s/%s", dir, cs[0].name);
            seq = cs[0].seq;
        }
        free(cs);
        zop_unref(op);
        if (!first[0]) return coord_seterr(COORD_ENOTFOUND, "%s has no contender", dir);
        int left = (int)(deadline - coord__now_ms());
        rc = zk_get(c, first, out, left > 0 ? left : 1);
        if (rc != COORD_ENOTFOUND) {
            if (!rc) out->order = seq;
            return rc;
        }
        /* The first went between the listing and the read: list again. */
        if (coord__now_ms() >= deadline)
            return coord_seterr(COORD_ETIMEDOUT, "%s: no stable first contender in time", dir);
    }
}

/* ---------- watches ---------- */

static void arm(zk *z, coord_watch *w);

static void deliver(coord_watch *w, coord_watch_event ev) {
    pthread_mutex_lock(&w->mu);
    if (!w->dead) {
        w->in_fn = true;
        pthread_mutex_unlock(&w->mu);
        w->fn(w->payload, ev, 0);
        pthread_mutex_lock(&w->mu);
        w->in_fn = false;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

static void on_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh;
    (void)state;
    (void)path;
    coord_watch *w = ctx;
    if (type == ZOO_SESSION_EVENT) return; /* the supervisor re-arms after expiry */
    if (w->kind == COORD_WATCH_KEY && type == ZOO_DELETED_EVENT) {
        pthread_mutex_lock(&w->mu);
        w->consumed = true;
        pthread_mutex_unlock(&w->mu);
        deliver(w, COORD_EV_DELETED);
        return;
    }
    if (w->kind == COORD_WATCH_CHILDREN && type == ZOO_CHILD_EVENT) {
        pthread_mutex_lock(&w->mu);
        w->state++; /* the change that fired the watch */
        pthread_mutex_unlock(&w->mu);
    }
    if ((w->kind == COORD_WATCH_CHILDREN && type != ZOO_CHANGED_EVENT) ||
        w->kind == COORD_WATCH_DATA)
        deliver(w, COORD_EV_CHANGED);
    arm(w->z, w);
}

/* An arm is about to be sent on the current handle (hlock held for reading, so the handle and
 * its session number stand): false when the watch is dead. Arms sent on a handle that has been
 * closed since are not counted any more: zookeeper_close does not always run the completions
 * still queued (ZOOKEEPER-2894), and an unwatch must not wait for them forever. */
static bool arm_begin(zk *z, coord_watch *w) {
    pthread_mutex_lock(&w->mu);
    bool dead = w->dead;
    if (!dead) {
        if (w->pend_sess != z->session) {
            w->pending = 0;
            w->pend_sess = z->session;
        }
        w->pending++;
    }
    pthread_mutex_unlock(&w->mu);
    return !dead;
}

static void arm_done(coord_watch *w) {
    pthread_mutex_lock(&w->mu);
    if (w->pending > 0) w->pending--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* An arm whose request died with the connection registered no watcher (the client only does
 * on success): events may have been missed, so report them as a change of a set (a key's
 * deletion is found by the next arm) and arm again, queued until the client reconnects. */
static void arm_lost(coord_watch *w) {
    if (w->kind != COORD_WATCH_KEY) deliver(w, COORD_EV_CHANGED);
    arm(w->z, w);
}

static void on_arm_stat(int rc, const struct Stat *st, const void *d) {
    coord_watch *w = (coord_watch *)d;
    if (w->kind == COORD_WATCH_DATA && (rc == ZOK || rc == ZNONODE)) {
        int64_t now = rc == ZOK && st ? st->mzxid : 0;
        pthread_mutex_lock(&w->mu);
        /* The first arm too: the caller's read may have come before it registered. */
        bool changed = !w->seen || w->state != now;
        w->state = now;
        w->seen = true;
        pthread_mutex_unlock(&w->mu);
        if (changed) deliver(w, COORD_EV_CHANGED);
    } else if (rc == ZNONODE) {
        if (w->kind == COORD_WATCH_KEY) {
            pthread_mutex_lock(&w->mu);
            w->absent = true;
            pthread_mutex_unlock(&w->mu);
            deliver(w, COORD_EV_DELETED);
        }
        /* CHILDREN of an absent parent: the exists watch reports its creation. */
    } else if (rc == ZOK && w->kind == COORD_WATCH_CHILDREN) {
        /* The parent appeared between our two calls: watch its children now. */
        deliver(w, COORD_EV_CHANGED);
        arm(w->z, w);
    } else if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) {
        arm_lost(w);
    }
    arm_done(w);
}

static void on_arm_kids(int rc, const struct String_vector *sv, const struct Stat *st,
                        const void *d) {
    (void)sv;
    coord_watch *w = (coord_watch *)d;
    if (rc == ZOK) {
        /* Watching children again after the parent was absent: its children may have come
         * between the creation event and this listing, which then fires nothing for them. */
        pthread_mutex_lock(&w->mu);
        bool was_absent = w->absent;
        w->absent = false;
        int64_t now = st ? st->cversion : 0;
        bool more = w->seen && st && w->state != now; /* changes the fired watch did not tell */
        w->state = now;
        w->seen = st != NULL;
        pthread_mutex_unlock(&w->mu);
        if (was_absent || more) deliver(w, COORD_EV_CHANGED);
    } else if (rc == ZNONODE) {
        /* No parent yet: watch for its creation instead. */
        zk *z = w->z;
        pthread_mutex_lock(&w->mu);
        w->absent = true;
        pthread_mutex_unlock(&w->mu);
        if (pthread_rwlock_tryrdlock(&z->hlock) == 0) {
            if (arm_begin(z, w) &&
                (!z->zh || zoo_awexists(z->zh, w->path, on_watch, w, on_arm_stat, w) != ZOK))
                arm_done(w);
            pthread_rwlock_unlock(&z->hlock);
        }
    } else if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) {
        arm_lost(w);
    }
    arm_done(w);
}

/* Register the one-shot ZooKeeper watch for `w` again. Never blocks on the handle lock: while
 * the supervisor replaces the handle it re-arms every watch itself. */
static void arm(zk *z, coord_watch *w) {
    if (pthread_rwlock_tryrdlock(&z->hlock) != 0) return;
    if (arm_begin(z, w)) {
        int rc = ZINVALIDSTATE;
        if (z->zh)
            rc = w->kind != COORD_WATCH_CHILDREN
                     ? zoo_awexists(z->zh, w->path, on_watch, w, on_arm_stat, w)
                     : zoo_awget_children2(z->zh, w->path, on_watch, w, on_arm_kids, w);
        if (rc != ZOK) arm_done(w);
    }
    pthread_rwlock_unlock(&z->hlock);
}

static int zk_watch(coord_conn *c, const char *path, int kind, int64_t after, coord_watch_fn fn,
                    void *payload, coord_watch **out) {
    (void)after;
    zk *z = (zk *)c;
    coord_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return coord_seterr(COORD_ENOMEM, "out of memory");
    }
    w->z = z;
    w->kind = kind;
    w->fn = fn;
    w->payload = payload;
    pthread_mutex_init(&w->mu, NULL);
    coord__cond_init(&w->cv);
    pthread_mutex_lock(&z->mu);
    w->next = z->watches;
    z->watches = w;
    pthread_mutex_unlock(&z->mu);
    arm(z, w);
    *out = w;
    return 0;
}

/* Wait (bounded by the operation timeout) until the client has delivered every reply and event
 * it received before now: a read issued now completes after them. */
static void barrier(zk *z) {
    zhandle_t *zh = zh_acquire(z);
    if (!zh) return;
    zop *o = zop_new();
    args root = {.path = "/"};
    if (o && issue_get(zh, o, &root) != ZOK) {
        o->refs = 1; /* not submitted: the completion will never run */
        zop_unref(o);
        o = NULL;
    }
    zh_release(z);
    if (o) {
        zop_wait(o, deadline_of(z->cfg->timeout_ms));
        zop_unref(o);
    }
}

static void zk_unwatch(coord_conn *c, coord_watch *w) {
    zk *z = (zk *)c;
    if (!w) return;
    pthread_mutex_lock(&z->mu);
    for (coord_watch **pp = &z->watches; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    pthread_mutex_unlock(&z->mu);
    /* No arm starts once dead; those in flight register their watcher when they complete. */
    pthread_mutex_lock(&w->mu);
    w->dead = true;
    while (w->pending > 0) {
        /* Arms sent on a handle closed since will never complete (see arm_begin). */
        uint64_t sent_on = w->pend_sess;
        pthread_mutex_unlock(&w->mu);
        pthread_mutex_lock(&z->mu);
        bool closed = z->session != sent_on;
        pthread_mutex_unlock(&z->mu);
        pthread_mutex_lock(&w->mu);
        if (closed && w->pend_sess == sent_on) break;
        struct timespec dl = coord__deadline(50);
        pthread_cond_timedwait(&w->cv, &w->mu, &dl);
    }
    /* A key watch whose deletion event has run holds no registration any more (the client
     * drops a watch as it fires, and no arm is in flight): nothing to remove, no round trip,
     * which keeps a lock hand-off free of two. */
    bool spent = w->kind == COORD_WATCH_KEY && w->consumed && !w->absent;
    pthread_mutex_unlock(&w->mu);
    /* Drop the client-side registration so the watcher context is never used again. An event
     * that already arrived sits in the client's completion queue, out of reach of
     * zoo_remove_watches: a request issued after it completes after that event has run. */
    zhandle_t *zh = spent ? NULL : zh_acquire(z);
    if (zh) {
        zoo_remove_watches(zh, w->path, ZWATCHTYPE_ANY, on_watch, w, 1);
        zh_release(z);
        barrier(z);
    }
    pthread_mutex_lock(&w->mu);
    while (w->in_fn)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->path);
    free(w);
}

/* ---------- session ---------- */

static void report(zk *z, coord_session_state st) {
    pthread_mutex_lock(&z->mu);
    bool change = z->state != st && z->opened;
    z->state = st;
    pthread_mutex_unlock(&z->mu);
    if (change) z->cfg->on_state(z->cfg->core, st);
}

static void on_session(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)path;
    zk *z = ctx;
    if (type != ZOO_SESSION_EVENT) return;
    pthread_mutex_lock(&z->mu);
    bool current = zh == z->zh || z->zh == NULL;
    if (current) {
        z->zstate = state;
        if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) z->replace = true;
        pthread_cond_broadcast(&z->cv);
    }
    pthread_mutex_unlock(&z->mu);
    if (!current) return;
    if (state == ZOO_CONNECTED_STATE)
        report(z, COORD_SESSION_CONNECTED);
    else if (state == ZOO_CONNECTING_STATE)
        report(z, COORD_SESSION_SUSPENDED);
    else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE)
        report(z, COORD_SESSION_LOST);
}

/* The client resolves its hosts again at most this often while connected (and at once after a
 * connection loss). Its default is at every look at the socket: a getaddrinfo, with a netlink
 * dump of the interfaces, per I/O wake-up, which was a quarter of a busy client's CPU. */
#define ZK_RESOLVE_DELAY_MS 1000

static zhandle_t *new_handle(zk *z, const clientid_t *cid, watcher_fn fn, void *ctx) {
    zhandle_t *zh = zookeeper_init2(z->hosts, fn, z->cfg->session_ttl_ms, cid, ctx, 0, zk_log);
    if (zh) zoo_set_servers_resolution_delay(zh, ZK_RESOLVE_DELAY_MS);
    if (zh && z->auth) zoo_add_auth(zh, "digest", z->auth, (int)strlen(z->auth), NULL, NULL);
    return zh;
}

/* Wait until the current handle is connected. 0, or -1 on timeout / stop. */
static int wait_connected(zk *z, int64_t deadline) {
    struct timespec dl = coord__deadline(deadline - coord__now_ms());
    pthread_mutex_lock(&z->mu);
    while (z->zstate != ZOO_CONNECTED_STATE && !z->stopping && !z->replace)
        if (pthread_cond_timedwait(&z->cv, &z->mu, &dl)) break;
    int ok = z->zstate == ZOO_CONNECTED_STATE ? 0 : -1;
    pthread_mutex_unlock(&z->mu);
    return ok;
}

static void *supervisor_main(void *arg) {
    zk *z = arg;
    pthread_mutex_lock(&z->mu);
    while (1) {
        while (!z->replace && !z->stopping)
            pthread_cond_wait(&z->cv, &z->mu);
        if (z->stopping) break;
        z->replace = false;
        z->zstate = 0;
        pthread_mutex_unlock(&z->mu);

        /* The expired handle is useless: close it and start a new session. */
        pthread_rwlock_wrlock(&z->hlock);
        zhandle_t *old = z->zh;
        pthread_mutex_lock(&z->mu);
        z->zh = NULL;
        pthread_mutex_unlock(&z->mu);
        uint64_t ended = z->session;
        if (old) zookeeper_close(old);
        adel_flush(z, ended);
        zhandle_t *zh = NULL;
        while (!zh) {
            pthread_mutex_lock(&z->mu);
            bool stop = z->stopping;
            pthread_mutex_unlock(&z->mu);
            if (stop) break;
            zh = new_handle(z, NULL, on_session, z);
            if (!zh) {
                struct timespec ts = {0, 200000000L};
                nanosleep(&ts, NULL);
            }
        }
        pthread_mutex_lock(&z->mu);
        z->zh = zh;
        z->session++;
        pthread_mutex_unlock(&z->mu);
        pthread_rwlock_unlock(&z->hlock);
        if (!zh) {
            pthread_mutex_lock(&z->mu);
            break;
        }
        /* Watches of the old session are gone; register them again and tell their owners. */
        pthread_mutex_lock(&z->mu);
        coord_watch *ws[256];
        size_t nw = 0;
        for (coord_watch *w = z->watches; w && nw < 256; w = w->next)
            ws[nw++] = w;
        pthread_mutex_unlock(&z->mu);
        for (size_t i = 0; i < nw; i++) {
            arm(z, ws[i]);
            deliver(ws[i], COORD_EV_RESET);
        }
        pthread_mutex_lock(&z->mu);
    }
    pthread_mutex_unlock(&z->mu);
    return NULL;
}

extern const coord_backend coord__zk_backend;

static void zk_free(zk *z) {
    free(z->hosts);
    if (z->auth) explicit_bzero(z->auth, strlen(z->auth));
    free(z->auth);
    pthread_rwlock_destroy(&z->hlock);
    pthread_mutex_destroy(&z->mu);
    pthread_mutex_destroy(&z->hint_mu);
    for (size_t i = 0; i < sizeof z->absent / sizeof z->absent[0]; i++)
        free(z->absent[i]);
    pthread_cond_destroy(&z->cv);
    free(z);
}

static int zk_open(coord_conn **out, const coord_config *cfg) {
    zk *z = calloc(1, sizeof *z);
    if (!z) return coord_seterr(COORD_ENOMEM, "out of memory");
    z->base.backend = &coord__zk_backend;
    z->cfg = cfg;
    z->state = COORD_SESSION_CONNECTED;
    pthread_rwlock_init(&z->hlock, NULL);
    pthread_mutex_init(&z->mu, NULL);
    pthread_mutex_init(&z->hint_mu, NULL);
    coord__cond_init(&z->cv);
    const coord_uri *u = cfg->uri;
    size_t cap = 1;
    for (size_t i = 0; i < u->nhosts; i++)
        cap += strlen(u->hosts[i].host) + 10;
    if (!(z->hosts = malloc(cap))) goto oom;
    z->hosts[0] = 0;
    for (size_t i = 0; i < u->nhosts; i++) {
        size_t l = strlen(z->hosts);
        bool v6 = strchr(u->hosts[i].host, ':') != NULL;
        snprintf(z->hosts + l, cap - l, v6 ? "%s[%s]:%d" : "%s%s:%d", i ? "," : "",
                 u->hosts[i].host, u->hosts[i].port);
    }
    if (u->user) {
        size_t l = strlen(u->user) + strlen(u->password) + 2;
        if (!(z->auth = malloc(l))) goto oom;
        snprintf(z->auth, l, "%s:%s", u->user, u->password);
        z->above[0] = (struct ACL){ZOO_PERM_ALL, ZOO_AUTH_IDS};
        z->above[1] = (struct ACL){ZOO_PERM_READ | ZOO_PERM_CREATE, ZOO_ANYONE_ID_UNSAFE};
        z->above_acl = (struct ACL_vector){2, z->above};
    }
    int64_t deadline = coord__now_ms() + cfg->connect_timeout_ms;
    z->zh = new_handle(z, NULL, on_session, z);
    if (!z->zh) {
        zk_free(z);
        return coord_seterr(COORD_EINVAL, "zookeeper_init failed for \"%s\"", u->hosts[0].host);
    }
    int rc = 0;
    if (wait_connected(z, deadline)) {
        rc = coord_seterr(COORD_EUNAVAILABLE, "zookeeper: no server of %s reachable within %d ms",
                          z->hosts, cfg->connect_timeout_ms);
        goto fail;
    }
    /* The prefix node, created on demand (persistent: it holds every recipe of the app). */
    {
        char probe[MAX_PATH];
        snprintf(probe, sizeof probe, "%s/x", u->prefix);
        int zrc = make_parents(z, probe, deadline);
        if (zrc != ZOK) {
            rc = map_rc(zrc, "create", u->prefix);
            goto fail;
        }
        /* The server takes any digest, a wrong password being just another identity: find out
         * now whether this one may use the prefix, rather than have each operation refused (or
         * reads of absent nodes answer "none" on a prefix it cannot read). */
        args a = {.path = u->prefix};
        zop *o = NULL;
        zrc = run(z, issue_get, &a, deadline, &o);
        if (o) zop_unref(o);
        if (zrc == ZNOAUTH) {
            rc = coord_seterr(COORD_EAUTH,
                              "zookeeper: permission denied on %s for %s%s%s: its ACL admits "
                              "another identity (digest authentication takes a wrong password "
                              "for another identity)",
                              u->prefix, u->user ? "user \"" : "a client without credentials",
                              u->user ? u->user : "", u->user ? "\"" : "");
            goto fail;
        }
        if (zrc != ZOK && zrc != ZNONODE) {
            rc = map_rc(zrc, "get", u->prefix);
            goto fail;
        }
    }
    z->session = 1;
    if (pthread_create(&z->sup, NULL, supervisor_main, z)) {
        rc = coord_seterr(COORD_EBACKEND, "cannot start the supervisor thread");
        goto fail;
    }
    z->sup_started = true;
    pthread_mutex_lock(&z->mu);
    z->opened = true;
    pthread_mutex_unlock(&z->mu);
    *out = &z->base;
    return 0;
oom:
    zk_free(z);
    return coord_seterr(COORD_ENOMEM, "out of memory");
fail:
    zookeeper_close(z->zh);
    zk_free(z);
    return rc;
}

static void zk_close(coord_conn *c) {
    zk *z = (zk *)c;
    if (!z) return;
    pthread_mutex_lock(&z->mu);
    z->stopping = true;
    z->opened = false; /* no callbacks into a closing client */
    pthread_cond_broadcast(&z->cv);
    pthread_mutex_unlock(&z->mu);
    if (z->sup_started) pthread_join(z->sup, NULL);
    /* zookeeper_close frees neither the completions still queued for its completion thread nor
     * their buffers (ZOOKEEPER-2894): let every reply and event received so far be delivered
     * (when connected; a closing client does not wait for a server to come back). */
    zhandle_t *zh = zh_acquire(z);
    bool connected = zh && zoo_state(zh) == ZOO_CONNECTED_STATE;
    if (zh) zh_release(z);
    if (connected) barrier(z);
    pthread_rwlock_wrlock(&z->hlock);
    if (z->zh) zookeeper_close(z->zh); /* ends the session: ephemeral nodes go at once */
    z->zh = NULL;
    pthread_rwlock_unlock(&z->hlock);
    adel_flush(z, UINT64_MAX);
    zk_free(z);
}

static uint64_t zk_session(coord_conn *c) {
    zk *z = (zk *)c;
    pthread_mutex_lock(&z->mu);
    uint64_t s = z->session;
    pthread_mutex_unlock(&z->mu);
    return s;
}

/* Whether the handle saw its session `s0` end, waiting up to `ms` for it. */
static bool expire_noticed(zk *z, uint64_t s0, int64_t ms) {
    struct timespec dl = coord__deadline(ms);
    pthread_mutex_lock(&z->mu);
    while (z->session == s0 && !z->replace && z->zstate != ZOO_EXPIRED_SESSION_STATE)
        if (pthread_cond_timedwait(&z->cv, &z->mu, &dl)) break;
    bool gone = z->session != s0 || z->replace || z->zstate == ZOO_EXPIRED_SESSION_STATE;
    pthread_mutex_unlock(&z->mu);
    return gone;
}

static int zk_expire(coord_conn *c) {
    zk *z = (zk *)c;
    zhandle_t *zh = zh_acquire(z);
    if (!zh) return coord_seterr(COORD_ESESSION, "no session");
    clientid_t cid = *zoo_client_id(zh);
    const char *cur = zoo_get_current_server(zh);
    char server[300];
    snprintf(server, sizeof server, "%s", cur ? cur : "");
    zh_release(z);
    if (!server[0]) return coord_seterr(COORD_EUNAVAILABLE, "expire: not connected to a server");
    uint64_t s0 = zk_session(c);
    /* Until the server says the session is closed, try again soon: the session's own handle
     * may have won it back (see zk_expire.c). Then wait for that handle to learn it. */
    for (int attempt = 0; attempt < 40; attempt++) {
        int rc = zk_close_session(server, cid.client_id, cid.passwd, z->cfg->session_ttl_ms,
                                  z->cfg->timeout_ms);
        if (rc < 0) return rc;
        if (rc) {
            /* Closed. The handle learns it when it next talks to a server, which it may not do
             * before its next ping (2/3 of the TTL) if the server left its connection open:
             * a read makes it talk now. */
            if (!expire_noticed(z, s0, 20)) barrier(z);
            expire_noticed(z, s0, z->cfg->session_ttl_ms + z->cfg->timeout_ms);
            return 0;
        }
        /* Its handle won the session back: each try is a race with its reconnect (about even
         * on a busy server), so try again at once, then at a slower pace. */
        if (expire_noticed(z, s0, attempt < 20 ? 0 : 50)) return 0;
    }
    return coord_seterr(COORD_EBACKEND, "the session did not end");
}

static const char *const zk_schemes[] = {"zk", NULL};

const coord_backend coord__zk_backend = {
    .version = COORD_BACKEND_VERSION,
    .name = "zookeeper",
    .schemes = zk_schemes,
    .default_port = 2181,
    .caps = COORD_CAP_BINARY_COUNTERS | COORD_CAP_SEQUENTIAL,
    .open = zk_open,
    .close = zk_close,
    .session = zk_session,
    .get = zk_get,
    .get_own = zk_get_own,
    .put = zk_put,
    .del = zk_del,
    .list = zk_list,
    .watch = zk_watch,
    .unwatch = zk_unwatch,
    .expire = zk_expire,
    .lock_enqueue = zk_lock_enqueue,
    .lock_predecessor = zk_lock_predecessor,
    .queue_head = zk_queue_head,
    .kv_get = zk_kv_get,
    .txn = zk_txn,
    .del_async = zk_del_async,
};
