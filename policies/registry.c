/* registry.c - the table of policies: a new policy is one file in policies/
 * and one row here. */
#include "policy_impl.h"

#include <stdio.h>
#include <string.h>

static const eplb_policy_t table[] = {
    {"deepseek", "DeepSeek EPLB, exact: hierarchical when groups % nodes == 0, else global",
     eplb_policy_deepseek, 0},
    {"global", "DeepSeek EPLB with one group and one node (replicas anywhere)", eplb_policy_global,
     0},
    {"deepseek-preserve",
     "deepseek, then each GPU keeps experts it already holds in their old "
     "slots (vLLM)",
     eplb_policy_deepseek_preserve, 0},
    {"nodup", "deepseek without two replicas of an expert on one GPU where possible",
     eplb_policy_nodup, 0},
    {"lpt", "TensorRT-LLM greedy: replicas to max load-per-replica, LPT onto GPUs, no topology",
     eplb_policy_lpt, 0},
    {"vec", "time-series aware (SGLang deepseek_vec-like): minimise the sum of per-step peaks",
     eplb_policy_vec, 1},
    {"migration-aware",
     "greedy descent on the peak GPU load from the old placement, <= max-moves "
     "slot changes per layer (a heuristic)",
     eplb_policy_migration, 0},
    {"none", "keep the old placement (default: slot p holds expert p mod E)", eplb_policy_none, 0},
};

const eplb_policy_t *eplb_policy_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i].name, name))
            return &table[i];
    return NULL;
}

const eplb_policy_t *eplb_policy_table(size_t *n)
{
    if (n)
        *n = sizeof table / sizeof table[0];
    return table;
}

eplb_status_t eplb_policy_unknown(const char *name, int with_oracle)
{
    char names[512] = "";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                 table[i].name);
    /* vLLM's EPLBConfig policy "default" is the DeepSeek reference
     * algorithm (vllm/distributed/eplb/policy: DefaultEplbPolicy) */
    const char *hint = !strcmp(name, "default") ? "; vLLM's policy 'default' is deepseek here" : "";
    return eplb_error_set(EPLB_ERR_INVALID_ARG, "--policy: unknown policy '%.64s' (%s%s)%s", name,
                          names, with_oracle ? ", oracle" : "", hint);
}
