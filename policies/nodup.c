/* nodup.c - policy `nodup`: the DeepSeek algorithm without two replicas of
 * one expert on the same GPU whenever that is possible.  The reference's
 * GPU packing ignores which expert a physical replica belongs to, so a hot
 * expert can get two slots on one GPU, which adds memory but no balance
 * (deepseek-ai/EPLB issue #22; the fix proposed in PR #28 prefers packs
 * without the id).  Here: (1) replica counts are capped at the node's GPU
 * count when the node's experts can fill its slots at that cap, (2) the GPU
 * packing prefers the lightest GPU with room that lacks the expert, (3)
 * swaps between GPUs of a node remove what duplicates remain. */
#include "policy_impl.h"

#include <string.h>

void eplb_pol_nodup_pack(int *pack, int *rank, const float *w, const int *id,
                         int n, int packs, int *scratch, float *pw)
{
    int per = n / packs;
    int *order = scratch, *items = scratch + n, *members = scratch + 2 * n;
    if (eplb_pol_pack_start(pack, rank, w, n, packs, order, items, pw))
        return;
    /* members[p * per + k]: id of the k-th item of pack p */
    for (int t = 0; t < n; t++) {
        int it = order[t], best = -1, any = -1;
        for (int p = 0; p < packs; p++) {
            if (items[p] >= per)
                continue;
            if (any < 0 || pw[p] < pw[any])
                any = p;
            int clash = 0;
            for (int k = 0; k < items[p] && !clash; k++)
                clash = members[p * per + k] == id[it];
            if (!clash && (best < 0 || pw[p] < pw[best]))
                best = p;
        }
        if (best < 0)
            best = any;
        pack[it] = best;
        rank[it] = items[best];
        members[best * per + items[best]] = id[it];
        pw[best] += w[it];
        items[best]++;
    }
}

static int gpu_holds(const int32_t *row, int g, int per, int e)
{
    for (int p = g * per; p < (g + 1) * per; p++)
        if (row[p] == e)
            return 1;
    return 0;
}

static int gpu_count(const int32_t *row, int g, int per, int e)
{
    int c = 0;
    for (int p = g * per; p < (g + 1) * per; p++)
        c += row[p] == e;
    return c;
}

void eplb_pol_nodup_repair(int32_t *row, int32_t *phyrank, const float *w, int E, int P,
                           int N, int D, int *cnt, double *load)
{
    const int per = P / D, Dn = D / N;
    if (per < 2)
        return;
    eplb_pol_gpu_load(load, row, w, E, P, D, cnt); /* also fills cnt */
    for (int n = 0; n < N; n++) {
        int g0 = n * Dn, g1 = g0 + Dn;
        /* Each swap lowers the number of duplicate slots by at least one,
         * so this ends; it stops early when no swap helps. */
        for (;;) {
            int bp = -1, bq = -1;
            double bcost = 0;
            for (int g = g0; g < g1; g++)
                for (int p = g * per; p < (g + 1) * per; p++) {
                    int e = row[p];
                    if (gpu_count(row, g, per, e) < 2)
                        continue;
                    double le = (double)w[e] / cnt[e];
                    for (int h = g0; h < g1; h++) {
                        if (h == g || gpu_holds(row, h, per, e))
                            continue;
                        for (int q = h * per; q < (h + 1) * per; q++) {
                            int y = row[q];
                            if (gpu_holds(row, g, per, y))
                                continue;
                            double ly = (double)w[y] / cnt[y];
                            double lg = load[g] - le + ly, lh = load[h] - ly + le;
                            double cost = lg > lh ? lg : lh;
                            if (bp < 0 || cost < bcost) {
                                bp = p;
                                bq = q;
                                bcost = cost;
                            }
                        }
                    }
                }
            if (bp < 0)
                break;
            int g = bp / per, h = bq / per, e = row[bp], y = row[bq];
            double le = (double)w[e] / cnt[e], ly = (double)w[y] / cnt[y];
            load[g] += ly - le;
            load[h] += le - ly;
            row[bp] = y;
            row[bq] = e;
            if (phyrank) {
                int32_t t = phyrank[bp];
                phyrank[bp] = phyrank[bq];
                phyrank[bq] = t;
            }
        }
    }
}

eplb_status_t eplb_policy_nodup(int32_t *phy2log, int32_t *phyrank, const float *weights,
                                int L, int E, const eplb_policy_args_t *args)
{
    int G = args->num_groups, N = args->num_nodes;
    if (N <= 0 || G % N != 0) {
        G = 1;
        N = 1;
    }
    return eplb_pol_run_hier(phy2log, phyrank, weights, L, E, args, G, N, 1);
}
