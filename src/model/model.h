/*
 * The in-memory model: a flat struct of weight views (llama2.c style).
 * Weights point into memory-mapped files (or owned aligned copies); the
 * forward pass converts them to fp32 as it reads them.
 */
#ifndef KVL_MODEL_MODEL_H
#define KVL_MODEL_MODEL_H

#include "kvlab.h"
#include "model/safetensors.h"

#include <stddef.h>
#include <stdint.h>

/* A 1-D or 2-D weight.  Matrices are [rows = out][cols = in] row-major, as
 * torch.nn.Linear stores them.  Vectors have rows = 1.  data == NULL means
 * "absent" (optional biases / norms).  data is aligned to its element size. */
typedef struct kvl_weight {
    const void *data;
    kvl_dtype dtype;
    int64_t rows;
    int64_t cols;
} kvl_weight;

typedef struct kvl_layer_weights {
    kvl_weight attn_norm;        /* [dim]                        */
    kvl_weight wq, wk, wv, wo;   /* [nh*hd,dim] [nkv*hd,dim] x2, [dim,nh*hd] */
    kvl_weight bq, bk, bv, bo;   /* optional biases              */
    kvl_weight q_norm, k_norm;   /* optional [head_dim] (Qwen3)  */
    kvl_weight ffn_norm;         /* [dim]                        */
    kvl_weight w_gate, w_up;     /* [hidden, dim]                */
    kvl_weight w_down;           /* [dim, hidden]                */
    kvl_weight b_gate, b_up, b_down; /* optional (mlp_bias)      */
} kvl_layer_weights;

#define KVL_MAX_EOS_IDS 8

typedef struct kvl_config {
    kvl_arch arch;
    char arch_name[64];
    int32_t n_layers, dim, hidden_dim, n_heads, n_kv_heads, head_dim;
    int32_t vocab_size, max_seq_len;
    double norm_eps;
    kvl_rope rope;
    int32_t tied_embeddings;
    int32_t qkv_bias, o_bias, mlp_bias, qk_norm;
    int32_t bos_token_id, eos_token_id;
    /* Every id that ends generation (config.json's eos_token_id, or
     * generation_config.json's when that file has one); eos_token_id is
     * the first. */
    int32_t eos_ids[KVL_MAX_EOS_IDS];
    int32_t n_eos_ids;
} kvl_config;

struct kvl_model {
    kvl_config cfg;
    kvl_weight tok_emb;      /* [vocab, dim]                    */
    kvl_weight final_norm;   /* [dim]                           */
    kvl_weight lm_head;      /* [vocab, dim]; = tok_emb if tied */
    kvl_layer_weights *layers;
    float *inv_freq;         /* [rope.rotary_dim / 2]           */

    /* storage */
    kvl_st_file *st_files;   /* HF: one per shard                */
    int n_st_files;
    void *bin_map;           /* llama2.c: the mapped checkpoint */
    size_t bin_size;
    void **owned;            /* aligned copies of unaligned tensors */
    int n_owned;

    /* The GPU copy of the weights when loaded with device "cuda[:N]". */
    struct kvl_cuda_model *cuda;
    char device[16];          /* "cpu" or "cuda:N"                */

    kvl_dtype weight_dtype;
    int64_t n_params;
    int64_t weight_bytes;
    char fingerprint[65];
    char *path;
};

/* Loaders (one file each).  Both fill a zeroed model; on failure the caller
 * frees it with kvl_model_free. */
kvl_status kvl_load_hf(kvl_model *m, const char *dir, kvl_error *err);
kvl_status kvl_load_llama2c(kvl_model *m, const char *path, kvl_error *err);

/* Shared by the loaders after the weights are bound: checks shapes against
 * cfg, computes inv_freq, n_params, weight_bytes and the fingerprint. */
kvl_status kvl_model_finalize(kvl_model *m, kvl_error *err);

/* Makes w.data aligned to its element size, copying into an owned buffer
 * when the mapping left it unaligned. */
kvl_status kvl_model_align_weight(kvl_model *m, kvl_weight *w, kvl_error *err);

/* Fingerprint helpers (model/fingerprint.c). */
void kvl_model_compute_fingerprint(kvl_model *m);

/* One weight slot of a model, as seen by code that walks all of them
 * (finalize, fingerprint, listings).  Vectors are expected as rows = 1. */
typedef struct kvl_weight_slot {
    char name[48];        /* loader-independent, e.g. "layers.3.wq"     */
    const kvl_weight *w;  /* w->data == NULL: absent optional weight    */
    int64_t rows, cols;   /* shape the config implies                   */
    int required;         /* 1 when the config says it must be present  */
} kvl_weight_slot;

typedef int (*kvl_weight_slot_fn)(const kvl_weight_slot *slot, void *ctx);

/* Calls fn for every slot in a fixed order: tok_emb; per layer attn_norm,
 * wq, bq, wk, bk, wv, bv, wo, bo, q_norm, k_norm, ffn_norm, w_gate, b_gate,
 * w_up, b_up, w_down, b_down; final_norm; lm_head (skipped when tied).
 * Stops at the first non-zero return of fn and returns it; 0 otherwise. */
int kvl_model_walk_weights(const kvl_model *m, kvl_weight_slot_fn fn,
                           void *ctx);

#endif
