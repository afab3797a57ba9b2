#include "zk_path.h"

#include <string.h>

bool zk_sequence(const char *name, int64_t *seq) {
    size_t n = strlen(name);
    if (n < 10) return false;
    int64_t v = 0;
    for (size_t i = n - 10; i < n; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        v = v * 10 + (name[i] - '0');
    }
    /* The server formats a signed 32-bit counter with %010d; a wrapped (negative) one shows a
     * '-' and is not a sequence by this rule, as in Curator. */
    if (seq) *seq = v;
    return true;
}

size_t zk_parent_len(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? (size_t)(slash - path) : 0;
}

const char *zk_basename(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}
