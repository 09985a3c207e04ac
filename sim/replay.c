/* replay.c - the replay driver: steps in blocks, runs in parallel.
 *
 * The main thread reads a block of steps (token ids or counts) and keeps the
 * logical load of every step in a ring as long as the largest window; then
 * each run (policy x grid point) walks the block on a worker thread: trigger,
 * policy, weight moves, replica selection under its own placement, cost.
 * After the block the main thread appends the runs' series to results.h5.
 * Runs never share mutable state, so results do not depend on threads. */
#include "sim_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "results.h"

#define BLOCK_STEPS 256
#define BLOCK_TOKENS 65536
/* once/oracle: keep the whole trace's routed ids from pass 1 for pass 2 when
 * they take at most this much memory (else decode and route twice). */
#define CACHE_BYTES (512.0 * 1024 * 1024)
/* vec: the window's per-step loads are passed when they fit in this much */
#define SERIES_BYTES (256.0 * 1024 * 1024)

typedef struct {
    int64_t step;
    int32_t *placement; /* [L][P] target of a decision */
} snap_t;

typedef struct {
    const eplb_sim_run_cfg_t *cfg;
    eplb_sim_result_t *res;
    int is_none;
    int L, E, K, G, P, D, N, Sg, maxcnt;
    eplb_cost_t cost;
    int32_t *phy2log, *target;  /* [L][P] */
    int32_t *logcnt, *log2phy;  /* [L][E], [L][E][maxcnt] */
    eplb_layer_map_t *maps;     /* [L] */
    int pending;                /* async: layers of target not committed */
    int next_layer;             /* async: next layer to commit; trtllm: next */
    int64_t pend_decided, pend_wb, pend_we; /* async: the queued decision */
    double pend_policy;
    int keep_ev;                /* store events (results.h5 or asked for) */
    int keep_all_ev;            /* keep them after writing them (asked for) */
    int max_moves;
    double *ema;                /* trtllm [L][E] */
    float *weights;             /* [L][E] */
    double *oracle;             /* [n_oracle][L][E] sums of future windows */
    int64_t n_oracle;
    /* accumulators */
    double sum_bal, sum_mom, *layer_bal, sum_compute, sum_a2a, sum_over,
        sum_stall, sum_policy;
    int64_t nlayers_seen;
    /* block series */
    int32_t *ser_tok;           /* [B][L][D] */
    float *ser_bal;             /* [B][L] */
    double *ser_time;           /* [B][4]: compute, a2a, overhead, stall */
    double step_stall;          /* stall charged to the current step */
    size_t ev_flushed;          /* events already written */
    snap_t *snaps;
    size_t nsnaps, capsnaps;
    eplb_status_t st;
    char err[512];
} run_t;

typedef struct {
    int32_t *phys;              /* [T][L][K] */
    size_t phys_cap;
    int32_t *counts;            /* [L][P] */
    int64_t *a2a;               /* [4][D] */
    int64_t *gtok;              /* [D] */
    uint16_t *rank;             /* [T] source ranks mod D */
    size_t rank_cap;
} work_t;

typedef struct {
    /* shared, read-only during a block */
    const eplb_sim_opts_t *opts;
    eplb_sim_source_t *src;
    int L, E, K;
    int64_t S;
    int64_t s0, s1;             /* block */
    int64_t tok0;               /* first token of the block */
    const int32_t *ids;         /* block ids [T][L][K] */
    const uint16_t *src_rank;   /* block ranks or NULL */
    const int32_t *hist;        /* ring [H][L][E] of logical counts */
    int64_t H;
    const double *once_w;       /* [L][E] whole-trace load */
    run_t *runs;
    int nruns;
    atomic_int next;
    int maxP, maxD;
    int64_t max_step_tokens;
} shared_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const int32_t *hist_row(const shared_t *sh, int64_t s)
{
    return sh->hist + (size_t)(s % sh->H) * sh->L * sh->E;
}

static void derive_layer(run_t *r, int l)
{
    eplb_placement_derive(r->logcnt + (size_t)l * r->E,
                          r->log2phy + (size_t)l * r->E * r->maxcnt, r->maxcnt,
                          r->phy2log + (size_t)l * r->P, NULL, 1, r->E, r->P);
}

static eplb_status_t add_event(run_t *r, const eplb_sim_event_t *ev)
{
    eplb_sim_result_t *res = r->res;
    if (!r->keep_ev)
        return EPLB_OK;
    if ((res->n_events & (res->n_events + 1)) == 0 || res->n_events == 0) {
        size_t cap = res->n_events ? (res->n_events + 1) * 2 : 8;
        eplb_sim_event_t *ne = realloc(res->events, cap * sizeof *ne);
        if (!ne)
            return eplb_error_set(EPLB_ERR_NOMEM, "events: out of memory");
        res->events = ne;
    }
    res->events[res->n_events++] = *ev;
    return EPLB_OK;
}

/* Commit layer l of the target placement at step s. */
static eplb_status_t commit_layer(run_t *r, int l, int64_t s, int64_t decided,
                                  int64_t wb, int64_t we, double policy_s)
{
    eplb_transfer_t tr;
    const int32_t *old = r->phy2log + (size_t)l * r->P;
    const int32_t *nw = r->target + (size_t)l * r->P;
    EPLB_CHECK(eplb_sim_transfer_plan(&tr, NULL, old, nw, &r->cost));
    eplb_sim_event_t ev;
    memset(&ev, 0, sizeof ev); /* padding too: events are written as bytes */
    ev.step = s;
    ev.decided = decided;
    ev.win_begin = wb;
    ev.win_end = we;
    ev.layer = l;
    ev.moved = tr.moved;
    ev.local = tr.local;
    ev.intra = tr.intra;
    ev.inter = tr.inter;
    ev.bytes = tr.bytes;
    ev.transfer_s = tr.time_s;
    ev.stall_s = tr.time_s;
    ev.policy_s = policy_s;
    memcpy(r->phy2log + (size_t)l * r->P, nw, (size_t)r->P * sizeof *nw);
    derive_layer(r, l);
    r->res->moved_replicas += tr.moved;
    r->res->moved_bytes += tr.bytes;
    r->step_stall += tr.time_s;
    return add_event(r, &ev);
}

/* Predicted balancedness of the current placement on weights, each expert's
 * load split evenly over its replicas (threshold trigger). */
static double predicted_balancedness(const run_t *r, const float *w)
{
    double sum = 0;
    double *g = calloc((size_t)r->D, sizeof *g);
    if (!g)
        return 0;
    for (int l = 0; l < r->L; l++) {
        memset(g, 0, (size_t)r->D * sizeof *g);
        const int32_t *row = r->phy2log + (size_t)l * r->P;
        const int32_t *cnt = r->logcnt + (size_t)l * r->E;
        double tot = 0, mx = 0;
        for (int p = 0; p < r->P; p++) {
            int e = row[p];
            double x = w[(size_t)l * r->E + e] / (cnt[e] > 0 ? cnt[e] : 1);
            g[p / r->Sg] += x;
            tot += x;
        }
        for (int d = 0; d < r->D; d++)
            mx = fmax(mx, g[d]);
        sum += mx > 0 ? tot / r->D / mx : 1;
    }
    free(g);
    return sum / r->L;
}

static eplb_status_t snapshot(run_t *r, int64_t s, int keep)
{
    if (!keep)
        return EPLB_OK;
    if (r->nsnaps == r->capsnaps) {
        size_t cap = r->capsnaps ? r->capsnaps * 2 : 4;
        snap_t *n = realloc(r->snaps, cap * sizeof *n);
        if (!n)
            return eplb_error_set(EPLB_ERR_NOMEM, "placements: out of memory");
        r->snaps = n;
        r->capsnaps = cap;
    }
    size_t sz = (size_t)r->L * r->P * sizeof(int32_t);
    int32_t *pl = malloc(sz);
    if (!pl)
        return eplb_error_set(EPLB_ERR_NOMEM, "placements: out of memory");
    memcpy(pl, r->target, sz);
    r->snaps[r->nsnaps].step = s;
    r->snaps[r->nsnaps].placement = pl;
    r->nsnaps++;
    return EPLB_OK;
}

static eplb_policy_args_t policy_args(const run_t *r, const int32_t *old)
{
    eplb_policy_args_t a = EPLB_POLICY_ARGS_INIT;
    a.num_replicas = r->P;
    a.num_groups = r->G;
    a.num_nodes = r->N;
    a.num_gpus = r->D;
    a.old_phy2log = old;
    a.max_moves = r->max_moves;
    return a;
}

/* A decision before step s: weights, policy, then commit or queue. */
static eplb_status_t decide(shared_t *sh, run_t *r, int64_t s)
{
    const eplb_trigger_t *t = &r->cfg->trig;
    const eplb_sim_opts_t *o = sh->opts;
    int L = r->L, E = r->E, P = r->P;
    size_t LE = (size_t)L * E;
    int64_t wb = s, we = s;
    float *w = r->weights;
    int nl = L, l0 = 0;
    if (t->kind == EPLB_TRIGGER_TRTLLM) {
        nl = t->chunk < L ? t->chunk : L;
        l0 = r->next_layer;
        r->next_layer = (l0 + nl) % L;
        for (size_t i = 0; i < LE; i++)
            w[i] = (float)r->ema[i];
    } else if (t->kind == EPLB_TRIGGER_ORACLE) {
        eplb_sim_trigger_window(&wb, &we, t, s, sh->S);
        int64_t f = t->interval / 4 < 1 ? 1 : t->interval / 4;
        int64_t j = (s - f) / t->interval;
        for (size_t i = 0; i < LE; i++)
            w[i] = j < r->n_oracle ? (float)r->oracle[(size_t)j * LE + i] : 0;
    } else {
        eplb_sim_trigger_window(&wb, &we, t, s, sh->S);
        memset(w, 0, LE * sizeof *w);
        for (int64_t q = wb; q < we; q++) {
            const int32_t *h = hist_row(sh, q);
            for (size_t i = 0; i < LE; i++)
                w[i] += (float)h[i];
        }
    }
    if (t->kind == EPLB_TRIGGER_THRESHOLD &&
        predicted_balancedness(r, w) >= t->threshold)
        return EPLB_OK;
    memcpy(r->target, r->phy2log, (size_t)L * P * sizeof *r->target);
    /* time-series aware policies (vec) get the window step by step */
    float *series = NULL;
    int64_t nser = we - wb;
    if (t->kind != EPLB_TRIGGER_TRTLLM && t->kind != EPLB_TRIGGER_ORACLE &&
        !strcmp(r->cfg->policy->name, "vec") && nser > 0 &&
        (double)nser * LE * sizeof(float) <= SERIES_BYTES) {
        series = malloc((size_t)nser * LE * sizeof *series);
        if (!series)
            return eplb_error_set(EPLB_ERR_NOMEM, "load series: out of memory");
        for (int64_t q = wb; q < we; q++) {
            const int32_t *h = hist_row(sh, q);
            for (size_t i = 0; i < LE; i++)
                series[(size_t)(q - wb) * LE + i] = (float)h[i];
        }
    }
    double t0 = now_s();
    eplb_status_t st = EPLB_OK;
    for (int i = 0; st == EPLB_OK && i < (t->kind == EPLB_TRIGGER_TRTLLM ? nl : 1); i++) {
        int l = t->kind == EPLB_TRIGGER_TRTLLM ? (l0 + i) % L : 0;
        int n = t->kind == EPLB_TRIGGER_TRTLLM ? 1 : L;
        eplb_policy_args_t a = policy_args(r, r->phy2log + (size_t)l * P);
        a.series = series;
        a.series_steps = series ? (int)nser : 0;
        st = r->cfg->policy->fn(r->target + (size_t)l * P, NULL, w + (size_t)l * E, n, E,
                                &a);
    }
    double pol = o->policy_time >= 0 ? o->policy_time : now_s() - t0;
    free(series);
    if (st != EPLB_OK)
        return st;
    /* every expert must keep a replica, or selection has nowhere to go */
    for (int i = 0; i < nl; i++) {
        int l = (l0 + i) % L;
        if (eplb_placement_check(r->target + (size_t)l * P, 1, E, P, "policy output") !=
            EPLB_OK)
            return eplb_error_set(EPLB_ERR_INTERNAL, "policy %s, layer %d: %s",
                                  r->cfg->policy->name, l, eplb_error_last());
    }
    r->res->rebalances++;
    r->res->policy_s += pol;
    /* trtllm re-places a few layers per decision: one snapshot per round
     * over all layers keeps results.h5 small */
    EPLB_CHECK(snapshot(r, s, o->results_path != NULL &&
                                  (t->kind != EPLB_TRIGGER_TRTLLM || l0 == 0)));
    int sync = t->async == EPLB_ASYNC_OFF || t->kind == EPLB_TRIGGER_TRTLLM;
    if (sync) {
        /* stop the world: the policy runs on the critical path too (except
         * TensorRT-LLM, whose statistics and algorithm run on the CPU in
         * the background; only the weight copies stall) */
        if (t->kind != EPLB_TRIGGER_TRTLLM)
            r->step_stall += pol;
        for (int i = 0; i < nl; i++)
            EPLB_CHECK(commit_layer(r, (l0 + i) % L, s, s, wb, we, i == 0 ? pol : 0));
    } else {
        r->pending = L;
        r->next_layer = 0;
        r->pend_decided = s;
        r->pend_wb = wb;
        r->pend_we = we;
        r->pend_policy = pol;
    }
    return EPLB_OK;
}

/* Async: commit the next `chunk` layers at step s (the first commit comes a
 * step after the decision: the policy and the first copy overlap it). */
static eplb_status_t commit_pending(run_t *r, int64_t s)
{
    if (r->pending <= 0 || s <= r->pend_decided)
        return EPLB_OK;
    int k = r->cfg->trig.async == EPLB_ASYNC_LAYERS ? 1 : r->cfg->trig.chunk;
    for (int i = 0; i < k && r->pending > 0; i++) {
        int l = r->next_layer++;
        r->pending--;
        EPLB_CHECK(commit_layer(r, l, s, r->pend_decided, r->pend_wb, r->pend_we,
                                l == 0 ? r->pend_policy : 0));
    }
    return EPLB_OK;
}

/* (token, GPU) entries crossing NVLink / network for one layer. */
static void a2a_entries(work_t *w, const run_t *r, const int32_t *phys, int64_t T,
                        int l, const uint16_t *rank)
{
    int D = r->D, K = r->K, gpn = D / r->N;
    int64_t *si = w->a2a, *se = si + D, *ri = se + D, *re = ri + D;
    int64_t blk = (T + D - 1) / D; /* contiguous blocks, as selection uses */
    memset(w->a2a, 0, 4 * (size_t)D * sizeof *w->a2a);
    for (int64_t t = 0; t < T; t++) {
        int sg = rank ? rank[t] % D : (int)(t / blk);
        const int32_t *ph = phys + ((size_t)t * r->L + l) * K;
        int dst[EPLB_MAX_TOPK], nd = 0;
        for (int k = 0; k < K; k++) {
            if (ph[k] < 0)
                continue;
            int d = ph[k] / r->Sg, dup = 0;
            for (int j = 0; j < nd; j++)
                dup |= dst[j] == d;
            if (dup || d == sg)
                continue;
            dst[nd++] = d;
            if (d / gpn == sg / gpn) {
                si[sg]++;
                ri[d]++;
            } else {
                se[sg]++;
                re[d]++;
            }
        }
    }
}

static void split_counts(int32_t *slots, const run_t *r, const int32_t *c, int l)
{
    const int32_t *cnt = r->logcnt + (size_t)l * r->E;
    const int32_t *l2p = r->log2phy + (size_t)l * r->E * r->maxcnt;
    for (int e = 0; e < r->E; e++) {
        int32_t n = c[e];
        int R = cnt[e];
        const int32_t *row = l2p + (size_t)e * r->maxcnt;
        if (R == 1) {
            slots[row[0]] += n;
        } else if (R > 1) {
            /* as even as integers allow: the first n % R replicas (in slot
             * order) take one more */
            int32_t q = n / R, rem = n % R;
            for (int i = 0; i < R; i++)
                slots[row[i]] += q + (i < rem);
        }
    }
}

static eplb_status_t run_step(shared_t *sh, run_t *r, work_t *w, int64_t s)
{
    const eplb_sim_opts_t *o = sh->opts;
    const eplb_trigger_t *t = &r->cfg->trig;
    int L = r->L, P = r->P, D = r->D, K = r->K;
    r->step_stall = 0;
    if (!r->is_none) {
        EPLB_CHECK(commit_pending(r, s));
        if (eplb_sim_trigger_due(t, s) && s < sh->S && r->pending == 0)
            EPLB_CHECK(decide(sh, r, s));
    }
    memset(w->counts, 0, (size_t)L * P * sizeof *w->counts);
    int64_t T = 0;
    const int32_t *ph = NULL;
    const uint16_t *rank = NULL;
    if (sh->src->token_level) {
        int64_t a = sh->src->tok_off[s], b = sh->src->tok_off[s + 1];
        T = b - a;
        const int32_t *ids = sh->ids + (size_t)(a - sh->tok0) * L * K;
        rank = sh->src_rank ? sh->src_rank + (a - sh->tok0) : NULL;
        if (rank && T > 0) {
            /* a trace recorded with more ranks than this run's GPUs: rank r
             * runs on GPU r mod D */
            if ((size_t)T > w->rank_cap) {
                free(w->rank);
                w->rank = malloc((size_t)T * sizeof *w->rank);
                if (!w->rank)
                    return eplb_error_set(EPLB_ERR_NOMEM, "ranks: out of memory");
                w->rank_cap = (size_t)T;
            }
            for (int64_t i = 0; i < T; i++)
                w->rank[i] = (uint16_t)(rank[i] % D);
            rank = w->rank;
        }
        eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
        c.mode = o->select;
        c.seed = o->seed;
        c.step = s;
        c.num_ranks = D;
        c.src_rank = rank;
        if (T > 0)
            EPLB_CHECK(eplb_select_record_cpu(D > 1 ? w->phys : NULL, w->counts, ids,
                                              T, L, K, r->maps, &c));
        ph = w->phys;
    } else {
        const int32_t *c = hist_row(sh, s);
        for (int l = 0; l < L; l++)
            split_counts(w->counts + (size_t)l * P, r, c + (size_t)l * r->E, l);
    }
    int64_t b = s - sh->s0;
    double comp = 0, a2a = 0, over = 0;
    for (int l = 0; l < L; l++) {
        eplb_layer_cost_t lc;
        const int64_t *si = NULL, *se = NULL, *ri = NULL, *re = NULL;
        if (ph && D > 1 && T > 0) {
            a2a_entries(w, r, ph, T, l, rank);
            si = w->a2a;
            se = si + D;
            ri = se + D;
            re = ri + D;
        }
        eplb_sim_cost_layer(&lc, w->gtok, &r->cost, w->counts + (size_t)l * P, si,
                            se, ri, re);
        double bal = lc.max_tokens > 0
                         ? (double)lc.total_tokens / D / (double)lc.max_tokens
                         : 1.0;
        r->sum_bal += bal;
        r->sum_mom += bal > 0 ? 1.0 / bal : 0;
        r->layer_bal[l] += bal;
        comp += lc.compute_s;
        a2a += lc.a2a_s;
        if (!r->is_none)
            over += r->cost.prof.record_s >= 0
                        ? r->cost.prof.record_s
                        : r->cost.prof.record_frac * (lc.compute_s + lc.a2a_s);
        if (sh->src->token_level)
            r->res->tokens_lost += T * K - lc.total_tokens;
        if (r->ser_bal) {
            r->ser_bal[(size_t)b * L + l] = (float)bal;
            int32_t *st = r->ser_tok + ((size_t)b * L + l) * D;
            for (int g = 0; g < D; g++)
                st[g] = (int32_t)w->gtok[g];
        }
    }
    r->nlayers_seen += L;
    r->sum_compute += comp;
    r->sum_a2a += a2a;
    r->sum_over += over;
    r->sum_stall += r->step_stall;
    if (r->ser_time) {
        double *tm = r->ser_time + (size_t)b * 4;
        tm[0] = comp;
        tm[1] = a2a;
        tm[2] = over;
        tm[3] = r->step_stall;
    }
    if (t->kind == EPLB_TRIGGER_TRTLLM && !r->is_none) {
        const int32_t *c = hist_row(sh, s);
        double d = t->ema_decay;
        for (size_t i = 0; i < (size_t)L * r->E; i++)
            r->ema[i] = d * r->ema[i] + c[i];
    }
    return EPLB_OK;
}

static eplb_status_t work_fit(work_t *w, const shared_t *sh)
{
    size_t need = (size_t)(sh->max_step_tokens > 0 ? sh->max_step_tokens : 1) *
                  sh->L * sh->K;
    if (need > w->phys_cap) {
        free(w->phys);
        w->phys = malloc(need * sizeof *w->phys);
        if (!w->phys)
            return eplb_error_set(EPLB_ERR_NOMEM, "replica ids: out of memory");
        w->phys_cap = need;
    }
    if (!w->counts) {
        w->counts = malloc((size_t)sh->L * sh->maxP * sizeof *w->counts);
        w->a2a = malloc(4 * (size_t)sh->maxD * sizeof *w->a2a);
        w->gtok = malloc((size_t)sh->maxD * sizeof *w->gtok);
        if (!w->counts || !w->a2a || !w->gtok)
            return eplb_error_set(EPLB_ERR_NOMEM, "replay workspace: out of memory");
    }
    return EPLB_OK;
}

static void run_block(shared_t *sh, run_t *r, work_t *w)
{
    if (r->st != EPLB_OK)
        return;
    eplb_status_t st = work_fit(w, sh);
    for (int64_t s = sh->s0; st == EPLB_OK && s < sh->s1; s++)
        st = run_step(sh, r, w, s);
    if (st != EPLB_OK) {
        r->st = st;
        snprintf(r->err, sizeof r->err, "%s", eplb_error_last());
    }
}

typedef struct {
    shared_t *sh;
    work_t *w;
} worker_arg_t;

static void *worker(void *p)
{
    worker_arg_t *a = p;
    for (;;) {
        int i = atomic_fetch_add(&a->sh->next, 1);
        if (i >= a->sh->nruns)
            break;
        run_block(a->sh, &a->sh->runs[i], a->w);
    }
    return NULL;
}

static void work_free(work_t *w)
{
    free(w->phys);
    free(w->counts);
    free(w->a2a);
    free(w->gtok);
    free(w->rank);
}

/* Logical counts [L][E] of one step of token ids (invalid ids skipped). */
static void count_ids(int32_t *lc, const int32_t *ids, int64_t T, int L, int E, int K)
{
    memset(lc, 0, (size_t)L * E * sizeof *lc);
    for (int64_t t = 0; t < T; t++)
        for (int l = 0; l < L; l++) {
            const int32_t *x = ids + ((size_t)t * L + l) * K;
            for (int k = 0; k < K; k++)
                if (x[k] >= 0 && x[k] < E)
                    lc[(size_t)l * E + x[k]]++;
        }
}

/* Next block [s0, *s1): at most BLOCK_STEPS steps and BLOCK_TOKENS tokens
 * (but at least one step). */
static int64_t block_end(const eplb_sim_source_t *src, int64_t s0)
{
    int64_t s1 = s0 + 1;
    while (s1 < src->S && s1 - s0 < BLOCK_STEPS &&
           (!src->token_level || src->tok_off[s1 + 1] - src->tok_off[s0] <= BLOCK_TOKENS))
        s1++;
    return s1;
}

/* Read steps [s0, s1): ids (+ ranks) and the logical counts of each step
 * into lc [s1-s0][L][E]. */
static eplb_status_t read_block(eplb_sim_source_t *src, int64_t s0, int64_t s1,
                                int32_t *ids, uint16_t *rank, int32_t *lc,
                                int ids_ready)
{
    size_t LE = (size_t)src->L * src->E;
    if (!src->token_level)
        return src->read_counts(src, lc, s0, s1);
    int64_t a = src->tok_off[s0], b = src->tok_off[s1];
    if (b > a && !ids_ready) {
        EPLB_CHECK(src->read_ids(src, ids, a, b));
        if (rank && src->read_src)
            EPLB_CHECK(src->read_src(src, rank, a, b));
    }
    for (int64_t s = s0; s < s1; s++)
        count_ids(lc + (size_t)(s - s0) * LE,
                  ids + (size_t)(src->tok_off[s] - a) * src->L * src->K,
                  src->tok_off[s + 1] - src->tok_off[s], src->L, src->E, src->K);
    return EPLB_OK;
}

static int64_t first_due(const eplb_trigger_t *t)
{
    int64_t f = t->interval / 4;
    return f < 1 ? 1 : f;
}

/* Pass 1 (only for once/oracle runs): whole-trace load and the load of each
 * oracle decision's next window.  With a cache (whole-trace ids and ranks),
 * the ids are kept there so that pass 2 need not decode and route again. */
static eplb_status_t prepass(shared_t *sh, double *once_w, int32_t *ids,
                             uint16_t *rank, int32_t *lc, int32_t *cache_ids,
                             uint16_t *cache_rank)
{
    size_t LE = (size_t)sh->L * sh->E;
    size_t LK = (size_t)sh->L * sh->K;
    for (int64_t s0 = 0; s0 < sh->S;) {
        int64_t s1 = block_end(sh->src, s0);
        int64_t t0 = sh->src->token_level ? sh->src->tok_off[s0] : 0;
        EPLB_CHECK(read_block(sh->src, s0, s1, cache_ids ? cache_ids + t0 * LK : ids,
                              cache_rank ? cache_rank + t0 : rank, lc, 0));
        for (int64_t s = s0; s < s1; s++) {
            const int32_t *c = lc + (size_t)(s - s0) * LE;
            if (once_w)
                for (size_t i = 0; i < LE; i++)
                    once_w[i] += c[i];
            for (int i = 0; i < sh->nruns; i++) {
                run_t *r = &sh->runs[i];
                const eplb_trigger_t *t = &r->cfg->trig;
                if (!r->oracle)
                    continue;
                int64_t f = first_due(t);
                if (s < f)
                    continue;
                int64_t j = (s - f) / t->interval;
                if ((s - f) % t->interval < t->window && j < r->n_oracle)
                    for (size_t k = 0; k < LE; k++)
                        r->oracle[(size_t)j * LE + k] += c[k];
            }
        }
        s0 = s1;
    }
    return EPLB_OK;
}

static eplb_status_t run_init(run_t *r, const eplb_sim_run_cfg_t *cfg,
                              eplb_sim_result_t *res, const shared_t *sh,
                              const eplb_sim_opts_t *o)
{
    r->cfg = cfg;
    r->res = res;
    r->L = sh->L;
    r->E = sh->E;
    r->K = sh->K;
    r->G = sh->src->G;
    r->P = cfg->num_slots;
    r->D = cfg->num_gpus;
    r->N = cfg->num_nodes;
    if (r->D < 1 || r->N < 1 || r->D % r->N)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--nodes: %d GPUs are not divisible into %d nodes",
                              r->D, r->N);
    if (r->P < r->E || r->P % r->D)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--replicas: %d slots must be >= %d experts and a "
                              "multiple of %d GPUs", r->P, r->E, r->D);
    EPLB_CHECK(eplb_sim_trigger_check(&cfg->trig));
    r->is_none = !cfg->policy || !strcmp(cfg->policy->name, "none");
    r->Sg = r->P / r->D;
    r->maxcnt = r->P - r->E + 1;
    size_t LP = (size_t)r->L * r->P, LE = (size_t)r->L * r->E;
    r->phy2log = malloc(LP * sizeof *r->phy2log);
    r->target = malloc(LP * sizeof *r->target);
    r->logcnt = malloc(LE * sizeof *r->logcnt);
    r->log2phy = malloc(LE * r->maxcnt * sizeof *r->log2phy);
    r->maps = calloc((size_t)r->L, sizeof *r->maps);
    r->weights = malloc(LE * sizeof *r->weights);
    r->layer_bal = calloc((size_t)r->L, sizeof *r->layer_bal);
    if (!r->phy2log || !r->target || !r->logcnt || !r->log2phy || !r->maps ||
        !r->weights || !r->layer_bal)
        return eplb_error_set(EPLB_ERR_NOMEM, "run state: out of memory");
    if (cfg->trig.kind == EPLB_TRIGGER_TRTLLM) {
        r->ema = calloc(LE, sizeof *r->ema);
        if (!r->ema)
            return eplb_error_set(EPLB_ERR_NOMEM, "run state: out of memory");
    }
    if (cfg->trig.kind == EPLB_TRIGGER_ORACLE && !r->is_none) {
        int64_t f = first_due(&cfg->trig);
        r->n_oracle = sh->S > f ? (sh->S - f - 1) / cfg->trig.interval + 1 : 0;
        r->oracle = calloc((size_t)(r->n_oracle > 0 ? r->n_oracle : 1) * LE,
                           sizeof *r->oracle);
        if (!r->oracle)
            return eplb_error_set(EPLB_ERR_NOMEM, "oracle windows: out of memory");
    }
    r->keep_ev = o->keep_events || o->results_path;
    r->keep_all_ev = o->keep_events;
    r->max_moves = o->max_moves;
    eplb_placement_default(r->phy2log, r->L, r->E, r->P);
    eplb_sim_cost_init(&r->cost, &o->prof, &o->shape, r->D, r->N, r->P);
    if (o->results_path) {
        size_t B = BLOCK_STEPS;
        r->ser_tok = malloc(B * r->L * r->D * sizeof *r->ser_tok);
        r->ser_bal = malloc(B * r->L * sizeof *r->ser_bal);
        r->ser_time = malloc(B * 4 * sizeof *r->ser_time);
        if (!r->ser_tok || !r->ser_bal || !r->ser_time)
            return eplb_error_set(EPLB_ERR_NOMEM, "series: out of memory");
    }
    snprintf(res->label, sizeof res->label, "%s",
             cfg->label ? cfg->label : cfg->policy ? cfg->policy->name : "none");
    snprintf(res->policy, sizeof res->policy, "%s",
             cfg->policy ? cfg->policy->name : "none");
    res->cfg = *cfg;
    res->cfg.label = NULL;
    return EPLB_OK;
}

static void run_derive_all(run_t *r)
{
    for (int l = 0; l < r->L; l++) {
        derive_layer(r, l);
        eplb_layer_map_t m = {r->E, r->P, r->D, r->N, r->maxcnt,
                              r->logcnt + (size_t)l * r->E,
                              r->log2phy + (size_t)l * r->E * r->maxcnt};
        r->maps[l] = m;
    }
}

static void run_free(run_t *r)
{
    free(r->phy2log);
    free(r->target);
    free(r->logcnt);
    free(r->log2phy);
    free(r->maps);
    free(r->ema);
    free(r->weights);
    free(r->oracle);
    free(r->layer_bal);
    free(r->ser_tok);
    free(r->ser_bal);
    free(r->ser_time);
    for (size_t i = 0; i < r->nsnaps; i++)
        free(r->snaps[i].placement);
    free(r->snaps);
}

static void run_finish(run_t *r)
{
    eplb_sim_result_t *res = r->res;
    int64_t S = res->steps;
    res->balancedness = r->nlayers_seen ? r->sum_bal / r->nlayers_seen : 1;
    res->max_over_mean = r->nlayers_seen ? r->sum_mom / r->nlayers_seen : 1;
    res->worst_layer = 0;
    res->worst_layer_bal = 1;
    for (int l = 0; l < r->L; l++) {
        double b = S ? r->layer_bal[l] / S : 1;
        if (l == 0 || b < res->worst_layer_bal) {
            res->worst_layer = l;
            res->worst_layer_bal = b;
        }
    }
    res->compute_s = S ? r->sum_compute / S : 0;
    res->a2a_s = S ? r->sum_a2a / S : 0;
    res->moe_time_s = res->compute_s + res->a2a_s;
    res->overhead_s = S ? r->sum_over / S : 0;
    res->stall_s = r->sum_stall;
    res->total_s = r->sum_compute + r->sum_a2a + r->sum_over + r->sum_stall;
    res->gain_vs_none = NAN;
    res->baseline = -1;
}

static eplb_status_t flush_block(eplb_sim_h5_t *h5, run_t *runs, int nruns, int64_t n)
{
    for (int i = 0; i < nruns; i++) {
        run_t *r = &runs[i];
        EPLB_CHECK(eplb_sim_h5_append_steps(h5, i, n, r->ser_tok, r->ser_bal,
                                            r->ser_time));
        EPLB_CHECK(eplb_sim_h5_append_events(h5, i, r->res->events + r->ev_flushed,
                                             r->res->n_events - r->ev_flushed));
        r->ev_flushed = r->res->n_events;
        if (!r->keep_all_ev) /* written: memory stays bounded */
            r->res->n_events = r->ev_flushed = 0;
        for (size_t k = 0; k < r->nsnaps; k++) {
            EPLB_CHECK(eplb_sim_h5_append_placement(h5, i, r->snaps[k].step,
                                                    r->snaps[k].placement));
            free(r->snaps[k].placement);
        }
        r->nsnaps = 0;
    }
    return EPLB_OK;
}

eplb_status_t eplb_sim_replay(eplb_sim_result_t *results, eplb_sim_source_t *src,
                              const eplb_sim_run_cfg_t *cfgs, int nruns,
                              const eplb_sim_opts_t *opts)
{
    if (nruns < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "replay: no runs");
    eplb_status_t st = EPLB_OK;
    shared_t sh;
    memset(&sh, 0, sizeof sh);
    sh.opts = opts;
    sh.src = src;
    sh.L = src->L;
    sh.E = src->E;
    sh.K = src->K;
    sh.S = src->S;
    sh.nruns = nruns;
    sh.max_step_tokens = src->max_step_tokens;
    int nthreads = opts->threads > 0 ? opts->threads : eplb_num_threads();
    if (nthreads > nruns)
        nthreads = nruns;
    run_t *runs = calloc((size_t)nruns, sizeof *runs);
    eplb_sim_result_t *res = calloc((size_t)nruns, sizeof *res);
    work_t *work = calloc((size_t)nthreads, sizeof *work);
    pthread_t *tid = calloc((size_t)nthreads, sizeof *tid);
    worker_arg_t *wa = calloc((size_t)nthreads, sizeof *wa);
    int32_t *ids = NULL, *hist = NULL, *lc = NULL, *cache_ids = NULL;
    uint16_t *rank = NULL, *cache_rank = NULL;
    double *once_w = NULL;
    eplb_sim_h5_t *h5 = NULL;
    size_t LE = (size_t)sh.L * sh.E;
    EPLB_ALLOC_GOTO(runs, st, out);
    EPLB_ALLOC_GOTO(res, st, out);
    EPLB_ALLOC_GOTO(work, st, out);
    EPLB_ALLOC_GOTO(tid, st, out);
    EPLB_ALLOC_GOTO(wa, st, out);
    sh.runs = runs;
    int64_t maxW = 1;
    int need_pre = 0, need_once = 0;
    for (int i = 0; i < nruns; i++) {
        EPLB_CHECK_GOTO(run_init(&runs[i], &cfgs[i], &res[i], &sh, opts), st, out);
        const eplb_trigger_t *t = &cfgs[i].trig;
        if (!runs[i].is_none && t->kind != EPLB_TRIGGER_TRTLLM && t->window > maxW)
            maxW = t->window;
        if (!runs[i].is_none && t->kind == EPLB_TRIGGER_ONCE)
            need_pre = need_once = 1;
        if (runs[i].oracle)
            need_pre = 1;
        if (runs[i].P > sh.maxP)
            sh.maxP = runs[i].P;
        if (runs[i].D > sh.maxD)
            sh.maxD = runs[i].D;
    }
    sh.H = maxW + BLOCK_STEPS;
    size_t ntok = (size_t)(src->max_step_tokens > BLOCK_TOKENS ? src->max_step_tokens
                                                                : BLOCK_TOKENS);
    if (src->token_level) {
        ids = malloc(ntok * sh.L * sh.K * sizeof *ids);
        EPLB_ALLOC_GOTO(ids, st, out);
        if (src->read_src) {
            rank = malloc(ntok * sizeof *rank);
            EPLB_ALLOC_GOTO(rank, st, out);
        }
    }
    hist = calloc((size_t)sh.H * LE, sizeof *hist);
    lc = malloc((size_t)BLOCK_STEPS * LE * sizeof *lc);
    EPLB_ALLOC_GOTO(hist, st, out);
    EPLB_ALLOC_GOTO(lc, st, out);
    sh.hist = hist;
    if (need_pre) {
        if (need_once) {
            once_w = calloc(LE, sizeof *once_w);
            EPLB_ALLOC_GOTO(once_w, st, out);
        }
        /* keep the routed ids of the whole trace for pass 2 if they fit */
        int64_t T = src->token_level ? src->tok_off[src->S] : 0;
        if (T > 0 && (double)T * sh.L * sh.K * 4 <= CACHE_BYTES) {
            cache_ids = malloc((size_t)T * sh.L * sh.K * sizeof *cache_ids);
            if (cache_ids && rank)
                cache_rank = malloc((size_t)T * sizeof *cache_rank);
            if (!cache_ids || (rank && !cache_rank)) {
                free(cache_ids);
                free(cache_rank);
                cache_ids = NULL;
                cache_rank = NULL;
            }
        }
        EPLB_CHECK_GOTO(prepass(&sh, once_w, ids, rank, lc, cache_ids, cache_rank), st,
                        out);
    }
    for (int i = 0; i < nruns; i++) {
        run_t *r = &runs[i];
        if (!r->is_none && r->cfg->trig.kind == EPLB_TRIGGER_ONCE) {
            /* static placement from the whole trace, deployed before the run */
            for (size_t k = 0; k < LE; k++)
                r->weights[k] = (float)once_w[k];
            eplb_policy_args_t a = policy_args(r, r->phy2log);
            memcpy(r->target, r->phy2log, (size_t)r->L * r->P * sizeof *r->target);
            double t0 = now_s();
            EPLB_CHECK_GOTO(r->cfg->policy->fn(r->target, NULL, r->weights, r->L,
                                               r->E, &a), st, out);
            res[i].policy_s += opts->policy_time >= 0 ? opts->policy_time
                                                      : now_s() - t0;
            memcpy(r->phy2log, r->target, (size_t)r->L * r->P * sizeof *r->target);
        }
        run_derive_all(r);
    }
    if (opts->results_path) {
        EPLB_CHECK_GOTO(eplb_sim_h5_create(&h5, opts->results_path, sh.L, sh.E, sh.K,
                                           sh.S, src->model, opts->config_json,
                                           nruns), st, out);
        for (int i = 0; i < nruns; i++)
            EPLB_CHECK_GOTO(eplb_sim_h5_add_run(h5, i, &cfgs[i], res[i].label,
                                                res[i].policy, runs[i].phy2log),
                            st, out);
    }
    for (int i = 0; i < nthreads; i++) {
        wa[i].sh = &sh;
        wa[i].w = &work[i];
    }
    double t_start = now_s(), t_last = t_start;
    for (int64_t s0 = 0; s0 < sh.S;) {
        int64_t s1 = block_end(src, s0);
        sh.tok0 = src->token_level ? src->tok_off[s0] : 0;
        sh.ids = cache_ids ? cache_ids + (size_t)sh.tok0 * sh.L * sh.K : ids;
        sh.src_rank = !src->read_src ? NULL : cache_rank ? cache_rank + sh.tok0 : rank;
        EPLB_CHECK_GOTO(read_block(src, s0, s1, (int32_t *)sh.ids, (uint16_t *)sh.src_rank,
                                   lc, cache_ids != NULL), st, out);
        for (int64_t s = s0; s < s1; s++)
            memcpy(hist + (size_t)(s % sh.H) * LE, lc + (size_t)(s - s0) * LE,
                   LE * sizeof *hist);
        sh.s0 = s0;
        sh.s1 = s1;
        atomic_store(&sh.next, 0);
        int started = 0;
        if (nthreads > 1)
            for (; started < nthreads; started++)
                if (pthread_create(&tid[started], NULL, worker, &wa[started]))
                    break;
        if (started == 0)
            worker(&wa[0]);
        for (int i = 0; i < started; i++)
            pthread_join(tid[i], NULL);
        for (int i = 0; i < nruns; i++)
            if (runs[i].st != EPLB_OK) {
                st = eplb_error_set(runs[i].st, "%s", runs[i].err);
                goto out;
            }
        if (h5)
            EPLB_CHECK_GOTO(flush_block(h5, runs, nruns, s1 - s0), st, out);
        if (opts->progress && now_s() - t_last > 0.5) {
            t_last = now_s();
            fprintf(stderr, "\replb-replay: step %lld/%lld (%.0f%%), %.1f s",
                    (long long)s1, (long long)sh.S, 100.0 * s1 / sh.S,
                    t_last - t_start);
        }
        s0 = s1;
    }
    if (opts->progress && now_s() - t_start > 0.5)
        fprintf(stderr, "\n");
    for (int i = 0; i < nruns; i++) {
        res[i].steps = sh.S;
        run_finish(&runs[i]);
    }
    eplb_sim_results_compare(res, nruns);
    if (h5) {
        for (int i = 0; i < nruns; i++)
            EPLB_CHECK_GOTO(eplb_sim_h5_end_run(h5, i, &res[i], runs[i].phy2log), st,
                            out);
        eplb_sim_h5_t *h = h5;
        h5 = NULL;
        EPLB_CHECK_GOTO(eplb_sim_h5_finish(h), st, out);
    }
    if (!opts->keep_events)
        for (int i = 0; i < nruns; i++) {
            free(res[i].events);
            res[i].events = NULL;
            res[i].n_events = 0;
        }
    memcpy(results, res, (size_t)nruns * sizeof *res);
    free(res);
    res = NULL;
out:
    if (h5)
        eplb_sim_h5_abort(h5);
    if (res)
        eplb_sim_results_free(res, nruns), free(res);
    for (int i = 0; runs && i < nruns; i++)
        run_free(&runs[i]);
    for (int i = 0; work && i < nthreads; i++)
        work_free(&work[i]);
    free(runs);
    free(work);
    free(tid);
    free(wa);
    free(ids);
    free(rank);
    free(hist);
    free(lc);
    free(once_w);
    free(cache_ids);
    free(cache_rank);
    return st;
}

void eplb_sim_results_free(eplb_sim_result_t *results, int nruns)
{
    for (int i = 0; results && i < nruns; i++) {
        free(results[i].events);
        results[i].events = NULL;
        results[i].n_events = 0;
    }
}

void eplb_sim_results_compare(eplb_sim_result_t *r, int n)
{
    for (int i = 0; i < n; i++) {
        r[i].baseline = -1;
        r[i].gain_vs_none = NAN;
        for (int j = 0; j < n; j++)
            if (!strcmp(r[j].policy, "none") &&
                r[j].cfg.num_gpus == r[i].cfg.num_gpus &&
                r[j].cfg.num_nodes == r[i].cfg.num_nodes &&
                r[j].cfg.num_slots == r[i].cfg.num_slots) {
                r[i].baseline = j;
                if (r[j].total_s > 0)
                    r[i].gain_vs_none = 100.0 * (r[j].total_s - r[i].total_s) /
                                        r[j].total_s;
                break;
            }
    }
}
