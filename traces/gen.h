/* gen.h - synthetic router-logit traces that look like real MoE serving.
 *
 * Load model (docs/calibration.md has the numbers and where they come from).
 * For layer l, expert e and step s the log-popularity is
 *
 *   mu[s][l][e] = a_l * (static[l][e] + hot[l][e])      shared by all workloads
 *               + a_l * regime_r[l][e]                 workload r, switches at
 *                                                      random steps
 *               + a_l * drift[s][l][e]                 AR(1), correlation time
 *                                                      tau steps
 *               + a_l * phase_sign(s) * phase[l][e]    prefill vs decode
 *
 * with unit-variance Gaussian components weighted by variance fractions,
 * a_l = a * exp(v * N(0,1)) a per-layer skew, and a few hot experts per layer
 * (hot[l][e] > 0) for the heavy tail.  A token's logits are mu plus
 * N(0, token_sigma^2) noise per (token, layer, expert).  Steps have a phase
 * (prefill, decode, mixed) that sets the token count around the requested
 * mean.  Every random number comes from seeded counter-keyed xoshiro256**
 * streams, so the same options give the same logits bit for bit, whatever
 * the number of threads. */
#ifndef EPLB_GEN_H
#define EPLB_GEN_H

#include "eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One model preset: routing attributes plus calibrated load parameters. */
typedef struct {
    const char *name;       /* --preset NAME */
    const char *model;      /* trace `model` attribute */
    int num_layers;         /* MoE layers */
    eplb_route_cfg_t route; /* E, K, scoring, groups, renormalize, scale */
    double token_sigma;     /* std of per-token logit noise */
    double skew;            /* a: std of the log-popularity (all parts) */
    double layer_spread;    /* v: log-std of the per-layer skew multiplier */
    double hot_rate;        /* expected hot experts per layer */
    double hot_boost;       /* log-popularity boost of a hot expert (x a) */
    double bias_scale;      /* std of e_score_correction_bias (sigmoid) */
    const char *calibrated; /* what the parameters were fitted to */
} eplb_gen_preset_t;

/* Variance fractions of the log-popularity components (sum 1); shared by
 * all presets, see docs/calibration.md for the reasoning. */
#define EPLB_GEN_FRAC_STATIC 0.40
#define EPLB_GEN_FRAC_REGIME 0.40
#define EPLB_GEN_FRAC_DRIFT 0.14
#define EPLB_GEN_FRAC_PHASE 0.06
/* Probability that a step keeps the previous step's phase. */
#define EPLB_GEN_PHASE_STAY 0.9
/* Drift correlation time and mean regime length, in steps. */
#define EPLB_GEN_DRIFT_TAU 120.0
#define EPLB_GEN_REGIME_MEAN_STEPS 300.0

/* Number of presets and the i-th one (traces/presets.c). */
size_t eplb_gen_preset_count(void);
const eplb_gen_preset_t *eplb_gen_preset_at(size_t i);
/* Preset by name; EPLB_ERR_INVALID_ARG naming the known ones if absent. */
eplb_status_t eplb_gen_preset_find(const eplb_gen_preset_t **out,
                                   const char *name);

typedef struct {
    const char *preset;      /* preset name */
    int64_t steps;           /* S */
    int64_t tokens_per_step; /* mean tokens per step */
    uint64_t seed;
    eplb_dtype_t dtype;      /* file dtype of the logits */
    int num_layers;          /* 0: the preset's; else the first N layers */
    int threads;             /* token workers; 0: eplb_num_threads().  The
                                logits do not depend on it. */
} eplb_gen_opts_t;

#define EPLB_GEN_OPTS_INIT { "deepseek-v3", 64, 256, 1, EPLB_DTYPE_BF16, 0, 0 }

typedef struct eplb_gen eplb_gen_t;

/* Bounds of the options (whatever --force says): a step buffer holds up
 * to about 4 x tokens_per_step tokens of L x E float32 logits. */
#define EPLB_GEN_MAX_STEPS INT64_C(10000000)
#define EPLB_GEN_MAX_TOKENS_PER_STEP 65536
/* Largest estimated raw logits of a trace (steps x tokens_per_step x
 * layers x experts x dtype size) generated without --force. */
#define EPLB_GEN_MAX_RAW_BYTES (UINT64_C(64) << 30)
/* Largest float32 step buffer without --force. */
#define EPLB_GEN_MAX_BUFFER_BYTES (UINT64_C(8) << 30)

/* A generator for opts (validated: 1 <= steps <= EPLB_GEN_MAX_STEPS,
 * 1 <= tokens_per_step <= EPLB_GEN_MAX_TOKENS_PER_STEP, num_layers within
 * the preset's, threads >= 0).  Options errors name the option. */
eplb_status_t eplb_gen_create(eplb_gen_t **out, const eplb_gen_opts_t *opts);
void eplb_gen_destroy(eplb_gen_t *g);

const eplb_gen_preset_t *eplb_gen_preset(const eplb_gen_t *g);
int eplb_gen_num_layers(const eplb_gen_t *g);
/* Upper bound on the tokens of one step (size of the step buffer). */
int64_t eplb_gen_max_step_tokens(const eplb_gen_t *g);
/* Options text for the `source` attribute ("eplb-replay gen --preset ..."). */
const char *eplb_gen_source(const eplb_gen_t *g);
/* JSON of the preset and load parameters (for `model_config`). */
const char *eplb_gen_model_config(const eplb_gen_t *g);

/* e_score_correction_bias [L][E] (sigmoid presets; zeros otherwise). */
void eplb_gen_bias(const eplb_gen_t *g, float *bias);

/* Generate the next step: *ntok tokens of logits [ntok][L][E] into logits
 * (room for eplb_gen_max_step_tokens tokens), rounded to the dtype of the
 * options so that they equal what a reader of the file gets back.
 * EPLB_ERR_INVALID_ARG once all steps are done. */
eplb_status_t eplb_gen_next_step(eplb_gen_t *g, float *logits, int64_t *ntok,
                                 uint8_t *phase);

/* The size of what opts would generate: *raw_bytes (may be NULL) the
 * estimated raw logits in the file dtype (steps x tokens_per_step x layers
 * x experts x dtype size; steps vary around the mean), *buffer_bytes (may
 * be NULL) the float32 step buffer.  Fails like eplb_gen_create on bad
 * options. */
eplb_status_t eplb_gen_size_estimate(const eplb_gen_opts_t *opts, uint64_t *raw_bytes,
                                     uint64_t *buffer_bytes);
/* EPLB_ERR_INVALID_ARG naming --tokens-per-step if the step buffer
 * exceeds EPLB_GEN_MAX_BUFFER_BYTES, or --steps and --tokens-per-step if
 * the estimated raw logits exceed EPLB_GEN_MAX_RAW_BYTES (the command
 * skips this check with --force); bad options fail as in eplb_gen_create. */
eplb_status_t eplb_gen_size_check(const eplb_gen_opts_t *opts);

/* Generate a whole trace into path with the trace writer (logits, phase and,
 * for sigmoid presets, the bias).  *num_tokens (may be NULL) gets the total
 * token count on success.  progress (may be NULL) is called with ctx after
 * each step written: done of total steps (gen's line on a terminal). */
typedef void (*eplb_gen_progress_fn)(void *ctx, int64_t done, int64_t total);
eplb_status_t eplb_gen_write(const eplb_gen_opts_t *opts, const char *path, int64_t *num_tokens,
                             eplb_gen_progress_fn progress, void *ctx);

/* Reference top-k of one token's scores for one layer (used for calibration
 * and tests; independent of kernels/).  Choice score: s + bias with a bias
 * (s = sigmoid(logit), or the softmax probability), the logit without one;
 * with num_groups > 1 first the best topk_groups groups, scored by the sum
 * of their two best choice scores with a bias and by their best without
 * (the rule, as vLLM's grouped_topk).  Ties go to the lower expert
 * (group) id.  ids: [K] in descending choice score. */
void eplb_gen_topk_ref(int32_t *ids, const float *logits, const float *bias,
                       const eplb_route_cfg_t *cfg);

/* Load statistics of a generated trace (gen --stats, calibration). */
typedef struct {
    int num_layers;
    int64_t window_steps;  /* steps per window of the window statistic */
    double *window_maxmean; /* [L] mean over windows of max/mean load */
    double *whole_maxmean;  /* [L] max/mean over the whole trace */
    double *step_maxmean;   /* [L] mean over steps of max/mean load */
    double *top_run;        /* [L] fraction of steps in runs >= 10 steps
                               with the same most loaded expert */
    double *top_same;       /* [L] fraction of steps whose most loaded
                               expert is the previous step's */
    double *top12;          /* [L] whole-trace load of the most loaded
                               expert over the second */
    double *top_life;       /* [L] mean run, in steps, of windows with the
                               same most loaded expert (0 if no full window) */
    int64_t num_tokens;
} eplb_gen_stats_t;

/* Generate opts without writing and measure the load of the reference
 * top-k.  window_steps >= 1. */
eplb_status_t eplb_gen_stats_compute(eplb_gen_stats_t *out,
                                     const eplb_gen_opts_t *opts,
                                     int64_t window_steps);
void eplb_gen_stats_free(eplb_gen_stats_t *st);

/* Load statistics of a sequence of per-step counts [S][L][E] (shared by the
 * generator statistics and the calibration against real data).  Fills the
 * [L] arrays of out (allocated here). */
eplb_status_t eplb_gen_stats_from_counts(eplb_gen_stats_t *out,
                                         const int64_t *counts, int64_t S,
                                         int L, int E, int64_t window_steps);

#ifdef __cplusplus
}
#endif
#endif
