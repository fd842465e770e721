/* The public tokenizer calls, once for every format: format detection,
 * argument checks and buffer handling live here; the formats implement
 * kvl_tokenizer_ops. */
#include "tokenizer/tokenizer.h"

#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void kvl_free(void *ptr) { free(ptr); }

kvl_status kvl_tokenizer_read_file(const char *path, long long max_size,
                                   const char *what, unsigned char **data,
                                   size_t *size, kvl_error *err)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kvl_fail(err, KVL_ERR_IO, "file '%s': cannot open: %s", path,
                        strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return kvl_fail(err, KVL_ERR_IO, "file '%s': cannot stat: %s", path,
                        strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return kvl_fail(err, KVL_ERR_IO, "file '%s': not a regular file",
                        path);
    }
    if ((long long)st.st_size > max_size) {
        fclose(f);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %lld bytes is too large for %s "
                        "(limit %lld)",
                        path, (long long)st.st_size, what, max_size);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "file '%s': cannot allocate %zu bytes", path, n);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int read_error = ferror(f);
    fclose(f);
    if (got != n || read_error) {
        free(buf);
        return kvl_fail(err, KVL_ERR_IO,
                        "file '%s': read %zu of %zu bytes", path, got, n);
    }
    *data = buf;
    *size = n;
    return KVL_OK;
}

int kvl_byte_piece_value(const char *p, size_t n, int any_case)
{
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>')
        return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = p[k];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else if (any_case && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* First non-blank byte of the file is '{': a JSON tokenizer. */
static int looks_like_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int c;
    do {
        c = fgetc(f);
    } while (c == ' ' || c == '\n' || c == '\r' || c == '\t');
    fclose(f);
    return c == '{';
}

static kvl_status open_file(const char *path, int32_t vocab_size,
                            kvl_tokenizer *t, kvl_error *err)
{
    if (ends_with(path, ".json") || looks_like_json(path))
        return kvl_hf_tokenizer_open(path, t, err);
    if (ends_with(path, ".model"))
        return kvl_sp_tokenizer_open(path, t, err);
    return kvl_llama2c_tokenizer_open(path, vocab_size, t, err);
}

static kvl_status open_dir(const char *dir, int32_t vocab_size,
                           kvl_tokenizer *t, kvl_error *err)
{
    static const char *const names[] = {"tokenizer.json", "tokenizer.model",
                                        "tokenizer.bin"};
    char path[4096];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= sizeof path)
            return kvl_fail(err, KVL_ERR_ARG, "folder path '%s' is too long", dir);
        if (exists(path))
            return open_file(path, vocab_size, t, err);
    }
    return kvl_fail(err, KVL_ERR_IO,
                    "folder '%s' has no tokenizer.json, tokenizer.model or "
                    "tokenizer.bin", dir);
}

kvl_status kvl_tokenizer_load(const char *path, int32_t vocab_size,
                              kvl_tokenizer **out, kvl_error *err)
{
    if (!path || !out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_tokenizer_load: path and out are required");
    *out = NULL;
    if (vocab_size < 0)
        return kvl_fail(err, KVL_ERR_ARG, "vocabulary size must be >= 0, got %d",
                        (int)vocab_size);
    kvl_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a tokenizer");
    t->bos_id = t->eos_id = -1;
    kvl_status st;
    if (is_dir(path))
        st = open_dir(path, vocab_size, t, err);
    else if (exists(path))
        st = open_file(path, vocab_size, t, err);
    else
        st = kvl_fail(err, KVL_ERR_IO, "tokenizer '%s' does not exist", path);
    if (st != KVL_OK) {
        kvl_tokenizer_free(t);
        return st;
    }
    *out = t;
    return KVL_OK;
}

void kvl_tokenizer_free(kvl_tokenizer *tok)
{
    if (!tok)
        return;
    if (tok->ops && tok->impl)
        tok->ops->destroy(tok->impl);
    kvl_strbuf_free(&tok->piece);
    free(tok);
}

kvl_tokenizer_kind kvl_tokenizer_get_kind(const kvl_tokenizer *tok)
{
    return tok->kind;
}

int32_t kvl_tokenizer_vocab_size(const kvl_tokenizer *tok)
{
    return tok ? tok->vocab_size : 0;
}

int32_t kvl_tokenizer_bos(const kvl_tokenizer *tok) { return tok ? tok->bos_id : -1; }
int32_t kvl_tokenizer_eos(const kvl_tokenizer *tok) { return tok ? tok->eos_id : -1; }

kvl_status kvl_tokenizer_encode_alloc(const kvl_tokenizer *tok,
                                      const char *text, size_t len,
                                      unsigned flags, int32_t **ids,
                                      size_t *n_ids, kvl_error *err)
{
    if (!tok || (!text && len) || !ids || !n_ids)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    kvl_idbuf buf = {0};
    kvl_status st = tok->ops->encode(tok->impl, text ? text : "", len, flags, &buf, err);
    if (st != KVL_OK) {
        kvl_idbuf_free(&buf);
        return st;
    }
    *ids = buf.v;
    *n_ids = buf.n;
    return KVL_OK;
}

kvl_status kvl_tokenizer_encode(const kvl_tokenizer *tok, const char *text,
                                unsigned flags, int32_t *ids, int32_t cap,
                                int32_t *n_out, kvl_error *err)
{
    if (!tok || !text || !n_out || cap < 0 || (!ids && cap > 0))
        return kvl_fail(err, KVL_ERR_ARG, "kvl_tokenizer_encode: bad arguments");
    int32_t *v = NULL;
    size_t n = 0;
    kvl_status st = kvl_tokenizer_encode_alloc(tok, text, strlen(text), flags, &v, &n, err);
    if (st != KVL_OK)
        return st;
    if (n > INT32_MAX) {
        free(v);
        return kvl_fail(err, KVL_ERR_RANGE, "text encodes to more than 2^31 ids");
    }
    *n_out = (int32_t)n;
    if ((int32_t)n > cap) {
        free(v);
        return kvl_fail(err, KVL_ERR_RANGE, "%zu ids do not fit in a buffer of %d",
                        n, (int)cap);
    }
    if (n)
        memcpy(ids, v, n * sizeof *v);
    free(v);
    return KVL_OK;
}

static kvl_status check_ids(const kvl_tokenizer *tok, const int32_t *ids,
                            size_t n, kvl_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok->vocab_size)
            return kvl_fail(err, KVL_ERR_RANGE,
                            "token id %d at index %zu is outside 0..%d",
                            (int)ids[i], i, (int)tok->vocab_size - 1);
    return KVL_OK;
}

kvl_status kvl_tokenizer_decode(const kvl_tokenizer *tok, const int32_t *ids,
                                size_t n, unsigned flags, char **text,
                                size_t *len, kvl_error *err)
{
    if (!tok || (!ids && n) || !text)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_tokenizer_decode: NULL argument");
    *text = NULL;
    kvl_status st = check_ids(tok, ids, n, err);
    if (st != KVL_OK)
        return st;
    kvl_strbuf buf = {0};
    if ((st = kvl_strbuf_append(&buf, "", 0, err)) != KVL_OK ||
        (st = tok->ops->decode(tok->impl, ids, n, flags, &buf, err)) != KVL_OK) {
        kvl_strbuf_free(&buf);
        return st;
    }
    *text = buf.s;
    if (len)
        *len = buf.n;
    return KVL_OK;
}

/* Text of id after prev, as raw bytes (no U+FFFD repair of a character
 * split across pieces): decode(prev, id) minus decode(prev) when that is a
 * prefix (so context-dependent rules such as "no leading space after BOS"
 * apply), else decode(id) alone. */
const char *kvl_tokenizer_decode_piece(kvl_tokenizer *tok, int32_t prev_id,
                                       int32_t id)
{
    if (!tok || id < 0 || id >= tok->vocab_size)
        return NULL;
    kvl_strbuf both = {0}, first = {0};
    const char *result = NULL;
    int32_t pair[2] = {prev_id, id};
    int have_prev = prev_id >= 0 && prev_id < tok->vocab_size;
    tok->piece.n = 0;
    if (kvl_strbuf_append(&tok->piece, "", 0, NULL) != KVL_OK ||
        kvl_strbuf_append(&both, "", 0, NULL) != KVL_OK ||
        kvl_strbuf_append(&first, "", 0, NULL) != KVL_OK)
        goto out;
    if (have_prev) {
        if (tok->ops->decode(tok->impl, pair, 2, KVL_DECODE_RAW_BYTES, &both, NULL) != KVL_OK ||
            tok->ops->decode(tok->impl, pair, 1, KVL_DECODE_RAW_BYTES, &first, NULL) != KVL_OK)
            goto out;
        if (first.n <= both.n && memcmp(first.s, both.s, first.n) == 0) {
            if (kvl_strbuf_append(&tok->piece, both.s + first.n, both.n - first.n,
                                  NULL) == KVL_OK)
                result = tok->piece.s;
            goto out;
        }
    }
    if (tok->ops->decode(tok->impl, &id, 1, KVL_DECODE_RAW_BYTES, &tok->piece, NULL) == KVL_OK)
        result = tok->piece.s;
out:
    kvl_strbuf_free(&both);
    kvl_strbuf_free(&first);
    return result;
}

const char *kvl_tokenizer_id_to_token(const kvl_tokenizer *tok, int32_t id)
{
    if (!tok || id < 0 || id >= tok->vocab_size)
        return NULL;
    return tok->ops->id_to_token(tok->impl, id);
}

int32_t kvl_tokenizer_token_to_id(const kvl_tokenizer *tok, const char *token)
{
    if (!tok || !token)
        return -1;
    return tok->ops->token_to_id(tok->impl, token, strlen(token));
}
