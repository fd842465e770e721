/* L2-regularised multinomial logistic regression (classify.h states the
 * objective), minimised by L-BFGS (Nocedal and Wright, algorithm 7.4, memory
 * 10) from zero.  Convergence: max_j |gradient_j| <= tol * n, i.e. the
 * gradient of the mean loss below tol, checked on the exact gradient.
 *
 * Near the optimum the objective's rounding error (~1e-16 |f|) exceeds the
 * decrease a tight tolerance needs, so the line search also accepts a step
 * by the approximate Wolfe rule of Hager and Zhang (2005): the objective
 * did not grow beyond its rounding error and the directional derivative at
 * the new point is at most half its size at the start (for a nearly
 * quadratic, convex objective that means it went down).  If even that
 * fails the optimiser stops where it is: nothing better is representable.
 *
 * Intercepts are identified only up to a common constant (the softmax
 * ignores it and it is unpenalised); starting from zero the gradient keeps
 * their sum at zero and they are re-centred at the end, as sklearn's are. */
#include "stats/forest_internal.h"

#include "core/error.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LBFGS_MEMORY 10

struct kvl_logreg {
    int32_t d, k;
    double *mean;      /* [d] training mean                                  */
    double *inv_sd;    /* [d] 1 / population sd, 0 for a constant feature    */
    double *coef;      /* [k][d] on standardised features                    */
    double *intercept; /* [k], the tail of coef's allocation                 */
};

/* The objective on the standardised training set. */
typedef struct problem {
    int32_t n, d, k;
    const double *z;  /* [n][d] standardised features */
    const int32_t *y;
    double lambda;
    double *scores;   /* [n][k] scratch: scores, then softmax - onehot */
} problem;

void kvl_logreg_free(kvl_logreg *m)
{
    if (!m)
        return;
    free(m->mean);
    free(m->inv_sd);
    free(m->coef); /* intercept lives at its end */
    free(m);
}

/* Mean and 1/sd (population) per feature; a feature whose values are all
 * equal gets 1/sd = 0 and so contributes 0 everywhere. */
static void fit_scaler(const kvl_dataset *t, double *mean, double *inv_sd)
{
    const size_t n = (size_t)t->n, d = (size_t)t->d;
    for (size_t j = 0; j < d; j++) {
        double sum = 0.0, lo = t->x[j], hi = t->x[j];
        for (size_t i = 0; i < n; i++) {
            const double v = t->x[i * d + j];
            sum += v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        mean[j] = sum / (double)n;
        double ss = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double dv = t->x[i * d + j] - mean[j];
            ss += dv * dv;
        }
        inv_sd[j] = (hi > lo && ss > 0.0) ? 1.0 / sqrt(ss / (double)n) : 0.0;
    }
}

/* f(theta) and its gradient; theta = [W (k x d) row-major, b (k)]. */
static double objective(const problem *p, const double *theta, double *grad)
{
    const int32_t n = p->n, d = p->d, k = p->k;
    const double *w = theta, *b = theta + (size_t)k * (size_t)d;
    double *s = p->scores;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, k, d, 1.0, p->z, d, w, d, 0.0,
                s, k);
    double f = 0.0;
    double *gb = grad + (size_t)k * (size_t)d;
    memset(gb, 0, (size_t)k * sizeof *gb);
    for (int32_t i = 0; i < n; i++) {
        double *si = s + (size_t)i * (size_t)k;
        double mx = -INFINITY;
        for (int32_t c = 0; c < k; c++) {
            si[c] += b[c];
            mx = si[c] > mx ? si[c] : mx;
        }
        double sum = 0.0;
        for (int32_t c = 0; c < k; c++)
            sum += exp(si[c] - mx);
        const double lse = mx + log(sum);
        f += lse - si[p->y[i]];
        /* Residual softmax - onehot, the derivative w.r.t. the scores. */
        for (int32_t c = 0; c < k; c++) {
            si[c] = exp(si[c] - lse) - (c == p->y[i]);
            gb[c] += si[c];
        }
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, d, n, 1.0, s, k, p->z, d, 0.0,
                grad, d);
    double wsq = 0.0;
    for (size_t j = 0; j < (size_t)k * (size_t)d; j++) {
        wsq += w[j] * w[j];
        grad[j] += p->lambda * w[j];
    }
    return f + 0.5 * p->lambda * wsq;
}

static double dot(const double *a, const double *b, size_t n)
{
    return cblas_ddot((int)n, a, 1, b, 1);
}

static double max_abs(const double *a, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* L-BFGS memory: the last pairs s = x_{k+1} - x_k, y = g_{k+1} - g_k. */
typedef struct lbfgs {
    size_t dim;
    int32_t count, head; /* pairs stored; index of the oldest */
    double *s, *y;       /* [LBFGS_MEMORY][dim] */
    double rho[LBFGS_MEMORY], alpha[LBFGS_MEMORY];
} lbfgs;

/* dir = -H g by the two-loop recursion (H0 = gamma I, gamma = s'y / y'y). */
static void lbfgs_direction(lbfgs *m, const double *g, double *dir)
{
    const size_t n = m->dim;
    for (size_t i = 0; i < n; i++)
        dir[i] = -g[i];
    for (int32_t j = m->count - 1; j >= 0; j--) {
        const int32_t slot = (m->head + j) % LBFGS_MEMORY;
        const double *s = m->s + (size_t)slot * n, *y = m->y + (size_t)slot * n;
        m->alpha[slot] = m->rho[slot] * dot(s, dir, n);
        cblas_daxpy((int)n, -m->alpha[slot], y, 1, dir, 1);
    }
    if (m->count > 0) {
        const int32_t last = (m->head + m->count - 1) % LBFGS_MEMORY;
        const double *y = m->y + (size_t)last * n;
        cblas_dscal((int)n, 1.0 / (m->rho[last] * dot(y, y, n)), dir, 1);
    }
    for (int32_t j = 0; j < m->count; j++) {
        const int32_t slot = (m->head + j) % LBFGS_MEMORY;
        const double *s = m->s + (size_t)slot * n, *y = m->y + (size_t)slot * n;
        const double beta = m->rho[slot] * dot(y, dir, n);
        cblas_daxpy((int)n, m->alpha[slot] - beta, s, 1, dir, 1);
    }
}

/* Stores the pair (x_new - x, g_new - g) when its curvature is positive. */
static void lbfgs_push(lbfgs *m, const double *x, const double *x_new, const double *g,
                       const double *g_new)
{
    const size_t n = m->dim;
    const int32_t slot = m->count < LBFGS_MEMORY ? (m->head + m->count) % LBFGS_MEMORY : m->head;
    double *s = m->s + (size_t)slot * n, *y = m->y + (size_t)slot * n;
    for (size_t i = 0; i < n; i++) {
        s[i] = x_new[i] - x[i];
        y[i] = g_new[i] - g[i];
    }
    const double sy = dot(s, y, n);
    if (!(sy > 1e-300 && sy > 1e-14 * sqrt(dot(s, s, n) * dot(y, y, n)))) {
        /* Not stored.  A full memory lost its oldest pair to the scratch. */
        if (m->count == LBFGS_MEMORY) {
            m->head = (m->head + 1) % LBFGS_MEMORY;
            m->count--;
        }
        return;
    }
    m->rho[slot] = 1.0 / sy;
    if (m->count < LBFGS_MEMORY)
        m->count++;
    else
        m->head = (m->head + 1) % LBFGS_MEMORY;
}

/* Backtracking from step 1 (Armijo, c1 = 1e-4, or approximate Wolfe);
 * leaves the accepted point in x_new, g_new, *f_new; 0 when none found. */
static int line_search(const problem *p, const double *x, const double *g, double f,
                       const double *dir, size_t dim, double step, double *x_new,
                       double *g_new, double *f_new)
{
    const double gd = dot(g, dir, dim);
    const double f_slack = 1e-12 * fabs(f);
    for (int tries = 0; tries < 60; tries++, step *= 0.5) {
        for (size_t i = 0; i < dim; i++)
            x_new[i] = x[i] + step * dir[i];
        *f_new = objective(p, x_new, g_new);
        if (!isfinite(*f_new))
            continue;
        if (*f_new <= f + 1e-4 * step * gd)
            return 1;
        if (*f_new <= f + f_slack && dot(g_new, dir, dim) <= 0.5 * fabs(gd))
            return 1;
    }
    return 0;
}

/* Minimises the objective from theta = 0; theta holds the result. */
static kvl_status minimise(const problem *p, int32_t max_iter, double tol, double *theta)
{
    const size_t dim = (size_t)p->k * ((size_t)p->d + 1);
    lbfgs m = {.dim = dim};
    m.s = malloc(LBFGS_MEMORY * dim * sizeof *m.s);
    m.y = malloc(LBFGS_MEMORY * dim * sizeof *m.y);
    double *g = malloc(dim * sizeof *g), *dir = malloc(dim * sizeof *dir);
    double *x_new = malloc(dim * sizeof *x_new), *g_new = malloc(dim * sizeof *g_new);
    kvl_status st = KVL_ERR_NOMEM;
    if (m.s && m.y && g && dir && x_new && g_new) {
        st = KVL_OK;
        memset(theta, 0, dim * sizeof *theta);
        double f = objective(p, theta, g);
        const double gtol = tol * (double)p->n;
        for (int32_t it = 0; it < max_iter && max_abs(g, dim) > gtol; it++) {
            lbfgs_direction(&m, g, dir);
            if (dot(g, dir, dim) >= 0.0) { /* lost descent: restart */
                m.count = m.head = 0;
                lbfgs_direction(&m, g, dir);
            }
            /* Without curvature pairs, start with a unit-length step. */
            const double step = m.count ? 1.0 : 1.0 / fmax(1.0, sqrt(dot(g, g, dim)));
            double f_new;
            if (!line_search(p, theta, g, f, dir, dim, step, x_new, g_new, &f_new))
                break;
            lbfgs_push(&m, theta, x_new, g, g_new);
            memcpy(theta, x_new, dim * sizeof *theta);
            memcpy(g, g_new, dim * sizeof *g);
            f = f_new;
        }
    }
    free(m.s);
    free(m.y);
    free(g);
    free(dir);
    free(x_new);
    free(g_new);
    return st;
}

static kvl_status check_options(const kvl_logreg_options *o, kvl_error *err)
{
    if (!(o->lambda >= 0.0) || !isfinite(o->lambda))
        return kvl_fail(err, KVL_ERR_ARG, "logreg: lambda must be finite and >= 0, got %g",
                        o->lambda);
    if (o->max_iter < 0)
        return kvl_fail(err, KVL_ERR_ARG, "logreg: max_iter must be >= 0, got %d",
                        (int)o->max_iter);
    if (!(o->tol >= 0.0) || !isfinite(o->tol))
        return kvl_fail(err, KVL_ERR_ARG, "logreg: tol must be finite and >= 0, got %g", o->tol);
    return KVL_OK;
}

static kvl_logreg *model_alloc(int32_t d, int32_t k)
{
    kvl_logreg *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->d = d;
    m->k = k;
    m->mean = malloc((size_t)d * sizeof *m->mean);
    m->inv_sd = malloc((size_t)d * sizeof *m->inv_sd);
    m->coef = malloc(((size_t)k * (size_t)d + (size_t)k) * sizeof *m->coef);
    m->intercept = m->coef ? m->coef + (size_t)k * (size_t)d : NULL;
    if (m->mean && m->inv_sd && m->coef)
        return m;
    kvl_logreg_free(m);
    return NULL;
}

/* Fits on the standardised copy z of the training set. */
static kvl_status fit(kvl_logreg *m, const kvl_dataset *t, const kvl_logreg_options *o)
{
    const size_t n = (size_t)t->n, d = (size_t)t->d;
    double *z = malloc(n * d * sizeof *z);
    double *scores = malloc(n * (size_t)m->k * sizeof *scores);
    kvl_status st = KVL_ERR_NOMEM;
    if (z && scores) {
        fit_scaler(t, m->mean, m->inv_sd);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                z[i * d + j] = (t->x[i * d + j] - m->mean[j]) * m->inv_sd[j];
        const problem p = {t->n, t->d, m->k, z, t->y, o->lambda, scores};
        st = minimise(&p, o->max_iter, o->tol, m->coef); /* coef then intercept */
    }
    free(z);
    free(scores);
    if (st != KVL_OK)
        return st;
    double mean_b = 0.0;
    for (int32_t c = 0; c < m->k; c++)
        mean_b += m->intercept[c] / m->k;
    for (int32_t c = 0; c < m->k; c++)
        m->intercept[c] -= mean_b;
    return KVL_OK;
}

kvl_status kvl_logreg_train(const kvl_dataset *train,
                            const kvl_logreg_options *options,
                            kvl_logreg **out, kvl_error *err)
{
    if (!out || !options)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_logreg_train: options and out are required");
    *out = NULL;
    kvl_status st = kvl_dataset_check(train, "logreg training set", err);
    if (st != KVL_OK)
        return st;
    if ((st = check_options(options, err)) != KVL_OK)
        return st;
    kvl_logreg_options o = *options;
    o.lambda = o.lambda > 0.0 ? o.lambda : 1.0;
    o.max_iter = o.max_iter ? o.max_iter : 500;
    o.tol = o.tol > 0.0 ? o.tol : 1e-8;
    kvl_logreg *m = model_alloc(train->d, train->n_classes);
    if (!m || fit(m, train, &o) != KVL_OK) {
        kvl_logreg_free(m);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a logistic regression (n = %d, d = %d)",
                        (int)train->n, (int)train->d);
    }
    *out = m;
    return KVL_OK;
}

/* Writes nothing when an argument is NULL (there is no status to return). */
void kvl_logreg_proba(const kvl_logreg *m, const double *row, double *probs)
{
    if (!m || !row || !probs)
        return;
    const size_t d = (size_t)m->d;
    double mx = -INFINITY;
    for (int32_t c = 0; c < m->k; c++) {
        double s = m->intercept[c];
        const double *w = m->coef + (size_t)c * d;
        for (size_t j = 0; j < d; j++)
            s += w[j] * ((row[j] - m->mean[j]) * m->inv_sd[j]);
        probs[c] = s;
        mx = s > mx ? s : mx;
    }
    double sum = 0.0;
    for (int32_t c = 0; c < m->k; c++) {
        probs[c] = exp(probs[c] - mx);
        sum += probs[c];
    }
    for (int32_t c = 0; c < m->k; c++)
        probs[c] /= sum;
}

/* Highest probability, ties to the lowest class; -1 for NULL arguments. */
int32_t kvl_logreg_predict(const kvl_logreg *m, const double *row)
{
    if (!m || !row)
        return -1;
    double stack_probs[32];
    double *probs = m->k <= 32 ? stack_probs : malloc((size_t)m->k * sizeof *probs);
    if (!probs)
        return -1;
    kvl_logreg_proba(m, row, probs);
    int32_t best = 0;
    for (int32_t c = 1; c < m->k; c++)
        if (probs[c] > probs[best])
            best = c;
    if (probs != stack_probs)
        free(probs);
    return best;
}

const double *kvl_logreg_coef(const kvl_logreg *m)
{
    return m ? m->coef : NULL;
}

const double *kvl_logreg_intercept(const kvl_logreg *m)
{
    return m ? m->intercept : NULL;
}
