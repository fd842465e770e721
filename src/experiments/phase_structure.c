/* Phase 1: the structure of each model's KV cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "experiments/phases.h"
#include "report/plot.h"

/* Mean L2 norm of the rows of (layer, kv head) over the cache's tokens. */
static double mean_row_norm(const kvl_cache *c, kvl_kv which, int32_t layer,
                            int32_t head, int32_t hd)
{
    const int32_t n = kvl_cache_n_tokens(c);
    const float *d = kvl_cache_data(c, which, layer, head);
    double sum = 0;
    for (int32_t t = 0; t < n; t++) {
        double s = 0;
        for (int32_t i = 0; i < hd; i++)
            s += (double)d[(size_t)t * hd + i] * d[(size_t)t * hd + i];
        sum += sqrt(s);
    }
    return n ? sum / n : NAN;
}

static kvl_status norm_maps(const kvl_exp_model *m, const char *prompt,
                            double *kmap, double *vmap, int32_t *n_tokens,
                            kvl_cache **kept, kvl_error *err)
{
    int32_t *ids = NULL, n = 0;
    kvl_session *s = NULL;
    kvl_status st = kvl_exp_encode_text(m, prompt, &ids, &n, err);
    if (st == KVL_OK && n == 0)
        st = kvl_fail(err, KVL_ERR_ARG, "structure prompt encodes to no tokens");
    if (st == KVL_OK)
        st = kvl_session_new(m->model, NULL, &s, err);
    if (st == KVL_OK)
        st = kvl_session_forward(s, ids, n, NULL, 0, err);
    if (st == KVL_OK) {
        const kvl_cache *c = kvl_session_cache(s);
        const kvl_model_info *in = &m->info;
        for (int32_t l = 0; l < in->n_layers; l++)
            for (int32_t h = 0; h < in->n_kv_heads; h++) {
                kmap[l * in->n_kv_heads + h] = mean_row_norm(c, KVL_K, l, h, in->head_dim);
                vmap[l * in->n_kv_heads + h] = mean_row_norm(c, KVL_V, l, h, in->head_dim);
            }
        *n_tokens = n;
        st = kvl_cache_copy(c, kept, err);
    }
    kvl_session_free(s);
    kvl_free(ids);
    return st;
}

static int64_t bytes_per_token(const kvl_model_info *in, kvl_dtype dt)
{
    return 2ll * in->n_layers * in->n_kv_heads * in->head_dim *
           (int64_t)kvl_dtype_size(dt);
}

static kvl_status heatmaps(kvl_exp_run *r, const kvl_exp_model *m,
                           const double *kmap, const double *vmap,
                           kvl_error *err)
{
    const kvl_model_info *in = &m->info;
    char title[256], name[160], path[1024];
    const char *what[2] = {"K", "V"};
    const double *maps[2] = {kmap, vmap};
    for (int w = 0; w < 2; w++) {
        snprintf(name, sizeof name, "structure-%s-%s-norms", m->label, what[w]);
        snprintf(title, sizeof title, "%s: mean |%s| per layer and kv head",
                 m->label, what[w]);
        kvl_plot_style ps = {title, "kv head", "layer", 0, 0};
        kvl_status st = kvl_plot_heatmap(kvl_exp_plot_path(r, name, path, sizeof path),
                                         maps[w], in->n_layers, in->n_kv_heads,
                                         NULL, NULL, &ps, err);
        if (st != KVL_OK)
            return st;
        fprintf(r->md, "![%s](plots/%s.png)\n", title, name);
    }
    fprintf(r->md, "\n");
    return KVL_OK;
}

/* Cache bytes (BF16) against sequence length, one line per model. */
static kvl_status bytes_plot(kvl_exp_run *r, kvl_error *err)
{
    enum { NPTS = 24 };
    double x[NPTS], *y = calloc((size_t)r->n_models * NPTS, sizeof *y);
    const char *labels[KVL_EXP_MAX_MODELS];
    if (!y)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    int32_t n = 0;
    for (int32_t len = 16; len <= r->cfg->structure.max_tokens && n < NPTS; len *= 2)
        x[n++] = len;
    for (int32_t i = 0; i < r->n_models; i++) {
        labels[i] = r->models[i].label;
        for (int32_t j = 0; j < n; j++)
            y[i * n + j] = (double)bytes_per_token(&r->models[i].info, KVL_DTYPE_BF16) *
                           x[j] / 1048576.0;
    }
    char path[1024];
    kvl_plot_style ps = {"KV cache size (BF16) against sequence length",
                         "tokens", "MiB", 0, 0};
    kvl_status st = kvl_plot_lines(kvl_exp_plot_path(r, "structure-cache-bytes", path, sizeof path),
                                   x, y, r->n_models, n, labels, &ps, err);
    free(y);
    if (st == KVL_OK)
        fprintf(r->md, "![cache bytes](plots/structure-cache-bytes.png)\n\n");
    return st;
}

static kvl_status one_model(kvl_exp_run *r, const kvl_exp_model *m,
                            json_t *summary, kvl_error *err)
{
    const kvl_model_info *in = &m->info;
    const size_t cells = (size_t)in->n_layers * in->n_kv_heads;
    double *kmap = malloc(cells * sizeof *kmap), *vmap = malloc(cells * sizeof *vmap);
    kvl_cache *cache = NULL;
    int32_t n_tok = 0;
    kvl_status st = kmap && vmap ? norm_maps(m, r->cfg->structure.prompt, kmap,
                                             vmap, &n_tok, &cache, err)
                                 : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    /* The prompt's cache as a .kvc file: its measured size beside the
     * computed payload. */
    char kvc[1024];
    snprintf(kvc, sizeof kvc, "%s/structure-%s.kvc", r->dir, m->label);
    if (st == KVL_OK)
        st = kvl_cache_save(cache, kvc, KVL_DTYPE_BF16, err);
    long file_bytes = -1;
    FILE *f = st == KVL_OK ? fopen(kvc, "rb") : NULL;
    if (f && fseek(f, 0, SEEK_END) == 0)
        file_bytes = ftell(f);
    if (f)
        fclose(f);
    if (st == KVL_OK) {
        fprintf(r->md, "### %s\n\nPrompt of %d tokens; its cache saved as "
                       "`structure-%s.kvc` (BF16): %ld bytes on disk for %lld "
                       "bytes of K/V.\n\n",
                m->label, (int)n_tok, m->label, file_bytes,
                (long long)bytes_per_token(in, KVL_DTYPE_BF16) * n_tok);
        st = heatmaps(r, m, kmap, vmap, err);
    }
    if (st == KVL_OK) {
        json_t *km = json_array(), *vm = json_array();
        for (size_t i = 0; i < cells; i++) {
            json_array_append_new(km, json_real(kmap[i]));
            json_array_append_new(vm, json_real(vmap[i]));
        }
        json_t *rec = json_pack(
            "{s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:i, s:I, s:o, s:o}",
            "model", m->label, "arch", in->arch_name, "fingerprint",
            in->fingerprint, "params", (json_int_t)in->n_params, "layers",
            in->n_layers, "heads", in->n_heads, "kv_heads", in->n_kv_heads,
            "gqa_group", in->n_heads / in->n_kv_heads, "head_dim", in->head_dim,
            "max_seq_len", in->max_seq_len, "bytes_per_token_bf16",
            (json_int_t)bytes_per_token(in, KVL_DTYPE_BF16),
            "bytes_per_token_f32", (json_int_t)bytes_per_token(in, KVL_DTYPE_F32),
            "prompt_tokens", n_tok, "kvc_file_bytes", (json_int_t)file_bytes,
            "k_norm_mean", km, "v_norm_mean", vm);
        json_object_set(summary, m->label, rec);
        st = kvl_exp_record(r, "structure", rec, err);
    }
    kvl_cache_free(cache);
    free(kmap);
    free(vmap);
    return st;
}

static void geometry_table(kvl_exp_run *r)
{
    fprintf(r->md, "| model | architecture | parameters | layers | heads | kv "
                   "heads | GQA group | head_dim | bytes/token BF16 | "
                   "bytes/token F32 | max context |\n| --- | --- | ---: | ---: "
                   "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int32_t i = 0; i < r->n_models; i++) {
        const kvl_model_info *in = &r->models[i].info;
        fprintf(r->md, "| %s | %s | %lld | %d | %d | %d | %d | %d | %lld | %lld | %d |\n",
                r->models[i].label, in->arch_name, (long long)in->n_params,
                in->n_layers, in->n_heads, in->n_kv_heads,
                in->n_heads / in->n_kv_heads, in->head_dim,
                (long long)bytes_per_token(in, KVL_DTYPE_BF16),
                (long long)bytes_per_token(in, KVL_DTYPE_F32), in->max_seq_len);
    }
    fprintf(r->md, "\nBytes per token = 2 (K and V) x layers x kv heads x "
                   "head_dim x bytes per value.\n\n");
}

kvl_status kvl_exp_phase_structure(kvl_exp_run *r, kvl_error *err)
{
    fprintf(r->md, "## Phase 1: cache structure\n\n");
    geometry_table(r);
    kvl_status st = bytes_plot(r, err);
    json_t *summary = json_object();
    for (int32_t i = 0; st == KVL_OK && i < r->n_models; i++)
        st = one_model(r, &r->models[i], summary, err);
    fprintf(r->md, "The heatmaps show the mean L2 norm of the cached rows "
                   "(K after RoPE) of each layer and kv head over the prompt "
                   "\"%s\".\n\n", r->cfg->structure.prompt);
    json_object_set_new(r->summary, "structure", summary);
    return st;
}
