/*
 * Conformance against Hugging Face transformers.
 *
 * tests/fixtures/ holds tiny random-weight checkpoints written by
 * tests/reference/make_fixtures.py, each with a reference.safetensors that
 * transformers computed in fp32 from the stored weights (eager attention):
 * input_ids [T], logits [T, vocab], layers.{i}.k / .v [n_kv, T, head_dim]
 * (past_key_values after the prompt), greedy_ids [16] and the logits each
 * greedy token was picked from, greedy_logits [16, vocab].  Metadata holds
 * the geometry the model was built with.
 *
 * For every folder listed in tests/fixtures/MANIFEST.txt, through the public
 * API only:
 *  - the model loads and reports the geometry / RoPE it was built with;
 *  - one forward over the prompt: logits within 1e-4 relative (whole [T, V]
 *    and every row), then every layer's K and V in the session cache within
 *    1e-4 relative, with token ids and positions 0..T-1;
 *  - greedy decoding from that session, one token at a time, picks the same
 *    16 tokens, each step's logits within 1e-4 relative;
 *  - the prompt in two calls (5 tokens, then the rest) in a fresh session
 *    gives the reference rows 0..4 and 5..T-1 and the same cache;
 *  - after kvl_session_reset, last-token-only logits equal the last row;
 *  - a folder marked same_as=BASE (the same weights with a transformers 4.x
 *    config.json) loads to the same geometry and RoPE as BASE and gives the
 *    same logits as BASE (1e-6: only float reordering may differ).
 */
#include "test_util.h"

#include "model/safetensors.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4
#define SAME_TOL 1e-6
#define MAX_FIXTURES 32
#define NAME_MAX_LEN 128
#define SPLIT_AT 5

typedef struct fixture_entry {
    char name[NAME_MAX_LEN];
    char same_as[NAME_MAX_LEN]; /* "" when none */
} fixture_entry;

/* What a fixture's engine run produced, for same_as comparisons. */
typedef struct fixture_result {
    char name[NAME_MAX_LEN];
    int loaded;
    kvl_model_info info; /* strings not kept */
    float *logits;       /* [T][V] engine logits of the prompt */
    int32_t n_logits;
} fixture_result;

static fixture_result results[MAX_FIXTURES];
static int n_results;

/* ------------------------------------------------------------------------ */
/* Reference file helpers                                                    */
/* ------------------------------------------------------------------------ */

/* Copies tensor `name` into a new buffer after checking dtype and shape
 * (ndim entries).  NULL (and a recorded failure) when it does not match. */
static void *ref_tensor(const kvl_st_file *f, const char *fixture,
                        const char *name, kvl_dtype dtype, int ndim,
                        const int64_t *shape)
{
    const kvl_st_tensor *t = kvl_st_find(f, name);
    CHECK(t != NULL, "%s: reference.safetensors has no %s", fixture, name);
    if (!t)
        return NULL;
    int ok = t->dtype == dtype && t->ndim == ndim;
    size_t n = 1;
    for (int i = 0; ok && i < ndim; i++) {
        ok = t->shape[i] == shape[i];
        n *= (size_t)shape[i];
    }
    ok = ok && t->nbytes == n * kvl_dtype_size(dtype);
    CHECK(ok, "%s: reference %s is %s with %d dims (%lld, ...), want %s",
          fixture, name, t->dtype_name, t->ndim,
          (long long)(t->ndim > 0 ? t->shape[0] : -1), kvl_dtype_name(dtype));
    if (!ok)
        return NULL;
    void *out = malloc(t->nbytes ? t->nbytes : 1);
    if (out)
        memcpy(out, t->data, t->nbytes); /* t->data may be unaligned */
    return out;
}

static int meta_has(const kvl_st_file *f, const char *key)
{
    return kvl_st_meta_get(f, key) != NULL;
}

static long meta_long(const kvl_st_file *f, const char *key, long dflt)
{
    const char *s = kvl_st_meta_get(f, key);
    return s ? strtol(s, NULL, 10) : dflt;
}

static double meta_double(const kvl_st_file *f, const char *key, double dflt)
{
    const char *s = kvl_st_meta_get(f, key);
    return s ? strtod(s, NULL) : dflt;
}

static const char *meta_str(const kvl_st_file *f, const char *key)
{
    const char *s = kvl_st_meta_get(f, key);
    return s ? s : "";
}

static int close_rel(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fabs(b);
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */
/* ------------------------------------------------------------------------ */

static void check_info(const char *fx, const kvl_st_file *rf,
                       const kvl_model_info *in)
{
    CHECK(strcmp(in->arch_name, meta_str(rf, "arch")) == 0,
          "%s: arch_name %s, want %s", fx, in->arch_name, meta_str(rf, "arch"));
    CHECK(in->n_layers == meta_long(rf, "n_layers", -1), "%s: n_layers %d", fx,
          (int)in->n_layers);
    CHECK(in->dim == meta_long(rf, "dim", -1), "%s: dim %d", fx, (int)in->dim);
    CHECK(in->hidden_dim == meta_long(rf, "hidden_dim", -1), "%s: hidden_dim %d",
          fx, (int)in->hidden_dim);
    CHECK(in->n_heads == meta_long(rf, "n_heads", -1), "%s: n_heads %d", fx,
          (int)in->n_heads);
    CHECK(in->n_kv_heads == meta_long(rf, "n_kv_heads", -1), "%s: n_kv_heads %d",
          fx, (int)in->n_kv_heads);
    CHECK(in->head_dim == meta_long(rf, "head_dim", -1), "%s: head_dim %d", fx,
          (int)in->head_dim);
    CHECK(in->vocab_size == meta_long(rf, "vocab_size", -1), "%s: vocab_size %d",
          fx, (int)in->vocab_size);
    CHECK(in->max_seq_len == meta_long(rf, "max_position_embeddings", -1),
          "%s: max_seq_len %d", fx, (int)in->max_seq_len);
    CHECK(close_rel(in->norm_eps, meta_double(rf, "norm_eps", -1), 1e-9),
          "%s: norm_eps %g", fx, in->norm_eps);
    CHECK(in->tied_embeddings == meta_long(rf, "tied_embeddings", -1),
          "%s: tied_embeddings %d", fx, (int)in->tied_embeddings);
    CHECK(in->qkv_bias == meta_long(rf, "qkv_bias", -1), "%s: qkv_bias %d", fx,
          (int)in->qkv_bias);
    CHECK(in->qk_norm == meta_long(rf, "qk_norm", -1), "%s: qk_norm %d", fx,
          (int)in->qk_norm);
    CHECK(strcmp(kvl_dtype_name(in->weight_dtype), meta_str(rf, "weight_dtype")) == 0,
          "%s: weight_dtype %s, want %s", fx, kvl_dtype_name(in->weight_dtype),
          meta_str(rf, "weight_dtype"));
    CHECK(in->fingerprint && strlen(in->fingerprint) == 64,
          "%s: fingerprint is 64 hex chars", fx);

    const kvl_rope *r = &in->rope;
    CHECK(close_rel(r->theta, meta_double(rf, "rope_theta", -1), 1e-12),
          "%s: rope theta %g", fx, r->theta);
    CHECK(r->layout == KVL_ROPE_ROTATE_HALF, "%s: HF checkpoints rotate halves", fx);
    CHECK(r->rotary_dim == in->head_dim, "%s: rotary_dim %d", fx, (int)r->rotary_dim);
    const char *type = meta_str(rf, "rope_type");
    if (strcmp(type, "llama3") == 0) {
        CHECK(r->scaling == KVL_ROPE_SCALING_LLAMA3, "%s: llama3 scaling", fx);
        CHECK(close_rel(r->factor, meta_double(rf, "rope_factor", -1), 1e-12),
              "%s: factor %g", fx, r->factor);
        CHECK(close_rel(r->low_freq_factor, meta_double(rf, "rope_low_freq_factor", -1), 1e-12),
              "%s: low_freq_factor %g", fx, r->low_freq_factor);
        CHECK(close_rel(r->high_freq_factor, meta_double(rf, "rope_high_freq_factor", -1), 1e-12),
              "%s: high_freq_factor %g", fx, r->high_freq_factor);
        CHECK(r->original_max_position ==
                  meta_long(rf, "rope_original_max_position_embeddings", -1),
              "%s: original_max_position %d", fx, (int)r->original_max_position);
    } else if (strcmp(type, "linear") == 0) {
        CHECK(r->scaling == KVL_ROPE_SCALING_LINEAR, "%s: linear scaling", fx);
        CHECK(close_rel(r->factor, meta_double(rf, "rope_factor", -1), 1e-12),
              "%s: factor %g", fx, r->factor);
    } else {
        CHECK(strcmp(type, "default") == 0, "%s: unknown rope_type %s", fx, type);
        CHECK(r->scaling == KVL_ROPE_SCALING_NONE, "%s: no rope scaling", fx);
    }
}

/* Compares [rows][V] logits with the reference rows ref_row0.. of ref_all;
 * returns the relative error of the whole block. */
static double check_logits(const char *fx, const char *what, const float *got,
                           const float *ref_all, int32_t ref_row0,
                           int32_t rows, int32_t V)
{
    const float *ref = ref_all + (size_t)ref_row0 * V;
    double e = kvt_rel_err(got, ref, (size_t)rows * V);
    CHECK(e <= TOL, "%s: %s logits rel err %.3g", fx, what, e);
    for (int32_t r = 0; r < rows; r++) {
        double er = kvt_rel_err(got + (size_t)r * V, ref + (size_t)r * V, (size_t)V);
        CHECK(er <= TOL, "%s: %s logits row %d rel err %.3g", fx, what,
              (int)(ref_row0 + r), er);
    }
    return e;
}

/* The cache holds exactly the prompt: token ids, positions 0..T-1, and every
 * layer's K and V as in the reference ([n_kv][T][head_dim]).  Returns the
 * largest relative error over layers. */
static double check_cache(const char *fx, const char *what, const kvl_cache *c,
                          const int32_t *ids, int32_t T, int32_t L, int32_t nkv,
                          int32_t hd, float *const *ref_k, float *const *ref_v)
{
    kvl_error err;
    kvl_cache_info ci;
    kvl_cache_get_info(c, &ci);
    CHECK(ci.n_tokens == T, "%s: %s cache holds %d tokens, want %d", fx, what,
          (int)ci.n_tokens, (int)T);
    CHECK(ci.n_layers == L && ci.n_kv_heads == nkv && ci.head_dim == hd,
          "%s: %s cache geometry %d/%d/%d", fx, what, (int)ci.n_layers,
          (int)ci.n_kv_heads, (int)ci.head_dim);
    if (ci.n_tokens != T || ci.n_layers != L || ci.n_kv_heads != nkv || ci.head_dim != hd)
        return INFINITY;
    const int32_t *tid = kvl_cache_token_ids(c);
    const int32_t *pos = kvl_cache_positions(c);
    int ids_ok = tid != NULL, pos_ok = pos != NULL;
    for (int32_t t = 0; t < T && ids_ok && pos_ok; t++) {
        ids_ok = tid[t] == ids[t];
        pos_ok = pos[t] == t;
    }
    CHECK(ids_ok, "%s: %s cache token ids are the prompt", fx, what);
    CHECK(pos_ok, "%s: %s cache positions are 0..%d", fx, what, (int)T - 1);

    size_t per_head = (size_t)T * hd, per_layer = (size_t)nkv * per_head;
    float *buf = malloc(sizeof(float) * per_layer);
    if (!buf)
        return INFINITY;
    double worst = 0;
    for (int32_t l = 0; l < L; l++) {
        for (int kv = 0; kv < 2; kv++) {
            const float *ref = kv == 0 ? ref_k[l] : ref_v[l];
            int read_ok = 1;
            for (int32_t h = 0; h < nkv; h++) {
                kvl_status st = kvl_cache_read(c, kv == 0 ? KVL_K : KVL_V, l, h, 0, T,
                                               buf + (size_t)h * per_head, &err);
                CHECK(st == KVL_OK, "%s: kvl_cache_read: %s", fx, err.message);
                read_ok &= st == KVL_OK;
            }
            double e = read_ok ? kvt_rel_err(buf, ref, per_layer) : INFINITY;
            CHECK(e <= TOL, "%s: %s layer %d %s rel err %.3g", fx, what, (int)l,
                  kv == 0 ? "K" : "V", e);
            if (!(e <= worst))
                worst = e;
        }
    }
    free(buf);
    return worst;
}

static int rope_same(const kvl_rope *a, const kvl_rope *b)
{
    return a->theta == b->theta && a->layout == b->layout &&
           a->scaling == b->scaling && a->factor == b->factor &&
           a->low_freq_factor == b->low_freq_factor &&
           a->high_freq_factor == b->high_freq_factor &&
           a->original_max_position == b->original_max_position &&
           a->rotary_dim == b->rotary_dim;
}

/* A 4.x-config copy must be read as the same model as its base. */
static void check_same_as(const fixture_entry *fe, const fixture_result *me)
{
    const fixture_result *base = NULL;
    for (int i = 0; i < n_results; i++)
        if (strcmp(results[i].name, fe->same_as) == 0)
            base = &results[i];
    CHECK(base != NULL && base->loaded,
          "%s: same_as=%s must be listed (and load) before it", fe->name, fe->same_as);
    if (!base || !base->loaded || !me->loaded)
        return;
    const kvl_model_info *a = &me->info, *b = &base->info;
    CHECK(a->arch == b->arch && a->n_layers == b->n_layers && a->dim == b->dim &&
              a->hidden_dim == b->hidden_dim && a->n_heads == b->n_heads &&
              a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
              a->vocab_size == b->vocab_size && a->max_seq_len == b->max_seq_len &&
              a->norm_eps == b->norm_eps && a->tied_embeddings == b->tied_embeddings &&
              a->qkv_bias == b->qkv_bias && a->qk_norm == b->qk_norm &&
              a->weight_dtype == b->weight_dtype && a->n_params == b->n_params,
          "%s: same geometry as %s", fe->name, fe->same_as);
    CHECK(rope_same(&a->rope, &b->rope), "%s: same RoPE as %s", fe->name, fe->same_as);
    CHECK(a->bos_token_id == b->bos_token_id && a->eos_token_id == b->eos_token_id,
          "%s: same bos/eos as %s", fe->name, fe->same_as);
    CHECK(me->n_logits == base->n_logits && me->logits && base->logits,
          "%s: logits to compare with %s", fe->name, fe->same_as);
    if (me->n_logits == base->n_logits && me->logits && base->logits) {
        double e = kvt_rel_err(me->logits, base->logits, (size_t)me->n_logits);
        CHECK(e <= SAME_TOL, "%s: logits vs %s rel err %.3g", fe->name, fe->same_as, e);
    }
}

/* ------------------------------------------------------------------------ */
/* One fixture                                                               */
/* ------------------------------------------------------------------------ */

static void run_fixture(const fixture_entry *fe)
{
    char dir[4096], ref_path[4096], rel[512];
    snprintf(rel, sizeof rel, "tests/fixtures/%s", fe->name);
    snprintf(dir, sizeof dir, "%s", kvt_source_path(rel));
    snprintf(rel, sizeof rel, "tests/fixtures/%s/reference.safetensors", fe->name);
    snprintf(ref_path, sizeof ref_path, "%s", kvt_source_path(rel));
    const char *fx = fe->name;

    fixture_result *res = &results[n_results++];
    memset(res, 0, sizeof *res);
    snprintf(res->name, sizeof res->name, "%s", fe->name);

    kvl_error err;
    kvl_st_file rf;
    memset(&rf, 0, sizeof rf);
    kvl_model *model = NULL;
    kvl_session *s = NULL, *s2 = NULL;
    kvl_sampler *smp = NULL;
    int32_t *ids = NULL, *greedy = NULL;
    float *ref_logits = NULL, *ref_glogits = NULL, *logits = NULL, *row = NULL;
    float **ref_k = NULL, **ref_v = NULL;
    int32_t L = 0;
    double e_logits = INFINITY, e_kv = INFINITY, e_split = INFINITY;
    int greedy_ok = 0;

    kvl_status st = kvl_st_open(ref_path, &rf, &err);
    CHECK(st == KVL_OK, "%s: %s", fx, err.message);
    if (st != KVL_OK)
        goto out;
    CHECK(strcmp(meta_str(&rf, "model"), fx) == 0, "%s: reference is for %s", fx,
          meta_str(&rf, "model"));
    CHECK(meta_has(&rf, "transformers_version"), "%s: reference names its transformers", fx);

    /* Sizes come from the reference tensors; the metadata says what the
     * model must report. */
    const kvl_st_tensor *t_ids = kvl_st_find(&rf, "input_ids");
    const kvl_st_tensor *t_log = kvl_st_find(&rf, "logits");
    const kvl_st_tensor *t_k0 = kvl_st_find(&rf, "layers.0.k");
    const kvl_st_tensor *t_g = kvl_st_find(&rf, "greedy_ids");
    CHECK(t_ids && t_ids->ndim == 1 && t_log && t_log->ndim == 2 && t_k0 &&
              t_k0->ndim == 3 && t_g && t_g->ndim == 1,
          "%s: reference has input_ids, logits, layers.0.k, greedy_ids", fx);
    if (!(t_ids && t_ids->ndim == 1 && t_log && t_log->ndim == 2 && t_k0 &&
          t_k0->ndim == 3 && t_g && t_g->ndim == 1))
        goto out;
    const int32_t T = (int32_t)t_ids->shape[0];
    const int32_t V = (int32_t)t_log->shape[1];
    const int32_t nkv = (int32_t)t_k0->shape[0];
    const int32_t hd = (int32_t)t_k0->shape[2];
    const int32_t G = (int32_t)t_g->shape[0];
    L = (int32_t)meta_long(&rf, "n_layers", 0);
    CHECK(T > SPLIT_AT && V > 1 && nkv > 0 && hd > 0 && G > 0 && L > 0 && L < 1000,
          "%s: reference sizes T=%d V=%d n_kv=%d hd=%d G=%d L=%d", fx, (int)T, (int)V,
          (int)nkv, (int)hd, (int)G, (int)L);
    if (!(T > SPLIT_AT && V > 1 && nkv > 0 && hd > 0 && G > 0 && L > 0 && L < 1000))
        goto out;

    {
        const int64_t s_ids[1] = {T}, s_log[2] = {T, V}, s_g[1] = {G}, s_gl[2] = {G, V};
        const int64_t s_kv[3] = {nkv, T, hd};
        ids = ref_tensor(&rf, fx, "input_ids", KVL_DTYPE_I32, 1, s_ids);
        ref_logits = ref_tensor(&rf, fx, "logits", KVL_DTYPE_F32, 2, s_log);
        greedy = ref_tensor(&rf, fx, "greedy_ids", KVL_DTYPE_I32, 1, s_g);
        ref_glogits = ref_tensor(&rf, fx, "greedy_logits", KVL_DTYPE_F32, 2, s_gl);
        ref_k = calloc((size_t)L, sizeof *ref_k);
        ref_v = calloc((size_t)L, sizeof *ref_v);
        if (!ids || !ref_logits || !greedy || !ref_glogits || !ref_k || !ref_v)
            goto out;
        int all = 1;
        for (int32_t l = 0; l < L; l++) {
            char name[64];
            snprintf(name, sizeof name, "layers.%d.k", (int)l);
            ref_k[l] = ref_tensor(&rf, fx, name, KVL_DTYPE_F32, 3, s_kv);
            snprintf(name, sizeof name, "layers.%d.v", (int)l);
            ref_v[l] = ref_tensor(&rf, fx, name, KVL_DTYPE_F32, 3, s_kv);
            all &= ref_k[l] != NULL && ref_v[l] != NULL;
        }
        if (!all)
            goto out;
    }

    /* --- load ------------------------------------------------------------ */
    st = kvl_model_load(dir, NULL, &model, &err);
    CHECK(st == KVL_OK, "%s: kvl_model_load: %s: %s", fx, kvl_status_name(st),
          err.message);
    if (st != KVL_OK)
        goto out;
    kvl_model_info info;
    kvl_model_get_info(model, &info);
    check_info(fx, &rf, &info);
    res->loaded = 1;
    res->info = info;
    res->info.arch_name = res->info.fingerprint = res->info.path = NULL;
    if (info.vocab_size != V || info.n_kv_heads != nkv || info.head_dim != hd ||
        info.n_layers != L)
        goto out; /* already reported; the buffers below would not fit */

    /* --- the prompt in one call ------------------------------------------ */
    kvl_session_options so;
    memset(&so, 0, sizeof so);
    st = kvl_session_new(model, &so, &s, &err);
    CHECK(st == KVL_OK, "%s: kvl_session_new: %s", fx, err.message);
    if (st != KVL_OK)
        goto out;
    logits = malloc(sizeof(float) * (size_t)T * V);
    row = malloc(sizeof(float) * (size_t)V);
    if (!logits || !row)
        goto out;
    st = kvl_session_forward(s, ids, T, logits, 1, &err);
    CHECK(st == KVL_OK, "%s: forward: %s: %s", fx, kvl_status_name(st), err.message);
    if (st != KVL_OK)
        goto out;
    e_logits = check_logits(fx, "prompt", logits, ref_logits, 0, T, V);
    res->logits = malloc(sizeof(float) * (size_t)T * V);
    if (res->logits) {
        memcpy(res->logits, logits, sizeof(float) * (size_t)T * V);
        res->n_logits = T * V;
    }
    e_kv = check_cache(fx, "prompt", kvl_session_cache(s), ids, T, L, nkv, hd, ref_k, ref_v);

    /* --- greedy continuation --------------------------------------------- */
    kvl_sampler_options sopt;
    memset(&sopt, 0, sizeof sopt);
    sopt.temperature = 0.0f;
    sopt.top_p = 1.0f;
    st = kvl_sampler_new(&sopt, V, &smp, &err);
    CHECK(st == KVL_OK, "%s: kvl_sampler_new: %s", fx, err.message);
    if (st != KVL_OK)
        goto out;
    greedy_ok = 1;
    memcpy(row, logits + (size_t)(T - 1) * V, sizeof(float) * (size_t)V);
    for (int32_t g = 0; g < G; g++) {
        if (g > 0) {
            /* Feeds the reference token: identical to free-running greedy
             * while the picks agree, and keeps later steps comparable if a
             * pick differs. */
            st = kvl_session_forward(s, &greedy[g - 1], 1, row, 0, &err);
            CHECK(st == KVL_OK, "%s: greedy step %d: %s", fx, (int)g, err.message);
            if (st != KVL_OK) {
                greedy_ok = 0;
                break;
            }
        }
        double e = kvt_rel_err(row, ref_glogits + (size_t)g * V, (size_t)V);
        CHECK(e <= TOL, "%s: greedy step %d logits rel err %.3g", fx, (int)g, e);
        int32_t tok = kvl_sampler_sample(smp, row);
        CHECK(tok == greedy[g], "%s: greedy step %d picked %d, transformers %d", fx,
              (int)g, (int)tok, (int)greedy[g]);
        greedy_ok &= tok == greedy[g] && e <= TOL;
    }
    if (greedy_ok) {
        const kvl_cache *c = kvl_session_cache(s);
        int32_t n = kvl_cache_n_tokens(c);
        CHECK(n == T + G - 1, "%s: cache after greedy holds %d tokens, want %d", fx,
              (int)n, (int)(T + G - 1));
        const int32_t *pos = kvl_cache_positions(c);
        CHECK(n == T + G - 1 && pos && pos[n - 1] == n - 1,
              "%s: last position after greedy is %d", fx, n > 0 && pos ? (int)pos[n - 1] : -1);
    }

    /* --- the prompt in two calls ------------------------------------------ */
    st = kvl_session_new(model, &so, &s2, &err);
    CHECK(st == KVL_OK, "%s: kvl_session_new: %s", fx, err.message);
    if (st != KVL_OK)
        goto out;
    st = kvl_session_forward(s2, ids, SPLIT_AT, logits, 1, &err);
    CHECK(st == KVL_OK, "%s: split forward 1: %s", fx, err.message);
    if (st == KVL_OK) {
        check_logits(fx, "split part 1", logits, ref_logits, 0, SPLIT_AT, V);
        st = kvl_session_forward(s2, ids + SPLIT_AT, T - SPLIT_AT, logits, 1, &err);
        CHECK(st == KVL_OK, "%s: split forward 2: %s", fx, err.message);
        if (st == KVL_OK) {
            e_split = check_logits(fx, "split part 2", logits, ref_logits, SPLIT_AT,
                                   T - SPLIT_AT, V);
            check_cache(fx, "split", kvl_session_cache(s2), ids, T, L, nkv, hd, ref_k,
                        ref_v);
        }
    }

    /* --- reset, then last-token logits only -------------------------------- */
    kvl_session_reset(s2);
    CHECK(kvl_cache_n_tokens(kvl_session_cache(s2)) == 0, "%s: reset empties the cache", fx);
    st = kvl_session_forward(s2, ids, T, row, 0, &err);
    CHECK(st == KVL_OK, "%s: forward after reset: %s", fx, err.message);
    if (st == KVL_OK)
        check_logits(fx, "last-only", row, ref_logits, T - 1, 1, V);

out:
    printf("%-30s logits %.2e  kv %.2e  split %.2e  greedy %s\n", fx, e_logits, e_kv,
           e_split, greedy_ok ? "ok" : "FAILED");
    if (fe->same_as[0])
        check_same_as(fe, res);
    kvl_sampler_free(smp);
    kvl_session_free(s);
    kvl_session_free(s2);
    kvl_model_free(model);
    for (int32_t l = 0; l < L; l++) {
        if (ref_k)
            free(ref_k[l]);
        if (ref_v)
            free(ref_v[l]);
    }
    free(ref_k);
    free(ref_v);
    free(ids);
    free(greedy);
    free(ref_logits);
    free(ref_glogits);
    free(logits);
    free(row);
    kvl_st_close(&rf);
}

/* ------------------------------------------------------------------------ */

/* MANIFEST.txt: '#' comments; otherwise "NAME [same_as=BASE] [-- text]". */
static int read_manifest(const char *path, fixture_entry *out, int cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        char *dash = strstr(p, " --");
        if (dash)
            *dash = '\0';
        char *save = NULL;
        char *tok = strtok_r(p, " \t\r\n", &save);
        if (!tok)
            continue;
        CHECK(n < cap, "MANIFEST lists more than %d fixtures", cap);
        if (n >= cap)
            break;
        memset(&out[n], 0, sizeof out[n]);
        CHECK(strlen(tok) < NAME_MAX_LEN, "MANIFEST name too long: %s", tok);
        snprintf(out[n].name, sizeof out[n].name, "%s", tok);
        while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
            if (strncmp(tok, "same_as=", 8) == 0)
                snprintf(out[n].same_as, sizeof out[n].same_as, "%s", tok + 8);
        }
        n++;
    }
    fclose(f);
    return n;
}

int main(void)
{
    const char *manifest = kvt_source_path("tests/fixtures/MANIFEST.txt");
    if (!kvt_file_exists(manifest))
        return kvt_skip("%s is absent: generate it with tests/reference/make_fixtures.py",
                        manifest);
    static fixture_entry entries[MAX_FIXTURES];
    int n = read_manifest(manifest, entries, MAX_FIXTURES);
    CHECK(n > 0, "%s lists no fixture", manifest);
    for (int i = 0; i < n; i++)
        run_fixture(&entries[i]);
    for (int i = 0; i < n_results; i++)
        free(results[i].logits);
    return kvt_finish();
}
