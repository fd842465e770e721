/* The experiment configuration: a JSON file (documented in
 * docs/experiments.md; defaults under experiments/).  Every key is optional
 * except where said; unknown keys are refused so that a typo cannot silently
 * fall back to a default.  Relative paths inside the file are resolved
 * against the file's own folder.  Ownership: kvl_exp_config_load fills a
 * struct whose strings and arrays kvl_exp_config_free releases. */
#ifndef KVL_EXPERIMENTS_CONFIG_H
#define KVL_EXPERIMENTS_CONFIG_H

#include <stdint.h>

#include "kvlab.h"

#define KVL_EXP_MAX_MODELS 16

typedef struct kvl_exp_sampling {
    int32_t max_new_tokens; /* default 32                                 */
    float temperature;      /* default 0.8                                */
    float top_p;            /* default 0.95                               */
    int32_t top_k;          /* default 0 (off)                            */
} kvl_exp_sampling;

typedef struct kvl_exp_config {
    char *path;          /* the file read (absolute)                         */
    char *dir;           /* its folder: base of relative paths               */
    char *name;          /* results/<name>/; default: the file's base name   */
    char *output;        /* default "results" (relative to the working dir)  */
    uint64_t seed;       /* default 1                                        */
    int32_t n_models;
    char *models[KVL_EXP_MAX_MODELS]; /* resolved paths; default: the demo
                                         pair beside the config             */
    char *model_labels[KVL_EXP_MAX_MODELS]; /* default: folder base names    */
    int32_t phases;      /* bit set of KVL_PHASE_* to run for "all"          */

    struct {
        int32_t max_tokens;    /* cache-bytes plot up to this length (4096) */
        char *prompt;          /* text whose cache norms are mapped         */
    } structure;

    struct {
        char *battery;         /* battery file (resolved)                   */
        int32_t replications;  /* default 30                                */
        kvl_exp_sampling sampling;
        int32_t bootstrap;     /* bootstrap resamples, default 2000         */
        int32_t folds;         /* default 5                                 */
        int32_t permutations;  /* default 100                               */
        int32_t trees;         /* random-forest trees, default 100          */
    } modes;

    struct {
        char *facts;           /* persona facts file (resolved), JSON lines
                                  with name, city, job                      */
        int32_t items;         /* persona facts used, default 100           */
        int32_t max_new_tokens;/* default 24                                */
        int32_t continuation;  /* tokens of reference continuation for the
                                  perplexity metric, default 16             */
        char *preamble;        /* text placed before the context when its
                                  cache is computed at other positions      */
    } transfer;

    struct {
        char *personas;        /* personas file (resolved)                  */
        char *prompts;         /* prompt set A                              */
        char *prompts_b;       /* prompt set B (consistency test)           */
        int32_t replications;  /* per prompt, default 1                     */
        kvl_exp_sampling sampling;
        int32_t folds, permutations, trees;
    } identity;

    struct {
        int32_t n_models;      /* 0: the top-level models                   */
        char *models[KVL_EXP_MAX_MODELS];
        char *model_labels[KVL_EXP_MAX_MODELS];
    } sweep;
} kvl_exp_config;

enum {
    KVL_PHASE_STRUCTURE = 1 << 0,
    KVL_PHASE_MODES = 1 << 1,
    KVL_PHASE_TRANSFER = 1 << 2,
    KVL_PHASE_IDENTITY = 1 << 3,
    KVL_PHASE_SWEEP = 1 << 4,
    KVL_PHASE_ALL = (1 << 5) - 1
};

/* "structure", "modes", "transfer", "identity", "sweep" -> bit; "all" ->
 * KVL_PHASE_ALL.  KVL_ERR_ARG for another name. */
kvl_status kvl_exp_phase_parse(const char *name, int32_t *bit, kvl_error *err);
const char *kvl_exp_phase_name(int32_t bit);

kvl_status kvl_exp_config_load(const char *path, kvl_exp_config *cfg,
                               kvl_error *err);
/* The same from JSON text (dir: base for relative paths; path: a name for
 * messages).  Used by the fuzz target and tests. */
kvl_status kvl_exp_config_parse(const char *text, size_t len, const char *path,
                                const char *dir, kvl_exp_config *cfg,
                                kvl_error *err);
void kvl_exp_config_free(kvl_exp_config *cfg);

/* The configuration as JSON (every value, defaults included), for the
 * provenance block.  New reference owned by the caller. */
struct json_t *kvl_exp_config_to_json(const kvl_exp_config *cfg);

#endif
