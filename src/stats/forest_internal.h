/* Internals of the random forest (stats/forest.c) that the tests reach:
 * the CART split search on its own, a forest without bootstrap (so that a
 * one-tree forest is the deterministic CART tree of scikit-learn's
 * DecisionTreeClassifier), and read access to tree sizes and class
 * probabilities.  Shared with stats/cross_validate.c for input checks. */
#ifndef KVL_STATS_FOREST_INTERNAL_H
#define KVL_STATS_FOREST_INTERNAL_H

#include "stats/classify.h"

/* The best split of a node.  Rows with x[feature] <= threshold go left.
 * decrease is the impurity decrease in sample units,
 *     N_t * gini_t - N_left * gini_left - N_right * gini_right,
 * feature is -1 when no split leaves min_samples_leaf rows on both sides. */
typedef struct kvl_tree_split {
    int32_t feature;
    double threshold;
    double decrease;
    int32_t n_left;
} kvl_tree_split;

/* Gini impurity 1 - sum_c p_c^2 of class counts (0 for an empty node). */
double kvl_gini_impurity(const double *counts, int32_t n_classes);

/* Best split of the rows `rows[0..n_rows)` (indices into data, repeats
 * allowed: a bootstrap sample) over the candidate features, trying every
 * midpoint between distinct consecutive values.  Ties in decrease go to the
 * candidate listed first, then to the lower threshold. */
kvl_status kvl_forest_best_split(const kvl_dataset *data, const int32_t *rows,
                                 int32_t n_rows, const int32_t *features,
                                 int32_t n_features, int32_t min_samples_leaf,
                                 kvl_tree_split *out, kvl_error *err);

/* kvl_forest_train with bootstrap switched off when `bootstrap` is 0: every
 * tree sees every row once. */
kvl_status kvl_forest_train_ex(const kvl_dataset *train,
                               const kvl_forest_options *options, int bootstrap,
                               kvl_forest **out, kvl_error *err);

int32_t kvl_forest_n_trees(const kvl_forest *f);
/* Node count of tree t (internal nodes and leaves), -1 if out of range. */
int32_t kvl_forest_tree_nodes(const kvl_forest *f, int32_t t);
/* Mean over trees of the leaf class distributions, probs[n_classes]. */
void kvl_forest_proba(const kvl_forest *f, const double *row, double *probs);

/* Checks a dataset for the classifiers: non-NULL arrays, n > 0, d > 0,
 * n_classes >= 2, labels in range, finite features.  `what` names it in the
 * message ("training set"). */
kvl_status kvl_dataset_check(const kvl_dataset *data, const char *what,
                             kvl_error *err);

#endif
