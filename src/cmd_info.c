/* cmd_info.c - `eplb-replay info TRACE.h5 [--json]`: describe a trace.
 *
 * Prints the model attributes, steps, tokens, levels, logits dtype, stored
 * (compressed) and raw sizes of every dataset, and the per-layer load skew:
 * max/mean of the logical expert loads summed over the whole trace.  Loads
 * come from the recorded top-k ids if present, else the counts, else from
 * routing the logits with eplb_route_cpu.  The trace is streamed in
 * chunk-aligned token ranges (logits inflated on all threads), so memory
 * stays bounded whatever its length. */
#include "cli_util.h"
#include "cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checks.h"
#include "json.h"
#include "kernels.h"
#include "progress.h"
#include "trace.h"

#define BATCH_BYTES (32u << 20)
#define MAX_SIZES 8

static void usage(FILE *f)
{
    fprintf(f, "usage: eplb-replay info TRACE.h5 [--json] [--no-skew]\n\n"
               "Describe a trace: model attributes, steps, tokens, levels present (logits,\n"
               "topk_ids, counts), logits dtype, stored and raw dataset sizes, and the load\n"
               "skew per layer (max/mean expert load over the whole trace, 0 for a layer\n"
               "with no load; from topk_ids if present, else counts, else by routing the\n"
               "logits), and where the trace has /tokens/src_rank how many ranks have\n"
               "tokens and how many each.  On a terminal, a line on stderr counts the\n"
               "tokens read (from 2 s).\n\n"
               "  --json      one JSON object on stdout (keys: num_layers, num_experts, top_k,\n"
               "              num_steps, num_tokens, levels, scoring, dtype, sizes,\n"
               "              skew_per_layer, skew_max, src_ranks, ...)\n"
               "  --no-skew   skip the load and rank pass (reads no bulk data)\n"
               "  -h, --help  this text\n");
}

/* Tokens per batch: a multiple of the chunk rows, about BATCH_BYTES. */
static int64_t batch_tokens(const eplb_trace_t *tr, size_t row_bytes)
{
    int64_t b = (int64_t)(BATCH_BYTES / (row_bytes ? row_bytes : 1));
    int64_t c = eplb_trace_chunk_tokens(tr);
    if (c > 0)
        b = b >= c ? b / c * c : c;
    return b > 0 ? b : 1;
}

static void count_ids(int64_t *load, const int32_t *ids, int64_t n, int L, int K, int E)
{
    for (int64_t t = 0; t < n; t++)
        for (int l = 0; l < L; l++)
            for (int k = 0; k < K; k++) {
                int32_t e = ids[(t * L + l) * K + k];
                if (e >= 0 && e < E)
                    load[(int64_t)l * E + e]++;
            }
}

/* Sum /load/counts over the trace into sum[L][E] (added to), read in
 * batches of BATCH_BYTES: the reader checks each step's values. */
static eplb_status_t sum_counts(int64_t *sum, const eplb_trace_t *tr)
{
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    const size_t per = (size_t)in->num_layers * (size_t)in->route.num_experts;
    const int64_t S = in->num_steps, B = (int64_t)(BATCH_BYTES / (per * 4)) + 1;
    int32_t *cn = malloc((size_t)(B < S ? B : S) * per * 4 + 1);
    eplb_status_t st = EPLB_OK;
    EPLB_ALLOC_GOTO(cn, st, out);
    for (int64_t s = 0; s < S; s += B) {
        int64_t n = S - s < B ? S - s : B;
        EPLB_CHECK_GOTO(eplb_trace_read_counts(tr, cn, s, s + n), st, out);
        for (int64_t i = 0; i < n; i++)
            for (size_t j = 0; j < per; j++)
                sum[j] += cn[(size_t)i * per + j];
    }
out:
    free(cn);
    return st;
}

/* /load/counts beside a richer level: no command uses them, but a bad
 * value is still bad input (they were never read: a count of 2^32 - 1
 * passed).  Read, so that the reader's checks run (negative counts, a
 * layer's summing past K x tokens), and where the ids are recorded, their
 * totals over the trace must be the counts' (`run` compares every step). */
static eplb_status_t check_counts(const eplb_trace_t *tr, const int64_t *id_load, int exact)
{
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    const size_t per = (size_t)in->num_layers * (size_t)in->route.num_experts;
    int64_t *sum = calloc(per, sizeof *sum);
    eplb_status_t st = EPLB_OK;
    EPLB_ALLOC_GOTO(sum, st, out);
    EPLB_CHECK_GOTO(sum_counts(sum, tr), st, out);
    for (size_t j = 0; exact && j < per; j++)
        if (sum[j] != id_load[j]) {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: /load/counts disagree with /router/topk_ids: layer %zu "
                                "expert %zu counts %lld over the trace, the ids %lld",
                                eplb_trace_path(tr), j / (size_t)in->route.num_experts,
                                j % (size_t)in->route.num_experts, (long long)sum[j],
                                (long long)id_load[j]);
            break;
        }
out:
    free(sum);
    return st;
}

/* Sum logical loads [L][E] over the trace; *src names where they came from. */
static eplb_status_t compute_load(int64_t *load, const char **src, const eplb_trace_t *tr,
                                  eplb_progress_t *prog)
{
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    int L = in->num_layers, E = in->route.num_experts, K = in->route.top_k;
    int64_t T = in->num_tokens;
    eplb_status_t st = EPLB_OK;
    void *lg = NULL;
    int32_t *ids = NULL;
    float *bias = NULL;
    if (in->levels & EPLB_LEVEL_TOPK) {
        *src = "topk_ids";
        int64_t B = batch_tokens(tr, (size_t)L * (size_t)K * 4);
        ids = malloc((size_t)(B < T ? B : T) * (size_t)L * (size_t)K * 4 + 1);
        EPLB_ALLOC_GOTO(ids, st, out);
        for (int64_t t = 0; t < T; t += B) {
            int64_t n = T - t < B ? T - t : B;
            EPLB_CHECK_GOTO(eplb_trace_read_topk(tr, ids, NULL, t, t + n), st, out);
            count_ids(load, ids, n, L, K, E);
            if (prog)
                eplb_progress_count(prog, t + n, T);
        }
    } else if (in->levels & EPLB_LEVEL_COUNTS) {
        *src = "counts";
        EPLB_CHECK_GOTO(sum_counts(load, tr), st, out);
    } else {
        *src = "logits";
        size_t es = eplb_dtype_size(in->logits_dtype);
        int64_t B = batch_tokens(tr, (size_t)L * (size_t)E * es);
        int64_t nb = B < T ? B : T;
        lg = malloc((size_t)nb * (size_t)L * (size_t)E * es + 1);
        ids = malloc((size_t)nb * (size_t)L * (size_t)K * 4 + 1);
        EPLB_ALLOC_GOTO(lg, st, out);
        EPLB_ALLOC_GOTO(ids, st, out);
        if (in->has_bias) {
            bias = malloc((size_t)L * (size_t)E * sizeof(float));
            EPLB_ALLOC_GOTO(bias, st, out);
            EPLB_CHECK_GOTO(eplb_trace_read_bias(tr, bias), st, out);
        }
        for (int64_t t = 0; t < T; t += B) {
            int64_t n = T - t < B ? T - t : B;
            EPLB_CHECK_GOTO(eplb_trace_read_logits_parallel(tr, lg, t, t + n, 0), st, out);
            EPLB_CHECK_GOTO(eplb_route_cpu(ids, NULL, lg, in->logits_dtype, n, L, bias,
                                           &in->route),
                            st, out);
            count_ids(load, ids, n, L, K, E);
            if (prog)
                eplb_progress_count(prog, t + n, T);
        }
    }
    if ((in->levels & EPLB_LEVEL_COUNTS) && strcmp(*src, "counts"))
        st = check_counts(tr, load, (in->levels & EPLB_LEVEL_TOPK) != 0);
out:
    free(lg);
    free(ids);
    free(bias);
    return st;
}

/* The load pass reads bulk data anyway: check /steps/phase too (its
 * values are otherwise never read, so a phase of 5 would pass unseen). */
static eplb_status_t check_phase(const eplb_trace_t *tr)
{
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    if (!in->has_phase)
        return EPLB_OK;
    enum { B = 1 << 16 };
    uint8_t *ph = malloc(B);
    if (!ph)
        return eplb_error_set(EPLB_ERR_NOMEM, "phase: out of memory");
    eplb_status_t st = EPLB_OK;
    for (int64_t s0 = 0; st == EPLB_OK && s0 < in->num_steps; s0 += B) {
        int64_t s1 = in->num_steps - s0 < B ? in->num_steps : s0 + B;
        st = eplb_trace_read_phase(tr, ph, s0, s1);
    }
    free(ph);
    return st;
}

/* Tokens per source rank, from /tokens/src_rank (the load pass reads bulk
 * data anyway): a merged recording (traces/eplb_record.py merge_ranks)
 * shows whether every rank made it. */
typedef struct {
    int have;           /* 0: no src_rank, or not read (--no-skew) */
    int ranks;          /* ranks with at least one token */
    int lo, hi;         /* lowest and highest of them */
    int64_t tmin, tmax; /* fewest and most tokens of one of them */
} rank_summary_t;

static eplb_status_t rank_tokens(rank_summary_t *rs, const eplb_trace_t *tr)
{
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    memset(rs, 0, sizeof *rs);
    if (!in->has_src_rank)
        return EPLB_OK;
    enum { B = 1 << 20, NR = 1 << 16 };
    uint16_t *r = malloc(B * sizeof *r);
    int64_t *per = calloc(NR, sizeof *per);
    eplb_status_t st = EPLB_OK;
    if (!r || !per) {
        st = eplb_error_set(EPLB_ERR_NOMEM, "src_rank: out of memory");
        goto out;
    }
    for (int64_t t = 0; st == EPLB_OK && t < in->num_tokens; t += B) {
        int64_t n = in->num_tokens - t < B ? in->num_tokens - t : B;
        st = eplb_trace_read_src_rank(tr, r, t, t + n);
        for (int64_t i = 0; st == EPLB_OK && i < n; i++)
            per[r[i]]++;
    }
    for (int k = 0; st == EPLB_OK && k < NR; k++) {
        if (!per[k])
            continue;
        if (!rs->ranks++) {
            rs->lo = k;
            rs->tmin = rs->tmax = per[k];
        }
        rs->hi = k;
        rs->tmin = per[k] < rs->tmin ? per[k] : rs->tmin;
        rs->tmax = per[k] > rs->tmax ? per[k] : rs->tmax;
    }
    rs->have = st == EPLB_OK;
out:
    free(r);
    free(per);
    return st;
}

static void skew_of(double *skew, const int64_t *load, int L, int E)
{
    for (int l = 0; l < L; l++) {
        int64_t mx = 0, sum = 0;
        for (int e = 0; e < E; e++) {
            int64_t v = load[(int64_t)l * E + e];
            sum += v;
            if (v > mx)
                mx = v;
        }
        skew[l] = sum > 0 ? (double)mx * E / (double)sum : 0.0;
    }
}

static const char *level_names[] = {"logits", "topk_ids", "counts"};

static void print_json(const eplb_trace_t *tr, const eplb_trace_dataset_size_t *sz, int nsz,
                       const double *skew, const char *skew_src, const rank_summary_t *rs)
{
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    FILE *f = stdout;
    fputs("{\"path\": ", f);
    eplb_json_write_string(f, eplb_trace_path(tr));
    fprintf(f, ", \"eplb_trace_version\": %d, \"model\": ", in->version);
    eplb_json_write_string(f, in->model);
    fputs(", \"source\": ", f);
    eplb_json_write_string(f, in->source);
    fputs(", \"model_config\": ", f);
    if (in->model_config)
        eplb_json_write_string(f, in->model_config);
    else
        fputs("null", f);
    fprintf(f,
            ", \"num_layers\": %d, \"num_experts\": %d, \"top_k\": %d, \"scoring\": \"%s\", "
            "\"num_groups\": %d, \"topk_groups\": %d, \"renormalize\": %d, "
            "\"routed_scaling_factor\": ",
            in->num_layers, in->route.num_experts, in->route.top_k,
            eplb_scoring_name(in->route.scoring), in->route.num_groups, in->route.topk_groups,
            in->route.renormalize);
    eplb_json_write_number(f, (double)in->route.routed_scaling_factor);
    fprintf(f, ", \"num_steps\": %lld, \"num_tokens\": %lld, \"levels\": [",
            (long long)in->num_steps, (long long)in->num_tokens);
    int first = 1;
    for (int i = 0; i < 3; i++)
        if (in->levels & (1u << i)) {
            fprintf(f, "%s\"%s\"", first ? "" : ", ", level_names[i]);
            first = 0;
        }
    fputs("], \"dtype\": ", f);
    if (in->levels & EPLB_LEVEL_LOGITS)
        fprintf(f, "\"%s\"", eplb_dtype_name(in->logits_dtype));
    else
        fputs("null", f);
    fprintf(f,
            ", \"topk_id_bytes\": %d, \"has_bias\": %s, \"has_topk_weights\": %s, "
            "\"has_phase\": %s, \"has_src_rank\": %s",
            in->topk_id_bytes, in->has_bias ? "true" : "false",
            in->has_topk_weights ? "true" : "false", in->has_phase ? "true" : "false",
            in->has_src_rank ? "true" : "false");
    uint64_t st = 0, raw = 0;
    for (int i = 0; i < nsz; i++) {
        st += sz[i].stored;
        raw += sz[i].raw;
    }
    fprintf(f, ", \"sizes\": {\"stored_bytes\": %llu, \"raw_bytes\": %llu, \"datasets\": {",
            (unsigned long long)st, (unsigned long long)raw);
    for (int i = 0; i < nsz; i++)
        fprintf(f, "%s\"%s\": {\"stored_bytes\": %llu, \"raw_bytes\": %llu}", i ? ", " : "",
                sz[i].name, (unsigned long long)sz[i].stored, (unsigned long long)sz[i].raw);
    fputs("}}", f);
    if (rs->have && rs->ranks)
        fprintf(f,
                ", \"src_ranks\": {\"ranks\": %d, \"lowest\": %d, \"highest\": %d, "
                "\"tokens_min\": %lld, \"tokens_max\": %lld}",
                rs->ranks, rs->lo, rs->hi, (long long)rs->tmin, (long long)rs->tmax);
    else if (rs->have) /* a trace of no tokens */
        fputs(", \"src_ranks\": {\"ranks\": 0, \"lowest\": null, \"highest\": null, "
              "\"tokens_min\": null, \"tokens_max\": null}",
              f);
    else
        fputs(", \"src_ranks\": null", f);
    if (skew) {
        double mx = 0, mean = 0;
        fprintf(f, ", \"skew_source\": \"%s\", \"skew_per_layer\": [", skew_src);
        for (int l = 0; l < in->num_layers; l++) {
            fputs(l ? ", " : "", f);
            eplb_json_write_number(f, skew[l]);
            mx = skew[l] > mx ? skew[l] : mx;
            mean += skew[l] / in->num_layers;
        }
        fputs("], \"skew_max\": ", f);
        eplb_json_write_number(f, mx);
        fputs(", \"skew_mean\": ", f);
        eplb_json_write_number(f, mean);
    } else {
        fputs(", \"skew_source\": null, \"skew_per_layer\": null, \"skew_max\": null, "
              "\"skew_mean\": null",
              f);
    }
    fputs("}\n", f);
}

/* s with its control characters (C0, DEL) written as \xNN: the free-text
 * attributes of a trace are anyone's bytes, and escape sequences, CR or
 * newlines in them rewrote or faked lines of the description. */
static void put_escaped(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
}

static void print_text(const eplb_trace_t *tr, const eplb_trace_dataset_size_t *sz, int nsz,
                       const double *skew, const char *skew_src, const rank_summary_t *rs)
{
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    const eplb_route_cfg_t *r = &in->route;
    printf("trace        ");
    put_escaped(eplb_trace_path(tr));
    printf(" (schema v%d)\n", in->version);
    printf("model        ");
    put_escaped(in->model[0] ? in->model : "(unnamed)");
    printf("\nsource       ");
    put_escaped(in->source);
    printf("\n");
    printf("routing      %d layers, %d experts, top-%d %s, %d groups (top %d), renormalize %s, "
           "scaling %g%s\n",
           in->num_layers, r->num_experts, r->top_k, eplb_scoring_name(r->scoring),
           r->num_groups, r->topk_groups, r->renormalize ? "yes" : "no",
           (double)r->routed_scaling_factor, in->has_bias ? ", correction bias" : "");
    printf("steps        %lld\n", (long long)in->num_steps);
    printf("tokens       %lld (%.1f per step)\n", (long long)in->num_tokens,
           in->num_steps ? (double)in->num_tokens / (double)in->num_steps : 0.0);
    printf("levels      ");
    for (int i = 0; i < 3; i++)
        if (in->levels & (1u << i))
            printf(" %s", level_names[i]);
    printf("%s%s%s\n", in->has_topk_weights ? " (+topk_weights)" : "",
           in->has_phase ? " (+phase)" : "", in->has_src_rank ? " (+src_rank)" : "");
    if (in->levels & EPLB_LEVEL_LOGITS)
        printf("logits dtype %s\n", eplb_dtype_name(in->logits_dtype));
    if (rs->have && rs->ranks)
        printf("ranks        %d with tokens (src_rank %d..%d), %lld to %lld tokens each\n",
               rs->ranks, rs->lo, rs->hi, (long long)rs->tmin, (long long)rs->tmax);
    else if (rs->have)
        printf("ranks        none with tokens\n");
    printf("datasets     %-34s %14s %14s %7s\n", "", "stored bytes", "raw bytes", "ratio");
    for (int i = 0; i < nsz; i++)
        printf("             %-34s %14llu %14llu %7.2f\n", sz[i].name,
               (unsigned long long)sz[i].stored, (unsigned long long)sz[i].raw,
               sz[i].stored ? (double)sz[i].raw / (double)sz[i].stored : 0.0);
    if (!skew)
        return;
    double mx = 0, mean = 0;
    int arg = 0;
    for (int l = 0; l < in->num_layers; l++) {
        if (skew[l] > mx) {
            mx = skew[l];
            arg = l;
        }
        mean += skew[l] / in->num_layers;
    }
    printf("load skew    max/mean expert load over the trace (from %s): mean %.3f, max %.3f "
           "(layer %d)\n",
           skew_src, mean, mx, arg);
    printf("per layer   ");
    for (int l = 0; l < in->num_layers; l++)
        printf("%s%.2f", l % 10 == 0 && l ? "\n            " : " ", skew[l]);
    printf("\n");
}

int eplb_cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, do_skew = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--no-skew")) {
            do_skew = 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            /* one line, as run and rebalance say it */
            fprintf(stderr, "eplb-replay info: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "eplb-replay info: one trace at a time ('%s')\n", argv[i]);
            return 2;
        }
    }
    if (path && !*path) {
        fprintf(stderr, "eplb-replay info: TRACE.h5: empty path\n");
        return 2;
    }
    if (!path) {
        fprintf(stderr, "eplb-replay info: missing TRACE.h5 (see --help)\n");
        return 2;
    }
    eplb_trace_t *tr = NULL;
    eplb_status_t st = eplb_trace_open(&tr, path);
    if (st != EPLB_OK)
        return eplb_cmd_fail("info", st);
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    eplb_trace_dataset_size_t sz[MAX_SIZES];
    int nsz = 0;
    int64_t *load = NULL;
    double *skew = NULL;
    const char *skew_src = NULL;
    rank_summary_t rs = {0};
    int rc = 0;
    EPLB_CHECK_GOTO(eplb_trace_dataset_sizes(tr, sz, MAX_SIZES, &nsz), st, out);
    if (do_skew) {
        load = calloc((size_t)in->num_layers * (size_t)in->route.num_experts, sizeof *load);
        skew = calloc((size_t)in->num_layers, sizeof *skew);
        EPLB_ALLOC_GOTO(load, st, out);
        EPLB_ALLOC_GOTO(skew, st, out);
        /* "eplb-replay info: tokens read N of T (S s)" on a terminal, from
         * 2 s (routing a large trace's logits takes minutes) */
        eplb_progress_t prog;
        eplb_progress_init(&prog, "eplb-replay info");
        prog.unit = "tokens read";
        st = compute_load(load, &skew_src, tr, isatty(2) ? &prog : NULL);
        eplb_progress_end(&prog);
        if (st != EPLB_OK)
            goto out;
        EPLB_CHECK_GOTO(check_phase(tr), st, out);
        EPLB_CHECK_GOTO(rank_tokens(&rs, tr), st, out);
        skew_of(skew, load, in->num_layers, in->route.num_experts);
    }
    if (json)
        print_json(tr, sz, nsz, skew, skew_src, &rs);
    else
        print_text(tr, sz, nsz, skew, skew_src, &rs);
    /* a full disk or closed pipe must not pass for a description */
    if (st == EPLB_OK)
        st = eplb_cli_stdout_check();
out:
    if (st != EPLB_OK)
        rc = eplb_cmd_fail("info", st);
    free(load);
    free(skew);
    eplb_trace_close(tr);
    return rc;
}
