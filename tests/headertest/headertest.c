/* Header test (see CMakeLists.txt): <coord.h> on its own, then the backend seam, in a program
 * that uses each public initialiser and macro the way an application does. Also built as C++
 * (headertest.cpp includes this file). */
#include <coord.h>
#include <coord/sys/backend.h>

#include <stdio.h>
#include <string.h>

int coord_headertest_sys(void);

int main(void) {
    coord_options o = COORD_OPTIONS_INIT;
    coord_counter_options k = COORD_COUNTER_OPTIONS_INIT;
    coord_ring_options r = COORD_RING_OPTIONS_INIT;
    coord_err e = COORD_ETIMEDOUT;
    coord_session_state st = COORD_SESSION_CONNECTED;
    const char *names[] = {"a", "b"};
    coord_hashring *h = NULL;
    int bad = 0;

    if (coord_options_init(&o, COORD_OPTIONS_VERSION) != 0) bad = 1;
    if (coord_counter_options_init(&k, COORD_COUNTER_OPTIONS_VERSION) != 0) bad = 1;
    if (coord_ring_options_init(&r, COORD_RING_OPTIONS_VERSION) != 0) bad = 1;
    if (strcmp(coord_err_name(e), "COORD_ETIMEDOUT") != 0) bad = 1;
    if (strcmp(coord_session_state_name(st), "CONNECTED") != 0) bad = 1;
    if (strcmp(coord_version(), COORD_VERSION_STRING) != 0) bad = 1;
    if (coord_hashring_build(&h, names, NULL, 2, &r) != 0 || !coord_hashring_lookup(h, "k", 1))
        bad = 1;
    coord_hashring_free(h);
    coord_strings_free(NULL, 0);
    if (coord_headertest_sys() != 0) bad = 1;
    if (bad) fprintf(stderr, "header test: %s\n", coord_last_error());
    return bad;
}
