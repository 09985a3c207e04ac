// traffic.cu - the all-to-all traffic count on the GPU (eplb_gpu_traffic_count;
// CPU reference eplb_traffic_count_cpu in traffic_cpu.c, same counts).
//
// Blocks of one layer (grid y) over the step's tokens: each thread takes a
// token's K replica slots (one 32-byte sector for K = 8), makes the set of
// GPUs they lie on as a 64-bit mask less the token's own GPU, and adds the
// set's size to its GPU's sent counter and one to each member's received
// counter, within the node or across nodes.  Counters go to a shared
// histogram of 4 x D, then one global atomic per non-zero counter.
#include "gpu_impl.h"

namespace {

constexpr int kThreads = 256;
constexpr int kTokensPerThread = 4; // tokens per thread before another block

__global__ void __launch_bounds__(kThreads)
traffic_kernel(int32_t *__restrict__ out, const int32_t *__restrict__ phys, int64_t T,
               int L, int K, int D, int P, int Sg, int gpn, int64_t blk,
               const uint16_t *__restrict__ src)
{
    __shared__ int h[4 * EPLB_GPU_TRAFFIC_MAX_GPUS];
    const int l = blockIdx.y;
    for (int q = threadIdx.x; q < 4 * D; q += blockDim.x)
        h[q] = 0;
    __syncthreads();
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < T;
         t += (int64_t)gridDim.x * blockDim.x) {
        const int sg = src ? src[t] % D : (int)(t / blk);
        const int32_t *ph = phys + ((size_t)t * L + l) * K;
        uint64_t m = 0;
        for (int k = 0; k < K; k++) {
            const int32_t p = __ldg(ph + k);
            if ((uint32_t)p < (uint32_t)P) // -1: unplaced
                m |= 1ull << (p / Sg);
        }
        m &= ~(1ull << sg);
        const int n0 = sg / gpn * gpn;
        const uint64_t near = (gpn == 64 ? ~0ull : ((1ull << gpn) - 1)) << n0;
        uint64_t in = m & near, away = m & ~near;
        if (in)
            atomicAdd(&h[sg], __popcll(in));
        if (away)
            atomicAdd(&h[D + sg], __popcll(away));
        for (; in; in &= in - 1)
            atomicAdd(&h[2 * D + __ffsll((long long)in) - 1], 1);
        for (; away; away &= away - 1)
            atomicAdd(&h[3 * D + __ffsll((long long)away) - 1], 1);
    }
    __syncthreads();
    int32_t *o = out + (size_t)l * 4 * D;
    for (int q = threadIdx.x; q < 4 * D; q += blockDim.x)
        if (h[q])
            atomicAdd(&o[q], h[q]);
}

} // namespace

extern "C" eplb_status_t eplb_gpu_traffic_count(eplb_gpu_t *g, int32_t *d_out,
                                                const int32_t *d_phys, int64_t T, int L,
                                                int K, const eplb_traffic_cfg_t *c,
                                                const uint16_t *d_src_gpu)
{
    if (!g || !d_out || (!d_phys && T > 0))
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu traffic: NULL argument");
    EPLB_CHECK(eplb_traffic_check(T, L, K, 0, L, c));
    const int D = c->num_gpus;
    if (D > EPLB_GPU_TRAFFIC_MAX_GPUS)
        return eplb_error_set(EPLB_ERR_UNSUPPORTED,
                              "gpu traffic: %d GPUs, the kernel counts up to %d", D,
                              EPLB_GPU_TRAFFIC_MAX_GPUS);
    if (L > 65535)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "gpu traffic: L=%d above 65535", L);
    cudaError_t e = cudaMemsetAsync(d_out, 0, (size_t)L * 4 * D * sizeof(int32_t), g->stream);
    if (e != cudaSuccess)
        return eplb_cuda_fail(e, "traffic memset", __FILE__, __LINE__);
    if (T == 0)
        return EPLB_OK;
    const int64_t per_block = (int64_t)kThreads * kTokensPerThread;
    int64_t gx = (T + per_block - 1) / per_block;
    const int64_t cap = (int64_t)g->num_sms * 8; // a grid-stride loop past that
    gx = gx < cap ? gx : cap;
    const int P = c->num_slots;
    traffic_kernel<<<dim3((unsigned)gx, (unsigned)L), kThreads, 0, g->stream>>>(
        d_out, d_phys, T, L, K, D, P, P / D, D / c->num_nodes, (T + D - 1) / D, d_src_gpu);
    e = cudaGetLastError();
    if (e != cudaSuccess)
        return eplb_cuda_fail(e, "traffic kernel", __FILE__, __LINE__);
    return EPLB_OK;
}
