/* none.c - policy `none`: never move anything.  The reference point of every
 * gain: the old placement, or slot p holds expert p mod E without one. */
#include "policy_impl.h"

#include <stdlib.h>
#include <string.h>

#include "checks.h"

eplb_status_t eplb_policy_none(int32_t *phy2log, int32_t *phyrank, const float *weights,
                               int L, int E, const eplb_policy_args_t *args)
{
    EPLB_CHECK(eplb_policy_args_check(args, L, E, weights));
    int P = args->num_replicas;
    int *cnt = NULL;
    if (phyrank && !(cnt = malloc((size_t)E * sizeof *cnt))) /* before any output */
        return eplb_error_set(EPLB_ERR_NOMEM, "policy none: out of memory");
    if (args->old_phy2log)
        memcpy(phy2log, args->old_phy2log, (size_t)L * P * sizeof *phy2log);
    else
        eplb_placement_default(phy2log, L, E, P);
    if (phyrank)
        for (int l = 0; l < L; l++)
            eplb_pol_rank_by_slot(phyrank + (size_t)l * P, phy2log + (size_t)l * P, E, P, cnt);
    free(cnt);
    return EPLB_OK;
}
