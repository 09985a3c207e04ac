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
    int32_t *logcnt;  /* [L][E] */
    int32_t *log2phy; /* [L][E][MR] */
} eplb_gpu_maps_t;

struct eplb_gpu {
    int device;
    int num_sms;
    cudaStream_t stream;
    char name[160];
    eplb_gpu_maps_t maps;
    void *scratch; /* balanced mode: chunk counts and quotas */
    size_t scratch_bytes;
    int variant; /* routing kernel: 0 default, 1 generic, 2 alternative fast */
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
    const uint32_t *trow;
    const uint16_t *trank;
    int E, P, D, MR, spg, gpn;
    const int32_t *logcnt;  /* [L][E] */
    const int32_t *log2phy; /* [L][E][MR] */
} eplb_sel_params_t;

/* Fill p from the handle's maps and the config; checks mode and shapes. */
eplb_status_t eplb_gpu_sel_params(eplb_sel_params_t *p, const eplb_gpu_t *g,
                                  int64_t T, int L,
                                  const eplb_select_cfg_t *cfg,
                                  eplb_gpu_rows_t rows);

#ifdef __CUDACC__
/* Replica of one entry: the per-entry modes (hash, flatmod, random, local).
 * Same rules as kernels/select_cpu.c. */
/* lc/l2p: the maps of layer l (global or a shared-memory copy). */
__device__ __forceinline__ int eplb_dev_select_in(const eplb_sel_params_t &p,
                                                  const int32_t *lc,
                                                  const int32_t *l2p,
                                                  int64_t i, int l, int k,
                                                  int K, int e)
{
    if (e < 0 || e >= p.E)
        return -1;
    uint32_t t = p.trow ? p.trow[i] : (uint32_t)(i % p.block);
    const int32_t *row = l2p + (size_t)e * p.MR;
    int c = lc[e];
    int R = c < 1 ? 1 : c > p.MR ? p.MR : c, rep = 0;
    switch (p.mode) {
    case EPLB_SELECT_HASH:
        rep = (int)(eplb_rule_hash(t) % (uint32_t)R);
        break;
    case EPLB_SELECT_FLATMOD:
        rep = (int)(((uint64_t)t * K + k) % (uint64_t)R);
        break;
    case EPLB_SELECT_RANDOM:
        rep = eplb_rule_random_rep(
            eplb_rule_random_row(p.seed, p.step, l, t), k, R);
        break;
    case EPLB_SELECT_LOCAL: {
        int rank = p.trank ? p.trank[i] : (int)(i / p.block);
        int gpu = (int)((int64_t)rank * p.D / p.num_ranks);
        rep = c < 1 ? 0
                    : eplb_rule_local_rep(row, R, t, gpu, gpu / p.gpn, p.spg,
                                          p.gpn);
        break;
    }
    default:
        break;
    }
    int ph = row[rep];
    return ph < 0 || ph >= p.P ? -1 : ph;
}

__device__ __forceinline__ int eplb_dev_select(const eplb_sel_params_t &p,
                                               int64_t i, int l, int k,
                                               int K, int e)
{
    return eplb_dev_select_in(p, p.logcnt + (size_t)l * p.E,
                              p.log2phy + (size_t)l * p.E * p.MR, i, l, k,
                              K, e);
}
#endif

/* Launchers defined in select.cu, used by gpu.cu and route.cu. */
eplb_status_t eplb_gpu_launch_select(eplb_gpu_t *g, int32_t *d_phys,
                                     int32_t *d_counts, const int32_t *d_ids,
                                     int64_t T, int L, int K,
                                     const eplb_sel_params_t *p);

#endif
