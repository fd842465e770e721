/*
 * Hugging Face model folders: config.json plus model.safetensors, or
 * model.safetensors.index.json and its shards.  Every tensor the config
 * implies is looked up, checked for dtype and shape, and bound in place
 * (pointing into the mapping).  Extra tensors are ignored, as transformers
 * does with e.g. rotary_emb.inv_freq.
 */
#include "model/hf_config.h"
#include "model/model.h"

#include "core/error.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_SINGLE "model.safetensors"
#define HF_INDEX "model.safetensors.index.json"

typedef struct hf_ctx {
    kvl_model *m;
    char *single_path;   /* set when the weights are in one file      */
    char *index_path;    /* set when they are sharded                 */
    json_t *index;       /* parsed index (owns weight_map)            */
    const json_t *weight_map;
    const char **shard_names; /* [m->n_st_files], as written in the index */
} hf_ctx;

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_regular_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ------------------------------------------------------------------------ */
/* Opening the weight files                                                  */
/* ------------------------------------------------------------------------ */

/* Shard names stay inside the model folder. */
static int valid_shard_name(const char *s)
{
    return *s && !strchr(s, '/') && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

/* Unique shard file names of the weight_map, in order of appearance. */
static kvl_status collect_shards(hf_ctx *c, kvl_error *err)
{
    size_t n = json_object_size(c->weight_map);
    c->shard_names = calloc(n + 1, sizeof *c->shard_names);
    if (!c->shard_names)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                        c->index_path);
    int n_shards = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)c->weight_map, key, value) {
        const char *s = json_string_value(value);
        if (!s || !valid_shard_name(s))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': weight_map entry '%s' must be a file "
                            "name in the model folder",
                            c->index_path, key);
        int seen = 0;
        for (int i = 0; i < n_shards && !seen; i++)
            seen = strcmp(c->shard_names[i], s) == 0;
        if (!seen)
            c->shard_names[n_shards++] = s; /* borrowed from c->index */
    }
    if (n_shards == 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': weight_map is empty", c->index_path);
    c->m->st_files = calloc((size_t)n_shards, sizeof *c->m->st_files);
    if (!c->m->st_files)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                        c->index_path);
    c->m->n_st_files = n_shards;
    return KVL_OK;
}

static kvl_status open_sharded(hf_ctx *c, const char *dir, kvl_error *err)
{
    kvl_status st = kvl_json_load_path(c->index_path, &c->index, err);
    if (st != KVL_OK)
        return st;
    c->weight_map = json_object_get(c->index, "weight_map");
    if (!json_is_object(c->weight_map))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': no \"weight_map\" object", c->index_path);
    if ((st = collect_shards(c, err)))
        return st;
    for (int i = 0; i < c->m->n_st_files; i++) {
        char *path = join_path(dir, c->shard_names[i]);
        if (!path)
            return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                            c->index_path);
        st = kvl_st_open(path, &c->m->st_files[i], err);
        free(path);
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

static kvl_status open_weights(hf_ctx *c, const char *dir, kvl_error *err)
{
    c->single_path = join_path(dir, HF_SINGLE);
    c->index_path = join_path(dir, HF_INDEX);
    if (!c->single_path || !c->index_path)
        return kvl_fail(err, KVL_ERR_NOMEM, "folder '%s': out of memory",
                        dir);
    /* transformers prefers the single file when both are present. */
    if (is_regular_file(c->single_path)) {
        free(c->index_path);
        c->index_path = NULL;
        c->m->st_files = calloc(1, sizeof *c->m->st_files);
        if (!c->m->st_files)
            return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                            c->single_path);
        c->m->n_st_files = 1;
        return kvl_st_open(c->single_path, &c->m->st_files[0], err);
    }
    free(c->single_path);
    c->single_path = NULL;
    if (is_regular_file(c->index_path))
        return open_sharded(c, dir, err);
    return kvl_fail(err, KVL_ERR_IO,
                    "folder '%s': has neither " HF_SINGLE " nor " HF_INDEX
                    " (only safetensors weights are supported)",
                    dir);
}

/* ------------------------------------------------------------------------ */
/* Binding tensors                                                           */
/* ------------------------------------------------------------------------ */

/* Finds `name`; *t = NULL when the weights do not have it.  *file is the
 * file to name in messages. */
static kvl_status find_tensor(const hf_ctx *c, const char *name,
                              const kvl_st_tensor **t, const char **file,
                              kvl_error *err)
{
    *t = NULL;
    if (c->single_path) {
        *file = c->single_path;
        *t = kvl_st_find(&c->m->st_files[0], name);
        return KVL_OK;
    }
    *file = c->index_path;
    const char *shard = json_string_value(json_object_get(c->weight_map, name));
    if (!shard)
        return KVL_OK;
    for (int i = 0; i < c->m->n_st_files; i++) {
        if (strcmp(c->shard_names[i], shard) != 0)
            continue;
        *file = c->m->st_files[i].path;
        *t = kvl_st_find(&c->m->st_files[i], name);
        if (!*t)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': tensor '%s' is missing (the index "
                            "'%s' places it in this shard)",
                            *file, name, c->index_path);
        return KVL_OK;
    }
    return kvl_fail(err, KVL_ERR_INTERNAL, "file '%s': shard '%s' not open",
                    c->index_path, shard);
}

static kvl_status check_tensor(const kvl_st_tensor *t, const char *file,
                               int ndim, const int64_t *want, kvl_error *err)
{
    if (t->dtype != KVL_DTYPE_F32 && t->dtype != KVL_DTYPE_F16 &&
        t->dtype != KVL_DTYPE_BF16)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "tensor '%s' in '%s' has dtype %s; weights must be "
                        "F32, F16 or BF16",
                        t->name, file, t->dtype_name);
    int same = t->ndim == ndim;
    for (int i = 0; i < ndim && same; i++)
        same = t->shape[i] == want[i];
    if (same)
        return KVL_OK;
    char got[160], exp[64];
    kvl_st_format_shape(t->shape, t->ndim, got, sizeof got);
    kvl_st_format_shape(want, ndim, exp, sizeof exp);
    return kvl_fail(err, KVL_ERR_FORMAT,
                    "tensor '%s' in '%s' has shape %s, expected %s", t->name,
                    file, got, exp);
}

/* Binds tensor `name` of shape [d0] (d1 == 0) or [d0, d1] into *w.  An
 * absent optional tensor leaves w zeroed. */
static kvl_status bind(hf_ctx *c, const char *name, int64_t d0, int64_t d1,
                       int required, kvl_weight *w, kvl_error *err)
{
    const kvl_st_tensor *t;
    const char *file;
    memset(w, 0, sizeof *w);
    kvl_status st = find_tensor(c, name, &t, &file, err);
    if (st != KVL_OK)
        return st;
    if (!t) {
        if (!required)
            return KVL_OK;
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': tensor '%s' is missing%s", file, name,
                        strcmp(name, "lm_head.weight") == 0
                            ? " (config.json sets tie_word_embeddings "
                              "false)"
                            : "");
    }
    const int64_t want[2] = {d0, d1};
    const int ndim = d1 ? 2 : 1;
    if ((st = check_tensor(t, file, ndim, want, err)))
        return st;
    w->data = t->data;
    w->dtype = t->dtype;
    w->rows = d1 ? d0 : 1;
    w->cols = d1 ? d1 : d0;
    return kvl_model_align_weight(c->m, w, err);
}

enum dim_kind { K_NONE, K_DIM, K_Q, K_KV, K_HIDDEN, K_HEAD };
enum slot_use { U_ALWAYS, U_QKV_BIAS, U_O_BIAS, U_MLP_BIAS, U_QK_NORM };

/* Every per-layer tensor with its slot, shape and when it exists. */
static const struct {
    const char *suffix;
    size_t offset;
    enum dim_kind d0, d1;
    enum slot_use use;
} layer_tensors[] = {
#define L(field) offsetof(kvl_layer_weights, field)
    {"input_layernorm.weight", L(attn_norm), K_DIM, K_NONE, U_ALWAYS},
    {"self_attn.q_proj.weight", L(wq), K_Q, K_DIM, U_ALWAYS},
    {"self_attn.q_proj.bias", L(bq), K_Q, K_NONE, U_QKV_BIAS},
    {"self_attn.k_proj.weight", L(wk), K_KV, K_DIM, U_ALWAYS},
    {"self_attn.k_proj.bias", L(bk), K_KV, K_NONE, U_QKV_BIAS},
    {"self_attn.v_proj.weight", L(wv), K_KV, K_DIM, U_ALWAYS},
    {"self_attn.v_proj.bias", L(bv), K_KV, K_NONE, U_QKV_BIAS},
    {"self_attn.o_proj.weight", L(wo), K_DIM, K_Q, U_ALWAYS},
    {"self_attn.o_proj.bias", L(bo), K_DIM, K_NONE, U_O_BIAS},
    {"self_attn.q_norm.weight", L(q_norm), K_HEAD, K_NONE, U_QK_NORM},
    {"self_attn.k_norm.weight", L(k_norm), K_HEAD, K_NONE, U_QK_NORM},
    {"post_attention_layernorm.weight", L(ffn_norm), K_DIM, K_NONE, U_ALWAYS},
    {"mlp.gate_proj.weight", L(w_gate), K_HIDDEN, K_DIM, U_ALWAYS},
    {"mlp.gate_proj.bias", L(b_gate), K_HIDDEN, K_NONE, U_MLP_BIAS},
    {"mlp.up_proj.weight", L(w_up), K_HIDDEN, K_DIM, U_ALWAYS},
    {"mlp.up_proj.bias", L(b_up), K_HIDDEN, K_NONE, U_MLP_BIAS},
    {"mlp.down_proj.weight", L(w_down), K_DIM, K_HIDDEN, U_ALWAYS},
    {"mlp.down_proj.bias", L(b_down), K_DIM, K_NONE, U_MLP_BIAS},
#undef L
};

static int64_t dim_of(const kvl_config *cfg, enum dim_kind k)
{
    switch (k) {
    case K_DIM: return cfg->dim;
    case K_Q: return (int64_t)cfg->n_heads * cfg->head_dim;
    case K_KV: return (int64_t)cfg->n_kv_heads * cfg->head_dim;
    case K_HIDDEN: return cfg->hidden_dim;
    case K_HEAD: return cfg->head_dim;
    case K_NONE: break;
    }
    return 0;
}

static int slot_used(const kvl_config *cfg, enum slot_use u)
{
    switch (u) {
    case U_ALWAYS: return 1;
    case U_QKV_BIAS: return cfg->qkv_bias;
    case U_O_BIAS: return cfg->o_bias;
    case U_MLP_BIAS: return cfg->mlp_bias;
    case U_QK_NORM: return cfg->qk_norm;
    }
    return 0;
}

static kvl_status bind_layer(hf_ctx *c, int l, kvl_error *err)
{
    const kvl_config *cfg = &c->m->cfg;
    char *base = (char *)&c->m->layers[l];
    for (size_t i = 0; i < sizeof layer_tensors / sizeof layer_tensors[0];
         i++) {
        if (!slot_used(cfg, layer_tensors[i].use))
            continue;
        char name[128];
        snprintf(name, sizeof name, "model.layers.%d.%s", l,
                 layer_tensors[i].suffix);
        kvl_status st = bind(c, name, dim_of(cfg, layer_tensors[i].d0),
                             dim_of(cfg, layer_tensors[i].d1), 1,
                             (kvl_weight *)(base + layer_tensors[i].offset),
                             err);
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

/* lm_head: tied when the config says so; when the config is silent and
 * the tensor is absent, tying is the only sensible reading. */
static kvl_status bind_lm_head(hf_ctx *c, int tie_explicit, kvl_error *err)
{
    kvl_model *m = c->m;
    if (!m->cfg.tied_embeddings) {
        int required = tie_explicit;
        kvl_status st = bind(c, "lm_head.weight", m->cfg.vocab_size,
                             m->cfg.dim, required, &m->lm_head, err);
        if (st != KVL_OK)
            return st;
        if (m->lm_head.data)
            return KVL_OK;
        m->cfg.tied_embeddings = 1;
    }
    m->lm_head = m->tok_emb;
    return KVL_OK;
}

static kvl_status bind_all(hf_ctx *c, int tie_explicit, kvl_error *err)
{
    kvl_model *m = c->m;
    kvl_status st;
    if ((st = bind(c, "model.embed_tokens.weight", m->cfg.vocab_size,
                   m->cfg.dim, 1, &m->tok_emb, err)) ||
        (st = bind(c, "model.norm.weight", m->cfg.dim, 0, 1, &m->final_norm,
                   err)) ||
        (st = bind_lm_head(c, tie_explicit, err)))
        return st;
    m->layers = calloc((size_t)m->cfg.n_layers, sizeof *m->layers);
    if (!m->layers)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for %d layers",
                        (int)m->cfg.n_layers);
    for (int l = 0; l < m->cfg.n_layers; l++)
        if ((st = bind_layer(c, l, err)))
            return st;
    return KVL_OK;
}

/* generation_config.json, when present, says which ids end generation
 * (transformers' generate() uses its eos_token_id, which may list several,
 * e.g. ChatML's <|im_end|> beside <|endoftext|>). */
static kvl_status read_generation_config(kvl_model *m, const char *dir,
                                         kvl_error *err)
{
    char *path = join_path(dir, "generation_config.json");
    if (!path)
        return kvl_fail(err, KVL_ERR_NOMEM, "folder '%s': out of memory", dir);
    kvl_status st = KVL_OK;
    if (access(path, F_OK) == 0) {
        json_t *root = NULL;
        st = kvl_json_load_path(path, &root, err);
        if (st == KVL_OK && !json_is_object(root))
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "file '%s': the top level must be a JSON object", path);
        if (st == KVL_OK)
            st = kvl_hf_parse_eos_ids(path, root, &m->cfg, err);
        json_decref(root);
    }
    free(path);
    return st;
}

kvl_status kvl_load_hf(kvl_model *m, const char *dir, kvl_error *err)
{
    hf_ctx c = {.m = m};
    kvl_hf_config_extra extra;
    char *config_path = join_path(dir, "config.json");
    if (!config_path)
        return kvl_fail(err, KVL_ERR_NOMEM, "folder '%s': out of memory",
                        dir);
    kvl_status st = kvl_hf_config_load(config_path, &m->cfg, &extra, err);
    free(config_path);
    if (st == KVL_OK)
        st = read_generation_config(m, dir, err);
    if (st == KVL_OK)
        st = open_weights(&c, dir, err);
    if (st == KVL_OK)
        st = bind_all(&c, extra.tie_explicit, err);
    free((void *)c.shard_names); /* the names belong to c.index */
    json_decref(c.index);
    free(c.single_path);
    free(c.index_path);
    if (st == KVL_OK)
        st = kvl_model_finalize(m, err);
    return st;
}
