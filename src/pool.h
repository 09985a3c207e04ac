/* pool.h - the process's helper threads, shared by every parallel loop.
 *
 * eplb_pool_run(n, threads, fn, ctx) calls fn(ctx, i) once for every i in
 * [0, n) on the calling thread and at most threads - 1 helpers, and returns
 * when all n calls are done.  The iterations must write disjoint memory (or
 * their own slots of a result summed after), so that results do not depend
 * on how they were spread.
 *
 * Helpers are started when first needed and kept until the process exits,
 * so a loop costs a wake-up (~10 us) rather than a thread start and join
 * per helper (~45 us each on the build machine).  Loops from several
 * threads at once share the helpers: the pool holds as many as the loops
 * running together asked for (each its threads - 1), never more.  A caller
 * always works on its own loop, so a loop inside an iteration of another
 * cannot deadlock, and a loop still completes (on the caller) when no
 * helper can be started. */
#ifndef EPLB_POOL_H
#define EPLB_POOL_H

typedef void (*eplb_pool_fn)(void *ctx, int i);

void eplb_pool_run(int n, int threads, eplb_pool_fn fn, void *ctx);

/* Helper threads started so far (for tests and diagnostics). */
int eplb_pool_helpers(void);

/* For a fork that must not copy a helper mid-iteration (traces/probe.c):
 * with no loop in progress, hold the pool's lock, so that every helper
 * sleeps (holding nothing) until eplb_pool_fork_unlock, and return the
 * number of helpers; with a loop in progress return -1 and hold nothing.
 * A forked child starts with an empty pool (pthread_atfork) and starts
 * helpers of its own when a loop asks for them. */
int eplb_pool_fork_lock(void);
void eplb_pool_fork_unlock(void);

#endif
