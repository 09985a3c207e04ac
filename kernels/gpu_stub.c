/* gpu_stub.c - the GPU API in builds without CUDA: every call reports
 * EPLB_ERR_UNSUPPORTED, so callers take the CPU path. */
#include "kernels.h"

static eplb_status_t no_cuda(const char *fn)
{
    return eplb_error_set(EPLB_ERR_UNSUPPORTED,
                          "%s: this build has no CUDA (configure --with-cuda builds it)",
                          fn);
}

int eplb_gpu_built(void) { return 0; }

eplb_status_t eplb_gpu_open(eplb_gpu_t **out, int device)
{
    (void)out;
    (void)device;
    return no_cuda("eplb_gpu_open");
}

void eplb_gpu_close(eplb_gpu_t *g) { (void)g; }

const char *eplb_gpu_name(const eplb_gpu_t *g)
{
    (void)g;
    return "none";
}

eplb_status_t eplb_gpu_alloc(eplb_gpu_t *g, void **dptr, size_t bytes)
{
    (void)g, (void)dptr, (void)bytes;
    return no_cuda("eplb_gpu_alloc");
}

void eplb_gpu_free(eplb_gpu_t *g, void *dptr) { (void)g, (void)dptr; }

eplb_status_t eplb_gpu_host_alloc(eplb_gpu_t *g, void **hptr, size_t bytes)
{
    (void)g, (void)hptr, (void)bytes;
    return no_cuda("eplb_gpu_host_alloc");
}

void eplb_gpu_host_free(eplb_gpu_t *g, void *hptr) { (void)g, (void)hptr; }

eplb_status_t eplb_gpu_copy(eplb_gpu_t *g, void *dst, const void *src,
                            size_t bytes)
{
    (void)g, (void)dst, (void)src, (void)bytes;
    return no_cuda("eplb_gpu_copy");
}

eplb_status_t eplb_gpu_memset(eplb_gpu_t *g, void *dptr, int byte,
                              size_t bytes)
{
    (void)g, (void)dptr, (void)byte, (void)bytes;
    return no_cuda("eplb_gpu_memset");
}

eplb_status_t eplb_gpu_sync(eplb_gpu_t *g)
{
    (void)g;
    return no_cuda("eplb_gpu_sync");
}

eplb_status_t eplb_gpu_set_maps(eplb_gpu_t *g, const eplb_layer_map_t *maps,
                                int L)
{
    (void)g, (void)maps, (void)L;
    return no_cuda("eplb_gpu_set_maps");
}

eplb_status_t eplb_gpu_route(eplb_gpu_t *g, int32_t *d_ids, float *d_weights,
                             const void *d_logits, eplb_dtype_t dt, int64_t T,
                             int L, const float *d_bias,
                             const eplb_route_cfg_t *cfg)
{
    (void)g, (void)d_ids, (void)d_weights, (void)d_logits, (void)dt, (void)T;
    (void)L, (void)d_bias, (void)cfg;
    return no_cuda("eplb_gpu_route");
}

eplb_status_t eplb_gpu_select_record(eplb_gpu_t *g, int32_t *d_phys,
                                     int32_t *d_counts, const int32_t *d_ids,
                                     int64_t T, int L, int K,
                                     const eplb_select_cfg_t *cfg,
                                     eplb_gpu_rows_t rows)
{
    (void)g, (void)d_phys, (void)d_counts, (void)d_ids, (void)T, (void)L;
    (void)K, (void)cfg, (void)rows;
    return no_cuda("eplb_gpu_select_record");
}

eplb_status_t eplb_gpu_counts_fold(eplb_gpu_t *g, int32_t *d_out, const int32_t *d_striped,
                                   int L, int P)
{
    (void)g, (void)d_out, (void)d_striped, (void)L, (void)P;
    return no_cuda("eplb_gpu_counts_fold");
}

eplb_status_t eplb_gpu_counts_fold_clear(eplb_gpu_t *g, int32_t *d_out, int32_t *d_striped,
                                         int L, int P)
{
    (void)g, (void)d_out, (void)d_striped, (void)L, (void)P;
    return no_cuda("eplb_gpu_counts_fold_clear");
}

eplb_status_t eplb_gpu_traffic_count(eplb_gpu_t *g, int32_t *d_out,
                                     const int32_t *d_phys, int64_t T, int L,
                                     int K, const eplb_traffic_cfg_t *c,
                                     const uint16_t *d_src_gpu)
{
    (void)g, (void)d_out, (void)d_phys, (void)T, (void)L, (void)K, (void)c;
    (void)d_src_gpu;
    return no_cuda("eplb_gpu_traffic_count");
}

eplb_status_t eplb_gpu_fused(eplb_gpu_t *g, int32_t *d_ids, float *d_weights,
                             int32_t *d_phys, int32_t *d_counts,
                             const void *d_logits, eplb_dtype_t dt, int64_t T,
                             int L, const float *d_bias,
                             const eplb_route_cfg_t *rcfg,
                             const eplb_select_cfg_t *scfg,
                             eplb_gpu_rows_t rows)
{
    (void)g, (void)d_ids, (void)d_weights, (void)d_phys, (void)d_counts;
    (void)d_logits, (void)dt, (void)T, (void)L, (void)d_bias, (void)rcfg;
    (void)scfg, (void)rows;
    return no_cuda("eplb_gpu_fused");
}

eplb_status_t eplb_gpu_route_host(eplb_gpu_t *g, int32_t *ids, float *weights,
                                  const void *logits, eplb_dtype_t dt,
                                  int64_t T, int L, const float *bias,
                                  const eplb_route_cfg_t *cfg)
{
    (void)g, (void)ids, (void)weights, (void)logits, (void)dt, (void)T;
    (void)L, (void)bias, (void)cfg;
    return no_cuda("eplb_gpu_route_host");
}

eplb_status_t eplb_gpu_select_record_host(eplb_gpu_t *g, int32_t *phys,
                                          int32_t *counts, const int32_t *ids,
                                          int64_t T, int L, int K,
                                          const eplb_layer_map_t *maps,
                                          const eplb_select_cfg_t *cfg)
{
    (void)g, (void)phys, (void)counts, (void)ids, (void)T, (void)L, (void)K;
    (void)maps, (void)cfg;
    return no_cuda("eplb_gpu_select_record_host");
}

eplb_status_t eplb_gpu_fused_host(eplb_gpu_t *g, int32_t *ids, float *weights,
                                  int32_t *phys, int32_t *counts,
                                  const void *logits, eplb_dtype_t dt,
                                  int64_t T, int L, const float *bias,
                                  const eplb_route_cfg_t *rcfg,
                                  const eplb_layer_map_t *maps,
                                  const eplb_select_cfg_t *scfg)
{
    (void)g, (void)ids, (void)weights, (void)phys, (void)counts, (void)logits;
    (void)dt, (void)T, (void)L, (void)bias, (void)rcfg, (void)maps, (void)scfg;
    return no_cuda("eplb_gpu_fused_host");
}

eplb_status_t eplb_gpu_stage_open(eplb_gpu_stage_t **out, eplb_gpu_t *g,
                                  int64_t max_tokens, eplb_dtype_t dt, int L, int E,
                                  int K, int P, const float *bias)
{
    (void)out, (void)g, (void)max_tokens, (void)dt, (void)L, (void)E, (void)K, (void)P;
    (void)bias;
    return no_cuda("eplb_gpu_stage_open");
}

void eplb_gpu_stage_close(eplb_gpu_stage_t *s) { (void)s; }

void *eplb_gpu_stage_logits(eplb_gpu_stage_t *s)
{
    (void)s;
    return NULL;
}

eplb_status_t eplb_gpu_stage_submit(eplb_gpu_stage_t *s, eplb_dtype_t dt,
                                    int64_t T, const eplb_route_cfg_t *rcfg,
                                    const eplb_select_cfg_t *scfg)
{
    (void)s, (void)dt, (void)T, (void)rcfg, (void)scfg;
    return no_cuda("eplb_gpu_stage_submit");
}

eplb_status_t eplb_gpu_stage_wait(eplb_gpu_stage_t *s, const int32_t **ids,
                                  const float **weights, const int32_t **phys,
                                  const int32_t **counts)
{
    (void)s, (void)ids, (void)weights, (void)phys, (void)counts;
    return no_cuda("eplb_gpu_stage_wait");
}

eplb_status_t eplb_gpu_time_graph(eplb_gpu_t *g, double *median_us,
                                  eplb_status_t (*fn)(void *ctx, int i),
                                  void *ctx, int launches, int reps)
{
    (void)g, (void)median_us, (void)fn, (void)ctx, (void)launches, (void)reps;
    return no_cuda("eplb_gpu_time_graph");
}

eplb_status_t eplb_gpu_bandwidth(eplb_gpu_t *g, double *gbps, size_t bytes)
{
    (void)g, (void)gbps, (void)bytes;
    return no_cuda("eplb_gpu_bandwidth");
}

void eplb_gpu_set_route_variant(eplb_gpu_t *g, int variant) { (void)g, (void)variant; }

int eplb_gpu_set_count_stripes(eplb_gpu_t *g, int n)
{
    (void)g, (void)n;
    return 0;
}

int eplb_gpu_set_seg_setup(eplb_gpu_t *g, int setup)
{
    (void)g, (void)setup;
    return -1;
}

eplb_status_t eplb_gpu_empty(eplb_gpu_t *g)
{
    (void)g;
    return no_cuda("eplb_gpu_empty");
}
