/* test_core.c - status/error handling, dtype conversion, decimal numbers
 * (the JSON reader and writer: test_json.c). */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "decimal.h"
#include "helpers.h"

/* A second thread: sees no message at first, sets its own, returns what it
 * then reads (malloc'd). */
static void *other_thread_error(void *arg)
{
    (void)arg;
    char buf[256];
    snprintf(buf, sizeof buf, "start[%s]", eplb_error_last());
    eplb_error_set(EPLB_ERR_FORMAT, "y.h5: other thread");
    size_t n = strlen(buf);
    snprintf(buf + n, sizeof buf - n, " end[%s]", eplb_error_last());
    return strdup(buf);
}

Test(core, error_message_kept_per_thread)
{
    eplb_error_clear();
    cr_assert_str_empty(eplb_error_last());
    eplb_status_t st = eplb_error_set(EPLB_ERR_IO, "%s: cannot open", "x.h5");
    cr_assert_eq(st, EPLB_ERR_IO);
    cr_assert_str_eq(eplb_error_last(), "x.h5: cannot open");
    cr_assert_str_eq(eplb_strerror(EPLB_ERR_FORMAT), "bad file format");
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, other_thread_error, NULL), 0);
    void *seen = NULL;
    cr_assert_eq(pthread_join(th, &seen), 0);
    cr_assert_str_eq((char *)seen, "start[] end[y.h5: other thread]");
    free(seen);
    cr_assert_str_eq(eplb_error_last(), "x.h5: cannot open", "this thread's message changed");
}

/* A half's value from its fields, by the IEEE 754 binary16 definition
 * (sign, 5-bit exponent of bias 15, 10-bit fraction), not by the decoder's
 * bit moves. */
static float f16_by_definition(uint16_t h)
{
    const int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0x1f)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexpf((float)m, -24); /* subnormal: m x 2^-14 x 2^-10 */
    else
        v = ldexpf((float)(1024 + m), e - 25); /* 1.m x 2^(e-15) */
    return sign ? -v : v;
}

/* Every half decodes to the value its fields define (a check of the
 * decoder on its own), and encoding that value gives the same bits back
 * (the encoder on every exactly representable value; NaNs stay NaN). */
Test(core, f16_round_trip_all_values)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = eplb_f16_to_f32((uint16_t)h), want = f16_by_definition((uint16_t)h);
        if (isnan(want)) {
            cr_assert(isnan(f), "half 0x%04x -> %g, want NaN", h, f);
            cr_assert(isnan(eplb_f16_to_f32(eplb_f32_to_f16(f))), "half 0x%04x", h);
            continue;
        }
        cr_assert(f == want && signbit(f) == signbit(want), "half 0x%04x -> %a, want %a", h,
                  f, want);
        uint16_t back = eplb_f32_to_f16(f);
        cr_assert_eq(back, h, "half 0x%04x -> %g -> 0x%04x", h, f, back);
    }
}

/* A 16-bit float decoder against known values: each case decodes to its
 * float (sign of zero included), 0x8000 to -0, and each of nans to a NaN. */
typedef struct {
    uint16_t bits;
    float f;
} decode_case_t;

static void check_decoder(const char *what, float (*dec)(uint16_t), const decode_case_t *cases,
                          size_t n, const uint16_t *nans, size_t nn)
{
    for (size_t i = 0; i < n; i++) {
        float f = dec(cases[i].bits);
        cr_assert(f == cases[i].f && !signbit(f) == !signbit(cases[i].f),
                  "%s 0x%04x -> %a, want %a", what, cases[i].bits, f, cases[i].f);
    }
    float nz = dec(0x8000);
    cr_assert(nz == 0.0f && signbit(nz), "%s 0x8000 -> %a, want -0", what, nz);
    for (size_t i = 0; i < nn; i++)
        cr_assert(isnan(dec(nans[i])), "%s 0x%04x is a NaN", what, nans[i]);
}

/* Decoded halves against values written down from the format (hex float
 * literals), the edges of each range. */
Test(core, f16_decodes_known_values)
{
    static const decode_case_t cases[] = {
        {0x0000, 0.0f},
        {0x0001, 0x1p-24f},        /* smallest subnormal */
        {0x03ff, 0x1.ff8p-15f},    /* largest subnormal: 1023 x 2^-24 */
        {0x0400, 0x1p-14f},        /* smallest normal */
        {0x3555, 0x1.554p-2f},     /* 0.333251953125 */
        {0x3c00, 1.0f},
        {0x3c01, 0x1.004p0f},      /* 1 + 2^-10 */
        {0xc000, -2.0f},
        {0x7bff, 65504.0f},        /* largest finite */
        {0xfbff, -65504.0f},
        {0x7c00, INFINITY},
        {0xfc00, -INFINITY},
    };
    static const uint16_t nans[] = {0x7e00, 0x7c01, 0x7fff, 0xfe00};
    check_decoder("half", eplb_f16_to_f32, cases, sizeof cases / sizeof cases[0], nans,
                  sizeof nans / sizeof nans[0]);
}

Test(core, f16_known_values)
{
    cr_assert_eq(eplb_f32_to_f16(1.0f), 0x3c00);
    cr_assert_eq(eplb_f32_to_f16(-2.0f), 0xc000);
    cr_assert_eq(eplb_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(eplb_f32_to_f16(1e6f), 0x7c00);        /* overflow to inf */
    cr_assert_eq(eplb_f32_to_f16(5.960464477539063e-08f), 0x0001); /* 2^-24 */
    /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0). */
    cr_assert_eq(eplb_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);
    cr_assert_eq(eplb_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
}

/* Decoded bfloat16s (the high half of a float32: sign, 8-bit exponent of
 * bias 127, 7-bit fraction) against values written down from the format. */
Test(core, bf16_decodes_known_values)
{
    static const decode_case_t cases[] = {
        {0x0000, 0.0f},
        {0x0001, 0x1p-133f},       /* smallest subnormal: 2^-126 x 2^-7 */
        {0x007f, 0x1.fcp-127f},    /* largest subnormal */
        {0x0080, 0x1p-126f},       /* smallest normal */
        {0x3eab, 0x1.56p-2f},      /* 0.333984375 */
        {0x3f80, 1.0f},
        {0x3f81, 0x1.02p0f},       /* 1 + 2^-7 */
        {0xc040, -3.0f},
        {0x7f7f, 0x1.fep127f},     /* largest finite */
        {0x7f80, INFINITY},
        {0xff80, -INFINITY},
    };
    static const uint16_t nans[] = {0x7fc0, 0x7f81, 0xffc0};
    check_decoder("bf16", eplb_bf16_to_f32, cases, sizeof cases / sizeof cases[0], nans,
                  sizeof nans / sizeof nans[0]);
}

Test(core, bf16_rounding)
{
    cr_assert_eq(eplb_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_float_eq(eplb_bf16_to_f32(0x3f80), 1.0f, 0);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even. */
    cr_assert_eq(eplb_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80);
    cr_assert_eq(eplb_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)), 0x3f82);
    cr_assert(isnan(eplb_bf16_to_f32(eplb_f32_to_bf16(NAN))));
}

Test(core, dtype_store_places_and_rounds)
{
    /* element i of each dtype's array, rounded as the conversions above;
     * the neighbours untouched */
    float f[3] = {7, 7, 7};
    uint16_t h[3] = {7, 7, 7}, b[3] = {7, 7, 7};
    const float v = 1.0f + 3 * ldexpf(1, -11); /* f16: rounds up to 0x3c02 */
    eplb_dtype_store(f, EPLB_DTYPE_F32, 1, v);
    eplb_dtype_store(h, EPLB_DTYPE_F16, 1, v);
    eplb_dtype_store(b, EPLB_DTYPE_BF16, 1, 1.0f + 3 * ldexpf(1, -8));
    cr_assert_eq(f[1], v);
    cr_assert_eq(h[1], 0x3c02);
    cr_assert_eq(b[1], 0x3f82);
    cr_assert(f[0] == 7 && f[2] == 7 && h[0] == 7 && h[2] == 7 && b[0] == 7 && b[2] == 7);
}

Test(core, dtype_and_scoring_parse)
{
    eplb_dtype_t dt;
    eplb_assert_ok(eplb_dtype_parse(&dt, "bf16"));
    cr_assert_eq(dt, EPLB_DTYPE_BF16);
    eplb_assert_fails(eplb_dtype_parse(&dt, "f64"), EPLB_ERR_INVALID_ARG, "f64");
    eplb_scoring_t sc;
    eplb_assert_ok(eplb_scoring_parse(&sc, "sigmoid"));
    cr_assert_eq(sc, EPLB_SCORING_SIGMOID);
    eplb_assert_fails(eplb_scoring_parse(&sc, "tanh"), EPLB_ERR_INVALID_ARG, "tanh");
}

/* What a user types is a number; what strtoll/strtod also took is not. */
Test(core, decimal_integers)
{
    static const struct {
        const char *s;
        int rc;
        int64_t v;
    } cases[] = {
        {"0", 0, 0},
        {"-0", 0, 0},
        {"7", 0, 7},
        {"-7", 0, -7},
        {"007", 0, 7},
        {"9223372036854775807", 0, INT64_MAX},
        {"-9223372036854775808", 0, INT64_MIN},
        {"9223372036854775808", ERANGE, 0},
        {"-9223372036854775809", ERANGE, 0},
        {"99999999999999999999", ERANGE, 0},
        {"", EINVAL, 0},
        {"-", EINVAL, 0},
        {" 7", EINVAL, 0},
        {"+7", EINVAL, 0},
        {"7 ", EINVAL, 0},
        {"0x10", EINVAL, 0},
        {"1e3", EINVAL, 0},
        {"99999999999999999999x", EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = 12345;
        const int rc = eplb_decimal_parse(&v, cases[i].s);
        cr_expect_eq(rc, cases[i].rc, "'%s': rc %d, want %d", cases[i].s, rc, cases[i].rc);
        cr_expect_eq(v, rc ? 12345 : cases[i].v, "'%s': %lld", cases[i].s, (long long)v);
    }
    /* a list: the end is left at the separator */
    const char *end = NULL;
    int64_t v = 0;
    cr_assert_eq(eplb_decimal_read(&v, &end, "12,3"), 0);
    cr_assert_eq(v, 12);
    cr_assert_str_eq(end, ",3");
    cr_assert_eq(eplb_decimal_read(&v, &end, ",3"), EINVAL);
    cr_assert_str_eq(end, ",3");
}

Test(core, decimal_reals)
{
    static const struct {
        const char *s;
        int rc;
        double v;
    } cases[] = {
        {"0.5", 0, 0.5},   {".5", 0, 0.5},     {"5.", 0, 5.0},      {"-1e-3", 0, -0.001},
        {"1E+2", 0, 100},  {"3", 0, 3},        {"1e400", ERANGE, 0}, {"1e-999", ERANGE, 0}, {"1e-320", 0, 1e-320}, {"0x1p-1", EINVAL, 0},
        {" 1", EINVAL, 0}, {"+1", EINVAL, 0},  {"inf", EINVAL, 0},  {"nan", EINVAL, 0},
        {".", EINVAL, 0},  {"e5", EINVAL, 0},  {"1e", EINVAL, 0},   {"1e+", EINVAL, 0},
        {"", EINVAL, 0},   {"1.5x", EINVAL, 0}, {"-.", EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = -42;
        const int rc = eplb_decimal_parse_double(&v, cases[i].s);
        cr_expect_eq(rc, cases[i].rc, "'%s': rc %d, want %d", cases[i].s, rc, cases[i].rc);
        cr_expect_eq(v, rc ? -42 : cases[i].v, "'%s': %g", cases[i].s, v);
    }
    /* the length at the start of a field, for the data files' readers */
    static const struct {
        const char *s;
        size_t n;
    } lens[] = {{"12,3", 2}, {"-1.5e3 x", 6}, {"0x10", 1}, {"+5", 0},  {" 5", 0},
                {"inf", 0},  {"1e", 1},       {"1e+", 1},  {".5,", 2}, {".", 0}};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        cr_expect_eq(eplb_decimal_real_len(lens[i].s), lens[i].n, "'%s'", lens[i].s);
}

/* Timing switches: a wrong value is the default. */
Test(core, env_int_default_on_bad_values)
{
    static const struct {
        const char *s;
        int64_t want;
    } cases[] = {{"5", 5}, {"1", 1}, {"64", 64}, {"0", -1}, {"65", -1},
                 {"", -1}, {"4abc", -1}, {" 4", -1}, {"+4", -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("EPLB_TEST_ENV_INT", cases[i].s, 1);
        cr_expect_eq(eplb_env_int("EPLB_TEST_ENV_INT", 1, 64, -1), cases[i].want, "'%s'",
                     cases[i].s);
    }
    unsetenv("EPLB_TEST_ENV_INT");
    cr_expect_eq(eplb_env_int("EPLB_TEST_ENV_INT", 1, 64, -1), -1);
}

/* Floats that a half cannot hold, rounded as IEEE 754 binary16 says (to
 * nearest, ties to even; a value that rounds past the largest finite,
 * 65504 = 0x7bff, is infinity).  Each expected value worked out by hand:
 * 10 fraction bits, bias 15, subnormals in units of 2^-24.  Pins the
 * overflow bound, the carry of a tie into the exponent and the rounding
 * of subnormals (the round trip above only sees exact values). */
Test(core, f16_rounds_inexact_values)
{
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {65519.0f, 0x7bff},   /* below 65520, the midpoint of 65504 and 2^16 */
        {65520.0f, 0x7c00},   /* the midpoint: even is 2^16, past the largest */
        {70000.0f, 0x7c00},   /* between 2^16 and 2^17: infinity, not a NaN */
        {-131000.0f, 0xfc00}, /* just below 2^17 */
        {FLT_MAX, 0x7c00},
        {2.0f - 0x1p-11f, 0x4000},            /* tie of 0x3fff (odd) and 2.0: carries */
        {1.0f + 0x1p-11f + 0x1p-23f, 0x3c01}, /* just above a tie: up */
        {0x1p-25f, 0x0000},                   /* half a unit: tie, even 0 */
        {-0x1p-25f, 0x8000},                  /* -0 */
        {0x1p-26f, 0x0000},                   /* a quarter unit */
        {0x3p-25f, 0x0002},                   /* 1.5 units: tie, even 2 */
        {0x5p-25f, 0x0002},                   /* 2.5 units: tie, even 2 */
        {0x7p-26f, 0x0002},                   /* 1.75 units */
        {0x5p-26f, 0x0001},                   /* 1.25 units */
        {0x1p-14f - 0x1p-25f, 0x0400},        /* 1023.5 units: tie, even 1024 (smallest normal) */
        {0x1p-14f - 0x3p-26f, 0x03ff},        /* 1023.25 units */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(eplb_f32_to_f16(cases[i].f), cases[i].h, "%a -> 0x%04x, want 0x%04x",
                     (double)cases[i].f, eplb_f32_to_f16(cases[i].f), cases[i].h);
    /* a signalling NaN (only the lowest fraction bit set) stays a NaN */
    const uint32_t snan = 0x7f800001u;
    float f;
    memcpy(&f, &snan, 4);
    const uint16_t h = eplb_f32_to_f16(f);
    cr_expect((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0, "sNaN -> 0x%04x", h);
}

/* bfloat16 (a float32's high half) of infinities, NaNs and the top of the
 * range: infinity stays infinity (0x7f80: exponent all ones, fraction 0),
 * a NaN whose payload is only in the low half stays a NaN (not infinity),
 * and past the largest finite bf16, (2 - 2^-7) 2^127 = 0x1.fep127 = 0x7f7f,
 * the tie with infinity is (2 - 2^-8) 2^127 = 0x1.ffp127. */
Test(core, bf16_keeps_infinities_and_nans)
{
    cr_expect_eq(eplb_f32_to_bf16(INFINITY), 0x7f80);
    cr_expect_eq(eplb_f32_to_bf16(-INFINITY), 0xff80);
    cr_expect_eq(eplb_f32_to_bf16(FLT_MAX), 0x7f80);
    cr_expect_eq(eplb_f32_to_bf16(0x1.ffp127f), 0x7f80); /* tie, 0x7f7f odd: up */
    cr_expect_eq(eplb_f32_to_bf16(0x1.fe8p127f), 0x7f7f);
    cr_expect_eq(eplb_f32_to_bf16(0x1.fep127f), 0x7f7f);
    static const uint32_t nans[] = {0x7f800001u, 0xff800001u, 0x7f80ffffu, 0x7fc00000u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        float f;
        memcpy(&f, &nans[i], 4);
        const uint16_t b = eplb_f32_to_bf16(f);
        cr_expect((b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0 &&
                      (b & 0x8000) == ((nans[i] >> 16) & 0x8000),
                  "NaN 0x%08x -> 0x%04x", nans[i], b);
    }
}

/* EPLB_THREADS at and past its bounds (docs/environment.md: 1-4096 as
 * given, larger clamped to 4096, anything else the CPU count, one warning
 * per process): 4096 itself passes without a word, a number past int64 is
 * still larger than 4096, one past -int64 is not, and of several bad
 * values only the first is named. */
Test(core, eplb_threads_bounds_and_one_warning)
{
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const int cpus = ncpu > 0 ? (int)ncpu : 1;
    const char *path = eplb_test_path(eplb_test_tmpdir(), "stderr.txt");
    fflush(stderr);
    const int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    static const struct {
        const char *v;
        int want;
    } cases[] = {
        {"4096", 4096}, {"1", 1},      {"99999999999999999999", 4096}, {"-99999999999999999999", 0},
        {"0", 0},       {"5000", 4096}};
    int got[sizeof cases / sizeof cases[0]];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("EPLB_THREADS", cases[i].v, 1);
        got[i] = eplb_num_threads();
    }
    unsetenv("EPLB_THREADS");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(got[i], cases[i].want ? cases[i].want : cpus, "EPLB_THREADS='%s': %d",
                     cases[i].v, got[i]);
    char *err = eplb_test_slurp_text(path);
    cr_expect_str_eq(err, "eplb-replay: EPLB_THREADS='99999999999999999999' clamped to 4096\n");
    free(err);
}

/* EPLB_MEMORY_AVAILABLE is a byte count of 1 or more (docs/environment.md),
 * taken as given, the smallest included. */
Test(core, memory_available_override_taken_as_given)
{
    setenv("EPLB_MEMORY_AVAILABLE", "1", 1);
    cr_expect_eq(eplb_memory_available(), 1);
    setenv("EPLB_MEMORY_AVAILABLE", "123456789", 1);
    cr_expect_eq(eplb_memory_available(), 123456789);
    unsetenv("EPLB_MEMORY_AVAILABLE");
}

/* eplb_bytes_text: the largest unit the value has at least one of (the
 * messages of the JSON reader and the ESFT import) */
Test(core, bytes_text_units)
{
    char b[32];
    cr_assert_str_eq(eplb_bytes_text(b, 0), "0 bytes");
    cr_assert_str_eq(eplb_bytes_text(b, 1023), "1023 bytes");
    cr_assert_str_eq(eplb_bytes_text(b, 1024), "1.0 KiB");
    cr_assert_str_eq(eplb_bytes_text(b, 19968), "19.5 KiB");
    cr_assert_str_eq(eplb_bytes_text(b, 1048575), "1024.0 KiB");
    cr_assert_str_eq(eplb_bytes_text(b, 1572864), "1.5 MiB");
    cr_assert_str_eq(eplb_bytes_text(b, 1073741824), "1.0 GiB");
    cr_assert_str_eq(eplb_bytes_text(b, 22906490880.0), "21.3 GiB");
}

/* ---- decimal numbers at their edges (found by mutation testing: each
 * passed the suite before these tests) -------------------------------------- */

/* For EINVAL the end is left at the start of the string, also when a '-'
 * came before the non-digit (decimal.h: "or at s for EINVAL"). */
Test(core, decimal_read_einval_leaves_end_at_start)
{
    const char *cases[] = {"-x", "-", "--1", "-,3"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *end = NULL;
        int64_t v = 12345;
        cr_expect_eq(eplb_decimal_read(&v, &end, cases[i]), EINVAL, "'%s'", cases[i]);
        cr_expect(end == cases[i], "'%s': end at offset %td, want 0", cases[i],
                  end ? end - cases[i] : (ptrdiff_t)-1);
        cr_expect_eq(v, 12345, "'%s'", cases[i]);
    }
}

/* Zero written in any of the accepted forms is the number 0, not an
 * underflow. */
Test(core, decimal_zero_reals)
{
    const char *cases[] = {"0", "-0", "0.0", ".0", "0.", "0e5", "0.000E-3"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = -42;
        cr_expect_eq(eplb_decimal_parse_double(&v, cases[i]), 0, "'%s'", cases[i]);
        cr_expect(v == 0, "'%s': %g", cases[i], v);
    }
    double v = 1;
    cr_assert_eq(eplb_decimal_parse_double(&v, "-0"), 0);
    cr_assert(v == 0 && signbit(v), "'-0' is minus zero");
}

/* An ERANGE left in errno by some earlier call does not make a zero an
 * underflow: the reader clears errno itself before strtod. */
Test(core, decimal_real_ignores_a_stale_errno)
{
    double v = -42;
    errno = ERANGE;
    cr_assert_eq(eplb_decimal_parse_double(&v, "0"), 0);
    cr_assert(v == 0);
    /* the same after a real underflow ("1e-999" becomes 0 with ERANGE) */
    cr_assert_eq(eplb_decimal_parse_double(&v, "1e-999"), ERANGE);
    v = -42;
    cr_assert_eq(eplb_decimal_parse_double(&v, "0.0"), 0);
    cr_assert(v == 0);
}

/* ---- types.c at its edges (found by mutation testing: each mutant named
 * passed the suite before these tests) -------------------------------------- */

/* A diagnostic switch is on when set to anything but empty or "0", an
 * off switch only at exactly "0" (src/eplb.h).  Kills the empty value
 * taken as on (T01) and an unset variable taken as off (T02). */
Test(core, env_on_and_off_switches)
{
    static const struct {
        const char *v; /* NULL: unset */
        int on, off;
    } cases[] = {{NULL, 0, 0}, {"", 0, 0}, {"0", 0, 1}, {"1", 1, 0}, {"00", 1, 0}, {"no", 1, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].v)
            setenv("EPLB_TEST_SWITCH", cases[i].v, 1);
        else
            unsetenv("EPLB_TEST_SWITCH");
        cr_expect_eq(eplb_env_on("EPLB_TEST_SWITCH"), cases[i].on, "on '%s'",
                     cases[i].v ? cases[i].v : "(unset)");
        cr_expect_eq(eplb_env_off("EPLB_TEST_SWITCH"), cases[i].off, "off '%s'",
                     cases[i].v ? cases[i].v : "(unset)");
    }
    unsetenv("EPLB_TEST_SWITCH");
}

/* The field `key` ("MemAvailable", "VmSize") of a /proc file of "key:
 * N kB" lines, in bytes, or 0 where it cannot be read (read here on its
 * own, not through types.c) */
static uint64_t proc_kb_field(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256];
    unsigned long long kb = 0;
    int found = 0;
    const size_t n = strlen(key);
    while (f && !found && fgets(line, sizeof line, f))
        found =
            !strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, " %llu kB", &kb) == 1;
    if (f)
        fclose(f);
    return found ? (uint64_t)kb * 1024 : 0;
}

static uint64_t meminfo_available(void) { return proc_kb_field("/proc/meminfo", "MemAvailable"); }

/* Without EPLB_MEMORY_AVAILABLE the estimate is at most the machine's
 * MemAvailable ("the least of ...", src/eplb.h), allowing 1 GiB for what
 * other processes free between the two reads.  Kills MemAvailable taken
 * as the most rather than the least (T04: SIZE_MAX where no cgroup or
 * ulimit -v bounds it). */
Test(core, memory_available_at_most_meminfo)
{
    unsetenv("EPLB_MEMORY_AVAILABLE");
    const uint64_t before = meminfo_available();
    if (before == 0)
        cr_skip_test("no MemAvailable in /proc/meminfo");
    const size_t got = eplb_memory_available();
    const uint64_t after = meminfo_available(), most = before > after ? before : after;
    cr_expect(got > 0);
    cr_expect((uint64_t)got <= most + ((uint64_t)1 << 30), "%zu bytes, MemAvailable %llu", got,
              (unsigned long long)most);
}

/* The process's size, VmSize of /proc/self/status in bytes (0 where it
 * cannot be read) */
static uint64_t status_vm_size(void) { return proc_kb_field("/proc/self/status", "VmSize"); }

/* Under an address-space limit (ulimit -v) of the process's size plus
 * 32 MiB, the estimate is about those 32 MiB ("the address-space limit
 * less the process's size", src/eplb.h): at most 40 MiB, at least 16 (the
 * process may grow a little meanwhile).  In a child, whose limit goes with
 * it.  Kills the limit taken without the process's size (T03). */
Test(core, memory_available_under_ulimit_v)
{
    unsetenv("EPLB_MEMORY_AVAILABLE");
    const uint64_t mib = 1 << 20;
    if (meminfo_available() < 256 * mib)
        cr_skip_test("less than 256 MiB available");
    pid_t p = fork();
    cr_assert(p >= 0);
    if (p == 0) {
        const uint64_t vm = status_vm_size();
        struct rlimit rl;
        if (vm < 64 * mib || getrlimit(RLIMIT_AS, &rl) != 0)
            _exit(3);
        rl.rlim_cur = vm + 32 * mib;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
            _exit(3);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(4);
        const size_t got = eplb_memory_available();
        _exit(got > 40 * mib ? 5 : got < 16 * mib ? 6 : 0);
    }
    int status = 0;
    cr_assert_eq(waitpid(p, &status, 0), p);
    cr_assert(WIFEXITED(status), "status %#x", status);
    if (WEXITSTATUS(status) == 3)
        cr_skip_test("process smaller than 64 MiB or a hard limit below it");
    cr_assert_neq(WEXITSTATUS(status), 4, "setrlimit failed");
    cr_assert_neq(WEXITSTATUS(status), 5, "more than 40 MiB under a limit 32 MiB above the size");
    cr_assert_eq(WEXITSTATUS(status), 0, "less than 16 MiB under a limit 32 MiB above the size");
}

/* eplb_huge_alloc rounds up to whole 2 MiB pages (src/eplb.h): 1 byte and
 * 2 MiB take one page, 2 MiB + 1 two, 0 one; the buffer is 2 MiB aligned.
 * Kills an exact multiple rounded up a page too far (T05). */
Test(core, huge_alloc_rounds_to_whole_pages)
{
    const size_t page = (size_t)2 << 20;
    static const struct {
        size_t n, want;
    } cases[] = {
        {0, 1}, {1, 1}, {(size_t)2 << 20, 1}, {((size_t)2 << 20) + 1, 2}, {(size_t)6 << 20, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t sz = 12345;
        void *b = eplb_huge_alloc(cases[i].n, &sz);
        cr_assert(b != NULL, "%zu bytes", cases[i].n);
        cr_expect_eq(sz, cases[i].want * page, "%zu bytes: %zu", cases[i].n, sz);
        cr_expect_eq((uintptr_t)b % page, 0);
        free(b);
    }
}
