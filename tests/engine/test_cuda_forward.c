/*
 * The CUDA forward pass against the references, on a machine with a GPU
 * (skipped elsewhere): for every committed transformers fixture
 * (tests/fixtures/<model>/reference.safetensors) and the shipped demo
 * models (tests/fixtures/demo/), the GPU logits of the reference prompt and
 * the exported K/V match transformers within 1e-2 relative for BF16/F16
 * weights and 1e-3 for F32 (issue 6); they match the CPU path as well; a
 * prompt split in two calls gives the same last logits; decoding 64 greedy
 * tokens on the GPU picks the same tokens as the CPU; and a cache exported
 * to the host, imported into a new GPU session, continues identically.
 */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

#ifdef KVL_HAVE_CUDA
#include "engine/cuda/cuda_engine.h"

static float *copy_f32(const kvl_st_tensor *t)
{
    float *p = malloc(t->nbytes ? t->nbytes : 1);
    if (p)
        memcpy(p, t->data, t->nbytes);
    return p;
}

static int32_t *ref_ids(const kvl_st_file *f, int32_t *n)
{
    const kvl_st_tensor *t = kvl_st_find(f, "input_ids");
    if (!t)
        return NULL;
    *n = (int32_t)(t->nbytes / sizeof(int32_t));
    int32_t *p = malloc(t->nbytes);
    if (p)
        memcpy(p, t->data, t->nbytes);
    return p;
}

static void check_kv(const char *name, const kvl_cache *c, const kvl_st_file *ref,
                     int32_t T, double tol)
{
    kvl_cache_info ci;
    kvl_cache_get_info(c, &ci);
    float *got = malloc(sizeof(float) * (size_t)ci.n_kv_heads * T * ci.head_dim);
    kvl_error err;
    double worst = 0;
    for (int32_t l = 0; l < ci.n_layers && got; l++)
        for (int w = 0; w < 2; w++) {
            char tn[64];
            snprintf(tn, sizeof tn, "layers.%d.%c", (int)l, w ? 'v' : 'k');
            const kvl_st_tensor *t = kvl_st_find(ref, tn);
            if (!t)
                continue;
            for (int32_t h = 0; h < ci.n_kv_heads; h++)
                CHECK_OK(kvl_cache_read(c, w ? KVL_V : KVL_K, l, h, 0, T,
                                        got + (size_t)h * T * ci.head_dim, &err), &err);
            float *want = copy_f32(t);
            double e = want ? kvt_rel_err(got, want, (size_t)ci.n_kv_heads * T * ci.head_dim) : 1;
            if (e > worst)
                worst = e;
            free(want);
        }
    CHECK(worst < tol, "%s: K/V rel err %g (tolerance %g)", name, worst, tol);
    printf("%s: K/V vs transformers rel err %.3g\n", name, worst);
    free(got);
}

/* Greedy steps on both paths from the same prompt: same tokens. */
static void check_greedy(const char *name, kvl_model *m, kvl_cuda_session *g,
                         const int32_t *ids, int32_t T, int steps)
{
    kvl_model_info in;
    kvl_model_get_info(m, &in);
    kvl_error err;
    kvl_session *c = NULL;
    CHECK_OK(kvl_session_new(m, NULL, &c, &err), &err);
    float *lc = malloc(sizeof(float) * in.vocab_size);
    float *lg = malloc(sizeof(float) * in.vocab_size);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)(T + steps));
    if (!c || !lc || !lg || !pos)
        return;
    for (int32_t i = 0; i < T + steps; i++)
        pos[i] = i;
    kvl_cuda_session_reset(g);
    CHECK_OK(kvl_session_forward(c, ids, T, lc, 0, &err), &err);
    CHECK_OK(kvl_cuda_forward(g, ids, pos, T, lg, 0, &err), &err);
    int same = 0;
    double worst = 0;
    for (int s = 0; s < steps; s++) {
        int32_t a = 0, b = 0;
        for (int32_t v = 1; v < in.vocab_size; v++) {
            if (lc[v] > lc[a])
                a = v;
            if (lg[v] > lg[b])
                b = v;
        }
        double e = kvt_rel_err(lg, lc, (size_t)in.vocab_size);
        if (e > worst)
            worst = e;
        if (a != b)
            break;
        same++;
        CHECK_OK(kvl_session_forward(c, &a, 1, lc, 0, &err), &err);
        CHECK_OK(kvl_cuda_forward(g, &a, pos + T + s, 1, lg, 0, &err), &err);
    }
    CHECK(same == steps, "%s: %d of %d greedy tokens identical", name, same, steps);
    printf("%s: %d greedy tokens identical, decode logits vs CPU rel err <= %.3g\n",
           name, same, worst);
    kvl_session_free(c);
    free(lc), free(lg), free(pos);
}

static void check_model(const char *name, const char *model_dir, const char *ref_path,
                        int greedy_steps)
{
    kvl_error err;
    kvl_st_file ref;
    kvl_model *m = NULL;
    if (!kvt_file_exists(ref_path) || !kvt_file_exists(model_dir)) {
        printf("%s: not present, not checked\n", name);
        return;
    }
    CHECK_OK(kvl_st_open(ref_path, &ref, &err), &err);
    CHECK_OK(kvl_model_load(model_dir, NULL, &m, &err), &err);
    if (!m)
        return;
    kvl_model_info in;
    kvl_model_get_info(m, &in);
    /* Issue 6's bounds: 1e-2 relative with BF16 weights (cuBLAS takes BF16
     * operands), 1e-3 with F32 (and F16, computed in fp32 here). */
    const double tol = in.weight_dtype == KVL_DTYPE_BF16 ? 1e-2 : 1e-3;
    /* GPU against GPU (split prompt, imported cache): every path is fp32
     * except the BF16 operands of cuBLAS, which only BF16 models use. */
    const double self_tol = in.weight_dtype == KVL_DTYPE_BF16 ? 1e-2 : 1e-4;
    int32_t T = 0;
    int32_t *ids = ref_ids(&ref, &T);
    const kvl_st_tensor *tl = kvl_st_find(&ref, "logits");
    kvl_cuda_model *gm = NULL;
    kvl_cuda_session *g = NULL;
    CHECK_OK(kvl_cuda_model_new(m, 0, &gm, &err), &err);
    if (gm)
        CHECK_OK(kvl_cuda_session_new(gm, 0, &g, &err), &err);
    float *lg = malloc(sizeof(float) * (size_t)T * in.vocab_size);
    float *lc = malloc(sizeof(float) * (size_t)T * in.vocab_size);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)T);
    if (!g || !ids || !tl || !lg || !lc || !pos) {
        CHECK(0, "%s: setup failed", name);
        goto done;
    }
    for (int32_t i = 0; i < T; i++)
        pos[i] = i;
    /* whole prompt, every row's logits */
    CHECK_OK(kvl_cuda_forward(g, ids, pos, T, lg, 1, &err), &err);
    float *want = copy_f32(tl);
    double e = want ? kvt_rel_err(lg, want, (size_t)T * in.vocab_size) : 1;
    CHECK(e < tol, "%s: logits vs transformers rel err %g (tolerance %g)", name, e, tol);
    printf("%s (%s): logits vs transformers rel err %.3g\n", name,
           kvl_dtype_name(in.weight_dtype), e);
    free(want);
    kvl_session *c = NULL;
    CHECK_OK(kvl_session_new(m, NULL, &c, &err), &err);
    if (c) {
        CHECK_OK(kvl_session_forward(c, ids, T, lc, 1, &err), &err);
        e = kvt_rel_err(lg, lc, (size_t)T * in.vocab_size);
        CHECK(e < tol, "%s: logits vs CPU rel err %g", name, e);
        printf("%s: logits vs CPU rel err %.3g\n", name, e);
        kvl_session_free(c);
    }
    kvl_cache *exported = NULL;
    CHECK_OK(kvl_cuda_session_export(g, &exported, &err), &err);
    if (exported)
        check_kv(name, exported, &ref, T, tol);
    /* split prompt: last logits equal the single call's */
    if (T >= 2) {
        const int32_t h = T / 2;
        kvl_cuda_session_reset(g);
        CHECK_OK(kvl_cuda_forward(g, ids, pos, h, NULL, 0, &err), &err);
        CHECK_OK(kvl_cuda_forward(g, ids + h, pos + h, T - h, lc, 0, &err), &err);
        e = kvt_rel_err(lc, lg + (size_t)(T - 1) * in.vocab_size, (size_t)in.vocab_size);
        /* The halves take other product paths (matvec below 9 rows, cuBLAS
         * with BF16 operands above), so BF16 models differ by their rounding. */
        CHECK(e < self_tol, "%s: split prompt rel err %g", name, e);
    }
    /* export -> import into a new session -> the same continuation */
    if (exported && T >= 2) {
        kvl_cuda_session *g2 = NULL;
        CHECK_OK(kvl_cuda_session_new(gm, 0, &g2, &err), &err);
        kvl_cache *prefix = NULL;
        CHECK_OK(kvl_cache_slice(exported, 0, in.n_layers, 0, T - 1, &prefix, &err), &err);
        if (g2 && prefix) {
            CHECK_OK(kvl_cuda_session_import(g2, prefix, &err), &err);
            CHECK_OK(kvl_cuda_forward(g2, ids + T - 1, pos + T - 1, 1, lc, 0, &err), &err);
            e = kvt_rel_err(lc, lg + (size_t)(T - 1) * in.vocab_size, (size_t)in.vocab_size);
            CHECK(e < self_tol, "%s: imported cache continues with rel err %g", name, e);
        }
        kvl_cache_free(prefix);
        kvl_cuda_session_free(g2);
    }
    kvl_cache_free(exported);
    if (greedy_steps > 0)
        check_greedy(name, m, g, ids, T, greedy_steps);
done:
    free(lg), free(lc), free(pos), free(ids);
    kvl_cuda_session_free(g);
    kvl_cuda_model_free(gm);
    kvl_model_free(m);
    kvl_st_close(&ref);
}

int main(void)
{
    if (kvl_cuda_device_count() == 0)
        return kvt_skip("no CUDA device");
    static const char *const fixtures[] = {"llama_gqa_f32", "llama3_scaled_bf16",
                                           "llama_linear_f16", "qwen2_bias_bf16",
                                           "qwen3_qknorm_f32_sharded"};
    char mdir[512], ref[512];
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        snprintf(mdir, sizeof mdir, "%s", kvt_source_path("tests/fixtures"));
        snprintf(mdir + strlen(mdir), sizeof mdir - strlen(mdir), "/%s", fixtures[i]);
        snprintf(ref, sizeof ref, "%s/reference.safetensors", mdir);
        check_model(fixtures[i], mdir, ref, 0);
    }
    static const char *const demo[] = {"demo-receiver", "demo-sharer"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(mdir, sizeof mdir, "%s", kvt_source_path("models"));
        snprintf(mdir + strlen(mdir), sizeof mdir - strlen(mdir), "/%s", demo[i]);
        snprintf(ref, sizeof ref, "%s", kvt_source_path("tests/fixtures/demo"));
        snprintf(ref + strlen(ref), sizeof ref - strlen(ref), "/%s.reference.safetensors",
                 demo[i]);
        check_model(demo[i], mdir, ref, 64);
    }
    return kvt_finish();
}
#else
int main(void)
{
    return kvt_skip("built without CUDA (no nvcc / cuBLAS found)");
}
#endif
