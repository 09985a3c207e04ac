/* route_cpu.c - CPU reference of routing: softmax top-k and DeepSeek-V3
 * grouped top-k, multi-threaded over (token, layer) rows.
 *
 * Selection key: with no bias the raw logit (softmax and sigmoid are
 * monotone, so the order is the same and needs no rounding: CPU and GPU
 * then agree exactly); with a bias s + bias as the model computes it.
 * NaN keys count as -inf.  Ties go to the lower expert (group) id. */
#include "kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "checks.h"

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

/* Route one row of E logits.  The loops are split by case (dtype, scoring,
 * bias); the exponentials come first, then s and the keys four at a time
 * (SSE2), the group top-2 four lanes at a time, and the top-k walks the
 * kept groups only with a plain > (ascending ids: the tie rule is implied).
 * The same float operations in the same order as the one-loop version
 * (tests/test_kernels.c keeps it as the oracle), so the same ids and
 * weights bit for bit; 1.42-1.44x its rows per second on one core of the
 * build machine (DeepSeek-V3 shape, 1.74 against 2.49 us per row). */
static void route_row(int32_t *ids, float *w, const void *logits,
                      eplb_dtype_t dt, size_t off, const float *bias,
                      const eplb_route_cfg_t *cfg)
{
    const int E = cfg->num_experts, K = cfg->top_k, G = cfg->num_groups;
    const int gs = E / G;
    const int sig = cfg->scoring == EPLB_SCORING_SIGMOID;
    float x[EPLB_MAX_EXPERTS], key[EPLB_MAX_EXPERTS];
    if (dt == EPLB_DTYPE_F32) {
        memcpy(x, (const float *)logits + off, sizeof(float) * (size_t)E);
    } else {
        const uint16_t *h = (const uint16_t *)logits + off;
        if (dt == EPLB_DTYPE_BF16)
            for (int e = 0; e < E; e++)
                x[e] = eplb_bf16_to_f32(h[e]);
        else
            for (int e = 0; e < E; e++)
                x[e] = eplb_f16_to_f32(h[e]);
    }
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
    /* group limit: keep the best topk_groups groups (top-2 of a group by
     * value: b2 = max(b2, min(b1, k)), b1 = max(b1, k); no NaN here) */
    unsigned char keep[EPLB_MAX_GROUPS];
    memset(keep, 1, sizeof keep);
    int ng = G; /* kept groups, listed in kg */
    int kg[EPLB_MAX_GROUPS];
    for (int g = 0; g < G; g++)
        kg[g] = g;
    if (G > 1 && cfg->topk_groups < G) {
        float gscore[EPLB_MAX_GROUPS];
        for (int g = 0; g < G; g++) {
            float b1 = -INFINITY, b2 = -INFINITY;
            const float *kk = key + g * gs;
            int j = 0;
#if defined(__SSE2__)
            if (gs >= 8) { /* four lanes' top-2, then merged */
                __m128 v1 = _mm_set1_ps(-INFINITY), v2 = v1;
                for (; j + 4 <= gs; j += 4) {
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
            for (; j < gs; j++) {
                const float k = kk[j];
                const float lo = b1 < k ? b1 : k;
                b2 = b2 > lo ? b2 : lo;
                b1 = b1 > k ? b1 : k;
            }
            gscore[g] = (bias && gs > 1) ? b1 + b2 : b1;
            keep[g] = 0;
        }
        for (int r = 0; r < cfg->topk_groups; r++) {
            int best = -1;
            for (int g = 0; g < G; g++)
                if (!keep[g] && (best < 0 || better(gscore[g], g, gscore[best], best)))
                    best = g;
            keep[best] = 1;
        }
        ng = 0;
        for (int g = 0; g < G; g++)
            if (keep[g])
                kg[ng++] = g;
    }
    /* top-k by key over the kept groups: sorted insertion.  The experts
     * come in ascending ids, so a later one beats an equal key never (the
     * tie rule) and `better` is a plain > */
    float bk[EPLB_MAX_TOPK];
    int bi[EPLB_MAX_TOPK], n = 0;
    for (int q = 0; q < ng; q++) {
        const int e1 = (kg[q] + 1) * gs;
        for (int e = kg[q] * gs; e < e1; e++) {
            if (n == K && !(key[e] > bk[K - 1]))
                continue;
            int j = n < K ? n++ : K - 1;
            while (j > 0 && key[e] > bk[j - 1]) {
                bk[j] = bk[j - 1];
                bi[j] = bi[j - 1];
                j--;
            }
            bk[j] = key[e];
            bi[j] = e;
        }
    }
    for (int k = 0; k < K; k++)
        ids[k] = bi[k];
    if (!w)
        return;
    float wsum = 0.0f;
    for (int k = 0; k < K; k++) {
        float xe = x[bi[k]];
        w[k] = sig ? 1.0f / (1.0f + expf(-xe)) : expf(xe - mx) / sum;
        wsum += w[k];
    }
    float scale = cfg->routed_scaling_factor;
    if (cfg->renormalize)
        scale /= wsum + 1e-20f;
    for (int k = 0; k < K; k++)
        w[k] *= scale;
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
    int64_t lo, hi;
} route_job_t;

static void *route_worker(void *arg)
{
    const route_job_t *j = arg;
    const int E = j->cfg->num_experts, K = j->cfg->top_k;
    for (int64_t r = j->lo; r < j->hi; r++) {
        int l = (int)(r % j->L);
        route_row(j->ids + r * K, j->weights ? j->weights + r * K : NULL,
                  j->logits, j->dt, (size_t)r * (size_t)E,
                  j->bias ? j->bias + (size_t)l * E : NULL, j->cfg);
    }
    return NULL;
}

eplb_status_t eplb_route_cpu(int32_t *ids, float *weights, const void *logits,
                             eplb_dtype_t dt, int64_t T, int L,
                             const float *bias, const eplb_route_cfg_t *cfg)
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
    int64_t rows = T * L;
    int nt = eplb_num_threads();
    /* about 2k rows per thread at least: below that threads cost more */
    if (nt > rows / 2048)
        nt = (int)(rows / 2048);
    if (nt < 1)
        nt = 1;
    if (nt > 256)
        nt = 256;
    route_job_t jobs[256];
    pthread_t th[256];
    unsigned char joined[256] = {0};
    for (int i = 0; i < nt; i++) {
        jobs[i] = (route_job_t){ids, weights, logits, dt, rows, L, bias, cfg,
                                rows * i / nt, rows * (i + 1) / nt};
        if (i > 0 && pthread_create(&th[i], NULL, route_worker, &jobs[i]) == 0)
            joined[i] = 1;
        else if (i > 0)
            route_worker(&jobs[i]); /* no thread: do it here */
    }
    route_worker(&jobs[0]);
    for (int i = 1; i < nt; i++)
        if (joined[i])
            pthread_join(th[i], NULL);
    return EPLB_OK;
}
