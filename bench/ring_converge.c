/*
 * Membership convergence for `coord-bench ring --uri URI`: how long from a join (or a leave)
 * until every observer's ring shows it. Observers are separate clients (sessions), as separate
 * processes would be; each is woken by its ring's change callback, never polled.
 */
#include "ring_converge.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <coord.h>

#define OBSERVERS 3
#define WAIT_MS 10000

typedef struct observer {
    coord_client *c;
    coord_ring *r;
    int64_t seen_at; /* when the awaited change was seen, 0 before */
    uint64_t want;   /* the epoch awaited */
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
} observer;

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_change(coord_ring *r, const coord_ring_change *ch, void *payload) {
    (void)r;
    observer *o = payload;
    pthread_mutex_lock(o->mu);
    if (ch->epoch == o->want && !o->seen_at) o->seen_at = now_us();
    pthread_cond_broadcast(o->cv);
    pthread_mutex_unlock(o->mu);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const int64_t *v, size_t n, double p) {
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

/* Wait until every observer saw its awaited epoch; the slowest's time, or -1 on timeout. */
static int64_t await_all(observer *obs, pthread_mutex_t *mu, pthread_cond_t *cv, int64_t t0) {
    int64_t end = now_us() + (int64_t)WAIT_MS * 1000, last = 0;
    pthread_mutex_lock(mu);
    for (int i = 0; i < OBSERVERS; i++) {
        while (!obs[i].seen_at && coord_ring_epoch(obs[i].r) != obs[i].want) {
            if (now_us() >= end) {
                pthread_mutex_unlock(mu);
                return -1;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(cv, mu, &ts);
        }
        int64_t at = obs[i].seen_at ? obs[i].seen_at : now_us();
        if (at > last) last = at;
    }
    pthread_mutex_unlock(mu);
    return last - t0;
}

int ring_converge_run(const char *uri, const char *group, int samples, ring_converge *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    observer obs[OBSERVERS] = {0};
    coord_client *mc = NULL;
    coord_ring *mr = NULL;
    int64_t *join = calloc((size_t)samples, sizeof *join);
    int64_t *leave = calloc((size_t)samples, sizeof *leave);
    int64_t *call = calloc((size_t)samples, sizeof *call);
    int rc = join && leave && call ? 0 : COORD_ENOMEM;
    for (int i = 0; i < OBSERVERS && !rc; i++) {
        obs[i].mu = &mu;
        obs[i].cv = &cv;
        coord_ring_options o = COORD_RING_OPTIONS_INIT;
        o.on_change = on_change;
        o.payload = &obs[i];
        if (!(rc = coord_client_open(&obs[i].c, uri, NULL)))
            rc = coord_ring_new(&obs[i].r, obs[i].c, group, &o);
    }
    if (!rc && !(rc = coord_client_open(&mc, uri, NULL))) rc = coord_ring_new(&mr, mc, group, NULL);
    if (rc) fprintf(stderr, "coord-bench ring: %s: %s\n", coord_strerror(rc), coord_last_error());
    const char *id = "bench-member";
    for (int s = 0; s < samples && !rc; s++) {
        uint64_t empty = coord_ring_epoch(obs[0].r);
        pthread_mutex_lock(&mu);
        for (int i = 0; i < OBSERVERS; i++) {
            obs[i].seen_at = 0;
            obs[i].want = 0; /* set from the member's own ring once joined */
        }
        pthread_mutex_unlock(&mu);
        int64_t t0 = now_us();
        if ((rc = coord_ring_join(mr, id, NULL, 0, 1))) break;
        call[s] = now_us() - t0;
        uint64_t want = coord_ring_epoch(mr); /* the joiner shows itself at once */
        pthread_mutex_lock(&mu);
        for (int i = 0; i < OBSERVERS; i++)
            obs[i].want = want;
        pthread_mutex_unlock(&mu);
        if ((join[s] = await_all(obs, &mu, &cv, t0)) < 0) {
            rc = COORD_ETIMEDOUT;
            break;
        }
        pthread_mutex_lock(&mu);
        for (int i = 0; i < OBSERVERS; i++) {
            obs[i].seen_at = 0;
            obs[i].want = empty;
        }
        pthread_mutex_unlock(&mu);
        t0 = now_us();
        if ((rc = coord_ring_leave(mr))) break;
        if ((leave[s] = await_all(obs, &mu, &cv, t0)) < 0) rc = COORD_ETIMEDOUT;
    }
    if (rc == COORD_ETIMEDOUT)
        fprintf(stderr, "coord-bench ring: an observer did not converge within %d ms\n", WAIT_MS);
    if (!rc) {
        qsort(join, (size_t)samples, sizeof *join, cmp_i64);
        qsort(leave, (size_t)samples, sizeof *leave, cmp_i64);
        qsort(call, (size_t)samples, sizeof *call, cmp_i64);
        out->samples = samples;
        out->observers = OBSERVERS;
        out->join_p50_ms = pct(join, (size_t)samples, 0.5);
        out->join_p99_ms = pct(join, (size_t)samples, 0.99);
        out->leave_p50_ms = pct(leave, (size_t)samples, 0.5);
        out->leave_p99_ms = pct(leave, (size_t)samples, 0.99);
        out->write_p50_ms = pct(call, (size_t)samples, 0.5);
    }
    coord_ring_free(mr);
    coord_client_close(mc);
    for (int i = 0; i < OBSERVERS; i++) {
        coord_ring_free(obs[i].r);
        coord_client_close(obs[i].c);
    }
    free(join);
    free(leave);
    free(call);
    return rc;
}
