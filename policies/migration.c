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
 * other holder without b) skip those that cannot beat the best found, so
 * the choice is the one that evaluating every candidate would make.
 * The peak never rises, so the result is never worse than `none`. */
#include "policy_impl.h"

#include <stdlib.h>
#include <string.h>

#include "checks.h"

typedef struct {
    int *cnt;      /* [E] replicas */
    /* the GPUs holding each expert, in slot order, with their replicas:
     * expert e's are hold_g/hold_n[hold_off[e] .. hold_end[e]) */
    int *hold_off; /* [E + 1] */
    int *hold_end; /* [E] */
    int *hold_g;   /* [P] */
    int *hold_n;   /* [P] */
    /* 1 where GPU g holds expert e, at [e * D + g] (NULL past 2^24
     * entries, with max_moves 0, or if it cannot be allocated: no pruning
     * by a's holders), kept in step with the holders' lists */
    unsigned char *on_gpu;
    int *onmax;    /* [E] replicas of e on the busiest GPU */
    int *mx;       /* [P] distinct experts on the busiest GPU */
    int *gorder;   /* [D] GPUs by load, descending */
    int *touched;  /* [D] stamp */
    int *tlist;    /* [D] touched GPUs */
    double *load;  /* [D] */
    double *delta; /* [D] */
    int stamp;
} mig_ws_t;

/* gorder: GPUs by load, descending, lower index first among equals. */
static void order_gpus(mig_ws_t *m, int D)
{
    for (int i = 0; i < D; i++) {
        int g = m->gorder[i] = i, j = i - 1;
        while (j >= 0 && m->load[m->gorder[j]] < m->load[g]) {
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
    for (int q = 0; q < P; q++) {
        int e = row[q], g = q / per, k = m->hold_end[e];
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

/* Up to 3 of a's holders other than GPU gp with the largest loads once a
 * loses a replica elsewhere (a's replicas there take a's share from one
 * replica fewer), by value descending: v[i] computed as peak_after
 * computes that GPU's load (delta from 0, one add per replica, then the
 * load), so bit for bit what it would see there unless b is there too. */
static int top_holders(const mig_ws_t *m, const float *w, int a, int gp, double *v, int *g)
{
    double ra = (double)w[a] / m->cnt[a], ra1 = (double)w[a] / (m->cnt[a] - 1);
    int n = 0;
    for (int k = m->hold_off[a]; k < m->hold_end[a]; k++) {
        int h = m->hold_g[k];
        if (h == gp)
            continue;
        double d = 0;
        for (int i = 0; i < m->hold_n[k]; i++)
            d += ra1 - ra;
        double x = m->load[h] + d;
        int j = n < 3 ? n++ : 3;
        while (j > 0 && v[j - 1] < x) {
            if (j < 3) {
                v[j] = v[j - 1];
                g[j] = g[j - 1];
            }
            j--;
        }
        if (j < 3) {
            v[j] = x;
            g[j] = h;
        }
    }
    return n;
}

/* Peak GPU load after slot p changes from a to b.  The deltas are summed
 * in the order of a walk over the replicas in slot order (first p's GPU,
 * then a's other replicas, then b's), one add per replica, so the result
 * is the same to the last bit as that walk's (the holders' counts only
 * spare the walk over the slots), and top_holders' bound is exact.  This
 * holds with doubles of 64 bits throughout (SSE2, AArch64), not with x87's
 * 80-bit registers. */
static double peak_after(mig_ws_t *m, const float *w, int D, int per, int p, int a, int b)
{
    int nt = 0;
    m->stamp++;
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
    double ra = (double)w[a] / m->cnt[a], ra1 = (double)w[a] / (m->cnt[a] - 1);
    double rb = (double)w[b] / m->cnt[b], rb1 = (double)w[b] / (m->cnt[b] + 1);
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
        for (int i = 0; i < nmx; i++)
            m->onmax[m->mx[i]] = -m->onmax[m->mx[i]];
        for (int p = 0; p < P; p++) {
            int a = row[p], on_max = p / per == gmax;
            if (m->cnt[a] < 2)
                continue;
            int nb = on_max ? E : nmx;
            /* a's heaviest other holders (top_holders), found at the first b
             * that passes the cheap bound: the new peak is at least the load
             * of one of them that holds no b, so past best the candidate is
             * skipped without a walk (on skewed loads most of them,
             * docs/perf/policy.md) */
            double tv[3];
            int tg[3], nt = -1;
            for (int bi = 0; bi < nb; bi++) {
                int b = on_max ? bi : m->mx[bi];
                if (b == a)
                    continue;
                int nm = moves - (row[p] != old[p]) + (b != old[p]);
                if (max_moves >= 0 && nm > max_moves)
                    continue;
                /* cheap bound first: the busiest GPU's own new load (a's other
                 * replicas only get heavier, so they are left out) */
                double rb = (double)w[b] / m->cnt[b], rb1 = (double)w[b] / (m->cnt[b] + 1);
                double own = peak - m->onmax[b] * (rb - rb1);
                if (on_max)
                    own += rb1 - (double)w[a] / m->cnt[a];
                if (own > best)
                    continue;
                if (m->on_gpu) {
                    if (nt < 0)
                        nt = top_holders(m, w, a, p / per, tv, tg);
                    int i = 0;
                    while (i < nt && m->on_gpu[(size_t)b * D + tg[i]])
                        i++;
                    if (i < nt && tv[i] > best)
                        continue;
                }
                double pk = peak_after(m, w, D, per, p, a, b);
                if (pk < best || (pk == best && bp >= 0 && nm < bmoves)) {
                    best = pk;
                    bsec = pk;
                    bp = p;
                    bb = b;
                    bmoves = nm;
                }
            }
        }
        /* Swaps: slot p on the busiest GPU and slot q elsewhere exchange
         * experts.  Replica counts stay, so only the two GPUs change: the
         * only moves possible when every expert has one replica (P == E). */
        int sp = -1, sq = -1;
        for (int p = gmax * per; p < (gmax + 1) * per; p++) {
            int a = row[p];
            double ra = (double)w[a] / m->cnt[a];
            for (int q = 0; q < P; q++) {
                int h = q / per, y = row[q];
                if (h == gmax || y == a)
                    continue;
                double ry = (double)w[y] / m->cnt[y];
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
    return st;
}
