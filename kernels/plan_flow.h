/* plan_flow.h - the balanced planner's exact step: the least peak GPU load
 * that any split of the replicated experts' tokens over their replicas can
 * reach, by max flow started from the water fill's plan.
 * Compiled by the C compiler (CPU reference) and by nvcc (the plan kernel's
 * thread 0), so that CPU and GPU plans are identical.  Internal to
 * kernels/; docs/kernels.md, Selection, balanced.
 *
 * The problem: GPU g carries a fixed load f[g] (the experts with one
 * replica) and each replicated expert e sends its n[e] tokens to the GPUs
 * holding its replicas, in any integer split.  A peak M is reachable iff
 * the flow network source -> e (capacity n[e]) -> g (unbounded, where e
 * has a replica on g) -> sink (M - f[g]) carries all of sum n[e]; flows of
 * integer capacities are integral, so the split is one of tokens.  The
 * least such M is also max over GPU sets S of ceil(demand(S) / |S|), where
 * demand(S) sums the experts (fixed ones included) whose GPUs all lie in
 * S (max-flow min-cut); the tests check the plan against that bound. */
#ifndef EPLB_KERNELS_PLAN_FLOW_H
#define EPLB_KERNELS_PLAN_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h" /* EPLB_HD */

/* Scratch of eplb_plan_min_peak for E experts, P slots and D GPUs: at most
 * P (expert, GPU) pairs are modeled (every placed slot is one); a map that
 * lists more (a slot under two experts) keeps the water fill's plan. */
EPLB_HD size_t eplb_plan_flow_bytes(int E, int P, int D)
{
    const size_t V = (size_t)E + D + 2, EC = 2 * ((size_t)E + P + D);
    return 8 * (EC + D) + 4 * (2 * EC + 5 * V);
}

typedef struct {
    int nv, ne;
    int64_t *cap;                          /* [EC]: residual capacity */
    int *to, *nxt;                         /* [EC] */
    int *head, *level, *it, *queue, *path; /* [V] */
} eplb_flow_t;

EPLB_HD void eplb_flow_edge(eplb_flow_t *f, int u, int v, int64_t c)
{
    f->to[f->ne] = v, f->cap[f->ne] = c, f->nxt[f->ne] = f->head[u], f->head[u] = f->ne++;
    f->to[f->ne] = u, f->cap[f->ne] = 0, f->nxt[f->ne] = f->head[v], f->head[v] = f->ne++;
}

/* Dinic's max flow from node 0 to node 1, added to the flow that the
 * residual capacities in cap already hold (the augmenting paths of each
 * phase found depth-first without recursion).  On return level[v] >= 0
 * marks the nodes still reachable from node 0: the source side of a
 * minimum cut. */
EPLB_HD int64_t eplb_flow_max(eplb_flow_t *f)
{
    int64_t flow = 0;
    for (;;) {
        for (int v = 0; v < f->nv; v++)
            f->level[v] = -1;
        int qh = 0, qt = 0;
        f->level[0] = 0;
        f->queue[qt++] = 0;
        while (qh < qt) {
            const int u = f->queue[qh++];
            for (int e = f->head[u]; e >= 0; e = f->nxt[e])
                if (f->cap[e] > 0 && f->level[f->to[e]] < 0) {
                    f->level[f->to[e]] = f->level[u] + 1;
                    f->queue[qt++] = f->to[e];
                }
        }
        if (f->level[1] < 0)
            return flow;
        for (int v = 0; v < f->nv; v++)
            f->it[v] = f->head[v];
        for (;;) {
            int depth = 0, u = 0;
            while (u != 1) {
                int e = f->it[u];
                while (e >= 0 && !(f->cap[e] > 0 && f->level[f->to[e]] == f->level[u] + 1))
                    e = f->nxt[e];
                f->it[u] = e;
                if (e >= 0) {
                    f->path[depth++] = e;
                    u = f->to[e];
                } else if (u == 0) {
                    break; /* the phase's flow is blocking */
                } else {
                    f->level[u] = -1; /* dead end: back to the parent */
                    u = --depth ? f->to[f->path[depth - 1]] : 0;
                }
            }
            if (u != 1)
                break;
            int64_t b = f->cap[f->path[0]];
            for (int k = 1; k < depth; k++)
                b = f->cap[f->path[k]] < b ? f->cap[f->path[k]] : b;
            for (int k = 0; k < depth; k++) {
                f->cap[f->path[k]] -= b;
                f->cap[f->path[k] ^ 1] += b;
            }
            flow += b;
        }
    }
}

/* Lower the peak of a balanced plan to the least reachable one.  On entry
 * quota[E][MR] (tokens of replica j of expert e) and load[D] hold a plan of
 * every expert's n[e] tokens, order[0..nm) the experts with more than one
 * replica; rows l2p[E][MR] and lc[E] of the layer map, slots_per_gpu slots
 * per GPU, P slots.  Where the plan's peak is above the bound
 * max(ceil(total / D), largest fixed load), the least reachable peak is
 * searched; if it is lower than the plan's, the replicated experts' quotas
 * and load[] are replaced by the flow's split (each GPU's share of an
 * expert split over its replicas there as evenly as integers allow, the
 * first in the row first: the lower slot, as the policies order rows).
 * Returns 1 where the plan changed.  Deterministic: the same arguments
 * give the same plan on the CPU and on the GPU.
 *
 * The search: M starts at the bound, with the plan's flow less what passes
 * any GPU's capacity M - fixed (taken from that GPU's experts in edge
 * order); max flow then routes the rest.  Where it cannot, the GPUs S and
 * experts A still reachable from the source (the minimum cut) prove that
 * S must take fixed(S) + n(A) tokens, more than M |S|; M is raised to
 * ceil((fixed(S) + n(A)) / |S|), still a lower bound, and the flow goes on
 * from where it stopped.  So M only rises and never passes the least
 * peak, and the flow is never restarted. */
EPLB_HD int eplb_plan_min_peak(int32_t *quota, int64_t *load, const int *order, int nm,
                               const int64_t *n, const int32_t *l2p, const int32_t *lc, int MR,
                               int E, int P, int D, int slots_per_gpu, void *scratch)
{
    const size_t V = (size_t)E + D + 2, EC = 2 * ((size_t)E + P + D);
    int64_t *cap = (int64_t *)scratch, *fixed = cap + EC;
    int64_t total = 0, peak = 0, fmax = 0, need = 0;
    for (int g = 0; g < D; g++)
        fixed[g] = load[g];
    for (int i = 0; i < nm; i++) {
        const int e = order[i];
        need += n[e];
        for (int j = 0; j < lc[e]; j++)
            fixed[l2p[(size_t)e * MR + j] / slots_per_gpu] -= quota[(size_t)e * MR + j];
    }
    for (int g = 0; g < D; g++) {
        total += load[g];
        peak = load[g] > peak ? load[g] : peak;
        fmax = fixed[g] > fmax ? fixed[g] : fmax;
    }
    int64_t M = (total + D - 1) / D;
    M = fmax > M ? fmax : M;
    if (peak <= M || nm == 0)
        return 0;
    eplb_flow_t f;
    f.cap = cap;
    f.to = (int *)(fixed + D), f.nxt = f.to + EC, f.head = f.nxt + EC;
    f.level = f.head + V, f.it = f.level + V, f.queue = f.it + V, f.path = f.queue + V;
    f.nv = 2 + nm + D, f.ne = 0;
    for (int v = 0; v < f.nv; v++)
        f.head[v] = -1;
    /* the network (sink edges first: edge 2g of GPU g) */
    for (int g = 0; g < D; g++)
        eplb_flow_edge(&f, 2 + nm + g, 1, 0);
    int pairs = 0;
    for (int i = 0; i < nm; i++) {
        const int e = order[i];
        const int32_t *row = l2p + (size_t)e * MR;
        eplb_flow_edge(&f, 0, 2 + i, 0);
        for (int j = 0; j < lc[e]; j++) {
            const int g = row[j] / slots_per_gpu;
            int seen = 0;
            for (int k = 0; k < j; k++)
                seen |= row[k] / slots_per_gpu == g;
            if (seen)
                continue;
            if (++pairs > P)
                return 0;  /* not a map of distinct slots: keep the plan */
            int64_t x = 0; /* the plan's tokens of e on g */
            for (int k = j; k < lc[e]; k++)
                x += row[k] / slots_per_gpu == g ? quota[(size_t)e * MR + k] : 0;
            eplb_flow_edge(&f, 2 + i, 2 + nm + g, need + 1);
            f.cap[f.ne - 2] -= x, f.cap[f.ne - 1] = x;
        }
    }
    /* the plan's flow within capacity M: a GPU over it gives back its
     * excess, from its experts in edge order */
    for (int g = 0; g < D; g++) {
        int64_t over = load[g] - M;
        for (int a = f.head[2 + nm + g]; a >= 0 && over > 0; a = f.nxt[a]) {
            if (f.to[a] == 1)
                continue;
            const int64_t x = f.cap[a] < over ? f.cap[a] : over; /* a: g -> e, cap = flow */
            f.cap[a] -= x, f.cap[a ^ 1] += x, over -= x;
        }
        const int64_t in = (load[g] > M ? M : load[g]) - fixed[g];
        f.cap[2 * g] = M - fixed[g] - in, f.cap[2 * g + 1] = in;
    }
    int64_t flow = 0;
    for (int i = 0; i < nm; i++) { /* the source edges: each expert's flow */
        int64_t sent = 0;
        for (int a = f.head[2 + i]; a >= 0; a = f.nxt[a])
            if (f.to[a] != 0)
                sent += f.cap[a ^ 1];
        const int s0 = f.head[2 + i]; /* find the source edge's pair */
        int sa = s0;
        while (f.to[sa] != 0)
            sa = f.nxt[sa];
        f.cap[sa] = sent, f.cap[sa ^ 1] = n[order[i]] - sent; /* sa: e -> s */
        flow += sent;
    }
    for (;;) {
        flow += eplb_flow_max(&f);
        if (flow == need)
            break;
        int64_t dem = 0, ns = 0; /* the cut: reachable GPUs and experts */
        for (int g = 0; g < D; g++)
            if (f.level[2 + nm + g] >= 0)
                dem += fixed[g], ns++;
        for (int i = 0; i < nm; i++)
            if (f.level[2 + i] >= 0)
                dem += n[order[i]];
        int64_t M2 = ns ? (dem + ns - 1) / ns : peak;
        M2 = M2 > M ? M2 : M + 1; /* (always: the cut needs more than M |S|) */
        if (M2 >= peak)
            return 0; /* the plan's peak is the least */
        for (int g = 0; g < D; g++)
            f.cap[2 * g] += M2 - M;
        M = M2;
    }
    for (int g = 0; g < D; g++)
        load[g] = fixed[g];
    for (int i = 0; i < nm; i++) {
        const int e = order[i];
        const int32_t *row = l2p + (size_t)e * MR;
        int32_t *q = quota + (size_t)e * MR;
        for (int j = 0; j < lc[e]; j++)
            q[j] = 0;
        for (int a = f.head[2 + i]; a >= 0; a = f.nxt[a]) {
            const int g = f.to[a] - 2 - nm;
            if (g < 0)
                continue;                   /* the edge back to the source */
            const int64_t x = f.cap[a ^ 1]; /* the flow e -> g */
            load[g] += x;
            int cnt = 0, seen = 0;
            for (int j = 0; j < lc[e]; j++)
                cnt += row[j] / slots_per_gpu == g;
            for (int j = 0; j < lc[e]; j++)
                if (row[j] / slots_per_gpu == g)
                    q[j] = (int32_t)(x / cnt + (seen++ < x % cnt));
        }
    }
    return 1;
}

#endif
