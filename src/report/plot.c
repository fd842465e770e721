/* Report figures drawn with PLplot's cairo drivers (see report/plot.h).
 *
 * Each figure is one PLplot stream: created with plmkstrm(), set up, drawn
 * and closed with plend1(), after which the caller's stream is current
 * again.  PLplot reports trouble in two ways.  plabort() is recoverable:
 * with plsError() set it writes the message into our buffer instead of
 * printing it.  plexit() is fatal: it prints and calls exit() after
 * running the user's exit handler, so our handler longjmps back into
 * render().  It finds the jump buffer through the current stream's error
 * message pointer, which plsError() pointed into our context, so no
 * global of ours is needed.
 *
 * What PLplot would otherwise print or prompt for is avoided up front: the
 * output file is opened here and handed over with plsfile() (PLplot asks
 * on stdin for another name when it cannot open one), the driver is
 * looked up with plgDevs() (an unknown device makes plinit() ask which
 * one), and no call gets an argument PLplot warns about on stderr (e.g.
 * plcol1() outside [0, 1]).
 *
 * Layout works in millimetres of the PLplot page; text widths are
 * estimated from DejaVu Sans advance widths because PLplot's own string
 * measurement (plstrl) is not exported. */
#include "report/plot_internal.h"

#include "core/error.h"

#include <plplot.h>
#include <plstrm.h> /* plgpls(): the current stream, to reach our context */

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_WIDTH 900
#define DEFAULT_HEIGHT 600
#define MIN_SIDE 200
#define MAX_SIDE 8000
#define MAX_ITEMS 100000    /* bars, groups, series, points */
#define MAX_SIDE_CELLS 4096 /* heatmap rows or columns */
#define MAX_CELLS (1 << 20) /* heatmap cells */
#define MAX_TEXT_BYTES 4096 /* one label or title */
#define MAX_ABS 1e100       /* larger values overflow the axis arithmetic */
#define MAX_MARKED 200      /* longer series are drawn without markers */
#define LABEL_CP 24         /* tick and legend labels are cut to this many */
#define TITLE_CP 100        /* characters; titles to this many */
/* Escaped text: '#' doubles, a character is at most 4 bytes, "…" + NUL. */
#define TEXT_BUF (4 * TITLE_CP + 8)
/* Font size in pixels for a 600-pixel side, grown with the square root of
 * the shorter side and kept within [11, 26] pixels so small figures stay
 * legible (PLplot's own default scales text linearly with the page). */
#define EM_PX_600 16.0
#define EM_PX_MIN 11.0
#define EM_PX_MAX 26.0
#define TITLE_SCALE 1.2 /* title size relative to the other text */
/* Font size (em) per PLplot character height with the cairo driver,
 * measured from pllegend() widths of DejaVu Sans digits (0.636 em). */
#define EM_PER_CH 1.36

/* cmap0 slots. */
enum {
    COL_BG,
    COL_FG,
    COL_GRID,
    COL_WHISKER,
    COL_WHITE,
    COL_SERIES, /* COL_SERIES + k: the k-th series colour */
    N_SERIES_COLOURS = 10,
    N_CMAP0 = 16
};

/* White background, near-black ink, light grid, then matplotlib's tab10. */
static const uint32_t cmap0_rgb[N_CMAP0] = {
    0xffffff, 0x262626, 0xe0e0e0, 0x303030, 0xffffff, 0x1f77b4,
    0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2,
    0x7f7f7f, 0xbcbd22, 0x17becf, 0x000000,
};

/* matplotlib's viridis, its 256 entries rounded to 8 bits: cmap1, so
 * plcol1(t) picks entry floor(256 t) exactly as matplotlib does. */
static const uint32_t viridis[256] = {
    0x440154, 0x440256, 0x450457, 0x450559, 0x46075a, 0x46085c, 0x460a5d,
    0x460b5e, 0x470d60, 0x470e61, 0x471063, 0x471164, 0x471365, 0x481467,
    0x481668, 0x481769, 0x48186a, 0x481a6c, 0x481b6d, 0x481c6e, 0x481d6f,
    0x481f70, 0x482071, 0x482173, 0x482374, 0x482475, 0x482576, 0x482677,
    0x482878, 0x482979, 0x472a7a, 0x472c7a, 0x472d7b, 0x472e7c, 0x472f7d,
    0x46307e, 0x46327e, 0x46337f, 0x463480, 0x453581, 0x453781, 0x453882,
    0x443983, 0x443a83, 0x443b84, 0x433d84, 0x433e85, 0x423f85, 0x424086,
    0x424186, 0x414287, 0x414487, 0x404588, 0x404688, 0x3f4788, 0x3f4889,
    0x3e4989, 0x3e4a89, 0x3e4c8a, 0x3d4d8a, 0x3d4e8a, 0x3c4f8a, 0x3c508b,
    0x3b518b, 0x3b528b, 0x3a538b, 0x3a548c, 0x39558c, 0x39568c, 0x38588c,
    0x38598c, 0x375a8c, 0x375b8d, 0x365c8d, 0x365d8d, 0x355e8d, 0x355f8d,
    0x34608d, 0x34618d, 0x33628d, 0x33638d, 0x32648e, 0x32658e, 0x31668e,
    0x31678e, 0x31688e, 0x30698e, 0x306a8e, 0x2f6b8e, 0x2f6c8e, 0x2e6d8e,
    0x2e6e8e, 0x2e6f8e, 0x2d708e, 0x2d718e, 0x2c718e, 0x2c728e, 0x2c738e,
    0x2b748e, 0x2b758e, 0x2a768e, 0x2a778e, 0x2a788e, 0x29798e, 0x297a8e,
    0x297b8e, 0x287c8e, 0x287d8e, 0x277e8e, 0x277f8e, 0x27808e, 0x26818e,
    0x26828e, 0x26828e, 0x25838e, 0x25848e, 0x25858e, 0x24868e, 0x24878e,
    0x23888e, 0x23898e, 0x238a8d, 0x228b8d, 0x228c8d, 0x228d8d, 0x218e8d,
    0x218f8d, 0x21908d, 0x21918c, 0x20928c, 0x20928c, 0x20938c, 0x1f948c,
    0x1f958b, 0x1f968b, 0x1f978b, 0x1f988b, 0x1f998a, 0x1f9a8a, 0x1e9b8a,
    0x1e9c89, 0x1e9d89, 0x1f9e89, 0x1f9f88, 0x1fa088, 0x1fa188, 0x1fa187,
    0x1fa287, 0x20a386, 0x20a486, 0x21a585, 0x21a685, 0x22a785, 0x22a884,
    0x23a983, 0x24aa83, 0x25ab82, 0x25ac82, 0x26ad81, 0x27ad81, 0x28ae80,
    0x29af7f, 0x2ab07f, 0x2cb17e, 0x2db27d, 0x2eb37c, 0x2fb47c, 0x31b57b,
    0x32b67a, 0x34b679, 0x35b779, 0x37b878, 0x38b977, 0x3aba76, 0x3bbb75,
    0x3dbc74, 0x3fbc73, 0x40bd72, 0x42be71, 0x44bf70, 0x46c06f, 0x48c16e,
    0x4ac16d, 0x4cc26c, 0x4ec36b, 0x50c46a, 0x52c569, 0x54c568, 0x56c667,
    0x58c765, 0x5ac864, 0x5cc863, 0x5ec962, 0x60ca60, 0x63cb5f, 0x65cb5e,
    0x67cc5c, 0x69cd5b, 0x6ccd5a, 0x6ece58, 0x70cf57, 0x73d056, 0x75d054,
    0x77d153, 0x7ad151, 0x7cd250, 0x7fd34e, 0x81d34d, 0x84d44b, 0x86d549,
    0x89d548, 0x8bd646, 0x8ed645, 0x90d743, 0x93d741, 0x95d840, 0x98d83e,
    0x9bd93c, 0x9dd93b, 0xa0da39, 0xa2da37, 0xa5db36, 0xa8db34, 0xaadc32,
    0xaddc30, 0xb0dd2f, 0xb2dd2d, 0xb5de2b, 0xb8de29, 0xbade28, 0xbddf26,
    0xc0df25, 0xc2df23, 0xc5e021, 0xc8e020, 0xcae11f, 0xcde11d, 0xd0e11c,
    0xd2e21b, 0xd5e21a, 0xd8e219, 0xdae319, 0xdde318, 0xdfe318, 0xe2e418,
    0xe5e419, 0xe7e419, 0xeae51a, 0xece51b, 0xefe51c, 0xf1e51d, 0xf4e61e,
    0xf6e620, 0xf8e621, 0xfbe723, 0xfde725,
};

/* Markers of the line plot, drawn as text so the legend matches. */
static const char *const markers[] = {"\xe2\x97\x8f", "\xe2\x96\xa0",
                                      "\xe2\x96\xb2", "\xe2\x97\x86",
                                      "\xe2\x96\xbc"}; /* ● ■ ▲ ◆ ▼ */
#define N_MARKERS (sizeof markers / sizeof markers[0])

/* ---- text ---------------------------------------------------------------- */

/* Bytes of the UTF-8 sequence that starts with c; 0 if none can. */
static int utf8_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

/* Strict UTF-8: no overlong forms, surrogates or values past U+10FFFF
 * (PLplot's decoder would draw garbage or read past the end). */
static bool utf8_valid(const char *s)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = utf8_seq_len(*p);
        if (!n)
            return false;
        uint32_t cp = n == 1 ? *p : (uint32_t)(*p & (0x7f >> n));
        for (int i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n;
    }
    return true;
}

/* Advance width of one character in em, from DejaVu Sans (rounded up a
 * little so estimates err towards more room). */
static double glyph_em(const unsigned char *p, int n)
{
    unsigned char c = *p;
    if (n > 1)
        return 0.8;
    if (c >= 'A' && c <= 'Z')
        return c == 'I' ? 0.32 : (c == 'M' || c == 'W') ? 1.0 : 0.76;
    if (c >= 'a' && c <= 'z')
        return strchr("fijlrt", c)      ? 0.42
               : (c == 'm' || c == 'w') ? 0.98
                                        : 0.64;
    if (c >= '0' && c <= '9')
        return 0.64;
    if (strchr(" .,:;'|!()[]-/", c))
        return 0.4;
    return 0.84;
}

/* Estimated width in em of s as drawn after cutting to max_cp characters. */
static double text_em(const char *s, int max_cp)
{
    const unsigned char *p = (const unsigned char *)s;
    double w = 0;
    for (int cp = 0; *p; cp++) {
        if (cp == max_cp)
            return w + 1.0; /* the ellipsis */
        int n = utf8_seq_len(*p);
        w += glyph_em(p, n);
        p += n;
    }
    return w;
}

/* How many characters of s, at most max_cp, fit in max_em when a cut
 * text ends in "…". */
static int fit_chars(const char *s, int max_cp, double max_em)
{
    if (text_em(s, max_cp) <= max_em)
        return max_cp;
    const unsigned char *p = (const unsigned char *)s;
    double w = 1.0; /* the ellipsis */
    int cp = 0;
    while (*p && cp < max_cp) {
        int n = utf8_seq_len(*p);
        w += glyph_em(p, n);
        if (w > max_em)
            break;
        p += n;
        cp++;
    }
    return cp > 0 ? cp : 1;
}

/* s (valid UTF-8) made ready for PLplot in buf[TEXT_BUF]: '#', PLplot's
 * escape character, doubled, and cut to max_cp characters + "…". */
static const char *pl_text(const char *s, int max_cp, char *buf)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    for (int cp = 0; *p && cp < max_cp; cp++) {
        int n = utf8_seq_len(*p);
        if (*p == '#')
            buf[o++] = '#';
        memcpy(buf + o, p, (size_t)n);
        o += (size_t)n;
        p += n;
    }
    if (*p) {
        memcpy(buf + o, "\xe2\x80\xa6", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* Label i: labels[i] cut to fit max_em, or prefix + the index when
 * labels is NULL. */
static const char *label_at(const char *const *labels, const char *prefix,
                            int32_t i, double max_em, char *buf)
{
    if (labels)
        return pl_text(labels[i], fit_chars(labels[i], LABEL_CP, max_em), buf);
    snprintf(buf, TEXT_BUF, "%s%d", prefix, (int)i);
    return buf;
}

static double max_label_em(const char *const *labels, const char *prefix,
                           int32_t n)
{
    double w = 0;
    char buf[TEXT_BUF];
    for (int32_t i = 0; i < n; i++) {
        double e = labels
                       ? text_em(labels[i], LABEL_CP)
                       : text_em(label_at(NULL, prefix, i, 0, buf), LABEL_CP);
        w = fmax(w, e);
    }
    return w;
}

/* ---- argument checks ----------------------------------------------------- */

static kvl_status check_text(const char *s, const char *fn, const char *what,
                             kvl_error *err)
{
    if (strnlen(s, MAX_TEXT_BYTES + 1) > MAX_TEXT_BYTES)
        return kvl_fail(err, KVL_ERR_ARG, "%s: %s is longer than %d bytes", fn,
                        what, MAX_TEXT_BYTES);
    if (!utf8_valid(s))
        return kvl_fail(err, KVL_ERR_ARG, "%s: %s is not valid UTF-8", fn,
                        what);
    return KVL_OK;
}

/* A copy of style (NULL: all defaults) with the size filled in and empty
 * strings turned into NULL, so "no title" needs no room. */
static kvl_status resolve_style(const kvl_plot_style *style, const char *fn,
                                kvl_plot_style *out, kvl_error *err)
{
    kvl_plot_style s = {0};
    if (style)
        s = *style;
    if (s.width == 0)
        s.width = DEFAULT_WIDTH;
    if (s.height == 0)
        s.height = DEFAULT_HEIGHT;
    if (s.width < MIN_SIDE || s.width > MAX_SIDE || s.height < MIN_SIDE ||
        s.height > MAX_SIDE)
        return kvl_fail(err, KVL_ERR_ARG,
                        "%s: image size %dx%d is outside [%d, %d] pixels", fn,
                        (int)s.width, (int)s.height, MIN_SIDE, MAX_SIDE);
    const char **texts[3] = {&s.title, &s.xlabel, &s.ylabel};
    static const char *const names[3] = {"style title", "style xlabel",
                                         "style ylabel"};
    for (int i = 0; i < 3; i++) {
        if (*texts[i] && !**texts[i])
            *texts[i] = NULL;
        kvl_status st =
            *texts[i] ? check_text(*texts[i], fn, names[i], err) : KVL_OK;
        if (st != KVL_OK)
            return st;
    }
    *out = s;
    return KVL_OK;
}

static kvl_status check_labels(const char *const *labels, int32_t n,
                               const char *fn, const char *what, kvl_error *err)
{
    for (int32_t i = 0; labels && i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s[%d]", what, (int)i);
        if (!labels[i])
            return kvl_fail(err, KVL_ERR_ARG, "%s: %s is NULL", fn, name);
        kvl_status st = check_text(labels[i], fn, name, err);
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

static kvl_status check_count(int32_t n, int32_t max, const char *fn,
                              const char *what, kvl_error *err)
{
    if (n <= 0)
        return kvl_fail(err, KVL_ERR_ARG, "%s: %s must be positive, got %d", fn,
                        what, (int)n);
    if (n > max)
        return kvl_fail(err, KVL_ERR_ARG, "%s: %s = %d is more than %d", fn,
                        what, (int)n, (int)max);
    return KVL_OK;
}

/* NaN is allowed (a missing value); infinities and values too large for
 * the axis arithmetic are not. */
static kvl_status check_values(const double *v, size_t n, const char *fn,
                               const char *what, kvl_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]) && !(fabs(v[i]) <= MAX_ABS))
            return kvl_fail(err, KVL_ERR_ARG,
                            "%s: %s[%zu] = %g cannot be plotted", fn, what, i,
                            v[i]);
    return KVL_OK;
}

static kvl_status check_target(const kvl_plot_target *t, const char *fn,
                               kvl_error *err)
{
    if (!t)
        return kvl_fail(err, KVL_ERR_ARG, "%s: target is NULL", fn);
    if (!t->png_path == !t->rgb)
        return kvl_fail(err, KVL_ERR_ARG,
                        "%s: give exactly one of a PNG path and an RGB buffer",
                        fn);
    if (t->png_path && !*t->png_path)
        return kvl_fail(err, KVL_ERR_ARG, "%s: png_path is empty", fn);
    return KVL_OK;
}

/* ---- ranges and ticks ---------------------------------------------------- */

typedef struct axis {
    double lo, hi, step; /* data range and tick spacing */
} axis;

/* Finite minimum and maximum of v[n]; false when there is none. */
static bool finite_range(const double *v, size_t n, double *lo, double *hi)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i]))
            continue;
        *lo = any ? fmin(*lo, v[i]) : v[i];
        *hi = any ? fmax(*hi, v[i]) : v[i];
        any = true;
    }
    return any;
}

/* A zero-width range (or one too narrow for the axis arithmetic) is
 * widened around its value so it can be drawn. */
static void widen_flat(double *lo, double *hi)
{
    if (*hi - *lo > 1e-12 * fmax(fabs(*lo), fabs(*hi)))
        return;
    double d = *lo != 0 ? 0.05 * fabs(*lo) : 0.5;
    *lo -= d;
    *hi += d;
}

/* A 1-2-5 tick spacing giving about `target` intervals over [lo, hi]. */
static axis make_axis(double lo, double hi, int target)
{
    double raw = (hi - lo) / target;
    double mag = pow(10.0, floor(log10(raw)));
    double r = raw / mag;
    double m = r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10;
    return (axis){lo, hi, m * mag};
}

/* Tick label of v with as many decimals as the spacing needs. */
static void format_tick(double v, double step, char *buf, size_t cap)
{
    if (fabs(v) < 1e-9 * step)
        v = 0.0; /* no "-0.0" from rounding */
    int dec = step >= 1.0 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < 1e6 && dec <= 4) {
        snprintf(buf, cap, "%.*f", dec, v);
        return;
    }
    /* Exponent form with the significant digits that tell ticks apart. */
    int prec = (int)ceil(log10(fmax(fabs(v), step) / step) - 1e-9) + 1;
    snprintf(buf, cap, "%.*g", prec < 1 ? 1 : prec > 15 ? 15 : prec, v);
}

/* The k-th tick of a, k from 0, or NAN past the end. */
static double tick_at(const axis *a, int k)
{
    double first = ceil(a->lo / a->step - 1e-9);
    double v = (first + k) * a->step;
    return v <= a->hi + 1e-9 * a->step && k < 100 ? v : NAN;
}

static double max_tick_em(const axis *a)
{
    char buf[64];
    double w = 0;
    for (int k = 0; !isnan(tick_at(a, k)); k++) {
        format_tick(tick_at(a, k), a->step, buf, sizeof buf);
        w = fmax(w, text_em(buf, LABEL_CP));
    }
    return w;
}

/* PLplot label callback for the colour bar's axis (data: the axis). */
static void tick_label(PLINT which, PLFLT value, char *label, PLINT length,
                       PLPointer data)
{
    (void)which;
    format_tick(value, ((const axis *)data)->step, label, (size_t)length);
}

/* ---- page layout --------------------------------------------------------- */

typedef struct page {
    double w, h;  /* page size, mm */
    double ch;    /* character height of the text, mm */
    double em;    /* font size of the text, mm */
    double scale; /* that size relative to PLplot's default (plschr) */
} page;

/* Called with the text size of setup_stream() in effect. */
static page page_get(void)
{
    PLFLT x0, x1, y0, y1, def, ht;
    plgspa(&x0, &x1, &y0, &y1);
    plgchr(&def, &ht);
    return (page){x1 - x0, y1 - y0, ht, ht * EM_PER_CH, ht / def};
}

/* Viewport from margins in mm, scaled down when they would leave the data
 * less than 40% of the page either way. */
static void set_margins(const page *p, double left, double right, double bottom,
                        double top)
{
    double room_x = 0.6 * p->w, room_y = 0.6 * p->h;
    double sx = left + right > room_x ? room_x / (left + right) : 1.0;
    double sy = bottom + top > room_y ? room_y / (bottom + top) : 1.0;
    plvpor(left * sx / p->w, 1.0 - right * sx / p->w, bottom * sy / p->h,
           1.0 - top * sy / p->h);
}

/* Viewport width and height in mm. */
static void viewport_mm(const page *p, double *w, double *h)
{
    PLFLT x0, x1, y0, y1;
    plgvpd(&x0, &x1, &y0, &y1);
    *w = (x1 - x0) * p->w;
    *h = (y1 - y0) * p->h;
}

/* 1, 2, 5, 10, 20, 50, ...: the smallest that is at least k. */
static int32_t nice_stride(double k)
{
    static const int32_t steps[3] = {1, 2, 5};
    for (int32_t m = 1; m <= 100000000; m *= 10)
        for (int i = 0; i < 3; i++)
            if (steps[i] * m >= k)
                return steps[i] * m;
    return 1000000000;
}

/* Every how many-th of n labels, each needing `need` mm along an axis of
 * `span` mm, to write so they do not overlap (0, 5, 10, ... rather than
 * 0, 3, 6, ...). */
static int32_t label_stride(int32_t n, double need, double span)
{
    return nice_stride(need / (span / n));
}

/* Categorical labels under the data: horizontal when the widest fits in
 * its slot or the labels are indices (then thinned), else vertical.
 * extent: mm they take below the axis. */
typedef struct cat_axis {
    bool vertical;
    double widest; /* mm */
    double extent;
} cat_axis;

static cat_axis cat_layout(const page *p, const char *const *labels, int32_t n,
                           double span_mm)
{
    cat_axis c;
    c.widest = max_label_em(labels, "", n) * p->em;
    c.vertical = labels && c.widest + 0.8 * p->ch > span_mm / n;
    if (c.vertical) /* long labels are cut rather than squash the data */
        c.widest = fmin(c.widest, 0.25 * p->h);
    c.extent = c.vertical ? 0.6 * p->ch + c.widest : 1.8 * p->ch;
    return c;
}

/* Writes labels under the data, label i centred at x = i in a window
 * [x0, x1] (the caller shifts heatmap cells so their centres fall there). */
static void draw_cat_labels(const cat_axis *c, const char *const *labels,
                            int32_t n, double x0, double x1)
{
    page p = page_get();
    double w, h;
    viewport_mm(&p, &w, &h);
    double need = c->vertical ? 1.5 * p.ch : c->widest + 0.8 * p.ch;
    int32_t stride = label_stride(n, need, w);
    char buf[TEXT_BUF];
    for (int32_t i = 0; i < n; i += stride) {
        double pos = ((double)i - x0) / (x1 - x0);
        const char *t = label_at(labels, "", i, c->widest / p.em + 0.01, buf);
        if (c->vertical)
            plmtex("bv", 0.6, pos, 1.0, t);
        else
            plmtex("b", 1.1, pos, 0.5, t);
    }
}

/* Numeric tick labels along the bottom (x) or left (y) of the data. */
static void draw_tick_labels(const axis *a, bool x_axis)
{
    char buf[64];
    for (int k = 0; !isnan(tick_at(a, k)); k++) {
        double v = tick_at(a, k);
        double pos = (v - a->lo) / (a->hi - a->lo);
        format_tick(v, a->step, buf, sizeof buf);
        if (x_axis)
            plmtex("b", 1.1, pos, 0.5, buf);
        else
            plmtex("lv", 0.6, pos, 1.0, buf);
    }
}

/* Room (mm) for the x-axis title under labels of the given extent. */
static double bottom_margin(const page *p, const kvl_plot_style *st,
                            double extent)
{
    return extent + (st->xlabel ? 2.4 * p->ch : 0.6 * p->ch);
}

static double left_margin(const page *p, const kvl_plot_style *st,
                          double extent)
{
    return extent + (st->ylabel ? 2.4 * p->ch : 0.6 * p->ch);
}

static double top_margin(const page *p, const kvl_plot_style *st)
{
    return st->title ? 3.0 * p->ch : 1.2 * p->ch;
}

/* Title above the data; axis titles beyond labels of the given extents. */
static void draw_titles(const page *p, const kvl_plot_style *st,
                        double x_extent, double y_extent)
{
    char buf[TEXT_BUF];
    double vw, vh;
    viewport_mm(p, &vw, &vh);
    plcol0(COL_FG);
    if (st->xlabel)
        plmtex("b", x_extent / p->ch + 1.3, 0.5, 0.5,
               pl_text(st->xlabel, fit_chars(st->xlabel, TITLE_CP, vw / p->em),
                       buf));
    if (st->ylabel)
        plmtex("l", y_extent / p->ch + 1.3, 0.5, 0.5,
               pl_text(st->ylabel, fit_chars(st->ylabel, TITLE_CP, vh / p->em),
                       buf));
    if (st->title) {
        double room = 0.96 * p->w / (p->em * TITLE_SCALE);
        PLFLT vx0, vx1, vy0, vy1;
        plgvpd(&vx0, &vx1, &vy0, &vy1);
        /* Centred over the data, or over the page when it is wider than
         * the data (plmtex positions are relative to the viewport). */
        bool wide = text_em(st->title, TITLE_CP) * p->em * TITLE_SCALE > vw;
        double pos = wide ? (0.5 - vx0) / (vx1 - vx0) : 0.5;
        plschr(0.0, p->scale * TITLE_SCALE);
        plmtex("t", 1.0, pos, 0.5,
               pl_text(st->title, fit_chars(st->title, TITLE_CP, room), buf));
        plschr(0.0, p->scale);
    }
}

/* ---- legend -------------------------------------------------------------- */

#define LEGEND_SYMBOL_MM(p) (3.0 * (p)->ch)

/* Longest legend text, mm: a quarter of the page. */
static double legend_text_mm(const page *p)
{
    return 0.25 * p->w;
}

/* Width (mm) right of the data that a legend of these entries needs. */
static double legend_margin(const page *p, const char *const *labels, int32_t n)
{
    return 1.0 * p->ch + LEGEND_SYMBOL_MM(p) + 2.5 * p->ch +
           fmin(max_label_em(labels, "series ", n) * p->em, legend_text_mm(p));
}

/* A legend right of the data, centred vertically: colour boxes (bars) or lines
 * with markers.  Its arrays are small fixed-size: callers cap n_series. */
static void draw_legend(const page *p, const char *const *labels, int32_t n,
                        bool lines)
{
    enum { MAX_LEGEND = 64 };
    PLINT opt[MAX_LEGEND], col[MAX_LEGEND], ink[MAX_LEGEND], pat[MAX_LEGEND];
    PLINT style[MAX_LEGEND], nsym[MAX_LEGEND];
    PLFLT scale[MAX_LEGEND], width[MAX_LEGEND], sym_scale[MAX_LEGEND];
    const char *text[MAX_LEGEND], *sym[MAX_LEGEND];
    char bufs[MAX_LEGEND][TEXT_BUF];
    n = n < MAX_LEGEND ? n : MAX_LEGEND;
    for (int32_t i = 0; i < n; i++) {
        opt[i] =
            lines ? PL_LEGEND_LINE | PL_LEGEND_SYMBOL : PL_LEGEND_COLOR_BOX;
        col[i] = COL_SERIES + i % N_SERIES_COLOURS;
        ink[i] = COL_FG;
        pat[i] = 0;
        style[i] = 1;
        nsym[i] = 1;
        scale[i] = 1.0;
        width[i] = lines ? 2.0 : 1.0;
        sym_scale[i] = 0.8;
        text[i] =
            label_at(labels, "series ", i, legend_text_mm(p) / p->em, bufs[i]);
        sym[i] = markers[(size_t)i % N_MARKERS];
    }
    double vw, vh;
    viewport_mm(p, &vw, &vh);
    PLFLT lw, lh;
    /* pllegend sizes text relative to PLplot's default, not the current
     * size: hence p->scale. */
    pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             PL_POSITION_RIGHT | PL_POSITION_OUTSIDE | PL_POSITION_VIEWPORT,
             1.0 * p->ch / vw, 0.0, LEGEND_SYMBOL_MM(p) / vw, COL_BG, COL_GRID,
             1, 0, 0, n, opt, 1.0, p->scale, 2.0, 0.0, ink, text, col, pat,
             scale, width, col, style, width, col, sym_scale, nsym, sym);
}

/* ---- rendering: stream, errors, output ----------------------------------- */

typedef void (*draw_fn)(const void *fig, const kvl_plot_style *style);

typedef struct plot_ctx {
    /* First member: PLplot's errmsg points here and on_plexit() turns
     * that pointer back into the context. */
    char msg[1024];
    PLINT code;
    jmp_buf jump;
} plot_ctx;

typedef struct plot_job {
    kvl_plot_target *target;
    const kvl_plot_style *style; /* resolved */
    draw_fn draw;
    const void *fig;
    FILE *file; /* the PNG being written, or NULL for the RGB buffer */
} plot_job;

/* plexit() handler: back to render() instead of exit(). */
static int on_plexit(const char *message)
{
    PLStream *pls = NULL;
    plgpls(&pls);
    if (!pls || !pls->errmsg)
        return 1; /* not one of our streams: PLplot's default */
    plot_ctx *ctx = (plot_ctx *)(void *)pls->errmsg;
    if (message != ctx->msg) /* never overlapping copies */
        snprintf(ctx->msg, sizeof ctx->msg, "%s", message ? message : "");
    ctx->code = 1;
    longjmp(ctx->jump, 1);
}

static bool have_device(const char *name)
{
    enum { MAX_DEVICES = 256 };
    const char *menu[MAX_DEVICES], *devs[MAX_DEVICES];
    const char **pm = menu, **pd = devs;
    int n = MAX_DEVICES;
    plgDevs(&pm, &pd, &n);
    for (int i = 0; i < n && i < MAX_DEVICES; i++)
        if (devs[i] && strcmp(devs[i], name) == 0)
            return true;
    return false;
}

static void set_palettes(void)
{
    plscmap0n(N_CMAP0);
    for (int i = 0; i < N_CMAP0; i++)
        plscol0(i, (PLINT)(cmap0_rgb[i] >> 16),
                (PLINT)(cmap0_rgb[i] >> 8 & 0xff),
                (PLINT)(cmap0_rgb[i] & 0xff));
    PLINT r[256], g[256], b[256];
    for (int i = 0; i < 256; i++) {
        r[i] = (PLINT)(viridis[i] >> 16);
        g[i] = (PLINT)(viridis[i] >> 8 & 0xff);
        b[i] = (PLINT)(viridis[i] & 0xff);
    }
    plscmap1(r, g, b, 256);
}

static void setup_stream(const plot_job *job)
{
    const kvl_plot_style *st = job->style;
    if (job->target->rgb) {
        plsdev("memcairo");
        plsmem(st->width, st->height, job->target->rgb);
    } else {
        plsdev("pngcairo");
        plsfile(job->file);
        plspage(0.0, 0.0, st->width, st->height, 0, 0);
    }
    set_palettes();
    plinit();
    plsfont(PL_FCI_SANS, PL_FCI_UPRIGHT, PL_FCI_MEDIUM);
    pladv(0);
    PLFLT def, ht, x0, x1, y0, y1;
    plgchr(&def, &ht);
    plgspa(&x0, &x1, &y0, &y1);
    double px_per_mm = st->width / (x1 - x0);
    double side = fmin(st->width, st->height);
    double em_px =
        fmin(fmax(EM_PX_600 * sqrt(side / 600.0), EM_PX_MIN), EM_PX_MAX);
    plschr(0.0, em_px / (def * EM_PER_CH * px_per_mm));
}

/* The data area in pixels and its window, for kvl_plot_target. */
static void record_frame(kvl_plot_target *t, const kvl_plot_style *st)
{
    PLFLT x0, x1, y0, y1;
    plgvpd(&x0, &x1, &y0, &y1);
    t->frame_px[0] = x0 * st->width;
    t->frame_px[1] = x1 * st->width;
    t->frame_px[2] = (1.0 - y1) * st->height;
    t->frame_px[3] = (1.0 - y0) * st->height;
    plgvpw(&x0, &x1, &y0, &y1);
    t->window[0] = x0;
    t->window[1] = x1;
    t->window[2] = y0;
    t->window[3] = y1;
}

/* Set-up and drawing under the exit handler; false when PLplot called
 * plexit().  A function of its own so no local lives across longjmp. */
static bool guarded_draw(plot_ctx *ctx, const plot_job *job)
{
    if (setjmp(ctx->jump) != 0)
        return false;
    setup_stream(job);
    job->draw(job->fig, job->style);
    record_frame(job->target, job->style);
    return true;
}

/* Ends the stream.  PLplot closes the output file in its driver tidy-up,
 * which only runs when plinit() completed; otherwise it is closed here. */
static void end_stream(plot_ctx *ctx, FILE *file)
{
    PLINT level = 0;
    plglevel(&level);
    if (setjmp(ctx->jump) == 0)
        plend1();
    if (level == 0 && file)
        fclose(file);
}

/* "<path>.tmp.XXXXXX" beside path, so a failed plot leaves nothing. */
static kvl_status open_temp(const char *path, const char *fn, char **tmp_out,
                            FILE **file_out, kvl_error *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return kvl_fail(err, KVL_ERR_IO, "%s: %s is a directory", fn, path);
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(n);
    if (!tmp)
        return kvl_fail(err, KVL_ERR_NOMEM, "%s: out of memory", fn);
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return kvl_fail(err, KVL_ERR_IO, "%s: cannot create %s: %s", fn, path,
                        strerror(e));
    }
    /* mkstemp creates 0600; a report figure is meant to be shared. */
    FILE *f = fchmod(fd, 0644) == 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return kvl_fail(err, KVL_ERR_IO, "%s: cannot write %s: %s", fn, path,
                        strerror(e));
    }
    *tmp_out = tmp;
    *file_out = f;
    return KVL_OK;
}

/* PLplot closes the file itself and ignores write errors, so check that
 * the PNG is whole: its signature first and the IEND chunk last. */
static bool png_complete(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P',  'N',  'G',
                                         '\r', '\n', 0x1a, '\n'};
    static const unsigned char iend[12] = {0,   0,   0,    0,    'I',  'E',
                                           'N', 'D', 0xae, 0x42, 0x60, 0x82};
    unsigned char head[8], tail[12];
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    bool ok = fread(head, 1, 8, f) == 8 && fseek(f, -12, SEEK_END) == 0 &&
              fread(tail, 1, 12, f) == 12 && memcmp(head, sig, 8) == 0 &&
              memcmp(tail, iend, 12) == 0;
    fclose(f);
    return ok;
}

/* Moves the finished temporary PNG into place (or removes it on error). */
static kvl_status finish_png(kvl_status st, char *tmp, const char *path,
                             const char *fn, kvl_error *err)
{
    if (st == KVL_OK && !png_complete(tmp))
        st = kvl_fail(err, KVL_ERR_IO, "%s: writing %s failed (disk full?)", fn,
                      path);
    if (st == KVL_OK && rename(tmp, path) != 0)
        st = kvl_fail(err, KVL_ERR_IO, "%s: cannot rename into %s: %s", fn,
                      path, strerror(errno));
    if (st != KVL_OK)
        unlink(tmp);
    free(tmp);
    return st;
}

static kvl_status plplot_failure(plot_ctx *ctx, const char *fn, kvl_error *err)
{
    size_t n = strlen(ctx->msg);
    while (n && (ctx->msg[n - 1] == '\n' || ctx->msg[n - 1] == ' '))
        ctx->msg[--n] = '\0';
    return kvl_fail(err, KVL_ERR_INTERNAL, "%s: PLplot failed: %s", fn,
                    n ? ctx->msg : "(no message)");
}

static kvl_status render(kvl_plot_target *target, const kvl_plot_style *style,
                         draw_fn draw, const void *fig, const char *fn,
                         kvl_error *err)
{
    const char *device = target->rgb ? "memcairo" : "pngcairo";
    if (!have_device(device))
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "%s: PLplot has no \"%s\" driver (plplot-driver-cairo)",
                        fn, device);
    plot_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return kvl_fail(err, KVL_ERR_NOMEM, "%s: out of memory", fn);
    char *tmp = NULL;
    FILE *file = NULL;
    kvl_status st = KVL_OK;
    if (target->png_path)
        st = open_temp(target->png_path, fn, &tmp, &file, err);
    else /* memcairo draws over the buffer without painting a background */
        memset(target->rgb, 255,
               (size_t)style->width * (size_t)style->height * 3);
    if (st != KVL_OK) {
        free(ctx);
        return st;
    }
    plot_job job = {target, style, draw, fig, file};
    PLINT prev = 0, strm = -1;
    plgstrm(&prev);
    plmkstrm(&strm);
    if (strm < 0) {
        if (file)
            fclose(file);
        st = kvl_fail(err, KVL_ERR_INTERNAL, "%s: PLplot has no free stream",
                      fn);
    } else {
        plsError(&ctx->code, ctx->msg);
        plsexit(on_plexit);
        bool ok = guarded_draw(ctx, &job);
        end_stream(ctx, file);
        plsexit(NULL);
        if (!ok || ctx->code != 0)
            st = plplot_failure(ctx, fn, err);
    }
    plsstrm(prev);
    free(ctx);
    return target->png_path ? finish_png(st, tmp, target->png_path, fn, err)
                            : st;
}

/* ---- heatmap and confusion matrix ---------------------------------------- */

typedef struct heat_fig {
    const double *z;
    int32_t rows, cols;
    const char *const *row_labels, *const *col_labels;
    axis colour;             /* value range of the colour map and its ticks */
    const int64_t *counts;   /* confusion matrix: written into the cells */
    const char *bar_caption; /* colour-bar caption or NULL */
} heat_fig;

#define CBAR_MM(p) (1.4 * (p)->ch)

static double cbar_margin(const page *p, const heat_fig *h)
{
    return 1.2 * p->ch + CBAR_MM(p) + 0.8 * p->ch +
           max_tick_em(&h->colour) * p->em +
           (h->bar_caption ? 2.2 : 0.8) * p->ch;
}

static void draw_cells(const heat_fig *h)
{
    double span = h->colour.hi - h->colour.lo;
    for (int32_t i = 0; i < h->rows; i++)
        for (int32_t j = 0; j < h->cols; j++) {
            double v = h->z[(size_t)i * (size_t)h->cols + (size_t)j];
            if (isnan(v))
                continue; /* blank */
            double t = fmin(fmax((v - h->colour.lo) / span, 0.0), 1.0);
            double y0 = h->rows - 1 - i;
            PLFLT xs[4] = {j, j + 1, j + 1, j};
            PLFLT ys[4] = {y0, y0, y0 + 1, y0 + 1};
            plcol1(t);
            plfill(4, xs, ys);
        }
}

/* Counts in the cells, sized to fit, light on dark colours. */
static void draw_counts(const page *p, const heat_fig *h)
{
    double vw, vh;
    viewport_mm(p, &vw, &vh);
    int64_t most = 0;
    for (size_t k = 0; k < (size_t)h->rows * (size_t)h->cols; k++)
        most = h->counts[k] > most ? h->counts[k] : most;
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)most);
    double cell_w = vw / h->cols, cell_h = vh / h->rows;
    double s = fmin(1.0, fmin(0.8 * cell_w / (text_em(buf, 32) * p->em),
                              0.55 * cell_h / p->ch));
    if (s < 0.35)
        return; /* cells too small for legible numbers */
    plschr(0.0, p->scale * s);
    double span = h->colour.hi - h->colour.lo;
    for (int32_t i = 0; i < h->rows; i++)
        for (int32_t j = 0; j < h->cols; j++) {
            size_t k = (size_t)i * (size_t)h->cols + (size_t)j;
            double t = (h->z[k] - h->colour.lo) / span;
            plcol0(!isnan(t) && t < 0.6 ? COL_WHITE : COL_FG);
            snprintf(buf, sizeof buf, "%lld", (long long)h->counts[k]);
            plptex(j + 0.5, h->rows - i - 0.5, 1.0, 0.0, 0.5, buf);
        }
    plschr(0.0, p->scale);
}

static void draw_colour_bar(const page *p, const heat_fig *h)
{
    double vw, vh;
    viewport_mm(p, &vw, &vh);
    /* An image colour bar of 256 steps: the gradient kind leaks a cairo
     * pattern per call in PLplot 5.15's cairo driver. */
    PLFLT range[256];
    for (int i = 0; i < 256; i++)
        range[i] = h->colour.lo + (h->colour.hi - h->colour.lo) * i / 255.0;
    const PLFLT *values[1] = {range};
    PLINT n_values[1] = {256}, sub_ticks[1] = {0};
    PLINT label_opts[1] = {PL_COLORBAR_LABEL_RIGHT};
    PLFLT ticks[1] = {h->colour.step};
    const char *axis_opts[1] = {"bcvtmo"};
    char caption[TEXT_BUF];
    const char *labels[1] = {
        h->bar_caption ? pl_text(h->bar_caption, TITLE_CP, caption) : ""};
    PLFLT cw, chh;
    plslabelfunc(tick_label, (PLPointer)&h->colour);
    plcol0(COL_FG);
    plcolorbar(&cw, &chh, PL_COLORBAR_IMAGE,
               PL_POSITION_RIGHT | PL_POSITION_OUTSIDE | PL_POSITION_VIEWPORT,
               1.2 * p->ch / vw, 0.0, CBAR_MM(p) / vw, 1.0, COL_BG, COL_FG, 1,
               0.0, 0.0, 0, 0.0, h->bar_caption ? 1 : 0, label_opts, labels, 1,
               axis_opts, ticks, sub_ticks, n_values, values);
    plslabelfunc(NULL, NULL);
}

static void draw_row_labels(const page *p, const heat_fig *h, double max_em)
{
    double vw, vh;
    viewport_mm(p, &vw, &vh);
    int32_t stride = label_stride(h->rows, 1.5 * p->ch, vh);
    char buf[TEXT_BUF];
    for (int32_t i = 0; i < h->rows; i += stride)
        plmtex("lv", 0.6, (h->rows - i - 0.5) / h->rows, 1.0,
               label_at(h->row_labels, "", i, max_em, buf));
}

static void draw_heatmap(const void *fig, const kvl_plot_style *st)
{
    const heat_fig *h = fig;
    page p = page_get();
    /* Row labels get at most a quarter of the width, cut if longer. */
    double row_w =
        fmin(max_label_em(h->row_labels, "", h->rows) * p.em, 0.25 * p.w);
    double row_ext = 0.6 * p.ch + row_w;
    double left = left_margin(&p, st, row_ext);
    double right = cbar_margin(&p, h);
    cat_axis ca = cat_layout(&p, h->col_labels, h->cols, p.w - left - right);
    set_margins(&p, left, right, bottom_margin(&p, st, ca.extent),
                top_margin(&p, st));
    plwind(0.0, h->cols, 0.0, h->rows);
    draw_cells(h);
    if (h->counts)
        draw_counts(&p, h);
    plcol0(COL_FG);
    plbox("bc", 0.0, 0, "bc", 0.0, 0);
    draw_row_labels(&p, h, row_w / p.em + 0.01);
    draw_cat_labels(&ca, h->col_labels, h->cols, -0.5, h->cols - 0.5);
    draw_titles(&p, st, ca.extent, row_ext);
    draw_colour_bar(&p, h);
    plwind(0.0, h->cols, 0.0, h->rows); /* the data window, for the record */
}

kvl_status kvl_plot_heatmap_to(kvl_plot_target *target, const double *z,
                               int32_t rows, int32_t cols,
                               const char *const *row_labels,
                               const char *const *col_labels,
                               const kvl_plot_style *style, kvl_error *err)
{
    static const char fn[] = "kvl_plot_heatmap";
    kvl_plot_style st;
    kvl_status s;
    if ((s = check_target(target, fn, err)) != KVL_OK ||
        (s = check_count(rows, MAX_SIDE_CELLS, fn, "rows", err)) != KVL_OK ||
        (s = check_count(cols, MAX_SIDE_CELLS, fn, "cols", err)) != KVL_OK)
        return s;
    size_t n = (size_t)rows * (size_t)cols;
    if (!z)
        return kvl_fail(err, KVL_ERR_ARG, "%s: z is NULL", fn);
    if (n > MAX_CELLS)
        return kvl_fail(err, KVL_ERR_ARG, "%s: %dx%d cells is more than %d", fn,
                        (int)rows, (int)cols, MAX_CELLS);
    if ((s = check_values(z, n, fn, "z", err)) != KVL_OK ||
        (s = check_labels(row_labels, rows, fn, "row_labels", err)) != KVL_OK ||
        (s = check_labels(col_labels, cols, fn, "col_labels", err)) != KVL_OK ||
        (s = resolve_style(style, fn, &st, err)) != KVL_OK)
        return s;
    double lo = 0.0, hi = 1.0;
    finite_range(z, n, &lo, &hi); /* all NaN: keep [0, 1] */
    widen_flat(&lo, &hi);
    heat_fig h = {z,          rows,       cols,
                  row_labels, col_labels, make_axis(lo, hi, 5),
                  NULL,       NULL};
    return render(target, &st, draw_heatmap, &h, fn, err);
}

kvl_status kvl_plot_heatmap(const char *png_path, const double *z, int32_t rows,
                            int32_t cols, const char *const *row_labels,
                            const char *const *col_labels,
                            const kvl_plot_style *style, kvl_error *err)
{
    if (!png_path)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_plot_heatmap: png_path is NULL");
    kvl_plot_target t = {.png_path = png_path};
    return kvl_plot_heatmap_to(&t, z, rows, cols, row_labels, col_labels, style,
                               err);
}

/* Row-normalised rates of counts[n][n]; rows without samples are NaN. */
static kvl_status confusion_rates(const int64_t *counts, int32_t n,
                                  double *rates, const char *fn, kvl_error *err)
{
    for (int32_t i = 0; i < n; i++) {
        const int64_t *row = counts + (size_t)i * (size_t)n;
        int64_t sum = 0;
        for (int32_t j = 0; j < n; j++) {
            if (row[j] < 0)
                return kvl_fail(err, KVL_ERR_ARG,
                                "%s: counts[%d][%d] = %lld is negative", fn,
                                (int)i, (int)j, (long long)row[j]);
            if (row[j] > INT64_MAX - sum)
                return kvl_fail(err, KVL_ERR_ARG,
                                "%s: counts of row %d overflow", fn, (int)i);
            sum += row[j];
        }
        for (int32_t j = 0; j < n; j++)
            rates[(size_t)i * (size_t)n + (size_t)j] =
                sum ? (double)row[j] / (double)sum : NAN;
    }
    return KVL_OK;
}

kvl_status kvl_plot_confusion_to(kvl_plot_target *target, const int64_t *counts,
                                 int32_t n, const char *const *labels,
                                 const kvl_plot_style *style, kvl_error *err)
{
    static const char fn[] = "kvl_plot_confusion";
    kvl_plot_style st;
    kvl_status s;
    if ((s = check_target(target, fn, err)) != KVL_OK ||
        (s = check_count(n, 1024, fn, "n", err)) != KVL_OK)
        return s;
    if (!counts)
        return kvl_fail(err, KVL_ERR_ARG, "%s: counts is NULL", fn);
    if ((s = check_labels(labels, n, fn, "labels", err)) != KVL_OK ||
        (s = resolve_style(style, fn, &st, err)) != KVL_OK)
        return s;
    if (!st.xlabel)
        st.xlabel = "predicted";
    if (!st.ylabel)
        st.ylabel = "true";
    double *rates = malloc((size_t)n * (size_t)n * sizeof *rates);
    if (!rates)
        return kvl_fail(err, KVL_ERR_NOMEM, "%s: out of memory", fn);
    s = confusion_rates(counts, n, rates, fn, err);
    if (s == KVL_OK) {
        heat_fig h = {rates,  n,
                      n,      labels,
                      labels, make_axis(0.0, 1.0, 5),
                      counts, "fraction of row"};
        s = render(target, &st, draw_heatmap, &h, fn, err);
    }
    free(rates);
    return s;
}

kvl_status kvl_plot_confusion(const char *png_path, const int64_t *counts,
                              int32_t n, const char *const *labels,
                              const kvl_plot_style *style, kvl_error *err)
{
    if (!png_path)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_plot_confusion: png_path is NULL");
    kvl_plot_target t = {.png_path = png_path};
    return kvl_plot_confusion_to(&t, counts, n, labels, style, err);
}

/* ---- bars ---------------------------------------------------------------- */

typedef struct bar_fig {
    const double *value, *lo, *hi; /* [n_series][n_groups] */
    int32_t n_series, n_groups;
    const char *const *series_labels, *const *group_labels;
    bool legend;
    axis y;
} bar_fig;

/* Bars start at zero, so the range always holds 0; it is padded by 5% on
 * the sides that have data, as matplotlib does. */
static axis bar_axis(const bar_fig *b)
{
    size_t n = (size_t)b->n_series * (size_t)b->n_groups;
    double lo = 0, hi = 0, l2, h2;
    const double *arrays[3] = {b->value, b->lo, b->hi};
    for (int a = 0; a < 3; a++)
        if (arrays[a] && finite_range(arrays[a], n, &l2, &h2)) {
            lo = fmin(lo, l2);
            hi = fmax(hi, h2);
        }
    if (hi == lo)
        hi = 1.0;
    double pad = 0.05 * (hi - lo);
    lo = lo < 0 ? lo - pad : lo;
    hi = hi > 0 ? hi + pad : hi;
    return make_axis(lo, hi, 6);
}

static void draw_bar_rects(const bar_fig *b)
{
    double group_w = b->n_series > 1 ? 0.8 : 0.7;
    double w = group_w / b->n_series;
    for (int32_t s = 0; s < b->n_series; s++) {
        plcol0(COL_SERIES + s % N_SERIES_COLOURS);
        for (int32_t g = 0; g < b->n_groups; g++) {
            double v = b->value[(size_t)s * (size_t)b->n_groups + (size_t)g];
            if (isnan(v))
                continue;
            double x0 = g - 0.5 * group_w + s * w;
            PLFLT xs[4] = {x0, x0 + w, x0 + w, x0};
            PLFLT ys[4] = {0.0, 0.0, v, v};
            plfill(4, xs, ys);
        }
    }
}

static void draw_whiskers(const bar_fig *b)
{
    if (!b->lo)
        return;
    double group_w = b->n_series > 1 ? 0.8 : 0.7;
    double w = group_w / b->n_series;
    plcol0(COL_WHISKER);
    plwidth(1.5);
    plsmin(0.0, fmin(4.0, fmax(1.5, 8.0 / (b->n_series * b->n_groups))));
    for (int32_t s = 0; s < b->n_series; s++)
        for (int32_t g = 0; g < b->n_groups; g++) {
            size_t k = (size_t)s * (size_t)b->n_groups + (size_t)g;
            if (isnan(b->lo[k]) || isnan(b->hi[k]))
                continue;
            PLFLT x = g - 0.5 * group_w + (s + 0.5) * w;
            PLFLT y0 = b->lo[k], y1 = b->hi[k];
            plerry(1, &x, &y0, &y1);
        }
    plsmin(0.0, 1.0);
    plwidth(1.0);
}

static void draw_bars(const void *fig, const kvl_plot_style *st)
{
    const bar_fig *b = fig;
    page p = page_get();
    double y_ext = 0.6 * p.ch + max_tick_em(&b->y) * p.em;
    double left = left_margin(&p, st, y_ext);
    double right = b->legend ? legend_margin(&p, b->series_labels, b->n_series)
                             : 1.5 * p.ch;
    cat_axis ca =
        cat_layout(&p, b->group_labels, b->n_groups, p.w - left - right);
    set_margins(&p, left, right, bottom_margin(&p, st, ca.extent),
                top_margin(&p, st));
    plwind(-0.5, b->n_groups - 0.5, b->y.lo, b->y.hi);
    plcol0(COL_GRID);
    plbox("", 0.0, 0, "g", b->y.step, 0);
    draw_bar_rects(b);
    plcol0(COL_FG);
    if (b->y.lo < 0)
        pljoin(-0.5, 0.0, b->n_groups - 0.5, 0.0);
    draw_whiskers(b);
    plcol0(COL_FG);
    plbox("bc", 0.0, 0, "bct", b->y.step, 0);
    draw_tick_labels(&b->y, false);
    draw_cat_labels(&ca, b->group_labels, b->n_groups, -0.5, b->n_groups - 0.5);
    draw_titles(&p, st, ca.extent, y_ext);
    if (b->legend)
        draw_legend(&p, b->series_labels, b->n_series, false);
}

/* lo and hi both or neither; each lo <= hi where both are numbers. */
static kvl_status check_intervals(const double *lo, const double *hi, size_t n,
                                  const char *fn, kvl_error *err)
{
    if (!lo != !hi)
        return kvl_fail(err, KVL_ERR_ARG,
                        "%s: lo and hi must both be given or both be NULL", fn);
    kvl_status s;
    if (!lo || (s = check_values(lo, n, fn, "lo", err)) != KVL_OK ||
        (s = check_values(hi, n, fn, "hi", err)) != KVL_OK)
        return lo ? s : KVL_OK;
    for (size_t i = 0; i < n; i++)
        if (lo[i] > hi[i])
            return kvl_fail(err, KVL_ERR_ARG, "%s: lo[%zu] = %g > hi[%zu] = %g",
                            fn, i, lo[i], i, hi[i]);
    return KVL_OK;
}

kvl_status kvl_plot_grouped_bars_to(kvl_plot_target *target,
                                    const double *value, const double *lo,
                                    const double *hi, int32_t n_series,
                                    int32_t n_groups,
                                    const char *const *series_labels,
                                    const char *const *group_labels,
                                    const kvl_plot_style *style, kvl_error *err)
{
    static const char fn[] = "kvl_plot_grouped_bars";
    kvl_plot_style st;
    kvl_status s;
    if ((s = check_target(target, fn, err)) != KVL_OK ||
        (s = check_count(n_series, 64, fn, "n_series", err)) != KVL_OK ||
        (s = check_count(n_groups, MAX_ITEMS, fn, "n_groups", err)) != KVL_OK)
        return s;
    size_t n = (size_t)n_series * (size_t)n_groups;
    if (!value)
        return kvl_fail(err, KVL_ERR_ARG, "%s: value is NULL", fn);
    if (n > MAX_ITEMS)
        return kvl_fail(err, KVL_ERR_ARG, "%s: %zu bars is more than %d", fn, n,
                        MAX_ITEMS);
    if ((s = check_values(value, n, fn, "value", err)) != KVL_OK ||
        (s = check_intervals(lo, hi, n, fn, err)) != KVL_OK ||
        (s = check_labels(series_labels, n_series, fn, "series_labels", err)) !=
            KVL_OK ||
        (s = check_labels(group_labels, n_groups, fn, "group_labels", err)) !=
            KVL_OK ||
        (s = resolve_style(style, fn, &st, err)) != KVL_OK)
        return s;
    bar_fig b = {value,         lo,           hi,   n_series, n_groups,
                 series_labels, group_labels, true, {0, 1, 1}};
    b.y = bar_axis(&b);
    return render(target, &st, draw_bars, &b, fn, err);
}

kvl_status kvl_plot_grouped_bars(const char *png_path, const double *value,
                                 const double *lo, const double *hi,
                                 int32_t n_series, int32_t n_groups,
                                 const char *const *series_labels,
                                 const char *const *group_labels,
                                 const kvl_plot_style *style, kvl_error *err)
{
    if (!png_path)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_plot_grouped_bars: png_path is NULL");
    kvl_plot_target t = {.png_path = png_path};
    return kvl_plot_grouped_bars_to(&t, value, lo, hi, n_series, n_groups,
                                    series_labels, group_labels, style, err);
}

kvl_status kvl_plot_bars_to(kvl_plot_target *target, const double *value,
                            const double *lo, const double *hi, int32_t n,
                            const char *const *labels,
                            const kvl_plot_style *style, kvl_error *err)
{
    static const char fn[] = "kvl_plot_bars";
    kvl_plot_style st;
    kvl_status s;
    if ((s = check_target(target, fn, err)) != KVL_OK ||
        (s = check_count(n, MAX_ITEMS, fn, "n", err)) != KVL_OK)
        return s;
    if (!value)
        return kvl_fail(err, KVL_ERR_ARG, "%s: value is NULL", fn);
    if ((s = check_values(value, (size_t)n, fn, "value", err)) != KVL_OK ||
        (s = check_intervals(lo, hi, (size_t)n, fn, err)) != KVL_OK ||
        (s = check_labels(labels, n, fn, "labels", err)) != KVL_OK ||
        (s = resolve_style(style, fn, &st, err)) != KVL_OK)
        return s;
    bar_fig b = {value, lo, hi, 1, n, NULL, labels, false, {0, 1, 1}};
    b.y = bar_axis(&b);
    return render(target, &st, draw_bars, &b, fn, err);
}

kvl_status kvl_plot_bars(const char *png_path, const double *value,
                         const double *lo, const double *hi, int32_t n,
                         const char *const *labels, const kvl_plot_style *style,
                         kvl_error *err)
{
    if (!png_path)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_plot_bars: png_path is NULL");
    kvl_plot_target t = {.png_path = png_path};
    return kvl_plot_bars_to(&t, value, lo, hi, n, labels, style, err);
}

/* ---- lines --------------------------------------------------------------- */

typedef struct line_fig {
    const double *x, *y; /* x[n], y[n_series][n] */
    int32_t n_series, n;
    const char *const *series_labels;
    bool legend;
    axis xa, ya;
} line_fig;

/* One series: a polyline through each run of numbers (NaN breaks it) and
 * a marker on every point of short series. */
static void draw_series(const page *p, const line_fig *f, int32_t s)
{
    const double *y = f->y + (size_t)s * (size_t)f->n;
    plcol0(COL_SERIES + s % N_SERIES_COLOURS);
    plwidth(2.0);
    for (int32_t a = 0; a < f->n;) {
        int32_t b = a;
        while (b < f->n && !isnan(y[b]))
            b++;
        if (b - a > 1)
            plline(b - a, f->x + a, y + a);
        if (b > a && f->n <= MAX_MARKED) {
            plschr(0.0, p->scale * 0.8);
            plstring(b - a, f->x + a, y + a, markers[(size_t)s % N_MARKERS]);
            plschr(0.0, p->scale);
        }
        a = b + 1;
    }
    plwidth(1.0);
}

static void draw_lines(const void *fig, const kvl_plot_style *st)
{
    const line_fig *f = fig;
    page p = page_get();
    double y_ext = 0.6 * p.ch + max_tick_em(&f->ya) * p.em;
    double x_ext = 1.8 * p.ch;
    double right = f->legend ? legend_margin(&p, f->series_labels, f->n_series)
                             : 2.0 * p.ch;
    set_margins(&p, left_margin(&p, st, y_ext), right,
                bottom_margin(&p, st, x_ext), top_margin(&p, st));
    plwind(f->xa.lo, f->xa.hi, f->ya.lo, f->ya.hi);
    plcol0(COL_GRID);
    plbox("g", f->xa.step, 0, "g", f->ya.step, 0);
    for (int32_t s = 0; s < f->n_series; s++)
        draw_series(&p, f, s);
    plcol0(COL_FG);
    plbox("bct", f->xa.step, 0, "bct", f->ya.step, 0);
    draw_tick_labels(&f->xa, true);
    draw_tick_labels(&f->ya, false);
    draw_titles(&p, st, x_ext, y_ext);
    if (f->legend)
        draw_legend(&p, f->series_labels, f->n_series, true);
}

/* Data range padded by 5% each side (matplotlib's margins). */
static axis padded_axis(const double *v, size_t n)
{
    double lo = 0.0, hi = 1.0;
    finite_range(v, n, &lo, &hi);
    widen_flat(&lo, &hi);
    double pad = 0.05 * (hi - lo);
    return make_axis(lo - pad, hi + pad, 6);
}

kvl_status kvl_plot_lines_to(kvl_plot_target *target, const double *x,
                             const double *y, int32_t n_series, int32_t n,
                             const char *const *series_labels,
                             const kvl_plot_style *style, kvl_error *err)
{
    static const char fn[] = "kvl_plot_lines";
    kvl_plot_style st;
    kvl_status s;
    if ((s = check_target(target, fn, err)) != KVL_OK ||
        (s = check_count(n_series, 64, fn, "n_series", err)) != KVL_OK ||
        (s = check_count(n, MAX_ITEMS, fn, "n", err)) != KVL_OK)
        return s;
    if (!x || !y)
        return kvl_fail(err, KVL_ERR_ARG, "%s: %s is NULL", fn, !x ? "x" : "y");
    for (int32_t i = 0; i < n; i++)
        if (isnan(x[i]))
            return kvl_fail(err, KVL_ERR_ARG, "%s: x[%d] is NaN", fn, (int)i);
    size_t total = (size_t)n_series * (size_t)n;
    if ((s = check_values(x, (size_t)n, fn, "x", err)) != KVL_OK ||
        (s = check_values(y, total, fn, "y", err)) != KVL_OK ||
        (s = check_labels(series_labels, n_series, fn, "series_labels", err)) !=
            KVL_OK ||
        (s = resolve_style(style, fn, &st, err)) != KVL_OK)
        return s;
    if (total > 10 * (size_t)MAX_ITEMS)
        return kvl_fail(err, KVL_ERR_ARG, "%s: %zu points is more than %d", fn,
                        total, 10 * MAX_ITEMS);
    line_fig f = {x,
                  y,
                  n_series,
                  n,
                  series_labels,
                  series_labels != NULL || n_series > 1,
                  padded_axis(x, (size_t)n),
                  padded_axis(y, total)};
    return render(target, &st, draw_lines, &f, fn, err);
}

kvl_status kvl_plot_lines(const char *png_path, const double *x,
                          const double *y, int32_t n_series, int32_t n,
                          const char *const *series_labels,
                          const kvl_plot_style *style, kvl_error *err)
{
    if (!png_path)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_plot_lines: png_path is NULL");
    kvl_plot_target t = {.png_path = png_path};
    return kvl_plot_lines_to(&t, x, y, n_series, n, series_labels, style, err);
}
