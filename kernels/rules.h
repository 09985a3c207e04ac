/* rules.h - the integer rules of replica selection and the balanced planner,
 * written once and compiled both by the C compiler (CPU reference) and by
 * nvcc (kernels), so that CPU and GPU choose bit-identical replicas.
 * Internal to kernels/: not part of the public API. */
#ifndef EPLB_KERNELS_RULES_H
#define EPLB_KERNELS_RULES_H

#include <stdint.h>

#include "kernels.h" /* eplb_select_mode_t */

#ifdef __CUDACC__
#define EPLB_HD static __host__ __device__ __forceinline__
#else
#define EPLB_HD static inline
#endif

/* Entries per round-robin block of the rr-block mode (TensorRT-LLM). */
#define EPLB_RR_BLOCK 1024

/* Knuth's multiplicative hash constant, as vLLM uses it (PR #40810). */
#define EPLB_HASH_MUL 2654435769u

EPLB_HD uint32_t eplb_rule_hash(uint32_t t) { return t * EPLB_HASH_MUL; }

/* Division of 32-bit unsigned n by an invariant d >= 1 with one multiply-
 * high and shifts (Granlund and Montgomery, "Division by invariant integers
 * using multiplication", PLDI 1994, fig. 4.1): with l = ceil(log2 d),
 * m = floor(2^32 (2^l - d) / d) + 1, q = (t + ((n - t) >> sh1)) >> sh2
 * where t = mulhi(m, n), sh1 = min(l, 1), sh2 = max(l - 1, 0).  Exact for
 * every n and d in [1, 2^32); tests/test_kernels.c checks it against '/'. */
typedef struct {
    uint32_t d, m;
    int sh1, sh2;
} eplb_fastdiv_t;

EPLB_HD eplb_fastdiv_t eplb_fastdiv_make(uint32_t d)
{
    eplb_fastdiv_t f;
    int l = 0;
    while (l < 32 && ((uint64_t)1 << l) < d)
        l++;
    f.d = d;
    f.m = (uint32_t)((((uint64_t)1 << 32) * (((uint64_t)1 << l) - d)) / d + 1);
    f.sh1 = l < 1 ? l : 1;
    f.sh2 = l > 1 ? l - 1 : 0;
    return f;
}

EPLB_HD uint32_t eplb_fastdiv(uint32_t n, eplb_fastdiv_t f)
{
    uint32_t t = (uint32_t)(((uint64_t)f.m * n) >> 32);
    return (t + ((n - t) >> f.sh1)) >> f.sh2;
}

/* The histogram flush by 128-byte lines (kernels/gpu_impl.h
 * eplb_dev_hist_flush): thread position p in [0, 32 * nl) of a block whose
 * first line is o maps to counter q = eplb_flush_slot(...), or -1 where
 * its line's word holds no counter; a0 = the counters' first word in its
 * line (address / 4 mod 32), nl = eplb_flush_lines(P, a0).  Each of the P
 * counters comes up exactly once for every o in [0, nl), and the 32
 * positions of one warp share one line (tests/test_kernels.c). */
EPLB_HD int eplb_flush_lines(int P, int a0) { return (P + a0 + 31) >> 5; }

EPLB_HD int eplb_flush_slot(int p, int a0, int nl, int o, int P)
{
    const int ln = (p >> 5) + o < nl ? (p >> 5) + o : (p >> 5) + o - nl;
    const int q = (ln << 5) + (p & 31) - a0;
    return q >= 0 && q < P ? q : -1;
}

/* Head of one expert's replica list for the fused hash path (built on the
 * host next to the packed map, read by the segment kernel into shared
 * memory), so that an entry needs no global load and no division:
 *   x: slot of replica 0 (bits 0-15; 0xffff: none or out of range)
 *      | R (bits 16-23, logcnt clamped to [1, max_replicas])
 *      | sh2 (bits 24-28) | sh1 (bit 29) of eplb_fastdiv_make(R);
 *   y: the multiplier m of eplb_fastdiv_make(R);
 *   z, w: slots of replicas 1, 2 (z) and 3, 4 (w), 16 bits each, low half
 *      first (0xffff: none or out of range).
 * Needs P < 0xffff and max_replicas <= 255.  Replicas past 4 come from the
 * packed map. */
#define EPLB_HHEAD_REPS 5
typedef struct {
    uint32_t x, y, z, w;
} eplb_hhead_t;

EPLB_HD uint32_t eplb_hhead_slot(int32_t s, int P)
{
    return s < 0 || s >= P ? 0xffffu : (uint32_t)s;
}

/* slots[0..R-1]: the expert's replicas (the log2phy row) */
EPLB_HD eplb_hhead_t eplb_hhead_make(const int32_t *slots, int32_t logcnt, int MR, int P)
{
    int R = logcnt < 1 ? 1 : logcnt > MR ? MR : logcnt;
    eplb_fastdiv_t f = eplb_fastdiv_make((uint32_t)R);
    uint32_t s[EPLB_HHEAD_REPS];
    for (int j = 0; j < EPLB_HHEAD_REPS; j++)
        s[j] = j < R ? eplb_hhead_slot(slots[j], P) : 0xffffu;
    eplb_hhead_t h;
    h.x = s[0] | (uint32_t)R << 16 | (uint32_t)f.sh2 << 24 | (uint32_t)f.sh1 << 29;
    h.y = f.m;
    h.z = s[1] | s[2] << 16;
    h.w = s[3] | s[4] << 16;
    return h;
}

/* n mod R with the head's multiplier (eplb_fastdiv on its fields) */
EPLB_HD uint32_t eplb_hhead_mod(eplb_hhead_t h, uint32_t n)
{
    eplb_fastdiv_t f;
    f.d = (h.x >> 16) & 0xffu;
    f.m = h.y;
    f.sh1 = (int)(h.x >> 29) & 1;
    f.sh2 = (int)(h.x >> 24) & 31;
    return n - eplb_fastdiv(n, f) * f.d;
}

/* splitmix64 finaliser (Steele, Lea, Flood 2014): a bijection on 64 bits
 * with full avalanche, so that mixing in one field at a time gives a
 * counter-based generator keyed by (seed, step, layer, t, k). */
EPLB_HD uint64_t eplb_rule_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Key of one (token, layer) row for the random mode; per k the row key is
 * mixed once more.  step and layer enter as 64-bit two's complement. */
EPLB_HD uint64_t eplb_rule_random_row(uint64_t seed, int64_t step, int layer,
                                      uint32_t t)
{
    uint64_t z = eplb_rule_mix64(seed ^ (uint64_t)step);
    z = eplb_rule_mix64(z ^ (uint64_t)(int64_t)layer);
    return eplb_rule_mix64(z ^ (uint64_t)t);
}

/* Uniform index in [0, R) from the high 32 bits of a 64-bit random word
 * (Lemire's multiply-shift: no division, bias below 2^-32 * R). */
EPLB_HD int eplb_rule_random_rep(uint64_t row, int k, int R)
{
    uint64_t z = eplb_rule_mix64(row ^ (uint64_t)k);
    return (int)(((z >> 32) * (uint64_t)(uint32_t)R) >> 32);
}

/* Replica index of one entry for the modes without batch state or
 * locality (hash, flatmod, random); rkey = eplb_rule_random_row of the
 * entry's row (random only).  Other modes: 0. */
EPLB_HD int eplb_rule_entry_rep(int mode, uint32_t t, int k, int K, int R,
                                uint64_t rkey)
{
    switch (mode) {
    case EPLB_SELECT_HASH:
        return (int)(eplb_rule_hash(t) % (uint32_t)R);
    case EPLB_SELECT_FLATMOD:
        return (int)(((uint64_t)t * K + k) % (uint64_t)R);
    case EPLB_SELECT_RANDOM:
        return eplb_rule_random_rep(rkey, k, R);
    default:
        return 0;
    }
}

/* local mode: among the R replicas `row[0..R-1]` (ascending slots) prefer
 * those on GPU `gpu`, else those on node `node`, else all; among the
 * preferred ones take the (hash(t) mod count)-th.  Returns the index. */
EPLB_HD int eplb_rule_local_rep(const int32_t *row, int R, uint32_t t,
                                int gpu, int node, int slots_per_gpu,
                                int gpus_per_node)
{
    int c_gpu = 0, c_node = 0;
    for (int j = 0; j < R; j++) {
        int g = row[j] / slots_per_gpu;
        c_gpu += g == gpu;
        c_node += g / gpus_per_node == node;
    }
    uint32_t h = eplb_rule_hash(t);
    if (c_gpu == 0 && c_node == 0)
        return (int)(h % (uint32_t)R);
    int want = (int)(h % (uint32_t)(c_gpu ? c_gpu : c_node));
    for (int j = 0; j < R; j++) {
        int g = row[j] / slots_per_gpu;
        int ok = c_gpu ? g == gpu : g / gpus_per_node == node;
        if (ok && want-- == 0)
            return j;
    }
    return 0; /* not reached */
}

/* Balanced mode, one expert: split n tokens over its replicas `row[0..R-1]`
 * given the current GPU loads `load[D]` (updated in place), by water
 * filling: the least loaded GPUs among the expert's GPUs are raised to a
 * common level first.  quota[j] receives the tokens of replica j.
 * Replicas sharing a GPU split that GPU's share evenly (the lower slot
 * takes the remainder first).  Deterministic: ties go to the replica that
 * comes first.  R <= 64 (at most 64 distinct GPUs per expert). */
EPLB_HD void eplb_rule_water_fill(int32_t *quota, const int32_t *row, int R,
                                  int64_t n, int64_t *load,
                                  int slots_per_gpu)
{
    int gpu[EPLB_PLAN_MAX_R], cnt[EPLB_PLAN_MAX_R], ord[EPLB_PLAN_MAX_R];
    int64_t q[EPLB_PLAN_MAX_R];
    int m = 0;
    for (int j = 0; j < R; j++) {
        int g = row[j] / slots_per_gpu, u = 0;
        while (u < m && gpu[u] != g)
            u++;
        if (u == m) {
            gpu[m] = g;
            cnt[m] = 0;
            m++;
        }
        cnt[u]++;
    }
    /* insertion sort of the distinct GPUs by (load, first appearance) */
    for (int u = 0; u < m; u++) {
        int v = u;
        while (v > 0 && load[gpu[ord[v - 1]]] > load[gpu[u]]) {
            ord[v] = ord[v - 1];
            v--;
        }
        ord[v] = u;
    }
    /* smallest prefix of the sorted GPUs whose common level absorbs n */
    int64_t sum = 0;
    int used = m;
    for (int i = 0; i < m; i++) {
        sum += load[gpu[ord[i]]];
        if (i + 1 == m)
            break;
        int64_t next = load[gpu[ord[i + 1]]];
        if (next * (int64_t)(i + 1) - sum >= n) {
            used = i + 1;
            break;
        }
    }
    int64_t total = sum + n, base = total / used, extra = total % used;
    for (int i = 0; i < m; i++) {
        int u = ord[i];
        q[u] = i < used ? base + (i < extra) - load[gpu[u]] : 0;
        load[gpu[u]] += q[u];
    }
    /* share each GPU's quota among its replicas in slot order */
    for (int u = 0; u < m; u++) {
        int seen = 0;
        for (int j = 0; j < R; j++) {
            if (row[j] / slots_per_gpu != gpu[u])
                continue;
            quota[j] = (int32_t)(q[u] / cnt[u] + (seen < q[u] % cnt[u]));
            seen++;
        }
    }
}

#endif
