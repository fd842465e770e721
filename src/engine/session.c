#include "engine/session.h"

#include "cache/cache.h"
#include "core/error.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

kvl_status kvl_session_new(const kvl_model *model,
                           const kvl_session_options *options,
                           kvl_session **out, kvl_error *err)
{
    if (!model || !out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_session_new: model and out are required");
    *out = NULL;
    kvl_session_options opt = {0};
    if (options)
        opt = *options;
    if (opt.max_tokens < 0 || opt.n_threads < 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "session options: max_tokens and n_threads must be >= 0");
    kvl_session *s = calloc(1, sizeof *s);
    if (!s)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a session");
    s->model = model;
    s->n_threads = opt.n_threads > 0 ? opt.n_threads : omp_get_max_threads();
    s->keep_activations = opt.keep_activations ? 1 : 0;
    /* The cache grows geometrically, so the default start is small. */
    int32_t cap = opt.max_tokens > 0 ? opt.max_tokens : 256;
    kvl_status st = kvl_cache_new(model, cap, &s->cache, err);
    if (st != KVL_OK) {
        free(s);
        return st;
    }
    *out = s;
    return KVL_OK;
}

void kvl_session_free(kvl_session *s)
{
    if (!s)
        return;
    kvl_cache_free(s->cache);
    for (int i = 0; i < KVL_ACT_COUNT; i++)
        free(s->acts.buf[i]);
    free(s->acts.final_norm);
    free(s->acts.resid);
    free(s->att_scores);
    kvl_matmul_scratch_free(&s->scratch);
    free(s);
}

kvl_status kvl_session_forward_at(kvl_session *s, const int32_t *tokens,
                                  const int32_t *positions, int32_t n,
                                  float *logits, int all_logits, kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_session_forward: session is NULL");
    return kvl_cpu_forward(s, tokens, positions, n, logits, all_logits, err);
}

kvl_status kvl_session_forward(kvl_session *s, const int32_t *tokens,
                               int32_t n, float *logits, int all_logits,
                               kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_session_forward: session is NULL");
    if (n <= 0 || !tokens)
        return kvl_fail(err, KVL_ERR_ARG, "forward needs at least one token");
    const kvl_cache *c = s->cache;
    int32_t start = c->n_tokens > 0 ? c->positions[c->n_tokens - 1] + 1 : 0;
    if (start > INT32_MAX - n)
        return kvl_fail(err, KVL_ERR_RANGE, "positions would exceed 2^31");
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for %d positions", (int)n);
    for (int32_t i = 0; i < n; i++)
        pos[i] = start + i;
    kvl_status st = kvl_cpu_forward(s, tokens, pos, n, logits, all_logits, err);
    free(pos);
    return st;
}

kvl_cache *kvl_session_cache(kvl_session *s) { return s ? s->cache : NULL; }

const kvl_model *kvl_session_model(const kvl_session *s)
{
    return s ? s->model : NULL;
}

kvl_status kvl_session_set_cache(kvl_session *s, const kvl_cache *cache,
                                 int force, kvl_error *err)
{
    if (!s || !cache)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_session_set_cache: session and cache are required");
    kvl_status st = kvl_cache_check_model(cache, s->model, force, err);
    if (st != KVL_OK)
        return st;
    kvl_cache *copy = NULL;
    if ((st = kvl_cache_copy(cache, &copy, err)) != KVL_OK)
        return st;
    /* A forced cache keeps its own fingerprint; the session's is the model's. */
    memcpy(copy->fingerprint, s->cache->fingerprint, sizeof copy->fingerprint);
    kvl_cache_free(s->cache);
    s->cache = copy;
    s->last_rows = 0;
    return KVL_OK;
}

void kvl_session_reset(kvl_session *s)
{
    if (!s)
        return;
    s->cache->n_tokens = 0;
    s->last_rows = 0;
}

static const char *const act_names[KVL_ACT_COUNT] = {
    "x",         "attn_norm", "q",        "k",  "v",       "attn_out",
    "attn_proj", "ffn_norm",  "gate",     "up", "ffn_act", "ffn_out"};

kvl_status kvl_session_activation(const kvl_session *s, int32_t layer,
                                  const char *name, const float **data,
                                  int32_t *rows, int32_t *cols, kvl_error *err)
{
    if (!s || !name || !data || !rows || !cols)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_session_activation: NULL argument");
    const kvl_config *cfg = &s->model->cfg;
    if (s->last_rows == 0)
        return kvl_fail(err, KVL_ERR_ARG, "no forward call has run in this session");
    if (layer == -1 && strcmp(name, "final_norm") == 0) {
        *data = s->acts.final_norm;
        *rows = s->last_rows;
        *cols = cfg->dim;
        return KVL_OK;
    }
    if (!s->keep_activations)
        return kvl_fail(err, KVL_ERR_ARG,
                        "activations are kept only with keep_activations = 1");
    if (layer < 0 || layer >= cfg->n_layers)
        return kvl_fail(err, KVL_ERR_RANGE, "layer %d outside 0..%d", (int)layer,
                        (int)cfg->n_layers - 1);
    for (int id = 0; id < KVL_ACT_COUNT; id++) {
        if (strcmp(name, act_names[id]) != 0)
            continue;
        const size_t width = (size_t)kvl_act_width(cfg, id);
        *data = s->acts.buf[id] + (size_t)layer * (size_t)s->acts.rows_cap * width;
        *rows = s->last_rows;
        *cols = (int32_t)width;
        return KVL_OK;
    }
    return kvl_fail(err, KVL_ERR_ARG, "unknown activation name '%s'", name);
}
