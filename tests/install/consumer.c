/* Built against an installed coord, by find_package and by pkg-config. */
#include <coord.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    if (strcmp(coord_version(), COORD_VERSION_STRING) != 0) return 1;
    coord_client *c = NULL;
    int rc = coord_client_open(&c, "nope://x", NULL);
    printf("coord %s: %s (%s)\n", coord_version(), coord_strerror(rc), coord_last_error());
    return rc == COORD_EINVAL ? 0 : 1;
}
