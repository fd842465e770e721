/*
 * Cache files (.kvc, format v1): round trips in F32 (bit-identical), F16 and
 * BF16 (against rounding computed here with frexp/nearbyint, not with the
 * library's converters), the metadata as any safetensors reader sees it, and
 * malformed files written here by hand, each of which must fail with a
 * message that names the file and the problem.
 */
#include "cache/cache.h"
#include "model/safetensors.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Deterministic numbers in [-1, 1). */
static float rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffffffu) / 8388608.0f - 1.0f;
}

static kvl_rope llama3_rope(int head_dim)
{
    kvl_rope r;
    memset(&r, 0, sizeof r);
    r.theta = 500000.123456789; /* not a short decimal: tests %.17g */
    r.layout = KVL_ROPE_INTERLEAVED;
    r.scaling = KVL_ROPE_SCALING_LLAMA3;
    r.factor = 8.0;
    r.low_freq_factor = 1.0;
    r.high_freq_factor = 4.0;
    r.original_max_position = 8192;
    r.rotary_dim = head_dim;
    return r;
}

/* Values spanning the cases a 16-bit format rounds differently: ordinary
 * numbers, large ones, F16 subnormals, and exact ties between two F16 / two
 * BF16 neighbours (which must go to the even one). */
static float sample_value(uint32_t *s, int i)
{
    static const float special[] = {
        1.0f + 0x1p-11f,       /* F16 tie -> 1            */
        1.0f + 3 * 0x1p-11f,   /* F16 tie -> 1 + 2^-9     */
        1.0f + 0x1p-8f,        /* BF16 tie -> 1           */
        -(1.0f + 3 * 0x1p-8f), /* BF16 tie -> -(1 + 2^-6) */
        3e-6f,                 /* F16 subnormal           */
        -1e-7f,                /* F16 subnormal, rounds   */
        0.0f,
        60000.0f,
    };
    if (i < (int)(sizeof special / sizeof special[0]))
        return special[i];
    static const float scale[] = {1.0f, 100.0f, 1e-3f, 1e-6f};
    return rnd(s) * scale[i % 4];
}

static kvl_cache *make_cache(int n_layers, int n_kv_heads, int head_dim,
                             int n_tokens, int capacity, const kvl_rope *r)
{
    kvl_cache *c = NULL;
    kvl_error err;
    uint32_t seed = 99;
    CHECK_OK(kvl_cache_create(n_layers, n_kv_heads, head_dim, r,
                              "LlamaForCausalLM", FP, capacity, &c, &err),
             &err);
    if (!c)
        return NULL;
    const int n = n_layers * n_kv_heads * head_dim;
    float *k = malloc((size_t)n * sizeof *k), *v = malloc((size_t)n * sizeof *v);
    int counter = 0;
    for (int t = 0; t < n_tokens; t++) {
        for (int i = 0; i < n; i++) {
            k[i] = sample_value(&seed, counter++);
            v[i] = sample_value(&seed, counter++);
        }
        CHECK_OK(kvl_cache_append(c, 1000 + 7 * t, 3 * t + 1, k, v, &err),
                 &err);
    }
    free(k);
    free(v);
    return c;
}

/* x rounded to nearest-even in a binary format with `bits` significant bits
 * whose smallest normal binade starts at 2^emin (below it the spacing stays
 * 2^(emin - bits + 1): subnormals).  No overflow handling: inputs are in
 * range. */
static float round_to(float x, int bits, int emin)
{
    if (x == 0.0f)
        return x;
    int e;
    frexp(x, &e); /* |x| in [2^(e-1), 2^e) */
    int lead = e - 1 < emin ? emin : e - 1;
    double q = ldexp(1.0, lead - (bits - 1));
    return (float)(nearbyint((double)x / q) * q);
}

static float expected_value(float x, kvl_dtype dtype)
{
    switch (dtype) {
    case KVL_DTYPE_F16: return round_to(x, 11, -14);
    case KVL_DTYPE_BF16: return round_to(x, 8, -126);
    default: return x;
    }
}

/* Loaded cache b equals a after rounding to dtype, bit for bit. */
static void expect_same(const kvl_cache *a, const kvl_cache *b,
                        kvl_dtype dtype, const char *what)
{
    kvl_cache_info ia, ib;
    kvl_cache_get_info(a, &ia);
    kvl_cache_get_info(b, &ib);
    CHECK(ia.n_layers == ib.n_layers && ia.n_kv_heads == ib.n_kv_heads &&
              ia.head_dim == ib.head_dim && ia.n_tokens == ib.n_tokens,
          "%s: geometry %d/%d/%d/%d vs %d/%d/%d/%d", what, ia.n_layers,
          ia.n_kv_heads, ia.head_dim, ia.n_tokens, ib.n_layers, ib.n_kv_heads,
          ib.head_dim, ib.n_tokens);
    if (ia.n_layers != ib.n_layers || ia.n_kv_heads != ib.n_kv_heads ||
        ia.head_dim != ib.head_dim || ia.n_tokens != ib.n_tokens)
        return;
    CHECK(ia.rope.theta == ib.rope.theta && ia.rope.layout == ib.rope.layout &&
              ia.rope.scaling == ib.rope.scaling &&
              ia.rope.factor == ib.rope.factor &&
              ia.rope.low_freq_factor == ib.rope.low_freq_factor &&
              ia.rope.high_freq_factor == ib.rope.high_freq_factor &&
              ia.rope.original_max_position == ib.rope.original_max_position &&
              ia.rope.rotary_dim == ib.rope.rotary_dim,
          "%s: rope differs (theta %.17g vs %.17g)", what, ia.rope.theta,
          ib.rope.theta);
    CHECK(strcmp(ia.arch_name, ib.arch_name) == 0, "%s: arch", what);
    CHECK(strcmp(ia.fingerprint, ib.fingerprint) == 0, "%s: fingerprint",
          what);
    int bad = 0, changed = 0;
    for (int kv = 0; kv < 2; kv++)
        for (int l = 0; l < ia.n_layers; l++)
            for (int h = 0; h < ia.n_kv_heads; h++) {
                const float *x = kvl_cache_data(a, kv ? KVL_V : KVL_K, l, h);
                const float *y = kvl_cache_data(b, kv ? KVL_V : KVL_K, l, h);
                for (int i = 0; i < ia.n_tokens * ia.head_dim; i++) {
                    float want = expected_value(x[i], dtype);
                    bad += memcmp(&y[i], &want, sizeof want) != 0;
                    changed += y[i] != x[i];
                }
            }
    CHECK(bad == 0, "%s: %d values differ from the expected rounding", what,
          bad);
    /* The samples include values the 16-bit formats cannot hold exactly. */
    CHECK(dtype == KVL_DTYPE_F32 || ia.n_tokens == 0 ? changed == 0
                                                     : changed > 0,
          "%s: %d values changed", what, changed);
    size_t nb = (size_t)ia.n_tokens * sizeof(int32_t);
    CHECK(nb == 0 || memcmp(kvl_cache_token_ids(a), kvl_cache_token_ids(b),
                            nb) == 0,
          "%s: token ids", what);
    CHECK(nb == 0 || memcmp(kvl_cache_positions(a), kvl_cache_positions(b),
                            nb) == 0,
          "%s: positions", what);
}

static void roundtrip(const kvl_cache *c, kvl_dtype dtype, const char *what)
{
    const char *path = kvt_temp_path(".kvc");
    kvl_cache *back = NULL;
    kvl_error err;
    CHECK_OK(kvl_cache_save(c, path, dtype, &err), &err);
    CHECK_OK(kvl_cache_load(path, &back, &err), &err);
    if (back)
        expect_same(c, back, dtype, what);
    kvl_cache_free(back);
}

static void test_roundtrips(void)
{
    static const kvl_dtype dtypes[] = {KVL_DTYPE_F32, KVL_DTYPE_F16,
                                       KVL_DTYPE_BF16};
    kvl_rope r = llama3_rope(8);
    /* Rows strided (capacity > n_tokens), contiguous (capacity = n_tokens),
     * and a single kv head. */
    kvl_cache *caches[3] = {make_cache(3, 2, 8, 5, 8, &r),
                            make_cache(2, 3, 8, 4, 4, &r),
                            make_cache(2, 1, 8, 3, 16, &r)};
    char what[64];
    for (int i = 0; i < 3; i++)
        for (int d = 0; d < 3; d++) {
            snprintf(what, sizeof what, "cache %d %s", i,
                     kvl_dtype_name(dtypes[d]));
            roundtrip(caches[i], dtypes[d], what);
        }
    for (int i = 0; i < 3; i++)
        kvl_cache_free(caches[i]);

    /* Zero tokens: tensors of shape [n_kv_heads, 0, head_dim]. */
    kvl_cache *empty = make_cache(2, 2, 8, 0, 0, &r);
    for (int d = 0; d < 3; d++)
        roundtrip(empty, dtypes[d], "empty cache");
    kvl_cache_free(empty);

    kvl_error err;
    kvl_cache *c = make_cache(1, 1, 8, 1, 1, &r);
    CHECK(kvl_cache_save(c, kvt_temp_path(".kvc"), KVL_DTYPE_I32, &err) ==
              KVL_ERR_ARG, "I32 cache dtype accepted");
    kvl_cache_free(c);
}

static void expect_meta(const kvl_st_file *f, const char *key,
                        const char *want)
{
    const char *got = kvl_st_meta_get(f, key);
    CHECK(got && strcmp(got, want) == 0, "metadata %s = '%s', expected '%s'",
          key, got ? got : "(missing)", want);
}

static void expect_tensor(const kvl_st_file *f, const char *name,
                          const char *dtype, int ndim, int64_t d0, int64_t d1,
                          int64_t d2)
{
    const kvl_st_tensor *t = kvl_st_find(f, name);
    CHECK(t != NULL, "tensor %s missing", name);
    if (!t)
        return;
    int64_t want[3] = {d0, d1, d2};
    int ok = t->ndim == ndim && strcmp(t->dtype_name, dtype) == 0;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == want[i];
    CHECK(ok, "tensor %s: %s ndim %d", name, t->dtype_name, t->ndim);
}

static void test_metadata(void)
{
    kvl_rope r = llama3_rope(8);
    kvl_cache *c = make_cache(3, 2, 8, 5, 8, &r);
    const char *path = kvt_temp_path(".kvc");
    kvl_error err;
    kvl_st_file f;
    CHECK_OK(kvl_cache_save(c, path, KVL_DTYPE_BF16, &err), &err);
    CHECK_OK(kvl_st_open(path, &f, &err), &err);
    expect_meta(&f, "format", "kvlab.kvcache");
    expect_meta(&f, "format_version", "1");
    expect_meta(&f, "architecture", "LlamaForCausalLM");
    expect_meta(&f, "model_fingerprint", FP);
    expect_meta(&f, "n_layers", "3");
    expect_meta(&f, "n_kv_heads", "2");
    expect_meta(&f, "head_dim", "8");
    expect_meta(&f, "n_tokens", "5");
    expect_meta(&f, "dtype", "BF16");
    expect_meta(&f, "rope_layout", "interleaved");
    expect_meta(&f, "rope_scaling", "llama3");
    expect_meta(&f, "rope_original_max_position", "8192");
    expect_meta(&f, "rope_rotary_dim", "8");
    expect_meta(&f, "rope_factor", "8");
    expect_meta(&f, "rope_low_freq_factor", "1");
    expect_meta(&f, "rope_high_freq_factor", "4");
    expect_meta(&f, "kvlab_version", kvl_version());
    const char *theta = kvl_st_meta_get(&f, "rope_theta");
    CHECK(theta && strtod(theta, NULL) == 500000.123456789,
          "rope_theta '%s' does not round-trip", theta ? theta : "(missing)");
    CHECK(f.n_meta == 18, "%d metadata keys", f.n_meta);
    CHECK(f.n_tensors == 2 * 3 + 2, "%d tensors", f.n_tensors);
    expect_tensor(&f, "layers.0.k", "BF16", 3, 2, 5, 8);
    expect_tensor(&f, "layers.2.v", "BF16", 3, 2, 5, 8);
    expect_tensor(&f, "token_ids", "I32", 1, 5, 0, 0);
    expect_tensor(&f, "positions", "I32", 1, 5, 0, 0);
    /* Token 2 of the cache has position 3*2+1 = 7, id 1000 + 14. */
    const kvl_st_tensor *pos = kvl_st_find(&f, "positions");
    const kvl_st_tensor *ids = kvl_st_find(&f, "token_ids");
    int32_t p2 = 0, id2 = 0;
    if (pos && ids && pos->nbytes >= 12 && ids->nbytes >= 12) {
        memcpy(&p2, pos->data + 8, 4);
        memcpy(&id2, ids->data + 8, 4);
    }
    CHECK(p2 == 7 && id2 == 1014, "positions[2] = %d, token_ids[2] = %d",
          (int)p2, (int)id2);
    /* Row order: layers.1.v[1][3] is layer 1, head 1, token 3. */
    const kvl_st_tensor *t = kvl_st_find(&f, "layers.1.v");
    if (t) {
        float row[8];
        uint16_t h;
        CHECK_OK(kvl_cache_read(c, KVL_V, 1, 1, 3, 1, row, &err), &err);
        memcpy(&h, t->data + ((1 * 5 + 3) * 8 + 2) * 2, 2);
        uint32_t u = (uint32_t)h << 16;
        float got;
        memcpy(&got, &u, 4);
        CHECK(got == round_to(row[2], 8, -126), "layers.1.v[1][3][2] = %g, "
              "expected %g", (double)got, (double)round_to(row[2], 8, -126));
    }
    kvl_st_close(&f);

    /* The empty cache: shapes with a zero. */
    kvl_cache *e = make_cache(1, 2, 8, 0, 0, &r);
    CHECK_OK(kvl_cache_save(e, path, KVL_DTYPE_F16, &err), &err);
    CHECK_OK(kvl_st_open(path, &f, &err), &err);
    expect_tensor(&f, "layers.0.v", "F16", 3, 2, 0, 8);
    expect_tensor(&f, "positions", "I32", 1, 0, 0, 0);
    expect_meta(&f, "n_tokens", "0");
    kvl_st_close(&f);
    kvl_cache_free(e);
    kvl_cache_free(c);
}

/* ------------------------------------------------------------------------ */
/* Malformed files, written here without the library's cache writer          */
/* ------------------------------------------------------------------------ */

enum { NL = 2, NKV = 2, HD = 4, NT = 3 };

static const char *const base_meta[][2] = {
    {"format", "kvlab.kvcache"},
    {"format_version", "1"},
    {"architecture", "LlamaForCausalLM"},
    {"model_fingerprint", ""},
    {"n_layers", "2"},
    {"n_kv_heads", "2"},
    {"head_dim", "4"},
    {"n_tokens", "3"},
    {"dtype", "F32"},
    {"rope_theta", "10000"},
    {"rope_layout", "rotate_half"},
    {"rope_scaling", "none"},
    {"rope_factor", "1"},
    {"rope_low_freq_factor", "0"},
    {"rope_high_freq_factor", "0"},
    {"rope_original_max_position", "0"},
    {"rope_rotary_dim", "4"},
    {"kvlab_version", "0.1.0"},
};
enum { N_BASE_META = sizeof base_meta / sizeof base_meta[0] };

typedef struct variant {
    const char *key, *value; /* metadata override; value NULL drops key */
    const char *drop;        /* tensor left out                         */
    const char *longer;      /* tensor written with one token more      */
    const char *as_f16;      /* tensor written as F16                   */
    const char *extra;       /* an additional [NKV, NT, HD] F32 tensor  */
    int negative_position;   /* positions[1] = -1                       */
} variant;

/* The value of plane element (layer, kv, head, token, dim) in these files. */
static float file_value(int l, int kv, int h, int t, int d)
{
    return (float)(l * 1000 + kv * 100 + h * 10 + t) + 0.5f * (float)d;
}

static kvl_status write_variant(const char *path, const variant *v,
                                kvl_error *err)
{
    static float planes[2 * NL][NKV * (NT + 1) * HD];
    static uint16_t halves[NKV * (NT + 1) * HD];
    int32_t ids[NT + 1] = {5, 6, 7, 8}, pos[NT + 1] = {0, 1, 2, 3};
    static char names[2 * NL][16];
    kvl_st_write_tensor t[2 * NL + 3];
    kvl_st_meta meta[N_BASE_META];
    int nt = 0, nm = 0;
    memset(t, 0, sizeof t);
    memset(halves, 0, sizeof halves);
    if (v->negative_position)
        pos[1] = -1;
    for (int p = 0; p < 2 * NL; p++) {
        snprintf(names[p], sizeof names[p], "layers.%d.%c", p / 2,
                 p % 2 ? 'v' : 'k');
        int n_tok = v->longer && strcmp(v->longer, names[p]) == 0 ? NT + 1 : NT;
        for (int h = 0; h < NKV; h++)
            for (int tok = 0; tok < n_tok; tok++)
                for (int d = 0; d < HD; d++)
                    planes[p][(h * n_tok + tok) * HD + d] =
                        file_value(p / 2, p % 2, h, tok, d);
        if (v->drop && strcmp(v->drop, names[p]) == 0)
            continue;
        int f16 = v->as_f16 && strcmp(v->as_f16, names[p]) == 0;
        t[nt] = (kvl_st_write_tensor){names[p], f16 ? KVL_DTYPE_F16
                                                    : KVL_DTYPE_F32,
                                      3, {NKV, n_tok, HD},
                                      f16 ? (const void *)halves
                                          : (const void *)planes[p]};
        nt++;
    }
    const char *vec_names[2] = {"token_ids", "positions"};
    const int32_t *vec_data[2] = {ids, pos};
    for (int i = 0; i < 2; i++) {
        if (v->drop && strcmp(v->drop, vec_names[i]) == 0)
            continue;
        int n = v->longer && strcmp(v->longer, vec_names[i]) == 0 ? NT + 1 : NT;
        t[nt++] = (kvl_st_write_tensor){vec_names[i], KVL_DTYPE_I32, 1, {n},
                                        vec_data[i]};
    }
    if (v->extra)
        t[nt++] = (kvl_st_write_tensor){v->extra, KVL_DTYPE_F32, 3,
                                        {NKV, NT, HD}, planes[0]};
    for (int i = 0; i < N_BASE_META; i++) {
        const char *value = base_meta[i][1];
        if (v->key && strcmp(v->key, base_meta[i][0]) == 0)
            value = v->value;
        if (value)
            meta[nm++] = (kvl_st_meta){(char *)base_meta[i][0], (char *)value};
    }
    return kvl_st_write(path, t, nt, meta, nm, err);
}

static void expect_load_fails(const variant *v, kvl_status code,
                              const char *needle, const char *what)
{
    const char *path = kvt_temp_path(".kvc");
    kvl_error err;
    kvl_cache *c = (kvl_cache *)&err; /* must be reset to NULL */
    CHECK_OK(write_variant(path, v, &err), &err);
    kvl_status st = kvl_cache_load(path, &c, &err);
    if (getenv("KVT_VERBOSE"))
        printf("%s\n  -> %s\n", what, err.message);
    CHECK(st == code, "%s: got %s, expected %s (%s)", what,
          kvl_status_name(st), kvl_status_name(code), err.message);
    CHECK(c == NULL, "%s: out not NULL on failure", what);
    if (st == KVL_OK)
        kvl_cache_free(c);
    CHECK(strstr(err.message, path) != NULL, "%s: message does not name the "
          "file: %s", what, err.message);
    CHECK(strstr(err.message, needle) != NULL, "%s: message lacks '%s': %s",
          what, needle, err.message);
}

static void test_handmade_valid(void)
{
    /* The unmodified hand-written file loads: every failure below is then
     * due to the one defect each variant introduces. */
    const char *path = kvt_temp_path(".kvc");
    variant v = {0};
    kvl_cache *c = NULL;
    kvl_error err;
    CHECK_OK(write_variant(path, &v, &err), &err);
    CHECK_OK(kvl_cache_load(path, &c, &err), &err);
    if (!c)
        return;
    CHECK(kvl_cache_n_tokens(c) == NT, "n_tokens %d", kvl_cache_n_tokens(c));
    int bad = 0;
    for (int l = 0; l < NL; l++)
        for (int kv = 0; kv < 2; kv++)
            for (int h = 0; h < NKV; h++) {
                const float *x = kvl_cache_data(c, kv ? KVL_V : KVL_K, l, h);
                for (int t = 0; t < NT; t++)
                    for (int d = 0; d < HD; d++)
                        bad += x[t * HD + d] != file_value(l, kv, h, t, d);
            }
    CHECK(bad == 0, "%d values differ from the hand-written file", bad);
    CHECK(kvl_cache_token_ids(c)[2] == 7 && kvl_cache_positions(c)[2] == 2,
          "ids / positions");
    kvl_cache_free(c);
}

static void test_malformed(void)
{
    static const struct {
        variant v;
        kvl_status code;
        const char *needle;
    } cases[] = {
        {{.key = "format", .value = "safetensors"}, KVL_ERR_FORMAT,
         "not a kvlab cache file (metadata 'format' is 'safetensors'"},
        {{.key = "format"}, KVL_ERR_FORMAT, "'format' is missing"},
        {{.key = "format_version", .value = "2"}, KVL_ERR_UNSUPPORTED,
         "version 2 is newer"},
        {{.key = "format_version", .value = "0"}, KVL_ERR_FORMAT,
         "format_version"},
        {{.key = "format_version", .value = "1.0"}, KVL_ERR_FORMAT,
         "'format_version' = '1.0' is not an integer"},
        {{.drop = "layers.1.v"}, KVL_ERR_FORMAT, "'layers.1.v' is missing"},
        {{.drop = "positions"}, KVL_ERR_FORMAT, "'positions' is missing"},
        {{.longer = "layers.0.k"}, KVL_ERR_FORMAT,
         "'layers.0.k' has shape [2, 4, 4], expected [2, 3, 4]"},
        {{.longer = "token_ids"}, KVL_ERR_FORMAT,
         "'token_ids' has shape [4], expected [3]"},
        {{.key = "n_tokens", .value = "2"}, KVL_ERR_FORMAT, "expected [2]"},
        {{.key = "n_kv_heads", .value = "1"}, KVL_ERR_FORMAT,
         "expected [1, 3, 4]"},
        {{.key = "n_layers", .value = "3"}, KVL_ERR_FORMAT,
         "'layers.2.k' is missing"},
        {{.as_f16 = "layers.1.k"}, KVL_ERR_FORMAT,
         "'layers.1.k' has dtype F16, expected F32"},
        {{.key = "dtype", .value = "F64"}, KVL_ERR_FORMAT, "'dtype' = 'F64'"},
        {{.extra = "layers.2.k"}, KVL_ERR_FORMAT,
         "unexpected tensor 'layers.2.k'"},
        {{.extra = "layers.01.k"}, KVL_ERR_FORMAT,
         "unexpected tensor 'layers.01.k'"},
        {{.extra = "layers.1"}, KVL_ERR_FORMAT, "unexpected tensor 'layers.1'"},
        {{.extra = "layers.0.q"}, KVL_ERR_FORMAT,
         "unexpected tensor 'layers.0.q'"},
        {{.key = "n_tokens", .value = "3x"}, KVL_ERR_FORMAT,
         "'n_tokens' = '3x' is not an integer"},
        {{.key = "n_tokens"}, KVL_ERR_FORMAT, "'n_tokens' is missing"},
        {{.key = "head_dim", .value = ""}, KVL_ERR_FORMAT,
         "'head_dim' = '' is not an integer"},
        {{.key = "n_layers", .value = " 2"}, KVL_ERR_FORMAT, "'n_layers'"},
        {{.key = "n_layers", .value = "99999999999"}, KVL_ERR_FORMAT,
         "'n_layers'"},
        {{.key = "n_layers", .value = "-2"}, KVL_ERR_FORMAT,
         "'n_layers' = -2 is out of range"},
        {{.key = "rope_theta", .value = "abc"}, KVL_ERR_FORMAT,
         "'rope_theta' = 'abc' is not a finite number"},
        {{.key = "rope_theta", .value = "1e999"}, KVL_ERR_FORMAT,
         "'rope_theta'"},
        {{.key = "rope_theta", .value = "nan"}, KVL_ERR_FORMAT, "'rope_theta'"},
        {{.key = "rope_theta", .value = "-5"}, KVL_ERR_FORMAT, "theta"},
        {{.key = "rope_factor", .value = "1,5"}, KVL_ERR_FORMAT,
         "'rope_factor'"},
        {{.key = "rope_rotary_dim", .value = "6"}, KVL_ERR_FORMAT,
         "rotary dimension 6"},
        {{.key = "rope_layout", .value = "spiral"}, KVL_ERR_FORMAT,
         "'rope_layout' = 'spiral' is not one of"},
        {{.key = "rope_scaling", .value = "llama3"}, KVL_ERR_FORMAT,
         "llama3"},
        {{.key = "model_fingerprint", .value = "not hex"}, KVL_ERR_FORMAT,
         "fingerprint"},
        {{.negative_position = 1}, KVL_ERR_FORMAT, "positions[1] = -1"},
    };
    char what[96];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(what, sizeof what, "case %zu (%s)", i, cases[i].needle);
        expect_load_fails(&cases[i].v, cases[i].code, cases[i].needle, what);
    }
}

/* Cuts a valid file at several lengths: every prefix must be rejected. */
static void test_truncated(void)
{
    kvl_rope r = llama3_rope(8);
    kvl_cache *c = make_cache(2, 2, 8, 3, 3, &r);
    const char *path = kvt_temp_path(".kvc");
    kvl_error err;
    CHECK_OK(kvl_cache_save(c, path, KVL_DTYPE_F16, &err), &err);
    FILE *fp = fopen(path, "rb");
    long size = 0;
    if (fp && fseek(fp, 0, SEEK_END) == 0)
        size = ftell(fp);
    if (fp)
        fclose(fp);
    CHECK(size > 100, "saved file is %ld bytes", size);
    const long cuts[] = {size - 1, size - 100, 200, 12, 4, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(truncate(path, cuts[i]) == 0, "truncate to %ld", cuts[i]);
        kvl_cache *back = NULL;
        kvl_status st = kvl_cache_load(path, &back, &err);
        CHECK(st == KVL_ERR_FORMAT, "cut at %ld: %s (%s)", cuts[i],
              kvl_status_name(st), err.message);
        CHECK(back == NULL, "cut at %ld: out not NULL", cuts[i]);
        kvl_cache_free(back);
        CHECK(strstr(err.message, path) != NULL, "message lacks file: %s",
              err.message);
    }
    kvl_cache *back = NULL;
    CHECK(kvl_cache_load("/nonexistent/dir/x.kvc", &back, &err) == KVL_ERR_IO,
          "missing file");
    CHECK(strstr(err.message, "/nonexistent/dir/x.kvc") != NULL, "%s",
          err.message);
    kvl_cache_free(c);
}

/* With KVT_CACHE_SAMPLES=<dir>, leaves sample files there for
 * tests/cache/test_cache_python.py (one cache in three dtypes, one empty). */
static void write_samples(const char *dir)
{
    static const kvl_dtype dtypes[] = {KVL_DTYPE_F32, KVL_DTYPE_F16,
                                       KVL_DTYPE_BF16};
    static const char *const names[] = {"f32", "f16", "bf16"};
    char path[4096];
    kvl_error err;
    kvl_rope r = llama3_rope(8);
    kvl_cache *c = make_cache(3, 2, 8, 5, 8, &r);
    for (int d = 0; d < 3; d++) {
        snprintf(path, sizeof path, "%s/sample-%s.kvc", dir, names[d]);
        CHECK_OK(kvl_cache_save(c, path, dtypes[d], &err), &err);
    }
    kvl_cache_free(c);
    c = make_cache(2, 2, 8, 0, 0, &r);
    snprintf(path, sizeof path, "%s/sample-empty.kvc", dir);
    CHECK_OK(kvl_cache_save(c, path, KVL_DTYPE_F16, &err), &err);
    kvl_cache_free(c);
}

int main(void)
{
    const char *samples = getenv("KVT_CACHE_SAMPLES");
    if (samples && *samples)
        write_samples(samples);
    test_roundtrips();
    test_metadata();
    test_handmade_valid();
    test_malformed();
    test_truncated();
    return kvt_finish();
}
