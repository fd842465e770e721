/* Any byte string given to the safetensors reader: an error or a valid
 * view whose every tensor lies inside the mapping, never a crash. */
#include "fuzz_common.h"
#include "model/safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(const char *path, const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    kvl_st_file f;
    kvl_error err;
    if (kvl_st_open(path, &f, &err) == KVL_OK) {
        const uint8_t *lo = f.map, *hi = (const uint8_t *)f.map + f.map_size;
        for (int i = 0; i < f.n_tensors; i++) {
            const kvl_st_tensor *t = &f.tensors[i];
            if (t->nbytes && (t->data < lo || t->data + t->nbytes > hi))
                abort();
        }
        kvl_st_close(&f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_with_file(data, size, run);
}
