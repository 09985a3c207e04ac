/* test_bad_input.c - the product as a user meets it, fed bad input: every
 * command answers an impossible option with exit 2, a bad file with exit 1,
 * names the option or the file (and the field), crashes on nothing and
 * leaves no half-written output under a final name.  Regression tests of
 * the problems found in the QA pass of 2026-11-28 (each test says which).
 * Malformed traces at the API level are covered by test_trace_errors.c;
 * here they go through the commands that read them. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "trace.h"
#include "trace_fixtures.h"

/* A small valid trace: S steps of TPS tokens, L layers, E experts, top-K,
 * with logits or counts only; if nan_at >= 0, the float32 logit at that
 * flat index is then overwritten with NaN through HDF5 (the writer refuses
 * to write one). */
static const char *make_trace(const char *dir, const char *name, int L, int E, int K,
                              int S, int TPS, unsigned levels, int nan_at)
{
    const char *path = eplb_test_path(dir, name);
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "test_bad_input.c", L, E, K, levels);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    float *lg = malloc(sizeof(float) * (size_t)TPS * L * E);
    int32_t *cn = malloc(sizeof(int32_t) * (size_t)L * E);
    cr_assert(lg && cn);
    for (int s = 0; s < S; s++) {
        for (int i = 0; i < TPS * L * E; i++)
            lg[i] = (float)((i * 7 + s) % 11) - 5.0f;
        for (int i = 0; i < L * E; i++) /* each layer's row sums to K x TPS */
            cn[i] = i % E < K ? TPS : 0;
        eplb_assert_ok(eplb_trace_writer_append_step(
            w, TPS, levels & EPLB_LEVEL_LOGITS ? lg : NULL, NULL, NULL,
            levels & EPLB_LEVEL_COUNTS ? cn : NULL, NULL, 0));
    }
    eplb_assert_ok(eplb_trace_writer_finish(w));
    if (nan_at >= 0) {
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        cr_assert(f >= 0, "cannot reopen %s", path);
        hid_t ds = H5Dopen2(f, "/router/logits", H5P_DEFAULT);
        cr_assert(ds >= 0);
        hid_t fs = H5Dget_space(ds);
        hsize_t c[3] = {(hsize_t)(nan_at / (L * E)), (hsize_t)(nan_at / E % L),
                        (hsize_t)(nan_at % E)}, one = 1;
        hid_t ms = H5Screate_simple(1, &one, NULL);
        float v = NAN;
        cr_assert(H5Sselect_elements(fs, H5S_SELECT_SET, 1, c) >= 0);
        cr_assert(H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &v) >= 0);
        H5Sclose(ms);
        H5Sclose(fs);
        H5Dclose(ds);
        H5Fclose(f);
    }
    free(lg);
    free(cn);
    /* the path buffer rotates: hand back a stable copy */
    static _Thread_local char keep[4][4096];
    static _Thread_local int k;
    char *b = keep[k++ & 3];
    snprintf(b, sizeof keep[0], "%s", path);
    return b;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Found: `run --gpus 4,` and `--policy deepseek,,lpt` were accepted (the
 * empty element silently dropped). */
Test(bad_input, run_empty_list_elements)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(2, "--gpus: empty element", "run %s --quiet --gpus 4,", t);
    eplb_test_cli_expect(2, "--gpus: empty element", "run %s --quiet --gpus ,4", t);
    eplb_test_cli_expect(2, "--window: empty element", "run %s --quiet --window 1,,2", t);
    eplb_test_cli_expect(2, "--policy: empty element", "run %s --quiet --policy deepseek,,lpt",
                         t);
    eplb_test_cli_expect(2, "--policy: empty element", "run %s --quiet --policy lpt,", t);
    eplb_test_cli_expect(2, "--gpus: empty list", "run %s --quiet --gpus ''", t);
    unlink(t);
    rmdir(d);
}

/* Found: `run --gpus 4294967300` ran with D = 4 (the value was cast to int
 * after a range check of 2^40); the same for --nodes and --replicas. */
Test(bad_input, run_values_beyond_int)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(2, "--gpus: 4294967300 is outside", "run %s --quiet --gpus 4294967300",
                         t);
    eplb_test_cli_expect(2, "--nodes: 4294967300 is outside",
                         "run %s --quiet --gpus 4 --nodes 4294967300", t);
    eplb_test_cli_expect(2, "--replicas: 4294967304 is outside",
                         "run %s --quiet --gpus 4 --replicas 4294967304", t);
    eplb_test_cli_expect(2, "--threads: 100000 is outside", "run %s --quiet --threads 100000",
                         t);
    eplb_test_cli_expect(2, "--seed", "run %s --quiet --seed 99999999999999999999", t);
    eplb_test_cli_expect(2, "--gpus: '4x' is not an integer", "run %s --quiet --gpus 4x", t);
    /* single-valued options took the first of a list */
    eplb_test_cli_expect(2, "--threads: one value", "run %s --quiet --threads 2,4", t);
    eplb_test_cli_expect(2, "--seed: one value", "run %s --quiet --seed 1,2", t);
    unlink(t);
    rmdir(d);
}

/* Found: `run --replicas 2000000000` failed late with "run state: out of
 * memory" (exit 1, no option named).  Slots x layers are bounded up front. */
Test(bad_input, run_slots_times_layers_bounded)
{
    const char *d = eplb_test_tmpdir();
    /* 100 layers x 2^20 slots > 2^26 */
    const char *t = make_trace(d, "wide.h5", 100, 8, 2, 1, 4, EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(2, "--replicas: 1048576 slots per layer x 100 layers",
                         "run %s --quiet --gpus 4 --replicas 1048576", t);
    eplb_test_cli_expect(2, "--redundant", "run %s --quiet --gpus 4 --redundant 1048000", t);
    unlink(t);
    rmdir(d);
}

/* Found: a grid of 64 x 64 x (1 + 2 x 64 x 64) runs was started (minutes of
 * allocation and GBs before any output).  The grid size is bounded. */
Test(bad_input, run_grid_bounded)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    char list[400] = "1";
    for (int i = 2; i <= 64; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), ",%d", i);
    eplb_test_cli_expect(2, "runs; at most", "run %s --quiet --gpus %s --redundant %s "
                         "--window %s --interval %s --policy deepseek,lpt", t, list, list,
                         list, list);
    unlink(t);
    rmdir(d);
}

/* Found: `run --window 1000000000000` died with "sim/replay.c:206: out of
 * memory": the load history was sized by the window, not by the trace.  A
 * window longer than the trace is all of the trace. */
Test(bad_input, run_window_longer_than_trace)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 6, 6, EPLB_LEVEL_COUNTS, -1);
    char *a = NULL, *b = NULL;
    int rc = eplb_test_run_cli(&a, "run %s --quiet --gpus 4 --policy-time 0 --window "
                               "1000000000000 --interval 1000000000000", t);
    cr_assert_eq(rc, 0, "%s", a);
    /* the same as the window of exactly the trace (6 steps) */
    rc = eplb_test_run_cli(&b, "run %s --quiet --gpus 4 --policy-time 0 --window 6 "
                           "--interval 1000000000000", t);
    cr_assert_eq(rc, 0, "%s", b);
    /* the deepseek rows agree right of the '|' (the W column differs) */
    const char *ra = strstr(a, "\ndeepseek"), *rb = strstr(b, "\ndeepseek");
    cr_assert(ra && rb, "%s\n%s", a, b);
    ra = strchr(ra, '|');
    rb = strchr(rb, '|');
    cr_assert(ra && rb);
    size_t la = strcspn(ra, "\n"), lb = strcspn(rb, "\n");
    cr_assert(la == lb && !strncmp(ra, rb, la), "window 10^12 != window 6:\n%s\n%s", a, b);
    free(a);
    free(b);
    unlink(t);
    rmdir(d);
}

/* Found: a huge --max-moves reached migration-aware's "4 * max_moves"
 * (signed overflow under UBSan; `rebalance --max-moves 1000000000`). */
Test(bad_input, max_moves_huge)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(0, NULL, "run %s --quiet --gpus 4 --policy migration-aware "
                         "--max-moves 1e300 --policy-time 0", t);
    const char *w = eplb_test_path(d, "w.csv");
    eplb_test_write_text(w, "1,2,3,4\n5,6,7,8\n");
    eplb_test_cli_expect(0, "\"phy2log\"", "rebalance --weights %s --replicas 8 --gpus 4 "
                         "--policy migration-aware --max-moves 1000000000", w);
    eplb_test_cli_expect(2, "--max-moves: -2", "rebalance --weights %s --replicas 8 --gpus 4 "
                         "--max-moves -2", w);
    unlink(t);
    unlink(w);
    rmdir(d);
}

/* Found: an --out directory whose results.h5 (or summary.json) was a
 * directory was noticed only after the whole replay (and after some files
 * were already renamed into place).  Now it is refused first, and nothing
 * is written. */
Test(bad_input, run_out_blocked_name)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    char out[2048], blk[4096], cfg[4096];
    snprintf(out, sizeof out, "%s", eplb_test_path(d, "out"));
    snprintf(blk, sizeof blk, "%s/summary.json", out);
    snprintf(cfg, sizeof cfg, "%s/config.json", out);
    cr_assert(mkdir(out, 0777) == 0 && mkdir(blk, 0777) == 0);
    eplb_test_cli_expect(1, "summary.json exists and is not a regular file",
                         "run %s --quiet --gpus 4 --out %s", t, out);
    cr_assert(!exists(cfg), "config.json written although the run was refused");
    rmdir(blk);
    /* onto an existing file: not a directory */
    const char *f = eplb_test_path(d, "file");
    eplb_test_write_text(f, "x");
    eplb_test_cli_expect(1, "is not a directory", "run %s --quiet --out %s", t, f);
    unlink(f);
    rmdir(out);
    unlink(t);
    rmdir(d);
}

/* A run that fails on its data (a NaN logit) leaves no output directory it
 * created and no results file, final or temporary. */
Test(bad_input, run_failed_leaves_nothing)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "nan.h5", 2, 8, 2, 3, 4, EPLB_LEVEL_LOGITS, 5);
    char out[4096];
    snprintf(out, sizeof out, "%s", eplb_test_path(d, "newout"));
    eplb_test_cli_expect(1, "NaN or Inf logit", "run %s --quiet --gpus 4 --out %s", t, out);
    cr_assert(!exists(out), "%s left behind by a failed run", out);
    /* into an existing directory: it stays, empty */
    cr_assert(mkdir(out, 0777) == 0);
    eplb_test_cli_expect(1, "/router/logits", "run %s --quiet --gpus 4 --out %s", t, out);
    cr_assert(rmdir(out) == 0, "%s is not empty after a failed run", out);
    unlink(t);
    rmdir(d);
}

/* Found: `--profile DIR` said only "read error"; `--profile /dev/zero`
 * read until memory ran out. */
Test(bad_input, run_profile_not_a_profile)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(1, "Is a directory", "run %s --quiet --profile %s", t, d);
    eplb_test_cli_expect(1, "/dev/zero: larger than", "run %s --quiet --profile /dev/zero", t);
    unlink(t);
    rmdir(d);
}

/* Found: a profile key given twice was silently overridden, and a zero
 * bandwidth or gemm_efficiency 7 got one message for all fields. */
Test(bad_input, profile_fields_named)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    char p[4096];
    snprintf(p, sizeof p, "%s", eplb_test_path(d, "p.txt"));
    eplb_test_write_text(p, "name = x\nnvlink_GBps = 450\nnvlink_GBps = 1\n");
    eplb_test_cli_expect(1, "p.txt:3: nvlink_GBps given twice", "run %s --quiet --profile %s",
                         t, p);
    eplb_test_write_text(p, "name = x\nnet_Gbps = 0\n");
    eplb_test_cli_expect(1, "p.txt: net_Gbps must be > 0", "run %s --quiet --profile %s", t, p);
    eplb_test_write_text(p, "name = x\ngemm_efficiency = 7\n");
    eplb_test_cli_expect(1, "p.txt: gemm_efficiency = 7 is not in (0, 1]",
                         "run %s --quiet --profile %s", t, p);
    eplb_test_write_text(p, "name = x\nrecord_fraction = 2\n");
    eplb_test_cli_expect(1, "record_fraction = 2", "run %s --quiet --profile %s", t, p);
    unlink(p);
    unlink(t);
    rmdir(d);
}

/* A truncated trace, through every command that reads one. */
Test(bad_input, truncated_trace_all_commands)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "lg.h5", 3, 16, 2, 4, 8, EPLB_LEVEL_LOGITS, -1);
    size_t n = 0;
    unsigned char *bytes = eplb_test_slurp(t, &n);
    const char *cut = eplb_test_path(d, "cut.h5");
    char cutp[4096];
    snprintf(cutp, sizeof cutp, "%s", cut);
    size_t sizes[] = {0, 8, 512, n / 2, n - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        FILE *f = fopen(cutp, "wb");
        cr_assert(f != NULL);
        cr_assert_eq(fwrite(bytes, 1, sizes[i], f), sizes[i]);
        fclose(f);
        eplb_test_cli_expect(1, cutp, "info %s", cutp);
        eplb_test_cli_expect(1, cutp, "run %s --quiet", cutp);
        eplb_test_cli_expect(1, cutp, "bench io %s --repeat 1 --threads 1", cutp);
    }
    free(bytes);
    unlink(cutp);
    unlink(t);
    rmdir(d);
}

/* Found: /load/counts stored as int64 with a count of 2^40 was read as
 * 2^31-1 (HDF5 clamps on conversion) and replayed without a word. */
Test(bad_input, counts_wider_than_int32)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c64.h5", 2, 8, 2, 3, 4, EPLB_LEVEL_COUNTS, -1);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(t, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    cr_assert(H5Ldelete(f, "/load/counts", H5P_DEFAULT) >= 0);
    hsize_t dims[3] = {3, 2, 8};
    int64_t v[3 * 2 * 8];
    for (int i = 0; i < 48; i++)
        v[i] = i % 8 < 2 ? 4 : 0;
    v[17] = (int64_t)1 << 40;
    hid_t sp = H5Screate_simple(3, dims, NULL);
    hid_t ds = H5Dcreate2(f, "/load/counts", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    cr_assert(ds >= 0);
    cr_assert(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, t));
    int32_t got[48];
    eplb_assert_fails(eplb_trace_read_counts(tr, got, 0, 3), EPLB_ERR_FORMAT,
                      "/load/counts: a value in rows [0, 3) is outside the range of int32");
    cr_assert(strstr(eplb_error_last(), t) != NULL, "%s", eplb_error_last());
    eplb_assert_ok(eplb_trace_read_counts(tr, got, 0, 1)); /* step 0 is fine */
    cr_assert_eq(got[0], 4);
    eplb_trace_close(tr);
    eplb_test_cli_expect(1, "outside the range of int32", "run %s --quiet --gpus 4", t);
    unlink(t);
    rmdir(d);
}

/* Found: a dangling soft link at /router/topk_ids was taken for an absent
 * dataset ("no data level" when it was the only level). */
Test(bad_input, dangling_link)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 3, 4, EPLB_LEVEL_COUNTS, -1);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(t, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    cr_assert(H5Lcreate_soft("/nowhere", f, "/router/topk_ids", lcpl, H5P_DEFAULT) >= 0);
    H5Pclose(lcpl);
    H5Fclose(f);
    eplb_trace_t *tr = (eplb_trace_t *)0x1;
    eplb_assert_fails(eplb_trace_open(&tr, t), EPLB_ERR_FORMAT,
                      "/router/topk_ids is a link that leads nowhere");
    cr_assert(strstr(eplb_error_last(), t) != NULL);
    cr_assert_eq(tr, (eplb_trace_t *)0x1);
    eplb_test_cli_expect(1, "leads nowhere", "info %s", t);
    unlink(t);
    rmdir(d);
}

/* Found: `info` read no /steps/phase values, so a phase of 5 passed. */
Test(bad_input, info_checks_phase)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 3, 4, EPLB_LEVEL_COUNTS, -1);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(t, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    if (H5Lexists(f, "/steps/phase", H5P_DEFAULT) > 0)
        cr_assert(H5Ldelete(f, "/steps/phase", H5P_DEFAULT) >= 0);
    hsize_t n = 3;
    uint8_t ph[3] = {0, 1, 5};
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t ds = H5Dcreate2(f, "/steps/phase", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    cr_assert(ds >= 0);
    cr_assert(H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, ph) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    eplb_test_cli_expect(1, "/steps/phase: step 2: phase 5", "info %s", t);
    eplb_test_cli_expect(0, "(+phase)", "info %s --no-skew", t); /* reads no bulk data */
    unlink(t);
    rmdir(d);
}

/* rebalance: found `--gpus 0` reported as a missing option, a negative
 * --layer-offset accepted, --replicas 2e9 allocating 68 GB, and bad loads /
 * old placements read from a file reported without the file's name (their
 * exit status 2 is what test_rebalance_cli.c asks for). */
Test(bad_input, rebalance_options_and_files)
{
    const char *d = eplb_test_tmpdir();
    char w[4096], wn[4096], wj[4096], old[4096];
    snprintf(w, sizeof w, "%s", eplb_test_path(d, "w.csv"));
    snprintf(wn, sizeof wn, "%s", eplb_test_path(d, "nan.csv"));
    snprintf(wj, sizeof wj, "%s", eplb_test_path(d, "neg.json"));
    snprintf(old, sizeof old, "%s", eplb_test_path(d, "old.json"));
    eplb_test_write_text(w, "1,2,3,4\n5,6,7,8\n");
    eplb_test_write_text(wn, "1,nan,3,4\n");
    eplb_test_write_text(wj, "[[1,-2,3,4]]\n");
    eplb_test_write_text(old, "[[0,1,2,3,0,1,2,9],[0,1,2,3,0,1,2,3]]\n");
    eplb_test_cli_expect(2, "gpus 0", "rebalance --weights %s --replicas 8 --gpus 0", w);
    eplb_test_cli_expect(2, "--replicas: 2000000000 is more than",
                         "rebalance --weights %s --replicas 2000000000 --gpus 4", w);
    eplb_test_cli_expect(2, "--layer-offset: -5", "rebalance --weights %s --replicas 8 --gpus 4 "
                         "--export trtllm --layer-offset -5", w);
    eplb_test_cli_expect(2, "nan.csv: layer 0 expert 1 is nan",
                         "rebalance --weights %s --replicas 8 --gpus 4", wn);
    eplb_test_cli_expect(2, "neg.json: layer 0 expert 1 is -2",
                         "rebalance --weights %s --replicas 8 --gpus 4", wj);
    eplb_test_cli_expect(2, "old.json (--old): layer 0 slot 7 holds expert 9",
                         "rebalance --weights %s --replicas 8 --gpus 4 --old %s --policy none",
                         w, old);
    eplb_test_cli_expect(1, "Is a directory", "rebalance --weights %s --replicas 8 --gpus 4", d);
    unlink(w);
    unlink(wn);
    unlink(wj);
    unlink(old);
    rmdir(d);
}

/* bench: found atoi() options (`bench sim --gpus 5x` ran with 5, --layers
 * 100000 ran out of memory, --steps 1e14 ran for ever, --gpus 100000 took
 * 13 GB), `bench kernels --reps 0` and `--tokens 64,` accepted, and `bench
 * policy --weights` of the wrong shape printing the table header before a
 * usage error that did not name the file. */
Test(bad_input, bench_options)
{
    eplb_test_cli_expect(2, "--gpus: expected an integer", "bench sim --gpus 5x");
    eplb_test_cli_expect(2, "--layers: expected an integer", "bench sim --layers 100000");
    eplb_test_cli_expect(2, "--steps: expected an integer", "bench sim --steps 99999999999999");
    eplb_test_cli_expect(2, "--gpus: expected an integer", "bench sim --gpus 100000");
    eplb_test_cli_expect(2, "unknown option", "bench sim --bogus");
    eplb_test_cli_expect(2, "unexpected argument 'extra'", "bench sim extra");
    eplb_test_cli_expect(2, "--reps: expected an integer", "bench kernels --device cpu --reps 0");
    eplb_test_cli_expect(2, "--tokens: bad list", "bench kernels --device cpu --tokens 64,");
    eplb_test_cli_expect(2, "--experts: expected an integer",
                         "bench kernels --device cpu --experts 8x");
    const char *d = eplb_test_tmpdir();
    char w[4096];
    snprintf(w, sizeof w, "%s", eplb_test_path(d, "small.json"));
    eplb_test_write_text(w, "[[1,2,3,4],[5,6,7,8]]\n");
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench policy --weights %s --repeat 1 --policy deepseek",
                               w);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "small.json (--weights)") != NULL, "%s", out);
    cr_assert(strstr(out, "median_us") == NULL, "header printed before the error: %s", out);
    free(out);
    unlink(w);
    rmdir(d);
}

/* Found: `run` and `info` exited 0 when their stdout could not be written
 * (a full disk: /dev/full). */
Test(bad_input, stdout_write_error)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    static const char *const cmds[] = {"run %s --gpus 4", "run %s --gpus 4 --json",
                                       "info %s"};
    char err[4096];
    snprintf(err, sizeof err, "%s", eplb_test_path(d, "err"));
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, cmds[i], t);
        /* the helper appends 2>&1: keep stderr apart, in a file */
        int rc = eplb_test_run_cli(NULL, "%s >/dev/full 2>%s; exit $?", cmd, err);
        cr_assert_eq(rc, 1, "%s >/dev/full: exit %d", cmd, rc);
        size_t n = 0;
        char *msg = (char *)eplb_test_slurp(err, &n);
        cr_assert(strstr(msg, "stdout: write error") != NULL, "%s: stderr '%s'", cmd, msg);
        free(msg);
    }
    unlink(err);
    unlink(t);
    rmdir(d);
}

/* Every --help exits 0 and prints the text on stdout (stderr discarded). */
Test(bad_input, help_on_stdout)
{
    static const char *const cmds[] = {"", "run", "info", "gen", "import", "rebalance",
                                       "bench", "bench io", "bench kernels", "bench policy",
                                       "bench sim"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out = NULL;
        /* the helper appends 2>&1; `exit` keeps it off the command's stderr */
        int rc = eplb_test_run_cli(&out, "%s --help 2>/dev/null; exit $?", cmds[i]);
        cr_assert_eq(rc, 0, "'%s --help' exit %d", cmds[i], rc);
        cr_assert(strstr(out, "usage:") != NULL, "'%s --help' stdout lacks usage: %s",
                  cmds[i], out);
        free(out);
    }
}

/* Found: an empty path ("") was tried as a file ("eplb-replay run: :
 * cannot open trace") and `--out ""` failed only after the replay. */
Test(bad_input, empty_paths)
{
    eplb_test_cli_expect(2, "TRACE.h5: empty path", "run ''");
    eplb_test_cli_expect(2, "--out: empty path", "run x.h5 --out ''");
    eplb_test_cli_expect(2, "--profile: empty path", "run x.h5 --profile ''");
    eplb_test_cli_expect(2, "TRACE.h5: empty path", "info ''");
    eplb_test_cli_expect(2, "TRACE.h5: empty path", "bench io ''");
    eplb_test_cli_expect(2, "--weights: empty path", "rebalance --weights '' --replicas 8 "
                         "--gpus 4");
    eplb_test_cli_expect(2, "--weights: empty path", "bench policy --weights ''");
}

/* Exit codes: no arguments or an unknown command is a usage error. */
Test(bad_input, usage_exit_codes)
{
    eplb_test_cli_expect(2, "usage:", "%s", "");
    eplb_test_cli_expect(2, "unknown option", "info --bogus x.h5");
    eplb_test_cli_expect(2, "missing TRACE.h5", "run");
    eplb_test_cli_expect(1, "cannot open trace", "run /nonexistent/x.h5");
}
