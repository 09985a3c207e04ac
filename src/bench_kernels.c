/* bench_kernels.c - `eplb-replay bench kernels`: time routing, replica
 * selection + recording, and the fused kernel, on the GPU (CUDA graph
 * replay over rotating inputs, against the device bandwidth measured in the
 * same run) or on the CPU (tokens per second per core). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checks.h"
#include "cli_util.h"
#include "cmd.h"
#include "decimal.h"
#include "kernels.h"

#define CMD "bench kernels"
#define MAX_TS 32
#define MAX_TOKENS (1 << 24) /* per --tokens element: 16 GiB of f32 logits */

typedef struct {
    int gpu; /* 1 gpu, 0 cpu, -1 auto */
    int64_t tokens[MAX_TS];
    int nt;
    eplb_route_cfg_t rc;
    int P, D, N, bias, json, reps, variant;
    int hot; /* --hot: experts every token picks (bias + 1) */
    int layers; /* --layers: layers per call (GPU), as a replay step's */
    int only; /* -1 all, else one of route, select, fused, fused_ids, step (GPU) */
    eplb_dtype_t dt;
    eplb_select_mode_t mode;
} bopts_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eplb-replay bench kernels [options]\n"
            "Times routing (route), replica selection + load recording (select) and\n"
            "the fused kernel (fused) for each token count T of one layer (or of\n"
            "--layers L in one call, as a replay step on the GPU routes them).\n"
            "GPU: median per call over CUDA graph replays of rotating inputs, with\n"
            "bytes moved and GB/s against a device-to-device copy measured in the\n"
            "same run.  CPU: median wall time and tokens per second per core, over\n"
            "the threads the call used (\"threads\": fewer than the cores for small T).\n"
            "Inputs: logits N(0, 2), bias N(0, 0.1), drawn from the same seed for\n"
            "every T (the same data whatever the other token counts).\n\n"
            "  --device cpu|gpu|auto   where to run (default auto: gpu if usable)\n"
            "  --tokens LIST           up to %d token counts, each 1..%d (default\n"
            "                          64,512,4096,16384,65536)\n"
            "  --experts E             routed experts (default 256)\n"
            "  --topk K                experts per token (default 8)\n"
            "  --groups G              expert groups (default 8)\n"
            "  --topk-groups N         groups kept (default 4)\n"
            "  --scoring softmax|sigmoid  (default sigmoid)\n"
            "  --no-bias               no e_score_correction_bias\n"
            "  --hot H                 H experts, one in each of H groups, get 1 more\n"
            "                          bias, so that a token picks those of its kept\n"
            "                          groups (4 of 8 by default: 10, 21, 43, 50%% of\n"
            "                          all entries for H = 1, 2, 4, 8), as with hot\n"
            "                          experts (default 0; 0 <= H <= topk)\n"
            "  --layers L              GPU: L layers per call, logits [T][L][E] and\n"
            "                          L maps (default 1, at most 128); `step` is\n"
            "                          then what the replay's GPU stage runs per\n"
            "                          step: fused with logical ids, then the count\n"
            "                          stripes folded and cleared\n"
            "  --replicas P            physical slots (default 288)\n"
            "  --gpus D --nodes N      EP GPUs and nodes (default 32, 4)\n"
            "  --mode M                replica selection (default hash)\n"
            "  --dtype f32|f16|bf16    logits type (default f32)\n"
            "  --reps N                timed repetitions (default 25 gpu, 5 cpu)\n"
            "  --variant V             GPU routing kernel: 0 default (6 for the DeepSeek-V3\n"
            "                          shape, else 8), 1 generic, 2 lanes per row, 3-4\n"
            "                          ablations of 8, 5 segment kernel (8 lanes per\n"
            "                          row, 16 on small grids), 6 that with a fast\n"
            "                          sigmoid, 8 warp kernel, 9 6 with a cp.async\n"
            "                          prefetch of the next rows (8 lanes), 14 6 with 16\n"
            "                          lanes per row wherever the block setup runs;\n"
            "                          shapes a variant lacks take 8 or the generic one\n"
            "  --only KERNEL           time only route, select or fused, or on the GPU\n"
            "                          fused_ids or step (for profilers)\n"
            "  --json                  one JSON object per line: kernel, tokens,\n"
            "                          median_us, gbps, bytes, the shape (experts, topk,\n"
            "                          groups, topk_groups, scoring, bias, replicas),\n"
            "                          reps and more\n"
            "  -h, --help              this text\n",
            MAX_TS, MAX_TOKENS);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The inputs of each T start from the same seed, so that they do not
 * depend on the other token counts of the command: drawn in sequence, the
 * T = 65536 time depended on the list (33 or 41 us, run 26: how many rows
 * had more candidates than the segment kernel's capacity). */
#define BENCH_SEED 12345
static uint64_t brs = BENCH_SEED;
static float bnormal(void)
{
    brs = brs * 6364136223846793005ull + 1442695040888963407ull;
    double u = ((brs >> 11) + 1.0) / 9007199254740993.0;
    brs = brs * 6364136223846793005ull + 1442695040888963407ull;
    double v = (brs >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* The bias: N(0, 0.1) per expert, + 1 for the --hot experts i * E / H. */
static void bench_bias(float *hb, const bopts_t *o)
{
    const int E = o->rc.num_experts;
    for (int e = 0; e < E; e++)
        hb[e] = bnormal() * 0.1f;
    for (int i = 0; i < o->hot; i++)
        hb[(int64_t)i * E / o->hot] += 1.0f;
}

/* Slot e holds expert e; redundant slot E + j holds expert (j * 8) % E.
 * *lc and *l2p are the caller's to free, also after a failure. */
static eplb_status_t bench_map(eplb_layer_map_t *m, int32_t **lc, int32_t **l2p, const bopts_t *o)
{
    const int E = o->rc.num_experts, P = o->P;
    int MR = 1 + (P - E + E - 1) / E + 1;
    *lc = calloc((size_t)E, sizeof **lc);
    *l2p = malloc(sizeof **l2p * (size_t)E * MR);
    if (!*lc || !*l2p) /* (the sweep of tests/alloc_fail.so: written through NULL) */
        return eplb_error_set(EPLB_ERR_NOMEM, CMD ": out of memory");
    for (int i = 0; i < E * MR; i++)
        (*l2p)[i] = -1;
    for (int e = 0; e < E; e++)
        (*l2p)[e * MR + (*lc)[e]++] = e;
    for (int j = 0; j < P - E; j++) {
        int e = (j * 8) % E;
        /* a full expert passes the slot on (at E = 4 every slot landed on
         * expert 0, which kept MR: the rest held no expert); the default
         * shape never fills one, so its map is as before */
        for (int k = 0; k < E && (*lc)[e] >= MR; k++)
            e = (e + 1) % E;
        if ((*lc)[e] < MR)
            (*l2p)[e * MR + (*lc)[e]++] = E + j;
    }
    *m = (eplb_layer_map_t){E, P, o->D, o->N, MR, *lc, *l2p};
    return EPLB_OK;
}

static void *bench_logits(size_t n, eplb_dtype_t dt)
{
    void *p = malloc(n * eplb_dtype_size(dt));
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++)
        eplb_dtype_store(p, dt, i, bnormal() * 2.0f);
    return p;
}

/* One result line; threads >= 1: the CPU threads the call used (JSON key
 * "threads", and in the text line), < 1: none (GPU). */
static void report_t(const bopts_t *o, const char *dev, const char *kernel, int64_t T,
                     double us, double bytes, double extra_val, const char *extra_key,
                     int threads)
{
    double gbps = bytes / (us * 1e-6) / 1e9;
    char th[64] = "";
    if (o->json) {
        if (threads >= 1)
            snprintf(th, sizeof th, ",\"threads\":%d", threads);
        else if (o->layers > 1 && T > 0) /* (not on the empty and fold lines) */
            snprintf(th, sizeof th, ",\"layers\":%d", o->layers);
        /* the shape too: a softmax line looked like a sigmoid one */
        printf("{\"kernel\":\"%s\",\"device\":\"%s\",\"tokens\":%lld,\"median_us\":%.3f,"
               "\"gbps\":%.2f,\"bytes\":%.0f,\"dtype\":\"%s\",\"mode\":\"%s\",\"hot\":%d,"
               "\"experts\":%d,\"topk\":%d,\"groups\":%d,\"topk_groups\":%d,"
               "\"scoring\":\"%s\",\"bias\":%s,\"replicas\":%d,\"reps\":%d,\"%s\":%.4g%s}\n",
               kernel, dev, (long long)T, us, gbps, bytes, eplb_dtype_name(o->dt),
               eplb_select_mode_name(o->mode), o->hot, o->rc.num_experts, o->rc.top_k,
               o->rc.num_groups, o->rc.topk_groups, eplb_scoring_name(o->rc.scoring),
               o->bias ? "true" : "false", o->P, o->reps, extra_key, extra_val, th);
    } else {
        if (threads >= 1)
            snprintf(th, sizeof th, " (%d threads)", threads);
        printf("%-9s %8lld %12.2f %10.1f %14.4g  %s%s\n", kernel, (long long)T, us, gbps,
               extra_val, extra_key, th);
    }
}

static void report(const bopts_t *o, const char *dev, const char *kernel, int64_t T, double us,
                   double bytes, double extra_val, const char *extra_key)
{
    report_t(o, dev, kernel, T, us, bytes, extra_val, extra_key, 0);
}

/* ---- GPU ---------------------------------------------------------------- */
typedef struct {
    eplb_gpu_t *g;
    const bopts_t *o;
    int64_t T;
    int nbuf, which; /* which: 0 route, 1 select, 2 fused, 3 fused + ids, 4 empty,
                      * 5 counts fold (of fold_layers), 6 a stage's step (3, then
                      * the stripes folded into sum and cleared) */
    int fold_layers, L;
    void **logits;
    int32_t **ids;
    float *w;
    int32_t *phys, *counts, *sum;
    float *bias;
    eplb_select_cfg_t sc;
} gctx_t;

static eplb_status_t gpu_call(void *ctx, int i)
{
    gctx_t *c = ctx;
    int b = i % c->nbuf;
    eplb_gpu_rows_t rows = {NULL, NULL};
    switch (c->which) {
    case 4:
        return eplb_gpu_empty(c->g);
    case 5:
        return eplb_gpu_counts_fold(c->g, c->counts, c->counts, c->fold_layers, c->o->P);
    case 0:
        return eplb_gpu_route(c->g, c->ids[b], c->w, c->logits[b], c->o->dt, c->T, c->L,
                              c->bias, &c->o->rc);
    case 1:
        return eplb_gpu_select_record(c->g, c->phys, c->counts, c->ids[b], c->T, c->L,
                                      c->o->rc.top_k, &c->sc, rows);
    case 6: /* as eplb_gpu_stage_submit: fused with ids, fold and clear */
        EPLB_CHECK(eplb_gpu_fused(c->g, c->ids[b], c->w, c->phys, c->counts, c->logits[b],
                                  c->o->dt, c->T, c->L, c->bias, &c->o->rc, &c->sc, rows));
        return eplb_gpu_counts_fold_clear(c->g, c->sum, c->counts, c->L, c->o->P);
    default: /* 2: physical ids and weights, as the engine needs them; 3: logical
              * ids as well */
        return eplb_gpu_fused(c->g, c->which == 2 ? NULL : c->ids[b], c->w, c->phys, c->counts,
                              c->logits[b], c->o->dt, c->T, c->L, c->bias, &c->o->rc, &c->sc,
                              rows);
    }
}

/* rotating buffers: 256-byte aligned, as many as fill 256 MB (2 to 16) */
static size_t bench_align(size_t b) { return (b + 255) & ~(size_t)255; }
static int bench_nbuf(size_t lbytes)
{
    size_t n = (256u << 20) / (lbytes ? lbytes : 1);
    return n < 2 ? 2 : n > 16 ? 16 : (int)n;
}

static eplb_status_t bench_gpu(const bopts_t *o)
{
    void *lpool = NULL, *ipool = NULL;
    eplb_gpu_t *g = NULL;
    eplb_status_t st = eplb_gpu_open(&g, 0);
    if (st != EPLB_OK)
        return st;
    eplb_gpu_set_route_variant(g, o->variant);
    double bw = 0;
    EPLB_CHECK_GOTO(eplb_gpu_bandwidth(g, &bw, (size_t)1 << 30), st, out_g);
    if (o->json)
        printf("{\"kernel\":\"memcpy_d2d\",\"device\":\"gpu\",\"name\":\"%s\",\"gbps\":%.1f}\n",
               eplb_gpu_name(g), bw);
    else
        printf("# %s; device-to-device copy: %.1f GB/s (read + write)\n"
               "# shape E=%d K=%d groups=%d/%d %s%s P=%d D=%d, %s logits, mode %s, variant %d, "
               "hot experts %d, %d layer%s per call\n"
               "kernel      tokens    median_us       GB/s          extra\n",
               eplb_gpu_name(g), bw, o->rc.num_experts, o->rc.top_k, o->rc.topk_groups,
               o->rc.num_groups, eplb_scoring_name(o->rc.scoring), o->bias ? "+bias" : "", o->P,
               o->D, eplb_dtype_name(o->dt), eplb_select_mode_name(o->mode), o->variant, o->hot,
               o->layers, o->layers > 1 ? "s" : "");
    eplb_layer_map_t m, *maps = NULL;
    int32_t *lc = NULL, *l2p = NULL;
    const int L = o->layers;
    EPLB_CHECK_GOTO(bench_map(&m, &lc, &l2p, o), st, out_m);
    maps = malloc(sizeof *maps * (size_t)L); /* every layer the same map */
    if (!maps) {
        st = eplb_error_set(EPLB_ERR_NOMEM, CMD ": out of memory");
        goto out_m;
    }
    for (int l = 0; l < L; l++)
        maps[l] = m;
    EPLB_CHECK_GOTO(eplb_gpu_set_maps(g, maps, L), st, out_m);
    {
        /* the launch cost any kernel pays in a graph: the baseline below
         * which no kernel of a small batch can go */
        gctx_t e = {.g = g, .o = o, .which = 4, .nbuf = 1};
        double us_empty = 0;
        EPLB_CHECK_GOTO(eplb_gpu_time_graph(g, &us_empty, gpu_call, &e, 20, o->reps), st, out_m);
        report(o, "gpu", "empty", 0, us_empty, 0, 0, "launch");
        /* the count stripes summed, as a read of one step's counts does
         * it (eplb_gpu_stage_*): DeepSeek-V3's 61 MoE-bearing layers of P
         * slots (kernels.h, eplb_count_stripes) */
        const int fl = 61;
        const size_t fs = eplb_count_len(fl, o->P);
        e.which = 5;
        e.fold_layers = fl;
        EPLB_CHECK_GOTO(eplb_gpu_alloc(g, (void **)&e.counts, fs * 4), st, out_m);
        st = eplb_gpu_memset(g, e.counts, 0, fs * 4);
        double us_fold = 0;
        if (st == EPLB_OK)
            st = eplb_gpu_time_graph(g, &us_fold, gpu_call, &e, 20, o->reps);
        eplb_gpu_free(g, e.counts);
        if (st != EPLB_OK)
            goto out_m;
        report(o, "gpu", "fold", 0, us_fold, (double)fs * 4 + (double)fl * o->P * 4, fl,
               "fold_layers");
    }
    const int E = o->rc.num_experts, K = o->rc.top_k;
    const size_t es = eplb_dtype_size(o->dt);
    /* one pool for the rotating logits and ids of every T, allocated once
     * up front: with buffers allocated per T, the time at T = 65536
     * depended on what earlier T had allocated and freed (35 or 44 us for
     * the same kernel, run 10) */
    size_t lpool_b = 0, ipool_b = 0;
    for (int ti = 0; ti < o->nt; ti++) {
        const size_t lb = bench_align((size_t)o->tokens[ti] * L * E * es),
                     ob = bench_align((size_t)o->tokens[ti] * L * K * 4);
        const int nb = bench_nbuf(lb);
        lpool_b = lpool_b > nb * lb ? lpool_b : nb * lb;
        ipool_b = ipool_b > nb * ob ? ipool_b : nb * ob;
    }
    EPLB_CHECK_GOTO(eplb_gpu_alloc(g, &lpool, lpool_b), st, out_m);
    EPLB_CHECK_GOTO(eplb_gpu_alloc(g, &ipool, ipool_b), st, out_m);
    for (int ti = 0; ti < o->nt; ti++) {
        const int64_t T = o->tokens[ti];
        const size_t lbytes = (size_t)T * L * E * es, obytes = (size_t)T * L * K * 4;
        const int nbuf = bench_nbuf(bench_align(lbytes));
        gctx_t c = {.g = g, .o = o, .T = T, .nbuf = nbuf, .L = L, .sc = EPLB_SELECT_CFG_INIT};
        c.sc.mode = o->mode;
        c.sc.num_ranks = o->D;
        c.logits = calloc((size_t)nbuf, sizeof *c.logits);
        c.ids = calloc((size_t)nbuf, sizeof *c.ids);
        brs = BENCH_SEED;
        void *host = bench_logits((size_t)T * E, o->dt);
        float *hb = malloc(sizeof *hb * E * L);
        if (!c.logits || !c.ids || !host || !hb) {
            st = eplb_error_set(EPLB_ERR_NOMEM, CMD ": out of memory");
            goto next;
        }
        bench_bias(hb, o);
        for (int l = 1; l < L; l++) /* every layer the same bias */
            memcpy(hb + (size_t)l * E, hb, sizeof *hb * E);
        if (L > 1) {
            /* [T][L][E]: layer l of token t holds row (t + l * 7919) mod T
             * of the T drawn (each layer the same rows in another order) */
            void *hl = malloc(lbytes);
            if (!hl) {
                st = eplb_error_set(EPLB_ERR_NOMEM, CMD ": out of memory");
                goto next;
            }
            for (int64_t t = 0; t < T; t++)
                for (int l = 0; l < L; l++)
                    memcpy((char *)hl + ((size_t)t * L + l) * E * es,
                           (char *)host + (size_t)((t + (int64_t)l * 7919) % T) * E * es,
                           E * es);
            free(host);
            host = hl;
        }
        for (int b = 0; b < nbuf; b++) {
            c.logits[b] = (char *)lpool + b * bench_align(lbytes);
            c.ids[b] = (int32_t *)((char *)ipool + b * bench_align(obytes));
            /* distinct inputs per buffer: rotate the host rows */
            size_t shift = (size_t)(b * 7919 % (T ? T : 1)) * L * E * es;
            EPLB_CHECK_GOTO(eplb_gpu_copy(g, c.logits[b], (char *)host + shift, lbytes - shift),
                            st, next);
            if (shift)
                EPLB_CHECK_GOTO(eplb_gpu_copy(g, (char *)c.logits[b] + (lbytes - shift), host,
                                              shift),
                                st, next);
        }
        EPLB_CHECK_GOTO(eplb_gpu_alloc(g, (void **)&c.w, obytes), st, next);
        EPLB_CHECK_GOTO(eplb_gpu_alloc(g, (void **)&c.phys, obytes), st, next);
        const size_t cbytes = eplb_count_len(L, o->P) * 4;
        EPLB_CHECK_GOTO(eplb_gpu_alloc(g, (void **)&c.counts, cbytes), st, next);
        EPLB_CHECK_GOTO(eplb_gpu_memset(g, c.counts, 0, cbytes), st, next);
        EPLB_CHECK_GOTO(eplb_gpu_alloc(g, (void **)&c.sum, (size_t)L * o->P * 4), st, next);
        if (o->bias) {
            EPLB_CHECK_GOTO(eplb_gpu_alloc(g, (void **)&c.bias, sizeof *hb * E * L), st, next);
            EPLB_CHECK_GOTO(eplb_gpu_copy(g, c.bias, hb, sizeof *hb * E * L), st, next);
        }
        /* ids of every buffer for select-only */
        for (int b = 0; b < nbuf && (o->only < 0 || o->only == 1); b++)
            EPLB_CHECK_GOTO(eplb_gpu_route(g, c.ids[b], c.w, c.logits[b], o->dt, T, L, c.bias,
                                           &o->rc),
                            st, next);
        EPLB_CHECK_GOTO(eplb_gpu_sync(g), st, next);
        int launches = nbuf < 20 ? 20 : nbuf;
        double us[5];
        /* rr-block and balanced need the logical ids (route, then select) */
        const int batch = o->mode == EPLB_SELECT_RR_BLOCK || o->mode == EPLB_SELECT_BALANCED;
        for (int k = 0; k < 5; k++) {
            us[k] = 0;
            if ((k == 2 && batch) || (o->only >= 0 && k != o->only))
                continue;
            static const int which[5] = {0, 1, 2, 3, 6}; /* gctx_t's kernels */
            c.which = which[k];
            EPLB_CHECK_GOTO(eplb_gpu_time_graph(g, &us[k], gpu_call, &c, launches, o->reps), st,
                            next);
        }
        if (batch)
            us[2] = us[3];
        /* the floor (issue 3): read the logits once, write ids and weights
         * once; fused writes physical ids in place of the logical ones */
        double b_route = (double)lbytes + 2.0 * obytes, b_sel = 2.0 * obytes + 8.0 * o->P * L,
               b_fused = (double)lbytes + (batch ? 3.0 : 2.0) * obytes + 8.0 * o->P * L,
               b_fused_ids = (double)lbytes + 3.0 * obytes + 8.0 * o->P * L,
               b_step = b_fused_ids + (double)cbytes * 2 + 4.0 * L * o->P;
        /* (step: the fold reads and clears every stripe, writes the sum) */
        double floor_us = b_route / (bw * 1e9) * 1e6;
        if (o->only < 0 || o->only == 0)
            report(o, "gpu", "route", T, us[0], b_route, floor_us, "floor_us");
        if (o->only < 0 || o->only == 1)
            report(o, "gpu", "select", T, us[1], b_sel, us[0] > 0 ? us[1] / us[0] * 100 : 0,
                   "pct_of_route");
        if (o->only < 0 || o->only == 2)
            report(o, "gpu", "fused", T, us[2], b_fused, us[2] / floor_us, "x_floor");
        if (o->only < 0 || o->only == 3)
            report(o, "gpu", "fused_ids", T, us[3], b_fused_ids, us[3] / floor_us, "x_floor");
        if ((o->only < 0 || o->only == 4) && us[3] > 0)
            report(o, "gpu", "step", T, us[4], b_step, us[4] - us[3], "us_over_fused_ids");
        else if (o->only == 4)
            report(o, "gpu", "step", T, us[4], b_step, us[4] / floor_us, "x_floor");
        if (o->only < 0)
            report(o, "gpu", "eplb", T, us[2] - us[0], b_fused - b_route,
                   (us[2] - us[0]) / us[0] * 100, "pct_of_route");
    next:
        eplb_gpu_free(g, c.w);
        eplb_gpu_free(g, c.phys);
        eplb_gpu_free(g, c.counts);
        eplb_gpu_free(g, c.sum);
        eplb_gpu_free(g, c.bias);
        free(c.logits);
        free(c.ids);
        free(host);
        free(hb);
        if (st != EPLB_OK)
            break;
    }
out_m:
    free(maps);
    eplb_gpu_free(g, lpool);
    eplb_gpu_free(g, ipool);
    free(lc);
    free(l2p);
out_g:
    eplb_gpu_close(g);
    return st;
}

/* ---- CPU ---------------------------------------------------------------- */
static eplb_status_t bench_cpu(const bopts_t *o)
{
    eplb_status_t st = EPLB_OK;
    const int E = o->rc.num_experts, K = o->rc.top_k, nth = eplb_num_threads();
    eplb_layer_map_t m;
    int32_t *lc = NULL, *l2p = NULL;
    if ((st = bench_map(&m, &lc, &l2p, o)) != EPLB_OK) {
        free(lc);
        free(l2p);
        return st;
    }
    if (!o->json)
        printf("# CPU, up to %d threads; shape E=%d K=%d groups=%d/%d P=%d, %s logits, mode %s, "
               "hot experts %d\n"
               "kernel      tokens    median_us       GB/s          extra\n",
               nth, E, K, o->rc.topk_groups, o->rc.num_groups, o->P, eplb_dtype_name(o->dt),
               eplb_select_mode_name(o->mode), o->hot);
    float *hb = malloc(sizeof *hb * E);
    for (int ti = 0; ti < o->nt && st == EPLB_OK; ti++) {
        const int64_t T = o->tokens[ti];
        brs = BENCH_SEED; /* the same inputs as the GPU benchmark's */
        void *x = bench_logits((size_t)T * E, o->dt);
        if (hb)
            bench_bias(hb, o);
        int32_t *ids = malloc(sizeof *ids * T * K), *phys = malloc(sizeof *phys * T * K);
        float *w = malloc(sizeof *w * T * K);
        int32_t *counts = calloc((size_t)o->P, sizeof *counts);
        const int reps = o->reps; /* every one (a fixed [3][64] kept 64 of 100000) */
        double *tbuf = malloc(sizeof *tbuf * 3 * (size_t)reps);
        if (!x || !ids || !phys || !w || !counts || !hb || !tbuf) {
            st = eplb_error_set(EPLB_ERR_NOMEM, CMD ": out of memory");
        } else {
            eplb_select_cfg_t sc = EPLB_SELECT_CFG_INIT;
            sc.mode = o->mode;
            sc.num_ranks = o->D;
            double *t[3] = {tbuf, tbuf + reps, tbuf + 2 * (size_t)reps};
            /* --only: route alone, select alone (on ids routed once,
             * untimed), or both for fused */
            const int do_route = o->only != 1, do_select = o->only != 0;
            if (!do_route)
                st = eplb_route_cpu(ids, w, x, o->dt, T, 1, o->bias ? hb : NULL, &o->rc);
            for (int r = 0; r < reps && st == EPLB_OK; r++) {
                /* (untimed: int32 counts summed over 100000 reps of a
                 * large T would overflow) */
                memset(counts, 0, sizeof *counts * (size_t)o->P);
                double t0 = eplb_now();
                if (do_route)
                    st = eplb_route_cpu(ids, w, x, o->dt, T, 1, o->bias ? hb : NULL, &o->rc);
                double t1 = eplb_now();
                if (st == EPLB_OK && do_select)
                    st = eplb_select_record_cpu(phys, counts, ids, T, 1, K, &m, &sc);
                double t2 = eplb_now();
                t[0][r] = (t1 - t0) * 1e6;
                t[1][r] = (t2 - t1) * 1e6;
                t[2][r] = (t2 - t0) * 1e6;
            }
            if (st == EPLB_OK) {
                const char *names[3] = {"route", "select", "fused"};
                double bytes[3] = {(double)T * E * eplb_dtype_size(o->dt) + 8.0 * T * K,
                                   8.0 * T * K,
                                   (double)T * E * eplb_dtype_size(o->dt) + 12.0 * T * K};
                /* per core: over the threads each call used (route: fewer
                 * than nth for small T; select: one per layer, here one;
                 * fused, both in turn: route's) */
                const int used[3] = {eplb_route_cpu_threads(T),
                                     eplb_select_cpu_threads(T, 1, K),
                                     eplb_route_cpu_threads(T)};
                for (int k = 0; k < 3; k++) {
                    if (o->only >= 0 && k != o->only)
                        continue;
                    qsort(t[k], (size_t)reps, sizeof(double), cmp_double);
                    double med = t[k][reps / 2];
                    /* per core: EPLB_THREADS above the CPU count runs the
                     * threads on fewer cores than threads */
                    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
                    const int cores = ncpu > 0 && ncpu < used[k] ? (int)ncpu : used[k];
                    report_t(o, "cpu", names[k], T, med, bytes[k], T / (med * 1e-6) / cores,
                             "tokens_per_s_per_core", used[k]);
                }
            }
        }
        free(x);
        free(ids);
        free(phys);
        free(w);
        free(counts);
        free(tbuf);
    }
    free(hb);
    free(lc);
    free(l2p);
    return st;
}

/* Strict integer option in [lo, hi] into *out. */
static eplb_status_t opt_int(int *out, const char *opt, const char *s, int lo, int hi)
{
    int64_t v = 0;
    if (eplb_decimal_parse(&v, s) != 0 || v < lo || v > hi)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: expected an integer in %d..%d, got "
                              "'%s'", opt, lo, hi, s);
    *out = (int)v;
    return EPLB_OK;
}

static int parse_tokens(bopts_t *o, const char *s)
{
    o->nt = 0;
    const char *end;
    while (*s) {
        int64_t v = 0;
        if (eplb_decimal_read(&v, &end, s) != 0 || v < 1 || v > MAX_TOKENS || o->nt == MAX_TS)
            return -1;
        o->tokens[o->nt++] = v;
        s = end;
        if (*s == ',') {
            s++;
            if (!*s)
                return -1; /* trailing comma */
        } else if (*s) {
            return -1;
        }
    }
    return o->nt ? 0 : -1;
}

int eplb_bench_kernels(int argc, char **argv)
{
    bopts_t o = {.gpu = -1, .nt = 5, .P = 288, .D = 32, .N = 4, .bias = 1, .json = 0,
                 .reps = 0, .variant = 0, .layers = 1, .only = -1, .dt = EPLB_DTYPE_F32,
                 .mode = EPLB_SELECT_HASH};
    const int64_t def_t[5] = {64, 512, 4096, 16384, 65536};
    memcpy(o.tokens, def_t, sizeof def_t);
    o.rc = (eplb_route_cfg_t){256, 8, EPLB_SCORING_SIGMOID, 8, 4, 1, 2.5f};
    static const struct option lo[] = {
        {"device", 1, 0, 'd'},  {"tokens", 1, 0, 't'},      {"experts", 1, 0, 'e'},
        {"topk", 1, 0, 'k'},    {"groups", 1, 0, 'g'},      {"topk-groups", 1, 0, 'G'},
        {"scoring", 1, 0, 's'}, {"no-bias", 0, 0, 'B'},     {"replicas", 1, 0, 'p'},
        {"gpus", 1, 0, 'D'},    {"nodes", 1, 0, 'N'},       {"mode", 1, 0, 'm'},
        {"dtype", 1, 0, 'y'},   {"reps", 1, 0, 'r'},        {"variant", 1, 0, 'v'},
        {"only", 1, 0, 'O'},    {"json", 0, 0, 'j'},        {"help", 0, 0, 'h'},
        {"hot", 1, 0, 'H'},     {"layers", 1, 0, 'L'},
        {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int ch;
    eplb_status_t st = EPLB_OK;
    while ((ch = eplb_cli_getopt(argc, argv, ":h", lo)) != -1) {
        switch (ch) {
        case 'd':
            if (!strcmp(optarg, "cpu"))
                o.gpu = 0;
            else if (!strcmp(optarg, "gpu"))
                o.gpu = 1;
            else if (!strcmp(optarg, "auto"))
                o.gpu = -1;
            else
                return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                         "--device: '%s' is not cpu, gpu or auto",
                                                         optarg));
            break;
        case 't':
            if (parse_tokens(&o, optarg))
                return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                         "--tokens: bad list '%s' (expected up "
                                                         "to %d comma-separated integers in "
                                                         "1..%d)",
                                                         optarg, MAX_TS, MAX_TOKENS));
            break;
        /* ranges beyond the route checks only keep the values in int */
        case 'e': st = opt_int(&o.rc.num_experts, "--experts", optarg, 1, 1 << 20); break;
        case 'k': st = opt_int(&o.rc.top_k, "--topk", optarg, 1, 1 << 20); break;
        case 'g': st = opt_int(&o.rc.num_groups, "--groups", optarg, 1, 1 << 20); break;
        case 'G': st = opt_int(&o.rc.topk_groups, "--topk-groups", optarg, 1, 1 << 20); break;
        case 's':
            if ((st = eplb_cli_name_option(eplb_scoring_parse(&o.rc.scoring, optarg),
                                           "--scoring")) != EPLB_OK)
                return eplb_cmd_fail(CMD, st);
            break;
        case 'B': o.bias = 0; break;
        case 'H': st = opt_int(&o.hot, "--hot", optarg, 0, 1 << 20); break;
        case 'L': st = opt_int(&o.layers, "--layers", optarg, 1, 128); break;
        case 'p': st = opt_int(&o.P, "--replicas", optarg, 1, EPLB_MAX_SLOTS); break;
        case 'D': st = opt_int(&o.D, "--gpus", optarg, 1, EPLB_MAX_GPUS); break;
        case 'N': st = opt_int(&o.N, "--nodes", optarg, 1, EPLB_MAX_GPUS); break;
        case 'm':
            if ((st = eplb_cli_name_option(eplb_select_mode_parse(&o.mode, optarg),
                                           "--mode")) != EPLB_OK)
                return eplb_cmd_fail(CMD, st);
            break;
        case 'y':
            if ((st = eplb_cli_name_option(eplb_dtype_parse(&o.dt, optarg), "--dtype")) !=
                EPLB_OK)
                return eplb_cmd_fail(CMD, st);
            break;
        case 'r': st = opt_int(&o.reps, "--reps", optarg, 1, 100000); break;
        case 'v': st = opt_int(&o.variant, "--variant", optarg, 0, 63); break;
        case 'O': {
            const char *names[5] = {"route", "select", "fused", "fused_ids", "step"};
            o.only = -2;
            for (int k = 0; k < 5; k++)
                if (!strcmp(optarg, names[k]))
                    o.only = k;
            if (o.only == -2)
                st = eplb_error_set(EPLB_ERR_INVALID_ARG, "--only wants route, select, fused, "
                                                    "fused_ids or step, not '%s'", optarg);
            break;
        }
        case 'j': o.json = 1; break;
        case 'h': usage(stdout); return 0;
        default: /* "--tokens needs a value", or an unknown option: one line */
            return eplb_cmd_fail(CMD, eplb_cli_getopt_fail(ch, argv));
        }
        if (st != EPLB_OK)
            return eplb_cmd_fail(CMD, st);
    }
    if (optind < argc)
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                 "unexpected argument '%s'", argv[optind]));
    if ((st = eplb_route_cfg_check(&o.rc)) != EPLB_OK) {
        /* "route: num_experts 600 outside [1, 512]" named no option */
        char opts[96];
        snprintf(opts, sizeof opts, "--experts %d, --topk %d, --groups %d, --topk-groups %d",
                 o.rc.num_experts, o.rc.top_k, o.rc.num_groups, o.rc.topk_groups);
        return eplb_cmd_fail(CMD, eplb_cli_name_option(st, opts));
    }
    if (o.hot > o.rc.top_k || (o.hot && !o.bias))
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                 o.hot > o.rc.top_k
                                                     ? "--hot %d: more than --topk %d"
                                                     : "--hot %d needs the bias (not --no-bias)",
                                                 o.hot, o.rc.top_k));
    if (o.P < o.rc.num_experts || o.D < 1 || o.N < 1 || o.P % o.D || o.D % o.N)
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                 "--replicas %d must be >= --experts and a "
                                                 "multiple of --gpus %d, a multiple of "
                                                 "--nodes %d",
                                                 o.P, o.D, o.N));
    if (o.layers > 1 && o.gpu == 0)
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                 "--layers %d: the CPU path times one layer "
                                                 "(--layers is for the GPU)",
                                                 o.layers));
    if (o.variant != 0 && o.gpu == 0) /* the CPU has one router: it was ignored */
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                 "--variant %d: a GPU routing kernel "
                                                 "(--variant is for the GPU)",
                                                 o.variant));
    static const char *const only_names[5] = {"route", "select", "fused", "fused_ids", "step"};
    if (o.gpu == 1 && !eplb_gpu_built())
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_UNSUPPORTED,
                                                 "--device gpu: this build has no CUDA "
                                                 "(configure --with-cuda); use --device cpu"));
    if (o.gpu == 0 && o.only > 2)
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                 "--only %s needs a GPU (the CPU path times "
                                                 "route, select and fused)",
                                                 only_names[o.only]));
    const int reps_given = o.reps;
    if (o.gpu != 0) {
        if (o.reps <= 0)
            o.reps = 25;
        st = eplb_gpu_built() ? bench_gpu(&o)
                              : eplb_error_set(EPLB_ERR_UNSUPPORTED, "this build has no CUDA");
        if (st == EPLB_OK)
            return 0;
        if (o.gpu == 1 && (st == EPLB_ERR_NO_DEVICE || st == EPLB_ERR_UNSUPPORTED))
            return eplb_cmd_fail(CMD, eplb_cli_name_option(st, "--device gpu")); /* as run */
        if (o.gpu == 1 || (st != EPLB_ERR_NO_DEVICE && st != EPLB_ERR_UNSUPPORTED))
            return eplb_cmd_fail(CMD, st);
        /* no CPU fallback: it times one layer with its one router, and
         * no fused_ids or step */
        if (o.layers > 1 || o.only > 2 || o.variant != 0) {
            char why[256], opt[64];
            snprintf(why, sizeof why, "%s", eplb_error_last());
            if (o.layers > 1)
                snprintf(opt, sizeof opt, "--layers %d", o.layers);
            else if (o.only > 2)
                snprintf(opt, sizeof opt, "--only %s", only_names[o.only]);
            else
                snprintf(opt, sizeof opt, "--variant %d", o.variant);
            return eplb_cmd_fail(CMD, eplb_error_set(st, "%s needs a GPU: %s", opt, why));
        }
        fprintf(stderr, "eplb-replay %s: no GPU (%s); timing the CPU path\n", CMD,
                eplb_error_last());
    }
    o.reps = reps_given > 0 ? reps_given : 5;
    st = bench_cpu(&o);
    return st == EPLB_OK ? 0 : eplb_cmd_fail(CMD, st);
}
