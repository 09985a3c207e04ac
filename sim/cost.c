/* cost.c - modeled time of one MoE layer: the slowest GPU's expert compute
 * plus the dispatch/combine all-to-all (docs/simulator.md, "Cost model"). */
#include "sim.h"

#include <math.h>
#include <string.h>

static double expert_time_uncached(const eplb_cost_t *c, double n)
{
    if (n <= 0)
        return 0;
    const eplb_profile_t *p = &c->prof;
    const eplb_model_shape_t *m = &c->shape;
    if (c->table >= 0) {
        /* Piecewise linear in the measured points; below the first point the
         * first time (a GEMM does not get cheaper than its weight reads),
         * above the last the slope of the last segment. */
        const eplb_gemm_table_t *t = &p->tables[c->table];
        int k = t->n;
        if (k == 1)
            return t->s[0] * fmax(1, n / t->tokens[0]);
        if (n <= t->tokens[0])
            return t->s[0];
        int i = 1;
        while (i < k - 1 && t->tokens[i] < n)
            i++;
        double x0 = t->tokens[i - 1], x1 = t->tokens[i];
        double y0 = t->s[i - 1], y1 = t->s[i];
        return y0 + (y1 - y0) * (n - x0) / (x1 - x0);
    }
    /* Roofline: 3 GEMMs of hidden x inter (gate, up, down) = 6*H*F FLOP per
     * token; bytes = the expert's weights once + activations (input in the
     * weight format, gate/up output and down output in BF16). */
    double H = m->hidden, F = m->inter, wb = m->weight_bytes;
    double peak = (wb <= 1 ? p->flops_fp8 : p->flops_bf16) * p->gemm_eff;
    double flops = 6.0 * H * F * n;
    double bytes = 3.0 * H * F * wb + n * (H * wb + 4.0 * F + 2.0 * H);
    return fmax(flops / peak, bytes / (p->hbm_bw * p->gemm_eff));
}

void eplb_sim_cost_init(eplb_cost_t *c, const eplb_profile_t *prof,
                        const eplb_model_shape_t *shape, int num_gpus,
                        int num_nodes, int num_slots)
{
    memset(c, 0, sizeof *c);
    c->prof = *prof;
    c->shape = *shape;
    const eplb_gemm_table_t *t = eplb_sim_profile_table(&c->prof, shape);
    c->table = t ? (int)(t - c->prof.tables) : -1;
    c->num_gpus = num_gpus;
    c->num_nodes = num_nodes;
    c->slots_per_gpu = num_slots / num_gpus;
    c->entry_bytes = shape->hidden * (prof->dispatch_bytes + prof->combine_bytes);
    c->expert_bytes = eplb_sim_expert_bytes(shape);
    for (int n = 0; n < EPLB_COST_CACHE; n++)
        c->t_cache[n] = expert_time_uncached(c, n);
}

/* Piecewise linear through (x[i], y[i]), x ascending: y[0] below x[0], the
 * last segment's slope above x[n-1]. */
static double interp(const double *x, const double *y, int n, double v)
{
    if (n == 1 || v <= x[0])
        return y[0];
    int i = 1;
    while (i < n - 1 && x[i] < v)
        i++;
    return y[i - 1] + (y[i] - y[i - 1]) * (v - x[i - 1]) / (x[i] - x[i - 1]);
}

double eplb_sim_cost_record(const eplb_cost_t *c, double tokens)
{
    const eplb_profile_t *p = &c->prof;
    if (p->record_n > 0)
        return fmax(0, interp(p->record_tokens, p->record_t, p->record_n, tokens));
    return p->record_s;
}

double eplb_sim_cost_expert(const eplb_cost_t *c, int64_t n)
{
    if (n < EPLB_COST_CACHE)
        return n <= 0 ? 0 : c->t_cache[n];
    return expert_time_uncached(c, (double)n);
}

/* Time of one all-to-all for a GPU that moves `intra` entries over NVLink
 * and `inter` over the network: dispatch and combine each pay the latency of
 * the tiers in use; the two tiers use different links, so they overlap. */
static double a2a_time(const eplb_cost_t *c, double intra, double inter)
{
    const eplb_profile_t *p = &c->prof;
    double lat = (c->num_gpus > c->num_nodes ? p->nvlink_lat : 0) +
                 (c->num_nodes > 1 ? p->net_lat : 0);
    double t = fmax(intra * c->entry_bytes / p->nvlink_bw,
                    inter * c->entry_bytes / p->net_bw);
    return 2 * lat + t;
}

void eplb_sim_cost_layer(eplb_layer_cost_t *out, int64_t *gpu_tokens,
                         const eplb_cost_t *c, const int32_t *slot_counts,
                         const int64_t *send_intra, const int64_t *send_inter,
                         const int64_t *recv_intra, const int64_t *recv_inter)
{
    int D = c->num_gpus, S = c->slots_per_gpu;
    int gpn = D / c->num_nodes;
    double worst_compute = 0, worst_a2a = 0;
    int64_t max_tok = 0, total = 0;
    for (int g = 0; g < D; g++) {
        const int32_t *sc = slot_counts + (size_t)g * S;
        int64_t tok = 0;
        double t = 0;
        for (int i = 0; i < S; i++) {
            int32_t n = sc[i];
            tok += n;
            t += n < EPLB_COST_CACHE ? c->t_cache[n < 0 ? 0 : n]
                                     : expert_time_uncached(c, n);
        }
        gpu_tokens[g] = tok;
        total += tok;
        if (tok > max_tok)
            max_tok = tok;
        if (t > worst_compute)
            worst_compute = t;
        if (D > 1) {
            double intra, inter;
            if (recv_intra) {
                intra = (double)(send_intra[g] > recv_intra[g] ? send_intra[g]
                                                               : recv_intra[g]);
                inter = (double)(send_inter[g] > recv_inter[g] ? send_inter[g]
                                                               : recv_inter[g]);
            } else {
                /* Tokens come uniformly from all D GPUs: (gpn-1)/D of this
                 * GPU's entries cross NVLink, (D-gpn)/D the network. */
                intra = (double)tok * (gpn - 1) / D;
                inter = (double)tok * (D - gpn) / D;
            }
            double a = a2a_time(c, intra, inter);
            if (a > worst_a2a)
                worst_a2a = a;
        }
    }
    out->compute_s = worst_compute;
    out->a2a_s = worst_a2a;
    out->max_tokens = max_tok;
    out->total_tokens = total;
}
