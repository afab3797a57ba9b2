/* Header test of the event-loop adapters (see CMakeLists.txt): <coord/loop/libuv.h> and
 * <coord/loop/libevent.h> each on its own first, then both together, as strict C99 and as C++
 * (headertest_loop.cpp includes this file). The refusals need no server: a NULL loop or client,
 * and a detach of a client never attached. uv.h itself needs the POSIX types
 * (pthread_rwlock_t), hence _POSIX_C_SOURCE on the C99 build. */
#include <coord/loop/libuv.h>
#include <coord/loop/libevent.h>
#include <coord/loop/libuv.h> /* include guards */

#include <stdio.h>

int main(void) {
    int bad = 0;
    uv_loop_t loop;
    struct event_base *base = event_base_new();
    if (uv_loop_init(&loop) != 0 || !base) return 1;
    if (coord_uv_attach(NULL, NULL) != COORD_EINVAL) bad = 1;
    if (coord_uv_attach(&loop, NULL) != COORD_EINVAL) bad = 1;
    if (coord_event_attach(NULL, NULL) != COORD_EINVAL) bad = 1;
    if (coord_event_attach(base, NULL) != COORD_EINVAL) bad = 1;
    coord_uv_detach(NULL);
    coord_event_detach(NULL);
    if (uv_run(&loop, UV_RUN_NOWAIT) != 0 || uv_loop_close(&loop) != 0) bad = 1;
    event_base_free(base);
    if (bad) fprintf(stderr, "header test of the loop adapters failed\n");
    return bad;
}
