/* xoshiro256** (Blackman and Vigna, 2018), seeded with splitmix64. */
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void kvl_rng_seed(kvl_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t kvl_rng_derive(uint64_t seed, uint64_t index)
{
    uint64_t x = seed ^ (index * 0xd1b54a32d192ed03ull);
    splitmix64(&x);
    return splitmix64(&x);
}

uint64_t kvl_rng_u64(kvl_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double kvl_rng_uniform(kvl_rng *r)
{
    return (double)(kvl_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t kvl_rng_below(kvl_rng *r, uint64_t n)
{
    /* Rejection of the top partial range removes modulo bias. */
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = kvl_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double kvl_rng_normal(kvl_rng *r)
{
    double u1;
    do
        u1 = kvl_rng_uniform(r);
    while (u1 <= 0.0);
    const double u2 = kvl_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void kvl_rng_shuffle_i32(kvl_rng *r, int32_t *a, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = (int64_t)kvl_rng_below(r, (uint64_t)i + 1);
        const int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
