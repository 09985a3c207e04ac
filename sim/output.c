/* output.c - the summary: a table for people, JSON and CSV for programs. */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
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

void eplb_sim_print_table(FILE *f, const eplb_sim_result_t *r, int n)
{
    fprintf(f, "%-17s %3s %4s %5s %6s %6s | %6s %7s %10s %5s %7s %8s %9s %10s %10s %7s\n",
            "policy", "D", "P", "W", "I", "trig", "bal", "max/mn", "worst(l)",
            "rebal", "moved", "GB", "stall_ms", "moe_us/st", "ovh_us/st", "gain%");
    for (int i = 0; i < n; i++) {
        const eplb_sim_result_t *x = &r[i];
        const eplb_sim_run_cfg_t *c = &x->cfg;
        char worst[32], gain[16];
        snprintf(worst, sizeof worst, "%.3f(%d)", x->worst_layer_bal, x->worst_layer);
        if (isnan(x->gain_vs_none))
            snprintf(gain, sizeof gain, "-");
        else
            snprintf(gain, sizeof gain, "%+.2f", x->gain_vs_none);
        int none = !strcmp(x->policy, "none");
        /* once: one placement from the whole trace, no window or interval */
        int nowi = none || c->trig.kind == EPLB_TRIGGER_ONCE;
        char w[16], iv[16];
        snprintf(w, sizeof w, nowi ? "-" : "%lld", (long long)c->trig.window);
        snprintf(iv, sizeof iv, nowi ? "-" : "%lld", (long long)c->trig.interval);
        fprintf(f,
                "%-17.17s %3d %4d %5s %6s %6.6s | %6.4f %7.3f %10s %5lld %7lld %8.3f "
                "%9.3f %10.1f %10.2f %7s\n",
                x->label, c->num_gpus, c->num_slots, w, iv,
                none ? "-" : eplb_sim_trigger_name(c->trig.kind), x->balancedness,
                x->max_over_mean, worst, (long long)x->rebalances,
                (long long)x->moved_replicas, x->moved_bytes / 1e9, x->stall_s * 1e3,
                x->moe_time_s * 1e6, x->overhead_s * 1e6, gain);
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
        fputs(", \"trigger\": ", f);
        eplb_json_write_string(f, eplb_sim_trigger_name(c->trig.kind));
        fputs(", \"async\": ", f);
        eplb_json_write_string(f, async_name(&c->trig, buf, sizeof buf));
        kv_num(f, "gpus", c->num_gpus, 1);
        kv_num(f, "nodes", c->num_nodes, 1);
        kv_num(f, "replicas", c->num_slots, 1);
        kv_num(f, "window", (double)c->trig.window, 1);
        kv_num(f, "interval", (double)c->trig.interval, 1);
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

void eplb_sim_write_csv(FILE *f, const eplb_sim_result_t *r, int n)
{
    fputs("policy,label,trigger,async,gpus,nodes,replicas,window,interval,steps,"
          "balancedness,max_over_mean,worst_layer,worst_layer_balancedness,"
          "rebalances,moved_replicas,moved_bytes,stall_s,policy_s,moe_time_s,"
          "compute_s,a2a_s,overhead_s,total_s,gain_vs_none\n", f);
    for (int i = 0; i < n; i++) {
        const eplb_sim_result_t *x = &r[i];
        const eplb_sim_run_cfg_t *c = &x->cfg;
        char buf[32];
        fprintf(f, "%s,%s,%s,%s,%d,%d,%d,%lld,%lld,%lld,%.17g,%.17g,%d,%.17g,%lld,%lld,"
                   "%lld,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,",
                x->policy, x->label, eplb_sim_trigger_name(c->trig.kind),
                async_name(&c->trig, buf, sizeof buf), c->num_gpus, c->num_nodes,
                c->num_slots, (long long)c->trig.window, (long long)c->trig.interval,
                (long long)x->steps, x->balancedness, x->max_over_mean, x->worst_layer,
                x->worst_layer_bal, (long long)x->rebalances,
                (long long)x->moved_replicas, (long long)x->moved_bytes, x->stall_s,
                x->policy_s, x->moe_time_s, x->compute_s, x->a2a_s, x->overhead_s,
                x->total_s);
        if (isnan(x->gain_vs_none))
            fputs("\n", f);
        else
            fprintf(f, "%.17g\n", x->gain_vs_none);
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
    FILE *f = fopen(tmp, "w");
    if (!f) {
        st = eplb_error_set(EPLB_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    int guard = eplb_tmp_guard_arm(tmp);
    errno = 0;
    fn(f, ctx);
    /* stdio keeps only an error flag: flushing what is left buffered sets
     * errno again (ENOSPC, EFBIG, ...) after a write failed on the way */
    int err = fflush(f) != 0 || ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err)
        err = errno;
    if (err) {
        st = eplb_error_set(EPLB_ERR_IO, "%s: write error: %s", path, strerror(err));
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        st = eplb_error_set(EPLB_ERR_IO, "%s: cannot rename to %s: %s", tmp, path,
                            strerror(errno));
        unlink(tmp);
    }
    eplb_tmp_guard_disarm(guard);
out:
    free(tmp);
    return st;
}
