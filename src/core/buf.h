/* Growable buffers of token ids and bytes, used wherever an output's size
 * is not known in advance (tokenizers, reports). */
#ifndef KVL_CORE_BUF_H
#define KVL_CORE_BUF_H

#include "kvlab.h"

#include <stddef.h>
#include <stdint.h>

typedef struct kvl_idbuf {
    int32_t *v;
    size_t n, cap;
} kvl_idbuf;

typedef struct kvl_strbuf {
    char *s;      /* always NUL-terminated once anything was appended */
    size_t n, cap;
} kvl_strbuf;

/* All return KVL_OK or KVL_ERR_NOMEM (with a message in err). */
kvl_status kvl_idbuf_push(kvl_idbuf *b, int32_t id, kvl_error *err);
kvl_status kvl_idbuf_append(kvl_idbuf *b, const int32_t *ids, size_t n,
                            kvl_error *err);
void kvl_idbuf_free(kvl_idbuf *b);

kvl_status kvl_strbuf_append(kvl_strbuf *b, const char *s, size_t n,
                             kvl_error *err);
kvl_status kvl_strbuf_puts(kvl_strbuf *b, const char *s, kvl_error *err);
void kvl_strbuf_free(kvl_strbuf *b);

#endif
