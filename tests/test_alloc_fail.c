/* test_alloc_fail.c - every allocation of a command made to fail, one at a
 * time (tests/lib/alloc_fail.c, an LD_PRELOAD library): the command must
 * end with a message and exit 1, or succeed, and never crash or hang, and
 * a command that fails leaves no output behind; one that succeeds prints
 * and writes what it does without a failure (run, rebalance, info, gen,
 * import), but for the one degradation a run declares in its output.
 *
 * Found by a static-analysis audit with fault injection: a run worker whose
 * workspace allocation failed for one run wrote through NULL in the next
 * (sim/run.c work_fit), `gen --stats` freed its statistics twice
 * (traces/gen.c acc_free), and a failed job table crashed the compression
 * pool's teardown (traces/zpool.c).  Each of those makes this test fail.
 *
 * Skipped under AddressSanitizer, which owns the allocator.  The runs take
 * --device cpu: in a CUDA build the CUDA runtime is linked into the
 * program, and its allocations (on a machine with a GPU) would count as
 * the program's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#define SHIM_USABLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHIM_USABLE 0
#endif
#endif
#ifndef SHIM_USABLE
#define SHIM_USABLE 1
#endif

/* The tests are disabled under ASan (not skipped from inside: Criterion
 * 2.4 then leaked 48 bytes in its runner under -j2, which LeakSanitizer
 * reported as a failure of the suite). */
static const char *shim(void)
{
    const char *p = eplb_test_path(eplb_test_builddir(), "tests/alloc_fail.so");
    if (!eplb_test_exists(p))
        cr_skip_test("%s not built", p);
    return p;
}

/* More environment for the sweeps' commands ("" or "NAME=VALUE ..."). */
static const char *sweep_env = "";

/* Run `eplb-replay args` once to count its allocation sites, then once per
 * site with that site's call-th call failing; out (a file or directory, or
 * NULL) must not exist after a failed run.  With same, a run that still
 * exits 0 must print what a run without failures prints (the command's
 * output depends on nothing a failed allocation may change).  Returns the
 * number of sites. */
static int every_site_same(const char *args, const char *out, int call, int same)
{
    const char *so = shim();
    char prefix[4600], *text = NULL;
    snprintf(prefix, sizeof prefix,
             "timeout 120 env EPLB_THREADS=1 %s EPLB_FAIL_REPORT=1 LD_PRELOAD='%s' ", sweep_env,
             so);
    int rc = eplb_test_run_cli_prefixed(&text, prefix, "%s", args);
    cr_assert_eq(rc, 0, "%s: %s", args, text);
    const char *r = strstr(text, "alloc_fail: ");
    cr_assert_not_null(r, "%s: the shim did not report: %s", args, text);
    int sites = atoi(r + strlen("alloc_fail: "));
    cr_assert_gt(sites, 0, "%s", text);
    free(text);
    char *clean = NULL;
    if (same) {
        snprintf(prefix, sizeof prefix, "timeout 120 env EPLB_THREADS=1 %s LD_PRELOAD='%s' ",
                 sweep_env, so);
        cr_assert_eq(eplb_test_run_cli_prefixed(&clean, prefix, "%s", args), 0, "%s", args);
        if (out) { /* and the files it wrote */
            char cp[4200];
            snprintf(cp, sizeof cp, "rm -rf '%s.clean' && cp -r '%s' '%s.clean'", out, out, out);
            cr_assert_eq(system(cp), 0);
        }
    }
    for (int k = 1; k <= sites; k++) {
        if (out) {
            char rm[4200];
            snprintf(rm, sizeof rm, "rm -rf '%s'", out);
            cr_assert_eq(system(rm), 0);
        }
        snprintf(prefix, sizeof prefix,
                 "timeout 120 env EPLB_THREADS=1 %s EPLB_FAIL_SITE=%d EPLB_FAIL_CALL=%d "
                 "LD_PRELOAD='%s' ",
                 sweep_env, k, call, so);
        rc = eplb_test_run_cli_prefixed(&text, prefix, "%s", args);
        cr_assert(rc == 0 || rc == 1,
                  "%s, site %d of %d failing (call %d): exit %d (-1: a signal)\n%s", args, k, sites,
                  call, rc, text);
        if (rc == 1) {
            cr_assert(strstr(text, "eplb-replay") != NULL, "%s, site %d: no message: %s", args, k,
                      text);
            if (out)
                cr_assert(!eplb_test_exists(out), "%s, site %d: %s left behind after exit 1", args,
                          k, out);
        } else if (clean) {
            cr_assert_str_eq(text, clean, "%s, site %d: exit 0 with other output", args, k);
            /* the files too, but for the one degradation a run declares:
             * the trace's model_config unread (sim/profile.c), the expert
             * sizes then taken by the model name, and the note in them */
            if (out) {
                char diff[4200];
                snprintf(diff, sizeof diff,
                         "grep -rq 'model_config could not be read (out of memory)' '%s' || "
                         "diff -r '%s.clean' '%s' >/dev/null",
                         out, out, out);
                cr_assert(system(diff) == 0, "%s, site %d: exit 0, %s differs from a clean run's",
                          args, k, out);
            }
        }
        free(text);
    }
    free(clean);
    return sites;
}

static int every_site_call(const char *args, const char *out, int call)
{
    return every_site_same(args, out, call, 0);
}

static int every_site(const char *args, const char *out) { return every_site_call(args, out, 1); }

static const char *trace(const char *name)
{
    return eplb_test_path(eplb_test_path(eplb_test_srcdir(), "traces"), name);
}

/* Two runs (none and deepseek) share the run workers: one whose
 * allocation failed is used again. */
Test(alloc_fail, run_two_runs, .disabled = !SHIM_USABLE, .timeout = 600)
{
    char args[4400];
    snprintf(args, sizeof args,
             "run '%s' --policy deepseek --quiet --policy-time 0 --threads 1 --device cpu",
             trace("dsv3-small.h5"));
    /* (--policy-time 0: the output of a run that succeeds is fixed) */
    cr_assert_gt(every_site_same(args, NULL, 1, 1), 10);
    /* the second call of each site: buffers that grow, later steps */
    cr_assert_gt(every_site_same(args, NULL, 2, 1), 10);
    /* the reader's sites, which the probe's child reaches first (see
     * gen_run_out_info) */
    sweep_env = "EPLB_TRACE_PROBE=0";
    cr_assert_gt(every_site_same(args, NULL, 1, 1), 10);
    sweep_env = "";
}

/* A small trace from gen (logits), replayed with once, vec and balanced
 * selection into an output set, and read by info. */
Test(alloc_fail, gen_run_out_info, .disabled = !SHIM_USABLE, .timeout = 600)
{
    const char *d = eplb_test_tmpdir();
    char t[512], o[512], args[4400];
    snprintf(t, sizeof t, "%s/tiny.h5", d);
    snprintf(o, sizeof o, "%s/out", d);
    snprintf(args, sizeof args, "gen --preset deepseek-v3 --steps 3 --tokens-per-step 16 -o '%s'",
             t);
    cr_assert_gt(every_site_same(args, t, 1, 1), 5);
    cr_assert_eq(eplb_test_run_cli(NULL, "%s", args), 0);
    snprintf(args, sizeof args,
             "run '%s' --policy deepseek,vec --trigger once --select balanced --quiet "
             "--policy-time 0 --threads 1 --device cpu --out '%s'",
             t, o);
    cr_assert_gt(every_site_same(args, o, 1, 1), 10);
    /* (the shipped trace: the small one's metadata is read in one go, so
     * no read failed while /router/logits was looked up) */
    snprintf(args, sizeof args, "info '%s' --json", trace("esft-intent.h5"));
    every_site_same(args, NULL, 1, 1);
    /* without the probe: a site the probe's child reaches first fails
     * there (the open then reported as out of its memory cap), so the
     * reader's own handling of that site ran only here */
    sweep_env = "EPLB_TRACE_PROBE=0";
    every_site_same(args, NULL, 1, 1);
    sweep_env = "";
    snprintf(args, sizeof args, "gen --preset deepseek-v3 --stats --steps 4 --tokens-per-step 8");
    cr_assert_gt(every_site(args, NULL), 5);
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf '%s'", d);
    cr_assert_eq(system(rm), 0);
}

/* rebalance (SGLang's 3-D counts, an old placement, moves counted; the
 * SGLang export from migration-aware, which starts from it) and the
 * import of SGLang counts. */
Test(alloc_fail, rebalance_and_import, .disabled = !SHIM_USABLE, .timeout = 600)
{
    const char *d = eplb_test_tmpdir();
    char w[512], old[512], o[512], args[4400];
    snprintf(w, sizeof w, "%s/w.json", d);
    snprintf(old, sizeof old, "%s/old.json", d);
    snprintf(o, sizeof o, "%s/counts.h5", d);
    eplb_test_write_text(w, "{\"logical_count\": [[[9, 1, 4, 0, 2, 7, 3, 5], [1, 1, 8, 2, 0, "
                            "0, 6, 3]], [[4, 2, 2, 9, 1, 0, 5, 5], [0, 3, 3, 7, 1, 2, 2, 9]]]}");
    eplb_test_write_text(old, "[[0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3], "
                              "[0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]]");
    static const char *const pol[] = {"deepseek", "vec", "migration-aware", "lpt"};
    for (size_t i = 0; i < sizeof pol / sizeof pol[0]; i++) {
        snprintf(args, sizeof args,
                 "rebalance --weights '%s' --old '%s' --replicas 12 --gpus 4 --groups 2 "
                 "--policy %s%s",
                 w, old, pol[i], i == 2 ? " --export sglang" : "");
        cr_assert_gt(every_site_same(args, NULL, 1, 1), 3);
    }
    snprintf(args, sizeof args, "import --format sglang-counts '%s' -o '%s' --top-k 2 --model toy",
             w, o);
    cr_assert_gt(every_site_same(args, o, 1, 1), 3);
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf '%s'", d);
    cr_assert_eq(system(rm), 0);
}

/* The CPU benchmarks (bench kernels' synthetic map was written through
 * NULL when its allocation failed). */
Test(alloc_fail, benches, .disabled = !SHIM_USABLE, .timeout = 600)
{
    cr_assert_gt(every_site("bench kernels --device cpu --tokens 64,512 --reps 2", NULL), 3);
    cr_assert_gt(every_site("bench sim --steps 3 --layers 2 --policy deepseek", NULL), 3);
    char args[4400];
    snprintf(args, sizeof args, "bench io '%s' --repeat 1", trace("dsv3-small.h5"));
    cr_assert_gt(every_site(args, NULL), 3);
}

/* ---- file I/O: each pwrite, pread or rename failing in turn ------------- */

static int sh(const char *fmt, const char *a, const char *b)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    return system(cmd);
}

/* The shim's file I/O failures: the call, and the variable that fails the
 * N-th one. */
enum { IO_PWRITE, IO_PREAD, IO_RENAME, IO_FSYNC };
static const struct {
    const char *name, *env;
} io_kinds[] = {{"pwrite", "EPLB_FAIL_PWRITE"},
                {"pread", "EPLB_FAIL_PREAD"},
                {"rename", "EPLB_FAIL_RENAME"},
                {"fsync", "EPLB_FAIL_FSYNC"}};

/* How many calls of kind `args` makes (the shim's report). */
static int io_calls(const char *args, int kind)
{
    char prefix[4600], *text = NULL;
    snprintf(prefix, sizeof prefix,
             "timeout 120 env EPLB_THREADS=1 EPLB_FAIL_REPORT=1 LD_PRELOAD='%s' ", shim());
    int rc = eplb_test_run_cli_prefixed(&text, prefix, "%s", args);
    cr_assert_eq(rc, 0, "%s: %s", args, text);
    const char *r = strstr(text, "alloc_fail: ");
    r = r ? strstr(r + 1, "alloc_fail: ") : NULL;
    cr_assert_not_null(r, "%s: the shim did not report: %s", args, text);
    long n[4] = {0, 0, 0, 0};
    cr_assert_eq(sscanf(r, "alloc_fail: %ld pwrite, %ld pread, %ld rename, %ld fsync",
                        &n[IO_PWRITE], &n[IO_PREAD], &n[IO_RENAME], &n[IO_FSYNC]),
                 4, "%s", r);
    free(text);
    return (int)n[kind];
}

/* The runs of the last io_sweep that exited 1. */
static int sweep_exits_1;

/* `args` (its stdout into d/stdout) once per call of kind failing.  Each
 * run starts with out as `before` left it (before: a directory copied to
 * out, or NULL: out absent).  A run that exits 1 leaves out as it found it
 * (and says why); one that exits 0 gives outputs equal to the reference
 * (ref_out, and ref_stdout for stdout).  Returns the calls swept. */
static int io_sweep(const char *args, int kind, const char *d, const char *out, const char *before,
                    const char *ref_out, const char *ref_stdout)
{
    const int calls = io_calls(args, kind);
    const char *what = io_kinds[kind].name;
    char env[64], prefix[4600], so[4200], se[4200], *text = NULL;
    snprintf(so, sizeof so, "%s/stdout", d);
    snprintf(se, sizeof se, "%s/stderr", d);
    sweep_exits_1 = 0;
    for (int k = 1; k <= calls; k++) {
        if (out)
            cr_assert_eq(sh("rm -rf '%s'%s", out, ""), 0);
        if (out && before)
            cr_assert_eq(sh("cp -a '%s' '%s'", before, out), 0);
        snprintf(env, sizeof env, "%s=%d", io_kinds[kind].env, k);
        snprintf(prefix, sizeof prefix, "timeout 120 env EPLB_THREADS=1 %s LD_PRELOAD='%s' ", env,
                 shim());
        int rc =
            eplb_test_run_cli_prefixed(&text, prefix, "%s >'%s' 2>'%s'; exit $?", args, so, se);
        free(text);
        char *err = eplb_test_slurp_text(se);
        cr_assert(rc == 0 || rc == 1, "%s, %s %d of %d failing: exit %d\n%s", args, what, k, calls,
                  rc, err);
        if (rc == 1) {
            sweep_exits_1++;
            cr_assert(strstr(err, "eplb-replay") != NULL, "%s, %s %d: no message", args, what, k);
            if (out && before)
                cr_assert_eq(sh("diff -r '%s' '%s' >/dev/null", before, out), 0,
                             "%s, %s %d failing: exit 1, and %s is not as it was: %s", args, what,
                             k, out, err);
            else if (out)
                cr_assert(!eplb_test_exists(out), "%s, %s %d: exit 1 and %s left: %s", args, what,
                          k, out, err);
        } else {
            if (out)
                cr_assert_eq(sh("diff -r '%s' '%s' >/dev/null", ref_out, out), 0,
                             "%s, %s %d failing: exit 0, but %s differs from a clean run's", args,
                             what, k, out);
            if (ref_stdout)
                cr_assert_eq(sh("cmp -s '%s' '%s'", ref_stdout, so), 0,
                             "%s, %s %d failing: exit 0, but its output differs from a clean "
                             "run's (stderr: %s)",
                             args, what, k, err);
        }
        free(err);
    }
    return calls;
}

/* Found by an I/O fault-injection audit: (1) a failed write of a small
 * dataset (placement_initial/final, the bias) happened at its close, was
 * not seen, and the run or gen exited 0 with zeros there; (2) a failed
 * read while looking up /router/logits read as "no logits", and the run
 * exited 0 with other results; (3) a rename that failed half-way through
 * an output set left new files beside the earlier ones. */
Test(alloc_fail, io_errors_leave_outputs_whole, .disabled = !SHIM_USABLE, .timeout = 900)
{
    const char *d = eplb_test_tmpdir();
    char t[512], ref[512], o[512], old[512], rs[512], args[4400];
    snprintf(t, sizeof t, "%s/t.h5", d);
    snprintf(ref, sizeof ref, "%s/ref", d);
    snprintf(o, sizeof o, "%s/o", d);
    snprintf(old, sizeof old, "%s/old", d);
    snprintf(rs, sizeof rs, "%s/ref.stdout", d);
    /* gen: the trace and its bias */
    snprintf(args, sizeof args, "gen --preset deepseek-v3 --steps 3 --tokens-per-step 16 -o '%s'",
             ref);
    cr_assert_eq(eplb_test_run_cli(NULL, "%s", args), 0);
    snprintf(args, sizeof args, "gen --preset deepseek-v3 --steps 3 --tokens-per-step 16 -o '%s'",
             t);
    cr_assert_gt(io_sweep(args, IO_PWRITE, d, t, NULL, ref, NULL), 3);
    /* the trace's fsync failing is an error; the directory's is not */
    cr_assert_eq(io_sweep(args, IO_FSYNC, d, t, NULL, ref, NULL), 2);
    cr_assert_eq(sweep_exits_1, 1);
    cr_assert_eq(eplb_test_run_cli(NULL, "%s", args), 0);
    cr_assert_eq(sh("rm -f '%s'%s", ref, ""), 0);
    /* run --out, into a new directory and over an earlier set */
    const char *run = "run '%s' --policy deepseek --policy-time 0 --device cpu --out '%s'";
    snprintf(args, sizeof args, run, t, ref);
    cr_assert_eq(eplb_test_run_cli(NULL, "%s >/dev/null", args), 0);
    snprintf(args, sizeof args, "run '%s' --policy lpt --policy-time 0 --device cpu --out '%s'", t,
             old);
    cr_assert_eq(eplb_test_run_cli(NULL, "%s >/dev/null", args), 0);
    snprintf(args, sizeof args, run, t, o);
    cr_assert_gt(io_sweep(args, IO_PWRITE, d, o, NULL, ref, NULL), 3);
    cr_assert_gt(io_sweep(args, IO_PWRITE, d, o, old, ref, NULL), 3);
    cr_assert_gt(io_sweep(args, IO_RENAME, d, o, old, ref, NULL), 3);
    cr_assert_gt(io_sweep(args, IO_RENAME, d, o, NULL, ref, NULL), 3);
    /* a failed fsync of any of the 5 members stops the commit (exit 1,
     * the earlier set kept); the directory's own sync is best effort */
    cr_assert_eq(io_sweep(args, IO_FSYNC, d, o, old, ref, NULL), 6);
    cr_assert_eq(sweep_exits_1, 5);
    cr_assert_eq(io_sweep(args, IO_FSYNC, d, o, NULL, ref, NULL), 6);
    cr_assert_eq(sweep_exits_1, 5);
    /* reads: the run's table and info's description */
    snprintf(args, sizeof args, "run '%s' --policy deepseek --policy-time 0 --device cpu --json",
             t);
    cr_assert_eq(eplb_test_run_cli(NULL, "%s >'%s' 2>/dev/null; exit $?", args, rs), 0);
    cr_assert_gt(io_sweep(args, IO_PREAD, d, NULL, NULL, NULL, rs), 3);
    /* (the shipped trace: the small one's metadata is read in one go, so
     * no read failed while /router/logits was looked up) */
    snprintf(args, sizeof args, "info '%s' --json", trace("esft-intent.h5"));
    cr_assert_eq(eplb_test_run_cli(NULL, "%s >'%s' 2>/dev/null; exit $?", args, rs), 0);
    cr_assert_gt(io_sweep(args, IO_PREAD, d, NULL, NULL, NULL, rs), 3);
    cr_assert_eq(sh("rm -rf '%s'%s", d, ""), 0);
}
