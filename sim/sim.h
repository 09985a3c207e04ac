/* sim.h - the EPLB simulator: clock and triggers, cost model, hardware
 * profiles, weight-move planner, metrics and the replay driver.
 *
 * A replay walks a trace step by step (a step is one forward pass of the
 * whole EP group).  Every step's tokens are routed once; every run (one
 * policy at one grid point of GPUs / redundancy / window / interval) then
 * selects replicas under its own placement, records the load, models what
 * the step costs, and rearranges when its trigger says so.  Memory is
 * bounded by a block of steps and the largest window, not by the trace
 * length.  docs/simulator.md describes the model, the triggers and the
 * results.h5 layout. */
#ifndef EPLB_SIM_H
#define EPLB_SIM_H

#include <stdio.h>

#include "eplb.h"
#include "kernels.h"
#include "policy.h"
#include "trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- hardware profile (sim/profile.c) ----------------------------------
 * A plain-text file of `key = value` lines, `#` starts a comment (the
 * source of the number).  Keys: see docs/simulator.md and
 * sim/profiles/h100-8gpu-ib400.txt.  All values are stored in SI units. */
#define EPLB_PROFILE_MAX_POINTS 64
#define EPLB_PROFILE_MAX_TABLES 8

/* Measured grouped-GEMM time of one expert vs its tokens, for one expert
 * shape and weight format (key gemm_table.HIDDENxINTER[.fp8|.bf16]). */
typedef struct {
    int hidden, inter;
    double weight_bytes;    /* 1 (fp8), 2 (bf16), 0: any format */
    int n;                  /* points */
    double tokens[EPLB_PROFILE_MAX_POINTS]; /* tokens per expert, ascending */
    double s[EPLB_PROFILE_MAX_POINTS];      /* seconds */
} eplb_gemm_table_t;

typedef struct {
    char name[64];
    double nvlink_bw;       /* bytes/s per GPU per direction inside a node */
    double nvlink_lat;      /* s, fixed cost of one all-to-all phase (NVLink) */
    double net_bw;          /* bytes/s per GPU per direction between nodes */
    double net_lat;         /* s, fixed cost of one all-to-all phase (network) */
    double hbm_bw;          /* bytes/s of GPU memory */
    double flops_fp8;       /* dense FP8 tensor FLOP/s */
    double flops_bf16;      /* dense BF16 tensor FLOP/s */
    double gemm_eff;        /* achieved fraction of peak (roofline fallback) */
    double dispatch_bytes;  /* bytes per hidden element sent in dispatch */
    double combine_bytes;   /* bytes per hidden element sent in combine */
    /* Mapping+recording overhead per layer and step, first of: a measured
     * table vs tokens in the step (record_n > 0), a constant (record_s >=
     * 0), a fraction of the MoE layer time (record_frac). */
    int record_n;
    double record_tokens[EPLB_PROFILE_MAX_POINTS];
    double record_t[EPLB_PROFILE_MAX_POINTS];   /* seconds */
    double record_s;
    double record_frac;
    int ntables;
    eplb_gemm_table_t tables[EPLB_PROFILE_MAX_TABLES];
} eplb_profile_t;

/* The built-in default (the numbers of sim/profiles/h100-8gpu-ib400.txt). */
void eplb_sim_profile_default(eplb_profile_t *out);
/* Parse a profile file; starts from the default, so a file may override a
 * few keys only.  Errors name the file, the line and the key. */
eplb_status_t eplb_sim_profile_load(eplb_profile_t *out, const char *path);
/* Parse profile text (what = name used in messages). */
eplb_status_t eplb_sim_profile_parse(eplb_profile_t *out, const char *text,
                                     const char *what);

/* ---- model expert shape (sim/profile.c) ------------------------------- */
typedef struct {
    int hidden;               /* hidden_size */
    int inter;                /* moe_intermediate_size */
    double weight_bytes;      /* bytes per weight parameter (1 FP8, 2 BF16) */
    char source[192];         /* where the numbers came from */
} eplb_model_shape_t;

/* From the trace's model_config JSON (hidden_size, moe_intermediate_size,
 * quantization_config.quant_method == "fp8" -> 1 byte else 2), else from a
 * table of known model names, else DeepSeek-V3 (stated in source). */
void eplb_sim_model_shape(eplb_model_shape_t *out, const char *model,
                          const char *model_config);
/* Bytes of one routed expert: 3 matrices of hidden x inter. */
double eplb_sim_expert_bytes(const eplb_model_shape_t *m);

/* ---- cost model (sim/cost.c) ------------------------------------------ */
#define EPLB_COST_CACHE 4096

typedef struct {
    eplb_profile_t prof;
    eplb_model_shape_t shape;
    int table;                  /* index of prof.tables for this shape and
                                   format, or -1: roofline */
    int num_gpus, num_nodes, slots_per_gpu;
    double entry_bytes;         /* dispatch + combine bytes per (token, GPU) */
    double expert_bytes;
    double t_cache[EPLB_COST_CACHE]; /* expert GEMM time for n tokens */
} eplb_cost_t;

void eplb_sim_cost_init(eplb_cost_t *c, const eplb_profile_t *prof,
                        const eplb_model_shape_t *shape, int num_gpus,
                        int num_nodes, int num_slots);
/* The profile's table for a shape and format (NULL: roofline). */
const eplb_gemm_table_t *eplb_sim_profile_table(const eplb_profile_t *p,
                                                const eplb_model_shape_t *m);
/* Mapping+recording time of one layer in a step of `tokens` tokens when the
 * profile has a table or a constant; < 0 when it gives a fraction only. */
double eplb_sim_cost_record(const eplb_cost_t *c, double tokens);
/* Grouped-GEMM time of one expert given n tokens (0 for n == 0). */
double eplb_sim_cost_expert(const eplb_cost_t *c, int64_t n);

/* Cost of one MoE layer in one step.  slot_counts[P]: tokens per physical
 * slot.  recv_intra/recv_inter/send_intra/send_inter [D]: (token, GPU)
 * entries crossing NVLink / the network, or NULL: then derived from the
 * GPU loads assuming tokens come uniformly from all GPUs (counts-only
 * traces).  gpu_tokens[D] receives the per-GPU load. */
typedef struct {
    double compute_s;  /* slowest GPU's expert compute */
    double a2a_s;      /* dispatch + combine */
    int64_t max_tokens, total_tokens;
} eplb_layer_cost_t;

void eplb_sim_cost_layer(eplb_layer_cost_t *out, int64_t *gpu_tokens,
                         const eplb_cost_t *c, const int32_t *slot_counts,
                         const int64_t *send_intra, const int64_t *send_inter,
                         const int64_t *recv_intra, const int64_t *recv_inter);

/* ---- all-to-all fit (sim/a2a_fit.c) ------------------------------------
 * The cost model charges one all-to-all phase (dispatch, or combine) of a
 * GPU that sends and receives at most x bytes over NVLink
 *     t(x) = nvlink_lat + x / nvlink_bw
 * (a2a_time in sim/cost.c: 2 x latency + (dispatch + combine bytes) / bw
 * is two such phases).  `bench a2a` measures t for a list of x and fits
 * the two numbers here, so that its output goes into a profile as is. */
typedef struct {
    double latency_s;   /* alpha: nvlink_latency_us x 1e-6 */
    double bw;          /* beta: bytes/s per GPU per direction, nvlink_GBps x 1e9 */
    double max_rel_err; /* largest |t_i - alpha - x_i / beta| / t_i */
} eplb_a2a_fit_t;

/* Least squares of t = alpha + x / beta over n points (x_i bytes > 0,
 * t_i seconds > 0, both finite), weighted by 1 / t_i^2: the relative
 * error of every point counts alike, so the small sizes, whose time is
 * mostly alpha, are not drowned by the large ones.  EPLB_ERR_INVALID_ARG
 * for n < 2, a bad point, fewer than two distinct sizes, or a fit whose
 * alpha or beta is not positive (the times do not grow with the size, or
 * fall short of a fixed cost): nothing a profile could hold. */
eplb_status_t eplb_sim_a2a_fit(eplb_a2a_fit_t *out, const double *bytes, const double *secs,
                               int n);

/* The two profile lines of a fit ("nvlink_GBps = 371.2\nnvlink_latency_us
 * = 18.43\n", the precision the profile parser reads back); prefix (may
 * be "" or "# ") starts each line.  snprintf's return value. */
int eplb_sim_a2a_fit_format(char *buf, size_t size, const eplb_a2a_fit_t *fit,
                            const char *prefix);

/* ---- weight-move planner (sim/transfer.c) ------------------------------
 * For each slot of the new placement whose expert changes, pick a sender:
 * the same GPU if it holds the expert in the old placement (local copy),
 * else the lowest-rank GPU of the same node holding it, else the lowest-
 * rank GPU anywhere.  A GPU that receives the same expert into two slots
 * copies the second locally. */
typedef struct {
    int moved;            /* slots whose expert changed */
    int local;            /* of those, filled by a copy on the same GPU */
    int intra;            /* sent over NVLink */
    int inter;            /* sent over the network */
    int64_t bytes;        /* bytes over links (intra + inter) */
    double time_s;        /* modeled transfer time of the layer */
} eplb_transfer_t;

/* sends: optional out [moved] rows of (dst_slot, src_gpu, dst_gpu), -1 src
 * if no GPU held the expert (then counted as inter-node). */
eplb_status_t eplb_sim_transfer_plan(eplb_transfer_t *out, int32_t *sends,
                                     const int32_t *old_row,
                                     const int32_t *new_row,
                                     const eplb_cost_t *c);

/* ---- triggers (sim/trigger.c) ----------------------------------------- */
typedef enum {
    EPLB_TRIGGER_VLLM = 0, /* window W, every I, first after I/4 */
    EPLB_TRIGGER_SGLANG,   /* every I over the last W (= whole buffer) */
    EPLB_TRIGGER_TRTLLM,   /* EMA of counts, K layers every I steps */
    EPLB_TRIGGER_THRESHOLD,/* vLLM timing, skip if balanced enough */
    EPLB_TRIGGER_ONCE,     /* one static placement from the whole trace */
    EPLB_TRIGGER_ORACLE    /* vLLM timing, load of the NEXT W steps */
} eplb_trigger_kind_t;

typedef enum {
    EPLB_ASYNC_OFF = 0,    /* all layers at once (stop the world) */
    EPLB_ASYNC_LAYERS,     /* one layer committed per step */
    EPLB_ASYNC_CHUNK       /* `chunk` layers per step */
} eplb_async_t;

typedef struct {
    eplb_trigger_kind_t kind;
    int64_t window;        /* W steps */
    int64_t interval;      /* I steps */
    double threshold;      /* threshold: rearrange if balancedness < this */
    double ema_decay;      /* trtllm */
    eplb_async_t async;
    int chunk;             /* layers per step (async chunk, trtllm) */
} eplb_trigger_t;

#define EPLB_TRIGGER_INIT                                                     \
    { EPLB_TRIGGER_VLLM, 1000, 3000, 0.9, 0.95, EPLB_ASYNC_OFF, 1 }

const char *eplb_sim_trigger_name(eplb_trigger_kind_t k);
eplb_status_t eplb_sim_trigger_parse(eplb_trigger_kind_t *out,
                                     const char *name);
/* "off", "layers", "chunk:K". */
eplb_status_t eplb_sim_async_parse(eplb_async_t *out, int *chunk,
                                   const char *text);
/* Check W, I, chunk, threshold; messages name the option. */
eplb_status_t eplb_sim_trigger_check(const eplb_trigger_t *t);

/* Does a rearrangement decision happen before step s (after s steps are
 * done)?  vllm/threshold/oracle: s = max(1, I/4) + j*I; sglang: s = j*I,
 * j >= 1; trtllm: s = W + j*I (after W steps of EMA warm-up); once: never. */
int eplb_sim_trigger_due(const eplb_trigger_t *t, int64_t s);
/* First decision step of the vLLM timing (vllm, threshold, oracle):
 * max(1, I/4). */
int64_t eplb_sim_trigger_first(const eplb_trigger_t *t);
/* Steps whose load feeds a decision before step s: [*begin, *end).
 * vllm/sglang/threshold: the last W steps [max(0, s-W), s); oracle: the
 * next W [s, min(S, s+W)); once: [0, S).  (trtllm uses its EMA.) */
void eplb_sim_trigger_window(int64_t *begin, int64_t *end,
                             const eplb_trigger_t *t, int64_t s,
                             int64_t num_steps);

/* ---- replay (sim/replay.c) --------------------------------------------- */

/* Where steps come from: a trace or arrays (tests, bench).  Exactly one of
 * ids / counts is read per step. */
typedef struct eplb_sim_source eplb_sim_source_t;

/* A trace (borrowed; routed on the CPU if it has logits only). */
eplb_status_t eplb_sim_source_trace(eplb_sim_source_t **out,
                                    const eplb_trace_t *trace);
/* Arrays (borrowed): token level if ids != NULL (ids [T][L][K],
 * token_offset [S+1]), else counts [S][L][E]. */
eplb_status_t eplb_sim_source_arrays(eplb_sim_source_t **out, int L, int E,
                                     int K, int num_groups, int64_t S,
                                     const int64_t *token_offset,
                                     const int32_t *ids,
                                     const int32_t *counts);
/* A synthetic counts stream (bench): S steps of L x E counts drawn from a
 * seeded skewed distribution, generated on the fly (no memory in S). */
eplb_status_t eplb_sim_source_synthetic(eplb_sim_source_t **out, int L,
                                        int E, int K, int64_t S,
                                        int tokens_per_step, uint64_t seed);
void eplb_sim_source_free(eplb_sim_source_t *src);
/* Route logits on this GPU (borrowed; NULL: the CPU).  Selection and
 * recording stay on the CPU unless eplb_sim_opts_t.gpu_select asks for the
 * GPU (`eplb-replay run` does on the GPU); the results are bit-identical
 * either way (kernels/);
 * routing on the GPU is identical except at near-ties of scores. */
void eplb_sim_source_use_gpu(eplb_sim_source_t *src, eplb_gpu_t *gpu);
/* The first logits rows, up to max_bytes of them, decoded on a helper
 * thread into ordinary memory (a trace with logits; nothing otherwise or
 * with EPLB_PREFETCH=0), for a caller that starts the GPU meanwhile.
 * _stop ends it after the read in progress and gives the rows decoded
 * (*secs: the helper's time); the GPU path then copies its reads of those
 * rows instead of decoding them, which leaves the output as it is; the
 * CPU path drops them.  Both: best effort, no error. */
void eplb_sim_source_prefetch(eplb_sim_source_t *src, size_t max_bytes);
int64_t eplb_sim_source_prefetch_stop(eplb_sim_source_t *src, double *secs);
/* Traces with both logits and topk ids are routed from the logits; rows
 * counts the (token, layer) rows compared with the recorded ids so far,
 * differ those whose expert sets differ. */
void eplb_sim_source_routing_check(const eplb_sim_source_t *src, int64_t *rows,
                                   int64_t *differ);
/* Shape of the source. */
void eplb_sim_source_shape(const eplb_sim_source_t *src, int *L, int *E,
                           int *K, int64_t *S, int *token_level);

/* One run: a policy at one grid point. */
typedef struct {
    const eplb_policy_t *policy;  /* NULL or "none": never rearrange */
    const char *label;            /* row name (policy name if NULL) */
    int num_gpus, num_nodes, num_slots; /* D, N, P */
    eplb_trigger_t trig;          /* kind ORACLE: the next window's load */
} eplb_sim_run_cfg_t;

typedef struct {
    eplb_select_mode_t select;
    uint64_t seed;
    eplb_profile_t prof;
    eplb_model_shape_t shape;
    double policy_time;           /* < 0: measure in-process; else seconds */
    int max_moves;                /* policy args: slot changes per layer (-1) */
    int threads;                  /* worker threads (0: eplb_num_threads) */
    int keep_events;              /* keep every event in the results */
    const char *results_path;     /* write results.h5 here (temp + rename) */
    const char *config_json;      /* stored as an attribute of results.h5 */
    int progress;                 /* progress line on stderr */
    /* 1 (`eplb-replay run` on the GPU unless EPLB_GPU_SELECT=0; validated
     * bit-identical on an H100): token-level sources select and record on
     * GPU 0, one
     * handle (stream, maps) per run, results of step s copied back while
     * the CPU models step s-1, and the next block decoded on a second
     * thread meanwhile.  Fails with EPLB_ERR_NO_DEVICE / UNSUPPORTED where
     * no GPU can be opened.  0: the CPU (the default).  2: the same
     * pipeline (slots, read-ahead thread) with the CPU kernels in place of
     * the GPU, for tests on machines without one. */
    int gpu_select;
    /* tokens per block of a token-level source, the unit of reading and of
     * read-ahead (0: 16384); results do not depend on it */
    int64_t block_tokens;
} eplb_sim_opts_t;

/* A rebalance event (one layer's commit). */
typedef struct {
    int64_t step;                 /* first step that runs with it */
    int64_t decided;              /* step before which it was decided */
    int64_t win_begin, win_end;   /* load window used */
    int layer;
    int moved, local, intra, inter;
    int64_t bytes;
    double transfer_s, stall_s, policy_s;
} eplb_sim_event_t;

/* What one run gives. */
typedef struct {
    char label[64];
    char policy[32];
    eplb_sim_run_cfg_t cfg;
    int64_t steps;
    double balancedness;          /* mean over steps and layers of mean/max */
    double max_over_mean;         /* mean of max/mean */
    int worst_layer;              /* layer with the lowest mean balancedness */
    double worst_layer_bal;
    int64_t rebalances;           /* decisions that changed the placement */
    int64_t moved_replicas;
    int64_t moved_bytes;
    double stall_s;               /* total modeled stall */
    double policy_s;              /* total policy time */
    double moe_time_s;            /* mean modeled MoE time per step */
    double compute_s, a2a_s;      /* mean per step */
    double overhead_s;            /* mean mapping/recording overhead per step */
    double total_s;               /* MoE + overhead + stall over the trace */
    double gain_vs_none;          /* percent of none's total; NaN if none */
    int baseline;                 /* index of the none run of this grid point */
    int64_t tokens_lost;          /* invalid ids (not counted) */
    /* event log (all events) */
    eplb_sim_event_t *events;
    size_t n_events;
} eplb_sim_result_t;

/* Replay src for every run.  results: out [nruns], filled on success;
 * free with eplb_sim_results_free.  Runs are independent and spread over
 * threads; the output does not depend on the thread count. */
eplb_status_t eplb_sim_replay(eplb_sim_result_t *results,
                              eplb_sim_source_t *src,
                              const eplb_sim_run_cfg_t *runs, int nruns,
                              const eplb_sim_opts_t *opts);
void eplb_sim_results_free(eplb_sim_result_t *results, int nruns);

/* Fill gain_vs_none and baseline: each run is compared with the none run
 * that has the same D, N and P (NaN if there is none). */
void eplb_sim_results_compare(eplb_sim_result_t *results, int nruns);

/* ---- outputs (sim/output.c) ------------------------------------------- */
void eplb_sim_print_table(FILE *f, const eplb_sim_result_t *r, int n);
void eplb_sim_write_runs_json(FILE *f, const eplb_sim_result_t *r, int n);
void eplb_sim_write_csv(FILE *f, const eplb_sim_result_t *r, int n);
/* Write path via "<path>.tmp.<pid>" then rename (path itself when it is
 * such a name of this process already: src/tmpfile_guard.h eplb_tmp_name).
 * fn writes the content. */
eplb_status_t eplb_sim_write_file(const char *path,
                                  void (*fn)(FILE *f, void *ctx), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
