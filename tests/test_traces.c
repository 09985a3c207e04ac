/* test_traces.c - trace writer/reader round trips, streaming ranges, chunk
 * boundaries, parallel == serial reads.  Expected values come from closed
 * formulas below (not from the reader), and bf16/f16 from the conversion
 * functions of src/types.c (tested on their own in test_core.c). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "helpers.h"
#include "trace.h"
#include "trace_fixtures.h"

#define L_ 3
#define K_ 4

static float logit_at(int64_t t, int l, int e)
{
    return 4.0f * sinf(0.37f * (float)t + 1.3f * (float)l + 0.11f * (float)e) +
           0.001f * (float)e;
}
static int32_t id_at(int64_t t, int l, int k, int E) { return (int32_t)((t * 7 + l * 3 + k * 5) % E); }
static float weight_at(int64_t t, int l, int k) { return 0.01f * (float)(t + l + k); }
static uint16_t rank_at(int64_t t) { return (uint16_t)(t % 4 + 100); }
static uint8_t phase_at(int64_t s) { return (uint8_t)(s % 3); }
static float bias_at(int l, int e) { return 0.5f * (float)l - 0.01f * (float)e; }

/* Tokens per step: zero-token steps and steps longer than a chunk. */
static const int64_t step_tokens[] = {5, 0, 13, 7, 1, 20, 9};
/* Counts of K_ experts, each at most the step's tokens: a layer's row sums
 * to at most K_ x tokens, as the reader checks. */
static int32_t count_at(int64_t s, int l, int e)
{
    return e < K_ ? (int32_t)((s * 31 + l * 7 + e) % (step_tokens[s] + 1)) : 0;
}
#define NSTEPS ((int)(sizeof step_tokens / sizeof step_tokens[0]))
#define NTOK 55 /* sum of step_tokens: not a multiple of the chunk (8) */

typedef struct {
    eplb_dtype_t dt;
    int E;
    unsigned levels;
    int64_t chunk_rows;
} spec_t;

static int write_threads; /* compression threads of write_trace (0: default) */
static int write_no_shuffle; /* write_trace: deflate only */

/* Write a trace of NSTEPS steps from the formulas above. */
static void write_trace(const char *path, const spec_t *sp)
{
    eplb_trace_writer_opts_t o = EPLB_TRACE_WRITER_OPTS_INIT;
    o.model = "test-model";
    o.source = "test_traces.c formulas";
    o.model_config = "{\"hidden\": 16}";
    o.num_layers = L_;
    o.route.num_experts = sp->E;
    o.route.top_k = K_;
    o.route.scoring = EPLB_SCORING_SIGMOID;
    o.route.num_groups = 4;
    o.route.topk_groups = 2;
    o.route.renormalize = 1;
    o.route.routed_scaling_factor = 2.5f;
    o.levels = sp->levels;
    o.logits_dtype = sp->dt;
    o.topk_weights = (sp->levels & EPLB_LEVEL_TOPK) != 0;
    o.phase = 1;
    o.src_rank = (sp->levels & (EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK)) != 0;
    o.chunk_rows = sp->chunk_rows;
    o.threads = write_threads;
    o.no_shuffle = write_no_shuffle;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    int E = sp->E;
    float *lg = malloc(sizeof(float) * 20 * L_ * (size_t)E);
    int32_t *ids = malloc(sizeof(int32_t) * 20 * L_ * K_);
    float *wt = malloc(sizeof(float) * 20 * L_ * K_);
    int32_t *cn = malloc(sizeof(int32_t) * L_ * (size_t)E);
    uint16_t *rk = malloc(sizeof(uint16_t) * 20);
    float *bias = malloc(sizeof(float) * L_ * (size_t)E);
    int64_t t0 = 0;
    for (int s = 0; s < NSTEPS; s++) {
        int64_t n = step_tokens[s];
        for (int64_t i = 0; i < n; i++) {
            rk[i] = rank_at(t0 + i);
            for (int l = 0; l < L_; l++) {
                for (int e = 0; e < E; e++)
                    lg[(i * L_ + l) * E + e] = logit_at(t0 + i, l, e);
                for (int k = 0; k < K_; k++) {
                    ids[(i * L_ + l) * K_ + k] = id_at(t0 + i, l, k, E);
                    wt[(i * L_ + l) * K_ + k] = weight_at(t0 + i, l, k);
                }
            }
        }
        for (int l = 0; l < L_; l++)
            for (int e = 0; e < E; e++)
                cn[l * E + e] = count_at(s, l, e);
        eplb_assert_ok(eplb_trace_writer_append_step(w, n, lg, ids, wt, cn, rk, phase_at(s)));
        t0 += n;
    }
    for (int l = 0; l < L_; l++)
        for (int e = 0; e < E; e++)
            bias[l * E + e] = bias_at(l, e);
    eplb_assert_ok(eplb_trace_writer_set_bias(w, bias));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    free(lg);
    free(ids);
    free(wt);
    free(cn);
    free(rk);
    free(bias);
}

/* Expected file bits of logit (t, l, e). */
static uint32_t want_bits(eplb_dtype_t dt, int64_t t, int l, int e)
{
    float f = logit_at(t, l, e);
    if (dt == EPLB_DTYPE_BF16)
        return eplb_f32_to_bf16(f);
    if (dt == EPLB_DTYPE_F16)
        return eplb_f32_to_f16(f);
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}

static uint32_t got_bits(const void *buf, eplb_dtype_t dt, size_t i)
{
    if (dt == EPLB_DTYPE_F32) {
        uint32_t x;
        memcpy(&x, (const char *)buf + 4 * i, 4);
        return x;
    }
    return ((const uint16_t *)buf)[i];
}

static void check_logits(const eplb_trace_t *tr, eplb_dtype_t dt, int E, int64_t t0, int64_t t1)
{
    size_t es = eplb_dtype_size(dt), per = (size_t)L_ * (size_t)E;
    void *buf = malloc((size_t)(t1 - t0) * per * es + 1);
    eplb_assert_ok(eplb_trace_read_logits(tr, buf, t0, t1));
    for (int64_t t = t0; t < t1; t++)
        for (int l = 0; l < L_; l++)
            for (int e = 0; e < E; e++) {
                size_t i = ((size_t)(t - t0) * L_ + (size_t)l) * (size_t)E + (size_t)e;
                cr_assert_eq(got_bits(buf, dt, i), want_bits(dt, t, l, e),
                             "%s logit t=%lld l=%d e=%d", eplb_dtype_name(dt), (long long)t, l,
                             e);
            }
    free(buf);
}

static void check_all(const char *path, const spec_t *sp)
{
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    int E = sp->E;
    cr_assert_eq(in->version, 1);
    cr_assert_str_eq(in->model, "test-model");
    cr_assert_str_eq(in->source, "test_traces.c formulas");
    cr_assert_str_eq(in->model_config, "{\"hidden\": 16}");
    cr_assert_eq(in->num_layers, L_);
    cr_assert_eq(in->route.num_experts, E);
    cr_assert_eq(in->route.top_k, K_);
    cr_assert_eq(in->route.scoring, EPLB_SCORING_SIGMOID);
    cr_assert_eq(in->route.num_groups, 4);
    cr_assert_eq(in->route.topk_groups, 2);
    cr_assert_eq(in->route.renormalize, 1);
    cr_assert_float_eq(in->route.routed_scaling_factor, 2.5f, 0);
    cr_assert_eq(in->num_steps, NSTEPS);
    cr_assert_eq(in->levels, sp->levels);
    cr_assert_eq(in->has_bias, 1);
    cr_assert_eq(in->has_phase, 1);
    const int64_t *off = eplb_trace_token_offsets(tr);
    int64_t acc = 0;
    for (int s = 0; s < NSTEPS; s++) {
        cr_assert_eq(off[s], acc);
        acc += step_tokens[s];
    }
    cr_assert_eq(off[NSTEPS], NTOK);
    cr_assert_eq(in->num_tokens, NTOK);

    if (sp->levels & EPLB_LEVEL_LOGITS) {
        cr_assert_eq(in->logits_dtype, sp->dt);
        check_logits(tr, sp->dt, E, 0, NTOK);
        /* step by step, as a streaming consumer reads */
        for (int s = 0; s < NSTEPS; s++)
            check_logits(tr, sp->dt, E, off[s], off[s + 1]);
    }
    if (sp->levels & EPLB_LEVEL_TOPK) {
        cr_assert_eq(in->topk_id_bytes, E > 256 ? 2 : 1);
        cr_assert_eq(in->has_topk_weights, 1);
        int32_t *ids = malloc(sizeof(int32_t) * NTOK * L_ * K_);
        float *wt = malloc(sizeof(float) * NTOK * L_ * K_);
        eplb_assert_ok(eplb_trace_read_topk(tr, ids, wt, 0, NTOK));
        for (int64_t t = 0; t < NTOK; t++)
            for (int l = 0; l < L_; l++)
                for (int k = 0; k < K_; k++) {
                    size_t i = ((size_t)t * L_ + (size_t)l) * K_ + (size_t)k;
                    cr_assert_eq(ids[i], id_at(t, l, k, E));
                    cr_assert_float_eq(wt[i], weight_at(t, l, k), 0);
                }
        free(ids);
        free(wt);
    }
    if (sp->levels & EPLB_LEVEL_COUNTS) {
        int32_t *cn = malloc(sizeof(int32_t) * NSTEPS * L_ * (size_t)E);
        eplb_assert_ok(eplb_trace_read_counts(tr, cn, 0, NSTEPS));
        for (int s = 0; s < NSTEPS; s++)
            for (int l = 0; l < L_; l++)
                for (int e = 0; e < E; e++)
                    cr_assert_eq(cn[((size_t)s * L_ + (size_t)l) * (size_t)E + (size_t)e],
                                 count_at(s, l, e));
        /* a sub-range */
        eplb_assert_ok(eplb_trace_read_counts(tr, cn, 2, 5));
        cr_assert_eq(cn[0], count_at(2, 0, 0));
        cr_assert_eq(cn[(size_t)2 * L_ * (size_t)E + (size_t)E + 1], count_at(4, 1, 1));
        free(cn);
    }
    /* write_spec stores source ranks with logits or topk ids */
    cr_assert_eq(in->has_src_rank, (sp->levels & (EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK)) != 0);
    if (in->has_src_rank) {
        uint16_t rk[NTOK];
        eplb_assert_ok(eplb_trace_read_src_rank(tr, rk, 0, NTOK));
        for (int t = 0; t < NTOK; t++)
            cr_assert_eq(rk[t], rank_at(t));
    }
    uint8_t ph[NSTEPS];
    eplb_assert_ok(eplb_trace_read_phase(tr, ph, 0, NSTEPS));
    for (int s = 0; s < NSTEPS; s++)
        cr_assert_eq(ph[s], phase_at(s));
    float *bias = malloc(sizeof(float) * L_ * (size_t)E);
    eplb_assert_ok(eplb_trace_read_bias(tr, bias));
    for (int l = 0; l < L_; l++)
        for (int e = 0; e < E; e++)
            cr_assert_float_eq(bias[l * E + e], bias_at(l, e), 0);
    free(bias);
    eplb_trace_close(tr);
}

static const char *tmp_file(const char *name)
{
    return eplb_test_path(eplb_test_tmpdir(), name);
}

ParameterizedTestParameters(traces, round_trip)
{
    static spec_t specs[] = {
        {EPLB_DTYPE_F32, 20, EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS, 8},
        {EPLB_DTYPE_F16, 20, EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS, 8},
        {EPLB_DTYPE_BF16, 20, EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS, 8},
        {EPLB_DTYPE_BF16, 300, EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK, 6},   /* uint16 ids */
        {EPLB_DTYPE_F32, 20, EPLB_LEVEL_TOPK, 0},                        /* default chunks */
        {EPLB_DTYPE_F32, 24, EPLB_LEVEL_COUNTS, 3},                      /* counts only */
        {EPLB_DTYPE_F16, 20, EPLB_LEVEL_LOGITS, 1},                      /* 1-row chunks */
    };
    return cr_make_param_array(spec_t, specs, sizeof specs / sizeof specs[0]);
}

ParameterizedTest(spec_t *sp, traces, round_trip)
{
    const char *path = tmp_file("rt.h5");
    write_trace(path, sp);
    check_all(path, sp);
    unlink(path);
}

/* Tokens [3, 50) cross every chunk boundary of 8-row chunks mid-chunk. */
Test(traces, streaming_range_across_chunks)
{
    spec_t sp = {EPLB_DTYPE_BF16, 20, EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK, 8};
    const char *path = tmp_file("range.h5");
    write_trace(path, &sp);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_chunk_tokens(tr), 8);
    check_logits(tr, sp.dt, sp.E, 3, 50);
    check_logits(tr, sp.dt, sp.E, 54, 55);
    check_logits(tr, sp.dt, sp.E, 10, 10); /* empty range */
    int32_t ids[L_ * K_ * 2];
    eplb_assert_ok(eplb_trace_read_topk(tr, ids, NULL, 15, 17));
    cr_assert_eq(ids[L_ * K_ + 2 * K_ + 3], id_at(16, 2, 3, sp.E));
    /* out of range */
    eplb_assert_fails(eplb_trace_read_logits(tr, ids, 50, 56), EPLB_ERR_INVALID_ARG,
                      "/router/logits");
    eplb_trace_close(tr);
    unlink(path);
}

static void check_parallel(const spec_t *sp)
{
    const char *path = tmp_file("par.h5");
    write_trace(path, sp);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert(eplb_trace_parallel_supported(tr));
    size_t n = eplb_trace_raw_bytes(tr);
    size_t per = (sp->levels & EPLB_LEVEL_LOGITS) ? (size_t)L_ * (size_t)sp->E : L_ * K_;
    size_t es = (sp->levels & EPLB_LEVEL_LOGITS) ? eplb_dtype_size(sp->dt)
                                                  : (sp->E > 256 ? 2u : 1u);
    cr_assert_eq(n, NTOK * per * es);
    unsigned char *ser = malloc(n + 16), *par = malloc(n + 16);
    memset(ser, 0xa5, n + 16);
    eplb_assert_ok(eplb_trace_read_all_serial(tr, ser));
    /* serial against the formulas */
    for (size_t i = 0; i < NTOK * per; i++) {
        int64_t t = (int64_t)(i / per);
        if (sp->levels & EPLB_LEVEL_LOGITS) {
            int l = (int)(i % per / (size_t)sp->E), e = (int)(i % (size_t)sp->E);
            cr_assert_eq(got_bits(ser, sp->dt, i), want_bits(sp->dt, t, l, e));
        } else {
            int l = (int)(i % per / K_), k = (int)(i % K_);
            int32_t got = es == 2 ? ((uint16_t *)ser)[i] : ser[i];
            cr_assert_eq(got, id_at(t, l, k, sp->E));
        }
    }
    int threads[] = {1, 2, 3, 7};
    for (size_t j = 0; j < sizeof threads / sizeof threads[0]; j++) {
        memset(par, 0x5a, n + 16); /* poison: unwritten bytes show */
        eplb_assert_ok(eplb_trace_read_all_parallel(tr, par, threads[j]));
        cr_assert(memcmp(ser, par, n) == 0, "parallel(%d) != serial", threads[j]);
        for (int i = 0; i < 16; i++)
            cr_assert_eq(par[n + (size_t)i], 0x5a, "wrote past the end");
    }
    /* token ranges: cut chunks at both ends, aligned, one token, empty */
    if (sp->levels & EPLB_LEVEL_LOGITS) {
        static const int64_t ranges[][2] = {{3, 50}, {0, NTOK}, {54, NTOK}, {8, 16}, {10, 10},
                                            {17, 18}};
        for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
            int64_t t0 = ranges[r][0], t1 = ranges[r][1];
            size_t nb = (size_t)(t1 - t0) * per * es;
            for (int th = 1; th <= 3; th += 2) {
                memset(par, 0x5a, n + 16);
                eplb_assert_ok(eplb_trace_read_logits_parallel(tr, par, t0, t1, th));
                cr_assert(memcmp(par, ser + (size_t)t0 * per * es, nb) == 0,
                          "range [%lld, %lld) with %d threads differs", (long long)t0,
                          (long long)t1, th);
                cr_assert_eq(par[nb], 0x5a, "range read wrote past its end");
            }
        }
        eplb_assert_fails(eplb_trace_read_logits_parallel(tr, par, 5, NTOK + 1, 2),
                          EPLB_ERR_INVALID_ARG, "/router/logits");
    }
    free(ser);
    free(par);
    eplb_trace_close(tr);
    unlink(path);
}

ParameterizedTestParameters(traces, parallel_equals_serial)
{
    static spec_t specs[] = {
        {EPLB_DTYPE_F32, 20, EPLB_LEVEL_LOGITS, 8},
        {EPLB_DTYPE_F16, 20, EPLB_LEVEL_LOGITS, 8},
        {EPLB_DTYPE_BF16, 20, EPLB_LEVEL_LOGITS, 8},
        {EPLB_DTYPE_BF16, 64, EPLB_LEVEL_LOGITS, 0}, /* one partial 2 MiB chunk */
        {EPLB_DTYPE_F32, 20, EPLB_LEVEL_TOPK, 7},    /* uint8 ids */
        {EPLB_DTYPE_F32, 300, EPLB_LEVEL_TOPK, 9},   /* uint16 ids */
        {EPLB_DTYPE_F32, 20, EPLB_LEVEL_LOGITS, 55}, /* exactly one full chunk */
    };
    return cr_make_param_array(spec_t, specs, sizeof specs / sizeof specs[0]);
}

ParameterizedTest(spec_t *sp, traces, parallel_equals_serial) { check_parallel(sp); }

/* The same on deflate-only files (writer option no_shuffle): a pipeline of
 * one filter, read on the parallel path. */
ParameterizedTestParameters(traces, parallel_equals_serial_no_shuffle)
{
    static spec_t specs[] = {
        {EPLB_DTYPE_F32, 20, EPLB_LEVEL_LOGITS, 8},
        {EPLB_DTYPE_BF16, 20, EPLB_LEVEL_LOGITS, 8},
        {EPLB_DTYPE_F16, 64, EPLB_LEVEL_LOGITS, 0},  /* one partial 2 MiB chunk */
        {EPLB_DTYPE_F32, 300, EPLB_LEVEL_TOPK, 9},   /* uint16 ids */
        {EPLB_DTYPE_F32, 20, EPLB_LEVEL_LOGITS, 55}, /* exactly one full chunk */
    };
    return cr_make_param_array(spec_t, specs, sizeof specs / sizeof specs[0]);
}

ParameterizedTest(spec_t *sp, traces, parallel_equals_serial_no_shuffle)
{
    write_no_shuffle = 1;
    check_parallel(sp);
    write_no_shuffle = 0;
}

/* ---- chunk bytes ---------------------------------------------------------
 * The writer compresses logits chunks itself (zpool.c) and stores them with
 * H5Dwrite_chunk.  Their bytes must be what HDF5's own filters make of the
 * same values: write the values read back from the writer's file with a
 * plain H5Dwrite into a dataset whose pipeline is built here (chunk rows,
 * shuffle or not, deflate 4 as FORMAT.md states), then compare every raw
 * chunk (H5Dread_chunk) and the filter pipelines. */

#include <hdf5.h>

static void check_chunks_match_hdf5(eplb_dtype_t dt, int no_shuffle)
{
    spec_t sp = {dt, 20, EPLB_LEVEL_LOGITS, 8};
    const char *path = tmp_file("zw.h5"), *ref = tmp_file("zref.h5");
    write_threads = 3;
    write_no_shuffle = no_shuffle;
    write_trace(path, &sp);
    write_threads = 0;
    write_no_shuffle = 0;

    int ids[4];
    unsigned lvl = 0;
    int nf = eplb_test_h5_filters(path, "/router/logits", ids, &lvl);
    cr_assert_eq(nf, no_shuffle ? 1 : 2);
    if (!no_shuffle)
        cr_assert_eq(ids[0], H5Z_FILTER_SHUFFLE);
    cr_assert_eq(ids[nf - 1], H5Z_FILTER_DEFLATE);
    cr_assert_eq(lvl, 4);
    /* the other datasets follow the same option */
    cr_assert_eq(eplb_test_h5_filters(path, "/steps/phase", ids, &lvl), no_shuffle ? 1 : 2);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t d = H5Dopen2(f, "/router/logits", H5P_DEFAULT);
    cr_assert(d >= 0);

    hid_t ft = H5Dget_type(d);
    size_t es = eplb_dtype_size(dt), row = (size_t)L_ * 20 * es;
    unsigned char *vals = malloc(NTOK * row);
    cr_assert_eq(H5Dread(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals), 0);

    hsize_t dims[3] = {NTOK, L_, 20}, maxd[3] = {H5S_UNLIMITED, L_, 20}, cd[3] = {8, L_, 20};
    hid_t rf = H5Fcreate(ref, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp3 = H5Screate_simple(3, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert(rf >= 0 && sp3 >= 0 && dcpl >= 0);
    cr_assert_eq(H5Pset_chunk(dcpl, 3, cd), 0);
    if (!no_shuffle)
        cr_assert_eq(H5Pset_shuffle(dcpl), 0);
    cr_assert_eq(H5Pset_deflate(dcpl, 4), 0);
    hid_t rd = H5Dcreate2(rf, "logits", ft, sp3, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(rd >= 0);
    cr_assert_eq(H5Dwrite(rd, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals), 0);
    cr_assert_eq(H5Fflush(rf, H5F_SCOPE_LOCAL), 0);

    size_t cap = 8 * row + 1024;
    unsigned char *a = malloc(cap), *b = malloc(cap);
    int nchunks = 0;
    for (hsize_t r = 0; r < NTOK; r += 8, nchunks++) {
        hsize_t off[3] = {r, 0, 0};
        hsize_t na = 0, nb = 0;
        uint32_t ma = 1, mb = 1;
        cr_assert_eq(H5Dget_chunk_storage_size(d, off, &na), 0);
        cr_assert_eq(H5Dget_chunk_storage_size(rd, off, &nb), 0);
        cr_assert_eq(na, nb, "chunk at row %llu: %llu bytes, HDF5 makes %llu",
                     (unsigned long long)r, (unsigned long long)na, (unsigned long long)nb);
        cr_assert(na > 0 && na <= cap);
        cr_assert_eq(H5Dread_chunk(d, H5P_DEFAULT, off, &ma, a), 0);
        cr_assert_eq(H5Dread_chunk(rd, H5P_DEFAULT, off, &mb, b), 0);
        cr_assert_eq(ma, 0);
        cr_assert_eq(mb, 0);
        cr_assert(memcmp(a, b, (size_t)na) == 0, "chunk at row %llu differs",
                  (unsigned long long)r);
    }
    cr_assert_eq(nchunks, 7); /* 55 rows: 6 full chunks and a partial one */
    free(a);
    free(b);
    free(vals);
    H5Dclose(rd);
    H5Pclose(dcpl);
    H5Sclose(sp3);
    H5Fclose(rf);
    H5Tclose(ft);
    H5Dclose(d);
    H5Fclose(f);
    unlink(path);
    unlink(ref);
}

Test(traces, writer_chunks_are_hdf5_shuffle_deflate)
{
    check_chunks_match_hdf5(EPLB_DTYPE_F32, 0);
    check_chunks_match_hdf5(EPLB_DTYPE_BF16, 0);
}

Test(traces, writer_chunks_are_hdf5_deflate_only)
{
    check_chunks_match_hdf5(EPLB_DTYPE_F32, 1);
    check_chunks_match_hdf5(EPLB_DTYPE_F16, 1);
}

/* A larger trace whose chunks compress well (repetitive data) and whose
 * rows are long, so that the SSE unshuffle and the chunk placement are
 * exercised across many chunks. */
/* A writer of f32 logits, 5 layers x 64 experts, chunks of 37 tokens */
static eplb_trace_writer_t *f32_writer_37(const char *path)
{
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "s", 5, 64, 6, EPLB_LEVEL_LOGITS);
    o.logits_dtype = EPLB_DTYPE_F32;
    o.chunk_rows = 37;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    return w;
}

Test(traces, parallel_many_chunks)
{
    const char *path = tmp_file("many.h5");
    eplb_trace_writer_t *w = f32_writer_37(path);
    float *lg = malloc(sizeof(float) * 128 * 5 * 64);
    int64_t t0 = 0;
    for (int s = 0; s < 11; s++) {
        int n = 50 + 7 * s;
        for (int i = 0; i < n * 5 * 64; i++)
            lg[i] = (float)((t0 * 320 + i) % 97) * 0.25f - 3.0f;
        eplb_assert_ok(eplb_trace_writer_append_step(w, n, lg, NULL, NULL, NULL, NULL, 0));
        t0 += n;
    }
    eplb_assert_ok(eplb_trace_writer_finish(w));
    free(lg);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    size_t n = eplb_trace_raw_bytes(tr);
    cr_assert_eq(n, (size_t)t0 * 5 * 64 * 4);
    float *a = malloc(n), *b = malloc(n);
    eplb_assert_ok(eplb_trace_read_all_serial(tr, a));
    for (size_t i = 0; i < n / 4; i++)
        cr_assert_float_eq(a[i], (float)(i % 97) * 0.25f - 3.0f, 0, "element %zu", i);
    memset(b, 0xff, n);
    eplb_assert_ok(eplb_trace_read_all_parallel(tr, b, 2));
    cr_assert(memcmp(a, b, n) == 0);
    free(a);
    free(b);
    eplb_trace_close(tr);
    unlink(path);
}

/* eplb_trace_read_logits_each: every row of the range reaches on_rows
 * exactly once, already in place when it does (a copy taken in the
 * callback equals the finished read), *all = 1; with chunks that split
 * the layers (placed piecewise) no row is delivered and *all = 0. */
typedef struct {
    pthread_mutex_t mu;
    int *hits;          /* per token of the trace */
    const float *buf;   /* the read's buffer */
    float *shadow;      /* rows copied in the callback */
    int64_t t0;
    size_t row;         /* floats per token */
} each_t;

static void each_cb(void *ctx, int64_t a, int64_t b)
{
    each_t *e = ctx;
    pthread_mutex_lock(&e->mu);
    for (int64_t t = a; t < b; t++)
        e->hits[t]++;
    memcpy(e->shadow + (size_t)(a - e->t0) * e->row, e->buf + (size_t)(a - e->t0) * e->row,
           (size_t)(b - a) * e->row * sizeof(float));
    pthread_mutex_unlock(&e->mu);
}

/* /router/logits rewritten with chunks of {8, 1, E}: the same values,
 * chunks that no longer span a token's layers */
static void rechunk_by_layer(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t d = H5Dopen2(f, "/router/logits", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d), ft = H5Dget_type(d);
    hsize_t dims[3], maxd[3];
    cr_assert_eq(H5Sget_simple_extent_dims(sp, dims, maxd), 3);
    float *v = malloc(sizeof(float) * dims[0] * dims[1] * dims[2]);
    cr_assert_eq(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(d);
    cr_assert_eq(H5Ldelete(f, "/router/logits", H5P_DEFAULT), 0);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t cd[3] = {8, 1, dims[2]};
    cr_assert_eq(H5Pset_chunk(dcpl, 3, cd), 0);
    cr_assert_eq(H5Pset_shuffle(dcpl), 0);
    cr_assert_eq(H5Pset_deflate(dcpl, 1), 0);
    d = H5Dcreate2(f, "/router/logits", ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(d >= 0);
    cr_assert_eq(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    free(v);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Tclose(ft);
    H5Sclose(sp);
    H5Fclose(f);
}

Test(traces, parallel_each_delivers_every_row_once)
{
    const char *path = tmp_file("each.h5");
    eplb_trace_writer_t *w = f32_writer_37(path);
    float *lg = malloc(sizeof(float) * 100 * 5 * 64);
    for (int i = 0; i < 100 * 5 * 64; i++)
        lg[i] = (float)(i % 89) * 0.5f - 7.0f;
    for (int st = 0; st < 4; st++)
        eplb_assert_ok(eplb_trace_writer_append_step(w, 100, lg, NULL, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    free(lg);
    const size_t row = 5 * 64;
    for (int layout = 0; layout < 2; layout++) {
        if (layout)
            rechunk_by_layer(path);
        eplb_trace_t *tr = NULL;
        eplb_assert_ok(eplb_trace_open(&tr, path));
        const int64_t T = 400, r0[] = {0, 5, 37, 100, 0}, r1[] = {T, 300, 74, 101, 0};
        float *ref = malloc(sizeof(float) * T * row), *buf = malloc(sizeof(float) * T * row);
        float *sh = malloc(sizeof(float) * T * row);
        int hits[400];
        eplb_assert_ok(eplb_trace_read_logits(tr, ref, 0, T));
        for (size_t q = 0; q < sizeof r0 / sizeof r0[0]; q++) {
            each_t e = {PTHREAD_MUTEX_INITIALIZER, hits, buf, sh, r0[q], row};
            memset(hits, 0, sizeof hits);
            memset(sh, 0xff, sizeof(float) * T * row);
            int all = -1;
            eplb_assert_ok(eplb_trace_read_logits_each(tr, buf, r0[q], r1[q], 2, each_cb, &e,
                                                       &all));
            const size_t n = (size_t)(r1[q] - r0[q]) * row * sizeof(float);
            cr_assert_eq(memcmp(buf, ref + (size_t)r0[q] * row, n), 0);
            for (int64_t t = 0; t < T; t++)
                cr_assert_eq(hits[t], !layout && t >= r0[q] && t < r1[q],
                             "layout %d, range [%lld, %lld): token %lld delivered %d times",
                             layout, (long long)r0[q], (long long)r1[q], (long long)t, hits[t]);
            if (!layout)
                cr_assert_eq(memcmp(sh, buf, n), 0, "a row was delivered before it was placed");
            /* an empty range has nothing to deliver: all = 1 */
            cr_assert_eq(all, !layout || r0[q] == r1[q], "layout %d: all = %d", layout, all);
        }
        free(ref);
        free(buf);
        free(sh);
        eplb_trace_close(tr);
    }
    unlink(path);
}

/* The workers read raw chunks through a duplicate of HDF5's descriptor,
 * not by the path: a trace replaced at its path after opening (a rerun of
 * `gen` over it, here one of the same layout and other values) still reads
 * as the file that was opened, on the parallel path as on the serial one. */
static const char *write_scaled_trace(const char *name, float scale)
{
    const char *path = tmp_file(name);
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "s", 3, 32, 4, EPLB_LEVEL_LOGITS);
    o.logits_dtype = EPLB_DTYPE_F32;
    o.chunk_rows = 9;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    static float lg[40 * 3 * 32];
    for (int i = 0; i < 40 * 3 * 32; i++)
        lg[i] = (float)(i % 13) * scale;
    for (int st = 0; st < 3; st++)
        eplb_assert_ok(eplb_trace_writer_append_step(w, 40, lg, NULL, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    return path;
}

Test(traces, parallel_reads_the_opened_file)
{
    char a_path[4096];
    snprintf(a_path, sizeof a_path, "%s", write_scaled_trace("opened.h5", 0.5f));
    const char *b_path = write_scaled_trace("replacement.h5", -2.0f);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, a_path));
    cr_assert_eq(rename(b_path, a_path), 0);
    const size_t n = (size_t)120 * 3 * 32;
    float *ser = malloc(n * sizeof *ser), *par = malloc(n * sizeof *par);
    eplb_assert_ok(eplb_trace_read_all_serial(tr, ser));
    for (size_t i = 0; i < n; i++)
        cr_assert_float_eq(ser[i], (float)(i % (32 * 3 * 40) % 13) * 0.5f, 0, "element %zu", i);
    memset(par, 0xff, n * sizeof *par);
    eplb_assert_ok(eplb_trace_read_all_parallel(tr, par, 2));
    cr_assert(memcmp(ser, par, n * sizeof *par) == 0, "the parallel read saw another file");
    memset(par, 0xff, n * sizeof *par);
    eplb_assert_ok(eplb_trace_read_logits_parallel(tr, par, 10, 100, 3));
    cr_assert(memcmp(ser + 10 * 3 * 32, par, 90 * 3 * 32 * sizeof *par) == 0);
    free(ser);
    free(par);
    eplb_trace_close(tr);
    unlink(a_path);
}

/* Same inputs, same bytes: no timestamps, zero padding in partial chunks,
 * and the thread count of the compression pool does not matter. */
Test(traces, writer_is_deterministic)
{
    spec_t sp = {EPLB_DTYPE_BF16, 20, EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS, 2};
    const char *a = tmp_file("a.h5"), *b = tmp_file("b.h5");
    write_threads = 1;
    write_trace(a, &sp);
    write_threads = 3;
    write_trace(b, &sp);
    write_threads = 0;
    size_t na, nb;
    unsigned char *da = eplb_test_slurp(a, &na), *db = eplb_test_slurp(b, &nb);
    cr_assert_eq(na, nb);
    cr_assert(memcmp(da, db, na) == 0, "two writes of the same trace differ");
    free(da);
    free(db);
    unlink(a);
    unlink(b);
}

Test(traces, writer_temp_name_and_abort)
{
    const char *dir = eplb_test_tmpdir();
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/w.h5", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    eplb_trace_writer_opts_t o = eplb_test_writer_opts(NULL, NULL, 2, 8, 2, EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    struct stat sb;
    cr_assert(stat(tmp, &sb) == 0, "temp file %s missing", tmp);
    cr_assert(stat(path, &sb) != 0, "final name exists before finish");
    int32_t cn[16] = {0};
    eplb_assert_ok(eplb_trace_writer_append_step(w, 0, NULL, NULL, NULL, cn, NULL, 0));
    eplb_trace_writer_abort(w);
    cr_assert(stat(tmp, &sb) != 0, "abort left the temp file");
    cr_assert(stat(path, &sb) != 0, "abort created the final file");

    /* finish without steps fails and leaves nothing */
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    eplb_assert_fails(eplb_trace_writer_finish(w), EPLB_ERR_INVALID_ARG, "no steps");
    cr_assert(stat(tmp, &sb) != 0);
    cr_assert(stat(path, &sb) != 0);
    rmdir(dir);
}

Test(traces, writer_rejects_bad_input)
{
    const char *path = tmp_file("bad.h5");
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts(NULL, NULL, 2, 8, 2, EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK);
    eplb_trace_writer_t *w = NULL;
    o.route.top_k = 9;
    eplb_assert_fails(eplb_trace_writer_create(&w, path, &o), EPLB_ERR_INVALID_ARG, "top_k");
    o.route.top_k = 2;
    /* a model name the reader would refuse (it was cut to 127 bytes) */
    char longname[EPLB_TRACE_MODEL_MAX + 2];
    memset(longname, 'm', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    o.model = longname;
    eplb_assert_fails(eplb_trace_writer_create(&w, path, &o), EPLB_ERR_INVALID_ARG,
                      "model name is longer than 127 bytes");
    longname[EPLB_TRACE_MODEL_MAX] = '\0'; /* 127 bytes: written and read back whole */
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    eplb_trace_writer_abort(w);
    o.model = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    float lg[2 * 8] = {0};
    int32_t ids[2 * 2] = {1, 2, 3, 8};
    eplb_assert_fails(eplb_trace_writer_append_step(w, 1, lg, ids, NULL, NULL, NULL, 0),
                      EPLB_ERR_INVALID_ARG, "id 8");
    ids[3] = 4;
    lg[9] = NAN;
    eplb_assert_fails(eplb_trace_writer_append_step(w, 1, lg, ids, NULL, NULL, NULL, 0),
                      EPLB_ERR_INVALID_ARG, "layer 1");
    lg[9] = 0;
    eplb_assert_ok(eplb_trace_writer_append_step(w, 1, lg, ids, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_info(tr)->num_tokens, 1);
    eplb_trace_close(tr);
    unlink(path);
}

/* The writer refuses counts the reader would refuse: a negative count, or
 * a layer's row over top_k x the step's tokens (by hand: 2 x 2 = 4). */
Test(traces, writer_refuses_counts_the_reader_refuses)
{
    const char *path = tmp_file("counts-bound.h5");
    eplb_trace_writer_opts_t o = eplb_test_writer_opts(NULL, NULL, 2, 4, 2, EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    int32_t cn[2 * 4] = {1, 1, 1, 1, /* layer 1: */ 2, 2, 0, 1};
    eplb_assert_fails(eplb_trace_writer_append_step(w, 2, NULL, NULL, NULL, cn, NULL, 0),
                      EPLB_ERR_INVALID_ARG, "step 0 layer 1: counts sum to 5, more than top_k x "
                                            "tokens = 2 x 2");
    cn[7] = -1;
    eplb_assert_fails(eplb_trace_writer_append_step(w, 2, NULL, NULL, NULL, cn, NULL, 0),
                      EPLB_ERR_INVALID_ARG, "step 0 layer 1 expert 3: negative count -1");
    cn[7] = 0; /* 4: exactly the bound */
    eplb_assert_ok(eplb_trace_writer_append_step(w, 2, NULL, NULL, NULL, cn, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    int32_t back[2 * 4];
    eplb_assert_ok(eplb_trace_read_counts(tr, back, 0, 1));
    cr_assert_arr_eq(back, cn, sizeof cn);
    eplb_trace_close(tr);
    unlink(path);
}

/* ---- `eplb-replay info` ------------------------------------------------- */

#include "json.h"

/* 16 tokens, 2 layers, 8 experts, top-2: layer 0 always picks experts 0
 * and 1 (loads 16, 16, 0...: max/mean = 16 / (32/8) = 4), layer 1 picks
 * t%8 and (t+1)%8 (every expert 4: skew 1).  As topk ids or as logits
 * whose softmax top-2 gives the same ids.  Tokens 0-4 come from rank 3,
 * 5-15 from rank 9 (info's rank line: 2 ranks, 5 and 11 tokens). */
static const char *skew_trace(int as_logits)
{
    const char *path = tmp_file(as_logits ? "skew-logits.h5" : "skew-ids.h5");
    eplb_trace_writer_opts_t o = eplb_test_writer_opts(
        "skew", "test", 2, 8, 2, as_logits ? EPLB_LEVEL_LOGITS : EPLB_LEVEL_TOPK);
    o.src_rank = 1;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    for (int s = 0; s < 2; s++) {
        int32_t ids[8 * 2 * 2];
        float lg[8 * 2 * 8];
        uint16_t rank[8];
        for (int i = 0; i < 8; i++) {
            int t = s * 8 + i;
            rank[i] = t < 5 ? 3 : 9;
            ids[(i * 2 + 0) * 2 + 0] = 0;
            ids[(i * 2 + 0) * 2 + 1] = 1;
            ids[(i * 2 + 1) * 2 + 0] = t % 8;
            ids[(i * 2 + 1) * 2 + 1] = (t + 1) % 8;
            for (int e = 0; e < 8; e++) {
                lg[(i * 2 + 0) * 8 + e] = -(float)e;
                lg[(i * 2 + 1) * 8 + e] = -(float)((e - t + 16) % 8);
            }
        }
        eplb_assert_ok(eplb_trace_writer_append_step(w, 8, lg, ids, NULL, NULL, rank, 0));
    }
    eplb_assert_ok(eplb_trace_writer_finish(w));
    return path;
}

/* `info PATH --json`, which must exit 0, parsed (the caller frees it). */
static eplb_json_t *info_json_of(const char *path)
{
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "info '%s' --json", path);
    cr_assert_eq(rc, 0, "info failed: %s", out);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, out, strlen(out), "info output"));
    free(out);
    return v;
}

static void check_info_json(const char *path, const char *level, const char *dtype)
{
    eplb_json_t *v = info_json_of(path);
    cr_assert_eq(eplb_json_get(v, "num_layers")->num, 2);
    cr_assert_eq(eplb_json_get(v, "num_experts")->num, 8);
    cr_assert_eq(eplb_json_get(v, "top_k")->num, 2);
    cr_assert_eq(eplb_json_get(v, "num_steps")->num, 2);
    cr_assert_eq(eplb_json_get(v, "num_tokens")->num, 16);
    cr_assert_str_eq(eplb_json_get(v, "scoring")->str, "softmax");
    const eplb_json_t *lv = eplb_json_get(v, "levels");
    cr_assert_eq(lv->n, 1);
    cr_assert_str_eq(lv->values[0].str, level);
    if (dtype)
        cr_assert_str_eq(eplb_json_get(v, "dtype")->str, dtype);
    else
        cr_assert_eq(eplb_json_get(v, "dtype")->type, EPLB_JSON_NULL);
    cr_assert_not_null(eplb_json_get(eplb_json_get(v, "sizes"), "stored_bytes"));
    const eplb_json_t *sk = eplb_json_get(v, "skew_per_layer");
    cr_assert_eq(sk->n, 2);
    cr_assert_float_eq(eplb_test_num_at(sk, 0), 4.0, 1e-12);
    cr_assert_float_eq(eplb_test_num_at(sk, 1), 1.0, 1e-12);
    cr_assert_float_eq(eplb_json_get(v, "skew_max")->num, 4.0, 1e-12);
    cr_assert_str_eq(eplb_json_get(v, "skew_source")->str, level);
    const eplb_json_t *rs = eplb_json_get(v, "src_ranks");
    cr_assert(rs && rs->type == EPLB_JSON_OBJECT, "src_ranks");
    cr_assert_eq(eplb_json_get(rs, "ranks")->num, 2);
    cr_assert_eq(eplb_json_get(rs, "lowest")->num, 3);
    cr_assert_eq(eplb_json_get(rs, "highest")->num, 9);
    cr_assert_eq(eplb_json_get(rs, "tokens_min")->num, 5);
    cr_assert_eq(eplb_json_get(rs, "tokens_max")->num, 11);
    eplb_json_free(v);
    /* --no-skew reads no bulk data: no rank pass */
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "info '%s' --json --no-skew", path);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\"src_ranks\": null"), "%s", out);
    free(out);
}

Test(traces, info_json_skew_from_ids) { check_info_json(skew_trace(0), "topk_ids", NULL); }
Test(traces, info_json_skew_from_routed_logits)
{
    check_info_json(skew_trace(1), "logits", "f32");
}

Test(traces, info_text_and_usage)
{
    const char *path = skew_trace(0);
    eplb_test_cli_expect(0, "load skew", "info '%s'", path);
    eplb_test_cli_expect(0, "topk_ids", "info '%s'", path);
    eplb_test_cli_expect(0, "ranks        2 with tokens (src_rank 3..9), 5 to 11 tokens each",
                         "info '%s'", path);
    eplb_test_cli_expect(0, "usage: eplb-replay info", "info --help");
    eplb_test_cli_expect(2, NULL, "info");
    eplb_test_cli_expect(2, NULL, "info '%s' --bogus", path);
    /* src_rank in a trace of no tokens: no rank has any */
    const char *empty = tmp_file("ranks-empty.h5");
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("empty", "test", 2, 8, 2, EPLB_LEVEL_TOPK);
    o.src_rank = 1;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, empty, &o));
    const uint16_t none[1] = {0};
    eplb_assert_ok(eplb_trace_writer_append_step(w, 0, NULL, NULL, NULL, NULL, none, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_test_cli_expect(0, "ranks        none with tokens", "info '%s'", empty);
    eplb_test_cli_expect(0, "\"src_ranks\": {\"ranks\": 0, \"lowest\": null", "info '%s' --json",
                         empty);
}

/* ---- streaming memory bound --------------------------------------------- */

#include <sys/resource.h>
#include <sys/wait.h>

enum { SM_L = 8, SM_E = 256, SM_STEP = 96, SM_STEPS = 64 };

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* VmHWM (the peak resident size) of /proc/self/status in KiB, -1 if it
 * cannot be read. */
static long vm_hwm_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

/* Reset the peak resident size to the current one (Linux: clear_refs 5);
 * 0 on success. */
static int reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int ok = fputs("5", f) >= 0;
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

/* Read the logits step by step into lg, checking the last value of each
 * step; 0, or 1 + the step whose read failed or read a wrong value.  No
 * Criterion asserts: this may run in a forked child. */
static int stream_steps(eplb_trace_t *tr, float *lg)
{
    const int64_t *off = eplb_trace_token_offsets(tr);
    const int n = SM_STEP * SM_L * SM_E;
    for (int s = 0; s < SM_STEPS; s++)
        if (eplb_trace_read_logits(tr, lg, off[s], off[s + 1]) != EPLB_OK ||
            lg[n - 1] != (float)((s + n - 1) % 5))
            return 1 + s;
    return 0;
}

/* How far the peak resident size rose above the resident size at the
 * start of stream_steps() (KiB); *bad is its result.  The peak is reset
 * first (a high-water mark taken after writing the file would hide any
 * read that peaks below the writer); where that is refused the reads run
 * in a forked child, whose peak starts at what it has resident. */
static long reads_peak_growth_kib(eplb_trace_t *tr, float *lg, int *bad, const char **how)
{
    long before;
    if (reset_peak_rss() == 0 && (before = vm_hwm_kib()) >= 0) {
        *how = "VmHWM after clear_refs";
        *bad = stream_steps(tr, lg);
        long after = vm_hwm_kib();
        cr_assert_geq(after, 0, "cannot read VmHWM");
        return after - before;
    }
    *how = "ru_maxrss of a forked child";
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        close(fd[0]);
        long r[2];
        long b = max_rss_kib();
        r[1] = stream_steps(tr, lg);
        r[0] = max_rss_kib() - b;
        _exit(write(fd[1], r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fd[1]);
    long r[2];
    ssize_t got = read(fd[0], r, sizeof r);
    close(fd[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == (ssize_t)sizeof r,
              "the reading child failed (status %d)", status);
    *bad = (int)r[1];
    return r[0];
}

/* Stream a 48 MiB (raw f32) logits dataset in reads of one step (96
 * tokens, 768 KiB) into one caller buffer.  The reads' own peak may rise
 * by what reading a range takes (traces/FORMAT.md: "memory bounded by the
 * range"): the chunk cache (2 chunks of 2 MiB, traces/reader.c), the
 * buffers of a chunk being inflated and unshuffled, and what malloc and
 * HDF5's free lists keep of them: about 11 MiB with HDF5 1.10 and glibc,
 * the same over 96 MiB (13.5 MiB in the forked child, which also faults
 * in the library code it runs).  Not by the dataset: the bound, 16 MiB (8
 * chunks), is a third of it.  (Skipped under AddressSanitizer, whose
 * quarantine keeps freed memory resident.) */
Test(traces, streaming_memory_bound)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("RSS is not meaningful under AddressSanitizer");
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    cr_skip_test("RSS is not meaningful under AddressSanitizer");
#endif
#endif
    const char *path = tmp_file("stream.h5");
    enum { L = SM_L, E = SM_E, STEP = SM_STEP, STEPS = SM_STEPS };
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "s", L, E, 8, EPLB_LEVEL_LOGITS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    float *lg = malloc(sizeof(float) * STEP * L * E);
    cr_assert_not_null(lg);
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < STEP * L * E; i++)
            lg[i] = (float)((s + i) % 5);
        eplb_assert_ok(eplb_trace_writer_append_step(w, STEP, lg, NULL, NULL, NULL, NULL, 0));
    }
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    size_t total = eplb_trace_raw_bytes(tr);
    cr_assert_eq(total, (size_t)STEPS * STEP * L * E * 4);
    cr_assert_eq(eplb_trace_chunk_tokens(tr), 256, "2 MiB chunks of 256 tokens");
    int bad = 0;
    const char *how = "";
    long grown = reads_peak_growth_kib(tr, lg, &bad, &how);
    cr_assert_eq(bad, 0, "step %d: read failed or wrong value: %s", bad - 1, eplb_error_last());
    cr_assert(grown < 16 * 1024, "peak RSS (%s) grew by %ld KiB streaming a %zu-byte dataset",
              how, grown, total);
    free(lg);
    eplb_trace_close(tr);
    unlink(path);
}

/* The JSON object on line i of `out` (at *line), parsed; *line moves to
 * the next line. */
static eplb_json_t *next_json_line(char **line, const char *out, int i)
{
    char *nl = strchr(*line, '\n');
    cr_assert_not_null(nl, "missing line %d in: %s", i, out);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, *line, (size_t)(nl - *line), "bench io line"));
    *line = nl + 1;
    return v;
}

/* `eplb-replay bench io`: one JSON line per configuration, the serial
 * baseline first, every parallel result identical to it. */
Test(traces, bench_io_cli_json)
{
    spec_t sp = {EPLB_DTYPE_BF16, 20, EPLB_LEVEL_LOGITS, 8};
    const char *path = tmp_file("bench.h5");
    write_trace(path, &sp);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench io '%s' --threads 3 --repeat 2 --json", path);
    cr_assert_eq(rc, 0, "%s", out);
    const char *want_threads[] = {"0", "1", "2", "3"};
    char *line = out;
    for (int i = 0; i < 4; i++) {
        eplb_json_t *v = next_json_line(&line, out, i);
        cr_assert_eq(eplb_json_get(v, "threads")->num, atoi(want_threads[i]));
        cr_assert_str_eq(eplb_json_get(v, "mode")->str, i == 0 ? "serial" : "parallel");
        cr_assert_eq(eplb_json_get(v, "bytes")->num, (double)NTOK * L_ * 20 * 2);
        cr_assert(eplb_json_get(v, "seconds")->num > 0);
        cr_assert(eplb_json_get(v, "mb_per_s")->num > 0);
        cr_assert_eq(eplb_json_get(v, "identical")->type, EPLB_JSON_BOOL);
        if (i > 0) /* the serial line is the reference the others are compared with */
            cr_assert_eq(eplb_json_get(v, "identical")->num, 1);
        eplb_json_free(v);
    }
    cr_assert_str_empty(line);
    free(out);
    eplb_test_cli_expect(2, NULL, "bench io '%s' --threads 0", path);
    unlink(path);
}

/* `bench io --reads`: the whole read, then per read size one at a time
 * and two in flight, each identical to the whole read (reads of 1 token
 * and of 3 inflate each chunk of 8 once per read that touches it, and
 * must still place exactly their rows); bad lists are usage errors. */
Test(traces, bench_io_cli_reads)
{
    spec_t sp = {EPLB_DTYPE_BF16, 20, EPLB_LEVEL_LOGITS, 8};
    const char *path = tmp_file("bench-reads.h5");
    write_trace(path, &sp);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench io '%s' --threads 2 --repeat 1 --json --reads 1,3,64",
                               path);
    cr_assert_eq(rc, 0, "%s", out);
    const char *mode[] = {"parallel", "reads", "reads2", "reads", "reads2", "reads", "reads2"};
    const int tok[] = {0, 1, 1, 3, 3, 64, 64};
    char *line = out;
    for (int i = 0; i < 7; i++) {
        eplb_json_t *v = next_json_line(&line, out, i);
        cr_assert_str_eq(eplb_json_get(v, "mode")->str, mode[i]);
        cr_assert_eq(eplb_json_get(v, "threads")->num, 2);
        cr_assert_eq(eplb_json_get(v, "bytes")->num, (double)NTOK * L_ * 20 * 2);
        cr_assert_eq(eplb_json_get(v, "identical")->num, 1, "line %d: %s", i, out);
        const eplb_json_t *rt = eplb_json_get(v, "read_tokens");
        if (tok[i])
            cr_assert(rt && rt->num == tok[i], "line %d: read_tokens", i);
        else
            cr_assert_null(rt);
        eplb_json_free(v);
    }
    cr_assert_str_empty(line);
    free(out);
    eplb_test_cli_expect(2, "--reads", "bench io '%s' --reads 0", path);
    eplb_test_cli_expect(2, "--reads", "bench io '%s' --reads 4,", path);
    eplb_test_cli_expect(2, "--reads", "bench io '%s' --reads x", path);
    unlink(path);
    /* ids only: nothing to read in pieces */
    spec_t ids = {EPLB_DTYPE_BF16, 20, EPLB_LEVEL_TOPK, 8};
    write_trace(path, &ids);
    eplb_test_cli_expect(2, "--reads needs /router/logits", "bench io '%s' --reads 8", path);
    unlink(path);
}

/* A pipeline the parallel decoder does not handle (deflate, then shuffle:
 * legal HDF5, and h5py reads it) goes through H5Dread instead: the same
 * values.  It was refused with "shuffled chunk has the wrong size". */
Test(traces, unusual_filter_order_falls_back)
{
    const spec_t sp = {EPLB_DTYPE_F32, 8, EPLB_LEVEL_LOGITS, 8};
    const char *path = tmp_file("order.h5");
    write_trace(path, &sp);
    const size_t n = (size_t)NTOK * L_ * 8;
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    cr_assert(want && got);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t d = H5Dopen2(f, "/router/logits", H5P_DEFAULT);
    cr_assert(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, want) >= 0);
    hid_t sp_ = H5Dget_space(d), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Dclose(d);
    cr_assert(H5Ldelete(f, "/router/logits", H5P_DEFAULT) >= 0);
    const hsize_t chunk[3] = {8, L_, 8};
    cr_assert(H5Pset_chunk(dcpl, 3, chunk) >= 0 && H5Pset_deflate(dcpl, 4) >= 0 &&
              H5Pset_shuffle(dcpl) >= 0); /* applied in this order when written */
    d = H5Dcreate2(f, "/router/logits", H5T_IEEE_F32LE, sp_, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, want) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp_);
    H5Fclose(f);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    for (int th = 1; th <= 3; th += 2) {
        memset(got, 0xff, n * sizeof *got);
        eplb_assert_ok(eplb_trace_read_logits_parallel(tr, got, 0, NTOK, th));
        cr_assert(memcmp(want, got, n * sizeof *got) == 0, "%d threads: values differ", th);
    }
    eplb_trace_close(tr);
    free(want);
    free(got);
    unlink(path);
}

/* The writer refuses a step the reader would refuse (traces/FORMAT.md,
 * Limits): 26 layers x top-6 ids of 3,441,481 tokens are 2,147,484,144
 * bytes, past 2 GiB.  Checked before any data is read, so one token's
 * ids stand for them.  Counts-only traces have no per-token data and no
 * such bound. */
Test(traces, writer_refuses_a_step_past_the_reader_limit)
{
    int32_t ids[26 * 6] = {0};
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "s", 26, 64, 6, EPLB_LEVEL_TOPK);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, tmp_file("big-step.h5"), &o));
    eplb_assert_fails(eplb_trace_writer_append_step(w, 3441481, NULL, ids, NULL, NULL, NULL, 0),
                      EPLB_ERR_INVALID_ARG, "3441481 tokens x 26 layers x top-6");
    eplb_assert_fails(eplb_trace_writer_append_step(w, (int64_t)1 << 40, NULL, ids, NULL, NULL,
                                                    NULL, 0),
                      EPLB_ERR_INVALID_ARG, "tokens or");
    eplb_assert_ok(eplb_trace_writer_append_step(w, 1, NULL, ids, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    int32_t counts[26 * 64] = {0};
    for (int l = 0; l < 26; l++)
        counts[l * 64] = 6 * 4000000;
    o = eplb_test_writer_opts("m", "s", 26, 64, 6, EPLB_LEVEL_COUNTS);
    eplb_assert_ok(eplb_trace_writer_create(&w, tmp_file("big-counts.h5"), &o));
    eplb_assert_ok(eplb_trace_writer_append_step(w, 4000000, NULL, NULL, NULL, counts, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
}

/* The same limit at its boundary (WR15 of the mutation tests: `>=` for
 * `>` passed): 2 layers x top-1 x 4 bytes, so 2^28 tokens are exactly
 * 2 GiB of ids, which the reader accepts (trace_errors/
 * step_token_limit_at_its_boundary); one token more is refused.  The ids
 * are an untouched anonymous mapping (zero pages, no memory used) with an
 * id out of range in its last entry: past the size check, the writer reads
 * all 2^28 tokens and stops there, naming that token. */
Test(traces, writer_step_limit_at_exactly_2_gib)
{
    alarm(60); /* a hang fails the test (a .timeout leaks in Criterion's runner) */
    const int64_t most = (int64_t)1 << 28;
    const size_t bytes = (size_t)1 << 31;
    int32_t *ids = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ids == MAP_FAILED) /* strict overcommit (vm.overcommit_memory = 2) */
        cr_skip_test("no 2 GiB of address space to map: %s", strerror(errno));
    ids[bytes / sizeof *ids - 1] = 4; /* token 2^28 - 1, layer 1 */
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "s", 2, 4, 1, EPLB_LEVEL_TOPK);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, tmp_file("edge-step.h5"), &o));
    eplb_assert_fails(eplb_trace_writer_append_step(w, most + 1, NULL, ids, NULL, NULL, NULL, 0),
                      EPLB_ERR_INVALID_ARG, "268435457 tokens x 2 layers x top-1");
    eplb_assert_fails(eplb_trace_writer_append_step(w, most, NULL, ids, NULL, NULL, NULL, 0),
                      EPLB_ERR_INVALID_ARG,
                      "/router/topk_ids: step 0 token 268435455 layer 1: id 4 outside [0, 4)");
    eplb_assert_ok(eplb_trace_writer_append_step(w, 1, NULL, ids, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    alarm(0);
    munmap(ids, bytes);
}

/* What the writer refuses beyond ids past E and NaN logits (mutation
 * testing: each of these passed the suite): a negative id, +Inf and -Inf
 * logits (the message naming the token in the trace, not in the step), a
 * phase of 3, a non-finite bias. */
Test(traces, writer_refuses_negative_ids_inf_logits_phase_3_and_inf_bias)
{
    const char *path = tmp_file("bad2.h5");
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts(NULL, NULL, 2, 8, 2, EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK);
    o.phase = 1;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    float lg[2 * 2 * 8] = {0};
    int32_t ids[2 * 2 * 2] = {1, 2, 3, 4, 1, 2, 3, 4};
    eplb_assert_ok(eplb_trace_writer_append_step(w, 1, lg, ids, NULL, NULL, NULL, 0));
    ids[3] = -1;
    eplb_assert_fails(eplb_trace_writer_append_step(w, 1, lg, ids, NULL, NULL, NULL, 1),
                      EPLB_ERR_INVALID_ARG, "id -1 outside [0, 8)");
    ids[3] = 4;
    const float inf[2] = {INFINITY, -INFINITY};
    for (int i = 0; i < 2; i++) {
        lg[16 + 9] = inf[i]; /* step 1's token 1 (token 2 of the trace), layer 1 */
        eplb_assert_fails(eplb_trace_writer_append_step(w, 2, lg, ids, NULL, NULL, NULL, 1),
                          EPLB_ERR_INVALID_ARG, "step 1 token 2 layer 1 expert 1: non-finite logit");
    }
    lg[16 + 9] = 0;
    eplb_assert_fails(eplb_trace_writer_append_step(w, 2, lg, ids, NULL, NULL, NULL, 3),
                      EPLB_ERR_INVALID_ARG, "step 1: phase 3");
    float bias[2 * 8] = {0};
    bias[8 + 5] = INFINITY;
    eplb_assert_fails(eplb_trace_writer_set_bias(w, bias), EPLB_ERR_INVALID_ARG,
                      "layer 1 expert 5: non-finite value");
    bias[8 + 5] = -INFINITY;
    eplb_assert_fails(eplb_trace_writer_set_bias(w, bias), EPLB_ERR_INVALID_ARG,
                      "layer 1 expert 5: non-finite value");
    eplb_assert_ok(eplb_trace_writer_append_step(w, 2, lg, ids, NULL, NULL, NULL, 2));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    cr_assert_eq(eplb_trace_info(tr)->num_tokens, 3);
    cr_assert_eq(eplb_trace_info(tr)->has_bias, 0);
    eplb_trace_close(tr);
    unlink(path);
}

/* topk_weights without the topk level is refused at create (mutation
 * testing: dropping the check passed; the writer then made no weights
 * dataset and looped for ever on the first step's weights). */
Test(traces, writer_refuses_weights_without_topk_level)
{
    eplb_trace_writer_opts_t o = eplb_test_writer_opts(NULL, NULL, 2, 8, 2, EPLB_LEVEL_LOGITS);
    o.topk_weights = 1;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_fails(eplb_trace_writer_create(&w, tmp_file("w-no-topk.h5"), &o),
                      EPLB_ERR_INVALID_ARG, "topk_weights needs the topk level");
    cr_assert_null(w);
    cr_assert_eq(eplb_test_exists(tmp_file("w-no-topk.h5")), 0);
}

/* A finite float32 logit that the stored type cannot hold is refused: it
 * would be written as Inf, which the reader refuses (found by mutation
 * testing's helper: 70000 as float16 and 3.4e38 as bfloat16 were written,
 * and the trace then failed to read).  The limits are the largest finite
 * values, 65504 = (2 - 2^-10) x 2^15 and (2 - 2^-7) x 2^127, as
 * eplb_record.py's; both are written and read back exactly. */
Test(traces, writer_refuses_logits_beyond_the_stored_type)
{
    const eplb_dtype_t dts[2] = {EPLB_DTYPE_F16, EPLB_DTYPE_BF16};
    const float big[2] = {70000.0f, 3.4e38f};
    const float top[2] = {65504.0f, (float)((2.0 - 1.0 / 128) * 0x1p127)};
    for (int d = 0; d < 2; d++) {
        const char *path = tmp_file(d ? "big-bf16.h5" : "big-f16.h5");
        eplb_trace_writer_opts_t o = eplb_test_writer_opts(NULL, NULL, 1, 4, 1, EPLB_LEVEL_LOGITS);
        o.logits_dtype = dts[d];
        eplb_trace_writer_t *w = NULL;
        eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
        for (int sign = 1; sign >= -1; sign -= 2) {
            float lg[4] = {0, 1, sign * big[d], 2};
            eplb_assert_fails(eplb_trace_writer_append_step(w, 1, lg, NULL, NULL, NULL, NULL, 0),
                              EPLB_ERR_INVALID_ARG, "token 0 layer 0 expert 2: logit");
            cr_assert(strstr(eplb_error_last(), "range") != NULL, "%s", eplb_error_last());
        }
        float lg[4] = {0, top[d], -top[d], 2};
        eplb_assert_ok(eplb_trace_writer_append_step(w, 1, lg, NULL, NULL, NULL, NULL, 0));
        eplb_assert_ok(eplb_trace_writer_finish(w));
        eplb_trace_t *tr = NULL;
        eplb_assert_ok(eplb_trace_open(&tr, path));
        uint16_t raw[4];
        eplb_assert_ok(eplb_trace_read_logits(tr, raw, 0, 1));
        float back[4];
        for (int i = 0; i < 4; i++)
            back[i] = d ? eplb_bf16_to_f32(raw[i]) : eplb_f16_to_f32(raw[i]);
        cr_assert_arr_eq(back, lg, sizeof lg);
        eplb_trace_close(tr);
        unlink(path);
    }
}

/* The token limit is on the trace's total, not on one step (traces/
 * FORMAT.md, Limits: T <= 2^39): a counts-only trace (no per-token data)
 * of one step of 2^39 tokens is written, a second step of one more token
 * is refused.  Mutation testing: checking each step alone passed. */
Test(traces, writer_refuses_tokens_past_the_total_limit)
{
    const char *path = tmp_file("total-limit.h5");
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "s", 1, 2, 1, EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    int32_t cn[2] = {3, 4};
    eplb_assert_ok(
        eplb_trace_writer_append_step(w, (int64_t)1 << 39, NULL, NULL, NULL, cn, NULL, 0));
    eplb_assert_fails(eplb_trace_writer_append_step(w, 1, NULL, NULL, NULL, cn, NULL, 0),
                      EPLB_ERR_INVALID_ARG, "step 1: past the 549755813888 tokens");
    eplb_trace_writer_abort(w);
    unlink(path);
}

/* info --json: skew_mean is the mean of skew_per_layer, and tokens_min
 * the fewest tokens of any rank, also when the lowest rank has more.  8
 * tokens, 3 layers, 8 experts, top-2: layer 0 picks 0 and 1 (loads 8, 8:
 * max/mean 8 / 2 = 4), layer 1 t%8 and (t+1)%8 (every expert 2: 1),
 * layer 2 0 and t%7+1 (expert 0 8: 4); mean (4 + 1 + 4) / 3 = 3.  Tokens
 * 0-5 from rank 2, 6-7 from rank 7.  Mutation testing: the sum for the
 * mean passed; tokens_min kept at the lowest rank's count was caught only
 * by the h5py suite (which needs Python). */
Test(traces, info_json_skew_mean_and_fewest_rank_tokens)
{
    const char *path = tmp_file("skew-mean.h5");
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("skew", "test", 3, 8, 2, EPLB_LEVEL_TOPK);
    o.src_rank = 1;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    int32_t ids[8][3][2];
    uint16_t rank[8];
    for (int t = 0; t < 8; t++) {
        rank[t] = t < 6 ? 2 : 7;
        ids[t][0][0] = 0;
        ids[t][0][1] = 1;
        ids[t][1][0] = t % 8;
        ids[t][1][1] = (t + 1) % 8;
        ids[t][2][0] = 0;
        ids[t][2][1] = t % 7 + 1;
    }
    eplb_assert_ok(eplb_trace_writer_append_step(w, 8, NULL, &ids[0][0][0], NULL, NULL, rank, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_json_t *v = info_json_of(path);
    const eplb_json_t *sk = eplb_json_get(v, "skew_per_layer");
    cr_assert_eq(sk->n, 3);
    cr_assert_float_eq(eplb_test_num_at(sk, 0), 4.0, 1e-12);
    cr_assert_float_eq(eplb_test_num_at(sk, 1), 1.0, 1e-12);
    cr_assert_float_eq(eplb_test_num_at(sk, 2), 4.0, 1e-12);
    cr_assert_float_eq(eplb_json_get(v, "skew_mean")->num, 3.0, 1e-12);
    cr_assert_float_eq(eplb_json_get(v, "skew_max")->num, 4.0, 1e-12);
    const eplb_json_t *rs = eplb_json_get(v, "src_ranks");
    cr_assert(rs && rs->type == EPLB_JSON_OBJECT, "src_ranks");
    cr_assert_eq(eplb_json_get(rs, "ranks")->num, 2);
    cr_assert_eq(eplb_json_get(rs, "lowest")->num, 2);
    cr_assert_eq(eplb_json_get(rs, "highest")->num, 7);
    cr_assert_eq(eplb_json_get(rs, "tokens_min")->num, 2);
    cr_assert_eq(eplb_json_get(rs, "tokens_max")->num, 6);
    eplb_json_free(v);
    unlink(path);
}

/* A layer with no load (a dense layer of an SGLang count, kept as a zero
 * row) has skew 0, as info's --help says, and counts in skew_mean: layer 0
 * {2, 1, 1, 0} has max/mean 2 / (4 / 4) = 2, so the mean is (2 + 0) / 2. */
Test(traces, info_skew_of_a_layer_without_load_is_zero)
{
    const char *path = tmp_file("skew-zero.h5");
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("skew", "test", 2, 4, 2, EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    const int32_t counts[2][4] = {{2, 1, 1, 0}, {0, 0, 0, 0}};
    eplb_assert_ok(eplb_trace_writer_append_step(w, 2, NULL, NULL, NULL, &counts[0][0], NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_json_t *v = info_json_of(path);
    const eplb_json_t *sk = eplb_json_get(v, "skew_per_layer");
    cr_assert_eq(sk->n, 2);
    cr_assert_float_eq(eplb_test_num_at(sk, 0), 2.0, 1e-12);
    cr_assert_float_eq(eplb_test_num_at(sk, 1), 0.0, 0);
    cr_assert_float_eq(eplb_json_get(v, "skew_mean")->num, 1.0, 1e-12);
    cr_assert_float_eq(eplb_json_get(v, "skew_max")->num, 2.0, 1e-12);
    eplb_json_free(v);
    unlink(path);
}

/* ---- the compression pool's own contract (traces/zpool.h), where the
 * writer does not reach it: odd element sizes, errors, an empty pool (found
 * by mutation testing: each passed the suite before these tests) ---------- */
#include <zlib.h>

#include "zpool.h"

/* One chunk through a pool: fill it with bytes 0, 1, 2, ..., take it back
 * and inflate it (zlib's own uncompress). */
static void zpool_round(size_t bytes, size_t esize, int shuffle, unsigned char *out)
{
    eplb_zpool_t *z = NULL;
    eplb_assert_ok(eplb_zpool_create(&z, 2, bytes, esize, shuffle, 4, 2));
    unsigned char *b = eplb_zpool_buffer(z);
    cr_assert_not_null(b);
    for (size_t i = 0; i < bytes; i++)
        b[i] = (unsigned char)i;
    eplb_zpool_submit(z, b, 7);
    cr_assert_eq(eplb_zpool_pending(z), 1);
    const void *data = NULL;
    size_t len = 0;
    uint64_t rows = 0;
    eplb_assert_ok(eplb_zpool_next(z, &data, &len, &rows));
    cr_assert_eq(rows, 7);
    cr_assert_eq(eplb_zpool_pending(z), 0);
    uLongf n = (uLongf)bytes;
    cr_assert_eq(uncompress(out, &n, data, (uLong)len), Z_OK);
    cr_assert_eq(n, bytes);
    eplb_zpool_destroy(z);
}

/* HDF5's shuffle with a chunk that is not a whole number of elements: 10
 * bytes of 4-byte elements are 2 elements and 2 bytes left over.  By hand:
 * byte j of element i goes to j * 2 + i, the last 2 bytes stay as they
 * are. */
Test(traces, zpool_shuffle_keeps_an_incomplete_last_element)
{
    const unsigned char want[10] = {0, 4, 1, 5, 2, 6, 3, 7, 8, 9};
    unsigned char got[10];
    zpool_round(10, 4, 1, got);
    cr_assert(memcmp(got, want, sizeof want) == 0);
}

/* Elements of a size other than 2 and 4 (the writer's dtypes) take the
 * general shuffle: 24 bytes of 8-byte elements are 3 elements, and byte j
 * of element i (value 8 i + j) goes to 3 j + i.  Written out by hand. */
Test(traces, zpool_shuffle_of_8_byte_elements)
{
    const unsigned char want[24] = {0, 8,  16, 1, 9,  17, 2, 10, 18, 3, 11, 19,
                                    4, 12, 20, 5, 13, 21, 6, 14, 22, 7, 15, 23};
    unsigned char got[24];
    zpool_round(24, 8, 1, got);
    cr_assert(memcmp(got, want, sizeof want) == 0);
    /* and without shuffle the bytes are deflated as they are */
    zpool_round(24, 8, 0, got);
    for (int i = 0; i < 24; i++)
        cr_assert_eq(got[i], i);
}

/* Taking a chunk back when none is pending is an error, not a wait or a
 * crash: on a new pool, and after the only chunk was taken. */
Test(traces, zpool_next_with_nothing_pending)
{
    eplb_zpool_t *z = NULL;
    eplb_assert_ok(eplb_zpool_create(&z, 1, 64, 4, 1, 4, 3));
    const void *data = NULL;
    size_t len = 0;
    uint64_t rows = 0;
    eplb_assert_fails(eplb_zpool_next(z, &data, &len, &rows), EPLB_ERR_INTERNAL, "nothing pending");
    unsigned char *b = eplb_zpool_buffer(z);
    cr_assert_not_null(b);
    memset(b, 1, 64);
    eplb_zpool_submit(z, b, 1);
    eplb_assert_ok(eplb_zpool_next(z, &data, &len, &rows));
    cr_assert_eq(rows, 1);
    eplb_assert_fails(eplb_zpool_next(z, &data, &len, &rows), EPLB_ERR_INTERNAL, "nothing pending");
    eplb_zpool_destroy(z);
}

/* A failing compress2 is reported by _next.  zlib's levels are -1..9, so
 * level 42 makes compress2 return Z_STREAM_ERROR (-2). */
Test(traces, zpool_reports_a_failed_compress)
{
    eplb_zpool_t *z = NULL;
    eplb_assert_ok(eplb_zpool_create(&z, 1, 64, 4, 0, 42, 2));
    unsigned char *b = eplb_zpool_buffer(z);
    cr_assert_not_null(b);
    memset(b, 3, 64);
    eplb_zpool_submit(z, b, 1);
    const void *data = NULL;
    size_t len = 0;
    uint64_t rows = 0;
    eplb_assert_fails(eplb_zpool_next(z, &data, &len, &rows), EPLB_ERR_INTERNAL,
                      "compress2 failed (-2)");
    eplb_zpool_destroy(z);
}

/* One chunk taken back and inflated: its rows and that every byte is c
 * (shuffle moves bytes around, so a chunk of one byte value is that value
 * with or without it). */
static void zpool_expect_next(eplb_zpool_t *z, uint64_t want_rows, unsigned char c)
{
    const void *data = NULL;
    size_t len = 0;
    uint64_t rows = 0;
    eplb_assert_ok(eplb_zpool_next(z, &data, &len, &rows));
    cr_assert_eq(rows, want_rows);
    unsigned char out[32];
    uLongf n = sizeof out;
    cr_assert_eq(uncompress(out, &n, data, (uLong)len), Z_OK);
    cr_assert_eq(n, sizeof out);
    for (size_t i = 0; i < sizeof out; i++)
        cr_assert_eq(out[i], c, "chunk of rows %llu, byte %zu", (unsigned long long)want_rows, i);
}

/* Back-pressure and reuse with 2 buffers: both handed out, there is no
 * third; chunks come back in submission order; once one is taken back
 * (_next), _buffer hands out that buffer again (zpool.h: NULL only while
 * every buffer is submitted and not yet taken back). */
Test(traces, zpool_buffers_come_back_after_next)
{
    eplb_zpool_t *z = NULL;
    eplb_assert_ok(eplb_zpool_create(&z, 2, 32, 4, 1, 4, 2));
    unsigned char *a = eplb_zpool_buffer(z), *b = eplb_zpool_buffer(z);
    cr_assert(a && b && a != b);
    cr_assert_null(eplb_zpool_buffer(z));
    memset(a, 'a', 32);
    eplb_zpool_submit(z, a, 1);
    memset(b, 'b', 32);
    eplb_zpool_submit(z, b, 2);
    cr_assert_eq(eplb_zpool_pending(z), 2);
    cr_assert_null(eplb_zpool_buffer(z)); /* both in flight */
    zpool_expect_next(z, 1, 'a');
    cr_assert_eq(eplb_zpool_pending(z), 1);
    unsigned char *c = eplb_zpool_buffer(z); /* a's, taken back above */
    cr_assert(c == a);
    cr_assert_null(eplb_zpool_buffer(z));
    memset(c, 'c', 32);
    eplb_zpool_submit(z, c, 3);
    zpool_expect_next(z, 2, 'b');
    zpool_expect_next(z, 3, 'c');
    cr_assert_eq(eplb_zpool_pending(z), 0);
    eplb_zpool_destroy(z);
}

/* ---- from mutation testing of traces/parallel.c -------------------------
 * The tests below were added after mutating traces/parallel.c: each one
 * failed on a mutant that the suite let through.  They use a trace of 100
 * tokens of 5 layers x 64 experts of f32 whose value at (t, l, e) is
 * ((t % 50) * 320 + l * 64 + e) % 89 * 0.5 - 7 (two steps of 50 tokens),
 * its /router/logits then rewritten with the chunk shape and filters under
 * test. */
#define MT_T 100
#define MT_ROW (5 * 64)

static float mt_value(int64_t t, int l, int e)
{
    return (float)((int)(((t % 50) * MT_ROW + l * 64 + e) % 89)) * 0.5f - 7.0f;
}

static const char *mt_trace(const char *name)
{
    const char *path = tmp_file(name);
    eplb_trace_writer_t *w = f32_writer_37(path);
    float *lg = malloc(sizeof(float) * 50 * MT_ROW);
    for (int i = 0; i < 50 * MT_ROW; i++)
        lg[i] = (float)(i % 89) * 0.5f - 7.0f;
    for (int st = 0; st < 2; st++)
        eplb_assert_ok(eplb_trace_writer_append_step(w, 50, lg, NULL, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    free(lg);
    return path;
}

/* /router/logits rewritten from the formula with chunks of cd, shuffle
 * (or not) then deflate, and a NaN at token nan_t (layer 1, expert 3)
 * when nan_t >= 0. */
static void mt_rechunk(const char *path, const hsize_t cd[3], int shuffle, int64_t nan_t)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t d = H5Dopen2(f, "/router/logits", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d), ft = H5Dget_type(d);
    H5Dclose(d);
    float *v = malloc(sizeof(float) * MT_T * MT_ROW);
    for (int64_t t = 0; t < MT_T; t++)
        for (int l = 0; l < 5; l++)
            for (int e = 0; e < 64; e++)
                v[t * MT_ROW + l * 64 + e] = mt_value(t, l, e);
    if (nan_t >= 0)
        v[nan_t * MT_ROW + 1 * 64 + 3] = NAN;
    cr_assert_eq(H5Ldelete(f, "/router/logits", H5P_DEFAULT), 0);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert_eq(H5Pset_chunk(dcpl, 3, cd), 0);
    if (shuffle)
        cr_assert_eq(H5Pset_shuffle(dcpl), 0);
    cr_assert_eq(H5Pset_deflate(dcpl, 1), 0);
    d = H5Dcreate2(f, "/router/logits", ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(d >= 0);
    cr_assert_eq(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    free(v);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Tclose(ft);
    H5Sclose(sp);
    H5Fclose(f);
}

/* mt_trace's trace, its logits rewritten by mt_rechunk when cd is given,
 * opened; *path for the caller's unlink. */
static eplb_trace_t *mt_open(const char *name, const hsize_t *cd, int shuffle, int64_t nan_t,
                             const char **path)
{
    *path = mt_trace(name);
    if (cd)
        mt_rechunk(*path, cd, shuffle, nan_t);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, *path));
    return tr;
}

/* buf holds tokens [t0, t1) as the formula gives them; what names the
 * read in a failure. */
static void mt_expect_values(const float *buf, int64_t t0, int64_t t1, const char *what)
{
    for (size_t i = 0; i < (size_t)(t1 - t0) * MT_ROW; i++) {
        const int64_t t = t0 + (int64_t)(i / MT_ROW);
        const int l = (int)(i % MT_ROW / 64), e = (int)(i % 64);
        cr_assert_float_eq(buf[i], mt_value(t, l, e), 0, "%s: token %lld layer %d expert %d", what,
                           (long long)t, l, e);
    }
}

/* Chunks that do not span a token's layers or experts and whose last
 * chunk along layers (5 = 2 + 2 + 1) and experts (64 = 24 + 24 + 16) is
 * partial: the parallel reader places them piecewise, every value where
 * the formula puts it and nothing past the end of the buffer.  Mutation
 * testing: placing whole chunk rows at the edges, and taking chunks that
 * span the layers but not the experts ({8, 5, 24}) for whole token rows,
 * went unnoticed. */
Test(traces, parallel_partial_chunks_in_layers_and_experts)
{
    static const hsize_t shapes[][3] = {{8, 2, 24}, {8, 5, 24}, {7, 3, 64}};
    static const int64_t ranges[][2] = {{0, MT_T}, {3, 97}, {99, MT_T}, {8, 16}};
    float *buf = malloc(sizeof(float) * (MT_T * MT_ROW + 16));
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const char *path;
        eplb_trace_t *tr = mt_open("mt_edges.h5", shapes[s], 1, -1, &path);
        cr_assert(eplb_trace_parallel_supported(tr));
        for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
            for (int th = 1; th <= 2; th++) {
                const int64_t t0 = ranges[r][0], t1 = ranges[r][1];
                const size_t n = (size_t)(t1 - t0) * MT_ROW;
                memset(buf, 0xff, sizeof(float) * (n + 16)); /* NaN poison */
                if (t0 == 0 && t1 == MT_T)
                    eplb_assert_ok(eplb_trace_read_all_parallel(tr, buf, th));
                else
                    eplb_assert_ok(eplb_trace_read_logits_parallel(tr, buf, t0, t1, th));
                char what[160];
                snprintf(what, sizeof what,
                         "chunks {%llu, %llu, %llu}, range [%lld, %lld), %d threads",
                         (unsigned long long)shapes[s][0], (unsigned long long)shapes[s][1],
                         (unsigned long long)shapes[s][2], (long long)t0, (long long)t1, th);
                mt_expect_values(buf, t0, t1, what);
                for (size_t i = n; i < n + 16; i++)
                    cr_assert(isnan(buf[i]), "wrote past the end of the range");
            }
        eplb_trace_close(tr);
        unlink(path);
    }
    free(buf);
}

/* A NaN in a chunk placed piecewise (chunks {8, 2, 24}: the workers do
 * not scan those) is still found and named by the parallel read, as by
 * the serial one.  Mutation testing: ignoring "rows left unscanned" when
 * deciding that the read was clean went unnoticed. */
Test(traces, parallel_nan_in_piecewise_chunk_named)
{
    const hsize_t cd[3] = {8, 2, 24};
    const char *path;
    eplb_trace_t *tr = mt_open("mt_nan.h5", cd, 1, 42, &path);
    float *buf = malloc(sizeof(float) * MT_T * MT_ROW);
    for (int th = 1; th <= 2; th++)
        eplb_assert_fails(eplb_trace_read_logits_parallel(tr, buf, 10, 60, th), EPLB_ERR_FORMAT,
                          "/router/logits: token 42 layer 1 expert 3");
    eplb_assert_ok(eplb_trace_read_logits_parallel(tr, buf, 43, MT_T, 2)); /* past it */
    eplb_trace_close(tr);
    free(buf);
    unlink(path);
}

/* Deflate without shuffle, chunks spanning whole token rows: each row of
 * the range reaches on_rows exactly once and *all = 1, as with shuffle
 * (the test above of read_logits_each covers only shuffled chunks).
 * Mutation testing: not delivering rows decoded by inflate alone went
 * unnoticed. */
Test(traces, parallel_each_delivers_deflate_only_rows)
{
    const hsize_t cd[3] = {8, 5, 64};
    const char *path;
    eplb_trace_t *tr = mt_open("mt_each.h5", cd, 0, -1, &path);
    cr_assert(eplb_trace_parallel_supported(tr));
    float *buf = malloc(sizeof(float) * MT_T * MT_ROW), *sh = malloc(sizeof(float) * MT_T * MT_ROW);
    static const int64_t r0[] = {0, 5, 99}, r1[] = {MT_T, 61, MT_T};
    int hits[MT_T];
    for (size_t q = 0; q < sizeof r0 / sizeof r0[0]; q++)
        for (int th = 1; th <= 2; th++) {
            each_t e = {PTHREAD_MUTEX_INITIALIZER, hits, buf, sh, r0[q], MT_ROW};
            memset(hits, 0, sizeof hits);
            int all = -1;
            eplb_assert_ok(
                eplb_trace_read_logits_each(tr, buf, r0[q], r1[q], th, each_cb, &e, &all));
            for (int64_t t = 0; t < MT_T; t++)
                cr_assert_eq(hits[t], t >= r0[q] && t < r1[q],
                             "range [%lld, %lld), %d threads: token %lld delivered %d times",
                             (long long)r0[q], (long long)r1[q], th, (long long)t, hits[t]);
            cr_assert_eq(all, 1, "range [%lld, %lld): all = %d", (long long)r0[q], (long long)r1[q],
                         all);
            for (int64_t t = r0[q]; t < r1[q]; t++)
                cr_assert_float_eq(buf[(t - r0[q]) * MT_ROW + 4 * 64 + 63], mt_value(t, 4, 63), 0);
        }
    free(buf);
    free(sh);
    eplb_trace_close(tr);
    unlink(path);
}

/* More decode threads asked for than the reader starts at most (256): the
 * read still gives every value.  Mutation testing: dropping the cap (the
 * thread handles live in an array of 256) went unnoticed. */
Test(traces, parallel_thread_count_capped)
{
    const char *path;
    eplb_trace_t *tr = mt_open("mt_threads.h5", NULL, 0, -1, &path);
    float *buf = malloc(sizeof(float) * MT_T * MT_ROW);
    memset(buf, 0xff, sizeof(float) * MT_T * MT_ROW);
    eplb_assert_ok(eplb_trace_read_all_parallel(tr, buf, 300));
    mt_expect_values(buf, 0, MT_T, "300 threads");
    eplb_trace_close(tr);
    free(buf);
    unlink(path);
}

/* A chunk whose zlib stream lost the last 1 to 3 bytes of its 4-byte
 * Adler-32 trailer (the deflate data itself complete) is refused as short,
 * not checked against whatever bytes follow the stored chunk.  Mutation
 * testing: dropping the trailer length check went unnoticed. */
Test(traces, parallel_truncated_zlib_trailer_refused)
{
    for (int cut = 1; cut <= 3; cut++) {
        const char *path = mt_trace("mt_trailer.h5");
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        cr_assert(f >= 0);
        hid_t d = H5Dopen2(f, "/router/logits", H5P_DEFAULT);
        const hsize_t off[3] = {37, 0, 0};
        hsize_t nbytes = 0;
        cr_assert(H5Dget_chunk_storage_size(d, off, &nbytes) >= 0 && nbytes > 8);
        unsigned char *raw = malloc(nbytes);
        uint32_t mask = 0;
        cr_assert(H5Dread_chunk(d, H5P_DEFAULT, off, &mask, raw) >= 0);
        cr_assert(H5Dwrite_chunk(d, H5P_DEFAULT, mask, off, nbytes - (hsize_t)cut, raw) >= 0);
        free(raw);
        H5Dclose(d);
        H5Fclose(f);
        eplb_trace_t *tr = NULL;
        eplb_assert_ok(eplb_trace_open(&tr, path));
        float *buf = malloc(sizeof(float) * MT_T * MT_ROW);
        for (int th = 1; th <= 2; th++)
            eplb_assert_fails(eplb_trace_read_all_parallel(tr, buf, th), EPLB_ERR_FORMAT,
                              "chunk at [37, 0, 0]: corrupt deflate data (zlib: short");
        eplb_assert_ok(eplb_trace_read_logits_parallel(tr, buf, 0, 37, 2)); /* before it */
        eplb_trace_close(tr);
        free(buf);
        unlink(path);
    }
}
