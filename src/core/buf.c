#include "core/buf.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

static kvl_status grow(void **p, size_t *cap, size_t need, size_t elem,
                       kvl_error *err)
{
    if (need <= *cap)
        return KVL_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            return kvl_fail(err, KVL_ERR_NOMEM, "buffer of %zu elements is too large", need);
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory growing a buffer to %zu elements", c);
    *p = q;
    *cap = c;
    return KVL_OK;
}

kvl_status kvl_idbuf_push(kvl_idbuf *b, int32_t id, kvl_error *err)
{
    return kvl_idbuf_append(b, &id, 1, err);
}

kvl_status kvl_idbuf_append(kvl_idbuf *b, const int32_t *ids, size_t n,
                            kvl_error *err)
{
    void *p = b->v;
    kvl_status st = grow(&p, &b->cap, b->n + n, sizeof *b->v, err);
    b->v = p;
    if (st != KVL_OK)
        return st;
    if (n)
        memcpy(b->v + b->n, ids, n * sizeof *ids);
    b->n += n;
    return KVL_OK;
}

void kvl_idbuf_free(kvl_idbuf *b)
{
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

kvl_status kvl_strbuf_append(kvl_strbuf *b, const char *s, size_t n,
                             kvl_error *err)
{
    void *p = b->s;
    kvl_status st = grow(&p, &b->cap, b->n + n + 1, 1, err);
    b->s = p;
    if (st != KVL_OK)
        return st;
    if (n)
        memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return KVL_OK;
}

kvl_status kvl_strbuf_puts(kvl_strbuf *b, const char *s, kvl_error *err)
{
    return kvl_strbuf_append(b, s, strlen(s), err);
}

void kvl_strbuf_free(kvl_strbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
}
