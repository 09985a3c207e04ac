/* test_kernels.c - CPU references of routing, replica selection and load
 * recording (kernels/).  Expected values come from hand calculation or from
 * naive re-implementations in this file (double precision, full sorts). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "json.h"
#include "kernels.h"
#include "plan_check.h"
#include "rules.h"
#include "trace.h"

/* ---- small deterministic RNG for test inputs (xorshift64*) ---- */
static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 0x9e3779b97f4a7c15ull + 1; }
static uint64_t rng_u64(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static double rng_unif(void) { return (double)(rng_u64() >> 11) / 9007199254740992.0; }
static float rng_normal(void)
{
    double u = rng_unif() + 1e-12, v = rng_unif();
    return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

Test(kernels, mode_names_round_trip)
{
    const char *names[] = {"hash", "flatmod", "random", "local", "rr-block", "balanced"};
    for (int i = 0; i < 6; i++) {
        eplb_select_mode_t m;
        eplb_assert_ok(eplb_select_mode_parse(&m, names[i]));
        cr_assert_eq((int)m, i);
        cr_assert_str_eq(eplb_select_mode_name(m), names[i]);
    }
    eplb_select_mode_t m;
    eplb_assert_fails(eplb_select_mode_parse(&m, "lp"), EPLB_ERR_INVALID_ARG, "'lp'");
}

/* The count stripes of the GPU's fused kernels (kernels.h): stride and
 * fold, worked by hand. */
Test(kernels, count_stripes_fold_by_hand)
{
    cr_expect_eq(eplb_count_stride(1, 288), 288);
    cr_expect_eq(eplb_count_stride(1, 294), 320);
    cr_expect_eq(eplb_count_stride(3, 5), 32);
    cr_expect_eq(eplb_count_stride(2, 32), 64);
    cr_expect_eq(eplb_count_stride(0, 7), 0);
    /* 32 stripes while they take at most 2^22 counters, else 2 */
    cr_expect_eq(eplb_count_stripes(1, 288), 32);
    cr_expect_eq(eplb_count_stripes(61, 288), 32);
    cr_expect_eq(eplb_count_stripes(1, 131072), 32);  /* 32 x 2^17 = 2^22 */
    cr_expect_eq(eplb_count_stripes(1, 131073), 2);   /* stride 131104 */
    cr_expect_eq(eplb_count_stripes(256, 16384), 2);
    cr_expect_eq(eplb_count_len(1, 294), 32 * 320);
    cr_expect_eq(eplb_count_len(33, 4032), 2 * 133056);
    /* L = 3, P = 5: 15 counters a stripe, 32 apart; padding never read */
    const int S = eplb_count_stripes(3, 5);
    cr_assert_eq(S, 32);
    int32_t s[32 * 32], out[15];
    for (int i = 0; i < S * 32; i++)
        s[i] = i % 32 < 15 ? (i / 32 + 1) * 100 + i % 32 : 77777;
    eplb_counts_fold(out, s, 3, 5);
    for (int i = 0; i < 15; i++) { /* stripe k holds (k + 1) * 100 + i */
        int want = 0;
        for (int k = 0; k < S; k++)
            want += (k + 1) * 100 + i;
        cr_expect_eq(out[i], want, "counter %d: %d, want %d", i, out[i], want);
    }
    /* in place, into stripe 0; sums wrap like int32 device adds */
    s[0] = INT32_MAX;
    s[32] = 1;
    for (int k = 2; k < S; k++)
        s[k * 32] = 0;
    eplb_counts_fold(s, s, 3, 5);
    cr_expect_eq(s[0], INT32_MIN);
    cr_expect_eq(s[14], out[14]);
    cr_expect_eq(s[15], 77777, "padding untouched");
}

Test(kernels, route_softmax_by_hand)
{
    /* logits 1, 3, 2, 3: top-2 are the two 3s, the tie to the lower id */
    float x[4] = {1, 3, 2, 3};
    eplb_route_cfg_t c = EPLB_ROUTE_CFG_INIT;
    c.num_experts = 4;
    c.top_k = 2;
    int32_t ids[2];
    float w[2];
    eplb_assert_ok(eplb_route_cpu(ids, w, x, EPLB_DTYPE_F32, 1, 1, NULL, &c));
    cr_assert_eq(ids[0], 1);
    cr_assert_eq(ids[1], 3);
    double z = exp(1) + 2 * exp(3) + exp(2);
    cr_assert_float_eq(w[0], exp(3) / z, 1e-6);
    cr_assert_float_eq(w[1], exp(3) / z, 1e-6);
    c.renormalize = 1;
    c.routed_scaling_factor = 3.0f;
    eplb_assert_ok(eplb_route_cpu(ids, w, x, EPLB_DTYPE_F32, 1, 1, NULL, &c));
    cr_assert_float_eq(w[0], 1.5, 1e-6);
    cr_assert_float_eq(w[1], 1.5, 1e-6);
}

/* DeepSeek-V3 form: 8 experts in 4 groups of 2, keep 2 groups, top-2. */
Test(kernels, route_grouped_sigmoid_bias_by_hand)
{
    float x[8] = {0, 0, 0, 0, 0, 0, 0, (float)log(3.0)}; /* s = .5 except s7 = .75 */
    float b[8] = {0.1f, 0.0f, 0.4f, -0.5f, 0.05f, 0.0f, 0.2f, 0.2f};
    /* keys .6 .5 | .9 0 | .55 .5 | .7 .95 -> group scores 1.1 .9 1.05 1.65:
     * keep groups 3 and 0; expert 2 (key .9) is dropped with its group. */
    eplb_route_cfg_t c = {8, 2, EPLB_SCORING_SIGMOID, 4, 2, 1, 2.5f};
    int32_t ids[2];
    float w[2];
    eplb_assert_ok(eplb_route_cpu(ids, w, x, EPLB_DTYPE_F32, 1, 1, b, &c));
    cr_assert_eq(ids[0], 7);
    cr_assert_eq(ids[1], 6);
    /* unbiased s: .75 and .5, renormalised .6 .4, times 2.5 */
    cr_assert_float_eq(w[0], 1.5, 1e-5);
    cr_assert_float_eq(w[1], 1.0, 1e-5);
    /* without bias the group score is the group's max: groups 3 (.75) and
     * then the lowest of the tied .5 groups (0) */
    eplb_assert_ok(eplb_route_cpu(ids, w, x, EPLB_DTYPE_F32, 1, 1, NULL, &c));
    cr_assert_eq(ids[0], 7);
    cr_assert_eq(ids[1], 0);
}

Test(kernels, route_half_types_match_f32_on_exact_values)
{
    enum { T = 50, L = 2, E = 32, K = 4 };
    float x[T * L * E];
    uint16_t h[T * L * E], bh[T * L * E];
    rng_seed(7);
    for (int i = 0; i < T * L * E; i++) {
        x[i] = (float)((int)(rng_u64() % 4096) - 2048) / 256.0f; /* exact in f16 */
        h[i] = eplb_f32_to_f16(x[i]);
        bh[i] = eplb_f32_to_bf16(eplb_bf16_to_f32(eplb_f32_to_bf16(x[i])));
    }
    eplb_route_cfg_t c = {E, K, EPLB_SCORING_SIGMOID, 4, 2, 1, 1.0f};
    int32_t a[T * L * K], b[T * L * K];
    eplb_assert_ok(eplb_route_cpu(a, NULL, x, EPLB_DTYPE_F32, T, L, NULL, &c));
    eplb_assert_ok(eplb_route_cpu(b, NULL, h, EPLB_DTYPE_F16, T, L, NULL, &c));
    cr_assert_arr_eq(a, b, sizeof a);
    /* bf16 keeps 8 bits: compare against f32 of the rounded values */
    for (int i = 0; i < T * L * E; i++)
        x[i] = eplb_bf16_to_f32(bh[i]);
    eplb_assert_ok(eplb_route_cpu(a, NULL, x, EPLB_DTYPE_F32, T, L, NULL, &c));
    eplb_assert_ok(eplb_route_cpu(b, NULL, bh, EPLB_DTYPE_BF16, T, L, NULL, &c));
    cr_assert_arr_eq(a, b, sizeof a);
}

/* Naive reference in double: full sort of groups and experts. */
typedef struct {
    double k;
    int i;
} kv_t;
static int kv_desc(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    if (x->k != y->k)
        return x->k > y->k ? -1 : 1;
    return x->i - y->i;
}
static void naive_route(int *ids, double *w, const float *x, const float *bias,
                        const eplb_route_cfg_t *c)
{
    int E = c->num_experts, G = c->num_groups, gs = E / G;
    double s[EPLB_MAX_EXPERTS], key[EPLB_MAX_EXPERTS], mx = -INFINITY, z = 0;
    for (int e = 0; e < E; e++)
        mx = fmax(mx, x[e]);
    for (int e = 0; e < E; e++)
        z += exp(x[e] - mx);
    for (int e = 0; e < E; e++) {
        s[e] = c->scoring == EPLB_SCORING_SIGMOID ? 1 / (1 + exp(-x[e])) : exp(x[e] - mx) / z;
        key[e] = s[e] + (bias ? bias[e] : 0);
    }
    kv_t gk[EPLB_MAX_GROUPS], ek[EPLB_MAX_EXPERTS];
    for (int g = 0; g < G; g++) {
        kv_t m[EPLB_MAX_EXPERTS];
        for (int j = 0; j < gs; j++)
            m[j] = (kv_t){key[g * gs + j], j};
        qsort(m, gs, sizeof *m, kv_desc);
        gk[g] = (kv_t){bias && gs > 1 ? m[0].k + m[1].k : m[0].k, g};
    }
    qsort(gk, G, sizeof *gk, kv_desc);
    int n = 0;
    for (int r = 0; r < c->topk_groups; r++)
        for (int j = 0; j < gs; j++)
            ek[n] = (kv_t){key[gk[r].i * gs + j], gk[r].i * gs + j}, n++;
    qsort(ek, n, sizeof *ek, kv_desc);
    double sum = 0;
    for (int k = 0; k < c->top_k; k++)
        ids[k] = ek[k].i, sum += s[ek[k].i];
    for (int k = 0; k < c->top_k; k++)
        w[k] = s[ids[k]] / (c->renormalize ? sum + 1e-20 : 1) * c->routed_scaling_factor;
}

Test(kernels, route_matches_naive_double_reference)
{
    enum { T = 500, L = 3, E = 64, K = 6 };
    float *x = malloc(sizeof *x * T * L * E), bias[L * E];
    int32_t *ids = malloc(sizeof *ids * T * L * K);
    float *w = malloc(sizeof *w * T * L * K);
    rng_seed(11);
    for (int i = 0; i < T * L * E; i++)
        x[i] = rng_normal() * 2;
    for (int i = 0; i < L * E; i++)
        bias[i] = rng_normal() * 0.05f;
    const eplb_route_cfg_t cfgs[] = {
        {E, K, EPLB_SCORING_SIGMOID, 8, 3, 1, 2.5f},
        {E, K, EPLB_SCORING_SOFTMAX, 1, 1, 0, 1.0f},
        {E, K, EPLB_SCORING_SOFTMAX, 4, 2, 1, 1.0f},
    };
    for (int ci = 0; ci < 3; ci++) {
        const float *b = ci == 0 ? bias : NULL;
        eplb_assert_ok(eplb_route_cpu(ids, w, x, EPLB_DTYPE_F32, T, L, b, &cfgs[ci]));
        int mismatch = 0;
        for (int r = 0; r < T * L; r++) {
            int want[K];
            double ww[K];
            naive_route(want, ww, x + (size_t)r * E, b ? b + (r % L) * E : NULL, &cfgs[ci]);
            int same = 1;
            for (int k = 0; k < K; k++)
                same &= want[k] == ids[r * K + k];
            mismatch += !same;
            if (same)
                for (int k = 0; k < K; k++)
                    cr_assert_float_eq(w[r * K + k], ww[k], 1e-5 * (1 + fabs(ww[k])),
                                       "cfg %d row %d k %d", ci, r, k);
        }
        /* float vs double keys: only near-ties may differ (bias case) */
        cr_assert_leq(mismatch, b ? 2 : 0, "cfg %d: %d of %d rows differ", ci, mismatch, T * L);
    }
    free(x);
    free(ids);
    free(w);
}

/* The one-loop CPU routing of sessions 1-3, kept as the oracle of the
 * split and vectorised one in kernels/route_cpu.c: the same float
 * operations, so the same ids and weights bit for bit. */
static int plain_better(float ka, int a, float kb, int b)
{
    return ka > kb || (ka == kb && a < b);
}

static float plain_logit(const void *p, eplb_dtype_t dt, size_t i)
{
    if (dt == EPLB_DTYPE_F16)
        return eplb_f16_to_f32(((const uint16_t *)p)[i]);
    if (dt == EPLB_DTYPE_BF16)
        return eplb_bf16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

static void plain_route_row(int32_t *ids, float *w, const void *logits, eplb_dtype_t dt,
                            size_t off, const float *bias, const eplb_route_cfg_t *cfg)
{
    const int E = cfg->num_experts, K = cfg->top_k, G = cfg->num_groups, gs = E / G;
    const int sig = cfg->scoring == EPLB_SCORING_SIGMOID;
    float x[EPLB_MAX_EXPERTS], key[EPLB_MAX_EXPERTS], mx = -INFINITY, sum = 0.0f;
    for (int e = 0; e < E; e++) {
        x[e] = plain_logit(logits, dt, off + (size_t)e);
        if (x[e] > mx)
            mx = x[e];
    }
    if (!sig)
        for (int e = 0; e < E; e++)
            sum += expf(x[e] - mx);
    for (int e = 0; e < E; e++) {
        float k = x[e];
        if (bias)
            k = (sig ? 1.0f / (1.0f + expf(-x[e])) : expf(x[e] - mx) / sum) + bias[e];
        key[e] = isnan(k) ? -INFINITY : k;
    }
    unsigned char keep[EPLB_MAX_GROUPS];
    memset(keep, 1, sizeof keep);
    if (G > 1 && cfg->topk_groups < G) {
        float gscore[EPLB_MAX_GROUPS];
        for (int g = 0; g < G; g++) {
            float b1 = -INFINITY, b2 = -INFINITY;
            for (int e = g * gs; e < (g + 1) * gs; e++) {
                if (key[e] > b1) {
                    b2 = b1;
                    b1 = key[e];
                } else if (key[e] > b2) {
                    b2 = key[e];
                }
            }
            gscore[g] = (bias && gs > 1) ? b1 + b2 : b1;
            keep[g] = 0;
        }
        for (int r = 0; r < cfg->topk_groups; r++) {
            int best = -1;
            for (int g = 0; g < G; g++)
                if (!keep[g] && (best < 0 || plain_better(gscore[g], g, gscore[best], best)))
                    best = g;
            keep[best] = 1;
        }
    }
    float bk[EPLB_MAX_TOPK];
    int bi[EPLB_MAX_TOPK], n = 0;
    for (int e = 0; e < E; e++) {
        if (!keep[e / gs] || (n == K && !plain_better(key[e], e, bk[K - 1], bi[K - 1])))
            continue;
        int j = n < K ? n++ : K - 1;
        for (; j > 0 && plain_better(key[e], e, bk[j - 1], bi[j - 1]); j--) {
            bk[j] = bk[j - 1];
            bi[j] = bi[j - 1];
        }
        bk[j] = key[e];
        bi[j] = e;
    }
    float wsum = 0.0f;
    for (int k = 0; k < K; k++) {
        ids[k] = bi[k];
        w[k] = sig ? 1.0f / (1.0f + expf(-x[bi[k]])) : expf(x[bi[k]] - mx) / sum;
        wsum += w[k];
    }
    float scale = cfg->routed_scaling_factor;
    if (cfg->renormalize)
        scale /= wsum + 1e-20f;
    for (int k = 0; k < K; k++)
        w[k] *= scale;
}

/* Random logits of every dtype (smooth; exact ties from a few values;
 * NaN and +-inf sprinkled; near-ties, keys 1e-6 apart, which the filtered
 * DeepSeek-V3 path must decide exactly; biases of +-50; NaN and +-inf
 * biases), shapes with
 * groups of 32, 16, 10 (no multiple of 4) and none, bias or not,
 * renormalised or not: ids and weights identical to the plain version's,
 * bit for bit (a NaN weight's sign aside). */
Test(kernels, route_cpu_matches_plain_version_bitwise)
{
    enum { T = 400, L = 2 };
    const eplb_route_cfg_t cfgs[] = {
        {256, 8, EPLB_SCORING_SIGMOID, 8, 4, 1, 2.5f},
        {256, 8, EPLB_SCORING_SIGMOID, 8, 4, 0, 1.0f},
        {64, 6, EPLB_SCORING_SOFTMAX, 1, 1, 1, 1.0f},
        {64, 6, EPLB_SCORING_SOFTMAX, 4, 2, 1, 1.0f},
        {512, 16, EPLB_SCORING_SIGMOID, 32, 8, 1, 1.0f},
        {60, 4, EPLB_SCORING_SIGMOID, 6, 3, 1, 1.0f},
        {30, 3, EPLB_SCORING_SIGMOID, 1, 1, 0, 1.0f},
        {30, 3, EPLB_SCORING_SIGMOID, 3, 2, 1, 1.0f}, /* keys: 24 by 8, 4 by 4, 2 exact */
        {256, 2, EPLB_SCORING_SIGMOID, 2, 1, 1, 1.0f}, /* groups of 128: two mask words */
        {200, 2, EPLB_SCORING_SIGMOID, 2, 1, 0, 1.0f}, /* groups of 100: 64 + 36 */
    };
    static float x[T * L * 512], bias[L * 512], wa[T * L * 16], wb[T * L * 16];
    static uint16_t h[T * L * 512];
    static int32_t ia[T * L * 16], ib[T * L * 16];
    long differ = 0;
    rng_seed(29);
    /* both key paths: AVX2 (where present) and SSE2 */
    for (int avx = 1; avx >= 0; avx--) {
    const int used = eplb_route_cpu_set_avx2(avx);
    cr_log_info("route_cpu: AVX2 keys %s", used ? "on" : "off");
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++)
        for (int dt = 0; dt < 3; dt++)
            for (int mode = 0; mode < 6; mode++)
                for (int wb_on = 0; wb_on < 2; wb_on++) {
                    const eplb_route_cfg_t *c = &cfgs[ci];
                    const int E = c->num_experts, K = c->top_k;
                    for (int i = 0; i < L * E; i++)
                        bias[i] = mode == 3   ? (float)(rng_u64() % 8) * 1e-6f
                                  : mode == 4 ? (float)(rng_unif() - 0.5) * 100.0f
                                  : mode == 5 && rng_u64() % 20 == 0
                                      ? (rng_u64() % 3 == 0 ? NAN : rng_u64() % 2 ? INFINITY : -INFINITY)
                                      : (float)(rng_unif() - 0.5) * 0.2f;
                    for (int i = 0; i < T * L * E; i++) {
                        float v = rng_normal() * 2.0f;
                        if (mode == 1) /* exact ties */
                            v = (float)(rng_u64() % 6) * 0.5f;
                        else if (mode == 2 && rng_u64() % 50 == 0)
                            v = rng_u64() % 3 == 0 ? NAN : rng_u64() % 2 ? INFINITY : -INFINITY;
                        else if (mode == 3) /* near-ties */
                            v = 1.0f + (float)(rng_u64() % 64) * 1e-6f;
                        x[i] = v;
                        h[i] = dt == 1 ? eplb_f32_to_f16(v) : eplb_f32_to_bf16(v);
                    }
                    const eplb_dtype_t d = dt == 0   ? EPLB_DTYPE_F32
                                           : dt == 1 ? EPLB_DTYPE_F16
                                                     : EPLB_DTYPE_BF16;
                    const void *lg = dt == 0 ? (const void *)x : (const void *)h;
                    const float *b = wb_on ? bias : NULL;
                    eplb_assert_ok(eplb_route_cpu(ia, wa, lg, d, T, L, b, c));
                    for (int r = 0; r < T * L; r++)
                        plain_route_row(ib + r * K, wb + r * K, lg, d, (size_t)r * E,
                                        b ? b + (r % L) * E : NULL, c);
                    for (int i = 0; i < T * L * K; i++)
                        if ((ia[i] != ib[i] ||
                             (memcmp(&wa[i], &wb[i], 4) && !(isnan(wa[i]) && isnan(wb[i])))) &&
                            differ++ < 5)
                            cr_log_error("avx2 %d cfg %zu dtype %d mode %d bias %d entry %d: "
                                         "%d %a, plain %d %a",
                                         used, ci, dt, mode, wb_on, i, ia[i], wa[i], ib[i],
                                         wb[i]);
                }
    }
    eplb_route_cpu_set_avx2(1);
    cr_assert_eq(differ, 0, "%ld entries differ from the plain version", differ);
}

Test(kernels, route_rejects_bad_shapes)
{
    eplb_route_cfg_t c = {256, 8, EPLB_SCORING_SIGMOID, 7, 4, 1, 1.0f};
    eplb_assert_fails(eplb_route_cfg_check(&c), EPLB_ERR_INVALID_ARG, "num_groups");
    c.num_groups = 8;
    c.top_k = 17;
    eplb_assert_fails(eplb_route_cfg_check(&c), EPLB_ERR_INVALID_ARG, "top_k");
    c = (eplb_route_cfg_t){16, 8, EPLB_SCORING_SIGMOID, 8, 2, 1, 1.0f};
    eplb_assert_fails(eplb_route_cfg_check(&c), EPLB_ERR_INVALID_ARG, "kept groups");
    c.num_experts = 1024;
    eplb_assert_fails(eplb_route_cfg_check(&c), EPLB_ERR_INVALID_ARG, "num_experts");
}

/* ---- selection: 4 experts on 8 slots, 4 GPUs (2 slots each), 2 nodes.
 * e0: slots 0 (gpu0), 5 (gpu2); e1: 1 (gpu0); e2: 2, 4, 6 (gpus 1, 2, 3);
 * e3: 3 (gpu1), 7 (gpu3). */
static const int32_t m_logcnt[4] = {2, 1, 3, 2};
static const int32_t m_log2phy[4 * 3] = {0, 5, -1, 1, -1, -1, 2, 4, 6, 3, 7, -1};
static eplb_layer_map_t small_map(void)
{
    return (eplb_layer_map_t){4, 8, 4, 2, 3, m_logcnt, m_log2phy};
}

/* The GPU's division by the invariant block size (rules.h) against '/':
 * edge divisors and numerators, then random pairs. */
Test(kernels, fastdiv_matches_division)
{
    const uint32_t ds[] = {1, 2, 3, 5, 7, 10, 31, 32, 33, 641, 4096, 65535, 65536, 65537,
                           1000003u, 0x7fffffffu, 0x80000000u, 0x80000001u, 0xfffffffeu,
                           0xffffffffu};
    long bad = 0, n_checked = 0;
    rng_seed(41);
    for (size_t j = 0; j < sizeof ds / sizeof ds[0] + 2000; j++) {
        uint32_t d = j < sizeof ds / sizeof ds[0] ? ds[j] : (uint32_t)(rng_u64() >> (rng_u64() % 32));
        if (d == 0)
            d = 1;
        eplb_fastdiv_t f = eplb_fastdiv_make(d);
        const uint32_t ns[] = {0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, 0x7fffffffu,
                               0x80000000u, 0xfffffffeu, 0xffffffffu};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0] + 200; k++) {
            uint32_t n = k < sizeof ns / sizeof ns[0] ? ns[k] : (uint32_t)rng_u64();
            if (eplb_fastdiv(n, f) != n / d && bad++ < 5)
                cr_log_error("fastdiv %u / %u = %u, want %u", n, d, eplb_fastdiv(n, f), n / d);
            n_checked++;
        }
    }
    cr_assert_eq(bad, 0, "%ld of %ld divisions wrong", bad, n_checked);
}

/* The fused hash path's expert heads (rules.h): the remainder by the
 * head's multiplier equals '%' for every replica count 1-255, and the head
 * carries the first five slots (out of range or missing: 0xffff) and the
 * clamped replica count. */
/* The flush by lines: every counter exactly once for every starting line,
 * each warp's 32 positions on one 128-byte line, words before the first
 * counter and past the last skipped (cnt at any word of its line). */
Test(kernels, flush_slots_cover_each_counter_once)
{
    static int seen[400];
    for (int P = 1; P <= 300; P += P < 40 ? 1 : 13)
        for (int a0 = 0; a0 < 32; a0++) {
            const int nl = eplb_flush_lines(P, a0);
            cr_assert_geq(nl * 32, P + a0);
            cr_assert_lt((nl - 1) * 32, P + a0, "P=%d a0=%d: %d lines, one too many", P, a0, nl);
            for (int o = 0; o < nl; o++) {
                memset(seen, 0, sizeof seen);
                for (int p = 0; p < nl * 32; p++) {
                    const int q = eplb_flush_slot(p, a0, nl, o, P);
                    if (q < 0)
                        continue;
                    cr_assert_lt(q, P);
                    seen[q]++;
                    /* the line of counter q, counted from cnt's line */
                    cr_assert_eq((q + a0) >> 5, ((p >> 5) + o) % nl,
                                 "P=%d a0=%d o=%d: position %d off its line", P, a0, o, p);
                }
                for (int q = 0; q < P; q++)
                    cr_assert_eq(seen[q], 1, "P=%d a0=%d o=%d: counter %d flushed %d times", P,
                                 a0, o, q, seen[q]);
            }
        }
}

Test(kernels, hhead_mod_and_slots)
{
    long bad = 0;
    rng_seed(43);
    for (int R = 1; R <= 255; R++) {
        int32_t slots[255];
        for (int j = 0; j < R; j++)
            slots[j] = j == 2 ? -1 : j == 3 ? 700 : (int32_t)(rng_u64() % 600);
        eplb_hhead_t h = eplb_hhead_make(slots, R, 255, 600);
        cr_assert_eq((int)(h.x >> 16) & 0xff, R);
        const uint32_t got[5] = {h.x & 0xffff, h.z & 0xffff, h.z >> 16, h.w & 0xffff, h.w >> 16};
        for (int j = 0; j < 5; j++) {
            uint32_t want = j >= R || j == 2 || j == 3 ? 0xffffu : (uint32_t)slots[j];
            cr_assert_eq(got[j], want, "R=%d replica %d: slot %u, want %u", R, j, got[j], want);
        }
        const uint32_t ns[] = {0, 1, (uint32_t)R - 1, (uint32_t)R, 0x7fffffffu, 0xffffffffu,
                               0xfffffffeu};
        for (size_t k = 0; k < sizeof ns / sizeof ns[0] + 500; k++) {
            uint32_t n = k < sizeof ns / sizeof ns[0] ? ns[k] : (uint32_t)rng_u64();
            if (eplb_hhead_mod(h, n) != n % (uint32_t)R && bad++ < 5)
                cr_log_error("%u mod %d = %u", n, R, eplb_hhead_mod(h, n));
        }
    }
    cr_assert_eq(bad, 0, "%ld remainders wrong", bad);
    /* replica counts clamp to [1, max_replicas] */
    int32_t one = 5;
    cr_assert_eq((eplb_hhead_make(&one, 0, 4, 600).x >> 16) & 0xff, 1u);
    int32_t four[4] = {1, 2, 3, 4};
    cr_assert_eq((eplb_hhead_make(four, 9, 4, 600).x >> 16) & 0xff, 4u);
}

Test(kernels, select_hash_and_flatmod_by_formula)
{
    enum { T = 10, K = 2 };
    int32_t ids[T * K], phys[T * K], counts[8];
    for (int i = 0; i < T * K; i++)
        ids[i] = (i * 7 + 1) % 5 == 4 ? 9 : (i * 7 + 1) % 5; /* 9: invalid */
    eplb_layer_map_t m = small_map();
    for (int mode = 0; mode < 2; mode++) {
        eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
        c.mode = mode == 0 ? EPLB_SELECT_HASH : EPLB_SELECT_FLATMOD;
        c.num_ranks = 2; /* blocks of 5 tokens: t = i % 5 */
        memset(counts, 0, sizeof counts);
        eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, T, 1, K, &m, &c));
        int want_counts[8] = {0};
        for (int i = 0; i < T; i++)
            for (int k = 0; k < K; k++) {
                int e = ids[i * K + k], t = i % 5;
                if (e < 0 || e > 3) {
                    cr_assert_eq(phys[i * K + k], -1);
                    continue;
                }
                uint64_t r = mode == 0 ? ((uint64_t)t * 2654435769ull) % 4294967296ull % m_logcnt[e]
                                       : (uint64_t)(t * K + k) % m_logcnt[e];
                int p = m_log2phy[e * 3 + r];
                cr_assert_eq(phys[i * K + k], p, "mode %d token %d k %d", mode, i, k);
                want_counts[p]++;
            }
        cr_assert_arr_eq(counts, want_counts, sizeof counts);
    }
}

Test(kernels, select_counts_accumulate_and_src_rank_rows)
{
    /* two ranks interleaved: token i is row i/2 of rank i%2 */
    enum { T = 8 };
    uint16_t src[T] = {0, 1, 0, 1, 0, 1, 0, 1};
    int32_t ids[T], phys[T], counts[8] = {0};
    for (int i = 0; i < T; i++)
        ids[i] = 2; /* three replicas */
    eplb_layer_map_t m = small_map();
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_FLATMOD;
    c.num_ranks = 2;
    c.src_rank = src;
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, T, 1, 1, &m, &c));
    for (int i = 0; i < T; i++)
        cr_assert_eq(phys[i], m_log2phy[6 + (i / 2) % 3]);
    eplb_assert_ok(eplb_select_record_cpu(NULL, counts, ids, T, 1, 1, &m, &c));
    /* rows 0..3 of both ranks: reps 0,1,2,0 twice per call, two calls */
    cr_assert_eq(counts[2], 8);
    cr_assert_eq(counts[4], 4);
    cr_assert_eq(counts[6], 4);
    src[3] = 2;
    eplb_assert_fails(eplb_select_record_cpu(phys, counts, ids, T, 1, 1, &m, &c),
                      EPLB_ERR_INVALID_ARG, "src_rank[3]");
}

Test(kernels, select_local_prefers_gpu_then_node)
{
    /* 4 ranks = 4 GPUs, one token each (T = 4: blocks of 1) */
    int32_t ids[4] = {0, 0, 0, 0}, phys[4], counts[8] = {0};
    eplb_layer_map_t m = small_map();
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_LOCAL;
    c.num_ranks = 4;
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 4, 1, 1, &m, &c));
    /* e0 lives on gpu0 (slot 0, node 0) and gpu2 (slot 5, node 1) */
    cr_assert_eq(phys[0], 0); /* own GPU */
    cr_assert_eq(phys[1], 0); /* gpu1: same node as gpu0 */
    cr_assert_eq(phys[2], 5); /* own GPU */
    cr_assert_eq(phys[3], 5); /* gpu3: same node as gpu2 */
    /* e3 is on gpus 1 and 3; e2 on 1, 2, 3: rank 0 has no GPU copy of e2,
     * so it takes the only same-node one, slot 2 (gpu1) */
    int32_t ids2[4] = {2, 2, 2, 2};
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids2, 4, 1, 1, &m, &c));
    cr_assert_eq(phys[0], 2);
    cr_assert_eq(phys[1], 2);
    cr_assert_eq(phys[2], 4);
    cr_assert_eq(phys[3], 6);
    /* 8 ranks on 4 GPUs: rank r sits on GPU r x 4 / 8 (two ranks a GPU;
     * found by mutation testing: r mod 4 passed), so e0 goes to slot 0 for
     * ranks 0-3 (GPU 0 and its node peer GPU 1) and to slot 5 for 4-7 */
    int32_t ids8[8] = {0, 0, 0, 0, 0, 0, 0, 0}, phys8[8];
    c.num_ranks = 8;
    eplb_assert_ok(eplb_select_record_cpu(phys8, counts, ids8, 8, 1, 1, &m, &c));
    const int32_t want8[8] = {0, 0, 0, 0, 5, 5, 5, 5};
    cr_assert_arr_eq(phys8, want8, sizeof want8);
}

/* splitmix64's output function, written here from the published constants
 * (Steele, Lea, Flood 2014), independently of kernels/rules.h. */
static uint64_t test_splitmix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The random mode by its formula (docs/kernels.md): row key
 * mix(mix(mix(seed ^ step) ^ layer) ^ t), per k z = mix(row ^ k), replica
 * ((z >> 32) * R) >> 32 (Lemire's multiply-shift).  Steps 77, -5 and
 * 2^32 + 77: the step enters as all 64 bits (rules.h: "step and layer
 * enter as 64-bit two's complement"; found by mutation testing: the step
 * cut to 32 bits passed the suite while its only step was small). */
Test(kernels, select_random_by_formula)
{
    /* splitmix64 seeded with 0 first returns 0xe220a8397b1dcdaf (its
     * published first output): anchors the helper and the rule alike */
    cr_assert_eq(test_splitmix(0), 0xe220a8397b1dcdafull);
    cr_assert_eq(eplb_rule_mix64(0), 0xe220a8397b1dcdafull);
    enum { T = 200, L = 2, K = 2 };
    int32_t ids[T * L * K], phys[T * L * K], counts[L * 8] = {0};
    for (int i = 0; i < T * L * K; i++)
        ids[i] = (int32_t)((i * 7 + i / 5) % 4); /* every expert, R = 1, 2, 3 */
    eplb_layer_map_t m[L] = {small_map(), small_map()};
    const int64_t steps[3] = {77, -5, ((int64_t)1 << 32) + 77};
    for (int si = 0; si < 3; si++) {
        eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
        c.mode = EPLB_SELECT_RANDOM;
        c.seed = 0x1234567890abcdefull;
        c.step = steps[si];
        memset(counts, 0, sizeof counts);
        eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, T, L, K, m, &c));
        int32_t want_counts[L * 8] = {0};
        for (int t = 0; t < T; t++)
            for (int l = 0; l < L; l++) {
                uint64_t row = test_splitmix(
                    test_splitmix(test_splitmix(c.seed ^ (uint64_t)c.step) ^ (uint64_t)l) ^
                    (uint64_t)t);
                for (int k = 0; k < K; k++) {
                    int i = (t * L + l) * K + k, e = ids[i], R = m_logcnt[e];
                    uint64_t z = test_splitmix(row ^ (uint64_t)k);
                    int rep = (int)(((z >> 32) * (uint64_t)R) >> 32);
                    int want = m_log2phy[e * 3 + rep];
                    cr_assert_eq(phys[i], want, "step %lld t %d layer %d k %d (expert %d)",
                                 (long long)c.step, t, l, k, e);
                    want_counts[l * 8 + want]++;
                }
            }
        cr_assert_arr_eq(counts, want_counts, sizeof counts, "step %lld", (long long)c.step);
    }
}

/* local with several replicas on the token's own GPU, and several on its
 * node only: the (hash(t) mod count)-th of them in slot order.  hash(t) =
 * t * 2654435769 mod 2^32, an odd multiplier, so hash(t) mod 2 = t mod 2. */
Test(kernels, select_local_hash_among_several)
{
    /* 2 experts on 4 slots, 2 GPUs of 2 slots, one node: e0 on slots 0, 1
     * (gpu0), e1 on slots 2, 3 (gpu1); 2 ranks of 4 tokens (t = 0..3) */
    static const int32_t cnt[2] = {2, 2}, l2p[4] = {0, 1, 2, 3};
    eplb_layer_map_t m = {2, 4, 2, 1, 2, cnt, l2p};
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_LOCAL;
    c.num_ranks = 2;
    int32_t ids[8] = {0, 0, 0, 0, 0, 0, 0, 0}, phys[8], counts[4] = {0};
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 8, 1, 1, &m, &c));
    for (int i = 0; i < 8; i++) /* rank 0: its GPU's two; rank 1: the node's two */
        cr_assert_eq(phys[i], (i % 4) % 2, "token %d", i);
    for (int i = 0; i < 8; i++)
        ids[i] = 1;
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 8, 1, 1, &m, &c));
    for (int i = 0; i < 8; i++)
        cr_assert_eq(phys[i], 2 + (i % 4) % 2, "token %d", i);
    cr_assert_eq(counts[0], 4);
    cr_assert_eq(counts[1], 4);
    cr_assert_eq(counts[2], 4);
    cr_assert_eq(counts[3], 4);
}

Test(kernels, select_random_is_seeded_and_uniform)
{
    enum { T = 30000 };
    int32_t *ids = malloc(sizeof *ids * T), *a = malloc(sizeof *a * T), *b = malloc(sizeof *b * T);
    for (int i = 0; i < T; i++)
        ids[i] = 2;
    eplb_layer_map_t m = small_map();
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_RANDOM;
    c.seed = 42;
    int32_t counts[8] = {0};
    eplb_assert_ok(eplb_select_record_cpu(a, counts, ids, T, 1, 1, &m, &c));
    memset(counts, 0, sizeof counts);
    eplb_assert_ok(eplb_select_record_cpu(b, counts, ids, T, 1, 1, &m, &c));
    cr_assert_arr_eq(a, b, sizeof *a * T);
    /* each of 3 replicas within 4 sigma of T/3 (sigma ~ 82) */
    for (int s = 2; s <= 6; s += 2)
        cr_assert(abs(counts[s] - T / 3) < 330, "slot %d: %d", s, counts[s]);
    c.seed = 43;
    eplb_assert_ok(eplb_select_record_cpu(b, counts, ids, T, 1, 1, &m, &c));
    int same = 0;
    for (int i = 0; i < T; i++)
        same += a[i] == b[i];
    cr_assert(same < T / 3 + 400, "another seed agrees on %d of %d", same, T);
    free(ids);
    free(a);
    free(b);
}

Test(kernels, select_rr_block_by_formula)
{
    enum { T = 1500, K = 2 };
    int32_t *ids = malloc(sizeof *ids * T * K), *phys = malloc(sizeof *phys * T * K);
    for (int i = 0; i < T * K; i++)
        ids[i] = (i % 3 == 0) ? 1 : 2; /* e1 interleaved with e2 */
    eplb_layer_map_t m = small_map();
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_RR_BLOCK;
    int32_t counts[8] = {0};
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, T, 1, K, &m, &c));
    int ord = 0, block = 0;
    for (int f = 0; f < T * K; f++) {
        if (f / 1024 != block)
            block = f / 1024, ord = 0;
        if (ids[f] == 1) {
            cr_assert_eq(phys[f], 1);
            continue;
        }
        cr_assert_eq(phys[f], m_log2phy[6 + (ord + block) % 3], "entry %d", f);
        ord++;
    }
    free(ids);
    free(phys);
}

Test(kernels, select_balanced_by_hand)
{
    /* 2 GPUs of 2 slots; e0 on slot 0 (gpu0), e1 on slot 2 (gpu1), e2 on
     * slots 1 (gpu0) and 3 (gpu1).  Loads 10, 4, 8: gpu1 is filled up to
     * 10 with 6, then 1 each: gpus end at 11 and 11. */
    const int32_t lc[3] = {1, 1, 2}, l2p[6] = {0, -1, 2, -1, 1, 3};
    eplb_layer_map_t m = {3, 4, 2, 1, 2, lc, l2p};
    int32_t ids[22], phys[22], counts[4] = {0};
    int n = 0;
    for (int i = 0; i < 8; i++)
        ids[n++] = 2;
    for (int i = 0; i < 10; i++)
        ids[n++] = 0;
    for (int i = 0; i < 4; i++)
        ids[n++] = 1;
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_BALANCED;
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 22, 1, 1, &m, &c));
    int want[4] = {10, 1, 4, 7};
    cr_assert_arr_eq(counts, want, sizeof want);
    cr_assert_eq(phys[0], 1); /* replica 0 takes the first ordinal */
    for (int i = 1; i < 8; i++)
        cr_assert_eq(phys[i], 3);
}

/* The CPU router's fast sigmoid is exact enough only with its margin:
 * keys within it of the K-th are recomputed with expf (found by mutation
 * testing: a margin of 1e-7 instead of 3e-5 (1 + max bias) passed the
 * suite).  A row whose second and third keys are one float ulp apart
 * (0.977558255 against 0.977558196, the fast sigmoid's own error up to
 * 3e-7): the ids must be those of the keys in float, 1 / (1 + expf(-x)) +
 * bias, computed here. */
Test(kernels, route_cpu_near_tie_by_exact_keys)
{
    const float x[6] = {10.0f, 3.7741313f, 1.47542346f, -10.0f, -10.0f, -10.0f};
    const float b[6] = {0.2f, 0.0f, 0.163677946f, 0.0f, 0.0f, 0.0f};
    float key[6];
    for (int e = 0; e < 6; e++)
        key[e] = 1.0f / (1.0f + expf(-x[e])) + b[e];
    cr_assert(key[1] != key[2], "the case needs two distinct near-equal keys");
    const int second = key[1] > key[2] ? 1 : 2;
    eplb_route_cfg_t c = {6, 2, EPLB_SCORING_SIGMOID, 2, 1, 1, 1.0f};
    int32_t ids[2];
    eplb_assert_ok(eplb_route_cpu(ids, NULL, x, EPLB_DTYPE_F32, 1, 1, b, &c));
    cr_assert(ids[0] == 0 && ids[1] == second, "ids %d %d, want 0 %d (keys %.9g %.9g)", ids[0],
              ids[1], second, key[1], key[2]);
}

/* The water fill's two documented tie rules (kernels/rules.h), which no
 * test pinned (found by mutation testing: a sort by >= instead of > and
 * the remainder to the higher slot both passed the suite).  By hand:
 * (a) one expert on GPUs 0 and 1 (slots 0 and 2, 2 slots a GPU), both
 * GPUs at load 0, 3 tokens: the common level is 3 / 2, so one GPU gets 2
 * and the other 1, and "ties go to the replica that comes first": GPU 0's
 * replica (slot 0) takes 2.  (b) two replicas on one GPU (slots 0 and 1):
 * the GPU's 3 tokens split evenly, "the lower slot takes the remainder
 * first": slot 0 2, slot 1 1.  (c) GPU 1 less loaded (0 against 1): it is
 * raised first, so with 3 tokens both end at 2: slot 2 takes 2, slot 0 1. */
Test(kernels, water_fill_tie_rules_by_hand)
{
    int32_t quota[2];
    const int32_t two_gpus[2] = {0, 2}, one_gpu[2] = {0, 1};
    int64_t load[2] = {0, 0};
    eplb_rule_water_fill(quota, two_gpus, 2, 3, load, 2);
    cr_assert(quota[0] == 2 && quota[1] == 1, "ties: %d %d, want 2 1", quota[0], quota[1]);
    cr_assert(load[0] == 2 && load[1] == 1);
    int64_t load1[1] = {0};
    eplb_rule_water_fill(quota, one_gpu, 2, 3, load1, 2);
    cr_assert(quota[0] == 2 && quota[1] == 1, "one GPU: %d %d, want 2 1", quota[0], quota[1]);
    cr_assert_eq(load1[0], 3);
    int64_t load2[2] = {1, 0};
    eplb_rule_water_fill(quota, two_gpus, 2, 3, load2, 2);
    cr_assert(quota[0] == 1 && quota[1] == 2, "less loaded first: %d %d, want 1 2", quota[0],
              quota[1]);
}

/* Peak GPU load of the balanced plan against the lower bound
 * max(ceil(total / D), largest load fixed by single-replica experts) on
 * random skewed instances shaped like DeepSeek-V3 (256 experts, 32 extra
 * replicas on 32 GPUs). */
Test(kernels, select_balanced_close_to_lower_bound)
{
    enum { E = 256, P = 288, D = 32, MR = 4 };
    int32_t lc[E], l2p[E * MR], quota[E * MR];
    int64_t n[E], load[D];
    double worst = 1;
    rng_seed(5);
    for (int trial = 0; trial < 50; trial++) {
        /* slots: expert e first on slot e, then 32 replicas of random
         * experts on the remaining slots (at most MR replicas each) */
        for (int e = 0; e < E; e++) {
            lc[e] = 1;
            l2p[e * MR] = e;
            for (int j = 1; j < MR; j++)
                l2p[e * MR + j] = -1;
        }
        for (int p = E; p < P;) {
            int e = (int)(rng_u64() % E);
            if (lc[e] < MR)
                l2p[e * MR + lc[e]++] = p++;
        }
        /* sort each row ascending (vLLM layout) */
        for (int e = 0; e < E; e++)
            for (int a = 1; a < lc[e]; a++)
                for (int b = a; b > 0 && l2p[e * MR + b - 1] > l2p[e * MR + b]; b--) {
                    int32_t t = l2p[e * MR + b];
                    l2p[e * MR + b] = l2p[e * MR + b - 1];
                    l2p[e * MR + b - 1] = t;
                }
        int64_t total = 0;
        for (int e = 0; e < E; e++)
            total += n[e] = (int64_t)(2000 * exp(rng_normal()));
        eplb_layer_map_t m = {E, P, D, 1, MR, lc, l2p};
        eplb_assert_ok(eplb_select_plan_balanced(quota, load, n, &m));
        int64_t fixed[D] = {0}, peak = 0, sum = 0;
        for (int e = 0; e < E; e++) {
            int64_t q = 0;
            for (int j = 0; j < lc[e]; j++)
                q += quota[e * MR + j];
            cr_assert_eq(q, n[e], "expert %d quota %lld of %lld", e, (long long)q, (long long)n[e]);
            if (lc[e] == 1)
                fixed[l2p[e * MR] / (P / D)] += n[e];
        }
        int64_t lb = (total + D - 1) / D;
        for (int g = 0; g < D; g++) {
            lb = fixed[g] > lb ? fixed[g] : lb;
            peak = load[g] > peak ? load[g] : peak;
            sum += load[g];
        }
        cr_assert_eq(sum, total);
        double ratio = (double)peak / lb;
        worst = ratio > worst ? ratio : worst;
    }
    cr_log_info("balanced plan: worst peak / lower bound over 50 trials = %.4f", worst);
    cr_assert_leq(worst, 1.02);
}

/* The example where the water fill alone stops above the least peak: 4
 * GPUs of 2 slots holding experts [0 1 | 2 3 | 4 0 | 1 2], 10 tokens each
 * for experts 0, 1 and 2.  The water fill puts expert 0 (GPUs 0, 2) at 5
 * and 5, expert 1 (GPUs 0, 3) at 2 and 8 (GPU 0 is at 5), expert 2 (GPUs
 * 1, 3) at 9 and 1 (GPU 3 at 8): peak 9.  A split of peak 8 = ceil(30 / 4)
 * exists (0: 2 + 8, 1: 6 + 4, 2: 6 + 4 gives GPUs 8, 6, 8, 8), and the plan
 * must reach it. */
Test(kernels, select_balanced_least_peak_by_hand)
{
    enum { E = 5, P = 8, D = 4, MR = 2 };
    const int32_t lc[E] = {2, 2, 2, 1, 1};
    const int32_t l2p[E * MR] = {0, 5, 1, 6, 2, 7, 3, -1, 4, -1};
    const int64_t n[E] = {10, 10, 10, 0, 0};
    eplb_layer_map_t m = {E, P, D, 1, MR, lc, l2p};
    cr_assert_eq(plan_water_fill_peak(n, &m), 9);
    cr_assert_eq(plan_least_peak(n, &m), 8);
    int32_t quota[E * MR];
    int64_t load[D];
    eplb_assert_ok(eplb_select_plan_balanced(quota, load, n, &m));
    int64_t got[D] = {0};
    for (int e = 0; e < E; e++) {
        int64_t sum = 0;
        for (int j = 0; j < lc[e]; j++) {
            cr_assert_geq(quota[e * MR + j], 0);
            sum += quota[e * MR + j];
            got[l2p[e * MR + j] / 2] += quota[e * MR + j];
        }
        cr_assert_eq(sum, n[e], "expert %d", e);
    }
    for (int g = 0; g < D; g++) {
        cr_assert_eq(got[g], load[g], "gpu %d", g);
        cr_assert_leq(load[g], 8, "gpu %d load %lld", g, (long long)load[g]);
    }
}

/* One random layer of E experts on D GPUs of spg slots for
 * select_balanced_least_peak_random: every expert placed once, the other
 * slots to random experts (several on one GPU allowed), skewed loads.
 * Checks the plan's quotas and loads, and its peak against the least peak
 * of any split computed without flows (plan_check.h: the largest
 * ceil(demand(S) / |S|) over GPU sets S).  Returns 1 where the water fill
 * alone stopped above that peak. */
static int least_peak_trial(int E, int D, int spg, int t)
{
    enum { EMAX = 40, DMAX = 12, PMAX = 40 };
    const int P = D * spg, MR = P;
    int32_t lc[EMAX], l2p[EMAX * PMAX], quota[EMAX * PMAX], slot[PMAX];
    int64_t n[EMAX], load[DMAX];
    cr_assert(E <= EMAX && D <= DMAX && P <= PMAX && P >= E);
    for (int p = 0; p < P; p++)
        slot[p] = p;
    for (int p = P - 1; p > 0; p--) {
        int q = (int)(rng_u64() % (uint64_t)(p + 1)), x = slot[p];
        slot[p] = slot[q];
        slot[q] = x;
    }
    for (int e = 0; e < E; e++) {
        lc[e] = 1;
        l2p[e * MR] = slot[e];
    }
    for (int p = E; p < P; p++) {
        int e = (int)(rng_u64() % (uint64_t)E);
        l2p[e * MR + lc[e]++] = slot[p];
    }
    for (int e = 0; e < E; e++) /* ascending rows, as the policies give */
        for (int a = 1; a < lc[e]; a++)
            for (int b = a; b > 0 && l2p[e * MR + b - 1] > l2p[e * MR + b]; b--) {
                int32_t x = l2p[e * MR + b];
                l2p[e * MR + b] = l2p[e * MR + b - 1];
                l2p[e * MR + b - 1] = x;
            }
    for (int e = 0; e < E; e++)
        n[e] = rng_u64() % 4 == 0 ? 0 : (int64_t)(20 * exp(1.5 * rng_normal()));
    eplb_layer_map_t m = {E, P, D, 1, MR, lc, l2p};
    eplb_assert_ok(eplb_select_plan_balanced(quota, load, n, &m));
    int64_t got[DMAX] = {0}, peak = 0;
    for (int e = 0; e < E; e++) {
        int64_t sum = 0;
        for (int j = 0; j < lc[e]; j++) {
            cr_assert_geq(quota[e * MR + j], 0, "trial %d", t);
            sum += quota[e * MR + j];
            got[l2p[e * MR + j] / spg] += quota[e * MR + j];
        }
        cr_assert_eq(sum, n[e], "trial %d expert %d", t, e);
    }
    for (int g = 0; g < D; g++) {
        cr_assert_eq(got[g], load[g], "trial %d gpu %d", t, g);
        peak = load[g] > peak ? load[g] : peak;
    }
    const int64_t best = plan_least_peak(n, &m);
    cr_assert_eq(peak, best, "trial %d: peak %lld, least %lld (E=%d D=%d spg=%d)", t,
                 (long long)peak, (long long)best, E, D, spg);
    return plan_water_fill_peak(n, &m) > best;
}

/* The plan reaches the least peak of any split: 3000 random layers of 3-14
 * experts on 2-6 GPUs of 1-4 slots, and 100 of 20 experts on 12 GPUs of 3
 * slots (longer augmenting paths).  The exact step must have had work to
 * do (the water fill alone above the least peak) in part of them. */
Test(kernels, select_balanced_least_peak_random)
{
    int improved = 0, big = 0, trials = 0;
    rng_seed(41);
    for (int t = 0; t < 3000; t++) {
        const int E = 3 + (int)(rng_u64() % 12), D = 2 + (int)(rng_u64() % 5);
        int spg = (E + D - 1) / D + (int)(rng_u64() % 2);
        spg = spg > 4 ? 4 : spg;
        if (D * spg < E)
            continue;
        improved += least_peak_trial(E, D, spg, t);
        trials++;
    }
    for (int t = 0; t < 100; t++)
        big += least_peak_trial(20, 12, 3, t);
    cr_log_info("balanced plan: the water fill alone above the least peak in %d of %d small "
                "layers, %d of 100 large",
                improved, trials, big);
    cr_assert_geq(improved, 30, "only %d small layers needed the exact step", improved);
    cr_assert_geq(big, 5, "only %d large layers needed the exact step", big);
}

/* Selection split into parts (token ranges of a layer, on several
 * threads) gives the output of one pass in token order, in every mode:
 * T x K = 300,000 entries of K = 6, so that parts start inside an rr-block
 * block (1024 entries) and inside a rank's batch; counts that were not
 * zero before (they accumulate); a hot expert and ids out of range. */
Test(kernels, select_parts_equal_one_pass)
{
    enum { T = 50000, K = 6, E = 12, MR = 4, P = 24, D = 4 };
    int32_t *ids = malloc(sizeof *ids * 2 * T * K);
    int32_t *ph1 = malloc(sizeof *ph1 * 2 * T * K), *ph2 = malloc(sizeof *ph2 * 2 * T * K);
    uint16_t *src = malloc(sizeof *src * T);
    cr_assert(ids && ph1 && ph2 && src);
    rng_seed(77);
    for (int i = 0; i < 2 * T * K; i++) {
        uint64_t r = rng_u64() % 100;
        ids[i] = r < 30 ? 3 : r == 99 ? E + 5 : r == 98 ? -1 : (int32_t)(r % E);
    }
    for (int i = 0; i < T; i++)
        src[i] = (uint16_t)(rng_u64() % D);
    /* replicas 1..MR per expert, slots spread over the GPUs */
    int32_t logcnt[2][E], log2phy[2][E * MR];
    eplb_layer_map_t maps[2];
    for (int l = 0; l < 2; l++) {
        for (int e = 0; e < E; e++) {
            logcnt[l][e] = 1 + (e + l) % MR;
            for (int j = 0; j < MR; j++)
                log2phy[l][e * MR + j] = j < logcnt[l][e] ? (e * 5 + j * 7 + l) % P : -1;
        }
        maps[l] = (eplb_layer_map_t){E, P, D, 2, MR, logcnt[l], log2phy[l]};
    }
    for (int mode = 0; mode < 6; mode++)
        for (int L = 1; L <= 2; L++)
            for (int th = 3; th <= 7; th += 4) {
                eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
                c.mode = (eplb_select_mode_t)mode;
                c.seed = 5;
                c.step = 2;
                c.num_ranks = D;
                c.src_rank = mode == EPLB_SELECT_LOCAL ? src : NULL;
                int32_t cnt1[2 * P], cnt2[2 * P];
                for (int p = 0; p < 2 * P; p++)
                    cnt1[p] = cnt2[p] = p * 3;
                c.threads = 1;
                eplb_assert_ok(eplb_select_record_cpu(ph1, cnt1, ids, T, L, K, maps, &c));
                c.threads = th;
                eplb_assert_ok(eplb_select_record_cpu(ph2, cnt2, ids, T, L, K, maps, &c));
                cr_assert_arr_eq(ph1, ph2, sizeof *ph1 * (size_t)T * L * K,
                                 "mode %s L=%d threads %d: replicas differ",
                                 eplb_select_mode_name(c.mode), L, th);
                cr_assert_arr_eq(cnt1, cnt2, sizeof *cnt1 * (size_t)L * P,
                                 "mode %s L=%d threads %d: counts differ",
                                 eplb_select_mode_name(c.mode), L, th);
                int64_t sum = 0, want = 0;
                for (int p = 0; p < L * P; p++)
                    sum += cnt2[p] - p * 3;
                for (int i = 0; i < T * L * K; i++)
                    want += ids[i] >= 0 && ids[i] < E;
                cr_assert_eq(sum, want, "mode %s: %lld recorded, %lld valid entries",
                             eplb_select_mode_name(c.mode), (long long)sum, (long long)want);
            }
    free(ids);
    free(ph1);
    free(ph2);
    free(src);
}

/* A failure in a task on a helper thread reaches the caller with its
 * message (error messages are per thread): balanced refuses an expert of
 * more than EPLB_PLAN_MAX_R (64) replicas; only layer 7 of 8 has one, so
 * over 20 calls on 4 threads it fails on helpers as well as on the caller.
 * Every call must say why. */
Test(kernels, select_error_from_a_helper_keeps_its_message)
{
    enum { T = 8192, L = 8, K = 2, E = 4, MR = 65, P = 8 };
    static int32_t ids[T * L * K], phys[T * L * K], counts[L * P];
    for (int i = 0; i < T * L * K; i++)
        ids[i] = i % E;
    static int32_t logcnt[L][E], log2phy[L][E * MR];
    eplb_layer_map_t maps[L];
    for (int l = 0; l < L; l++) {
        for (int e = 0; e < E; e++) {
            logcnt[l][e] = l == L - 1 && e == 0 ? MR : 1;
            for (int j = 0; j < MR; j++)
                log2phy[l][e * MR + j] = (e + j) % P;
        }
        maps[l] = (eplb_layer_map_t){E, P, 2, 1, MR, logcnt[l], log2phy[l]};
    }
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_BALANCED;
    c.threads = 4;
    for (int r = 0; r < 20; r++) {
        eplb_error_clear();
        eplb_assert_fails(eplb_select_record_cpu(phys, counts, ids, T, L, K, maps, &c),
                          EPLB_ERR_INVALID_ARG, "more than the 64 the balanced plan takes");
    }
}

Test(kernels, select_rejects_bad_maps)
{
    int32_t lc[4] = {2, 1, 3, 2}, l2p[12];
    memcpy(l2p, m_log2phy, sizeof l2p);
    eplb_layer_map_t m = {4, 8, 4, 2, 3, lc, l2p};
    eplb_assert_ok(eplb_layer_map_check(&m));
    l2p[4] = 8;
    lc[1] = 2;
    eplb_assert_fails(eplb_layer_map_check(&m), EPLB_ERR_INVALID_ARG, "log2phy[1][1]");
    lc[1] = 4;
    eplb_assert_fails(eplb_layer_map_check(&m), EPLB_ERR_INVALID_ARG, "logcnt[1]");
    m.num_physical = 6;
    eplb_assert_fails(eplb_layer_map_check(&m), EPLB_ERR_INVALID_ARG, "multiple");
    /* through the select call: the message names the layer and the entry */
    eplb_layer_map_t two[2] = {small_map(), small_map()};
    lc[1] = 2;
    two[1].logcnt = lc;
    two[1].log2phy = l2p;
    int32_t ids[2] = {0, 1}, counts[16] = {0};
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    eplb_assert_fails(eplb_select_record_cpu(NULL, counts, ids, 1, 2, 1, two, &c),
                      EPLB_ERR_INVALID_ARG, "layer 1: layer map: log2phy[1][1] = 8");
}

/* The ESFT trace's stand-in logits reproduce its recorded top-6 ids (issue 3:
 * >= 99.9% of tokens, every layer).  First 2000 tokens to stay fast. */
Test(kernels, route_reproduces_esft_trace_ids)
{
    const char *path = eplb_test_path(eplb_test_srcdir(), "traces/esft-intent.h5");
    FILE *f = fopen(path, "rb");
    if (!f)
        cr_skip_test("%s not present", path);
    fclose(f);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    cr_assert(in->levels & EPLB_LEVEL_LOGITS);
    cr_assert(in->levels & EPLB_LEVEL_TOPK);
    int64_t T = in->num_tokens < 2000 ? in->num_tokens : 2000;
    const int L = in->num_layers, E = in->route.num_experts, K = in->route.top_k;
    void *x = malloc((size_t)T * L * E * eplb_dtype_size(in->logits_dtype));
    int32_t *rec = malloc(sizeof *rec * T * L * K), *ids = malloc(sizeof *ids * T * L * K);
    float *bias = in->has_bias ? malloc(sizeof *bias * L * E) : NULL;
    eplb_assert_ok(eplb_trace_read_logits(tr, x, 0, T));
    eplb_assert_ok(eplb_trace_read_topk(tr, rec, NULL, 0, T));
    if (bias)
        eplb_assert_ok(eplb_trace_read_bias(tr, bias));
    eplb_assert_ok(eplb_route_cpu(ids, NULL, x, in->logits_dtype, T, L, bias, &in->route));
    int64_t agree = 0, same_order = 0;
    for (int64_t t = 0; t < T; t++) {
        int ok = 1, ord = 1;
        for (int l = 0; l < L; l++) {
            const int32_t *r = rec + ((size_t)t * L + l) * K, *g = ids + ((size_t)t * L + l) * K;
            for (int k = 0; k < K; k++) {
                int found = 0;
                for (int j = 0; j < K; j++)
                    found |= g[j] == r[k];
                ok &= found;
                ord &= g[k] == r[k];
            }
        }
        agree += ok;
        same_order += ord;
    }
    cr_log_info("esft-intent: %lld tokens, id sets agree %.5f, same order %.5f", (long long)T,
                (double)agree / T, (double)same_order / T);
    cr_assert_geq(agree, 0.999 * T, "only %lld of %lld tokens reproduced", (long long)agree,
                  (long long)T);
    free(x);
    free(rec);
    free(ids);
    free(bias);
    eplb_trace_close(tr);
}

/* The CPU benchmark's per-core rate is over the threads each call used:
 * eplb_route_cpu gives each thread at least 64 rows (so T = 16 routes on
 * one thread, 255 on three, 1024 on four of EPLB_THREADS=4), selection
 * one thread per EPLB_SELECT_TASK_ENTRIES = 32768 entries (T = 1024, K = 8
 * on one); "threads" says which, and tokens / time / threads is the rate
 * printed. */
Test(kernels, bench_cpu_threads)
{
    setenv("EPLB_THREADS", "4", 1);
    cr_assert_eq(eplb_route_cpu_threads(16), 1);
    cr_assert_eq(eplb_route_cpu_threads(255), 3);
    cr_assert_eq(eplb_route_cpu_threads(1 << 20), 4);
    cr_assert_eq(eplb_select_cpu_threads(4096, 1, 8), 1);
    cr_assert_eq(eplb_select_cpu_threads(8192, 1, 8), 2);
    cr_assert_eq(eplb_select_cpu_threads(1 << 20, 1, 8), 4);
    cr_assert_eq(eplb_select_cpu_threads(1 << 20, 58, 8), 4);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench kernels --device cpu --tokens 16,1024 --reps 1 "
                                     "--json 2>/dev/null");
    unsetenv("EPLB_THREADS");
    cr_assert_eq(rc, 0, "rc %d: %s", rc, out);
    const int want[2][3] = {{1, 1, 1}, {4, 1, 4}}; /* route, select, fused */
    int lines = 0;
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        eplb_json_t *v = NULL;
        eplb_assert_ok(eplb_json_parse(&v, l, strlen(l), "bench output"));
        const eplb_json_t *th = eplb_json_get(v, "threads"), *t = eplb_json_get(v, "tokens"),
                          *us = eplb_json_get(v, "median_us"),
                          *rate = eplb_json_get(v, "tokens_per_s_per_core");
        cr_assert(th && t && us && rate, "%s", l);
        cr_assert_float_eq(th->num, want[lines / 3][lines % 3], 0, "%s", l);
        /* per core: over the threads, or the CPUs where fewer (EPLB_THREADS=4
         * on a 2-core machine runs 4 threads on 2 cores) */
        const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        const double cores = ncpu > 0 && ncpu < th->num ? (double)ncpu : th->num;
        const double expect = t->num / (us->num * 1e-6) / cores;
        cr_assert(fabs(rate->num - expect) <= 1e-3 * expect + 1e-3 * rate->num, "%s", l);
        eplb_json_free(v);
        lines++;
    }
    cr_assert_eq(lines, 6);
    free(out);
}

/* `bench kernels --device cpu --json`: one JSON object per kernel and T with
 * the keys of the issue; parsed back with the project's JSON reader. */
Test(kernels, bench_cli_json_lines)
{
    char *out = NULL;
    int rc = eplb_test_run_cli(
        &out, "bench kernels --device cpu --tokens 16,40 --reps 3 "
              "--mode random --hot 2 --experts 64 --topk 6 --groups 8 "
              "--topk-groups 3 --scoring softmax --replicas 72 --gpus 8 --nodes 2 --json "
              "2>/dev/null");
    cr_assert_eq(rc, 0, "rc %d: %s", rc, out);
    int lines = 0;
    const char *want[3] = {"route", "select", "fused"};
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        eplb_json_t *v = NULL;
        eplb_assert_ok(eplb_json_parse(&v, l, strlen(l), "bench output"));
        const eplb_json_t *k = eplb_json_get(v, "kernel");
        cr_assert_not_null(k);
        cr_assert_not_null(eplb_json_get(v, "median_us"));
        cr_assert_not_null(eplb_json_get(v, "gbps"));
        const eplb_json_t *t = eplb_json_get(v, "tokens");
        cr_assert_not_null(t);
        cr_assert_eq(k->type, EPLB_JSON_STRING);
        cr_assert_str_eq(k->str, want[lines % 3]);
        cr_assert_float_eq(t->num, lines < 3 ? 16.0 : 40.0, 0);
        const eplb_json_t *hot = eplb_json_get(v, "hot");
        cr_assert(hot && hot->num == 2, "%s", l);
        /* the shape and the repetitions of the line (--experts 64 --topk 6
         * --groups 8 --topk-groups 3 --scoring softmax --replicas 72 on 8 GPUs) */
        static const struct {
            const char *key;
            double num;
        } shape[] = {{"experts", 64},    {"topk", 6},      {"groups", 8},
                     {"topk_groups", 3}, {"replicas", 72}, {"reps", 3}};
        for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
            const eplb_json_t *x = eplb_json_get(v, shape[i].key);
            cr_assert(x && x->type == EPLB_JSON_NUMBER && x->num == shape[i].num, "%s: %s",
                      shape[i].key, l);
        }
        const eplb_json_t *sc = eplb_json_get(v, "scoring");
        cr_assert(sc && sc->type == EPLB_JSON_STRING && !strcmp(sc->str, "softmax"), "%s", l);
        eplb_json_free(v);
        lines++;
    }
    cr_assert_eq(lines, 6);
    free(out);
    rc = eplb_test_run_cli(&out, "bench kernels --device cpu --groups 7 2>&1");
    cr_assert_eq(rc, 2);
    cr_assert(strstr(out, "num_groups") != NULL, "%s", out);
    free(out);
    rc = eplb_test_run_cli(&out, "bench kernels --device cpu --only nope 2>&1");
    cr_assert_eq(rc, 2);
    cr_assert(strstr(out, "--only wants route, select, fused, fused_ids or step, not "
                          "'nope'") != NULL,
              "%s", out);
    free(out);
}

/* The balanced plan's water-fill order (docs/kernels.md, balanced, step 3:
 * "in descending n (ties: lower id)"), which no test pinned (mutation
 * testing: an ascending sort and ties to the higher id both passed).  2
 * GPUs of 2 slots; e0 on slots 0 (gpu0) and 2 (gpu1), e1 on slots 1 (gpu0)
 * and 3 (gpu1).  (a) n = 3, 1: e0 first, both GPUs at 0, the first GPU
 * takes the remainder: e0 = 2 | 1, loads 2 1; then e1 fills gpu1: e1 = 0 |
 * 1 (peak 2 = ceil(4 / 2): the least-peak step keeps it).  e1 first would
 * give e1 = 1 | 0 and e0 = 1 | 2.  (b) n = 1, 1: e0 first (lower id) on
 * gpu0, e1 then on gpu1: e0 = 1 | 0, e1 = 0 | 1. */
Test(kernels, select_balanced_water_fill_order_by_hand)
{
    const int32_t lc[2] = {2, 2}, l2p[4] = {0, 2, 1, 3};
    eplb_layer_map_t m = {2, 4, 2, 1, 2, lc, l2p};
    int32_t quota[4];
    int64_t load[2];
    const int64_t n_a[2] = {3, 1}, n_b[2] = {1, 1};
    eplb_assert_ok(eplb_select_plan_balanced(quota, load, n_a, &m));
    const int32_t want_a[4] = {2, 1, 0, 1};
    cr_assert(!memcmp(quota, want_a, sizeof want_a), "descending n: %d %d | %d %d, want 2 1 | 0 1",
              quota[0], quota[1], quota[2], quota[3]);
    cr_assert(load[0] == 2 && load[1] == 2);
    eplb_assert_ok(eplb_select_plan_balanced(quota, load, n_b, &m));
    const int32_t want_b[4] = {1, 0, 0, 1};
    cr_assert(!memcmp(quota, want_b, sizeof want_b), "ties: %d %d | %d %d, want 1 0 | 0 1",
              quota[0], quota[1], quota[2], quota[3]);
    /* the same through selection: e0's first two entries on slot 0, its
     * third on slot 2; e1's on slot 3 */
    const int32_t ids[4] = {0, 0, 0, 1};
    int32_t phys[4], counts[4] = {0};
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_BALANCED;
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 4, 1, 1, &m, &c));
    const int32_t want_phys[4] = {0, 0, 2, 3};
    cr_assert_arr_eq(phys, want_phys, sizeof want_phys);
}

/* Group ties go to the lower group id (docs/kernels.md, Routing, step 3)
 * also where a group score is NaN, which sends the group limit through its
 * selection loop (mutation testing: ties to the higher id there passed the
 * suite).  6 experts in 3 groups of 2, keep 1, top-2; a bias of +Inf and
 * -Inf on group 2 makes its score +Inf + -Inf = NaN; groups 0 and 1 have
 * equal logits and zero bias, so equal scores: group 0 is kept, ids 0 then
 * 1 (logit 1 above logit 0).  Sigmoid takes the filtered path (an infinite
 * bias: every expert a candidate), softmax with a bias the plain one. */
Test(kernels, route_group_tie_to_lower_id_with_nan_group_score)
{
    const float x[6] = {1, 0, 1, 0, 0, 0};
    const float b[6] = {0, 0, 0, 0, INFINITY, -INFINITY};
    for (int sc = 0; sc < 2; sc++) {
        const eplb_scoring_t s = sc ? EPLB_SCORING_SOFTMAX : EPLB_SCORING_SIGMOID;
        eplb_route_cfg_t c = {6, 2, s, 3, 1, 1, 1.0f};
        int32_t ids[2], want[2];
        float w[2], ww[2];
        eplb_assert_ok(eplb_route_cpu(ids, w, x, EPLB_DTYPE_F32, 1, 1, b, &c));
        cr_assert(ids[0] == 0 && ids[1] == 1, "scoring %d: ids %d %d, want 0 1", sc, ids[0],
                  ids[1]);
        plain_route_row(want, ww, x, EPLB_DTYPE_F32, 0, b, &c);
        cr_assert(ids[0] == want[0] && ids[1] == want[1]);
    }
}

/* Token rows without src_rank (docs/kernels.md, Replica selection): T
 * tokens form num_ranks contiguous blocks of ceil(T / num_ranks), and
 * num_ranks <= 0 means D (mutation testing: floor blocks, and a default of
 * one rank, both passed: the tests had T divisible by num_ranks = 2).
 * flatmod, K = 1: replica = row t % R.  (a) T = 5, 2 ranks, expert 2 (3
 * replicas, slots 2 4 6): blocks of 3, t = 0 1 2 0 1.  (b) T = 10,
 * num_ranks 0 on small_map's D = 4, expert 0 (2 replicas, slots 0 5):
 * blocks of 3, t = i % 3, replica (i % 3) % 2 (one rank: i % 2). */
Test(kernels, select_token_rows_ceil_blocks_and_default_ranks)
{
    int32_t ids[10], phys[10], counts[8] = {0};
    for (int i = 0; i < 10; i++)
        ids[i] = 2;
    eplb_layer_map_t m = small_map();
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = EPLB_SELECT_FLATMOD;
    c.num_ranks = 2;
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 5, 1, 1, &m, &c));
    const int32_t want_a[5] = {2, 4, 6, 2, 4};
    cr_assert_arr_eq(phys, want_a, sizeof want_a);
    for (int i = 0; i < 10; i++)
        ids[i] = 0;
    c.num_ranks = 0;
    eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 10, 1, 1, &m, &c));
    for (int i = 0; i < 10; i++)
        cr_assert_eq(phys[i], m_log2phy[i % 3 % 2], "token %d: slot %d", i, phys[i]);
}

/* An unplaced expert (logcnt 0) whose row holds a slot outside [0, P)
 * selects -1 and is not counted (docs/kernels.md: slots outside [0, P)
 * give -1); the map check reads no entry of such a row (mutation testing:
 * dropping the upper bound of that test passed). */
Test(kernels, select_unplaced_expert_with_slot_past_p_gives_minus_one)
{
    int32_t lc[4] = {2, 0, 3, 2}, l2p[12];
    memcpy(l2p, m_log2phy, sizeof l2p);
    l2p[3] = 8; /* expert 1's row: slot P = 8 */
    eplb_layer_map_t m = {4, 8, 4, 2, 3, lc, l2p};
    const int32_t ids[2] = {1, 0};
    for (int mode = 0; mode < 6; mode++) {
        int32_t phys[2], counts[9] = {0}; /* counts[8]: past the layer's P */
        eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
        c.mode = (eplb_select_mode_t)mode;
        eplb_assert_ok(eplb_select_record_cpu(phys, counts, ids, 1, 1, 2, &m, &c));
        cr_assert_eq(phys[0], -1, "mode %d: slot %d", mode, phys[0]);
        cr_assert(phys[1] == 0 || phys[1] == 5, "mode %d", mode);
        int sum = 0;
        for (int p = 0; p < 9; p++)
            sum += counts[p];
        cr_assert(sum == 1 && counts[phys[1]] == 1 && counts[8] == 0, "mode %d", mode);
    }
}

/* The filtered DeepSeek-V3 path applies only where K <= 2 x topk_groups
 * (its candidates are the keys near the kept groups' second best): with K
 * = 2 x topk_groups + 1 the plain path routes (mutation testing: taking
 * the filtered path one K further passed; it then left the third id
 * unwritten).  8 experts in 2 groups of 4, keep 1, top-3, zero bias:
 * group 0 (s(4) + s(3)) is kept over group 1 (2 s(0)); its top-3 by key
 * are experts 0, 1, 2. */
Test(kernels, route_k_above_twice_kept_groups_takes_plain_path)
{
    const float x[8] = {4, 3, -2, -3, 0, 0, 0, 0}, b[8] = {0};
    const eplb_route_cfg_t c = {8, 3, EPLB_SCORING_SIGMOID, 2, 1, 1, 1.0f};
    int32_t ids[3] = {-1, -1, -1}, want[3];
    float w[3], ww[3];
    eplb_assert_ok(eplb_route_cpu(ids, w, x, EPLB_DTYPE_F32, 1, 1, b, &c));
    cr_assert(ids[0] == 0 && ids[1] == 1 && ids[2] == 2, "ids %d %d %d, want 0 1 2", ids[0], ids[1],
              ids[2]);
    plain_route_row(want, ww, x, EPLB_DTYPE_F32, 0, b, &c);
    cr_assert_arr_eq(ids, want, sizeof want);
    cr_assert_arr_eq(w, ww, sizeof ww);
}
