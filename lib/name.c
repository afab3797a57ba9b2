/* Names of locks, counters, groups and member ids, the paths made of them, and the random tags
 * that name a handle's entries. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "internal.h"

#define COORD_NAME_MAX 255

int coord_name_check(const char *name) {
    if (!name) return coord_seterr(COORD_EINVAL, "name is NULL");
    size_t n = strnlen(name, COORD_NAME_MAX + 1);
    if (n == 0) return coord_seterr(COORD_EINVAL, "name is empty");
    if (n > COORD_NAME_MAX)
        return coord_seterr(COORD_EINVAL, "name is longer than %d bytes", COORD_NAME_MAX);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return coord_seterr(COORD_EINVAL, "name \"%s\" is reserved", name);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch == '/') return coord_seterr(COORD_EINVAL, "name contains '/' at byte %zu", i);
        if (ch < 0x20 || ch == 0x7f)
            return coord_seterr(COORD_EINVAL, "name contains control character 0x%02x at byte %zu",
                                ch, i);
    }
    return 0;
}

int coord__uuid(char out[37]) {
    unsigned char b[16];
    /* The kernel's generator: 16 bytes never block once it is seeded, nor come back short. */
    ssize_t n;
    do
        n = getrandom(b, sizeof b, 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof b)
        return coord_seterr(COORD_EBACKEND, "getrandom: %s", n < 0 ? strerror(errno) : "short");
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

int coord__path(char **out, const coord_client *c, const char *kind, const char *name) {
    int rc = coord_name_check(name);
    if (rc) return rc;
    if (asprintf(out, "%s/%s/%s", coord_client_prefix(c), kind, name) < 0) {
        *out = NULL;
        return coord__oom();
    }
    return 0;
}
