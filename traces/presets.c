/* presets.c - model presets of the synthetic generator.
 *
 * Routing attributes from the models' published configs (config.json on the
 * Hugging Face hub): DeepSeek-V3 (n_routed_experts 256, num_experts_per_tok
 * 8, scoring_func sigmoid, n_group 8, topk_group 4, norm_topk_prob true,
 * routed_scaling_factor 2.5, 61 layers of which first_k_dense_replace 3 are
 * dense), Qwen3-30B-A3B (num_experts 128, top 8, norm_topk_prob true, 48
 * layers), Mixtral-8x7B (8 experts, top 2, 32 layers), DeepSeek-V2-Lite as
 * used by ESFT (64 routed experts, top 6 softmax, norm_topk_prob false, 27
 * layers with 1 dense).  Load parameters are fitted in docs/calibration.md. */
#include "gen.h"

#include <stdio.h>
#include <string.h>

/* The load model fitted to DeepSeek-V3's counts, also used where no public
 * per-expert data exists for a model of the same kind (qwen3-moe). */
#define DSV3_LOAD                                                                \
    .token_sigma = 1.0, .skew = 0.36, .layer_spread = 0.20, .hot_rate = 1.0,     \
    .hot_boost = 0.7

static const eplb_gen_preset_t presets[] = {
    {
        .name = "deepseek-v3",
        .model = "DeepSeek-V3",
        .num_layers = 58,
        .route = {256, 8, EPLB_SCORING_SIGMOID, 8, 4, 1, 2.5f},
        DSV3_LOAD,
        .bias_scale = 0.02,
        .calibrated = "SGLang DeepSeek-V3 expert counts (prefill_in1024, "
                      "decode_in1000out1000), layers 3..60",
    },
    {
        .name = "qwen3-moe",
        .model = "Qwen3-30B-A3B",
        .num_layers = 48,
        .route = {128, 8, EPLB_SCORING_SOFTMAX, 1, 1, 1, 1.0f},
        DSV3_LOAD,
        .bias_scale = 0.0,
        .calibrated = "no public per-expert data: deepseek-v3 load "
                      "parameters",
    },
    {
        .name = "mixtral",
        .model = "Mixtral-8x7B",
        .num_layers = 32,
        .route = {8, 2, EPLB_SCORING_SOFTMAX, 1, 1, 1, 1.0f},
        .token_sigma = 1.0,
        .skew = 0.25,
        .layer_spread = 0.20,
        .hot_rate = 0.0,
        .hot_boost = 0.0,
        .bias_scale = 0.0,
        .calibrated = "no public per-expert data: mild skew (max/mean "
                      "about 1.3-1.6)",
    },
    {
        .name = "esft-lite",
        .model = "ESFT-vanilla-lite",
        .num_layers = 26,
        .route = {64, 6, EPLB_SCORING_SOFTMAX, 1, 1, 0, 1.0f},
        .token_sigma = 1.0,
        .skew = 0.32,
        .layer_spread = 0.30,
        .hot_rate = 2.0,
        .hot_boost = 1.2,
        .bias_scale = 0.0,
        .calibrated = "ESFT-vanilla-lite routing of the intent and law "
                      "tasks",
    },
};

size_t eplb_gen_preset_count(void) { return sizeof presets / sizeof presets[0]; }

const eplb_gen_preset_t *eplb_gen_preset_at(size_t i)
{
    return i < eplb_gen_preset_count() ? &presets[i] : NULL;
}

eplb_status_t eplb_gen_preset_find(const eplb_gen_preset_t **out,
                                   const char *name)
{
    for (size_t i = 0; name && i < eplb_gen_preset_count(); i++)
        if (strcmp(presets[i].name, name) == 0) {
            *out = &presets[i];
            return EPLB_OK;
        }
    char known[256] = "";
    for (size_t i = 0; i < eplb_gen_preset_count(); i++) {
        size_t n = strlen(known);
        snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "",
                 presets[i].name);
    }
    return eplb_error_set(EPLB_ERR_INVALID_ARG,
                          "--preset: unknown preset '%s' (known: %s)",
                          name ? name : "(null)", known);
}
