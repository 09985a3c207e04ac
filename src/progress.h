/* progress.h - "layer N of L" on stderr while a slow policy runs.
 *
 * A policy that can take minutes (migration-aware without a move limit at
 * thousands of slots, docs/perf/policy.md) calls eplb_policy_args_t's
 * progress callback after each layer; eplb_progress_report is that
 * callback.  From 2 s after init on, at most once a second (and for the
 * last layer), it rewrites one line: "<what>: layer N of L (T s)", padded
 * with spaces over the longest line written before, so that a shorter
 * line from another run leaves nothing of it behind.  Lines from several
 * threads (the simulator's runs) are written whole, one at a time; the
 * simulator's own step line is written only while no run is working
 * (sim/replay.c joins them first), so it needs no lock. */
#ifndef EPLB_PROGRESS_H
#define EPLB_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    double t0, last; /* start, last line written (eplb_now) */
    char what[160];  /* the line's prefix */
    const char *unit; /* what is counted: "layer" (init), "step" */
    int shown;       /* a line was written */
    FILE *out;       /* stderr (init); tests set another stream */
} eplb_progress_t;

/* Start the clock; what: the prefix (truncated to fit). */
void eplb_progress_init(eplb_progress_t *p, const char *what);
/* The policy callback: ctx is an eplb_progress_t; done of total layers. */
void eplb_progress_report(void *ctx, int done, int total);
/* The same line for any count: "<what>: <unit> N of T (S s)" (gen's steps,
 * info's tokens); ctx is an eplb_progress_t, as for eplb_progress_report,
 * so that it is also gen's step callback. */
void eplb_progress_count(void *ctx, int64_t done, int64_t total);
/* Ends the line with a newline if one was written. */
void eplb_progress_end(eplb_progress_t *p);

#endif
