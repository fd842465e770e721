/* Internal error reporting: every fallible internal call fills a kvl_error. */
#ifndef KVL_CORE_ERROR_H
#define KVL_CORE_ERROR_H

#include "kvlab.h"

#if defined(__GNUC__) || defined(__clang__)
#define KVL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KVL_PRINTF(a, b)
#endif

/* Writes code and a formatted message into err (if non-NULL); returns code
 * so callers can write `return kvl_fail(err, KVL_ERR_IO, "...", ...);`. */
kvl_status kvl_fail(kvl_error *err, kvl_status code, const char *fmt, ...)
    KVL_PRINTF(3, 4);

/* Clears err to KVL_OK with an empty message. */
void kvl_error_clear(kvl_error *err);

/* Prefixes the message already in err with a formatted context string,
 * e.g. the file name; returns err->code (or `code` when err is NULL). */
kvl_status kvl_error_prefix(kvl_error *err, kvl_status code, const char *fmt,
                            ...) KVL_PRINTF(3, 4);

#endif
