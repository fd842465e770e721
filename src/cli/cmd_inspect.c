/* kvlab inspect: run a prompt and describe the resulting cache. */
#include "cli/cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/rope.h"

static const char inspect_help[] =
    "Usage: kvlab inspect [--model PATH] (--tokens LIST | --prompt TEXT)\n"
    "                     [--dtype F32|F16|BF16] [--json FILE]\n"
    "\n"
    "Runs the prompt from an empty cache, then reports the cache's\n"
    "structure: architecture, layers, query heads, kv heads, GQA group size\n"
    "(query heads per kv head), head_dim, tokens, and the memory it takes in\n"
    "the chosen dtype: bytes per token = 2 (K and V) x n_layers x n_kv_heads\n"
    "x head_dim x dtype size, and in total for the prompt.  Then, per layer\n"
    "and per kv head, the mean / std / min / max over tokens of the L2 norms\n"
    "of the K rows (after RoPE) and of the V rows; the 'all' row of a layer\n"
    "pools its kv heads.\n"
    "\n"
    "Options:\n" CLI_INPUT_HELP
    "  --dtype D            dtype for the byte counts: F32 (default), F16,\n"
    "                       BF16 (the norms are always of the fp32 cache).\n"
    "  --json FILE          also write the report as JSON to FILE, schema\n"
    "                       \"kvlab.inspect/1\" (docs/cli.md); '-' writes it\n"
    "                       to stdout instead of the table.\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Examples:\n"
    "  kvlab inspect -m stories260K.bin --prompt 'Once upon a time'\n"
    "  kvlab inspect -m Qwen2.5-0.5B --tokens 9707,11,1879 --json - | jq .cache\n";

typedef struct inspect_args {
    const char *cmd;
    cli_input in;
    kvl_dtype dtype;
    const char *json;
} inspect_args;

typedef struct inspect_report {
    const cli_model *m;
    const kvl_cache *cache;
    kvl_cache_info ci;
    const cli_head_norms *norms;
    kvl_dtype dtype;
    int64_t bytes_per_token;
} inspect_report;

static void print_text(const inspect_report *r)
{
    const kvl_model_info *in = &r->m->info;
    const kvl_cache_info *ci = &r->ci;
    const int32_t *pos = kvl_cache_positions(r->cache);
    printf("model         %s\n", r->m->path);
    printf("architecture  %s\n", in->arch_name ? in->arch_name : "?");
    printf("fingerprint   %s\n", in->fingerprint ? in->fingerprint : "");
    printf("layers        %" PRId32 "\n", ci->n_layers);
    printf("heads         %" PRId32 " query, %" PRId32 " kv (GQA group size %"
           PRId32 ")\n",
           in->n_heads, ci->n_kv_heads,
           ci->n_kv_heads ? in->n_heads / ci->n_kv_heads : 0);
    printf("head_dim      %" PRId32 "\n", ci->head_dim);
    printf("tokens        %" PRId32 " (positions %" PRId32 "..%" PRId32 ")\n",
           ci->n_tokens, pos[0], pos[ci->n_tokens - 1]);
    printf("dtype         %s: %" PRId64 " bytes/token, %" PRId64
           " bytes in total\n",
           kvl_dtype_name(r->dtype), r->bytes_per_token,
           r->bytes_per_token * ci->n_tokens);
    printf("rope          theta %g, %s, scaling %s, rotary_dim %" PRId32 "\n\n",
           ci->rope.theta, kvl_rope_layout_name(ci->rope.layout),
           kvl_rope_scaling_name(ci->rope.scaling), ci->rope.rotary_dim);
    cli_print_norm_table(stdout, ci, r->norms, 1);
}

static json_t *json_model(cli_json *b, const inspect_report *r)
{
    const kvl_model_info *in = &r->m->info;
    json_t *o = json_object();
    cli_json_set(b, o, "path", json_string(r->m->path));
    cli_json_set(b, o, "arch", json_string(in->arch_name ? in->arch_name : ""));
    cli_json_set(b, o, "fingerprint",
                 json_string(in->fingerprint ? in->fingerprint : ""));
    cli_json_set(b, o, "n_layers", json_integer(in->n_layers));
    cli_json_set(b, o, "n_heads", json_integer(in->n_heads));
    cli_json_set(b, o, "n_kv_heads", json_integer(in->n_kv_heads));
    cli_json_set(b, o, "gqa_group",
                 json_integer(in->n_kv_heads ? in->n_heads / in->n_kv_heads : 0));
    cli_json_set(b, o, "head_dim", json_integer(in->head_dim));
    cli_json_set(b, o, "dim", json_integer(in->dim));
    cli_json_set(b, o, "vocab_size", json_integer(in->vocab_size));
    cli_json_set(b, o, "max_seq_len", json_integer(in->max_seq_len));
    return o;
}

static json_t *json_cache(cli_json *b, const inspect_report *r)
{
    json_t *o = json_object();
    int32_t n = r->ci.n_tokens;
    cli_json_set(b, o, "n_tokens", json_integer(n));
    cli_json_set(b, o, "dtype", json_string(kvl_dtype_name(r->dtype)));
    cli_json_set(b, o, "dtype_bytes",
                 json_integer((json_int_t)kvl_dtype_size(r->dtype)));
    cli_json_set(b, o, "bytes_per_token", json_integer(r->bytes_per_token));
    cli_json_set(b, o, "bytes_total", json_integer(r->bytes_per_token * n));
    cli_json_set(b, o, "token_ids",
                 cli_json_i32_array(b, kvl_cache_token_ids(r->cache), n));
    cli_json_set(b, o, "positions",
                 cli_json_i32_array(b, kvl_cache_positions(r->cache), n));
    return o;
}

static int write_json(const inspect_report *r, const char *path)
{
    cli_json b = {0};
    json_t *root = json_object();
    cli_json_set(&b, root, "schema", json_string("kvlab.inspect/1"));
    cli_json_set(&b, root, "kvlab_version", json_string(kvl_version()));
    cli_json_set(&b, root, "model", json_model(&b, r));
    cli_json_set(&b, root, "rope", cli_json_rope(&b, &r->ci.rope));
    cli_json_set(&b, root, "cache", json_cache(&b, r));
    cli_json_set(&b, root, "layers", cli_json_layers(&b, &r->ci, r->norms));
    int rc = b.failed ? cli_failf("out of memory building JSON")
                      : cli_json_write(root, path);
    json_decref(root);
    return rc;
}

static int report(const inspect_args *a, const cli_model *m,
                  const kvl_cache *cache)
{
    inspect_report r = {0};
    r.m = m;
    r.cache = cache;
    r.dtype = a->dtype;
    kvl_cache_get_info(cache, &r.ci);
    r.bytes_per_token = 2 * (int64_t)r.ci.n_layers * r.ci.n_kv_heads *
                        r.ci.head_dim * (int64_t)kvl_dtype_size(a->dtype);
    cli_head_norms *norms = NULL;
    int rc = cli_cache_norms(cache, &norms);
    if (rc != CLI_OK)
        return rc;
    r.norms = norms;
    int json_to_stdout = a->json && strcmp(a->json, "-") == 0;
    if (!json_to_stdout)
        print_text(&r);
    if (a->json)
        rc = write_json(&r, a->json);
    free(norms);
    return rc;
}

static int inspect_main(const inspect_args *a)
{
    cli_prompt p;
    kvl_session *s = NULL;
    kvl_error err = {0};
    int rc = cli_prompt_open(a->cmd, &a->in, &p);
    if (rc != CLI_OK)
        return rc;
    rc = cli_session_open(&p.model, &a->in, p.n, &s);
    if (rc == CLI_OK &&
        kvl_session_forward(s, p.ids, p.n, NULL, 0, &err) != KVL_OK)
        rc = cli_fail(&err);
    if (rc == CLI_OK)
        rc = report(a, &p.model, kvl_session_cache(s));
    kvl_session_free(s);
    cli_prompt_close(&p);
    return rc;
}

static int inspect_option(const char *cmd, int opt, const char *arg,
                          void *ctx)
{
    inspect_args *a = ctx;
    int rc = cli_input_option(cmd, opt, arg, &a->in);
    if (rc == CLI_NOT_MINE && opt == OPT_DTYPE)
        rc = cli_opt_dtype(cmd, "--dtype", arg, &a->dtype);
    if (rc == CLI_NOT_MINE && opt == OPT_JSON) {
        a->json = arg;
        rc = CLI_OK;
    }
    return rc;
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_INPUT_LONG_OPTIONS,
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"json", required_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    inspect_args a = {0};
    a.cmd = argv[0];
    a.dtype = KVL_DTYPE_F32;
    int rc = cli_parse_options(argc, argv, "hm:", longopts, inspect_help,
                               inspect_option, &a);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = cli_check_positionals(a.cmd, argc, argv, 0);
    if (rc == CLI_OK)
        rc = cli_input_check(a.cmd, &a.in, 1);
    return rc == CLI_OK ? inspect_main(&a) : rc;
}
