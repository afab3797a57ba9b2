/* ZooKeeper path and sequence-name helpers: pure, no I/O (unit tested and fuzzed). */
#ifndef COORD_ZK_PATH_H
#define COORD_ZK_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when `name` ends in the server's 10-digit sequence suffix; `*seq` gets its value.
 * The suffix is the last 10 bytes, all decimal digits (Curator's and kazoo's rule). */
bool zk_sequence(const char *name, int64_t *seq);

/* Length of the parent of an absolute path: "/a/b" -> 2 ("/a"), "/a" -> 0 (the root). */
size_t zk_parent_len(const char *path);

/* Last segment of an absolute path ("/a/b" -> "b"). */
const char *zk_basename(const char *path);

#endif
