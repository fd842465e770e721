/* Hugging Face config.json parsing (model/hf_config.c), shared by the HF
 * loader. */
#ifndef KVL_MODEL_HF_CONFIG_H
#define KVL_MODEL_HF_CONFIG_H

#include "model/model.h"

#include <jansson.h>

/* What config.json said beyond kvl_config. */
typedef struct kvl_hf_config_extra {
    int tie_explicit; /* 1 when tie_word_embeddings was written out */
} kvl_hf_config_extra;

/* Reads and parses a JSON file.  Missing / unreadable -> KVL_ERR_IO; bad
 * JSON -> KVL_ERR_FORMAT with jansson's line and column.  On success *out
 * is a new reference owned by the caller. */
kvl_status kvl_json_load_path(const char *path, json_t **out, kvl_error *err);

/* Parses config.json at `path` into *cfg (zeroed first).  Every message
 * names the file.  extra may be NULL. */
kvl_status kvl_hf_config_load(const char *path, kvl_config *cfg,
                              kvl_hf_config_extra *extra, kvl_error *err);

/* The same from an already parsed JSON object; `path` is only used in
 * messages. */
kvl_status kvl_hf_config_parse(const json_t *root, const char *path,
                               kvl_config *cfg, kvl_hf_config_extra *extra,
                               kvl_error *err);

/* Reads eos_token_id (an int or a list) of a config.json or
 * generation_config.json object into cfg->eos_ids / n_eos_ids and
 * eos_token_id; leaves cfg unchanged when the key is absent or null. */
kvl_status kvl_hf_parse_eos_ids(const char *path, const json_t *root,
                                kvl_config *cfg, kvl_error *err);

#endif
