/* test_sim.c - the simulator: triggers, cost model, profiles, weight-move
 * planner and the replay driver (conservation, selection effects, schedule,
 * policies, determinism).  Expected values are worked out by hand or
 * recomputed here from the inputs, never copied from the code's output. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "sim.h"
#include "sim_fixtures.h"

/* ---- helpers ------------------------------------------------------------ */

/* Read an int32 dataset of results.h5 whole. */
static int32_t *read_i32(const char *path, const char *name, size_t *n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(d >= 0, "%s: no %s", path, name);
    hid_t sp = H5Dget_space(d);
    hssize_t cnt = H5Sget_simple_extent_npoints(sp);
    int32_t *buf = malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof *buf);
    cr_assert(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    *n = (size_t)cnt;
    return buf;
}

/* Dataset `name` of results.h5 whole, in its file type (raw bytes into
 * *n_bytes), with its extent into dims[4]. */
static void *read_raw(const char *path, const char *name, size_t *n_bytes, hsize_t dims[4])
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert(d >= 0, "%s: no %s", path, name);
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    memset(dims, 0, 4 * sizeof *dims);
    cr_assert(H5Sget_simple_extent_ndims(sp) <= 4);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    size_t n = (size_t)H5Sget_simple_extent_npoints(sp) * H5Tget_size(ty);
    unsigned char *buf = calloc(n ? n : 1, 1);
    cr_assert(n == 0 || H5Dread(d, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    *n_bytes = n;
    return buf;
}

/* Every dataset of the nruns runs of two results.h5 files holds the same
 * extent and bytes (the files' own layout may differ: they were appended
 * to in other pieces). */
static void assert_same_h5_runs(const char *p1, const char *p2, int nruns, int c)
{
    static const char *const ds[] = {"balancedness",      "events",          "gpu_tokens",
                                     "placement_final",   "placement_initial", "placement_steps",
                                     "placements",        "step_time"};
    for (int i = 0; i < nruns; i++)
        for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
            char name[64];
            snprintf(name, sizeof name, "/runs/%03d/%s", i, ds[k]);
            size_t n1, n2;
            hsize_t d1[4], d2[4];
            void *a = read_raw(p1, name, &n1, d1), *b = read_raw(p2, name, &n2, d2);
            cr_assert(memcmp(d1, d2, sizeof d1) == 0 && n1 == n2 && memcmp(a, b, n1) == 0,
                      "case %d: %s differs", c, name);
            free(a);
            free(b);
        }
}

/* Random token-level steps: ids [T][L][K] with distinct experts per token
 * drawn from a skewed distribution, about 3% invalid ids. */
typedef struct {
    int L, E, K;
    int64_t S, T;
    int64_t *off;
    int32_t *ids;
} tok_trace_t;

static tok_trace_t make_tokens(int L, int E, int K, int64_t S, const int *step_tokens,
                               uint64_t seed, int invalid)
{
    tok_trace_t t = {L, E, K, S, 0, NULL, NULL};
    t.off = calloc((size_t)S + 1, sizeof *t.off);
    for (int64_t s = 0; s < S; s++)
        t.off[s + 1] = t.off[s] + step_tokens[s];
    t.T = t.off[S];
    t.ids = malloc((size_t)(t.T > 0 ? t.T : 1) * L * K * sizeof *t.ids);
    uint64_t x = seed;
    for (int64_t i = 0; i < t.T * L; i++) {
        int32_t *row = t.ids + (size_t)i * K;
        for (int k = 0; k < K; k++) {
            int32_t e;
            int again;
            do {
                uint64_t r = eplb_test_rng_next(&x);
                /* skewed: half the picks among the first E/4 experts */
                e = (r & 1) ? (int32_t)((r >> 8) % (uint64_t)(E / 4))
                            : (int32_t)((r >> 8) % (uint64_t)E);
                again = 0;
                for (int j = 0; j < k; j++)
                    again |= row[j] == e;
            } while (again);
            row[k] = e;
            if (invalid && eplb_test_rng_next(&x) % 32 == 0)
                row[k] = (eplb_test_rng_next(&x) & 1) ? -1 : E + 3;
        }
    }
    return t;
}

static void free_tokens(tok_trace_t *t)
{
    free(t->off);
    free(t->ids);
}

/* ---- triggers ------------------------------------------------------------ */

Test(sim, vllm_due_steps_and_windows)
{
    eplb_trigger_t t = EPLB_TRIGGER_INIT;
    t.window = 3;
    t.interval = 8;
    /* first after I/4 = 2 steps, then every 8 */
    for (int64_t s = 0; s < 60; s++) {
        int want = s == 2 || s == 10 || s == 18 || s == 26 || s == 34 || s == 42 ||
                   s == 50 || s == 58;
        cr_assert_eq(eplb_sim_trigger_due(&t, s), want, "step %lld", (long long)s);
    }
    int64_t b, e;
    eplb_sim_trigger_window(&b, &e, &t, 10, 100);
    cr_assert(b == 7 && e == 10);
    eplb_sim_trigger_window(&b, &e, &t, 2, 100);
    cr_assert(b == 0 && e == 2);
    /* I < 4: I/4 is 0, and a decision before step 0 would have no load:
     * the first is before step max(1, I/4) = 1 (docs/simulator.md), then
     * every I (found by mutation testing: max(2, I/4) passed the suite) */
    eplb_trigger_t q = EPLB_TRIGGER_INIT;
    q.window = 1;
    q.interval = 3;
    for (int64_t s = 0; s < 12; s++)
        cr_assert_eq(eplb_sim_trigger_due(&q, s), s == 1 || s == 4 || s == 7 || s == 10,
                     "I = 3, step %lld", (long long)s);
    q.interval = 1;
    for (int64_t s = 0; s < 5; s++)
        cr_assert_eq(eplb_sim_trigger_due(&q, s), s >= 1, "I = 1, step %lld", (long long)s);
    /* vLLM's own defaults: 750, 3750, 6750 */
    eplb_trigger_t v = EPLB_TRIGGER_INIT;
    cr_assert(!eplb_sim_trigger_due(&v, 749) && eplb_sim_trigger_due(&v, 750));
    cr_assert(eplb_sim_trigger_due(&v, 3750) && !eplb_sim_trigger_due(&v, 3000));
    /* oracle looks ahead, clamped to the trace */
    t.kind = EPLB_TRIGGER_ORACLE;
    eplb_sim_trigger_window(&b, &e, &t, 10, 12);
    cr_assert(b == 10 && e == 12);
    t.kind = EPLB_TRIGGER_SGLANG;
    t.interval = 5;
    cr_assert(!eplb_sim_trigger_due(&t, 0) && eplb_sim_trigger_due(&t, 5) &&
              !eplb_sim_trigger_due(&t, 6) && eplb_sim_trigger_due(&t, 10));
    t.kind = EPLB_TRIGGER_TRTLLM;
    t.window = 4;
    t.interval = 2;
    cr_assert(!eplb_sim_trigger_due(&t, 3) && eplb_sim_trigger_due(&t, 4) &&
              !eplb_sim_trigger_due(&t, 5) && eplb_sim_trigger_due(&t, 6));
    t.kind = EPLB_TRIGGER_ONCE;
    for (int64_t s = 0; s < 20; s++)
        cr_assert(!eplb_sim_trigger_due(&t, s));
}

Test(sim, trigger_and_async_parse)
{
    eplb_trigger_kind_t k;
    eplb_assert_ok(eplb_sim_trigger_parse(&k, "trtllm"));
    cr_assert_eq(k, EPLB_TRIGGER_TRTLLM);
    eplb_assert_fails(eplb_sim_trigger_parse(&k, "daily"), EPLB_ERR_INVALID_ARG, "daily");
    eplb_async_t a;
    int chunk = 0;
    eplb_assert_ok(eplb_sim_async_parse(&a, &chunk, "chunk:4"));
    cr_assert(a == EPLB_ASYNC_CHUNK && chunk == 4);
    eplb_assert_fails(eplb_sim_async_parse(&a, &chunk, "chunk:0"), EPLB_ERR_INVALID_ARG,
                      "--async");
    eplb_trigger_t t = EPLB_TRIGGER_INIT;
    t.window = 10;
    t.interval = 5;
    eplb_assert_fails(eplb_sim_trigger_check(&t), EPLB_ERR_INVALID_ARG, "--window");
}

/* ---- profile, model shape, cost model ------------------------------------ */

Test(sim, shipped_profile_equals_builtin_default)
{
    eplb_profile_t a, b;
    eplb_sim_profile_default(&a);
    eplb_assert_ok(eplb_sim_profile_load(
        &b, eplb_test_path(eplb_test_srcdir(), "sim/profiles/h100-8gpu-ib400.txt")));
    cr_assert_str_eq(a.name, b.name);
    cr_assert_float_eq(b.nvlink_bw, 450e9, 1);         /* 900 GB/s bidirectional */
    cr_assert_float_eq(b.net_bw, 50e9, 1);             /* 400 Gb/s */
    cr_assert_float_eq(b.hbm_bw, 3.35e12, 1);
    cr_assert_float_eq(b.record_frac, 0.0166, 1e-12);
    /* every number of the file equals the built-in one (to rounding of the
     * unit scale factors) */
    double fa[] = {a.nvlink_bw, a.nvlink_lat, a.net_bw, a.net_lat, a.hbm_bw, a.flops_fp8,
                   a.flops_bf16, a.gemm_eff, a.dispatch_bytes, a.combine_bytes,
                   a.record_s, a.record_frac};
    double fb[] = {b.nvlink_bw, b.nvlink_lat, b.net_bw, b.net_lat, b.hbm_bw, b.flops_fp8,
                   b.flops_bf16, b.gemm_eff, b.dispatch_bytes, b.combine_bytes,
                   b.record_s, b.record_frac};
    for (size_t i = 0; i < sizeof fa / sizeof fa[0]; i++)
        cr_assert(fabs(fa[i] - fb[i]) <= 1e-12 * fabs(fa[i]), "field %zu: %g vs %g", i,
                  fa[i], fb[i]);
    cr_assert_eq(a.record_n, b.record_n);
    for (int k = 0; k < a.record_n; k++)
        cr_assert(a.record_tokens[k] == b.record_tokens[k] &&
                  fabs(a.record_t[k] - b.record_t[k]) <= 1e-12 * a.record_t[k]);
    cr_assert_eq(a.ntables, b.ntables);
    for (int i = 0; i < a.ntables; i++) {
        cr_assert(a.tables[i].hidden == b.tables[i].hidden &&
                  a.tables[i].inter == b.tables[i].inter &&
                  a.tables[i].weight_bytes == b.tables[i].weight_bytes &&
                  a.tables[i].n == b.tables[i].n, "table %d", i);
        for (int k = 0; k < a.tables[i].n; k++)
            cr_assert(a.tables[i].tokens[k] == b.tables[i].tokens[k] &&
                          fabs(a.tables[i].s[k] - b.tables[i].s[k]) <= 1e-12 * a.tables[i].s[k],
                      "table %d point %d", i, k);
    }
}

Test(sim, profile_errors_name_line_and_key)
{
    eplb_profile_t p;
    eplb_assert_fails(eplb_sim_profile_parse(&p, "name = x\nnvlink_GBps = fast\n", "f.txt"),
                      EPLB_ERR_FORMAT, "f.txt:2: nvlink_GBps");
    eplb_assert_fails(eplb_sim_profile_parse(&p, "# c\n\nwarp = 1\n", "f.txt"),
                      EPLB_ERR_FORMAT, "f.txt:3: unknown key 'warp'");
    eplb_assert_fails(eplb_sim_profile_parse(&p, "gemm_table = 1:5 8:7\n", "f.txt"),
                      EPLB_ERR_FORMAT, "unknown key");
    eplb_assert_fails(eplb_sim_profile_parse(&p, "gemm_table.7168x2048.fp4 = 1:5\n", "f.txt"),
                      EPLB_ERR_FORMAT, "gemm_table.HIDDENxINTER");
    eplb_assert_fails(eplb_sim_profile_parse(&p, "gemm_table.7168x2048 = 8:5 2:6\n", "f.txt"),
                      EPLB_ERR_FORMAT, "ascending");
    eplb_assert_ok(eplb_sim_profile_parse(&p,
                                          "gemm_table.7168x2048.bf16 = 1:99\n"
                                          "gemm_table.7168x2048.fp8 = 1:10 101:20  # us\n",
                                          "f.txt"));
    cr_assert_eq(p.ntables, 2);
    /* the table of the model's shape and format is used: linear between the
     * points, the first time below, the last slope above */
    eplb_model_shape_t m;
    eplb_sim_model_shape(&m, "DeepSeek-V3", NULL);
    eplb_cost_t c;
    eplb_sim_cost_init(&c, &p, &m, 8, 1, 256);
    cr_assert_eq(c.table, 1);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 51), 15e-6, 1e-12);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 201), 30e-6, 1e-12);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 5000), 10e-6 + 4999 * 0.1e-6, 1e-12);
    m.weight_bytes = 2;
    eplb_sim_cost_init(&c, &p, &m, 8, 1, 256);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 1), 99e-6, 1e-12);
    m.inter = 1024; /* no table for this shape: roofline */
    eplb_sim_cost_init(&c, &p, &m, 8, 1, 256);
    cr_assert_eq(c.table, -1);
    /* overhead: a file without record_table/record_us gives the fraction */
    cr_assert(eplb_sim_cost_record(&c, 100) < 0);
    eplb_assert_ok(eplb_sim_profile_parse(&p, "record_table = 100:1 300:3\n", "f.txt"));
    eplb_sim_cost_init(&c, &p, &m, 8, 1, 256);
    cr_assert_float_eq(eplb_sim_cost_record(&c, 10), 1e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_record(&c, 200), 2e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_record(&c, 500), 5e-6, 1e-15);
    eplb_assert_ok(eplb_sim_profile_parse(&p, "record_us = 2.5\n", "f.txt"));
    eplb_sim_cost_init(&c, &p, &m, 8, 1, 256);
    cr_assert_float_eq(eplb_sim_cost_record(&c, 10), 2.5e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 0), 0, 0);
}

Test(sim, model_shape_and_expert_bytes)
{
    eplb_model_shape_t m;
    eplb_sim_model_shape(&m, "deepseek-ai/DeepSeek-V3", NULL);
    /* 3 x 7168 x 2048 FP8 parameters = 44,040,192 bytes (44 MB) */
    cr_assert_float_eq(eplb_sim_expert_bytes(&m), 44040192.0, 0);
    eplb_sim_model_shape(&m, "x", "{\"hidden_size\": 1024, \"moe_intermediate_size\": 512}");
    cr_assert_float_eq(eplb_sim_expert_bytes(&m), 3.0 * 1024 * 512 * 2, 0);
    eplb_sim_model_shape(&m, "x", "{\"hidden_size\": 1024, \"moe_intermediate_size\": 512,"
                                  " \"quantization_config\": {\"quant_method\": \"fp8\"}}");
    cr_assert_float_eq(m.weight_bytes, 1, 0);
    eplb_sim_model_shape(&m, "unknown-model", NULL);
    cr_assert(strstr(m.source, "default") != NULL);
}

Test(sim, roofline_and_all_to_all_by_hand)
{
    eplb_profile_t p;
    eplb_sim_profile_default(&p);
    p.gemm_eff = 1;
    p.hbm_bw = 1e12;
    p.flops_bf16 = 1e15;
    p.nvlink_bw = 1e11;
    p.net_bw = 1e10;
    p.nvlink_lat = 1e-6;
    p.net_lat = 1e-5;
    p.dispatch_bytes = 1;
    p.combine_bytes = 1;
    eplb_model_shape_t m = {100, 50, 2, "test"};
    eplb_cost_t c;
    /* 4 GPUs in 2 nodes, 2 slots per GPU */
    eplb_sim_cost_init(&c, &p, &m, 4, 2, 8);
    /* one expert, 10 tokens: bytes = 3*100*50*2 + 10*(100*2 + 4*50 + 2*100)
     * = 30000 + 6000 = 36000 -> 36 ns; flops = 6*100*50*10 = 3e5 -> 0.3 ns */
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 10), 36e-9, 1e-15);
    int32_t slots[8] = {10, 0, 10, 10, 0, 0, 0, 0};
    int64_t g[4];
    eplb_layer_cost_t lc;
    eplb_sim_cost_layer(&lc, g, &c, slots, NULL, NULL, NULL, NULL);
    cr_assert(g[0] == 10 && g[1] == 20 && g[2] == 0 && g[3] == 0);
    cr_assert_eq(lc.max_tokens, 20);
    cr_assert_eq(lc.total_tokens, 30);
    cr_assert_float_eq(lc.compute_s, 72e-9, 1e-15);
    /* uniform sources, GPU 1 with 20 entries: 1/4 from its node peer over
     * NVLink (5 x 200 B), 2/4 over the network (10 x 200 B):
     * 2*(1us + 10us) + max(1000/1e11, 2000/1e10) = 22us + 0.2us */
    cr_assert_float_eq(lc.a2a_s, 22.2e-6, 1e-12);
    /* given traffic: GPU 2 sends 7 entries over the network */
    int64_t si[4] = {0}, se[4] = {0, 0, 7, 0}, ri[4] = {0}, re[4] = {7, 0, 0, 0};
    eplb_sim_cost_layer(&lc, g, &c, slots, si, se, ri, re);
    cr_assert_float_eq(lc.a2a_s, 22e-6 + 1400 / 1e10, 1e-12);
    /* one GPU: no all-to-all at all */
    eplb_sim_cost_init(&c, &p, &m, 1, 1, 8);
    eplb_sim_cost_layer(&lc, g, &c, slots, NULL, NULL, NULL, NULL);
    cr_assert_float_eq(lc.a2a_s, 0, 0);
    /* found by mutation testing (each passed the suite before):
     * (a) one GPU per node (D = N = 2): no NVLink tier, so no NVLink
     * latency: GPU 0's 10 entries, half from GPU 1 over the network (5 x
     * 200 B): 2 x 10 us + 1000 / 1e10 = 20.1 us */
    eplb_sim_cost_init(&c, &p, &m, 2, 2, 4);
    int32_t two[4] = {10, 0, 10, 0};
    eplb_sim_cost_layer(&lc, g, &c, two, NULL, NULL, NULL, NULL);
    cr_assert_float_eq(lc.a2a_s, 20.1e-6, 1e-12, "%g", lc.a2a_s);
    /* (b) the NVLink share is (gpus per node - 1) / D of a GPU's entries:
     * with a fast network the NVLink term decides: GPU 1's 5 entries from
     * its peer, 1000 B / 1e11 = 10 ns, against 2000 B / 1e13 = 0.2 ns */
    eplb_profile_t q = p;
    q.net_bw = 1e13;
    eplb_sim_cost_init(&c, &q, &m, 4, 2, 8);
    eplb_sim_cost_layer(&lc, g, &c, slots, NULL, NULL, NULL, NULL);
    cr_assert_float_eq(lc.a2a_s, 22e-6 + 1000 / 1e11, 1e-13, "%g", lc.a2a_s);
    /* (c) FP8 weights (1 byte) take the FP8 peak: 1e5 tokens, 6 x 100 x
     * 50 x 1e5 = 3e9 FLOP / 2e15 = 1.5 us (the memory side, with HBM at
     * 1e16 B/s, is far below) */
    q = p;
    q.flops_fp8 = 2e15;
    q.hbm_bw = 1e16;
    eplb_model_shape_t m8 = {100, 50, 1, "test fp8"};
    eplb_sim_cost_init(&c, &q, &m8, 4, 2, 8);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 100000), 1.5e-6, 1e-15, "%g",
                       eplb_sim_cost_expert(&c, 100000));
}

/* Measured tables at their edges (docs/simulator.md; found by mutation
 * testing, both passed before): a GEMM table of one point is that time up
 * to its tokens and proportional above (a GEMM does not get cheaper than
 * its weight reads): 64 tokens in 10 us -> 16: 10 us, 128: 20 us; and a
 * record_table extrapolated below zero is clamped to 0 (64: 1 us, 128:
 * 0.5 us -> at 1000 tokens 0.5 - 0.5 x 872 / 64 < 0 -> 0; at 96: 0.75). */
Test(sim, cost_tables_at_their_edges)
{
    eplb_profile_t p;
    eplb_assert_ok(eplb_sim_profile_parse(&p,
                                          "name = t\ngemm_table.100x50 = 64:10\n"
                                          "record_table = 64:1 128:0.5\n",
                                          "t.txt"));
    eplb_model_shape_t m = {100, 50, 2, "test"};
    eplb_cost_t c;
    eplb_sim_cost_init(&c, &p, &m, 4, 1, 8);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 16), 10e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 64), 10e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 128), 20e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_record(&c, 64), 1e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_record(&c, 96), 0.75e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_record(&c, 1000), 0, 0);
}

/* ---- weight-move planner ------------------------------------------------- */

Test(sim, transfer_plan_matches_senders_by_hand)
{
    eplb_profile_t p;
    eplb_sim_profile_default(&p);
    eplb_model_shape_t m = {100, 100, 1, "test"}; /* 30000 bytes per expert */
    eplb_cost_t c;
    /* 4 GPUs, 2 nodes (GPUs 0,1 | 2,3), 2 slots per GPU */
    eplb_sim_cost_init(&c, &p, &m, 4, 2, 8);
    int32_t old[8] = {0, 1, 2, 3, 4, 5, 0, 1};
    /* slot 1: GPU0 needs 0, holds it -> local
     * slot 3: GPU1 needs 4: only GPU2 (other node) -> inter from GPU2
     * slot 6: GPU3 needs 1: holds it (slot 7) -> local
     * slot 7: GPU3 needs 5: GPU2 (same node) -> intra from GPU2 */
    int32_t nw[8] = {0, 0, 2, 4, 4, 5, 1, 5};
    int32_t sends[3 * 8];
    eplb_transfer_t t;
    eplb_assert_ok(eplb_sim_transfer_plan(&t, sends, old, nw, &c));
    cr_assert_eq(t.moved, 4);
    cr_assert_eq(t.local, 2);
    cr_assert_eq(t.intra, 1);
    cr_assert_eq(t.inter, 1);
    cr_assert_eq(t.bytes, 60000);
    int want[4][3] = {{1, 0, 0}, {3, 2, 1}, {6, 3, 3}, {7, 2, 3}};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            cr_assert_eq(sends[3 * i + j], want[i][j], "send %d field %d", i, j);
    /* lowest rank wins: expert 0 held by GPU0 and GPU3, needed by GPU2
     * whose node (2,3) has GPU3 -> GPU3; needed by GPU1 -> GPU0 (same node) */
    int32_t nw2[8] = {0, 1, 0, 3, 0, 5, 0, 1};
    eplb_assert_ok(eplb_sim_transfer_plan(&t, sends, old, nw2, &c));
    cr_assert_eq(t.moved, 2);
    cr_assert(sends[0] == 2 && sends[1] == 0 && sends[2] == 1);
    cr_assert(sends[3] == 4 && sends[4] == 3 && sends[5] == 2);
    /* same-GPU duplicate fill: GPU1 receives expert 4 twice */
    int32_t nw3[8] = {0, 1, 4, 4, 4, 5, 0, 1};
    eplb_assert_ok(eplb_sim_transfer_plan(&t, sends, old, nw3, &c));
    cr_assert(t.moved == 2 && t.inter == 1 && t.local == 1);
    /* identical placements move nothing */
    eplb_assert_ok(eplb_sim_transfer_plan(&t, NULL, old, old, &c));
    cr_assert(t.moved == 0 && t.bytes == 0 && t.time_s == 0);
    /* the time (docs/simulator.md, transfer time: per GPU the larger of
     * its NVLink and network time, each the larger of what it sends and
     * receives, + 2 x local bytes / hbm_bw; the worst GPU, + the latency of
     * each tier used), which no test had pinned (found by mutation testing:
     * the NVLink latency added for inter-node moves instead passed).  The
     * first plan: GPU0 copies 30000 B locally, GPU1 receives 30000 B over
     * the network, GPU2 sends 30000 B over each, GPU3 receives 30000 B over
     * NVLink and copies 30000 B locally. */
    const double B = 30000, nv = p.nvlink_bw, net = p.net_bw, hbm = p.hbm_bw;
    eplb_assert_ok(eplb_sim_transfer_plan(&t, NULL, old, nw, &c));
    double g[4] = {2 * B / hbm, B / net, fmax(B / nv, B / net), B / nv + 2 * B / hbm};
    double worst = fmax(fmax(g[0], g[1]), fmax(g[2], g[3]));
    cr_assert_float_eq(t.time_s, worst + p.nvlink_lat + p.net_lat, 1e-15, "%g", t.time_s);
    /* one node: the move of expert 4 to GPU1 is NVLink only, one latency */
    eplb_cost_t c1;
    eplb_sim_cost_init(&c1, &p, &m, 4, 1, 8);
    int32_t nw4[8] = {0, 1, 2, 4, 4, 5, 0, 1};
    eplb_assert_ok(eplb_sim_transfer_plan(&t, NULL, old, nw4, &c1));
    cr_assert(t.moved == 1 && t.intra == 1 && t.inter == 0);
    cr_assert_float_eq(t.time_s, B / nv + p.nvlink_lat, 1e-15, "%g", t.time_s);
}

/* ---- replay ---------------------------------------------------------------- */

/* A policy that records the weights it is given and keeps the placement. */
static float captured[16][128];
static int ncaptured;

static eplb_status_t capture_fn(int32_t *phy2log, int32_t *phyrank, const float *w,
                                int L, int E, const eplb_policy_args_t *a)
{
    (void)phyrank;
    cr_assert_leq(L * E, 128);
    if (ncaptured < 16)
        memcpy(captured[ncaptured], w, (size_t)L * E * sizeof *w);
    ncaptured++;
    memcpy(phy2log, a->old_phy2log, (size_t)L * a->num_replicas * sizeof *phy2log);
    return EPLB_OK;
}

Test(sim, vllm_rearranges_at_exact_steps_with_last_window)
{
    enum { L = 2, E = 8, S = 40 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = (s * 7 + e * 3 + l) % 11 + 100 * (e == s % E);
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 8, EPLB_TRIGGER_VLLM, 3, 8);
    r.policy = &cap;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.keep_events = 1;
    ncaptured = 0;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    int64_t want[] = {2, 10, 18, 26, 34};
    cr_assert_eq(ncaptured, 5);
    cr_assert_eq(res.rebalances, 5);
    cr_assert_eq(res.n_events, 5 * L); /* one commit per layer */
    for (int i = 0; i < 5; i++) {
        int64_t b = want[i] - 3 < 0 ? 0 : want[i] - 3;
        for (int l = 0; l < L; l++) {
            const eplb_sim_event_t *ev = &res.events[i * L + l];
            cr_assert_eq(ev->step, want[i]);
            cr_assert_eq(ev->decided, want[i]);
            cr_assert(ev->win_begin == b && ev->win_end == want[i]);
            cr_assert_eq(ev->moved, 0);
            for (int e = 0; e < E; e++) {
                float sum = 0;
                for (int64_t s = b; s < want[i]; s++)
                    sum += (float)counts[s][l][e];
                cr_assert_float_eq(captured[i][l * E + e], sum, 0,
                                   "decision %d layer %d expert %d", i, l, e);
            }
        }
    }
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* Every step and layer: tokens over all GPUs = tokens x top_k minus the
 * invalid ids, for every selection mode and for a moving policy. */
Test(sim, conservation_every_mode_and_policy)
{
    enum { L = 3, E = 16, K = 4, S = 6, D = 4, P = 20 };
    int steps[S] = {37, 50, 0, 64, 41, 23};
    tok_trace_t t = make_tokens(L, E, K, S, steps, 42, 1);
    int64_t valid[S][L];
    int64_t lost = 0;
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++) {
            valid[s][l] = 0;
            for (int64_t i = t.off[s]; i < t.off[s + 1]; i++)
                for (int k = 0; k < K; k++) {
                    int32_t e = t.ids[((size_t)i * L + l) * K + k];
                    if (e >= 0 && e < E)
                        valid[s][l]++;
                    else
                        lost++;
                }
        }
    cr_assert(lost > 0, "the test trace should hold invalid ids");
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    for (int mode = EPLB_SELECT_HASH; mode <= EPLB_SELECT_BALANCED; mode++) {
        eplb_sim_source_t *src;
        eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, K, 1, S, t.off, t.ids, NULL));
        eplb_sim_run_cfg_t runs[3] = {
            eplb_test_run_cfg("none", D, 2, P, EPLB_TRIGGER_VLLM, 1, 4),
            eplb_test_run_cfg("deepseek", D, 2, P, EPLB_TRIGGER_VLLM, 1, 4),
            eplb_test_run_cfg("lpt", D, 2, P, EPLB_TRIGGER_SGLANG, 2, 2),
        };
        runs[2].trig.async = EPLB_ASYNC_LAYERS;
        eplb_sim_opts_t o = eplb_test_sim_opts();
        o.select = (eplb_select_mode_t)mode;
        o.seed = 5;
        o.results_path = path;
        eplb_sim_result_t res[3];
        eplb_assert_ok(eplb_sim_replay(res, src, runs, 3, &o));
        for (int r = 0; r < 3; r++) {
            char name[64];
            snprintf(name, sizeof name, "/runs/%03d/gpu_tokens", r);
            size_t n;
            int32_t *g = read_i32(path, name, &n);
            cr_assert_eq(n, (size_t)S * L * D);
            for (int s = 0; s < S; s++)
                for (int l = 0; l < L; l++) {
                    int64_t sum = 0;
                    for (int d = 0; d < D; d++)
                        sum += g[((size_t)s * L + l) * D + d];
                    cr_assert_eq(sum, valid[s][l], "mode %s run %d step %d layer %d",
                                 eplb_select_mode_name(mode), r, s, l);
                }
            free(g);
            cr_assert_eq(res[r].tokens_lost, lost);
        }
        /* none never moves; the others did decide */
        cr_assert(res[0].rebalances == 0 && res[0].moved_replicas == 0 &&
                  res[0].moved_bytes == 0 && res[0].stall_s == 0);
        cr_assert_eq(res[1].rebalances, 2); /* steps 1 and 5 */
        cr_assert(res[2].rebalances >= 1);
        eplb_sim_results_free(res, 3);
        eplb_sim_source_free(src);
    }
    unlink(path);
    rmdir(dir);
    free_tokens(&t);
}

Test(sim, conservation_counts_level)
{
    enum { L = 2, E = 8, S = 12, D = 4, P = 12 };
    static int32_t counts[S][L][E];
    uint64_t x = 9;
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = (int32_t)(eplb_test_rng_next(&x) % 10) +
                                  (e == 4 ? 500 : e == 5 ? 450 : 40);
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    eplb_sim_run_cfg_t runs[2] = {eplb_test_run_cfg("none", D, 1, P, EPLB_TRIGGER_VLLM, 2, 4),
                                  eplb_test_run_cfg("deepseek", D, 1, P, EPLB_TRIGGER_VLLM, 2, 4)};
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.results_path = path;
    eplb_sim_result_t res[2];
    eplb_assert_ok(eplb_sim_replay(res, src, runs, 2, &o));
    for (int r = 0; r < 2; r++) {
        char name[64];
        snprintf(name, sizeof name, "/runs/%03d/gpu_tokens", r);
        size_t n;
        int32_t *g = read_i32(path, name, &n);
        for (int s = 0; s < S; s++)
            for (int l = 0; l < L; l++) {
                int64_t sum = 0, want = 0;
                for (int d = 0; d < D; d++)
                    sum += g[((size_t)s * L + l) * D + d];
                for (int e = 0; e < E; e++)
                    want += counts[s][l][e];
                cr_assert_eq(sum, want);
            }
        free(g);
    }
    /* the hot experts 4 and 5 share GPU 1 in the default placement;
     * rebalancing gives them replicas elsewhere */
    cr_assert_gt(res[1].balancedness, res[0].balancedness);
    eplb_sim_results_free(res, 2);
    eplb_sim_source_free(src);
    unlink(path);
    rmdir(dir);
}

/* Found by a clang implicit-conversion audit: the window's loads were
 * summed in float, so past 2^24 a step's 1 was lost and the result hung on
 * the steps' order.  Window of steps 0-3: expert 0 = 2^24 + 3, expert 1 =
 * 2^24 + 2 (exactly; as floats 2^24 + 4 and 2^24 + 2), so the one
 * redundant slot of 4 on 3 experts is expert 0's.  The float sum gave
 * 2^24 for expert 0 when its big step came first, and the slot to
 * expert 1. */
static void window_sum_owner(int big_first, int per_expert[3])
{
    enum { L = 1, E = 3, S = 8 };
    static int32_t counts[S][L][E];
    const int32_t big[E] = {1 << 24, (1 << 24) + 2, 0}, one[E] = {1, 0, 0};
    for (int s = 0; s < 4; s++)
        memcpy(counts[s][0], s == (big_first ? 0 : 3) ? big : one, sizeof big);
    for (int s = 4; s < S; s++) {
        counts[s][0][0] = 1000;
        counts[s][0][1] = counts[s][0][2] = 10;
    }
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("deepseek", 2, 1, 4, EPLB_TRIGGER_SGLANG, 4, 4);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.results_path = path;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_eq(res.rebalances, 1); /* the decision before step 4 only */
    size_t n;
    int32_t *p = read_i32(path, "/runs/000/placement_final", &n);
    cr_assert_eq(n, 4u);
    memset(per_expert, 0, 3 * sizeof *per_expert);
    for (size_t i = 0; i < n; i++)
        per_expert[p[i]]++;
    free(p);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
    unlink(path);
    rmdir(dir);
}

Test(sim, window_loads_summed_exactly_in_any_order)
{
    for (int big_first = 0; big_first < 2; big_first++) {
        int c[3];
        window_sum_owner(big_first, c);
        cr_assert(c[0] == 2 && c[1] == 1 && c[2] == 1, "big step %s: replicas %d %d %d, want 2 1 1",
                  big_first ? "first" : "last", c[0], c[1], c[2]);
    }
}

/* Found by the same audit: moved_bytes (int64) overflowed, undefined, with
 * expert sizes near model_config's bounds (hidden and intermediate sizes
 * below 1e6 each, 6e12 bytes an expert).  Here an expert of ~2e18 bytes,
 * the hot expert changing every step: the run stops with an error that
 * says so instead of a wrapped total. */
Test(sim, moved_bytes_past_int64_refused)
{
    enum { L = 1, E = 4, S = 12 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int e = 0; e < E; e++)
            counts[s][0][e] = e == s % E ? 1000 : 1;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("deepseek", 2, 1, 8, EPLB_TRIGGER_SGLANG, 1, 1);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.shape.weight_bytes = 2e18 / (3.0 * o.shape.hidden * o.shape.inter);
    eplb_sim_result_t res;
    eplb_assert_fails(eplb_sim_replay(&res, src, &r, 1, &o), EPLB_ERR_INVALID_ARG,
                      "bytes moved pass 2^63");
    /* the same run with DeepSeek-V3's experts moves and counts its bytes */
    o = eplb_test_sim_opts();
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_gt(res.moved_replicas, 0);
    cr_assert_eq(res.moved_bytes % (3LL * 7168 * 2048), 0);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* Hot expert 0 always in column 0, top-8, two replicas (slots 0 and 16):
 * flatmod sends (8t + 0) mod 2 = 0 -> every token to slot 0; hash splits
 * it evenly (the finding behind vLLM PR #40810). */
static void hot_expert_gpu_tokens(eplb_select_mode_t mode, int64_t want[4])
{
    enum { L = 1, E = 16, K = 8, T = 64, D = 4, P = 20 };
    static int32_t ids[T][K];
    for (int t = 0; t < T; t++) {
        ids[t][0] = 0;
        for (int k = 1; k < K; k++)
            ids[t][k] = 4 + k; /* experts 5..11, one replica each */
    }
    int64_t off[2] = {0, T};
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, K, 1, 1, off, &ids[0][0], NULL));
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", D, 1, P, EPLB_TRIGGER_VLLM, 1, 4);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.select = mode;
    o.results_path = path;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    size_t n;
    int32_t *g = read_i32(path, "/runs/000/gpu_tokens", &n);
    cr_assert_eq(n, 4u);
    for (int d = 0; d < D; d++)
        want[d] = g[d];
    free(g);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
    unlink(path);
    rmdir(dir);
}

Test(sim, flatmod_collapses_hot_expert_hash_splits)
{
    /* slots: GPU0 = 0..4 (experts 0-4), GPU1 = 5..9, GPU2 = 10..14,
     * GPU3 = 15..19 (experts 15, 0, 1, 2, 3).  Columns 1-7 are experts
     * 5..11: 5 on GPU1, 2 on GPU2 per token. */
    int64_t g[4];
    hot_expert_gpu_tokens(EPLB_SELECT_FLATMOD, g);
    cr_assert(g[0] == 64 && g[1] == 5 * 64 && g[2] == 2 * 64 && g[3] == 0,
              "flatmod: %lld %lld %lld %lld", (long long)g[0], (long long)g[1],
              (long long)g[2], (long long)g[3]);
    hot_expert_gpu_tokens(EPLB_SELECT_HASH, g);
    cr_assert(g[0] == 32 && g[1] == 5 * 64 && g[2] == 2 * 64 && g[3] == 32,
              "hash: %lld %lld %lld %lld", (long long)g[0], (long long)g[1],
              (long long)g[2], (long long)g[3]);
}

/* Load that shifts every 8 steps: the oracle (next window) must beat the
 * online policies (last window) on balancedness. */
Test(sim, oracle_never_worse_than_online)
{
    enum { L = 3, E = 16, S = 48 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++) {
                int phase = s / 8;
                int hot = (e - 5 * phase - l + 64) % E < 3;
                counts[s][l][e] = hot ? 400 + 10 * e : 20 + (s + e) % 7;
            }
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_sim_run_cfg_t runs[5] = {
        eplb_test_run_cfg("none", 4, 1, 20, EPLB_TRIGGER_VLLM, 8, 8),
        eplb_test_run_cfg("deepseek", 4, 1, 20, EPLB_TRIGGER_VLLM, 8, 8),
        eplb_test_run_cfg("lpt", 4, 1, 20, EPLB_TRIGGER_VLLM, 8, 8),
        eplb_test_run_cfg("global", 4, 1, 20, EPLB_TRIGGER_VLLM, 8, 8),
        eplb_test_run_cfg("deepseek", 4, 1, 20, EPLB_TRIGGER_ORACLE, 8, 8),
    };
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.threads = 2;
    eplb_sim_result_t res[5];
    eplb_assert_ok(eplb_sim_replay(res, src, runs, 5, &o));
    for (int i = 0; i < 4; i++)
        cr_assert_geq(res[4].balancedness, res[i].balancedness, "oracle %.4f < run %d %.4f",
                      res[4].balancedness, i, res[i].balancedness);
    cr_assert_gt(res[4].balancedness, res[1].balancedness + 0.05);
    cr_assert_eq(res[4].rebalances, res[1].rebalances);
    cr_assert(isnan(res[0].gain_vs_none) == 0 && res[0].gain_vs_none == 0);
    for (int i = 0; i < 5; i++) { /* every run's gain against run 0 (none) */
        cr_assert_eq(res[i].baseline, 0, "run %d", i);
        cr_assert_float_eq(res[i].gain_vs_none,
                           100.0 * (res[0].total_s - res[i].total_s) / res[0].total_s, 1e-9,
                           "run %d", i);
    }
    eplb_sim_results_free(res, 5);
    eplb_sim_source_free(src);
}

/* gpu_select: 0 the CPU path, 2 the GPU path's pipeline on the CPU. */
static void replay_tokens_blocks(eplb_sim_result_t res[3], const tok_trace_t *t, int threads,
                                 const char *path, int gpu_select, int64_t block_tokens)
{
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, t->L, t->E, t->K, 1, t->S, t->off,
                                          t->ids, NULL));
    eplb_sim_run_cfg_t runs[3] = {
        eplb_test_run_cfg("none", 4, 2, 24, EPLB_TRIGGER_VLLM, 2, 4),
        eplb_test_run_cfg("deepseek", 4, 2, 24, EPLB_TRIGGER_VLLM, 2, 4),
        eplb_test_run_cfg("lpt", 4, 2, 24, EPLB_TRIGGER_TRTLLM, 2, 1),
    };
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.select = EPLB_SELECT_RANDOM;
    o.seed = 1234;
    o.threads = threads;
    o.results_path = path;
    o.gpu_select = gpu_select;
    o.block_tokens = block_tokens;
    eplb_assert_ok(eplb_sim_replay(res, src, runs, 3, &o));
    eplb_sim_source_free(src);
}

static void replay_tokens(eplb_sim_result_t res[3], const tok_trace_t *t, int threads,
                          const char *path, int gpu_select)
{
    replay_tokens_blocks(res, t, threads, path, gpu_select, 0);
}

/* The metrics of n runs equal, field by field (bit-identical doubles). */
static void assert_same_results(const eplb_sim_result_t *a, const eplb_sim_result_t *b, int n,
                                int c)
{
#define SAME(f) cr_assert(a[i].f == b[i].f, "case %d run %d: " #f " differs", c, i)
    for (int i = 0; i < n; i++) {
        SAME(balancedness); SAME(max_over_mean); SAME(worst_layer_bal); SAME(compute_s);
        SAME(a2a_s); SAME(overhead_s); SAME(stall_s); SAME(moe_time_s); SAME(moved_bytes);
        SAME(total_s); SAME(rebalances); SAME(tokens_lost);
    }
#undef SAME
}

Test(sim, same_inputs_same_outputs_any_thread_count)
{
    int steps[10] = {30, 31, 29, 40, 12, 33, 30, 30, 25, 35};
    tok_trace_t t = make_tokens(2, 16, 4, 10, steps, 77, 0);
    const char *dir = eplb_test_tmpdir();
    char p1[512], p2[512];
    snprintf(p1, sizeof p1, "%s/a.h5", dir);
    snprintf(p2, sizeof p2, "%s/b.h5", dir);
    eplb_sim_result_t a[3], b[3];
    replay_tokens(a, &t, 1, p1, 0);
    replay_tokens(b, &t, 3, p2, 0);
    assert_same_results(a, b, 3, 0);
    cr_assert_gt(a[2].rebalances, 3); /* trtllm: one layer every step */
    size_t n1, n2;
    char *f1 = (char *)eplb_test_slurp(p1, &n1), *f2 = (char *)eplb_test_slurp(p2, &n2);
    cr_assert(n1 == n2 && memcmp(f1, f2, n1) == 0, "results.h5 differ");
    free(f1);
    free(f2);
    eplb_sim_results_free(a, 3);
    eplb_sim_results_free(b, 3);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
    free_tokens(&t);
}

/* One way of running the replay: threads, GPU pipeline (2: emulated),
 * tokens per block (0: the default). */
typedef struct {
    int threads, gpu_select;
    int64_t block_tokens;
} replay_way_t;

/* The replay of a fixed token trace (steps of 0 to 1300 tokens, invalid
 * ids among them) run each way gives the results of one thread, the
 * default blocks (a first block of 4K tokens, then one), the CPU path: the
 * same metrics and the same results.h5 contents, and the same bytes where
 * the blocks are the same. */
static void check_ways(uint64_t seed, const replay_way_t *ways, int n)
{
    int steps[8] = {1100, 1200, 0, 50, 1100, 1300, 1024, 1100};
    tok_trace_t t = make_tokens(4, 16, 8, 8, steps, seed, 1);
    const char *dir = eplb_test_tmpdir();
    char ref[512], path[512];
    snprintf(ref, sizeof ref, "%s/ref.h5", dir);
    snprintf(path, sizeof path, "%s/way.h5", dir);
    eplb_sim_result_t a[3], b[3];
    replay_tokens_blocks(a, &t, 1, ref, 0, 0);
    cr_assert_gt(a[0].tokens_lost, 0);
    cr_assert_gt(a[1].rebalances, 0);
    size_t n1, n2;
    char *f1 = (char *)eplb_test_slurp(ref, &n1);
    for (int c = 0; c < n; c++) {
        replay_tokens_blocks(b, &t, ways[c].threads, path, ways[c].gpu_select,
                             ways[c].block_tokens);
        assert_same_results(a, b, 3, c);
        assert_same_h5_runs(ref, path, 3, c);
        if (ways[c].block_tokens == 0) {
            char *f2 = (char *)eplb_test_slurp(path, &n2);
            cr_assert(n1 == n2 && memcmp(f1, f2, n1) == 0, "case %d: results.h5 differ", c);
            free(f2);
        }
        eplb_sim_results_free(b, 3);
        unlink(path);
    }
    free(f1);
    eplb_sim_results_free(a, 3);
    unlink(ref);
    rmdir(dir);
    free_tokens(&t);
}

/* Threads beyond one per run model a step's layers in parallel (steps of
 * at least 32K (token, layer, k) entries, here all but the small and the
 * empty step) and count the logical load, on the CPU path and on the GPU
 * path's pipeline (emulated). */
Test(sim, layer_threads_change_nothing)
{
    const replay_way_t ways[] = {{8, 0, 0}, {12, 0, 0}, {8, 2, 0}};
    check_ways(91, ways, 3);
}

/* Blocks (the unit of reading, read ahead while the runs go through the
 * previous one) of one step, of a few steps and of the whole trace, with
 * one thread and with several, on the CPU path and on the emulated GPU
 * pipeline. */
Test(sim, block_size_changes_nothing)
{
    const replay_way_t ways[] = {{1, 0, 1},    {3, 0, 2500},    {4, 2, 1},
                                 {1, 2, 2500}, {2, 0, 1 << 22}, {2, 2, 1 << 22}};
    check_ways(92, ways, 6);
}

Test(sim, bad_shapes_rejected)
{
    int32_t counts[2 * 8] = {0};
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, 1, 8, 2, 1, 2, NULL, NULL, counts));
    eplb_sim_opts_t o = eplb_test_sim_opts();
    eplb_sim_result_t res;
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("deepseek", 3, 1, 8, EPLB_TRIGGER_VLLM, 1, 4);
    eplb_assert_fails(eplb_sim_replay(&res, src, &r, 1, &o), EPLB_ERR_INVALID_ARG,
                      "multiple of 3 GPUs");
    r = eplb_test_run_cfg("deepseek", 4, 3, 8, EPLB_TRIGGER_VLLM, 1, 4);
    eplb_assert_fails(eplb_sim_replay(&res, src, &r, 1, &o), EPLB_ERR_INVALID_ARG,
                      "--nodes");
    r = eplb_test_run_cfg("deepseek", 4, 1, 4, EPLB_TRIGGER_VLLM, 1, 4);
    eplb_assert_fails(eplb_sim_replay(&res, src, &r, 1, &o), EPLB_ERR_INVALID_ARG,
                      ">= 8 experts");
    r = eplb_test_run_cfg("deepseek", 4, 1, 8, EPLB_TRIGGER_VLLM, 5, 4);
    eplb_assert_fails(eplb_sim_replay(&res, src, &r, 1, &o), EPLB_ERR_INVALID_ARG,
                      "--window");
    eplb_sim_source_free(src);
    /* a synthetic stream's tokens pick K distinct experts: K <= E */
    src = NULL;
    eplb_assert_fails(eplb_sim_source_synthetic(&src, 2, 4, 8, 3, 64, 1), EPLB_ERR_INVALID_ARG,
                      "top-8 of 4 experts");
    cr_assert_null(src);
    eplb_assert_ok(eplb_sim_source_synthetic(&src, 2, 4, 4, 3, 64, 1));
    eplb_sim_source_free(src);
}

/* Async vLLM: decided before step 2, one layer per step from step 3. */
Test(sim, async_layers_commit_one_per_step)
{
    enum { L = 3, E = 8, S = 12 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = e == l ? 300 : 10 + e;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_sim_run_cfg_t r[2] = {eplb_test_run_cfg("deepseek", 4, 1, 12, EPLB_TRIGGER_VLLM, 2, 8),
                               eplb_test_run_cfg("deepseek", 4, 1, 12, EPLB_TRIGGER_SGLANG, 4, 4)};
    r[0].trig.async = EPLB_ASYNC_LAYERS;
    r[1].trig.async = EPLB_ASYNC_CHUNK;
    r[1].trig.chunk = 2;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.keep_events = 1;
    eplb_sim_result_t res[2];
    eplb_assert_ok(eplb_sim_replay(res, src, r, 2, &o));
    /* vllm: decisions before 2 and 10; the second commits layer 0 at 11 only */
    cr_assert_eq(res[0].rebalances, 2);
    cr_assert_eq(res[0].n_events, 4u);
    for (int l = 0; l < L; l++) {
        cr_assert_eq(res[0].events[l].layer, l);
        cr_assert_eq(res[0].events[l].decided, 2);
        cr_assert_eq(res[0].events[l].step, 3 + l);
    }
    cr_assert(res[0].events[3].step == 11 && res[0].events[3].layer == 0);
    /* sglang every 4 steps, 2 layers per step: decided 4 -> layers 0,1 at 5,
     * layer 2 at 6; decided 8 -> 9, 9, 10 */
    int64_t want[6] = {5, 5, 6, 9, 9, 10};
    cr_assert_eq(res[1].n_events, 6u);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(res[1].events[i].step, want[i], "event %d", i);
    cr_assert(res[1].events[3].win_begin == 4 && res[1].events[3].win_end == 8);
    eplb_sim_results_free(res, 2);
    eplb_sim_source_free(src);
}

/* TensorRT-LLM: EMA with decay d of the counts, one layer per decision in
 * round robin, after W warm-up steps. */
Test(sim, trtllm_ema_round_robin)
{
    enum { L = 2, E = 8, S = 6 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = (s + 1) * (e + 1) + l;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 8, EPLB_TRIGGER_TRTLLM, 3, 1);
    r.policy = &cap;
    r.trig.ema_decay = 0.5;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.keep_events = 1;
    ncaptured = 0;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    /* decisions before steps 3, 4, 5 */
    cr_assert_eq(ncaptured, 3);
    cr_assert_eq(res.n_events, 3u);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(res.events[i].step, 3 + i);
        cr_assert_eq(res.events[i].layer, i % L);
        int l = i % L;
        for (int e = 0; e < E; e++) {
            double ema = 0;
            for (int s = 0; s < 3 + i; s++)
                ema = 0.5 * ema + counts[s][l][e];
            /* the policy sees the layer it re-places (L = 1 call) */
            cr_assert_float_eq(captured[i][e], (float)ema, 1e-3, "decision %d e %d", i, e);
        }
    }
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* Threshold: a balanced load never triggers; a skewed one does. Once: one
 * placement before step 0, nothing moved during the run. */
Test(sim, threshold_skips_balanced_and_once_is_static)
{
    enum { L = 2, E = 8, S = 16 };
    static int32_t flat[S][L][E], skew[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++) {
                flat[s][l][e] = 100;
                skew[s][l][e] = e == 1 ? 900 : 100;
            }
    /* 4 GPUs, 12 slots: default placement gives experts 0-3 two replicas.
     * Flat load: GPU loads 150, 250, 250, 150 -> predicted 200/250 = 0.8.
     * Expert 1 at 900: 550, 250, 250, 550 -> 400/550 = 0.727. */
    eplb_sim_run_cfg_t r[3] = {
        eplb_test_run_cfg("none", 4, 1, 12, EPLB_TRIGGER_VLLM, 2, 4),
        eplb_test_run_cfg("deepseek", 4, 1, 12, EPLB_TRIGGER_THRESHOLD, 2, 4),
        eplb_test_run_cfg("deepseek", 4, 1, 12, EPLB_TRIGGER_ONCE, 1, 1)};
    r[1].trig.threshold = 0.75;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    eplb_sim_result_t res[3];
    for (int k = 0; k < 2; k++) {
        eplb_sim_source_t *src;
        eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL,
                                              k ? &skew[0][0][0] : &flat[0][0][0]));
        eplb_assert_ok(eplb_sim_replay(res, src, r, 3, &o));
        if (k == 0) {
            cr_assert_eq(res[1].rebalances, 0);
            cr_assert_float_eq(res[1].balancedness, res[0].balancedness, 1e-12);
        } else {
            /* decisions before 1, 5, 9, 13: the first rebalances, the later
             * ones find the placement balanced and skip */
            cr_assert_eq(res[1].rebalances, 1);
            cr_assert_gt(res[1].balancedness, res[0].balancedness);
            cr_assert(res[2].rebalances == 0 && res[2].moved_replicas == 0 &&
                      res[2].stall_s == 0);
            /* once: the same placement, but from step 0 on */
            cr_assert_gt(res[2].balancedness, res[1].balancedness);
        }
        eplb_sim_results_free(res, 3);
        eplb_sim_source_free(src);
    }
    /* at the threshold itself the decision is skipped too ("skipped when
     * ... >= --threshold"; found by mutation testing: > passed): 8
     * experts at 100 on 4 GPUs of 2 slots (P = E), every GPU at 200,
     * predicted balancedness exactly 1; with --threshold 1 the policy
     * (which counts its calls) is never asked */
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &flat[0][0][0]));
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t t1 = eplb_test_run_cfg("none", 4, 1, 8, EPLB_TRIGGER_THRESHOLD, 2, 4);
    t1.policy = &cap;
    t1.trig.threshold = 1;
    ncaptured = 0;
    eplb_assert_ok(eplb_sim_replay(res, src, &t1, 1, &o));
    cr_assert_eq(ncaptured, 0);
    cr_assert_float_eq(res[0].balancedness, 1.0, 0);
    eplb_sim_results_free(res, 1);
    /* the same with the threshold just above what it can reach: asked at
     * each of the 4 decisions (before steps 1, 5, 9, 13) */
    for (int s = 0; s < S; s++)
        flat[s][0][0] = 101; /* GPU 0 at 201: predicted 200.125 / 201 < 1 */
    eplb_sim_source_free(src);
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &flat[0][0][0]));
    ncaptured = 0;
    eplb_assert_ok(eplb_sim_replay(res, src, &t1, 1, &o));
    cr_assert_eq(ncaptured, 4);
    eplb_sim_results_free(res, 1);
    eplb_sim_source_free(src);
}

/* results.h5 says what the table, JSON and summary.csv say (sim/output.c):
 * HDF5 has no null, so a run group leaves out what does not apply: none
 * has no trigger, async, chunk, window or interval, once no window or
 * interval, the oracle (its own schedule) all of them. */
Test(sim, results_h5_leaves_out_attrs_that_do_not_apply)
{
    enum { L = 1, E = 4, S = 4, RUNS = 4 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int e = 0; e < E; e++)
            counts[s][0][e] = e ? 10 : 50;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    eplb_sim_run_cfg_t r[RUNS] = {
        eplb_test_run_cfg("none", 2, 1, 6, EPLB_TRIGGER_VLLM, 1, 2),
        eplb_test_run_cfg("deepseek", 2, 1, 6, EPLB_TRIGGER_VLLM, 1, 2),
        eplb_test_run_cfg("deepseek", 2, 1, 6, EPLB_TRIGGER_ONCE, 1, 2),
        eplb_test_run_cfg("deepseek", 2, 1, 6, EPLB_TRIGGER_ORACLE, 1, 2)};
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.results_path = path;
    eplb_sim_result_t res[RUNS];
    eplb_assert_ok(eplb_sim_replay(res, src, r, RUNS, &o));
    static const char *const attrs[] = {"trigger", "async", "chunk", "window", "interval"};
    static const int want[RUNS][5] = {{0, 0, 0, 0, 0}, {1, 1, 1, 1, 1}, {1, 1, 1, 0, 0},
                                      {1, 1, 1, 1, 1}};
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
    for (int i = 0; i < RUNS; i++) {
        char name[32];
        snprintf(name, sizeof name, "/runs/%03d", i);
        hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
        cr_assert(g >= 0, "%s: no %s", path, name);
        cr_assert_gt(H5Aexists(g, "label"), 0);
        for (int k = 0; k < 5; k++)
            cr_assert_eq(H5Aexists(g, attrs[k]) > 0, want[i][k], "%s: attribute %s", name,
                         attrs[k]);
        H5Gclose(g);
    }
    H5Fclose(f);
    eplb_sim_results_free(res, RUNS);
    eplb_sim_source_free(src);
    unlink(path);
    rmdir(dir);
}

/* Token-level all-to-all by hand: 2 GPUs, tokens 0-1 from GPU 0 pick
 * experts {2, 3} (both on GPU 1: one copy), tokens 2-3 from GPU 1 pick
 * {0, 2} (one copy to GPU 0, one local).  Each GPU sends and receives 2. */
Test(sim, token_all_to_all_counts_copies_per_destination)
{
    int32_t ids[4][2] = {{2, 3}, {3, 2}, {0, 2}, {2, 0}};
    int64_t off[2] = {0, 4};
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, 1, 4, 2, 1, 1, off, &ids[0][0], NULL));
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_VLLM, 1, 4);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.results_path = path;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    double B = o.shape.hidden * (o.prof.dispatch_bytes + o.prof.combine_bytes);
    double want = 2 * o.prof.nvlink_lat + 2 * B / o.prof.nvlink_bw;
    cr_assert_float_eq(res.a2a_s, want, 1e-15, "a2a %g want %g", res.a2a_s, want);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
    unlink(path);
    rmdir(dir);
}

/* Token-level all-to-all by hand over 2 nodes: 4 GPUs (nodes {0, 1},
 * {2, 3}), 2 slots per GPU, expert e in slot e (GPU e / 2), token t from
 * GPU t:
 *   t0 (GPU 0) {4, 5, 2}: GPU 2 once (inter), GPU 1 (intra)
 *   t1 (GPU 1) {6, 4, 0}: GPUs 3, 2 (inter), GPU 0 (intra)
 *   t2 (GPU 2) {0, 1, 3}: GPU 0 once, GPU 1 (both inter)
 *   t3 (GPU 3) {7, 6, 5}: its own GPU twice (nothing), GPU 2 (intra)
 * Sent intra / inter per GPU: 1/1, 1/2, 0/2, 1/0; received: 1/1, 1/1,
 * 1/2, 0/1.  The busiest: 2 inter (GPUs 1, 2) and 1 intra, so
 * a2a = 2 (NVLink + network latency) + max(1 B / NVLink, 2 B / network). */
Test(sim, token_all_to_all_counts_across_nodes)
{
    int32_t ids[4][3] = {{4, 5, 2}, {6, 4, 0}, {0, 1, 3}, {7, 6, 5}};
    int64_t off[2] = {0, 4};
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, 1, 8, 3, 1, 1, off, &ids[0][0], NULL));
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 4, 2, 8, EPLB_TRIGGER_VLLM, 1, 4);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    double B = o.shape.hidden * (o.prof.dispatch_bytes + o.prof.combine_bytes);
    double want = 2 * (o.prof.nvlink_lat + o.prof.net_lat) +
                  fmax(1 * B / o.prof.nvlink_bw, 2 * B / o.prof.net_bw);
    cr_assert_float_eq(res.a2a_s, want, 1e-15, "a2a %g want %g", res.a2a_s, want);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* A time-series policy (named vec) gets the window step by step. */
static int series_steps_seen[8], nseries;
static float series_seen[8][3][2 * 4];

static eplb_status_t series_fn(int32_t *phy2log, int32_t *phyrank, const float *w,
                               int L, int E, const eplb_policy_args_t *a)
{
    (void)phyrank;
    (void)w;
    if (nseries < 8) {
        series_steps_seen[nseries] = a->series ? a->series_steps : -1;
        for (int s = 0; a->series && s < a->series_steps && s < 3; s++)
            memcpy(series_seen[nseries][s], a->series + (size_t)s * L * E,
                   (size_t)L * E * sizeof(float));
    }
    nseries++;
    memcpy(phy2log, a->old_phy2log, (size_t)L * a->num_replicas * sizeof *phy2log);
    return EPLB_OK;
}

Test(sim, vec_policy_gets_window_series)
{
    enum { L = 2, E = 4, S = 12 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = 100 * s + 10 * l + e;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_policy_t pol = {"vec", "test", series_fn, 1};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_VLLM, 3, 8);
    r.policy = &pol;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    nseries = 0;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    /* decisions before 2 (window [0, 2)) and 10 (window [7, 10)) */
    cr_assert_eq(nseries, 2);
    cr_assert_eq(series_steps_seen[0], 2);
    cr_assert_eq(series_steps_seen[1], 3);
    for (int s = 0; s < 3; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                cr_assert_float_eq(series_seen[1][s][l * E + e],
                                   (float)counts[7 + s][l][e], 0);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* The expert shape from the trace's model_config (a Hugging Face config's
 * hidden_size and moe_intermediate_size), else from the model name; a
 * model_config that is not JSON is said in the shape's source (found by
 * the tenth session's sweep: it was ignored silently). */
Test(sim, model_shape_from_config)
{
    eplb_model_shape_t m;
    eplb_sim_model_shape(&m, "x", "{\"hidden_size\": 2048, \"moe_intermediate_size\": 1408}");
    cr_assert_eq(m.hidden, 2048);
    cr_assert_eq(m.inter, 1408);
    cr_assert_eq(m.weight_bytes, 2);
    cr_assert(strstr(m.source, "model_config") != NULL, "%s", m.source);
    eplb_sim_model_shape(&m, "DeepSeek-V3", "{not json");
    cr_assert_eq(m.hidden, 7168); /* the name's shape */
    cr_assert(strstr(m.source, "model_config is not valid JSON") != NULL, "%s", m.source);
    eplb_sim_model_shape(&m, "DeepSeek-V3", NULL);
    cr_assert(strstr(m.source, "not valid") == NULL, "%s", m.source);
    /* sizes that cannot be used are said too (they fell back silently) */
    static const struct {
        const char *cfg, *said;
    } bad[] = {
        {"{\"hidden_size\": -5, \"moe_intermediate_size\": 1408}", "hidden_size -5 is ignored"},
        {"{\"hidden_size\": NaN, \"moe_intermediate_size\": 1408}", "hidden_size nan is ignored"},
        {"{\"hidden_size\": 2048, \"moe_intermediate_size\": 1e300}",
         "moe_intermediate_size 1e+300 is ignored"},
        {"{\"hidden_size\": 2048, \"intermediate_size\": \"big\"}",
         "intermediate_size is ignored (not a number)"},
        {"{\"hidden_size\": 2048}", "has no moe_intermediate_size"},
        /* a fraction was cut to 4096 silently (the conversion audit) */
        {"{\"hidden_size\": 4096.7, \"moe_intermediate_size\": 1408}",
         "hidden_size 4096.7 is ignored (not a whole number in [1, 1e6))"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eplb_sim_model_shape(&m, "DeepSeek-V3", bad[i].cfg);
        cr_assert_eq(m.hidden, 7168, "%s", bad[i].cfg); /* the name's shape */
        cr_assert(strstr(m.source, bad[i].said) != NULL, "%s: %s", bad[i].cfg, m.source);
    }
}

/* ---- mutation testing, third batch ---------------------------------------- */

/* The schedule's bounds (sim.h, docs/simulator.md): interval, window and
 * chunk >= 1, threshold in (0, 1], EMA decay in [0, 1), a window longer
 * than the interval refused except under trtllm (warm-up steps) and once
 * (no window), chunk:K with K up to 2^20 (mutants: interval, window or
 * chunk 0 accepted, decay 1 accepted, once refused, 2^20 refused). */
Test(sim, trigger_check_bounds)
{
    eplb_trigger_t t = EPLB_TRIGGER_INIT;
    t.window = 1;
    t.interval = 1;
    eplb_assert_ok(eplb_sim_trigger_check(&t));
    t.interval = 0;
    eplb_assert_fails(eplb_sim_trigger_check(&t), EPLB_ERR_INVALID_ARG,
                      "--interval: 0 must be >= 1");
    t.interval = 1;
    t.window = 0;
    eplb_assert_fails(eplb_sim_trigger_check(&t), EPLB_ERR_INVALID_ARG, "--window: 0 must be >= 1");
    t.window = 1;
    t.chunk = 0;
    eplb_assert_fails(eplb_sim_trigger_check(&t), EPLB_ERR_INVALID_ARG, "chunk");
    t.chunk = 1;
    t.threshold = 1;
    eplb_assert_ok(eplb_sim_trigger_check(&t));
    t.threshold = 0;
    eplb_assert_fails(eplb_sim_trigger_check(&t), EPLB_ERR_INVALID_ARG, "--threshold");
    t.threshold = 0.9;
    t.ema_decay = 0;
    eplb_assert_ok(eplb_sim_trigger_check(&t));
    t.ema_decay = 1;
    eplb_assert_fails(eplb_sim_trigger_check(&t), EPLB_ERR_INVALID_ARG, "--ema-decay");
    t.ema_decay = 0.95;
    /* W > I: refused for the windowed schedules, kept for trtllm and once */
    t.window = 10;
    t.interval = 5;
    static const eplb_trigger_kind_t kinds[] = {EPLB_TRIGGER_VLLM,   EPLB_TRIGGER_SGLANG,
                                                EPLB_TRIGGER_TRTLLM, EPLB_TRIGGER_THRESHOLD,
                                                EPLB_TRIGGER_ONCE,   EPLB_TRIGGER_ORACLE};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        t.kind = kinds[i];
        eplb_error_clear();
        const int ok = eplb_sim_trigger_check(&t) == EPLB_OK;
        cr_assert_eq(ok, kinds[i] == EPLB_TRIGGER_TRTLLM || kinds[i] == EPLB_TRIGGER_ONCE,
                     "%s with W 10 > I 5", eplb_sim_trigger_name(kinds[i]));
    }
    /* every schedule's name parses back to it */
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        eplb_trigger_kind_t k = EPLB_TRIGGER_VLLM;
        eplb_assert_ok(eplb_sim_trigger_parse(&k, eplb_sim_trigger_name(kinds[i])));
        cr_assert_eq(k, kinds[i]);
    }
    eplb_async_t a;
    int chunk = 0;
    eplb_assert_ok(eplb_sim_async_parse(&a, &chunk, "chunk:1048576"));
    cr_assert(a == EPLB_ASYNC_CHUNK && chunk == 1 << 20);
    eplb_assert_fails(eplb_sim_async_parse(&a, &chunk, "chunk:1048577"), EPLB_ERR_INVALID_ARG,
                      "--async");
}

/* Async layers: a decision that comes while layers of the previous one are
 * still pending is skipped (docs/simulator.md, "Commit modes").  6 layers,
 * vllm I = 4: decided before 1, layers committed at 2..7; the decision due
 * at 5 finds 3 pending and is skipped; the one at 9 runs, its layers 0 and
 * 1 committed at 10 and 11 (mutant: the pending check dropped). */
Test(sim, async_decision_while_pending_is_skipped)
{
    enum { L = 6, E = 8, S = 12 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = e == l ? 200 : 10 + e;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 8, EPLB_TRIGGER_VLLM, 1, 4);
    r.policy = &cap;
    r.trig.async = EPLB_ASYNC_LAYERS;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.keep_events = 1;
    ncaptured = 0;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_eq(ncaptured, 2);
    cr_assert_eq(res.rebalances, 2);
    cr_assert_eq(res.n_events, 8u);
    for (int i = 0; i < 8; i++) {
        const eplb_sim_event_t *ev = &res.events[i];
        cr_assert_eq(ev->decided, i < 6 ? 1 : 9, "event %d", i);
        cr_assert_eq(ev->step, i < 6 ? 2 + i : 10 + (i - 6), "event %d", i);
        cr_assert_eq(ev->layer, i < 6 ? i : i - 6, "event %d", i);
    }
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* The oracle's load is the NEXT W steps [s, s + W) of each decision
 * (docs/simulator.md, Triggers), the last decision's too: W 2, I 4 on 12
 * steps decides before 1, 5 and 9 on [1, 3), [5, 7), [9, 11) (mutants:
 * the windows one decision off, one step longer, steps before the first
 * decision counted, the last decision given no load). */
Test(sim, oracle_sees_each_next_window)
{
    enum { L = 2, E = 4, S = 12 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = 1000 * s + 10 * e + l + 1;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_ORACLE, 2, 4);
    r.policy = &cap;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    ncaptured = 0;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_eq(ncaptured, 3);
    const int at[3] = {1, 5, 9};
    for (int i = 0; i < 3; i++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++) {
                float want = (float)(counts[at[i]][l][e] + counts[at[i] + 1][l][e]);
                cr_assert_float_eq(captured[i][l * E + e], want, 0,
                                   "decision %d layer %d expert %d: %g, want %g", i, l, e,
                                   captured[i][l * E + e], want);
            }
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* The window a decision reads comes from the load ring: with 512 steps the
 * second block (steps 256-511) is written into it before the decision at
 * 256 reads [128, 256), so the ring must hold W + 256 steps
 * (sim_shared_t.H; mutant: one step less, step 511 overwrote step 128). */
Test(sim, window_survives_a_full_block_in_the_ring)
{
    enum { L = 1, E = 4, S = 512, W = 128 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int e = 0; e < E; e++)
            counts[s][0][e] = (s * 7 + e * 13) % 101 + (e == s % E ? 50 : 0);
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_SGLANG, W, W);
    r.policy = &cap;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    ncaptured = 0;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_eq(ncaptured, 3); /* before 128, 256 and 384 */
    for (int i = 0; i < 3; i++)
        for (int e = 0; e < E; e++) {
            int64_t want = 0;
            for (int s = i * W; s < (i + 1) * W; s++)
                want += counts[s][0][e];
            cr_assert_float_eq(captured[i][e], (float)want, 0,
                               "decision %d expert %d: %g, want %lld", i, e, captured[i][e],
                               (long long)want);
        }
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* Policy time, stalls and overhead by hand (docs/simulator.md, Cost model
 * and Rebalance cost), with a policy that keeps the placement (no weight
 * moves: every stall is policy time) and --policy-time 0.25 s:
 *   vllm, async off: decisions before 1 and 5, each stalls its step by
 *     the policy time: policy_s = stall_s = 0.5;
 *   trtllm (W 2, I 1): decisions before 2..7, hidden: policy_s 1.5, no
 *     stall;
 *   vllm, async layers: no stall; the events carry the policy time on the
 *     first layer of a decision only.
 * Overhead: a record_table (1 token: 1 us, 1001: 11 us) at the step's
 * tokens, entries / K = 200 / 2 = 100 on a counts trace: 1.99 us a layer,
 * 3.98 us a step; a record_us of 0 is no overhead (not the fraction).
 * total_s = S x (moe_time_s + overhead_s) + stall_s.  (Mutants: policy_s
 * only the last decision's, trtllm stalled by its policy, every layer's
 * event given the policy time, tokens = entries, overhead summed not per
 * step, total without overhead, record_us 0 taken as "none given".) */
Test(sim, policy_time_stalls_and_overhead_by_hand)
{
    enum { L = 2, E = 4, S = 8 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = 80 - 20 * e; /* 80 + 60 + 40 + 20 = 200 */
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t r[4] = {eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_VLLM, 1, 4),
                               eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_VLLM, 1, 4),
                               eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_TRTLLM, 2, 1),
                               eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_VLLM, 1, 4)};
    for (int i = 1; i < 4; i++)
        r[i].policy = &cap;
    r[3].trig.async = EPLB_ASYNC_LAYERS;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.policy_time = 0.25;
    o.keep_events = 1;
    o.prof.record_n = 2;
    o.prof.record_tokens[0] = 1;
    o.prof.record_t[0] = 1e-6;
    o.prof.record_tokens[1] = 1001;
    o.prof.record_t[1] = 11e-6;
    eplb_sim_result_t res[4];
    eplb_assert_ok(eplb_sim_replay(res, src, r, 4, &o));
    cr_assert(res[1].rebalances == 2 && res[2].rebalances == 6 && res[3].rebalances == 2);
    cr_assert_float_eq(res[1].policy_s, 0.5, 1e-15);
    cr_assert_float_eq(res[1].stall_s, 0.5, 1e-15);
    cr_assert_float_eq(res[2].policy_s, 1.5, 1e-15);
    cr_assert_float_eq(res[2].stall_s, 0, 0);
    cr_assert_float_eq(res[3].policy_s, 0.5, 1e-15);
    cr_assert_float_eq(res[3].stall_s, 0, 0);
    cr_assert_eq(res[3].n_events, 4u);
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(res[3].events[i].policy_s, res[3].events[i].layer == 0 ? 0.25 : 0, 0,
                           "event %d", i);
    cr_assert_float_eq(res[0].overhead_s, 0, 0);
    for (int i = 0; i < 4; i++) {
        if (i > 0)
            cr_assert_float_eq(res[i].overhead_s, L * 1.99e-6, 1e-15, "run %d: %g", i,
                               res[i].overhead_s);
        const double want = S * (res[i].moe_time_s + res[i].overhead_s) + res[i].stall_s;
        cr_assert_float_eq(res[i].total_s, want, 1e-12 * want, "run %d", i);
    }
    eplb_sim_results_free(res, 4);
    o.prof.record_n = 0;
    o.prof.record_s = 0;
    eplb_assert_ok(eplb_sim_replay(res, src, &r[1], 1, &o));
    cr_assert_float_eq(res[0].overhead_s, 0, 0);
    eplb_sim_results_free(res, 1);
    eplb_sim_source_free(src);
}

/* Profile values at the edges of what docs/simulator.md ("Hardware
 * profiles") allows: numbers >= 0 and <= 1e12, table tokens >= 1 and
 * strictly ascending, at most 64 points, record_fraction in [0, 1] (1
 * included), a key given once, dimensions within int; a table of the
 * model's format wins over a formatless one listed before it.  (Mutants:
 * each bound moved by one step or dropped.) */
Test(sim, profile_values_at_their_bounds)
{
    eplb_profile_t p;
    eplb_assert_fails(eplb_sim_profile_parse(&p, "nvlink_latency_us = -1\n", "f.txt"),
                      EPLB_ERR_FORMAT, "f.txt:1: nvlink_latency_us");
    eplb_assert_ok(eplb_sim_profile_parse(&p, "nvlink_latency_us = 1e12\n", "f.txt"));
    cr_assert_float_eq(p.nvlink_lat, 1e6, 1e-6);
    eplb_assert_fails(eplb_sim_profile_parse(&p, "nvlink_latency_us = 2e12\n", "f.txt"),
                      EPLB_ERR_FORMAT, "too large");
    eplb_assert_fails(eplb_sim_profile_parse(&p, "record_table = 0.5:1 10:2\n", "f.txt"),
                      EPLB_ERR_FORMAT, ">= 1 and ascending");
    eplb_assert_fails(eplb_sim_profile_parse(&p, "record_table = 1:1 10:2 10:3\n", "f.txt"),
                      EPLB_ERR_FORMAT, ">= 1 and ascending");
    char pts[2048] = "record_table =";
    for (int k = 1; k <= 64; k++)
        snprintf(pts + strlen(pts), sizeof pts - strlen(pts), " %d:1", k);
    eplb_assert_ok(eplb_sim_profile_parse(&p, pts, "f.txt"));
    cr_assert_eq(p.record_n, 64);
    snprintf(pts + strlen(pts), sizeof pts - strlen(pts), " 65:1");
    eplb_assert_fails(eplb_sim_profile_parse(&p, pts, "f.txt"), EPLB_ERR_FORMAT,
                      "at most 64 points");
    eplb_assert_ok(eplb_sim_profile_parse(&p, "record_fraction = 1\n", "f.txt"));
    cr_assert_float_eq(p.record_frac, 1, 0);
    eplb_assert_fails(eplb_sim_profile_parse(&p, "record_fraction = 1.5\n", "f.txt"),
                      EPLB_ERR_FORMAT, "f.txt:1: record_fraction");
    eplb_assert_fails(eplb_sim_profile_parse(&p, "hbm_TBps = 3\n\nhbm_TBps = 4\n", "f.txt"),
                      EPLB_ERR_FORMAT, "f.txt:3: hbm_TBps given twice");
    /* 4294974464 = 2^32 + 7168: wrapped, it read as 7168 */
    eplb_assert_fails(eplb_sim_profile_parse(&p, "gemm_table.4294974464x2048 = 1:5\n", "f.txt"),
                      EPLB_ERR_FORMAT, "gemm_table.HIDDENxINTER");
    eplb_assert_ok(eplb_sim_profile_parse(&p,
                                          "gemm_table.7168x2048 = 1:50\n"
                                          "gemm_table.7168x2048.fp8 = 1:10\n",
                                          "f.txt"));
    eplb_model_shape_t m = {7168, 2048, 1, ""};
    const eplb_gemm_table_t *t = eplb_sim_profile_table(&p, &m);
    cr_assert(t != NULL && t->weight_bytes == 1 && fabs(t->s[0] - 10e-6) < 1e-15);
    m.weight_bytes = 2; /* no BF16 table: the formatless one */
    t = eplb_sim_profile_table(&p, &m);
    cr_assert(t != NULL && t->weight_bytes == 0 && fabs(t->s[0] - 50e-6) < 1e-15);
}

/* Model names match in any case (sim/profile.c table), and a size of 0 in
 * model_config is not a size (whole numbers in [1, 1e6)).  (Mutants: a
 * case-sensitive match, 0 accepted.) */
Test(sim, model_shape_name_any_case_and_zero_size_ignored)
{
    eplb_model_shape_t m;
    eplb_sim_model_shape(&m, "Qwen/Qwen3-30B-A3B", NULL);
    cr_assert(m.hidden == 2048 && m.inter == 768 && m.weight_bytes == 2, "%d x %d, %g", m.hidden,
              m.inter, m.weight_bytes);
    eplb_sim_model_shape(&m, "deepseek-ai/ESFT-vanilla-lite", NULL);
    cr_assert(m.hidden == 2048 && m.inter == 1408, "%d x %d", m.hidden, m.inter);
    eplb_sim_model_shape(&m, "Qwen3-30B-A3B",
                         "{\"hidden_size\": 0, \"moe_intermediate_size\": 1408}");
    cr_assert(m.hidden == 2048 && m.inter == 768, "%d x %d", m.hidden, m.inter);
    cr_assert(strstr(m.source, "hidden_size 0 is ignored") != NULL, "%s", m.source);
}

/* A policy that returns a fixed placement (layer 0's row for every layer). */
static int32_t fixed_row[8];

static eplb_status_t fixed_fn(int32_t *phy2log, int32_t *phyrank, const float *w, int L, int E,
                              const eplb_policy_args_t *a)
{
    (void)phyrank;
    (void)w;
    (void)E;
    for (int l = 0; l < L; l++)
        memcpy(phy2log + (size_t)l * a->num_replicas, fixed_row,
               (size_t)a->num_replicas * sizeof *phy2log);
    return EPLB_OK;
}

/* One weight move by hand (docs/simulator.md, Rebalance cost): 3 experts
 * on 2 GPUs of 2 slots, [0 1 | 2 0] -> [0 0 | 2 1] at the decision before
 * step 2.  Slot 1 takes expert 0, which GPU 0 holds: a local copy; slot 3
 * takes expert 1 from GPU 0 over NVLink.  moved_replicas 2 (local copies
 * included), moved_bytes one expert, and the step's stall the transfer:
 * GPU 0's B / nvlink_bw + 2 B / hbm_bw (read and write of its local copy)
 * + the NVLink latency.  (Mutants: the transfer not charged as stall,
 * local copies left out of moved_replicas.) */
Test(sim, one_move_counted_and_stalled_by_hand)
{
    enum { L = 1, E = 3, S = 4 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int e = 0; e < E; e++)
            counts[s][0][e] = 10 * (e + 1);
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    const int32_t row[4] = {0, 0, 2, 1};
    memcpy(fixed_row, row, sizeof row);
    eplb_policy_t fix = {"fixed", "test", fixed_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_SGLANG, 2, 2);
    r.policy = &fix;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.keep_events = 1;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    const double B = 3.0 * 7168 * 2048; /* DeepSeek-V3, FP8 */
    const double want = B / o.prof.nvlink_bw + 2 * B / o.prof.hbm_bw + o.prof.nvlink_lat;
    cr_assert_eq(res.rebalances, 1);
    cr_assert_eq(res.moved_replicas, 2);
    cr_assert_eq(res.moved_bytes, (int64_t)B);
    cr_assert_float_eq(res.stall_s, want, 1e-15, "stall %g, want %g", res.stall_s, want);
    cr_assert_eq(res.n_events, 1u);
    const eplb_sim_event_t *ev = &res.events[0];
    cr_assert(ev->step == 2 && ev->moved == 2 && ev->local == 1 && ev->intra == 1 &&
              ev->inter == 0);
    cr_assert_float_eq(ev->stall_s, want, 1e-15);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* The threshold trigger's prediction by hand (docs/simulator.md: each
 * expert's load split evenly over its replicas, GPU g holding slots
 * [g P/D, (g+1) P/D)), with a policy that counts its calls:
 *   4 experts on 2 GPUs of 2 slots, loads 100 100 10 10: GPUs 200 and 20,
 *     predicted 110 / 200 = 0.55 < 0.9: both decisions (before 1 and 5)
 *     call the policy;
 *   3 experts on 4 slots [0 1 | 2 0], loads 400 50 150: GPUs 200 + 50 and
 *     150 + 200, predicted 300 / 350 = 0.857: called under 0.88, skipped
 *     under 0.85.
 * (Mutants: slots dealt to GPUs round robin, which gives the first case
 * 110 / 110 = 1; the load not split over replicas, 500 / 550 = 0.909.) */
Test(sim, threshold_prediction_by_hand)
{
    enum { S = 8 };
    static const struct {
        int E;
        int32_t load[4];
        double threshold;
        int calls;
    } cases[] = {
        {4, {100, 100, 10, 10}, 0.9, 2},
        {3, {400, 50, 150, 0}, 0.88, 2},
        {3, {400, 50, 150, 0}, 0.85, 0},
    };
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int E = cases[c].E;
        static int32_t counts[S * 4];
        for (int s = 0; s < S; s++)
            memcpy(counts + (size_t)s * E, cases[c].load, (size_t)E * sizeof *counts);
        eplb_sim_source_t *src;
        eplb_assert_ok(eplb_sim_source_arrays(&src, 1, E, 1, 1, S, NULL, NULL, counts));
        eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_THRESHOLD, 1, 4);
        r.policy = &cap;
        r.trig.threshold = cases[c].threshold;
        eplb_sim_opts_t o = eplb_test_sim_opts();
        ncaptured = 0;
        eplb_sim_result_t res;
        eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
        cr_assert_eq(ncaptured, cases[c].calls, "case %zu: %d calls, want %d", c, ncaptured,
                     cases[c].calls);
        eplb_sim_results_free(&res, 1);
        eplb_sim_source_free(src);
    }
}

/* TensorRT-LLM with --async chunk:2 (docs/simulator.md, Commit modes: for
 * trtllm, K is the number of layers re-placed per decision): 3 layers,
 * W 2, I 1 on 6 steps, decisions before 2, 3, 4 and 5, each committing
 * its 2 layers at once, round robin: (0 1) (2 0) (1 2) (0 1), one policy
 * call per layer.  (Mutant: trtllm under chunk:K queued as an async
 * commit, one decision's layers over the next steps.) */
Test(sim, trtllm_chunk_replaces_k_layers_at_the_decision)
{
    enum { L = 3, E = 4, S = 6 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = 10 * (e + 1) + s + l;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_TRTLLM, 2, 1);
    r.policy = &cap;
    r.trig.async = EPLB_ASYNC_CHUNK;
    r.trig.chunk = 2;
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.keep_events = 1;
    ncaptured = 0;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_eq(res.rebalances, 4);
    cr_assert_eq(ncaptured, 8);
    cr_assert_eq(res.n_events, 8u);
    const int layer[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    for (int i = 0; i < 8; i++) {
        const eplb_sim_event_t *ev = &res.events[i];
        cr_assert(ev->step == 2 + i / 2 && ev->decided == ev->step && ev->layer == layer[i],
                  "event %d: step %lld decided %lld layer %d", i, (long long)ev->step,
                  (long long)ev->decided, ev->layer);
    }
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* The worst layer by hand (docs/simulator.md, Outputs: the lowest mean
 * balancedness over steps, and its index), none on 2 GPUs of 2 slots:
 * layer 0 loads 30 10 | 10 10 -> GPUs 40, 20: 30 / 40 = 0.75 every step;
 * layer 1 likewise; layer 2 loads 10 10 | 10 10 -> 1.  Layers 0 and 1 tie:
 * the first of them is named.  (Mutants: the mean over steps and layers
 * instead of steps, the last tied layer named.) */
Test(sim, worst_layer_by_hand)
{
    enum { L = 3, E = 4, S = 5 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = l < 2 && e == 0 ? 30 : 10;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_VLLM, 1, 4);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_eq(res.worst_layer, 0);
    cr_assert_float_eq(res.worst_layer_bal, 0.75, 1e-12, "%g", res.worst_layer_bal);
    cr_assert_float_eq(res.balancedness, (0.75 + 0.75 + 1) / 3, 1e-12);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* A scalar attribute of results.h5 as int64 (the file's int64 or double). */
static int64_t h5_attr_i64(const char *path, const char *obj, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", path);
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(a >= 0, "%s: no attribute %s of %s", path, name, obj);
    int64_t v = -1;
    cr_assert(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    return v;
}

/* results.h5 holds what the run did (docs/simulator.md, results.h5
 * layout): the fixed placement of one_move_counted_and_stalled_by_hand on
 * 2 layers, decided before step 2 of 4, gives two events (one per layer
 * commit, step 2), num_steps 4, moved_replicas 4 and moved_bytes two
 * experts.  (Mutants: events kept only with keep_events, so the file's
 * were empty; moved_bytes written as the replica count; num_steps as the
 * run count.) */
Test(sim, results_h5_events_and_totals_of_a_move)
{
    enum { L = 2, E = 3, S = 4 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = 10 * (e + 1);
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    const int32_t row[4] = {0, 0, 2, 1};
    memcpy(fixed_row, row, sizeof row);
    eplb_policy_t fix = {"fixed", "test", fixed_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_SGLANG, 2, 2);
    r.policy = &fix;
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.results_path = path;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    const int64_t B = 3LL * 7168 * 2048;
    cr_assert_eq(h5_attr_i64(path, "/", "num_steps"), S);
    cr_assert_eq(h5_attr_i64(path, "/runs/000", "moved_replicas"), 2 * L);
    cr_assert_eq(h5_attr_i64(path, "/runs/000", "moved_bytes"), L * B);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/runs/000/events", H5P_DEFAULT);
    cr_assert(d >= 0);
    hid_t sp = H5Dget_space(d);
    cr_assert_eq(H5Sget_simple_extent_npoints(sp), L);
    typedef struct {
        int64_t step;
        int32_t layer, moved;
    } ev_t;
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(ev_t));
    H5Tinsert(mt, "step", HOFFSET(ev_t, step), H5T_NATIVE_INT64);
    H5Tinsert(mt, "layer", HOFFSET(ev_t, layer), H5T_NATIVE_INT32);
    H5Tinsert(mt, "moved", HOFFSET(ev_t, moved), H5T_NATIVE_INT32);
    ev_t ev[L];
    cr_assert(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, ev) >= 0);
    for (int l = 0; l < L; l++)
        cr_assert(ev[l].step == 2 && ev[l].layer == l && ev[l].moved == 2, "event %d", l);
    H5Tclose(mt);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
    unlink(path);
    rmdir(dir);
}

/* gain_vs_none is against the none run of the same D, N and P
 * (docs/simulator.md): with none runs at (D 2, N 1, P 4), (2, 1, 6) and
 * (2, 2, 6), a run at (2, 2, 6) compares with the third.  (Mutants: the
 * nodes or the slots left out of the match.) */
Test(sim, gain_against_the_none_of_the_same_shape)
{
    eplb_sim_result_t r[4];
    memset(r, 0, sizeof r);
    const int shape[4][3] = {{2, 1, 4}, {2, 1, 6}, {2, 2, 6}, {2, 2, 6}};
    const double total[4] = {10, 8, 5, 4};
    for (int i = 0; i < 4; i++) {
        snprintf(r[i].policy, sizeof r[i].policy, "%s", i < 3 ? "none" : "deepseek");
        r[i].cfg.num_gpus = shape[i][0];
        r[i].cfg.num_nodes = shape[i][1];
        r[i].cfg.num_slots = shape[i][2];
        r[i].total_s = total[i];
    }
    eplb_sim_results_compare(r, 4);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].baseline, i, "none run %d", i);
        cr_assert_float_eq(r[i].gain_vs_none, 0, 0);
    }
    cr_assert_eq(r[3].baseline, 2);
    cr_assert_float_eq(r[3].gain_vs_none, 100.0 * (5 - 4) / 5, 1e-12);
}

/* An arrays source refuses what no trace could hold (sim.h): top-K of
 * fewer than K experts, no layers, a negative step count, token ids
 * without offsets.  (Mutant: K > E accepted.) */
Test(sim, arrays_source_refuses_bad_shapes)
{
    int32_t counts[8] = {0}, ids[8] = {0};
    const int64_t off[2] = {0, 1};
    eplb_sim_source_t *src = NULL;
    eplb_assert_fails(eplb_sim_source_arrays(&src, 1, 4, 8, 1, 1, NULL, NULL, counts),
                      EPLB_ERR_INVALID_ARG, "bad shape");
    eplb_assert_fails(eplb_sim_source_arrays(&src, 0, 4, 2, 1, 1, NULL, NULL, counts),
                      EPLB_ERR_INVALID_ARG, "bad shape");
    eplb_assert_fails(eplb_sim_source_arrays(&src, 1, 4, 2, 1, -1, NULL, NULL, counts),
                      EPLB_ERR_INVALID_ARG, "bad shape");
    eplb_assert_fails(eplb_sim_source_arrays(&src, 1, 4, 2, 1, 1, NULL, ids, NULL),
                      EPLB_ERR_INVALID_ARG, "bad shape");
    cr_assert_null(src);
    eplb_assert_ok(eplb_sim_source_arrays(&src, 1, 4, 4, 1, 1, off, ids, NULL));
    eplb_sim_source_free(src);
}

/* Cost model pieces no test pinned (found by mutation testing, fourth
 * batch; each passed the suite before), by hand from docs/simulator.md
 * ("Cost model"), with B = H x (dispatch + combine) = 100 x 2 = 200 bytes
 * per entry:
 * (a) the roofline's memory side is divided by the efficiency too: 10
 *     tokens read 36000 B (roofline_and_all_to_all_by_hand), at 1e12 B/s
 *     x 0.5 = 72 ns (the compute side, 3e5 FLOP / 0.5e15, is 0.6 ns);
 * (b) one node of 4 GPUs pays the NVLink latency only: the GPU with 20
 *     entries gets (4 - 1) / 4 of them over NVLink, 15 x 200 B / 1e11 =
 *     30 ns, so 2 x 1 us + 30 ns (not + 2 x the 10 us network latency);
 * (c) with counted traffic a GPU's NVLink share is the larger of what it
 *     sends and receives: GPU 0 sends 9 entries, GPUs 1-3 receive 3 each,
 *     9 x 200 B / 1e11 = 18 ns (receives alone would give 6 ns). */
Test(sim, roofline_efficiency_and_one_node_all_to_all_by_hand)
{
    eplb_profile_t p;
    eplb_sim_profile_default(&p);
    p.gemm_eff = 0.5;
    p.hbm_bw = 1e12;
    p.flops_bf16 = 1e15;
    p.nvlink_bw = 1e11;
    p.net_bw = 1e10;
    p.nvlink_lat = 1e-6;
    p.net_lat = 1e-5;
    p.dispatch_bytes = 1;
    p.combine_bytes = 1;
    eplb_model_shape_t m = {100, 50, 2, "test"};
    eplb_cost_t c;
    eplb_sim_cost_init(&c, &p, &m, 4, 1, 8);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 10), 72e-9, 1e-15, "%g",
                       eplb_sim_cost_expert(&c, 10));
    int32_t slots[8] = {10, 0, 10, 10, 0, 0, 0, 0};
    int64_t g[4];
    eplb_layer_cost_t lc;
    eplb_sim_cost_layer(&lc, g, &c, slots, NULL, NULL, NULL, NULL);
    cr_assert_float_eq(lc.a2a_s, 2e-6 + 30e-9, 1e-13, "%g", lc.a2a_s);
    int64_t si[4] = {9, 0, 0, 0}, se[4] = {0}, ri[4] = {0, 3, 3, 3}, re[4] = {0};
    eplb_sim_cost_layer(&lc, g, &c, slots, si, se, ri, re);
    cr_assert_float_eq(lc.a2a_s, 2e-6 + 18e-9, 1e-13, "%g", lc.a2a_s);
}

/* A measured GEMM table of several points, past its last point, follows
 * the last segment's slope (docs/simulator.md): 64:10 128:14 us gives 12
 * us at 96 and 14 + 4 x (256 - 128) / 64 = 22 us at 256 (found by
 * mutation testing: a search running one point past the table's end). */
Test(sim, gemm_table_extrapolates_the_last_segment)
{
    eplb_profile_t p;
    eplb_assert_ok(
        eplb_sim_profile_parse(&p, "name = t\ngemm_table.100x50 = 64:10 128:14\n", "t.txt"));
    eplb_model_shape_t m = {100, 50, 2, "test"};
    eplb_cost_t c;
    eplb_sim_cost_init(&c, &p, &m, 4, 1, 8);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 96), 12e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 128), 14e-6, 1e-15);
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 256), 22e-6, 1e-15, "%g",
                       eplb_sim_cost_expert(&c, 256));
    cr_assert_float_eq(eplb_sim_cost_expert(&c, 10000), (14 + 4 * (10000 - 128) / 64.0) * 1e-6,
                       1e-12);
}

/* The move time counts, per GPU and tier, the larger of what it sends and
 * what it receives, and the sender within a node is its lowest-rank holder
 * (docs/simulator.md, "Weight moves"; found by mutation testing: sent
 * bytes only, received bytes only, and the last holder, each passed).
 * 30000 B per expert, 2 slots a GPU:
 * (a) one node of 3 GPUs: GPU 2 receives expert 0 from GPU 0 and expert
 *     2 from GPU 1: 2 x 30000 B / nvlink_bw + the NVLink latency;
 * (b) 3 nodes of one GPU: GPU 0 sends expert 0 to GPUs 1 and 2 over the
 *     network: 2 x 30000 B / net_bw + the network latency;
 * (c) one node of 4 GPUs, one slot each: GPU 3 needs expert 1, which GPUs
 *     1 and 2 hold: GPU 1 sends. */
Test(sim, move_time_per_tier_and_lowest_holder_by_hand)
{
    eplb_profile_t p;
    eplb_sim_profile_default(&p);
    eplb_model_shape_t m = {100, 100, 1, "test"};
    const double B = 30000;
    eplb_cost_t c;
    eplb_transfer_t t;
    int32_t sends[3 * 6];
    eplb_sim_cost_init(&c, &p, &m, 3, 1, 6);
    const int32_t old[6] = {0, 1, 2, 3, 4, 5}, to_gpu2[6] = {0, 1, 2, 3, 0, 2};
    eplb_assert_ok(eplb_sim_transfer_plan(&t, sends, old, to_gpu2, &c));
    cr_assert(t.moved == 2 && t.intra == 2 && t.inter == 0 && t.local == 0);
    cr_assert_float_eq(t.time_s, 2 * B / p.nvlink_bw + p.nvlink_lat, 1e-15, "%g", t.time_s);
    eplb_sim_cost_init(&c, &p, &m, 3, 3, 6);
    const int32_t from_gpu0[6] = {0, 1, 0, 3, 0, 5};
    eplb_assert_ok(eplb_sim_transfer_plan(&t, sends, old, from_gpu0, &c));
    cr_assert(t.moved == 2 && t.intra == 0 && t.inter == 2 && t.local == 0);
    cr_assert(sends[1] == 0 && sends[4] == 0);
    cr_assert_float_eq(t.time_s, 2 * B / p.net_bw + p.net_lat, 1e-15, "%g", t.time_s);
    eplb_sim_cost_init(&c, &p, &m, 4, 1, 4);
    const int32_t held[4] = {0, 1, 1, 2}, want[4] = {0, 1, 1, 1};
    eplb_assert_ok(eplb_sim_transfer_plan(&t, sends, held, want, &c));
    cr_assert(t.moved == 1 && t.intra == 1);
    cr_assert(sends[0] == 3 && sends[1] == 1 && sends[2] == 3, "sent from GPU %d", sends[1]);
}

/* summary.csv writes a null as an empty field (docs/simulator.md,
 * Outputs): a run without a baseline has gain_vs_none NaN, so its field is
 * empty, not "nan" (found by mutation testing: testing isinf for isnan
 * there passed the suite).  The column is found by the header's name. */
Test(sim, csv_gain_without_baseline_is_an_empty_field)
{
    eplb_sim_result_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.policy, sizeof r.policy, "deepseek");
    snprintf(r.label, sizeof r.label, "deepseek");
    r.cfg = eplb_test_run_cfg("deepseek", 2, 1, 4, EPLB_TRIGGER_VLLM, 1, 4);
    r.gain_vs_none = NAN;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    eplb_sim_write_csv(f, &r, 1);
    cr_assert_eq(fclose(f), 0);
    char *row = strchr(buf, '\n');
    cr_assert_not_null(row);
    *row++ = '\0';
    int col = -1, k = 0;
    for (char *h = buf, *end; h; h = end ? end + 1 : NULL, k++) {
        end = strchr(h, ',');
        size_t n = end ? (size_t)(end - h) : strlen(h);
        if (n == strlen("gain_vs_none") && !strncmp(h, "gain_vs_none", n))
            col = k;
    }
    cr_assert_geq(col, 0, "no gain_vs_none column: %s", buf);
    char *field = row;
    for (k = 0; k < col; k++)
        field = strchr(field, ',') + 1;
    cr_assert_eq(*field, ',', "gain_vs_none is \"%.8s...\", want empty: %s", field, row);
    free(buf);
}

/* A table cell one character wider than its column widens the column
 * (docs/simulator.md, Outputs: no cell is cut, and every row's '|' stays
 * under the header's): a label of 18 characters against the policy
 * column's 17 (found by mutation testing: widening only past one extra
 * character passed the suite, whose wide cells were all far wider). */
Test(sim, table_cell_one_wider_than_its_column_widens_it)
{
    eplb_sim_result_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.policy, sizeof r.policy, "deepseek");
    snprintf(r.label, sizeof r.label, "deepseek-w18charsX");
    cr_assert_eq(strlen(r.label), 18);
    r.cfg = eplb_test_run_cfg("deepseek", 2, 1, 4, EPLB_TRIGGER_VLLM, 1, 4);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    eplb_sim_print_table(f, &r, 1);
    cr_assert_eq(fclose(f), 0);
    char *row = strchr(buf, '\n');
    cr_assert_not_null(row);
    *row++ = '\0';
    cr_assert(!strncmp(row, "deepseek-w18charsX ", 19), "label cut or joined: %s", row);
    const char *hs = strstr(buf, " | "), *rs = strstr(row, " | ");
    cr_assert(hs && rs);
    cr_assert_eq(rs - row, hs - buf, "'|' at %td, header's at %td:\n%s\n%s", rs - row, hs - buf,
                 buf, row);
    free(buf);
}

/* ---- mutation testing of sim/replay.c ------------------------------------ */

/* The logical load a decision gets from a token trace is, per (layer,
 * expert), the number of the window's (token, k) entries naming that
 * expert, invalid ids (-1, E, E + 3) left out (docs/simulator.md, Triggers
 * and "Invalid expert ids").  10 layers: the counting jobs take 8 layers
 * each (sim/replay.c COUNT_LAYERS), so layers 7 and 8 sit on either side
 * of a job's edge; an id E in layer l would land on layer l + 1's expert
 * 0 if it were counted (layers 6 and 7 hold some).  sglang W = I = 4
 * on 9 steps decides before 4 and 8 on [0, 4) and [4, 8); counted here
 * token by token, with the default blocks (one) and with blocks of one
 * step (read ahead).  (Mutants: the last layer of a full job left out
 * (M02), an id equal to E counted (M04).) */
Test(sim, token_load_counts_every_layer_and_only_valid_ids)
{
    enum { L = 10, E = 8, K = 2, S = 9, D = 2 };
    const int steps[S] = {5, 3, 0, 4, 6, 2, 5, 3, 4};
    int64_t off[S + 1] = {0};
    for (int s = 0; s < S; s++)
        off[s + 1] = off[s] + steps[s];
    const int64_t T = off[S];
    int32_t *ids = malloc((size_t)T * L * K * sizeof *ids);
    cr_assert_not_null(ids);
    uint64_t x = 2026;
    for (int64_t t = 0; t < T; t++)
        for (int l = 0; l < L; l++) {
            int32_t *row = ids + ((size_t)t * L + l) * K;
            row[0] = (int32_t)(eplb_test_rng_next(&x) % E);
            row[1] = (row[0] + 1 + (int32_t)(eplb_test_rng_next(&x) % (E - 1))) % E;
        }
    /* invalid ids in every window, on both sides of the job edge */
    const int64_t bad_tok[4] = {0, 6, 9, 16};
    for (int i = 0; i < 4; i++) {
        ids[((size_t)bad_tok[i] * L + 7) * K + 1] = E;
        ids[((size_t)bad_tok[i] * L + 6) * K + 0] = E;
        ids[((size_t)bad_tok[i] * L + 8) * K + 0] = -1;
        ids[((size_t)bad_tok[i] * L + 2) * K + 1] = E + 3;
    }
    /* the windows' loads, counted here */
    float want[2][L * E];
    memset(want, 0, sizeof want);
    for (int d = 0; d < 2; d++)
        for (int64_t t = off[4 * d]; t < off[4 * d + 4]; t++)
            for (int l = 0; l < L; l++)
                for (int k = 0; k < K; k++) {
                    int32_t e = ids[((size_t)t * L + l) * K + k];
                    if (e >= 0 && e < E)
                        want[d][l * E + e] += 1;
                }
    cr_assert_gt(want[0][7 * E + 0] + want[1][7 * E + 0], 0); /* layer 7 has load */
    const int64_t blocks[2] = {0, 1};
    for (int b = 0; b < 2; b++) {
        eplb_sim_source_t *src;
        eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, K, 1, S, off, ids, NULL));
        eplb_policy_t cap = {"capture", "test", capture_fn, 0};
        eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", D, 1, E, EPLB_TRIGGER_SGLANG, 4, 4);
        r.policy = &cap;
        eplb_sim_opts_t o = eplb_test_sim_opts();
        o.block_tokens = blocks[b];
        ncaptured = 0;
        eplb_sim_result_t res;
        eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
        cr_assert_eq(ncaptured, 2, "blocks %lld: %d decisions", (long long)blocks[b], ncaptured);
        for (int d = 0; d < 2; d++)
            for (int i = 0; i < L * E; i++)
                cr_assert_float_eq(captured[d][i], want[d][i], 0,
                                   "blocks %lld, decision %d, layer %d expert %d: %g, want %g",
                                   (long long)blocks[b], d, i / E, i % E, captured[d][i],
                                   want[d][i]);
        eplb_sim_results_free(&res, 1);
        eplb_sim_source_free(src);
    }
    free(ids);
}

/* A series policy (reads_series) that keeps up to 300 steps of 4
 * (layer, expert) loads. */
static float long_series[300][4];
static int long_series_steps, nlong;

static eplb_status_t long_series_fn(int32_t *phy2log, int32_t *phyrank, const float *w, int L,
                                    int E, const eplb_policy_args_t *a)
{
    (void)phyrank;
    (void)w;
    cr_assert_eq(L * E, 4);
    long_series_steps = a->series ? a->series_steps : -1;
    for (int s = 0; a->series && s < a->series_steps && s < 300; s++)
        memcpy(long_series[s], a->series + (size_t)s * 4, sizeof long_series[s]);
    nlong++;
    memcpy(phy2log, a->old_phy2log, (size_t)L * a->num_replicas * sizeof *phy2log);
    return EPLB_OK;
}

/* --trigger once places once from the whole trace (docs/simulator.md,
 * Triggers): its policy gets each (layer, expert)'s count summed over
 * every step, and a series policy the trace step by step, as rebalance
 * gives it a 3-D logical_count.  300 steps of counts are two blocks
 * (256 + 44 steps), read in pass 1; the loads change every step, so a sum
 * of some steps only or a series out of order shows.  The sums are
 * recomputed here.  (Mutants: the whole-trace load made the last step's
 * (M11), the series indexed by the step in its block, so that the second
 * block overwrote the first's start (M12), no series (M22), one step short
 * (M23).) */
Test(sim, once_gets_the_whole_trace_summed_and_step_by_step)
{
    enum { L = 1, E = 4, S = 300 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int e = 0; e < E; e++)
            counts[s][0][e] = (s * 13 + e * 7) % 29 + (e == s % E ? 40 : 0);
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_sim_opts_t o = eplb_test_sim_opts();
    eplb_sim_result_t res;
    /* the sum */
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, E, EPLB_TRIGGER_ONCE, 1, 1);
    r.policy = &cap;
    ncaptured = 0;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_eq(ncaptured, 1);
    for (int e = 0; e < E; e++) {
        int64_t sum = 0;
        for (int s = 0; s < S; s++)
            sum += counts[s][0][e];
        cr_assert_float_eq(captured[0][e], (float)sum, 0, "expert %d: %g, want %lld", e,
                           captured[0][e], (long long)sum);
    }
    eplb_sim_results_free(&res, 1);
    /* the series */
    eplb_policy_t vec = {"vec", "test", long_series_fn, 1};
    r.policy = &vec;
    nlong = 0;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_eq(nlong, 1);
    cr_assert_eq(long_series_steps, S, "series of %d steps, want %d", long_series_steps, S);
    for (int s = 0; s < S; s++)
        for (int e = 0; e < E; e++)
            cr_assert_float_eq(long_series[s][e], (float)counts[s][0][e], 0,
                               "step %d expert %d: %g, want %d", s, e, long_series[s][e],
                               counts[s][0][e]);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}

/* A policy that always fails, with its own message. */
static eplb_status_t refusing_fn(int32_t *phy2log, int32_t *phyrank, const float *w, int L, int E,
                                 const eplb_policy_args_t *a)
{
    (void)phy2log;
    (void)phyrank;
    (void)w;
    (void)L;
    (void)E;
    (void)a;
    return eplb_error_set(EPLB_ERR_INVALID_ARG, "refusing test policy: no placement");
}

/* A policy's failure fails the replay with the policy's status and
 * message (STYLE.md 7: logged once, then propagated), wherever the call
 * is: the once placement before step 0, and an online decision of a run
 * that is not the first (the runs' errors are gathered after each block;
 * run 0, none, never fails).  (Mutants: the once policy's status dropped
 * (M24), only run 0's error looked at (M33).) */
Test(sim, a_policy_failure_fails_the_replay)
{
    enum { L = 1, E = 4, S = 8 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int e = 0; e < E; e++)
            counts[s][0][e] = 10 + e + s;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_sim_opts_t o = eplb_test_sim_opts();
    eplb_policy_t bad = {"refusing", "test", refusing_fn, 0};
    eplb_sim_result_t res[2];
    /* once: the call before step 0 */
    eplb_sim_run_cfg_t once = eplb_test_run_cfg("none", 2, 1, E, EPLB_TRIGGER_ONCE, 1, 1);
    once.policy = &bad;
    eplb_assert_fails(eplb_sim_replay(res, src, &once, 1, &o), EPLB_ERR_INVALID_ARG,
                      "refusing test policy: no placement");
    /* online, in the second of two runs (vllm I 4: the first call before
     * step 1), on one worker thread and on two */
    eplb_sim_run_cfg_t two[2] = {eplb_test_run_cfg("none", 2, 1, E, EPLB_TRIGGER_VLLM, 2, 4),
                                 eplb_test_run_cfg("none", 2, 1, E, EPLB_TRIGGER_VLLM, 2, 4)};
    two[1].policy = &bad;
    for (int th = 1; th <= 2; th++) {
        o.threads = th;
        eplb_assert_fails(eplb_sim_replay(res, src, two, 2, &o), EPLB_ERR_INVALID_ARG,
                          "refusing test policy: no placement");
    }
    eplb_sim_source_free(src);
}

/* Events are appended to results.h5 after every block and, with
 * keep_events, also stay in the results (sim.h): each event once, in
 * order, in both.  600 steps of counts are blocks [0, 256), [256, 512),
 * [512, 600); sglang I = W = 100 decides before 100, 200, ..., 500, one
 * event per layer (L = 1) each, two in the first block and three in the
 * second.  (Mutants: the events already written not remembered, so the
 * first block's went in again (M16); the kept events dropped after each
 * block (M17); a block's new events written from the first one kept
 * (M41).) */
Test(sim, events_of_every_block_written_once_and_kept)
{
    enum { L = 1, E = 4, S = 600, NDEC = 5 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int e = 0; e < E; e++)
            counts[s][0][e] = 10 + (s + e) % 7;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 1, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_policy_t cap = {"capture", "test", capture_fn, 0};
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, E, EPLB_TRIGGER_SGLANG, 100, 100);
    r.policy = &cap;
    const char *dir = eplb_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/results.h5", dir);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.results_path = path;
    o.keep_events = 1;
    ncaptured = 0;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_eq(ncaptured, NDEC);
    cr_assert_eq(res.n_events, (size_t)NDEC, "%zu events kept, want %d", res.n_events, NDEC);
    for (int i = 0; i < NDEC; i++)
        cr_assert(res.events[i].step == 100 * (i + 1) && res.events[i].decided == 100 * (i + 1),
                  "kept event %d: step %lld", i, (long long)res.events[i].step);
    size_t nb;
    hsize_t dims[4];
    unsigned char *raw = read_raw(path, "/runs/000/events", &nb, dims);
    cr_assert_eq(dims[0], (hsize_t)NDEC, "%llu events in results.h5, want %d",
                 (unsigned long long)dims[0], NDEC);
    free(raw);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/runs/000/events", H5P_DEFAULT);
    cr_assert(d >= 0);
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(int64_t));
    H5Tinsert(mt, "step", 0, H5T_NATIVE_INT64);
    int64_t step[NDEC];
    cr_assert(H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, step) >= 0);
    for (int i = 0; i < NDEC; i++)
        cr_assert_eq(step[i], 100 * (i + 1), "results.h5 event %d: step %lld, want %d", i,
                     (long long)step[i], 100 * (i + 1));
    H5Tclose(mt);
    H5Dclose(d);
    H5Fclose(f);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
    unlink(path);
    rmdir(dir);
}

/* A once run's policy is deployed offline (docs/simulator.md, Rebalance
 * cost): its one call's time is reported as policy_s, in no stall and not
 * in total_s.  --policy-time 0.25: policy_s 0.25, stall_s 0, total_s =
 * S x (moe_time_s + overhead_s); --policy-time 0 (the number for
 * bit-reproducible outputs): policy_s 0, not the call's measured time.
 * (Mutants: the time charged as stall (M25); a policy time of 0 taken as
 * "measure" (M43).) */
Test(sim, once_policy_time_reported_not_stalled)
{
    enum { L = 2, E = 4, S = 6 };
    static int32_t counts[S][L][E];
    for (int s = 0; s < S; s++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                counts[s][l][e] = e == l ? 300 : 20 + s;
    eplb_sim_source_t *src;
    eplb_assert_ok(eplb_sim_source_arrays(&src, L, E, 2, 1, S, NULL, NULL, &counts[0][0][0]));
    eplb_sim_run_cfg_t r = eplb_test_run_cfg("deepseek", 2, 1, 6, EPLB_TRIGGER_ONCE, 1, 1);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    o.policy_time = 0.25;
    eplb_sim_result_t res;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert_float_eq(res.policy_s, 0.25, 0, "policy_s %g", res.policy_s);
    cr_assert_float_eq(res.stall_s, 0, 0, "stall_s %g", res.stall_s);
    cr_assert_eq(res.rebalances, 0);
    cr_assert_float_eq(res.total_s, S * (res.moe_time_s + res.overhead_s), 1e-12, "total_s %g",
                       res.total_s);
    eplb_sim_results_free(&res, 1);
    o.policy_time = 0;
    eplb_assert_ok(eplb_sim_replay(&res, src, &r, 1, &o));
    cr_assert(res.policy_s == 0, "--policy-time 0: policy_s %g", res.policy_s);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
}
