/* Small pieces shared by the phases. */
#ifndef KVL_EXPERIMENTS_PHASE_UTIL_H
#define KVL_EXPERIMENTS_PHASE_UTIL_H

#include <jansson.h>
#include <stdio.h>

#include "experiments/battery.h"
#include "experiments/battery_stats.h"
#include "experiments/gen_runs.h"
#include "experiments/report.h"

/* A JSON real, or null for NaN / infinity (JSON has neither). */
json_t *kvl_exp_json_real(double v);

/* A JSON string of text with invalid UTF-8 replaced by U+FFFD (decoded
 * model output may cut a character). */
json_t *kvl_exp_json_text(const char *text);

/* One generated reply per group (its first prompt's first replication) as
 * a markdown table. */
void kvl_exp_sample_replies(FILE *md, const kvl_exp_groups *groups,
                            const kvl_exp_prompt *prompts,
                            const kvl_exp_gen *gens, int32_t n_prompts,
                            int32_t reps);

/* The battery on one model: generations (recorded to runs.jsonl under
 * `phase`), averaged to prompt-level data in *out. */
kvl_status kvl_exp_battery_run(kvl_exp_run *r, const char *phase,
                               const kvl_exp_model *m,
                               const kvl_exp_groups *battery,
                               kvl_exp_battery_data *out, kvl_error *err);

#endif
