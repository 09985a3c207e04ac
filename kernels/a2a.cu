// a2a.cu - NCCL all-to-all timing for `bench a2a` (kernels.h, "NCCL
// all-to-all measurement"): one process, one communicator and one stream
// per GPU, grouped ncclSend/ncclRecv to every peer.  NCCL itself comes
// from nccl.cu's table, loaded at the first call.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "gpu_impl.h"
#include "nccl_impl.h"

namespace {

constexpr unsigned long long GATE_TIMEOUT_NS = 1000000000ull; // 1 s
// wait_all's limit on one exchange: it watches the device side (the end
// events and NCCL's asynchronous errors).  NCCL's host calls block with
// these (blocking) communicators: a hang inside them is not bounded here
// (mutant W01, peers that do not match, spins in ncclGroupEnd for good;
// kernels/dev/README.md)
constexpr double EXCHANGE_TIMEOUT_S = 60;
constexpr size_t CHUNK_ALIGN = 16;
constexpr unsigned char POISON = 0xff; // never a pattern byte (1..254)

__device__ __forceinline__ unsigned long long global_ns()
{
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// The gate: spin until the host sets *go (mapped host memory), so that an
// exchange queued on every stream starts on all GPUs within the time of
// a read over PCIe, whatever the order in which the host launched it.
// After timeout_ns it gives up and says so in *timed_out: NCCL then held
// the host (waiting for the device) before the exchange was queued.
__global__ void gate_kernel(const volatile int *go, volatile int *timed_out,
                            unsigned long long timeout_ns)
{
    const unsigned long long t0 = global_ns();
    while (*go == 0) {
        if (global_ns() - t0 > timeout_ns) {
            *timed_out = 1;
            return;
        }
        __nanosleep(200);
    }
}

// Byte of the chunk GPU src sends to GPU dst: 1..254, distinct over the
// sources of one destination (for up to 254 GPUs).
unsigned char pattern(int src, int dst) { return (unsigned char)(1 + (src * 37 + dst * 11) % 254); }

struct rank_t {
    int dev = -1;
    cudaStream_t stream = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    unsigned char *send = NULL, *recv = NULL;
    int *go = NULL, *timed_out = NULL; // device views of the host flags
    ncclComm_t comm = NULL;
};

struct ctx_t {
    const eplb_nccl_t *nccl = NULL;
    int n = 0, peers = 0, self = 0;
    std::vector<rank_t> d;
    volatile int *go = NULL, *timed_out = NULL; // pinned, mapped
    void *host_flags = NULL;
};

// Peer j (0 .. peers-1) of rank r: every other rank in ascending order, or
// r itself for the self-exchange.
int peer_of(const ctx_t &c, int r, int j) { return c.self ? r : j < r ? j : j + 1; }

eplb_status_t exchange(const ctx_t &c, size_t chunk)
{
    eplb_status_t st = EPLB_OK;
    EPLB_NCCL_CHECK_GOTO(c.nccl->GroupStart(), st, out);
    for (int r = 0; r < c.n; r++)
        for (int j = 0; j < c.peers; j++) {
            const int q = peer_of(c, r, j);
            const rank_t &x = c.d[r];
            EPLB_NCCL_CHECK_GOTO(c.nccl->Send(x.send + j * chunk, chunk, ncclUint8, q, x.comm,
                                              x.stream),
                                 st, group);
            EPLB_NCCL_CHECK_GOTO(c.nccl->Recv(x.recv + j * chunk, chunk, ncclUint8, q, x.comm,
                                              x.stream),
                                 st, group);
        }
group:
    {
        // a group once started is ended, also after a failed call in it
        const ncclResult_t r = c.nccl->GroupEnd();
        if (st == EPLB_OK && r != ncclSuccess)
            st = eplb_nccl_fail(r, "ncclGroupEnd()", __FILE__, __LINE__);
    }
out:
    return st;
}

// Wait for every GPU's end event, at most EXCHANGE_TIMEOUT_S after t0,
// looking at NCCL's asynchronous errors every millisecond meanwhile.
eplb_status_t wait_all(const ctx_t &c, double t0, size_t bytes)
{
    for (int r = 0; r < c.n; r++) {
        for (double last = eplb_now();;) {
            const cudaError_t e = cudaEventQuery(c.d[r].e1);
            if (e == cudaSuccess)
                break;
            if (e != cudaErrorNotReady)
                return eplb_cuda_fail(e, "cudaEventQuery(end of exchange)", __FILE__, __LINE__);
            const double now = eplb_now();
            if (now - last < 1e-3)
                continue;
            last = now;
            ncclResult_t ae = ncclSuccess;
            const ncclResult_t qr = c.nccl->CommGetAsyncError(c.d[r].comm, &ae);
            if (qr != ncclSuccess)
                return eplb_nccl_fail(qr, "ncclCommGetAsyncError()", __FILE__, __LINE__);
            if (ae != ncclSuccess && ae != ncclInProgress)
                return eplb_nccl_fail(ae, "all-to-all exchange (asynchronous error)", __FILE__,
                                      __LINE__);
            if (now - t0 > EXCHANGE_TIMEOUT_S)
                return eplb_error_set(EPLB_ERR_CUDA,
                                      "all-to-all of %zu bytes per GPU: GPU %d not done after "
                                      "%.0f s (NCCL hung?)",
                                      bytes, c.d[r].dev, EXCHANGE_TIMEOUT_S);
        }
    }
    return EPLB_OK;
}

// One exchange of `chunk` bytes per peer; *secs (may be NULL): the longest
// of the GPUs' intervals between their events around it.  Gated: the
// start events follow the gate; *gate_timed_out (NULL when not gated)
// says whether a gate gave up.  Gates once launched are released, also
// when a later launch fails.
eplb_status_t one_exchange(const ctx_t &c, size_t chunk, int gated, double *secs,
                           int *gate_timed_out)
{
    eplb_status_t st = EPLB_OK;
    double t0 = eplb_now();
    if (gated) {
        *c.go = 0;
        *c.timed_out = 0;
        __sync_synchronize();
    }
    for (int r = 0; r < c.n; r++) {
        const rank_t &x = c.d[r];
        EPLB_CUDA_CHECK_GOTO(cudaSetDevice(x.dev), st, release);
        if (gated) {
            gate_kernel<<<1, 1, 0, x.stream>>>(x.go, x.timed_out, GATE_TIMEOUT_NS);
            EPLB_CUDA_CHECK_GOTO(cudaGetLastError(), st, release);
        }
        EPLB_CUDA_CHECK_GOTO(cudaEventRecord(x.e0, x.stream), st, release);
    }
    t0 = eplb_now();
    EPLB_CHECK_GOTO(exchange(c, chunk), st, release);
    for (int r = 0; r < c.n; r++) {
        EPLB_CUDA_CHECK_GOTO(cudaSetDevice(c.d[r].dev), st, release);
        EPLB_CUDA_CHECK_GOTO(cudaEventRecord(c.d[r].e1, c.d[r].stream), st, release);
    }
release:
    if (gated) {
        __sync_synchronize();
        *c.go = 1;
    }
    if (st != EPLB_OK)
        return st;
    EPLB_CHECK(wait_all(c, t0, chunk * c.peers));
    if (gated) {
        __sync_synchronize();
        *gate_timed_out = *c.timed_out != 0;
    }
    if (secs) {
        double worst = 0;
        for (int r = 0; r < c.n; r++) {
            float ms = 0;
            EPLB_CUDA_CHECK(cudaEventElapsedTime(&ms, c.d[r].e0, c.d[r].e1));
            worst = std::max(worst, ms * 1e-3);
        }
        *secs = worst;
    }
    return EPLB_OK;
}

// Send chunks filled with their pair's pattern, receive buffers poisoned.
eplb_status_t fill(const ctx_t &c, size_t chunk)
{
    for (int r = 0; r < c.n; r++) {
        const rank_t &x = c.d[r];
        EPLB_CUDA_CHECK(cudaSetDevice(x.dev));
        for (int j = 0; j < c.peers; j++)
            EPLB_CUDA_CHECK(cudaMemsetAsync(x.send + j * chunk, pattern(r, peer_of(c, r, j)),
                                            chunk, x.stream));
        EPLB_CUDA_CHECK(cudaMemsetAsync(x.recv, POISON, chunk * c.peers, x.stream));
    }
    for (int r = 0; r < c.n; r++) {
        EPLB_CUDA_CHECK(cudaSetDevice(c.d[r].dev));
        EPLB_CUDA_CHECK(cudaStreamSynchronize(c.d[r].stream));
    }
    return EPLB_OK;
}

// The first, middle and last byte of every received chunk carry the
// sender's pattern.
eplb_status_t check(const ctx_t &c, size_t chunk)
{
    const size_t at[3] = {0, chunk / 2, chunk - 1};
    for (int r = 0; r < c.n; r++) {
        EPLB_CUDA_CHECK(cudaSetDevice(c.d[r].dev));
        for (int j = 0; j < c.peers; j++)
            for (size_t k : at) {
                unsigned char b = 0;
                const int q = peer_of(c, r, j);
                EPLB_CUDA_CHECK(cudaMemcpy(&b, c.d[r].recv + j * chunk + k, 1,
                                           cudaMemcpyDeviceToHost));
                if (b != pattern(q, r))
                    return eplb_error_set(EPLB_ERR_CUDA,
                                          "all-to-all of %zu bytes per peer: GPU %d got byte "
                                          "0x%02x at %zu of its chunk from GPU %d, 0x%02x sent%s",
                                          chunk, c.d[r].dev, b, k, c.d[q].dev, pattern(q, r),
                                          b == POISON ? " (never written)" : "");
            }
    }
    return EPLB_OK;
}

eplb_status_t setup(ctx_t &c, int want, int self, size_t min_bytes, size_t max_bytes,
                    eplb_a2a_info_t *info)
{
    int visible = 0;
    EPLB_CHECK(eplb_cuda_device_count(&visible));
    const int n = want > 0 ? want : visible;
    if (n > visible)
        return eplb_error_set(EPLB_ERR_NO_DEVICE, "%d GPUs asked for, %d visible", n, visible);
    if (n < 2 && !self) // the machine's, as --gpus 3 of 2 (exit 1)
        return eplb_error_set(EPLB_ERR_NO_DEVICE,
                              "%d GPU (of %d visible): an all-to-all needs 2 or more; one GPU "
                              "has no link to measure",
                              n, visible);
    c.n = n;
    c.self = n == 1;
    c.peers = c.self ? 1 : n - 1;
    // before NCCL starts: every size must give each peer a chunk
    if (min_bytes / c.peers / CHUNK_ALIGN == 0)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--sizes: %zu bytes per GPU is less than %zu bytes for each of "
                              "its %d peers",
                              min_bytes, CHUNK_ALIGN, c.peers);
    c.d.resize(n);
    memset(info, 0, sizeof *info);
    info->gpus = n;
    info->peers = c.peers;
    info->nccl_version = c.nccl->version;
    eplb_nccl_version_text(info->nccl, sizeof info->nccl, c.nccl->version);
    info->same_model = 1;
    for (int r = 0; r < n; r++) {
        cudaDeviceProp prop;
        EPLB_CUDA_CHECK(cudaGetDeviceProperties(&prop, r));
        if (r == 0)
            snprintf(info->gpu_name, sizeof info->gpu_name, "%.*s",
                     (int)sizeof info->gpu_name - 1, prop.name);
        else if (strncmp(info->gpu_name, prop.name, sizeof info->gpu_name - 1))
            info->same_model = 0;
        for (int q = 0; q < n; q++) {
            int ok = 0;
            if (q != r)
                EPLB_CUDA_CHECK(cudaDeviceCanAccessPeer(&ok, r, q));
            info->p2p_pairs += ok != 0;
        }
    }
    void *flags = NULL;
    EPLB_CUDA_CHECK(cudaHostAlloc(&flags, 2 * sizeof(int),
                                  cudaHostAllocMapped | cudaHostAllocPortable));
    c.host_flags = flags;
    c.go = (volatile int *)flags;
    c.timed_out = c.go + 1;
    std::vector<int> devs(n);
    for (int r = 0; r < n; r++) {
        rank_t &x = c.d[r];
        x.dev = devs[r] = r;
        EPLB_CUDA_CHECK(cudaSetDevice(r));
        EPLB_CUDA_CHECK(cudaStreamCreateWithFlags(&x.stream, cudaStreamNonBlocking));
        EPLB_CUDA_CHECK(cudaEventCreate(&x.e0));
        EPLB_CUDA_CHECK(cudaEventCreate(&x.e1));
        EPLB_CUDA_CHECK(cudaMalloc((void **)&x.send, max_bytes));
        EPLB_CUDA_CHECK(cudaMalloc((void **)&x.recv, max_bytes));
        void *p = NULL;
        EPLB_CUDA_CHECK(cudaHostGetDevicePointer(&p, flags, 0));
        x.go = (int *)p;
        x.timed_out = x.go + 1;
        // load the gate now: under lazy module loading its first launch
        // would load it while another GPU's gate spins
        cudaFuncAttributes fa;
        EPLB_CUDA_CHECK(cudaFuncGetAttributes(&fa, gate_kernel));
    }
    std::vector<ncclComm_t> comms(n, (ncclComm_t)NULL);
    eplb_status_t st = EPLB_OK;
    EPLB_NCCL_CHECK_GOTO(c.nccl->CommInitAll(comms.data(), n, devs.data()), st, out);
out:
    // after a failure, what it made (if anything) is aborted by teardown
    for (int r = 0; r < n; r++)
        c.d[r].comm = comms[r];
    return st;
}

// Everything setup made, in reverse; comms aborted rather than destroyed
// after a failure (an exchange may still be in flight).
void teardown(ctx_t &c, int failed)
{
    for (auto &x : c.d) {
        if (x.comm && failed)
            c.nccl->CommAbort(x.comm);
        else if (x.comm)
            c.nccl->CommDestroy(x.comm);
    }
    for (auto &x : c.d) {
        if (x.dev < 0 || cudaSetDevice(x.dev) != cudaSuccess)
            continue;
        if (x.stream)
            cudaStreamSynchronize(x.stream);
        cudaFree(x.recv);
        cudaFree(x.send);
        if (x.e1)
            cudaEventDestroy(x.e1);
        if (x.e0)
            cudaEventDestroy(x.e0);
        if (x.stream)
            cudaStreamDestroy(x.stream);
    }
    if (c.host_flags)
        cudaFreeHost(c.host_flags);
    (void)cudaGetLastError();
}

} // namespace

extern "C" int eplb_a2a_built(void) { return 1; }

extern "C" eplb_status_t eplb_a2a_measure(eplb_a2a_point_t *points, eplb_a2a_info_t *info,
                                          const size_t *sizes, int nsizes,
                                          const eplb_a2a_opts_t *o)
{
    if (!points || !sizes || nsizes < 1 || !o || o->reps < 1 || o->warmup < 0)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "a2a measure: no sizes, or reps < 1 or warmup < 0");
    for (int i = 0; i < nsizes; i++)
        if (sizes[i] < CHUNK_ALIGN)
            return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                  "a2a measure: %zu bytes per GPU is below 16", sizes[i]);
    eplb_a2a_info_t inf = {}; // *info is set on success only
    ctx_t c;
    EPLB_CHECK(eplb_nccl_load(&c.nccl)); // names the library where it is missing
    int caller_dev = 0;
    if (cudaGetDevice(&caller_dev) != cudaSuccess) {
        (void)cudaGetLastError(); // (no device: setup says so)
        caller_dev = -1;
    }
    eplb_status_t st = EPLB_OK;
    std::vector<eplb_a2a_point_t> pts(nsizes);
    std::vector<double> t;
    size_t max_bytes = CHUNK_ALIGN, min_bytes = SIZE_MAX;
    int gated = 1;
    for (int i = 0; i < nsizes; i++) {
        max_bytes = std::max(max_bytes, sizes[i]);
        min_bytes = std::min(min_bytes, sizes[i]);
    }
    EPLB_CHECK_GOTO(setup(c, o->gpus, o->self, min_bytes, max_bytes, &inf), st, out);
    for (int i = 0; i < nsizes; i++) {
        const size_t chunk = sizes[i] / c.peers / CHUNK_ALIGN * CHUNK_ALIGN;
        EPLB_CHECK_GOTO(fill(c, chunk), st, out);
        EPLB_CHECK_GOTO(one_exchange(c, chunk, 0, NULL, NULL), st, out);
        EPLB_CHECK_GOTO(check(c, chunk), st, out);
        for (int w = 1; w < o->warmup; w++)
            EPLB_CHECK_GOTO(one_exchange(c, chunk, 0, NULL, NULL), st, out);
        if (i == 0) {
            // the gate once untimed: if NCCL held the host until it gave
            // up, time every exchange from its launch instead
            int timed_out = 0;
            EPLB_CHECK_GOTO(one_exchange(c, chunk, 1, NULL, &timed_out), st, out);
            gated = !timed_out;
        }
        t.clear();
        for (int r = 0; r < o->reps; r++) {
            double s = 0;
            int timed_out = 0;
            // a gate that gives up now (the host held up for 1 s) is
            // retried twice; then NCCL holds the host at this size, and
            // this size and the rest are timed from the launch instead
            for (int tries = 0;; tries++) {
                timed_out = 0;
                EPLB_CHECK_GOTO(one_exchange(c, chunk, gated, &s, gated ? &timed_out : NULL),
                                st, out);
                if (!timed_out)
                    break;
                if (tries == 2) {
                    gated = 0;
                    break;
                }
            }
            if (timed_out) { // this size again, all of it ungated
                t.clear();
                r = -1;
                continue;
            }
            t.push_back(s);
        }
        std::sort(t.begin(), t.end());
        pts[i].bytes = chunk * c.peers;
        pts[i].peer_bytes = chunk;
        pts[i].min_s = t.front();
        pts[i].max_s = t.back();
        pts[i].median_s = t.size() % 2 ? t[t.size() / 2]
                                       : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
    }
out:
    teardown(c, st != EPLB_OK);
    if (caller_dev >= 0)
        cudaSetDevice(caller_dev);
    if (st == EPLB_OK) {
        inf.gated = gated;
        if (info)
            *info = inf;
        std::copy(pts.begin(), pts.end(), points);
    }
    return st;
}
