/* common.c - building blocks of the policies: stable sort, torch-order
 * float sums, DeepSeek packing and replication, loads, ranks. */
#include "policy_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"

/* Order-preserving integer image of a float (-0 counts as +0, as in float
 * comparisons), then the index, inverted, below it: keys are unique, and
 * sorting them descending sorts by value descending, lower index first
 * among equal values, which is the stable descending order. */
static inline uint64_t sort_key(float v, int i)
{
    uint32_t b;
    v += 0.0f;
    memcpy(&b, &v, sizeof b);
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return (uint64_t)b << 32 | (uint32_t)~(uint32_t)i;
}

static void sort_u64_desc(uint64_t *a, uint64_t *tmp, int n)
{
    if (n <= 24) {
        for (int i = 1; i < n; i++) {
            uint64_t v = a[i];
            int j = i - 1;
            while (j >= 0 && a[j] < v) {
                a[j + 1] = a[j];
                j--;
            }
            a[j + 1] = v;
        }
        return;
    }
    int h = n / 2;
    sort_u64_desc(a, tmp, h);
    sort_u64_desc(a + h, tmp, n - h);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) {
        uint64_t x = a[i], y = a[j];
        int takey = y > x;
        tmp[k++] = takey ? y : x;
        j += takey;
        i += !takey;
    }
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, (size_t)n * sizeof *a);
}

void eplb_pol_argsort_desc(int *idx, const float *key, int n, int *scratch)
{
    uint64_t stack[2 * 512], *buf = stack, *heap = NULL;
    if (n > 512) {
        buf = heap = malloc(2 * (size_t)n * sizeof *heap);
        if (!heap) { /* fall back to a slow stable insertion sort */
            (void)scratch;
            for (int i = 0; i < n; i++) {
                int v = i, j = i - 1;
                while (j >= 0 && key[idx[j]] < key[v]) {
                    idx[j + 1] = idx[j];
                    j--;
                }
                idx[j + 1] = v;
            }
            return;
        }
    }
    (void)scratch;
    for (int i = 0; i < n; i++)
        buf[i] = sort_key(key[i], i);
    sort_u64_desc(buf, buf + n, n);
    for (int i = 0; i < n; i++)
        idx[i] = (int)~(uint32_t)buf[i];
    free(heap);
}

/* PyTorch's CPU sum (aten/src/ATen/native/cpu/SumKernel.cpp, cascade_sum)
 * reduces a contiguous float row as follows: rows of at least one vector
 * (8 floats with AVX2) are summed per vector lane, each lane with four
 * interleaved accumulators (row_sum, ilp_factor 4) and a multi-level cascade
 * every 16 rows (multi_row_sum, level_power 4 for short rows); the scalar
 * tail is summed first, then the lanes are added in order.  Shorter rows use
 * the same row_sum on scalars.  Reproducing the order makes group sums, and
 * so the group order, identical to the reference for non-integer loads. */
enum { TORCH_VEC = 8, TORCH_ILP = 4, TORCH_LEVELS = 4, TORCH_LEVEL_POWER = 4 };

/* row_sum over seq[i*stride], i < size, with ilp 4 and the level cascade */
static float torch_row_sum(const float *x, int stride, int size)
{
    float acc[TORCH_LEVELS][TORCH_ILP];
    memset(acc, 0, sizeof acc);
    int size_ilp = size / TORCH_ILP;
    const int step = 1 << TORCH_LEVEL_POWER, mask = step - 1;
    int i = 0;
    while (i + step <= size_ilp) {
        for (int j = 0; j < step; j++, i++)
            for (int k = 0; k < TORCH_ILP; k++)
                acc[0][k] += x[(i * TORCH_ILP + k) * stride];
        for (int j = 1; j < TORCH_LEVELS; j++) {
            for (int k = 0; k < TORCH_ILP; k++) {
                acc[j][k] += acc[j - 1][k];
                acc[j - 1][k] = 0;
            }
            if ((i & (mask << (j * TORCH_LEVEL_POWER))) != 0)
                break;
        }
    }
    for (; i < size_ilp; i++)
        for (int k = 0; k < TORCH_ILP; k++)
            acc[0][k] += x[(i * TORCH_ILP + k) * stride];
    for (int j = 1; j < TORCH_LEVELS; j++)
        for (int k = 0; k < TORCH_ILP; k++)
            acc[0][k] += acc[j][k];
    float p0 = acc[0][0];
    for (int t = size_ilp * TORCH_ILP; t < size; t++)
        p0 += x[t * stride];
    for (int k = 1; k < TORCH_ILP; k++)
        p0 += acc[0][k];
    return p0;
}

float eplb_pol_sum_f32(const float *x, int n)
{
    if (n < TORCH_VEC)
        return torch_row_sum(x, 1, n);
    int vec_size = n / TORCH_VEC;
    float total = 0;
    for (int t = vec_size * TORCH_VEC; t < n; t++)
        total += x[t];
    for (int lane = 0; lane < TORCH_VEC; lane++)
        total += torch_row_sum(x + lane, TORCH_VEC, vec_size);
    return total;
}

/* Index of the first minimum of v[0..n).  For 8 values (8 GPUs a node, the
 * common shape) a tournament: the right side wins only when strictly
 * smaller, so ties still go to the lower index, with a dependency chain of 3
 * compares instead of 7. */
static inline int first_min(const float *v, int n, float *val)
{
    if (n == 8) {
        /* carry the values along so no load depends on a comparison */
        float v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3];
        float v4 = v[4], v5 = v[5], v6 = v[6], v7 = v[7];
        int i01 = v1 < v0, i23 = 2 + (v3 < v2), i45 = 4 + (v5 < v4), i67 = 6 + (v7 < v6);
        float m01 = v1 < v0 ? v1 : v0, m23 = v3 < v2 ? v3 : v2;
        float m45 = v5 < v4 ? v5 : v4, m67 = v7 < v6 ? v7 : v6;
        int ia = m23 < m01 ? i23 : i01, ib = m67 < m45 ? i67 : i45;
        float ma = m23 < m01 ? m23 : m01, mb = m67 < m45 ? m67 : m45;
        *val = mb < ma ? mb : ma;
        return mb < ma ? ib : ia;
    }
    int best = 0;
    float bv = v[0];
    for (int p = 1; p < n; p++) { /* branch-free: loads are random */
        int lt = v[p] < bv;
        bv = lt ? v[p] : bv;
        best = lt ? p : best;
    }
    *val = bv;
    return best;
}

/* balanced_packing's loop for 8 packs (8 GPUs a node, the common shape),
 * with the 8 effective loads (+inf when full) in registers: the choice is a
 * 3-level tournament in which the right side wins only when strictly smaller
 * (so ties go to the lower index), and nothing round-trips through memory.
 * Returns 0 when a sum overflows to +inf; the general loop then redoes the
 * packing with the exact rule. */
static int pack8(int *pack, int *rank, const float *w, const int *order, int n, int per)
{
    float v0 = 0, v1 = 0, v2 = 0, v3 = 0, v4 = 0, v5 = 0, v6 = 0, v7 = 0;
    int c[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int t = 0; t < n; t++) {
        int it = order[t];
        int i01 = v1 < v0, i23 = 2 + (v3 < v2), i45 = 4 + (v5 < v4), i67 = 6 + (v7 < v6);
        float m01 = v1 < v0 ? v1 : v0, m23 = v3 < v2 ? v3 : v2;
        float m45 = v5 < v4 ? v5 : v4, m67 = v7 < v6 ? v7 : v6;
        int ia = m23 < m01 ? i23 : i01, ib = m67 < m45 ? i67 : i45;
        float ma = m23 < m01 ? m23 : m01, mb = m67 < m45 ? m67 : m45;
        int best = mb < ma ? ib : ia;
        float bv = mb < ma ? mb : ma;
        if (bv == INFINITY)
            return 0; /* cannot happen: n items fill the packs exactly */
        float nv = bv + w[it];
        if (nv == INFINITY)
            return 0; /* a sum overflowed: +inf no longer means "full" */
        pack[it] = best;
        rank[it] = c[best];
        if (++c[best] >= per)
            nv = INFINITY;
        v0 = best == 0 ? nv : v0;
        v1 = best == 1 ? nv : v1;
        v2 = best == 2 ? nv : v2;
        v3 = best == 3 ? nv : v3;
        v4 = best == 4 ? nv : v4;
        v5 = best == 5 ? nv : v5;
        v6 = best == 6 ? nv : v6;
        v7 = best == 7 ? nv : v7;
    }
    return 1;
}

int eplb_pol_pack_start(int *pack, int *rank, const float *w, int n, int packs, int *order,
                        int *items, float *pw)
{
    if (n / packs == 1) {
        for (int i = 0; i < n; i++) {
            pack[i] = i;
            rank[i] = 0;
        }
        return 1;
    }
    eplb_pol_argsort_desc(order, w, n, items);
    for (int p = 0; p < packs; p++) {
        pw[p] = 0;
        items[p] = 0;
    }
    return 0;
}

void eplb_pol_balanced_packing(int *pack, int *rank, const float *w, int n,
                               int packs, int *scratch, float *pw)
{
    int per = n / packs;
    int *order = scratch, *items = scratch + n;
    if (eplb_pol_pack_start(pack, rank, w, n, packs, order, items, pw))
        return;
    if (packs == 8 && pack8(pack, rank, w, order, n, per))
        return;
    /* pe: pw, or +inf once the pack is full, so that the choice is a plain
     * first-minimum scan; if the sums themselves overflow to +inf the exact
     * rule is applied instead. */
    float *pe = pw + packs;
    for (int p = 0; p < packs; p++)
        pe[p] = 0;
    for (int t = 0; t < n; t++) {
        float bv;
        int it = order[t], best = first_min(pe, packs, &bv);
        if (items[best] >= per) {
            best = -1;
            for (int p = 0; p < packs; p++)
                if (items[p] < per && (best < 0 || pw[p] < pw[best]))
                    best = p;
            bv = pw[best];
        }
        /* bv is pw[best]: the sum comes from the register, not memory */
        float nw = bv + w[it];
        pack[it] = best;
        rank[it] = items[best];
        pw[best] = nw;
        items[best]++;
        pe[best] = items[best] < per ? nw : INFINITY;
    }
}

/* heap order: larger ratio first, lower index first among equals (the
 * reference's first maximal index) */
static inline int rep_before(const float *r, int a, int b)
{
    return r[a] > r[b] || (r[a] == r[b] && a < b);
}

static void rep_sift(int *heap, int n, int i, const float *r)
{
    int v = heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && rep_before(r, heap[c + 1], heap[c]))
            c++;
        if (!rep_before(r, heap[c], v))
            break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = v;
}

void eplb_pol_replicate(int *phy2log, int *rank, int *cnt, const float *w,
                        int n, int m, int cap, float *ratio, int *heap)
{
    for (int i = 0; i < n; i++) {
        phy2log[i] = i;
        rank[i] = 0;
        cnt[i] = 1;
        ratio[i] = w[i];
    }
    if (m == n)
        return;
    if (cap <= 0 && m - n >= 16) {
        /* many extra slots: a max-heap gives the same choice as scanning for
         * the first maximum, in log time (a few: the scan below is cheaper
         * than building the heap) */
        for (int i = 0; i < n; i++)
            heap[i] = i;
        for (int i = n / 2 - 1; i >= 0; i--)
            rep_sift(heap, n, i, ratio);
        for (int i = n; i < m; i++) {
            int best = heap[0];
            phy2log[i] = best;
            rank[i] = cnt[best];
            cnt[best]++;
            ratio[best] = w[best] / (float)cnt[best];
            rep_sift(heap, n, 0, ratio);
        }
        return;
    }
    for (int i = n; i < m; i++) {
        int best = -1;
        for (int j = 0; j < n; j++) {
            if (cnt[j] >= cap)
                continue;
            if (best < 0 || ratio[j] > ratio[best])
                best = j;
        }
        if (best < 0) { /* every expert at the cap: the cap cannot hold */
            best = 0;
            for (int j = 1; j < n; j++)
                if (ratio[j] > ratio[best])
                    best = j;
        }
        phy2log[i] = best;
        rank[i] = cnt[best];
        cnt[best]++;
        ratio[best] = w[best] / (float)cnt[best];
    }
}

void eplb_pol_rank_by_slot(int32_t *phyrank, const int32_t *phy2log, int E,
                           int P, int *cnt)
{
    memset(cnt, 0, (size_t)E * sizeof *cnt);
    for (int p = 0; p < P; p++)
        phyrank[p] = cnt[phy2log[p]]++;
}

void eplb_pol_gpu_load(double *load, const int32_t *phy2log, const float *w,
                       int E, int P, int D, int *cnt)
{
    memset(cnt, 0, (size_t)E * sizeof *cnt);
    for (int p = 0; p < P; p++)
        if ((unsigned)phy2log[p] < (unsigned)E) /* invalid slots carry nothing */
            cnt[phy2log[p]]++;
    int per = P / D;
    for (int g = 0; g < D; g++) {
        double s = 0;
        for (int p = g * per; p < (g + 1) * per; p++)
            if ((unsigned)phy2log[p] < (unsigned)E)
                s += (double)w[phy2log[p]] / cnt[phy2log[p]];
        load[g] = s;
    }
}

double eplb_pol_max(const double *x, int n)
{
    double m = n > 0 ? x[0] : 0;
    for (int i = 1; i < n; i++)
        if (x[i] > m)
            m = x[i];
    return m;
}

const int32_t *eplb_pol_old_row(const eplb_policy_args_t *args, int l, int E,
                                int P, int32_t *buf)
{
    if (args->old_phy2log)
        return args->old_phy2log + (size_t)l * P;
    eplb_placement_default(buf, 1, E, P);
    return buf;
}

/* Workspace layout (ints): see eplb_pol_hier_layer. */
static size_t ws_ints(int E, int P, int G)
{
    int m = E > P ? E : P;
    if (G > m)
        m = G;
    return (size_t)4 * E + 2 * (size_t)G + 3 * (size_t)m + 6 * (size_t)P + 16;
}

eplb_status_t eplb_pol_ws_alloc(eplb_pol_ws_t *ws, int E, int P, int G, int D)
{
    eplb_status_t st = EPLB_OK;
    eplb_pol_ws_t w = {NULL, NULL, NULL};
    w.ints = malloc(ws_ints(E, P, G) * sizeof(int));
    EPLB_ALLOC_GOTO(w.ints, st, err);
    w.floats = malloc(((size_t)G + 2 * (size_t)E + 3 * (size_t)P + 16) * sizeof(float));
    EPLB_ALLOC_GOTO(w.floats, st, err);
    w.dbl = malloc(((size_t)D + (size_t)P + 16) * sizeof(double));
    EPLB_ALLOC_GOTO(w.dbl, st, err);
    *ws = w;
    return EPLB_OK;
err:
    eplb_pol_ws_free(&w);
    return st;
}

void eplb_pol_ws_free(eplb_pol_ws_t *ws)
{
    free(ws->ints);
    free(ws->floats);
    free(ws->dbl);
    ws->ints = NULL;
    ws->floats = NULL;
    ws->dbl = NULL;
}
