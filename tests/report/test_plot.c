/* Report plots (src/report/plot.c).
 *
 * - Every function writes a PNG whose signature, IHDR size and IEND are
 *   right, for typical inputs and edge cases (1x1 heatmap, all-equal and
 *   NaN values, one bar, long / UTF-8 / '#' labels, default style).
 * - Bad input returns KVL_ERR_ARG or KVL_ERR_IO with a message and leaves
 *   no file behind.
 * - Nothing is printed: stdout and stderr are redirected to a file around
 *   every call and must stay empty.
 * - Pixels, drawn into memory by the "memcairo" driver (the same cairo
 *   renderer as the PNGs): heatmap and confusion cells have the colours
 *   matplotlib gives the same data (viridis, default normalisation;
 *   tests/fixtures/report/plot_reference.json from
 *   tests/reference/make_plot_fixtures.py), NaN cells are blank, bars end
 *   at the height of their value, whiskers at hi, series have matplotlib's
 *   tab10 colours, and line markers sit on their data points.
 *
 * KVL_PLOT_EXAMPLES=1 also writes the typical figures to /tmp/plot-examples
 * for a look. */
#include "test_util.h"

#include "report/plot.h"
#include "report/plot_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* fontconfig, loaded by PLplot's cairo driver, keeps its font cache for
 * the life of the process; LeakSanitizer (sanitizer build) would report
 * it as a leak.  Only that library is exempt. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

static char out_dir[256];

static const char *out_path(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, sizeof bufs[0], "%s/%s", out_dir, name);
    return p;
}

/* ---- silence check: fds 1 and 2 go to a file around the library calls */

typedef struct capture {
    int saved_out, saved_err;
    char path[512];
} capture;

static void capture_begin(capture *c)
{
    snprintf(c->path, sizeof c->path, "%s/.captured", out_dir);
    fflush(stdout);
    fflush(stderr);
    c->saved_out = dup(1);
    c->saved_err = dup(2);
    int fd = open(c->path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
}

/* Restores the fds; returns what was written meanwhile (shown if any). */
static long capture_end(capture *c)
{
    fflush(stdout);
    fflush(stderr);
    dup2(c->saved_out, 1);
    dup2(c->saved_err, 2);
    close(c->saved_out);
    close(c->saved_err);
    struct stat sb;
    long size = stat(c->path, &sb) == 0 ? (long)sb.st_size : -1;
    if (size > 0) {
        FILE *f = fopen(c->path, "rb");
        char buf[4096];
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        buf[n] = '\0';
        if (f)
            fclose(f);
        fprintf(stderr, "---- captured output ----\n%s---- end ----\n", buf);
    }
    unlink(c->path);
    return size;
}

/* ---- PNG files ----------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void check_png(const char *path, int w, int h, const char *what)
{
    static const unsigned char sig[8] = {0x89, 'P',  'N',  'G',
                                         '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[8] = {'I',  'E',  'N',  'D',
                                          0xae, 0x42, 0x60, 0x82};
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "%s: %s not written", what, path);
    if (!f)
        return;
    unsigned char head[24], tail[8];
    size_t got = fread(head, 1, sizeof head, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, -8, SEEK_END);
    size_t got_tail = fread(tail, 1, sizeof tail, f);
    fclose(f);
    CHECK(got == 24 && memcmp(head, sig, 8) == 0, "%s: no PNG signature", what);
    CHECK(got == 24 && be32(head + 8) == 13 &&
              memcmp(head + 12, "IHDR", 4) == 0,
          "%s: first chunk is not IHDR", what);
    CHECK(got == 24 && (int)be32(head + 16) == w && (int)be32(head + 20) == h,
          "%s: IHDR says %ux%u, asked for %dx%d", what, be32(head + 16),
          be32(head + 20), w, h);
    CHECK(got_tail == 8 && memcmp(tail, iend, 8) == 0, "%s: no IEND at the end",
          what);
    /* A white page is a few KB; a plot with text is more, and far below
     * the raw size. */
    CHECK(size > 3000 && size < (long)w * h * 4, "%s: %ld bytes", what, size);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* ---- typical figures and edge cases -------------------------------------- */

static const char *const rows6[] = {"layer 0", "layer 1", "layer 2",
                                    "layer 3", "layer 4", "layer 5"};
static const char *const cols8[] = {"h0", "h1", "h2", "h3",
                                    "h4", "h5", "h6", "h7"};

static void typical_heatmap(void)
{
    double z[6 * 8];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 8; j++)
            z[i * 8 + j] = sin(0.7 * i) * cos(0.4 * j) + 0.1 * i;
    z[2 * 8 + 5] = NAN;
    kvl_plot_style st = {"Attention entropy per head", "head", "layer", 0, 0};
    kvl_error err;
    CHECK_OK(kvl_plot_heatmap(out_path("heatmap.png"), z, 6, 8, rows6, cols8,
                              &st, &err),
             &err);
    check_png(out_path("heatmap.png"), 900, 600, "heatmap");
}

static void typical_bars(void)
{
    const double v[] = {0.82, 0.61, 0.47, 0.93, 0.35};
    const double lo[] = {0.75, 0.52, 0.40, 0.90, 0.22};
    const double hi[] = {0.88, 0.70, 0.55, 0.96, 0.47};
    const char *const labels[] = {"factual", "creative", "reasoning",
                                  "dialogue", "code"};
    kvl_plot_style st = {"Transplant accuracy by mode", "cognitive mode",
                         "accuracy", 800, 500};
    kvl_error err;
    CHECK_OK(
        kvl_plot_bars(out_path("bars.png"), v, lo, hi, 5, labels, &st, &err),
        &err);
    check_png(out_path("bars.png"), 800, 500, "bars");
}

static void typical_grouped(void)
{
    const double v[] = {0.9,  0.7,  0.5, 0.3,  0.85, 0.72,
                        0.61, 0.55, 0.6, 0.66, 0.7,  0.74};
    double lo[12], hi[12];
    for (int i = 0; i < 12; i++) {
        lo[i] = v[i] - 0.05;
        hi[i] = v[i] + 0.04;
    }
    const char *const series[] = {"same model", "transplant", "shuffled"};
    const char *const groups[] = {"1 layer", "4 layers", "8 layers",
                                  "all layers"};
    kvl_plot_style st = {"Recall after cache transplant", "layers replaced",
                         "recall", 0, 0};
    kvl_error err;
    CHECK_OK(kvl_plot_grouped_bars(out_path("grouped.png"), v, lo, hi, 3, 4,
                                   series, groups, &st, &err),
             &err);
    check_png(out_path("grouped.png"), 900, 600, "grouped bars");
}

static void typical_confusion(void)
{
    const int64_t counts[] = {41, 5, 3,  1, 6, 30, 10, 4,
                              2,  9, 35, 4, 0, 3,  6,  41};
    const char *const labels[] = {"analytic", "narrative", "procedural",
                                  "emotional"};
    kvl_plot_style st = {"Persona identification", NULL, NULL, 700, 600};
    kvl_error err;
    CHECK_OK(kvl_plot_confusion(out_path("confusion.png"), counts, 4, labels,
                                &st, &err),
             &err);
    check_png(out_path("confusion.png"), 700, 600, "confusion");
}

static void typical_lines(void)
{
    double x[20], y[3 * 20];
    for (int i = 0; i < 20; i++) {
        x[i] = 0.5 * (i + 1);
        for (int s = 0; s < 3; s++)
            y[s * 20 + i] = (s + 1) * log(x[i] + 1) + 0.1 * s;
    }
    y[1 * 20 + 7] = NAN; /* a gap */
    const char *const names[] = {"0.5B", "1.5B", "7B"};
    kvl_plot_style st = {"Scale sweep", "tokens (k)", "perplexity gap", 0, 0};
    kvl_error err;
    CHECK_OK(
        kvl_plot_lines(out_path("lines.png"), x, y, 3, 20, names, &st, &err),
        &err);
    check_png(out_path("lines.png"), 900, 600, "lines");
}

static void edge_cases(void)
{
    kvl_error err;
    const double one = 0.42;
    CHECK_OK(kvl_plot_heatmap(out_path("h1x1.png"), &one, 1, 1, NULL, NULL,
                              NULL, &err),
             &err);
    check_png(out_path("h1x1.png"), 900, 600, "1x1 heatmap");

    const double flat[9] = {3, 3, 3, 3, 3, 3, 3, 3, 3};
    kvl_plot_style small = {"all equal", NULL, NULL, 300, 200};
    CHECK_OK(kvl_plot_heatmap(out_path("flat.png"), flat, 3, 3, NULL, NULL,
                              &small, &err),
             &err);
    check_png(out_path("flat.png"), 300, 200, "all-equal heatmap");

    const double nans[4] = {NAN, NAN, NAN, NAN};
    CHECK_OK(kvl_plot_heatmap(out_path("nan.png"), nans, 2, 2, NULL, NULL, NULL,
                              &err),
             &err);
    check_png(out_path("nan.png"), 900, 600, "all-NaN heatmap");

    const char *const utf8[] = {"é", "naïve — ü", "a#b", "日本"};
    double z4[4] = {1, 2, 3, 4};
    kvl_plot_style st = {"Déjà vu #1 — überprüft", "colonne é", "ligne ü", 0,
                         0};
    CHECK_OK(kvl_plot_heatmap(out_path("utf8.png"), z4, 2, 2, utf8, utf8 + 2,
                              &st, &err),
             &err);
    check_png(out_path("utf8.png"), 900, 600, "UTF-8 labels");

    const double bar = -2.5;
    CHECK_OK(kvl_plot_bars(out_path("bar1.png"), &bar, NULL, NULL, 1, NULL,
                           NULL, &err),
             &err);
    check_png(out_path("bar1.png"), 900, 600, "one negative bar");

    static const char *const longl[] = {
        "an extremely long label that goes on and on past any reasonable width",
        "short",
        "another rather long category name, with commas, and more words"};
    const double v3[3] = {1, 0, 2};
    kvl_plot_style lst = {"A title that is also quite long, to see how the "
                          "figure copes with it when the page is narrow",
                          "a long x label", "a long y label", 400, 300};
    CHECK_OK(kvl_plot_bars(out_path("long.png"), v3, NULL, NULL, 3, longl, &lst,
                           &err),
             &err);
    check_png(out_path("long.png"), 400, 300, "long labels");
    CHECK_OK(kvl_plot_grouped_bars(out_path("g11.png"), &one, NULL, NULL, 1, 1,
                                   NULL, NULL, NULL, &err),
             &err);
    check_png(out_path("g11.png"), 900, 600, "1x1 grouped bars");

    const int64_t c1 = 7, zero_row[4] = {3, 1, 0, 0};
    CHECK_OK(kvl_plot_confusion(out_path("c1.png"), &c1, 1, NULL, NULL, &err),
             &err);
    check_png(out_path("c1.png"), 900, 600, "1x1 confusion");
    CHECK_OK(
        kvl_plot_confusion(out_path("c0.png"), zero_row, 2, NULL, NULL, &err),
        &err);
    check_png(out_path("c0.png"), 900, 600, "confusion with an empty row");

    const double x1 = 5, y1 = 5;
    CHECK_OK(
        kvl_plot_lines(out_path("l1.png"), &x1, &y1, 1, 1, NULL, NULL, &err),
        &err);
    check_png(out_path("l1.png"), 900, 600, "one point");

    /* A big heatmap: labels must thin out, and it stays quick. */
    enum { R = 64, C = 96 };
    static double big[R * C];
    for (int i = 0; i < R * C; i++)
        big[i] = (double)(i % 97) / 97.0;
    CHECK_OK(kvl_plot_heatmap(out_path("big.png"), big, R, C, NULL, NULL, NULL,
                              &err),
             &err);
    check_png(out_path("big.png"), 900, 600, "64x96 heatmap");
}

/* ---- bad input ----------------------------------------------------------- */

static void expect_fail(kvl_status got, kvl_status want, const kvl_error *err,
                        const char *path, const char *what)
{
    CHECK(got == want, "%s: got %s, want %s (%s)", what, kvl_status_name(got),
          kvl_status_name(want), err->message);
    CHECK(err->message[0] != '\0', "%s: no message", what);
    CHECK(!path || access(path, F_OK) != 0, "%s: %s was created", what, path);
}

static void bad_input(void)
{
    kvl_error err;
    const char *p = out_path("bad.png");
    const double v[4] = {1, 2, 3, 4}, lo[4] = {0, 1, 2, 3};
    const double inf[2] = {1, INFINITY};
    const char *const nul_label[2] = {"a", NULL};
    const char *const bad_utf8[2] = {"a", "\xc3("};
    const int64_t neg[4] = {1, -1, 0, 2};
    const double xnan[2] = {0, NAN};
    int before = count_entries(out_dir);

    expect_fail(kvl_plot_heatmap(NULL, v, 2, 2, NULL, NULL, NULL, &err),
                KVL_ERR_ARG, &err, NULL, "heatmap NULL path");
    expect_fail(kvl_plot_heatmap(p, NULL, 2, 2, NULL, NULL, NULL, &err),
                KVL_ERR_ARG, &err, p, "heatmap NULL z");
    expect_fail(kvl_plot_heatmap(p, v, 0, 2, NULL, NULL, NULL, &err),
                KVL_ERR_ARG, &err, p, "heatmap rows 0");
    expect_fail(kvl_plot_heatmap(p, v, 2, -1, NULL, NULL, NULL, &err),
                KVL_ERR_ARG, &err, p, "heatmap cols -1");
    expect_fail(kvl_plot_heatmap(p, inf, 1, 2, NULL, NULL, NULL, &err),
                KVL_ERR_ARG, &err, p, "heatmap infinity");
    expect_fail(kvl_plot_heatmap(p, v, 2, 2, nul_label, NULL, NULL, &err),
                KVL_ERR_ARG, &err, p, "heatmap NULL label");
    expect_fail(kvl_plot_heatmap(p, v, 2, 2, NULL, bad_utf8, NULL, &err),
                KVL_ERR_ARG, &err, p, "heatmap invalid UTF-8");
    kvl_plot_style tiny = {NULL, NULL, NULL, 10, 10};
    expect_fail(kvl_plot_heatmap(p, v, 2, 2, NULL, NULL, &tiny, &err),
                KVL_ERR_ARG, &err, p, "heatmap 10x10 pixels");
    kvl_plot_style bad_title = {"\xff", NULL, NULL, 0, 0};
    expect_fail(kvl_plot_heatmap(p, v, 2, 2, NULL, NULL, &bad_title, &err),
                KVL_ERR_ARG, &err, p, "heatmap invalid title");

    expect_fail(kvl_plot_bars(NULL, v, NULL, NULL, 4, NULL, NULL, &err),
                KVL_ERR_ARG, &err, NULL, "bars NULL path");
    expect_fail(kvl_plot_bars(p, NULL, NULL, NULL, 4, NULL, NULL, &err),
                KVL_ERR_ARG, &err, p, "bars NULL value");
    expect_fail(kvl_plot_bars(p, v, NULL, NULL, 0, NULL, NULL, &err),
                KVL_ERR_ARG, &err, p, "bars n 0");
    expect_fail(kvl_plot_bars(p, v, lo, NULL, 4, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "bars lo without hi");
    expect_fail(kvl_plot_bars(p, v, NULL, lo, 4, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "bars hi without lo");
    expect_fail(kvl_plot_bars(p, v, v, lo, 4, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "bars lo > hi");
    expect_fail(kvl_plot_bars(p, inf, NULL, NULL, 2, NULL, NULL, &err),
                KVL_ERR_ARG, &err, p, "bars infinity");
    expect_fail(kvl_plot_bars(p, v, NULL, NULL, 2, nul_label, NULL, &err),
                KVL_ERR_ARG, &err, p, "bars NULL label");

    expect_fail(
        kvl_plot_grouped_bars(p, v, NULL, NULL, 0, 2, NULL, NULL, NULL, &err),
        KVL_ERR_ARG, &err, p, "grouped n_series 0");
    expect_fail(
        kvl_plot_grouped_bars(p, v, NULL, NULL, 2, 0, NULL, NULL, NULL, &err),
        KVL_ERR_ARG, &err, p, "grouped n_groups 0");
    expect_fail(
        kvl_plot_grouped_bars(p, v, NULL, lo, 2, 2, NULL, NULL, NULL, &err),
        KVL_ERR_ARG, &err, p, "grouped hi without lo");
    expect_fail(kvl_plot_grouped_bars(p, v, NULL, NULL, 2, 2, bad_utf8, NULL,
                                      NULL, &err),
                KVL_ERR_ARG, &err, p, "grouped invalid UTF-8 series label");

    expect_fail(kvl_plot_confusion(p, NULL, 2, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "confusion NULL counts");
    expect_fail(kvl_plot_confusion(p, neg, 2, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "confusion negative count");
    expect_fail(kvl_plot_confusion(p, neg, 0, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "confusion n 0");

    expect_fail(kvl_plot_lines(p, NULL, v, 1, 2, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "lines NULL x");
    expect_fail(kvl_plot_lines(p, v, NULL, 1, 2, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "lines NULL y");
    expect_fail(kvl_plot_lines(p, v, v, 0, 2, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "lines n_series 0");
    expect_fail(kvl_plot_lines(p, v, v, 1, -3, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "lines n -3");
    expect_fail(kvl_plot_lines(p, xnan, v, 1, 2, NULL, NULL, &err), KVL_ERR_ARG,
                &err, p, "lines NaN x");

    const char *nodir = "/nonexistent/dir/x.png";
    expect_fail(kvl_plot_heatmap(nodir, v, 2, 2, NULL, NULL, NULL, &err),
                KVL_ERR_IO, &err, nodir, "heatmap unwritable path");
    CHECK(strstr(err.message, nodir) != NULL, "message names the path: %s",
          err.message);
    expect_fail(kvl_plot_bars(nodir, v, NULL, NULL, 4, NULL, NULL, &err),
                KVL_ERR_IO, &err, nodir, "bars unwritable path");
    expect_fail(kvl_plot_grouped_bars(nodir, v, NULL, NULL, 2, 2, NULL, NULL,
                                      NULL, &err),
                KVL_ERR_IO, &err, nodir, "grouped unwritable path");
    expect_fail(kvl_plot_confusion(nodir, neg + 2, 1, NULL, NULL, &err),
                KVL_ERR_IO, &err, nodir, "confusion unwritable path");
    expect_fail(kvl_plot_lines(nodir, v, v, 1, 2, NULL, NULL, &err), KVL_ERR_IO,
                &err, nodir, "lines unwritable path");
    expect_fail(kvl_plot_heatmap(out_dir, v, 2, 2, NULL, NULL, NULL, &err),
                KVL_ERR_IO, &err, NULL, "a directory as the path");

    kvl_plot_target both = {p, (uint8_t *)&err, {0}, {0}};
    expect_fail(kvl_plot_heatmap_to(&both, v, 2, 2, NULL, NULL, NULL, &err),
                KVL_ERR_ARG, &err, p, "target with a path and a buffer");
    CHECK(count_entries(out_dir) == before,
          "failed calls left files behind (%d entries, was %d)",
          count_entries(out_dir), before);
}

/* ---- pixels -------------------------------------------------------------- */

typedef struct raster {
    kvl_plot_target t;
    int w, h;
} raster;

static void raster_init(raster *r, int w, int h)
{
    memset(r, 0, sizeof *r);
    r->w = w;
    r->h = h;
    r->t.rgb = malloc((size_t)w * h * 3);
}

/* Pixel holding the point (x, y) of the data window. */
static const uint8_t *pixel_at(const raster *r, double x, double y)
{
    const double *f = r->t.frame_px, *win = r->t.window;
    double px = f[0] + (x - win[0]) / (win[1] - win[0]) * (f[1] - f[0]);
    double py = f[2] + (win[3] - y) / (win[3] - win[2]) * (f[3] - f[2]);
    int ix = (int)floor(px), iy = (int)floor(py);
    ix = ix < 0 ? 0 : ix >= r->w ? r->w - 1 : ix;
    iy = iy < 0 ? 0 : iy >= r->h ? r->h - 1 : iy;
    return r->t.rgb + ((size_t)iy * r->w + ix) * 3;
}

static const uint8_t *pixel(const raster *r, int x, int y)
{
    return r->t.rgb + ((size_t)y * r->w + x) * 3;
}

static double colour_diff(const uint8_t *p, const double ref[3])
{
    double d = 0;
    for (int c = 0; c < 3; c++)
        d = fmax(d, fabs(p[c] - ref[c]));
    return d;
}

static void json_rgb(json_t *a, double out[3])
{
    for (int c = 0; c < 3; c++)
        out[c] = json_number_value(json_array_get(a, (size_t)c));
}

/* The reported frame is where the drawing is: coming from the white
 * margin, the first inked pixel (frame line or data) lies within a pixel
 * and a half of the left and of the bottom edge. */
static void check_frame(const raster *r, const char *what)
{
    const double *f = r->t.frame_px;
    int ymid = (int)((f[2] + f[3]) / 2), x = (int)lround(f[0]) - 4;
    while (x < r->w - 1 &&
           pixel(r, x, ymid)[0] + pixel(r, x, ymid)[1] + pixel(r, x, ymid)[2] >
               700)
        x++;
    CHECK(fabs(x - f[0]) <= 1.5, "%s: left edge inked at x = %d, reported %g",
          what, x, f[0]);
    int xin = (int)f[0] + 3, y = (int)lround(f[3]) + 4;
    while (y > 0 &&
           pixel(r, xin, y)[0] + pixel(r, xin, y)[1] + pixel(r, xin, y)[2] >
               700)
        y--;
    CHECK(fabs(y - f[3]) <= 1.5, "%s: bottom edge inked at y = %d, reported %g",
          what, y, f[3]);
}

/* Cells (i, j) of a rows x cols map sampled at (fx, fy) within the cell
 * (from its top-left corner) against colours from the fixture. */
static void check_cells(const raster *r, int rows, int cols, json_t *rgb,
                        double fx, double fy, const char *what)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            json_t *want = json_array_get(rgb, (size_t)(i * cols + j));
            const uint8_t *p = pixel_at(r, j + fx, rows - i - fy);
            double ref[3] = {255, 255, 255}; /* NaN: blank page */
            if (!json_is_null(want))
                json_rgb(want, ref);
            /* viridis entries are rounded to 8 bits (0.5) and cairo
             * composes in 8 bits: 2 levels is ample. */
            CHECK(colour_diff(p, ref) <= 2.0,
                  "%s cell (%d,%d): got %d %d %d, matplotlib %.1f %.1f %.1f",
                  what, i, j, p[0], p[1], p[2], ref[0], ref[1], ref[2]);
        }
}

static void pixels_heatmap(json_t *fx)
{
    json_t *h = json_object_get(fx, "heatmap");
    int rows = (int)json_integer_value(json_object_get(h, "rows"));
    int cols = (int)json_integer_value(json_object_get(h, "cols"));
    double z[64];
    json_t *zj = json_object_get(h, "z");
    for (int k = 0; k < rows * cols; k++) {
        json_t *v = json_array_get(zj, (size_t)k);
        z[k] = json_is_null(v) ? NAN : json_number_value(v);
    }
    raster r;
    raster_init(&r, 600, 400);
    kvl_plot_style st = {"pixels", "x", "y", 600, 400};
    kvl_error err;
    CHECK_OK(kvl_plot_heatmap_to(&r.t, z, rows, cols, NULL, NULL, &st, &err),
             &err);
    const double *win = r.t.window;
    CHECK(win[0] == 0 && win[1] == cols && win[2] == 0 && win[3] == rows,
          "heatmap window %g %g %g %g", win[0], win[1], win[2], win[3]);
    check_frame(&r, "heatmap");
    check_cells(&r, rows, cols, json_object_get(h, "rgb"), 0.5, 0.5, "heatmap");
    free(r.t.rgb);
}

static void pixels_confusion(json_t *fx)
{
    json_t *c = json_object_get(fx, "confusion");
    int n = (int)json_integer_value(json_object_get(c, "n"));
    int64_t counts[16];
    for (int k = 0; k < n * n; k++)
        counts[k] = json_integer_value(
            json_array_get(json_object_get(c, "counts"), (size_t)k));
    raster r;
    raster_init(&r, 500, 450);
    kvl_plot_style st = {NULL, NULL, NULL, 500, 450};
    kvl_error err;
    CHECK_OK(kvl_plot_confusion_to(&r.t, counts, n, NULL, &st, &err), &err);
    check_frame(&r, "confusion");
    /* Off the centre, where the count is written. */
    check_cells(&r, n, n, json_object_get(c, "rgb"), 0.15, 0.15, "confusion");
    free(r.t.rgb);
}

/* Top of the run of `ref`-coloured pixels at column x going up from y0. */
static double run_top(const raster *r, int x, int y0, const double ref[3])
{
    int y = y0;
    while (y > 0 && colour_diff(pixel(r, x, y - 1), ref) < 40)
        y--;
    return y;
}

static double px_of_y(const raster *r, double y)
{
    const double *f = r->t.frame_px, *win = r->t.window;
    return f[2] + (win[3] - y) / (win[3] - win[2]) * (f[3] - f[2]);
}

static int px_of_x(const raster *r, double x)
{
    const double *f = r->t.frame_px, *win = r->t.window;
    return (int)floor(f[0] + (x - win[0]) / (win[1] - win[0]) * (f[1] - f[0]));
}

static void pixels_bars(json_t *fx)
{
    double blue[3];
    json_rgb(json_array_get(json_object_get(fx, "tab10"), 0), blue);
    const double v[3] = {1.0, 2.5, 4.0};
    const double lo[3] = {0.8, 2.0, 3.5}, hi[3] = {1.2, 3.0, 4.6};
    raster r;
    raster_init(&r, 600, 400);
    kvl_plot_style st = {"bars", NULL, "value", 600, 400};
    kvl_error err;
    CHECK_OK(kvl_plot_bars_to(&r.t, v, lo, hi, 3, NULL, &st, &err), &err);
    check_frame(&r, "bars");
    CHECK(r.t.window[2] == 0.0, "bars start at the bottom: ymin %g",
          r.t.window[2]);
    double base = px_of_y(&r, 0.0), h0 = 0;
    for (int i = 0; i < 3; i++) {
        /* Beside the whisker, which runs up the middle of the bar. */
        int x = px_of_x(&r, i + 0.2);
        const uint8_t *mid = pixel_at(&r, i + 0.2, v[i] / 2);
        CHECK(colour_diff(mid, blue) <= 2.0, "bar %d colour %d %d %d", i,
              mid[0], mid[1], mid[2]);
        double top = run_top(&r, x, (int)base - 2, blue);
        CHECK(fabs(top - px_of_y(&r, v[i])) <= 1.5,
              "bar %d top at %g px, value %g at %g px", i, top, v[i],
              px_of_y(&r, v[i]));
        double hpx = base - top;
        if (i == 0)
            h0 = hpx;
        else
            CHECK(fabs(hpx / h0 - v[i] / v[0]) < 0.02 * v[i] / v[0],
                  "bar %d height ratio %g, values %g", i, hpx / h0,
                  v[i] / v[0]);
        /* Whisker: dark from hi down to lo in the middle of the bar. */
        int xc = px_of_x(&r, i);
        int first_dark = -1;
        for (int y = (int)r.t.frame_px[2] + 2; y < base && first_dark < 0;
             y++) {
            const uint8_t *p = pixel(&r, xc, y);
            if (p[0] + p[1] + p[2] < 300)
                first_dark = y;
        }
        CHECK(fabs(first_dark - px_of_y(&r, hi[i])) <= 2.0,
              "whisker %d top at %d px, hi at %g px", i, first_dark,
              px_of_y(&r, hi[i]));
        const uint8_t *w = pixel(&r, xc, (int)px_of_y(&r, (lo[i] + v[i]) / 2));
        CHECK(w[0] + w[1] + w[2] < 300, "whisker %d missing below the value",
              i);
    }
    free(r.t.rgb);
}

/* Grouped bars: scanning a row just above zero meets the series colours
 * in order, group by group, and each bar's top matches its value. */
static void pixels_grouped(json_t *fx)
{
    double col[2][3];
    json_rgb(json_array_get(json_object_get(fx, "tab10"), 0), col[0]);
    json_rgb(json_array_get(json_object_get(fx, "tab10"), 1), col[1]);
    const double v[6] = {1, 2, 3, 3, 2, 1}; /* [series][group] */
    raster r;
    raster_init(&r, 700, 400);
    kvl_plot_style st = {NULL, NULL, NULL, 700, 400};
    const char *const names[2] = {"a", "b"};
    kvl_error err;
    CHECK_OK(kvl_plot_grouped_bars_to(&r.t, v, NULL, NULL, 2, 3, names, NULL,
                                      &st, &err),
             &err);
    int y = (int)px_of_y(&r, 0.5);
    int seq[16], starts[16], ends[16], n = 0, cur = -1;
    for (int x = (int)r.t.frame_px[0]; x < (int)r.t.frame_px[1]; x++) {
        int c = colour_diff(pixel(&r, x, y), col[0]) < 3   ? 0
                : colour_diff(pixel(&r, x, y), col[1]) < 3 ? 1
                                                           : -1;
        if (c >= 0 && c != cur && n < 16) {
            seq[n] = c;
            starts[n] = x;
            n++;
        }
        if (c >= 0)
            ends[n - 1] = x;
        cur = c;
    }
    CHECK(n == 6, "grouped: %d coloured runs, want 6", n);
    for (int k = 0; k < n && k < 6; k++) {
        CHECK(seq[k] == k % 2, "grouped run %d has series %d", k, seq[k]);
        CHECK(ends[k] - starts[k] > 10, "grouped run %d is %d px wide", k,
              ends[k] - starts[k]);
        int s = k % 2, g = k / 2;
        double val = v[s * 3 + g];
        double top = run_top(&r, (starts[k] + ends[k]) / 2, y, col[s]);
        CHECK(fabs(top - px_of_y(&r, val)) <= 1.5,
              "grouped bar s%d g%d top %g px, want %g", s, g, top,
              px_of_y(&r, val));
    }
    free(r.t.rgb);
}

/* A point within `radius` px of the data point (x, y) has colour ref. */
static bool colour_near(const raster *r, double x, double y,
                        const double ref[3], int radius, double tol)
{
    const double *f = r->t.frame_px, *win = r->t.window;
    int cx =
        (int)floor(f[0] + (x - win[0]) / (win[1] - win[0]) * (f[1] - f[0]));
    int cy = (int)floor(px_of_y(r, y));
    for (int dy = -radius; dy <= radius; dy++)
        for (int dx = -radius; dx <= radius; dx++) {
            int px = cx + dx, py = cy + dy;
            if (px >= 0 && py >= 0 && px < r->w && py < r->h &&
                colour_diff(pixel(r, px, py), ref) <= tol)
                return true;
        }
    return false;
}

static void pixels_lines(json_t *fx)
{
    double blue[3], orange[3];
    json_rgb(json_array_get(json_object_get(fx, "tab10"), 0), blue);
    json_rgb(json_array_get(json_object_get(fx, "tab10"), 1), orange);
    const double x[5] = {0, 1, 2, 3, 4};
    const double y[10] = {0, 1, 4, 9, 16, 16, 12, 8, 4, 0};
    raster r;
    raster_init(&r, 600, 400);
    kvl_plot_style st = {"lines", "x", "y", 600, 400};
    kvl_error err;
    CHECK_OK(kvl_plot_lines_to(&r.t, x, y, 2, 5, NULL, &st, &err), &err);
    check_frame(&r, "lines");
    const double *w = r.t.window;
    CHECK(w[0] < 0 && w[1] > 4 && w[2] < 0 && w[3] > 16,
          "lines window %g %g %g %g holds the data", w[0], w[1], w[2], w[3]);
    for (int i = 0; i < 5; i++) {
        CHECK(colour_near(&r, x[i], y[i], blue, 1, 2.0),
              "series 0 marker missing at (%g, %g)", x[i], y[i]);
        CHECK(colour_near(&r, x[i], y[5 + i], orange, 1, 2.0),
              "series 1 marker missing at (%g, %g)", x[i], y[5 + i]);
    }
    /* On the segment (1,1)-(2,4) at its middle, and well off it. */
    CHECK(colour_near(&r, 1.5, 2.5, blue, 1, 30.0), "no line between markers");
    CHECK(!colour_near(&r, 1.5, 10.0, blue, 2, 60.0), "blue far from the line");
    free(r.t.rgb);
}

/* ---- main ---------------------------------------------------------------- */

int main(void)
{
    const char *ex = getenv("KVL_PLOT_EXAMPLES");
    bool examples = ex && strcmp(ex, "1") == 0;
    if (examples) {
        snprintf(out_dir, sizeof out_dir, "/tmp/plot-examples");
        mkdir(out_dir, 0755);
    } else {
        snprintf(out_dir, sizeof out_dir, "/tmp/kvlab-plot-XXXXXX");
        if (!mkdtemp(out_dir))
            return kvt_skip("cannot make a temporary folder");
    }
    json_error_t jerr;
    json_t *fx = json_load_file(
        kvt_source_path("tests/fixtures/report/plot_reference.json"), 0, &jerr);
    CHECK(fx != NULL, "fixture: %s", jerr.text);

    capture cap;
    capture_begin(&cap);
    typical_heatmap();
    typical_bars();
    typical_grouped();
    typical_confusion();
    typical_lines();
    edge_cases();
    bad_input();
    if (fx) {
        pixels_heatmap(fx);
        pixels_confusion(fx);
        pixels_bars(fx);
        pixels_grouped(fx);
        pixels_lines(fx);
    }
    long printed = capture_end(&cap);
    CHECK(printed == 0, "the plot calls printed %ld bytes", printed);
    json_decref(fx);

    if (!examples) {
        DIR *d = opendir(out_dir);
        for (struct dirent *e; d && (e = readdir(d));)
            if (e->d_name[0] != '.')
                unlink(out_path(e->d_name));
        if (d)
            closedir(d);
        rmdir(out_dir);
    }
    return kvt_finish();
}
