/* sim_impl.h - internals shared by the files of sim/ (not a public API). */
#ifndef EPLB_SIM_IMPL_H
#define EPLB_SIM_IMPL_H

#include "sim.h"

struct eplb_sim_source {
    int L, E, K, G;
    int64_t S;
    int token_level;            /* 1: read_ids; 0: read_counts */
    int64_t max_step_tokens;    /* largest step (token level) */
    const int64_t *tok_off;     /* [S+1] (token level) */
    char model[128];
    const char *model_config;
    /* ids [n][L][K] of tokens [t0, t1) */
    eplb_status_t (*read_ids)(eplb_sim_source_t *s, int32_t *ids, int64_t t0,
                              int64_t t1);
    /* src ranks [n] of tokens [t0, t1), or NULL if the source has none */
    eplb_status_t (*read_src)(eplb_sim_source_t *s, uint16_t *rank, int64_t t0,
                              int64_t t1);
    /* counts [n][L][E] of steps [s0, s1) */
    eplb_status_t (*read_counts)(eplb_sim_source_t *s, int32_t *counts,
                                 int64_t s0, int64_t s1);
    void (*free_fn)(eplb_sim_source_t *s);
    /* backing data */
    const eplb_trace_t *trace;
    const int32_t *ids, *counts;
    void *logits;               /* routing buffer (logits-only traces) */
    size_t logits_cap;          /* tokens it holds */
    float *bias;
    uint64_t seed;
    int tokens_per_step;
    float *base;                /* synthetic: [L][E] mean counts */
    int32_t *rec;               /* recorded topk ids (logits + topk traces) */
    size_t rec_cap;             /* tokens it holds */
    int64_t cmp_upto;           /* tokens below this were compared */
    int64_t cmp_rows, cmp_differ; /* (token, layer) rows compared / differing */
};

#endif
