/*
 * Helpers shared by the libFuzzer targets (README.md, "Fuzzing"; scripts/fuzz.sh runs them).
 *
 * fuzz_guarded() copies an input so that it ends right before an unmapped page: a read past the
 * end faults even inside the uninstrumented system libraries the parsers call (cJSON, OpenSSL,
 * libcurl), where AddressSanitizer sees nothing. The bytes in front of the copy are poisoned for
 * AddressSanitizer, so an instrumented read before the start is reported too.
 */
#ifndef COORD_FUZZ_COMMON_H
#define COORD_FUZZ_COMMON_H

#include <sanitizer/asan_interface.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property that must hold: report it and abort, so libFuzzer keeps the input as a crash. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_GUARDED_MAX (1u << 20) /* larger inputs are skipped (libFuzzer's -max_len is less) */

/* Copy `size` bytes (plus a NUL when `nul`) to the end of a guarded region; valid until the next
 * call. NULL when the input is larger than FUZZ_GUARDED_MAX. */
static inline char *fuzz_guarded(const void *data, size_t size, int nul) {
    static char *region;
    static size_t region_len;
    if (!region) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        region_len = (FUZZ_GUARDED_MAX + 1 + page - 1) / page * page;
        void *m = mmap(NULL, region_len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED || mprotect((char *)m + region_len, page, PROT_NONE) != 0) abort();
        region = m;
    }
    size_t total = size + (nul ? 1 : 0);
    if (size > FUZZ_GUARDED_MAX) return NULL;
    char *p = region + region_len - total;
    ASAN_UNPOISON_MEMORY_REGION(region, region_len);
    ASAN_POISON_MEMORY_REGION(region, region_len - total);
    if (size) memcpy(p, data, size);
    if (nul) p[size] = 0;
    return p;
}

/* A small deterministic generator (xorshift64*) for choices derived from the input. */
static inline uint64_t fuzz_rand(uint64_t *s) {
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15u;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1du;
}

#endif
