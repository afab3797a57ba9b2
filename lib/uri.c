/*
 * URI parsing (pure, no I/O):
 *   scheme://[user:password@]host[:port][,host[:port]...][/prefix[/more]][?param=value&...]
 * Multi-host authorities are not URLs in the RFC 3986 sense, so the authority is split and each
 * host checked here. The scheme picks the backend table (lib/registry.c), which gives the default
 * port, the query parameters it accepts beyond the common ones, and its own rules (check_uri).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/sys/backend.h"
#include "internal.h"

#define URI_MAX 4096
#define PARAM_MS_MAX 86400000 /* one day */

/* The backend's own query parameters, in the URI's order. */
struct coord_uri_params {
    size_t n;
    struct {
        char *name, *value;
    } * v;
};

void coord_uri_free(coord_uri *u) {
    if (!u) return;
    free(u->scheme);
    free(u->user);
    if (u->password) explicit_bzero(u->password, strlen(u->password));
    free(u->password);
    for (size_t i = 0; i < u->nhosts; i++)
        free(u->hosts[i].host);
    free(u->hosts);
    free(u->prefix);
    if (u->params) {
        for (size_t i = 0; i < u->params->n; i++) {
            free(u->params->v[i].name);
            free(u->params->v[i].value);
        }
        free(u->params->v);
        free(u->params);
    }
    free(u);
}

const char *coord_uri_param(const coord_uri *u, const char *name) {
    if (!u || !name || !u->params) return NULL;
    for (size_t i = 0; i < u->params->n; i++)
        if (strcmp(u->params->v[i].name, name) == 0) return u->params->v[i].value;
    return NULL;
}

/* Set the backend parameter `name` to `*val` (taken over; a repeated name keeps the last). */
static int param_set(coord_uri *u, const char *name, char **val) {
    if (!u->params && !(u->params = calloc(1, sizeof *u->params)))
        return coord_seterr(COORD_ENOMEM, "out of memory");
    coord_uri_params *ps = u->params;
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->v[i].name, name) == 0) {
            free(ps->v[i].value);
            ps->v[i].value = *val;
            *val = NULL;
            return 0;
        }
    void *v = realloc(ps->v, (ps->n + 1) * sizeof *ps->v);
    if (!v) return coord_seterr(COORD_ENOMEM, "out of memory");
    ps->v = v;
    if (!(ps->v[ps->n].name = strdup(name))) return coord_seterr(COORD_ENOMEM, "out of memory");
    ps->v[ps->n++].value = *val;
    *val = NULL;
    return 0;
}

static char *dup_range(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode `n` bytes; a malformed escape and a decoded NUL are refused. */
static int decode(const char *s, size_t n, const char *what, char **out) {
    char *d = malloc(n + 1);
    if (!d) return coord_seterr(COORD_ENOMEM, "out of memory decoding %s", what);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            free(d);
            return coord_seterr(COORD_EINVAL, "%s has a malformed percent escape", what);
        }
        if (!(d[o++] = (char)(hi << 4 | lo))) {
            free(d);
            return coord_seterr(COORD_EINVAL, "%s contains an encoded NUL byte", what);
        }
        i += 2;
    }
    d[o] = 0;
    *out = d;
    return 0;
}

static int parse_port(const char *s, size_t n, int *out) {
    if (n == 0 || n > 5) return coord_seterr(COORD_EINVAL, "bad port \"%.*s\"", (int)n, s);
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return coord_seterr(COORD_EINVAL, "bad port \"%.*s\"", (int)n, s);
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535) return coord_seterr(COORD_EINVAL, "port %d out of range 1-65535", v);
    *out = v;
    return 0;
}

/*
 * A host is an IPv6 literal (written in brackets), a dotted-quad IPv4 address, or a name of
 * dot-separated labels of letters, digits, '-' and '_' (a trailing dot allowed). Percent escapes
 * and other bytes are refused: a cluster address never needs them.
 */
static int check_host(const char *host, bool v6) {
    size_t n = strlen(host);
    if (n > 255) return coord_seterr(COORD_EINVAL, "host name too long: \"%.64s...\"", host);
    for (const char *p = host; *p; p++)
        if (!(*p == '.' || *p == '-' || *p == '_' || *p == ':' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return coord_seterr(COORD_EINVAL, "bad character '%c' in host \"%s\"", *p, host);
    unsigned char addr[16];
    if (v6) {
        if (inet_pton(AF_INET6, host, addr) != 1)
            return coord_seterr(COORD_EINVAL, "bad host \"%s\": not an IPv6 address", host);
        return 0;
    }
    if (strchr(host, ':'))
        return coord_seterr(COORD_EINVAL, "bad host \"%s\": write an IPv6 address in brackets",
                            host);
    if (strspn(host, "0123456789.") == n) {
        if (inet_pton(AF_INET, host, addr) != 1)
            return coord_seterr(COORD_EINVAL, "bad host \"%s\": not an IPv4 address", host);
        return 0;
    }
    for (const char *p = host; *p;) {
        size_t label = strcspn(p, ".");
        if (label == 0 || label > 63)
            return coord_seterr(COORD_EINVAL, "bad host \"%s\": %s label", host,
                                label ? "a too long" : "an empty");
        p += label;
        if (*p) p++; /* a trailing '.' ends the name */
    }
    return 0;
}

static int parse_hosts(coord_uri *u, const char *s, size_t n, int defport) {
    size_t count = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',') count++;
    u->hosts = calloc(count, sizeof *u->hosts);
    if (!u->hosts) return coord_seterr(COORD_ENOMEM, "out of memory");
    const char *p = s, *end = s + n;
    while (1) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *he = comma ? comma : end;
        size_t hl = (size_t)(he - p);
        if (hl == 0) return coord_seterr(COORD_EINVAL, "empty host in host list");
        const char *name = p, *port = NULL;
        size_t namelen = hl, portlen = 0;
        bool v6 = false;
        if (*p == '[') {
            const char *rb = memchr(p, ']', hl);
            if (!rb) return coord_seterr(COORD_EINVAL, "unterminated '[' in host list");
            v6 = true;
            name = p + 1;
            namelen = (size_t)(rb - name);
            if (rb + 1 < he) {
                if (rb[1] != ':')
                    return coord_seterr(COORD_EINVAL, "junk after ']' in \"%.*s\"", (int)hl, p);
                port = rb + 2;
                portlen = (size_t)(he - port);
            }
        } else {
            const char *colon = memchr(p, ':', hl);
            if (colon) {
                namelen = (size_t)(colon - p);
                port = colon + 1;
                portlen = (size_t)(he - port);
            }
        }
        if (namelen == 0)
            return coord_seterr(COORD_EINVAL, "empty host name in \"%.*s\"", (int)hl, p);
        coord_uri_host *h = &u->hosts[u->nhosts];
        h->port = defport;
        if (port && parse_port(port, portlen, &h->port)) return COORD_EINVAL;
        if (!(h->host = dup_range(name, namelen)))
            return coord_seterr(COORD_ENOMEM, "out of memory");
        u->nhosts++;
        if (check_host(h->host, v6)) return COORD_EINVAL;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

static int parse_prefix(coord_uri *u, const char *s, size_t n) {
    /* One trailing '/' is tolerated ("zk://h/app/"); "" and "/" mean the default. */
    if (n > 0 && s[n - 1] == '/') n--;
    if (n == 0) {
        u->prefix = strdup("/coord");
        return u->prefix ? 0 : coord_seterr(COORD_ENOMEM, "out of memory");
    }
    const char *p = s + 1, *end = s + n;
    while (p <= end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *se = slash ? slash : end;
        if (se == p) return coord_seterr(COORD_EINVAL, "empty path segment in \"%.*s\"", (int)n, s);
        char seg[256];
        size_t sl = (size_t)(se - p);
        if (sl >= sizeof seg)
            return coord_seterr(COORD_EINVAL, "path segment longer than 255 bytes");
        memcpy(seg, p, sl);
        seg[sl] = 0;
        if (coord_name_check(seg)) {
            char why[256]; /* the detail lives in the buffer coord_seterr writes */
            snprintf(why, sizeof why, "%s", coord_last_error());
            return coord_seterr(COORD_EINVAL, "bad path segment \"%s\": %s", seg, why);
        }
        if (!slash) break;
        p = slash + 1;
    }
    u->prefix = dup_range(s, n);
    return u->prefix ? 0 : coord_seterr(COORD_ENOMEM, "out of memory");
}

static int parse_ms(const char *key, const char *v, int *out) {
    if (*v < '0' || *v > '9')
        return coord_seterr(COORD_EINVAL, "%s must be a positive integer, got \"%s\"", key, v);
    errno = 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || errno || x < 1 || x > PARAM_MS_MAX)
        return coord_seterr(COORD_EINVAL, "%s must be an integer from 1 to %d, got \"%s\"", key,
                            PARAM_MS_MAX, v);
    *out = (int)x;
    return 0;
}

static bool backend_param(const coord_backend *be, const char *key) {
    for (const char *const *p = be->params; p && *p; p++)
        if (strcmp(*p, key) == 0) return true;
    return false;
}

static int parse_query(coord_uri *u, const coord_backend *be, const char *s, size_t n) {
    const char *p = s, *end = s + n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (!eq)
            return coord_seterr(COORD_EINVAL, "query parameter \"%.*s\" has no value",
                                (int)(pe - p), p);
        char key[32];
        size_t kl = (size_t)(eq - p);
        if (kl == 0 || kl >= sizeof key)
            return coord_seterr(COORD_EINVAL, "bad query parameter \"%.*s\"", (int)(pe - p), p);
        memcpy(key, p, kl);
        key[kl] = 0;
        char *val = NULL;
        if (decode(eq + 1, (size_t)(pe - eq - 1), key, &val)) return COORD_EINVAL;
        int rc = 0;
        if (!strcmp(key, "session_ttl_ms"))
            rc = parse_ms(key, val, &u->session_ttl_ms);
        else if (!strcmp(key, "timeout_ms"))
            rc = parse_ms(key, val, &u->timeout_ms);
        else if (!strcmp(key, "connect_timeout_ms"))
            rc = parse_ms(key, val, &u->connect_timeout_ms);
        else if (!backend_param(be, key)) {
            char known[256] = "";
            size_t len = 0;
            for (const char *const *bp = be->params; bp && *bp; bp++) {
                int w = snprintf(known + len, sizeof known - len, ", %s", *bp);
                if (w > 0 && (size_t)w < sizeof known - len) len += (size_t)w;
            }
            rc = coord_seterr(COORD_EINVAL,
                              "unknown query parameter \"%s\" (known for %s://: session_ttl_ms, "
                              "timeout_ms, connect_timeout_ms%s)",
                              key, u->scheme, known);
        } else if (!*val)
            rc = coord_seterr(COORD_EINVAL, "parameter \"%s\" is empty", key);
        else
            rc = param_set(u, key, &val);
        free(val);
        if (rc) return rc;
        p = amp ? amp + 1 : end;
    }
    return 0;
}

int coord_uri_parse(coord_uri **out, const char *text) {
    const coord_backend *be;
    return coord__uri_parse(out, text, &be);
}

int coord__uri_parse(coord_uri **out, const char *text, const coord_backend **table) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    if (!text) return coord_seterr(COORD_EINVAL, "URI is NULL");
    size_t len = strnlen(text, URI_MAX + 1);
    if (len == 0) return coord_seterr(COORD_EINVAL, "URI is empty");
    if (len > URI_MAX) return coord_seterr(COORD_EINVAL, "URI longer than %d bytes", URI_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] <= 0x20 || (unsigned char)text[i] == 0x7f)
            return coord_seterr(COORD_EINVAL, "URI contains a space or control character");
    if (memchr(text, '#', len)) return coord_seterr(COORD_EINVAL, "URI has a fragment ('#')");

    /* Details quote parts of the URI but never its credentials: not the whole text, and nothing
     * at all when an '@' follows the host list, as then a password holding a '/' or '?' (not
     * percent-encoded) may have been taken for a host, a path or a query. */
    const char *sep = strstr(text, "://");
    if (!sep) return coord_seterr(COORD_EINVAL, "URI has no scheme (\"scheme://\")");
    coord_uri *u = calloc(1, sizeof *u);
    if (!u) return coord_seterr(COORD_ENOMEM, "out of memory");
    int rc = COORD_EINVAL;
    const char *auth = NULL, *ae = NULL;
    if (!(u->scheme = dup_range(text, (size_t)(sep - text)))) goto oom;
    for (char *c = u->scheme; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    const coord_backend *be = NULL;
    if ((rc = coord__backend_find(&be, u->scheme))) goto fail; /* or COORD_ENOTSUP */
    rc = COORD_EINVAL;

    auth = sep + 3;
    ae = auth + strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *p = auth; p < ae; p++)
        if (*p == '@') at = p;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (!colon || colon == auth) {
            coord_seterr(COORD_EINVAL, "credentials must be user:password@");
            goto fail;
        }
        if ((rc = decode(auth, (size_t)(colon - auth), "user name", &u->user)) ||
            (rc = decode(colon + 1, (size_t)(at - colon - 1), "password", &u->password)))
            goto fail;
        rc = COORD_EINVAL;
        auth = at + 1;
    }
    if (auth == ae) {
        coord_seterr(COORD_EINVAL, "URI has no host");
        goto fail;
    }
    if ((rc = parse_hosts(u, auth, (size_t)(ae - auth), be->default_port))) goto fail;

    const char *q = strchr(ae, '?');
    const char *pe = q ? q : text + len;
    if ((rc = parse_prefix(u, ae, (size_t)(pe - ae)))) goto fail;
    if (q && (rc = parse_query(u, be, q + 1, strlen(q + 1)))) goto fail;
    if (be->check_uri && (rc = be->check_uri(u))) goto fail;
    *table = be;
    *out = u;
    return 0;
oom:
    rc = coord_seterr(COORD_ENOMEM, "out of memory");
fail:
    if (rc == COORD_EINVAL && ae && strchr(ae, '@'))
        coord_seterr(rc, "malformed URI (detail withheld: it has an '@' after the host list, so it "
                         "may hold credentials; percent-encode '/', '?', '#' and '@' in user "
                         "names and passwords)");
    coord_uri_free(u);
    return rc;
}
