/* source.c - where the replay's steps come from: a trace (routed on the CPU
 * when it has logits only), arrays (tests), or a synthetic counts stream
 * (bench sim). */
#include "sim_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "decimal.h"
#include "tmpfile_guard.h"

/* ---- trace ------------------------------------------------------------ */

/* Logits are routed in reads of this many bytes of raw logits, or of
 * READ_CHUNKS_PER_THREAD dataset chunks per decode thread where that is
 * more: a read of one chunk per thread (32 MiB = 16 chunks of the
 * DeepSeek-V3 preset on 16 cores) leaves threads idle at the start and end
 * of every read, waiting for the slowest.  On the GPU path a read lands in
 * one of two pinned stages.  With cudaMallocHost (~0.6 s per GB) 2 chunks
 * per thread were best there (run 25, H100); with the stages in huge pages
 * and the reads carried across blocks (struct sim_reads) 4 are: the
 * 192-step DeepSeek-V3 trace 2.29-2.40 s against 2.44-2.56 with 2, the
 * 64-step one 0.99-1.09 against 1.09-1.13 (runs 74-75, H200).  Tunable:
 * EPLB_READ_CHUNKS (1-64) for both, exactly (without the 32 MiB minimum). */
#define ROUTE_CHUNK_BYTES (32u << 20)
#define READ_CHUNKS_PER_THREAD 4
#define ROUTE_CHUNK_MAX_BYTES ((size_t)512 << 20) /* per read (two with a GPU) */

static eplb_status_t trace_ids_topk(eplb_sim_source_t *s, int32_t *ids,
                                    int64_t t0, int64_t t1)
{
    return eplb_trace_read_topk(s->trace, ids, NULL, t0, t1);
}

/* The trace has both logits and the recorded topk ids: count the (token,
 * layer) rows where our routing picks a different set of experts (DESIGN.md,
 * "Exactness").  Each token is compared once, even if read twice. */
static eplb_status_t compare_record(eplb_sim_source_t *s, const int32_t *ids,
                                    int64_t t0, int64_t t1)
{
    if (!(eplb_trace_info(s->trace)->levels & EPLB_LEVEL_TOPK) || t1 <= s->cmp_upto)
        return EPLB_OK; /* nothing recorded, or compared already */
    int64_t a = t0 > s->cmp_upto ? t0 : s->cmp_upto;
    size_t n = (size_t)(t1 - a), LK = (size_t)s->L * s->K;
    if (n > s->rec_cap) {
        free(s->rec);
        s->rec = malloc(n * LK * sizeof *s->rec);
        if (!s->rec)
            return eplb_error_set(EPLB_ERR_NOMEM, "recorded topk ids: out of memory");
        s->rec_cap = n;
    }
    EPLB_CHECK(eplb_trace_read_topk(s->trace, s->rec, NULL, a, t1));
    for (size_t r = 0; r < n * s->L; r++) {
        const int32_t *x = ids + ((size_t)(a - t0) * s->L + r) * s->K;
        const int32_t *y = s->rec + r * s->K;
        int same = 1;
        for (int i = 0; i < s->K && same; i++) {
            int found = 0;
            for (int j = 0; j < s->K; j++)
                found |= x[i] == y[j];
            same = found;
        }
        s->cmp_differ += !same;
    }
    s->cmp_rows += (int64_t)n * s->L;
    s->cmp_upto = t1;
    return EPLB_OK;
}

/* A read of logits rows [t0, t1) into buf on a helper thread, so that the
 * next read's decoding starts while this one drains (its last chunks on a
 * few threads, the others idle: decoding in reads of 2 chunks per thread
 * took 1.6x `bench io`'s one whole-dataset read, run 36).  The reads of
 * the trace handle are safe to run side by side (HDF5 behind its lock,
 * buffer pool locked); the second one's producer waits for the first's. */
typedef struct {
    const eplb_trace_t *tr;
    void *buf;
    const void *from; /* rows decoded already (the prefetch): copied, not decoded */
    size_t row;       /* bytes per row (from) */
    int64_t t0, t1;
    eplb_status_t st;
    double secs;
    pthread_t th;
    int running; /* 1: th runs the read; 0: done (st, err set) */
    char err[1024];
} async_read_t;

/* memcpy on up to COPY_THREADS threads (EPLB_COPY_THREADS; pieces of at
 * least COPY_PIECE bytes): the GPU path's reads of prefetched rows are
 * copies of up to 268 MB into a pinned stage, which on one thread ran at
 * memory-copy speed while the decode threads had nothing to do yet. */
#define COPY_THREADS 8
#define COPY_PIECE ((size_t)4 << 20)
typedef struct {
    char *dst;
    const char *src;
    size_t n;
} copy_piece_t;

static void *copy_piece(void *arg)
{
    copy_piece_t *c = arg;
    memcpy(c->dst, c->src, c->n);
    return NULL;
}

void sim_copy_parallel(void *dst, const void *src, size_t n)
{
    int threads = (int)eplb_env_int("EPLB_COPY_THREADS", 1, INT32_MAX, COPY_THREADS);
    if (threads > COPY_THREADS)
        threads = COPY_THREADS;
    if (threads > eplb_num_threads())
        threads = eplb_num_threads();
    size_t k = n / COPY_PIECE;
    k = k < 1 ? 1 : k > (size_t)threads ? (size_t)threads : k;
    const size_t per = ((n + k - 1) / k + 63) & ~(size_t)63; /* k pieces cover n */
    copy_piece_t pc[COPY_THREADS];
    pthread_t th[COPY_THREADS];
    int started[COPY_THREADS] = {0};
    for (size_t i = 0; i < k; i++) {
        const size_t a = i * per < n ? i * per : n, e = a + per < n ? a + per : n;
        pc[i] = (copy_piece_t){(char *)dst + a, (const char *)src + a, e - a};
        if (i > 0)
            started[i] = eplb_thread_create(&th[i], NULL, copy_piece, &pc[i]) == 0;
    }
    for (size_t i = 0; i < k; i++)
        if (!started[i]) /* piece 0, and any whose thread did not start */
            copy_piece(&pc[i]);
    for (size_t i = 1; i < k; i++)
        if (started[i])
            pthread_join(th[i], NULL);
}

static void async_read_run(async_read_t *a)
{
    double tm = eplb_now();
    if (a->from) {
        sim_copy_parallel(a->buf, a->from, (size_t)(a->t1 - a->t0) * a->row);
        a->st = EPLB_OK;
        a->secs = 0; /* decoded earlier: counted by the prefetch */
        return;
    }
    a->st = eplb_trace_read_logits_parallel(a->tr, a->buf, a->t0, a->t1, 0);
    a->secs = eplb_now() - tm;
    if (a->st != EPLB_OK)
        snprintf(a->err, sizeof a->err, "%s", eplb_error_last());
}

static void *async_read_main(void *p)
{
    async_read_run(p);
    return NULL;
}

/* Start the read (on the calling thread where no thread can be started or
 * overlap is off). */
static void async_read_start(async_read_t *a, const eplb_trace_t *tr, void *buf, int64_t t0,
                             int64_t t1, int overlap)
{
    a->tr = tr;
    a->buf = buf;
    a->t0 = t0;
    a->t1 = t1;
    a->running = overlap && eplb_thread_create(&a->th, NULL, async_read_main, a) == 0;
    if (!a->running)
        async_read_run(a);
}

/* Wait for the read; its status, with its message as the last error. */
static eplb_status_t async_read_wait(async_read_t *a, double *secs)
{
    if (a->running)
        pthread_join(a->th, NULL);
    a->running = 0;
    *secs += a->secs;
    return a->st == EPLB_OK ? EPLB_OK : eplb_error_set(a->st, "%s", a->err);
}

/* The GPU path's two reads, one per stage, kept between calls: the last
 * read of a call starts the next call's first (rows [carry_a, carry_e),
 * in stage carry_j), so that two reads stay in flight across the
 * replay's blocks.  Without it each block's last read decoded alone
 * while the next block's waited: in `bench io --reads`, reads of 2240
 * tokens of the DeepSeek-V3 preset (2 chunks per thread, the GPU path's
 * size then) two in flight ran at 0.80 of one whole-dataset read, one at
 * a time at 0.68 (run 73). */
struct sim_reads {
    async_read_t rd[SIM_STAGES_MAX]; /* one per stage; two in flight */
    int ns;    /* stages in use (EPLB_GPU_STAGES, read at the first call) */
    int carry; /* rd[carry_j] decodes the next call's first read */
    int carry_j;
    int64_t carry_a, carry_e;
};

/* Wait for a read the last call started for the next one and drop it */
static void carry_drop(eplb_sim_source_t *s)
{
    struct sim_reads *r = s->reads;
    if (!r || !r->carry)
        return;
    double unused = 0;
    (void)async_read_wait(&r->rd[r->carry_j], &unused);
    r->carry = 0;
}

static void reads_free(eplb_sim_source_t *s)
{
    carry_drop(s);
    free(s->reads);
    s->reads = NULL;
}

/* ---- the first rows decoded while CUDA starts ---------------------------- */
/* eplb_sim_source_prefetch: a helper thread decodes logits rows [0, cap)
 * into ordinary memory, in reads of the GPU path's size, two in flight,
 * until eplb_sim_source_prefetch_stop; the GPU path then copies its reads that
 * lie below `upto` from here instead of decoding them.  The copies are the
 * bytes a decode would give, so the output does not depend on how far the
 * prefetch got. */
struct sim_prefetch {
    const eplb_trace_t *tr;
    char *buf;            /* rows [0, cap) */
    size_t row;           /* bytes per row */
    int64_t cap, chunk;   /* tokens; tokens per read */
    atomic_int stop;
    atomic_llong upto;    /* rows [0, upto) decoded */
    double secs;          /* decoding */
    pthread_t th;
    int running;
};

static void *prefetch_main(void *arg)
{
    struct sim_prefetch *p = arg;
    const double tm = eplb_now();
    /* two reads in flight, as on the GPU path: the next one's decoding
     * fills this one's drain; published in order.  An error: no further
     * rows (the main path decodes them itself and reports it) */
    async_read_t rd[2];
    memset(rd, 0, sizeof rd);
    const int64_t n = (p->cap + p->chunk - 1) / p->chunk;
    int64_t started = 0;
    int ok = 1;
    for (int64_t k = 0; k < n; k++) {
        for (; started < n && started <= k + 1 && ok && !atomic_load(&p->stop); started++) {
            const int64_t t = started * p->chunk, e = t + p->chunk < p->cap ? t + p->chunk : p->cap;
            async_read_start(&rd[started & 1], p->tr, p->buf + (size_t)t * p->row, t, e, 1);
        }
        if (k >= started)
            break; /* stopped: nothing more in flight */
        double unused = 0;
        if (async_read_wait(&rd[k & 1], &unused) != EPLB_OK) {
            eplb_error_clear();
            ok = 0;
        }
        if (ok)
            atomic_store(&p->upto, (long long)(k + 1 < n ? (k + 1) * p->chunk : p->cap));
    }
    p->secs = eplb_now() - tm;
    return NULL;
}

/* The helper thread joined (told to stop after its reads in flight, with
 * `stop`): the rows it decoded */
static int64_t prefetch_join(struct sim_prefetch *p, int stop)
{
    if (p->running) {
        if (stop)
            atomic_store(&p->stop, 1);
        pthread_join(p->th, NULL);
        p->running = 0;
    }
    return (int64_t)atomic_load(&p->upto);
}

static void prefetch_free(eplb_sim_source_t *s)
{
    struct sim_prefetch *p = s->pf;
    if (!p)
        return;
    (void)prefetch_join(p, 1);
    free(p->buf);
    free(p);
    s->pf = NULL;
}

/* Wait for stage j's routing of tokens [a, e); with `take`, its ids into
 * ids (whose first row is token t0) and the routing check of them. */
static eplb_status_t stage_collect(eplb_sim_source_t *s, const sim_stage_ops_t *op, int j,
                                   int32_t *ids, int64_t t0, int64_t a, int64_t e, int take)
{
    const int32_t *got;
    double tm = eplb_now();
    eplb_status_t st = op->wait(s->stage[j], &got, NULL, NULL, NULL);
    s->t_gpu_wait += eplb_now() - tm;
    if (st != EPLB_OK || !take)
        return st;
    const size_t row_ids = (size_t)s->L * s->K;
    int32_t *out = ids + (size_t)(a - t0) * row_ids;
    memcpy(out, got, (size_t)(e - a) * row_ids * sizeof *out);
    return compare_record(s, out, a, e);
}

static const sim_stage_ops_t gpu_stage_ops = {eplb_gpu_stage_open, eplb_gpu_stage_close,
                                              eplb_gpu_stage_logits, eplb_gpu_stage_submit,
                                              eplb_gpu_stage_wait};

/* Stage j, opened (pinned) on first use, for reads of up to `chunk`
 * tokens; the time goes to the "opening the stages" timing */
static eplb_status_t stage_open(eplb_sim_source_t *s, const sim_stage_ops_t *op, int j,
                                int64_t chunk)
{
    if (s->stage[j])
        return EPLB_OK;
    double tm = eplb_now();
    eplb_status_t st = op->open(&s->stage[j], s->gpu, chunk,
                                eplb_trace_info(s->trace)->logits_dtype, s->L, s->E, s->K, 1,
                                s->bias);
    s->t_stage += eplb_now() - tm;
    return st;
}

/* Stages the GPU path cycles through: 2 (default) or EPLB_GPU_STAGES=3 */
static int stages_env(void)
{
    const char *v = getenv("EPLB_GPU_STAGES");
    return v && !strcmp(v, "3") ? 3 : 2;
}

/* Routing on the GPU through ns pinned stages (kernels/), read k in
 * stage k mod ns: read k+1 is decoded into its stage's pinned buffer
 * while read k finishes decoding and then goes to the GPU (copy in,
 * route, copy back); before read k+1 starts, the GPU is done with read
 * k+1-ns in that stage (with 2 stages the read just before read k, whose
 * copy may still run; with 3 the one before that).  The last read of a
 * call starts the first read of the rows that follow (struct sim_reads),
 * which the next call takes over when it asks for them.
 * EPLB_READ_OVERLAP=0: one read at a time (the reads on this thread);
 * EPLB_READ_CARRY=0: no read across calls. */
static eplb_status_t route_gpu_staged(eplb_sim_source_t *s, int32_t *ids, int64_t t0,
                                      int64_t t1, int64_t chunk)
{
    const eplb_trace_info_t *inf = eplb_trace_info(s->trace);
    const sim_stage_ops_t *op = s->stage_ops ? s->stage_ops : &gpu_stage_ops;
    const int overlap = !eplb_env_off("EPLB_READ_OVERLAP");
    const int carry_on = overlap && !eplb_env_off("EPLB_READ_CARRY");
    const int64_t n = (t1 - t0 + chunk - 1) / chunk; /* reads */
    const int64_t total = s->tok_off[s->S];
    if (!s->reads && !(s->reads = calloc(1, sizeof *s->reads)))
        return eplb_error_set(EPLB_ERR_NOMEM, "GPU reads: out of memory");
    struct sim_reads *R = s->reads;
    async_read_t *rd = R->rd;
    if (!R->ns)
        R->ns = stages_env();
    const int ns = R->ns;
    /* read 0 started by the last call (in stage j0), if it asked for
     * these rows next; else that read is dropped */
    int j0 = 0, carried = 0;
    if (R->carry) {
        const int64_t e0 = t0 + chunk < t1 ? t0 + chunk : t1;
        if (n > 0 && R->carry_a == t0 && R->carry_e >= e0) {
            j0 = R->carry_j;
            carried = 1;
            R->carry = 0;
        } else {
            carry_drop(s);
        }
    }
    /* stage j0 now; the other when a second read needs it, opened here
     * while read 0 decodes on its helper thread (pinning costs ~0.6 s per
     * GB: a one-read replay pins one stage) */
    if (n > 0)
        EPLB_CHECK(stage_open(s, op, j0, chunk));
    /* stage j holds a submitted read of tokens [first[j], last[j]) not yet
     * collected */
    int submitted[SIM_STAGES_MAX] = {0};
    int64_t first[SIM_STAGES_MAX] = {0}, last[SIM_STAGES_MAX] = {0};
    eplb_status_t st = EPLB_OK;
    /* reads below the prefetch's end: copied from it */
    const int64_t pf_upto = s->pf ? (int64_t)atomic_load(&s->pf->upto) : 0;
    const size_t row = s->pf ? s->pf->row : 0;
#define START_READ(j, a_, e_, ov_)                                                          \
    do {                                                                                   \
        rd[j].from = (e_) <= pf_upto ? s->pf->buf + (size_t)(a_) * row : NULL;             \
        rd[j].row = row;                                                                   \
        async_read_start(&rd[j], s->trace, op->logits(s->stage[j]), (a_), (e_), (ov_));    \
    } while (0)
    if (n > 0 && !carried)
        START_READ(j0, t0, t0 + chunk < t1 ? t0 + chunk : t1,
                   overlap && (n > 1 || (carry_on && t1 < total)));
    for (int64_t k = 0; k < n && st == EPLB_OK; k++) {
        const int cur = (int)((j0 + k) % ns), nxt = (cur + 1) % ns;
        const int64_t a = t0 + k * chunk, e = a + chunk < t1 ? a + chunk : t1;
        /* the next read: this call's, or after the last one the next
         * call's first (rows past t1, up to a read's size) */
        const int next = k + 1 < n ? 1 : carry_on && e < total ? 2 : 0;
        if (next) {
            const int64_t lim = next == 1 ? t1 : total;
            /* the stage of the next read: collect read k+1-ns's routing first */
            if (submitted[nxt]) {
                st = stage_collect(s, op, nxt, ids, t0, first[nxt], last[nxt], 1);
                submitted[nxt] = 0;
            }
            if (st == EPLB_OK)
                st = stage_open(s, op, nxt, chunk);
            if (st == EPLB_OK) {
                START_READ(nxt, e, e + chunk < lim ? e + chunk : lim, overlap);
                if (next == 2) {
                    R->carry = 1;
                    R->carry_j = nxt;
                    R->carry_a = e;
                    R->carry_e = e + chunk < lim ? e + chunk : lim;
                }
            }
        }
        eplb_status_t sr = async_read_wait(&rd[cur], &s->t_decode);
        if (st == EPLB_OK)
            st = sr;
        if (st == EPLB_OK)
            st = op->submit(s->stage[cur], inf->logits_dtype, e - a, &inf->route, NULL);
        if (st == EPLB_OK) {
            submitted[cur] = 1;
            first[cur] = a;
            last[cur] = e;
        }
    }
    /* a read still running (after an error: the next call's too) and the
     * routing in flight: their buffers must be left alone before
     * returning; the last reads' ids in order */
    char keep[1024];
    snprintf(keep, sizeof keep, "%s", eplb_error_last());
    const eplb_status_t st_loop = st;
    if (st != EPLB_OK)
        carry_drop(s);
    for (int j = 0; j < ns; j++)
        if (rd[j].running && !(R->carry && j == R->carry_j)) {
            double unused = 0;
            (void)async_read_wait(&rd[j], &unused);
        }
    for (;;) { /* the submitted reads, in token order */
        int j = -1;
        for (int q = 0; q < ns; q++)
            if (submitted[q] && (j < 0 || first[q] < first[j]))
                j = q;
        if (j < 0)
            break;
        submitted[j] = 0;
        eplb_status_t sw = stage_collect(s, op, j, ids, t0, first[j], last[j], st == EPLB_OK);
        if (st == EPLB_OK)
            st = sw;
    }
#undef START_READ
    /* the prefetch used up (no read of it in flight now: a read started
     * for the next call begins at t1 >= pf_upto, so it decodes) */
    if (s->pf && t1 >= pf_upto)
        prefetch_free(s);
    /* the loop's error, not one of the clean-up's */
    return st_loop != EPLB_OK ? eplb_error_set(st_loop, "%s", keep) : st;
}

/* The CPU path's routing of rows [a, b) of the read that starts at token
 * t (out: the read's ids), on the decode worker that placed them */
typedef struct {
    eplb_sim_source_t *s;
    int32_t *out;
    int64_t t;
    size_t row; /* bytes of logits per token */
    atomic_int bad;
} route_rows_t;

static void route_rows(void *ctx, int64_t a, int64_t b)
{
    route_rows_t *r = ctx;
    const eplb_sim_source_t *s = r->s;
    const eplb_trace_info_t *inf = eplb_trace_info(s->trace);
    if (eplb_route_cpu_serial(r->out + (size_t)(a - r->t) * s->L * s->K, NULL,
                              (const char *)s->logits + (size_t)(a - r->t) * r->row,
                              inf->logits_dtype, b - a,
                              s->L, s->bias, &inf->route) != EPLB_OK)
        atomic_store(&r->bad, 1);
}

/* Bytes of logits per token */
static size_t logits_row(const eplb_sim_source_t *s)
{
    return (size_t)s->L * s->E * eplb_dtype_size(eplb_trace_info(s->trace)->logits_dtype);
}

/* Tokens per read of logits (rows of `row` bytes), on the GPU path and the
 * CPU's */
static int64_t read_chunk(const eplb_sim_source_t *s, size_t row)
{
    int64_t chunk = (int64_t)(ROUTE_CHUNK_BYTES / row);
    if (chunk < 1)
        chunk = 1;
    /* whole dataset chunks per read: the parallel reader inflates every
     * chunk the range touches in full */
    const int64_t ct = eplb_trace_chunk_tokens(s->trace);
    const int64_t rc = eplb_env_int("EPLB_READ_CHUNKS", 1, 64, 0);
    const int set = rc > 0;
    const int64_t per = set ? rc : READ_CHUNKS_PER_THREAD;
    /* EPLB_READ_CHUNKS: exactly that many per thread (also below 32 MiB:
     * tests read small traces in many reads) */
    if (ct > 0 && (set || chunk < per * eplb_num_threads() * ct))
        chunk = per * eplb_num_threads() * ct;
    if (chunk > (int64_t)(ROUTE_CHUNK_MAX_BYTES / row))
        chunk = (int64_t)(ROUTE_CHUNK_MAX_BYTES / row);
    if (chunk < 1)
        chunk = 1;
    if (ct > 0 && chunk > ct)
        chunk -= chunk % ct;
    return chunk;
}

static eplb_status_t trace_ids_route(eplb_sim_source_t *s, int32_t *ids,
                                     int64_t t0, int64_t t1)
{
    if (!s->gpu) /* a prefetch for a GPU that did not start: not used */
        prefetch_free(s);
    const eplb_trace_info_t *inf = eplb_trace_info(s->trace);
    const size_t row = logits_row(s);
    const int64_t chunk = read_chunk(s, row);
    /* chunks inflated on all cores, where the layout allows (else the
     * reader falls back to one H5Dread): a plain H5Dread decodes at ~240
     * MB/s on one core, 6.5 s of an 8.6 s replay of a 1.5 GB trace (run 15) */
    if (s->gpu)
        return route_gpu_staged(s, ids, t0, t1, chunk);
    const int after_read = eplb_env_on("EPLB_ROUTE_AFTER_READ");
    if (!s->logits) {
        s->logits = malloc(row * (size_t)chunk);
        if (!s->logits)
            return eplb_error_set(EPLB_ERR_NOMEM, "routing buffer: out of memory");
        s->logits_cap = (size_t)chunk;
    }
    EPLB_CHECK(eplb_route_cfg_check(&inf->route));
    for (int64_t t = t0; t < t1; t += chunk) {
        int64_t e = t + chunk < t1 ? t + chunk : t1;
        int32_t *out = ids + (size_t)(t - t0) * s->L * s->K;
        double t0 = eplb_now();
        /* each chunk routed by the worker that decoded it, while it is in
         * that core's cache and the other chunks still decode (decode and
         * routing in one pass, with no barrier between them);
         * EPLB_ROUTE_AFTER_READ=1 (timing): routing after the read */
        route_rows_t rr = {s, out, t, row, 0};
        int all = 0;
        EPLB_CHECK(eplb_trace_read_logits_each(s->trace, s->logits, t, e, 0,
                                               after_read ? NULL : route_rows, &rr, &all));
        double t1 = eplb_now();
        s->t_decode += t1 - t0;
        if (atomic_load(&rr.bad))
            return eplb_error_set(EPLB_ERR_INTERNAL, "routing a decoded chunk failed");
        if (!all || after_read) /* rows no worker routed: all of them here */
            EPLB_CHECK(eplb_route_cpu(out, NULL, s->logits, inf->logits_dtype, e - t, s->L,
                                      s->bias, &inf->route));
        s->t_route += eplb_now() - t1;
        EPLB_CHECK(compare_record(s, out, t, e));
    }
    return EPLB_OK;
}

static eplb_status_t trace_src(eplb_sim_source_t *s, uint16_t *rank, int64_t t0,
                               int64_t t1)
{
    return eplb_trace_read_src_rank(s->trace, rank, t0, t1);
}

static eplb_status_t trace_counts(eplb_sim_source_t *s, int32_t *counts,
                                  int64_t s0, int64_t s1)
{
    return eplb_trace_read_counts(s->trace, counts, s0, s1);
}

static void trace_free(eplb_sim_source_t *s)
{
    reads_free(s); /* before the stages: a read in flight writes into one */
    prefetch_free(s);
    const sim_stage_ops_t *op = s->stage_ops ? s->stage_ops : &gpu_stage_ops;
    for (int j = 0; j < SIM_STAGES_MAX; j++)
        op->close(s->stage[j]);
    free(s->logits);
    free(s->bias);
    free(s->rec);
}

static void set_max_step(eplb_sim_source_t *s)
{
    s->max_step_tokens = 0;
    for (int64_t i = 0; s->tok_off && i < s->S; i++)
        if (s->tok_off[i + 1] - s->tok_off[i] > s->max_step_tokens)
            s->max_step_tokens = s->tok_off[i + 1] - s->tok_off[i];
}

eplb_status_t eplb_sim_source_trace(eplb_sim_source_t **out, const eplb_trace_t *tr)
{
    const eplb_trace_info_t *inf = eplb_trace_info(tr);
    eplb_status_t st = EPLB_OK;
    eplb_sim_source_t *s = calloc(1, sizeof *s);
    EPLB_ALLOC_GOTO(s, st, err);
    s->L = inf->num_layers;
    s->E = inf->route.num_experts;
    s->K = inf->route.top_k;
    s->G = inf->route.num_groups;
    s->S = inf->num_steps;
    s->trace = tr;
    s->tok_off = eplb_trace_token_offsets(tr);
    snprintf(s->model, sizeof s->model, "%s", inf->model);
    s->model_config = inf->model_config;
    s->free_fn = trace_free;
    s->read_counts = trace_counts;
    if (inf->levels & (EPLB_LEVEL_TOPK | EPLB_LEVEL_LOGITS)) {
        s->token_level = 1;
        /* the richest level: route the logits when there are any */
        if (!(inf->levels & EPLB_LEVEL_LOGITS)) {
            s->read_ids = trace_ids_topk;
        } else {
            s->read_ids = trace_ids_route;
            if (inf->has_bias) {
                s->bias = malloc((size_t)s->L * s->E * sizeof *s->bias);
                EPLB_ALLOC_GOTO(s->bias, st, err);
                EPLB_CHECK_GOTO(eplb_trace_read_bias(tr, s->bias), st, err);
            }
        }
        if (inf->has_src_rank)
            s->read_src = trace_src;
        set_max_step(s);
    } else if (!(inf->levels & EPLB_LEVEL_COUNTS)) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: no logits, topk_ids or counts",
                            eplb_trace_path(tr));
        goto err;
    }
    *out = s;
    return EPLB_OK;
err:
    eplb_sim_source_free(s);
    return st;
}

/* ---- arrays ----------------------------------------------------------- */

static eplb_status_t arr_ids(eplb_sim_source_t *s, int32_t *ids, int64_t t0,
                             int64_t t1)
{
    size_t row = (size_t)s->L * s->K;
    memcpy(ids, s->ids + (size_t)t0 * row, (size_t)(t1 - t0) * row * sizeof *ids);
    return EPLB_OK;
}

static eplb_status_t arr_counts(eplb_sim_source_t *s, int32_t *counts, int64_t s0,
                                int64_t s1)
{
    size_t row = (size_t)s->L * s->E;
    memcpy(counts, s->counts + (size_t)s0 * row,
           (size_t)(s1 - s0) * row * sizeof *counts);
    return EPLB_OK;
}

eplb_status_t eplb_sim_source_arrays(eplb_sim_source_t **out, int L, int E, int K,
                                     int num_groups, int64_t S,
                                     const int64_t *token_offset,
                                     const int32_t *ids, const int32_t *counts)
{
    if (L < 1 || E < 1 || K < 1 || K > E || S < 0 || num_groups < 1 ||
        (!ids && !counts) || (ids && !token_offset))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "sim source: bad shape L=%d E=%d K=%d S=%lld", L, E,
                              K, (long long)S);
    eplb_sim_source_t *s = calloc(1, sizeof *s);
    if (!s)
        return eplb_error_set(EPLB_ERR_NOMEM, "sim source: out of memory");
    s->L = L;
    s->E = E;
    s->K = K;
    s->G = num_groups;
    s->S = S;
    s->ids = ids;
    s->counts = counts;
    s->tok_off = ids ? token_offset : NULL;
    s->token_level = ids != NULL;
    s->read_ids = arr_ids;
    s->read_counts = arr_counts;
    snprintf(s->model, sizeof s->model, "arrays");
    set_max_step(s);
    *out = s;
    return EPLB_OK;
}

/* ---- synthetic counts ------------------------------------------------- */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Each (step, layer, expert) count is the layer's Zipf-like mean times a
 * factor in [0.5, 1.5) from a counter-based hash: cheap enough that the
 * benchmark measures the simulator, not the generator. */
static eplb_status_t syn_counts(eplb_sim_source_t *s, int32_t *counts, int64_t s0,
                                int64_t s1)
{
    size_t row = (size_t)s->L * s->E;
    for (int64_t t = s0; t < s1; t++) {
        uint64_t x = s->seed ^ ((uint64_t)t * 0xd1342543de82ef95ull);
        int32_t *c = counts + (size_t)(t - s0) * row;
        for (size_t i = 0; i < row; i += 4) {
            uint64_t r = splitmix(&x);
            for (size_t j = i; j < i + 4 && j < row; j++, r >>= 16)
                c[j] = (int32_t)(s->base[j] * (0.5f + (float)(r & 0xffff) / 65536.0f));
        }
    }
    return EPLB_OK;
}

static void syn_free(eplb_sim_source_t *s)
{
    free(s->base);
}

eplb_status_t eplb_sim_source_synthetic(eplb_sim_source_t **out, int L, int E, int K,
                                        int64_t S, int tokens_per_step,
                                        uint64_t seed)
{
    if (L < 1 || E < 1 || K < 1 || S < 0 || tokens_per_step < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "synthetic source: bad shape");
    if (K > E) /* a token picks K distinct experts */
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "synthetic source: top-%d of %d experts", K, E);
    eplb_status_t st = EPLB_OK;
    eplb_sim_source_t *s = calloc(1, sizeof *s);
    EPLB_ALLOC_GOTO(s, st, err);
    s->L = L;
    s->E = E;
    s->K = K;
    s->G = 1;
    s->S = S;
    s->seed = seed;
    s->tokens_per_step = tokens_per_step;
    s->read_counts = syn_counts;
    s->free_fn = syn_free;
    snprintf(s->model, sizeof s->model, "synthetic");
    s->base = malloc((size_t)L * E * sizeof *s->base);
    EPLB_ALLOC_GOTO(s->base, st, err);
    uint64_t x = seed;
    for (int l = 0; l < L; l++) {
        /* Zipf(1) over a per-layer random permutation of ranks */
        double norm = 0;
        for (int e = 0; e < E; e++)
            norm += 1.0 / (e + 1);
        for (int e = 0; e < E; e++)
            s->base[(size_t)l * E + e] = -1;
        for (int r = 0; r < E; r++) {
            int e = (int)(splitmix(&x) % (uint64_t)E);
            while (s->base[(size_t)l * E + e] >= 0)
                e = (e + 1) % E;
            s->base[(size_t)l * E + e] =
                (float)((double)tokens_per_step * K / (r + 1) / norm);
        }
    }
    *out = s;
    return EPLB_OK;
err:
    eplb_sim_source_free(s);
    return st;
}

void eplb_sim_source_free(eplb_sim_source_t *s)
{
    if (!s)
        return;
    if (s->free_fn)
        s->free_fn(s);
    free(s);
}

void eplb_sim_source_use_gpu(eplb_sim_source_t *s, eplb_gpu_t *gpu)
{
    s->gpu = gpu;
}

void eplb_sim_source_prefetch(eplb_sim_source_t *s, size_t max_bytes)
{
    if (!s || !s->trace || s->free_fn != trace_free || s->pf || !s->token_level ||
        !(eplb_trace_info(s->trace)->levels & EPLB_LEVEL_LOGITS) || !s->tok_off)
        return;
    if (eplb_env_off("EPLB_PREFETCH"))
        return;
    const size_t row = logits_row(s);
    int64_t cap = (int64_t)(max_bytes / row);
    cap = cap < s->tok_off[s->S] ? cap : s->tok_off[s->S];
    if (cap <= 0)
        return;
    struct sim_prefetch *p = calloc(1, sizeof *p);
    /* in 2 MiB pages where the kernel gives them: with 4 KiB pages the
     * replay's system time was 1.32-1.59 s against 0.84-0.93 without the
     * prefetch (page faults while CUDA starts; run 65) */
    size_t sz; /* unused: the rows are what counts */
    char *buf = p ? eplb_huge_alloc((size_t)cap * row, &sz) : NULL;
    if (!buf) { /* best effort: the rows then decode as any others */
        free(p);
        return;
    }
    p->tr = s->trace;
    p->buf = buf;
    p->row = row;
    p->cap = cap;
    p->chunk = read_chunk(s, row);
    atomic_init(&p->stop, 0);
    atomic_init(&p->upto, 0);
    p->running = eplb_thread_create(&p->th, NULL, prefetch_main, p) == 0;
    if (!p->running) {
        free(buf);
        free(p);
        return;
    }
    s->pf = p;
}

int64_t sim_prefetch_join(eplb_sim_source_t *s)
{
    return s && s->pf ? prefetch_join(s->pf, 0) : 0;
}

int64_t eplb_sim_source_prefetch_stop(eplb_sim_source_t *s, double *secs)
{
    struct sim_prefetch *p = s ? s->pf : NULL;
    if (secs)
        *secs = 0;
    if (!p)
        return 0;
    const int64_t upto = prefetch_join(p, 1);
    if (secs)
        *secs = p->secs;
    if (upto == 0)
        prefetch_free(s);
    return upto;
}

void eplb_sim_source_routing_check(const eplb_sim_source_t *s, int64_t *rows,
                                   int64_t *differ)
{
    *rows = s->cmp_rows;
    *differ = s->cmp_differ;
}

void eplb_sim_source_shape(const eplb_sim_source_t *s, int *L, int *E, int *K,
                           int64_t *S, int *token_level)
{
    *L = s->L;
    *E = s->E;
    *K = s->K;
    *S = s->S;
    *token_level = s->token_level;
}
