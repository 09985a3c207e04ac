/* deepseek.c - the DeepSeek EPLB algorithm (deepseek-ai/EPLB eplb.py,
 * written here in C from the published description): policy `deepseek`,
 * hierarchical when G % N == 0, else global (see global.c).  All load arithmetic is float32, as the reference's, so that the
 * output matches it slot for slot (tests/test_policies.c checks every case
 * of ../shared/testdata/eplb_vectors.json). */
#include "policy_impl.h"

#include <string.h>

#include "checks.h"

void eplb_pol_hier_layer(int32_t *phy2log, int32_t *phyrank, const float *w,
                         int E, int P, int G, int N, int D, int nodup,
                         eplb_pol_ws_t *ws)
{
    const int gs = E / G, gpn = G / N, En = E / N, Pn = P / N, Dn = D / N;
    const int per_gpu = P / D;
    int m = E > P ? E : P;
    if (G > m)
        m = G;
    int *log2mlog = ws->ints, *mlog2log = log2mlog + E, *mcnt = mlog2log + E;
    int *cnt = mcnt + E, *gpack = cnt + E, *grank = gpack + G;
    int *scratch = grank + G, *phy2mlog = scratch + 3 * m, *prank = phy2mlog + P;
    int *pk = prank + P, *rk = pk + P, *pphy2phy = rk + P;
    float *gsum = ws->floats, *tok = gsum + G, *ratio = tok + E, *tokphy = ratio + E;
    float *pw = tokphy + P;

    /* Step 1: pack groups onto nodes by their summed load. */
    for (int g = 0; g < G; g++)
        gsum[g] = eplb_pol_sum_f32(w + (size_t)g * gs, gs);
    eplb_pol_balanced_packing(gpack, grank, gsum, G, N, scratch, pw);
    for (int e = 0; e < E; e++) {
        int g = e / gs;
        log2mlog[e] = (gpack[g] * gpn + grank[g]) * gs + e % gs;
        mlog2log[log2mlog[e]] = e;
    }

    /* The anti-duplicate variant caps replicas per node at the node's GPU
     * count, when En experts at that cap can fill the node's Pn slots. */
    int cap = nodup && (long)En * Dn >= Pn ? Dn : 0;

    for (int n = 0; n < N; n++) {
        /* Step 2: replicate within the node ("mlog": node-local order). */
        for (int j = 0; j < En; j++)
            tok[j] = w[mlog2log[n * En + j]];
        int *ncnt = mcnt + n * En;
        eplb_pol_replicate(phy2mlog, prank, ncnt, tok, En, Pn, cap, ratio, scratch);
        /* Step 3: pack the node's physical experts onto its GPUs. */
        for (int j = 0; j < Pn; j++)
            tokphy[j] = tok[phy2mlog[j]] / (float)ncnt[phy2mlog[j]];
        if (nodup)
            eplb_pol_nodup_pack(pk, rk, tokphy, phy2mlog, Pn, Dn, scratch, pw);
        else
            eplb_pol_balanced_packing(pk, rk, tokphy, Pn, Dn, scratch, pw);
        for (int j = 0; j < Pn; j++)
            pphy2phy[pk[j] * per_gpu + rk[j]] = j;
        for (int q = 0; q < Pn; q++) {
            int j = pphy2phy[q];
            phy2log[n * Pn + q] = mlog2log[n * En + phy2mlog[j]];
            if (phyrank)
                phyrank[n * Pn + q] = prank[j];
        }
    }
    if (nodup)
        eplb_pol_nodup_repair(phy2log, phyrank, w, E, P, N, D, cnt, ws->dbl);
}

eplb_status_t eplb_pol_run_hier(int32_t *phy2log, int32_t *phyrank, const float *weights,
                                int L, int E, const eplb_policy_args_t *args, int G, int N,
                                int nodup)
{
    EPLB_CHECK(eplb_policy_args_check(args, L, E, weights));
    int P = args->num_replicas, D = args->num_gpus;
    eplb_pol_ws_t ws;
    EPLB_CHECK(eplb_pol_ws_alloc(&ws, E, P, G, D));
    for (int l = 0; l < L; l++)
        eplb_pol_hier_layer(phy2log + (size_t)l * P, phyrank ? phyrank + (size_t)l * P : NULL,
                            weights + (size_t)l * E, E, P, G, N, D, nodup, &ws);
    eplb_pol_ws_free(&ws);
    return EPLB_OK;
}

eplb_status_t eplb_policy_deepseek(int32_t *phy2log, int32_t *phyrank, const float *weights,
                                   int L, int E, const eplb_policy_args_t *args)
{
    int G = args->num_groups, N = args->num_nodes;
    if (N <= 0 || G % N != 0) { /* the reference's global fallback */
        G = 1;
        N = 1;
    }
    return eplb_pol_run_hier(phy2log, phyrank, weights, L, E, args, G, N, 0);
}
