/*
 * Conformance: coord's lock, election, sync recipes, work queue and key-value space against the
 * other clients of the same servers, run as real processes on the paths coord uses.
 *
 *   ZooKeeper  Apache Curator (Debian's libcurator-recipes-java), through the Java program
 *              tests/interop/CuratorHarness.java, which this test compiles with javac into
 *              <build>/tests/interop (again only when the source is newer): InterProcessMutex
 *              against coord's lock, LeaderLatch against coord's election,
 *              InterProcessSemaphoreV2 against coord's semaphore (same limit: never more holders
 *              together), InterProcessReadWriteLock against coord's rwlock (writers exclude,
 *              readers share, a queued writer holds later readers back), DistributedBarrier
 *              against coord's barrier, all both ways; SimpleDistributedQueue against coord's
 *              work queue (either side puts, either side takes, in one FIFO order; claims are
 *              coord's alone and only checked among coord's takers); plain znodes (create with
 *              parents, setData, getData, delete) against coord's key-value space, its values
 *              byte for byte and its watch.
 *              kazoo's Election (python3-kazoo), through tests/interop/kazoo_election.py, and
 *              kazoo's DoubleBarrier against coord's double barrier (Debian's Curator 5.4 has
 *              apache/curator GH-1290, a timed enter passing with one member), through
 *              tests/interop/kazoo_dbarrier.py.
 *   etcd       `etcdctl elect` (etcd's concurrency.Election) and `etcdctl elect -l`;
 *              `etcdctl put|get|del` against coord's key-value space and its watch, and on the
 *              work queue's keys (the etcd recipe's "<UnixNano>" names, taken by coord in
 *              create-revision order) and claims.
 *
 * On coord's side a candidate handle checks campaign order (try: COORD_ELOCKED behind a peer;
 * a waiting campaign wins when the peer steps down), coord_election_leader (the peer's value)
 * and terms (increasing across the hand-overs); an observing handle's on_leader must report
 * every leader, the peers' included, and "none" at the end. kazoo's plain Election ignores
 * coord's "-latch-" nodes (RECIPES.md 2.6): what it does while coord leads is only reported
 * on stderr; with extra_lock_patterns it must wait behind coord.
 *
 * The peers print one event a line; the test waits for lines with a bound, and every process it
 * starts (in its own process group) is killed in the teardown, also when a check failed. A peer
 * that is missing (javac, the Curator jars, kazoo, etcdctl) fails the test with the package to
 * install (scripts/deps.sh installs them all). Environment overrides: COORD_TEST_JAVA,
 * COORD_TEST_JAVAC, COORD_TEST_CURATOR_CP (the classpath), COORD_TEST_PYTHON (a python3 that can
 * import kazoo; default /usr/bin/python3, Debian's), COORD_TEST_ETCDCTL.
 */
#include "testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef COORD_INTEROP_SRC
#error "COORD_INTEROP_SRC (tests/interop) must be defined by the build"
#endif
#ifndef COORD_INTEROP_OUT
#error "COORD_INTEROP_OUT (the classes' directory in the build tree) must be defined by the build"
#endif

/* Debian's jars (libcurator-recipes-java and what it depends on); slf4j-nop silences logging. */
#define CURATOR_CP                                                                                 \
    "/usr/share/java/curator-recipes.jar:/usr/share/java/curator-framework.jar:"                   \
    "/usr/share/java/curator-client.jar:/usr/share/java/zookeeper.jar:"                            \
    "/usr/share/java/zookeeper-jute.jar:/usr/share/java/guava.jar:"                                \
    "/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-nop.jar"

/* The session timeout CuratorHarness asks for (its sessionTimeoutMs). */
#define CURATOR_SESSION_MS 6000
/* A bound on every wait for a peer's line (JVM start and Curator's connect included). */
#define WAIT_MS 20000
/* How long a peer is watched to stay excluded (not print the line it would print if it led). */
#define QUIET_MS 700

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- peer processes ---- */

typedef struct peer {
    const char *what; /* for messages */
    pid_t pid;        /* also its process group; 0 when not running */
    int in, out;      /* its stdin (ours to write), its stdout (ours to read); -1 when closed */
    char buf[16384];  /* what it printed */
    size_t len, pos;  /* bytes in buf; start of the first line not yet consumed */
    bool eof;
} peer;

#define MAX_PEERS 8
static peer peers[MAX_PEERS];

/* Start argv[0] with argv (PATH searched) as a peer: own process group, stdin and stdout pipes to
 * us, stderr inherited, a watchdog bound for the harnesses. */
static peer *peer_start(const char *what, char *const argv[]) {
    peer *p = NULL;
    for (int i = 0; i < MAX_PEERS && !p; i++)
        if (!peers[i].pid) p = &peers[i];
    if (!p) fail_msg("too many peers");
    int o[2], in[2];
    assert_int_equal(pipe(o), 0);
    assert_int_equal(pipe(in), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        dup2(o[1], 1);
        dup2(in[0], 0);
        close(o[0]);
        close(o[1]);
        close(in[0]);
        close(in[1]);
        /* only async-signal-safe calls here: the parent has threads */
        execvp(argv[0], argv);
        static const char msg[] = "test_interop: cannot run ";
        if (write(2, msg, sizeof msg - 1) > 0 && write(2, argv[0], strlen(argv[0])) > 0)
            (void)!write(2, "\n", 1);
        _exit(127);
    }
    setpgid(pid, pid);
    close(o[1]);
    close(in[0]);
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    fcntl(o[0], F_SETFD, FD_CLOEXEC);
    memset(p, 0, sizeof *p);
    *p = (peer){.what = what, .pid = pid, .in = in[1], .out = o[0]};
    return p;
}

/* Whether `line` is the event `want`: equal to it, or `want` followed by a space and more. */
static bool is_event(const char *line, const char *want) {
    size_t n = strlen(want);
    return strncmp(line, want, n) == 0 && (line[n] == 0 || line[n] == ' ');
}

/*
 * Wait up to timeout_ms for the event `want` among the peer's lines not yet consumed. With
 * `consume`, the lines up to and including it are consumed and the line is copied to `line`
 * (may be NULL). Returns 0 when found, -1 otherwise. A line "error ..." fails the test.
 */
static int peer_scan(peer *p, const char *want, int timeout_ms, bool consume, char *line,
                     size_t cap) {
    int64_t end = coord__now_ms() + timeout_ms;
    size_t at = p->pos;
    for (;;) {
        char *nl;
        while ((nl = memchr(p->buf + at, '\n', p->len - at))) {
            *nl = 0;
            const char *l = p->buf + at;
            if (is_event(l, "error")) fail_msg("%s: %s", p->what, l);
            bool hit = is_event(l, want);
            if (hit && line) snprintf(line, cap, "%s", l);
            *nl = '\n';
            at = (size_t)(nl - p->buf) + 1;
            if (hit) {
                if (consume) p->pos = at;
                return 0;
            }
        }
        int64_t left = end - coord__now_ms();
        if (left <= 0 || p->eof) return -1;
        if (p->len == sizeof p->buf - 1) { /* keep the unconsumed tail only */
            memmove(p->buf, p->buf + p->pos, p->len - p->pos);
            p->len -= p->pos;
            at -= p->pos;
            p->pos = 0;
            if (p->len == sizeof p->buf - 1) fail_msg("%s: a line too long", p->what);
        }
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(p->out, &rs);
        struct timeval tv = {0, (left > 100 ? 100 : left) * 1000};
        if (select(p->out + 1, &rs, NULL, NULL, &tv) <= 0) continue;
        ssize_t r = read(p->out, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (r <= 0)
            p->eof = true;
        else
            p->len += (size_t)r;
    }
}

/* The peer prints `want` within WAIT_MS (consumed, with the lines before it). */
static void expect_line(peer *p, const char *want, char *line, size_t cap) {
    if (peer_scan(p, want, WAIT_MS, true, line, cap))
        fail_msg("%s did not print \"%s\" within %d ms (printed: %.*s)", p->what, want, WAIT_MS,
                 (int)(p->len - p->pos), p->buf + p->pos);
}
#define EXPECT(p, want) expect_line(p, want, NULL, 0)

/* The peer does not print `want` for ms milliseconds (nothing consumed). */
static void expect_quiet(peer *p, const char *want, int ms) {
    if (!peer_scan(p, want, ms, false, NULL, 0))
        fail_msg("%s printed \"%s\" while it should have been excluded", p->what, want);
}

static void peer_say(peer *p, const char *line) {
    size_t n = strlen(line);
    assert_int_equal(write(p->in, line, n), (ssize_t)n);
    assert_int_equal(write(p->in, "\n", 1), 1);
}

static void peer_close_stdin(peer *p) {
    if (p->in >= 0) close(p->in);
    p->in = -1;
}

/* Wait (bounded) for the peer to exit; its exit status, or -1 when it had to be killed. */
static int peer_wait(peer *p, int timeout_ms) {
    int64_t end = coord__now_ms() + timeout_ms;
    int st = 0, rc = -1;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (coord__now_ms() >= end) {
            kill(-p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            break;
        }
        sleep_ms(20);
    }
    kill(-p->pid, SIGKILL); /* whatever it left in its group */
    peer_close_stdin(p);
    if (p->out >= 0) close(p->out);
    p->out = -1;
    p->pid = 0;
    return rc;
}

static void peers_kill_all(void) {
    for (int i = 0; i < MAX_PEERS; i++)
        if (peers[i].pid) {
            kill(-peers[i].pid, SIGKILL);
            peer_wait(&peers[i], 5000);
        }
}

/* Run a command to its end with a bound (javac); its exit status, -1 on timeout. */
static int run_cmd(char *const argv[], int timeout_ms) {
    peer *p = peer_start(argv[0], argv);
    peer_close_stdin(p);
    return peer_wait(p, timeout_ms);
}

/* ---- the peers' programs ---- */

static bool have_file(const char *path) {
    return access(path, R_OK) == 0;
}

/* The classpath with the harness's classes; compiles them when missing or older than the
 * source. Fails the test with what to install when javac or a jar is missing. */
static const char *curator_cp(void) {
    static char cp[4096];
    if (*cp) return cp;
    const char *jars = env_or("COORD_TEST_CURATOR_CP", CURATOR_CP);
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", jars);
    for (char *save = NULL, *j = strtok_r(copy, ":", &save); j; j = strtok_r(NULL, ":", &save))
        if (!have_file(j))
            fail_msg("%s is missing: install libcurator-recipes-java (scripts/deps.sh)", j);
    const char *src = COORD_INTEROP_SRC "/CuratorHarness.java";
    const char *cls = COORD_INTEROP_OUT "/CuratorHarness.class";
    struct stat s, c;
    if (stat(src, &s)) fail_msg("%s: %s", src, strerror(errno));
    if (stat(cls, &c) || c.st_mtime < s.st_mtime) {
        const char *javac = env_or("COORD_TEST_JAVAC", "javac");
        /* compiled into a fresh directory, then moved into place file by file */
        char tmp[] = COORD_INTEROP_OUT "/.javac.XXXXXX";
        if (mkdir(COORD_INTEROP_OUT, 0755) && errno != EEXIST)
            fail_msg("mkdir %s: %s", COORD_INTEROP_OUT, strerror(errno));
        if (!mkdtemp(tmp)) fail_msg("mkdtemp %s: %s", tmp, strerror(errno));
        char *argv[] = {(char *)javac, "-nowarn",    "-Xlint:none", "-d", tmp,
                        "-cp",         (char *)jars, (char *)src,   NULL};
        int rc = run_cmd(argv, 120000);
        DIR *d = opendir(tmp);
        struct dirent *de;
        while (d && (de = readdir(d))) { /* the inner classes first, CuratorHarness.class last */
            if (*de->d_name == '.' || !strcmp(de->d_name, "CuratorHarness.class")) continue;
            char from[512], to[512];
            snprintf(from, sizeof from, "%s/%s", tmp, de->d_name);
            snprintf(to, sizeof to, "%s/%s", COORD_INTEROP_OUT, de->d_name);
            if (rc == 0 && rename(from, to)) rc = -2;
            unlink(from);
        }
        if (d) closedir(d);
        char from[512];
        snprintf(from, sizeof from, "%s/CuratorHarness.class", tmp);
        if (rc == 0 && rename(from, cls)) rc = -2;
        unlink(from);
        rmdir(tmp);
        if (rc == 127)
            fail_msg("%s not found: install default-jdk-headless (scripts/deps.sh)", javac);
        if (rc) fail_msg("javac of %s failed (%d)", src, rc);
    }
    snprintf(cp, sizeof cp, "%s:%s", COORD_INTEROP_OUT, jars);
    return cp;
}

/* CuratorHarness SUB CONNECT PATH [ARG [ARG2]] (see tests/interop/CuratorHarness.java). */
static peer *curator2(const char *sub, const char *hosts, const char *path, const char *arg,
                      const char *arg2) {
    const char *cp = curator_cp();
    char *argv[] = {(char *)env_or("COORD_TEST_JAVA", "java"),
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-Xmx64m",
                    "-cp",
                    (char *)cp,
                    "CuratorHarness",
                    (char *)sub,
                    (char *)hosts,
                    (char *)path,
                    (char *)arg,
                    (char *)arg2,
                    NULL};
    peer *p = peer_start("Curator", argv);
    if (peer_scan(p, "connected", WAIT_MS, true, NULL, 0))
        fail_msg("CuratorHarness did not connect to %s (is java installed? scripts/deps.sh)",
                 hosts);
    return p;
}

/* The python3 that runs the kazoo peers; fails the test when it cannot import kazoo. */
static const char *kazoo_python(void) {
    const char *py = env_or("COORD_TEST_PYTHON", "/usr/bin/python3");
    char check[512];
    snprintf(check, sizeof check, "'%s' -c 'import kazoo' 2>/dev/null", py);
    if (system(check) != 0)
        fail_msg("%s cannot import kazoo: install python3-kazoo (scripts/deps.sh)", py);
    return py;
}

/* kazoo_dbarrier.py CONNECT PATH COUNT. */
static peer *kazoo_dbarrier(const char *hosts, const char *path, const char *count) {
    const char *py = kazoo_python();
    char *argv[] = {(char *)py,    COORD_INTEROP_SRC "/kazoo_dbarrier.py",
                    (char *)hosts, (char *)path,
                    (char *)count, NULL};
    peer *p = peer_start("kazoo", argv);
    EXPECT(p, "connected");
    return p;
}

static peer *curator(const char *sub, const char *hosts, const char *path, const char *arg) {
    return curator2(sub, hosts, path, arg, NULL);
}

/* kazoo_election.py CONNECT PATH ID [--see-latch]. */
static peer *kazoo(const char *hosts, const char *path, const char *id, bool see_latch) {
    const char *py = kazoo_python();
    char *argv[] = {(char *)py, COORD_INTEROP_SRC "/kazoo_election.py", (char *)hosts, (char *)path,
                    (char *)id, see_latch ? "--see-latch" : NULL,       NULL};
    peer *p = peer_start("kazoo", argv);
    EXPECT(p, "connected");
    return p;
}

/* etcdctl --endpoints=... ARGS (up to 4). */
static peer *etcdctl(const char *a1, const char *a2, const char *a3, const char *a4) {
    static char ep[1024];
    const char *hosts = getenv("COORD_TEST_ETCD");
    assert_non_null(hosts);
    size_t n = (size_t)snprintf(ep, sizeof ep, "--endpoints=");
    char copy[512];
    snprintf(copy, sizeof copy, "%s", hosts);
    const char *sep = "";
    for (char *save = NULL, *h = strtok_r(copy, ",", &save); h && n < sizeof ep;
         h = strtok_r(NULL, ",", &save), sep = ",")
        n += (size_t)snprintf(ep + n, sizeof ep - n, "%shttp://%s", sep, h);
    const char *bin = env_or("COORD_TEST_ETCDCTL", "etcdctl");
    char check[512];
    snprintf(check, sizeof check, "command -v '%s' >/dev/null", bin);
    if (system(check) != 0) fail_msg("%s not found: install etcd-client (scripts/deps.sh)", bin);
    char *argv[] = {(char *)bin, ep, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    return peer_start("etcdctl", argv);
}

/* What the peer prints until it exits (bounded; exit status 0), copied to `out`. */
static char *peer_output(peer *p, char *out, size_t cap) {
    peer_scan(p, "\001", WAIT_MS, false, NULL, 0); /* matches no line: reads to the end */
    if (!p->eof) fail_msg("%s did not finish within %d ms", p->what, WAIT_MS);
    snprintf(out, cap, "%.*s", (int)(p->len - p->pos), p->buf + p->pos);
    int rc = peer_wait(p, WAIT_MS);
    if (rc) fail_msg("%s exited with %d (printed: %s)", p->what, rc, out);
    return out;
}

/* ---- coord on the other side, with cleanup on failure ---- */

/* What an observing handle's on_leader reported last. */
typedef struct observed {
    pthread_mutex_t mu;
    bool some;       /* a leader (else none) */
    char value[256]; /* its value */
    int calls;
} observed;

static observed obs = {PTHREAD_MUTEX_INITIALIZER, false, "", 0};

static void on_leader(coord_election *e, const coord_leader *l, void *payload) {
    (void)e;
    (void)payload;
    pthread_mutex_lock(&obs.mu);
    obs.some = l != NULL;
    snprintf(obs.value, sizeof obs.value, "%.*s", l ? (int)l->len : 0,
             l ? (const char *)l->value : "");
    obs.calls++;
    pthread_mutex_unlock(&obs.mu);
}

/* What a key watch (fx.w) reported last. */
typedef struct watched {
    pthread_mutex_t mu;
    bool some; /* a value (else absent) */
    char value[256];
    size_t len;
    int64_t version;
    int calls;
} watched;

static watched wat = {PTHREAD_MUTEX_INITIALIZER, false, "", 0, 0, 0};

static void on_kv(const char *key, const void *value, size_t len, int64_t version, void *payload) {
    (void)key;
    (void)payload;
    pthread_mutex_lock(&wat.mu);
    wat.some = value != NULL;
    wat.len = len < sizeof wat.value ? len : sizeof wat.value;
    if (value) memcpy(wat.value, value, wat.len);
    wat.version = version;
    wat.calls++;
    pthread_mutex_unlock(&wat.mu);
}

/* A coord call running in a thread (a campaign or an acquire that has to wait for a peer). */
typedef struct bg {
    pthread_t t;
    bool started;
    coord_lock *l;
    coord_election *e;
    const char *value;
    int timeout_ms;
    int rc;
    int done;
} bg;

/* A coord call of the sync recipes running in a thread (any of them: fn on obj, cancel to
 * stop it in the teardown). */
typedef struct task {
    pthread_t t;
    bool started;
    int (*fn)(void *obj, int timeout_ms);
    void (*cancel)(void *obj);
    void *obj;
    int rc;
    int done;
} task;

#define MAX_TASKS 2

typedef struct fixture {
    coord_client *c;
    coord_lock *l;
    coord_election *e, *obs;
    bg bg;
    coord_semaphore *s[2];
    coord_rwlock *rw[2];
    coord_barrier *b;
    coord_dbarrier *db[2];
    coord_queue *q[2];
    coord_item *item;
    coord_kv_watch *w;
    task tk[MAX_TASKS];
} fixture;

static fixture fx;

static void *bg_main(void *arg) {
    bg *b = arg;
    if (b->l)
        b->rc = coord_lock_acquire(b->l, b->timeout_ms);
    else
        b->rc = coord_election_campaign(b->e, b->value, strlen(b->value), b->timeout_ms);
    __atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void bg_start(coord_lock *l, coord_election *e, const char *value) {
    bg *b = &fx.bg;
    assert_false(b->started);
    *b = (bg){.l = l, .e = e, .value = value, .timeout_ms = 30000};
    assert_int_equal(pthread_create(&b->t, NULL, bg_main, b), 0);
    b->started = true;
}

static bool bg_done(void) {
    return __atomic_load_n(&fx.bg.done, __ATOMIC_SEQ_CST);
}

/* Wait (bounded) for the call in the thread to return; its result. */
static int bg_join(int timeout_ms) {
    int64_t end = coord__now_ms() + timeout_ms;
    while (!bg_done() && coord__now_ms() < end)
        sleep_ms(10);
    if (!bg_done()) fail_msg("coord's call did not return within %d ms", timeout_ms);
    pthread_join(fx.bg.t, NULL);
    fx.bg.started = false;
    return fx.bg.rc;
}

static void *task_main(void *arg) {
    task *t = arg;
    t->rc = t->fn(t->obj, 30000);
    __atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Run fn(obj, 30000) in the thread of task i. */
static void task_start(int i, int (*fn)(void *, int), void (*cancel)(void *), void *obj) {
    task *t = &fx.tk[i];
    assert_false(t->started);
    *t = (task){.fn = fn, .cancel = cancel, .obj = obj};
    assert_int_equal(pthread_create(&t->t, NULL, task_main, t), 0);
    t->started = true;
}

static bool task_done(int i) {
    return __atomic_load_n(&fx.tk[i].done, __ATOMIC_SEQ_CST);
}

/* Wait (bounded) for task i's call to return; its result. */
static int task_join(int i, int timeout_ms) {
    int64_t end = coord__now_ms() + timeout_ms;
    while (!task_done(i) && coord__now_ms() < end)
        sleep_ms(10);
    if (!task_done(i))
        fail_msg("coord's call (task %d) did not return within %d ms", i, timeout_ms);
    pthread_join(fx.tk[i].t, NULL);
    fx.tk[i].started = false;
    return fx.tk[i].rc;
}

static int sem_acquire(void *o, int ms) {
    return coord_semaphore_acquire(o, ms);
}
static void sem_cancel(void *o) {
    coord_semaphore_cancel(o);
}
static int rw_rdlock(void *o, int ms) {
    return coord_rwlock_rdlock(o, ms);
}
static int rw_wrlock(void *o, int ms) {
    return coord_rwlock_wrlock(o, ms);
}
static void rw_cancel(void *o) {
    coord_rwlock_cancel(o);
}
static int barrier_wait(void *o, int ms) {
    return coord_barrier_wait(o, ms);
}
static void barrier_cancel(void *o) {
    coord_barrier_cancel(o);
}
static int db_enter(void *o, int ms) {
    return coord_dbarrier_enter(o, ms);
}
static int db_leave(void *o, int ms) {
    return coord_dbarrier_leave(o, ms);
}
static void db_cancel(void *o) {
    coord_dbarrier_cancel(o);
}

/* A blocking coord_queue_take in a task: the queue and what it took. */
typedef struct qtake {
    coord_queue *q;
    void *data;
    size_t len;
} qtake;

static qtake qt;

static int q_take(void *o, int ms) {
    qtake *t = o;
    return coord_queue_take(t->q, &t->data, &t->len, ms);
}
static void q_cancel(void *o) { /* a take has no cancel: its bound (30 s) ends it */
    (void)o;
}

static int teardown(void **state) {
    (void)state;
    if (fx.bg.started) {
        if (fx.bg.l) coord_lock_cancel(fx.bg.l);
        if (fx.bg.e) coord_election_cancel(fx.bg.e);
        pthread_join(fx.bg.t, NULL);
        fx.bg.started = false;
    }
    for (int i = 0; i < MAX_TASKS; i++)
        if (fx.tk[i].started) {
            fx.tk[i].cancel(fx.tk[i].obj);
            pthread_join(fx.tk[i].t, NULL);
            fx.tk[i].started = false;
        }
    peers_kill_all();
    coord_kv_watch_free(fx.w);
    coord_item_nack(fx.item);
    for (int i = 0; i < 2; i++) {
        coord_queue_free(fx.q[i]);
        coord_semaphore_free(fx.s[i]);
        coord_rwlock_free(fx.rw[i]);
        coord_dbarrier_free(fx.db[i]);
    }
    coord_barrier_free(fx.b);
    coord_lock_free(fx.l);
    coord_election_free(fx.e);
    coord_election_free(fx.obs);
    coord_client_close(fx.c);
    memset(&fx, 0, sizeof fx);
    free(qt.data);
    memset(&qt, 0, sizeof qt);
    pthread_mutex_lock(&obs.mu);
    obs.some = false;
    obs.calls = 0;
    pthread_mutex_unlock(&obs.mu);
    pthread_mutex_lock(&wat.mu);
    wat.some = false;
    wat.len = 0;
    wat.version = 0;
    wat.calls = 0;
    pthread_mutex_unlock(&wat.mu);
    return 0;
}

/* Entries in <prefix>/<kind>/<name>, read with the raw backend. */
static size_t entries(const char *kind, const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s/%s", coord_client_prefix(fx.c), kind, name);
    coord_conn *k = coord__client_conn(fx.c);
    coord_kv *kids = NULL;
    size_t n = 0;
    int rc = k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000);
    if (rc) fail_msg("list %s: %s", dir, coord_last_error());
    coord_kv_array_free(kids, n);
    return n;
}

/* Print the entries in <prefix>/<kind>/<name> (what each tool made) to stderr. */
static void show(const char *kind, const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s/%s", coord_client_prefix(fx.c), kind, name);
    coord_conn *k = coord__client_conn(fx.c);
    coord_kv *kids = NULL;
    size_t n = 0;
    int rc = k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000);
    if (rc) fail_msg("list %s: %s", dir, coord_last_error());
    fprintf(stderr, "test_interop: %s/%s:", kind, name);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %s", kids[i].key);
    fprintf(stderr, "\n");
    coord_kv_array_free(kids, n);
}

/* The data of <prefix>/<kind>/<name> is `want`. */
static void expect_data(const char *kind, const char *name, const char *want) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", coord_client_prefix(fx.c), kind, name);
    coord_conn *k = coord__client_conn(fx.c);
    coord_kv kv = {0};
    int rc = k->backend->get(k, path, &kv, 3000);
    if (rc) fail_msg("get %s: %s", path, coord_last_error());
    bool ok = kv.len == strlen(want) && !memcmp(kv.value, want, kv.len);
    if (!ok)
        fail_msg("%s holds \"%.*s\", expected \"%s\"", path, (int)kv.len, (char *)kv.value, want);
    coord_kv_clear(&kv);
}

/* The names of the entries in <prefix>/<kind>/<name>, in the backend's order, joined by spaces. */
static const char *entry_names(const char *kind, const char *name, char *out, size_t cap) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s/%s", coord_client_prefix(fx.c), kind, name);
    coord_conn *k = coord__client_conn(fx.c);
    coord_kv *kids = NULL;
    size_t n = 0, at = 0;
    int rc = k->backend->list(k, dir, COORD_LIST_NAMES, &kids, &n, NULL, 3000);
    if (rc) fail_msg("list %s: %s", dir, coord_last_error());
    *out = 0;
    for (size_t i = 0; i < n && at < cap; i++)
        at += (size_t)snprintf(out + at, cap - at, "%s%s", i ? " " : "", kids[i].key);
    coord_kv_array_free(kids, n);
    return out;
}

/* Wait (bounded) until the server shows `want` entries. */
static void await_entries(const char *kind, const char *name, size_t want) {
    int64_t end = coord__now_ms() + WAIT_MS;
    size_t n;
    while ((n = entries(kind, name)) != want && coord__now_ms() < end)
        sleep_ms(10);
    if (n != want)
        fail_msg("expected %zu entries in %s/%s, the server shows %zu", want, kind, name, n);
}

/* coord_election_leader's value is `want` (and the term is > 0; *term receives it). */
static void expect_leader(coord_election *e, const char *want, uint64_t *term) {
    void *v = NULL;
    size_t len = 0;
    uint64_t t = 0;
    int rc = coord_election_leader(e, &v, &len, &t);
    if (rc) fail_msg("coord_election_leader: %s: %s", coord_strerror(rc), coord_last_error());
    if (len != strlen(want) || memcmp(v, want, len))
        fail_msg("coord_election_leader says \"%.*s\", expected \"%s\"", (int)len, (char *)v, want);
    free(v);
    assert_true(t > 0);
    if (term) *term = t;
}

/* The observer (fx.obs) reports the leader `want` (NULL: none) within WAIT_MS. */
static void expect_observed(const char *want) {
    int64_t end = coord__now_ms() + WAIT_MS;
    pthread_mutex_lock(&obs.mu);
    while (!(want ? obs.some && !strcmp(obs.value, want) : !obs.some) && coord__now_ms() < end) {
        pthread_mutex_unlock(&obs.mu);
        sleep_ms(10);
        pthread_mutex_lock(&obs.mu);
    }
    bool ok = want ? obs.some && !strcmp(obs.value, want) : !obs.some;
    char got[300];
    snprintf(got, sizeof got, obs.some ? "\"%s\"" : "none", obs.value);
    pthread_mutex_unlock(&obs.mu);
    if (!ok)
        fail_msg("on_leader reports %s, expected %s%s%s", got, want ? "\"" : "",
                 want ? want : "none", want ? "\"" : "");
}

/* A candidate handle `name` (fx.e), and an observing one (fx.obs) with on_leader. */
static void elections(const char *name) {
    int rc = coord_election_new(&fx.e, fx.c, name, NULL);
    if (rc) fail_msg("coord_election_new: %s: %s", coord_strerror(rc), coord_last_error());
    coord_election_options o = COORD_ELECTION_OPTIONS_INIT;
    o.on_leader = on_leader;
    rc = coord_election_new(&fx.obs, fx.c, name, &o);
    if (rc)
        fail_msg("coord_election_new (observer): %s: %s", coord_strerror(rc), coord_last_error());
    expect_observed(NULL);
}

static int campaign(coord_election *e, const char *value, int timeout_ms) {
    return coord_election_campaign(e, value, strlen(value), timeout_ms);
}

/* The key watch (fx.w) reports `want` (`len` bytes; NULL: absent) within WAIT_MS, at `version`
 * (< 0: any); returns that version. */
static int64_t expect_watched(const void *want, size_t len, int64_t version) {
    int64_t end = coord__now_ms() + WAIT_MS;
    bool ok;
    for (;;) {
        pthread_mutex_lock(&wat.mu);
        ok = want ? wat.some && wat.len == len && !memcmp(wat.value, want, len) : !wat.some;
        ok = ok && wat.calls > 0 && (version < 0 || wat.version == version);
        if (ok || coord__now_ms() >= end) break;
        pthread_mutex_unlock(&wat.mu);
        sleep_ms(10);
    }
    int64_t v = wat.version;
    char got[300];
    snprintf(got, sizeof got, wat.some ? "\"%.*s\"" : "none", (int)wat.len, wat.value);
    pthread_mutex_unlock(&wat.mu);
    if (!ok)
        fail_msg("the key watch reports %s at version %lld, expected %s%.*s%s at %lld", got,
                 (long long)v, want ? "\"" : "", want ? (int)len : 4,
                 want ? (const char *)want : "none", want ? "\"" : "", (long long)version);
    return v;
}

/* `b` (`n` bytes) in lower-case hexadecimal, "-" when empty (CuratorHarness's HEX). */
static const char *hex(const void *b, size_t n, char *out, size_t cap) {
    if (!n) return snprintf(out, cap, "-"), out;
    assert_true(2 * n < cap);
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", ((const unsigned char *)b)[i]);
    return out;
}

/* Curator answers `cmd` (NULL: none, an answer pending) with the line `want` exactly. */
static void curator_says(peer *p, const char *cmd, const char *want) {
    char event[32], line[4096];
    snprintf(event, sizeof event, "%.*s", (int)strcspn(want, " "), want);
    if (cmd) peer_say(p, cmd);
    expect_line(p, event, line, sizeof line);
    if (strcmp(line, want))
        fail_msg("Curator answered \"%s\" with \"%s\", expected \"%s\"", cmd ? cmd : "(no command)",
                 line, want);
}

/* coord_queue_take(q, 0) gives `want` (a string), or COORD_ENOTFOUND when want is NULL. */
static void expect_take(coord_queue *q, const char *want) {
    void *d = NULL;
    size_t n = 0;
    int rc = coord_queue_take(q, &d, &n, 0);
    if (!want) {
        if (rc != COORD_ENOTFOUND)
            fail_msg("coord_queue_take gave %s (%.*s), expected an empty queue", coord_strerror(rc),
                     rc ? 0 : (int)n, rc ? "" : (char *)d);
        free(d);
        return;
    }
    if (rc)
        fail_msg("coord_queue_take: %s: %s (expected \"%s\")", coord_strerror(rc),
                 coord_last_error(), want);
    if (n != strlen(want) || memcmp(d, want, n))
        fail_msg("coord_queue_take gave \"%.*s\", expected \"%s\"", (int)n, (char *)d, want);
    free(d);
}

static void queue_put(coord_queue *q, const char *item) {
    int rc = coord_queue_put(q, item, strlen(item));
    if (rc) fail_msg("coord_queue_put: %s: %s", coord_strerror(rc), coord_last_error());
}

/* Curator offers the string `item`. */
static void curator_offer(peer *p, const char *item) {
    char cmd[600], h[520];
    snprintf(cmd, sizeof cmd, "offer %s", hex(item, strlen(item), h, sizeof h));
    curator_says(p, cmd, "offered");
}

/* Curator's `cmd` (NULL: the pending take) gives the string `want` (NULL: "empty"). */
static void curator_item(peer *p, const char *cmd, const char *want) {
    char line[600], h[520];
    if (want) snprintf(line, sizeof line, "item %s", hex(want, strlen(want), h, sizeof h));
    curator_says(p, cmd, want ? line : "empty");
}

/* Curator's poll gives the string `want` (NULL: "empty"). */
static void curator_poll(peer *p, const char *want) {
    curator_item(p, "poll", want);
}

static void queue_size_is(coord_queue *q, size_t want) {
    size_t n = 99;
    int rc = coord_queue_size(q, &n);
    if (rc) fail_msg("coord_queue_size: %s: %s", coord_strerror(rc), coord_last_error());
    if (n != want) fail_msg("coord_queue_size says %zu, expected %zu", n, want);
}

/* ---- ZooKeeper: Curator's InterProcessMutex and coord's lock ---- */

static void zk_lock_curator(void **state) {
    (void)state;
    void *st = (void *)&coord_test_zk;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *hosts = getenv("COORD_TEST_ZK");
    char path[512];
    snprintf(path, sizeof path, "%s/lock/io", coord_client_prefix(fx.c));
    assert_int_equal(coord_lock_new(&fx.l, fx.c, "io"), 0);

    /* coord holds: Curator's try times out, its acquire waits until coord releases. */
    assert_int_equal(coord_lock_acquire(fx.l, 5000), 0);
    peer *p = curator("trymutex", hosts, path, "300");
    EXPECT(p, "timeout");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    p = curator("mutex", hosts, path, "0");
    await_entries("lock", "io", 2);
    expect_quiet(p, "acquired", QUIET_MS);
    assert_int_equal(coord_lock_release(fx.l), 0);
    EXPECT(p, "acquired");
    EXPECT(p, "released");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    await_entries("lock", "io", 0);

    /* Curator holds: coord's try is ELOCKED, its acquire waits until Curator releases. */
    p = curator("mutex", hosts, path, "-1");
    EXPECT(p, "acquired");
    assert_int_equal(coord_lock_acquire(fx.l, 0), COORD_ELOCKED);
    assert_false(coord_lock_held(fx.l));
    bg_start(fx.l, NULL, NULL);
    await_entries("lock", "io", 2);
    sleep_ms(QUIET_MS);
    assert_false(bg_done());
    peer_close_stdin(p); /* Curator releases */
    EXPECT(p, "released");
    assert_int_equal(bg_join(WAIT_MS), 0);
    assert_true(coord_lock_held(fx.l));
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    assert_int_equal(coord_lock_release(fx.l), 0);
}

/* ---- ZooKeeper: Curator's LeaderLatch and coord's election ---- */

static void zk_election_curator(void **state) {
    (void)state;
    void *st = (void *)&coord_test_zk;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *hosts = getenv("COORD_TEST_ZK");
    char path[512];
    snprintf(path, sizeof path, "%s/election/el", coord_client_prefix(fx.c));
    elections("el");
    uint64_t t1, t2, t3;

    /* Curator first: it leads, coord waits behind it and leads once Curator's latch closes. */
    peer *p = curator("latch", hosts, path, "curator-1");
    EXPECT(p, "candidate");
    EXPECT(p, "leader");
    expect_observed("curator-1");
    assert_int_equal(campaign(fx.e, "coord-1", 0), COORD_ELOCKED);
    assert_false(coord_election_is_leader(fx.e));
    expect_leader(fx.e, "curator-1", &t1);
    bg_start(NULL, fx.e, "coord-1");
    await_entries("election", "el", 2);
    sleep_ms(QUIET_MS);
    assert_false(bg_done());
    expect_leader(fx.e, "curator-1", NULL);
    peer_say(p, "getleader");
    char line[256];
    expect_line(p, "leader-id", line, sizeof line);
    assert_string_equal(line, "leader-id curator-1");
    peer_say(p, "close");
    EXPECT(p, "closed");
    assert_int_equal(bg_join(WAIT_MS), 0);
    assert_true(coord_election_is_leader(fx.e));
    assert_int_equal(coord_election_term(fx.e, &t2), 0);
    assert_true(t2 > t1);
    expect_leader(fx.e, "coord-1", NULL);
    expect_observed("coord-1");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    /* Curator's getLeader() names coord's value. */
    p = curator("getleader", hosts, path, NULL);
    expect_line(p, "leader-id", line, sizeof line);
    assert_string_equal(line, "leader-id coord-1");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);

    /* coord first: Curator's latch waits, names coord as the leader, and leads once coord
     * resigns. */
    p = curator("latch", hosts, path, "curator-2");
    EXPECT(p, "candidate");
    await_entries("election", "el", 2);
    expect_quiet(p, "leader", QUIET_MS);
    assert_true(coord_election_is_leader(fx.e));
    peer_say(p, "getleader");
    expect_line(p, "leader-id", line, sizeof line);
    assert_string_equal(line, "leader-id coord-1");
    assert_int_equal(coord_election_resign(fx.e), 0);
    EXPECT(p, "leader");
    assert_false(coord_election_is_leader(fx.e));
    expect_leader(fx.e, "curator-2", &t3);
    assert_true(t3 > t2);
    expect_observed("curator-2");
    peer_say(p, "close");
    EXPECT(p, "closed");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    await_entries("election", "el", 0);
    expect_observed(NULL);

    /* A Curator leader that crashes (SIGKILL): coord, waiting behind it, leads once its session
     * expires (CuratorHarness asks for 6 s), woken by the deletion of its predecessor. */
    p = curator("latch", hosts, path, "curator-3");
    EXPECT(p, "leader");
    expect_observed("curator-3");
    bg_start(NULL, fx.e, "coord-3");
    await_entries("election", "el", 2);
    kill(-p->pid, SIGKILL);
    int64_t t0 = coord__now_ms();
    peer_wait(p, WAIT_MS);
    assert_int_equal(bg_join(CURATOR_SESSION_MS + 5000), 0);
    int64_t took = coord__now_ms() - t0;
    fprintf(stderr, "test_interop: coord led %lld ms after Curator's leader was killed\n",
            (long long)took);
    if (took > CURATOR_SESSION_MS + 3000)
        fail_msg("coord led %lld ms after the kill, more than the session timeout + 3 s",
                 (long long)took);
    assert_true(coord_election_is_leader(fx.e));
    expect_observed("coord-3");
    assert_int_equal(coord_election_resign(fx.e), 0);
    expect_observed(NULL);
}

/* ---- ZooKeeper: kazoo's Election and coord's election ---- */

static void zk_election_kazoo(void **state) {
    (void)state;
    void *st = (void *)&coord_test_zk;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *hosts = getenv("COORD_TEST_ZK");
    char path[512];
    snprintf(path, sizeof path, "%s/election/ek", coord_client_prefix(fx.c));
    elections("ek");

    /* kazoo first: coord sees it lead, waits behind it, and leads once it resigns. */
    peer *p = kazoo(hosts, path, "kazoo-1", false);
    EXPECT(p, "leader");
    expect_observed("kazoo-1");
    assert_int_equal(campaign(fx.e, "coord-1", 0), COORD_ELOCKED);
    expect_leader(fx.e, "kazoo-1", NULL);
    bg_start(NULL, fx.e, "coord-1");
    await_entries("election", "ek", 2);
    sleep_ms(QUIET_MS);
    assert_false(bg_done());
    peer_close_stdin(p);
    EXPECT(p, "resigned");
    assert_int_equal(bg_join(WAIT_MS), 0);
    assert_true(coord_election_is_leader(fx.e));
    expect_leader(fx.e, "coord-1", NULL);
    assert_int_equal(peer_wait(p, WAIT_MS), 0);

    /* coord first, kazoo's lock told to count "-latch-" nodes: it waits behind coord. */
    p = kazoo(hosts, path, "kazoo-2", true);
    await_entries("election", "ek", 2);
    expect_quiet(p, "leader", QUIET_MS);
    expect_leader(fx.e, "coord-1", NULL);
    assert_int_equal(coord_election_resign(fx.e), 0);
    EXPECT(p, "leader");
    expect_leader(fx.e, "kazoo-2", NULL);
    expect_observed("kazoo-2");
    peer_close_stdin(p);
    EXPECT(p, "resigned");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);

    /* coord first, kazoo's Election as it comes: coord still sees itself first in sequence
     * order. kazoo's own view is only reported: its Election ignores "-latch-" nodes
     * (RECIPES.md 2.6), so it claims leadership beside coord. */
    assert_int_equal(campaign(fx.e, "coord-3", 0), 0);
    p = kazoo(hosts, path, "kazoo-3", false);
    await_entries("election", "ek", 2);
    expect_leader(fx.e, "coord-3", NULL);
    assert_true(coord_election_is_leader(fx.e));
    bool claims = peer_scan(p, "leader", 3000, true, NULL, 0) == 0;
    fprintf(stderr,
            "test_interop: kazoo's plain Election %s while coord's candidate, first in sequence "
            "order, leads (kazoo ignores \"-latch-\" nodes)\n",
            claims ? "claims leadership" : "waits");
    assert_int_equal(coord_election_resign(fx.e), 0);
    expect_leader(fx.e, "kazoo-3", NULL);
    expect_observed("kazoo-3");
    peer_close_stdin(p);
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    await_entries("election", "ek", 0);
    expect_observed(NULL);
}

/* ---- ZooKeeper: Curator's InterProcessSemaphoreV2 and coord's semaphore ---- */

/* coord's semaphore handle i on `name` with limit max. */
static void sem_new(int i, const char *name, unsigned max) {
    int rc = coord_semaphore_new(&fx.s[i], fx.c, name, max);
    if (rc) fail_msg("coord_semaphore_new: %s: %s", coord_strerror(rc), coord_last_error());
}

static void zk_semaphore_curator(void **state) {
    (void)state;
    void *st = (void *)&coord_test_zk;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *hosts = getenv("COORD_TEST_ZK");
    char path[512];

    /* Limit 1: whoever holds, the other waits. */
    snprintf(path, sizeof path, "%s/semaphore/s1", coord_client_prefix(fx.c));
    sem_new(0, "s1", 1);
    assert_int_equal(coord_semaphore_acquire(fx.s[0], 5000), 0);
    await_entries("semaphore", "s1/leases", 1);
    peer *p = curator2("semaphore", hosts, path, "1", "300");
    EXPECT(p, "timeout");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    await_entries("semaphore", "s1/leases", 1); /* its timed-out lease is gone */
    p = curator("semaphore", hosts, path, "1");
    /* Curator creates its lease, then counts (create-then-count), holding locks/ meanwhile. */
    await_entries("semaphore", "s1/leases", 2);
    expect_quiet(p, "acquired", QUIET_MS);
    assert_int_equal(coord_semaphore_release(fx.s[0]), 0);
    EXPECT(p, "acquired");
    assert_false(coord_semaphore_held(fx.s[0]));
    assert_int_equal(coord_semaphore_acquire(fx.s[0], 0), COORD_ELOCKED);
    assert_int_equal(coord_semaphore_acquire(fx.s[0], 300), COORD_ETIMEDOUT);
    await_entries("semaphore", "s1/leases", 1); /* nothing left by the failed tries */
    task_start(0, sem_acquire, sem_cancel, fx.s[0]);
    sleep_ms(QUIET_MS);
    assert_false(task_done(0));
    peer_say(p, "release");
    EXPECT(p, "released");
    assert_int_equal(task_join(0, WAIT_MS), 0);
    assert_true(coord_semaphore_held(fx.s[0]));
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    await_entries("semaphore", "s1/leases", 1);
    assert_int_equal(coord_semaphore_release(fx.s[0]), 0);
    await_entries("semaphore", "s1/leases", 0);

    /* A Curator holder that crashes (SIGKILL): its lease is ephemeral, so coord, waiting, gets
     * it once the session expires (CuratorHarness asks for 6 s). */
    p = curator("semaphore", hosts, path, "1");
    EXPECT(p, "acquired");
    task_start(0, sem_acquire, sem_cancel, fx.s[0]);
    await_entries("semaphore", "s1/leases", 2);
    kill(-p->pid, SIGKILL);
    int64_t t0 = coord__now_ms();
    peer_wait(p, WAIT_MS);
    assert_int_equal(task_join(0, CURATOR_SESSION_MS + 5000), 0);
    int64_t took = coord__now_ms() - t0;
    fprintf(stderr, "test_interop: coord got the lease %lld ms after Curator's holder was killed\n",
            (long long)took);
    if (took > CURATOR_SESSION_MS + 3000)
        fail_msg("coord got the lease %lld ms after the kill, more than the session timeout + 3 s",
                 (long long)took);
    assert_int_equal(coord_semaphore_release(fx.s[0]), 0);
    await_entries("semaphore", "s1/leases", 0);

    /* Limit 2: one coord and one Curator hold at once; a third of either waits. */
    snprintf(path, sizeof path, "%s/semaphore/s2", coord_client_prefix(fx.c));
    sem_new(1, "s2", 2);
    coord_semaphore_free(fx.s[0]);
    fx.s[0] = NULL;
    sem_new(0, "s2", 2);
    assert_int_equal(coord_semaphore_acquire(fx.s[0], 5000), 0);
    peer *p1 = curator("semaphore", hosts, path, "2");
    EXPECT(p1, "acquired");
    await_entries("semaphore", "s2/leases", 2);
    assert_int_equal(coord_semaphore_acquire(fx.s[1], 0), COORD_ELOCKED);
    peer *p2 = curator2("semaphore", hosts, path, "2", "300");
    EXPECT(p2, "timeout");
    assert_int_equal(peer_wait(p2, WAIT_MS), 0);
    /* A waiting Curator is served once coord releases. */
    p2 = curator("semaphore", hosts, path, "2");
    await_entries("semaphore", "s2/leases", 3);
    show("semaphore", "s2/leases");
    show("semaphore", "s2");
    expect_data("semaphore", "s2", "2"); /* coord's stored limit; Curator keeps none */
    expect_quiet(p2, "acquired", QUIET_MS);
    assert_int_equal(coord_semaphore_release(fx.s[0]), 0);
    EXPECT(p2, "acquired");
    /* A waiting coord is served once a Curator releases. */
    task_start(0, sem_acquire, sem_cancel, fx.s[1]);
    sleep_ms(QUIET_MS);
    assert_false(task_done(0));
    peer_say(p1, "release");
    EXPECT(p1, "released");
    assert_int_equal(task_join(0, WAIT_MS), 0);
    assert_true(coord_semaphore_held(fx.s[1]));
    assert_int_equal(peer_wait(p1, WAIT_MS), 0);
    await_entries("semaphore", "s2/leases", 2);
    peer_close_stdin(p2);
    EXPECT(p2, "released");
    assert_int_equal(peer_wait(p2, WAIT_MS), 0);
    assert_int_equal(coord_semaphore_release(fx.s[1]), 0);
    await_entries("semaphore", "s2/leases", 0);

    /* Curator first on a fresh semaphore: it makes the entry without a limit (a container);
     * coord's first use stores its limit there and waits its turn. */
    snprintf(path, sizeof path, "%s/semaphore/s3", coord_client_prefix(fx.c));
    coord_semaphore_free(fx.s[0]);
    fx.s[0] = NULL;
    sem_new(0, "s3", 1);
    p = curator("semaphore", hosts, path, "1");
    EXPECT(p, "acquired");
    expect_data("semaphore", "s3", "");
    assert_int_equal(coord_semaphore_acquire(fx.s[0], 0), COORD_ELOCKED);
    expect_data("semaphore", "s3", "1");
    task_start(0, sem_acquire, sem_cancel, fx.s[0]);
    await_entries("semaphore", "s3/leases", 2);
    sleep_ms(QUIET_MS);
    assert_false(task_done(0));
    peer_close_stdin(p);
    EXPECT(p, "released");
    assert_int_equal(task_join(0, WAIT_MS), 0);
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    assert_int_equal(coord_semaphore_release(fx.s[0]), 0);
    await_entries("semaphore", "s3/leases", 0);
}

/* ---- ZooKeeper: Curator's InterProcessReadWriteLock and coord's rwlock ---- */

static void zk_rwlock_curator(void **state) {
    (void)state;
    void *st = (void *)&coord_test_zk;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *hosts = getenv("COORD_TEST_ZK");
    char path[512];
    snprintf(path, sizeof path, "%s/rwlock/rw", coord_client_prefix(fx.c));
    for (int i = 0; i < 2; i++) {
        int rc = coord_rwlock_new(&fx.rw[i], fx.c, "rw");
        if (rc) fail_msg("coord_rwlock_new: %s: %s", coord_strerror(rc), coord_last_error());
    }
    coord_rwlock *r = fx.rw[0], *w = fx.rw[1];

    /* Curator's writer holds: coord's reader and writer wait until it releases. */
    peer *p = curator("write", hosts, path, NULL);
    EXPECT(p, "acquired");
    assert_int_equal(coord_rwlock_rdlock(r, 0), COORD_ELOCKED);
    assert_int_equal(coord_rwlock_wrlock(w, 0), COORD_ELOCKED);
    assert_int_equal(coord_rwlock_wrlock(w, 300), COORD_ETIMEDOUT);
    await_entries("rwlock", "rw", 1);
    task_start(0, rw_rdlock, rw_cancel, r);
    await_entries("rwlock", "rw", 2);
    task_start(1, rw_wrlock, rw_cancel, w);
    await_entries("rwlock", "rw", 3);
    sleep_ms(QUIET_MS);
    assert_false(task_done(0));
    assert_false(task_done(1));
    peer_say(p, "release");
    EXPECT(p, "released");
    assert_int_equal(task_join(0, WAIT_MS), 0); /* the reader first, then the writer */
    sleep_ms(QUIET_MS);
    assert_false(task_done(1));
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    assert_int_equal(coord_rwlock_unlock(r), 0);
    assert_int_equal(task_join(1, WAIT_MS), 0);
    assert_true(coord_rwlock_held(w));

    /* coord's writer holds: Curator's reader and writer wait until it releases. */
    p = curator("read", hosts, path, "300");
    EXPECT(p, "timeout");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    p = curator("write", hosts, path, "300");
    EXPECT(p, "timeout");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
    peer *pw = curator("write", hosts, path, NULL);
    await_entries("rwlock", "rw", 2);
    peer *pr = curator("read", hosts, path, NULL);
    await_entries("rwlock", "rw", 3);
    show("rwlock", "rw");
    expect_quiet(pw, "acquired", QUIET_MS);
    expect_quiet(pr, "acquired", 0);
    assert_int_equal(coord_rwlock_unlock(w), 0);
    EXPECT(pw, "acquired");
    /* Curator's reader queued behind Curator's writer, and coord's reader too. */
    expect_quiet(pr, "acquired", QUIET_MS);
    assert_int_equal(coord_rwlock_rdlock(r, 0), COORD_ELOCKED);
    task_start(0, rw_rdlock, rw_cancel, r);
    await_entries("rwlock", "rw", 3);
    peer_say(pw, "release");
    EXPECT(pw, "released");
    EXPECT(pr, "acquired");
    assert_int_equal(task_join(0, WAIT_MS), 0); /* readers of both share */
    assert_int_equal(peer_wait(pw, WAIT_MS), 0);

    /* Readers of both share; a Curator writer queued behind them holds back a later coord
     * reader (arrival order), and coord's writer waits behind Curator's reader. */
    assert_int_equal(coord_rwlock_wrlock(w, 0), COORD_ELOCKED);
    pw = curator("write", hosts, path, NULL);
    await_entries("rwlock", "rw", 3);
    expect_quiet(pw, "acquired", QUIET_MS);
    assert_int_equal(coord_rwlock_unlock(r), 0);
    assert_int_equal(coord_rwlock_rdlock(r, 0), COORD_ELOCKED);
    peer_close_stdin(pr);
    EXPECT(pr, "released");
    EXPECT(pw, "acquired");
    assert_int_equal(peer_wait(pr, WAIT_MS), 0);
    peer_close_stdin(pw);
    EXPECT(pw, "released");
    assert_int_equal(peer_wait(pw, WAIT_MS), 0);
    await_entries("rwlock", "rw", 0);
}

/* ---- ZooKeeper: Curator's DistributedBarrier and coord's barrier ---- */

static void zk_barrier_curator(void **state) {
    (void)state;
    void *st = (void *)&coord_test_zk;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *hosts = getenv("COORD_TEST_ZK");
    char path[512];
    snprintf(path, sizeof path, "%s/barrier/br", coord_client_prefix(fx.c));
    int rc = coord_barrier_new(&fx.b, fx.c, "br");
    if (rc) fail_msg("coord_barrier_new: %s: %s", coord_strerror(rc), coord_last_error());
    assert_int_equal(coord_barrier_lower(fx.b), 0);

    /* Curator raises and lowers: coord's waiter passes when it is lowered. */
    peer *p = curator("barrier", hosts, path, NULL);
    assert_int_equal(coord_barrier_wait(fx.b, 0), 0);
    peer_say(p, "set");
    EXPECT(p, "set");
    assert_int_equal(coord_barrier_wait(fx.b, 0), COORD_ELOCKED);
    assert_int_equal(coord_barrier_wait(fx.b, 300), COORD_ETIMEDOUT);
    task_start(0, barrier_wait, barrier_cancel, fx.b);
    sleep_ms(QUIET_MS);
    assert_false(task_done(0));
    peer_say(p, "remove");
    EXPECT(p, "removed");
    assert_int_equal(task_join(0, WAIT_MS), 0);

    /* coord raises and lowers: Curator's waiter passes when it is lowered. */
    assert_int_equal(coord_barrier_raise(fx.b), 0);
    assert_int_equal(coord_barrier_raise(fx.b), 0);
    peer_say(p, "wait 300");
    EXPECT(p, "timeout");
    peer_say(p, "wait -1");
    expect_quiet(p, "passed", QUIET_MS);
    assert_int_equal(coord_barrier_lower(fx.b), 0);
    EXPECT(p, "passed");

    /* One raises, the other lowers. */
    peer_say(p, "set");
    EXPECT(p, "set");
    assert_int_equal(coord_barrier_wait(fx.b, 0), COORD_ELOCKED);
    assert_int_equal(coord_barrier_raise(fx.b), 0); /* raised already: fine */
    task_start(0, barrier_wait, barrier_cancel, fx.b);
    sleep_ms(QUIET_MS);
    assert_false(task_done(0));
    assert_int_equal(coord_barrier_lower(fx.b), 0);
    assert_int_equal(task_join(0, WAIT_MS), 0);
    peer_say(p, "wait 5000");
    EXPECT(p, "passed");
    assert_int_equal(coord_barrier_raise(fx.b), 0);
    peer_say(p, "remove");
    EXPECT(p, "removed");
    assert_int_equal(coord_barrier_wait(fx.b, 0), 0);
    peer_say(p, "close");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
}

/* ---- ZooKeeper: kazoo's DoubleBarrier and coord's double barrier ---- */

static void zk_dbarrier_kazoo(void **state) {
    (void)state;
    void *st = (void *)&coord_test_zk;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *hosts = getenv("COORD_TEST_ZK");
    char path[512];
    snprintf(path, sizeof path, "%s/dbarrier/db", coord_client_prefix(fx.c));
    for (int i = 0; i < 2; i++) {
        int rc = coord_dbarrier_new(&fx.db[i], fx.c, "db", 3);
        if (rc) fail_msg("coord_dbarrier_new: %s: %s", coord_strerror(rc), coord_last_error());
    }

    /* kazoo enters first and waits; coord's try fails (2 of 3) and leaves nothing; kazoo and
     * the first coord participant wait for the second, then all three pass. */
    peer *p = kazoo_dbarrier(hosts, path, "3");
    peer_say(p, "enter");
    await_entries("dbarrier", "db", 1);
    assert_int_equal(coord_dbarrier_enter(fx.db[0], 0), COORD_ELOCKED);
    assert_int_equal(coord_dbarrier_enter(fx.db[0], 300), COORD_ETIMEDOUT);
    await_entries("dbarrier", "db", 1);
    task_start(0, db_enter, db_cancel, fx.db[0]);
    await_entries("dbarrier", "db", 2);
    expect_quiet(p, "entered", QUIET_MS);
    assert_false(task_done(0));
    assert_int_equal(coord_dbarrier_enter(fx.db[1], 5000), 0);
    assert_int_equal(task_join(0, WAIT_MS), 0);
    EXPECT(p, "entered");
    await_entries("dbarrier", "db", 4); /* three participants and "ready" */
    show("dbarrier", "db");

    /* coord leaves first: its participants wait until kazoo has left too. */
    task_start(0, db_leave, db_cancel, fx.db[0]);
    task_start(1, db_leave, db_cancel, fx.db[1]);
    sleep_ms(QUIET_MS);
    assert_false(task_done(0));
    assert_false(task_done(1));
    peer_say(p, "leave");
    EXPECT(p, "left");
    assert_int_equal(task_join(0, WAIT_MS), 0);
    assert_int_equal(task_join(1, WAIT_MS), 0);
    await_entries("dbarrier", "db", 0);

    /* coord enters first, kazoo completes the count (it makes "ready"); kazoo leaves first and
     * waits for coord's participants. */
    task_start(0, db_enter, db_cancel, fx.db[0]);
    task_start(1, db_enter, db_cancel, fx.db[1]);
    await_entries("dbarrier", "db", 2);
    sleep_ms(QUIET_MS);
    assert_false(task_done(0));
    assert_false(task_done(1));
    peer_say(p, "enter");
    EXPECT(p, "entered");
    assert_int_equal(task_join(0, WAIT_MS), 0);
    assert_int_equal(task_join(1, WAIT_MS), 0);
    peer_say(p, "leave");
    expect_quiet(p, "left", QUIET_MS);
    task_start(0, db_leave, db_cancel, fx.db[0]);
    task_start(1, db_leave, db_cancel, fx.db[1]);
    EXPECT(p, "left");
    assert_int_equal(task_join(0, WAIT_MS), 0);
    assert_int_equal(task_join(1, WAIT_MS), 0);
    await_entries("dbarrier", "db", 0);
    peer_close_stdin(p);
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
}

/* ---- ZooKeeper: Curator's SimpleDistributedQueue and coord's work queue ---- */

static void queue_open(int i, const char *name) {
    int rc = coord_queue_new(&fx.q[i], fx.c, name);
    if (rc) fail_msg("coord_queue_new: %s: %s", coord_strerror(rc), coord_last_error());
}

/* coord claims with fx.q[i] the item `want` (a string) into fx.item. */
static void expect_claim(int i, const char *want) {
    int rc = coord_queue_claim(fx.q[i], &fx.item, 0);
    if (rc) fail_msg("coord_queue_claim: %s: %s", coord_strerror(rc), coord_last_error());
    size_t n = 0;
    const char *d = coord_item_data(fx.item, &n);
    if (n != strlen(want) || memcmp(d, want, n))
        fail_msg("coord_queue_claim gave \"%.*s\", expected \"%s\"", (int)n, d, want);
}

static void zk_queue_curator(void **state) {
    (void)state;
    void *st = (void *)&coord_test_zk;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *hosts = getenv("COORD_TEST_ZK");
    char path[512], item[64], names[512];
    snprintf(path, sizeof path, "%s/queue/jobs", coord_client_prefix(fx.c));
    queue_open(0, "jobs");
    queue_open(1, "jobs");
    coord_queue *q = fx.q[0];
    peer *p = curator("queue", hosts, path, NULL);

    /* Curator offers five items: coord takes them in the order offered. */
    for (int i = 0; i < 5; i++) {
        snprintf(item, sizeof item, "curator-%d", i);
        curator_offer(p, item);
    }
    await_entries("queue", "jobs", 5);
    show("queue", "jobs");
    queue_size_is(q, 5);
    for (int i = 0; i < 5; i++) {
        snprintf(item, sizeof item, "curator-%d", i);
        expect_take(q, item);
    }
    expect_take(q, NULL);
    curator_poll(p, NULL);

    /* coord puts five: Curator takes them in the order put. */
    for (int i = 0; i < 5; i++) {
        snprintf(item, sizeof item, "coord-%d", i);
        queue_put(q, item);
    }
    await_entries("queue", "jobs", 5);
    show("queue", "jobs"); /* "qn-" names: Curator skips any other child */
    for (int i = 0; i < 5; i++) {
        snprintf(item, sizeof item, "coord-%d", i);
        curator_poll(p, item);
    }
    curator_poll(p, NULL);
    expect_take(q, NULL);

    /* Both put in turns: their items share the server's sequence, and both, taking in turns
     * (each the other's items), get them in the order they were put. */
    static const char *const mixed[] = {"coord-a",   "curator-b", "coord-c",
                                        "curator-d", "coord-e",   "curator-f"};
    for (int i = 0; i < 6; i++)
        if (i % 2)
            curator_offer(p, mixed[i]);
        else
            queue_put(q, mixed[i]);
    await_entries("queue", "jobs", 6);
    show("queue", "jobs");
    for (int i = 0; i < 6; i++)
        if (i % 2)
            expect_take(q, mixed[i]);
        else
            curator_poll(p, mixed[i]);
    curator_poll(p, NULL);
    expect_take(q, NULL);

    /* Waiting takers: Curator's take is woken by coord's put, coord's by Curator's offer. */
    peer_say(p, "take -1");
    expect_quiet(p, "item", QUIET_MS);
    queue_put(q, "wake-curator");
    curator_item(p, NULL, "wake-curator");
    qt.q = fx.q[1];
    task_start(0, q_take, q_cancel, &qt);
    sleep_ms(QUIET_MS);
    assert_false(task_done(0));
    curator_offer(p, "wake-coord");
    assert_int_equal(task_join(0, WAIT_MS), 0);
    if (qt.len != strlen("wake-coord") || memcmp(qt.data, "wake-coord", qt.len))
        fail_msg("coord's waiting take gave \"%.*s\"", (int)qt.len, (char *)qt.data);
    free(qt.data);
    qt.data = NULL;
    expect_take(q, NULL);

    /* Claims are coord's alone (Curator's queue does not know them, coord.h says so: no Curator
     * here). A claim of the head, an item Curator offered, hides it from coord's takers while it
     * stays in the queue; the claim is the item's name under queue-claims/; given back, the item
     * is the head again; acked, it is gone. */
    curator_offer(p, "head");
    queue_put(q, "second");
    char head[64];
    snprintf(head, sizeof head, "%.*s",
             (int)strcspn(entry_names("queue", "jobs", names, sizeof names), " "), names);
    assert_true(!strncmp(head, "qn-", 3));
    expect_claim(1, "head");
    await_entries("queue-claims", "jobs", 1);
    show("queue-claims", "jobs");
    assert_string_equal(entry_names("queue-claims", "jobs", names, sizeof names), head);
    queue_size_is(q, 1);
    expect_take(q, "second");
    expect_take(q, NULL);
    queue_size_is(q, 0);
    await_entries("queue", "jobs", 1);
    assert_string_equal(entry_names("queue", "jobs", names, sizeof names), head);
    assert_int_equal(coord_item_nack(fx.item), 0);
    fx.item = NULL;
    await_entries("queue-claims", "jobs", 0);
    queue_size_is(q, 1);
    expect_claim(1, "head");
    assert_int_equal(coord_item_ack(fx.item), 0);
    fx.item = NULL;
    await_entries("queue", "jobs", 0);
    await_entries("queue-claims", "jobs", 0);
    expect_take(q, NULL);
    curator_poll(p, NULL);
    peer_say(p, "close");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
}

/* ---- ZooKeeper: Curator's znodes and coord's key-value space ---- */

/* coord_kv_get of `key` gives `want` (`len` bytes) at `version` (< 0: any); returns it. */
static int64_t expect_kv(const char *key, const void *want, size_t len, int64_t version) {
    void *v = NULL;
    size_t n = 0;
    int64_t ver = 0;
    int rc = coord_kv_get(fx.c, key, &v, &n, &ver);
    if (rc) fail_msg("coord_kv_get %s: %s: %s", key, coord_strerror(rc), coord_last_error());
    if (n != len || memcmp(v, want, n))
        fail_msg("coord_kv_get %s gave %zu bytes \"%.*s\", expected %zu", key, n, (int)n, (char *)v,
                 len);
    free(v);
    if (version >= 0 && ver != version)
        fail_msg("coord_kv_get %s: version %lld, expected %lld", key, (long long)ver,
                 (long long)version);
    return ver;
}

static void expect_kv_absent(const char *key) {
    void *v = NULL;
    size_t n = 0;
    int rc = coord_kv_get(fx.c, key, &v, &n, NULL);
    free(v);
    if (rc != COORD_ENOTFOUND)
        fail_msg("coord_kv_get %s: %s, expected COORD_ENOTFOUND", key, coord_strerror(rc));
}

/* coord_kv_list of `prefix` gives the names `want` (joined by spaces). */
static void expect_kv_list(const char *prefix, const char *want) {
    char **keys = NULL, got[512] = "";
    size_t n = 0, at = 0;
    int rc = coord_kv_list(fx.c, prefix, &keys, &n);
    if (rc) fail_msg("coord_kv_list %s: %s: %s", prefix, coord_strerror(rc), coord_last_error());
    for (size_t i = 0; i < n && at < sizeof got; i++)
        at += (size_t)snprintf(got + at, sizeof got - at, "%s%s", i ? " " : "", keys[i]);
    coord_strings_free(keys, n);
    if (strcmp(got, want))
        fail_msg("coord_kv_list \"%s\" gave \"%s\", expected \"%s\"", prefix, got, want);
}

/* Curator's getData of `key` gives `want` (`len` bytes). */
static void curator_value(peer *p, const char *key, const void *want, size_t len) {
    char cmd[600], line[2200], h[2100];
    snprintf(cmd, sizeof cmd, "get %s", key);
    snprintf(line, sizeof line, "value %s", hex(want, len, h, sizeof h));
    curator_says(p, cmd, line);
}

static void zk_kv_curator(void **state) {
    (void)state;
    void *st = (void *)&coord_test_zk;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *hosts = getenv("COORD_TEST_ZK");
    char base[512], cmd[600], want[64], h[520];
    snprintf(base, sizeof base, "%s/kv", coord_client_prefix(fx.c));
    peer *p = curator("kv", hosts, base, NULL);
    int64_t ver = 0;

    /* What Curator creates, parents and all, coord reads byte for byte (version: ZooKeeper's
     * data version + 1). */
    static const unsigned char v1[] = {0x00, 0xff, 'c', 'u', 'r', '\n', 0x80};
    snprintf(cmd, sizeof cmd, "create a/b %s", hex(v1, sizeof v1, h, sizeof h));
    curator_says(p, cmd, "created");
    expect_kv("a/b", v1, sizeof v1, 1);
    /* creatingParentsIfNeeded gives the parent it makes an empty array, not null data (the
     * parents coord makes hold null data and read as absent): coord reads Curator's "a" as a
     * key with an empty value, version 1. */
    curator_value(p, "a", "", 0);
    expect_kv("a", "", 0, 1);
    fprintf(stderr, "test_interop: a parent Curator made reads in coord as an empty value\n");
    expect_kv_list("", "a");
    expect_kv_list("a", "b");

    /* What coord writes Curator reads byte for byte: a conditional put at Curator's version, a
     * new key below a parent coord makes (null data: Curator's getData gives null, coord reads
     * it as absent), an empty value (an empty array, not null). */
    static const unsigned char v2[] = {'c', 'o', 'o', 'r', 'd', 0x00, 0x01, 0xfe};
    assert_int_equal(coord_kv_put(fx.c, "a/b", v2, sizeof v2, 1, &ver), 0);
    assert_int_equal(ver, 2);
    curator_value(p, "a/b", v2, sizeof v2);
    assert_int_equal(coord_kv_put(fx.c, "x/y", "coord-only", 10, 0, &ver), 0);
    assert_int_equal(ver, 1);
    curator_value(p, "x/y", "coord-only", 10);
    curator_says(p, "get x", "value null");
    expect_kv_absent("x");
    assert_int_equal(coord_kv_put(fx.c, "x/z", NULL, 0, -1, NULL), 0);
    curator_value(p, "x/z", "", 0);
    expect_kv_list("", "a x");
    expect_kv_list("x", "y z");

    /* coord's watch reports Curator's writes and deletes, with ZooKeeper's versions + 1. */
    int rc = coord_kv_watch_new(&fx.w, fx.c, "a/b", on_kv, NULL);
    if (rc) fail_msg("coord_kv_watch_new: %s: %s", coord_strerror(rc), coord_last_error());
    expect_watched(v2, sizeof v2, 2);
    snprintf(cmd, sizeof cmd, "set a/b %s", hex("curator-set", 11, h, sizeof h));
    curator_says(p, cmd, "set 2");
    expect_watched("curator-set", 11, 3);
    expect_kv("a/b", "curator-set", 11, 3);
    curator_says(p, "delete a/b", "deleted");
    expect_watched(NULL, 0, 0);
    expect_kv_absent("a/b");
    snprintf(cmd, sizeof cmd, "create a/b %s", hex(v1, sizeof v1, h, sizeof h));
    curator_says(p, cmd, "created");
    expect_watched(v1, sizeof v1, 1);
    /* coord's delete is an absent node to Curator. */
    assert_int_equal(coord_kv_delete(fx.c, "a/b", 1), 0);
    expect_watched(NULL, 0, 0);
    snprintf(want, sizeof want, "value none");
    curator_says(p, "get a/b", want);
    peer_say(p, "close");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
}

/* ---- etcd: etcdctl elect (concurrency.Election) and coord's election ---- */

static void etcd_election_etcdctl(void **state) {
    (void)state;
    void *st = (void *)&coord_test_etcd;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    char name[512];
    snprintf(name, sizeof name, "%s/election/ee", coord_client_prefix(fx.c));
    elections("ee");
    uint64_t t1, t2, t3;

    /* etcdctl first: it wins, coord's try is ELOCKED and sees etcdctl's proposal; coord's
     * campaign waits and wins once etcdctl resigns (SIGINT). */
    peer *p = etcdctl("elect", name, "etcdctl-1", NULL);
    EXPECT(p, "etcdctl-1"); /* printed on winning, after its key */
    expect_observed("etcdctl-1");
    assert_int_equal(campaign(fx.e, "coord-1", 0), COORD_ELOCKED);
    expect_leader(fx.e, "etcdctl-1", &t1);
    bg_start(NULL, fx.e, "coord-1");
    await_entries("election", "ee", 2);
    sleep_ms(QUIET_MS);
    assert_false(bg_done());
    kill(p->pid, SIGINT);
    assert_int_equal(bg_join(WAIT_MS), 0);
    assert_true(coord_election_is_leader(fx.e));
    assert_int_equal(coord_election_term(fx.e, &t2), 0);
    assert_true(t2 > t1);
    int rc = peer_wait(p, WAIT_MS);
    if (rc != 0 && rc != 128 + SIGINT) fail_msg("etcdctl elect exited with %d", rc);

    /* etcdctl elect -l prints coord's value, and the new one after a proclaim. */
    p = etcdctl("elect", "-l", name, NULL);
    EXPECT(p, "coord-1");
    assert_int_equal(coord_election_proclaim(fx.e, "coord-1b", 8), 0);
    EXPECT(p, "coord-1b");
    expect_leader(fx.e, "coord-1b", NULL);
    expect_observed("coord-1b");
    kill(p->pid, SIGINT);
    peer_wait(p, WAIT_MS);

    /* coord first: etcdctl waits and wins once coord resigns. */
    p = etcdctl("elect", name, "etcdctl-2", NULL);
    await_entries("election", "ee", 2);
    expect_quiet(p, "etcdctl-2", QUIET_MS);
    expect_leader(fx.e, "coord-1b", NULL);
    assert_int_equal(coord_election_resign(fx.e), 0);
    EXPECT(p, "etcdctl-2");
    expect_leader(fx.e, "etcdctl-2", &t3);
    assert_true(t3 > t2);
    expect_observed("etcdctl-2");
    kill(p->pid, SIGINT);
    rc = peer_wait(p, WAIT_MS);
    if (rc != 0 && rc != 128 + SIGINT) fail_msg("etcdctl elect exited with %d", rc);
    await_entries("election", "ee", 0);
    expect_observed(NULL);
}

/* ---- etcd: etcdctl and coord's key-value space and work queue ---- */

static int64_t unix_nano(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* etcdctl put KEY VALUE, to its "OK". */
static void etcdctl_put(const char *key, const char *value) {
    peer *p = etcdctl("put", key, value, NULL);
    EXPECT(p, "OK");
    assert_int_equal(peer_wait(p, WAIT_MS), 0);
}

static void etcd_kv_etcdctl(void **state) {
    (void)state;
    void *st = (void *)&coord_test_etcd;
    fx.c = coord_test_open(&st, NULL, NULL, NULL);
    const char *prefix = coord_client_prefix(fx.c);
    char key[512], dir[512], claims[512], out[4096], ek[600];
    snprintf(key, sizeof key, "%s/kv/x", prefix);

    /* etcdctl's put is coord's value and is reported by coord's watch; coord's put is what
     * etcdctl gets; etcdctl's delete is reported too. */
    int rc = coord_kv_watch_new(&fx.w, fx.c, "x", on_kv, NULL);
    if (rc) fail_msg("coord_kv_watch_new: %s: %s", coord_strerror(rc), coord_last_error());
    expect_watched(NULL, 0, 0);
    etcdctl_put(key, "from-etcdctl");
    int64_t v1 = expect_kv("x", "from-etcdctl", 12, -1);
    assert_true(v1 > 0);
    expect_watched("from-etcdctl", 12, v1);
    int64_t v2 = 0;
    assert_int_equal(coord_kv_put(fx.c, "x", "from-coord", 10, v1, &v2), 0);
    assert_true(v2 > v1);
    expect_watched("from-coord", 10, v2);
    peer *p = etcdctl("get", "--print-value-only", key, NULL);
    assert_string_equal(peer_output(p, out, sizeof out), "from-coord\n");
    p = etcdctl("del", key, NULL, NULL);
    assert_string_equal(peer_output(p, out, sizeof out), "1\n");
    expect_watched(NULL, 0, 0);
    expect_kv_absent("x");
    /* No parent keys on etcd: a deeper key etcdctl puts leaves its parent absent but listed. */
    snprintf(key, sizeof key, "%s/kv/a/b", prefix);
    etcdctl_put(key, "deep");
    expect_kv("a/b", "deep", 4, -1);
    expect_kv_absent("a");
    expect_kv_list("", "a");

    /* The queue: coord's item is "<prefix>/queue/<name>/<UnixNano>" to etcdctl; items etcdctl
     * puts under that prefix (the recipe's names) coord takes in create-revision order, also one
     * whose name sorts first (a producer whose clock lags an hour) but that came last. */
    snprintf(dir, sizeof dir, "%s/queue/jobs/", prefix);
    snprintf(claims, sizeof claims, "%s/queue-claims/jobs/", prefix);
    queue_open(0, "jobs");
    queue_open(1, "jobs");
    coord_queue *q = fx.q[0];
    queue_put(q, "coord-1");
    p = etcdctl("get", "--prefix", dir, NULL);
    peer_output(p, out, sizeof out);
    fprintf(stderr, "test_interop: etcdctl get --prefix %s:\n%s", dir, out);
    size_t dl = strlen(dir);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = 0;
    assert_true(!strncmp(out, dir, dl));
    char item[64];
    snprintf(item, sizeof item, "%s", out + dl);
    assert_true(strlen(item) >= 18 && strspn(item, "0123456789") == strlen(item));
    int64_t ns = strtoll(item, NULL, 10), now = unix_nano();
    assert_true(ns <= now && ns > now - 60 * 1000000000LL);
    assert_string_equal(nl + 1, "coord-1\n");
    snprintf(ek, sizeof ek, "%s%lld", dir, (long long)unix_nano());
    etcdctl_put(ek, "etcdctl-2");
    queue_put(q, "coord-3");
    snprintf(ek, sizeof ek, "%s%lld", dir, (long long)(unix_nano() - 3600 * 1000000000LL));
    etcdctl_put(ek, "etcdctl-4");
    queue_size_is(q, 4);
    /* coord's claim of the head is "<prefix>/queue-claims/<name>/<item name>" to etcdctl. */
    expect_claim(1, "coord-1");
    p = etcdctl("get", "--prefix", "--keys-only", claims);
    peer_output(p, out, sizeof out);
    char want[700];
    snprintf(want, sizeof want, "%s%s\n\n", claims, item);
    assert_string_equal(out, want);
    expect_take(q, "etcdctl-2");
    expect_take(q, "coord-3");
    expect_take(q, "etcdctl-4");
    expect_take(q, NULL);
    assert_int_equal(coord_item_ack(fx.item), 0);
    fx.item = NULL;
    p = etcdctl("get", "--prefix", "--keys-only", dir);
    assert_string_equal(peer_output(p, out, sizeof out), "");
    p = etcdctl("get", "--prefix", "--keys-only", claims);
    assert_string_equal(peer_output(p, out, sizeof out), "");
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    setenv("COORD_INTEROP_MAX_MS", "120000", 0); /* the peers' watchdog */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(zk_lock_curator, teardown),
        cmocka_unit_test_teardown(zk_election_curator, teardown),
        cmocka_unit_test_teardown(zk_election_kazoo, teardown),
        cmocka_unit_test_teardown(zk_semaphore_curator, teardown),
        cmocka_unit_test_teardown(zk_rwlock_curator, teardown),
        cmocka_unit_test_teardown(zk_barrier_curator, teardown),
        cmocka_unit_test_teardown(zk_dbarrier_kazoo, teardown),
        cmocka_unit_test_teardown(zk_queue_curator, teardown),
        cmocka_unit_test_teardown(zk_kv_curator, teardown),
        cmocka_unit_test_teardown(etcd_election_etcdctl, teardown),
        cmocka_unit_test_teardown(etcd_kv_etcdctl, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
