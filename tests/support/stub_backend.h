/*
 * Slots of a backend table that serves nothing: every one but open fails with COORD_ENOTSUP
 * (or does nothing). For unit tests that need a table to register (schemes to parse, the
 * registry's checks) and never reach a server. Header-only: include it in one test file.
 *
 *   static const coord_backend t = {.version = COORD_BACKEND_VERSION, .name = "x",
 *                                   .schemes = ..., .default_port = 1, .open = my_open,
 *                                   COORD_STUB_SLOTS};
 */
#ifndef COORD_TEST_STUB_BACKEND_H
#define COORD_TEST_STUB_BACKEND_H

#include "coord/sys/backend.h"

static inline int coord_stub_open(coord_conn **out, const coord_config *cfg) {
    (void)out, (void)cfg;
    return coord_seterr(COORD_EUNAVAILABLE, "stub backend: no server");
}
static inline void coord_stub_close(coord_conn *c) {
    (void)c;
}
static inline uint64_t coord_stub_session(coord_conn *c) {
    (void)c;
    return 1;
}
static inline int coord_stub_get(coord_conn *c, const char *path, coord_kv *out, int timeout_ms) {
    (void)c, (void)path, (void)out, (void)timeout_ms;
    return COORD_ENOTSUP;
}
static inline int coord_stub_put(coord_conn *c, const char *path, const void *value, size_t len,
                                 int64_t expect, unsigned flags, coord_kv *out, int timeout_ms) {
    (void)c, (void)path, (void)value, (void)len, (void)expect, (void)flags, (void)out;
    (void)timeout_ms;
    return COORD_ENOTSUP;
}
static inline int coord_stub_del(coord_conn *c, const char *path, int64_t expect, int timeout_ms) {
    (void)c, (void)path, (void)expect, (void)timeout_ms;
    return COORD_ENOTSUP;
}
static inline int coord_stub_list(coord_conn *c, const char *path, unsigned flags, coord_kv **out,
                                  size_t *n, int64_t *epoch, int timeout_ms) {
    (void)c, (void)path, (void)flags, (void)out, (void)n, (void)epoch, (void)timeout_ms;
    return COORD_ENOTSUP;
}
static inline int coord_stub_watch(coord_conn *c, const char *path, int kind, int64_t after,
                                   coord_watch_fn fn, void *payload, coord_watch **out) {
    (void)c, (void)path, (void)kind, (void)after, (void)fn, (void)payload, (void)out;
    return COORD_ENOTSUP;
}
static inline void coord_stub_unwatch(coord_conn *c, coord_watch *w) {
    (void)c, (void)w;
}
static inline int coord_stub_enqueue(coord_conn *c, const char *dir, const char *tag,
                                     const char *kind, const char *only, const void *value,
                                     size_t len, coord_kv *mine, bool *first, coord_kv *pred,
                                     int64_t *after, int timeout_ms) {
    (void)c, (void)dir, (void)tag, (void)kind, (void)only, (void)value, (void)len, (void)mine;
    (void)first;
    (void)pred, (void)after, (void)timeout_ms;
    return COORD_ENOTSUP;
}
static inline int coord_stub_head(coord_conn *c, const char *dir, coord_kv *out, int timeout_ms) {
    (void)c, (void)dir, (void)out, (void)timeout_ms;
    return COORD_ENOTSUP;
}
static inline int coord_stub_pred(coord_conn *c, const char *dir, const coord_kv *mine,
                                  const char *only, coord_kv *pred, int64_t *after,
                                  int timeout_ms) {
    (void)c, (void)dir, (void)mine, (void)only, (void)pred, (void)after, (void)timeout_ms;
    return COORD_ENOTSUP;
}

/* Every mandatory slot but open. */
#define COORD_STUB_SLOTS                                                                           \
    .close = coord_stub_close, .session = coord_stub_session, .get = coord_stub_get,               \
    .put = coord_stub_put, .del = coord_stub_del, .list = coord_stub_list,                         \
    .watch = coord_stub_watch, .unwatch = coord_stub_unwatch, .lock_enqueue = coord_stub_enqueue,  \
    .lock_predecessor = coord_stub_pred, .queue_head = coord_stub_head

#endif
