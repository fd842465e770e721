/*
 * Session semantics that need no outside reference because they are
 * identities of the computation:
 *  - decoding from a cache that went through a .kvc file (F32) gives logits
 *    bit-identical to decoding in the original session;
 *  - kept activations are consistent with each other (the residual entering
 *    layer l+1 is x + attn_proj + ffn_out of layer l);
 *  - a re-positioned cache (+d then -d) decodes like the original;
 *  - bad tokens and positions are refused without touching the cache.
 */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *pick_model(void)
{
    const char *fx = kvt_source_path("tests/fixtures/llama_gqa_f32");
    if (kvt_file_exists(fx))
        return fx;
    const char *st = kvt_source_path("models/stories260K/stories260K.bin");
    if (kvt_file_exists(st))
        return st;
    return NULL;
}

static void test_save_load_exact(kvl_model *m, int32_t vocab)
{
    kvl_error err;
    const int32_t prompt[] = {1, 5, 9, 3, 7, 11, 2};
    const int n_prompt = 7, n_steps = 8;
    kvl_session *a = NULL, *b = NULL;
    CHECK_OK(kvl_session_new(m, NULL, &a, &err), &err);
    CHECK_OK(kvl_session_new(m, NULL, &b, &err), &err);
    if (!a || !b)
        goto out;
    float *la = malloc(sizeof(float) * vocab), *lb = malloc(sizeof(float) * vocab);
    CHECK_OK(kvl_session_forward(a, prompt, n_prompt, la, 0, &err), &err);
    const char *path = kvt_temp_path(".kvc");
    CHECK_OK(kvl_cache_save(kvl_session_cache(a), path, KVL_DTYPE_F32, &err), &err);
    kvl_cache *loaded = NULL;
    CHECK_OK(kvl_cache_load(path, &loaded, &err), &err);
    if (loaded)
        CHECK_OK(kvl_session_set_cache(b, loaded, 0, &err), &err);
    kvl_cache_free(loaded);
    int32_t tok = 4;
    int identical = 1;
    for (int i = 0; i < n_steps; i++) {
        CHECK_OK(kvl_session_forward(a, &tok, 1, la, 0, &err), &err);
        CHECK_OK(kvl_session_forward(b, &tok, 1, lb, 0, &err), &err);
        identical &= memcmp(la, lb, sizeof(float) * vocab) == 0;
        int32_t best = 0;
        for (int32_t j = 1; j < vocab; j++)
            if (la[j] > la[best])
                best = j;
        tok = best;
    }
    CHECK(identical, "decode after save/load is bit-identical to decode in place");
    CHECK(kvl_cache_n_tokens(kvl_session_cache(b)) == n_prompt + n_steps,
          "cache holds prompt + steps");
    free(la);
    free(lb);
out:
    kvl_session_free(a);
    kvl_session_free(b);
}

static void test_reposition_roundtrip_decode(kvl_model *m, int32_t vocab)
{
    kvl_error err;
    const int32_t prompt[] = {3, 1, 4, 1, 5, 9, 2, 6};
    kvl_session *a = NULL, *b = NULL;
    CHECK_OK(kvl_session_new(m, NULL, &a, &err), &err);
    CHECK_OK(kvl_session_new(m, NULL, &b, &err), &err);
    if (!a || !b)
        goto out;
    float *la = malloc(sizeof(float) * vocab), *lb = malloc(sizeof(float) * vocab);
    CHECK_OK(kvl_session_forward(a, prompt, 8, NULL, 0, &err), &err);
    kvl_cache *c = NULL;
    CHECK_OK(kvl_cache_copy(kvl_session_cache(a), &c, &err), &err);
    if (c) {
        CHECK_OK(kvl_cache_shift(c, 37, &err), &err);
        CHECK(kvl_cache_positions(c)[0] == 37, "positions moved by +37");
        CHECK_OK(kvl_cache_shift(c, -37, &err), &err);
        CHECK_OK(kvl_session_set_cache(b, c, 0, &err), &err);
    }
    kvl_cache_free(c);
    int32_t tok = 7;
    CHECK_OK(kvl_session_forward(a, &tok, 1, la, 0, &err), &err);
    CHECK_OK(kvl_session_forward(b, &tok, 1, lb, 0, &err), &err);
    double e = kvt_rel_err(lb, la, (size_t)vocab);
    CHECK(e < 1e-5, "logits after +d/-d reposition: rel err %g", e);
    free(la);
    free(lb);
out:
    kvl_session_free(a);
    kvl_session_free(b);
}

static void test_activations(kvl_model *m)
{
    kvl_error err;
    kvl_model_info info;
    kvl_model_get_info(m, &info);
    kvl_session_options o = {0, 0, 1};
    kvl_session *s = NULL;
    CHECK_OK(kvl_session_new(m, &o, &s, &err), &err);
    if (!s)
        return;
    const int32_t toks[] = {1, 2, 3, 4, 5};
    CHECK_OK(kvl_session_forward(s, toks, 5, NULL, 0, &err), &err);
    for (int32_t l = 0; l + 1 < info.n_layers; l++) {
        const float *x, *ap, *fo, *xn;
        int32_t r, c, r2, c2;
        CHECK_OK(kvl_session_activation(s, l, "x", &x, &r, &c, &err), &err);
        CHECK_OK(kvl_session_activation(s, l, "attn_proj", &ap, &r, &c, &err), &err);
        CHECK_OK(kvl_session_activation(s, l, "ffn_out", &fo, &r, &c, &err), &err);
        CHECK_OK(kvl_session_activation(s, l + 1, "x", &xn, &r2, &c2, &err), &err);
        CHECK(r == 5 && c == info.dim && r2 == 5, "shape %dx%d", r, c);
        double maxd = 0;
        for (int32_t i = 0; i < r * c; i++)
            maxd = fmax(maxd, fabs((double)x[i] + ap[i] + fo[i] - xn[i]));
        CHECK(maxd < 1e-4, "layer %d: x + attn + ffn = next x (max diff %g)", l, maxd);
    }
    const float *k;
    int32_t r, c;
    CHECK_OK(kvl_session_activation(s, 0, "k", &k, &r, &c, &err), &err);
    CHECK(c == info.n_kv_heads * info.head_dim, "k width");
    /* The kept k of layer 0 is what the cache holds (head 0, token 2). */
    const float *row = kvl_cache_data(kvl_session_cache(s), KVL_K, 0, 0);
    CHECK(row && memcmp(row + 2 * info.head_dim, k + 2 * c, sizeof(float) * info.head_dim) == 0,
          "kept k equals the cache's k");
    const float *d;
    CHECK(kvl_session_activation(s, 0, "nope", &d, &r, &c, &err) == KVL_ERR_ARG,
          "unknown activation name refused");
    CHECK(kvl_session_activation(s, info.n_layers, "x", &d, &r, &c, &err) == KVL_ERR_RANGE,
          "layer out of range refused");
    kvl_session_free(s);
}

static void test_bad_input(kvl_model *m, int32_t vocab)
{
    kvl_error err;
    kvl_session *s = NULL;
    CHECK_OK(kvl_session_new(m, NULL, &s, &err), &err);
    if (!s)
        return;
    int32_t bad[] = {1, vocab};
    CHECK(kvl_session_forward(s, bad, 2, NULL, 0, &err) == KVL_ERR_RANGE,
          "token id == vocab refused");
    CHECK(strstr(err.message, "vocabulary") != NULL, "message: %s", err.message);
    CHECK(kvl_cache_n_tokens(kvl_session_cache(s)) == 0, "cache untouched");
    int32_t neg = -1;
    CHECK(kvl_session_forward(s, &neg, 1, NULL, 0, &err) == KVL_ERR_RANGE, "negative id");
    CHECK(kvl_session_forward(s, bad, 0, NULL, 0, &err) == KVL_ERR_ARG, "zero tokens");
    int32_t tok = 1, pos = -5;
    CHECK(kvl_session_forward_at(s, &tok, &pos, 1, NULL, 0, &err) == KVL_ERR_RANGE,
          "negative position");
    kvl_session_free(s);
}

int main(void)
{
    const char *path = pick_model();
    if (!path)
        return kvt_skip("no model: neither tests/fixtures/llama_gqa_f32 nor "
                        "../shared/models/stories260K is present");
    kvl_error err;
    kvl_model *m = NULL;
    CHECK_OK(kvl_model_load(path, NULL, &m, &err), &err);
    if (!m)
        return kvt_finish();
    kvl_model_info info;
    kvl_model_get_info(m, &info);
    printf("model: %s (%s)\n", path, info.arch_name);
    test_save_load_exact(m, info.vocab_size);
    test_reposition_roundtrip_decode(m, info.vocab_size);
    test_activations(m);
    test_bad_input(m, info.vocab_size);
    kvl_model_free(m);
    return kvt_finish();
}
