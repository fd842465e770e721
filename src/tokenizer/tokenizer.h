/*
 * Internal tokenizer interface.  src/tokenizer/tokenizer.c implements the
 * public kvl_tokenizer_* calls once, on top of a small table of functions
 * that each format (llama2.c tokenizer.bin, HF tokenizer.json,
 * SentencePiece) provides.
 */
#ifndef KVL_TOKENIZER_TOKENIZER_H
#define KVL_TOKENIZER_TOKENIZER_H

#include "core/buf.h"
#include "kvlab.h"

/* Internal decode flag (never in kvlab.h): byte pieces are output as raw
 * bytes even when they do not form whole UTF-8 characters, instead of the
 * format's own rendering of malformed bytes (SentencePiece: U+FFFD), so
 * that streamed pieces concatenate to the text.  Formats that output raw
 * bytes anyway ignore it. */
#define KVL_DECODE_RAW_BYTES (1u << 16)

typedef struct kvl_tokenizer_ops {
    /* Frees tok->impl (not tok itself). */
    void (*destroy)(void *impl);
    /* Appends the ids of text[0..len) to out, honouring KVL_ENCODE_*. */
    kvl_status (*encode)(const void *impl, const char *text, size_t len,
                         unsigned flags, kvl_idbuf *out, kvl_error *err);
    /* Appends the decoded text of ids (all valid) to out (KVL_DECODE_*). */
    kvl_status (*decode)(const void *impl, const int32_t *ids, size_t n,
                         unsigned flags, kvl_strbuf *out, kvl_error *err);
    /* Stored vocabulary entry of id (valid), or NULL. */
    const char *(*id_to_token)(const void *impl, int32_t id);
    /* Id of an entry or added token, or -1. */
    int32_t (*token_to_id)(const void *impl, const char *token, size_t len);
} kvl_tokenizer_ops;

struct kvl_tokenizer {
    const kvl_tokenizer_ops *ops;
    void *impl;
    kvl_tokenizer_kind kind;
    int32_t vocab_size;
    int32_t bos_id, eos_id;   /* -1 when none */
    kvl_strbuf piece;         /* kvl_tokenizer_decode_piece's result */
};

/* The whole regular file at path into a malloc'ed buffer (*data, *size;
 * never NULL on success).  A file above max_size bytes is refused
 * (KVL_ERR_FORMAT: "too large for <what>"). */
kvl_status kvl_tokenizer_read_file(const char *path, long long max_size,
                                   const char *what, unsigned char **data,
                                   size_t *size, kvl_error *err);

/* 0..255 for a byte piece "<0xHH>", else -1.  HH is upper-case hex
 * (SentencePiece's PieceToByte, as its ByteToPiece writes them), or either
 * case with any_case (llama2.c's tokenizer.bin). */
int kvl_byte_piece_value(const char *p, size_t n, int any_case);

/* Format loaders: each fills *t (ops, impl, kind, vocab_size, bos, eos) or
 * returns an error with a message naming the file. */
kvl_status kvl_llama2c_tokenizer_open(const char *path, int32_t vocab_size,
                                      kvl_tokenizer *t, kvl_error *err);
kvl_status kvl_hf_tokenizer_open(const char *path, kvl_tokenizer *t,
                                 kvl_error *err);
kvl_status kvl_sp_tokenizer_open(const char *path, kvl_tokenizer *t,
                                 kvl_error *err);

#endif
