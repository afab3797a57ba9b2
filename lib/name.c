/* Name validation for locks, counters, groups and member ids (API.md section 2). */
#include <string.h>

#include "coord/sys/backend.h"

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
