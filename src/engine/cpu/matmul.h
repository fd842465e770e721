/* out[T][N] = x[T][K] @ W^T (+ bias), W stored [N][K] in F32, F16 or BF16. */
#ifndef KVL_ENGINE_CPU_MATMUL_H
#define KVL_ENGINE_CPU_MATMUL_H

#include "model/model.h"

#include <stddef.h>

/* Scratch for converting weight tiles to fp32 before sgemm; grown on
 * demand, owned by the session. */
typedef struct kvl_matmul_scratch {
    float *buf;
    size_t cap; /* floats */
} kvl_matmul_scratch;

/* Single-token products (T == 1) read the stored dtype directly, row
 * parallel; larger T converts tiles of W to fp32 and calls sgemm.
 * Returns KVL_ERR_NOMEM if the scratch cannot grow. */
kvl_status kvl_matmul(float *out, const float *x, int T, const kvl_weight *w,
                      const kvl_weight *bias, kvl_matmul_scratch *scratch,
                      int n_threads, kvl_error *err);

/* dot(row i of w, x) for a stored row; exposed for the tests. */
float kvl_dot_row(const kvl_weight *w, int64_t row, const float *x);

void kvl_matmul_scratch_free(kvl_matmul_scratch *s);

#endif
