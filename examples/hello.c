/*
 * hello: connect to ZooKeeper or etcd, report session changes, and close.
 *
 *   hello --uri zk://127.0.0.1:2181/demo
 *   COORD_URI=etcd://127.0.0.1:2379/demo hello
 */
#include <coord.h>
#include <stdio.h>

#include "common.h"

static void on_session(coord_client *c, coord_session_state st, void *payload) {
    (void)payload;
    printf("[%s] session %s\n", coord_client_backend(c), coord_session_state_name(st));
}

int main(int argc, char **argv) {
    const char *uri;
    int rc =
        ex_parse(argc, argv, "hello", "usage: %s [--uri URI]   (or set COORD_URI)\n", NULL, &uri);
    if (rc) return rc < 0 ? 0 : rc;
    coord_options opts = COORD_OPTIONS_INIT;
    opts.on_session = on_session;
    coord_client *c;
    rc = coord_client_open(&c, uri, &opts);
    if (rc) {
        fprintf(stderr, "hello: %s: %s\n", coord_strerror(rc), coord_last_error());
        return 1;
    }
    printf("connected to %s (coord %s), working under %s\n", coord_client_backend(c),
           coord_version(), coord_client_prefix(c));
    coord_client_close(c);
    printf("closed\n");
    return 0;
}
