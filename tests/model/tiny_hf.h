/*
 * Tiny Hugging Face model folders for the model tests (header-only; each
 * test program includes it once).  Tensor values are k/64 with |k| <= 127,
 * exact in F32, F16 and BF16, and differ per tensor name, so a loaded
 * weight can be compared exactly with what was written and a weight bound
 * to the wrong slot shows up.
 */
#ifndef KVL_TESTS_TINY_HF_H
#define KVL_TESTS_TINY_HF_H

#include "core/dtype.h"
#include "model/safetensors.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct tiny_spec {
    kvl_arch arch;            /* KVL_ARCH_LLAMA, _QWEN2 or _QWEN3         */
    kvl_dtype dtype;          /* F32, F16, BF16                           */
    int n_layers, dim, hidden, n_heads, n_kv_heads, head_dim, vocab;
    int write_head_dim;       /* write "head_dim" into config.json        */
    int tie;                  /* -1: key absent, 0: false, 1: true        */
    int lm_head;              /* write lm_head.weight                     */
    int attention_bias, mlp_bias;
    int n_shards;             /* 0: model.safetensors, else an index      */
    int style5;               /* transformers 5.x: rope_parameters, dtype */
    const char *rope_json;    /* replaces the rope fields when set        */
    const char *arch_json;    /* replaces the "architectures" field       */
    const char *extra_json;   /* appended fields, starting with ','       */
    const char *omit;         /* tensor left out                          */
    const char *bad_shape;    /* tensor written with a wrong shape        */
    const char *bad_dtype;    /* tensor written as I32                    */
    const char *perturb;      /* tensor whose element 0 gets +1/64        */
    int misalign;             /* a 1-element BF16 tensor goes first       */
} tiny_spec;

/* Llama-shaped defaults: 2 layers, dim 8, hidden 12, 2 heads of 4, 1 kv
 * head, vocab 10, untied with lm_head, F32, single file, 4.x config. */
static inline tiny_spec tiny_default(void)
{
    tiny_spec s;
    memset(&s, 0, sizeof s);
    s.arch = KVL_ARCH_LLAMA;
    s.dtype = KVL_DTYPE_F32;
    s.n_layers = 2;
    s.dim = 8;
    s.hidden = 12;
    s.n_heads = 2;
    s.n_kv_heads = 1;
    s.head_dim = 4;
    s.vocab = 10;
    s.tie = 0;
    s.lm_head = 1;
    return s;
}

static inline unsigned tiny_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The value written at element i of tensor `name` (before perturbation). */
static inline float tiny_value(const char *name, size_t i)
{
    unsigned k = (tiny_hash(name) + (unsigned)i * 7919u) % 255u;
    return ((float)k - 127.0f) / 64.0f;
}

typedef struct tiny_tensor {
    char name[96];
    int64_t d0, d1; /* d1 == 0: vector */
} tiny_tensor;

static inline int tiny_add(tiny_tensor *t, int n, const char *name, int64_t d0,
                    int64_t d1)
{
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].d0 = d0;
    t[n].d1 = d1;
    return n + 1;
}

/* The HF tensor list of the spec, in the order transformers saves it. */
static inline int tiny_tensors(const tiny_spec *s, tiny_tensor *t)
{
    const int64_t q = (int64_t)s->n_heads * s->head_dim,
                  kv = (int64_t)s->n_kv_heads * s->head_dim;
    const int qkv_bias = s->arch == KVL_ARCH_QWEN2 || s->attention_bias;
    const int o_bias = s->arch != KVL_ARCH_QWEN2 && s->attention_bias;
    const int mlp_bias = s->arch == KVL_ARCH_LLAMA && s->mlp_bias;
    int n = 0;
    char nm[96];
    n = tiny_add(t, n, "model.embed_tokens.weight", s->vocab, s->dim);
    for (int l = 0; l < s->n_layers; l++) {
#define T(suffix, a, b)                                                      \
    do {                                                                     \
        snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);            \
        n = tiny_add(t, n, nm, a, b);                                        \
    } while (0)
        T("input_layernorm.weight", s->dim, 0);
        T("self_attn.q_proj.weight", q, s->dim);
        T("self_attn.k_proj.weight", kv, s->dim);
        T("self_attn.v_proj.weight", kv, s->dim);
        T("self_attn.o_proj.weight", s->dim, q);
        if (qkv_bias) {
            T("self_attn.q_proj.bias", q, 0);
            T("self_attn.k_proj.bias", kv, 0);
            T("self_attn.v_proj.bias", kv, 0);
        }
        if (o_bias)
            T("self_attn.o_proj.bias", s->dim, 0);
        if (s->arch == KVL_ARCH_QWEN3) {
            T("self_attn.q_norm.weight", s->head_dim, 0);
            T("self_attn.k_norm.weight", s->head_dim, 0);
        }
        T("post_attention_layernorm.weight", s->dim, 0);
        T("mlp.gate_proj.weight", s->hidden, s->dim);
        T("mlp.up_proj.weight", s->hidden, s->dim);
        T("mlp.down_proj.weight", s->dim, s->hidden);
        if (mlp_bias) {
            T("mlp.gate_proj.bias", s->hidden, 0);
            T("mlp.up_proj.bias", s->hidden, 0);
            T("mlp.down_proj.bias", s->dim, 0);
        }
#undef T
    }
    n = tiny_add(t, n, "model.norm.weight", s->dim, 0);
    if (s->lm_head)
        n = tiny_add(t, n, "lm_head.weight", s->vocab, s->dim);
    /* transformers 4.x used to save this buffer; loaders must ignore it */
    n = tiny_add(t, n, "model.layers.0.self_attn.rotary_emb.inv_freq",
                 s->head_dim / 2, 0);
    return n;
}

static inline int tiny_is(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

/* Fills w (a write descriptor) and its buffer for tensor t. */
static inline void *tiny_fill(const tiny_spec *s, const tiny_tensor *t,
                       kvl_st_write_tensor *w)
{
    size_t n = (size_t)t->d0 * (size_t)(t->d1 ? t->d1 : 1);
    kvl_dtype dt = tiny_is(s->bad_dtype, t->name) ? KVL_DTYPE_I32 : s->dtype;
    float *f = calloc(n + 1, sizeof *f);
    void *buf = calloc(n + 1, 4);
    for (size_t i = 0; i < n; i++)
        f[i] = tiny_value(t->name, i);
    if (tiny_is(s->perturb, t->name))
        f[0] += 1.0f / 64.0f;
    if (dt == KVL_DTYPE_I32) {
        for (size_t i = 0; i < n; i++) {
            int32_t v = (int32_t)(f[i] * 64.0f);
            memcpy((char *)buf + 4 * i, &v, 4);
        }
    } else {
        kvl_convert_from_f32(buf, dt, f, n);
    }
    free(f);
    memset(w, 0, sizeof *w);
    w->name = t->name;
    w->dtype = dt;
    w->ndim = t->d1 ? 2 : 1;
    w->shape[0] = t->d0;
    w->shape[1] = t->d1;
    if (tiny_is(s->bad_shape, t->name)) { /* transpose, or one too long */
        if (t->d1) {
            w->shape[0] = t->d1;
            w->shape[1] = t->d0;
        } else {
            w->shape[0] = t->d0 + 1;
        }
    }
    w->data = buf;
    return buf;
}

static inline const char *tiny_arch_name(kvl_arch a)
{
    return a == KVL_ARCH_QWEN2   ? "Qwen2ForCausalLM"
           : a == KVL_ARCH_QWEN3 ? "Qwen3ForCausalLM"
                                 : "LlamaForCausalLM";
}

static inline int tiny_write_config(const char *dir, const tiny_spec *s)
{
    char path[512], archs[128], tie[64], head[64];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    snprintf(archs, sizeof archs, "\"architectures\": [\"%s\"]",
             tiny_arch_name(s->arch));
    tie[0] = head[0] = '\0';
    if (s->tie >= 0)
        snprintf(tie, sizeof tie, "  \"tie_word_embeddings\": %s,\n",
                 s->tie ? "true" : "false");
    if (s->write_head_dim)
        snprintf(head, sizeof head, "  \"head_dim\": %d,\n", s->head_dim);
    const char *rope =
        s->rope_json ? s->rope_json
        : s->style5  ? "\"rope_parameters\": {\"rope_type\": \"default\", "
                       "\"rope_theta\": 10000.0}"
                     : "\"rope_theta\": 10000.0, \"rope_scaling\": null";
    fprintf(fp,
            "{\n  %s,\n  \"model_type\": \"llama\",\n"
            "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
            "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n%s"
            "  \"vocab_size\": %d,\n  \"max_position_embeddings\": 128,\n"
            "  \"rms_norm_eps\": 1e-05,\n  \"hidden_act\": \"silu\",\n"
            "  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n%s"
            "  \"attention_bias\": %s,\n  \"mlp_bias\": %s,\n"
            "  \"%s\": \"%s\",\n  \"initializer_range\": 0.02,\n"
            "  %s%s\n}\n",
            s->arch_json ? s->arch_json : archs, s->dim, s->hidden,
            s->n_layers, s->n_heads, s->n_kv_heads, head, s->vocab, tie,
            s->attention_bias ? "true" : "false",
            s->mlp_bias ? "true" : "false",
            s->style5 ? "dtype" : "torch_dtype",
            s->dtype == KVL_DTYPE_BF16  ? "bfloat16"
            : s->dtype == KVL_DTYPE_F16 ? "float16"
                                        : "float32",
            rope, s->extra_json ? s->extra_json : "");
    return fclose(fp);
}

/* Writes shards (or the single file) and, when sharded, the index. */
static inline int tiny_write_weights(const char *dir, const tiny_spec *s,
                              kvl_st_write_tensor *w, int n)
{
    char path[512];
    int shards = s->n_shards > 0 ? s->n_shards : 1;
    FILE *idx = NULL;
    if (s->n_shards > 0) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        idx = fopen(path, "w");
        if (!idx)
            return -1;
        fprintf(idx, "{\"metadata\": {\"total_size\": 0},\n \"weight_map\": {");
    }
    int rc = 0, first = 1;
    const int per = (n + shards - 1) / shards;
    for (int k = 0; k < shards && rc == 0; k++) {
        int a = k * per, b = a + per < n ? a + per : n;
        char file[96];
        if (s->n_shards > 0)
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors",
                     k + 1, shards);
        else
            snprintf(file, sizeof file, "model.safetensors");
        snprintf(path, sizeof path, "%s/%s", dir, file);
        kvl_st_meta meta = {"format", "pt"};
        kvl_error err;
        if (kvl_st_write(path, w + a, b - a, &meta, 1, &err) != KVL_OK) {
            fprintf(stderr, "tiny_write_weights: %s\n", err.message);
            rc = -1;
        }
        for (int i = a; i < b && idx; i++) {
            fprintf(idx, "%s\n  \"%s\": \"%s\"", first ? "" : ",", w[i].name,
                    file);
            first = 0;
        }
    }
    if (idx) {
        fprintf(idx, "\n}}\n");
        rc |= fclose(idx);
    }
    return rc;
}

/* Writes the folder; returns 0 on success. */
static inline int tiny_write(const char *dir, const tiny_spec *s)
{
    tiny_tensor t[256];
    kvl_st_write_tensor w[257];
    void *bufs[257];
    int n = tiny_tensors(s, t), m = 0;
    uint16_t pad = 0x3f80; /* bf16 1.0 */
    if (s->misalign) {
        memset(&w[m], 0, sizeof w[m]);
        w[m].name = "model.misalign_pad";
        w[m].dtype = KVL_DTYPE_BF16;
        w[m].ndim = 1;
        w[m].shape[0] = 1;
        w[m].data = &pad;
        bufs[m++] = NULL;
    }
    for (int i = 0; i < n; i++) {
        if (tiny_is(s->omit, t[i].name))
            continue;
        bufs[m] = tiny_fill(s, &t[i], &w[m]);
        m++;
    }
    int rc = tiny_write_config(dir, s) | tiny_write_weights(dir, s, w, m);
    for (int i = 0; i < m; i++)
        free(bufs[i]);
    return rc;
}

/* A fresh folder under /tmp (static buffer rotation of 4). */
static inline const char *tiny_mkdtemp(void)
{
    static char bufs[4][64];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, sizeof bufs[0], "/tmp/kvlab-model-test-XXXXXX");
    return mkdtemp(p);
}

/* Removes the plain files of a folder, then the folder. */
static inline void tiny_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

#endif
