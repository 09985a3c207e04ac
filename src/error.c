/* error.c - status strings and the thread-local last-error message. */
#include "eplb.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_msg[1024];

const char *eplb_strerror(eplb_status_t st)
{
    switch (st) {
    case EPLB_OK: return "success";
    case EPLB_ERR_INVALID_ARG: return "invalid argument";
    case EPLB_ERR_IO: return "I/O error";
    case EPLB_ERR_FORMAT: return "bad file format";
    case EPLB_ERR_NOMEM: return "out of memory";
    case EPLB_ERR_CUDA: return "CUDA error";
    case EPLB_ERR_NO_DEVICE: return "no usable GPU";
    case EPLB_ERR_UNSUPPORTED: return "not supported";
    case EPLB_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

eplb_status_t eplb_error_set(eplb_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    return st;
}

const char *eplb_error_last(void) { return last_msg; }

void eplb_error_clear(void) { last_msg[0] = '\0'; }
