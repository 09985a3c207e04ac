/* test_pool.c - the process's helper threads (src/pool.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/theories.h>

#include "helpers.h"
#include "pool.h"

typedef struct {
    atomic_int *hits; /* [n] */
    atomic_int running, most;
} count_ctx_t;

static void count_iter(void *arg, int i)
{
    count_ctx_t *c = arg;
    int now = atomic_fetch_add(&c->running, 1) + 1;
    int m = atomic_load(&c->most);
    while (now > m && !atomic_compare_exchange_weak(&c->most, &m, now))
        ; /* m reloaded on failure */
    atomic_fetch_add(&c->hits[i], 1);
    for (volatile int k = 0; k < 20000; k++) /* long enough for helpers to join */
        ;
    atomic_fetch_sub(&c->running, 1);
}

/* Runs n iterations on `threads`; each must run exactly once, and never
 * more than `threads` at a time.  Returns 0 or writes what went wrong to
 * why (no assertion here: it also runs on threads of its own). */
static int run_and_check(int n, int threads, char *why, size_t len)
{
    count_ctx_t c = {.hits = calloc((size_t)(n > 0 ? n : 1), sizeof(atomic_int))};
    if (!c.hits)
        return snprintf(why, len, "out of memory"), 1;
    eplb_pool_run(n, threads, count_iter, &c);
    int bad = 0;
    for (int i = 0; i < n && !bad; i++)
        if (atomic_load(&c.hits[i]) != 1)
            bad = snprintf(why, len, "n=%d threads=%d: iteration %d ran %d times", n, threads, i,
                           atomic_load(&c.hits[i]));
    if (!bad && atomic_load(&c.most) > (threads < 1 ? 1 : threads))
        bad = snprintf(why, len, "n=%d threads=%d: %d at once", n, threads,
                       atomic_load(&c.most));
    free(c.hits);
    return bad != 0;
}

static void check_run(int n, int threads)
{
    char why[256];
    cr_assert_eq(run_and_check(n, threads, why, sizeof why), 0, "%s", why);
}

/* Loop sizes and thread counts (0, 1 and 500 included): helpers stay
 * started from one case to the next, so every case bounds them by the
 * largest loop of all, n - 1 = 199 of the (200, 500) case (499 would be
 * its threads - 1, but only 199 could work); a case that asks for a helper
 * (n and threads both over 1) has one. */
TheoryDataPoints(pool, every_iteration_once_within_the_thread_limit) = {
    DataPoints(int, 0, 1, 2, 5, 64, 200),
    DataPoints(int, 0, 1, 2, 3, 8, 500),
};

Theory((int n, int threads), pool, every_iteration_once_within_the_thread_limit)
{
    check_run(n, threads);
    cr_assert_leq(eplb_pool_helpers(), 199);
    if (n > 1 && threads > 1)
        cr_assert_geq(eplb_pool_helpers(), 1);
}

/* An iteration that runs a loop of its own (the caller works on its own
 * loop, so this cannot wait for helpers busy in the outer one). */
typedef struct {
    atomic_int inner_total;
} nest_ctx_t;

static void inner_iter(void *arg, int i)
{
    (void)i;
    atomic_fetch_add(&((nest_ctx_t *)arg)->inner_total, 1);
}

static void outer_iter(void *arg, int i)
{
    (void)i;
    eplb_pool_run(10, 4, inner_iter, arg);
}

Test(pool, nested_loops_complete, .timeout = 60)
{
    nest_ctx_t c = {0};
    eplb_pool_run(16, 4, outer_iter, &c);
    cr_assert_eq(atomic_load(&c.inner_total), 160);
}

/* Loops started from several threads at once share the helpers; each
 * completes with every iteration run once. */
static void *caller(void *arg)
{
    char *why = arg;
    for (int r = 0; r < 20; r++)
        if (run_and_check(37, 3, why, 256))
            break;
    return NULL;
}

Test(pool, concurrent_callers, .timeout = 60)
{
    pthread_t th[6];
    char why[6][256] = {{0}};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, caller, why[i]), 0);
    for (int i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(why[i][0], 0, "caller %d: %s", i, why[i]);
    /* six loops of 3 threads at once: at most 6 x 2 helpers */
    cr_assert_leq(eplb_pool_helpers(), 12);
}
