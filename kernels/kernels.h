/* kernels.h - the per-token hot path of EPLB: routing, replica selection and
 * load recording.  Plain C; every function has a CPU implementation here and,
 * in builds with CUDA, a GPU implementation in kernels/ .cu files behind the same
 * header (house style 1).  Nothing outside kernels/ includes CUDA headers.
 *
 * Layouts: one step of T tokens over L layers.
 *   logits  [T][L][E]  (file dtype: f32, f16 or bf16)
 *   bias    [L][E]     float32 or NULL
 *   ids     [T][L][K]  int32 logical expert ids, descending score
 *   weights [T][L][K]  float32 gate weights
 *   phys    [T][L][K]  int32 physical slot ids (-1 for invalid ids)
 *   counts  [L][P]     int32 tokens per physical slot (accumulated) */
#ifndef EPLB_KERNELS_H
#define EPLB_KERNELS_H

#include "eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    EPLB_SELECT_HASH = 0, /* rep = ((t * 2654435769) mod 2^32) mod R */
    EPLB_SELECT_FLATMOD,  /* rep = (t*K + k) mod R */
    EPLB_SELECT_RANDOM,   /* counter-based RNG (seed, step, layer, t, k) */
    EPLB_SELECT_LOCAL,    /* same GPU, else same node, else fair spread */
    EPLB_SELECT_RR_BLOCK, /* round robin within blocks of 1024 entries */
    EPLB_SELECT_BALANCED  /* per batch, minimise the peak GPU load */
} eplb_select_mode_t;

const char *eplb_select_mode_name(eplb_select_mode_t m);
eplb_status_t eplb_select_mode_parse(eplb_select_mode_t *out,
                                     const char *name);

/* Replica map of one layer (vLLM layout: replicas in ascending slot order). */
typedef struct {
    int num_logical;        /* E */
    int num_physical;       /* P */
    int num_gpus;           /* D */
    int num_nodes;          /* N */
    int max_replicas;       /* row width of log2phy */
    const int32_t *logcnt;  /* [E] */
    const int32_t *log2phy; /* [E][max_replicas], -1 padded */
} eplb_layer_map_t;

typedef struct {
    eplb_select_mode_t mode;
    uint64_t seed;
    int64_t step;
    int num_ranks;            /* source ranks (DP/EP ranks); <= 0: D */
    const uint16_t *src_rank; /* [T] or NULL: contiguous equal blocks */
} eplb_select_cfg_t;

#define EPLB_SELECT_CFG_INIT { EPLB_SELECT_HASH, 0, 0, 1, NULL }

/* Check a routing configuration against the kernel limits: 1 <= K <= 16,
 * E <= 512, groups <= 32 dividing E, 1 <= topk_groups <= groups and K no
 * more than the experts of the kept groups.  EPLB_ERR_INVALID_ARG naming
 * the field otherwise. */
eplb_status_t eplb_route_cfg_check(const eplb_route_cfg_t *cfg);

/* Check one layer map: P % D == 0, D % N == 0, P >= 1, max_replicas >= 1,
 * every logcnt[e] <= max_replicas, and the first logcnt[e] entries of each
 * row are slots in [0, P).  (logcnt[e] == 0 means "not placed": tokens of
 * e then map to log2phy[e][0], which may be -1.) */
eplb_status_t eplb_layer_map_check(const eplb_layer_map_t *map);

/* Route one step on the CPU (multi-threaded over tokens). weights may be
 * NULL.  Fails with EPLB_ERR_INVALID_ARG on unsupported shapes. */
eplb_status_t eplb_route_cpu(int32_t *ids, float *weights, const void *logits,
                             eplb_dtype_t dt, int64_t T, int L,
                             const float *bias, const eplb_route_cfg_t *cfg);

/* Select a replica for every (token, layer, k) and add the choice to
 * counts[L][P].  phys may be NULL.  Ids outside [0, E) map to -1 and are
 * not counted. maps: [L]. */
eplb_status_t eplb_select_record_cpu(int32_t *phys, int32_t *counts,
                                     const int32_t *ids, int64_t T, int L,
                                     int K, const eplb_layer_map_t *maps,
                                     const eplb_select_cfg_t *cfg);

/* Source rank and row of every token (t of the selection rules): with
 * src_rank NULL, T tokens form num_ranks contiguous blocks of ceil(T /
 * num_ranks); else t counts the earlier tokens of the same rank.  Fails if
 * a src_rank is not below num_ranks. */
eplb_status_t eplb_select_token_rows(uint32_t *trow, uint16_t *trank,
                                     int64_t T, int num_ranks,
                                     const uint16_t *src_rank);

/* The balanced mode's plan for one batch of one layer: n[E] tokens per
 * logical expert; quota[E][max_replicas] receives the tokens given to each
 * replica (0 past logcnt) and gpu_load[D] the resulting tokens per GPU.
 * Water filling over experts in descending n (ties: lower id), after the
 * single-replica experts are placed; see docs/kernels.md. */
eplb_status_t eplb_select_plan_balanced(int32_t *quota, int64_t *gpu_load,
                                        const int64_t *n,
                                        const eplb_layer_map_t *map);

#ifdef __cplusplus
}
#endif
#endif
