/* trace_impl.h - the open trace handle, shared by reader.c and parallel.c
 * (internal to traces/). */
#ifndef EPLB_TRACES_TRACE_IMPL_H
#define EPLB_TRACES_TRACE_IMPL_H

#include <hdf5.h>

#include "trace.h"

/* Buffers the parallel reader keeps from one read to the next (parallel.c). */
typedef struct eplb_trace_bufs eplb_trace_bufs_t;
/* NULL when out of memory: the reader then allocates per read. */
eplb_trace_bufs_t *eplb_trace_bufs_new(void);
void eplb_trace_bufs_free(eplb_trace_bufs_t *b);

struct eplb_trace {
    char *path;
    hid_t file;
    /* Datasets (H5I_INVALID_HID when absent). */
    hid_t d_logits, d_ids, d_wts, d_counts, d_bias, d_phase, d_src;
    hid_t logits_mtype; /* memory type equal to the file's float layout */
    hid_t ids_mtype;    /* native integer type of the ids' file width */
    int64_t *offsets;   /* [S+1] */
    eplb_trace_info_t info;
    eplb_trace_bufs_t *bufs; /* raw chunks and decode scratch, reused */
};

/* The dataset read by eplb_trace_read_all_*: logits if present, else topk
 * ids (H5I_INVALID_HID for counts-only traces); *mtype, *name set. */
hid_t eplb_trace_bulk_dataset(const eplb_trace_t *tr, hid_t *mtype, const char **name);

/* eplb_trace_read_logits without the NaN/Inf check (the parallel reader's
 * fallback, which checks once itself). */
eplb_status_t eplb_trace_read_logits_unchecked(const eplb_trace_t *tr, void *buf,
                                               int64_t tok_begin, int64_t tok_end);

/* NaN/Inf check of logits of tokens [tok_begin, tok_end) in buf (file
 * dtype); EPLB_ERR_FORMAT naming token, layer and expert. */
eplb_status_t eplb_trace_check_logits(const eplb_trace_t *tr, const void *buf,
                                      int64_t tok_begin, int64_t tok_end);
/* Index of the first NaN/Inf among n values of type dt in buf, n if none. */
size_t eplb_trace_first_nonfinite(const void *buf, size_t n, eplb_dtype_t dt);

#endif
