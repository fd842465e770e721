/*
 * The CPU forward pass of the Llama / Qwen2 / Qwen3 graph, llm.c style: one
 * function per block, every intermediate in a named buffer (per layer when
 * the session keeps activations, so a backward pass can read them later).
 */
#include "cache/cache.h"
#include "core/error.h"
#include "core/rope.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/ops.h"
#include "engine/session.h"

#include <stdlib.h>
#include <string.h>

int32_t kvl_act_width(const kvl_config *cfg, int id)
{
    switch (id) {
    case KVL_ACT_Q:
    case KVL_ACT_ATTN_OUT:
        return cfg->n_heads * cfg->head_dim;
    case KVL_ACT_K:
    case KVL_ACT_V:
        return cfg->n_kv_heads * cfg->head_dim;
    case KVL_ACT_GATE:
    case KVL_ACT_UP:
    case KVL_ACT_FFN_ACT:
        return cfg->hidden_dim;
    default:
        return cfg->dim;
    }
}

static float *act(kvl_session *s, int id, int32_t layer)
{
    const size_t set = s->keep_activations ? (size_t)layer : 0;
    const size_t width = (size_t)kvl_act_width(&s->model->cfg, id);
    return s->acts.buf[id] + set * (size_t)s->acts.rows_cap * width;
}

static kvl_status grow_acts(kvl_session *s, int32_t T, kvl_error *err)
{
    kvl_acts *a = &s->acts;
    const kvl_config *cfg = &s->model->cfg;
    if (T <= a->rows_cap)
        return KVL_OK;
    const size_t sets = s->keep_activations ? (size_t)cfg->n_layers : 1;
    for (int id = 0; id < KVL_ACT_COUNT; id++) {
        size_t n = sets * (size_t)T * (size_t)kvl_act_width(cfg, id);
        float *p = realloc(a->buf[id], n * sizeof(float));
        if (!p)
            return kvl_fail(err, KVL_ERR_NOMEM,
                            "out of memory for activations of %d tokens", (int)T);
        a->buf[id] = p;
    }
    float *fn = realloc(a->final_norm, (size_t)T * cfg->dim * sizeof(float));
    if (!fn)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for %d tokens", (int)T);
    a->final_norm = fn;
    float *r = realloc(a->resid, (size_t)T * cfg->dim * sizeof(float));
    if (!r)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for %d tokens", (int)T);
    a->resid = r;
    a->n_sets = (int32_t)sets;
    a->rows_cap = T;
    return KVL_OK;
}

static kvl_status grow_scores(kvl_session *s, size_t n_ctx, kvl_error *err)
{
    if (n_ctx <= s->att_cap)
        return KVL_OK;
    size_t cap = n_ctx < 256 ? 256 : n_ctx;
    if (cap < 2 * s->att_cap)
        cap = 2 * s->att_cap;
    float *p = realloc(s->att_scores, cap * (size_t)s->n_threads * sizeof(float));
    if (!p)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for attention scores");
    s->att_scores = p;
    s->att_cap = cap;
    return KVL_OK;
}

/* q/k-norm (Qwen3) and RoPE on each head of T rows of width n_h*hd. */
static void norm_and_rotate(float *x, int32_t T, int32_t n_h,
                            const kvl_weight *norm, const kvl_model *m,
                            const int32_t *positions, int n_threads)
{
    const int32_t hd = m->cfg.head_dim;
    if (norm->data)
        kvl_rmsnorm(x, x, norm, (int64_t)T * n_h, hd, m->cfg.norm_eps, n_threads);
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < n_h; h++)
            kvl_rope_rotate(&m->cfg.rope, m->inv_freq,
                            x + ((size_t)t * n_h + h) * hd, hd, positions[t], +1);
}

static void store_kv(kvl_cache *c, int32_t layer, int32_t n_past, int32_t T,
                     const float *k, const float *v)
{
    const int32_t hd = c->head_dim, nkv = c->n_kv_heads;
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < nkv; h++) {
            const size_t off = ((size_t)t * nkv + h) * hd;
            memcpy(kvl_cache_row(c, KVL_K, layer, h, n_past + t), k + off,
                   (size_t)hd * sizeof(float));
            memcpy(kvl_cache_row(c, KVL_V, layer, h, n_past + t), v + off,
                   (size_t)hd * sizeof(float));
        }
}

static kvl_status attention_block(kvl_session *s, int32_t l, int32_t T,
                                  const int32_t *positions, int32_t n_past,
                                  kvl_error *err)
{
    const kvl_model *m = s->model;
    const kvl_config *cfg = &m->cfg;
    const kvl_layer_weights *w = &m->layers[l];
    const int nt = s->n_threads;
    float *x = s->acts.resid;
    float *xn = act(s, KVL_ACT_ATTN_NORM, l);
    float *q = act(s, KVL_ACT_Q, l), *k = act(s, KVL_ACT_K, l);
    float *v = act(s, KVL_ACT_V, l), *ao = act(s, KVL_ACT_ATTN_OUT, l);
    float *proj = act(s, KVL_ACT_ATTN_PROJ, l);
    kvl_status st;

    memcpy(act(s, KVL_ACT_X, l), x, (size_t)T * cfg->dim * sizeof(float));
    kvl_rmsnorm(xn, x, &w->attn_norm, T, cfg->dim, cfg->norm_eps, nt);
    if ((st = kvl_matmul(q, xn, T, &w->wq, &w->bq, &s->scratch, nt, err)) ||
        (st = kvl_matmul(k, xn, T, &w->wk, &w->bk, &s->scratch, nt, err)) ||
        (st = kvl_matmul(v, xn, T, &w->wv, &w->bv, &s->scratch, nt, err)))
        return st;
    norm_and_rotate(q, T, cfg->n_heads, &w->q_norm, m, positions, nt);
    norm_and_rotate(k, T, cfg->n_kv_heads, &w->k_norm, m, positions, nt);
    store_kv(s->cache, l, n_past, T, k, v);
    kvl_attention(ao, q, s->cache, l, n_past, T, cfg->n_heads, s->att_scores,
                  s->att_cap, nt);
    if ((st = kvl_matmul(proj, ao, T, &w->wo, &w->bo, &s->scratch, nt, err)))
        return st;
    kvl_add_inplace(x, proj, (int64_t)T * cfg->dim);
    return KVL_OK;
}

static kvl_status ffn_block(kvl_session *s, int32_t l, int32_t T,
                            kvl_error *err)
{
    const kvl_config *cfg = &s->model->cfg;
    const kvl_layer_weights *w = &s->model->layers[l];
    const int nt = s->n_threads;
    float *x = s->acts.resid;
    float *xn = act(s, KVL_ACT_FFN_NORM, l);
    float *gate = act(s, KVL_ACT_GATE, l), *up = act(s, KVL_ACT_UP, l);
    float *h = act(s, KVL_ACT_FFN_ACT, l), *out = act(s, KVL_ACT_FFN_OUT, l);
    kvl_status st;

    kvl_rmsnorm(xn, x, &w->ffn_norm, T, cfg->dim, cfg->norm_eps, nt);
    if ((st = kvl_matmul(gate, xn, T, &w->w_gate, &w->b_gate, &s->scratch, nt, err)) ||
        (st = kvl_matmul(up, xn, T, &w->w_up, &w->b_up, &s->scratch, nt, err)))
        return st;
    kvl_swiglu(h, gate, up, (int64_t)T * cfg->hidden_dim, nt);
    if ((st = kvl_matmul(out, h, T, &w->w_down, &w->b_down, &s->scratch, nt, err)))
        return st;
    kvl_add_inplace(x, out, (int64_t)T * cfg->dim);
    return KVL_OK;
}

static kvl_status check_inputs(const kvl_session *s, const int32_t *tokens,
                               const int32_t *positions, int32_t T,
                               kvl_error *err)
{
    const kvl_config *cfg = &s->model->cfg;
    if (T <= 0 || !tokens || !positions)
        return kvl_fail(err, KVL_ERR_ARG, "forward needs at least one token");
    if (s->cache->n_tokens > INT32_MAX - T)
        return kvl_fail(err, KVL_ERR_RANGE, "cache would exceed 2^31 tokens");
    for (int32_t t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= cfg->vocab_size)
            return kvl_fail(err, KVL_ERR_RANGE,
                            "token id %d at index %d is outside the vocabulary "
                            "(0..%d)", (int)tokens[t], (int)t,
                            (int)cfg->vocab_size - 1);
        if (positions[t] < 0)
            return kvl_fail(err, KVL_ERR_RANGE,
                            "position %d at index %d is negative",
                            (int)positions[t], (int)t);
    }
    return KVL_OK;
}

static kvl_status output_logits(kvl_session *s, int32_t T, float *logits,
                                int all_logits, kvl_error *err)
{
    const kvl_model *m = s->model;
    const int32_t dim = m->cfg.dim;
    const int32_t first = all_logits ? 0 : T - 1;
    const int32_t rows = T - first;
    /* All rows are normalised (cheap) so the "final_norm" activation is
     * complete; only the rows asked for go through the large lm_head. */
    kvl_rmsnorm(s->acts.final_norm, s->acts.resid, &m->final_norm, T, dim,
                m->cfg.norm_eps, s->n_threads);
    if (!logits)
        return KVL_OK;
    return kvl_matmul(logits, s->acts.final_norm + (size_t)first * dim, rows, &m->lm_head, NULL, &s->scratch,
                      s->n_threads, err);
}

kvl_status kvl_cpu_forward(kvl_session *s, const int32_t *tokens,
                           const int32_t *positions, int32_t T, float *logits,
                           int all_logits, kvl_error *err)
{
    const kvl_model *m = s->model;
    kvl_cache *c = s->cache;
    const int32_t n_past = c->n_tokens;
    kvl_status st;

    if ((st = check_inputs(s, tokens, positions, T, err)) ||
        (st = grow_acts(s, T, err)) ||
        (st = grow_scores(s, (size_t)n_past + (size_t)T, err)) ||
        (st = kvl_cache_reserve(c, n_past + T, err)))
        return st;
    for (int32_t t = 0; t < T; t++)
        kvl_embed_row(s->acts.resid + (size_t)t * m->cfg.dim, &m->tok_emb,
                      tokens[t]);
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        if ((st = attention_block(s, l, T, positions, n_past, err)) ||
            (st = ffn_block(s, l, T, err)))
            return st;
    }
    if ((st = output_logits(s, T, logits, all_logits, err)))
        return st;
    for (int32_t t = 0; t < T; t++) {
        c->token_ids[n_past + t] = tokens[t];
        c->positions[n_past + t] = positions[t];
    }
    c->n_tokens = n_past + T;
    s->last_rows = T;
    return KVL_OK;
}
