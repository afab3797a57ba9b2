/*
 * The backend registry: the built-in tables and those registered with coord_backend_register,
 * found by URI scheme. The only place of the core that holds backends; it knows none by name.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "coord_builtin_backends.h" /* generated: COORD_BUILTIN_BACKENDS(X) */
#include "internal.h"

#define MAX_REGISTERED 32
#define SCHEME_MAX 16

/* The tables of the backends built in (backends/<name>/CMakeLists.txt), checked at first use. */
#define DECLARE(table) extern const coord_backend table;
COORD_BUILTIN_BACKENDS(DECLARE)
#define ADDRESS(table) &table,
static const coord_backend *const builtin[] = {COORD_BUILTIN_BACKENDS(ADDRESS) NULL};
/* The (name, scheme) pairs of the backends left out of this build. */
#define LEFT_OUT(name, scheme) {name, scheme},
static const struct {
    const char *name, *scheme;
} absent[] = {COORD_LEFT_OUT_BACKENDS(LEFT_OUT){NULL, NULL}};

typedef struct entry {
    const coord_backend *be;
    bool ready; /* global_init has succeeded (or there is none) */
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static entry tables[sizeof builtin / sizeof *builtin - 1 + MAX_REGISTERED];
static size_t ntables;
static bool loaded;
/* Why a built-in table was left out (a bug of that backend), for the "unknown scheme" detail. */
static char builtin_err[160];

static bool scheme_word(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > SCHEME_MAX || !(s[0] >= 'a' && s[0] <= 'z')) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("+-.", *s)))
            return false;
    return true;
}

/* Under mu. The table serving `scheme`, or NULL. */
static entry *find_locked(const char *scheme) {
    for (size_t i = 0; i < ntables; i++)
        for (const char *const *s = tables[i].be->schemes; *s; s++)
            if (strcmp(*s, scheme) == 0) return &tables[i];
    return NULL;
}

/* Under mu. The checks of coord_backend_register, then the table joins the registry. */
static int add_locked(const coord_backend *be) {
    if (!be) return coord_seterr(COORD_EINVAL, "backend table is NULL");
    if (!be->name || !*be->name) return coord_seterr(COORD_EINVAL, "backend table has no name");
    if (be->version != COORD_BACKEND_VERSION)
        return coord_seterr(COORD_EINVAL,
                            "backend %s: table version %u, this libcoord takes version %d",
                            be->name, be->version, COORD_BACKEND_VERSION);
    static const char *const slot_names[] = {
        "open",    "close",        "session",          "get",       "put", "del", "list", "watch",
        "unwatch", "lock_enqueue", "lock_predecessor", "queue_head"};
    const bool slot_set[] = {be->open,
                             be->close,
                             be->session,
                             be->get,
                             be->put,
                             be->del,
                             be->list,
                             be->watch,
                             be->unwatch,
                             be->lock_enqueue,
                             be->lock_predecessor,
                             be->queue_head};
    for (size_t i = 0; i < sizeof slot_set / sizeof *slot_set; i++)
        if (!slot_set[i])
            return coord_seterr(COORD_EINVAL, "backend %s: mandatory slot %s is NULL", be->name,
                                slot_names[i]);
    if (!be->schemes || !be->schemes[0])
        return coord_seterr(COORD_EINVAL, "backend %s serves no URI scheme", be->name);
    if (be->default_port < 1 || be->default_port > 65535)
        return coord_seterr(COORD_EINVAL, "backend %s: default_port %d out of range 1-65535",
                            be->name, be->default_port);
    for (const char *const *s = be->schemes; *s; s++) {
        if (!scheme_word(*s))
            return coord_seterr(COORD_EINVAL,
                                "backend %s: scheme \"%.*s\" is not a lower-case word of at most "
                                "%d characters (a-z, 0-9, '+', '-', '.')",
                                be->name, SCHEME_MAX, *s, SCHEME_MAX);
        entry *other = find_locked(*s);
        if (other)
            return coord_seterr(COORD_EINVAL, "backend %s: scheme %s:// is already served by %s",
                                be->name, *s, other->be->name);
        for (const char *const *t = be->schemes; t < s; t++)
            if (strcmp(*t, *s) == 0)
                return coord_seterr(COORD_EINVAL, "backend %s lists scheme %s:// twice", be->name,
                                    *s);
    }
    if (ntables == sizeof tables / sizeof *tables)
        return coord_seterr(COORD_EINVAL, "backend %s: already %d backends registered", be->name,
                            MAX_REGISTERED);
    tables[ntables].be = be;
    tables[ntables].ready = be->global_init == NULL;
    ntables++;
    return 0;
}

/* Under mu: the built-in tables join first, checked like any other (once). */
static void load_locked(void) {
    if (loaded) return;
    loaded = true;
    for (size_t i = 0; builtin[i]; i++)
        if (add_locked(builtin[i]) && !builtin_err[0])
            snprintf(builtin_err, sizeof builtin_err, "%s", coord_last_error());
}

int coord_backend_register(const coord_backend *be) {
    pthread_mutex_lock(&mu);
    load_locked();
    int rc = add_locked(be);
    pthread_mutex_unlock(&mu);
    return rc;
}

int coord__backend_find(const coord_backend **out, const char *scheme) {
    pthread_mutex_lock(&mu);
    load_locked();
    entry *e = find_locked(scheme);
    if (e) {
        *out = e->be;
        pthread_mutex_unlock(&mu);
        return 0;
    }
    /* The detail lists the schemes served; it quotes the scheme only when it looks like one. */
    char known[256] = "";
    size_t kl = 0;
    for (size_t i = 0; i < ntables; i++)
        for (const char *const *s = tables[i].be->schemes; *s; s++) {
            int w = snprintf(known + kl, sizeof known - kl, "%s%s", kl ? ", " : "", *s);
            if (w > 0 && (size_t)w < sizeof known - kl) kl += (size_t)w;
        }
    char bad_builtin[200] = "";
    if (builtin_err[0])
        snprintf(bad_builtin, sizeof bad_builtin, "; a built-in backend was left out: %s",
                 builtin_err);
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; absent[i].name; i++)
        if (strcmp(absent[i].scheme, scheme) == 0)
            return coord_seterr(COORD_ENOTSUP,
                                "the %s backend (scheme %s://) is not built into this libcoord",
                                absent[i].name, scheme);
    if (!scheme_word(scheme))
        return coord_seterr(COORD_EINVAL,
                            "unknown URI scheme: no backend for it is built into or registered "
                            "with this libcoord (%s%s)%s",
                            kl ? "known: " : "none is", kl ? known : "", bad_builtin);
    return coord_seterr(COORD_EINVAL,
                        "unknown URI scheme \"%s\": no backend for %s:// is built into or "
                        "registered with this libcoord (%s%s)%s",
                        scheme, scheme, kl ? "known: " : "none is", kl ? known : "", bad_builtin);
}

int coord__backend_global_init(const coord_backend *be) {
    int rc = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < ntables; i++)
        if (tables[i].be == be && !tables[i].ready) {
            if ((rc = be->global_init()) == 0) tables[i].ready = true;
            break;
        }
    pthread_mutex_unlock(&mu);
    return rc;
}
