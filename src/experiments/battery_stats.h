/* The statistics of a cognitive-mode battery run on one model, shared by
 * the modes and sweep phases.
 *
 * The unit of analysis is the prompt: each prompt's features are averaged
 * over its replications (different sampling seeds of the same prompt are
 * not independent observations of the mode), so a battery of M modes x P
 * prompts gives M x P observations.  On them: per-mode means of the
 * headline features with percentile-bootstrap 95 % intervals;
 * Kruskal-Wallis across modes for every feature (Holm-adjusted over the
 * features) with epsilon-squared; pairwise Mann-Whitney U between modes for
 * the headline features (Holm-adjusted over the pairs of each feature) with
 * rank-biserial correlation and Cohen's d; and stratified k-fold accuracy
 * of a random forest and a logistic regression predicting the mode from all
 * features, with a permutation-test p-value and the chance level. */
#ifndef KVL_EXPERIMENTS_BATTERY_STATS_H
#define KVL_EXPERIMENTS_BATTERY_STATS_H

#include <jansson.h>
#include <stdio.h>

#include "experiments/battery.h"
#include "experiments/gen_runs.h"
#include "experiments/report.h"

/* Model-independent summaries of the features, comparable across models
 * once normalised. */
enum {
    KVL_HL_K_NORM,      /* mean over layers of the mean |K| row norm      */
    KVL_HL_V_NORM,      /* same for V                                      */
    KVL_HL_K_RANK,      /* mean over layers of K's effective rank          */
    KVL_HL_V_RANK,      /* same for V                                      */
    KVL_HL_ATTN_ENT,    /* mean attention entropy over layers and heads    */
    KVL_HL_NEXT_ENT,    /* mean next-token entropy of the generation       */
    KVL_HL_SELF_NLL,    /* mean -log p of the model's own tokens (log ppl) */
    KVL_HL_GEN_TOKENS,  /* generated tokens before end of turn             */
    KVL_HL_COUNT
};
extern const char *const kvl_headline_names[KVL_HL_COUNT];

/* The headline features of one generation into h[KVL_HL_COUNT]. */
void kvl_exp_headline(const kvl_features *f, int32_t n_generated, double *h);

/* z-scores of each column of x[n][d] (population standard deviation over
 * the rows; a constant or non-finite value gives 0) into z (may alias x). */
void kvl_exp_zscore_columns(const double *x, int32_t n, int32_t d, double *z);

typedef struct kvl_exp_battery_data {
    int32_t n_modes, n_prompts, d, reps;
    char **mode_names;  /* [n_modes] (owned copies)                      */
    int32_t *mode;      /* [n_prompts]                                   */
    double *x;          /* [n_prompts][d] prompt-level feature means      */
    double *hl;         /* [n_prompts][KVL_HL_COUNT]                      */
    const char **names; /* [d] feature names (into name_buf)             */
    char *name_buf;
} kvl_exp_battery_data;

/* Averages the generations (prompt-major, reps each) into prompt-level
 * data. */
kvl_status kvl_exp_battery_collect(const kvl_exp_groups *battery,
                                   const kvl_exp_gen *gens, int32_t reps,
                                   kvl_exp_battery_data *out, kvl_error *err);
void kvl_exp_battery_data_free(kvl_exp_battery_data *b);

/* Runs every statistic, writes the markdown section body (plots named
 * "<prefix>-...") and returns the summary object in *summary (new
 * reference). */
kvl_status kvl_exp_battery_analyze(kvl_exp_run *r, const char *label,
                                   const char *prefix,
                                   const kvl_exp_battery_data *b,
                                   json_t **summary, kvl_error *err);

#endif
