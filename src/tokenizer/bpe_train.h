/*
 * Byte-level BPE training (internal API; the public entry point is
 * kvl_tokenizer_train_bpe in kvlab.h).  docs/tokenizer-training.md
 * describes the algorithm, the tie rule and the files written.
 *
 * Training has two stages, both reachable separately so that tests can
 * look at the result before it is written:
 *   kvl_bpe_train_files / kvl_bpe_train_texts  -> kvl_bpe_model (in memory)
 *   kvl_bpe_model_write                        -> DIR/tokenizer.json and
 *                                                 DIR/tokenizer_config.json
 */
#ifndef KVL_TOKENIZER_BPE_TRAIN_H
#define KVL_TOKENIZER_BPE_TRAIN_H

#include "core/buf.h"
#include "kvlab.h"

#include <stddef.h>
#include <stdint.h>

/* One learned merge: tokens a and b (ids) became token `result`.  Two
 * merges may give the same result (e.g. "a"+"bc" and "ab"+"c"). */
typedef struct kvl_bpe_merge {
    int32_t a, b, result;
    int64_t count; /* weighted pair frequency when it was merged */
} kvl_bpe_merge;

/* A trained model.  Ids 0..255 are the single bytes (id == byte value);
 * ids 256..n_tokens-1 are merged tokens in the order they were created;
 * the special tokens follow with ids n_tokens..n_tokens+n_special-1. */
typedef struct kvl_bpe_model {
    int32_t n_tokens;        /* model vocabulary: 256 bytes + merged     */
    uint32_t *tok_off;       /* raw bytes of token i: bytes[tok_off[i]..] */
    uint32_t *tok_len;
    char *bytes;
    kvl_bpe_merge *merges;
    size_t n_merges;
    char **special;          /* copies of the special tokens             */
    size_t n_special;
    kvl_bpe_train_stats stats;
} kvl_bpe_model;

/* Trains on files (plain UTF-8 or zstd-compressed, recognised by the zstd
 * magic number), streamed in blocks.  *out is owned by the caller. */
kvl_status kvl_bpe_train_files(const kvl_bpe_train_options *opts,
                               const char *const *files, size_t n_files,
                               kvl_bpe_model **out, kvl_error *err);
/* Trains on in-memory texts (lens NULL: NUL-terminated); each text is a
 * separate document (no pre-token spans two texts), exactly as if each
 * were its own file.  batch_bytes: bytes read per batch (0 = the default,
 * 8 MiB); tests pass small values to exercise the batch cuts. */
kvl_status kvl_bpe_train_texts(const kvl_bpe_train_options *opts,
                               const char *const *texts, const size_t *lens,
                               size_t n_texts, size_t batch_bytes,
                               kvl_bpe_model **out, kvl_error *err);
/* Writes out_dir/tokenizer.json and out_dir/tokenizer_config.json (the
 * folder is created if missing; files are written to a temporary name and
 * renamed).  opts gives the pre-tokenizer and normaliser recorded. */
kvl_status kvl_bpe_model_write(const kvl_bpe_model *m,
                               const kvl_bpe_train_options *opts,
                               const char *out_dir, kvl_error *err);
void kvl_bpe_model_free(kvl_bpe_model *m);

/* Appends the GPT-2 byte-level spelling of `len` raw bytes (each byte one
 * printable code point, e.g. ' ' -> "\u0120") to out. */
kvl_status kvl_bpe_byte_level(const char *raw, size_t len, kvl_strbuf *out,
                              kvl_error *err);

/* The split regex of a pre-tokenizer name ("qwen" or "gpt2"; NULL =
 * "qwen"), or NULL for an unknown name. */
const char *kvl_bpe_pretokenizer_pattern(const char *name);

#endif
