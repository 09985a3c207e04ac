/* trace.h - eplb trace schema v1 (HDF5): reader, streaming, writer.
 *
 * The schema is documented in traces/FORMAT.md.  A trace is opened and fully
 * validated by eplb_trace_open (attributes, dataset shapes and types, token
 * offsets); value checks that need the data (NaN logits, ids out of range)
 * happen as the data is read, and name the file, the dataset and the row.
 * Readers are streaming: they read a token or step range into a buffer the
 * caller owns, so memory is bounded by the range asked for. */
#ifndef EPLB_TRACE_H
#define EPLB_TRACE_H

#include "eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EPLB_TRACE_VERSION 1

/* Levels of data a trace can carry (bit flags). */
enum {
    EPLB_LEVEL_LOGITS = 1u << 0, /* /router/logits [T, L, E] */
    EPLB_LEVEL_TOPK = 1u << 1,   /* /router/topk_ids [T, L, K] */
    EPLB_LEVEL_COUNTS = 1u << 2  /* /load/counts [S, L, E] */
};

/* The longest model name a trace may carry (the reader refuses longer). */
#define EPLB_TRACE_MODEL_MAX 127
/* The most layers a trace may hold: the reader refuses more, the writer
 * and the importers too (a trace past it was written, then refused at every
 * open). */
#define EPLB_TRACE_MAX_LAYERS 4096

/* Limits the reader puts on a trace (traces/FORMAT.md, "Limits"): at
 * most EPLB_TRACE_MAX_STEPS steps and EPLB_TRACE_MAX_TOKENS tokens (so
 * that T x L x E x 4 bytes stays below 2^63 with L <= 4096, E <= 512);
 * in a trace with per-token data one step's top-k ids (tokens x L x K x 4
 * bytes) at most EPLB_TRACE_MAX_STEP_ID_BYTES (the replay holds a whole
 * step); chunks of EPLB_TRACE_CHUNK_MIN_BYTES to EPLB_TRACE_CHUNK_MAX_BYTES
 * bytes, smaller ones only in a dataset of at most
 * EPLB_TRACE_SMALL_CHUNKS_MAX chunks. */
#define EPLB_TRACE_MAX_STEPS ((int64_t)1 << 26)
#define EPLB_TRACE_MAX_TOKENS ((int64_t)1 << 39)
#define EPLB_TRACE_MAX_STEP_ID_BYTES ((uint64_t)2 << 30)
#define EPLB_TRACE_CHUNK_MIN_BYTES ((uint64_t)4 << 10)
#define EPLB_TRACE_CHUNK_MAX_BYTES ((uint64_t)256 << 20)
#define EPLB_TRACE_SMALL_CHUNKS_MAX ((uint64_t)1 << 17)

typedef struct {
    int version;
    char model[EPLB_TRACE_MODEL_MAX + 1];
    char source[256];
    char *model_config;          /* JSON string or NULL (owned by the trace) */
    int num_layers;              /* L */
    eplb_route_cfg_t route;      /* E, K, scoring, groups, renormalize, scale */
    int64_t num_steps;           /* S */
    int64_t num_tokens;          /* T = token_offset[S] (counts-only traces
                                    may record tokens with no per-token data) */
    unsigned levels;             /* EPLB_LEVEL_* present */
    eplb_dtype_t logits_dtype;   /* valid if levels & EPLB_LEVEL_LOGITS */
    int topk_id_bytes;           /* 1 (uint8) or 2 (uint16) */
    int has_bias;                /* /router/e_score_correction_bias */
    int has_topk_weights;        /* /router/topk_weights */
    int has_phase;               /* /steps/phase */
    int has_src_rank;            /* /tokens/src_rank */
} eplb_trace_info_t;

typedef struct eplb_trace eplb_trace_t;

/* Open and validate path.  On failure *out is untouched and the message
 * names the file and the offending attribute or dataset: EPLB_ERR_IO for a
 * missing or unreadable file, EPLB_ERR_FORMAT for anything else.  Every
 * function of this header may be called from any thread (HDF5 calls are
 * serialised by one lock), but a handle is not meant for concurrent use. */
eplb_status_t eplb_trace_open(eplb_trace_t **out, const char *path);

/* eplb_trace_open calls this first.  Open the trace at path in a forked child first (probe.c): EPLB_ERR_FORMAT
 * naming the file where the HDF5 library dies reading it, the open
 * needs more than 2 GiB (corrupt lengths) or does not finish within
 * EPLB_TRACE_PROBE_TIMEOUT seconds (default 30; HDF5 looping); EPLB_OK
 * otherwise, and whenever no probe runs (more than one thread,
 * EPLB_TRACE_PROBE=0, inside the probe's child). */
eplb_status_t eplb_trace_probe(const char *path);
/* The probe itself: -1 when none ran, 0 when the child opened the trace
 * and looked up its chunks, 1 when it failed (the open here reports why),
 * 2 when its open ran out of the memory it may use (2 GiB more than the
 * process had: a corrupt length), 3 when it was killed at the time
 * limit (EPLB_TRACE_PROBE_TIMEOUT), 128 + the signal of a crash that
 * killed it (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS; 1 for
 * another signal). */
int eplb_trace_probe_run(const char *path);

void eplb_trace_close(eplb_trace_t *tr);

const eplb_trace_info_t *eplb_trace_info(const eplb_trace_t *tr);
const char *eplb_trace_path(const eplb_trace_t *tr);

/* token_offset[S+1] (kept in memory; empty-token traces have all zeros). */
const int64_t *eplb_trace_token_offsets(const eplb_trace_t *tr);

/* Raw logits of tokens [tok_begin, tok_end) in the file's dtype, laid out
 * [n][L][E].  Fails with EPLB_ERR_FORMAT on NaN/Inf, naming the token. */
eplb_status_t eplb_trace_read_logits(const eplb_trace_t *tr, void *buf,
                                     int64_t tok_begin, int64_t tok_end);

/* topk ids [n][L][K] widened to int32 (checked < E) and, if weights is not
 * NULL and the trace has them, topk weights [n][L][K]. */
eplb_status_t eplb_trace_read_topk(const eplb_trace_t *tr, int32_t *ids,
                                   float *weights, int64_t tok_begin,
                                   int64_t tok_end);

/* A step's counts [L][E] as the schema allows them (FORMAT.md): no count
 * negative, each layer's row summing to at most top_k x the step's tokens.
 * EPLB_OK, or `code` with a message naming path, /load/counts, the step and
 * the layer (and the expert of a negative count).  The reader checks what
 * it reads with it (EPLB_ERR_FORMAT), the writer what it is given
 * (EPLB_ERR_INVALID_ARG). */
eplb_status_t eplb_trace_counts_check(eplb_status_t code, const char *path, int64_t step,
                                      const int32_t *counts, int L, int E, int64_t top_k,
                                      int64_t tokens);

/* counts [n_steps][L][E] of steps [step_begin, step_end), checked by
 * eplb_trace_counts_check. */
eplb_status_t eplb_trace_read_counts(const eplb_trace_t *tr, int32_t *counts,
                                     int64_t step_begin, int64_t step_end);

/* e_score_correction_bias [L][E]; fails if the trace has none. */
eplb_status_t eplb_trace_read_bias(const eplb_trace_t *tr, float *bias);

/* src_rank [n] of tokens [tok_begin, tok_end); fails if absent. */
eplb_status_t eplb_trace_read_src_rank(const eplb_trace_t *tr, uint16_t *rank,
                                       int64_t tok_begin, int64_t tok_end);

/* phase [n_steps]; fails if absent. */
eplb_status_t eplb_trace_read_phase(const eplb_trace_t *tr, uint8_t *phase,
                                    int64_t step_begin, int64_t step_end);

/* Parallel read of a whole dataset's raw chunks (H5Dread_chunk + zlib
 * inflate on nthreads workers).  Reads the logits if present, else the topk
 * ids, into buf (size eplb_trace_raw_bytes).  Bit-identical to H5Dread. */
size_t eplb_trace_raw_bytes(const eplb_trace_t *tr);
eplb_status_t eplb_trace_read_all_parallel(const eplb_trace_t *tr, void *buf,
                                           int nthreads);
/* eplb_trace_read_logits (same layout and NaN/Inf check) with the chunks
 * inflated on nthreads workers (<= 0: eplb_num_threads()).  Chunks cut by
 * the range are inflated whole, so ranges aligned to
 * eplb_trace_chunk_tokens waste nothing. */
eplb_status_t eplb_trace_read_logits_parallel(const eplb_trace_t *tr,
                                              void *buf, int64_t tok_begin,
                                              int64_t tok_end, int nthreads);
/* Called by the workers of eplb_trace_read_logits_each, concurrently, for
 * token rows [t0, t1) of the read as soon as a worker has placed them in
 * the buffer (before the read's NaN/Inf verdict: the read's status says). */
typedef void (*eplb_trace_rows_fn)(void *ctx, int64_t t0, int64_t t1);
/* eplb_trace_read_logits_parallel that calls on_rows for the rows of every
 * chunk a worker places whole, so that the caller can use them while other
 * chunks decode (the CPU replay routes them there).  *all: 1 if every row
 * of the range went through on_rows, 0 if some did not (chunks split
 * across the trailing dimensions, unallocated chunks, the serial fallback):
 * then the caller handles the whole range after the read. */
eplb_status_t eplb_trace_read_logits_each(const eplb_trace_t *tr, void *buf,
                                          int64_t tok_begin, int64_t tok_end,
                                          int nthreads, eplb_trace_rows_fn on_rows,
                                          void *ctx, int *all);
/* The same with one plain H5Dread (the baseline of `bench io`). */
eplb_status_t eplb_trace_read_all_serial(const eplb_trace_t *tr, void *buf);
/* 1 if eplb_trace_read_all_parallel can take its parallel path on this
 * trace (chunked, only shuffle/deflate filters, little-endian type); 0 if
 * it falls back to eplb_trace_read_all_serial (still correct). */
int eplb_trace_parallel_supported(const eplb_trace_t *tr);

/* Rows (tokens) per chunk of the dataset eplb_trace_read_all_* reads (0 if
 * not chunked): ranges aligned to it inflate every chunk once. */
int64_t eplb_trace_chunk_tokens(const eplb_trace_t *tr);

/* Storage of each dataset present: bytes in the file (compressed,
 * H5Dget_storage_size) and raw bytes (elements x element size). */
typedef struct {
    const char *name; /* "/router/logits", ... (static string) */
    uint64_t stored;
    uint64_t raw;
} eplb_trace_dataset_size_t;
eplb_status_t eplb_trace_dataset_sizes(const eplb_trace_t *tr,
                                       eplb_trace_dataset_size_t *out, int max,
                                       int *n);

/* ---- writer ------------------------------------------------------------
 * Steps are appended one at a time; datasets are extendible and chunked
 * along tokens (or steps).  The file is written under "<path>.tmp.<pid>"
 * and renamed to path by eplb_trace_writer_finish, so an interrupted write
 * never leaves a file under the final name. */
typedef struct eplb_trace_writer eplb_trace_writer_t;

typedef struct {
    const char *model;
    const char *source;
    const char *model_config;    /* JSON or NULL */
    int num_layers;
    eplb_route_cfg_t route;
    unsigned levels;             /* which of logits/topk/counts to write */
    eplb_dtype_t logits_dtype;
    int topk_weights;            /* write /router/topk_weights */
    int phase;                   /* write /steps/phase */
    int src_rank;                /* write /tokens/src_rank */
    int64_t chunk_rows;          /* rows per chunk of the token and step
                                    datasets; 0: about 2 MiB of logits
                                    (1 MiB for the others) */
    int deflate_level;           /* 1..9; 0: default (4) */
    int threads;                 /* logits compression threads; 0:
                                    eplb_num_threads().  The file does not
                                    depend on it. */
    int no_shuffle;              /* 1: deflate only, without the shuffle
                                    filter (smaller for mostly-zero data
                                    such as the ESFT stand-in logits);
                                    0: shuffle then deflate */
} eplb_trace_writer_opts_t;

#define EPLB_TRACE_WRITER_OPTS_INIT                                           \
    { NULL, NULL, NULL, 0, EPLB_ROUTE_CFG_INIT, 0, EPLB_DTYPE_F32, 0, 0, 0, 0, 0, 0, 0 }

/* Creates the temporary file at once: a path that cannot be written fails
 * here, not at finish.  Until finish or abort, SIGINT/SIGTERM/SIGHUP
 * delete the temporary file before the process dies of them
 * (src/tmpfile_guard.h). */
eplb_status_t eplb_trace_writer_create(eplb_trace_writer_t **out,
                                       const char *path,
                                       const eplb_trace_writer_opts_t *opts);

/* Whether path can be a writer's output, for commands to check before long
 * work: EPLB_ERR_INVALID_ARG for an empty path; EPLB_ERR_IO, naming the
 * path, if it is a directory or another non-regular file, or if its
 * directory does not exist or is not writable.  (Called by
 * eplb_trace_writer_create too.) */
eplb_status_t eplb_trace_writer_check_path(const char *path);

/* Append one step of ntok tokens.  Pointers for levels not written may be
 * NULL.  logits: [ntok][L][E] float32 (converted to the file dtype);
 * topk_ids, topk_weights: [ntok][L][K]; counts: [L][E]; src_rank: [ntok]. */
eplb_status_t eplb_trace_writer_append_step(eplb_trace_writer_t *w,
                                            int64_t ntok, const float *logits,
                                            const int32_t *topk_ids,
                                            const float *topk_weights,
                                            const int32_t *counts,
                                            const uint16_t *src_rank,
                                            uint8_t phase);

/* Set /router/e_score_correction_bias [L][E] (any time before finish). */
eplb_status_t eplb_trace_writer_set_bias(eplb_trace_writer_t *w,
                                         const float *bias);

/* Flush, close and rename to the final path; frees w in every case. */
eplb_status_t eplb_trace_writer_finish(eplb_trace_writer_t *w);
/* Close and delete the temporary file; frees w. */
void eplb_trace_writer_abort(eplb_trace_writer_t *w);

#ifdef __cplusplus
}
#endif
#endif
