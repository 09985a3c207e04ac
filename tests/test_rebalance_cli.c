/* test_rebalance_cli.c - `eplb-replay rebalance`: input forms, outputs,
 * exports and refusals, through the real binary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "json.h"

/* The DeepSeek EPLB README example and its published placement. */
static const char *README_W =
    "[[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],\n"
    " [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]\n";
static const int README_P2L[2][16] = {{5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1},
                                      {7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1}};
static const char *SHAPE = "--replicas 16 --groups 4 --nodes 2 --gpus 8";

/* The replica rank of each slot of README_P2L, as this policy numbers an
 * expert's copies (2 copies: 0 and 1). */
static const int README_RANK[2][16] = {{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0},
                                       {0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0}};

/* The whole `--format csv` text of README_P2L on SHAPE (2 slots a GPU, 4
 * GPUs a node), malloc'd; a slot moved if `old` (NULL: the default
 * placement, slot p holding expert p mod 12) had another expert there. */
static char *readme_csv(const int (*old)[16])
{
    size_t cap = 4096, n = 0;
    char *t = malloc(cap);
    cr_assert_not_null(t);
    n += (size_t)snprintf(t + n, cap - n, "layer,slot,gpu,node,expert,rank,moved\n");
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < 16; p++) {
            int was = old ? old[l][p] : p % 12;
            n += (size_t)snprintf(t + n, cap - n, "%d,%d,%d,%d,%d,%d,%d\n", l, p, p / 2, p / 8,
                                  README_P2L[l][p], README_RANK[l][p], was != README_P2L[l][p]);
            cr_assert_lt(n, cap);
        }
    return t;
}

/* Run with stdout and stderr in separate files; return the exit status. */
static int run_split(char **out, char **err, const char *dir, const char *args)
{
    char o[4096], e[4096];
    snprintf(o, sizeof o, "%s/stdout.txt", dir);
    snprintf(e, sizeof e, "%s/stderr.txt", dir);
    int rc = eplb_test_run_cli(NULL, "%s >'%s' 2>'%s'; exit $?", args, o, e);
    *out = eplb_test_slurp_text(o);
    *err = eplb_test_slurp_text(e);
    return rc;
}

static void assert_readme_phy2log(const char *json_text)
{
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, json_text, strlen(json_text), "stdout"));
    const eplb_json_t *p2l = eplb_json_get(v, "phy2log");
    cr_assert_not_null(p2l, "no phy2log in %s", json_text);
    int32_t *m;
    int r, c;
    eplb_assert_ok(eplb_json_matrix_i32(&m, &r, &c, p2l, "phy2log"));
    cr_assert_eq(r, 2);
    cr_assert_eq(c, 16);
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < 16; p++)
            cr_assert_eq(m[l * 16 + p], README_P2L[l][p], "phy2log[%d][%d]", l, p);
    free(m);
    eplb_json_free(v);
}

Test(rebalance_cli, help_lists_policies)
{
    char *out = NULL;
    cr_assert_eq(eplb_test_run_cli(&out, "rebalance --help"), 0);
    cr_assert(strstr(out, "--weights FILE"));
    cr_assert(strstr(out, "migration-aware"));
    cr_assert(strstr(out, "--export sglang"));
    free(out);
}

Test(rebalance_cli, json_output_matches_reference)
{
    const char *dir = eplb_test_tmpdir();
    const char *w = eplb_test_write_text(eplb_test_path(dir, "w.json"), README_W);
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "rebalance --weights '%s' %s", w, SHAPE);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    assert_readme_phy2log(out);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, out, strlen(out), "stdout"));
    cr_assert_str_eq(eplb_json_get(v, "policy")->str, "deepseek");
    /* log2phy in rank order, width 2 (largest replica count), -1 padded:
     * layer 0 expert 1 has replicas in slots 15 (rank 0) and 13 (rank 1) */
    const eplb_json_t *l2p = eplb_json_get(v, "log2phy");
    cr_assert_eq(l2p->values[0].values[1].n, 2);
    cr_assert_eq(eplb_test_num_at(&l2p->values[0].values[1], 0), 15);
    cr_assert_eq(eplb_test_num_at(&l2p->values[0].values[1], 1), 13);
    cr_assert_eq(eplb_test_num_at(&l2p->values[0].values[0], 1), -1);
    cr_assert_eq(eplb_test_num_at(&eplb_json_get(v, "logcnt")->values[0], 5), 2);
    /* gpu_load of layer 0 GPU 0 = slots 0, 1 = expert 5 (165/2) + expert 6 (39) */
    cr_assert_float_eq(eplb_test_num_at(&eplb_json_get(v, "gpu_load")->values[0], 0), 82.5 + 39,
                       1e-9);
    double b = eplb_test_num_at(eplb_json_get(v, "balancedness"), 0);
    cr_assert(b > 0 && b <= 1);
    /* moves against the default placement (slot p holds p mod 12) */
    int moves = 0;
    for (int p = 0; p < 16; p++)
        moves += README_P2L[0][p] != p % 12;
    cr_assert_eq(eplb_test_num_at(eplb_json_get(v, "moves"), 0), moves);
    eplb_json_free(v);
    free(out);
    free(err);
}

Test(rebalance_cli, sglang_and_csv_inputs_agree)
{
    const char *dir = eplb_test_tmpdir();
    char sg[1024];
    snprintf(sg, sizeof sg, "{\"logical_count\": %s}", README_W);
    const char *wj = eplb_test_write_text(eplb_test_path(dir, "w.json"), sg);
    const char *wc =
        eplb_test_write_text(eplb_test_path(dir, "w.csv"),
                             "90,132,40,61,104,165,39,4,73,56,183,86\n"
                             "20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27\n");
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "rebalance --weights '%s' %s", wj, SHAPE);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    assert_readme_phy2log(out);
    free(out);
    free(err);
    snprintf(args, sizeof args, "rebalance --weights '%s' %s", wc, SHAPE);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    assert_readme_phy2log(out);
    free(out);
    free(err);
    /* an all-zero (dense) layer is kept as given */
    const char *wz = eplb_test_write_text(eplb_test_path(dir, "z.json"),
                                          "{\"logical_count\": [[0,0,0,0,0,0,0,0,0,0,0,0],"
                                          "[90,132,40,61,104,165,39,4,73,56,183,86]]}");
    snprintf(args, sizeof args, "rebalance --weights '%s' %s", wz, SHAPE);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, out, strlen(out), "stdout"));
    cr_assert_eq(eplb_json_get(v, "phy2log")->n, 2);
    cr_assert_eq(eplb_test_num_at(eplb_json_get(v, "balancedness"), 0), 1.0);
    for (int p = 0; p < 16; p++)
        cr_assert_eq(eplb_test_num_at(&eplb_json_get(v, "phy2log")->values[1], p),
                     README_P2L[0][p]);
    eplb_json_free(v);
    free(out);
    free(err);
}

Test(rebalance_cli, exports)
{
    const char *dir = eplb_test_tmpdir();
    const char *w = eplb_test_write_text(eplb_test_path(dir, "w.json"), README_W);
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "rebalance --weights '%s' %s --export sglang", w, SHAPE);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, out, strlen(out), "stdout"));
    cr_assert_eq(v->type, EPLB_JSON_OBJECT);
    cr_assert_eq(v->n, 1, "SGLang passes the keys as arguments: only one allowed");
    const eplb_json_t *m = eplb_json_get(v, "physical_to_logical_map");
    cr_assert_not_null(m);
    cr_assert_eq(eplb_test_num_at(&m->values[1], 0), README_P2L[1][0]);
    eplb_json_free(v);
    free(out);
    free(err);
    snprintf(args, sizeof args,
             "rebalance --weights '%s' %s --export trtllm --layer-offset 3", w, SHAPE);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    cr_assert(strstr(out, "num_slots: 16\n"), "%s", out);
    cr_assert(strstr(out, "initial_global_assignments:\n"), "%s", out);
    cr_assert(strstr(out, "  3: [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1]\n"), "%s",
              out);
    cr_assert(strstr(out, "  4: [7, 10, "), "%s", out);
    cr_assert(strstr(out, "layer_updates_per_iter: 0\n"), "%s", out);
    free(out);
    free(err);
    /* CSV: a header and one row per slot, the whole text (every column) */
    snprintf(args, sizeof args, "rebalance --weights '%s' %s --format csv", w, SHAPE);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    char *want = readme_csv(NULL);
    cr_assert_str_eq(out, want);
    free(want);
    free(out);
    free(err);
    /* with --old equal to the result nothing moved: every row says 0 */
    const char *old = eplb_test_write_text(eplb_test_path(dir, "old.json"),
                                           "[[5,6,5,7,8,4,3,4,10,9,10,2,0,1,11,1],"
                                           "[7,10,6,8,6,11,8,9,2,4,5,1,5,0,3,1]]");
    snprintf(args, sizeof args, "rebalance --weights '%s' %s --format csv --old '%s'", w,
             SHAPE, old);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    want = readme_csv(README_P2L);
    cr_assert_str_eq(out, want);
    cr_assert(!strstr(out, ",1\n"), "a row moved: %s", out);
    free(want);
    free(out);
    free(err);
}

Test(rebalance_cli, old_placement_and_moves)
{
    const char *dir = eplb_test_tmpdir();
    const char *w = eplb_test_write_text(eplb_test_path(dir, "w.json"), README_W);
    const char *old = eplb_test_write_text(eplb_test_path(dir, "old.json"),
                                           "[[5,6,5,7,8,4,3,4,10,9,10,2,0,1,11,1],"
                                           "[7,10,6,8,6,11,8,9,2,4,5,1,5,0,3,1]]");
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "rebalance --weights '%s' %s --old '%s'", w, SHAPE, old);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    cr_assert(strstr(out, "\"moves\": [0,0]"), "%s", out);
    free(out);
    free(err);
    /* migration-aware from the default placement, at most 2 moves a layer */
    snprintf(args, sizeof args,
             "rebalance --weights '%s' %s --policy migration-aware --max-moves 2", w, SHAPE);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, out, strlen(out), "stdout"));
    for (int l = 0; l < 2; l++)
        cr_assert_leq(eplb_test_num_at(eplb_json_get(v, "moves"), l), 2);
    eplb_json_free(v);
    free(out);
    free(err);
}

/* Each refusal: the exit status, a message naming the problem, and nothing
 * on stdout. */
static void refused(const char *extra, const char *weights_text, int want_rc,
                    const char *needle)
{
    const char *dir = eplb_test_tmpdir();
    const char *w = eplb_test_write_text(eplb_test_path(dir, "w.in"), weights_text);
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "rebalance --weights '%s' %s", w, extra);
    int rc = run_split(&out, &err, dir, args);
    cr_assert_eq(rc, want_rc, "%s: exit %d, want %d; stderr: %s", extra, rc, want_rc, err);
    cr_assert_str_empty(out, "%s: stdout not empty: %s", extra, out);
    cr_assert(strstr(err, "eplb-replay rebalance: ") && strstr(err, needle),
              "%s: stderr '%s' lacks '%s'", extra, err, needle);
    free(out);
    free(err);
}

Test(rebalance_cli, impossible_requests_refused)
{
    refused("--replicas 16 --groups 4 --nodes 2 --gpus 5", README_W, 2,
            "not a multiple of gpus 5");
    refused("--replicas 16 --groups 4 --nodes 3 --gpus 6", README_W, 2,
            "replicas 16 is not a multiple of gpus 6");
    refused("--replicas 24 --groups 4 --nodes 5 --gpus 8", README_W, 2,
            "gpus 8 is not a multiple of nodes 5");
    refused("--replicas 16 --groups 5 --nodes 1 --gpus 8", README_W, 2,
            "experts 12 is not a multiple of groups 5");
    refused("--replicas 8 --gpus 8", README_W, 2, "replicas 8 < experts 12");
    /* values a loads file must not hold: a malformed file, exit 1 */
    refused(SHAPE, "[[1,2,3,4,5,6,7,8,9,10,11,-12],[1,1,1,1,1,1,1,1,1,1,1,1]]", 1,
            "layer 0 expert 11 is -12");
    refused(SHAPE, "1,2,3,4,5,6,7,8,9,10,11,nan\n1,1,1,1,1,1,1,1,1,1,1,1\n", 1, "expert 11");
    refused(SHAPE, "1,2,3,4,5,6,7,8,9,10,11,12\n1,1,1\n", 1, "ragged");
    /* decimal numbers only: strtof read 0x10 as 16 and took '+' */
    refused(SHAPE, "0x10,2,3,4,5,6,7,8,9,10,11,12\n", 1, "'0x10' is not a decimal number");
    refused(SHAPE, "1,+2,3,4,5,6,7,8,9,10,11,12\n", 1, "value 2: '+2' is not a decimal number");
    refused(SHAPE, "[[1,2,3,4,5,6,7,8,9,10,11,12],[1,1,1]]", 1, "ragged");
    refused("--replicas 16 --gpus 8 --policy fastest", README_W, 2,
            "unknown policy 'fastest' (deepseek, global, deepseek-preserve, nodup, lpt, vec, "
            "migration-aware, none)");
    refused("--replicas 16 --gpus 8 --policy default", README_W, 2,
            "vLLM's policy 'default' is deepseek here");
    refused("--replicas 16 --gpus 8 --policy oracle", README_W, 2, "use --policy deepseek");
    refused("--replicas 16 --gpus 8 --gpus 4", README_W, 2, "--gpus is given twice");
    refused("--replicas 16 --gpus 8 --format xml", README_W, 2, "--format");
    refused("--replicas 16 --gpus 8 --export vllm", README_W, 2, "--export");
    refused("--replicas sixteen --gpus 8", README_W, 2,
            "--replicas: expected an integer in -2147483647..2147483647, got 'sixteen'");
    refused("--replicas 16 --gpus 8 --bogus 1", README_W, 2, "unknown option '--bogus'");
    refused("--replicas 16 --gpus 8 --old /nonexistent/old.json", README_W, 1,
            "/nonexistent/old.json");
}

/* Found by a user-level review: options the request does not use were
 * dropped with exit 0 (the csv of `--export sglang --format csv`, a
 * --layer-offset without the trtllm export, --max-moves for deepseek).
 * Only options given are refused: the defaults never are. */
Test(rebalance_cli, options_that_do_not_apply_refused)
{
    refused("--replicas 16 --gpus 8 --export sglang --format csv", README_W, 2,
            "--format csv does not apply to --export sglang (it writes JSON)");
    refused("--replicas 16 --gpus 8 --export trtllm --format json", README_W, 2,
            "--format json does not apply to --export trtllm (it writes YAML)");
    refused("--replicas 16 --gpus 8 --export trtllm --format csv", README_W, 2,
            "--format csv does not apply to --export trtllm");
    refused("--replicas 16 --gpus 8 --layer-offset 5", README_W, 2,
            "--layer-offset applies to --export trtllm only");
    refused("--replicas 16 --gpus 8 --layer-offset 0 --format csv", README_W, 2,
            "--layer-offset applies to --export trtllm only");
    refused("--replicas 16 --gpus 8 --export sglang --layer-offset 3", README_W, 2,
            "--layer-offset applies to --export trtllm only (it shifts the layer keys of that "
            "YAML); --export is sglang");
    refused("--replicas 16 --gpus 8 --policy deepseek --max-moves 3", README_W, 2,
            "--max-moves applies to --policy migration-aware only (deepseek does not limit "
            "moved slots)");
    refused("--replicas 16 --gpus 8 --max-moves 3", README_W, 2,
            "--max-moves applies to --policy migration-aware only");
    refused("--replicas 16 --gpus 8 --policy deepseek-preserve --max-moves -1", README_W, 2,
            "(deepseek-preserve does not limit moved slots)");
    refused("--replicas 16 --gpus 8 --policy lpt --old /nonexistent/old.json --export trtllm",
            README_W, 2, "--old does not apply to --policy lpt with --export trtllm");
    /* what does apply still runs */
    const char *dir = eplb_test_tmpdir();
    const char *w = eplb_test_write_text(eplb_test_path(dir, "w.json"), README_W);
    const char *old = eplb_test_write_text(eplb_test_path(dir, "old.json"),
                                           "[[5,6,5,7,8,4,3,4,10,9,10,2,0,1,11,1],"
                                           "[7,10,6,8,6,11,8,9,2,4,5,1,5,0,3,1]]");
    static const char *const ok[] = {
        "--export sglang --format json",
        "--export trtllm --layer-offset 0",
        "--format json",
        "--policy migration-aware --max-moves 3 --export sglang --old OLD",
        "--policy deepseek-preserve --export trtllm --old OLD",
        "--policy none --export sglang --old OLD",
        "--policy deepseek --old OLD --format csv",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char extra[1024], args[4096], *out, *err;
        const char *o = strstr(ok[i], "OLD");
        snprintf(extra, sizeof extra, "%.*s%s", o ? (int)(o - ok[i]) : (int)strlen(ok[i]),
                 ok[i], o ? old : "");
        snprintf(args, sizeof args, "rebalance --weights '%s' %s %s", w, SHAPE, extra);
        cr_assert_eq(run_split(&out, &err, dir, args), 0, "%s: stderr: %s", extra, err);
        cr_assert_str_empty(err, "%s: stderr: %s", extra, err);
        free(out);
        free(err);
    }
}

/* Found: a missing --old said only "/nonexistent: cannot open", while its
 * other errors name --old.  A file that cannot be read stays exit 1. */
Test(rebalance_cli, file_errors_name_the_option)
{
    refused("--replicas 16 --gpus 8 --old /nonexistent/old.json", README_W, 1,
            "--old /nonexistent/old.json: cannot open: No such file or directory");
    refused("--replicas 16 --gpus 8 --old /nonexistent/old.json --policy none --export sglang",
            README_W, 1, "--old /nonexistent/old.json: cannot open");
    const char *dir = eplb_test_tmpdir();
    const char *bad = eplb_test_write_text(eplb_test_path(dir, "bad.json"), "[[1,2");
    char extra[4096];
    snprintf(extra, sizeof extra, "%s --old '%s'", SHAPE, bad);
    refused(extra, README_W, 1, "rebalance: --old ");
    refused(extra, README_W, 1, "bad.json: invalid JSON");
    const char *obj = eplb_test_write_text(eplb_test_path(dir, "obj.json"), "{\"a\": 1}");
    snprintf(extra, sizeof extra, "%s --old '%s'", SHAPE, obj);
    refused(extra, README_W, 1, "obj.json: expected phy2log");
    refused(extra, README_W, 1, "rebalance: --old ");
    /* --weights: the same, for a missing file and for its contents */
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_split(&out, &err, dir, "rebalance --weights /nonexistent/w.json "
                                            "--replicas 16 --gpus 8"), 1);
    cr_assert(strstr(err, "eplb-replay rebalance: --weights /nonexistent/w.json: cannot open: "
                          "No such file or directory"), "%s", err);
    free(out);
    free(err);
    refused(SHAPE, "[[1,2,3,4,5,6,7,8,9,10,11,-12],[1,1,1,1,1,1,1,1,1,1,1,1]]", 1,
            "rebalance: --weights ");
    refused(SHAPE, "1,2,3\n1,1\n", 1, "rebalance: --weights ");
}

/* The shape and the ids of --old come from the file: a malformed file,
 * exit 1 as `rebalance --help` says (they were exit 2, a usage error, until
 * the robustness sweep; the options themselves are fine). */
Test(rebalance_cli, old_of_wrong_shape_refused)
{
    const char *dir = eplb_test_tmpdir();
    const char *old =
        eplb_test_write_text(eplb_test_path(dir, "old.json"), "[[0,1,2,3,4,5,6,7,8,9,10,11]]");
    char extra[4096];
    snprintf(extra, sizeof extra, "%s --old '%s'", SHAPE, old);
    refused(extra, README_W, 1, "shape [1][12], expected [2][16]");
    const char *old2 = eplb_test_write_text(eplb_test_path(dir, "old2.json"),
                                            "[[0,1,2,3,4,5,6,7,8,9,10,11,0,1,2,99],"
                                            "[0,1,2,3,4,5,6,7,8,9,10,11,0,1,2,3]]");
    snprintf(extra, sizeof extra, "%s --old '%s'", SHAPE, old2);
    refused(extra, README_W, 1, "layer 0 slot 15 holds expert 99");
    /* one past the last expert (ids are 0-based) */
    const char *old3 = eplb_test_write_text(eplb_test_path(dir, "old3.json"),
                                            "[[0,1,2,3,4,5,6,7,8,9,10,11,0,1,2,12],"
                                            "[0,1,2,3,4,5,6,7,8,9,10,11,0,1,2,3]]");
    snprintf(extra, sizeof extra, "%s --old '%s'", SHAPE, old3);
    refused(extra, README_W, 1, "layer 0 slot 15 holds expert 12, outside [0, 12)");
}

Test(rebalance_cli, missing_weights_file)
{
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "rebalance --weights /nonexistent/w.json --replicas 16 "
                                     "--gpus 8");
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "/nonexistent/w.json"), "%s", out);
    free(out);
}

/* A 3-D logical_count is a time series: summed for every policy, and given
 * to vec per step.  Hot experts alternate between steps (0, 2 then 1, 3);
 * all totals tie, so deepseek packs {0, 2} | {1, 3} (each step peaks at 20)
 * while vec pairs a hot with a cold expert on each GPU (peaks 10; which
 * pairing is a tie-break, so only the pairing property is checked). */
Test(rebalance_cli, series_input_feeds_vec)
{
    const char *dir = eplb_test_tmpdir();
    const char *w =
        eplb_test_write_text(eplb_test_path(dir, "s.json"),
                             "{\"logical_count\": [[[10, 0, 10, 0]], [[0, 10, 0, 10]]]}");
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "rebalance --weights '%s' --replicas 4 --gpus 2", w);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    cr_assert(strstr(out, "\"phy2log\": [[0,2,1,3]]"), "%s", out);
    free(out);
    free(err);
    snprintf(args, sizeof args, "rebalance --weights '%s' --replicas 4 --gpus 2 --policy vec",
             w);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    /* either pairing of a hot with a cold expert is optimal ({0, 1} | {2, 3}
     * or {0, 3} | {1, 2}): check the property, not the tie-break */
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, out, strlen(out), "rebalance output"));
    const eplb_json_t *p2l = eplb_json_get(v, "phy2log");
    cr_assert(p2l && p2l->type == EPLB_JSON_ARRAY && p2l->n == 1, "%s", out);
    const eplb_json_t *row = &p2l->values[0];
    cr_assert(row->type == EPLB_JSON_ARRAY && row->n == 4, "%s", out);
    int seen = 0;
    for (int g = 0; g < 2; g++) {
        int a = (int)eplb_test_num_at(row, 2 * g), b = (int)eplb_test_num_at(row, 2 * g + 1);
        seen |= 1 << a | 1 << b;
        cr_assert((a % 2) != (b % 2), "GPU %d holds experts %d and %d, hot in the same step: %s",
                  g, a, b, out);
    }
    cr_assert_eq(seen, 15, "not every expert placed: %s", out);
    eplb_json_free(v);
    free(out);
    free(err);
}

/* Found by the inputs sweep (tests/fuzz/inputs_fuzz.sh): weights files
 * that were accepted although corrupt, or refused with a message that
 * named the wrong thing. */
Test(rebalance_cli, weights_sweep_findings)
{
    /* a corrupt number read by strtod (00012 as 12, "1." as 1) */
    refused(SHAPE, "[[00012, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],"
                   " [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]",
            1, "w.in: invalid JSON at byte 2: bad number (a leading zero)");
    refused(SHAPE, "[[1., 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],"
                   " [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]",
            1, "no digit after '.'");
    /* logical_count twice: the first one was rebalanced */
    refused(SHAPE, "{\"logical_count\": [[1,2,3,4,5,6,7,8,9,10,11,12]],"
                   " \"logical_count\": [[12,11,10,9,8,7,6,5,4,3,2,1]]}",
            1, "the key \"logical_count\" twice");
    /* beyond a float: "is inf", which the file did not say */
    refused(SHAPE, "[[1e39,1,1,1,1,1,1,1,1,1,1,1]]", 1,
            "w.in: row 0 column 0: 1e+39 is beyond the range of a float");
    refused(SHAPE, "1e39,1,1,1,1,1,1,1,1,1,1,1\n", 1,
            "w.in: line 1 value 1: '1e39' is beyond the range of a float");
    refused(SHAPE, "[[[3e38,1,1,1,1,1,1,1,1,1,1,1]], [[3e38,1,1,1,1,1,1,1,1,1,1,1]]]", 1,
            "w.in: layer 0 expert 0: the sum over the 2 steps (6e+38) is beyond the range");
    /* a 3-D file's errors name the step */
    refused(SHAPE, "[[[1,1,1,1,1,1,1,1,1,1,1,1]], [[1,\"x\",1,1,1,1,1,1,1,1,1,1]]]", 1,
            "w.in: step 1: row 0 column 1 is not a number");
    refused(SHAPE, "[[[1,1,1,1,1,1,1,1,1,1,1,1]], [[1,1,1,1,1,1,1,1,1,1,1,1],[1]]]", 1,
            "w.in: step 1: ragged rows: row 1 has 1 values");
    refused(SHAPE, "[[[1,1,1,1,1,1,1,1,1,1,1,1]], [[1,1,1,1,1,1,1,1,1,NaN,1,1]]]", 1,
            "w.in: step 1 layer 0 expert 9 is nan");
    /* a byte that does not print went raw into the message */
    refused(SHAPE, "1,2\001\n", 1, "w.in: line 1: unexpected byte 0x01");
    refused(SHAPE, "1,2\377\n", 1, "w.in: line 1: unexpected byte 0xff");
    refused(SHAPE, "1,2x\n", 1, "w.in: line 1: unexpected 'x'");
}

/* The same text gives the same loads in JSON and CSV: a number is read as
 * a double and then rounded to float in both (CSV read with strtof rounded
 * once, JSON twice: 1.0000000596046447753906251 was 1 + 2^-23 in CSV, 1 in
 * JSON, and the two placements differed). */
Test(rebalance_cli, csv_and_json_round_alike)
{
    const char *d = eplb_test_tmpdir();
    char j[600], c[600];
    snprintf(j, sizeof j, "%s/w.json", d);
    snprintf(c, sizeof c, "%s/w.csv", d);
    eplb_test_write_text(j, "[[1, 1.0000000596046447753906251]]");
    eplb_test_write_text(c, "1,1.0000000596046447753906251\n");
    char *oj = NULL, *oc = NULL;
    cr_assert_eq(eplb_test_run_cli(&oj,
                                   "rebalance --weights '%s' --replicas 3 --gpus 3 "
                                   "2>/dev/null; exit $?",
                                   j),
                 0, "%s", oj);
    cr_assert_eq(eplb_test_run_cli(&oc,
                                   "rebalance --weights '%s' --replicas 3 --gpus 3 "
                                   "2>/dev/null; exit $?",
                                   c),
                 0, "%s", oc);
    cr_assert_str_eq(oc, oj);
    free(oj);
    free(oc);
    unlink(j);
    unlink(c);
    rmdir(d);
}

/* --export trtllm leaves all-zero (dense) layers out of
 * initial_global_assignments (docs/cli.md), keyed by layer index + K: a
 * zero layer between two loaded ones leaves a gap in the keys.  Mutation
 * testing: writing every layer passed. */
Test(rebalance_cli, trtllm_export_leaves_dense_layers_out)
{
    const char *dir = eplb_test_tmpdir();
    const char *w =
        eplb_test_write_text(eplb_test_path(dir, "w.json"),
                             "[[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],\n"
                             " [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],\n"
                             " [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]\n");
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "rebalance --weights '%s' %s --export trtllm --layer-offset 3", w,
             SHAPE);
    cr_assert_eq(run_split(&out, &err, dir, args), 0, "stderr: %s", err);
    /* layers 0 and 2 are README's two layers: their placements, keys 3, 5 */
    cr_assert(strstr(out, "\n  3: [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1]\n"), "%s",
              out);
    cr_assert(strstr(out, "\n  5: [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]\n"), "%s",
              out);
    cr_assert_null(strstr(out, "\n  4: ["), "the dense layer 1 was written: %s", out);
    free(out);
    free(err);
}

/* migration-aware without --max-moves is --max-moves 16 (docs/cli.md:
 * "default 16"): the same placement, byte for byte, on loads where the
 * limit binds (8 moves give another placement).  Mutation testing: a
 * default of 8 passed (the other tests give --max-moves). */
Test(rebalance_cli, migration_aware_default_max_moves_16)
{
    const char *dir = eplb_test_tmpdir();
    char text[4096];
    static const char *const sep[2] = {"[[", "],["};
    size_t n = 0;
    for (int l = 0; l < 2; l++) /* 64 uneven loads a layer */
        for (int e = 0; e < 64; e++)
            n += (size_t)snprintf(text + n, sizeof text - n, "%s%d", e ? "," : sep[l],
                                  (e * e * 7 + l * 13) % 97 + 1);
    snprintf(text + n, sizeof text - n, "]]\n");
    const char *w = eplb_test_write_text(eplb_test_path(dir, "w.json"), text);
    char *out[3], *err[3], args[4096];
    static const char *const moves[3] = {"", "--max-moves 16", "--max-moves 8"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args,
                 "rebalance --weights '%s' --replicas 96 --gpus 8 --policy migration-aware %s", w,
                 moves[i]);
        cr_assert_eq(run_split(&out[i], &err[i], dir, args), 0, "%s: %s", moves[i], err[i]);
    }
    cr_assert_str_eq(out[0], out[1]);
    cr_assert_str_neq(out[2], out[1], "the limit of 16 does not bind on these loads");
    for (int i = 0; i < 3; i++) {
        free(out[i]);
        free(err[i]);
    }
}
