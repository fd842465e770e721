/* Random forest of CART trees (Breiman 2001) as scikit-learn builds them:
 * each tree grows on a bootstrap sample (n draws with replacement; repeats
 * count as samples for impurity and min_samples_leaf), each split tries
 * max_features features in a random order (features constant in the node
 * are skipped and do not count towards max_features; sklearn counts them
 * unless every drawn one is constant) and, per feature, every midpoint
 * between distinct consecutive values, keeping the largest Gini decrease.
 * Trees grow until leaves are pure, max_depth or min_samples_leaf.  Leaves
 * store class fractions; the forest averages them.  Tree t draws from
 * kvl_rng_derive(seed, t), so the trees and every result are the same
 * whatever the number of OpenMP threads. */
#include "stats/forest_internal.h"

#include "core/error.h"
#include "core/rng.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct tree {
    int32_t n_nodes, cap;
    int32_t *feature;  /* [cap], -1 for a leaf                      */
    double *threshold; /* [cap], x <= threshold goes left             */
    int32_t *left, *right;
    double *value;     /* [cap][n_classes] class fractions of the node */
} tree;

struct kvl_forest {
    int32_t n_trees, d, n_classes;
    tree *trees;
    double *importance; /* [d], sums to 1 (or all 0 without any split) */
};

/* A (feature value, label) pair sorted per feature at each node. */
typedef struct value_label {
    double v;
    int32_t y;
} value_label;

/* Scratch of the split search, sized for n rows and C classes. */
typedef struct split_scratch {
    value_label *pairs;             /* [n] */
    int64_t *total, *left, *right;  /* [C] class counts */
} split_scratch;

/* ---------------------------------------------------------------- checks */

kvl_status kvl_dataset_check(const kvl_dataset *data, const char *what,
                             kvl_error *err)
{
    if (!data)
        return kvl_fail(err, KVL_ERR_ARG, "%s: the dataset is NULL", what);
    if (!data->x || !data->y)
        return kvl_fail(err, KVL_ERR_ARG, "%s: features and labels are required", what);
    if (data->n <= 0 || data->d <= 0)
        return kvl_fail(err, KVL_ERR_ARG, "%s: needs n > 0 rows and d > 0 features, got n = %d, d = %d",
                        what, (int)data->n, (int)data->d);
    if (data->n_classes < 2)
        return kvl_fail(err, KVL_ERR_ARG, "%s: needs at least 2 classes, got %d", what,
                        (int)data->n_classes);
    for (int32_t i = 0; i < data->n; i++)
        if (data->y[i] < 0 || data->y[i] >= data->n_classes)
            return kvl_fail(err, KVL_ERR_ARG, "%s: label %d of row %d is outside [0, %d)", what,
                            (int)data->y[i], (int)i, (int)data->n_classes);
    const size_t total = (size_t)data->n * (size_t)data->d;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(data->x[i]))
            return kvl_fail(err, KVL_ERR_ARG, "%s: feature %d of row %d is not finite (%g)", what,
                            (int)(i % (size_t)data->d), (int)(i / (size_t)data->d), data->x[i]);
    return KVL_OK;
}

static kvl_status check_options(const kvl_forest_options *o, int32_t d, kvl_error *err)
{
    if (o->n_trees < 0 || o->max_depth < 0 || o->min_samples_leaf < 0 || o->n_threads < 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "forest: n_trees, max_depth, min_samples_leaf and n_threads must be >= 0");
    if (o->max_features < 0 || o->max_features > d)
        return kvl_fail(err, KVL_ERR_ARG, "forest: max_features must be in [0, d = %d], got %d",
                        (int)d, (int)o->max_features);
    return KVL_OK;
}

/* ------------------------------------------------------------ split search */

double kvl_gini_impurity(const double *counts, int32_t n_classes)
{
    double total = 0.0, sumsq = 0.0;
    for (int32_t c = 0; c < n_classes; c++) {
        total += counts[c];
        sumsq += counts[c] * counts[c];
    }
    return total > 0.0 ? 1.0 - sumsq / (total * total) : 0.0;
}

static int cmp_value(const void *a, const void *b)
{
    const double va = ((const value_label *)a)->v, vb = ((const value_label *)b)->v;
    return (va > vb) - (va < vb);
}

/* A threshold strictly between a < b; the midpoint can round up to b. */
static double midpoint(double a, double b)
{
    const double t = a / 2.0 + b / 2.0;
    return (t >= b || !isfinite(t)) ? a : t;
}

/* Scans one feature already sorted into s->pairs[0..n).  Maximises the
 * proxy sum_c L_c^2 / N_L + sum_c R_c^2 / N_R (equivalent to minimising the
 * weighted child Gini); the squared sums are integers updated in O(1) per
 * row, so equal partitions give bit-identical proxies across features. */
static void scan_feature(split_scratch *s, int32_t n, int32_t n_classes,
                         const int64_t *total, int64_t sumsq_total, int32_t min_leaf,
                         int32_t feature, double *best_proxy, kvl_tree_split *best)
{
    memset(s->left, 0, (size_t)n_classes * sizeof *s->left);
    memcpy(s->right, total, (size_t)n_classes * sizeof *s->right);
    int64_t sq_left = 0, sq_right = sumsq_total;
    for (int32_t i = 0; i + 1 < n; i++) {
        const int32_t c = s->pairs[i].y;
        sq_left += 2 * s->left[c] + 1;
        sq_right -= 2 * s->right[c] - 1;
        s->left[c]++;
        s->right[c]--;
        const int32_t n_left = i + 1, n_right = n - n_left;
        if (n_left < min_leaf)
            continue;
        if (n_right < min_leaf)
            break;
        if (!(s->pairs[i].v < s->pairs[i + 1].v))
            continue;
        const double proxy = (double)sq_left / n_left + (double)sq_right / n_right;
        if (proxy > *best_proxy) {
            *best_proxy = proxy;
            best->feature = feature;
            best->threshold = midpoint(s->pairs[i].v, s->pairs[i + 1].v);
            best->n_left = n_left;
        }
    }
}

/* The split search of one node: tries candidate features in order until
 * `max_tries` non-constant ones were scanned. */
static void find_split(const kvl_dataset *data, const int32_t *rows, int32_t n_rows,
                       const int32_t *features, int32_t n_features, int32_t max_tries,
                       int32_t min_leaf, split_scratch *s, kvl_tree_split *out)
{
    const int32_t nc = data->n_classes;
    const size_t d = (size_t)data->d;
    memset(s->total, 0, (size_t)nc * sizeof *s->total);
    for (int32_t i = 0; i < n_rows; i++)
        s->total[data->y[rows[i]]]++;
    int64_t sumsq = 0;
    for (int32_t c = 0; c < nc; c++)
        sumsq += s->total[c] * s->total[c];
    out->feature = -1;
    out->threshold = 0.0;
    out->decrease = 0.0;
    out->n_left = 0;
    double best_proxy = -INFINITY;
    int32_t tried = 0;
    for (int32_t j = 0; j < n_features && tried < max_tries; j++) {
        const int32_t f = features[j];
        for (int32_t i = 0; i < n_rows; i++) {
            s->pairs[i].v = data->x[(size_t)rows[i] * d + (size_t)f];
            s->pairs[i].y = data->y[rows[i]];
        }
        qsort(s->pairs, (size_t)n_rows, sizeof *s->pairs, cmp_value);
        if (!(s->pairs[0].v < s->pairs[n_rows - 1].v))
            continue; /* constant in this node: does not count as a try */
        tried++;
        scan_feature(s, n_rows, nc, s->total, sumsq, min_leaf, f, &best_proxy, out);
    }
    /* N_t gini_t - N_L gini_L - N_R gini_R = proxy - sum_c T_c^2 / N_t. */
    if (out->feature >= 0)
        out->decrease = best_proxy - (double)sumsq / n_rows;
}

static void scratch_free(split_scratch *s)
{
    free(s->pairs);
    free(s->total);
    free(s->left);
    free(s->right);
}

static int scratch_alloc(split_scratch *s, int32_t n, int32_t n_classes)
{
    s->pairs = malloc((size_t)n * sizeof *s->pairs);
    s->total = malloc((size_t)n_classes * sizeof *s->total);
    s->left = malloc((size_t)n_classes * sizeof *s->left);
    s->right = malloc((size_t)n_classes * sizeof *s->right);
    if (s->pairs && s->total && s->left && s->right)
        return 1;
    scratch_free(s);
    return 0;
}

kvl_status kvl_forest_best_split(const kvl_dataset *data, const int32_t *rows,
                                 int32_t n_rows, const int32_t *features,
                                 int32_t n_features, int32_t min_samples_leaf,
                                 kvl_tree_split *out, kvl_error *err)
{
    if (!out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_forest_best_split: out is NULL");
    kvl_status st = kvl_dataset_check(data, "split search", err);
    if (st != KVL_OK)
        return st;
    if (!rows || !features || n_rows <= 0 || n_features <= 0 || min_samples_leaf < 1)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_forest_best_split: needs rows, features and min_samples_leaf >= 1");
    for (int32_t i = 0; i < n_rows; i++)
        if (rows[i] < 0 || rows[i] >= data->n)
            return kvl_fail(err, KVL_ERR_ARG, "split search: row index %d out of range", (int)rows[i]);
    for (int32_t j = 0; j < n_features; j++)
        if (features[j] < 0 || features[j] >= data->d)
            return kvl_fail(err, KVL_ERR_ARG, "split search: feature %d out of range",
                            (int)features[j]);
    split_scratch s;
    if (!scratch_alloc(&s, n_rows, data->n_classes))
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a split search");
    find_split(data, rows, n_rows, features, n_features, n_features, min_samples_leaf, &s, out);
    scratch_free(&s);
    return KVL_OK;
}

/* ------------------------------------------------------------ tree growth */

static void tree_free(tree *t)
{
    free(t->feature);
    free(t->threshold);
    free(t->left);
    free(t->right);
    free(t->value);
    memset(t, 0, sizeof *t);
}

/* Appends a node (a leaf until split); returns its index or -1 (memory). */
static int32_t tree_add_node(tree *t, int32_t n_classes)
{
    if (t->n_nodes == t->cap) {
        const int32_t cap = t->cap ? 2 * t->cap : 64;
        int32_t *feature = realloc(t->feature, (size_t)cap * sizeof *feature);
        if (feature)
            t->feature = feature;
        double *threshold = realloc(t->threshold, (size_t)cap * sizeof *threshold);
        if (threshold)
            t->threshold = threshold;
        int32_t *left = realloc(t->left, (size_t)cap * sizeof *left);
        if (left)
            t->left = left;
        int32_t *right = realloc(t->right, (size_t)cap * sizeof *right);
        if (right)
            t->right = right;
        double *value = realloc(t->value, (size_t)cap * (size_t)n_classes * sizeof *value);
        if (value)
            t->value = value;
        if (!feature || !threshold || !left || !right || !value)
            return -1;
        t->cap = cap;
    }
    const int32_t id = t->n_nodes++;
    t->feature[id] = -1;
    t->threshold[id] = 0.0;
    t->left[id] = t->right[id] = -1;
    return id;
}

/* A node waiting to be grown: rows[start, end) of the builder. */
typedef struct pending {
    int32_t start, end, depth, node;
} pending;

typedef struct builder {
    const kvl_dataset *data;
    int32_t max_depth, min_leaf, max_features;
    kvl_rng rng;
    int32_t *rows;     /* [n_rows], partitioned in place node by node */
    int32_t *features; /* [d], reshuffled at every node               */
    pending *stack;    /* [n_rows + 1]                                */
    split_scratch scratch;
    double *importance; /* [d] impurity decreases of this tree        */
} builder;

/* Stores the class fractions of rows[start, end) in the node; returns 1 when
 * the node is pure. */
static int set_node_value(builder *b, tree *t, const pending *p)
{
    const int32_t nc = b->data->n_classes;
    double *v = t->value + (size_t)p->node * (size_t)nc;
    memset(v, 0, (size_t)nc * sizeof *v);
    for (int32_t i = p->start; i < p->end; i++)
        v[b->data->y[b->rows[i]]] += 1.0;
    int32_t non_zero = 0;
    for (int32_t c = 0; c < nc; c++) {
        non_zero += v[c] > 0.0;
        v[c] /= (double)(p->end - p->start);
    }
    return non_zero <= 1;
}

/* Moves rows going left (x <= threshold) to the front of [start, end). */
static int32_t partition_rows(builder *b, const pending *p, int32_t feature, double threshold)
{
    const size_t d = (size_t)b->data->d;
    int32_t lo = p->start, hi = p->end - 1;
    while (lo <= hi) {
        if (b->data->x[(size_t)b->rows[lo] * d + (size_t)feature] <= threshold) {
            lo++;
        } else {
            const int32_t tmp = b->rows[lo];
            b->rows[lo] = b->rows[hi];
            b->rows[hi--] = tmp;
        }
    }
    return lo;
}

/* Splits one pending node if it can be split: pushes its two children. */
static kvl_status grow_node(builder *b, tree *t, const pending *p, int32_t *top)
{
    const int32_t n = p->end - p->start;
    const int pure = set_node_value(b, t, p);
    if (pure || n < 2 * b->min_leaf || (b->max_depth > 0 && p->depth >= b->max_depth))
        return KVL_OK;
    kvl_rng_shuffle_i32(&b->rng, b->features, b->data->d);
    kvl_tree_split sp;
    find_split(b->data, b->rows + p->start, n, b->features, b->data->d, b->max_features,
               b->min_leaf, &b->scratch, &sp);
    if (sp.feature < 0)
        return KVL_OK;
    const int32_t mid = partition_rows(b, p, sp.feature, sp.threshold);
    const int32_t l = tree_add_node(t, b->data->n_classes);
    const int32_t r = l < 0 ? -1 : tree_add_node(t, b->data->n_classes);
    if (r < 0)
        return KVL_ERR_NOMEM;
    t->feature[p->node] = sp.feature;
    t->threshold[p->node] = sp.threshold;
    t->left[p->node] = l;
    t->right[p->node] = r;
    b->importance[sp.feature] += sp.decrease;
    b->stack[(*top)++] = (pending){mid, p->end, p->depth + 1, r};
    b->stack[(*top)++] = (pending){p->start, mid, p->depth + 1, l};
    return KVL_OK;
}

/* Grows the tree depth first.  Every pending node holds >= 1 row and the
 * row ranges on the stack are disjoint, so n_rows + 1 entries suffice. */
static kvl_status grow_tree(builder *b, tree *t, int32_t n_rows)
{
    if (tree_add_node(t, b->data->n_classes) < 0)
        return KVL_ERR_NOMEM;
    int32_t top = 0;
    b->stack[top++] = (pending){0, n_rows, 0, 0};
    while (top > 0) {
        const pending p = b->stack[--top];
        const kvl_status st = grow_node(b, t, &p, &top);
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

static void builder_free(builder *b)
{
    free(b->rows);
    free(b->features);
    free(b->stack);
    scratch_free(&b->scratch);
}

/* Trains tree `index` into t and its normalised importances into imp[d]
 * (all 0 for a single-leaf tree).  Called concurrently: touches only its
 * own tree, importance row and scratch. */
static kvl_status train_tree(const kvl_dataset *data, const kvl_forest_options *o,
                             int bootstrap, int32_t index, tree *t, double *imp)
{
    const int32_t n = data->n, d = data->d;
    builder b = {.data = data, .max_depth = o->max_depth, .min_leaf = o->min_samples_leaf,
                 .max_features = o->max_features, .importance = imp};
    kvl_rng_seed(&b.rng, kvl_rng_derive(o->seed, (uint64_t)index));
    b.rows = malloc((size_t)n * sizeof *b.rows);
    b.features = malloc((size_t)d * sizeof *b.features);
    b.stack = malloc(((size_t)n + 1) * sizeof *b.stack);
    kvl_status st = KVL_ERR_NOMEM;
    if (b.rows && b.features && b.stack && scratch_alloc(&b.scratch, n, data->n_classes)) {
        for (int32_t i = 0; i < n; i++)
            b.rows[i] = bootstrap ? (int32_t)kvl_rng_below(&b.rng, (uint64_t)n) : i;
        for (int32_t j = 0; j < d; j++)
            b.features[j] = j;
        memset(imp, 0, (size_t)d * sizeof *imp);
        st = grow_tree(&b, t, n);
    }
    builder_free(&b);
    if (st != KVL_OK)
        return st;
    double sum = 0.0;
    for (int32_t j = 0; j < d; j++)
        sum += imp[j];
    for (int32_t j = 0; sum > 0.0 && j < d; j++)
        imp[j] /= sum;
    return KVL_OK;
}

/* ---------------------------------------------------------------- forest */

void kvl_forest_free(kvl_forest *f)
{
    if (!f)
        return;
    for (int32_t t = 0; f->trees && t < f->n_trees; t++)
        tree_free(&f->trees[t]);
    free(f->trees);
    free(f->importance);
    free(f);
}

/* Mean of the per-tree importances over trees that split at least once
 * (sklearn's rule), renormalised to sum 1; summed in tree order so the
 * result does not depend on which thread built which tree. */
static void forest_importance(kvl_forest *f, const double *per_tree)
{
    const size_t d = (size_t)f->d;
    int32_t used = 0;
    for (int32_t t = 0; t < f->n_trees; t++) {
        if (f->trees[t].n_nodes <= 1)
            continue;
        used++;
        for (size_t j = 0; j < d; j++)
            f->importance[j] += per_tree[(size_t)t * d + j];
    }
    double sum = 0.0;
    for (size_t j = 0; j < d; j++)
        sum += f->importance[j];
    for (size_t j = 0; used > 0 && sum > 0.0 && j < d; j++)
        f->importance[j] /= sum;
}

static kvl_status train_all(kvl_forest *f, const kvl_dataset *train,
                            const kvl_forest_options *o, int bootstrap, double *per_tree)
{
    const int32_t threads = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(| : failed)
    for (int32_t t = 0; t < f->n_trees; t++)
        failed |= train_tree(train, o, bootstrap, t, &f->trees[t],
                             per_tree + (size_t)t * (size_t)train->d) != KVL_OK;
    return failed ? KVL_ERR_NOMEM : KVL_OK;
}

kvl_status kvl_forest_train_ex(const kvl_dataset *train,
                               const kvl_forest_options *options, int bootstrap,
                               kvl_forest **out, kvl_error *err)
{
    if (!out || !options)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_forest_train: options and out are required");
    *out = NULL;
    kvl_status st = kvl_dataset_check(train, "forest training set", err);
    if (st != KVL_OK)
        return st;
    if ((st = check_options(options, train->d, err)) != KVL_OK)
        return st;
    kvl_forest_options o = *options;
    o.n_trees = o.n_trees ? o.n_trees : 100;
    o.min_samples_leaf = o.min_samples_leaf ? o.min_samples_leaf : 1;
    if (o.max_features == 0)
        o.max_features = (int32_t)lround(sqrt((double)train->d));
    o.max_features = o.max_features < 1 ? 1 : o.max_features;

    kvl_forest *f = calloc(1, sizeof *f);
    double *per_tree = calloc((size_t)o.n_trees * (size_t)train->d, sizeof *per_tree);
    if (f) {
        f->n_trees = o.n_trees;
        f->d = train->d;
        f->n_classes = train->n_classes;
        f->trees = calloc((size_t)o.n_trees, sizeof *f->trees);
        f->importance = calloc((size_t)train->d, sizeof *f->importance);
    }
    st = (f && per_tree && f->trees && f->importance) ? train_all(f, train, &o, bootstrap, per_tree)
                                                       : KVL_ERR_NOMEM;
    if (st == KVL_OK)
        forest_importance(f, per_tree);
    free(per_tree);
    if (st != KVL_OK) {
        kvl_forest_free(f);
        return kvl_fail(err, st, "out of memory for a random forest of %d trees", (int)o.n_trees);
    }
    *out = f;
    return KVL_OK;
}

kvl_status kvl_forest_train(const kvl_dataset *train,
                            const kvl_forest_options *options,
                            kvl_forest **out, kvl_error *err)
{
    return kvl_forest_train_ex(train, options, 1, out, err);
}

static const double *leaf_value(const kvl_forest *f, const tree *t, const double *row)
{
    int32_t node = 0;
    while (t->feature[node] >= 0)
        node = row[t->feature[node]] <= t->threshold[node] ? t->left[node] : t->right[node];
    return t->value + (size_t)node * (size_t)f->n_classes;
}

void kvl_forest_proba(const kvl_forest *f, const double *row, double *probs)
{
    if (!f || !row || !probs)
        return;
    memset(probs, 0, (size_t)f->n_classes * sizeof *probs);
    for (int32_t t = 0; t < f->n_trees; t++) {
        const double *v = leaf_value(f, &f->trees[t], row);
        for (int32_t c = 0; c < f->n_classes; c++)
            probs[c] += v[c];
    }
    for (int32_t c = 0; c < f->n_classes; c++)
        probs[c] /= f->n_trees;
}

/* -1 for a NULL forest or row (the header's int32_t result has no status). */
int32_t kvl_forest_predict(const kvl_forest *f, const double *row)
{
    if (!f || !row)
        return -1;
    double stack_probs[32];
    double *probs = f->n_classes <= 32 ? stack_probs : malloc((size_t)f->n_classes * sizeof *probs);
    if (!probs)
        return -1;
    kvl_forest_proba(f, row, probs);
    int32_t best = 0;
    for (int32_t c = 1; c < f->n_classes; c++)
        if (probs[c] > probs[best])
            best = c;
    if (probs != stack_probs)
        free(probs);
    return best;
}

const double *kvl_forest_importance(const kvl_forest *f)
{
    return f ? f->importance : NULL;
}

int32_t kvl_forest_n_trees(const kvl_forest *f)
{
    return f ? f->n_trees : 0;
}

int32_t kvl_forest_tree_nodes(const kvl_forest *f, int32_t t)
{
    return (f && t >= 0 && t < f->n_trees) ? f->trees[t].n_nodes : -1;
}
