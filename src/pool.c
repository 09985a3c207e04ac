/* pool.c - the process's helper threads (pool.h).
 *
 * One list of loops in progress under one mutex.  A helper takes the next
 * iteration of the first loop that has one left and fewer helpers on it
 * than it allows, runs it unlocked, and counts it done; with nothing to
 * take it sleeps.  The caller of a loop takes its iterations too and then
 * waits for those the helpers are running.  Iterations are coarse (a block
 * of rows or layers, tens of microseconds and more), so one lock per
 * iteration costs nothing measurable. */
#include "pool.h"

#include <pthread.h>

#include "tmpfile_guard.h"

#define POOL_MAX_HELPERS 4096 /* as eplb_num_threads */

typedef struct job {
    eplb_pool_fn fn;
    void *ctx;
    int n, next, done; /* iterations: all, the next to take, finished */
    int cap, on;       /* helpers allowed on it at once, helpers on it */
    pthread_cond_t cv; /* done == n */
    struct job *prev, *link;
} job_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_work = PTHREAD_COND_INITIALIZER;
static job_t *jobs;   /* loops in progress, oldest first */
static int nhelpers;  /* started */
static int wanted;    /* sum of cap over the loops in progress */

/* In the child of a fork the helpers are gone and mu may have been held
 * (by eplb_pool_fork_lock's caller; never by a helper mid-iteration): the
 * child starts with an empty pool and a fresh lock, and starts helpers of
 * its own when a loop asks for them. */
static void at_fork_child(void)
{
    pthread_mutex_init(&mu, NULL);
    pthread_cond_init(&cv_work, NULL);
    jobs = NULL;
    nhelpers = wanted = 0;
}

static job_t *pick(void)
{
    for (job_t *j = jobs; j; j = j->link)
        if (j->next < j->n && j->on < j->cap)
            return j;
    return NULL;
}

static void *helper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        job_t *j = pick();
        if (!j) {
            pthread_cond_wait(&cv_work, &mu);
            continue;
        }
        int i = j->next++;
        j->on++;
        pthread_mutex_unlock(&mu);
        j->fn(j->ctx, i);
        pthread_mutex_lock(&mu);
        j->on--;
        if (++j->done == j->n)
            pthread_cond_signal(&j->cv);
    }
    return NULL;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int atfork_ok;
static void register_atfork(void) { atfork_ok = pthread_atfork(NULL, NULL, at_fork_child) == 0; }

/* Under mu: start helpers up to what the loops in progress want. */
static void grow(void)
{
    pthread_once(&once, register_atfork);
    if (!atfork_ok)
        return; /* no helpers rather than a forked child that could hang */
    while (nhelpers < wanted && nhelpers < POOL_MAX_HELPERS) {
        pthread_attr_t a;
        pthread_t t;
        if (pthread_attr_init(&a) != 0)
            return;
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = eplb_thread_create(&t, &a, helper, NULL);
        pthread_attr_destroy(&a);
        if (rc != 0)
            return; /* fewer helpers: the callers do more */
        nhelpers++;
    }
}

void eplb_pool_run(int n, int threads, eplb_pool_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (threads <= 1 || n == 1) {
        for (int i = 0; i < n; i++)
            fn(ctx, i);
        return;
    }
    job_t j = {.fn = fn, .ctx = ctx, .n = n, .cap = (threads - 1 < n - 1 ? threads - 1 : n - 1)};
    pthread_cond_init(&j.cv, NULL);
    pthread_mutex_lock(&mu);
    job_t **end = &jobs;
    while (*end) {
        j.prev = *end;
        end = &(*end)->link;
    }
    *end = &j;
    wanted += j.cap;
    grow();
    for (int k = 0; k < j.cap; k++)
        pthread_cond_signal(&cv_work);
    while (j.next < n) {
        int i = j.next++;
        pthread_mutex_unlock(&mu);
        fn(ctx, i);
        pthread_mutex_lock(&mu);
        j.done++;
    }
    while (j.done < n)
        pthread_cond_wait(&j.cv, &mu);
    if (j.prev)
        j.prev->link = j.link;
    else
        jobs = j.link;
    if (j.link)
        j.link->prev = j.prev;
    wanted -= j.cap;
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&j.cv);
}

int eplb_pool_helpers(void)
{
    pthread_mutex_lock(&mu);
    int n = nhelpers;
    pthread_mutex_unlock(&mu);
    return n;
}

int eplb_pool_fork_lock(void)
{
    pthread_once(&once, register_atfork);
    if (!atfork_ok)
        return -1; /* the child would inherit mu held */
    pthread_mutex_lock(&mu);
    if (jobs) {
        pthread_mutex_unlock(&mu);
        return -1;
    }
    return nhelpers;
}

void eplb_pool_fork_unlock(void) { pthread_mutex_unlock(&mu); }
