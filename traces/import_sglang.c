/* import_sglang.c - SGLang expert-distribution counts to a counts-only
 * trace: run totals [L][E] as one step, per-pass counts or a time series
 * [S][L][E] as S steps. */
#include "import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "gen.h"
#include "json.h"
#include "trace.h"

/* What one file may declare: the JSON reader holds the whole document
 * (about 48 bytes a value) before any of this; the counts kept take 4 bytes
 * a value, at most 1 GiB. */
#define MAX_ROWS 100000
#define MAX_STEPS 100000
#define MAX_COUNTS ((size_t)1 << 28)

void eplb_import_sglang_free(eplb_import_sglang_t *c)
{
    if (!c)
        return;
    free(c->rows);
    free(c->counts);
    memset(c, 0, sizeof *c);
}

/* A layer row in messages: at = "[l]", who = "layer l" for [L][E]; at =
 * "[s][l]", who = "step s, layer l" for [S][L][E]. */
typedef struct {
    char at[32], who[48];
} where_t;

static where_t where(int three_d, int s, int l)
{
    where_t w;
    if (three_d) {
        snprintf(w.at, sizeof w.at, "[%d][%d]", s, l);
        snprintf(w.who, sizeof w.who, "step %d, layer %d", s, l);
    } else {
        snprintf(w.at, sizeof w.at, "[%d]", l);
        snprintf(w.who, sizeof w.who, "layer %d", l);
    }
    return w;
}

/* The layers x experts matrix of step s (the document itself for [L][E]). */
static const eplb_json_t *step_of(const eplb_json_t *lc, int three_d, int s)
{
    return three_d ? eplb_json_at(lc, (size_t)s) : lc;
}

/* Check the shape of logical_count: S steps (1 for [L][E]) of *rows layers
 * of *E experts each. */
static eplb_status_t check_shape(int *rows_out, int *E_out, const eplb_json_t *lc, int three_d,
                                 int S, const char *path)
{
    int rows = -1, E = -1;
    for (int s = 0; s < S; s++) {
        const eplb_json_t *step = step_of(lc, three_d, s);
        if (three_d) {
            if (!step || step->type != EPLB_JSON_ARRAY || step->n == 0)
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: logical_count[%d] (step %d): expected a non-empty "
                                      "array of layers",
                                      path, s, s);
            if (step->n > MAX_ROWS)
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: logical_count[%d] (step %d): %zu layers (too many)",
                                      path, s, s, step->n);
            if (rows >= 0 && step->n != (size_t)rows)
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: logical_count[%d] (step %d): %zu layers, but step 0 "
                                      "has %d",
                                      path, s, s, step->n, rows);
        }
        rows = (int)step->n;
        for (int l = 0; l < rows; l++) {
            const eplb_json_t *row = eplb_json_at(step, (size_t)l);
            where_t w = where(three_d, s, l);
            if (!row || row->type != EPLB_JSON_ARRAY || row->n == 0)
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: logical_count%s (%s): expected a non-empty array of "
                                      "expert counts",
                                      path, w.at, w.who);
            if (E < 0) {
                if (row->n > EPLB_MAX_EXPERTS)
                    return eplb_error_set(EPLB_ERR_FORMAT,
                                          "%s: logical_count%s: %zu experts per layer (at "
                                          "most %d)",
                                          path, w.at, row->n, EPLB_MAX_EXPERTS);
                E = (int)row->n;
            }
            if (row->n != (size_t)E)
                return eplb_error_set(EPLB_ERR_FORMAT,
                                      "%s: logical_count%s (%s): %zu experts, but %s has %d",
                                      path, w.at, w.who, row->n,
                                      three_d ? "step 0, layer 0" : "layer 0", E);
        }
    }
    if (rows < 1 || E < 1) /* S >= 1 and the checks above: cannot happen */
        return eplb_error_set(EPLB_ERR_FORMAT, "%s: logical_count: no layers", path);
    *rows_out = rows;
    *E_out = E;
    return EPLB_OK;
}

eplb_status_t eplb_import_sglang_read(eplb_import_sglang_t *out, const char *path)
{
    eplb_status_t st = EPLB_OK;
    eplb_json_t *doc = NULL;
    eplb_import_sglang_t r = {0};
    char *keep = NULL;
    EPLB_CHECK_GOTO(eplb_json_parse_file(&doc, path), st, out);
    const eplb_json_t *lc = eplb_json_get(doc, "logical_count");
    if (!lc) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: no \"logical_count\" member", path);
        goto out;
    }
    if (lc->type != EPLB_JSON_ARRAY || lc->n == 0) {
        st = eplb_error_set(EPLB_ERR_FORMAT,
                            "%s: logical_count: expected a non-empty array of layers",
                            path);
        goto out;
    }
    /* [S][L][E] (SGLang's stat-mode dump: the time series its EPLB keeps)
     * when the first layer is itself an array of arrays; else [L][E] */
    const eplb_json_t *first = eplb_json_at(lc, 0), *first_row = eplb_json_at(first, 0);
    /* (eplb_json_at also reads an object's members: [{"k": [..]}] is no
     * series) */
    const int three_d =
        first && first->type == EPLB_JSON_ARRAY && first_row && first_row->type == EPLB_JSON_ARRAY;
    if (lc->n > (three_d ? MAX_STEPS : MAX_ROWS)) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: logical_count: %zu %s (too many)", path,
                            lc->n, three_d ? "steps" : "layers");
        goto out;
    }
    const int S = three_d ? (int)lc->n : 1;
    int rows = 0, E = 0;
    EPLB_CHECK_GOTO(check_shape(&rows, &E, lc, three_d, S, path), st, out);
    if ((size_t)S * (size_t)rows * (size_t)E > MAX_COUNTS) {
        st = eplb_error_set(EPLB_ERR_FORMAT,
                            "%s: logical_count: %d steps x %d layers x %d experts: more than "
                            "2^28 counts",
                            path, S, rows, E);
        goto out;
    }
    /* the values, step by step; a row is kept if it is non-zero in any step,
     * so that every step has the same layers */
    keep = calloc((size_t)rows, 1);
    EPLB_ALLOC_GOTO(keep, st, out);
    for (int s = 0; s < S; s++) {
        const eplb_json_t *step = step_of(lc, three_d, s);
        for (int l = 0; l < rows; l++) {
            const eplb_json_t *row = eplb_json_at(step, (size_t)l);
            for (int e = 0; e < E; e++) {
                double x = -1;
                if (!eplb_json_number_at(row, (size_t)e, &x) || !(x >= 0) || x != floor(x) ||
                    x > 2147483647.0) {
                    where_t w = where(three_d, s, l);
                    st = eplb_error_set(EPLB_ERR_FORMAT,
                                        "%s: logical_count%s[%d] (%s, expert %d): "
                                        "not a non-negative integer below 2^31",
                                        path, w.at, e, w.who, e);
                    goto out;
                }
                keep[l] |= x > 0;
            }
        }
    }
    /* only the all-zero rows before the first and after the last row with
     * load go (DeepSeek-V3's dense layers 0-2): a MoE layer with no load
     * between them is kept, or every layer after it moved up one and the
     * trace's layer l no longer was row first + l (a placement from the
     * replay then went to the wrong SGLang or TensorRT-LLM layer, and the
     * source said "57 of 61 rows" without which) */
    {
        int first = -1, last = -1;
        for (int l = 0; l < rows; l++)
            if (keep[l]) {
                if (first < 0)
                    first = l;
                last = l;
            }
        for (int l = first + 1; first >= 0 && l < last; l++)
            keep[l] = 1;
    }
    r.num_steps = S;
    r.three_d = three_d;
    r.num_rows = rows;
    r.num_experts = E;
    for (int l = 0; l < rows; l++)
        r.num_layers += keep[l];
    if (r.num_layers == 0) {
        st = eplb_error_set(EPLB_ERR_FORMAT,
                            three_d ? "%s: logical_count: every layer is all zero in every "
                                      "step (no MoE layer)"
                                    : "%s: logical_count: every layer is all zero (no MoE "
                                      "layer)",
                            path);
        goto out;
    }
    if (r.num_layers > EPLB_TRACE_MAX_LAYERS) {
        if (r.num_layers == rows)
            st = eplb_error_set(EPLB_ERR_FORMAT, "%s: logical_count has %d layers; at most %d",
                                path, r.num_layers, EPLB_TRACE_MAX_LAYERS);
        else
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: logical_count has %d layers not all zero (of %d); at "
                                "most %d",
                                path, r.num_layers, rows, EPLB_TRACE_MAX_LAYERS);
        goto out;
    }
    r.rows = malloc(sizeof(int) * (size_t)r.num_layers);
    EPLB_ALLOC_GOTO(r.rows, st, out);
    r.counts = malloc(sizeof(int32_t) * (size_t)S * (size_t)r.num_layers * (size_t)E);
    EPLB_ALLOC_GOTO(r.counts, st, out);
    for (int l = 0, k = 0; l < rows; l++)
        if (keep[l])
            r.rows[k++] = l;
    int32_t *dst = r.counts;
    for (int s = 0; s < S; s++) {
        const eplb_json_t *step = step_of(lc, three_d, s);
        for (int k = 0; k < r.num_layers; k++, dst += E) {
            const eplb_json_t *row = eplb_json_at(step, (size_t)r.rows[k]);
            int64_t sum = 0;
            for (int e = 0; e < E; e++) {
                double x = 0;
                eplb_json_number_at(row, (size_t)e, &x); /* checked above */
                dst[e] = (int32_t)x;
                sum += dst[e];
            }
            r.total += sum;
            if (sum > r.max_row)
                r.max_row = sum;
        }
    }
    *out = r;
    r = (eplb_import_sglang_t){0};
out:
    free(keep);
    eplb_import_sglang_free(&r);
    eplb_json_free(doc);
    return st;
}

/* Rows kept, as "3..60" when contiguous. */
static void describe_rows(char *buf, size_t n, const eplb_import_sglang_t *c)
{
    int contiguous = c->rows[c->num_layers - 1] - c->rows[0] == c->num_layers - 1;
    if (contiguous)
        snprintf(buf, n, "rows %d..%d of %d", c->rows[0], c->rows[c->num_layers - 1],
                 c->num_rows);
    else
        snprintf(buf, n, "%d of %d rows", c->num_layers, c->num_rows);
}

/* Tokens of step s: ceil(its largest kept row sum / top_k). */
static int64_t step_tokens(const eplb_import_sglang_t *c, int s, int top_k)
{
    const size_t per = (size_t)c->num_layers * (size_t)c->num_experts;
    const int32_t *cs = c->counts + (size_t)s * per;
    int64_t max_row = 0;
    for (int l = 0; l < c->num_layers; l++) {
        int64_t sum = 0;
        for (int e = 0; e < c->num_experts; e++)
            sum += cs[(size_t)l * (size_t)c->num_experts + (size_t)e];
        max_row = sum > max_row ? sum : max_row;
    }
    return (max_row + top_k - 1) / top_k;
}

eplb_status_t eplb_import_input_fault(eplb_status_t st, const char *input)
{
    if (st != EPLB_ERR_INVALID_ARG)
        return st;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", eplb_error_last());
    return eplb_error_set(EPLB_ERR_FORMAT, "%s: %s", input, msg);
}

eplb_status_t eplb_import_sglang(const char *json_path, const char *path, int top_k,
                                 const char *model)
{
    eplb_status_t st = EPLB_OK;
    eplb_import_sglang_t c = {0};
    eplb_trace_writer_t *w = NULL;
    if (!model || !model[0])
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--model: must not be empty");
    if (strlen(model) > EPLB_TRACE_MODEL_MAX)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--model: %zu bytes; at most %d",
                              strlen(model), EPLB_TRACE_MODEL_MAX);
    EPLB_CHECK(eplb_trace_writer_check_path(path));
    EPLB_CHECK_GOTO(eplb_import_sglang_read(&c, json_path), st, out);
    if (top_k < 1 || top_k > EPLB_MAX_TOPK || top_k > c.num_experts) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "--top-k: must be in 1..%d (experts in %s: %d), got %d",
                            c.num_experts < EPLB_MAX_TOPK ? c.num_experts : EPLB_MAX_TOPK,
                            json_path, c.num_experts, top_k);
        goto out;
    }
    /* the reader's limit on a trace's tokens (counts-only: no per-step
     * limit), before anything is written */
    int64_t total = 0;
    for (int s = 0; s < c.num_steps; s++) {
        const int64_t ntok = step_tokens(&c, s, top_k);
        if (ntok > EPLB_TRACE_MAX_TOKENS - total) {
            char at[48] = "";
            if (c.three_d)
                snprintf(at, sizeof at, "[%d] (step %d)", s, s);
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: logical_count%s: %lld tokens at top-%d bring the total "
                                "past the %lld (2^39) tokens a trace may hold",
                                json_path, at, (long long)ntok, top_k,
                                (long long)EPLB_TRACE_MAX_TOKENS);
            goto out;
        }
        total += ntok;
    }
    eplb_route_cfg_t route = {c.num_experts, top_k, EPLB_SCORING_SOFTMAX, 1, 1, 1, 1.0f};
    const eplb_gen_preset_t *dsv3 = NULL;
    if (strcmp(model, "DeepSeek-V3") == 0 &&
        eplb_gen_preset_find(&dsv3, "deepseek-v3") == EPLB_OK &&
        dsv3->route.num_experts == c.num_experts) {
        route = dsv3->route;
        route.top_k = top_k;
    }
    /* Each token counts once per chosen expert, so a layer's row sums to at
     * most K x tokens (FORMAT.md); a step's tokens follow from its largest
     * row (an all-zero step has none), the other rows sum to less. */
    const size_t per = (size_t)c.num_layers * (size_t)c.num_experts;
    const char *base = strrchr(json_path, '/');
    base = base ? base + 1 : json_path;
    char rows[64], source[320];
    describe_rows(rows, sizeof rows, &c);
    if (!c.three_d)
        snprintf(source, sizeof source,
                 "SGLang logical_count of %.80s: %s kept (%d all-zero "
                 "dense rows dropped); run totals; tokens = max row sum / K",
                 base, rows, c.num_rows - c.num_layers);
    else
        snprintf(source, sizeof source,
                 "SGLang logical_count of %.80s: %d steps (one per outer element); %s "
                 "kept (%d rows all-zero in every step dropped); tokens of a step = "
                 "ceil(its max row sum / K)",
                 base, c.num_steps, rows, c.num_rows - c.num_layers);
    eplb_trace_writer_opts_t wo = EPLB_TRACE_WRITER_OPTS_INIT;
    wo.model = model;
    wo.source = source;
    wo.num_layers = c.num_layers;
    wo.route = route;
    wo.levels = EPLB_LEVEL_COUNTS;
    EPLB_CHECK_GOTO(eplb_import_input_fault(eplb_trace_writer_create(&w, path, &wo), json_path), st,
                    out);
    for (int s = 0; s < c.num_steps; s++) {
        const int32_t *cs = c.counts + (size_t)s * per;
        EPLB_CHECK_GOTO(
            eplb_import_input_fault(eplb_trace_writer_append_step(w, step_tokens(&c, s, top_k),
                                                                  NULL, NULL, NULL, cs, NULL, 0),
                                    json_path),
            st, out);
    }
    st = eplb_trace_writer_finish(w);
    w = NULL;
out:
    if (w)
        eplb_trace_writer_abort(w);
    eplb_import_sglang_free(&c);
    return st;
}
