/* migration.c - policy `migration-aware`: the best balance reachable from
 * the current placement by changing at most args->max_moves slots per layer
 * (a move is a slot whose expert differs from the old placement: one expert
 * copy over the network).  Users of every peer ask for it: a full DeepSeek
 * rebalance rewrites most slots for a few percent of balance.
 *
 * Greedy descent: from the old placement, repeatedly apply the single step
 * that lowers the peak GPU load most, while the placement differs from the
 * old one in at most max_moves slots, until no step lowers the peak.  A step
 * is a slot reassignment (slot p: expert a -> b, a keeping at least one
 * replica: replica counts change) or a swap of two slots' experts between
 * the busiest GPU and another (counts stay; the only steps when P == E).
 * Loads split evenly over replicas, so a reassignment changes the GPUs that
 * hold a or b.  Only steps that unload the (first) busiest GPU can lower the
 * peak: p on that GPU, or b already on it; only those are tried.  Lower
 * bounds on a candidate's peak (the busiest GPU's own load; a's heaviest
 * other holder without b; the busiest GPU without b) skip those that
 * cannot beat the best found, so the choice is, but for rounding, the one
 * that evaluating every candidate would make (the busiest GPU's bound
 * multiplies where the evaluation adds one replica at a time, which can
 * differ by an ulp from about 4 replicas on; the thirteenth session's
 * code had the same bound, so the two choose alike).  The peak never
 * rises, so the result is never worse than `none`.
 *
 * The choice is fixed to the last bit (docs/perf/policy.md, thirteenth and
 * fifteenth sessions): a faster evaluation must compute the same doubles
 * for the candidates it does not skip, and skip only those whose peak is
 * provably above best (or equal to it, where a tie could not win). */
#include "policy_impl.h"

#include <stdlib.h>
#include <string.h>

#include "checks.h"

/* One holder of an expert in the per-step sorted lists: GPU g with n
 * replicas, and v, g's load once the expert's replicas there change. */
typedef struct {
    double v;
    int g, n;
} mig_hold_t;

typedef struct {
    int *cnt;      /* [E] replicas */
    /* the GPUs holding each expert, in slot order (so by GPU, ascending),
     * with their replicas: expert e's are hold_g/hold_n[hold_off[e] ..
     * hold_end[e]) */
    int *hold_off; /* [E + 1] */
    int *hold_end; /* [E] */
    int *hold_g;   /* [P] */
    int *hold_n;   /* [P] */
    /* 1 where GPU g holds expert e, at [e * D + g] (NULL past 2^24
     * entries, with max_moves 0, or if it cannot be allocated: then every
     * candidate is evaluated by peak_after's walk), kept in step with the
     * holders' lists */
    unsigned char *on_gpu;
    int *onmax;    /* [E] replicas of e on the busiest GPU */
    int *mx;       /* [P] distinct experts on the busiest GPU */
    int *gorder;   /* [D] GPUs by load, descending */
    unsigned *touched; /* [D] stamp */
    int *tlist;    /* [D] touched GPUs */
    double *load;  /* [D] */
    double *delta; /* [D] */
    unsigned stamp; /* wraps (2^32 candidates): touched is cleared then */
    /* Per step, computed once instead of once per candidate (the same
     * expressions, so the same doubles): */
    double *share;  /* [E] w / cnt: one replica's load now */
    double *lose;   /* [E] w / (cnt - 1): after losing a replica (cnt >= 2) */
    double *gain;   /* [E] w / (cnt + 1): after gaining one */
    double *own0;   /* [E] bound on the busiest GPU's load with b arriving */
    int *gcnt;      /* [E] replicas of each expert on the scanned slot's GPU */
    /* With on_gpu only (peak_fast): each expert's holders by their load
     * once the expert loses a replica elsewhere (a_list) or gains one
     * elsewhere (b_list), descending, at hold_off[e] .. hold_end[e]; and
     * the first two GPUs in gorder that do not hold it (-1: none). */
    mig_hold_t *a_list; /* [P] */
    mig_hold_t *b_list; /* [P] */
    int *free2;         /* [2 E] */
    uint64_t *a_ready, *b_ready; /* [E] step of sort_list */
    uint64_t *a_full, *b_full;   /* [E] step of sort_rest */
    uint64_t step;               /* steps so far, all layers */
    /* indexes into the scanned slot's set of arriving experts b (mx, or
     * all experts: ident): of those still worth trying on the scanned GPU
     * (live_arrivals) for unmoved slots (live1) and moved ones (live0),
     * live0 with old[p] merged in (cand), all (ident); mx's index of each
     * expert on the busiest GPU (mxpos, else -1) */
    int *live1, *live0, *cand, *ident; /* [max(per, E) + 1] */
    int *mxpos;                        /* [E] */
    double *rmin, *rmax; /* [D] smallest and largest share on each GPU */
} mig_ws_t;

/* gorder: GPUs by load, descending, lower index first among equals (a
 * total order, so the result does not depend on where it starts).  It
 * starts from the last step's order, where only the GPUs a step touched
 * have moved: insertion sort is then nearly linear. */
static void order_gpus(mig_ws_t *m, int D)
{
    for (int i = 1; i < D; i++) {
        int g = m->gorder[i], j = i - 1;
        while (j >= 0 && (m->load[m->gorder[j]] < m->load[g] ||
                          (m->load[m->gorder[j]] == m->load[g] && m->gorder[j] > g))) {
            m->gorder[j + 1] = m->gorder[j];
            j--;
        }
        m->gorder[j + 1] = g;
    }
}

/* on_gpu back to zero where the holders' lists set it */
static void clear_on_gpu(mig_ws_t *m, int E, int D)
{
    if (m->on_gpu)
        for (int e = 0; e < E; e++)
            for (int k = m->hold_off[e]; k < m->hold_end[e]; k++)
                m->on_gpu[(size_t)e * D + m->hold_g[k]] = 0;
}

/* The GPUs holding each expert with their replica counts (hold_*), from
 * row.  A GPU's slots are consecutive, so its replicas of e are too. */
static void list_holders(mig_ws_t *m, const int32_t *row, int E, int P, int per, int D)
{
    clear_on_gpu(m, E, D); /* the last lists' entries */
    /* at most one entry per replica: cnt[e] entries of room for expert e
     * (P in all), so no counting pass is needed */
    int off = 0;
    for (int e = 0; e < E; e++) {
        m->hold_off[e] = off;
        m->hold_end[e] = off;
        off += m->cnt[e];
    }
    m->hold_off[E] = off;
    for (int q = 0, g = 0, end = per; q < P; q++) {
        if (q == end) { /* next GPU (no division per slot) */
            g++;
            end += per;
        }
        int e = row[q], k = m->hold_end[e];
        if (k > m->hold_off[e] && m->hold_g[k - 1] == g) {
            m->hold_n[k - 1]++;
        } else {
            m->hold_g[k] = g;
            m->hold_n[k] = 1;
            m->hold_end[e] = k + 1;
        }
        if (m->on_gpu)
            m->on_gpu[(size_t)e * D + g] = 1;
    }
}

/* By v descending, then GPU ascending (any total order would do: only the
 * values are read in order). */
static int hold_cmp(const void *x, const void *y)
{
    const mig_hold_t *s = x, *t = y;
    if (s->v != t->v)
        return s->v < t->v ? 1 : -1;
    return (s->g > t->g) - (s->g < t->g);
}

static void sort_holders(mig_hold_t *h, int n)
{
    if (n > 16) {
        qsort(h, (size_t)n, sizeof *h, hold_cmp);
        return;
    }
    for (int i = 1; i < n; i++) {
        mig_hold_t x = h[i];
        int j = i - 1;
        while (j >= 0 && hold_cmp(&h[j], &x) > 0) {
            h[j + 1] = h[j];
            j--;
        }
        h[j + 1] = x;
    }
}

/* Expert e's holders by their load once e loses a replica elsewhere
 * (a_list, lose) or gains one (b_list, !lose), if not yet this step: on
 * demand, as most experts' lists are never read in a step, and only the
 * first two in order, as most walks stop there (sort_rest orders the rest
 * when one does not).  A holder's value is its load plus a delta summed
 * from 0, one add per replica, exactly as peak_after sums it for a GPU
 * that holds only that one of the two experts. */
static void sort_list(mig_ws_t *m, int e, int lose)
{
    uint64_t *ready = lose ? m->a_ready : m->b_ready;
    if (ready[e] == m->step)
        return;
    ready[e] = m->step;
    mig_hold_t *h = (lose ? m->a_list : m->b_list) + m->hold_off[e];
    int n = m->hold_end[e] - m->hold_off[e];
    double u = (lose ? m->lose[e] : m->gain[e]) - m->share[e];
    for (int k = 0; k < n; k++) {
        int g = m->hold_g[m->hold_off[e] + k], c = m->hold_n[m->hold_off[e] + k];
        double d = 0;
        for (int i = 0; i < c; i++)
            d += u;
        h[k] = (mig_hold_t){m->load[g] + d, g, c};
    }
    for (int i = 0; i < 2 && i < n; i++) { /* selection of the top two */
        int t = i;
        for (int k = i + 1; k < n; k++)
            if (hold_cmp(&h[k], &h[t]) < 0)
                t = k;
        mig_hold_t x = h[i];
        h[i] = h[t];
        h[t] = x;
    }
}

/* Past its first two entries, e's list sorted too (once per step). */
static void sort_rest(mig_ws_t *m, int e, int lose)
{
    uint64_t *full = lose ? m->a_full : m->b_full;
    if (full[e] == m->step)
        return;
    full[e] = m->step;
    mig_hold_t *h = (lose ? m->a_list : m->b_list) + m->hold_off[e];
    sort_holders(h + 2, m->hold_end[e] - m->hold_off[e] - 2);
}

/* free2: per expert, the first two GPUs in gorder that do not hold it.  Hot
 * experts hold most GPUs, but each walk stops after two misses: P + 2 E
 * lookups for all experts together. */
static void find_free2(mig_ws_t *m, int E, int D)
{
    for (int e = 0; e < E; e++) {
        const unsigned char *on = m->on_gpu + (size_t)e * D;
        int nf = 0;
        m->free2[2 * e] = m->free2[2 * e + 1] = -1;
        for (int i = 0; i < D && nf < 2; i++)
            if (!on[m->gorder[i]])
                m->free2[2 * e + nf++] = m->gorder[i];
    }
}

/* Replicas of expert e on GPU g (0 if none): its holders are by GPU. */
static int replicas_on(const mig_ws_t *m, int e, int g)
{
    int lo = m->hold_off[e], hi = m->hold_end[e];
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (m->hold_g[mid] < g)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->hold_end[e] && m->hold_g[lo] == g ? m->hold_n[lo] : 0;
}

/* Peak GPU load after slot p changes from a to b.  The deltas are summed
 * in the order of a walk over the replicas in slot order (first p's GPU,
 * then a's other replicas, then b's), one add per replica, so the result
 * is the same to the last bit as that walk's (the holders' counts only
 * spare the walk over the slots).  This holds with doubles of 64 bits
 * throughout (SSE2, AArch64), not with x87's 80-bit registers.  Used only
 * without on_gpu; peak_fast gives the same value otherwise. */
static double peak_after(mig_ws_t *m, int D, int per, int p, int a, int b)
{
    int nt = 0;
    if (++m->stamp == 0) { /* wrapped: no stale stamp may equal a new one */
        memset(m->touched, 0, (size_t)D * sizeof *m->touched);
        m->stamp = 1;
    }
#define TOUCH(g, dv, n)                                                       \
    do {                                                                      \
        int g_ = (g), n_ = (n);                                               \
        if (n_ > 0) {                                                         \
            if (m->touched[g_] != m->stamp) {                                 \
                m->touched[g_] = m->stamp;                                    \
                m->delta[g_] = 0;                                             \
                m->tlist[nt++] = g_;                                          \
            }                                                                 \
            double d_ = m->delta[g_];                                         \
            for (int i_ = 0; i_ < n_; i_++)                                   \
                d_ += (dv);                                                   \
            m->delta[g_] = d_;                                                \
        }                                                                     \
    } while (0)
    double ra = m->share[a], ra1 = m->lose[a];
    double rb = m->share[b], rb1 = m->gain[b];
    const int gp = p / per;
    TOUCH(gp, rb1 - ra, 1);
    for (int k = m->hold_off[a]; k < m->hold_end[a]; k++)
        TOUCH(m->hold_g[k], ra1 - ra, m->hold_n[k] - (m->hold_g[k] == gp));
    for (int k = m->hold_off[b]; k < m->hold_end[b]; k++)
        TOUCH(m->hold_g[k], rb1 - rb, m->hold_n[k]);
#undef TOUCH
    double peak = 0;
    for (int i = 0; i < nt; i++) {
        double v = m->load[m->tlist[i]] + m->delta[m->tlist[i]];
        if (v > peak)
            peak = v;
    }
    for (int i = 0; i < D; i++)
        if (m->touched[m->gorder[i]] != m->stamp) {
            if (m->load[m->gorder[i]] > peak)
                peak = m->load[m->gorder[i]];
            break;
        }
    return peak;
}

/* peak_after's value, bit for bit, without walking a's and b's replicas,
 * or some value above best once the peak is known to exceed it (the
 * caller then drops the candidate, as it would drop peak_after's value).
 * The peak is a maximum, so it can be taken over parts in any order:
 * - GPUs holding b but not a (nor p's GPU gp): load plus b's delta, the
 *   first such entry of b_list is their maximum;
 * - GPUs holding a but not b: likewise from a_list;
 * - GPUs holding both: a's delta then b's, summed here; b's delta is <= 0,
 *   so such a GPU is at most its a_list value, and only those listed
 *   before a_list's first GPU without b can matter;
 * - the GPUs holding neither: the first GPU in gorder other than gp not
 *   holding b (free2).  If that one holds a, its load is at most its
 *   a_list value and above every GPU that holds neither, so taking it
 *   changes nothing;
 * - gp itself, summed as peak_after sums it.
 * With p on gp, a and b's replicas on gp in gcnt.  Without ties (tie_ok
 * 0: the caller takes the candidate only below best), a peak equal to
 * best is enough to stop.  Most candidates stop early there: a step's best
 * is often the second busiest GPU's load, which many candidates reach. */
static double peak_fast(mig_ws_t *m, int D, int gp, int a, int b, double best, int tie_ok)
{
#define LOST(x) ((x) > best || (!tie_ok && (x) == best))
    const unsigned char *ona = m->on_gpu + (size_t)a * D, *onb = m->on_gpu + (size_t)b * D;
    double peak = 0;
    int u = m->free2[2 * b] == gp ? m->free2[2 * b + 1] : m->free2[2 * b];
    if (u >= 0 && m->load[u] > peak)
        peak = m->load[u];
    if (LOST(peak))
        return peak;
    sort_list(m, b, 0);
    for (int k = m->hold_off[b]; k < m->hold_end[b]; k++) {
        if (k == m->hold_off[b] + 2)
            sort_rest(m, b, 0);
        const mig_hold_t *h = &m->b_list[k];
        if (h->v <= peak)
            break; /* the rest are no higher */
        if (h->g == gp || ona[h->g])
            continue;
        peak = h->v;
        break;
    }
    if (LOST(peak))
        return peak;
    double ra = m->share[a], ra1 = m->lose[a];
    double rb = m->share[b], rb1 = m->gain[b];
    sort_list(m, a, 1);
    for (int k = m->hold_off[a]; k < m->hold_end[a]; k++) {
        if (k == m->hold_off[a] + 2)
            sort_rest(m, a, 1);
        const mig_hold_t *h = &m->a_list[k];
        if (h->v <= peak)
            break;
        if (h->g == gp)
            continue;
        if (!onb[h->g]) {
            peak = h->v;
            break;
        }
        double d = 0;
        for (int i = 0; i < h->n; i++)
            d += ra1 - ra;
        for (int i = 0, n = replicas_on(m, b, h->g); i < n; i++)
            d += rb1 - rb;
        double v = m->load[h->g] + d;
        if (v > peak)
            peak = v;
        if (LOST(peak))
            return peak;
    }
    if (LOST(peak))
        return peak;
    double d = 0;
    d += rb1 - ra;
    for (int i = 0; i < m->gcnt[a] - 1; i++)
        d += ra1 - ra;
    for (int i = 0; i < m->gcnt[b]; i++)
        d += rb1 - rb;
    double v = m->load[gp] + d;
    return v > peak ? v : peak;
#undef LOST
}

/* gcnt: from the counts of GPU from's experts to GPU to's (-1: none, so
 * all zero) */
static void count_gpu(mig_ws_t *m, const int32_t *row, int per, int from, int to)
{
    if (from >= 0)
        for (int q = from * per; q < (from + 1) * per; q++)
            m->gcnt[row[q]] = 0;
    if (to >= 0)
        for (int q = to * per; q < (to + 1) * per; q++)
            m->gcnt[row[q]]++;
}

/* Of the experts b = set[i] (i < n) that a slot on GPU gp tries as the
 * arriving one, the indexes i of those that may still win there, in order:
 * into live1 for slots whose change would make moves + 1 moves in all,
 * into live0 for moves (*n1, *n0 of them).  The scan takes a candidate only
 * if (peak, moves) is below (best, bmoves) in that order (bmoves past any
 * count while there is none, bp < 0), and that pair only decreases during
 * a scan; the peak is at least the load of the first GPU in gorder other
 * than gp without b (peak_fast), so a b rejected here stays rejected for
 * all of gp's slots.  Most are: the best peak is usually the second
 * busiest GPU's load, and reaching it again wins only by fewer moves. */
static void live_arrivals(mig_ws_t *m, const int *set, int n, int gp, int moves, double best,
                          int bp, int bmoves, int *n1, int *n0)
{
    int tie1 = bp >= 0 && moves + 1 < bmoves, tie0 = bp >= 0 && moves < bmoves;
    int k1 = 0, k0 = 0;
    for (int i = 0; i < n; i++) {
        int b = set[i];
        int u = m->free2[2 * b] == gp ? m->free2[2 * b + 1] : m->free2[2 * b];
        double lb = u >= 0 ? m->load[u] : 0;
        if (lb > best)
            continue;
        if (lb < best || tie1)
            m->live1[k1++] = i;
        if (lb < best || tie0)
            m->live0[k0++] = i;
    }
    *n1 = k1;
    *n0 = k0;
}

/* live (in order) with j (-1: none) merged in */
static int merge_index(int *out, const int *live, int n, int j)
{
    int k = 0, o = 0;
    for (; k < n && live[k] < j; k++)
        out[o++] = live[k];
    if (j >= 0 && !(k < n && live[k] == j))
        out[o++] = j;
    for (; k < n; k++)
        out[o++] = live[k];
    return o;
}

static void migrate_layer(mig_ws_t *m, int32_t *row, const int32_t *old, const float *w, int E,
                          int P, int D, int max_moves)
{
    int per = P / D, moves = 0;
    /* at most P slots can differ: a larger limit is no limit on moves, and
     * clamping it keeps the iteration bound below inside int64 whatever
     * the caller asks (INT_MAX included) */
    if (max_moves > P)
        max_moves = P;
    /* steps that only reshuffle already moved slots could go on; a few per
     * allowed move are enough */
    int64_t limit = max_moves < 0 ? 2 * (int64_t)P : 4 * (int64_t)max_moves + 8;
    for (int64_t it = 0; it < limit; it++) {
        eplb_pol_gpu_load(m->load, row, w, E, P, D, m->cnt);
        order_gpus(m, D);
        int gmax = m->gorder[0];
        double peak = m->load[gmax];
        if (peak <= 0)
            return;
        for (int e = 0; e < E; e++)
            m->onmax[e] = 0;
        list_holders(m, row, E, P, per, D);
        for (int q = gmax * per; q < (gmax + 1) * per; q++)
            m->onmax[row[q]]++;
        /* every expert keeps a replica (eplb_placement_check, and a
         * leaving one keeps one), so only lose needs a guard */
        for (int e = 0; e < E; e++) {
            m->share[e] = (double)w[e] / m->cnt[e];
            m->lose[e] = m->cnt[e] >= 2 ? (double)w[e] / (m->cnt[e] - 1) : 0;
            m->gain[e] = (double)w[e] / (m->cnt[e] + 1);
            m->own0[e] = peak - m->onmax[e] * (m->share[e] - m->gain[e]);
        }
        if (m->on_gpu) {
            m->step++; /* the sorted lists are stale */
            find_free2(m, E, D);
        }
        double best = peak * (1 - 1e-12), bsec = 0;
        int bp = -1, bb = -1, bmoves = 0;
        /* experts on the busiest GPU, each once (the only useful b for a
         * slot elsewhere) */
        int nmx = 0;
        for (int q = gmax * per; q < (gmax + 1) * per; q++)
            if (m->onmax[row[q]] > 0) {
                m->mx[nmx++] = row[q];
                m->onmax[row[q]] = -m->onmax[row[q]]; /* mark listed */
            }
        for (int i = 0; i < nmx; i++) {
            m->onmax[m->mx[i]] = -m->onmax[m->mx[i]];
            m->mxpos[m->mx[i]] = i;
        }
        int gcur = -1, nlive1 = 0, nlive0 = 0;
        for (int p = 0; p < P; p++) {
            int a = row[p], gp = p / per, on_max = gp == gmax;
            if (m->cnt[a] < 2)
                continue;
            /* a slot on the busiest GPU tries every expert as b, one
             * elsewhere those on the busiest GPU (set[i], i < nset) */
            const int *set = on_max ? m->ident : m->mx;
            int nset = on_max ? E : nmx;
            if (gp != gcur) {
                count_gpu(m, row, per, gcur, gp);
                gcur = gp;
                if (m->on_gpu)
                    live_arrivals(m, set, nset, gp, moves, best, bp, bmoves, &nlive1, &nlive0);
            }
            /* of those, the ones live_arrivals kept: an unmoved slot
             * (a == old[p] != b) gives moves + 1 for all b, a moved one
             * moves, or moves - 1 with b == old[p] */
            const int *cand = m->ident;
            int nb = nset;
            if (m->on_gpu) {
                if (row[p] == old[p]) {
                    cand = m->live1;
                    nb = nlive1;
                } else {
                    cand = m->cand;
                    nb = merge_index(m->cand, m->live0, nlive0,
                                     on_max ? old[p] : m->mxpos[old[p]]);
                }
            }
            /* a's heaviest holder other than gp once a loses a replica
             * (gs, vs): the peak is at least vs for every b not on gs,
             * and for most candidates that already loses (peak_fast's
             * walk over a's holders, done once per slot here) */
            int gs = -1;
            double vs = 0;
            if (m->on_gpu && nb > 0) {
                sort_list(m, a, 1);
                const mig_hold_t *h = m->a_list + m->hold_off[a];
                int n = m->hold_end[a] - m->hold_off[a];
                int k = n > 0 && h[0].g == gp; /* the top two are in order */
                if (k < n && k < 2) {
                    gs = h[k].g;
                    vs = h[k].v;
                }
            }
            for (int bi = 0; bi < nb; bi++) {
                int b = set[cand[bi]];
                if (b == a)
                    continue;
                int nm = moves - (row[p] != old[p]) + (b != old[p]);
                if (max_moves >= 0 && nm > max_moves)
                    continue;
                /* cheap bound first: the busiest GPU's own new load (a's other
                 * replicas only get heavier, so they are left out) */
                double own = m->own0[b];
                if (on_max)
                    own += m->gain[b] - m->share[a];
                if (own > best)
                    continue;
                /* equal to best, it wins only by fewer moves */
                int tie_ok = bp >= 0 && nm < bmoves;
                if (gs >= 0 && (vs > best || (vs == best && !tie_ok)) &&
                    !m->on_gpu[(size_t)b * D + gs])
                    continue;
                double pk = m->on_gpu ? peak_fast(m, D, gp, a, b, best, tie_ok)
                                      : peak_after(m, D, per, p, a, b);
                if (pk < best || (pk == best && tie_ok)) {
                    best = pk;
                    bsec = pk;
                    bp = p;
                    bb = b;
                    bmoves = nm;
                }
            }
        }
        if (gcur >= 0)
            count_gpu(m, row, per, gcur, -1); /* all zero for the next step */
        for (int i = 0; i < nmx; i++)
            m->mxpos[m->mx[i]] = -1;
        /* Swaps: slot p on the busiest GPU and slot q elsewhere exchange
         * experts.  Replica counts stay, so only the two GPUs change: the
         * only moves possible when every expert has one replica (P == E). */
        int sp = -1, sq = -1;
        for (int h = 0; h < D; h++) {
            double lo = m->share[row[h * per]], hi = lo;
            for (int q = h * per + 1; q < (h + 1) * per; q++) {
                double r = m->share[row[q]];
                lo = r < lo ? r : lo;
                hi = r > hi ? r : hi;
            }
            m->rmin[h] = lo;
            m->rmax[h] = hi;
        }
        for (int p = gmax * per; p < (gmax + 1) * per; p++) {
            int a = row[p];
            double ra = m->share[a];
            /* q in slot order, by GPU (no division per slot) */
            for (int h = 0; h < D; h++) {
                if (h == gmax)
                    continue;
                /* Bounds for all of h's slots: rounding is monotone, so lg
                 * and lh below are at least these; the GPU's slots can be
                 * skipped where each of them would be.  (best, bsec) only
                 * decrease, in that order, so no later step of the scan
                 * could take one either. */
                double lb = peak - ra + m->rmin[h], lbh = m->load[h] - m->rmax[h] + ra;
                lb = lbh > lb ? lbh : lb;
                if (lb > best)
                    continue;
                int oth = m->gorder[1] == h ? (D > 2 ? m->gorder[2] : -1) : m->gorder[1];
                if (oth >= 0 && m->load[oth] >= best &&
                    (m->load[oth] > best || !(bp >= 0 || sp >= 0) || lb > bsec))
                    continue;
                for (int q = h * per; q < (h + 1) * per; q++) {
                    int y = row[q];
                    if (y == a)
                        continue;
                    double ry = m->share[y];
                    double lg = peak - ra + ry, lh = m->load[h] - ry + ra;
                    double pk = lg > lh ? lg : lh;
                    if (pk > best)
                        continue;
                    int other = m->gorder[1] == h ? (D > 2 ? m->gorder[2] : -1) : m->gorder[1];
                    if (other >= 0 && m->load[other] > pk)
                        pk = m->load[other];
                    /* equal peaks: prefer the swap that leaves the two GPUs
                     * lower (room for the next step), then fewer moves */
                    double sec = lg > lh ? lg : lh;
                    if (!(pk < best || (pk == best && (bp >= 0 || sp >= 0) && sec <= bsec)))
                        continue;
                    int nm = moves - (row[p] != old[p]) - (row[q] != old[q]) + (y != old[p]) +
                             (a != old[q]);
                    if (max_moves >= 0 && nm > max_moves)
                        continue;
                    if (pk < best || sec < bsec || nm < bmoves) {
                        best = pk;
                        bsec = sec;
                        sp = p;
                        sq = q;
                        bp = -1;
                        bmoves = nm;
                    }
                }
            }
        }
        if (sp >= 0) {
            int32_t t = row[sp];
            row[sp] = row[sq];
            row[sq] = t;
            moves = bmoves;
            continue;
        }
        if (bp < 0)
            return;
        row[bp] = bb;
        moves = bmoves;
    }
}

eplb_status_t eplb_policy_migration(int32_t *phy2log, int32_t *phyrank, const float *weights,
                                    int L, int E, const eplb_policy_args_t *args)
{
    EPLB_CHECK(eplb_policy_args_check(args, L, E, weights));
    eplb_status_t st = EPLB_OK;
    int P = args->num_replicas, D = args->num_gpus;
    mig_ws_t m;
    memset(&m, 0, sizeof m);
    int32_t *buf = malloc((size_t)P * sizeof *buf);
    m.cnt = malloc((size_t)E * sizeof *m.cnt);
    m.hold_off = calloc((size_t)E + 1, sizeof *m.hold_off);
    m.hold_end = calloc((size_t)E, sizeof *m.hold_end);
    if (args->max_moves != 0 && (size_t)E * D <= (size_t)1 << 24) /* (else no pruning) */
        m.on_gpu = calloc((size_t)E * D, sizeof *m.on_gpu);
    m.hold_g = malloc((size_t)P * sizeof *m.hold_g);
    m.hold_n = malloc((size_t)P * sizeof *m.hold_n);
    m.onmax = malloc((size_t)E * sizeof *m.onmax);
    m.mx = malloc((size_t)P * sizeof *m.mx);
    m.gorder = malloc((size_t)D * sizeof *m.gorder);
    m.touched = calloc((size_t)D, sizeof *m.touched);
    m.tlist = malloc((size_t)D * sizeof *m.tlist);
    m.load = malloc((size_t)D * sizeof *m.load);
    m.delta = malloc((size_t)D * sizeof *m.delta);
    m.share = malloc((size_t)E * sizeof *m.share);
    m.lose = malloc((size_t)E * sizeof *m.lose);
    m.gain = malloc((size_t)E * sizeof *m.gain);
    m.own0 = malloc((size_t)E * sizeof *m.own0);
    m.gcnt = calloc((size_t)E, sizeof *m.gcnt);
    int nid = (P / D > E ? P / D : E) + 1;
    m.live1 = malloc((size_t)nid * sizeof *m.live1);
    m.live0 = malloc((size_t)nid * sizeof *m.live0);
    m.cand = malloc((size_t)nid * sizeof *m.cand);
    m.ident = malloc((size_t)nid * sizeof *m.ident);
    m.mxpos = malloc((size_t)E * sizeof *m.mxpos);
    m.rmin = malloc((size_t)D * sizeof *m.rmin);
    m.rmax = malloc((size_t)D * sizeof *m.rmax);
    if (m.on_gpu) { /* without it, not used */
        m.a_list = malloc((size_t)P * sizeof *m.a_list);
        m.b_list = malloc((size_t)P * sizeof *m.b_list);
        m.free2 = malloc((size_t)2 * E * sizeof *m.free2);
        m.a_ready = calloc((size_t)E, sizeof *m.a_ready);
        m.b_ready = calloc((size_t)E, sizeof *m.b_ready);
        m.a_full = calloc((size_t)E, sizeof *m.a_full);
        m.b_full = calloc((size_t)E, sizeof *m.b_full);
        if (!m.a_list || !m.b_list || !m.free2 || !m.a_ready || !m.b_ready || !m.a_full ||
            !m.b_full) {
            /* the slow walk instead */
            free(m.on_gpu);
            m.on_gpu = NULL;
        }
    }
    EPLB_ALLOC_GOTO(buf, st, out);
    EPLB_ALLOC_GOTO(m.cnt, st, out);
    EPLB_ALLOC_GOTO(m.hold_off, st, out);
    EPLB_ALLOC_GOTO(m.hold_end, st, out);
    EPLB_ALLOC_GOTO(m.hold_g, st, out);
    EPLB_ALLOC_GOTO(m.hold_n, st, out);
    EPLB_ALLOC_GOTO(m.onmax, st, out);
    EPLB_ALLOC_GOTO(m.mx, st, out);
    EPLB_ALLOC_GOTO(m.gorder, st, out);
    EPLB_ALLOC_GOTO(m.touched, st, out);
    EPLB_ALLOC_GOTO(m.tlist, st, out);
    EPLB_ALLOC_GOTO(m.load, st, out);
    EPLB_ALLOC_GOTO(m.delta, st, out);
    EPLB_ALLOC_GOTO(m.share, st, out);
    EPLB_ALLOC_GOTO(m.lose, st, out);
    EPLB_ALLOC_GOTO(m.gain, st, out);
    EPLB_ALLOC_GOTO(m.own0, st, out);
    EPLB_ALLOC_GOTO(m.gcnt, st, out);
    EPLB_ALLOC_GOTO(m.live1, st, out);
    EPLB_ALLOC_GOTO(m.live0, st, out);
    EPLB_ALLOC_GOTO(m.cand, st, out);
    EPLB_ALLOC_GOTO(m.ident, st, out);
    EPLB_ALLOC_GOTO(m.mxpos, st, out);
    EPLB_ALLOC_GOTO(m.rmin, st, out);
    EPLB_ALLOC_GOTO(m.rmax, st, out);
    for (int i = 0; i < nid; i++)
        m.ident[i] = i;
    for (int e = 0; e < E; e++)
        m.mxpos[e] = -1;
    for (int g = 0; g < D; g++)
        m.gorder[g] = g; /* any order: order_gpus sorts it */
    for (int l = 0; l < L; l++) {
        const int32_t *old = eplb_pol_old_row(args, l, E, P, buf);
        int32_t *row = phy2log + (size_t)l * P;
        memcpy(row, old, (size_t)P * sizeof *row);
        if (args->max_moves != 0) {
            migrate_layer(&m, row, old, weights + (size_t)l * E, E, P, D, args->max_moves);
            clear_on_gpu(&m, E, D); /* zero again for the next layer */
        }
        if (phyrank)
            eplb_pol_rank_by_slot(phyrank + (size_t)l * P, row, E, P, m.cnt);
        if (args->progress)
            args->progress(args->progress_ctx, l + 1, L);
    }
out:
    free(buf);
    free(m.cnt);
    free(m.hold_off);
    free(m.hold_end);
    free(m.on_gpu);
    free(m.hold_g);
    free(m.hold_n);
    free(m.onmax);
    free(m.mx);
    free(m.gorder);
    free(m.touched);
    free(m.tlist);
    free(m.load);
    free(m.delta);
    free(m.share);
    free(m.lose);
    free(m.gain);
    free(m.own0);
    free(m.gcnt);
    free(m.live1);
    free(m.live0);
    free(m.cand);
    free(m.ident);
    free(m.mxpos);
    free(m.rmin);
    free(m.rmax);
    free(m.a_list);
    free(m.b_list);
    free(m.free2);
    free(m.a_ready);
    free(m.b_ready);
    free(m.a_full);
    free(m.b_full);
    return st;
}
