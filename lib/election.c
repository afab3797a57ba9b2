/*
 * Leader election (coord.h, "Election"): candidates queue like lock contenders, the first leads.
 */
#include <stdlib.h>

#include "internal.h"

int coord_election_options_init(coord_election_options *o, unsigned version) {
    if (!o) return coord_seterr(COORD_EINVAL, "options is NULL");
    if (version == 0 || version > COORD_ELECTION_OPTIONS_VERSION)
        return coord_seterr(COORD_EINVAL, "unsupported coord_election_options version %u", version);
    coord_election_options d = COORD_ELECTION_OPTIONS_INIT;
    *o = d;
    o->version = version;
    return 0;
}

int coord_election_new(coord_election **out, coord_client *c, const char *name,
                       const coord_election_options *opts) {
    (void)c;
    (void)name;
    (void)opts;
    if (out) *out = NULL;
    return coord_seterr(COORD_ENOTSUP, "elections are not implemented yet");
}

int coord_election_campaign(coord_election *e, const void *value, size_t len, int timeout_ms) {
    (void)e;
    (void)value;
    (void)len;
    (void)timeout_ms;
    return coord_seterr(COORD_ENOTSUP, "elections are not implemented yet");
}

int coord_election_proclaim(coord_election *e, const void *value, size_t len) {
    (void)e;
    (void)value;
    (void)len;
    return coord_seterr(COORD_ENOTSUP, "elections are not implemented yet");
}

int coord_election_resign(coord_election *e) {
    (void)e;
    return coord_seterr(COORD_ENOTSUP, "elections are not implemented yet");
}

bool coord_election_is_leader(const coord_election *e) {
    (void)e;
    return false;
}

int coord_election_term(const coord_election *e, uint64_t *out) {
    (void)e;
    (void)out;
    return coord_seterr(COORD_ENOTSUP, "elections are not implemented yet");
}

int coord_election_leader(coord_election *e, void **value, size_t *len, uint64_t *term) {
    (void)e;
    (void)value;
    (void)len;
    (void)term;
    return coord_seterr(COORD_ENOTSUP, "elections are not implemented yet");
}

void coord_election_cancel(coord_election *e) {
    (void)e;
}

void coord_election_free(coord_election *e) {
    (void)e;
}
