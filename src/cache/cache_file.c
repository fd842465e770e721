/*
 * Cache files, format v1 (docs/cache-format.md): a safetensors file with
 * layers.{i}.k / layers.{i}.v [n_kv_heads, n_tokens, head_dim] in F32, F16
 * or BF16, token_ids and positions (I32 [n_tokens]) and string metadata
 * describing geometry, rope and origin.  Loading trusts nothing: every key,
 * number, tensor name, dtype and shape is checked against the metadata.
 */
#include "cache/cache.h"

#include "core/dtype.h"
#include "core/error.h"
#include "core/rope.h"
#include "model/safetensors.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cache files are little-endian; a byte-swapping path is not written yet"
#endif

#define KVC_FORMAT "kvlab.kvcache"
#define KVC_VERSION 1
#define KVC_N_META 18
#define KVC_NAME_MAX 32 /* "layers.65535.k" and the like */

/* ------------------------------------------------------------------------ */
/* Saving                                                                    */
/* ------------------------------------------------------------------------ */

/* Metadata as owned strings; keys are literals. */
typedef struct meta_buf {
    kvl_st_meta items[KVC_N_META];
    char values[KVC_N_META][96];
    int n;
} meta_buf;

static void meta_add(meta_buf *m, const char *key, const char *fmt, ...)
    KVL_PRINTF(3, 4);
static void meta_add(meta_buf *m, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->values[m->n], sizeof m->values[0], fmt, ap);
    va_end(ap);
    m->items[m->n].key = (char *)key;
    m->items[m->n].value = m->values[m->n];
    m->n++;
}

static void build_meta(const kvl_cache *c, kvl_dtype dtype, meta_buf *m)
{
    const kvl_rope *r = &c->rope;
    m->n = 0;
    meta_add(m, "format", "%s", KVC_FORMAT);
    meta_add(m, "format_version", "%d", KVC_VERSION);
    meta_add(m, "architecture", "%s", c->arch_name);
    meta_add(m, "model_fingerprint", "%s", c->fingerprint);
    meta_add(m, "n_layers", "%d", (int)c->n_layers);
    meta_add(m, "n_kv_heads", "%d", (int)c->n_kv_heads);
    meta_add(m, "head_dim", "%d", (int)c->head_dim);
    meta_add(m, "n_tokens", "%d", (int)c->n_tokens);
    meta_add(m, "dtype", "%s", kvl_dtype_name(dtype));
    /* %.17g round-trips every double exactly. */
    meta_add(m, "rope_theta", "%.17g", r->theta);
    meta_add(m, "rope_layout", "%s", kvl_rope_layout_name(r->layout));
    meta_add(m, "rope_scaling", "%s", kvl_rope_scaling_name(r->scaling));
    meta_add(m, "rope_factor", "%.17g", r->factor);
    meta_add(m, "rope_low_freq_factor", "%.17g", r->low_freq_factor);
    meta_add(m, "rope_high_freq_factor", "%.17g", r->high_freq_factor);
    meta_add(m, "rope_original_max_position", "%d",
             (int)r->original_max_position);
    meta_add(m, "rope_rotary_dim", "%d", (int)r->rotary_dim);
    meta_add(m, "kvlab_version", "%s", kvl_version());
}

/*
 * Points t at the contiguous [n_kv_heads, n_tokens, head_dim] image of one
 * plane in `dtype`.  The in-memory rows have stride `capacity`, so unless
 * they already are contiguous fp32 the image is built in a new buffer,
 * returned in *owned (else *owned = NULL).
 */
static kvl_status plane_image(const kvl_cache *c, kvl_kv which, int32_t layer,
                              kvl_dtype dtype, kvl_st_write_tensor *t,
                              void **owned)
{
    const size_t per_head = (size_t)c->n_tokens * (size_t)c->head_dim;
    const size_t dsize = kvl_dtype_size(dtype);
    t->dtype = dtype;
    t->ndim = 3;
    t->shape[0] = c->n_kv_heads;
    t->shape[1] = c->n_tokens;
    t->shape[2] = c->head_dim;
    *owned = NULL;
    if (dtype == KVL_DTYPE_F32 &&
        (c->n_kv_heads == 1 || c->n_tokens == c->capacity || c->n_tokens == 0)) {
        t->data = kvl_cache_row(c, which, layer, 0, 0);
        return KVL_OK;
    }
    /* Cannot overflow: smaller than the plane the cache already holds. */
    unsigned char *buf = malloc((size_t)c->n_kv_heads * per_head * dsize);
    if (!buf)
        return KVL_ERR_NOMEM;
    for (int32_t h = 0; h < c->n_kv_heads; h++)
        kvl_convert_from_f32(buf + (size_t)h * per_head * dsize, dtype,
                             kvl_cache_row(c, which, layer, h, 0), per_head);
    t->data = buf;
    *owned = buf;
    return KVL_OK;
}

static void int_tensor(kvl_st_write_tensor *t, const char *name,
                       const int32_t *data, int32_t n)
{
    t->name = name;
    t->dtype = KVL_DTYPE_I32;
    t->ndim = 1;
    t->shape[0] = n;
    t->data = data;
}

/* Fills tensors[0 .. 2*n_layers) with the K/V planes; names and owned
 * buffers go to the arrays given (2*n_layers entries each). */
static kvl_status plane_tensors(const kvl_cache *c, kvl_dtype dtype,
                                kvl_st_write_tensor *tensors,
                                char (*names)[KVC_NAME_MAX], void **owned)
{
    for (int32_t l = 0; l < c->n_layers; l++) {
        for (int kv = 0; kv < 2; kv++) {
            size_t i = 2 * (size_t)l + (size_t)kv;
            snprintf(names[i], KVC_NAME_MAX, "layers.%d.%c", (int)l,
                     kv ? 'v' : 'k');
            tensors[i].name = names[i];
            kvl_status st = plane_image(c, kv ? KVL_V : KVL_K, l, dtype,
                                        &tensors[i], &owned[i]);
            if (st != KVL_OK)
                return st;
        }
    }
    return KVL_OK;
}

kvl_status kvl_cache_save(const kvl_cache *cache, const char *path,
                          kvl_dtype dtype, kvl_error *err)
{
    if (!cache || !path)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_cache_save: cache and path must not be NULL");
    if (dtype != KVL_DTYPE_F32 && dtype != KVL_DTYPE_F16 &&
        dtype != KVL_DTYPE_BF16)
        return kvl_fail(err, KVL_ERR_ARG,
                        "file '%s': cache dtype must be F32, F16 or BF16, "
                        "not %s",
                        path, kvl_dtype_name(dtype));
    const size_t n_planes = 2 * (size_t)cache->n_layers;
    kvl_st_write_tensor *tensors = calloc(n_planes + 2, sizeof *tensors);
    char (*names)[KVC_NAME_MAX] = calloc(n_planes, sizeof *names);
    void **owned = calloc(n_planes, sizeof *owned);
    kvl_status st = KVL_ERR_NOMEM;
    if (tensors && names && owned)
        st = plane_tensors(cache, dtype, tensors, names, owned);
    if (st == KVL_OK) {
        meta_buf meta;
        build_meta(cache, dtype, &meta);
        int_tensor(&tensors[n_planes], "token_ids", cache->token_ids,
                   cache->n_tokens);
        int_tensor(&tensors[n_planes + 1], "positions", cache->positions,
                   cache->n_tokens);
        st = kvl_st_write(path, tensors, (int)n_planes + 2, meta.items, meta.n,
                          err);
    } else {
        kvl_fail(err, st, "file '%s': out of memory preparing the cache "
                 "tensors", path);
    }
    for (size_t i = 0; owned && i < n_planes; i++)
        free(owned[i]);
    free(owned);
    free(names);
    free(tensors);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Loading: metadata                                                         */
/* ------------------------------------------------------------------------ */

typedef struct kvc_header {
    int32_t n_layers, n_kv_heads, head_dim, n_tokens;
    kvl_dtype dtype;
    kvl_rope rope;
    const char *arch_name;   /* borrowed from the open file */
    const char *fingerprint; /* borrowed from the open file */
} kvc_header;

static kvl_status meta_str(const kvl_st_file *f, const char *path,
                           const char *key, const char **out, kvl_error *err)
{
    *out = kvl_st_meta_get(f, key);
    if (!*out)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': cache metadata key '%s' is missing", path,
                        key);
    return KVL_OK;
}

/* An integer in [lo, hi] written in full (no blanks, no trailing text). */
static kvl_status meta_int(const kvl_st_file *f, const char *path,
                           const char *key, long lo, long hi, int32_t *out,
                           kvl_error *err)
{
    const char *s;
    kvl_status st = meta_str(f, path, key, &s, err);
    if (st != KVL_OK)
        return st;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)s[0]) ||
        errno == ERANGE)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': cache metadata '%s' = '%.64s' is not an "
                        "integer",
                        path, key, s);
    if (v < lo || v > hi)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': cache metadata '%s' = %ld is out of range "
                        "[%ld, %ld]",
                        path, key, v, lo, hi);
    *out = (int32_t)v;
    return KVL_OK;
}

/* A finite real number written in full. */
static kvl_status meta_double(const kvl_st_file *f, const char *path,
                              const char *key, double *out, kvl_error *err)
{
    const char *s;
    kvl_status st = meta_str(f, path, key, &s, err);
    if (st != KVL_OK)
        return st;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || isspace((unsigned char)s[0]) ||
        errno == ERANGE || !isfinite(v))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': cache metadata '%s' = '%.64s' is not a "
                        "finite number",
                        path, key, s);
    *out = v;
    return KVL_OK;
}

/* Looks `s` up in names[0..n); the index is the enum value. */
static kvl_status meta_enum(const kvl_st_file *f, const char *path,
                            const char *key, const char *const *names, int n,
                            int *out, kvl_error *err)
{
    const char *s;
    kvl_status st = meta_str(f, path, key, &s, err);
    if (st != KVL_OK)
        return st;
    for (int i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return KVL_OK;
        }
    }
    char allowed[128] = "";
    for (int i = 0; i < n; i++)
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed),
                 "%s'%s'", i ? ", " : "", names[i]);
    return kvl_fail(err, KVL_ERR_FORMAT,
                    "file '%s': cache metadata '%s' = '%.64s' is not one of %s",
                    path, key, s, allowed);
}

/* "format" and "format_version": checked first so that a file of another
 * kind or a newer kvlab gets the message that explains it. */
static kvl_status read_format(const kvl_st_file *f, const char *path,
                              kvl_error *err)
{
    const char *format = kvl_st_meta_get(f, "format");
    if (!format || strcmp(format, KVC_FORMAT) != 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': not a kvlab cache file (metadata 'format' "
                        "is %s%.64s%s, expected '" KVC_FORMAT "')",
                        path, format ? "'" : "", format ? format : "missing",
                        format ? "'" : "");
    int32_t version;
    kvl_status st = meta_int(f, path, "format_version", 1, INT32_MAX,
                             &version, err);
    if (st != KVL_OK)
        return st;
    if (version > KVC_VERSION)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': cache format version %d is newer than the "
                        "version %d that kvlab %s reads; use a newer kvlab",
                        path, (int)version, KVC_VERSION, kvl_version());
    return KVL_OK;
}

static kvl_status read_rope(const kvl_st_file *f, const char *path,
                            kvl_rope *r, kvl_error *err)
{
    /* Index = enum value (kvl_rope_layout / kvl_rope_scaling_type). */
    static const char *const layouts[] = {"rotate_half", "interleaved"};
    static const char *const scalings[] = {"none", "linear", "llama3"};
    int layout = 0, scaling = 0;
    kvl_status st = meta_double(f, path, "rope_theta", &r->theta, err);
    if (st == KVL_OK)
        st = meta_enum(f, path, "rope_layout", layouts, 2, &layout, err);
    if (st == KVL_OK)
        st = meta_enum(f, path, "rope_scaling", scalings, 3, &scaling, err);
    if (st == KVL_OK)
        st = meta_double(f, path, "rope_factor", &r->factor, err);
    if (st == KVL_OK)
        st = meta_double(f, path, "rope_low_freq_factor", &r->low_freq_factor,
                         err);
    if (st == KVL_OK)
        st = meta_double(f, path, "rope_high_freq_factor",
                         &r->high_freq_factor, err);
    if (st == KVL_OK)
        st = meta_int(f, path, "rope_original_max_position", INT32_MIN,
                      INT32_MAX, &r->original_max_position, err);
    if (st == KVL_OK)
        st = meta_int(f, path, "rope_rotary_dim", 1, INT32_MAX,
                      &r->rotary_dim, err);
    r->layout = (kvl_rope_layout)layout;
    r->scaling = (kvl_rope_scaling_type)scaling;
    return st;
}

static kvl_status read_header(const kvl_st_file *f, const char *path,
                              kvc_header *h, kvl_error *err)
{
    static const char *const dtypes[] = {"F32", "F16", "BF16"}; /* = enum */
    int dtype = 0;
    memset(h, 0, sizeof *h);
    kvl_status st = read_format(f, path, err);
    if (st == KVL_OK)
        st = meta_str(f, path, "architecture", &h->arch_name, err);
    if (st == KVL_OK)
        st = meta_str(f, path, "model_fingerprint", &h->fingerprint, err);
    if (st == KVL_OK)
        st = meta_int(f, path, "n_layers", 1, INT32_MAX, &h->n_layers, err);
    if (st == KVL_OK)
        st = meta_int(f, path, "n_kv_heads", 1, INT32_MAX, &h->n_kv_heads, err);
    if (st == KVL_OK)
        st = meta_int(f, path, "head_dim", 1, INT32_MAX, &h->head_dim, err);
    if (st == KVL_OK)
        st = meta_int(f, path, "n_tokens", 0, INT32_MAX, &h->n_tokens, err);
    if (st == KVL_OK)
        st = meta_enum(f, path, "dtype", dtypes, 3, &dtype, err);
    if (st == KVL_OK)
        st = read_rope(f, path, &h->rope, err);
    if (st == KVL_OK) {
        st = kvl_rope_validate(&h->rope, h->head_dim, err);
        if (st != KVL_OK)
            kvl_error_prefix(err, st, "file '%s': invalid cache rope", path);
    }
    h->dtype = (kvl_dtype)dtype;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Loading: tensors                                                          */
/* ------------------------------------------------------------------------ */

/* Finds `name` and checks its dtype and exact shape. */
static kvl_status expect_tensor(const kvl_st_file *f, const char *path,
                                const char *name, kvl_dtype dtype, int ndim,
                                const int64_t *shape, kvl_error *err)
{
    const kvl_st_tensor *t = kvl_st_find(f, name);
    if (!t)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': cache tensor '%s' is missing", path, name);
    if (t->dtype != dtype)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': cache tensor '%s' has dtype %s, expected "
                        "%s",
                        path, name, t->dtype_name, kvl_dtype_name(dtype));
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[160], want[160];
        kvl_st_format_shape(t->shape, t->ndim, got, sizeof got);
        kvl_st_format_shape(shape, ndim, want, sizeof want);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': cache tensor '%s' has shape %s, expected "
                        "%s from the metadata",
                        path, name, got, want);
    }
    size_t n = kvl_dtype_size(dtype);
    for (int i = 0; i < ndim && n != SIZE_MAX; i++)
        n = shape[i] != 0 && n > SIZE_MAX / (size_t)shape[i]
                ? SIZE_MAX /* overflow: cannot equal a real size */
                : n * (size_t)shape[i];
    if (t->nbytes != n)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': cache tensor '%s' holds %zu bytes, its "
                        "shape needs %zu",
                        path, name, t->nbytes, n);
    return KVL_OK;
}

/* 1 if `name` is one of the tensors a v1 cache of n_layers layers has. */
static int expected_name(const char *name, int32_t n_layers)
{
    if (strcmp(name, "token_ids") == 0 || strcmp(name, "positions") == 0)
        return 1;
    if (strncmp(name, "layers.", 7) != 0 || !isdigit((unsigned char)name[7]))
        return 0;
    char *end;
    long l = strtol(name + 7, &end, 10);
    if (l < 0 || l >= n_layers ||
        (strcmp(end, ".k") != 0 && strcmp(end, ".v") != 0))
        return 0;
    /* Rejects spellings strtol accepts but kvlab never writes: "01". */
    char canon[KVC_NAME_MAX];
    snprintf(canon, sizeof canon, "layers.%ld%s", l, end);
    return strcmp(canon, name) == 0;
}

/* Every expected tensor with the right dtype and shape, and nothing else. */
static kvl_status check_tensors(const kvl_st_file *f, const char *path,
                                const kvc_header *h, kvl_error *err)
{
    const int64_t plane_shape[3] = {h->n_kv_heads, h->n_tokens, h->head_dim};
    const int64_t vec_shape[1] = {h->n_tokens};
    char name[KVC_NAME_MAX];
    kvl_status st = expect_tensor(f, path, "token_ids", KVL_DTYPE_I32, 1,
                                  vec_shape, err);
    if (st == KVL_OK)
        st = expect_tensor(f, path, "positions", KVL_DTYPE_I32, 1, vec_shape,
                           err);
    for (int32_t l = 0; st == KVL_OK && l < h->n_layers; l++) {
        for (int kv = 0; st == KVL_OK && kv < 2; kv++) {
            snprintf(name, sizeof name, "layers.%d.%c", (int)l, kv ? 'v' : 'k');
            st = expect_tensor(f, path, name, h->dtype, 3, plane_shape, err);
        }
    }
    if (st != KVL_OK)
        return st;
    /* All distinct expected names were found; any surplus is unexpected. */
    if ((int64_t)f->n_tensors == 2 * (int64_t)h->n_layers + 2)
        return KVL_OK;
    for (int i = 0; i < f->n_tensors; i++)
        if (!expected_name(f->tensors[i].name, h->n_layers))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': unexpected tensor '%.64s' in a cache "
                            "of %d layers",
                            path, f->tensors[i].name, (int)h->n_layers);
    return kvl_fail(err, KVL_ERR_FORMAT,
                    "file '%s': %d tensors where a cache of %d layers has %lld",
                    path, f->n_tensors, (int)h->n_layers,
                    2 * (long long)h->n_layers + 2);
}

/* Copies token ids and positions, which must be non-negative. */
static kvl_status read_ints(const kvl_st_tensor *t, const char *path,
                            int32_t *dst, int32_t n, kvl_error *err)
{
    for (int32_t i = 0; i < n; i++) {
        memcpy(&dst[i], t->data + 4 * (size_t)i, 4); /* may be unaligned */
        if (dst[i] < 0)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': %s[%d] = %d is negative", path,
                            t->name, (int)i, (int)dst[i]);
    }
    return KVL_OK;
}

/* Converts the checked tensors of f into the empty cache c. */
static kvl_status fill_cache(kvl_cache *c, const kvc_header *h,
                             const kvl_st_file *f, const char *path,
                             kvl_error *err)
{
    kvl_status st = read_ints(kvl_st_find(f, "token_ids"), path, c->token_ids,
                              h->n_tokens, err);
    if (st == KVL_OK)
        st = read_ints(kvl_st_find(f, "positions"), path, c->positions,
                       h->n_tokens, err);
    if (st != KVL_OK || h->n_tokens == 0)
        return st;
    const size_t per_head = (size_t)h->n_tokens * (size_t)h->head_dim;
    const size_t head_bytes = per_head * kvl_dtype_size(h->dtype);
    char name[KVC_NAME_MAX];
    for (int32_t l = 0; l < h->n_layers; l++) {
        for (int kv = 0; kv < 2; kv++) {
            snprintf(name, sizeof name, "layers.%d.%c", (int)l, kv ? 'v' : 'k');
            const uint8_t *src = kvl_st_find(f, name)->data;
            for (int32_t hh = 0; hh < h->n_kv_heads; hh++)
                kvl_convert_to_f32(
                    kvl_cache_row(c, kv ? KVL_V : KVL_K, l, hh, 0),
                    src + (size_t)hh * head_bytes, h->dtype, per_head);
        }
    }
    c->n_tokens = h->n_tokens;
    return KVL_OK;
}

static kvl_status load_open(const kvl_st_file *f, const char *path,
                            kvl_cache **out, kvl_error *err)
{
    kvc_header h;
    kvl_status st = read_header(f, path, &h, err);
    if (st == KVL_OK)
        st = check_tensors(f, path, &h, err);
    if (st != KVL_OK)
        return st;
    /* Every size is now backed by tensors in the file (or is 0 tokens). */
    st = kvl_cache_create(h.n_layers, h.n_kv_heads, h.head_dim, &h.rope,
                          h.arch_name, h.fingerprint, h.n_tokens, out, err);
    if (st != KVL_OK) {
        /* Values the cache rejects are a malformed file, not a bad call. */
        if (st == KVL_ERR_ARG || st == KVL_ERR_RANGE)
            st = KVL_ERR_FORMAT;
        if (err)
            err->code = st;
        return kvl_error_prefix(err, st, "file '%s'", path);
    }
    st = fill_cache(*out, &h, f, path, err);
    if (st != KVL_OK) {
        kvl_cache_free(*out);
        *out = NULL;
    }
    return st;
}

kvl_status kvl_cache_load(const char *path, kvl_cache **out, kvl_error *err)
{
    if (!path || !out)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_cache_load: path and out must not be NULL");
    *out = NULL;
    kvl_st_file f;
    kvl_status st = kvl_st_open(path, &f, err);
    if (st != KVL_OK)
        return st;
    st = load_open(&f, path, out, err);
    kvl_st_close(&f);
    return st;
}
