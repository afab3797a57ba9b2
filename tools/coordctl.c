/*
 * coordctl: coord from the shell. Run `coordctl --help`, or see coordctl(1).
 *
 * Signals: every signal coordctl reacts to is blocked in all threads from the start (the
 * library's threads inherit the mask) and taken by the main thread with sigwaitinfo, so nothing
 * runs in a signal handler and a signal can never interrupt the library.
 */
#define _GNU_SOURCE
#include <coord.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_CONFLICT                                                                              \
    3 /* counter cas, kv --expect: the value or version was another one; semaphore: MAX */
#define EXIT_ABSENT 4 /* kv get, kv delete: the key is absent */
#define EXIT_LOCKED                                                                                \
    75 /* not acquired, not elected, barrier raised, within --timeout (EX_TEMPFAIL) */
#define QUEUE_SLICE_MS                                                                             \
    1000 /* queue take, claim: the longest wait between two looks at a pending signal */
#define GRACE_MS                                                                                   \
    2000 /* elect: CMD gets SIGKILL this long after the SIGTERM of a lost leadership               \
          */

static const char *prog = "coordctl";
static bool json;

static void usage(FILE *f) {
    fprintf(f,
            "usage: coordctl [--uri URI] [--json] COMMAND ...\n"
            "\n"
            "  lock NAME [--timeout MS] -- CMD [ARG...]\n"
            "      run CMD while holding the lock NAME; exit with CMD's status\n"
            "  semaphore NAME MAX [--timeout MS] -- CMD [ARG...]\n"
            "      run CMD holding one of the MAX leases of the semaphore NAME\n"
            "  rwlock NAME --read|--write [--timeout MS] -- CMD [ARG...]\n"
            "      run CMD holding the read-write lock NAME shared (--read) or alone (--write)\n"
            "  barrier NAME raise|lower|wait [--timeout MS]\n"
            "      raise or lower the barrier NAME, or wait until it is not raised\n"
            "  counter get NAME [--shards S]\n"
            "  counter add NAME DELTA [--shards S]     prints the new value\n"
            "  counter set NAME VALUE\n"
            "  counter cas NAME EXPECTED NEW\n"
            "  ring members GROUP\n"
            "  ring lookup GROUP KEY [-n N]            prints the owner (N replicas with -n)\n"
            "  ring join GROUP MEMBER_ID [--weight W] [--data D]\n"
            "      hold the membership until SIGINT or SIGTERM, then leave\n"
            "  elect NAME [VALUE] [--timeout MS] [--grace MS] [-- CMD [ARG...]]\n"
            "      campaign with VALUE (default hostname:pid), print \"leader TERM VALUE\" once\n"
            "      leading, then lead until SIGINT or SIGTERM, or run CMD while leading (SIGTERM,\n"
            "      then SIGKILL after --grace MS, default 2000, if the leadership is lost);\n"
            "      resign at exit\n"
            "  elect --observe NAME                    print each leader change (or \"none\")\n"
            "  kv get KEY [--version]                  the value, raw (--version: its version\n"
            "                                          on stderr)\n"
            "  kv put KEY VALUE|- [--expect V]         prints the new version (-: from stdin)\n"
            "  kv delete KEY [--expect V]\n"
            "      --expect V: only at version V (0: put only if absent)\n"
            "  kv list [PREFIX]                        the names one level below PREFIX\n"
            "  kv watch KEY [--count N]                print \"VERSION VALUE\" (\"0 -\" when\n"
            "      absent) now and at each change, until SIGINT or SIGTERM or N lines\n"
            "  get|put|del|watch|list ...              the same as kv get|put|delete|...\n"
            "  txn OP... [--lock NAME [--timeout MS]]  apply all or nothing: check KEY V (0:\n"
            "      absent), put KEY VALUE|-, del KEY; --lock: hold the lock NAME and guard the\n"
            "      transaction with it; prints the new version of each put\n"
            "  queue NAME put VALUE|-                  (queue put NAME ... is accepted too)\n"
            "  queue NAME take [--timeout MS]          remove the oldest item, print it raw\n"
            "  queue NAME size                         items not taken or claimed\n"
            "  queue NAME claim [--timeout MS] -- CMD [ARG...]\n"
            "      claim the oldest item, run CMD with it on stdin; ack it if CMD exits 0,\n"
            "      give it back otherwise; exit with CMD's status\n"
            "\n"
            "  --uri URI   zk://host:port,.../prefix or etcd[s]://host:port,.../prefix\n"
            "              (default: $COORD_URI)\n"
            "  --json      machine-readable output\n"
            "  --help, --version\n"
            "\n"
            "exit status: 0 ok, 1 failure (also a leadership, lock, lease or claim lost while\n"
            "leading or running CMD), 2 usage or invalid argument, 3 counter cas found\n"
            "another value, the semaphore has another MAX, a kv key another version than\n"
            "--expect or a txn check or guard failed, 4 kv key absent, 75 not acquired, not "
            "elected, barrier still raised or\n"
            "queue empty within --timeout; commands run with CMD otherwise exit with CMD's\n"
            "status (128+N when CMD was killed by signal N, or when coordctl was interrupted\n"
            "by signal N while waiting).\n");
}

/* One line on stderr. A bad argument (name, value out of range, cas on a sharded counter) is a
 * usage error. */
static int fail_detail(int rc, const char *what, const char *detail) {
    fprintf(stderr, "%s: %s: %s: %s\n", prog, what, coord_strerror(rc), detail);
    return rc == COORD_EINVAL ? EXIT_USAGE : EXIT_FAIL;
}

static int fail(int rc, const char *what) {
    return fail_detail(rc, what, coord_last_error());
}

static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see coordctl --help)\n");
    return EXIT_USAGE;
}

static bool parse_i64(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max) return false;
    *out = v;
    return true;
}

/* A JSON string of `len` bytes (ids and names are 1-255 bytes without control characters, keys
 * and election values anything). */
static void json_mem(FILE *f, const void *s, size_t len) {
    fputc('"', f);
    const unsigned char *p = s; /* NULL when len is 0 */
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '"' || p[i] == '\\')
            fprintf(f, "\\%c", p[i]);
        else if (p[i] < 0x20)
            fprintf(f, "\\u%04x", p[i]);
        else
            fputc(p[i], f);
    }
    fputc('"', f);
}

static void json_to(FILE *f, const char *s) {
    json_mem(f, s, strlen(s));
}

static void json_str(const char *s) {
    json_to(stdout, s);
}

/* ---------- signals ---------- */

static sigset_t waited;

static bool int_ignored; /* SIGINT was ignored when we started (a script's background job) */

static void block_signals(void) {
    /* An inherited "ignore" would discard these before sigwaitinfo could see them (and make
     * children vanish unwaited). SIGINT is taken even in a script's background job, so
     * `kill -INT` ends a `ring join &`; SIGHUP stays ignored under nohup. */
    int_ignored = signal(SIGINT, SIG_DFL) == SIG_IGN;
    signal(SIGTERM, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    sigemptyset(&waited);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaddset(&waited, sigs[i]);
    pthread_sigmask(SIG_BLOCK, &waited, NULL);
}

static atomic_bool session_lost; /* since the last reset (queue claim) */

/* The session was lost: the main thread hears it as SIGUSR1. */
static void on_session(coord_client *c, coord_session_state st, void *payload) {
    (void)c;
    (void)payload;
    if (st == COORD_SESSION_LOST) {
        atomic_store(&session_lost, true);
        kill(getpid(), SIGUSR1);
    }
}

/* ---------- commands run while holding something ---------- */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A blocking call (an acquire, a campaign) made in a thread while the main thread takes the
 * signals: SIGINT, SIGTERM, SIGHUP or SIGQUIT cancel it. */
typedef struct blocking {
    int (*call)(struct blocking *b);
    void (*cancel)(void *h);
    void *h;           /* the lock, semaphore, rwlock, barrier or election */
    const void *value; /* campaign only */
    size_t len;
    int timeout_ms;
    int rc;
    char err[512]; /* the call's coord_last_error(), which is the calling thread's */
    atomic_bool done;
} blocking;

static void *blocking_main(void *arg) {
    blocking *b = arg;
    b->rc = b->call(b);
    snprintf(b->err, sizeof b->err, "%s", coord_last_error());
    atomic_store(&b->done, true);
    kill(getpid(), SIGUSR1); /* wake the main thread */
    return NULL;
}

/* Make b's call; b->rc is its result. Returns 0, the signal that interrupted the wait (the call
 * has returned by then), or -1 when no thread could be started (said on stderr). */
static int run_blocking(blocking *b) {
    pthread_t th;
    if (pthread_create(&th, NULL, blocking_main, b)) {
        fprintf(stderr, "%s: cannot start a thread\n", prog);
        return -1;
    }
    int interrupted = 0;
    while (!atomic_load(&b->done)) { /* the call sends SIGUSR1 when it returns */
        siginfo_t si;
        int sig = sigwaitinfo(&waited, &si);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
            if (!interrupted) b->cancel(b->h);
            interrupted = sig;
        }
    }
    pthread_join(th, NULL);
    return interrupted;
}

/* Fork and exec CMD with the signals unblocked, the `n` environment variables env[2i] =
 * env[2i+1] and, when in_fd > 0, in_fd as its standard input. The child's pid, or -1 after
 * saying why. */
static pid_t spawn(char **cmd, const char *const *env, size_t n, int in_fd) {
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
        return -1;
    }
    if (child == 0) {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (int_ignored) signal(SIGINT, SIG_IGN); /* CMD gets what we were given */
        for (size_t i = 0; i < n; i++)
            setenv(env[2 * i], env[2 * i + 1], 1);
        if (in_fd > 0 && (dup2(in_fd, 0) < 0 || close(in_fd))) {
            fprintf(stderr, "%s: stdin of %s: %s\n", prog, cmd[0], strerror(errno));
            _exit(127);
        }
        execvp(cmd[0], cmd);
        fprintf(stderr, "%s: %s: %s\n", prog, cmd[0], strerror(errno));
        _exit(127);
    }
    return child;
}

/*
 * Wait for `child` to end, forwarding SIGINT, SIGTERM, SIGHUP and SIGQUIT to it. At each
 * SIGUSR1 `ours(arg)` says whether what CMD runs under (a lock, a leadership) is still held;
 * once it is not, `lost_msg` goes to stderr, the child gets SIGTERM and, grace_ms later
 * (unless grace_ms < 0), SIGKILL. Returns the child's wait status; *lost tells whether it was
 * lost.
 */
static int supervise(pid_t child, const char *cmd0, bool (*ours)(void *), void *arg,
                     const char *lost_msg, int grace_ms, bool *lost) {
    *lost = false;
    int status = 0;
    int64_t kill_at = -1;
    if (!ours(arg)) kill(getpid(), SIGUSR1); /* lost before CMD started: look at once */
    while (1) {
        siginfo_t si;
        int sig;
        if (kill_at >= 0) {
            int64_t left = kill_at - now_ms();
            if (left <= 0) {
                fprintf(stderr, "%s: %s did not end within %d ms of SIGTERM; killing it\n", prog,
                        cmd0, grace_ms);
                kill(child, SIGKILL);
                kill_at = -1;
                continue;
            }
            struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
            sig = sigtimedwait(&waited, &si, &ts);
        } else {
            sig = sigwaitinfo(&waited, &si);
        }
        if (sig < 0) continue;
        if (sig == SIGCHLD) {
            if (waitpid(child, &status, WNOHANG) == child) break;
        } else if (sig == SIGUSR1) {
            if (!*lost && !ours(arg)) {
                *lost = true;
                fprintf(stderr, "%s: lost %s while %s ran; stopping it\n", prog, lost_msg, cmd0);
                kill(child, SIGTERM);
                if (grace_ms >= 0) kill_at = now_ms() + grace_ms;
            }
        } else {
            kill(child, sig); /* forward */
        }
    }
    return status;
}

/* What CMD runs under: a lock, a semaphore lease, a read-write lock or a leadership. */
typedef struct held {
    const char *const *env;  /* CMD's environment: env[2i] = env[2i+1] */
    size_t nenv;             /* pairs */
    bool (*ours)(void *arg); /* still held? */
    void *arg;
    const char *what; /* what was lost, for the message */
    int grace_ms;     /* SIGKILL this long after the SIGTERM of a loss; -1: never */
    int in_fd;        /* CMD's standard input when > 0 (else coordctl's) */
} held;

/* Run CMD under `h` (*lost: whether it was lost meanwhile). CMD's exit status (128+N for signal
 * N), or EXIT_FAIL when it could not start or `h` was lost. */
static int run_held(char **cmd, const held *h, bool *lost) {
    *lost = false;
    pid_t child = spawn(cmd, h->env, h->nenv, h->in_fd);
    if (child < 0) return EXIT_FAIL;
    int status = supervise(child, cmd[0], h->ours, h->arg, h->what, h->grace_ms, lost);
    if (*lost) return EXIT_FAIL;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* ---------- lock, semaphore, rwlock: CMD run while holding one ---------- */

/* One of them, through its handle's calls. */
typedef struct guard {
    const char *kind; /* "lock", "semaphore", "rwlock": the messages' word, the JSON note's key */
    const char *name;
    void *h;
    int (*acquire)(blocking *b);
    void (*cancel)(void *h);
    bool (*held)(void *h);
    int (*release)(void *h);
    void (*free)(void *h);
    int (*token)(const void *h, uint64_t *out); /* NULL: no fencing token */
    const char *token_var, *name_var;           /* CMD's environment (token_var with token) */
    const char *extra_var, *extra_key, *extra;  /* one more: the limit, the mode */
    bool extra_num;                             /* extra is a number in the JSON note */
} guard;

/* Holding g: run CMD, release when it ends. CMD's exit status, or EXIT_FAIL. */
static int run_guarded(const guard *g, char **cmd) {
    char tok[32] = "";
    uint64_t token = 0;
    if (g->token && !g->token(g->h, &token)) snprintf(tok, sizeof tok, "%" PRIu64, token);
    if (json) { /* stdout belongs to CMD: the JSON note goes to stderr */
        fprintf(stderr, "{\"%s\":", g->kind);
        json_to(stderr, g->name);
        if (g->extra_num)
            fprintf(stderr, ",\"%s\":%s", g->extra_key, g->extra);
        else if (g->extra)
            fprintf(stderr, ",\"%s\":\"%s\"", g->extra_key, g->extra);
        if (*tok) fprintf(stderr, ",\"token\":%s", tok);
        fprintf(stderr, "}\n");
    }
    const char *env[6];
    size_t n = 0;
    env[2 * n] = g->name_var;
    env[2 * n++ + 1] = g->name;
    if (*tok) {
        env[2 * n] = g->token_var;
        env[2 * n++ + 1] = tok;
    }
    if (g->extra_var) {
        env[2 * n] = g->extra_var;
        env[2 * n++ + 1] = g->extra;
    }
    char what[300];
    snprintf(what, sizeof what, "%s %s (session expired)", g->kind, g->name);
    held h = {env, n, g->held, g->h, what, -1, -1};
    bool lost;
    int st = run_held(cmd, &h, &lost);
    int rc = g->release(g->h);
    if (rc && !lost) fail(rc, "release");
    return st;
}

/* Acquire g (within timeout_ms; < 0: no bound), run CMD, release, free g's handle. CMD's exit
 * status, or EXIT_LOCKED, EXIT_CONFLICT (a semaphore's other limit), 128+N when signal N
 * interrupted the wait, EXIT_FAIL. */
static int cmd_guarded(const guard *g, int timeout_ms, char **cmd) {
    blocking b = {.call = g->acquire, .cancel = g->cancel, .h = g->h, .timeout_ms = timeout_ms};
    int interrupted = run_blocking(&b);
    int rc = b.rc, st;
    if (interrupted < 0) {
        st = EXIT_FAIL;
    } else if (interrupted) {
        if (rc == 0) g->release(g->h);
        fprintf(stderr, "%s: interrupted while waiting for %s %s\n", prog, g->kind, g->name);
        st = 128 + interrupted;
    } else if (rc == COORD_ETIMEDOUT || rc == COORD_ELOCKED) {
        fprintf(stderr, "%s: %s %s not acquired within %d ms\n", prog, g->kind, g->name,
                timeout_ms < 0 ? 0 : timeout_ms);
        st = EXIT_LOCKED;
    } else if (rc == COORD_ECONFLICT) { /* a semaphore: the stored limit is another */
        fail_detail(rc, g->kind, b.err);
        st = EXIT_CONFLICT;
    } else if (rc) {
        st = fail_detail(rc, g->kind, b.err);
    } else {
        st = run_guarded(g, cmd);
    }
    g->free(g->h);
    return st;
}

/* The options after a guard's NAME (and MAX): [--timeout MS] [--read|--write] -- CMD [ARG...].
 * `mode` is NULL where --read and --write are not options, else 'r' or 'w' (one is wanted).
 * 0, or EXIT_USAGE after saying why. */
static int guard_args(const char *kind, int argc, char **argv, int *timeout_ms, char *mode,
                      char ***cmd) {
    *timeout_ms = -1;
    int i = 0;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        unsigned long v;
        if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            if (!parse_uint(argv[++i], INT_MAX, &v))
                return bad_usage("--timeout wants milliseconds, not \"%s\"", argv[i]);
            *timeout_ms = (int)v;
        } else if (mode && (!strcmp(argv[i], "--read") || !strcmp(argv[i], "--write"))) {
            char m = argv[i][2];
            if (*mode && *mode != m) return bad_usage("%s takes --read or --write, not both", kind);
            *mode = m;
        } else {
            fprintf(stderr, "%s: unknown %s option \"%s\" (see coordctl --help)\n", prog, kind,
                    argv[i]);
            return EXIT_USAGE;
        }
    }
    if (mode && !*mode) return bad_usage("%s wants --read or --write", kind);
    if (i + 1 >= argc) return bad_usage("%s wants -- CMD [ARG...]", kind);
    *cmd = argv + i + 1;
    return 0;
}

/* ---------- lock ---------- */

static int lock_acquire_call(blocking *b) {
    return coord_lock_acquire(b->h, b->timeout_ms);
}
static void lock_cancel(void *h) {
    coord_lock_cancel(h);
}
static bool lock_held(void *h) {
    return coord_lock_held(h);
}
static int lock_release(void *h) {
    return coord_lock_release(h);
}
static void lock_free(void *h) {
    coord_lock_free(h);
}
static int lock_token(const void *h, uint64_t *out) {
    return coord_lock_token(h, out);
}

static int cmd_lock(coord_client *c, int argc, char **argv) {
    if (argc < 1) return bad_usage("lock wants a NAME%s", "");
    int timeout_ms;
    char **cmd;
    int u = guard_args("lock", argc - 1, argv + 1, &timeout_ms, NULL, &cmd);
    if (u) return u;
    coord_lock *l;
    int rc = coord_lock_new(&l, c, argv[0]);
    if (rc) return fail(rc, "lock");
    guard g = {.kind = "lock",
               .name = argv[0],
               .h = l,
               .acquire = lock_acquire_call,
               .cancel = lock_cancel,
               .held = lock_held,
               .release = lock_release,
               .free = lock_free,
               .token = lock_token,
               .token_var = "COORD_LOCK_TOKEN",
               .name_var = "COORD_LOCK_NAME"};
    return cmd_guarded(&g, timeout_ms, cmd);
}

/* ---------- semaphore ---------- */

static int sem_acquire_call(blocking *b) {
    return coord_semaphore_acquire(b->h, b->timeout_ms);
}
static void sem_cancel(void *h) {
    coord_semaphore_cancel(h);
}
static bool sem_held(void *h) {
    return coord_semaphore_held(h);
}
static int sem_release(void *h) {
    return coord_semaphore_release(h);
}
static void sem_free(void *h) {
    coord_semaphore_free(h);
}

static int cmd_semaphore(coord_client *c, int argc, char **argv) {
    if (argc < 2) return bad_usage("semaphore wants a NAME and a MAX%s", "");
    unsigned long max;
    if (!parse_uint(argv[1], UINT_MAX, &max) || max < 1)
        return bad_usage("semaphore MAX wants a positive number, not \"%s\"", argv[1]);
    int timeout_ms;
    char **cmd;
    int u = guard_args("semaphore", argc - 2, argv + 2, &timeout_ms, NULL, &cmd);
    if (u) return u;
    coord_semaphore *s;
    int rc = coord_semaphore_new(&s, c, argv[0], (unsigned)max);
    if (rc) return fail(rc, "semaphore");
    guard g = {.kind = "semaphore",
               .name = argv[0],
               .h = s,
               .acquire = sem_acquire_call,
               .cancel = sem_cancel,
               .held = sem_held,
               .release = sem_release,
               .free = sem_free,
               .name_var = "COORD_SEMAPHORE_NAME",
               .extra_var = "COORD_SEMAPHORE_MAX",
               .extra_key = "max",
               .extra = argv[1],
               .extra_num = true};
    return cmd_guarded(&g, timeout_ms, cmd);
}

/* ---------- rwlock ---------- */

static int rw_read_call(blocking *b) {
    return coord_rwlock_rdlock(b->h, b->timeout_ms);
}
static int rw_write_call(blocking *b) {
    return coord_rwlock_wrlock(b->h, b->timeout_ms);
}
static void rw_cancel(void *h) {
    coord_rwlock_cancel(h);
}
static bool rw_held(void *h) {
    return coord_rwlock_held(h);
}
static int rw_release(void *h) {
    return coord_rwlock_unlock(h);
}
static void rw_free(void *h) {
    coord_rwlock_free(h);
}
static int rw_token(const void *h, uint64_t *out) {
    return coord_rwlock_token(h, out);
}

static int cmd_rwlock(coord_client *c, int argc, char **argv) {
    if (argc < 1) return bad_usage("rwlock wants a NAME%s", "");
    int timeout_ms;
    char mode = 0, **cmd;
    int u = guard_args("rwlock", argc - 1, argv + 1, &timeout_ms, &mode, &cmd);
    if (u) return u;
    coord_rwlock *l;
    int rc = coord_rwlock_new(&l, c, argv[0]);
    if (rc) return fail(rc, "rwlock");
    guard g = {.kind = "rwlock",
               .name = argv[0],
               .h = l,
               .acquire = mode == 'r' ? rw_read_call : rw_write_call,
               .cancel = rw_cancel,
               .held = rw_held,
               .release = rw_release,
               .free = rw_free,
               .token = rw_token,
               .token_var = "COORD_RWLOCK_TOKEN",
               .name_var = "COORD_RWLOCK_NAME",
               .extra_var = "COORD_RWLOCK_MODE",
               .extra_key = "mode",
               .extra = mode == 'r' ? "read" : "write"};
    return cmd_guarded(&g, timeout_ms, cmd);
}

/* ---------- barrier ---------- */

static int barrier_wait_call(blocking *b) {
    return coord_barrier_wait(b->h, b->timeout_ms);
}
static void barrier_cancel(void *h) {
    coord_barrier_cancel(h);
}

static int cmd_barrier(coord_client *c, int argc, char **argv) {
    if (argc < 2) return bad_usage("barrier wants a NAME and raise|lower|wait%s", "");
    const char *name = argv[0], *op = argv[1];
    bool waiting = !strcmp(op, "wait");
    if (!waiting && strcmp(op, "raise") && strcmp(op, "lower"))
        return bad_usage("unknown barrier command \"%s\"", op);
    int timeout_ms = -1;
    for (int i = 2; i < argc; i++) {
        unsigned long v;
        if (waiting && !strcmp(argv[i], "--timeout") && i + 1 < argc) {
            if (!parse_uint(argv[++i], INT_MAX, &v))
                return bad_usage("--timeout wants milliseconds, not \"%s\"", argv[i]);
            timeout_ms = (int)v;
        } else {
            return bad_usage("unexpected barrier argument \"%s\"", argv[i]);
        }
    }
    coord_barrier *b;
    int rc = coord_barrier_new(&b, c, name);
    if (rc) return fail(rc, "barrier");
    int st = EXIT_OK;
    if (!waiting) {
        rc = op[0] == 'r' ? coord_barrier_raise(b) : coord_barrier_lower(b);
    } else {
        blocking w = {
            .call = barrier_wait_call, .cancel = barrier_cancel, .h = b, .timeout_ms = timeout_ms};
        int interrupted = run_blocking(&w);
        rc = w.rc;
        if (interrupted < 0) {
            st = EXIT_FAIL;
        } else if (interrupted) {
            fprintf(stderr, "%s: interrupted while waiting at barrier %s\n", prog, name);
            st = 128 + interrupted;
        } else if (rc == COORD_ETIMEDOUT || rc == COORD_ELOCKED) {
            if (timeout_ms > 0)
                fprintf(stderr, "%s: barrier %s still raised after %d ms\n", prog, name,
                        timeout_ms);
            else
                fprintf(stderr, "%s: barrier %s is raised\n", prog, name);
            st = EXIT_LOCKED;
        } else if (rc) {
            st = fail_detail(rc, op, w.err);
        }
    }
    if (st == EXIT_OK && rc)
        st = fail(rc, op);
    else if (st == EXIT_OK && json) {
        printf("{\"barrier\":");
        json_str(name);
        printf(",\"raised\":%s}\n", op[0] == 'r' ? "true" : "false");
    }
    coord_barrier_free(b);
    return st;
}

/* ---------- counter ---------- */

static int print_value(const char *name, int64_t v) {
    if (json) {
        printf("{\"counter\":");
        json_str(name);
        printf(",\"value\":%" PRId64 "}\n", v);
    } else {
        printf("%" PRId64 "\n", v);
    }
    return EXIT_OK;
}

static int cmd_counter(coord_client *c, int argc, char **argv) {
    if (argc < 2) return bad_usage("counter wants get|add|set|cas NAME%s", "");
    const char *op = argv[0], *name = argv[1];
    int want = !strcmp(op, "get")                         ? 0
               : !strcmp(op, "add") || !strcmp(op, "set") ? 1
               : !strcmp(op, "cas")                       ? 2
                                                          : -1;
    if (want < 0) return bad_usage("unknown counter command \"%s\"", op);
    int64_t vals[2] = {0, 0};
    int nvals = 0;
    coord_counter_options o = COORD_COUNTER_OPTIONS_INIT;
    for (int i = 2; i < argc; i++) {
        unsigned long v;
        if (!strcmp(argv[i], "--shards") && i + 1 < argc) {
            if (!parse_uint(argv[++i], 4096, &v) || v < 1)
                return bad_usage("--shards wants a number from 1 to 4096, not \"%s\"", argv[i]);
            o.shards = (unsigned)v;
        } else if (nvals < 2 && parse_i64(argv[i], &vals[nvals])) {
            nvals++;
        } else {
            return bad_usage("unexpected counter argument \"%s\"", argv[i]);
        }
    }
    if (nvals != want) return bad_usage("counter %s: wrong number of values", op);
    coord_counter *k;
    int rc = coord_counter_new(&k, c, name, &o);
    if (rc) return fail(rc, "counter");
    int64_t v = 0;
    int st = EXIT_OK;
    if (!strcmp(op, "get")) {
        rc = coord_counter_get(k, &v);
    } else if (!strcmp(op, "add")) {
        rc = coord_counter_add(k, vals[0], &v);
    } else if (!strcmp(op, "set")) {
        rc = coord_counter_set(k, vals[0]);
        v = vals[0];
    } else {
        rc = coord_counter_cas(k, vals[0], vals[1]);
        v = vals[1];
        if (rc == COORD_ECONFLICT) {
            int64_t now = 0;
            coord_counter_get(k, &now);
            fprintf(stderr, "%s: counter %s is %" PRId64 ", not %" PRId64 "; unchanged\n", prog,
                    name, now, vals[0]);
            st = EXIT_CONFLICT;
            rc = 0;
            v = now;
        }
    }
    if (rc)
        st = fail(rc, op);
    else if (st == EXIT_OK)
        print_value(name, v);
    coord_counter_free(k);
    return st;
}

/* ---------- ring ---------- */

static int cmd_ring_join(coord_client *c, const char *group, int argc, char **argv) {
    if (argc < 1) return bad_usage("ring join wants a MEMBER_ID%s", "");
    const char *id = argv[0], *data = "";
    unsigned long weight = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--weight") && i + 1 < argc) {
            if (!parse_uint(argv[++i], COORD_RING_MAX_WEIGHT, &weight))
                return bad_usage("--weight wants a number from 0 to 65535, not \"%s\"", argv[i]);
        } else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            data = argv[++i];
        } else {
            return bad_usage("unknown ring join option \"%s\"", argv[i]);
        }
    }
    coord_ring *r;
    int rc = coord_ring_new(&r, c, group, NULL);
    if (rc) return fail(rc, "ring");
    if ((rc = coord_ring_join(r, id, data, strlen(data), (unsigned)weight))) {
        coord_ring_free(r);
        return fail(rc, "join");
    }
    if (json) {
        printf("{\"group\":");
        json_str(group);
        printf(",\"joined\":");
        json_str(id);
        printf(",\"epoch\":\"%016" PRIx64 "\"}\n", coord_ring_epoch(r));
    } else {
        printf("joined %s as %s; leaving on SIGINT or SIGTERM\n", group, id);
    }
    fflush(stdout);
    int sig;
    do {
        siginfo_t si;
        sig = sigwaitinfo(&waited, &si);
        if (sig == SIGUSR1)
            fprintf(stderr, "%s: session expired; the membership comes back with the next one\n",
                    prog);
    } while (sig != SIGINT && sig != SIGTERM && sig != SIGHUP);
    rc = coord_ring_leave(r);
    coord_ring_free(r);
    if (rc) return fail(rc, "leave");
    if (!json) printf("left %s\n", group);
    return EXIT_OK;
}

static int cmd_ring(coord_client *c, int argc, char **argv) {
    if (argc < 2) return bad_usage("ring wants members|lookup|join GROUP%s", "");
    const char *op = argv[0], *group = argv[1];
    if (!strcmp(op, "join")) return cmd_ring_join(c, group, argc - 2, argv + 2);
    const char *key = NULL;
    unsigned long n = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            if (!parse_uint(argv[++i], 1000, &n) || n < 1)
                return bad_usage("-n wants a number from 1 to 1000, not \"%s\"", argv[i]);
        } else if (!key && !strcmp(op, "lookup")) {
            key = argv[i];
        } else {
            return bad_usage("unexpected ring argument \"%s\"", argv[i]);
        }
    }
    if (strcmp(op, "members") && strcmp(op, "lookup"))
        return bad_usage("unknown ring command \"%s\"", op);
    if (!strcmp(op, "lookup") && !key) return bad_usage("ring lookup wants a KEY%s", "");
    coord_ring *r;
    int rc = coord_ring_new(&r, c, group, NULL);
    if (rc) return fail(rc, "ring");
    char **ids = NULL;
    size_t count = 0;
    if (!strcmp(op, "members")) {
        rc = coord_ring_members(r, &ids, &count);
    } else {
        size_t want = n ? n : 1;
        ids = calloc(want, sizeof *ids);
        rc = ids ? coord_ring_lookup_n(r, key, strlen(key), want, ids, &count) : COORD_ENOMEM;
    }
    uint64_t epoch = coord_ring_epoch(r);
    coord_ring_free(r);
    if (rc == COORD_ENOTFOUND && !strcmp(op, "lookup")) {
        free(ids);
        fprintf(stderr, "%s: ring %s has no members\n", prog, group);
        return EXIT_FAIL;
    }
    if (rc) {
        free(ids);
        return fail(rc, op);
    }
    if (json) {
        printf("{\"group\":");
        json_str(group);
        printf(",\"epoch\":\"%016" PRIx64 "\"", epoch);
        if (key) {
            printf(",\"key\":");
            json_str(key);
            printf(",\"owner\":");
            json_str(ids[0]);
        }
        printf(",\"%s\":[", key ? "replicas" : "members");
        for (size_t i = 0; i < count; i++) {
            if (i) putchar(',');
            json_str(ids[i]);
        }
        printf("]}\n");
    } else {
        for (size_t i = 0; i < count; i++)
            printf("%s\n", ids[i]);
    }
    coord_ring_strings_free(ids, count);
    return EXIT_OK;
}

/* ---------- elect ---------- */

/* "leader TERM VALUE", or "none" when `some` is false, or the same as a JSON object; a line. */
static void print_leader(FILE *f, const char *name, bool some, uint64_t term, const void *value,
                         size_t len) {
    if (json) {
        fprintf(f, "{\"election\":");
        json_to(f, name);
        if (some) {
            fprintf(f, ",\"leader\":{\"term\":%" PRIu64 ",\"value\":", term);
            json_mem(f, value, len);
            fprintf(f, "}}\n");
        } else {
            fprintf(f, ",\"leader\":null}\n");
        }
    } else if (some) {
        fprintf(f, "leader %" PRIu64 " ", term);
        if (len) fwrite(value, 1, len, f);
        fputc('\n', f);
    } else {
        fprintf(f, "none\n");
    }
}

/* A candidate. on_leader runs on a library thread: it records a loss and wakes the main
 * thread, which looks at `lost` and coord_election_is_leader. */
typedef struct elector {
    coord_election *e;
    atomic_bool led;  /* on_leader has reported this handle leading */
    atomic_bool lost; /* and then not leading (SUSPENDED, LOST, key gone, another leader) */
} elector;

static void on_leader_candidate(coord_election *e, const coord_leader *leader, void *payload) {
    (void)e;
    elector *el = payload;
    if (leader && leader->mine)
        atomic_store(&el->led, true);
    else if (atomic_load(&el->led))
        atomic_store(&el->lost, true);
    kill(getpid(), SIGUSR1);
}

static bool leading(void *arg) {
    elector *el = arg;
    return !atomic_load(&el->lost) && coord_election_is_leader(el->e);
}

static int campaign_call(blocking *b) {
    return coord_election_campaign(b->h, b->value, b->len, b->timeout_ms);
}

static void election_cancel(void *h) {
    coord_election_cancel(h);
}

/* Leading without CMD: until a signal ends it (EXIT_OK) or the leadership is lost. */
static int hold_leading(elector *el, const char *name) {
    while (leading(el)) {
        siginfo_t si;
        int sig = sigwaitinfo(&waited, &si);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) return EXIT_OK;
    }
    fprintf(stderr, "%s: lost the leadership of %s\n", prog, name);
    return EXIT_FAIL;
}

/* Leading with CMD: run it, stop it if the leadership is lost. Its exit status, or EXIT_FAIL. */
static int run_leading(elector *el, const char *name, uint64_t term, char **cmd, int grace_ms) {
    char t[32];
    snprintf(t, sizeof t, "%" PRIu64, term);
    char what[300];
    snprintf(what, sizeof what, "the leadership of %s", name);
    const char *env[] = {"COORD_ELECTION_TERM", t, "COORD_ELECTION_NAME", name};
    held h = {env, 2, leading, el, what, grace_ms, -1};
    bool lost;
    return run_held(cmd, &h, &lost);
}

static int campaign(coord_client *c, const char *name, const char *value, int timeout_ms,
                    int grace_ms, char **cmd) {
    elector el = {0};
    coord_election_options o = COORD_ELECTION_OPTIONS_INIT;
    o.on_leader = on_leader_candidate;
    o.payload = &el;
    int rc = coord_election_new(&el.e, c, name, &o);
    if (rc) return fail(rc, "elect");
    size_t len = strlen(value);
    blocking b = {.call = campaign_call,
                  .cancel = election_cancel,
                  .h = el.e,
                  .value = value,
                  .len = len,
                  .timeout_ms = timeout_ms};
    int interrupted = run_blocking(&b);
    rc = b.rc;
    if (interrupted) {
        if (interrupted > 0)
            fprintf(stderr, "%s: interrupted while campaigning in %s\n", prog, name);
        if (rc == 0) coord_election_resign(el.e);
        coord_election_free(el.e);
        return interrupted > 0 ? 128 + interrupted : EXIT_FAIL;
    }
    if (rc == COORD_ETIMEDOUT || rc == COORD_ELOCKED) {
        void *lv = NULL;
        size_t ll = 0;
        uint64_t lt = 0;
        fprintf(stderr, "%s: not elected in %s within %d ms", prog, name,
                timeout_ms < 0 ? 0 : timeout_ms);
        if (!coord_election_leader(el.e, &lv, &ll, &lt)) {
            fprintf(stderr, "; the leader is term %" PRIu64 ", value ", lt);
            json_mem(stderr, lv, ll);
        }
        fputc('\n', stderr);
        free(lv);
        coord_election_free(el.e);
        return EXIT_LOCKED;
    }
    if (rc) {
        int f = fail_detail(rc, "campaign", b.err);
        coord_election_free(el.e);
        return f;
    }
    uint64_t term = 0;
    int st;
    if (coord_election_term(el.e, &term)) {
        fprintf(stderr, "%s: lost the leadership of %s at once\n", prog, name);
        st = EXIT_FAIL;
    } else {
        FILE *out = cmd ? stderr : stdout; /* stdout belongs to CMD */
        print_leader(out, name, true, term, value, len);
        fflush(out);
        st = cmd ? run_leading(&el, name, term, cmd, grace_ms) : hold_leading(&el, name);
    }
    rc = coord_election_resign(el.e);
    if (rc && rc != COORD_ENOTHELD) {
        int f = fail(rc, "resign");
        if (!cmd) st = f;
    }
    coord_election_free(el.e);
    return st;
}

/* An observer: on_leader formats each report and queues it; the main thread prints them. */
typedef struct report {
    char *text;
    size_t len;
} report;

typedef struct observer {
    const char *name;
    pthread_mutex_t mu;
    report *q; /* guarded by mu */
    size_t n, cap;
} observer;

/* Queue `r` (r.text is taken) and wake the main thread. */
static void push_report(observer *o, report r) {
    pthread_mutex_lock(&o->mu);
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 16;
        report *q = realloc(o->q, cap * sizeof *q);
        if (q) {
            o->q = q;
            o->cap = cap;
        }
    }
    if (o->n < o->cap)
        o->q[o->n++] = r;
    else
        free(r.text);
    pthread_mutex_unlock(&o->mu);
    kill(getpid(), SIGUSR1);
}

static void on_leader_observed(coord_election *e, const coord_leader *leader, void *payload) {
    (void)e;
    observer *o = payload;
    report r = {NULL, 0};
    FILE *m = open_memstream(&r.text, &r.len);
    if (!m) return;
    if (leader)
        print_leader(m, o->name, true, leader->term, leader->value, leader->len);
    else
        print_leader(m, o->name, false, 0, NULL, 0);
    if (fclose(m)) return;
    push_report(o, r);
}

/* Print the queued reports, each unless it repeats the last one printed (kept in *last), at
 * most *left of them (counted down); the others are dropped. */
static void print_reports(observer *o, report *last, size_t *left) {
    pthread_mutex_lock(&o->mu);
    report *q = o->q;
    size_t n = o->n;
    o->q = NULL;
    o->n = o->cap = 0;
    pthread_mutex_unlock(&o->mu);
    for (size_t i = 0; i < n; i++) {
        if (!*left ||
            (last->text && last->len == q[i].len && !memcmp(last->text, q[i].text, q[i].len))) {
            free(q[i].text);
            continue;
        }
        fwrite(q[i].text, 1, q[i].len, stdout);
        free(last->text);
        *last = q[i];
        if (*left != SIZE_MAX) --*left;
    }
    free(q);
    fflush(stdout);
}

static int observe(coord_client *c, const char *name) {
    observer o = {.name = name};
    pthread_mutex_init(&o.mu, NULL);
    coord_election_options opts = COORD_ELECTION_OPTIONS_INIT;
    opts.on_leader = on_leader_observed;
    opts.payload = &o;
    coord_election *e;
    int rc = coord_election_new(&e, c, name, &opts);
    report last = {NULL, 0};
    size_t left = SIZE_MAX;
    int sig = 0;
    while (!rc && sig != SIGINT && sig != SIGTERM && sig != SIGHUP && sig != SIGQUIT) {
        print_reports(&o, &last, &left);
        siginfo_t si;
        sig = sigwaitinfo(&waited, &si);
    }
    if (!rc) coord_election_free(e); /* no report after this */
    print_reports(&o, &last, &left);
    free(last.text);
    pthread_mutex_destroy(&o.mu);
    return rc ? fail(rc, "elect") : EXIT_OK;
}

static int cmd_elect(coord_client *c, int argc, char **argv) {
    const char *name = NULL, *value = NULL;
    bool observing = false, timed = false;
    int timeout_ms = -1, grace_ms = GRACE_MS;
    char **cmd = NULL;
    for (int i = 0; i < argc && !cmd; i++) {
        unsigned long v;
        if (!strcmp(argv[i], "--")) {
            if (i + 1 >= argc) return bad_usage("elect: -- wants CMD [ARG...]%s", "");
            cmd = argv + i + 1;
        } else if (!strcmp(argv[i], "--observe")) {
            observing = true;
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            if (!parse_uint(argv[++i], INT_MAX, &v))
                return bad_usage("--timeout wants milliseconds, not \"%s\"", argv[i]);
            timeout_ms = (int)v;
            timed = true;
        } else if (!strcmp(argv[i], "--grace") && i + 1 < argc) {
            if (!parse_uint(argv[++i], INT_MAX, &v))
                return bad_usage("--grace wants milliseconds, not \"%s\"", argv[i]);
            grace_ms = (int)v;
            timed = true;
        } else if (!strncmp(argv[i], "--", 2)) {
            return bad_usage("unknown elect option \"%s\"", argv[i]);
        } else if (!name) {
            name = argv[i];
        } else if (!value) {
            value = argv[i];
        } else {
            return bad_usage("unexpected elect argument \"%s\"", argv[i]);
        }
    }
    if (!name) return bad_usage("elect wants a NAME%s", "");
    if (observing) {
        if (value || cmd || timed) return bad_usage("elect --observe takes only a NAME%s", "");
        return observe(c, name);
    }
    char defval[300];
    if (!value) {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1)) strcpy(host, "localhost");
        snprintf(defval, sizeof defval, "%s:%ld", host, (long)getpid());
        value = defval;
    }
    return campaign(c, name, value, timeout_ms, grace_ms, cmd);
}

/* ---------- kv ---------- */

/* VALUE, or standard input when it is "-": *buf is NULL for an argument, else malloc'd. 0, or
 * an exit status after saying why. */
static int read_value(const char *arg, char **buf, const char **val, size_t *len) {
    *buf = NULL;
    if (strcmp(arg, "-")) {
        *val = arg;
        *len = strlen(arg);
        return 0;
    }
    size_t cap = (size_t)COORD_VALUE_MAX + 1, n = 0;
    char *b = malloc(cap);
    if (!b) return fail_detail(COORD_ENOMEM, "stdin", "no memory for the value");
    while (n < cap) {
        size_t r = fread(b + n, 1, cap - n, stdin);
        n += r;
        if (!r) break;
    }
    if (ferror(stdin)) {
        free(b);
        fprintf(stderr, "%s: stdin: %s\n", prog, strerror(errno));
        return EXIT_FAIL;
    }
    if (n > COORD_VALUE_MAX) {
        free(b);
        return bad_usage("the value on stdin is over %s bytes", "1,000,000");
    }
    *buf = b;
    *val = b;
    *len = n;
    return 0;
}

/* --expect V: 0 or more. */
static bool parse_expect(const char *s, int64_t *out) {
    return parse_i64(s, out) && *out >= 0;
}

/* After a conflict or an absence: what the key is now, on stderr. */
static void say_now(coord_client *c, const char *key, const char *what, int64_t expect) {
    void *v = NULL;
    size_t len = 0;
    int64_t now = 0;
    int rc = coord_kv_get(c, key, &v, &len, &now);
    free(v);
    if (rc == COORD_ENOTFOUND)
        fprintf(stderr, "%s: kv %s is absent", prog, key);
    else if (rc)
        fprintf(stderr, "%s: kv %s is not at version %" PRId64, prog, key, expect);
    else if (expect == 0)
        fprintf(stderr, "%s: kv %s exists (version %" PRId64 ")", prog, key, now);
    else
        fprintf(stderr, "%s: kv %s is at version %" PRId64 ", not %" PRId64, prog, key, now,
                expect);
    fprintf(stderr, "; %s\n", what);
}

static int kv_get(coord_client *c, const char *key, bool show_version) {
    void *v = NULL;
    size_t len = 0;
    int64_t ver = 0;
    int rc = coord_kv_get(c, key, &v, &len, &ver);
    if (rc == COORD_ENOTFOUND) {
        fprintf(stderr, "%s: kv %s is absent\n", prog, key);
        return EXIT_ABSENT;
    }
    if (rc) return fail(rc, "get");
    if (json) {
        printf("{\"key\":");
        json_str(key);
        printf(",\"version\":%" PRId64 ",\"value\":", ver);
        json_mem(stdout, v, len);
        printf("}\n");
    } else {
        if (len) fwrite(v, 1, len, stdout);
        if (show_version) fprintf(stderr, "%" PRId64 "\n", ver);
    }
    free(v);
    return EXIT_OK;
}

static int kv_put(coord_client *c, const char *key, const char *arg, int64_t expect) {
    char *buf;
    const char *val;
    size_t len;
    int st = read_value(arg, &buf, &val, &len);
    if (st) return st;
    int64_t ver = 0;
    int rc = coord_kv_put(c, key, val, len, expect, &ver);
    free(buf);
    if (rc == COORD_ECONFLICT) {
        say_now(c, key, "unchanged", expect);
        return EXIT_CONFLICT;
    }
    if (rc) return fail(rc, "put");
    if (json) {
        printf("{\"key\":");
        json_str(key);
        printf(",\"version\":%" PRId64 "}\n", ver);
    } else {
        printf("%" PRId64 "\n", ver);
    }
    return EXIT_OK;
}

static int kv_delete(coord_client *c, const char *key, int64_t expect) {
    int rc = coord_kv_delete(c, key, expect);
    if (rc == COORD_ENOTFOUND) {
        fprintf(stderr, "%s: kv %s is absent\n", prog, key);
        return EXIT_ABSENT;
    }
    if (rc == COORD_ECONFLICT) {
        say_now(c, key, "not deleted", expect);
        return EXIT_CONFLICT;
    }
    if (rc) return fail(rc, "delete");
    if (json) {
        printf("{\"key\":");
        json_str(key);
        printf(",\"deleted\":true}\n");
    }
    return EXIT_OK;
}

static int kv_list(coord_client *c, const char *prefix) {
    char **keys = NULL;
    size_t n = 0;
    int rc = coord_kv_list(c, prefix, &keys, &n);
    if (rc == COORD_ENOTFOUND) rc = 0; /* nothing below it */
    if (rc) return fail(rc, "list");
    if (json) {
        printf("{\"prefix\":");
        json_str(prefix);
        printf(",\"keys\":[");
        for (size_t i = 0; i < n; i++) {
            if (i) putchar(',');
            json_str(keys[i]);
        }
        printf("]}\n");
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", keys[i]);
    }
    coord_strings_free(keys, n);
    return EXIT_OK;
}

/* A watch's report, formatted and queued for the main thread (on the watch's thread). */
static void on_kv_report(const char *key, const void *value, size_t len, int64_t version,
                         void *payload) {
    observer *o = payload;
    report r = {NULL, 0};
    FILE *m = open_memstream(&r.text, &r.len);
    if (!m) return;
    if (json) {
        fprintf(m, "{\"key\":");
        json_to(m, key);
        fprintf(m, ",\"version\":%" PRId64 ",\"value\":", value ? version : 0);
        if (value)
            json_mem(m, value, len);
        else
            fprintf(m, "null");
        fprintf(m, "}\n");
    } else if (value) {
        fprintf(m, "%" PRId64 " ", version);
        if (len) fwrite(value, 1, len, m);
        fputc('\n', m);
    } else {
        fprintf(m, "0 -\n");
    }
    if (fclose(m)) return;
    push_report(o, r);
}

static int kv_watch(coord_client *c, const char *key, size_t count) {
    observer o = {.name = key};
    pthread_mutex_init(&o.mu, NULL);
    coord_kv_watch *w = NULL;
    int rc = coord_kv_watch_new(&w, c, key, on_kv_report, &o);
    report last = {NULL, 0};
    size_t left = count ? count : SIZE_MAX;
    int sig = 0;
    while (!rc && left && sig != SIGINT && sig != SIGTERM && sig != SIGHUP && sig != SIGQUIT) {
        print_reports(&o, &last, &left);
        if (!left) break;
        siginfo_t si;
        sig = sigwaitinfo(&waited, &si);
    }
    coord_kv_watch_free(w); /* no report after this */
    print_reports(&o, &last, &left);
    free(last.text);
    pthread_mutex_destroy(&o.mu);
    return rc ? fail(rc, "watch") : EXIT_OK;
}

static int cmd_kv(coord_client *c, int argc, char **argv) {
    if (argc < 1) return bad_usage("kv wants get|put|delete|list|watch%s", "");
    const char *op = strcmp(argv[0], "del") ? argv[0] : "delete";
    int want = !strcmp(op, "get") || !strcmp(op, "delete") || !strcmp(op, "watch") ? 1
               : !strcmp(op, "put")                                                ? 2
               : !strcmp(op, "list")                                               ? 0
                                                                                   : -1;
    if (want < 0) return bad_usage("unknown kv command \"%s\"", op);
    const char *args[2] = {NULL, NULL};
    int nargs = 0;
    int64_t expect = -1;
    unsigned long count = 0;
    bool show_version = false;
    for (int i = 1; i < argc; i++) {
        bool put_or_del = !strcmp(op, "put") || !strcmp(op, "delete");
        if (put_or_del && !strcmp(argv[i], "--expect") && i + 1 < argc) {
            if (!parse_expect(argv[++i], &expect))
                return bad_usage("--expect wants a version (0 or more), not \"%s\"", argv[i]);
        } else if (!strcmp(op, "watch") && !strcmp(argv[i], "--count") && i + 1 < argc) {
            if (!parse_uint(argv[++i], ULONG_MAX, &count) || count < 1)
                return bad_usage("--count wants a positive number, not \"%s\"", argv[i]);
        } else if (!strcmp(op, "get") && !strcmp(argv[i], "--version")) {
            show_version = true;
        } else if (nargs < (want ? want : 1) && (strncmp(argv[i], "--", 2) || nargs == 1)) {
            args[nargs++] = argv[i]; /* a put's VALUE may start with "--" */
        } else {
            return bad_usage("unexpected kv argument \"%s\"", argv[i]);
        }
    }
    if (nargs < want) return bad_usage("kv %s: wrong number of arguments", op);
    if (!strcmp(op, "get")) return kv_get(c, args[0], show_version);
    if (!strcmp(op, "put")) return kv_put(c, args[0], args[1], expect);
    if (!strcmp(op, "delete")) return kv_delete(c, args[0], expect);
    if (!strcmp(op, "list")) return kv_list(c, args[0] ? args[0] : "");
    return kv_watch(c, args[0], count);
}

/* ---------- txn ---------- */

/* coordctl txn OP... [--lock NAME] [--timeout MS]: check KEY V, put KEY VALUE|-, del KEY. */
static int cmd_txn(coord_client *c, int argc, char **argv) {
    if (argc < 1)
        return bad_usage("txn wants operations: check KEY V, put KEY VALUE, del KEY%s", "");
    coord_txn *t = NULL;
    int rc = coord_txn_new(&t, c);
    if (rc) return fail(rc, "txn");
    const char *lock_name = NULL;
    int timeout_ms = -1;
    bool stdin_used = false, is_put[COORD_TXN_MAX] = {false};
    size_t nops = 0;
    int st = EXIT_OK;
    for (int i = 0; i < argc && !st; i++) {
        const char *op = argv[i];
        unsigned long v;
        int64_t ver;
        if (!strcmp(op, "--lock") && i + 1 < argc) {
            lock_name = argv[++i];
        } else if (!strcmp(op, "--timeout") && i + 1 < argc) {
            if (!parse_uint(argv[++i], INT_MAX, &v))
                st = bad_usage("--timeout wants milliseconds, not \"%s\"", argv[i]);
            else
                timeout_ms = (int)v;
        } else if (!strcmp(op, "check") && i + 2 < argc) {
            if (!parse_expect(argv[i + 2], &ver))
                st = bad_usage("txn check wants a version (0 or more), not \"%s\"", argv[i + 2]);
            else if ((rc = coord_txn_check(t, argv[i + 1], ver)))
                st = fail(rc, "txn check");
            else
                nops++;
            i += 2;
        } else if (!strcmp(op, "put") && i + 2 < argc) {
            char *buf = NULL;
            const char *val;
            size_t len;
            if (!strcmp(argv[i + 2], "-") && stdin_used)
                st = bad_usage("txn: only one put may read stdin (-)%s", "");
            else if (!(st = read_value(argv[i + 2], &buf, &val, &len))) {
                stdin_used = stdin_used || buf;
                if ((rc = coord_txn_put(t, argv[i + 1], val, len)))
                    st = fail(rc, "txn put");
                else if (nops < COORD_TXN_MAX)
                    is_put[nops++] = true;
            }
            free(buf);
            i += 2;
        } else if ((!strcmp(op, "del") || !strcmp(op, "delete")) && i + 1 < argc) {
            if ((rc = coord_txn_delete(t, argv[i + 1])))
                st = fail(rc, "txn del");
            else
                nops++;
            i += 1;
        } else {
            st = bad_usage("txn: unexpected argument \"%s\" (or missing operands)", op);
        }
    }
    if (!st && !nops) st = bad_usage("txn wants at least one operation%s", "");
    coord_lock *l = NULL;
    if (!st && lock_name) {
        if ((rc = coord_lock_new(&l, c, lock_name))) {
            st = fail(rc, "lock");
        } else {
            blocking b = {
                .call = lock_acquire_call, .cancel = lock_cancel, .h = l, .timeout_ms = timeout_ms};
            int interrupted = run_blocking(&b);
            rc = b.rc;
            if (interrupted < 0) {
                st = EXIT_FAIL;
            } else if (interrupted) {
                if (rc == 0) coord_lock_release(l);
                fprintf(stderr, "%s: interrupted while waiting for lock %s\n", prog, lock_name);
                st = 128 + interrupted;
            } else if (rc == COORD_ETIMEDOUT || rc == COORD_ELOCKED) {
                fprintf(stderr, "%s: lock %s not acquired within %d ms\n", prog, lock_name,
                        timeout_ms < 0 ? 0 : timeout_ms);
                st = EXIT_LOCKED;
            } else if (rc) {
                st = fail_detail(rc, "lock", b.err);
            } else if ((rc = coord_txn_guard(t, l))) {
                st = fail(rc, "txn guard");
                coord_lock_release(l);
            }
        }
    }
    if (!st) {
        rc = coord_txn_commit(t);
        if (rc == COORD_ECONFLICT) {
            fprintf(stderr, "%s: txn not applied: %s\n", prog, coord_last_error());
            st = EXIT_CONFLICT;
        } else if (rc == COORD_ENOTHELD) {
            fprintf(stderr, "%s: txn not applied: %s\n", prog, coord_last_error());
            st = EXIT_CONFLICT;
        } else if (rc) {
            st = fail(rc, "txn");
        } else {
            if (json) printf("{\"versions\":[");
            bool first = true;
            for (size_t i = 0; i < nops; i++) {
                if (!is_put[i]) continue;
                if (json)
                    printf("%s%" PRId64, first ? "" : ",", coord_txn_version(t, i));
                else
                    printf("%" PRId64 "\n", coord_txn_version(t, i));
                first = false;
            }
            if (json) printf("]}\n");
        }
        if (l && (rc = coord_lock_release(l)) && !st) st = fail(rc, "lock release");
    }
    coord_lock_free(l);
    coord_txn_free(t);
    return st;
}

/* ---------- queue ---------- */

/* A take or a claim made in slices of QUEUE_SLICE_MS, so that a signal ends the wait (the
 * library has no cancel for them). */
typedef struct qwait {
    coord_queue *q;
    bool claim;
    atomic_bool stop;
    void *data; /* take */
    size_t len;
    coord_item *item; /* claim */
} qwait;

static int queue_wait_call(blocking *b) {
    qwait *w = b->h;
    int64_t deadline = b->timeout_ms < 0 ? INT64_MAX : now_ms() + b->timeout_ms;
    for (;;) {
        int slice = QUEUE_SLICE_MS;
        if (b->timeout_ms >= 0) {
            int64_t left = deadline - now_ms();
            if (left < slice) slice = left < 0 ? 0 : (int)left;
        }
        int rc = w->claim ? coord_queue_claim(w->q, &w->item, slice)
                          : coord_queue_take(w->q, &w->data, &w->len, slice);
        if (rc != COORD_ETIMEDOUT && rc != COORD_ENOTFOUND && rc != COORD_ELOCKED) return rc;
        if (atomic_load(&w->stop)) return COORD_ECANCELED;
        if (slice == 0 || now_ms() >= deadline) return rc;
    }
}

static void queue_wait_cancel(void *h) {
    qwait *w = h;
    atomic_store(&w->stop, true);
}

/* Take or claim into w within timeout_ms. 0, or an exit status after saying why (an item
 * claimed when a signal came is given back; one taken is kept: the caller prints it). */
static int queue_wait(qwait *w, const char *name, int timeout_ms) {
    blocking b = {
        .call = queue_wait_call, .cancel = queue_wait_cancel, .h = w, .timeout_ms = timeout_ms};
    int interrupted = run_blocking(&b);
    int rc = b.rc;
    if (interrupted < 0) return EXIT_FAIL;
    if (interrupted && !(rc == 0 && !w->claim)) {
        if (rc == 0) coord_item_nack(w->item);
        w->item = NULL;
        fprintf(stderr, "%s: interrupted while waiting on queue %s\n", prog, name);
        return 128 + interrupted;
    }
    if (rc == COORD_ETIMEDOUT || rc == COORD_ENOTFOUND || rc == COORD_ELOCKED) {
        if (timeout_ms > 0)
            fprintf(stderr, "%s: queue %s: no item within %d ms\n", prog, name, timeout_ms);
        else
            fprintf(stderr, "%s: queue %s is empty\n", prog, name);
        return EXIT_LOCKED;
    }
    if (rc) return fail_detail(rc, w->claim ? "claim" : "take", b.err);
    return 0;
}

static bool claim_ours(void *arg) {
    (void)arg;
    return !atomic_load(&session_lost);
}

/* Run CMD with the claimed item on its standard input; ack it when CMD exits 0, else nack it.
 * CMD's exit status, or EXIT_FAIL. */
static int run_claimed(coord_item *it, const char *name, char **cmd) {
    size_t len = 0;
    const void *data = coord_item_data(it, &len);
    FILE *in = tmpfile();
    if (!in || (len && fwrite(data, 1, len, in) != len) || fflush(in) || fseek(in, 0, SEEK_SET)) {
        fprintf(stderr, "%s: a file for the item: %s\n", prog, strerror(errno));
        if (in) fclose(in);
        coord_item_nack(it);
        return EXIT_FAIL;
    }
    if (json) { /* stdout belongs to CMD: the JSON note goes to stderr */
        fprintf(stderr, "{\"queue\":");
        json_to(stderr, name);
        fprintf(stderr, ",\"claimed\":%zu}\n", len);
    }
    const char *env[] = {"COORD_QUEUE_NAME", name};
    char what[300];
    snprintf(what, sizeof what, "the claim on an item of queue %s (session expired)", name);
    held h = {env, 1, claim_ours, NULL, what, -1, fileno(in)};
    bool lost;
    int st = run_held(cmd, &h, &lost);
    fclose(in);
    int rc;
    if (st == 0 && !lost) {
        if ((rc = coord_item_ack(it))) st = fail(rc, "ack");
    } else if ((rc = coord_item_nack(it)) && !lost) {
        fail(rc, "nack");
    }
    return st;
}

static bool queue_op(const char *s) {
    return !strcmp(s, "put") || !strcmp(s, "take") || !strcmp(s, "claim") || !strcmp(s, "size");
}

/* queue NAME OP ..., or queue OP NAME ... (the older order: OP an operation, NAME not one). */
static int cmd_queue(coord_client *c, int argc, char **argv) {
    if (argc < 2) return bad_usage("queue wants NAME put|take|size|claim%s", "");
    bool op_first = queue_op(argv[0]) && !queue_op(argv[1]);
    const char *op = argv[op_first ? 0 : 1], *name = argv[op_first ? 1 : 0];
    bool put = !strcmp(op, "put"), take = !strcmp(op, "take"), claim = !strcmp(op, "claim");
    if (!put && !take && !claim && strcmp(op, "size"))
        return bad_usage("unknown queue command \"%s\"", op);
    const char *value = NULL;
    int timeout_ms = -1;
    char **cmd = NULL;
    for (int i = 2; i < argc && !cmd; i++) {
        unsigned long v;
        if (claim && !strcmp(argv[i], "--")) {
            if (i + 1 >= argc) return bad_usage("queue claim: -- wants CMD [ARG...]%s", "");
            cmd = argv + i + 1;
        } else if ((take || claim) && !strcmp(argv[i], "--timeout") && i + 1 < argc) {
            if (!parse_uint(argv[++i], INT_MAX, &v))
                return bad_usage("--timeout wants milliseconds, not \"%s\"", argv[i]);
            timeout_ms = (int)v;
        } else if (put && !value) {
            value = argv[i];
        } else {
            return bad_usage("unexpected queue argument \"%s\"", argv[i]);
        }
    }
    if (put && !value) return bad_usage("queue put wants a VALUE (or - for stdin)%s", "");
    if (claim && !cmd) return bad_usage("queue claim wants -- CMD [ARG...]%s", "");
    coord_queue *q;
    int rc = coord_queue_new(&q, c, name);
    if (rc) return fail(rc, "queue");
    int st = EXIT_OK;
    if (put) {
        char *buf;
        const char *val;
        size_t len = 0;
        st = read_value(value, &buf, &val, &len);
        if (!st && (rc = coord_queue_put(q, val, len))) st = fail(rc, "put");
        free(buf);
        if (!st && json) {
            printf("{\"queue\":");
            json_str(name);
            printf(",\"put\":%zu}\n", len);
        }
    } else if (!take && !claim) {
        size_t n = 0;
        if ((rc = coord_queue_size(q, &n)))
            st = fail(rc, "size");
        else if (json) {
            printf("{\"queue\":");
            json_str(name);
            printf(",\"size\":%zu}\n", n);
        } else {
            printf("%zu\n", n);
        }
    } else {
        qwait w = {.q = q, .claim = claim};
        atomic_store(&session_lost, false); /* a loss from now on may have ended the claim */
        st = queue_wait(&w, name, timeout_ms);
        if (!st && claim) {
            st = run_claimed(w.item, name, cmd);
        } else if (!st) {
            if (json) {
                printf("{\"queue\":");
                json_str(name);
                printf(",\"item\":");
                json_mem(stdout, w.data, w.len);
                printf("}\n");
            } else if (w.len) {
                fwrite(w.data, 1, w.len, stdout);
            }
        }
        free(w.data);
    }
    coord_queue_free(q);
    return st;
}

/* ---------- main ---------- */

int main(int argc, char **argv) {
    const char *uri = getenv("COORD_URI");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--version")) {
            printf("coordctl %s\n", coord_version());
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "--uri") && i + 1 < argc) {
            uri = argv[++i];
        } else {
            return bad_usage("unknown option \"%s\"", argv[i]);
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[i++];
    int (*run)(coord_client *, int, char **) = !strcmp(command, "lock")        ? cmd_lock
                                               : !strcmp(command, "semaphore") ? cmd_semaphore
                                               : !strcmp(command, "rwlock")    ? cmd_rwlock
                                               : !strcmp(command, "barrier")   ? cmd_barrier
                                               : !strcmp(command, "counter")   ? cmd_counter
                                               : !strcmp(command, "ring")      ? cmd_ring
                                               : !strcmp(command, "elect")     ? cmd_elect
                                               : !strcmp(command, "kv")        ? cmd_kv
                                               : !strcmp(command, "queue")     ? cmd_queue
                                                                               : NULL;
    if (!strcmp(command, "get") || !strcmp(command, "put") || !strcmp(command, "del") ||
        !strcmp(command, "watch") || !strcmp(command, "list")) {
        run = cmd_kv; /* the kv command word is optional: the command is kv's operation */
        i--;
    } else if (!strcmp(command, "txn")) {
        run = cmd_txn;
    }
    if (!run) return bad_usage("unknown command \"%s\"", command);
    if (!uri || !*uri) return bad_usage("no URI: pass --uri or set COORD_URI%s", "");
    block_signals();
    coord_options o = COORD_OPTIONS_INIT;
    o.on_session = on_session;
    coord_client *c;
    int rc = coord_client_open(&c, uri, &o);
    if (rc) {
        if (rc == COORD_EINVAL) {
            fprintf(stderr, "%s: bad URI: %s\n", prog, coord_last_error());
            return EXIT_USAGE;
        }
        return fail(rc, "connect");
    }
    int st = run(c, argc - i, argv + i);
    coord_client_close(c);
    fflush(NULL);
    return st;
}
