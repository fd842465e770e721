/* kvlab cache: dispatch, and the info / save / load subcommands. */
#include "cli/cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/rope.h"
#include "model/safetensors.h"

static const char cache_help[] =
    "Usage: kvlab cache SUBCOMMAND [OPTIONS]\n"
    "\n"
    "Works with cache files (.kvc: safetensors holding layers.{i}.k/v\n"
    "[n_kv_heads, n_tokens, head_dim], token_ids, positions and the rope and\n"
    "model metadata; see docs/cache-format.md).\n"
    "\n"
    "Subcommands:\n"
    "  info FILE [--json]                  geometry, metadata, norm summary\n"
    "  save -o OUT (--tokens|--prompt)     run a prompt, save its cache\n"
    "  load FILE [-n N] [sampling]         generate from a saved cache\n"
    "  slice FILE -o OUT [--layers A:B] [--tokens A:B]\n"
    "                                      keep some layers / tokens\n"
    "  reposition FILE -o OUT (--delta D | --start P)\n"
    "                                      move tokens to other positions\n"
    "\n"
    "Run 'kvlab cache SUBCOMMAND --help' for the options of each.\n"
    "\n"
    "Example:\n"
    "  kvlab cache save -m stories260K.bin --prompt 'Once upon' -o a.kvc\n"
    "  kvlab cache info a.kvc\n";

static const char info_help[] =
    "Usage: kvlab cache info FILE.kvc [--json]\n"
    "\n"
    "Loads a cache file (validating it) and prints its geometry (layers, kv\n"
    "heads, head_dim, tokens and positions), the dtype it is stored in,\n"
    "bytes per token, the rope parameters, every metadata entry, and per\n"
    "layer the mean / std / min / max over tokens and kv heads of the L2\n"
    "norms of the K rows and of the V rows.  No model is needed.\n"
    "\n"
    "Options:\n"
    "  --json               print JSON instead (schema \"kvlab.cache-info/1\",\n"
    "                       docs/cli.md), with per-head norms as well.\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Example:\n"
    "  kvlab cache info a.kvc --json | jq '.cache.positions'\n";

static const char save_help[] =
    "Usage: kvlab cache save [--model PATH] (--tokens LIST | --prompt TEXT)\n"
    "                        -o OUT.kvc [--dtype F32|F16|BF16]\n"
    "\n"
    "Runs the prompt from an empty cache and saves the cache (keys after\n"
    "RoPE, values, token ids, positions, rope parameters and the model's\n"
    "fingerprint) to OUT.kvc.  Logits are not stored: 'kvlab cache load'\n"
    "recomputes the last token's logits.\n"
    "\n"
    "Options:\n" CLI_INPUT_HELP
    "  -o, --output FILE    the cache file to write (required).\n"
    "  --dtype D            storage dtype: F32 (default, exact), F16, BF16.\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Example:\n"
    "  kvlab cache save -m stories260K.bin --prompt 'Once upon a time' -o a.kvc\n";

static const char load_help[] =
    "Usage: kvlab cache load [--model PATH] FILE.kvc [--force] [-n N]\n"
    "                        [--temp T] [--top-p P] [--top-k K] [--seed S]\n"
    "                        [--ids] [--save-cache OUT.kvc]\n"
    "\n"
    "Loads a saved cache into a session for the model (its fingerprint must\n"
    "match the model's unless --force; geometry and rope must match always)\n"
    "and generates N tokens after it, printed like 'kvlab generate' does.\n"
    "\n"
    "The file holds no logits.  To get the logits that follow the cache, the\n"
    "loaded cache is truncated by one token and that last token id is run\n"
    "again at its own (stored) position: attention then sees exactly the\n"
    "same keys and values as in the original run, so the logits, and a\n"
    "greedy continuation, are those the original run would have produced.\n"
    "\n"
    "Options:\n"
    "  -m, --model PATH     the model (default: $KVLAB_MODEL, else the\n"
    "                       bundled <source>/models/default).\n"
    "  --tokenizer PATH     for text output (default: beside the model).\n"
    "  --threads N          worker threads (default 0 = OpenMP default).\n"
    "  --device D           cpu, cuda, cuda:N or auto (default: $KVLAB_DEVICE,\n"
    "                       else auto).\n"
    "  --force              skip the fingerprint check.\n" CLI_SAMPLING_HELP
    "  -h, --help           show this help.\n"
    "\n"
    "Example:\n"
    "  kvlab cache load -m stories260K.bin a.kvc -n 30 --temp 0\n";

/* ---- shared --------------------------------------------------------------------------- */

/* Storage dtype of a cache file: that of layers.0.k (F32 if absent). */
static kvl_dtype stored_dtype(const kvl_st_file *f)
{
    const kvl_st_tensor *t = kvl_st_find(f, "layers.0.k");
    return t && t->dtype < KVL_DTYPE_COUNT ? t->dtype : KVL_DTYPE_F32;
}

int cli_cache_file_dtype(const char *path, kvl_dtype *out)
{
    kvl_st_file f;
    kvl_error err = {0};
    if (kvl_st_open(path, &f, &err) != KVL_OK)
        return cli_fail(&err);
    *out = stored_dtype(&f);
    kvl_st_close(&f);
    return CLI_OK;
}

/* ---- info ------------------------------------------------------------------------------ */

typedef struct info_report {
    const char *path;
    const kvl_cache *cache;
    kvl_cache_info ci;
    const kvl_st_file *file;
    const cli_head_norms *norms;
    kvl_dtype dtype;
    int64_t bytes_per_token;
} info_report;

static void print_info_text(const info_report *r)
{
    const kvl_cache_info *ci = &r->ci;
    const int32_t *pos = kvl_cache_positions(r->cache);
    printf("file          %s (%zu bytes, stored as %s)\n", r->path,
           r->file->map_size, kvl_dtype_name(r->dtype));
    printf("architecture  %s\n", ci->arch_name ? ci->arch_name : "?");
    printf("fingerprint   %s\n",
           ci->fingerprint && *ci->fingerprint ? ci->fingerprint : "(none)");
    printf("layers        %" PRId32 "\n", ci->n_layers);
    printf("kv heads      %" PRId32 "\n", ci->n_kv_heads);
    printf("head_dim      %" PRId32 "\n", ci->head_dim);
    if (ci->n_tokens > 0)
        printf("tokens        %" PRId32 " (positions %" PRId32 "..%" PRId32
               ")\n",
               ci->n_tokens, pos[0], pos[ci->n_tokens - 1]);
    else
        printf("tokens        0\n");
    printf("bytes/token   %" PRId64 " (%s)\n", r->bytes_per_token,
           kvl_dtype_name(r->dtype));
    printf("rope          theta %g, %s, scaling %s, rotary_dim %" PRId32 "\n",
           ci->rope.theta, kvl_rope_layout_name(ci->rope.layout),
           kvl_rope_scaling_name(ci->rope.scaling), ci->rope.rotary_dim);
    for (int i = 0; i < r->file->n_meta; i++)
        printf("%-13s %s = %s\n", i == 0 ? "metadata" : "",
               r->file->meta[i].key, r->file->meta[i].value);
    putchar('\n');
    cli_print_norm_table(stdout, ci, r->norms, 0);
}

static json_t *json_file(cli_json *b, const info_report *r)
{
    json_t *o = json_object();
    json_t *meta = json_object();
    cli_json_set(b, o, "path", json_string(r->path));
    cli_json_set(b, o, "bytes", json_integer((json_int_t)r->file->map_size));
    cli_json_set(b, o, "dtype", json_string(kvl_dtype_name(r->dtype)));
    for (int i = 0; meta && i < r->file->n_meta; i++)
        cli_json_set(b, meta, r->file->meta[i].key,
                     json_string(r->file->meta[i].value));
    cli_json_set(b, o, "metadata", meta);
    return o;
}

static json_t *json_info_cache(cli_json *b, const info_report *r)
{
    const kvl_cache_info *ci = &r->ci;
    json_t *o = json_object();
    cli_json_set(b, o, "arch", json_string(ci->arch_name ? ci->arch_name : ""));
    cli_json_set(b, o, "fingerprint",
                 json_string(ci->fingerprint ? ci->fingerprint : ""));
    cli_json_set(b, o, "n_layers", json_integer(ci->n_layers));
    cli_json_set(b, o, "n_kv_heads", json_integer(ci->n_kv_heads));
    cli_json_set(b, o, "head_dim", json_integer(ci->head_dim));
    cli_json_set(b, o, "n_tokens", json_integer(ci->n_tokens));
    cli_json_set(b, o, "bytes_per_token", json_integer(r->bytes_per_token));
    cli_json_set(b, o, "token_ids",
                 cli_json_i32_array(b, kvl_cache_token_ids(r->cache),
                                    ci->n_tokens));
    cli_json_set(b, o, "positions",
                 cli_json_i32_array(b, kvl_cache_positions(r->cache),
                                    ci->n_tokens));
    return o;
}

static int print_info_json(const info_report *r)
{
    cli_json b = {0};
    json_t *root = json_object();
    cli_json_set(&b, root, "schema", json_string("kvlab.cache-info/1"));
    cli_json_set(&b, root, "kvlab_version", json_string(kvl_version()));
    cli_json_set(&b, root, "file", json_file(&b, r));
    cli_json_set(&b, root, "cache", json_info_cache(&b, r));
    cli_json_set(&b, root, "rope", cli_json_rope(&b, &r->ci.rope));
    cli_json_set(&b, root, "layers", cli_json_layers(&b, &r->ci, r->norms));
    int rc = b.failed ? cli_failf("out of memory building JSON")
                      : cli_json_write(root, "-");
    json_decref(root);
    return rc;
}

static int info_main(const char *path, int json)
{
    kvl_error err = {0};
    kvl_cache *cache = NULL;
    kvl_st_file file;
    if (kvl_cache_load(path, &cache, &err) != KVL_OK)
        return cli_fail(&err);
    /* Only the raw file knows its storage dtype and metadata strings. */
    if (kvl_st_open(path, &file, &err) != KVL_OK) {
        kvl_cache_free(cache);
        return cli_fail(&err);
    }
    info_report r = {0};
    r.path = path;
    r.cache = cache;
    r.file = &file;
    r.dtype = stored_dtype(&file);
    kvl_cache_get_info(cache, &r.ci);
    r.bytes_per_token = 2 * (int64_t)r.ci.n_layers * r.ci.n_kv_heads *
                        r.ci.head_dim * (int64_t)kvl_dtype_size(r.dtype);
    cli_head_norms *norms = NULL;
    int rc = cli_cache_norms(cache, &norms);
    r.norms = norms;
    if (rc == CLI_OK && json)
        rc = print_info_json(&r);
    else if (rc == CLI_OK)
        print_info_text(&r);
    free(norms);
    kvl_st_close(&file);
    kvl_cache_free(cache);
    return rc;
}

int cmd_cache_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *cmd = argv[0];
    int json = 0, opt;
    cli_getopt_reset();
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt == OPT_JSON) {
            json = 1;
        } else if (opt == 'h') {
            fputs(info_help, stdout);
            return CLI_OK;
        } else {
            return cli_try_help(cmd);
        }
    }
    if (optind >= argc)
        return cli_usage(cmd, "missing the cache FILE");
    int rc = cli_check_positionals(cmd, argc, argv, 1);
    return rc == CLI_OK ? info_main(argv[optind], json) : rc;
}

/* ---- save ------------------------------------------------------------------------------ */

typedef struct save_args {
    const char *cmd;
    cli_input in;
    const char *out;
    kvl_dtype dtype;
} save_args;

static int save_run(const save_args *a, const cli_model *m,
                    const int32_t *ids, int32_t n)
{
    kvl_session *s = NULL;
    kvl_error err = {0};
    int rc = cli_session_open(m, &a->in, n, &s);
    if (rc == CLI_OK && kvl_session_forward(s, ids, n, NULL, 0, &err) != KVL_OK)
        rc = cli_fail(&err);
    if (rc == CLI_OK &&
        kvl_cache_save(kvl_session_cache(s), a->out, a->dtype, &err) != KVL_OK)
        rc = cli_fail(&err);
    if (rc == CLI_OK)
        printf("saved %" PRId32 " tokens (%" PRId32 " layers x %" PRId32
               " kv heads x %" PRId32 ", %s) to %s\n",
               n, m->info.n_layers, m->info.n_kv_heads, m->info.head_dim,
               kvl_dtype_name(a->dtype), a->out);
    kvl_session_free(s);
    return rc;
}

static int save_main(const save_args *a)
{
    cli_prompt p;
    int rc = cli_prompt_open(a->cmd, &a->in, &p);
    if (rc != CLI_OK)
        return rc;
    rc = save_run(a, &p.model, p.ids, p.n);
    cli_prompt_close(&p);
    return rc;
}

static int save_option(const char *cmd, int opt, const char *arg, void *ctx)
{
    save_args *a = ctx;
    int rc = cli_input_option(cmd, opt, arg, &a->in);
    if (rc == CLI_NOT_MINE && opt == 'o') {
        a->out = arg;
        rc = CLI_OK;
    }
    if (rc == CLI_NOT_MINE && opt == OPT_DTYPE)
        rc = cli_opt_dtype(cmd, "--dtype", arg, &a->dtype);
    return rc;
}

int cmd_cache_save(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_INPUT_LONG_OPTIONS,
        {"output", required_argument, NULL, 'o'},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    save_args a = {0};
    a.cmd = argv[0];
    a.dtype = KVL_DTYPE_F32;
    int rc = cli_parse_options(argc, argv, "hm:o:", longopts, save_help,
                               save_option, &a);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = cli_check_positionals(a.cmd, argc, argv, 0);
    if (rc == CLI_OK)
        rc = cli_input_check(a.cmd, &a.in, 1);
    if (rc == CLI_OK && !a.out)
        rc = cli_usage(a.cmd, "missing -o OUT.kvc");
    return rc == CLI_OK ? save_main(&a) : rc;
}

/* ---- load ------------------------------------------------------------------------------ */

static int load_option(const char *cmd, int opt, const char *arg, void *ctx)
{
    return cli_generate_option(cmd, opt, arg, ctx);
}

int cmd_cache_load(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, OPT_MODEL},
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"force", no_argument, NULL, OPT_FORCE},
        CLI_SAMPLING_LONG_OPTIONS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *cmd = argv[0];
    cli_generate_args a;
    cli_generate_defaults(&a);
    int rc = cli_parse_options(argc, argv, "hm:n:v", longopts, load_help,
                               load_option, &a);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (optind >= argc)
        return cli_usage(cmd, "missing the cache FILE");
    rc = cli_check_positionals(cmd, argc, argv, 1);
    if (rc != CLI_OK)
        return rc;
    a.cache_path = argv[optind];
    return cli_generate_run(cmd, &a);
}

/* ---- dispatch -------------------------------------------------------------------------- */

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommand;

static const subcommand subcommands[] = {
    {"info", cmd_cache_info},   {"save", cmd_cache_save},
    {"load", cmd_cache_load},   {"slice", cmd_cache_slice},
    {"reposition", cmd_cache_reposition},
};

int cmd_cache(int argc, char **argv)
{
    const char *cmd = argv[0];
    if (argc < 2)
        return cli_usage(cmd, "missing subcommand (info, save, load, slice, "
                              "reposition)");
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        fputs(cache_help, stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
        if (strcmp(subcommands[i].name, sub) != 0)
            continue;
        char name[64];
        snprintf(name, sizeof name, "kvlab cache %s", sub);
        argv[1] = name;
        return subcommands[i].run(argc - 1, argv + 1);
    }
    return cli_usage(cmd, "unknown subcommand '%s'", sub);
}
