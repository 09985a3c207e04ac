/* bench_a2a.c - `eplb-replay bench a2a`: NCCL all-to-all on the GPUs of
 * one node (kernels.h, eplb_a2a_measure), fitted to the cost model's
 * t = nvlink_latency + bytes / nvlink_bw (sim.h, eplb_sim_a2a_fit) and
 * printed as profile lines to paste (docs/simulator.md, "Hardware
 * profiles"). */
#include "cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli_util.h"
#include "decimal.h"
#include "json.h"
#include "kernels.h"
#include "sim.h"

#define CMD "bench a2a"
#define MAX_SIZES 32
#define MAX_REPS 10000
/* bytes per GPU: two buffers of the largest on every GPU */
#define MIN_SIZE ((int64_t)16)
#define MAX_SIZE ((int64_t)16 << 30)

static void usage(FILE *f)
{
    fprintf(f,
        "usage: eplb-replay bench a2a [--gpus N] [--sizes LIST] [--reps R] [--json]\n"
        "\n"
        "Measures the all-to-all of the dispatch and combine phases on the GPUs of\n"
        "this node: one process drives N GPUs (one NCCL communicator from\n"
        "ncclCommInitAll and one stream each); in one exchange every GPU sends\n"
        "BYTES / (N - 1) to each other GPU and receives as much from each (one\n"
        "group of ncclSend/ncclRecv), so each GPU sends and receives BYTES over\n"
        "its links at once.  Each exchange starts on all GPUs together (a spin\n"
        "kernel releases them) and takes the longest of the GPUs' CUDA-event\n"
        "times; the median of R exchanges after 5 warm-up ones, whose data are\n"
        "checked.  Then fits the simulator's phase time t = latency + BYTES /\n"
        "bandwidth (least squares of the relative error) and prints the profile\n"
        "lines nvlink_GBps and nvlink_latency_us (per GPU per direction; fixed\n"
        "cost per phase) with a comment saying how they were measured.\n"
        "NCCL (libnccl.so.2, 2.7 or later) is loaded when this runs.\n"
        "\n"
        "  --gpus N      GPUs 0..N-1 (default: all visible; at least 2)\n"
        "  --sizes LIST  BYTES per GPU and exchange, comma-separated, at least 3\n"
        "                spanning 4x or more, each 16..16G, K/M/G = 2^10/2^20/2^30\n"
        "                (default 1M,2M,4M,8M,16M,32M,64M: the sizes of MoE phases)\n"
        "  --reps R      timed exchanges per size (default 50, at most 10000)\n"
        "  --self        testing: allow one GPU, which exchanges with itself (a\n"
        "                device-local copy, no link; profile lines commented out)\n"
        "  --json        one JSON object per size, then one with the fit\n"
        "  -h, --help    this text\n");
}

/* "64K" etc.: a decimal integer, optionally K, M or G (binary) */
static eplb_status_t parse_sizes(size_t *sizes, int *n, const char *val)
{
    *n = 0;
    for (const char *p = val;;) {
        const char *end;
        int64_t v = 0;
        if (eplb_decimal_read(&v, &end, p) != 0 || v < 0)
            goto bad; /* (before the shift: -1K shifted a negative value) */
        int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
        if (shift) {
            end++;
            if (v > MAX_SIZE >> shift)
                goto bad;
            v <<= shift;
        }
        if (v < MIN_SIZE || v > MAX_SIZE || (*end && *end != ',') || *n == MAX_SIZES)
            goto bad;
        for (int i = 0; i < *n; i++)
            if (sizes[i] == (size_t)v)
                return eplb_error_set(EPLB_ERR_INVALID_ARG, "--sizes: %lld bytes listed twice",
                                      (long long)v);
        sizes[(*n)++] = (size_t)v;
        if (!*end)
            break;
        p = end + 1;
    }
    /* two sizes fit any line exactly (its error is 0 whatever the times),
     * and close sizes tell latency and bandwidth apart badly */
    size_t lo = sizes[0], hi = sizes[0];
    for (int i = 1; i < *n; i++) {
        lo = sizes[i] < lo ? sizes[i] : lo;
        hi = sizes[i] > hi ? sizes[i] : hi;
    }
    if (*n < 3 || hi < 4 * lo)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--sizes: the fit of latency and bandwidth needs at least 3 "
                              "sizes, the largest at least 4 times the smallest ('%s')",
                              val);
    return EPLB_OK;
bad:
    return eplb_error_set(EPLB_ERR_INVALID_ARG,
                          "--sizes: expected up to %d byte counts in 16..16G (K, M, G: "
                          "2^10, 2^20, 2^30), comma-separated, got '%s'",
                          MAX_SIZES, val);
}

/* "64 KiB", "1.5 MiB": sizes in the comment line */
static const char *human(char *buf, size_t n, double b)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB"};
    int u = 0;
    while (b >= 1024 && u < 3) {
        b /= 1024;
        u++;
    }
    snprintf(buf, n, b == (double)(long long)b ? "%.0f %s" : "%.3g %s", b, unit[u]);
    return buf;
}

/* One line: how the numbers were measured (the profile's comment). */
static void provenance(char *buf, size_t n, const eplb_a2a_info_t *in, const size_t *sizes,
                       int nsizes, int reps)
{
    size_t lo = sizes[0], hi = sizes[0];
    for (int i = 1; i < nsizes; i++) {
        lo = sizes[i] < lo ? sizes[i] : lo;
        hi = sizes[i] > hi ? sizes[i] : hi;
    }
    char date[16], a[24], b[24], pairs[48];
    time_t now = time(NULL);
    struct tm tm;
    strftime(date, sizeof date, "%Y-%m-%d", localtime_r(&now, &tm));
    const int all = in->gpus * (in->gpus - 1);
    if (in->gpus == 1)
        snprintf(pairs, sizeof pairs, "self-exchange");
    else if (in->p2p_pairs == all)
        snprintf(pairs, sizeof pairs, "CUDA peer access between all pairs");
    else
        snprintf(pairs, sizeof pairs, "CUDA peer access for %d of %d pairs", in->p2p_pairs,
                 all);
    snprintf(buf, n,
             "measured %s by eplb-replay bench a2a: NCCL %s grouped ncclSend/ncclRecv, one "
             "process, %d x %s%s (%s), %s..%s per GPU, median of %d %s",
             date, in->nccl, in->gpus, in->gpu_name, in->same_model ? "" : " and others", pairs,
             human(a, sizeof a, (double)lo), human(b, sizeof b, (double)hi), reps,
             in->gated ? "from a common start" : "from the launch");
}

int eplb_bench_a2a(int argc, char **argv)
{
    static const struct option lo[] = {{"gpus", required_argument, 0, 'g'},
                                       {"sizes", required_argument, 0, 's'},
                                       {"reps", required_argument, 0, 'r'},
                                       {"self", no_argument, 0, 'S'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    /* the sizes of MoE phases: DeepSeek-V3 decode sends 13-26 MB per GPU
     * and phase at 256 tokens a GPU on 8; NCCL's bandwidth still grows past
     * them, so a wider range fits them worse (2 H200s: 12% off at 16 MiB
     * with 64 KiB..256 MiB) */
    size_t sizes[MAX_SIZES] = {1 << 20,  2 << 20,  4 << 20, 8 << 20,
                               16 << 20, 32 << 20, 64 << 20};
    int nsizes = 7, json = 0, c;
    eplb_a2a_opts_t o = EPLB_A2A_OPTS_INIT;
    eplb_status_t st = EPLB_OK;
    int64_t v = 0;
    optind = 1;
    opterr = 0;
    while ((c = eplb_cli_getopt(argc, argv, ":h", lo)) != -1) {
        switch (c) {
        case 'g':
            st = eplb_cli_int_parse(&v, optarg, "--gpus", 1, EPLB_MAX_GPUS);
            o.gpus = (int)v;
            break;
        case 'r':
            st = eplb_cli_int_parse(&v, optarg, "--reps", 1, MAX_REPS);
            o.reps = (int)v;
            break;
        case 's':
            st = parse_sizes(sizes, &nsizes, optarg);
            break;
        case 'S':
            o.self = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default: /* "--reps needs a value", or an unknown option */
            return eplb_cmd_fail(CMD, eplb_cli_getopt_fail(c, argv));
        }
        if (st != EPLB_OK)
            return eplb_cmd_fail(CMD, st);
    }
    if (optind < argc)
        return eplb_cmd_fail(
            CMD, eplb_error_set(EPLB_ERR_INVALID_ARG, "unexpected argument '%s'", argv[optind]));
    if (o.gpus == 1 && !o.self)
        return eplb_cmd_fail(CMD, eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                 "--gpus 1: an all-to-all needs 2 or more "
                                                 "GPUs; one GPU has no link to measure"));

    eplb_a2a_point_t pts[MAX_SIZES];
    eplb_a2a_info_t in;
    st = eplb_a2a_measure(pts, &in, sizes, nsizes, &o);
    if (st != EPLB_OK)
        return eplb_cmd_fail(CMD, st);
    double x[MAX_SIZES], t[MAX_SIZES];
    for (int i = 0; i < nsizes; i++) {
        x[i] = (double)pts[i].bytes;
        t[i] = pts[i].median_s;
    }
    eplb_a2a_fit_t fit;
    const eplb_status_t fst = eplb_sim_a2a_fit(&fit, x, t, nsizes);
    char how[512], lines[128];
    provenance(how, sizeof how, &in, sizes, nsizes, o.reps);
    const int self = in.gpus == 1;
    if (fst == EPLB_OK)
        eplb_sim_a2a_fit_format(lines, sizeof lines, &fit, self ? "# " : "");

    if (json) {
        for (int i = 0; i < nsizes; i++)
            printf("{\"bench\":\"a2a\",\"kind\":\"size\",\"gpus\":%d,\"peers\":%d,"
                   "\"bytes\":%zu,\"peer_bytes\":%zu,\"median_us\":%.3f,\"min_us\":%.3f,"
                   "\"max_us\":%.3f,\"gbps\":%.3f,\"reps\":%d}\n",
                   in.gpus, in.peers, pts[i].bytes, pts[i].peer_bytes, pts[i].median_s * 1e6,
                   pts[i].min_s * 1e6, pts[i].max_s * 1e6, x[i] / t[i] / 1e9, o.reps);
        if (fst == EPLB_OK) {
            printf("{\"bench\":\"a2a\",\"kind\":\"fit\",\"gpus\":%d,\"gpu\":", in.gpus);
            eplb_json_write_string(stdout, in.gpu_name);
            printf(",\"same_model\":%s,\"p2p_pairs\":%d,\"nccl\":\"%s\",\"self\":%s,"
                   "\"gated\":%s,\"sizes\":%d,\"reps\":%d,\"nvlink_GBps\":%.3f,"
                   "\"nvlink_latency_us\":%.4f,\"max_rel_err\":%.4f,\"comment\":",
                   in.same_model ? "true" : "false", in.p2p_pairs, in.nccl, self ? "true" : "false",
                   in.gated ? "true" : "false", nsizes, o.reps, fit.bw / 1e9, fit.latency_s * 1e6,
                   fit.max_rel_err);
            eplb_json_write_string(stdout, how);
            printf("}\n");
        }
    } else {
        printf("# bench a2a: NCCL %s, %d x %s%s, each GPU to %d peer%s%s; median of %d "
               "exchanges after %d warm-up, timed %s\n",
               in.nccl, in.gpus, in.gpu_name, in.same_model ? "" : " and others", in.peers,
               in.peers == 1 ? "" : "s", self ? " (itself: --self)" : "", o.reps, o.warmup,
               in.gated ? "from a common start" : "from the launch (the start gate timed out)");
        printf("# %12s %12s | %10s %10s %10s | %8s | %10s\n", "bytes/GPU", "per peer", "median us",
               "min us", "max us", "GB/s", "fit us");
        for (int i = 0; i < nsizes; i++) {
            char f[24] = "-";
            if (fst == EPLB_OK)
                snprintf(f, sizeof f, "%.2f", (fit.latency_s + x[i] / fit.bw) * 1e6);
            printf("  %12zu %12zu | %10.2f %10.2f %10.2f | %8.1f | %10s\n", pts[i].bytes,
                   pts[i].peer_bytes, pts[i].median_s * 1e6, pts[i].min_s * 1e6, pts[i].max_s * 1e6,
                   x[i] / t[i] / 1e9, f);
        }
        if (fst == EPLB_OK) {
            printf("# fit t = latency + bytes / bandwidth (least squares of the relative "
                   "error): largest error %.1f%%\n",
                   fit.max_rel_err * 100);
            if (self)
                printf("# --self: one GPU copying to itself, no link: not NVLink numbers, "
                       "for tests only\n");
            if (in.p2p_pairs < in.gpus * (in.gpus - 1))
                printf("# caution: not every GPU pair has peer access; NCCL may have gone "
                       "through host memory\n");
            if (fit.max_rel_err > 0.10)
                printf("# caution: a size is %.0f%% off the fit: the times do not follow the "
                       "model well (other work on the GPUs? another size range?)\n",
                       fit.max_rel_err * 100);
            printf("# %s\n%s", how, lines);
        }
    }
    fflush(stdout);
    if (fst != EPLB_OK) { /* measured, but nothing a profile can hold: exit 1, not 2 */
        fprintf(stderr, "eplb-replay %s: %s\n", CMD, eplb_error_last());
        return 1;
    }
    return 0;
}
