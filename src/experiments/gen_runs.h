/* Batched generation for the battery, identity and sweep phases: every
 * distinct chat prompt is prefilled once, then generated `reps` times with
 * different sampling seeds; each generation yields its reply and its
 * features (experiments/features.h).  Prompts run in parallel, one session
 * per thread; generation g is seeded by kvl_rng_derive(seed, g), so the
 * numbers do not depend on the thread count or the scheduling. */
#ifndef KVL_EXPERIMENTS_GEN_RUNS_H
#define KVL_EXPERIMENTS_GEN_RUNS_H

#include <stdint.h>

#include "experiments/config.h"
#include "experiments/exp_model.h"
#include "experiments/features.h"
#include "experiments/progress.h"

typedef struct kvl_exp_prompt {
    const char *system; /* may be NULL */
    const char *user;
    int32_t group;      /* class label: mode or persona index */
    int32_t index;      /* prompt index within its group      */
    int32_t after_system; /* 1: cache and attention features only of the
                             tokens after the system turn (the system
                             prompt's own tokens are left out)          */
} kvl_exp_prompt;

typedef struct kvl_exp_gen {
    int32_t prompt;          /* index into the prompts given              */
    int32_t replication;
    uint64_t seed;           /* the sampler's seed                        */
    int32_t n_prompt_tokens;
    int32_t feature_from;    /* first token of the feature region         */
    int32_t n_generated;     /* emitted tokens, end-of-turn excluded      */
    int32_t stopped_at_eos;
    char *text;              /* decoded reply (owned)                     */
    int32_t *ids;            /* generated ids (owned)                     */
    kvl_features feat;
} kvl_exp_gen;

/* Runs n_prompts x reps generations into a new array *out (prompt-major:
 * out[p * reps + r]) released with kvl_exp_gens_free. */
kvl_status kvl_exp_generate_all(const kvl_exp_model *m,
                                const kvl_exp_prompt *prompts,
                                int32_t n_prompts, int32_t reps,
                                const kvl_exp_sampling *sampling,
                                uint64_t seed, int32_t n_threads,
                                kvl_exp_progress *progress, kvl_exp_gen **out,
                                kvl_error *err);
void kvl_exp_gens_free(kvl_exp_gen *g, int64_t n);

#endif
