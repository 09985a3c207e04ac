/* gpu_impl.h - internals shared by the .cu files of kernels/ (CUDA C++ only;
 * never included by host C). */
#ifndef EPLB_GPU_IMPL_H
#define EPLB_GPU_IMPL_H

#include <cuda_runtime.h>

#include "checks.h"
#include "kernels.h"
#include "rules.h"

/* Set the thread's message from a CUDA error (clearing a non-sticky error
 * so that the next call starts clean) and return EPLB_ERR_CUDA. */
eplb_status_t eplb_cuda_fail(cudaError_t e, const char *what, const char *file,
                             int line);

/* The visible devices (>= 1), else EPLB_ERR_NO_DEVICE: "no usable GPU
 * (no NVIDIA driver loaded on this machine)" and the like. */
eplb_status_t eplb_cuda_device_count(int *out);

#define EPLB_CUDA_CHECK(expr)                                                 \
    do {                                                                      \
        cudaError_t eplb_ce_ = (expr);                                        \
        if (eplb_ce_ != cudaSuccess)                                          \
            return eplb_cuda_fail(eplb_ce_, #expr, __FILE__, __LINE__);       \
    } while (0)

#define EPLB_CUDA_CHECK_GOTO(expr, st, label)                                 \
    do {                                                                      \
        cudaError_t eplb_ce_ = (expr);                                        \
        if (eplb_ce_ != cudaSuccess) {                                        \
            (st) = eplb_cuda_fail(eplb_ce_, #expr, __FILE__, __LINE__);       \
            goto label;                                                       \
        }                                                                     \
    } while (0)

/* Layer maps on the device: all layers share E, P, D, N, max_replicas. */
typedef struct {
    int L, E, P, D, N, MR;
    int max_logcnt;   /* largest logcnt over layers (balanced planner limit) */
    int S;            /* row stride of packed: MR + 1 rounded up to 4 */
    int32_t *logcnt;  /* [L][E] */
    int32_t *log2phy; /* [L][E][MR] */
    int32_t *packed;  /* [L][E][S]: logcnt, then the slots (-1 padded), so
                         that one 16-byte load gives R and 3 replicas */
    eplb_hhead_t *hhead; /* [L][E] (rules.h), or NULL where P >= 0xffff or
                            MR > 255: the fused hash path's shared heads */
} eplb_gpu_maps_t;

struct eplb_gpu {
    int device;
    int num_sms;
    size_t smem_optin; /* shared memory per block with opt-in */
    cudaStream_t stream;
    char name[160];
    eplb_gpu_maps_t maps;
    void *scratch; /* balanced mode: chunk counts and quotas */
    size_t scratch_bytes;
    int variant; /* routing kernel (eplb_gpu_set_route_variant, route.cu) */
    int diag;    /* EPLB_FUSED_DIAG (timing only, wrong counts): bit 0 no
                    recording, 1 no histogram flush, 2 no selection
                    (records the logical id); kernels/dev/README.md */
    int carveout; /* EPLB_SEG_CARVEOUT: the segment kernel's preferred
                     shared-memory carveout in % (-1: the driver's) */
    int seg_setup; /* EPLB_SEG_SETUP 0-3 forces the segment kernel's
                      SETUP_ (bit 0 the block setup, bit 1 the heads in
                      shared memory; -1: by the grid, route.cu) */
    int seg_lanes; /* EPLB_SEG_LANES 8 or 16: lanes per row of the
                      segment kernel (0: the default, route.cu) */
    int seg_bulk; /* EPLB_SEG_BULK=0: the segment kernel's histogram
                     flushed by single reductions where it would take one
                     bulk reduction (1, the default; route.cu) */
    int cc_major; /* compute capability, major */
    long long direct_max; /* EPLB_DIRECT_MAX (timing): fused recording
                             straight into the global counters up to this
                             many entries in all layers, through the shared
                             histogram above (-1: the rule in
                             launch_route) */
    int count_stripes; /* EPLB_COUNT_STRIPES=N (timing): the fused kernels
                          record into at most N of the buffers'
                          eplb_count_stripes stripes (0: all) */
};

/* Largest P for which recording uses a shared-memory histogram. */
#define EPLB_GPU_SMEM_HIST_MAX 8192

/* Parameters of replica selection as the kernels see them. */
typedef struct {
    int mode;
    uint64_t seed;
    int64_t step;
    int num_ranks;
    int64_t block; /* ceil(T / num_ranks): rows without src_rank */
    eplb_fastdiv_t bdiv; /* division by block (when block < 2^31) */
    const uint32_t *trow;
    const uint16_t *trank;
    int E, P, D, MR, spg, gpn;
    const int32_t *logcnt;  /* [L][E] */
    const int32_t *log2phy; /* [L][E][MR] */
    const int32_t *packed;  /* [L][E][S] */
    const eplb_hhead_t *hhead; /* [L][E] or NULL */
    int S;
} eplb_sel_params_t;

/* Fill p from the handle's maps and the config; checks mode and shapes. */
eplb_status_t eplb_gpu_sel_params(eplb_sel_params_t *p, const eplb_gpu_t *g,
                                  int64_t T, int L,
                                  const eplb_select_cfg_t *cfg,
                                  eplb_gpu_rows_t rows);

#ifdef __CUDACC__
/* Replica of one entry: the per-entry modes (hash, flatmod, random, local).
 * Same rules as kernels/select_cpu.c. */
/* t (row in the source rank's batch) and source rank of token i. */
__device__ __forceinline__ void eplb_dev_token(const eplb_sel_params_t &p,
                                               int64_t i, uint32_t *t,
                                               int *rank)
{
    if (p.trow) {
        *t = p.trow[i];
        *rank = p.trank[i];
    } else if (i <= 0x7fffffff && p.block <= 0x7fffffff) {
        uint32_t q = eplb_fastdiv((uint32_t)i, p.bdiv);
        *t = (uint32_t)i - q * (uint32_t)p.block;
        *rank = (int)q;
    } else {
        int64_t q = i / p.block;
        *t = (uint32_t)(i - q * p.block);
        *rank = (int)q;
    }
}

/* Replica of one entry for the per-entry modes (hash, flatmod, random,
 * local): the rules of kernels/select_cpu.c on the packed map. */
/* The first 16 bytes of expert e's packed row (R and replicas 0-2), e in
 * [0, E): a caller may load them early (the fused kernel, as soon as the
 * winner is known) and pass them to eplb_dev_select_head. */
__device__ __forceinline__ int4 eplb_dev_sel_head(const eplb_sel_params_t &p, int l, int e)
{
    return __ldg((const int4 *)(p.packed + ((size_t)l * p.E + e) * p.S));
}

__device__ __forceinline__ int eplb_dev_select_head(const eplb_sel_params_t &p, int l,
                                                    uint32_t t, int rank, int k, int K,
                                                    int e, int4 h)
{
    const int32_t *row = p.packed + ((size_t)l * p.E + e) * p.S;
    const int c = h.x;
    const int R = c < 1 ? 1 : c > p.MR ? p.MR : c;
    int rep = 0;
    if (R > 1) { /* one replica: index 0 in every mode (no division) */
        if (p.mode == EPLB_SELECT_LOCAL) {
            int gpu = (int)((int64_t)rank * p.D / p.num_ranks);
            rep = eplb_rule_local_rep(row + 1, R, t, gpu, gpu / p.gpn, p.spg, p.gpn);
        } else {
            const uint64_t rkey = p.mode == EPLB_SELECT_RANDOM
                                      ? eplb_rule_random_row(p.seed, p.step, l, t)
                                      : 0;
            rep = eplb_rule_entry_rep(p.mode, t, k, K, R, rkey);
        }
    }
    int ph = rep == 0 ? h.y : rep == 1 ? h.z : rep == 2 ? h.w : __ldg(row + 1 + rep);
    return ph < 0 || ph >= p.P ? -1 : ph;
}

__device__ __forceinline__ int eplb_dev_select_tok(const eplb_sel_params_t &p,
                                                   int l, uint32_t t,
                                                   int rank, int k, int K,
                                                   int e)
{
    if (e < 0 || e >= p.E)
        return -1;
    return eplb_dev_select_head(p, l, t, rank, k, K, e, eplb_dev_sel_head(p, l, e));
}

/* Recording: one entry into the block's shared histogram, or straight
 * into the layer's counts (tiny batches); ph < 0 records nothing. */
__device__ __forceinline__ void eplb_dev_record(int *hist, int32_t *cnt, int ph)
{
    if (ph < 0)
        return;
    if (hist)
        atomicAdd(&hist[ph], 1);
    else
        atomicAdd(&cnt[ph], 1);
}

/* The block's histogram into the counts, skipping zeros: one 128-byte
 * line of counters per warp and reduction instruction (with a rotation by
 * slots, as up to run 30, a warp straddled two lines: each line then took
 * twice the reductions, which queue in L2 when every block flushes at the
 * end of a kernel; by lines, fused at T = 16384 went from 16.5 to 15.9 us,
 * run 31).  Blocks start at different lines, so that blocks finishing
 * together do not queue on the same counters. */
__device__ __forceinline__ void eplb_dev_hist_flush(const int *hist, int32_t *cnt, int P)
{
    __syncthreads();
    const int a0 = (int)(((uintptr_t)cnt >> 2) & 31); /* cnt's place in its line */
    const int nl = eplb_flush_lines(P, a0);
    const int o = (int)((blockIdx.x * 5u) % (unsigned)nl);
    for (int p = threadIdx.x; p < nl * 32; p += blockDim.x) {
        const int q = eplb_flush_slot(p, a0, nl, o, P);
        if (q >= 0 && hist[q])
            atomicAdd(&cnt[q], hist[q]);
    }
}

__device__ __forceinline__ int eplb_dev_select(const eplb_sel_params_t &p,
                                               int64_t i, int l, int k,
                                               int K, int e)
{
    uint32_t t;
    int rank;
    eplb_dev_token(p, i, &t, &rank);
    return eplb_dev_select_tok(p, l, t, rank, k, K, e);
}
#endif

/* Launchers defined in select.cu, used by gpu.cu and route.cu. */
eplb_status_t eplb_gpu_launch_select(eplb_gpu_t *g, int32_t *d_phys,
                                     int32_t *d_counts, const int32_t *d_ids,
                                     int64_t T, int L, int K,
                                     const eplb_sel_params_t *p);

#endif
