/* trigger.c - when a rearrangement is decided and which steps' load feeds
 * it, for each serving system's schedule (docs/simulator.md, "Triggers").
 *
 * vLLM (vllm/distributed/eplb/eplb_state.py): the step counter starts at
 * I - I/4, so the first rearrangement comes after I/4 steps, then every I;
 * the load of every step is recorded into a ring of W steps and the
 * rearrangement uses the whole ring, i.e. the last W steps. */
#include "sim.h"

#include "decimal.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"vllm", "sglang", "trtllm",
                                    "threshold", "once", "oracle"};

const char *eplb_sim_trigger_name(eplb_trigger_kind_t k)
{
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

eplb_status_t eplb_sim_trigger_parse(eplb_trigger_kind_t *out, const char *name)
{
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) {
            *out = (eplb_trigger_kind_t)i;
            return EPLB_OK;
        }
    return eplb_error_set(EPLB_ERR_INVALID_ARG,
                          "--trigger: unknown schedule '%s' (vllm, sglang, "
                          "trtllm, threshold, once, oracle)", name ? name : "");
}

eplb_status_t eplb_sim_async_parse(eplb_async_t *out, int *chunk, const char *text)
{
    if (!strcmp(text, "off")) {
        *out = EPLB_ASYNC_OFF;
        return EPLB_OK;
    }
    if (!strcmp(text, "layers")) {
        *out = EPLB_ASYNC_LAYERS;
        *chunk = 1;
        return EPLB_OK;
    }
    if (!strncmp(text, "chunk:", 6)) {
        int64_t k = 0;
        if (eplb_decimal_parse(&k, text + 6) == 0 && k >= 1 && k <= 1 << 20) {
            *out = EPLB_ASYNC_CHUNK;
            *chunk = (int)k;
            return EPLB_OK;
        }
    }
    return eplb_error_set(EPLB_ERR_INVALID_ARG,
                          "--async: '%s' is not off, layers or chunk:K (K in 1..1048576)",
                          text);
}

eplb_status_t eplb_sim_trigger_check(const eplb_trigger_t *t)
{
    if (t->interval < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--interval: %lld must be >= 1",
                              (long long)t->interval);
    if (t->window < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--window: %lld must be >= 1",
                              (long long)t->window);
    if (t->window > t->interval && t->kind != EPLB_TRIGGER_TRTLLM &&
        t->kind != EPLB_TRIGGER_ONCE)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--window %lld > --interval %lld: the window would "
                              "reach past the previous rearrangement",
                              (long long)t->window, (long long)t->interval);
    if (t->chunk < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--async chunk: must be >= 1");
    if (!(t->threshold > 0 && t->threshold <= 1))
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--threshold: %g is not in (0, 1]", t->threshold);
    if (!(t->ema_decay >= 0 && t->ema_decay < 1))
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--ema-decay: %g is not in [0, 1)",
                              t->ema_decay);
    return EPLB_OK;
}

int64_t eplb_sim_trigger_first(const eplb_trigger_t *t)
{
    int64_t f = t->interval / 4;
    return f < 1 ? 1 : f;
}

int eplb_sim_trigger_due(const eplb_trigger_t *t, int64_t s)
{
    int64_t f;
    switch (t->kind) {
    case EPLB_TRIGGER_VLLM:
    case EPLB_TRIGGER_THRESHOLD:
    case EPLB_TRIGGER_ORACLE:
        f = eplb_sim_trigger_first(t);
        return s >= f && (s - f) % t->interval == 0;
    case EPLB_TRIGGER_SGLANG:
        return s > 0 && s % t->interval == 0;
    case EPLB_TRIGGER_TRTLLM:
        return s >= t->window && (s - t->window) % t->interval == 0;
    case EPLB_TRIGGER_ONCE:
    default:
        return 0;
    }
}

void eplb_sim_trigger_window(int64_t *begin, int64_t *end, const eplb_trigger_t *t,
                             int64_t s, int64_t num_steps)
{
    switch (t->kind) {
    case EPLB_TRIGGER_ORACLE:
        *begin = s;
        *end = s + t->window < num_steps ? s + t->window : num_steps;
        return;
    case EPLB_TRIGGER_ONCE:
        *begin = 0;
        *end = num_steps;
        return;
    default:
        *begin = s - t->window > 0 ? s - t->window : 0;
        *end = s;
        return;
    }
}
