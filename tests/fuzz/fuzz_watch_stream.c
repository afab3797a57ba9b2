/*
 * libFuzzer target: the newline-delimited stream framer of the etcd watch (etcd_lines_feed,
 * etcd_lines_reset, etcd_lines_free in backends/etcd/etcd_codec.h) and the watch line decoder
 * behind it, as the watch's curl write callback drives them.
 *
 * Input: 4 control bytes, then the stream. Control byte 0 picks the line limit `max` (small
 * limits, so that overlong lines are exercised, or the real 64 MiB), byte 1 the line after
 * which the callback fails (0: never), bytes 2-3 seed the chunk sizes: the stream is fed in
 * chunks of 0 to 64 bytes (sometimes larger), so the split points are fuzzed too.
 *
 * Checked against a byte-by-byte model of the contract: the lines delivered are exactly the
 * stream's complete lines in order, with their trailing '\r'/' ' removed and blank ones skipped;
 * the result is COORD_EPROTO exactly when a line grows beyond `max` (no line from that one on
 * is delivered), the callback's value when it fails (nothing delivered after it), else 0 with
 * the unterminated tail kept for the next chunk. Every delivered line also goes through
 * etcd_parse_watch_line; after a reset, a partial line is forgotten.
 */
#include <stdbool.h>

#include "fuzz_common.h"

#include "etcd_codec.h"

#define REAL_MAX (64u << 20) /* MAX_LINE in etcd_int.h */
#define CB_FAIL 77

typedef struct model_line {
    size_t off, len; /* into the stream, after stripping */
} model_line;

typedef struct ctx {
    const char *stream;
    const model_line *want;
    size_t nwant;
    size_t got;
    size_t fail_after; /* 0: never */
} ctx;

static int on_line(void *p, const char *line, size_t len) {
    ctx *c = p;
    FUZZ_CHECK(c->got < c->nwant);
    const model_line *w = &c->want[c->got];
    FUZZ_CHECK(len == w->len && len > 0);
    FUZZ_CHECK(memcmp(line, c->stream + w->off, len) == 0);
    FUZZ_CHECK(memchr(line, '\n', len) == NULL);
    c->got++;
    etcd_watch_msg m;
    if (etcd_parse_watch_line(line, len, &m) == 0) etcd_watch_msg_clear(&m);
    if (c->fail_after && c->got == c->fail_after) return CB_FAIL;
    return 0;
}

static int on_line_reset(void *p, const char *line, size_t len) {
    FUZZ_CHECK(len == 1 && line[0] == 'z');
    (*(size_t *)p)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t max = data[0] < 0xc0 ? (size_t)data[0] % 48 + 1 : REAL_MAX;
    size_t fail_after = data[1] % 16;
    uint64_t seed = (uint64_t)data[2] << 8 | data[3];
    const char *stream = (const char *)data + 4;
    size_t n = size - 4;

    /* The model: complete lines, the first overlong line, the unterminated tail. */
    model_line *want = malloc((n + 1) * sizeof *want);
    FUZZ_CHECK(want != NULL);
    size_t nwant = 0, start = 0;
    bool overlong = false;
    for (size_t i = 0; i < n; i++) {
        if (i - start + (stream[i] != '\n') > max) { /* the line reached max + 1 bytes */
            overlong = true;
            break;
        }
        if (stream[i] != '\n') continue;
        size_t l = i - start;
        while (l && (stream[start + l - 1] == '\r' || stream[start + l - 1] == ' '))
            l--;
        if (l) want[nwant++] = (model_line){start, l};
        start = i + 1;
    }
    size_t expect_lines = nwant;
    int expect_rc = overlong ? COORD_EPROTO : 0;
    if (fail_after && fail_after <= nwant) {
        expect_lines = fail_after;
        expect_rc = CB_FAIL;
    }

    etcd_lines lb = {.max = max};
    ctx c = {stream, want, nwant, 0, fail_after};
    int rc = 0;
    size_t off = 0;
    while (off < n && rc == 0) {
        uint64_t r = fuzz_rand(&seed);
        size_t chunk = (r & 0xf) == 0 ? (size_t)(r >> 8) % 4096 : (size_t)(r >> 8) % 65;
        if (chunk > n - off) chunk = n - off;
        /* each chunk in its own allocation, so reading past it is caught */
        char *piece = malloc(chunk ? chunk : 1);
        FUZZ_CHECK(piece != NULL);
        memcpy(piece, stream + off, chunk);
        rc = etcd_lines_feed(&lb, piece, chunk, on_line, &c);
        free(piece);
        off += chunk;
    }
    FUZZ_CHECK(rc == expect_rc);
    FUZZ_CHECK(c.got == expect_lines);
    FUZZ_CHECK(lb.len <= max && (lb.len == 0 || lb.len < lb.cap));
    if (rc == 0) {
        /* The tail after the last '\n' waits in the buffer. */
        FUZZ_CHECK(lb.len == n - start);
        FUZZ_CHECK(lb.len == 0 || memcmp(lb.buf, stream + start, lb.len) == 0);
    }

    /* After a reset only what comes next counts. */
    etcd_lines_reset(&lb);
    FUZZ_CHECK(lb.len == 0);
    size_t seen = 0;
    FUZZ_CHECK(etcd_lines_feed(&lb, "z\n", 2, on_line_reset, &seen) == 0);
    FUZZ_CHECK(seen == 1);
    etcd_lines_free(&lb);
    FUZZ_CHECK(lb.buf == NULL && lb.len == 0 && lb.cap == 0);
    free(want);
    return 0;
}
