/*
 * Model life cycle: dispatch to a loader, the checks shared by all loaders
 * (finalize), the weight walker and the public info accessors.
 */
#include "model/model.h"

#include "core/error.h"
#include "core/rope.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "engine/device.h"
#ifdef KVL_HAVE_CUDA
#include "engine/cuda/cuda_engine.h"
#endif

/* ------------------------------------------------------------------------ */
/* Load / free                                                               */
/* ------------------------------------------------------------------------ */

/* Uploads the weights when the options ask for a GPU. */
static kvl_status place(kvl_model *m, const kvl_model_options *options,
                        kvl_error *err)
{
    int gpu = -1;
    kvl_status st = kvl_device_parse(options ? options->device : NULL, &gpu, err);
    snprintf(m->device, sizeof m->device, "cpu");
    if (st != KVL_OK || gpu < 0)
        return st;
#ifdef KVL_HAVE_CUDA
    st = kvl_cuda_model_new(m, gpu, &m->cuda, err);
    if (st == KVL_OK)
        snprintf(m->device, sizeof m->device, "cuda:%d", gpu);
    return st;
#else
    return kvl_fail(err, KVL_ERR_UNSUPPORTED, "built without CUDA");
#endif
}

kvl_status kvl_model_load(const char *path, const kvl_model_options *options,
                          kvl_model **out, kvl_error *err)
{
    if (!out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_model_load: NULL output");
    *out = NULL;
    if (!path || !*path)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_model_load: empty path");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return kvl_fail(err, KVL_ERR_IO, "file '%s': cannot access: %s",
                        path, strerror(errno));
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
        return kvl_fail(err, KVL_ERR_IO,
                        "file '%s': neither a model folder nor a checkpoint "
                        "file",
                        path);
    kvl_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory", path);
    }
    kvl_status st = S_ISDIR(sb.st_mode) ? kvl_load_hf(m, path, err)
                                        : kvl_load_llama2c(m, path, err);
    if (st == KVL_OK)
        st = place(m, options, err);
    if (st != KVL_OK) {
        kvl_model_free(m);
        return st;
    }
    kvl_error_clear(err);
    *out = m;
    return KVL_OK;
}

void kvl_model_free(kvl_model *model)
{
    if (!model)
        return;
#ifdef KVL_HAVE_CUDA
    kvl_cuda_model_free(model->cuda);
#endif
    for (int i = 0; i < model->n_st_files; i++)
        kvl_st_close(&model->st_files[i]);
    free(model->st_files);
    if (model->bin_map)
        munmap(model->bin_map, model->bin_size);
    for (int i = 0; i < model->n_owned; i++)
        free(model->owned[i]);
    free(model->owned);
    free(model->layers);
    free(model->inv_freq);
    free(model->path);
    free(model);
}

/* ------------------------------------------------------------------------ */
/* Alignment                                                                 */
/* ------------------------------------------------------------------------ */

kvl_status kvl_model_align_weight(kvl_model *m, kvl_weight *w, kvl_error *err)
{
    size_t esize = kvl_dtype_size(w->dtype);
    if (!w->data || esize == 0 || (uintptr_t)w->data % esize == 0)
        return KVL_OK;
    if (w->rows < 0 || w->cols < 0 ||
        (w->rows && (uint64_t)w->cols > SIZE_MAX / esize / (uint64_t)w->rows))
        return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': weight too large",
                        m->path);
    size_t nbytes = (size_t)w->rows * (size_t)w->cols * esize;
    void **owned = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *owned);
    if (!owned)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                        m->path);
    m->owned = owned;
    void *copy = NULL;
    /* 64 bytes: a cache line, and enough for any SIMD load. */
    if (posix_memalign(&copy, 64, nbytes ? nbytes : 1) != 0)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "file '%s': out of memory copying a weight", m->path);
    memcpy(copy, w->data, nbytes);
    m->owned[m->n_owned++] = copy;
    w->data = copy;
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Weight walker                                                             */
/* ------------------------------------------------------------------------ */

enum dim_kind { K_ONE, K_DIM, K_Q, K_KV, K_HIDDEN, K_HEAD };
enum slot_use { U_ALWAYS, U_QKV_BIAS, U_O_BIAS, U_MLP_BIAS, U_QK_NORM };

static const struct {
    const char *name;
    size_t offset;
    enum dim_kind rows, cols;
    enum slot_use use;
} layer_slots[] = {
#define L(field) offsetof(kvl_layer_weights, field)
    {"attn_norm", L(attn_norm), K_ONE, K_DIM, U_ALWAYS},
    {"wq", L(wq), K_Q, K_DIM, U_ALWAYS},
    {"bq", L(bq), K_ONE, K_Q, U_QKV_BIAS},
    {"wk", L(wk), K_KV, K_DIM, U_ALWAYS},
    {"bk", L(bk), K_ONE, K_KV, U_QKV_BIAS},
    {"wv", L(wv), K_KV, K_DIM, U_ALWAYS},
    {"bv", L(bv), K_ONE, K_KV, U_QKV_BIAS},
    {"wo", L(wo), K_DIM, K_Q, U_ALWAYS},
    {"bo", L(bo), K_ONE, K_DIM, U_O_BIAS},
    {"q_norm", L(q_norm), K_ONE, K_HEAD, U_QK_NORM},
    {"k_norm", L(k_norm), K_ONE, K_HEAD, U_QK_NORM},
    {"ffn_norm", L(ffn_norm), K_ONE, K_DIM, U_ALWAYS},
    {"w_gate", L(w_gate), K_HIDDEN, K_DIM, U_ALWAYS},
    {"b_gate", L(b_gate), K_ONE, K_HIDDEN, U_MLP_BIAS},
    {"w_up", L(w_up), K_HIDDEN, K_DIM, U_ALWAYS},
    {"b_up", L(b_up), K_ONE, K_HIDDEN, U_MLP_BIAS},
    {"w_down", L(w_down), K_DIM, K_HIDDEN, U_ALWAYS},
    {"b_down", L(b_down), K_ONE, K_DIM, U_MLP_BIAS},
#undef L
};

static int64_t dim_of(const kvl_config *c, enum dim_kind k)
{
    switch (k) {
    case K_ONE: return 1;
    case K_DIM: return c->dim;
    case K_Q: return (int64_t)c->n_heads * c->head_dim;
    case K_KV: return (int64_t)c->n_kv_heads * c->head_dim;
    case K_HIDDEN: return c->hidden_dim;
    case K_HEAD: return c->head_dim;
    }
    return 0;
}

static int slot_used(const kvl_config *c, enum slot_use u)
{
    switch (u) {
    case U_ALWAYS: return 1;
    case U_QKV_BIAS: return c->qkv_bias != 0;
    case U_O_BIAS: return c->o_bias != 0;
    case U_MLP_BIAS: return c->mlp_bias != 0;
    case U_QK_NORM: return c->qk_norm != 0;
    }
    return 0;
}

static int visit(kvl_weight_slot_fn fn, void *ctx, const char *name,
                 const kvl_weight *w, int64_t rows, int64_t cols,
                 int required)
{
    kvl_weight_slot s;
    snprintf(s.name, sizeof s.name, "%s", name);
    s.w = w;
    s.rows = rows;
    s.cols = cols;
    s.required = required;
    return fn(&s, ctx);
}

static int walk_layer(const kvl_model *m, int l, kvl_weight_slot_fn fn,
                      void *ctx)
{
    const char *base = (const char *)&m->layers[l];
    for (size_t i = 0; i < sizeof layer_slots / sizeof layer_slots[0]; i++) {
        char name[48];
        snprintf(name, sizeof name, "layers.%d.%s", l, layer_slots[i].name);
        int r = visit(fn, ctx, name,
                      (const kvl_weight *)(base + layer_slots[i].offset),
                      dim_of(&m->cfg, layer_slots[i].rows),
                      dim_of(&m->cfg, layer_slots[i].cols),
                      slot_used(&m->cfg, layer_slots[i].use));
        if (r)
            return r;
    }
    return 0;
}

int kvl_model_walk_weights(const kvl_model *m, kvl_weight_slot_fn fn,
                           void *ctx)
{
    const kvl_config *c = &m->cfg;
    int r = visit(fn, ctx, "tok_emb", &m->tok_emb, c->vocab_size, c->dim, 1);
    for (int l = 0; l < c->n_layers && !r && m->layers; l++)
        r = walk_layer(m, l, fn, ctx);
    if (!r)
        r = visit(fn, ctx, "final_norm", &m->final_norm, 1, c->dim, 1);
    if (!r && !c->tied_embeddings)
        r = visit(fn, ctx, "lm_head", &m->lm_head, c->vocab_size, c->dim, 1);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Finalize                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct check_ctx {
    kvl_model *m;
    kvl_error *err;
    kvl_status st;
} check_ctx;

/* A second line of defence behind the loaders' own checks: whatever a
 * loader bound must agree with the config the engine will trust. */
static int check_slot(const kvl_weight_slot *s, void *p)
{
    check_ctx *c = p;
    const kvl_weight *w = s->w;
    const char *path = c->m->path;
    if (!w->data) {
        if (!s->required)
            return 0;
        c->st = kvl_fail(c->err, KVL_ERR_FORMAT,
                         "file '%s': weight '%s' is missing", path, s->name);
    } else if (!s->required) {
        c->st = kvl_fail(c->err, KVL_ERR_INTERNAL,
                         "file '%s': weight '%s' is bound but the config "
                         "does not use it",
                         path, s->name);
    } else if (w->dtype != KVL_DTYPE_F32 && w->dtype != KVL_DTYPE_F16 &&
               w->dtype != KVL_DTYPE_BF16) {
        c->st = kvl_fail(c->err, KVL_ERR_UNSUPPORTED,
                         "file '%s': weight '%s' has dtype %s", path, s->name,
                         kvl_dtype_name(w->dtype));
    } else if (w->rows != s->rows || w->cols != s->cols) {
        c->st = kvl_fail(c->err, KVL_ERR_FORMAT,
                         "file '%s': weight '%s' is [%lld, %lld], expected "
                         "[%lld, %lld]",
                         path, s->name, (long long)w->rows,
                         (long long)w->cols, (long long)s->rows,
                         (long long)s->cols);
    } else if ((uintptr_t)w->data % kvl_dtype_size(w->dtype) != 0) {
        c->st = kvl_fail(c->err, KVL_ERR_INTERNAL,
                         "file '%s': weight '%s' is not aligned", path,
                         s->name);
    }
    return c->st != KVL_OK;
}

static kvl_status check_config(const kvl_model *m, kvl_error *err)
{
    const kvl_config *c = &m->cfg;
    if (c->n_layers <= 0 || c->dim <= 0 || c->hidden_dim <= 0 ||
        c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->vocab_size <= 0 || c->max_seq_len <= 0 ||
        c->n_heads % c->n_kv_heads != 0 || !(c->norm_eps > 0.0))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': inconsistent model configuration "
                        "(layers %d, dim %d, hidden %d, heads %d/%d, "
                        "head_dim %d, vocab %d, max_seq_len %d)",
                        m->path, (int)c->n_layers, (int)c->dim,
                        (int)c->hidden_dim, (int)c->n_heads,
                        (int)c->n_kv_heads, (int)c->head_dim,
                        (int)c->vocab_size, (int)c->max_seq_len);
    kvl_status st = kvl_rope_validate(&c->rope, c->head_dim, err);
    if (st != KVL_OK)
        return kvl_error_prefix(err, st, "file '%s'", m->path);
    return KVL_OK;
}

typedef struct count_ctx {
    int64_t params, bytes;
} count_ctx;

static int count_slot(const kvl_weight_slot *s, void *p)
{
    count_ctx *c = p;
    if (s->w->data) {
        c->params += s->w->rows * s->w->cols;
        c->bytes += s->w->rows * s->w->cols *
                    (int64_t)kvl_dtype_size(s->w->dtype);
    }
    return 0;
}

kvl_status kvl_model_finalize(kvl_model *m, kvl_error *err)
{
    kvl_status st = check_config(m, err);
    if (st != KVL_OK)
        return st;
    if (m->cfg.tied_embeddings)
        m->lm_head = m->tok_emb;
    check_ctx cc = {m, err, KVL_OK};
    if (kvl_model_walk_weights(m, check_slot, &cc))
        return cc.st;
    m->inv_freq = malloc((size_t)(m->cfg.rope.rotary_dim / 2) *
                         sizeof *m->inv_freq);
    if (!m->inv_freq)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                        m->path);
    kvl_rope_inv_freq(&m->cfg.rope, m->inv_freq);
    count_ctx counts = {0, 0};
    kvl_model_walk_weights(m, count_slot, &counts);
    m->n_params = counts.params;
    m->weight_bytes = counts.bytes;
    m->weight_dtype = m->layers[0].wq.dtype;
    kvl_model_compute_fingerprint(m);
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Public accessors                                                          */
/* ------------------------------------------------------------------------ */

void kvl_model_get_info(const kvl_model *m, kvl_model_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    if (!m)
        return;
    const kvl_config *c = &m->cfg;
    info->arch = c->arch;
    info->arch_name = c->arch_name;
    info->n_layers = c->n_layers;
    info->dim = c->dim;
    info->hidden_dim = c->hidden_dim;
    info->n_heads = c->n_heads;
    info->n_kv_heads = c->n_kv_heads;
    info->head_dim = c->head_dim;
    info->vocab_size = c->vocab_size;
    info->max_seq_len = c->max_seq_len;
    info->norm_eps = c->norm_eps;
    info->rope = c->rope;
    info->tied_embeddings = c->tied_embeddings;
    info->qkv_bias = c->qkv_bias;
    info->qk_norm = c->qk_norm;
    info->weight_dtype = m->weight_dtype;
    info->bos_token_id = c->bos_token_id;
    info->eos_token_id = c->eos_token_id;
    info->n_eos_token_ids = c->n_eos_ids;
    info->eos_token_ids = c->eos_ids;
    info->n_params = m->n_params;
    info->weight_bytes = m->weight_bytes;
    info->fingerprint = m->fingerprint;
    info->path = m->path;
    info->device = m->device[0] ? m->device : "cpu";
}

const char *kvl_arch_name(kvl_arch arch)
{
    switch (arch) {
    case KVL_ARCH_LLAMA: return "LlamaForCausalLM";
    case KVL_ARCH_QWEN2: return "Qwen2ForCausalLM";
    case KVL_ARCH_QWEN3: return "Qwen3ForCausalLM";
    case KVL_ARCH_LLAMA2C: return "llama2c";
    }
    return "?";
}
