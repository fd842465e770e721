/*
 * A minimal, bounds-checked reader of SentencePiece model files (the
 * protobuf message ModelProto of sentencepiece_model.proto, proto2).
 *
 * Only the fields the tokenizer needs are decoded; every other field is
 * skipped by its wire type.  Every length is checked against the buffer, a
 * varint may not run past 10 bytes or the end of its message, and groups
 * (wire types 3 and 4, unused by SentencePiece) are rejected.  A known
 * field that arrives with an unexpected wire type is skipped like an
 * unknown one, as protobuf does; a repeated embedded message (e.g. two
 * trainer_spec records) is merged, later scalars winning.
 *
 * Field numbers used (sentencepiece_model.proto):
 *   ModelProto      pieces = 1, trainer_spec = 2, normalizer_spec = 3,
 *                   denormalizer_spec = 5
 *   SentencePiece   piece = 1, score = 2 (float), type = 3
 *                   (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4,
 *                    UNUSED 5, BYTE 6; default NORMAL)
 *   TrainerSpec     model_type = 3 (UNIGRAM 1 default, BPE 2, WORD 3,
 *                   CHAR 4), vocab_size = 4, treat_whitespace_as_suffix = 24,
 *                   byte_fallback = 35, unk_id/bos_id/eos_id/pad_id =
 *                   40/41/42/43, unk_surface = 44, unk_piece/bos_piece/
 *                   eos_piece/pad_piece = 45/46/47/48
 *   NormalizerSpec  name = 1, precompiled_charsmap = 2, add_dummy_prefix =
 *                   3 (default true), remove_extra_whitespaces = 4 (default
 *                   true), escape_whitespaces = 5 (default true)
 *
 * Strings are views into the caller's buffer, which must outlive the
 * parsed model.
 */
#ifndef KVL_TOKENIZER_SP_PROTO_H
#define KVL_TOKENIZER_SP_PROTO_H

#include "kvlab.h"

#include <stddef.h>
#include <stdint.h>

/* ---- wire-format primitives --------------------------------------------- */

enum {
    KVL_PB_VARINT = 0,
    KVL_PB_FIXED64 = 1,
    KVL_PB_LEN = 2,
    KVL_PB_GROUP_START = 3,
    KVL_PB_GROUP_END = 4,
    KVL_PB_FIXED32 = 5
};

/* A cursor over one message: [p, end).  base is the start of the whole
 * buffer, for offsets in error messages. */
typedef struct kvl_pb {
    const uint8_t *p, *end, *base;
} kvl_pb;

void kvl_pb_init(kvl_pb *r, const uint8_t *data, size_t size);
/* Each returns 0 on success, -1 (cursor unchanged) when the input is
 * truncated or malformed. */
int kvl_pb_varint(kvl_pb *r, uint64_t *v);
/* Field key: field number (1 .. 2^29-1) and wire type (0..5). */
int kvl_pb_key(kvl_pb *r, uint32_t *field, int *wire);
/* Length-delimited payload: *data, *len inside [p, end). */
int kvl_pb_bytes(kvl_pb *r, const uint8_t **data, size_t *len);
int kvl_pb_fixed32(kvl_pb *r, uint32_t *v);
/* Skips one value of the given wire type (groups: -1). */
int kvl_pb_skip(kvl_pb *r, int wire);
/* Offset of the cursor from the start of the buffer. */
size_t kvl_pb_offset(const kvl_pb *r);

/* ---- ModelProto -------------------------------------------------------- */

enum {
    KVL_SP_NORMAL = 1,
    KVL_SP_UNKNOWN = 2,
    KVL_SP_CONTROL = 3,
    KVL_SP_USER_DEFINED = 4,
    KVL_SP_UNUSED = 5,
    KVL_SP_BYTE = 6
};

enum {
    KVL_SP_MODEL_UNIGRAM = 1,
    KVL_SP_MODEL_BPE = 2,
    KVL_SP_MODEL_WORD = 3,
    KVL_SP_MODEL_CHAR = 4
};

typedef struct kvl_sp_str {
    const char *s;  /* not NUL-terminated; NULL when absent */
    size_t n;
} kvl_sp_str;

typedef struct kvl_sp_piece {
    kvl_sp_str piece;
    float score;    /* 0 when absent */
    int type;       /* KVL_SP_*, NORMAL when absent */
} kvl_sp_piece;

typedef struct kvl_sp_trainer_spec {
    int model_type;             /* default UNIGRAM */
    int32_t vocab_size;         /* default 8000 */
    int treat_whitespace_as_suffix;
    int byte_fallback;
    int32_t unk_id, bos_id, eos_id, pad_id; /* defaults 0, 1, 2, -1 */
    int has_unk_surface;
    kvl_sp_str unk_surface;     /* default " \xE2\x81\x87 " */
    kvl_sp_str unk_piece, bos_piece, eos_piece, pad_piece; /* .s NULL: absent */
} kvl_sp_trainer_spec;

typedef struct kvl_sp_normalizer_spec {
    int present;
    kvl_sp_str name;                   /* .s NULL when absent */
    kvl_sp_str precompiled_charsmap;   /* .n 0 when absent or empty */
    int add_dummy_prefix;              /* default 1 */
    int remove_extra_whitespaces;      /* default 1 */
    int escape_whitespaces;            /* default 1 */
} kvl_sp_normalizer_spec;

typedef struct kvl_sp_model_proto {
    kvl_sp_piece *pieces;   /* malloc'd array */
    size_t n_pieces;
    kvl_sp_trainer_spec trainer;
    kvl_sp_normalizer_spec normalizer;
    kvl_sp_normalizer_spec denormalizer;
} kvl_sp_model_proto;

/* Parses a serialized ModelProto.  On failure returns KVL_ERR_FORMAT (or
 * KVL_ERR_NOMEM) with a message giving the byte offset and the problem
 * (the caller adds the file name); *out is then empty. */
kvl_status kvl_sp_proto_parse(const uint8_t *data, size_t size,
                              kvl_sp_model_proto *out, kvl_error *err);
void kvl_sp_proto_free(kvl_sp_model_proto *m);

#endif
