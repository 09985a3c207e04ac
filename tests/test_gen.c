/* test_gen.c - synthetic generator: presets, determinism (in memory and in
 * files), shapes, load properties (heavy tail, persistence, workload
 * shifts), the reference top-k against kernels/, statistics, options and
 * the `gen` command.  Expected preset values are typed in from the models'
 * published configs, not read from traces/presets.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "gen.h"
#include "helpers.h"
#include "kernels.h"
#include "trace.h"
#include "trace_fixtures.h"

/* ---- presets -------------------------------------------------------------- */

/* No pointers: Criterion may run each parameter in a re-executed process. */
typedef struct {
    char name[16];
    int L, E, K;
    eplb_scoring_t scoring;
    int groups, topk_groups, renorm;
    float scale;
} want_preset_t;

static want_preset_t want_presets[] = {
    {"deepseek-v3", 58, 256, 8, EPLB_SCORING_SIGMOID, 8, 4, 1, 2.5f},
    {"qwen3-moe", 48, 128, 8, EPLB_SCORING_SOFTMAX, 1, 1, 1, 1.0f},
    {"mixtral", 32, 8, 2, EPLB_SCORING_SOFTMAX, 1, 1, 1, 1.0f},
    {"esft-lite", 26, 64, 6, EPLB_SCORING_SOFTMAX, 1, 1, 0, 1.0f},
};

ParameterizedTestParameters(gen, preset_attributes)
{
    return cr_make_param_array(want_preset_t, want_presets,
                               sizeof want_presets / sizeof want_presets[0]);
}

ParameterizedTest(want_preset_t *w, gen, preset_attributes)
{
    const eplb_gen_preset_t *p = NULL;
    eplb_assert_ok(eplb_gen_preset_find(&p, w->name));
    cr_assert_eq(p->num_layers, w->L);
    cr_assert_eq(p->route.num_experts, w->E);
    cr_assert_eq(p->route.top_k, w->K);
    cr_assert_eq(p->route.scoring, w->scoring);
    cr_assert_eq(p->route.num_groups, w->groups);
    cr_assert_eq(p->route.topk_groups, w->topk_groups);
    cr_assert_eq(p->route.renormalize, w->renorm);
    cr_assert_float_eq(p->route.routed_scaling_factor, w->scale, 0);
}

Test(gen, unknown_preset_names_the_known_ones)
{
    const eplb_gen_preset_t *p = NULL;
    eplb_assert_fails(eplb_gen_preset_find(&p, "gpt-oss"), EPLB_ERR_INVALID_ARG, "gpt-oss");
    cr_assert(strstr(eplb_error_last(), "deepseek-v3") != NULL);
    cr_assert_eq(eplb_gen_preset_count(), 4);
}

Test(gen, bad_options_name_the_option)
{
    eplb_gen_t *g = NULL;
    eplb_gen_opts_t o = EPLB_GEN_OPTS_INIT;
    o.steps = 0;
    eplb_assert_fails(eplb_gen_create(&g, &o), EPLB_ERR_INVALID_ARG, "--steps");
    o = (eplb_gen_opts_t)EPLB_GEN_OPTS_INIT;
    o.tokens_per_step = 0;
    eplb_assert_fails(eplb_gen_create(&g, &o), EPLB_ERR_INVALID_ARG, "--tokens-per-step");
    o = (eplb_gen_opts_t)EPLB_GEN_OPTS_INIT;
    o.num_layers = 59;
    eplb_assert_fails(eplb_gen_create(&g, &o), EPLB_ERR_INVALID_ARG, "--layers");
    cr_assert_null(g);
}

/* ---- determinism ---------------------------------------------------------- */

/* All logits of a generator run, concatenated; *ntok tokens. */
static float *gen_all(const eplb_gen_opts_t *o, int64_t *ntok, int64_t *tok_per_step,
                      uint8_t *phases)
{
    eplb_gen_t *g = NULL;
    eplb_assert_ok(eplb_gen_create(&g, o));
    size_t le = (size_t)eplb_gen_num_layers(g) * (size_t)eplb_gen_preset(g)->route.num_experts;
    int64_t maxtok = eplb_gen_max_step_tokens(g);
    float *all = malloc(sizeof(float) * le * (size_t)(maxtok * o->steps));
    cr_assert_not_null(all);
    int64_t n = 0;
    for (int64_t s = 0; s < o->steps; s++) {
        int64_t k;
        uint8_t ph;
        eplb_assert_ok(eplb_gen_next_step(g, all + (size_t)n * le, &k, &ph));
        cr_assert(k >= 1 && k <= maxtok);
        if (tok_per_step)
            tok_per_step[s] = k;
        if (phases)
            phases[s] = ph;
        n += k;
    }
    int64_t k;
    uint8_t ph;
    eplb_assert_fails(eplb_gen_next_step(g, all, &k, &ph), EPLB_ERR_INVALID_ARG, "steps");
    eplb_gen_destroy(g);
    *ntok = n;
    return all;
}

Test(gen, same_seed_same_logits_other_seed_differs)
{
    eplb_gen_opts_t o = {"esft-lite", 6, 32, 7, EPLB_DTYPE_F32, 3, 0};
    int64_t n1, n2, n3;
    float *a = gen_all(&o, &n1, NULL, NULL);
    float *b = gen_all(&o, &n2, NULL, NULL);
    cr_assert_eq(n1, n2);
    cr_assert(memcmp(a, b, sizeof(float) * (size_t)n1 * 3 * 64) == 0);
    o.seed = 8;
    float *c = gen_all(&o, &n3, NULL, NULL);
    size_t m = (size_t)(n1 < n3 ? n1 : n3) * 3 * 64, differ = 0;
    for (size_t i = 0; i < m; i++)
        differ += a[i] != c[i];
    cr_assert(differ > m / 2, "seed 8 equals seed 7 in %zu of %zu logits", m - differ, m);
    free(a);
    free(b);
    free(c);
}

/* --layers N keeps the first N layers of the full model: same tokens, same
 * logits and bias for those layers. */
Test(gen, layers_option_is_a_prefix)
{
    eplb_gen_opts_t o3 = {"deepseek-v3", 4, 8, 3, EPLB_DTYPE_F32, 3, 0};
    eplb_gen_opts_t o5 = o3;
    o5.num_layers = 5;
    int64_t n3, n5, p3[4], p5[4];
    float *a = gen_all(&o3, &n3, p3, NULL);
    float *b = gen_all(&o5, &n5, p5, NULL);
    cr_assert_eq(n3, n5);
    for (int s = 0; s < 4; s++)
        cr_assert_eq(p3[s], p5[s]);
    for (int64_t t = 0; t < n3; t++)
        cr_assert(memcmp(a + t * 3 * 256, b + t * 5 * 256, sizeof(float) * 3 * 256) == 0,
                  "token %lld", (long long)t);
    eplb_gen_t *g3 = NULL, *g5 = NULL;
    eplb_assert_ok(eplb_gen_create(&g3, &o3));
    eplb_assert_ok(eplb_gen_create(&g5, &o5));
    float b3[3 * 256], b5[5 * 256];
    eplb_gen_bias(g3, b3);
    eplb_gen_bias(g5, b5);
    cr_assert(memcmp(b3, b5, sizeof b3) == 0);
    eplb_gen_destroy(g3);
    eplb_gen_destroy(g5);
    free(a);
    free(b);
}

/* The logits do not depend on the number of threads. */
Test(gen, threads_do_not_change_logits)
{
    eplb_gen_opts_t o = {"qwen3-moe", 3, 200, 5, EPLB_DTYPE_F16, 2, 1};
    int64_t n1, n4;
    float *a = gen_all(&o, &n1, NULL, NULL);
    o.threads = 4;
    float *b = gen_all(&o, &n4, NULL, NULL);
    cr_assert_eq(n1, n4);
    cr_assert(memcmp(a, b, sizeof(float) * (size_t)n1 * 2 * 128) == 0);
    o.threads = -1;
    eplb_gen_t *g = NULL;
    eplb_assert_fails(eplb_gen_create(&g, &o), EPLB_ERR_INVALID_ARG, "--threads");
    free(a);
    free(b);
}

Test(gen, logits_are_rounded_to_the_dtype)
{
    eplb_gen_opts_t o = {"mixtral", 3, 16, 1, EPLB_DTYPE_BF16, 2, 0};
    int64_t n;
    float *a = gen_all(&o, &n, NULL, NULL);
    for (int64_t i = 0; i < n * 2 * 8; i++) {
        uint32_t bits;
        memcpy(&bits, &a[i], 4);
        cr_assert_eq(bits & 0xffff, 0, "logit %g is not a bfloat16", a[i]);
        cr_assert(isfinite(a[i]));
    }
    free(a);
}

/* Tokens per step vary around the mean and every phase occurs. */
Test(gen, steps_vary_in_size_and_phase)
{
    enum { S = 200 };
    eplb_gen_opts_t o = {"mixtral", S, 100, 3, EPLB_DTYPE_F32, 1, 0};
    int64_t n, per[S];
    uint8_t ph[S];
    float *a = gen_all(&o, &n, per, ph);
    int64_t mn = per[0], mx = per[0];
    int seen[3] = {0};
    for (int s = 0; s < S; s++) {
        mn = per[s] < mn ? per[s] : mn;
        mx = per[s] > mx ? per[s] : mx;
        cr_assert(ph[s] <= 2);
        seen[ph[s]]++;
    }
    cr_assert(mx >= 2 * mn, "tokens per step %lld..%lld", (long long)mn, (long long)mx);
    double mean = (double)n / S;
    cr_assert(mean > 80 && mean < 120, "mean tokens per step %g, asked 100", mean);
    cr_assert(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
    /* Prefill steps (phase 0) are the big ones. */
    double sum[3] = {0};
    for (int s = 0; s < S; s++)
        sum[ph[s]] += (double)per[s];
    cr_assert(sum[0] / seen[0] > sum[1] / seen[1]);
    free(a);
}

/* Write with the trace writer, twice with one seed and once with another;
 * read back with the reader and compare with the in-memory generator. */
Test(gen, file_is_deterministic_and_matches_memory)
{
    const char *dir = eplb_test_tmpdir();
    char p1[512], p2[512], p3[512];
    snprintf(p1, sizeof p1, "%s/a.h5", dir);
    snprintf(p2, sizeof p2, "%s/b.h5", dir);
    snprintf(p3, sizeof p3, "%s/c.h5", dir);
    eplb_gen_opts_t o = {"deepseek-v3", 5, 12, 42, EPLB_DTYPE_BF16, 2, 0};
    int64_t n1 = 0, n2 = 0, n3 = 0;
    eplb_assert_ok(eplb_gen_write(&o, p1, &n1, NULL, NULL));
    eplb_assert_ok(eplb_gen_write(&o, p2, &n2, NULL, NULL));
    o.seed = 43;
    eplb_assert_ok(eplb_gen_write(&o, p3, &n3, NULL, NULL));
    o.seed = 42;
    int64_t nm, per[5];
    uint8_t ph[5];
    float *mem = gen_all(&o, &nm, per, ph);
    cr_assert_eq(n1, nm);
    cr_assert_eq(n2, nm);
    const size_t le = 2 * 256;
    uint16_t *r[3];
    float *bias[3];
    const char *paths[3] = {p1, p2, p3};
    for (int f = 0; f < 3; f++) {
        eplb_trace_t *tr = NULL;
        eplb_assert_ok(eplb_trace_open(&tr, paths[f]));
        const eplb_trace_info_t *in = eplb_trace_info(tr);
        cr_assert_str_eq(in->model, "DeepSeek-V3");
        cr_assert_eq(in->num_layers, 2);
        cr_assert_eq(in->route.num_experts, 256);
        cr_assert_eq(in->route.top_k, 8);
        cr_assert_eq(in->route.scoring, EPLB_SCORING_SIGMOID);
        cr_assert_eq(in->route.num_groups, 8);
        cr_assert_eq(in->route.topk_groups, 4);
        cr_assert_eq(in->route.renormalize, 1);
        cr_assert_float_eq(in->route.routed_scaling_factor, 2.5f, 0);
        cr_assert_eq(in->num_steps, 5);
        cr_assert_eq(in->logits_dtype, EPLB_DTYPE_BF16);
        cr_assert(in->levels & EPLB_LEVEL_LOGITS);
        cr_assert(!(in->levels & EPLB_LEVEL_TOPK));
        cr_assert(in->has_bias && in->has_phase);
        cr_assert(strstr(in->source, "--seed") != NULL);
        int64_t T = in->num_tokens;
        r[f] = malloc(2 * le * (size_t)T);
        eplb_assert_ok(eplb_trace_read_logits(tr, r[f], 0, T));
        bias[f] = malloc(sizeof(float) * le);
        eplb_assert_ok(eplb_trace_read_bias(tr, bias[f]));
        if (f == 0) {
            cr_assert_eq(T, nm);
            const int64_t *off = eplb_trace_token_offsets(tr);
            uint8_t fph[5];
            eplb_assert_ok(eplb_trace_read_phase(tr, fph, 0, 5));
            for (int s = 0; s < 5; s++) {
                cr_assert_eq(off[s + 1] - off[s], per[s]);
                cr_assert_eq(fph[s], ph[s]);
            }
            for (size_t i = 0; i < le * (size_t)T; i++)
                cr_assert_eq(eplb_bf16_to_f32(r[0][i]), mem[i], "logit %zu", i);
        }
        eplb_trace_close(tr);
    }
    cr_assert(memcmp(r[0], r[1], 2 * le * (size_t)nm) == 0);
    cr_assert(memcmp(bias[0], bias[1], sizeof(float) * le) == 0);
    size_t m = le * (size_t)(n3 < nm ? n3 : nm), differ = 0;
    for (size_t i = 0; i < m; i++)
        differ += r[0][i] != r[2][i];
    cr_assert(differ > m / 2);
    cr_assert(memcmp(bias[0], bias[2], sizeof(float) * le) != 0);
    for (int f = 0; f < 3; f++) {
        free(r[f]);
        free(bias[f]);
        unlink(paths[f]);
    }
    free(mem);
    rmdir(dir);
}

/* ---- shapes per preset ------------------------------------------------------ */

ParameterizedTestParameters(gen, file_shape_per_preset)
{
    return cr_make_param_array(want_preset_t, want_presets,
                               sizeof want_presets / sizeof want_presets[0]);
}

ParameterizedTest(want_preset_t *w, gen, file_shape_per_preset)
{
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/p.h5", dir);
    eplb_gen_opts_t o = {w->name, 3, 8, 1, EPLB_DTYPE_F16, 0, 0};
    int64_t n = 0;
    eplb_assert_ok(eplb_gen_write(&o, path, &n, NULL, NULL));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    cr_assert_eq(in->num_layers, w->L);
    cr_assert_eq(in->route.num_experts, w->E);
    cr_assert_eq(in->route.top_k, w->K);
    cr_assert_eq(in->route.scoring, w->scoring);
    cr_assert_eq(in->route.renormalize, w->renorm);
    cr_assert_eq(in->num_steps, 3);
    cr_assert_eq(in->num_tokens, n);
    cr_assert_eq(in->logits_dtype, EPLB_DTYPE_F16);
    cr_assert_eq(in->has_bias, w->scoring == EPLB_SCORING_SIGMOID);
    cr_assert(strstr(in->model_config, "\"preset\"") != NULL);
    eplb_trace_close(tr);
    unlink(path);
    rmdir(dir);
}

/* ---- reference top-k ---------------------------------------------------------- */

/* The calibration's reference top-k equals the kernels' CPU routing (two
 * independent implementations) on generated DeepSeek-V3 and Qwen3 logits:
 * each preset's own routing, and on the DeepSeek-V3 logits the other
 * scoring, with and without bias, grouped and not. */
Test(gen, reference_topk_equals_kernels_route)
{
    const char *names[] = {"deepseek-v3", "qwen3-moe"};
    for (int p = 0; p < 2; p++) {
        eplb_gen_opts_t o = {names[p], 2, 64, 5, EPLB_DTYPE_F32, 3, 0};
        eplb_gen_t *g = NULL;
        eplb_assert_ok(eplb_gen_create(&g, &o));
        const eplb_route_cfg_t *pc = &eplb_gen_preset(g)->route;
        int L = 3, E = pc->num_experts, K = pc->top_k;
        float *lg = malloc(sizeof(float) * (size_t)(eplb_gen_max_step_tokens(g) * L * E));
        float *bias = malloc(sizeof(float) * (size_t)(L * E));
        eplb_gen_bias(g, bias);
        if (pc->scoring != EPLB_SCORING_SIGMOID) /* a bias of its own to try */
            for (int i = 0; i < L * E; i++)
                bias[i] = 0.01f * (float)((i * 7) % 11 - 5);
        int64_t n;
        uint8_t ph;
        eplb_assert_ok(eplb_gen_next_step(g, lg, &n, &ph));
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n * L * K));
        /* case c: bit 0 the other scoring, bit 1 no bias, bit 2 groups off
         * (the preset's groups, or 8 of 4 where it has none) */
        for (int c = 0; c < 8; c++) {
            eplb_route_cfg_t cfg = *pc;
            if (c & 1)
                cfg.scoring = cfg.scoring == EPLB_SCORING_SIGMOID ? EPLB_SCORING_SOFTMAX
                                                                  : EPLB_SCORING_SIGMOID;
            if (c & 4)
                cfg.num_groups = cfg.topk_groups = pc->num_groups > 1 ? 1 : 8;
            if ((c & 4) && pc->num_groups <= 1)
                cfg.topk_groups = 4;
            const float *b = (c & 2) ? NULL : bias;
            eplb_assert_ok(eplb_route_cpu(ids, NULL, lg, EPLB_DTYPE_F32, n, L, b, &cfg));
            int64_t mismatch = 0;
            for (int64_t t = 0; t < n; t++)
                for (int l = 0; l < L; l++) {
                    int32_t ref[EPLB_MAX_TOPK];
                    eplb_gen_topk_ref(ref, lg + ((size_t)t * L + l) * E, b ? b + l * E : NULL,
                                      &cfg);
                    for (int k = 0; k < K; k++)
                        mismatch += ref[k] != ids[((size_t)t * L + l) * K + k];
                }
            cr_assert_eq(mismatch, 0, "%s case %d (%s, %s, %d groups): %lld of %lld ids differ",
                         names[p], c, cfg.scoring == EPLB_SCORING_SIGMOID ? "sigmoid" : "softmax",
                         b ? "bias" : "no bias", cfg.num_groups, (long long)mismatch,
                         (long long)(n * L * K));
        }
        free(lg);
        free(bias);
        free(ids);
        eplb_gen_destroy(g);
    }
}

/* Hand-checked grouped top-k: groups of 2 experts, keep 2 groups. */
Test(gen, reference_topk_grouped_by_hand)
{
    eplb_route_cfg_t cfg = {8, 2, EPLB_SCORING_SIGMOID, 4, 2, 1, 1.0f};
    /* sigmoid is monotonic; a bias of zeros.  Group sums (top-2 of 2):
     * g0 = s(5)+s(-5) ~ 1.0, g1 = s(1)+s(1) ~ 1.46, g2 = s(2)+s(0.5) ~ 1.50,
     * g3 = s(0)+s(0) = 1.0.  Keep g2, g1: experts 2..5; top-2 by score:
     * expert 4 (2.0) then 2 (1.0; tie with 3 -> lower id).  Expert 0 (5.0)
     * is the best single score but its group is dropped. */
    float lg[8] = {5, -5, 1, 1, 2, 0.5f, 0, 0};
    int32_t ids[2];
    float zero[8] = {0};
    eplb_gen_topk_ref(ids, lg, zero, &cfg);
    cr_assert_eq(ids[0], 4);
    cr_assert_eq(ids[1], 2);
    /* Without a bias a group scores its best expert: g0 = s(5), g2 = s(2),
     * g1 = s(1), g3 = s(0): keep g0 and g2, experts 0, 1, 4, 5: expert 0
     * (5.0), then 4 (2.0). */
    eplb_gen_topk_ref(ids, lg, NULL, &cfg);
    cr_assert_eq(ids[0], 0);
    cr_assert_eq(ids[1], 4);
    /* A bias lifts expert 7's group over g1 and expert 7 over expert 2:
     * g3 = 2 s(0) + 0.9 = 1.9, g2 ~ 1.50: experts 4-7, expert 7
     * (0.5 + 0.9) then 4 (s(2) ~ 0.88). */
    float bias[8] = {0, 0, 0, 0, 0, 0, 0, 0.9f};
    eplb_gen_topk_ref(ids, lg, bias, &cfg);
    cr_assert_eq(ids[0], 7);
    cr_assert_eq(ids[1], 4);
    /* Softmax: plain top-k, ties to the lower id. */
    eplb_route_cfg_t sm = {8, 3, EPLB_SCORING_SOFTMAX, 1, 1, 0, 1.0f};
    float l2[8] = {1, 3, 3, 0, 2, 3, -1, 0};
    int32_t i3[3];
    eplb_gen_topk_ref(i3, l2, NULL, &sm);
    cr_assert_eq(i3[0], 1);
    cr_assert_eq(i3[1], 2);
    cr_assert_eq(i3[2], 5);
}

/* ---- statistics ------------------------------------------------------------ */

Test(gen, stats_from_counts_by_hand)
{
    /* S=4 steps, L=1, E=4. */
    int64_t c[4][4] = {{4, 0, 0, 0}, {2, 2, 0, 0}, {1, 1, 1, 1}, {0, 0, 0, 4}};
    eplb_gen_stats_t st;
    eplb_assert_ok(eplb_gen_stats_from_counts(&st, &c[0][0], 4, 1, 4, 2));
    /* whole: {7,3,1,5}, mean 4, max 7 -> 1.75 */
    cr_assert_float_eq(st.whole_maxmean[0], 1.75, 1e-12);
    /* windows {6,2,0,0} -> 3.0 and {1,1,1,5} -> 2.5: mean 2.75 */
    cr_assert_float_eq(st.window_maxmean[0], 2.75, 1e-12);
    /* steps 4, 2, 1, 4 -> 2.75 */
    cr_assert_float_eq(st.step_maxmean[0], 2.75, 1e-12);
    /* tops 0, 0, 0, 3: two of three step pairs keep the top; no run >= 10 */
    cr_assert_float_eq(st.top_same[0], 2.0 / 3.0, 1e-12);
    /* window tops 0 then 3: two runs of one window (2 steps) */
    cr_assert_float_eq(st.top_life[0], 2.0, 1e-12);
    cr_assert_float_eq(st.top_run[0], 0.0, 1e-12);
    cr_assert_float_eq(st.top12[0], 7.0 / 5.0, 1e-12);
    eplb_gen_stats_free(&st);
    eplb_assert_fails(eplb_gen_stats_from_counts(&st, &c[0][0], 4, 1, 4, 0),
                      EPLB_ERR_INVALID_ARG, "window");
    /* Window longer than the trace: one partial window (= whole). */
    eplb_assert_ok(eplb_gen_stats_from_counts(&st, &c[0][0], 4, 1, 4, 10));
    cr_assert_float_eq(st.window_maxmean[0], 1.75, 1e-12);
    eplb_gen_stats_free(&st);
    /* Runs: 12 steps led by expert 0, then 2 by expert 1; two layers, the
     * second led by expert 1 throughout. */
    int64_t r[14][2][2];
    for (int s = 0; s < 14; s++) {
        r[s][0][0] = s < 12 ? 3 : 1;
        r[s][0][1] = s < 12 ? 1 : 3;
        r[s][1][0] = 0;
        r[s][1][1] = 2;
    }
    eplb_assert_ok(eplb_gen_stats_from_counts(&st, &r[0][0][0], 14, 2, 2, 7));
    cr_assert_float_eq(st.top_run[0], 12.0 / 14.0, 1e-12);
    cr_assert_float_eq(st.top_same[0], 12.0 / 13.0, 1e-12);
    cr_assert_float_eq(st.top_run[1], 1.0, 1e-12);
    /* layer 1: all on expert 1 of 2 -> max/mean 2; top12 undefined (0) */
    cr_assert_float_eq(st.whole_maxmean[1], 2.0, 1e-12);
    cr_assert_float_eq(st.top12[1], 0.0, 1e-12);
    /* layer 0 windows: 7 x (3,1) -> 1.5; 5 x (3,1) + 2 x (1,3) -> (17,11) -> 34/28 */
    cr_assert_float_eq(st.window_maxmean[0], (1.5 + 34.0 / 28.0) / 2, 1e-12);
    /* window tops: layer 0 expert 0 in both windows -> one run of 2
     * windows = 14 steps */
    cr_assert_float_eq(st.top_life[0], 14.0, 1e-12);
    eplb_gen_stats_free(&st);
}

/* ---- load properties ---------------------------------------------------------
 * Bounds come from docs/calibration.md: real ESFT per-layer max/mean over
 * 8K-token windows averages 3.8 (intent) and 3.5 (law); uniform routing at
 * this window size would give about 1.1.  Real SGLang DeepSeek-V3 averages
 * 5.6 (decode) to 6.5 (prefill). */

static double mean_of(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

Test(gen, esft_lite_skew_and_persistence)
{
    /* Half the layers, 1024-token steps (serving-size batches, so that the
     * per-step top expert is not decided by sampling noise). */
    eplb_gen_opts_t o = {"esft-lite", 40, 1024, 1, EPLB_DTYPE_F32, 13, 0};
    eplb_gen_stats_t st;
    eplb_assert_ok(eplb_gen_stats_compute(&st, &o, 16));
    double win = mean_of(st.window_maxmean, st.num_layers);
    cr_assert(win > 2.6 && win < 5.5, "esft-lite window max/mean %g (real 3.5-3.8)", win);
    /* Heavy tail: some layer is far more skewed than the mean. */
    double mx = 0;
    for (int l = 0; l < st.num_layers; l++)
        mx = st.window_maxmean[l] > mx ? st.window_maxmean[l] : mx;
    cr_assert(mx > 1.4 * win, "max layer %g vs mean %g", mx, win);
    /* Hot experts persist: most steps lie in runs of >= 10 steps with the
     * same most loaded expert. */
    double run = mean_of(st.top_run, st.num_layers);
    cr_assert(run > 0.5, "fraction of steps in top-expert runs >= 10: %g", run);
    eplb_gen_stats_free(&st);
}

Test(gen, deepseek_v3_skew)
{
    eplb_gen_opts_t o = {"deepseek-v3", 8, 256, 1, EPLB_DTYPE_BF16, 12, 0};
    eplb_gen_stats_t st;
    eplb_assert_ok(eplb_gen_stats_compute(&st, &o, 8));
    double win = mean_of(st.window_maxmean, st.num_layers);
    cr_assert(win > 4.0 && win < 9.0, "deepseek-v3 max/mean %g (real 5.6-6.5)", win);
    eplb_gen_stats_free(&st);
}

/* Workload shifts and drift: over a long run the most loaded expert of a
 * layer changes in some layers, while a short stretch keeps it. */
Test(gen, hot_experts_drift_and_shift)
{
    enum { S = 900 };
    eplb_gen_opts_t o = {"esft-lite", S, 48, 11, EPLB_DTYPE_F32, 4, 0};
    eplb_gen_t *g = NULL;
    eplb_assert_ok(eplb_gen_create(&g, &o));
    const eplb_route_cfg_t *cfg = &eplb_gen_preset(g)->route;
    int L = 4, E = 64, K = 6;
    float *lg = malloc(sizeof(float) * (size_t)(eplb_gen_max_step_tokens(g) * L * E));
    int64_t *cnt = calloc((size_t)S * L * E, sizeof *cnt);
    for (int s = 0; s < S; s++) {
        int64_t n;
        uint8_t ph;
        eplb_assert_ok(eplb_gen_next_step(g, lg, &n, &ph));
        for (int64_t t = 0; t < n; t++)
            for (int l = 0; l < L; l++) {
                int32_t ids[EPLB_MAX_TOPK];
                eplb_gen_topk_ref(ids, lg + ((size_t)t * L + l) * E, NULL, cfg);
                for (int k = 0; k < K; k++)
                    cnt[((size_t)s * L + l) * E + ids[k]]++;
            }
    }
    /* Top expert of each 100-step block. */
    int changed = 0;
    for (int l = 0; l < L; l++) {
        int prev = -1;
        for (int b = 0; b < S / 100; b++) {
            int64_t acc[64] = {0};
            for (int s = b * 100; s < (b + 1) * 100; s++)
                for (int e = 0; e < E; e++)
                    acc[e] += cnt[((size_t)s * L + l) * E + e];
            int top = 0;
            for (int e = 1; e < E; e++)
                top = acc[e] > acc[top] ? e : top;
            changed += prev >= 0 && top != prev;
            prev = top;
        }
    }
    cr_assert(changed >= 1, "the hot expert never moved in %d steps", S);
    cr_assert(changed < L * (S / 100 - 1), "the hot expert moved in every block");
    free(lg);
    free(cnt);
    eplb_gen_destroy(g);
}

/* ---- shipped trace ---------------------------------------------------------------
 * traces/dsv3-small.h5 holds what its documented command (traces/README.md)
 * generates, and stays under 10 MB. */
Test(gen, shipped_dsv3_small_matches_its_command)
{
    eplb_trace_t *tr = eplb_test_shipped_open("traces/dsv3-small.h5");
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    cr_assert_eq(in->num_steps, 64);
    cr_assert_eq(in->num_layers, 58);
    cr_assert_eq(in->logits_dtype, EPLB_DTYPE_BF16);
    eplb_gen_opts_t o = {"deepseek-v3", 64, 8, 1, EPLB_DTYPE_BF16, 0, 0};
    int64_t n;
    float *mem = gen_all(&o, &n, NULL, NULL);
    cr_assert_eq(in->num_tokens, n);
    size_t m = (size_t)n * 58 * 256;
    uint16_t *raw = malloc(2 * m);
    eplb_assert_ok(eplb_trace_read_logits(tr, raw, 0, n));
    size_t differ = 0;
    for (size_t i = 0; i < m; i++)
        differ += eplb_bf16_to_f32(raw[i]) != mem[i];
    cr_assert_eq(differ, 0, "%zu of %zu logits differ from the generator", differ, m);
    free(raw);
    free(mem);
    eplb_trace_close(tr);
}

/* ---- command ------------------------------------------------------------------ */

Test(gen, cli)
{
    const char *dir = eplb_test_tmpdir();
    eplb_test_cli_expect(0, "--tokens-per-step", "gen --help");
    eplb_test_cli_expect(0, "esft-lite", "gen --list-presets");
    /* with -o it wrote nothing and said nothing (the second sweep) */
    eplb_test_cli_expect(2, "--list-presets takes no other option", "gen --list-presets -o %s/l.h5",
                         dir);
    eplb_test_cli_expect(2, "--list-presets takes no other option",
                         "gen --preset mixtral --list-presets");
    eplb_test_cli_expect(0, "3 steps",
                         "gen --preset mixtral -o %s/m.h5 --steps 3 "
                         "--tokens-per-step 5 --seed 9 --dtype f16",
                         dir);
    cr_assert_eq(access(eplb_test_path(dir, "m.h5"), F_OK), 0);
    eplb_test_cli_expect(0, "max/mean load",
                         "gen --preset mixtral --stats --steps 4 --tokens-per-step 8 --window 2");
    eplb_test_cli_expect(2, "eplb-replay gen: --preset", "gen -o %s/x.h5", dir);
    eplb_test_cli_expect(2, "nope", "gen --preset nope -o %s/x.h5", dir);
    eplb_test_cli_expect(2, NULL, "gen --preset mixtral -o %s/x.h5 --dtype f64", dir);
    eplb_test_cli_expect(2, "--steps", "gen --preset mixtral -o %s/x.h5 --steps 1x", dir);
    eplb_test_cli_expect(1, NULL, "gen --preset mixtral -o /nonexistent/dir/x.h5 --steps 1");
    cr_assert_neq(access(eplb_test_path(dir, "x.h5"), F_OK), 0);
    unlink(eplb_test_path(dir, "m.h5"));
    rmdir(dir);
}

/* Found by a user-level review: `--window` without --stats, and -o with
 * --stats (which writes nothing), were dropped with exit 0. */
Test(gen, options_that_do_not_apply_refused)
{
    const char *dir = eplb_test_tmpdir();
    char out[4096];
    snprintf(out, sizeof out, "%s", eplb_test_path(dir, "g.h5"));
    eplb_test_cli_expect(2, "eplb-replay gen: --window applies to --stats only",
                         "gen --preset mixtral -o %s --steps 1 --tokens-per-step 1 --window 4",
                         out);
    eplb_test_cli_expect(2, "eplb-replay gen: --stats writes no trace; drop -o/--output",
                         "gen --preset mixtral --stats -o %s --steps 1 --tokens-per-step 1",
                         out);
    eplb_test_cli_expect(2, "--stats writes no trace",
                         "gen --preset mixtral --stats --output %s --steps 1 --window 1", out);
    cr_assert_neq(access(out, F_OK), 0, "%s written", out);
    /* the default window does not count as given */
    eplb_test_cli_expect(0, "wrote", "gen --preset mixtral -o %s --steps 1 --tokens-per-step 1",
                         out);
    eplb_test_cli_expect(0, "window 1 steps",
                         "gen --preset mixtral --stats --steps 2 --tokens-per-step 4 --window 1");
    unlink(out);
    rmdir(dir);
}

/* Ties for the last place go to the lower id, for experts and for groups
 * (gen.c; docs/kernels.md, Routing), as eplb_route_cpu decides them
 * (mutation testing: letting an equal score take the last place passed;
 * the by-hand cases had no tie at the boundary).  (a) softmax, top-2 of
 * logits 3 1 3 3: experts 0 and 2, not 3.  (b) sigmoid without bias, 4
 * groups of 2, keep 1: groups 0 and 1 both score s(2): group 0 is kept,
 * experts 0 then 1. */
Test(gen, reference_topk_ties_at_the_last_place)
{
    const eplb_route_cfg_t sm = {4, 2, EPLB_SCORING_SOFTMAX, 1, 1, 0, 1.0f};
    const float la[4] = {3, 1, 3, 3};
    const eplb_route_cfg_t gr = {8, 2, EPLB_SCORING_SIGMOID, 4, 1, 1, 1.0f};
    const float lb[8] = {2, 0, 2, 0, -1, -1, -1, -1};
    const struct {
        const eplb_route_cfg_t *cfg;
        const float *lg;
        int32_t want[2];
    } cases[2] = {{&sm, la, {0, 2}}, {&gr, lb, {0, 1}}};
    for (int i = 0; i < 2; i++) {
        int32_t ids[2], kid[2];
        eplb_gen_topk_ref(ids, cases[i].lg, NULL, cases[i].cfg);
        cr_assert(ids[0] == cases[i].want[0] && ids[1] == cases[i].want[1],
                  "case %d: ids %d %d, want %d %d", i, ids[0], ids[1], cases[i].want[0],
                  cases[i].want[1]);
        eplb_assert_ok(
            eplb_route_cpu(kid, NULL, cases[i].lg, EPLB_DTYPE_F32, 1, 1, NULL, cases[i].cfg));
        cr_assert(kid[0] == ids[0] && kid[1] == ids[1], "case %d: kernels %d %d", i, kid[0],
                  kid[1]);
    }
}

/* "steps in top-expert runs >= 10": a run of exactly 10 steps counts,
 * also when it ends before the trace does.  12 steps of one layer, expert
 * 0 leading steps 0..9 and expert 1 steps 10..11: 10 of 12 steps are in
 * a run of >= 10.  Mutation testing: `> 10` passed. */
Test(gen, stats_run_of_exactly_ten_counts)
{
    int64_t c[12][1][2];
    for (int s = 0; s < 12; s++) {
        c[s][0][0] = s < 10 ? 3 : 1;
        c[s][0][1] = s < 10 ? 1 : 3;
    }
    eplb_gen_stats_t st;
    eplb_assert_ok(eplb_gen_stats_from_counts(&st, &c[0][0][0], 12, 1, 2, 4));
    cr_assert_float_eq(st.top_run[0], 10.0 / 12.0, 1e-12);
    eplb_gen_stats_free(&st);
}

/* --list-presets with any one other option, a flag included, is refused
 * (it prints the presets and would ignore the option): the check counted
 * the arguments, and one option beside it is the case at the edge.
 * Mutation testing: `argc > 3` passed (the cli test gives two). */
Test(gen, list_presets_with_one_flag_refused)
{
    eplb_test_cli_expect(2, "--list-presets takes no other option", "gen --list-presets --force");
    eplb_test_cli_expect(2, "--list-presets takes no other option", "gen --stats --list-presets");
}

/* Out-of-range values of the size options are usage errors (exit 2)
 * naming the option and its range (docs/cli.md: --steps at most
 * 10000000, --tokens-per-step at most 65536, --layers N >= 1: 0 is not
 * "all layers", which is leaving it out).  Mutation testing: `--layers 0`
 * accepted (the library reads 0 as all) passed. */
Test(gen, size_options_out_of_range_refused)
{
    eplb_test_cli_expect(2, "--layers: expected an integer in 1..",
                         "gen --preset mixtral --stats --steps 1 --tokens-per-step 1 --layers 0");
    eplb_test_cli_expect(2, "--tokens-per-step: expected an integer in 1..65536",
                         "gen --preset mixtral --stats --steps 1 --tokens-per-step 0");
    eplb_test_cli_expect(2, "--steps: expected an integer in 1..10000000",
                         "gen --preset mixtral --stats --steps 0 --tokens-per-step 1");
}

/* --stats without --window uses windows of 16 steps (docs/cli.md), and
 * says so in its header.  Mutation testing guards the default. */
Test(gen, stats_default_window_16)
{
    eplb_test_cli_expect(0, "window 16 steps",
                         "gen --preset mixtral --stats --steps 2 --tokens-per-step 4");
}
