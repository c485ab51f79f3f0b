/*
 * error.c: filling struct rs_error without allocating.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
rs_error_set(struct rs_error *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}

void
rs_error_prefix(struct rs_error *e, const char *fmt, ...)
{
    char prefix[256];
    size_t n, old;
    va_list ap;

    if (e == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix) - 2, fmt, ap);
    va_end(ap);
    strcat(prefix, ": ");
    n = strlen(prefix);
    old = strnlen(e->msg, sizeof(e->msg) - 1);
    if (n + old > sizeof(e->msg) - 1)
        old = sizeof(e->msg) - 1 - n;
    memmove(e->msg + n, e->msg, old);
    memcpy(e->msg, prefix, n);
    e->msg[n + old] = '\0';
}

const char *
rs_status_name(int code)
{
    switch (code) {
    case RS_OK: return "ok";
    case RS_EINVAL: return "invalid argument";
    case RS_ENOMEM: return "out of memory";
    case RS_EIO: return "I/O error";
    case RS_EFORMAT: return "bad file format";
    case RS_ENOTFOUND: return "not found";
    case RS_EEXIST: return "already exists";
    case RS_ENOSPC: return "no space left on device";
    case RS_EBUSY: return "busy";
    case RS_ETIMEOUT: return "timed out";
    case RS_ECANCELED: return "cancelled";
    case RS_EUNAVAIL: return "unavailable";
    default: return "internal error";
    }
}
