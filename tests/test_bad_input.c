/* test_bad_input.c - the product as a user meets it, fed bad input: every
 * command answers an impossible option with exit 2, a bad file with exit 1,
 * names the option or the file (and the field), crashes on nothing and
 * leaves no half-written output under a final name.  Regression tests of
 * the problems found in the QA pass of 2026-11-28 (each test says which).
 * Malformed traces at the API level are covered by test_trace_errors.c;
 * here they go through the commands that read them. */
#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gen.h"
#include "helpers.h"
#include "kernels.h"
#include "policy.h"
#include "results.h"
#include "tmpfile_guard.h"
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
        const hsize_t c[3] = {(hsize_t)(nan_at / (L * E)), (hsize_t)(nan_at / E % L),
                              (hsize_t)(nan_at % E)};
        const float v = NAN;
        eplb_test_h5_poke(path, "/router/logits", c, H5T_NATIVE_FLOAT, &v);
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

/* A trace at path of S steps of TPS tokens with top-K ids and the counts
 * they give: token i of step s picks experts (m i + s + 3 k + l) mod E in
 * layer l.  row (E counts): the counts of step rs, layer rl. */
static void write_ids_counts_trace(const char *path, int L, int E, int K, int S, int TPS, int m,
                                   int rs, int rl, int32_t *row)
{
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "test_bad_input.c", L, E, K,
                                                       EPLB_LEVEL_TOPK | EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)TPS * L * K);
    int32_t *cn = malloc(sizeof(int32_t) * (size_t)L * E);
    cr_assert(ids && cn);
    for (int s = 0; s < S; s++) {
        memset(cn, 0, sizeof(int32_t) * (size_t)L * E);
        for (int i = 0; i < TPS; i++)
            for (int l = 0; l < L; l++)
                for (int k = 0; k < K; k++) {
                    int e = (m * i + s + 3 * k + l) % E;
                    ids[(i * L + l) * K + k] = e;
                    cn[l * E + e]++;
                }
        eplb_assert_ok(eplb_trace_writer_append_step(w, TPS, NULL, ids, NULL, cn, NULL, 0));
        if (s == rs)
            memcpy(row, cn + (size_t)rl * E, sizeof(int32_t) * (size_t)E);
    }
    eplb_assert_ok(eplb_trace_writer_finish(w));
    free(ids);
    free(cn);
}

/* Found (eighteenth session's sweep): /load/counts beside topk_ids or
 * logits were never read, so a count of 2^31 - 1 passed `info` and `run`.
 * A trace of ids and the matching counts; then one count changed: `info`
 * compares the totals, `run` every step.  Beside logits (no exact ids) a
 * negative count is still refused by the reader's checks. */
Test(bad_input, counts_beside_ids_are_checked)
{
    enum { L = 2, E = 8, K = 2, S = 3, TPS = 5 };
    const char *d = eplb_test_tmpdir();
    const char *t = eplb_test_path(d, "ic.h5");
    char keep[4096];
    snprintf(keep, sizeof keep, "%s", t);
    t = keep;
    int32_t row1[E];
    write_ids_counts_trace(t, L, E, K, S, TPS, 1, 1, 1, row1);
    eplb_test_cli_expect(0, NULL, "info %s", t);
    eplb_test_cli_expect(0, NULL, "run %s --quiet --gpus 2 --policy-time 0", t);
    /* step 1, layer 1: one entry moved from expert e2 to expert 3, so that
     * the row's sum stays within K x tokens and only the ids tell */
    int e2 = 0;
    while (e2 == 3 || row1[e2] == 0)
        e2++;
    const hsize_t c[3] = {1, 1, 3}, c2[3] = {1, 1, (hsize_t)e2};
    const int32_t v = row1[3] + 1, v2 = row1[e2] - 1;
    eplb_test_h5_poke(t, "/load/counts", c, H5T_NATIVE_INT32, &v);
    eplb_test_h5_poke(t, "/load/counts", c2, H5T_NATIVE_INT32, &v2);
    char want[160]; /* the first expert that differs */
    snprintf(want, sizeof want, "/load/counts disagree with /router/topk_ids: layer 1 expert %d",
             e2 < 3 ? e2 : 3);
    eplb_test_cli_expect(1, want, "info %s", t);
    snprintf(want, sizeof want,
             "/load/counts disagree with /router/topk_ids: step 1 layer 1 expert %d",
             e2 < 3 ? e2 : 3);
    eplb_test_cli_expect(1, want, "run %s --quiet --gpus 2 --policy-time 0", t);
    /* once and oracle read the trace twice: the counts are checked in the
     * first pass (the second reuses its ids) */
    eplb_test_cli_expect(1, want, "run %s --quiet --gpus 2 --policy-time 0 --trigger once", t);
    eplb_test_cli_expect(1, want,
                         "run %s --quiet --gpus 2 --policy-time 0 --trigger oracle --window 1 "
                         "--interval 3",
                         t);
    unlink(t);
    /* beside logits: the reader's own checks */
    const char *tl = make_trace(d, "lc.h5", L, E, K, S, TPS, EPLB_LEVEL_LOGITS |
                                                                 EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(0, NULL, "info %s", tl);
    const int32_t neg = -4;
    eplb_test_h5_poke(tl, "/load/counts", c, H5T_NATIVE_INT32, &neg);
    eplb_test_cli_expect(1, "/load/counts", "info %s", tl);
    eplb_test_cli_expect(1, "/load/counts", "run %s --quiet --gpus 2 --policy-time 0", tl);
    unlink(tl);
    rmdir(d);
}

/* /load/counts beside topk_ids are checked under the default trigger too
 * (vllm on a trace of 4 steps or more: one pass, no cached ids), in every
 * block, and a count above what the ids give is as bad as one below: 6
 * steps of 1000 tokens are read in blocks [0, 4) and [4, 6) (the first
 * block at most 4096 tokens); step 5, layer 0, one entry moved from
 * expert b to a lower expert a (the row's sum stays K x tokens, so only
 * the ids tell).  The first (layer, expert) that differs is a, whose count
 * is the higher; the message names the step in the trace.  (Mutation
 * testing of sim/replay.c: only counts below the ids refused, which named
 * b (M08); the check made only where pass 1 had cached the ids (M09); the
 * step named counted from the block's first (M49).) */
Test(bad_input, counts_above_the_ids_are_refused_without_once)
{
    enum { L = 2, E = 8, K = 2, S = 6, TPS = 1000 };
    const char *d = eplb_test_tmpdir();
    char t[4096];
    snprintf(t, sizeof t, "%s", eplb_test_path(d, "ica.h5"));
    int32_t row[E] = {0};
    write_ids_counts_trace(t, L, E, K, S, TPS, 2, 5, 0, row); /* step 5, layer 0 */
    eplb_test_cli_expect(0, NULL, "run %s --quiet --gpus 2 --policy-time 0", t);
    /* b: the highest expert with a count; a: any lower one */
    int b = E - 1;
    while (row[b] == 0)
        b--;
    const int a = 0;
    cr_assert_gt(b, a);
    const hsize_t ca[3] = {5, 0, (hsize_t)a}, cb[3] = {5, 0, (hsize_t)b};
    const int32_t va = row[a] + 1, vb = row[b] - 1;
    eplb_test_h5_poke(t, "/load/counts", ca, H5T_NATIVE_INT32, &va);
    eplb_test_h5_poke(t, "/load/counts", cb, H5T_NATIVE_INT32, &vb);
    char want[200];
    snprintf(want, sizeof want,
             "/load/counts disagree with /router/topk_ids: step 5 layer 0 expert %d: counts %d, "
             "the ids %d",
             a, va, row[a]);
    eplb_test_cli_expect(1, want, "run %s --quiet --gpus 2 --policy-time 0", t);
    unlink(t);
    rmdir(d);
}

/* /load/counts beside logits are the server's own routing, which the CPU
 * routing may differ from at near-ties: they are read and bounds-checked
 * (above), never compared with the routed ids (sim/replay.c
 * check_counts).  Logits that rise with the expert id route every token to
 * experts 7 and 6; the counts say 0 and 1; `run` replays the routed ids.
 * (Mutation testing of sim/replay.c: the comparison made beside logits
 * too (M07).) */
Test(bad_input, counts_beside_logits_not_compared_with_the_routing)
{
    enum { L = 2, E = 8, K = 2, S = 4, TPS = 5 };
    const char *d = eplb_test_tmpdir();
    char t[4096];
    snprintf(t, sizeof t, "%s", eplb_test_path(d, "lcr.h5"));
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "test_bad_input.c", L, E, K,
                                                       EPLB_LEVEL_LOGITS | EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, t, &o));
    float lg[TPS * L * E];
    int32_t cn[L * E];
    for (int i = 0; i < TPS * L * E; i++)
        lg[i] = (float)(i % E) + 0.01f * (float)(i / E % 3);
    for (int i = 0; i < L * E; i++)
        cn[i] = i % E < K ? TPS : 0;
    for (int s = 0; s < S; s++)
        eplb_assert_ok(eplb_trace_writer_append_step(w, TPS, lg, NULL, NULL, cn, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_test_cli_expect(0, NULL, "run %s --quiet --gpus 2 --policy-time 0", t);
    eplb_test_cli_expect(0, NULL, "run %s --quiet --gpus 2 --policy-time 0 --trigger once", t);
    unlink(t);
    rmdir(d);
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
    /* past int64: out of range, not "not an integer" (the re-run sweep) */
    eplb_test_cli_expect(2, "--seed: 99999999999999999999 is outside",
                         "run %s --quiet --seed 99999999999999999999", t);
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
    /* 300 layers x 16384 slots > 2^22 (EPLB_MAX_LAYER_SLOTS) */
    const char *t = make_trace(d, "wide.h5", 300, 8, 2, 1, 4, EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(2, "--replicas: 16384 slots per layer x 300 layers",
                         "run %s --quiet --gpus 4 --replicas 16384", t);
    eplb_test_cli_expect(2, "--redundant", "run %s --quiet --gpus 4 --redundant 16000", t);
    /* and per layer: 2^20 slots are beyond EPLB_MAX_SLOTS (they ran for
     * minutes in some policies) */
    eplb_test_cli_expect(2, "--replicas", "run %s --quiet --gpus 4 --replicas 1048576", t);
    eplb_test_cli_expect(2, "--gpus", "run %s --quiet --gpus 8192", t);
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
                         "--max-moves 1000000000000 --policy-time 0", t);
    /* not an integer, or past int64: refused as rebalance does (the sweep:
     * run took 1e30 and 16.0, and clamped 99999999999999999999) */
    eplb_test_cli_expect(2, "--max-moves", "run %s --quiet --gpus 4 --max-moves 1e300", t);
    eplb_test_cli_expect(2, "--max-moves", "run %s --quiet --gpus 4 --max-moves 16.0", t);
    eplb_test_cli_expect(2, "--max-moves",
                         "run %s --quiet --gpus 4 --max-moves 99999999999999999999", t);
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
    cr_assert(!eplb_test_exists(cfg), "config.json written although the run was refused");
    rmdir(blk);
    /* onto an existing file: not a directory */
    const char *f = eplb_test_path(d, "file");
    eplb_test_write_text(f, "x");
    eplb_test_cli_expect(1, "is not a directory", "run %s --quiet --out %s", t, f);
    unlink(f);
    /* a symbolic link to nothing: said so, not "cannot create file X.tmp.PID" */
    const char *ln = eplb_test_path(d, "dangling");
    cr_assert(symlink("/nonexistent-eplb/dir", ln) == 0);
    eplb_test_cli_expect(1, "is a symbolic link to '/nonexistent-eplb/dir', which does not exist",
                         "run %s --quiet --gpus 4 --out %s", t, ln);
    unlink(ln);
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
    cr_assert(!eplb_test_exists(out), "%s left behind by a failed run", out);
    /* into an existing directory: it stays, empty */
    cr_assert(mkdir(out, 0777) == 0);
    eplb_test_cli_expect(1, "/router/logits", "run %s --quiet --gpus 4 --out %s", t, out);
    cr_assert(rmdir(out) == 0, "%s is not empty after a failed run", out);
    unlink(t);
    rmdir(d);
}

/* Found: `--profile DIR` said only "read error"; `--profile /dev/zero`
 * read until memory ran out.  Both are refused before the open now, as
 * not regular files. */
Test(bad_input, run_profile_not_a_profile)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(1, "not a regular file (it is a directory)",
                         "run %s --quiet --profile %s", t, d);
    eplb_test_cli_expect(1, "/dev/zero: not a regular file",
                         "run %s --quiet --profile /dev/zero", t);
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
    eplb_test_cli_expect(1, "p.txt:2: gemm_efficiency: '7' is not in (0, 1]",
                         "run %s --quiet --profile %s", t, p);
    eplb_test_write_text(p, "name = x\nrecord_fraction = 2\n");
    eplb_test_cli_expect(1, "p.txt:2: record_fraction: '2' is not in [0, 1]",
                         "run %s --quiet --profile %s", t, p);
    /* the value as written (it was printed rounded: 1.0000001 as 1) */
    eplb_test_write_text(p, "name = x\ngemm_efficiency = 1.0000001\n");
    eplb_test_cli_expect(1, "gemm_efficiency: '1.0000001' is not in (0, 1]",
                         "run %s --quiet --profile %s", t, p);
    /* values that made every modelled time inf, and the results null,
     * with exit 0 (the second sweep) */
    eplb_test_write_text(p, "name = x\ndispatch_bytes = 1e308\n");
    eplb_test_cli_expect(1, "p.txt:2: dispatch_bytes: '1e308' is too large (at most 1e12",
                         "run %s --quiet --profile %s", t, p);
    eplb_test_write_text(p, "name = x\ngemm_table.7168x2048.fp8 = 1:1e308\n");
    eplb_test_cli_expect(1, "'1e308' is too large", "run %s --quiet --profile %s", t, p);
    /* a rate below one byte per second made the modelled times inf (the
     * sweep: 2.3e-308 GB/s; 1e-10 GB/s is 0.1 B/s) */
    eplb_test_write_text(p, "name = x\nnvlink_GBps = 1e-10\n");
    eplb_test_cli_expect(1, "p.txt:2: nvlink_GBps: '1e-10' is below one unit per second",
                         "run %s --quiet --profile %s", t, p);
    /* net_Gbps too (its scale is 1e9 / 8: 1e-9 Gb/s is 0.125 B/s; it was
     * accepted, and 2.3e-308 gave null times with exit 0); 1e-8 Gb/s,
     * 1.25 bytes per second, is accepted */
    eplb_test_write_text(p, "name = x\nnet_Gbps = 1e-9\n");
    eplb_test_cli_expect(1, "p.txt:2: net_Gbps: '1e-9' is below one unit per second",
                         "run %s --quiet --profile %s", t, p);
    eplb_test_write_text(p, "name = x\nnet_Gbps = 1e-8\n");
    eplb_test_cli_expect(0, "", "run %s --quiet --profile %s", t, p);
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
        eplb_test_write_bytes(cutp, bytes, sizes[i]);
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

/* Found (eighteenth session's sweep): a fixed-length `model` of "to\0ky"
 * was read as "to"; NULs may pad the end only. */
Test(bad_input, string_attr_with_inner_nul)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 3, 4, EPLB_LEVEL_COUNTS, -1);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int inner = 1; inner >= 0; inner--) {
        hid_t f = H5Fopen(t, H5F_ACC_RDWR, H5P_DEFAULT);
        cr_assert(f >= 0);
        cr_assert(H5Adelete(f, "model") >= 0);
        hid_t ty = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
        H5Tset_size(ty, 5);
        H5Tset_strpad(ty, H5T_STR_NULLPAD);
        hid_t a = H5Acreate2(f, "model", ty, sp, H5P_DEFAULT, H5P_DEFAULT);
        cr_assert(a >= 0);
        cr_assert(H5Awrite(a, ty, inner ? "to\0ky" : "toky\0") >= 0);
        H5Aclose(a);
        H5Sclose(sp);
        H5Tclose(ty);
        H5Fclose(f);
        if (inner) {
            eplb_test_cli_expect(1, "root attribute 'model' holds a NUL byte at 2", "info %s", t);
        } else { /* padding at the end is fine */
            eplb_trace_t *tr = NULL;
            eplb_assert_ok(eplb_trace_open(&tr, t));
            cr_assert_str_eq(eplb_trace_info(tr)->model, "toky");
            eplb_trace_close(tr);
        }
    }
    unlink(t);
    rmdir(d);
}

/* Found: `info` read no /steps/phase values, so a phase of 5 passed; and
 * then `run` and `info --no-skew`, which read none, still passed it: the
 * open checks them now. */
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
    eplb_test_cli_expect(1, "/steps/phase: step 2: phase 5", "info %s --no-skew", t);
    eplb_test_cli_expect(1, "/steps/phase: step 2: phase 5", "run %s --quiet", t);
    unlink(t);
    rmdir(d);
}

/* rebalance: found `--gpus 0` reported as a missing option, a negative
 * --layer-offset accepted, --replicas 2e9 allocating 68 GB, and bad loads /
 * old placements read from a file reported without the file's name (a
 * malformed file: exit 1, as `rebalance --help` says). */
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
    /* past int: the range, where it read "is not an integer" */
    eplb_test_cli_expect(2, "--layer-offset: expected an integer in -2147483647..2147483647, "
                            "got '99999999999'",
                         "rebalance --weights %s --replicas 8 --gpus 4 --layer-offset 99999999999",
                         w);
    /* NaN or negative loads: a malformed file, exit 1 */
    eplb_test_cli_expect(1, "nan.csv: layer 0 expert 1 is nan",
                         "rebalance --weights %s --replicas 8 --gpus 4", wn);
    eplb_test_cli_expect(1, "neg.json: layer 0 expert 1 is -2",
                         "rebalance --weights %s --replicas 8 --gpus 4", wj);
    eplb_test_cli_expect(1, "old.json (--old): layer 0 slot 7 holds expert 9",
                         "rebalance --weights %s --replicas 8 --gpus 4 --old %s --policy none",
                         w, old);
    eplb_test_cli_expect(1, "not a regular file (it is a directory)",
                         "rebalance --weights %s --replicas 8 --gpus 4", d);
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
    /* a missing value is named as such (it read "unknown option or missing
     * value" / "unknown or incomplete option") */
    eplb_test_cli_expect(2, "--steps needs a value", "bench sim --steps");
    eplb_test_cli_expect(2, "--tokens needs a value", "bench kernels --device cpu --tokens");
    /* the slot and GPU limits of run and rebalance (cli_util.h) */
    eplb_test_cli_expect(2, "--replicas", "bench kernels --device cpu --replicas 16388");
    eplb_test_cli_expect(2, "--gpus", "bench kernels --device cpu --gpus 8192");
    eplb_test_cli_expect(2, "bench io: --repeat needs a value", "bench io x.h5 --repeat");
    eplb_test_cli_expect(2, "bench io: unknown option '--bogus'", "bench io x.h5 --bogus");
    eplb_test_cli_expect(2, "unexpected argument 'extra'", "bench sim extra");
    eplb_test_cli_expect(2, "--reps: expected an integer", "bench kernels --device cpu --reps 0");
    eplb_test_cli_expect(2, "--tokens: bad list", "bench kernels --device cpu --tokens 64,");
    eplb_test_cli_expect(2, "--experts: expected an integer",
                         "bench kernels --device cpu --experts 8x");
    eplb_test_cli_expect(2, "--hot 9: more than --topk 8", "bench kernels --device cpu --hot 9");
    eplb_test_cli_expect(2, "--hot 1 needs the bias", "bench kernels --device cpu --hot 1 --no-bias");
    eplb_test_cli_expect(2, "--layers 2: the CPU path times one layer",
                         "bench kernels --device cpu --layers 2");
    eplb_test_cli_expect(2, "--layers: expected an integer in 1..128",
                         "bench kernels --device cpu --layers 129");
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
    const char *w = eplb_test_write_text(eplb_test_path(d, "w.json"), "[[1, 2, 3, 4]]");
    static const char *const cmds[] = {"run %s --gpus 4", "run %s --gpus 4 --json", "info %s",
                                       "rebalance --replicas 4 --gpus 2 --weights %s"};
    char err[4096];
    snprintf(err, sizeof err, "%s", eplb_test_path(d, "err"));
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, cmds[i], i < 3 ? t : w);
        /* the helper appends 2>&1: keep stderr apart, in a file */
        int rc = eplb_test_run_cli(NULL, "%s >/dev/full 2>%s; exit $?", cmd, err);
        cr_assert_eq(rc, 1, "%s >/dev/full: exit %d", cmd, rc);
        char *msg = eplb_test_slurp_text(err);
        /* and why (rebalance's message had no reason) */
        cr_assert(strstr(msg, "stdout: write error: No space left on device") != NULL,
                  "%s: stderr '%s'", cmd, msg);
        free(msg);
    }
    unlink(err);
    unlink(w);
    unlink(t);
    rmdir(d);
}

/* Every --help exits 0 and prints the text on stdout (stderr discarded),
 * and every command's help lists its -h, --help line (found missing in `bench`,
 * `bench policy` and rebalance; the top level says it in a sentence). */
Test(bad_input, help_on_stdout)
{
    static const char *const cmds[] = {"", "run", "info", "gen", "import", "rebalance",
                                       "bench", "bench io", "bench kernels", "bench policy",
                                       "bench sim", "bench a2a"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out = NULL;
        /* the helper appends 2>&1; `exit` keeps it off the command's stderr */
        int rc = eplb_test_run_cli(&out, "%s --help 2>/dev/null; exit $?", cmds[i]);
        cr_assert_eq(rc, 0, "'%s --help' exit %d", cmds[i], rc);
        cr_assert(strstr(out, "usage:") != NULL, "'%s --help' stdout lacks usage: %s",
                  cmds[i], out);
        cr_assert(strstr(out, cmds[i][0] ? "\n  -h, --help " : "-h, --help: this text"),
                  "'%s --help' lacks -h, --help: %s", cmds[i], out);
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
    /* a mistyped command is no trace: `rebalence --help` printed run's help
     * (exit 0) and `sweep` said "cannot open trace" (exit 1) */
    eplb_test_cli_expect(2, "unknown command 'rebalence'", "rebalence --help");
    eplb_test_cli_expect(2, "unknown command 'sweep' (and no such file)", "sweep");
    eplb_test_cli_expect(1, "cannot open trace", "/nonexistent/x.h5");
    eplb_test_cli_expect(2, "TRACE.h5: empty path", "''");
}

/* Found: `gen -o DIR`, `gen -o ''` and `import -o DIR` generated the whole
 * trace and failed only at the final rename.  The output path is checked
 * first (a trace of ~100 s is asked for: the test would time out if it
 * were generated), and nothing is left behind. */
Test(bad_input, gen_import_output_checked_first, .timeout = 60)
{
    const char *d = eplb_test_tmpdir();
    char dir[4096], miss[4096], json[4096];
    snprintf(dir, sizeof dir, "%s", eplb_test_path(d, "sub"));
    snprintf(miss, sizeof miss, "%s", eplb_test_path(d, "missing/x.h5"));
    snprintf(json, sizeof json, "%s", eplb_test_path(d, "c.json"));
    cr_assert(mkdir(dir, 0777) == 0);
    const char *big = "gen --preset mixtral --steps 100000 --tokens-per-step 64";
    eplb_test_cli_expect(1, "sub: is a directory", "%s -o %s", big, dir);
    eplb_test_cli_expect(2, "-o/--output: empty path", "%s -o ''", big);
    eplb_test_cli_expect(1, "missing/x.h5: cannot create: directory", "%s -o %s", big, miss);
    eplb_test_cli_expect(1, "exists and is not a regular file", "%s -o /dev/null", big);
    eplb_test_write_text(json, "{\"logical_count\": [[1, 2, 3, 4], [4, 3, 2, 1]]}\n");
    eplb_test_cli_expect(1, "sub: is a directory",
                         "import --format sglang-counts %s --top-k 2 -o %s", json, dir);
    eplb_test_cli_expect(2, "-o/--output: empty path",
                         "import --format sglang-counts %s --top-k 2 -o ''", json);
    /* the output is refused before the (missing) logs are read */
    eplb_test_cli_expect(1, "missing/x.h5: cannot create",
                         "import --format esft /nonexistent -o %s", miss);
    eplb_test_cli_expect(1, "sub: is a directory", "import --format esft /nonexistent -o %s",
                         dir);
    cr_assert_eq(eplb_test_dir_entries(dir), 0);
    cr_assert_eq(eplb_test_dir_entries(d), 2, "something left in %s", d); /* sub, c.json */

    /* the writer itself fails at create, naming the path */
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "t", 1, 4, 1, EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_fails(eplb_trace_writer_create(&w, dir, &o), EPLB_ERR_IO, "is a directory");
    eplb_assert_fails(eplb_trace_writer_create(&w, "", &o), EPLB_ERR_INVALID_ARG,
                      "empty output path");
    eplb_assert_fails(eplb_trace_writer_create(&w, miss, &o), EPLB_ERR_IO, miss);
    char under_file[4200];
    snprintf(under_file, sizeof under_file, "%s/x.h5", json);
    eplb_assert_fails(eplb_trace_writer_create(&w, under_file, &o), EPLB_ERR_IO,
                      "not a directory");
    cr_assert_null(w);
    cr_assert_eq(eplb_test_dir_entries(dir), 0);
    cr_assert_eq(eplb_test_dir_entries(d), 2);
    unlink(json);
    rmdir(dir);
    rmdir(d);
}

/* Found: `gen --steps 1000000 --tokens-per-step 100000` started writing
 * ~50 TB.  --steps and --tokens-per-step are bounded, and more than 64 GiB
 * of raw logits (or an 8 GiB step buffer) needs --force. */
Test(bad_input, gen_size_bounded)
{
    const char *d = eplb_test_tmpdir();
    char out[4096];
    snprintf(out, sizeof out, "%s", eplb_test_path(d, "x.h5"));
    eplb_test_cli_expect(2, "--tokens-per-step", "gen --preset deepseek-v3 --steps 1000000 "
                         "--tokens-per-step 100000 -o %s", out);
    eplb_test_cli_expect(2, "--steps", "gen --preset mixtral --steps 10000001 -o %s", out);
    /* deepseek-v3: 58 layers x 256 experts x 2 bytes (bf16) x 1000 x 4096
     * tokens = 113 GiB; 2000 steps are 56.6 GiB */
    eplb_test_cli_expect(2, "--force", "gen --preset deepseek-v3 --steps 4000 "
                         "--tokens-per-step 1000 -o %s", out);
    eplb_test_cli_expect(2, "--steps x --tokens-per-step", "gen --preset deepseek-v3 "
                         "--steps 4000 --tokens-per-step 1000 --stats");
    /* 65536 tokens: a step buffer of about 4 x 65536 x 58 x 256 float32 */
    eplb_test_cli_expect(2, "step buffer", "gen --preset deepseek-v3 --steps 1 "
                         "--tokens-per-step 65536 -o %s", out);
    /* --force passes the size check (the unwritable path then stops it
     * before anything is generated) */
    eplb_test_cli_expect(1, "cannot create", "gen --preset deepseek-v3 --steps 4000 "
                         "--tokens-per-step 1000 --force -o /nonexistent/x.h5");
    cr_assert_eq(eplb_test_dir_entries(d), 0);

    eplb_gen_opts_t o = EPLB_GEN_OPTS_INIT;
    o.preset = "mixtral"; /* 32 layers, 8 experts */
    o.steps = 3;
    o.tokens_per_step = 5;
    o.dtype = EPLB_DTYPE_F32;
    uint64_t raw = 0, buf = 0;
    eplb_assert_ok(eplb_gen_size_estimate(&o, &raw, &buf));
    cr_assert_eq(raw, (uint64_t)3 * 5 * 32 * 8 * 4);
    /* largest step: ceil(5 x 1.8 x e^0.8) + 1 = ceil(20.03) + 1 = 22 tokens */
    cr_assert_eq(buf, (uint64_t)22 * 32 * 8 * 4);
    eplb_assert_ok(eplb_gen_size_check(&o));
    o.preset = "deepseek-v3";
    o.dtype = EPLB_DTYPE_BF16;
    o.steps = 2000;
    o.tokens_per_step = 1000;
    eplb_assert_ok(eplb_gen_size_check(&o));
    o.steps = 4000;
    eplb_assert_fails(eplb_gen_size_check(&o), EPLB_ERR_INVALID_ARG, "--force");
    o.steps = EPLB_GEN_MAX_STEPS + 1;
    eplb_gen_t *g = NULL;
    eplb_assert_fails(eplb_gen_create(&g, &o), EPLB_ERR_INVALID_ARG, "--steps");
    o.steps = 1;
    o.tokens_per_step = EPLB_GEN_MAX_TOKENS_PER_STEP + 1;
    eplb_assert_fails(eplb_gen_create(&g, &o), EPLB_ERR_INVALID_ARG, "--tokens-per-step");
    cr_assert_null(g);
    rmdir(d);
}

/* Fork a child that resets sig to its default action, runs body(arg) and
 * raises sig; assert that the child died of it. */
static void die_by_signal(int sig, void (*body)(const char *), const char *arg, pid_t *pid)
{
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        signal(sig, SIG_DFL);
        body(arg);
        raise(sig);
        _exit(3); /* not reached */
    }
    int status = 0;
    cr_assert_eq(waitpid(p, &status, 0), p);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == sig,
              "child did not die of signal %d (status %#x)", sig, status);
    *pid = p;
}

static void body_writer(const char *path)
{
    eplb_trace_writer_opts_t o = eplb_test_writer_opts("m", "t", 2, 4, 1, EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    int32_t counts[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    if (eplb_trace_writer_create(&w, path, &o) != EPLB_OK ||
        eplb_trace_writer_append_step(w, 1, NULL, NULL, NULL, counts, NULL, 0) != EPLB_OK)
        _exit(4);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (access(tmp, F_OK) != 0) /* the file the handler has to delete */
        _exit(5);
}

static void body_results(const char *path)
{
    eplb_sim_h5_t *h = NULL;
    if (eplb_sim_h5_create(&h, path, 2, 4, 1, 3, "m", "{}", 1) != EPLB_OK)
        _exit(4);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (access(tmp, F_OK) != 0)
        _exit(5);
}

/* Found: an interrupted `gen` or `import` left PATH.tmp.PID behind.  The
 * trace writer's temporary file (and results.h5's, through the same
 * helper) is deleted on SIGINT, SIGTERM and SIGHUP, and the process still
 * dies of the signal. */
Test(bad_input, interrupted_write_leaves_nothing, .timeout = 60)
{
    const char *d = eplb_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s", eplb_test_path(d, "t.h5"));
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    pid_t pid;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        die_by_signal(sigs[i], body_writer, path, &pid);
        cr_assert_eq(eplb_test_dir_entries(d), 0, "signal %d: the writer's temporary file is left",
                     sigs[i]);
    }
    snprintf(path, sizeof path, "%s", eplb_test_path(d, "results.h5"));
    die_by_signal(SIGINT, body_results, path, &pid);
    cr_assert_eq(eplb_test_dir_entries(d), 0, "results.h5's temporary file is left");

    /* the command, killed while it writes: poll until the temporary file
     * exists, then SIGTERM (a background job of a shell ignores SIGINT) */
    char *out = NULL;
    int rc = eplb_test_run_cli(
        &out,
        "--version >/dev/null; exec 2>&1; '%s/eplb-replay' gen --preset mixtral --steps 100000 "
        "--tokens-per-step 64 -o %s/g.h5 & p=$!; i=0; while [ $i -lt 400 ]; do "
        "ls %s/g.h5.tmp.* >/dev/null 2>&1 && break; sleep 0.05; i=$((i+1)); done; "
        "kill -TERM $p; wait $p; echo status=$?",
        eplb_test_builddir(), d, d);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "status=143") != NULL, "gen not killed by SIGTERM: %s", out);
    free(out);
    cr_assert_eq(eplb_test_dir_entries(d), 0, "gen killed by SIGTERM left a file in %s", d);
    rmdir(d);
}

static void body_guard_ignored(const char *path)
{
    signal(SIGHUP, SIG_IGN); /* an ignored signal stays ignored */
    eplb_tmp_guard_arm(path);
    raise(SIGHUP);
    _exit(0);
}

static void body_guard_disarmed(const char *path)
{
    eplb_tmp_guard_disarm(eplb_tmp_guard_arm(path));
}

/* The guard leaves a signal the process ignores alone, and a disarmed path
 * is not deleted; too long a path is refused. */
Test(bad_input, tmpfile_guard_rules)
{
    const char *d = eplb_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s", eplb_test_path(d, "keep"));
    eplb_test_write_text(path, "x");
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0)
        body_guard_ignored(path);
    int status = 0;
    cr_assert_eq(waitpid(p, &status, 0), p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    cr_assert_eq(access(path, F_OK), 0, "deleted although SIGHUP was ignored");
    pid_t pid;
    die_by_signal(SIGTERM, body_guard_disarmed, path, &pid);
    cr_assert_eq(access(path, F_OK), 0, "a disarmed path was deleted");
    static char longp[5000];
    memset(longp, 'a', sizeof longp - 1);
    cr_assert_eq(eplb_tmp_guard_arm(longp), -1);
    cr_assert_eq(eplb_tmp_guard_arm(""), -1);
    eplb_tmp_guard_disarm(-1); /* ignored */
    unlink(path);
    rmdir(d);
}

/* Found: an invalid UTF-8 trace attribute went into `info --json`
 * unescaped (invalid JSON). */
Test(bad_input, info_json_invalid_utf8)
{
    const char *d = eplb_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s", eplb_test_path(d, "u.h5"));
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts("bad\xff" "model \xc3\xa9", "t", 1, 4, 1, EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    int32_t counts[4] = {1, 0, 0, 0};
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    eplb_assert_ok(eplb_trace_writer_append_step(w, 1, NULL, NULL, NULL, counts, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "info --json %s", path);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\"bad\\ufffdmodel \xc3\xa9\"") != NULL, "%s", out);
    cr_assert(strchr(out, '\xff') == NULL, "raw 0xff byte in: %s", out);
    free(out);
    unlink(path);
    rmdir(d);
}

/* Found: the program exited 0 when stdout could not be written for
 * commands that do not check it themselves (--help, bench help,
 * --list-presets). */
Test(bad_input, stdout_write_error_in_main)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    static const char *const cmds[] = {"--help", "--version", "bench policy --help",
                                       "bench --help", "gen --list-presets",
                                       "rebalance --help"};
    /* the helper appends 2>&1 (to /dev/full too): stderr goes to a file */
    const char *d = eplb_test_tmpdir();
    char err[4096];
    snprintf(err, sizeof err, "%s", eplb_test_path(d, "err"));
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        int rc = eplb_test_run_cli(NULL, "%s >/dev/full 2>%s; exit $?", cmds[i], err);
        char *msg = eplb_test_slurp_text(err);
        cr_assert_eq(rc, 1, "'%s >/dev/full': exit %d: %s", cmds[i], rc, msg);
        cr_assert(strstr(msg, "eplb-replay: stdout: write error: No space left on device") != NULL,
                  "%s: '%s'", cmds[i], msg);
        free(msg);
    }
    /* a command that fails says so once, and keeps its status */
    int rc = eplb_test_run_cli(NULL, "gen --bogus >/dev/full 2>%s; exit $?", err);
    char *msg = eplb_test_slurp_text(err);
    cr_assert_eq(rc, 2, "%s", msg);
    cr_assert(strstr(msg, "write error") == NULL, "%s", msg);
    free(msg);
    unlink(err);
    rmdir(d);
}

/* Found: migration-aware computed 4 * max_moves + 8 in int: a caller of
 * the API (not only the commands, which clamp) could overflow it.  The
 * policy clamps max_moves to P.  One layer, 4 experts on 2 GPUs of 2
 * slots, loads 4 3 2 1, old placement [0 1 | 2 3] (peak 7): the best
 * placement is a swap to {4,1} and {3,2} (peak 5, 2 moves). */
Test(bad_input, migration_max_moves_clamped)
{
    const eplb_policy_t *pol = eplb_policy_find("migration-aware");
    cr_assert_not_null(pol);
    const float w[4] = {4, 3, 2, 1};
    const int32_t old[4] = {0, 1, 2, 3};
    eplb_policy_args_t a = EPLB_POLICY_ARGS_INIT;
    a.num_replicas = 4;
    a.num_gpus = 2;
    a.old_phy2log = old;
    const int budgets[] = {INT_MAX, INT_MAX - 1, 1 << 30, 4};
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        a.max_moves = budgets[i];
        int32_t out[4];
        eplb_assert_ok(pol->fn(out, NULL, w, 1, 4, &a));
        eplb_assert_ok(eplb_placement_check(out, 1, 4, 4, "migration"));
        double load[2];
        eplb_placement_gpu_load(load, out, w, 1, 4, 4, 2);
        double peak = load[0] > load[1] ? load[0] : load[1];
        cr_assert_float_eq(peak, 5.0, 1e-9, "max_moves %d: peak %g", budgets[i], peak);
        cr_assert_eq(eplb_placement_moves(old, out, 4), 2, "max_moves %d", budgets[i]);
    }
}

/* Found by the tenth session's sweep: `run T --out D` where D/results.h5
 * was the trace T itself replaced the trace with its results (exit 0). */
Test(bad_input, run_out_onto_the_input)
{
    const char *d = eplb_test_tmpdir();
    char out[2048], in[4096];
    snprintf(out, sizeof out, "%s", eplb_test_path(d, "od"));
    cr_assert(mkdir(out, 0777) == 0);
    snprintf(in, sizeof in, "%s/results.h5", out);
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    cr_assert(rename(t, in) == 0);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = eplb_test_slurp(in, &n0);
    eplb_test_cli_expect(2, "is the input", "run %s --quiet --gpus 4 --out %s", in, out);
    unsigned char *after = eplb_test_slurp(in, &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0), "the input trace was changed");
    free(before);
    free(after);
    /* the profile as config.json: the same */
    char prof[4096];
    snprintf(prof, sizeof prof, "%s/config.json", out);
    eplb_test_write_text(prof, "nvlink_GBps = 400\n");
    const char *t2 = make_trace(d, "c2.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(2, "is the input", "run %s --quiet --gpus 4 --profile %s --out %s", t2,
                         prof, out);
    unlink(t2);
    unlink(prof);
    unlink(in);
    rmdir(out);
    rmdir(d);
}

/* Found by the sweep: a FIFO as the trace blocked `info` forever (the
 * open waited for a writer); --policy-time 1e308 printed inf and null. */
Test(bad_input, fifo_trace_and_policy_time_bounded, .timeout = 60)
{
    const char *d = eplb_test_tmpdir();
    char fifo[4096];
    snprintf(fifo, sizeof fifo, "%s", eplb_test_path(d, "fifo.h5"));
    cr_assert(mkfifo(fifo, 0600) == 0);
    eplb_test_cli_expect(1, "not a regular file", "info %s", fifo);
    eplb_test_cli_expect(1, "not a regular file", "run %s --quiet", fifo);
    unlink(fifo);
    const char *t = make_trace(d, "c.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_COUNTS, -1);
    eplb_test_cli_expect(2, "--policy-time", "run %s --quiet --gpus 4 --policy-time 1e308", t);
    eplb_test_cli_expect(2, "--policy-time", "run %s --quiet --gpus 4 --policy-time 86401", t);
    /* a counts-only trace has nothing for bench io to read: the file's
     * fault, exit 1 */
    eplb_test_cli_expect(1, "no /router/logits or /router/topk_ids", "bench io %s", t);
    unlink(t);
    rmdir(d);
}

/* Found by the sweep: `import --format sglang-counts F.json -o F.json` and
 * `import --format esft DIR -o DIR/expert_weights_1.txt` replaced their
 * input with the trace (exit 0). */
Test(bad_input, import_onto_its_input)
{
    const char *d = eplb_test_tmpdir();
    char js[4096], dir[2048], log1[4096];
    snprintf(js, sizeof js, "%s", eplb_test_path(d, "c.json"));
    eplb_test_write_text(js, "{\"logical_count\": [[1, 2, 3, 4]]}\n");
    eplb_test_cli_expect(2, "is an input of the import",
                         "import --format sglang-counts %s -o %s --top-k 2", js, js);
    char *after = eplb_test_slurp_text(js);
    cr_assert_str_eq(after, "{\"logical_count\": [[1, 2, 3, 4]]}\n");
    free(after);
    snprintf(dir, sizeof dir, "%s", eplb_test_path(d, "esft"));
    cr_assert(mkdir(dir, 0777) == 0);
    snprintf(log1, sizeof log1, "%s/expert_weights_1.txt", dir);
    eplb_test_write_text(log1, "1\t\t0.5\n");
    eplb_test_cli_expect(2, "is an input of the import", "import --format esft %s -o %s", dir,
                         log1);
    after = eplb_test_slurp_text(log1);
    cr_assert_str_eq(after, "1\t\t0.5\n");
    free(after);
    unlink(log1);
    rmdir(dir);
    unlink(js);
    rmdir(d);
}

/* Found by the re-run sweep: `run ... --out NEW/a/b` killed by SIGTERM or
 * SIGINT while it ran left the directories it had created.  They are
 * guarded now: the run below (nodup on 16384 slots per layer: tens of
 * seconds) is killed as soon as its --out directory exists. */
Test(bad_input, interrupted_run_leaves_no_directories)
{
    const char *tr = eplb_test_path(eplb_test_srcdir(), "traces/dsv3-small.h5");
    if (!eplb_test_exists(tr))
        cr_skip_test("%s not present", tr);
    char trace[4096], bin[4096], top[2048], out[4096];
    snprintf(trace, sizeof trace, "%s", tr);
    snprintf(bin, sizeof bin, "%s/eplb-replay", eplb_test_builddir());
    const char *d = eplb_test_tmpdir();
    snprintf(top, sizeof top, "%s/killdir", d);
    snprintf(out, sizeof out, "%s/a/b", top);
    const int sigs[] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        pid_t p = fork();
        cr_assert(p >= 0);
        if (p == 0) {
            signal(sigs[k], SIG_DFL); /* as a shell starts a command */
            int nul = open("/dev/null", O_WRONLY);
            dup2(nul, 1);
            dup2(nul, 2);
            execl(bin, bin, "run", trace, "--quiet", "--policy-time", "0", "--replicas",
                  "16384", "--gpus", "1", "--policy", "nodup", "--out", out, (char *)NULL);
            _exit(127);
        }
        int waited = 0;
        while (!eplb_test_exists(out) && waited < 30000) {
            usleep(10000);
            waited += 10;
        }
        cr_assert(eplb_test_exists(out), "%s never appeared", out);
        usleep(50000); /* past the mkdir and its guard (microseconds apart) */
        kill(p, sigs[k]);
        int status = 0;
        cr_assert_eq(waitpid(p, &status, 0), p);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == sigs[k],
                  "the run did not die of signal %d (status %#x)", sigs[k], status);
        cr_assert(!eplb_test_exists(top), "signal %d: %s left behind", sigs[k], top);
    }
    rmdir(d);
}

/* ---- user-level review of 2026-11-28: the bench and info CLI ---------- */

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* Found: `bench policy` looked for its default data relative to the current
 * directory in a build inside the tree ("src/../../shared/...: cannot
 * open" when run from /tmp).  Run from / without EPLB_SRCDIR or
 * EPLB_SHARED_DIR, it finds ../shared beside the tree it was built from:
 * the DeepSeek-V3 decode loads, 58 MoE layers. */
Test(bad_input, bench_policy_default_weights_any_cwd)
{
    char src[PATH_MAX], build[PATH_MAX], data[PATH_MAX + 64];
    cr_assert(realpath(eplb_test_srcdir(), src) != NULL);
    cr_assert(realpath(eplb_test_builddir(), build) != NULL);
    snprintf(data, sizeof data, "%s/../shared/data/sglang-dsv3/decode_in1000out1000.json", src);
    if (access(data, R_OK) != 0)
        cr_skip_test("no %s", data);
    setenv("EPLB_BUILDDIR", build, 1);
    unsetenv("EPLB_SRCDIR");
    unsetenv("EPLB_SHARED_DIR");
    cr_assert_eq(chdir("/"), 0);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench policy --repeat 1 --policy deepseek --json");
    cr_assert_eq(rc, 0, "bench policy from /: exit %d: %s", rc, out);
    cr_assert(strstr(out, "\"policy\": \"deepseek\"") && strstr(out, "\"layers\": 58"), "%s",
              out);
    free(out);
}

/* Found: without the data the error was only "...json: cannot open", not
 * saying how to give the file. */
Test(bad_input, bench_policy_default_weights_missing)
{
    const char *d = eplb_test_tmpdir(); /* empty: no data/ in it */
    setenv("EPLB_SHARED_DIR", d, 1);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench policy --repeat 1");
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert_eq(count_char(out, '\n'), 1, "not one line: %s", out);
    char want[4096];
    snprintf(want, sizeof want, "EPLB_SHARED_DIR=%s has no readable "
             "data/sglang-dsv3/decode_in1000out1000.json", d);
    cr_assert(strstr(out, want) != NULL, "lacks '%s': %s", want, out);
    cr_assert(strstr(out, "--weights FILE") != NULL, "names no --weights: %s", out);
    free(out);
    rmdir(d);
}

/* Found: `bench kernels --device cpu --only route` timed route, select and
 * fused.  With two token counts, --only K gives two lines, both of K. */
Test(bad_input, bench_kernels_only_on_cpu)
{
    static const char *const ks[] = {"route", "select", "fused"};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        char *out = NULL;
        int rc = eplb_test_run_cli(&out, "bench kernels --device cpu --tokens 64,96 --reps 1 "
                                         "--json --only %s", ks[i]);
        cr_assert_eq(rc, 0, "--only %s: exit %d: %s", ks[i], rc, out);
        char want[64];
        snprintf(want, sizeof want, "{\"kernel\":\"%s\",\"device\":\"cpu\"", ks[i]);
        cr_assert_eq(count_char(out, '\n'), 2, "--only %s: not 2 lines: %s", ks[i], out);
        const char *second = strchr(out, '\n') + 1;
        cr_assert(strncmp(out, want, strlen(want)) == 0 &&
                      strncmp(second, want, strlen(want)) == 0,
                  "--only %s: %s", ks[i], out);
        cr_assert(strstr(out, "\"tokens\":64,") && strstr(second, "\"tokens\":96,"), "%s",
                  out);
        free(out);
    }
    /* without --only: the three kernels for each T */
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench kernels --device cpu --tokens 64,96 --reps 1 --json");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(count_char(out, '\n'), 6, "%s", out);
    free(out);
    eplb_test_cli_expect(2, "--only step needs a GPU", "bench kernels --device cpu --only step");
    eplb_test_cli_expect(2, "--only fused_ids needs a GPU",
                         "bench kernels --device cpu --only fused_ids");
    /* a GPU kernel variant on the CPU was ignored (exit 0; the CLI sweep) */
    eplb_test_cli_expect(2, "--variant 5: a GPU routing kernel",
                         "bench kernels --device cpu --variant 5");
    /* nor with --device auto falling back to the CPU (a review) */
    out = NULL;
    rc = eplb_test_run_cli(&out, "bench kernels --variant 3 --tokens 16 --reps 1 --json");
    if (rc == 0) /* a GPU timed it */
        cr_assert(strstr(out, "timing the CPU path") == NULL, "%s", out);
    else
        cr_assert(strstr(out, "--variant 3 needs a GPU"), "rc %d: %s", rc, out);
    free(out);
}

/* Found: `--tokens 0`, `-5` and `100000000` said "bad list" without the
 * range, and --help did not give the largest count (2^24). */
Test(bad_input, bench_kernels_tokens_range)
{
    char range[64];
    snprintf(range, sizeof range, "in 1..%d", 1 << 24);
    static const char *const bad[] = {"0", "-5", "100000000", "16777217", "64,0", "64,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        int rc = eplb_test_run_cli(&out, "bench kernels --device cpu --tokens %s", bad[i]);
        cr_assert_eq(rc, 2, "--tokens %s: exit %d: %s", bad[i], rc, out);
        cr_assert(strstr(out, "--tokens: bad list") && strstr(out, range),
                  "--tokens %s: no range '%s': %s", bad[i], range, out);
        free(out);
    }
    /* 33 counts: one more than the list holds */
    char list[256] = "1";
    for (int i = 1; i < 33; i++)
        strcat(list, ",1");
    eplb_test_cli_expect(2, "up to 32 ", "bench kernels --device cpu --tokens %s", list);
    char *out = NULL;
    cr_assert_eq(eplb_test_run_cli(&out, "bench kernels --help 2>/dev/null; exit $?"), 0);
    snprintf(range, sizeof range, "1..%d", 1 << 24);
    cr_assert(strstr(out, range) != NULL, "--help lacks the --tokens range %s: %s", range, out);
    free(out);
}

/* Found: `bench kernels --device gpu` on a build without CUDA said
 * "eplb_gpu_open: this build has no CUDA kernels" (a function name). */
Test(bad_input, bench_kernels_gpu_without_cuda)
{
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench kernels --device gpu --tokens 64 --reps 1 "
                                     "--only route");
    if (eplb_gpu_built()) { /* whatever the GPU, no internal name */
        cr_assert(rc == 0 || strstr(out, "eplb_gpu_") == NULL, "%s", out);
    } else {
        cr_assert_eq(rc, 1, "%s", out);
        cr_assert(strstr(out, "--device gpu: this build has no CUDA") &&
                      strstr(out, "use --device cpu"),
                  "%s", out);
        cr_assert(strstr(out, "eplb_gpu_") == NULL, "%s", out);
    }
    free(out);
    /* --device auto falls back to the CPU, saying why in words */
    rc = eplb_test_run_cli(&out, "bench kernels --tokens 64 --reps 1 --only route");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "eplb_gpu_") == NULL, "%s", out);
    free(out);
}

/* Found: `info --bogus`, `info`, `bench io`, `bench` and `bench bogus`
 * printed the whole help after the error.  A usage error is one line on
 * stderr, exit 2, as with run and rebalance. */
Test(bad_input, usage_errors_one_line)
{
    static const struct {
        const char *args, *msg;
    } cases[] = {
        {"info --bogus x.h5", "eplb-replay info: unknown option '--bogus'"},
        {"info", "eplb-replay info: missing TRACE.h5"},
        {"bench io", "eplb-replay bench io: missing TRACE.h5"},
        {"bench io x.h5 --bogus", "eplb-replay bench io: unknown option '--bogus'"},
        {"bench", "eplb-replay bench: missing WHAT: a2a, io, kernels, policy or sim"},
        {"bench bogus", "eplb-replay bench: unknown benchmark 'bogus'"},
        {"bench kernels --bogus", "eplb-replay bench kernels: unknown option '--bogus'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        /* stdout to /dev/null: nothing of it may count as the line */
        int rc = eplb_test_run_cli(&out, "%s 2>&1 >/dev/null; exit $?", cases[i].args);
        cr_assert_eq(rc, 2, "%s: exit %d: %s", cases[i].args, rc, out);
        cr_assert(strncmp(out, cases[i].msg, strlen(cases[i].msg)) == 0, "%s: '%s', want '%s'",
                  cases[i].args, out, cases[i].msg);
        cr_assert_eq(count_char(out, '\n'), 1, "%s: not one line: %s", cases[i].args, out);
        cr_assert(strstr(out, "--help") != NULL, "%s: no --help hint: %s", cases[i].args, out);
        free(out);
    }
}

/* Found: EPLB_THREADS values that are no thread count were ignored
 * silently.  One warning per process (the CPU path asks from several
 * places), and the count it then uses: the CPU count, or 4096 for more. */
Test(bad_input, eplb_threads_warned)
{
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    static const struct {
        const char *v;
        int big;
    } cases[] = {{"0", 0}, {"-1", 0}, {"abc", 0}, {"", 0}, {"8x", 0}, {"99999", 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("EPLB_THREADS", cases[i].v, 1);
        char *out = NULL;
        int rc = eplb_test_run_cli(&out, "bench kernels --device cpu --tokens 64,96 --reps 2");
        cr_assert_eq(rc, 0, "EPLB_THREADS='%s': exit %d: %s", cases[i].v, rc, out);
        char warn[128], used[64];
        if (cases[i].big)
            snprintf(warn, sizeof warn, "eplb-replay: EPLB_THREADS='%s' clamped to 4096\n",
                     cases[i].v);
        else
            snprintf(warn, sizeof warn,
                     "eplb-replay: EPLB_THREADS='%s' ignored (expected 1-4096); using %ld\n",
                     cases[i].v, cpus);
        snprintf(used, sizeof used, "# CPU, up to %ld threads;", cases[i].big ? 4096 : cpus);
        const char *w = strstr(out, warn);
        cr_assert(w != NULL, "EPLB_THREADS='%s': lacks '%s': %s", cases[i].v, warn, out);
        cr_assert(strstr(w + strlen(warn), "EPLB_THREADS") == NULL &&
                      strstr(out, "EPLB_THREADS") == w + strlen("eplb-replay: "),
                  "EPLB_THREADS='%s': warned more than once: %s", cases[i].v, out);
        cr_assert(strstr(out, used) != NULL, "EPLB_THREADS='%s': lacks '%s': %s", cases[i].v,
                  used, out);
        free(out);
    }
    setenv("EPLB_THREADS", "3", 1); /* a good value: no warning */
    char *out = NULL;
    cr_assert_eq(eplb_test_run_cli(&out, "bench kernels --device cpu --tokens 64 --reps 1"), 0);
    cr_assert(strstr(out, "EPLB_THREADS") == NULL && strstr(out, "up to 3 threads"), "%s", out);
    free(out);
    unsetenv("EPLB_THREADS");
}

/* Numbers in options are what a user types: strtoll and strtod also took a
 * leading space, a '+' and hexadecimal; 1e-999 became 0 in messages. */
Test(bad_input, option_numbers_strict)
{
    char t[4096];
    snprintf(t, sizeof t, "%s", eplb_test_path(eplb_test_srcdir(), "traces/dsv3-small.h5"));
    eplb_test_cli_expect(2, "--gpus: '+8' is not an integer", "%s --device cpu --gpus +8", t);
    eplb_test_cli_expect(2, "--gpus: ' 8' is not an integer", "%s --device cpu --gpus ' 8'", t);
    eplb_test_cli_expect(2, "--threshold: '0x1p-1' is not a number",
                         "%s --device cpu --trigger threshold --threshold 0x1p-1", t);
    eplb_test_cli_expect(2, "--steps: expected an integer in",
                         "gen --preset esft-lite --steps +4 -o never.h5");
    eplb_test_cli_expect(2, "--tokens", "bench kernels --device cpu --tokens ' 64'");
    eplb_test_cli_expect(2, "--async: 'chunk:+2' is not", "%s --device cpu --async chunk:+2", t);
    eplb_test_cli_expect(2, "--reads", "bench io %s --reads +64", t);
    eplb_test_cli_expect(2, "--policy-time: '1e-999' is beyond the range of a double",
                         "%s --device cpu --policy-time 1e-999", t);
}

/* Found by the option sweep (tests/fuzz/cli_fuzz.sh, 2026-11-28): messages
 * that named a value but not the option that gave it ("unknown dtype
 * 'f64'", "route: num_experts 600 outside [1, 512]", "replicas 8 is not a
 * multiple of gpus 16"), and `import --format bogus` answered "expected one
 * input file". */
Test(bad_input, sweep_messages_name_the_option)
{
    eplb_test_cli_expect(2, "gen: --dtype: unknown dtype 'F16'",
                         "gen --preset esft-lite --dtype F16 -o never.h5");
    eplb_test_cli_expect(2, "--dtype: unknown dtype 'f64'", "bench kernels --device cpu --dtype f64");
    eplb_test_cli_expect(2, "--scoring: unknown scoring 'relu'",
                         "bench kernels --device cpu --scoring relu");
    eplb_test_cli_expect(2, "--mode: unknown replica selection mode 'x'",
                         "bench kernels --device cpu --mode x");
    eplb_test_cli_expect(2, "--experts 600, --topk 8, --groups 8, --topk-groups 4: route: "
                            "num_experts 600",
                         "bench kernels --device cpu --experts 600");
    eplb_test_cli_expect(2, "import: --format: unknown format 'bogus'", "import --format bogus");
    eplb_test_cli_expect(2, "--format: unknown format 'bogus'",
                         "import --format bogus in.json -o out.h5");
    const char *d = eplb_test_tmpdir();
    char w[4096];
    snprintf(w, sizeof w, "%s", eplb_test_path(d, "w.json"));
    eplb_test_write_text(w, "[[5,1,1,1,2,3,4,1],[1,1,1,1,1,1,1,9]]\n");
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"--replicas 8 --gpus 16", "--replicas, --gpus: replicas 8 is not a multiple of gpus 16"},
        {"--replicas 4 --gpus 4", "--replicas: replicas 4 < experts 8"},
        {"--replicas 8 --gpus 4 --nodes 3", "--gpus, --nodes: gpus 4 is not a multiple of nodes 3"},
        {"--replicas 8 --gpus 4 --groups 3", "--groups: experts 8 is not a multiple of groups 3"},
        {"--replicas 8 --gpus 4 --groups 0", "--groups, --nodes, --gpus: replicas 8, groups 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        eplb_test_cli_expect(2, cases[i].want, "rebalance --weights %s %s", w, cases[i].args);
    unlink(w);
    rmdir(d);
}

/* Found by the option sweep: `bench io T.h5 --reads 99999999999999999999`
 * took the count clamped to INT64_MAX and overflowed the read loop's step
 * (UBSan: signed integer overflow in reads_lane); counts are now bounded
 * (2^40) and one past int64 is refused, naming --reads. */
Test(bad_input, bench_io_reads_bounded)
{
    const char *d = eplb_test_tmpdir();
    const char *t = make_trace(d, "l.h5", 2, 8, 2, 4, 6, EPLB_LEVEL_LOGITS, -1);
    static const char *const bad[] = {"99999999999999999999", "9223372036854775807",
                                      "1099511627777", "4,99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        eplb_test_cli_expect(2, "--reads wants up to 16 token counts in 1..1099511627776",
                             "bench io %s --repeat 1 --reads %s", t, bad[i]);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench io %s --repeat 1 --threads 1 --reads 1099511627776",
                               t);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "runtime error") == NULL, "%s", out);
    free(out);
    unlink(t);
    rmdir(d);
}

/* Found by the option sweep: `rebalance --replicas 48 --gpus 4096 --old F`
 * read F first and blamed it ("--old F: shape [2][16], expected [2][48]",
 * exit 1), although the request was impossible whatever F held (48 slots
 * on 4096 GPUs): the options are checked before --old is read. */
Test(bad_input, rebalance_options_before_old)
{
    const char *d = eplb_test_tmpdir();
    char w[4096], old[4096];
    snprintf(w, sizeof w, "%s", eplb_test_path(d, "w.json"));
    snprintf(old, sizeof old, "%s", eplb_test_path(d, "old.json"));
    eplb_test_write_text(w, "[[5,1,1,1,2,3,4,1],[1,1,1,1,1,1,1,9]]\n");
    eplb_test_write_text(old, "[[0,1,2,3,4,5,6,7,0,1,2,3,4,5,6,7],"
                              "[0,1,2,3,4,5,6,7,0,1,2,3,4,5,6,7]]\n");
    eplb_test_cli_expect(2, "--replicas, --gpus: replicas 48 is not a multiple of gpus 4096",
                         "rebalance --weights %s --old %s --replicas 48 --gpus 4096", w, old);
    eplb_test_cli_expect(2, "--gpus, --nodes: gpus 4 is not a multiple of nodes 3",
                         "rebalance --weights %s --old %s --replicas 24 --gpus 4 --nodes 3", w,
                         old);
    /* a possible request with a placement of another width: the file */
    eplb_test_cli_expect(1, "shape [2][16], expected [2][24]",
                         "rebalance --weights %s --old %s --replicas 24 --gpus 4", w, old);
    eplb_test_cli_expect(0, "\"moves\"", "rebalance --weights %s --old %s --replicas 16 --gpus 4",
                         w, old);
    unlink(w);
    unlink(old);
    rmdir(d);
}

/* A layer map whose GPUs do not split evenly into nodes (D % N != 0) is
 * refused by the map check itself, not only by the commands that build
 * one (`run` says "--gpus 4 is not divisible by --nodes 3" first).
 * Mutation testing: dropping the D % N half of the check passed. */
Test(bad_input, layer_map_gpus_not_divisible_by_nodes)
{
    const int32_t logcnt[2] = {2, 2}, log2phy[2 * 2] = {0, 2, 1, 3};
    eplb_layer_map_t m = {2, 4, 4, 2, 2, logcnt, log2phy};
    eplb_assert_ok(eplb_layer_map_check(&m)); /* 4 GPUs on 2 nodes */
    m.num_nodes = 3;
    eplb_assert_fails(eplb_layer_map_check(&m), EPLB_ERR_INVALID_ARG,
                      "P=4 must be a multiple of D=4 and D of N=3");
}
