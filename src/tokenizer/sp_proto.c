/* Bounds-checked protobuf reading of SentencePiece's ModelProto (see
 * sp_proto.h for the fields and the rules). */
#include "tokenizer/sp_proto.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Wire format                                                               */
/* ------------------------------------------------------------------------ */

void kvl_pb_init(kvl_pb *r, const uint8_t *data, size_t size)
{
    r->p = data;
    r->end = data + size;
    r->base = data;
}

size_t kvl_pb_offset(const kvl_pb *r) { return (size_t)(r->p - r->base); }

int kvl_pb_varint(kvl_pb *r, uint64_t *v)
{
    uint64_t x = 0;
    const uint8_t *p = r->p;
    for (int i = 0; i < 10; i++) {
        if (p == r->end)
            return -1; /* truncated */
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7f) << (7 * i); /* bits past 64 dropped */
        if (!(b & 0x80)) {
            r->p = p;
            *v = x;
            return 0;
        }
    }
    return -1; /* more than 10 bytes */
}

int kvl_pb_key(kvl_pb *r, uint32_t *field, int *wire)
{
    kvl_pb save = *r;
    uint64_t k;
    if (kvl_pb_varint(r, &k) != 0)
        return -1;
    uint64_t f = k >> 3;
    int w = (int)(k & 7);
    if (f == 0 || f > 0x1fffffff || w > 5) {
        *r = save;
        return -1;
    }
    *field = (uint32_t)f;
    *wire = w;
    return 0;
}

int kvl_pb_bytes(kvl_pb *r, const uint8_t **data, size_t *len)
{
    kvl_pb save = *r;
    uint64_t n;
    if (kvl_pb_varint(r, &n) != 0)
        return -1;
    if (n > (uint64_t)(r->end - r->p)) {
        *r = save;
        return -1;
    }
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

int kvl_pb_fixed32(kvl_pb *r, uint32_t *v)
{
    if (r->end - r->p < 4)
        return -1;
    const uint8_t *p = r->p;
    *v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
    r->p += 4;
    return 0;
}

int kvl_pb_skip(kvl_pb *r, int wire)
{
    uint64_t v;
    const uint8_t *d;
    size_t n;
    switch (wire) {
    case KVL_PB_VARINT:
        return kvl_pb_varint(r, &v);
    case KVL_PB_FIXED64:
        if (r->end - r->p < 8)
            return -1;
        r->p += 8;
        return 0;
    case KVL_PB_LEN:
        return kvl_pb_bytes(r, &d, &n);
    case KVL_PB_FIXED32:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default:
        return -1; /* groups (3, 4) and invalid wire types */
    }
}

/* ------------------------------------------------------------------------ */
/* ModelProto                                                                */
/* ------------------------------------------------------------------------ */

static const char *wire_name(int wire)
{
    static const char *const names[] = {"varint", "fixed64", "length-delimited",
                                        "group start", "group end", "fixed32"};
    return wire >= 0 && wire <= 5 ? names[wire] : "invalid";
}

/* Error for a value that cannot be read at the cursor. */
static kvl_status bad_value(kvl_error *err, const kvl_pb *r, const char *what,
                            uint32_t field, int wire)
{
    if (wire == KVL_PB_GROUP_START || wire == KVL_PB_GROUP_END)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "%s field %u at offset %zu uses a protobuf group, "
                        "which SentencePiece models never contain",
                        what, (unsigned)field, kvl_pb_offset(r));
    return kvl_fail(err, KVL_ERR_FORMAT,
                    "%s field %u (%s) at offset %zu is truncated or "
                    "malformed",
                    what, (unsigned)field, wire_name(wire), kvl_pb_offset(r));
}

static kvl_status bad_key(kvl_error *err, const kvl_pb *r, const char *what)
{
    return kvl_fail(err, KVL_ERR_FORMAT,
                    "%s: malformed field key at offset %zu (truncated varint, "
                    "field number 0 or wire type above 5)",
                    what, kvl_pb_offset(r));
}

/* Reads a varint field (skipping the field if its wire type differs). */
#define READ_VARINT(dst_stmt)                                                \
    do {                                                                     \
        if (wire != KVL_PB_VARINT)                                           \
            goto skip;                                                       \
        uint64_t v_;                                                         \
        if (kvl_pb_varint(&r, &v_) != 0)                                     \
            return bad_value(err, &r, what, field, wire);                    \
        dst_stmt;                                                            \
    } while (0)

#define READ_STRING(dst)                                                     \
    do {                                                                     \
        if (wire != KVL_PB_LEN)                                              \
            goto skip;                                                       \
        const uint8_t *d_;                                                   \
        size_t n_;                                                           \
        if (kvl_pb_bytes(&r, &d_, &n_) != 0)                                 \
            return bad_value(err, &r, what, field, wire);                    \
        (dst).s = (const char *)d_;                                          \
        (dst).n = n_;                                                        \
    } while (0)

/* int32 fields are encoded as sign-extended 64-bit varints. */
static int32_t as_int32(uint64_t v) { return (int32_t)(uint32_t)v; }

static kvl_status parse_piece(const uint8_t *base, const uint8_t *data,
                              size_t size, size_t index, kvl_sp_piece *out,
                              kvl_error *err)
{
    kvl_pb r = {data, data + size, base};
    char what[64];
    snprintf(what, sizeof what, "piece %zu", index);
    out->piece.s = NULL;
    out->piece.n = 0;
    out->score = 0.0f;
    out->type = KVL_SP_NORMAL;
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        if (kvl_pb_key(&r, &field, &wire) != 0)
            return bad_key(err, &r, what);
        switch (field) {
        case 1:
            READ_STRING(out->piece);
            continue;
        case 2: {
            if (wire != KVL_PB_FIXED32)
                goto skip;
            uint32_t u;
            if (kvl_pb_fixed32(&r, &u) != 0)
                return bad_value(err, &r, what, field, wire);
            memcpy(&out->score, &u, sizeof u);
            continue;
        }
        case 3: {
            if (wire != KVL_PB_VARINT)
                goto skip;
            uint64_t v;
            if (kvl_pb_varint(&r, &v) != 0)
                return bad_value(err, &r, what, field, wire);
            if (v < 1 || v > 6)
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "%s has type %llu; SentencePiece types are "
                                "1..6 (NORMAL, UNKNOWN, CONTROL, "
                                "USER_DEFINED, UNUSED, BYTE)",
                                what, (unsigned long long)v);
            out->type = (int)v;
            continue;
        }
        default:
            break;
        }
    skip:
        if (kvl_pb_skip(&r, wire) != 0)
            return bad_value(err, &r, what, field, wire);
    }
    return KVL_OK;
}

static kvl_status parse_trainer(const uint8_t *base, const uint8_t *data,
                                size_t size, kvl_sp_trainer_spec *t,
                                kvl_error *err)
{
    kvl_pb r = {data, data + size, base};
    const char *what = "trainer_spec";
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        if (kvl_pb_key(&r, &field, &wire) != 0)
            return bad_key(err, &r, what);
        switch (field) {
        case 3: READ_VARINT(t->model_type = (int)as_int32(v_)); continue;
        case 4: READ_VARINT(t->vocab_size = as_int32(v_)); continue;
        case 24: READ_VARINT(t->treat_whitespace_as_suffix = v_ != 0); continue;
        case 35: READ_VARINT(t->byte_fallback = v_ != 0); continue;
        case 40: READ_VARINT(t->unk_id = as_int32(v_)); continue;
        case 41: READ_VARINT(t->bos_id = as_int32(v_)); continue;
        case 42: READ_VARINT(t->eos_id = as_int32(v_)); continue;
        case 43: READ_VARINT(t->pad_id = as_int32(v_)); continue;
        case 44:
            READ_STRING(t->unk_surface);
            t->has_unk_surface = 1;
            continue;
        case 45: READ_STRING(t->unk_piece); continue;
        case 46: READ_STRING(t->bos_piece); continue;
        case 47: READ_STRING(t->eos_piece); continue;
        case 48: READ_STRING(t->pad_piece); continue;
        default: break;
        }
    skip:
        if (kvl_pb_skip(&r, wire) != 0)
            return bad_value(err, &r, what, field, wire);
    }
    return KVL_OK;
}

static kvl_status parse_normalizer(const uint8_t *base, const uint8_t *data,
                                   size_t size, const char *what,
                                   kvl_sp_normalizer_spec *s, kvl_error *err)
{
    kvl_pb r = {data, data + size, base};
    s->present = 1;
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        if (kvl_pb_key(&r, &field, &wire) != 0)
            return bad_key(err, &r, what);
        switch (field) {
        case 1: READ_STRING(s->name); continue;
        case 2: READ_STRING(s->precompiled_charsmap); continue;
        case 3: READ_VARINT(s->add_dummy_prefix = v_ != 0); continue;
        case 4: READ_VARINT(s->remove_extra_whitespaces = v_ != 0); continue;
        case 5: READ_VARINT(s->escape_whitespaces = v_ != 0); continue;
        default: break;
        }
    skip:
        if (kvl_pb_skip(&r, wire) != 0)
            return bad_value(err, &r, what, field, wire);
    }
    return KVL_OK;
}

static void normalizer_defaults(kvl_sp_normalizer_spec *s)
{
    memset(s, 0, sizeof *s);
    s->add_dummy_prefix = 1;
    s->remove_extra_whitespaces = 1;
    s->escape_whitespaces = 1;
}

void kvl_sp_proto_free(kvl_sp_model_proto *m)
{
    if (!m)
        return;
    free(m->pieces);
    m->pieces = NULL;
    m->n_pieces = 0;
}

kvl_status kvl_sp_proto_parse(const uint8_t *data, size_t size,
                              kvl_sp_model_proto *out, kvl_error *err)
{
    memset(out, 0, sizeof *out);
    out->trainer.model_type = KVL_SP_MODEL_UNIGRAM;
    out->trainer.vocab_size = 8000;
    out->trainer.unk_id = 0;
    out->trainer.bos_id = 1;
    out->trainer.eos_id = 2;
    out->trainer.pad_id = -1;
    out->trainer.unk_surface.s = " \xE2\x81\x87 ";
    out->trainer.unk_surface.n = 5;
    normalizer_defaults(&out->normalizer);
    normalizer_defaults(&out->denormalizer);
    if (!data && size)
        return kvl_fail(err, KVL_ERR_ARG, "no data");

    /* Pass 1: validate the top-level structure and count the pieces. */
    const char *what = "ModelProto";
    size_t n_pieces = 0;
    kvl_pb r;
    kvl_pb_init(&r, data, size);
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        if (kvl_pb_key(&r, &field, &wire) != 0)
            return bad_key(err, &r, what);
        if (kvl_pb_skip(&r, wire) != 0)
            return bad_value(err, &r, what, field, wire);
        if (field == 1 && wire == KVL_PB_LEN)
            n_pieces++;
    }
    if (n_pieces > 0) {
        out->pieces = calloc(n_pieces, sizeof *out->pieces);
        if (!out->pieces)
            return kvl_fail(err, KVL_ERR_NOMEM,
                            "cannot allocate %zu pieces", n_pieces);
    }

    /* Pass 2: decode. */
    kvl_pb_init(&r, data, size);
    kvl_status st = KVL_OK;
    while (r.p < r.end && st == KVL_OK) {
        uint32_t field = 0;
        int wire = 0;
        const uint8_t *d = NULL;
        size_t n = 0;
        if (kvl_pb_key(&r, &field, &wire) != 0) { /* checked in pass 1 */
            st = bad_key(err, &r, what);
            break;
        }
        if (wire != KVL_PB_LEN || field < 1 || field > 5 || field == 4) {
            if (kvl_pb_skip(&r, wire) != 0)
                st = bad_value(err, &r, what, field, wire);
            continue;
        }
        if (kvl_pb_bytes(&r, &d, &n) != 0) {
            st = bad_value(err, &r, what, field, wire);
            break;
        }
        switch (field) {
        case 1:
            st = parse_piece(data, d, n, out->n_pieces,
                             &out->pieces[out->n_pieces], err);
            out->n_pieces++;
            break;
        case 2:
            st = parse_trainer(data, d, n, &out->trainer, err);
            break;
        case 3:
            st = parse_normalizer(data, d, n, "normalizer_spec",
                                  &out->normalizer, err);
            break;
        case 5:
            st = parse_normalizer(data, d, n, "denormalizer_spec",
                                  &out->denormalizer, err);
            break;
        default:
            break;
        }
    }
    if (st != KVL_OK)
        kvl_sp_proto_free(out);
    return st;
}
