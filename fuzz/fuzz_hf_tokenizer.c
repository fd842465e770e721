/* Any bytes as a Hugging Face tokenizer.json: the JSON scanner, every
 * component parser and, for a file that loads, encoding (all flag
 * combinations, texts with invalid UTF-8, NULs and added-token lookalikes),
 * decoding ids taken from the input, streaming pieces and the id lookups.
 * The loader is called directly because kvl_tokenizer_load picks the
 * format from the ".json" suffix or a leading '{', which a memfd path and
 * arbitrary bytes lack. */
#include "fuzz_common.h"
#include "kvlab.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(kvl_tokenizer *t, const uint8_t *data, size_t size)
{
    static const struct {
        const char *s;
        size_t n;
    } texts[] = {
#define T(lit) {lit, sizeof(lit) - 1}
        T("Once upon a time \xe2\x9c\x93 Hello world"),
        T("  two  spaces \t\r\n  "),
        T("<s>caf\xc3\xa9</s><|im_start|>user\n<mask> [MASK]"),
        T("\xff\xfe bad \xc0\xaf utf-8 \xed\xa0\x80 e\xcc\x81"),
        T(""),
        T("a\0b \xf0\x9f\x98\x80 12345 don't"),
        T("\xe2\x96\x81\xe2\x96\x81x <0x41> \xc4\xa0the"),
#undef T
    };
    kvl_error err;
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        for (unsigned flags = 0; flags < 4; flags++) {
            int32_t *ids = NULL;
            size_t n = 0;
            if (kvl_tokenizer_encode_alloc(t, texts[k].s, texts[k].n, flags, &ids, &n,
                                           &err) != KVL_OK)
                continue;
            char *text = NULL;
            if (kvl_tokenizer_decode(t, ids, n, flags & 1, &text, NULL, &err) == KVL_OK)
                kvl_free(text);
            for (size_t i = 0; i < n && i < 16; i++)
                (void)kvl_tokenizer_decode_piece(t, i ? ids[i - 1] : -1, ids[i]);
            kvl_free(ids);
        }
    }
    /* The input itself as text. */
    {
        int32_t *ids = NULL;
        size_t n = 0;
        size_t len = size < 4096 ? size : 4096;
        if (kvl_tokenizer_encode_alloc(t, (const char *)data, len, 0, &ids, &n, &err) ==
            KVL_OK)
            kvl_free(ids);
    }
    /* Ids taken from the input, decoded with each flag. */
    int32_t ids[64];
    (void)fuzz_decode_input_ids(t, data, size, ids);
    fuzz_id_lookups(t);
    (void)kvl_tokenizer_bos(t);
    (void)kvl_tokenizer_eos(t);
}

static void run(const char *path, const uint8_t *data, size_t size)
{
    fuzz_tokenizer(path, data, size, kvl_hf_tokenizer_open, exercise);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_with_file(data, size, run);
}
