/* vec.c - policy `vec`: time-series aware rebalancing.  Loads vary from
 * step to step, and a step lasts as long as its busiest GPU, so what a
 * placement costs is the sum over steps of each step's peak GPU load, not
 * the peak of the summed load that `deepseek` minimises.
 *
 * After SGLang's deepseek_vec (python/sglang/srt/eplb/eplb_algorithms/
 * deepseek_vec.py), which takes per-step counts [S, L, E] and gives each
 * redundant slot to the expert whose extra replica most lowers the sum over
 * steps of the per-step maximum load per replica.  Steps here:
 *  1. hierarchical as deepseek when G % N == 0 (groups to nodes by total
 *     load), else one node;
 *  2. replication within a node as SGLang's: the slot goes to the expert
 *     whose extra replica most lowers sum_s max_e x_s[e] / count[e] (ties,
 *     and steps where nothing lowers it: the largest total load per
 *     replica, then the lower id);
 *  3. placement (SGLang deals sorted replicas out in a zigzag): replicas by
 *     total load per replica, descending, each onto the GPU of the node with
 *     a free slot that least raises sum_s max_g load_s[g] (ties: the GPU with
 *     the smaller total, then the lower index).
 * Without a series (args->series NULL) the weights are one step. */
#include "policy_impl.h"

#include <stdlib.h>
#include <string.h>

#include "checks.h"

typedef struct {
    float *x;      /* [S][E] this layer's loads */
    double *tot;   /* [E] total over steps */
    int *cnt;      /* [E] */
    int *order;    /* [P] expert of each replica, placement order */
    double *key;   /* [P] */
    double *gl;    /* [D][S] per-GPU per-step load */
    double *gtot;  /* [D] */
    double *peak;  /* [S] */
    double *top1, *top2;
    int *top1i;    /* [S] */
    int *fill;     /* [D] */
    int *gpack, *grank, *scratch; /* group packing */
    float *gsum, *pw;
    int *members;  /* [E] node-local expert ids (global ids) */
} vec_ws_t;

/* Step 2 for one node: experts ids[0..En) get counts cnt[id] summing to Pn. */
static void vec_replicate(vec_ws_t *w, const int *ids, int En, int Pn, int S, int E)
{
    for (int j = 0; j < En; j++)
        w->cnt[ids[j]] = 1;
    for (int slot = En; slot < Pn; slot++) {
        for (int s = 0; s < S; s++) {
            double t1 = -1, t2 = -1;
            int i1 = -1;
            for (int j = 0; j < En; j++) {
                int e = ids[j];
                double v = (double)w->x[(size_t)s * E + e] / w->cnt[e];
                if (v > t1) {
                    t2 = t1;
                    t1 = v;
                    i1 = j;
                } else if (v > t2) {
                    t2 = v;
                }
            }
            w->top1[s] = t1;
            w->top2[s] = t2 < 0 ? 0 : t2;
            w->top1i[s] = i1;
        }
        int best = -1;
        double bgain = 0, bkey = 0;
        for (int j = 0; j < En; j++) {
            int e = ids[j];
            double gain = 0;
            for (int s = 0; s < S; s++)
                if (w->top1i[s] == j) {
                    double nv = (double)w->x[(size_t)s * E + e] / (w->cnt[e] + 1);
                    double m = nv > w->top2[s] ? nv : w->top2[s];
                    gain += w->top1[s] - m;
                }
            double key = w->tot[e] / w->cnt[e];
            if (best < 0 || gain > bgain || (gain == bgain && key > bkey)) {
                best = j;
                bgain = gain;
                bkey = key;
            }
        }
        w->cnt[ids[best]]++;
    }
}

/* Step 3 for one node: place its replicas on GPUs g0..g0+Dn-1. */
static void vec_place(vec_ws_t *w, int32_t *row, const int *ids, int En, int Pn, int g0,
                      int Dn, int per, int S, int E)
{
    int k = 0;
    for (int j = 0; j < En; j++)
        for (int r = 0; r < w->cnt[ids[j]]; r++)
            w->order[k++] = ids[j];
    for (int i = 0; i < Pn; i++)
        w->key[i] = w->tot[w->order[i]] / w->cnt[w->order[i]];
    /* insertion sort by key descending, then id ascending (stable) */
    for (int i = 1; i < Pn; i++) {
        int e = w->order[i];
        double kv = w->key[i];
        int j = i - 1;
        while (j >= 0 && (w->key[j] < kv || (w->key[j] == kv && w->order[j] > e))) {
            w->order[j + 1] = w->order[j];
            w->key[j + 1] = w->key[j];
            j--;
        }
        w->order[j + 1] = e;
        w->key[j + 1] = kv;
    }
    for (int g = 0; g < Dn; g++) {
        w->fill[g] = 0;
        w->gtot[g] = 0;
        memset(w->gl + (size_t)g * S, 0, (size_t)S * sizeof(double));
    }
    memset(w->peak, 0, (size_t)S * sizeof(double));
    for (int i = 0; i < Pn; i++) {
        int e = w->order[i], best = -1;
        double bcost = 0;
        for (int g = 0; g < Dn; g++) {
            if (w->fill[g] >= per)
                continue;
            const double *gl = w->gl + (size_t)g * S;
            double cost = 0;
            for (int s = 0; s < S; s++) {
                double v = gl[s] + (double)w->x[(size_t)s * E + e] / w->cnt[e];
                if (v > w->peak[s])
                    cost += v - w->peak[s];
            }
            if (best < 0 || cost < bcost || (cost == bcost && w->gtot[g] < w->gtot[best])) {
                best = g;
                bcost = cost;
            }
        }
        double *gl = w->gl + (size_t)best * S;
        for (int s = 0; s < S; s++) {
            gl[s] += (double)w->x[(size_t)s * E + e] / w->cnt[e];
            if (gl[s] > w->peak[s])
                w->peak[s] = gl[s];
        }
        w->gtot[best] += w->key[i];
        row[(g0 + best) * per + w->fill[best]++] = e;
    }
}

eplb_status_t eplb_policy_vec(int32_t *phy2log, int32_t *phyrank, const float *weights, int L,
                              int E, const eplb_policy_args_t *args)
{
    EPLB_CHECK(eplb_policy_args_check(args, L, E, weights));
    eplb_status_t st = EPLB_OK;
    int P = args->num_replicas, D = args->num_gpus, G = args->num_groups,
        N = args->num_nodes;
    if (G % N != 0) {
        G = 1;
        N = 1;
    }
    int S = args->series ? args->series_steps : 1;
    int per = P / D, En = E / N, Pn = P / N, Dn = D / N, gs = E / G;
    vec_ws_t w;
    memset(&w, 0, sizeof w);
    w.x = malloc((size_t)S * E * sizeof *w.x);
    w.tot = malloc((size_t)E * sizeof *w.tot);
    w.cnt = malloc((size_t)E * sizeof *w.cnt);
    w.order = malloc((size_t)P * sizeof *w.order);
    w.key = malloc((size_t)P * sizeof *w.key);
    w.gl = malloc((size_t)D * S * sizeof *w.gl);
    w.gtot = malloc((size_t)D * sizeof *w.gtot);
    w.peak = malloc((size_t)S * sizeof *w.peak);
    w.top1 = malloc((size_t)S * sizeof *w.top1);
    w.top2 = malloc((size_t)S * sizeof *w.top2);
    w.top1i = malloc((size_t)S * sizeof *w.top1i);
    w.fill = malloc((size_t)D * sizeof *w.fill);
    w.gpack = malloc((size_t)G * sizeof *w.gpack);
    w.grank = malloc((size_t)G * sizeof *w.grank);
    w.scratch = malloc((size_t)2 * G * sizeof *w.scratch);
    w.gsum = malloc((size_t)G * sizeof *w.gsum);
    w.pw = malloc((size_t)2 * N * sizeof *w.pw);
    w.members = malloc((size_t)E * sizeof *w.members);
    EPLB_ALLOC_GOTO(w.x, st, out);
    EPLB_ALLOC_GOTO(w.tot, st, out);
    EPLB_ALLOC_GOTO(w.cnt, st, out);
    EPLB_ALLOC_GOTO(w.order, st, out);
    EPLB_ALLOC_GOTO(w.key, st, out);
    EPLB_ALLOC_GOTO(w.gl, st, out);
    EPLB_ALLOC_GOTO(w.gtot, st, out);
    EPLB_ALLOC_GOTO(w.peak, st, out);
    EPLB_ALLOC_GOTO(w.top1, st, out);
    EPLB_ALLOC_GOTO(w.top2, st, out);
    EPLB_ALLOC_GOTO(w.top1i, st, out);
    EPLB_ALLOC_GOTO(w.fill, st, out);
    EPLB_ALLOC_GOTO(w.gpack, st, out);
    EPLB_ALLOC_GOTO(w.grank, st, out);
    EPLB_ALLOC_GOTO(w.scratch, st, out);
    EPLB_ALLOC_GOTO(w.gsum, st, out);
    EPLB_ALLOC_GOTO(w.pw, st, out);
    EPLB_ALLOC_GOTO(w.members, st, out);
    for (int l = 0; l < L; l++) {
        int32_t *row = phy2log + (size_t)l * P;
        for (int s = 0; s < S; s++)
            memcpy(w.x + (size_t)s * E,
                   args->series ? args->series + ((size_t)s * L + l) * E
                                : weights + (size_t)l * E,
                   (size_t)E * sizeof *w.x);
        for (int e = 0; e < E; e++) {
            double t = 0;
            for (int s = 0; s < S; s++)
                t += w.x[(size_t)s * E + e];
            w.tot[e] = t;
        }
        /* 1. groups to nodes by total load */
        for (int g = 0; g < G; g++) {
            double t = 0;
            for (int e = g * gs; e < (g + 1) * gs; e++)
                t += w.tot[e];
            w.gsum[g] = (float)t;
        }
        eplb_pol_balanced_packing(w.gpack, w.grank, w.gsum, G, N, w.scratch, w.pw);
        for (int n = 0; n < N; n++) {
            int k = 0;
            for (int g = 0; g < G; g++)
                if (w.gpack[g] == n)
                    for (int e = g * gs; e < (g + 1) * gs; e++)
                        w.members[k++] = e;
            vec_replicate(&w, w.members, En, Pn, S, E);
            vec_place(&w, row, w.members, En, Pn, n * Dn, Dn, per, S, E);
        }
        if (phyrank)
            eplb_pol_rank_by_slot(phyrank + (size_t)l * P, row, E, P, w.cnt);
    }
out:
    free(w.x);
    free(w.tot);
    free(w.cnt);
    free(w.order);
    free(w.key);
    free(w.gl);
    free(w.gtot);
    free(w.peak);
    free(w.top1);
    free(w.top2);
    free(w.top1i);
    free(w.fill);
    free(w.gpack);
    free(w.grank);
    free(w.scratch);
    free(w.gsum);
    free(w.pw);
    free(w.members);
    return st;
}
