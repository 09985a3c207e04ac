/* test_progress.c - the policy progress line (src/progress.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "progress.h"

/* Checks that s holds "\r<what>: <unit> <done> of <total> (<secs> s)" with
 * secs >= min_s, followed by pad spaces; returns the characters used. */
static size_t expect_unit_line(const char *s, const char *what, const char *unit, long long done,
                               long long total, int min_s, int pad)
{
    char head[256];
    int n = snprintf(head, sizeof head, "\r%s: %s %lld of %lld (", what, unit, done, total);
    cr_assert(strncmp(s, head, (size_t)n) == 0, "expected '%s...' in '%s'", head + 1, s);
    int secs = -1, used = 0;
    cr_assert(sscanf(s + n, "%d s)%n", &secs, &used) == 1 && used > 0, "no seconds in '%s'", s);
    cr_assert(secs >= min_s, "%d s, expected at least %d in '%s'", secs, min_s, s);
    size_t k = (size_t)n + (size_t)used;
    for (int i = 0; i < pad; i++)
        cr_assert(s[k + i] == ' ', "padding %d of %d missing in '%s'", i, pad, s);
    return k + (size_t)pad;
}

static size_t expect_line(const char *s, const char *what, int done, int total, int min_s, int pad)
{
    return expect_unit_line(s, what, "layer", done, total, min_s, pad);
}

/* Nothing in the first 2 s; then a line; within a second of it nothing
 * more, except the last layer; a newline at the end only if a line was
 * written.  The clock is moved by setting t0 and last, not by waiting. */
Test(progress, waits_then_rewrites_one_line)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    eplb_progress_t p;
    eplb_progress_init(&p, "rebalance: deepseek");
    p.out = f;
    eplb_progress_report(&p, 1, 4); /* just started: nothing */
    eplb_progress_end(&p);          /* nothing shown: no newline */
    fflush(f);
    cr_assert_eq(len, 0, "wrote '%s' in the first 2 s", buf);
    p.t0 -= 10.0; /* as if the policy had started 10 s ago */
    eplb_progress_report(&p, 2, 4);
    p.last += 100.0; /* as if a line had just been written */
    eplb_progress_report(&p, 3, 4); /* within a second of it: skipped */
    eplb_progress_report(&p, 4, 4); /* the last layer: shown */
    eplb_progress_end(&p);
    fclose(f);
    size_t k = expect_line(buf, "rebalance: deepseek", 2, 4, 10, 0);
    k += expect_line(buf + k, "rebalance: deepseek", 4, 4, 10, 0);
    cr_assert_str_eq(buf + k, "\n");
    free(buf);
}

/* Two runs' lines on one terminal line: the shorter is padded over the
 * longer, so nothing of the longer stays; after the newline, no padding. */
Test(progress, shorter_line_covers_longer)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    eplb_progress_t a, b;
    eplb_progress_init(&a, "eplb-replay: step 5/64, migration-aware-long-label");
    eplb_progress_init(&b, "eplb-replay: step 5/64, m");
    a.out = b.out = f;
    a.t0 -= 10.0;
    b.t0 -= 10.0;
    eplb_progress_report(&a, 1, 3);
    eplb_progress_report(&b, 1, 3);
    eplb_progress_end(&a);
    eplb_progress_report(&b, 3, 3);
    fclose(f);
    const int pad = (int)(strlen(a.what) - strlen(b.what));
    size_t k = expect_line(buf, a.what, 1, 3, 10, 0);
    k += expect_line(buf + k, b.what, 1, 3, 10, pad);
    cr_assert_eq(buf[k], '\n', "no newline after the end in '%s'", buf);
    k++;
    k += expect_line(buf + k, b.what, 3, 3, 10, 0);
    cr_assert_eq(buf[k], '\0', "more after the last line: '%s'", buf + k);
    free(buf);
}

/* gen's steps: another unit and counts past 2^31 */
Test(progress, counts_steps)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    eplb_progress_t p;
    eplb_progress_init(&p, "eplb-replay gen");
    p.unit = "step";
    p.out = f;
    p.t0 -= 3.0;
    eplb_progress_count(&p, INT64_C(3000000000), INT64_C(5000000000));
    eplb_progress_end(&p);
    fclose(f);
    size_t k = expect_unit_line(buf, "eplb-replay gen", "step", 3000000000LL, 5000000000LL, 3, 0);
    cr_assert_str_eq(buf + k, "\n");
    free(buf);
}
