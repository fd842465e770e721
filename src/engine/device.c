/* Device names and the GPU count. */
#include "engine/device.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#ifdef KVL_HAVE_CUDA
#include "engine/cuda/cuda_engine.h"
#endif

int32_t kvl_cuda_device_count(void)
{
#ifdef KVL_HAVE_CUDA
    return kvl_cuda_devices();
#else
    return 0;
#endif
}

static kvl_status cuda_index(const char *device, int *out, kvl_error *err)
{
    int idx = 0;
    if (device[4] == ':') {
        char *end = NULL;
        errno = 0;
        long v = strtol(device + 5, &end, 10);
        if (errno || !end || *end || end == device + 5 || v < 0 || v > 1024)
            return kvl_fail(err, KVL_ERR_ARG,
                            "device '%s': expected cuda:N with N a GPU index", device);
        idx = (int)v;
    } else if (device[4] != '\0') {
        return kvl_fail(err, KVL_ERR_ARG,
                        "unknown device '%s' (cpu, cuda, cuda:N or auto)", device);
    }
#ifndef KVL_HAVE_CUDA
    (void)out;
    (void)idx;
    return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                    "device '%s': this kvlab was built without CUDA (no nvcc / "
                    "cuBLAS found at build time)", device);
#else
    const int n = kvl_cuda_devices();
    if (idx >= n)
        return kvl_fail(err, KVL_ERR_UNSUPPORTED, "device '%s': %d CUDA GPU%s found",
                        device, n, n == 1 ? "" : "s");
    *out = idx;
    return KVL_OK;
#endif
}

kvl_status kvl_device_parse(const char *device, int *out, kvl_error *err)
{
    *out = -1;
    if (!device || !*device || strcmp(device, "cpu") == 0)
        return KVL_OK;
    if (strcmp(device, "auto") == 0) {
        if (kvl_cuda_device_count() > 0)
            *out = 0;
        return KVL_OK;
    }
    if (strncmp(device, "cuda", 4) == 0)
        return cuda_index(device, out, err);
    return kvl_fail(err, KVL_ERR_ARG, "unknown device '%s' (cpu, cuda, cuda:N or auto)",
                    device);
}
