/* cmd_gen.c - `eplb-replay gen`: synthetic traces from a model preset. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "cmd.h"
#include "gen.h"
#include "progress.h"
#include "trace.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: eplb-replay gen --preset NAME -o OUT.h5 [options]\n"
               "       eplb-replay gen --preset NAME --stats [options]\n"
               "       eplb-replay gen --list-presets\n"
               "\n"
               "Write a synthetic trace of router logits whose expert load looks\n"
               "like real serving: heavy-tailed per-layer popularity, hot experts\n"
               "that persist and drift, workload shifts, varying batch sizes and\n"
               "phases (docs/calibration.md).  The same options give the same file.\n"
               "On a terminal, a line on stderr counts the steps written (from 2 s).\n"
               "\n"
               "options:\n"
               "  --preset NAME          deepseek-v3, qwen3-moe, mixtral, esft-lite\n"
               "  -o, --output OUT.h5    trace to write (written under a temporary\n"
               "                         name, renamed when complete, deleted if\n"
               "                         interrupted by SIGINT, SIGTERM or SIGHUP; an\n"
               "                         existing OUT.h5 is replaced only then)\n"
               "  --steps S              steps (forward passes) (default 64, at most\n"
               "                         10000000)\n"
               "  --tokens-per-step T    mean tokens per step (default 256, at most 65536)\n"
               "  --seed N               random seed (default 1)\n"
               "  --dtype f32|f16|bf16   logits type in the file (default bf16)\n"
               "  --layers N             keep only the first N MoE layers (the same\n"
               "                         logits as in the full model; default all)\n"
               "  --stats                write nothing (no -o); route the generated logits\n"
               "                         with a reference top-k and print per-layer\n"
               "                         load statistics (max/mean expert load)\n"
               "  --window W             --stats only: steps per window (default 16)\n"
               "  --threads N            generator threads (default: EPLB_THREADS or\n"
               "                         the CPU count; the output does not depend on it)\n"
               "  --force                generate even more than 64 GiB of raw logits\n"
               "                         (steps x tokens x layers x experts x dtype size)\n"
               "                         or a step buffer over 8 GiB (refused otherwise)\n"
               "  --list-presets         print the presets and exit\n"
               "  -h, --help             this help\n");
}

static void list_presets(void)
{
    printf("%-12s %-18s %6s %7s %5s %-8s %s\n", "preset", "model", "layers",
           "experts", "top_k", "scoring", "calibrated against");
    for (size_t i = 0; i < eplb_gen_preset_count(); i++) {
        const eplb_gen_preset_t *p = eplb_gen_preset_at(i);
        printf("%-12s %-18s %6d %7d %5d %-8s %s\n", p->name, p->model,
               p->num_layers, p->route.num_experts, p->route.top_k,
               eplb_scoring_name(p->route.scoring), p->calibrated);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 0, or -1 out of memory (the table is then cut short, and said so) */
static int print_summary(const char *name, const double *v, int L)
{
    double *c = malloc(sizeof(double) * (size_t)L);
    if (!c)
        return -1;
    memcpy(c, v, sizeof(double) * (size_t)L);
    qsort(c, (size_t)L, sizeof(double), cmp_double);
    double m = 0;
    for (int i = 0; i < L; i++)
        m += c[i];
    printf("%-34s %7.3f %7.3f %7.3f %7.3f\n", name, m / L, c[0], c[L / 2], c[L - 1]);
    free(c);
    return 0;
}

static int run_stats(const eplb_gen_opts_t *o, int64_t window)
{
    eplb_gen_stats_t st;
    eplb_status_t rc = eplb_gen_stats_compute(&st, o, window);
    if (rc != EPLB_OK)
        return eplb_cmd_fail("gen", rc);
    printf("preset %s: %" PRId64 " steps, %" PRId64 " tokens, %d layers, "
           "window %" PRId64 " steps\n",
           o->preset, o->steps, st.num_tokens, st.num_layers, window);
    printf("%-34s %7s %7s %7s %7s\n", "per-layer statistic", "mean", "min",
           "median", "max");
    int bad = print_summary("max/mean load, per window", st.window_maxmean, st.num_layers) ||
              print_summary("max/mean load, whole trace", st.whole_maxmean, st.num_layers) ||
              print_summary("max/mean load, per step", st.step_maxmean, st.num_layers) ||
              print_summary("top1/top2 load, whole trace", st.top12, st.num_layers) ||
              print_summary("top expert = previous step's", st.top_same, st.num_layers) ||
              print_summary("steps in top-expert runs >= 10", st.top_run, st.num_layers) ||
              print_summary("hot expert lifetime (window tops)", st.top_life, st.num_layers);
    eplb_gen_stats_free(&st);
    if (bad) /* a line left out had exited 0 */
        return eplb_cmd_fail(
            "gen", eplb_error_set(EPLB_ERR_NOMEM, "--stats: out of memory for the table"));
    return 0;
}

int eplb_cmd_gen(int argc, char **argv)
{
    enum { OPT_PRESET = 256, OPT_STEPS, OPT_TOKENS, OPT_SEED, OPT_DTYPE,
           OPT_LAYERS, OPT_STATS, OPT_WINDOW, OPT_LIST, OPT_THREADS, OPT_FORCE };
    static const struct option longopts[] = {
        {"preset", required_argument, NULL, OPT_PRESET},
        {"output", required_argument, NULL, 'o'},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"tokens-per-step", required_argument, NULL, OPT_TOKENS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"stats", no_argument, NULL, OPT_STATS},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"list-presets", no_argument, NULL, OPT_LIST},
        {"force", no_argument, NULL, OPT_FORCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    eplb_gen_opts_t o = EPLB_GEN_OPTS_INIT;
    o.preset = NULL;
    const char *out = NULL;
    int stats = 0, force = 0, window_set = 0, list = 0;
    int64_t window = 16, v;
    eplb_status_t st = EPLB_OK;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = eplb_cli_getopt(argc, argv, ":o:h", longopts)) != -1) {
        switch (c) {
        case OPT_PRESET: o.preset = optarg; break;
        case 'o': out = optarg; break;
        case OPT_STEPS:
            st = eplb_cli_int_parse(&o.steps, optarg, "--steps", 1, EPLB_GEN_MAX_STEPS);
            break;
        case OPT_TOKENS:
            st = eplb_cli_int_parse(&o.tokens_per_step, optarg, "--tokens-per-step", 1,
                                    EPLB_GEN_MAX_TOKENS_PER_STEP);
            break;
        case OPT_SEED:
            st = eplb_cli_int_parse(&v, optarg, "--seed", 0, INT64_MAX);
            o.seed = (uint64_t)v;
            break;
        case OPT_DTYPE:
            st = eplb_cli_name_option(eplb_dtype_parse(&o.dtype, optarg), "--dtype");
            break;
        case OPT_LAYERS:
            st = eplb_cli_int_parse(&v, optarg, "--layers", 1, EPLB_MAX_EXPERTS);
            o.num_layers = (int)v;
            break;
        case OPT_STATS: stats = 1; break;
        case OPT_FORCE: force = 1; break;
        case OPT_THREADS:
            st = eplb_cli_int_parse(&v, optarg, "--threads", 1, 1024);
            o.threads = (int)v;
            break;
        case OPT_WINDOW:
            st = eplb_cli_int_parse(&window, optarg, "--window", 1, INT64_C(1) << 40);
            window_set = 1;
            break;
        case OPT_LIST:
            list = 1;
            break;
        case 'h': usage(stdout); return 0;
        default: st = eplb_cli_getopt_fail(c, argv); break;
        }
        if (st != EPLB_OK)
            return eplb_cmd_fail("gen", st);
    }
    if (optind < argc)
        return eplb_cmd_fail("gen", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                   "unexpected argument '%s' (see --help)",
                                                   argv[optind]));
    /* --list-presets with -o or --preset wrote nothing and said nothing */
    if (list && argc > 2)
        return eplb_cmd_fail("gen", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                   "--list-presets takes no other option (it "
                                                   "prints the presets and writes nothing)"));
    if (list) {
        list_presets();
        return 0;
    }
    if (!o.preset)
        return eplb_cmd_fail("gen", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                   "--preset: required (see --list-presets)"));
    /* options that the request would ignore are refused, not dropped */
    if (stats && out)
        return eplb_cmd_fail("gen", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                   "--stats writes no trace; drop -o/--output "
                                                   "(or drop --stats to write %s)",
                                                   out));
    if (window_set && !stats)
        return eplb_cmd_fail("gen", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                   "--window applies to --stats only (the "
                                                   "window of its statistics; a trace has "
                                                   "none)"));
    if (!stats && !out)
        return eplb_cmd_fail("gen", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                   "-o/--output: required (or --stats)"));
    if (!stats && !out[0])
        return eplb_cmd_fail("gen", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                   "-o/--output: empty path"));
    /* refuse what cannot be done before generating anything */
    if (!force && (st = eplb_gen_size_check(&o)) != EPLB_OK)
        return eplb_cmd_fail("gen", st);
    if (stats)
        return run_stats(&o, window);
    if ((st = eplb_trace_writer_check_path(out)) != EPLB_OK)
        return eplb_cmd_fail("gen", st);
    int64_t ntok = 0;
    /* "eplb-replay gen: step N of S (T s)" on a terminal, from 2 s on (a
     * 10,000-step trace takes minutes) */
    eplb_progress_t prog;
    eplb_progress_init(&prog, "eplb-replay gen");
    prog.unit = "step";
    st = eplb_gen_write(&o, out, &ntok, isatty(2) ? eplb_progress_count : NULL, &prog);
    eplb_progress_end(&prog);
    if (st != EPLB_OK)
        return eplb_cmd_fail("gen", st);
    fprintf(stderr, "eplb-replay gen: wrote %s: preset %s, %" PRId64 " steps, %" PRId64
            " tokens\n", out, o.preset, o.steps, ntok);
    return 0;
}
