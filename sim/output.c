/* output.c - the summary: a table for people, JSON and CSV for programs. */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "sim_impl.h"
#include "tmpfile_guard.h"

static const char *async_name(const eplb_trigger_t *t, char *buf, size_t n)
{
    if (t->async == EPLB_ASYNC_OFF)
        return "off";
    if (t->async == EPLB_ASYNC_LAYERS)
        return "layers";
    snprintf(buf, n, "chunk:%d", t->chunk);
    return buf;
}

/* The table's columns, with the widths of the fixed layout it had as
 * minimums (ordinary output keeps that layout); a wider cell (a long
 * label, millions of replicas moved) widens its column rather than being
 * cut or pushing its row out of line. */
enum { TABLE_COLS = 16, TABLE_SEP = 6 /* " |" before it */, CELL_MAX = 80 };
static const char *const table_head[TABLE_COLS] = {
    "policy",   "D",     "P",     "W",  "I",        "trig",      "bal",       "max/mn",
    "worst(l)", "rebal", "moved", "GB", "stall_ms", "moe_us/st", "ovh_us/st", "gain%"};
static const int table_minw[TABLE_COLS] = {17, 3, 4, 5, 6, 6, 6, 7, 10, 5, 7, 8, 9, 10, 10, 7};

/* One row's cells; CELL_MAX holds a whole label (label[64]) and any
 * number of a plausible run. */
static void table_cells(char cell[TABLE_COLS][CELL_MAX], const eplb_sim_result_t *x)
{
    const eplb_sim_run_cfg_t *c = &x->cfg;
    int trig = sim_run_has_trigger(x->policy);
    int wi = sim_run_has_window(x->policy, &c->trig);
    snprintf(cell[0], CELL_MAX, "%s", x->label);
    snprintf(cell[1], CELL_MAX, "%d", c->num_gpus);
    snprintf(cell[2], CELL_MAX, "%d", c->num_slots);
    snprintf(cell[3], CELL_MAX, wi ? "%lld" : "-", (long long)c->trig.window);
    snprintf(cell[4], CELL_MAX, wi ? "%lld" : "-", (long long)c->trig.interval);
    snprintf(cell[5], CELL_MAX, "%s", trig ? eplb_sim_trigger_name(c->trig.kind) : "-");
    snprintf(cell[6], CELL_MAX, "%.4f", x->balancedness);
    snprintf(cell[7], CELL_MAX, "%.3f", x->max_over_mean);
    snprintf(cell[8], CELL_MAX, "%.3f(%d)", x->worst_layer_bal, x->worst_layer);
    snprintf(cell[9], CELL_MAX, "%lld", (long long)x->rebalances);
    snprintf(cell[10], CELL_MAX, "%lld", (long long)x->moved_replicas);
    snprintf(cell[11], CELL_MAX, "%.3f", x->moved_bytes / 1e9);
    snprintf(cell[12], CELL_MAX, "%.3f", x->stall_s * 1e3);
    snprintf(cell[13], CELL_MAX, "%.1f", x->moe_time_s * 1e6);
    snprintf(cell[14], CELL_MAX, "%.2f", x->overhead_s * 1e6);
    snprintf(cell[15], CELL_MAX, isnan(x->gain_vs_none) ? "-" : "%+.2f", x->gain_vs_none);
}

static void table_line(FILE *f, const char *const *cell, const int *w)
{
    fprintf(f, "%-*s", w[0], cell[0]);
    for (int k = 1; k < TABLE_COLS; k++)
        fprintf(f, "%s %*s", k == TABLE_SEP ? " |" : "", w[k], cell[k]);
    fputc('\n', f);
}

void eplb_sim_print_table(FILE *f, const eplb_sim_result_t *r, int n)
{
    char cell[TABLE_COLS][CELL_MAX];
    const char *row[TABLE_COLS];
    int w[TABLE_COLS];
    for (int k = 0; k < TABLE_COLS; k++) {
        int h = (int)strlen(table_head[k]);
        w[k] = h > table_minw[k] ? h : table_minw[k];
        row[k] = cell[k];
    }
    /* widths first, then the rows formatted again: no buffer of n rows */
    for (int i = 0; i < n; i++) {
        table_cells(cell, &r[i]);
        for (int k = 0; k < TABLE_COLS; k++) {
            int len = (int)strlen(cell[k]);
            w[k] = len > w[k] ? len : w[k];
        }
    }
    table_line(f, table_head, w);
    for (int i = 0; i < n; i++) {
        table_cells(cell, &r[i]);
        table_line(f, row, w);
    }
}

static void kv_num(FILE *f, const char *k, double v, int comma)
{
    fprintf(f, "%s\"%s\": ", comma ? ", " : "", k);
    eplb_json_write_number(f, v);
}

void eplb_sim_write_runs_json(FILE *f, const eplb_sim_result_t *r, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        const eplb_sim_result_t *x = &r[i];
        const eplb_sim_run_cfg_t *c = &x->cfg;
        char buf[32];
        fprintf(f, "%s\n    {\"policy\": ", i ? "," : "");
        eplb_json_write_string(f, x->policy);
        fputs(", \"label\": ", f);
        eplb_json_write_string(f, x->label);
        int trig = sim_run_has_trigger(x->policy);
        int wi = sim_run_has_window(x->policy, &c->trig);
        fputs(", \"trigger\": ", f);
        if (trig)
            eplb_json_write_string(f, eplb_sim_trigger_name(c->trig.kind));
        else
            fputs("null", f);
        fputs(", \"async\": ", f);
        if (trig)
            eplb_json_write_string(f, async_name(&c->trig, buf, sizeof buf));
        else
            fputs("null", f);
        kv_num(f, "gpus", c->num_gpus, 1);
        kv_num(f, "nodes", c->num_nodes, 1);
        kv_num(f, "replicas", c->num_slots, 1);
        /* NaN is written as null */
        kv_num(f, "window", wi ? (double)c->trig.window : NAN, 1);
        kv_num(f, "interval", wi ? (double)c->trig.interval : NAN, 1);
        kv_num(f, "steps", (double)x->steps, 1);
        kv_num(f, "balancedness", x->balancedness, 1);
        kv_num(f, "max_over_mean", x->max_over_mean, 1);
        kv_num(f, "imbalance", x->max_over_mean - 1, 1);
        kv_num(f, "worst_layer", x->worst_layer, 1);
        kv_num(f, "worst_layer_balancedness", x->worst_layer_bal, 1);
        kv_num(f, "rebalances", (double)x->rebalances, 1);
        kv_num(f, "moved_replicas", (double)x->moved_replicas, 1);
        kv_num(f, "moved_bytes", (double)x->moved_bytes, 1);
        kv_num(f, "stall_s", x->stall_s, 1);
        kv_num(f, "policy_s", x->policy_s, 1);
        kv_num(f, "moe_time_s", x->moe_time_s, 1);
        kv_num(f, "compute_s", x->compute_s, 1);
        kv_num(f, "a2a_s", x->a2a_s, 1);
        kv_num(f, "overhead_s", x->overhead_s, 1);
        kv_num(f, "total_s", x->total_s, 1);
        kv_num(f, "gain_vs_none", x->gain_vs_none, 1);
        kv_num(f, "tokens_lost", (double)x->tokens_lost, 1);
        fputc('}', f);
    }
    fputs(n ? "\n  ]" : "]", f);
}

/* x and a comma, in the fewest digits that read back as x */
static void csv_real(FILE *f, double x)
{
    char buf[EPLB_REAL_CHARS];
    eplb_json_format_real(buf, x);
    fputs(buf, f);
    fputc(',', f);
}

void eplb_sim_write_csv(FILE *f, const eplb_sim_result_t *r, int n)
{
    fputs("policy,label,trigger,async,gpus,nodes,replicas,window,interval,steps,"
          "balancedness,max_over_mean,worst_layer,worst_layer_balancedness,"
          "rebalances,moved_replicas,moved_bytes,stall_s,policy_s,moe_time_s,"
          "compute_s,a2a_s,overhead_s,total_s,gain_vs_none,imbalance,tokens_lost\n", f);
    for (int i = 0; i < n; i++) {
        const eplb_sim_result_t *x = &r[i];
        const eplb_sim_run_cfg_t *c = &x->cfg;
        char buf[32];
        fprintf(f, "%s,%s,", x->policy, x->label);
        if (sim_run_has_trigger(x->policy))
            fprintf(f, "%s,%s,", eplb_sim_trigger_name(c->trig.kind),
                    async_name(&c->trig, buf, sizeof buf));
        else
            fputs(",,", f);
        fprintf(f, "%d,%d,%d,", c->num_gpus, c->num_nodes, c->num_slots);
        if (sim_run_has_window(x->policy, &c->trig))
            fprintf(f, "%lld,%lld,", (long long)c->trig.window, (long long)c->trig.interval);
        else
            fputs(",,", f);
        fprintf(f, "%lld,", (long long)x->steps);
        csv_real(f, x->balancedness);
        csv_real(f, x->max_over_mean);
        fprintf(f, "%d,", x->worst_layer);
        csv_real(f, x->worst_layer_bal);
        fprintf(f, "%lld,%lld,%lld,", (long long)x->rebalances, (long long)x->moved_replicas,
                (long long)x->moved_bytes);
        const double times[] = {x->stall_s,   x->policy_s, x->moe_time_s, x->compute_s,
                                x->a2a_s,     x->overhead_s, x->total_s};
        for (size_t j = 0; j < sizeof times / sizeof times[0]; j++)
            csv_real(f, times[j]);
        if (isnan(x->gain_vs_none))
            fputc(',', f);
        else
            csv_real(f, x->gain_vs_none);
        csv_real(f, x->max_over_mean - 1);
        fprintf(f, "%lld\n", (long long)x->tokens_lost);
    }
}

eplb_status_t eplb_sim_write_file(const char *path, void (*fn)(FILE *f, void *ctx),
                                  void *ctx)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return eplb_error_set(EPLB_ERR_NOMEM, "%s: out of memory", path);
    eplb_tmp_name(tmp, n, path);
    eplb_status_t st = EPLB_OK;
    /* armed before it exists: an interrupt between the two would leave it */
    int guard = eplb_tmp_guard_arm(tmp);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        st = eplb_error_set(EPLB_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        eplb_tmp_guard_disarm(guard);
        goto out;
    }
    errno = 0;
    fn(f, ctx);
    /* stdio keeps only an error flag: flushing what is left buffered sets
     * errno again (ENOSPC, EFBIG, ...) after a write failed on the way */
    int err = fflush(f) != 0 || ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err)
        err = errno;
    if (err)
        st = eplb_error_set(EPLB_ERR_IO, "%s: write error: %s", path, strerror(err));
    else
        st = eplb_tmp_rename_into_place(tmp, path);
    if (st != EPLB_OK)
        unlink(tmp);
    eplb_tmp_guard_disarm(guard);
out:
    free(tmp);
    return st;
}
