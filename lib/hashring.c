/*
 * The hash ring (coord_hashring_* and the placements in coord.h). Pure: no I/O, no state outside
 * the ring, immutable once built. One structure serves every placement: `pt`, the points sorted
 * by (position, member), each one 64-bit word holding both so a probe reads one cache line, and
 * a slice index small enough for the L2 cache that gives the window of WINDOW points where the
 * successor of a position lies (successor()). Why this layout, and why the default placement
 * takes 3 probes and 128 points a member, with the measurements: docs/design-ring.md.
 *
 * COORD_RING_DEFAULT is multi-probe consistent hashing (Appleton and O'Reilly, 2015): the point
 * nearest to any of 3 probes, in either direction, owns the key. Members are numbered in id order
 * and a member's points depend only on its id, so the ring depends only on the (id, weight) set
 * and keys move only to a joining member or from a leaving one.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Inlined: about 2 ns for a short key, against 14 ns through Debian's shared libxxhash. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "internal.h"

#define WINDOW 12 /* points compared per successor search (count_below is written for 12) */
#define POINTS_PER_SLICE_LOG 3 /* 4 to 8 points a slice on average */
#define GROUP_LOG 4            /* slices per base of the index: 16, some 100 points */
#define FLIP 0x80000000u       /* stored positions have the top bit flipped (see count_below) */
#define FLIP64 ((uint64_t)FLIP << 32)
#define MAX_POINTS ((uint64_t)UINT32_MAX - WINDOW)
#define GOLDEN 0x9e3779b97f4a7c15ULL
#define MEMCACHED_PORT_SUFFIX ":11211"
#define SEEN_BITS 32768 /* lookup_n tracks members in a bitmap on the stack up to this count */

struct coord_hashring {
    int placement;
    size_t n;      /* members, in member order: by id for DEFAULT, as given otherwise */
    char **ids;    /* n pointers into `names` */
    char *names;   /* the ids, NUL-terminated, one after the other */
    size_t owners; /* members with at least one point */
    size_t npoints;
    uint64_t *pt;   /* npoints + WINDOW: position ^ FLIP << 32 | member; padded above all */
    uint32_t *base; /* the window start of the first slice of each group */
    uint8_t *off;   /* the window start of each slice, from its group's base, at most 255 */
    unsigned shift; /* 32 - bits */
    size_t bytes;   /* memory held, for coord-bench */
    const EVP_MD *md5;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    EVP_MD *md5_fetched;
#endif
};

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint32_t le32(const unsigned char *d) {
    return (uint32_t)d[3] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[1] << 8 | d[0];
}

int coord_ring_options_init(coord_ring_options *opts, unsigned version) {
    if (!opts) return coord_seterr(COORD_EINVAL, "options is NULL");
    if (version == 0 || version > COORD_RING_OPTIONS_VERSION)
        return coord_seterr(COORD_EINVAL,
                            "unsupported coord_ring_options version %u (this library: %d)", version,
                            COORD_RING_OPTIONS_VERSION);
    coord_ring_options init = COORD_RING_OPTIONS_INIT;
    *opts = init;
    opts->version = version;
    return 0;
}

void coord_hashring_free(coord_hashring *h) {
    if (!h) return;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    EVP_MD_free(h->md5_fetched);
#endif
    free(h->pt);
    free(h->base);
    free(h->off);
    free(h->ids);
    free(h->names);
    free(h);
}

size_t coord__hashring_bytes(const coord_hashring *h) {
    return h ? h->bytes : 0;
}

/* ---------- member counts ---------- */

typedef struct sorted_id {
    const char *id;
    uint32_t given; /* index in the caller's arrays */
} sorted_id;

static int cmp_sorted_id(const void *a, const void *b) {
    return strcmp(((const sorted_id *)a)->id, ((const sorted_id *)b)->id);
}

/* libketama: floorf(pct * 40.0 * n) digests, pct a float, the product in double. */
static uint32_t ketama_digests(unsigned w, uint64_t total, size_t nservers) {
    if (w == 0) return 0;
    float pct = (float)w / (float)total;
    float ks = floorf((float)((double)pct * 40.0 * (double)(float)nservers));
    return ks > 0 ? (uint32_t)ks : 0;
}

/* libmemcached (hosts.cc, update_continuum): every step in single precision, plus 1e-10. */
static uint32_t memcached_digests(unsigned w, uint64_t total, size_t nservers) {
    float pct = (float)w / (float)total;
    float share = pct * 160 / 4;
    float scaled = share * (float)nservers;
    double ks = floor((float)((double)scaled + 0.0000000001));
    return ks > 0 ? (uint32_t)ks : 0;
}

/* ---------- successor search ---------- */

/* How many of the points p[0..WINDOW) lie below x. */
static inline uint32_t count_below(const uint64_t *p, uint32_t x) {
#if defined(__SSE2__)
    /* The positions (high halves) of each 4 points gathered into one vector; stored with the top
     * bit flipped, they compare as unsigned positions under SSE2's signed compare (it has no
     * unsigned one) with x flipped alike. A lane is -1 where the point is below x. */
    __m128i xv = _mm_set1_epi32((int32_t)(x ^ FLIP));
    __m128i c[WINDOW / 4];
    for (int k = 0; k < WINDOW / 4; k++) {
        __m128 a = _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 4 * k)));
        __m128 b =
            _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 4 * k + 2)));
        __m128i q = _mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
        c[k] = _mm_cmpgt_epi32(xv, q);
    }
    /* A bit per point (bits 12 to 15 repeat 8 to 11). The window is sorted, so the points below
     * x are a prefix of it: the count is the first zero bit. */
    __m128i m = _mm_packs_epi16(_mm_packs_epi32(c[0], c[1]), _mm_packs_epi32(c[2], c[2]));
    return (uint32_t)__builtin_ctz(~(unsigned)_mm_movemask_epi8(m) | 1u << WINDOW);
#else
    uint64_t xs = (uint64_t)x << 32; /* a point is below x exactly when it is below (x, 0) */
    uint32_t c = 0;
    for (int k = 0; k < WINDOW; k++)
        c += (p[k] ^ FLIP64) < xs;
    return c;
#endif
}

/* The window start of slice b: the point before the slice's first one (or an earlier point, if
 * the offset was cut). */
static inline uint32_t slice_start(const coord_hashring *h, uint32_t b) {
    return h->base[b >> GROUP_LOG] + h->off[b];
}

/* Index of the first point >= x, npoints when there is none; i is the window start of x's
 * slice. */
static inline uint32_t successor(const coord_hashring *h, uint32_t i, uint32_t x) {
    uint32_t c = count_below(h->pt + i, x);
    i += c;
    if (c == WINDOW)
        while ((h->pt[i] ^ FLIP64) < (uint64_t)x << 32)
            i++;
    return i;
}

#if defined(__GNUC__)
#define UNLIKELY(e) __builtin_expect(!!(e), 0)
#else
#define UNLIKELY(e) (e)
#endif

/* Position of point i, top bit flipped: subtracting x flipped likewise gives the distance. */
static inline uint32_t flipped(const coord_hashring *h, uint32_t i) {
    return (uint32_t)(h->pt[i] >> 32);
}

/* Of two (distance << 32 | index) candidates, the nearer point, and of two as near the one first
 * in circle order. */
static inline uint64_t nearer(uint64_t a, uint64_t b) {
    return b < a ? b : a;
}

/* nearest() when the successor s is the first point or none: the other side is across 0. */
static uint64_t nearest_wrap(const coord_hashring *h, uint32_t s, uint32_t x) {
    uint32_t np = (uint32_t)h->npoints;
    uint32_t p = s == 0 ? np - 1 : s - 1;
    s = s == np ? 0 : s;
    uint32_t fx = x ^ FLIP;
    return nearer((uint64_t)(flipped(h, s) - fx) << 32 | s,
                  (uint64_t)(fx - flipped(h, p)) << 32 | p);
}

/* The nearer of the points on either side of x, as (distance << 32 | index); i is the start of
 * x's window. */
static inline uint64_t nearest(const coord_hashring *h, uint32_t i, uint32_t x) {
    uint32_t s = successor(h, i, x);
    if (UNLIKELY(s - 1 >= (uint32_t)h->npoints - 1)) return nearest_wrap(h, s, x);
    uint32_t fx = x ^ FLIP;
    return nearer((uint64_t)(flipped(h, s) - fx) << 32 | s,
                  (uint64_t)(fx - flipped(h, s - 1)) << 32 | (s - 1));
}

/* The default placement's owning point of a key. The probes do not depend on one another, so
 * their cache misses in a big ring overlap. */
static inline uint32_t default_owner(const coord_hashring *h, const void *key, size_t keylen) {
    uint64_t k = XXH3_64bits(key, keylen);
    uint32_t x0 = (uint32_t)(k >> 32), x1 = (uint32_t)k, x2 = (uint32_t)(mix64(k) >> 32);
    uint32_t i0 = slice_start(h, x0 >> h->shift), i1 = slice_start(h, x1 >> h->shift),
             i2 = slice_start(h, x2 >> h->shift);
    return (uint32_t)nearer(nearer(nearest(h, i0, x0), nearest(h, i1, x1)), nearest(h, i2, x2));
}

/* The compatible placements' owning point of a key; -1 when MD5 failed. */
static int64_t md5_owner(const coord_hashring *h, const void *key, size_t keylen) {
    /* libmemcached hashes every key to 0 when there is a single server. */
    uint32_t x = 0;
    if (h->placement == COORD_RING_KETAMA || h->n > 1) {
        unsigned char d[EVP_MAX_MD_SIZE];
        if (EVP_Digest(key, keylen, d, NULL, h->md5, NULL) != 1) return -1;
        x = le32(d);
    }
    uint32_t i = successor(h, slice_start(h, x >> h->shift), x);
    return i == h->npoints ? 0 : i;
}

/* Index of the point owning the key; -1 when the ring has no point or MD5 failed. */
static inline int64_t owner_point(const coord_hashring *h, const void *key, size_t keylen) {
    if (!h || !h->npoints || (!key && keylen)) return -1;
    if (!key) key = "";
    if (h->placement == COORD_RING_DEFAULT) return default_owner(h, key, keylen);
    return md5_owner(h, key, keylen);
}

const char *coord_hashring_lookup(const coord_hashring *h, const void *key, size_t keylen) {
    int64_t i = owner_point(h, key, keylen);
    return i < 0 ? NULL : h->ids[(uint32_t)h->pt[i]];
}

size_t coord_hashring_lookup_n(const coord_hashring *h, const void *key, size_t keylen, size_t n,
                               const char **members) {
    if (!members || !n) return 0;
    int64_t start = owner_point(h, key, keylen);
    if (start < 0) return 0;
    size_t want = n < h->owners ? n : h->owners;
    uint64_t seen[SEEN_BITS / 64];
    bool bitmap = h->n <= SEEN_BITS;
    if (bitmap) memset(seen, 0, (h->n + 63) / 64 * sizeof *seen);
    size_t got = 0;
    for (size_t step = 0, i = (size_t)start; got < want && step < h->npoints; step++) {
        uint32_t m = (uint32_t)h->pt[i];
        bool dup = false;
        if (bitmap) {
            dup = seen[m / 64] >> (m % 64) & 1;
            seen[m / 64] |= (uint64_t)1 << (m % 64);
        } else {
            for (size_t k = 0; k < got && !dup; k++)
                dup = members[k] == h->ids[m];
        }
        if (!dup) members[got++] = h->ids[m];
        if (++i == h->npoints) i = 0;
    }
    return got;
}

/* ---------- build ---------- */

/* Member `m`'s points [from, to) into out[] as (position << 32 | m). */
static void default_points(uint64_t seed, uint32_t m, uint64_t from, uint64_t to, uint64_t *out) {
    for (uint64_t j = from; j < to; j++) {
        uint64_t x = mix64(seed + (j / 2 + 1) * GOLDEN);
        *out++ = (j & 1 ? x & 0xffffffffu : x >> 32) << 32 | m;
    }
}

/* The compatible placements: digest i of "<name>-<i>", 4 little-endian points each. */
static int md5_points(const coord_hashring *h, EVP_MD_CTX *ctx, const char *id, uint32_t m,
                      uint32_t digests, uint64_t *out) {
    size_t len = strlen(id);
    size_t sl = sizeof MEMCACHED_PORT_SUFFIX - 1;
    if (h->placement == COORD_RING_LIBMEMCACHED && len > sl &&
        !strcmp(id + len - sl, MEMCACHED_PORT_SUFFIX))
        len -= sl;
    char *buf = malloc(len + 16);
    if (!buf) return coord__oom();
    memcpy(buf, id, len);
    for (uint32_t i = 0; i < digests; i++) {
        unsigned char d[EVP_MAX_MD_SIZE];
        int sl2 = snprintf(buf + len, 16, "-%u", i);
        if (EVP_DigestInit_ex(ctx, h->md5, NULL) != 1 ||
            EVP_DigestUpdate(ctx, buf, len + (size_t)sl2) != 1 ||
            EVP_DigestFinal_ex(ctx, d, NULL) != 1) {
            free(buf);
            return coord_seterr(COORD_ENOTSUP, "MD5 failed in the crypto library");
        }
        for (int k = 0; k < 4; k++)
            out[4 * (size_t)i + (size_t)k] = (uint64_t)le32(d + 4 * k) << 32 | m;
    }
    free(buf);
    return 0;
}

/*
 * Sorting the points. A counting sort straight into the final array scatters every point to a
 * random cache line of ~10 MB at 10,000 members, which is most of the build time; so the points
 * are first partitioned by the top COARSE_BITS of their position (2048 parts) into the final
 * array, then each part (some 600 points at 10,000 members, held in cache) is sorted in place
 * through a small buffer: by slice, then by value within each slice, and written back with the
 * position's top bit flipped. The points come in member order and a point is (position << 32 |
 * member), so sorting by value keeps equal positions in member order. The default placement's
 * points are cheap to make and are generated twice (count, then partition) rather than stored.
 */
#define COARSE_BITS 11
#define CHUNK 1024

typedef struct sorter {
    coord_hashring *h;
    const uint64_t *count; /* points per member */
    const uint64_t *tmp;   /* all points, for the MD5 placements; NULL for the default one */
    unsigned cshift;       /* 64 - coarse bits: (position << 32 | m) >> cshift is the part */
    uint32_t *part;        /* parts + 1 part starts, then write cursors */
} sorter;

static void visit(const sorter *s, void (*fn)(const sorter *, const uint64_t *, size_t)) {
    if (s->tmp) {
        fn(s, s->tmp, s->h->npoints);
        return;
    }
    uint64_t buf[CHUNK];
    for (size_t m = 0; m < s->h->n; m++) {
        uint64_t seed = XXH3_64bits(s->h->ids[m], strlen(s->h->ids[m]));
        for (uint64_t j = 0; j < s->count[m]; j += CHUNK) {
            uint64_t to = s->count[m] - j < CHUNK ? s->count[m] : j + CHUNK;
            default_points(seed, (uint32_t)m, j, to, buf);
            fn(s, buf, (size_t)(to - j));
        }
    }
}

static void count_parts(const sorter *s, const uint64_t *v, size_t k) {
    for (size_t i = 0; i < k; i++)
        s->part[(v[i] >> s->cshift) + 1]++;
}

static void fill_parts(const sorter *s, const uint64_t *v, size_t k) {
    for (size_t i = 0; i < k; i++)
        s->h->pt[s->part[v[i] >> s->cshift]++] = v[i];
}

/* Sort one part, points [lo, hi) of `pt` lying in slices [b0, b1), in place through `buf`, and
 * index its slices. */
static void sort_part(coord_hashring *h, uint32_t lo, uint32_t hi, size_t b0, size_t b1,
                      uint32_t *cur, uint64_t *buf) {
    uint64_t *v = h->pt;
    memset(cur, 0, (b1 - b0) * sizeof *cur);
    for (uint32_t i = lo; i < hi; i++)
        cur[(v[i] >> 32 >> h->shift) - b0]++;
    uint32_t at = 0;
    for (size_t b = b0; b < b1; b++) {
        uint32_t c = cur[b - b0];
        cur[b - b0] = at;
        /* The window starts at the point before the slice's first one (at 0 for the first);
         * starting earlier is merely slower, so an offset past 255 is cut to 255. */
        uint32_t start = lo + at > 0 ? lo + at - 1 : 0;
        if (!(b & ((1u << GROUP_LOG) - 1))) h->base[b >> GROUP_LOG] = start;
        uint32_t d = start - h->base[b >> GROUP_LOG];
        h->off[b] = (uint8_t)(d < UINT8_MAX ? d : UINT8_MAX);
        at += c;
    }
    for (uint32_t i = lo; i < hi; i++)
        buf[cur[(v[i] >> 32 >> h->shift) - b0]++] = v[i];
    /* Insertion sort within each slice (4 to 8 points on average); cur[b] is now its end. */
    for (size_t b = b0, first = 0; b < b1; first = cur[b - b0], b++)
        for (uint32_t i = (uint32_t)first + 1; i < cur[b - b0]; i++) {
            uint64_t x = buf[i];
            uint32_t j = i;
            for (; j > first && buf[j - 1] > x; j--)
                buf[j] = buf[j - 1];
            buf[j] = x;
        }
    for (uint32_t i = lo; i < hi; i++)
        v[i] = buf[i - lo] ^ FLIP64;
}

static int place(coord_hashring *h, const uint64_t *count, const uint64_t *tmp) {
    size_t np = h->npoints;
    unsigned bits = 1;
    while (bits < 32 && ((uint64_t)1 << (bits + POINTS_PER_SLICE_LOG)) < np)
        bits++;
    unsigned cbits = bits < COARSE_BITS ? bits : COARSE_BITS;
    size_t nb = (size_t)1 << bits, nparts = (size_t)1 << cbits, per = nb / nparts;
    size_t groups = (nb + (1u << GROUP_LOG) - 1) >> GROUP_LOG;
    h->shift = 32 - bits;
    h->pt = malloc((np + WINDOW) * sizeof *h->pt);
    h->base = malloc(groups * sizeof *h->base);
    h->off = malloc(nb * sizeof *h->off);
    sorter s = {.h = h, .count = count, .tmp = tmp, .cshift = 64 - cbits};
    s.part = calloc(nparts + 1, sizeof *s.part);
    uint32_t *cur = malloc(per * sizeof *cur);
    uint64_t *buf = NULL;
    int rc = 0;
    if (!h->pt || !h->base || !h->off || !s.part || !cur) goto nomem;
    visit(&s, count_parts);
    uint32_t biggest = 0;
    for (size_t c = 0; c < nparts; c++) {
        biggest = s.part[c + 1] > biggest ? s.part[c + 1] : biggest;
        s.part[c + 1] += s.part[c];
    }
    if (!(buf = malloc((biggest ? biggest : 1) * sizeof *buf))) goto nomem;
    visit(&s, fill_parts); /* leaves part[c] at the end of part c, the start of part c + 1 */
    for (size_t c = 0; c < nparts; c++)
        sort_part(h, c ? s.part[c - 1] : 0, s.part[c], c * per, (c + 1) * per, cur, buf);
    for (size_t i = 0; i < WINDOW; i++)
        h->pt[np + i] = UINT64_MAX ^ FLIP64;
    h->bytes += groups * sizeof *h->base + nb * sizeof *h->off;
    h->bytes += (np + WINDOW) * sizeof *h->pt;
out:
    free(s.part);
    free(cur);
    free(buf);
    return rc;
nomem:
    rc = coord_seterr(COORD_ENOMEM, "out of memory for %zu ring points", np);
    goto out;
}

static int build_points(coord_hashring *h, const uint64_t *count) {
    for (size_t m = 0; m < h->n; m++)
        h->owners += count[m] > 0;
    if (h->placement == COORD_RING_DEFAULT) return place(h, count, NULL);
    uint64_t *tmp = malloc(h->npoints * sizeof *tmp);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = tmp && ctx ? 0 : coord__oom();
    size_t q = 0;
    for (size_t m = 0; !rc && m < h->n; m++) {
        rc = md5_points(h, ctx, h->ids[m], (uint32_t)m, (uint32_t)(count[m] / 4), tmp + q);
        q += count[m];
    }
    EVP_MD_CTX_free(ctx);
    if (!rc) rc = place(h, count, tmp);
    free(tmp);
    return rc;
}

static int fetch_md5(coord_hashring *h) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    h->md5 = h->md5_fetched = EVP_MD_fetch(NULL, "MD5", NULL);
#else
    h->md5 = EVP_md5();
#endif
    if (!h->md5)
        return coord_seterr(COORD_ENOTSUP, "MD5 is not available from the crypto library (FIPS "
                                           "mode?); the ketama placements need it");
    return 0;
}

int coord_hashring_build(coord_hashring **out, const char *const *member_ids,
                         const unsigned *weights, size_t n, const coord_ring_options *opts) {
    if (!out) return coord_seterr(COORD_EINVAL, "out is NULL");
    *out = NULL;
    coord_ring_options o = COORD_RING_OPTIONS_INIT;
    if (opts) {
        if (opts->version == 0 || opts->version > COORD_RING_OPTIONS_VERSION)
            return coord_seterr(COORD_EINVAL, "unsupported coord_ring_options version %u",
                                opts->version);
        o = *opts;
    }
    if (o.placement != COORD_RING_DEFAULT && o.placement != COORD_RING_KETAMA &&
        o.placement != COORD_RING_LIBMEMCACHED)
        return coord_seterr(COORD_EINVAL, "unknown ring placement %d", o.placement);
    if (n && !member_ids) return coord_seterr(COORD_EINVAL, "member_ids is NULL");
    if (n > UINT32_MAX) return coord_seterr(COORD_EINVAL, "more than 2^32 - 1 members");
    for (size_t i = 0; i < n; i++)
        if (!member_ids[i] || !member_ids[i][0])
            return coord_seterr(COORD_EINVAL, "member id %zu is %s", i,
                                member_ids[i] ? "empty" : "NULL");

    coord_hashring *h = calloc(1, sizeof *h);
    sorted_id *sid = malloc((n ? n : 1) * sizeof *sid);
    uint64_t *count = malloc((n ? n : 1) * sizeof *count);
    unsigned *w = malloc((n ? n : 1) * sizeof *w);
    int rc = 0;
    if (!h || !sid || !count || !w || !(h->ids = malloc((n ? n : 1) * sizeof *h->ids))) {
        rc = coord__oom();
        goto out;
    }
    h->placement = o.placement;
    h->n = n;
    h->bytes = sizeof *h + n * sizeof *h->ids;

    /* Duplicates, and the member order: by id for DEFAULT, as given otherwise. */
    size_t names = 0;
    for (size_t i = 0; i < n; i++) {
        sid[i] = (sorted_id){member_ids[i], (uint32_t)i};
        names += strlen(member_ids[i]) + 1;
    }
    if (n) qsort(sid, n, sizeof *sid, cmp_sorted_id);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(sid[i - 1].id, sid[i].id)) {
            rc = coord_seterr(COORD_EINVAL, "member id \"%s\" given twice", sid[i].id);
            goto out;
        }
    if (!(h->names = malloc(names ? names : 1))) {
        rc = coord__oom();
        goto out;
    }
    h->bytes += names;
    char *p = h->names;
    for (size_t m = 0; m < n; m++) {
        uint32_t given = o.placement == COORD_RING_DEFAULT ? sid[m].given : (uint32_t)m;
        size_t len = strlen(member_ids[given]) + 1;
        memcpy(p, member_ids[given], len);
        h->ids[m] = p;
        p += len;
        w[m] = weights ? weights[given] : 1;
    }

    /* Points per member. */
    uint64_t total = 0, wsum = 0;
    size_t live = 0;
    for (size_t m = 0; m < n; m++) {
        if (o.placement == COORD_RING_LIBMEMCACHED && w[m] == 0) w[m] = 1;
        wsum += w[m];
        live += w[m] > 0;
    }
    unsigned vnodes = o.vnodes ? o.vnodes : COORD_RING_VNODES_DEFAULT;
    for (size_t m = 0; m < n; m++) {
        if (o.placement == COORD_RING_DEFAULT)
            count[m] = (uint64_t)w[m] * vnodes;
        else if (o.placement == COORD_RING_KETAMA)
            count[m] = 4 * (uint64_t)ketama_digests(w[m], wsum, live);
        else
            count[m] = 4 * (uint64_t)memcached_digests(w[m], wsum, live);
        total += count[m];
        if (total > MAX_POINTS) {
            rc = coord_seterr(COORD_EINVAL,
                              "too many ring points (weights times vnodes exceed "
                              "%llu)",
                              (unsigned long long)MAX_POINTS);
            goto out;
        }
    }
    h->npoints = (size_t)total;
    if (total && o.placement != COORD_RING_DEFAULT) rc = fetch_md5(h);
    if (total && !rc) rc = build_points(h, count);

out:
    free(sid);
    free(count);
    free(w);
    if (rc) {
        coord_hashring_free(h);
        return rc;
    }
    *out = h;
    return 0;
}
