/*
 * karpathy/llama2.c "legacy" (v0) checkpoints: seven int32 header fields,
 * then fp32 arrays in a fixed order.  The header says nothing about the
 * file size, so the whole layout is recomputed and must match the file to
 * the byte: that is the only corruption check the format allows.
 */
#include "model/model.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define L2C_HEADER_BYTES 28
/* export.py --version 1/2 files start with this magic ("ak42"). */
#define L2C_MAGIC 0x616b3432u

typedef struct l2c_header {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
        seq_len;
    int unshared; /* vocab_size was negative: wcls follows */
} l2c_header;

static kvl_status map_checkpoint(kvl_model *m, const char *path,
                                 kvl_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kvl_fail(err, KVL_ERR_IO, "file '%s': cannot open: %s", path,
                        strerror(errno));
    struct stat sb;
    kvl_status st = KVL_OK;
    if (fstat(fd, &sb) != 0) {
        st = kvl_fail(err, KVL_ERR_IO, "file '%s': cannot stat: %s", path,
                      strerror(errno));
    } else if (sb.st_size < L2C_HEADER_BYTES) {
        st = kvl_fail(err, KVL_ERR_FORMAT,
                      "file '%s': %lld bytes is too short for a llama2.c "
                      "header (%d bytes)",
                      path, (long long)sb.st_size, L2C_HEADER_BYTES);
    } else {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE,
                         fd, 0);
        if (map == MAP_FAILED) {
            st = kvl_fail(err, KVL_ERR_IO, "file '%s': cannot map: %s", path,
                          strerror(errno));
        } else {
            m->bin_map = map;
            m->bin_size = (size_t)sb.st_size;
        }
    }
    close(fd);
    return st;
}

static int32_t read_i32_le(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                 (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static kvl_status parse_header(const char *path, const uint8_t *p,
                               l2c_header *h, kvl_error *err)
{
    int32_t f[7];
    for (int i = 0; i < 7; i++)
        f[i] = read_i32_le(p + 4 * i);
    if ((uint32_t)f[0] == L2C_MAGIC)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "file '%s': llama2.c export version %d (magic "
                        "\"ak42\") is not supported; only the legacy v0 "
                        "format (export.py --version 0)",
                        path, (int)f[1]);
    h->dim = f[0];
    h->hidden_dim = f[1];
    h->n_layers = f[2];
    h->n_heads = f[3];
    h->n_kv_heads = f[4];
    h->unshared = f[5] < 0;
    h->vocab_size = f[5] == INT32_MIN ? 0 : (f[5] < 0 ? -f[5] : f[5]);
    h->seq_len = f[6];
    if (h->dim <= 0 || h->hidden_dim <= 0 || h->n_layers <= 0 ||
        h->n_heads <= 0 || h->n_kv_heads <= 0 || h->vocab_size <= 0 ||
        h->seq_len <= 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': bad llama2.c header: dim %d, hidden_dim "
                        "%d, n_layers %d, n_heads %d, n_kv_heads %d, "
                        "vocab_size %d, seq_len %d (all must be positive)",
                        path, (int)f[0], (int)f[1], (int)f[2], (int)f[3],
                        (int)f[4], (int)f[5], (int)f[6]);
    if (h->dim % h->n_heads != 0 || h->n_heads % h->n_kv_heads != 0 ||
        (h->dim / h->n_heads) % 2 != 0)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': bad llama2.c header: dim %d must be a "
                        "multiple of n_heads %d with an even head size, and "
                        "n_heads a multiple of n_kv_heads %d",
                        path, (int)h->dim, (int)h->n_heads,
                        (int)h->n_kv_heads);
    return KVL_OK;
}

/* acc += a * b * c in floats, with overflow detection. */
static int add_term(uint64_t *acc, uint64_t a, uint64_t b, uint64_t c)
{
    if (b && a > UINT64_MAX / b)
        return 0;
    uint64_t ab = a * b;
    if (c && ab > UINT64_MAX / c)
        return 0;
    uint64_t t = ab * c;
    if (t > UINT64_MAX - *acc)
        return 0;
    *acc += t;
    return 1;
}

/* Number of floats the header implies after the header (incl. freq_cis). */
static int expected_floats(const l2c_header *h, uint64_t *n)
{
    const uint64_t d = (uint64_t)h->dim, hid = (uint64_t)h->hidden_dim,
                   L = (uint64_t)h->n_layers, v = (uint64_t)h->vocab_size;
    const uint64_t kv = d / (uint64_t)h->n_heads * (uint64_t)h->n_kv_heads;
    const uint64_t half = d / (uint64_t)h->n_heads / 2;
    *n = 0;
    return add_term(n, v, d, 1) &&                  /* token_embedding  */
           add_term(n, L, d, 1) &&                  /* rms_att          */
           add_term(n, L, d, d) &&                  /* wq               */
           add_term(n, L, kv, d) &&                 /* wk               */
           add_term(n, L, kv, d) &&                 /* wv               */
           add_term(n, L, d, d) &&                  /* wo               */
           add_term(n, L, d, 1) &&                  /* rms_ffn          */
           add_term(n, L, hid, d) &&                /* w1               */
           add_term(n, L, d, hid) &&                /* w2               */
           add_term(n, L, hid, d) &&                /* w3               */
           add_term(n, d, 1, 1) &&                  /* rms_final        */
           add_term(n, 2, (uint64_t)h->seq_len, half) && /* freq_cis    */
           add_term(n, h->unshared ? v : 0, d, 1);  /* wcls             */
}

static kvl_status check_size(const char *path, const l2c_header *h,
                             uint64_t size, kvl_error *err)
{
    uint64_t floats;
    if (!expected_floats(h, &floats) ||
        floats > (UINT64_MAX - L2C_HEADER_BYTES) / 4)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': llama2.c header sizes overflow", path);
    const uint64_t want = L2C_HEADER_BYTES + 4 * floats;
    if (size == want)
        return KVL_OK;
    const uint64_t cls = 4 * (uint64_t)h->vocab_size * (uint64_t)h->dim;
    const char *hint = !h->unshared && size == want + cls
                           ? " (the extra bytes match an unshared classifier, "
                             "which a negative vocab_size announces)"
                           : "";
    return kvl_fail(err, KVL_ERR_FORMAT,
                    "file '%s': %s: the header (dim %d, hidden_dim %d, "
                    "n_layers %d, n_heads %d, n_kv_heads %d, vocab_size %d%s, "
                    "seq_len %d) implies %llu bytes but the file has %llu%s",
                    path, size < want ? "truncated" : "trailing bytes",
                    (int)h->dim, (int)h->hidden_dim, (int)h->n_layers,
                    (int)h->n_heads, (int)h->n_kv_heads, (int)h->vocab_size,
                    h->unshared ? " unshared" : "", (int)h->seq_len,
                    (unsigned long long)want, (unsigned long long)size, hint);
}

static void fill_config(kvl_config *c, const l2c_header *h)
{
    memset(c, 0, sizeof *c);
    c->arch = KVL_ARCH_LLAMA2C;
    snprintf(c->arch_name, sizeof c->arch_name, "llama2c");
    c->n_layers = h->n_layers;
    c->dim = h->dim;
    c->hidden_dim = h->hidden_dim;
    c->n_heads = h->n_heads;
    c->n_kv_heads = h->n_kv_heads;
    c->head_dim = h->dim / h->n_heads;
    c->vocab_size = h->vocab_size;
    c->max_seq_len = h->seq_len;
    c->norm_eps = 1e-5; /* llama2.c run.c */
    c->rope.theta = 10000.0;
    c->rope.layout = KVL_ROPE_INTERLEAVED;
    c->rope.scaling = KVL_ROPE_SCALING_NONE;
    c->rope.rotary_dim = c->head_dim;
    c->tied_embeddings = !h->unshared;
    c->bos_token_id = 1;
    c->eos_token_id = 2;
    c->eos_ids[0] = 2;
    c->n_eos_ids = 1;
}

/* Cursor over the fp32 arrays that follow the header. */
typedef struct l2c_cursor {
    const float *p;
} l2c_cursor;

static const float *take(l2c_cursor *c, uint64_t n)
{
    const float *at = c->p;
    c->p += n;
    return at;
}

static kvl_weight f32_weight(const float *data, int64_t rows, int64_t cols)
{
    kvl_weight w = {data, KVL_DTYPE_F32, rows, cols};
    return w;
}

/* One [L, rows, cols] stack: layer l's slice goes to the field at `off`. */
static void bind_stack(kvl_model *m, l2c_cursor *cur, size_t off,
                       int64_t rows, int64_t cols)
{
    const float *base = take(cur, (uint64_t)m->cfg.n_layers *
                                      (uint64_t)rows * (uint64_t)cols);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        kvl_weight *w = (kvl_weight *)((char *)&m->layers[l] + off);
        *w = f32_weight(base + (size_t)l * (size_t)rows * (size_t)cols, rows,
                        cols);
    }
}

static void bind_weights(kvl_model *m)
{
    const kvl_config *c = &m->cfg;
    const int64_t d = c->dim, hid = c->hidden_dim,
                  kv = (int64_t)c->n_kv_heads * c->head_dim;
    l2c_cursor cur = {
        (const float *)((const uint8_t *)m->bin_map + L2C_HEADER_BYTES)};
    m->tok_emb = f32_weight(take(&cur, (uint64_t)(c->vocab_size * d)),
                            c->vocab_size, d);
    bind_stack(m, &cur, offsetof(kvl_layer_weights, attn_norm), 1, d);
    bind_stack(m, &cur, offsetof(kvl_layer_weights, wq), d, d);
    bind_stack(m, &cur, offsetof(kvl_layer_weights, wk), kv, d);
    bind_stack(m, &cur, offsetof(kvl_layer_weights, wv), kv, d);
    bind_stack(m, &cur, offsetof(kvl_layer_weights, wo), d, d);
    bind_stack(m, &cur, offsetof(kvl_layer_weights, ffn_norm), 1, d);
    bind_stack(m, &cur, offsetof(kvl_layer_weights, w_gate), hid, d);
    bind_stack(m, &cur, offsetof(kvl_layer_weights, w_down), d, hid);
    bind_stack(m, &cur, offsetof(kvl_layer_weights, w_up), hid, d);
    m->final_norm = f32_weight(take(&cur, (uint64_t)d), 1, d);
    /* freq_cis_real and freq_cis_imag: recomputed from theta instead. */
    take(&cur, (uint64_t)c->max_seq_len * (uint64_t)(c->head_dim / 2) * 2);
    m->lm_head = c->tied_embeddings
                     ? m->tok_emb
                     : f32_weight(take(&cur, (uint64_t)(c->vocab_size * d)),
                                  c->vocab_size, d);
}

kvl_status kvl_load_llama2c(kvl_model *m, const char *path, kvl_error *err)
{
    l2c_header h = {0};
    kvl_status st = map_checkpoint(m, path, err);
    if (st == KVL_OK)
        st = parse_header(path, m->bin_map, &h, err);
    if (st == KVL_OK)
        st = check_size(path, &h, m->bin_size, err);
    if (st != KVL_OK)
        return st;
    fill_config(&m->cfg, &h);
    m->layers = calloc((size_t)h.n_layers, sizeof *m->layers);
    if (!m->layers)
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory",
                        path);
    /* The mapping is page aligned and the header is 28 bytes, so every
     * array is 4-byte aligned: no copies are needed. */
    bind_weights(m);
    return kvl_model_finalize(m, err);
}
