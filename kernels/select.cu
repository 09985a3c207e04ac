// select.cu - replica selection and load recording on the GPU.
//
// Per-entry modes (hash, flatmod, random, local): one thread per (token, k)
// entry of a layer.  rr-block and balanced need the ordinal of an entry
// among the entries of the same expert: one warp walks a chunk of 1024
// entries in 32 rounds of 32, __match_any_sync groups equal experts in a
// round and a per-warp shared counter per expert carries the count between
// rounds, so the ordinal is the entry's position in token order, exactly as
// the CPU reference counts it.  Recording: shared-memory histogram per
// block, then one global atomic per touched slot.
#include "gpu_impl.h"
#include "plan_flow.h"

namespace {

constexpr int kThreads = 256;
constexpr int kOrdWarps = 4; // warps (chunks) per block of the ordinal kernel

enum { ORD_RR = 0, ORD_COUNT = 1, ORD_BALANCED = 2 };

__global__ void __launch_bounds__(kThreads)
select_entry_kernel(int32_t *__restrict__ phys, int32_t *__restrict__ counts,
                    const int32_t *__restrict__ ids, int64_t T, int L, int K,
                    eplb_sel_params_t p, int use_hist)
{
    extern __shared__ int hist_s[];
    const int l = blockIdx.y;
    int *hist = use_hist ? hist_s : nullptr;
    int32_t *cnt = counts + (size_t)l * p.P;
    if (hist)
        for (int q = threadIdx.x; q < p.P; q += blockDim.x)
            hist[q] = 0;
    __syncthreads();
    const int64_t n = T * K;
    for (int64_t f = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; f < n;
         f += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = f / K;
        int k = (int)(f - i * K);
        size_t idx = ((size_t)i * L + l) * K + k;
        int ph = eplb_dev_select(p, i, l, k, K, ids[idx]);
        if (phys)
            phys[idx] = ph;
        eplb_dev_record(hist, cnt, ph);
    }
    if (hist)
        eplb_dev_hist_flush(hist, cnt, p.P);
}

// One warp per chunk of EPLB_RR_BLOCK entries of one layer.
//   ORD_RR:       rep = (ordinal in chunk + chunk) mod R
//   ORD_COUNT:    write the chunk's per-expert counts to cc[l][chunk][E]
//   ORD_BALANCED: ordinal = cc (exclusive prefix over chunks) + in-chunk
//                 ordinal; rep = first j with ordinal < cum[l][e][j]
__global__ void __launch_bounds__(kOrdWarps * 32)
select_ordinal_kernel(int32_t *__restrict__ phys, int32_t *__restrict__ counts,
                      const int32_t *__restrict__ ids, int64_t T, int L, int K,
                      eplb_sel_params_t p, int mode, int32_t *__restrict__ cc,
                      const int32_t *__restrict__ cum, int64_t nchunks,
                      int use_hist)
{
    extern __shared__ int smem[];
    const int l = blockIdx.y, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int *base = smem + w * p.E;                          // [E] per warp
    int *hist = use_hist ? smem + kOrdWarps * p.E : nullptr; // [P]
    int32_t *cnt = counts + (size_t)l * p.P;
    if (hist)
        for (int q = threadIdx.x; q < p.P; q += blockDim.x)
            hist[q] = 0;
    const int64_t n = T * K;
    const unsigned lt = (1u << lane) - 1u;
    for (int64_t c0 = (int64_t)blockIdx.x * kOrdWarps; c0 < nchunks;
         c0 += (int64_t)gridDim.x * kOrdWarps) {
        const int64_t c = c0 + w;
        __syncthreads(); // hist zeroed / previous chunk done with base
        for (int e = lane; e < p.E; e += 32)
            base[e] = 0;
        __syncwarp();
        if (c < nchunks) {
            for (int r = 0; r < EPLB_RR_BLOCK / 32; r++) {
                int64_t f = c * EPLB_RR_BLOCK + r * 32 + lane;
                int64_t i = f / K;
                int k = (int)(f - i * K);
                size_t idx = ((size_t)i * L + l) * K + k;
                int e = f < n ? ids[idx] : -1;
                int valid = e >= 0 && e < p.E;
                unsigned peers = __match_any_sync(0xffffffffu, valid ? e : -1);
                int ord = valid ? base[e] + __popc(peers & lt) : 0;
                __syncwarp();
                if (valid && (peers & lt) == 0)
                    base[e] += __popc(peers);
                __syncwarp();
                if (mode == ORD_COUNT || f >= n)
                    continue;
                int ph = -1;
                if (valid) {
                    const int32_t *row = p.packed + ((size_t)l * p.E + e) * p.S + 1;
                    int cn = row[-1];
                    int R = cn < 1 ? 1 : cn > p.MR ? p.MR : cn, rep = 0;
                    if (mode == ORD_RR) {
                        rep = (int)(((int64_t)ord + c) % R);
                    } else {
                        int64_t o = (int64_t)ord + cc[((size_t)l * nchunks + c) * p.E + e];
                        const int32_t *cu = cum + ((size_t)l * p.E + e) * p.MR;
                        while (rep < R - 1 && o >= cu[rep])
                            rep++;
                    }
                    ph = row[rep];
                    if (ph < 0 || ph >= p.P)
                        ph = -1;
                }
                if (phys)
                    phys[idx] = ph;
                eplb_dev_record(hist, cnt, ph);
            }
            if (mode == ORD_COUNT)
                for (int e = lane; e < p.E; e += 32)
                    cc[((size_t)l * nchunks + c) * p.E + e] = base[e];
        }
    }
    if (hist)
        eplb_dev_hist_flush(hist, cnt, p.P);
}

// Balanced, step 2: per (layer, expert) one warp turns the chunk counts into
// exclusive prefixes over chunks (warp scan, 32 chunks a round) and writes
// the expert's total.
__global__ void __launch_bounds__(kThreads)
balanced_prefix_kernel(int32_t *__restrict__ cc, int64_t *__restrict__ ntot,
                       int64_t nchunks, int E)
{
    const int l = blockIdx.y, lane = threadIdx.x & 31;
    const int e = blockIdx.x * (kThreads / 32) + (threadIdx.x >> 5);
    if (e >= E)
        return;
    int64_t carry = 0;
    for (int64_t c0 = 0; c0 < nchunks; c0 += 32) {
        int64_t c = c0 + lane;
        int32_t *x = cc + ((size_t)l * nchunks + c) * E + e;
        int64_t v = c < nchunks ? *x : 0, incl = v;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            int64_t o = __shfl_up_sync(0xffffffffu, incl, off);
            if (lane >= off)
                incl += o;
        }
        if (c < nchunks)
            *x = (int32_t)(carry + incl - v);
        carry += __shfl_sync(0xffffffffu, incl, 31);
    }
    if (lane == 0)
        ntot[(size_t)l * E + e] = carry;
}

// Balanced, step 3, one block per layer: fixed loads of single-replica
// experts, order of the others by (n desc, id asc), then sequential water
// filling by thread 0 with the CPU's rule and its least-peak step
// (plan_flow.h, in the layer's part of flow, eplb_plan_flow_bytes each).
// Writes cumulative quotas.
__global__ void __launch_bounds__(kThreads)
    balanced_plan_kernel(const int64_t *__restrict__ ntot, int32_t *__restrict__ cum,
                         eplb_sel_params_t p, unsigned char *flow, size_t flow_bytes)
{
    extern __shared__ int64_t sm64[];
    const int l = blockIdx.x;
    int64_t *n = sm64;                      // [E]
    int64_t *load = sm64 + p.E;             // [D]
    int *order = (int *)(sm64 + p.E + p.D); // [E]
    __shared__ int nmulti;
    const int32_t *lc = p.logcnt + (size_t)l * p.E;
    const int32_t *l2p = p.log2phy + (size_t)l * p.E * p.MR;
    int32_t *q = cum + (size_t)l * p.E * p.MR;
    for (int d = threadIdx.x; d < p.D; d += blockDim.x)
        load[d] = 0;
    if (threadIdx.x == 0)
        nmulti = 0;
    for (int e = threadIdx.x; e < p.E; e += blockDim.x) {
        n[e] = ntot[(size_t)l * p.E + e];
        for (int j = 0; j < p.MR; j++)
            q[(size_t)e * p.MR + j] = 0;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < p.E; e += blockDim.x) {
        if (lc[e] == 1) {
            q[(size_t)e * p.MR] = (int32_t)n[e];
            atomicAdd((unsigned long long *)&load[l2p[(size_t)e * p.MR] / p.spg],
                      (unsigned long long)n[e]);
        } else if (lc[e] > 1) {
            int rank = 0;
            for (int f = 0; f < p.E; f++)
                rank += lc[f] > 1 && (n[f] > n[e] || (n[f] == n[e] && f < e));
            order[rank] = e;
            atomicAdd(&nmulti, 1);
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int r = 0; r < nmulti; r++) {
            int e = order[r];
            eplb_rule_water_fill(q + (size_t)e * p.MR, l2p + (size_t)e * p.MR, lc[e], n[e],
                                 load, p.spg);
        }
        eplb_plan_min_peak(q, load, order, nmulti, n, l2p, lc, p.MR, p.E, p.P, p.D, p.spg,
                           flow + (size_t)l * flow_bytes);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < p.E; e += blockDim.x)
        for (int j = 1; j < p.MR; j++)
            q[(size_t)e * p.MR + j] += q[(size_t)e * p.MR + j - 1];
}

// the count stripes' sum (eplb_counts_fold's rule): one thread per
// counter, reading its S stripes (coalesced across the warp); out may be
// striped itself
__global__ void __launch_bounds__(kThreads)
    counts_fold_kernel(int32_t *out, int32_t *striped, int64_t n, size_t stride, int S,
                       bool clear)
{
    // all loads, then the stores: with a clear after each load (the
    // compiler cannot tell the stores from the next loads) the step of 61
    // layers took 10.4-41.6 us at T = 64-512 against 9.3-25.6 with a
    // memset and a plain fold, 7.5-23.6 this way (runs 110-111)
    for (int64_t i = blockIdx.x * (int64_t)kThreads + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * kThreads) {
        uint32_t c = 0;
#pragma unroll 8
        for (int s = 0; s < S; s++)
            c += (uint32_t)striped[(size_t)s * stride + i];
        out[i] = (int32_t)c;
        if (clear) {
#pragma unroll 8
            for (int s = 0; s < S; s++)
                striped[(size_t)s * stride + i] = 0;
        }
    }
}

} // namespace

eplb_status_t eplb_gpu_sel_params(eplb_sel_params_t *p, const eplb_gpu_t *g,
                                  int64_t T, int L,
                                  const eplb_select_cfg_t *cfg,
                                  eplb_gpu_rows_t rows)
{
    const eplb_gpu_maps_t *m = &g->maps;
    if (!m->logcnt)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu select: no maps (call eplb_gpu_set_maps)");
    if (L > m->L)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu select: L=%d but maps of %d layers", L, m->L);
    if ((int)cfg->mode < 0 || (int)cfg->mode > EPLB_SELECT_BALANCED)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu select: unknown mode %d", (int)cfg->mode);
    if ((rows.d_trow == NULL) != (rows.d_trank == NULL))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu select: d_trow and d_trank go together");
    int nr = cfg->num_ranks > 0 ? cfg->num_ranks : m->D;
    if (nr > 65536)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu select: num_ranks %d above 65536", nr);
    eplb_sel_params_t r;
    r.mode = (int)cfg->mode;
    r.seed = cfg->seed;
    r.step = cfg->step;
    r.num_ranks = nr;
    r.block = T > 0 ? (T + nr - 1) / nr : 1;
    r.bdiv = eplb_fastdiv_make(r.block <= 0x7fffffff ? (uint32_t)r.block : 1u);
    r.trow = rows.d_trow;
    r.trank = rows.d_trank;
    r.E = m->E;
    r.P = m->P;
    r.D = m->D;
    r.MR = m->MR;
    r.spg = m->P / m->D;
    r.gpn = m->D / m->N;
    r.logcnt = m->logcnt;
    r.log2phy = m->log2phy;
    r.packed = m->packed;
    r.hhead = m->hhead;
    r.S = m->S;
    *p = r;
    return EPLB_OK;
}

static eplb_status_t launch_check(const char *what)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return eplb_cuda_fail(e, what, __FILE__, __LINE__);
    return EPLB_OK;
}

static eplb_status_t scratch_reserve(eplb_gpu_t *g, size_t bytes)
{
    if (g->scratch_bytes >= bytes)
        return EPLB_OK;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    cudaStreamIsCapturing(g->stream, &cs);
    if (cs != cudaStreamCaptureStatusNone)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu select: balanced scratch of %zu bytes must "
                              "be reserved before graph capture (run once "
                              "first)",
                              bytes);
    EPLB_CUDA_CHECK(cudaStreamSynchronize(g->stream));
    if (g->scratch)
        cudaFree(g->scratch);
    g->scratch = NULL;
    g->scratch_bytes = 0;
    EPLB_CUDA_CHECK(cudaMalloc(&g->scratch, bytes));
    g->scratch_bytes = bytes;
    return EPLB_OK;
}

eplb_status_t eplb_gpu_launch_select(eplb_gpu_t *g, int32_t *d_phys,
                                     int32_t *d_counts, const int32_t *d_ids,
                                     int64_t T, int L, int K,
                                     const eplb_sel_params_t *p)
{
    if (T == 0)
        return EPLB_OK;
    const int64_t n = T * K;
    const int use_hist = p->P <= EPLB_GPU_SMEM_HIST_MAX;
    const size_t hist_bytes = use_hist ? (size_t)p->P * sizeof(int) : 0;
    if (p->mode <= EPLB_SELECT_LOCAL) {
        int64_t want = (n + kThreads * 2 - 1) / (kThreads * 2); // >= 2 per thread
        int64_t cap = (int64_t)g->num_sms * 2 / L + 1; // bounds histogram flushes
        int gx = (int)(want < cap ? want : cap);
        // direct global atomics only for tiny batches (see route.cu)
        const int hist_e = use_hist && n > 2 * (int64_t)p->P;
        select_entry_kernel<<<dim3(gx, L), kThreads, hist_e ? hist_bytes : 0, g->stream>>>(
            d_phys, d_counts, d_ids, T, L, K, *p, hist_e);
        return launch_check("select_entry_kernel");
    }
    const int64_t nchunks = (n + EPLB_RR_BLOCK - 1) / EPLB_RR_BLOCK;
    const size_t ord_smem = (size_t)kOrdWarps * p->E * sizeof(int) + hist_bytes;
    int64_t want = (nchunks + kOrdWarps - 1) / kOrdWarps;
    int64_t cap = (int64_t)g->num_sms * 8 / L + 1;
    int gx = (int)(want < cap ? want : cap);
    if (p->mode == EPLB_SELECT_RR_BLOCK) {
        select_ordinal_kernel<<<dim3(gx, L), kOrdWarps * 32, ord_smem, g->stream>>>(
            d_phys, d_counts, d_ids, T, L, K, *p, ORD_RR, nullptr, nullptr,
            nchunks, use_hist);
        return launch_check("select_ordinal_kernel(rr-block)");
    }
    // balanced: counts per chunk, plan, assign
    if (g->maps.max_logcnt > EPLB_PLAN_MAX_R)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--select balanced: an expert has %d replicas, more than the "
                              "%d the balanced plan takes (fewer --replicas, or another "
                              "--select)",
                              g->maps.max_logcnt, EPLB_PLAN_MAX_R);
    size_t cc_bytes = (size_t)L * nchunks * p->E * sizeof(int32_t);
    size_t q_bytes = ((size_t)L * p->E * p->MR * sizeof(int32_t) + 7) & ~(size_t)7;
    size_t n_bytes = (size_t)L * p->E * sizeof(int64_t);
    cc_bytes = (cc_bytes + 7) & ~(size_t)7;
    const size_t f_bytes = (eplb_plan_flow_bytes(p->E, p->P, p->D) + 15) & ~(size_t)15;
    EPLB_CHECK(scratch_reserve(g, cc_bytes + q_bytes + n_bytes + (size_t)L * f_bytes));
    int32_t *cc = (int32_t *)g->scratch;
    int32_t *cum = (int32_t *)((char *)g->scratch + cc_bytes);
    int64_t *ntot = (int64_t *)((char *)g->scratch + cc_bytes + q_bytes);
    unsigned char *flow = (unsigned char *)g->scratch + cc_bytes + q_bytes + n_bytes;
    size_t plan_smem = (size_t)(p->E + p->D) * sizeof(int64_t) + (size_t)p->E * sizeof(int);
    if (plan_smem > 48 * 1024)
        return eplb_error_set(EPLB_ERR_UNSUPPORTED,
                              "gpu balanced: E=%d D=%d too large for the plan kernel", p->E,
                              p->D);
    select_ordinal_kernel<<<dim3(gx, L), kOrdWarps * 32,
                            (size_t)kOrdWarps * p->E * sizeof(int), g->stream>>>(
        nullptr, d_counts, d_ids, T, L, K, *p, ORD_COUNT, cc, nullptr, nchunks, 0);
    EPLB_CHECK(launch_check("select_ordinal_kernel(count)"));
    balanced_prefix_kernel<<<dim3((p->E + 7) / 8, L), kThreads, 0, g->stream>>>(cc, ntot,
                                                                              nchunks, p->E);
    EPLB_CHECK(launch_check("balanced_prefix_kernel"));
    balanced_plan_kernel<<<L, kThreads, plan_smem, g->stream>>>(ntot, cum, *p, flow, f_bytes);
    EPLB_CHECK(launch_check("balanced_plan_kernel"));
    select_ordinal_kernel<<<dim3(gx, L), kOrdWarps * 32, ord_smem, g->stream>>>(
        d_phys, d_counts, d_ids, T, L, K, *p, ORD_BALANCED, cc, cum, nchunks,
        use_hist);
    return launch_check("select_ordinal_kernel(balanced)");
}

static eplb_status_t counts_fold(eplb_gpu_t *g, int32_t *d_out, int32_t *d_striped, int L,
                                 int P, bool clear)
{
    if (!g || !d_out || !d_striped || L < 1 || P < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu counts fold: NULL argument or bad shape");
    const int64_t n = (int64_t)L * P;
    const int64_t want = (n + kThreads - 1) / kThreads, cap = (int64_t)g->num_sms * 8;
    counts_fold_kernel<<<(int)(want < cap ? want : cap), kThreads, 0, g->stream>>>(
        d_out, d_striped, n, eplb_count_stride(L, P), eplb_count_stripes(L, P), clear);
    return launch_check("counts_fold_kernel");
}

extern "C" eplb_status_t eplb_gpu_counts_fold(eplb_gpu_t *g, int32_t *d_out,
                                              const int32_t *d_striped, int L, int P)
{
    // reads only (clear false)
    return counts_fold(g, d_out, const_cast<int32_t *>(d_striped), L, P, false);
}

extern "C" eplb_status_t eplb_gpu_counts_fold_clear(eplb_gpu_t *g, int32_t *d_out,
                                                    int32_t *d_striped, int L, int P)
{
    const uintptr_t o0 = (uintptr_t)d_out, s0 = (uintptr_t)d_striped;
    if (d_out && d_striped && L > 0 && P > 0 && o0 + (size_t)L * P * 4 > s0 &&
        s0 + eplb_count_len(L, P) * 4 > o0)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu counts fold-clear: the output overlaps the stripes");
    return counts_fold(g, d_out, d_striped, L, P, true);
}

extern "C" eplb_status_t eplb_gpu_select_record(eplb_gpu_t *g, int32_t *d_phys,
                                                int32_t *d_counts,
                                                const int32_t *d_ids, int64_t T,
                                                int L, int K,
                                                const eplb_select_cfg_t *cfg,
                                                eplb_gpu_rows_t rows)
{
    if (!g || !d_counts || !d_ids || !cfg || T < 0 || L < 1 || K < 1 ||
        K > EPLB_MAX_TOPK)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu select: NULL argument or bad shape");
    eplb_sel_params_t p;
    EPLB_CHECK(eplb_gpu_sel_params(&p, g, T, L, cfg, rows));
    return eplb_gpu_launch_select(g, d_phys, d_counts, d_ids, T, L, K, &p);
}
