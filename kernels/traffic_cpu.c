/* traffic_cpu.c - CPU reference of the all-to-all traffic count: per layer
 * and GPU, the (token, GPU) pairs a step's dispatch sends and receives
 * within a node and across nodes (kernels.h).  The replay's cost model
 * (sim/cost.c) turns them into time; the GPU replay counts them with
 * eplb_gpu_traffic_count (kernels/traffic.cu) instead of copying the
 * replica ids back. */
#include "kernels.h"

#include <string.h>

#include "checks.h"

eplb_status_t eplb_traffic_check(int64_t T, int L, int K, int l0, int nl,
                                 const eplb_traffic_cfg_t *c)
{
    if (!c)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "traffic: no configuration");
    const int D = c->num_gpus, N = c->num_nodes, P = c->num_slots;
    if (D < 1 || N < 1 || D % N || P < D || P % D)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "traffic: D=%d GPUs, N=%d nodes, P=%d slots: N must "
                              "divide D and D divide P",
                              D, N, P);
    if (T < 0 || L < 1 || K < 1 || K > EPLB_MAX_TOPK || l0 < 0 || nl < 0 || l0 > L - nl)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "traffic: bad shape T=%lld L=%d K=%d layers %d+%d",
                              (long long)T, L, K, l0, nl);
    return EPLB_OK;
}

/* Up to 64 GPUs and 4096 slots: the slot's GPU from a table and a token's
 * destination GPUs as a bit set, counted without a branch per entry (with
 * a division per entry and a search of the token's earlier GPUs this was
 * 4.9% of a CPU replay's samples, with the bit sets 2.8%: docs/perf/sim.md). */
#define FAST_GPUS 64
#define FAST_SLOTS 4096

static void count_fast(int64_t *out, const int32_t *phys, int64_t T, int L, int K, int l0,
                       int nl, const eplb_traffic_cfg_t *c, const uint16_t *src)
{
    const int D = c->num_gpus, P = c->num_slots, Sg = P / D, gpn = D / c->num_nodes;
    const int64_t blk = (T + D - 1) / D;
    uint8_t gpu_of[FAST_SLOTS];
    uint64_t node_mask[FAST_GPUS]; /* the GPUs of GPU d's node */
    for (int d = 0; d < D; d++) {
        memset(gpu_of + (size_t)d * Sg, d, (size_t)Sg);
        const int n0 = d / gpn * gpn;
        node_mask[d] = (gpn == 64 ? ~(uint64_t)0 : (((uint64_t)1 << gpn) - 1)) << n0;
    }
    /* per (token, layer): the set of GPUs its entries go to, less its own;
     * sent = the set's size, received = one per member */
    for (int64_t t = 0; t < T; t++) {
        const int sg = src ? src[t] % D : (int)(t / blk);
        const uint64_t own = (uint64_t)1 << sg, near = node_mask[sg];
        for (int i = 0; i < nl; i++) {
            const int32_t *ph = phys + ((size_t)t * L + l0 + i) * K;
            int64_t *si = out + (size_t)i * 4 * D, *se = si + D, *ri = se + D, *re = ri + D;
            uint64_t m = 0;
            for (int k = 0; k < K; k++) {
                const int32_t p = ph[k];
                const int ok = (uint32_t)p < (uint32_t)P; /* -1: unplaced */
                m |= (uint64_t)ok << gpu_of[ok ? p : 0];
            }
            m &= ~own;
            uint64_t in = m & near, away = m & ~near;
            si[sg] += __builtin_popcountll(in);
            se[sg] += __builtin_popcountll(away);
            for (; in; in &= in - 1)
                ri[__builtin_ctzll(in)]++;
            for (; away; away &= away - 1)
                re[__builtin_ctzll(away)]++;
        }
    }
}

eplb_status_t eplb_traffic_count_ref(int64_t *out, const int32_t *phys, int64_t T, int L,
                                     int K, int l0, int nl, const eplb_traffic_cfg_t *c,
                                     const uint16_t *src)
{
    EPLB_CHECK(eplb_traffic_check(T, L, K, l0, nl, c));
    const int D = c->num_gpus, P = c->num_slots, Sg = P / D, gpn = D / c->num_nodes;
    const int64_t blk = (T + D - 1) / D;
    memset(out, 0, 4 * (size_t)nl * D * sizeof *out);
    for (int i = 0; i < nl; i++) {
        int64_t *si = out + (size_t)i * 4 * D, *se = si + D, *ri = se + D, *re = ri + D;
        for (int64_t t = 0; t < T; t++) {
            const int sg = src ? src[t] % D : (int)(t / blk);
            const int32_t *ph = phys + ((size_t)t * L + l0 + i) * K;
            int dst[EPLB_MAX_TOPK], nd = 0;
            for (int k = 0; k < K; k++) {
                if (ph[k] < 0 || ph[k] >= P)
                    continue;
                int d = ph[k] / Sg, dup = 0;
                for (int j = 0; j < nd; j++)
                    dup |= dst[j] == d;
                if (dup || d == sg)
                    continue;
                dst[nd++] = d;
                if (d / gpn == sg / gpn) {
                    si[sg]++;
                    ri[d]++;
                } else {
                    se[sg]++;
                    re[d]++;
                }
            }
        }
    }
    return EPLB_OK;
}

eplb_status_t eplb_traffic_count_cpu(int64_t *out, const int32_t *phys, int64_t T, int L,
                                     int K, int l0, int nl, const eplb_traffic_cfg_t *c,
                                     const uint16_t *src)
{
    EPLB_CHECK(eplb_traffic_check(T, L, K, l0, nl, c));
    if (c->num_gpus > FAST_GPUS || c->num_slots > FAST_SLOTS)
        return eplb_traffic_count_ref(out, phys, T, L, K, l0, nl, c, src);
    memset(out, 0, 4 * (size_t)nl * c->num_gpus * sizeof *out);
    count_fast(out, phys, T, L, K, l0, nl, c, src);
    return EPLB_OK;
}
