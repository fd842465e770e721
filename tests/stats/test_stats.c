/* src/stats against SciPy 1.10.1 / NumPy 1.24 (and statsmodels' Holm and
 * Wilson formulas written out in Python): the fixture
 * tests/fixtures/stats/stats_reference.json is made by
 * tests/reference/make_stats_fixtures.py.  Closed-form values agree to 1e-9
 * relative; singular values of float32 input to 1e-6; bootstrap endpoints
 * within 5 standard deviations of the difference of two independent
 * 20000-resample runs.  Also: published worked examples (Holm, Mann-Whitney)
 * and bad input. */
#include "test_util.h"

#include "core/rng.h"
#include "stats/stats.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REL_CLOSED 1e-9
#define REL_SV 1e-6

/* |a - b| <= rel * max(|a|, |b|), NaN equal to NaN. */
static int close_rel(double a, double b, double rel)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b));
}

static double num(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A numeric array into a fresh malloc'ed double buffer (count in *n). */
static double *num_array(const json_t *obj, const char *key, size_t *n)
{
    const json_t *a = json_object_get(obj, key);
    *n = json_array_size(a);
    double *out = malloc((*n ? *n : 1) * sizeof *out);
    for (size_t i = 0; out && i < *n; i++)
        out[i] = json_number_value(json_array_get(a, i));
    return out;
}

static const char *name_of(const json_t *c)
{
    const char *s = json_string_value(json_object_get(c, "name"));
    return s ? s : "?";
}

/* ---- fixture checks ------------------------------------------------------------ */

static void check_descriptive(const json_t *cases)
{
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        size_t n;
        double *x = num_array(c, "x", &n);
        double *scratch = malloc(n * sizeof *scratch);
        const double m = kvl_stats_mean(x, n), v0 = kvl_stats_var(x, n, 0);
        const double v1 = kvl_stats_var(x, n, 1);
        const double med = kvl_stats_median(x, n, scratch);
        CHECK(close_rel(m, num(c, "mean"), REL_CLOSED), "case %zu mean %.17g vs %.17g", i,
              m, num(c, "mean"));
        CHECK(close_rel(v0, num(c, "var0"), REL_CLOSED), "case %zu var0 %.17g vs %.17g", i,
              v0, num(c, "var0"));
        CHECK(close_rel(v1, num(c, "var1"), REL_CLOSED), "case %zu var1 %.17g vs %.17g", i,
              v1, num(c, "var1")); /* null (n = 1) reads as NaN */
        CHECK(close_rel(med, num(c, "median"), REL_CLOSED), "case %zu median %.17g vs %.17g",
              i, med, num(c, "median"));
        free(x);
        free(scratch);
    }
}

static void check_ranks(const json_t *cases)
{
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        size_t n, nr;
        double *x = num_array(c, "x", &n), *want = num_array(c, "ranks", &nr);
        double *got = calloc(n, sizeof *got), tie = -1;
        kvl_error err;
        CHECK_OK(kvl_stats_rank(x, n, got, &tie, &err), &err);
        int bad = 0;
        for (size_t k = 0; k < n; k++)
            bad += got[k] != want[k]; /* ranks are halves: exact */
        CHECK(bad == 0 && nr == n, "case %zu: %d ranks differ", i, bad);
        CHECK(tie == num(c, "tie_sum"), "case %zu tie sum %g vs %g", i, tie,
              num(c, "tie_sum"));
        free(x);
        free(want);
        free(got);
    }
}

static void check_kruskal(const json_t *cases)
{
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        size_t n, ng;
        double *x = num_array(c, "x", &n), *gd = num_array(c, "group", &ng);
        int32_t *g = malloc(n * sizeof *g);
        for (size_t k = 0; k < n; k++)
            g[k] = (int32_t)gd[k];
        kvl_kruskal_result r = {0};
        kvl_error err;
        CHECK_OK(kvl_stats_kruskal_wallis(x, g, n, (int32_t)num(c, "n_groups"), &r, &err),
                 &err);
        CHECK(close_rel(r.h, num(c, "h"), REL_CLOSED), "%s: H %.17g vs %.17g", name_of(c),
              r.h, num(c, "h"));
        CHECK(close_rel(r.p, num(c, "p"), REL_CLOSED), "%s: p %.17g vs %.17g", name_of(c),
              r.p, num(c, "p"));
        CHECK(r.df == (int32_t)num(c, "df"), "%s: df %d", name_of(c), (int)r.df);
        CHECK(close_rel(r.epsilon_sq, num(c, "h") / ((double)n - 1), REL_CLOSED),
              "%s: epsilon^2 %g", name_of(c), r.epsilon_sq);
        free(x);
        free(gd);
        free(g);
    }
}

static void check_mwu(const json_t *cases)
{
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        size_t nx, ny;
        double *x = num_array(c, "x", &nx), *y = num_array(c, "y", &ny);
        kvl_mwu_result r = {0};
        kvl_error err;
        CHECK_OK(kvl_stats_mann_whitney(x, nx, y, ny, &r, &err), &err);
        const double u1 = num(c, "u1"), p = num(c, "p");
        const int exact = json_is_true(json_object_get(c, "exact"));
        CHECK(r.u1 == u1, "%s: U1 %.17g vs %.17g", name_of(c), r.u1, u1);
        CHECK(close_rel(r.p, p, REL_CLOSED), "%s: p %.17g vs %.17g", name_of(c), r.p, p);
        CHECK(r.exact == exact, "%s: exact %d vs SciPy's choice %d", name_of(c), r.exact,
              exact);
        CHECK(close_rel(r.rank_biserial, 2 * u1 / ((double)nx * ny) - 1, REL_CLOSED) ||
                  fabs(r.rank_biserial) < 1e-15,
              "%s: rank-biserial %g", name_of(c), r.rank_biserial);
        /* Swapping the samples mirrors U and keeps the two-sided p. */
        kvl_mwu_result s = {0};
        CHECK_OK(kvl_stats_mann_whitney(y, ny, x, nx, &s, &err), &err);
        CHECK(s.u1 == (double)nx * ny - u1 && close_rel(s.p, r.p, 1e-12),
              "%s: swapped U1 %g p %g", name_of(c), s.u1, s.p);
        free(x);
        free(y);
    }
}

static void check_holm_fixture(const json_t *cases)
{
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        size_t m, ma;
        double *p = num_array(c, "p", &m), *want = num_array(c, "adjusted", &ma);
        double *got = calloc(m, sizeof *got);
        kvl_error err;
        CHECK_OK(kvl_stats_holm(p, m, got, &err), &err);
        int bad = 0;
        for (size_t k = 0; k < m; k++)
            bad += !close_rel(got[k], want[k], REL_CLOSED);
        CHECK(bad == 0, "holm case %zu: %d of %zu differ", i, bad, m);
        /* In place (adjusted aliasing p) gives the same values. */
        CHECK_OK(kvl_stats_holm(p, m, p, &err), &err);
        CHECK(memcmp(p, got, m * sizeof *p) == 0, "holm case %zu in place differs", i);
        free(p);
        free(want);
        free(got);
    }
}

static void check_wilson_cohen(const json_t *wil, const json_t *coh)
{
    size_t i;
    const json_t *c;
    json_array_foreach(wil, i, c) {
        kvl_interval r = kvl_stats_wilson((int64_t)num(c, "k"), (int64_t)num(c, "n"),
                                          num(c, "z"));
        CHECK(close_rel(r.lo, num(c, "lo"), REL_CLOSED) || fabs(r.lo - num(c, "lo")) < 1e-15,
              "wilson %zu lo %.17g vs %.17g", i, r.lo, num(c, "lo"));
        CHECK(close_rel(r.hi, num(c, "hi"), REL_CLOSED), "wilson %zu hi %.17g vs %.17g", i,
              r.hi, num(c, "hi"));
    }
    json_array_foreach(coh, i, c) {
        size_t nx, ny;
        double *x = num_array(c, "x", &nx), *y = num_array(c, "y", &ny);
        const double d = kvl_stats_cohens_d(x, nx, y, ny);
        CHECK(close_rel(d, num(c, "d"), REL_CLOSED), "cohen %zu: %.17g vs %.17g", i, d,
              num(c, "d"));
        free(x);
        free(y);
    }
}

static void check_svd(const json_t *cases)
{
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        size_t count, k;
        double *md = num_array(c, "m", &count), *want = num_array(c, "sv", &k);
        const int32_t rows = (int32_t)num(c, "rows"), cols = (int32_t)num(c, "cols");
        float *m = malloc(count * sizeof *m);
        for (size_t e = 0; e < count; e++)
            m[e] = (float)md[e]; /* numpy: float64 -> float32, same rounding */
        double *sv = calloc(k, sizeof *sv);
        kvl_error err;
        CHECK_OK(kvl_stats_singular_values(m, rows, cols, sv, &err), &err);
        int bad = 0;
        for (size_t e = 0; e < k; e++)
            /* Relative, with a floor at double round-off of the largest
             * value for the numerically zero tail of the rank-3 case. */
            bad += !(fabs(sv[e] - want[e]) <= REL_SV * want[e] + 1e-12 * want[0]);
        CHECK(bad == 0, "%s: %d of %zu singular values differ (first %.9g vs %.9g)",
              name_of(c), bad, k, sv[0], want[0]);
        const double er = num(c, "effective_rank"), se = num(c, "spectral_entropy");
        CHECK(close_rel(kvl_stats_effective_rank(want, (int32_t)k), er, REL_CLOSED),
              "%s: effective rank %.17g vs %.17g", name_of(c),
              kvl_stats_effective_rank(want, (int32_t)k), er);
        CHECK(close_rel(kvl_stats_spectral_entropy(want, (int32_t)k), se, REL_CLOSED) ||
                  (se == 0 && kvl_stats_spectral_entropy(want, (int32_t)k) == 0),
              "%s: spectral entropy %.17g vs %.17g", name_of(c),
              kvl_stats_spectral_entropy(want, (int32_t)k), se);
        CHECK(close_rel(kvl_stats_effective_rank(sv, (int32_t)k), er, REL_SV),
              "%s: effective rank of own spectrum", name_of(c));
        free(md);
        free(want);
        free(m);
        free(sv);
    }
}

static void check_tails(const json_t *chi2, const json_t *norm)
{
    size_t i;
    const json_t *c;
    json_array_foreach(chi2, i, c) {
        const double got = kvl_stats_chi2_sf(num(c, "x"), num(c, "df"));
        CHECK(close_rel(got, num(c, "sf"), REL_CLOSED), "chi2 sf(%g, %g) %.17g vs %.17g",
              num(c, "x"), num(c, "df"), got, num(c, "sf"));
    }
    json_array_foreach(norm, i, c) {
        const double got = kvl_stats_norm_sf(num(c, "z"));
        CHECK(close_rel(got, num(c, "sf"), REL_CLOSED), "norm sf(%g) %.17g vs %.17g",
              num(c, "z"), got, num(c, "sf"));
    }
}

/* SciPy's interval is one 20000-resample run, ours another: their endpoints
 * differ by resampling noise of sd sqrt(2) * sd_one, where sd_one is the
 * spread of 20 SciPy runs (fixture; the larger of the two endpoints' spreads,
 * which also covers a lattice-valued case where one endpoint never moved). */
static void check_bootstrap(const json_t *cases)
{
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        size_t n;
        double *x = num_array(c, "x", &n);
        kvl_interval r = {0}, again = {0}, other = {0};
        kvl_error err;
        const int32_t b = (int32_t)num(c, "n_resamples");
        CHECK_OK(kvl_stats_bootstrap_mean_ci(x, n, b, num(c, "level"), 7, &r, &err), &err);
        const double sd = fmax(num(c, "mc_sd_lo"), num(c, "mc_sd_hi"));
        const double tol = 5.0 * sqrt(2.0) * sd;
        CHECK(fabs(r.lo - num(c, "lo")) <= tol, "bootstrap %zu lo %.6g vs SciPy %.6g (tol %.3g)",
              i, r.lo, num(c, "lo"), tol);
        CHECK(fabs(r.hi - num(c, "hi")) <= tol, "bootstrap %zu hi %.6g vs SciPy %.6g (tol %.3g)",
              i, r.hi, num(c, "hi"), tol);
        /* The same seed repeats the interval bit for bit; another moves it. */
        CHECK_OK(kvl_stats_bootstrap_mean_ci(x, n, b, num(c, "level"), 7, &again, &err), &err);
        CHECK(again.lo == r.lo && again.hi == r.hi, "bootstrap %zu not reproducible", i);
        /* (Only for continuous data: with ties the endpoints are lattice
         * values that another seed may well repeat.) */
        if (i == 0) {
            CHECK_OK(kvl_stats_bootstrap_mean_ci(x, n, b, num(c, "level"), 8, &other, &err),
                     &err);
            CHECK(other.lo != r.lo && other.hi != r.hi, "bootstrap %zu ignores the seed", i);
        }
        free(x);
    }
}

/* Coverage of the true mean over many normal samples, compared with the
 * coverage NumPy simulation gives for the same percentile procedure (n, B,
 * level from the fixture).  Window: 3.5 binomial sd of our trials plus 3 sd
 * of the fixture's own estimate; a 90 % interval (coverage ~0.87) fails. */
static void check_coverage(const json_t *cov)
{
    const size_t n = (size_t)num(cov, "n");
    const int32_t b = (int32_t)num(cov, "n_resamples");
    const double level = num(cov, "level"), want = num(cov, "coverage");
    const double ref_trials = num(cov, "trials");
    const int trials = 1000;
    double x[64];
    if (n > 64) {
        CHECK(n <= 64, "coverage sample size %zu", n);
        return;
    }
    kvl_rng rng;
    kvl_rng_seed(&rng, 2024);
    int hits = 0;
    kvl_error err;
    for (int t = 0; t < trials; t++) {
        for (size_t i = 0; i < n; i++)
            x[i] = 3.0 + 2.0 * kvl_rng_normal(&rng);
        kvl_interval r = {0};
        CHECK_OK(kvl_stats_bootstrap_mean_ci(x, n, b, level, kvl_rng_derive(99, (uint64_t)t),
                                             &r, &err),
                 &err);
        hits += r.lo <= 3.0 && 3.0 <= r.hi;
    }
    const double got = (double)hits / trials;
    const double tol = 3.5 * sqrt(want * (1 - want) / trials) +
                       3.0 * sqrt(want * (1 - want) / ref_trials);
    CHECK(fabs(got - want) <= tol, "coverage %.4f vs simulated %.4f (tol %.3f)", got, want,
          tol);
}

/* ---- published worked examples ------------------------------------------------ */

static void check_published(void)
{
    kvl_error err;
    /* Holm: the example of Wikipedia's "Holm-Bonferroni method" page, four
     * hypotheses with p = 0.01, 0.04, 0.03, 0.005 at alpha = 0.05: H1 and
     * H4 are rejected, H2 and H3 are not.  Adjusted by hand: H4 4 * 0.005,
     * H1 3 * 0.01, H3 2 * 0.03, H2 max(0.04, 0.06). */
    const double p[4] = {0.01, 0.04, 0.03, 0.005};
    const double want[4] = {0.03, 0.06, 0.06, 0.02};
    double adj[4];
    CHECK_OK(kvl_stats_holm(p, 4, adj, &err), &err);
    for (int i = 0; i < 4; i++)
        CHECK(fabs(adj[i] - want[i]) < 1e-15, "Wikipedia Holm H%d: %.17g vs %g", i + 1, adj[i],
              want[i]);
    CHECK(adj[0] <= 0.05 && adj[3] <= 0.05 && adj[1] > 0.05 && adj[2] > 0.05,
          "Wikipedia Holm decisions");
    /* R's p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "holm") =
     * 0.05 0.08 0.09 0.09 0.09. */
    double r5[5] = {0.01, 0.02, 0.03, 0.04, 0.05};
    const double rwant[5] = {0.05, 0.08, 0.09, 0.09, 0.09};
    CHECK_OK(kvl_stats_holm(r5, 5, r5, &err), &err);
    for (int i = 0; i < 5; i++)
        CHECK(fabs(r5[i] - rwant[i]) < 1e-15, "R p.adjust holm %d: %.17g", i, r5[i]);
    /* Mann-Whitney: Shier (2004), diabetes ages; U_M = 17, exact p = 1/9. */
    const double males[5] = {19, 22, 16, 29, 24}, females[4] = {20, 11, 17, 12};
    kvl_mwu_result m = {0};
    CHECK_OK(kvl_stats_mann_whitney(males, 5, females, 4, &m, &err), &err);
    CHECK(m.u1 == 17 && m.exact && fabs(m.p - 1.0 / 9.0) < 1e-15, "Shier U %g p %.17g", m.u1,
          m.p);
}

/* ---- properties and edge values --------------------------------------------- */

static void check_spectrum_edges(void)
{
    const double flat[5] = {2, 2, 2, 2, 2}, zero[3] = {0, 0, 0};
    const double bad[3] = {1, NAN, 0}, neg[2] = {1, -1};
    CHECK(fabs(kvl_stats_effective_rank(flat, 5) - 5) < 1e-12, "flat effective rank");
    CHECK(fabs(kvl_stats_spectral_entropy(flat, 5) - 1) < 1e-12, "flat spectral entropy");
    CHECK(kvl_stats_effective_rank(zero, 3) == 0, "zero spectrum effective rank");
    CHECK(kvl_stats_spectral_entropy(zero, 3) == 0, "zero spectrum entropy");
    CHECK(kvl_stats_effective_rank(flat, 1) == 1, "single value effective rank");
    CHECK(kvl_stats_spectral_entropy(flat, 1) == 0, "single value entropy");
    CHECK(isnan(kvl_stats_effective_rank(bad, 3)), "NaN spectrum");
    CHECK(isnan(kvl_stats_spectral_entropy(neg, 2)), "negative spectrum");
    CHECK(isnan(kvl_stats_effective_rank(NULL, 3)), "NULL spectrum");
    CHECK(kvl_stats_chi2_sf(-1, 2) == 1 && kvl_stats_chi2_sf(INFINITY, 2) == 0,
          "chi2 sf at the ends");
    CHECK(isnan(kvl_stats_chi2_sf(1, 0)) && isnan(kvl_stats_chi2_sf(NAN, 1)) &&
              isnan(kvl_stats_chi2_sf(1, NAN)),
          "chi2 sf bad arguments");
    CHECK(kvl_stats_norm_sf(-INFINITY) == 1 && kvl_stats_norm_sf(INFINITY) == 0 &&
              isnan(kvl_stats_norm_sf(NAN)),
          "norm sf at the ends");
}

static void check_value_edges(void)
{
    const double x[3] = {1, 2, 3}, c[3] = {4, 4, 4};
    double s[3];
    CHECK(isnan(kvl_stats_mean(NULL, 3)) && isnan(kvl_stats_mean(x, 0)), "mean of nothing");
    CHECK(isnan(kvl_stats_var(x, 1, 1)) && isnan(kvl_stats_var(x, 3, -1)), "var n <= ddof");
    CHECK(isnan(kvl_stats_median(x, 3, NULL)) && isnan(kvl_stats_median(x, 0, s)),
          "median without scratch or values");
    const double xn[3] = {1, NAN, 3};
    CHECK(isnan(kvl_stats_median(xn, 3, s)), "median with NaN");
    CHECK(isnan(kvl_stats_cohens_d(c, 3, c, 3)), "cohen's d of constant samples");
    CHECK(isnan(kvl_stats_cohens_d(x, 1, x, 1)), "cohen's d of two values");
    kvl_interval w = kvl_stats_wilson(5, 3, 1.96);
    CHECK(isnan(w.lo) && isnan(w.hi), "wilson k > n");
    w = kvl_stats_wilson(1, 0, 1.96);
    CHECK(isnan(w.lo), "wilson n = 0");
    w = kvl_stats_wilson(1, 3, NAN);
    CHECK(isnan(w.lo), "wilson z NaN");
}

/* A call that must fail with KVL_ERR_ARG and a message. */
#define CHECK_ARG(call)                                                              \
    do {                                                                             \
        kvl_error e_ = {KVL_OK, ""};                                                 \
        kvl_status s_ = (call);                                                      \
        CHECK(s_ == KVL_ERR_ARG && e_.message[0], "%s -> %s", #call,                 \
              kvl_status_name(s_));                                                  \
        (void)e_;                                                                    \
    } while (0)

static void check_bad_input(void)
{
    const double x[4] = {1, 2, 3, 4}, xn[4] = {1, NAN, 3, 4}, same[4] = {5, 5, 5, 5};
    const int32_t g[4] = {0, 1, 0, 1}, gout[4] = {0, 1, 2, 1}, gneg[4] = {0, -1, 0, 1};
    const int32_t gempty[4] = {0, 0, 2, 2};
    double out[4];
    float mf[4] = {1, 2, 3, 4}, mnan[4] = {1, NAN, 3, 4};
    kvl_interval iv;
    kvl_kruskal_result kr;
    kvl_mwu_result mr;
    CHECK_ARG(kvl_stats_bootstrap_mean_ci(NULL, 4, 100, 0.95, 1, &iv, &e_));
    CHECK_ARG(kvl_stats_bootstrap_mean_ci(x, 4, 100, 0.95, 1, NULL, &e_));
    CHECK_ARG(kvl_stats_bootstrap_mean_ci(x, 1, 100, 0.95, 1, &iv, &e_));
    CHECK_ARG(kvl_stats_bootstrap_mean_ci(x, 4, 0, 0.95, 1, &iv, &e_));
    CHECK_ARG(kvl_stats_bootstrap_mean_ci(x, 4, 100, 1.0, 1, &iv, &e_));
    CHECK_ARG(kvl_stats_bootstrap_mean_ci(x, 4, 100, NAN, 1, &iv, &e_));
    CHECK_ARG(kvl_stats_bootstrap_mean_ci(xn, 4, 100, 0.95, 1, &iv, &e_));
    CHECK_ARG(kvl_stats_rank(NULL, 4, out, NULL, &e_));
    CHECK_ARG(kvl_stats_rank(x, 0, out, NULL, &e_));
    CHECK_ARG(kvl_stats_rank(xn, 4, out, NULL, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(NULL, g, 4, 2, &kr, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(x, NULL, 4, 2, &kr, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(x, g, 4, 2, NULL, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(x, g, 0, 2, &kr, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(x, g, 4, 1, &kr, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(x, gout, 4, 2, &kr, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(x, gneg, 4, 2, &kr, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(x, gempty, 4, 3, &kr, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(same, g, 4, 2, &kr, &e_));
    CHECK_ARG(kvl_stats_kruskal_wallis(xn, g, 4, 2, &kr, &e_));
    CHECK_ARG(kvl_stats_mann_whitney(NULL, 2, x, 2, &mr, &e_));
    CHECK_ARG(kvl_stats_mann_whitney(x, 2, NULL, 2, &mr, &e_));
    CHECK_ARG(kvl_stats_mann_whitney(x, 2, x, 2, NULL, &e_));
    CHECK_ARG(kvl_stats_mann_whitney(x, 0, x, 2, &mr, &e_));
    CHECK_ARG(kvl_stats_mann_whitney(x, 2, x, 0, &mr, &e_));
    CHECK_ARG(kvl_stats_mann_whitney(xn, 4, x, 2, &mr, &e_));
    CHECK_ARG(kvl_stats_mann_whitney(x, 2, xn, 4, &mr, &e_));
    const double pbad[3] = {0.1, 1.5, 0.2}, pnan[2] = {NAN, 0.1}, pneg[1] = {-0.1};
    CHECK_ARG(kvl_stats_holm(NULL, 3, out, &e_));
    CHECK_ARG(kvl_stats_holm(x, 3, NULL, &e_));
    CHECK_ARG(kvl_stats_holm(pbad, 0, out, &e_));
    CHECK_ARG(kvl_stats_holm(pbad, 3, out, &e_));
    CHECK_ARG(kvl_stats_holm(pnan, 2, out, &e_));
    CHECK_ARG(kvl_stats_holm(pneg, 1, out, &e_));
    CHECK_ARG(kvl_stats_singular_values(NULL, 2, 2, out, &e_));
    CHECK_ARG(kvl_stats_singular_values(mf, 2, 2, NULL, &e_));
    CHECK_ARG(kvl_stats_singular_values(mf, 0, 2, out, &e_));
    CHECK_ARG(kvl_stats_singular_values(mf, 2, -1, out, &e_));
    CHECK_ARG(kvl_stats_singular_values(mnan, 2, 2, out, &e_));
    /* A NULL kvl_error is allowed: the status alone reports the problem. */
    CHECK(kvl_stats_rank(xn, 4, out, NULL, NULL) == KVL_ERR_ARG, "NULL err");
}

int main(void)
{
    const char *path = kvt_source_path("tests/fixtures/stats/stats_reference.json");
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc) {
        CHECK(doc != NULL, "%s: %s", path, jerr.text);
        return kvt_finish();
    }
    check_descriptive(json_object_get(doc, "descriptive"));
    check_ranks(json_object_get(doc, "rank"));
    check_kruskal(json_object_get(doc, "kruskal"));
    check_mwu(json_object_get(doc, "mwu"));
    check_holm_fixture(json_object_get(doc, "holm"));
    check_wilson_cohen(json_object_get(doc, "wilson"), json_object_get(doc, "cohens_d"));
    check_svd(json_object_get(doc, "svd"));
    check_tails(json_object_get(doc, "chi2_sf"), json_object_get(doc, "norm_sf"));
    check_bootstrap(json_object_get(doc, "bootstrap"));
    check_coverage(json_object_get(doc, "bootstrap_coverage"));
    json_decref(doc);
    check_published();
    check_spectrum_edges();
    check_value_edges();
    check_bad_input();
    return kvt_finish();
}
