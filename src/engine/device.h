/* Device selection ("cpu", "cuda", "cuda:N", "auto") shared by model
 * loading and the sessions; compiled with or without the CUDA backend. */
#ifndef KVL_ENGINE_DEVICE_H
#define KVL_ENGINE_DEVICE_H

#include "kvlab.h"

/* *cuda_index = -1 for the CPU, else the GPU index.  KVL_ERR_ARG for a
 * malformed name, KVL_ERR_UNSUPPORTED for cuda without a CUDA build or
 * with no such GPU. */
kvl_status kvl_device_parse(const char *device, int *cuda_index, kvl_error *err);

#endif
