/* plan_check.h - independent checks of the balanced plan, shared by the
 * Criterion suite (tests/test_kernels.c) and the GPU test program.
 *
 * plan_least_peak: the least peak GPU load of any split, computed without
 * flows: max over non-empty GPU sets S of ceil(demand(S) / |S|), where
 * demand(S) sums n[e] over the placed experts whose GPUs all lie in S
 * (Hall's condition for this supply problem: a peak M is reachable iff no
 * set S of GPUs must take more than M |S| tokens).  2^D sets: D <= 16.
 *
 * plan_water_fill_peak: the peak of the water fill alone (the planner's
 * first step, kernels/rules.h), to count the instances where the exact
 * step had something to do. */
#ifndef EPLB_TESTS_PLAN_CHECK_H
#define EPLB_TESTS_PLAN_CHECK_H

#include <stdint.h>
#include <stdlib.h>

#include "kernels.h"
#include "rules.h"

static inline int64_t plan_least_peak(const int64_t *n, const eplb_layer_map_t *m)
{
    const int E = m->num_logical, MR = m->max_replicas, D = m->num_gpus;
    const int spg = m->num_physical / D;
    unsigned *gset = malloc(sizeof *gset * (size_t)E);
    for (int e = 0; e < E; e++) {
        gset[e] = 0;
        for (int j = 0; j < m->logcnt[e]; j++)
            gset[e] |= 1u << (m->log2phy[(size_t)e * MR + j] / spg);
    }
    int64_t best = 0;
    for (unsigned s = 1; s < 1u << D; s++) {
        int64_t dem = 0;
        for (int e = 0; e < E; e++)
            if (gset[e] && (gset[e] & ~s) == 0)
                dem += n[e];
        const int64_t k = __builtin_popcount(s), need = (dem + k - 1) / k;
        best = need > best ? need : best;
    }
    free(gset);
    return best;
}

static inline int64_t plan_water_fill_peak(const int64_t *n, const eplb_layer_map_t *m)
{
    const int E = m->num_logical, MR = m->max_replicas, D = m->num_gpus;
    const int spg = m->num_physical / D;
    int64_t *load = calloc((size_t)D, sizeof *load);
    int32_t *quota = calloc((size_t)MR, sizeof *quota);
    char *done = calloc((size_t)E, 1);
    for (int e = 0; e < E; e++)
        if (m->logcnt[e] == 1)
            load[m->log2phy[(size_t)e * MR] / spg] += n[e];
    for (;;) { /* experts of several replicas by n descending, ties lower id */
        int b = -1;
        for (int e = 0; e < E; e++)
            if (m->logcnt[e] > 1 && !done[e] && (b < 0 || n[e] > n[b]))
                b = e;
        if (b < 0)
            break;
        done[b] = 1;
        eplb_rule_water_fill(quota, m->log2phy + (size_t)b * MR, m->logcnt[b], n[b], load, spg);
    }
    int64_t peak = 0;
    for (int g = 0; g < D; g++)
        peak = load[g] > peak ? load[g] : peak;
    free(load);
    free(quota);
    free(done);
    return peak;
}

#endif
