/* Singular values of a float matrix (LAPACKE dgesdd in double precision)
 * and two summaries of a spectrum: the effective rank of Roy and Vetterli
 * (2007) and the normalised spectral entropy. */
#include "stats/stats.h"

#include "core/error.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>

/* Singular values of the column-major mm x nn matrix a (destroyed) by
 * dgesdd, with our own workspace: the LAPACKE_dgesdd convenience call would
 * print through LAPACKE_xerbla if its own allocation failed. */
static kvl_status dgesdd_values(double *a, lapack_int mm, lapack_int nn,
                                double *sv, kvl_error *err)
{
    const lapack_int k = mm < nn ? mm : nn;
    lapack_int *iwork = malloc(8 * (size_t)k * sizeof *iwork);
    if (!iwork)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "singular values: out of memory for the workspace");
    double query = 0.0;
    lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', mm, nn, a, mm,
                                          sv, NULL, 1, NULL, 1, &query, -1,
                                          iwork);
    double *work = NULL;
    if (info == 0) {
        const size_t lwork = (size_t)query + 1;
        work = malloc(lwork * sizeof *work);
        if (!work) {
            free(iwork);
            return kvl_fail(err, KVL_ERR_NOMEM,
                            "singular values: out of memory for %zu doubles "
                            "of workspace", lwork);
        }
        info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, 'N', mm, nn, a, mm, sv,
                                   NULL, 1, NULL, 1, work, (lapack_int)lwork,
                                   iwork);
    }
    free(work);
    free(iwork);
    if (info < 0)
        return kvl_fail(err, KVL_ERR_INTERNAL,
                        "singular values: dgesdd rejected argument %d",
                        (int)-info);
    if (info > 0)
        return kvl_fail(err, KVL_ERR_INTERNAL,
                        "singular values: dgesdd did not converge (%d)",
                        (int)info);
    return KVL_OK;
}

kvl_status kvl_stats_singular_values(const float *m, int32_t rows,
                                     int32_t cols, double *sv,
                                     kvl_error *err)
{
    if (!m || !sv)
        return kvl_fail(err, KVL_ERR_ARG,
                        "singular values: m and sv are required");
    if (rows <= 0 || cols <= 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "singular values: shape must be positive, got %d x %d",
                        (int)rows, (int)cols);
    const size_t count = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(m[i]))
            return kvl_fail(err, KVL_ERR_ARG,
                            "singular values: element %zu (row %zu) is not "
                            "finite", i, i / (size_t)cols);
    /* dgesdd overwrites its input, and double precision keeps the small
     * singular values of float data meaningful. */
    double *a = malloc(count * sizeof *a);
    if (!a)
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "singular values: out of memory for a %d x %d copy",
                        (int)rows, (int)cols);
    for (size_t i = 0; i < count; i++)
        a[i] = (double)m[i];
    /* Row-major rows x cols read column-major is the cols x rows transpose,
     * which has the same singular values: no transposition needed. */
    kvl_status st = dgesdd_values(a, cols, rows, sv, err);
    free(a);
    return st;
}

/* Sum of sv[0..k) raised to `power` (1 or 2); NaN when a value is negative
 * or NaN, which is not a spectrum. */
static double spectrum_sum(const double *sv, int32_t k, int power)
{
    double s = 0.0;
    for (int32_t i = 0; i < k; i++) {
        if (!(sv[i] >= 0.0) || isinf(sv[i]))
            return NAN;
        s += power == 2 ? sv[i] * sv[i] : sv[i];
    }
    return s;
}

/* Shannon entropy (nats) of w_i / total, w_i = sv_i^power; 0 log 0 = 0. */
static double spectrum_entropy(const double *sv, int32_t k, int power,
                               double total)
{
    double h = 0.0;
    for (int32_t i = 0; i < k; i++) {
        const double w = power == 2 ? sv[i] * sv[i] : sv[i];
        if (w > 0.0) {
            const double p = w / total;
            h -= p * log(p);
        }
    }
    return h;
}

double kvl_stats_effective_rank(const double *sv, int32_t k)
{
    if (k < 0 || (k > 0 && !sv))
        return NAN;
    const double total = spectrum_sum(sv, k, 1);
    if (isnan(total))
        return NAN;
    if (!(total > 0.0))
        return 0.0;
    return exp(spectrum_entropy(sv, k, 1, total));
}

double kvl_stats_spectral_entropy(const double *sv, int32_t k)
{
    if (k < 0 || (k > 0 && !sv))
        return NAN;
    const double total = spectrum_sum(sv, k, 2);
    if (isnan(total))
        return NAN;
    if (k < 2 || !(total > 0.0))
        return 0.0;
    return spectrum_entropy(sv, k, 2, total) / log((double)k);
}
