/* run.c - one run (a policy at one grid point) stepping through a block:
 * trigger, policy, weight moves and commits, replica selection under the
 * run's own placement, cost and metrics.  The driver (replay.c) owns the
 * blocks and the threads. */
#include "sim_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "progress.h"

static const int32_t *hist_row(const sim_shared_t *sh, int64_t s)
{
    return sh->hist + (size_t)(s % sh->H) * sh->L * sh->E;
}

/* maps[l] for the current log2phy stride (every layer: after the stride
 * grew, all of them moved) */
static void set_maps(sim_run_t *r)
{
    for (int l = 0; l < r->L; l++) {
        eplb_layer_map_t m = {r->E,
                              r->P,
                              r->D,
                              r->N,
                              r->maxcnt,
                              r->logcnt + (size_t)l * r->E,
                              r->log2phy + (size_t)l * r->E * r->maxcnt};
        r->maps[l] = m;
    }
    r->maps_dirty = 1;
}

/* Layer l's replicas per expert into its logcnt row, from its phy2log;
 * the most of them (at least 1). */
static int count_replicas(sim_run_t *r, int l)
{
    int32_t *cnt = r->logcnt + (size_t)l * r->E;
    const int32_t *p2l = r->phy2log + (size_t)l * r->P;
    memset(cnt, 0, (size_t)r->E * sizeof *cnt);
    int most = 1;
    for (int p = 0; p < r->P; p++)
        if (p2l[p] >= 0 && p2l[p] < r->E && ++cnt[p2l[p]] > most)
            most = cnt[p2l[p]];
    return most;
}

/* Layer l's logcnt and log2phy rows (maxcnt wide) from its phy2log. */
static void derive_rows(sim_run_t *r, int l)
{
    eplb_placement_derive(r->logcnt + (size_t)l * r->E, r->log2phy + (size_t)l * r->E * r->maxcnt,
                          r->maxcnt, r->phy2log + (size_t)l * r->P, NULL, 1, r->E, r->P);
}

/* logcnt and log2phy of layer l from its phy2log.  log2phy's rows hold
 * maxcnt replicas: the most any expert has had in this run, not P - E + 1
 * (which cost L x E x (P - E + 1) x 4 bytes a run: 4.3 GB at 4096 layers of
 * 512 experts on 1024 slots, most of it -1).  A placement with more
 * replicas of one expert widens every row (twice as wide at least, at most
 * P - E + 1) and derives every layer again. */
static eplb_status_t derive_layer(sim_run_t *r, int l)
{
    int most = count_replicas(r, l);
    if (most > r->maxcnt) {
        /* the widest of every layer (derive_all meets them in order; the
         * others are re-derived here at the new width) */
        for (int k = 0; k < r->L; k++) {
            const int m = k == l ? 0 : count_replicas(r, k);
            most = m > most ? m : most;
        }
        int w = 2 * r->maxcnt > most ? 2 * r->maxcnt : most;
        if (w > r->P - r->E + 1)
            w = r->P - r->E + 1;
        int32_t *n = realloc(r->log2phy, (size_t)r->L * r->E * (size_t)w * sizeof *n);
        if (!n)
            return eplb_error_set(EPLB_ERR_NOMEM, "run state: out of memory");
        r->log2phy = n;
        r->maxcnt = w;
        for (int k = 0; k < r->L; k++)
            derive_rows(r, k);
        set_maps(r);
        return EPLB_OK;
    }
    derive_rows(r, l);
    return EPLB_OK;
}

static eplb_status_t add_event(sim_run_t *r, const eplb_sim_event_t *ev)
{
    eplb_sim_result_t *res = r->res;
    if (!r->keep_ev)
        return EPLB_OK;
    if (res->n_events == r->ev_cap) {
        size_t cap = r->ev_cap ? 2 * r->ev_cap : 16;
        eplb_sim_event_t *ne = realloc(res->events, cap * sizeof *ne);
        if (!ne)
            return eplb_error_set(EPLB_ERR_NOMEM, "events: out of memory");
        res->events = ne;
        r->ev_cap = cap;
    }
    res->events[res->n_events++] = *ev;
    return EPLB_OK;
}

/* Commit layer l of the target placement at step s. */
static eplb_status_t commit_layer(sim_run_t *r, int l, int64_t s, int64_t decided,
                                  int64_t wb, int64_t we, double policy_s)
{
    eplb_transfer_t tr;
    const int32_t *old = r->phy2log + (size_t)l * r->P;
    const int32_t *nw = r->target + (size_t)l * r->P;
    EPLB_CHECK(eplb_sim_transfer_plan(&tr, NULL, old, nw, &r->cost));
    /* int64 (signed overflow is undefined): reached only with expert sizes
     * near the model_config's 1e6 x 1e6 bound (DeepSeek-V3's 44 MB would
     * take ~2e11 moves) */
    if (tr.bytes > INT64_MAX - r->res->moved_bytes)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "run %s: the bytes moved pass 2^63 at step %lld (layer %d: %lld "
                              "replicas of %.4g bytes each); the model's expert size is beyond "
                              "what the totals hold",
                              r->res->label, (long long)s, l, (long long)tr.moved,
                              r->cost.expert_bytes);
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
    EPLB_CHECK(derive_layer(r, l));
    r->maps_dirty = 1;
    r->res->moved_replicas += tr.moved;
    r->res->moved_bytes += tr.bytes;
    r->step_stall += tr.time_s;
    return add_event(r, &ev);
}

/* Predicted balancedness of the current placement on weights, each expert's
 * load split evenly over its replicas (threshold trigger). */
static double predicted_balancedness(const sim_run_t *r, const float *w)
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

static eplb_status_t snapshot(sim_run_t *r, int64_t s, int keep)
{
    if (!keep)
        return EPLB_OK;
    if (r->nsnaps == r->capsnaps) {
        size_t cap = r->capsnaps ? r->capsnaps * 2 : 4;
        sim_snap_t *n = realloc(r->snaps, cap * sizeof *n);
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

eplb_policy_args_t eplb_sim_run_policy_args(const sim_run_t *r, const int32_t *old)
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

void eplb_sim_run_progress_init(eplb_progress_t *p, const sim_shared_t *sh,
                                const sim_run_t *r, int64_t s)
{
    char what[160] = "";
    if (sh->opts->progress)
        snprintf(what, sizeof what, "eplb-replay: step %lld/%lld, %s", (long long)s,
                 (long long)sh->S, r->res->label);
    eplb_progress_init(p, what);
}

/* A decision before step s: weights, policy, then commit or queue. */
static eplb_status_t decide(sim_shared_t *sh, sim_run_t *r, int64_t s)
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
        int64_t j = (s - eplb_sim_trigger_first(t)) / t->interval;
        for (size_t i = 0; i < LE; i++)
            w[i] = j < r->n_oracle ? (float)r->oracle[(size_t)j * LE + i] : 0;
    } else {
        eplb_sim_trigger_window(&wb, &we, t, s, sh->S);
        /* summed exactly (int64, as vLLM's expert_load_window and
         * SGLang's counts are), rounded to float once: a float sum lost
         * counts past 2^24 and depended on the steps' order */
        if (!r->wsum && !(r->wsum = malloc(LE * sizeof *r->wsum)))
            return eplb_error_set(EPLB_ERR_NOMEM, "window loads: out of memory");
        int64_t *sum = r->wsum;
        memset(sum, 0, LE * sizeof *sum);
        for (int64_t q = wb; q < we; q++) {
            const int32_t *h = hist_row(sh, q);
            for (size_t i = 0; i < LE; i++)
                sum[i] += h[i];
        }
        for (size_t i = 0; i < LE; i++)
            w[i] = (float)sum[i];
    }
    if (t->kind == EPLB_TRIGGER_THRESHOLD &&
        predicted_balancedness(r, w) >= t->threshold)
        return EPLB_OK;
    memcpy(r->target, r->phy2log, (size_t)L * P * sizeof *r->target);
    /* time-series aware policies (vec) get the window step by step */
    float *series = NULL;
    int64_t nser = we - wb;
    if (t->kind != EPLB_TRIGGER_TRTLLM && t->kind != EPLB_TRIGGER_ORACLE &&
        r->cfg->policy->reads_series && nser > 0 &&
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
    double t0 = eplb_now();
    eplb_status_t st = EPLB_OK;
    /* a slow policy's progress on the terminal (the step line waits for
     * every run's block) */
    eplb_progress_t prog;
    eplb_sim_run_progress_init(&prog, sh, r, s);
    for (int i = 0; st == EPLB_OK && i < (t->kind == EPLB_TRIGGER_TRTLLM ? nl : 1); i++) {
        int l = t->kind == EPLB_TRIGGER_TRTLLM ? (l0 + i) % L : 0;
        int n = t->kind == EPLB_TRIGGER_TRTLLM ? 1 : L;
        eplb_policy_args_t a = eplb_sim_run_policy_args(r, r->phy2log + (size_t)l * P);
        a.series = series;
        a.series_steps = series ? (int)nser : 0;
        if (o->progress && n > 1) {
            a.progress = eplb_progress_report;
            a.progress_ctx = &prog;
        }
        st = r->cfg->policy->fn(r->target + (size_t)l * P, NULL, w + (size_t)l * E, n, E,
                                &a);
        /* trtllm: one call per layer, the decision's layers counted here */
        if (o->progress && n == 1 && nl > 1)
            eplb_progress_report(&prog, i + 1, nl);
    }
    eplb_progress_end(&prog);
    double pol = o->policy_time >= 0 ? o->policy_time : eplb_now() - t0;
    free(series);
    if (st != EPLB_OK)
        return st;
    /* every expert must keep a replica, or selection has nowhere to go */
    for (int i = 0; i < nl; i++) {
        int l = (l0 + i) % L;
        if (eplb_placement_check(r->target + (size_t)l * P, 1, E, P, "policy output") !=
            EPLB_OK) {
            char why[256];
            snprintf(why, sizeof why, "%s", eplb_error_last());
            return eplb_error_set(EPLB_ERR_INTERNAL, "policy %s, layer %d: %s",
                                  r->cfg->policy->name, l, why);
        }
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
static eplb_status_t commit_pending(sim_run_t *r, int64_t s)
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

/* A counts trace's step in slots: each expert's count over its replicas,
 * as even as integers allow (the first n % R replicas in slot order take
 * one more), or with --select balanced by the balanced plan of the step's
 * counts (eplb_select_plan_balanced: what the token-level selection would
 * give these counts). */
static eplb_status_t split_counts(int32_t *slots, sim_run_t *r, sim_work_t *w, const int32_t *c,
                                  int l, eplb_select_mode_t mode)
{
    const int32_t *cnt = r->logcnt + (size_t)l * r->E;
    const int32_t *l2p = r->log2phy + (size_t)l * r->E * r->maxcnt;
    if (mode == EPLB_SELECT_BALANCED) {
        const size_t nn = (size_t)r->E + r->D, nq = (size_t)r->E * r->maxcnt;
        if (w->plan_n_cap < nn || w->plan_q_cap < nq) { /* runs differ in D and maxcnt */
            free(w->plan_n);
            free(w->plan_q);
            w->plan_n = malloc(sizeof *w->plan_n * nn);
            w->plan_q = malloc(sizeof *w->plan_q * nq);
            w->plan_n_cap = w->plan_q_cap = 0;
            if (!w->plan_n || !w->plan_q)
                return eplb_error_set(EPLB_ERR_NOMEM, "balanced plan: out of memory");
            w->plan_n_cap = nn, w->plan_q_cap = nq;
        }
        for (int e = 0; e < r->E; e++)
            w->plan_n[e] = c[e];
        EPLB_CHECK(eplb_select_plan_balanced(w->plan_q, w->plan_n + r->E, w->plan_n, &r->maps[l]));
        for (int e = 0; e < r->E; e++)
            for (int i = 0; i < cnt[e]; i++)
                slots[l2p[(size_t)e * r->maxcnt + i]] += w->plan_q[(size_t)e * r->maxcnt + i];
        return EPLB_OK;
    }
    for (int e = 0; e < r->E; e++) {
        int32_t n = c[e];
        int R = cnt[e];
        const int32_t *row = l2p + (size_t)e * r->maxcnt;
        if (R == 1) {
            slots[row[0]] += n;
        } else if (R > 1) {
            int32_t q = n / R, rem = n % R;
            for (int i = 0; i < R; i++)
                slots[row[i]] += q + (i < rem);
        }
    }
    return EPLB_OK;
}

/* Before step s: commits and decisions (they depend on the logical load
 * only, never on the selection), then the trtllm EMA of step s.  Gives the
 * stall charged to step s. */
static eplb_status_t step_pre(sim_shared_t *sh, sim_run_t *r, int64_t s, double *stall)
{
    const eplb_trigger_t *t = &r->cfg->trig;
    r->step_stall = 0;
    if (!r->is_none) {
        EPLB_CHECK(commit_pending(r, s));
        if (eplb_sim_trigger_due(t, s) && s < sh->S && r->pending == 0)
            EPLB_CHECK(decide(sh, r, s));
    }
    if (t->kind == EPLB_TRIGGER_TRTLLM && !r->is_none) {
        const int32_t *c = hist_row(sh, s);
        double d = t->ema_decay;
        for (size_t i = 0; i < (size_t)r->L * r->E; i++)
            r->ema[i] = d * r->ema[i] + c[i];
    }
    *stall = r->step_stall;
    return EPLB_OK;
}

/* Source ranks of step s mod D into *buf (grown to T), or NULL. */
static eplb_status_t step_ranks(const uint16_t **out, uint16_t **buf, size_t *cap,
                                const sim_shared_t *sh, const sim_run_t *r, int64_t s)
{
    int64_t a = sh->src->tok_off[s], T = sh->src->tok_off[s + 1] - a;
    const uint16_t *rank = sh->src_rank ? sh->src_rank + (a - sh->tok0) : NULL;
    *out = NULL;
    if (!rank || T <= 0)
        return EPLB_OK;
    /* a trace recorded with more ranks than this run's GPUs: rank r runs on
     * GPU r mod D */
    if ((size_t)T > *cap) {
        free(*buf);
        *buf = malloc((size_t)T * sizeof **buf);
        if (!*buf) {
            *cap = 0;
            return eplb_error_set(EPLB_ERR_NOMEM, "ranks: out of memory");
        }
        *cap = (size_t)T;
    }
    for (int64_t i = 0; i < T; i++)
        (*buf)[i] = (uint16_t)(rank[i] % r->D);
    *out = *buf;
    return EPLB_OK;
}

static eplb_select_cfg_t step_select_cfg(const sim_shared_t *sh, const sim_run_t *r,
                                         int64_t s, const uint16_t *rank)
{
    eplb_select_cfg_t c = EPLB_SELECT_CFG_INIT;
    c.mode = sh->opts->select;
    c.seed = sh->opts->seed;
    c.step = s;
    c.num_ranks = r->D;
    c.src_rank = rank;
    return c;
}

/* The part of a step's cost that is per layer and independent across
 * layers (traffic counts, the layer cost model): run on the pool. */
typedef struct {
    const sim_run_t *r;
    sim_work_t *w;
    int64_t T;
    const int32_t *counts, *ph;
    const uint16_t *rank;
    const int32_t *a2a32; /* [L][4][D] counted on the GPU, or NULL */
} layer_job_t;

/* Layers per job: a token's rows of adjacent layers share cache lines
 * (K = 8 int32 ids: two rows per 64-byte line), so a job takes two and
 * reads each line once. */
#define LAYERS_PER_JOB 2

static void layer_job(void *ctx, int jb)
{
    const layer_job_t *j = ctx;
    const sim_run_t *r = j->r;
    int D = r->D;
    const int l0 = jb * LAYERS_PER_JOB;
    const int nl = r->L - l0 < LAYERS_PER_JOB ? r->L - l0 : LAYERS_PER_JOB;
    const int a2a_on = (j->ph || j->a2a32) && D > 1 && j->T > 0;
    int64_t *a2a = j->w->a2a + (size_t)l0 * 4 * D;
    if (a2a_on && j->a2a32) {
        const int32_t *g = j->a2a32 + (size_t)l0 * 4 * D;
        for (size_t q = 0; q < (size_t)nl * 4 * D; q++)
            a2a[q] = g[q];
    } else if (a2a_on) {
        /* the shape was checked by eplb_sim_run_init */
        const eplb_traffic_cfg_t tc = {D, r->N, r->P};
        (void)eplb_traffic_count_cpu(a2a, j->ph, j->T, r->L, r->K, l0, nl, &tc, j->rank);
    }
    for (int l = l0; l < l0 + nl; l++) {
        const int64_t *si = NULL, *se = NULL, *ri = NULL, *re = NULL;
        if (a2a_on) {
            si = j->w->a2a + (size_t)l * 4 * D;
            se = si + D;
            ri = se + D;
            re = ri + D;
        }
        eplb_sim_cost_layer(&j->w->lcost[l], j->w->gtok + (size_t)l * D, &r->cost,
                            j->counts + (size_t)l * r->P, si, se, ri, re);
    }
}

/* Below this many (token, layer, k) entries a step's layers run on the
 * run's own thread: waking the helpers costs more than they save. */
#define POOL_MIN_ENTRIES 32768

/* Cost and metrics of step s from its slot counts [L][P] (and, token
 * level, its T tokens' replica ids and ranks, or their traffic a2a32
 * [L][4][D] as the GPU counted it).  The layers are modeled in parallel,
 * then summed in layer order, as one thread would. */
static void step_cost(sim_shared_t *sh, sim_run_t *r, sim_work_t *w, int64_t s,
                      int64_t T, const int32_t *counts, const int32_t *ph,
                      const uint16_t *rank, double stall, const int32_t *a2a32)
{
    int L = r->L, D = r->D, K = r->K;
    /* tokens of the step: counts traces give entries, K per token */
    double ntok = (double)T;
    if (!sh->src->token_level) {
        const int32_t *c = hist_row(sh, s);
        int64_t sum = 0;
        for (int e = 0; e < r->E; e++)
            sum += c[e];
        ntok = (double)sum / K;
    }
    double rec = r->is_none ? 0 : eplb_sim_cost_record(&r->cost, ntok);
    int64_t b = s - sh->s0;
    layer_job_t job = {r, w, T, counts, ph, rank, a2a32};
    /* traffic counted here: the layers on the pool (counted on the GPU:
     * what is left is too little to wake it) */
    int big = ph && !a2a32 && D > 1 && T * L * K >= POOL_MIN_ENTRIES;
    eplb_pool_run((L + LAYERS_PER_JOB - 1) / LAYERS_PER_JOB, big ? w->pool_threads : 1, layer_job,
                  &job);
    double comp = 0, a2a = 0, over = 0;
    for (int l = 0; l < L; l++) {
        const eplb_layer_cost_t lc = w->lcost[l];
        const int64_t *gtok = w->gtok + (size_t)l * D;
        double bal = lc.max_tokens > 0
                         ? (double)lc.total_tokens / D / (double)lc.max_tokens
                         : 1.0;
        r->sum_bal += bal;
        r->sum_mom += bal > 0 ? 1.0 / bal : 0;
        r->layer_bal[l] += bal;
        comp += lc.compute_s;
        a2a += lc.a2a_s;
        if (!r->is_none)
            over += rec >= 0 ? rec : r->cost.prof.record_frac * (lc.compute_s + lc.a2a_s);
        if (sh->src->token_level)
            r->res->tokens_lost += T * K - lc.total_tokens;
        if (r->ser_bal) {
            r->ser_bal[(size_t)b * L + l] = (float)bal;
            /* int64: a counts trace's expert counts reach 2^31 - 1, and a
             * GPU sums P / D of them (an SGLang run total wrapped) */
            memcpy(r->ser_tok + ((size_t)b * L + l) * D, gtok, (size_t)D * sizeof *gtok);
        }
    }
    r->nlayers_seen += L;
    r->sum_compute += comp;
    r->sum_a2a += a2a;
    r->sum_over += over;
    r->sum_stall += stall;
    if (r->ser_time) {
        double *tm = r->ser_time + (size_t)b * 4;
        tm[0] = comp;
        tm[1] = a2a;
        tm[2] = over;
        tm[3] = stall;
    }
}

static eplb_status_t run_step(sim_shared_t *sh, sim_run_t *r, sim_work_t *w, int64_t s)
{
    int L = r->L, P = r->P, D = r->D, K = r->K;
    double stall;
    EPLB_CHECK(step_pre(sh, r, s, &stall));
    memset(w->counts, 0, (size_t)L * P * sizeof *w->counts);
    int64_t T = 0;
    const int32_t *ph = NULL;
    const uint16_t *rank = NULL;
    if (sh->src->token_level) {
        int64_t a = sh->src->tok_off[s], b = sh->src->tok_off[s + 1];
        T = b - a;
        const int32_t *ids = sh->ids + (size_t)(a - sh->tok0) * L * K;
        EPLB_CHECK(step_ranks(&rank, &w->rank, &w->rank_cap, sh, r, s));
        eplb_select_cfg_t c = step_select_cfg(sh, r, s, rank);
        c.threads = w->pool_threads; /* the run's share of --threads */
        if (T > 0)
            EPLB_CHECK(eplb_select_record_cpu(D > 1 ? w->phys : NULL, w->counts, ids,
                                              T, L, K, r->maps, &c));
        ph = w->phys;
    } else {
        const int32_t *c = hist_row(sh, s);
        for (int l = 0; l < L; l++)
            EPLB_CHECK(split_counts(w->counts + (size_t)l * P, r, w, c + (size_t)l * r->E, l,
                                    sh->opts->select));
    }
    step_cost(sh, r, w, s, T, w->counts, ph, rank, stall, NULL);
    return EPLB_OK;
}

/* ---- GPU selection (opts.gpu_select) --------------------------------------
 * Per step: decisions and commits on the CPU (they never depend on the
 * selection), maps uploaded when they changed, then selection and
 * recording of step s enqueued on the run's stream into slot s&1 (rows
 * and ids in, counts and replica ids out); while the GPU works, the CPU
 * models step s-1 from the other slot; then wait.  The kernels follow the
 * same rules (kernels/rules.h) as eplb_select_record_cpu, so the counts
 * are bit-identical to the CPU path, and so is everything derived. */
static eplb_status_t gpu_submit(sim_shared_t *sh, sim_run_t *r, int64_t s, int slot,
                                int64_t *T_out)
{
    sim_gpu_run_t *gr = r->gpu;
    int L = r->L, P = r->P, K = r->K;
    int64_t a = sh->src->tok_off[s], T = sh->src->tok_off[s + 1] - a;
    size_t cap = (size_t)gr->cap;
    const uint16_t *rank = NULL;
    *T_out = T;
    if (T > gr->cap)
        return eplb_error_set(EPLB_ERR_INTERNAL, "gpu select: step %lld has %lld tokens, "
                              "buffers hold %lld", (long long)s, (long long)T,
                              (long long)gr->cap);
    EPLB_CHECK(step_ranks(&rank, &gr->rank[slot], &cap, sh, r, s));
    if (r->maps_dirty) {
        if (gr->g)
            EPLB_CHECK(eplb_gpu_set_maps(gr->g, r->maps, L));
        r->maps_dirty = 0;
    }
    if (T == 0) {
        memset(gr->h_counts[slot], 0, (size_t)L * P * sizeof(int32_t));
        return EPLB_OK;
    }
    eplb_select_cfg_t c = step_select_cfg(sh, r, s, rank);
    eplb_gpu_rows_t rows = {NULL, NULL};
    if (rank && gr->g) {
        EPLB_CHECK(eplb_select_token_rows(gr->h_trow[slot], gr->h_trank[slot], T, r->D,
                                          rank));
        EPLB_CHECK(eplb_gpu_copy(gr->g, gr->d_trow[slot], gr->h_trow[slot],
                                 (size_t)T * sizeof(uint32_t)));
        EPLB_CHECK(eplb_gpu_copy(gr->g, gr->d_trank[slot], gr->h_trank[slot],
                                 (size_t)T * sizeof(uint16_t)));
        rows.d_trow = gr->d_trow[slot];
        rows.d_trank = gr->d_trank[slot];
    }
    const eplb_traffic_cfg_t tc = {r->D, r->N, P};
    const size_t na2a = (size_t)L * 4 * r->D;
    if (!gr->g) { /* emulated: the CPU kernels on the same slots */
        memset(gr->h_counts[slot], 0, (size_t)L * P * sizeof(int32_t));
        EPLB_CHECK(eplb_select_record_cpu(r->D > 1 ? gr->h_phys[slot] : NULL,
                                          gr->h_counts[slot],
                                          sh->ids + (size_t)(a - sh->tok0) * L * K, T,
                                          L, K, r->maps, &c));
        if (gr->traffic) { /* as the GPU gives it: int32 */
            EPLB_CHECK(eplb_traffic_count_cpu(gr->emu_a2a, gr->h_phys[slot], T, L, K, 0,
                                              L, &tc, rank));
            for (size_t q = 0; q < na2a; q++)
                gr->h_a2a[slot][q] = (int32_t)gr->emu_a2a[q];
        }
        return EPLB_OK;
    }
    c.src_rank = NULL; /* a host pointer: the device takes rows */
    int32_t *d_phys = r->D > 1 ? gr->d_phys[slot] : NULL;
    EPLB_CHECK(eplb_gpu_memset(gr->g, gr->d_counts[slot], 0,
                               (size_t)L * P * sizeof(int32_t)));
    EPLB_CHECK(eplb_gpu_select_record(gr->g, d_phys, gr->d_counts[slot],
                                      sh->d_ids + (size_t)(a - sh->tok0) * L * K, T, L,
                                      K, &c, rows));
    EPLB_CHECK(eplb_gpu_copy(gr->g, gr->h_counts[slot], gr->d_counts[slot],
                             (size_t)L * P * sizeof(int32_t)));
    if (gr->traffic) { /* the traffic counted on the GPU: no ids come back */
        EPLB_CHECK(eplb_gpu_traffic_count(gr->g, gr->d_a2a[slot], d_phys, T, L, K, &tc,
                                          rows.d_trank));
        EPLB_CHECK(eplb_gpu_copy(gr->g, gr->h_a2a[slot], gr->d_a2a[slot],
                                 na2a * sizeof(int32_t)));
    } else if (d_phys) {
        EPLB_CHECK(eplb_gpu_copy(gr->g, gr->h_phys[slot], d_phys,
                                 (size_t)T * L * K * sizeof(int32_t)));
    }
    return EPLB_OK;
}

/* step_cost of a step the GPU path selected, from its slot */
static void gpu_step_cost(sim_shared_t *sh, sim_run_t *r, sim_work_t *w, int64_t s, int64_t T,
                          double stall)
{
    sim_gpu_run_t *gr = r->gpu;
    const int ps = (int)(s & 1);
    step_cost(sh, r, w, s, T, gr->h_counts[ps], gr->traffic ? NULL : gr->h_phys[ps],
              sh->src_rank && T > 0 ? gr->rank[ps] : NULL, stall,
              gr->traffic ? gr->h_a2a[ps] : NULL);
}

static eplb_status_t run_block_gpu(sim_shared_t *sh, sim_run_t *r, sim_work_t *w)
{
    sim_gpu_run_t *gr = r->gpu;
    int64_t prev = -1, prevT = 0;
    double prev_stall = 0;
    eplb_status_t st = EPLB_OK;
    for (int64_t s = sh->s0; s < sh->s1; s++) {
        int slot = (int)(s & 1);
        double stall;
        int64_t T;
        EPLB_CHECK_GOTO(step_pre(sh, r, s, &stall), st, out);
        EPLB_CHECK_GOTO(gpu_submit(sh, r, s, slot, &T), st, out);
        if (prev >= 0)
            gpu_step_cost(sh, r, w, prev, prevT, prev_stall);
        if (gr->g)
            EPLB_CHECK_GOTO(eplb_gpu_sync(gr->g), st, out);
        prev = s;
        prevT = T;
        prev_stall = stall;
    }
    if (prev >= 0)
        gpu_step_cost(sh, r, w, prev, prevT, prev_stall);
out:
    if (st != EPLB_OK && gr->g)
        (void)eplb_gpu_sync(gr->g); /* nothing in flight writes freed memory */
    return st;
}

/* A worker's per-step buffers (the replica ids apart), freed and cleared. */
static void step_buffers_free(sim_work_t *w)
{
    free(w->counts);
    free(w->a2a);
    free(w->gtok);
    free(w->lcost);
    w->counts = NULL;
    w->a2a = NULL;
    w->gtok = NULL;
    w->lcost = NULL;
}

static eplb_status_t work_fit(sim_work_t *w, const sim_shared_t *sh)
{
    const size_t need = sim_step_entries(sh->max_step_tokens, sh->L, sh->K);
    if (need > w->phys_cap) {
        free(w->phys);
        w->phys = malloc(need * sizeof *w->phys);
        if (!w->phys)
            return eplb_error_set(EPLB_ERR_NOMEM, "replica ids: out of memory");
        w->phys_cap = need;
    }
    if (!w->counts || !w->a2a || !w->gtok || !w->lcost) {
        /* all four or none: a worker whose allocation failed for one run
         * is used again by the next (it had kept counts, skipped the rest
         * and written through NULL) */
        step_buffers_free(w);
        w->counts = malloc((size_t)sh->L * sh->maxP * sizeof *w->counts);
        w->a2a = malloc((size_t)sh->L * 4 * sh->maxD * sizeof *w->a2a);
        w->gtok = malloc((size_t)sh->L * sh->maxD * sizeof *w->gtok);
        w->lcost = malloc((size_t)sh->L * sizeof *w->lcost);
        if (!w->counts || !w->a2a || !w->gtok || !w->lcost) {
            step_buffers_free(w);
            return eplb_error_set(EPLB_ERR_NOMEM, "replay workspace: out of memory");
        }
    }
    return EPLB_OK;
}

void eplb_sim_run_block(sim_shared_t *sh, sim_run_t *r, sim_work_t *w)
{
    if (r->st != EPLB_OK)
        return;
    eplb_status_t st = work_fit(w, sh);
    if (st == EPLB_OK && r->gpu)
        st = run_block_gpu(sh, r, w);
    for (int64_t s = sh->s0; st == EPLB_OK && !r->gpu && s < sh->s1; s++)
        st = run_step(sh, r, w, s);
    if (st != EPLB_OK) {
        r->st = st;
        snprintf(r->err, sizeof r->err, "%s", eplb_error_last());
    }
}

void eplb_sim_work_free(sim_work_t *w)
{
    free(w->phys);
    step_buffers_free(w);
    free(w->rank);
    free(w->plan_n);
    free(w->plan_q);
}

eplb_status_t eplb_sim_run_init(sim_run_t *r, const eplb_sim_run_cfg_t *cfg,
                              eplb_sim_result_t *res, const sim_shared_t *sh,
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
    /* the traffic count's shape (layer_job counts without checking again) */
    const eplb_traffic_cfg_t tc = {r->D, r->N, r->P};
    EPLB_CHECK(eplb_traffic_check(0, r->L, r->K, 0, r->L, &tc));
    r->is_none = !cfg->policy || !strcmp(cfg->policy->name, "none");
    r->Sg = r->P / r->D;
    r->maxcnt = 1; /* widened by derive_layer as placements need */
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
        int64_t f = eplb_sim_trigger_first(&cfg->trig);
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
        /* a block holds at most BLOCK_STEPS steps and never more than the
         * trace (L x D x 8 bytes a step: 8 GiB for 256 steps of 4096
         * layers on 1024 GPUs) */
        size_t B = sh->S > 0 && sh->S < BLOCK_STEPS ? (size_t)sh->S : BLOCK_STEPS;
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

eplb_status_t eplb_sim_run_derive_all(sim_run_t *r)
{
    for (int l = 0; l < r->L; l++)
        EPLB_CHECK(derive_layer(r, l));
    set_maps(r);
    return EPLB_OK;
}

static void gpu_run_free(sim_gpu_run_t *gr)
{
    if (!gr)
        return;
    if (gr->g) {
        (void)eplb_gpu_sync(gr->g);
        for (int i = 0; i < 2; i++) {
            eplb_gpu_host_free(gr->g, gr->h_counts[i]);
            eplb_gpu_host_free(gr->g, gr->h_phys[i]);
            eplb_gpu_host_free(gr->g, gr->h_trow[i]);
            eplb_gpu_host_free(gr->g, gr->h_trank[i]);
            eplb_gpu_host_free(gr->g, gr->h_a2a[i]);
            eplb_gpu_free(gr->g, gr->d_a2a[i]);
            eplb_gpu_free(gr->g, gr->d_counts[i]);
            eplb_gpu_free(gr->g, gr->d_phys[i]);
            eplb_gpu_free(gr->g, gr->d_trow[i]);
            eplb_gpu_free(gr->g, gr->d_trank[i]);
        }
        eplb_gpu_close(gr->g);
    } else {
        for (int i = 0; i < 2; i++) {
            free(gr->h_counts[i]);
            free(gr->h_phys[i]);
            free(gr->h_a2a[i]);
        }
    }
    free(gr->emu_a2a);
    for (int i = 0; i < 2; i++)
        free(gr->rank[i]);
    free(gr);
}

eplb_status_t eplb_sim_run_gpu_open(sim_run_t *r, int64_t max_step_tokens, int emulate)
{
    eplb_status_t st = EPLB_OK;
    sim_gpu_run_t *gr = calloc(1, sizeof *gr);
    EPLB_ALLOC_GOTO(gr, st, out);
    gr->cap = max_step_tokens > 0 ? max_step_tokens : 1;
    size_t cap = (size_t)gr->cap, LP = (size_t)r->L * r->P;
    /* the traffic counted on the GPU (up to 64 GPUs): the replica ids
     * stay there, so the host holds no copy of them */
    /* EPLB_GPU_TRAFFIC=0: the ids copied back (timing) */
    gr->traffic = r->D > 1 && r->D <= EPLB_GPU_TRAFFIC_MAX_GPUS &&
                  !eplb_env_off("EPLB_GPU_TRAFFIC");
    size_t nphys = r->D > 1 && (emulate || !gr->traffic) ? cap * r->L * r->K : 1;
    size_t na2a = gr->traffic ? (size_t)r->L * 4 * r->D : 1;
    for (int i = 0; emulate && i < 2; i++) {
        gr->h_counts[i] = malloc(LP * sizeof(int32_t));
        gr->h_phys[i] = malloc(nphys * sizeof(int32_t));
        gr->h_a2a[i] = malloc(na2a * sizeof(int32_t));
        gr->rank[i] = malloc(cap * sizeof *gr->rank[i]);
        EPLB_ALLOC_GOTO(gr->h_counts[i], st, out);
        EPLB_ALLOC_GOTO(gr->h_phys[i], st, out);
        EPLB_ALLOC_GOTO(gr->h_a2a[i], st, out);
        EPLB_ALLOC_GOTO(gr->rank[i], st, out);
    }
    if (emulate) {
        gr->emu_a2a = malloc(na2a * sizeof *gr->emu_a2a);
        EPLB_ALLOC_GOTO(gr->emu_a2a, st, out);
    }
    if (!emulate)
        EPLB_CHECK_GOTO(eplb_gpu_open(&gr->g, -1), st, out);
    for (int i = 0; !emulate && i < 2; i++) {
        EPLB_CHECK_GOTO(eplb_gpu_host_alloc(gr->g, (void **)&gr->h_counts[i],
                                            LP * sizeof(int32_t)), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_host_alloc(gr->g, (void **)&gr->h_phys[i],
                                            nphys * sizeof(int32_t)), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_host_alloc(gr->g, (void **)&gr->h_trow[i],
                                            cap * sizeof(uint32_t)), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_host_alloc(gr->g, (void **)&gr->h_trank[i],
                                            cap * sizeof(uint16_t)), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_host_alloc(gr->g, (void **)&gr->h_a2a[i],
                                            na2a * sizeof(int32_t)), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_alloc(gr->g, (void **)&gr->d_counts[i],
                                       LP * sizeof(int32_t)), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_alloc(gr->g, (void **)&gr->d_phys[i],
                                       (r->D > 1 ? cap * r->L * r->K : 1) * sizeof(int32_t)),
                        st, out);
        EPLB_CHECK_GOTO(eplb_gpu_alloc(gr->g, (void **)&gr->d_a2a[i],
                                       na2a * sizeof(int32_t)), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_alloc(gr->g, (void **)&gr->d_trow[i],
                                       cap * sizeof(uint32_t)), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_alloc(gr->g, (void **)&gr->d_trank[i],
                                       cap * sizeof(uint16_t)), st, out);
        gr->rank[i] = malloc(cap * sizeof *gr->rank[i]);
        EPLB_ALLOC_GOTO(gr->rank[i], st, out);
    }
    r->gpu = gr;
    r->maps_dirty = 1;
    gr = NULL;
out:
    gpu_run_free(gr);
    return st;
}

void eplb_sim_run_free(sim_run_t *r)
{
    gpu_run_free(r->gpu);
    r->gpu = NULL;
    free(r->phy2log);
    free(r->target);
    free(r->logcnt);
    free(r->log2phy);
    free(r->maps);
    free(r->ema);
    free(r->wsum);
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

void eplb_sim_run_finish(sim_run_t *r)
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

