/* import.h - converters of recorded routing data to eplb traces.
 *
 * ESFT (DeepSeek ESFT, github.com/deepseek-ai/ESFT): a directory with one
 * text file per MoE layer, expert_weights_<layer>.txt for layers 1..26.  One
 * line per sample, the same samples in the same order in every file:
 * tab-separated expert ids (top_k per token, token order), two tabs, then
 * tab-separated gate weights (top_k per token).  The ids of a token are not
 * in any particular order; the importer stores them by descending weight,
 * equal weights by ascending id (the router's tie rule), so that they equal
 * what routing the stand-in logits gives.
 *
 * SGLang: an expert-distribution dump {"logical_count": [layers][experts]}
 * with counts summed over a run (dense layers all zero), or
 * {"logical_count": [steps][layers][experts]}, counts per forward pass (its
 * per-pass dumps, the time series its EPLB keeps). */
#ifndef EPLB_IMPORT_H
#define EPLB_IMPORT_H

#include "eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ESFT ---------------------------------------------------------------- */

#define EPLB_ESFT_LAYERS 26
#define EPLB_ESFT_EXPERTS 64
#define EPLB_ESFT_TOPK 6

/* Routing of one ESFT task, all layers in memory. */
typedef struct {
    int num_layers;       /* 26 */
    int num_experts;      /* 64 */
    int top_k;            /* 6 */
    int64_t num_samples;
    int64_t num_tokens;
    int64_t *sample_tokens; /* [num_samples] tokens of each sample */
    int32_t *ids;           /* [T][L][K] by descending weight */
    float *weights;         /* [T][L][K] */
} eplb_import_esft_t;

/* Read and validate dir/expert_weights_1..26.txt.  Errors name the file
 * and line: missing directory or file, a layer file outside 1..26, a line
 * without the two-tab separator, id and weight counts that differ or are
 * not a multiple of 6, ids that are not plain decimal digits, outside
 * 0..63 or repeated within a token, weights that are not plain decimal
 * numbers ([DIGITS][.DIGITS][e[+-]DIGITS]: no sign, space or hex) in [0, 1],
 * and samples (lines or tokens per line) that differ between layers.
 * Blank lines are skipped. */
eplb_status_t eplb_import_esft_read(eplb_import_esft_t *out, const char *dir);
void eplb_import_esft_free(eplb_import_esft_t *d);

/* Pack samples in order into steps of at most tokens_per_step tokens (a
 * sample is never split; a longer sample is a step of its own).  *offsets
 * (malloc'd, [*num_steps + 1]) gets the token offsets of the steps. */
eplb_status_t eplb_import_esft_pack(int64_t **offsets, int64_t *num_steps,
                             const int64_t *sample_tokens, int64_t num_samples,
                             int64_t tokens_per_step);

/* Stand-in logits [E] of one token and layer whose softmax top-k gives
 * ids[K] (descending weight, ties by ascending id) with probabilities
 * weights[K]: log(w / r) for the chosen experts and 0 for the others,
 * with r = (1 - sum(w)) / (E - K) so that the others' probabilities add up
 * to 1 - sum(w) (r capped just below the smallest w), rounded to a grid
 * of 2^-12 so that the logits deflate well.  Returns 1
 * if the result reproduces the record (same top-k, every probability within
 * 1e-4), checked with a double-precision softmax; 0 if the record cannot be
 * reproduced (rounded weights that add up to more than 1, or leave more
 * than E - K times the smallest weight to the others). */
int eplb_import_esft_standin(float *logits, const int32_t *ids,
                             const float *weights, int E, int K);

/* Import dir into a trace at path (topk ids and weights, stand-in float32
 * logits, phase prefill).  *unreproduced (may be NULL) gets the number of
 * tokens with at least one layer whose record the stand-in logits do not
 * reproduce; the count also goes into the `source` attribute.  Logs a
 * trace may not hold (more than EPLB_TRACE_MAX_TOKENS tokens or
 * EPLB_TRACE_MAX_STEPS steps, a sample whose top-k ids pass
 * EPLB_TRACE_MAX_STEP_ID_BYTES) are EPLB_ERR_FORMAT naming dir; a
 * tokens_per_step that packs such a step, EPLB_ERR_INVALID_ARG; both found
 * before anything is written. */
eplb_status_t eplb_import_esft(const char *dir, const char *path,
                               int64_t tokens_per_step, int64_t *unreproduced);

/* ---- SGLang expert counts ------------------------------------------------ */

typedef struct {
    int num_steps;      /* S of [S][L][E]; 1 for [L][E] */
    int three_d;        /* 1: the file was [S][L][E] */
    int num_rows;       /* rows (layers) in the file, in every step */
    int num_layers;     /* rows kept (not all zero in every step) */
    int num_experts;    /* row length */
    int *rows;          /* [num_layers] file row of each kept layer */
    int32_t *counts;    /* [num_steps][num_layers][num_experts] */
    int64_t total;      /* sum of all counts */
    int64_t max_row;    /* largest sum of one kept row in one step */
} eplb_import_sglang_t;

/* Read path; logical_count must be a non-empty matrix [L][E], or a
 * non-empty array [S][L][E] of such matrices all of the same shape (taken
 * as 3-D when its first element's first element is an array), of
 * non-negative integers (floats with an integral value are accepted) below
 * 2^31; errors name the file, the step (3-D), the layer (row) and the
 * expert.  At most 100000 layers, 100000 steps, 512 experts and 2^28 counts
 * in all (1 GiB as int32).  A row all zero in every step is dropped (the
 * same rows from every step); a file with no non-zero row is an error, and
 * so is one with more than 4096 rows kept (the most a trace holds). */
eplb_status_t eplb_import_sglang_read(eplb_import_sglang_t *out, const char *path);
void eplb_import_sglang_free(eplb_import_sglang_t *c);

/* Import path into a counts-only trace: one step for [L][E], S steps for
 * [S][L][E].  A step's tokens are ceil(its largest row sum / top_k) (0 for
 * a step whose kept rows are all zero).  top_k (1..16, <= E) and model go
 * into the attributes; a model named "DeepSeek-V3" with 256 experts gets
 * DeepSeek-V3's routing attributes, any other softmax.  An empty model, one
 * longer than EPLB_TRACE_MODEL_MAX bytes or a top_k out of range is
 * EPLB_ERR_INVALID_ARG (checked before the file is read, top_k after);
 * input a trace may not hold (steps whose tokens add up to more than
 * EPLB_TRACE_MAX_TOKENS, more than 4096 layers) is EPLB_ERR_FORMAT naming
 * json_path, found before anything is written. */
eplb_status_t eplb_import_sglang(const char *json_path, const char *path,
                                 int top_k, const char *model);

/* For the importers: what the trace writer refuses once the options are
 * checked comes from the input (its layers, its steps' tokens), so its
 * EPLB_ERR_INVALID_ARG (the caller's fault, exit 2) becomes
 * EPLB_ERR_FORMAT (exit 1) prefixed with the input's name; other
 * statuses pass unchanged. */
eplb_status_t eplb_import_input_fault(eplb_status_t st, const char *input);

#ifdef __cplusplus
}
#endif
#endif
