/* test_input_files.c - input files and options that the robustness sweep
 * found mishandled: FIFOs and devices given as inputs (the open blocked or
 * the read never ended), NUL bytes that cut a text input short, profile
 * values that overflow, integer options that overflow, options whose value
 * was forgotten, file errors reported as usage errors, slot counts that
 * made one rebalance run for minutes, and what the inputs sweep
 * (tests/fuzz/inputs_fuzz.sh) found in the JSON reader and the profile. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_util.h"
#include "helpers.h"
#include "import.h"
#include "json.h"
#include "sim.h"
#include "trace_fixtures.h"

/* Two layers of 12 experts (the DeepSeek EPLB README example). */
static const char *W2 = "[[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],\n"
                        " [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]\n";

/* The helpers return static buffers (tmpdir one, paths eight in turn):
 * a path kept across other calls is copied into a PATH_T. */
typedef struct {
    char s[4096];
} path_t;

static path_t keep(const char *p)
{
    path_t k;
    snprintf(k.s, sizeof k.s, "%s", p);
    return k;
}

/* Write n bytes (NULs included) to dir/name; returns the path. */
static const char *write_bytes(const char *dir, const char *name, const char *bytes, size_t n)
{
    return eplb_test_write_bytes(eplb_test_path(dir, name), bytes, n);
}

static const char *make_fifo(const char *dir, const char *name)
{
    const char *path = eplb_test_path(dir, name);
    cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo %s", path);
    return path;
}

/* A trace shipped in the repository, for `run ... --profile` (the profile
 * is refused before the replay starts). */
static const char *shipped_trace(void)
{
    return eplb_test_path(eplb_test_srcdir(), "traces/dsv3-small.h5");
}

/* One line of an ESFT layer file: a sample of one token. */
static const char *ESFT_LINE = "1\t2\t3\t4\t5\t6\t\t0.3\t0.2\t0.1\t0.1\t0.1\t0.1\n";

/* An ESFT directory of 26 layer files of one sample each. */
static path_t make_esft_dir(void)
{
    path_t dir = keep(eplb_test_tmpdir());
    for (int l = 1; l <= EPLB_ESFT_LAYERS; l++) {
        char name[64];
        snprintf(name, sizeof name, "expert_weights_%d.txt", l);
        eplb_test_write_text(eplb_test_path(dir.s, name), ESFT_LINE);
    }
    return dir;
}

static void remove_esft_dir(const char *dir)
{
    for (int l = 1; l <= EPLB_ESFT_LAYERS; l++) {
        char name[64];
        snprintf(name, sizeof name, "expert_weights_%d.txt", l);
        unlink(eplb_test_path(dir, name));
    }
    unlink(eplb_test_path(dir, "x.h5"));
    cr_assert_eq(rmdir(dir), 0, "%s not empty", dir);
}

static const char *esft_layer(const char *dir, int l)
{
    char name[64];
    snprintf(name, sizeof name, "expert_weights_%d.txt", l);
    return eplb_test_path(dir, name);
}

/* ---- 1: FIFOs and devices are refused before the open ---------------- */

/* Found: every reader opened its input before looking at its type, and
 * the open of a FIFO waits for a writer: the commands hung.  The timeout
 * turns a hang into a failure. */
Test(input_files, fifo_refused_by_every_reader, .timeout = 60)
{
    path_t d = keep(eplb_test_tmpdir());
    path_t fifo = keep(make_fifo(d.s, "f.json"));
    path_t w = keep(eplb_test_path(d.s, "w.json"));
    eplb_test_write_text(w.s, W2);
    path_t out = keep(eplb_test_path(d.s, "x.h5"));
    eplb_test_cli_expect(1, "f.json: not a regular file",
                         "rebalance --weights %s --replicas 16 --gpus 4", fifo.s);
    eplb_test_cli_expect(1, "f.json: not a regular file",
                         "rebalance --weights %s --replicas 16 --gpus 4 --old %s", w.s, fifo.s);
    eplb_test_cli_expect(1, "f.json: not a regular file", "run %s --quiet --profile %s",
                         shipped_trace(), fifo.s);
    eplb_test_cli_expect(1, "f.json: not a regular file",
                         "import --format sglang-counts %s -o %s", fifo.s, out.s);
    eplb_test_cli_expect(1, "f.json: not a regular file", "bench policy --weights %s", fifo.s);
    cr_assert_neq(access(out.s, F_OK), 0, "%s written", out.s);
    /* the library calls themselves */
    FILE *f = (FILE *)0x1;
    eplb_assert_fails(eplb_input_file_open(&f, fifo.s), EPLB_ERR_IO, "(it is a FIFO)");
    cr_assert_eq(f, (FILE *)0x1, "output set on failure");
    eplb_profile_t p;
    eplb_assert_fails(eplb_sim_profile_load(&p, fifo.s), EPLB_ERR_IO, "not a regular file");
    char *text = NULL;
    size_t n = 0;
    eplb_assert_fails(eplb_input_file_read(&text, &n, fifo.s, 100), EPLB_ERR_IO,
                      "not a regular file");
    unlink(fifo.s);
    unlink(w.s);
    cr_assert_eq(rmdir(d.s), 0);
}

Test(input_files, esft_layer_fifo_refused, .timeout = 60)
{
    path_t d = make_esft_dir();
    eplb_import_esft_t r;
    eplb_assert_ok(eplb_import_esft_read(&r, d.s));
    cr_assert_eq(r.num_tokens, 1);
    eplb_import_esft_free(&r);
    unlink(esft_layer(d.s, 3));
    make_fifo(d.s, "expert_weights_3.txt");
    eplb_assert_fails(eplb_import_esft_read(&r, d.s), EPLB_ERR_IO,
                      "expert_weights_3.txt: not a regular file (it is a FIFO)");
    eplb_test_cli_expect(1, "expert_weights_3.txt: not a regular file",
                         "import --format esft %s -o %s", d.s, eplb_test_path(d.s, "x.h5"));
    remove_esft_dir(d.s);
}

/* A link is followed: a link to a regular file is read, one to a device
 * refused. */
Test(input_files, links_followed_devices_refused)
{
    path_t d = keep(eplb_test_tmpdir());
    path_t w = keep(eplb_test_path(d.s, "w.json"));
    eplb_test_write_text(w.s, W2);
    path_t link = keep(eplb_test_path(d.s, "link.json"));
    cr_assert_eq(symlink(w.s, link.s), 0);
    eplb_test_cli_expect(0, "\"phy2log\"", "rebalance --weights %s --replicas 16 --gpus 4",
                         link.s);
    if (access("/dev/null", R_OK) == 0) {
        eplb_test_cli_expect(1, "/dev/null: not a regular file (it is a character device)",
                             "rebalance --weights /dev/null --replicas 16 --gpus 4");
        eplb_test_cli_expect(1, "/dev/null: not a regular file", "run %s --quiet --profile "
                             "/dev/null", shipped_trace());
    }
    eplb_test_cli_expect(1, "not a regular file (it is a directory)",
                         "rebalance --weights %s --replicas 16 --gpus 4", d.s);
    unlink(link.s);
    unlink(w.s);
    cr_assert_eq(rmdir(d.s), 0);
}

/* ---- 2: an ESFT line has a bounded length ---------------------------- */

/* Found: a layer file linked to /dev/zero grew getline()'s buffer until
 * memory ran out.  Now refused as a device, and a line longer than 4 MiB
 * (a wrong file that is regular) is an error naming file and line. */
Test(input_files, esft_line_bounded, .timeout = 60)
{
    path_t d = make_esft_dir();
    eplb_import_esft_t r;
    if (access("/dev/zero", R_OK) == 0) {
        unlink(esft_layer(d.s, 2));
        cr_assert_eq(symlink("/dev/zero", esft_layer(d.s, 2)), 0);
        eplb_assert_fails(eplb_import_esft_read(&r, d.s), EPLB_ERR_IO,
                          "expert_weights_2.txt: not a regular file (it is a character "
                          "device)");
        unlink(esft_layer(d.s, 2));
        eplb_test_write_text(esft_layer(d.s, 2), ESFT_LINE);
    }
    /* line 2 of layer 4: 5 MiB of ids without a newline */
    size_t n = (size_t)5 << 20;
    char *big = malloc(n);
    cr_assert_not_null(big);
    size_t k = strlen(ESFT_LINE);
    memcpy(big, ESFT_LINE, k);
    for (size_t i = k; i < n; i++)
        big[i] = (i - k) % 2 ? '\t' : '1';
    write_bytes(d.s, "expert_weights_4.txt", big, n);
    free(big);
    eplb_assert_fails(eplb_import_esft_read(&r, d.s), EPLB_ERR_FORMAT,
                      "expert_weights_4.txt:2: line longer than 4194304 bytes");
    remove_esft_dir(d.s);
}

/* ---- 3: a NUL byte is an error, not the end of the text ------------- */

/* Found: the text readers scanned their input as a C string, so a NUL
 * ended it early: the rows before it were used, the rest ignored. */
Test(input_files, nul_byte_names_file_and_line)
{
    path_t d = keep(eplb_test_tmpdir());
    static const char csv[] = "1,2,3,4,5,6,7,8\n\0" "9,9\n";
    path_t w = keep(write_bytes(d.s, "nul.csv", csv, sizeof csv - 1));
    eplb_test_cli_expect(1, "nul.csv: line 2: a NUL byte",
                         "rebalance --weights %s --replicas 16 --gpus 4", w.s);
    static const char prof[] = "\0nvlink_GBps = abc\n";
    path_t p = keep(write_bytes(d.s, "p.txt", prof, sizeof prof - 1));
    eplb_test_cli_expect(1, "p.txt: line 1: a NUL byte", "run %s --quiet --profile %s",
                         shipped_trace(), p.s);
    static const char js[] = "[[1, 2],\n [3, 4]]\0 garbage";
    path_t j = keep(write_bytes(d.s, "nul.json", js, sizeof js - 1));
    eplb_json_t *v = NULL;
    eplb_assert_fails(eplb_json_parse_file(&v, j.s), EPLB_ERR_FORMAT,
                      "nul.json: line 2: a NUL");
    eplb_test_cli_expect(1, "nul.json: line 2: a NUL",
                         "rebalance --weights %s --replicas 16 --gpus 4", j.s);
    /* ESFT: NUL inside a line */
    path_t e = make_esft_dir();
    static const char line[] = "1\t2\t3\t4\t5\t6\t\t0.3\t0.2\0\t0.1\t0.1\t0.1\t0.1\n";
    char two[256];
    size_t k = strlen(ESFT_LINE);
    memcpy(two, ESFT_LINE, k);
    memcpy(two + k, line, sizeof line - 1);
    write_bytes(e.s, "expert_weights_5.txt", two, k + sizeof line - 1);
    eplb_import_esft_t r;
    eplb_assert_fails(eplb_import_esft_read(&r, e.s), EPLB_ERR_FORMAT,
                      "expert_weights_5.txt:2: a NUL byte");
    remove_esft_dir(e.s);
    unlink(w.s);
    unlink(p.s);
    unlink(j.s);
    cr_assert_eq(rmdir(d.s), 0);
}

/* Found: in memory the JSON parser took a NUL after a number as part of
 * it ("[1\0]" parsed as [1]), and "\u0000" or a bad \u escape ("\uZZZZ",
 * read by strtol as 0) cut a string short. */
Test(input_files, json_parser_refuses_nul)
{
    static const struct {
        const char *text;
        size_t len;
        const char *why;
    } bad[] = {
        {"[1\0]", 4, "at byte 2"},
        {"[1,\0 2]", 7, "unexpected character"},
        {"[\"a\0b\"]", 7, "a NUL byte in a string"},
        {"[\"a\\u0000b\"]", 12, "NUL"},
        {"[\"a\\uZZZZb\"]", 12, "4 hex digits"},
        {"[\"a\\u00\"]", 9, "4 hex digits"},
        {"{\"k\\u0000\": 1}", 14, "NUL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eplb_json_t *v = NULL;
        eplb_assert_fails(eplb_json_parse(&v, bad[i].text, bad[i].len, "t.json"),
                          EPLB_ERR_FORMAT, bad[i].why);
        cr_assert_null(v, "case %zu", i);
    }
    /* escapes that stay allowed */
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, "[\"a\\u0041\\u00e9\"]", 17, "t.json"));
    cr_assert_str_eq(v->values[0].str, "aA\xc3\xa9"); /* UTF-8 (a review found '?' for
                                                       * every non-ASCII escape, so two
                                                       * keys could read as one) */
    eplb_json_free(v);
    /* a surrogate pair, a lone surrogate (U+FFFD), and keys that differ
     * only past ASCII, as Python's json.dump writes them */
    const char *more = "[\"\\ud83d\\ude00\", \"\\ud800x\", {\"\\u00e9\": 1, \"\\u00e8\": 2}]";
    eplb_assert_ok(eplb_json_parse(&v, more, strlen(more), "t.json"));
    cr_assert_str_eq(v->values[0].str, "\xf0\x9f\x98\x80");
    cr_assert_str_eq(v->values[1].str, "\xef\xbf\xbdx");
    cr_assert_eq(v->values[2].n, 2u);
    eplb_json_free(v);
}

/* ---- 4: profile values whose base unit overflows -------------------- */

/* Found: nvlink_GBps = 1e308 became inf B/s, printed as inf in the
 * results (not JSON); fp8_TFLOPS = 1e-320 was "not a number >= 0". */
Test(input_files, profile_values_overflow)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"nvlink_GBps = 1e308\n", "p.txt:1: nvlink_GBps: '1e308' is too large"},
        {"# x\nnet_Gbps = 1e308\n", "p.txt:2: net_Gbps: '1e308' is too large"},
        {"hbm_TBps = 1e300\n", "p.txt:1: hbm_TBps: '1e300' is too large"},
        {"fp8_TFLOPS = 1e400\n", "p.txt:1: fp8_TFLOPS: '1e400' is too large"},
        {"fp8_TFLOPS = 1e-320\n", "p.txt:1: fp8_TFLOPS: '1e-320' is too small"},
        {"net_latency_us = 1e-400\n", "p.txt:1: net_latency_us: '1e-400' is too small"},
        {"bf16_TFLOPS = -1\n", "'-1' is not a number >= 0"},
        /* strtod's hexadecimal and '+' (0x10 was 16 GB/s) */
        {"nvlink_GBps = 0x10\n", "'0x10' is not a number >= 0"},
        {"nvlink_GBps = +5\n", "'+5' is not a number >= 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eplb_profile_t p;
        eplb_assert_fails(eplb_sim_profile_parse(&p, bad[i].text, "p.txt"), EPLB_ERR_FORMAT,
                          bad[i].want);
    }
    /* the largest value a profile takes (1e12: larger ones overflowed the
     * modelled times) still does, in its unit */
    eplb_profile_t p;
    eplb_assert_ok(eplb_sim_profile_parse(&p, "nvlink_GBps = 1e12\n", "p.txt"));
    cr_assert_float_eq(p.nvlink_bw, 1e21, 1e6);
    eplb_assert_fails(eplb_sim_profile_parse(&p, "nvlink_GBps = 1.000001e12\n", "p.txt"),
                      EPLB_ERR_FORMAT, "p.txt:1: nvlink_GBps: '1.000001e12' is too large");
    path_t d = keep(eplb_test_tmpdir());
    path_t f = keep(eplb_test_path(d.s, "p.txt"));
    eplb_test_write_text(f.s, "nvlink_GBps = 1e308\n");
    eplb_test_cli_expect(1, "p.txt:1: nvlink_GBps", "run %s --quiet --profile %s",
                         shipped_trace(), f.s);
    unlink(f.s);
    cr_assert_eq(rmdir(d.s), 0);
}

/* ---- 5: integer options that overflow ------------------------------- */

/* Found: strtoll's ERANGE was ignored, so a --seed past int64 was clamped
 * and accepted; --layer-offset INT_MAX wrapped the trtllm keys. */
Test(input_files, integer_options_overflow)
{
    int64_t v = 7;
    eplb_assert_fails(eplb_cli_int_parse(&v, "99999999999999999999", "--seed", 0, INT64_MAX),
                      EPLB_ERR_INVALID_ARG, "--seed: expected an integer");
    eplb_assert_fails(eplb_cli_int_parse(&v, "-99999999999999999999", "--x", INT64_MIN, 0),
                      EPLB_ERR_INVALID_ARG, "--x");
    cr_assert_eq(v, 7, "output set on failure");
    eplb_assert_ok(eplb_cli_int_parse(&v, "9223372036854775807", "--seed", 0, INT64_MAX));
    cr_assert_eq(v, INT64_MAX);
    path_t d = keep(eplb_test_tmpdir());
    eplb_test_cli_expect(2, "--seed: expected an integer",
                         "gen --preset mixtral --steps 1 --tokens-per-step 1 "
                         "--seed 99999999999999999999 -o %s",
                         eplb_test_path(d.s, "g.h5"));
    path_t wp = keep(eplb_test_path(d.s, "w.json"));
    const char *w = wp.s;
    eplb_test_write_text(w, W2);
    eplb_test_cli_expect(2, "--layer-offset 2147483647: with the 2 layers",
                         "rebalance --weights %s --replicas 16 --gpus 4 --export trtllm "
                         "--layer-offset 2147483647", w);
    /* the last key exactly INT_MAX is fine */
    eplb_test_cli_expect(0, "\n  2147483647: [",
                         "rebalance --weights %s --replicas 16 --gpus 4 --export trtllm "
                         "--layer-offset 2147483646", w);
    eplb_test_cli_expect(2, "--layer-offset", "rebalance --weights %s --replicas 16 --gpus 4 "
                         "--layer-offset 99999999999", w);
    unlink(w);
    cr_assert_eq(rmdir(d.s), 0);
}

/* ---- 6: an option whose value was forgotten ------------------------- */

/* Found: the next option was taken as the value, and the error named the
 * argument after it ("unknown option '16'", "unknown option '--policy'"). */
Test(input_files, forgotten_value_named)
{
    path_t d = keep(eplb_test_tmpdir());
    path_t wp = keep(eplb_test_path(d.s, "w.json"));
    const char *w = wp.s;
    eplb_test_write_text(w, W2);
    eplb_test_cli_expect(2, "--weights needs a value", "rebalance --weights --replicas 16 "
                         "--gpus 4");
    eplb_test_cli_expect(2, "--old needs a value", "rebalance --weights %s --replicas 16 "
                         "--gpus 4 --old", w);
    eplb_test_cli_expect(2, "--replicas needs a value", "rebalance --weights %s --replicas "
                         "--gpus=4", w);
    eplb_test_cli_expect(2, "--policy needs a value", "bench policy --weights %s --policy", w);
    eplb_test_cli_expect(2, "--repeat needs a value", "bench policy --weights %s --repeat", w);
    eplb_test_cli_expect(2, "--weights needs a value", "bench policy --weights --json");
    eplb_test_cli_expect(2, "--json takes no value", "bench policy --json=1");
    eplb_test_cli_expect(2, "--format needs a value", "import --format --top-k 8 %s -o %s", w,
                         eplb_test_path(d.s, "x.h5"));
    eplb_test_cli_expect(2, "--top-k needs a value", "import --format sglang-counts %s -o %s "
                         "--top-k", w, eplb_test_path(d.s, "x.h5"));
    eplb_test_cli_expect(2, "--top-k needs a value", "import --format sglang-counts %s "
                         "--top-k --model m -o %s", w, eplb_test_path(d.s, "x.h5"));
    /* unknown options are still named as such */
    eplb_test_cli_expect(2, "unknown option '--bogus'", "bench policy --bogus");
    eplb_test_cli_expect(2, "unknown option '16'", "rebalance --weights %s 16", w);
    unlink(w);
    cr_assert_eq(rmdir(d.s), 0);
}

Test(input_files, cli_is_option)
{
    static const struct option lo[] = {
        {"weights", required_argument, NULL, 1},
        {"json", no_argument, NULL, 2},
        {NULL, 0, NULL, 0},
    };
    cr_assert(eplb_cli_is_option("--weights", lo));
    cr_assert(eplb_cli_is_option("--json=1", lo));
    cr_assert(!eplb_cli_is_option("--weight", lo), "a prefix is not the option");
    cr_assert(!eplb_cli_is_option("--weightsx", lo));
    cr_assert(!eplb_cli_is_option("-1", lo), "a negative number is a value");
    cr_assert(!eplb_cli_is_option("--", lo));
    cr_assert(!eplb_cli_is_option("w.json", lo));
    /* the hand-written loop: "--name=value" and "--name value" */
    char *argv[] = {"cmd", "--weights=a", "--weights", "b", "--json", NULL};
    const struct option *o = NULL;
    const char *val = NULL;
    int i = 1;
    eplb_assert_ok(eplb_cli_next_opt(&o, &val, 5, argv, &i, lo));
    cr_assert_eq(o->val, 1);
    cr_assert_str_eq(val, "a");
    cr_assert_eq(i, 1);
    i = 2; /* the same option again would replace the first value: refused */
    cr_assert_eq(eplb_cli_next_opt(&o, &val, 5, argv, &i, lo), EPLB_ERR_INVALID_ARG);
    cr_assert(strstr(eplb_error_last(), "--weights is given twice"), "%s", eplb_error_last());
    char *argv2[] = {"cmd", "--weights", "b", "--json", "--json", NULL};
    i = 1;
    eplb_assert_ok(eplb_cli_next_opt(&o, &val, 5, argv2, &i, lo));
    cr_assert_str_eq(val, "b");
    cr_assert_eq(i, 2);
    for (i = 3; i <= 4; i++) { /* a flag may repeat */
        eplb_assert_ok(eplb_cli_next_opt(&o, &val, 5, argv2, &i, lo));
        cr_assert_eq(o->val, 2);
        cr_assert_null(val);
    }
}

/* ---- 7: file contents are exit 1, options exit 2 -------------------- */

/* Found: an --old placement of the wrong shape, or with an expert id out
 * of range, was exit 2 (a usage error) while `rebalance --help` says 1
 * is a malformed file. */
Test(input_files, old_placement_errors_are_file_errors)
{
    path_t d = keep(eplb_test_tmpdir());
    path_t wp = keep(eplb_test_path(d.s, "w.csv"));
    path_t op = keep(eplb_test_path(d.s, "old.json"));
    const char *w = wp.s, *old = op.s;
    eplb_test_write_text(w, "1,2,3,4,5,6,7,8\n");
    eplb_test_write_text(old, "[[0,1,2,3,4,5,6,7,0,1,2,3,4,5,6,8]]");
    eplb_test_cli_expect(1, "layer 0 slot 15 holds expert 8, outside [0, 8)",
                         "rebalance --weights %s --replicas 16 --gpus 4 --old %s", w, old);
    eplb_test_write_text(old, "[[0,1,2,3,4,5,6,7]]");
    eplb_test_cli_expect(1, "shape [1][8], expected [1][16]",
                         "rebalance --weights %s --replicas 16 --gpus 4 --old %s", w, old);
    /* an expert id is a whole number (mutation testing: without the
     * check, 3.5 was taken as expert 3) */
    eplb_test_write_text(old, "[[0,1,2,3,4,5,6,7,0,1,2,3,4,5,6,3.5]]");
    eplb_test_cli_expect(1, "row 0 column 15 is not an integer",
                         "rebalance --weights %s --replicas 16 --gpus 4 --policy none --old %s", w,
                         old);
    /* an impossible request stays a usage error */
    eplb_test_cli_expect(2, "gpus 5", "rebalance --weights %s --replicas 16 --gpus 5", w);
    unlink(w);
    unlink(old);
    cr_assert_eq(rmdir(d.s), 0);
}

/* ---- 8: slots per layer and GPUs are bounded ------------------------ */

/* Found: --replicas 1048576 was accepted, and nodup, vec,
 * deepseek-preserve and migration-aware ran for minutes on it.  The
 * timeout catches a limit that is not checked up front. */
Test(input_files, slots_and_gpus_bounded, .timeout = 30)
{
    path_t d = keep(eplb_test_tmpdir());
    path_t wp = keep(eplb_test_path(d.s, "w.csv"));
    const char *w = wp.s;
    eplb_test_write_text(w, "1,2,3,4,5,6,7,8\n");
    static const char *const pols[] = {"nodup", "vec", "deepseek-preserve",
                                       "migration-aware --max-moves -1"};
    for (size_t i = 0; i < sizeof pols / sizeof pols[0]; i++)
        eplb_test_cli_expect(2, "--replicas: 1048576 is more than 16384",
                             "rebalance --weights %s --replicas 1048576 --gpus 1 --policy %s", w,
                             pols[i]);
    eplb_test_cli_expect(2, "--replicas: 16400 is more than 16384",
                         "rebalance --weights %s --replicas 16400 --gpus 8", w);
    eplb_test_cli_expect(2, "--gpus: 8192 is more than 4096",
                         "rebalance --weights %s --replicas 16384 --gpus 8192", w);
    /* the limit itself is accepted */
    eplb_test_cli_expect(0, "\"phy2log\"",
                         "rebalance --weights %s --replicas 16384 --gpus 4096 --policy nodup",
                         w);
    cr_assert_eq(EPLB_MAX_SLOTS, 16384);
    cr_assert_eq(EPLB_MAX_GPUS, 4096);
    unlink(w);
    cr_assert_eq(rmdir(d.s), 0);
}

/* ---- 9: the inputs sweep (tests/fuzz/inputs_fuzz.sh) ---------------- */

/* Found: a JSON text that starts with a number read the byte before it
 * (p->s[-1], to tell NaN and Infinity apart): "5" as --old was a
 * heap-buffer-overflow under ASan, and a number right after an 'N' or a
 * 'y' in memory read as NaN or Infinity. */
Test(input_files, json_number_at_start_of_text)
{
    static const char *const texts[] = {"N5", "y5", "x5"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        eplb_json_t *v = NULL;
        eplb_assert_ok(eplb_json_parse(&v, texts[i] + 1, 1, "t.json"));
        cr_assert_eq(v->type, EPLB_JSON_NUMBER);
        cr_assert_eq(v->num, 5.0, "%s: read %g", texts[i], v->num);
        eplb_json_free(v);
    }
    path_t d = keep(eplb_test_tmpdir());
    path_t w = keep(eplb_test_path(d.s, "w.json"));
    path_t o = keep(eplb_test_path(d.s, "old.json"));
    eplb_test_write_text(w.s, W2);
    eplb_test_write_text(o.s, "5");
    eplb_test_cli_expect(1, "--old " , "rebalance --weights %s --replicas 16 --gpus 4 --old %s",
                         w.s, o.s);
    eplb_test_cli_expect(1, "old.json: expected a non-empty array of rows",
                         "rebalance --weights %s --replicas 16 --gpus 4 --old %s", w.s, o.s);
    unlink(w.s);
    unlink(o.s);
    cr_assert_eq(rmdir(d.s), 0);
}

/* Found: strtod read what JSON does not allow (00012, 1., .5, 0x10: exit
 * 0 on a corrupt file), a number of more than 63 characters was cut there
 * (a valid "0.000...1" refused as "expected ','"), and 1e400 read as inf. */
Test(input_files, json_numbers_as_rfc8259)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"[00012]", "at byte 1: bad number (a leading zero)"},
        {"[-01]", "a leading zero"},
        {"[1.]", "no digit after '.'"},
        {"[1.e5]", "no digit after '.'"},
        {"[.5]", "unexpected character"},
        {"[+1]", "unexpected character"},
        {"[-]", "bad number"},
        {"[1e]", "no digit in the exponent"},
        {"[1e+]", "no digit in the exponent"},
        {"[0x10]", "expected ',' or ']'"},
        {"[1.2.3]", "expected ',' or ']'"},
        {"[1e400]", "beyond the range of a double"},
        {"[-1e400]", "beyond the range of a double"},
        {"[-NaN]", "bad number"},
        {"[Nan]", "unexpected character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eplb_json_t *v = NULL;
        eplb_assert_fails(eplb_json_parse(&v, bad[i].text, strlen(bad[i].text), "t.json"),
                          EPLB_ERR_FORMAT, bad[i].why);
        cr_assert(strstr(eplb_error_last(), "t.json: invalid JSON at byte "), "%s",
                  eplb_error_last());
    }
    static const struct {
        const char *text;
        double want;
    } good[] = {
        {"[0.000000000000000000000000000000000000000000000000000000000000000000001]", 1e-69},
        {"[1000000000000000000000000000000000000000000000000000000000000000000000]", 1e69},
        {"[1e-400]", 0},      {"[-0]", 0},      {"[0]", 0},           {"[1E+2]", 100},
        {"[-2.5e-1]", -0.25}, {"[10.01]", 10.01}, {"[-Infinity]", -INFINITY},
        {"[Infinity]", INFINITY},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        eplb_json_t *v = NULL;
        eplb_assert_ok(eplb_json_parse(&v, good[i].text, strlen(good[i].text), "t.json"));
        double x = eplb_test_num_at(v, 0);
        cr_assert(x == good[i].want || fabs(x - good[i].want) <= 1e-12 * fabs(good[i].want),
                  "%s read as %g", good[i].text, x);
        eplb_json_free(v);
    }
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, "[NaN]", 5, "t.json"));
    cr_assert(isnan(eplb_test_num_at(v, 0)));
    eplb_json_free(v);
}

/* Found: a key given twice was accepted, and eplb_json_get returned the
 * first ({"logical_count": A, "logical_count": B} rebalanced A). */
Test(input_files, json_duplicate_keys_refused, .timeout = 30)
{
    eplb_json_t *v = NULL;
    eplb_assert_fails(eplb_json_parse(&v, "{\"a\": 1, \"b\": 2, \"a\": 3}", 24, "t.json"),
                      EPLB_ERR_FORMAT, "t.json: invalid JSON at byte 23: the object ending "
                                       "here has the key \"a\" twice");
    const char *inner = "{\"x\": {\"k\": 1, \"k\": 1}}";
    eplb_assert_fails(eplb_json_parse(&v, inner, strlen(inner), "t.json"), EPLB_ERR_FORMAT,
                      "key \"k\" twice");
    /* one key in different objects is fine */
    const char *ok = "{\"k\": {\"k\": 1}, \"j\": [{\"k\": 2}, {\"k\": 3}]}";
    eplb_assert_ok(eplb_json_parse(&v, ok, strlen(ok), "t.json"));
    eplb_json_free(v);
    /* a large object is checked in n log n (the timeout catches n^2) */
    size_t n = 200000, cap = n * 16 + 16, len = 0;
    char *big = malloc(cap);
    cr_assert_not_null(big);
    big[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s\"k%zu\":1", i ? "," : "", i);
    big[len++] = '}';
    eplb_assert_ok(eplb_json_parse(&v, big, len, "big.json"));
    cr_assert_eq(v->n, n);
    eplb_json_free(v);
    free(big);
}

/* Found: a UTF-8 byte order mark was "unexpected character" at byte 0
 * (eplb_json_parse_file), and sent a JSON --weights file to the CSV
 * reader ("line 1 value 1 is not a number"). */
Test(input_files, json_bom_skipped)
{
    eplb_json_t *v = NULL;
    eplb_assert_ok(eplb_json_parse(&v, "\xEF\xBB\xBF[1]", 6, "t.json"));
    cr_assert_eq(eplb_test_num_at(v, 0), 1);
    eplb_json_free(v);
    /* only at the start */
    eplb_assert_fails(eplb_json_parse(&v, "[\xEF\xBB\xBF" "1]", 6, "t.json"), EPLB_ERR_FORMAT,
                      "at byte 1");
    path_t d = keep(eplb_test_tmpdir());
    path_t j = keep(eplb_test_path(d.s, "w.json"));
    path_t c = keep(eplb_test_path(d.s, "w.csv"));
    char text[1024];
    snprintf(text, sizeof text, "\xEF\xBB\xBF%s", W2);
    eplb_test_write_text(j.s, text);
    eplb_test_write_text(c.s, "\xEF\xBB\xBF" "1,2,3,4\n");
    eplb_test_cli_expect(0, "\"phy2log\"", "rebalance --weights %s --replicas 16 --gpus 4", j.s);
    eplb_test_cli_expect(0, "\"phy2log\"", "rebalance --weights %s --replicas 4 --gpus 2", c.s);
    unlink(j.s);
    unlink(c.s);
    cr_assert_eq(rmdir(d.s), 0);
}

/* Found: the gemm_table key was read with sscanf: "%d" took spaces and
 * signs and wrapped past int (gemm_table.4294974464x2048 read as 7168),
 * "%7s" stopped at a space (".fp8 junk" accepted); a second table of one
 * shape and format was accepted and never used; a table without format
 * before the FP8 one hid it.  Stray bytes went raw into the messages. */
Test(input_files, profile_gemm_tables_strict)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"gemm_table.4294974464x2048 = 1:1\n", "p.txt:1: gemm_table.4294974464x2048: expected"},
        {"gemm_table. 7168x 2048 = 1:1\n", "expected gemm_table.HIDDENxINTER"},
        {"gemm_table.+7168x2048 = 1:1\n", "expected gemm_table.HIDDENxINTER"},
        {"gemm_table.7168x2048.fp8 junk = 1:1\n", "expected gemm_table.HIDDENxINTER"},
        {"gemm_table.7168x2048.fp8x = 1:1\n", "expected gemm_table.HIDDENxINTER"},
        {"gemm_table.7168x0 = 1:1\n", "expected gemm_table.HIDDENxINTER"},
        {"gemm_table.7168x2048.fp8 = 1:1\ngemm_table.7168x2048.fp8 = 1:2\n",
         "p.txt:2: gemm_table.7168x2048.fp8: a second table for 7168x2048.fp8"},
        {"gemm_table.7168x2048 = 1:1\ngemm_table.07168x2048 = 1:2\n",
         "p.txt:2: gemm_table.07168x2048: a second table for 7168x2048 "},
        {"nvlink_\rGBps = 4\n", "p.txt:1: unknown key 'nvlink_\\x0dGBps'"},
        {"nvlink_GBps = 4\f5\n", "p.txt:1: nvlink_GBps: '4\\x0c5' is not a number"},
        {"record_table = 1:\xff\n", "record_table: '\\xff' is not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eplb_profile_t p;
        eplb_assert_fails(eplb_sim_profile_parse(&p, bad[i].text, "p.txt"), EPLB_ERR_FORMAT,
                          bad[i].want);
    }
    /* the table of the model's format wins, in either order */
    static const char *const orders[] = {
        "gemm_table.7168x2048 = 1:100\ngemm_table.7168x2048.fp8 = 1:5\n",
        "gemm_table.7168x2048.fp8 = 1:5\ngemm_table.7168x2048 = 1:100\n",
    };
    eplb_model_shape_t fp8 = {7168, 2048, 1, "fp8"}, bf16 = {7168, 2048, 2, "bf16"};
    for (int i = 0; i < 2; i++) {
        eplb_profile_t p;
        eplb_assert_ok(eplb_sim_profile_parse(&p, orders[i], "p.txt"));
        const eplb_gemm_table_t *t = eplb_sim_profile_table(&p, &fp8);
        cr_assert_not_null(t);
        cr_assert_eq(t->weight_bytes, 1, "order %d: the generic table hid the FP8 one", i);
        t = eplb_sim_profile_table(&p, &bf16);
        cr_assert_not_null(t);
        cr_assert_eq(t->weight_bytes, 0);
    }
}
