/* test_source.c - the replay's staged read loop (sim/source.c,
 * route_gpu_staged) on the CPU: the GPU stages are replaced by stand-ins
 * that route with eplb_route_cpu when waited for, as the GPU reads a
 * stage's logits until its routing is done.  So a read into a stage whose
 * routing is still in flight changes ids (and is caught when it asks for
 * the buffer).  Expected ids: the whole trace routed in one CPU call. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "sim_impl.h"
#include "trace_fixtures.h"

enum { L_ = 3, E_ = 16, K_ = 4, STEPS = 10, TPS = 37, T_ = STEPS * TPS };

/* ---- stand-in stages ------------------------------------------------------ */
typedef struct {
    int64_t max_tokens;
    int L, E, K;
    float *bias;
    void *logits; /* [max_tokens][L][E] of dtype dt_open, exactly */
    eplb_dtype_t dt_open;
    int32_t *ids;
    int pending;  /* submitted, not yet waited for */
    int64_t T;
    eplb_dtype_t dt;
    eplb_route_cfg_t rc;
} fake_stage_t;

static int n_submit, n_wait, fail_submit_at = -1, fail_wait_at = -1, hazards;
static int n_open_calls, fail_open_at = -1;
static fake_stage_t *opened[8];
static int n_opened;

static eplb_status_t fake_open(eplb_gpu_stage_t **out, eplb_gpu_t *g, int64_t max_tokens,
                               eplb_dtype_t dt, int L, int E, int K, int P, const float *bias)
{
    (void)g;
    (void)P;
    if (n_open_calls++ == fail_open_at)
        return eplb_error_set(EPLB_ERR_CUDA, "stand-in open failure");
    fake_stage_t *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    f->max_tokens = max_tokens;
    f->dt_open = dt;
    f->L = L;
    f->E = E;
    f->K = K;
    /* the size the real stage pins: a read of a wider dtype than the
     * trace's would overrun it (ASan) */
    f->logits = malloc((size_t)max_tokens * L * E * eplb_dtype_size(dt));
    f->ids = malloc((size_t)max_tokens * L * K * 4);
    cr_assert(f->logits && f->ids);
    if (bias) {
        f->bias = malloc(sizeof *f->bias * L * E);
        memcpy(f->bias, bias, sizeof *f->bias * L * E);
    }
    cr_assert_lt(n_opened, 8);
    opened[n_opened++] = f;
    *out = (eplb_gpu_stage_t *)f;
    return EPLB_OK;
}

static void fake_close(eplb_gpu_stage_t *s)
{
    fake_stage_t *f = (fake_stage_t *)s;
    if (!f)
        return;
    for (int i = 0; i < n_opened; i++)
        if (opened[i] == f)
            opened[i] = opened[--n_opened];
    free(f->bias);
    free(f->logits);
    free(f->ids);
    free(f);
}

static int n_logits; /* reads started (each asks for its stage's buffer) */
static void *fake_logits(eplb_gpu_stage_t *s)
{
    fake_stage_t *f = (fake_stage_t *)s;
    n_logits++;
    hazards += f->pending; /* a read into logits the "GPU" still reads */
    return f->logits;
}

static eplb_status_t fake_submit(eplb_gpu_stage_t *s, eplb_dtype_t dt, int64_t T,
                                 const eplb_route_cfg_t *rcfg, const eplb_select_cfg_t *scfg)
{
    fake_stage_t *f = (fake_stage_t *)s;
    cr_assert_null(scfg, "the replay's reads route only");
    cr_assert_leq(T, f->max_tokens);
    cr_assert_leq(eplb_dtype_size(dt), eplb_dtype_size(f->dt_open),
                  "rows of a wider dtype than the stage was opened for");
    hazards += f->pending; /* submitted twice without a wait */
    if (n_submit++ == fail_submit_at)
        return eplb_error_set(EPLB_ERR_CUDA, "stand-in submit failure");
    f->pending = 1;
    f->T = T;
    f->dt = dt;
    f->rc = *rcfg;
    return EPLB_OK;
}

static eplb_status_t fake_wait(eplb_gpu_stage_t *s, const int32_t **ids, const float **weights,
                               const int32_t **phys, const int32_t **counts)
{
    fake_stage_t *f = (fake_stage_t *)s;
    cr_assert(!weights && !phys && !counts);
    if (n_wait++ == fail_wait_at) {
        f->pending = 0;
        return eplb_error_set(EPLB_ERR_CUDA, "stand-in wait failure");
    }
    if (f->pending) /* the routing happens now, from the buffer as it is */
        eplb_assert_ok(eplb_route_cpu(f->ids, NULL, f->logits, f->dt, f->T, f->L, f->bias,
                                      &f->rc));
    f->pending = 0;
    if (ids)
        *ids = f->ids;
    return EPLB_OK;
}

static const sim_stage_ops_t fake_ops = {fake_open, fake_close, fake_logits, fake_submit,
                                         fake_wait};

/* ---- fixtures ------------------------------------------------------------- */
static char path[4096];
static float bias[L_ * E_];
static int32_t ref[T_ * L_ * K_];

/* Where the stored (deflated) logits chunk that holds token tok lies in
 * the file (with the trace not open). */
static void chunk_place(int tok, haddr_t *at, hsize_t *len)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    hid_t d = H5Dopen2(f, "/router/logits", H5P_DEFAULT);
    cr_assert_geq(d, 0);
    hsize_t off[3] = {(hsize_t)(tok / 8 * 8), 0, 0}, size = 0;
    haddr_t addr = 0;
    unsigned mask = 0;
    cr_assert_geq(H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size), 0);
    H5Dclose(d);
    H5Fclose(f);
    cr_assert_gt(size, 32);
    *at = addr;
    *len = size;
}

/* Overwrite 16 bytes in the middle of the chunk at addr (size bytes), so
 * that decoding it fails. */
static void corrupt_at(haddr_t addr, hsize_t size)
{
    FILE *fp = fopen(path, "r+b");
    cr_assert_not_null(fp);
    unsigned char junk[16];
    memset(junk, 0xa5, sizeof junk);
    cr_assert_eq(fseek(fp, (long)(addr + size / 2 - 8), SEEK_SET), 0);
    cr_assert_eq(fwrite(junk, 1, sizeof junk, fp), sizeof junk);
    fclose(fp);
}

static void corrupt_chunk(int tok)
{
    haddr_t addr = 0;
    hsize_t size = 0;
    chunk_place(tok, &addr, &size);
    corrupt_at(addr, size);
}

/* A bf16 DeepSeek-like trace (sigmoid, bias, groups) of T_ tokens in
 * dataset chunks of 8 tokens, logits and recorded ids; ref: its logits
 * routed in one call. */
static void write_trace(void)
{
    snprintf(path, sizeof path, "%s", eplb_test_path(eplb_test_tmpdir(), "staged.h5"));
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("staged", "tests/test_source.c", L_, E_,
                                                       K_, EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK);
    o.route.scoring = EPLB_SCORING_SIGMOID;
    o.route.num_groups = 4;
    o.route.topk_groups = 2;
    o.route.renormalize = 1;
    o.logits_dtype = EPLB_DTYPE_BF16;
    o.chunk_rows = 8;
    uint64_t x = 12345;
    float *lg = malloc(sizeof *lg * T_ * L_ * E_);
    int32_t *rec = malloc(sizeof *rec * T_ * L_ * K_);
    cr_assert(lg && rec);
    for (int i = 0; i < T_ * L_ * E_; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        lg[i] = (float)((x >> 40) % 4001) / 1000.0f - 2.0f;
    }
    for (int i = 0; i < L_ * E_; i++)
        bias[i] = (float)((i * 37) % 11) * 0.01f;
    /* recorded ids: the routing of the f32 logits (rounding to bf16 may
     * change a few; the routing check counts those) */
    eplb_assert_ok(eplb_route_cpu(rec, NULL, lg, EPLB_DTYPE_F32, T_, L_, bias, &o.route));
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    eplb_assert_ok(eplb_trace_writer_set_bias(w, bias));
    for (int s = 0; s < STEPS; s++)
        eplb_assert_ok(eplb_trace_writer_append_step(w, TPS, lg + (size_t)s * TPS * L_ * E_,
                                                     rec + (size_t)s * TPS * L_ * K_, NULL,
                                                     NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    free(lg);
    free(rec);
    {
        eplb_trace_t *tr = NULL;
        eplb_assert_ok(eplb_trace_open(&tr, path));
        uint16_t *xb = malloc(sizeof *xb * T_ * L_ * E_);
        cr_assert_not_null(xb);
        eplb_assert_ok(eplb_trace_read_logits(tr, xb, 0, T_));
        eplb_assert_ok(eplb_route_cpu(ref, NULL, xb, EPLB_DTYPE_BF16, T_, L_, bias,
                                      &eplb_trace_info(tr)->route));
        free(xb);
        eplb_trace_close(tr);
    }
}

/* A source over the open trace, routing through the stand-in stages in
 * reads of 16 tokens (2 threads x 1 chunk of 8). */
static eplb_sim_source_t *staged_source(eplb_trace_t *tr)
{
    static int dummy_gpu;
    eplb_sim_source_t *src = NULL;
    eplb_assert_ok(eplb_sim_source_trace(&src, tr));
    eplb_sim_source_use_gpu(src, (eplb_gpu_t *)&dummy_gpu);
    src->stage_ops = &fake_ops;
    return src;
}

static void setup(void)
{
    setenv("EPLB_THREADS", "2", 1);
    setenv("EPLB_READ_CHUNKS", "1", 1);
    n_submit = n_wait = hazards = n_opened = n_open_calls = 0;
    fail_submit_at = fail_wait_at = fail_open_at = -1;
}

static void teardown(void)
{
    unsetenv("EPLB_THREADS");
    unsetenv("EPLB_READ_CHUNKS");
    unsetenv("EPLB_READ_OVERLAP");
    unsetenv("EPLB_READ_CARRY");
    unsetenv("EPLB_COPY_THREADS");
    unsetenv("EPLB_GPU_STAGES");
    remove(path);
}

TestSuite(source, .init = setup, .fini = teardown);

/* Whole range, ranges inside dataset chunks, one read, two reads: the ids
 * of one call, with two reads in flight (the last one starting the read
 * after the range, or not: EPLB_READ_CARRY=0) and with one, and every row
 * counted once by the routing check. */
Test(source, staged_reads_equal_one_call)
{
    write_trace();
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    const int64_t r0[] = {0, 5, 0, 3, 16, 0}, r1[] = {T_, T_ - 3, 16, 20, 17, T_};
    static int32_t out[T_ * L_ * K_];
    for (int mode = 5; mode >= 0; mode--) {
        const int ov = mode % 3 > 0, carry = mode % 3 == 2, ns = mode >= 3 ? 3 : 2;
        setenv("EPLB_READ_OVERLAP", ov ? "1" : "0", 1);
        setenv("EPLB_READ_CARRY", carry ? "1" : "0", 1);
        setenv("EPLB_GPU_STAGES", ns == 3 ? "3" : "2", 1);
        for (size_t q = 0; q < sizeof r0 / sizeof r0[0]; q++) {
            eplb_sim_source_t *src = staged_source(tr);
            memset(out, 0x5a, sizeof out);
            const int submits = n_submit;
            eplb_assert_ok(src->read_ids(src, out, r0[q], r1[q]));
            const int64_t n = r1[q] - r0[q];
            cr_assert_eq(memcmp(out, ref + (size_t)r0[q] * L_ * K_, (size_t)n * L_ * K_ * 4), 0,
                         "overlap %d, tokens [%lld, %lld): ids differ from one call", ov,
                         (long long)r0[q], (long long)r1[q]);
            cr_assert_eq(n_submit - submits, (int)((n + 15) / 16), "reads of 16 tokens");
            int64_t rows = 0, differ = 0;
            eplb_sim_source_routing_check(src, &rows, &differ);
            cr_assert_eq(rows, n * L_);
            /* a stage is pinned memory: one per read up to ns (the next
             * rows' read is one more where the range ends before the
             * trace) */
            const int64_t reads = (n + 15) / 16 + (carry && r1[q] < T_);
            cr_assert_eq(n_opened, reads < ns ? reads : ns,
                         "mode %d, tokens [%lld, %lld): %d stages open", mode,
                         (long long)r0[q], (long long)r1[q], n_opened);
            eplb_sim_source_free(src);
        }
    }
    cr_assert_eq(hazards, 0, "a stage was refilled or resubmitted while its routing ran");
    cr_assert_eq(n_opened, 0, "stages left open");
    eplb_trace_close(tr);
}

/* Calls for consecutive ranges, as the replay's blocks: each call's last
 * read starts the next one's first, which takes it over (no read is
 * started twice); calls out of order drop it; the ids are those of one
 * call either way.  A corrupt chunk in the rows read ahead is reported by
 * the call that asks for them, not earlier, and not at all if none does. */
Test(source, staged_reads_carry_across_calls)
{
    /* the defaults, whatever the environment says */
    setenv("EPLB_READ_OVERLAP", "1", 1);
    setenv("EPLB_READ_CARRY", "1", 1);
    write_trace();
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    static int32_t out[T_ * L_ * K_];
    struct {
        int n;
        int64_t r[4][2];
        int reads; /* started, in reads of 16 tokens */
    } cases[] = {
        /* 4 + 4 + 17 reads, the next call's first read started once */
        {3, {{0, 50}, {50, 100}, {100, T_}}, 25},
        /* pieces inside reads, up to the end */
        {4, {{0, 7}, {7, 23}, {23, 40}, {40, T_}}, 1 + 1 + 2 + 21},
        /* out of order: each call's read ahead dropped (3 wasted) */
        {3, {{0, 50}, {100, 150}, {50, 100}}, 4 + 4 + 4 + 3},
        /* the same range twice: the second call cannot use [16, 32) */
        {2, {{0, 16}, {0, 16}}, 1 + 1 + 2},
    };
    for (size_t cc = 0; cc < 2 * sizeof cases / sizeof cases[0]; cc++) {
        const size_t c = cc % (sizeof cases / sizeof cases[0]); /* 2 stages, then 3 */
        setenv("EPLB_GPU_STAGES", cc < sizeof cases / sizeof cases[0] ? "2" : "3", 1);
        eplb_sim_source_t *src = staged_source(tr);
        n_logits = 0;
        for (int i = 0; i < cases[c].n; i++) {
            const int64_t a = cases[c].r[i][0], b = cases[c].r[i][1];
            memset(out, 0x5a, sizeof out);
            eplb_assert_ok(src->read_ids(src, out, a, b));
            cr_assert_eq(memcmp(out, ref + (size_t)a * L_ * K_, (size_t)(b - a) * L_ * K_ * 4),
                         0, "case %zu, call %d, tokens [%lld, %lld): ids differ", c, i,
                         (long long)a, (long long)b);
        }
        eplb_sim_source_free(src);
        cr_assert_eq(n_logits, cases[c].reads, "case %zu: %d reads started, want %d", c,
                     n_logits, cases[c].reads);
    }
    cr_assert_eq(hazards, 0, "a stage was refilled or resubmitted while its routing ran");
    cr_assert_eq(n_opened, 0, "stages left open");
    eplb_trace_close(tr);
    /* (3 stages from here on) chunk of tokens [48, 56) corrupt: [0, 48)
     * ends with a read of [48, 64) started, which fails unseen; the call
     * for [48, 96) reports it */
    write_trace();
    corrupt_chunk(50);
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_sim_source_t *src = staged_source(tr);
    eplb_assert_ok(src->read_ids(src, out, 0, 48));
    cr_assert_eq(memcmp(out, ref, (size_t)48 * L_ * K_ * 4), 0, "rows before the bad chunk");
    eplb_status_t st = src->read_ids(src, out, 48, 96);
    cr_assert_neq(st, EPLB_OK, "the corrupt chunk went unnoticed");
    cr_assert(strstr(eplb_error_last(), "staged.h5") && strstr(eplb_error_last(), "/router/logits"),
              "%s", eplb_error_last());
    for (int i = 0; i < n_opened; i++)
        cr_assert_eq(opened[i]->pending, 0, "routing left in flight");
    eplb_sim_source_free(src);
    /* nobody asks for those rows: no error */
    src = staged_source(tr);
    eplb_assert_ok(src->read_ids(src, out, 0, 48));
    eplb_sim_source_free(src);
    cr_assert_eq(hazards, 0);
    cr_assert_eq(n_opened, 0, "stages left open");
    eplb_trace_close(tr);
}

/* The prefetched rows' copy on several threads: every byte in place and
 * nothing written past the end, for sizes below one piece, at piece
 * boundaries and between, from and to odd addresses, on 1, 3 and 8
 * threads (EPLB_COPY_THREADS; more are capped at 8). */
Test(source, parallel_copy_is_memcpy)
{
    const size_t piece = (size_t)4 << 20, cap = 9 * piece + 4096;
    unsigned char *src = malloc(cap), *dst = malloc(cap + 64);
    cr_assert(src && dst);
    for (size_t i = 0; i < cap; i++)
        src[i] = (unsigned char)(i * 131 + (i >> 13));
    const size_t sizes[] = {0, 1, 4095, piece - 1, piece, 2 * piece + 7, 8 * piece, 9 * piece + 1};
    const char *threads[] = {"1", "3", "8", "100"};
    setenv("EPLB_THREADS", "16", 1);
    for (size_t t = 0; t < 4; t++) {
        setenv("EPLB_COPY_THREADS", threads[t], 1);
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++)
            for (size_t off = 0; off < 2; off++) {
                const size_t n = sizes[z];
                memset(dst, 0xee, cap + 64);
                sim_copy_parallel(dst + off * 3, src + off, n);
                cr_assert_eq(memcmp(dst + off * 3, src + off, n), 0,
                             "%s threads, %zu bytes, offset %zu: copy differs", threads[t], n, off);
                for (size_t i = 0; i < 64 && off * 3 + n + i < cap + 64; i++)
                    cr_assert_eq(dst[off * 3 + n + i], 0xee, "%s threads, %zu bytes: written past "
                                 "the end", threads[t], n);
                for (size_t i = 0; i < off * 3; i++)
                    cr_assert_eq(dst[i], 0xee, "written before the start");
            }
    }
    unsetenv("EPLB_COPY_THREADS");
    free(src);
    free(dst);
}

/* A failing submit, a failing wait, a corrupt logits chunk (the reader's
 * error), each in the first, a middle and the last read: an error naming
 * the cause, no stage left with routing in flight. */
Test(source, staged_errors_stop_cleanly)
{
    write_trace();
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    static int32_t out[T_ * L_ * K_];
    for (int ov = 1; ov >= 0; ov--) {
        setenv("EPLB_READ_OVERLAP", ov ? "1" : "0", 1);
        const int at[] = {0, 3, 23};
        for (int q = 0; q < 3; q++) {
            for (int which = 0; which < 2; which++) {
                eplb_sim_source_t *src = staged_source(tr);
                n_submit = n_wait = 0;
                fail_submit_at = which == 0 ? at[q] : -1;
                fail_wait_at = which == 1 ? at[q] : -1;
                eplb_status_t st = src->read_ids(src, out, 0, T_);
                cr_assert_eq(st, EPLB_ERR_CUDA, "overlap %d, %s %d: status %d", ov,
                             which ? "wait" : "submit", at[q], (int)st);
                cr_assert(strstr(eplb_error_last(), which ? "stand-in wait failure"
                                                          : "stand-in submit failure"),
                          "%s", eplb_error_last());
                for (int i = 0; i < n_opened; i++)
                    cr_assert_eq(opened[i]->pending, 0, "routing left in flight");
                eplb_sim_source_free(src);
            }
        }
    }
    fail_submit_at = fail_wait_at = -1;
    /* opening stage 0 fails before any read; stage 1's while read 0 is
     * decoding (on its helper thread with the overlap) */
    for (int ov = 1; ov >= 0; ov--) {
        setenv("EPLB_READ_OVERLAP", ov ? "1" : "0", 1);
        for (int at = 0; at < 2; at++) {
            eplb_sim_source_t *src = staged_source(tr);
            n_open_calls = 0;
            fail_open_at = at;
            eplb_status_t st = src->read_ids(src, out, 0, T_);
            cr_assert_eq(st, EPLB_ERR_CUDA, "overlap %d, open %d: status %d", ov, at, (int)st);
            cr_assert(strstr(eplb_error_last(), "stand-in open failure"), "%s",
                      eplb_error_last());
            cr_assert_eq(n_opened, at, "stages open");
            for (int i = 0; i < n_opened; i++)
                cr_assert_eq(opened[i]->pending, 0, "routing left in flight");
            eplb_sim_source_free(src);
        }
    }
    fail_open_at = -1;
    eplb_trace_close(tr);
    const int bad_tok[] = {2, 150, T_ - 1};
    for (int q = 0; q < 3; q++) {
        write_trace();
        corrupt_chunk(bad_tok[q]);
        eplb_assert_ok(eplb_trace_open(&tr, path));
        for (int ov = 1; ov >= 0; ov--) {
            setenv("EPLB_READ_OVERLAP", ov ? "1" : "0", 1);
            eplb_sim_source_t *src = staged_source(tr);
            eplb_status_t st = src->read_ids(src, out, 0, T_);
            cr_assert_neq(st, EPLB_OK);
            cr_assert(strstr(eplb_error_last(), "staged.h5") &&
                          strstr(eplb_error_last(), "/router/logits"),
                      "%s", eplb_error_last());
            for (int i = 0; i < n_opened; i++)
                cr_assert_eq(opened[i]->pending, 0, "routing left in flight");
            eplb_sim_source_free(src);
        }
        eplb_trace_close(tr);
    }
    cr_assert_eq(hazards, 0);
    cr_assert_eq(n_opened, 0, "stages left open");
}

/* Rows decoded ahead (eplb_sim_source_prefetch, while CUDA would start):
 * the staged reads below its end copy them, so a chunk corrupted on disk
 * afterwards goes unnoticed there (and is reported where the rows are
 * decoded); the ids are those of one call whatever the prefetch covered,
 * stopped at once or not; the CPU path drops a prefetch. */
Test(source, prefetched_rows_are_copied)
{
    write_trace();
    haddr_t bad_at = 0;
    hsize_t bad_len = 0;
    chunk_place(150, &bad_at, &bad_len);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    const size_t row = (size_t)L_ * E_ * 2; /* bf16 */
    static int32_t out[T_ * L_ * K_];
    const int64_t caps[] = {1, 16, 37, T_};
    const int64_t r0[] = {0, 5, 0, 20}, r1[] = {T_, T_ - 3, 16, T_};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++)
        for (size_t q = 0; q < sizeof r0 / sizeof r0[0]; q++) {
            eplb_sim_source_t *src = staged_source(tr);
            eplb_sim_source_prefetch(src, (size_t)caps[c] * row);
            cr_assert_eq(sim_prefetch_join(src), caps[c], "prefetch of %lld rows",
                         (long long)caps[c]);
            memset(out, 0x5a, sizeof out);
            eplb_assert_ok(src->read_ids(src, out, r0[q], r1[q]));
            cr_assert_eq(memcmp(out, ref + (size_t)r0[q] * L_ * K_,
                                (size_t)(r1[q] - r0[q]) * L_ * K_ * 4),
                         0, "prefetch %lld, tokens [%lld, %lld): ids differ from one call",
                         (long long)caps[c], (long long)r0[q], (long long)r1[q]);
            eplb_sim_source_free(src);
        }
    /* stopped at once: some rows or none, the same ids */
    for (int rep = 0; rep < 3; rep++) {
        eplb_sim_source_t *src = staged_source(tr);
        eplb_sim_source_prefetch(src, (size_t)T_ * row);
        const int64_t got = eplb_sim_source_prefetch_stop(src, NULL);
        cr_assert(got >= 0 && got <= T_);
        eplb_assert_ok(src->read_ids(src, out, 0, T_));
        cr_assert_eq(memcmp(out, ref, sizeof out), 0, "stopped at %lld rows", (long long)got);
        eplb_sim_source_free(src);
    }
    /* the CPU path (no GPU): dropped, the CPU's routing */
    {
        eplb_sim_source_t *src = NULL;
        eplb_assert_ok(eplb_sim_source_trace(&src, tr));
        eplb_sim_source_prefetch(src, (size_t)T_ * row);
        cr_assert_eq(sim_prefetch_join(src), T_);
        eplb_assert_ok(src->read_ids(src, out, 0, T_));
        cr_assert_eq(memcmp(out, ref, sizeof out), 0, "CPU path");
        eplb_sim_source_free(src);
    }
    /* all rows decoded ahead, then a chunk corrupted on disk: not read again */
    eplb_sim_source_t *src = staged_source(tr);
    eplb_sim_source_prefetch(src, (size_t)T_ * row);
    cr_assert_eq(sim_prefetch_join(src), T_);
    corrupt_at(bad_at, bad_len);
    eplb_assert_ok(src->read_ids(src, out, 0, T_));
    cr_assert_eq(memcmp(out, ref, sizeof out), 0, "from the prefetch");
    eplb_sim_source_free(src);
    /* without it the same source decodes and meets the corrupt chunk */
    src = staged_source(tr);
    cr_assert_neq(src->read_ids(src, out, 0, T_), EPLB_OK, "the corrupt chunk went unnoticed");
    eplb_sim_source_free(src);
    /* a prefetch that meets it stops before its read (pieces of 16 rows:
     * 144 rows), silently; the staged reads then report it */
    src = staged_source(tr);
    eplb_sim_source_prefetch(src, (size_t)T_ * row);
    cr_assert_eq(sim_prefetch_join(src), 144);
    eplb_status_t st = src->read_ids(src, out, 0, T_);
    cr_assert_neq(st, EPLB_OK);
    cr_assert(strstr(eplb_error_last(), "staged.h5") && strstr(eplb_error_last(), "/router/logits"),
              "%s", eplb_error_last());
    eplb_sim_source_free(src);
    cr_assert_eq(hazards, 0);
    cr_assert_eq(n_opened, 0, "stages left open");
    eplb_trace_close(tr);
}
