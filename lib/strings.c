/* Arrays of strings returned to the application, and the one function that frees them. Each
 * string is its own malloc allocation, so a program may also free them one by one with free(). */
#include <stdlib.h>

#include "coord.h"

void coord_strings_free(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void coord_ring_strings_free(char **v, size_t n) {
    coord_strings_free(v, n);
}
