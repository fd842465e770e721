/* Any bytes as a .kvc file: loaded (then exercised) or refused. */
#include "fuzz_common.h"
#include "kvlab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(const char *path, const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    kvl_cache *c = NULL;
    kvl_error err;
    if (kvl_cache_load(path, &c, &err) == KVL_OK) {
        kvl_cache *copy = NULL;
        if (kvl_cache_copy(c, &copy, &err) == KVL_OK) {
            (void)kvl_cache_shift(copy, 3, &err);
            kvl_cache_free(copy);
        }
        kvl_cache_free(c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_with_file(data, size, run);
}
