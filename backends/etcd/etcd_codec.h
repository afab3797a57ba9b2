/*
 * etcd v3 JSON gateway encoding and decoding: pure functions, no I/O, so they are unit tested and
 * fuzzed without a server. Facts: ../shared/reference/INTEROP.md section 2 (bytes as base64,
 * int64 as strings, omitted zero fields, "{"result":...}\n" stream framing, error bodies of the v1
 * and v2 gateways).
 */
#ifndef COORD_ETCD_CODEC_H
#define COORD_ETCD_CODEC_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coord/sys/backend.h"

/* Base64 (standard alphabet, padded) via OpenSSL. Returns a malloc'd NUL-terminated string or
 * NULL when out of memory. */
char *etcd_b64(const void *data, size_t len);

/* Decode base64 into a malloc'd buffer (NUL-terminated for convenience; `*len` excludes it).
 * COORD_EPROTO on malformed input, COORD_ENOMEM. */
int etcd_unb64(const char *s, void **out, size_t *len);

/* Read an int64 field that the gateway emits as a JSON string ("123") but may be a number.
 * An absent field reads as 0 (protobuf omits zero values). COORD_EPROTO when malformed or out of
 * range; a JSON number is only accepted when it is exactly representable (|v| < 2^53). */
int etcd_get_i64(const cJSON *obj, const char *field, int64_t *out);

/* Add an int64 field as a JSON string, never through a double. NULL on OOM. */
cJSON *etcd_add_i64(cJSON *obj, const char *field, int64_t v);

/* Add a bytes field as base64. NULL on OOM. */
cJSON *etcd_add_bytes(cJSON *obj, const char *field, const void *data, size_t len);

/* The range_end that selects every key starting with `prefix`: the prefix with its last byte
 * incremented, dropping trailing 0xff bytes; "\0" (all keys) when the prefix is all 0xff.
 * Writes at most `len` bytes to `out` and returns the length. */
size_t etcd_prefix_end(const char *prefix, size_t len, char *out);

/* Decode one KeyValue object. `strip` bytes are removed from the front of the key (the caller
 * checked the prefix). COORD_EPROTO for a missing key or malformed field. */
int etcd_parse_kv(const cJSON *kv, size_t strip, coord_kv *out);

/*
 * Transactions (the txn slot). Compares per op: CHECK v>0 -> MOD == v, CHECK 0 -> VERSION == 0;
 * PUT/DEL at v>0 -> MOD == v, PUT at 0 -> VERSION == 0; a DEL at -1 or 0 also VERSION > 0 (it
 * needs a value); HELD -> CREATE == token. Success: a put (no lease) or a delete per PUT and DEL.
 * Failure: a keys_only range per compared key (once each, in the order of the ops), so that the
 * answer to a failed txn tells which compare failed.
 */

/* COORD_EINVAL (with a detail) unless `ops` is 1 to COORD_TXN_MAX valid operations. */
int etcd_txn_check(const coord_op *ops, size_t n);

/* The TxnRequest for `ops` (checked with etcd_txn_check); NULL when out of memory. */
cJSON *etcd_txn_request(const coord_op *ops, size_t n);

/* The answer to a txn that did not succeed: the ops evaluated against its failure ranges.
 * `*failed` receives the first failing op (`n` when none fails by them) and `msg` (truncated to
 * `cap`) its detail. COORD_EPROTO when the answer lacks a range. */
int etcd_txn_explain(const cJSON *res, const coord_op *ops, size_t n, size_t *failed, char *msg,
                     size_t cap);

/* Parse a JSON body. COORD_EPROTO (with detail) when it is not a JSON object. */
int etcd_parse_body(const char *body, size_t len, cJSON **out);

/* header.revision of a response (0 when absent). */
int etcd_header_rev(const cJSON *resp, int64_t *rev);

/* Map a gRPC status code to a coord error. */
int etcd_grpc_to_coord(int grpc_code);

/*
 * Interpret a non-200 answer (or a stream error chunk): the v1 gateway's
 * {"error":"..","code":N,"message":".."}, the v2 gateway's {"code":N,"message":".."}, the stream
 * form {"error":{"grpc_code"|"code":N,"message":".."}}, or plain text. Fills `*grpc_code` (-1 if
 * none) and `msg` (truncated to `cap`), and returns the coord error for it, derived from the gRPC
 * code when present, else from the HTTP status (0 for a stream chunk).
 */
int etcd_parse_error(long http_status, const char *body, size_t len, int *grpc_code, char *msg,
                     size_t cap);

/* One event of a watch response. `key` points into a buffer owned by the message. */
typedef struct etcd_event {
    bool is_delete;
    char *key;
    size_t keylen;
    int64_t mod_revision;
    int64_t version;
} etcd_event;

/* One decoded line of a /v3/watch stream. */
typedef struct etcd_watch_msg {
    bool is_error; /* a stream error chunk: err/grpc_code/msg are set */
    int err;
    int grpc_code;
    char msg[256];
    bool created, canceled;
    int64_t watch_id, header_revision, compact_revision;
    etcd_event *events;
    size_t nevents;
} etcd_watch_msg;

/* Decode one stream line ({"result":{...}} or {"error":{...}}). COORD_EPROTO when malformed. */
int etcd_parse_watch_line(const char *line, size_t len, etcd_watch_msg *out);
void etcd_watch_msg_clear(etcd_watch_msg *m);

/*
 * Line framer for newline-delimited streams: feed arbitrary chunks, get whole lines (without the
 * '\n'; blank lines are skipped). A line longer than `max` bytes is COORD_EPROTO.
 */
typedef struct etcd_lines {
    char *buf;
    size_t len, cap, max;
} etcd_lines;

typedef int (*etcd_line_fn)(void *ctx, const char *line, size_t len);

/* Returns 0, the first non-zero value of `fn`, COORD_EPROTO or COORD_ENOMEM. */
int etcd_lines_feed(etcd_lines *lb, const char *data, size_t n, etcd_line_fn fn, void *ctx);
void etcd_lines_reset(etcd_lines *lb);
void etcd_lines_free(etcd_lines *lb);

#endif
