/*
 * libFuzzer target: lib/ parsers of untrusted text. Every input goes through
 *   - coord_uri_parse (lib/uri.c): no crash or leak; a parsed URI satisfies the documented
 *     invariants and reads back the same after being written out again (canonical form,
 *     credentials and TLS paths percent-encoded); a refused one is COORD_EINVAL with a detail
 *     (COORD_ENOTSUP for a scheme of a backend left out of the build);
 *   - coord_name_check (lib/name.c): accepts exactly the names its coord.h entry describes;
 *   - the counter value codec (lib/counter.c) in its three formats: what decodes re-encodes to
 *     the same value, a canonical decimal to the same bytes, and it agrees with strtoll;
 *   - the ring member value codec (lib/ring.c): decode never fails and stays in bounds, and
 *     encode/decode round-trip both the input as data and what the input decodes to.
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz_common.h"

#include "coord/sys/backend.h"
#include "internal.h"

/* ---------- URI ---------- */

/* The etcd backend's own URI parameters (the TLS files). */
static const char *const tls_params[] = {"ca", "cert", "key"};

typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(strbuf *b, const char *s) {
    sb_add(b, s, strlen(s));
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
static void sb_pct(strbuf *b, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            sb_add(b, s, 1);
        } else {
            char e[4];
            snprintf(e, sizeof e, "%%%02X", c);
            sb_add(b, e, 3);
        }
    }
}

static void sb_param(strbuf *b, bool *first, const char *key, const char *val) {
    sb_str(b, *first ? "?" : "&");
    *first = false;
    sb_str(b, key);
    sb_str(b, "=");
    sb_pct(b, val);
}

static void sb_ms(strbuf *b, bool *first, const char *key, int v) {
    if (!v) return;
    char num[16];
    snprintf(num, sizeof num, "%d", v);
    sb_param(b, first, key, num);
}

/* The canonical text of a parsed URI. */
static char *uri_format(const coord_uri *u) {
    strbuf b = {0};
    sb_str(&b, u->scheme);
    sb_str(&b, "://");
    if (u->user) {
        sb_pct(&b, u->user);
        sb_str(&b, ":");
        sb_pct(&b, u->password);
        sb_str(&b, "@");
    }
    for (size_t i = 0; i < u->nhosts; i++) {
        char port[16];
        snprintf(port, sizeof port, ":%d", u->hosts[i].port);
        bool v6 = strchr(u->hosts[i].host, ':') != NULL;
        if (i) sb_str(&b, ",");
        if (v6) sb_str(&b, "[");
        sb_str(&b, u->hosts[i].host);
        if (v6) sb_str(&b, "]");
        sb_str(&b, port);
    }
    sb_str(&b, u->prefix);
    bool first = true;
    sb_ms(&b, &first, "session_ttl_ms", u->session_ttl_ms);
    sb_ms(&b, &first, "timeout_ms", u->timeout_ms);
    sb_ms(&b, &first, "connect_timeout_ms", u->connect_timeout_ms);
    for (size_t i = 0; i < 3; i++) {
        const char *v = coord_uri_param(u, tls_params[i]);
        if (v) sb_param(&b, &first, tls_params[i], v);
    }
    return b.p;
}

static bool str_eq(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool uri_equal(const coord_uri *a, const coord_uri *b) {
    if (!str_eq(a->scheme, b->scheme) || !str_eq(a->user, b->user) ||
        !str_eq(a->password, b->password) || !str_eq(a->prefix, b->prefix) ||
        a->nhosts != b->nhosts || a->session_ttl_ms != b->session_ttl_ms ||
        a->timeout_ms != b->timeout_ms || a->connect_timeout_ms != b->connect_timeout_ms)
        return false;
    for (size_t i = 0; i < 3; i++)
        if (!str_eq(coord_uri_param(a, tls_params[i]), coord_uri_param(b, tls_params[i])))
            return false;
    for (size_t i = 0; i < a->nhosts; i++)
        if (!str_eq(a->hosts[i].host, b->hosts[i].host) || a->hosts[i].port != b->hosts[i].port)
            return false;
    return true;
}

static bool host_char(char c) {
    return c == '.' || c == '-' || c == '_' || c == ':' || (c >= '0' && c <= '9') ||
           (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void uri_invariants(const coord_uri *u, const char *text) {
    size_t tl = strlen(text);
    FUZZ_CHECK(tl >= 1 && tl <= 4096);
    FUZZ_CHECK(u->scheme && (!strcmp(u->scheme, "zk") || !strcmp(u->scheme, "etcd") ||
                             !strcmp(u->scheme, "etcds")));
    FUZZ_CHECK(u->nhosts >= 1 && u->hosts);
    size_t commas = 0;
    for (const char *p = text; *p; p++)
        commas += *p == ',';
    FUZZ_CHECK(u->nhosts <= commas + 1);
    for (size_t i = 0; i < u->nhosts; i++) {
        const char *h = u->hosts[i].host;
        FUZZ_CHECK(h && h[0]);
        for (const char *p = h; *p; p++)
            FUZZ_CHECK(host_char(*p));
        FUZZ_CHECK(u->hosts[i].port >= 1 && u->hosts[i].port <= 65535);
    }
    /* "/seg[/seg...]": every segment a valid name, no empty one, no trailing '/'. */
    FUZZ_CHECK(u->prefix && u->prefix[0] == '/');
    size_t pl = strlen(u->prefix);
    FUZZ_CHECK(pl >= 2 && u->prefix[pl - 1] != '/' && !strstr(u->prefix, "//"));
    for (const char *p = u->prefix + 1; *p;) {
        size_t sl = strcspn(p, "/");
        char seg[256];
        FUZZ_CHECK(sl >= 1 && sl < sizeof seg);
        memcpy(seg, p, sl);
        seg[sl] = 0;
        FUZZ_CHECK(coord_name_check(seg) == 0);
        p += sl;
        if (*p) p++;
    }
    FUZZ_CHECK((u->user == NULL) == (u->password == NULL));
    FUZZ_CHECK(!u->user || u->user[0]);
    const int *ms[] = {&u->session_ttl_ms, &u->timeout_ms, &u->connect_timeout_ms};
    for (size_t i = 0; i < 3; i++)
        FUZZ_CHECK(*ms[i] >= 0 && *ms[i] <= 86400000);
    FUZZ_CHECK((coord_uri_param(u, "cert") == NULL) == (coord_uri_param(u, "key") == NULL));
    for (size_t i = 0; i < 3; i++) {
        const char *v = coord_uri_param(u, tls_params[i]);
        if (strcmp(u->scheme, "etcds") != 0) FUZZ_CHECK(!v);
        FUZZ_CHECK(!v || v[0]);
    }
}

static void fuzz_uri(const char *text) {
    coord_uri *u = (coord_uri *)(uintptr_t)1;
    coord_seterr(0, "%s", "");
    int rc = coord_uri_parse(&u, text);
    if (rc) {
        FUZZ_CHECK(rc == COORD_EINVAL || rc == COORD_ENOMEM || rc == COORD_ENOTSUP);
        FUZZ_CHECK(u == NULL);
        FUZZ_CHECK(coord_last_error()[0] != 0);
        return;
    }
    FUZZ_CHECK(u != NULL);
    uri_invariants(u, text);
    /* Written out again, it reads back the same (when the encoded form fits the limit). */
    char *again = uri_format(u);
    if (strlen(again) <= 4096) {
        coord_uri *v = NULL;
        rc = coord_uri_parse(&v, again);
        if (rc) fprintf(stderr, "canonical form \"%s\" refused: %s\n", again, coord_last_error());
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(uri_equal(u, v));
        coord_uri_free(v);
    }
    free(again);
    coord_uri_free(u);
}

/* ---------- names ---------- */

static void fuzz_name(const char *name) {
    size_t n = strlen(name);
    bool want = n >= 1 && n <= 255 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
    for (size_t i = 0; want && i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c < 0x20 || c == 0x7f) want = false;
    }
    int rc = coord_name_check(name);
    FUZZ_CHECK(rc == 0 || rc == COORD_EINVAL);
    FUZZ_CHECK((rc == 0) == want);
}

/* ---------- counter values ---------- */

/* An optional '-' then 1 to 19 digits, as strtoll reads it. */
static bool decimal_by_strtoll(const uint8_t *data, size_t size, int64_t *out) {
    if (size == 0 || size > 20) return false;
    char s[21];
    memcpy(s, data, size);
    s[size] = 0;
    size_t digits = size - (s[0] == '-');
    if (strlen(s) != size || digits == 0 || digits > 19) return false;
    for (size_t i = s[0] == '-'; i < size; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static void fuzz_counter(const uint8_t *data, size_t size) {
    static const int formats[] = {COORD_COUNTER_DECIMAL, COORD_COUNTER_INT64_BE,
                                  COORD_COUNTER_INT32_BE};
    for (size_t f = 0; f < 3; f++) {
        int64_t v = 12345;
        int rc = coord__counter_decode(formats[f], data, size, &v);
        FUZZ_CHECK(rc == 0 || rc == COORD_EPROTO);
        if (formats[f] == COORD_COUNTER_DECIMAL && size > 0) {
            int64_t ref;
            bool ok = decimal_by_strtoll(data, size, &ref);
            FUZZ_CHECK(ok == (rc == 0));
            if (ok) FUZZ_CHECK(v == ref);
        }
        if (rc) continue;
        if (size == 0) FUZZ_CHECK(v == 0);
        if (formats[f] == COORD_COUNTER_INT32_BE) FUZZ_CHECK(v >= INT32_MIN && v <= INT32_MAX);
        unsigned char enc[24];
        size_t n = coord__counter_encode(formats[f], v, enc);
        FUZZ_CHECK(n >= 1 && n < sizeof enc);
        int64_t w = 0;
        FUZZ_CHECK(coord__counter_decode(formats[f], enc, n, &w) == 0 && w == v);
        if (formats[f] != COORD_COUNTER_DECIMAL) {
            if (size) FUZZ_CHECK(n == size && memcmp(enc, data, n) == 0);
        } else if (size) {
            /* canonical: no leading zero, no "-0" */
            size_t neg = data[0] == '-';
            bool canonical = !(data[neg] == '0' && (size - neg > 1 || neg));
            if (canonical) FUZZ_CHECK(n == size && memcmp(enc, data, n) == 0);
        }
    }
}

/* ---------- ring member values ---------- */

static void member_roundtrip(const void *data, size_t len, unsigned weight) {
    unsigned char *v = NULL;
    size_t vl = 0;
    FUZZ_CHECK(coord__member_encode(data, len, weight, &v, &vl) == 0);
    unsigned w = 0;
    size_t off = 0;
    coord__member_decode(v, vl, &w, &off);
    FUZZ_CHECK(w == weight);
    FUZZ_CHECK(off <= vl && vl - off == len);
    FUZZ_CHECK(len == 0 || memcmp(v + off, data, len) == 0);
    /* weight 1 is stored as the bare data unless that would read as an envelope */
    if (weight == 1 && off == 0) FUZZ_CHECK(vl == len);
    free(v);
}

static void fuzz_member(const uint8_t *data, size_t size) {
    unsigned w = 12345;
    size_t off = 12345;
    coord__member_decode(data, size, &w, &off);
    FUZZ_CHECK(off <= size);
    FUZZ_CHECK(w <= COORD_RING_MAX_WEIGHT);
    if (off == 0)
        FUZZ_CHECK(w == 1);
    else
        FUZZ_CHECK(data[0] == 0xff && data[off - 1] == '\n');
    /* What the input decodes to survives encoding. */
    member_roundtrip(data + off, size - off, w);
    /* The input as a member's data, under a weight taken from its first bytes. */
    unsigned weight = size >= 2 ? ((unsigned)data[0] << 8 | data[1]) : 1;
    member_roundtrip(data, size, weight % (COORD_RING_MAX_WEIGHT + 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_guarded(data, size, 1); /* a C string: stops at an embedded NUL */
    if (!text) return 0;
    fuzz_uri(text);
    fuzz_name(text);
    fuzz_counter(data, size);
    fuzz_member(data, size);
    return 0;
}
