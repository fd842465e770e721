/* Any bytes as a SentencePiece tokenizer.model: the protobuf reader, then
 * the loader (its validation), and for a model that loads, encoding and
 * decoding.  The loader is called directly because kvl_tokenizer_load
 * picks the format from the ".model" suffix, which a memfd path lacks. */
#include "fuzz_common.h"
#include "kvlab.h"
#include "tokenizer/sp_proto.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(kvl_tokenizer *t, const uint8_t *data, size_t size)
{
    static const char *const texts[] = {
        "Once upon a time \xe2\x9c\x93", "  two  spaces  ", "<s>caf\xc3\xa9</s>",
        "\xff\xfe bad \xc0\xaf utf-8 \xed\xa0\x80", "", "\xf0\x9f\x98\x80\n\t"};
    kvl_error err;
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (kvl_tokenizer_encode_alloc(t, texts[k], strlen(texts[k]),
                                       KVL_ENCODE_ADD_SPECIAL, &ids, &n,
                                       &err) != KVL_OK)
            continue;
        char *text = NULL;
        if (kvl_tokenizer_decode(t, ids, n, 0, &text, NULL, &err) == KVL_OK)
            kvl_free(text);
        for (size_t i = 0; i < n && i < 16; i++)
            (void)kvl_tokenizer_decode_piece(t, i ? ids[i - 1] : -1, ids[i]);
        kvl_free(ids);
    }
    /* Ids taken from the input itself, decoded with each flag. */
    int32_t ids[64];
    size_t n = fuzz_decode_input_ids(t, data, size, ids);
    kvl_strbuf raw = {0};
    (void)t->ops->decode(t->impl, ids, n, KVL_DECODE_RAW_BYTES, &raw, NULL);
    kvl_strbuf_free(&raw);
    fuzz_id_lookups(t);
}

static void run(const char *path, const uint8_t *data, size_t size)
{
    fuzz_tokenizer(path, data, size, kvl_sp_tokenizer_open, exercise);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvl_error err;
    kvl_sp_model_proto m;
    if (kvl_sp_proto_parse(data, size, &m, &err) == KVL_OK)
        kvl_sp_proto_free(&m);
    return fuzz_with_file(data, size, run);
}
