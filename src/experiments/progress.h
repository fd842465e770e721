/* Progress reporting of long experiment phases through the caller's
 * callback (kvl_run_options.progress); the library never draws anything
 * itself.  Workers count with kvl_exp_progress_add (thread-safe); the
 * callback runs on the calling thread only (OpenMP thread 0) and at most
 * about 20 times a second. */
#ifndef KVL_EXPERIMENTS_PROGRESS_H
#define KVL_EXPERIMENTS_PROGRESS_H

#include <stdint.h>

#include "kvlab.h"

typedef struct kvl_exp_progress {
    kvl_progress_fn fn;  /* may be NULL */
    void *user;
    const char *task;    /* e.g. "modes: demo-receiver" */
    int64_t total;
    int64_t done;        /* updated atomically */
    double last_call;    /* seconds, monotonic */
} kvl_exp_progress;

void kvl_exp_progress_start(kvl_exp_progress *p, const char *task,
                            int64_t total);
void kvl_exp_progress_add(kvl_exp_progress *p, int64_t n);
/* Reports done == total once more. */
void kvl_exp_progress_end(kvl_exp_progress *p);

#endif
