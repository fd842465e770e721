/* Plots for experiment reports, drawn with PLplot (Debian's libplplot, the
 * cairo driver "pngcairo"): PNG files that report.md embeds.
 *
 * PLplot keeps per-stream state inside the library; each call here creates
 * its own stream, draws one figure, and ends the stream, so the functions
 * are independent of each other but must not run concurrently (call them
 * from one thread).  PLplot's own error exits are routed to the returned
 * status; nothing is printed.  Labels are UTF-8.
 *
 * Errors: KVL_ERR_ARG for bad arguments (NULL data, counts <= 0, infinite
 * values, invalid UTF-8, a size outside [200, 8000] pixels), KVL_ERR_IO
 * when the PNG cannot be written; a failed call leaves no file behind
 * (the PNG is written beside png_path and renamed into place).  Label
 * arrays may be NULL (indices are shown); long labels are cut with "…";
 * style may be NULL (no titles, 900 x 600). */
#ifndef KVL_REPORT_PLOT_H
#define KVL_REPORT_PLOT_H

#include <stdint.h>

#include "kvlab.h"

typedef struct kvl_plot_style {
    const char *title;
    const char *xlabel;
    const char *ylabel;
    int32_t width, height; /* pixels; defaults 900 x 600 when 0 */
} kvl_plot_style;

/* Heatmap of z[rows][cols] (row 0 drawn at the top) with a colour bar;
 * row_labels / col_labels may be NULL (then indices are shown).  NaN cells
 * are drawn blank. */
kvl_status kvl_plot_heatmap(const char *png_path, const double *z,
                            int32_t rows, int32_t cols,
                            const char *const *row_labels,
                            const char *const *col_labels,
                            const kvl_plot_style *style, kvl_error *err);

/* Bars value[n] with labels[n]; lo/hi (both NULL or both given) draw
 * interval whiskers.  A NaN value draws no bar, a NaN lo or hi no
 * whisker. */
kvl_status kvl_plot_bars(const char *png_path, const double *value,
                         const double *lo, const double *hi, int32_t n,
                         const char *const *labels,
                         const kvl_plot_style *style, kvl_error *err);

/* Grouped bars: value[n_series][n_groups] (with optional lo/hi of the same
 * shape), one colour per series with a legend of series_labels. */
kvl_status kvl_plot_grouped_bars(const char *png_path, const double *value,
                                 const double *lo, const double *hi,
                                 int32_t n_series, int32_t n_groups,
                                 const char *const *series_labels,
                                 const char *const *group_labels,
                                 const kvl_plot_style *style, kvl_error *err);

/* Confusion matrix counts[n][n] (row = true class, column = predicted) as a
 * heatmap of row-normalised rates with the counts written in the cells.
 * Axis titles default to "predicted" and "true"; a row without samples is
 * blank. */
kvl_status kvl_plot_confusion(const char *png_path, const int64_t *counts,
                              int32_t n, const char *const *labels,
                              const kvl_plot_style *style, kvl_error *err);

/* Lines y[n_series][n] against x[n] with markers and a legend (none for
 * a single unnamed series).  A NaN y breaks its line; x must be numbers. */
kvl_status kvl_plot_lines(const char *png_path, const double *x,
                          const double *y, int32_t n_series, int32_t n,
                          const char *const *series_labels,
                          const kvl_plot_style *style, kvl_error *err);

#endif
