/* Any bytes as a llama2.c checkpoint, and as a tokenizer.bin. */
#include "fuzz_common.h"
#include "kvlab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(const char *path, const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    kvl_error err;
    kvl_model *m = NULL;
    if (kvl_model_load(path, NULL, &m, &err) == KVL_OK)
        kvl_model_free(m);
    kvl_tokenizer *t = NULL;
    if (kvl_tokenizer_load(path, 0, &t, &err) == KVL_OK) {
        int32_t ids[64];
        int32_t n = 0;
        (void)kvl_tokenizer_encode(t, "Once upon a time \xe2\x9c\x93", 1, ids, 64, &n, &err);
        for (int32_t i = 0; i < n && i < 64; i++)
            (void)kvl_tokenizer_decode_piece(t, i ? ids[i - 1] : -1, ids[i]);
        kvl_tokenizer_free(t);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_with_file(data, size, run);
}
