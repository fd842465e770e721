/* The plots of report/plot.h with a choice of target: a PNG file (the
 * "pngcairo" driver) or a caller's RGB buffer (the "memcairo" driver, the
 * same cairo renderer), so tests can check pixel colours and positions.
 * The geometry of the data area is reported back so a test can map data
 * coordinates to pixels. */
#ifndef KVL_REPORT_PLOT_INTERNAL_H
#define KVL_REPORT_PLOT_INTERNAL_H

#include <stdint.h>

#include "report/plot.h"

typedef struct kvl_plot_target {
    /* Exactly one of these: a PNG path, or rgb[height][width][3] (row 0
     * at the top) that is cleared to white and drawn into. */
    const char *png_path;
    uint8_t *rgb;
    /* Filled on success.  frame_px: the data area in pixels, {left, right,
     * top, bottom} with y growing downwards; window: its data coordinates
     * {xmin, xmax, ymin, ymax}.  A heatmap's window is [0, cols] x
     * [0, rows] with row 0 in [rows - 1, rows]; bars sit at x = 0..n-1. */
    double frame_px[4];
    double window[4];
} kvl_plot_target;

kvl_status kvl_plot_heatmap_to(kvl_plot_target *target, const double *z,
                               int32_t rows, int32_t cols,
                               const char *const *row_labels,
                               const char *const *col_labels,
                               const kvl_plot_style *style, kvl_error *err);

kvl_status kvl_plot_bars_to(kvl_plot_target *target, const double *value,
                            const double *lo, const double *hi, int32_t n,
                            const char *const *labels,
                            const kvl_plot_style *style, kvl_error *err);

kvl_status kvl_plot_grouped_bars_to(kvl_plot_target *target,
                                    const double *value, const double *lo,
                                    const double *hi, int32_t n_series,
                                    int32_t n_groups,
                                    const char *const *series_labels,
                                    const char *const *group_labels,
                                    const kvl_plot_style *style,
                                    kvl_error *err);

kvl_status kvl_plot_confusion_to(kvl_plot_target *target,
                                 const int64_t *counts, int32_t n,
                                 const char *const *labels,
                                 const kvl_plot_style *style, kvl_error *err);

kvl_status kvl_plot_lines_to(kvl_plot_target *target, const double *x,
                             const double *y, int32_t n_series, int32_t n,
                             const char *const *series_labels,
                             const kvl_plot_style *style, kvl_error *err);

#endif
