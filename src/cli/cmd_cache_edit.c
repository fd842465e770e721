/* kvlab cache slice / reposition: file-to-file cache edits (no model). */
#include "cli/cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char slice_help[] =
    "Usage: kvlab cache slice FILE.kvc -o OUT.kvc [--layers A:B] [--tokens A:B]\n"
    "                         [--dtype F32|F16|BF16]\n"
    "\n"
    "Writes a cache holding only the selected layers and tokens.  Ranges are\n"
    "Python-like: half-open A:B, either side may be left out (':5', '-3:'),\n"
    "negative values count from the end, out-of-range bounds are clamped;\n"
    "a single index A selects one layer / token.  Default: everything.\n"
    "Token ids and positions are kept, so the sliced tokens keep their\n"
    "RoPE positions (see 'kvlab cache reposition --start' to renumber).\n"
    "A cache with fewer layers than the model cannot be loaded into it.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE    the cache file to write (required).\n"
    "  --layers A:B         layers to keep (default ':' = all).\n"
    "  --tokens A:B         tokens to keep (default ':' = all).\n"
    "  --dtype D            storage dtype of OUT: F32, F16, BF16 (default:\n"
    "                       that of FILE).\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Examples:\n"
    "  kvlab cache slice a.kvc -o last8.kvc --tokens -8:\n"
    "  kvlab cache slice a.kvc -o first2.kvc --layers :2 --dtype BF16\n";

static const char reposition_help[] =
    "Usage: kvlab cache reposition FILE.kvc -o OUT.kvc (--delta D | --start P)\n"
    "                              [--dtype F32|F16|BF16]\n"
    "\n"
    "Moves the cached tokens to other absolute positions: every key is\n"
    "rotated back from its stored position and forward to the new one\n"
    "(values are untouched), using the rope parameters stored in the file,\n"
    "so no model is needed.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE    the cache file to write (required).\n"
    "  --delta D            add D (may be negative) to every position; the\n"
    "                       result must stay >= 0.\n"
    "  --start P            renumber the tokens P, P+1, ..., P+n-1 (closes\n"
    "                       gaps, e.g. after slicing tokens out).\n"
    "  --dtype D            storage dtype of OUT: F32, F16, BF16 (default:\n"
    "                       that of FILE).\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Examples:\n"
    "  kvlab cache reposition a.kvc -o b.kvc --delta 5\n"
    "  kvlab cache reposition last8.kvc -o moved.kvc --start 0\n";

/* Options common to both edits. */
typedef struct edit_args {
    const char *cmd;
    const char *in;
    const char *out;
    int dtype_given;
    kvl_dtype dtype;
    cli_range layers, tokens;
    int has_layers, has_tokens;
    int has_delta, has_start;
    int32_t delta, start;
} edit_args;

static int save_edited(const edit_args *a, const kvl_cache *c)
{
    kvl_dtype dtype = a->dtype;
    int rc = a->dtype_given ? CLI_OK : cli_cache_file_dtype(a->in, &dtype);
    if (rc != CLI_OK)
        return rc;
    kvl_error err = {0};
    if (kvl_cache_save(c, a->out, dtype, &err) != KVL_OK)
        return cli_fail(&err);
    kvl_cache_info ci;
    kvl_cache_get_info(c, &ci);
    const int32_t *pos = kvl_cache_positions(c);
    printf("wrote %s: %" PRId32 " layers, %" PRId32 " tokens", a->out,
           ci.n_layers, ci.n_tokens);
    if (ci.n_tokens > 0)
        printf(" at positions %" PRId32 "..%" PRId32, pos[0],
               pos[ci.n_tokens - 1]);
    printf(", %s\n", kvl_dtype_name(dtype));
    return CLI_OK;
}

static int load_input(const edit_args *a, kvl_cache **c)
{
    kvl_error err = {0};
    if (kvl_cache_load(a->in, c, &err) != KVL_OK)
        return cli_fail(&err);
    return CLI_OK;
}

/* ---- slice ------------------------------------------------------------------------------ */

static int resolve(const edit_args *a, const char *what, const cli_range *r,
                   int has, int32_t len, int32_t *b, int32_t *e)
{
    cli_range all = {0};
    if (cli_range_resolve(has ? r : &all, len, b, e) != 0)
        return cli_usage(a->cmd, "--%s: index out of range: the cache has %"
                                 PRId32 " %s", what, len, what);
    if (*b >= *e)
        return cli_usage(a->cmd, "--%s selects no %s (the cache has %" PRId32
                                 ")", what, what, len);
    return CLI_OK;
}

static int slice_main(const edit_args *a)
{
    kvl_cache *src = NULL, *dst = NULL;
    int rc = load_input(a, &src);
    if (rc != CLI_OK)
        return rc;
    kvl_cache_info ci;
    kvl_cache_get_info(src, &ci);
    int32_t l0, l1, t0, t1;
    rc = resolve(a, "layers", &a->layers, a->has_layers, ci.n_layers, &l0, &l1);
    if (rc == CLI_OK)
        rc = resolve(a, "tokens", &a->tokens, a->has_tokens, ci.n_tokens, &t0,
                     &t1);
    kvl_error err = {0};
    if (rc == CLI_OK &&
        kvl_cache_slice(src, l0, l1, t0, t1, &dst, &err) != KVL_OK)
        rc = cli_fail(&err);
    if (rc == CLI_OK)
        rc = save_edited(a, dst);
    kvl_cache_free(dst);
    kvl_cache_free(src);
    return rc;
}

/* ---- reposition ------------------------------------------------------------------------- */

static int shift_cache(const edit_args *a, kvl_cache *c)
{
    int32_t n = kvl_cache_n_tokens(c);
    const int32_t *pos = kvl_cache_positions(c);
    kvl_error err = {0};
    for (int32_t i = 0; i < n; i++) {
        int64_t p = (int64_t)pos[i] + a->delta;
        if (p < 0 || p > INT32_MAX)
            return cli_failf("--delta %" PRId32 " would move position %" PRId32
                             " (token %" PRId32 ") to %" PRId64
                             ", outside 0..%" PRId32,
                             a->delta, pos[i], i, p, INT32_MAX);
    }
    if (kvl_cache_shift(c, a->delta, &err) != KVL_OK)
        return cli_fail(&err);
    return CLI_OK;
}

static int renumber_cache(const edit_args *a, kvl_cache *c)
{
    int32_t n = kvl_cache_n_tokens(c);
    if ((int64_t)a->start + n - 1 > INT32_MAX)
        return cli_failf("--start %" PRId32 " with %" PRId32
                         " tokens goes past position %" PRId32,
                         a->start, n, INT32_MAX);
    int32_t *pos = malloc((n ? (size_t)n : 1) * sizeof *pos);
    if (!pos)
        return cli_failf("out of memory");
    for (int32_t i = 0; i < n; i++)
        pos[i] = a->start + i;
    kvl_error err = {0};
    int rc = kvl_cache_reposition(c, pos, &err) == KVL_OK ? CLI_OK
                                                          : cli_fail(&err);
    free(pos);
    return rc;
}

static int reposition_main(const edit_args *a)
{
    kvl_cache *c = NULL;
    int rc = load_input(a, &c);
    if (rc != CLI_OK)
        return rc;
    rc = a->has_delta ? shift_cache(a, c) : renumber_cache(a, c);
    if (rc == CLI_OK)
        rc = save_edited(a, c);
    kvl_cache_free(c);
    return rc;
}

/* ---- parsing ---------------------------------------------------------------------------- */

static int edit_option(const char *cmd, int opt, const char *arg, void *ctx)
{
    edit_args *a = ctx;
    switch (opt) {
    case 'o':
        a->out = arg;
        return CLI_OK;
    case OPT_DTYPE:
        a->dtype_given = 1;
        return cli_opt_dtype(cmd, "--dtype", arg, &a->dtype);
    case OPT_LAYERS:
        a->has_layers = 1;
        return cli_opt_range(cmd, "--layers", arg, &a->layers);
    case OPT_TOKENS:
        a->has_tokens = 1;
        return cli_opt_range(cmd, "--tokens", arg, &a->tokens);
    case OPT_DELTA:
        a->has_delta = 1;
        return cli_opt_i32(cmd, "--delta", arg, -INT32_MAX, INT32_MAX,
                           &a->delta);
    case OPT_START:
        a->has_start = 1;
        return cli_opt_i32(cmd, "--start", arg, 0, INT32_MAX, &a->start);
    default:
        return CLI_NOT_MINE;
    }
}

/* Parses FILE -o OUT and the options in longopts; 'h' prints help
 * (CLI_HELP_SHOWN). */
static int parse_edit(int argc, char **argv, const struct option *longopts,
                      const char *help, edit_args *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = argv[0];
    int rc = cli_parse_options(argc, argv, "ho:", longopts, help, edit_option,
                               a);
    if (rc != CLI_OK)
        return rc;
    if (optind >= argc)
        return cli_usage(a->cmd, "missing the input cache FILE");
    rc = cli_check_positionals(a->cmd, argc, argv, 1);
    if (rc != CLI_OK)
        return rc;
    a->in = argv[optind];
    if (!a->out)
        return cli_usage(a->cmd, "missing -o OUT.kvc");
    return CLI_OK;
}

int cmd_cache_slice(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    edit_args a;
    int rc = parse_edit(argc, argv, longopts, slice_help, &a);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    return slice_main(&a);
}

int cmd_cache_reposition(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"delta", required_argument, NULL, OPT_DELTA},
        {"start", required_argument, NULL, OPT_START},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    edit_args a;
    int rc = parse_edit(argc, argv, longopts, reposition_help, &a);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (a.has_delta == a.has_start)
        return cli_usage(a.cmd, "give exactly one of --delta or --start");
    return reposition_main(&a);
}
