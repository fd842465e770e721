/* Token sampling: greedy, temperature, top-k and top-p, with a seeded RNG
 * so that the same seed gives the same text. */
#include "engine/sampler.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>

struct kvl_sampler {
    kvl_sampler_options opt;
    int32_t vocab;
    uint64_t state;
    float *probs;    /* [vocab] */
    int32_t *order;  /* [vocab] */
};

/* splitmix64: a well-mixed 64-bit generator, fine for sampling. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double next_unit(uint64_t *state)
{
    return (double)(next_u64(state) >> 11) * (1.0 / 9007199254740992.0);
}

kvl_status kvl_sampler_new(const kvl_sampler_options *options,
                           int32_t vocab_size, kvl_sampler **out,
                           kvl_error *err)
{
    if (!options || !out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_sampler_new: options and out are required");
    *out = NULL;
    const kvl_sampler_options *o = options;
    if (vocab_size <= 0)
        return kvl_fail(err, KVL_ERR_ARG, "vocabulary size must be positive, got %d",
                        (int)vocab_size);
    if (!(o->temperature >= 0.0f) || !isfinite(o->temperature))
        return kvl_fail(err, KVL_ERR_ARG, "temperature must be >= 0, got %g",
                        (double)o->temperature);
    if (o->top_k < 0)
        return kvl_fail(err, KVL_ERR_ARG, "top-k must be >= 0, got %d", (int)o->top_k);
    if (!(o->top_p >= 0.0f && o->top_p <= 1.0f))
        return kvl_fail(err, KVL_ERR_ARG, "top-p must be in [0, 1], got %g",
                        (double)o->top_p);
    kvl_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a sampler");
    s->probs = malloc((size_t)vocab_size * sizeof *s->probs);
    s->order = malloc((size_t)vocab_size * sizeof *s->order);
    if (!s->probs || !s->order) {
        kvl_sampler_free(s);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a sampler");
    }
    s->opt = *o;
    s->vocab = vocab_size;
    s->state = o->seed;
    *out = s;
    return KVL_OK;
}

void kvl_sampler_free(kvl_sampler *s)
{
    if (!s)
        return;
    free(s->probs);
    free(s->order);
    free(s);
}

int32_t kvl_argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Sort context: probabilities descending, ties by lower id. */
static int cmp_desc(const void *a, const void *b, void *ctx)
{
    const float *p = ctx;
    int32_t ia = *(const int32_t *)a, ib = *(const int32_t *)b;
    if (p[ia] > p[ib])
        return -1;
    if (p[ia] < p[ib])
        return 1;
    return (ia > ib) - (ia < ib);
}

int32_t kvl_sampler_sample(kvl_sampler *s, const float *logits)
{
    const int32_t n = s->vocab;
    if (s->opt.temperature <= 0.0f)
        return kvl_argmax(logits, n);
    const float maxl = logits[kvl_argmax(logits, n)];
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - maxl) / s->opt.temperature);
        sum += s->probs[i];
    }
    for (int32_t i = 0; i < n; i++)
        s->probs[i] = (float)(s->probs[i] / sum);

    int32_t keep = n;
    const int filter_k = s->opt.top_k > 0 && s->opt.top_k < n;
    const int filter_p = s->opt.top_p > 0.0f && s->opt.top_p < 1.0f;
    for (int32_t i = 0; i < n; i++)
        s->order[i] = i;
    if (filter_k || filter_p) {
        qsort_r(s->order, (size_t)n, sizeof *s->order, cmp_desc, s->probs);
        if (filter_k)
            keep = s->opt.top_k;
        if (filter_p) {
            double cum = 0.0;
            for (int32_t i = 0; i < keep; i++) {
                cum += s->probs[s->order[i]];
                if (cum >= s->opt.top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
    }
    double mass = 0.0;
    for (int32_t i = 0; i < keep; i++)
        mass += s->probs[s->order[i]];
    double r = next_unit(&s->state) * mass;
    double cdf = 0.0;
    for (int32_t i = 0; i < keep; i++) {
        cdf += s->probs[s->order[i]];
        if (r < cdf)
            return s->order[i];
    }
    return s->order[keep - 1]; /* rounding left r at the very top */
}
