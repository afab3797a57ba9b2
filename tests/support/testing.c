#include "testing.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const coord_test_backend coord_test_zk = {"zk", "COORD_TEST_ZK", "COORD_TEST_ZK_CLUSTER", "zk"};
const coord_test_backend coord_test_etcd = {"etcd", "COORD_TEST_ETCD", "COORD_TEST_ETCD_CLUSTER",
                                            "etcd"};

char *coord_test_uri(void **state, int cluster, const char *params) {
    const coord_test_backend *b = *state;
    const char *var = cluster ? b->cluster : b->single;
    /* COORD_TEST_ONLY=etcd|zk: the other backend's bodies skip (a second run of a suite). */
    const char *only = getenv("COORD_TEST_ONLY");
    if (only && *only && strcmp(only, b->servers_name) != 0) skip();
    const char *hosts = getenv(var);
    if (!hosts || !*hosts) {
        const char *req = getenv("COORD_TEST_REQUIRE_SERVERS");
        if (req && *req == '1')
            fail_msg("%s is not set: start servers with scripts/servers.sh", var);
        skip();
    }
    static int counter;
    char *uri = NULL;
    int n = __atomic_add_fetch(&counter, 1, __ATOMIC_SEQ_CST);
    /* COORD_TEST_ETCD_WATCH=ws|http runs the etcd bodies on that watch path (watch=...). */
    const char *wm = getenv("COORD_TEST_ETCD_WATCH");
    bool etcd = strncmp(b->scheme, "etcd", 4) == 0;
    char extra[32] = "";
    if (etcd && wm && *wm && !(params && strstr(params, "watch=")))
        snprintf(extra, sizeof extra, "%swatch=%s", params ? "&" : "?", wm);
    if (asprintf(&uri, "%s://%s/coordtest/p%ld-%d%s%s%s", b->scheme, hosts, (long)getpid(), n,
                 params ? "?" : "", params ? params : "", extra) < 0)
        fail_msg("out of memory");
    return uri;
}

void coord_test_servers(const char *a1, const char *a2, const char *a3) {
    const char *script = getenv("COORD_SERVERS");
    if (!script || !*script)
        fail_msg("COORD_SERVERS is not set: this case acts on the servers through "
                 "scripts/servers.sh (run it under `servers.sh run` or `servers.sh exec`)");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s %s %s >&2", script, a1, a2 ? a2 : "", a3 ? a3 : "");
    int rc = system(cmd);
    if (rc != 0) fail_msg("'%s' failed (%d)", cmd, rc);
}

int coord_test_leader(const coord_test_backend *b) {
    char cmd[1024], line[32] = "";
    snprintf(cmd, sizeof cmd, "'%s' leader %s", getenv("COORD_SERVERS"), b->servers_name);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(line, sizeof line, p)) line[0] = '\0';
    int rc = pclose(p);
    int n = atoi(line);
    if (rc != 0 || n < 1 || n > 3) fail_msg("'%s' answered '%s' (status %d)", cmd, line, rc);
    return n;
}

/* The socket inodes of this process's descriptors, from /proc/self/fd. */
static size_t own_sockets(unsigned long *ino, size_t max) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while (n < max && (e = readdir(d))) {
        char link[64], path[300];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, link, sizeof link - 1);
        if (len <= 0) continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &ino[n]) == 1) n++;
    }
    closedir(d);
    return n;
}

int coord_test_peer_member(const coord_test_backend *b) {
    const char *hosts = getenv(b->cluster);
    if (!hosts) return 0;
    unsigned ports[3] = {0};
    const char *h = hosts;
    for (int i = 0; i < 3 && h; i++) {
        const char *colon = strchr(h, ':');
        if (colon) ports[i] = (unsigned)atoi(colon + 1);
        h = strchr(h, ',');
        if (h) h++;
    }
    unsigned long ino[256];
    size_t nino = own_sockets(ino, 256);
    FILE *f = fopen("/proc/self/net/tcp", "r");
    if (!f) return 0;
    char line[512];
    int member = 0;
    while (!member && fgets(line, sizeof line, f)) {
        unsigned rport, st;
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retr uid timeout inode */
        if (sscanf(line, " %*d: %*x:%*x %*x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &rport, &st,
                   &inode) != 3 ||
            st != 1 /* ESTABLISHED */)
            continue;
        for (size_t i = 0; i < nino && !member; i++)
            if (ino[i] == inode)
                for (int m = 0; m < 3; m++)
                    if (ports[m] == rport) member = m + 1;
    }
    fclose(f);
    return member;
}

void coord_test_states_init(coord_test_states *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    coord__cond_init(&s->cv);
}

void coord_test_states_cb(coord_client *c, coord_session_state st, void *payload) {
    (void)c;
    coord_test_states *s = payload;
    pthread_mutex_lock(&s->mu);
    if (s->n < 64) s->seen[s->n++] = (int)st;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int coord_test_states_wait(coord_test_states *s, int st, int from, int timeout_ms) {
    struct timespec dl = coord__deadline(timeout_ms);
    pthread_mutex_lock(&s->mu);
    int found = -1;
    while (found < 0) {
        for (int i = from; i < s->n; i++)
            if (s->seen[i] == st) {
                found = i;
                break;
            }
        if (found >= 0) break;
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl)) break;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

coord_client *coord_test_open(void **state, const char *params, coord_test_states *rec,
                              char **uri_out) {
    return coord_test_open_on(state, 0, params, rec, uri_out);
}

coord_client *coord_test_open_on(void **state, int cluster, const char *params,
                                 coord_test_states *rec, char **uri_out) {
    char *uri = coord_test_uri(state, cluster, params);
    coord_options o = COORD_OPTIONS_INIT;
    if (rec) {
        coord_test_states_init(rec);
        o.on_session = coord_test_states_cb;
        o.payload = rec;
    }
    coord_client *c = NULL;
    int rc = coord_client_open(&c, uri, &o);
    if (rc) fail_msg("open %s: %s: %s", uri, coord_strerror(rc), coord_last_error());
    if (uri_out)
        *uri_out = uri;
    else
        free(uri);
    return c;
}

void coord_test_changes_init(coord_test_changes *w) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    coord__cond_init(&w->cv);
}

void coord_test_changes_destroy(coord_test_changes *w) {
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

void coord_test_changes_cb(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r;
    coord_test_changes *w = payload;
    pthread_mutex_lock(&w->mu);
    w->epoch = ch->epoch;
    w->changes++;
    for (size_t i = 0; i < ch->njoined && w->njoined < 64; i++)
        snprintf(w->joined[w->njoined++], 64, "%s", ch->joined[i]);
    for (size_t i = 0; i < ch->nleft && w->nleft < 64; i++)
        snprintf(w->left[w->nleft++], 64, "%s", ch->left[i]);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Called with w->mu held. */
static int changes_count_locked(const coord_test_changes *w, const char *id, int joined) {
    int n = 0;
    for (int i = 0; i < (joined ? w->njoined : w->nleft); i++)
        n += strcmp(joined ? w->joined[i] : w->left[i], id) == 0;
    return n;
}

int coord_test_changes_count(coord_test_changes *w, const char *id, int joined) {
    pthread_mutex_lock(&w->mu);
    int n = changes_count_locked(w, id, joined);
    pthread_mutex_unlock(&w->mu);
    return n;
}

bool coord_test_changes_wait(coord_test_changes *w, const char *id, int joined, int times,
                             int timeout_ms) {
    struct timespec dl = coord__deadline(timeout_ms);
    pthread_mutex_lock(&w->mu);
    bool ok;
    while (!(ok = changes_count_locked(w, id, joined) >= times))
        if (pthread_cond_timedwait(&w->cv, &w->mu, &dl)) {
            ok = changes_count_locked(w, id, joined) >= times;
            break;
        }
    pthread_mutex_unlock(&w->mu);
    return ok;
}

coord_ring *coord_test_ring_open(coord_client *c, const char *group, coord_test_changes *rec) {
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    if (rec) {
        coord_test_changes_init(rec);
        o.on_change = coord_test_changes_cb;
        o.payload = rec;
    }
    coord_ring *r = NULL;
    int rc = coord_ring_new(&r, c, group, &o);
    if (rc) fail_msg("coord_ring_new %s: %s: %s", group, coord_err_name(rc), coord_last_error());
    return r;
}

bool coord_test_ring_has(coord_ring *r, const char *id) {
    char **ids;
    size_t n;
    assert_int_equal(coord_ring_members(r, &ids, &n), 0);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found = found || strcmp(ids[i], id) == 0;
    coord_ring_strings_free(ids, n);
    return found;
}

#define X16 "xxxxxxxxxxxxxxxx"
const char *const coord_test_bad_names[] = {
    "",
    "a/b",
    "..",
    ".",
    X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16,
    "a\x01",
    "tab\there",
    "x\x7f",
    NULL};
