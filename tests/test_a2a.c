/* test_a2a.c - the all-to-all measurement's CPU side: the fit of the cost
 * model's NVLink numbers (sim/a2a_fit.c), what those numbers mean in the
 * cost model (sim/cost.c), and `bench a2a`'s options and its refusal
 * without NCCL or a GPU (src/bench_a2a.c).  The measurement itself runs in
 * tests/gpu_tests.c (a2a). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "helpers.h"
#include "kernels.h"
#include "sim.h"
#include "trace_fixtures.h"

static const double sizes7[] = {65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456};

typedef struct {
    double alpha, beta; /* s, bytes/s */
    int n;
} fit_case_t;

ParameterizedTestParameters(a2a_fit, exact_recovery)
{
    static fit_case_t cases[] = {
        {5e-6, 450e9, 7},  /* the default profile's assumptions */
        {18e-6, 370e9, 7}, /* an H100/H200 node as NCCL sees it */
        {40e-6, 25e9, 2},  /* PCIe-like, the fewest points */
        {2e-6, 1.5e12, 4}, /* a device-local copy (the self-exchange) */
        {1e-3, 1e9, 7},    /* slow everything */
    };
    return cr_make_param_array(fit_case_t, cases, sizeof cases / sizeof cases[0]);
}

/* Times made by the model itself give its two numbers back. */
ParameterizedTest(fit_case_t *c, a2a_fit, exact_recovery)
{
    double t[7];
    for (int i = 0; i < c->n; i++)
        t[i] = c->alpha + sizes7[i] / c->beta;
    eplb_a2a_fit_t f;
    eplb_assert_ok(eplb_sim_a2a_fit(&f, sizes7, t, c->n));
    cr_assert(fabs(f.latency_s - c->alpha) <= 1e-9 * c->alpha, "alpha %.17g, want %.17g",
              f.latency_s, c->alpha);
    cr_assert(fabs(f.bw - c->beta) <= 1e-9 * c->beta, "beta %.17g, want %.17g", f.bw, c->beta);
    cr_assert(f.max_rel_err < 1e-12, "max_rel_err %g", f.max_rel_err);
}

/* The order of the points does not matter. */
Test(a2a_fit, order_free)
{
    const double x[4] = {16777216, 65536, 268435456, 1048576};
    double t[4];
    for (int i = 0; i < 4; i++)
        t[i] = 12e-6 + x[i] / 300e9;
    eplb_a2a_fit_t f;
    eplb_assert_ok(eplb_sim_a2a_fit(&f, x, t, 4));
    cr_assert_float_eq(f.latency_s, 12e-6, 1e-15);
    cr_assert_float_eq(f.bw / 300e9, 1, 1e-9);
}

static double rel_cost(double alpha, double slope, const double *x, const double *t, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        const double r = (t[i] - alpha - slope * x[i]) / t[i];
        s += r * r;
    }
    return s;
}

/* With noise the fit is the least squares of the relative error: moving
 * either number away from it makes that sum larger; max_rel_err is the
 * largest point's. */
Test(a2a_fit, least_squares_of_relative_error)
{
    double t[7];
    const double noise[7] = {0.03, -0.05, 0.02, 0.04, -0.01, 0.02, -0.03};
    for (int i = 0; i < 7; i++)
        t[i] = (20e-6 + sizes7[i] / 350e9) * (1 + noise[i]);
    eplb_a2a_fit_t f;
    eplb_assert_ok(eplb_sim_a2a_fit(&f, sizes7, t, 7));
    const double a = f.latency_s, b = 1 / f.bw, best = rel_cost(a, b, sizes7, t, 7);
    for (int k = 0; k < 4; k++) {
        const double da = (k & 1 ? 1 : -1) * 1e-3 * a, db = (k & 2 ? 1 : -1) * 1e-3 * b;
        cr_assert(rel_cost(a + da, b, sizes7, t, 7) > best);
        cr_assert(rel_cost(a, b + db, sizes7, t, 7) > best);
    }
    double worst = 0;
    for (int i = 0; i < 7; i++)
        worst = fmax(worst, fabs(t[i] - a - b * sizes7[i]) / t[i]);
    cr_assert_float_eq(f.max_rel_err, worst, 1e-15);
    cr_assert(f.latency_s > 15e-6 && f.latency_s < 25e-6, "alpha %g", f.latency_s);
    cr_assert(f.bw > 320e9 && f.bw < 380e9, "beta %g", f.bw);
}

Test(a2a_fit, refusals)
{
    const double x[3] = {65536, 1048576, 16777216};
    const double t[3] = {10e-6, 15e-6, 60e-6};
    eplb_a2a_fit_t f = {-1, -1, -1};
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, t, 0), EPLB_ERR_INVALID_ARG, "needs at least 2");
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, t, 1), EPLB_ERR_INVALID_ARG, "needs at least 2");
    /* the same size twice: no slope */
    const double same[2] = {1048576, 1048576}, ts[2] = {10e-6, 11e-6};
    eplb_assert_fails(eplb_sim_a2a_fit(&f, same, ts, 2), EPLB_ERR_INVALID_ARG,
                      "two different sizes");
    /* bad points */
    const double zero_t[2] = {10e-6, 0}, neg_x[2] = {-1, 65536}, nan_t[2] = {NAN, 1e-5};
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, zero_t, 2), EPLB_ERR_INVALID_ARG, "point 1");
    eplb_assert_fails(eplb_sim_a2a_fit(&f, neg_x, t, 2), EPLB_ERR_INVALID_ARG, "point 0");
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, nan_t, 2), EPLB_ERR_INVALID_ARG, "point 0");
    const double inf_x[2] = {65536, INFINITY};
    eplb_assert_fails(eplb_sim_a2a_fit(&f, inf_x, t, 2), EPLB_ERR_INVALID_ARG, "point 1");
    /* times that fall with the size: no positive bandwidth */
    const double falling[3] = {60e-6, 15e-6, 10e-6};
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, falling, 3), EPLB_ERR_INVALID_ARG, "does not grow");
    const double flat[3] = {10e-6, 10e-6, 10e-6};
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, flat, 3), EPLB_ERR_INVALID_ARG, "does not grow");
    /* proportional times less a constant: a negative latency */
    double neg[3];
    for (int i = 0; i < 3; i++)
        neg[i] = x[i] / 100e9 - 0.5e-6;
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, neg, 3), EPLB_ERR_INVALID_ARG,
                      "latency -0.5 us is not positive");
    /* pure bandwidth (alpha exactly 0) is refused too: not positive */
    double prop[3];
    for (int i = 0; i < 3; i++)
        prop[i] = x[i] / 100e9;
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, prop, 3), EPLB_ERR_INVALID_ARG, "not positive");
    /* output untouched by every refusal */
    cr_assert(f.latency_s == -1 && f.bw == -1 && f.max_rel_err == -1);
}

/* The printed profile lines read back (through the profile parser) as the
 * fit, to the precision printed; "# " comments them out. */
Test(a2a_fit, profile_lines_parse_back)
{
    const eplb_a2a_fit_t f = {18.4321e-6, 371.2345e9, 0.05};
    char buf[256];
    int n = eplb_sim_a2a_fit_format(buf, sizeof buf, &f, "");
    cr_assert(n > 0 && (size_t)n < sizeof buf);
    cr_assert_str_eq(buf, "nvlink_GBps = 371.2\nnvlink_latency_us = 18.43\n");
    eplb_profile_t p;
    eplb_assert_ok(eplb_sim_profile_parse(&p, buf, "fit"));
    cr_assert_float_eq(p.nvlink_bw, 371.2e9, 1);
    cr_assert_float_eq(p.nvlink_lat, 18.43e-6, 1e-15);
    eplb_sim_a2a_fit_format(buf, sizeof buf, &f, "# ");
    eplb_profile_t d, q;
    eplb_sim_profile_default(&d);
    eplb_assert_ok(eplb_sim_profile_parse(&q, buf, "commented"));
    cr_assert(q.nvlink_bw == d.nvlink_bw && q.nvlink_lat == d.nvlink_lat);
}

/* What bench a2a's x and t are in the cost model: a layer whose GPU sends
 * and receives n entries over NVLink costs two phases, dispatch (n x H x
 * dispatch_bytes) and combine (n x H x combine_bytes), each alpha + x /
 * beta: the exchange bench a2a times, with x its BYTES per GPU. */
Test(a2a_fit, numbers_mean_what_the_cost_model_means)
{
    eplb_profile_t p;
    eplb_sim_profile_default(&p);
    p.nvlink_lat = 17e-6;
    p.nvlink_bw = 360e9;
    eplb_model_shape_t m;
    eplb_sim_model_shape(&m, "DeepSeek-V3", NULL);
    eplb_cost_t c;
    eplb_sim_cost_init(&c, &p, &m, 8, 1, 256); /* one node of 8: NVLink only */
    int32_t slots[256] = {0};
    int64_t g[8], si[8], ri[8], zero[8] = {0};
    for (int d = 0; d < 8; d++) {
        si[d] = 1000;
        ri[d] = d == 3 ? 1500 : 1000; /* GPU 3 receives the most: it sets the time */
    }
    eplb_layer_cost_t lc;
    eplb_sim_cost_layer(&lc, g, &c, slots, si, zero, ri, zero);
    const double x_dispatch = 1500 * m.hidden * p.dispatch_bytes;
    const double x_combine = 1500 * m.hidden * p.combine_bytes;
    const double phases =
        (p.nvlink_lat + x_dispatch / p.nvlink_bw) + (p.nvlink_lat + x_combine / p.nvlink_bw);
    cr_assert_float_eq(lc.a2a_s, phases, 1e-15);
}

/* ---- the command --------------------------------------------------------- */

/* Bad options exit 2 and name the option, before anything looks for NCCL
 * or a GPU (so the same on every machine and build). */
Test(a2a_cli, bad_options)
{
    eplb_test_cli_expect(2, "--reps: expected an integer in 1..10000", "bench a2a --reps 0");
    eplb_test_cli_expect(2, "--reps: expected an integer", "bench a2a --reps 5x");
    eplb_test_cli_expect(2, "--reps needs a value", "bench a2a --reps");
    eplb_test_cli_expect(2, "--gpus: expected an integer", "bench a2a --gpus 0");
    eplb_test_cli_expect(2, "--gpus: expected an integer", "bench a2a --gpus -2");
    eplb_test_cli_expect(2, "--gpus 1: an all-to-all needs 2 or more GPUs", "bench a2a --gpus 1");
    eplb_test_cli_expect(2, "--sizes: the fit of latency and bandwidth needs at least 3",
                         "bench a2a --sizes 1M");
    eplb_test_cli_expect(2, "needs at least 3", "bench a2a --sizes 1M,64M");
    eplb_test_cli_expect(2, "at least 4 times the smallest", "bench a2a --sizes 1M,2M,3M");
    eplb_test_cli_expect(2, "--sizes: expected", "bench a2a --sizes -1K,1M,4M");
    eplb_test_cli_expect(2, "--sizes: expected up to 32 byte counts", "bench a2a --sizes 1M,x");
    eplb_test_cli_expect(2, "--sizes: expected", "bench a2a --sizes 1M,");
    eplb_test_cli_expect(2, "--sizes: expected", "bench a2a --sizes 8,1M"); /* below 16 */
    eplb_test_cli_expect(2, "--sizes: expected", "bench a2a --sizes 1M,17G");
    eplb_test_cli_expect(2, "--sizes: expected", "bench a2a --sizes 1M,99999999999999999999");
    eplb_test_cli_expect(2, "--sizes: expected", "bench a2a --sizes 1M,2T");
    eplb_test_cli_expect(2, "--sizes: expected", "bench a2a --sizes ' 1M,2M'");
    eplb_test_cli_expect(2, "--sizes: 1048576 bytes listed twice", "bench a2a --sizes 1M,1048576");
    eplb_test_cli_expect(2, "unknown option '--bogus'", "bench a2a --bogus");
    eplb_test_cli_expect(2, "unexpected argument 'extra'", "bench a2a extra");
    eplb_test_cli_expect(2, "unknown option '--json=1'", "bench a2a --json=1");
}

/* An NCCL older than 2.7 (no ncclSend/ncclRecv) is refused by its version,
 * in NCCL's two numberings' text (2604: 2.6.4); 2.7.0 itself is taken, and
 * the next failure is another (no GPU here, or the stand-in's failed
 * communicator).  The stand-in is tests/lib/fake_nccl.c, which reports
 * EPLB_FAKE_NCCL_VERSION.  A build without NCCL loads no library at all:
 * the stub's message, whatever EPLB_NCCL_LIB names. */
Test(a2a_cli, old_nccl_refused)
{
    const char *fake = eplb_test_path(eplb_test_builddir(), "tests/fake_nccl.so");
    setenv("EPLB_NCCL_LIB", fake, 1);
    if (!eplb_a2a_built()) {
        eplb_test_cli_expect(1, "this build has no ", "bench a2a --self --sizes 64K,256K,1M");
        return;
    }
    cr_assert(eplb_test_exists(fake), "%s not built (make check builds it)", fake);
    char want[4400];
    setenv("EPLB_FAKE_NCCL_VERSION", "2604", 1);
    snprintf(want, sizeof want, "bench a2a: %s is NCCL 2.6.4: 2.7 or later needed", fake);
    eplb_test_cli_expect(1, want, "bench a2a --self --sizes 64K,256K,1M");
    setenv("EPLB_FAKE_NCCL_VERSION", "2610", 1);
    snprintf(want, sizeof want, "bench a2a: %s is NCCL 2.6.10: 2.7 or later needed", fake);
    eplb_test_cli_expect(1, want, "bench a2a --self --sizes 64K,256K,1M");
    setenv("EPLB_FAKE_NCCL_VERSION", "2700", 1);
    char *out = NULL;
    cr_assert_eq(eplb_test_run_cli(&out, "bench a2a --self --sizes 64K,256K,1M"), 1, "%s", out);
    cr_assert(strstr(out, "or later needed") == NULL, "2.7.0 refused: %s", out);
    cr_assert(strstr(out, "fake NCCL") || strstr(out, "GPU"), "%s", out);
    free(out);
    unsetenv("EPLB_FAKE_NCCL_VERSION");
}

/* --help says what is measured; bench --help lists a2a. */
Test(a2a_cli, help)
{
    eplb_test_cli_expect(0, "ncclSend/ncclRecv", "bench a2a --help");
    eplb_test_cli_expect(0, "nvlink_latency_us", "bench a2a -h");
    eplb_test_cli_expect(0, "a2a", "bench --help");
}

/* Without NCCL in the build (the CPU CI machine: no CUDA at all), or
 * without libnccl.so.2 (EPLB_NCCL_LIB names a missing one here) or a GPU
 * on this machine, the command fails with one clear line and exit 1:
 * never a crash or a silent 0.  Where the build
 * has NCCL and this machine can run it (the GPU machine has no Criterion,
 * but just in case), it must succeed and print the profile lines. */
Test(a2a_cli, refused_without_nccl_or_gpu)
{
    if (!eplb_a2a_built()) {
        eplb_test_cli_expect(1, "eplb-replay bench a2a: this build has no ",
                             "bench a2a --sizes 64K,256K,1M --reps 1");
        eplb_test_cli_expect(1, "this build has no ", "bench a2a --self --json");
        return;
    }
    /* the library missing, and a library that is not NCCL: named (the
     * load comes before any GPU is looked for) */
    setenv("EPLB_NCCL_LIB", "libnccl-not-here.so.2", 1);
    eplb_test_cli_expect(1, "bench a2a: cannot load libnccl-not-here.so.2 (NCCL 2.7 or later)",
                         "bench a2a --self --sizes 64K,256K,1M");
    setenv("EPLB_NCCL_LIB", "libz.so.1", 1);
    eplb_test_cli_expect(1, "bench a2a: libz.so.1 has no ncclGetVersion: not NCCL",
                         "bench a2a --self --sizes 64K,256K,1M");
    unsetenv("EPLB_NCCL_LIB");
    char *out = NULL;
    int rc = eplb_test_run_cli(&out, "bench a2a --sizes 64K,256K,1M --reps 3 --self");
    if (rc == 0) {
        cr_assert(strstr(out, "nvlink_latency_us = ") != NULL, "%s", out);
    } else {
        cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
        cr_assert(strncmp(out, "eplb-replay bench a2a: ", 23) == 0, "%s", out);
        cr_assert(strstr(out, "libnccl.so.2") || strstr(out, "no usable GPU"), "%s", out);
        cr_assert(strchr(out, '\n') == out + strlen(out) - 1, "not one line: %s", out);
    }
    free(out);
}

/* ---- the fit's edges (found by mutation testing: each passed the suite
 * before these tests) ---------------------------------------------------- */

/* A size of 0 bytes is not a positive size: refused, naming the point,
 * although the other numbers would fit (10 us latency, 1 MiB in 10 us). */
Test(a2a_fit, refuses_a_zero_size)
{
    const double x[2] = {0, 1048576}, t[2] = {10e-6, 20e-6};
    eplb_a2a_fit_t f = {-1, -1, -1};
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, t, 2), EPLB_ERR_INVALID_ARG, "point 0");
    cr_assert(f.latency_s == -1 && f.bw == -1 && f.max_rel_err == -1);
}

/* An infinite time is not a finite time: refused as that point, not
 * reported as some later failure of the fit. */
Test(a2a_fit, refuses_an_infinite_time)
{
    const double x[3] = {65536, 1048576, 16777216};
    const double t_last[3] = {10e-6, 15e-6, INFINITY}, t_first[3] = {INFINITY, 15e-6, 60e-6};
    eplb_a2a_fit_t f = {-1, -1, -1};
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, t_last, 3), EPLB_ERR_INVALID_ARG, "point 2");
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, t_first, 3), EPLB_ERR_INVALID_ARG, "point 0");
    cr_assert(f.latency_s == -1 && f.bw == -1 && f.max_rel_err == -1);
}

/* "Equal sizes" is relative to the size: 1e9 and 1e9 + 1e-4 bytes differ
 * by 1e-13 of themselves.  By hand: the weighted variance of the sizes is
 * at most (1e-4 / 2)^2 = 2.5e-9 bytes^2, below 1e-24 x (1e9)^2 = 1e-6, so
 * they are one size and the fit refuses them as such (an absolute test
 * would take them, get a slope of about 1e-6 s / 1e-4 bytes and fail
 * later with a meaningless latency). */
Test(a2a_fit, sizes_equal_relative_to_their_size)
{
    const double x[2] = {1e9, 1e9 + 1e-4}, t[2] = {10e-6, 11e-6};
    cr_assert(x[1] != x[0]); /* two different doubles */
    eplb_a2a_fit_t f;
    eplb_assert_fails(eplb_sim_a2a_fit(&f, x, t, 2), EPLB_ERR_INVALID_ARG, "two different sizes");
}

/* Times that differ only in their 7th or 8th digit (a large latency, a
 * fast exchange).  Through two points every weighted least-squares line
 * is the line through both, so the slope must be (t1 - t0) / (x1 - x0)
 * of the very doubles passed in (t1 - t0 is exact: the times are within a
 * factor 2).  The fit takes the deviations of the times from their mean
 * before the products; products of the raw times would lose these digits
 * (errors of 1e-7 and more, where this asks for 1e-12). */
Test(a2a_fit, two_close_times_keep_their_slope)
{
    static const struct {
        double alpha, beta;
    } cases[] = {{0.05, 1e16}, {0.1, 5e15}, {0.02, 5e15}, {0.01, 1e16}};
    const double x[2] = {65536, 262144};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const double t[2] = {cases[i].alpha + x[0] / cases[i].beta,
                             cases[i].alpha + x[1] / cases[i].beta};
        const double slope = (t[1] - t[0]) / (x[1] - x[0]);
        eplb_a2a_fit_t f;
        eplb_assert_ok(eplb_sim_a2a_fit(&f, x, t, 2));
        cr_expect(fabs(f.bw * slope - 1) < 1e-12, "case %zu: bw %.17g, want %.17g", i, f.bw,
                  1 / slope);
        cr_expect(fabs(f.latency_s - (t[0] - slope * x[0])) < 1e-12 * cases[i].alpha,
                  "case %zu: latency %.17g", i, f.latency_s);
    }
}
