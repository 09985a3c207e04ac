/* select_cpu.c - CPU reference of replica selection and load recording.
 * The per-entry rules live in rules.h, shared with the CUDA kernels; this
 * file adds the batch-level modes (rr-block ordinals, balanced plan), the
 * token-row bookkeeping and the recording.  Threads (src/pool.h) run over
 * layers and, with fewer layers than threads, over token ranges of a layer
 * (parts): a part past the first counts into its own row, summed after; a
 * part starts from the state the tokens before it leave (rr-block: the
 * ordinals of its first block's earlier entries; balanced: the layer's
 * plan and each expert's entries in the earlier parts), so the output is
 * that of one pass in token order however the work is split. */
#include "kernels.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "pool.h"
#include "plan_flow.h"
#include "rules.h"

size_t eplb_count_stride(int L, int P)
{
    return ((size_t)(L > 0 ? L : 0) * (size_t)(P > 0 ? P : 0) + 31) & ~(size_t)31;
}

int eplb_count_stripes(int L, int P)
{
    return eplb_count_stride(L, P) * EPLB_COUNT_STRIPES_MAX <= ((size_t)1 << 22)
               ? EPLB_COUNT_STRIPES_MAX
               : 2;
}

size_t eplb_count_len(int L, int P)
{
    return (size_t)eplb_count_stripes(L, P) * eplb_count_stride(L, P);
}

void eplb_counts_fold(int32_t *out, const int32_t *striped, int L, int P)
{
    const size_t n = (size_t)(L > 0 ? L : 0) * (size_t)(P > 0 ? P : 0);
    const size_t stride = eplb_count_stride(L, P);
    const int S = eplb_count_stripes(L, P);
    for (size_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)striped[i];
        for (int s = 1; s < S; s++)
            c += (uint32_t)striped[(size_t)s * stride + i];
        out[i] = (int32_t)c;
    }
}

static const char *const mode_names[] = {"hash",  "flatmod",  "random",
                                         "local", "rr-block", "balanced"};
#define NUM_MODES ((int)(sizeof mode_names / sizeof mode_names[0]))

const char *eplb_select_mode_name(eplb_select_mode_t m)
{
    return (int)m >= 0 && (int)m < NUM_MODES ? mode_names[m] : "?";
}

eplb_status_t eplb_select_mode_parse(eplb_select_mode_t *out, const char *name)
{
    for (int i = 0; name && i < NUM_MODES; i++)
        if (strcmp(name, mode_names[i]) == 0) {
            *out = (eplb_select_mode_t)i;
            return EPLB_OK;
        }
    return eplb_error_set(EPLB_ERR_INVALID_ARG,
                          "unknown replica selection mode '%s' (expected "
                          "hash, flatmod, random, local, rr-block or "
                          "balanced)",
                          name ? name : "(null)");
}

eplb_status_t eplb_layer_map_check(const eplb_layer_map_t *m)
{
    if (!m || !m->logcnt || !m->log2phy)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "layer map: logcnt/log2phy is NULL");
    if (m->num_logical < 1 || m->num_physical < 1 || m->num_gpus < 1 ||
        m->num_nodes < 1 || m->max_replicas < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "layer map: E=%d P=%d D=%d N=%d max_replicas=%d "
                              "must all be >= 1",
                              m->num_logical, m->num_physical, m->num_gpus,
                              m->num_nodes, m->max_replicas);
    if (m->num_physical % m->num_gpus || m->num_gpus % m->num_nodes)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "layer map: P=%d must be a multiple of D=%d and "
                              "D of N=%d",
                              m->num_physical, m->num_gpus, m->num_nodes);
    for (int e = 0; e < m->num_logical; e++) {
        int c = m->logcnt[e];
        if (c < 0 || c > m->max_replicas)
            return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                  "layer map: logcnt[%d] = %d outside [0, "
                                  "max_replicas=%d]",
                                  e, c, m->max_replicas);
        const int32_t *row = m->log2phy + (size_t)e * m->max_replicas;
        for (int j = 0; j < c; j++)
            if (row[j] < 0 || row[j] >= m->num_physical)
                return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                      "layer map: log2phy[%d][%d] = %d "
                                      "outside [0, P=%d)",
                                      e, j, row[j], m->num_physical);
    }
    return EPLB_OK;
}

typedef struct {
    int64_t n;
    int e;
} load_key_t;

static int cmp_load_desc(const void *a, const void *b)
{
    const load_key_t *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return x->e - y->e;
}

eplb_status_t eplb_select_plan_balanced(int32_t *quota, int64_t *gpu_load,
                                        const int64_t *n,
                                        const eplb_layer_map_t *m)
{
    EPLB_CHECK(eplb_layer_map_check(m));
    const int E = m->num_logical, MR = m->max_replicas, D = m->num_gpus;
    const int spg = m->num_physical / D;
    for (int e = 0; e < E; e++)
        if (m->logcnt[e] > EPLB_PLAN_MAX_R)
            return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                  "--select balanced: expert %d has %d replicas, more than the "
                                  "%d the balanced plan takes (fewer --replicas, or another "
                                  "--select)",
                                  e, m->logcnt[e], EPLB_PLAN_MAX_R);
    const int P = m->num_physical;
    load_key_t *multi = malloc(sizeof *multi * (size_t)E);
    int *order = malloc(sizeof *order * (size_t)E);
    void *flow = malloc(eplb_plan_flow_bytes(E, P, D));
    if (!multi || !order || !flow) {
        free(multi);
        free(order);
        free(flow);
        return eplb_error_set(EPLB_ERR_NOMEM, "balanced: out of memory");
    }
    memset(quota, 0, sizeof *quota * (size_t)E * MR);
    for (int g = 0; g < D; g++)
        gpu_load[g] = 0;
    int nm = 0;
    for (int e = 0; e < E; e++) {
        const int32_t *row = m->log2phy + (size_t)e * MR;
        if (m->logcnt[e] == 1) {
            quota[(size_t)e * MR] = (int32_t)n[e];
            gpu_load[row[0] / spg] += n[e];
        } else if (m->logcnt[e] > 1) {
            multi[nm++] = (load_key_t){n[e], e};
        }
    }
    qsort(multi, (size_t)nm, sizeof *multi, cmp_load_desc);
    for (int i = 0; i < nm; i++) {
        int e = order[i] = multi[i].e;
        eplb_rule_water_fill(quota + (size_t)e * MR,
                             m->log2phy + (size_t)e * MR, m->logcnt[e], n[e],
                             gpu_load, spg);
    }
    /* then the least peak any split reaches (plan_flow.h) */
    eplb_plan_min_peak(quota, gpu_load, order, nm, n, m->log2phy, m->logcnt, MR, E, P, D, spg,
                       flow);
    free(multi);
    free(order);
    free(flow);
    return EPLB_OK;
}

/* Per-call context shared by the tasks: task i is layer i / C, tokens
 * [T c / C, T (c + 1) / C) with c = i % C. */
typedef struct {
    int32_t *phys, *counts;
    const int32_t *ids;
    int64_t T;
    int L, K, C;
    int Pmax, Emax;        /* strides of part and ecount */
    const eplb_layer_map_t *maps;
    const eplb_select_cfg_t *cfg;
    int num_ranks;
    const uint32_t *trow;  /* [T] row of the token in its rank's batch */
    const uint16_t *trank; /* [T] source rank */
    int32_t *part;         /* [L][C - 1][Pmax]: the counts of parts c >= 1 */
    int64_t *ecount;       /* balanced, C > 1: [L][C][Emax] entries per expert */
    atomic_int st;         /* the first failure (NOMEM) */
    char err[512];         /* its message: set on a helper, whose own is lost */
} sel_ctx_t;

static inline int32_t clamp_r(int c, int mr) { return c < 1 ? 1 : c > mr ? mr : c; }

static inline int64_t part_start(const sel_ctx_t *c, int part)
{
    return c->T * part / c->C;
}

/* n[e] += the entries of expert e in layer l of tokens [t0, t1). */
static void count_experts(int64_t *n, const sel_ctx_t *c, int l, int64_t t0, int64_t t1)
{
    const int E = c->maps[l].num_logical, K = c->K, L = c->L;
    for (int64_t t = t0; t < t1; t++)
        for (int k = 0; k < K; k++) {
            int32_t e = c->ids[((size_t)t * L + l) * K + k];
            if (e >= 0 && e < E)
                n[e]++;
        }
}

/* Balanced, C > 1, task i: the entries of each expert in its tokens. */
static void count_part(void *arg, int i)
{
    sel_ctx_t *c = arg;
    count_experts(c->ecount + (size_t)i * c->Emax, c, i / c->C, part_start(c, i % c->C),
                  part_start(c, i % c->C + 1));
}

/* Task i; returns EPLB_OK or NOMEM (maps were checked before).  Its
 * counts: layer l's row for part 0, its own zeroed row of c->part for the
 * others (summed after, in part order). */
static eplb_status_t select_part(sel_ctx_t *c, int i)
{
    const int l = i / c->C, part = i % c->C;
    const eplb_layer_map_t *m = &c->maps[l];
    const int E = m->num_logical, P = m->num_physical, MR = m->max_replicas;
    const int spg = P / m->num_gpus, gpn = m->num_gpus / m->num_nodes;
    const int K = c->K, L = c->L;
    const eplb_select_mode_t mode = c->cfg->mode;
    const int64_t i0 = part_start(c, part), i1 = part_start(c, part + 1);
    int32_t *counts = part == 0 ? c->counts + (size_t)l * P
                                : c->part + ((size_t)l * (c->C - 1) + part - 1) * c->Pmax;
    int64_t *n = NULL, *gl = NULL;
    int32_t *quota = NULL, *ord = NULL;
    eplb_status_t st = EPLB_OK;

    if (mode == EPLB_SELECT_RR_BLOCK || mode == EPLB_SELECT_BALANCED) {
        n = calloc((size_t)E, sizeof *n);
        ord = calloc((size_t)E, sizeof *ord);
        EPLB_ALLOC_GOTO(n, st, out);
        EPLB_ALLOC_GOTO(ord, st, out);
    }
    if (mode == EPLB_SELECT_BALANCED) {
        quota = malloc(sizeof *quota * (size_t)E * MR);
        gl = malloc(sizeof *gl * (size_t)m->num_gpus);
        EPLB_ALLOC_GOTO(quota, st, out);
        EPLB_ALLOC_GOTO(gl, st, out);
        if (c->C == 1) {
            count_experts(n, c, l, 0, c->T);
        } else { /* the layer's parts counted by count_part */
            const int64_t *ec = c->ecount + (size_t)l * c->C * c->Emax;
            for (int q = 0; q < c->C; q++)
                for (int e = 0; e < E; e++)
                    n[e] += ec[(size_t)q * c->Emax + e];
        }
        EPLB_CHECK_GOTO(eplb_select_plan_balanced(quota, gl, n, m), st, out);
        /* quota -> cumulative ends, in place */
        for (int e = 0; e < E; e++)
            for (int j = 1; j < MR; j++)
                quota[(size_t)e * MR + j] += quota[(size_t)e * MR + j - 1];
        /* reused: the expert's ordinal so far, from the earlier parts */
        memset(n, 0, sizeof *n * (size_t)E);
        for (int q = 0; q < part; q++)
            for (int e = 0; e < E; e++)
                n[e] += c->ecount[((size_t)l * c->C + q) * c->Emax + e];
    }
    /* rr-block: ordinals restart every EPLB_RR_BLOCK entries; a part that
     * starts inside a block counts the block's earlier entries first */
    int64_t block = ((int64_t)i0 * K) / EPLB_RR_BLOCK;
    if (mode == EPLB_SELECT_RR_BLOCK)
        for (int64_t q = block * EPLB_RR_BLOCK; q < i0 * K; q++) {
            int32_t e = c->ids[((size_t)(q / K) * L + l) * K + q % K];
            if (e >= 0 && e < E)
                ord[e]++;
        }
    for (int64_t i = i0; i < i1; i++) {
        uint32_t t = c->trow[i];
        uint64_t rkey = 0;
        if (mode == EPLB_SELECT_RANDOM)
            rkey = eplb_rule_random_row(c->cfg->seed, c->cfg->step, l, t);
        for (int k = 0; k < K; k++) {
            size_t idx = ((size_t)i * L + l) * K + k;
            int32_t e = c->ids[idx], p = -1;
            if (mode == EPLB_SELECT_RR_BLOCK) {
                int64_t b = ((int64_t)i * K + k) / EPLB_RR_BLOCK;
                if (b != block) { /* new block: ordinals restart */
                    memset(ord, 0, sizeof *ord * (size_t)E);
                    block = b;
                }
            }
            if (e >= 0 && e < E) {
                const int32_t *row = m->log2phy + (size_t)e * MR;
                int R = clamp_r(m->logcnt[e], MR), rep = 0;
                switch (mode) {
                case EPLB_SELECT_HASH:
                case EPLB_SELECT_FLATMOD:
                case EPLB_SELECT_RANDOM:
                    /* replica 0 of an unreplicated expert in every mode,
                     * without the rule's division */
                    rep = R == 1 ? 0 : eplb_rule_entry_rep(mode, t, k, K, R, rkey);
                    break;
                case EPLB_SELECT_LOCAL: {
                    int gpu = (int)((int64_t)c->trank[i] * m->num_gpus / c->num_ranks);
                    rep = m->logcnt[e] < 1 ? 0
                                           : eplb_rule_local_rep(row, R, t, gpu, gpu / gpn,
                                                                 spg, gpn);
                    break;
                }
                case EPLB_SELECT_RR_BLOCK:
                    rep = (int)((ord[e]++ + block) % R);
                    break;
                case EPLB_SELECT_BALANCED: {
                    int64_t o = n[e]++;
                    const int32_t *cum = quota + (size_t)e * MR;
                    while (rep < R - 1 && o >= cum[rep])
                        rep++;
                    break;
                }
                }
                p = row[rep];
                if (p < 0 || p >= P)
                    p = -1;
                else
                    counts[p]++;
            }
            if (c->phys)
                c->phys[idx] = p;
        }
    }
out:
    free(n);
    free(ord);
    free(quota);
    free(gl);
    return st;
}

static void select_task(void *arg, int i)
{
    sel_ctx_t *c = arg;
    if (atomic_load(&c->st) != EPLB_OK)
        return;
    eplb_status_t st = select_part(c, i);
    if (st != EPLB_OK) {
        int ok = EPLB_OK;
        if (atomic_compare_exchange_strong(&c->st, &ok, (int)st))
            snprintf(c->err, sizeof c->err, "%s", eplb_error_last());
    }
}

eplb_status_t eplb_select_token_rows(uint32_t *trow, uint16_t *trank,
                                     int64_t T, int num_ranks,
                                     const uint16_t *src_rank)
{
    if (num_ranks < 1 || num_ranks > 65536)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "select: num_ranks %d outside [1, 65536]",
                              num_ranks);
    if (!src_rank) {
        int64_t block = (T + num_ranks - 1) / num_ranks;
        for (int64_t i = 0; i < T; i++) {
            trank[i] = (uint16_t)(i / block);
            trow[i] = (uint32_t)(i % block);
        }
        return EPLB_OK;
    }
    uint32_t *seen = calloc((size_t)num_ranks, sizeof *seen);
    if (!seen)
        return eplb_error_set(EPLB_ERR_NOMEM, "select: out of memory");
    for (int64_t i = 0; i < T; i++) {
        if (src_rank[i] >= num_ranks) {
            free(seen);
            return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                  "select: src_rank[%lld] = %u not below "
                                  "num_ranks %d",
                                  (long long)i, src_rank[i], num_ranks);
        }
        trank[i] = src_rank[i];
        trow[i] = seen[src_rank[i]]++;
    }
    free(seen);
    return EPLB_OK;
}

/* threads: at most `max` (<= 0: eplb_num_threads()), at most one per
 * EPLB_SELECT_TASK_ENTRIES entries and 64 */
static int select_threads(int64_t T, int L, int K, int max)
{
    int nt = max > 0 ? max : eplb_num_threads();
    const int64_t tasks = T * L * K / EPLB_SELECT_TASK_ENTRIES;
    if (nt > tasks)
        nt = (int)tasks;
    if (nt > 64)
        nt = 64;
    return nt < 1 ? 1 : nt;
}

int eplb_select_cpu_threads(int64_t T, int L, int K)
{
    return select_threads(T, L, K, 0);
}

eplb_status_t eplb_select_record_cpu(int32_t *phys, int32_t *counts,
                                     const int32_t *ids, int64_t T, int L,
                                     int K, const eplb_layer_map_t *maps,
                                     const eplb_select_cfg_t *cfg)
{
    if (!counts || !ids || !maps || !cfg || T < 0 || L < 1 || K < 1 ||
        K > EPLB_MAX_TOPK)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "select: NULL argument or bad shape T=%lld "
                              "L=%d K=%d",
                              (long long)T, L, K);
    if ((int)cfg->mode < 0 || (int)cfg->mode >= NUM_MODES)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "select: unknown mode %d",
                              (int)cfg->mode);
    for (int l = 0; l < L; l++) {
        eplb_status_t st = eplb_layer_map_check(&maps[l]);
        if (st != EPLB_OK) {
            char why[512]; /* the message buffer is also the output */
            snprintf(why, sizeof why, "%s", eplb_error_last());
            return eplb_error_set(st, "select: layer %d: %s", l, why);
        }
    }
    /* parts per layer: enough for the threads, each of at least
     * EPLB_SELECT_TASK_ENTRIES entries */
    const int nt = select_threads(T, L, K, cfg->threads);
    int C = nt > L ? (nt + L - 1) / L : 1;
    if (C > 1 && (int64_t)C > T * K / EPLB_SELECT_TASK_ENTRIES)
        C = (int)(T * K / EPLB_SELECT_TASK_ENTRIES);
    sel_ctx_t c = {.phys = phys, .counts = counts, .ids = ids, .T = T,
                   .L = L, .K = K, .C = C < 1 ? 1 : C, .maps = maps, .cfg = cfg,
                   .num_ranks = cfg->num_ranks > 0 ? cfg->num_ranks : maps[0].num_gpus};
    atomic_init(&c.st, EPLB_OK);
    for (int l = 0; l < L; l++) {
        c.Pmax = maps[l].num_physical > c.Pmax ? maps[l].num_physical : c.Pmax;
        c.Emax = maps[l].num_logical > c.Emax ? maps[l].num_logical : c.Emax;
    }
    eplb_status_t st = EPLB_OK;
    uint32_t *trow = malloc(sizeof *trow * (size_t)(T > 0 ? T : 1));
    uint16_t *trank = malloc(sizeof *trank * (size_t)(T > 0 ? T : 1));
    EPLB_ALLOC_GOTO(trow, st, out);
    EPLB_ALLOC_GOTO(trank, st, out);
    EPLB_CHECK_GOTO(eplb_select_token_rows(trow, trank, T, c.num_ranks, cfg->src_rank), st,
                    out);
    c.trow = trow;
    c.trank = trank;
    if (c.C > 1) {
        c.part = calloc((size_t)L * (c.C - 1) * c.Pmax, sizeof *c.part);
        EPLB_ALLOC_GOTO(c.part, st, out);
        if (cfg->mode == EPLB_SELECT_BALANCED) {
            c.ecount = calloc((size_t)L * c.C * c.Emax, sizeof *c.ecount);
            EPLB_ALLOC_GOTO(c.ecount, st, out);
            eplb_pool_run(L * c.C, nt, count_part, &c);
        }
    }
    eplb_pool_run(L * c.C, nt, select_task, &c);
    st = (eplb_status_t)atomic_load(&c.st);
    if (st != EPLB_OK) /* the message of the thread that failed, here */
        eplb_error_set(st, "%s", c.err);
    for (int l = 0; st == EPLB_OK && l < L; l++) { /* the parts' counts */
        int32_t *dst = counts + (size_t)l * maps[l].num_physical;
        for (int q = 1; q < c.C; q++) {
            const int32_t *src = c.part + ((size_t)l * (c.C - 1) + q - 1) * c.Pmax;
            for (int p = 0; p < maps[l].num_physical; p++)
                dst[p] += src[p];
        }
    }
out:
    free(c.part);
    free(c.ecount);
    free(trow);
    free(trank);
    return st;
}
