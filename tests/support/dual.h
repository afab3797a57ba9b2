/*
 * One test body for two tiers: a file that includes this header is built once against real
 * servers (both backends, COORD_CONFORMANCE) and once with COORD_TEST_FAKE against the fake
 * backend through the fault shim (FAKE_BOTH), where faults can be injected under #ifdef.
 */
#ifndef COORD_DUAL_H
#define COORD_DUAL_H

#include "testing.h"

#ifdef COORD_TEST_FAKE
#include "fake_backend.h"
#define OPEN(state, rec, uri) fake_open(state, NULL, rec, uri)
#define OPEN_URI(uri) fake_open_uri(uri, NULL)
#define BOTH(fn) FAKE_BOTH(fn)
#else
#define OPEN(state, rec, uri) coord_test_open(state, NULL, rec, uri)
#define BOTH(fn) COORD_CONFORMANCE(fn)
static inline coord_client *OPEN_URI(const char *uri) {
    coord_client *c = NULL;
    if (coord_client_open(&c, uri, NULL)) fail_msg("open %s: %s", uri, coord_last_error());
    return c;
}
#endif

#endif
