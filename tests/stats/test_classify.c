/* Classifiers (src/stats/classify.h) against scikit-learn 1.2.1 and against
 * values computed by hand here.
 *
 * Reference: tests/fixtures/stats/classify_reference.json, written by
 * tests/reference/make_classify_fixtures.py (numpy 1.24, sklearn 1.2.1):
 *   - logistic regression: sklearn's coefficients, centred intercepts and
 *     probabilities (solver newton-cg, tol 1e-12) and the optimum polished
 *     by Newton's method in numpy, compared at 1e-6; sklearn's lbfgs
 *     solution, which stops on its objective-change rule before a small
 *     gradient, at the distance from the optimum the script measured;
 *   - one CART tree (DecisionTreeClassifier, max_depth 3): node count,
 *     predictions and importances must match exactly;
 *   - random forests: CV accuracy within 0.08 of sklearn's (mean of 10
 *     seeded runs), importances within 0.05 of sklearn's.
 * Hand-computed Gini splits, fold balance, permutation p-values, the
 * confusion matrix and bad input are checked from first principles. */
#include "test_util.h"

#include "stats/classify.h"
#include "stats/forest_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define KVT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KVT_SANITIZED 1
#endif
#endif
#ifndef KVT_SANITIZED
#define KVT_SANITIZED 0
#endif

/* ------------------------------------------------------------- fixtures */

typedef struct owned_set {
    kvl_dataset ds;
    double *x;
    int32_t *y;
} owned_set;

static double *json_doubles(const json_t *arr, size_t expect)
{
    if (!json_is_array(arr) || json_array_size(arr) != expect)
        return NULL;
    double *v = malloc((expect ? expect : 1) * sizeof *v);
    for (size_t i = 0; v && i < expect; i++)
        v[i] = json_number_value(json_array_get(arr, i));
    return v;
}

static int32_t jint(const json_t *obj, const char *key)
{
    return (int32_t)json_integer_value(json_object_get(obj, key));
}

static double jnum(const json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

/* Reads x, y, n, d, n_classes of a fixture case; 0 if malformed. */
static int load_set(const json_t *c, owned_set *s)
{
    memset(s, 0, sizeof *s);
    const int32_t n = jint(c, "n"), d = jint(c, "d");
    s->x = json_doubles(json_object_get(c, "x"), (size_t)n * (size_t)d);
    double *y = json_doubles(json_object_get(c, "y"), (size_t)n);
    s->y = malloc((size_t)(n > 0 ? n : 1) * sizeof *s->y);
    if (!s->x || !y || !s->y) {
        free(y);
        return 0;
    }
    for (int32_t i = 0; i < n; i++)
        s->y[i] = (int32_t)y[i];
    free(y);
    s->ds = (kvl_dataset){s->x, s->y, n, d, jint(c, "n_classes")};
    return 1;
}

static void free_set(owned_set *s)
{
    free(s->x);
    free(s->y);
}

static const json_t *find_case(const json_t *list, const char *name)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *c = json_array_get(list, i);
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            return c;
    }
    return NULL;
}

/* max_i |a_i - b_i| / max(1, |b_i|) */
static double max_rel_diff(const double *a, const double *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs(a[i] - b[i]) / fmax(1.0, fabs(b[i]));
        m = e > m || isnan(e) ? e : m;
    }
    return m;
}

/* sklearn's max_features="sqrt": floor(sqrt(d)), at least 1. */
static int32_t sklearn_max_features(int32_t d)
{
    const int32_t m = (int32_t)floor(sqrt((double)d));
    return m > 1 ? m : 1;
}

/* ------------------------------------------------------- Gini and splits */

static void test_gini(void)
{
    const double a[2] = {2, 2}, b[3] = {3, 0, 0}, c[3] = {1, 1, 1}, e[2] = {0, 0};
    CHECK(fabs(kvl_gini_impurity(a, 2) - 0.5) < 1e-15, "gini(2,2)");
    CHECK(kvl_gini_impurity(b, 3) == 0.0, "gini of a pure node");
    CHECK(fabs(kvl_gini_impurity(c, 3) - 2.0 / 3.0) < 1e-15, "gini(1,1,1)");
    CHECK(kvl_gini_impurity(e, 2) == 0.0, "gini of an empty node");
}

static kvl_tree_split split_of(const double *x, const int32_t *y, int32_t n, int32_t d,
                               int32_t nc, const int32_t *rows, int32_t n_rows,
                               const int32_t *features, int32_t n_features, int32_t min_leaf)
{
    const kvl_dataset ds = {x, y, n, d, nc};
    kvl_tree_split sp = {-2, 0, 0, 0};
    kvl_error err;
    CHECK_OK(kvl_forest_best_split(&ds, rows, n_rows, features, n_features, min_leaf, &sp, &err),
             &err);
    return sp;
}

static void test_split_by_hand(void)
{
    const double x[6] = {1, 2, 3, 4, 5, 6};
    const int32_t all[6] = {0, 1, 2, 3, 4, 5}, f0[1] = {0};
    /* Clean cut: threshold 3.5, decrease N gini = 6 * 0.5. */
    const int32_t ya[6] = {0, 0, 0, 1, 1, 1};
    kvl_tree_split sp = split_of(x, ya, 6, 1, 2, all, 6, f0, 1, 1);
    CHECK(sp.feature == 0 && sp.threshold == 3.5 && sp.n_left == 3, "clean cut at 3.5: f %d t %g",
          (int)sp.feature, sp.threshold);
    CHECK(fabs(sp.decrease - 3.0) < 1e-12, "decrease %g, expected 3", sp.decrease);
    sp = split_of(x, ya, 6, 1, 2, all, 6, f0, 1, 3);
    CHECK(sp.feature == 0 && sp.threshold == 3.5, "min_samples_leaf 3 still allows 3 | 3");
    sp = split_of(x, ya, 6, 1, 2, all, 6, f0, 1, 4);
    CHECK(sp.feature == -1, "min_samples_leaf 4 leaves no split");
    /* y = 0 0 1 1 1 0: the proxies sum L_c^2/N_L + sum R_c^2/N_R of the five
     * cuts are 3.6, 4.5, 3.33, 3, 3.6: best after row 2 (threshold 2.5);
     * decrease = 6*0.5 - 0 - 4*(1 - 1/16 - 9/16) = 1.5. */
    const int32_t yb[6] = {0, 0, 1, 1, 1, 0};
    sp = split_of(x, yb, 6, 1, 2, all, 6, f0, 1, 1);
    CHECK(sp.feature == 0 && sp.threshold == 2.5 && sp.n_left == 2, "threshold %g, expected 2.5",
          sp.threshold);
    CHECK(fabs(sp.decrease - 1.5) < 1e-12, "decrease %g, expected 1.5", sp.decrease);
    /* Repeated rows count as samples (a bootstrap sample): rows 0,0,0,5,4
     * (x = 1,1,1,6,5) have counts (3, 2): decrease 5 * (1 - 13/25) = 2.4
     * at threshold (1 + 5) / 2 = 3. */
    const int32_t boot[5] = {0, 0, 0, 5, 4};
    sp = split_of(x, ya, 6, 1, 2, boot, 5, f0, 1, 1);
    CHECK(sp.feature == 0 && sp.threshold == 3.0 && sp.n_left == 3, "bootstrap split at %g",
          sp.threshold);
    CHECK(fabs(sp.decrease - 2.4) < 1e-12, "bootstrap decrease %g, expected 2.4", sp.decrease);
    sp = split_of(x, ya, 6, 1, 2, boot, 5, f0, 1, 3);
    CHECK(sp.feature == -1, "repeats count towards min_samples_leaf (2 on the right)");

    /* Two features: feature 0 has ties and separates nothing (its best cut
     * keeps the impurity); feature 1 separates perfectly at 0.4. */
    const double x2[12] = {1, 0.5, 1, 0.1, 2, 0.9, 2, 0.2, 3, 0.8, 3, 0.3};
    const int32_t y2[6] = {1, 0, 1, 0, 1, 0}, f01[2] = {0, 1}, f10[2] = {1, 0};
    sp = split_of(x2, y2, 6, 2, 2, all, 6, f01, 2, 1);
    CHECK(sp.feature == 1 && fabs(sp.threshold - 0.4) < 1e-15 && sp.n_left == 3,
          "perfect feature 1 wins: f %d t %g", (int)sp.feature, sp.threshold);
    sp = split_of(x2, y2, 6, 2, 2, all, 6, f10, 2, 1);
    CHECK(sp.feature == 1 && fabs(sp.decrease - 3.0) < 1e-12, "order of candidates irrelevant");
    /* Only feature 0 (ties): cuts fall between distinct values only. */
    sp = split_of(x2, y2, 6, 2, 2, all, 6, f01, 1, 1);
    CHECK(sp.feature == 0 && (sp.threshold == 1.5 || sp.threshold == 2.5),
          "threshold between distinct values, got %g", sp.threshold);
    CHECK(fabs(sp.decrease) < 1e-12, "feature 0 gains nothing, got %g", sp.decrease);

    /* Adjacent doubles: the midpoint rounds onto one of them; the threshold
     * must still separate them. */
    const double xa[2] = {1.0, nextafter(1.0, 2.0)};
    const int32_t ya2[2] = {0, 1}, r2[2] = {0, 1};
    sp = split_of(xa, ya2, 2, 1, 2, r2, 2, f0, 1, 1);
    CHECK(sp.feature == 0 && sp.threshold >= xa[0] && sp.threshold < xa[1],
          "threshold %.17g between adjacent doubles", sp.threshold);
    /* A constant feature has no split. */
    const double xc[3] = {2, 2, 2};
    const int32_t yc[3] = {0, 1, 0}, r3[3] = {0, 1, 2};
    sp = split_of(xc, yc, 3, 1, 2, r3, 3, f0, 1, 1);
    CHECK(sp.feature == -1, "constant feature: no split");

    kvl_error err;
    const kvl_dataset ds = {x, ya, 6, 1, 2};
    const int32_t bad_f[1] = {1}, bad_r[1] = {6};
    CHECK(kvl_forest_best_split(&ds, all, 6, bad_f, 1, 1, &sp, &err) == KVL_ERR_ARG,
          "feature out of range");
    CHECK(kvl_forest_best_split(&ds, bad_r, 1, f0, 1, 1, &sp, &err) == KVL_ERR_ARG,
          "row out of range");
    CHECK(kvl_forest_best_split(&ds, all, 6, f0, 1, 0, &sp, &err) == KVL_ERR_ARG,
          "min_samples_leaf 0");
}

/* A single CART tree equals sklearn's DecisionTreeClassifier. */
static void test_tree_vs_sklearn(const json_t *tc)
{
    owned_set s;
    if (!load_set(tc, &s)) {
        CHECK(0, "malformed tree fixture");
        return;
    }
    const int32_t n = s.ds.n, d = s.ds.d;
    kvl_forest_options o = {.n_trees = 1, .max_depth = jint(tc, "max_depth"),
                            .max_features = d, .seed = 5, .n_threads = 1};
    kvl_forest *f = NULL;
    kvl_error err;
    CHECK_OK(kvl_forest_train_ex(&s.ds, &o, 0, &f, &err), &err);
    double *grid = json_doubles(json_object_get(tc, "grid"), 40 * (size_t)d);
    double *grid_pred = json_doubles(json_object_get(tc, "grid_pred"), 40);
    double *train_pred = json_doubles(json_object_get(tc, "train_pred"), (size_t)n);
    double *imp = json_doubles(json_object_get(tc, "importance"), (size_t)d);
    if (f && grid && grid_pred && train_pred && imp) {
        CHECK(kvl_forest_tree_nodes(f, 0) == jint(tc, "node_count"), "tree has %d nodes, sklearn %d",
              (int)kvl_forest_tree_nodes(f, 0), (int)jint(tc, "node_count"));
        int bad = 0;
        for (int32_t i = 0; i < n; i++)
            bad += kvl_forest_predict(f, s.x + (size_t)i * d) != (int32_t)train_pred[i];
        for (int32_t i = 0; i < 40; i++)
            bad += kvl_forest_predict(f, grid + (size_t)i * d) != (int32_t)grid_pred[i];
        CHECK(bad == 0, "%d of %d tree predictions differ from sklearn", bad, (int)n + 40);
        const double *fi = kvl_forest_importance(f);
        CHECK(max_rel_diff(fi, imp, (size_t)d) < 1e-12, "tree importances differ from sklearn");
    }
    kvl_forest_free(f);
    /* Other seeds only reorder candidate features: the same tree. */
    o.seed = 77;
    CHECK_OK(kvl_forest_train_ex(&s.ds, &o, 0, &f, &err), &err);
    CHECK(f && kvl_forest_tree_nodes(f, 0) == jint(tc, "node_count"), "seed-independent tree");
    kvl_forest_free(f);
    free(grid);
    free(grid_pred);
    free(train_pred);
    free(imp);
    free_set(&s);
}

/* ---------------------------------------------------- logistic regression */

static void check_logreg_case(const json_t *c)
{
    owned_set s;
    if (!load_set(c, &s)) {
        CHECK(0, "malformed logreg fixture");
        return;
    }
    const char *name = json_string_value(json_object_get(c, "name"));
    const size_t k = (size_t)s.ds.n_classes, d = (size_t)s.ds.d;
    const size_t rows = (size_t)jint(c, "proba_rows");
    double *coef = json_doubles(json_object_get(c, "coef"), k * d);
    double *icpt = json_doubles(json_object_get(c, "intercept"), k);
    double *coef_opt = json_doubles(json_object_get(c, "coef_optimum"), k * d);
    double *icpt_opt = json_doubles(json_object_get(c, "intercept_optimum"), k);
    double *coef_lb = json_doubles(json_object_get(c, "coef_lbfgs"), k * d);
    double *icpt_lb = json_doubles(json_object_get(c, "intercept_lbfgs"), k);
    double *proba = json_doubles(json_object_get(c, "proba"), rows * k);
    const kvl_logreg_options o = {jnum(c, "lambda"), 10000, 1e-11};
    kvl_logreg *m = NULL;
    kvl_error err;
    CHECK_OK(kvl_logreg_train(&s.ds, &o, &m, &err), &err);
    if (m && coef && icpt && coef_opt && icpt_opt && coef_lb && icpt_lb && proba) {
        const double *w = kvl_logreg_coef(m), *b = kvl_logreg_intercept(m);
        double e = max_rel_diff(w, coef, k * d);
        CHECK(e < 1e-6, "%s: coef vs sklearn newton-cg: %.2e", name, e);
        e = max_rel_diff(b, icpt, k);
        CHECK(e < 1e-6, "%s: intercept vs sklearn newton-cg: %.2e", name, e);
        e = fmax(max_rel_diff(w, coef_opt, k * d), max_rel_diff(b, icpt_opt, k));
        CHECK(e < 1e-8, "%s: vs the polished optimum: %.2e", name, e);
        /* sklearn's lbfgs is only as close as the script measured. */
        const double lb_tol = jnum(c, "lbfgs_error") + 1e-6;
        e = fmax(max_rel_diff(w, coef_lb, k * d), max_rel_diff(b, icpt_lb, k));
        CHECK(e < lb_tol, "%s: vs sklearn lbfgs: %.2e (tolerance %.2e)", name, e, lb_tol);
        double p[8], worst = 0.0;
        for (size_t i = 0; i < rows; i++) {
            kvl_logreg_proba(m, s.x + i * d, p);
            worst = fmax(worst, max_rel_diff(p, proba + i * k, k));
            int32_t best = 0;
            for (size_t cl = 1; cl < k; cl++)
                best = p[cl] > p[best] ? (int32_t)cl : best;
            CHECK(kvl_logreg_predict(m, s.x + i * d) == best, "%s: predict is the argmax", name);
        }
        CHECK(worst < 1e-6, "%s: predict_proba differs by %.2e", name, worst);
        if (getenv("KVT_VERBOSE"))
            printf("%s: vs newton-cg %.1e, vs optimum %.1e, vs lbfgs %.1e, proba %.1e\n", name,
                   fmax(max_rel_diff(w, coef, k * d), max_rel_diff(b, icpt, k)),
                   fmax(max_rel_diff(w, coef_opt, k * d), max_rel_diff(b, icpt_opt, k)), e, worst);
    }
    kvl_logreg_free(m);
    /* Default options (tol 1e-8: max |gradient| <= 1e-8 n).  Strong
     * convexity (Hessian >= lambda on W) bounds the distance to the optimum
     * by about |gradient| / lambda; allow 10 times that. */
    const kvl_logreg_options dflt = {jnum(c, "lambda"), 0, 0};
    m = NULL;
    CHECK_OK(kvl_logreg_train(&s.ds, &dflt, &m, &err), &err);
    if (m && coef_opt && icpt_opt) {
        const double e = fmax(max_rel_diff(kvl_logreg_coef(m), coef_opt, k * d),
                              max_rel_diff(kvl_logreg_intercept(m), icpt_opt, k));
        const double bound = 10 * 1e-8 * s.ds.n / jnum(c, "lambda");
        CHECK(e < bound, "%s: default tolerance: %.2e from the optimum (bound %.1e)", name, e, bound);
        if (getenv("KVT_VERBOSE"))
            printf("%s: default options %.1e from the optimum (bound %.1e)\n", name, e, bound);
    }
    kvl_logreg_free(m);
    free(coef);
    free(icpt);
    free(coef_opt);
    free(icpt_opt);
    free(coef_lb);
    free(icpt_lb);
    free(proba);
    free_set(&s);
}

static void test_logreg(const json_t *cases)
{
    CHECK(json_array_size(cases) == 4, "four logreg cases");
    for (size_t i = 0; i < json_array_size(cases); i++)
        check_logreg_case(json_array_get(cases, i));
}

/* ---------------------------------------------------------- random forest */

/* Importances of the informative features dominate and follow sklearn. */
static void test_forest_importance(const json_t *c)
{
    owned_set s;
    if (!c || !load_set(c, &s)) {
        CHECK(0, "malformed informative01 fixture");
        return;
    }
    double *ref = json_doubles(json_object_get(c, "sklearn_importance"), (size_t)s.ds.d);
    /* sklearn's max_features="sqrt" is floor(sqrt(d)) (2 for d = 8), the
     * header's default round(sqrt(d)) = 3: use sklearn's setting. */
    const kvl_forest_options o = {.n_trees = 200, .max_features = sklearn_max_features(s.ds.d),
                                  .seed = 11};
    kvl_forest *f = NULL;
    kvl_error err;
    CHECK_OK(kvl_forest_train(&s.ds, &o, &f, &err), &err);
    if (f && ref) {
        const double *imp = kvl_forest_importance(f);
        double sum = 0.0, noise_max = 0.0;
        for (int32_t j = 0; j < s.ds.d; j++) {
            sum += imp[j];
            if (j >= 2)
                noise_max = fmax(noise_max, imp[j]);
            CHECK(fabs(imp[j] - ref[j]) < 0.05, "importance %d: %.3f, sklearn %.3f", (int)j,
                  imp[j], ref[j]);
            if (getenv("KVT_VERBOSE"))
                printf("importance %d: %.4f sklearn %.4f\n", (int)j, imp[j], ref[j]);
        }
        CHECK(fabs(sum - 1.0) < 1e-12, "importances sum to %.15g", sum);
        CHECK(imp[0] > 3 * noise_max && imp[1] > 3 * noise_max && imp[0] + imp[1] > 0.6,
              "features 0, 1 dominate: %.3f %.3f, noise up to %.3f", imp[0], imp[1], noise_max);
    }
    kvl_forest_free(f);
    /* A full-depth tree without bootstrap fits distinct rows exactly. */
    const kvl_forest_options full = {.n_trees = 1, .max_features = s.ds.d, .seed = 3};
    CHECK_OK(kvl_forest_train_ex(&s.ds, &full, 0, &f, &err), &err);
    int wrong = 0;
    for (int32_t i = 0; f && i < s.ds.n; i++)
        wrong += kvl_forest_predict(f, s.x + (size_t)i * s.ds.d) != s.y[i];
    CHECK(f && wrong == 0, "full tree misfits %d training rows", wrong);
    kvl_forest_free(f);
    free(ref);
    free_set(&s);
}

/* Same seed, 1 or 2 threads: bit-identical forests. */
static void test_forest_threads(const json_t *c)
{
    owned_set s;
    if (!c || !load_set(c, &s)) {
        CHECK(0, "malformed medium fixture");
        return;
    }
    kvl_forest_options o = {.n_trees = 40, .seed = 99, .n_threads = 1};
    kvl_forest *f1 = NULL, *f2 = NULL;
    kvl_error err;
    CHECK_OK(kvl_forest_train(&s.ds, &o, &f1, &err), &err);
    o.n_threads = 2;
    CHECK_OK(kvl_forest_train(&s.ds, &o, &f2, &err), &err);
    if (f1 && f2) {
        const size_t d = (size_t)s.ds.d;
        CHECK(memcmp(kvl_forest_importance(f1), kvl_forest_importance(f2), d * sizeof(double)) == 0,
              "importances depend on the thread count");
        int same = 1;
        double p1[3], p2[3];
        for (int32_t i = 0; i < s.ds.n; i++) {
            kvl_forest_proba(f1, s.x + (size_t)i * d, p1);
            kvl_forest_proba(f2, s.x + (size_t)i * d, p2);
            same &= memcmp(p1, p2, sizeof p1) == 0;
        }
        CHECK(same, "probabilities depend on the thread count");
        for (int32_t t = 0; t < o.n_trees; t++)
            same &= kvl_forest_tree_nodes(f1, t) == kvl_forest_tree_nodes(f2, t);
        CHECK(same, "tree sizes depend on the thread count");
    }
    kvl_forest_free(f2);
    f2 = NULL;
    /* Another seed grows another forest. */
    o.seed = 100;
    CHECK_OK(kvl_forest_train(&s.ds, &o, &f2, &err), &err);
    CHECK(f1 && f2 && memcmp(kvl_forest_importance(f1), kvl_forest_importance(f2),
                             (size_t)s.ds.d * sizeof(double)) != 0,
          "another seed, another forest");
    kvl_forest_free(f1);
    kvl_forest_free(f2);
    free_set(&s);
}

/* Checks the invariants of any CV result. */
static void check_result_shape(const kvl_cv_result *r, const kvl_dataset *ds, const char *what)
{
    const int32_t nc = r->n_classes;
    int64_t total = 0, diag = 0;
    for (int32_t a = 0; a < nc; a++)
        for (int32_t b = 0; b < nc; b++) {
            total += r->confusion[a * nc + b];
            diag += a == b ? r->confusion[a * nc + b] : 0;
        }
    const int64_t n_test = ds->n;
    CHECK(total == n_test, "%s: confusion sums to %lld, expected %lld", what, (long long)total,
          (long long)n_test);
    CHECK((double)diag / (double)n_test == r->accuracy, "%s: diagonal / n = %.6f, accuracy %.6f",
          what, (double)diag / (double)n_test, r->accuracy);
    /* Row sums are the true class counts. */
    int ok = 1;
    for (int32_t a = 0; a < nc; a++) {
        int64_t row = 0, truth = 0;
        for (int32_t b = 0; b < nc; b++)
            row += r->confusion[a * nc + b];
        for (int32_t i = 0; i < ds->n; i++)
            truth += ds->y[i] == a;
        ok &= row == truth;
    }
    CHECK(ok, "%s: confusion rows are the class counts", what);
    double isum = 0.0;
    for (int32_t j = 0; j < r->d; j++)
        isum += r->importance[j];
    CHECK(fabs(isum - 1.0) < 1e-9, "%s: importances sum to %.12f", what, isum);
}

/* Our CV accuracy within 0.08 of sklearn's on every forest dataset.  One
 * seeded run varies (sd ~0.03 on random labels), and so does sklearn's: the
 * fixture holds the mean of 30 sklearn runs, compared here with the mean of
 * CV_REPEATS runs of ours. */
#define CV_REPEATS 3
static void test_forest_cv(const json_t *cases)
{
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        owned_set s;
        if (!load_set(c, &s)) {
            CHECK(0, "malformed forest fixture");
            continue;
        }
        double mean_acc = 0.0;
        for (int rep = 0; rep < CV_REPEATS; rep++) {
            kvl_cv_options o = {.kind = KVL_CLF_FOREST, .k_folds = 5, .seed = 1234 + rep,
                                .forest = {.n_trees = KVT_SANITIZED ? 50 : 100,
                                           .max_features = sklearn_max_features(s.ds.d),
                                           .seed = 4321 + rep}};
            kvl_cv_result r;
            kvl_error err;
            CHECK_OK(kvl_cross_validate(&s.ds, &o, &r, &err), &err);
            mean_acc += r.accuracy / CV_REPEATS;
            CHECK(r.k_folds == 5 && isnan(r.perm_p) && r.n_permutations == 0, "%s: result fields",
                  name);
            if (strcmp(name, "separable") == 0)
                CHECK(r.accuracy >= 0.95, "separable: accuracy %.3f", r.accuracy);
            if (strcmp(name, "random_labels") == 0)
                CHECK(fabs(r.accuracy - r.chance) <= 0.15 && r.chance == 0.5,
                      "random labels: accuracy %.3f, chance %.3f", r.accuracy, r.chance);
            check_result_shape(&r, &s.ds, name);
            double pooled = 0.0; /* folds differ in size by <= 1 */
            for (int32_t f = 0; f < r.k_folds; f++)
                pooled += r.fold_accuracy[f] / r.k_folds;
            CHECK(fabs(pooled - r.accuracy) < 0.01, "%s: fold accuracies average %.4f vs %.4f",
                  name, pooled, r.accuracy);
            kvl_cv_result_free(&r);
        }
        const double ref = jnum(c, "sklearn_cv_accuracy");
        if (getenv("KVT_VERBOSE"))
            printf("%s: CV accuracy %.4f, sklearn %.4f\n", name, mean_acc, ref);
        CHECK(fabs(mean_acc - ref) <= 0.08, "%s: CV accuracy %.3f, sklearn %.3f", name, mean_acc,
              ref);
        free_set(&s);
    }
}

/* ----------------------------------------------------------------- folds */

static void test_folds(void)
{
    enum { N = 30, K = 5 };
    int32_t y[N], fold[N], fold2[N];
    for (int32_t i = 0; i < N; i++) /* 13 of class 0, 7 of 1, 10 of 2 */
        y[i] = i % 3 == 0 ? 2 : (i < 20 ? 0 : 1);
    int32_t count[3] = {0};
    for (int32_t i = 0; i < N; i++)
        count[y[i]]++;
    kvl_error err;
    CHECK(count[0] == 13 && count[1] == 7 && count[2] == 10, "fold labels %d %d %d", count[0],
          count[1], count[2]);
    CHECK_OK(kvl_stratified_folds(y, N, 3, K, 42, fold, &err), &err);
    int in_range = 1;
    int32_t per[K][3] = {{0}}, size[K] = {0};
    for (int32_t i = 0; i < N; i++) {
        in_range &= fold[i] >= 0 && fold[i] < K;
        if (fold[i] >= 0 && fold[i] < K) {
            per[fold[i]][y[i]]++;
            size[fold[i]]++;
        }
    }
    CHECK(in_range, "fold ids in [0, k)");
    for (int32_t c = 0; c < 3; c++) {
        int32_t lo = N, hi = 0;
        for (int32_t f = 0; f < K; f++) {
            lo = per[f][c] < lo ? per[f][c] : lo;
            hi = per[f][c] > hi ? per[f][c] : hi;
        }
        CHECK(hi - lo <= 1, "class %d spread %d..%d over folds", (int)c, (int)lo, (int)hi);
    }
    int32_t lo = N, hi = 0;
    for (int32_t f = 0; f < K; f++) {
        lo = size[f] < lo ? size[f] : lo;
        hi = size[f] > hi ? size[f] : hi;
    }
    CHECK(hi - lo <= 1, "fold sizes %d..%d", (int)lo, (int)hi);
    CHECK_OK(kvl_stratified_folds(y, N, 3, K, 42, fold2, &err), &err);
    CHECK(memcmp(fold, fold2, sizeof fold) == 0, "same seed, same folds");
    CHECK_OK(kvl_stratified_folds(y, N, 3, K, 43, fold2, &err), &err);
    CHECK(memcmp(fold, fold2, sizeof fold) != 0, "another seed, other folds");

    CHECK(kvl_stratified_folds(y, N, 3, 8, 1, fold, &err) == KVL_ERR_ARG && strstr(err.message, "class 1"),
          "class 1 has 7 < 8 members: %s", err.message);
    CHECK(kvl_stratified_folds(y, N, 4, K, 1, fold, &err) == KVL_ERR_ARG, "an empty class");
    CHECK(kvl_stratified_folds(y, N, 3, 1, 1, fold, &err) == KVL_ERR_ARG, "k = 1");
    CHECK(kvl_stratified_folds(y, N, 2, K, 1, fold, &err) == KVL_ERR_ARG, "label out of range");
    CHECK(kvl_stratified_folds(NULL, N, 3, K, 1, fold, &err) == KVL_ERR_ARG, "NULL labels");
    CHECK(kvl_stratified_folds(y, 0, 3, K, 1, fold, &err) == KVL_ERR_ARG, "n = 0");
}

/* ------------------------------------------------------ permutation tests */

/* Labels drawn independently of the features (numbers from a fixed LCG so
 * the test needs no generator of the library). */
static void random_set(owned_set *s, int32_t n, int32_t d, uint64_t seed)
{
    s->x = malloc((size_t)n * (size_t)d * sizeof *s->x);
    s->y = malloc((size_t)n * sizeof *s->y);
    uint64_t st = seed * 2862933555777941757ull + 3037000493ull;
    for (size_t i = 0; s->x && i < (size_t)n * (size_t)d; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        s->x[i] = (double)(st >> 11) / 9007199254740992.0 - 0.5;
    }
    for (int32_t i = 0; s->y && i < n; i++)
        s->y[i] = i % 2;
    s->ds = (kvl_dataset){s->x, s->y, n, d, 2};
}

static void test_permutation(const json_t *forest_cases)
{
    owned_set sep;
    if (!load_set(find_case(forest_cases, "separable"), &sep)) {
        CHECK(0, "malformed separable fixture");
        return;
    }
    kvl_error err;
    kvl_cv_result r;
    /* Informative data: no permutation reaches the real accuracy, so
     * p = 1 / (n_perm + 1) exactly. */
    kvl_cv_options o = {.kind = KVL_CLF_LOGREG, .k_folds = 5, .n_permutations = 99, .seed = 8};
    CHECK_OK(kvl_cross_validate(&sep.ds, &o, &r, &err), &err);
    CHECK(r.perm_p == 1.0 / 100.0 && r.n_permutations == 99, "logreg p = %g, expected 0.01",
          r.perm_p);
    CHECK(r.accuracy >= 0.95, "logreg on separable data: %.3f", r.accuracy);
    check_result_shape(&r, &sep.ds, "logreg separable");
    kvl_cv_result_free(&r);
    o.kind = KVL_CLF_FOREST;
    o.n_permutations = 19;
    o.forest = (kvl_forest_options){.n_trees = 10, .seed = 2};
    CHECK_OK(kvl_cross_validate(&sep.ds, &o, &r, &err), &err);
    CHECK(r.perm_p == 1.0 / 20.0, "forest p = %g, expected 0.05", r.perm_p);
    /* The same numbers with 1 and 2 threads. */
    kvl_cv_result r1;
    o.n_threads = 1;
    CHECK_OK(kvl_cross_validate(&sep.ds, &o, &r1, &err), &err);
    o.n_threads = 2;
    kvl_cv_result r2;
    CHECK_OK(kvl_cross_validate(&sep.ds, &o, &r2, &err), &err);
    CHECK(r1.accuracy == r.accuracy && r2.accuracy == r.accuracy && r1.perm_p == r2.perm_p &&
              memcmp(r1.importance, r2.importance, (size_t)sep.ds.d * sizeof(double)) == 0 &&
              memcmp(r1.confusion, r2.confusion, 9 * sizeof(int64_t)) == 0,
          "CV results depend on the thread count");
    kvl_cv_result_free(&r);
    kvl_cv_result_free(&r1);
    kvl_cv_result_free(&r2);
    free_set(&sep);

    /* Random labels: under the null the p-value is uniform on
     * {1/20, ..., 1}, so over 12 independent datasets its mean is about
     * 0.5 (sd ~0.085) and small values are rare.  A p-value that counted
     * permutations the wrong way, or compared the wrong accuracies, would
     * pile up at one end. */
    double p_sum = 0.0;
    int n_small = 0;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        owned_set rs;
        random_set(&rs, 60, 4, seed);
        o = (kvl_cv_options){.kind = KVL_CLF_LOGREG, .k_folds = 4, .n_permutations = 19,
                             .seed = seed};
        CHECK_OK(kvl_cross_validate(&rs.ds, &o, &r, &err), &err);
        p_sum += r.perm_p;
        n_small += r.perm_p <= 0.05;
        if (seed == 1)
            CHECK(r.perm_p > 0.05, "random labels, seed 1: p = %g", r.perm_p);
        kvl_cv_result_free(&r);
        free_set(&rs);
    }
    CHECK(fabs(p_sum / 12 - 0.5) < 0.3 && n_small <= 3, "random labels: mean p %.3f, %d small",
          p_sum / 12, n_small);
    if (getenv("KVT_VERBOSE"))
        printf("random labels: mean p %.3f, %d of 12 <= 0.05\n", p_sum / 12, n_small);
}

/* -------------------------------------------------------------- train/test */

static void test_train_test(const json_t *forest_cases)
{
    owned_set s;
    if (!load_set(find_case(forest_cases, "separable"), &s)) {
        CHECK(0, "malformed separable fixture");
        return;
    }
    /* Even rows train, odd rows test (classes are in blocks of 50). */
    const int32_t n = s.ds.n, d = s.ds.d, h = n / 2;
    double *xa = malloc((size_t)n * (size_t)d * sizeof *xa);
    int32_t *ya = malloc((size_t)n * sizeof *ya);
    for (int32_t i = 0; xa && ya && i < n; i++) {
        const int32_t to = (i % 2) * h + i / 2;
        memcpy(xa + (size_t)to * d, s.x + (size_t)i * d, (size_t)d * sizeof *xa);
        ya[to] = s.y[i];
    }
    const kvl_dataset train = {xa, ya, h, d, 3}, test = {xa + (size_t)h * d, ya + h, n - h, d, 3};
    for (int kind = 0; kind < 2; kind++) {
        kvl_cv_options o = {.kind = (kvl_classifier_kind)kind, .n_permutations = 9, .seed = 3,
                            .forest = {.n_trees = 30, .seed = 1}};
        kvl_cv_result r;
        kvl_error err;
        CHECK_OK(kvl_train_test(&train, &test, &o, &r, &err), &err);
        CHECK(r.k_folds == 1 && r.fold_accuracy[0] == r.accuracy && r.accuracy >= 0.95,
              "%s train/test accuracy %.3f", kvl_classifier_name(o.kind), r.accuracy);
        CHECK(r.perm_p == 0.1, "%s train/test p = %g", kvl_classifier_name(o.kind), r.perm_p);
        CHECK(fabs(r.chance - 25.0 / 75.0) < 1e-15, "chance %.4f", r.chance);
        check_result_shape(&r, &test, "train/test");
        kvl_cv_result_free(&r);
        const kvl_dataset narrow = {xa, ya, h, d - 1, 3};
        CHECK(kvl_train_test(&narrow, &test, &o, &r, &err) == KVL_ERR_ARG, "d mismatch");
        CHECK(r.fold_accuracy == NULL, "nothing allocated on error");
    }
    free(xa);
    free(ya);
    free_set(&s);
}

/* -------------------------------------------------------------- bad input */

static void test_bad_input(void)
{
    const double x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    const int32_t y[4] = {0, 1, 0, 1}, y_bad[4] = {0, 2, 0, 1}, y_neg[4] = {0, -1, 0, 1};
    double x_nan[8], x_inf[8];
    memcpy(x_nan, x, sizeof x);
    memcpy(x_inf, x, sizeof x);
    x_nan[5] = NAN;
    x_inf[2] = -INFINITY;
    const kvl_dataset bad[] = {
        {NULL, y, 4, 2, 2}, {x, NULL, 4, 2, 2}, {x, y, 0, 2, 2},  {x, y, 4, 0, 2},
        {x, y_bad, 4, 2, 2}, {x, y_neg, 4, 2, 2}, {x_nan, y, 4, 2, 2}, {x_inf, y, 4, 2, 2},
        {x, y, 4, 2, 1},
    };
    const char *names[] = {"NULL x", "NULL y", "n = 0", "d = 0", "label 2 of 2", "label -1",
                           "NaN feature", "infinite feature", "one class"};
    const kvl_dataset ok = {x, y, 4, 2, 2};
    kvl_error err;
    const kvl_forest_options fo = {.n_trees = 3};
    const kvl_logreg_options lo = {0};
    const kvl_cv_options co = {.kind = KVL_CLF_LOGREG, .k_folds = 2};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kvl_forest *f = (kvl_forest *)&err;
        kvl_logreg *m = (kvl_logreg *)&err;
        kvl_cv_result r;
        err.message[0] = 0;
        CHECK(kvl_forest_train(&bad[i], &fo, &f, &err) == KVL_ERR_ARG && !f && err.message[0],
              "forest, %s", names[i]);
        CHECK(kvl_logreg_train(&bad[i], &lo, &m, &err) == KVL_ERR_ARG && !m, "logreg, %s", names[i]);
        CHECK(kvl_cross_validate(&bad[i], &co, &r, &err) == KVL_ERR_ARG && !r.confusion,
              "cross-validation, %s", names[i]);
        CHECK(kvl_train_test(&bad[i], &ok, &co, &r, &err) == KVL_ERR_ARG,
              "train/test, bad training set: %s", names[i]);
        CHECK(kvl_train_test(&ok, &bad[i], &co, &r, &err) == KVL_ERR_ARG,
              "train/test, bad test set: %s", names[i]);
    }
    kvl_forest *f = NULL;
    kvl_logreg *m = NULL;
    kvl_cv_result r;
    CHECK(kvl_forest_train(NULL, &fo, &f, &err) == KVL_ERR_ARG, "NULL dataset");
    CHECK(kvl_forest_train(&ok, NULL, &f, &err) == KVL_ERR_ARG, "NULL options");
    CHECK(kvl_forest_train(&ok, &fo, NULL, &err) == KVL_ERR_ARG, "NULL out");
    kvl_forest_options bf = {.n_trees = -1};
    CHECK(kvl_forest_train(&ok, &bf, &f, &err) == KVL_ERR_ARG, "negative n_trees");
    bf = (kvl_forest_options){.max_features = 3};
    CHECK(kvl_forest_train(&ok, &bf, &f, &err) == KVL_ERR_ARG, "max_features > d");
    kvl_logreg_options bl = {.lambda = NAN};
    CHECK(kvl_logreg_train(&ok, &bl, &m, &err) == KVL_ERR_ARG, "NaN lambda");
    bl = (kvl_logreg_options){.lambda = -1};
    CHECK(kvl_logreg_train(&ok, &bl, &m, &err) == KVL_ERR_ARG, "negative lambda");
    bl = (kvl_logreg_options){.tol = -1e-3};
    CHECK(kvl_logreg_train(&ok, &bl, &m, &err) == KVL_ERR_ARG, "negative tol");
    CHECK(kvl_logreg_train(NULL, &lo, &m, &err) == KVL_ERR_ARG, "logreg NULL dataset");
    kvl_cv_options bc = co;
    bc.k_folds = 1;
    CHECK(kvl_cross_validate(&ok, &bc, &r, &err) == KVL_ERR_ARG, "k_folds 1");
    bc = co;
    bc.kind = (kvl_classifier_kind)7;
    CHECK(kvl_cross_validate(&ok, &bc, &r, &err) == KVL_ERR_ARG, "unknown kind");
    bc = co;
    bc.n_permutations = -2;
    CHECK(kvl_cross_validate(&ok, &bc, &r, &err) == KVL_ERR_ARG, "negative permutations");
    bc = co;
    bc.k_folds = 3; /* two members per class */
    CHECK(kvl_cross_validate(&ok, &bc, &r, &err) == KVL_ERR_ARG, "class smaller than k");
    bc = co;
    bc.logreg.lambda = -5;
    CHECK(kvl_cross_validate(&ok, &bc, &r, &err) == KVL_ERR_ARG && strstr(err.message, "fold 0"),
          "bad classifier options reach the caller: %s", err.message);
    CHECK(kvl_cross_validate(&ok, &co, NULL, &err) == KVL_ERR_ARG, "NULL result");
    CHECK(kvl_cross_validate(&ok, NULL, &r, &err) == KVL_ERR_ARG, "NULL options");
    CHECK(kvl_forest_predict(NULL, x) == -1 && kvl_logreg_predict(NULL, x) == -1,
          "predict on NULL");
    CHECK(kvl_forest_importance(NULL) == NULL && kvl_logreg_coef(NULL) == NULL, "getters on NULL");
    kvl_forest_free(NULL);
    kvl_logreg_free(NULL);
    kvl_cv_result_free(NULL);
    CHECK(strcmp(kvl_classifier_name(KVL_CLF_FOREST), "random_forest") == 0 &&
              strcmp(kvl_classifier_name(KVL_CLF_LOGREG), "logistic_regression") == 0 &&
              strcmp(kvl_classifier_name((kvl_classifier_kind)9), "unknown") == 0,
          "classifier names");
}

/* Wall time of each part with KVT_VERBOSE set (the ASan budget is ~5 s). */
static void lap(const char *what)
{
    static struct timespec last;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (getenv("KVT_VERBOSE") && last.tv_sec)
        printf("time %-24s %.3f s\n", what,
               (double)(now.tv_sec - last.tv_sec) + 1e-9 * (double)(now.tv_nsec - last.tv_nsec));
    last = now;
}

int main(void)
{
    lap("start");
    test_gini();
    test_split_by_hand();
    test_folds();
    test_bad_input();
    const char *path = kvt_source_path("tests/fixtures/stats/classify_reference.json");
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    CHECK(doc != NULL, "cannot read %s: %s", path, je.text);
    if (doc) {
        const json_t *forest = json_object_get(doc, "forest");
        lap("hand-made cases");
        test_tree_vs_sklearn(json_object_get(doc, "tree"));
        test_logreg(json_object_get(doc, "logreg"));
        lap("tree and logreg");
        test_forest_importance(find_case(forest, "informative01"));
        test_forest_threads(find_case(forest, "medium"));
        lap("importance and threads");
        test_forest_cv(forest);
        lap("forest CV");
        test_permutation(forest);
        lap("permutation tests");
        test_train_test(forest);
        lap("train/test");
        json_decref(doc);
    }
    return kvt_finish();
}
