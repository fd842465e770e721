/*
 * kvl_session_decode and kvl_batch_decode against transformers.  For each
 * demo model with a reference fixture (tests/fixtures/demo, written by
 * tests/reference/make_demo_reference.py: transformers in fp32), and for
 * the tiny random checkpoints of tests/fixtures (qwen2_bias_bf16: q/k/v
 * biases; llama3_scaled_bf16; llama_linear_f16; llama_gqa_f32; written by
 * tests/reference/make_fixtures.py), N = 23
 * sessions start from prefixes of the reference prompt (session i holds
 * the first T - k_i tokens, k_i = i mod T) and are stepped together: each
 * takes the rest of the prompt, then the reference's greedy ids, so that
 * once it has seen the whole prompt its every step must predict the
 * reference's next greedy id and give the reference's logits.  Sessions
 * drop out as they finish, so the batch shrinks step by step (batch sizes
 * 23 .. 1, the GPU step's 8-row chunks and graph per size).
 * Bounds: 1e-4 relative on the CPU (fp32 throughout, as
 * test_demo_models.c); on a GPU 1e-2 for BF16 weights (cuBLAS with BF16
 * operands in the prefill and in batches of more than 8, BF16 tensor-core
 * prefill attention) and 1e-3 for F16 / F32 weights, as
 * tests/engine/test_cuda_forward.c bounds them.  Greedy ids identical on
 * the CPU, and on the GPU for the trained demo models (the random tiny
 * checkpoints have near-ties that BF16 rounding may flip: their agreement
 * is printed).  Runs on the CPU everywhere and also on the GPU when one exists.
 * Also: kvl_session_decode's `next` equals the argmax of its logits and
 * does not depend on whether logits are asked for; argument errors.
 */
#include "test_util.h"

#include "model/safetensors.h"

#include <stdlib.h>
#include <string.h>

#define N_SESS 23

typedef struct model_case {
    const char *dir, *ref; /* model folder, reference fixture        */
    kvl_dtype dtype;       /* the weights'                          */
    int trained;           /* greedy ids must agree on a GPU too    */
} model_case;

static const model_case cases[] = {
    {"models/demo-receiver", "tests/fixtures/demo/demo-receiver.reference.safetensors",
     KVL_DTYPE_BF16, 1},
    {"models/demo-sharer", "tests/fixtures/demo/demo-sharer.reference.safetensors",
     KVL_DTYPE_BF16, 1},
    {"tests/fixtures/qwen2_bias_bf16", "tests/fixtures/qwen2_bias_bf16/reference.safetensors",
     KVL_DTYPE_BF16, 0},
    {"tests/fixtures/llama3_scaled_bf16",
     "tests/fixtures/llama3_scaled_bf16/reference.safetensors", KVL_DTYPE_BF16, 0},
    {"tests/fixtures/llama_linear_f16", "tests/fixtures/llama_linear_f16/reference.safetensors",
     KVL_DTYPE_F16, 0},
    {"tests/fixtures/llama_gqa_f32", "tests/fixtures/llama_gqa_f32/reference.safetensors",
     KVL_DTYPE_F32, 0},
};

typedef struct ref {
    int32_t T, G, V;
    int32_t *ids, *greedy;   /* [T], [G]       */
    float *logits, *glogits; /* [T][V], [G][V] */
} ref;

static void ref_free(ref *r)
{
    free(r->ids);
    free(r->greedy);
    free(r->logits);
    free(r->glogits);
}

static void *copy_of(const kvl_st_tensor *t)
{
    void *p = t ? malloc(t->nbytes ? t->nbytes : 1) : NULL;
    if (p)
        memcpy(p, t->data, t->nbytes);
    return p;
}

static int ref_load(const char *path, ref *r)
{
    memset(r, 0, sizeof *r);
    kvl_st_file f;
    kvl_error err;
    if (kvl_st_open(path, &f, &err) != KVL_OK)
        return -1;
    const kvl_st_tensor *ids = kvl_st_find(&f, "input_ids"), *lg = kvl_st_find(&f, "logits");
    const kvl_st_tensor *gi = kvl_st_find(&f, "greedy_ids"),
                        *gl = kvl_st_find(&f, "greedy_logits");
    if (ids && lg && gi && gl) {
        r->T = (int32_t)ids->shape[0];
        r->G = (int32_t)gi->shape[0];
        r->V = (int32_t)lg->shape[1];
        r->ids = copy_of(ids);
        r->greedy = copy_of(gi);
        r->logits = copy_of(lg);
        r->glogits = copy_of(gl);
    }
    kvl_st_close(&f);
    return r->ids && r->greedy && r->logits && r->glogits ? 0 : -1;
}

/* The reference logits that follow token j of prompt + greedy ids
 * (j < T: the prompt's row j; else the greedy step j - T + 1). */
static const float *want_after(const ref *r, int32_t j)
{
    return j < r->T - 1 ? r->logits + (size_t)j * r->V
                        : r->glogits + (size_t)(j - (r->T - 1)) * r->V;
}

/* Token j of prompt + greedy ids. */
static int32_t token_at(const ref *r, int32_t j)
{
    return j < r->T ? r->ids[j] : r->greedy[j - r->T];
}

/* The batched walk described at the top. */
static void walk(kvl_model *m, const ref *r, const char *what, double tol, int need_ids)
{
    kvl_error err = {0};
    kvl_session *ss[N_SESS] = {0}, *act[N_SESS];
    int32_t seen[N_SESS], tok[N_SESS], next[N_SESS], idx[N_SESS];
    float *lg = malloc(sizeof(float) * (size_t)N_SESS * r->V);
    kvl_batch *b = NULL;
    CHECK_OK(kvl_batch_new(m, N_SESS, &b, &err), &err);
    for (int i = 0; i < N_SESS; i++) {
        CHECK_OK(kvl_session_new(m, NULL, &ss[i], &err), &err);
        seen[i] = r->T - i % r->T;
        if (ss[i])
            CHECK_OK(kvl_session_forward(ss[i], r->ids, seen[i], NULL, 0, &err), &err);
    }
    const int32_t end = r->T - 1 + r->G; /* last token whose successor is known */
    double worst = 0;
    int ids_ok = 1, steps = 0, max_n = 0, agree = 0, total = 0;
    while (b && lg && kvt_failed == 0) {
        int n = 0;
        for (int i = 0; i < N_SESS; i++)
            if (seen[i] < end) {
                act[n] = ss[i];
                idx[n] = i;
                tok[n] = token_at(r, seen[i]);
                n++;
            }
        if (n == 0)
            break;
        max_n = n > max_n ? n : max_n;
        CHECK_OK(kvl_batch_decode(b, act, n, tok, lg, next, &err), &err);
        for (int a = 0; a < n; a++) {
            const int32_t j = seen[idx[a]]; /* the token just taken */
            const float *row = lg + (size_t)a * r->V;
            const double e = kvt_rel_err(row, want_after(r, j), (size_t)r->V);
            worst = e > worst ? e : worst;
            CHECK(next[a] == kvt_argmax(row, r->V), "%s: next is the argmax of its row", what);
            if (j >= r->T - 1) {
                ids_ok &= next[a] == r->greedy[j - (r->T - 1)];
                agree += next[a] == r->greedy[j - (r->T - 1)];
                total++;
            }
            seen[idx[a]]++;
        }
        steps++;
    }
    CHECK(worst < tol, "%s: batched logits vs transformers, worst rel err %g (bound %g)", what,
          worst, tol);
    if (need_ids)
        CHECK(ids_ok, "%s: every session's greedy ids are transformers'", what);
    CHECK(max_n == N_SESS, "%s: a batch of %d sessions ran", what, max_n);
    printf("%s: %d steps of up to %d sessions, worst logits rel err %.2e, greedy ids %d/%d "
           "as transformers\n",
           what, steps, max_n, worst, agree, total);
    kvl_batch_free(b);
    for (int i = 0; i < N_SESS; i++)
        kvl_session_free(ss[i]);
    free(lg);
}

static void decode_api(kvl_model *m, const ref *r, const char *what, int need_ids)
{
    kvl_error err = {0};
    kvl_session *a = NULL, *c = NULL;
    CHECK_OK(kvl_session_new(m, NULL, &a, &err), &err);
    CHECK_OK(kvl_session_new(m, NULL, &c, &err), &err);
    float *lg = malloc(sizeof(float) * (size_t)r->V);
    if (!a || !c || !lg)
        goto out;
    CHECK_OK(kvl_session_forward(a, r->ids, r->T - 1, NULL, 0, &err), &err);
    CHECK_OK(kvl_session_forward(c, r->ids, r->T - 1, NULL, 0, &err), &err);
    int32_t na = -1, nc = -1;
    CHECK_OK(kvl_session_decode(a, r->ids[r->T - 1], lg, &na, &err), &err);
    CHECK_OK(kvl_session_decode(c, r->ids[r->T - 1], NULL, &nc, &err), &err);
    CHECK(na == kvt_argmax(lg, r->V) && na == nc && (na == r->greedy[0] || !need_ids),
          "%s: decode next %d / %d / argmax %d / transformers %d", what, na, nc,
          kvt_argmax(lg, r->V), r->greedy[0]);
    CHECK_OK(kvl_session_decode(a, na, NULL, NULL, &err), &err);
    CHECK(kvl_cache_n_tokens(kvl_session_cache(a)) == r->T + 1, "%s: decode appends", what);
    CHECK(kvl_session_decode(a, r->V, NULL, NULL, &err) == KVL_ERR_RANGE,
          "%s: token outside the vocabulary refused: %s", what, err.message);
    CHECK(kvl_session_decode(NULL, 1, NULL, NULL, &err) == KVL_ERR_ARG, "NULL session refused");
    /* batch argument errors */
    kvl_batch *b = NULL;
    CHECK(kvl_batch_new(NULL, 2, &b, &err) == KVL_ERR_ARG && !b, "batch without a model");
    CHECK(kvl_batch_new(m, 0, &b, &err) == KVL_ERR_RANGE && !b, "batch of 0 refused");
    CHECK_OK(kvl_batch_new(m, 2, &b, &err), &err);
    kvl_session *two[3] = {a, a, c};
    int32_t t2[3] = {1, 2, 3};
    CHECK(kvl_batch_decode(b, two, 2, t2, NULL, NULL, &err) == KVL_ERR_ARG &&
              strstr(err.message, "twice"),
          "the same session twice refused: %s", err.message);
    CHECK(kvl_batch_decode(b, two + 1, 3, t2, NULL, NULL, &err) == KVL_ERR_RANGE,
          "more sessions than the batch holds refused: %s", err.message);
    CHECK(kvl_batch_decode(b, two + 1, 0, t2, NULL, NULL, &err) == KVL_ERR_RANGE,
          "0 sessions refused");
    CHECK(kvl_batch_decode(b, NULL, 1, t2, NULL, NULL, &err) == KVL_ERR_ARG, "NULL sessions");
    kvl_batch_free(b);
out:
    free(lg);
    kvl_session_free(a);
    kvl_session_free(c);
}

static void other_model(void)
{
    const char *pa = kvt_source_path("models/demo-receiver");
    const char *pb = kvt_source_path("models/demo-sharer");
    kvl_error err = {0};
    kvl_model *ma = NULL, *mb = NULL;
    kvl_session *sb = NULL;
    kvl_batch *b = NULL;
    kvl_model_options o = {"cpu"};
    CHECK_OK(kvl_model_load(pa, &o, &ma, &err), &err);
    CHECK_OK(kvl_model_load(pb, &o, &mb, &err), &err);
    if (ma && mb && kvl_batch_new(ma, 1, &b, &err) == KVL_OK &&
        kvl_session_new(mb, NULL, &sb, &err) == KVL_OK) {
        int32_t t = 1;
        CHECK(kvl_batch_decode(b, &sb, 1, &t, NULL, NULL, &err) == KVL_ERR_ARG &&
                  strstr(err.message, "another model"),
              "a session of another model refused: %s", err.message);
    }
    kvl_batch_free(b);
    kvl_session_free(sb);
    kvl_model_free(ma);
    kvl_model_free(mb);
}

static void check_model(const model_case *mc, const char *device)
{
    char what[300];
    snprintf(what, sizeof what, "%s on %s", mc->dir, device);
    const char *mpath = kvt_source_path(mc->dir), *rpath = kvt_source_path(mc->ref);
    ref r;
    if (ref_load(rpath, &r) != 0) {
        printf("%s: no reference fixture, not checked\n", mc->dir);
        ref_free(&r);
        return;
    }
    kvl_error err = {0};
    kvl_model *m = NULL;
    kvl_model_options o = {device};
    CHECK_OK(kvl_model_load(mpath, &o, &m, &err), &err);
    const int cpu = strcmp(device, "cpu") == 0;
    const double tol = cpu ? 1e-4 : mc->dtype == KVL_DTYPE_BF16 ? 1e-2 : 1e-3;
    if (m) {
        walk(m, &r, what, tol, cpu || mc->trained);
        decode_api(m, &r, what, cpu || mc->trained);
    }
    kvl_model_free(m);
    ref_free(&r);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_model(&cases[i], "cpu");
        if (kvl_cuda_device_count() > 0)
            check_model(&cases[i], "cuda");
    }
    if (kvl_cuda_device_count() == 0)
        printf("no CUDA device: the GPU part is not run here\n");
    other_model();
    return kvt_finish();
}
