/* deepseek_preserve.c - policy `deepseek-preserve`: the DeepSeek placement,
 * then, GPU by GPU, every expert the GPU already held goes back into its old
 * slot, and the newcomers fill the free slots in order.  The same experts
 * land on the same GPUs as with `deepseek`, so the balance is identical, but
 * experts that stay on a GPU are not copied.  After vLLM's
 * preserve_intragpu_slots (vllm/distributed/eplb/policy/default.py): for
 * each old slot in order, the first unused new slot of the GPU with the same
 * expert moves there; the rest keep their relative order. */
#include "policy_impl.h"

#include <stdlib.h>
#include <string.h>

#include "checks.h"

eplb_status_t eplb_policy_deepseek_preserve(int32_t *phy2log, int32_t *phyrank,
                                            const float *weights, int L, int E,
                                            const eplb_policy_args_t *args)
{
    eplb_status_t st = EPLB_OK;
    int P = args ? args->num_replicas : 0, D = args ? args->num_gpus : 1;
    int32_t *rank = phyrank, *own_rank = NULL, *buf = NULL;
    EPLB_CHECK(eplb_policy_args_check(args, L, E, weights));
    if (!rank) {
        own_rank = malloc((size_t)L * P * sizeof *own_rank);
        EPLB_ALLOC_GOTO(own_rank, st, out);
        rank = own_rank;
    }
    /* buf: the default old row [P], then the new GPU's experts, ranks and
     * used/kept flags [4 * per] */
    int per = P / D;
    buf = malloc(((size_t)P + 4 * (size_t)per) * sizeof *buf);
    EPLB_ALLOC_GOTO(buf, st, out);
    EPLB_CHECK_GOTO(eplb_policy_deepseek(phy2log, rank, weights, L, E, args), st, out);
    int32_t *nl = buf + P, *nr = nl + per, *used = nr + per, *kept = used + per;
    for (int l = 0; l < L; l++) {
        const int32_t *old = eplb_pol_old_row(args, l, E, P, buf);
        int32_t *row = phy2log + (size_t)l * P, *rrow = rank + (size_t)l * P;
        for (int g = 0; g < D; g++) {
            int s0 = g * per;
            memcpy(nl, row + s0, (size_t)per * sizeof *nl);
            memcpy(nr, rrow + s0, (size_t)per * sizeof *nr);
            memset(used, 0, (size_t)per * sizeof *used);
            memset(kept, 0, (size_t)per * sizeof *kept);
            for (int s = 0; s < per; s++)
                for (int j = 0; j < per; j++)
                    if (!used[j] && nl[j] == old[s0 + s]) {
                        row[s0 + s] = nl[j];
                        rrow[s0 + s] = nr[j];
                        used[j] = kept[s] = 1;
                        break;
                    }
            int j = 0;
            for (int s = 0; s < per; s++) {
                if (kept[s])
                    continue;
                while (used[j])
                    j++;
                row[s0 + s] = nl[j];
                rrow[s0 + s] = nr[j];
                used[j] = 1;
            }
        }
    }
out:
    free(buf);
    free(own_rank);
    return st;
}
