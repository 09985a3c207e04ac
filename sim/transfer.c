/* transfer.c - plan the weight moves of one layer's rearrangement.
 *
 * Matching rule (deterministic, after vLLM's rearrange_expert_weights_inplace
 * which sends each needed expert from a rank that already holds it): for
 * every slot whose expert changes, the sender is the receiving GPU itself if
 * it held the expert before (local copy), else the lowest-rank GPU of the
 * same node that held it, else the lowest-rank GPU anywhere.  A GPU that
 * receives one expert into two slots fills the second by a local copy. */
#include "sim.h"

#include <math.h>
#include <stdlib.h>

#include "checks.h"

eplb_status_t eplb_sim_transfer_plan(eplb_transfer_t *out, int32_t *sends,
                                     const int32_t *old_row,
                                     const int32_t *new_row,
                                     const eplb_cost_t *c)
{
    int D = c->num_gpus, Sg = c->slots_per_gpu, P = D * Sg;
    int gpn = D / c->num_nodes;
    eplb_status_t st = EPLB_OK;
    /* per GPU: bytes sent/received over NVLink and network, local bytes */
    double *acc = calloc((size_t)D * 5, sizeof *acc);
    EPLB_ALLOC_GOTO(acc, st, out_free);
    eplb_transfer_t t = {0, 0, 0, 0, 0, 0};
    double eb = c->expert_bytes;
    int nsend = 0;
    for (int p = 0; p < P; p++) {
        int32_t e = new_row[p];
        if (e == old_row[p])
            continue;
        t.moved++;
        int g = p / Sg;
        int src = -1;
        /* held on this GPU before, or already received by it in this plan */
        for (int q = g * Sg; q < (g + 1) * Sg && src < 0; q++)
            if (old_row[q] == e || (q < p && new_row[q] == e && old_row[q] != e))
                src = g;
        if (src < 0) {
            int node = g / gpn;
            for (int q = node * gpn * Sg; q < (node + 1) * gpn * Sg; q++)
                if (old_row[q] == e) {
                    src = q / Sg;
                    break;
                }
        }
        if (src < 0)
            for (int q = 0; q < P; q++)
                if (old_row[q] == e) {
                    src = q / Sg;
                    break;
                }
        if (sends) {
            sends[3 * nsend] = p;
            sends[3 * nsend + 1] = src;
            sends[3 * nsend + 2] = g;
        }
        nsend++;
        if (src == g) {
            t.local++;
            acc[5 * g + 4] += eb;
        } else if (src >= 0 && src / gpn == g / gpn) {
            t.intra++;
            acc[5 * src + 0] += eb; /* send nvlink */
            acc[5 * g + 1] += eb;   /* recv nvlink */
        } else {
            t.inter++;
            if (src >= 0)
                acc[5 * src + 2] += eb;
            acc[5 * g + 3] += eb;
        }
    }
    const double bytes = eb * (t.intra + t.inter);
    if (!(bytes < 0x1p63)) { /* llround beyond int64 is undefined */
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "the bytes moved pass 2^63 in one layer (%d replicas of %.4g "
                            "bytes each); the model's expert size is beyond what the totals "
                            "hold",
                            t.intra + t.inter, eb);
        goto out_free;
    }
    t.bytes = (int64_t)llround(bytes);
    const eplb_profile_t *pr = &c->prof;
    double worst = 0;
    for (int g = 0; g < D; g++) {
        double nv = fmax(acc[5 * g], acc[5 * g + 1]) / pr->nvlink_bw;
        double net = fmax(acc[5 * g + 2], acc[5 * g + 3]) / pr->net_bw;
        double loc = 2 * acc[5 * g + 4] / pr->hbm_bw; /* read + write */
        double tg = fmax(nv, net) + loc;
        if (tg > worst)
            worst = tg;
    }
    if (t.intra)
        worst += pr->nvlink_lat;
    if (t.inter)
        worst += pr->net_lat;
    t.time_s = worst;
    *out = t;
out_free:
    free(acc);
    return st;
}
