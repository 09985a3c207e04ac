/* kernels/dev/plan_bench.c - time of the balanced plan of one layer
 * (eplb_select_plan_balanced: the water fill, then the least-peak step of
 * kernels/plan_flow.h) on random layers: every expert on one slot, the
 * other slots to random experts (at most MR each), lognormal loads of
 * spread SIGMA; and how often the water fill alone stopped above the least
 * peak.  Build against a configured build dir B (docs/kernels.md):
 *   gcc -O2 -Isrc -Ikernels -Itests/lib -I$B kernels/dev/plan_bench.c \
 *       $B/libeplb.a -lm -lpthread -o /tmp/plan_bench
 *   /tmp/plan_bench E P D MR SIGMA [TRIALS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels.h"
#include "plan_check.h"

static uint64_t rs = 88172645463325252ull;
static uint64_t r64(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}
static double normal(void)
{
    double u = (r64() >> 11) / 9007199254740992.0 + 1e-12, v = (r64() >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: plan_bench E P D MR SIGMA [TRIALS]\n");
        return 2;
    }
    const int E = atoi(argv[1]), P = atoi(argv[2]), D = atoi(argv[3]), MR = atoi(argv[4]);
    const double sigma = atof(argv[5]);
    const int trials = argc > 6 ? atoi(argv[6]) : 200;
    if (E < 1 || P < E || D < 1 || P % D || MR < 1 || (int64_t)E * MR < P || trials < 1) {
        fprintf(stderr, "plan_bench: need P >= E, P %% D == 0, E * MR >= P\n");
        return 2;
    }
    int32_t *lc = calloc(E, 4), *l2p = malloc(4 * (size_t)E * MR), *q = malloc(4 * (size_t)E * MR);
    int *slot = malloc(sizeof *slot * P);
    int64_t *n = malloc(8 * (size_t)E), *load = malloc(8 * (size_t)D);
    double *us = malloc(sizeof *us * trials);
    int improved = 0;
    for (int t = 0; t < trials; t++) {
        for (int p = 0; p < P; p++)
            slot[p] = p;
        for (int p = P - 1; p > 0; p--) {
            int k = (int)(r64() % (uint64_t)(p + 1)), x = slot[p];
            slot[p] = slot[k];
            slot[k] = x;
        }
        for (int e = 0; e < E; e++) {
            lc[e] = 1;
            l2p[(size_t)e * MR] = slot[e];
        }
        for (int p = E; p < P;) {
            int e = (int)(r64() % (uint64_t)E);
            if (lc[e] < MR)
                l2p[(size_t)e * MR + lc[e]++] = slot[p++];
        }
        for (int e = 0; e < E; e++)
            n[e] = (int64_t)(100 * exp(sigma * normal()));
        eplb_layer_map_t m = {E, P, D, 1, MR, lc, l2p};
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (eplb_select_plan_balanced(q, load, n, &m) != EPLB_OK) {
            fprintf(stderr, "plan_bench: %s\n", eplb_error_last());
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        us[t] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
        int64_t peak = 0;
        for (int g = 0; g < D; g++)
            peak = load[g] > peak ? load[g] : peak;
        improved += plan_water_fill_peak(n, &m) > peak;
    }
    for (int i = 1; i < trials; i++) /* insertion sort for the median */
        for (int j = i; j > 0 && us[j - 1] > us[j]; j--) {
            double x = us[j];
            us[j] = us[j - 1];
            us[j - 1] = x;
        }
    printf("{\"E\":%d,\"P\":%d,\"D\":%d,\"MR\":%d,\"sigma\":%g,\"trials\":%d,\"median_us\":%.1f,"
           "\"max_us\":%.1f,\"water_fill_above_least\":%d}\n",
           E, P, D, MR, sigma, trials, us[trials / 2], us[trials - 1], improved);
    return 0;
}
