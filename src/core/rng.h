/* A small seeded pseudo-random generator (xoshiro256** seeded through
 * splitmix64) for the experiment program: bootstrap resampling, random
 * forests, cross-validation folds, permutation tests, noise.  The same seed
 * gives the same stream on every machine.  State is a plain value: each
 * thread owns its own (derive per-task seeds with kvl_rng_derive). */
#ifndef KVL_CORE_RNG_H
#define KVL_CORE_RNG_H

#include <stdint.h>

typedef struct kvl_rng {
    uint64_t s[4];
} kvl_rng;

void kvl_rng_seed(kvl_rng *r, uint64_t seed);
/* A seed for sub-task `index` of a run seeded with `seed` (a hash of both),
 * so that parallel tasks draw independent, order-free streams. */
uint64_t kvl_rng_derive(uint64_t seed, uint64_t index);
uint64_t kvl_rng_u64(kvl_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double kvl_rng_uniform(kvl_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t kvl_rng_below(kvl_rng *r, uint64_t n);
/* Standard normal (Box-Muller, one value per call). */
double kvl_rng_normal(kvl_rng *r);
/* Fisher-Yates shuffle of n int32 values. */
void kvl_rng_shuffle_i32(kvl_rng *r, int32_t *a, int64_t n);

#endif
