/*
 * Loading tiny Llama / Qwen2 / Qwen3 folders written by the test itself.
 * References: parameter counts worked out by hand from the shapes (in the
 * comments), and every bound weight compared element by element with the
 * values written (tiny_value), looked up through the HF tensor name.
 */
#include "test_util.h"
#include "tiny_hf.h"

#include "model/hf_config.h"
#include "model/model.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* HF suffix -> field of kvl_layer_weights (an independent restatement of
 * the HF naming, not the loader's table). */
static const struct {
    const char *suffix;
    size_t off;
} suffixes[] = {
    {"input_layernorm.weight", offsetof(kvl_layer_weights, attn_norm)},
    {"self_attn.q_proj.weight", offsetof(kvl_layer_weights, wq)},
    {"self_attn.k_proj.weight", offsetof(kvl_layer_weights, wk)},
    {"self_attn.v_proj.weight", offsetof(kvl_layer_weights, wv)},
    {"self_attn.o_proj.weight", offsetof(kvl_layer_weights, wo)},
    {"self_attn.q_proj.bias", offsetof(kvl_layer_weights, bq)},
    {"self_attn.k_proj.bias", offsetof(kvl_layer_weights, bk)},
    {"self_attn.v_proj.bias", offsetof(kvl_layer_weights, bv)},
    {"self_attn.o_proj.bias", offsetof(kvl_layer_weights, bo)},
    {"self_attn.q_norm.weight", offsetof(kvl_layer_weights, q_norm)},
    {"self_attn.k_norm.weight", offsetof(kvl_layer_weights, k_norm)},
    {"post_attention_layernorm.weight", offsetof(kvl_layer_weights, ffn_norm)},
    {"mlp.gate_proj.weight", offsetof(kvl_layer_weights, w_gate)},
    {"mlp.up_proj.weight", offsetof(kvl_layer_weights, w_up)},
    {"mlp.down_proj.weight", offsetof(kvl_layer_weights, w_down)},
    {"mlp.gate_proj.bias", offsetof(kvl_layer_weights, b_gate)},
    {"mlp.up_proj.bias", offsetof(kvl_layer_weights, b_up)},
    {"mlp.down_proj.bias", offsetof(kvl_layer_weights, b_down)},
};

static const kvl_weight *slot_for(const kvl_model *m, const char *name)
{
    if (strcmp(name, "model.embed_tokens.weight") == 0)
        return &m->tok_emb;
    if (strcmp(name, "model.norm.weight") == 0)
        return &m->final_norm;
    if (strcmp(name, "lm_head.weight") == 0)
        return &m->lm_head;
    int l = -1, used = 0;
    if (sscanf(name, "model.layers.%d.%n", &l, &used) != 1 || used == 0 ||
        l < 0 || l >= m->cfg.n_layers)
        return NULL;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (strcmp(name + used, suffixes[i].suffix) == 0)
            return (const kvl_weight *)((const char *)&m->layers[l] +
                                        suffixes[i].off);
    return NULL;
}

/* Every tensor of the spec is bound, with its shape and exact values. */
static void check_values(const kvl_model *m, const tiny_spec *s)
{
    tiny_tensor t[256];
    int n = tiny_tensors(s, t), bad = 0;
    for (int i = 0; i < n; i++) {
        if (strstr(t[i].name, "rotary_emb"))
            continue;
        if (strcmp(t[i].name, "lm_head.weight") == 0 &&
            m->cfg.tied_embeddings) { /* the config ties: file ignored */
            CHECK(m->lm_head.data == m->tok_emb.data, "tied lm_head");
            continue;
        }
        const kvl_weight *w = slot_for(m, t[i].name);
        if (!w || !w->data) {
            CHECK(0, "tensor %s not bound", t[i].name);
            continue;
        }
        size_t cnt = (size_t)t[i].d0 * (size_t)(t[i].d1 ? t[i].d1 : 1);
        CHECK(w->rows == (t[i].d1 ? t[i].d0 : 1) &&
                  w->cols == (t[i].d1 ? t[i].d1 : t[i].d0),
              "%s: shape [%lld, %lld]", t[i].name, (long long)w->rows,
              (long long)w->cols);
        CHECK(w->dtype == s->dtype, "%s: dtype %d", t[i].name, w->dtype);
        CHECK((uintptr_t)w->data % kvl_dtype_size(w->dtype) == 0,
              "%s: unaligned", t[i].name);
        float *f = malloc(cnt * sizeof *f);
        kvl_convert_to_f32(f, w->data, w->dtype, cnt);
        for (size_t k = 0; k < cnt; k++) {
            float want = tiny_value(t[i].name, k);
            if (k == 0 && s->perturb && strcmp(s->perturb, t[i].name) == 0)
                want += 1.0f / 64.0f;
            bad += f[k] != want;
        }
        free(f);
    }
    CHECK(bad == 0, "%d weight values differ from what was written", bad);
}

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return 0;
    return 1;
}

/* Writes the spec into a fresh folder and loads it; NULL on failure. */
static kvl_model *load_spec(const tiny_spec *s, char *fp_out)
{
    const char *dir = tiny_mkdtemp();
    CHECK(dir != NULL, "mkdtemp");
    if (!dir)
        return NULL;
    CHECK(tiny_write(dir, s) == 0, "writing the tiny model");
    kvl_model *m = NULL;
    kvl_error err = {0};
    CHECK_OK(kvl_model_load(dir, NULL, &m, &err), &err);
    if (m) {
        kvl_model_info info;
        kvl_model_get_info(m, &info);
        CHECK(is_hex64(info.fingerprint), "fingerprint '%s'",
              info.fingerprint);
        CHECK(strcmp(info.path, dir) == 0, "path %s", info.path);
        if (fp_out)
            snprintf(fp_out, 65, "%s", info.fingerprint);
        check_values(m, s);
    }
    tiny_rmdir(dir);
    return m;
}

static void test_llama_f32(void)
{
    tiny_spec s = tiny_default();
    char fp[65] = "";
    kvl_model *m = load_spec(&s, fp);
    if (!m)
        return;
    kvl_model_info i;
    kvl_model_get_info(m, &i);
    CHECK(i.arch == KVL_ARCH_LLAMA, "arch %d", i.arch);
    CHECK(strcmp(i.arch_name, "LlamaForCausalLM") == 0, "%s", i.arch_name);
    CHECK(i.n_layers == 2 && i.dim == 8 && i.hidden_dim == 12, "sizes");
    CHECK(i.n_heads == 2 && i.n_kv_heads == 1 && i.head_dim == 4, "heads");
    CHECK(i.vocab_size == 10 && i.max_seq_len == 128, "vocab/seq");
    CHECK(i.norm_eps == 1e-5, "eps %g", i.norm_eps);
    CHECK(i.rope.theta == 10000.0 && i.rope.layout == KVL_ROPE_ROTATE_HALF &&
              i.rope.scaling == KVL_ROPE_SCALING_NONE &&
              i.rope.rotary_dim == 4,
          "rope");
    CHECK(i.tied_embeddings == 0 && i.qkv_bias == 0 && i.qk_norm == 0,
          "flags");
    CHECK(i.weight_dtype == KVL_DTYPE_F32, "dtype");
    CHECK(i.bos_token_id == 1 && i.eos_token_id == 2, "bos/eos");
    /* emb 10*8=80; per layer: norms 2*8, q 8*8, k 4*8, v 4*8, o 8*8,
     * gate/up/down 3*12*8 = 16+64+32+32+64+288 = 496, x2 = 992;
     * final norm 8; lm_head 80.  Total 1160. */
    CHECK(i.n_params == 1160, "n_params %lld", (long long)i.n_params);
    CHECK(i.weight_bytes == 4640, "weight_bytes %lld",
          (long long)i.weight_bytes);
    /* inv_freq = 1 / 10000^(2i/4): 1, 0.01 */
    CHECK(m->inv_freq && m->inv_freq[0] == 1.0f &&
              fabsf(m->inv_freq[1] - 0.01f) < 1e-7f,
          "inv_freq");
    CHECK(m->lm_head.data != m->tok_emb.data, "untied lm_head");
    kvl_model_free(m);

    /* The same model sharded over 3 files, and with a 5.x config. */
    char fp2[65] = "", fp3[65] = "";
    s.n_shards = 3;
    m = load_spec(&s, fp2);
    CHECK(m && m->n_st_files == 3, "3 shards open");
    if (m) {
        CHECK(m->n_params == 1160, "sharded n_params");
    }
    kvl_model_free(m);
    CHECK(strcmp(fp, fp2) == 0, "sharded fingerprint %s != single %s", fp2,
          fp);
    s.n_shards = 0;
    s.style5 = 1;
    m = load_spec(&s, fp3);
    kvl_model_free(m);
    CHECK(strcmp(fp, fp3) == 0, "5.x-style config changed the fingerprint");

    /* One changed weight value (first element: inside the sample). */
    char fp4[65] = "";
    s.style5 = 0;
    s.perturb = "model.layers.1.self_attn.v_proj.weight";
    m = load_spec(&s, fp4);
    kvl_model_free(m);
    CHECK(fp4[0] && strcmp(fp, fp4) != 0, "changed weight, same fingerprint");
}

static void test_dtypes(void)
{
    tiny_spec s = tiny_default();
    char fp32[65] = "", fpbf[65] = "", fph[65] = "";
    kvl_model_free(load_spec(&s, fp32));
    s.dtype = KVL_DTYPE_BF16;
    kvl_model *m = load_spec(&s, fpbf);
    if (m) {
        CHECK(m->weight_dtype == KVL_DTYPE_BF16, "bf16 dtype");
        CHECK(m->weight_bytes == 2 * 1160, "bf16 bytes %lld",
              (long long)m->weight_bytes);
        CHECK(m->n_owned == 0, "bf16 needed %d copies", m->n_owned);
    }
    kvl_model_free(m);
    s.dtype = KVL_DTYPE_F16;
    s.n_shards = 2;
    m = load_spec(&s, fph);
    if (m)
        CHECK(m->weight_dtype == KVL_DTYPE_F16, "f16 dtype");
    kvl_model_free(m);
    CHECK(strcmp(fp32, fpbf) != 0 && strcmp(fpbf, fph) != 0 &&
              strcmp(fp32, fph) != 0,
          "dtypes share a fingerprint");

    /* F32 data at offset 2 mod 4: loaded through aligned copies. */
    s = tiny_default();
    s.misalign = 1;
    char fpa[65] = "";
    m = load_spec(&s, fpa);
    if (m)
        CHECK(m->n_owned > 0, "misaligned weights were not copied");
    kvl_model_free(m);
    CHECK(strcmp(fp32, fpa) == 0, "misaligned copy changed the fingerprint");
}

static void test_tying(void)
{
    tiny_spec s = tiny_default();
    s.tie = 1;
    s.lm_head = 0;
    char fp_tied[65] = "", fp_silent[65] = "";
    kvl_model *m = load_spec(&s, fp_tied);
    if (m) {
        CHECK(m->cfg.tied_embeddings == 1, "tied");
        CHECK(m->lm_head.data == m->tok_emb.data, "lm_head is the embedding");
        CHECK(m->n_params == 1080, "tied n_params %lld",
              (long long)m->n_params); /* 1160 - 80 */
    }
    kvl_model_free(m);
    /* Key absent and no lm_head: tied by necessity, same model. */
    s.tie = -1;
    m = load_spec(&s, fp_silent);
    if (m)
        CHECK(m->cfg.tied_embeddings == 1, "silent config, no lm_head: tied");
    kvl_model_free(m);
    CHECK(strcmp(fp_tied, fp_silent) == 0, "tied fingerprints differ");
    /* Key absent, lm_head present: untied. */
    s.lm_head = 1;
    m = load_spec(&s, NULL);
    if (m)
        CHECK(m->cfg.tied_embeddings == 0, "silent config with lm_head");
    kvl_model_free(m);
    /* tie=true with an lm_head in the file: the config wins (as in HF). */
    s.tie = 1;
    m = load_spec(&s, NULL);
    if (m)
        CHECK(m->lm_head.data == m->tok_emb.data, "tie=true ignores lm_head");
    kvl_model_free(m);
}

static void test_qwen(void)
{
    tiny_spec s = tiny_default();
    s.arch = KVL_ARCH_QWEN2;
    kvl_model *m = load_spec(&s, NULL);
    if (m) {
        kvl_model_info i;
        kvl_model_get_info(m, &i);
        CHECK(i.arch == KVL_ARCH_QWEN2 &&
                  strcmp(i.arch_name, "Qwen2ForCausalLM") == 0,
              "qwen2 arch");
        CHECK(i.qkv_bias == 1 && i.qk_norm == 0 && m->cfg.o_bias == 0,
              "qwen2 flags");
        /* 1160 + per layer q/k/v bias 8+4+4 = 16, x2 */
        CHECK(i.n_params == 1192, "qwen2 n_params %lld",
              (long long)i.n_params);
    }
    kvl_model_free(m);

    /* Qwen3 with head_dim 6 != hidden/heads = 4, tied, BF16. */
    s = tiny_default();
    s.arch = KVL_ARCH_QWEN3;
    s.head_dim = 6;
    s.write_head_dim = 1;
    s.tie = 1;
    s.lm_head = 0;
    s.dtype = KVL_DTYPE_BF16;
    s.style5 = 1;
    m = load_spec(&s, NULL);
    if (m) {
        kvl_model_info i;
        kvl_model_get_info(m, &i);
        CHECK(i.arch == KVL_ARCH_QWEN3 && i.qk_norm == 1 && i.qkv_bias == 0,
              "qwen3 flags");
        CHECK(i.head_dim == 6 && i.rope.rotary_dim == 6, "qwen3 head_dim");
        /* per layer: q 12*8=96, k 6*8=48, v 48, o 8*12=96, q/k norm 6+6,
         * norms 8+8, mlp 3*96=288 -> 604, x2 = 1208; emb 80; final 8 */
        CHECK(i.n_params == 1296, "qwen3 n_params %lld",
              (long long)i.n_params);
        CHECK(i.weight_bytes == 2592, "qwen3 bytes %lld",
              (long long)i.weight_bytes);
    }
    kvl_model_free(m);
}

static void test_biases(void)
{
    tiny_spec s = tiny_default();
    s.attention_bias = 1;
    s.mlp_bias = 1;
    kvl_model *m = load_spec(&s, NULL);
    if (m) {
        CHECK(m->cfg.qkv_bias && m->cfg.o_bias && m->cfg.mlp_bias,
              "bias flags");
        /* per layer: q 8, k 4, v 4, o 8, gate 12, up 12, down 8 = 56 */
        CHECK(m->n_params == 1160 + 2 * 56, "bias n_params %lld",
              (long long)m->n_params);
    }
    kvl_model_free(m);
}

static void test_rope_styles(void)
{
    tiny_spec s = tiny_default();
    char fp_default[65] = "", fp4[65] = "", fp5[65] = "";
    kvl_model_free(load_spec(&s, fp_default));
    s.rope_json = "\"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": "
                  "8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                  "\"original_max_position_embeddings\": 8192, "
                  "\"rope_type\": \"llama3\"}";
    kvl_model *m = load_spec(&s, fp4);
    if (m) {
        const kvl_rope *r = &m->cfg.rope;
        CHECK(r->scaling == KVL_ROPE_SCALING_LLAMA3 && r->theta == 500000.0 &&
                  r->factor == 8.0 && r->low_freq_factor == 1.0 &&
                  r->high_freq_factor == 4.0 &&
                  r->original_max_position == 8192,
              "llama3 rope (4.x)");
    }
    kvl_model_free(m);
    s.style5 = 1;
    s.rope_json = "\"rope_parameters\": {\"rope_type\": \"llama3\", "
                  "\"rope_theta\": 500000, \"factor\": 8, "
                  "\"low_freq_factor\": 1, \"high_freq_factor\": 4, "
                  "\"original_max_position_embeddings\": 8192}";
    kvl_model_free(load_spec(&s, fp5));
    CHECK(strcmp(fp4, fp5) == 0, "4.x and 5.x llama3 differ");
    CHECK(strcmp(fp4, fp_default) != 0, "llama3 rope did not change it");

    s.style5 = 0;
    s.rope_json = "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}";
    m = load_spec(&s, NULL);
    if (m)
        CHECK(m->cfg.rope.scaling == KVL_ROPE_SCALING_LINEAR &&
                  m->cfg.rope.factor == 2.0 && m->cfg.rope.theta == 10000.0,
              "legacy linear rope");
    kvl_model_free(m);
}

static void test_config_variants(void)
{
    tiny_spec s = tiny_default();
    /* No architectures list: model_type decides.  eos as a list. */
    s.arch_json = "\"_name_or_path\": \"x\"";
    s.extra_json = ",\n  \"eos_token_id\": [7, 2]";
    kvl_model *m = load_spec(&s, NULL);
    if (m) {
        CHECK(m->cfg.arch == KVL_ARCH_LLAMA, "model_type fallback");
        CHECK(m->cfg.eos_token_id == 7, "eos list -> first, got %d",
              (int)m->cfg.eos_token_id);
    }
    kvl_model_free(m);
}

/* config.json texts as published for real checkpoints (abridged only by
 * dropping fields kvlab ignores).  Reference values read off the text. */
static const char cfg_llama32_1b[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false,"
    " \"attention_dropout\": 0.0, \"bos_token_id\": 128000,"
    " \"eos_token_id\": 128001, \"head_dim\": 64, \"hidden_act\": \"silu\","
    " \"hidden_size\": 2048, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 8192, \"max_position_embeddings\": 131072,"
    " \"mlp_bias\": false, \"model_type\": \"llama\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 16,"
    " \"num_key_value_heads\": 8, \"pretraining_tp\": 1,"
    " \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 32.0,"
    " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
    " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"},"
    " \"rope_theta\": 500000.0, \"tie_word_embeddings\": true,"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.45.0.dev0\","
    " \"use_cache\": true, \"vocab_size\": 128256}";

/* The same model as transformers 5.x writes it. */
static const char cfg_llama32_1b_v5[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false,"
    " \"bos_token_id\": 128000, \"dtype\": \"bfloat16\","
    " \"eos_token_id\": 128001, \"head_dim\": 64, \"hidden_act\": \"silu\","
    " \"hidden_size\": 2048, \"intermediate_size\": 8192,"
    " \"max_position_embeddings\": 131072, \"mlp_bias\": false,"
    " \"model_type\": \"llama\", \"num_attention_heads\": 32,"
    " \"num_hidden_layers\": 16, \"num_key_value_heads\": 8,"
    " \"rms_norm_eps\": 1e-05, \"rope_parameters\": {\"factor\": 32.0,"
    " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
    " \"original_max_position_embeddings\": 8192, \"rope_theta\": 500000.0,"
    " \"rope_type\": \"llama3\"}, \"tie_word_embeddings\": true,"
    " \"transformers_version\": \"5.0.0\", \"vocab_size\": 128256}";

static const char cfg_qwen25_05b[] =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 151643, \"eos_token_id\": 151645,"
    " \"hidden_act\": \"silu\", \"hidden_size\": 896,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 4864,"
    " \"max_position_embeddings\": 32768, \"max_window_layers\": 21,"
    " \"model_type\": \"qwen2\", \"num_attention_heads\": 14,"
    " \"num_hidden_layers\": 24, \"num_key_value_heads\": 2,"
    " \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0,"
    " \"sliding_window\": 32768, \"tie_word_embeddings\": true,"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.43.1\","
    " \"use_cache\": true, \"use_sliding_window\": false,"
    " \"vocab_size\": 151936}";

static const char cfg_qwen3_06b[] =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false,"
    " \"attention_dropout\": 0.0, \"bos_token_id\": 151643,"
    " \"eos_token_id\": 151645, \"head_dim\": 128, \"hidden_act\": \"silu\","
    " \"hidden_size\": 1024, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 3072, \"max_position_embeddings\": 40960,"
    " \"max_window_layers\": 28, \"model_type\": \"qwen3\","
    " \"num_attention_heads\": 16, \"num_hidden_layers\": 28,"
    " \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-06,"
    " \"rope_scaling\": null, \"rope_theta\": 1000000,"
    " \"sliding_window\": null, \"tie_word_embeddings\": true,"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.51.0\","
    " \"use_cache\": true, \"use_sliding_window\": false,"
    " \"vocab_size\": 151936}";

static const char cfg_tinyllama[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false,"
    " \"bos_token_id\": 1, \"eos_token_id\": 2, \"hidden_act\": \"silu\","
    " \"hidden_size\": 2048, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 5632, \"max_position_embeddings\": 2048,"
    " \"model_type\": \"llama\", \"num_attention_heads\": 32,"
    " \"num_hidden_layers\": 22, \"num_key_value_heads\": 4,"
    " \"pretraining_tp\": 1, \"rms_norm_eps\": 1e-05,"
    " \"rope_scaling\": null, \"rope_theta\": 10000.0,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
    " \"transformers_version\": \"4.35.0\", \"use_cache\": true,"
    " \"vocab_size\": 32000}";

static int parse_cfg(const char *text, kvl_config *c)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    CHECK(root != NULL, "test JSON: %s", jerr.text);
    kvl_error err = {0};
    kvl_status st = kvl_hf_config_parse(root, "config.json", c, NULL, &err);
    CHECK(st == KVL_OK, "parse: %s", err.message);
    json_decref(root);
    return st == KVL_OK;
}

static void test_real_configs(void)
{
    kvl_config c, c5;
    if (parse_cfg(cfg_llama32_1b, &c)) {
        CHECK(c.arch == KVL_ARCH_LLAMA && c.dim == 2048 &&
                  c.hidden_dim == 8192 && c.n_layers == 16 &&
                  c.n_heads == 32 && c.n_kv_heads == 8 && c.head_dim == 64 &&
                  c.vocab_size == 128256 && c.max_seq_len == 131072,
              "llama 3.2 sizes");
        CHECK(c.rope.scaling == KVL_ROPE_SCALING_LLAMA3 &&
                  c.rope.theta == 500000.0 && c.rope.factor == 32.0 &&
                  c.rope.low_freq_factor == 1.0 &&
                  c.rope.high_freq_factor == 4.0 &&
                  c.rope.original_max_position == 8192 &&
                  c.rope.rotary_dim == 64,
              "llama 3.2 rope");
        CHECK(c.tied_embeddings == 1 && c.qkv_bias == 0 && c.mlp_bias == 0 &&
                  c.bos_token_id == 128000 && c.eos_token_id == 128001 &&
                  c.norm_eps == 1e-5,
              "llama 3.2 flags");
    }
    if (parse_cfg(cfg_llama32_1b_v5, &c5))
        CHECK(memcmp(&c, &c5, sizeof c) == 0, "5.x config parses differently");
    if (parse_cfg(cfg_qwen25_05b, &c)) {
        CHECK(c.arch == KVL_ARCH_QWEN2 && c.dim == 896 && c.n_heads == 14 &&
                  c.n_kv_heads == 2 && c.head_dim == 64 &&
                  c.hidden_dim == 4864 && c.n_layers == 24,
              "qwen2.5 sizes");
        CHECK(c.qkv_bias == 1 && c.o_bias == 0 && c.qk_norm == 0 &&
                  c.tied_embeddings == 1 && c.rope.theta == 1e6 &&
                  c.rope.scaling == KVL_ROPE_SCALING_NONE &&
                  c.norm_eps == 1e-6 && c.eos_token_id == 151645,
              "qwen2.5 flags");
    }
    if (parse_cfg(cfg_qwen3_06b, &c)) {
        CHECK(c.arch == KVL_ARCH_QWEN3 && c.head_dim == 128 &&
                  c.dim == 1024 && c.n_heads == 16 && c.n_kv_heads == 8 &&
                  c.max_seq_len == 40960 && c.rope.rotary_dim == 128,
              "qwen3 sizes (head_dim 128 != 1024/16)");
        CHECK(c.qk_norm == 1 && c.qkv_bias == 0 && c.o_bias == 0 &&
                  c.rope.theta == 1e6,
              "qwen3 flags");
    }
    if (parse_cfg(cfg_tinyllama, &c))
        CHECK(c.head_dim == 64 && c.n_kv_heads == 4 && c.n_layers == 22 &&
                  c.tied_embeddings == 0 && c.rope.theta == 10000.0 &&
                  c.bos_token_id == 1 && c.eos_token_id == 2,
              "tinyllama");
}

static void test_api_edges(void)
{
    kvl_model_free(NULL);
    kvl_model_info info;
    kvl_model_get_info(NULL, &info);
    CHECK(info.n_layers == 0 && info.fingerprint == NULL, "NULL info");
    CHECK(strcmp(kvl_arch_name(KVL_ARCH_QWEN3), "Qwen3ForCausalLM") == 0 &&
              strcmp(kvl_arch_name(KVL_ARCH_LLAMA2C), "llama2c") == 0 &&
              strcmp(kvl_arch_name((kvl_arch)42), "?") == 0,
          "kvl_arch_name");
    kvl_model *m = (kvl_model *)&info; /* must be overwritten with NULL */
    CHECK(kvl_model_load(NULL, NULL, &m, NULL) == KVL_ERR_ARG && m == NULL,
          "NULL path");
    CHECK(kvl_model_load("/tmp", NULL, NULL, NULL) == KVL_ERR_ARG,
          "NULL out");
}

int main(void)
{
    test_llama_f32();
    test_dtypes();
    test_tying();
    test_qwen();
    test_biases();
    test_rope_styles();
    test_config_variants();
    test_real_configs();
    test_api_edges();
    return kvt_finish();
}
