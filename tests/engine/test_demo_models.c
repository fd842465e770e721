/*
 * The shipped demo models against transformers: for each
 * tests/fixtures/demo/<name>.reference.safetensors (written by
 * tests/reference/make_demo_reference.py: transformers in fp32, eager
 * attention, from the stored BF16 weights) whose model folder
 * models/<name>/ exists, one forward over the reference prompt must give
 * the reference logits and every layer's K/V within 1e-4 relative, and
 * greedy decoding must pick the same 16 tokens with each step's logits
 * within 1e-4.
 */
#include "test_util.h"

#include "model/safetensors.h"

#include <stdlib.h>
#include <string.h>

#define TOL 1e-4
static const char *const names[] = {"demo-receiver", "demo-sharer"};

static const kvl_st_tensor *need(const kvl_st_file *f, const char *name)
{
    const kvl_st_tensor *t = kvl_st_find(f, name);
    CHECK(t != NULL, "reference tensor %s present", name);
    return t;
}

/* fp32 copy of a reference tensor (the file may leave it unaligned). */
static float *f32_of(const kvl_st_tensor *t)
{
    float *p = malloc(t->nbytes ? t->nbytes : 1);
    if (p)
        memcpy(p, t->data, t->nbytes);
    return p;
}

static void check_kv(kvl_session *s, const kvl_st_file *ref, int32_t layers,
                     int32_t n_kv, int32_t T, int32_t hd)
{
    float *got = malloc(sizeof(float) * (size_t)n_kv * T * hd);
    kvl_error err;
    for (int32_t l = 0; l < layers && got; l++)
        for (int w = 0; w < 2; w++) {
            char name[64];
            snprintf(name, sizeof name, "layers.%d.%c", (int)l, w ? 'v' : 'k');
            const kvl_st_tensor *t = need(ref, name);
            if (!t)
                continue;
            for (int32_t h = 0; h < n_kv; h++)
                CHECK_OK(kvl_cache_read(kvl_session_cache(s), w ? KVL_V : KVL_K, l, h, 0, T,
                                        got + (size_t)h * T * hd, &err), &err);
            float *want = f32_of(t);
            double e = want ? kvt_rel_err(got, want, (size_t)n_kv * T * hd) : 1.0;
            CHECK(e < TOL, "%s rel err %g", name, e);
            free(want);
        }
    free(got);
}

static void check_model(const char *name)
{
    char model_dir[256], ref_path[256];
    snprintf(model_dir, sizeof model_dir, "models/%s", name);
    snprintf(ref_path, sizeof ref_path, "tests/fixtures/demo/%s.reference.safetensors", name);
    const char *mpath = kvt_source_path(model_dir), *rpath = kvt_source_path(ref_path);
    if (!kvt_file_exists(rpath) || !kvt_file_exists(mpath)) {
        printf("%s: no model or reference yet, not checked\n", name);
        return;
    }
    kvl_error err;
    kvl_st_file ref;
    kvl_model *m = NULL;
    kvl_session *s = NULL;
    CHECK_OK(kvl_st_open(rpath, &ref, &err), &err);
    CHECK_OK(kvl_model_load(mpath, NULL, &m, &err), &err);
    if (m)
        CHECK_OK(kvl_session_new(m, NULL, &s, &err), &err);
    const kvl_st_tensor *ids = need(&ref, "input_ids"), *lg = need(&ref, "logits");
    const kvl_st_tensor *gi = need(&ref, "greedy_ids"), *gl = need(&ref, "greedy_logits");
    if (!s || !ids || !lg || !gi || !gl)
        goto out;
    kvl_model_info info;
    kvl_model_get_info(m, &info);
    const int32_t T = (int32_t)ids->shape[0], V = info.vocab_size;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)T);
    int32_t *greedy = malloc(gi->nbytes);
    float *logits = malloc(sizeof(float) * (size_t)T * V);
    float *want = f32_of(lg), *want_g = f32_of(gl);
    memcpy(tok, ids->data, sizeof(int32_t) * (size_t)T);
    memcpy(greedy, gi->data, gi->nbytes);
    CHECK(lg->shape[1] == V, "vocab %d vs reference %d", (int)V, (int)lg->shape[1]);
    CHECK_OK(kvl_session_forward(s, tok, T, logits, 1, &err), &err);
    double e = kvt_rel_err(logits, want, (size_t)T * V);
    CHECK(e < TOL, "%s: prompt logits rel err %g", name, e);
    check_kv(s, &ref, info.n_layers, info.n_kv_heads, T, info.head_dim);
    kvl_sampler_options so = {0.0f, 0, 1.0f, 0};
    kvl_sampler *sampler = NULL;
    CHECK_OK(kvl_sampler_new(&so, V, &sampler, &err), &err);
    const float *row = logits + (size_t)(T - 1) * V;
    int same = 1;
    for (int64_t i = 0; i < gi->shape[0] && sampler; i++) {
        double ge = kvt_rel_err(row, want_g + (size_t)i * V, (size_t)V);
        CHECK(ge < TOL, "%s: greedy step %d logits rel err %g", name, (int)i, ge);
        int32_t next = kvl_sampler_sample(sampler, row);
        same &= next == greedy[i];
        if (next != greedy[i])
            break;
        CHECK_OK(kvl_session_forward(s, &next, 1, logits, 0, &err), &err);
        row = logits;
    }
    CHECK(same, "%s: 16 greedy ids identical to transformers", name);
    printf("%s: prompt logits rel err %.2e, greedy %s\n", name, e, same ? "identical" : "DIFFERENT");
    kvl_sampler_free(sampler);
    free(tok);
    free(greedy);
    free(logits);
    free(want);
    free(want_g);
out:
    kvl_session_free(s);
    kvl_model_free(m);
    kvl_st_close(&ref);
}

int main(void)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        check_model(names[i]);
    if (kvt_passed + kvt_failed == 0)
        return kvt_skip("no demo model with a reference fixture yet");
    return kvt_finish();
}
