/* test_run_cli.c - `eplb-replay [run] TRACE.h5`: options, outputs, exit
 * statuses, reproducibility, on small traces written here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "helpers.h"
#include "sim_fixtures.h"
#include "trace_fixtures.h"
#include "json.h"
#include "kernels.h"
#include "policy.h"
#include "sim.h"
#include "trace.h"

static char tdir[256], tok_trace[512], cnt_trace[512];

/* 16 steps of 64 tokens, 4 layers, 16 experts, top-4: experts 0-3 of a
 * phase that shifts every 4 steps are hot. */
static void write_traces(void)
{
    enum { S = 16, T = 64, L = 4, E = 16, K = 4 };
    snprintf(tdir, sizeof tdir, "%s", eplb_test_tmpdir());
    snprintf(tok_trace, sizeof tok_trace, "%s/tok.h5", tdir);
    snprintf(cnt_trace, sizeof cnt_trace, "%s/cnt.h5", tdir);
    for (int level = 0; level < 2; level++) {
        eplb_trace_writer_opts_t o = eplb_test_writer_opts(
            "test-moe", "test_run_cli.c", L, E, K, level ? EPLB_LEVEL_COUNTS : EPLB_LEVEL_TOPK);
        eplb_trace_writer_t *w = NULL;
        eplb_assert_ok(eplb_trace_writer_create(&w, level ? cnt_trace : tok_trace, &o));
        static int32_t ids[T][L][K], counts[L][E];
        uint32_t x = 12345;
        for (int s = 0; s < S; s++) {
            memset(counts, 0, sizeof counts);
            for (int t = 0; t < T; t++)
                for (int l = 0; l < L; l++)
                    for (int k = 0; k < K; k++) {
                        x = x * 1664525u + 1013904223u;
                        int hot = (x >> 16) % 3 != 0;
                        int e = hot ? ((s / 4) * 3 + l + k) % E : (int)((x >> 8) % E);
                        /* K different experts: the next one not taken */
                        for (int j = 0; j < k; j++)
                            if (ids[t][l][j] == e) {
                                e = (e + 1) % E;
                                j = -1;
                            }
                        ids[t][l][k] = e;
                        counts[l][e]++;
                    }
            eplb_assert_ok(eplb_trace_writer_append_step(w, T,
                                                         NULL, level ? NULL : &ids[0][0][0],
                                                         NULL, level ? &counts[0][0] : NULL,
                                                         NULL, 0));
        }
        eplb_assert_ok(eplb_trace_writer_finish(w));
    }
}

static void cleanup(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(run_cli, .init = write_traces, .fini = cleanup);

Test(run_cli, help)
{
    char *out = NULL;
    cr_assert_eq(eplb_test_run_cli(&out, "run --help"), 0);
    cr_assert(strstr(out, "--policy") && strstr(out, "--trigger") && strstr(out, "--out"));
    free(out);
}

Test(run_cli, bad_options_exit_2_and_write_nothing)
{
    static const struct {
        const char *args, *needle;
    } cases[] = {
        {"--replicas 20 --gpus 8", "--replicas 20"},
        {"--gpus 6 --nodes 4", "--nodes 4"},
        {"--policy deepseek,bogus", "bogus"},
        {"--select bogus", "--select"},
        {"--trigger bogus", "--trigger"},
        {"--window 10 --interval 5", "--window"},
        {"--async sometimes", "--async"},
        {"--redundant 8 --replicas 24", "exclude"},
        {"--gpus 0", "--gpus"},
        {"--threshold 2 --trigger threshold", "--threshold"},
        {"--frobnicate", "frobnicate"},
        /* the same grid point twice */
        {"--policy deepseek,lpt,deepseek", "'deepseek' is listed twice"},
        {"--gpus 4,4", "--gpus: 4 is listed twice"},
        {"--window 1,2,1 --interval 4", "--window: 1 is listed twice"},
        /* the balanced plan's replica limit, known before the run */
        {"--select balanced --gpus 4 --replicas 1040", "give an expert 65 replicas, more than "
                                                       "the 64 the balanced plan takes"},
        /* an option twice: the second would silently replace the first */
        {"--gpus 2 --gpus 4", "--gpus is given twice"},
        {"--policy deepseek --policy=lpt", "--policy is given twice"},
        /* options for something that does not run */
        {"--threshold 0.5", "--threshold applies to --trigger threshold only"},
        {"--ema-decay 0.5 --trigger sglang", "--ema-decay applies to --trigger trtllm"},
        {"--max-moves 3 --policy deepseek,lpt", "--max-moves applies to --policy migration"},
        {"--trigger once --interval 4", "--interval does not apply to --trigger once"},
        {"--policy oracle --trigger once", "--trigger once: no policy"},
        {"--policy none --window 2", "--window: --policy none never rearranges"},
        {"--policy none --trigger vllm", "--trigger: --policy none never rearranges"},
        {"--trigger once --async layers", "--async does not apply to --trigger once"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out_dir[600];
        snprintf(out_dir, sizeof out_dir, "%s/bad%zu", tdir, i);
        char *out = NULL;
        int rc = eplb_test_run_cli(&out, "run '%s' %s --out '%s'", tok_trace,
                                   cases[i].args, out_dir);
        cr_assert_eq(rc, 2, "%s: exit %d: %s", cases[i].args, rc, out);
        cr_assert(strstr(out, "eplb-replay run: ") && strstr(out, cases[i].needle),
                  "%s: message '%s' lacks '%s'", cases[i].args, out, cases[i].needle);
        cr_assert(!eplb_test_exists(out_dir), "%s: created %s", cases[i].args, out_dir);
        free(out);
    }
    char *out = NULL;
    cr_assert_eq(eplb_test_run_cli(&out, "run"), 2);
    free(out);
    cr_assert_eq(eplb_test_run_cli(&out, "run '%s/missing.h5'", tdir), 1);
    free(out);
}

static const eplb_json_t *run_of(const eplb_json_t *runs, const char *label)
{
    for (size_t i = 0; i < runs->n; i++) {
        const eplb_json_t *l = eplb_json_get(&runs->values[i], "label");
        if (l && l->type == EPLB_JSON_STRING && !strcmp(l->str, label))
            return &runs->values[i];
    }
    return NULL;
}

static double num(const eplb_json_t *o, const char *key)
{
    const eplb_json_t *v = eplb_json_get(o, key);
    cr_assert(v && v->type == EPLB_JSON_NUMBER, "missing number '%s'", key);
    return v->num;
}

/* Run `eplb-replay ARGS`, which must exit 0, and parse its JSON stdout
 * (the caller frees the document). */
static eplb_json_t *run_json(const char *args_fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, args_fmt);
    int n = vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof args, "command line too long");
    char *out = NULL;
    /* stdout alone: notes go to stderr, even under --quiet */
    int rc = eplb_test_run_cli(&out, "%s 2>/dev/null; exit $?", args);
    if (rc != 0) { /* again with stderr, for the message */
        free(out);
        rc = eplb_test_run_cli(&out, "%s", args);
        cr_assert_fail("eplb-replay %s: exit %d: %s", args, rc, out);
    }
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, out, strlen(out), "stdout"));
    free(out);
    return v;
}

/* deepseek's mean balancedness beats none's in the runs of v. */
static void assert_deepseek_beats_none(const eplb_json_t *v)
{
    const eplb_json_t *runs = eplb_json_get(v, "runs");
    const eplb_json_t *none = run_of(runs, "none"), *ds = run_of(runs, "deepseek");
    cr_assert(none && ds);
    cr_assert_gt(num(ds, "balancedness"), num(none, "balancedness"));
}

Test(run_cli, json_has_config_and_runs)
{
    /* bare `eplb-replay TRACE.h5` is the run command */
    eplb_json_t *v = run_json("'%s' --policy deepseek,lpt,oracle --gpus 4 --json "
                              "--quiet --policy-time 0", tok_trace);
    const eplb_json_t *cfg = eplb_json_get(v, "config");
    const eplb_json_t *runs = eplb_json_get(v, "runs");
    cr_assert(cfg && runs && runs->type == EPLB_JSON_ARRAY);
    cr_assert_eq(num(cfg, "num_experts"), 16);
    /* the default R = D, written as the numbers used, paired with --gpus */
    const eplb_json_t *red = eplb_json_get(cfg, "redundant");
    cr_assert(red && red->type == EPLB_JSON_ARRAY && red->n == 1);
    cr_assert_eq(eplb_test_num_at(red, 0), 4);
    cr_assert_str_eq(eplb_json_get(cfg, "redundant_from")->str, "gpus");
    cr_assert_eq(runs->n, 4u); /* none is always there */
    static const char *keys[] = {"balancedness", "max_over_mean", "rebalances",
                                 "moved_replicas", "moved_bytes", "stall_s", "moe_time_s",
                                 "overhead_s", "gain_vs_none"};
    for (size_t i = 0; i < runs->n; i++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            num(&runs->values[i], keys[k]);
    const eplb_json_t *none = run_of(runs, "none"), *ds = run_of(runs, "deepseek");
    const eplb_json_t *orc = run_of(runs, "oracle");
    cr_assert(none && ds && orc);
    cr_assert_eq(num(none, "moved_replicas"), 0);
    cr_assert_eq(num(none, "overhead_s"), 0);
    cr_assert_eq(num(none, "gain_vs_none"), 0);
    /* gain of the others: 100 (none's total - its total) / none's total, from
     * the printed totals (printed to 1e-6 relative or better: 1e-4 here) */
    for (size_t i = 0; i < runs->n; i++) {
        double t0 = num(none, "total_s"), t = num(&runs->values[i], "total_s");
        cr_assert_gt(t0, 0);
        cr_assert_float_eq(num(&runs->values[i], "gain_vs_none"), 100.0 * (t0 - t) / t0, 1e-4,
                           "run %zu", i);
    }
    /* 16 steps -> interval 4, window 1: decisions at steps 1, 5, 9, 13 */
    cr_assert_eq(num(ds, "rebalances"), 4);
    cr_assert_eq(num(ds, "replicas"), 20); /* 16 + 4 redundant */
    cr_assert_gt(num(ds, "balancedness"), num(none, "balancedness"));
    /* with a window of one step the last step and the next one are mostly
     * the same phase: the oracle is no better than deepseek here (0.848
     * against 0.852), only better than none */
    cr_assert_gt(num(orc, "balancedness"), num(none, "balancedness"));
    eplb_json_free(v);
    /* windows of 4 steps: before step 5 deepseek sees steps 1-4 (3 of the
     * old phase), the oracle steps 5-8 (3 of the new one): it must win */
    v = run_json("'%s' --policy deepseek,oracle --gpus 4 --window 4 --interval 4 --json "
                 "--quiet --policy-time 0", tok_trace);
    runs = eplb_json_get(v, "runs");
    ds = run_of(runs, "deepseek");
    orc = run_of(runs, "oracle");
    cr_assert(ds && orc);
    const double b_orc = num(orc, "balancedness"), b_ds = num(ds, "balancedness");
    cr_assert_gt(b_orc, b_ds + 0.02, "oracle %.4f, deepseek %.4f", b_orc, b_ds);
    eplb_json_free(v);
}

Test(run_cli, grid_runs_every_point)
{
    eplb_json_t *v = run_json("run '%s' --gpus 4,8 --redundant 0,8 --window 1,2 "
                              "--interval 4 --json --quiet --threads 2", tok_trace);
    const eplb_json_t *runs = eplb_json_get(v, "runs");
    /* per (D, R): none + deepseek x 2 windows */
    cr_assert_eq(runs->n, 2u * 2 * 3);
    int p8 = 0;
    for (size_t i = 0; i < runs->n; i++)
        p8 += num(&runs->values[i], "gpus") == 8 && num(&runs->values[i], "replicas") == 24;
    cr_assert_eq(p8, 3); /* 16 + 8 = 24 slots at 8 GPUs */
    const eplb_json_t *cfg = eplb_json_get(v, "config");
    const eplb_json_t *red = eplb_json_get(cfg, "redundant");
    cr_assert(red && red->type == EPLB_JSON_ARRAY && red->n == 2);
    cr_assert(eplb_test_num_at(red, 0) == 0 && eplb_test_num_at(red, 1) == 8);
    cr_assert_str_eq(eplb_json_get(cfg, "redundant_from")->str, "option");
    eplb_json_free(v);
    /* by default one R per --gpus value, paired with it */
    v = run_json("run '%s' --gpus 4,8 --policy none --json --quiet --policy-time 0", tok_trace);
    cfg = eplb_json_get(v, "config");
    red = eplb_json_get(cfg, "redundant");
    cr_assert(red && red->type == EPLB_JSON_ARRAY && red->n == 2);
    cr_assert(eplb_test_num_at(red, 0) == 4 && eplb_test_num_at(red, 1) == 8);
    cr_assert_str_eq(eplb_json_get(cfg, "redundant_from")->str, "gpus");
    runs = eplb_json_get(v, "runs");
    cr_assert_eq(runs->n, 2u); /* 16 + 4 and 16 + 8 slots, not a 2 x 2 grid */
    cr_assert(num(&runs->values[0], "replicas") == 20 && num(&runs->values[1], "replicas") == 24);
    eplb_json_free(v);
    /* --replicas: P given, no R */
    v = run_json("run '%s' --gpus 4 --replicas 24 --policy none --json --quiet --policy-time 0",
                 tok_trace);
    cfg = eplb_json_get(v, "config");
    cr_assert_eq(num(cfg, "replicas"), 24);
    cr_assert(!eplb_json_get(cfg, "redundant") && !eplb_json_get(cfg, "redundant_from"));
    eplb_json_free(v);
}

/* Two --redundant values that give the same P (E = 16, D = 4: R = 1 and 2
 * both round up to P = 20) run once, with a note on stderr. */
Test(run_cli, redundant_values_of_one_p_run_once)
{
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "run '%s' --gpus 4 --redundant 1,2 --policy-time 0",
                               tok_trace);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "--redundant 2 gives P = 20 as an earlier value did; run once"),
              "%s", out);
    int rows = 0;
    for (char *l = out; (l = strstr(l, "\ndeepseek ")); l++)
        rows++;
    cr_assert_eq(rows, 1, "%d deepseek rows: %s", rows, out);
    free(out);
    /* the note says an option was not used as given: --quiet keeps it */
    rc = eplb_test_run_cli(&out, "run '%s' --gpus 4 --redundant 1,2 --policy-time 0 --quiet "
                           "2>&1 >/dev/null; exit $?", tok_trace);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "--redundant 2 gives P = 20 as an earlier value did; run once"),
              "%s", out);
    free(out);
    eplb_json_t *v = run_json("run '%s' --gpus 4 --redundant 1,2 --json --quiet "
                              "--policy-time 0", tok_trace);
    cr_assert_eq(eplb_json_get(v, "runs")->n, 2u); /* none, deepseek */
    eplb_json_free(v);
}

/* The oracle keeps its own schedule whatever --trigger says: on the
 * 16-step trace the vllm defaults (docs/simulator.md: I = clamp(S/4, 4,
 * 3000) = 4, W = clamp(I/3, 1, 1000) = 1), while deepseek under trtllm
 * gets trtllm's (I = 1, W = clamp(S/8, 1, 1000) = 2 warm-up steps).  It
 * was refused (trtllm's W 2 > I 1 applied to the oracle) or, under once,
 * decided every step. */
Test(run_cli, oracle_schedule_ignores_trigger)
{
    eplb_json_t *v = run_json("run '%s' --policy oracle,deepseek --trigger trtllm --json "
                              "--quiet --policy-time 0", tok_trace);
    const eplb_json_t *runs = eplb_json_get(v, "runs");
    const eplb_json_t *orc = run_of(runs, "oracle"), *ds = run_of(runs, "deepseek");
    cr_assert(orc && ds);
    cr_assert_str_eq(eplb_json_get(orc, "trigger")->str, "oracle");
    cr_assert_eq(num(orc, "interval"), 4);
    cr_assert_eq(num(orc, "window"), 1);
    cr_assert_eq(num(orc, "rebalances"), 4); /* before steps 1, 5, 9, 13 */
    cr_assert_str_eq(eplb_json_get(ds, "trigger")->str, "trtllm");
    cr_assert_eq(num(ds, "interval"), 1);
    cr_assert_eq(num(ds, "window"), 2);
    eplb_json_free(v);
    v = run_json("run '%s' --policy oracle,lpt --trigger once --json --quiet --policy-time 0",
                 tok_trace);
    orc = run_of(eplb_json_get(v, "runs"), "oracle");
    cr_assert(orc);
    cr_assert_eq(num(orc, "interval"), 4);
    cr_assert_eq(num(orc, "rebalances"), 4);
    eplb_json_free(v);
    /* windows for the oracle: one oracle run each, lpt under once runs
     * once (a review found it run once per window, identical rows) */
    v = run_json("run '%s' --policy oracle,lpt --trigger once --window 1,2 --json --quiet "
                 "--policy-time 0", tok_trace);
    const eplb_json_t *runs2 = eplb_json_get(v, "runs");
    int n_orc = 0, n_lpt = 0;
    for (size_t i = 0; i < runs2->n; i++) {
        const char *l = eplb_json_get(&runs2->values[i], "label")->str;
        n_orc += !strcmp(l, "oracle");
        n_lpt += !strcmp(l, "lpt");
    }
    cr_assert_eq(n_orc, 2);
    cr_assert_eq(n_lpt, 1);
    eplb_json_free(v);
}

/* The table: no window or interval for once (one placement from the
 * whole trace), and a note under it for a run that never rearranged (the
 * first vllm decision comes after I/4 = 25 steps, past the 16). */
Test(run_cli, table_once_columns_and_idle_note)
{
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "run '%s' --trigger once --policy-time 0", tok_trace);
    cr_assert_eq(rc, 0, "%s", out);
    char *row = strstr(out, "\ndeepseek ");
    cr_assert(row, "%s", out);
    char name[32], w[16], iv[16], trig[16];
    int D, P;
    cr_assert_eq(sscanf(row + 1, "%31s %d %d %15s %15s %15s", name, &D, &P, w, iv, trig), 6);
    cr_assert_str_eq(w, "-");
    cr_assert_str_eq(iv, "-");
    cr_assert_str_eq(trig, "once");
    free(out);
    rc = eplb_test_run_cli(&out, "run '%s' --interval 100 --policy-time 0", tok_trace);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "# note: deepseek (D 8, P 24, W 33, I 100) rearranged nothing in 16 "
                          "steps"),
              "%s", out);
    free(out);
    rc = eplb_test_run_cli(&out, "run '%s' --policy-time 0", tok_trace);
    cr_assert(!strstr(out, "rearranged nothing"), "%s", out); /* it does rearrange */
    free(out);
}

/* ---- the summary writers (sim/output.c) on made-up results -------------
 * Rows: none, deepseek under vllm, lpt under once, the oracle (its own
 * schedule even under once: it keeps W and I) and a row wider than every
 * column of the table: a label of 26 characters (cut to 17 before) and
 * numbers of up to 19 digits. */
enum { FAKE_RUNS = 5 };

static void fake_results(eplb_sim_result_t *r)
{
    static const struct {
        const char *policy, *label;
        eplb_trigger_kind_t kind;
    } k[FAKE_RUNS] = {{"none", "none", EPLB_TRIGGER_VLLM},
                      {"deepseek", "deepseek", EPLB_TRIGGER_VLLM},
                      {"lpt", "lpt", EPLB_TRIGGER_ONCE},
                      {"oracle", "oracle", EPLB_TRIGGER_ORACLE},
                      {"deepseek", "deepseek-max-moves-100000", EPLB_TRIGGER_SGLANG}};
    memset(r, 0, FAKE_RUNS * sizeof *r);
    for (int i = 0; i < FAKE_RUNS; i++) {
        eplb_trigger_t t = EPLB_TRIGGER_INIT;
        t.kind = k[i].kind;
        snprintf(r[i].policy, sizeof r[i].policy, "%s", k[i].policy);
        snprintf(r[i].label, sizeof r[i].label, "%s", k[i].label);
        r[i].cfg.num_gpus = 8;
        r[i].cfg.num_nodes = 1;
        r[i].cfg.num_slots = 264;
        r[i].cfg.trig = t;
        r[i].steps = 64;
        r[i].balancedness = 0.5;
        r[i].max_over_mean = 2;
        r[i].worst_layer = 3;
        r[i].worst_layer_bal = 0.25;
        r[i].gain_vs_none = i ? 1.5 : 0;
    }
    eplb_sim_result_t *w = &r[FAKE_RUNS - 1];
    w->cfg.num_gpus = 123456;
    w->cfg.num_slots = 98765432;
    w->cfg.trig.window = 123456789012;
    w->cfg.trig.interval = 987654321098;
    w->worst_layer = 1234567;
    w->rebalances = 1234567;
    w->moved_replicas = 123456789012;
    w->moved_bytes = INT64_C(9000000000000000000);
    w->stall_s = 1e9;
    w->moe_time_s = 1e3;
    w->overhead_s = 1e3;
    w->gain_vs_none = -12345.678;
}

/* fn's output for the made-up rows (malloc'd; the caller frees it). */
static char *fake_output(void (*fn)(FILE *, const eplb_sim_result_t *, int), int n)
{
    eplb_sim_result_t r[FAKE_RUNS];
    fake_results(r);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    fn(f, r, n);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

/* Found by a user-level review: fixed printf widths let a wide cell push
 * its row out of line and cut labels at 17 characters.  Every row's " | "
 * must sit under the header's, every line be as long (the last column is
 * right-aligned), the label whole; rows of ordinary numbers keep the
 * widths of before. */
Test(run_cli, table_wide_cells_keep_columns)
{
    char *out = fake_output(eplb_sim_print_table, FAKE_RUNS - 1);
    /* the header and the none row of before (the old printf formats) */
    const char *want =
        "policy              D    P     W      I   trig |    bal  max/mn   worst(l) rebal   "
        "moved       GB  stall_ms  moe_us/st  ovh_us/st   gain%\n"
        "none                8  264     -      -      - | 0.5000   2.000   0.250(3)     0   "
        "    0    0.000     0.000        0.0       0.00   +0.00\n";
    cr_assert(!strncmp(out, want, strlen(want)), "%s", out);
    free(out);
    out = fake_output(eplb_sim_print_table, FAKE_RUNS);
    cr_assert(strstr(out, "\ndeepseek-max-moves-100000 123456 98765432 123456789012 "
                          "987654321098 sglang | "), "%s", out);
    size_t sep = 0, len = 0;
    int lines = 0;
    for (char *l = out, *nl; (nl = strchr(l, '\n')); l = nl + 1, lines++) {
        *nl = '\0';
        const char *s = strstr(l, " | ");
        cr_assert(s && !strstr(s + 1, " | "), "line %d: %s", lines, l);
        if (!lines) {
            sep = (size_t)(s - l);
            len = strlen(l);
        }
        cr_assert_eq((size_t)(s - l), sep, "line %d: ' | ' at %zu, header's at %zu: %s",
                     lines, (size_t)(s - l), sep, l);
        cr_assert_eq(strlen(l), len, "line %d: %zu characters, header %zu: %s", lines,
                     strlen(l), len, l);
    }
    cr_assert_eq(lines, 1 + FAKE_RUNS);
    free(out);
}

/* Found by the same review: the table shows "-" where a field does not
 * apply (trigger and async of none; window and interval of none and of
 * once), the JSON wrote the run's numbers anyway.  It writes null. */
Test(run_cli, json_null_where_table_shows_dash)
{
    char *out = fake_output(eplb_sim_write_runs_json, FAKE_RUNS);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, out, strlen(out), "runs json"));
    cr_assert(v->type == EPLB_JSON_ARRAY && v->n == FAKE_RUNS, "%s", out);
    static const char *const keys[] = {"trigger", "async", "window", "interval"};
    /* per row: which of keys are null */
    static const int is_null[FAKE_RUNS][4] = {
        {1, 1, 1, 1}, {0, 0, 0, 0}, {0, 0, 1, 1}, {0, 0, 0, 0}, {0, 0, 0, 0}};
    for (int i = 0; i < FAKE_RUNS; i++)
        for (int k = 0; k < 4; k++) {
            const eplb_json_t *x = eplb_json_get(&v->values[i], keys[k]);
            cr_assert_not_null(x, "run %d: no %s", i, keys[k]);
            cr_assert_eq(x->type == EPLB_JSON_NULL, is_null[i][k], "run %d: %s: %s", i,
                         keys[k], out);
        }
    const eplb_json_t *ds = &v->values[1], *lpt = &v->values[2], *orc = &v->values[3];
    cr_assert_str_eq(eplb_json_get(ds, "trigger")->str, "vllm");
    cr_assert_str_eq(eplb_json_get(ds, "async")->str, "off");
    cr_assert_eq(num(ds, "window"), 1000);
    cr_assert_eq(num(ds, "interval"), 3000);
    cr_assert_str_eq(eplb_json_get(lpt, "trigger")->str, "once");
    cr_assert_str_eq(eplb_json_get(orc, "trigger")->str, "oracle");
    cr_assert_eq(num(orc, "window"), 1000);
    eplb_json_free(v);
    free(out);
}

/* The same in summary.csv: empty fields, and every line has the header's
 * column count. */
Test(run_cli, csv_empty_where_table_shows_dash)
{
    /* the header names every key of a JSON run (it lacked imbalance and
     * tokens_lost), and nothing else */
    char *js = fake_output(eplb_sim_write_runs_json, 1);
    eplb_json_t *jv = NULL;
    eplb_assert_ok(eplb_json_parse(&jv, js, strlen(js), "runs"));
    char *out = fake_output(eplb_sim_write_csv, FAKE_RUNS);
    const eplb_json_t *run0 = &jv->values[0];
    char head[1024];
    snprintf(head, sizeof head, ",%.*s,", (int)strcspn(out, "\n"), out);
    int nh = 1;
    for (const char *q = head + 1; *q; q++)
        nh += *q == ',' && q[1];
    cr_assert_eq((size_t)nh, run0->n, "csv: %d fields, json run: %zu keys", nh, run0->n);
    for (size_t k = 0; k < run0->n; k++) {
        char key[80];
        snprintf(key, sizeof key, ",%s,", run0->keys[k]);
        cr_assert(strstr(head, key), "csv header lacks %s: %s", run0->keys[k], head);
    }
    eplb_json_free(jv);
    free(js);
    enum { TRIG = 2, ASYNC = 3, WIN = 7, INTV = 8, MAXF = 40 };
    const char *want[FAKE_RUNS][4] = {{"", "", "", ""},
                                      {"vllm", "off", "1000", "3000"},
                                      {"once", "off", "", ""},
                                      {"oracle", "off", "1000", "3000"},
                                      {"sglang", "off", "123456789012", "987654321098"}};
    int ncols = 0, lines = 0;
    for (char *l = out, *nl; (nl = strchr(l, '\n')); l = nl + 1, lines++) {
        *nl = '\0';
        char *field[MAXF];
        int nf = 0;
        for (char *p = l;; p++) {
            char *c = strchr(p, ',');
            cr_assert_lt(nf, MAXF);
            field[nf++] = p;
            if (!c)
                break;
            *c = '\0';
            p = c;
        }
        if (!lines) {
            ncols = nf;
            cr_assert(!strcmp(field[TRIG], "trigger") && !strcmp(field[ASYNC], "async") &&
                      !strcmp(field[WIN], "window") && !strcmp(field[INTV], "interval"));
            continue;
        }
        cr_assert_eq(nf, ncols, "line %d: %d fields, header %d", lines, nf, ncols);
        const int idx[4] = {TRIG, ASYNC, WIN, INTV};
        for (int k = 0; k < 4; k++)
            cr_assert_str_eq(field[idx[k]], want[lines - 1][k], "line %d, field %d", lines,
                             idx[k]);
    }
    cr_assert_eq(lines, 1 + FAKE_RUNS);
    free(out);
}

Test(run_cli, out_dir_files_and_reproducible)
{
    char d1[600], d2[600], f[700];
    snprintf(d1, sizeof d1, "%s/out/a", tdir);
    snprintf(d2, sizeof d2, "%s/out/b", tdir);
    const char *dirs[2] = {d1, d2};
    for (int i = 0; i < 2; i++) {
        char *out = NULL;
        /* the same to the byte whatever the threads (docs/DESIGN.md) */
        int rc = eplb_test_run_cli(&out, "run '%s' --policy deepseek,lpt --select random "
                                         "--seed 3 --policy-time 0 --quiet --threads %d "
                                         "--out '%s'",
                                   tok_trace, i ? 3 : 1, dirs[i]);
        cr_assert_eq(rc, 0, "%s", out);
        cr_assert(strstr(out, "deepseek") && strstr(out, "none"), "%s", out);
        free(out);
        static const char *files[] = {"config.json", "summary.json", "summary.csv",
                                      "results.h5", "report.txt"};
        for (int k = 0; k < 5; k++) {
            snprintf(f, sizeof f, "%s/%s", dirs[i], files[k]);
            cr_assert(eplb_test_exists(f), "missing %s", f);
        }
    }
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", d1);
    cr_assert_neq(system(cmd), 0, "temporary file left in %s", d1);
    static const char *same[] = {"summary.json", "summary.csv", "results.h5", "report.txt",
                                 "config.json"};
    for (int k = 0; k < 5; k++) {
        snprintf(cmd, sizeof cmd, "cmp -s '%s/%s' '%s/%s'", d1, same[k], d2, same[k]);
        cr_assert_eq(system(cmd), 0, "%s differs between identical runs", same[k]);
    }
    eplb_json_t *v = NULL;
    snprintf(f, sizeof f, "%s/config.json", d1);
    eplb_assert_ok(eplb_json_parse_file(&v, f));
    cr_assert_not_null(eplb_json_get(v, "profile"));
    cr_assert_not_null(eplb_json_get(v, "window"));
    eplb_json_free(v);
}

/* summary.csv holds summary.json's values under their own column names:
 * every number read back equal (the reals are written in digits that read
 * back exactly), the strings the same, empty where JSON has null, and
 * imbalance = max_over_mean - 1. */
Test(run_cli, out_dir_csv_matches_json)
{
    char d[600], f[700];
    snprintf(d, sizeof d, "%s/out/csv", tdir);
    eplb_test_cli_expect(0, NULL,
                         "run '%s' --policy deepseek,lpt --gpus 4,8 --policy-time 0 "
                         "--device cpu --quiet --out '%s'",
                         tok_trace, d);
    eplb_json_t *v = NULL;
    snprintf(f, sizeof f, "%s/summary.json", d);
    eplb_assert_ok(eplb_json_parse_file(&v, f));
    const eplb_json_t *runs = eplb_json_get(v, "runs");
    cr_assert(runs && runs->n == 6, "runs");
    snprintf(f, sizeof f, "%s/summary.csv", d);
    char *csv = eplb_test_slurp_text(f);
    cr_assert_not_null(csv);
    char *save = NULL, *line = strtok_r(csv, "\n", &save);
    char *cols[64];
    int nc = 0;
    for (char *p = line, *q; nc < 64 && p; p = q ? q + 1 : NULL) {
        q = strchr(p, ',');
        if (q)
            *q = 0;
        cols[nc++] = p;
    }
    cr_assert_eq(nc, 27, "columns");
    size_t row = 0;
    int numbers = 0;
    for (line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save), row++) {
        cr_assert_lt(row, runs->n, "more rows than runs");
        const eplb_json_t *r = &runs->values[row];
        int c = 0;
        for (char *p = line, *q; p; p = q ? q + 1 : NULL, c++) {
            q = strchr(p, ',');
            if (q)
                *q = 0;
            cr_assert_lt(c, nc, "row %zu has too many fields", row);
            if (!strcmp(cols[c], "imbalance")) {
                cr_assert(strtod(p, NULL) == num(r, "max_over_mean") - 1, "row %zu imbalance", row);
                /* the JSON's too (mutation testing: max_over_mean there passed) */
                cr_assert(num(r, "imbalance") == num(r, "max_over_mean") - 1,
                          "row %zu: JSON imbalance %.17g", row, num(r, "imbalance"));
                continue;
            }
            const eplb_json_t *x = eplb_json_get(r, cols[c]);
            cr_assert_not_null(x, "summary.json has no %s", cols[c]);
            if (x->type == EPLB_JSON_NULL)
                cr_assert_str_eq(p, "", "row %zu %s: not empty for null", row, cols[c]);
            else if (x->type == EPLB_JSON_STRING)
                cr_assert_str_eq(p, x->str, "row %zu %s", row, cols[c]);
            else {
                char *end = NULL;
                const double y = strtod(p, &end);
                cr_assert(*p && !*end && y == x->num, "row %zu %s: csv '%s', json %.17g", row,
                          cols[c], p, x->num);
                numbers++;
            }
        }
        cr_assert_eq(c, nc, "row %zu has %d fields", row, c);
    }
    cr_assert_eq(row, runs->n, "rows");
    cr_assert_gt(numbers, 6 * 15);
    free(csv);
    eplb_json_free(v);
}

/* --out DIR's report.txt is what the terminal shows (header, table, notes,
 * legend), whatever --quiet or --json do to stdout. */
Test(run_cli, out_dir_report_is_the_terminal_text)
{
    char d[600], f[700];
    snprintf(d, sizeof d, "%s/out/report", tdir);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "run '%s' --policy deepseek,lpt --policy-time 0 "
                                     "--device cpu --out '%s'", tok_trace, d);
    cr_assert_eq(rc, 0, "%s", out);
    snprintf(f, sizeof f, "%s/report.txt", d);
    size_t n = 0;
    unsigned char *txt = eplb_test_slurp(f, &n);
    cr_assert_not_null(txt, "no %s", f);
    cr_assert_eq(n, strlen(out), "report.txt (%zu bytes) is not stdout (%zu):\n%s\n--\n%s", n,
                 strlen(out), (char *)txt, out);
    cr_assert(memcmp(txt, out, n) == 0, "report.txt differs from stdout");
    cr_assert(strstr(out, "# trace ") && strstr(out, "deepseek") && strstr(out, "# bal:"),
              "%s", out);
    free(txt);
    free(out);
    /* with --json on stdout the report is still the text */
    rc = eplb_test_run_cli(&out, "run '%s' --policy deepseek,lpt --policy-time 0 --device cpu "
                                 "--json --quiet --out '%s'", tok_trace, d);
    cr_assert_eq(rc, 0, "%s", out);
    txt = eplb_test_slurp(f, &n);
    cr_assert_not_null(txt, "no %s", f);
    char *t = strndup((char *)txt, n); /* slurp does not terminate */
    cr_assert(t && strstr(t, "# bal:") && !strchr(t, '{'), "%s", t ? t : "");
    free(t);
    free(txt);
    free(out);
}

/* A counts trace has no per-token choice (the per-token modes are an even
 * split), and --seed seeds the random mode only: options that would change
 * nothing are refused, not ignored.  (balanced plans from the counts:
 * select_balanced_on_counts.) */
Test(run_cli, select_and_seed_only_where_they_act)
{
    eplb_test_cli_expect(2, "--select flatmod: ", "run '%s' --gpus 4 --select flatmod", cnt_trace);
    eplb_test_cli_expect(2, "has expert counts only", "run '%s' --gpus 4 --select hash",
                         cnt_trace);
    eplb_test_cli_expect(2, "--seed applies to --select random only (the selection is hash)",
                         "run '%s' --seed 3", tok_trace);
    eplb_test_cli_expect(2, "--seed applies to --select random only (the selection is local)",
                         "run '%s' --seed 3 --select local", tok_trace);
    eplb_test_cli_expect(0, NULL, "run '%s' --seed 3 --select random --device cpu --quiet",
                         tok_trace);
    /* the GPU routes logits: a trace without them has nothing for it */
    eplb_test_cli_expect(2, "--device gpu: ", "run '%s' --gpus 4 --device gpu", cnt_trace);
    eplb_test_cli_expect(2, "has no logits (top-k ids)", "run '%s' --device gpu", tok_trace);
}

/* With --interval given and no --window, the window follows the defaults
 * table from that interval (docs/simulator.md): sglang's is the whole
 * buffer since the last rebalance (W = I), vllm's I/3 (at least 1), and a
 * grid of intervals takes the smallest.  It was the default window of the
 * default interval, cut to the interval (sglang --interval 6: W 4). */
Test(run_cli, default_window_follows_given_interval)
{
    static const struct {
        const char *opts;
        int64_t w;
    } c[] = {
        {"--trigger sglang --interval 6", 6},
        {"--trigger sglang --interval 3", 3},
        {"--trigger vllm --interval 9", 3},
        {"--trigger vllm --interval 2", 1},
        {"--trigger threshold --interval 12", 4},
        {"--trigger vllm --interval 12,6", 2},
        {"--trigger vllm --window 5 --interval 6", 5},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        eplb_json_t *v = run_json("'%s' %s --policy deepseek --json --quiet --policy-time 0",
                                  tok_trace, c[i].opts);
        const eplb_json_t *w = eplb_json_get(eplb_json_get(v, "config"), "window");
        cr_assert(w && w->type == EPLB_JSON_ARRAY && w->n == 1, "%s", c[i].opts);
        cr_assert_eq(eplb_test_num_at(w, 0), (double)c[i].w, "%s: window %g, want %lld", c[i].opts,
                     eplb_test_num_at(w, 0), (long long)c[i].w);
        eplb_json_free(v);
    }
    /* the header names the async mode as --async takes it, K included */
    eplb_test_cli_expect(0, "interval [4], async chunk:3, select hash",
                         "run '%s' --async chunk:3 --policy-time 0", tok_trace);
}

/* --select balanced on a counts trace plans each step from its counts, as
 * the token-level selection plans from the same counts: tok.h5 and cnt.h5
 * hold the same counts, so every run's balance is the same number on both
 * (the token path: eplb_select_record_cpu; the counts path: sim/run.c
 * split_counts).  And the plan's peak is never above the even split's, so
 * neither is any run's mean balancedness below it. */
Test(run_cli, select_balanced_on_counts)
{
    static const char *args = "'%s' --policy none,deepseek --gpus 4,8 --select balanced "
                              "--device cpu --json --quiet --policy-time 0";
    eplb_json_t *tok = run_json(args, tok_trace), *cnt = run_json(args, cnt_trace);
    eplb_json_t *even = run_json("'%s' --policy none,deepseek --gpus 4,8 --device cpu --json "
                                 "--quiet --policy-time 0",
                                 cnt_trace);
    const eplb_json_t *rt = eplb_json_get(tok, "runs"), *rc = eplb_json_get(cnt, "runs"),
                      *re = eplb_json_get(even, "runs");
    cr_assert(rt && rc && re && rt->n == 4 && rc->n == 4 && re->n == 4);
    int better = 0;
    for (size_t i = 0; i < rt->n; i++) {
        cr_assert_eq(num(&rt->values[i], "gpus"), num(&rc->values[i], "gpus"));
        cr_assert_str_eq(eplb_json_get(&rt->values[i], "policy")->str,
                         eplb_json_get(&rc->values[i], "policy")->str);
        cr_assert_eq(num(&rt->values[i], "balancedness"), num(&rc->values[i], "balancedness"),
                     "run %zu", i);
        cr_assert_eq(num(&rt->values[i], "max_over_mean"), num(&rc->values[i], "max_over_mean"),
                     "run %zu", i);
        cr_assert_geq(num(&rc->values[i], "balancedness"), num(&re->values[i], "balancedness"),
                      "run %zu", i);
        better += num(&rc->values[i], "balancedness") > num(&re->values[i], "balancedness");
    }
    cr_assert_gt(better, 0, "balanced never beat the even split");
    /* the configuration says which: balanced on both, none for the even
     * split (config.json said null for balanced on counts) */
    const eplb_json_t *sc = eplb_json_get(eplb_json_get(cnt, "config"), "select"),
                      *st = eplb_json_get(eplb_json_get(tok, "config"), "select"),
                      *se = eplb_json_get(eplb_json_get(even, "config"), "select");
    cr_assert(sc && sc->type == EPLB_JSON_STRING && !strcmp(sc->str, "balanced"));
    cr_assert(st && st->type == EPLB_JSON_STRING && !strcmp(st->str, "balanced"));
    cr_assert(se && se->type == EPLB_JSON_NULL);
    eplb_json_free(tok);
    eplb_json_free(cnt);
    eplb_json_free(even);
}

/* --redundant values that P rounds up say what R became, on stderr and in
 * report.txt; also the default R = D. */
Test(run_cli, redundant_rounded_up_is_said)
{
    char d[600], f[700];
    snprintf(d, sizeof d, "%s/out/rounded", tdir);
    eplb_test_cli_expect(0, "--gpus 3, --redundant 3 (the default, = D): P = 21 (E + R = 19 "
                            "rounded up to a multiple of 3: 5 redundant slots)",
                         "run '%s' --gpus 3 --device cpu --quiet --policy-time 0 --out '%s'",
                         tok_trace, d);
    snprintf(f, sizeof f, "%s/report.txt", d);
    char *txt = eplb_test_slurp_text(f);
    cr_assert(txt && strstr(txt, "# note: --gpus 3, --redundant 3 (the default, = D): P = 21"),
              "%s", txt ? txt : "(no report.txt)");
    free(txt);
    eplb_test_cli_expect(0, "--redundant 3: P = 20 (E + R = 19 rounded up to a multiple of 4: "
                            "4 redundant slots)",
                         "run '%s' --gpus 4 --redundant 3 --device cpu --quiet", tok_trace);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "run '%s' --gpus 4 --redundant 4 --device cpu --quiet",
                               tok_trace);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(!strstr(out, "rounded up"), "%s", out);
    free(out);
}

/* Where no run has a schedule (none alone; once without the oracle) the
 * config and the report say so, as the runs' own fields do. */
Test(run_cli, no_schedule_said_as_such)
{
    char d[600], f[700];
    snprintf(d, sizeof d, "%s/out/none-only", tdir);
    eplb_test_cli_expect(0, NULL, "run '%s' --policy none --device cpu --quiet --out '%s'",
                         tok_trace, d);
    snprintf(f, sizeof f, "%s/config.json", d);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse_file(&v, f));
    static const char *nulls[] = {"window", "interval", "trigger"};
    for (int i = 0; i < 3; i++) {
        const eplb_json_t *x = eplb_json_get(v, nulls[i]);
        cr_assert(x && x->type == EPLB_JSON_NULL, "config.json %s is not null", nulls[i]);
    }
    /* the built-in profile charges recording from its table: no constant */
    const eplb_json_t *rs = eplb_json_get(eplb_json_get(v, "profile"), "record_s");
    cr_assert(rs && rs->type == EPLB_JSON_NULL, "profile record_s is not null");
    eplb_json_free(v);
    /* reals in their shortest form that reads back (not 0.90000000000000002) */
    char *txt = eplb_test_slurp_text(f);
    cr_assert(txt && strstr(txt, "\"threshold\": 0.9, \"ema_decay\": 0.95,"), "%s",
              txt ? txt : "");
    free(txt);
    snprintf(f, sizeof f, "%s/report.txt", d);
    txt = eplb_test_slurp_text(f);
    cr_assert(txt && strstr(txt, "# trigger -, window -, interval -"), "%s", txt ? txt : "");
    free(txt);
    /* a counts trace: no selection mode either */
    snprintf(d, sizeof d, "%s/out/counts", tdir);
    eplb_test_cli_expect(0, NULL, "run '%s' --gpus 4 --device cpu --quiet --policy-time 0 "
                                  "--trigger once --out '%s'", cnt_trace, d);
    snprintf(f, sizeof f, "%s/config.json", d);
    eplb_assert_ok(eplb_json_parse_file(&v, f));
    const eplb_json_t *sel = eplb_json_get(v, "select"), *trig = eplb_json_get(v, "trigger");
    cr_assert(sel && sel->type == EPLB_JSON_NULL, "select is not null on a counts trace");
    cr_assert(trig && trig->type == EPLB_JSON_STRING && !strcmp(trig->str, "once"));
    cr_assert(eplb_json_get(v, "window")->type == EPLB_JSON_NULL);
    eplb_json_free(v);
    snprintf(f, sizeof f, "%s/report.txt", d);
    txt = eplb_test_slurp_text(f);
    cr_assert(txt && strstr(txt, "# trigger once, window -, interval -"), "%s", txt ? txt : "");
    free(txt);
}

Test(run_cli, counts_only_trace)
{
    eplb_json_t *v = run_json("run '%s' --gpus 4 --json --quiet", cnt_trace);
    assert_deepseek_beats_none(v);
    eplb_json_free(v);
}

/* The shipped ESFT trace: deepseek balances better than none at 8 GPUs with
 * 8 redundant slots. */
Test(run_cli, esft_deepseek_beats_none)
{
    const char *tr = eplb_test_path(eplb_test_srcdir(), "traces/esft-intent.h5");
    if (!eplb_test_exists(tr))
        cr_skip_test("%s not present", tr);
    eplb_json_t *v = run_json("'%s' --gpus 8 --redundant 8 --json --quiet", tr);
    assert_deepseek_beats_none(v);
    eplb_json_free(v);
}

/* notebooks/report.ipynb runs over a fresh results.h5 (its code cells, in
 * order, with a non-interactive matplotlib backend). */
Test(run_cli, report_notebook_runs)
{
    if (system("python3 -c 'import h5py, matplotlib, nbformat' >/dev/null 2>&1") != 0)
        cr_skip_test("python3 with h5py, matplotlib and nbformat not available");
    char out_dir[600], script[700], cmd[2400];
    snprintf(out_dir, sizeof out_dir, "%s/nb", tdir);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "run '%s' --policy deepseek,oracle --quiet --out '%s'",
                               tok_trace, out_dir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    snprintf(script, sizeof script, "%s/run_nb.py", tdir);
    eplb_test_write_text(script, "import sys, nbformat\n"
                                 "nb = nbformat.read(sys.argv[1], as_version=4)\n"
                                 "g = {}\n"
                                 "for c in nb.cells:\n"
                                 "    if c.cell_type == 'code':\n"
                                 "        exec(compile(c.source, 'cell', 'exec'), g)\n"
                                 "print('notebook ok')\n");
    snprintf(cmd, sizeof cmd,
             "EPLB_RESULTS='%s/results.h5' MPLBACKEND=Agg python3 '%s' "
             "'%s/notebooks/report.ipynb' > '%s/nb.log' 2>&1",
             out_dir, script, eplb_test_srcdir(), tdir);
    int st = system(cmd);
    if (st != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/nb.log' >&2", tdir);
        cr_assert_eq(system(cmd), 0);
    }
    cr_assert_eq(st, 0, "notebook failed (log above)");
}

/* --device gpu: the GPU routes, or a clear runtime error (exit 1) where the
 * build or the machine has none.  --device auto: the CPU for a trace
 * without logits or a small one; where it tries the GPU
 * (EPLB_AUTO_GPU_BYTES=0: from 0 bytes of logits) it falls back to the CPU
 * silently, saying why. */
Test(run_cli, device_gpu_or_clear_error)
{
    const char *tr = eplb_test_path(eplb_test_srcdir(), "traces/dsv3-small.h5");
    if (!eplb_test_exists(tr))
        cr_skip_test("%s not present", tr);
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "run '%s' --device gpu --json --quiet", tr);
    if (rc == 0)
        cr_assert(strstr(out, "\"device\": \"gpu (") != NULL, "%s", out);
    else
        cr_assert(rc == 1 && strstr(out, "eplb-replay run: --device gpu: "), "rc %d: %s", rc,
                  out);
    free(out);
    rc = eplb_test_run_cli(&out, "run '%s' --device auto --json --quiet", tok_trace);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\"device\": \"cpu (the trace has no logits)\"") != NULL, "%s", out);
    free(out);
    rc = eplb_test_run_cli(&out, "run '%s' --device auto --json --quiet", tr);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\"device\": \"cpu (small trace)\"") != NULL, "%s", out);
    free(out);
    setenv("EPLB_AUTO_GPU_BYTES", "0", 1);
    rc = eplb_test_run_cli(&out, "run '%s' --device auto --json --quiet", tr);
    unsetenv("EPLB_AUTO_GPU_BYTES");
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, eplb_gpu_built() ? "\"device\": \"cpu (no usable GPU)\""
                                           : "\"device\": \"cpu (built without CUDA)\"") ||
                  strstr(out, "\"device\": \"gpu ("),
              "%s", out);
    free(out);
}

/* A trace of fewer than 4 steps ends before any online schedule decides, so
 * the default trigger is `once` there; an explicit --trigger is kept. */
Test(run_cli, short_trace_defaults_to_once)
{
    enum { L = 2, E = 8 };
    char path[600];
    snprintf(path, sizeof path, "%s/short.h5", tdir);
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts("test-moe", "test_run_cli.c", L, E, 2, EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    /* expert 0 carries most of the load: a placement that replicates it
     * beats the default one. */
    int32_t counts[L][E] = {{90, 10, 10, 10, 10, 10, 10, 10}, {10, 90, 10, 10, 10, 10, 10, 10}};
    eplb_assert_ok(eplb_trace_writer_append_step(w, 80, NULL, NULL, NULL, &counts[0][0], NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));

    eplb_json_t *v = run_json("run '%s' --gpus 4 --json --quiet --policy-time 0", path);
    const eplb_json_t *trig = eplb_json_get(eplb_json_get(v, "config"), "trigger");
    cr_assert(trig && trig->type == EPLB_JSON_STRING);
    cr_assert_str_eq(trig->str, "once");
    assert_deepseek_beats_none(v);
    eplb_json_free(v);

    v = run_json("run '%s' --gpus 4 --trigger vllm --json --quiet", path);
    cr_assert_str_eq(eplb_json_get(eplb_json_get(v, "config"), "trigger")->str, "vllm");
    cr_assert_eq(num(run_of(eplb_json_get(v, "runs"), "deepseek"), "rebalances"), 0);
    eplb_json_free(v);
    unlink(path);
}

/* A top-2 trace of 3 layers of 16 experts with a source rank (0-5) per
 * token, for the pipeline and block tests below: S steps of 1-12 tokens
 * (none at the steps s with s % empty_every == 5 where empty_every > 0),
 * three in four of each token's first
 * experts on a hot expert that moves every hot_steps steps, the second
 * another expert; drawn from seed. */
enum { RT_L = 3, RT_E = 16, RT_K = 2, RT_TMAX = 12, RT_RANKS = 6 };
static void write_ranks_trace(const char *path, int S, int hot_steps, int empty_every,
                              uint64_t seed)
{
    eplb_trace_writer_opts_t wo =
        eplb_test_writer_opts("test-moe", "test_run_cli.c", RT_L, RT_E, RT_K, EPLB_LEVEL_TOPK);
    wo.src_rank = 1;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &wo));
    uint64_t x = seed;
    for (int s = 0; s < S; s++) {
        int32_t ids[RT_TMAX][RT_L][RT_K];
        uint16_t rk[RT_TMAX];
        int T = 1 + (int)(eplb_test_rng_next(&x) % RT_TMAX);
        if (empty_every > 0 && s % empty_every == 5)
            T = 0;
        for (int t = 0; t < T; t++) {
            rk[t] = (uint16_t)(eplb_test_rng_next(&x) % RT_RANKS);
            for (int l = 0; l < RT_L; l++) {
                uint64_t y = eplb_test_rng_next(&x);
                int e0 = y % 4 ? (s / hot_steps + l) % RT_E : (int)((y >> 8) % RT_E);
                ids[t][l][0] = e0;
                ids[t][l][1] = (e0 + 1 + (int)((y >> 16) % (RT_E - 1))) % RT_E;
            }
        }
        eplb_assert_ok(eplb_trace_writer_append_step(w, T, NULL, &ids[0][0][0], NULL, NULL, rk, 0));
    }
    eplb_assert_ok(eplb_trace_writer_finish(w));
}

/* nr runs of policies pol with triggers kind (window W, interval I) on 4
 * GPUs in 2 nodes with 20 slots. */
static void ranks_runs(eplb_sim_run_cfg_t *runs, int nr, const char *const *pol,
                       const eplb_trigger_kind_t *kind, int W, int I)
{
    for (int i = 0; i < nr; i++)
        runs[i] = eplb_test_run_cfg(pol[i], 4, 2, 20, kind[i], W, I);
}

/* The GPU selection pipeline (two result slots per run, step s selected
 * while step s-1 is modelled, the next block read on a second thread),
 * run with the CPU kernels in place of the GPU (opts.gpu_select 2), gives
 * the CPU path's results exactly: several blocks (> 256 steps), source
 * ranks beyond D (rank mod D), empty steps, every trigger kind, async
 * commits, 1 and 2 worker threads. */
Test(run_cli, gpu_select_pipeline_matches_cpu)
{
    enum { S = 300 };
    char path[600];
    snprintf(path, sizeof path, "%s/ranks.h5", tdir);
    write_ranks_trace(path, S, 50, 17, 777);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    enum { NR = 7 };
    eplb_sim_run_cfg_t runs[NR];
    const char *pol[NR] = {"none",     "deepseek", "lpt",     "deepseek",
                           "deepseek", "deepseek", "deepseek"};
    const eplb_trigger_kind_t kind[NR] = {EPLB_TRIGGER_VLLM,   EPLB_TRIGGER_VLLM,
                                          EPLB_TRIGGER_SGLANG, EPLB_TRIGGER_TRTLLM,
                                          EPLB_TRIGGER_ORACLE, EPLB_TRIGGER_ONCE,
                                          EPLB_TRIGGER_THRESHOLD};
    ranks_runs(runs, NR, pol, kind, 20, 30);
    runs[2].trig.async = EPLB_ASYNC_LAYERS;
    runs[3].trig.chunk = 2;
    runs[5].num_gpus = 2; /* another D: ranks mod 2 */
    runs[5].num_nodes = 1;
    const eplb_select_mode_t modes[] = {EPLB_SELECT_HASH, EPLB_SELECT_RR_BLOCK,
                                        EPLB_SELECT_BALANCED, EPLB_SELECT_LOCAL};
    for (int m = 0; m < 4; m++)
        for (int th = 1; th <= 2; th++) {
            eplb_sim_result_t res[2][NR];
            for (int g = 0; g < 2; g++) {
                eplb_sim_opts_t o = eplb_test_sim_opts();
                o.select = modes[m];
                o.seed = 3;
                o.threads = th;
                o.keep_events = 1;
                o.gpu_select = g ? 2 : 0;
                eplb_sim_source_t *src = NULL;
                eplb_assert_ok(eplb_sim_source_trace(&src, tr));
                eplb_assert_ok(eplb_sim_replay(res[g], src, runs, NR, &o));
                eplb_sim_source_free(src);
            }
            for (int i = 0; i < NR; i++) {
                const eplb_sim_result_t *a = &res[0][i], *b = &res[1][i];
                const char *what = eplb_select_mode_name(modes[m]);
                cr_assert_eq(a->steps, S);
                cr_assert(a->balancedness > 0 && a->balancedness < 1, "%s run %d", what, i);
                cr_assert_eq(a->balancedness, b->balancedness, "%s run %d", what, i);
                cr_assert_eq(a->max_over_mean, b->max_over_mean, "%s run %d", what, i);
                cr_assert_eq(a->worst_layer, b->worst_layer);
                cr_assert_eq(a->worst_layer_bal, b->worst_layer_bal);
                cr_assert_eq(a->rebalances, b->rebalances);
                cr_assert_eq(a->moved_replicas, b->moved_replicas);
                cr_assert_eq(a->moved_bytes, b->moved_bytes);
                cr_assert_eq(a->stall_s, b->stall_s);
                cr_assert_eq(a->compute_s, b->compute_s, "%s run %d", what, i);
                cr_assert_eq(a->a2a_s, b->a2a_s, "%s run %d", what, i);
                cr_assert_eq(a->overhead_s, b->overhead_s);
                cr_assert_eq(a->total_s, b->total_s);
                cr_assert_eq(a->tokens_lost, b->tokens_lost);
                cr_assert_eq(a->n_events, b->n_events);
                cr_assert(i == 0 || i == 5 || a->n_events > 0, "run %d never rebalanced", i);
                cr_assert(a->n_events == 0 ||
                              !memcmp(a->events, b->events, a->n_events * sizeof *a->events),
                          "%s run %d: events differ", what, i);
            }
            eplb_sim_results_free(res[0], NR);
            eplb_sim_results_free(res[1], NR);
        }
    eplb_trace_close(tr);
    unlink(path);
}

/* results.h5's gpu_tokens are int64: a counts trace's expert counts reach
 * 2^31 - 1 and a GPU sums several (an SGLang run total wrapped to a
 * negative int32).  8 experts of 2^31 - 1 on 2 GPUs without redundancy:
 * none's default placement puts experts 0-3 on GPU 0, 4-7 on GPU 1, so
 * each computes 4 x (2^31 - 1) entries. */
Test(run_cli, results_gpu_tokens_past_int32)
{
    char json[600], h5[600], out[600], res[700];
    snprintf(json, sizeof json, "%s/big.json", tdir);
    snprintf(h5, sizeof h5, "%s/big.h5", tdir);
    snprintf(out, sizeof out, "%s/bigout", tdir);
    snprintf(res, sizeof res, "%s/results.h5", out);
    eplb_test_write_text(json, "{\"logical_count\": [[2147483647, 2147483647, 2147483647, "
                               "2147483647, 2147483647, 2147483647, 2147483647, 2147483647]]}");
    eplb_test_cli_expect(0, "wrote", "import --format sglang-counts '%s' --top-k 1 -o '%s'", json,
                         h5);
    eplb_test_cli_expect(0, NULL,
                         "run '%s' --gpus 2 --redundant 0 --policy none --quiet "
                         "--policy-time 0 --out '%s'",
                         h5, out);
    hid_t f = H5Fopen(res, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", res);
    hid_t d = H5Dopen2(f, "/runs/000/gpu_tokens", H5P_DEFAULT);
    cr_assert(d >= 0);
    hid_t t = H5Dget_type(d);
    cr_assert_eq(H5Tget_size(t), 8u, "gpu_tokens is not 64-bit");
    H5Tclose(t);
    hid_t sp = H5Dget_space(d);
    cr_assert_eq(H5Sget_simple_extent_npoints(sp), 2); /* 1 step x 1 layer x 2 GPUs */
    int64_t g[2] = {0, 0};
    cr_assert(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, g) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    cr_assert_eq(g[0], INT64_C(4) * 2147483647, "GPU 0: %lld", (long long)g[0]);
    cr_assert_eq(g[1], INT64_C(4) * 2147483647, "GPU 1: %lld", (long long)g[1]);
}

/* log2phy's rows are as wide as the most replicas any expert has had in the
 * run, widened as placements need (they held P - E + 1 each: 2.2 GB for
 * 1024 layers of 512 experts on 1024 slots).  A skewed trace with 28
 * redundant slots on 4 GPUs: deepseek gives hot experts far more replicas
 * than the default placement's 2, committed one layer a step (the widening
 * inside a run); every (token, expert) entry still lands on a GPU: each
 * step and layer of gpu_tokens sums to tokens x K. */
Test(run_cli, replica_rows_widen_as_placements_need)
{
    char tr[600], out[600], res[700];
    snprintf(tr, sizeof tr, "%s/skew.h5", tdir);
    snprintf(out, sizeof out, "%s/skewout", tdir);
    snprintf(res, sizeof res, "%s/results.h5", out);
    eplb_test_cli_expect(0, "wrote",
                         "gen --preset esft-lite --steps 12 --tokens-per-step 64 "
                         "--layers 3 --dtype f32 -o '%s'",
                         tr);
    eplb_test_cli_expect(0, NULL,
                         "run '%s' --gpus 4 --redundant 28 --policy deepseek "
                         "--async layers --interval 3 --quiet --policy-time 0 --out '%s'",
                         tr, out);
    int64_t T[13]; /* the trace's step offsets */
    hid_t f = H5Fopen(tr, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", tr);
    hid_t d = H5Dopen2(f, "/steps/token_offset", H5P_DEFAULT);
    cr_assert(d >= 0);
    cr_assert(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, T) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    f = H5Fopen(res, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", res);
    /* deepseek's final placement gives some expert more than 2 replicas
     * (the default's most): the rows widened during the run */
    d = H5Dopen2(f, "/runs/001/placement_final", H5P_DEFAULT);
    cr_assert(d >= 0);
    int32_t pf[3 * 92];
    cr_assert(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pf) >= 0);
    H5Dclose(d);
    int most = 0;
    for (int l = 0; l < 3; l++) {
        int cnt[64] = {0};
        for (int p = 0; p < 92; p++) {
            cr_assert(pf[l * 92 + p] >= 0 && pf[l * 92 + p] < 64);
            if (++cnt[pf[l * 92 + p]] > most)
                most = cnt[pf[l * 92 + p]];
        }
    }
    cr_assert_gt(most, 2, "no expert got more than 2 replicas: nothing widened");
    for (int run = 0; run < 2; run++) {
        char name[64];
        snprintf(name, sizeof name, "/runs/%03d/gpu_tokens", run);
        d = H5Dopen2(f, name, H5P_DEFAULT);
        cr_assert(d >= 0, "%s", name);
        int64_t g[12 * 3 * 4];
        cr_assert(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, g) >= 0);
        H5Dclose(d);
        for (int st = 0; st < 12; st++)
            for (int l = 0; l < 3; l++) {
                int64_t sum = 0;
                for (int q = 0; q < 4; q++)
                    sum += g[(st * 3 + l) * 4 + q];
                cr_assert_eq(sum, (T[st + 1] - T[st]) * 6, "run %d step %d layer %d", run, st, l);
            }
    }
    H5Fclose(f);
}

/* SGLang's {"logical_count": ...} of the counts c into path: [L][E] where
 * S is 0, else [S][L][E]. */
static void write_logical_count(const char *path, const int *c, int S, int L, int E)
{
    char text[4096];
    size_t n = (size_t)snprintf(text, sizeof text, "{\"logical_count\": %s", S ? "[" : "");
    for (int st = 0; st < (S ? S : 1); st++) {
        n += (size_t)snprintf(text + n, sizeof text - n, "%s[", st ? "," : "");
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                n +=
                    (size_t)snprintf(text + n, sizeof text - n, "%s%d%s", e ? "" : (l ? ",[" : "["),
                                     c[((size_t)st * L + l) * E + e], e + 1 < E ? "," : "]");
        n += (size_t)snprintf(text + n, sizeof text - n, "]");
    }
    cr_assert_lt(n + 3, sizeof text, "logical_count text too long");
    snprintf(text + n, sizeof text - n, "%s}", S ? "]" : "");
    eplb_test_write_text(path, text);
}

/* The mapping itself after the rows widen: a counts trace (1 step, 2 layers
 * of 8 experts, one hot expert a layer) placed once by deepseek with 10
 * redundant slots on 2 GPUs, so the hot experts get several replicas (the
 * rows widen from 1 in the run's first derive).  gpu_tokens is recomputed
 * here from placement_final and the documented even split (simulator.md:
 * each of an expert's R replicas gets c / R, the first c mod R in
 * ascending slot order one more) and must match exactly. */
Test(run_cli, widened_rows_map_counts_to_the_right_gpus)
{
    enum { L = 2, E = 8, P = 18, D = 2 };
    static const int c[L][E] = {{900, 13, 7, 55, 1, 0, 3, 21}, {2, 5, 1000, 8, 77, 19, 4, 6}};
    char json[600], h5[600], out[600], res[700];
    snprintf(json, sizeof json, "%s/hot.json", tdir);
    snprintf(h5, sizeof h5, "%s/hot.h5", tdir);
    snprintf(out, sizeof out, "%s/hotout", tdir);
    snprintf(res, sizeof res, "%s/results.h5", out);
    write_logical_count(json, &c[0][0], 0, L, E);
    eplb_test_cli_expect(0, "wrote", "import --format sglang-counts '%s' --top-k 1 -o '%s'", json,
                         h5);
    eplb_test_cli_expect(0, NULL,
                         "run '%s' --gpus %d --redundant 10 --policy deepseek "
                         "--trigger once --quiet --policy-time 0 --out '%s'",
                         h5, D, out);
    hid_t f = H5Fopen(res, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", res);
    int32_t p2l[L][P];
    int64_t g[L][D];
    hid_t d = H5Dopen2(f, "/runs/001/placement_final", H5P_DEFAULT);
    cr_assert(d >= 0);
    cr_assert(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, p2l) >= 0);
    H5Dclose(d);
    d = H5Dopen2(f, "/runs/001/gpu_tokens", H5P_DEFAULT);
    cr_assert(d >= 0);
    cr_assert(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, g) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    int most = 0;
    for (int l = 0; l < L; l++) {
        int64_t want[D] = {0, 0};
        for (int e = 0; e < E; e++) {
            int R = 0;
            for (int q = 0; q < P; q++)
                R += p2l[l][q] == e;
            cr_assert_gt(R, 0, "layer %d expert %d has no replica", l, e);
            most = R > most ? R : most;
            for (int q = 0, k = 0; q < P; q++)
                if (p2l[l][q] == e)
                    want[q / (P / D)] += c[l][e] / R + (k++ < c[l][e] % R);
        }
        for (int q = 0; q < D; q++)
            cr_assert_eq(g[l][q], want[q], "layer %d GPU %d: %lld, want %lld", l, q,
                         (long long)g[l][q], (long long)want[q]);
    }
    cr_assert_gt(most, 2, "no expert got more than 2 replicas");
}

/* Each run worker holds a step's replica ids (max step tokens x L x K x 4
 * bytes); the workers are capped so that these take at most half of the
 * memory the process may take (EPLB_MEMORY_AVAILABLE models a small
 * machine), and the output does not change.  esft-lite: 26 layers x top-6,
 * so a step of at least 802 tokens (the trace's mean is 4096) needs more
 * than half of 1 MB: one worker. */
Test(run_cli, run_workers_fit_in_memory)
{
    char tr[600];
    snprintf(tr, sizeof tr, "%s/wide.h5", tdir);
    eplb_test_cli_expect(0, "wrote",
                         "gen --preset esft-lite --steps 4 --tokens-per-step 4096 "
                         "--dtype f32 -o '%s'",
                         tr);
    static const char *args = "run '%s' --policy deepseek,lpt,global --threads 4 --quiet --json "
                              "--policy-time 0 --device cpu";
    char *all = NULL, *capped = NULL, *tm = NULL;
    char fmt[400];
    snprintf(fmt, sizeof fmt, "%s 2>/dev/null; exit $?", args);
    cr_assert_eq(eplb_test_run_cli(&all, fmt, tr), 0, "%s", all);
    cr_assert_eq(setenv("EPLB_MEMORY_AVAILABLE", "1000000", 1), 0);
    cr_assert_eq(eplb_test_run_cli(&capped, fmt, tr), 0, "%s", capped);
    cr_assert_str_eq(capped, all, "the output changed with fewer workers");
    cr_assert_eq(setenv("EPLB_TIMINGS", "1", 1), 0);
    /* stderr alone (the helper appends 2>&1 to the last command: exit) */
    snprintf(fmt, sizeof fmt, "%s 2>&1 >/dev/null; exit $?", args);
    cr_assert_eq(eplb_test_run_cli(&tm, fmt, tr), 0, "%s", tm);
    cr_assert(strstr(tm, "(1 run workers)"), "%s", tm);
    free(tm);
    unsetenv("EPLB_MEMORY_AVAILABLE");
    cr_assert_eq(eplb_test_run_cli(&tm, fmt, tr), 0, "%s", tm);
    cr_assert(strstr(tm, "(4 run workers)"), "%s", tm);
    unsetenv("EPLB_TIMINGS");
    free(tm);
    free(all);
    free(capped);
}

/* vec under --trigger once gets the whole trace step by step, as rebalance
 * gets a 3-D logical_count (it got the summed loads: 13,620 slots of a
 * DeepSeek-V3 series placed otherwise): a 4-step series imported and run
 * once places every layer as `rebalance --policy vec` of the same file. */
Test(run_cli, once_vec_gets_the_series)
{
    enum { S = 4, L = 2, E = 8, P = 12, D = 4 };
    char json[600], h5[600], out[600], res[700];
    snprintf(json, sizeof json, "%s/ser.json", tdir);
    snprintf(h5, sizeof h5, "%s/ser.h5", tdir);
    snprintf(out, sizeof out, "%s/serout", tdir);
    snprintf(res, sizeof res, "%s/results.h5", out);
    /* loads that move between steps: vec's series differs from the sum */
    int c[S][L][E];
    uint64_t rng = 7;
    for (int st = 0; st < S; st++)
        for (int l = 0; l < L; l++)
            for (int e = 0; e < E; e++)
                c[st][l][e] = (int)(eplb_test_rng_next(&rng) % 50) + (e == (st + l) % E) * 400;
    write_logical_count(json, &c[0][0][0], S, L, E);
    eplb_test_cli_expect(0, "wrote",
                         "import --format sglang-counts '%s' --top-k 2 --model toy "
                         "-o '%s'",
                         json, h5);
    eplb_test_cli_expect(0, NULL,
                         "run '%s' --gpus %d --replicas %d --policy vec --trigger once "
                         "--quiet --policy-time 0 --out '%s'",
                         h5, D, P, out);
    char *rb = NULL;
    cr_assert_eq(eplb_test_run_cli(&rb,
                                   "rebalance --weights '%s' --replicas %d --gpus %d "
                                   "--policy vec 2>/dev/null; exit $?",
                                   json, P, D),
                 0, "%s", rb);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, rb, strlen(rb), "rebalance output"));
    const eplb_json_t *p2l = eplb_json_get(v, "phy2log");
    cr_assert(p2l && p2l->n == L, "%s", rb);
    hid_t f = H5Fopen(res, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0, "cannot open %s", res);
    hid_t d = H5Dopen2(f, "/runs/001/placement_final", H5P_DEFAULT);
    cr_assert(d >= 0);
    int32_t pf[L][P];
    cr_assert(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pf) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    for (int l = 0; l < L; l++)
        for (int q = 0; q < P; q++)
            cr_assert_eq(pf[l][q], (int32_t)eplb_test_num_at(&p2l->values[l], (size_t)q),
                         "layer %d slot %d", l, q);
    eplb_json_free(v);
    free(rb);
}

/* The run table's numbers are the JSON's in the legend's units (found by
 * mutation testing: the GB column /1e6 and stall_ms x1e6 both passed):
 * bal %.4f, max/mn %.3f, rebal, moved, GB = moved_bytes / 1e9 (%.3f),
 * stall_ms = stall_s x 1e3 (%.3f), moe_us/st = moe_time_s x 1e6 (%.1f),
 * ovh_us/st = overhead_s x 1e6 (%.2f); report.txt and summary.json of one
 * run --out. */
Test(run_cli, table_columns_are_the_json_in_their_units)
{
    char d[600], f[700];
    snprintf(d, sizeof d, "%s/out/units", tdir);
    eplb_test_cli_expect(0, NULL,
                         "run '%s' --policy deepseek --gpus 4 --window 2 --interval 4 "
                         "--policy-time 0.001 --device cpu --quiet --out '%s'",
                         tok_trace, d);
    eplb_json_t *v = NULL;
    snprintf(f, sizeof f, "%s/summary.json", d);
    eplb_assert_ok(eplb_json_parse_file(&v, f));
    const eplb_json_t *runs = eplb_json_get(v, "runs");
    cr_assert(runs && runs->n == 2, "runs");
    snprintf(f, sizeof f, "%s/report.txt", d);
    char *rep = eplb_test_slurp_text(f);
    int seen = 0;
    for (size_t i = 0; i < runs->n; i++) {
        const eplb_json_t *r = &runs->values[i];
        const char *label = eplb_json_get(r, "label")->str;
        /* the row: its label first, then the cells after '|' */
        for (char *line = rep; line && *line;
             line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
            if (strncmp(line, label, strlen(label)) || line[strlen(label)] != ' ')
                continue;
            char row[1024];
            size_t n = strcspn(line, "\n");
            snprintf(row, sizeof row, "%.*s", (int)n, line);
            const char *bar = strchr(row, '|');
            cr_assert_not_null(bar, "%s", row);
            char bal[32], mm[32], worst[32], rebal[32], moved[32], gb[32], st[32], moe[32], ovh[32];
            cr_assert_eq(sscanf(bar + 1, "%31s %31s %31s %31s %31s %31s %31s %31s %31s", bal, mm,
                                worst, rebal, moved, gb, st, moe, ovh),
                         9, "%s", row);
            char x[64];
            snprintf(x, sizeof x, "%.4f", num(r, "balancedness"));
            cr_assert_str_eq(bal, x, "%s", row);
            snprintf(x, sizeof x, "%.3f", num(r, "max_over_mean"));
            cr_assert_str_eq(mm, x, "%s", row);
            snprintf(x, sizeof x, "%.0f", num(r, "rebalances"));
            cr_assert_str_eq(rebal, x, "%s", row);
            snprintf(x, sizeof x, "%.0f", num(r, "moved_replicas"));
            cr_assert_str_eq(moved, x, "%s", row);
            snprintf(x, sizeof x, "%.3f", num(r, "moved_bytes") / 1e9);
            cr_assert_str_eq(gb, x, "GB: %s", row);
            snprintf(x, sizeof x, "%.3f", num(r, "stall_s") * 1e3);
            cr_assert_str_eq(st, x, "stall_ms: %s", row);
            snprintf(x, sizeof x, "%.1f", num(r, "moe_time_s") * 1e6);
            cr_assert_str_eq(moe, x, "moe_us/st: %s", row);
            snprintf(x, sizeof x, "%.2f", num(r, "overhead_s") * 1e6);
            cr_assert_str_eq(ovh, x, "ovh_us/st: %s", row);
            seen++;
            break;
        }
    }
    cr_assert_eq(seen, 2, "rows found: %d\n%s", seen, rep);
    /* and the deepseek run moved something, so GB and stall_ms are not 0 */
    cr_assert_gt(num(&runs->values[1], "moved_bytes"), 0);
    cr_assert_gt(num(&runs->values[1], "stall_s"), 0);
    free(rep);
    eplb_json_free(v);
}

/* The trace at path replayed by one `none` run: 2 GPUs, 4 slots, hash
 * selection, the default profile and DeepSeek-V3 shape.  The trace and
 * source stay open for the caller (the routing check reads the source);
 * returns the options. */
static eplb_sim_opts_t replay_none_on_2_gpus(eplb_sim_result_t *res, eplb_trace_t **tr,
                                             eplb_sim_source_t **src, const char *path)
{
    eplb_assert_ok(eplb_trace_open(tr, path));
    const eplb_sim_run_cfg_t r = eplb_test_run_cfg("none", 2, 1, 4, EPLB_TRIGGER_VLLM, 1, 4);
    eplb_sim_opts_t o = eplb_test_sim_opts();
    eplb_assert_ok(eplb_sim_source_trace(src, *tr));
    eplb_assert_ok(eplb_sim_replay(res, *src, &r, 1, &o));
    return o;
}

/* Source ranks beyond D run on GPU rank mod D (docs/simulator.md, Cost
 * model).  2 GPUs (experts 0-1 on GPU 0, 2-3 on GPU 1), 4 tokens: ranks 3
 * and 3 pick {2, 3}, ranks 0 and 0 pick {0, 1}: every token's experts are
 * on its own GPU (3 mod 2 = 1), so nothing crosses NVLink and the
 * all-to-all is the two phases' latency, 2 x nvlink_latency.  Tokens put
 * on GPUs by position (the first two on GPU 0) would send every token
 * across.  (Mutants: the ranks dropped, rank + 1 mod D.) */
Test(run_cli, source_ranks_place_tokens_on_their_gpus)
{
    enum { L = 1, E = 4, K = 2, T = 4 };
    char path[600];
    snprintf(path, sizeof path, "%s/ranks_mod.h5", tdir);
    eplb_trace_writer_opts_t wo =
        eplb_test_writer_opts("test-moe", "test_run_cli.c", L, E, K, EPLB_LEVEL_TOPK);
    wo.src_rank = 1;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &wo));
    const int32_t ids[T][L][K] = {{{2, 3}}, {{3, 2}}, {{0, 1}}, {{1, 0}}};
    const uint16_t rk[T] = {3, 3, 0, 0};
    eplb_assert_ok(eplb_trace_writer_append_step(w, T, NULL, &ids[0][0][0], NULL, NULL, rk, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_trace_t *tr = NULL;
    eplb_sim_source_t *src = NULL;
    eplb_sim_result_t res;
    const eplb_sim_opts_t o = replay_none_on_2_gpus(&res, &tr, &src, path);
    cr_assert_float_eq(res.a2a_s, 2 * o.prof.nvlink_lat, 1e-18, "a2a %g, want %g", res.a2a_s,
                       2 * o.prof.nvlink_lat);
    cr_assert_eq(res.tokens_lost, 0);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
    eplb_trace_close(tr);
    unlink(path);
}

/* The routing check compares each (token, layer) row's routed expert SET
 * with the recorded one (docs/simulator.md): the order of the recorded ids
 * does not matter.  4 experts, top-2, logits 1 2 3 4 route to {3, 2}
 * every token; recorded {3, 2}, {2, 3} (the same set, other order) and
 * {3, 1} (another set): 3 rows, 1 differs.  (Mutant: the ids compared
 * position by position.) */
Test(run_cli, routing_check_compares_sets)
{
    enum { L = 1, E = 4, K = 2, T = 3 };
    char path[600];
    snprintf(path, sizeof path, "%s/route_check.h5", tdir);
    eplb_trace_writer_opts_t wo = eplb_test_writer_opts("test-moe", "test_run_cli.c", L, E, K,
                                                        EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &wo));
    float logits[T][L][E];
    for (int t = 0; t < T; t++)
        for (int e = 0; e < E; e++)
            logits[t][0][e] = (float)(e + 1);
    const int32_t ids[T][L][K] = {{{3, 2}}, {{2, 3}}, {{3, 1}}};
    eplb_assert_ok(
        eplb_trace_writer_append_step(w, T, &logits[0][0][0], &ids[0][0][0], NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    eplb_trace_t *tr = NULL;
    eplb_sim_source_t *src = NULL;
    eplb_sim_result_t res;
    replay_none_on_2_gpus(&res, &tr, &src, path);
    int64_t rows = 0, differ = 0;
    eplb_sim_source_routing_check(src, &rows, &differ);
    cr_assert(rows == T && differ == 1, "rows %lld, differ %lld", (long long)rows,
              (long long)differ);
    eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
    eplb_trace_close(tr);
    unlink(path);
}

/* A counts-only trace of S steps of one token, 1 layer, 4 experts, top-1
 * (expert s mod 4 at step s), at dir/name. */
static const char *counts_trace_of(const char *name, int S)
{
    const char *path = eplb_test_path(tdir, name);
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts("test-moe", "test_run_cli.c", 1, 4, 1, EPLB_LEVEL_COUNTS);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    for (int s = 0; s < S; s++) {
        int32_t cn[4] = {0};
        cn[s % 4] = 1;
        eplb_assert_ok(eplb_trace_writer_append_step(w, 1, NULL, NULL, NULL, cn, NULL, 0));
    }
    eplb_assert_ok(eplb_trace_writer_finish(w));
    return path;
}

/* The default interval at the ends of its clamp (docs/cli.md: S/4
 * clamped to [4, 3000], sglang [2, 1000]; window I/3, sglang I): 13 steps
 * give vllm I = 4 (13/4 = 3 is below 4), W = 1, and sglang I = W = 3;
 * 4004 steps give sglang I = W = 1000 (4004/4 = 1001).  Mutation testing:
 * a lower bound of 3, and a cap of 999, passed. */
Test(run_cli, default_interval_clamps)
{
    static const struct {
        int S;
        const char *trigger;
        int interval, window;
    } c[] = {{13, "vllm", 4, 1}, {13, "sglang", 3, 3}, {4004, "sglang", 1000, 1000}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "clamp-%d.h5", c[i].S);
        const char *t = counts_trace_of(name, c[i].S);
        eplb_json_t *v = run_json("run '%s' --trigger %s --gpus 2 --json --quiet --policy-time 0",
                                  t, c[i].trigger);
        const eplb_json_t *ds = run_of(eplb_json_get(v, "runs"), "deepseek");
        cr_assert_not_null(ds);
        cr_assert_eq(num(ds, "interval"), c[i].interval, "%d steps, %s: interval %g, want %d",
                     c[i].S, c[i].trigger, num(ds, "interval"), c[i].interval);
        cr_assert_eq(num(ds, "window"), c[i].window, "%d steps, %s: window %g, want %d", c[i].S,
                     c[i].trigger, num(ds, "window"), c[i].window);
        eplb_json_free(v);
        unlink(t);
    }
}

/* The default trigger is once for a trace of fewer than 4 steps, vllm
 * from 4 on (docs/cli.md, --trigger): 3 steps give once, 4 give vllm.
 * Mutation testing: `S < 3` passed (the other test has 1 step). */
Test(run_cli, default_trigger_once_below_4_steps)
{
    static const struct {
        int S;
        const char *trigger;
    } c[] = {{3, "once"}, {4, "vllm"}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "short-%d.h5", c[i].S);
        const char *t = counts_trace_of(name, c[i].S);
        eplb_json_t *v = run_json("run '%s' --gpus 2 --json --quiet --policy-time 0", t);
        const eplb_json_t *trig = eplb_json_get(eplb_json_get(v, "config"), "trigger");
        cr_assert(trig && trig->type == EPLB_JSON_STRING);
        cr_assert_str_eq(trig->str, c[i].trigger, "%d steps: trigger %s, want %s", c[i].S,
                         trig->str, c[i].trigger);
        eplb_json_free(v);
        unlink(t);
    }
}

/* --policy-time takes S up to 86400 seconds inclusive (docs/cli.md: "at
 * most 86400"), and 0; a run charged a day per decision still exits 0.
 * Mutation testing: `< 86400` passed (only 86401 was tried). */
Test(run_cli, policy_time_bounds_inclusive)
{
    eplb_test_cli_expect(0, NULL, "run '%s' --quiet --json --policy-time 86400", tok_trace);
    eplb_test_cli_expect(0, NULL, "run '%s' --quiet --json --policy-time 0", tok_trace);
    eplb_test_cli_expect(2, "--policy-time", "run '%s' --quiet --json --policy-time -1", tok_trace);
}

/* --trigger threshold without --threshold rearranges below 0.9
 * (docs/cli.md: "rearrange when balancedness < X (0.9"): the config says
 * 0.9.  Mutation testing: another default set for that trigger passed. */
Test(run_cli, threshold_trigger_default_0_9)
{
    eplb_json_t *v =
        run_json("run '%s' --trigger threshold --json --quiet --policy-time 0", tok_trace);
    const eplb_json_t *cfg = eplb_json_get(v, "config");
    cr_assert_str_eq(eplb_json_get(cfg, "trigger")->str, "threshold");
    cr_assert_eq(num(cfg, "threshold"), 0.9);
    eplb_json_free(v);
}

/* A bad trace value met in a block that is read ahead (on the second
 * thread, while the runs go through the block before) fails the replay
 * with the reader's message, as one met in the first block does
 * (docs/simulator.md: invalid expert ids are refused as the trace is
 * read).  6 steps of 5 tokens, blocks of one step: token 22 (step 4)
 * layer 1 names expert 8 of 8; on the CPU path and on the GPU path's
 * pipeline (emulated).  (Mutation testing of sim/replay.c: the read-ahead
 * thread's status dropped (M34).) */
Test(run_cli, bad_id_in_a_block_read_ahead_fails_the_replay)
{
    enum { S = 6, T = 5, L = 2, E = 8, K = 2 };
    char path[600];
    snprintf(path, sizeof path, "%s/badlate.h5", tdir);
    eplb_trace_writer_opts_t wo =
        eplb_test_writer_opts("test-moe", "test_run_cli.c", L, E, K, EPLB_LEVEL_TOPK);
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &wo));
    for (int s = 0; s < S; s++) {
        int32_t ids[T][L][K];
        for (int t = 0; t < T; t++)
            for (int l = 0; l < L; l++) {
                ids[t][l][0] = (s + t + l) % E;
                ids[t][l][1] = (s + t + l + 3) % E;
            }
        eplb_assert_ok(
            eplb_trace_writer_append_step(w, T, NULL, &ids[0][0][0], NULL, NULL, NULL, 0));
    }
    eplb_assert_ok(eplb_trace_writer_finish(w));
    const hsize_t c[3] = {22, 1, 0};
    const int32_t v = E;
    eplb_test_h5_poke(path, "/router/topk_ids", c, H5T_NATIVE_INT32, &v);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    const eplb_sim_run_cfg_t r = eplb_test_run_cfg("deepseek", 2, 1, E, EPLB_TRIGGER_VLLM, 1, 2);
    for (int g = 0; g < 2; g++) {
        eplb_sim_opts_t o = eplb_test_sim_opts();
        o.block_tokens = 1;
        o.gpu_select = g ? 2 : 0;
        eplb_sim_source_t *src = NULL;
        eplb_assert_ok(eplb_sim_source_trace(&src, tr));
        eplb_sim_result_t res;
        eplb_assert_fails(eplb_sim_replay(&res, src, &r, 1, &o), EPLB_ERR_FORMAT,
                          "/router/topk_ids: token 22 layer 1: expert id 8");
        eplb_sim_source_free(src);
    }
    eplb_trace_close(tr);
    unlink(path);
}

/* Replays runs[0, nr) of tr under --select local in one block, in blocks
 * of one step and in blocks of about 40 tokens, and asserts the same
 * metrics and events. */
static void replay_blocks_agree(const eplb_trace_t *tr, const eplb_sim_run_cfg_t *runs, int nr)
{
    enum { NR = 4 };
    cr_assert_leq(nr, NR);
    const int64_t blocks[3] = {1 << 22, 1, 40};
    eplb_sim_result_t res[3][NR];
    for (int c = 0; c < 3; c++) {
        eplb_sim_opts_t o = eplb_test_sim_opts();
        o.select = EPLB_SELECT_LOCAL;
        o.keep_events = 1;
        o.block_tokens = blocks[c];
        eplb_sim_source_t *src = NULL;
        eplb_assert_ok(eplb_sim_source_trace(&src, tr));
        eplb_assert_ok(eplb_sim_replay(res[c], src, runs, nr, &o));
        eplb_sim_source_free(src);
    }
    for (int c = 1; c < 3; c++)
        for (int i = 0; i < nr; i++) {
            const eplb_sim_result_t *a = &res[0][i], *b = &res[c][i];
            cr_assert(a->balancedness > 0 && a->balancedness < 1, "run %d", i);
            cr_assert_eq(a->balancedness, b->balancedness, "blocks %lld run %d: %.17g, want %.17g",
                         (long long)blocks[c], i, b->balancedness, a->balancedness);
            cr_assert_eq(a->a2a_s, b->a2a_s, "blocks %lld run %d", (long long)blocks[c], i);
            cr_assert_eq(a->compute_s, b->compute_s, "blocks %lld run %d", (long long)blocks[c], i);
            cr_assert_eq(a->total_s, b->total_s, "blocks %lld run %d", (long long)blocks[c], i);
            cr_assert_eq(a->n_events, b->n_events, "blocks %lld run %d", (long long)blocks[c], i);
            cr_assert(a->n_events == 0 ||
                          !memcmp(a->events, b->events, a->n_events * sizeof *a->events),
                      "blocks %lld run %d: events differ", (long long)blocks[c], i);
        }
    cr_assert_gt(res[0][nr - 1].n_events, 0); /* the last run rearranged */
    for (int c = 0; c < 3; c++)
        eplb_sim_results_free(res[c], nr);
}

/* once and the oracle read the trace twice; where the whole trace's ids
 * and source ranks fit (512 MiB) the second pass takes each block's ids
 * and ranks from those pass 1 kept (docs/simulator.md, Triggers).
 * Results do not depend on the blocks (sim/block_size_changes_nothing),
 * so a trace with source ranks replayed by once, oracle and vllm runs
 * under --select local (which places a token by its rank) in one block,
 * in blocks of one step and in blocks of about 40 tokens gives the same
 * metrics and events; so do the vllm runs alone, which keep nothing and
 * read each next block's ids and ranks ahead into second buffers.
 * (Mutants: every block of pass 2 given the kept ids (M28) or ranks (M29)
 * from the trace's first token; the next block's ranks read ahead into the
 * buffer the runs are using (M40).) */
Test(run_cli, cached_ids_and_ranks_of_every_block_used_by_pass_two)
{
    enum { S = 40, NR = 4 };
    char path[600];
    snprintf(path, sizeof path, "%s/ranks2.h5", tdir);
    write_ranks_trace(path, S, 10, 0, 4242);
    eplb_trace_t *tr = NULL;
    eplb_assert_ok(eplb_trace_open(&tr, path));
    eplb_sim_run_cfg_t runs[NR];
    const char *pol[NR] = {"none", "deepseek", "deepseek", "lpt"};
    const eplb_trigger_kind_t kind[NR] = {EPLB_TRIGGER_VLLM, EPLB_TRIGGER_ONCE, EPLB_TRIGGER_ORACLE,
                                          EPLB_TRIGGER_VLLM};
    ranks_runs(runs, NR, pol, kind, 4, 8);
    /* all four runs, then the vllm runs alone (runs 0 and 3) */
    for (int set = 0; set < 2; set++) {
        if (set == 1)
            runs[1] = runs[3];
        const int nr = set ? 2 : NR;
        replay_blocks_agree(tr, runs, nr);
    }
    eplb_trace_close(tr);
    unlink(path);
}
