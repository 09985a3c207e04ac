/* cmd_import.c - `eplb-replay import`: ESFT routing logs and SGLang expert
 * counts to traces. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_util.h"
#include "cmd.h"
#include "import.h"
#include "trace.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: eplb-replay import --format esft DIR -o OUT.h5 [--tokens-per-step T]\n"
               "       eplb-replay import --format sglang-counts FILE.json -o OUT.h5\n"
               "                          [--top-k K] [--model NAME]\n"
               "\n"
               "Convert recorded routing data to a trace.\n"
               "\n"
               "  esft           DeepSeek ESFT logs: DIR/expert_weights_1..26.txt, one line\n"
               "                 per sample (ids, two tabs, weights; 6 per token).  Samples\n"
               "                 are packed in order into steps of at most T tokens (never\n"
               "                 split; a longer sample is a step of its own).  Writes topk\n"
               "                 ids (by descending weight), topk weights and stand-in\n"
               "                 float32 logits whose softmax top-6 reproduces them; prints\n"
               "                 how many tokens could not be reproduced.\n"
               "  sglang-counts  SGLang expert distribution {\"logical_count\": [layers]\n"
               "                 [experts]} (run totals: one step) or [steps][layers]\n"
               "                 [experts] (a stat-mode dump, converted from .pt: one step\n"
               "                 per pass); layers all zero in every step before the first\n"
               "                 and after the last layer with load (dense) are dropped, one\n"
               "                 between them kept; a step has ceil(largest layer sum / K)\n"
               "                 tokens.\n"
               "\n"
               "options:\n"
               "  --format FMT           esft or sglang-counts (required)\n"
               "  -o, --output OUT.h5    trace to write (written under a temporary name,\n"
               "                         renamed when complete, deleted if interrupted\n"
               "                         by SIGINT, SIGTERM or SIGHUP; an existing OUT.h5\n"
               "                         is replaced only then)\n"
               "  --tokens-per-step T    esft: tokens per step (default 512); the\n"
               "                         largest step's stand-in logits (26 x 64 x 4\n"
               "                         bytes a token) must fit in memory\n"
               "  --top-k K              sglang-counts: experts per token (default 8)\n"
               "  --model NAME           sglang-counts: model attribute (default\n"
               "                         DeepSeek-V3)\n"
               "  -h, --help             this help\n"
               "\n"
               "To record a trace from a running server (router logits, top-k ids or\n"
               "per-step counts, one file per rank, then merged), use the Python module\n"
               "traces/eplb_record.py (traces/FORMAT.md).\n");
}

/* 1 when writing `out` would overwrite an input: the SGLang file itself,
 * or one of the ESFT directory's expert_weights_*.txt logs (both were
 * replaced by the trace, with exit 0) */
static int out_is_input(const char *out, const char *in, int esft)
{
    if (!esft)
        return eplb_cli_same_file(out, in);
    const char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    struct stat so;
    if (strncmp(base, "expert_weights_", 15) != 0 || stat(out, &so) != 0)
        return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", base > out ? (int)(base - out) : 1,
             base > out ? out : ".");
    return eplb_cli_same_file(dir, in);
}

int eplb_cmd_import(int argc, char **argv)
{
    enum { OPT_FORMAT = 256, OPT_TOKENS, OPT_TOPK, OPT_MODEL };
    static const struct option longopts[] = {
        {"format", required_argument, NULL, OPT_FORMAT},
        {"output", required_argument, NULL, 'o'},
        {"tokens-per-step", required_argument, NULL, OPT_TOKENS},
        {"top-k", required_argument, NULL, OPT_TOPK},
        {"model", required_argument, NULL, OPT_MODEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = NULL, *out = NULL, *model = "DeepSeek-V3";
    int64_t tokens = 512, topk = 8;
    int tokens_set = 0, topk_set = 0, model_set = 0;
    eplb_status_t st = EPLB_OK;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = eplb_cli_getopt(argc, argv, ":o:h", longopts)) != -1) {
        switch (c) {
        case OPT_FORMAT: format = optarg; break;
        case 'o': out = optarg; break;
        case OPT_TOKENS:
            st = eplb_cli_int_parse(&tokens, optarg, "--tokens-per-step", 1, INT64_C(1) << 30);
            tokens_set = 1;
            break;
        case OPT_TOPK:
            st = eplb_cli_int_parse(&topk, optarg, "--top-k", 1, EPLB_MAX_TOPK);
            topk_set = 1;
            break;
        case OPT_MODEL:
            model = optarg;
            model_set = 1;
            break;
        case 'h': usage(stdout); return 0;
        default: st = eplb_cli_getopt_fail(c, argv); break;
        }
        if (st != EPLB_OK)
            return eplb_cmd_fail("import", st);
    }
    if (!format)
        return eplb_cmd_fail("import", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                      "--format: required (esft or "
                                                      "sglang-counts)"));
    /* an unknown format first: "import --format bogus" said "expected one
     * input file", naming neither --format nor its value */
    if (strcmp(format, "esft") && strcmp(format, "sglang-counts"))
        return eplb_cmd_fail("import",
                             eplb_error_set(EPLB_ERR_INVALID_ARG,
                                            "--format: unknown format '%s' (esft or "
                                            "sglang-counts)",
                                            format));
    if (optind != argc - 1)
        return eplb_cmd_fail("import",
                             eplb_error_set(EPLB_ERR_INVALID_ARG,
                                            "expected one input %s (see --help)",
                                            strcmp(format, "esft") ? "file" : "directory"));
    const char *in = argv[optind];
    if (!out)
        return eplb_cmd_fail("import",
                             eplb_error_set(EPLB_ERR_INVALID_ARG, "-o/--output: required"));
    if (!out[0])
        return eplb_cmd_fail("import",
                             eplb_error_set(EPLB_ERR_INVALID_ARG, "-o/--output: empty path"));
    if (!in[0])
        return eplb_cmd_fail("import", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                      "input %s: empty path",
                                                      strcmp(format, "esft") ? "file"
                                                                             : "directory"));
    if (out_is_input(out, in, strcmp(format, "esft") == 0))
        return eplb_cmd_fail("import", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                      "-o/--output: %s is an input of the "
                                                      "import; it would be overwritten",
                                                      out));
    if (strcmp(format, "esft") == 0) {
        if (topk_set || model_set)
            return eplb_cmd_fail("import",
                                 eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                "%s applies to --format sglang-counts only "
                                                "(%s)",
                                                topk_set ? "--top-k" : "--model",
                                                topk_set ? "ESFT logs are top-6"
                                                         : "the ESFT import sets the model"));
        int64_t bad = 0;
        /* an output that cannot be written is refused before the logs are read */
        if ((st = eplb_trace_writer_check_path(out)) != EPLB_OK)
            return eplb_cmd_fail("import", st);
        st = eplb_import_esft(in, out, tokens, &bad);
        if (st != EPLB_OK)
            return eplb_cmd_fail("import", st);
        fprintf(stderr,
                "eplb-replay import: wrote %s; %" PRId64 " tokens could not be "
                "reproduced by the stand-in logits\n",
                out, bad);
        return 0;
    }
    if (strcmp(format, "sglang-counts") == 0) {
        if (tokens_set)
            return eplb_cmd_fail("import",
                                 eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                "--tokens-per-step applies to --format esft "
                                                "only (SGLang counts keep the file's steps)"));
        /* a usage error, before anything is read or written (the writer
         * refused it only after reading the file, naming the output) */
        if (strlen(model) > EPLB_TRACE_MODEL_MAX)
            return eplb_cmd_fail("import", eplb_error_set(EPLB_ERR_INVALID_ARG,
                                                          "--model: %zu bytes; at most %d",
                                                          strlen(model),
                                                          EPLB_TRACE_MODEL_MAX));
        if ((st = eplb_trace_writer_check_path(out)) != EPLB_OK)
            return eplb_cmd_fail("import", st);
        st = eplb_import_sglang(in, out, (int)topk, model);
        if (st != EPLB_OK)
            return eplb_cmd_fail("import", st);
        fprintf(stderr, "eplb-replay import: wrote %s\n", out);
        return 0;
    }
    return eplb_cmd_fail("import", eplb_error_set(EPLB_ERR_INTERNAL,
                                                  "--format %s not handled", format));
}
