/* Descriptive statistics, the percentile bootstrap of the mean, Holm's
 * correction, Cohen's d, Wilson intervals and the distribution tails.  The
 * rank tests live in rank_tests.c, the singular-value summaries in
 * spectrum.c.  Conventions follow SciPy / NumPy / statsmodels (stats.h). */
#include "stats/stats.h"

#include "core/error.h"
#include "core/rng.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- descriptive ---------------------------------------------------------
 * These return NaN (never fail) for NULL or too-short input, as NumPy returns
 * NaN for an empty mean; NaN in x propagates. */

double kvl_stats_mean(const double *x, size_t n)
{
    if (!x || n == 0)
        return NAN;
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s / (double)n;
}

double kvl_stats_var(const double *x, size_t n, int ddof)
{
    if (!x || ddof < 0 || n <= (size_t)ddof)
        return NAN;
    /* Two passes: the sum of squared deviations from the mean does not
     * cancel the way sum(x^2) - n * mean^2 does. */
    const double mean = kvl_stats_mean(x, n);
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = x[i] - mean;
        ss += d * d;
    }
    return ss / (double)(n - (size_t)ddof);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double kvl_stats_median(const double *x, size_t n, double *scratch)
{
    if (!x || !scratch || n == 0)
        return NAN;
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i]))
            return NAN; /* NumPy's median is NaN too; qsort needs an order */
    memcpy(scratch, x, n * sizeof *scratch);
    qsort(scratch, n, sizeof *scratch, cmp_double);
    if (n % 2)
        return scratch[n / 2];
    return 0.5 * (scratch[n / 2 - 1] + scratch[n / 2]);
}

/* ---- bootstrap ----------------------------------------------------------- */

/* np.percentile's default ("linear") rule on sorted a[0..n): position
 * (n - 1) * q, interpolated between its two neighbours. */
static double sorted_quantile(const double *a, size_t n, double q)
{
    const double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1)
        return a[n - 1];
    return a[lo] + (h - (double)lo) * (a[lo + 1] - a[lo]);
}

static kvl_status check_bootstrap_args(const double *x, size_t n,
                                       int32_t n_resamples, double level,
                                       const kvl_interval *out, kvl_error *err)
{
    if (!x || !out)
        return kvl_fail(err, KVL_ERR_ARG, "bootstrap: x and out are required");
    if (n < 2)
        return kvl_fail(err, KVL_ERR_ARG,
                        "bootstrap: need at least 2 values, got %zu", n);
    if (n_resamples < 2)
        return kvl_fail(err, KVL_ERR_ARG,
                        "bootstrap: need at least 2 resamples, got %d",
                        (int)n_resamples);
    if (!(level > 0.0 && level < 1.0))
        return kvl_fail(err, KVL_ERR_ARG,
                        "bootstrap: confidence level must be in (0, 1), got %g",
                        level);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return kvl_fail(err, KVL_ERR_ARG,
                            "bootstrap: value %zu is not finite (%g)", i, x[i]);
    return KVL_OK;
}

kvl_status kvl_stats_bootstrap_mean_ci(const double *x, size_t n,
                                       int32_t n_resamples, double level,
                                       uint64_t seed, kvl_interval *out,
                                       kvl_error *err)
{
    kvl_status st = check_bootstrap_args(x, n, n_resamples, level, out, err);
    if (st != KVL_OK)
        return st;
    const size_t b = (size_t)n_resamples;
    double *means = malloc(b * sizeof *means);
    if (!means)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "bootstrap: out of memory for %zu resample means", b);
    kvl_rng rng;
    kvl_rng_seed(&rng, seed);
    for (size_t r = 0; r < b; r++) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++)
            s += x[kvl_rng_below(&rng, (uint64_t)n)];
        means[r] = s / (double)n;
    }
    qsort(means, b, sizeof *means, cmp_double);
    const double alpha = 0.5 * (1.0 - level);
    out->lo = sorted_quantile(means, b, alpha);
    out->hi = sorted_quantile(means, b, 1.0 - alpha);
    free(means);
    return KVL_OK;
}

/* ---- Holm ---------------------------------------------------------------- */

typedef struct holm_item {
    double p;
    size_t index;
} holm_item;

static int cmp_holm_item(const void *a, const void *b)
{
    const holm_item *x = a, *y = b;
    if (x->p != y->p)
        return (x->p > y->p) - (x->p < y->p);
    return (x->index > y->index) - (x->index < y->index);
}

kvl_status kvl_stats_holm(const double *p, size_t m, double *adjusted,
                          kvl_error *err)
{
    if (!p || !adjusted)
        return kvl_fail(err, KVL_ERR_ARG, "holm: p and adjusted are required");
    if (m == 0)
        return kvl_fail(err, KVL_ERR_ARG, "holm: no p-values given");
    for (size_t i = 0; i < m; i++)
        if (!(p[i] >= 0.0 && p[i] <= 1.0))
            return kvl_fail(err, KVL_ERR_ARG,
                            "holm: p-value %zu is not in [0, 1] (%g)", i, p[i]);
    /* The copy makes aliasing of p and adjusted harmless. */
    holm_item *items = malloc(m * sizeof *items);
    if (!items)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "holm: out of memory for %zu p-values", m);
    for (size_t i = 0; i < m; i++)
        items[i] = (holm_item){p[i], i};
    qsort(items, m, sizeof *items, cmp_holm_item);
    /* Step-down: the j-th smallest (0-based) is multiplied by m - j, and the
     * running maximum keeps the adjusted values monotone.  Tied p-values get
     * the same result whatever their order, so the sort need not be stable
     * for correctness (it is anyway, by index). */
    double running = 0.0;
    for (size_t j = 0; j < m; j++) {
        const double a = fmin(1.0, (double)(m - j) * items[j].p);
        running = fmax(running, a);
        adjusted[items[j].index] = running;
    }
    free(items);
    return KVL_OK;
}

/* ---- effect sizes and intervals ------------------------------------------ */

double kvl_stats_cohens_d(const double *x, size_t nx, const double *y,
                          size_t ny)
{
    if (!x || !y || nx == 0 || ny == 0 || nx + ny < 3)
        return NAN;
    const double mx = kvl_stats_mean(x, nx), my = kvl_stats_mean(y, ny);
    double ss = 0.0;
    for (size_t i = 0; i < nx; i++)
        ss += (x[i] - mx) * (x[i] - mx);
    for (size_t i = 0; i < ny; i++)
        ss += (y[i] - my) * (y[i] - my);
    const double sd = sqrt(ss / (double)(nx + ny - 2));
    if (!(sd > 0.0))
        return NAN; /* both samples constant: the effect is undefined */
    return (mx - my) / sd;
}

kvl_interval kvl_stats_wilson(int64_t k, int64_t n, double z)
{
    kvl_interval r = {NAN, NAN};
    if (n <= 0 || k < 0 || k > n || !(z >= 0.0) || !isfinite(z))
        return r;
    /* statsmodels' proportion_confint(method="wilson") written the same
     * way: centre and half-width divided by 1 + z^2 / n. */
    const double nn = (double)n, ph = (double)k / nn, z2 = z * z;
    const double denom = 1.0 + z2 / nn;
    const double center = (ph + z2 / (2.0 * nn)) / denom;
    const double half =
        z * sqrt(ph * (1.0 - ph) / nn + z2 / (4.0 * nn * nn)) / denom;
    r.lo = center - half;
    r.hi = center + half;
    return r;
}

/* ---- distribution tails ----------------------------------------------------
 * Arguments are screened first: GSL's error handler aborts by default, and a
 * library must not install a process-wide handler of its own. */

double kvl_stats_chi2_sf(double x, double df)
{
    if (isnan(x) || !(df > 0.0) || !isfinite(df))
        return NAN;
    if (x <= 0.0)
        return 1.0;
    if (isinf(x))
        return 0.0;
    return gsl_cdf_chisq_Q(x, df);
}

double kvl_stats_norm_sf(double z)
{
    if (isnan(z))
        return NAN;
    if (isinf(z))
        return z > 0 ? 0.0 : 1.0;
    return gsl_cdf_ugaussian_Q(z);
}
