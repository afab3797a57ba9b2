/* Error table, thread-local detail text, names and state names. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[COORD__ERROR_MAX];

const char *coord_strerror(int err) {
    switch (err) {
#define COORD_X_TEXT(name, value, text)                                                            \
    case value:                                                                                    \
        return text;
        COORD_ERRORS(COORD_X_TEXT)
#undef COORD_X_TEXT
    }
    return "unknown error";
}

const char *coord_err_name(int err) {
    switch (err) {
#define COORD_X_NAME(name, value, text)                                                            \
    case value:                                                                                    \
        return #name;
        COORD_ERRORS(COORD_X_NAME)
#undef COORD_X_NAME
    }
    return "COORD_E?";
}

const char *coord_last_error(void) {
    return last_error;
}

int coord_seterr(int err, const char *fmt, ...) {
    /* Fixed buffers, never allocating, so this is safe for ENOMEM. Formatting goes through a
     * scratch buffer so the previous detail may be an argument ("...: %s", coord_last_error()). */
    char scratch[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(scratch, sizeof scratch, fmt, ap);
    va_end(ap);
    memcpy(last_error, scratch, sizeof last_error);
    return err;
}

int coord__oom(void) {
    return coord_seterr(COORD_ENOMEM, "out of memory");
}

void coord__error_save(coord__error_buf *b) {
    memcpy(b->text, last_error, sizeof b->text);
}

void coord__error_restore(const coord__error_buf *b) {
    memcpy(last_error, b->text, sizeof last_error);
}

const char *coord_session_state_name(coord_session_state s) {
    switch (s) {
    case COORD_SESSION_CONNECTED:
        return "CONNECTED";
    case COORD_SESSION_SUSPENDED:
        return "SUSPENDED";
    case COORD_SESSION_LOST:
        return "LOST";
    }
    return "?";
}

void coord_kv_clear(coord_kv *kv) {
    if (!kv) return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

void coord_kv_array_free(coord_kv *kvs, size_t n) {
    if (!kvs) return;
    for (size_t i = 0; i < n; i++)
        coord_kv_clear(&kvs[i]);
    free(kvs);
}
