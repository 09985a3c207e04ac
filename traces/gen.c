/* gen.c - synthetic trace generator: load model, step generation, reference
 * top-k and load statistics (the model is described in gen.h). */
#include "gen.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "tmpfile_guard.h"
#include "trace.h"

/* ---- random numbers ------------------------------------------------------
 * splitmix64 (Steele, Lea, Flood 2014) derives stream seeds from (seed,
 * stream, a, b); xoshiro256** (Blackman, Vigna 2018) generates.  Every
 * stream is keyed by what it generates (a step, a token), so the order in
 * which streams are used never changes the values. */
enum {
    STREAM_STATIC = 1,
    STREAM_HOT,
    STREAM_REGIME,
    STREAM_DRIFT,
    STREAM_PHASE,
    STREAM_BIAS,
    STREAM_STEP,
    STREAM_TOKEN,
    STREAM_LAYER
};

typedef struct {
    uint64_t s[4];
    int have_spare;
    double spare;
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_init(rng_t *r, uint64_t seed, uint64_t stream, uint64_t a,
                     uint64_t b)
{
    uint64_t x = seed;
    uint64_t k = splitmix64(&x) ^ stream;
    x = k;
    k = splitmix64(&x) ^ a;
    x = k;
    k = splitmix64(&x) ^ b;
    x = k;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->have_spare = 0;
    r->spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_u64(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rng_unif(rng_t *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

/* Standard normal, Marsaglia's polar method (pairs). */
static inline double rng_normal(rng_t *r)
{
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    double u, v, q;
    do {
        u = 2.0 * rng_unif(r) - 1.0;
        v = 2.0 * rng_unif(r) - 1.0;
        q = u * u + v * v;
    } while (q >= 1.0 || q == 0.0);
    double f = sqrt(-2.0 * log(q) / q);
    r->spare = v * f;
    r->have_spare = 1;
    return u * f;
}

/* ---- generator state ----------------------------------------------------- */
#define GEN_MAX_THREADS 64

struct eplb_gen {
    const eplb_gen_preset_t *p;
    eplb_gen_opts_t o;
    int L, E;
    int64_t step;       /* next step */
    int64_t regime;     /* current workload index */
    uint8_t phase;      /* phase of the previous step */
    int64_t max_tok;
    int threads;        /* token workers */
    double *layer_a;    /* [L] */
    double *base;       /* [L][E] static + hot part (scaled) */
    double *regime_v;   /* [L][E] current regime part (unscaled) */
    double *drift;      /* [L][E] AR(1) part (unscaled) */
    double *phase_v;    /* [L][E] prefill/decode part (unscaled) */
    float *bias;        /* [L][E] */
    float *mu;          /* [L][E] log-popularity of the current step */
    char source[512];
    char *model_config;
};

const eplb_gen_preset_t *eplb_gen_preset(const eplb_gen_t *g) { return g->p; }
int eplb_gen_num_layers(const eplb_gen_t *g) { return g->L; }
int64_t eplb_gen_max_step_tokens(const eplb_gen_t *g) { return g->max_tok; }
const char *eplb_gen_source(const eplb_gen_t *g) { return g->source; }
const char *eplb_gen_model_config(const eplb_gen_t *g) { return g->model_config; }

void eplb_gen_bias(const eplb_gen_t *g, float *bias)
{
    memcpy(bias, g->bias, sizeof(float) * (size_t)g->L * (size_t)g->E);
}

static void fill_regime(eplb_gen_t *g)
{
    rng_t r;
    rng_init(&r, g->o.seed, STREAM_REGIME, (uint64_t)g->regime, 0);
    for (size_t i = 0; i < (size_t)g->L * (size_t)g->E; i++)
        g->regime_v[i] = rng_normal(&r);
}

/* Layer state: skew a_l, static part, hot experts, phase part, bias. */
static void init_layers(eplb_gen_t *g)
{
    const eplb_gen_preset_t *p = g->p;
    int E = g->E;
    for (int l = 0; l < g->L; l++) {
        rng_t r;
        rng_init(&r, g->o.seed, STREAM_LAYER, (uint64_t)l, 0);
        double a = p->skew * exp(p->layer_spread * rng_normal(&r));
        g->layer_a[l] = a;
        double *base = g->base + (size_t)l * E;
        rng_init(&r, g->o.seed, STREAM_STATIC, (uint64_t)l, 0);
        for (int e = 0; e < E; e++)
            base[e] = a * sqrt(EPLB_GEN_FRAC_STATIC) * rng_normal(&r);
        /* Hot experts: a Poisson number per layer (Knuth's product method),
         * each boosted by hot_boost * (1 + |N|) skew units. */
        rng_init(&r, g->o.seed, STREAM_HOT, (uint64_t)l, 0);
        int nhot = 0;
        if (p->hot_rate > 0) {
            double lim = exp(-p->hot_rate), prod = rng_unif(&r);
            while (prod > lim && nhot < E) {
                nhot++;
                prod *= rng_unif(&r);
            }
        }
        for (int h = 0; h < nhot; h++) {
            int e = (int)(rng_u64(&r) % (uint64_t)E);
            base[e] += a * p->hot_boost * (1.0 + fabs(rng_normal(&r)));
        }
        rng_init(&r, g->o.seed, STREAM_PHASE, (uint64_t)l, 0);
        for (int e = 0; e < E; e++)
            g->phase_v[(size_t)l * E + e] = rng_normal(&r);
        rng_init(&r, g->o.seed, STREAM_BIAS, (uint64_t)l, 0);
        for (int e = 0; e < E; e++)
            g->bias[(size_t)l * E + e] =
                p->route.scoring == EPLB_SCORING_SIGMOID
                    ? (float)(p->bias_scale * rng_normal(&r))
                    : 0.0f;
    }
    /* Drift starts from its stationary distribution. */
    rng_t r;
    rng_init(&r, g->o.seed, STREAM_DRIFT, 0, 0);
    for (size_t i = 0; i < (size_t)g->L * (size_t)E; i++)
        g->drift[i] = rng_normal(&r);
    fill_regime(g);
}

static eplb_status_t check_opts(const eplb_gen_opts_t *o,
                                const eplb_gen_preset_t *p)
{
    if (o->steps < 1 || o->steps > EPLB_GEN_MAX_STEPS)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--steps: must be in 1..%lld (got %lld)",
                              (long long)EPLB_GEN_MAX_STEPS, (long long)o->steps);
    if (o->tokens_per_step < 1 || o->tokens_per_step > EPLB_GEN_MAX_TOKENS_PER_STEP)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--tokens-per-step: must be in 1..%d (got %lld)",
                              EPLB_GEN_MAX_TOKENS_PER_STEP, (long long)o->tokens_per_step);
    if (o->num_layers < 0 || o->num_layers > p->num_layers)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--layers: must be in 1..%d for preset %s (got %d)",
                              p->num_layers, p->name, o->num_layers);
    if (o->threads < 0)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--threads: must be >= 0 (got %d)",
                              o->threads);
    if ((unsigned)o->dtype > EPLB_DTYPE_BF16)
        return eplb_error_set(EPLB_ERR_INVALID_ARG, "--dtype: invalid dtype %d",
                              (int)o->dtype);
    return EPLB_OK;
}

static char *make_model_config(const eplb_gen_t *g)
{
    const eplb_gen_preset_t *p = g->p;
    char buf[1024];
    int n = snprintf(
        buf, sizeof buf,
        "{\"generator\": \"eplb-replay gen\", \"load_model\": 1, "
        "\"preset\": \"%s\", \"seed\": %llu, \"tokens_per_step\": %lld, "
        "\"token_sigma\": %g, \"skew\": %g, \"layer_spread\": %g, "
        "\"hot_rate\": %g, \"hot_boost\": %g, \"bias_scale\": %g, "
        "\"frac_static\": %g, \"frac_regime\": %g, \"frac_drift\": %g, "
        "\"frac_phase\": %g, \"drift_tau_steps\": %g, "
        "\"regime_mean_steps\": %g}",
        p->name, (unsigned long long)g->o.seed, (long long)g->o.tokens_per_step,
        p->token_sigma, p->skew, p->layer_spread, p->hot_rate, p->hot_boost,
        p->bias_scale, EPLB_GEN_FRAC_STATIC, EPLB_GEN_FRAC_REGIME,
        EPLB_GEN_FRAC_DRIFT, EPLB_GEN_FRAC_PHASE, EPLB_GEN_DRIFT_TAU,
        EPLB_GEN_REGIME_MEAN_STEPS);
    if (n < 0 || (size_t)n >= sizeof buf)
        return NULL;
    return strdup(buf);
}

/* Largest step: prefill factor 1.8 times the lognormal jitter clipped at
 * exp(0.8). */
static int64_t max_step_tokens(int64_t tokens_per_step)
{
    return (int64_t)ceil((double)tokens_per_step * 1.8 * exp(0.8)) + 1;
}

eplb_status_t eplb_gen_size_estimate(const eplb_gen_opts_t *opts, uint64_t *raw_bytes,
                                     uint64_t *buffer_bytes)
{
    const eplb_gen_preset_t *p = NULL;
    EPLB_CHECK(eplb_gen_preset_find(&p, opts->preset));
    EPLB_CHECK(check_opts(opts, p));
    uint64_t le = (uint64_t)(opts->num_layers ? opts->num_layers : p->num_layers) *
                  (uint64_t)p->route.num_experts;
    /* in double, saturated: the product may pass 2^64 for a large preset */
    double raw = (double)opts->steps * (double)opts->tokens_per_step * (double)le *
                 (double)eplb_dtype_size(opts->dtype);
    if (raw_bytes)
        *raw_bytes = raw >= 0x1p64 ? UINT64_MAX : (uint64_t)raw;
    if (buffer_bytes)
        *buffer_bytes = (uint64_t)max_step_tokens(opts->tokens_per_step) * le * sizeof(float);
    return EPLB_OK;
}

eplb_status_t eplb_gen_size_check(const eplb_gen_opts_t *opts)
{
    uint64_t raw, buf;
    EPLB_CHECK(eplb_gen_size_estimate(opts, &raw, &buf));
    if (buf > EPLB_GEN_MAX_BUFFER_BYTES)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--tokens-per-step: %lld tokens per step need a %.1f GiB step "
                              "buffer (more than %llu GiB: pass --force to use it anyway)",
                              (long long)opts->tokens_per_step,
                              (double)buf / (double)(UINT64_C(1) << 30),
                              (unsigned long long)(EPLB_GEN_MAX_BUFFER_BYTES >> 30));
    if (raw > EPLB_GEN_MAX_RAW_BYTES)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "--steps x --tokens-per-step: %lld x %lld tokens would be about "
                              "%.1f GiB of raw logits (more than %llu GiB: pass --force to "
                              "generate them anyway)",
                              (long long)opts->steps, (long long)opts->tokens_per_step,
                              (double)raw / (double)(UINT64_C(1) << 30),
                              (unsigned long long)(EPLB_GEN_MAX_RAW_BYTES >> 30));
    return EPLB_OK;
}

eplb_status_t eplb_gen_create(eplb_gen_t **out, const eplb_gen_opts_t *opts)
{
    const eplb_gen_preset_t *p = NULL;
    EPLB_CHECK(eplb_gen_preset_find(&p, opts->preset));
    EPLB_CHECK(check_opts(opts, p));
    eplb_status_t st = EPLB_OK;
    eplb_gen_t *g = calloc(1, sizeof *g);
    EPLB_ALLOC_GOTO(g, st, fail);
    g->p = p;
    g->o = *opts;
    g->o.preset = p->name;
    g->L = opts->num_layers ? opts->num_layers : p->num_layers;
    g->threads = opts->threads > 0 ? opts->threads : eplb_num_threads();
    if (g->threads > GEN_MAX_THREADS)
        g->threads = GEN_MAX_THREADS;
    g->E = p->route.num_experts;
    g->max_tok = max_step_tokens(opts->tokens_per_step);
    size_t le = (size_t)g->L * (size_t)g->E;
    g->layer_a = calloc((size_t)g->L, sizeof *g->layer_a);
    EPLB_ALLOC_GOTO(g->layer_a, st, fail);
    g->base = calloc(le, sizeof *g->base);
    EPLB_ALLOC_GOTO(g->base, st, fail);
    g->regime_v = calloc(le, sizeof *g->regime_v);
    EPLB_ALLOC_GOTO(g->regime_v, st, fail);
    g->drift = calloc(le, sizeof *g->drift);
    EPLB_ALLOC_GOTO(g->drift, st, fail);
    g->phase_v = calloc(le, sizeof *g->phase_v);
    EPLB_ALLOC_GOTO(g->phase_v, st, fail);
    g->bias = calloc(le, sizeof *g->bias);
    EPLB_ALLOC_GOTO(g->bias, st, fail);
    g->mu = calloc(le, sizeof *g->mu);
    EPLB_ALLOC_GOTO(g->mu, st, fail);
    g->model_config = make_model_config(g);
    EPLB_ALLOC_GOTO(g->model_config, st, fail);
    char layers[32] = "";
    if (opts->num_layers)
        snprintf(layers, sizeof layers, " --layers %d", opts->num_layers);
    snprintf(g->source, sizeof g->source,
             "synthetic: eplb-replay gen --preset %s --steps %lld "
             "--tokens-per-step %lld --seed %llu --dtype %s%s (load model 1)",
             p->name, (long long)opts->steps, (long long)opts->tokens_per_step,
             (unsigned long long)opts->seed, eplb_dtype_name(opts->dtype), layers);
    init_layers(g);
    *out = g;
    return EPLB_OK;
fail:
    eplb_gen_destroy(g);
    return st;
}

void eplb_gen_destroy(eplb_gen_t *g)
{
    if (!g)
        return;
    free(g->layer_a);
    free(g->base);
    free(g->regime_v);
    free(g->drift);
    free(g->phase_v);
    free(g->bias);
    free(g->mu);
    free(g->model_config);
    free(g);
}

static float round_dtype(float x, eplb_dtype_t dt)
{
    switch (dt) {
    case EPLB_DTYPE_F16: return eplb_f16_to_f32(eplb_f32_to_f16(x));
    case EPLB_DTYPE_BF16: return eplb_bf16_to_f32(eplb_f32_to_bf16(x));
    case EPLB_DTYPE_F32: break;
    }
    return x;
}

/* Token noise of tokens [t0, t1) of step s. */
typedef struct {
    const eplb_gen_t *g;
    float *logits;
    int64_t s, t0, t1;
    size_t le;
} token_job_t;

static void fill_tokens(const token_job_t *j)
{
    const eplb_gen_t *g = j->g;
    double sigma = g->p->token_sigma;
    for (int64_t t = j->t0; t < j->t1; t++) {
        rng_t tr;
        rng_init(&tr, g->o.seed, STREAM_TOKEN, (uint64_t)j->s, (uint64_t)t);
        float *row = j->logits + (size_t)t * j->le;
        for (size_t i = 0; i < j->le; i++)
            row[i] = round_dtype(g->mu[i] + (float)(sigma * rng_normal(&tr)), g->o.dtype);
    }
}

static void *fill_tokens_thread(void *arg)
{
    fill_tokens(arg);
    return NULL;
}

eplb_status_t eplb_gen_next_step(eplb_gen_t *g, float *logits, int64_t *ntok,
                                 uint8_t *phase)
{
    if (g->step >= g->o.steps)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "generator: all %lld steps already generated",
                              (long long)g->o.steps);
    int L = g->L, E = g->E;
    size_t le = (size_t)L * (size_t)E;
    int64_t s = g->step;
    rng_t r;
    rng_init(&r, g->o.seed, STREAM_STEP, (uint64_t)s, 0);
    /* Workload shift: a new regime with probability 1/mean per step. */
    if (s > 0 && rng_unif(&r) < 1.0 / EPLB_GEN_REGIME_MEAN_STEPS) {
        g->regime++;
        fill_regime(g);
    } else if (s == 0) {
        (void)rng_unif(&r);
    }
    /* Phase and size of the batch: a sticky Markov chain whose stationary
     * mix is prefill 25% (x1.8 tokens), decode 50% (x0.6), mixed 25% (x1.0):
     * mean factor 1.0, with lognormal jitter. */
    double u = rng_unif(&r), v = rng_unif(&r);
    uint8_t ph = s > 0 && v < EPLB_GEN_PHASE_STAY ? g->phase
                 : u < 0.25                       ? 0
                 : u < 0.75                       ? 1
                                                  : 2;
    g->phase = ph;
    double factor = ph == 0 ? 1.8 : ph == 1 ? 0.6 : 1.0;
    double jit = 0.2 * rng_normal(&r);
    if (jit > 0.8)
        jit = 0.8;
    if (jit < -0.8)
        jit = -0.8;
    int64_t n = (int64_t)llround((double)g->o.tokens_per_step * factor * exp(jit - 0.02));
    if (n < 1)
        n = 1;
    if (n > g->max_tok)
        n = g->max_tok;
    /* Drift: AR(1) with correlation time tau steps. */
    if (s > 0) {
        double rho = exp(-1.0 / EPLB_GEN_DRIFT_TAU);
        double innov = sqrt(1.0 - rho * rho);
        rng_t d;
        rng_init(&d, g->o.seed, STREAM_DRIFT, (uint64_t)s, 0);
        for (size_t i = 0; i < le; i++)
            g->drift[i] = rho * g->drift[i] + innov * rng_normal(&d);
    }
    double phase_sign = ph == 0 ? 1.0 : ph == 1 ? -1.0 : 0.0;
    double cr = sqrt(EPLB_GEN_FRAC_REGIME), cd = sqrt(EPLB_GEN_FRAC_DRIFT),
           cp = sqrt(EPLB_GEN_FRAC_PHASE) * phase_sign;
    for (int l = 0; l < L; l++) {
        double a = g->layer_a[l];
        for (int e = 0; e < E; e++) {
            size_t i = (size_t)l * E + e;
            g->mu[i] = (float)(g->base[i] +
                               a * (cr * g->regime_v[i] + cd * g->drift[i] +
                                    cp * g->phase_v[i]));
        }
    }
    /* Tokens on worker threads: each token has its own stream, so the
     * split does not change the values. */
    token_job_t job = {g, logits, s, 0, n, le};
    int nth = g->threads;
    if ((int64_t)nth > n / 8)
        nth = (int)(n / 8);
    if (nth <= 1) {
        fill_tokens(&job);
    } else {
        pthread_t tid[GEN_MAX_THREADS];
        int started[GEN_MAX_THREADS] = {0};
        token_job_t jobs[GEN_MAX_THREADS];
        for (int i = 0; i < nth; i++) {
            jobs[i] = job;
            jobs[i].t0 = n * i / nth;
            jobs[i].t1 = n * (i + 1) / nth;
        }
        for (int i = 1; i < nth; i++)
            started[i] = eplb_thread_create(&tid[i], NULL, fill_tokens_thread, &jobs[i]) == 0;
        fill_tokens(&jobs[0]);
        for (int i = 1; i < nth; i++) {
            if (started[i])
                pthread_join(tid[i], NULL);
            else /* no thread to be had: do that share here */
                fill_tokens(&jobs[i]);
        }
    }
    g->step++;
    *ntok = n;
    *phase = ph;
    return EPLB_OK;
}

/* ---- reference top-k ----------------------------------------------------- */

/* Insert (score, id) into the descending list ids/sc of length *n <= k;
 * equal scores keep the lower id first (ids arrive in ascending order). */
static inline void topk_insert(int32_t *ids, float *sc, int *n, int k,
                               float score, int32_t id)
{
    int m = *n;
    if (m == k && !(score > sc[m - 1]))
        return;
    int pos = m < k ? m : k - 1;
    while (pos > 0 && score > sc[pos - 1]) {
        sc[pos] = sc[pos - 1];
        ids[pos] = ids[pos - 1];
        pos--;
    }
    sc[pos] = score;
    ids[pos] = id;
    if (m < k)
        *n = m + 1;
}

void eplb_gen_topk_ref(int32_t *ids, const float *logits, const float *bias,
                       const eplb_route_cfg_t *cfg)
{
    int E = cfg->num_experts, K = cfg->top_k;
    float sc[EPLB_MAX_TOPK];
    int n = 0;
    /* choice score: s + bias with a bias (s = sigmoid, or the softmax
     * probability); without one the logit itself, which orders the experts
     * as s does without s's rounding */
    float choice[EPLB_MAX_EXPERTS], mx = -INFINITY, sum = 0.0f;
    const int sig = cfg->scoring == EPLB_SCORING_SIGMOID;
    if (bias && !sig) {
        for (int e = 0; e < E; e++)
            mx = logits[e] > mx ? logits[e] : mx;
        for (int e = 0; e < E; e++)
            sum += expf(logits[e] - mx);
    }
    for (int e = 0; e < E; e++)
        choice[e] = !bias ? logits[e]
                    : sig ? 1.0f / (1.0f + expf(-logits[e])) + bias[e]
                          : expf(logits[e] - mx) / sum + bias[e];
    if (cfg->num_groups <= 1) {
        for (int e = 0; e < E; e++)
            topk_insert(ids, sc, &n, K, choice[e], e);
        return;
    }
    /* Grouped (DeepSeek-V2/V3): group score = the sum of the group's two
     * best choice scores with a bias, its best score without (vLLM's
     * grouped_topk takes the max when there is no e_score_correction_bias);
     * keep topk_groups groups, then the top-k of their experts. */
    int G = cfg->num_groups, per = E / G, top = bias && per >= 2 ? 2 : 1;
    int32_t gid[EPLB_MAX_GROUPS];
    float gsc[EPLB_MAX_GROUPS];
    int ng = 0;
    for (int grp = 0; grp < G; grp++) {
        int32_t b2[2];
        float s2[2];
        int m = 0;
        for (int e = grp * per; e < (grp + 1) * per; e++)
            topk_insert(b2, s2, &m, top, choice[e], e);
        float gs = 0;
        for (int i = 0; i < m; i++)
            gs += s2[i];
        topk_insert(gid, gsc, &ng, cfg->topk_groups, gs, grp);
    }
    int keep[EPLB_MAX_GROUPS] = {0};
    for (int i = 0; i < ng; i++)
        keep[gid[i]] = 1;
    for (int e = 0; e < E; e++)
        if (keep[e / per])
            topk_insert(ids, sc, &n, K, choice[e], e);
}

/* ---- statistics ---------------------------------------------------------- */

static double maxmean(const int64_t *c, int E)
{
    int64_t mx = 0, sum = 0;
    for (int e = 0; e < E; e++) {
        sum += c[e];
        if (c[e] > mx)
            mx = c[e];
    }
    return sum > 0 ? (double)mx * E / (double)sum : 0.0;
}

void eplb_gen_stats_free(eplb_gen_stats_t *st)
{
    if (!st)
        return;
    free(st->window_maxmean);
    free(st->whole_maxmean);
    free(st->step_maxmean);
    free(st->top_run);
    free(st->top_same);
    free(st->top12);
    free(st->top_life);
    memset(st, 0, sizeof *st);
}

/* Streaming accumulator: one step of counts [L][E] at a time, memory
 * O(L * E) whatever the number of steps. */
typedef struct {
    int L, E;
    int64_t window, steps;
    int64_t *whole, *win; /* [L][E] */
    double *wsum, *ssum;  /* [L] */
    int64_t *nw, *ns, *inw, *run, *in_long, *same; /* [L] */
    int32_t *prev_top;    /* [L] */
    int32_t *wtop;        /* [L] most loaded expert of the last window */
    int64_t *wrun, *wruns, *wrun_total; /* [L] runs of equal window tops */
} stats_acc_t;

static void acc_free(stats_acc_t *a)
{
    free(a->whole);
    free(a->win);
    free(a->wsum);
    free(a->ssum);
    free(a->nw);
    free(a->ns);
    free(a->inw);
    free(a->run);
    free(a->in_long);
    free(a->same);
    free(a->prev_top);
    free(a->wtop);
    free(a->wrun);
    free(a->wruns);
    free(a->wrun_total);
    /* a second call (acc_init's failure, then the caller's) frees nothing */
    memset(a, 0, sizeof *a);
}

static eplb_status_t acc_init(stats_acc_t *a, int L, int E, int64_t window)
{
    memset(a, 0, sizeof *a);
    if (L < 1 || E < 1 || window < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "load statistics: empty input or window < 1");
    a->L = L;
    a->E = E;
    a->window = window;
    size_t le = (size_t)L * (size_t)E;
    a->whole = calloc(le, sizeof(int64_t));
    a->win = calloc(le, sizeof(int64_t));
    a->wsum = calloc((size_t)L, sizeof(double));
    a->ssum = calloc((size_t)L, sizeof(double));
    a->nw = calloc((size_t)L, sizeof(int64_t));
    a->ns = calloc((size_t)L, sizeof(int64_t));
    a->inw = calloc((size_t)L, sizeof(int64_t));
    a->run = calloc((size_t)L, sizeof(int64_t));
    a->in_long = calloc((size_t)L, sizeof(int64_t));
    a->same = calloc((size_t)L, sizeof(int64_t));
    a->prev_top = calloc((size_t)L, sizeof(int32_t));
    a->wtop = calloc((size_t)L, sizeof(int32_t));
    a->wrun = calloc((size_t)L, sizeof(int64_t));
    a->wruns = calloc((size_t)L, sizeof(int64_t));
    a->wrun_total = calloc((size_t)L, sizeof(int64_t));
    if (!a->whole || !a->win || !a->wsum || !a->ssum || !a->nw || !a->ns || !a->inw ||
        !a->run || !a->in_long || !a->same || !a->prev_top || !a->wtop || !a->wrun ||
        !a->wruns || !a->wrun_total) {
        acc_free(a);
        return eplb_error_set(EPLB_ERR_NOMEM, "load statistics: out of memory");
    }
    return EPLB_OK;
}

static void acc_step(stats_acc_t *a, const int64_t *c /* [L][E] */)
{
    int E = a->E;
    for (int l = 0; l < a->L; l++) {
        const int64_t *cl = c + (size_t)l * E;
        int64_t *whole = a->whole + (size_t)l * E, *win = a->win + (size_t)l * E;
        int64_t tot = 0;
        int32_t best = 0;
        for (int e = 0; e < E; e++) {
            whole[e] += cl[e];
            win[e] += cl[e];
            tot += cl[e];
            if (cl[e] > cl[best])
                best = e;
        }
        if (tot > 0) {
            a->ssum[l] += maxmean(cl, E);
            a->ns[l]++;
        }
        if (++a->inw[l] == a->window) {
            a->wsum[l] += maxmean(win, E);
            int32_t wb = 0;
            for (int e = 1; e < E; e++)
                if (win[e] > win[wb])
                    wb = e;
            if (a->nw[l] > 0 && wb == a->wtop[l]) {
                a->wrun[l]++;
            } else {
                if (a->nw[l] > 0) {
                    a->wruns[l]++;
                    a->wrun_total[l] += a->wrun[l];
                }
                a->wrun[l] = 1;
            }
            a->wtop[l] = wb;
            a->nw[l]++;
            a->inw[l] = 0;
            memset(win, 0, sizeof(int64_t) * (size_t)E);
        }
        /* Runs of an equal most loaded expert. */
        if (a->steps > 0 && best == a->prev_top[l]) {
            a->run[l]++;
            a->same[l]++;
        } else {
            if (a->run[l] >= 10)
                a->in_long[l] += a->run[l];
            a->run[l] = 1;
        }
        a->prev_top[l] = best;
    }
    a->steps++;
}

static eplb_status_t acc_finish(eplb_gen_stats_t *out, stats_acc_t *a)
{
    if (a->steps < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "load statistics: empty input or window < 1");
    int L = a->L, E = a->E;
    eplb_gen_stats_t r = {0};
    r.num_layers = L;
    r.window_steps = a->window;
    r.window_maxmean = calloc((size_t)L, sizeof(double));
    r.whole_maxmean = calloc((size_t)L, sizeof(double));
    r.step_maxmean = calloc((size_t)L, sizeof(double));
    r.top_run = calloc((size_t)L, sizeof(double));
    r.top_same = calloc((size_t)L, sizeof(double));
    r.top12 = calloc((size_t)L, sizeof(double));
    r.top_life = calloc((size_t)L, sizeof(double));
    if (!r.window_maxmean || !r.whole_maxmean || !r.step_maxmean || !r.top_run ||
        !r.top_same || !r.top12 || !r.top_life) {
        eplb_gen_stats_free(&r);
        return eplb_error_set(EPLB_ERR_NOMEM, "load statistics: out of memory");
    }
    for (int l = 0; l < L; l++) {
        const int64_t *whole = a->whole + (size_t)l * E;
        /* Mean lifetime of the most loaded expert of a window, in steps
         * (the last, unfinished run counts too). */
        int64_t runs = a->wruns[l] + (a->wrun[l] > 0), total = a->wrun_total[l] + a->wrun[l];
        r.top_life[l] = runs ? (double)total * (double)a->window / (double)runs : 0.0;
        /* A trace shorter than one window counts as one (partial) window. */
        if (a->nw[l] == 0) {
            a->wsum[l] = maxmean(a->win + (size_t)l * E, E);
            a->nw[l] = 1;
        }
        r.window_maxmean[l] = a->wsum[l] / (double)a->nw[l];
        r.whole_maxmean[l] = maxmean(whole, E);
        r.step_maxmean[l] = a->ns[l] ? a->ssum[l] / (double)a->ns[l] : 0.0;
        int64_t b1 = -1, b2 = -1;
        for (int e = 0; e < E; e++) {
            if (whole[e] > b1) {
                b2 = b1;
                b1 = whole[e];
            } else if (whole[e] > b2) {
                b2 = whole[e];
            }
        }
        r.top12[l] = b2 > 0 ? (double)b1 / (double)b2 : 0.0;
        r.top_same[l] = a->steps > 1 ? (double)a->same[l] / (double)(a->steps - 1) : 1.0;
        int64_t in_long = a->in_long[l] + (a->run[l] >= 10 ? a->run[l] : 0);
        r.top_run[l] = (double)in_long / (double)a->steps;
    }
    *out = r;
    return EPLB_OK;
}

eplb_status_t eplb_gen_stats_from_counts(eplb_gen_stats_t *out,
                                         const int64_t *counts, int64_t S,
                                         int L, int E, int64_t window_steps)
{
    stats_acc_t a;
    if (S < 1)
        return eplb_error_set(EPLB_ERR_INVALID_ARG,
                              "load statistics: empty input or window < 1");
    EPLB_CHECK(acc_init(&a, L, E, window_steps));
    for (int64_t s = 0; s < S; s++)
        acc_step(&a, counts + (size_t)s * (size_t)L * (size_t)E);
    eplb_status_t st = acc_finish(out, &a);
    acc_free(&a);
    return st;
}

eplb_status_t eplb_gen_stats_compute(eplb_gen_stats_t *out,
                                     const eplb_gen_opts_t *opts,
                                     int64_t window_steps)
{
    eplb_status_t st = EPLB_OK;
    eplb_gen_t *g = NULL;
    float *logits = NULL, *bias = NULL;
    int64_t *counts = NULL;
    stats_acc_t acc = {0};
    int32_t ids[EPLB_MAX_TOPK];
    EPLB_CHECK_GOTO(eplb_gen_create(&g, opts), st, out);
    int L = g->L, E = g->E;
    size_t le = (size_t)L * (size_t)E;
    EPLB_CHECK_GOTO(acc_init(&acc, L, E, window_steps), st, out);
    logits = malloc(sizeof(float) * le * (size_t)g->max_tok);
    EPLB_ALLOC_GOTO(logits, st, out);
    bias = malloc(sizeof(float) * le);
    EPLB_ALLOC_GOTO(bias, st, out);
    counts = malloc(sizeof *counts * le);
    EPLB_ALLOC_GOTO(counts, st, out);
    eplb_gen_bias(g, bias);
    /* the trace stores a bias for sigmoid presets only (eplb_gen_write) */
    const int sig = g->p->route.scoring == EPLB_SCORING_SIGMOID;
    int64_t ntot = 0;
    for (int64_t s = 0; s < opts->steps; s++) {
        int64_t n;
        uint8_t ph;
        EPLB_CHECK_GOTO(eplb_gen_next_step(g, logits, &n, &ph), st, out);
        ntot += n;
        memset(counts, 0, sizeof *counts * le);
        for (int64_t t = 0; t < n; t++)
            for (int l = 0; l < L; l++) {
                size_t off = (size_t)l * E;
                eplb_gen_topk_ref(ids, logits + (size_t)t * le + off,
                                  sig ? bias + off : NULL, &g->p->route);
                for (int k = 0; k < g->p->route.top_k; k++)
                    counts[off + (size_t)ids[k]]++;
            }
        acc_step(&acc, counts);
    }
    EPLB_CHECK_GOTO(acc_finish(out, &acc), st, out);
    out->num_tokens = ntot;
out:
    acc_free(&acc);
    eplb_gen_destroy(g);
    free(logits);
    free(bias);
    free(counts);
    return st;
}

/* ---- writing ------------------------------------------------------------- */

eplb_status_t eplb_gen_write(const eplb_gen_opts_t *opts, const char *path, int64_t *num_tokens,
                             eplb_gen_progress_fn progress, void *ctx)
{
    int64_t ntot = 0;
    eplb_status_t st = EPLB_OK;
    eplb_gen_t *g = NULL;
    eplb_trace_writer_t *w = NULL;
    float *logits = NULL, *bias = NULL;
    EPLB_CHECK_GOTO(eplb_gen_create(&g, opts), st, out);
    size_t le = (size_t)g->L * (size_t)g->E;
    logits = malloc(sizeof(float) * le * (size_t)g->max_tok);
    EPLB_ALLOC_GOTO(logits, st, out);
    eplb_trace_writer_opts_t wo = EPLB_TRACE_WRITER_OPTS_INIT;
    wo.model = g->p->model;
    wo.source = g->source;
    wo.model_config = g->model_config;
    wo.num_layers = g->L;
    wo.route = g->p->route;
    wo.levels = EPLB_LEVEL_LOGITS;
    wo.logits_dtype = opts->dtype;
    wo.phase = 1;
    EPLB_CHECK_GOTO(eplb_trace_writer_create(&w, path, &wo), st, out);
    if (g->p->route.scoring == EPLB_SCORING_SIGMOID) {
        bias = malloc(sizeof(float) * le);
        EPLB_ALLOC_GOTO(bias, st, out);
        eplb_gen_bias(g, bias);
        EPLB_CHECK_GOTO(eplb_trace_writer_set_bias(w, bias), st, out);
    }
    for (int64_t s = 0; s < opts->steps; s++) {
        int64_t n;
        uint8_t ph;
        EPLB_CHECK_GOTO(eplb_gen_next_step(g, logits, &n, &ph), st, out);
        EPLB_CHECK_GOTO(eplb_trace_writer_append_step(w, n, logits, NULL, NULL,
                                                      NULL, NULL, ph),
                        st, out);
        ntot += n;
        if (progress)
            progress(ctx, s + 1, opts->steps);
    }
    st = eplb_trace_writer_finish(w);
    w = NULL;
    if (st == EPLB_OK && num_tokens)
        *num_tokens = ntot;
out:
    if (w)
        eplb_trace_writer_abort(w);
    eplb_gen_destroy(g);
    free(logits);
    free(bias);
    return st;
}
