/*
 * Features of a KV cache and of a generation (src/experiments/features.c)
 * against an independent NumPy computation.
 *
 * tests/reference/make_feature_fixtures.py runs its own float64 forward of
 * two transformers fixtures (llama_gqa_f32: GQA; qwen3_qknorm_f32_sharded:
 * q/k-norm, head_dim 32, sharded), checked inside the script against the
 * transformers logits and K/V stored beside the checkpoints, and writes
 * tests/fixtures/experiments/features_reference.json: the 12 tokens run, the
 * cache features over three token ranges (numpy.linalg.svd for the spectra),
 * the attention entropies of the tokens run in calls of 5, 6 and 1 (per call
 * and over all rows) and the generation features of 12 steps.
 *
 * Here the same tokens go through a kvlab session (keep_activations = 1) in
 * the same calls, and every feature must agree within 1e-4 relative: kvlab
 * computes the model in fp32 (K, V, q and logits carry ~1e-6 relative
 * error against the float64 reference; the features are smooth functions of
 * them), so 1e-4 leaves a wide margin without hiding a wrong formula.
 * Also: hand-derived generation values (uniform logits: entropy log V,
 * perplexity V; a -inf logit is a zero-probability token), the flat vector's
 * names / order / count, and refusals of bad input with clear messages.
 */
#include "test_util.h"

#include "experiments/features.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4
#define ABS_FLOOR 1e-9 /* for reference values that are exactly 0 */
#define MAX_TOKENS 64

static const char *const cache_keys[8] = {
    "k_norm_mean", "k_norm_var",  "v_norm_mean",    "v_norm_var",
    "k_eff_rank",  "v_eff_rank",  "k_spec_entropy", "v_spec_entropy"};

static int close_to(double got, double want)
{
    return fabs(got - want) <= TOL * fabs(want) + ABS_FLOOR;
}

static double *cache_field(kvl_features *f, int which)
{
    double *arrays[8] = {f->k_norm_mean, f->k_norm_var,  f->v_norm_mean,
                         f->v_norm_var,  f->k_eff_rank,  f->v_eff_rank,
                         f->k_spec_entropy, f->v_spec_entropy};
    return arrays[which];
}

static double num(const json_t *j) { return json_number_value(j); }

/* [n_layers][n_heads] JSON array against f->attn_entropy. */
static void check_attention(const char *model, const char *what,
                            const kvl_features *f, const json_t *want)
{
    CHECK(json_array_size(want) == (size_t)f->n_layers, "%s %s: layers", model, what);
    for (int32_t l = 0; l < f->n_layers; l++)
        for (int32_t h = 0; h < f->n_heads; h++) {
            double w = num(json_array_get(json_array_get(want, (size_t)l), (size_t)h));
            double g = f->attn_entropy[l * f->n_heads + h];
            CHECK(close_to(g, w), "%s %s: L%d H%d attention entropy %.9g, NumPy %.9g",
                  model, what, (int)l, (int)h, g, w);
        }
}

static void check_cache_range(const char *model, kvl_model *m,
                              const kvl_cache *cache, const json_t *want)
{
    kvl_error err;
    kvl_features f;
    const int32_t t0 = (int32_t)json_integer_value(json_object_get(want, "t0"));
    const int32_t t1 = (int32_t)json_integer_value(json_object_get(want, "t1"));
    CHECK_OK(kvl_features_init(&f, m, &err), &err);
    CHECK(isnan(f.k_eff_rank[0]), "cache features are NaN until measured");
    CHECK_OK(kvl_features_add_cache(&f, cache, t0, t1, &err), &err);
    for (int i = 0; i < 8; i++) {
        const json_t *arr = json_object_get(want, cache_keys[i]);
        CHECK(json_array_size(arr) == (size_t)f.n_layers, "%s: %s length", model,
              cache_keys[i]);
        for (int32_t l = 0; l < f.n_layers; l++) {
            double w = num(json_array_get(arr, (size_t)l));
            double g = cache_field(&f, i)[l];
            CHECK(close_to(g, w), "%s [%d, %d) L%d %s: %.9g, NumPy %.9g", model,
                  (int)t0, (int)t1, (int)l, cache_keys[i], g, w);
        }
    }
    kvl_features_free(&f);
}

/* Runs the fixture's tokens in its calls; checks attention per call (fresh
 * features) and accumulated (total), then the generation steps. */
static void run_calls(const char *model, kvl_model *m, kvl_session *s,
                      const json_t *entry, kvl_features *total, float *logits,
                      int32_t vocab)
{
    kvl_error err;
    const json_t *toks = json_object_get(entry, "tokens");
    const json_t *calls = json_object_get(entry, "calls");
    int32_t tokens[MAX_TOKENS];
    const size_t n_tok = json_array_size(toks);
    CHECK(n_tok > 0 && n_tok <= MAX_TOKENS, "%s: token count", model);
    if (n_tok == 0 || n_tok > MAX_TOKENS)
        return;
    for (size_t i = 0; i < n_tok; i++)
        tokens[i] = (int32_t)json_integer_value(json_array_get(toks, i));
    int32_t start = 0;
    for (size_t c = 0; c < json_array_size(calls); c++) {
        const int32_t n = (int32_t)json_integer_value(json_array_get(calls, c));
        CHECK_OK(kvl_session_forward(s, tokens + start, n,
                                     logits + (size_t)start * vocab, 1, &err), &err);
        CHECK_OK(kvl_features_add_attention(total, s, &err), &err);
        kvl_features one;
        CHECK_OK(kvl_features_init(&one, m, &err), &err);
        CHECK_OK(kvl_features_add_attention(&one, s, &err), &err);
        CHECK(one.attn_rows == n, "%s call %zu: %lld rows", model, c,
              (long long)one.attn_rows);
        kvl_features_finish(&one);
        char what[32];
        snprintf(what, sizeof what, "call %zu", c);
        check_attention(model, what,
                        &one, json_array_get(json_object_get(entry, "attn_entropy_calls"), c));
        kvl_features_free(&one);
        start += n;
    }
    CHECK(start == (int32_t)n_tok, "%s: calls cover the tokens", model);
    const json_t *gen = json_object_get(entry, "generation");
    const json_t *chosen = json_object_get(gen, "chosen");
    CHECK(json_array_size(chosen) == n_tok, "%s: one chosen token per row", model);
    for (size_t r = 0; r < json_array_size(chosen) && r < n_tok; r++)
        kvl_features_add_step(total, logits + r * (size_t)vocab, vocab,
                              (int32_t)json_integer_value(json_array_get(chosen, r)));
}

static void check_flatten(const char *model, kvl_features *f)
{
    kvl_error err;
    const int32_t n = kvl_features_count(f);
    CHECK(n == f->n_layers * (8 + f->n_heads) + 2, "%s: count %d", model, (int)n);
    double *out = calloc((size_t)n, sizeof *out);
    const char **names = calloc((size_t)n, sizeof *names);
    char buf[4096];
    if (!out || !names)
        goto done;
    /* Too small a buffer: refused, nothing written. */
    kvl_status st = kvl_features_flatten(f, out, names, buf, 16, &err);
    CHECK(st == KVL_ERR_ARG && strstr(err.message, "bytes") && !names[0],
          "small name buffer: %s %s", kvl_status_name(st), err.message);
    CHECK_OK(kvl_features_flatten(f, out, names, buf, sizeof buf, &err), &err);
    CHECK_OK(kvl_features_flatten(f, out, NULL, NULL, 0, &err), &err);
    const int32_t per = 8 + f->n_heads;
    for (int32_t l = 0; l < f->n_layers; l++) {
        for (int i = 0; i < 8; i++) {
            char want[64];
            snprintf(want, sizeof want, "L%d.%s", (int)l, cache_keys[i]);
            CHECK(strcmp(names[l * per + i], want) == 0, "name %d: %s, want %s",
                  (int)(l * per + i), names[l * per + i], want);
            CHECK(out[l * per + i] == cache_field(f, i)[l], "%s value", want);
        }
        for (int32_t h = 0; h < f->n_heads; h++) {
            char want[64];
            snprintf(want, sizeof want, "L%d.H%d.attn_entropy", (int)l, (int)h);
            CHECK(strcmp(names[l * per + 8 + h], want) == 0, "name: %s, want %s",
                  names[l * per + 8 + h], want);
            CHECK(out[l * per + 8 + h] == f->attn_entropy[l * f->n_heads + h],
                  "%s value", want);
        }
    }
    CHECK(strcmp(names[n - 2], "gen.next_token_entropy") == 0, "%s", names[n - 2]);
    CHECK(strcmp(names[n - 1], "gen.self_perplexity") == 0, "%s", names[n - 1]);
    CHECK(out[n - 2] == f->next_token_entropy && out[n - 1] == f->self_perplexity,
          "generation values");
    int all_finite = 1;
    for (int32_t i = 0; i < n; i++)
        all_finite &= isfinite(out[i]);
    CHECK(all_finite, "%s: every feature measured", model);
done:
    free(out);
    free(names);
}

static void test_model(const json_t *entry)
{
    kvl_error err;
    const char *model = json_string_value(json_object_get(entry, "name"));
    const char *folder = json_string_value(json_object_get(entry, "folder"));
    kvl_model *m = NULL;
    kvl_session *s = NULL;
    float *logits = NULL;
    kvl_features total = {0};
    CHECK_OK(kvl_model_load(kvt_source_path(folder), NULL, &m, &err), &err);
    if (!m)
        return;
    kvl_model_info info;
    kvl_model_get_info(m, &info);
    const int32_t vocab = info.vocab_size;
    kvl_session_options opt = {.n_threads = 2, .keep_activations = 1};
    CHECK_OK(kvl_session_new(m, &opt, &s, &err), &err);
    logits = malloc(sizeof(float) * MAX_TOKENS * (size_t)vocab);
    CHECK_OK(kvl_features_init(&total, m, &err), &err);
    if (!s || !logits || !total.attn_entropy)
        goto out;
    CHECK(total.n_layers == json_integer_value(json_object_get(entry, "n_layers")) &&
              total.n_heads == json_integer_value(json_object_get(entry, "n_heads")) &&
              total.n_kv_heads == json_integer_value(json_object_get(entry, "n_kv_heads")) &&
              total.head_dim == json_integer_value(json_object_get(entry, "head_dim")),
          "%s: geometry", model);
    run_calls(model, m, s, entry, &total, logits, vocab);
    const kvl_cache *cache = kvl_session_cache(s);
    const json_t *ranges = json_object_get(entry, "cache");
    for (size_t i = 0; i < json_array_size(ranges); i++)
        check_cache_range(model, m, cache, json_array_get(ranges, i));
    CHECK_OK(kvl_features_add_cache(&total, cache, 0, kvl_cache_n_tokens(cache), &err),
             &err);
    kvl_features_finish(&total);
    check_attention(model, "all calls", &total, json_object_get(entry, "attn_entropy"));
    CHECK(total.attn_rows == kvl_cache_n_tokens(cache), "%s: rows", model);
    const json_t *gen = json_object_get(entry, "generation");
    CHECK(total.n_generated == (int64_t)json_array_size(json_object_get(gen, "chosen")),
          "%s: steps", model);
    double w = num(json_object_get(gen, "next_token_entropy"));
    CHECK(close_to(total.next_token_entropy, w), "%s: next-token entropy %.9g, NumPy %.9g",
          model, total.next_token_entropy, w);
    w = num(json_object_get(gen, "self_nll"));
    CHECK(close_to(total.self_nll, w), "%s: nll %.9g, NumPy %.9g", model, total.self_nll, w);
    w = num(json_object_get(gen, "self_perplexity"));
    CHECK(close_to(total.self_perplexity, w), "%s: perplexity %.9g, NumPy %.9g", model,
          total.self_perplexity, w);
    check_flatten(model, &total);
out:
    kvl_features_free(&total);
    free(logits);
    kvl_session_free(s);
    kvl_model_free(m);
}

/* Hand-derived: uniform logits give entropy log V and perplexity V; a -inf
 * logit is a token of probability 0; invalid steps poison with NaN. */
static void test_steps_by_hand(kvl_model *m)
{
    kvl_error err;
    kvl_features f;
    float logits[8] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    CHECK_OK(kvl_features_init(&f, m, &err), &err);
    kvl_features_add_step(&f, logits, 8, 3);
    logits[7] = -INFINITY; /* now uniform over 7 */
    kvl_features_add_step(&f, logits, 8, 0);
    kvl_features_finish(&f);
    CHECK(fabs(f.next_token_entropy - 0.5 * (log(8.0) + log(7.0))) < 1e-12,
          "uniform entropy %.15g", f.next_token_entropy);
    CHECK(fabs(f.self_perplexity - sqrt(56.0)) < 1e-10, "uniform perplexity %.15g",
          f.self_perplexity);
    CHECK(isnan(f.attn_entropy[0]), "no attention rows: NaN mean");
    kvl_features_free(&f);

    CHECK_OK(kvl_features_init(&f, m, &err), &err);
    kvl_features_finish(&f);
    CHECK(isnan(f.next_token_entropy) && isnan(f.self_perplexity),
          "no generated token: NaN means");
    kvl_features_free(&f);

    CHECK_OK(kvl_features_init(&f, m, &err), &err);
    kvl_features_add_step(&f, logits, 8, 7); /* chosen has p = 0 */
    kvl_features_finish(&f);
    CHECK(isinf(f.self_perplexity) && isfinite(f.next_token_entropy),
          "a p = 0 token: infinite perplexity, finite entropy");
    kvl_features_free(&f);

    const float nan_logits[2] = {0.0f, NAN};
    const float ok_logits[2] = {0.0f, 1.0f};
    const struct { const float *l; int32_t v, c; } bad[] = {
        {NULL, 2, 0}, {ok_logits, 0, 0}, {ok_logits, 2, 2}, {ok_logits, 2, -1},
        {nan_logits, 2, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_OK(kvl_features_init(&f, m, &err), &err);
        kvl_features_add_step(&f, ok_logits, 2, 1);
        kvl_features_add_step(&f, bad[i].l, bad[i].v, bad[i].c);
        kvl_features_finish(&f);
        CHECK(f.n_generated == 2 && isnan(f.next_token_entropy) &&
                  isnan(f.self_perplexity), "bad step %zu poisons with NaN", i);
        kvl_features_free(&f);
    }
    kvl_features_add_step(NULL, ok_logits, 2, 0); /* no crash */
    kvl_features_finish(NULL);
}

static void expect(kvl_status got, kvl_status want, const kvl_error *err,
                   const char *needle, const char *what)
{
    CHECK(got == want && strstr(err->message, needle) != NULL,
          "%s: got %s \"%s\", want %s mentioning \"%s\"", what,
          kvl_status_name(got), err->message, kvl_status_name(want), needle);
}

static void test_bad_input(kvl_model *m, kvl_model *other)
{
    kvl_error err;
    kvl_features f, zero = {0};
    kvl_session *s = NULL, *plain = NULL;
    const int32_t toks[4] = {3, 9, 27, 81};
    expect(kvl_features_init(NULL, m, &err), KVL_ERR_ARG, &err, "required", "init NULL f");
    expect(kvl_features_init(&f, NULL, &err), KVL_ERR_ARG, &err, "required",
           "init NULL model");
    CHECK_OK(kvl_features_init(&f, m, &err), &err);
    kvl_session_options opt = {.n_threads = 2, .keep_activations = 1};
    CHECK_OK(kvl_session_new(m, &opt, &s, &err), &err);
    CHECK_OK(kvl_session_new(m, NULL, &plain, &err), &err);
    if (!s || !plain)
        goto out;
    expect(kvl_features_add_attention(&f, s, &err), KVL_ERR_ARG, &err,
           "no forward call", "attention before any forward");
    CHECK_OK(kvl_session_forward(s, toks, 4, NULL, 0, &err), &err);
    CHECK_OK(kvl_session_forward(plain, toks, 4, NULL, 0, &err), &err);
    const kvl_cache *c = kvl_session_cache(s);
    expect(kvl_features_add_cache(&f, c, 2, 2, &err), KVL_ERR_RANGE, &err, "[2, 2)",
           "t0 == t1");
    expect(kvl_features_add_cache(&f, c, 3, 1, &err), KVL_ERR_RANGE, &err, "[3, 1)",
           "t0 > t1");
    expect(kvl_features_add_cache(&f, c, 0, 5, &err), KVL_ERR_RANGE, &err, "[0, 4)",
           "t1 > n_tokens");
    expect(kvl_features_add_cache(&f, c, -1, 2, &err), KVL_ERR_RANGE, &err, "[-1, 2)",
           "t0 < 0");
    expect(kvl_features_add_cache(&f, NULL, 0, 1, &err), KVL_ERR_ARG, &err, "cache is NULL",
           "NULL cache");
    expect(kvl_features_add_cache(NULL, c, 0, 1, &err), KVL_ERR_ARG, &err, "NULL",
           "NULL features");
    expect(kvl_features_add_cache(&zero, c, 0, 1, &err), KVL_ERR_ARG, &err,
           "not initialised", "uninitialised features");
    expect(kvl_features_add_attention(&f, plain, &err), KVL_ERR_ARG, &err,
           "keep_activations", "session without keep_activations");
    expect(kvl_features_add_attention(&f, NULL, &err), KVL_ERR_ARG, &err,
           "session is NULL", "NULL session");
    expect(kvl_features_add_attention(&zero, s, &err), KVL_ERR_ARG, &err,
           "not initialised", "attention into uninitialised features");
    CHECK(f.attn_rows == 0, "refusals accumulate nothing");
    double out[4];
    expect(kvl_features_flatten(&f, NULL, NULL, NULL, 0, &err), KVL_ERR_ARG, &err,
           "out is NULL", "flatten NULL out");
    expect(kvl_features_flatten(&zero, out, NULL, NULL, 0, &err), KVL_ERR_ARG, &err,
           "not initialised", "flatten uninitialised");
    const char *names[1];
    expect(kvl_features_flatten(&f, out, names, NULL, 0, &err), KVL_ERR_ARG, &err,
           "bytes", "flatten names without a buffer");
    CHECK(kvl_features_count(NULL) == 0 && kvl_features_count(&zero) == 0, "count of nothing");
    if (other) { /* features of another geometry */
        kvl_features g;
        CHECK_OK(kvl_features_init(&g, other, &err), &err);
        expect(kvl_features_add_cache(&g, c, 0, 1, &err), KVL_ERR_MISMATCH, &err,
               "geometry", "cache of another model");
        expect(kvl_features_add_attention(&g, s, &err), KVL_ERR_MISMATCH, &err,
               "session's model", "session of another model");
        kvl_features_free(&g);
    }
    kvl_session_reset(s);
    expect(kvl_features_add_attention(&f, s, &err), KVL_ERR_ARG, &err, "no forward call",
           "attention after reset");
out:
    kvl_features_free(&f);
    kvl_features_free(&f); /* twice is harmless */
    kvl_features_free(NULL);
    kvl_session_free(s);
    kvl_session_free(plain);
}

int main(void)
{
    const char *path = kvt_source_path("tests/fixtures/experiments/features_reference.json");
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    CHECK(doc != NULL, "%s: %s (line %d)", path, jerr.text, jerr.line);
    if (!doc)
        return kvt_finish();
    const json_t *models = json_object_get(doc, "models");
    CHECK(json_array_size(models) == 2, "two reference models");
    for (size_t i = 0; i < json_array_size(models); i++)
        test_model(json_array_get(models, i));

    kvl_error err;
    kvl_model *m = NULL, *other = NULL;
    CHECK_OK(kvl_model_load(kvt_source_path("tests/fixtures/llama_gqa_f32"), NULL, &m, &err),
             &err);
    CHECK_OK(kvl_model_load(kvt_source_path("tests/fixtures/qwen3_qknorm_f32_sharded"), NULL,
                            &other, &err), &err);
    if (m) {
        test_steps_by_hand(m);
        test_bad_input(m, other);
    }
    kvl_model_free(m);
    kvl_model_free(other);
    json_decref(doc);
    return kvt_finish();
}
