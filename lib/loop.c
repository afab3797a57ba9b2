/*
 * Loop mode: what an event loop sees of a client (docs/loop.md).
 *
 * Two queues, one mutex. `ready` holds callbacks for coord_client_process, and an eventfd is
 * readable exactly while it is not empty, so a loop's level-triggered watch of that fd wakes it
 * when there is something to run. `jobs` holds the round trips of _async operations (and their
 * timers), run by a few threads of the client, never one per pending operation: a wait (a lock
 * acquire behind another holder) holds no job while it waits; a watch event or a timer queues
 * its next step.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

/* Threads running the round trips of one client's _async operations: as many round trips are
 * in flight at once (the ZooKeeper session pipelines them; etcd gives each its connection). */
#define POOL_THREADS 4

typedef coord__loop_item item;

typedef struct job {
    struct job *next;
    int64_t at;
    void (*fn)(void *arg, uint64_t tag);
    void *arg;
    uint64_t tag;
} job;

struct coord__loop {
    coord_client *c;
    int efd;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* jobs ended (unjob); loop calls run */
    pthread_cond_t jcv;  /* the job threads: a job queued (one woken), the clock, the stop */
    item *ready, *tail;  /* callbacks for process */
    bool armed;          /* the eventfd holds a count */
    pthread_t processor; /* the thread that last ran process (valid once looped) */
    bool looped;
    bool processing;
    job *jobs; /* by time */
    pthread_t threads[POOL_THREADS];
    const void *running[POOL_THREADS]; /* the arg of the job each thread runs */
    int nthreads;
    bool stop;
    coord__aop *pending; /* operations whose done has not been queued */
    void *data;
    /* handles being freed: their threads' calls return without running (coord__loop_forget) */
    const void *gone[16];
    int ngone;
    struct coord__loop *next_loop; /* every loop, for coord__clock_advance */
};

_Atomic int64_t coord__clock_offset;
static pthread_mutex_t loops_mu = PTHREAD_MUTEX_INITIALIZER;
static coord__loop *loops;

void coord__clock_advance(int64_t ms) {
    atomic_fetch_add(&coord__clock_offset, ms);
    /* the job threads wait for their next timer by the clock: they look again */
    pthread_mutex_lock(&loops_mu);
    for (coord__loop *l = loops; l; l = l->next_loop) {
        pthread_mutex_lock(&l->mu);
        pthread_cond_broadcast(&l->jcv);
        pthread_mutex_unlock(&l->mu);
    }
    pthread_mutex_unlock(&loops_mu);
}

static _Thread_local coord_client *inside; /* the client whose process runs on this thread */

int coord__loop_open(coord__loop **out, coord_client *c) {
    coord__loop *l = calloc(1, sizeof *l);
    if (!l) return coord__oom();
    l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->efd < 0) {
        free(l);
        return coord_seterr(COORD_ENOMEM, "eventfd: %s", strerror(errno));
    }
    l->c = c;
    pthread_mutex_init(&l->mu, NULL);
    coord__cond_init(&l->cv);
    coord__cond_init(&l->jcv);
    pthread_mutex_lock(&loops_mu);
    l->next_loop = loops;
    loops = l;
    pthread_mutex_unlock(&loops_mu);
    *out = l;
    return 0;
}

static void arm(coord__loop *l) { /* mu held */
    if (l->armed) return;
    uint64_t one = 1;
    if (write(l->efd, &one, sizeof one) == sizeof one) l->armed = true;
}

static void push(coord__loop *l, item *it) { /* mu held */
    it->next = NULL;
    if (l->tail)
        l->tail->next = it;
    else
        l->ready = it;
    l->tail = it;
    arm(l);
}

int coord__loop_post(coord_client *c, void (*fn)(void *arg, int rc), void *arg, int rc) {
    coord__loop *l = coord__client_loop(c);
    item *it = calloc(1, sizeof *it);
    if (!it) return coord__oom();
    *it = (item){.fn = fn, .arg = arg, .rc = rc, .owned = true};
    pthread_mutex_lock(&l->mu);
    push(l, it);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

void coord__loop_call(coord_client *c, const void *owner, void (*fn)(void *arg, int rc),
                      void *arg) {
    coord__loop *l = coord__client_loop(c);
    if (!l || inside == c) {
        fn(arg, 0);
        return;
    }
    bool ran = false, skip = false;
    item it = {.fn = fn, .arg = arg, .owner = owner, .ran = &ran};
    pthread_mutex_lock(&l->mu);
    /* On the loop's thread outside process (a blocking call made there): at once, since waiting
     * for that thread would wait for ourselves. */
    bool direct = l->looped && pthread_equal(l->processor, pthread_self());
    for (int i = 0; i < l->ngone; i++)
        if (l->gone[i] == owner) skip = true;
    if (!direct && !skip && !l->stop) {
        push(l, &it);
        while (!ran)
            pthread_cond_wait(&l->cv, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    if (direct) fn(arg, 0);
}

/* Drop the queued calls of `owner` (their threads go on without them). mu held. */
static void forget(coord__loop *l, const void *owner) {
    item **pp = &l->ready, *prev = NULL;
    while (*pp) {
        item *it = *pp;
        if (it->ran && (!owner || it->owner == owner)) {
            *pp = it->next;
            *it->ran = true;
            continue;
        }
        prev = it;
        pp = &it->next;
    }
    l->tail = prev;
    pthread_cond_broadcast(&l->cv);
}

void coord__loop_forget(coord_client *c, const void *owner) {
    coord__loop *l = coord__client_loop(c);
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    /* until coord__loop_unforget: a free joins the handle's thread after this */
    while (l->ngone == (int)(sizeof l->gone / sizeof l->gone[0]))
        pthread_cond_wait(&l->cv, &l->mu);
    l->gone[l->ngone++] = owner;
    forget(l, owner);
    pthread_mutex_unlock(&l->mu);
}

void coord__loop_unforget(coord_client *c, const void *owner) {
    coord__loop *l = coord__client_loop(c);
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < l->ngone; i++)
        if (l->gone[i] == owner) {
            l->gone[i] = l->gone[--l->ngone];
            break;
        }
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

int coord_client_fd(const coord_client *c) {
    coord__loop *l = c ? coord__client_loop((coord_client *)c) : NULL;
    if (!l) return coord_seterr(COORD_EINVAL, "client is not in loop mode"), -1;
    return l->efd;
}

int coord_client_timeout(const coord_client *c) {
    coord__loop *l = c ? coord__client_loop((coord_client *)c) : NULL;
    if (!l) return -1;
    pthread_mutex_lock(&l->mu);
    int t = l->ready ? 0 : -1;
    pthread_mutex_unlock(&l->mu);
    return t;
}

void coord_client_set_loop_data(coord_client *c, void *data) {
    coord__loop *l = c ? coord__client_loop(c) : NULL;
    if (l) l->data = data;
}

void *coord_client_loop_data(const coord_client *c) {
    coord__loop *l = c ? coord__client_loop((coord_client *)c) : NULL;
    return l ? l->data : NULL;
}

/* A free asked for inside a callback of the handle being freed (coord__loop_defer): run once
 * that callback has returned and its library thread has been let go. */
typedef struct deferred {
    struct deferred *next;
    void (*fn)(void *obj);
    void *obj;
} deferred;
static _Thread_local const void *calling; /* the owner of the loop call running on this thread */
static _Thread_local deferred *defers;

bool coord__loop_defer(coord_client *c, const void *owner, void (*fn)(void *obj), void *obj) {
    if (!owner || inside != c || calling != owner) return false;
    deferred *d = malloc(sizeof *d);
    if (!d) return false; /* then the free runs now; its thread is let go by the close */
    *d = (deferred){defers, fn, obj};
    defers = d;
    return true;
}

/* Run what is ready now, one item at a time (a free may forget items still queued), at most as
 * many as were there at the start: what the callbacks queue waits for the next call, so they
 * cannot keep the loop here. */
static int run_ready(coord__loop *l) {
    pthread_mutex_lock(&l->mu);
    size_t count = 0;
    for (item *it = l->ready; it; it = it->next)
        count++;
    if (l->armed) {
        uint64_t n;
        if (read(l->efd, &n, sizeof n) == sizeof n) l->armed = false;
    }
    l->processing = true;
    l->processor = pthread_self();
    l->looped = true;
    pthread_mutex_unlock(&l->mu);
    coord_client *outer = inside;
    inside = l->c;
    int n = 0;
    while (count--) {
        pthread_mutex_lock(&l->mu);
        item *it = l->ready;
        if (it && !(l->ready = it->next)) l->tail = NULL;
        if (!l->ready && l->armed) { /* the rest of the count went (forgotten): no work left */
            uint64_t v;
            if (read(l->efd, &v, sizeof v) == sizeof v) l->armed = false;
        }
        pthread_mutex_unlock(&l->mu);
        if (!it) break;
        /* An operation's item lives in its handle, which its done may free. */
        bool *ran = it->ran, owned = it->owned;
        const void *outer_call = calling;
        calling = it->owner;
        it->fn(it->arg, it->rc);
        calling = outer_call;
        if (owned) free(it);
        n++;
        if (ran) {
            pthread_mutex_lock(&l->mu);
            *ran = true;
            pthread_cond_broadcast(&l->cv);
            pthread_mutex_unlock(&l->mu);
        }
        while (defers && !calling) { /* the callback's thread is let go: free its handle */
            deferred *d = defers;
            defers = d->next;
            d->fn(d->obj);
            free(d);
        }
    }
    inside = outer;
    pthread_mutex_lock(&l->mu);
    l->processing = false;
    pthread_mutex_unlock(&l->mu);
    return n;
}

int coord_client_process(coord_client *c) {
    coord__loop *l = c ? coord__client_loop(c) : NULL;
    if (!l) return coord_seterr(COORD_EINVAL, "client is not in loop mode");
    return run_ready(l);
}

bool coord__loop_inside(const coord_client *c) {
    return inside == c;
}

/* ---- the round trips' threads ---- */

static void *pool_main(void *arg) {
    coord__loop *l = arg;
    pthread_mutex_lock(&l->mu);
    int me = 0;
    while (me < l->nthreads && !pthread_equal(l->threads[me], pthread_self()))
        me++;
    while (!l->stop) {
        job *j = l->jobs;
        int64_t now = coord__now_ms();
        if (!j) {
            pthread_cond_wait(&l->jcv, &l->mu);
            continue;
        }
        if (j->at > now) {
            struct timespec dl = coord__deadline(j->at - now);
            pthread_cond_timedwait(&l->jcv, &l->mu, &dl);
            continue;
        }
        l->jobs = j->next;
        l->running[me] = j->arg;
        pthread_mutex_unlock(&l->mu);
        j->fn(j->arg, j->tag);
        free(j);
        pthread_mutex_lock(&l->mu);
        l->running[me] = NULL;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int coord__loop_job(coord_client *c, int64_t at, void (*fn)(void *arg, uint64_t tag), void *arg,
                    uint64_t tag) {
    coord__loop *l = coord__client_loop(c);
    job *j = malloc(sizeof *j);
    if (!j) return coord__oom();
    *j = (job){.at = at, .fn = fn, .arg = arg, .tag = tag};
    pthread_mutex_lock(&l->mu);
    if (l->stop) {
        pthread_mutex_unlock(&l->mu);
        free(j);
        return coord_seterr(COORD_ECANCELED, "client closing");
    }
    /* The threads start with the first job: a loop-mode client that makes no _async call
     * has none. */
    while (l->nthreads < POOL_THREADS) {
        if (pthread_create(&l->threads[l->nthreads], NULL, pool_main, l)) break;
        l->nthreads++;
    }
    if (!l->nthreads) {
        pthread_mutex_unlock(&l->mu);
        free(j);
        return coord_seterr(COORD_ENOMEM, "cannot start a thread");
    }
    job **pp = &l->jobs;
    while (*pp && (*pp)->at <= at)
        pp = &(*pp)->next;
    j->next = *pp;
    *pp = j;
    pthread_cond_signal(&l->jcv); /* one thread: the others sleep on (no herd per job) */
    pthread_mutex_unlock(&l->mu);
    return 0;
}

void coord__loop_unjob(coord_client *c, const void *arg) {
    coord__loop *l = coord__client_loop(c);
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    for (bool busy = true; busy;) {
        /* a running job of `arg` may queue another: drop the queued ones after each wait */
        for (job **pp = &l->jobs; *pp;) {
            if ((*pp)->arg == arg) {
                job *j = *pp;
                *pp = j->next;
                free(j);
            } else {
                pp = &(*pp)->next;
            }
        }
        busy = false;
        for (int i = 0; i < l->nthreads; i++)
            if (l->running[i] == arg && !pthread_equal(l->threads[i], pthread_self())) busy = true;
        if (busy) pthread_cond_wait(&l->cv, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
}

/* ---- operations in flight ---- */

int coord__aop_start(coord_client *c, coord__aop *op) {
    coord__loop *l = coord__client_loop(c);
    if (!l)
        return coord_seterr(COORD_EINVAL, "the client is not in loop mode (coord_options.loop)");
    op->c = c;
    pthread_mutex_lock(&l->mu);
    if (l->stop) {
        pthread_mutex_unlock(&l->mu);
        return coord_seterr(COORD_ECANCELED, "client closing");
    }
    op->prev = NULL;
    op->next = l->pending;
    if (l->pending) l->pending->prev = op;
    l->pending = op;
    op->live = true;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static void deliver(void *arg, int rc) {
    coord__aop *op = arg;
    if (rc) coord__error_restore(&op->err);
    op->deliver(op, rc);
}

/* Out of the pending list, no longer live. mu held. */
static void unlink_pending(coord__loop *l, coord__aop *op) {
    op->live = false;
    if (op->prev)
        op->prev->next = op->next;
    else
        l->pending = op->next;
    if (op->next) op->next->prev = op->prev;
}

/* Unlink `op` and queue its delivery; false when it was already done. mu held. */
static bool finish(coord__loop *l, coord__aop *op, int rc) {
    if (!op->live) return false;
    unlink_pending(l, op);
    op->item = (item){.fn = deliver, .arg = op, .rc = rc};
    push(l, &op->item);
    return true;
}

bool coord__aop_finish(coord__aop *op, int rc) {
    coord__loop *l = coord__client_loop(op->c);
    if (rc) coord__error_save(&op->err); /* for coord_last_error() inside its done */
    pthread_mutex_lock(&l->mu);
    bool done = finish(l, op, rc);
    pthread_mutex_unlock(&l->mu);
    return done;
}

void coord__aop_reap(coord__aop *op) {
    coord__loop *l = coord__client_loop(op->c);
    pthread_mutex_lock(&l->mu);
    int rc = 0;
    bool run = false;
    if (op->live) {
        unlink_pending(l, op);
        rc = coord_seterr(COORD_ECANCELED, "handle freed with its operation in flight");
        coord__error_save(&op->err);
        run = true;
    } else {
        item *prev = NULL;
        for (item *it = l->ready; it; prev = it, it = it->next)
            if (it == &op->item) {
                if (prev)
                    prev->next = it->next;
                else
                    l->ready = it->next;
                if (l->tail == it) l->tail = prev;
                rc = it->rc;
                run = true;
                break;
            }
    }
    pthread_mutex_unlock(&l->mu);
    if (run) deliver(op, rc);
}

void coord__loop_close(coord_client *c) {
    coord__loop *l = coord__client_loop(c);
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    forget(l, NULL); /* a library thread waiting for process goes on without it */
    pthread_cond_broadcast(&l->cv);
    pthread_cond_broadcast(&l->jcv);
    pthread_mutex_unlock(&l->mu);
    /* A round trip in progress ends within its own timeout. */
    for (int i = 0; i < l->nthreads; i++)
        pthread_join(l->threads[i], NULL);
    pthread_mutex_lock(&l->mu);
    while (l->jobs) {
        job *j = l->jobs;
        l->jobs = j->next;
        free(j);
    }
    while (l->pending) {
        coord__aop *op = l->pending;
        pthread_mutex_unlock(&l->mu);
        if (op->abort) op->abort(op); /* its watches, before the handle outlives the client */
        pthread_mutex_lock(&l->mu);
        finish(l, op, coord_seterr(COORD_ECANCELED, "client closed"));
    }
    pthread_mutex_unlock(&l->mu);
    /* Every done runs now, on this thread: the answers that arrived and the cancels. */
    run_ready(l);
}

void coord__loop_free(coord__loop *l) {
    if (!l) return;
    pthread_mutex_lock(&loops_mu);
    for (coord__loop **pp = &loops; *pp; pp = &(*pp)->next_loop)
        if (*pp == l) {
            *pp = l->next_loop;
            break;
        }
    pthread_mutex_unlock(&loops_mu);
    close(l->efd);
    pthread_cond_destroy(&l->cv);
    pthread_cond_destroy(&l->jcv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* ---- one blocking call as a job ---- */

static void call_job(void *arg, uint64_t tag) {
    (void)tag;
    coord__call *call = arg;
    coord__aop_finish(&call->op, call->run(call));
}

static void call_deliver(coord__aop *op, int rc) {
    coord__call *call = (coord__call *)op;
    call->done(call, rc);
}

int coord__call_start(coord_client *c, coord__call *call) {
    call->op.deliver = call_deliver;
    int rc = coord__aop_start(c, &call->op);
    if (rc) return rc;
    /* closing meanwhile: done runs at the close */
    if ((rc = coord__loop_job(c, 0, call_job, call, 0))) coord__aop_finish(&call->op, rc);
    return 0;
}

/* ---- a call on a handle ---- */

typedef struct hcall {
    coord__call call;
    void *arg;
    int (*fn)(void *arg);
    void (*release)(void *arg, bool ran);
    bool ran;
    coord_done_fn done;
    void *payload;
} hcall;

static int hcall_run(coord__call *call) {
    hcall *x = (hcall *)call;
    x->ran = true;
    return x->fn(x->arg);
}

static void hcall_done(coord__call *call, int rc) {
    hcall *x = (hcall *)call;
    hcall copy = *x;
    free(x);
    /* first: the done may start the next call on the same argument (a commit again) */
    if (copy.release) copy.release(copy.arg, copy.ran);
    copy.done(rc, copy.payload);
}

int coord__handle_call(coord_client *c, const void *owner, void *arg, int (*fn)(void *arg),
                       void (*release)(void *arg, bool ran), coord_done_fn done, void *payload) {
    if (!done) return coord_seterr(COORD_EINVAL, "done is NULL");
    hcall *x = calloc(1, sizeof *x);
    if (!x) return coord__oom();
    *x = (hcall){.call = {.op = {.owner = owner}, .run = hcall_run, .done = hcall_done},
                 .arg = arg,
                 .fn = fn,
                 .release = release,
                 .done = done,
                 .payload = payload};
    int rc = coord__call_start(c, &x->call);
    if (rc) free(x);
    return rc;
}

/* An operation of `h` not delivered yet (in flight, or its done queued), NULL when none. */
static coord__aop *owned_by(coord__loop *l, const void *h) {
    for (coord__aop *op = l->pending; op; op = op->next)
        if (op->owner == h) return op;
    for (item *it = l->ready; it; it = it->next)
        if (it->fn == deliver && ((coord__aop *)it->arg)->owner == h) return it->arg;
    return NULL;
}

void coord__calls_reap(coord_client *c, const void *h) {
    coord__loop *l = coord__client_loop(c);
    if (!l) return;
    while (1) {
        pthread_mutex_lock(&l->mu);
        coord__aop *op = owned_by(l, h);
        pthread_mutex_unlock(&l->mu);
        if (!op) return;
        coord__loop_unjob(c, op); /* the call's job is the operation itself */
        coord__aop_reap(op);
    }
}

/* ---- a wait as steps ---- */

void coord__stepper_init(coord__stepper *st, coord_client *c, int (*step)(coord__stepper *),
                         void (*end)(coord__stepper *, int)) {
    st->c = c;
    st->step = step;
    st->end = end;
    pthread_mutex_init(&st->mu, NULL);
    st->scheduled = st->running = st->again = st->ended = false;
    st->stop = 0;
}

void coord__stepper_destroy(coord__stepper *st) {
    pthread_mutex_destroy(&st->mu);
}

static void stepper_job(void *arg, uint64_t tag) {
    (void)tag;
    coord__stepper *st = arg;
    pthread_mutex_lock(&st->mu);
    st->scheduled = false;
    bool ended = st->ended;
    st->running = !ended;
    pthread_mutex_unlock(&st->mu);
    if (ended) return;
    int rc = st->step(st);
    pthread_mutex_lock(&st->mu);
    st->running = false;
    bool again = rc == 1 && st->again && !st->ended;
    st->again = false;
    if (again) st->scheduled = true;
    if (rc != 1) st->ended = true;
    pthread_mutex_unlock(&st->mu);
    if (again) coord__loop_job(st->c, 0, stepper_job, st, 0);
    if (rc == 1) return;
    coord__loop_unjob(st->c, st); /* its timer, a wake-up's step */
    st->end(st, rc);
}

void coord__stepper_wake(coord__stepper *st, int stop) {
    pthread_mutex_lock(&st->mu);
    if (stop && !st->stop) st->stop = stop;
    bool run = !st->scheduled && !st->running && !st->ended;
    if (run) st->scheduled = true;
    if (st->running) st->again = true;
    pthread_mutex_unlock(&st->mu);
    /* closing meanwhile: the close ends the operation */
    if (run) coord__loop_job(st->c, 0, stepper_job, st, 0);
}

void coord__stepper_event(void *payload, coord_watch_event ev, int64_t rev) {
    (void)ev, (void)rev;
    coord__stepper_wake(payload, 0);
}

static void stepper_timer(void *arg, uint64_t tag) {
    (void)tag;
    coord__stepper_wake(arg, COORD_ETIMEDOUT);
}

void coord__stepper_timer(coord__stepper *st, int64_t at_ms) {
    coord__loop_job(st->c, at_ms, stepper_timer, st, 0);
}

int coord__stepper_stopped(coord__stepper *st) {
    pthread_mutex_lock(&st->mu);
    int stop = st->stop;
    pthread_mutex_unlock(&st->mu);
    return stop;
}

void coord__stepper_halt(coord__stepper *st) {
    pthread_mutex_lock(&st->mu);
    st->ended = true;
    pthread_mutex_unlock(&st->mu);
}
