/* ZooKeeper backend: ending a session from outside, for the `expire` slot (tests, bench). */
#ifndef COORD_ZK_EXPIRE_H
#define COORD_ZK_EXPIRE_H

#include <stdint.h>

/* Attach to session `session_id` (`passwd`: its 16 bytes) at `server` ("host:port", as
 * zoo_get_current_server gives it) and close it, within `timeout_ms`. 1 once the server said
 * the session is closed (or had ended); 0 when it dropped the connection without saying (the
 * caller checks whether the session ended); else a COORD_E* code with the error message set. */
int zk_close_session(const char *server, int64_t session_id, const char *passwd, int ttl_ms,
                     int timeout_ms);

#endif
