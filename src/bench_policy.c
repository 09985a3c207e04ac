/* bench_policy.c - `eplb-replay bench policy`: time the rearrangement
 * policies on the DeepSeek-V3 full-model loads recorded by SGLang
 * (../shared/data/sglang-dsv3/decode_in1000out1000.json: 58 MoE layers x 256
 * experts after the dense all-zero rows are dropped), with 288 replicas,
 * 8 groups, 4 nodes, 32 GPUs: the median wall time of one whole-model call,
 * on the calling thread (one core). */
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checks.h"
#include "cli_util.h"
#include "policy.h"

static const char *CMD = "bench policy";
static const char *REL = "data/sglang-dsv3/decode_in1000out1000.json";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eplb-replay bench policy [--policy NAME] [--repeat R] [--max-moves M]\n"
            "                                [--weights FILE] [--json]\n\n"
            "Median microseconds per whole-model policy call (one thread) on the\n"
            "DeepSeek-V3 decode loads recorded by SGLang: 58 MoE layers x 256 experts,\n"
            "288 replicas, 8 groups, 4 nodes, 32 GPUs, old placement = default.\n\n"
            "  --policy NAME   one policy (default: every policy in the table)\n"
            "  --repeat R      timed calls per policy (default 50; 5 for migration-aware)\n"
            "  --max-moves M   migration-aware moves per layer (default 16)\n"
            "  --weights FILE  loads as rebalance reads them (SGLang logical_count JSON,\n"
            "                  a 3-D series summed, [[...]] or CSV); all-zero layers are\n"
            "                  left out; default $EPLB_SHARED_DIR/%s,\n"
            "                  else ../shared/%s beside the source tree\n"
            "  --json          one JSON line per policy: {\"policy\", \"median_us\",\n"
            "                  \"min_us\", \"layers\", \"repeat\", \"balancedness\", ...}\n"
            "  -h, --help      this text\n",
            REL, REL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ../shared/REL beside the source tree this file was compiled from, into
 * buf.  __FILE__ is the path the compiler was given: absolute for a build
 * outside the tree configured by an absolute path, else relative to the
 * top build directory ("src/bench_policy.c" in the tree), where make ran
 * the compiler and where the binary is.  Relative, it is taken from the
 * binary's directory, not the current one: `bench policy` run from another
 * directory could not find its data. */
static void beside_source(char *buf, size_t n)
{
    const char *file = __FILE__; /* .../src/bench_policy.c */
    const char *slash = strrchr(file, '/');
    const int dirlen = slash ? (int)(slash - file) : 0;
    char exe[4096] = "";
    if (file[0] != '/') {
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[k > 0 ? k : 0] = '\0';
        char *e = strrchr(exe, '/');
        if (e)
            e[1] = '\0'; /* "/build/dir/" */
        else
            exe[0] = '\0'; /* unknown: the current directory, as before */
    }
    if (dirlen > 0)
        snprintf(buf, n, "%s%.*s/../../shared/%s", exe, dirlen, file, REL);
    else
        snprintf(buf, n, "%s../shared/%s", exe, REL);
}

/* The default input, into buf: $EPLB_SHARED_DIR/REL when it is set (alone:
 * the directory the user named is not second-guessed); else the first
 * readable of $EPLB_SRCDIR/../shared/REL (tests) and ../shared beside the
 * source tree.  EPLB_ERR_IO saying what was tried and how to fix it when
 * there is none. */
static eplb_status_t default_path(char *buf, size_t n)
{
    static const char *FIX = "pass --weights FILE (an SGLang logical_count JSON) or set "
                             "EPLB_SHARED_DIR to the directory that holds";
    const char *s = getenv("EPLB_SHARED_DIR");
    if (s && *s) {
        snprintf(buf, n, "%s/%s", s, REL);
        if (access(buf, R_OK) == 0)
            return EPLB_OK;
        return eplb_error_set(EPLB_ERR_IO, "no default --weights: EPLB_SHARED_DIR=%s has no "
                              "readable %s; %s %s", s, REL, FIX, REL);
    }
    char first[4096 + 8] = ""; /* $EPLB_SRCDIR's, for the message */
    s = getenv("EPLB_SRCDIR");
    if (s && *s) {
        snprintf(buf, n, "%s/../shared/%s", s, REL);
        if (access(buf, R_OK) == 0)
            return EPLB_OK;
        snprintf(first, sizeof first, "%s or ", buf);
    }
    beside_source(buf, n);
    if (access(buf, R_OK) == 0)
        return EPLB_OK;
    return eplb_error_set(EPLB_ERR_IO, "no default --weights: cannot read %s%s; %s %s", first,
                          buf, FIX, REL);
}

/* The MoE rows (not all zero) of a loads file, read as rebalance reads it
 * (eplb_weights_load: a 3-D time series summed over its steps). */
static eplb_status_t load_moe_rows(float **out, int *L_out, int *E_out, const char *path)
{
    float *m = NULL, *series = NULL;
    int L = 0, E = 0, S = 0;
    eplb_status_t st = eplb_weights_load(&m, &L, &E, &series, &S, path);
    free(series);
    if (st != EPLB_OK)
        return st;
    int k = 0;
    for (int l = 0; l < L; l++) {
        int any = 0;
        for (int e = 0; e < E && !any; e++)
            any = m[(size_t)l * E + e] != 0;
        if (any)
            memmove(m + (size_t)k++ * E, m + (size_t)l * E, (size_t)E * sizeof *m);
    }
    if (k == 0) {
        free(m);
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: every layer is all zero", path);
    }
    *out = m;
    *L_out = k;
    *E_out = E;
    return EPLB_OK;
}

enum { OPT_POLICY = 256, OPT_WEIGHTS, OPT_REPEAT, OPT_MAX_MOVES, OPT_JSON };

static const struct option LONGOPTS[] = {
    {"policy", required_argument, NULL, OPT_POLICY},
    {"weights", required_argument, NULL, OPT_WEIGHTS},
    {"repeat", required_argument, NULL, OPT_REPEAT},
    {"max-moves", required_argument, NULL, OPT_MAX_MOVES},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int eplb_bench_policy(int argc, char **argv)
{
    const char *only = NULL, *path = NULL;
    int repeat = 0, json = 0, max_moves = 16, moves_given = 0;
    char pbuf[4096];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        const struct option *opt = NULL;
        const char *val = NULL;
        int64_t v = 0;
        eplb_status_t st = eplb_cli_next_opt(&opt, &val, argc, argv, &i, LONGOPTS);
        if (st == EPLB_OK && opt->val == OPT_REPEAT)
            st = eplb_cli_int_parse(&v, val, "--repeat", 1, 1000000);
        if (st == EPLB_OK && opt->val == OPT_MAX_MOVES)
            st = eplb_cli_int_parse(&v, val, "--max-moves", -1, 1000000);
        if (st != EPLB_OK)
            return eplb_cmd_fail(CMD, st);
        switch (opt->val) {
        case OPT_POLICY: only = val; break;
        case OPT_WEIGHTS: path = val; break;
        case OPT_REPEAT: repeat = (int)v; break;
        case OPT_MAX_MOVES:
            max_moves = (int)v, moves_given = 1;
            break;
        case OPT_JSON: json = 1; break;
        }
    }
    if (only && !eplb_policy_find(only))
        return eplb_cmd_fail(CMD, eplb_policy_unknown(only, 0));
    /* as rebalance: an option that would change nothing is refused */
    if (moves_given && only && strcmp(only, "migration-aware"))
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                 "--max-moves applies to --policy "
                                                 "migration-aware only (%s does not take it)",
                                                 only));
    if (path && !*path)
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG, "--weights: empty path"));
    if (!path) {
        eplb_status_t st = default_path(pbuf, sizeof pbuf);
        if (st != EPLB_OK)
            return eplb_cmd_fail(CMD, st);
        path = pbuf;
    }

    eplb_status_t st = EPLB_OK;
    float *w = NULL;
    int32_t *out = NULL, *rank = NULL;
    double *times = NULL, *load = NULL;
    int L = 0, E = 0, rc = 0;
    const int P = 288, G = 8, N = 4, D = 32;
    EPLB_CHECK_GOTO(load_moe_rows(&w, &L, &E, path), st, done);
    out = malloc((size_t)L * P * sizeof *out);
    rank = malloc((size_t)L * P * sizeof *rank);
    load = malloc((size_t)L * D * sizeof *load);
    times = malloc((size_t)(repeat > 50 ? repeat : 50) * sizeof *times);
    EPLB_ALLOC_GOTO(out, st, done);
    EPLB_ALLOC_GOTO(rank, st, done);
    EPLB_ALLOC_GOTO(load, st, done);
    EPLB_ALLOC_GOTO(times, st, done);

    eplb_policy_args_t args = EPLB_POLICY_ARGS_INIT;
    args.num_replicas = P;
    args.num_groups = G;
    args.num_nodes = N;
    args.num_gpus = D;
    args.max_moves = max_moves;
    /* the file must fit the benchmark's fixed topology: say which file */
    if (eplb_policy_args_check(&args, L, E, w) != EPLB_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", eplb_error_last());
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s (--weights): %s (the benchmark uses P=%d "
                            "G=%d N=%d D=%d)", path, why, P, G, N, D);
        goto done;
    }
    size_t np;
    const eplb_policy_t *tab = eplb_policy_table(&np);
    if (!json)
        printf("%-18s %12s %12s %6s %14s   (%d layers x %d experts, P=%d G=%d N=%d D=%d)\n",
               "policy", "median_us", "min_us", "calls", "balancedness", L, E, P, G, N, D);
    for (size_t i = 0; i < np; i++) {
        if (only && strcmp(only, tab[i].name))
            continue;
        int R = repeat ? repeat : (!strcmp(tab[i].name, "migration-aware") ? 5 : 50);
        EPLB_CHECK_GOTO(tab[i].fn(out, rank, w, L, E, &args), st, done); /* warm-up */
        for (int r = 0; r < R; r++) {
            double t0 = eplb_now();
            EPLB_CHECK_GOTO(tab[i].fn(out, rank, w, L, E, &args), st, done);
            times[r] = (eplb_now() - t0) * 1e6; /* us */
        }
        qsort(times, (size_t)R, sizeof *times, cmp_double);
        double med = R % 2 ? times[R / 2] : (times[R / 2 - 1] + times[R / 2]) / 2;
        eplb_placement_gpu_load(load, out, w, L, E, P, D);
        double bal = 0;
        for (int l = 0; l < L; l++)
            bal += eplb_placement_balancedness(load + (size_t)l * D, D);
        bal /= L;
        if (json)
            printf("{\"policy\": \"%s\", \"median_us\": %.1f, \"min_us\": %.1f, \"layers\": %d, "
                   "\"experts\": %d, \"replicas\": %d, \"groups\": %d, \"nodes\": %d, "
                   "\"gpus\": %d, \"repeat\": %d, \"balancedness\": %.6f}\n",
                   tab[i].name, med, times[0], L, E, P, G, N, D, R, bal);
        else
            printf("%-18s %12.1f %12.1f %6d %14.4f\n", tab[i].name, med, times[0], R, bal);
        fflush(stdout);
    }
done:
    if (st != EPLB_OK)
        rc = eplb_cmd_fail(CMD, st);
    free(w);
    free(out);
    free(rank);
    free(load);
    free(times);
    return rc;
}
