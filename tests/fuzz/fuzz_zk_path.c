/*
 * libFuzzer target: the ZooKeeper child-name and path helpers (backends/zk/zk_path.h). The input
 * is a path; it and each of its segments (child names as get_children returns them) go through
 *   - zk_sequence: true exactly when the name ends in 10 ASCII digits, the value then prints
 *     back (%010lld) as those 10 digits, the result is the same with seq NULL, and a name that is
 *     not a sequence leaves *seq alone;
 *   - zk_parent_len / zk_basename: they split the path at its last '/' (parent + "/" + basename
 *     is the path, the basename has no '/', the parent is a prefix).
 */
#include <stdbool.h>

#include "fuzz_common.h"

#include "zk_path.h"

static void check_sequence(const char *name) {
    size_t n = strlen(name);
    bool want = n >= 10;
    for (size_t i = n >= 10 ? n - 10 : 0; want && i < n; i++)
        want = name[i] >= '0' && name[i] <= '9';
    int64_t seq = -42;
    bool got = zk_sequence(name, &seq);
    FUZZ_CHECK(got == want);
    FUZZ_CHECK(zk_sequence(name, NULL) == got);
    if (!got) {
        FUZZ_CHECK(seq == -42);
        return;
    }
    FUZZ_CHECK(seq >= 0 && seq <= 9999999999LL);
    char back[16];
    FUZZ_CHECK(snprintf(back, sizeof back, "%010lld", (long long)seq) == 10);
    FUZZ_CHECK(memcmp(back, name + n - 10, 10) == 0);
}

static void check_path(const char *path) {
    size_t n = strlen(path);
    const char *last = strrchr(path, '/');
    size_t plen = zk_parent_len(path);
    const char *base = zk_basename(path);
    FUZZ_CHECK(plen <= n);
    FUZZ_CHECK(base >= path && base <= path + n);
    FUZZ_CHECK(strchr(base, '/') == NULL);
    if (last) {
        FUZZ_CHECK(path[plen] == '/');
        FUZZ_CHECK(base == path + plen + 1);
        FUZZ_CHECK(memchr(path + plen + 1, '/', n - plen - 1) == NULL);
    } else {
        FUZZ_CHECK(plen == 0 && base == path);
    }
    /* The parent of the parent is shorter still (a walk up ends at the root). */
    if (plen > 0) {
        char *parent = strndup(path, plen);
        FUZZ_CHECK(parent != NULL);
        FUZZ_CHECK(zk_parent_len(parent) < plen);
        free(parent);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_guarded(data, size, 1); /* a C string: stops at an embedded NUL */
    if (!path) return 0;
    check_path(path);
    check_sequence(path);
    check_sequence(zk_basename(path));
    /* Every segment on its own, as a child name of the listing. */
    size_t n = strlen(path);
    char *name = malloc(n + 1);
    FUZZ_CHECK(name != NULL);
    for (const char *p = path; *p;) {
        size_t sl = strcspn(p, "/");
        memcpy(name, p, sl);
        name[sl] = 0;
        check_sequence(name);
        check_path(name);
        p += sl;
        if (*p) p++;
    }
    free(name);
    return 0;
}
