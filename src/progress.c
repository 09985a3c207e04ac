/* progress.c - see progress.h */
#include "progress.h"

#include <pthread.h>
#include <stdio.h>

#include "eplb.h"

static pthread_mutex_t line_lock = PTHREAD_MUTEX_INITIALIZER;
static int widest; /* the longest line written, under line_lock */

void eplb_progress_init(eplb_progress_t *p, const char *what)
{
    p->t0 = eplb_now();
    p->last = 0;
    p->shown = 0;
    p->out = stderr;
    p->unit = "layer";
    snprintf(p->what, sizeof p->what, "%s", what);
}

void eplb_progress_count(void *ctx, int64_t done, int64_t total)
{
    eplb_progress_t *p = ctx;
    double now = eplb_now();
    if (now - p->t0 < 2.0 || (now - p->last < 1.0 && done < total))
        return;
    p->last = now;
    p->shown = 1;
    pthread_mutex_lock(&line_lock);
    int n = fprintf(p->out, "\r%s: %s %lld of %lld (%.0f s)", p->what, p->unit, (long long)done,
                    (long long)total, now - p->t0);
    if (n > 0 && n < widest)
        fprintf(p->out, "%*s", widest - n, "");
    else if (n > widest)
        widest = n;
    fflush(p->out);
    pthread_mutex_unlock(&line_lock);
}

void eplb_progress_report(void *ctx, int done, int total) { eplb_progress_count(ctx, done, total); }

void eplb_progress_end(eplb_progress_t *p)
{
    if (!p->shown)
        return;
    pthread_mutex_lock(&line_lock);
    fputc('\n', p->out);
    widest = 0;
    pthread_mutex_unlock(&line_lock);
}
