/*
 * A scripted HTTP/1.1 server for tests: it listens on 127.0.0.1 (a port of the kernel's choice),
 * answers each request from a script of rules, else from a default handler, and counts the
 * requests per path. Replies can be well-formed or broken on purpose: garbage, a truncated body,
 * a body larger than any client should accept, a connection closed without an answer, or no
 * answer at all. One thread serves every connection; a held connection stays open until the
 * client goes or the server stops. Depends on libc and pthreads only.
 */
#ifndef COORD_FAKE_HTTP_H
#define COORD_FAKE_HTTP_H

#include <stddef.h>

typedef struct fake_http fake_http;

typedef enum fake_http_kind {
    FAKE_HTTP_DEFAULT, /* what the default handler answers (404 without one) */
    FAKE_HTTP_JSON,    /* `status` with `body` as application/json and a correct Content-Length */
    FAKE_HTTP_CLOSE,   /* read the request, close without answering */
    FAKE_HTTP_PARTIAL, /* 200 announcing a 1000-byte body, 10 bytes of it, then close */
    FAKE_HTTP_HUGE,    /* 200 with a body of `size` bytes of '[' (sent until the client stops) */
    FAKE_HTTP_HOLD,    /* read the request, never answer, keep the connection open */
    FAKE_HTTP_RAW,     /* `body` as the raw bytes of the answer (not HTTP), then close */
    FAKE_HTTP_STREAM   /* 200, chunked: `body` as one chunk, then the connection is held open */
} fake_http_kind;

typedef struct fake_http_reply {
    fake_http_kind kind;
    int status;       /* FAKE_HTTP_JSON */
    const char *body; /* FAKE_HTTP_JSON, _RAW, _STREAM */
    size_t size;      /* FAKE_HTTP_HUGE */
} fake_http_reply;

/*
 * One rule of a script: requests for `path` (NULL: any path) get `reply`. With `if_path` set the
 * rule applies only while the number of requests for `if_path` so far, the current one included,
 * is at least `if_min` and, when `if_max` > 0, at most `if_max`. The first rule that applies wins.
 */
typedef struct fake_http_rule {
    const char *path;
    fake_http_reply reply;
    const char *if_path;
    int if_min, if_max;
} fake_http_rule;

/*
 * The answer when no rule applies (or a rule's reply is FAKE_HTTP_DEFAULT). Runs on the server's
 * thread, without its lock: it may call fake_http_count. A body it builds goes in `buf` (`size`
 * bytes), which stays valid until the answer is sent.
 */
typedef fake_http_reply (*fake_http_handler)(fake_http *s, const char *path, void *arg, char *buf,
                                             size_t size);

/* Start serving; NULL (errno set) when the socket or the thread cannot be made. */
fake_http *fake_http_start(fake_http_handler handler, void *arg);
/* Stop the thread, close every connection, free everything. NULL is a no-op. */
void fake_http_stop(fake_http *s);
int fake_http_port(const fake_http *s);

/* Replace the script with a copy of `rules` (n 0: no rules). The strings must outlive their use. */
void fake_http_script(fake_http *s, const fake_http_rule *rules, size_t n);
/* The script "answer `path` with `reply`" (path NULL: every path). */
void fake_http_set(fake_http *s, const char *path, fake_http_reply reply);

/* Requests received for `path` so far (NULL: all paths). */
int fake_http_count(fake_http *s, const char *path);
/* Wait until fake_http_count(s, path) >= want or `timeout_ms` pass; returns the count then. */
int fake_http_wait(fake_http *s, const char *path, int want, int timeout_ms);
/* A copy of the body of the last request for `path` (NULL if none); the caller frees it. */
char *fake_http_last_body(fake_http *s, const char *path);

/* A port on 127.0.0.1 where nothing listens (connections are refused), or -1. */
int fake_http_refused_port(void);

#endif
