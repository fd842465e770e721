/*
 * Safetensors reader (mmap + jansson) and writer (atomic temp + rename).
 *
 * Reading trusts nothing in the file: the header length, every dtype,
 * shape and data_offsets entry is checked against the file size before a
 * pointer into the mapping is handed out.
 */
#include "model/safetensors.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Same limit as the reference implementation: a larger header is either
 * corrupt or hostile, and parsing it would cost unbounded memory. */
#define ST_MAX_HEADER ((uint64_t)100000000)

/* Every dtype of the safetensors spec with its element size, so that
 * tensors kvlab does not use (U8, BOOL, F64...) are still validated. */
static const struct {
    const char *name;
    kvl_dtype dtype;
    size_t size;
} st_dtypes[] = {
    {"F32", KVL_DTYPE_F32, 4},       {"F16", KVL_DTYPE_F16, 2},
    {"BF16", KVL_DTYPE_BF16, 2},     {"I32", KVL_DTYPE_I32, 4},
    {"I64", KVL_DTYPE_I64, 8},       {"F64", KVL_DTYPE_COUNT, 8},
    {"U64", KVL_DTYPE_COUNT, 8},     {"U32", KVL_DTYPE_COUNT, 4},
    {"I16", KVL_DTYPE_COUNT, 2},     {"U16", KVL_DTYPE_COUNT, 2},
    {"I8", KVL_DTYPE_COUNT, 1},      {"U8", KVL_DTYPE_COUNT, 1},
    {"BOOL", KVL_DTYPE_COUNT, 1},    {"F8_E4M3", KVL_DTYPE_COUNT, 1},
    {"F8_E5M2", KVL_DTYPE_COUNT, 1}, {"F8_E8M0", KVL_DTYPE_COUNT, 1},
};

static int find_st_dtype(const char *name)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* a * b without wrapping; returns 0 on overflow. */
static int mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

void kvl_st_format_shape(const int64_t *shape, int ndim, char *buf,
                         size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld",
                                 i ? ", " : "", (long long)shape[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

/* A JSON integer >= 0, as uint64. */
static int json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

static kvl_status parse_shape(const kvl_st_file *f, const char *name,
                              const json_t *shape, kvl_st_tensor *t,
                              uint64_t *count, kvl_error *err)
{
    if (!json_is_array(shape))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': tensor '%s' has no shape array", f->path,
                        name);
    if (json_array_size(shape) > KVL_ST_MAX_DIMS)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': tensor '%s' has %zu dimensions (at most "
                        "%d supported)",
                        f->path, name, json_array_size(shape),
                        KVL_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    *count = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (!json_u64(json_array_get(shape, (size_t)i), &d) ||
            d > (uint64_t)INT64_MAX)
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': tensor '%s' shape entry %d is not a "
                            "non-negative integer",
                            f->path, name, i);
        t->shape[i] = (int64_t)d;
        if (!mul_u64(*count, d, count))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': tensor '%s' shape overflows", f->path,
                            name);
    }
    return KVL_OK;
}

static kvl_status parse_offsets(const kvl_st_file *f, const char *name,
                                const json_t *offs, uint64_t data_size,
                                uint64_t *begin, uint64_t *end,
                                kvl_error *err)
{
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_u64(json_array_get(offs, 0), begin) ||
        !json_u64(json_array_get(offs, 1), end))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': tensor '%s' data_offsets must be two "
                        "non-negative integers",
                        f->path, name);
    if (*begin > *end)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': tensor '%s' data_offsets [%llu, %llu] "
                        "end before begin",
                        f->path, name, (unsigned long long)*begin,
                        (unsigned long long)*end);
    if (*end > data_size)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': tensor '%s' data_offsets [%llu, %llu] "
                        "past end of data (%llu bytes; file truncated?)",
                        f->path, name, (unsigned long long)*begin,
                        (unsigned long long)*end,
                        (unsigned long long)data_size);
    return KVL_OK;
}

static kvl_status parse_tensor(const kvl_st_file *f, const char *name,
                               const json_t *e, const uint8_t *data,
                               uint64_t data_size, kvl_st_tensor *t,
                               kvl_error *err)
{
    if (!json_is_object(e))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': entry '%s' is not an object", f->path,
                        name);
    const char *dt = json_string_value(json_object_get(e, "dtype"));
    if (!dt)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': tensor '%s' has no dtype string", f->path,
                        name);
    int k = find_st_dtype(dt);
    if (k < 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': tensor '%s' has unknown dtype '%.32s'",
                        f->path, name, dt);
    t->dtype = st_dtypes[k].dtype;
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", st_dtypes[k].name);

    uint64_t count = 0, nbytes = 0, begin = 0, end = 0;
    kvl_status st = parse_shape(f, name, json_object_get(e, "shape"), t,
                                &count, err);
    if (st != KVL_OK)
        return st;
    st = parse_offsets(f, name, json_object_get(e, "data_offsets"),
                       data_size, &begin, &end, err);
    if (st != KVL_OK)
        return st;
    if (!mul_u64(count, st_dtypes[k].size, &nbytes) || nbytes != end - begin) {
        char shape[160];
        kvl_st_format_shape(t->shape, t->ndim, shape, sizeof shape);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': tensor '%s' data_offsets span %llu bytes "
                        "but dtype %s and shape %s need %llu",
                        f->path, name, (unsigned long long)(end - begin),
                        t->dtype_name, shape, (unsigned long long)nbytes);
    }
    t->data = data + begin;
    t->nbytes = (size_t)nbytes;
    t->name = strdup(name);
    if (!t->name)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                        f->path);
    return KVL_OK;
}

static kvl_status parse_metadata(kvl_st_file *f, const json_t *meta,
                                 kvl_error *err)
{
    if (!json_is_object(meta))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': __metadata__ is not an object", f->path);
    f->meta = calloc(json_object_size(meta) + 1, sizeof *f->meta);
    if (!f->meta)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                        f->path);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "file '%s': __metadata__ value of '%s' is not a "
                            "string",
                            f->path, key);
        kvl_st_meta *m = &f->meta[f->n_meta];
        m->key = strdup(key);
        m->value = strdup(json_string_value(value));
        f->n_meta++;
        if (!m->key || !m->value)
            return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                            f->path);
    }
    return KVL_OK;
}

static kvl_status parse_header(kvl_st_file *f, const json_t *root,
                               const uint8_t *data, uint64_t data_size,
                               kvl_error *err)
{
    if (!json_is_object(root))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': header is not a JSON object", f->path);
    f->tensors = calloc(json_object_size(root) + 1, sizeof *f->tensors);
    if (!f->tensors)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                        f->path);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)root, key, value) {
        kvl_status st;
        if (strcmp(key, "__metadata__") == 0) {
            st = parse_metadata(f, value, err);
        } else {
            st = parse_tensor(f, key, value, data, data_size,
                              &f->tensors[f->n_tensors], err);
            if (st == KVL_OK)
                f->n_tensors++;
        }
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

static kvl_status map_file(kvl_st_file *f, kvl_error *err)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kvl_fail(err, KVL_ERR_IO, "file '%s': cannot open: %s",
                        f->path, strerror(errno));
    struct stat sb;
    kvl_status st = KVL_OK;
    if (fstat(fd, &sb) != 0) {
        st = kvl_fail(err, KVL_ERR_IO, "file '%s': cannot stat: %s", f->path,
                      strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = kvl_fail(err, KVL_ERR_IO, "file '%s': not a regular file",
                      f->path);
    } else if (sb.st_size < 8) {
        st = kvl_fail(err, KVL_ERR_FORMAT,
                      "file '%s': %lld bytes is too short for a safetensors "
                      "header length (8 bytes)",
                      f->path, (long long)sb.st_size);
    } else {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE,
                         fd, 0);
        if (map == MAP_FAILED) {
            st = kvl_fail(err, KVL_ERR_IO, "file '%s': cannot map: %s",
                          f->path, strerror(errno));
        } else {
            f->map = map;
            f->map_size = (size_t)sb.st_size;
        }
    }
    close(fd);
    return st;
}

static uint64_t read_u64_le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static kvl_status open_mapped(kvl_st_file *f, kvl_error *err)
{
    const uint8_t *bytes = f->map;
    const uint64_t size = f->map_size;
    const uint64_t hlen = read_u64_le(bytes);
    if (hlen > size - 8)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': header length %llu past end of file "
                        "(size %llu)",
                        f->path, (unsigned long long)hlen,
                        (unsigned long long)size);
    if (hlen > ST_MAX_HEADER)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': header length %llu exceeds the limit of "
                        "%llu bytes",
                        f->path, (unsigned long long)hlen,
                        (unsigned long long)ST_MAX_HEADER);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)bytes + 8, (size_t)hlen,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': bad JSON header at line %d column %d: %s",
                        f->path, jerr.line, jerr.column, jerr.text);
    kvl_status st = parse_header(f, root, bytes + 8 + hlen,
                                 size - 8 - hlen, err);
    json_decref(root);
    return st;
}

kvl_status kvl_st_open(const char *path, kvl_st_file *f, kvl_error *err)
{
    if (!f)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_st_open: NULL file");
    memset(f, 0, sizeof *f);
    if (!path)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_st_open: NULL path");
    f->path = strdup(path);
    if (!f->path)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory", path);
    kvl_status st = map_file(f, err);
    if (st == KVL_OK)
        st = open_mapped(f, err);
    if (st != KVL_OK)
        kvl_st_close(f);
    return st;
}

void kvl_st_close(kvl_st_file *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_size);
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const kvl_st_tensor *kvl_st_find(const kvl_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *kvl_st_meta_get(const kvl_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

static kvl_status tensor_nbytes(const char *path,
                                const kvl_st_write_tensor *t,
                                uint64_t *nbytes, kvl_error *err)
{
    if (!t->name || !*t->name || strcmp(t->name, "__metadata__") == 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "file '%s': tensor name must be non-empty and not "
                        "'__metadata__'",
                        path);
    if (kvl_dtype_size(t->dtype) == 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "file '%s': tensor '%s' has invalid dtype %d", path,
                        t->name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > KVL_ST_MAX_DIMS)
        return kvl_fail(err, KVL_ERR_ARG,
                        "file '%s': tensor '%s' has %d dimensions (0..%d)",
                        path, t->name, t->ndim, KVL_ST_MAX_DIMS);
    uint64_t n = kvl_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || !mul_u64(n, (uint64_t)t->shape[i], &n))
            return kvl_fail(err, KVL_ERR_ARG,
                            "file '%s': tensor '%s' has a negative or "
                            "overflowing shape",
                            path, t->name);
    }
    if (n > 0 && !t->data)
        return kvl_fail(err, KVL_ERR_ARG,
                        "file '%s': tensor '%s' has NULL data", path,
                        t->name);
    *nbytes = n;
    return KVL_OK;
}

static kvl_status add_json(json_t *obj, const char *key, json_t *value,
                           const char *path, kvl_error *err)
{
    if (!value || json_object_set_new(obj, key, value) != 0)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "file '%s': out of memory building the header", path);
    return KVL_OK;
}

static kvl_status meta_json(const char *path, const kvl_st_meta *meta,
                            int n_meta, json_t *root, kvl_error *err)
{
    if (n_meta <= 0)
        return KVL_OK;
    json_t *m = json_object();
    kvl_status st = add_json(root, "__metadata__", m, path, err);
    for (int i = 0; i < n_meta && st == KVL_OK; i++) {
        if (!meta[i].key || !meta[i].value)
            return kvl_fail(err, KVL_ERR_ARG,
                            "file '%s': metadata entry %d has a NULL key or "
                            "value",
                            path, i);
        st = add_json(m, meta[i].key, json_string(meta[i].value), path, err);
    }
    return st;
}

static kvl_status tensor_json(const char *path, const kvl_st_write_tensor *t,
                              uint64_t begin, uint64_t end, json_t *root,
                              kvl_error *err)
{
    if (json_object_get(root, t->name))
        return kvl_fail(err, KVL_ERR_ARG,
                        "file '%s': duplicate tensor name '%s'", path,
                        t->name);
    json_t *e = json_object();
    kvl_status st = add_json(root, t->name, e, path, err);
    if (st == KVL_OK)
        st = add_json(e, "dtype", json_string(kvl_dtype_name(t->dtype)),
                      path, err);
    json_t *shape = json_array();
    if (st == KVL_OK)
        st = add_json(e, "shape", shape, path, err);
    else
        json_decref(shape);
    for (int i = 0; i < t->ndim && st == KVL_OK; i++)
        if (json_array_append_new(shape, json_integer(t->shape[i])) != 0)
            st = kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                          path);
    if (st == KVL_OK)
        st = add_json(e, "data_offsets",
                      json_pack("[II]", (json_int_t)begin, (json_int_t)end),
                      path, err);
    return st;
}

/* Builds the header JSON; sizes[i] receives tensor i's byte count. */
static kvl_status build_header(const char *path,
                               const kvl_st_write_tensor *tensors,
                               int n_tensors, const kvl_st_meta *meta,
                               int n_meta, uint64_t *sizes, char **out,
                               kvl_error *err)
{
    json_t *root = json_object();
    if (!root)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory", path);
    kvl_status st = meta_json(path, meta, n_meta, root, err);
    uint64_t offset = 0;
    for (int i = 0; i < n_tensors && st == KVL_OK; i++) {
        st = tensor_nbytes(path, &tensors[i], &sizes[i], err);
        if (st == KVL_OK && sizes[i] > (uint64_t)INT64_MAX - offset)
            st = kvl_fail(err, KVL_ERR_ARG, "file '%s': data too large",
                          path);
        if (st == KVL_OK)
            st = tensor_json(path, &tensors[i], offset, offset + sizes[i],
                             root, err);
        offset += sizes[i];
    }
    if (st == KVL_OK) {
        *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!*out)
            st = kvl_fail(err, KVL_ERR_NOMEM,
                          "file '%s': out of memory serialising the header",
                          path);
    }
    json_decref(root);
    return st;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Header length, the JSON, space padding to a multiple of 8, the data. */
static int write_body(int fd, const char *json,
                      const kvl_st_write_tensor *tensors, int n_tensors,
                      const uint64_t *sizes)
{
    size_t jlen = strlen(json);
    size_t padded = (jlen + 7) / 8 * 8;
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    if (write_all(fd, lenbuf, 8) || write_all(fd, json, jlen) ||
        write_all(fd, spaces, padded - jlen))
        return -1;
    for (int i = 0; i < n_tensors; i++)
        if (sizes[i] && write_all(fd, tensors[i].data, (size_t)sizes[i]))
            return -1;
    return 0;
}

/* Writes to "<path>.tmp.XXXXXX" in the same folder, then renames, so a
 * reader never sees a half-written file. */
static kvl_status write_atomic(const char *path, const char *json,
                               const kvl_st_write_tensor *tensors,
                               int n_tensors, const uint64_t *sizes,
                               kvl_error *err)
{
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(n);
    if (!tmp)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory", path);
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return kvl_fail(err, KVL_ERR_IO, "file '%s': cannot create: %s", path,
                        strerror(e));
    }
    /* mkstemp creates 0600; a model or cache file is meant to be shared. */
    int bad = fchmod(fd, 0644) || write_body(fd, json, tensors, n_tensors,
                                             sizes) || fsync(fd);
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad)
        unlink(tmp);
    free(tmp);
    if (bad)
        return kvl_fail(err, KVL_ERR_IO, "file '%s': cannot write: %s", path,
                        strerror(e));
    return KVL_OK;
}

kvl_status kvl_st_write(const char *path, const kvl_st_write_tensor *tensors,
                        int n_tensors, const kvl_st_meta *meta, int n_meta,
                        kvl_error *err)
{
    if (!path || !*path)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_st_write: empty path");
    if (n_tensors < 0 || (n_tensors > 0 && !tensors) || n_meta < 0 ||
        (n_meta > 0 && !meta))
        return kvl_fail(err, KVL_ERR_ARG,
                        "file '%s': invalid tensor or metadata list", path);
    uint64_t *sizes = calloc((size_t)n_tensors + 1, sizeof *sizes);
    if (!sizes)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory", path);
    char *json = NULL;
    kvl_status st = build_header(path, tensors, n_tensors, meta, n_meta,
                                 sizes, &json, err);
    if (st == KVL_OK)
        st = write_atomic(path, json, tensors, n_tensors, sizes, err);
    free(json);
    free(sizes);
    return st;
}
