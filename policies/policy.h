/* policy.h - expert rearrangement policies and placement helpers.
 *
 * A placement is phy2log[L][P]: physical slot p of layer l holds logical
 * expert phy2log[l*P + p].  Slot p lives on GPU p / (P/D); GPU g on node
 * g / (D/N).  Each policy is one file in policies/ and one row of the
 * registry table (policies/registry.c). */
#ifndef EPLB_POLICY_H
#define EPLB_POLICY_H

#include "eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int num_replicas;           /* P: physical slots per layer */
    int num_groups;             /* G: expert groups (E % G == 0) */
    int num_nodes;              /* N */
    int num_gpus;               /* D (P % D == 0, D % N == 0) */
    int max_moves;              /* migration-aware: slots allowed to change
                                   per layer; < 0 means unlimited */
    const int32_t *old_phy2log; /* [L][P] current placement or NULL (the
                                   default placement: slot p holds p mod E) */
    const float *series;        /* vec: per-step loads [S][L][E] or NULL */
    int series_steps;           /* S */
    /* progress: called by the policies that can take long (migration-aware:
     * minutes at thousands of slots without a move limit) after each layer,
     * with (progress_ctx, layers done, L); NULL: none */
    void (*progress)(void *ctx, int done, int total);
    void *progress_ctx;
} eplb_policy_args_t;

#define EPLB_POLICY_ARGS_INIT { 0, 1, 1, 1, -1, NULL, NULL, 0, NULL, NULL }

/* Compute a new placement.  weights: [L][E] load per logical expert.
 * phy2log: out [L][P].  phyrank: out [L][P] or NULL: the replica rank of
 * each slot (0 for the first replica of its expert the algorithm created,
 * 1 for the second, ...); it orders log2phy as the DeepSeek reference does. */
typedef eplb_status_t (*eplb_policy_fn)(int32_t *phy2log, int32_t *phyrank,
                                        const float *weights, int L, int E,
                                        const eplb_policy_args_t *args);

typedef struct {
    const char *name;
    const char *description; /* one line */
    eplb_policy_fn fn;
    int reads_series; /* 1: uses args->series (the simulator builds one) */
} eplb_policy_t;

/* Registry: NULL if name is unknown. */
const eplb_policy_t *eplb_policy_find(const char *name);
/* The whole table and its length. */
const eplb_policy_t *eplb_policy_table(size_t *n);
/* EPLB_ERR_INVALID_ARG: "--policy: unknown policy 'NAME' (a, b, ...)", the
 * table's names (then `oracle` with with_oracle: run's schedule), and for
 * vLLM's name of the DeepSeek algorithm ("default") which of ours it is. */
eplb_status_t eplb_policy_unknown(const char *name, int with_oracle);

/* Check the shape arguments (P % D, D % N, E % G, P >= E, ...) and the
 * weights (finite, >= 0); error messages name the offending value. */
eplb_status_t eplb_policy_args_check(const eplb_policy_args_t *args, int L,
                                     int E, const float *weights);
/* The same, and where a shape check failed, *fields names the arguments
 * of that check, as "replicas, gpus" (a command line maps them to its
 * options); NULL for any other outcome. */
eplb_status_t eplb_policy_args_check_fields(const eplb_policy_args_t *args, int L, int E,
                                            const float *weights, const char **fields);

/* Default placement: slot p holds expert p mod E. */
void eplb_placement_default(int32_t *phy2log, int L, int E, int P);

/* Derive logcnt[L][E] and log2phy[L][E][maxcnt] (-1 padded).  With phyrank
 * NULL, replicas are listed in ascending slot order (the vLLM layout used by
 * replica selection); with phyrank, in rank order (the DeepSeek reference).
 * maxcnt must be >= the largest replica count (P - E + 1 always is).
 * log2phy may be NULL: then only logcnt is computed. */
void eplb_placement_derive(int32_t *logcnt, int32_t *log2phy, int maxcnt,
                           const int32_t *phy2log, const int32_t *phyrank,
                           int L, int E, int P);

/* Slots whose expert differs between two placements of one layer. */
int eplb_placement_moves(const int32_t *old_row, const int32_t *new_row, int P);

/* Load of each GPU, gpu_load[L][D], when each expert's load splits evenly
 * over its replicas (the model behind every policy's objective).  Slots
 * holding an id outside [0, E) carry no load. */
void eplb_placement_gpu_load(double *gpu_load, const int32_t *phy2log,
                             const float *weights, int L, int E, int P, int D);

/* mean/max of one layer's GPU loads (1 when every GPU has load 0). */
double eplb_placement_balancedness(const double *gpu_load_row, int D);

/* Check a placement: every entry in [0, E) and every expert present at least
 * once; `what` names it in the message (EPLB_ERR_INVALID_ARG). */
eplb_status_t eplb_placement_check(const int32_t *phy2log, int L, int E, int P,
                                   const char *what);

#ifdef __cplusplus
}
#endif
#endif
