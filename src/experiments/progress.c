/* Throttled progress callbacks. */
#include "experiments/progress.h"

#include <omp.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void kvl_exp_progress_start(kvl_exp_progress *p, const char *task,
                            int64_t total)
{
    if (!p)
        return;
    p->task = task;
    p->total = total;
    p->done = 0;
    p->last_call = 0;
    if (p->fn)
        p->fn(p->user, task, 0, total);
}

void kvl_exp_progress_add(kvl_exp_progress *p, int64_t n)
{
    if (!p)
        return;
    int64_t done;
#pragma omp atomic capture
    done = p->done += n;
    if (!p->fn || omp_get_thread_num() != 0)
        return;
    double t = now_s();
    if (t - p->last_call < 0.05 && done < p->total)
        return;
    p->last_call = t;
    p->fn(p->user, p->task, done, p->total);
}

void kvl_exp_progress_end(kvl_exp_progress *p)
{
    if (p && p->fn)
        p->fn(p->user, p->task, p->total, p->total);
}
