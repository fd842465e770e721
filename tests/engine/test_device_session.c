/*
 * Device selection through the public API.  Everywhere: "cpu", "auto" and
 * malformed device names; without a GPU, "cuda" is refused with a clear
 * message.  On a machine with a GPU, a model loaded with device "cuda"
 * runs its sessions there, and the session-level cache operations agree
 * with the CPU engine: forward logits (1e-2 relative for BF16 weights),
 * the exported cache (kvl_session_cache), import (kvl_session_set_cache),
 * slice and re-position on the device, and a host copy edited by the
 * caller being taken back before the next step.
 */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_names(void)
{
    const char *m = kvt_source_path("models/demo-receiver");
    kvl_error err = {0};
    kvl_model *model = NULL;
    kvl_model_info in;
    kvl_model_options o = {"cpu"};
    CHECK_OK(kvl_model_load(m, &o, &model, &err), &err);
    kvl_model_get_info(model, &in);
    CHECK(model && strcmp(in.device, "cpu") == 0, "cpu model: %s", model ? in.device : "");
    kvl_model_free(model);
    model = NULL;
    o.device = "auto";
    CHECK_OK(kvl_model_load(m, &o, &model, &err), &err);
    kvl_model_get_info(model, &in);
    const char *want = kvl_cuda_device_count() > 0 ? "cuda:0" : "cpu";
    CHECK(model && strcmp(in.device, want) == 0, "auto -> %s, got %s", want, in.device);
    kvl_model_free(model);
    const char *bad[] = {"gpu", "cuda:", "cuda:x", "cuda0", "cuda:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        model = NULL;
        o.device = bad[i];
        kvl_status st = kvl_model_load(m, &o, &model, &err);
        CHECK(st == KVL_ERR_ARG && !model && strstr(err.message, bad[i]),
              "device '%s' refused: %s", bad[i], err.message);
    }
    o.device = "cuda:99";
    model = NULL;
    CHECK(kvl_model_load(m, &o, &model, &err) == KVL_ERR_UNSUPPORTED && !model,
          "cuda:99 refused: %s", err.message);
    if (kvl_cuda_device_count() == 0) {
        o.device = "cuda";
        CHECK(kvl_model_load(m, &o, &model, &err) == KVL_ERR_UNSUPPORTED &&
                  (strstr(err.message, "without CUDA") || strstr(err.message, "0 CUDA GPUs")),
              "cuda without a GPU refused clearly: %s", err.message);
    }
}

/* K and V of two caches over their common tokens, relative error. */
static double cache_err(const kvl_cache *a, const kvl_cache *b)
{
    kvl_cache_info ia, ib;
    kvl_cache_get_info(a, &ia);
    kvl_cache_get_info(b, &ib);
    if (ia.n_tokens != ib.n_tokens || ia.n_layers != ib.n_layers)
        return 1e30;
    double num = 0, den = 0;
    for (int32_t l = 0; l < ia.n_layers; l++)
        for (int w = 0; w < 2; w++)
            for (int32_t h = 0; h < ia.n_kv_heads; h++) {
                const float *x = kvl_cache_data(a, w ? KVL_V : KVL_K, l, h);
                const float *y = kvl_cache_data(b, w ? KVL_V : KVL_K, l, h);
                for (int64_t i = 0; i < (int64_t)ia.n_tokens * ia.head_dim; i++) {
                    num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
                    den += (double)y[i] * y[i];
                }
            }
    const int32_t *pa = kvl_cache_positions(a), *pb = kvl_cache_positions(b);
    for (int32_t t = 0; t < ia.n_tokens; t++)
        if (pa[t] != pb[t])
            return 1e30;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void test_gpu(void)
{
    const char *path = kvt_source_path("models/demo-sharer");
    kvl_error err = {0};
    kvl_model *cm = NULL, *gm = NULL;
    kvl_model_options oc = {"cpu"}, og = {"cuda"};
    CHECK_OK(kvl_model_load(path, &oc, &cm, &err), &err);
    CHECK_OK(kvl_model_load(path, &og, &gm, &err), &err);
    kvl_session *c = NULL, *g = NULL;
    if (cm)
        CHECK_OK(kvl_session_new(cm, NULL, &c, &err), &err);
    if (gm)
        CHECK_OK(kvl_session_new(gm, NULL, &g, &err), &err);
    if (!c || !g)
        return;
    kvl_session_options keep = {0, 0, 1};
    kvl_session *bad = NULL;
    CHECK(kvl_session_new(gm, &keep, &bad, &err) == KVL_ERR_UNSUPPORTED && !bad,
          "keep_activations on a GPU model refused: %s", err.message);
    kvl_model_info in;
    kvl_model_get_info(gm, &in);
    const int32_t V = in.vocab_size;
    float *lc = malloc(sizeof(float) * V), *lg = malloc(sizeof(float) * V);
    const int32_t prompt[] = {6142, 540, 10, 388, 403, 5054, 410, 46, 534, 665, 292,
                              6143, 10, 6142, 882, 10};
    const int32_t T = (int32_t)(sizeof prompt / sizeof prompt[0]);
    CHECK_OK(kvl_session_forward(c, prompt, T, lc, 0, &err), &err);
    CHECK_OK(kvl_session_forward(g, prompt, T, lg, 0, &err), &err);
    CHECK(kvt_rel_err(lg, lc, (size_t)V) < 1e-2, "prompt logits rel err %g",
          kvt_rel_err(lg, lc, (size_t)V));
    for (int s = 0; s < 8; s++) {
        int32_t tc = kvt_argmax(lc, V), tg = kvt_argmax(lg, V);
        CHECK(tc == tg, "greedy step %d: cpu %d gpu %d", s, tc, tg);
        CHECK_OK(kvl_session_forward(c, &tc, 1, lc, 0, &err), &err);
        CHECK_OK(kvl_session_forward(g, &tc, 1, lg, 0, &err), &err);
    }
    const int32_t n = T + 8;
    /* export */
    double e = cache_err(kvl_session_cache(g), kvl_session_cache(c));
    CHECK(e < 1e-2, "exported cache vs CPU rel err %g", e);
    /* slice on the device, then one more step on both */
    CHECK_OK(kvl_session_slice(c, 3, n - 2, &err), &err);
    CHECK_OK(kvl_session_slice(g, 3, n - 2, &err), &err);
    e = cache_err(kvl_session_cache(g), kvl_session_cache(c));
    CHECK(e < 1e-2 && kvl_cache_n_tokens(kvl_session_cache(g)) == n - 5,
          "sliced cache vs CPU rel err %g", e);
    /* re-position on the device: tokens to 0.. */
    int32_t *np = malloc(sizeof(int32_t) * (size_t)n);
    for (int32_t i = 0; i < n - 5; i++)
        np[i] = i;
    CHECK_OK(kvl_session_reposition(c, np, &err), &err);
    CHECK_OK(kvl_session_reposition(g, np, &err), &err);
    e = cache_err(kvl_session_cache(g), kvl_session_cache(c));
    CHECK(e < 1e-2, "re-positioned cache vs CPU rel err %g", e);
    int32_t tok = 46;
    CHECK_OK(kvl_session_forward(c, &tok, 1, lc, 0, &err), &err);
    CHECK_OK(kvl_session_forward(g, &tok, 1, lg, 0, &err), &err);
    CHECK(kvt_rel_err(lg, lc, (size_t)V) < 1e-2, "step after slice + reposition rel err %g",
          kvt_rel_err(lg, lc, (size_t)V));
    /* a host copy edited by the caller is taken back */
    CHECK_OK(kvl_cache_truncate(kvl_session_cache(g), 4, &err), &err);
    CHECK_OK(kvl_cache_truncate(kvl_session_cache(c), 4, &err), &err);
    CHECK_OK(kvl_session_forward(c, &tok, 1, lc, 0, &err), &err);
    CHECK_OK(kvl_session_forward(g, &tok, 1, lg, 0, &err), &err);
    CHECK(kvt_rel_err(lg, lc, (size_t)V) < 1e-2 &&
              kvl_cache_n_tokens(kvl_session_cache(g)) == 5,
          "edited host copy imported: rel err %g", kvt_rel_err(lg, lc, (size_t)V));
    /* import a CPU cache into the GPU session */
    kvl_cache *copy = NULL;
    CHECK_OK(kvl_cache_copy(kvl_session_cache(c), &copy, &err), &err);
    CHECK_OK(kvl_session_set_cache(g, copy, 0, &err), &err);
    CHECK_OK(kvl_session_forward(c, &tok, 1, lc, 0, &err), &err);
    CHECK_OK(kvl_session_forward(g, &tok, 1, lg, 0, &err), &err);
    CHECK(kvt_rel_err(lg, lc, (size_t)V) < 1e-2, "imported cache continues: rel err %g",
          kvt_rel_err(lg, lc, (size_t)V));
    kvl_cache_free(copy);
    free(np), free(lc), free(lg);
    kvl_session_free(c);
    kvl_session_free(g);
    kvl_model_free(cm);
    kvl_model_free(gm);
}

int main(void)
{
    test_names();
    if (kvl_cuda_device_count() > 0)
        test_gpu();
    else
        printf("no CUDA device: the GPU part is not run here\n");
    return kvt_finish();
}
