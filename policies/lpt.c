/* lpt.c - policy `lpt`: TensorRT-LLM's static load balancer
 * (cpp/tensorrt_llm/runtime/moeLoadBalancer/moeLoadBalancer.cpp,
 * doReplication and doPlacement), topology-blind:
 *  - replication: every expert one replica, then each further slot to the
 *    expert with the largest load per replica (a max-heap of (load/count,
 *    id) pairs, so equal values go to the larger id); with zero total load
 *    the slots are spread evenly, the extra ones to the lowest ids;
 *  - placement: replicas sorted by load per replica, descending (ties: lower
 *    id first), each onto the least-loaded GPU that has a free slot (ties:
 *    lower GPU), filling that GPU's slots in order.
 * Arithmetic in double, as there. */
#include "policy_impl.h"

#include <stdlib.h>
#include <string.h>

#include "checks.h"

typedef struct {
    double size;
    int expert;
} replica_t;

static int replica_cmp(const void *a, const void *b)
{
    const replica_t *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    return (x->expert > y->expert) - (x->expert < y->expert);
}

eplb_status_t eplb_policy_lpt(int32_t *phy2log, int32_t *phyrank, const float *weights, int L,
                              int E, const eplb_policy_args_t *args)
{
    EPLB_CHECK(eplb_policy_args_check(args, L, E, weights));
    eplb_status_t st = EPLB_OK;
    int P = args->num_replicas, D = args->num_gpus, per = P / D;
    int *cnt = malloc((size_t)E * sizeof *cnt), *fill = malloc((size_t)D * sizeof *fill);
    double *load = malloc((size_t)D * sizeof *load);
    replica_t *reps = malloc((size_t)P * sizeof *reps);
    EPLB_ALLOC_GOTO(cnt, st, out);
    EPLB_ALLOC_GOTO(fill, st, out);
    EPLB_ALLOC_GOTO(load, st, out);
    EPLB_ALLOC_GOTO(reps, st, out);
    for (int l = 0; l < L; l++) {
        const float *w = weights + (size_t)l * E;
        int32_t *row = phy2log + (size_t)l * P;
        double total = 0;
        for (int e = 0; e < E; e++)
            total += w[e];
        if (total == 0) {
            for (int e = 0; e < E; e++)
                cnt[e] = P / E + (e < P % E);
        } else {
            for (int e = 0; e < E; e++)
                cnt[e] = 1;
            for (int s = E; s < P; s++) {
                int best = 0;
                double bv = (double)w[0] / cnt[0];
                for (int e = 1; e < E; e++) {
                    double v = (double)w[e] / cnt[e];
                    if (v >= bv) { /* equal: the larger id, as the heap */
                        bv = v;
                        best = e;
                    }
                }
                cnt[best]++;
            }
        }
        int k = 0;
        for (int e = 0; e < E; e++) {
            double size = (double)w[e] / cnt[e];
            for (int r = 0; r < cnt[e]; r++)
                reps[k++] = (replica_t){size, e};
        }
        qsort(reps, (size_t)P, sizeof *reps, replica_cmp);
        for (int g = 0; g < D; g++) {
            load[g] = 0;
            fill[g] = 0;
        }
        for (int i = 0; i < P; i++) {
            int best = -1;
            for (int g = 0; g < D; g++)
                if (fill[g] < per && (best < 0 || load[g] < load[best]))
                    best = g;
            row[best * per + fill[best]++] = reps[i].expert;
            load[best] += reps[i].size;
        }
        if (phyrank)
            eplb_pol_rank_by_slot(phyrank + (size_t)l * P, row, E, P, cnt);
    }
out:
    free(cnt);
    free(fill);
    free(load);
    free(reps);
    return st;
}
