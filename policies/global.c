/* global.c - policy `global`: the DeepSeek algorithm with one group and one
 * node (the reference's own fallback when G % N != 0): replicas anywhere,
 * physical experts packed over all GPUs. */
#include "policy_impl.h"

eplb_status_t eplb_policy_global(int32_t *phy2log, int32_t *phyrank, const float *weights,
                                 int L, int E, const eplb_policy_args_t *args)
{
    return eplb_pol_run_hier(phy2log, phyrank, weights, L, E, args, 1, 1, 0);
}
