/* Rank-based tests: average ranks, Kruskal-Wallis H and the two-sided
 * Mann-Whitney U test, mirroring scipy.stats.rankdata, kruskal and
 * mannwhitneyu (SciPy 1.10, method="auto", use_continuity=True). */
#include "stats/stats.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct rank_item {
    double v;
    size_t index;
} rank_item;

static int cmp_rank_item(const void *a, const void *b)
{
    const rank_item *x = a, *y = b;
    return (x->v > y->v) - (x->v < y->v);
}

static kvl_status check_no_nan(const double *x, size_t n, const char *what,
                               kvl_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(x[i]))
            return kvl_fail(err, KVL_ERR_ARG, "%s: value %zu is NaN", what, i);
    return KVL_OK;
}

kvl_status kvl_stats_rank(const double *x, size_t n, double *ranks,
                          double *tie_sum, kvl_error *err)
{
    if (!x || !ranks)
        return kvl_fail(err, KVL_ERR_ARG, "rank: x and ranks are required");
    if (n == 0)
        return kvl_fail(err, KVL_ERR_ARG, "rank: no values given");
    kvl_status st = check_no_nan(x, n, "rank", err);
    if (st != KVL_OK)
        return st;
    rank_item *it = malloc(n * sizeof *it);
    if (!it)
        return kvl_fail(err, KVL_ERR_NOMEM, "rank: out of memory for %zu values",
                        n);
    for (size_t i = 0; i < n; i++)
        it[i] = (rank_item){x[i], i};
    qsort(it, n, sizeof *it, cmp_rank_item);
    double ties = 0.0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && it[j].v == it[i].v)
            j++;
        /* Positions i..j-1 (0-based) share the mean 1-based rank. */
        const double r = 0.5 * ((double)(i + 1) + (double)j);
        for (size_t k = i; k < j; k++)
            ranks[it[k].index] = r;
        const double t = (double)(j - i);
        ties += t * t * t - t;
        i = j;
    }
    free(it);
    if (tie_sum)
        *tie_sum = ties;
    return KVL_OK;
}

/* ---- Kruskal-Wallis -------------------------------------------------------- */

static kvl_status check_kruskal_args(const double *x, const int32_t *group,
                                     size_t n, int32_t n_groups,
                                     const kvl_kruskal_result *out,
                                     kvl_error *err)
{
    if (!x || !group || !out)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kruskal: x, group and out are required");
    if (n == 0)
        return kvl_fail(err, KVL_ERR_ARG, "kruskal: no values given");
    if (n_groups < 2)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kruskal: need at least 2 groups, got %d",
                        (int)n_groups);
    for (size_t i = 0; i < n; i++)
        if (group[i] < 0 || group[i] >= n_groups)
            return kvl_fail(err, KVL_ERR_ARG,
                            "kruskal: group id %d of value %zu is outside "
                            "[0, %d)", (int)group[i], i, (int)n_groups);
    kvl_status st = check_no_nan(x, n, "kruskal", err);
    if (st != KVL_OK)
        return st;
    for (size_t i = 1; i < n; i++)
        if (x[i] != x[0])
            return KVL_OK;
    return kvl_fail(err, KVL_ERR_ARG,
                    "kruskal: all %zu values are identical", n);
}

/* H from ranks: 12 / (N (N + 1)) * sum_g n_g (mean rank_g - (N + 1) / 2)^2,
 * algebraically SciPy's 12 / (N (N + 1)) * sum R_g^2 / n_g - 3 (N + 1) but
 * without its cancellation; then divided by the tie correction. */
static kvl_status kruskal_h(const double *ranks, const int32_t *group,
                            size_t n, int32_t n_groups, double tie_sum,
                            double *h, kvl_error *err)
{
    double *sum = calloc((size_t)n_groups, sizeof *sum);
    size_t *count = calloc((size_t)n_groups, sizeof *count);
    if (!sum || !count) {
        free(sum);
        free(count);
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "kruskal: out of memory for %d groups", (int)n_groups);
    }
    for (size_t i = 0; i < n; i++) {
        sum[group[i]] += ranks[i];
        count[group[i]]++;
    }
    const double nn = (double)n, centre = 0.5 * (nn + 1.0);
    double between = 0.0;
    int32_t empty = -1;
    for (int32_t g = 0; g < n_groups; g++) {
        if (count[g] == 0) {
            empty = g;
            break;
        }
        const double d = sum[g] / (double)count[g] - centre;
        between += (double)count[g] * d * d;
    }
    free(sum);
    free(count);
    if (empty >= 0)
        return kvl_fail(err, KVL_ERR_ARG, "kruskal: group %d has no values",
                        (int)empty);
    const double correction = 1.0 - tie_sum / (nn * nn * nn - nn);
    *h = 12.0 / (nn * (nn + 1.0)) * between / correction;
    return KVL_OK;
}

kvl_status kvl_stats_kruskal_wallis(const double *x, const int32_t *group,
                                    size_t n, int32_t n_groups,
                                    kvl_kruskal_result *out, kvl_error *err)
{
    kvl_status st = check_kruskal_args(x, group, n, n_groups, out, err);
    if (st != KVL_OK)
        return st;
    double *ranks = malloc(n * sizeof *ranks);
    if (!ranks)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "kruskal: out of memory for %zu ranks", n);
    double tie_sum = 0.0, h = 0.0;
    st = kvl_stats_rank(x, n, ranks, &tie_sum, err);
    if (st == KVL_OK)
        st = kruskal_h(ranks, group, n, n_groups, tie_sum, &h, err);
    free(ranks);
    if (st != KVL_OK)
        return st;
    out->h = h;
    out->df = n_groups - 1;
    out->p = kvl_stats_chi2_sf(h, (double)out->df);
    out->epsilon_sq = h / ((double)n - 1.0);
    return KVL_OK;
}

/* ---- Mann-Whitney U -------------------------------------------------------- */

/* P(U <= kmax) under H0 for sample sizes m <= n without ties.  The counts of
 * U are the coefficients of the Gaussian binomial [m + n choose m]_q =
 * prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i) (Di Bucchianico 1999; SciPy's
 * recurrence f(m,n,k) = f(m-1,n,k-n) + f(m,n-1,k) computes the same numbers).
 * Step i turns [n+i-1 choose i-1]_q into [n+i choose i]_q, so every
 * intermediate polynomial has nonnegative integer coefficients; only the
 * first kmax + 1 are kept (truncated power series).  O(m * kmax). */
static kvl_status mwu_exact_cdf(size_t m, size_t n, size_t kmax, double *cdf,
                                kvl_error *err)
{
    double *c = calloc(kmax + 1, sizeof *c);
    if (!c)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "mann-whitney: out of memory for the exact "
                        "distribution (%zu terms)", kmax + 1);
    c[0] = 1.0;
    double total = 1.0; /* C(n + i, i), exact while below 2^53 */
    for (size_t i = 1; i <= m; i++) {
        for (size_t k = i; k <= kmax; k++) /* divide by (1 - q^i) */
            c[k] += c[k - i];
        if (kmax >= n + i) /* times (1 - q^(n+i)); descending, in place */
            for (size_t k = kmax; k >= n + i; k--)
                c[k] -= c[k - n - i];
        total = total * (double)(n + i) / (double)i;
    }
    double s = 0.0;
    for (size_t k = 0; k <= kmax; k++)
        s += c[k];
    free(c);
    *cdf = s / total;
    return KVL_OK;
}

/* The normal approximation with SciPy's tie and continuity corrections;
 * u is max(U1, U2). */
static double mwu_asymptotic_p(double u, double nx, double ny, double tie_sum)
{
    const double nn = nx + ny, mu = 0.5 * nx * ny;
    const double var = nx * ny / 12.0 * ((nn + 1.0) - tie_sum / (nn * (nn - 1.0)));
    if (!(var > 0.0))
        return 1.0; /* all values equal: SciPy's z = -inf, p clipped to 1 */
    const double z = (u - mu - 0.5) / sqrt(var);
    return 2.0 * kvl_stats_norm_sf(z);
}

static kvl_status check_mwu_args(const double *x, size_t nx, const double *y,
                                 size_t ny, const kvl_mwu_result *out,
                                 kvl_error *err)
{
    if (!x || !y || !out)
        return kvl_fail(err, KVL_ERR_ARG,
                        "mann-whitney: x, y and out are required");
    if (nx == 0 || ny == 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "mann-whitney: both samples need values (got %zu and "
                        "%zu)", nx, ny);
    kvl_status st = check_no_nan(x, nx, "mann-whitney (x)", err);
    if (st == KVL_OK)
        st = check_no_nan(y, ny, "mann-whitney (y)", err);
    return st;
}

/* U1 of x from the joint ranks, and the tie term, into u1 / tie_sum. */
static kvl_status mwu_u1(const double *x, size_t nx, const double *y,
                         size_t ny, double *u1, double *tie_sum,
                         kvl_error *err)
{
    const size_t n = nx + ny;
    double *buf = malloc(2 * n * sizeof *buf);
    if (!buf)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "mann-whitney: out of memory for %zu values", n);
    double *xy = buf, *ranks = buf + n;
    memcpy(xy, x, nx * sizeof *xy);
    memcpy(xy + nx, y, ny * sizeof *xy);
    kvl_status st = kvl_stats_rank(xy, n, ranks, tie_sum, err);
    if (st == KVL_OK) {
        double r1 = 0.0;
        for (size_t i = 0; i < nx; i++)
            r1 += ranks[i];
        *u1 = r1 - 0.5 * (double)nx * ((double)nx + 1.0);
    }
    free(buf);
    return st;
}

kvl_status kvl_stats_mann_whitney(const double *x, size_t nx, const double *y,
                                  size_t ny, kvl_mwu_result *out,
                                  kvl_error *err)
{
    kvl_status st = check_mwu_args(x, nx, y, ny, out, err);
    if (st != KVL_OK)
        return st;
    double u1 = 0.0, tie_sum = 0.0;
    st = mwu_u1(x, nx, y, ny, &u1, &tie_sum, err);
    if (st != KVL_OK)
        return st;
    const double mn = (double)nx * (double)ny;
    const double u2 = mn - u1, u = fmax(u1, u2);
    /* SciPy 1.10 _mwu_choose_method: asymptotic when both samples exceed 8
     * values or when there is any tie; exact otherwise. */
    const int exact = (nx <= 8 || ny <= 8) && tie_sum == 0.0;
    double p;
    if (exact) {
        /* Without ties U is an integer; P(U >= u) = P(U <= mn - u) by
         * symmetry, including the mass at u as SciPy's sf does. */
        double cdf = 0.0;
        st = mwu_exact_cdf(nx < ny ? nx : ny, nx < ny ? ny : nx,
                           (size_t)llround(mn - u), &cdf, err);
        if (st != KVL_OK)
            return st;
        p = 2.0 * cdf;
    } else {
        p = mwu_asymptotic_p(u, (double)nx, (double)ny, tie_sum);
    }
    out->u1 = u1;
    out->p = fmin(1.0, fmax(0.0, p));
    out->rank_biserial = 2.0 * u1 / mn - 1.0;
    out->exact = exact;
    return KVL_OK;
}
