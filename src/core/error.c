#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

kvl_status kvl_fail(kvl_error *err, kvl_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

void kvl_error_clear(kvl_error *err)
{
    if (err) {
        err->code = KVL_OK;
        err->message[0] = '\0';
    }
}

kvl_status kvl_error_prefix(kvl_error *err, kvl_status code, const char *fmt,
                            ...)
{
    if (!err)
        return code;
    char prefix[KVL_ERROR_MESSAGE_MAX];
    char old[KVL_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    old[sizeof old - 1] = '\0';
    /* Truncation of an over-long message is acceptable: keep the start. */
    size_t n = strlen(prefix);
    if (n > sizeof err->message - 3)
        n = sizeof err->message - 3;
    memcpy(err->message, prefix, n);
    memcpy(err->message + n, ": ", 2);
    size_t room = sizeof err->message - n - 3;
    size_t m = strlen(old);
    if (m > room)
        m = room;
    memcpy(err->message + n + 2, old, m);
    err->message[n + 2 + m] = '\0';
    if (err->code == KVL_OK)
        err->code = code;
    return err->code;
}

const char *kvl_status_name(kvl_status status)
{
    switch (status) {
    case KVL_OK: return "KVL_OK";
    case KVL_ERR_ARG: return "KVL_ERR_ARG";
    case KVL_ERR_IO: return "KVL_ERR_IO";
    case KVL_ERR_FORMAT: return "KVL_ERR_FORMAT";
    case KVL_ERR_UNSUPPORTED: return "KVL_ERR_UNSUPPORTED";
    case KVL_ERR_NOMEM: return "KVL_ERR_NOMEM";
    case KVL_ERR_MISMATCH: return "KVL_ERR_MISMATCH";
    case KVL_ERR_RANGE: return "KVL_ERR_RANGE";
    case KVL_ERR_INTERNAL: return "KVL_ERR_INTERNAL";
    }
    return "KVL_ERR_UNKNOWN";
}

const char *kvl_version(void) { return KVL_VERSION_STRING; }
