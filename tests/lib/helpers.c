/* helpers.c - shared helpers of the Criterion suites. */
#include "helpers.h"

#include <dirent.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *eplb_test_srcdir(void)
{
    const char *s = getenv("EPLB_SRCDIR");
    return s && *s ? s : ".";
}

const char *eplb_test_builddir(void)
{
    const char *s = getenv("EPLB_BUILDDIR");
    return s && *s ? s : ".";
}

const char *eplb_test_path(const char *dir, const char *rel)
{
    static _Thread_local char buf[8][4096];
    static _Thread_local int i;
    char *b = buf[i++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", dir, rel);
    return b;
}

const char *eplb_test_shared_dir(void)
{
    static _Thread_local char buf[4096];
    const char *s = getenv("EPLB_SHARED_DIR");
    if (s && *s)
        snprintf(buf, sizeof buf, "%s", s);
    else
        snprintf(buf, sizeof buf, "%s/../shared", eplb_test_srcdir());
    struct stat sb;
    return stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode) ? buf : NULL;
}

/* The directories eplb_test_tmpdir() made in this process (a Criterion
 * worker runs one test), removed with everything in them when the process
 * exits, unless EPLB_TEST_KEEP_TMP is set (to look at a failed test's files).
 * Without this every run of the suite left ~180 directories in $TMPDIR. */
static char **made_dirs;
static int n_made_dirs;
static pid_t made_by; /* a forked child that calls exit() removes nothing */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_made_dirs(void)
{
    const char *keep = getenv("EPLB_TEST_KEEP_TMP");
    if (getpid() != made_by)
        return;
    for (int i = 0; i < n_made_dirs; i++) {
        if (!(keep && *keep))
            nftw(made_dirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(made_dirs[i]);
    }
    free(made_dirs);
}

const char *eplb_test_tmpdir(void)
{
    static _Thread_local char buf[256];
    const char *base = getenv("TMPDIR");
    snprintf(buf, sizeof buf, "%s/eplb-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(buf))
        cr_assert_fail("mkdtemp failed");
    if (n_made_dirs == 0) {
        made_by = getpid();
        cr_assert(atexit(remove_made_dirs) == 0);
    }
    made_dirs = realloc(made_dirs, sizeof *made_dirs * (n_made_dirs + 1));
    cr_assert(made_dirs != NULL);
    made_dirs[n_made_dirs] = strdup(buf);
    cr_assert(made_dirs[n_made_dirs] != NULL);
    n_made_dirs++;
    return buf;
}

static int run_cli(char **output, const char *prefix, const char *args_fmt, va_list ap)
{
    char args[8192], cmd[9000];
    vsnprintf(args, sizeof args, args_fmt, ap);
    snprintf(cmd, sizeof cmd, "%s'%s/eplb-replay' %s 2>&1", prefix, eplb_test_builddir(), args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL, "popen failed for %s", cmd);
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    cr_assert(buf != NULL);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n < 2) {
            buf = realloc(buf, cap *= 2);
            cr_assert(buf != NULL);
        }
    }
    buf[n] = '\0';
    int status = pclose(p);
    if (output)
        *output = buf;
    else
        free(buf);
    if (!WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

int eplb_test_run_cli(char **output, const char *args_fmt, ...)
{
    va_list ap;
    va_start(ap, args_fmt);
    int rc = run_cli(output, "", args_fmt, ap);
    va_end(ap);
    return rc;
}

int eplb_test_run_cli_prefixed(char **output, const char *prefix, const char *args_fmt, ...)
{
    va_list ap;
    va_start(ap, args_fmt);
    int rc = run_cli(output, prefix, args_fmt, ap);
    va_end(ap);
    return rc;
}

int eplb_test_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert(d != NULL, "cannot open %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

int eplb_test_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

const char *eplb_test_write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: cannot create", path);
    cr_assert_eq(fwrite(bytes, 1, n, f), n, "%s: cannot write", path);
    cr_assert_eq(fclose(f), 0, "%s: cannot write", path);
    return path;
}

const char *eplb_test_write_text(const char *path, const char *text)
{
    return eplb_test_write_bytes(path, text, strlen(text));
}

unsigned char *eplb_test_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "%s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    b[len] = 0;
    *n = (size_t)len;
    return b;
}

char *eplb_test_slurp_text(const char *path)
{
    size_t n;
    return (char *)eplb_test_slurp(path, &n);
}

uint64_t eplb_test_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double eplb_test_num_at(const eplb_json_t *arr, size_t i)
{
    double x = 0;
    cr_assert(eplb_json_number_at(arr, i, &x), "JSON item %zu is not a number", i);
    return x;
}
