/* Features of a KV cache and of a generation (spec: features.h).
 *
 * Conventions this file adds to the header:
 *   - kvl_features_init sets the cache features to NaN ("not measured") and
 *     the sums to 0; kvl_features_add_cache (re)sets the cache features of
 *     every layer, it does not accumulate.
 *   - kvl_features_finish gives NaN means when nothing was accumulated (no
 *     attention rows, no generated token); call it once.
 *   - kvl_features_add_step cannot report an error (void): an invalid step
 *     (NULL logits, vocab <= 0, chosen outside the vocabulary, NaN or +inf
 *     logits, all logits -inf) is counted and makes the generation features
 *     NaN, so that it cannot go unnoticed.
 *   - flatten order: for each layer L, its 8 cache features (k_norm_mean,
 *     k_norm_var, v_norm_mean, v_norm_var, k_eff_rank, v_eff_rank,
 *     k_spec_entropy, v_spec_entropy) then L.H0..L.H{n_heads-1}.attn_entropy;
 *     finally gen.next_token_entropy and gen.self_perplexity. */
#include "experiments/features.h"

#include "cache/cache.h"
#include "core/error.h"
#include "engine/session.h"
#include "model/model.h"
#include "stats/stats.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_CACHE_FEATURES 8
#define N_GEN_FEATURES 2

static const char *const cache_feature_names[N_CACHE_FEATURES] = {
    "k_norm_mean", "k_norm_var",  "v_norm_mean",    "v_norm_var",
    "k_eff_rank",  "v_eff_rank",  "k_spec_entropy", "v_spec_entropy"};

static const char *const gen_feature_names[N_GEN_FEATURES] = {
    "gen.next_token_entropy", "gen.self_perplexity"};

/* The per-layer arrays in flatten order, so loops need no switch. */
static double *cache_array(const kvl_features *f, int which)
{
    double *const arrays[N_CACHE_FEATURES] = {
        f->k_norm_mean, f->k_norm_var,  f->v_norm_mean,    f->v_norm_var,
        f->k_eff_rank,  f->v_eff_rank,  f->k_spec_entropy, f->v_spec_entropy};
    return arrays[which];
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

kvl_status kvl_features_init(kvl_features *f, const kvl_model *model,
                             kvl_error *err)
{
    if (!f || !model)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_features_init: features and model are required");
    memset(f, 0, sizeof *f);
    const kvl_config *cfg = &model->cfg;
    if (cfg->n_layers <= 0 || cfg->n_heads <= 0 || cfg->n_kv_heads <= 0 ||
        cfg->head_dim <= 0 || cfg->n_heads % cfg->n_kv_heads != 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_features_init: model geometry is invalid (%d "
                        "layers, %d heads, %d kv heads, head_dim %d)",
                        (int)cfg->n_layers, (int)cfg->n_heads,
                        (int)cfg->n_kv_heads, (int)cfg->head_dim);
    const size_t L = (size_t)cfg->n_layers;
    const size_t n_attn = L * (size_t)cfg->n_heads;
    /* One block: the eight per-layer arrays, then [n_layers][n_heads]. */
    double *block = malloc((N_CACHE_FEATURES * L + n_attn) * sizeof *block);
    if (!block)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "kvl_features_init: out of memory for %zu features",
                        N_CACHE_FEATURES * L + n_attn);
    for (size_t i = 0; i < N_CACHE_FEATURES * L; i++)
        block[i] = NAN; /* not measured until kvl_features_add_cache */
    for (size_t i = 0; i < n_attn; i++)
        block[N_CACHE_FEATURES * L + i] = 0.0;
    double **slots[N_CACHE_FEATURES] = {
        &f->k_norm_mean, &f->k_norm_var,  &f->v_norm_mean,    &f->v_norm_var,
        &f->k_eff_rank,  &f->v_eff_rank,  &f->k_spec_entropy, &f->v_spec_entropy};
    for (int i = 0; i < N_CACHE_FEATURES; i++)
        *slots[i] = block + (size_t)i * L;
    f->attn_entropy = block + N_CACHE_FEATURES * L;
    f->n_layers = cfg->n_layers;
    f->n_heads = cfg->n_heads;
    f->n_kv_heads = cfg->n_kv_heads;
    f->head_dim = cfg->head_dim;
    return KVL_OK;
}

void kvl_features_free(kvl_features *f)
{
    if (!f)
        return;
    free(f->k_norm_mean); /* the start of the single block of init */
    memset(f, 0, sizeof *f);
}

static kvl_status check_initialized(const kvl_features *f, const char *fn,
                                    kvl_error *err)
{
    if (!f)
        return kvl_fail(err, KVL_ERR_ARG, "%s: features are NULL", fn);
    if (!f->k_norm_mean || !f->attn_entropy || f->n_layers <= 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "%s: features are not initialised (kvl_features_init)",
                        fn);
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Cache features                                                            */
/* ------------------------------------------------------------------------ */

/* The rows [t0, t1) of one layer's K or V as a [t1 - t0][nkv * hd] matrix
 * (token-major, kv heads side by side), and the L2 norm of every (token,
 * kv head) row into norms[(t - t0) * nkv + h]. */
static void gather_plane(const kvl_cache *c, kvl_kv which, int32_t layer,
                         int32_t t0, int32_t t1, float *mat, double *norms)
{
    const int32_t nkv = c->n_kv_heads, hd = c->head_dim;
    for (int32_t t = t0; t < t1; t++)
        for (int32_t h = 0; h < nkv; h++) {
            const float *src = kvl_cache_row(c, which, layer, h, t);
            float *dst = mat + ((size_t)(t - t0) * nkv + h) * hd;
            double ss = 0.0;
            for (int32_t d = 0; d < hd; d++) {
                dst[d] = src[d];
                ss += (double)src[d] * src[d];
            }
            norms[(size_t)(t - t0) * nkv + h] = sqrt(ss);
        }
}

/* One (layer, K or V) task: norm mean/variance and the spectrum summaries. */
static kvl_status plane_features(kvl_features *f, const kvl_cache *c,
                                 int32_t layer, kvl_kv which, int32_t t0,
                                 int32_t t1, kvl_error *err)
{
    const int32_t rows = t1 - t0;
    const int32_t cols = c->n_kv_heads * c->head_dim;
    const size_t n_norms = (size_t)rows * (size_t)c->n_kv_heads;
    const int32_t k = rows < cols ? rows : cols;
    float *mat = malloc((size_t)rows * (size_t)cols * sizeof *mat);
    double *norms = malloc(n_norms * sizeof *norms);
    double *sv = malloc((size_t)k * sizeof *sv);
    kvl_status st = KVL_OK;
    if (!mat || !norms || !sv) {
        st = kvl_fail(err, KVL_ERR_NOMEM,
                      "kvl_features_add_cache: out of memory for a %d x %d "
                      "matrix", (int)rows, (int)cols);
        goto done;
    }
    gather_plane(c, which, layer, t0, t1, mat, norms);
    st = kvl_stats_singular_values(mat, rows, cols, sv, err);
    if (st != KVL_OK)
        goto done;
    const int is_k = which == KVL_K;
    (is_k ? f->k_norm_mean : f->v_norm_mean)[layer] = kvl_stats_mean(norms, n_norms);
    (is_k ? f->k_norm_var : f->v_norm_var)[layer] = kvl_stats_var(norms, n_norms, 0);
    (is_k ? f->k_eff_rank : f->v_eff_rank)[layer] = kvl_stats_effective_rank(sv, k);
    (is_k ? f->k_spec_entropy : f->v_spec_entropy)[layer] =
        kvl_stats_spectral_entropy(sv, k);
done:
    free(mat);
    free(norms);
    free(sv);
    return st;
}

kvl_status kvl_features_add_cache(kvl_features *f, const kvl_cache *cache,
                                  int32_t t0, int32_t t1, kvl_error *err)
{
    static const char fn[] = "kvl_features_add_cache";
    kvl_status st = check_initialized(f, fn, err);
    if (st != KVL_OK)
        return st;
    if (!cache)
        return kvl_fail(err, KVL_ERR_ARG, "%s: cache is NULL", fn);
    if (cache->n_layers != f->n_layers || cache->n_kv_heads != f->n_kv_heads ||
        cache->head_dim != f->head_dim)
        return kvl_fail(err, KVL_ERR_MISMATCH,
                        "%s: cache geometry (%d layers, %d kv heads, head_dim "
                        "%d) differs from the model's (%d, %d, %d)", fn,
                        (int)cache->n_layers, (int)cache->n_kv_heads,
                        (int)cache->head_dim, (int)f->n_layers,
                        (int)f->n_kv_heads, (int)f->head_dim);
    if (t0 < 0 || t1 <= t0 || t1 > cache->n_tokens)
        return kvl_fail(err, KVL_ERR_RANGE,
                        "%s: tokens [%d, %d) are not a non-empty range within "
                        "the cache's [0, %d)", fn, (int)t0, (int)t1,
                        (int)cache->n_tokens);
    /* 2 * n_layers independent SVDs: one task each.  OpenBLAS (OpenMP build)
     * runs single-threaded inside the parallel region. */
    const int n_tasks = 2 * f->n_layers;
    kvl_status *task_st = malloc((size_t)n_tasks * sizeof *task_st);
    kvl_error *task_err = malloc((size_t)n_tasks * sizeof *task_err);
    if (!task_st || !task_err) {
        free(task_st);
        free(task_err);
        return kvl_fail(err, KVL_ERR_NOMEM, "%s: out of memory", fn);
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n_tasks; i++)
        task_st[i] = plane_features(f, cache, i / 2, i % 2 ? KVL_V : KVL_K, t0,
                                    t1, &task_err[i]);
    st = KVL_OK;
    for (int i = 0; i < n_tasks && st == KVL_OK; i++)
        if (task_st[i] != KVL_OK) {
            st = kvl_fail(err, task_st[i], "%s: layer %d %s: %s", fn, i / 2,
                          i % 2 ? "V" : "K", task_err[i].message);
        }
    free(task_st);
    free(task_err);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Attention entropies                                                       */
/* ------------------------------------------------------------------------ */

/* Shannon entropy (nats) of softmax(q . k_j * scale) over keys 0..n_ctx-1
 * of one kv head, in double: H = log Z - sum_j e^{a_j} a_j / Z with
 * a_j = s_j - max s (log-sum-exp stable).  `scores` holds n_ctx doubles. */
static double row_entropy(const float *q, const kvl_cache *c, int32_t layer,
                          int32_t kvh, int32_t n_ctx, double scale,
                          double *scores)
{
    const int32_t hd = c->head_dim;
    double maxv = -INFINITY;
    for (int32_t j = 0; j < n_ctx; j++) {
        const float *k = kvl_cache_row(c, KVL_K, layer, kvh, j);
        double dot = 0.0;
        for (int32_t d = 0; d < hd; d++)
            dot += (double)q[d] * k[d];
        scores[j] = dot * scale;
        if (scores[j] > maxv)
            maxv = scores[j];
    }
    double z = 0.0, za = 0.0;
    for (int32_t j = 0; j < n_ctx; j++) {
        const double a = scores[j] - maxv;
        const double e = exp(a);
        z += e;
        za += e * a;
    }
    return log(z) - za / z;
}

static kvl_status check_session(const kvl_features *f, const kvl_session *s,
                                const char *fn, kvl_error *err)
{
    if (!s)
        return kvl_fail(err, KVL_ERR_ARG, "%s: session is NULL", fn);
    const kvl_config *cfg = &s->model->cfg;
    if (cfg->n_layers != f->n_layers || cfg->n_heads != f->n_heads ||
        cfg->n_kv_heads != f->n_kv_heads || cfg->head_dim != f->head_dim)
        return kvl_fail(err, KVL_ERR_MISMATCH,
                        "%s: the session's model (%d layers, %d heads, %d kv "
                        "heads, head_dim %d) is not the one the features were "
                        "initialised for (%d, %d, %d, %d)", fn,
                        (int)cfg->n_layers, (int)cfg->n_heads,
                        (int)cfg->n_kv_heads, (int)cfg->head_dim,
                        (int)f->n_layers, (int)f->n_heads, (int)f->n_kv_heads,
                        (int)f->head_dim);
    if (!s->keep_activations)
        return kvl_fail(err, KVL_ERR_ARG,
                        "%s: the session was created without keep_activations "
                        "= 1, so the queries of its last forward call are not "
                        "kept", fn);
    if (s->last_rows <= 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "%s: no forward call has run in this session (or its "
                        "cache was replaced or reset since)", fn);
    if (s->cache->n_tokens < s->last_rows)
        return kvl_fail(err, KVL_ERR_ARG,
                        "%s: the cache holds %d tokens, fewer than the %d of "
                        "the last forward call: it was modified since", fn,
                        (int)s->cache->n_tokens, (int)s->last_rows);
    return KVL_OK;
}

kvl_status kvl_features_add_attention(kvl_features *f,
                                      const kvl_session *session,
                                      kvl_error *err)
{
    static const char fn[] = "kvl_features_add_attention";
    kvl_status st = check_initialized(f, fn, err);
    if (st == KVL_OK)
        st = check_session(f, session, fn, err);
    if (st != KVL_OK)
        return st;
    const kvl_cache *c = session->cache;
    const int32_t T = session->last_rows;
    const int32_t n_past = c->n_tokens - T; /* keys before the call's rows */
    const int32_t nh = f->n_heads, hd = f->head_dim;
    const int32_t group = nh / f->n_kv_heads;
    const int n_threads = session->n_threads > 0 ? session->n_threads : 1;
    const double scale = 1.0 / sqrt((double)hd); /* as engine/cpu/attention.c */
    const size_t q_width = (size_t)nh * (size_t)hd;
    double *scratch = malloc((size_t)n_threads * (size_t)c->n_tokens * sizeof *scratch);
    if (!scratch)
        return kvl_fail(err, KVL_ERR_NOMEM, "%s: out of memory for %d scores",
                        fn, (int)c->n_tokens);
    /* One task per (layer, query head): each owns its accumulator. */
    const int64_t n_items = (int64_t)f->n_layers * nh;
#pragma omp parallel for schedule(dynamic, 1) num_threads(n_threads)
    for (int64_t item = 0; item < n_items; item++) {
        const int32_t l = (int32_t)(item / nh), h = (int32_t)(item % nh);
        double *scores = scratch + (size_t)omp_get_thread_num() * (size_t)c->n_tokens;
        /* The "q" activation of layer l: [rows_cap][nh * hd] (session.h). */
        const float *q = session->acts.buf[KVL_ACT_Q] +
                         (size_t)l * (size_t)session->acts.rows_cap * q_width;
        double sum = 0.0;
        for (int32_t r = 0; r < T; r++)
            sum += row_entropy(q + (size_t)r * q_width + (size_t)h * hd, c, l,
                               h / group, n_past + r + 1, scale, scores);
        f->attn_entropy[item] += sum;
    }
    free(scratch);
    f->attn_rows += T;
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Generation                                                                */
/* ------------------------------------------------------------------------ */

/* Entropy and -log p(chosen) of softmax(logits), in double; 0 on success,
 * -1 when the distribution is undefined (NaN / +inf logits, all -inf). */
static int step_values(const float *logits, int32_t vocab, int32_t chosen,
                       double *entropy, double *nll)
{
    double maxv = -INFINITY;
    for (int32_t i = 0; i < vocab; i++) {
        if (isnan(logits[i]) || logits[i] == INFINITY)
            return -1;
        if (logits[i] > maxv)
            maxv = logits[i];
    }
    if (maxv == -INFINITY)
        return -1;
    double z = 0.0, za = 0.0;
    for (int32_t i = 0; i < vocab; i++) {
        if (logits[i] == -INFINITY)
            continue; /* p = 0 contributes 0 (and would give 0 * -inf) */
        const double a = (double)logits[i] - maxv;
        const double e = exp(a);
        z += e;
        za += e * a;
    }
    const double log_z = log(z);
    *entropy = log_z - za / z;
    *nll = log_z - ((double)logits[chosen] - maxv); /* +inf for a -inf logit */
    return 0;
}

void kvl_features_add_step(kvl_features *f, const float *logits,
                           int32_t vocab, int32_t chosen)
{
    if (!f)
        return;
    f->n_generated++;
    double entropy = NAN, nll = NAN;
    if (logits && vocab > 0 && chosen >= 0 && chosen < vocab)
        (void)step_values(logits, vocab, chosen, &entropy, &nll);
    f->next_token_entropy += entropy;
    f->self_nll += nll;
}

void kvl_features_finish(kvl_features *f)
{
    if (!f || !f->attn_entropy)
        return;
    const size_t n_attn = (size_t)f->n_layers * (size_t)f->n_heads;
    for (size_t i = 0; i < n_attn; i++)
        f->attn_entropy[i] =
            f->attn_rows > 0 ? f->attn_entropy[i] / (double)f->attn_rows : NAN;
    if (f->n_generated > 0) {
        f->next_token_entropy /= (double)f->n_generated;
        f->self_nll /= (double)f->n_generated;
        f->self_perplexity = exp(f->self_nll);
    } else {
        f->next_token_entropy = f->self_nll = f->self_perplexity = NAN;
    }
}

/* ------------------------------------------------------------------------ */
/* Flat vector                                                               */
/* ------------------------------------------------------------------------ */

int32_t kvl_features_count(const kvl_features *f)
{
    if (!f || f->n_layers <= 0 || f->n_heads <= 0)
        return 0;
    return f->n_layers * (N_CACHE_FEATURES + f->n_heads) + N_GEN_FEATURES;
}

/* Writes feature i's value and (when buf is non-NULL) its name into
 * buf[cap]; returns the name's length (snprintf's). */
static int feature_at(const kvl_features *f, int32_t i, double *value,
                      char *buf, size_t cap)
{
    const int32_t per_layer = N_CACHE_FEATURES + f->n_heads;
    const int32_t layer = i / per_layer, j = i % per_layer;
    if (layer >= f->n_layers) {
        const int32_t g = i - f->n_layers * per_layer;
        *value = g == 0 ? f->next_token_entropy : f->self_perplexity;
        return snprintf(buf, cap, "%s", gen_feature_names[g]);
    }
    if (j < N_CACHE_FEATURES) {
        *value = cache_array(f, j)[layer];
        return snprintf(buf, cap, "L%d.%s", (int)layer, cache_feature_names[j]);
    }
    const int32_t h = j - N_CACHE_FEATURES;
    *value = f->attn_entropy[(size_t)layer * f->n_heads + h];
    return snprintf(buf, cap, "L%d.H%d.attn_entropy", (int)layer, (int)h);
}

kvl_status kvl_features_flatten(const kvl_features *f, double *out,
                                const char **names, char *name_buf,
                                size_t name_cap, kvl_error *err)
{
    static const char fn[] = "kvl_features_flatten";
    kvl_status st = check_initialized(f, fn, err);
    if (st != KVL_OK)
        return st;
    if (!out)
        return kvl_fail(err, KVL_ERR_ARG, "%s: out is NULL", fn);
    const int32_t n = kvl_features_count(f);
    double value;
    if (names) {
        /* Size check first, so nothing is written on failure. */
        size_t need = 0;
        for (int32_t i = 0; i < n; i++)
            need += (size_t)feature_at(f, i, &value, NULL, 0) + 1;
        if (!name_buf || name_cap < need)
            return kvl_fail(err, KVL_ERR_ARG,
                            "%s: the names of %d features need %zu bytes, "
                            "name_buf has %zu", fn, (int)n, need,
                            name_buf ? name_cap : (size_t)0);
    }
    size_t used = 0;
    for (int32_t i = 0; i < n; i++) {
        char *dst = names ? name_buf + used : NULL;
        const size_t room = names ? name_cap - used : 0;
        const int len = feature_at(f, i, &out[i], dst, room);
        if (names) {
            names[i] = dst;
            used += (size_t)len + 1;
        }
    }
    return KVL_OK;
}
