/* cmd_run.c - `eplb-replay [run] TRACE.h5 ...`: replay a trace under one or
 * more policies (and a grid of GPUs / redundancy / window / interval) and
 * report what load balancing costs and gains (docs/simulator.md). */
#include "cmd.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "cli_util.h"
#include "decimal.h"
#include "json.h"
#include "sim.h"
#include "tmpfile_guard.h"

#define MAX_LIST 64
/* --device auto takes the GPU from this many bytes of raw logits on, and
 * from AUTO_GPU_BYTES_PER_THREAD per decode thread: the CPU replay decodes
 * and routes on every core, the GPU replay starts CUDA first (0.2-0.3 s),
 * so on 16 cores the CPU was faster up to 1.5 GB and the GPU from 6 GB on
 * (runs 53-54, docs/perf/sim.md); with the stages in huge pages and the
 * first rows decoded while CUDA starts the two were about even at 1.5 GB
 * (runs 62-67); with the traffic counted on the GPU and the reads carried
 * across blocks the GPU was faster from 2.3 GB on (1.09-1.24 s against
 * 1.29-1.32 at 2.3 GB, 1.40-1.43 against 1.75-1.81 at 3.1 GB, run 77), so
 * 128 MiB per thread (2 GiB on 16 cores) instead of 192 */
#define AUTO_GPU_BYTES ((size_t)128 << 20)
#define AUTO_GPU_BYTES_PER_THREAD ((size_t)128 << 20)

static size_t auto_gpu_bytes(void)
{
    /* EPLB_AUTO_GPU_BYTES: the threshold in bytes (0: whenever the trace
     * has logits; docs/environment.md) */
    const char *v = getenv("EPLB_AUTO_GPU_BYTES");
    int64_t b = 0;
    const int rc = v ? eplb_decimal_parse(&b, v) : EINVAL;
    if (rc == 0 && b >= 0)
        return (size_t)b;
    if (rc == ERANGE && v[0] != '-') /* past int64 (2^64 - 1 was "never"): never */
        return SIZE_MAX;
    const size_t t = (size_t)eplb_num_threads() * AUTO_GPU_BYTES_PER_THREAD;
    return t > AUTO_GPU_BYTES ? t : AUTO_GPU_BYTES;
}
/* Environment tunable: where the device resolves to the GPU, replica
 * selection and recording run there too unless this is "0"
 * (docs/simulator.md).  On the CPU: no effect. */
#define GPU_SELECT_ENV "EPLB_GPU_SELECT"

/* With EPLB_TIMINGS=1: the wall time since t0 of `what`, on stderr
 * (docs/simulator.md) */
static void timing(const char *what, double t0)
{
    if (eplb_env_on("EPLB_TIMINGS"))
        fprintf(stderr, "eplb-replay: timings: %s %.3f s\n", what, eplb_now() - t0);
}

/* eplb_gpu_open, timed (starting CUDA is a fixed cost of every GPU replay;
 * docs/perf/sim.md) */
static eplb_status_t gpu_open_timed(eplb_gpu_t **gpu)
{
    double t0 = eplb_now();
    eplb_status_t st = eplb_gpu_open(gpu, -1);
    timing("starting the GPU", t0);
    return st;
}

/* Logits decoded ahead while CUDA starts: at most 1 GiB and an eighth of
 * the memory */
#define PREFETCH_BYTES ((size_t)1 << 30)
static size_t prefetch_bytes(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    const size_t mem8 = pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz / 8 : 0;
    return mem8 && mem8 < PREFETCH_BYTES ? mem8 : PREFETCH_BYTES;
}

/* gpu_open_timed while the source decodes its first rows on a helper
 * thread (eplb_sim_source_prefetch): starting CUDA takes 0.2-0.4 s in
 * which the cores would otherwise idle (docs/perf/sim.md) */
static eplb_status_t gpu_open_prefetch(eplb_gpu_t **gpu, eplb_sim_source_t *src)
{
    eplb_sim_source_prefetch(src, prefetch_bytes());
    eplb_status_t st = gpu_open_timed(gpu);
    double secs = 0;
    const int64_t rows = eplb_sim_source_prefetch_stop(src, &secs);
    if (rows > 0 && eplb_env_on("EPLB_TIMINGS"))
        fprintf(stderr, "eplb-replay: timings: decoded while the GPU started: %lld tokens in %.3f s\n",
                (long long)rows, secs);
    return st;
}
#define MAX_POLICIES 32
/* bounds of the integer options: beyond them the run state (slots x layers
 * x experts per run) would not fit in memory or an int */
#define MAX_GPUS EPLB_MAX_GPUS   /* cli_util.h: what rebalance accepts too */
#define MAX_SLOTS EPLB_MAX_SLOTS
#define MAX_STEPS ((int64_t)1 << 40)
#define MAX_LAYER_SLOTS EPLB_MAX_LAYER_SLOTS
/* runs of one invocation (each holds its placement, loads and results) */
#define MAX_RUNS 65536

static void usage(FILE *f)
{
    fprintf(f,
        "usage: eplb-replay [run] TRACE.h5 [options]\n"
        "\n"
        "Replay TRACE.h5 step by step: route each step's tokens once, then for every\n"
        "policy select replicas under its own placement, record the load, rearrange on\n"
        "the chosen schedule, and model what each step costs (expert compute of the\n"
        "slowest GPU, dispatch/combine, mapping/recording overhead, weight moves).\n"
        "`none` is always evaluated as the baseline of the gain.\n"
        "\n"
        "workload:\n"
        "  --policy LIST        policies, comma separated (default deepseek); `oracle` is\n"
        "                       deepseek fed the NEXT window (an upper bound), on the\n"
        "                       oracle schedule whatever --trigger says\n"
        "  --gpus LIST          EP size D (default 8)\n"
        "  --nodes N            nodes (default 1; D %% N == 0)\n"
        "  --redundant LIST     redundant slots R (default D): P = E + R rounded up to a\n"
        "                       multiple of D\n"
        "  --replicas P         physical slots per layer instead (P %% D == 0, P >= E)\n"
        "  --select MODE        hash|flatmod|random|local|rr-block|balanced (default hash;\n"
        "                       a counts-only trace: each count split evenly, or balanced)\n"
        "schedule:\n"
        "  --trigger T          vllm|sglang|trtllm|threshold|once|oracle (default vllm;\n"
        "                       once for traces of fewer than 4 steps)\n"
        "  --window LIST        steps of load a decision uses (default: 1000, scaled\n"
        "                       down to the trace: I/3 of the smallest interval;\n"
        "                       sglang I; trtllm S/8 warm-up); not with --trigger once\n"
        "  --interval LIST      steps between decisions (default: S/4 clamped to\n"
        "                       [4, 3000], sglang [2, 1000]; trtllm 1; at least the\n"
        "                       largest --window); vllm starts after I/4 steps\n"
        "  --async MODE         off (all layers at once) | layers (one layer per step)\n"
        "                       | chunk:K (K layers per step; trtllm: layers per decision)\n"
        "  --threshold X        threshold trigger: rearrange when balancedness < X (0.9;\n"
        "                       only with --trigger threshold)\n"
        "  --ema-decay X        trtllm EMA decay (0.95; only with --trigger trtllm)\n"
        "  --max-moves M        migration-aware policy: slot changes per layer and\n"
        "                       rearrangement (default 16, as rebalance's; -1: no limit,\n"
        "                       then up to ~1 s per layer at 4096 slots: on a terminal\n"
        "                       \"layer N of L\" shows on stderr after 2 s)\n"
        "cost model:\n"
        "  --profile FILE       hardware profile (default sim/profiles/h100-8gpu-ib400.txt,\n"
        "                       built in)\n"
        "  --policy-time S      charge S seconds (at most 86400) per policy run instead\n"
        "                       of measuring it (makes every output bit-reproducible;\n"
        "                       default: measured)\n"
        "run:\n"
        "  --device D           auto|cpu|gpu: where logits are routed (default auto: the\n"
        "                       GPU if the build has CUDA, a GPU is usable and the trace\n"
        "                       has >= 128 MiB of logits per core (at least 128 MiB; 2\n"
        "                       GiB on 16 cores), else cpu; on the GPU, replica\n"
        "                       selection and load recording run there too, overlapped\n"
        "                       with decoding the next block, unless EPLB_GPU_SELECT=0;\n"
        "                       the model runs on the CPU; gpu is refused for a trace\n"
        "                       without logits)\n"
        "  --threads N          worker threads for the runs (default: EPLB_THREADS or\n"
        "                       the CPU count)\n"
        "  --seed N             seed of random replica selection (default 0; only with\n"
        "                       --select random)\n"
        "  --out DIR            write config.json, summary.json, summary.csv, results.h5,\n"
        "                       report.txt (the text of the table and notes)\n"
        "  --json               print {\"config\": ..., \"runs\": [...]} instead of the table\n"
        "  --quiet              no configuration lines, no progress, no notes under the\n"
        "                       table (notes on options left unused still go to stderr)\n"
        "  -h, --help           this text\n"
        "\n"
        "Lists (comma separated) of --gpus, --redundant, --window, --interval run the\n"
        "whole grid in one invocation (each value once; two --redundant values that give\n"
        "the same P run once). Exit status: 0 ok, 1 runtime error, 2 usage.\n");
}

typedef struct {
    const char *trace_path;
    const char *policies[MAX_POLICIES];
    int npol;
    int64_t gpus[MAX_LIST], redundant[MAX_LIST], window[MAX_LIST], interval[MAX_LIST];
    int ngpus, nred, nwin, nint;
    int nodes;
    int replicas;               /* 0: from --redundant */
    eplb_select_mode_t select;
    eplb_trigger_t trig;
    int trigger_set;            /* --trigger given */
    int threshold_set, ema_set, max_moves_set, async_set, select_set, seed_set;
    int max_moves;
    const char *profile_path;
    double policy_time;
    const char *device;
    char device_used[192];      /* resolved: "cpu", "gpu (NAME)", ... */
    int threads;
    uint64_t seed;
    const char *out_dir;
    int json, quiet;
    char notes[32][320];        /* said on stderr before the replay; report.txt too */
    int nnotes, notes_lost;     /* notes_lost: past the 32 kept */
} opts_t;

/* A note on an option not used as given: on stderr (also under --quiet),
 * and kept for report.txt. */
__attribute__((format(printf, 2, 3))) static void run_note(opts_t *o, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    fputs("eplb-replay run: ", stderr); /* whole, however long the paths */
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (o->nnotes < (int)(sizeof o->notes / sizeof o->notes[0]))
        vsnprintf(o->notes[o->nnotes++], sizeof o->notes[0], fmt, ap2);
    else
        o->notes_lost++;
    va_end(ap2);
}

/* Parse a comma separated list of integers in [min, max] into v (at most
 * MAX_LIST values); an empty element ("4,", "4,,8") is an error. */
static eplb_status_t parse_list(int64_t *v, int *n, const char *s, const char *opt,
                                int64_t min, int64_t max)
{
    *n = 0;
    const char *t = s;
    for (;;) {
        const char *comma = strchr(t, ',');
        size_t len = comma ? (size_t)(comma - t) : strlen(t);
        char item[64];
        if (len == 0) {
            if (!comma && *n == 0 && t == s)
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: empty list", opt);
            return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: empty element in '%s'", opt,
                                  s);
        }
        snprintf(item, sizeof item, "%.*s", (int)(len < 63 ? len : 63), t);
        int64_t x = 0;
        const int rc = len < sizeof item ? eplb_decimal_parse(&x, item) : EINVAL;
        if (rc == ERANGE)
            return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: %s is outside [%lld, %lld]", opt,
                                  item, (long long)min, (long long)max);
        if (rc)
            return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: '%s' is not an integer", opt,
                                  item);
        if (x < min || x > max)
            return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: %lld is outside [%lld, %lld]",
                                  opt, (long long)x, (long long)min, (long long)max);
        if (*n >= MAX_LIST)
            return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: more than %d values", opt,
                                  MAX_LIST);
        v[(*n)++] = x;
        if (!comma)
            return EPLB_OK;
        t = comma + 1;
    }
}

static eplb_status_t parse_num(double *out, const char *s, const char *opt)
{
    double x = 0;
    const int rc = eplb_decimal_parse_double(&x, s);
    if (rc == ERANGE)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: '%s' is beyond the range of a double",
                              opt, s);
    if (rc)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: '%s' is not a number", opt, s);
    *out = x;
    return EPLB_OK;
}

enum {
    OPT_POLICY = 256, OPT_GPUS, OPT_NODES, OPT_REDUNDANT, OPT_REPLICAS, OPT_SELECT,
    OPT_TRIGGER, OPT_WINDOW, OPT_INTERVAL, OPT_ASYNC, OPT_THRESHOLD, OPT_EMA,
    OPT_MAXMOVES, OPT_PROFILE, OPT_POLTIME, OPT_DEVICE, OPT_THREADS, OPT_SEED,
    OPT_OUT, OPT_JSON, OPT_QUIET
};

/* A value given twice in a grid list would run the same point twice. */
static eplb_status_t check_repeats(const int64_t *v, int n, const char *opt)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (v[i] == v[j])
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "--%s: %lld is listed twice", opt,
                                      (long long)v[i]);
    return EPLB_OK;
}

static int has_policy(const opts_t *o, const char *name)
{
    for (int i = 0; i < o->npol; i++)
        if (!strcmp(o->policies[i], name))
            return 1;
    return 0;
}

/* Whether some run has a window and interval: not under trigger once
 * without the oracle, not with --policy none alone (their runs show null) */
static int has_schedule(const opts_t *o)
{
    int online = 0;
    for (int i = 0; i < o->npol; i++)
        online |= strcmp(o->policies[i], "none") != 0;
    return online && !(o->trig.kind == EPLB_TRIGGER_ONCE && !has_policy(o, "oracle"));
}

/* Whether config.json and the report name the trigger: where a run has a
 * schedule, and under once (its placement is from the whole trace) */
static int shows_trigger(const opts_t *o)
{
    return has_schedule(o) || o->trig.kind == EPLB_TRIGGER_ONCE;
}

/* Options given for something that does not run are refused, not ignored
 * (the oracle keeps its own schedule whatever --trigger says). */
static eplb_status_t check_applies(const opts_t *o)
{
    EPLB_CHECK(check_repeats(o->gpus, o->ngpus, "gpus"));
    EPLB_CHECK(check_repeats(o->redundant, o->nred, "redundant"));
    EPLB_CHECK(check_repeats(o->window, o->nwin, "window"));
    EPLB_CHECK(check_repeats(o->interval, o->nint, "interval"));
    const char *tn = eplb_sim_trigger_name(o->trig.kind);
    int online = 0; /* policies other than none and oracle: they use --trigger */
    for (int i = 0; i < o->npol; i++)
        online |= strcmp(o->policies[i], "none") && strcmp(o->policies[i], "oracle");
    if (o->trigger_set && !online && o->trig.kind != EPLB_TRIGGER_VLLM &&
        o->trig.kind != EPLB_TRIGGER_ORACLE)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--trigger %s: no policy of --policy uses it (oracle decides on "
                              "its own schedule: as vllm, on the next window)", tn);
    /* none alone never rearranges: no schedule applies; under once only the
     * oracle has one */
    const int oracle = has_policy(o, "oracle"), rearranges = online || oracle;
    const int once_only = o->trig.kind == EPLB_TRIGGER_ONCE && !oracle;
    const char *sched = o->trigger_set ? "--trigger" : o->nwin ? "--window" : o->nint ? "--interval"
                        : o->async_set ? "--async" : NULL;
    if (!rearranges && sched)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "%s: --policy none never rearranges (no schedule applies)", sched);
    if (o->async_set && once_only)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--async does not apply to --trigger once (its placement is "
                              "deployed before step 0, no layers switch during the run)");
    if (o->threshold_set && o->trig.kind != EPLB_TRIGGER_THRESHOLD)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--threshold applies to --trigger threshold only (the trigger "
                              "is %s)", tn);
    if (o->ema_set && o->trig.kind != EPLB_TRIGGER_TRTLLM)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--ema-decay applies to --trigger trtllm only (the trigger is "
                              "%s)", tn);
    if (o->max_moves_set && !has_policy(o, "migration-aware"))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--max-moves applies to --policy migration-aware only");
    if ((o->nwin || o->nint) && once_only)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--%s does not apply to --trigger once (one placement from the "
                              "whole trace)", o->nwin ? "window" : "interval");
    if (o->seed_set && o->select != EPLB_SELECT_RANDOM)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--seed applies to --select random only (the selection is %s)",
                              eplb_select_mode_name(o->select));
    return EPLB_OK;
}

static eplb_status_t parse_args(opts_t *o, int argc, char **argv, int *help)
{
    static const struct option lo[] = {
        {"policy", required_argument, 0, OPT_POLICY},
        {"gpus", required_argument, 0, OPT_GPUS},
        {"nodes", required_argument, 0, OPT_NODES},
        {"redundant", required_argument, 0, OPT_REDUNDANT},
        {"replicas", required_argument, 0, OPT_REPLICAS},
        {"select", required_argument, 0, OPT_SELECT},
        {"trigger", required_argument, 0, OPT_TRIGGER},
        {"window", required_argument, 0, OPT_WINDOW},
        {"interval", required_argument, 0, OPT_INTERVAL},
        {"async", required_argument, 0, OPT_ASYNC},
        {"threshold", required_argument, 0, OPT_THRESHOLD},
        {"ema-decay", required_argument, 0, OPT_EMA},
        {"max-moves", required_argument, 0, OPT_MAXMOVES},
        {"profile", required_argument, 0, OPT_PROFILE},
        {"policy-time", required_argument, 0, OPT_POLTIME},
        {"device", required_argument, 0, OPT_DEVICE},
        {"threads", required_argument, 0, OPT_THREADS},
        {"seed", required_argument, 0, OPT_SEED},
        {"out", required_argument, 0, OPT_OUT},
        {"json", no_argument, 0, OPT_JSON},
        {"quiet", no_argument, 0, OPT_QUIET},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int64_t one[MAX_LIST];
    int n, c;
    optind = 1;
    opterr = 0;
    while ((c = eplb_cli_getopt(argc, argv, ":h", lo)) != -1) {
        switch (c) {
        case 'h':
            *help = 1;
            return EPLB_OK;
        case OPT_POLICY: {
            static char buf[1024];
            size_t len = strlen(optarg);
            if (len >= sizeof buf)
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "--policy: list too long");
            if (len && (optarg[0] == ',' || optarg[len - 1] == ',' || strstr(optarg, ",,")))
                return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                      "--policy: empty element in '%s'", optarg);
            snprintf(buf, sizeof buf, "%s", optarg);
            o->npol = 0;
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o->npol >= MAX_POLICIES)
                    return eplb_error_set(EPLB_ERR_INVALID_ARG, "--policy: too many");
                if (strcmp(t, "oracle") && !eplb_policy_find(t))
                    return eplb_policy_unknown(t, 1);
                for (int k = 0; k < o->npol; k++)
                    if (!strcmp(o->policies[k], t))
                        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                              "--policy: '%s' is listed twice", t);
                o->policies[o->npol++] = t;
            }
            if (o->npol == 0)
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "--policy: empty list");
            break;
        }
        case OPT_GPUS:
            EPLB_CHECK(parse_list(o->gpus, &o->ngpus, optarg, "--gpus", 1, MAX_GPUS));
            break;
        case OPT_NODES:
            EPLB_CHECK(parse_list(one, &n, optarg, "--nodes", 1, MAX_GPUS));
            if (n != 1)
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "--nodes: one value");
            o->nodes = (int)one[0];
            break;
        case OPT_REDUNDANT:
            EPLB_CHECK(parse_list(o->redundant, &o->nred, optarg, "--redundant", 0, MAX_SLOTS));
            break;
        case OPT_REPLICAS:
            EPLB_CHECK(parse_list(one, &n, optarg, "--replicas", 1, MAX_SLOTS));
            if (n != 1)
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "--replicas: one value");
            o->replicas = (int)one[0];
            break;
        case OPT_SELECT:
            if (eplb_select_mode_parse(&o->select, optarg) != EPLB_OK) {
                char why[256];
                snprintf(why, sizeof why, "%s", eplb_error_last());
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "--select: %s", why);
            }
            o->select_set = 1;
            break;
        case OPT_TRIGGER:
            EPLB_CHECK(eplb_sim_trigger_parse(&o->trig.kind, optarg));
            o->trigger_set = 1;
            break;
        case OPT_WINDOW:
            EPLB_CHECK(parse_list(o->window, &o->nwin, optarg, "--window", 1, MAX_STEPS));
            break;
        case OPT_INTERVAL:
            EPLB_CHECK(parse_list(o->interval, &o->nint, optarg, "--interval", 1, MAX_STEPS));
            break;
        case OPT_ASYNC:
            EPLB_CHECK(eplb_sim_async_parse(&o->trig.async, &o->trig.chunk, optarg));
            o->async_set = 1;
            break;
        case OPT_THRESHOLD:
            EPLB_CHECK(parse_num(&o->trig.threshold, optarg, "--threshold"));
            o->threshold_set = 1;
            break;
        case OPT_EMA:
            EPLB_CHECK(parse_num(&o->trig.ema_decay, optarg, "--ema-decay"));
            o->ema_set = 1;
            break;
        case OPT_MAXMOVES: {
            /* an integer (1e30 and 16.0 were taken, past int64 clamped) */
            int64_t m;
            EPLB_CHECK(eplb_cli_int_parse(&m, optarg, "--max-moves", -1, INT64_MAX));
            /* more than MAX_SLOTS (>= any P) is no tighter a limit; keeps the
             * policy's arithmetic inside int */
            o->max_moves = m > MAX_SLOTS ? MAX_SLOTS : (int)m;
            o->max_moves_set = 1;
            break;
        }
        case OPT_PROFILE:
            o->profile_path = optarg;
            break;
        case OPT_POLTIME:
            if (!strcmp(optarg, "measured")) {
                o->policy_time = -1;
            } else {
                EPLB_CHECK(parse_num(&o->policy_time, optarg, "--policy-time"));
                /* at most a day per decision: beyond that the modelled
                 * times overflow to inf in the sums (1e308 gave inf and
                 * null in the output) */
                if (!(o->policy_time >= 0 && o->policy_time <= 86400))
                    return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                          "--policy-time: must be in [0, 86400] seconds or "
                                          "'measured'");
            }
            break;
        case OPT_DEVICE:
            if (strcmp(optarg, "auto") && strcmp(optarg, "cpu") && strcmp(optarg, "gpu"))
                return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                      "--device: '%s' is not auto, cpu or gpu", optarg);
            o->device = optarg;
            break;
        case OPT_THREADS:
            EPLB_CHECK(parse_list(one, &n, optarg, "--threads", 1, 4096));
            if (n != 1)
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "--threads: one value");
            o->threads = (int)one[0];
            break;
        case OPT_SEED:
            EPLB_CHECK(parse_list(one, &n, optarg, "--seed", 0, INT64_MAX));
            if (n != 1)
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "--seed: one value");
            o->seed = (uint64_t)one[0];
            o->seed_set = 1;
            break;
        case OPT_OUT:
            o->out_dir = optarg;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case OPT_QUIET:
            o->quiet = 1;
            break;
        default:
            return eplb_cli_getopt_fail(c, argv);
        }
    }
    if (optind >= argc)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "missing TRACE.h5 (see --help)");
    if (optind + 1 < argc)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "unexpected argument '%s'",
                              argv[optind + 1]);
    o->trace_path = argv[optind];
    if (!*o->trace_path)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "TRACE.h5: empty path");
    if (o->out_dir && !*o->out_dir)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--out: empty path");
    if (o->profile_path && !*o->profile_path)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--profile: empty path");
    if (o->replicas && o->nred)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--redundant and --replicas exclude each other");
    return check_applies(o);
}

/* Window / interval defaults: the serving systems' values, scaled down to
 * the trace so that a short trace still sees several decisions. */
static void scaled_defaults(int64_t *W, int64_t *I, eplb_trigger_kind_t kind, int64_t S)
{
    int64_t i = 0, w = 0;
    switch (kind) {
    case EPLB_TRIGGER_SGLANG:
        i = S / 4 < 1000 ? S / 4 : 1000;
        if (i < 2)
            i = 2;
        w = i;
        break;
    case EPLB_TRIGGER_TRTLLM:
        i = 1;
        w = S / 8 < 1000 ? S / 8 : 1000; /* EMA warm-up steps */
        if (w < 1)
            w = 1;
        break;
    case EPLB_TRIGGER_ONCE:
        i = w = 1;
        break;
    default:
        i = S / 4 < 3000 ? S / 4 : 3000;
        if (i < 4)
            i = 4;
        w = i / 3 < 1000 ? i / 3 : 1000;
        if (w < 1)
            w = 1;
    }
    *W = w;
    *I = i;
}

/* The window and interval lists of trigger `kind`: those given, and for a
 * list not given the default of the kind scaled to S steps (an interval at
 * least the largest window given, a window at most the smallest interval,
 * except for trtllm, whose window is a warm-up). */
static void resolve_schedule(int64_t *win, int *nwin, int64_t *itv, int *nint, const opts_t *o,
                             eplb_trigger_kind_t kind, int64_t S)
{
    int64_t dW, dI;
    scaled_defaults(&dW, &dI, kind, S);
    *nwin = o->nwin;
    *nint = o->nint;
    memcpy(win, o->window, sizeof *win * (size_t)o->nwin);
    memcpy(itv, o->interval, sizeof *itv * (size_t)o->nint);
    if (!*nint) {
        int64_t i = dI;
        if (*nwin && kind != EPLB_TRIGGER_TRTLLM)
            for (int k = 0; k < *nwin; k++)
                if (win[k] > i)
                    i = win[k];
        itv[(*nint)++] = i;
    }
    if (!*nwin) {
        int64_t w = dW;
        if (o->nint && kind != EPLB_TRIGGER_TRTLLM && kind != EPLB_TRIGGER_ONCE) {
            /* the kind's window rule on the smallest interval given (vllm,
             * threshold, oracle: I/3 in [1, 1000]; sglang: I, the whole
             * buffer since the last rebalance), not on the default interval
             * (docs/simulator.md, the defaults table) */
            int64_t imin = itv[0];
            for (int k = 1; k < *nint; k++)
                if (itv[k] < imin)
                    imin = itv[k];
            w = kind == EPLB_TRIGGER_SGLANG ? imin : imin / 3 < 1000 ? imin / 3 : 1000;
            if (w < 1)
                w = 1;
        }
        win[(*nwin)++] = w;
    }
}

typedef struct {
    const opts_t *o;
    const eplb_trace_info_t *inf;
    const eplb_sim_opts_t *so;
    const eplb_sim_result_t *res;
    int nres;
    int64_t route_rows, route_differ; /* routing vs recorded topk ids */
} out_ctx_t;

/* Whether --select acts on the trace: every mode on a trace with per-token
 * routing, only balanced (planned from the counts) on a counts-only one,
 * where the per-token modes are an even split of each count. */
static int select_acts(eplb_select_mode_t mode, const eplb_trace_info_t *inf)
{
    return (inf->levels & (EPLB_LEVEL_LOGITS | EPLB_LEVEL_TOPK)) || mode == EPLB_SELECT_BALANCED;
}

static void write_i64_list(FILE *f, const int64_t *v, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, i ? ", %lld" : "%lld", (long long)v[i]);
    fputc(']', f);
}

static void write_config(FILE *f, void *p)
{
    const out_ctx_t *c = p;
    const opts_t *o = c->o;
    const eplb_sim_opts_t *so = c->so;
    fputs("{\"trace\": ", f);
    eplb_json_write_string(f, o->trace_path);
    fputs(", \"model\": ", f);
    eplb_json_write_string(f, c->inf->model);
    fprintf(f, ", \"num_layers\": %d, \"num_experts\": %d, \"top_k\": %d, "
               "\"num_steps\": %lld, \"num_tokens\": %lld, \"level\": \"%s\"",
            c->inf->num_layers, c->inf->route.num_experts, c->inf->route.top_k,
            (long long)c->inf->num_steps, (long long)c->inf->num_tokens,
            c->inf->levels & EPLB_LEVEL_LOGITS ? "logits"
            : c->inf->levels & EPLB_LEVEL_TOPK ? "topk_ids"
                                               : "counts");
    fputs(", \"policies\": [", f);
    for (int i = 0; i < o->npol; i++) {
        if (i)
            fputs(", ", f);
        eplb_json_write_string(f, o->policies[i]);
    }
    fputs("], \"gpus\": ", f);
    write_i64_list(f, o->gpus, o->ngpus);
    fprintf(f, ", \"nodes\": %d", o->nodes);
    if (o->replicas)
        fprintf(f, ", \"replicas\": %d", o->replicas);
    else {
        /* numbers either way: by default R = D, one value per --gpus value
         * (paired with it, not a grid axis: redundant_from says which) */
        fputs(", \"redundant\": ", f);
        if (o->nred)
            write_i64_list(f, o->redundant, o->nred);
        else
            write_i64_list(f, o->gpus, o->ngpus);
        fprintf(f, ", \"redundant_from\": \"%s\"", o->nred ? "option" : "gpus");
    }
    /* null where no run has a window (as the runs' own fields) */
    const int no_window = !has_schedule(o);
    fputs(", \"window\": ", f);
    if (no_window)
        fputs("null", f);
    else
        write_i64_list(f, o->window, o->nwin);
    fputs(", \"interval\": ", f);
    if (no_window)
        fputs("null", f);
    else
        write_i64_list(f, o->interval, o->nint);
    /* null where the mode does not act, and none alone has no trigger */
    fputs(", \"select\": ", f);
    if (select_acts(o->select, c->inf))
        eplb_json_write_string(f, eplb_select_mode_name(o->select));
    else
        fputs("null", f);
    fputs(", \"trigger\": ", f);
    if (!shows_trigger(o))
        fputs("null", f);
    else
        eplb_json_write_string(f, eplb_sim_trigger_name(o->trig.kind));
    fprintf(f, ", \"async\": \"%s\", \"chunk\": %d, \"threshold\": ",
            o->trig.async == EPLB_ASYNC_OFF      ? "off"
            : o->trig.async == EPLB_ASYNC_LAYERS ? "layers"
                                                 : "chunk",
            o->trig.chunk);
    eplb_json_write_number(f, o->trig.threshold);
    fputs(", \"ema_decay\": ", f);
    eplb_json_write_number(f, o->trig.ema_decay);
    fprintf(f, ", \"max_moves\": %d, \"seed\": %llu, \"device\": ", o->max_moves,
            (unsigned long long)o->seed);
    eplb_json_write_string(f, o->device_used);
    fputs(", \"policy_time\": ", f);
    if (o->policy_time < 0)
        fputs("\"measured\"", f);
    else
        eplb_json_write_number(f, o->policy_time);
    fputs(", \"profile\": {\"name\": ", f);
    eplb_json_write_string(f, so->prof.name);
    fputs(", \"file\": ", f);
    eplb_json_write_string(f, o->profile_path ? o->profile_path : "(built in)");
    const eplb_profile_t *pf = &so->prof;
    const struct {
        const char *key;
        double v;
    } pv[] = {{"nvlink_Bps", pf->nvlink_bw},      {"net_Bps", pf->net_bw},
              {"nvlink_latency_s", pf->nvlink_lat}, {"net_latency_s", pf->net_lat},
              {"hbm_Bps", pf->hbm_bw},            {"fp8_flops", pf->flops_fp8},
              {"bf16_flops", pf->flops_bf16},     {"gemm_efficiency", pf->gemm_eff}};
    for (size_t i = 0; i < sizeof pv / sizeof pv[0]; i++) {
        fprintf(f, ", \"%s\": ", pv[i].key);
        eplb_json_write_number(f, pv[i].v);
    }
    fprintf(f, ", \"gemm_tables\": %d, \"record_table_points\": %d, \"record_s\": ",
            pf->ntables, pf->record_n);
    if (pf->record_s < 0) /* not given: the table or the fraction */
        fputs("null", f);
    else
        eplb_json_write_number(f, pf->record_s);
    fputs(", \"record_fraction\": ", f);
    eplb_json_write_number(f, pf->record_frac);
    fputc('}', f);
    fprintf(f, ", \"expert_shape\": {\"hidden\": %d, \"inter\": %d, \"weight_bytes\": %g, "
               "\"expert_bytes\": %.0f, \"source\": ",
            so->shape.hidden, so->shape.inter, so->shape.weight_bytes,
            eplb_sim_expert_bytes(&so->shape));
    eplb_json_write_string(f, so->shape.source);
    fputs("}", f);
    if (c->route_rows > 0)
        fprintf(f, ", \"routing_check\": {\"rows\": %lld, \"differ\": %lld}",
                (long long)c->route_rows, (long long)c->route_differ);
    fputs("}", f);
}

static void write_summary(FILE *f, void *p)
{
    const out_ctx_t *c = p;
    fputs("{\"config\": ", f);
    write_config(f, p);
    fputs(",\n  \"runs\": ", f);
    eplb_sim_write_runs_json(f, c->res, c->nres);
    fputs("}\n", f);
}

static void write_config_file(FILE *f, void *p)
{
    write_config(f, p);
    fputc('\n', f);
}

static void write_csv_file(FILE *f, void *p)
{
    const out_ctx_t *c = p;
    eplb_sim_write_csv(f, c->res, c->nres);
}

/* The report's first lines: the trace and the resolved options (printed
 * before the replay, so that a long run shows what it does). */
static void write_report_head(FILE *f, void *p)
{
    const out_ctx_t *c = p;
    const opts_t *o = c->o;
    const eplb_trace_info_t *inf = c->inf;
    fprintf(f, "# trace %s: %s, %d layers, %d experts, top-%d, %lld steps\n", o->trace_path,
            inf->model, inf->num_layers, inf->route.num_experts, inf->route.top_k,
            (long long)inf->num_steps);
    const int sched = has_schedule(o);
    fprintf(f, "# trigger %s", shows_trigger(o) ? eplb_sim_trigger_name(o->trig.kind) : "-");
    fprintf(f, ", window ");
    if (sched)
        write_i64_list(f, o->window, o->nwin);
    else
        fputs("-", f);
    fprintf(f, ", interval ");
    if (sched)
        write_i64_list(f, o->interval, o->nint);
    else
        fputs("-", f);
    char async_name[32]; /* as --async takes it: off, layers, chunk:K */
    snprintf(async_name, sizeof async_name,
             o->trig.async == EPLB_ASYNC_OFF      ? "off"
             : o->trig.async == EPLB_ASYNC_LAYERS ? "layers"
                                                  : "chunk:%d",
             o->trig.chunk);
    fprintf(f, ", async %s, select %s, nodes %d, seed %llu\n", async_name,
            select_acts(o->select, inf) ? eplb_select_mode_name(o->select) : "-", o->nodes,
            (unsigned long long)o->seed);
    fprintf(f, "# device %s\n", o->device_used);
    fprintf(f, "# profile %s; expert %dx%d, %.1f MB (%s)\n", c->so->prof.name,
            c->so->shape.hidden, c->so->shape.inter,
            eplb_sim_expert_bytes(&c->so->shape) / 1e6, c->so->shape.source);
}

/* The results: the routing check, the table, notes and the legend (quiet:
 * the table alone); with_notes: also the notes said on stderr before the
 * replay (report.txt, which has no stderr). */
static void write_report_body(FILE *f, const out_ctx_t *c, int quiet, int with_notes)
{
    if (!quiet && c->route_rows > 0)
        fprintf(f, "# routed from logits; %lld of %lld (token, layer) rows differ from the "
                "recorded topk ids (%.4f%%)\n",
                (long long)c->route_differ, (long long)c->route_rows,
                100.0 * c->route_differ / c->route_rows);
    eplb_sim_print_table(f, c->res, c->nres);
    for (int k = 0; k < c->nres && !quiet; k++) {
        const eplb_sim_run_cfg_t *rc = &c->res[k].cfg;
        if (c->res[k].rebalances == 0 && strcmp(c->res[k].policy, "none") &&
            rc->trig.kind != EPLB_TRIGGER_ONCE)
            fprintf(f, "# note: %s (D %d, P %d, W %lld, I %lld) rearranged nothing in %lld "
                    "steps\n", c->res[k].label, rc->num_gpus, rc->num_slots,
                    (long long)rc->trig.window, (long long)rc->trig.interval,
                    (long long)c->inf->num_steps);
    }
    for (int k = 0; k < c->o->nnotes && with_notes; k++)
        fprintf(f, "# note: %s\n", c->o->notes[k]);
    if (with_notes && c->o->notes_lost)
        fprintf(f, "# note: %d more notes on stderr\n", c->o->notes_lost);
    if (!quiet) {
        fprintf(f, "# D: GPUs (EP size); P: physical experts (E + redundant, vLLM's "
                   "num_redundant_experts = P - E); W, I: window, interval (steps);\n"
                   "# none: no rearrangement, the default placement on the same P slots "
                   "(slot p holds expert p mod E, vLLM's initial one);\n"
                   "# rebal: rearrangements; moved, GB: replicas and bytes moved; stall_ms: "
                   "whole-trace stall (moves and policy time);\n");
        fprintf(f, "# bal: mean/max GPU load (1 = even), averaged over steps and layers; "
                "worst(l): the layer with the lowest;\n"
                "# moe_us/st: modeled MoE time per step (slowest GPU's experts + "
                "dispatch/combine); ovh: mapping/recording;\n"
                "# gain%%: time saved against none on the same tokens, after overhead "
                "and stalls (docs/simulator.md)\n");
    }
}

/* report.txt: what the terminal shows without --json or --quiet (stdout,
 * and the notes said on stderr) */
static void write_report_file(FILE *f, void *p)
{
    write_report_head(f, p);
    write_report_body(f, p, 0, 1);
}

/* The names written under --out DIR. */
static const char *const out_names[] = {"results.h5", "config.json", "summary.json",
                                        "summary.csv", "report.txt"};

/* Before any work: DIR, if it exists, is a directory, and none of the output
 * names in it is something a file cannot be renamed onto, or one of the
 * inputs (the trace, the profile: results.h5 replaced the trace it was
 * computed from, with exit 0) */
static eplb_status_t check_out_dir(const char *dir, const char *const *inputs, int ninputs)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        const int err = errno;
        if (err == ENOENT && lstat(dir, &sb) == 0 && S_ISLNK(sb.st_mode)) {
            char to[4096];
            ssize_t n = readlink(dir, to, sizeof to - 1);
            to[n > 0 ? n : 0] = 0;
            return eplb_error_set(EPLB_ERR_IO,
                                  "--out: %s is a symbolic link to '%s', which does not exist "
                                  "(create it, or name another directory)",
                                  dir, to);
        }
        if (err != ENOENT)
            return eplb_error_set(EPLB_ERR_IO, "--out: %s: %s", dir, strerror(err));
        return EPLB_OK; /* created later */
    }
    if (!S_ISDIR(sb.st_mode))
        return eplb_error_set(EPLB_ERR_IO, "--out: %s is not a directory", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return eplb_error_set(EPLB_ERR_IO, "--out: %s: cannot write: %s", dir,
                              strerror(errno));
    for (size_t i = 0; i < sizeof out_names / sizeof out_names[0]; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, out_names[i]);
        if (stat(p, &sb) == 0 && !S_ISREG(sb.st_mode))
            return eplb_error_set(EPLB_ERR_IO, "--out: %s exists and is not a regular file",
                                  p);
        for (int k = 0; k < ninputs; k++)
            if (eplb_cli_same_file(p, inputs[k]))
                return eplb_error_set(EPLB_ERR_INVALID_ARG,
                                      "--out: %s is the input %s; it would be overwritten", p,
                                      inputs[k]);
    }
    return EPLB_OK;
}

/* The directories out_dirs_make created for --out DIR: a failed run
 * removes them again, deepest first, so that it leaves no directory behind
 * (only those it created, and only while empty: rmdir). */
typedef struct {
    char *dir;    /* copy of DIR */
    size_t *made; /* lengths of the prefixes of dir that mkdir created */
    int *guard;   /* their signal guards (eplb_tmp_guard_arm_dir): an
                     interrupted run removes them too */
    int n;
} out_dirs_t;

#define OUT_DIRS_INIT {NULL, NULL, NULL, 0}

/* forget the directories (kept: the run succeeded, or they are removed) */
static void out_dirs_free(out_dirs_t *d)
{
    for (int i = 0; i < d->n; i++)
        eplb_tmp_guard_disarm(d->guard[i]);
    free(d->dir);
    free(d->made);
    free(d->guard);
    *d = (out_dirs_t)OUT_DIRS_INIT;
}

/* rmdir what was created, deepest first; then forget it */
static void out_dirs_remove(out_dirs_t *d)
{
    for (int i = d->n - 1; i >= 0; i--) {
        d->dir[d->made[i]] = '\0';
        rmdir(d->dir);
    }
    out_dirs_free(d);
}

/* mkdir -p, recording each prefix that mkdir created (a prefix such as
 * "new/.." that names an existing directory is not recorded) */
static eplb_status_t out_dirs_make(out_dirs_t *d, const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0)
        return S_ISDIR(sb.st_mode)
                   ? EPLB_OK
                   : eplb_error_set(EPLB_ERR_IO, "--out: %s is not a directory", dir);
    size_t len = strlen(dir), nmax = 1;
    for (size_t i = 0; i < len; i++)
        nmax += dir[i] == '/';
    d->dir = strdup(dir);
    d->made = malloc(nmax * sizeof *d->made);
    d->guard = malloc(nmax * sizeof *d->guard);
    if (!d->dir || !d->made || !d->guard)
        return eplb_error_set(EPLB_ERR_NOMEM, "out of memory");
    for (size_t i = 1; i <= len; i++) {
        if (i < len && d->dir[i] != '/')
            continue;
        d->dir[i] = '\0';
        /* the guard's signals wait until a directory made is also guarded:
         * between the two, SIGINT left it behind */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        const int made = mkdir(d->dir, 0777) == 0;
        const int err = errno;
        if (made) {
            d->made[d->n] = i;
            d->guard[d->n++] = eplb_tmp_guard_arm_dir(d->dir);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!made && i == len && err != EEXIST)
            return eplb_error_set(EPLB_ERR_IO, "--out: cannot create %s: %s", dir,
                                  strerror(err));
        d->dir[i] = dir[i];
    }
    return EPLB_OK;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* Add DIR/NAME to the --out set; *tmp: the name to write it under. */
static eplb_status_t out_set_add(const char **tmp, eplb_tmp_set_t *set, const char *dir,
                                 const char *name)
{
    char *p = join(dir, name);
    if (!p)
        return eplb_error_set(EPLB_ERR_NOMEM, "out of memory");
    eplb_status_t st = eplb_tmp_set_add(tmp, set, p);
    free(p);
    return st;
}

/* The --out files other than results.h5 (which the replay wrote under its
 * temporary name), then all of them renamed into place together: a run
 * that fails on the way leaves DIR's earlier files as they were. */
static eplb_status_t write_out_files(eplb_tmp_set_t *set, const char *dir, out_ctx_t *ctx)
{
    static const struct {
        const char *name;
        void (*fn)(FILE *, void *);
    } files[] = {{"config.json", write_config_file},
                 {"summary.json", write_summary},
                 {"summary.csv", write_csv_file},
                 {"report.txt", write_report_file}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        const char *tmp;
        EPLB_CHECK(out_set_add(&tmp, set, dir, files[i].name));
        EPLB_CHECK(eplb_sim_write_file(tmp, files[i].fn, ctx));
    }
    return eplb_tmp_set_commit(set);
}

int eplb_cmd_run(int argc, char **argv)
{
    opts_t o;
    memset(&o, 0, sizeof o);
    eplb_trigger_t t0 = EPLB_TRIGGER_INIT;
    o.trig = t0;
    o.nodes = 1;
    o.select = EPLB_SELECT_HASH;
    o.max_moves = 16; /* as rebalance: the policy's point is a bounded move */
    o.policy_time = -1;
    o.device = "auto";
    o.policies[0] = "deepseek";
    o.npol = 1;
    o.gpus[0] = 8;
    o.ngpus = 1;
    int help = 0;
    eplb_status_t st = parse_args(&o, argc, argv, &help);
    if (help) {
        usage(stdout);
        return 0;
    }
    if (st != EPLB_OK)
        return eplb_cmd_fail("run", st);

    eplb_trace_t *tr = NULL;
    eplb_sim_source_t *src = NULL;
    eplb_gpu_t *gpu = NULL;
    eplb_sim_run_cfg_t *runs = NULL;
    eplb_sim_result_t *res = NULL;
    char *cfg_json = NULL;
    size_t cfg_len = 0;
    int nruns = 0, rc = 0;
    out_dirs_t out_dirs = OUT_DIRS_INIT;
    eplb_tmp_set_t out_set = EPLB_TMP_SET_INIT;
    double t_end = 0; /* the replay's end (EPLB_TIMINGS) */
    eplb_sim_opts_t so;
    memset(&so, 0, sizeof so);

    eplb_sim_profile_default(&so.prof);
    if (o.profile_path)
        EPLB_CHECK_GOTO(eplb_sim_profile_load(&so.prof, o.profile_path), st, fail);
    if (o.out_dir) {
        const char *inputs[] = {o.trace_path, o.profile_path};
        EPLB_CHECK_GOTO(check_out_dir(o.out_dir, inputs, o.profile_path ? 2 : 1), st, fail);
    }
    const double t_open = eplb_now();
    EPLB_CHECK_GOTO(eplb_trace_open(&tr, o.trace_path), st, fail);
    timing("opening the trace", t_open);
    const eplb_trace_info_t *inf = eplb_trace_info(tr);
    int E = inf->route.num_experts;
    int64_t S = inf->num_steps;
    eplb_sim_model_shape(&so.shape, inf->model, inf->model_config);

    /* A trace of fewer than 4 steps (SGLang's whole-run counts have one)
     * ends before any online schedule decides: place once from it. */
    if (!o.trigger_set && S < 4) {
        o.trig.kind = EPLB_TRIGGER_ONCE;
        if ((o.nwin || o.nint) && !has_policy(&o, "oracle"))
            run_note(&o, "%s has %lld steps (< 4): trigger once, which uses no --window or "
                     "--interval", o.trace_path, (long long)S);
    }

    /* naming a mode that does not act would compare nothing
     * (docs/simulator.md) */
    if (o.select_set && !select_acts(o.select, inf)) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "--select %s: %s has expert counts only (no per-token routing): "
                            "each count is split evenly over the expert's replicas, whatever "
                            "the mode (only balanced, which plans from the counts, applies)",
                            eplb_select_mode_name(o.select), o.trace_path);
        goto fail;
    }
    if (o.trig.async == EPLB_ASYNC_CHUNK && o.trig.chunk > inf->num_layers)
        run_note(&o, "--async chunk:%d: %s has %d layers, so all of them move in one step",
                 o.trig.chunk, o.trace_path, inf->num_layers);

    /* resolve window / interval: the trigger's, and the oracle's own */
    int64_t owin[MAX_LIST], oint[MAX_LIST];
    int onwin, onint;
    resolve_schedule(owin, &onwin, oint, &onint, &o, EPLB_TRIGGER_ORACLE, S);
    {
        int64_t w[MAX_LIST], i[MAX_LIST];
        resolve_schedule(w, &o.nwin, i, &o.nint, &o, o.trig.kind, S);
        memcpy(o.window, w, sizeof *w * (size_t)o.nwin);
        memcpy(o.interval, i, sizeof *i * (size_t)o.nint);
    }

    /* the grid: for each (D, R): none once, then every policy x W x I */
    int nred = o.replicas ? 1 : o.nred ? o.nred : 1;
    const int nwi = o.nwin * o.nint > onwin * onint ? o.nwin * o.nint : onwin * onint;
    size_t cap = (size_t)o.ngpus * nred * (1 + (size_t)o.npol * nwi);
    if (cap > MAX_RUNS) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "the grid --gpus (%d) x --redundant (%d) x (1 + --policy (%d) x "
                            "--window (%d) x --interval (%d)) has %zu runs; at most %d",
                            o.ngpus, nred, o.npol, o.nwin, o.nint, cap, MAX_RUNS);
        goto fail;
    }
    runs = calloc(cap, sizeof *runs);
    EPLB_ALLOC_GOTO(runs, st, fail);
    for (int gi = 0; gi < o.ngpus; gi++)
        for (int ri = 0; ri < nred; ri++) {
            int D = (int)o.gpus[gi];
            if (D % o.nodes) {
                st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                                    "--gpus %d is not divisible by --nodes %d", D, o.nodes);
                goto fail;
            }
            int P;
            if (o.replicas) {
                P = o.replicas;
                if (P % D || P < E) {
                    st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                                        "--replicas %d must be a multiple of --gpus %d and "
                                        ">= %d experts", P, D, E);
                    goto fail;
                }
            } else {
                int64_t R = o.nred ? o.redundant[ri] : D;
                int64_t p = E + R;
                p = (p + D - 1) / D * D;
                if (p > MAX_SLOTS) {
                    st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                                        "--gpus %d, --redundant %lld: %lld slots per layer "
                                        "(at most %d)", D, (long long)R, (long long)p,
                                        MAX_SLOTS);
                    goto fail;
                }
                P = (int)p;
                /* vLLM requires (E + R) % D == 0 and refuses otherwise; here
                 * the slots are rounded up, so say what R became (also for
                 * the default R = D) */
                if (p != E + R)
                    run_note(&o, "--gpus %d, --redundant %lld%s: P = %d (E + R = %lld rounded "
                             "up to a multiple of %d: %lld redundant slots)", D, (long long)R,
                             o.nred ? "" : " (the default, = D)", P, (long long)(E + R), D,
                             (long long)(P - E));
            }
            /* the default placement (none's: slot p holds expert p mod E)
             * gives an expert ceil(P / E) replicas; the balanced plan takes
             * at most EPLB_PLAN_MAX_R (the policies' own placements are
             * checked as the run goes) */
            if (o.select == EPLB_SELECT_BALANCED && (P + E - 1) / E > EPLB_PLAN_MAX_R) {
                st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                                    "--select balanced with %s: %d slots for %d experts give "
                                    "an expert %d replicas, more than the %d the balanced "
                                    "plan takes",
                                    o.replicas ? "--replicas" : "--redundant", P, E,
                                    (P + E - 1) / E, EPLB_PLAN_MAX_R);
                goto fail;
            }
            /* phy2log and its copies hold layers x P entries per run */
            if ((int64_t)P * inf->num_layers > MAX_LAYER_SLOTS) {
                st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                                    "%s: %d slots per layer x %d layers exceeds %lld",
                                    o.replicas ? "--replicas" : "--redundant", P,
                                    inf->num_layers, (long long)MAX_LAYER_SLOTS);
                goto fail;
            }
            eplb_sim_run_cfg_t base;
            memset(&base, 0, sizeof base);
            base.num_gpus = D;
            base.num_nodes = o.nodes;
            base.num_slots = P;
            base.trig = o.trig;
            base.trig.window = o.window[0];
            base.trig.interval = o.interval[0];
            int dup = 0;
            for (int k = 0; k < nruns; k++)
                dup |= runs[k].policy && !strcmp(runs[k].policy->name, "none") &&
                       runs[k].num_gpus == D && runs[k].num_slots == P;
            if (dup && o.nred > 1) { /* an earlier --redundant gave this P */
                run_note(&o, "--gpus %d: --redundant %lld gives P = %d as an earlier value did; "
                         "run once", D, (long long)o.redundant[ri], P);
                continue;
            }
            if (!dup) {
                runs[nruns] = base;
                runs[nruns].policy = eplb_policy_find("none");
                runs[nruns].label = "none";
                nruns++;
            }
            for (int pi = 0; pi < o.npol; pi++) {
                if (!strcmp(o.policies[pi], "none"))
                    continue;
                const int orc = !strcmp(o.policies[pi], "oracle");
                const int64_t *wl = orc ? owin : o.window, *il = orc ? oint : o.interval;
                /* once uses no window or interval: one run, not one per
                 * value (the lists may be there for the oracle) */
                const int once = !orc && o.trig.kind == EPLB_TRIGGER_ONCE;
                const int nw = orc ? onwin : once ? 1 : o.nwin;
                const int ni = orc ? onint : once ? 1 : o.nint;
                for (int wi = 0; wi < nw; wi++)
                    for (int ii = 0; ii < ni; ii++) {
                        eplb_sim_run_cfg_t r = base;
                        r.label = o.policies[pi];
                        r.trig.window = wl[wi];
                        r.trig.interval = il[ii];
                        if (orc) {
                            r.policy = eplb_policy_find("deepseek");
                            r.trig.kind = EPLB_TRIGGER_ORACLE;
                        } else {
                            r.policy = eplb_policy_find(o.policies[pi]);
                        }
                        EPLB_CHECK_GOTO(eplb_sim_trigger_check(&r.trig), st, fail);
                        runs[nruns++] = r;
                    }
            }
        }
    for (int k = 0; k < nruns; k++)
        if (!runs[k].policy) {
            st = eplb_error_set(EPLB_ERR_INTERNAL, "policy table lacks '%s'",
                                runs[k].label);
            goto fail;
        }

    so.select = o.select;
    so.seed = o.seed;
    so.policy_time = o.policy_time;
    so.threads = o.threads;
    so.progress = !o.quiet && isatty(2);
    so.max_moves = o.max_moves;
    if (!strcmp(o.device, "gpu") && !(inf->levels & EPLB_LEVEL_LOGITS)) {
        /* refused, not ignored: the GPU routes logits, and there are none */
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "--device gpu: %s has no logits (%s): nothing to route, the replay "
                            "runs on the CPU; use --device auto or cpu", o.trace_path,
                            inf->levels & EPLB_LEVEL_TOPK ? "top-k ids" : "expert counts");
        goto fail;
    }
    /* The options are checked: now the output directory may be created,
     * before any thread starts (the source's readers, CUDA's), so that the
     * signals blocked around its mkdir reach no other thread (a failure
     * from here on removes it again) */
    if (o.out_dir) {
        EPLB_CHECK_GOTO(out_dirs_make(&out_dirs, o.out_dir), st, fail);
        EPLB_CHECK_GOTO(out_set_add(&so.results_path, &out_set, o.out_dir, "results.h5"), st,
                        fail);
    }
    EPLB_CHECK_GOTO(eplb_sim_source_trace(&src, tr), st, fail);
    /* The device routes logits; "no device" means the CPU unless asked. */
    snprintf(o.device_used, sizeof o.device_used, "cpu");
    if (strcmp(o.device, "cpu") && !(inf->levels & EPLB_LEVEL_LOGITS)) {
        snprintf(o.device_used, sizeof o.device_used, "cpu (the trace has no logits)");
    } else if (!strcmp(o.device, "auto") && eplb_trace_raw_bytes(tr) < auto_gpu_bytes()) {
        /* starting the GPU costs more than routing a small trace on the CPU
         * (docs/perf/sim.md) */
        snprintf(o.device_used, sizeof o.device_used, "cpu (small trace)");
    } else if (strcmp(o.device, "cpu")) {
        int want = !strcmp(o.device, "gpu");
        if (!eplb_gpu_built()) {
            if (want) {
                st = eplb_error_set(EPLB_ERR_UNSUPPORTED,
                                    "--device gpu: this build has no CUDA kernels "
                                    "(configure --with-cuda)");
                goto fail;
            }
            snprintf(o.device_used, sizeof o.device_used, "cpu (built without CUDA)");
        } else if (gpu_open_prefetch(&gpu, src) != EPLB_OK) {
            if (want) {
                char why[256]; /* the message buffer is about to be rewritten */
                snprintf(why, sizeof why, "%s", eplb_error_last());
                st = eplb_error_set(EPLB_ERR_NO_DEVICE, "--device gpu: %s",
                                    why);
                goto fail;
            }
            snprintf(o.device_used, sizeof o.device_used, "cpu (no usable GPU)");
            eplb_error_clear();
        } else {
            /* selection and recording on the GPU too, unless asked not to
             * (bit-identical to the CPU's: checked on an H100 and an H200,
             * runs 9-17, docs/perf/kernels.md) */
            so.gpu_select = !eplb_env_off(GPU_SELECT_ENV);
            snprintf(o.device_used, sizeof o.device_used, "gpu (%s)%s", eplb_gpu_name(gpu),
                     so.gpu_select ? ", selection on the GPU"
                                   : ", selection on the CPU (" GPU_SELECT_ENV "=0)");
            eplb_sim_source_use_gpu(src, gpu);
        }
    }
    out_ctx_t ctx = {&o, inf, &so, NULL, 0, 0, 0};
    {
        FILE *mf = open_memstream(&cfg_json, &cfg_len);
        if (!mf) {
            st = eplb_error_set(EPLB_ERR_NOMEM, "out of memory");
            goto fail;
        }
        write_config(mf, &ctx);
        /* the buffer grows as it is written: a failed growth shows here
         * (a cut config would have gone into config.json and results.h5) */
        const int bad = ferror(mf);
        if (fclose(mf) != 0 || bad || !cfg_json) {
            st = eplb_error_set(EPLB_ERR_NOMEM, "out of memory (the configuration's text)");
            goto fail;
        }
    }
    so.config_json = cfg_json;
    if (!o.json && !o.quiet)
        write_report_head(stdout, &ctx);
    res = calloc((size_t)nruns, sizeof *res);
    EPLB_ALLOC_GOTO(res, st, fail);
    EPLB_CHECK_GOTO(eplb_sim_replay(res, src, runs, nruns, &so), st, fail);
    t_end = eplb_now();
    ctx.res = res;
    ctx.nres = nruns;
    eplb_sim_source_routing_check(src, &ctx.route_rows, &ctx.route_differ);
    if (o.json)
        write_summary(stdout, &ctx);
    else
        write_report_body(stdout, &ctx, o.quiet, 0);
    if (o.out_dir)
        EPLB_CHECK_GOTO(write_out_files(&out_set, o.out_dir, &ctx), st, fail);
    /* a full disk or closed pipe must not pass for a result (the --out
     * files, complete, stay, and so does their directory) */
    if ((st = eplb_cli_stdout_check()) != EPLB_OK) {
        out_dirs_free(&out_dirs);
        goto fail;
    }
    timing("output", t_end);
    goto out;
fail:
    rc = eplb_cmd_fail("run", st);
    eplb_tmp_set_abort(&out_set); /* first: a directory is removed only if empty */
    out_dirs_remove(&out_dirs);
out:
    if (res)
        eplb_sim_results_free(res, nruns);
    free(res);
    free(runs);
    out_dirs_free(&out_dirs);
    free(cfg_json);
    eplb_sim_source_free(src);
    if (gpu)
        eplb_gpu_close(gpu);
    if (tr)
        eplb_trace_close(tr);
    if (rc == 0)
        timing("output and clean-up", t_end);
    return rc;
}
