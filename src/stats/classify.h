/* Classifiers for the experiment program (persona and mode prediction from
 * cache features): a random forest (bootstrap samples, feature subsampling,
 * Gini impurity) and L2-regularised multinomial logistic regression, with
 * stratified k-fold cross-validation, confusion matrices, a permutation-test
 * p-value and feature importances.  Everything is seeded (core/rng.h) and
 * gives the same numbers for the same seed whatever the thread count.
 *
 * The logistic regression minimises
 *     sum_i -log softmax(W x_i + b)[y_i] + (lambda / 2) * ||W||_F^2
 * over standardised features (each feature scaled to mean 0, population
 * standard deviation 1 on the training set; constant features set to 0),
 * intercept b unpenalised: the objective of scikit-learn's
 * LogisticRegression(C = 1 / lambda, multi_class="multinomial") on
 * StandardScaler-ed data, whose coefficients the test compares with.
 * Ownership: *_train allocates the model, *_free releases it; result
 * structs own their arrays and are released by kvl_cv_result_free. */
#ifndef KVL_STATS_CLASSIFY_H
#define KVL_STATS_CLASSIFY_H

#include <stdint.h>

#include "kvlab.h"

/* n rows of d features (row-major, borrowed) with labels in [0, n_classes). */
typedef struct kvl_dataset {
    const double *x;
    const int32_t *y;
    int32_t n, d, n_classes;
} kvl_dataset;

typedef struct kvl_forest_options {
    int32_t n_trees;          /* default 100 when 0                          */
    int32_t max_depth;        /* 0 = unlimited                               */
    int32_t min_samples_leaf; /* default 1 when 0                            */
    int32_t max_features;     /* features tried per split; 0 = round(sqrt(d)) */
    uint64_t seed;
    int32_t n_threads;        /* 0 = OpenMP default; results do not depend on it */
} kvl_forest_options;

typedef struct kvl_forest kvl_forest;

kvl_status kvl_forest_train(const kvl_dataset *train,
                            const kvl_forest_options *options,
                            kvl_forest **out, kvl_error *err);
/* Majority vote of the trees' leaf class distributions (mean of the
 * per-tree class probabilities; ties to the lowest class). */
int32_t kvl_forest_predict(const kvl_forest *f, const double *row);
/* Mean decrease in Gini impurity per feature, weighted by samples reaching
 * the node, averaged over trees and normalised to sum 1 (d values,
 * borrowed). */
const double *kvl_forest_importance(const kvl_forest *f);
void kvl_forest_free(kvl_forest *f);

typedef struct kvl_logreg_options {
    double lambda;    /* L2 strength; default 1.0 when 0 (C = 1)          */
    int32_t max_iter; /* default 500 when 0                               */
    double tol;       /* stop at max|gradient| <= tol * n; default 1e-8 */
} kvl_logreg_options;

typedef struct kvl_logreg kvl_logreg;

kvl_status kvl_logreg_train(const kvl_dataset *train,
                            const kvl_logreg_options *options,
                            kvl_logreg **out, kvl_error *err);
int32_t kvl_logreg_predict(const kvl_logreg *m, const double *row);
/* Class probabilities of one row into probs[n_classes]. */
void kvl_logreg_proba(const kvl_logreg *m, const double *row, double *probs);
/* Coefficients on the standardised features, [n_classes][d], and the
 * intercepts [n_classes] (borrowed). */
const double *kvl_logreg_coef(const kvl_logreg *m);
const double *kvl_logreg_intercept(const kvl_logreg *m);
void kvl_logreg_free(kvl_logreg *m);

typedef enum kvl_classifier_kind {
    KVL_CLF_FOREST = 0,
    KVL_CLF_LOGREG = 1
} kvl_classifier_kind;

const char *kvl_classifier_name(kvl_classifier_kind kind);

typedef struct kvl_cv_options {
    kvl_classifier_kind kind;
    int32_t k_folds;        /* default 5 when 0                            */
    int32_t n_permutations; /* label permutations for the p-value; 0 = none */
    uint64_t seed;
    kvl_forest_options forest;
    kvl_logreg_options logreg;
    int32_t n_threads;      /* 0 = OpenMP default                           */
} kvl_cv_options;

typedef struct kvl_cv_result {
    int32_t n_classes, d, k_folds;
    double accuracy;    /* pooled over all held-out predictions            */
    double chance;      /* accuracy of always predicting the most frequent
                           class                                           */
    double *fold_accuracy; /* [k_folds]                                    */
    int64_t *confusion; /* [n_classes][n_classes], row = true, col = pred  */
    double *importance; /* [d]: forest: mean Gini importance over folds;
                           logreg: mean over folds and classes of |coef|,
                           normalised to sum 1                             */
    double perm_p;      /* (1 + #{perm accuracy >= accuracy}) /
                           (1 + n_permutations); NaN when none were run    */
    int32_t n_permutations;
} kvl_cv_result;

/* Stratified fold assignment: fold_of[i] in [0, k) with every class spread
 * as evenly as possible over the folds, order shuffled by the seed.
 * KVL_ERR_ARG when a class has fewer than k members. */
kvl_status kvl_stratified_folds(const int32_t *y, int32_t n, int32_t n_classes,
                                int32_t k, uint64_t seed, int32_t *fold_of,
                                kvl_error *err);

/* Stratified k-fold cross-validation (and the permutation test when asked:
 * the same folds, labels permuted within the whole set). */
kvl_status kvl_cross_validate(const kvl_dataset *data,
                              const kvl_cv_options *options,
                              kvl_cv_result *out, kvl_error *err);

/* Train on one set, test on another with the same classes and features
 * (consistency across prompt sets; cross-model transfer).  k_folds in the
 * result is 1 and fold_accuracy has one entry. */
kvl_status kvl_train_test(const kvl_dataset *train, const kvl_dataset *test,
                          const kvl_cv_options *options, kvl_cv_result *out,
                          kvl_error *err);

void kvl_cv_result_free(kvl_cv_result *r);

#endif
