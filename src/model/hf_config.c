/*
 * config.json of Llama / Qwen2 / Qwen3 checkpoints, as written by
 * transformers 4.x (rope_theta + rope_scaling) and 5.x (rope_parameters).
 * Only fields that change the computation are read; the rest (torch_dtype,
 * initializer_range, ...) is ignored.
 */
#include "model/hf_config.h"

#include "core/error.h"
#include "core/rope.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

kvl_status kvl_json_load_path(const char *path, json_t **out, kvl_error *err)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return kvl_fail(err, KVL_ERR_IO, "file '%s': cannot open: %s", path,
                        strerror(errno));
    json_error_t jerr;
    json_t *root = json_loadf(fp, 0, &jerr);
    int read_error = ferror(fp);
    fclose(fp);
    if (read_error) {
        json_decref(root);
        return kvl_fail(err, KVL_ERR_IO, "file '%s': read error", path);
    }
    if (!root)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': bad JSON at line %d column %d: %s", path,
                        jerr.line, jerr.column, jerr.text);
    *out = root;
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Typed field readers.  `pre` qualifies nested keys in messages
 * ("rope_scaling."); absent and null both mean "use the default".          */
/* ------------------------------------------------------------------------ */

static int is_absent(const json_t *v) { return !v || json_is_null(v); }

static kvl_status get_i32(const char *path, const json_t *obj,
                          const char *pre, const char *key, int64_t dflt,
                          int required, int64_t min, int32_t *out,
                          kvl_error *err)
{
    const json_t *v = json_object_get(obj, key);
    int64_t x = dflt;
    if (is_absent(v)) {
        if (required)
            return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': missing %s%s",
                            path, pre, key);
    } else if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (int64_t)json_real_value(v); /* e.g. 32768.0 */
    } else {
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s%s must be an integer", path, pre, key);
    }
    if (x < min || x > INT32_MAX)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s%s = %lld is out of range (%lld..%d)",
                        path, pre, key, (long long)x, (long long)min,
                        INT32_MAX);
    *out = (int32_t)x;
    return KVL_OK;
}

static kvl_status get_num(const char *path, const json_t *obj,
                          const char *pre, const char *key, double dflt,
                          int required, double *out, kvl_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (is_absent(v)) {
        if (required)
            return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': missing %s%s",
                            path, pre, key);
        *out = dflt;
        return KVL_OK;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s%s must be a finite number", path, pre,
                        key);
    *out = json_number_value(v);
    return KVL_OK;
}

static kvl_status get_bool(const char *path, const json_t *obj,
                           const char *key, int dflt, int32_t *out,
                           int *present, kvl_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (present)
        *present = !is_absent(v);
    if (is_absent(v)) {
        *out = dflt;
        return KVL_OK;
    }
    if (!json_is_boolean(v))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s must be true or false", path, key);
    *out = json_is_true(v);
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Architecture                                                              */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *arch_name;
    const char *model_type;
    kvl_arch arch;
    int32_t max_pos; /* transformers' class default */
} hf_archs[] = {
    {"LlamaForCausalLM", "llama", KVL_ARCH_LLAMA, 2048},
    {"Qwen2ForCausalLM", "qwen2", KVL_ARCH_QWEN2, 32768},
    {"Qwen3ForCausalLM", "qwen3", KVL_ARCH_QWEN3, 32768},
};

#define N_HF_ARCHS (int)(sizeof hf_archs / sizeof hf_archs[0])

/* architectures[0], or model_type when the list is absent. */
static kvl_status parse_arch(const char *path, const json_t *root, int *idx,
                             kvl_error *err)
{
    const json_t *archs = json_object_get(root, "architectures");
    const char *name = NULL;
    int by_type = 0;
    if (!is_absent(archs)) {
        if (!json_is_array(archs) || json_array_size(archs) == 0 ||
            !json_is_string(json_array_get(archs, 0)))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': architectures must be a non-empty "
                            "list of strings",
                            path);
        name = json_string_value(json_array_get(archs, 0));
    } else {
        name = json_string_value(json_object_get(root, "model_type"));
        by_type = 1;
        if (!name)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': no architectures list and no "
                            "model_type",
                            path);
    }
    for (int i = 0; i < N_HF_ARCHS; i++) {
        if (strcmp(name, by_type ? hf_archs[i].model_type
                                 : hf_archs[i].arch_name) == 0) {
            *idx = i;
            return KVL_OK;
        }
    }
    return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                    "file '%s': %s '%.64s' is not supported (supported: "
                    "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)",
                    path, by_type ? "model_type" : "architecture", name);
}

/* ------------------------------------------------------------------------ */
/* Sizes                                                                     */
/* ------------------------------------------------------------------------ */

static kvl_status parse_sizes(const char *path, const json_t *root,
                              int32_t max_pos_default, kvl_config *c,
                              kvl_error *err)
{
    kvl_status st;
    if ((st = get_i32(path, root, "", "hidden_size", 0, 1, 1, &c->dim, err)) ||
        (st = get_i32(path, root, "", "intermediate_size", 0, 1, 1,
                      &c->hidden_dim, err)) ||
        (st = get_i32(path, root, "", "num_hidden_layers", 0, 1, 1,
                      &c->n_layers, err)) ||
        (st = get_i32(path, root, "", "num_attention_heads", 0, 1, 1,
                      &c->n_heads, err)) ||
        (st = get_i32(path, root, "", "num_key_value_heads", c->n_heads, 0, 1,
                      &c->n_kv_heads, err)) ||
        (st = get_i32(path, root, "", "vocab_size", 0, 1, 1, &c->vocab_size,
                      err)) ||
        (st = get_i32(path, root, "", "max_position_embeddings",
                      max_pos_default, 0, 1, &c->max_seq_len, err)) ||
        (st = get_num(path, root, "", "rms_norm_eps", 1e-6, 0, &c->norm_eps,
                      err)))
        return st;
    if (is_absent(json_object_get(root, "head_dim")) &&
        c->dim % c->n_heads != 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': hidden_size %d is not divisible by "
                        "num_attention_heads %d (and no head_dim is given)",
                        path, (int)c->dim, (int)c->n_heads);
    return get_i32(path, root, "", "head_dim", c->dim / c->n_heads, 0, 1,
                   &c->head_dim, err);
}

static kvl_status check_sizes(const char *path, const kvl_config *c,
                              kvl_error *err)
{
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': num_attention_heads %d is not a multiple "
                        "of num_key_value_heads %d",
                        path, (int)c->n_heads, (int)c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': head_dim %d must be even for RoPE", path,
                        (int)c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > INT32_MAX)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': num_attention_heads * head_dim overflows",
                        path);
    if (!(c->norm_eps > 0.0))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': rms_norm_eps must be positive, got %g",
                        path, c->norm_eps);
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* Flags: biases, tying, activation, sliding window                          */
/* ------------------------------------------------------------------------ */

static kvl_status parse_flags(const char *path, const json_t *root,
                              kvl_config *c, kvl_hf_config_extra *extra,
                              kvl_error *err)
{
    int32_t attn_bias = 0, mlp_bias = 0, sliding = 0;
    kvl_status st;
    if ((st = get_bool(path, root, "tie_word_embeddings", 0,
                       &c->tied_embeddings, &extra->tie_explicit, err)) ||
        (st = get_bool(path, root, "attention_bias", 0, &attn_bias, NULL,
                       err)) ||
        (st = get_bool(path, root, "mlp_bias", 0, &mlp_bias, NULL, err)) ||
        (st = get_bool(path, root, "use_sliding_window", 0, &sliding, NULL,
                       err)))
        return st;
    const json_t *act = json_object_get(root, "hidden_act");
    if (!is_absent(act) && (!json_is_string(act) ||
                            (strcmp(json_string_value(act), "silu") != 0 &&
                             strcmp(json_string_value(act), "swish") != 0)))
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': hidden_act '%.32s' is not supported "
                        "(only silu)",
                        path, json_is_string(act) ? json_string_value(act)
                                                  : "?");
    switch (c->arch) {
    case KVL_ARCH_QWEN2: /* q/k/v always biased, o and MLP never */
        c->qkv_bias = 1;
        break;
    case KVL_ARCH_QWEN3:
        c->qkv_bias = c->o_bias = attn_bias;
        c->qk_norm = 1;
        break;
    default: /* Llama */
        c->qkv_bias = c->o_bias = attn_bias;
        c->mlp_bias = mlp_bias;
        sliding = 0; /* Llama has no sliding window */
        break;
    }
    if (sliding)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': use_sliding_window is true; "
                        "sliding-window attention is not supported",
                        path);
    return KVL_OK;
}

/* bos_token_id / eos_token_id: an int, a list (first entry), or absent. */
static kvl_status parse_token_id(const char *path, const json_t *root,
                                 const char *key, int32_t *out,
                                 kvl_error *err)
{
    const json_t *v = json_object_get(root, key);
    *out = -1;
    if (json_is_array(v)) {
        if (json_array_size(v) == 0)
            return KVL_OK;
        v = json_array_get(v, 0);
    }
    if (is_absent(v))
        return KVL_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > INT32_MAX)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s must be a non-negative integer or a "
                        "list of them",
                        path, key);
    *out = (int32_t)json_integer_value(v);
    return KVL_OK;
}

kvl_status kvl_hf_parse_eos_ids(const char *path, const json_t *root,
                                kvl_config *cfg, kvl_error *err)
{
    const json_t *v = json_object_get(root, "eos_token_id");
    if (is_absent(v))
        return KVL_OK; /* keep what is there */
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (n > KVL_MAX_EOS_IDS)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': eos_token_id lists %zu ids; at most %d "
                        "are supported", path, n, KVL_MAX_EOS_IDS);
    int32_t ids[KVL_MAX_EOS_IDS];
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
            json_integer_value(e) > INT32_MAX)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': eos_token_id must be a non-negative "
                            "integer or a list of them", path);
        ids[i] = (int32_t)json_integer_value(e);
    }
    memcpy(cfg->eos_ids, ids, n * sizeof ids[0]);
    cfg->n_eos_ids = (int32_t)n;
    cfg->eos_token_id = n ? ids[0] : -1;
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* RoPE                                                                      */
/* ------------------------------------------------------------------------ */

static kvl_status parse_llama3(const char *path, const json_t *spec,
                               const char *pre, kvl_rope *r, kvl_error *err)
{
    kvl_status st;
    r->scaling = KVL_ROPE_SCALING_LLAMA3;
    if ((st = get_num(path, spec, pre, "factor", 0, 1, &r->factor, err)) ||
        (st = get_num(path, spec, pre, "low_freq_factor", 0, 1,
                      &r->low_freq_factor, err)) ||
        (st = get_num(path, spec, pre, "high_freq_factor", 0, 1,
                      &r->high_freq_factor, err)))
        return st;
    return get_i32(path, spec, pre, "original_max_position_embeddings", 0, 1,
                   1, &r->original_max_position, err);
}

/* The rope type of a rope_scaling / rope_parameters object. */
static kvl_status parse_rope_type(const char *path, const json_t *spec,
                                  const char *pre, kvl_rope *r,
                                  kvl_error *err)
{
    const char *key = "rope_type";
    const json_t *t = json_object_get(spec, key);
    if (is_absent(t)) {
        key = "type"; /* transformers < 4.43 */
        t = json_object_get(spec, key);
    }
    if (!is_absent(t) && !json_is_string(t))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %s%s must be a string", path, pre, key);
    const char *type = is_absent(t) ? "default" : json_string_value(t);
    double partial = 1.0;
    kvl_status st = get_num(path, spec, pre, "partial_rotary_factor", 1.0, 0,
                            &partial, err);
    if (st != KVL_OK)
        return st;
    if (partial != 1.0)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': %spartial_rotary_factor %g is not "
                        "supported",
                        path, pre, partial);
    if (strcmp(type, "default") == 0)
        return KVL_OK;
    if (strcmp(type, "linear") == 0) {
        r->scaling = KVL_ROPE_SCALING_LINEAR;
        return get_num(path, spec, pre, "factor", 0, 1, &r->factor, err);
    }
    if (strcmp(type, "llama3") == 0)
        return parse_llama3(path, spec, pre, r, err);
    return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                    "file '%s': rope type '%.32s' (%s%s) is not "
                    "supported (supported: default, linear, llama3)",
                    path, type, pre, key);
}

/* 5.x rope_parameters wins over 4.x rope_theta + rope_scaling. */
static kvl_status parse_rope(const char *path, const json_t *root,
                             kvl_config *c, kvl_error *err)
{
    kvl_rope *r = &c->rope;
    memset(r, 0, sizeof *r);
    r->layout = KVL_ROPE_ROTATE_HALF;
    r->scaling = KVL_ROPE_SCALING_NONE;
    r->rotary_dim = c->head_dim;
    kvl_status st = get_num(path, root, "", "rope_theta", 10000.0, 0,
                            &r->theta, err);
    if (st != KVL_OK)
        return st;
    const json_t *params = json_object_get(root, "rope_parameters");
    const json_t *scaling = json_object_get(root, "rope_scaling");
    const json_t *spec = is_absent(params) ? scaling : params;
    const char *pre = is_absent(params) ? "rope_scaling." : "rope_parameters.";
    if (!is_absent(spec)) {
        if (!json_is_object(spec))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': %.*s must be an object or null", path,
                            (int)strlen(pre) - 1, pre);
        if ((st = get_num(path, spec, pre, "rope_theta", r->theta, 0,
                          &r->theta, err)) ||
            (st = parse_rope_type(path, spec, pre, r, err)))
            return st;
    }
    /* Same checks as the engine's, reported against config.json. */
    st = kvl_rope_validate(r, c->head_dim, err);
    if (st != KVL_OK)
        return kvl_error_prefix(err, st, "file '%s'", path);
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */

kvl_status kvl_hf_config_parse(const json_t *root, const char *path,
                               kvl_config *cfg, kvl_hf_config_extra *extra,
                               kvl_error *err)
{
    kvl_hf_config_extra scratch;
    if (!extra)
        extra = &scratch;
    memset(cfg, 0, sizeof *cfg);
    memset(extra, 0, sizeof *extra);
    if (!json_is_object(root))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': top level is not a JSON object", path);
    int idx = 0;
    kvl_status st = parse_arch(path, root, &idx, err);
    if (st != KVL_OK)
        return st;
    cfg->arch = hf_archs[idx].arch;
    snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s",
             hf_archs[idx].arch_name);
    if ((st = parse_sizes(path, root, hf_archs[idx].max_pos, cfg, err)) ||
        (st = check_sizes(path, cfg, err)) ||
        (st = parse_flags(path, root, cfg, extra, err)) ||
        (st = parse_token_id(path, root, "bos_token_id", &cfg->bos_token_id,
                             err)) ||
        (st = parse_token_id(path, root, "eos_token_id", &cfg->eos_token_id,
                             err)) ||
        (st = kvl_hf_parse_eos_ids(path, root, cfg, err)) ||
        (st = parse_rope(path, root, cfg, err)))
        return st;
    return KVL_OK;
}

kvl_status kvl_hf_config_load(const char *path, kvl_config *cfg,
                              kvl_hf_config_extra *extra, kvl_error *err)
{
    json_t *root = NULL;
    kvl_status st = kvl_json_load_path(path, &root, err);
    if (st != KVL_OK)
        return st;
    st = kvl_hf_config_parse(root, path, cfg, extra, err);
    json_decref(root);
    return st;
}
