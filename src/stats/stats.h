/* Statistics for the experiment program: descriptive values, percentile
 * bootstrap intervals, rank tests (Kruskal-Wallis, Mann-Whitney U), Holm's
 * step-down correction, effect sizes, Wilson intervals and the singular-value
 * summaries of a matrix (effective rank, spectral entropy).
 *
 * Every result is checked against SciPy 1.10 (tests/stats, fixtures made by
 * tests/reference/make_stats_fixtures.py).  Conventions follow SciPy so that
 * a user can reproduce any number in a report with it:
 *   - kvl_kruskal_wallis = scipy.stats.kruskal (tie-corrected H, chi-square
 *     p-value with k-1 degrees of freedom);
 *   - kvl_mann_whitney = scipy.stats.mannwhitneyu(x, y,
 *     alternative="two-sided", method="auto", use_continuity=True): the exact
 *     distribution when either sample has at most 8 values and there are no
 *     ties (the rule SciPy 1.10's code applies: asymptotic only when both
 *     n1 > 8 and n2 > 8, or with ties), else the normal approximation with
 *     tie correction and continuity correction;
 *   - kvl_holm = statsmodels' multipletests(method="holm") adjusted p-values
 *     (monotone, capped at 1);
 *   - kvl_bootstrap_mean_ci: percentile method over n_resamples resamples of
 *     the mean (scipy.stats.bootstrap(method="percentile") up to resampling
 *     noise; the test checks coverage and agreement within that noise).
 * No function allocates unless it says so; none prints. */
#ifndef KVL_STATS_STATS_H
#define KVL_STATS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "kvlab.h"

typedef struct kvl_interval {
    double lo, hi;
} kvl_interval;

double kvl_stats_mean(const double *x, size_t n);
/* Variance with `ddof` delta degrees of freedom (0: population, 1: sample);
 * NaN when n <= ddof. */
double kvl_stats_var(const double *x, size_t n, int ddof);
/* Median; `scratch` holds n doubles (x is not modified). */
double kvl_stats_median(const double *x, size_t n, double *scratch);

/* Percentile bootstrap interval of the mean at confidence `level` (e.g.
 * 0.95) from n_resamples resamples drawn with kvl_rng seeded by `seed`.
 * Allocates and frees its own scratch.  KVL_ERR_ARG when n < 2. */
kvl_status kvl_stats_bootstrap_mean_ci(const double *x, size_t n,
                                       int32_t n_resamples, double level,
                                       uint64_t seed, kvl_interval *out,
                                       kvl_error *err);

/* Average ranks (1-based, ties get the mean of their ranks) of x[0..n) into
 * ranks; *tie_sum (if non-NULL) receives sum over tie groups of t^3 - t.
 * Allocates scratch internally. */
kvl_status kvl_stats_rank(const double *x, size_t n, double *ranks,
                          double *tie_sum, kvl_error *err);

typedef struct kvl_kruskal_result {
    double h;          /* tie-corrected statistic                        */
    int32_t df;        /* groups - 1                                     */
    double p;          /* chi-square survival function at h              */
    double epsilon_sq; /* effect size: H / (n - 1) (Tomczak & Tomczak)   */
} kvl_kruskal_result;

/* Kruskal-Wallis H test across groups: x[i] belongs to group[i] in
 * [0, n_groups), n_groups >= 2.  Every group needs at least one value, and
 * the values must not all be equal (KVL_ERR_ARG, like SciPy's ValueError /
 * NaN case).  Allocates scratch internally. */
kvl_status kvl_stats_kruskal_wallis(const double *x, const int32_t *group,
                                    size_t n, int32_t n_groups,
                                    kvl_kruskal_result *out, kvl_error *err);

typedef struct kvl_mwu_result {
    double u1;            /* U statistic of x (SciPy's returned statistic) */
    double p;             /* two-sided p-value                             */
    double rank_biserial; /* 2 * u1 / (nx * ny) - 1, in [-1, 1]; > 0 when x
                             tends to exceed y                             */
    int exact;            /* 1 when the exact distribution was used        */
} kvl_mwu_result;

/* Two-sided Mann-Whitney U test (see the top of this file).  nx, ny >= 1,
 * no NaN (infinities are ranked like SciPy ranks them).  All values equal
 * gives p = 1 as in SciPy.  Allocates scratch internally. */
kvl_status kvl_stats_mann_whitney(const double *x, size_t nx, const double *y,
                                  size_t ny, kvl_mwu_result *out,
                                  kvl_error *err);

/* Holm-adjusted p-values of p[0..m) into adjusted[0..m) (may alias p).
 * KVL_ERR_ARG when m == 0 or a p-value is NaN or outside [0, 1].  Allocates
 * scratch internally. */
kvl_status kvl_stats_holm(const double *p, size_t m, double *adjusted,
                          kvl_error *err);

/* Cohen's d with the pooled sample standard deviation; NaN when undefined. */
double kvl_stats_cohens_d(const double *x, size_t nx, const double *y,
                          size_t ny);

/* Wilson score interval of k successes in n trials at normal quantile z
 * (1.959964 for 95 %). */
kvl_interval kvl_stats_wilson(int64_t k, int64_t n, double z);

/* Distribution tails (GSL): chi-square and standard normal survival
 * functions. */
double kvl_stats_chi2_sf(double x, double df);
double kvl_stats_norm_sf(double z);

/* Singular values of the rows x cols row-major matrix m (LAPACKE dgesdd on
 * a copy), descending, into sv[0..min(rows, cols)). */
kvl_status kvl_stats_singular_values(const float *m, int32_t rows,
                                     int32_t cols, double *sv,
                                     kvl_error *err);
/* Effective rank (Roy and Vetterli, 2007): exp of the Shannon entropy (nats)
 * of p_i = s_i / sum(s).  0 for an all-zero spectrum. */
double kvl_stats_effective_rank(const double *sv, int32_t k);
/* Spectral entropy: Shannon entropy (nats) of the energy distribution
 * p_i = s_i^2 / sum(s^2), divided by log(k) so that it lies in [0, 1]
 * (1: flat spectrum).  0 when k < 2 or the spectrum is zero. */
double kvl_stats_spectral_entropy(const double *sv, int32_t k);

#endif
