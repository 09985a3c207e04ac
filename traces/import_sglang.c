/* import_sglang.c - SGLang expert-distribution counts to a counts-only
 * trace of one step. */
#include "import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "gen.h"
#include "json.h"
#include "trace.h"

void eplb_import_sglang_free(eplb_import_sglang_t *c)
{
    if (!c)
        return;
    free(c->rows);
    free(c->counts);
    memset(c, 0, sizeof *c);
}

eplb_status_t eplb_import_sglang_read(eplb_import_sglang_t *out, const char *path)
{
    eplb_status_t st = EPLB_OK;
    eplb_json_t *doc = NULL;
    eplb_import_sglang_t r = {0};
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
    if (lc->n > 100000) {
        st = eplb_error_set(EPLB_ERR_FORMAT, "%s: logical_count: %zu layers (too many)",
                            path, lc->n);
        goto out;
    }
    int rows = (int)lc->n, E = -1;
    for (int l = 0; l < rows; l++) {
        const eplb_json_t *row = &lc->items[l];
        if (row->type != EPLB_JSON_ARRAY || row->n == 0) {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: logical_count[%d] (layer %d): expected a non-empty "
                                "array of expert counts",
                                path, l, l);
            goto out;
        }
        if (E < 0) {
            if (row->n > EPLB_MAX_EXPERTS) {
                st = eplb_error_set(EPLB_ERR_FORMAT,
                                    "%s: logical_count[0]: %zu experts per layer (at "
                                    "most %d)",
                                    path, row->n, EPLB_MAX_EXPERTS);
                goto out;
            }
            E = (int)row->n;
        }
        if (row->n != (size_t)E) {
            st = eplb_error_set(EPLB_ERR_FORMAT,
                                "%s: logical_count[%d] (layer %d): %zu experts, but "
                                "layer 0 has %d",
                                path, l, l, row->n, E);
            goto out;
        }
    }
    r.num_rows = rows;
    r.num_experts = E;
    r.rows = malloc(sizeof(int) * (size_t)rows);
    EPLB_ALLOC_GOTO(r.rows, st, out);
    r.counts = malloc(sizeof(int32_t) * (size_t)rows * (size_t)E);
    EPLB_ALLOC_GOTO(r.counts, st, out);
    for (int l = 0; l < rows; l++) {
        const eplb_json_t *row = &lc->items[l];
        int32_t *dst = r.counts + (size_t)r.num_layers * E;
        int64_t sum = 0;
        for (int e = 0; e < E; e++) {
            const eplb_json_t *v = &row->items[e];
            double x = v->num;
            if (v->type != EPLB_JSON_NUMBER || !(x >= 0) || x != floor(x) ||
                x > 2147483647.0) {
                st = eplb_error_set(EPLB_ERR_FORMAT,
                                    "%s: logical_count[%d][%d] (layer %d, expert %d): "
                                    "not a non-negative integer below 2^31",
                                    path, l, e, l, e);
                goto out;
            }
            dst[e] = (int32_t)x;
            sum += dst[e];
        }
        if (sum > 0) {
            r.rows[r.num_layers++] = l;
            r.total += sum;
            if (sum > r.max_row)
                r.max_row = sum;
        }
    }
    if (r.num_layers == 0) {
        st = eplb_error_set(EPLB_ERR_FORMAT,
                            "%s: logical_count: every layer is all zero (no MoE layer)",
                            path);
        goto out;
    }
    *out = r;
    r = (eplb_import_sglang_t){0};
out:
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

eplb_status_t eplb_import_sglang(const char *json_path, const char *path, int top_k,
                                 const char *model)
{
    eplb_status_t st = EPLB_OK;
    eplb_import_sglang_t c = {0};
    eplb_trace_writer_t *w = NULL;
    if (!model || !model[0])
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--model: must not be empty");
    EPLB_CHECK_GOTO(eplb_import_sglang_read(&c, json_path), st, out);
    if (top_k < 1 || top_k > EPLB_MAX_TOPK || top_k > c.num_experts) {
        st = eplb_error_set(EPLB_ERR_INVALID_ARG,
                            "--top-k: must be in 1..%d (experts in %s: %d), got %d",
                            c.num_experts < EPLB_MAX_TOPK ? c.num_experts : EPLB_MAX_TOPK,
                            json_path, c.num_experts, top_k);
        goto out;
    }
    eplb_route_cfg_t route = {c.num_experts, top_k, EPLB_SCORING_SOFTMAX, 1, 1, 1, 1.0f};
    const eplb_gen_preset_t *dsv3 = NULL;
    if (strcmp(model, "DeepSeek-V3") == 0 &&
        eplb_gen_preset_find(&dsv3, "deepseek-v3") == EPLB_OK &&
        dsv3->route.num_experts == c.num_experts) {
        route = dsv3->route;
        route.top_k = top_k;
    }
    /* Each token counts once per chosen expert, so a layer's row sums to
     * K x tokens (FORMAT.md); the step's tokens follow from the largest row. */
    int64_t ntok = (c.max_row + top_k - 1) / top_k;
    const char *base = strrchr(json_path, '/');
    base = base ? base + 1 : json_path;
    char rows[64], source[256];
    describe_rows(rows, sizeof rows, &c);
    snprintf(source, sizeof source,
             "SGLang logical_count of %.80s: %s kept (%d all-zero "
             "dense rows dropped); run totals; tokens = max row sum / K",
             base, rows, c.num_rows - c.num_layers);
    eplb_trace_writer_opts_t wo = EPLB_TRACE_WRITER_OPTS_INIT;
    wo.model = model;
    wo.source = source;
    wo.num_layers = c.num_layers;
    wo.route = route;
    wo.levels = EPLB_LEVEL_COUNTS;
    EPLB_CHECK_GOTO(eplb_trace_writer_create(&w, path, &wo), st, out);
    EPLB_CHECK_GOTO(eplb_trace_writer_append_step(w, ntok, NULL, NULL, NULL, c.counts,
                                                  NULL, 0),
                    st, out);
    st = eplb_trace_writer_finish(w);
    w = NULL;
out:
    if (w)
        eplb_trace_writer_abort(w);
    eplb_import_sglang_free(&c);
    return st;
}
