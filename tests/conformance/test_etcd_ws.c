/*
 * The etcd watch stream (watch=ws, docs/etcd-watch-stream.md): every watch of a client on one
 * WebSocket. Connection count with many waiting lock handles; watches created and canceled at
 * random by several threads while events flow (each event reaches its own watch, none after its
 * cancel returned); an idle stream kept (progress requests) and still delivering; an
 * authenticated client falling back to per-watch HTTP streams by itself; and, run as
 * `test_etcd_ws failover` on the 3-member cluster, the member holding the stream killed while
 * events flow.
 */
#include "testing.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd_int.h"

/* ---------- helpers ---------- */

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The URI of the single etcd (or the cluster) with watch=ws, or skip. */
static char *ws_uri(void **state, int cluster, const char *more) {
    char params[256];
    snprintf(params, sizeof params, "watch=ws%s%s", more ? "&" : "", more ? more : "");
    return coord_test_uri(state, cluster, params);
}

static coord_client *must_open(const char *uri) {
    coord_client *c = NULL;
    int rc = coord_client_open(&c, uri, NULL);
    if (rc) fail_msg("open %s: %s: %s", uri, coord_strerror(rc), coord_last_error());
    return c;
}

/* Does /proc/net/<file> list a socket of inode `ino`? */
static bool tcp_has(const char *file, unsigned long ino) {
    char path[64];
    snprintf(path, sizeof path, "/proc/net/%s", file);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[512];
    bool found = false;
    if (!fgets(line, sizeof line, f)) line[0] = 0; /* header */
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long i = 0;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %lu", &i) == 1 && i == ino)
            found = true;
    }
    fclose(f);
    return found;
}

/* TCP connections of this process: its descriptors that are sockets listed in /proc/net/tcp*
 * (socketpairs, such as libcurl's wake-up pairs, are not). */
static int tcp_connections(void) {
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char p[300], target[128];
        snprintf(p, sizeof p, "/proc/self/fd/%s", de->d_name);
        ssize_t len = readlink(p, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = 0;
        unsigned long ino;
        if (sscanf(target, "socket:[%lu]", &ino) != 1) continue;
        if (tcp_has("tcp", ino) || tcp_has("tcp6", ino)) n++;
    }
    closedir(d);
    return n;
}

/* Contenders of lock `name`, read with the raw backend. */
static size_t contenders(coord_client *c, const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/lock/%s", coord_client_prefix(c), name);
    coord_conn *k = coord__client_conn(c);
    coord_kv *kids = NULL;
    size_t n = 0;
    int rc = k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 5000);
    if (rc) fail_msg("list %s: %s", dir, coord_last_error());
    coord_kv_array_free(kids, n);
    return n;
}

/* Put `key` (full path) through the etcd connection; returns the put's revision, or 0 when the
 * outcome is unknown (a failover under way). */
static int64_t put_rev(coord_client *c, const char *key, int timeout_ms) {
    etcd *e = (etcd *)coord__client_conn(c);
    cJSON *req = cJSON_CreateObject();
    assert_non_null(etcd_add_bytes(req, "key", key, strlen(key)));
    assert_non_null(etcd_add_bytes(req, "value", "v", 1));
    cJSON *res = NULL;
    int rc = etcd_call(e, "/v3/kv/put", req, false, timeout_ms, &res);
    cJSON_Delete(req);
    int64_t rev = 0;
    if (!rc && etcd_header_rev(res, &rev)) rev = 0;
    cJSON_Delete(res);
    return rev;
}

/* ---------- connections: one client, a ring, a counter and N waiting lock handles ---------- */

typedef struct waiter {
    coord_lock *l;
    pthread_t t;
    int rc;
} waiter;

static void *wait_lock(void *arg) {
    waiter *w = arg;
    w->rc = coord_lock_acquire(w->l, 120000);
    if (w->rc == 0) coord_lock_release(w->l);
    return NULL;
}

static void connections_with(void **state, int nwait) {
    char *uri = ws_uri(state, 0, NULL);
    coord_client *c = must_open(uri);
    coord_client *holder_c = must_open(uri);
    coord_ring *r;
    assert_int_equal(coord_ring_new(&r, c, "g", NULL), 0);
    assert_int_equal(coord_ring_join(r, "m1", "x", 1, 1), 0);
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "n", NULL), 0);
    assert_int_equal(coord_counter_add(k, 1, NULL), 0);
    coord_lock *holder;
    assert_int_equal(coord_lock_new(&holder, holder_c, "L"), 0);
    assert_int_equal(coord_lock_acquire(holder, 5000), 0);

    waiter *ws = calloc((size_t)nwait, sizeof *ws);
    assert_non_null(ws);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 256 * 1024);
    for (int i = 0; i < nwait; i++) {
        assert_int_equal(coord_lock_new(&ws[i].l, c, "L"), 0);
        assert_int_equal(pthread_create(&ws[i].t, &at, wait_lock, &ws[i]), 0);
    }
    pthread_attr_destroy(&at);
    int64_t end = coord__now_ms() + 60000;
    while (contenders(holder_c, "L") < (size_t)nwait + 1 && coord__now_ms() < end)
        sleep_ms(50);
    assert_int_equal(contenders(holder_c, "L"), (size_t)nwait + 1);
    sleep_ms(500); /* every waiter's watch on the stream */
    /* The holder releases: the waiters pass the lock on one by one. */
    assert_int_equal(coord_lock_release(holder), 0);
    for (int i = 0; i < nwait; i++) {
        pthread_join(ws[i].t, NULL);
        assert_int_equal(ws[i].rc, 0);
        coord_lock_free(ws[i].l);
    }
    free(ws);
    coord_lock_free(holder);
    coord_client_close(holder_c);
    /* Now c alone, with its ring and counter, after all that traffic. */
    sleep_ms(2500);
    int64_t v;
    assert_int_equal(coord_counter_get(k, &v), 0);
    int alone = tcp_connections();
    print_message("after: %d TCP connections (one client)\n", alone);
    assert_true(alone <= 6);
    coord_counter_free(k);
    coord_ring_free(r);
    coord_client_close(c);
    free(uri);
}

/* Counted while the waiters wait, on one client alone: the holder is a child process. */
static void connections_waiting(void **state, int nwait) {
    char *uri = ws_uri(state, 0, NULL);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the holder: takes the lock, says so, holds it until told */
        close(fds[0]);
        coord_client *h = must_open(uri);
        coord_lock *l;
        if (coord_lock_new(&l, h, "W") || coord_lock_acquire(l, 5000)) _exit(1);
        if (write(fds[1], "x", 1) != 1) _exit(1);
        sleep_ms(120000);
        _exit(0);
    }
    close(fds[1]);
    char ch;
    assert_int_equal(read(fds[0], &ch, 1), 1);
    close(fds[0]);
    coord_client *c = must_open(uri);
    coord_ring *r;
    assert_int_equal(coord_ring_new(&r, c, "g", NULL), 0);
    assert_int_equal(coord_ring_join(r, "m1", "x", 1, 1), 0);
    coord_counter *k;
    assert_int_equal(coord_counter_new(&k, c, "n", NULL), 0);
    assert_int_equal(coord_counter_add(k, 1, NULL), 0);
    waiter *ws = calloc((size_t)nwait, sizeof *ws);
    assert_non_null(ws);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 256 * 1024);
    for (int i = 0; i < nwait; i++) {
        assert_int_equal(coord_lock_new(&ws[i].l, c, "W"), 0);
        assert_int_equal(pthread_create(&ws[i].t, &at, wait_lock, &ws[i]), 0);
    }
    pthread_attr_destroy(&at);
    int64_t end = coord__now_ms() + 60000;
    while (contenders(c, "W") < (size_t)nwait + 1 && coord__now_ms() < end)
        sleep_ms(50);
    assert_int_equal(contenders(c, "W"), (size_t)nwait + 1);
    /* The burst of acquires left idle connections in the pool: those unused for a while go
     * at the next request (a lease renewal, or this read). */
    sleep_ms(2500);
    int64_t v;
    assert_int_equal(coord_counter_get(k, &v), 0);
    int n = tcp_connections();
    print_message("%d waiting lock handles, a ring and a counter: %d TCP connections\n", nwait, n);
    /* The holder goes (its lease revoked by its death after the TTL: kill and let the waiters
     * give up instead, which is quicker). */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < nwait; i++)
        coord_lock_cancel(ws[i].l);
    for (int i = 0; i < nwait; i++) {
        pthread_join(ws[i].t, NULL);
        coord_lock_free(ws[i].l);
    }
    free(ws);
    coord_counter_free(k);
    coord_ring_free(r);
    coord_client_close(c);
    free(uri);
    assert_true(n <= 6);
}

static void connections_32(void **state) {
    connections_waiting(state, 32);
}
static void connections_500(void **state) {
    connections_waiting(state, 500);
}
static void connections_handoff(void **state) {
    connections_with(state, 32);
}

/* ---------- churn: watches created and canceled at random by 8 threads ---------- */

#define CH_KEYS 16
#define CH_THREADS 8
#define CH_WATCHES 200 /* in all */
#define CH_LOG 20000

typedef struct churn churn;
typedef struct cwatch {
    churn *ch;
    int key;
    coord_watch *w;
    _Atomic bool done; /* its unwatch returned */
    _Atomic int events, late;
} cwatch;

struct churn {
    coord_client *c;
    char keys[CH_KEYS][256];
    cwatch watches[CH_WATCHES];
    _Atomic int next;
    pthread_mutex_t mu;
    int64_t log_rev[CH_LOG]; /* delivered revisions and the key of the watch they reached */
    int log_key[CH_LOG];
    int nlog;
    int64_t put_rev[CH_LOG]; /* acknowledged puts */
    int put_key[CH_LOG];
    int nput;
    _Atomic bool stop;
};

static void churn_event(void *payload, coord_watch_event ev, int64_t rev) {
    cwatch *w = payload;
    if (atomic_load(&w->done)) atomic_fetch_add(&w->late, 1);
    if (ev != COORD_EV_CHANGED) return;
    atomic_fetch_add(&w->events, 1);
    pthread_mutex_lock(&w->ch->mu);
    if (w->ch->nlog < CH_LOG) {
        w->ch->log_rev[w->ch->nlog] = rev;
        w->ch->log_key[w->ch->nlog++] = w->key;
    }
    pthread_mutex_unlock(&w->ch->mu);
}

static void *churn_writer(void *arg) {
    churn *ch = arg;
    unsigned seed = 7;
    while (!atomic_load(&ch->stop)) {
        int key = (int)(rand_r(&seed) % CH_KEYS);
        int64_t rev = put_rev(ch->c, ch->keys[key], 5000);
        pthread_mutex_lock(&ch->mu);
        if (rev && ch->nput < CH_LOG) {
            ch->put_rev[ch->nput] = rev;
            ch->put_key[ch->nput++] = key;
        }
        pthread_mutex_unlock(&ch->mu);
        sleep_ms(2);
    }
    return NULL;
}

static void *churn_thread(void *arg) {
    churn *ch = arg;
    coord_conn *k = coord__client_conn(ch->c);
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    cwatch *live[8];
    int nlive = 0;
    while (1) {
        bool create = nlive == 0 || (nlive < 8 && rand_r(&seed) % 2);
        if (create) {
            int i = atomic_fetch_add(&ch->next, 1);
            if (i >= CH_WATCHES) break;
            cwatch *w = &ch->watches[i];
            w->ch = ch;
            w->key = (int)(rand_r(&seed) % CH_KEYS);
            int rc =
                k->backend->watch(k, ch->keys[w->key], COORD_WATCH_DATA, 0, churn_event, w, &w->w);
            if (rc) fail_msg("watch: %s", coord_last_error());
            live[nlive++] = w;
        } else {
            int j = (int)(rand_r(&seed) % (unsigned)nlive);
            cwatch *w = live[j];
            live[j] = live[--nlive];
            k->backend->unwatch(k, w->w);
            atomic_store(&w->done, true);
        }
        sleep_ms((int)(rand_r(&seed) % 20));
    }
    while (nlive) {
        cwatch *w = live[--nlive];
        k->backend->unwatch(k, w->w);
        atomic_store(&w->done, true);
    }
    return NULL;
}

static void churn_test(void **state) {
    char *uri = ws_uri(state, 0, NULL);
    churn *ch = calloc(1, sizeof *ch);
    assert_non_null(ch);
    ch->c = must_open(uri);
    pthread_mutex_init(&ch->mu, NULL);
    for (int i = 0; i < CH_KEYS; i++)
        snprintf(ch->keys[i], sizeof ch->keys[i], "%s/churn/k%d", coord_client_prefix(ch->c), i);
    pthread_t wr, th[CH_THREADS];
    assert_int_equal(pthread_create(&wr, NULL, churn_writer, ch), 0);
    for (int i = 0; i < CH_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn_thread, ch), 0);
    for (int i = 0; i < CH_THREADS; i++)
        pthread_join(th[i], NULL);
    sleep_ms(200);
    atomic_store(&ch->stop, true);
    pthread_join(wr, NULL);
    /* Every delivered revision is a put on the key of the watch it reached. */
    int total = 0;
    for (int i = 0; i < ch->nlog; i++) {
        bool own = false;
        for (int j = 0; j < ch->nput && !own; j++)
            own = ch->put_rev[j] == ch->log_rev[i] && ch->put_key[j] == ch->log_key[i];
        if (!own)
            fail_msg("revision %lld reached a watch on k%d, where no put made it",
                     (long long)ch->log_rev[i], ch->log_key[i]);
    }
    for (int i = 0; i < CH_WATCHES; i++) {
        assert_int_equal(atomic_load(&ch->watches[i].late), 0);
        total += atomic_load(&ch->watches[i].events);
    }
    print_message("%d puts, %d events delivered to %d watches\n", ch->nput, total, CH_WATCHES);
    assert_true(total > 0);
    coord_client_close(ch->c);
    pthread_mutex_destroy(&ch->mu);
    free(ch);
    free(uri);
}

/* ---------- an idle stream stays and still delivers ---------- */

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int64_t last;
} counter;

static void count_event(void *payload, coord_watch_event ev, int64_t rev) {
    counter *x = payload;
    pthread_mutex_lock(&x->mu);
    if (ev == COORD_EV_CHANGED) {
        x->n++;
        x->last = rev;
    }
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

static bool await_rev(counter *x, int64_t rev, int ms) {
    struct timespec dl = coord__deadline(ms);
    pthread_mutex_lock(&x->mu);
    while (x->last < rev)
        if (pthread_cond_timedwait(&x->cv, &x->mu, &dl)) break;
    bool ok = x->last >= rev;
    pthread_mutex_unlock(&x->mu);
    return ok;
}

static void idle_stream(void **state) {
    char *uri = ws_uri(state, 0, NULL);
    coord_client *c = must_open(uri);
    coord_conn *k = coord__client_conn(c);
    etcd *e = (etcd *)k;
    char key[256];
    snprintf(key, sizeof key, "%s/idle", coord_client_prefix(c));
    counter x = {.n = 0};
    pthread_mutex_init(&x.mu, NULL);
    coord__cond_init(&x.cv);
    coord_watch *w;
    assert_int_equal(k->backend->watch(k, key, COORD_WATCH_DATA, 0, count_event, &x, &w), 0);
    int64_t r1 = put_rev(c, key, 3000);
    assert_true(await_rev(&x, r1, 3000));
    int member = atomic_load(&e->ws_member);
    assert_true(member >= 0);
    /* Longer than the probe's idle time and wait together: the stream answers its progress
     * requests and stays; a change after the silence still arrives. */
    sleep_ms(7000);
    assert_int_equal(atomic_load(&e->ws_member), member);
    int64_t r2 = put_rev(c, key, 3000);
    assert_true(await_rev(&x, r2, 3000));
    k->backend->unwatch(k, w);
    coord_client_close(c);
    pthread_mutex_destroy(&x.mu);
    pthread_cond_destroy(&x.cv);
    free(uri);
}

/* ---------- compaction: a watch resumed from a compacted revision reports RESET ---------- */

typedef struct resets {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int reset, changed;
    int64_t last;
} resets;

static void reset_event(void *payload, coord_watch_event ev, int64_t rev) {
    resets *x = payload;
    pthread_mutex_lock(&x->mu);
    if (ev == COORD_EV_RESET) x->reset++;
    if (ev == COORD_EV_CHANGED) {
        x->changed++;
        x->last = rev;
    }
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

static void compacted(void **state) {
    char *uri = ws_uri(state, 0, NULL);
    coord_client *c = must_open(uri);
    coord_conn *k = coord__client_conn(c);
    char key[256];
    snprintf(key, sizeof key, "%s/compact", coord_client_prefix(c));
    int64_t r1 = put_rev(c, key, 3000), r2 = 0;
    for (int i = 0; i < 3; i++)
        r2 = put_rev(c, key, 3000);
    assert_true(r1 > 0 && r2 > r1 + 1);
    cJSON *req = cJSON_CreateObject(), *res = NULL;
    cJSON_AddNumberToObject(req, "revision", (double)r2);
    assert_int_equal(etcd_call((etcd *)k, "/v3/kv/compaction", req, true, 5000, &res), 0);
    cJSON_Delete(req);
    cJSON_Delete(res);
    resets x = {.reset = 0};
    pthread_mutex_init(&x.mu, NULL);
    coord__cond_init(&x.cv);
    coord_watch *w;
    /* from r1: history up to r2 is gone */
    assert_int_equal(k->backend->watch(k, key, COORD_WATCH_DATA, r1, reset_event, &x, &w), 0);
    struct timespec dl = coord__deadline(5000);
    pthread_mutex_lock(&x.mu);
    while (!x.reset && pthread_cond_timedwait(&x.cv, &x.mu, &dl) == 0) {
    }
    pthread_mutex_unlock(&x.mu);
    assert_int_equal(x.reset, 1);
    /* and goes on from there */
    int64_t r3 = put_rev(c, key, 3000);
    dl = coord__deadline(5000);
    pthread_mutex_lock(&x.mu);
    while (x.last < r3 && pthread_cond_timedwait(&x.cv, &x.mu, &dl) == 0) {
    }
    assert_true(x.last >= r3);
    assert_int_equal(x.reset, 1);
    pthread_mutex_unlock(&x.mu);
    k->backend->unwatch(k, w);
    coord_client_close(c);
    pthread_mutex_destroy(&x.mu);
    pthread_cond_destroy(&x.cv);
    free(uri);
}

/* ---------- the URI parameter ---------- */

static void watch_param(void **state) {
    char *base = coord_test_uri(state, 0, "watch=bogus");
    coord_client *c = NULL;
    assert_int_equal(coord_client_open(&c, base, NULL), COORD_EINVAL);
    free(base);
    const char *modes[] = {"watch=http", "watch=ws"};
    for (int i = 0; i < 2; i++) {
        char *uri = coord_test_uri(state, 0, modes[i]);
        c = must_open(uri);
        etcd *e = (etcd *)coord__client_conn(c);
        assert_int_equal(e->ws_mode, i == 1);
        coord_client_close(c);
        free(uri);
    }
}

/* ---------- authenticated: the gateway does not pass the token on; fall back ---------- */

typedef struct acq {
    coord_lock *l;
    int rc;
} acq;

static void *acquire_thread(void *arg) {
    acq *a = arg;
    a->rc = coord_lock_acquire(a->l, 15000);
    return NULL;
}

static void auth_fallback(void **state) {
    (void)state;
    const char *hosts = getenv("COORD_TEST_ETCD_AUTH");
    if (!hosts || !*hosts) skip();
    char uri[512];
    snprintf(uri, sizeof uri, "etcd://alice:alicepw@%s/coordtest/ws%ld?watch=ws", hosts,
             (long)getpid());
    coord_client *a = must_open(uri), *b = must_open(uri);
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "L"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "L"), 0);
    assert_int_equal(coord_lock_acquire(la, 5000), 0);
    acq x = {lb, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acquire_thread, &x), 0);
    sleep_ms(1500); /* b waits on a watch: refused on the stream, then on its own HTTP stream */
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_lock_release(la), 0);
    pthread_join(t, NULL);
    assert_int_equal(x.rc, 0);
    print_message("hand-off through the fallback in %lld ms\n", (long long)(coord__now_ms() - t0));
    assert_true(coord__now_ms() - t0 < 5000);
    etcd *e = (etcd *)coord__client_conn(b);
    (void)e; /* ws_mode belongs to the watch thread: the hand-off is the evidence */
    assert_int_equal(coord_lock_release(lb), 0);
    coord_lock_free(la);
    coord_lock_free(lb);
    coord_client_close(a);
    coord_client_close(b);
}

/* ---------- TLS: the stream over wss, libcurl's TLS with the client certificate ---------- */

static void tls_stream(void **state) {
    (void)state;
    const char *hosts = getenv("COORD_TEST_ETCD_TLS"), *d = getenv("COORD_TEST_TLS_DIR");
    if (!hosts || !*hosts || !d || !*d) skip();
    char uri[1024];
    snprintf(uri, sizeof uri,
             "etcds://%s/coordtest/ws%ld?watch=ws&connect_timeout_ms=15000&ca=%s/ca.pem"
             "&cert=%s/client.pem&key=%s/client.key",
             hosts, (long)getpid(), d, d, d);
    coord_client *c = must_open(uri);
    coord_conn *k = coord__client_conn(c);
    etcd *e = (etcd *)k;
    char key[256];
    snprintf(key, sizeof key, "%s/tls", coord_client_prefix(c));
    counter x = {.n = 0};
    pthread_mutex_init(&x.mu, NULL);
    coord__cond_init(&x.cv);
    coord_watch *w;
    assert_int_equal(k->backend->watch(k, key, COORD_WATCH_DATA, 0, count_event, &x, &w), 0);
    for (int i = 0; i < 5; i++) {
        int64_t r = put_rev(c, key, 5000);
        assert_true(r > 0);
        assert_true(await_rev(&x, r, 5000));
    }
    assert_true(atomic_load(&e->ws_member) >= 0); /* on the stream, not a fallback */
    k->backend->unwatch(k, w);
    coord_client_close(c);
    pthread_mutex_destroy(&x.mu);
    pthread_cond_destroy(&x.cv);
}

/* ---------- failover: the member holding the stream is killed ---------- */

#define FO_KEYS 20

typedef struct fo {
    coord_client *w; /* the writer, its own client */
    char keys[FO_KEYS][256];
    counter x[FO_KEYS];
    int64_t seen[FO_KEYS][4096]; /* delivered revisions per watch */
    int nseen[FO_KEYS];
    int64_t acked[FO_KEYS];
    _Atomic bool stop;
    _Atomic int puts;
} fo;

typedef struct fo_arg {
    fo *f;
    int i;
} fo_arg;

static void fo_event(void *payload, coord_watch_event ev, int64_t rev) {
    fo_arg *a = payload;
    fo *f = a->f;
    if (ev == COORD_EV_CHANGED && f->nseen[a->i] < 4096) f->seen[a->i][f->nseen[a->i]++] = rev;
    count_event(&f->x[a->i], ev, rev);
}

static void *fo_writer(void *arg) {
    fo *f = arg;
    for (int n = 0; !atomic_load(&f->stop); n++) {
        int i = n % FO_KEYS;
        int64_t rev = put_rev(f->w, f->keys[i], 3000);
        if (rev) {
            pthread_mutex_lock(&f->x[i].mu);
            if (rev > f->acked[i]) f->acked[i] = rev;
            pthread_mutex_unlock(&f->x[i].mu);
            atomic_fetch_add(&f->puts, 1);
        }
        sleep_ms(5);
    }
    return NULL;
}

static void failover(void **state) {
    char *uri = ws_uri(state, 1, "session_ttl_ms=8000&timeout_ms=3000");
    fo *f = calloc(1, sizeof *f);
    assert_non_null(f);
    coord_client *c = must_open(uri);
    f->w = must_open(uri);
    coord_conn *k = coord__client_conn(c);
    etcd *e = (etcd *)k;
    coord_watch *ws[FO_KEYS];
    fo_arg args[FO_KEYS];
    for (int i = 0; i < FO_KEYS; i++) {
        snprintf(f->keys[i], sizeof f->keys[i], "%s/fo/k%d", coord_client_prefix(c), i);
        pthread_mutex_init(&f->x[i].mu, NULL);
        coord__cond_init(&f->x[i].cv);
        args[i] = (fo_arg){f, i};
        assert_int_equal(
            k->backend->watch(k, f->keys[i], COORD_WATCH_DATA, 0, fo_event, &args[i], &ws[i]), 0);
    }
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fo_writer, f), 0);
    int64_t end = coord__now_ms() + 10000;
    while (atomic_load(&e->ws_member) < 0 && coord__now_ms() < end)
        sleep_ms(20);
    int member = atomic_load(&e->ws_member);
    assert_true(member >= 0);
    sleep_ms(500);
    char num[16];
    snprintf(num, sizeof num, "%d", member + 1);
    coord_test_servers("kill", "etcd", num);
    sleep_ms(3000);
    int moved = atomic_load(&e->ws_member);
    print_message("stream on member %d, killed; now on %d; %d puts so far\n", member + 1, moved + 1,
                  atomic_load(&f->puts));
    atomic_store(&f->stop, true);
    pthread_join(t, NULL);
    /* Every watch delivers its key's last acknowledged put, and its revisions went up
     * without a repeat. */
    for (int i = 0; i < FO_KEYS; i++) {
        pthread_mutex_lock(&f->x[i].mu);
        int64_t want = f->acked[i];
        pthread_mutex_unlock(&f->x[i].mu);
        if (!await_rev(&f->x[i], want, 10000))
            fail_msg("watch %d: last acknowledged put %lld not delivered (last %lld)", i,
                     (long long)want, (long long)f->x[i].last);
    }
    for (int i = 0; i < FO_KEYS; i++) {
        k->backend->unwatch(k, ws[i]);
        for (int j = 1; j < f->nseen[i]; j++)
            if (f->seen[i][j] <= f->seen[i][j - 1])
                fail_msg("watch %d: revision %lld after %lld", i, (long long)f->seen[i][j],
                         (long long)f->seen[i][j - 1]);
        pthread_mutex_destroy(&f->x[i].mu);
        pthread_cond_destroy(&f->x[i].cv);
    }
    assert_true(moved >= 0 && moved != member);
    coord_client_close(f->w);
    coord_client_close(c);
    coord_test_servers("restart", "etcd", num);
    free(f);
    free(uri);
}

/* The member holding the stream is paused (accepts connections, answers nothing): the probe
 * notices, the stream moves, events flow again; an unwatch meanwhile does not wait for it. */
static void paused(void **state) {
    char *uri = ws_uri(state, 1, "session_ttl_ms=15000&timeout_ms=3000");
    coord_client *c = must_open(uri), *wc = must_open(uri);
    coord_conn *k = coord__client_conn(c);
    etcd *e = (etcd *)k;
    char key[256], other[256];
    snprintf(key, sizeof key, "%s/paused", coord_client_prefix(c));
    snprintf(other, sizeof other, "%s/paused-other", coord_client_prefix(c));
    counter x = {.n = 0}, y = {.n = 0};
    pthread_mutex_init(&x.mu, NULL);
    coord__cond_init(&x.cv);
    pthread_mutex_init(&y.mu, NULL);
    coord__cond_init(&y.cv);
    coord_watch *w, *w2;
    assert_int_equal(k->backend->watch(k, key, COORD_WATCH_DATA, 0, count_event, &x, &w), 0);
    assert_int_equal(k->backend->watch(k, other, COORD_WATCH_DATA, 0, count_event, &y, &w2), 0);
    int64_t r = put_rev(wc, key, 5000);
    assert_true(r > 0 && await_rev(&x, r, 5000));
    int member = atomic_load(&e->ws_member);
    assert_true(member >= 0);
    char num[16];
    snprintf(num, sizeof num, "%d", member + 1);
    coord_test_servers("pause", "etcd", num);
    sleep_ms(1000);
    int64_t t0 = coord__now_ms();
    k->backend->unwatch(k, w2);
    int64_t took = coord__now_ms() - t0;
    /* a put through the writer's failover, delivered once the stream moved */
    int64_t r2 = 0;
    for (int i = 0; i < 5 && !r2; i++)
        r2 = put_rev(wc, key, 5000);
    bool got = r2 > 0 && await_rev(&x, r2, 20000);
    int moved = atomic_load(&e->ws_member);
    coord_test_servers("resume", "etcd", num);
    print_message("unwatch took %lld ms; stream on %d, then %d\n", (long long)took, member + 1,
                  moved + 1);
    assert_true(took < 1500);
    assert_true(got);
    assert_true(moved >= 0 && moved != member);
    k->backend->unwatch(k, w);
    coord_client_close(wc);
    coord_client_close(c);
    pthread_mutex_destroy(&x.mu);
    pthread_cond_destroy(&x.cv);
    pthread_mutex_destroy(&y.mu);
    pthread_cond_destroy(&y.cv);
    free(uri);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "failover") == 0) {
        const struct CMUnitTest cluster[] = {
            cmocka_unit_test_prestate(failover, (void *)&coord_test_etcd),
            cmocka_unit_test_prestate(paused, (void *)&coord_test_etcd),
        };
        return cmocka_run_group_tests_name("etcd_ws_failover", cluster, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(watch_param, (void *)&coord_test_etcd),
        cmocka_unit_test_prestate(connections_32, (void *)&coord_test_etcd),
        cmocka_unit_test_prestate(connections_500, (void *)&coord_test_etcd),
        cmocka_unit_test_prestate(connections_handoff, (void *)&coord_test_etcd),
        cmocka_unit_test_prestate(churn_test, (void *)&coord_test_etcd),
        cmocka_unit_test_prestate(idle_stream, (void *)&coord_test_etcd),
        cmocka_unit_test_prestate(compacted, (void *)&coord_test_etcd),
        cmocka_unit_test_prestate(auth_fallback, NULL),
        cmocka_unit_test_prestate(tls_stream, NULL),
    };
    return cmocka_run_group_tests_name("etcd_ws", tests, NULL, NULL);
}
