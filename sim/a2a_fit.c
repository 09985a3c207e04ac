/* a2a_fit.c - the cost model's all-to-all numbers (nvlink_latency_us,
 * nvlink_GBps) from measured times: `bench a2a` (src/bench_a2a.c). */
#include "sim.h"

#include <math.h>
#include <stdio.h>

eplb_status_t eplb_sim_a2a_fit(eplb_a2a_fit_t *out, const double *bytes, const double *secs, int n)
{
    if (n < 2)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "all-to-all fit: %d size%s measured, the fit of latency and "
                              "bandwidth needs at least 2",
                              n < 0 ? 0 : n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++)
        if (!(bytes[i] > 0) || !(secs[i] > 0) || !isfinite(bytes[i]) || !isfinite(secs[i]))
            return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                  "all-to-all fit: point %d (%g bytes, %g s) is not a "
                                  "positive finite size and time",
                                  i, bytes[i], secs[i]);
    /* Weighted means first, then the slope from the deviations: the sums of
     * x^2 / t^2 alone reach 1e28 and lose the difference they are taken
     * for. */
    double sw = 0, mx = 0, mt = 0;
    for (int i = 0; i < n; i++) {
        const double w = 1 / (secs[i] * secs[i]);
        sw += w;
        mx += w * bytes[i];
        mt += w * secs[i];
    }
    mx /= sw;
    mt /= sw;
    double sxx = 0, sxt = 0;
    for (int i = 0; i < n; i++) {
        const double w = 1 / (secs[i] * secs[i]), dx = bytes[i] - mx;
        sxx += w * dx * dx;
        sxt += w * dx * (secs[i] - mt);
    }
    /* all sizes equal (to rounding): the slope is undetermined */
    if (!(sxx / sw > 1e-24 * mx * mx))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "all-to-all fit: all %d sizes are %g bytes; the fit needs two "
                              "different sizes",
                              n, bytes[0]);
    const double slope = sxt / sxx; /* s per byte: 1 / beta */
    const double alpha = mt - slope * mx;
    if (!(slope > 0))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "all-to-all fit: the time does not grow with the size (%g s per "
                              "byte): no bandwidth to fit (measure sizes further apart)",
                              slope);
    if (!(alpha > 0))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "all-to-all fit: latency %g us is not positive: the times do not "
                              "follow t = latency + bytes / bandwidth (measure smaller sizes)",
                              alpha * 1e6);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const double e = fabs(secs[i] - alpha - slope * bytes[i]) / secs[i];
        if (e > worst)
            worst = e;
    }
    out->latency_s = alpha;
    out->bw = 1 / slope;
    out->max_rel_err = worst;
    return EPLB_OK;
}

int eplb_sim_a2a_fit_format(char *buf, size_t size, const eplb_a2a_fit_t *fit, const char *prefix)
{
    return snprintf(buf, size, "%snvlink_GBps = %.1f\n%snvlink_latency_us = %.2f\n", prefix,
                    fit->bw / 1e9, prefix, fit->latency_s * 1e6);
}
