/* args.c - checks of the policy arguments and of placements. */
#include "policy_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"

eplb_status_t eplb_placement_check(const int32_t *phy2log, int L, int E, int P,
                                   const char *what)
{
    unsigned char seen_small[EPLB_MAX_EXPERTS];
    unsigned char *seen = seen_small, *heap = NULL;
    eplb_status_t st = EPLB_OK;
    if (E > EPLB_MAX_EXPERTS) {
        seen = heap = malloc((size_t)E);
        if (!heap)
            return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", what);
    }
    for (int l = 0; l < L && st == EPLB_OK; l++) {
        const int32_t *row = phy2log + (size_t)l * P;
        memset(seen, 0, (size_t)E);
        for (int p = 0; p < P; p++) {
            if (row[p] < 0 || row[p] >= E) {
                st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                                    "%s: layer %d slot %d holds expert %d, outside [0, %d)",
                                    what, l, p, (int)row[p], E);
                break;
            }
            seen[row[p]] = 1;
        }
        for (int e = 0; e < E && st == EPLB_OK; e++)
            if (!seen[e])
                st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                                    "%s: layer %d has no replica of expert %d", what, l, e);
    }
    free(heap);
    return st;
}

eplb_status_t eplb_policy_args_check(const eplb_policy_args_t *args, int L, int E,
                                     const float *weights)
{
    return eplb_policy_args_check_fields(args, L, E, weights, NULL);
}

eplb_status_t eplb_policy_args_check_fields(const eplb_policy_args_t *args, int L, int E,
                                            const float *weights, const char **fields)
{
    if (fields)
        *fields = NULL;
    if (!args)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "policy arguments missing");
    int P = args->num_replicas, G = args->num_groups, N = args->num_nodes,
        D = args->num_gpus;
    if (L < 1 || E < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "weights: %d layers x %d experts; need at least 1 x 1", L, E);
    /* the shape: the first check that fails, and the arguments it names */
    const char *f = NULL;
    eplb_status_t st = EPLB_OK;
    if (G < 1 || N < 1 || D < 1 || P < 1) {
        f = "replicas, groups, nodes, gpus";
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "replicas %d, groups %d, nodes %d, gpus %d: each must be >= 1", P,
                            G, N, D);
    } else if (P < E) {
        f = "replicas";
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "replicas %d < experts %d: every expert needs a slot", P, E);
    } else if (P % D != 0) {
        f = "replicas, gpus";
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "replicas %d is not a multiple of gpus %d",
                            P, D);
    } else if (D % N != 0) {
        f = "gpus, nodes";
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "gpus %d is not a multiple of nodes %d", D,
                            N);
    } else if (E % G != 0) {
        f = "groups";
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "experts %d is not a multiple of groups %d",
                            E, G);
    }
    if (st != EPLB_OK) {
        if (fields)
            *fields = f;
        return st;
    }
    if (args->max_moves < -1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "max_moves %d: expected -1 (no limit) or >= 0", args->max_moves);
    if (!weights)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "weights missing");
    for (int l = 0; l < L; l++)
        for (int e = 0; e < E; e++) {
            float x = weights[(size_t)l * E + e];
            if (!isfinite(x) || x < 0)
                return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                      "weights: layer %d expert %d is %g; loads must be "
                                      "finite and >= 0", l, e, (double)x);
        }
    if (args->old_phy2log)
        EPLB_CHECK(eplb_placement_check(args->old_phy2log, L, E, P, "old placement"));
    if (args->series) {
        if (args->series_steps < 1)
            return eplb_error_set(EPLB_ERR_INVALID_ARG, "series: %d steps; need >= 1",
                                  args->series_steps);
        size_t n = (size_t)args->series_steps * L * E;
        for (size_t i = 0; i < n; i++)
            if (!isfinite(args->series[i]) || args->series[i] < 0)
                return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                      "series: step %zu layer %zu expert %zu is %g; loads must "
                                      "be finite and >= 0", i / ((size_t)L * E),
                                      i / E % L, i % E, (double)args->series[i]);
    }
    return EPLB_OK;
}
