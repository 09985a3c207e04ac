/* profile.c - hardware profiles (key = value text) and model expert shapes.
 * The default numbers are those of sim/profiles/h100-8gpu-ib400.txt, whose
 * comments give the source of each. */
#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "decimal.h"
#include "json.h"

void eplb_sim_profile_default(eplb_profile_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "h100-8gpu-ib400");
    out->nvlink_bw = 450e9;
    out->nvlink_lat = 5e-6;
    out->net_bw = 400e9 / 8;
    out->net_lat = 15e-6;
    out->hbm_bw = 3.35e12;
    out->flops_fp8 = 1979e12;
    out->flops_bf16 = 989.5e12;
    out->gemm_eff = 0.6;
    out->dispatch_bytes = 1.03125;
    out->combine_bytes = 2;
    out->record_s = -1;
    out->record_frac = 0.0166;
    /* kernels/ fused route+select+record minus route, per layer, H100 */
    static const double rtok[] = {64, 512, 4096, 16384, 65536};
    static const double rus[] = {0.51, 0.78, 0.77, 1.35, 2.52}; /* runs 35-37 */
    out->record_n = 5;
    for (int k = 0; k < 5; k++) {
        out->record_tokens[k] = rtok[k];
        out->record_t[k] = rus[k] * 1e-6;
    }
    /* measured on an H100 SXM5 (sim/profiles/h100-8gpu-ib400.txt says how) */
    static const struct {
        int h, f;
        double wb;
        double us[13];
    } meas[] = {
        {7168, 2048, 1, {24.31, 24.22, 24.23, 24.20, 24.22, 21.60, 22.71, 24.37, 27.85,
                         38.87, 72.77, 143.94, 305.65}},
        {7168, 2048, 2, {37.30, 37.46, 37.34, 37.63, 38.13, 38.81, 40.19, 37.69, 47.94,
                         65.32, 123.22, 265.98, 509.26}},
        {2048, 1408, 2, {13.42, 13.02, 12.54, 12.44, 12.15, 12.20, 12.39, 12.48, 13.50,
                         18.46, 28.72, 55.75, 111.08}},
    };
    for (size_t i = 0; i < sizeof meas / sizeof meas[0]; i++) {
        eplb_gemm_table_t *t = &out->tables[out->ntables++];
        t->hidden = meas[i].h;
        t->inter = meas[i].f;
        t->weight_bytes = meas[i].wb;
        t->n = 13;
        for (int k = 0; k < 13; k++) {
            t->tokens[k] = (double)(1 << k);
            t->s[k] = meas[i].us[k] * 1e-6;
        }
    }
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* s as it goes into a message: at most 60 bytes, control and non-ASCII
 * bytes as \xNN (a stray byte of a binary file went raw into the message,
 * a carriage return or a form feed broke its line). */
typedef struct {
    char s[256];
} shown_t;

static shown_t shown(const char *s)
{
    shown_t o;
    size_t n = 0, i = 0;
    for (; s[i] && i < 60; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b >= 0x20 && b < 0x7f)
            o.s[n++] = (char)b;
        else
            n += (size_t)snprintf(o.s + n, sizeof o.s - n, "\\x%02x", b);
    }
    snprintf(o.s + n, sizeof o.s - n, "%s", s[i] ? "..." : "");
    return o;
}

static eplb_status_t num(double *out, const char *v, const char *what,
                         int line, const char *key)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    /* decimal only: strtod also took "0x10" (16) and "+5" (src/decimal.h) */
    if (end == v || end != v + eplb_decimal_real_len(v) || *trim(end) || isnan(x) || x < 0)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s:%d: %s: '%s' is not a number >= 0", what,
                              line, shown(key).s, shown(v).s);
    /* no profile value comes near 1e12 (bytes, us, GB/s, TFLOPS, tokens);
     * dispatch_bytes = 1e308 made every modelled time inf, and the results
     * null, with exit 0 */
    if (x > 1e12 && errno != ERANGE && !isinf(x))
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s:%d: %s: '%s' is too large (at most 1e12: larger values "
                              "overflow the modelled times)",
                              what, line, shown(key).s, shown(v).s);
    /* ERANGE: beyond a double, or (also for 1e-320, which strtod returns
     * as a denormal) below the smallest normal one */
    if (errno == ERANGE || isinf(x))
        return eplb_error_set(EPLB_ERR_FORMAT,
                              x > 1 ? "%s:%d: %s: '%s' is too large for a double"
                                    : "%s:%d: %s: '%s' is too small (not 0, but below "
                                      "2.2e-308, the smallest normal double)",
                              what, line, key, shown(v).s);
    *out = x;
    return EPLB_OK;
}

/* *out = x in the base unit (x * scale) of key: a value that only
 * overflows there (nvlink_GBps = 1e308 is 1e317 B/s) must be refused here,
 * not become inf in the results (JSON has no inf). */
static eplb_status_t scaled(double *out, double x, double scale, const char *v,
                            const char *what, int line, const char *key)
{
    double y = x * scale;
    if (!isfinite(y))
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s:%d: %s: '%s' is too large (x %g, the unit "
                              "conversion, overflows a double)",
                              what, line, key, shown(v).s, scale);
    *out = y;
    return EPLB_OK;
}

/* "tokens:us tokens:us ..." -> ascending tokens (>= 1) and seconds. */
static eplb_status_t parse_points(double *tokens, double *secs, int *np, char *v,
                                  const char *what, int line, const char *key)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(v, " \t,", &save); tok;
         tok = strtok_r(NULL, " \t,", &save)) {
        char *colon = strchr(tok, ':');
        if (!colon || n >= EPLB_PROFILE_MAX_POINTS)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s:%d: %s: '%s' is not tokens:us (at most %d points)",
                                  what, line, shown(key).s, shown(tok).s,
                                  EPLB_PROFILE_MAX_POINTS);
        *colon = '\0';
        double x, us;
        EPLB_CHECK(num(&x, tok, what, line, key));
        EPLB_CHECK(num(&us, colon + 1, what, line, key));
        if (x < 1 || (n > 0 && x <= tokens[n - 1]))
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s:%d: %s: token counts must be >= 1 and ascending",
                                  what, line, key);
        tokens[n] = x;
        secs[n] = us * 1e-6;
        n++;
    }
    if (n == 0)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s:%d: %s: no points", what, line, key);
    *np = n;
    return EPLB_OK;
}

/* The decimal digits at *s, no sign or space, as an int in 1..INT_MAX;
 * *s moves past them.  0 if there are none or the value is out of range. */
static int dim(const char **s)
{
    long long v = 0;
    const char *c = *s;
    while (*c >= '0' && *c <= '9') {
        v = v * 10 + (*c++ - '0');
        if (v > INT_MAX)
            return 0;
    }
    *s = c;
    return (int)v;
}

/* key gemm_table.HIDDENxINTER[.fp8|.bf16], value "tokens:us tokens:us ..."
 * sscanf's %d took signs, spaces ("gemm_table. 7168x 2048") and wrapped
 * past int (4294974464 read as 7168), and %7s stopped at a space
 * ("gemm_table.7168x2048.fp8 junk"): all were accepted. */
static eplb_status_t parse_table(eplb_profile_t *p, const char *key, char *v,
                                 const char *what, int line)
{
    if (p->ntables >= EPLB_PROFILE_MAX_TABLES)
        return eplb_error_set(EPLB_ERR_FORMAT, "%s:%d: %s: at most %d tables", what,
                              line, key, EPLB_PROFILE_MAX_TABLES);
    eplb_gemm_table_t t;
    memset(&t, 0, sizeof t);
    const char *c = key + strlen("gemm_table.");
    t.hidden = dim(&c);
    if (t.hidden && *c == 'x') {
        c++;
        t.inter = dim(&c);
    }
    t.weight_bytes = !strcmp(c, ".fp8") ? 1 : !strcmp(c, ".bf16") ? 2 : !*c ? 0 : -1;
    if (!t.hidden || !t.inter || t.weight_bytes < 0)
        return eplb_error_set(EPLB_ERR_FORMAT,
                              "%s:%d: %s: expected gemm_table.HIDDENxINTER[.fp8|.bf16] "
                              "(HIDDEN, INTER: 1..%d)",
                              what, line, shown(key).s, INT_MAX);
    /* a second table of one shape and format was never used (the first
     * one found wins) */
    for (int i = 0; i < p->ntables; i++)
        if (p->tables[i].hidden == t.hidden && p->tables[i].inter == t.inter &&
            p->tables[i].weight_bytes == t.weight_bytes)
            return eplb_error_set(EPLB_ERR_FORMAT,
                                  "%s:%d: %s: a second table for %dx%d%s (one per shape "
                                  "and format)",
                                  what, line, key, t.hidden, t.inter,
                                  t.weight_bytes == 1   ? ".fp8"
                                  : t.weight_bytes == 2 ? ".bf16"
                                                        : "");
    EPLB_CHECK(parse_points(t.tokens, t.s, &t.n, v, what, line, key));
    p->tables[p->ntables++] = t;
    return EPLB_OK;
}

/* A table of the model's format wins over one that gives no format,
 * whichever came first in the file (the first match won: a
 * gemm_table.HxF before gemm_table.HxF.fp8 hid the FP8 one). */
const eplb_gemm_table_t *eplb_sim_profile_table(const eplb_profile_t *p,
                                                const eplb_model_shape_t *m)
{
    const eplb_gemm_table_t *any = NULL;
    for (int i = 0; i < p->ntables; i++) {
        const eplb_gemm_table_t *t = &p->tables[i];
        if (t->hidden != m->hidden || t->inter != m->inter)
            continue;
        if (t->weight_bytes == m->weight_bytes)
            return t;
        if (t->weight_bytes == 0 && !any)
            any = t;
    }
    return any;
}

eplb_status_t eplb_sim_profile_parse(eplb_profile_t *out, const char *text,
                                     const char *what)
{
    eplb_profile_t p;
    eplb_sim_profile_default(&p);
    p.ntables = 0; /* a file's tables replace the built-in ones */
    p.record_n = 0;
    char *copy = strdup(text);
    if (!copy)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", what);
    eplb_status_t st = EPLB_OK;
    int line = 0;
    /* scalar keys seen so far: a second value for one is an error, not a
     * silent override (bits: scalar key index; 30 name, 31 record_table) */
    unsigned long seen = 0;
    char *cur = copy; /* split by hand so that blank lines count */
    while (cur) {
        char *nl = strchr(cur, '\n');
        if (nl)
            *nl = '\0';
        line++;
        char *hash = strchr(cur, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(cur);
        if (*s) {
            char *eq = strchr(s, '=');
            if (!eq) {
                st = eplb_error_set(EPLB_ERR_FORMAT,
                                    "%s:%d: expected key = value", what, line);
                goto out;
            }
            *eq = '\0';
            char *key = trim(s), *v = trim(eq + 1);
            double x = 0;
            int dup_bit = !strcmp(key, "name") ? 30 : !strcmp(key, "record_table") ? 31 : -1;
            if (dup_bit >= 0) {
                if (seen & (1ul << dup_bit)) {
                    st = eplb_error_set(EPLB_ERR_FORMAT, "%s:%d: %s given twice", what, line,
                                        key);
                    goto out;
                }
                seen |= 1ul << dup_bit;
            }
            if (!strcmp(key, "name")) {
                snprintf(p.name, sizeof p.name, "%s", v);
            } else if (!strcmp(key, "record_table")) {
                EPLB_CHECK_GOTO(parse_points(p.record_tokens, p.record_t, &p.record_n, v,
                                             what, line, key), st, out);
            } else if (!strncmp(key, "gemm_table.", 11)) {
                EPLB_CHECK_GOTO(parse_table(&p, key, v, what, line), st, out);
            } else {
                static const struct {
                    const char *key;
                    size_t off;
                    double scale;
                    int rate; /* divides the modelled times */
                } keys[] = {
                    {"nvlink_GBps", offsetof(eplb_profile_t, nvlink_bw), 1e9, 1},
                    {"nvlink_latency_us", offsetof(eplb_profile_t, nvlink_lat), 1e-6, 0},
                    {"net_Gbps", offsetof(eplb_profile_t, net_bw), 1e9 / 8, 1},
                    {"net_latency_us", offsetof(eplb_profile_t, net_lat), 1e-6, 0},
                    {"hbm_TBps", offsetof(eplb_profile_t, hbm_bw), 1e12, 1},
                    {"fp8_TFLOPS", offsetof(eplb_profile_t, flops_fp8), 1e12, 1},
                    {"bf16_TFLOPS", offsetof(eplb_profile_t, flops_bf16), 1e12, 1},
                    {"gemm_efficiency", offsetof(eplb_profile_t, gemm_eff), 1, 0},
                    {"dispatch_bytes", offsetof(eplb_profile_t, dispatch_bytes), 1, 0},
                    {"combine_bytes", offsetof(eplb_profile_t, combine_bytes), 1, 0},
                    {"record_us", offsetof(eplb_profile_t, record_s), 1e-6, 0},
                    {"record_fraction", offsetof(eplb_profile_t, record_frac), 1, 0},
                };
                size_t i;
                for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
                    if (!strcmp(key, keys[i].key))
                        break;
                if (i == sizeof keys / sizeof keys[0]) {
                    st = eplb_error_set(EPLB_ERR_FORMAT, "%s:%d: unknown key '%s'",
                                        what, line, shown(key).s);
                    goto out;
                }
                if (seen & (1ul << i)) {
                    st = eplb_error_set(EPLB_ERR_FORMAT, "%s:%d: %s given twice", what, line,
                                        key);
                    goto out;
                }
                seen |= 1ul << i;
                EPLB_CHECK_GOTO(num(&x, v, what, line, key), st, out);
                /* the fractions, with their line and text (the check after
                 * the loop printed 1.0000001 as 1, and no line) */
                const int eff = !strcmp(key, "gemm_efficiency");
                if ((eff && (x <= 0 || x > 1)) || (!strcmp(key, "record_fraction") && x > 1)) {
                    st = eplb_error_set(EPLB_ERR_FORMAT, "%s:%d: %s: '%s' is not in %s", what,
                                        line, key, shown(v).s, eff ? "(0, 1]" : "[0, 1]");
                    goto out;
                }
                EPLB_CHECK_GOTO(scaled((double *)((char *)&p + keys[i].off), x,
                                       keys[i].scale, v, what, line, key),
                                st, out);
                /* the rates (bandwidths, FLOP/s) divide the modelled
                 * times: below one byte or FLOP per second they made them
                 * inf (nvlink_GBps = 2.3e-308, the sweep; net_Gbps, whose
                 * scale 1e9 / 8 a test of scale >= 1e9 missed, mutation
                 * testing) */
                const double y = *(double *)((char *)&p + keys[i].off);
                if (keys[i].rate && y > 0 && y < 1) {
                    st = eplb_error_set(EPLB_ERR_FORMAT,
                                        "%s:%d: %s: '%s' is below one unit per second "
                                        "(x %g)",
                                        what, line, key, v, keys[i].scale);
                    goto out;
                }
            }
        }
        cur = nl ? nl + 1 : NULL;
    }
    {
        /* name the field at fault (values as written in the file) */
        const char *bad = p.nvlink_bw <= 0    ? "nvlink_GBps"
                          : p.net_bw <= 0     ? "net_Gbps"
                          : p.hbm_bw <= 0     ? "hbm_TBps"
                          : p.flops_fp8 <= 0  ? "fp8_TFLOPS"
                          : p.flops_bf16 <= 0 ? "bf16_TFLOPS"
                                              : NULL;
        if (bad) {
            st = eplb_error_set(EPLB_ERR_FORMAT, "%s: %s must be > 0", what, bad);
            goto out;
        }
        if (p.gemm_eff <= 0 || p.gemm_eff > 1) {
            st = eplb_error_set(EPLB_ERR_FORMAT, "%s: gemm_efficiency = %g is not in (0, 1]",
                                what, p.gemm_eff);
            goto out;
        }
        if (p.record_frac > 1) {
            st = eplb_error_set(EPLB_ERR_FORMAT, "%s: record_fraction = %g is not in [0, 1]",
                                what, p.record_frac);
            goto out;
        }
    }
    *out = p;
out:
    free(copy);
    return st;
}

/* a profile is a few KiB of key = value lines; this bounds the read of a
 * wrong file (a trace) */
#define PROFILE_MAX_BYTES ((size_t)4 << 20)

eplb_status_t eplb_sim_profile_load(eplb_profile_t *out, const char *path)
{
    char *text = NULL;
    size_t n = 0;
    EPLB_CHECK(eplb_input_file_read(&text, &n, path, PROFILE_MAX_BYTES));
    eplb_status_t st = eplb_sim_profile_parse(out, text, path);
    free(text);
    return st;
}

/* ---- model shapes ------------------------------------------------------
 * Known models (public config.json of each on Hugging Face): hidden_size,
 * moe_intermediate_size, weight format of the released checkpoint. */
/* A model_config size the cost model takes: a whole number in [1, 1e6)
 * (4096.7 had been cut to 4096 silently). */
static int dim_ok(const eplb_json_t *v)
{
    return v && v->type == EPLB_JSON_NUMBER && v->num >= 1 && v->num < 1e6 &&
           v->num == floor(v->num);
}

static const struct {
    const char *match; /* case-insensitive substring of the model name */
    int hidden, inter;
    double wbytes;
    const char *name;
} known[] = {
    {"deepseek-v3", 7168, 2048, 1, "sizes of DeepSeek-V3 by the model name, FP8"},
    {"deepseek-r1", 7168, 2048, 1, "sizes of DeepSeek-R1 by the model name, FP8"},
    {"dsv3", 7168, 2048, 1, "sizes of DeepSeek-V3 by the model name, FP8"},
    {"v2-lite", 2048, 1408, 2, "sizes of DeepSeek-V2-Lite by the model name, BF16"},
    {"esft", 2048, 1408, 2, "sizes of DeepSeek-V2-Lite by the model name ESFT-vanilla-lite, BF16"},
    {"deepseek-v2", 5120, 1536, 2, "sizes of DeepSeek-V2 by the model name, BF16"},
    {"qwen3-30b", 2048, 768, 2, "sizes of Qwen3-30B-A3B by the model name, BF16"},
    {"qwen3-235b", 4096, 1536, 2, "sizes of Qwen3-235B-A22B by the model name, BF16"},
    {"mixtral-8x7b", 4096, 14336, 2, "sizes of Mixtral-8x7B by the model name, BF16"},
    {"mixtral-8x22b", 6144, 16384, 2, "sizes of Mixtral-8x22B by the model name, BF16"},
};

static int icontains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return 1;
    return 0;
}

void eplb_sim_model_shape(eplb_model_shape_t *out, const char *model,
                          const char *model_config)
{
    eplb_model_shape_t m = {7168, 2048, 1, "default: DeepSeek-V3 (model unknown)"};
    if (model)
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (icontains(model, known[i].match)) {
                m.hidden = known[i].hidden;
                m.inter = known[i].inter;
                m.weight_bytes = known[i].wbytes;
                snprintf(m.source, sizeof m.source, "%s", known[i].name);
                break;
            }
    eplb_json_t *cfg = NULL;
    eplb_status_t pst = EPLB_OK;
    if (model_config && *model_config &&
        (pst = eplb_json_parse(&cfg, model_config, strlen(model_config), "model_config")) !=
            EPLB_OK) {
        /* said where the shape is reported (it was ignored silently) */
        char why[sizeof m.source];
        snprintf(why, sizeof why, "%s", m.source);
        snprintf(m.source, sizeof m.source, "%.*s; the trace's model_config %s",
                 (int)(sizeof m.source - 64), why,
                 pst == EPLB_ERR_NOMEM ? "could not be read (out of memory)" : "is not valid JSON");
        cfg = NULL;
    }
    if (cfg) {
        const eplb_json_t *h = eplb_json_get(cfg, "hidden_size");
        const eplb_json_t *f = eplb_json_get(cfg, "moe_intermediate_size");
        if (!f)
            f = eplb_json_get(cfg, "intermediate_size"); /* Mixtral */
        if (dim_ok(h) && dim_ok(f)) {
            m.hidden = (int)h->num;
            m.inter = (int)f->num;
            m.weight_bytes = 2;
            const eplb_json_t *q = eplb_json_get(cfg, "quantization_config");
            const eplb_json_t *qm = q ? eplb_json_get(q, "quant_method") : NULL;
            if (qm && qm->type == EPLB_JSON_STRING && !strcasecmp(qm->str, "fp8"))
                m.weight_bytes = 1;
            snprintf(m.source, sizeof m.source, "trace model_config (%s)",
                     m.weight_bytes == 1 ? "FP8" : "BF16");
        } else if (h || f) {
            /* a size given but unusable: said, as for JSON that does not
             * parse (hidden_size -5, 1e300 or NaN fell back silently) */
            const int h_ok = dim_ok(h);
            const eplb_json_t *bad = h_ok ? f : h; /* NULL: missing */
            const char *key = !h_ok ? "hidden_size"
                              : eplb_json_get(cfg, "moe_intermediate_size")
                                  ? "moe_intermediate_size"
                              : f ? "intermediate_size"
                                  : "moe_intermediate_size";
            char why[sizeof m.source], val[96];
            if (!bad)
                snprintf(val, sizeof val, "has no %s", key);
            else if (bad->type == EPLB_JSON_NUMBER)
                snprintf(val, sizeof val, "%s %g is ignored (not a whole number in [1, 1e6))", key,
                         bad->num);
            else
                snprintf(val, sizeof val, "%s is ignored (not a number)", key);
            snprintf(why, sizeof why, "%s", m.source);
            snprintf(m.source, sizeof m.source, "%.*s; the trace's model_config %s",
                     (int)(sizeof m.source - 124), why, val);
        }
        eplb_json_free(cfg);
    }
    eplb_error_clear();
    *out = m;
}

double eplb_sim_expert_bytes(const eplb_model_shape_t *m)
{
    return 3.0 * m->hidden * (double)m->inter * m->weight_bytes;
}
