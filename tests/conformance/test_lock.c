/*
 * Conformance: the lock, one body per test run against ZooKeeper and etcd on real servers.
 */
#include "testing.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A second client on the same prefix as `uri`. */
static coord_client *open_same(const char *uri) {
    coord_client *c = NULL;
    int rc = coord_client_open(&c, uri, NULL);
    if (rc) fail_msg("open %s: %s", uri, coord_last_error());
    return c;
}

/* Contenders under the lock's directory, read with the raw backend. */
static size_t contenders(coord_client *c, const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/lock/%s", coord_client_prefix(c), name);
    coord_conn *k = coord__client_conn(c);
    coord_kv *kids = NULL;
    size_t n = 0;
    int rc = k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000);
    if (rc) fail_msg("list %s: %s", dir, coord_last_error());
    coord_kv_array_free(kids, n);
    return n;
}

/* Wait (bounded) until the server shows `want` contenders. */
static void await_contenders(coord_client *c, const char *name, size_t want) {
    int64_t end = coord__now_ms() + 10000;
    size_t n;
    while ((n = contenders(c, name)) != want && coord__now_ms() < end) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (n != want) fail_msg("expected %zu contenders, server shows %zu", want, n);
}

/* ---- exclusion: 2 clients x 4 threads x 50 rounds ---- */

#define EX_THREADS 4
#define EX_ROUNDS 50

typedef struct shared {
    pthread_mutex_t mu; /* only guards the log below, never held across acquire */
    long counter;       /* deliberately non-atomic: the lock is the only protection */
    int inside;
    int overlaps;
    uint64_t tokens[2 * EX_THREADS * EX_ROUNDS];
    size_t ntokens;
    int errors;
} shared;

typedef struct worker {
    coord_client *c;
    shared *s;
} worker;

static void *exclusion_worker(void *arg) {
    worker *w = arg;
    coord_lock *l;
    if (coord_lock_new(&l, w->c, "ex")) {
        __atomic_add_fetch(&w->s->errors, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    for (int i = 0; i < EX_ROUNDS; i++) {
        if (coord_lock_acquire(l, 30000)) {
            fprintf(stderr, "acquire: %s\n", coord_last_error());
            __atomic_add_fetch(&w->s->errors, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        if (__atomic_add_fetch(&w->s->inside, 1, __ATOMIC_SEQ_CST) != 1)
            __atomic_add_fetch(&w->s->overlaps, 1, __ATOMIC_SEQ_CST);
        long v = w->s->counter;
        sched_yield();
        w->s->counter = v + 1;
        uint64_t t = 0;
        coord_lock_token(l, &t);
        w->s->tokens[w->s->ntokens++] = t; /* in acquisition order, under the lock */
        __atomic_sub_fetch(&w->s->inside, 1, __ATOMIC_SEQ_CST);
        if (coord_lock_release(l)) __atomic_add_fetch(&w->s->errors, 1, __ATOMIC_SEQ_CST);
    }
    coord_lock_free(l);
    return NULL;
}

static void exclusion(void **state) {
    char *uri;
    coord_client *c1 = coord_test_open(state, NULL, NULL, &uri);
    coord_client *c2 = open_same(uri);
    shared *s = calloc(1, sizeof *s);
    worker ws[2 * EX_THREADS];
    pthread_t th[2 * EX_THREADS];
    for (int i = 0; i < 2 * EX_THREADS; i++) {
        ws[i] = (worker){i % 2 ? c2 : c1, s};
        pthread_create(&th[i], NULL, exclusion_worker, &ws[i]);
    }
    for (int i = 0; i < 2 * EX_THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(s->errors, 0);
    assert_int_equal(s->overlaps, 0);
    assert_int_equal(s->counter, 2 * EX_THREADS * EX_ROUNDS);
    assert_int_equal(s->ntokens, 2 * EX_THREADS * EX_ROUNDS);
    for (size_t i = 1; i < s->ntokens; i++)
        if (s->tokens[i] <= s->tokens[i - 1])
            fail_msg("token %zu (%llu) not above %llu", i, (unsigned long long)s->tokens[i],
                     (unsigned long long)s->tokens[i - 1]);
    assert_int_equal(contenders(c1, "ex"), 0);
    free(s);
    coord_client_close(c1);
    coord_client_close(c2);
    free(uri);
}

/* ---- try, timeout, misuse, two handles of one client ---- */

static void try_timeout(void **state) {
    coord_client *c = coord_test_open(state, NULL, NULL, NULL);
    coord_lock *a, *b;
    uint64_t tok;
    assert_int_equal(coord_lock_new(&a, c, "tt"), 0);
    assert_int_equal(coord_lock_new(&b, c, "tt"), 0);
    assert_int_equal(coord_lock_release(a), COORD_ENOTHELD);
    assert_int_equal(coord_lock_token(a, &tok), COORD_ENOTHELD);
    assert_false(coord_lock_held(a));

    assert_int_equal(coord_lock_acquire(a, 0), 0); /* free: a try takes it */
    assert_true(coord_lock_held(a));
    assert_int_equal(coord_lock_token(a, &tok), 0);
    assert_true(tok > 0);
    assert_int_equal(coord_lock_acquire(a, 0), COORD_EINVAL); /* already held */
    /* The other handle of the same client is excluded. */
    assert_int_equal(coord_lock_acquire(b, 0), COORD_ELOCKED);
    int64_t t0 = coord__now_ms();
    assert_int_equal(coord_lock_acquire(b, 400), COORD_ETIMEDOUT);
    int64_t took = coord__now_ms() - t0;
    assert_true(took >= 400);
    assert_true(took < 400 + 2000);
    assert_false(coord_lock_held(b));
    /* Neither failed attempt left a contender behind. */
    assert_int_equal(contenders(c, "tt"), 1);

    assert_int_equal(coord_lock_release(a), 0);
    assert_false(coord_lock_held(a));
    assert_int_equal(coord_lock_release(a), COORD_ENOTHELD);
    assert_int_equal(coord_lock_acquire(b, 1000), 0);
    uint64_t tok2;
    assert_int_equal(coord_lock_token(b, &tok2), 0);
    assert_true(tok2 > tok);
    coord_lock_free(b); /* releases */
    coord_lock_free(a);
    assert_int_equal(contenders(c, "tt"), 0);
    coord_client_close(c);
}

/* ---- FIFO and no herd ---- */

#define FIFO_N 5

typedef struct fifo {
    coord_client *c;
    pthread_mutex_t mu;
    int order[FIFO_N];
    int n;
    int errors;
} fifo;

typedef struct fifo_arg {
    fifo *f;
    int idx;
    coord_lock *l;
} fifo_arg;

static void *fifo_waiter(void *arg) {
    fifo_arg *a = arg;
    if (coord_lock_acquire(a->l, 30000)) {
        __atomic_add_fetch(&a->f->errors, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    pthread_mutex_lock(&a->f->mu);
    a->f->order[a->f->n++] = a->idx;
    pthread_mutex_unlock(&a->f->mu);
    if (coord_lock_release(a->l)) __atomic_add_fetch(&a->f->errors, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void fifo_no_herd(void **state) {
    char *uri;
    coord_client *c = coord_test_open(state, NULL, NULL, &uri);
    coord_client *c2 = open_same(uri);
    fifo f = {.c = c, .n = 0};
    pthread_mutex_init(&f.mu, NULL);
    coord_lock *holder;
    assert_int_equal(coord_lock_new(&holder, c, "fifo"), 0);
    assert_int_equal(coord_lock_acquire(holder, 1000), 0);
    fifo_arg args[FIFO_N];
    pthread_t th[FIFO_N];
    for (int i = 0; i < FIFO_N; i++) {
        /* Alternate clients; queue each waiter only after the previous one is on the server. */
        args[i] = (fifo_arg){&f, i, NULL};
        assert_int_equal(coord_lock_new(&args[i].l, i % 2 ? c2 : c, "fifo"), 0);
        pthread_create(&th[i], NULL, fifo_waiter, &args[i]);
        await_contenders(c, "fifo", (size_t)i + 2);
    }
    uint64_t w0 = coord__lock_wakeups();
    assert_int_equal(coord_lock_release(holder), 0);
    for (int i = 0; i < FIFO_N; i++)
        pthread_join(th[i], NULL);
    uint64_t woken = coord__lock_wakeups() - w0;
    assert_int_equal(f.errors, 0);
    assert_int_equal(f.n, FIFO_N);
    for (int i = 0; i < FIFO_N; i++)
        assert_int_equal(f.order[i], i);
    /* Each release woke exactly the next waiter: one wake-up per hand-off, no herd. */
    assert_int_equal(woken, FIFO_N);
    for (int i = 0; i < FIFO_N; i++)
        coord_lock_free(args[i].l);
    coord_lock_free(holder);
    assert_int_equal(contenders(c, "fifo"), 0);
    pthread_mutex_destroy(&f.mu);
    coord_client_close(c2);
    coord_client_close(c);
    free(uri);
}

/* ---- session loss ---- */

typedef struct waiter_arg {
    coord_lock *l;
    int rc;
} waiter_arg;

static void *waiter(void *arg) {
    waiter_arg *w = arg;
    w->rc = coord_lock_acquire(w->l, 20000);
    return NULL;
}

static void session_loss(void **state) {
    char *uri;
    coord_test_states rec_a, rec_w;
    coord_client *a = coord_test_open(state, "session_ttl_ms=3000", &rec_a, &uri);
    coord_client *b = open_same(uri);
    coord_lock *la, *lb;
    assert_int_equal(coord_lock_new(&la, a, "sl"), 0);
    assert_int_equal(coord_lock_new(&lb, b, "sl"), 0);
    assert_int_equal(coord_lock_acquire(la, 1000), 0);

    /* A waiter whose session expires gets COORD_ESESSION. */
    coord_options o = COORD_OPTIONS_INIT;
    coord_test_states_init(&rec_w);
    o.on_session = coord_test_states_cb;
    o.payload = &rec_w;
    coord_client *wc;
    assert_int_equal(coord_client_open(&wc, uri, &o), 0);
    waiter_arg wa = {.rc = 1};
    assert_int_equal(coord_lock_new(&wa.l, wc, "sl"), 0);
    pthread_t th;
    pthread_create(&th, NULL, waiter, &wa);
    await_contenders(a, "sl", 2);
    /* waiting, not still enqueueing (a connection cut under the enqueue is EUNAVAILABLE) */
    for (int64_t end = coord__now_ms() + 10000;
         !coord__lock_waiting(wa.l) && coord__now_ms() < end;)
        nanosleep(&(struct timespec){0, 2 * 1000000L}, NULL);
    assert_true(coord__lock_waiting(wa.l));
    coord_conn *kw = coord__client_conn(wc);
    assert_int_equal(kw->backend->expire(kw), 0);
    pthread_join(th, NULL);
    assert_int_equal(wa.rc, COORD_ESESSION);
    coord_lock_free(wa.l);
    coord_client_close(wc);

    /* The holder's session expires: held turns false, LOST is reported, another acquires. */
    coord_conn *ka = coord__client_conn(a);
    assert_int_equal(ka->backend->expire(ka), 0);
    int lost = coord_test_states_wait(&rec_a, COORD_SESSION_LOST, 0, 10000);
    assert_true(lost >= 0);
    assert_false(coord_lock_held(la));
    assert_int_equal(coord_lock_acquire(lb, 10000), 0);
    assert_int_equal(coord_lock_release(la), COORD_ENOTHELD);
    /* After the new session, the stale handle can queue again behind the new holder. */
    assert_true(coord_test_states_wait(&rec_a, COORD_SESSION_CONNECTED, lost + 1, 10000) > lost);
    assert_int_equal(coord_lock_acquire(la, 0), COORD_ELOCKED);
    coord_lock_free(la);
    coord_lock_free(lb);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* A waiting acquire canceled from another thread returns COORD_ECANCELED and leaves nothing. */
static void cancel_wait(void **state) {
    char *uri;
    coord_client *a = coord_test_open(state, NULL, NULL, &uri);
    coord_client *b = open_same(uri);
    coord_lock *la;
    assert_int_equal(coord_lock_new(&la, a, "cx"), 0);
    assert_int_equal(coord_lock_acquire(la, 1000), 0);
    waiter_arg wa = {.rc = 1};
    assert_int_equal(coord_lock_new(&wa.l, b, "cx"), 0);
    pthread_t th;
    pthread_create(&th, NULL, waiter, &wa);
    await_contenders(a, "cx", 2);
    int64_t t0 = coord__now_ms();
    coord_lock_cancel(wa.l);
    pthread_join(th, NULL);
    assert_int_equal(wa.rc, COORD_ECANCELED);
    assert_true(coord__now_ms() - t0 < 5000);
    assert_int_equal(contenders(a, "cx"), 1); /* only the holder */
    assert_false(coord_lock_held(wa.l));
    /* a cancel with no acquire running makes the next one return at once */
    coord_lock_cancel(wa.l);
    assert_int_equal(coord_lock_acquire(wa.l, -1), COORD_ECANCELED);
    assert_int_equal(coord_lock_release(la), 0);
    assert_int_equal(coord_lock_acquire(wa.l, 1000), 0);
    coord_lock_cancel(NULL);
    coord_lock_free(wa.l);
    coord_lock_free(la);
    coord_client_close(b);
    coord_client_close(a);
    free(uri);
}

/* ---- etcd: interop with etcdctl lock (etcd's concurrency.Mutex) ---- */

static pid_t spawn(const char *cmd, int *out_fd, int *in_fd) {
    int o[2], i[2];
    assert_int_equal(pipe(o), 0);
    assert_int_equal(pipe(i), 0);
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        dup2(o[1], 1);
        dup2(i[0], 0);
        close(o[0]);
        close(i[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(o[1]);
    close(i[0]);
    *out_fd = o[0];
    *in_fd = i[1];
    return p;
}

/* Read a line from fd with a bound; returns 0 when `want` appeared. */
static int await_line(int fd, const char *want, int timeout_ms) {
    char buf[4096];
    size_t n = 0;
    int64_t end = coord__now_ms() + timeout_ms;
    while (coord__now_ms() < end && n + 1 < sizeof buf) {
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(fd, &rs);
        struct timeval tv = {0, 100000};
        if (select(fd + 1, &rs, NULL, NULL, &tv) <= 0) continue;
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0) return -1;
        n += (size_t)r;
        buf[n] = 0;
        if (strstr(buf, want)) return 0;
    }
    return -1;
}

static int wait_exit(pid_t p, int timeout_ms) {
    int64_t end = coord__now_ms() + timeout_ms;
    int st;
    while (coord__now_ms() < end) {
        pid_t r = waitpid(p, &st, WNOHANG);
        if (r == p) return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(p, SIGKILL);
    waitpid(p, &st, 0);
    return -1;
}

static void etcdctl_interop(void **state) {
    (void)state;
    void *st = (void *)&coord_test_etcd;
    coord_client *c = coord_test_open(&st, NULL, NULL, NULL);
    char lockname[512], cmd[1024];
    snprintf(lockname, sizeof lockname, "%s/lock/io", coord_client_prefix(c));
    const char *ep = getenv("COORD_TEST_ETCD");
    coord_lock *l;
    assert_int_equal(coord_lock_new(&l, c, "io"), 0);

    /* coord holds; etcdctl waits, and proceeds once coord releases. */
    assert_int_equal(coord_lock_acquire(l, 1000), 0);
    snprintf(cmd, sizeof cmd, "exec etcdctl --endpoints=http://%s lock %s -- echo etcdctl-in", ep,
             lockname);
    int out, in;
    pid_t p = spawn(cmd, &out, &in);
    await_contenders(c, "io", 2);
    assert_int_equal(await_line(out, "etcdctl-in", 300), -1); /* still excluded */
    assert_int_equal(coord_lock_release(l), 0);
    assert_int_equal(await_line(out, "etcdctl-in", 10000), 0);
    assert_int_equal(wait_exit(p, 10000), 0);
    close(out);
    close(in);

    /* etcdctl holds; coord is excluded, and acquires once etcdctl releases. etcdctl gives its
     * command no stdin, so the command waits on a FIFO. */
    char fifo_path[] = "/tmp/coord-lock-fifo.XXXXXX";
    assert_non_null(mkdtemp(fifo_path));
    char fifo_file[64];
    snprintf(fifo_file, sizeof fifo_file, "%s/go", fifo_path);
    assert_int_equal(mkfifo(fifo_file, 0600), 0);
    snprintf(cmd, sizeof cmd,
             "exec etcdctl --endpoints=http://%s lock %s -- sh -c 'echo etcdctl-holds; read x <%s'",
             ep, lockname, fifo_file);
    p = spawn(cmd, &out, &in);
    assert_int_equal(await_line(out, "etcdctl-holds", 10000), 0);
    assert_int_equal(coord_lock_acquire(l, 0), COORD_ELOCKED);
    int ff = open(fifo_file, O_WRONLY);
    assert_true(ff >= 0);
    assert_int_equal(write(ff, "go\n", 3), 3);
    close(ff);
    assert_int_equal(coord_lock_acquire(l, 10000), 0);
    assert_int_equal(wait_exit(p, 10000), 0);
    close(out);
    close(in);
    unlink(fifo_file);
    rmdir(fifo_path);
    coord_lock_free(l);
    coord_client_close(c);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        COORD_CONFORMANCE(try_timeout),  COORD_CONFORMANCE(exclusion),
        COORD_CONFORMANCE(fifo_no_herd), COORD_CONFORMANCE(session_loss),
        COORD_CONFORMANCE(cancel_wait),  cmocka_unit_test(etcdctl_interop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
