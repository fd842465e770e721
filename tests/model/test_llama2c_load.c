/*
 * llama2.c v0 checkpoints: the real stories260K (when ../shared has it)
 * and small files written here whose arrays are filled with
 * 1000 * array_number + index, so that each weight view can be checked to
 * point at the right array and the right layer.
 */
#include "test_util.h"

#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_fail(const char *what, const char *path, kvl_status code,
                        const char *a, const char *b)
{
    kvl_model *m = NULL;
    kvl_error err = {0};
    kvl_status st = kvl_model_load(path, NULL, &m, &err);
    CHECK(st == code, "%s: got %s want %s (%s)", what, kvl_status_name(st),
          kvl_status_name(code), err.message);
    CHECK(m == NULL, "%s: model returned", what);
    CHECK(strstr(err.message, path) != NULL, "%s: '%s' lacks the path", what,
          err.message);
    CHECK(!a || strstr(err.message, a), "%s: '%s' lacks '%s'", what,
          err.message, a);
    CHECK(!b || strstr(err.message, b), "%s: '%s' lacks '%s'", what,
          err.message, b);
    kvl_model_free(m);
}

static void test_stories260k(void)
{
    const char *path = kvt_source_path("models/stories260K/stories260K.bin");
    if (!kvt_file_exists(path)) {
        printf("note: %s absent, stories260K checks skipped\n", path);
        return;
    }
    kvl_model *m = NULL;
    kvl_error err = {0};
    CHECK_OK(kvl_model_load(path, NULL, &m, &err), &err);
    if (!m)
        return;
    kvl_model_info i;
    kvl_model_get_info(m, &i);
    CHECK(i.arch == KVL_ARCH_LLAMA2C && strcmp(i.arch_name, "llama2c") == 0,
          "arch");
    CHECK(i.dim == 64 && i.hidden_dim == 172 && i.n_layers == 5 &&
              i.n_heads == 8 && i.n_kv_heads == 4 && i.head_dim == 8 &&
              i.vocab_size == 512 && i.max_seq_len == 512,
          "header: dim %d hidden %d layers %d heads %d/%d vocab %d seq %d",
          i.dim, i.hidden_dim, i.n_layers, i.n_heads, i.n_kv_heads,
          i.vocab_size, i.max_seq_len);
    CHECK(i.rope.layout == KVL_ROPE_INTERLEAVED && i.rope.theta == 10000.0 &&
              i.rope.rotary_dim == 8 && i.rope.scaling == KVL_ROPE_SCALING_NONE,
          "rope");
    CHECK(i.norm_eps == 1e-5 && i.bos_token_id == 1 && i.eos_token_id == 2,
          "eps/bos/eos");
    CHECK(i.tied_embeddings == 1 && i.weight_dtype == KVL_DTYPE_F32, "tied");
    /* emb 512*64 = 32768; per layer 2*64 norms + q 64*64 + k,v 2*32*64 +
     * o 64*64 + 3*172*64 = 128 + 4096 + 4096 + 4096 + 33024 = 45440, x5 =
     * 227200; final 64: 260032 ("260K"). */
    CHECK(i.n_params == 260032, "n_params %lld", (long long)i.n_params);
    CHECK(i.weight_bytes == 4 * 260032, "weight bytes");
    CHECK(strlen(i.fingerprint) == 64, "fingerprint");

    /* rms_final sits after 28 header bytes and 32768 + 5*(64 + 4096 +
     * 2048 + 2048 + 4096 + 64 + 3*11008) floats. */
    FILE *fp = fopen(path, "rb");
    float want[2] = {0, 0}, emb[2] = {0, 0};
    if (fp) {
        CHECK(fseek(fp, 28, SEEK_SET) == 0 && fread(emb, 4, 2, fp) == 2,
              "read emb");
        long off = 28 + 4L * (32768 + 5L * (64 + 4096 + 2048 + 2048 + 4096 +
                                            64 + 3 * 11008));
        CHECK(fseek(fp, off, SEEK_SET) == 0 && fread(want, 4, 2, fp) == 2,
              "read rms_final");
        fclose(fp);
    }
    const float *fin = m->final_norm.data, *e = m->tok_emb.data;
    CHECK(fin && fin[0] == want[0] && fin[1] == want[1],
          "final norm at the wrong offset");
    CHECK(e && e[0] == emb[0] && e[1] == emb[1], "embedding offset");
    CHECK(m->lm_head.data == m->tok_emb.data, "shared classifier");
    kvl_model_free(m);

    /* A truncated copy. */
    const char *cut = kvt_temp_path(".bin");
    fp = fopen(path, "rb");
    FILE *out = fopen(cut, "wb");
    if (fp && out) {
        char buf[4096];
        size_t total = 0, n;
        while (total < 500000 && (n = fread(buf, 1, sizeof buf, fp)) > 0) {
            fwrite(buf, 1, n, out);
            total += n;
        }
    }
    if (fp)
        fclose(fp);
    if (out)
        fclose(out);
    expect_fail("truncated stories260K", cut, KVL_ERR_FORMAT, "truncated",
                "1056540 bytes");
}

typedef struct tiny_l2c {
    int32_t dim, hidden, layers, heads, kv_heads, vocab, seq;
} tiny_l2c;

/* Writes a checkpoint; vocab < 0 adds wcls.  extra_floats are appended
 * (or, negative, cut from the end). */
static void write_l2c(const char *path, const tiny_l2c *h, int extra_floats)
{
    const int32_t d = h->dim, v = h->vocab < 0 ? -h->vocab : h->vocab,
                  L = h->layers, kv = h->dim / h->heads * h->kv_heads,
                  hs = h->dim / h->heads;
    const long sizes[14] = {(long)v * d,  (long)L * d,      (long)L * d * d,
                            (long)L * kv * d, (long)L * kv * d,
                            (long)L * d * d, (long)L * d,
                            (long)L * h->hidden * d, (long)L * d * h->hidden,
                            (long)L * h->hidden * d, d,
                            (long)h->seq * hs / 2, (long)h->seq * hs / 2,
                            h->vocab < 0 ? (long)v * d : 0};
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return;
    fwrite(h, 4, 7, fp);
    long written = 0, total = 0;
    for (int a = 0; a < 14; a++)
        total += sizes[a];
    total += extra_floats;
    for (int a = 0; a < 14; a++)
        for (long j = 0; j < sizes[a] && written < total; j++, written++) {
            float x = (float)(1000 * (a + 1) + j);
            fwrite(&x, 4, 1, fp);
        }
    for (; written < total; written++) {
        float x = 0;
        fwrite(&x, 4, 1, fp);
    }
    fclose(fp);
}

static float at(const kvl_weight *w, long i)
{
    return w->data ? ((const float *)w->data)[i] : -1.0f;
}

static void test_synthetic(void)
{
    /* dim 8, hidden 12, 2 layers, 2 heads (size 4), 1 kv head (kv_dim 4),
     * vocab 10 unshared, seq 16 */
    tiny_l2c h = {8, 12, 2, 2, 1, -10, 16};
    const char *path = kvt_temp_path(".bin");
    write_l2c(path, &h, 0);
    kvl_model *m = NULL;
    kvl_error err = {0};
    CHECK_OK(kvl_model_load(path, NULL, &m, &err), &err);
    if (!m)
        return;
    CHECK(m->cfg.vocab_size == 10 && m->cfg.tied_embeddings == 0 &&
              m->cfg.head_dim == 4 && m->cfg.max_seq_len == 16,
          "header");
    const kvl_layer_weights *l1 = &m->layers[1];
    CHECK(at(&m->tok_emb, 5) == 1005, "tok_emb");
    CHECK(at(&l1->attn_norm, 0) == 2000 + 8, "rms_att layer 1");
    CHECK(at(&l1->wq, 0) == 3000 + 64, "wq layer 1");
    CHECK(at(&l1->wk, 3) == 4000 + 32 + 3, "wk layer 1");
    CHECK(at(&l1->wv, 0) == 5000 + 32, "wv layer 1");
    CHECK(at(&l1->wo, 0) == 6000 + 64, "wo layer 1");
    CHECK(at(&l1->ffn_norm, 0) == 7000 + 8, "rms_ffn layer 1");
    CHECK(at(&l1->w_gate, 0) == 8000 + 96, "w1 = gate");
    CHECK(at(&l1->w_down, 0) == 9000 + 96, "w2 = down");
    CHECK(at(&l1->w_up, 0) == 10000 + 96, "w3 = up");
    CHECK(at(&m->final_norm, 7) == 11007, "rms_final");
    CHECK(at(&m->lm_head, 0) == 14000, "wcls after freq_cis");
    CHECK(l1->wk.rows == 4 && l1->wk.cols == 8 && l1->w_down.rows == 8 &&
              l1->w_down.cols == 12 && l1->attn_norm.rows == 1,
          "shapes");
    CHECK(m->layers[0].bq.data == NULL && m->layers[0].q_norm.data == NULL,
          "no biases");
    /* emb 80 + 2 * (8+64+32+32+64+8+288) + 8 + wcls 80 */
    CHECK(m->n_params == 80 + 2 * 496 + 8 + 80, "n_params %lld",
          (long long)m->n_params);
    kvl_model_free(m);

    h.vocab = 10; /* shared: the classifier is the embedding */
    write_l2c(path, &h, 0);
    CHECK_OK(kvl_model_load(path, NULL, &m, &err), &err);
    if (m)
        CHECK(m->cfg.tied_embeddings == 1 &&
                  m->lm_head.data == m->tok_emb.data,
              "tied");
    kvl_model_free(m);
}

static void test_bad_files(void)
{
    tiny_l2c h = {8, 12, 2, 2, 1, 10, 16};
    const char *path = kvt_temp_path(".bin");
    write_l2c(path, &h, 1);
    expect_fail("trailing float", path, KVL_ERR_FORMAT, "trailing bytes",
                NULL);
    write_l2c(path, &h, -1);
    expect_fail("one float short", path, KVL_ERR_FORMAT, "truncated", NULL);
    write_l2c(path, &h, 80); /* wcls present but vocab positive */
    expect_fail("unannounced wcls", path, KVL_ERR_FORMAT, "trailing bytes",
                "negative vocab_size");
    tiny_l2c z = h;
    z.heads = 0;
    write_l2c(path, &h, 0);
    FILE *fp = fopen(path, "r+b");
    if (fp) {
        fwrite(&z, 4, 7, fp);
        fclose(fp);
    }
    expect_fail("zero heads", path, KVL_ERR_FORMAT, "n_heads 0", NULL);
    z = h;
    z.heads = 3; /* 8 % 3 != 0 */
    fp = fopen(path, "r+b");
    if (fp) {
        fwrite(&z, 4, 7, fp);
        fclose(fp);
    }
    expect_fail("dim not divisible", path, KVL_ERR_FORMAT, "n_heads 3", NULL);
    const int32_t magic[7] = {0x616b3432, 1, 0, 0, 0, 0, 0};
    fp = fopen(path, "wb");
    if (fp) {
        fwrite(magic, 4, 7, fp);
        fclose(fp);
    }
    expect_fail("v1 export", path, KVL_ERR_UNSUPPORTED, "ak42", "version 1");
    fp = fopen(path, "wb");
    if (fp) {
        fwrite(magic, 4, 3, fp);
        fclose(fp);
    }
    expect_fail("12-byte file", path, KVL_ERR_FORMAT, "too short", NULL);
    expect_fail("missing file", "/nonexistent/kvlab.bin", KVL_ERR_IO, NULL,
                NULL);
}

int main(void)
{
    test_synthetic();
    test_bad_files();
    test_stories260k();
    if (!kvt_file_exists(
            kvt_source_path("models/stories260K/stories260K.bin")) &&
        kvt_failed == 0)
        return kvt_skip("stories260K.bin not found under %s (synthetic "
                        "checks passed: %d)",
                        kvt_shared_path(""), kvt_passed);
    return kvt_finish();
}
