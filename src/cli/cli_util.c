/* Error printing and strict parsing of option values for the program. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors and usage ------------------------------------------------------ */

int cli_try_help(const char *cmd)
{
    fprintf(stderr, "Try '%s --help' for more information.\n", cmd);
    return CLI_USAGE;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return cli_try_help(cmd);
}

int cli_fail(const kvl_error *err)
{
    const char *msg = err->message[0] ? err->message
                                      : kvl_status_name(err->code);
    fprintf(stderr, "kvlab: %s\n", msg);
    return CLI_FAIL;
}

int cli_failf(const char *fmt, ...)
{
    va_list ap;
    fputs("kvlab: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_FAIL;
}

void cli_getopt_reset(void)
{
    /* glibc: optind = 0 re-initialises getopt completely (needed because
     * the dispatcher hands each command a shifted argument vector). */
    optind = 0;
    opterr = 1;
}

int cli_check_positionals(const char *cmd, int argc, char **argv,
                          int allowed)
{
    if (argc - optind > allowed)
        return cli_usage(cmd, "unexpected argument '%s'",
                         argv[optind + allowed]);
    return CLI_OK;
}

int cli_parse_options(int argc, char **argv, const char *shortopts,
                      const struct option *longopts, const char *help,
                      cli_option_fn fn, void *ctx)
{
    const char *cmd = argv[0];
    cli_getopt_reset();
    int opt;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        int rc = fn(cmd, opt, optarg, ctx);
        if (rc == CLI_NOT_MINE && opt == 'h') {
            fputs(help, stdout);
            return CLI_HELP_SHOWN;
        }
        if (rc == CLI_NOT_MINE)
            return cli_try_help(cmd); /* '?': getopt printed the problem */
        if (rc != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

/* ---- numbers ----------------------------------------------------------------- */

/* strtol & co. skip leading blanks and accept "" as 0: reject both. */
static int starts_like_number(const char *s)
{
    return s && *s && !isspace((unsigned char)*s);
}

int cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!starts_like_number(s))
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int cli_parse_f64(const char *s, double min, double max, double *out)
{
    if (!starts_like_number(s))
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    /* strtoull accepts "-1" (as 2^64-1): only plain digits are allowed. */
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int cli_opt_i32(const char *cmd, const char *opt, const char *s, int32_t min,
                int32_t max, int32_t *out)
{
    int64_t v;
    if (cli_parse_i64(s, min, max, &v) != 0)
        return cli_usage(cmd,
                         "invalid value '%s' for %s: expected an integer "
                         "from %" PRId32 " to %" PRId32,
                         s, opt, min, max);
    *out = (int32_t)v;
    return CLI_OK;
}

int cli_opt_f32(const char *cmd, const char *opt, const char *s, double min,
                double max, float *out)
{
    double v;
    if (cli_parse_f64(s, min, max, &v) != 0)
        return cli_usage(cmd,
                         "invalid value '%s' for %s: expected a number from "
                         "%g to %g",
                         s, opt, min, max);
    *out = (float)v;
    return CLI_OK;
}

int cli_opt_u64(const char *cmd, const char *opt, const char *s,
                uint64_t *out)
{
    if (cli_parse_u64(s, out) != 0)
        return cli_usage(cmd,
                         "invalid value '%s' for %s: expected an integer "
                         "from 0 to %" PRIu64,
                         s, opt, UINT64_MAX);
    return CLI_OK;
}

int cli_opt_dtype(const char *cmd, const char *opt, const char *s,
                  kvl_dtype *out)
{
    kvl_dtype d;
    /* Caches hold floating point only: the integer dtypes are refused. */
    if (kvl_dtype_parse(s, &d) != KVL_OK ||
        (d != KVL_DTYPE_F32 && d != KVL_DTYPE_F16 && d != KVL_DTYPE_BF16))
        return cli_usage(cmd,
                         "invalid value '%s' for %s: expected F32, F16 or "
                         "BF16",
                         s, opt);
    *out = d;
    return CLI_OK;
}

/* ---- token lists ---------------------------------------------------------------- */

/* Counts comma-separated items (an empty string has one, empty, item). */
static size_t count_items(const char *s)
{
    size_t n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

/* Parses one item [p, q): optional blanks, digits, optional blanks. */
static int parse_id(const char *p, const char *q, int32_t *out)
{
    while (p < q && (*p == ' ' || *p == '\t'))
        p++;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    if (p == q || q - p > 10)
        return -1;
    int64_t v = 0;
    for (; p < q; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > INT32_MAX)
        return -1;
    *out = (int32_t)v;
    return 0;
}

int cli_parse_token_list(const char *s, int32_t **ids, int32_t *n,
                         char *why, size_t why_cap)
{
    *ids = NULL;
    *n = 0;
    size_t count = count_items(s);
    if (count > INT32_MAX) {
        snprintf(why, why_cap, "too many tokens");
        return -1;
    }
    int32_t *v = malloc(count * sizeof *v);
    if (!v) {
        snprintf(why, why_cap, "out of memory");
        return -1;
    }
    const char *p = s;
    for (size_t i = 0; i < count; i++) {
        const char *q = strchr(p, ',');
        if (!q)
            q = p + strlen(p);
        if (parse_id(p, q, &v[i]) != 0) {
            snprintf(why, why_cap,
                     "item %zu ('%.*s') is not a token id (a non-negative "
                     "integer)",
                     i + 1, (int)(q - p > 32 ? 32 : q - p), p);
            free(v);
            return -1;
        }
        p = *q ? q + 1 : q;
    }
    *ids = v;
    *n = (int32_t)count;
    return 0;
}

/* ---- ranges -------------------------------------------------------------------------- */

static int parse_bound(const char *p, size_t len, int *has, int64_t *v)
{
    char buf[32];
    *has = len > 0;
    if (!*has)
        return 0;
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return cli_parse_i64(buf, -(int64_t)INT32_MAX, INT32_MAX, v);
}

int cli_opt_range(const char *cmd, const char *opt, const char *s,
                  cli_range *out)
{
    memset(out, 0, sizeof *out);
    const char *colon = strchr(s, ':');
    int bad;
    if (!colon) {
        out->single = 1;
        bad = parse_bound(s, strlen(s), &out->has_start, &out->start) != 0 ||
              !out->has_start;
    } else {
        bad = strchr(colon + 1, ':') != NULL ||
              parse_bound(s, (size_t)(colon - s), &out->has_start,
                          &out->start) != 0 ||
              parse_bound(colon + 1, strlen(colon + 1), &out->has_stop,
                          &out->stop) != 0;
    }
    if (bad)
        return cli_usage(cmd,
                         "invalid value '%s' for %s: expected A:B (either "
                         "side may be empty or negative) or an index A",
                         s, opt);
    return CLI_OK;
}

static int64_t clamp_bound(int64_t v, int32_t len)
{
    if (v < 0)
        v += len;
    if (v < 0)
        return 0;
    return v > len ? len : v;
}

int cli_range_resolve(const cli_range *r, int32_t len, int32_t *begin,
                      int32_t *end)
{
    if (r->single) {
        int64_t i = r->start < 0 ? r->start + len : r->start;
        if (i < 0 || i >= len)
            return -1;
        *begin = (int32_t)i;
        *end = (int32_t)i + 1;
        return 0;
    }
    int64_t b = r->has_start ? clamp_bound(r->start, len) : 0;
    int64_t e = r->has_stop ? clamp_bound(r->stop, len) : len;
    if (e < b)
        e = b;
    *begin = (int32_t)b;
    *end = (int32_t)e;
    return 0;
}
