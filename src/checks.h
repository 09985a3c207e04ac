/* checks.h - checking macros that keep file and line (house style 5). */
#ifndef EPLB_CHECKS_H
#define EPLB_CHECKS_H

#include "eplb.h"

/* Propagate a non-OK status from expr. */
#define EPLB_CHECK(expr)                                                      \
    do {                                                                      \
        eplb_status_t eplb_st_ = (expr);                                      \
        if (eplb_st_ != EPLB_OK)                                              \
            return eplb_st_;                                                  \
    } while (0)

/* Store a non-OK status from expr in st and jump to label. */
#define EPLB_CHECK_GOTO(expr, st, label)                                      \
    do {                                                                      \
        (st) = (expr);                                                        \
        if ((st) != EPLB_OK)                                                  \
            goto label;                                                       \
    } while (0)

/* Allocation check: set EPLB_ERR_NOMEM with file and line, jump to label. */
#define EPLB_ALLOC_GOTO(ptr, st, label)                                       \
    do {                                                                      \
        if ((ptr) == NULL) {                                                  \
            (st) = eplb_error_set(EPLB_ERR_NOMEM, "%s:%d: out of memory",     \
                                  __FILE__, __LINE__);                        \
            goto label;                                                       \
        }                                                                     \
    } while (0)

#endif
