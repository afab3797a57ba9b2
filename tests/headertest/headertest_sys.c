/* Header test: the backend seam alone comes first, so it must include what it needs itself. */
#include <coord/sys/backend.h>

int coord_headertest_sys(void);

int coord_headertest_sys(void) {
    coord_kv kv = {NULL, NULL, 0, COORD_VERSION_ABSENT, 0, 0};
    coord_backend b;
    b.version = COORD_BACKEND_VERSION;
    coord_kv_clear(&kv);
    return b.version > 0 && kv.key == NULL ? 0 : 1;
}
