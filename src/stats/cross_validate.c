/* Evaluation of the classifiers: stratified folds, k-fold cross-validation,
 * train/test, confusion matrices, importances and a label-permutation test.
 *
 * Seeds: the folds come from kvl_rng_derive(seed, 0) and permutation p
 * shuffles the labels with kvl_rng_derive(seed, 1 + p); the forest of fold f
 * is seeded with kvl_rng_derive(forest.seed, f) in every run, permuted or
 * not, so a permuted run differs from the real one only by its labels.
 * Threads: options->n_threads drives the forest's trees in the real run
 * (options->forest.n_threads is not used) and the permutations, which run
 * concurrently with one thread each; every number is the same whatever the
 * thread count. */
#include "stats/forest_internal.h"

#include "core/error.h"
#include "core/rng.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

const char *kvl_classifier_name(kvl_classifier_kind kind)
{
    switch (kind) {
    case KVL_CLF_FOREST:
        return "random_forest";
    case KVL_CLF_LOGREG:
        return "logistic_regression";
    }
    return "unknown";
}

void kvl_cv_result_free(kvl_cv_result *r)
{
    if (!r)
        return;
    free(r->fold_accuracy);
    free(r->confusion);
    free(r->importance);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------ folds */

kvl_status kvl_stratified_folds(const int32_t *y, int32_t n, int32_t n_classes,
                                int32_t k, uint64_t seed, int32_t *fold_of,
                                kvl_error *err)
{
    if (!y || !fold_of)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_stratified_folds: labels and fold_of are required");
    if (n <= 0 || n_classes <= 0 || k < 2)
        return kvl_fail(err, KVL_ERR_ARG,
                        "stratified folds: need n > 0, n_classes > 0, k >= 2 (n = %d, classes = %d, k = %d)",
                        (int)n, (int)n_classes, (int)k);
    int32_t *count = calloc((size_t)n_classes, sizeof *count);
    int32_t *members = malloc((size_t)n * sizeof *members);
    if (!count || !members) {
        free(count);
        free(members);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for %d fold assignments", (int)n);
    }
    kvl_status st = KVL_OK;
    for (int32_t i = 0; i < n && st == KVL_OK; i++) {
        if (y[i] < 0 || y[i] >= n_classes)
            st = kvl_fail(err, KVL_ERR_ARG, "stratified folds: label %d of row %d is outside [0, %d)",
                          (int)y[i], (int)i, (int)n_classes);
        else
            count[y[i]]++;
    }
    for (int32_t c = 0; c < n_classes && st == KVL_OK; c++)
        if (count[c] < k)
            st = kvl_fail(err, KVL_ERR_ARG,
                          "stratified folds: class %d has %d members, fewer than k = %d folds",
                          (int)c, (int)count[c], (int)k);
    if (st == KVL_OK) {
        /* Each class, shuffled, is dealt round-robin; the deal continues
         * where the previous class stopped so fold sizes differ by <= 1. */
        kvl_rng rng;
        kvl_rng_seed(&rng, seed);
        int32_t next = 0;
        for (int32_t c = 0; c < n_classes; c++) {
            int32_t m = 0;
            for (int32_t i = 0; i < n; i++)
                if (y[i] == c)
                    members[m++] = i;
            kvl_rng_shuffle_i32(&rng, members, m);
            for (int32_t j = 0; j < m; j++)
                fold_of[members[j]] = (next + j) % k;
            next = (next + m) % k;
        }
    }
    free(count);
    free(members);
    return st;
}

/* ------------------------------------------------------------ evaluation */

/* What one evaluation accumulates; confusion and importance may be NULL
 * (permutation runs need only the count of correct predictions). */
typedef struct tally {
    int64_t correct;
    int64_t *confusion;  /* [C][C] */
    double *importance;  /* [d] sum over models */
} tally;

/* Trains the chosen classifier on `train`, predicts test rows, adds to t.
 * `index` picks the forest seed; the forest uses `threads` threads. */
static kvl_status fit_predict(const kvl_dataset *train, const kvl_dataset *test,
                              const kvl_cv_options *o, uint64_t index, int32_t threads,
                              int64_t *correct, tally *t, kvl_error *err)
{
    const size_t d = (size_t)train->d, nc = (size_t)train->n_classes;
    kvl_forest *forest = NULL;
    kvl_logreg *logreg = NULL;
    kvl_status st;
    if (o->kind == KVL_CLF_FOREST) {
        kvl_forest_options fo = o->forest;
        fo.seed = kvl_rng_derive(o->forest.seed, index);
        fo.n_threads = threads;
        st = kvl_forest_train(train, &fo, &forest, err);
    } else {
        st = kvl_logreg_train(train, &o->logreg, &logreg, err);
    }
    if (st != KVL_OK)
        return st;
    *correct = 0;
    for (int32_t i = 0; i < test->n && st == KVL_OK; i++) {
        const double *row = test->x + (size_t)i * d;
        const int32_t pred = forest ? kvl_forest_predict(forest, row) : kvl_logreg_predict(logreg, row);
        if (pred < 0) { /* only an allocation for > 32 classes can fail */
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory predicting row %d", (int)i);
            break;
        }
        *correct += pred == test->y[i];
        if (t && t->confusion)
            t->confusion[(size_t)test->y[i] * nc + (size_t)pred]++;
    }
    if (st == KVL_OK && t && t->importance) {
        if (forest) {
            const double *imp = kvl_forest_importance(forest);
            for (size_t j = 0; j < d; j++)
                t->importance[j] += imp[j];
        } else {
            const double *w = kvl_logreg_coef(logreg);
            for (size_t c = 0; c < nc; c++)
                for (size_t j = 0; j < d; j++)
                    t->importance[j] += fabs(w[c * d + j]) / (double)nc;
        }
    }
    if (t)
        t->correct += *correct;
    kvl_forest_free(forest);
    kvl_logreg_free(logreg);
    return st;
}

/* Row buffers for the training and held-out part of one fold. */
typedef struct split_sets {
    double *x_train, *x_test;
    int32_t *y_train, *y_test;
} split_sets;

static void split_sets_free(split_sets *s)
{
    free(s->x_train);
    free(s->x_test);
    free(s->y_train);
    free(s->y_test);
}

static int split_sets_alloc(split_sets *s, int32_t n, int32_t d)
{
    const size_t cells = (size_t)n * (size_t)d;
    s->x_train = malloc(cells * sizeof *s->x_train);
    s->x_test = malloc(cells * sizeof *s->x_test);
    s->y_train = malloc((size_t)n * sizeof *s->y_train);
    s->y_test = malloc((size_t)n * sizeof *s->y_test);
    if (s->x_train && s->x_test && s->y_train && s->y_test)
        return 1;
    split_sets_free(s);
    return 0;
}

/* Copies the rows of fold f into test and the others into train. */
static void make_fold(const kvl_dataset *data, const int32_t *y, const int32_t *fold_of,
                      int32_t f, split_sets *s, kvl_dataset *train, kvl_dataset *test)
{
    const size_t d = (size_t)data->d;
    *train = (kvl_dataset){s->x_train, s->y_train, 0, data->d, data->n_classes};
    *test = (kvl_dataset){s->x_test, s->y_test, 0, data->d, data->n_classes};
    for (int32_t i = 0; i < data->n; i++) {
        const int is_test = fold_of[i] == f;
        kvl_dataset *to = is_test ? test : train;
        double *xs = is_test ? s->x_test : s->x_train;
        int32_t *ys = is_test ? s->y_test : s->y_train;
        memcpy(xs + (size_t)to->n * d, data->x + (size_t)i * d, d * sizeof *xs);
        ys[to->n++] = y[i];
    }
}

/* k-fold cross-validation of labels y (the data's or permuted ones). */
static kvl_status run_cv(const kvl_dataset *data, const int32_t *y, const int32_t *fold_of,
                         int32_t k, const kvl_cv_options *o, int32_t threads, tally *t,
                         double *fold_accuracy, kvl_error *err)
{
    split_sets s;
    if (!split_sets_alloc(&s, data->n, data->d))
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for cross-validation folds");
    kvl_status st = KVL_OK;
    for (int32_t f = 0; f < k && st == KVL_OK; f++) {
        kvl_dataset train, test;
        make_fold(data, y, fold_of, f, &s, &train, &test);
        int64_t correct = 0;
        st = fit_predict(&train, &test, o, (uint64_t)f, threads, &correct, t, err);
        if (st != KVL_OK)
            kvl_error_prefix(err, st, "fold %d of %d: ", (int)f, (int)k);
        else if (fold_accuracy)
            fold_accuracy[f] = (double)correct / test.n;
    }
    split_sets_free(&s);
    return st;
}

/* ------------------------------------------------------------- permutations */

/* One permutation run: the CV (or train/test) accuracy, as a count of
 * correct predictions, of the labels shuffled with kvl_rng_derive(seed, 1+p).
 * With fold_of NULL it is a train/test run on `test`. */
typedef struct perm_job {
    const kvl_dataset *data, *test;
    const int32_t *fold_of;
    int32_t k;
    const kvl_cv_options *o;
} perm_job;

static kvl_status run_permutation(const perm_job *job, int32_t p, int64_t *correct,
                                  kvl_error *err)
{
    const kvl_dataset *data = job->data;
    int32_t *y = malloc((size_t)data->n * sizeof *y);
    if (!y)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for permuted labels");
    memcpy(y, data->y, (size_t)data->n * sizeof *y);
    kvl_rng rng;
    kvl_rng_seed(&rng, kvl_rng_derive(job->o->seed, 1 + (uint64_t)p));
    kvl_rng_shuffle_i32(&rng, y, data->n);
    tally t = {0, NULL, NULL};
    kvl_status st;
    if (job->fold_of) {
        st = run_cv(data, y, job->fold_of, job->k, job->o, 1, &t, NULL, err);
    } else {
        const kvl_dataset train = {data->x, y, data->n, data->d, data->n_classes};
        st = fit_predict(&train, job->test, job->o, 0, 1, &t.correct, NULL, err);
    }
    free(y);
    *correct = t.correct;
    return st;
}

/* Runs the permutations concurrently; *n_ge counts those whose correct
 * count reaches `observed`.  The first failure's message lands in err. */
static kvl_status run_permutations(const perm_job *job, int32_t n_perm, int32_t threads,
                                   int64_t observed, int32_t *n_ge, kvl_error *err)
{
    int32_t ge = 0, failed = 0;
    kvl_status first = KVL_OK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : ge)
    for (int32_t p = 0; p < n_perm; p++) {
        kvl_error local;
        int64_t correct = 0;
        const kvl_status st = run_permutation(job, p, &correct, &local);
        if (st != KVL_OK) {
#pragma omp critical(kvl_cv_perm_error)
            {
                if (!failed) {
                    failed = 1;
                    first = st;
                    if (err)
                        *err = local;
                }
            }
        }
        ge += correct >= observed;
    }
    *n_ge = ge;
    return first;
}

/* -------------------------------------------------------------- the calls */

static kvl_status check_cv_options(const kvl_cv_options *o, int32_t *k, kvl_error *err)
{
    if (o->kind != KVL_CLF_FOREST && o->kind != KVL_CLF_LOGREG)
        return kvl_fail(err, KVL_ERR_ARG, "cross-validation: unknown classifier kind %d",
                        (int)o->kind);
    if (o->k_folds < 0 || o->k_folds == 1)
        return kvl_fail(err, KVL_ERR_ARG, "cross-validation: k_folds must be 0 (5) or >= 2, got %d",
                        (int)o->k_folds);
    if (o->n_permutations < 0 || o->n_threads < 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "cross-validation: n_permutations and n_threads must be >= 0");
    *k = o->k_folds ? o->k_folds : 5;
    return KVL_OK;
}

/* Allocates the result's arrays and fills its sizes. */
static kvl_status result_alloc(kvl_cv_result *r, const kvl_dataset *data, int32_t k,
                               int32_t n_perm, kvl_error *err)
{
    memset(r, 0, sizeof *r);
    r->n_classes = data->n_classes;
    r->d = data->d;
    r->k_folds = k;
    r->n_permutations = n_perm;
    r->perm_p = NAN;
    r->fold_accuracy = calloc((size_t)k, sizeof *r->fold_accuracy);
    r->confusion = calloc((size_t)data->n_classes * (size_t)data->n_classes, sizeof *r->confusion);
    r->importance = calloc((size_t)data->d, sizeof *r->importance);
    if (r->fold_accuracy && r->confusion && r->importance)
        return KVL_OK;
    kvl_cv_result_free(r);
    return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a cross-validation result");
}

/* Frequency of the most frequent class of a labelled set. */
static double majority_rate(const kvl_dataset *data)
{
    int32_t *count = calloc((size_t)data->n_classes, sizeof *count);
    if (!count)
        return NAN;
    int32_t best = 0;
    for (int32_t i = 0; i < data->n; i++)
        if (++count[data->y[i]] > best)
            best = count[data->y[i]];
    free(count);
    return (double)best / data->n;
}

/* Forest: mean of the per-model importances (each sums to 1).  Logistic
 * regression: mean |coef|, normalised to sum 1 (left 0 if all are 0). */
static void finish_importance(kvl_cv_result *r, kvl_classifier_kind kind, int32_t n_models)
{
    double sum = 0.0;
    for (int32_t j = 0; j < r->d; j++)
        sum += r->importance[j];
    const double scale = kind == KVL_CLF_FOREST ? 1.0 / n_models : (sum > 0.0 ? 1.0 / sum : 0.0);
    for (int32_t j = 0; j < r->d; j++)
        r->importance[j] *= scale;
}

static int32_t thread_count(const kvl_cv_options *o)
{
    return o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
}

kvl_status kvl_cross_validate(const kvl_dataset *data,
                              const kvl_cv_options *options,
                              kvl_cv_result *out, kvl_error *err)
{
    if (!options || !out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_cross_validate: options and out are required");
    memset(out, 0, sizeof *out);
    int32_t k = 0;
    kvl_status st = kvl_dataset_check(data, "cross-validation set", err);
    if (st == KVL_OK)
        st = check_cv_options(options, &k, err);
    if (st != KVL_OK)
        return st;
    int32_t *fold_of = malloc((size_t)data->n * sizeof *fold_of);
    if (!fold_of)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for fold assignments");
    st = kvl_stratified_folds(data->y, data->n, data->n_classes, k,
                              kvl_rng_derive(options->seed, 0), fold_of, err);
    if (st == KVL_OK)
        st = result_alloc(out, data, k, options->n_permutations, err);
    tally t = {0, out->confusion, out->importance};
    const int32_t threads = thread_count(options);
    if (st == KVL_OK)
        st = run_cv(data, data->y, fold_of, k, options, threads, &t, out->fold_accuracy, err);
    if (st == KVL_OK && options->n_permutations > 0) {
        const perm_job job = {data, NULL, fold_of, k, options};
        int32_t ge = 0;
        st = run_permutations(&job, options->n_permutations, threads, t.correct, &ge, err);
        out->perm_p = (1.0 + ge) / (1.0 + options->n_permutations);
    }
    free(fold_of);
    if (st != KVL_OK) {
        kvl_cv_result_free(out);
        return st;
    }
    out->accuracy = (double)t.correct / data->n;
    out->chance = majority_rate(data);
    finish_importance(out, options->kind, k);
    return KVL_OK;
}

kvl_status kvl_train_test(const kvl_dataset *train, const kvl_dataset *test,
                          const kvl_cv_options *options, kvl_cv_result *out,
                          kvl_error *err)
{
    if (!options || !out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_train_test: options and out are required");
    memset(out, 0, sizeof *out);
    int32_t k = 0;
    kvl_status st = kvl_dataset_check(train, "training set", err);
    if (st == KVL_OK)
        st = kvl_dataset_check(test, "test set", err);
    if (st == KVL_OK && (train->d != test->d || train->n_classes != test->n_classes))
        st = kvl_fail(err, KVL_ERR_ARG,
                      "train/test: the sets differ (d = %d vs %d, classes = %d vs %d)",
                      (int)train->d, (int)test->d, (int)train->n_classes, (int)test->n_classes);
    if (st == KVL_OK)
        st = check_cv_options(options, &k, err);
    if (st == KVL_OK)
        st = result_alloc(out, train, 1, options->n_permutations, err);
    if (st != KVL_OK)
        return st;
    tally t = {0, out->confusion, out->importance};
    int64_t correct = 0;
    const int32_t threads = thread_count(options);
    st = fit_predict(train, test, options, 0, threads, &correct, &t, err);
    if (st == KVL_OK && options->n_permutations > 0) {
        const perm_job job = {train, test, NULL, 1, options};
        int32_t ge = 0;
        st = run_permutations(&job, options->n_permutations, threads, correct, &ge, err);
        out->perm_p = (1.0 + ge) / (1.0 + options->n_permutations);
    }
    if (st != KVL_OK) {
        kvl_cv_result_free(out);
        return st;
    }
    out->accuracy = (double)correct / test->n;
    out->fold_accuracy[0] = out->accuracy;
    out->chance = majority_rate(test);
    finish_importance(out, options->kind, 1);
    return KVL_OK;
}
