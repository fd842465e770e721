/* Element-wise and row-wise kernels of the forward pass (fp32). */
#ifndef KVL_ENGINE_CPU_OPS_H
#define KVL_ENGINE_CPU_OPS_H

#include "model/model.h"

/* out[r] = w * x[r] / sqrt(mean(x[r]^2) + eps) for `rows` rows of width n;
 * w is a stored [n] weight.  out may alias x. */
void kvl_rmsnorm(float *out, const float *x, const kvl_weight *w, int64_t rows,
                 int64_t n, double eps, int n_threads);
/* out[i] = silu(gate[i]) * up[i]. */
void kvl_swiglu(float *out, const float *gate, const float *up, int64_t n,
                int n_threads);
/* y[i] += x[i]. */
void kvl_add_inplace(float *y, const float *x, int64_t n);
/* out[dim] = row `id` of the embedding table, in fp32. */
void kvl_embed_row(float *out, const kvl_weight *table, int32_t id);

#endif
