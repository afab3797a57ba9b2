/*
 * A thread that does a recipe's background step whenever it is kicked (a watch fired, the
 * session changed), with the reasons given since its last run; a step that fails (no server now)
 * runs again with the same reasons after a pause that doubles from 30 ms to about 2 s. Used by
 * the election's observer and the key-value watches.
 */
#include <string.h>

#include "internal.h"

int coord__worker_init(coord__worker *w, int (*step)(void *arg, unsigned why), void *arg) {
    memset(w, 0, sizeof *w);
    w->step = step;
    w->arg = arg;
    if (pthread_mutex_init(&w->mu, NULL)) return coord_seterr(COORD_ENOMEM, "mutex init failed");
    if (coord__cond_init(&w->cv)) {
        pthread_mutex_destroy(&w->mu);
        return coord_seterr(COORD_ENOMEM, "pthread_cond_init failed");
    }
    return 0;
}

static void *worker_main(void *arg) {
    coord__worker *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        int64_t now = coord__now_ms();
        if (!w->dirty || now < w->retry_at) {
            if (!w->dirty) {
                pthread_cond_wait(&w->cv, &w->mu);
            } else {
                struct timespec dl = coord__deadline(w->retry_at - now);
                pthread_cond_timedwait(&w->cv, &w->mu, &dl);
            }
            continue;
        }
        unsigned why = w->why;
        w->dirty = false;
        w->why = 0;
        pthread_mutex_unlock(&w->mu);
        int rc = w->step(w->arg, why);
        pthread_mutex_lock(&w->mu);
        if (rc) {
            w->dirty = true;
            w->why |= why;
            if (w->fails < 6) w->fails++;
            w->retry_at = coord__now_ms() + (15 << w->fails);
        } else {
            w->fails = 0;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int coord__worker_start(coord__worker *w) {
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    if (!w->started) {
        if (pthread_create(&w->thread, NULL, worker_main, w) == 0)
            w->started = true;
        else
            rc = coord_seterr(COORD_ENOMEM, "cannot start a thread");
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void coord__worker_kick(coord__worker *w, unsigned why) {
    pthread_mutex_lock(&w->mu);
    w->dirty = true;
    w->why |= why;
    w->retry_at = 0;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void coord__worker_kick_at(coord__worker *w, unsigned why, int64_t at_ms) {
    pthread_mutex_lock(&w->mu);
    if (!w->dirty || at_ms < w->retry_at) w->retry_at = at_ms;
    w->dirty = true;
    w->why |= why;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void coord__worker_stop(coord__worker *w) {
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    bool started = w->started;
    w->started = false;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (started) pthread_join(w->thread, NULL);
}

void coord__worker_destroy(coord__worker *w) {
    coord__worker_stop(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}
