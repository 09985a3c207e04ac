// route.cu - routing (softmax top-k, DeepSeek-V3 grouped top-k) on the GPU,
// optionally fused with replica selection and load recording.
//
// Keys are packed into 64 bits: order-preserving float bits above, the
// complemented expert id below, so one unsigned max picks the larger key
// and, among equal keys, the lower id (the CPU tie rule); 0 means "not a
// candidate".  Two kernels:
//  - route_fast_kernel<EPL, LPR, G>: LPR lanes per row, each lane owning EPL
//    experts in float4-interleaved chunks (coalesced row segments);
//    group scores and a per-lane top-8 in registers, then K rounds of a
//    segment-wide max.  Instantiated for the common shapes only.
//  - route_generic_kernel: one warp per row, any E <= 512, K <= 16,
//    G <= 32 (the fallback, and the reference for the fast one).
// Selection key, weights and tie rules follow kernels/route_cpu.c.
#include <cstring>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gpu_impl.h"

namespace {

constexpr int kThreads = 256;
constexpr unsigned kFull = 0xffffffffu;
typedef unsigned long long u64;

struct RouteArgs {
    int32_t *ids;
    float *w;
    int32_t *phys;
    int32_t *counts;
    const void *logits;
    const float *bias;
    int64_t T;
    int L, dt, E, K, G, TG, renorm, sig;
    float scale;
    int fused, use_hist;
    // fused, segment kernel, hash mode on contiguous rank blocks: the
    // layer's heads (sp.hhead) in shared memory, so that replicas 0-4 and
    // the divisor R need no global load and no division
    int hash_fast;
    int diag; // eplb_gpu.diag (EPLB_FUSED_DIAG), segment kernel only
    int bulk; // segment kernel: the histogram flushed by a bulk reduction where
              // it pays (route_seg_kernel's BULK; sm_90, EPLB_SEG_BULK)
    int nstripes;       // count stripes the blocks record into (kernels.h)
    size_t stripe_step; // counters between count stripes
    eplb_sel_params_t sp;
};

// the fused kernels' counters of layer l: block b records into count
// stripe b mod nstripes (kernels.h, eplb_count_stripes)
__device__ __forceinline__ int32_t *count_row(const RouteArgs &a, int l)
{
    return a.counts + (size_t)(blockIdx.x % (unsigned)a.nstripes) * a.stripe_step +
           (size_t)l * a.sp.P;
}

__device__ __forceinline__ float canon(float k)
{
    return k != k ? -INFINITY : (k == 0.0f ? 0.0f : k); // NaN -> -inf, -0 -> +0
}

__device__ __forceinline__ u64 pack(float k, int e)
{
    unsigned u = __float_as_uint(k);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((u64)u << 32) | (u64)(0xffffffffu - (unsigned)e);
}

__device__ __forceinline__ float unpack_key(u64 v)
{
    unsigned u = (unsigned)(v >> 32);
    u = (u & 0x80000000u) ? (u & 0x7fffffffu) : ~u;
    return __uint_as_float(u);
}

__device__ __forceinline__ int unpack_id(u64 v) { return (int)(0xffffffffu - (unsigned)v); }

__device__ __forceinline__ u64 umax(u64 a, u64 b) { return a > b ? a : b; }
__device__ __forceinline__ u64 umin(u64 a, u64 b) { return a < b ? a : b; }

__device__ __forceinline__ float ld1(const void *p, int dt, size_t i)
{
    if (dt == EPLB_DTYPE_F32)
        return __ldg((const float *)p + i);
    unsigned short h = __ldg((const unsigned short *)p + i);
    if (dt == EPLB_DTYPE_F16)
        return __half2float(__ushort_as_half(h));
    return __uint_as_float((unsigned)h << 16);
}

__device__ __forceinline__ void ld4(const void *p, int dt, size_t i, float *x)
{
    if (dt == EPLB_DTYPE_F32) {
        float4 v = __ldcs((const float4 *)((const float *)p + i));
        x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
        return;
    }
    uint2 v = __ldcs((const uint2 *)((const unsigned short *)p + i));
    unsigned short h[4] = {(unsigned short)(v.x & 0xffff), (unsigned short)(v.x >> 16),
                           (unsigned short)(v.y & 0xffff), (unsigned short)(v.y >> 16)};
#pragma unroll
    for (int j = 0; j < 4; j++)
        x[j] = dt == EPLB_DTYPE_F16 ? __half2float(__ushort_as_half(h[j]))
                                    : __uint_as_float((unsigned)h[j] << 16);
}

// s of one expert: sigmoid (correctly rounded reciprocal, as 1.0f / y on
// the CPU) or softmax probability.
__device__ __forceinline__ float score(float x, int sig, float mx, float S)
{
    return sig ? __frcp_rn(1.0f + expf(-x)) : expf(x - mx) / S;
}

// ---- generic: one warp per (token, layer) row -------------------------
__global__ void __launch_bounds__(kThreads) route_generic_kernel(RouteArgs a)
{
    extern __shared__ int hist_s[];
    const int l = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int *hist = (a.fused && a.use_hist) ? hist_s : nullptr;
    int32_t *cnt = a.fused ? count_row(a, l) : nullptr;
    if (hist)
        for (int q = threadIdx.x; q < a.sp.P; q += blockDim.x)
            hist[q] = 0;
    __syncthreads();
    const int E = a.E, gs = a.E / a.G;
    const float *bias = a.bias ? a.bias + (size_t)l * E : nullptr;
    const int wpb = blockDim.x >> 5;
    for (int64_t i = (int64_t)blockIdx.x * wpb + warp; i < a.T;
         i += (int64_t)gridDim.x * wpb) {
        const size_t roff = ((size_t)i * a.L + l) * E;
        float x[16];
        u64 kv[16];
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            int e = lane + 32 * j;
            x[j] = e < E ? ld1(a.logits, a.dt, roff + e) : -INFINITY;
            mx = fmaxf(mx, x[j]);
        }
#pragma unroll
        for (int off = 16; off; off >>= 1)
            mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, off));
        float S = 0.0f;
        if (!a.sig) {
#pragma unroll
            for (int j = 0; j < 16; j++)
                if (lane + 32 * j < E)
                    S += expf(x[j] - mx);
#pragma unroll
            for (int off = 16; off; off >>= 1)
                S += __shfl_xor_sync(kFull, S, off);
        }
#pragma unroll
        for (int j = 0; j < 16; j++) {
            int e = lane + 32 * j;
            if (e < E) {
                float k = bias ? score(x[j], a.sig, mx, S) + __ldg(bias + e) : x[j];
                kv[j] = pack(canon(k), e);
            } else {
                kv[j] = 0;
            }
        }
        if (a.G > 1 && a.TG < a.G) {
            float mine = -INFINITY;
            for (int g = 0; g < a.G; g++) {
                u64 t1 = 0, t2 = 0;
#pragma unroll
                for (int j = 0; j < 16; j++) {
                    int e = lane + 32 * j;
                    if (e < E && e / gs == g) {
                        u64 v = kv[j];
                        if (v > t1) {
                            t2 = t1;
                            t1 = v;
                        } else if (v > t2) {
                            t2 = v;
                        }
                    }
                }
#pragma unroll
                for (int off = 16; off; off >>= 1) {
                    u64 o1 = __shfl_xor_sync(kFull, t1, off);
                    u64 o2 = __shfl_xor_sync(kFull, t2, off);
                    t2 = umax(umin(t1, o1), umax(t2, o2));
                    t1 = umax(t1, o1);
                }
                float sc = (bias && gs > 1) ? unpack_key(t1) + unpack_key(t2) : unpack_key(t1);
                if (lane == g)
                    mine = sc;
            }
            int rank = 0;
            for (int g2 = 0; g2 < a.G; g2++) {
                float s2 = __shfl_sync(kFull, mine, g2);
                rank += s2 > mine || (s2 == mine && g2 < lane);
            }
            unsigned keep = __ballot_sync(kFull, lane < a.G && rank < a.TG);
#pragma unroll
            for (int j = 0; j < 16; j++) {
                int e = lane + 32 * j;
                if (e < E && !((keep >> (e / gs)) & 1u))
                    kv[j] = 0;
            }
        }
        int my_id = -1;
        for (int k = 0; k < a.K; k++) {
            u64 b = 0;
#pragma unroll
            for (int j = 0; j < 16; j++)
                b = umax(b, kv[j]);
#pragma unroll
            for (int off = 16; off; off >>= 1)
                b = umax(b, __shfl_xor_sync(kFull, b, off));
#pragma unroll
            for (int j = 0; j < 16; j++)
                if (kv[j] == b)
                    kv[j] = 0;
            if (lane == k)
                my_id = unpack_id(b);
        }
        float s = 0.0f;
        if (lane < a.K)
            s = score(ld1(a.logits, a.dt, roff + my_id), a.sig, mx, S);
        float wsum = s;
#pragma unroll
        for (int off = 16; off; off >>= 1)
            wsum += __shfl_xor_sync(kFull, wsum, off);
        float scale = a.scale;
        if (a.renorm)
            scale /= wsum + 1e-20f;
        if (lane < a.K) {
            size_t out = ((size_t)i * a.L + l) * a.K + lane;
            if (a.ids)
                a.ids[out] = my_id;
            if (a.w)
                a.w[out] = s * scale;
            if (a.fused) {
                int ph = eplb_dev_select(a.sp, i, l, lane, a.K, my_id);
                if (a.phys)
                    a.phys[out] = ph;
                eplb_dev_record(hist, cnt, ph);
            }
        }
    }
    if (hist)
        eplb_dev_hist_flush(hist, cnt, a.sp.P);
}

// ---- fast: LPR lanes per row, EPL experts per lane -----------------------
// (Variant 2, kept for comparison: see docs/perf/kernels.md.)
// Keys stay floats in registers (NaN marks "not a candidate"; real NaN keys
// were made -inf); ids follow from the register position, so a key is
// packed only where two are compared.
template <int EPL, int LPR>
__device__ __forceinline__ int fast_id(int r, int sl)
{
    return ((r / 4) * LPR + sl) * 4 + (r % 4);
}

__device__ __forceinline__ u64 packk(float k, int e) { return k != k ? 0ull : pack(k, e); }

template <int EPL, int LPR, int G>
__global__ void __launch_bounds__(kThreads) route_fast_kernel(RouteArgs a)
{
    constexpr int NC = EPL / 4, RPW = 32 / LPR, KM = 8, KPL = KM / LPR;
    constexpr int EPG = G > 1 ? EPL / G : EPL; // registers per group per lane
    extern __shared__ int hist_s[];
    const int l = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int seg = lane / LPR, sl = lane % LPR;
    const int hist_n = (a.fused && a.use_hist) ? ((a.sp.P + 3) & ~3) : 0;
    int *hist = hist_n ? hist_s : nullptr;
    float *bias_s = (float *)(hist_s + hist_n);
    int32_t *cnt = a.fused ? count_row(a, l) : nullptr;
    const int E = a.E;
    const bool has_bias = a.bias != nullptr;
    for (int q = threadIdx.x; q < hist_n; q += blockDim.x)
        hist_s[q] = 0;
    if (has_bias)
        for (int e = threadIdx.x; e < EPL * LPR; e += blockDim.x)
            bias_s[e] = e < E ? a.bias[(size_t)l * E + e] : 0.0f;
    __syncthreads();
    const int64_t step = (int64_t)gridDim.x * (kThreads / 32) * RPW;
    for (int64_t i0 = ((int64_t)blockIdx.x * (kThreads / 32) + warp) * RPW; i0 < a.T;
         i0 += step) {
        const int64_t i = i0 + seg;
        const bool valid = i < a.T;
        const size_t roff = ((size_t)(valid ? i : i0) * a.L + l) * E;
        float kf[EPL];
#pragma unroll
        for (int c = 0; c < NC; c++) {
            int eb = (c * LPR + sl) * 4;
            if (eb < E) {
                ld4(a.logits, a.dt, roff + eb, &kf[c * 4]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; j++)
                    kf[c * 4 + j] = -INFINITY;
            }
        }
        float mx = -INFINITY;
#pragma unroll
        for (int r = 0; r < EPL; r++)
            mx = fmaxf(mx, kf[r]);
#pragma unroll
        for (int off = LPR / 2; off; off >>= 1)
            mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, off));
        float S = 0.0f;
        if (!a.sig) {
#pragma unroll
            for (int c = 0; c < NC; c++)
                if ((c * LPR + sl) * 4 < E)
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        S += expf(kf[c * 4 + j] - mx);
#pragma unroll
            for (int off = LPR / 2; off; off >>= 1)
                S += __shfl_xor_sync(kFull, S, off);
        }
        // logits -> keys in place
#pragma unroll
        for (int c = 0; c < NC; c++) {
            int eb = (c * LPR + sl) * 4;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float xv = kf[c * 4 + j];
                float k = has_bias ? score(xv, a.sig, mx, S) + bias_s[eb + j] : xv;
                kf[c * 4 + j] = eb < E ? canon(k) : __int_as_float(0x7fffffff);
            }
        }
        if (G > 1 && a.TG < G) {
            float gsc[G > 1 ? G : 1];
#pragma unroll
            for (int g = 0; g < G; g++) {
                u64 t1 = 0, t2 = 0;
#pragma unroll
                for (int r = g * EPG; r < (g + 1) * EPG; r++) {
                    u64 v = packk(kf[r], fast_id<EPL, LPR>(r, sl));
                    u64 lo = umin(t1, v);
                    t1 = umax(t1, v);
                    t2 = umax(t2, lo);
                }
#pragma unroll
                for (int off = LPR / 2; off; off >>= 1) {
                    u64 o1 = __shfl_xor_sync(kFull, t1, off);
                    u64 o2 = __shfl_xor_sync(kFull, t2, off);
                    t2 = umax(umin(t1, o1), umax(t2, o2));
                    t1 = umax(t1, o1);
                }
                gsc[g] = (has_bias && E / G > 1) ? unpack_key(t1) + unpack_key(t2)
                                                 : unpack_key(t1);
            }
            unsigned keep = 0;
#pragma unroll
            for (int g = 0; g < G; g++) {
                int rank = 0;
#pragma unroll
                for (int g2 = 0; g2 < G; g2++)
                    rank += gsc[g2] > gsc[g] || (gsc[g2] == gsc[g] && g2 < g);
                keep |= (unsigned)(rank < a.TG) << g;
            }
#pragma unroll
            for (int r = 0; r < EPL; r++)
                if (!((keep >> (r / EPG)) & 1u))
                    kf[r] = __int_as_float(0x7fffffff);
        }
        // per-lane top-8, sorted descending (bubble insertion)
        u64 top[KM];
#pragma unroll
        for (int j = 0; j < KM; j++)
            top[j] = 0;
#pragma unroll
        for (int r = 0; r < EPL; r++) {
            u64 v = packk(kf[r], fast_id<EPL, LPR>(r, sl));
            if (v > top[KM - 1]) {
#pragma unroll
                for (int j = 0; j < KM; j++) {
                    u64 hi = umax(top[j], v);
                    v = umin(top[j], v);
                    top[j] = hi;
                }
            }
        }
        // K rounds of a segment-wide max over the lanes' heads
        int my_id[KPL];
#pragma unroll
        for (int q = 0; q < KPL; q++)
            my_id[q] = -1;
#pragma unroll
        for (int k = 0; k < KM; k++) {
            if (k < a.K) {
                u64 b = top[0];
#pragma unroll
                for (int off = LPR / 2; off; off >>= 1)
                    b = umax(b, __shfl_xor_sync(kFull, b, off));
                if (top[0] == b) {
#pragma unroll
                    for (int j = 0; j < KM - 1; j++)
                        top[j] = top[j + 1];
                    top[KM - 1] = 0;
                }
                if (k % LPR == sl)
                    my_id[k / LPR] = unpack_id(b);
            }
        }
        float s[KPL], ls = 0.0f;
#pragma unroll
        for (int q = 0; q < KPL; q++) {
            s[q] = 0.0f;
            if (q * LPR + sl < a.K && valid) {
                s[q] = score(ld1(a.logits, a.dt, roff + my_id[q]), a.sig, mx, S);
                ls += s[q];
            }
        }
#pragma unroll
        for (int off = LPR / 2; off; off >>= 1)
            ls += __shfl_xor_sync(kFull, ls, off);
        float scale = a.scale;
        if (a.renorm)
            scale /= ls + 1e-20f;
        if (valid) {
#pragma unroll
            for (int q = 0; q < KPL; q++) {
                int k = q * LPR + sl;
                if (k < a.K) {
                    size_t out = ((size_t)i * a.L + l) * a.K + k;
                    if (a.ids)
                        a.ids[out] = my_id[q];
                    if (a.w)
                        a.w[out] = s[q] * scale;
                    if (a.fused) {
                        int ph = eplb_dev_select(a.sp, i, l, k, a.K, my_id[q]);
                        if (a.phys)
                            a.phys[out] = ph;
                        eplb_dev_record(hist, cnt, ph);
                    }
                }
            }
        }
    }
    if (hist)
        eplb_dev_hist_flush(hist, cnt, a.sp.P);
}

// ---- warp-per-row threshold kernel (default fast path) -------------------
// One warp per (token, layer) row; lane l owns experts c*128 + 4l .. +3 for
// chunks c < EPT/4 (float4 loads, fully coalesced).  Groups (size gs, a
// power of two in [4, 128]) are whole chunks of gs/4 consecutive lanes, so
// group top-2 is a lane-local top-2 of 4 plus a shuffle reduction.  Top-K
// without K full rounds: theta = the K-th largest of the 32 lane maxima
// (redux.sync on the ordered key bits, ties drop several lanes at once, so
// theta stays a lower bound of the K-th largest key); only elements >= theta
// are candidates (typically 10-20), compacted into shared memory; each
// candidate's rank among them (packed (key, id) compare: ties to the lower
// id) is its output column.  More than kCap candidates: K rounds of a warp
// argmax instead.
constexpr int kCap = 64;

__device__ __forceinline__ unsigned ordered(float k)
{
    unsigned u = __float_as_uint(k);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float unordered(unsigned u)
{
    return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

// Key bits of one expert: order-preserving unsigned (NaN -> -inf, -0 -> +0);
// 0 is below every real key and marks "not a candidate".
__device__ __forceinline__ unsigned key_bits(float k)
{
    return k != k ? 0x007fffffu : ordered(k + 0.0f);
}

template <int EPT>
__device__ __forceinline__ void load_row(float *x, const RouteArgs &a, int64_t i, int l,
                                         int lane)
{
    const size_t roff = ((size_t)i * a.L + l) * a.E;
#pragma unroll
    for (int c = 0; c < EPT / 4; c++) {
        int eb = c * 128 + lane * 4;
        if (eb < a.E) {
            ld4(a.logits, a.dt, roff + eb, &x[c * 4]);
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++)
                x[c * 4 + j] = -INFINITY;
        }
    }
}

// PF: software prefetch of the warp's next row (variant 3 turns it off).
template <int EPT, bool PF, int MINB = 3>
__global__ void __launch_bounds__(kThreads, MINB) route_warp_kernel(RouteArgs a)
{
    constexpr int NCH = EPT / 4;
    extern __shared__ int hist_s[];
    __shared__ u64 cand_s[kThreads / 32][kCap];
    __shared__ float candx_s[kThreads / 32][kCap]; // logits of the candidates
    __shared__ float gsc_s[kThreads / 32][32];
    // fused: chosen (token, k, expert) of up to 32 / K rows, selected and
    // recorded together by all 32 lanes
    __shared__ int64_t bi_s[kThreads / 32][32];
    __shared__ int be_s[kThreads / 32][32], bk_s[kThreads / 32][32];
    const int l = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int *hist = (a.fused && a.use_hist) ? hist_s : nullptr;
    int32_t *cnt = a.fused ? count_row(a, l) : nullptr;
    if (hist)
        for (int q = threadIdx.x; q < a.sp.P; q += blockDim.x)
            hist[q] = 0;
    const int E = a.E;
    const bool has_bias = a.bias != nullptr;
    const bool grouped = a.G > 1 && a.TG < a.G;
    const int gs = E / a.G, lgs = __ffs(gs) - 1, W = gs >> 2; // gs: power of two
    float bv[EPT];
#pragma unroll
    for (int c = 0; c < NCH; c++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int e = c * 128 + lane * 4 + j;
            bv[c * 4 + j] = has_bias && e < E ? a.bias[(size_t)l * E + e] : 0.0f;
        }
    __syncthreads();
    u64 *cand = cand_s[warp];
    float *candx = candx_s[warp];
    float *gsc = gsc_s[warp];
    const int rows_per_batch = 32 / a.K;
    int nb = 0; // rows in the selection batch
    auto flush = [&]() {
        __syncwarp();
        if (lane < nb * a.K) {
            int64_t ti = bi_s[warp][lane];
            uint32_t t;
            int rank_src;
            eplb_dev_token(a.sp, ti, &t, &rank_src);
            int k = bk_s[warp][lane];
            int ph = eplb_dev_select_tok(a.sp, l, t, rank_src, k, a.K, be_s[warp][lane]);
            if (a.phys)
                a.phys[((size_t)ti * a.L + l) * a.K + k] = ph;
            eplb_dev_record(hist, cnt, ph);
        }
        __syncwarp();
        nb = 0;
    };
    const int64_t stride = (int64_t)gridDim.x * (kThreads / 32);
    int64_t i = (int64_t)blockIdx.x * (kThreads / 32) + warp;
    float nx[EPT]; // the next row, loaded while this one is worked on
    if (PF && i < a.T)
        load_row<EPT>(nx, a, i, l, lane);
    for (; i < a.T; i += stride) {
        float x[EPT];
        if (PF) {
#pragma unroll
            for (int r = 0; r < EPT; r++)
                x[r] = nx[r];
            if (i + stride < a.T)
                load_row<EPT>(nx, a, i + stride, l, lane);
        } else {
            load_row<EPT>(x, a, i, l, lane);
        }
        float mx = -INFINITY, S = 0.0f;
        if (!a.sig) {
#pragma unroll
            for (int r = 0; r < EPT; r++)
                mx = fmaxf(mx, x[r]);
#pragma unroll
            for (int off = 16; off; off >>= 1)
                mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, off));
#pragma unroll
            for (int c = 0; c < NCH; c++)
                if (c * 128 + lane * 4 < E)
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        S += expf(x[c * 4 + j] - mx);
#pragma unroll
            for (int off = 16; off; off >>= 1)
                S += __shfl_xor_sync(kFull, S, off);
        }
        // logits -> key bits (0: not a candidate)
        unsigned hk[EPT];
#pragma unroll
        for (int c = 0; c < NCH; c++) {
            const bool in = c * 128 + lane * 4 < E;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float xv = x[c * 4 + j];
                float k = has_bias ? score(xv, a.sig, mx, S) + bv[c * 4 + j] : xv;
                hk[c * 4 + j] = in ? key_bits(k) : 0u;
            }
        }
        if (grouped) {
            // group score per chunk: top-2 of the lane's 4 keys, then over
            // the W lanes of the group (padding lanes hold 0, below all)
#pragma unroll
            for (int c = 0; c < NCH; c++) {
                unsigned t1 = 0, t2 = 0;
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    unsigned v = hk[c * 4 + j];
                    t2 = max(t2, min(t1, v));
                    t1 = max(t1, v);
                }
                for (int off = W >> 1; off; off >>= 1) {
                    unsigned o1 = __shfl_xor_sync(kFull, t1, off);
                    unsigned o2 = __shfl_xor_sync(kFull, t2, off);
                    t2 = max(min(t1, o1), max(t2, o2));
                    t1 = max(t1, o1);
                }
                int e0 = c * 128 + lane * 4;
                if (e0 < E && (lane & (W - 1)) == 0)
                    gsc[e0 >> lgs] = has_bias ? unordered(t1) + unordered(t2) : unordered(t1);
            }
            __syncwarp();
            float mine = lane < a.G ? gsc[lane] : 0.0f;
            int rank = 0;
            for (int g2 = 0; g2 < a.G; g2++) {
                float s2 = gsc[g2];
                rank += s2 > mine || (s2 == mine && g2 < lane);
            }
            unsigned keep = __ballot_sync(kFull, lane < a.G && rank < a.TG);
            __syncwarp(); // gsc reads done before the next row writes
#pragma unroll
            for (int c = 0; c < NCH; c++) {
                int e0 = c * 128 + lane * 4;
                if (!((keep >> (e0 >> lgs)) & 1u))
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        hk[c * 4 + j] = 0;
            }
        }
        // theta: K-th largest lane maximum of the key bits
        unsigned lm = 0;
#pragma unroll
        for (int r = 0; r < EPT; r++)
            lm = max(lm, hk[r]);
        unsigned theta = 0, v = lm;
        for (int k = 0; k < a.K; k++) {
            theta = __reduce_max_sync(kFull, v);
            if (v == theta)
                v = 0;
        }
        const unsigned th = theta ? theta : 1u; // theta 0: every live key
        int n_l = 0;
#pragma unroll
        for (int r = 0; r < EPT; r++)
            n_l += hk[r] >= th;
        int incl = n_l;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {
            int o = __shfl_up_sync(kFull, incl, off);
            if (lane >= off)
                incl += o;
        }
        const int N = __shfl_sync(kFull, incl, 31);
        int sel_id[2] = {-1, -1}, sel_k[2] = {-1, -1};
        float sel_x[2] = {0.0f, 0.0f};
        if (N <= kCap) {
            int pos = incl - n_l;
#pragma unroll
            for (int r = 0; r < EPT; r++)
                if (hk[r] >= th) {
                    candx[pos] = x[r];
                    cand[pos++] = ((u64)hk[r] << 32) |
                                  (u64)(0xffffffffu - (unsigned)((r / 4) * 128 + lane * 4 + r % 4));
                }
            __syncwarp();
#pragma unroll
            for (int q = 0; q < 2; q++) {
                int idx = lane + 32 * q;
                if (idx < N) {
                    u64 me = cand[idx];
                    int rk = 0;
#pragma unroll 4
                    for (int j = 0; j < N; j++)
                        rk += cand[j] > me;
                    if (rk < a.K) {
                        sel_id[q] = unpack_id(me);
                        sel_k[q] = rk;
                        sel_x[q] = candx[idx];
                    }
                }
            }
            __syncwarp(); // cand reads done before the next row writes
        } else {
            // rare (massive exact ties): K rounds of a warp-wide argmax
            u64 pk[EPT];
#pragma unroll
            for (int r = 0; r < EPT; r++)
                pk[r] = hk[r] ? (((u64)hk[r] << 32) |
                                 (u64)(0xffffffffu - (unsigned)((r / 4) * 128 + lane * 4 + r % 4)))
                              : 0ull;
            for (int k = 0; k < a.K; k++) {
                u64 b = 0;
#pragma unroll
                for (int r = 0; r < EPT; r++)
                    b = umax(b, pk[r]);
#pragma unroll
                for (int off = 16; off; off >>= 1)
                    b = umax(b, __shfl_xor_sync(kFull, b, off));
#pragma unroll
                for (int r = 0; r < EPT; r++)
                    if (pk[r] == b)
                        pk[r] = 0;
                if (lane == k) { // K <= 16: one slot per lane
                    sel_id[0] = unpack_id(b);
                    sel_k[0] = k;
                    sel_x[0] = ld1(a.logits, a.dt, ((size_t)i * a.L + l) * E + sel_id[0]);
                }
            }
        }
        float sel_s[2] = {0.0f, 0.0f}, ls = 0.0f;
#pragma unroll
        for (int q = 0; q < 2; q++)
            if (sel_k[q] >= 0) {
                sel_s[q] = score(sel_x[q], a.sig, mx, S);
                ls += sel_s[q];
            }
#pragma unroll
        for (int off = 16; off; off >>= 1)
            ls += __shfl_xor_sync(kFull, ls, off);
        float scale = a.scale;
        if (a.renorm)
            scale /= ls + 1e-20f;
#pragma unroll
        for (int q = 0; q < 2; q++)
            if (sel_k[q] >= 0) {
                size_t out = ((size_t)i * a.L + l) * a.K + sel_k[q];
                if (a.ids)
                    a.ids[out] = sel_id[q];
                if (a.w)
                    a.w[out] = sel_s[q] * scale;
                if (a.fused) {
                    int slot = nb * a.K + sel_k[q];
                    bi_s[warp][slot] = i;
                    be_s[warp][slot] = sel_id[q];
                    bk_s[warp][slot] = sel_k[q];
                }
            }
        if (a.fused && ++nb == rows_per_batch)
            flush();
    }
    if (a.fused && nb)
        flush();
    if (hist)
        eplb_dev_hist_flush(hist, cnt, a.sp.P);
}

// ---- segment kernel (default for DeepSeek-V3, variants 5-6, 14): LPR = 8
// lanes per row, 4 rows per warp (or 16 lanes, 2 rows per warp) ----
// For sigmoid grouped routing with groups of 32 experts (DeepSeek-V3: 256
// experts, 8 groups), K <= 8 and K <= 2 * topk_groups.  Lane sl of a row's 8-lane
// segment owns experts c*32 + 4*sl .. +3 for chunks c < NCH (float4 loads,
// coalesced), so chunk c is group c, spread over the 8 lanes.  The per-row
// fixed costs (group ranking, threshold, scan, ranks, output) are paid by 8
// lanes instead of 32, i.e. once per 4 rows of a warp instruction; the
// per-expert work (256 sigmoids) is the same in any layout.  With 16 lanes
// (small grids, launch_route) lane sl owns c*32 + 2*sl .. +1 (float2
// loads): half the per-lane keys and chunk work, one more level in every
// reduction, and the per-row fixed costs over twice the lanes, which pays
// where each warp has one row group and the chain after the DRAM wait is
// the time (run 49); the steps below are for 8 lanes, the same with 16.
//  1. keys (float: s + bias, NaN -> -inf) to a shared row buffer, so that
//     no key array stays live in registers (64 registers without spills:
//     4 blocks of 256 threads or 8 of 128 per SM);
//  2. group top-2: lane-local top-2 of 4 per chunk, then a transposed
//     butterfly over the segment (each level halves the groups a lane
//     keeps), so lane sl ends with group (sl * NCH / 8)'s top-2; its rank
//     among the groups by NCH - 1 shuffles, a ballot gives the kept set;
//  3. theta = min over kept groups of the group's 2nd key: each kept group
//     has two keys >= theta, so >= 2 * topk_groups >= K keys are >= theta
//     (a lower bound of the K-th key); candidates = kept keys >= theta
//     (mean 10.9, p99 19 on random DeepSeek-V3 logits), one bit per expert
//     in a lane mask (no per-expert stores);
//  4. compaction by the set bits (typically 0-4 per lane): packed (ordered
//     key bits, ~id) into shared memory at the lane's scan offset;
//  5. rank of each candidate among them = output column (ties: lower id);
//     the K winners' s = key - bias from the row buffer (within an ulp of
//     s; run 21: no L2 reload of the logit), the renormalisation by
//     rcp.approx (within 2 ulp of the division);
//  6. over kSegCap candidates in some segment (on random DeepSeek-V3
//     logits about one row in 50,000; 1.7e-4 of rows with 8 hot experts):
//     K rounds of a segment argmax over the candidate bits for the whole
//     warp instead (seg_argmax, ~2 us per warp); the kernels without the
//     block setup first look for a higher theta by bisection (seg_wide,
//     step 3b: K to kSegCap keys at or above it), found in 1-3 steps for
//     every wide random row (kernels/dev/wide_model.py); exact ties, or a
//     huge largest key (8 steps by value are too few), still take the
//     argmax.  (A capacity of 48,
//     with the heads moved to dynamic shared memory to make room, kept
//     route at 32.7-33.0 us at T = 65536 in every process but made fused
//     erratic, 40-64 us: 52.6 KB per block, run 26; not kept.)
//  7. fused: the lane that writes entry (row, k) selects its replica and
//     records it (shared histogram), with no staging; for hash, from the
//     layer's expert heads (kernels/rules.h eplb_hhead_t: replicas 0-4 and
//     a multiply-high remainder by R), copied into shared memory by the
//     block setup where a warp has more than one row group, else read
//     through L1 (SETUP_ bit 1; runs 35-37).
// FAST (the default, variant 6): sigmoid by ex2.approx + rcp.approx (about
// 6 instructions per expert instead of 12); keys then differ from the CPU's
// by an ulp or two, which shows only at near-ties (the GPU tests bound the
// rate).  NT threads per block, MINB blocks per SM (NT * MINB = 1024: 64
// registers).  The logit dtype DT is a template parameter (no run-time
// branch in the loads), and so is the fused mode FM (0 route only, 1 fused
// hash from the heads, 2 fused, other modes): the route kernel carries no
// fused code (56 registers instead of 64; route 1-3% faster, run 29).
// SETUP: the block setup (bias, and the heads beyond one row group per
// warp, into shared memory; a barrier) where the grid is one or two row
// groups per warp; without it on larger grids (launch_route; runs 33-37).
constexpr int kSegCap = 32;
constexpr int kSegRefine = 8; // bisection steps for a higher theta (3b)

__device__ __forceinline__ float ex2_ftz(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float rcp_ftz(float x)
{
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ float min_nan(float a, float b)
{
    float y;
    asm("min.NaN.f32 %0, %1, %2;" : "=f"(y) : "f"(a), "f"(b));
    return y;
}

// sigmoid: exact = 1 / (1 + expf(-x)) with a correctly rounded reciprocal
// (the fast path of __frcp_rn without its range branch: y is >= 1, NaN, or
// clamped below 2^128, where only denormal results, flushed to 0, differ);
// FAST = ex2.approx and rcp.approx.
template <bool FAST>
__device__ __forceinline__ float seg_sigmoid(float x)
{
    if (FAST)
        return rcp_ftz(1.0f + ex2_ftz(x * -1.4426950408889634f));
    const float y = min_nan(1.0f + expf(-x), 3.0e38f);
    const float r = rcp_ftz(y);
    return fmaf(r, fmaf(-y, r, 1.0f), r);
}

// ld4 of a lane's 4 logits; NA: not allocated in L1 (they are read once,
// and the bias and map heads read through L1 beside them should stay there)
template <int DT, bool NA>
__device__ __forceinline__ void seg_ld4(const void *p, size_t i, float *x)
{
    if (DT == EPLB_DTYPE_F32) {
        const float *q = (const float *)p + i;
        if (NA) {
            asm("ld.global.nc.L1::no_allocate.v4.f32 {%0, %1, %2, %3}, [%4];"
                : "=f"(x[0]), "=f"(x[1]), "=f"(x[2]), "=f"(x[3])
                : "l"(q));
        } else {
            const float4 v = __ldg((const float4 *)q);
            x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
        }
        return;
    }
    unsigned v0, v1;
    if (NA) {
        asm("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];"
            : "=r"(v0), "=r"(v1)
            : "l"((const unsigned short *)p + i));
    } else {
        const uint2 v = __ldg((const uint2 *)((const unsigned short *)p + i));
        v0 = v.x, v1 = v.y;
    }
    const unsigned short h[4] = {(unsigned short)(v0 & 0xffff), (unsigned short)(v0 >> 16),
                                 (unsigned short)(v1 & 0xffff), (unsigned short)(v1 >> 16)};
#pragma unroll
    for (int j = 0; j < 4; j++)
        x[j] = DT == EPLB_DTYPE_F16 ? __half2float(__ushort_as_half(h[j]))
                                    : __uint_as_float((unsigned)h[j] << 16);
}

// ld2 of a lane's 2 logits (16 lanes per row), as seg_ld4
template <int DT, bool NA>
__device__ __forceinline__ void seg_ld2(const void *p, size_t i, float *x)
{
    if (DT == EPLB_DTYPE_F32) {
        const float *q = (const float *)p + i;
        if (NA) {
            asm("ld.global.nc.L1::no_allocate.v2.f32 {%0, %1}, [%2];"
                : "=f"(x[0]), "=f"(x[1])
                : "l"(q));
        } else {
            const float2 v = __ldg((const float2 *)q);
            x[0] = v.x, x[1] = v.y;
        }
        return;
    }
    unsigned v0;
    if (NA)
        asm("ld.global.nc.L1::no_allocate.u32 %0, [%1];"
            : "=r"(v0)
            : "l"((const unsigned short *)p + i));
    else
        v0 = __ldg((const unsigned *)((const unsigned short *)p + i));
    const unsigned short h[2] = {(unsigned short)(v0 & 0xffff), (unsigned short)(v0 >> 16)};
#pragma unroll
    for (int j = 0; j < 2; j++)
        x[j] = DT == EPLB_DTYPE_F16 ? __half2float(__ushort_as_half(h[j]))
                                    : __uint_as_float((unsigned)h[j] << 16);
}

// a lane's EPL (4 or 2) logits
template <int DT, bool NA, int EPL>
__device__ __forceinline__ void seg_ldv(const void *p, size_t i, float *x)
{
    if (EPL == 4)
        seg_ld4<DT, NA>(p, i, x);
    else
        seg_ld2<DT, NA>(p, i, x);
}

template <int DT>
__device__ __forceinline__ float seg_ld1(const void *p, size_t i)
{
    if (DT == EPLB_DTYPE_F32)
        return __ldg((const float *)p + i);
    const unsigned short h = __ldg((const unsigned short *)p + i);
    if (DT == EPLB_DTYPE_F16)
        return __half2float(__ushort_as_half(h));
    return __uint_as_float((unsigned)h << 16);
}

// ASYNC (variant 9): the logits of a warp's next 4 rows are copied into
// shared memory by cp.async while the current 4 rows are computed (two
// stages per warp in dynamic shared memory), so that no warp waits for DRAM
// between row groups.  With f32 logits the keys overwrite the current
// stage in place (each lane reads and writes only its own experts'
// entries of `row`); with 16-bit logits they go to a separate buffer.
template <int E, int DT, int NW>
struct SegSmem {
    static constexpr int DS = DT == EPLB_DTYPE_F32 ? 4 : 2;  // bytes per logit
    static constexpr size_t stage = (size_t)4 * E * DS;      // one warp's 4 rows
    static constexpr size_t keys = DS == 4 ? 0 : (size_t)4 * E * 4;
    static constexpr size_t bytes = (size_t)NW * (2 * stage + keys);
};

// copy lane (seg, sl)'s experts of row offset roff into stage buffer st
template <int E, int DT>
__device__ __forceinline__ void seg_cp(unsigned char *st, int seg, int sl, const void *logits,
                                       size_t roff)
{
    constexpr int DS = DT == EPLB_DTYPE_F32 ? 4 : 2;
#pragma unroll
    for (int c = 0; c < E / 32; c++) {
        const size_t e = (size_t)seg * E + c * 32 + sl * 4;
        const unsigned dst = (unsigned)__cvta_generic_to_shared(st + e * DS);
        const char *src = (const char *)logits + (roff + c * 32 + sl * 4) * DS;
        if (DS == 4)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src));
        else
            asm volatile("cp.async.ca.shared.global [%0], [%1], 8;" ::"r"(dst), "l"(src));
    }
}

// The block's histogram into the counts by one bulk reduction (the TMA
// unit adds the shared words to the global ones; sm_90), the counters
// before cnt's first 16-byte boundary and past the last whole 16 bytes by
// single reductions; hist shifted as in route_seg_kernel.  The records
// (generic proxy) are made visible to the bulk copy (async proxy) before
// the barrier; the block stays until the copy has read the histogram.
__device__ __forceinline__ void seg_flush_bulk(const int *hist, int32_t *cnt, int P)
{
#if __CUDA_ARCH__ >= 900
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    const int h = (int)((4 - (((uintptr_t)cnt >> 2) & 3)) & 3); // words before 16-byte alignment
    const int nb = P > h ? (P - h) & ~3 : 0;                    // words in bulk
    // the rest (at most 6 counters): [0, h) and [h + nb, P)
    for (int j = threadIdx.x; j < P - nb; j += blockDim.x) {
        const int q = j < h ? j : nb + j;
        if (hist[q])
            atomicAdd(&cnt[q], hist[q]);
    }
    if (threadIdx.x == 0 && nb > 0) {
        asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.u32 [%0], [%1], %2;" ::"l"(cnt + h),
                     "r"((uint32_t)__cvta_generic_to_shared(hist + h)), "r"(nb * 4)
                     : "memory");
        asm volatile("cp.async.bulk.commit_group;" ::: "memory");
        asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
    }
#else
    eplb_dev_hist_flush(hist, cnt, P);
#endif
}

// The segment kernel's candidates (route_seg_kernel, steps 3-6; sl: the
// lane in its row's LPR lanes, row: the row's keys in shared memory).
// A lane's candidate mask holds bit c * EPL + j for key c * 32 + sl * EPL
// + j; seg_expert gives the key (expert) of bit r.
template <int EPL>
__device__ __forceinline__ int seg_expert(int r, int sl)
{
    return (r / EPL) * 32 + sl * EPL + (r % EPL);
}

// The candidate mask: the keys >= x of the kept chunks, exactly TG chunks
// (the group ranks are unique), so the loop has no test.
template <int EPL>
__device__ __forceinline__ unsigned seg_cmask(const float *row, unsigned keep, int TG, int sl,
                                              float x)
{
    unsigned m = 0, kk = keep;
#pragma unroll 4
    for (int q = 0; q < TG; q++) {
        const int c = __ffs(kk) - 1;
        kk &= kk - 1;
        unsigned b;
        if (EPL == 4) {
            const float4 v = *(const float4 *)&row[c * 32 + sl * 4];
            b = (unsigned)(v.x >= x) | (unsigned)(v.y >= x) << 1 |
                (unsigned)(v.z >= x) << 2 | (unsigned)(v.w >= x) << 3;
        } else {
            const float2 v = *(const float2 *)&row[c * 32 + sl * 2];
            b = (unsigned)(v.x >= x) | (unsigned)(v.y >= x) << 1;
        }
        m |= b << (c * EPL);
    }
    return m;
}

// Inclusive prefix sum of v over the row's LPR lanes.
template <int LPR>
__device__ __forceinline__ int seg_scan(int v, int sl)
{
#pragma unroll
    for (int d = 1; d < LPR; d <<= 1) {
        const int o = __shfl_up_sync(kFull, v, d, LPR);
        if (sl >= d)
            v += o;
    }
    return v;
}

// Steps 4-5: the candidates (the set bits of m, n of them in this lane,
// incl up to it, N <= kSegCap in the row) compacted to cand, ranked, and
// the top K's ids written to win in order.
template <int LPR, int EPL>
__device__ __forceinline__ void seg_compact_rank(const float *row, u64 *cand, int *win, int K,
                                                 int sl, unsigned m, int n, int incl, int N)
{
    // 4. compaction: the set bits of m, at the lane's scan offset
    int pos = incl - n;
    while (m) {
        const int r = __ffs(m) - 1;
        m &= m - 1;
        const int e = seg_expert<EPL>(r, sl);
        cand[pos++] = pack(row[e] + 0.0f, e);
    }
    __syncwarp();
    // 5. ranks: lane sl ranks candidates sl and sl + LPR in one pass over
    // the list (both compared with each entry), the rare ones past 2 LPR
    // (8 lanes only) in further passes
    const int Nw = __reduce_max_sync(kFull, N);
    const u64 me0 = sl < N ? cand[sl] : 0ull, me1 = sl + LPR < N ? cand[sl + LPR] : 0ull;
    int r0 = 0, r1 = 0;
    if (Nw > LPR) {
#pragma unroll 4
        for (int j = 0; j < N; j++) {
            const u64 c = cand[j];
            r0 += c > me0;
            r1 += c > me1;
        }
    } else {
#pragma unroll 4
        for (int j = 0; j < N; j++)
            r0 += cand[j] > me0;
    }
    if (sl < N && r0 < K)
        win[r0] = unpack_id(me0);
    if (sl + LPR < N && r1 < K)
        win[r1] = unpack_id(me1);
    for (int q = sl + 2 * LPR; 2 * LPR < kSegCap && q - sl < Nw; q += LPR) {
        if (q < N) {
            const u64 me = cand[q];
            int rk = 0;
#pragma unroll 4
            for (int j = 0; j < N; j++)
                rk += cand[j] > me;
            if (rk < K)
                win[rk] = unpack_id(me);
        }
    }
}

// Step 6: K rounds of a segment argmax on packed keys over the candidates
// (the set bits of m: the top K are among them; a round over all 32
// positions of the kept chunks made such a warp a ~8 us tail at T = 65536,
// run 26); the ids to win in order.  ~2 us per warp (runs 100-101).  A
// round over the kept chunks as vectors, keys of the set bits only, was
// slower still: route at T = 4096 with --hot 8 8.4-8.7 us against 7.7,
// and its code alone made fused 0.09-0.21 us slower at T <= 4096 without
// hot experts (run 108).
template <int LPR, int EPL>
__device__ __forceinline__ void seg_argmax(const float *row, int *win, int K, int sl, unsigned m)
{
    unsigned left = m;
    for (int kk = 0; kk < K; kk++) {
        u64 b = 0;
        for (unsigned mm = left; mm; mm &= mm - 1) {
            const int r = __ffs(mm) - 1;
            const int e = seg_expert<EPL>(r, sl);
            b = umax(b, pack(row[e] + 0.0f, e));
        }
#pragma unroll
        for (int d = LPR / 2; d; d >>= 1)
            b = umax(b, __shfl_xor_sync(kFull, b, d));
        const int id = unpack_id(b);
        if ((id & 31) / EPL == sl)
            left &= ~(1u << ((id >> 5) * EPL + id % EPL));
        if (sl == 0)
            win[kk] = id;
    }
}

// Steps 3b-6, rare (a warp with a row of more than kSegCap candidates):
// theta (the least second key of the kept groups) is far below the K-th
// key when a kept group's second key is low, e.g. where hot experts (a
// large bias) pick the groups: 2e-5 of random DeepSeek-V3 rows, 1.7e-4
// with 8 hot experts (bench kernels --hot 8), each such warp a ~2 us tail
// in the K-round argmax (route at T = 4096 7.7 us with --hot 8 against 5.0
// without, runs 100-101).  So first a higher theta, by bisection between
// theta (too many candidates) and the largest key, until K to kSegCap keys
// lie at or above it: any such theta keeps the top K (every key >= the
// K-th key is >= theta).  Ties can leave no such value; then (or after
// kSegRefine steps) the argmax.  Every lane of the warp calls it.
// Only the kernels without the block setup (the larger grids) do; those
// with the setup (T x layers up to 33792 rows) keep the argmax alone: the
// code of this step, inlined or as this call, cost each of their launches
// 0.01-0.18 us at T = 64-4096 whether it ran or not (runs 102-105), and a
// launch there holds a wide row only with skewed routing (with --hot 8 at
// T = 4096 route took 6.2 us with this step against 7.7 with the argmax).
// Without the setup (run 105, H200): route at T = 65536 30.6-30.7 us
// against 31.3 (random rows, 2e-5 of them wide), 32.8-33.0 against
// 34.3-34.5 with --hot 8.
template <int LPR, int EPL>
__device__ __noinline__ void seg_wide(const float *row, u64 *cand, int *win, unsigned keep,
                                      int TG, int K, int sl, float th, unsigned m, int N)
{
    float mx = -INFINITY; // keys are never NaN (-inf for NaN logits)
    for (unsigned mm = m; mm; mm &= mm - 1) {
        const int r = __ffs(mm) - 1;
        mx = fmaxf(mx, row[seg_expert<EPL>(r, sl)]);
    }
#pragma unroll
    for (int d = LPR / 2; d; d >>= 1)
        mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, d));
    float lo = th, hi = mx;
    bool open = N > kSegCap;
    for (int it = 0; it < kSegRefine && __any_sync(kFull, open); it++) {
        // the midpoint by value; by the keys' order where an end is
        // infinite or lo and hi are adjacent floats
        float x = 0.5f * lo + 0.5f * hi;
        if (!(x > lo && x < hi)) {
            const unsigned ul = ordered(lo), uh = ordered(hi);
            x = unordered(ul + (uh - ul) / 2u);
        }
        open = open && x > lo && x < hi;
        int c = __popc(seg_cmask<EPL>(row, keep, TG, sl, x));
#pragma unroll
        for (int d = LPR / 2; d; d >>= 1)
            c += __shfl_xor_sync(kFull, c, d);
        if (open) {
            if (c > kSegCap) {
                lo = x;
            } else if (c < K) {
                hi = x;
            } else {
                th = x;
                open = false;
            }
        }
    }
    m = seg_cmask<EPL>(row, keep, TG, sl, th);
    const int n = __popc(m);
    const int incl = seg_scan<LPR>(n, sl);
    N = __shfl_sync(kFull, incl, LPR - 1, LPR);
    if (!__any_sync(kFull, N > kSegCap)) {
        seg_compact_rank<LPR, EPL>(row, cand, win, K, sl, m, n, incl, N);
        return;
    }
    seg_argmax<LPR, EPL>(row, win, K, sl, m); // very rare: ties
}

template <int NCH, int LPR, bool FAST, int NT, int MINB, int DT, bool ASYNC, int FM,
          int SETUP_>
__global__ void __launch_bounds__(NT, MINB) route_seg_kernel(RouteArgs a)
{
    static_assert(NCH == 2 || NCH == 4 || NCH == 8, "groups of 32 over LPR lanes");
    static_assert(LPR == 8 || (LPR == 16 && !ASYNC), "8 lanes per row, or 16 without stages");
    // LPR lanes per row, RPW rows per warp (a row group), EPL experts per
    // lane and group of 32; NL levels of a reduction over a row's lanes
    constexpr int NW = NT / 32, E = NCH * 32, DUP = LPR / NCH, RPW = 32 / LPR, EPL = 32 / LPR;
    constexpr int NL = LPR == 16 ? 4 : 3;
    constexpr int LG = NCH == 8 ? 3 : NCH == 4 ? 2 : 1; // split levels
    // SETUP_ bit 0: the block setup (bias in shared memory, L2 prefetch),
    // bit 1: the heads in shared memory (FM 1; before the setup's or the
    // histogram's barrier)
    constexpr bool SETUP = (SETUP_ & 1) != 0, HH_S = FM == 1 && (SETUP_ & 2) != 0;
    typedef SegSmem<E, DT, NW> SM;
    extern __shared__ __align__(16) unsigned char dyn_s[]; // [ASYNC stages][hist]
    int *hist_s = (int *)(dyn_s + (ASYNC ? SM::bytes : 0));
    __shared__ __align__(16) float bias_s[SETUP ? E : 1];
    __shared__ __align__(16) float row_s[ASYNC ? 1 : NW][RPW][E]; // keys of the warp's rows
    __shared__ u64 cand_s[NW][RPW][kSegCap + 1];      // +1: segments on other banks
    __shared__ int win_s[NW][RPW][8];                 // expert of output column k
    __shared__ uint4 hh_s[HH_S ? E : 1];     // the layer's eplb_hhead_t (rules.h)
    const int l = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int seg = lane / LPR, sl = lane % LPR;
    int32_t *cnt = FM ? count_row(a, l) : nullptr;
    // BULK (8 lanes per row with the block setup: T x layers of 4225-33792
    // rows, 2-8 blocks per SM): the histogram flushed by one bulk reduction
    // (seg_flush_bulk) unless a.bulk is 0 (EPLB_SEG_BULK=0); fused at T =
    // 16384 13.06-13.11 us against 13.49-13.52 with single reductions, but
    // 0.05-0.1 us slower at T = 2048-4096 (one block per SM; run 57).  The
    // histogram is then shifted by cnt's word in its 16 bytes, so that
    // counter q lies at the same place mod 16 in shared and global memory
    // (the bulk copy's alignment; 4 more words, launch_route)
    constexpr bool BULK = LPR == 8 && SETUP && !ASYNC;
    const bool bulk = BULK && a.bulk;
    int *hist = (FM && a.use_hist) ? hist_s + (bulk ? ((uintptr_t)cnt >> 2) & 3 : 0) : nullptr;
    const int64_t stride = (int64_t)gridDim.x * NW * RPW;
    const int64_t first = ((int64_t)blockIdx.x * NW + warp) * RPW;
    // SETUP (the small grids): the bias (and with HH_S the map heads) is
    // copied into shared memory before a barrier, with the first rows'
    // logits fetched into L2 meanwhile (lane sl of a segment: the 128-byte
    // line of chunk sl).  !SETUP (T over two row groups per warp): no setup
    // but the histogram's; the bias is read where needed through L1,
    // which the logits bypass (the EPLB part at T = 65536 7-9% of route
    // against 10-11% with the setup, runs 33-34; but route at T <= 4096
    // 0.4-0.5 us slower, run 33)
    const float *bl = a.bias ? a.bias + (size_t)l * E : nullptr;
    const bool has_bias = bl != nullptr;
    const uint4 *hh = FM == 1 ? (const uint4 *)a.sp.hhead + (size_t)l * E : nullptr;
    if (SETUP) {
        if (!ASYNC && first < a.T) {
            const int64_t i = first + seg < a.T ? first + seg : a.T - 1;
            const char *p = (const char *)a.logits + (((size_t)i * a.L + l) * E + (sl & 7) * (E / 8)) *
                                                         (DT == EPLB_DTYPE_F32 ? 4 : 2);
            asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
        }
        if (hist)
            for (int q = threadIdx.x; q < a.sp.P; q += blockDim.x)
                hist[q] = 0;
        if (has_bias)
            for (int e = threadIdx.x; e < E; e += blockDim.x)
                bias_s[e] = bl[e];
        if (HH_S)
            for (int e = threadIdx.x; e < E; e += blockDim.x)
                hh_s[e] = __ldg(hh + e);
        __syncthreads();
    } else if (hist || HH_S) {
        // the heads without the setup: into shared memory before the
        // histogram's barrier (the only one), the bias through L1
        if (hist)
            for (int q = threadIdx.x; q < a.sp.P; q += blockDim.x)
                hist[q] = 0;
        if (HH_S)
            for (int e = threadIdx.x; e < E; e += blockDim.x)
                hh_s[e] = __ldg(hh + e);
        __syncthreads();
    }
    float *row = row_s[ASYNC ? 0 : warp][seg];
    u64 *cand = cand_s[warp][seg];
    int *win = win_s[warp][seg];
    const int K = a.K;
    unsigned char *stg = dyn_s + (size_t)warp * 2 * SM::stage; // ASYNC: this warp's 2 stages
    int cur = 0;
    if (ASYNC && first < a.T) {
        const int64_t i = first + seg < a.T ? first + seg : a.T - 1;
        seg_cp<E, DT>(stg, seg, sl, a.logits, ((size_t)i * a.L + l) * E);
        asm volatile("cp.async.commit_group;");
    }
    for (int64_t i0 = first; i0 < a.T; i0 += stride, cur ^= 1) {
        const int64_t i = i0 + seg;
        const bool valid = i < a.T;
        const size_t roff = ((size_t)(valid ? i : a.T - 1) * a.L + l) * E;
        float k[NCH * EPL]; // logits
        if (ASYNC) {
            __syncwarp(); // the previous rows' readers of cand, win are done
            // next row group into the other stage, then wait for this one
            const int64_t n0 = i0 + stride;
            if (n0 < a.T) {
                const int64_t ni = n0 + seg < a.T ? n0 + seg : a.T - 1;
                seg_cp<E, DT>(stg + (cur ^ 1) * SM::stage, seg, sl, a.logits,
                              ((size_t)ni * a.L + l) * E);
            }
            asm volatile("cp.async.commit_group;");
            asm volatile("cp.async.wait_group 1;" ::: "memory");
            const unsigned char *st = stg + cur * SM::stage;
#pragma unroll
            for (int c = 0; c < NCH; c++) {
                const size_t e = (size_t)seg * E + c * 32 + sl * 4;
                if (DT == EPLB_DTYPE_F32) {
                    const float4 v = *(const float4 *)(st + e * 4);
                    k[c * 4] = v.x, k[c * 4 + 1] = v.y, k[c * 4 + 2] = v.z, k[c * 4 + 3] = v.w;
                } else {
                    const uint2 v = *(const uint2 *)(st + e * 2);
                    const unsigned short h[4] = {
                        (unsigned short)(v.x & 0xffff), (unsigned short)(v.x >> 16),
                        (unsigned short)(v.y & 0xffff), (unsigned short)(v.y >> 16)};
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        k[c * 4 + j] = DT == EPLB_DTYPE_F16
                                           ? __half2float(__ushort_as_half(h[j]))
                                           : __uint_as_float((unsigned)h[j] << 16);
                }
            }
            // keys: in place over this stage (f32) or to the keys buffer
            row = DT == EPLB_DTYPE_F32
                      ? (float *)(stg + cur * SM::stage) + seg * E
                      : (float *)(dyn_s + NW * 2 * SM::stage) + ((size_t)warp * 4 + seg) * E;
        } else {
#pragma unroll
            for (int c = 0; c < NCH; c++)
                seg_ldv<DT, !SETUP, EPL>(a.logits, roff + c * 32 + sl * EPL, &k[c * EPL]);
            __syncwarp(); // the previous row's readers of row, cand, win are done
        }
        // 1. keys to the row buffer; the lane's top-2 of each chunk's 4 keys
        float t1[NCH], t2[NCH];
#pragma unroll
        for (int c = 0; c < NCH; c++) {
            float v[EPL];
            if (has_bias) {
                float b[EPL];
                if (EPL == 4) {
                    const float4 q = SETUP ? *(const float4 *)&bias_s[c * 32 + sl * 4]
                                           : __ldg((const float4 *)bl + c * 8 + sl);
                    b[0] = q.x, b[1] = q.y, b[EPL - 2] = q.z, b[EPL - 1] = q.w;
                } else {
                    const float2 q = SETUP ? *(const float2 *)&bias_s[c * 32 + sl * 2]
                                           : __ldg((const float2 *)bl + c * 16 + sl);
                    b[0] = q.x, b[1] = q.y;
                }
#pragma unroll
                for (int j = 0; j < EPL; j++)
                    v[j] = seg_sigmoid<FAST>(k[c * EPL + j]) + b[j];
            } else {
#pragma unroll
                for (int j = 0; j < EPL; j++)
                    v[j] = k[c * EPL + j];
            }
#pragma unroll
            for (int j = 0; j < EPL; j++)
                v[j] = fmaxf(v[j], -INFINITY); // NaN -> -inf
            // 2. group top-2 (values only): lane-local top-2 of EPL ...
            const float hi0 = fmaxf(v[0], v[1]), lo0 = fminf(v[0], v[1]);
            if (EPL == 4) {
                *(float4 *)&row[c * 32 + sl * 4] = make_float4(v[0], v[1], v[EPL - 2], v[EPL - 1]);
                const float hi1 = fmaxf(v[EPL - 2], v[EPL - 1]), lo1 = fminf(v[EPL - 2], v[EPL - 1]);
                t1[c] = fmaxf(hi0, hi1);
                t2[c] = fmaxf(fminf(hi0, hi1), fmaxf(lo0, lo1));
            } else {
                *(float2 *)&row[c * 32 + sl * 2] = make_float2(v[0], v[1]);
                t1[c] = hi0;
                t2[c] = lo0;
            }
        }
        // ... then a transposed butterfly: at level d a lane keeps the upper
        // half of its groups when (sl & d), the lower half otherwise, and
        // merges the partner's top-2 of those into its own
#pragma unroll
        for (int lv = 0, d = LPR / 2; lv < NL; lv++, d >>= 1) {
            const int n = lv < LG ? (NCH >> lv) : 1, half = lv < LG ? n / 2 : 1;
            const bool up = (sl & d) != 0;
#pragma unroll
            for (int q = 0; q < half; q++) {
                float k1, k2, o1, o2;
                if (lv < LG) {
                    const float s1 = up ? t1[q] : t1[q + half];
                    const float s2 = up ? t2[q] : t2[q + half];
                    k1 = up ? t1[q + half] : t1[q];
                    k2 = up ? t2[q + half] : t2[q];
                    o1 = __shfl_xor_sync(kFull, s1, d);
                    o2 = __shfl_xor_sync(kFull, s2, d);
                } else {
                    k1 = t1[q];
                    k2 = t2[q];
                    o1 = __shfl_xor_sync(kFull, k1, d);
                    o2 = __shfl_xor_sync(kFull, k2, d);
                }
                t2[q] = fmaxf(fminf(k1, o1), fmaxf(k2, o2));
                t1[q] = fmaxf(k1, o1);
            }
        }
        // lane sl now holds group g = sl / DUP: rank it (ties: lower group)
        const int g = sl / DUP;
        const float gsc = has_bias ? t1[0] + t2[0] : t1[0];
        int grank = 0;
#pragma unroll
        for (int j = 1; j < NCH; j++) {
            const float o = __shfl_xor_sync(kFull, gsc, j * DUP);
            const int og = (sl ^ (j * DUP)) / DUP;
            grank += o > gsc || (o == gsc && og < g);
        }
        const bool kept = grank < a.TG;
        const unsigned kb = __ballot_sync(kFull, kept) >> (seg * LPR);
        unsigned keep = 0;
#pragma unroll
        for (int c = 0; c < NCH; c++)
            keep |= ((kb >> (c * DUP)) & 1u) << c;
        // 3. theta and the candidate mask
        float th = kept ? t2[0] : INFINITY;
#pragma unroll
        for (int d = LPR / 2; d; d >>= 1)
            th = fminf(th, __shfl_xor_sync(kFull, th, d));
        const unsigned m = seg_cmask<EPL>(row, keep, a.TG, sl, th);
        const int n = __popc(m);
        const int incl = seg_scan<LPR>(n, sl);
        const int N = __shfl_sync(kFull, incl, LPR - 1, LPR);
        if (!__any_sync(kFull, N > kSegCap))
            seg_compact_rank<LPR, EPL>(row, cand, win, K, sl, m, n, incl, N);
        else if constexpr (SETUP)
            seg_argmax<LPR, EPL>(row, win, K, sl, m); // rare (see seg_wide)
        else
            seg_wide<LPR, EPL>(row, cand, win, keep, a.TG, K, sl, th, m, N); // rare
        __syncwarp();
        // output: lane sl < K writes column sl
        int id = 0;
        float sv = 0.0f;
        // the winner's head (FM 1) or the first 16 bytes of its packed row
        // (FM 2), loaded as soon as the winner is known, before the weight
        // and its sum: fused 0.06-0.12 us faster at T = 64-4096 (run 68)
        uint4 hv = make_uint4(0, 0, 0, 0);
        if (sl < K) {
            // the winner's s from its key in the row buffer: key - bias
            // (within an ulp of the key of s), or the sigmoid of the key
            // (the logit) without bias; from the logit itself (an L2 hit)
            // where the key is -inf (NaN logits: s stays NaN as on the CPU)
            id = win[sl];
            if (FM == 1 && !(a.diag & 4))
                hv = HH_S ? hh_s[id] : __ldg(hh + id);
            if (FM == 2 && !(a.diag & 4)) {
                const int4 h = eplb_dev_sel_head(a.sp, l, id);
                hv = make_uint4((unsigned)h.x, (unsigned)h.y, (unsigned)h.z, (unsigned)h.w);
            }
            const float key = row[id];
            if (key == -INFINITY)
                sv = seg_sigmoid<FAST>(seg_ld1<DT>(a.logits, roff + id));
            else
                sv = has_bias ? key - (SETUP ? bias_s[id] : __ldg(bl + id))
                              : seg_sigmoid<FAST>(key);
        }
        float ls = sv;
#pragma unroll
        for (int d = LPR / 2; d; d >>= 1)
            ls += __shfl_xor_sync(kFull, ls, d);
        float scale = a.scale;
        if (a.renorm)
            scale *= rcp_ftz(ls + 1e-20f); // within 2 ulp of the division
        const size_t out = ((size_t)(valid ? i : 0) * a.L + l) * K + sl;
        if (valid && sl < K) {
            if (a.ids)
                a.ids[out] = id;
            if (a.w)
                a.w[out] = sv * scale;
            if (FM) {
                // select + record in the lane that holds the entry (no
                // staging: with K = 8 and 8 lanes all 32 lanes are busy)
                int ph;
                if (a.diag & 4) {
                    ph = id; // diagnostic: no selection
                } else if (FM == 1) {
                    // the rules of eplb_dev_select_tok for hash from the
                    // expert's head, without a branch on R: the token row
                    // (a multiply-high division) and its hash while the
                    // head loads, the remainder by the head's multiplier
                    // (0 for R = 1), the slot of replica 0-4 from the head
                    // by selects; replicas past 4 from the packed map
                    // (0.03-0.1 us faster than a branch on R > 1 at every
                    // T, run 38)
                    const uint32_t ii = (uint32_t)i;
                    const uint32_t hsh = eplb_rule_hash(
                        ii - eplb_fastdiv(ii, a.sp.bdiv) * (uint32_t)a.sp.block);
                    const eplb_hhead_t h = {hv.x, hv.y, hv.z, hv.w};
                    const int rep = (int)eplb_hhead_mod(h, hsh);
                    const uint32_t w2 = rep <= 2 ? h.z : h.w;
                    ph = (int)((rep == 0 ? h.x : (rep & 1) ? w2 : w2 >> 16) & 0xffff);
                    if (rep >= EPLB_HHEAD_REPS) {
                        ph = __ldg(a.sp.packed + ((size_t)l * E + id) * a.sp.S + 1 + rep);
                        ph = ph < 0 || ph >= a.sp.P ? 0xffff : ph;
                    }
                    ph = ph == 0xffff ? -1 : ph;
                } else {
                    uint32_t t;
                    int rank_src;
                    eplb_dev_token(a.sp, i, &t, &rank_src);
                    ph = eplb_dev_select_head(a.sp, l, t, rank_src, sl, K, id,
                                              make_int4((int)hv.x, (int)hv.y, (int)hv.z,
                                                        (int)hv.w));
                }
                if (a.phys)
                    a.phys[out] = ph;
                if (!(a.diag & 1))
                    eplb_dev_record(hist, cnt, ph);
            }
        }
    }
    if (ASYNC)
        asm volatile("cp.async.wait_all;" ::: "memory");
    if (hist && !(a.diag & 2)) {
        if (bulk)
            seg_flush_bulk(hist, cnt, a.sp.P);
        else
            eplb_dev_hist_flush(hist, cnt, a.sp.P);
    }
}

#ifndef EPLB_ROUTE_DEVICE_ONLY // kernels/dev/count_route.cu: kernels only
typedef void (*route_kernel_t)(RouteArgs);

// the segment kernel for the logit dtype (sigmoid scoring only; the dtype
// is a template parameter so that no run-time branch sits in the loads)
// and the fused mode FM (0 route only, 1 fused hash from the shared heads,
// 2 fused, any other selection: each kernel carries only its own path);
// *async_b: the dynamic shared memory of its cp.async stages
template <bool FAST, bool ASYNC, int FM, int DT>
route_kernel_t seg_pick_k(int setup)
{
    // ASYNC: 8 KB of stages per warp; 4 warps per block, 5 blocks per SM
    // (about 39 KB each with the histogram; 20 warps per SM, 102 registers);
    // always with the setup
    constexpr int NT = ASYNC ? 128 : 256, MINB = ASYNC ? 5 : 4;
    // setup: route_seg_kernel's SETUP_ (bit 1, the heads, only for FM 1)
    if (ASYNC || (setup == 3 && FM == 1))
        return route_seg_kernel<8, 8, FAST, NT, MINB, DT, ASYNC, FM, 3>;
    if (setup == 2 && FM == 1)
        return route_seg_kernel<8, 8, FAST, NT, MINB, DT, ASYNC, FM, 2>;
    if (setup & 1)
        return route_seg_kernel<8, 8, FAST, NT, MINB, DT, ASYNC, FM, 1>;
    return route_seg_kernel<8, 8, FAST, NT, MINB, DT, ASYNC, FM, 0>;
}

// 16 lanes per row (with the block setup only: setup 1 or 3): 8-warp
// blocks of 16 rows, or with `wide` 16-warp blocks of 32 rows (as many
// blocks, so histogram flushes, as with 8 lanes; runs 49-50: fused at T =
// 4096 6.01 us against 6.81 with 8-warp blocks, but 4.35 against 3.62 at
// T = 64, where 8-warp blocks spread the rows over twice the SMs)
template <bool FAST, int FM, int DT>
route_kernel_t seg_pick_16(int setup, bool wide)
{
    const bool heads = setup == 3 && FM == 1;
    if (wide)
        return heads ? route_seg_kernel<8, 16, FAST, 512, 2, DT, false, FM, 3>
                     : route_seg_kernel<8, 16, FAST, 512, 2, DT, false, FM, 1>;
    return heads ? route_seg_kernel<8, 16, FAST, 256, 4, DT, false, FM, 3>
                 : route_seg_kernel<8, 16, FAST, 256, 4, DT, false, FM, 1>;
}

// block shape: 0 8 lanes per row, 1 16 lanes in 8-warp blocks, 2 16 lanes
// in 16-warp blocks (not with the cp.async stages)
template <bool FAST, bool ASYNC, int FM, int DT>
route_kernel_t seg_pick_l(int setup, int shape)
{
    if (!ASYNC && shape > 0)
        return seg_pick_16<FAST, FM, DT>(setup, shape == 2);
    return seg_pick_k<FAST, ASYNC, FM, DT>(setup);
}

template <bool FAST, bool ASYNC, int FM>
route_kernel_t seg_pick_fm(int dt, int setup, int shape, size_t *async_b)
{
    constexpr int NT = ASYNC ? 128 : 256;
    if (dt == EPLB_DTYPE_F32) {
        *async_b = ASYNC ? SegSmem<256, EPLB_DTYPE_F32, NT / 32>::bytes : 0;
        return seg_pick_l<FAST, ASYNC, FM, EPLB_DTYPE_F32>(setup, shape);
    }
    *async_b = ASYNC ? SegSmem<256, EPLB_DTYPE_BF16, NT / 32>::bytes : 0;
    return dt == EPLB_DTYPE_F16 ? seg_pick_l<FAST, ASYNC, FM, EPLB_DTYPE_F16>(setup, shape)
                                : seg_pick_l<FAST, ASYNC, FM, EPLB_DTYPE_BF16>(setup, shape);
}

// the segment kernel for the logit dtype (sigmoid scoring only; the dtype
// is a template parameter so that no run-time branch sits in the loads),
// the fused mode FM (0 route only, 1 fused hash from the shared heads, 2
// fused, any other selection: each kernel carries only its own path) and
// the setup (route_seg_kernel); *async_b: the dynamic shared memory of its
// cp.async stages
template <bool FAST, bool ASYNC>
route_kernel_t seg_pick(int dt, int fm, int setup, int shape, size_t *async_b)
{
    return fm == 0   ? seg_pick_fm<FAST, ASYNC, 0>(dt, setup, shape, async_b)
           : fm == 1 ? seg_pick_fm<FAST, ASYNC, 1>(dt, setup, shape, async_b)
                     : seg_pick_fm<FAST, ASYNC, 2>(dt, setup, shape, async_b);
}

eplb_status_t launch_route(eplb_gpu_t *g, RouteArgs a)
{
    if (a.T == 0)
        return EPLB_OK;
    const bool aligned = ((uintptr_t)a.logits % 16) == 0 && a.E % 4 == 0;
    const bool grouped = a.G > 1 && a.TG < a.G;
    route_kernel_t fk = nullptr;
    int rows_per_warp = 1, ept = 0, lpr = 0; // ept/lpr: lanes-per-row kernels
    int threads = kThreads;
    const int gs = a.E / a.G;
    const bool groups_ok = !grouped || (gs % 4 == 0 && gs <= 128 && ((gs / 4) & (gs / 4 - 1)) == 0);
    int variant = g->variant;
    a.diag = g->diag;
    a.bulk = g->seg_bulk != 0 && g->cc_major >= 9;
    size_t async_b = 0; // dynamic shared memory of the segment kernel's stages
    // the fused kernels' shared histogram: P counters rounded up to 16
    // bytes, + 4 words for the segment kernel's shifted histogram (a.bulk)
    const size_t hist_max = (size_t)(((a.sp.P + 3) & ~3) + 4) * sizeof(int);
    if (variant == 0 || variant == 5 || variant == 6 || variant == 9 || variant == 14) {
        // segment kernel: DeepSeek-V3-like shapes only (sigmoid, groups of
        // 32, K <= 8, K <= 2 * topk_groups, a histogram within the opt-in
        // shared memory); other shapes take the warp kernel.  0 (default),
        // 6: fast sigmoid; 5: exact sigmoid; 9: fast sigmoid with cp.async
        // row prefetch; 14: 6 with 16 lanes per row
        const bool seg_ok = aligned && grouped && a.sig && a.E == 256 && a.G == 8 &&
                            a.K <= 8 && a.K <= 2 * a.TG;
        const int fm = !a.fused ? 0 : a.hash_fast ? 1 : 2;
        // one_group: at most 32 rows per SM (one row group per warp of one
        // 8-warp block with 8 lanes per row).  There the heads (fused
        // hash) are read through L1, not copied into shared memory: the
        // copy cost the fused kernel 0.05-0.12 us more than it saved at T
        // <= 4096 (run 36), and saved ~0.1 us at 16384 (runs 35, 37);
        // without the setup (T = 65536) it gained nothing (run 35).
        const bool one_group = a.T * a.L <= (int64_t)g->num_sms * 8 * 4;
        // the block setup while the grid is one or two row groups per warp
        // (rows of one wave: 4 blocks of 32 per SM; run 33);
        // EPLB_SEG_SETUP=0-3 forces route_seg_kernel's SETUP_ (tests,
        // timing: 1 the setup without the heads, 2 the heads only)
        const bool small = a.T * a.L <= 2 * (int64_t)g->num_sms * 4 * 32;
        const int setup = g->seg_setup >= 0 && g->seg_setup <= 3 ? g->seg_setup
                          : small && one_group                   ? 1
                          : small                                ? 3
                                                                 : 0;
        // lanes per row: 16 (2 rows per warp) on one_group grids, 8
        // elsewhere (16: route 0.5-0.9 us faster at T = 64-4096, 0.7 us
        // slower at 16384, where warps have several row groups, run 49);
        // variant 14 and EPLB_SEG_LANES=16 ask for 16 at every T, and
        // EPLB_SEG_LANES=8 for 8; 16 lanes only with the block setup (so at
        // most 2 x 128 rows per SM), never for variant 9 (its stages).
        // With 16 lanes, 16-warp blocks of 32 rows past one 8-warp block
        // per SM (wide; seg_pick_16)
        const bool want16 = variant == 14 || g->seg_lanes == 16 ||
                            (g->seg_lanes != 8 && one_group);
        const int lanes = variant != 9 && want16 && (setup & 1) ? 16 : 8;
        const bool wide = lanes == 16 && a.T * a.L > (int64_t)g->num_sms * 16;
        const int shape = lanes == 8 ? 0 : wide ? 2 : 1;
        const int rpw = 32 / lanes;
        route_kernel_t sk =
            variant == 5   ? seg_pick<false, false>(a.dt, fm, setup, shape, &async_b)
            : variant == 9 ? seg_pick<true, true>(a.dt, fm, setup, shape, &async_b)
                           : seg_pick<true, false>(a.dt, fm, setup, shape, &async_b);
        // static shared memory (~47 KB at 256 threads without stages) + the
        // stages + the histogram: past the 48 KB a launch gets without
        // opting in, up to the opt-in maximum (fewer blocks per SM then)
        cudaFuncAttributes fa;
        fa.sharedSizeBytes = (size_t)1 << 30;
        if (seg_ok && cudaFuncGetAttributes(&fa, sk) != cudaSuccess)
            (void)cudaGetLastError(); // not sticky: clear it, take the default
        const size_t dyn = async_b + (a.fused ? hist_max : 0);
        bool ok = seg_ok && fa.sharedSizeBytes + dyn <= g->smem_optin;
        if (ok && g->carveout >= 0 && g->carveout <= 100)
            ok = cudaFuncSetAttribute(sk, cudaFuncAttributePreferredSharedMemoryCarveout,
                                      g->carveout) == cudaSuccess;
        if (ok && fa.sharedSizeBytes + dyn > 48 * 1024)
            ok = cudaFuncSetAttribute(sk, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)dyn) == cudaSuccess;
        if (ok) {
            fk = sk;
            rows_per_warp = rpw;
            threads = variant == 9 ? 128 : wide ? 512 : 256;
        } else {
            (void)cudaGetLastError();
            async_b = 0;
        }
        variant = 8; // shapes the segment kernel lacks: the warp kernel
    }
    if (fk) {
        // chosen above
    } else if ((variant == 0 || variant == 7 || variant == 8) && aligned && groups_ok) {
        // 8: the warp kernel (the default for every shape before run 9)
        if (a.E <= 128)
            fk = route_warp_kernel<4, true>;
        else if (a.E <= 256)
            fk = route_warp_kernel<8, false, 4>; // occupancy beats prefetch (run 7)
        else
            fk = route_warp_kernel<16, false>; // prefetch spills at 16
    } else if (variant == 3 && aligned && groups_ok && a.E > 128 && a.E <= 256) {
        fk = route_warp_kernel<8, false>;
    } else if (variant == 4 && aligned && groups_ok && a.E > 128 && a.E <= 256) {
        fk = route_warp_kernel<8, true>;
    } else if (variant == 2 && aligned && a.K <= 8) {
        if (grouped && a.G == 8 && a.E == 256)
            fk = route_fast_kernel<32, 8, 8>, ept = 32, lpr = 8;
        else if (!grouped && a.E <= 64)
            fk = route_fast_kernel<16, 4, 1>, ept = 16, lpr = 4;
        else if (!grouped && a.E <= 128)
            fk = route_fast_kernel<16, 8, 1>, ept = 16, lpr = 8;
        else if (!grouped && a.E <= 256)
            fk = route_fast_kernel<32, 8, 1>, ept = 32, lpr = 8;
        if (fk)
            rows_per_warp = 32 / lpr;
    }
    if (!fk)
        fk = route_generic_kernel;
    // one wave of resident blocks (grid-stride loops): fewer histogram
    // flushes than one block per few rows
    size_t smem = (lpr && a.bias ? (size_t)ept * lpr * sizeof(float) : 0) + async_b;
    int per_sm = 1;
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fk, threads,
                                                  smem + (a.fused ? hist_max : 0));
    // no more blocks than fit at once: one more (the grid up to run 19)
    // waited for a free slot and ran its rows after everyone else's (route
    // at T = 65536 3-7% slower, run 20)
    int64_t cap = (int64_t)g->num_sms * (per_sm > 0 ? per_sm : 1) / a.L;
    cap = cap < 1 ? 1 : cap;
    const int64_t rows_per_block = (threads / 32) * rows_per_warp;
    int64_t want = (a.T + rows_per_block - 1) / rows_per_block;
    int gx = (int)(want < cap ? want : cap);
    // direct (fire-and-forget) global atomics instead of the shared
    // histogram: always with 16 or more count stripes (32 stripes: fused
    // 0.2-0.7 us faster at T = 1024-65536 than with 2 and the histogram,
    // also with half of all entries on 8 hot experts, runs 95-96; with 61
    // layers a call 0.3-1.6% slower than 2 stripes and the histogram from
    // T = 4096 on, faster at 512, run 113: kept); with
    // fewer stripes only for small batches, where the histogram's barrier
    // and flush after the block's last row cost more than the reductions'
    // contention: up to two entries per slot in each layer (the rule until
    // run 92), or up to 4096 + 8 P entries in all layers (2 stripes: fused
    // 0.26-0.35 us faster at T = 256-512 and 0-0.17 at 640-768 with 288
    // slots, 0.1 at 1024 with 768 slots, slower from 1024 with 288 and at
    // 1536 with 768, runs 92-93;
    // at T = 4096 direct atomics into one stripe cost 6 us more, H100, run
    // 5).  EPLB_DIRECT_MAX (entries in all layers) overrides (timing)
    const int64_t entries = a.T * a.K * a.L, P64 = a.sp.P;
    const bool direct = g->direct_max >= 0 ? entries <= (int64_t)g->direct_max
                                           : a.nstripes >= 16 || a.T * a.K <= 2 * P64 ||
                                                 entries <= 4096 + 8 * P64;
    a.use_hist = a.fused && a.sp.P <= EPLB_GPU_SMEM_HIST_MAX && !direct;
    if (a.use_hist)
        smem += hist_max;
    fk<<<dim3(gx, a.L), threads, smem, g->stream>>>(a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return eplb_cuda_fail(e, "route kernel", __FILE__, __LINE__);
    return EPLB_OK;
}

eplb_status_t route_args(RouteArgs *a, int32_t *d_ids, float *d_weights,
                         const void *d_logits, eplb_dtype_t dt, int64_t T, int L,
                         const float *d_bias, const eplb_route_cfg_t *cfg, bool ids_opt)
{
    EPLB_CHECK(eplb_route_cfg_check(cfg));
    if ((!d_ids && !ids_opt) || !d_logits || T < 0 || L < 1 || L > 65535)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu route: ids/logits NULL or bad shape T=%lld L=%d",
                              (long long)T, L);
    if (dt != EPLB_DTYPE_F32 && dt != EPLB_DTYPE_F16 && dt != EPLB_DTYPE_BF16)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu route: unknown dtype %d", (int)dt);
    RouteArgs r;
    memset(&r, 0, sizeof r);
    r.ids = d_ids;
    r.w = d_weights;
    r.logits = d_logits;
    r.bias = d_bias;
    r.T = T;
    r.L = L;
    r.dt = (int)dt;
    r.E = cfg->num_experts;
    r.K = cfg->top_k;
    r.G = cfg->num_groups;
    r.TG = cfg->topk_groups;
    r.renorm = cfg->renormalize;
    r.sig = cfg->scoring == EPLB_SCORING_SIGMOID;
    r.scale = cfg->routed_scaling_factor;
    *a = r;
    return EPLB_OK;
}

#endif
} // namespace

#ifndef EPLB_ROUTE_DEVICE_ONLY

extern "C" eplb_status_t eplb_gpu_route(eplb_gpu_t *g, int32_t *d_ids, float *d_weights,
                                        const void *d_logits, eplb_dtype_t dt, int64_t T,
                                        int L, const float *d_bias,
                                        const eplb_route_cfg_t *cfg)
{
    if (!g)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu route: no handle");
    RouteArgs a;
    EPLB_CHECK(route_args(&a, d_ids, d_weights, d_logits, dt, T, L, d_bias, cfg, false));
    return launch_route(g, a);
}

extern "C" eplb_status_t eplb_gpu_fused(eplb_gpu_t *g, int32_t *d_ids, float *d_weights,
                                        int32_t *d_phys, int32_t *d_counts,
                                        const void *d_logits, eplb_dtype_t dt, int64_t T,
                                        int L, const float *d_bias,
                                        const eplb_route_cfg_t *rcfg,
                                        const eplb_select_cfg_t *scfg,
                                        eplb_gpu_rows_t rows)
{
    if (!g || !d_counts || !scfg)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu fused: NULL argument");
    RouteArgs a;
    const bool batch_mode =
        scfg->mode == EPLB_SELECT_RR_BLOCK || scfg->mode == EPLB_SELECT_BALANCED;
    // d_ids may be NULL (physical ids only, as a serving engine keeps them)
    // where selection happens in the routing kernel
    EPLB_CHECK(route_args(&a, d_ids, d_weights, d_logits, dt, T, L, d_bias, rcfg, !batch_mode));
    if (!d_ids && !d_phys)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu fused: d_ids and d_phys both NULL");
    EPLB_CHECK(eplb_gpu_sel_params(&a.sp, g, T, L, scfg, rows));
    if (a.sp.E != a.E)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "gpu fused: maps have E=%d, routing E=%d", a.sp.E, a.E);
    // the segment kernel's hash path: 32-bit token rows, the heads (16-bit
    // slots, R <= 255)
    a.hash_fast = scfg->mode == EPLB_SELECT_HASH && !rows.d_trow && T <= 0x7fffffff &&
                  a.sp.block <= 0x7fffffff && a.sp.hhead;
    if (batch_mode) {
        EPLB_CHECK(launch_route(g, a));
        return eplb_gpu_launch_select(g, d_phys, d_counts, d_ids, T, L, a.K, &a.sp);
    }
    a.fused = 1;
    a.phys = d_phys;
    a.counts = d_counts;
    a.nstripes = eplb_count_stripes(L, a.sp.P);
    if (g->count_stripes > 0 && g->count_stripes < a.nstripes)
        a.nstripes = g->count_stripes; // EPLB_COUNT_STRIPES (timing)
    a.stripe_step = eplb_count_stride(L, a.sp.P);
    return launch_route(g, a);
}
#endif
