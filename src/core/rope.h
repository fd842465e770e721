/*
 * Rotary position embeddings, shared by the forward pass and by cache
 * re-positioning so that both rotate by exactly the same angles.
 */
#ifndef KVL_CORE_ROPE_H
#define KVL_CORE_ROPE_H

#include "kvlab.h"

/* inv_freq[i] for i < rotary_dim/2, with the rope's scaling applied
 * (computed as Hugging Face does, rounded to fp32). */
void kvl_rope_inv_freq(const kvl_rope *rope, float *inv_freq);

/* Rotates one head vector x[head_dim] in place to position `pos`
 * (sign = +1) or back from it (sign = -1). */
void kvl_rope_rotate(const kvl_rope *rope, const float *inv_freq, float *x,
                     int head_dim, int32_t pos, int sign);

/* Validates a rope description (theta > 0, even rotary_dim <= head_dim,
 * scaling parameters sane); fills err on failure. */
kvl_status kvl_rope_validate(const kvl_rope *rope, int head_dim,
                             kvl_error *err);

/* JSON-free text form for file metadata: "none", "linear", "llama3". */
const char *kvl_rope_scaling_name(kvl_rope_scaling_type t);
const char *kvl_rope_layout_name(kvl_rope_layout l);

#endif
