/* bench_io.c - `eplb-replay bench io TRACE.h5`: whole-dataset read of the
 * raw logits (else topk ids), plain H5Dread against the parallel reader
 * (raw chunks read and inflated on N threads).
 *
 * Every configuration is timed --repeat times and the median reported; a
 * first untimed serial read warms the page cache, so the numbers measure
 * decompression and copying, not the disk.  The parallel result is
 * compared with the serial one byte for byte. */
#include "cmd.h"

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "cli_util.h"
#include "decimal.h"
#include "tmpfile_guard.h"
#include "trace.h"

#define MAX_REPEAT 1000
#define MAX_READS 16
/* tokens of one --reads read: the loop over reads steps by two of them */
#define MAX_READ_TOKENS ((int64_t)1 << 40)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eplb-replay bench io TRACE.h5 [--threads N] [--repeat R] [--json]\n"
            "                            [--reads TOKENS[,TOKENS...]]\n\n"
            "Time the read of the whole /router/logits dataset (else /router/topk_ids):\n"
            "plain H5Dread (serial baseline, threads 0) and the parallel reader\n"
            "(raw chunks read, inflated and unshuffled on worker threads) with 1, 2, 4, ...\n"
            "up to N threads.  Reports the median of R runs after one warm-up read.\n\n"
            "  --threads N  largest thread count (default: EPLB_THREADS or the CPU count)\n"
            "  --repeat R   runs per configuration (default 5)\n"
            "  --reads T,.. instead: the logits read in consecutive reads of T tokens\n"
            "               (1 <= T <= 2^40)\n"
            "               (as the replay reads them, NaN/Inf check included) on N\n"
            "               threads, one read at a time (mode \"reads\") and two in\n"
            "               flight (\"reads2\", each read on N threads), against one\n"
            "               whole-dataset read on N threads; no serial baseline\n"
            "  --json       one JSON object per line:\n"
            "               {\"mode\":\"serial\"|\"parallel\",\"threads\":N,\"bytes\":B,\n"
            "                \"seconds\":S,\"mb_per_s\":X,\"speedup\":..., ...}\n"
            "               (MB = 10^6 bytes of raw, uncompressed data; with --reads\n"
            "               also \"read_tokens\", speedup against the whole read)\n"
            "  -h, --help   this text\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median seconds of `repeat` reads with `threads` (0: serial H5Dread).
 * Serial: the trace is reopened (untimed) before each read.  HDF5 ignores
 * the chunk cache of a second open of a dataset that is already open (the
 * trace's handle, whose cache holds two chunks): without the reopen, the
 * chunks cached by the previous read were copied, not inflated (a trace
 * of two chunks read at 10 GB/s, "x0.04" for the parallel reader). */
static eplb_status_t time_read(double *out, eplb_trace_t **tr, const char *path, void *buf,
                               int threads, int repeat)
{
    double t[MAX_REPEAT];
    for (int r = 0; r < repeat; r++) {
        if (threads == 0 && path) {
            const size_t bytes = eplb_trace_raw_bytes(*tr);
            eplb_trace_close(*tr);
            *tr = NULL;
            EPLB_CHECK(eplb_trace_open(tr, path));
            /* the path may now name another file (gen and import replace
             * a trace by rename): buf holds the first one's bytes only */
            if (eplb_trace_raw_bytes(*tr) != bytes)
                return eplb_error_set(EPLB_ERR_IO,
                                      "%s: the trace changed while it was timed (%zu bytes "
                                      "of data, now %zu)",
                                      path, bytes, eplb_trace_raw_bytes(*tr));
        }
        double t0 = eplb_now();
        eplb_status_t st = threads == 0 ? eplb_trace_read_all_serial(*tr, buf)
                                        : eplb_trace_read_all_parallel(*tr, buf, threads);
        if (st != EPLB_OK)
            return st;
        t[r] = eplb_now() - t0;
    }
    *out = median(t, repeat);
    return EPLB_OK;
}

/* --reads: the logits in consecutive reads of `tok` tokens, on `threads`
 * decode threads per read; `lanes` reads in flight (1 or 2: lane j takes
 * reads j, j + lanes, ... on its own thread, as the replay's read-ahead
 * keeps two going). */
typedef struct {
    const eplb_trace_t *tr;
    unsigned char *buf;
    size_t row;
    int64_t T, tok;
    int threads, lane, lanes;
    eplb_status_t st;
} reads_t;

static void *reads_lane(void *p)
{
    reads_t *a = p;
    a->st = EPLB_OK;
    for (int64_t t0 = a->lane * a->tok; t0 < a->T && a->st == EPLB_OK;
         t0 += (int64_t)a->lanes * a->tok) {
        const int64_t t1 = t0 + a->tok < a->T ? t0 + a->tok : a->T;
        a->st = eplb_trace_read_logits_parallel(a->tr, a->buf + (size_t)t0 * a->row, t0, t1,
                                                a->threads);
    }
    return NULL;
}

static eplb_status_t time_reads(double *out, const eplb_trace_t *tr, unsigned char *buf,
                                int64_t tok, int threads, int lanes, int repeat)
{
    lanes = lanes > 1 ? 2 : 1; /* (what a[] holds, as the compiler can see) */
    const int64_t T = eplb_trace_info(tr)->num_tokens; /* > 0: bench io checked the bytes */
    const size_t row = eplb_trace_raw_bytes(tr) / (size_t)T;
    double t[MAX_REPEAT];
    for (int r = 0; r < repeat; r++) {
        reads_t a[2];
        pthread_t th;
        for (int j = 0; j < lanes; j++)
            a[j] = (reads_t){tr, buf, row, T, tok, threads, j, lanes, EPLB_OK};
        double t0 = eplb_now();
        int helper = lanes > 1 && eplb_thread_create(&th, NULL, reads_lane, &a[1]) == 0;
        if (lanes > 1 && !helper)
            return eplb_error_set(EPLB_ERR_INTERNAL, "bench io: cannot start a thread");
        reads_lane(&a[0]);
        if (helper)
            pthread_join(th, NULL);
        t[r] = eplb_now() - t0;
        for (int j = 0; j < lanes; j++)
            if (a[j].st != EPLB_OK)
                return a[j].st;
    }
    *out = median(t, repeat);
    return EPLB_OK;
}

static void report(int json, const char *mode, int threads, size_t bytes, double sec,
                   double base, int identical, int repeat, const eplb_trace_t *tr,
                   int64_t read_tokens)
{
    const eplb_trace_info_t *in = eplb_trace_info(tr);
    const char *what = (in->levels & EPLB_LEVEL_LOGITS) ? "/router/logits" : "/router/topk_ids";
    const char *dt = (in->levels & EPLB_LEVEL_LOGITS) ? eplb_dtype_name(in->logits_dtype)
                                                      : (in->topk_id_bytes == 1 ? "u8" : "u16");
    double mbs = sec > 0 ? (double)bytes / 1e6 / sec : 0;
    if (json) {
        printf("{\"mode\":\"%s\",\"threads\":%d,\"bytes\":%zu,\"seconds\":%.6f,"
               "\"mb_per_s\":%.1f,\"speedup\":%.3f,\"identical\":%s,\"repeat\":%d,"
               "\"dataset\":\"%s\",\"dtype\":\"%s\"",
               mode, threads, bytes, sec, mbs, sec > 0 ? base / sec : 0,
               identical ? "true" : "false", repeat, what, dt);
        if (read_tokens > 0)
            printf(",\"read_tokens\":%lld", (long long)read_tokens);
        printf("}\n");
    } else {
        char tok[40] = "";
        if (read_tokens > 0)
            snprintf(tok, sizeof tok, " (%lld tokens)", (long long)read_tokens);
        printf("%-8s | %3d threads | %10zu bytes | %9.4f s | %8.1f MB/s | x%.2f%s%s\n", mode,
               threads, bytes, sec, mbs, sec > 0 ? base / sec : 0, tok,
               identical ? "" : " | DIFFERS");
    }
    fflush(stdout);
}

/* --reads: one whole read on `threads` (warm-up, then timed: the base),
 * then each read size one at a time and two in flight, each compared byte
 * for byte with the whole read (*rc = 1 where one differs) */
static eplb_status_t bench_reads(int json, eplb_trace_t *tr, unsigned char *whole,
                                 unsigned char *par, size_t bytes, int threads, int repeat,
                                 const int64_t *reads, int nreads, int *rc)
{
    EPLB_CHECK(eplb_trace_read_all_parallel(tr, whole, threads)); /* warm-up */
    double base;
    EPLB_CHECK(time_read(&base, &tr, NULL, whole, threads, repeat));
    report(json, "parallel", threads, bytes, base, base, 1, repeat, tr, 0);
    for (int i = 0; i < nreads; i++)
        for (int lanes = 1; lanes <= 2; lanes++) {
            memset(par, 0xa5, bytes);
            double sec;
            EPLB_CHECK(time_reads(&sec, tr, par, reads[i], threads, lanes, repeat));
            const int same = memcmp(whole, par, bytes) == 0;
            report(json, lanes == 1 ? "reads" : "reads2", threads, bytes, sec, base, same,
                   repeat, tr, reads[i]);
            if (!same)
                *rc = 1;
        }
    return EPLB_OK;
}

int eplb_bench_io(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, max_threads = 0, repeat = 5, nreads = 0;
    int64_t reads[MAX_READS];
    enum { OPT_JSON = 256, OPT_THREADS, OPT_REPEAT, OPT_READS };
    static const struct option lo[] = {
        {"json", no_argument, NULL, OPT_JSON},     {"threads", required_argument, NULL, OPT_THREADS},
        {"repeat", required_argument, NULL, OPT_REPEAT}, {"reads", required_argument, NULL, OPT_READS},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (path) {
                fprintf(stderr, "eplb-replay bench io: one trace at a time ('%s')\n", a);
                return 2;
            }
            path = a;
            continue;
        }
        /* "--X needs a value" and unknown options as in rebalance */
        const struct option *opt;
        const char *val;
        eplb_status_t st = eplb_cli_next_opt(&opt, &val, argc, argv, &i, lo);
        if (st != EPLB_OK) /* one line, the usage not after it */
            return eplb_cmd_fail("bench io", st);
        switch (opt->val) {
        case 'h':
            usage(stdout);
            return 0;
        case OPT_JSON:
            json = 1;
            break;
        case OPT_THREADS:
        case OPT_REPEAT: {
            int64_t v = 0;
            const int thr = opt->val == OPT_THREADS;
            if (eplb_decimal_parse(&v, val) != 0 || v < 1 || v > (thr ? 256 : MAX_REPEAT)) {
                fprintf(stderr, "eplb-replay bench io: --%s must be an integer in 1..%d\n",
                        opt->name, thr ? 256 : MAX_REPEAT);
                return 2;
            }
            if (thr)
                max_threads = (int)v;
            else
                repeat = (int)v;
            break;
        }
        case OPT_READS:
            for (const char *p = val;;) {
                const char *end;
                int64_t v = 0;
                /* past MAX_READ_TOKENS (and past int64) the read loop's
                 * steps overflowed */
                if (eplb_decimal_read(&v, &end, p) != 0 || v < 1 || v > MAX_READ_TOKENS ||
                    (*end && *end != ',') || nreads == MAX_READS) {
                    fprintf(stderr,
                            "eplb-replay bench io: --reads wants up to %d token counts in "
                            "1..%lld, comma-separated ('%s')\n",
                            MAX_READS, (long long)MAX_READ_TOKENS, val);
                    return 2;
                }
                reads[nreads++] = v;
                if (!*end)
                    break;
                p = end + 1;
            }
            break;
        }
    }
    if (path && !*path) {
        fprintf(stderr, "eplb-replay bench io: TRACE.h5: empty path\n");
        return 2;
    }
    if (!path) {
        fprintf(stderr, "eplb-replay bench io: missing TRACE.h5 (see --help)\n");
        return 2;
    }
    if (max_threads == 0)
        max_threads = eplb_num_threads();

    eplb_trace_t *tr = NULL;
    eplb_status_t st = eplb_trace_open(&tr, path);
    if (st != EPLB_OK)
        return eplb_cmd_fail("bench io", st);
    int rc = 0;
    unsigned char *ser = NULL, *par = NULL;
    size_t bytes = eplb_trace_raw_bytes(tr);
    if (bytes == 0) {
        /* the file's content, not an option: a runtime error (exit 1) */
        st = eplb_error_set(EPLB_ERR_FORMAT,
                            "%s: no /router/logits or /router/topk_ids data to read", path);
        goto out;
    }
    if (nreads > 0 && !(eplb_trace_info(tr)->levels & EPLB_LEVEL_LOGITS)) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: --reads needs /router/logits", path);
        goto out;
    }
    ser = malloc(bytes);
    par = malloc(bytes);
    EPLB_ALLOC_GOTO(ser, st, out);
    EPLB_ALLOC_GOTO(par, st, out);
    if (!eplb_trace_parallel_supported(tr))
        fprintf(stderr,
                "eplb-replay bench io: %s: storage not supported by the parallel path "
                "(filters or layout); it falls back to H5Dread\n",
                path);
    if (!json)
        printf("# %s: %s, chunks of %lld tokens, median of %d\n", path,
               (eplb_trace_info(tr)->levels & EPLB_LEVEL_LOGITS) ? "/router/logits"
                                                                 : "/router/topk_ids",
               (long long)eplb_trace_chunk_tokens(tr), repeat);
    if (nreads > 0) {
        st = bench_reads(json, tr, ser, par, bytes, max_threads, repeat, reads, nreads, &rc);
        goto out;
    }
    EPLB_CHECK_GOTO(eplb_trace_read_all_serial(tr, ser), st, out); /* warm-up */
    double base;
    EPLB_CHECK_GOTO(time_read(&base, &tr, path, ser, 0, repeat), st, out);
    report(json, "serial", 0, bytes, base, base, 1, repeat, tr, 0);
    for (int t = 1;; t = t * 2 < max_threads && t * 2 > t ? t * 2 : max_threads) {
        memset(par, 0xa5, bytes);
        double sec;
        EPLB_CHECK_GOTO(time_read(&sec, &tr, path, par, t, repeat), st, out);
        report(json, "parallel", t, bytes, sec, base, memcmp(ser, par, bytes) == 0, repeat, tr,
               0);
        if (memcmp(ser, par, bytes) != 0)
            rc = 1;
        if (t >= max_threads)
            break;
    }
out:
    if (st != EPLB_OK)
        rc = eplb_cmd_fail("bench io", st);
    free(ser);
    free(par);
    eplb_trace_close(tr);
    return rc;
}
