#include "engine/session.h"

#include "cache/cache.h"
#include "core/error.h"
#include "engine/sampler.h"

#include <omp.h>
#ifdef KVL_HAVE_CUDA
#include "engine/cuda/cuda_engine.h"
#endif
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
    if (model->cuda && opt.keep_activations)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "keep_activations needs the CPU engine (the model is on %s)",
                        model->device);
    kvl_session *s = calloc(1, sizeof *s);
    if (!s)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a session");
    s->model = model;
    s->n_threads = opt.n_threads > 0 ? opt.n_threads : omp_get_max_threads();
    s->keep_activations = opt.keep_activations ? 1 : 0;
    /* The cache grows geometrically, so the default start is small. */
    int32_t cap = opt.max_tokens > 0 ? opt.max_tokens : 256;
    kvl_status st = kvl_cache_new(model, cap, &s->cache, err);
#ifdef KVL_HAVE_CUDA
    if (st == KVL_OK && model->cuda)
        st = kvl_cuda_session_new(model->cuda, cap, &s->cuda, err);
#endif
    if (st != KVL_OK) {
        kvl_session_free(s);
        return st;
    }
    *out = s;
    return KVL_OK;
}

#ifdef KVL_HAVE_CUDA
/* Before a device operation: a host copy that was handed out may have been
 * changed, so it is the truth. */
static kvl_status device_current(kvl_session *s, kvl_error *err)
{
    if (!s->host_lent)
        return KVL_OK;
    kvl_status st = kvl_cuda_session_import(s->cuda, s->cache, err);
    if (st == KVL_OK)
        s->host_lent = 0;
    return st;
}
#endif

void kvl_session_free(kvl_session *s)
{
    if (!s)
        return;
#ifdef KVL_HAVE_CUDA
    kvl_cuda_session_free(s->cuda);
#endif
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
#ifdef KVL_HAVE_CUDA
    if (s->cuda) {
        kvl_status st = device_current(s, err);
        if (st == KVL_OK)
            st = kvl_cuda_forward(s->cuda, tokens, positions, n, logits, all_logits, err);
        if (st == KVL_OK) {
            s->host_stale = 1;
            s->last_rows = n;
        }
        return st;
    }
#endif
    return kvl_cpu_forward(s, tokens, positions, n, logits, all_logits, err);
}

/* The position after the last cached token. */
static int32_t next_position(kvl_session *s)
{
#ifdef KVL_HAVE_CUDA
    if (s->cuda && !s->host_lent)
        return kvl_cuda_session_next_position(s->cuda);
#endif
    const kvl_cache *c = s->cache;
    return c->n_tokens > 0 ? c->positions[c->n_tokens - 1] + 1 : 0;
}

kvl_status kvl_session_forward(kvl_session *s, const int32_t *tokens,
                               int32_t n, float *logits, int all_logits,
                               kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_session_forward: session is NULL");
    if (n <= 0 || !tokens)
        return kvl_fail(err, KVL_ERR_ARG, "forward needs at least one token");
    const int32_t start = next_position(s);
    if (start > INT32_MAX - n)
        return kvl_fail(err, KVL_ERR_RANGE, "positions would exceed 2^31");
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for %d positions", (int)n);
    for (int32_t i = 0; i < n; i++)
        pos[i] = start + i;
    kvl_status st = kvl_session_forward_at(s, tokens, pos, n, logits, all_logits, err);
    free(pos);
    return st;
}

kvl_status kvl_session_decode(kvl_session *s, int32_t token, float *logits,
                              int32_t *next, kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_session_decode: session is NULL");
    const int32_t pos = next_position(s);
    if (pos == INT32_MAX)
        return kvl_fail(err, KVL_ERR_RANGE, "positions would exceed 2^31");
#ifdef KVL_HAVE_CUDA
    if (s->cuda) {
        kvl_status st = device_current(s, err);
        if (st == KVL_OK)
            st = kvl_cuda_decode(s->cuda, token, pos, logits, next, err);
        if (st == KVL_OK) {
            s->host_stale = 1;
            s->last_rows = 1;
        }
        return st;
    }
#endif
    const int32_t V = s->model->cfg.vocab_size;
    float *row = logits;
    if (!row && next && !(row = malloc((size_t)V * sizeof *row)))
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for %d logits", (int)V);
    kvl_status st = kvl_cpu_forward(s, &token, &pos, 1, row, 0, err);
    if (st == KVL_OK && next)
        *next = kvl_argmax(row, V);
    if (row != logits)
        free(row);
    return st;
}

int32_t kvl_session_next_position_internal(kvl_session *s)
{
    return next_position(s);
}

#ifdef KVL_HAVE_CUDA
kvl_status kvl_session_device_current(kvl_session *s, kvl_error *err)
{
    return s->cuda ? device_current(s, err) : KVL_OK;
}
#endif

kvl_cache *kvl_session_cache(kvl_session *s)
{
    if (!s)
        return NULL;
#ifdef KVL_HAVE_CUDA
    if (s->cuda && s->host_stale) {
        /* No error channel here: an export that fails leaves the host copy
         * as it was (an empty cache for a new session); later device
         * operations report the device's state. */
        kvl_error e;
        if (kvl_cuda_session_export_into(s->cuda, s->cache, &e) == KVL_OK)
            s->host_stale = 0;
    }
    if (s->cuda)
        s->host_lent = 1;
#endif
    return s->cache;
}

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
#ifdef KVL_HAVE_CUDA
    if (s->cuda && (st = kvl_cuda_session_import(s->cuda, copy, err)) != KVL_OK) {
        kvl_cache_free(copy);
        return st;
    }
    s->host_stale = s->host_lent = 0;
#endif
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
#ifdef KVL_HAVE_CUDA
    if (s->cuda)
        kvl_cuda_session_reset(s->cuda);
    s->host_stale = s->host_lent = 0;
#endif
}

kvl_status kvl_session_slice(kvl_session *s, int32_t tok0, int32_t tok1,
                             kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_session_slice: session is NULL");
    s->last_rows = 0;
#ifdef KVL_HAVE_CUDA
    if (s->cuda) {
        kvl_status st = device_current(s, err);
        if (st == KVL_OK)
            st = kvl_cuda_session_slice(s->cuda, tok0, tok1, err);
        if (st == KVL_OK)
            s->host_stale = 1;
        return st;
    }
#endif
    const int32_t n = s->cache->n_tokens;
    if (tok0 < 0 || tok1 < tok0 || tok1 > n)
        return kvl_fail(err, KVL_ERR_RANGE, "slice [%d, %d) outside the %d cached tokens",
                        (int)tok0, (int)tok1, (int)n);
    if (tok0 == 0)
        return kvl_cache_truncate(s->cache, tok1, err);
    kvl_cache *part = NULL;
    kvl_status st = kvl_cache_slice(s->cache, 0, s->cache->n_layers, tok0, tok1, &part, err);
    if (st == KVL_OK) {
        memcpy(part->fingerprint, s->cache->fingerprint, sizeof part->fingerprint);
        kvl_cache_free(s->cache);
        s->cache = part;
    }
    return st;
}

kvl_status kvl_session_reposition(kvl_session *s, const int32_t *new_positions,
                                  kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_session_reposition: session is NULL");
#ifdef KVL_HAVE_CUDA
    if (s->cuda) {
        kvl_status st = device_current(s, err);
        if (st == KVL_OK)
            st = kvl_cuda_session_reposition(s->cuda, new_positions, err);
        if (st == KVL_OK)
            s->host_stale = 1;
        return st;
    }
#endif
    return kvl_cache_reposition(s->cache, new_positions, err);
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
    if (s->cuda)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "activations are kept by the CPU engine only (the model is on %s)",
                        s->model->device);
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
