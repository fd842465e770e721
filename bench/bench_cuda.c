/*
 * bench_cuda: kvlab's CUDA engine on random-weight models with the exact
 * shapes of Qwen2.5-0.5B, Qwen3-0.6B, TinyLlama-1.1B and Llama-3.2-1B, the
 * weights generated on the GPU (kvl_cuda_model_new_random: nothing read
 * from disk), BF16.  Per shape:
 *   - prefill tokens/s of a 512- and a 4096-token prompt (one call, logits
 *     of the last token), median of 5 after a warm-up;
 *   - decode tokens/s at batch 1: greedy single-token steps after a
 *     512-token prompt, 64 steps, median of 3, the argmax taken on the
 *     device (kvl_session_decode with `next`); and the same with the
 *     logits copied to the host and the argmax taken there, as an
 *     application that samples does;
 *   - decode tokens/s at batch 32: 32 sessions, each after its own
 *     512-token prompt, stepped together (kvl_batch_decode's engine), 64
 *     greedy steps, median of 3;
 *   - KV cache export (device -> host) and import (host -> device) of the
 *     4096-token cache, GB/s of K/V moved;
 *   - the decode bound: weight bytes read per token / the copy bandwidth
 *     measured here (a 4 GiB device-to-device copy, bytes read + written),
 *     and decode as a fraction of it.
 * Decode steps replay a CUDA graph of the step; KVL_CUDA_GRAPHS=0 turns
 * that off (plain launches), KVL_CUDA_PDL=0 the programmatic dependent
 * launches, for comparison; KVL_BENCH_DECODE_ONLY=1 measures only the
 * batch-1 decode (and the 512-token prefill before it).
 * The last thing printed is a Markdown table; bench/cuda_reference.py is
 * the transformers side, to be run on the same GPU.
 */
#include "kvlab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef KVL_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "cache/cache.h"
#include "core/rope.h"
#include "engine/cuda/cuda_engine.h"
#include "model/model.h"

#include "cuda_bench_util.h"

typedef struct shape {
    const char *name;
    kvl_arch arch;
    int32_t dim, hidden, layers, heads, kv_heads, head_dim, vocab, tied, qkv_bias,
        qk_norm;
    double theta;
    int llama3; /* llama3 RoPE scaling of Llama-3.2 */
} shape;

static const shape shapes[] = {
    {"qwen2.5-0.5b", KVL_ARCH_QWEN2, 896, 4864, 24, 14, 2, 64, 151936, 1, 1, 0, 1e6, 0},
    {"qwen3-0.6b", KVL_ARCH_QWEN3, 1024, 3072, 28, 16, 8, 128, 151936, 1, 0, 1, 1e6, 0},
    {"tinyllama-1.1b", KVL_ARCH_LLAMA, 2048, 5632, 22, 32, 4, 64, 32000, 0, 0, 0, 1e4, 0},
    {"llama-3.2-1b", KVL_ARCH_LLAMA, 2048, 8192, 16, 32, 8, 64, 128256, 1, 0, 0, 5e5, 1},
};

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static kvl_weight W(int64_t rows, int64_t cols)
{
    kvl_weight w = {NULL, KVL_DTYPE_BF16, rows, cols};
    return w;
}

/* A model described by shapes only (NULL data): what the random GPU model
 * is built from. */
static int build_shapes(const shape *s, kvl_model *m)
{
    memset(m, 0, sizeof *m);
    kvl_config *c = &m->cfg;
    c->arch = s->arch;
    snprintf(c->arch_name, sizeof c->arch_name, "%s", kvl_arch_name(s->arch));
    c->n_layers = s->layers;
    c->dim = s->dim;
    c->hidden_dim = s->hidden;
    c->n_heads = s->heads;
    c->n_kv_heads = s->kv_heads;
    c->head_dim = s->head_dim;
    c->vocab_size = s->vocab;
    c->max_seq_len = 32768;
    c->norm_eps = 1e-6;
    c->tied_embeddings = s->tied;
    c->qkv_bias = s->qkv_bias;
    c->qk_norm = s->qk_norm;
    c->rope.theta = s->theta;
    c->rope.layout = KVL_ROPE_ROTATE_HALF;
    c->rope.rotary_dim = s->head_dim;
    if (s->llama3) {
        c->rope.scaling = KVL_ROPE_SCALING_LLAMA3;
        c->rope.factor = 32;
        c->rope.low_freq_factor = 1;
        c->rope.high_freq_factor = 4;
        c->rope.original_max_position = 8192;
    }
    m->inv_freq = malloc(sizeof(float) * (size_t)(s->head_dim / 2));
    m->layers = calloc((size_t)s->layers, sizeof *m->layers);
    if (!m->inv_freq || !m->layers)
        return -1;
    kvl_rope_inv_freq(&c->rope, m->inv_freq);
    const int64_t q = (int64_t)s->heads * s->head_dim, kv = (int64_t)s->kv_heads * s->head_dim;
    for (int32_t l = 0; l < s->layers; l++) {
        kvl_layer_weights *w = &m->layers[l];
        w->attn_norm = W(1, s->dim);
        w->ffn_norm = W(1, s->dim);
        w->wq = W(q, s->dim);
        w->wk = W(kv, s->dim);
        w->wv = W(kv, s->dim);
        w->wo = W(s->dim, q);
        w->w_gate = W(s->hidden, s->dim);
        w->w_up = W(s->hidden, s->dim);
        w->w_down = W(s->dim, s->hidden);
        if (s->qkv_bias) {
            w->bq = W(1, q);
            w->bk = W(1, kv);
            w->bv = W(1, kv);
        }
        if (s->qk_norm) {
            w->q_norm = W(1, s->head_dim);
            w->k_norm = W(1, s->head_dim);
        }
    }
    m->tok_emb = W(s->vocab, s->dim);
    m->final_norm = W(1, s->dim);
    m->lm_head = s->tied ? m->tok_emb : W(s->vocab, s->dim);
    m->weight_dtype = KVL_DTYPE_BF16;
    snprintf(m->fingerprint, sizeof m->fingerprint, "bench-%s", s->name);
    return 0;
}

/* Bytes a decode step reads: every weight once, but one row of an
 * untied embedding table. */
static double step_bytes(const shape *s, int64_t weight_bytes)
{
    if (s->tied)
        return (double)weight_bytes;
    return (double)weight_bytes - 2.0 * s->vocab * s->dim + 2.0 * s->dim;
}

typedef struct result {
    double prefill512, prefill4096, decode, decode_host, decode32, export_gbs, import_gbs,
        bound, gb;
} result;

#define BATCH 32

/* Greedy decode at batch 32: tokens/s over 64 steps, median of 3. */
static int batch_decode(kvl_cuda_model *gm, const int32_t *ids, const int32_t *pos,
                        double *out, kvl_error *err)
{
    kvl_cuda_session *ss[BATCH] = {0};
    kvl_cuda_step *step = NULL;
    int32_t tok[BATCH], ps[BATCH], next[BATCH];
    int rc = kvl_cuda_batch_new(gm, BATCH, &step, err) != KVL_OK;
    for (int b = 0; b < BATCH && !rc; b++)
        rc = kvl_cuda_session_new(gm, 512 + 128, &ss[b], err) != KVL_OK;
    double td[3];
    for (int rep = 0; rep < 3 && !rc; rep++) {
        for (int b = 0; b < BATCH && !rc; b++) {
            kvl_cuda_session_reset(ss[b]);
            /* different prompts: a rotation of the same ids */
            rc = kvl_cuda_forward(ss[b], ids + 7 * b, pos, 512, NULL, 0, err) != KVL_OK;
            tok[b] = ids[7 * b + 512];
        }
        double t0 = now();
        for (int32_t i = 0; i < 64 && !rc; i++) {
            for (int b = 0; b < BATCH; b++)
                ps[b] = 512 + i;
            rc = kvl_cuda_step_run(step, ss, BATCH, tok, ps, NULL, next, err) != KVL_OK;
            memcpy(tok, next, sizeof tok);
        }
        td[rep] = now() - t0;
    }
    if (!rc) {
        qsort(td, 3, sizeof td[0], cmp_d);
        *out = BATCH * 64 / td[1];
    }
    for (int b = 0; b < BATCH; b++)
        kvl_cuda_session_free(ss[b]);
    kvl_cuda_step_free(step);
    return rc;
}

static int run_shape(const shape *sh, double bw, result *r, kvl_error *err)
{
    kvl_model m;
    if (build_shapes(sh, &m) != 0)
        return -1;
    kvl_cuda_model *gm = NULL;
    kvl_cuda_session *s = NULL;
    int rc = kvl_cuda_model_new_random(&m, 0, 1234, &gm, err) != KVL_OK ||
             kvl_cuda_session_new(gm, 4096 + 128, &s, err) != KVL_OK;
    const int32_t N = 4096;
    int32_t *ids = malloc(sizeof(int32_t) * N), *pos = malloc(sizeof(int32_t) * (N + 128));
    float *logits = malloc(sizeof(float) * (size_t)sh->vocab);
    if (rc || !ids || !pos || !logits)
        goto done;
    for (int32_t i = 0; i < N; i++)
        ids[i] = (int32_t)((i * 7919u + 13u) % (uint32_t)sh->vocab);
    for (int32_t i = 0; i < N + 128; i++)
        pos[i] = i;
    r->gb = kvl_cuda_model_bytes(gm) / 1e9;
    r->bound = bw / step_bytes(sh, kvl_cuda_model_bytes(gm));
    const int32_t lens[2] = {512, 4096};
    const int decode_only = getenv("KVL_BENCH_DECODE_ONLY") != NULL;
    for (int k = 0; k < (decode_only ? 1 : 2) && !rc; k++) {
        double t[6];
        for (int i = 0; i < 6 && !rc; i++) {
            kvl_cuda_session_reset(s);
            double t0 = now();
            rc = kvl_cuda_forward(s, ids, pos, lens[k], logits, 0, err) != KVL_OK;
            t[i] = now() - t0;
        }
        qsort(t + 1, 5, sizeof t[0], cmp_d);
        (k ? &r->prefill4096 : &r->prefill512)[0] = lens[k] / t[3];
    }
    /* KV export / import of the 4096-token cache left by the last run */
    kvl_cache *h = NULL;
    const double kv_bytes = 2.0 * sh->layers * sh->kv_heads * sh->head_dim * 4.0 * N;
    if (!rc && !decode_only) {
        double t0 = now();
        rc = kvl_cuda_session_export(s, &h, err) != KVL_OK;
        double t1 = now();
        rc = rc || kvl_cuda_session_export_into(s, h, err) != KVL_OK; /* warm host pages */
        t0 = now();
        rc = rc || kvl_cuda_session_export_into(s, h, err) != KVL_OK;
        t1 = now();
        r->export_gbs = kv_bytes / (t1 - t0) / 1e9;
        t0 = now();
        rc = rc || kvl_cuda_session_import(s, h, err) != KVL_OK;
        t1 = now();
        r->import_gbs = kv_bytes / (t1 - t0) / 1e9;
    }
    kvl_cache_free(h);
    /* host: logits copied, argmax on the host; device: argmax there */
    for (int host = 0; host < 2 && !rc; host++) {
        double td[3];
        for (int rep = 0; rep < 3 && !rc; rep++) {
            kvl_cuda_session_reset(s);
            rc = kvl_cuda_forward(s, ids, pos, 512, logits, 0, err) != KVL_OK;
            int32_t best = 0;
            for (int32_t v = 1; v < sh->vocab; v++)
                if (logits[v] > logits[best])
                    best = v;
            double t0 = now();
            for (int32_t i = 0; i < 64 && !rc; i++) {
                if (host) {
                    rc = kvl_cuda_forward(s, &best, pos + 512 + i, 1, logits, 0, err) != KVL_OK;
                    best = 0;
                    for (int32_t v = 1; v < sh->vocab; v++)
                        if (logits[v] > logits[best])
                            best = v;
                } else {
                    rc = kvl_cuda_decode(s, best, 512 + i, NULL, &best, err) != KVL_OK;
                }
            }
            td[rep] = now() - t0;
        }
        if (!rc) {
            qsort(td, 3, sizeof td[0], cmp_d);
            (host ? &r->decode_host : &r->decode)[0] = 64 / td[1];
        }
    }
    if (!rc && !decode_only)
        rc = batch_decode(gm, ids, pos, &r->decode32, err);
done:
    free(ids), free(pos), free(logits);
    kvl_cuda_session_free(s);
    kvl_cuda_model_free(gm);
    free(m.layers);
    free(m.inv_freq);
    return rc ? -1 : 0;
}

int main(void)
{
    const double bw = device_and_bandwidth("bench_cuda");
    if (bw < 0)
        return 0;
    result res[4];
    memset(res, 0, sizeof res);
    for (int i = 0; i < 4; i++) {
        kvl_error err = {0};
        if (run_shape(&shapes[i], bw, &res[i], &err) != 0)
            printf("%s: failed: %s\n", shapes[i].name, err.message);
        fflush(stdout);
    }
    printf("\n| shape | weights GB | decode bound tok/s | prefill 512 tok/s | prefill 4096 tok/s "
           "| decode b1 tok/s | of bound | b1, logits to host | decode b32 tok/s "
           "| KV export GB/s | KV import GB/s |\n"
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < 4; i++)
        printf("| %s | %.2f | %.0f | %.0f | %.0f | %.1f | %.1f%% | %.1f | %.0f | %.1f | %.1f |\n",
               shapes[i].name, res[i].gb, res[i].bound, res[i].prefill512, res[i].prefill4096,
               res[i].decode, 100 * res[i].decode / (res[i].bound > 0 ? res[i].bound : 1),
               res[i].decode_host, res[i].decode32, res[i].export_gbs, res[i].import_gbs);
    return 0;
}
#else
int main(void)
{
    printf("bench_cuda: kvlab was built without CUDA\n");
    return 0;
}
#endif
