/* Internal to the engine: the greedy choice the sampler makes, shared with
 * kvl_session_decode's host path. */
#ifndef KVL_ENGINE_SAMPLER_H
#define KVL_ENGINE_SAMPLER_H

#include <stdint.h>

/* Index of the first largest of x[0..n), n >= 1. */
int32_t kvl_argmax(const float *x, int32_t n);

#endif
