/* The scripted HTTP/1.1 server of fake_http.h. */
#include "fake_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define MAX_PATHS 32
#define MAX_RULES 16
#define MAX_REQUEST (1u << 20)

typedef enum act { ACT_KEEP, ACT_CLOSE, ACT_HOLD } act;

typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap;
    bool hold;
} conn;

/* Requests seen for one path. */
typedef struct seen {
    char path[128];
    int count;
    char *last_body;
} seen;

struct fake_http {
    int lfd, port;
    int wake[2];
    pthread_t th;
    atomic_bool stop;
    conn conns[MAX_CONNS];
    int nconns;
    fake_http_handler handler;
    void *arg;

    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t cv;  /* broadcast after every request */
    fake_http_rule rules[MAX_RULES];
    size_t nrules;
    seen paths[MAX_PATHS];
    int npaths, total;
};

/* ---------- requests seen ---------- */

/* Called with s->mu held. */
static seen *seen_find(fake_http *s, const char *path, bool add) {
    for (int i = 0; i < s->npaths; i++)
        if (!strcmp(s->paths[i].path, path)) return &s->paths[i];
    if (!add || s->npaths == MAX_PATHS) return NULL;
    seen *p = &s->paths[s->npaths++];
    size_t n = strnlen(path, sizeof p->path - 1); /* a longer path is kept cut */
    memcpy(p->path, path, n);
    p->path[n] = 0;
    return p;
}

/* Called with s->mu held. */
static int count_locked(fake_http *s, const char *path) {
    if (!path) return s->total;
    seen *p = seen_find(s, path, false);
    return p ? p->count : 0;
}

int fake_http_count(fake_http *s, const char *path) {
    pthread_mutex_lock(&s->mu);
    int n = count_locked(s, path);
    pthread_mutex_unlock(&s->mu);
    return n;
}

int fake_http_wait(fake_http *s, const char *path, int want, int timeout_ms) {
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (count_locked(s, path) < want)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl)) break;
    int n = count_locked(s, path);
    pthread_mutex_unlock(&s->mu);
    return n;
}

char *fake_http_last_body(fake_http *s, const char *path) {
    pthread_mutex_lock(&s->mu);
    seen *p = seen_find(s, path, false);
    char *b = p && p->last_body ? strdup(p->last_body) : NULL;
    pthread_mutex_unlock(&s->mu);
    return b;
}

void fake_http_script(fake_http *s, const fake_http_rule *rules, size_t n) {
    if (n > MAX_RULES) n = MAX_RULES;
    pthread_mutex_lock(&s->mu);
    if (n) memcpy(s->rules, rules, n * sizeof *rules);
    s->nrules = n;
    pthread_mutex_unlock(&s->mu);
}

void fake_http_set(fake_http *s, const char *path, fake_http_reply reply) {
    fake_http_rule r = {.path = path, .reply = reply};
    fake_http_script(s, &r, 1);
}

/* Count the request and pick its reply from the script. */
static fake_http_reply pick(fake_http *s, const char *path, const char *body, size_t blen) {
    pthread_mutex_lock(&s->mu);
    s->total++;
    seen *p = seen_find(s, path, true);
    if (p) {
        p->count++;
        free(p->last_body);
        p->last_body = strndup(body, blen);
    }
    fake_http_reply r = {FAKE_HTTP_DEFAULT, 0, NULL, 0};
    for (size_t i = 0; i < s->nrules; i++) {
        const fake_http_rule *u = &s->rules[i];
        if (u->path && strcmp(u->path, path)) continue;
        if (u->if_path) {
            int n = count_locked(s, u->if_path);
            if (n < u->if_min || (u->if_max > 0 && n > u->if_max)) continue;
        }
        r = u->reply;
        break;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* ---------- answers ---------- */

static int send_all(fake_http *s, int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        if (atomic_load(&s->stop)) return -1;
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1; /* includes the SO_SNDTIMEO timeout */
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static void send_json(fake_http *s, int fd, int status, const char *body) {
    char head[256];
    size_t bl = strlen(body);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "\r\n",
                      status, status == 200 ? "OK" : "Error", bl);
    if (send_all(s, fd, head, (size_t)hl) == 0) send_all(s, fd, body, bl);
}

static void send_huge(fake_http *s, int fd, size_t size) {
    char head[160];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "\r\n",
                      size);
    if (send_all(s, fd, head, (size_t)hl)) return;
    size_t chunk = 1u << 20;
    char *buf = malloc(chunk);
    if (!buf) return;
    memset(buf, '[', chunk);
    /* Stops at the first failed send: a client that gives up closes the connection. */
    for (size_t sent = 0; sent < size; sent += chunk) {
        size_t n = size - sent < chunk ? size - sent : chunk;
        if (send_all(s, fd, buf, n)) break;
    }
    free(buf);
}

static void send_stream(fake_http *s, int fd, const char *first) {
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    if (send_all(s, fd, head, strlen(head))) return;
    if (!first || !*first) return;
    char size[32];
    int n = snprintf(size, sizeof size, "%zx\r\n", strlen(first));
    if (send_all(s, fd, size, (size_t)n) == 0 && send_all(s, fd, first, strlen(first)) == 0)
        send_all(s, fd, "\r\n", 2);
}

static act answer(fake_http *s, int fd, const char *path, const char *body, size_t blen) {
    fake_http_reply r = pick(s, path, body, blen);
    char buf[4096];
    if (r.kind == FAKE_HTTP_DEFAULT && s->handler) r = s->handler(s, path, s->arg, buf, sizeof buf);
    switch (r.kind) {
    case FAKE_HTTP_DEFAULT:
        send_json(s, fd, 404, "{\"code\":12,\"message\":\"unknown path\"}");
        return ACT_KEEP;
    case FAKE_HTTP_JSON:
        send_json(s, fd, r.status, r.body ? r.body : "");
        return ACT_KEEP;
    case FAKE_HTTP_CLOSE:
        return ACT_CLOSE;
    case FAKE_HTTP_PARTIAL: {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: 1000\r\n\r\n{\"header\":";
        send_all(s, fd, h, strlen(h));
        return ACT_CLOSE;
    }
    case FAKE_HTTP_HUGE:
        send_huge(s, fd, r.size);
        return ACT_CLOSE;
    case FAKE_HTTP_HOLD:
        return ACT_HOLD;
    case FAKE_HTTP_RAW:
        send_all(s, fd, r.body, strlen(r.body));
        return ACT_CLOSE;
    case FAKE_HTTP_STREAM:
        send_stream(s, fd, r.body);
        return ACT_HOLD;
    }
    return ACT_CLOSE;
}

/* ---------- connections ---------- */

/* Serve every complete request buffered on `c`. Returns false when the connection must close. */
static bool serve_buffered(fake_http *s, conn *c) {
    while (!c->hold) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return c->len < MAX_REQUEST;
        size_t hlen = (size_t)(end - c->buf) + 4;
        char method[16], path[256];
        if (sscanf(c->buf, "%15s %255s", method, path) != 2) return false;
        size_t clen = 0;
        /* Header names are case-insensitive; the buffer is NUL-terminated. */
        char saved = c->buf[hlen];
        c->buf[hlen] = 0;
        const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
        if (cl) clen = strtoul(cl + 17, NULL, 10);
        c->buf[hlen] = saved;
        if (clen > MAX_REQUEST) return false;
        if (c->len < hlen + clen) return true; /* body not complete yet */
        act a = answer(s, c->fd, path, c->buf + hlen, clen);
        memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
        c->len -= hlen + clen;
        c->buf[c->len] = 0;
        if (a == ACT_CLOSE) return false;
        if (a == ACT_HOLD) c->hold = true;
    }
    return true;
}

static bool conn_read(fake_http *s, conn *c) {
    if (c->cap - c->len < 65536 + 1) {
        size_t cap = c->cap ? c->cap * 2 : 131072;
        char *b = realloc(c->buf, cap);
        if (!b) return false;
        c->buf = b;
        c->cap = cap;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, 65536, 0);
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    c->len += (size_t)n;
    c->buf[c->len] = 0;
    return serve_buffered(s, c);
}

static void conn_close(conn *c) {
    close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void *serve(void *arg) {
    fake_http *s = arg;
    struct pollfd pf[MAX_CONNS + 2];
    while (!atomic_load(&s->stop)) {
        int n = 0;
        pf[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (int i = 0; i < s->nconns; i++)
            pf[n++] = (struct pollfd){.fd = s->conns[i].fd,
                                      .events = s->conns[i].hold ? POLLRDHUP : POLLIN};
        int r = poll(pf, (nfds_t)n, 200);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 || pf[0].revents) break;
        for (int i = 0; i < s->nconns; i++) {
            short ev = pf[2 + i].revents;
            if (!ev) continue;
            /* A held connection is only watched for the peer going away. */
            bool keep = s->conns[i].hold ? !(ev & (POLLRDHUP | POLLHUP | POLLERR))
                                         : conn_read(s, &s->conns[i]);
            if (!keep) conn_close(&s->conns[i]);
        }
        int k = 0;
        for (int i = 0; i < s->nconns; i++)
            if (s->conns[i].fd >= 0) s->conns[k++] = s->conns[i];
        s->nconns = k;
        if (pf[1].revents & POLLIN) {
            int fd = accept(s->lfd, NULL, NULL);
            if (fd >= 0 && s->nconns == MAX_CONNS) {
                close(fd);
            } else if (fd >= 0) {
                /* A client that stops reading cannot block the server for long. */
                struct timeval tv = {2, 0};
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                s->conns[s->nconns++] = (conn){.fd = fd};
            }
        }
    }
    for (int i = 0; i < s->nconns; i++)
        conn_close(&s->conns[i]);
    s->nconns = 0;
    return NULL;
}

/* ---------- lifecycle ---------- */

/* A socket bound to 127.0.0.1 on a port of the kernel's choice, or -1. */
static int bind_any(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &al)) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int fake_http_refused_port(void) {
    int port;
    int fd = bind_any(&port); /* bound but never listening: connections are refused */
    if (fd < 0) return -1;
    close(fd);
    return port;
}

fake_http *fake_http_start(fake_http_handler handler, void *arg) {
    fake_http *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->handler = handler;
    s->arg = arg;
    s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->stop, false);
    s->lfd = bind_any(&s->port);
    int err;
    if (s->lfd < 0 || listen(s->lfd, 64) || pipe2(s->wake, O_CLOEXEC)) goto fail;
    if ((err = pthread_create(&s->th, NULL, serve, s))) {
        errno = err;
        goto fail;
    }
    return s;
fail:
    err = errno;
    if (s->lfd >= 0) close(s->lfd);
    if (s->wake[0] >= 0) close(s->wake[0]);
    if (s->wake[1] >= 0) close(s->wake[1]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    errno = err;
    return NULL;
}

void fake_http_stop(fake_http *s) {
    if (!s) return;
    atomic_store(&s->stop, true);
    ssize_t w = write(s->wake[1], "x", 1);
    (void)w;
    pthread_join(s->th, NULL);
    close(s->lfd);
    close(s->wake[0]);
    close(s->wake[1]);
    for (int i = 0; i < s->npaths; i++)
        free(s->paths[i].last_body);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

int fake_http_port(const fake_http *s) {
    return s->port;
}
