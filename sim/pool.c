/* pool.c - helper threads for the replay's per-layer and per-step loops.
 *
 * A run walks its steps in order (each decision changes the placement the
 * next steps select under), so a run is one thread's work; with fewer runs
 * than cores (the usual single-policy replay has two: the policy and
 * `none`), the per-step work of a run (all-to-all traffic counts over every
 * (token, layer, k) entry, the cost of each layer) ran on one core while
 * the others idled.  A pool lends the run's thread a few helpers for the
 * loops whose iterations are independent: each iteration writes only its
 * own slots, so results do not depend on how they are spread. */
#include "sim_impl.h"

#include <pthread.h>
#include <stdlib.h>

#include "checks.h"

struct sim_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    pthread_t *th;
    int nth;            /* helper threads started */
    /* the current loop */
    void (*fn)(void *ctx, int i);
    void *ctx;
    int n;
    atomic_int next;    /* next iteration to take */
    int busy;           /* helpers still in the loop */
    unsigned long gen;  /* loop number: a helper runs each loop once */
    int quit;
};

/* Take iterations until none are left. */
static void drain(sim_pool_t *p)
{
    for (int i; (i = atomic_fetch_add(&p->next, 1)) < p->n;)
        p->fn(p->ctx, i);
}

static void *helper(void *arg)
{
    sim_pool_t *p = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->quit)
            pthread_cond_wait(&p->cv_go, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        drain(p);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

eplb_status_t eplb_sim_pool_open(sim_pool_t **out, int nthreads)
{
    *out = NULL;
    if (nthreads <= 1)
        return EPLB_OK; /* no pool: loops run on the caller */
    sim_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return eplb_error_set(EPLB_ERR_NOMEM, "replay threads: out of memory");
    p->th = calloc((size_t)nthreads - 1, sizeof *p->th);
    if (!p->th) {
        free(p);
        return eplb_error_set(EPLB_ERR_NOMEM, "replay threads: out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_go, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    atomic_init(&p->next, 0);
    /* fewer helpers than asked (no more threads): fewer helpers, same
     * results */
    while (p->nth < nthreads - 1 && pthread_create(&p->th[p->nth], NULL, helper, p) == 0)
        p->nth++;
    *out = p;
    return EPLB_OK;
}

void eplb_sim_pool_run(sim_pool_t *p, int n, void (*fn)(void *ctx, int i), void *ctx)
{
    if (!p || p->nth == 0 || n <= 1) {
        for (int i = 0; i < n; i++)
            fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    p->busy = p->nth;
    p->gen++;
    pthread_cond_broadcast(&p->cv_go);
    pthread_mutex_unlock(&p->mu);
    drain(p);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int eplb_sim_pool_threads(const sim_pool_t *p)
{
    return p ? p->nth + 1 : 1;
}

void eplb_sim_pool_close(sim_pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv_go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    pthread_cond_destroy(&p->cv_done);
    pthread_cond_destroy(&p->cv_go);
    pthread_mutex_destroy(&p->mu);
    free(p->th);
    free(p);
}
