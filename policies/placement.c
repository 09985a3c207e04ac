/* placement.c - placement helpers: default placement, derived maps, moves,
 * loads. */
#include "policy_impl.h"

#include <stdlib.h>
#include <string.h>

void eplb_placement_default(int32_t *phy2log, int L, int E, int P)
{
    for (int l = 0; l < L; l++)
        for (int p = 0; p < P; p++)
            phy2log[(size_t)l * P + p] = E > 0 ? p % E : 0;
}

void eplb_placement_derive(int32_t *logcnt, int32_t *log2phy, int maxcnt,
                           const int32_t *phy2log, const int32_t *phyrank,
                           int L, int E, int P)
{
    if (!log2phy)
        maxcnt = 0;
    for (int l = 0; l < L; l++) {
        int32_t *cnt = logcnt + (size_t)l * E;
        int32_t *l2p = log2phy ? log2phy + (size_t)l * E * maxcnt : NULL;
        const int32_t *row = phy2log + (size_t)l * P;
        memset(cnt, 0, (size_t)E * sizeof *cnt);
        for (size_t i = 0; i < (size_t)E * maxcnt; i++)
            l2p[i] = -1;
        for (int p = 0; p < P; p++) {
            int e = row[p];
            if (e < 0 || e >= E)
                continue;
            int k = phyrank ? phyrank[(size_t)l * P + p] : cnt[e];
            if (l2p && k >= 0 && k < maxcnt)
                l2p[(size_t)e * maxcnt + k] = p;
            cnt[e]++;
        }
    }
}

int eplb_placement_moves(const int32_t *old_row, const int32_t *new_row, int P)
{
    int n = 0;
    for (int p = 0; p < P; p++)
        n += old_row[p] != new_row[p];
    return n;
}

void eplb_placement_gpu_load(double *gpu_load, const int32_t *phy2log, const float *weights,
                             int L, int E, int P, int D)
{
    int cnt[EPLB_MAX_EXPERTS];
    int *c = cnt, *heap = NULL;
    if (E > EPLB_MAX_EXPERTS)
        c = heap = malloc((size_t)E * sizeof *heap);
    if (!c) { /* out of memory: loads cannot be computed; report zeros */
        memset(gpu_load, 0, (size_t)L * D * sizeof *gpu_load);
        return;
    }
    for (int l = 0; l < L; l++)
        eplb_pol_gpu_load(gpu_load + (size_t)l * D, phy2log + (size_t)l * P,
                          weights + (size_t)l * E, E, P, D, c);
    free(heap);
}

double eplb_placement_balancedness(const double *gpu_load_row, int D)
{
    double mx = eplb_pol_max(gpu_load_row, D), s = 0;
    for (int g = 0; g < D; g++)
        s += gpu_load_row[g];
    return mx > 0 ? s / D / mx : 1.0;
}
