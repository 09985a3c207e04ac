/* route_cpu.c - CPU reference of routing: softmax top-k and DeepSeek-V3
 * grouped top-k, multi-threaded over (token, layer) rows (src/pool.h).
 *
 * Selection key: with no bias the raw logit (softmax and sigmoid are
 * monotone, so the order is the same and needs no rounding: CPU and GPU
 * then agree exactly); with a bias s + bias as the model computes it.
 * NaN keys count as -inf.  Ties go to the lower expert (group) id.
 * The loops are arranged for speed (docs/kernels.md, "CPU"); the result
 * is that of the plain one-loop version, which tests/test_kernels.c keeps
 * as the oracle. */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <stdatomic.h>
#endif

#include "checks.h"
#include "pool.h"

/* rows per thread of eplb_route_cpu at least (eplb_route_cpu_threads) */
#define ROUTE_ROWS_PER_THREAD 64

eplb_status_t eplb_route_cfg_check(const eplb_route_cfg_t *cfg)
{
    if (!cfg)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "route: cfg is NULL");
    int E = cfg->num_experts, K = cfg->top_k, G = cfg->num_groups;
    if (E < 1 || E > EPLB_MAX_EXPERTS)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "route: num_experts %d outside [1, %d]", E,
                              EPLB_MAX_EXPERTS);
    if (K < 1 || K > EPLB_MAX_TOPK || K > E)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "route: top_k %d outside [1, min(%d, E=%d)]", K,
                              EPLB_MAX_TOPK, E);
    if (G < 1 || G > EPLB_MAX_GROUPS || E % G)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "route: num_groups %d must be in [1, %d] and "
                              "divide num_experts %d",
                              G, EPLB_MAX_GROUPS, E);
    if (cfg->topk_groups < 1 || cfg->topk_groups > G)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "route: topk_groups %d outside [1, num_groups "
                              "%d]",
                              cfg->topk_groups, G);
    if (K > cfg->topk_groups * (E / G))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "route: top_k %d exceeds the %d experts of the "
                              "kept groups",
                              K, cfg->topk_groups * (E / G));
    if (cfg->scoring != EPLB_SCORING_SOFTMAX &&
        cfg->scoring != EPLB_SCORING_SIGMOID)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "route: unknown scoring %d",
                              (int)cfg->scoring);
    return EPLB_OK;
}

static inline int better(float ka, int a, float kb, int b)
{
    return ka > kb || (ka == kb && a < b);
}

/* Top-2 values of n keys (no NaN): b2 = max(b2, min(b1, k)), b1 = max(b1,
 * k); four lanes at a time, then merged. */
static void top2(const float *kk, int n, float *o1, float *o2)
{
    float b1 = -INFINITY, b2 = -INFINITY;
    int j = 0;
#if defined(__SSE2__)
    if (n >= 8) {
        __m128 v1 = _mm_set1_ps(-INFINITY), v2 = v1;
        for (; j + 4 <= n; j += 4) {
            const __m128 k = _mm_loadu_ps(kk + j);
            v2 = _mm_max_ps(v2, _mm_min_ps(v1, k));
            v1 = _mm_max_ps(v1, k);
        }
        float l1[4], l2[4];
        _mm_storeu_ps(l1, v1);
        _mm_storeu_ps(l2, v2);
        for (int q = 0; q < 4; q++) {
            const float lo = b1 < l1[q] ? b1 : l1[q];
            const float hi2 = b2 > l2[q] ? b2 : l2[q];
            b2 = hi2 > lo ? hi2 : lo;
            b1 = b1 > l1[q] ? b1 : l1[q];
        }
    }
#endif
    for (; j < n; j++) {
        const float k = kk[j];
        const float lo = b1 < k ? b1 : k;
        b2 = b2 > lo ? b2 : lo;
        b1 = b1 > k ? b1 : k;
    }
    *o1 = b1;
    *o2 = b2;
}

/* Expert e with key k into the sorted top-K list (bk, bi, *n).  Experts
 * come in ascending ids, so a later one never beats an equal key (the tie
 * rule) and `better` is a plain >. */
static inline void topk_insert(float k, int e, float *bk, int *bi, int *n, int K)
{
    if (*n == K && !(k > bk[K - 1]))
        return;
    int j = *n < K ? (*n)++ : K - 1;
    for (; j > 0 && k > bk[j - 1]; j--) {
        bk[j] = bk[j - 1];
        bi[j] = bi[j - 1];
    }
    bk[j] = k;
    bi[j] = e;
}

/* The groups with fewer than topk_groups better ones (`better` without
 * branches), ascending in kg; returns how many; *vt, *vn: the scores
 * ranked topk_groups - 1 and topk_groups (NaN where none) */
static int rank_groups(const float *gscore, int G, int topk_groups, int *kg, float *vt,
                       float *vn)
{
    int ng = 0;
    *vt = *vn = NAN;
    for (int g = 0; g < G; g++) {
        int rank = 0;
        for (int h = 0; h < G; h++)
            rank += (gscore[h] > gscore[g]) | ((gscore[h] == gscore[g]) & (h < g));
        *vt = rank == topk_groups - 1 ? gscore[g] : *vt;
        *vn = rank == topk_groups ? gscore[g] : *vn;
        kg[ng] = g;
        ng += rank < topk_groups;
    }
    return ng;
}

/* The group limit: the best topk_groups groups by score (ties to the lower
 * group id), in ascending order in kg; returns how many.  Without NaN
 * scores `better` is a strict total order, so these are the groups with
 * fewer than topk_groups better ones: rank_groups (the selection loop
 * below mispredicted, 5% of a CPU replay's samples); with a NaN, the
 * selection loop (the order of the oracle). */
static int keep_groups(const float *gscore, int G, int topk_groups, int *kg)
{
    int nan = 0;
    for (int g = 0; g < G; g++)
        nan |= gscore[g] != gscore[g];
    if (!nan) {
        float vt, vn;
        return rank_groups(gscore, G, topk_groups, kg, &vt, &vn);
    }
    unsigned char keep[EPLB_MAX_GROUPS];
    memset(keep, 0, sizeof keep);
    for (int r = 0; r < topk_groups; r++) {
        int best = -1;
        for (int g = 0; g < G; g++)
            if (!keep[g] && (best < 0 || better(gscore[g], g, gscore[best], best)))
                best = g;
        keep[best] = 1;
    }
    int ng = 0;
    for (int g = 0; g < G; g++)
        if (keep[g])
            kg[ng++] = g;
    return ng;
}

/* The weights of the K winners: s (the unbiased score), renormalised if
 * asked (sum + 1e-20), times the scaling factor. */
static void row_weights(float *w, const float *x, const int *bi, int sig, float mx, float sum,
                        const eplb_route_cfg_t *cfg)
{
    const int K = cfg->top_k;
    float wsum = 0.0f;
    for (int k = 0; k < K; k++) {
        const float xe = x[bi[k]];
        w[k] = sig ? 1.0f / (1.0f + expf(-xe)) : expf(xe - mx) / sum;
        wsum += w[k];
    }
    float scale = cfg->routed_scaling_factor;
    if (cfg->renormalize)
        scale /= wsum + 1e-20f;
    for (int k = 0; k < K; k++)
        w[k] *= scale;
}

/* The key of one expert with sigmoid scoring and a bias, NaN as -inf: the
 * operations of every path. */
static inline float sig_key(float x, float b)
{
    const float k = 1.0f / (1.0f + expf(-x)) + b;
    return k == k ? k : -INFINITY;
}

#if defined(__SSE2__)
/* e^t for t in [-87, 87], four at a time, within 1e-6 relative: t = n ln2
 * + r (Cody-Waite, ln2 in a 16-bit high part and the rest, so n ln2_hi is
 * exact for |n| <= 126), e^r by its Taylor polynomial of degree 6 (|r| <=
 * 0.35: truncation 1.3e-7), 2^n by the exponent bits. */
static inline __m128 exp_approx_ps(__m128 t)
{
    const __m128i n = _mm_cvtps_epi32(_mm_mul_ps(t, _mm_set1_ps(1.44269504f)));
    const __m128 nf = _mm_cvtepi32_ps(n);
    const __m128 r = _mm_sub_ps(_mm_sub_ps(t, _mm_mul_ps(nf, _mm_set1_ps(0.693145751953125f))),
                                _mm_mul_ps(nf, _mm_set1_ps(1.428606765330187e-6f)));
    __m128 p = _mm_set1_ps(1.0f / 720);
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f / 120));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f / 24));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f / 6));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(0.5f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f));
    const __m128i e = _mm_slli_epi32(_mm_add_epi32(n, _mm_set1_epi32(127)), 23);
    return _mm_mul_ps(p, _mm_castsi128_ps(e));
}

/* Bit j set where a[w + j] >= thr, for w + j < end and j < 64, four
 * compares at a time (one pass: scanning to each candidate in turn was a
 * fifth of a CPU replay's routing samples) */
static inline uint64_t mask_at_least(const float *a, int w, int end, float thr)
{
    const int n = end - w < 64 ? end - w : 64;
    a += w;
    const __m128 t = _mm_set1_ps(thr);
    uint64_t m = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4)
        m |= (uint64_t)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(a + i), t)) << i;
    for (; i < n; i++)
        m |= (uint64_t)(a[i] >= thr) << i;
    return m;
}

/* The approximate keys a[e] of route_filtered for e < E rounded down to 4
 * (4 at a time with SSE2; approx_keys_avx2: 8 at a time with FMA, the same
 * bound, not the same bits) and the largest |bias| of them; returns how
 * many experts it did. */
static int approx_keys_sse(float *a, const float *x, const float *bias, int E, float *bmax)
{
    const __m128 one = _mm_set1_ps(1.0f), ninf = _mm_set1_ps(-INFINITY),
                 sign = _mm_set1_ps(-0.0f), lo = _mm_set1_ps(-87.0f), hi = _mm_set1_ps(87.0f);
    __m128 vb = _mm_setzero_ps();
    int e = 0;
    for (; e + 4 <= E; e += 4) {
        const __m128 xv = _mm_loadu_ps(x + e), bv = _mm_loadu_ps(bias + e);
        const __m128 t = _mm_min_ps(_mm_max_ps(_mm_xor_ps(xv, sign), lo), hi);
        /* 1 / (1 + e): rcpps (2^-11) and one Newton step (about 2^-22) */
        const __m128 d = _mm_add_ps(one, exp_approx_ps(t)), r0 = _mm_rcp_ps(d);
        const __m128 r1 = _mm_mul_ps(r0, _mm_sub_ps(_mm_set1_ps(2.0f), _mm_mul_ps(d, r0)));
        const __m128 k = _mm_add_ps(r1, bv);
        /* NaN logit or key: -inf, exactly as the key (the clamp lost it) */
        const __m128 ok = _mm_and_ps(_mm_cmpord_ps(xv, xv), _mm_cmpord_ps(k, k));
        _mm_storeu_ps(a + e, _mm_or_ps(_mm_and_ps(ok, k), _mm_andnot_ps(ok, ninf)));
        vb = _mm_max_ps(_mm_andnot_ps(sign, bv), vb); /* a NaN bias is left out */
    }
    float bl[4], m = 0.0f;
    _mm_storeu_ps(bl, vb);
    for (int q = 0; q < 4; q++)
        m = bl[q] > m ? bl[q] : m;
    *bmax = m;
    return e;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX2_KEYS 1
/* exp_approx_ps, eight at a time, with FMA (the reduction's two steps and
 * Horner's steps each rounded once: within the same bound, not the same
 * bits as the SSE2 loop) */
__attribute__((target("avx2,fma"))) static inline __m256 exp_approx_ps8(__m256 t)
{
    const __m256i n = _mm256_cvtps_epi32(_mm256_mul_ps(t, _mm256_set1_ps(1.44269504f)));
    const __m256 nf = _mm256_cvtepi32_ps(n);
    const __m256 r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(1.428606765330187e-6f),
                                      _mm256_fnmadd_ps(nf, _mm256_set1_ps(0.693145751953125f), t));
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) static int approx_keys_avx2(float *a, const float *x,
                                                                const float *bias, int E,
                                                                float *bmax)
{
    const __m256 one = _mm256_set1_ps(1.0f), ninf = _mm256_set1_ps(-INFINITY),
                 sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-87.0f),
                 hi = _mm256_set1_ps(87.0f);
    __m256 vb = _mm256_setzero_ps();
    int e = 0;
    for (; e + 8 <= E; e += 8) {
        const __m256 xv = _mm256_loadu_ps(x + e), bv = _mm256_loadu_ps(bias + e);
        const __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_xor_ps(xv, sign), lo), hi);
        const __m256 d = _mm256_add_ps(one, exp_approx_ps8(t)), r0 = _mm256_rcp_ps(d);
        /* Newton: r0 (2 - d r0), then + bias */
        const __m256 r1 = _mm256_mul_ps(r0, _mm256_fnmadd_ps(d, r0, _mm256_set1_ps(2.0f)));
        const __m256 k = _mm256_add_ps(r1, bv);
        const __m256 ok =
            _mm256_and_ps(_mm256_cmp_ps(xv, xv, _CMP_ORD_Q), _mm256_cmp_ps(k, k, _CMP_ORD_Q));
        _mm256_storeu_ps(a + e, _mm256_or_ps(_mm256_and_ps(ok, k), _mm256_andnot_ps(ok, ninf)));
        vb = _mm256_max_ps(_mm256_andnot_ps(sign, bv), vb);
    }
    float bl[8], m = 0.0f;
    _mm256_storeu_ps(bl, vb);
    for (int q = 0; q < 8; q++)
        m = bl[q] > m ? bl[q] : m;
    float m4 = 0.0f;
    const int e4 = approx_keys_sse(a + e, x + e, bias + e, E - e, &m4); /* a last 4 */
    *bmax = m4 > m ? m4 : m;
    return e + e4;
}

/* AVX2 where the CPU has it (EPLB_CPU_AVX2=0 or eplb_route_cpu_set_avx2:
 * SSE2 only); -1: not yet decided */
static atomic_int avx2_on = -1;

static int use_avx2(void)
{
    int h = atomic_load_explicit(&avx2_on, memory_order_relaxed);
    if (h < 0) { /* every thread that gets here stores the same */
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
            !eplb_env_off("EPLB_CPU_AVX2");
        atomic_store_explicit(&avx2_on, h, memory_order_relaxed);
    }
    return h;
}
#endif

/* Expert e's exact key, computed once (bit e of have) */
static inline float exact_key(float *key, uint64_t *have, const float *x, const float *bias,
                              int e)
{
    const uint64_t b = (uint64_t)1 << (e & 63);
    if (!(have[e >> 6] & b)) {
        key[e] = sig_key(x[e], bias[e]);
        have[e >> 6] |= b;
    }
    return key[e];
}

/* route_filtered's group limit on exact group scores: the exact top-2 of
 * each group's candidates (approximate keys a >= A2[g] - m3); the kept
 * groups into kg, ascending; returns how many */
static int groups_exact(int *kg, float *key, uint64_t *have, const float *a, const float *A2,
                        const float *x, const float *bias, float m3, const eplb_route_cfg_t *cfg)
{
    const int G = cfg->num_groups, gs = cfg->num_experts / G;
    float gscore[EPLB_MAX_GROUPS];
    for (int g = 0; g < G; g++) {
        float b1 = -INFINITY, b2 = -INFINITY;
        const float thr = m3 < INFINITY ? A2[g] - m3 : -INFINITY;
        for (int w = g * gs; w < (g + 1) * gs; w += 64) {
            for (uint64_t m = mask_at_least(a, w, (g + 1) * gs, thr); m; m &= m - 1) {
                const int q = w + __builtin_ctzll(m);
                const float k = exact_key(key, have, x, bias, q), l = b1 < k ? b1 : k;
                b2 = b2 > l ? b2 : l;
                b1 = b1 > k ? b1 : k;
            }
        }
        gscore[g] = b1 + b2;
    }
    return keep_groups(gscore, G, cfg->topk_groups, kg);
}

/* Grouped top-k with sigmoid scoring and a bias where K <= 2 topk_groups
 * (DeepSeek-V3): exact, with expf for a few experts only.  Approximate keys
 * a (exp_approx_ps) are within eps = 1e-5 (1 + max |bias|) of the keys
 * (|a - key| <= 0.25 x the exponentials' relative errors + the roundings
 * of s and s + bias: below 1e-6 (1 + |bias|)).  A group's two best keys
 * are among its experts with a >= A2 - 3 eps (A2: its second best a): any
 * other has key < A2 - 2 eps, below the keys of the two experts with a >=
 * A2.  The top-k of the kept groups is among their experts with a >=
 * theta - 3 eps, theta the least A2 of a kept group, by the same argument
 * (2 topk_groups >= K experts have a >= theta).  The exact keys of those
 * candidates (sig_key) then decide as everywhere: the same ids, and the
 * same weights (from x), as the plain path.  About 30 exponentials per row
 * of 256 experts instead of 256. */
static void route_filtered(int *bi, const float *x, const float *bias,
                           const eplb_route_cfg_t *cfg)
{
    const int E = cfg->num_experts, K = cfg->top_k, G = cfg->num_groups, gs = E / G;
    float a[EPLB_MAX_EXPERTS], key[EPLB_MAX_EXPERTS];
    uint64_t have[EPLB_MAX_EXPERTS / 64] = {0};
    float bmax = 0.0f;
#ifdef HAVE_AVX2_KEYS
    int e = use_avx2() ? approx_keys_avx2(a, x, bias, E, &bmax)
                       : approx_keys_sse(a, x, bias, E, &bmax);
#else
    int e = approx_keys_sse(a, x, bias, E, &bmax);
#endif
    for (; e < E; e++) { /* the rest exactly */
        a[e] = key[e] = sig_key(x[e], bias[e]);
        have[e >> 6] |= (uint64_t)1 << (e & 63);
        const float ab = fabsf(bias[e]);
        bmax = ab > bmax ? ab : bmax;
    }
    /* (an infinite bias: every expert a candidate) */
    const float m3 = bmax < 1e30f ? 3.0f * 1e-5f * (1.0f + bmax) : INFINITY;
    /* the group limit from the approximate group scores A1 + A2 where they
     * decide it: each is within 2 eps (+ the sums' roundings) < m3 of the
     * exact score, so groups whose approximate scores are more than 2 m3
     * apart rank as the exact ones do; if the topk_groups-th and the next
     * approximate scores are 4 m3 apart (or more), the best topk_groups
     * groups by approximate score are the kept ones, with no exact key for
     * the groups' top-2 (about 16 exponentials of some 25 per row) */
    float A2[EPLB_MAX_GROUPS], ga[EPLB_MAX_GROUPS];
    for (int g = 0; g < G; g++) {
        float A1;
        top2(a + g * gs, gs, &A1, &A2[g]);
        ga[g] = A1 + A2[g];
    }
    int kg[EPLB_MAX_GROUPS], ng = 0;
    if (m3 < INFINITY) {
        float vt, vn; /* the topk_groups-th score, the next */
        ng = rank_groups(ga, G, cfg->topk_groups, kg, &vt, &vn);
        if (!(vt - vn > 4.0f * m3)) /* NaN (equal -inf scores) included */
            ng = 0;
    }
    if (ng == 0)
        ng = groups_exact(kg, key, have, a, A2, x, bias, m3, cfg);
    float theta = INFINITY;
    for (int q = 0; q < ng; q++)
        theta = A2[kg[q]] < theta ? A2[kg[q]] : theta;
    const float thr = m3 < INFINITY ? theta - m3 : -INFINITY;
    float bk[EPLB_MAX_TOPK];
    int n = 0;
    for (int q = 0; q < ng; q++)
        for (int w = kg[q] * gs; w < (kg[q] + 1) * gs; w += 64) {
            for (uint64_t m = mask_at_least(a, w, (kg[q] + 1) * gs, thr); m; m &= m - 1) {
                const int c = w + __builtin_ctzll(m);
                topk_insert(exact_key(key, have, x, bias, c), c, bk, bi, &n, K);
            }
        }
}
#endif

int eplb_route_cpu_set_avx2(int on)
{
#ifdef HAVE_AVX2_KEYS
    __builtin_cpu_init();
    atomic_store_explicit(&avx2_on,
                          on && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
                          memory_order_relaxed);
    return atomic_load_explicit(&avx2_on, memory_order_relaxed);
#else
    (void)on;
    return 0;
#endif
}

/* Route one row of E logits.  The loops are split by case (dtype, scoring,
 * bias); the exponentials come first, then s and the keys four at a time
 * (SSE2), the group top-2 four lanes at a time, and the top-k walks the
 * kept groups only.  The same float operations in the same order as the
 * one-loop version (tests/test_kernels.c keeps it as the oracle), so the
 * same ids and weights bit for bit.  DeepSeek-V3-like rows take
 * route_filtered (exponentials of candidates only). */
static void route_row(int32_t *ids, float *w, const void *logits,
                      eplb_dtype_t dt, size_t off, const float *bias,
                      const eplb_route_cfg_t *cfg)
{
    const int E = cfg->num_experts, K = cfg->top_k, G = cfg->num_groups;
    const int gs = E / G;
    const int sig = cfg->scoring == EPLB_SCORING_SIGMOID;
    float x[EPLB_MAX_EXPERTS], key[EPLB_MAX_EXPERTS];
    int bi[EPLB_MAX_TOPK];
    if (dt == EPLB_DTYPE_F32) {
        memcpy(x, (const float *)logits + off, sizeof(float) * (size_t)E);
    } else {
        const uint16_t *h = (const uint16_t *)logits + off;
        if (dt == EPLB_DTYPE_BF16) { /* the high half of the float's bits */
            uint32_t u[EPLB_MAX_EXPERTS];
            int e = 0;
#if defined(__SSE2__)
            /* eight at a time: 16-bit zeros below each value (GCC left
             * the plain loop scalar: 25% of route_row's samples in a
             * replay of bf16 logits) */
            const __m128i z = _mm_setzero_si128();
            for (; e + 8 <= E; e += 8) {
                const __m128i v = _mm_loadu_si128((const __m128i *)(h + e));
                _mm_storeu_si128((__m128i *)(u + e), _mm_unpacklo_epi16(z, v));
                _mm_storeu_si128((__m128i *)(u + e + 4), _mm_unpackhi_epi16(z, v));
            }
#endif
            for (; e < E; e++)
                u[e] = (uint32_t)h[e] << 16;
            memcpy(x, u, sizeof(float) * (size_t)E);
        } else
            for (int e = 0; e < E; e++)
                x[e] = eplb_f16_to_f32(h[e]);
    }
#if defined(__SSE2__)
    if (sig && bias && G > 1 && cfg->topk_groups < G && gs > 1 && K <= 2 * cfg->topk_groups) {
        route_filtered(bi, x, bias, cfg);
        for (int k = 0; k < K; k++)
            ids[k] = bi[k];
        if (w)
            row_weights(w, x, bi, 1, 0.0f, 0.0f, cfg);
        return;
    }
#endif
    /* softmax: the max and the denominator */
    float mx = -INFINITY, sum = 0.0f;
    if (!sig) {
        for (int e = 0; e < E; e++)
            if (x[e] > mx)
                mx = x[e];
        for (int e = 0; e < E; e++)
            sum += expf(x[e] - mx);
    }
    /* keys, NaN as -inf */
    if (!bias) {
        for (int e = 0; e < E; e++)
            key[e] = x[e] == x[e] ? x[e] : -INFINITY;
    } else {
        /* the exponentials alone (library calls), then s and the key four
         * at a time: IEEE division and addition round the same in SIMD */
        if (sig)
            for (int e = 0; e < E; e++)
                key[e] = expf(-x[e]);
        else
            for (int e = 0; e < E; e++)
                key[e] = expf(x[e] - mx);
        int e = 0;
#if defined(__SSE2__)
        const __m128 one = _mm_set1_ps(1.0f), ninf = _mm_set1_ps(-INFINITY),
                     den = _mm_set1_ps(sum);
        for (; e + 4 <= E; e += 4) {
            const __m128 v = _mm_loadu_ps(key + e);
            const __m128 sv = sig ? _mm_div_ps(one, _mm_add_ps(one, v)) : _mm_div_ps(v, den);
            const __m128 k = _mm_add_ps(sv, _mm_loadu_ps(bias + e));
            const __m128 ok = _mm_cmpord_ps(k, k);
            _mm_storeu_ps(key + e, _mm_or_ps(_mm_and_ps(ok, k), _mm_andnot_ps(ok, ninf)));
        }
#endif
        for (; e < E; e++) {
            const float k = (sig ? 1.0f / (1.0f + key[e]) : key[e] / sum) + bias[e];
            key[e] = k == k ? k : -INFINITY;
        }
    }
    /* group limit: keep the best topk_groups groups */
    int ng = G, kg[EPLB_MAX_GROUPS]; /* the kept groups, ascending */
    for (int g = 0; g < G; g++)
        kg[g] = g;
    if (G > 1 && cfg->topk_groups < G) {
        float gscore[EPLB_MAX_GROUPS];
        for (int g = 0; g < G; g++) {
            float b1, b2;
            top2(key + g * gs, gs, &b1, &b2);
            gscore[g] = (bias && gs > 1) ? b1 + b2 : b1;
        }
        ng = keep_groups(gscore, G, cfg->topk_groups, kg);
    }
    /* top-k by key over the kept groups: sorted insertion */
    float bk[EPLB_MAX_TOPK];
    int n = 0;
    for (int q = 0; q < ng; q++)
        for (int e = kg[q] * gs; e < (kg[q] + 1) * gs; e++)
            topk_insert(key[e], e, bk, bi, &n, K);
    for (int k = 0; k < K; k++)
        ids[k] = bi[k];
    if (w)
        row_weights(w, x, bi, sig, mx, sum, cfg);
}

typedef struct {
    int32_t *ids;
    float *weights;
    const void *logits;
    eplb_dtype_t dt;
    int64_t rows;
    int L;
    const float *bias;
    const eplb_route_cfg_t *cfg;
    int parts; /* rows split into this many contiguous ranges */
} route_job_t;

/* Rows of range i of j->parts (src/pool.h iteration i). */
static void route_part(void *arg, int i)
{
    const route_job_t *j = arg;
    const int E = j->cfg->num_experts, K = j->cfg->top_k;
    const int64_t lo = j->rows * i / j->parts, hi = j->rows * (i + 1) / j->parts;
    for (int64_t r = lo; r < hi; r++) {
        int l = (int)(r % j->L);
        route_row(j->ids + r * K, j->weights ? j->weights + r * K : NULL,
                  j->logits, j->dt, (size_t)r * (size_t)E,
                  j->bias ? j->bias + (size_t)l * E : NULL, j->cfg);
    }
}

int eplb_route_cpu_threads(int64_t rows)
{
    int nt = eplb_num_threads();
    /* at least ROUTE_ROWS_PER_THREAD rows per thread: waking a helper of
     * the pool (src/pool.h) costs ~10 us, 64 rows 0.1-0.2 ms to route
     * (1.1-2.8 us a DeepSeek-V3 row, docs/perf/kernels.md); 256 while each
     * call started its threads (~45 us each), 2048 before the fifth
     * session */
    if (nt > rows / ROUTE_ROWS_PER_THREAD)
        nt = (int)(rows / ROUTE_ROWS_PER_THREAD);
    if (nt < 1)
        nt = 1;
    if (nt > 256)
        nt = 256;
    return nt;
}

static eplb_status_t route_args_check(const int32_t *ids, const void *logits, eplb_dtype_t dt,
                                      int64_t T, int L, const eplb_route_cfg_t *cfg)
{
    EPLB_CHECK(eplb_route_cfg_check(cfg));
    if (!ids || !logits || T < 0 || L < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "route: ids/logits NULL or bad shape T=%lld "
                              "L=%d",
                              (long long)T, L);
    if (dt != EPLB_DTYPE_F32 && dt != EPLB_DTYPE_F16 && dt != EPLB_DTYPE_BF16)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "route: unknown dtype %d",
                              (int)dt);
    return EPLB_OK;
}

eplb_status_t eplb_route_cpu_serial(int32_t *ids, float *weights, const void *logits,
                                    eplb_dtype_t dt, int64_t T, int L,
                                    const float *bias, const eplb_route_cfg_t *cfg)
{
    EPLB_CHECK(route_args_check(ids, logits, dt, T, L, cfg));
    route_job_t job = {ids, weights, logits, dt, T * L, L, bias, cfg, 1};
    route_part(&job, 0);
    return EPLB_OK;
}

eplb_status_t eplb_route_cpu(int32_t *ids, float *weights, const void *logits,
                             eplb_dtype_t dt, int64_t T, int L,
                             const float *bias, const eplb_route_cfg_t *cfg)
{
    EPLB_CHECK(route_args_check(ids, logits, dt, T, L, cfg));
    int64_t rows = T * L;
    int nt = eplb_route_cpu_threads(rows);
    route_job_t job = {ids, weights, logits, dt, rows, L, bias, cfg, nt};
    eplb_pool_run(nt, nt, route_part, &job);
    return EPLB_OK;
}
