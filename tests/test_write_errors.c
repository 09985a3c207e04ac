/* test_write_errors.c - outputs whose writing fails: a write past the file
 * size limit (EFBIG, as a full disk gives ENOSPC) or to /dev/full makes
 * gen, import and run --out exit 1 with a message that names the file and
 * the errno text; no crash, nothing under a final name, no directory the
 * run created, and the earlier files of an --out directory untouched.
 * Regression tests of the robustness sweep of 2026-11-28: before the fix
 * every HDF5 case exited 139 (SIGSEGV in HDF5's clean-up at exit, on the
 * file whose close had failed), run --out left config.json and results.h5
 * beside the summary.json it could not write ("write error", no reason),
 * and a failed run left the parents of --out that it had created.
 *
 * The size limit comes from the shell: `ulimit -f N` (N blocks of 512
 * bytes in a POSIX sh) with SIGXFSZ ignored, so a write past it fails with
 * EFBIG ("File too large") instead of killing the process.  No mount, no
 * privileges. */
#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "sim.h"
#include "tmpfile_guard.h"
#include "trace.h"
#include "trace_fixtures.h"

/* Exit status of `sh -c CMD` with stdout and stderr in *out (malloc'd), or
 * 128 + the signal that killed it, as a shell reports it (139: SIGSEGV). */
static int sh_run(char **out, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof cmd, "command too long");
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL, "popen failed for %s", cmd);
    size_t len = 0, cap = 4096, r;
    char *buf = malloc(cap);
    cr_assert(buf != NULL);
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0)
        if ((len += r) + 2 > cap)
            cr_assert((buf = realloc(buf, cap *= 2)) != NULL);
    buf[len] = '\0';
    int status = pclose(p);
    *out = buf;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* `eplb-replay ARGS` with file sizes limited to `blocks` x 512 bytes (no
 * limit if 0).  The binary is exec'd, so it keeps the shell's pid: $$ in
 * ARGS or in PRE (commands run first) is the pid the program sees. */
static int run_limited(char **out, int blocks, const char *pre, const char *args)
{
    char limit[64] = "";
    if (blocks > 0)
        snprintf(limit, sizeof limit, "trap '' XFSZ; ulimit -f %d &&", blocks);
    return sh_run(out, "%s %s exec '%s/eplb-replay' %s 2>&1", pre ? pre : "", limit,
                  eplb_test_builddir(), args);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    cr_assert(stat(path, &sb) == 0, "%s missing", path);
    return sb.st_size;
}

/* Exit 1, not a crash, with a message naming `file` and saying `why`. */
static void assert_clean_failure(int rc, const char *out, const char *file, const char *why)
{
    cr_assert_neq(rc, 139, "crashed (SIGSEGV): %s", out);
    cr_assert_eq(rc, 1, "exit %d, want 1: %s", rc, out);
    cr_assert(strstr(out, file) != NULL, "message lacks the file %s: %s", file, out);
    cr_assert(strstr(out, why) != NULL, "message lacks '%s': %s", why, out);
}

/* A trace from `gen` (no size limit): esft-lite, 4 steps of 64 tokens,
 * 679 KB of logits, so every output below the limits used here. */
static const char *gen_trace(const char *dir)
{
    static _Thread_local char path[4096];
    snprintf(path, sizeof path, "%s/t.h5", dir);
    eplb_test_cli_expect(0, NULL, "gen --preset esft-lite --steps 4 --tokens-per-step 64 -o %s",
                         path);
    return path;
}

/* ---- 1. HDF5 writes past the limit: exit 1, no file ---------------------- */

/* 64 blocks (32 KiB) fail on the first logits chunk; (S - 1) / 512 blocks
 * (S: the size of the same trace written without a limit, 679434 bytes
 * with zlib 1.2.13) fail on one of the last writes (there: the flush of
 * the metadata at the end). */
Test(write_errors, gen_past_size_limit, .timeout = 60)
{
    const char *d = eplb_test_tmpdir();
    off_t full = file_size(gen_trace(d));
    unlink(eplb_test_path(d, "t.h5"));
    const int limits[] = {64, (int)((full - 1) / 512)};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        char args[4200], *out;
        snprintf(args, sizeof args,
                 "gen --preset esft-lite --steps 4 --tokens-per-step 64 -o %s/g.h5", d);
        int rc = run_limited(&out, limits[i], NULL, args);
        assert_clean_failure(rc, out, "g.h5", "File too large");
        cr_assert_eq(eplb_test_dir_entries(d), 0, "limit %d blocks: a file is left in %s", limits[i], d);
        free(out);
    }
    rmdir(d);
}

/* The imports, from the shared data: the counts of
 * decode_in1000out1000.json make a 55 KB trace, which fails at the final
 * flush of the metadata, after which HDF5 cannot close the file at all
 * (the case that needs HDF5's clean-up at exit turned off); the ESFT
 * intent logs make an 8.5 MB trace, which fails in the rows of the chunk
 * cache written while the import goes on. */
Test(write_errors, imports_past_size_limit, .timeout = 60)
{
    const char *sh = eplb_test_shared_dir();
    if (!sh)
        cr_skip_test("no ../shared (the SGLang counts and ESFT logs)");
    const struct {
        const char *data, *format, *name;
        int blocks;
    } cases[] = {{"data/sglang-dsv3/decode_in1000out1000.json", "sglang-counts", "s.h5", 64},
                 {"data/esft/intent", "esft", "i.h5", 2048}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char in[4200];
        snprintf(in, sizeof in, "%s", eplb_test_path(sh, cases[c].data));
        if (!eplb_test_exists(in)) {
            cr_log_warn("%s missing: case skipped", in);
            continue;
        }
        const char *d = eplb_test_tmpdir();
        char args[8400], *out;
        snprintf(args, sizeof args, "import --format %s %s -o %s/%s", cases[c].format, in, d,
                 cases[c].name);
        int rc = run_limited(&out, cases[c].blocks, NULL, args);
        assert_clean_failure(rc, out, cases[c].name, "File too large");
        cr_assert_eq(eplb_test_dir_entries(d), 0, "a file is left in %s", d);
        free(out);
        rmdir(d);
    }
}

/* An SGLang import that fails while it appends its steps (not at the end)
 * leaves nothing, its temporary file included: a 3-D count of 40 steps of
 * 64 layers x 256 experts (values 0..999 from splitmix64) stores its
 * counts in chunks of 16 steps (1 MiB of 64 KiB rows); HDF5's chunk cache
 * holds one, so the first reaches the file when the second is written,
 * while step 32 is appended, and, compressed to far more than 32 KiB, fails
 * past a limit of 64 blocks.  (imports_past_size_limit's SGLang case, and
 * this one with 20 steps, failed only at the end, in
 * eplb_trace_writer_finish: the mutant below passed with 20 steps.)
 * Mutation testing: S14, import_sglang.c not aborting the writer on that
 * failure, left x.h5.tmp.<pid> behind and passed every test. */
Test(write_errors, sglang_import_failing_between_steps, .timeout = 60)
{
    enum { S = 40, L = 64, E = 256 };
    const char *in = eplb_test_tmpdir();
    char p[4200];
    snprintf(p, sizeof p, "%s/c.json", in);
    char *t = malloc((size_t)S * L * (E * 4 + 3) + 64), *q = t; /* <= 3 digits a value */
    cr_assert_not_null(t);
    uint64_t rng = 14;
    q += sprintf(q, "{\"logical_count\": [");
    for (int s = 0; s < S; s++) {
        q += sprintf(q, "%s[", s ? "," : "");
        for (int l = 0; l < L; l++) {
            q += sprintf(q, "%s[", l ? "," : "");
            for (int e = 0; e < E; e++)
                q += sprintf(q, "%s%d", e ? "," : "", (int)(eplb_test_rng_next(&rng) % 1000));
            q += sprintf(q, "]");
        }
        q += sprintf(q, "]");
    }
    sprintf(q, "]}");
    eplb_test_write_text(p, t);
    free(t);
    const char *d = eplb_test_tmpdir();
    char args[8400], *out;
    snprintf(args, sizeof args, "import --format sglang-counts %s -o %s/x.h5 --model toy", p, d);
    int rc = run_limited(&out, 64, NULL, args);
    assert_clean_failure(rc, out, "x.h5", "File too large");
    cr_assert(strstr(out, "/load/counts: cannot write rows"), "not a failure of the rows: %s", out);
    cr_assert_eq(eplb_test_dir_entries(d), 0, "a file is left in %s", d);
    free(out);
    rmdir(d);
    unlink(p);
    rmdir(in);
}

/* results.h5 of this run is 74 KB (--gpus 2: two runs, four steps); the
 * limit, 16 blocks (8 KiB), stops it early.  --out names a directory the
 * run creates, parent included: both are gone after the failure. */
Test(write_errors, run_out_past_size_limit, .timeout = 60)
{
    const char *d = eplb_test_tmpdir();
    const char *t = gen_trace(d);
    char args[8400], *out;
    snprintf(args, sizeof args, "run %s --quiet --policy-time 0 --gpus 2 --out %s/new/o", t, d);
    int rc = run_limited(&out, 16, NULL, args);
    assert_clean_failure(rc, out, "results.h5", "File too large");
    cr_assert(!eplb_test_exists(eplb_test_path(d, "new")),
              "the directory the run created is left");
    cr_assert_eq(eplb_test_dir_entries(d), 1, "a file besides the trace is left in %s", d);
    free(out);
    unlink(t);
    rmdir(d);
}

/* ---- 2. run --out: all files or none ------------------------------------- */

static const char *const out_names[] = {"config.json", "results.h5", "summary.json",
                                        "summary.csv", "report.txt"};

/* An --out directory holding the files of an earlier run ("old NAME"). */
static void write_old_outputs(const char *dir)
{
    cr_assert(mkdir(dir, 0777) == 0 || eplb_test_exists(dir));
    for (size_t i = 0; i < sizeof out_names / sizeof out_names[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "old %s\n", out_names[i]);
        eplb_test_write_text(eplb_test_path(dir, out_names[i]), text);
    }
}

static void assert_old_outputs(const char *dir)
{
    for (size_t i = 0; i < sizeof out_names / sizeof out_names[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "old %s\n", out_names[i]);
        size_t n = 0;
        unsigned char *got = eplb_test_slurp(eplb_test_path(dir, out_names[i]), &n);
        cr_assert(n == strlen(want) && !memcmp(got, want, n),
                  "%s/%s was replaced by a run that failed", dir, out_names[i]);
        free(got);
    }
    cr_assert_eq(eplb_test_dir_entries(dir), (int)(sizeof out_names / sizeof out_names[0]),
                 "%s holds more than the earlier files", dir);
}

/* summary.json is written in the middle (results.h5 and config.json
 * before it, summary.csv and report.txt after); its temporary name (the writer
 * writes it under that name itself: eplb_tmp_name) is a link to
 * /dev/full, which fails every write with ENOSPC.  The run must exit 1 naming summary.json
 * and "No space left on device", and leave the earlier files as they were
 * (before the fix: "summary.json.tmp.PID: write error", with config.json
 * and results.h5 already replaced). */
Test(write_errors, run_out_all_or_none, .timeout = 60)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no writable /dev/full");
    const char *d = eplb_test_tmpdir();
    const char *t = gen_trace(d);
    char o[4200], pre[9000], args[8400], *out;
    snprintf(o, sizeof o, "%s/o", d);
    write_old_outputs(o);
    snprintf(pre, sizeof pre, "ln -s /dev/full %s/summary.json.tmp.$$ &&", o);
    snprintf(args, sizeof args, "run %s --quiet --policy-time 0 --gpus 2 --out %s", t, o);
    int rc = run_limited(&out, 0, pre, args);
    assert_clean_failure(rc, out, "summary.json", "No space left on device");
    free(out);
    assert_old_outputs(o);
    for (size_t i = 0; i < sizeof out_names / sizeof out_names[0]; i++)
        unlink(eplb_test_path(o, out_names[i]));

    /* an empty directory: it stays (not the run's), empty */
    rc = run_limited(&out, 0, pre, args);
    assert_clean_failure(rc, out, "summary.json", "No space left on device");
    cr_assert_eq(eplb_test_dir_entries(o), 0, "a file is left in %s after a failed run", o);
    free(out);
    rmdir(o);
    unlink(t);
    rmdir(d);
}

/* The set behind it: a member that was never written fails the commit
 * before anything is renamed; the temporary files go, the final names stay
 * as they were. */
Test(write_errors, tmp_set_commits_all_or_none)
{
    const char *d = eplb_test_tmpdir();
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/a", d);
    snprintf(b, sizeof b, "%s/b", d);
    eplb_test_write_text(a, "old a\n");
    eplb_tmp_set_t set = EPLB_TMP_SET_INIT;
    const char *ta, *tb;
    eplb_assert_ok(eplb_tmp_set_add(&ta, &set, a));
    eplb_assert_ok(eplb_tmp_set_add(&tb, &set, b));
    eplb_test_write_text(ta, "new a\n");
    eplb_assert_fails(eplb_tmp_set_commit(&set), EPLB_ERR_IO, "is missing");
    cr_assert_eq(set.n, 0);
    size_t n;
    unsigned char *got = eplb_test_slurp(a, &n);
    cr_assert(n == 6 && !memcmp(got, "old a\n", 6), "a was replaced");
    free(got);
    cr_assert_eq(eplb_test_dir_entries(d), 1, "a temporary file is left in %s", d);

    /* complete: both renamed, nothing else left */
    eplb_assert_ok(eplb_tmp_set_add(&ta, &set, a));
    eplb_assert_ok(eplb_tmp_set_add(&tb, &set, b));
    eplb_test_write_text(ta, "new a\n");
    eplb_test_write_text(tb, "new b\n");
    eplb_assert_ok(eplb_tmp_set_commit(&set));
    got = eplb_test_slurp(b, &n);
    cr_assert(n == 6 && !memcmp(got, "new b\n", 6));
    free(got);
    cr_assert_eq(eplb_test_dir_entries(d), 2);
    unlink(a);
    unlink(b);
    rmdir(d);
}

static void write_hello(FILE *f, void *ctx)
{
    (void)ctx;
    fputs("hello\n", f);
}

/* eplb_sim_write_file says why a write failed (the errno text). */
Test(write_errors, write_file_names_errno)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no writable /dev/full");
    const char *d = eplb_test_tmpdir();
    char p[4200], tmp[4300];
    snprintf(p, sizeof p, "%s/s.json", d);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    cr_assert(symlink("/dev/full", tmp) == 0);
    eplb_assert_fails(eplb_sim_write_file(p, write_hello, NULL), EPLB_ERR_IO,
                      "s.json: write error: No space left on device");
    cr_assert_eq(eplb_test_dir_entries(d), 0, "a file is left in %s", d);
    rmdir(d);
}

/* A writer handed a temporary name of an output set ("X.tmp.<pid>", as run
 * --out does) writes that file itself, not "X.tmp.<pid>.tmp.<pid>" (a
 * review saw the doubled name left by an interrupted run): the file exists
 * while its content is written, and only it is there after. */
static void write_checking_name(FILE *f, void *ctx)
{
    fputs(access((const char *)ctx, F_OK) == 0 ? "own name\n" : "another name\n", f);
}

Test(write_errors, write_file_keeps_one_tmp_suffix)
{
    const char *d = eplb_test_tmpdir();
    char p[4200];
    snprintf(p, sizeof p, "%s/s.json.tmp.%ld", d, (long)getpid());
    eplb_assert_ok(eplb_sim_write_file(p, write_checking_name, p));
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f);
    char line[32] = "";
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    cr_assert_str_eq(line, "own name\n");
    cr_assert_eq(eplb_test_dir_entries(d), 1, "more than the one file in %s", d);
    unlink(p);
    rmdir(d);
}

/* ---- 3. a failed run removes the directories it created ----------------- */

/* A trace of 2 steps whose first logit is NaN (written through HDF5: the
 * writer refuses one); the run fails on it ("NaN or Inf logit"). */
static const char *nan_trace(const char *dir)
{
    static _Thread_local char path[4096];
    snprintf(path, sizeof path, "%s/nan.h5", dir);
    enum { L = 2, E = 8, K = 2, T = 4 };
    eplb_trace_writer_opts_t o =
        eplb_test_writer_opts("m", "test_write_errors.c", L, E, K, EPLB_LEVEL_LOGITS);
    o.logits_dtype = EPLB_DTYPE_F32;
    eplb_trace_writer_t *w = NULL;
    eplb_assert_ok(eplb_trace_writer_create(&w, path, &o));
    float lg[T * L * E];
    for (int i = 0; i < T * L * E; i++)
        lg[i] = (float)(i % 5);
    for (int s = 0; s < 2; s++)
        eplb_assert_ok(eplb_trace_writer_append_step(w, T, lg, NULL, NULL, NULL, NULL, 0));
    eplb_assert_ok(eplb_trace_writer_finish(w));
    const hsize_t at[3] = {0, 0, 0};
    const float nan = NAN;
    eplb_test_h5_poke(path, "/router/logits", at, H5T_NATIVE_FLOAT, &nan);
    return path;
}

/* --out new/q, new/../new2/q and keep/a/b (keep exists): after the failed
 * run only the trace and keep/ (empty) are left.  Before the fix: new/,
 * new/ and new2/, and keep/a/. */
Test(write_errors, run_failed_removes_created_dirs, .timeout = 60)
{
    const char *d = eplb_test_tmpdir();
    const char *t = nan_trace(d);
    cr_assert(mkdir(eplb_test_path(d, "keep"), 0777) == 0);
    static const char *const outs[] = {"new/q", "new/../new2/q", "keep/a/b"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        eplb_test_cli_expect(1, "NaN or Inf logit", "run %s --quiet --gpus 2 --out %s/%s", t,
                             d, outs[i]);
    cr_assert(!eplb_test_exists(eplb_test_path(d, "new")), "new/ is left");
    cr_assert(!eplb_test_exists(eplb_test_path(d, "new2")), "new2/ is left");
    cr_assert(!eplb_test_exists(eplb_test_path(d, "keep/a")), "keep/a/ is left");
    cr_assert(eplb_test_exists(eplb_test_path(d, "keep")), "keep/, not the run's, was removed");
    cr_assert_eq(eplb_test_dir_entries(d), 2, "more than the trace and keep/ in %s", d);
    rmdir(eplb_test_path(d, "keep"));
    unlink(t);
    rmdir(d);
}

/* ---- 4. interrupted: nothing left, whichever thread the signal reaches ---- */

/* Start `eplb-replay ARGV...` (NULL-terminated) with the guard's signals
 * at their default action and unblocked, as a shell starts a command, and
 * its output to /dev/null. */
static pid_t spawn_cli(char *const argv[])
{
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
        sigset_t set;
        sigemptyset(&set);
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
            signal(sigs[i], SIG_DFL);
            sigaddset(&set, sigs[i]);
        }
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        dup2(nul, 2);
        char bin[4200];
        snprintf(bin, sizeof bin, "%s/eplb-replay", eplb_test_builddir());
        execv(bin, argv);
        _exit(127);
    }
    return p;
}

/* SIGINT to process p, then to each of its threads (as the kernel may hand
 * a process's signal to any thread that does not block it, and timeout(1)
 * sends two: one to the process, one to its group). */
static void interrupt_all_threads(pid_t p)
{
    kill(p, SIGINT);
    char task[64];
    snprintf(task, sizeof task, "/proc/%ld/task", (long)p);
    DIR *dir = opendir(task);
    if (!dir)
        return; /* dead already */
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            syscall(SYS_tgkill, (long)p, atol(e->d_name), SIGINT);
    closedir(dir);
}

/* Remove path and what it holds (a file or a directory tree). */
static void remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                remove_tree(eplb_test_path(path, e->d_name));
        closedir(dir);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Run argv until something appears in dir (its temporary file or the
 * directory it creates), then `delay_us` more, and interrupt it on every
 * thread; assert that it died of SIGINT.  Returns 1 if it left something
 * in dir (removed then), else 0. */
static int interrupt_cli(char *const argv[], const char *dir, int delay_us)
{
    pid_t p = spawn_cli(argv);
    for (int waited = 0; eplb_test_dir_entries(dir) == 0 && waited < 20000000; waited += 100)
        usleep(100);
    usleep((useconds_t)delay_us);
    interrupt_all_threads(p);
    int status = 0;
    cr_assert_eq(waitpid(p, &status, 0), p);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT,
              "%s %s: did not die of SIGINT %d us in (status %#x)", argv[0], argv[1],
              delay_us, status);
    if (eplb_test_dir_entries(dir) == 0)
        return 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            cr_log_warn("%s %s interrupted %d us in left %s/%s", argv[0], argv[1], delay_us,
                        dir, e->d_name);
            remove_tree(eplb_test_path(dir, e->d_name));
        }
    closedir(d);
    return 1;
}

/* Found by the review of 2026-11-29: SIGINT a few ms into `run --out DIR`
 * left DIR (sometimes with results.h5.tmp.PID) in ~10% of tries, and into
 * `gen -o g.h5` left g.h5.tmp.PID in 10-30%: the signal reached a helper
 * thread (the pool's, the compressors', the readers') while the main
 * thread ran, or a second one did after the first had put back the default
 * action, and killed the process in the middle of the clean-up.  Each
 * command below is interrupted 24 times, 0 to 11.5 ms after its first
 * output appeared, on all its threads at once: before the fix gen left its
 * file in 13-15 of them and run --out its directory in 22-23; now only the
 * main thread takes the signals and nothing is ever left. */
Test(write_errors, interrupt_on_any_thread_leaves_nothing)
{
    /* a hang fails the test (SIGALRM), not Criterion's .timeout, which
     * leaked in the runner for a test this long (the sanitizer build) */
    alarm(120);
    enum { TRIES = 24 };
    const char *d = eplb_test_tmpdir();
    char sub[4000], g[4200], t[4200], o[4200];
    snprintf(sub, sizeof sub, "%s/w", d);
    cr_assert(mkdir(sub, 0777) == 0);
    snprintf(g, sizeof g, "%s/g.h5", sub);
    char *gen[] = {"eplb-replay", "gen", "--preset", "deepseek-v3", "--steps", "100",
                   "--threads", "4", "-o", g, NULL};
    int left_gen = 0;
    for (int i = 0; i < TRIES; i++)
        left_gen += interrupt_cli(gen, sub, i * 500);

    /* run --out SUB/new/q: the directories it creates, results.h5, ... */
    snprintf(t, sizeof t, "%s/t.h5", d);
    eplb_test_cli_expect(0, NULL, "gen --preset esft-lite --steps 64 --tokens-per-step 64 -o %s",
                         t);
    snprintf(o, sizeof o, "%s/new/q", sub);
    char *run[] = {"eplb-replay", "run", t, "--quiet", "--policy-time", "0", "--gpus",
                   "2,4,8,16", "--policy", "deepseek,oracle", "--threads", "4", "--out", o,
                   NULL};
    int left_run = 0;
    for (int i = 0; i < TRIES; i++)
        left_run += interrupt_cli(run, sub, i * 500);
    cr_assert(left_gen == 0 && left_run == 0,
              "interrupted, gen left a file %d times and run --out left %s/new %d times "
              "(of %d)",
              left_gen, sub, left_run, TRIES);
    rmdir(sub);
    unlink(t);
    rmdir(d);
}

/* A thread that takes SIGINT itself (one not started by eplb_thread_create,
 * as a library's): the guard's handler there hands it to the main thread. */
static void *take_sigint(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    pthread_kill(pthread_self(), SIGINT);
    return NULL;
}

/* The signal reaches another thread while the main thread, which blocks it
 * for a moment, has armed a path and not created the file yet: the main
 * thread still creates it (and a marker, unguarded), then takes the signal
 * when it unblocks it and dies of it with the file removed.  Before the
 * fix the handler ran on that thread, unlinked nothing and killed the
 * process while the main thread went on: no marker (here), or the file
 * created after the unlink (in the race above). */
Test(write_errors, signal_on_other_thread_goes_to_main)
{
    const char *d = eplb_test_tmpdir();
    char path[4200], mark[4200];
    snprintf(path, sizeof path, "%s/f.tmp", d);
    snprintf(mark, sizeof mark, "%s/mark", d);
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        signal(SIGINT, SIG_DFL);
        sigset_t set, pend;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        eplb_tmp_guard_arm(path);
        pthread_t th;
        if (pthread_create(&th, NULL, take_sigint, NULL) != 0)
            _exit(4);
        /* until it is pending here (or the process is dead) */
        for (int i = 0; i < 10000; i++) {
            sigpending(&pend);
            if (sigismember(&pend, SIGINT))
                break;
            usleep(1000);
        }
        FILE *f = fopen(mark, "w"), *g = fopen(path, "w");
        if (!f || !g)
            _exit(5);
        fclose(f);
        fclose(g);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        _exit(3); /* not reached */
    }
    int status = 0;
    cr_assert_eq(waitpid(p, &status, 0), p);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT,
              "the process did not die of SIGINT (status %#x)", status);
    cr_assert(eplb_test_exists(mark), "the main thread did not go on to create its file");
    cr_assert(!eplb_test_exists(path), "the file the main thread created is left");
    unlink(mark);
    rmdir(d);
}

/* The signal eplb_tmp_set_rename_hook sends after the first rename. */
static int rename_signal;

static void signal_self(int renamed)
{
    if (renamed == 1)
        kill(getpid(), rename_signal);
}

/* In a child: n files "file I" written as an output set in d (its stderr
 * to d/stderr), sig's action set to act, sig sent after the first rename
 * of the commit; exit 0 after a commit that returned EPLB_OK.  The child's
 * wait status. */
static int commit_with_signal(const char *d, char f[][4200], int n, int sig, void (*act)(int))
{
    char log[4200];
    snprintf(log, sizeof log, "%s/stderr", d);
    for (int i = 0; i < n; i++)
        snprintf(f[i], 4200, "%s/out%d.csv", d, i);
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        if (!freopen(log, "w", stderr))
            _exit(5);
        signal(sig, act);
        eplb_tmp_set_t set = EPLB_TMP_SET_INIT;
        for (int i = 0; i < n; i++) {
            const char *t = NULL;
            if (eplb_tmp_set_add(&t, &set, f[i]) != EPLB_OK)
                _exit(6);
            FILE *o = fopen(t, "w");
            if (!o)
                _exit(7);
            fprintf(o, "file %d\n", i);
            fclose(o);
        }
        rename_signal = sig;
        eplb_tmp_set_rename_hook = signal_self;
        _exit(eplb_tmp_set_commit(&set) == EPLB_OK ? 0 : 8);
    }
    int status = 0;
    cr_assert_eq(waitpid(p, &status, 0), p);
    return status;
}

/* A signal that comes while an output set is renamed waits for the renames
 * (the set is whole under its final names), and a line says so before the
 * process dies of it: a script that reads only the exit status (128 + sig)
 * would otherwise throw a complete result away.  The signal is sent after
 * the first of three renames (eplb_tmp_set_rename_hook). */
Test(write_errors, signal_during_commit_says_the_set_is_complete)
{
    const char *d = eplb_test_tmpdir();
    char f[3][4200], log[4200];
    snprintf(log, sizeof log, "%s/stderr", d);
    int status = commit_with_signal(d, f, 3, SIGTERM, SIG_DFL);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    for (int i = 0; i < 3; i++) {
        char *t = eplb_test_slurp_text(f[i]);
        char want[32];
        snprintf(want, sizeof want, "file %d\n", i);
        cr_assert_str_eq(t, want, "%s", f[i]);
        free(t);
        unlink(f[i]);
    }
    char *e = eplb_test_slurp_text(log);
    char want[4400];
    snprintf(want, sizeof want,
             "eplb-replay: Terminated came while the outputs were renamed into place; all 3 "
             "are complete (%s and the others beside it)\n",
             f[0]);
    cr_assert_str_eq(e, want);
    free(e);
    unlink(log);
    cr_assert_eq(eplb_test_dir_entries(d), 0);
    rmdir(d);
}

/* An ignored signal (SIGHUP under nohup) that comes during the renames
 * ends nothing: no line says the process dies of it. */
Test(write_errors, ignored_signal_during_commit_says_nothing)
{
    const char *d = eplb_test_tmpdir();
    char f[2][4200], log[4200];
    snprintf(log, sizeof log, "%s/stderr", d);
    int status = commit_with_signal(d, f, 2, SIGHUP, SIG_IGN);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    char *e = eplb_test_slurp_text(log);
    cr_assert_str_eq(e, "");
    free(e);
    unlink(log);
    for (int i = 0; i < 2; i++)
        unlink(f[i]);
    rmdir(d);
}

/* A rename that fails half-way through a commit (the third final name is a
 * directory that holds a file: rename(2) refuses to put a file there) puts
 * the names back as they were: a's earlier content again, b (which had
 * none) gone, c untouched, and no temporary or ".old." file left. */
Test(write_errors, tmp_set_rename_failing_half_way_rolls_back)
{
    const char *d = eplb_test_tmpdir();
    char a[4200], b[4200], c[4200], cfile[4300];
    snprintf(a, sizeof a, "%s/a", d);
    snprintf(b, sizeof b, "%s/b", d);
    snprintf(c, sizeof c, "%s/c", d);
    snprintf(cfile, sizeof cfile, "%s/keep", c);
    eplb_test_write_text(a, "old a\n");
    cr_assert_eq(mkdir(c, 0700), 0);
    eplb_test_write_text(cfile, "keep\n");
    eplb_tmp_set_t set = EPLB_TMP_SET_INIT;
    const char *ta, *tb, *tc;
    eplb_assert_ok(eplb_tmp_set_add(&ta, &set, a));
    eplb_assert_ok(eplb_tmp_set_add(&tb, &set, b));
    eplb_assert_ok(eplb_tmp_set_add(&tc, &set, c));
    eplb_test_write_text(ta, "new a\n");
    eplb_test_write_text(tb, "new b\n");
    eplb_test_write_text(tc, "new c\n");
    eplb_assert_fails(eplb_tmp_set_commit(&set), EPLB_ERR_IO, "cannot rename");
    cr_assert_eq(set.n, 0);
    char *got = eplb_test_slurp_text(a);
    cr_assert_str_eq(got, "old a\n", "a not put back");
    free(got);
    cr_assert(!eplb_test_exists(b), "b, which had no earlier file, is left");
    got = eplb_test_slurp_text(cfile);
    cr_assert_str_eq(got, "keep\n");
    free(got);
    cr_assert_eq(eplb_test_dir_entries(d), 2, "more than a and c in %s", d);
    cr_assert_eq(eplb_test_dir_entries(c), 1);
    unlink(cfile);
    rmdir(c);
    unlink(a);
    rmdir(d);
}

/* A write whose final rename fails (the name is a directory holding a
 * file) is an error naming the file, and its temporary file goes. */
Test(write_errors, write_file_rename_failure_is_an_error)
{
    const char *d = eplb_test_tmpdir();
    char p[4200], inner[4300];
    snprintf(p, sizeof p, "%s/s.json", d);
    snprintf(inner, sizeof inner, "%s/keep", p);
    cr_assert_eq(mkdir(p, 0700), 0);
    eplb_test_write_text(inner, "keep\n");
    eplb_assert_fails(eplb_sim_write_file(p, write_hello, NULL), EPLB_ERR_IO,
                      "s.json: cannot rename");
    cr_assert_eq(eplb_test_dir_entries(d), 1, "a temporary file is left in %s", d);
    unlink(inner);
    rmdir(p);
    rmdir(d);
}

/* A forked child that did not exec keeps the guard's signal handler; when
 * it is signalled it removes only what it armed itself, never its parent's
 * files or directories (the pid kept with each slot, tmpfile_guard.c; the
 * probe forks such children).  A second child arms its own file and is
 * signalled too: that file goes, so the handler is there to misbehave.
 * (Mutation testing: dropping the pid checks passed the suite.) */
Test(write_errors, forked_child_signalled_leaves_parent_files)
{
    const char *d = eplb_test_tmpdir();
    char f[512], sub[512], own[512];
    snprintf(f, sizeof f, "%s/parent.tmp", d);
    snprintf(sub, sizeof sub, "%s/parent-dir.tmp", d);
    snprintf(own, sizeof own, "%s/child.tmp", d);
    eplb_test_write_text(f, "parent");
    cr_assert_eq(mkdir(sub, 0700), 0);
    const int id = eplb_tmp_guard_arm(f), idd = eplb_tmp_guard_arm_dir(sub);
    cr_assert(id >= 0 && idd >= 0);
    for (int arm_own = 0; arm_own < 2; arm_own++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            if (arm_own) {
                FILE *g = fopen(own, "w");
                if (!g || fclose(g) != 0 || eplb_tmp_guard_arm(own) < 0)
                    _exit(3);
            }
            raise(SIGTERM);
            _exit(4); /* not reached: the handler dies of the signal */
        }
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "child %d: status %#x",
                  arm_own, status);
        cr_assert(eplb_test_exists(f), "child %d removed its parent's file", arm_own);
        cr_assert(eplb_test_exists(sub), "child %d removed its parent's directory", arm_own);
    }
    cr_assert(!eplb_test_exists(own), "the child's own armed file was left");
    eplb_tmp_guard_disarm(id);
    eplb_tmp_guard_disarm(idd);
    unlink(f);
    rmdir(sub);
}

/* ---- the guard's slots, handlers and output sets at their edges (found by
 * mutation testing of tmpfile_guard.c: each mutant named passed the suite
 * before these tests) ------------------------------------------------------ */

/* 1 if sig has the default action now (no handler of the guard's) */
static int has_default_action(int sig)
{
    struct sigaction cur;
    return sigaction(sig, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
           cur.sa_handler == SIG_DFL;
}

static void caller_handler(int sig) { (void)sig; }

/* The previous actions come back when the last path is disarmed
 * (tmpfile_guard.h: "the previous actions restored when the last one is
 * disarmed"), also when the paths were those of an output set that was
 * committed or aborted; a handler the caller installed after arming is
 * left alone.  Kills: the restore skipped (G07), a caller's handler
 * replaced by the default action (G06), the set's slots never disarmed
 * (G16). */
Test(write_errors, guard_restores_previous_actions)
{
    signal(SIGTERM, SIG_DFL); /* as the guard finds them (not ignored, as under nohup) */
    signal(SIGHUP, SIG_DFL);
    const int id = eplb_tmp_guard_arm("/nonexistent/eplb-guard-a");
    cr_assert(id >= 0);
    cr_assert(!has_default_action(SIGTERM), "no handler installed while a path is armed");
    eplb_tmp_guard_disarm(id);
    cr_assert(has_default_action(SIGTERM), "SIGTERM's default action not put back");

    /* the caller's own SIGHUP handler, installed while a path is armed */
    const int id2 = eplb_tmp_guard_arm("/nonexistent/eplb-guard-b");
    cr_assert(id2 >= 0);
    signal(SIGHUP, caller_handler);
    eplb_tmp_guard_disarm(id2);
    struct sigaction cur;
    cr_assert_eq(sigaction(SIGHUP, NULL, &cur), 0);
    cr_assert(cur.sa_handler == caller_handler, "the caller's SIGHUP handler was replaced");
    cr_assert(has_default_action(SIGTERM));
    signal(SIGHUP, SIG_DFL);

    /* an aborted set and a committed one disarm their members */
    const char *d = eplb_test_tmpdir();
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/a", d);
    snprintf(b, sizeof b, "%s/b", d);
    eplb_tmp_set_t set = EPLB_TMP_SET_INIT;
    const char *ta, *tb;
    eplb_assert_ok(eplb_tmp_set_add(&ta, &set, a));
    eplb_assert_ok(eplb_tmp_set_add(&tb, &set, b));
    cr_assert(!has_default_action(SIGTERM));
    eplb_tmp_set_abort(&set);
    cr_assert(has_default_action(SIGTERM), "an aborted set's files are still guarded");
    eplb_assert_ok(eplb_tmp_set_add(&ta, &set, a));
    eplb_test_write_text(ta, "new a\n");
    eplb_assert_ok(eplb_tmp_set_commit(&set));
    cr_assert(has_default_action(SIGTERM), "a committed set's files are still guarded");
    unlink(a);
    rmdir(d);
}

/* A path of 4095 bytes is guarded, one of 4096 is refused (tmpfile_guard.h:
 * "paths of at most 4095 bytes"; a slot holds 4096 with the NUL).  Kills
 * the bound off by one (G08), which copied 4097 bytes into a slot. */
Test(write_errors, guard_path_length_bound)
{
    static char p[4097];
    memset(p, 'a', 4096);
    p[0] = '/';
    p[4096] = '\0';
    cr_assert_eq(eplb_tmp_guard_arm(p), -1, "a path of 4096 bytes was guarded");
    p[4095] = '\0';
    const int id = eplb_tmp_guard_arm(p);
    cr_assert(id >= 0, "a path of 4095 bytes was refused");
    eplb_tmp_guard_disarm(id);
}

/* The slots are handed out round robin, a slot just disarmed last
 * (tmpfile_guard.c): after one arm and disarm, the next 15 arms get the
 * other 15 slots, the 16th that one, and a 17th fails (-1: "arming more
 * fails quietly").  Kills the search always starting at slot 0 (G09) and
 * next_slot left on the slot just taken (G29). */
Test(write_errors, guard_slots_round_robin)
{
    signal(SIGTERM, SIG_DFL);
    const int first = eplb_tmp_guard_arm("/nonexistent/eplb-guard-0");
    cr_assert(first >= 0);
    eplb_tmp_guard_disarm(first);
    int ids[EPLB_TMP_GUARD_SLOTS], seen[EPLB_TMP_GUARD_SLOTS] = {0};
    for (int i = 0; i < EPLB_TMP_GUARD_SLOTS; i++) {
        char p[64];
        snprintf(p, sizeof p, "/nonexistent/eplb-guard-%d", i + 1);
        ids[i] = eplb_tmp_guard_arm(p);
        cr_assert(ids[i] >= 0 && ids[i] < EPLB_TMP_GUARD_SLOTS, "arm %d: %d", i + 1, ids[i]);
        cr_assert(!seen[ids[i]], "slot %d handed out twice", ids[i]);
        seen[ids[i]] = 1;
        if (i < EPLB_TMP_GUARD_SLOTS - 1)
            cr_assert_neq(ids[i], first, "the slot just disarmed reused by arm %d", i + 1);
    }
    cr_assert_eq(ids[EPLB_TMP_GUARD_SLOTS - 1], first);
    cr_assert_eq(eplb_tmp_guard_arm("/nonexistent/eplb-guard-17"), -1, "a 17th path guarded");
    for (int i = 0; i < EPLB_TMP_GUARD_SLOTS; i++)
        eplb_tmp_guard_disarm(ids[i]);
    cr_assert(has_default_action(SIGTERM));
}

/* Runs body(arg) in a child with SIGTERM at its default action, then
 * raises SIGTERM there (body calls _exit(N) where a step fails); the
 * child must die of the SIGTERM. */
static void child_dies_of_sigterm(void (*body)(void *), void *arg)
{
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        signal(SIGTERM, SIG_DFL);
        body(arg);
        raise(SIGTERM);
        _exit(5); /* not reached */
    }
    int status = 0;
    cr_assert_eq(waitpid(p, &status, 0), p);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
}

/* paths[0] (a) and paths[1] (b): guard both, disarm a twice (the second is
 * a no-op, tmpfile_guard.h: stop guarding slot id). */
static void body_disarm_one_of_two(void *arg)
{
    char(*paths)[4200] = arg;
    const int ia = eplb_tmp_guard_arm(paths[0]);
    if (ia < 0 || eplb_tmp_guard_arm(paths[1]) < 0)
        _exit(3);
    eplb_tmp_guard_disarm(ia);
    eplb_tmp_guard_disarm(ia);
}

/* A path still armed after another was disarmed (once, then again) is
 * still removed on a signal, and the disarmed one kept.  Kills the
 * handlers restored while one path was still armed (G11) and a second
 * disarm of the same slot counted again (G12). */
Test(write_errors, guard_keeps_paths_still_armed)
{
    const char *d = eplb_test_tmpdir();
    char ab[2][4200];
    snprintf(ab[0], sizeof ab[0], "%s/a.tmp", d);
    snprintf(ab[1], sizeof ab[1], "%s/b.tmp", d);
    eplb_test_write_text(ab[0], "a");
    eplb_test_write_text(ab[1], "b");
    child_dies_of_sigterm(body_disarm_one_of_two, ab);
    cr_assert(eplb_test_exists(ab[0]), "the disarmed path was removed");
    cr_assert(!eplb_test_exists(ab[1]), "the path still armed was left");
    unlink(ab[0]);
    rmdir(d);
}

/* paths: top, top/mid, top/mid/low and the file low/f.tmp */
static void body_nested_dirs(void *arg)
{
    char(*path)[4500] = arg;
    /* arm and disarm until slot 14 was the last one taken */
    for (int i = 0, id = -1; i < EPLB_TMP_GUARD_SLOTS && id != EPLB_TMP_GUARD_SLOTS - 2; i++)
        eplb_tmp_guard_disarm(id = eplb_tmp_guard_arm("/nonexistent/eplb-guard"));
    if (mkdir(path[0], 0700) != 0 || eplb_tmp_guard_arm_dir(path[0]) != EPLB_TMP_GUARD_SLOTS - 1 ||
        mkdir(path[1], 0700) != 0 || eplb_tmp_guard_arm_dir(path[1]) != 0 ||
        mkdir(path[2], 0700) != 0 || eplb_tmp_guard_arm_dir(path[2]) != 1)
        _exit(3);
    FILE *g = fopen(path[3], "w");
    if (!g || fclose(g) != 0 || eplb_tmp_guard_arm(path[3]) < 0)
        _exit(4);
}

/* Directories nested three deep whose slots are not in the order of the
 * nesting (slot 15, then 0 and 1: the round robin wrapped after slot 14
 * was armed and disarmed) all go on a signal, with the guarded file in the deepest:
 * each pass of the handler removes the ones emptied by the last.  Kills a
 * single pass (G03), which left the outer two. */
Test(write_errors, guard_removes_nested_dirs_in_any_slot_order)
{
    const char *d = eplb_test_tmpdir();
    char path[4][4500]; /* top, mid, low, the file */
    snprintf(path[0], sizeof path[0], "%s/top", d);
    snprintf(path[1], sizeof path[1], "%.4200s/mid", path[0]);
    snprintf(path[2], sizeof path[2], "%.4300s/low", path[1]);
    snprintf(path[3], sizeof path[3], "%.4400s/f.tmp", path[2]);
    child_dies_of_sigterm(body_nested_dirs, path);
    cr_assert(!eplb_test_exists(path[0]), "guarded directories are left: top%s%s",
              eplb_test_exists(path[1]) ? ", mid" : "", eplb_test_exists(path[2]) ? ", low" : "");
    rmdir(d);
}

/* An output set holds at most EPLB_TMP_SET_MAX (8) files: the ninth is
 * refused with EPLB_ERR_INTERNAL, the set keeps its 8.  Kills the bound off
 * by one (G14), which wrote a ninth member past the arrays. */
Test(write_errors, tmp_set_refuses_a_ninth_member)
{
    eplb_tmp_set_t set = EPLB_TMP_SET_INIT;
    const char *t;
    for (int i = 0; i < EPLB_TMP_SET_MAX; i++) {
        char f[64];
        snprintf(f, sizeof f, "/nonexistent/eplb-set-%d", i);
        eplb_assert_ok(eplb_tmp_set_add(&t, &set, f));
    }
    eplb_assert_fails(eplb_tmp_set_add(&t, &set, "/nonexistent/eplb-set-8"), EPLB_ERR_INTERNAL,
                      "more than 8 files in one output set");
    cr_assert_eq(set.n, EPLB_TMP_SET_MAX);
    eplb_tmp_set_abort(&set);
    cr_assert_eq(set.n, 0);
}

/* A "<final>.old.<pid>" left by an earlier process of the same pid that died
 * in a commit does not stop the roll-back: it is replaced by the new link,
 * the earlier a comes back when the third rename fails, and no ".old." file
 * is left.  Kills the stale link not removed first (G19): link(2) then
 * failed with EEXIST and a kept the new content. */
Test(write_errors, tmp_set_roll_back_past_a_stale_old_link)
{
    const char *d = eplb_test_tmpdir();
    char a[4200], b[4200], c[4200], cfile[4300], stale[4300];
    snprintf(a, sizeof a, "%s/a", d);
    snprintf(b, sizeof b, "%s/b", d);
    snprintf(c, sizeof c, "%s/c", d);
    snprintf(cfile, sizeof cfile, "%s/keep", c);
    snprintf(stale, sizeof stale, "%s.old.%ld", a, (long)getpid());
    eplb_test_write_text(a, "old a\n");
    eplb_test_write_text(stale, "stale\n");
    cr_assert_eq(mkdir(c, 0700), 0);
    eplb_test_write_text(cfile, "keep\n");
    eplb_tmp_set_t set = EPLB_TMP_SET_INIT;
    const char *ta, *tb, *tc;
    eplb_assert_ok(eplb_tmp_set_add(&ta, &set, a));
    eplb_assert_ok(eplb_tmp_set_add(&tb, &set, b));
    eplb_assert_ok(eplb_tmp_set_add(&tc, &set, c));
    eplb_test_write_text(ta, "new a\n");
    eplb_test_write_text(tb, "new b\n");
    eplb_test_write_text(tc, "new c\n");
    eplb_assert_fails(eplb_tmp_set_commit(&set), EPLB_ERR_IO, "cannot rename");
    cr_assert(eplb_test_exists(a), "a, which had an earlier file, is gone (no link kept)");
    char *got = eplb_test_slurp_text(a);
    cr_assert_str_eq(got, "old a\n", "a not put back past a stale .old link");
    free(got);
    cr_assert(!eplb_test_exists(b), "b, which had no earlier file, is left");
    cr_assert(!eplb_test_exists(stale), "the stale .old file is left");
    cr_assert_eq(eplb_test_dir_entries(d), 2, "more than a and c in %s", d);
    unlink(cfile);
    rmdir(c);
    unlink(a);
    rmdir(d);
}

/* A set of one file: the line says which, without "and the others beside
 * it" (there are none).  Kills the plural for one file (G22). */
Test(write_errors, signal_during_commit_of_one_file)
{
    const char *d = eplb_test_tmpdir();
    char f[1][4200], log[4200];
    snprintf(log, sizeof log, "%s/stderr", d);
    int status = commit_with_signal(d, f, 1, SIGTERM, SIG_DFL);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
    char *t = eplb_test_slurp_text(f[0]);
    cr_assert_str_eq(t, "file 0\n");
    free(t);
    char *e = eplb_test_slurp_text(log);
    char want[4400];
    snprintf(want, sizeof want,
             "eplb-replay: Terminated came while the outputs were renamed into place; all 1 "
             "are complete (%s)\n",
             f[0]);
    cr_assert_str_eq(e, want);
    free(e);
    unlink(f[0]);
    unlink(log);
    rmdir(d);
}

/* A signal the caller blocks when it commits stays pending after it (it is
 * not delivered, the process does not die of it), so no line says the
 * process dies: the commit returns EPLB_OK quietly (tmpfile_guard.h: "and is
 * not blocked by the caller").  Kills the caller's mask ignored (G21). */
Test(write_errors, blocked_signal_during_commit_says_nothing)
{
    const char *d = eplb_test_tmpdir();
    char f[2][4200], log[4200];
    snprintf(log, sizeof log, "%s/stderr", d);
    for (int i = 0; i < 2; i++)
        snprintf(f[i], 4200, "%s/out%d.csv", d, i);
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        if (!freopen(log, "w", stderr))
            _exit(5);
        signal(SIGTERM, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        eplb_tmp_set_t s = EPLB_TMP_SET_INIT;
        for (int i = 0; i < 2; i++) {
            const char *t = NULL;
            if (eplb_tmp_set_add(&t, &s, f[i]) != EPLB_OK)
                _exit(6);
            FILE *o = fopen(t, "w");
            if (!o)
                _exit(7);
            fprintf(o, "file %d\n", i);
            fclose(o);
        }
        rename_signal = SIGTERM;
        eplb_tmp_set_rename_hook = signal_self;
        const int ok = eplb_tmp_set_commit(&s) == EPLB_OK;
        sigset_t pend;
        _exit(!ok ? 8 : sigpending(&pend) != 0 || !sigismember(&pend, SIGTERM) ? 9 : 0);
    }
    int status = 0;
    cr_assert_eq(waitpid(p, &status, 0), p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    char *e = eplb_test_slurp_text(log);
    cr_assert_str_eq(e, "");
    free(e);
    unlink(log);
    for (int i = 0; i < 2; i++) {
        char *t = eplb_test_slurp_text(f[i]);
        char want[32];
        snprintf(want, sizeof want, "file %d\n", i);
        cr_assert_str_eq(t, want, "%s", f[i]);
        free(t);
        unlink(f[i]);
    }
    rmdir(d);
}

/* eplb_tmp_name adds ".tmp.<pid>" unless the name ends in it after a name
 * of its own (tmpfile_guard.h: "<final>.tmp.<pid>" of this process): a file
 * named just ".tmp.<pid>" is a final name (the temporary name of an empty
 * one would be it) and gets the suffix; another pid's suffix is kept and
 * the suffix added.  Kills the bare suffix taken as a temporary name
 * (G13), which wrote such a file under its final name. */
Test(write_errors, tmp_name_of_a_bare_suffix)
{
    const long pid = (long)getpid();
    char fin[64], want[128], out[128];
    snprintf(fin, sizeof fin, ".tmp.%ld", pid);
    snprintf(want, sizeof want, ".tmp.%ld.tmp.%ld", pid, pid);
    eplb_tmp_name(out, sizeof out, fin);
    cr_assert_str_eq(out, want);
    snprintf(fin, sizeof fin, "x.tmp.%ld", pid);
    eplb_tmp_name(out, sizeof out, fin);
    cr_assert_str_eq(out, fin);
    snprintf(fin, sizeof fin, "x.tmp.%ld", pid + 1);
    snprintf(want, sizeof want, "x.tmp.%ld.tmp.%ld", pid + 1, pid);
    eplb_tmp_name(out, sizeof out, fin);
    cr_assert_str_eq(out, want);
}

/* The mask a thread of eplb_thread_create starts with: 1 where SIGINT,
 * SIGTERM and SIGHUP are all blocked in it. */
static void *report_guard_mask(void *arg)
{
    sigset_t cur;
    int *blocked = arg;
    *blocked = pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0 && sigismember(&cur, SIGINT) == 1 &&
               sigismember(&cur, SIGTERM) == 1 && sigismember(&cur, SIGHUP) == 1;
    return NULL;
}

/* A thread started by eplb_thread_create has the guard's three signals
 * blocked from its start (tmpfile_guard.h), and the caller's own mask is
 * as it was (none of them blocked).  Kills the signals unblocked rather
 * than blocked around pthread_create (G24: the thread then took them). */
Test(write_errors, thread_create_blocks_the_guard_signals)
{
    sigset_t none, cur;
    sigemptyset(&none);
    cr_assert_eq(pthread_sigmask(SIG_SETMASK, &none, NULL), 0);
    int blocked = -1;
    pthread_t th;
    cr_assert_eq(eplb_thread_create(&th, NULL, report_guard_mask, &blocked), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(blocked, 1, "the guard's signals are not blocked in the new thread");
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    cr_assert(!sigismember(&cur, SIGINT) && !sigismember(&cur, SIGTERM) &&
                  !sigismember(&cur, SIGHUP),
              "the caller's mask was changed");
}

/* A temporary file that is not there fails at its sync, before any rename
 * (tmpfile_guard.h: "FINAL: cannot sync TMP: <errno text>"), and the final
 * name keeps its file.  Kills the sync skipped (G18: the rename then
 * failed instead, with "cannot rename"). */
Test(write_errors, rename_into_place_syncs_first)
{
    const char *d = eplb_test_tmpdir();
    char fin[4200], tmp[4300], want[9000];
    snprintf(fin, sizeof fin, "%s/s.json", d);
    snprintf(tmp, sizeof tmp, "%s.tmp.1", fin);
    eplb_test_write_text(fin, "old\n");
    snprintf(want, sizeof want, "%s: cannot sync %s: No such file or directory", fin, tmp);
    eplb_assert_fails(eplb_tmp_rename_into_place(tmp, fin), EPLB_ERR_IO, want);
    char *got = eplb_test_slurp_text(fin);
    cr_assert_str_eq(got, "old\n");
    free(got);
    cr_assert_eq(eplb_test_dir_entries(d), 1);
    unlink(fin);
    rmdir(d);
}

/* paths[0] (a) and paths[1] (b): an output set of both, its temporary
 * files written (a's with "new") and not committed */
static void body_set_of_two(void *arg)
{
    char(*paths)[4200] = arg;
    eplb_tmp_set_t set = EPLB_TMP_SET_INIT;
    const char *ta, *tb;
    if (eplb_tmp_set_add(&ta, &set, paths[0]) != EPLB_OK ||
        eplb_tmp_set_add(&tb, &set, paths[1]) != EPLB_OK)
        _exit(3);
    FILE *f = fopen(ta, "w"), *g = fopen(tb, "w");
    if (!f || !g || fputs("new\n", f) < 0 || fclose(f) != 0 || fclose(g) != 0)
        _exit(4);
}

/* The temporary files of an output set are guarded: a SIGTERM before the
 * commit removes them and leaves the final names as they were (an
 * earlier a untouched, no b).  Kills set members added unguarded (G30),
 * which passed the whole suite before: the run --out tests that signal
 * the command did not look for the set's files. */
Test(write_errors, tmp_set_members_removed_on_a_signal)
{
    const char *d = eplb_test_tmpdir();
    char ab[2][4200];
    snprintf(ab[0], sizeof ab[0], "%s/a", d);
    snprintf(ab[1], sizeof ab[1], "%s/b", d);
    eplb_test_write_text(ab[0], "old a\n");
    child_dies_of_sigterm(body_set_of_two, ab);
    cr_assert_eq(eplb_test_dir_entries(d), 1, "a temporary file of the set is left in %s", d);
    char *got = eplb_test_slurp_text(ab[0]);
    cr_assert_str_eq(got, "old a\n");
    free(got);
    unlink(ab[0]);
    rmdir(d);
}
