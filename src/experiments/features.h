/* Features of a KV cache and of a generation, the measurements behind the
 * cognitive-mode battery, the identity signatures and the scale sweep.
 *
 *   cache     per layer, over the tokens [t0, t1) of the cache and all kv
 *             heads: mean and population variance of the L2 norms of the K
 *             rows (after RoPE) and of the V rows, one row = one (token,
 *             kv head) vector of head_dim values; effective rank and
 *             spectral entropy (stats/stats.h) of the layer's K and V
 *             matrices [t1 - t0][n_kv_heads * head_dim].
 *   attention per layer and query head: Shannon entropy (nats) of the
 *             attention distribution softmax(q . k / sqrt(head_dim)) of a
 *             query row over the keys it attends to (causal: every cached
 *             key up to its own position), averaged over the query rows
 *             accumulated (kvl_features_add_attention, once per forward
 *             call of a session created with keep_activations = 1).
 *   generation mean over generated tokens of the entropy (nats) of the
 *             model's next-token distribution softmax(logits) at
 *             temperature 1, and the perplexity of the model's own output:
 *             exp(mean over generated tokens of -log p(token)) under the
 *             same distribution.
 *
 * Checked against an independent NumPy computation (tests/experiments,
 * fixture made by tests/reference/make_feature_fixtures.py).
 * Ownership: kvl_features_init allocates the arrays, kvl_features_free
 * releases them. */
#ifndef KVL_EXPERIMENTS_FEATURES_H
#define KVL_EXPERIMENTS_FEATURES_H

#include <stdint.h>

#include "kvlab.h"

typedef struct kvl_features {
    int32_t n_layers, n_heads, n_kv_heads, head_dim;
    /* [n_layers] */
    double *k_norm_mean, *k_norm_var, *v_norm_mean, *v_norm_var;
    double *k_eff_rank, *v_eff_rank, *k_spec_entropy, *v_spec_entropy;
    /* [n_layers][n_heads]: running sums until kvl_features_finish, then
     * means */
    double *attn_entropy;
    int64_t attn_rows;   /* query rows accumulated                        */
    /* generation */
    double next_token_entropy; /* sums until finish, then means             */
    double self_nll;           /* sum of -log p until finish, then the mean */
    double self_perplexity;    /* exp(mean nll), set by finish              */
    int64_t n_generated;
} kvl_features;

kvl_status kvl_features_init(kvl_features *f, const kvl_model *model,
                             kvl_error *err);
void kvl_features_free(kvl_features *f);

/* Cache features over tokens [t0, t1) (0 <= t0 < t1 <= n_tokens, else
 * KVL_ERR_RANGE); sets them, replacing any earlier add_cache's. */
kvl_status kvl_features_add_cache(kvl_features *f, const kvl_cache *cache,
                                  int32_t t0, int32_t t1, kvl_error *err);

/* Accumulates the attention entropies of every query row of the session's
 * last forward call (needs keep_activations = 1: reads the "q" activation
 * and the session's cache). */
kvl_status kvl_features_add_attention(kvl_features *f,
                                      const kvl_session *session,
                                      kvl_error *err);

/* Accumulates one generation step: logits[vocab] the model gave, `chosen`
 * the token that was then emitted. */
void kvl_features_add_step(kvl_features *f, const float *logits,
                           int32_t vocab, int32_t chosen);

/* Turns the sums into means (attention, generation). */
void kvl_features_finish(kvl_features *f);

/* The features as one flat vector, in a fixed order, with names such as
 * "L3.k_norm_mean", "L3.H1.attn_entropy", "gen.next_token_entropy".
 * kvl_features_count gives the length; names[i] (if non-NULL) receives
 * pointers into `name_buf` (name_cap bytes; KVL_ERR_ARG when too small).
 * Order: for each layer L, L.k_norm_mean, L.k_norm_var, L.v_norm_mean,
 * L.v_norm_var, L.k_eff_rank, L.v_eff_rank, L.k_spec_entropy,
 * L.v_spec_entropy, then L.H0 .. L.H{n_heads-1}.attn_entropy; finally
 * gen.next_token_entropy, gen.self_perplexity.  A feature never measured
 * (no add_cache, no attention row, no step) is NaN. */
int32_t kvl_features_count(const kvl_features *f);
kvl_status kvl_features_flatten(const kvl_features *f, double *out,
                                const char **names, char *name_buf,
                                size_t name_cap, kvl_error *err);

#endif
