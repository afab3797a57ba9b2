/*
 * coord-bench ring: the hash ring's placements without a server (lookup, build, memory, churn,
 * balance, beside one random memory access as the raw bound), and with --uri the membership
 * convergence of rings on several clients (bench.c tells how).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h" /* coord__hashring_bytes */

#define RING_TARGET_LOOKUP_100_NS 50.0
#define RING_TARGET_LOOKUP_10K_NS 100.0
#define RING_TARGET_BUILD_10K_MS 50.0
#define RING_TARGET_MOVED_RATIO 1.1
#define RING_TARGET_MAX_OVER_MEAN 1.10
#define RING_SIZES 4
#define RING_KEYS 65536  /* distinct keys cycled through by the lookup loops */
#define RING_RUNS 7      /* lookup loops and builds are timed this many times; the median counts */
#define RING_CHURN_N 100 /* join and leave measured on a ring of this many members */
#define RING_CHASE_STEPS 5000000 /* the raw bound: dependent accesses per run */
#define RING_CHASE_RUNS 5        /* the raw bound: runs; the median counts */

static const size_t ring_sizes[RING_SIZES] = {10, 100, 1000, 10000};

typedef struct ring_placement {
    const char *name;
    int placement;
    double lookup_ns[RING_SIZES];
    size_t bytes[RING_SIZES];
    double build_ms; /* at 10,000 members */
    /* The raw bound (default placement only), measured right after the lookups at 10,000
     * members: ns of one random dependent memory access over raw_bytes, the ring's size. */
    double raw_ns;
    size_t raw_bytes;
    /* One join (100 -> 101 members) and one leave (101 -> 100), over churn_keys keys. */
    size_t churn_keys;
    double joined_moved, left_moved, ideal_moved; /* fractions of the keys */
    size_t misplaced; /* keys moved between members that neither joined nor left */
    /* max/mean load at 100 and 10,000 members over balance_keys[] keys */
    size_t balance_keys[2];
    double max_over_mean[2];
} ring_placement;

/* "10.<a>.<b>.<c>:11211": memcached-style ids, so every placement hashes the same names. */
static char **ring_ids(size_t n) {
    char **ids = calloc(n + 1, sizeof *ids);
    for (size_t i = 0; ids && i <= n; i++)
        if (asprintf(&ids[i], "10.%zu.%zu.%zu:11211", i >> 16, (i >> 8) & 255, i & 255) < 0) {
            ids[i] = NULL;
            return NULL; /* the bench exits on failure; the leak does not matter */
        }
    return ids;
}

static void ring_ids_free(char **ids, size_t n) {
    for (size_t i = 0; ids && i <= n; i++)
        free(ids[i]);
    free(ids);
}

static coord_hashring *ring_build(const ring_placement *p, char *const *ids, size_t n) {
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    o.placement = p->placement;
    coord_hashring *h = NULL;
    int rc = coord_hashring_build(&h, (const char *const *)ids, NULL, n, &o);
    if (rc)
        fprintf(stderr, "coord-bench: ring %s, %zu members: %s: %s\n", p->name, n,
                coord_strerror(rc), coord_last_error());
    return h;
}

/* The keys the lookup loops cycle through, stored together with their lengths. */
typedef struct ring_keys {
    char (*key)[16];
    size_t *len;
} ring_keys;

/* Median over RING_RUNS of the mean time of `iters` lookups cycling through `keys`. */
static double ring_lookup_ns(const coord_hashring *h, const ring_keys *keys, size_t iters) {
    samples runs = {0};
    uintptr_t sink = 0;
    for (int r = 0; r < RING_RUNS; r++) {
        int64_t t0 = now_ns();
        for (size_t i = 0; i < iters; i++) {
            size_t k = i % RING_KEYS;
            sink += (uintptr_t)coord_hashring_lookup(h, keys->key[k], keys->len[k]);
        }
        if (samples_add(&runs, now_ns() - t0)) break;
    }
    samples_sort(&runs);
    double ns = pct_ms(&runs, 0.5) * 1e6 / (double)iters;
    free(runs.v);
    return sink == 1 ? ns + 1e-9 : ns; /* keeps the loop from being optimised away */
}

/*
 * The raw bound of a lookup in a big ring: one random dependent memory access over a buffer as
 * large as the ring, i.e. a pointer chase over a random cyclic permutation of the buffer's cache
 * lines (each line holds the index of the next). A lookup in a ring far beyond the caches needs
 * at least one such access (its probes' accesses are independent and may overlap), so lookup
 * time over this is the figure that holds on a noisy machine. Mean ns per step of
 * RING_CHASE_STEPS, median of RING_CHASE_RUNS runs; 0 if out of memory.
 */
static double ring_chase_ns(size_t bytes) {
    size_t n = bytes / 64 > 2 ? bytes / 64 : 2;
    uint64_t *line = aligned_alloc(64, n * 64);
    size_t *order = malloc(n * sizeof *order);
    samples runs = {0};
    double ns = 0;
    if (!line || !order) goto out;
    uint64_t r = 0x9e3779b97f4a7c15ULL; /* xorshift64 */
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        size_t j = (size_t)(r % (i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++) /* one cycle through every line, in random order */
        line[order[i] * 8] = order[(i + 1) % n] * 8;
    uint64_t at = order[0] * 8;
    for (size_t i = 0; i < n; i++) /* warm-up: one lap */
        at = line[at];
    for (int k = 0; k < RING_CHASE_RUNS; k++) {
        int64_t t0 = now_ns();
        for (size_t i = 0; i < RING_CHASE_STEPS; i++)
            at = line[at];
        if (samples_add(&runs, now_ns() - t0)) goto out;
    }
    samples_sort(&runs);
    ns = pct_ms(&runs, 0.5) * 1e6 / RING_CHASE_STEPS;
    if (at == 1) ns += 1e-9; /* keeps the chase from being optimised away */
out:
    free(runs.v);
    free(line);
    free(order);
    return ns;
}

/* Keys owned per member over `nkeys` keys "load:<i>", as max/mean. */
static double ring_max_over_mean(const coord_hashring *h, char **ids, size_t n, size_t nkeys) {
    /* Map the returned id (a pointer into the ring) back to its index through the digits of
     * the id, which ring_ids made unique. */
    size_t *count = calloc(n, sizeof *count);
    if (!count) return 0;
    char k[32];
    for (size_t i = 0; i < nkeys; i++) {
        int len = snprintf(k, sizeof k, "load:%zu", i);
        const char *id = coord_hashring_lookup(h, k, (size_t)len);
        unsigned a, b, c;
        if (!id || sscanf(id, "10.%u.%u.%u:", &a, &b, &c) != 3) continue;
        size_t j = (size_t)a << 16 | (size_t)b << 8 | c;
        if (j < n) count[j]++;
    }
    size_t mx = 0;
    for (size_t j = 0; j < n; j++)
        mx = count[j] > mx ? count[j] : mx;
    free(count);
    (void)ids;
    return (double)mx / ((double)nkeys / (double)n);
}

static int ring_measure(ring_placement *p, const ring_keys *keys) {
    char **ids = ring_ids(ring_sizes[RING_SIZES - 1]);
    if (!ids) return -1;
    bool md5 = p->placement != COORD_RING_DEFAULT; /* about 0.4 us a key through OpenSSL */
    for (int s = 0; s < RING_SIZES; s++) {
        coord_hashring *h = ring_build(p, ids, ring_sizes[s]);
        if (!h) goto fail;
        p->bytes[s] = coord__hashring_bytes(h);
        p->lookup_ns[s] = ring_lookup_ns(h, keys, md5 ? 100000 : 1000000);
        if (s == RING_SIZES - 1 && p->placement == COORD_RING_DEFAULT) {
            p->raw_bytes = p->bytes[s];
            p->raw_ns = ring_chase_ns(p->raw_bytes);
        }
        if (s == RING_SIZES - 1) {
            samples runs = {0};
            for (int r = 0; r < 5; r++) {
                int64_t t0 = now_ns();
                coord_hashring *b = ring_build(p, ids, ring_sizes[s]);
                int64_t t = now_ns() - t0;
                coord_hashring_free(b);
                if (!b || samples_add(&runs, t)) break;
            }
            samples_sort(&runs);
            p->build_ms = pct_ms(&runs, 0.5);
            free(runs.v);
        }
        if (ring_sizes[s] == 100 || ring_sizes[s] == 10000) {
            int b = ring_sizes[s] == 100 ? 0 : 1;
            p->balance_keys[b] = md5 ? (b ? 2000000 : 1000000) : 10000000;
            p->max_over_mean[b] = ring_max_over_mean(h, ids, ring_sizes[s], p->balance_keys[b]);
        }
        coord_hashring_free(h);
    }

    /* Churn: ids[0..100) joined by ids[100]; then ids[37] leaves the 101. */
    size_t n = RING_CHURN_N;
    char *left[RING_CHURN_N];
    for (size_t i = 0, j = 0; i <= n; i++)
        if (i != 37) left[j++] = ids[i];
    coord_hashring *before = ring_build(p, ids, n), *joined = ring_build(p, ids, n + 1),
                   *after = ring_build(p, left, n);
    if (!before || !joined || !after) {
        coord_hashring_free(before);
        coord_hashring_free(joined);
        coord_hashring_free(after);
        goto fail;
    }
    p->churn_keys = md5 ? 200000 : 1000000;
    size_t jm = 0, lm = 0;
    char k[32];
    for (size_t i = 0; i < p->churn_keys; i++) {
        int len = snprintf(k, sizeof k, "churn:%zu", i);
        const char *x = coord_hashring_lookup(before, k, (size_t)len);
        const char *y = coord_hashring_lookup(joined, k, (size_t)len);
        const char *z = coord_hashring_lookup(after, k, (size_t)len);
        if (strcmp(x, y)) {
            jm++;
            if (strcmp(y, ids[n])) p->misplaced++;
        }
        if (strcmp(y, z)) {
            lm++;
            if (strcmp(y, ids[37])) p->misplaced++;
        }
    }
    coord_hashring_free(before);
    coord_hashring_free(joined);
    coord_hashring_free(after);
    p->joined_moved = (double)jm / (double)p->churn_keys;
    p->left_moved = (double)lm / (double)p->churn_keys;
    p->ideal_moved = 1.0 / (double)(n + 1);
    ring_ids_free(ids, ring_sizes[RING_SIZES - 1]);
    return 0;
fail:
    ring_ids_free(ids, ring_sizes[RING_SIZES - 1]);
    return -1;
}

static void json_ring_placement(const ring_placement *p) {
    printf("{\"placement\":");
    json_str(p->name);
    printf(",\"lookup_ns\":{");
    for (int s = 0; s < RING_SIZES; s++)
        printf("%s\"%zu\":%.1f", s ? "," : "", ring_sizes[s], p->lookup_ns[s]);
    printf("},\"bytes\":{");
    for (int s = 0; s < RING_SIZES; s++)
        printf("%s\"%zu\":%zu", s ? "," : "", ring_sizes[s], p->bytes[s]);
    printf("},\"build_ms_10000\":%.2f,\"churn_members\":%d,\"churn_keys\":%zu,"
           "\"join_moved\":%.5f,\"leave_moved\":%.5f,\"ideal_moved\":%.5f,\"join_ratio\":%.3f,"
           "\"leave_ratio\":%.3f,\"misplaced_keys\":%zu,\"max_over_mean\":{\"100\":%.3f,"
           "\"10000\":%.3f},\"balance_keys\":{\"100\":%zu,\"10000\":%zu}}",
           p->build_ms, RING_CHURN_N, p->churn_keys, p->joined_moved, p->left_moved, p->ideal_moved,
           ratio(p->joined_moved, p->ideal_moved), ratio(p->left_moved, p->ideal_moved),
           p->misplaced, p->max_over_mean[0], p->max_over_mean[1], p->balance_keys[0],
           p->balance_keys[1]);
}

/* The placements, measured without any server. A convergence part (rings of several clients
 * over --uri agreeing on one epoch) is to come beside it. */
static int ring_placements(const bench_opts *o) {
    ring_placement ps[3] = {{.name = "default", .placement = COORD_RING_DEFAULT},
                            {.name = "ketama", .placement = COORD_RING_KETAMA},
                            {.name = "libmemcached", .placement = COORD_RING_LIBMEMCACHED}};
    ring_keys keys = {malloc(RING_KEYS * sizeof *keys.key), malloc(RING_KEYS * sizeof *keys.len)};
    int failed = !keys.key || !keys.len;
    for (size_t i = 0; !failed && i < RING_KEYS; i++)
        keys.len[i] = (size_t)snprintf(keys.key[i], sizeof keys.key[i], "user:%08zx",
                                       i * 2654435761u % 4294967291u);
    for (int i = 0; !failed && i < 3; i++)
        if (ring_measure(&ps[i], &keys)) failed = 1;
    free(keys.key);
    free(keys.len);
    if (failed) return 1;

    const ring_placement *d = &ps[0];
    bool t_l100 = d->lookup_ns[1] <= RING_TARGET_LOOKUP_100_NS;
    bool t_l10k = d->lookup_ns[3] <= RING_TARGET_LOOKUP_10K_NS;
    bool t_build = d->build_ms <= RING_TARGET_BUILD_10K_MS;
    double jr = ratio(d->joined_moved, d->ideal_moved), lr = ratio(d->left_moved, d->ideal_moved);
    bool t_moved = jr <= RING_TARGET_MOVED_RATIO && lr <= RING_TARGET_MOVED_RATIO && !d->misplaced;
    bool t_balance = d->max_over_mean[0] <= RING_TARGET_MAX_OVER_MEAN;
    double over_raw = ratio(d->lookup_ns[3], d->raw_ns);
    if (o->json) {
        printf("{\"mode\":\"ring\",\"vnodes\":%d,\"raw_ns\":%.1f,\"raw_bytes\":%zu,"
               "\"raw_method\":\"pointer chase over a random cycle of the cache lines of a buffer "
               "the size of the default ring at 10000 members, %d steps, median of %d runs\","
               "\"lookup_ns_10000_over_raw\":%.3f,\"placements\":[",
               COORD_RING_VNODES_DEFAULT, d->raw_ns, d->raw_bytes, RING_CHASE_STEPS,
               RING_CHASE_RUNS, over_raw);
        for (int i = 0; i < 3; i++) {
            if (i) putchar(',');
            json_ring_placement(&ps[i]);
        }
        printf("],\"targets\":{\"lookup_ns_100\":%.0f,\"lookup_ns_10000\":%.0f,"
               "\"build_ms_10000\":%.0f,\"moved_ratio\":%.1f,\"max_over_mean_100\":%.2f},"
               "\"met\":{\"lookup_ns_100\":%s,\"lookup_ns_10000\":%s,\"build_ms_10000\":%s,"
               "\"moved_ratio\":%s,\"max_over_mean_100\":%s},\"ok\":%s}\n",
               RING_TARGET_LOOKUP_100_NS, RING_TARGET_LOOKUP_10K_NS, RING_TARGET_BUILD_10K_MS,
               RING_TARGET_MOVED_RATIO, RING_TARGET_MAX_OVER_MEAN, t_l100 ? "true" : "false",
               t_l10k ? "true" : "false", t_build ? "true" : "false", t_moved ? "true" : "false",
               t_balance ? "true" : "false", d->misplaced ? "false" : "true");
        return d->misplaced ? 1 : 0;
    }
    printf("coord-bench ring: the hash ring alone (coord_hashring_*), no server; default "
           "placement with %d vnodes\n",
           COORD_RING_VNODES_DEFAULT);
    printf("lookup: mean ns over a loop of lookups of %d distinct keys, median of %d runs\n",
           RING_KEYS, RING_RUNS);
    printf("%-13s %9s %9s %9s %9s %11s %9s %9s\n", "placement", "ns@10", "ns@100", "ns@1000",
           "ns@10000", "build@10000", "MB@100", "MB@10000");
    for (int i = 0; i < 3; i++) {
        const ring_placement *p = &ps[i];
        printf("%-13s %9.1f %9.1f %9.1f %9.1f %8.2f ms %9.3f %9.2f\n", p->name, p->lookup_ns[0],
               p->lookup_ns[1], p->lookup_ns[2], p->lookup_ns[3], p->build_ms,
               (double)p->bytes[1] / 1e6, (double)p->bytes[3] / 1e6);
    }
    printf("raw = one random dependent memory access over %.2f MB (the default ring at 10000 "
           "members): %.1f ns\n(pointer chase over a random cycle of its cache lines, %d steps, "
           "median of %d runs, measured right after the default lookups at 10000)\n",
           (double)d->raw_bytes / 1e6, d->raw_ns, RING_CHASE_STEPS, RING_CHASE_RUNS);
    printf("default lookup@10000 / raw = %.2f\n", over_raw);
    printf("\nchurn at %d members (ideal share moved 1/%d = %.5f); load as max/mean keys per "
           "member\n",
           RING_CHURN_N, RING_CHURN_N + 1, d->ideal_moved);
    printf("%-13s %9s %7s %9s %7s %10s %11s %13s\n", "placement", "join", "ratio", "leave", "ratio",
           "misplaced", "max/mean@100", "max/mean@10000");
    for (int i = 0; i < 3; i++) {
        const ring_placement *p = &ps[i];
        printf("%-13s %9.5f %7.3f %9.5f %7.3f %10zu %11.3f %13.3f\n", p->name, p->joined_moved,
               ratio(p->joined_moved, p->ideal_moved), p->left_moved,
               ratio(p->left_moved, p->ideal_moved), p->misplaced, p->max_over_mean[0],
               p->max_over_mean[1]);
    }
    printf("(misplaced: keys that moved between members that neither joined nor left; keys: %zu "
           "for churn, %zu/%zu for load at 100/10000 members (default), %zu/%zu (ketama "
           "placements), so sampling noise is about %.1f%%/%.1f%% of a member's load)\n",
           ps[0].churn_keys, ps[0].balance_keys[0], ps[0].balance_keys[1], ps[1].balance_keys[0],
           ps[1].balance_keys[1], 100.0 / sqrt((double)ps[0].balance_keys[0] / 100.0),
           100.0 / sqrt((double)ps[0].balance_keys[1] / 10000.0));
    printf("\ntargets (default placement):\n");
    printf("  lookup at 100 members    %7.1f ns  (<= %.0f)  %s\n", d->lookup_ns[1],
           RING_TARGET_LOOKUP_100_NS, met(t_l100));
    printf("  lookup at 10000 members  %7.1f ns  (<= %.0f) %s  (%.2f x raw %.1f ns)\n",
           d->lookup_ns[3], RING_TARGET_LOOKUP_10K_NS, met(t_l10k), over_raw, d->raw_ns);
    printf("  build of 10000 members   %7.2f ms  (<= %.0f)  %s\n", d->build_ms,
           RING_TARGET_BUILD_10K_MS, met(t_build));
    printf("  moved on join / leave    %.3f / %.3f x ideal  (<= %.1f, none misplaced)  %s\n", jr,
           lr, RING_TARGET_MOVED_RATIO, met(t_moved));
    printf("  max/mean at 100 members  %7.3f     (<= %.2f)  %s\n", d->max_over_mean[0],
           RING_TARGET_MAX_OVER_MEAN, met(t_balance));
    return d->misplaced ? 1 : 0;
}

#define RING_CONVERGE_SAMPLES 50
#define RING_TARGET_CONVERGE_P99_MS 100.0
#define RING_TARGET_WS_OVER_HTTP_JOIN 1.0 /* --watch-paths: the stream converges no slower */

#define RING_OBSERVERS 3
#define RING_WAIT_NS (10 * 1000000000LL)

/* An observer of the convergence run: its own client (session), woken by its ring's callback. */
typedef struct observer {
    coord_client *c;
    coord_ring *r;
    int64_t seen_at; /* when the awaited epoch was seen, 0 before */
    uint64_t want;   /* the epoch awaited */
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
} observer;

static void on_ring_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r;
    observer *ob = payload;
    pthread_mutex_lock(ob->mu);
    if (ch->epoch == ob->want && !ob->seen_at) ob->seen_at = now_ns();
    pthread_cond_broadcast(ob->cv);
    pthread_mutex_unlock(ob->mu);
}

/* Arm every observer for `want`, then (the change made by the caller) wait until each shows it;
 * the slowest's delay after t0, or -1 after RING_WAIT_NS. */
static void observers_arm(observer *obs, uint64_t want) {
    pthread_mutex_lock(obs[0].mu);
    for (int i = 0; i < RING_OBSERVERS; i++) {
        obs[i].seen_at = 0;
        obs[i].want = want;
    }
    pthread_mutex_unlock(obs[0].mu);
}

static int64_t observers_await(observer *obs, int64_t t0) {
    int64_t end = now_ns() + RING_WAIT_NS, last = 0;
    pthread_mutex_lock(obs[0].mu);
    for (int i = 0; i < RING_OBSERVERS; i++) {
        while (!obs[i].seen_at && coord_ring_epoch(obs[i].r) != obs[i].want) {
            if (now_ns() >= end) {
                pthread_mutex_unlock(obs[0].mu);
                return -1;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(obs[0].cv, obs[0].mu, &ts);
        }
        int64_t at = obs[i].seen_at ? obs[i].seen_at : now_ns();
        if (at > last) last = at;
    }
    pthread_mutex_unlock(obs[0].mu);
    return last - t0;
}

/* `n` joins and leaves of one member on `uri`, added to join, leave and call (the join call
 * itself); 0, or 1 after printing why. Each run has a group, clients and rings of its own. */
static int converge_run(const char *uri, int n, samples *join, samples *leave, samples *call) {
    static int runs;
    char group[64];
    snprintf(group, sizeof group, "bench-%ld-%d", (long)getpid(), runs++);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    observer obs[RING_OBSERVERS] = {0};
    coord_client *mc = NULL;
    coord_ring *mr = NULL;
    size_t n0 = join->n;
    int rc = 0;
    for (int i = 0; i < RING_OBSERVERS && !rc; i++) {
        obs[i].mu = &mu;
        obs[i].cv = &cv;
        coord_ring_options ro = COORD_RING_OPTIONS_INIT;
        ro.on_change = on_ring_change;
        ro.payload = &obs[i];
        if (!(rc = coord_client_open(&obs[i].c, uri, NULL)))
            rc = coord_ring_new(&obs[i].r, obs[i].c, group, &ro);
    }
    if (!rc && !(rc = coord_client_open(&mc, uri, NULL))) rc = coord_ring_new(&mr, mc, group, NULL);
    for (int s = 0; s < n && !rc; s++) {
        uint64_t empty = coord_ring_epoch(obs[0].r);
        observers_arm(obs, UINT64_MAX); /* nothing to see until the join is known */
        int64_t t0 = now_ns();
        if ((rc = coord_ring_join(mr, "bench-member", NULL, 0, 1))) break;
        int64_t t1 = now_ns();
        observers_arm(obs, coord_ring_epoch(mr)); /* the joiner shows itself at once */
        int64_t d = observers_await(obs, t0);
        if (d < 0) break;
        observers_arm(obs, empty);
        int64_t t2 = now_ns();
        if ((rc = coord_ring_leave(mr))) break;
        int64_t e = observers_await(obs, t2);
        if (e < 0 || samples_add(call, t1 - t0) || samples_add(join, d) || samples_add(leave, e))
            break;
    }
    bool complete = !rc && join->n == n0 + (size_t)n;
    if (rc)
        fprintf(stderr, "coord-bench ring: %s: %s\n", coord_strerror(rc), coord_last_error());
    else if (!complete)
        fprintf(stderr, "coord-bench ring: an observer did not converge within %lld s\n",
                RING_WAIT_NS / 1000000000LL);
    coord_ring_free(mr);
    coord_client_close(mc);
    for (int i = 0; i < RING_OBSERVERS; i++) {
        coord_ring_free(obs[i].r);
        coord_client_close(obs[i].c);
    }
    return complete ? 0 : 1;
}

/* With --uri: membership convergence on the servers. One member joins and leaves
 * RING_CONVERGE_SAMPLES times; the time until every observer shows the change, beside the join
 * call itself (one write and one listing). */
static int ring_convergence(const bench_opts *o) {
    samples join = {0}, leave = {0}, call = {0};
    bool complete = !converge_run(o->uri, RING_CONVERGE_SAMPLES, &join, &leave, &call);
    if (complete) {
        samples_sort(&join);
        samples_sort(&leave);
        samples_sort(&call);
        double j50 = pct_ms(&join, 0.5), j99 = pct_ms(&join, 0.99);
        double l50 = pct_ms(&leave, 0.5), l99 = pct_ms(&leave, 0.99), c50 = pct_ms(&call, 0.5);
        bool met_p99 = j99 <= RING_TARGET_CONVERGE_P99_MS;
        char shown[1024];
        if (o->json) {
            printf("{\"mode\":\"ring-convergence\",\"uri\":");
            json_str(shown_uri(o->uri, shown, sizeof shown));
            printf(",\"samples\":%zu,\"observers\":%d,\"join_p50_ms\":%.3f,\"join_p99_ms\":%.3f,"
                   "\"leave_p50_ms\":%.3f,\"leave_p99_ms\":%.3f,\"join_call_p50_ms\":%.3f,"
                   "\"target_p99_ms\":%.0f,\"met\":%s}\n",
                   join.n, RING_OBSERVERS, j50, j99, l50, l99, c50, RING_TARGET_CONVERGE_P99_MS,
                   met_p99 ? "true" : "false");
        } else {
            printf("\nmembership convergence on %s: %zu joins and leaves of one member, %d "
                   "observer clients\n",
                   shown_uri(o->uri, shown, sizeof shown), join.n, RING_OBSERVERS);
            printf("  join  -> every observer updated  p50 %7.3f ms  p99 %7.3f ms  (p99 <= %.0f)  "
                   "%s\n",
                   j50, j99, RING_TARGET_CONVERGE_P99_MS, met(met_p99));
            printf("  leave -> every observer updated  p50 %7.3f ms  p99 %7.3f ms\n", l50, l99);
            printf("  bound: the join call itself (one write and one listing) p50 %.3f ms; an "
                   "observer\n  needs the server's notification and one listing after it\n",
                   c50);
        }
    }
    free(join.v);
    free(leave.v);
    free(call.v);
    return complete ? 0 : 1;
}

/* --watch-paths: the convergence with watch=http and with watch=ws appended to the URI, the paths
 * alternating in WATCH_PATH_SLICES slices each, RING_CONVERGE_SAMPLES samples in all per path. */
static int ring_convergence_paths(const bench_opts *o) {
    static const char *const names[2] = {"http", "ws"};
    char *uris[2] = {NULL, NULL};
    samples join[2] = {{0}}, leave[2] = {{0}}, call[2] = {{0}};
    int failed = 0;
    for (int i = 0; i < 2 && !failed; i++) {
        char param[16];
        snprintf(param, sizeof param, "watch=%s", names[i]);
        if (!(uris[i] = uri_with_param(o->uri, param))) failed = 1;
    }
    for (int k = 0; k < 2 * WATCH_PATH_SLICES && !failed; k++) {
        int i = watch_turn_ws(k) ? 1 : 0, slice = k / 2;
        int n = RING_CONVERGE_SAMPLES / WATCH_PATH_SLICES +
                (slice < RING_CONVERGE_SAMPLES % WATCH_PATH_SLICES ? 1 : 0);
        failed = converge_run(uris[i], n, &join[i], &leave[i], &call[i]);
    }
    if (!failed) {
        double j50[2], j99[2], l50[2], l99[2], c50[2];
        for (int i = 0; i < 2; i++) {
            samples_sort(&join[i]);
            samples_sort(&leave[i]);
            samples_sort(&call[i]);
            j50[i] = pct_ms(&join[i], 0.5);
            j99[i] = pct_ms(&join[i], 0.99);
            l50[i] = pct_ms(&leave[i], 0.5);
            l99[i] = pct_ms(&leave[i], 0.99);
            c50[i] = pct_ms(&call[i], 0.5);
        }
        double r50 = ratio(j50[1], j50[0]), r99 = ratio(j99[1], j99[0]);
        bool met50 = r50 <= RING_TARGET_WS_OVER_HTTP_JOIN;
        char shown[1024];
        if (o->json) {
            printf("{\"mode\":\"ring-convergence-watch-paths\",\"uri\":");
            json_str(shown_uri(o->uri, shown, sizeof shown));
            printf(",\"observers\":%d,\"slices\":%d,\"paths\":[", RING_OBSERVERS,
                   WATCH_PATH_SLICES);
            for (int i = 0; i < 2; i++)
                printf("%s{\"watch\":\"%s\",\"samples\":%zu,\"join_p50_ms\":%.3f,"
                       "\"join_p99_ms\":%.3f,\"leave_p50_ms\":%.3f,\"leave_p99_ms\":%.3f,"
                       "\"join_call_p50_ms\":%.3f}",
                       i ? "," : "", names[i], join[i].n, j50[i], j99[i], l50[i], l99[i], c50[i]);
            printf("],\"ws_over_http_join_p50\":%.3f,\"ws_over_http_join_p99\":%.3f,"
                   "\"targets\":{\"ws_over_http_join_p50\":%.1f},\"met\":%s}\n",
                   r50, r99, RING_TARGET_WS_OVER_HTTP_JOIN, met50 ? "true" : "false");
        } else {
            printf("\nmembership convergence on %s, watch=http and watch=ws alternating in %d "
                   "slices each: %d observer clients\n",
                   shown_uri(o->uri, shown, sizeof shown), WATCH_PATH_SLICES, RING_OBSERVERS);
            for (int i = 0; i < 2; i++)
                printf("  watch=%-4s %zu joins: join -> every observer p50 %7.3f ms p99 %7.3f ms; "
                       "leave p50 %7.3f ms p99 %7.3f ms; join call p50 %.3f ms\n",
                       names[i], join[i].n, j50[i], j99[i], l50[i], l99[i], c50[i]);
            printf("  join convergence ws / http: p50 %.2f (target <= %.1f: no slower than the "
                   "per-watch path)  %s; p99 %.2f\n",
                   r50, RING_TARGET_WS_OVER_HTTP_JOIN, met(met50), r99);
        }
    }
    for (int i = 0; i < 2; i++) {
        free(uris[i]);
        free(join[i].v);
        free(leave[i].v);
        free(call[i].v);
    }
    return failed;
}

int mode_ring(const bench_opts *o) {
    int rc = ring_placements(o);
    if (o->uri && (o->watch_paths ? ring_convergence_paths(o) : ring_convergence(o))) rc = 1;
    return rc;
}
