// gpu.cu - the GPU handle: device, stream, memory, replica maps, the
// synchronous host-pointer wrappers, replay staging and benchmark timing.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <vector>

#include "decimal.h"
#include "gpu_impl.h"

eplb_status_t eplb_cuda_fail(cudaError_t e, const char *what, const char *file,
                             int line)
{
    (void)cudaGetLastError(); // clear a non-sticky error
    return eplb_error_set(EPLB_ERR_CUDA, "%s:%d: %s: %s", file, line, what,
                          cudaGetErrorString(e));
}

extern "C" int eplb_gpu_built(void) { return 1; }

eplb_status_t eplb_cuda_device_count(int *out)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        /* without a driver the runtime says "CUDA driver version is
         * insufficient", which reads like a version mismatch */
        const int driver = access("/proc/driver/nvidia/version", F_OK) == 0;
        return eplb_error_set(EPLB_ERR_NO_DEVICE, "no usable GPU (%s)",
                              e == cudaErrorInsufficientDriver && !driver
                                  ? "no NVIDIA driver loaded on this machine"
                              : e != cudaSuccess ? cudaGetErrorString(e)
                                                 : "no device");
    }
    *out = n;
    return EPLB_OK;
}

extern "C" eplb_status_t eplb_gpu_open(eplb_gpu_t **out, int device)
{
    int n = 0;
    EPLB_CHECK(eplb_cuda_device_count(&n));
    if (device < 0)
        device = 0;
    if (device >= n)
        return eplb_error_set(EPLB_ERR_NO_DEVICE, "GPU %d asked for, %d present", device, n);
    eplb_status_t st = EPLB_OK;
    eplb_gpu_t *g = (eplb_gpu_t *)calloc(1, sizeof *g);
    if (!g)
        return eplb_error_set(EPLB_ERR_NOMEM, "gpu open: out of memory");
    cudaDeviceProp prop;
    EPLB_CUDA_CHECK_GOTO(cudaSetDevice(device), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaGetDeviceProperties(&prop, device), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), st, err);
    g->device = device;
    g->num_sms = prop.multiProcessorCount;
    g->smem_optin = prop.sharedMemPerBlockOptin;
    {
        // timing and diagnostic switches (docs/environment.md); a value
        // out of range is the default
        g->diag = (int)eplb_env_int("EPLB_FUSED_DIAG", 0, 7, 0); // bench diagnostics only
        g->carveout = (int)eplb_env_int("EPLB_SEG_CARVEOUT", 0, 100, -1);
        eplb_gpu_set_seg_setup(g, (int)eplb_env_int("EPLB_SEG_SETUP", 0, 3, -1));
        g->seg_lanes = (int)eplb_env_int("EPLB_SEG_LANES", 8, 16, 0);
        g->seg_bulk = (int)eplb_env_int("EPLB_SEG_BULK", 0, 1, 1);
        g->direct_max = eplb_env_int("EPLB_DIRECT_MAX", 0, INT64_MAX, -1); // 0: never direct
        eplb_gpu_set_count_stripes(g, (int)eplb_env_int("EPLB_COUNT_STRIPES", 0, 1 << 20, 0));
    }
    g->cc_major = prop.major;
    snprintf(g->name, sizeof g->name, "%s, sm_%d%d, %d SMs", prop.name, prop.major,
             prop.minor, prop.multiProcessorCount);
    *out = g;
    return EPLB_OK;
err:
    free(g);
    return st;
}

extern "C" void eplb_gpu_close(eplb_gpu_t *g)
{
    if (!g)
        return;
    cudaStreamSynchronize(g->stream);
    cudaFree(g->maps.logcnt);
    cudaFree(g->maps.log2phy);
    cudaFree(g->maps.packed);
    cudaFree(g->maps.hhead);
    cudaFree(g->scratch);
    cudaStreamDestroy(g->stream);
    free(g);
}

extern "C" const char *eplb_gpu_name(const eplb_gpu_t *g) { return g ? g->name : "none"; }

extern "C" void eplb_gpu_set_route_variant(eplb_gpu_t *g, int variant)
{
    if (g)
        g->variant = variant;
}

extern "C" int eplb_gpu_set_count_stripes(eplb_gpu_t *g, int n)
{
    if (!g)
        return 0;
    const int old = g->count_stripes;
    g->count_stripes = n > 0 ? n : 0;
    return old;
}

extern "C" int eplb_gpu_set_seg_setup(eplb_gpu_t *g, int setup)
{
    if (!g)
        return -1;
    const int old = g->seg_setup;
    g->seg_setup = setup >= 0 && setup <= 3 ? setup : -1;
    return old;
}

extern "C" eplb_status_t eplb_gpu_alloc(eplb_gpu_t *g, void **dptr, size_t bytes)
{
    (void)g;
    void *p = NULL;
    EPLB_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
    *dptr = p;
    return EPLB_OK;
}

extern "C" void eplb_gpu_free(eplb_gpu_t *g, void *dptr)
{
    (void)g;
    if (dptr)
        cudaFree(dptr);
}

extern "C" eplb_status_t eplb_gpu_host_alloc(eplb_gpu_t *g, void **hptr, size_t bytes)
{
    (void)g;
    void *p = NULL;
    EPLB_CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1));
    *hptr = p;
    return EPLB_OK;
}

extern "C" void eplb_gpu_host_free(eplb_gpu_t *g, void *hptr)
{
    (void)g;
    if (hptr)
        cudaFreeHost(hptr);
}

extern "C" eplb_status_t eplb_gpu_copy(eplb_gpu_t *g, void *dst, const void *src,
                                       size_t bytes)
{
    if (bytes)
        EPLB_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, g->stream));
    return EPLB_OK;
}

extern "C" eplb_status_t eplb_gpu_memset(eplb_gpu_t *g, void *dptr, int byte, size_t bytes)
{
    if (bytes)
        EPLB_CUDA_CHECK(cudaMemsetAsync(dptr, byte, bytes, g->stream));
    return EPLB_OK;
}

extern "C" eplb_status_t eplb_gpu_sync(eplb_gpu_t *g)
{
    EPLB_CUDA_CHECK(cudaStreamSynchronize(g->stream));
    EPLB_CUDA_CHECK(cudaGetLastError());
    return EPLB_OK;
}

// Uploads by cudaMemcpy from pageable memory (and cudaMemset) are on the
// legacy stream and may still be landing when cudaMemcpy returns; the
// kernels run on non-blocking streams (the handle's, the stages'), which
// do not wait for them.  Every upload before a launch ends with this wait:
// without it a poisoned output's upload overwrote entries the kernel had
// already written (gpu_tests, run 97: 2384 of 210000 rr-block entries).
static eplb_status_t uploads_done()
{
    EPLB_CUDA_CHECK(cudaDeviceSynchronize());
    return EPLB_OK;
}

extern "C" eplb_status_t eplb_gpu_set_maps(eplb_gpu_t *g, const eplb_layer_map_t *maps, int L)
{
    if (!g || !maps || L < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu set_maps: NULL or L < 1");
    const eplb_layer_map_t *m0 = &maps[0];
    for (int l = 0; l < L; l++) {
        const eplb_layer_map_t *m = &maps[l];
        eplb_status_t st = eplb_layer_map_check(m);
        if (st != EPLB_OK) {
            char why[512]; // the message buffer is also the output
            snprintf(why, sizeof why, "%s", eplb_error_last());
            return eplb_error_set(st, "gpu set_maps: layer %d: %s", l, why);
        }
        if (m->num_logical != m0->num_logical || m->num_physical != m0->num_physical ||
            m->num_gpus != m0->num_gpus || m->num_nodes != m0->num_nodes ||
            m->max_replicas != m0->max_replicas)
            return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                  "gpu set_maps: layer %d has another shape than layer 0", l);
    }
    const int E = m0->num_logical, MR = m0->max_replicas;
    std::vector<int32_t> lc((size_t)L * E), l2p((size_t)L * E * MR);
    int max_lc = 0;
    for (int l = 0; l < L; l++) {
        for (int e = 0; e < E; e++)
            max_lc = std::max(max_lc, (int)maps[l].logcnt[e]);
        memcpy(&lc[(size_t)l * E], maps[l].logcnt, sizeof(int32_t) * E);
        memcpy(&l2p[(size_t)l * E * MR], maps[l].log2phy, sizeof(int32_t) * E * MR);
    }
    const int S = (MR + 1 + 3) & ~3;
    std::vector<int32_t> pk((size_t)L * E * S, -1);
    for (size_t r = 0; r < (size_t)L * E; r++) {
        pk[r * S] = lc[r];
        memcpy(&pk[r * S + 1], &l2p[r * MR], sizeof(int32_t) * MR);
    }
    // heads of the fused hash path (kernels/rules.h), where slots fit 16
    // bits and replica counts 8
    const int P = m0->num_physical;
    const bool hh_ok = P < 0xffff && MR <= 255;
    std::vector<eplb_hhead_t> hh(hh_ok ? (size_t)L * E : 0);
    for (size_t r = 0; r < hh.size(); r++)
        hh[r] = eplb_hhead_make(&l2p[r * MR], lc[r], MR, P);
    eplb_gpu_maps_t *m = &g->maps;
    // old maps may be in use, also by stages on their own streams
    EPLB_CUDA_CHECK(cudaDeviceSynchronize());
    if (m->L != L || m->E != E || m->MR != MR) {
        cudaFree(m->logcnt);
        cudaFree(m->log2phy);
        cudaFree(m->packed);
        cudaFree(m->hhead);
        m->logcnt = m->log2phy = m->packed = NULL;
        m->hhead = NULL;
        m->L = 0;
        EPLB_CUDA_CHECK(cudaMalloc(&m->logcnt, lc.size() * sizeof(int32_t)));
        EPLB_CUDA_CHECK(cudaMalloc(&m->log2phy, l2p.size() * sizeof(int32_t)));
        EPLB_CUDA_CHECK(cudaMalloc(&m->packed, pk.size() * sizeof(int32_t)));
    }
    if (!hh_ok || !m->hhead) {
        // P can change at the same L, E, MR: the heads follow P
        cudaFree(m->hhead);
        m->hhead = NULL;
        if (hh_ok)
            EPLB_CUDA_CHECK(cudaMalloc(&m->hhead, hh.size() * sizeof(eplb_hhead_t)));
    }
    EPLB_CUDA_CHECK(cudaMemcpy(m->logcnt, lc.data(), lc.size() * sizeof(int32_t),
                               cudaMemcpyHostToDevice));
    EPLB_CUDA_CHECK(cudaMemcpy(m->log2phy, l2p.data(), l2p.size() * sizeof(int32_t),
                               cudaMemcpyHostToDevice));
    EPLB_CUDA_CHECK(cudaMemcpy(m->packed, pk.data(), pk.size() * sizeof(int32_t),
                               cudaMemcpyHostToDevice));
    if (hh_ok)
        EPLB_CUDA_CHECK(cudaMemcpy(m->hhead, hh.data(), hh.size() * sizeof(eplb_hhead_t),
                                   cudaMemcpyHostToDevice));
    EPLB_CHECK(uploads_done());
    m->S = S;
    m->L = L;
    m->E = E;
    m->P = m0->num_physical;
    m->D = m0->num_gpus;
    m->N = m0->num_nodes;
    m->MR = MR;
    m->max_logcnt = max_lc;
    return EPLB_OK;
}

// ---- synchronous wrappers ----------------------------------------------

namespace {

// Device buffers of one wrapper call, freed together.
struct DevBufs {
    std::vector<void *> p;
    ~DevBufs()
    {
        for (void *x : p)
            cudaFree(x);
    }
    eplb_status_t get(void **out, size_t bytes)
    {
        void *x = NULL;
        EPLB_CUDA_CHECK(cudaMalloc(&x, bytes ? bytes : 1));
        p.push_back(x);
        *out = x;
        return EPLB_OK;
    }
};

// Upload token rows when the config has a host src_rank.
eplb_status_t upload_rows(DevBufs &b, eplb_gpu_t *g, eplb_gpu_rows_t *rows, int64_t T,
                          const eplb_select_cfg_t *cfg)
{
    rows->d_trow = NULL;
    rows->d_trank = NULL;
    if (!cfg->src_rank)
        return EPLB_OK;
    int nr = cfg->num_ranks > 0 ? cfg->num_ranks : g->maps.D;
    std::vector<uint32_t> trow((size_t)T + 1);
    std::vector<uint16_t> trank((size_t)T + 1);
    EPLB_CHECK(eplb_select_token_rows(trow.data(), trank.data(), T, nr, cfg->src_rank));
    void *dr, *dk;
    EPLB_CHECK(b.get(&dr, sizeof(uint32_t) * T));
    EPLB_CHECK(b.get(&dk, sizeof(uint16_t) * T));
    EPLB_CUDA_CHECK(cudaMemcpy(dr, trow.data(), sizeof(uint32_t) * T, cudaMemcpyHostToDevice));
    EPLB_CUDA_CHECK(cudaMemcpy(dk, trank.data(), sizeof(uint16_t) * T, cudaMemcpyHostToDevice));
    EPLB_CHECK(uploads_done());
    rows->d_trow = (const uint32_t *)dr;
    rows->d_trank = (const uint16_t *)dk;
    return EPLB_OK;
}

} // namespace

extern "C" eplb_status_t eplb_gpu_route_host(eplb_gpu_t *g, int32_t *ids, float *weights,
                                             const void *logits, eplb_dtype_t dt, int64_t T,
                                             int L, const float *bias,
                                             const eplb_route_cfg_t *cfg)
{
    EPLB_CHECK(eplb_route_cfg_check(cfg));
    if (!g || !ids || !logits || T < 0 || L < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu route: NULL argument or bad shape");
    const int E = cfg->num_experts, K = cfg->top_k;
    const size_t nl = (size_t)T * L * E * eplb_dtype_size(dt), no = (size_t)T * L * K;
    DevBufs b;
    void *dl, *di, *dw = NULL, *db = NULL;
    EPLB_CHECK(b.get(&dl, nl));
    EPLB_CHECK(b.get(&di, no * 4));
    if (weights)
        EPLB_CHECK(b.get(&dw, no * 4));
    if (bias) {
        EPLB_CHECK(b.get(&db, (size_t)L * E * 4));
        EPLB_CUDA_CHECK(cudaMemcpy(db, bias, (size_t)L * E * 4, cudaMemcpyHostToDevice));
    }
    EPLB_CUDA_CHECK(cudaMemcpy(dl, logits, nl, cudaMemcpyHostToDevice));
    // outputs start as the caller's buffers
    EPLB_CUDA_CHECK(cudaMemcpy(di, ids, no * 4, cudaMemcpyHostToDevice));
    if (weights)
        EPLB_CUDA_CHECK(cudaMemcpy(dw, weights, no * 4, cudaMemcpyHostToDevice));
    EPLB_CHECK(uploads_done());
    EPLB_CHECK(eplb_gpu_route(g, (int32_t *)di, (float *)dw, dl, dt, T, L, (const float *)db, cfg));
    EPLB_CHECK(eplb_gpu_sync(g));
    EPLB_CUDA_CHECK(cudaMemcpy(ids, di, no * 4, cudaMemcpyDeviceToHost));
    if (weights)
        EPLB_CUDA_CHECK(cudaMemcpy(weights, dw, no * 4, cudaMemcpyDeviceToHost));
    return EPLB_OK;
}

extern "C" eplb_status_t eplb_gpu_select_record_host(eplb_gpu_t *g, int32_t *phys,
                                                     int32_t *counts, const int32_t *ids,
                                                     int64_t T, int L, int K,
                                                     const eplb_layer_map_t *maps,
                                                     const eplb_select_cfg_t *cfg)
{
    if (!g || !counts || !ids || !maps || !cfg || T < 0 || L < 1 || K < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu select: NULL argument or bad shape");
    EPLB_CHECK(eplb_gpu_set_maps(g, maps, L));
    const int P = maps[0].num_physical;
    const size_t no = (size_t)T * L * K;
    DevBufs b;
    void *di, *dp = NULL, *dc;
    eplb_gpu_rows_t rows;
    EPLB_CHECK(upload_rows(b, g, &rows, T, cfg));
    EPLB_CHECK(b.get(&di, no * 4));
    if (phys)
        EPLB_CHECK(b.get(&dp, no * 4));
    EPLB_CHECK(b.get(&dc, (size_t)L * P * 4));
    EPLB_CUDA_CHECK(cudaMemcpy(di, ids, no * 4, cudaMemcpyHostToDevice));
    EPLB_CUDA_CHECK(cudaMemcpy(dc, counts, (size_t)L * P * 4, cudaMemcpyHostToDevice));
    if (phys) // starts as the caller's buffer
        EPLB_CUDA_CHECK(cudaMemcpy(dp, phys, no * 4, cudaMemcpyHostToDevice));
    EPLB_CHECK(uploads_done());
    EPLB_CHECK(eplb_gpu_select_record(g, (int32_t *)dp, (int32_t *)dc, (const int32_t *)di,
                                      T, L, K, cfg, rows));
    EPLB_CHECK(eplb_gpu_sync(g));
    if (phys)
        EPLB_CUDA_CHECK(cudaMemcpy(phys, dp, no * 4, cudaMemcpyDeviceToHost));
    EPLB_CUDA_CHECK(cudaMemcpy(counts, dc, (size_t)L * P * 4, cudaMemcpyDeviceToHost));
    return EPLB_OK;
}

extern "C" eplb_status_t eplb_gpu_fused_host(eplb_gpu_t *g, int32_t *ids, float *weights,
                                             int32_t *phys, int32_t *counts,
                                             const void *logits, eplb_dtype_t dt, int64_t T,
                                             int L, const float *bias,
                                             const eplb_route_cfg_t *rcfg,
                                             const eplb_layer_map_t *maps,
                                             const eplb_select_cfg_t *scfg)
{
    EPLB_CHECK(eplb_route_cfg_check(rcfg));
    if (!g || (!ids && !phys) || !counts || !logits || !maps || !scfg || T < 0 || L < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu fused: NULL argument or bad shape");
    /* without ids, the per-entry modes write physical ids only (the batch
     * modes route to device ids first in any case) */
    const bool ids_dev = ids || scfg->mode == EPLB_SELECT_RR_BLOCK ||
                         scfg->mode == EPLB_SELECT_BALANCED;
    EPLB_CHECK(eplb_gpu_set_maps(g, maps, L));
    const int E = rcfg->num_experts, K = rcfg->top_k, P = maps[0].num_physical;
    const size_t nl = (size_t)T * L * E * eplb_dtype_size(dt), no = (size_t)T * L * K;
    DevBufs b;
    void *dl, *di = NULL, *dw = NULL, *dp = NULL, *dc, *db = NULL;
    eplb_gpu_rows_t rows;
    EPLB_CHECK(upload_rows(b, g, &rows, T, scfg));
    EPLB_CHECK(b.get(&dl, nl));
    if (ids_dev)
        EPLB_CHECK(b.get(&di, no * 4));
    if (weights)
        EPLB_CHECK(b.get(&dw, no * 4));
    if (phys)
        EPLB_CHECK(b.get(&dp, no * 4));
    // the count stripes: the caller's counts in stripe 0, the others zero
    const size_t nc = eplb_count_len(L, P) * 4;
    EPLB_CHECK(b.get(&dc, nc));
    if (bias) {
        EPLB_CHECK(b.get(&db, (size_t)L * E * 4));
        EPLB_CUDA_CHECK(cudaMemcpy(db, bias, (size_t)L * E * 4, cudaMemcpyHostToDevice));
    }
    EPLB_CUDA_CHECK(cudaMemcpy(dl, logits, nl, cudaMemcpyHostToDevice));
    EPLB_CUDA_CHECK(cudaMemset(dc, 0, nc));
    EPLB_CUDA_CHECK(cudaMemcpy(dc, counts, (size_t)L * P * 4, cudaMemcpyHostToDevice));
    // outputs start as the caller's buffers (device-only ids: all ones)
    if (ids)
        EPLB_CUDA_CHECK(cudaMemcpy(di, ids, no * 4, cudaMemcpyHostToDevice));
    else if (di)
        EPLB_CUDA_CHECK(cudaMemset(di, 0xff, no * 4));
    if (weights)
        EPLB_CUDA_CHECK(cudaMemcpy(dw, weights, no * 4, cudaMemcpyHostToDevice));
    if (phys)
        EPLB_CUDA_CHECK(cudaMemcpy(dp, phys, no * 4, cudaMemcpyHostToDevice));
    EPLB_CHECK(uploads_done());
    EPLB_CHECK(eplb_gpu_fused(g, (int32_t *)di, (float *)dw, (int32_t *)dp, (int32_t *)dc, dl,
                              dt, T, L, (const float *)db, rcfg, scfg, rows));
    // the stripes folded into stripe 0 on the device, as the stages do,
    // so that one [L][P] copy comes back
    EPLB_CHECK(eplb_gpu_counts_fold(g, (int32_t *)dc, (const int32_t *)dc, L, P));
    EPLB_CHECK(eplb_gpu_sync(g));
    if (ids)
        EPLB_CUDA_CHECK(cudaMemcpy(ids, di, no * 4, cudaMemcpyDeviceToHost));
    if (weights)
        EPLB_CUDA_CHECK(cudaMemcpy(weights, dw, no * 4, cudaMemcpyDeviceToHost));
    if (phys)
        EPLB_CUDA_CHECK(cudaMemcpy(phys, dp, no * 4, cudaMemcpyDeviceToHost));
    EPLB_CUDA_CHECK(cudaMemcpy(counts, dc, (size_t)L * P * 4, cudaMemcpyDeviceToHost));
    return EPLB_OK;
}

// ---- replay staging ------------------------------------------------------

// n bytes of pinned host memory in transparent 2 MiB pages: ordinary memory
// (eplb_huge_alloc, touched) then registered with CUDA.  Opening the
// replay's two stages (67 MB of bf16 logits each) took 0.045-0.049 s this
// way and 0.077-0.096 s with cudaMallocHost's 4 KiB pages (run 62).  NULL
// (the caller pins the usual way) where that fails or with
// EPLB_STAGE_HUGEPAGES=0; *reg: the size registered (0: none).
static void *pin_huge(size_t n, size_t *reg)
{
    *reg = 0;
    if (eplb_env_off("EPLB_STAGE_HUGEPAGES"))
        return NULL;
    size_t sz;
    void *p = eplb_huge_alloc(n, &sz);
    if (!p)
        return NULL;
    memset(p, 0, sz);
    if (cudaHostRegister(p, sz, cudaHostRegisterDefault) != cudaSuccess) {
        (void)cudaGetLastError();
        free(p);
        return NULL;
    }
    *reg = sz;
    return p;
}

struct eplb_gpu_stage {
    eplb_gpu_t *g;
    cudaStream_t stream;
    cudaEvent_t done;
    int64_t max_tokens;
    size_t dt_bytes; // bytes per logit of the dtype it was opened for
    int L, E, K, P;
    int64_t T; // of the last submit
    void *h_logits;
    size_t h_logits_reg; // > 0: h_logits is ordinary memory of this size, registered (pin_huge)
    int32_t *h_ids, *h_phys, *h_counts;
    float *h_w;
    void *d_logits;
    // d_counts: the count stripes, kept zeroed between steps (the fold
    // clears them; dirty: a submit failed between the kernel and the fold,
    // the next clears first); d_sum: their sum, [L][P]
    int32_t *d_ids, *d_phys, *d_counts, *d_sum;
    bool dirty;
    float *d_w, *d_bias;
};

extern "C" void eplb_gpu_stage_close(eplb_gpu_stage_t *s)
{
    if (!s)
        return;
    if (s->stream)
        cudaStreamSynchronize(s->stream);
    if (s->h_logits_reg) {
        cudaHostUnregister(s->h_logits);
        free(s->h_logits);
    } else {
        cudaFreeHost(s->h_logits);
    }
    cudaFreeHost(s->h_ids);
    cudaFreeHost(s->h_phys);
    cudaFreeHost(s->h_counts);
    cudaFreeHost(s->h_w);
    cudaFree(s->d_logits);
    cudaFree(s->d_ids);
    cudaFree(s->d_phys);
    cudaFree(s->d_counts);
    cudaFree(s->d_sum);
    cudaFree(s->d_w);
    cudaFree(s->d_bias);
    if (s->done)
        cudaEventDestroy(s->done);
    if (s->stream)
        cudaStreamDestroy(s->stream);
    free(s);
}

extern "C" eplb_status_t eplb_gpu_stage_open(eplb_gpu_stage_t **out, eplb_gpu_t *g,
                                             int64_t max_tokens, eplb_dtype_t dt, int L, int E,
                                             int K, int P, const float *bias)
{
    if (!g || max_tokens < 1 || L < 1 || E < 1 || K < 1 || P < 1 ||
        (dt != EPLB_DTYPE_F32 && dt != EPLB_DTYPE_F16 && dt != EPLB_DTYPE_BF16))
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu stage: bad shape");
    eplb_status_t st = EPLB_OK;
    eplb_gpu_stage_t *s = (eplb_gpu_stage_t *)calloc(1, sizeof *s);
    if (!s)
        return eplb_error_set(EPLB_ERR_NOMEM, "gpu stage: out of memory");
    s->g = g;
    s->max_tokens = max_tokens;
    s->dt_bytes = eplb_dtype_size(dt);
    s->L = L, s->E = E, s->K = K, s->P = P;
    // the logits in the dtype they come in (pinning f32-sized buffers for
    // bf16 rows doubled the time of opening a stage)
    const size_t nl = (size_t)max_tokens * L * E * s->dt_bytes,
                 no = (size_t)max_tokens * L * K * 4, nc = (size_t)L * P * 4,
                 ncs = eplb_count_len(L, P) * 4;
    EPLB_CUDA_CHECK_GOTO(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming), st, err);
    s->h_logits = pin_huge(nl, &s->h_logits_reg);
    if (!s->h_logits)
        EPLB_CUDA_CHECK_GOTO(cudaMallocHost(&s->h_logits, nl), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMallocHost((void **)&s->h_ids, no), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMallocHost((void **)&s->h_phys, no), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMallocHost((void **)&s->h_w, no), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMallocHost((void **)&s->h_counts, nc), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMalloc(&s->d_logits, nl), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMalloc((void **)&s->d_ids, no), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMalloc((void **)&s->d_phys, no), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMalloc((void **)&s->d_w, no), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMalloc((void **)&s->d_counts, ncs), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMalloc((void **)&s->d_sum, nc), st, err);
    EPLB_CUDA_CHECK_GOTO(cudaMemsetAsync(s->d_counts, 0, ncs, s->stream), st, err);
    if (bias) {
        EPLB_CUDA_CHECK_GOTO(cudaMalloc((void **)&s->d_bias, (size_t)L * E * 4), st, err);
        EPLB_CUDA_CHECK_GOTO(cudaMemcpy(s->d_bias, bias, (size_t)L * E * 4,
                                        cudaMemcpyHostToDevice),
                             st, err);
        EPLB_CHECK_GOTO(uploads_done(), st, err);
    }
    *out = s;
    return EPLB_OK;
err:
    eplb_gpu_stage_close(s);
    return st;
}

extern "C" void *eplb_gpu_stage_logits(eplb_gpu_stage_t *s) { return s ? s->h_logits : NULL; }

extern "C" eplb_status_t eplb_gpu_stage_submit(eplb_gpu_stage_t *s, eplb_dtype_t dt, int64_t T,
                                               const eplb_route_cfg_t *rcfg,
                                               const eplb_select_cfg_t *scfg)
{
    if (!s || T < 0 || T > s->max_tokens || !rcfg)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu stage: T=%lld above max_tokens",
                              (long long)T);
    if (eplb_dtype_size(dt) > s->dt_bytes)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu stage: %s rows in a stage opened for narrower ones",
                              eplb_dtype_name(dt));
    if (rcfg->num_experts != s->E || rcfg->top_k != s->K || (scfg && s->g->maps.P != s->P))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu stage: shape differs from the one it was opened for");
    if (scfg && scfg->src_rank)
        return eplb_error_set(EPLB_ERR_UNSUPPORTED,
                              "gpu stage: src_rank is not supported by the staged path");
    eplb_gpu_t *g = s->g;
    // balanced mode plans in the handle's one scratch buffer: let a stage
    // still in flight finish first (no overlap for this mode)
    if (scfg && scfg->mode == EPLB_SELECT_BALANCED)
        EPLB_CUDA_CHECK(cudaDeviceSynchronize());
    cudaStream_t saved = g->stream;
    g->stream = s->stream; // the launchers enqueue on g->stream
    eplb_status_t st = EPLB_OK;
    const size_t nl = (size_t)T * s->L * s->E * eplb_dtype_size(dt),
                 no = (size_t)T * s->L * s->K * 4, nc = (size_t)s->L * s->P * 4,
                 ncs = eplb_count_len(s->L, s->P) * 4;
    eplb_gpu_rows_t rows = {NULL, NULL};
    s->T = T;
    EPLB_CUDA_CHECK_GOTO(cudaMemcpyAsync(s->d_logits, s->h_logits, nl,
                                         cudaMemcpyHostToDevice, s->stream),
                         st, out);
    if (!scfg) { // routing only: the ids
        EPLB_CHECK_GOTO(eplb_gpu_route(g, s->d_ids, NULL, s->d_logits, dt, T, s->L, s->d_bias,
                                       rcfg),
                        st, out);
        EPLB_CUDA_CHECK_GOTO(cudaMemcpyAsync(s->h_ids, s->d_ids, no, cudaMemcpyDeviceToHost,
                                             s->stream),
                             st, out);
        EPLB_CUDA_CHECK_GOTO(cudaEventRecord(s->done, s->stream), st, out);
        goto out;
    }
    // the stripes are zero here (zeroed at open and by the last fold): a
    // memset before every step and a fold that only reads made the step
    // 0.8-2.4 us slower at T <= 4096 (bench kernels' step, runs 109-111)
    if (s->dirty)
        EPLB_CUDA_CHECK_GOTO(cudaMemsetAsync(s->d_counts, 0, ncs, s->stream), st, out);
    s->dirty = true;
    EPLB_CHECK_GOTO(eplb_gpu_fused(g, s->d_ids, s->d_w, s->d_phys, s->d_counts, s->d_logits,
                                   dt, T, s->L, s->d_bias, rcfg, scfg, rows),
                    st, out);
    // the count stripes summed into d_sum, which goes out, and cleared
    EPLB_CHECK_GOTO(eplb_gpu_counts_fold_clear(g, s->d_sum, s->d_counts, s->L, s->P), st, out);
    s->dirty = false;
    EPLB_CUDA_CHECK_GOTO(cudaMemcpyAsync(s->h_ids, s->d_ids, no, cudaMemcpyDeviceToHost,
                                         s->stream),
                         st, out);
    EPLB_CUDA_CHECK_GOTO(cudaMemcpyAsync(s->h_w, s->d_w, no, cudaMemcpyDeviceToHost,
                                         s->stream),
                         st, out);
    EPLB_CUDA_CHECK_GOTO(cudaMemcpyAsync(s->h_phys, s->d_phys, no, cudaMemcpyDeviceToHost,
                                         s->stream),
                         st, out);
    EPLB_CUDA_CHECK_GOTO(cudaMemcpyAsync(s->h_counts, s->d_sum, nc,
                                         cudaMemcpyDeviceToHost, s->stream),
                         st, out);
    EPLB_CUDA_CHECK_GOTO(cudaEventRecord(s->done, s->stream), st, out);
out:
    g->stream = saved;
    return st;
}

extern "C" eplb_status_t eplb_gpu_stage_wait(eplb_gpu_stage_t *s, const int32_t **ids,
                                             const float **weights, const int32_t **phys,
                                             const int32_t **counts)
{
    if (!s)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu stage: NULL");
    EPLB_CUDA_CHECK(cudaEventSynchronize(s->done));
    EPLB_CUDA_CHECK(cudaGetLastError());
    if (ids)
        *ids = s->h_ids;
    if (weights)
        *weights = s->h_w;
    if (phys)
        *phys = s->h_phys;
    if (counts)
        *counts = s->h_counts;
    return EPLB_OK;
}

// ---- benchmark timing ----------------------------------------------------

extern "C" eplb_status_t eplb_gpu_time_graph(eplb_gpu_t *g, double *median_us,
                                             eplb_status_t (*fn)(void *ctx, int i),
                                             void *ctx, int launches, int reps)
{
    if (!g || !fn || launches < 1 || reps < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu time_graph: bad arguments");
    eplb_status_t st = EPLB_OK;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    std::vector<double> t;
    EPLB_CUDA_CHECK_GOTO(cudaEventCreate(&e0), st, out);
    EPLB_CUDA_CHECK_GOTO(cudaEventCreate(&e1), st, out);
    // warm-up outside the graph (also reserves any scratch memory)
    for (int i = 0; i < launches; i++)
        EPLB_CHECK_GOTO(fn(ctx, i), st, out);
    EPLB_CHECK_GOTO(eplb_gpu_sync(g), st, out);
    EPLB_CUDA_CHECK_GOTO(cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeRelaxed),
                         st, out);
    for (int i = 0; i < launches; i++) {
        st = fn(ctx, i);
        if (st != EPLB_OK) {
            cudaStreamEndCapture(g->stream, &graph);
            goto out;
        }
    }
    EPLB_CUDA_CHECK_GOTO(cudaStreamEndCapture(g->stream, &graph), st, out);
    EPLB_CUDA_CHECK_GOTO(cudaGraphInstantiate(&exec, graph, 0), st, out);
    EPLB_CUDA_CHECK_GOTO(cudaGraphLaunch(exec, g->stream), st, out); // warm
    for (int r = 0; r < reps; r++) {
        float ms = 0;
        EPLB_CUDA_CHECK_GOTO(cudaEventRecord(e0, g->stream), st, out);
        EPLB_CUDA_CHECK_GOTO(cudaGraphLaunch(exec, g->stream), st, out);
        EPLB_CUDA_CHECK_GOTO(cudaEventRecord(e1, g->stream), st, out);
        EPLB_CUDA_CHECK_GOTO(cudaEventSynchronize(e1), st, out);
        EPLB_CUDA_CHECK_GOTO(cudaEventElapsedTime(&ms, e0, e1), st, out);
        t.push_back(ms * 1000.0 / launches);
    }
    std::sort(t.begin(), t.end());
    *median_us = t[t.size() / 2];
out:
    if (exec)
        cudaGraphExecDestroy(exec);
    if (graph)
        cudaGraphDestroy(graph);
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    return st;
}

namespace {
__global__ void empty_kernel() {}
} // namespace

extern "C" eplb_status_t eplb_gpu_empty(eplb_gpu_t *g)
{
    if (!g)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu empty: no handle");
    empty_kernel<<<1, 32, 0, g->stream>>>();
    EPLB_CUDA_CHECK(cudaGetLastError());
    return EPLB_OK;
}

extern "C" eplb_status_t eplb_gpu_bandwidth(eplb_gpu_t *g, double *gbps, size_t bytes)
{
    eplb_status_t st = EPLB_OK;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    std::vector<double> t;
    EPLB_CUDA_CHECK_GOTO(cudaMalloc(&a, bytes), st, out);
    EPLB_CUDA_CHECK_GOTO(cudaMalloc(&b, bytes), st, out);
    EPLB_CUDA_CHECK_GOTO(cudaMemsetAsync(a, 1, bytes, g->stream), st, out);
    EPLB_CUDA_CHECK_GOTO(cudaEventCreate(&e0), st, out);
    EPLB_CUDA_CHECK_GOTO(cudaEventCreate(&e1), st, out);
    for (int r = 0; r < 11; r++) {
        float ms = 0;
        EPLB_CUDA_CHECK_GOTO(cudaEventRecord(e0, g->stream), st, out);
        EPLB_CUDA_CHECK_GOTO(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, g->stream),
                             st, out);
        EPLB_CUDA_CHECK_GOTO(cudaEventRecord(e1, g->stream), st, out);
        EPLB_CUDA_CHECK_GOTO(cudaEventSynchronize(e1), st, out);
        EPLB_CUDA_CHECK_GOTO(cudaEventElapsedTime(&ms, e0, e1), st, out);
        if (r > 0)
            t.push_back(2.0 * (double)bytes / (ms * 1e-3) / 1e9);
    }
    std::sort(t.begin(), t.end());
    *gbps = t[t.size() / 2];
out:
    cudaFree(a);
    cudaFree(b);
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    return st;
}
