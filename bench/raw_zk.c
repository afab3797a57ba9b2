/*
 * The bare ZooKeeper client of coord-bench's raw bounds: the official C client's sync API, doing
 * what a recipe must do and nothing of the library (no session handling, retry or error
 * handling beyond reporting).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

/* A connected bare client and what its nodes are made with. */
typedef struct zk_conn {
    zhandle_t *zh;
    const struct ACL_vector *acl;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;
    bool auth_done;
    int auth_rc;
} zk_conn;

static void zk_session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh;
    (void)path;
    zk_conn *z = ctx;
    if (type != ZOO_SESSION_EVENT) return;
    pthread_mutex_lock(&z->mu);
    z->state = state;
    pthread_cond_broadcast(&z->cv);
    pthread_mutex_unlock(&z->mu);
}

static void zk_auth_done(int rc, const void *data) {
    zk_conn *z = (zk_conn *)data;
    pthread_mutex_lock(&z->mu);
    z->auth_done = true;
    z->auth_rc = rc;
    pthread_cond_broadcast(&z->cv);
    pthread_mutex_unlock(&z->mu);
}

/* Connect to the URI's hosts, with digest auth when the URI names a user. 0, or -1 with `err`
 * set; zk_close(z) either way. */
static int zk_open(zk_conn *z, const coord_uri *u, char *err, size_t cap) {
    memset(z, 0, sizeof *z);
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->cv, NULL);
    char hosts[2048] = "";
    size_t hl = 0;
    for (size_t i = 0; i < u->nhosts && hl < sizeof hosts; i++) {
        bool v6 = strchr(u->hosts[i].host, ':') != NULL;
        hl += (size_t)snprintf(hosts + hl, sizeof hosts - hl, v6 ? "%s[%s]:%d" : "%s%s:%d",
                               i ? "," : "", u->hosts[i].host, u->hosts[i].port);
    }
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    z->zh = zookeeper_init(hosts, zk_session_watcher, ms_or(u->session_ttl_ms, 10000), NULL, z, 0);
    if (!z->zh) {
        snprintf(err, cap, "zookeeper_init %.300s: %s", hosts, strerror(errno));
        return -1;
    }
    zoo_set_servers_resolution_delay(z->zh, 1000); /* as the backend: no getaddrinfo per wake-up */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms_or(u->connect_timeout_ms, 5000) / 1000 + 1;
    pthread_mutex_lock(&z->mu);
    while (z->state != ZOO_CONNECTED_STATE)
        if (pthread_cond_timedwait(&z->cv, &z->mu, &dl) == ETIMEDOUT) break;
    bool connected = z->state == ZOO_CONNECTED_STATE;
    pthread_mutex_unlock(&z->mu);
    if (!connected) {
        snprintf(err, cap, "zookeeper %.300s: not connected within %d ms", hosts,
                 ms_or(u->connect_timeout_ms, 5000));
        return -1;
    }
    z->acl = &ZOO_OPEN_ACL_UNSAFE;
    if (u->user) {
        char cred[512];
        snprintf(cred, sizeof cred, "%s:%s", u->user, u->password ? u->password : "");
        int rc = zoo_add_auth(z->zh, "digest", cred, (int)strlen(cred), zk_auth_done, z);
        pthread_mutex_lock(&z->mu);
        while (rc == ZOK && !z->auth_done)
            if (pthread_cond_timedwait(&z->cv, &z->mu, &dl) == ETIMEDOUT) break;
        if (rc == ZOK) rc = z->auth_done ? z->auth_rc : ZOPERATIONTIMEOUT;
        pthread_mutex_unlock(&z->mu);
        if (rc != ZOK) {
            snprintf(err, cap, "zookeeper digest auth: %s", zerror(rc));
            return -1;
        }
        z->acl = &ZOO_CREATOR_ALL_ACL;
    }
    return 0;
}

static void zk_close(zk_conn *z) {
    if (z->zh) zookeeper_close(z->zh);
    z->zh = NULL;
    pthread_mutex_destroy(&z->mu);
    pthread_cond_destroy(&z->cv);
}

/* Create `path` ("<prefix>/bench-raw-<pid><suffix>", written to `path`) and its missing
 * ancestors as persistent nodes. 0, or -1 with `err` set and `path` emptied. */
static int zk_mkdirs(zk_conn *z, const coord_uri *u, const char *suffix, char *path, size_t len,
                     char *err, size_t cap) {
    snprintf(path, len, "%s/bench-raw-%ld%s", u->prefix, (long)getpid(), suffix);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char saved = *p;
            *p = 0;
            int rc = zoo_create(z->zh, path, NULL, -1, z->acl, 0, NULL, 0);
            *p = saved;
            if (rc != ZOK && rc != ZNODEEXISTS) {
                snprintf(err, cap, "zookeeper create %.300s: %s", path, zerror(rc));
                path[0] = 0;
                return -1;
            }
            if (!saved) return 0;
        }
    }
}

/* ---------- the lock bound ---------- */

/* One uncontended lock cycle: create + list (timed, into *lat), delete. 0, or -1 (failed). */
static int zk_lock_cycle(bench_thread *t, zk_conn *z, const char *parent, const char *child,
                         int64_t *lat) {
    char made[1200];
    struct Stat st;
    struct String_vector kids;
    int64_t t0 = now_ns();
    int rc = zoo_create2(z->zh, child, NULL, -1, z->acl, ZOO_EPHEMERAL_SEQUENTIAL, made,
                         sizeof made, &st);
    if (rc != ZOK) {
        bench_fail(t, "zoo_create2 %.300s: %s", child, zerror(rc));
        return -1;
    }
    rc = zoo_get_children(z->zh, parent, 0, &kids);
    if (rc != ZOK) {
        bench_fail(t, "zoo_get_children %.300s: %s", parent, zerror(rc));
        return -1;
    }
    *lat = now_ns() - t0;
    int nkids = kids.count;
    deallocate_String_vector(&kids);
    if (nkids != 1) {
        bench_fail(t, "%.300s: %d children, expected 1", parent, nkids);
        return -1;
    }
    rc = zoo_delete(z->zh, made, -1);
    if (rc != ZOK) {
        bench_fail(t, "zoo_delete %.300s: %s", made, zerror(rc));
        return -1;
    }
    return 0;
}

static void *zk_lock_main(void *arg) {
    raw_task *k = arg;
    bench_thread *t = &k->t;
    k->method = "zoo_create2 EPHEMERAL|SEQUENCE + zoo_get_children + zoo_delete (sync API)";
    zk_conn z;
    char parent[1024] = "", child[1100];
    int64_t lat;
    if (!zk_open(&z, k->u, t->err, sizeof t->err) &&
        !zk_mkdirs(&z, k->u, "", parent, sizeof parent, t->err, sizeof t->err)) {
        snprintf(child, sizeof child, "%s/_c_raw-lock-", parent);
        zk_lock_cycle(t, &z, parent, child, &lat); /* warm-up */
    }
    if (bench_ready(t))
        while (bench_going(t))
            if (zk_lock_cycle(t, &z, parent, child, &lat) || bench_sample(t, lat)) break;
    if (z.zh && parent[0]) zoo_delete(z.zh, parent, -1);
    zk_close(&z);
    return NULL;
}

/* ---------- the counter bound ---------- */

/* One add: a conditional write of ++*value on *version, the new version cached. */
static int zk_counter_add(bench_thread *t, zk_conn *z, const char *node, int *version,
                          long long *value, int64_t *lat) {
    char buf[24];
    struct Stat st;
    int64_t t0 = now_ns();
    int len = snprintf(buf, sizeof buf, "%lld", ++*value);
    int rc = zoo_set2(z->zh, node, buf, len, *version, &st);
    *lat = now_ns() - t0;
    if (rc != ZOK) {
        bench_fail(t, "zoo_set2 %.300s version %d: %s", node, *version, zerror(rc));
        return -1;
    }
    *version = st.version;
    return 0;
}

/* What an uncontended add must do, one conditional write on the version seen last (the node is
 * made, outside the timed loop, with version 0), on a node of the task's own. */
static void *zk_counter_main(void *arg) {
    raw_task *k = arg;
    bench_thread *t = &k->t;
    k->method = "zoo_set2(path, value, cached version, &stat) (sync API), stat.version cached";
    zk_conn z;
    char parent[1024] = "", node[1100] = "", suffix[32];
    int version = 0;
    long long value = 0;
    int64_t lat;
    snprintf(suffix, sizeof suffix, "-%d", k->key);
    if (!zk_open(&z, k->u, t->err, sizeof t->err) &&
        !zk_mkdirs(&z, k->u, suffix, parent, sizeof parent, t->err, sizeof t->err)) {
        struct Stat st;
        snprintf(node, sizeof node, "%s/counter", parent);
        int rc = zoo_create2(z.zh, node, "0", 1, z.acl, 0, NULL, 0, &st);
        if (rc != ZOK) {
            bench_fail(t, "zoo_create2 %.300s: %s", node, zerror(rc));
            node[0] = 0;
        } else {
            version = st.version;
            zk_counter_add(t, &z, node, &version, &value, &lat); /* warm-up */
        }
    }
    if (bench_ready(t))
        while (bench_going(t))
            if (zk_counter_add(t, &z, node, &version, &value, &lat) || bench_sample(t, lat)) break;
    if (z.zh && node[0]) zoo_delete(z.zh, node, -1);
    if (z.zh && parent[0]) zoo_delete(z.zh, parent, -1);
    zk_close(&z);
    return NULL;
}

/* ---------- the contended lock bound ---------- */

/*
 * Threads sharing one bare client (as the scenario's threads share one coord_client), each
 * running Curator's lock algorithm with the recipe's steps: create an ephemeral sequential node,
 * list the children, and while a node with a lower sequence exists, an exists watch on the one
 * just before it, listing again once it fires; delete to release.
 */
typedef struct zk_turn {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool fired;
} zk_turn;

static void zk_fired(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh;
    (void)state;
    (void)path;
    zk_turn *t = ctx;
    if (type == ZOO_SESSION_EVENT) return; /* the session's own, not the node's */
    pthread_mutex_lock(&t->mu);
    t->fired = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* The 10-digit sequence a sequential node's name ends in. */
static const char *seq_of(const char *name) {
    size_t n = strlen(name);
    return n >= 10 ? name + n - 10 : name;
}

/* Sequence order, whatever the names' prefixes (Curator's and kazoo's sort). */
static int cmp_seq(const void *a, const void *b) {
    return strcmp(seq_of(*(char *const *)a), seq_of(*(char *const *)b));
}

typedef struct zk_contender {
    bench_thread t;
    zk_conn *z;
    const char *dir;
    char base[1100];  /* the path its nodes are created at, before the sequence */
    char data[32];    /* their data: the candidate's value */
    const char *only; /* waits only for nodes whose name holds this (a reader: "__WRIT__") */
} zk_contender;

/* Until the node `mine` is first of `dir` (with c->only: until no such node is before it): list,
 * and watch the one just before it (the last such one). */
static int zk_wait_turn(zk_contender *c, const char *mine, zk_turn *turn) {
    const char *me = strrchr(mine, '/') + 1;
    char pred[1200];
    for (;;) {
        struct String_vector kids = {0};
        int rc = zoo_get_children(c->z->zh, c->dir, 0, &kids);
        if (rc != ZOK) {
            bench_fail(&c->t, "zoo_get_children: %s", zerror(rc));
            return -1;
        }
        qsort(kids.data, (size_t)kids.count, sizeof *kids.data, cmp_seq);
        int at = -1, p = -1;
        for (int i = 0; i < kids.count && at < 0; i++)
            if (!strcmp(kids.data[i], me)) at = i;
        for (int i = at - 1; i >= 0 && p < 0; i--)
            if (!c->only || strstr(kids.data[i], c->only)) p = i;
        if (p >= 0) snprintf(pred, sizeof pred, "%s/%s", c->dir, kids.data[p]);
        deallocate_String_vector(&kids);
        if (at < 0) {
            bench_fail(&c->t, "%.300s vanished", mine);
            return -1;
        }
        if (p < 0) return 0; /* first: the lock is ours */
        turn->fired = false;
        struct Stat st;
        rc = zoo_wexists(c->z->zh, pred, zk_fired, turn, &st);
        if (rc == ZNONODE) continue;
        if (rc != ZOK) {
            bench_fail(&c->t, "zoo_wexists: %s", zerror(rc));
            return -1;
        }
        pthread_mutex_lock(&turn->mu);
        while (!turn->fired)
            pthread_cond_wait(&turn->cv, &turn->mu);
        pthread_mutex_unlock(&turn->mu);
    }
}

static void *zk_contender_main(void *arg) {
    zk_contender *c = arg;
    zk_turn turn = {.fired = false};
    pthread_mutex_init(&turn.mu, NULL);
    pthread_cond_init(&turn.cv, NULL);
    char mine[1200] = "";
    if (bench_ready(&c->t)) {
        while (bench_going(&c->t)) {
            int64_t t0 = now_ns();
            int rc = zoo_create(c->z->zh, c->base, c->data, (int)strlen(c->data), c->z->acl,
                                ZOO_EPHEMERAL | ZOO_SEQUENCE, mine, (int)sizeof mine);
            if (rc != ZOK) {
                bench_fail(&c->t, "zoo_create %.300s: %s", c->base, zerror(rc));
                mine[0] = 0;
                break;
            }
            if (zk_wait_turn(c, mine, &turn) || bench_sample(&c->t, now_ns() - t0)) break;
            rc = zoo_delete(c->z->zh, mine, -1);
            mine[0] = 0;
            if (rc != ZOK) {
                bench_fail(&c->t, "zoo_delete: %s", zerror(rc));
                break;
            }
        }
    }
    if (mine[0]) zoo_delete(c->z->zh, mine, -1);
    pthread_mutex_destroy(&turn.mu);
    pthread_cond_destroy(&turn.cv);
    return NULL;
}

typedef enum zk_recipe { ZK_LOCK, ZK_ELECTION, ZK_RWLOCK } zk_recipe;

/* `threads` contenders of one bare client on one queue ("<prefix>/bench-raw-<pid><suffix>"),
 * nodes "lock-<seq>" (the lock), Curator LeaderLatch's "_c_<id>-latch-<seq>" holding the
 * candidate's value (the election), or Curator InterProcessReadWriteLock's
 * "_c_<id>-__WRIT__<seq>" (thread 0) and "_c_<id>-__READ__<seq>" (the others). */
static void zk_queue(const coord_uri *u, int threads, int64_t ms, raw_result *out,
                     const char *suffix, zk_recipe recipe) {
    zk_conn z;
    char dir[1024] = "";
    zk_contender *cs = calloc((size_t)threads, sizeof *cs);
    if (!cs)
        snprintf(out->err, sizeof out->err, "out of memory");
    else if (!zk_open(&z, u, out->err, sizeof out->err) &&
             !zk_mkdirs(&z, u, suffix, dir, sizeof dir, out->err, sizeof out->err)) {
        for (int i = 0; i < threads; i++) {
            cs[i] = (zk_contender){.z = &z, .dir = dir};
            if (recipe == ZK_ELECTION) {
                snprintf(cs[i].base, sizeof cs[i].base, "%s/_c_raw%d-latch-", dir, i);
                snprintf(cs[i].data, sizeof cs[i].data, "candidate-%d", i);
            } else if (recipe == ZK_RWLOCK) {
                snprintf(cs[i].base, sizeof cs[i].base, "%s/_c_raw%d-%s", dir, i,
                         i ? "__READ__" : "__WRIT__");
                cs[i].only = i ? "__WRIT__" : NULL;
            } else {
                snprintf(cs[i].base, sizeof cs[i].base, "%s/lock-", dir);
            }
        }
        bench_run_threads(cs, sizeof *cs, threads, zk_contender_main, ms, NULL, NULL, &out->r,
                          out->err, sizeof out->err);
    }
    if (cs) {
        if (z.zh && dir[0]) zoo_delete(z.zh, dir, -1);
        zk_close(&z);
    }
    free(cs);
}

static void zk_contended(const coord_uri *u, int threads, int64_t ms, raw_result *out) {
    out->method = "Curator's lock with the bare client shared by the threads: zoo_create "
                  "EPHEMERAL|SEQUENCE + zoo_get_children; while a lower sequence exists: "
                  "zoo_wexists on the one just before it, zoo_get_children again once it fires; "
                  "zoo_delete to release (sync API)";
    zk_queue(u, threads, ms, out, "-contended", ZK_LOCK);
}

static void zk_election(const coord_uri *u, int threads, int64_t ms, raw_result *out) {
    out->method = "Curator's LeaderLatch with the bare client shared by the threads: zoo_create "
                  "EPHEMERAL|SEQUENCE \"_c_<id>-latch-\" with the value + zoo_get_children; "
                  "while a lower sequence exists: zoo_wexists on the one just before it, "
                  "zoo_get_children again once it fires; zoo_delete to resign (sync API)";
    zk_queue(u, threads, ms, out, "-election", ZK_ELECTION);
}

static void zk_mixed(const coord_uri *u, int threads, int64_t ms, raw_result *out) {
    out->method = "Curator's InterProcessReadWriteLock with the bare client shared by the "
                  "threads, thread 0 writing: zoo_create EPHEMERAL|SEQUENCE _c_<id>-__WRIT__ or "
                  "_c_<id>-__READ__ + zoo_get_children; while a node is before it (a reader: a "
                  "__WRIT__ node): zoo_wexists on the one just before it (a reader: the last "
                  "__WRIT__ one), zoo_get_children again once it fires; zoo_delete to unlock "
                  "(sync API)";
    zk_queue(u, threads, ms, out, "-mixed", ZK_RWLOCK);
}

/* ---------- the semaphore bound ---------- */

/* Create an ephemeral sequential node at `base` and list `dir` (Curator's protected create and
 * its getChildren): the node's path in `made`, the children in *kids. 0, or -1 (failed). */
static int zk_enqueue(bench_thread *t, zk_conn *z, const char *dir, const char *base, char *made,
                      size_t cap, struct String_vector *kids) {
    struct Stat st;
    int rc =
        zoo_create2(z->zh, base, NULL, -1, z->acl, ZOO_EPHEMERAL_SEQUENTIAL, made, (int)cap, &st);
    if (rc != ZOK) {
        bench_fail(t, "zoo_create2 %.300s: %s", base, zerror(rc));
        return -1;
    }
    rc = zoo_get_children(z->zh, dir, 0, kids);
    if (rc != ZOK) {
        bench_fail(t, "zoo_get_children %.300s: %s", dir, zerror(rc));
        return -1;
    }
    return 0;
}

/* Whether `made`'s name has the lowest sequence of `kids`, and (with `only`) whether a name
 * containing `only` has a lower one. */
static void zk_rank(const struct String_vector *kids, const char *made, const char *only,
                    bool *first, bool *only_before) {
    const char *me = seq_of(made);
    *first = true;
    if (only_before) *only_before = false;
    for (int i = 0; i < kids->count; i++) {
        if (strcmp(seq_of(kids->data[i]), me) >= 0) continue;
        *first = false;
        if (only_before && strstr(kids->data[i], only)) *only_before = true;
    }
}

typedef struct zk_sem {
    char locks[1024], leases[1024];         /* the two directories */
    char lock_base[1100], lease_base[1100]; /* where the nodes are made */
} zk_sem;

/* One uncontended semaphore cycle, coord's requests: the internal lock (create + list, first),
 * the lease (create + list, counted: within the limit), the lock's delete (timed, into *lat),
 * the lease's delete. 0, or -1 (failed). */
static int zk_semaphore_cycle(bench_thread *t, zk_conn *z, const zk_sem *s, int64_t *lat) {
    char lock[1200], lease[1200];
    struct String_vector kids;
    bool first;
    int64_t t0 = now_ns();
    if (zk_enqueue(t, z, s->locks, s->lock_base, lock, sizeof lock, &kids)) return -1;
    zk_rank(&kids, lock, NULL, &first, NULL);
    deallocate_String_vector(&kids);
    if (!first) {
        bench_fail(t, "%.300s: not first", lock);
        return -1;
    }
    if (zk_enqueue(t, z, s->leases, s->lease_base, lease, sizeof lease, &kids)) return -1;
    int nleases = kids.count;
    deallocate_String_vector(&kids);
    if (nleases > SEMAPHORE_LEASES) {
        bench_fail(t, "%.300s: %d leases, the limit is %d", s->leases, nleases, SEMAPHORE_LEASES);
        return -1;
    }
    int rc = zoo_delete(z->zh, lock, -1);
    *lat = now_ns() - t0;
    if (rc == ZOK) rc = zoo_delete(z->zh, lease, -1);
    if (rc != ZOK) {
        bench_fail(t, "zoo_delete: %s", zerror(rc));
        return -1;
    }
    return 0;
}

static void *zk_semaphore_main(void *arg) {
    raw_task *k = arg;
    bench_thread *t = &k->t;
    k->method = "Curator's InterProcessSemaphoreV2 steps, as coord makes them: zoo_create2 "
                "EPHEMERAL|SEQUENCE locks/_c_<id>-lock- + zoo_get_children(locks) (first), "
                "zoo_create2 EPHEMERAL|SEQUENCE leases/_c_<id>-lease- + "
                "zoo_get_children(leases) (counted), zoo_delete of the lock node; zoo_delete of "
                "the lease node to release (sync API)";
    zk_conn z;
    zk_sem s = {0};
    int64_t lat;
    if (!zk_open(&z, k->u, t->err, sizeof t->err) &&
        !zk_mkdirs(&z, k->u, "-semaphore/locks", s.locks, sizeof s.locks, t->err, sizeof t->err) &&
        !zk_mkdirs(&z, k->u, "-semaphore/leases", s.leases, sizeof s.leases, t->err,
                   sizeof t->err)) {
        snprintf(s.lock_base, sizeof s.lock_base, "%s/_c_raw-lock-", s.locks);
        snprintf(s.lease_base, sizeof s.lease_base, "%s/_c_raw-lease-", s.leases);
        zk_semaphore_cycle(t, &z, &s, &lat); /* warm-up */
    }
    if (bench_ready(t))
        while (bench_going(t))
            if (zk_semaphore_cycle(t, &z, &s, &lat) || bench_sample(t, lat)) break;
    if (z.zh) {
        char *paths[] = {s.locks, s.leases};
        for (int i = 0; i < 2; i++)
            if (paths[i][0]) zoo_delete(z.zh, paths[i], -1);
        if (s.locks[0]) {
            *strrchr(s.locks, '/') = 0; /* the semaphore's own node */
            zoo_delete(z.zh, s.locks, -1);
        }
    }
    zk_close(&z);
    return NULL;
}

/* ---------- the readers' bound ---------- */

/* One read lock cycle, coord's requests: create "_c_<id>-__READ__" + list, no writer before it
 * (timed, into *lat); delete. 0, or -1 (failed). */
static int zk_reader_cycle(bench_thread *t, zk_conn *z, const char *dir, const char *base,
                           int64_t *lat) {
    char made[1200];
    struct String_vector kids;
    bool first, writer;
    int64_t t0 = now_ns();
    if (zk_enqueue(t, z, dir, base, made, sizeof made, &kids)) return -1;
    zk_rank(&kids, made, "__WRIT__", &first, &writer);
    deallocate_String_vector(&kids);
    *lat = now_ns() - t0;
    if (writer) {
        bench_fail(t, "%.300s: a writer before the reader", made);
        return -1;
    }
    int rc = zoo_delete(z->zh, made, -1);
    if (rc != ZOK) {
        bench_fail(t, "zoo_delete %.300s: %s", made, zerror(rc));
        return -1;
    }
    return 0;
}

static void *zk_reader_main(void *arg) {
    raw_task *k = arg;
    bench_thread *t = &k->t;
    k->method = "Curator's InterProcessReadWriteLock read lock, a bare client each: zoo_create2 "
                "EPHEMERAL|SEQUENCE _c_<id>-__READ__ + zoo_get_children (no __WRIT__ before "
                "it), zoo_delete to unlock (sync API)";
    zk_conn z;
    char dir[1024] = "", base[1100];
    int64_t lat;
    if (!zk_open(&z, k->u, t->err, sizeof t->err) &&
        !zk_mkdirs(&z, k->u, "-rwlock", dir, sizeof dir, t->err, sizeof t->err)) {
        snprintf(base, sizeof base, "%s/_c_raw%d-__READ__", dir, k->key);
        zk_reader_cycle(t, &z, dir, base, &lat); /* warm-up */
    }
    if (bench_ready(t))
        while (bench_going(t))
            if (zk_reader_cycle(t, &z, dir, base, &lat) || bench_sample(t, lat)) break;
    if (z.zh && dir[0]) zoo_delete(z.zh, dir, -1); /* the last reader's succeeds */
    zk_close(&z);
    return NULL;
}

/* ---------- the key-value bounds ---------- */

static const char zk_kv_value[KV_VALUE_LEN] =
    "coord-bench kv value, 64 bytes, the same in every put.";

/* The keys "<dir>/a", "b", "c", made with the value; a's version for the txn's check. */
typedef struct zk_kv {
    char dir[1024], a[1100], b[1100], c[1100];
    int a_version;
} zk_kv;

static int zk_kv_setup(bench_thread *t, zk_conn *z, const coord_uri *u, zk_kv *k) {
    char suffix[32];
    snprintf(suffix, sizeof suffix, "-kv%d", t->idx);
    if (zk_mkdirs(z, u, suffix, k->dir, sizeof k->dir, t->err, sizeof t->err)) return -1;
    snprintf(k->a, sizeof k->a, "%s/a", k->dir);
    snprintf(k->b, sizeof k->b, "%s/b", k->dir);
    snprintf(k->c, sizeof k->c, "%s/c", k->dir);
    const char *keys[] = {k->a, k->b, k->c};
    for (int i = 0; i < 3; i++) {
        struct Stat st;
        int rc = zoo_create2(z->zh, keys[i], zk_kv_value, KV_VALUE_LEN, z->acl, 0, NULL, 0, &st);
        if (rc == ZNODEEXISTS) rc = zoo_set2(z->zh, keys[i], zk_kv_value, KV_VALUE_LEN, -1, &st);
        if (rc != ZOK) {
            bench_fail(t, "zoo_create2 %.300s: %s", keys[i], zerror(rc));
            return -1;
        }
        if (i == 0) k->a_version = st.version;
    }
    return 0;
}

static void zk_kv_cleanup(zk_conn *z, const zk_kv *k) {
    if (!z->zh || !k->dir[0]) return;
    const char *keys[] = {k->a, k->b, k->c, k->dir};
    for (int i = 0; i < 4; i++)
        zoo_delete(z->zh, keys[i], -1);
}

/* One kv operation (raw_kind RAW_KV_PUT, _GET or _TXN), timed into *lat. 0, or -1 (failed). */
static int zk_kv_cycle(bench_thread *t, zk_conn *z, zk_kv *k, raw_kind kind, int64_t *lat) {
    int64_t t0 = now_ns();
    int rc;
    const char *what = k->a;
    if (kind == RAW_KV_PUT) {
        rc = zoo_set(z->zh, k->a, zk_kv_value, KV_VALUE_LEN, -1);
    } else if (kind == RAW_KV_GET) {
        char buf[KV_VALUE_LEN + 16];
        int len = (int)sizeof buf;
        struct Stat st;
        rc = zoo_get(z->zh, k->a, 0, buf, &len, &st);
    } else {
        zoo_op_t ops[3];
        zoo_op_result_t res[3];
        struct Stat st[2];
        zoo_check_op_init(&ops[0], k->a, k->a_version);
        zoo_set_op_init(&ops[1], k->b, zk_kv_value, KV_VALUE_LEN, -1, &st[0]);
        zoo_set_op_init(&ops[2], k->c, zk_kv_value, KV_VALUE_LEN, -1, &st[1]);
        rc = zoo_multi(z->zh, 3, ops, res);
        what = "the multi";
    }
    *lat = now_ns() - t0;
    if (rc != ZOK) {
        bench_fail(t, "%s %.300s: %s",
                   kind == RAW_KV_PUT   ? "zoo_set"
                   : kind == RAW_KV_GET ? "zoo_get"
                                        : "zoo_multi",
                   what, zerror(rc));
        return -1;
    }
    return 0;
}

static void *zk_kv_main(raw_task *rk, raw_kind kind) {
    bench_thread *t = &rk->t;
    rk->method = kind == RAW_KV_PUT ? "zoo_set(key, 64 bytes, -1) (sync API)"
                 : kind == RAW_KV_GET
                     ? "zoo_get(key) (sync API)"
                     : "zoo_multi [check(a, version), setData(b, -1), setData(c, -1)] (sync API)";
    zk_conn z;
    zk_kv k = {0};
    int64_t lat;
    if (!zk_open(&z, rk->u, t->err, sizeof t->err) && !zk_kv_setup(t, &z, rk->u, &k))
        zk_kv_cycle(t, &z, &k, kind, &lat); /* warm-up */
    if (bench_ready(t))
        while (bench_going(t))
            if (zk_kv_cycle(t, &z, &k, kind, &lat) || bench_sample(t, lat)) break;
    zk_kv_cleanup(&z, &k);
    zk_close(&z);
    return NULL;
}

static void *zk_kv_put_main(void *arg) {
    return zk_kv_main(arg, RAW_KV_PUT);
}

static void *zk_kv_get_main(void *arg) {
    return zk_kv_main(arg, RAW_KV_GET);
}

static void *zk_kv_txn_main(void *arg) {
    return zk_kv_main(arg, RAW_KV_TXN);
}

/* ---------- the watch bound ---------- */

/* The watcher: a data watch, re-read (and so re-armed) with zoo_awget each time it fires. */
typedef struct zk_watcher {
    zk_conn *z;
    const char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int seen; /* the newest data version read; -1 before the first read */
    int64_t seen_ns;
    int err;
} zk_watcher;

static void zk_watch_read(int rc, const char *value, int len, const struct Stat *st,
                          const void *data);

static void zk_watch_fired(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)state;
    (void)path;
    zk_watcher *w = ctx;
    if (type == ZOO_SESSION_EVENT) return;
    int rc = zoo_awget(zh, w->path, zk_watch_fired, w, zk_watch_read, w);
    if (rc != ZOK) {
        pthread_mutex_lock(&w->mu);
        w->err = rc;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

static void zk_watch_read(int rc, const char *value, int len, const struct Stat *st,
                          const void *data) {
    (void)value;
    (void)len;
    zk_watcher *w = (zk_watcher *)data;
    int64_t now = now_ns();
    pthread_mutex_lock(&w->mu);
    if (rc != ZOK)
        w->err = rc;
    else if (st->version > w->seen) {
        w->seen = st->version;
        w->seen_ns = now;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

typedef struct zk_watch_writer {
    bench_thread t;
    zk_conn *z;
    const char *path;
    zk_watcher *w;
} zk_watch_writer;

static int zk_watch_cycle(zk_watch_writer *ww, int64_t *lat) {
    struct Stat st;
    int rc = zoo_set2(ww->z->zh, ww->path, zk_kv_value, KV_VALUE_LEN, -1, &st);
    int64_t done = now_ns();
    if (rc != ZOK) {
        bench_fail(&ww->t, "zoo_set2 %.300s: %s", ww->path, zerror(rc));
        return -1;
    }
    zk_watcher *w = ww->w;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&w->mu);
    int wrc = 0;
    while (w->seen < st.version && !w->err && wrc == 0)
        wrc = pthread_cond_timedwait(&w->cv, &w->mu, &dl);
    bool got = w->seen >= st.version;
    int64_t at = w->seen_ns;
    int err = w->err;
    pthread_mutex_unlock(&w->mu);
    if (!got) {
        bench_fail(&ww->t, "the data watch did not see version %d: %s", st.version,
                   err ? zerror(err) : "not within 5 s");
        return -1;
    }
    *lat = at > done ? at - done : 0;
    return 0;
}

static void *zk_watch_writer_main(void *arg) {
    zk_watch_writer *ww = arg;
    int64_t lat;
    zk_watch_cycle(ww, &lat); /* warm-up */
    if (bench_ready(&ww->t))
        while (bench_going(&ww->t))
            if (zk_watch_cycle(ww, &lat) || bench_sample(&ww->t, lat)) break;
    return NULL;
}

static void zk_watch(const coord_uri *u, int64_t ms, raw_result *out) {
    out->method = "a writer zoo_set2(key) on a handle of its own; the watcher zoo_awget(key) "
                  "with a data watch, and zoo_awget again (re-read and re-arm) from the watcher "
                  "function when it fires; latency from the set's return to the read of its "
                  "version";
    zk_conn zw, zr;
    memset(&zr, 0, sizeof zr);
    char dir[1024] = "", path[1100] = "";
    zk_watcher w = {.seen = -1};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    bool armed = false;
    if (!zk_open(&zw, u, out->err, sizeof out->err) &&
        !zk_mkdirs(&zw, u, "-watch", dir, sizeof dir, out->err, sizeof out->err) &&
        !zk_open(&zr, u, out->err, sizeof out->err)) {
        snprintf(path, sizeof path, "%s/w", dir);
        int rc = zoo_create(zw.zh, path, zk_kv_value, KV_VALUE_LEN, zw.acl, 0, NULL, 0);
        if (rc == ZOK || rc == ZNODEEXISTS) {
            w.z = &zr;
            w.path = path;
            rc = zoo_awget(zr.zh, path, zk_watch_fired, &w, zk_watch_read, &w);
        }
        if (rc != ZOK)
            snprintf(out->err, sizeof out->err, "zookeeper watch %.300s: %s", path, zerror(rc));
        armed = rc == ZOK;
    }
    if (armed) {
        zk_watch_writer ww = {.z = &zw, .path = path, .w = &w};
        bench_run_threads(&ww, sizeof ww, 1, zk_watch_writer_main, ms, NULL, NULL, &out->r,
                          out->err, sizeof out->err);
    }
    zk_close(&zr); /* its watch goes with it */
    if (zw.zh && path[0]) zoo_delete(zw.zh, path, -1);
    if (zw.zh && dir[0]) zoo_delete(zw.zh, dir, -1);
    zk_close(&zw);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
}

/* ---------- the queue bound ---------- */

typedef struct zk_qrun {
    const coord_uri *u;
    char items[1024], claims[1024]; /* the two directories */
    bool claim, shared;
    zk_conn sz; /* the consumers' handle when shared */
    bench_feed feed;
} zk_qrun;

typedef struct zk_qworker {
    bench_thread t;
    zk_qrun *run;
    zk_conn z, *zc;  /* zc: the consumer's handle, its own (z) or the run's */
    char base[1100]; /* the producer's "<items>/qn-" */
} zk_qworker;

/* Take or claim + ack the item `name` the way coord does: 1 done (its bytes in buf, *len),
 * 0 gone meanwhile, -1 failed. */
static int zk_qtry(zk_qworker *w, const char *name, char *buf, int *len) {
    zk_qrun *run = w->run;
    zhandle_t *zh = w->zc->zh;
    char item[1200], claim[1200];
    snprintf(item, sizeof item, "%s/%s", run->items, name);
    snprintf(claim, sizeof claim, "%s/%s", run->claims, name);
    struct Stat st, cst;
    int rc;
    if (!run->claim) {
        rc = zoo_get(zh, item, 0, buf, len, &st);
        if (rc == ZNONODE) return 0; /* taken meanwhile */
        if (rc == ZOK) {
            zoo_op_t ops[3];
            zoo_op_result_t res[3];
            zoo_create_op_init(&ops[0], claim, NULL, -1, w->zc->acl, 0, NULL, 0);
            zoo_delete_op_init(&ops[1], claim, -1);
            zoo_delete_op_init(&ops[2], item, st.version);
            rc = zoo_multi(zh, 3, ops, res);
            if (rc == ZNONODE || rc == ZNODEEXISTS || rc == ZBADVERSION) return 0;
        }
    } else {
        rc = zoo_create2(zh, claim, "raw", 3, w->zc->acl, ZOO_EPHEMERAL, NULL, 0, &cst);
        if (rc == ZNODEEXISTS) return 0; /* claimed meanwhile */
        if (rc == ZOK) {
            rc = zoo_get(zh, item, 0, buf, len, &st);
            if (rc == ZNONODE) {
                zoo_delete(zh, claim, -1);
                return 0;
            }
        }
        if (rc == ZOK) {
            zoo_op_t ops[3];
            zoo_op_result_t res[3];
            zoo_check_op_init(&ops[0], claim, cst.version);
            zoo_delete_op_init(&ops[1], item, st.version);
            zoo_delete_op_init(&ops[2], claim, cst.version);
            rc = zoo_multi(zh, 3, ops, res);
        }
    }
    if (rc == ZOK) return 1;
    bench_fail(&w->t, "%s %.300s: %s", run->claim ? "claim" : "take", item, zerror(rc));
    return -1;
}

/* One item the way coord's consumers of one client get it (the feed's pass-over included): 1
 * when got (timed into *lat), 0 when the queue had none open, -1 failed. */
static int zk_qconsume(zk_qworker *w, int64_t *lat) {
    zk_qrun *run = w->run;
    zhandle_t *zh = w->zc->zh;
    int64_t t0 = now_ns();
    uint64_t since = feed_since(&run->feed);
    struct String_vector items = {0}, claims = {0};
    int rc = zoo_get_children(zh, run->items, 0, &items);
    if (rc == ZOK) rc = zoo_get_children(zh, run->claims, 0, &claims);
    if (rc != ZOK) {
        bench_fail(&w->t, "zoo_get_children: %s", zerror(rc));
        deallocate_String_vector(&items);
        return -1;
    }
    qsort(items.data, (size_t)items.count, sizeof *items.data, cmp_seq);
    int got = 0;
    for (int i = 0; i < items.count && !got; i++) {
        bool claimed = false;
        for (int j = 0; j < claims.count && !claimed; j++)
            claimed = !strcmp(claims.data[j], items.data[i]);
        int slot = claimed ? -1 : run->shared ? feed_try(&run->feed, since, items.data[i]) : 0;
        if (slot < 0) continue;
        char buf[64];
        int len = (int)sizeof buf;
        got = zk_qtry(w, items.data[i], buf, &len);
        if (run->shared) feed_tried(&run->feed, slot, got > 0);
        if (got > 0) {
            *lat = now_ns() - t0;
            got = feed_got(&run->feed, &w->t, buf, len > 0 ? (size_t)len : 0) ? -1 : 1;
        }
    }
    deallocate_String_vector(&items);
    deallocate_String_vector(&claims);
    return got;
}

static void *zk_qworker_main(void *arg) {
    zk_qworker *w = arg;
    zk_qrun *run = w->run;
    bool producer = w->t.idx == 0;
    w->zc = run->shared && !producer ? &run->sz : &w->z;
    if (w->zc == &w->z) zk_open(&w->z, run->u, w->t.err, sizeof w->t.err);
    snprintf(w->base, sizeof w->base, "%s/qn-", run->items);
    if (bench_ready(&w->t)) {
        if (producer) {
            char buf[32], made[1200];
            while (feed_room(&run->feed, &w->t)) {
                size_t len = feed_next(&run->feed, buf, sizeof buf);
                int rc = zoo_create(w->z.zh, w->base, buf, (int)len, w->z.acl,
                                    ZOO_PERSISTENT_SEQUENTIAL, made, (int)sizeof made);
                if (rc != ZOK) {
                    bench_fail(&w->t, "zoo_create %.300s: %s", w->base, zerror(rc));
                    break;
                }
                feed_put(&run->feed);
            }
        } else {
            int64_t lat = 0;
            while (bench_going(&w->t)) {
                int got = zk_qconsume(w, &lat);
                if (got < 0 || (got > 0 && bench_sample(&w->t, lat))) break;
                if (!got) usleep(200); /* none open: the producer's turn */
            }
        }
    }
    if (w->zc == &w->z) zk_close(&w->z);
    return NULL;
}

/* Delete the children of `dir` and `dir` (untimed). */
static void zk_rmdir(zk_conn *z, const char *dir) {
    struct String_vector kids = {0};
    if (zoo_get_children(z->zh, dir, 0, &kids) == ZOK)
        for (int i = 0; i < kids.count; i++) {
            char p[1200];
            snprintf(p, sizeof p, "%s/%s", dir, kids.data[i]);
            zoo_delete(z->zh, p, -1);
        }
    deallocate_String_vector(&kids);
    zoo_delete(z->zh, dir, -1);
}

static void zk_queue_bound(const coord_uri *u, int consumers, bool claim, bool shared, int64_t ms,
                           raw_result *out) {
#define ZK_Q_CLAIM                                                                                 \
    "coord's requests per item: zoo_get_children(items) + zoo_get_children(claims), zoo_create "   \
    "EPHEMERAL claims/<item> + zoo_get(item), zoo_multi [check(claim, version), delete(item, "     \
    "version), delete(claim, version)]; the producer zoo_create PERSISTENT_SEQUENTIAL items/qn- "  \
    "(sync API); "
#define ZK_Q_TAKE                                                                                  \
    "coord's requests per item: zoo_get_children(items) + zoo_get_children(claims), "              \
    "zoo_get(item) + zoo_multi [create + delete of claims/<item> (absent), delete(item, "          \
    "version)]; the producer zoo_create PERSISTENT_SEQUENTIAL items/qn- (sync API); "
#define ZK_Q_SHARED                                                                                \
    "the consumers share one handle and pass over the items another is trying or took since "      \
    "their listing, as coord's consumers of one client do"
#define ZK_Q_OWN "the consumers a handle each, on their own, as coord's with --client-per-thread"
    out->method = claim ? (shared ? ZK_Q_CLAIM ZK_Q_SHARED : ZK_Q_CLAIM ZK_Q_OWN)
                        : (shared ? ZK_Q_TAKE ZK_Q_SHARED : ZK_Q_TAKE ZK_Q_OWN);
    zk_qrun *run = calloc(1, sizeof *run);
    zk_qworker *ws = calloc((size_t)consumers + 1, sizeof *ws);
    zk_conn z;
    memset(&z, 0, sizeof z);
    char suffix[64];
    snprintf(suffix, sizeof suffix, "-queue-%s%d", claim ? "claim" : "take", consumers);
    char sub[80];
    if (!run || !ws || feed_init(&run->feed)) {
        snprintf(out->err, sizeof out->err, "out of memory");
    } else if (!zk_open(&z, u, out->err, sizeof out->err)) {
        snprintf(sub, sizeof sub, "%s/items", suffix);
        if (!zk_mkdirs(&z, u, sub, run->items, sizeof run->items, out->err, sizeof out->err)) {
            snprintf(sub, sizeof sub, "%s/claims", suffix);
            zk_mkdirs(&z, u, sub, run->claims, sizeof run->claims, out->err, sizeof out->err);
        }
    }
    if (!out->err[0] && shared) zk_open(&run->sz, u, out->err, sizeof out->err);
    if (!out->err[0]) {
        run->u = u;
        run->claim = claim;
        run->shared = shared;
        for (int i = 0; i <= consumers; i++)
            ws[i].run = run;
        bench_run_threads(ws, sizeof *ws, consumers + 1, zk_qworker_main, ms, NULL, NULL, &out->r,
                          out->err, sizeof out->err);
    }
    if (z.zh && run) {
        if (run->items[0]) zk_rmdir(&z, run->items);
        if (run->claims[0]) zk_rmdir(&z, run->claims);
        if (run->items[0]) {
            *strrchr(run->items, '/') = 0;
            zoo_delete(z.zh, run->items, -1);
        }
    }
    zk_close(&z);
    if (run && run->sz.zh) zk_close(&run->sz);
    if (run) feed_destroy(&run->feed);
    free(run);
    free(ws);
}

const raw_client raw_zk_client = {
    .backend = "zookeeper",
    .lock = zk_lock_main,
    .counter = zk_counter_main,
    .contended = zk_contended,
    .election = zk_election,
    .semaphore = zk_semaphore_main,
    .reader = zk_reader_main,
    .mixed = zk_mixed,
    .kv_put = zk_kv_put_main,
    .kv_get = zk_kv_get_main,
    .kv_txn = zk_kv_txn_main,
    .watch = zk_watch,
    .queue = zk_queue_bound,
};
