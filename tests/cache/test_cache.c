/*
 * The KV cache object: append / read / data / truncate / copy / slice /
 * concat against values computed from a formula, error codes, and key
 * re-positioning against a RoPE written out independently here.
 */
#include "cache/cache.h"
#include "model/model.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

enum { NL = 3, NKV = 2, HD = 4 };

/* The value every test stores: distinct for every (kv, layer, head, token,
 * dim), so a misplaced row shows up as a wrong number. */
static float val(int kv, int l, int h, int t, int d)
{
    return (float)(kv * 10000 + l * 1000 + h * 100 + t) + 0.125f * (float)d;
}

static kvl_rope plain_rope(int head_dim)
{
    kvl_rope r;
    memset(&r, 0, sizeof r);
    r.theta = 10000.0;
    r.layout = KVL_ROPE_ROTATE_HALF;
    r.scaling = KVL_ROPE_SCALING_NONE;
    r.factor = 1.0;
    r.rotary_dim = head_dim;
    return r;
}

static kvl_cache *make_cache(int capacity, const char *fp)
{
    kvl_rope r = plain_rope(HD);
    kvl_cache *c = NULL;
    kvl_error err;
    CHECK_OK(kvl_cache_create(NL, NKV, HD, &r, "LlamaForCausalLM", fp,
                              capacity, &c, &err), &err);
    return c;
}

/* Appends tokens [t0, t1) with id 100 + t and position 2 t. */
static void fill(kvl_cache *c, int t0, int t1)
{
    float k[NL * NKV * HD], v[NL * NKV * HD];
    kvl_error err;
    for (int t = t0; t < t1; t++) {
        for (int l = 0; l < NL; l++)
            for (int h = 0; h < NKV; h++)
                for (int d = 0; d < HD; d++) {
                    k[(l * NKV + h) * HD + d] = val(0, l, h, t, d);
                    v[(l * NKV + h) * HD + d] = val(1, l, h, t, d);
                }
        CHECK_OK(kvl_cache_append(c, 100 + t, 2 * t, k, v, &err), &err);
    }
}

/* Checks that c holds layers [l0, l0 + c->n_layers) and tokens [t0, t0 + n)
 * of the formula, with ids and positions from fill(); n <= 128. */
static void expect_content(const kvl_cache *c, int l0, int t0, int n)
{
    float row[128 * HD];
    kvl_error err;
    CHECK(kvl_cache_n_tokens(c) == n, "n_tokens %d, expected %d",
          kvl_cache_n_tokens(c), n);
    int bad = 0;
    for (int kv = 0; kv < 2; kv++)
        for (int l = 0; l < c->n_layers; l++)
            for (int h = 0; h < NKV; h++) {
                if (n == 0)
                    continue;
                CHECK_OK(kvl_cache_read(c, kv ? KVL_V : KVL_K, l, h, 0, n, row,
                                        &err), &err);
                const float *data = kvl_cache_data(c, kv ? KVL_V : KVL_K, l, h);
                for (int t = 0; t < n; t++)
                    for (int d = 0; d < HD; d++) {
                        float want = val(kv, l0 + l, h, t0 + t, d);
                        bad += row[t * HD + d] != want;
                        bad += data[t * HD + d] != want;
                    }
            }
    CHECK(bad == 0, "%d wrong values", bad);
    const int32_t *ids = kvl_cache_token_ids(c);
    const int32_t *pos = kvl_cache_positions(c);
    for (int t = 0; t < n; t++) {
        CHECK(ids[t] == 100 + t0 + t, "id[%d] = %d", t, (int)ids[t]);
        CHECK(pos[t] == 2 * (t0 + t), "pos[%d] = %d", t, (int)pos[t]);
    }
}

static void test_create(void)
{
    kvl_cache *c = make_cache(0, "");
    kvl_cache_info info;
    kvl_cache_get_info(c, &info);
    CHECK(info.n_layers == NL && info.n_kv_heads == NKV && info.head_dim == HD,
          "geometry %d %d %d", info.n_layers, info.n_kv_heads, info.head_dim);
    CHECK(info.n_tokens == 0, "n_tokens %d", info.n_tokens);
    CHECK(strcmp(info.arch_name, "LlamaForCausalLM") == 0, "%s", info.arch_name);
    CHECK(strcmp(info.fingerprint, "") == 0, "%s", info.fingerprint);
    CHECK(info.rope.theta == 10000.0 && info.rope.rotary_dim == HD, "rope");
    /* An empty cache still hands out valid (empty) arrays. */
    CHECK(kvl_cache_data(c, KVL_K, 0, 0) != NULL, "data of empty cache");
    kvl_cache_free(c);

    c = make_cache(37, FP_A);
    kvl_cache_get_info(c, &info);
    CHECK(info.capacity >= 37, "capacity %d", info.capacity);
    CHECK(strcmp(info.fingerprint, FP_A) == 0, "%s", info.fingerprint);
    kvl_cache_free(c);
    kvl_cache_free(NULL);

    kvl_rope r = plain_rope(HD);
    kvl_error err;
    c = (kvl_cache *)1;
    CHECK(kvl_cache_create(0, NKV, HD, &r, "", "", 4, &c, &err) == KVL_ERR_RANGE,
          "0 layers: %s", err.message);
    CHECK(c == NULL, "out cleared on failure");
    CHECK(kvl_cache_create(NL, NKV, HD, &r, "", "", -1, &c, &err) ==
              KVL_ERR_RANGE, "negative capacity");
    r.rotary_dim = 3;
    CHECK(kvl_cache_create(NL, NKV, HD, &r, "", "", 4, &c, &err) != KVL_OK,
          "odd rotary_dim accepted");
    r = plain_rope(HD);
    CHECK(kvl_cache_create(NL, NKV, HD, &r, "", "has space", 4, &c, &err) ==
              KVL_ERR_ARG, "bad fingerprint accepted");
    CHECK(kvl_cache_create(NL, NKV, HD, &r,
                           "A_very_long_architecture_name_that_does_not_fit_in_"
                           "sixty_four_characters", "", 4, &c, &err) ==
              KVL_ERR_ARG, "long arch name accepted");
}

static void test_append_read(void)
{
    kvl_cache *c = make_cache(1, "");
    int32_t last_cap = -1, n_growths = 0;
    kvl_cache_info info;
    for (int t = 0; t < 100; t++) {
        fill(c, t, t + 1);
        kvl_cache_get_info(c, &info);
        if (info.capacity != last_cap)
            n_growths++;
        last_cap = info.capacity;
        CHECK(info.capacity >= t + 1, "capacity %d < %d", info.capacity, t + 1);
    }
    /* Geometric growth: from 1 to >= 100 in about log2(100) steps. */
    CHECK(n_growths <= 9, "capacity changed %d times in 100 appends",
          n_growths);
    expect_content(c, 0, 0, 100);

    /* Partial read in the middle. */
    float row[2 * HD];
    kvl_error err;
    CHECK_OK(kvl_cache_read(c, KVL_V, 2, 1, 40, 2, row, &err), &err);
    CHECK(row[0] == 12140.0f && row[HD + 3] == 12141.375f, "%g %g",
          (double)row[0], (double)row[HD + 3]);

    /* Errors name the offending values. */
    CHECK(kvl_cache_read(c, KVL_K, 3, 0, 0, 1, row, &err) == KVL_ERR_RANGE,
          "layer 3");
    CHECK(strstr(err.message, "layer 3") != NULL, "%s", err.message);
    CHECK(kvl_cache_read(c, KVL_K, -1, 0, 0, 1, row, &err) == KVL_ERR_RANGE,
          "layer -1");
    CHECK(kvl_cache_read(c, KVL_K, 0, 2, 0, 1, row, &err) == KVL_ERR_RANGE,
          "head 2");
    CHECK(kvl_cache_read(c, KVL_K, 0, 0, 99, 2, row, &err) == KVL_ERR_RANGE,
          "tokens 99..101");
    CHECK(strstr(err.message, "[99, 101)") != NULL, "%s", err.message);
    CHECK(kvl_cache_read(c, KVL_K, 0, 0, -1, 1, row, &err) == KVL_ERR_RANGE,
          "tok0 -1");
    CHECK(kvl_cache_read(c, KVL_K, 0, 0, 0, -1, row, &err) == KVL_ERR_RANGE,
          "n -1");
    CHECK(kvl_cache_read(c, KVL_K, 0, 0, INT32_MAX, INT32_MAX, row, &err) ==
              KVL_ERR_RANGE, "overflowing range");
    CHECK(kvl_cache_read(c, (kvl_kv)2, 0, 0, 0, 1, row, &err) == KVL_ERR_ARG,
          "which = 2");
    CHECK(kvl_cache_data(c, KVL_K, NL, 0) == NULL, "data for layer NL");
    CHECK(kvl_cache_data(c, KVL_V, 0, -1) == NULL, "data for head -1");

    float kv[NL * NKV * HD] = {0};
    CHECK(kvl_cache_append(c, 1, -1, kv, kv, &err) == KVL_ERR_RANGE,
          "negative position");
    CHECK(kvl_cache_append(c, -5, 1, kv, kv, &err) == KVL_ERR_RANGE,
          "negative token id");
    CHECK(kvl_cache_append(c, 1, 1, NULL, kv, &err) == KVL_ERR_ARG, "NULL k");
    CHECK(kvl_cache_n_tokens(c) == 100, "failed appends changed the cache");
    kvl_cache_free(c);
}

static void test_truncate_copy(void)
{
    kvl_cache *c = make_cache(2, FP_A), *copy = NULL;
    kvl_error err;
    fill(c, 0, 6);
    CHECK_OK(kvl_cache_copy(c, &copy, &err), &err);

    CHECK_OK(kvl_cache_truncate(c, 3, &err), &err);
    expect_content(c, 0, 0, 3);
    float row[HD];
    CHECK(kvl_cache_read(c, KVL_K, 0, 0, 3, 1, row, &err) == KVL_ERR_RANGE,
          "read past truncation");
    CHECK(kvl_cache_truncate(c, 4, &err) == KVL_ERR_RANGE, "grow by truncate");
    CHECK(kvl_cache_truncate(c, -1, &err) == KVL_ERR_RANGE, "truncate -1");
    /* Appending after truncation overwrites the old slots. */
    fill(c, 3, 5);
    expect_content(c, 0, 0, 5);
    CHECK_OK(kvl_cache_truncate(c, 0, &err), &err);
    expect_content(c, 0, 0, 0);

    /* The copy is deep: untouched by all of the above. */
    expect_content(copy, 0, 0, 6);
    kvl_cache_info info;
    kvl_cache_get_info(copy, &info);
    CHECK(strcmp(info.fingerprint, FP_A) == 0, "copy fingerprint");
    kvl_cache_free(c);
    kvl_cache_free(copy);
}

static void test_slice(void)
{
    kvl_cache *c = make_cache(4, ""), *s = NULL;
    kvl_error err;
    fill(c, 0, 7);
    CHECK_OK(kvl_cache_slice(c, 1, 3, 2, 6, &s, &err), &err);
    CHECK(s->n_layers == 2, "slice layers %d", s->n_layers);
    expect_content(s, 1, 2, 4);
    kvl_cache_free(s);

    s = NULL;
    CHECK_OK(kvl_cache_slice(c, 0, 1, 7, 7, &s, &err), &err);
    expect_content(s, 0, 7, 0);
    kvl_cache_free(s);

    CHECK(kvl_cache_slice(c, 1, 1, 0, 1, &s, &err) == KVL_ERR_RANGE,
          "empty layer range");
    CHECK(kvl_cache_slice(c, 0, 4, 0, 1, &s, &err) == KVL_ERR_RANGE,
          "layer1 4 > 3");
    CHECK(strstr(err.message, "[0, 4)") != NULL, "%s", err.message);
    CHECK(kvl_cache_slice(c, 0, 1, 3, 8, &s, &err) == KVL_ERR_RANGE,
          "tok1 8 > 7");
    CHECK(kvl_cache_slice(c, 0, 1, 4, 3, &s, &err) == KVL_ERR_RANGE,
          "tok1 < tok0");
    kvl_cache_free(c);
}

static void test_concat(void)
{
    kvl_cache *a = make_cache(1, FP_A), *b = make_cache(1, ""), *ab = NULL;
    kvl_error err;
    fill(a, 0, 3);
    fill(b, 3, 8);
    CHECK_OK(kvl_cache_concat(a, b, &ab, &err), &err);
    expect_content(ab, 0, 0, 8);
    kvl_cache_info info;
    kvl_cache_get_info(ab, &info);
    CHECK(strcmp(info.fingerprint, FP_A) == 0, "known fingerprint kept");
    kvl_cache_free(ab);

    /* Empty + cache = cache. */
    kvl_cache *e = make_cache(0, FP_A);
    CHECK_OK(kvl_cache_concat(e, a, &ab, &err), &err);
    expect_content(ab, 0, 0, 3);
    kvl_cache_free(ab);
    kvl_cache_free(e);

    kvl_cache *other = make_cache(1, FP_B);
    CHECK(kvl_cache_concat(a, other, &ab, &err) == KVL_ERR_MISMATCH,
          "different fingerprints");
    CHECK(strstr(err.message, "fingerprint") != NULL, "%s", err.message);
    kvl_cache_free(other);

    kvl_rope r = plain_rope(HD);
    kvl_rope r8 = plain_rope(2 * HD);
    CHECK_OK(kvl_cache_create(NL, NKV, 2 * HD, &r8, "", "", 1, &other, &err),
             &err);
    CHECK(kvl_cache_concat(a, other, &ab, &err) == KVL_ERR_MISMATCH,
          "different head_dim");
    CHECK(strstr(err.message, "head_dim 4 vs 8") != NULL, "%s", err.message);
    kvl_cache_free(other);

    CHECK_OK(kvl_cache_create(NL - 1, NKV, HD, &r, "", "", 1, &other, &err),
             &err);
    CHECK(kvl_cache_concat(a, other, &ab, &err) == KVL_ERR_MISMATCH,
          "different n_layers");
    kvl_cache_free(other);

    r.theta = 500000.0;
    CHECK_OK(kvl_cache_create(NL, NKV, HD, &r, "", "", 1, &other, &err), &err);
    CHECK(kvl_cache_concat(a, other, &ab, &err) == KVL_ERR_MISMATCH,
          "different rope theta");
    CHECK(strstr(err.message, "theta") != NULL, "%s", err.message);
    kvl_cache_free(other);
    kvl_cache_free(a);
    kvl_cache_free(b);
}

/* ------------------------------------------------------------------------ */
/* Re-positioning                                                            */
/* ------------------------------------------------------------------------ */

enum { RHD = 16 };

/* Deterministic numbers in [-1, 1). */
static float rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffffffu) / 8388608.0f - 1.0f;
}

/* llama3 parameters chosen so that, with theta 500000 and head_dim 16, the
 * frequencies fall in all three regimes (kept, smoothed, divided). */
static kvl_rope rope_of(kvl_rope_layout layout, kvl_rope_scaling_type scaling)
{
    kvl_rope r = plain_rope(RHD);
    r.layout = layout;
    r.scaling = scaling;
    if (scaling == KVL_ROPE_SCALING_LINEAR) {
        r.factor = 4.0;
    } else if (scaling == KVL_ROPE_SCALING_LLAMA3) {
        r.theta = 500000.0;
        r.factor = 8.0;
        r.low_freq_factor = 1.0;
        r.high_freq_factor = 4.0;
        r.original_max_position = 64;
    }
    return r;
}

/* Reference inverse frequencies, in double, from the definitions:
 * 1 / theta^(2i/d); linear divides by the factor; llama3 (Meta's
 * apply_scaling) keeps short wavelengths, divides long ones and blends
 * linearly in between. */
static void ref_inv_freq(const kvl_rope *r, double *f)
{
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < RHD / 2; i++) {
        double base = 1.0 / pow(r->theta, 2.0 * i / RHD);
        f[i] = base;
        if (r->scaling == KVL_ROPE_SCALING_LINEAR) {
            f[i] = base / r->factor;
        } else if (r->scaling == KVL_ROPE_SCALING_LLAMA3) {
            double wavelen = 2.0 * pi / base;
            double low_wl = r->original_max_position / r->low_freq_factor;
            double high_wl = r->original_max_position / r->high_freq_factor;
            if (wavelen > low_wl) {
                f[i] = base / r->factor;
            } else if (wavelen >= high_wl) {
                double s = (r->original_max_position / wavelen -
                            r->low_freq_factor) /
                           (r->high_freq_factor - r->low_freq_factor);
                f[i] = (1.0 - s) * base / r->factor + s * base;
            }
        }
    }
}

/* x rotated to position p: pairs (i, i + d/2) for rotate_half, (2i, 2i+1)
 * for interleaved; each pair (a, b) -> (a cos - b sin, b cos + a sin). */
static void ref_rotate(const kvl_rope *r, const double *f, const float *x,
                       int32_t p, double *out)
{
    for (int i = 0; i < RHD / 2; i++) {
        int ia = r->layout == KVL_ROPE_INTERLEAVED ? 2 * i : i;
        int ib = r->layout == KVL_ROPE_INTERLEAVED ? 2 * i + 1 : i + RHD / 2;
        double c = cos(p * f[i]), s = sin(p * f[i]);
        out[ia] = x[ia] * c - x[ib] * s;
        out[ib] = x[ib] * c + x[ia] * s;
    }
}

static double rel_err_d(const float *a, const double *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num / den);
}

static const char *const layout_names[] = {"rotate_half", "interleaved"};
static const char *const scaling_names[] = {"none", "linear", "llama3"};

/* Shift by +d then -d restores the keys; values never change. */
static void roundtrip_case(const kvl_rope *r, const char *what)
{
    enum { L = 2, H = 2, T = 5 };
    static const int32_t pos[T] = {0, 7, 100, 1000, 5000};
    kvl_cache *c = NULL;
    kvl_error err;
    uint32_t seed = 12345;
    CHECK_OK(kvl_cache_create(L, H, RHD, r, "", "", 2, &c, &err), &err);
    for (int t = 0; t < T; t++) {
        float k[L * H * RHD], v[L * H * RHD];
        for (int i = 0; i < L * H * RHD; i++) {
            k[i] = rnd(&seed);
            v[i] = rnd(&seed);
        }
        CHECK_OK(kvl_cache_append(c, t, pos[t], k, v, &err), &err);
    }
    kvl_cache *orig = NULL;
    CHECK_OK(kvl_cache_copy(c, &orig, &err), &err);

    for (int32_t d = 1; d <= 100000; d *= 317) {
        CHECK_OK(kvl_cache_shift(c, d, &err), &err);
        CHECK(kvl_cache_positions(c)[4] == 5000 + d, "%s: shifted position",
              what);
        /* The keys did move (else the round trip would prove nothing). */
        double moved = kvt_rel_err(kvl_cache_data(c, KVL_K, 1, 1),
                                   kvl_cache_data(orig, KVL_K, 1, 1), T * RHD);
        CHECK(moved > 1e-3, "%s: shift by %d left keys unchanged", what,
              (int)d);
        CHECK_OK(kvl_cache_shift(c, -d, &err), &err);
        for (int l = 0; l < L; l++)
            for (int h = 0; h < H; h++) {
                double e = kvt_rel_err(kvl_cache_data(c, KVL_K, l, h),
                                       kvl_cache_data(orig, KVL_K, l, h),
                                       T * RHD);
                CHECK(e < 1e-5, "%s: +%d -%d rel err %g", what, (int)d,
                      (int)d, e);
                CHECK(memcmp(kvl_cache_data(c, KVL_V, l, h),
                             kvl_cache_data(orig, KVL_V, l, h),
                             T * RHD * sizeof(float)) == 0,
                      "%s: values changed", what);
            }
        CHECK(memcmp(kvl_cache_positions(c), pos, sizeof pos) == 0,
              "%s: positions not restored", what);
    }
    kvl_cache_free(orig);
    kvl_cache_free(c);
}

/* A key rotated here to p0, stored, re-positioned to p1 by the cache, must
 * equal the key rotated here directly to p1. */
static void direct_case(const kvl_rope *r, const char *what)
{
    enum { T = 6 };
    static const int32_t p0[T] = {7, 40, 0, 25, 3, 1};
    static const int32_t p1[T] = {40, 2, 13, 25, 0, 31};
    double f[RHD / 2], rot[RHD];
    float x[T][RHD], stored[RHD], zero[RHD] = {0};
    kvl_cache *c = NULL;
    kvl_error err;
    uint32_t seed = 777;
    ref_inv_freq(r, f);
    CHECK_OK(kvl_cache_create(1, 1, RHD, r, "", "", T, &c, &err), &err);
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < RHD; i++)
            x[t][i] = rnd(&seed);
        ref_rotate(r, f, x[t], p0[t], rot);
        for (int i = 0; i < RHD; i++)
            stored[i] = (float)rot[i];
        CHECK_OK(kvl_cache_append(c, t, p0[t], stored, zero, &err), &err);
    }
    CHECK_OK(kvl_cache_reposition(c, p1, &err), &err);
    for (int t = 0; t < T; t++) {
        float got[RHD];
        CHECK_OK(kvl_cache_read(c, KVL_K, 0, 0, t, 1, got, &err), &err);
        ref_rotate(r, f, x[t], p1[t], rot);
        double e = rel_err_d(got, rot, RHD);
        CHECK(e < 1e-5, "%s: %d -> %d rel err %g", what, (int)p0[t],
              (int)p1[t], e);
        CHECK(kvl_cache_positions(c)[t] == p1[t], "%s: position %d", what,
              (int)kvl_cache_positions(c)[t]);
    }
    kvl_cache_free(c);
}

static void test_reposition(void)
{
    char what[64];
    for (int lay = 0; lay < 2; lay++)
        for (int sc = 0; sc < 3; sc++) {
            kvl_rope r = rope_of((kvl_rope_layout)lay, (kvl_rope_scaling_type)sc);
            snprintf(what, sizeof what, "%s/%s", layout_names[lay],
                     scaling_names[sc]);
            roundtrip_case(&r, what);
            direct_case(&r, what);
        }

    /* Errors leave the cache untouched. */
    kvl_cache *c = make_cache(4, "");
    kvl_error err;
    fill(c, 0, 3); /* positions 0, 2, 4 */
    CHECK(kvl_cache_shift(c, -1, &err) == KVL_ERR_RANGE, "shift below 0");
    CHECK(strstr(err.message, "-1") != NULL, "%s", err.message);
    int32_t bad[3] = {5, -2, 9};
    CHECK(kvl_cache_reposition(c, bad, &err) == KVL_ERR_RANGE,
          "negative new position");
    CHECK(kvl_cache_reposition(c, NULL, &err) == KVL_ERR_ARG, "NULL positions");
    expect_content(c, 0, 0, 3);
    CHECK(kvl_cache_shift(c, INT32_MAX - 3, &err) == KVL_ERR_RANGE,
          "shift past INT32_MAX");
    CHECK(strstr(err.message, "2147483648") != NULL, "%s", err.message);
    expect_content(c, 0, 0, 3);
    CHECK_OK(kvl_cache_shift(c, INT32_MAX - 4, &err), &err);
    CHECK(kvl_cache_positions(c)[2] == INT32_MAX, "position %d",
          (int)kvl_cache_positions(c)[2]);
    kvl_cache_free(c);
}

/* ------------------------------------------------------------------------ */
/* Models                                                                    */
/* ------------------------------------------------------------------------ */

/* A model struct with only what the cache reads: geometry, rope, names. */
static void fake_model(kvl_model *m)
{
    memset(m, 0, sizeof *m);
    m->cfg.arch = KVL_ARCH_LLAMA;
    snprintf(m->cfg.arch_name, sizeof m->cfg.arch_name, "LlamaForCausalLM");
    m->cfg.n_layers = NL;
    m->cfg.n_kv_heads = NKV;
    m->cfg.head_dim = HD;
    m->cfg.rope = plain_rope(HD);
    snprintf(m->fingerprint, sizeof m->fingerprint, "%s", FP_A);
}

static void test_model(void)
{
    kvl_model m, other;
    kvl_cache *c = NULL;
    kvl_error err;
    fake_model(&m);
    CHECK_OK(kvl_cache_new(&m, 8, &c, &err), &err);
    kvl_cache_info info;
    kvl_cache_get_info(c, &info);
    CHECK(info.n_layers == NL && info.n_kv_heads == NKV && info.head_dim == HD &&
              info.capacity >= 8 && info.n_tokens == 0,
          "geometry from model");
    CHECK(strcmp(info.fingerprint, FP_A) == 0, "fingerprint %s",
          info.fingerprint);
    CHECK(strcmp(info.arch_name, "LlamaForCausalLM") == 0, "arch %s",
          info.arch_name);
    CHECK_OK(kvl_cache_check_model(c, &m, 0, &err), &err);

    fake_model(&other);
    other.cfg.n_kv_heads = 1;
    CHECK(kvl_cache_check_model(c, &other, 1, &err) == KVL_ERR_MISMATCH,
          "kv heads differ, even forced");
    CHECK(strstr(err.message, "n_kv_heads 2 vs 1") != NULL, "%s", err.message);

    fake_model(&other);
    other.cfg.rope.layout = KVL_ROPE_INTERLEAVED;
    CHECK(kvl_cache_check_model(c, &other, 1, &err) == KVL_ERR_MISMATCH,
          "rope layout differs");
    CHECK(strstr(err.message, "layout rotate_half vs interleaved") != NULL,
          "%s", err.message);

    /* A parameter the scaling type does not use is not a difference. */
    fake_model(&other);
    other.cfg.rope.factor = 3.0;
    CHECK_OK(kvl_cache_check_model(c, &other, 0, &err), &err);

    fake_model(&other);
    snprintf(other.fingerprint, sizeof other.fingerprint, "%s", FP_B);
    CHECK(kvl_cache_check_model(c, &other, 0, &err) == KVL_ERR_MISMATCH,
          "fingerprint differs");
    CHECK(strstr(err.message, FP_B) != NULL, "%s", err.message);
    CHECK_OK(kvl_cache_check_model(c, &other, 1, &err), &err);
    CHECK(kvl_cache_check_model(c, NULL, 0, &err) == KVL_ERR_ARG, "NULL model");
    kvl_cache_free(c);
}

int main(void)
{
    test_create();
    test_append_read();
    test_truncate_copy();
    test_slice();
    test_concat();
    test_reposition();
    test_model();
    return kvt_finish();
}
