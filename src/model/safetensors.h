/*
 * Safetensors files: a little-endian u64 header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {str: str}}), then the data.  Reading memory-maps the
 * file and validates every entry against the file size; writing pads the
 * header with spaces to a multiple of 8 so that data starts aligned.
 */
#ifndef KVL_MODEL_SAFETENSORS_H
#define KVL_MODEL_SAFETENSORS_H

#include "kvlab.h"

#include <stddef.h>
#include <stdint.h>

#define KVL_ST_MAX_DIMS 8

typedef struct kvl_st_tensor {
    char *name;
    kvl_dtype dtype;       /* KVL_DTYPE_COUNT for a dtype kvlab does not use */
    char dtype_name[16];   /* as written in the file                         */
    int ndim;
    int64_t shape[KVL_ST_MAX_DIMS];
    const uint8_t *data;   /* into the mapping; may be unaligned            */
    size_t nbytes;
} kvl_st_tensor;

typedef struct kvl_st_meta {
    char *key;
    char *value;
} kvl_st_meta;

typedef struct kvl_st_file {
    char *path;
    void *map;
    size_t map_size;
    kvl_st_tensor *tensors;
    int n_tensors;
    kvl_st_meta *meta;
    int n_meta;
} kvl_st_file;

/* Maps and parses `path`.  On failure *f is left empty (safe to close). */
kvl_status kvl_st_open(const char *path, kvl_st_file *f, kvl_error *err);
void kvl_st_close(kvl_st_file *f);
const kvl_st_tensor *kvl_st_find(const kvl_st_file *f, const char *name);
/* "[d0, d1, ...]" into buf (cut to cap bytes), for error messages. */
void kvl_st_format_shape(const int64_t *shape, int ndim, char *buf,
                         size_t cap);
/* Metadata value for key, or NULL. */
const char *kvl_st_meta_get(const kvl_st_file *f, const char *key);

typedef struct kvl_st_write_tensor {
    const char *name;
    kvl_dtype dtype;
    int ndim;
    int64_t shape[KVL_ST_MAX_DIMS];
    const void *data;      /* nbytes = prod(shape) * dtype size             */
} kvl_st_write_tensor;

/* Writes a safetensors file; tensors are laid out in the order given.
 * meta holds n_meta key/value pairs (may be NULL when n_meta is 0). */
kvl_status kvl_st_write(const char *path, const kvl_st_write_tensor *tensors,
                        int n_tensors, const kvl_st_meta *meta, int n_meta,
                        kvl_error *err);

#endif
