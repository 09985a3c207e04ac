/* policy_impl.h - building blocks shared by the policy files (private to
 * policies/; other modules use policy.h only).
 *
 * The DeepSeek pieces follow the published algorithm (deepseek-ai/EPLB
 * eplb.py: balanced_packing, replicate_experts,
 * rebalance_experts_hierarchical) with its tie rules, in float32. */
#ifndef EPLB_POLICY_IMPL_H
#define EPLB_POLICY_IMPL_H

#include "policy.h"

/* Indices 0..n-1 ordered by key descending; equal keys keep the lower index
 * first (a stable descending sort).  scratch: n ints. */
void eplb_pol_argsort_desc(int *idx, const float *key, int n, int *scratch);

/* Sum of x[0..n) in float32, in the order PyTorch's CPU sum kernel uses for
 * a contiguous row (so group sums equal torch's bit for bit). */
float eplb_pol_sum_f32(const float *x, int n);

/* DeepSeek balanced_packing of one row: n items of weight w into `packs`
 * packs of n/packs items each.  Heaviest first, each to the lightest pack
 * with room (lowest index among equals); when n == packs, item i goes to
 * pack i.  pack, rank: out [n].  scratch: 2n ints; pw: 2 packs floats. */
void eplb_pol_balanced_packing(int *pack, int *rank, const float *w, int n,
                               int packs, int *scratch, float *pw);

/* The start both packings share: with one item per pack, item i into pack
 * i (returns 1: nothing left to do); else order = the items by weight,
 * heaviest first (items is scratch for the sort), and every pack empty
 * (pw, items zeroed). */
int eplb_pol_pack_start(int *pack, int *rank, const float *w, int n, int packs, int *order,
                        int *items, float *pw);

/* DeepSeek replicate_experts of one row: n logical experts onto m >= n
 * slots; slot i < n holds expert i, each further slot goes to the first
 * expert of maximal w/count.  cap > 0: experts at cap replicas are skipped
 * (while any is below it).  phy2log, rank: out [m]; cnt: out [n];
 * ratio: scratch [n] floats; heap: scratch [n] ints. */
void eplb_pol_replicate(int *phy2log, int *rank, int *cnt, const float *w,
                        int n, int m, int cap, float *ratio, int *heap);

/* Ranks in ascending slot order: the k-th slot holding expert e gets rank k.
 * cnt: scratch [E]. */
void eplb_pol_rank_by_slot(int32_t *phyrank, const int32_t *phy2log, int E,
                           int P, int *cnt);

/* Workspace of the hierarchical DeepSeek algorithm for one layer shape. */
typedef struct {
    int *ints;
    float *floats;
    double *dbl;
} eplb_pol_ws_t;

eplb_status_t eplb_pol_ws_alloc(eplb_pol_ws_t *ws, int E, int P, int G, int D);
void eplb_pol_ws_free(eplb_pol_ws_t *ws);

/* One layer of rebalance_experts_hierarchical (groups to nodes, replicas
 * within nodes, physical experts to GPUs).  nodup != 0: the anti-duplicate
 * variant (replica counts capped at the node's GPU count where that is
 * feasible, GPU packing that avoids a second copy, then repair swaps).
 * phy2log, phyrank: out [P]. */
void eplb_pol_hier_layer(int32_t *phy2log, int32_t *phyrank, const float *w,
                         int E, int P, int G, int N, int D, int nodup,
                         eplb_pol_ws_t *ws);

/* Run eplb_pol_hier_layer over every layer after checking the arguments
 * (the driver of deepseek, global and nodup). */
eplb_status_t eplb_pol_run_hier(int32_t *phy2log, int32_t *phyrank,
                                const float *weights, int L, int E,
                                const eplb_policy_args_t *args, int G, int N,
                                int nodup);

/* Anti-duplicate pieces (nodup.c).  nodup_pack: balanced_packing that puts
 * an item into the lightest pack with room that holds no item of the same
 * id, else the lightest with room.  nodup_repair: per node, swap slots
 * between GPUs while a GPU holds two replicas of one expert and a swap
 * removes one without creating another (the swap that keeps the larger of
 * the two GPU loads smallest).  nodup_pack scratch: 3n ints; repair
 * scratch: cnt E ints, load D doubles. */
void eplb_pol_nodup_pack(int *pack, int *rank, const float *w, const int *id,
                         int n, int packs, int *scratch, float *pw);
void eplb_pol_nodup_repair(int32_t *phy2log, int32_t *phyrank, const float *w,
                           int E, int P, int N, int D, int *cnt, double *load);

/* Per-GPU load of one layer row (each expert's load split evenly over its
 * replicas), in double.  cnt: scratch [E]. */
void eplb_pol_gpu_load(double *load, const int32_t *phy2log, const float *w,
                       int E, int P, int D, int *cnt);

/* Largest value of x[0..n). */
double eplb_pol_max(const double *x, int n);

/* The layer row of the old placement (args->old_phy2log or, without one,
 * the default placement written into buf). */
const int32_t *eplb_pol_old_row(const eplb_policy_args_t *args, int l, int E,
                                int P, int32_t *buf);

/* The policies (one file each, rows of registry.c). */
eplb_status_t eplb_policy_deepseek(int32_t *, int32_t *, const float *, int, int,
                                   const eplb_policy_args_t *);
eplb_status_t eplb_policy_global(int32_t *, int32_t *, const float *, int, int,
                                 const eplb_policy_args_t *);
eplb_status_t eplb_policy_deepseek_preserve(int32_t *, int32_t *, const float *, int,
                                            int, const eplb_policy_args_t *);
eplb_status_t eplb_policy_nodup(int32_t *, int32_t *, const float *, int, int,
                                const eplb_policy_args_t *);
eplb_status_t eplb_policy_lpt(int32_t *, int32_t *, const float *, int, int,
                              const eplb_policy_args_t *);
eplb_status_t eplb_policy_vec(int32_t *, int32_t *, const float *, int, int,
                              const eplb_policy_args_t *);
eplb_status_t eplb_policy_migration(int32_t *, int32_t *, const float *, int, int,
                                    const eplb_policy_args_t *);
eplb_status_t eplb_policy_none(int32_t *, int32_t *, const float *, int, int,
                               const eplb_policy_args_t *);

#endif
