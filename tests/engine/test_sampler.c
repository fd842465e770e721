/* Sampling against definitions computed here: greedy is the argmax, the
 * same seed repeats the same draws, and at temperature T the empirical
 * frequencies follow softmax(logits / T), restricted and renormalised by
 * top-k and top-p. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define V 6
static const float logits[V] = {1.0f, 2.5f, 0.3f, 2.0f, -1.0f, 0.9f};

static void expected_probs(double temp, int top_k, double top_p, double *p)
{
    int order[V];
    double q[V], sum = 0;
    for (int i = 0; i < V; i++) {
        q[i] = exp(logits[i] / temp);
        sum += q[i];
        order[i] = i;
    }
    for (int i = 0; i < V; i++)
        q[i] /= sum;
    for (int i = 0; i < V; i++) /* selection sort, descending */
        for (int j = i + 1; j < V; j++)
            if (q[order[j]] > q[order[i]]) {
                int t = order[i]; order[i] = order[j]; order[j] = t;
            }
    int keep = top_k > 0 ? top_k : V;
    if (top_p > 0 && top_p < 1) {
        double cum = 0;
        for (int i = 0; i < keep; i++) {
            cum += q[order[i]];
            if (cum >= top_p) { keep = i + 1; break; }
        }
    }
    double mass = 0;
    for (int i = 0; i < keep; i++)
        mass += q[order[i]];
    memset(p, 0, sizeof(double) * V);
    for (int i = 0; i < keep; i++)
        p[order[i]] = q[order[i]] / mass;
}

static void check_distribution(float temp, int top_k, float top_p)
{
    kvl_sampler_options o = {temp, top_k, top_p, 42};
    kvl_sampler *s = NULL;
    kvl_error err;
    CHECK_OK(kvl_sampler_new(&o, V, &s, &err), &err);
    if (!s)
        return;
    const int n = 200000;
    int counts[V] = {0};
    for (int i = 0; i < n; i++) {
        int32_t id = kvl_sampler_sample(s, logits);
        CHECK(id >= 0 && id < V, "id %d", id);
        if (id >= 0 && id < V)
            counts[id]++;
    }
    double p[V];
    expected_probs(temp, top_k, top_p, p);
    for (int i = 0; i < V; i++) {
        double sd = sqrt(n * p[i] * (1 - p[i])) + 1e-9;
        double z = fabs(counts[i] - n * p[i]) / sd;
        CHECK(p[i] == 0 ? counts[i] == 0 : z < 5.0,
              "T=%g k=%d p=%g: token %d drawn %d times, expected %.1f", (double)temp,
              top_k, (double)top_p, i, counts[i], n * p[i]);
    }
    kvl_sampler_free(s);
}

int main(void)
{
    kvl_error err;
    kvl_sampler *s = NULL;
    kvl_sampler_options greedy = {0.0f, 0, 1.0f, 1};
    CHECK_OK(kvl_sampler_new(&greedy, V, &s, &err), &err);
    CHECK(s && kvl_sampler_sample(s, logits) == 1, "greedy picks the argmax");
    kvl_sampler_free(s);

    float tie[4] = {0.5f, 3.0f, 3.0f, 1.0f};
    CHECK_OK(kvl_sampler_new(&greedy, 4, &s, &err), &err);
    CHECK(s && kvl_sampler_sample(s, tie) == 1, "greedy ties go to the lowest id");
    kvl_sampler_free(s);

    /* Same seed, same draws; another seed, other draws. */
    kvl_sampler_options o = {1.0f, 0, 1.0f, 7};
    kvl_sampler *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(kvl_sampler_new(&o, V, &a, &err), &err);
    CHECK_OK(kvl_sampler_new(&o, V, &b, &err), &err);
    o.seed = 8;
    CHECK_OK(kvl_sampler_new(&o, V, &c, &err), &err);
    int same = 1, differ = 0;
    for (int i = 0; i < 64 && a && b && c; i++) {
        int32_t x = kvl_sampler_sample(a, logits), y = kvl_sampler_sample(b, logits);
        same &= x == y;
        differ |= x != kvl_sampler_sample(c, logits);
    }
    CHECK(same, "the same seed repeats the same draws");
    CHECK(differ, "another seed draws differently");
    kvl_sampler_free(a); kvl_sampler_free(b); kvl_sampler_free(c);

    check_distribution(1.0f, 0, 1.0f);
    check_distribution(0.7f, 0, 1.0f);
    check_distribution(1.3f, 3, 1.0f);
    check_distribution(1.0f, 0, 0.8f);
    check_distribution(1.0f, 4, 0.9f);
    check_distribution(1.0f, 1, 1.0f);

    /* Bad options are refused. */
    kvl_sampler_options bad[] = {{-1.0f, 0, 1.0f, 0}, {NAN, 0, 1.0f, 0},
                                 {1.0f, -2, 1.0f, 0}, {1.0f, 0, 1.5f, 0}};
    for (size_t i = 0; i < 4; i++) {
        s = NULL;
        CHECK(kvl_sampler_new(&bad[i], V, &s, &err) == KVL_ERR_ARG && !s,
              "bad options %zu refused", i);
    }
    CHECK(kvl_sampler_new(&o, 0, &s, &err) == KVL_ERR_ARG, "vocab 0 refused");
    return kvt_finish();
}
