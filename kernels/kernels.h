/* kernels.h - the per-token hot path of EPLB: routing, replica selection and
 * load recording.  Plain C; every function has a CPU implementation here and,
 * in builds with CUDA, a GPU implementation in kernels/ .cu files behind the same
 * header (house style 1).  Nothing outside kernels/ includes CUDA headers.
 *
 * Layouts: one step of T tokens over L layers.
 *   logits  [T][L][E]  (file dtype: f32, f16 or bf16)
 *   bias    [L][E]     float32 or NULL; finite, as the trace reader and
 *                      writer ensure (an infinite bias can make a group
 *                      score NaN, and such a group is then kept or not
 *                      by its position, by no documented rule; logits
 *                      are finite likewise)
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
    int threads;              /* eplb_select_record_cpu's at most; <= 0: all */
} eplb_select_cfg_t;

#define EPLB_SELECT_CFG_INIT { EPLB_SELECT_HASH, 0, 0, 1, NULL, 0 }

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
/* eplb_route_cpu on the calling thread only (for callers that are
 * threads already: the CPU replay routes each decoded chunk on the worker
 * that decoded it).  The same ids and weights. */
eplb_status_t eplb_route_cpu_serial(int32_t *ids, float *weights, const void *logits,
                                    eplb_dtype_t dt, int64_t T, int L,
                                    const float *bias, const eplb_route_cfg_t *cfg);
/* Threads eplb_route_cpu uses for rows = T x L (eplb_num_threads(), fewer
 * for small calls). */
int eplb_route_cpu_threads(int64_t rows);
/* The CPU router's approximate keys (the DeepSeek-V3 path) eight at a time
 * with AVX2 and FMA where the CPU has both (the default; EPLB_CPU_AVX2=0
 * turns it off), else four with SSE2: the same ids and weights either way.
 * on: 1 AVX2 if present, 0 SSE2 only (tests, timing).  Returns whether AVX2 is
 * now used.  Not thread-safe against routing in progress. */
int eplb_route_cpu_set_avx2(int on);

/* Select a replica for every (token, layer, k) and add the choice to
 * counts[L][P].  phys may be NULL.  Ids outside [0, E) map to -1 and are
 * not counted. maps: [L]. */
eplb_status_t eplb_select_record_cpu(int32_t *phys, int32_t *counts,
                                     const int32_t *ids, int64_t T, int L,
                                     int K, const eplb_layer_map_t *maps,
                                     const eplb_select_cfg_t *cfg);
/* Threads eplb_select_record_cpu uses with cfg->threads <= 0: up to
 * eplb_num_threads(), at most one per EPLB_SELECT_TASK_ENTRIES entries
 * (T x L x K), so one for small calls.  The work is split into layers and,
 * with fewer layers than threads, each layer into token ranges (the
 * result is the same however it is split). */
#define EPLB_SELECT_TASK_ENTRIES 32768
int eplb_select_cpu_threads(int64_t T, int L, int K);

/* Source rank and row of every token (t of the selection rules): with
 * src_rank NULL, T tokens form num_ranks contiguous blocks of ceil(T /
 * num_ranks); else t counts the earlier tokens of the same rank.  Fails if
 * a src_rank is not below num_ranks. */
eplb_status_t eplb_select_token_rows(uint32_t *trow, uint16_t *trank,
                                     int64_t T, int num_ranks,
                                     const uint16_t *src_rank);

/* The all-to-all model's traffic (dispatch; combine mirrors it).  phys
 * [T][L][K] replica slots of T tokens; entries outside [0, P) (unplaced)
 * are skipped.  Slot p lives on GPU p / (P / D); GPUs d and d' share a node
 * when d / (D / N) == d' / (D / N).  A token on GPU s (src_gpu[t] mod D,
 * or t / ceil(T / D) with src_gpu NULL, as selection's blocks) sends one
 * copy to every other GPU holding one of its K replicas.  For layers l0
 * .. l0 + nl - 1, out [nl][4][D] gets, per GPU, the (token, GPU) pairs
 * it sends within its node, sends to other nodes, receives from its node
 * and receives from other nodes (overwritten, not accumulated). */
typedef struct {
    int num_gpus;  /* D */
    int num_nodes; /* N, dividing D */
    int num_slots; /* P, a multiple of D */
} eplb_traffic_cfg_t;
/* Checks the shape and configuration (both count functions do). */
eplb_status_t eplb_traffic_check(int64_t T, int L, int K, int l0, int nl,
                                 const eplb_traffic_cfg_t *c);
eplb_status_t eplb_traffic_count_cpu(int64_t *out, const int32_t *phys,
                                     int64_t T, int L, int K, int l0, int nl,
                                     const eplb_traffic_cfg_t *c,
                                     const uint16_t *src_gpu);
/* The same count by a division per entry and a search of the token's
 * earlier GPUs (no bit sets): eplb_traffic_count_cpu uses it past 64 GPUs
 * or 4096 slots; tests use it as an independent count. */
eplb_status_t eplb_traffic_count_ref(int64_t *out, const int32_t *phys,
                                     int64_t T, int L, int K, int l0, int nl,
                                     const eplb_traffic_cfg_t *c,
                                     const uint16_t *src_gpu);

/* The balanced mode's plan for one batch of one layer: n[E] tokens per
 * logical expert; quota[E][max_replicas] receives the tokens given to each
 * replica (0 past logcnt) and gpu_load[D] the resulting tokens per GPU.
 * The peak GPU load is the least any split reaches: water filling over
 * experts in descending n (ties: lower id) after the single-replica experts
 * are placed, then, where that peak is above a simple bound, the least
 * peak by max flow; see docs/kernels.md. */
#define EPLB_PLAN_MAX_R 64 /* replicas of one expert the balanced plan takes */
eplb_status_t eplb_select_plan_balanced(int32_t *quota, int64_t *gpu_load,
                                        const int64_t *n,
                                        const eplb_layer_map_t *map);

/* ---- GPU path (kernels/ .cu files; kernels/gpu_stub.c in builds without CUDA).
 * Every function below returns EPLB_ERR_UNSUPPORTED in a build without
 * CUDA, and eplb_gpu_open returns EPLB_ERR_NO_DEVICE where the build has
 * CUDA but the machine has no usable GPU or driver: callers then take the
 * CPU path.  Results are those of the CPU functions above: selection and
 * recording bit-identical, routing identical except at near-ties. */
typedef struct eplb_gpu eplb_gpu_t;

/* 1 when the library was built with the CUDA kernels. */
int eplb_gpu_built(void);

/* Open GPU `device` (< 0: device 0) with one stream. */
eplb_status_t eplb_gpu_open(eplb_gpu_t **out, int device);
void eplb_gpu_close(eplb_gpu_t *g);
/* "NVIDIA H100 80GB HBM3, sm_90, 132 SMs" */
const char *eplb_gpu_name(const eplb_gpu_t *g);

/* Device and pinned host memory; copies in any direction (unified
 * addressing), asynchronous on the handle's stream; sync waits for it. */
eplb_status_t eplb_gpu_alloc(eplb_gpu_t *g, void **dptr, size_t bytes);
void eplb_gpu_free(eplb_gpu_t *g, void *dptr);
eplb_status_t eplb_gpu_host_alloc(eplb_gpu_t *g, void **hptr, size_t bytes);
void eplb_gpu_host_free(eplb_gpu_t *g, void *hptr);
eplb_status_t eplb_gpu_copy(eplb_gpu_t *g, void *dst, const void *src,
                            size_t bytes);
eplb_status_t eplb_gpu_memset(eplb_gpu_t *g, void *dptr, int byte,
                              size_t bytes);
eplb_status_t eplb_gpu_sync(eplb_gpu_t *g);

/* Upload (copy) the replica maps of L layers; the selection functions use
 * the maps of the last call.  Checks them like eplb_layer_map_check. */
eplb_status_t eplb_gpu_set_maps(eplb_gpu_t *g, const eplb_layer_map_t *maps,
                                int L);

/* Token rows on the device: d_trow [T] and d_trank [T] as made by
 * eplb_select_token_rows, or both NULL for contiguous blocks of
 * ceil(T / num_ranks) tokens.  cfg->src_rank is ignored by the device
 * launchers (it is a host pointer); the _host wrappers honour it. */
typedef struct {
    const uint32_t *d_trow;
    const uint16_t *d_trank;
} eplb_gpu_rows_t;

/* Launchers on device pointers, asynchronous on the handle's stream.
 * d_weights, d_phys may be NULL; d_bias [L][E] may be NULL. */
eplb_status_t eplb_gpu_route(eplb_gpu_t *g, int32_t *d_ids, float *d_weights,
                             const void *d_logits, eplb_dtype_t dt, int64_t T,
                             int L, const float *d_bias,
                             const eplb_route_cfg_t *cfg);
eplb_status_t eplb_gpu_select_record(eplb_gpu_t *g, int32_t *d_phys,
                                     int32_t *d_counts, const int32_t *d_ids,
                                     int64_t T, int L, int K,
                                     const eplb_select_cfg_t *cfg,
                                     eplb_gpu_rows_t rows);
/* Route, select and record in one launch for the per-entry modes (hash,
 * flatmod, random, local); rr-block and balanced need batch ordinals and
 * run as route followed by their selection kernels.  d_counts: the count
 * stripes (eplb_count_stripes, below); eplb_gpu_select_record's d_counts
 * is one [L][P].  For the per-entry
 * modes d_ids may be NULL: only the physical ids (d_phys), weights and
 * counts are written, as a serving engine keeps them (the logical id is
 * the slot's expert).  The host wrapper takes ids = NULL the same way. */
eplb_status_t eplb_gpu_fused(eplb_gpu_t *g, int32_t *d_ids, float *d_weights,
                             int32_t *d_phys, int32_t *d_counts,
                             const void *d_logits, eplb_dtype_t dt, int64_t T,
                             int L, const float *d_bias,
                             const eplb_route_cfg_t *rcfg,
                             const eplb_select_cfg_t *scfg,
                             eplb_gpu_rows_t rows);

/* Count stripes.  eplb_gpu_fused records into eplb_count_stripes(L, P)
 * copies of the counters: d_counts holds stripe s at d_counts + s *
 * eplb_count_stride(L, P), each [L][P], all zeroed (or holding counts) by
 * the caller, and the counts are the stripes' sum (eplb_counts_fold on the
 * host, eplb_gpu_counts_fold on the device), taken when they are read.
 * Block b records into stripe b mod S, so that S times fewer global
 * reductions meet on one counter.  32 stripes while they take at most
 * 2^22 counters (16 MiB; 61 layers of 288 slots take 0.56 M), and then
 * the fused kernels add every entry straight to its stripe, without a
 * shared histogram: 0.2-0.7 us faster from T = 2048 on, also with half of
 * all entries on 8 hot experts, equal at 512, 0.01-0.03 us slower at 64
 * (one layer a call; docs/kernels.md, Recording; docs/perf/kernels.md,
 * runs 95-96).  Past that, 2 stripes and the shared histogram.  The
 * wrappers below and the stages fold before they return counts. */
#define EPLB_COUNT_STRIPES_MAX 32
int eplb_count_stripes(int L, int P);
/* L * P rounded up to 32 counters (128 bytes). */
size_t eplb_count_stride(int L, int P);
/* The counters d_counts holds: eplb_count_stripes x eplb_count_stride. */
size_t eplb_count_len(int L, int P);
/* out[i] = the sum over the eplb_count_stripes(L, P) stripes of
 * striped[s * stride + i], i < L * P; out may be striped itself (stripe
 * 0).  Sums wrap like the device's adds. */
void eplb_counts_fold(int32_t *out, const int32_t *striped, int L, int P);
/* The same on the device, asynchronous on the handle's stream (d_out may
 * be d_striped). */
eplb_status_t eplb_gpu_counts_fold(eplb_gpu_t *g, int32_t *d_out, const int32_t *d_striped,
                                   int L, int P);
/* The same, and every stripe zeroed as it is read, ready for the next
 * step without a clear of its own (the replay stages: one launch fewer);
 * d_out [L][P] must not overlap the stripes. */
eplb_status_t eplb_gpu_counts_fold_clear(eplb_gpu_t *g, int32_t *d_out, int32_t *d_striped,
                                         int L, int P);

/* eplb_traffic_count_cpu of all L layers on the device: d_out [L][4][D]
 * int32 (overwritten), d_src_gpu [T] or NULL; up to 64 GPUs
 * (EPLB_ERR_UNSUPPORTED beyond: count on the host then). */
eplb_status_t eplb_gpu_traffic_count(eplb_gpu_t *g, int32_t *d_out,
                                     const int32_t *d_phys, int64_t T, int L,
                                     int K, const eplb_traffic_cfg_t *c,
                                     const uint16_t *d_src_gpu);
#define EPLB_GPU_TRAFFIC_MAX_GPUS 64

/* Synchronous wrappers on host pointers (copy in, run, copy out), with the
 * CPU functions' signatures: counts accumulate like on the CPU.  Every
 * device output starts as a copy of its host buffer, so an entry the
 * kernel does not write comes back as the caller left it (the GPU tests
 * poison the host buffers to catch those).  For tests and tools: the
 * replay uses the launchers and the stages. */
eplb_status_t eplb_gpu_route_host(eplb_gpu_t *g, int32_t *ids, float *weights,
                                  const void *logits, eplb_dtype_t dt,
                                  int64_t T, int L, const float *bias,
                                  const eplb_route_cfg_t *cfg);
eplb_status_t eplb_gpu_select_record_host(eplb_gpu_t *g, int32_t *phys,
                                          int32_t *counts, const int32_t *ids,
                                          int64_t T, int L, int K,
                                          const eplb_layer_map_t *maps,
                                          const eplb_select_cfg_t *cfg);
eplb_status_t eplb_gpu_fused_host(eplb_gpu_t *g, int32_t *ids, float *weights,
                                  int32_t *phys, int32_t *counts,
                                  const void *logits, eplb_dtype_t dt,
                                  int64_t T, int L, const float *bias,
                                  const eplb_route_cfg_t *rcfg,
                                  const eplb_layer_map_t *maps,
                                  const eplb_select_cfg_t *scfg);

/* Benchmark support.  time_graph captures `launches` calls of fn(ctx, i)
 * (which enqueue work with the launchers above) into one CUDA graph,
 * replays it `reps` times and gives the median over replays of the time
 * per call.  bandwidth times a device-to-device copy of `bytes` and counts
 * bytes read plus written. */
eplb_status_t eplb_gpu_time_graph(eplb_gpu_t *g, double *median_us,
                                  eplb_status_t (*fn)(void *ctx, int i),
                                  void *ctx, int launches, int reps);
eplb_status_t eplb_gpu_bandwidth(eplb_gpu_t *g, double *gbps, size_t bytes);
/* An empty kernel (one block of 32 threads) on the handle's stream: the
 * launch cost that every kernel pays, as a baseline for small batches. */
eplb_status_t eplb_gpu_empty(eplb_gpu_t *g);
/* Tests and tuning: routing kernel choice (docs/kernels.md).  0 the
 * default: for the DeepSeek-V3 shape (256 experts in 8 groups, K <= 8,
 * K <= 2 * topk_groups) the segmented kernel with the fast sigmoid (= 6),
 * otherwise the warp-per-row threshold kernel (= 8); 1 always the generic
 * warp-per-row kernel; 2 the lanes-per-row insertion kernel; for
 * 128 < E <= 256 only: 3 the warp kernel at up to 85 registers (3 blocks
 * per SM instead of 4), 4 that with a prefetch of the next row; for the
 * DeepSeek-V3 shape only: 5 the segmented kernel (8 lanes per row, 4 rows
 * per warp) with the exact sigmoid, 6 with the fast one; 7 retired (= 8);
 * 8 the warp kernel for every shape (the default up to run 8); 9 the
 * segmented kernel with a cp.async prefetch of the next rows.  Shapes a
 * variant lacks take the warp kernel or the generic one. */
void eplb_gpu_set_route_variant(eplb_gpu_t *g, int variant);
/* Tests and tuning: the fused kernels record into at most n of the count
 * stripes (below 16: through the shared histogram past small batches, as
 * for shapes with 2 stripes); 0 all of them (the default;
 * EPLB_COUNT_STRIPES sets it at open).  Returns the previous setting. */
int eplb_gpu_set_count_stripes(eplb_gpu_t *g, int n);
/* Tests and tuning: the segment kernel's block setup forced, 0-3 (bit 0 the
 * setup, which the small grids take; without it, rows of more than 32
 * candidates go through seg_wide's bisection), -1 the launcher's choice
 * (the default; EPLB_SEG_SETUP sets it at open).  Returns the previous
 * setting. */
int eplb_gpu_set_seg_setup(eplb_gpu_t *g, int setup);

/* Replay staging: one stream, pinned host buffers for the logits of one
 * step and for its outputs.  Fill eplb_gpu_stage_logits(), submit (copy
 * in, fused kernels, copy out, all asynchronous), decode the next step
 * into a second stage meanwhile, then wait for the outputs.  counts [L][P]
 * are this step's alone (zeroed by submit; wait folds the stripes).  bias [L][E] (host, may be
 * NULL) is copied at open; the maps are those of eplb_gpu_set_maps (which
 * waits for stages in flight).  balanced mode shares the handle's scratch
 * memory, so its submits wait for other stages: no overlap in that mode.
 * scfg NULL: routing only (no maps needed; wait gives the ids, the other
 * outputs are not written).  The logits buffer holds max_tokens rows of
 * dtype dt (pinned memory costs time in proportion: ~0.6 s per GB);
 * submit takes rows of dt or of a narrower dtype.  A handle and its
 * stages are for one host thread. */
typedef struct eplb_gpu_stage eplb_gpu_stage_t;
eplb_status_t eplb_gpu_stage_open(eplb_gpu_stage_t **out, eplb_gpu_t *g,
                                  int64_t max_tokens, eplb_dtype_t dt, int L, int E,
                                  int K, int P, const float *bias);
void eplb_gpu_stage_close(eplb_gpu_stage_t *s);
void *eplb_gpu_stage_logits(eplb_gpu_stage_t *s);
eplb_status_t eplb_gpu_stage_submit(eplb_gpu_stage_t *s, eplb_dtype_t dt,
                                    int64_t T, const eplb_route_cfg_t *rcfg,
                                    const eplb_select_cfg_t *scfg);
/* Wait; outputs point into pinned buffers valid until the next submit. */
eplb_status_t eplb_gpu_stage_wait(eplb_gpu_stage_t *s, const int32_t **ids,
                                  const float **weights, const int32_t **phys,
                                  const int32_t **counts);

/* ---- NCCL all-to-all measurement (kernels/a2a.cu, which loads
 * libnccl.so.2 at its first call: kernels/nccl.cu; kernels/a2a_stub.c in
 * builds without CUDA or nccl.h).  One process drives `gpus` devices
 * 0 .. gpus-1: one communicator each (ncclCommInitAll), one stream each.
 * An exchange is one NCCL group in which every GPU sends bytes / peers to
 * each other GPU and receives as much from each (ncclSend/ncclRecv), so
 * that every GPU sends and receives `bytes` over its links at once: x of
 * the cost model's phase t(x) = nvlink_lat + x / nvlink_bw (sim.h,
 * eplb_sim_a2a_fit).  Each timed exchange starts on all GPUs together
 * (a spin kernel on every stream waits for one host flag, set once the
 * exchange is queued everywhere, so host launch skew is left out) and
 * its time is the longest of the GPUs' event intervals from that start to
 * the exchange's end; where NCCL blocks the host before the exchange is
 * queued on all GPUs (the gate then times out after 1 s), every
 * exchange is timed from its launch instead (info->gated = 0).  Data are
 * checked after the warm-up: every GPU's chunk from every peer carries
 * that pair's byte pattern (the receive buffers poisoned first). */
typedef struct {
    int gpus;   /* devices 0 .. gpus-1; <= 0: all visible */
    int reps;   /* timed exchanges per size (median) */
    int warmup; /* untimed exchanges per size before them */
    int self;   /* 1: one GPU may exchange with itself (ncclSend/ncclRecv
                   to its own rank: a device-local copy, no link; tests) */
} eplb_a2a_opts_t;

#define EPLB_A2A_OPTS_INIT { 0, 50, 5, 0 }

typedef struct {
    int gpus;          /* devices used */
    int peers;         /* gpus - 1 (1 for the self-exchange) */
    int nccl_version;  /* ncclGetVersion: 22809 */
    char nccl[16];     /* the same as text: "2.28.9" */
    int p2p_pairs;     /* ordered device pairs with peer access (of gpus x (gpus - 1)) */
    int same_model;    /* 1 when every device has device 0's name */
    int gated;         /* 1: timed from a common start (see above) */
    char gpu_name[96]; /* device 0: "NVIDIA H200" */
} eplb_a2a_info_t;

typedef struct {
    size_t bytes;      /* one GPU's bytes to its peers (= peers x peer_bytes) */
    size_t peer_bytes; /* to each peer */
    double median_s, min_s, max_s; /* over the timed exchanges */
} eplb_a2a_point_t;

/* Whether this build measures NCCL at all (0: a2a_stub.c). */
int eplb_a2a_built(void);

/* Measure an exchange of each of sizes[nsizes] bytes per GPU (rounded
 * down to 16-byte chunks per peer: points[i].bytes says what was sent;
 * fewer than 16 bytes per peer is refused).  Errors:
 * EPLB_ERR_UNSUPPORTED without NCCL (the build, or libnccl.so.2 missing
 * or older than 2.7: the message names the library), EPLB_ERR_NO_DEVICE
 * without a usable GPU or with fewer than o->gpus, EPLB_ERR_INVALID_ARG
 * for one GPU without o->self and for bad arguments, EPLB_ERR_CUDA for
 * CUDA and NCCL failures (an exchange that does not finish within 60 s,
 * or data that arrive wrong, included).  info may be NULL. */
eplb_status_t eplb_a2a_measure(eplb_a2a_point_t *points, eplb_a2a_info_t *info,
                               const size_t *sizes, int nsizes, const eplb_a2a_opts_t *o);

#ifdef __cplusplus
}
#endif
#endif
