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
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_CONFLICT 3 /* counter cas: the value was not the expected one */
#define EXIT_LOCKED 75  /* lock not acquired within --timeout (EX_TEMPFAIL) */

static const char *prog = "coordctl";
static bool json;

static void usage(FILE *f) {
    fprintf(f, "usage: coordctl [--uri URI] [--json] COMMAND ...\n"
               "\n"
               "  lock NAME [--timeout MS] -- CMD [ARG...]\n"
               "      run CMD while holding the lock NAME; exit with CMD's status\n"
               "  counter get NAME [--shards S]\n"
               "  counter add NAME DELTA [--shards S]     prints the new value\n"
               "  counter set NAME VALUE\n"
               "  counter cas NAME EXPECTED NEW\n"
               "  ring members GROUP\n"
               "  ring lookup GROUP KEY [-n N]            prints the owner (N replicas with -n)\n"
               "  ring join GROUP MEMBER_ID [--weight W] [--data D]\n"
               "      hold the membership until SIGINT or SIGTERM, then leave\n"
               "\n"
               "  --uri URI   zk://host:port,.../prefix or etcd[s]://host:port,.../prefix\n"
               "              (default: $COORD_URI)\n"
               "  --json      machine-readable output\n"
               "  --help, --version\n"
               "\n"
               "exit status: 0 ok, 1 failure, 2 usage or invalid argument, 3 counter cas found\n"
               "another value,\n"
               "75 lock not acquired within --timeout; lock otherwise exits with CMD's status\n"
               "(128+N when CMD was killed by signal N).\n");
}

/* One line on stderr. A bad argument (name, value out of range, cas on a sharded counter) is a
 * usage error. */
static int fail(int rc, const char *what) {
    fprintf(stderr, "%s: %s: %s: %s\n", prog, what, coord_strerror(rc), coord_last_error());
    return rc == COORD_EINVAL ? EXIT_USAGE : EXIT_FAIL;
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

/* A JSON string (ids and names are 1-255 bytes without control characters, keys anything). */
static void json_to(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
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

/* The session was lost: the main thread hears it as SIGUSR1. */
static void on_session(coord_client *c, coord_session_state st, void *payload) {
    (void)c;
    (void)payload;
    if (st == COORD_SESSION_LOST) kill(getpid(), SIGUSR1);
}

/* ---------- lock ---------- */

typedef struct acquirer {
    coord_lock *l;
    int timeout_ms;
    int rc;
    atomic_bool done;
} acquirer;

static void *acquire_main(void *arg) {
    acquirer *a = arg;
    a->rc = coord_lock_acquire(a->l, a->timeout_ms);
    atomic_store(&a->done, true);
    kill(getpid(), SIGUSR1); /* wake the main thread */
    return NULL;
}

static int run_locked(coord_lock *l, const char *name, char **cmd) {
    uint64_t token = 0;
    coord_lock_token(l, &token);
    char tok[32];
    snprintf(tok, sizeof tok, "%" PRIu64, token);
    if (json) { /* stdout belongs to CMD: the JSON note goes to stderr */
        fprintf(stderr, "{\"lock\":");
        json_to(stderr, name);
        fprintf(stderr, ",\"token\":%s}\n", tok);
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
        return EXIT_FAIL;
    }
    if (child == 0) {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (int_ignored) signal(SIGINT, SIG_IGN); /* CMD gets what we were given */
        setenv("COORD_LOCK_TOKEN", tok, 1);
        setenv("COORD_LOCK_NAME", name, 1);
        execvp(cmd[0], cmd);
        fprintf(stderr, "%s: %s: %s\n", prog, cmd[0], strerror(errno));
        _exit(127);
    }
    bool lost = false;
    int status = 0;
    while (1) {
        siginfo_t si;
        int sig = sigwaitinfo(&waited, &si);
        if (sig < 0) continue;
        if (sig == SIGCHLD) {
            pid_t p = waitpid(child, &status, WNOHANG);
            if (p == child) break;
        } else if (sig == SIGUSR1) {
            if (!coord_lock_held(l) && !lost) {
                lost = true;
                fprintf(stderr, "%s: lost lock %s (session expired) while %s ran; stopping it\n",
                        prog, name, cmd[0]);
                kill(child, SIGTERM);
            }
        } else {
            kill(child, sig); /* forward */
        }
    }
    int rc = coord_lock_release(l);
    if (rc && !lost) fail(rc, "release");
    if (lost) return EXIT_FAIL;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int cmd_lock(coord_client *c, int argc, char **argv) {
    if (argc < 1) return bad_usage("lock wants a NAME%s", "");
    const char *name = argv[0];
    int timeout_ms = -1;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        unsigned long v;
        if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            if (!parse_uint(argv[++i], INT_MAX, &v))
                return bad_usage("--timeout wants milliseconds, not \"%s\"", argv[i]);
            timeout_ms = (int)v;
        } else {
            return bad_usage("unknown lock option \"%s\"", argv[i]);
        }
    }
    if (i >= argc || i + 1 >= argc) return bad_usage("lock wants -- CMD [ARG...]%s", "");
    char **cmd = argv + i + 1;
    coord_lock *l;
    int rc = coord_lock_new(&l, c, name);
    if (rc) return fail(rc, "lock");
    acquirer a = {l, timeout_ms, 1, false};
    pthread_t th;
    if (pthread_create(&th, NULL, acquire_main, &a)) {
        coord_lock_free(l);
        fprintf(stderr, "%s: cannot start a thread\n", prog);
        return EXIT_FAIL;
    }
    int interrupted = 0;
    while (!atomic_load(&a.done)) { /* the acquire sends SIGUSR1 when it returns */
        siginfo_t si;
        int sig = sigwaitinfo(&waited, &si);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
            interrupted = sig;
            coord_lock_cancel(l);
        }
    }
    pthread_join(th, NULL);
    rc = a.rc;
    if (interrupted) {
        if (rc == 0) coord_lock_release(l);
        coord_lock_free(l);
        fprintf(stderr, "%s: interrupted while waiting for lock %s\n", prog, name);
        return 128 + interrupted;
    }
    if (rc == COORD_ETIMEDOUT || rc == COORD_ELOCKED) {
        coord_lock_free(l);
        fprintf(stderr, "%s: lock %s not acquired within %d ms: %s\n", prog, name,
                timeout_ms < 0 ? 0 : timeout_ms, coord_last_error());
        return EXIT_LOCKED;
    }
    if (rc) {
        coord_lock_free(l);
        return fail(rc, "lock");
    }
    int st = run_locked(l, name, cmd);
    coord_lock_free(l);
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
    int (*run)(coord_client *, int, char **) = !strcmp(command, "lock")      ? cmd_lock
                                               : !strcmp(command, "counter") ? cmd_counter
                                               : !strcmp(command, "ring")    ? cmd_ring
                                                                             : NULL;
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
