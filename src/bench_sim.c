/* bench_sim.c - `eplb-replay bench sim`: counts-level simulator speed in
 * (step, layer, expert) updates per second per core, and its memory, on a
 * synthetic counts stream generated on the fly (docs/perf/sim.md). */
#include "cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "checks.h"
#include "cli_util.h"
#include "decimal.h"
#include "sim.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: eplb-replay bench sim [options] [--json]\n"
               "\n"
               "Replays a synthetic counts-only stream (Zipf-like per-layer load of\n"
               "top-8 tokens, top-E where E < 8, with per-step noise, generated on the\n"
               "fly) through the simulator on one thread and reports (step, layer,\n"
               "expert) updates per second, then again with 4x the steps to show that\n"
               "memory does not grow with them.\n"
               "\n"
               "  --steps S        steps of the first pass (default 2000)\n"
               "  --layers L       MoE layers (default 58, DeepSeek-V3)\n"
               "  --experts E      logical experts (default 256)\n"
               "  --gpus D         EP size (default 8); redundant slots: E + D rounded\n"
               "                   up to a multiple of D, less E\n"
               "  --policy NAME    policy of the replayed run (default none: pure\n"
               "                   selection + cost; deepseek adds vLLM-schedule\n"
               "                   rebalances every 1000 steps, window 1000)\n"
               "  --json           one JSON object instead of text\n"
               "  -h, --help       this text\n");
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static eplb_status_t one_pass(double *secs, int L, int E, int D, int64_t S,
                              const eplb_policy_t *pol)
{
    eplb_sim_source_t *src = NULL;
    /* top-8 (DeepSeek-V3), or every expert where there are fewer */
    EPLB_CHECK(eplb_sim_source_synthetic(&src, L, E, E < 8 ? E : 8, S, 4096, 7));
    eplb_sim_run_cfg_t r;
    memset(&r, 0, sizeof r);
    r.policy = pol;
    r.num_gpus = D;
    r.num_nodes = 1;
    r.num_slots = (E + D + D - 1) / D * D;
    eplb_trigger_t t = EPLB_TRIGGER_INIT;
    t.interval = 1000;
    t.window = 1000;
    r.trig = t;
    eplb_sim_opts_t o;
    memset(&o, 0, sizeof o);
    o.select = EPLB_SELECT_HASH;
    eplb_sim_profile_default(&o.prof);
    eplb_sim_model_shape(&o.shape, "DeepSeek-V3", NULL);
    o.policy_time = -1;
    o.threads = 1;
    o.max_moves = -1;
    eplb_sim_result_t res;
    double t0 = eplb_now();
    eplb_status_t st = eplb_sim_replay(&res, src, &r, 1, &o);
    *secs = eplb_now() - t0;
    if (st == EPLB_OK)
        eplb_sim_results_free(&res, 1);
    eplb_sim_source_free(src);
    return st;
}

/* Strict integer option in [lo, hi]. */
static eplb_status_t opt_int(long long *out, const char *opt, const char *s, long long lo,
                             long long hi)
{
    int64_t v = 0;
    if (eplb_decimal_parse(&v, s) != 0 || v < lo || v > hi)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: expected an integer in %lld..%lld, "
                              "got '%s'", opt, lo, hi, s);
    *out = v;
    return EPLB_OK;
}

int eplb_bench_sim(int argc, char **argv)
{
    static const struct option lo[] = {
        {"steps", required_argument, 0, 's'}, {"layers", required_argument, 0, 'l'},
        {"experts", required_argument, 0, 'e'}, {"gpus", required_argument, 0, 'd'},
        {"policy", required_argument, 0, 'p'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    long long S = 2000, v = 0;
    int L = 58, E = 256, D = 8, json = 0, c;
    eplb_status_t st = EPLB_OK;
    const char *pname = "none";
    optind = 1;
    opterr = 0;
    while ((c = eplb_cli_getopt(argc, argv, ":h", lo)) != -1) {
        switch (c) {
        /* bounds: the second pass runs 4 x S steps; the run state holds
         * layers x slots and per-GPU tables */
        case 's': st = opt_int(&S, "--steps", optarg, 1, 1000000000); break;
        case 'l': st = opt_int(&v, "--layers", optarg, 1, 4096); L = (int)v; break;
        case 'e': st = opt_int(&v, "--experts", optarg, 1, EPLB_MAX_EXPERTS); E = (int)v; break;
        case 'd': st = opt_int(&v, "--gpus", optarg, 1, 1024); D = (int)v; break;
        case 'p': pname = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: /* "--steps needs a value", or an unknown option */
            return eplb_cmd_fail("bench sim", eplb_cli_getopt_fail(c, argv));
        }
        if (st != EPLB_OK)
            return eplb_cmd_fail("bench sim", st);
    }
    if (optind < argc)
        return eplb_cmd_fail("bench sim", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                         "unexpected argument '%s'",
                                                         argv[optind]));
    if (S < 1 || L < 1 || E < 1 || D < 1 || E > EPLB_MAX_EXPERTS)
        return eplb_cmd_fail("bench sim", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                         "--steps/--layers/--experts/--gpus "
                                                         "must be >= 1 (experts <= %d)",
                                                         EPLB_MAX_EXPERTS));
    const eplb_policy_t *pol = eplb_policy_find(pname);
    if (!pol)
        return eplb_cmd_fail("bench sim", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                         "--policy: unknown '%s'", pname));
    double t1, t2;
    st = one_pass(&t1, L, E, D, S, pol);
    long rss1 = maxrss_kb();
    if (st == EPLB_OK)
        st = one_pass(&t2, L, E, D, 4 * S, pol);
    long rss2 = maxrss_kb();
    if (st != EPLB_OK)
        return eplb_cmd_fail("bench sim", st);
    double u1 = (double)S * L * E / t1, u2 = 4.0 * S * L * E / t2;
    if (json) {
        printf("{\"bench\": \"sim\", \"policy\": \"%s\", \"layers\": %d, \"experts\": %d, "
               "\"gpus\": %d, \"threads\": 1, \"passes\": [{\"steps\": %lld, \"seconds\": %.6f, "
               "\"updates_per_s\": %.6g, \"maxrss_kb\": %ld}, {\"steps\": %lld, \"seconds\": "
               "%.6f, \"updates_per_s\": %.6g, \"maxrss_kb\": %ld}]}\n",
               pname, L, E, D, S, t1, u1, rss1, 4 * S, t2, u2, rss2);
    } else {
        printf("bench sim: counts-level replay, policy %s, %d layers x %d experts, "
               "%d GPUs, 1 thread\n", pname, L, E, D);
        printf("  %8lld steps: %8.3f s  %7.1f M updates/s  max RSS %ld kB\n", S, t1,
               u1 / 1e6, rss1);
        printf("  %8lld steps: %8.3f s  %7.1f M updates/s  max RSS %ld kB\n", 4 * S, t2,
               u2 / 1e6, rss2);
    }
    return 0;
}
