/* A model as the experiment program uses it: weights, tokenizer, chat
 * template, a label for reports; and chat prompts encoded with it. */
#ifndef KVL_EXPERIMENTS_EXP_MODEL_H
#define KVL_EXPERIMENTS_EXP_MODEL_H

#include <stdint.h>

#include "kvlab.h"

typedef struct kvl_exp_model {
    char *label;          /* owned */
    char *path;           /* owned */
    char *chat_config;    /* tokenizer_config.json holding the chat template,
                             or NULL (then KVL_CHAT_CHATML is assumed)      */
    kvl_model *model;
    kvl_tokenizer *tok;
    kvl_model_info info;
} kvl_exp_model;

kvl_status kvl_exp_model_load(const char *path, const char *label,
                              kvl_exp_model *m, kvl_error *err);
void kvl_exp_model_free(kvl_exp_model *m);

/* The conversation [system (if non-NULL)] + user rendered with the model's
 * chat template and the generation prompt, encoded without added special
 * tokens (the template writes them).  *ids is owned by the caller
 * (kvl_free).  `assistant` (may be NULL) appends an assistant turn's text
 * after the generation prompt, unterminated (a forced reply start). */
kvl_status kvl_exp_encode_chat(const kvl_exp_model *m, const char *system,
                               const char *user, const char *assistant,
                               int32_t **ids, int32_t *n_ids, kvl_error *err);

/* The conversation of kvl_exp_encode_chat with its system turn separable:
 * ids[0..*n_system) are the system turn alone.  When the whole rendering's
 * ids start with the system turn's own ids (templates whose turns end in
 * special tokens) those are the ids; otherwise, when the rendered text
 * starts with the system turn's text, the ids are the system turn's ids
 * followed by the rest of the text encoded on its own; otherwise
 * KVL_ERR_UNSUPPORTED. */
kvl_status kvl_exp_encode_split(const kvl_exp_model *m, const char *system,
                                const char *user, const char *assistant,
                                int32_t **ids, int32_t *n_ids,
                                int32_t *n_system, kvl_error *err);

/* Plain text encoded without added special tokens. */
kvl_status kvl_exp_encode_text(const kvl_exp_model *m, const char *text,
                               int32_t **ids, int32_t *n_ids, kvl_error *err);

/* 1 when `id` ends generation for this model. */
int kvl_exp_is_eos(const kvl_exp_model *m, int32_t id);

#endif
