/* sim_impl.h - internals shared by the files of sim/ (not a public API). */
#ifndef EPLB_SIM_IMPL_H
#define EPLB_SIM_IMPL_H

#include <string.h>

#include "sim.h"
#include "pool.h"
#include "progress.h"

/* Which fields of a run apply, one rule for every output so that they
 * cannot disagree: the table shows "-", JSON null, summary.csv an empty
 * field, results.h5 leaves the attribute out.  none never rearranges: no
 * trigger, async, window or interval.  once places once from the whole
 * trace: no window or interval (the oracle, even under --trigger once,
 * keeps its own vllm schedule and so both). */
static inline int sim_run_has_trigger(const char *policy)
{
    return strcmp(policy, "none") != 0;
}

static inline int sim_run_has_window(const char *policy, const eplb_trigger_t *t)
{
    return sim_run_has_trigger(policy) && t->kind != EPLB_TRIGGER_ONCE;
}

/* The replay's routing stages (kernels.h eplb_gpu_stage_*) behind a table,
 * so that tests can drive the staged read loop of sim/source.c on the CPU
 * (tests/test_source.c); NULL in a source: these. */
typedef struct {
    eplb_status_t (*open)(eplb_gpu_stage_t **out, eplb_gpu_t *g, int64_t max_tokens,
                          eplb_dtype_t dt, int L, int E, int K, int P, const float *bias);
    void (*close)(eplb_gpu_stage_t *s);
    void *(*logits)(eplb_gpu_stage_t *s);
    eplb_status_t (*submit)(eplb_gpu_stage_t *s, eplb_dtype_t dt, int64_t T,
                            const eplb_route_cfg_t *rcfg, const eplb_select_cfg_t *scfg);
    eplb_status_t (*wait)(eplb_gpu_stage_t *s, const int32_t **ids, const float **weights,
                          const int32_t **phys, const int32_t **counts);
} sim_stage_ops_t;

/* Pinned stages of the GPU path at most (source.c, EPLB_GPU_STAGES) */
#define SIM_STAGES_MAX 3

struct eplb_sim_source {
    int L, E, K, G;
    int64_t S;
    int token_level;            /* 1: read_ids; 0: read_counts */
    int64_t max_step_tokens;    /* largest step (token level) */
    const int64_t *tok_off;     /* [S+1] (token level) */
    char model[EPLB_TRACE_MODEL_MAX + 1];
    const char *model_config;
    /* ids [n][L][K] of tokens [t0, t1) */
    eplb_status_t (*read_ids)(eplb_sim_source_t *s, int32_t *ids, int64_t t0,
                              int64_t t1);
    /* src ranks [n] of tokens [t0, t1), or NULL if the source has none */
    eplb_status_t (*read_src)(eplb_sim_source_t *s, uint16_t *rank, int64_t t0,
                              int64_t t1);
    /* counts [n][L][E] of steps [s0, s1) */
    eplb_status_t (*read_counts)(eplb_sim_source_t *s, int32_t *counts,
                                 int64_t s0, int64_t s1);
    void (*free_fn)(eplb_sim_source_t *s);
    /* backing data */
    const eplb_trace_t *trace;
    const int32_t *ids, *counts;
    void *logits;               /* routing buffer (logits-only traces) */
    size_t logits_cap;          /* tokens it holds */
    float *bias;
    uint64_t seed;
    int tokens_per_step;
    float *base;                /* synthetic: [L][E] mean counts */
    int32_t *rec;               /* recorded topk ids (logits + topk traces) */
    size_t rec_cap;             /* tokens it holds */
    int64_t cmp_upto;           /* tokens below this were compared */
    int64_t cmp_rows, cmp_differ; /* (token, layer) rows compared / differing */
    eplb_gpu_t *gpu;            /* route logits on this GPU (else the CPU) */
    struct sim_prefetch *pf;    /* rows decoded while CUDA started (source.c) */
    eplb_gpu_stage_t *stage[SIM_STAGES_MAX]; /* GPU routing: pinned buffers
                                                (2, or 3: EPLB_GPU_STAGES) */
    struct sim_reads *reads;    /* GPU routing: the reads in flight, kept
                                   between calls (source.c) */
    const sim_stage_ops_t *stage_ops; /* NULL: kernels/ eplb_gpu_stage_* */
    /* seconds spent (EPLB_TIMINGS): decoding logits, routing them on the
     * CPU, opening the GPU stages, waiting for the GPU's routing */
    double t_decode, t_route, t_stage, t_gpu_wait;
};


/* eplb_sim_source_prefetch's helper, joined without stopping it (tests):
 * the rows it decoded */
int64_t sim_prefetch_join(eplb_sim_source_t *s);
/* memcpy on up to 8 threads (EPLB_COPY_THREADS), pieces of at least 4 MiB
 * (source.c: the GPU path's reads of prefetched rows) */
void sim_copy_parallel(void *dst, const void *src, size_t n);

/* ---- replay internals (run.c, replay.c) -------------------------------- */
#include <stdatomic.h>

/* A block is the unit of reading (decode, route, count) and of running;
 * the next block is read while the runs go through the current one, so
 * smaller token blocks overlap more of a trace (a 52K-token trace was one
 * block of 64K: no overlap at all, run 22). */
#define BLOCK_STEPS 256
#define BLOCK_TOKENS 16384 /* default of eplb_sim_opts_t.block_tokens */
/* once/oracle: keep the whole trace's routed ids from pass 1 for pass 2 when
 * they take at most this much memory (else decode and route twice). */
#define CACHE_BYTES (512.0 * 1024 * 1024)
/* vec: the window's per-step loads are passed when they fit in this much */
#define SERIES_BYTES (256.0 * 1024 * 1024)

/* Replica ids a run worker holds for the traffic count of a step: max step
 * tokens x L x K (sim/run.c work_fit; the replay caps the workers by it). */
static inline size_t sim_step_entries(int64_t max_step_tokens, int L, int K)
{
    return (size_t)(max_step_tokens > 0 ? max_step_tokens : 1) * (size_t)L * (size_t)K;
}

typedef struct {
    int64_t step;
    int32_t *placement; /* [L][P] target of a decision */
} sim_snap_t;

/* GPU selection of one run (opts.gpu_select): its own handle, whose maps
 * are the run's; two slots so that step s runs on the GPU while the CPU
 * models step s-1 from the other slot. */
typedef struct {
    eplb_gpu_t *g;              /* NULL: emulated (opts.gpu_select 2) */
    int64_t cap;                /* tokens per slot */
    int32_t *h_counts[2];       /* pinned [L][P] */
    int32_t *h_phys[2];         /* pinned [cap][L][K] (D > 1 without traffic) */
    int traffic;                /* the traffic counted on the GPU (1 < D <= 64) */
    int32_t *h_a2a[2];          /* pinned [L][4][D] (traffic) */
    int64_t *emu_a2a;           /* emulated: the CPU count, [L][4][D] */
    uint32_t *h_trow[2];        /* pinned [cap] (sources with ranks) */
    uint16_t *h_trank[2];       /* pinned [cap] */
    uint16_t *rank[2];          /* host [cap]: source ranks mod D */
    int32_t *d_counts[2], *d_phys[2], *d_a2a[2];
    uint32_t *d_trow[2];
    uint16_t *d_trank[2];
} sim_gpu_run_t;

typedef struct {
    const eplb_sim_run_cfg_t *cfg;
    eplb_sim_result_t *res;
    int is_none;
    int L, E, K, G, P, D, N, Sg, maxcnt;
    eplb_cost_t cost;
    int32_t *phy2log, *target;  /* [L][P] */
    int32_t *logcnt, *log2phy;  /* [L][E], [L][E][maxcnt]: maxcnt the most replicas
                                   any expert has had in the run (run.c) */
    eplb_layer_map_t *maps;     /* [L] */
    int maps_dirty;             /* maps changed since the GPU got them */
    sim_gpu_run_t *gpu;         /* GPU selection (opts.gpu_select), or NULL */
    int pending;                /* async: layers of target not committed */
    int next_layer;             /* async: next layer to commit; trtllm: next */
    int64_t pend_decided, pend_wb, pend_we; /* async: the queued decision */
    double pend_policy;
    int keep_ev;                /* store events (results.h5 or asked for) */
    int keep_all_ev;            /* keep them after writing them (asked for) */
    int max_moves;
    double *ema;                /* trtllm [L][E] */
    int64_t *wsum;              /* [L][E] a window's exact sum (decide) */
    float *weights;             /* [L][E] */
    double *oracle;             /* [n_oracle][L][E] sums of future windows */
    int64_t n_oracle;
    /* accumulators */
    double sum_bal, sum_mom, *layer_bal, sum_compute, sum_a2a, sum_over,
        sum_stall;
    int64_t nlayers_seen;
    /* block series */
    int64_t *ser_tok;           /* [B][L][D] */
    float *ser_bal;             /* [B][L] */
    double *ser_time;           /* [B][4]: compute, a2a, overhead, stall */
    double step_stall;          /* stall charged to the current step */
    size_t ev_flushed;          /* events already written */
    size_t ev_cap;              /* capacity of res->events */
    sim_snap_t *snaps;
    size_t nsnaps, capsnaps;
    eplb_status_t st;
    char err[512];
} sim_run_t;

/* One worker thread's scratch; pool_threads: the threads (src/pool.h) of
 * its per-layer loops of a step (the cost model, GPU path and CPU path
 * alike), its share of --threads. */
typedef struct {
    int32_t *phys;              /* [T][L][K] */
    size_t phys_cap;
    int32_t *counts;            /* [L][P] */
    int64_t *a2a;               /* [L][4][D]: per layer, so layers run apart */
    int64_t *gtok;              /* [L][D] tokens per GPU of each layer */
    eplb_layer_cost_t *lcost;   /* [L] */
    uint16_t *rank;             /* [T] source ranks mod D */
    size_t rank_cap;
    int64_t *plan_n;            /* counts traces, balanced: [E] counts, [D] loads */
    int32_t *plan_q;            /* [E][maxcnt] quotas */
    size_t plan_n_cap, plan_q_cap;
    int pool_threads;
} sim_work_t;

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
    const int32_t *d_ids;       /* block ids on the GPU (gpu_select) */
    const int32_t *hist;        /* ring [H][L][E] of logical counts */
    int64_t H;
    sim_run_t *runs;
    int nruns;
    atomic_int next;
    int maxP, maxD;
    int64_t max_step_tokens;
    int64_t block_tokens; /* opts->block_tokens or BLOCK_TOKENS */
    int pool_threads;           /* the reading thread's loops (counting) */
} sim_shared_t;

/* Set up a run: placement, maps, cost, buffers; checks D, N, P, trigger. */
eplb_status_t eplb_sim_run_init(sim_run_t *r, const eplb_sim_run_cfg_t *cfg,
                                eplb_sim_result_t *res, const sim_shared_t *sh,
                                const eplb_sim_opts_t *o);
/* (Re)derive logcnt/log2phy and the layer maps of every layer. */
eplb_status_t eplb_sim_run_derive_all(sim_run_t *r);
eplb_policy_args_t eplb_sim_run_policy_args(const sim_run_t *r, const int32_t *old);
/* The progress line of r's policy call before step s (src/progress.h):
 * "eplb-replay: step s/S, <label>: layer N of L (T s)". */
void eplb_sim_run_progress_init(eplb_progress_t *p, const sim_shared_t *sh,
                                const sim_run_t *r, int64_t s);
/* Walk the block [sh->s0, sh->s1); failures are kept in r->st / r->err. */
void eplb_sim_run_block(sim_shared_t *sh, sim_run_t *r, sim_work_t *w);
/* Summary numbers from the accumulators. */
void eplb_sim_run_finish(sim_run_t *r);
/* GPU selection state of a run (gpu_select): opens its own handle. */
eplb_status_t eplb_sim_run_gpu_open(sim_run_t *r, int64_t max_step_tokens,
                                    int emulate);
void eplb_sim_run_free(sim_run_t *r);
void eplb_sim_work_free(sim_work_t *w);

#endif
