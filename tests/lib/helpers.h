/* helpers.h - shared helpers of the Criterion suites. */
#ifndef EPLB_TEST_HELPERS_H
#define EPLB_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>

#include "eplb.h"
#include "json.h"

/* Assert that an eplb call succeeded; on failure print our own message. */
#define eplb_assert_ok(expr)                                                  \
    do {                                                                      \
        eplb_status_t st__ = (expr);                                          \
        cr_assert_eq(st__, EPLB_OK, "%s failed: %s: %s", #expr,               \
                     eplb_strerror(st__), eplb_error_last());                 \
    } while (0)

/* Assert a given failure status and that the message contains `needle`. */
#define eplb_assert_fails(expr, want_st, needle)                              \
    do {                                                                      \
        eplb_error_clear();                                                   \
        eplb_status_t st__ = (expr);                                          \
        cr_assert_eq(st__, (want_st), "%s: got %s (%s), want %s", #expr,      \
                     eplb_strerror(st__), eplb_error_last(),                  \
                     eplb_strerror(want_st));                                 \
        cr_assert(strstr(eplb_error_last(), (needle)) != NULL,                \
                  "%s: message '%s' lacks '%s'", #expr, eplb_error_last(),    \
                  (needle));                                                  \
    } while (0)

/* Item i of JSON array arr as a number (asserting it is one; packed or
 * not: eplb_json_number_at). */
double eplb_test_num_at(const eplb_json_t *arr, size_t i);

/* Repository source dir (EPLB_SRCDIR, else "."). */
const char *eplb_test_srcdir(void);
/* Build dir, where the eplb-replay binary is (EPLB_BUILDDIR, else "."). */
const char *eplb_test_builddir(void);
/* ../shared beside the repository (EPLB_SHARED_DIR overrides); NULL if it
 * does not exist (tests that need it then skip). */
const char *eplb_test_shared_dir(void);
/* Path to a file: join(dir, rel) into a static rotating buffer. */
const char *eplb_test_path(const char *dir, const char *rel);
/* A fresh temporary directory (removed by the OS; tests clean up files). */
const char *eplb_test_tmpdir(void);
/* Entries of a directory other than . and .. (the test fails if it
 * cannot be opened). */
int eplb_test_dir_entries(const char *dir);
/* Whether path names something (lstat: a symbolic link counts, even one
 * that points nowhere, so "nothing left behind" checks see it too). */
int eplb_test_exists(const char *path);
/* Write text to path (asserting success); returns path. */
const char *eplb_test_write_text(const char *path, const char *text);
/* Write n bytes (NULs included) to path (asserting success); returns path. */
const char *eplb_test_write_bytes(const char *path, const void *bytes, size_t n);
/* The whole file, malloc'd with a NUL byte after its *n bytes (so text
 * files read as strings). */
unsigned char *eplb_test_slurp(const char *path, size_t *n);
/* The whole file as a malloc'd NUL-terminated string. */
char *eplb_test_slurp_text(const char *path);
/* splitmix64 (Steele, Lea and Flood 2014): the next value of the sequence
 * of *state, which it advances; deterministic test inputs.  (Not the
 * kernels' hash: test_kernels.c writes that out on its own.) */
uint64_t eplb_test_rng_next(uint64_t *state);
/* Run `eplb-replay ARGS` through the shell; capture stdout+stderr (malloc'd
 * into *output if not NULL) and return the exit status (-1 if it crashed). */
int eplb_test_run_cli(char **output, const char *args_fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same with prefix before the binary in the shell command (for example
 * "timeout 60 env VAR=1 "), so that only eplb-replay gets what it sets. */
int eplb_test_run_cli_prefixed(char **output, const char *prefix, const char *args_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
