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
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "results.h"
#include "tmpfile_guard.h"

typedef struct {
    sim_shared_t *sh;
    sim_work_t *w;
} worker_arg_t;

static void *worker(void *p)
{
    worker_arg_t *a = p;
    for (;;) {
        int i = atomic_fetch_add(&a->sh->next, 1);
        if (i >= a->sh->nruns)
            break;
        eplb_sim_run_block(a->sh, &a->sh->runs[i], a->w);
    }
    return NULL;
}

/* Layers per counting job: the job reads this many layers' K ids of each
 * token in one run of memory. */
#define COUNT_LAYERS 8

/* Logical counts of a block's steps, one job per (step, group of
 * COUNT_LAYERS layers) on the reading thread's pool (a block of 52K
 * tokens is 24M ids: counting them on one core took as long as decoding
 * them on sixteen). */
typedef struct {
    const eplb_sim_source_t *src;
    int64_t s0;
    const int32_t *ids; /* the block's, from token tok_off[s0] */
    int32_t *lc;        /* [s1-s0][L][E] */
    int ngroups;
} count_job_t;

/* Counts [l0, l1) x [E] of one step (invalid ids skipped). */
static void count_job(void *ctx, int i)
{
    const count_job_t *j = ctx;
    const eplb_sim_source_t *src = j->src;
    int L = src->L, E = src->E, K = src->K;
    int64_t s = j->s0 + i / j->ngroups;
    int l0 = i % j->ngroups * COUNT_LAYERS, l1 = l0 + COUNT_LAYERS < L ? l0 + COUNT_LAYERS : L;
    int64_t a = src->tok_off[s], T = src->tok_off[s + 1] - a;
    const int32_t *ids = j->ids + (size_t)(a - src->tok_off[j->s0]) * L * K;
    int32_t *lc = j->lc + (size_t)(s - j->s0) * L * E;
    memset(lc + (size_t)l0 * E, 0, (size_t)(l1 - l0) * E * sizeof *lc);
    for (int64_t t = 0; t < T; t++)
        for (int l = l0; l < l1; l++) {
            const int32_t *x = ids + ((size_t)t * L + l) * K;
            for (int k = 0; k < K; k++)
                if (x[k] >= 0 && x[k] < E)
                    lc[(size_t)l * E + x[k]]++;
        }
}

/* Next block [s0, *s1): at most BLOCK_STEPS steps and bt tokens (but at
 * least one step); the first block a quarter of that, since no run starts
 * before it is read. */
static int64_t block_end(const eplb_sim_source_t *src, int64_t s0, int64_t bt)
{
    if (s0 == 0 && bt >= 4)
        bt /= 4;
    int64_t s1 = s0 + 1;
    while (s1 < src->S && s1 - s0 < BLOCK_STEPS &&
           (!src->token_level || src->tok_off[s1 + 1] - src->tok_off[s0] <= bt))
        s1++;
    return s1;
}

/* Tokens of the largest block; *multi: whether there is more than one. */
static int64_t block_tokens_max(const eplb_sim_source_t *src, int64_t bt, int *multi)
{
    int64_t most = 0;
    *multi = 0;
    if (!src->token_level)
        return 0;
    for (int64_t s0 = 0; s0 < src->S;) {
        int64_t s1 = block_end(src, s0, bt);
        if (src->tok_off[s1] - src->tok_off[s0] > most)
            most = src->tok_off[s1] - src->tok_off[s0];
        *multi |= s0 > 0;
        s0 = s1;
    }
    return most;
}

/* /load/counts beside the token level: no run uses them, but a bad value
 * is still bad input (they were never read).  Read, so that the reader's
 * checks run, and where the ids are the recorded ones (no logits to route),
 * each step's counts must be those of its ids in lc. */
static eplb_status_t check_counts(eplb_sim_source_t *src, int64_t s0, int64_t s1,
                                  const int32_t *lc)
{
    const eplb_trace_info_t *in = eplb_trace_info(src->trace);
    const size_t LE = (size_t)src->L * src->E;
    int32_t *cn = malloc((size_t)(s1 - s0) * LE * sizeof *cn + 1);
    if (!cn)
        return eplb_error_set(EPLB_ERR_NOMEM, "counts check: out of memory");
    eplb_status_t st = eplb_trace_read_counts(src->trace, cn, s0, s1);
    for (size_t i = 0; st == EPLB_OK && !(in->levels & EPLB_LEVEL_LOGITS) &&
                       i < (size_t)(s1 - s0) * LE;
         i++)
        if (cn[i] != lc[i])
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: /load/counts disagree with /router/topk_ids: step %lld "
                                "layer %d expert %d: counts %d, the ids %d",
                                eplb_trace_path(src->trace), (long long)(s0 + (int64_t)(i / LE)),
                                (int)(i % LE / (size_t)src->E), (int)(i % (size_t)src->E), cn[i],
                                lc[i]);
    free(cn);
    return st;
}

/* Read steps [s0, s1): ids (+ ranks) and the logical counts of each step
 * into lc [s1-s0][L][E], counted on `threads` threads (src/pool.h). */
static eplb_status_t read_block(eplb_sim_source_t *src, int64_t s0, int64_t s1,
                                int32_t *ids, uint16_t *rank, int32_t *lc,
                                int ids_ready, int threads)
{
    if (!src->token_level)
        return src->read_counts(src, lc, s0, s1);
    int64_t a = src->tok_off[s0], b = src->tok_off[s1];
    if (b > a && !ids_ready) {
        EPLB_CHECK(src->read_ids(src, ids, a, b));
        if (rank && src->read_src)
            EPLB_CHECK(src->read_src(src, rank, a, b));
    }
    count_job_t job = {src, s0, ids, lc, (src->L + COUNT_LAYERS - 1) / COUNT_LAYERS};
    eplb_pool_run((int)(s1 - s0) * job.ngroups, threads, count_job, &job);
    /* ids_ready: pass 1 read these steps and checked their counts */
    if (!ids_ready && src->trace && (eplb_trace_info(src->trace)->levels & EPLB_LEVEL_COUNTS))
        return check_counts(src, s0, s1, lc);
    return EPLB_OK;
}

/* Pass 1 (only for once/oracle runs): whole-trace load and the load of each
 * oracle decision's next window.  With a cache (whole-trace ids and ranks),
 * the ids are kept there so that pass 2 need not decode and route again. */
static eplb_status_t prepass(sim_shared_t *sh, double *once_w, float *once_series, int32_t *ids,
                             uint16_t *rank, int32_t *lc, int32_t *cache_ids, uint16_t *cache_rank)
{
    size_t LE = (size_t)sh->L * sh->E;
    size_t LK = (size_t)sh->L * sh->K;
    for (int64_t s0 = 0; s0 < sh->S;) {
        int64_t s1 = block_end(sh->src, s0, sh->block_tokens);
        int64_t t0 = sh->src->token_level ? sh->src->tok_off[s0] : 0;
        EPLB_CHECK(read_block(sh->src, s0, s1, cache_ids ? cache_ids + t0 * LK : ids,
                              cache_rank ? cache_rank + t0 : rank, lc, 0, sh->pool_threads));
        for (int64_t s = s0; s < s1; s++) {
            const int32_t *c = lc + (size_t)(s - s0) * LE;
            if (once_w)
                for (size_t i = 0; i < LE; i++)
                    once_w[i] += c[i];
            /* vec under once: the whole trace step by step, as rebalance
             * gives it a 3-D logical_count */
            if (once_series)
                for (size_t i = 0; i < LE; i++)
                    once_series[(size_t)s * LE + i] = (float)c[i];
            for (int i = 0; i < sh->nruns; i++) {
                sim_run_t *r = &sh->runs[i];
                const eplb_trigger_t *t = &r->cfg->trig;
                if (!r->oracle)
                    continue;
                int64_t f = eplb_sim_trigger_first(t);
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

/* GPU selection (opts.gpu_select): the next block is decoded (and routed)
 * on this thread while the runs select, record and model the current one. */
typedef struct {
    eplb_sim_source_t *src;
    int64_t s0, s1;
    int32_t *ids;
    uint16_t *rank;
    int32_t *lc;
    int ids_ready;
    int pool_threads;
    eplb_status_t st;
    char err[512];
} reader_arg_t;

static void *reader(void *p)
{
    reader_arg_t *a = p;
    a->st = read_block(a->src, a->s0, a->s1, a->ids, a->rank, a->lc, a->ids_ready, a->pool_threads);
    if (a->st != EPLB_OK)
        snprintf(a->err, sizeof a->err, "%s", eplb_error_last());
    return NULL;
}

static eplb_status_t flush_block(eplb_sim_h5_t *h5, sim_run_t *runs, int nruns, int64_t n)
{
    for (int i = 0; i < nruns; i++) {
        sim_run_t *r = &runs[i];
        EPLB_CHECK(eplb_sim_h5_append_steps(h5, i, n, r->ser_tok, r->ser_bal,
                                            r->ser_time));
        if (r->res->n_events > r->ev_flushed) /* events may be NULL: no NULL + 0 */
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
    sim_shared_t sh;
    memset(&sh, 0, sizeof sh);
    sh.opts = opts;
    sh.src = src;
    sh.L = src->L;
    sh.E = src->E;
    sh.K = src->K;
    sh.S = src->S;
    sh.nruns = nruns;
    sh.max_step_tokens = src->max_step_tokens;
    sh.block_tokens = opts->block_tokens > 0 ? opts->block_tokens : BLOCK_TOKENS;
    int total = opts->threads > 0 ? opts->threads : eplb_num_threads();
    int nthreads = total < nruns ? total : nruns;
    /* each run worker holds one step's replica ids for the traffic count
     * (max step tokens x L x K x 4 bytes, sim/run.c work_fit): near the
     * 2 GiB-a-step limit, 16 workers wanted 36 GB.  At most half of the
     * memory this process may take goes to them; fewer workers change
     * only the speed (outputs do not depend on the thread count). */
    if (nthreads > 1 && src->token_level) {
        const double per =
            (double)sim_step_entries(src->max_step_tokens, src->L, src->K) * sizeof(int32_t);
        const size_t avail = eplb_memory_available();
        if (avail != SIZE_MAX && per * nthreads > 0.5 * (double)avail) {
            const double fit = 0.5 * (double)avail / per;
            nthreads = fit < 1 ? 1 : (int)fit;
        }
    }
    sim_run_t *runs = calloc((size_t)nruns, sizeof *runs);
    eplb_sim_result_t *res = calloc((size_t)nruns, sizeof *res);
    sim_work_t *work = calloc((size_t)nthreads, sizeof *work);
    pthread_t *tid = calloc((size_t)nthreads, sizeof *tid);
    worker_arg_t *wa = calloc((size_t)nthreads, sizeof *wa);
    int32_t *ids = NULL, *hist = NULL, *lc = NULL, *cache_ids = NULL;
    uint16_t *rank = NULL, *cache_rank = NULL;
    double *once_w = NULL;
    float *once_series = NULL;
    eplb_sim_h5_t *h5 = NULL;
    size_t LE = (size_t)sh.L * sh.E;
    /* GPU selection: upload handle, block ids on the device, second buffers */
    eplb_gpu_t *up = NULL;
    int32_t *d_ids = NULL, *ids2 = NULL, *lc2 = NULL;
    uint16_t *rank2 = NULL;
    int gpu_sel = opts->gpu_select && src->token_level;
    int emulate = opts->gpu_select == 2; /* the pipeline on the CPU (tests) */
    /* EPLB_TIMINGS=1: where the wall time went, on stderr (diagnostic) */
    int timings = eplb_env_on("EPLB_TIMINGS");
    double t_read = 0, t_runs = 0, t_wait = 0, t_up = 0, t_begin = eplb_now();
    EPLB_ALLOC_GOTO(runs, st, out);
    EPLB_ALLOC_GOTO(res, st, out);
    EPLB_ALLOC_GOTO(work, st, out);
    EPLB_ALLOC_GOTO(tid, st, out);
    EPLB_ALLOC_GOTO(wa, st, out);
    sh.runs = runs;
    int64_t maxW = 1;
    int need_pre = 0, need_once = 0, need_series = 0;
    for (int i = 0; i < nruns; i++) {
        EPLB_CHECK_GOTO(eplb_sim_run_init(&runs[i], &cfgs[i], &res[i], &sh, opts), st, out);
        const eplb_trigger_t *t = &cfgs[i].trig;
        if (!runs[i].is_none && t->kind != EPLB_TRIGGER_TRTLLM && t->window > maxW)
            maxW = t->window;
        if (!runs[i].is_none && t->kind == EPLB_TRIGGER_ONCE) {
            need_pre = need_once = 1;
            if (cfgs[i].policy->reads_series)
                need_series = 1;
        }
        if (runs[i].oracle)
            need_pre = 1;
        if (runs[i].P > sh.maxP)
            sh.maxP = runs[i].P;
        if (runs[i].D > sh.maxD)
            sh.maxD = runs[i].D;
    }
    /* a window never reaches before step 0: a window longer than the trace
     * needs no more history than the trace has steps */
    if (maxW > sh.S)
        maxW = sh.S > 0 ? sh.S : 1;
    sh.H = maxW + BLOCK_STEPS;
    /* block buffers as large as the largest block, the read-ahead ones
     * (every token-level trace: the next block is read while the runs go
     * through this one) only where there is a second block: on the GPU
     * path they are pinned, and pinning costs time in proportion to the
     * bytes */
    int multi;
    size_t ntok = (size_t)block_tokens_max(src, sh.block_tokens, &multi);
    size_t ids_bytes;
    /* the reader bounds tokens per step; this keeps a wrapped size from
     * ever reaching malloc (a trace declaring 2^62 tokens once did) */
    if (__builtin_mul_overflow(ntok > 0 ? ntok : 1, (size_t)sh.L * sh.K * sizeof *ids,
                               &ids_bytes)) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "a block of %zu tokens x %d layers x top-%d: "
                            "its ids do not fit in memory", ntok, sh.L, sh.K);
        goto out;
    }
    if (gpu_sel && !emulate) {
        /* ids decoded into pinned memory: their upload is a plain DMA */
        EPLB_CHECK_GOTO(eplb_gpu_open(&up, -1), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_alloc(up, (void **)&d_ids, ids_bytes), st, out);
        EPLB_CHECK_GOTO(eplb_gpu_host_alloc(up, (void **)&ids, ids_bytes), st, out);
        if (multi)
            EPLB_CHECK_GOTO(eplb_gpu_host_alloc(up, (void **)&ids2, ids_bytes), st, out);
    } else if (src->token_level && multi) {
        ids2 = malloc(ids_bytes);
        EPLB_ALLOC_GOTO(ids2, st, out);
    }
    if (src->token_level && multi) {
        lc2 = malloc((size_t)BLOCK_STEPS * LE * sizeof *lc2);
        EPLB_ALLOC_GOTO(lc2, st, out);
        if (src->read_src) {
            rank2 = malloc(ntok * sizeof *rank2);
            EPLB_ALLOC_GOTO(rank2, st, out);
        }
    }
    if (gpu_sel) {
        for (int i = 0; i < nruns; i++)
            EPLB_CHECK_GOTO(eplb_sim_run_gpu_open(&runs[i], src->max_step_tokens, emulate),
                            st, out);
    }
    if (src->token_level) {
        if (!ids)
            ids = malloc(ids_bytes);
        if (!ids) {
            st = eplb_error_set(EPLB_ERR_NOMEM, "the ids of a block of %zu tokens (%.2f GiB): "
                                "out of memory", ntok, ids_bytes / 1073741824.0);
            goto out;
        }
        if (src->read_src) {
            rank = malloc((ntok > 0 ? ntok : 1) * sizeof *rank);
            EPLB_ALLOC_GOTO(rank, st, out);
        }
    }
    hist = calloc((size_t)sh.H * LE, sizeof *hist);
    lc = malloc((size_t)BLOCK_STEPS * LE * sizeof *lc);
    EPLB_ALLOC_GOTO(hist, st, out);
    EPLB_ALLOC_GOTO(lc, st, out);
    sh.hist = hist;
    /* Threads beyond one per run help the runs with their steps' layers
     * and the reader with counting (token-level traces: counts traces have
     * no per-entry work); the results do not depend on them. */
    if (src->token_level) {
        sh.pool_threads = total;
        for (int i = 0; i < nthreads; i++)
            work[i].pool_threads = total / nthreads;
    }
    if (need_pre) {
        if (need_once) {
            once_w = calloc(LE, sizeof *once_w);
            EPLB_ALLOC_GOTO(once_w, st, out);
            /* the series a windowed vec decision gets (sim/run.c), here the
             * whole trace, within the same bound */
            if (need_series && sh.S > 0 && (double)sh.S * LE * sizeof(float) <= SERIES_BYTES) {
                once_series = malloc((size_t)sh.S * LE * sizeof *once_series);
                EPLB_ALLOC_GOTO(once_series, st, out);
            }
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
        EPLB_CHECK_GOTO(prepass(&sh, once_w, once_series, ids, rank, lc, cache_ids, cache_rank), st,
                        out);
    }
    for (int i = 0; i < nruns; i++) {
        sim_run_t *r = &runs[i];
        if (!r->is_none && r->cfg->trig.kind == EPLB_TRIGGER_ONCE) {
            /* static placement from the whole trace, deployed before the run */
            for (size_t k = 0; k < LE; k++)
                r->weights[k] = (float)once_w[k];
            eplb_policy_args_t a = eplb_sim_run_policy_args(r, r->phy2log);
            if (once_series && r->cfg->policy->reads_series) {
                a.series = once_series;
                a.series_steps = (int)sh.S;
            }
            eplb_progress_t prog;
            eplb_sim_run_progress_init(&prog, &sh, r, 0);
            if (opts->progress) {
                a.progress = eplb_progress_report;
                a.progress_ctx = &prog;
            }
            memcpy(r->target, r->phy2log, (size_t)r->L * r->P * sizeof *r->target);
            double t0 = eplb_now();
            st = r->cfg->policy->fn(r->target, NULL, r->weights, r->L, r->E, &a);
            eplb_progress_end(&prog);
            if (st != EPLB_OK)
                goto out;
            res[i].policy_s += opts->policy_time >= 0 ? opts->policy_time
                                                      : eplb_now() - t0;
            memcpy(r->phy2log, r->target, (size_t)r->L * r->P * sizeof *r->target);
        }
        EPLB_CHECK_GOTO(eplb_sim_run_derive_all(r), st, out);
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
    double t_start = eplb_now(), t_last = t_start;
    int block_ready = 0; /* the block was read ahead */
    for (int64_t s0 = 0; s0 < sh.S;) {
        int64_t s1 = block_end(src, s0, sh.block_tokens);
        sh.tok0 = src->token_level ? src->tok_off[s0] : 0;
        sh.ids = cache_ids ? cache_ids + (size_t)sh.tok0 * sh.L * sh.K : ids;
        sh.src_rank = !src->read_src ? NULL : cache_rank ? cache_rank + sh.tok0 : rank;
        double t0 = eplb_now();
        if (!block_ready)
            EPLB_CHECK_GOTO(read_block(src, s0, s1, (int32_t *)sh.ids,
                                       (uint16_t *)sh.src_rank, lc, cache_ids != NULL,
                                       sh.pool_threads),
                            st, out);
        block_ready = 0;
        t_read += eplb_now() - t0;
        for (int64_t s = s0; s < s1; s++)
            memcpy(hist + (size_t)(s % sh.H) * LE, lc + (size_t)(s - s0) * LE,
                   LE * sizeof *hist);
        sh.s0 = s0;
        sh.s1 = s1;
        reader_arg_t rd;
        pthread_t rtid;
        int reading = 0;
        memset(&rd, 0, sizeof rd);
        if (gpu_sel) {
            size_t n = (size_t)(src->tok_off[s1] - sh.tok0) * sh.L * sh.K;
            t0 = eplb_now();
            if (up) {
                EPLB_CHECK_GOTO(eplb_gpu_copy(up, d_ids, sh.ids, n * sizeof *d_ids), st,
                                out);
                EPLB_CHECK_GOTO(eplb_gpu_sync(up), st, out);
            }
            sh.d_ids = d_ids;
            t_up += eplb_now() - t0;
        }
        if (src->token_level && s1 < sh.S) {
            /* read the next block into the second buffers meanwhile */
            int64_t t1 = src->tok_off[s1];
            rd.src = src;
            rd.s0 = s1;
            rd.s1 = block_end(src, s1, sh.block_tokens);
            rd.ids = cache_ids ? cache_ids + (size_t)t1 * sh.L * sh.K : ids2;
            rd.rank = !src->read_src ? NULL : cache_rank ? cache_rank + t1 : rank2;
            rd.lc = lc2;
            rd.ids_ready = cache_ids != NULL;
            rd.pool_threads = sh.pool_threads;
            reading = eplb_thread_create(&rtid, NULL, reader, &rd) == 0 ? 1 : 2;
        }
        atomic_store(&sh.next, 0);
        t0 = eplb_now();
        int started = 0;
        if (nthreads > 1)
            for (; started < nthreads; started++)
                if (eplb_thread_create(&tid[started], NULL, worker, &wa[started]))
                    break;
        if (started == 0)
            worker(&wa[0]);
        for (int i = 0; i < started; i++)
            pthread_join(tid[i], NULL);
        t_runs += eplb_now() - t0;
        t0 = eplb_now();
        if (reading == 1)
            pthread_join(rtid, NULL);
        else if (reading == 2) /* no thread: read it now */
            reader(&rd);
        t_wait += eplb_now() - t0;
        for (int i = 0; i < nruns; i++)
            if (runs[i].st != EPLB_OK) {
                st = eplb_error_set(runs[i].st, "%s", runs[i].err);
                goto out;
            }
        if (reading) {
            if (rd.st != EPLB_OK) {
                st = eplb_error_set(rd.st, "%s", rd.err);
                goto out;
            }
            int32_t *ti = ids;
            ids = ids2;
            ids2 = ti;
            uint16_t *tr = rank;
            rank = rank2;
            rank2 = tr;
            int32_t *tl = lc;
            lc = lc2;
            lc2 = tl;
            block_ready = 1;
        }
        if (h5)
            EPLB_CHECK_GOTO(flush_block(h5, runs, nruns, s1 - s0), st, out);
        if (opts->progress && eplb_now() - t_last > 0.5) {
            t_last = eplb_now();
            fprintf(stderr, "\replb-replay: step %lld/%lld (%.0f%%), %.1f s",
                    (long long)s1, (long long)sh.S, 100.0 * s1 / sh.S,
                    t_last - t_start);
        }
        s0 = s1;
    }
    if (opts->progress && eplb_now() - t_start > 0.5)
        fprintf(stderr, "\n");
    if (timings)
        fprintf(stderr,
                "eplb-replay: timings: setup and pass 1 %.3f s; block loop %.3f s: reads on "
                "the main thread %.3f s, ids upload %.3f s, runs %.3f s (%d run workers), "
                "waiting for the read-ahead %.3f s; in all reads: decoding logits %.3f s, CPU "
                "routing %.3f s, opening GPU stages %.3f s, waiting for GPU routing %.3f s\n",
                t_start - t_begin, eplb_now() - t_start, t_read, t_up, t_runs, nthreads, t_wait,
                src->t_decode, src->t_route, src->t_stage, src->t_gpu_wait);
    for (int i = 0; i < nruns; i++) {
        res[i].steps = sh.S;
        eplb_sim_run_finish(&runs[i]);
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
        eplb_sim_run_free(&runs[i]);
    for (int i = 0; work && i < nthreads; i++)
        eplb_sim_work_free(&work[i]);
    free(runs);
    free(work);
    free(tid);
    free(wa);
    if (up) {
        eplb_gpu_host_free(up, ids);
        eplb_gpu_host_free(up, ids2);
        eplb_gpu_free(up, d_ids);
        eplb_gpu_close(up);
    } else {
        free(ids);
        free(ids2);
    }
    free(rank);
    free(rank2);
    free(lc2);
    free(hist);
    free(lc);
    free(once_w);
    free(once_series);
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
