/* Prompt files of the experiment program (formats in docs/experiments.md):
 *
 *   battery   {"name": ..., "modes": [{"name": "factual", "system": "...",
 *              "prompts": ["...", ...]}, ...]}   ("system" optional)
 *   personas  {"personas": [{"name": "Alex", "system": "..."}, ...]}
 *   prompts   {"name": ..., "prompts": ["...", ...]}
 *
 * All three load into kvl_exp_groups: a list of named groups, each with an
 * optional system prompt and a list of prompts (a persona has none; a
 * prompt set is one group).  Ownership: kvl_exp_groups_free releases all. */
#ifndef KVL_EXPERIMENTS_BATTERY_H
#define KVL_EXPERIMENTS_BATTERY_H

#include <stdint.h>

#include "kvlab.h"

typedef struct kvl_exp_group {
    char *name;
    char *description; /* may be NULL */
    char *system;      /* may be NULL */
    int32_t n_prompts;
    char **prompts;
} kvl_exp_group;

typedef struct kvl_exp_groups {
    char *name;
    int32_t n;
    kvl_exp_group *g;
} kvl_exp_groups;

typedef enum kvl_exp_file_kind {
    KVL_EXP_BATTERY = 0,
    KVL_EXP_PERSONAS = 1,
    KVL_EXP_PROMPTS = 2
} kvl_exp_file_kind;

kvl_status kvl_exp_groups_load(const char *path, kvl_exp_file_kind kind,
                               kvl_exp_groups *out, kvl_error *err);
/* The same from JSON text (path: a name for messages). */
kvl_status kvl_exp_groups_parse(const char *text, size_t len, const char *path,
                                kvl_exp_file_kind kind, kvl_exp_groups *out,
                                kvl_error *err);
void kvl_exp_groups_free(kvl_exp_groups *g);

#endif
