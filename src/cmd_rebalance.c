/* cmd_rebalance.c - `eplb-replay rebalance`: run one policy on expert loads
 * and print the placement (JSON or CSV), or export it for SGLang
 * (--init-expert-location) or TensorRT-LLM (MoE load balancer YAML). */
#include "cmd.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "checks.h"
#include "cli_util.h"
#include "decimal.h"
#include "json.h"
#include "policy.h"
#include "progress.h"

static const char *CMD = "rebalance";

/* bounds: EPLB_MAX_SLOTS per layer, EPLB_MAX_LAYER_SLOTS for layers x
 * --replicas (cli_util.h) */
/* the largest --weights text read (a huge file must not read until memory
 * runs out) */
#define MAX_TEXT_BYTES ((size_t)1 << 30)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eplb-replay rebalance --weights FILE --replicas P --gpus D\n"
            "           [--groups G] [--nodes N] [--policy NAME] [--old FILE]\n"
            "           [--max-moves M] [--format json|csv] [--export sglang|trtllm]\n"
            "           [--layer-offset K]\n\n"
            "Run a rearrangement policy on per-layer expert loads and print the placement.\n\n"
            "  --weights FILE   loads, layers x experts: JSON [[...], ...], SGLang's\n"
            "                   {\"logical_count\": [[...]]} (all-zero layers kept; a 3-D\n"
            "                   [steps][layers][experts] count is summed and also given to\n"
            "                   `vec` as its time series), or CSV with one layer per line\n"
            "  --replicas P     physical expert slots per layer (P >= experts, P %% D == 0,\n"
            "                   P <= %d)\n"
            "  --gpus D         GPUs (D %% N == 0, D <= %d); slot p lives on GPU p / (P/D)\n"
            "  --groups G       expert groups (experts %% G == 0; default 1)\n"
            "  --nodes N        nodes (default 1)\n"
            "  --policy NAME    default deepseek; one of:\n",
            EPLB_MAX_SLOTS, EPLB_MAX_GPUS);
    size_t n;
    const eplb_policy_t *t = eplb_policy_table(&n);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "                     %-18s %s\n", t[i].name, t[i].description);
    fprintf(f,
            "  --old FILE       current placement, JSON phy2log [[...]] (layers x P) or\n"
            "                   {\"physical_to_logical_map\": [[...]]}; default: slot p holds\n"
            "                   expert p mod E.  Used by deepseek-preserve, migration-aware,\n"
            "                   none, and to count moves (with --export: those policies only)\n"
            "  --max-moves M    migration-aware only: slots allowed to change per layer\n"
            "                   (default 16; -1: unlimited; then up to ~1 s per layer at\n"
            "                   4096 slots: on a terminal \"layer N of L\" shows on stderr\n"
            "                   after 2 s)\n"
            "  --format F       json (default): {\"policy\", \"phy2log\", \"log2phy\", "
            "\"logcnt\",\n"
            "                   \"gpu_load\", \"balancedness\", \"moves\"}; csv: one row per slot\n"
            "                   (layer,slot,gpu,node,expert,rank,moved).  An --export fixes\n"
            "                   the format (sglang: json, trtllm: YAML; no other --format)\n"
            "  --export sglang  instead: {\"physical_to_logical_map\": ...} for SGLang's\n"
            "                   --init-expert-location\n"
            "  --export trtllm  instead: TensorRT-LLM MoE load balancer YAML (num_slots,\n"
            "                   initial_global_assignments keyed by layer index + K, all-zero\n"
            "                   (dense) layers left out, layer_updates_per_iter: 0)\n"
            "  --layer-offset K --export trtllm only: added to its layer keys (default 0;\n"
            "                   K + layers - 1 <= 2147483647)\n"
            "  -h, --help       this text\n\n"
            "gpu_load splits each expert's load evenly over its replicas; balancedness is\n"
            "mean/max GPU load per layer; moves counts slots that differ from the old\n"
            "placement.  log2phy lists replicas in the order the policy created them (the\n"
            "DeepSeek reference's layout), -1 padded to the largest replica count.\n"
            "Exit status: 0 ok, 1 unreadable or malformed file (--weights, --old), 2 bad\n"
            "option or impossible request.\n");
}

/* An int option; the ranges each option needs are checked after parsing
 * (a number past int says so, where it read "is not an integer"). */
static eplb_status_t parse_int(int *out, const char *opt, const char *s)
{
    int64_t v;
    EPLB_CHECK(eplb_cli_int_parse(&v, s, opt, -2147483647, 2147483647));
    *out = (int)v;
    return EPLB_OK;
}

/* CSV: one layer per line, numbers separated by commas; blank lines and
 * lines starting with '#' are skipped. */
static eplb_status_t parse_csv(float **out, int *rows, int *cols, char *text, const char *path)
{
    eplb_status_t st = EPLB_OK;
    size_t cap = 1024, n = 0;
    float *m = malloc(cap * sizeof *m);
    int r = 0, c = -1, line = 0;
    EPLB_ALLOC_GOTO(m, st, err);
    for (char *s = text; *s;) {
        char *eol = strchr(s, '\n');
        if (eol)
            *eol = '\0';
        line++;
        char *p = s;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p && *p != '#') {
            int k = 0;
            for (;;) {
                char *end;
                errno = 0;
                while (*p == ' ' || *p == '\t') /* "1, 2": spaces after the comma */
                    p++;
                const size_t len = eplb_decimal_real_len(p);
                /* read as a double, then rounded to float, as the JSON
                 * reader does (eplb_json_matrix_f32): strtof rounds the
                 * decimal once, and the same text then gave another load
                 * in CSV than in JSON (1.0000000596046447753906251: 1 + 2^-23
                 * here, 1 there), and another placement on a near tie */
                const double d = strtod(p, &end);
                float v = (float)d;
                if (end == p) {
                    st = eplb_error_set(EPLB_ERR_FORMAT, "%s: line %d value %d is not a number",
                                        path, line, k + 1);
                    goto err;
                }
                /* strtod also took "+5" and "0x10" (16): a number here is
                 * decimal (src/decimal.h); inf and nan are read, and the
                 * loads' check names their layer and expert */
                const char *w = p + (*p == '-');
                const int word = !strncasecmp(w, "inf", 3) || !strncasecmp(w, "nan", 3);
                if (!word && end != p + len) {
                    st = eplb_error_set(EPLB_ERR_FORMAT,
                                        "%s: line %d value %d: '%.*s' is not a decimal number "
                                        "(digits, '.', an exponent; no '+' or hexadecimal)",
                                        path, line, k + 1, (int)(end - p > 40 ? 40 : end - p), p);
                    goto err;
                }
                /* 1e39 read as inf, and the message then said the file
                 * held "inf" */
                if ((errno == ERANGE && isinf(d)) || (isfinite(d) && isinf(v))) {
                    st = eplb_error_set(EPLB_ERR_FORMAT,
                                        "%s: line %d value %d: '%.*s' is beyond the range of "
                                        "a float (3.4e38)",
                                        path, line, k + 1, (int)(end - p > 40 ? 40 : end - p),
                                        p);
                    goto err;
                }
                if (n == cap) {
                    float *nm = realloc(m, (cap *= 2) * sizeof *m);
                    EPLB_ALLOC_GOTO(nm, st, err);
                    m = nm;
                }
                m[n++] = v;
                k++;
                p = end;
                while (*p == ' ' || *p == '\t' || *p == '\r')
                    p++;
                if (*p == ',') {
                    p++;
                    continue;
                }
                if (*p) {
                    /* a byte that does not print is shown by its value (it
                     * went raw into the message) */
                    unsigned char b = (unsigned char)*p;
                    char shown[16];
                    snprintf(shown, sizeof shown, b > 0x20 && b < 0x7f ? "'%c'" : "byte 0x%02x",
                             b);
                    st = eplb_error_set(EPLB_ERR_FORMAT, "%s: line %d: unexpected %s", path,
                                        line, shown);
                    goto err;
                }
                break;
            }
            if (c >= 0 && k != c) {
                st = eplb_error_set(EPLB_ERR_FORMAT,
                                    "%s: ragged rows: line %d has %d values, the first row %d",
                                    path, line, k, c);
                goto err;
            }
            c = k;
            r++;
        }
        if (!eol)
            break;
        s = eol + 1;
    }
    if (r == 0) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: no rows", path);
        goto err;
    }
    *out = m;
    *rows = r;
    *cols = c;
    return EPLB_OK;
err:
    free(m);
    return st;
}

/* Depth of nested arrays at the first element (1 = flat array). */
static int json_depth(const eplb_json_t *v)
{
    int d = 0;
    while (v && v->type == EPLB_JSON_ARRAY) {
        d++;
        v = eplb_json_at(v, 0); /* NULL for a packed array (of numbers) */
    }
    return d;
}

/* Weights [L][E]; with a 3-D input also the series [S][L][E] (cmd.h). */
eplb_status_t eplb_weights_load(float **w_out, int *L_out, int *E_out, float **series_out,
                                int *S_out, const char *path)
{
    eplb_status_t st = EPLB_OK;
    char *text = NULL;
    size_t len = 0;
    eplb_json_t *root = NULL;
    float *w = NULL, *series = NULL, *m = NULL;
    int L = 0, E = 0, S = 0;
    EPLB_CHECK_GOTO(eplb_input_file_read(&text, &len, path, MAX_TEXT_BYTES), st, out);
    /* a UTF-8 byte order mark is skipped (the JSON reader does too): it
     * sent a JSON file to the CSV reader ("line 1 value 1 is not a
     * number") */
    char *body = text;
    if (!strncmp(body, "\xEF\xBB\xBF", 3))
        body += 3;
    const char *p = body;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p != '[' && *p != '{') {
        EPLB_CHECK_GOTO(parse_csv(&w, &L, &E, body, path), st, out);
    } else {
        EPLB_CHECK_GOTO(eplb_json_parse(&root, text, len, path), st, out);
        const eplb_json_t *v = root;
        if (root->type == EPLB_JSON_OBJECT) {
            v = eplb_json_get(root, "logical_count");
            if (!v) {
                st = eplb_error_set(EPLB_ERR_FORMAT,
                                    "%s: object without \"logical_count\" (expected "
                                    "[[...]] or SGLang's {\"logical_count\": [[...]]})",
                                    path);
                goto out;
            }
        }
        int depth = json_depth(v);
        if (depth == 3) { /* [S][L][E]: a time series */
            S = (int)v->n;
            for (int s = 0; s < S; s++) {
                int r, c;
                /* the errors name the step ("PATH: step S: row R ...") */
                char what[4200];
                snprintf(what, sizeof what, "%s: step %d", path, s);
                EPLB_CHECK_GOTO(eplb_json_matrix_f32(&m, &r, &c, eplb_json_at(v, (size_t)s), what),
                                st, out);
                if (s == 0) {
                    L = r;
                    E = c;
                    series = malloc((size_t)S * L * E * sizeof *series);
                    EPLB_ALLOC_GOTO(series, st, out);
                } else if (r != L || c != E) {
                    st = eplb_error_set(EPLB_ERR_FORMAT,
                                        "%s: step %d is %d x %d, step 0 is %d x %d", path, s, r,
                                        c, L, E);
                    goto out;
                }
                memcpy(series + (size_t)s * L * E, m, (size_t)L * E * sizeof *m);
                free(m);
                m = NULL;
            }
            w = calloc((size_t)L * E, sizeof *w);
            EPLB_ALLOC_GOTO(w, st, out);
            /* summed in double: a float sum of large counts became inf, and
             * the message said the file held "inf" */
            for (size_t i = 0; i < (size_t)L * E; i++) {
                double sum = 0;
                for (int s = 0; s < S; s++)
                    sum += series[(size_t)s * L * E + i];
                if (isinf((float)sum)) {
                    st = eplb_error_set(EPLB_ERR_FORMAT,
                                        "%s: layer %zu expert %zu: the sum over the %d steps "
                                        "(%g) is beyond the range of a float (3.4e38)",
                                        path, i / E, i % E, S, sum);
                    goto out;
                }
                w[i] = (float)sum;
            }
        } else if (depth == 2) {
            EPLB_CHECK_GOTO(eplb_json_matrix_f32(&w, &L, &E, v, path), st, out);
        } else {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: expected a layers x experts matrix [[...], ...]", path);
            goto out;
        }
    }
    if (L < 1 || E < 1) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: empty weights", path);
        goto out;
    }
    *w_out = w;
    *L_out = L;
    *E_out = E;
    *series_out = series;
    *S_out = S;
    w = series = NULL;
out:
    free(m);
    free(w);
    free(series);
    eplb_json_free(root);
    free(text);
    return st;
}

/* An error of the file given to option opt: "PATH: why" becomes
 * "OPT PATH: why", as the other --old errors read (the readers name only
 * the path); an error not about the file is kept as it is. */
static eplb_status_t name_option(eplb_status_t st, const char *opt, const char *path)
{
    const char *msg = eplb_error_last();
    size_t n = strlen(path);
    if (st == EPLB_OK || strncmp(msg, path, n) != 0 || msg[n] != ':')
        return st;
    char why[1024];
    snprintf(why, sizeof why, "%s", msg);
    return eplb_error_set(st, "%s %s", opt, why);
}

static eplb_status_t load_old(int32_t **out, const char *path, int L, int E, int P)
{
    eplb_json_t *root = NULL;
    int32_t *m = NULL;
    int r = 0, c = 0;
    eplb_status_t st = name_option(eplb_json_parse_file(&root, path), "--old", path);
    if (st != EPLB_OK)
        return st;
    const eplb_json_t *v = root;
    if (root->type == EPLB_JSON_OBJECT)
        v = eplb_json_get(root, "physical_to_logical_map");
    if (!v) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "--old %s: expected phy2log [[...]]", path);
        goto out;
    }
    st = name_option(eplb_json_matrix_i32(&m, &r, &c, v, path), "--old", path);
    if (st != EPLB_OK)
        goto out;
    /* what the file holds, shape and ids, is a malformed file (exit 1), not
     * an impossible request: the options are checked before it is read */
    if (r != L || c != P) {
        st = eplb_error_set(EPLB_ERR_FORMAT,
                            "--old %s: shape [%d][%d], expected [%d][%d] (layers x replicas)",
                            path, r, c, L, P);
        goto out;
    }
    {
        char what[512];
        snprintf(what, sizeof what, "%s (--old)", path);
        if (eplb_placement_check(m, L, E, P, what) != EPLB_OK) {
            char why[768];
            snprintf(why, sizeof why, "%s", eplb_error_last());
            st = eplb_error_set(EPLB_ERR_FORMAT, "%s", why);
            goto out;
        }
    }
    *out = m;
    m = NULL;
out:
    free(m);
    eplb_json_free(root);
    return st;
}

/* Loads read from a file must be finite and >= 0; the message names the
 * file (the status is that of eplb_policy_args_check: a refused request). */
static eplb_status_t check_loads(const float *v, size_t n, int L, int E, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || v[i] < 0) {
            size_t le = (size_t)L * E;
            /* a malformed file (exit 1), not an impossible request */
            if (n > le)
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: step %zu layer %zu expert %zu is %g; loads must "
                                      "be finite and >= 0", path, i / le, i % le / E,
                                      i % E, (double)v[i]);
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s: layer %zu expert %zu is %g; loads must be finite "
                                  "and >= 0", path, i / E, i % E, (double)v[i]);
        }
    return EPLB_OK;
}

static void write_i32_rows(FILE *f, const int32_t *a, int rows, int cols)
{
    fputc('[', f);
    for (int r = 0; r < rows; r++) {
        if (r)
            fputc(',', f);
        eplb_json_write_i32_array(f, a + (size_t)r * cols, (size_t)cols);
    }
    fputc(']', f);
}

typedef struct {
    const char *weights, *policy, *old, *format, *export_;
    int P, G, N, D, max_moves, layer_offset;
} opts_t;

enum {
    OPT_WEIGHTS = 256,
    OPT_REPLICAS,
    OPT_GROUPS,
    OPT_NODES,
    OPT_GPUS,
    OPT_POLICY,
    OPT_OLD,
    OPT_MAX_MOVES,
    OPT_FORMAT,
    OPT_EXPORT,
    OPT_LAYER_OFFSET
};

static const struct option LONGOPTS[] = {
    {"weights", required_argument, NULL, OPT_WEIGHTS},
    {"replicas", required_argument, NULL, OPT_REPLICAS},
    {"groups", required_argument, NULL, OPT_GROUPS},
    {"nodes", required_argument, NULL, OPT_NODES},
    {"gpus", required_argument, NULL, OPT_GPUS},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"old", required_argument, NULL, OPT_OLD},
    {"max-moves", required_argument, NULL, OPT_MAX_MOVES},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"export", required_argument, NULL, OPT_EXPORT},
    {"layer-offset", required_argument, NULL, OPT_LAYER_OFFSET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Store the value of option id (an OPT_ of LONGOPTS) in o. */
static eplb_status_t set_opt(opts_t *o, int id, const char *val)
{
    switch (id) {
    case OPT_WEIGHTS: o->weights = val; return EPLB_OK;
    case OPT_REPLICAS: return parse_int(&o->P, "--replicas", val);
    case OPT_GROUPS: return parse_int(&o->G, "--groups", val);
    case OPT_NODES: return parse_int(&o->N, "--nodes", val);
    case OPT_GPUS: return parse_int(&o->D, "--gpus", val);
    case OPT_POLICY: o->policy = val; return EPLB_OK;
    case OPT_OLD: o->old = val; return EPLB_OK;
    case OPT_MAX_MOVES: return parse_int(&o->max_moves, "--max-moves", val);
    case OPT_FORMAT: o->format = val; return EPLB_OK;
    case OPT_EXPORT: o->export_ = val; return EPLB_OK;
    case OPT_LAYER_OFFSET: return parse_int(&o->layer_offset, "--layer-offset", val);
    }
    return eplb_error_set(EPLB_ERR_INTERNAL, "rebalance: option %d not handled", id);
}

/* Options given that the request would silently ignore are refused: an
 * export fixes the output format (sglang JSON, trtllm YAML), --layer-offset
 * shifts the trtllm keys, --max-moves bounds migration-aware, and --old with
 * an export (no moves printed) needs a policy that starts from it. */
static eplb_status_t check_applicable(const opts_t *o, int have_moves, int have_format,
                                      int have_offset)
{
    int trtllm = o->export_ && !strcmp(o->export_, "trtllm");
    if (have_format && o->export_ && (trtllm || strcmp(o->format, "json")))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--format %s does not apply to --export %s (it writes %s); "
                              "drop --format",
                              o->format, o->export_, trtllm ? "YAML" : "JSON");
    if (have_offset && !trtllm)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--layer-offset applies to --export trtllm only (it shifts the "
                              "layer keys of that YAML)%s%s",
                              o->export_ ? "; --export is " : "", o->export_ ? o->export_ : "");
    if (have_moves && strcmp(o->policy, "migration-aware"))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--max-moves applies to --policy migration-aware only (%s does "
                              "not limit moved slots)",
                              o->policy);
    if (o->old && o->export_ && strcmp(o->policy, "deepseek-preserve") &&
        strcmp(o->policy, "migration-aware") && strcmp(o->policy, "none"))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--old does not apply to --policy %s with --export %s (the "
                              "policy does not start from it and the export prints no moves)",
                              o->policy, o->export_);
    return EPLB_OK;
}

/* The options of the arguments a failed shape check names ("replicas,
 * gpus" -> "--replicas, --gpus": each option is its argument's name). */
static const char *option_names(char *buf, size_t n, const char *fields)
{
    size_t k = 0;
    for (const char *f = fields; *f && k + 3 < n;) {
        size_t len = strcspn(f, ",");
        k += (size_t)snprintf(buf + k, n - k, "%s--%.*s", k ? ", " : "", (int)len, f);
        f += len;
        f += strspn(f, ", ");
    }
    return buf;
}

int eplb_cmd_rebalance(int argc, char **argv)
{
    opts_t o = {NULL, "deepseek", NULL, "json", NULL, 0, 1, 1, 0, 16, 0};
    /* options given, not defaulted: only those are refused where they do
     * not apply */
    int have_p = 0, have_d = 0, have_moves = 0, have_format = 0, have_offset = 0;
    eplb_status_t st = EPLB_OK;
    float *w = NULL, *series = NULL;
    int32_t *old = NULL, *phy2log = NULL, *rank = NULL, *logcnt = NULL, *log2phy = NULL;
    int32_t *defrow = NULL;
    double *load = NULL;
    int L = 0, E = 0, S = 0, rc = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        const struct option *opt = NULL;
        const char *val = NULL;
        EPLB_CHECK_GOTO(eplb_cli_next_opt(&opt, &val, argc, argv, &i, LONGOPTS), st, out);
        EPLB_CHECK_GOTO(set_opt(&o, opt->val, val), st, out);
        have_p |= opt->val == OPT_REPLICAS;
        have_d |= opt->val == OPT_GPUS;
        have_moves |= opt->val == OPT_MAX_MOVES;
        have_format |= opt->val == OPT_FORMAT;
        have_offset |= opt->val == OPT_LAYER_OFFSET;
    }
    if ((o.weights && !*o.weights) || (o.old && !*o.old)) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "%s: empty path",
                            o.weights && !*o.weights ? "--weights" : "--old");
        goto out;
    }
    if (!o.weights || !have_p || !have_d) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "--weights, --replicas and --gpus are required (see --help)");
        goto out;
    }
    if (o.P > EPLB_MAX_SLOTS) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "--replicas: %d is more than %d slots per layer", o.P,
                            EPLB_MAX_SLOTS);
        goto out;
    }
    if (o.D > EPLB_MAX_GPUS) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "--gpus: %d is more than %d", o.D,
                            EPLB_MAX_GPUS);
        goto out;
    }
    if (o.max_moves < -1) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "--max-moves: %d; expected -1 or >= 0",
                            o.max_moves);
        goto out;
    }
    if (o.layer_offset < 0) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "--layer-offset: %d; expected >= 0",
                            o.layer_offset);
        goto out;
    }
    const eplb_policy_t *pol = eplb_policy_find(o.policy);
    if (!pol && !strcmp(o.policy, "oracle")) { /* a schedule of run, not a placement */
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "--policy oracle: the oracle is deepseek fed a trace's next window, "
                            "which only `eplb-replay run TRACE.h5 --policy oracle` has; here "
                            "the weights are the window: use --policy deepseek");
        goto out;
    }
    if (!pol) {
        st = eplb_policy_unknown(o.policy, 0);
        goto out;
    }
    if (strcmp(o.format, "json") && strcmp(o.format, "csv")) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "--format: '%s' is not json or csv",
                            o.format);
        goto out;
    }
    if (o.export_ && strcmp(o.export_, "sglang") && strcmp(o.export_, "trtllm")) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG, "--export: '%s' is not sglang or trtllm",
                            o.export_);
        goto out;
    }
    EPLB_CHECK_GOTO(check_applicable(&o, have_moves, have_format, have_offset), st, out);
    st = eplb_weights_load(&w, &L, &E, &series, &S, o.weights);
    /* the series first: its message names the step of a bad value (the
     * sums only carry it on) */
    if (st == EPLB_OK && series)
        st = check_loads(series, (size_t)S * L * E, L, E, o.weights);
    if (st == EPLB_OK)
        st = check_loads(w, (size_t)L * E, L, E, o.weights);
    EPLB_CHECK_GOTO(name_option(st, "--weights", o.weights), st, out);
    if ((int64_t)o.layer_offset + L - 1 > INT_MAX) {
        /* the trtllm keys (layer + K) are ints: the last must not wrap */
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "--layer-offset %d: with the %d layers of %s the last key would "
                            "be %lld, beyond %d",
                            o.layer_offset, L, o.weights, (long long)o.layer_offset + L - 1,
                            INT_MAX);
        goto out;
    }
    if ((int64_t)L * o.P > EPLB_MAX_LAYER_SLOTS) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "--replicas %d x %d layers of %s: more than %lld slots", o.P, L,
                            o.weights, (long long)EPLB_MAX_LAYER_SLOTS);
        goto out;
    }
    eplb_policy_args_t args = EPLB_POLICY_ARGS_INIT;
    args.num_replicas = o.P;
    args.num_groups = o.G;
    args.num_nodes = o.N;
    args.num_gpus = o.D;
    /* more moves than EPLB_MAX_SLOTS (>= P) is no tighter a limit; keeps the
     * policy's iteration arithmetic (4 x max_moves) inside int */
    args.max_moves = o.max_moves > EPLB_MAX_SLOTS ? EPLB_MAX_SLOTS : o.max_moves;
    args.series = series;
    args.series_steps = S;
    /* the options before --old is read: a placement of the wrong width for
     * an impossible --replicas was blamed on the file (exit 1) */
    const char *fields = NULL;
    st = eplb_policy_args_check_fields(&args, L, E, w, &fields);
    if (fields) {
        char opts[96];
        st = eplb_cli_name_option(st, option_names(opts, sizeof opts, fields));
    }
    if (st != EPLB_OK)
        goto out;
    if (o.old)
        EPLB_CHECK_GOTO(load_old(&old, o.old, L, E, o.P), st, out);
    args.old_phy2log = old; /* checked by load_old */

    int P = o.P, D = o.D;
    phy2log = malloc((size_t)L * P * sizeof *phy2log);
    rank = malloc((size_t)L * P * sizeof *rank);
    logcnt = malloc((size_t)L * E * sizeof *logcnt);
    load = malloc((size_t)L * D * sizeof *load);
    defrow = malloc((size_t)P * sizeof *defrow);
    EPLB_ALLOC_GOTO(phy2log, st, out);
    EPLB_ALLOC_GOTO(rank, st, out);
    EPLB_ALLOC_GOTO(logcnt, st, out);
    EPLB_ALLOC_GOTO(load, st, out);
    EPLB_ALLOC_GOTO(defrow, st, out);
    /* a slow policy's progress on a terminal (src/progress.h) */
    eplb_progress_t prog;
    char what[96];
    snprintf(what, sizeof what, "%s: %s", CMD, pol->name);
    eplb_progress_init(&prog, what);
    if (isatty(2)) {
        args.progress = eplb_progress_report;
        args.progress_ctx = &prog;
    }
    st = pol->fn(phy2log, rank, w, L, E, &args);
    eplb_progress_end(&prog);
    if (st != EPLB_OK)
        goto out;

    /* width of log2phy: the largest replica count, as the reference */
    eplb_placement_derive(logcnt, NULL, 0, phy2log, NULL, L, E, P);
    int maxcnt = 1;
    for (size_t i = 0; i < (size_t)L * E; i++)
        if (logcnt[i] > maxcnt)
            maxcnt = logcnt[i];
    log2phy = malloc((size_t)L * E * maxcnt * sizeof *log2phy);
    EPLB_ALLOC_GOTO(log2phy, st, out);
    eplb_placement_derive(logcnt, log2phy, maxcnt, phy2log, rank, L, E, P);
    eplb_placement_gpu_load(load, phy2log, w, L, E, P, D);
    eplb_placement_default(defrow, 1, E, P);

    FILE *f = stdout;
    if (o.export_ && !strcmp(o.export_, "sglang")) {
        fputs("{\"physical_to_logical_map\": ", f);
        write_i32_rows(f, phy2log, L, P);
        fputs("}\n", f);
    } else if (o.export_) {
        fprintf(f, "num_slots: %d\ninitial_global_assignments:\n", P);
        for (int l = 0; l < L; l++) {
            int any = 0;
            for (int e = 0; e < E && !any; e++)
                any = w[(size_t)l * E + e] != 0;
            if (!any)
                continue;
            fprintf(f, "  %d: [", l + o.layer_offset);
            for (int p = 0; p < P; p++)
                fprintf(f, p ? ", %d" : "%d", (int)phy2log[(size_t)l * P + p]);
            fputs("]\n", f);
        }
        fputs("layer_updates_per_iter: 0\n", f);
    } else if (!strcmp(o.format, "csv")) {
        fputs("layer,slot,gpu,node,expert,rank,moved\n", f);
        for (int l = 0; l < L; l++) {
            const int32_t *orow = old ? old + (size_t)l * P : defrow;
            for (int p = 0; p < P; p++) {
                int g = p / (P / D);
                fprintf(f, "%d,%d,%d,%d,%d,%d,%d\n", l, p, g, g / (D / o.N),
                        (int)phy2log[(size_t)l * P + p], (int)rank[(size_t)l * P + p],
                        orow[p] != phy2log[(size_t)l * P + p]);
            }
        }
    } else {
        fputs("{\"policy\": ", f);
        eplb_json_write_string(f, pol->name);
        fputs(",\n\"phy2log\": ", f);
        write_i32_rows(f, phy2log, L, P);
        fputs(",\n\"log2phy\": [", f);
        for (int l = 0; l < L; l++) {
            if (l)
                fputc(',', f);
            write_i32_rows(f, log2phy + (size_t)l * E * maxcnt, E, maxcnt);
        }
        fputs("],\n\"logcnt\": ", f);
        write_i32_rows(f, logcnt, L, E);
        fputs(",\n\"gpu_load\": [", f);
        for (int l = 0; l < L; l++) {
            fputs(l ? ",[" : "[", f);
            for (int g = 0; g < D; g++) {
                if (g)
                    fputc(',', f);
                eplb_json_write_number(f, load[(size_t)l * D + g]);
            }
            fputc(']', f);
        }
        fputs("],\n\"balancedness\": [", f);
        for (int l = 0; l < L; l++) {
            if (l)
                fputc(',', f);
            eplb_json_write_number(f, eplb_placement_balancedness(load + (size_t)l * D, D));
        }
        fputs("],\n\"moves\": [", f);
        for (int l = 0; l < L; l++)
            fprintf(f, l ? ",%d" : "%d",
                    eplb_placement_moves(old ? old + (size_t)l * P : defrow,
                                         phy2log + (size_t)l * P, P));
        fputs("]}\n", f);
    }
    if (st == EPLB_OK)
        st = eplb_cli_stdout_check(); /* f is stdout */
out:
    if (st != EPLB_OK)
        rc = eplb_cmd_fail(CMD, st);
    free(w);
    free(series);
    free(old);
    free(phy2log);
    free(rank);
    free(logcnt);
    free(log2phy);
    free(load);
    free(defrow);
    return rc;
}
