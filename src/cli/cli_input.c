/* Resolving the model, its tokenizer and the prompt of a command. */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef KVL_SOURCE_DIR
#define KVL_SOURCE_DIR "."
#endif

int cli_input_option(const char *cmd, int opt, const char *arg,
                     cli_input *in)
{
    switch (opt) {
    case 'm':
    case OPT_MODEL:
        in->model_path = arg;
        return CLI_OK;
    case OPT_TOKENS:
        in->tokens = arg;
        return CLI_OK;
    case OPT_PROMPT:
        in->prompt = arg;
        return CLI_OK;
    case OPT_TOKENIZER:
        in->tokenizer_path = arg;
        return CLI_OK;
    case OPT_NO_BOS:
        in->no_bos = 1;
        return CLI_OK;
    case OPT_THREADS:
        return cli_opt_i32(cmd, "--threads", arg, 0, 4096, &in->threads);
    case OPT_DEVICE:
        if (strcmp(arg, "cpu") != 0 && strcmp(arg, "auto") != 0 &&
            strcmp(arg, "cuda") != 0 &&
            !(strncmp(arg, "cuda:", 5) == 0 && arg[5] >= '0' && arg[5] <= '9' &&
              strspn(arg + 5, "0123456789") == strlen(arg + 5)))
            return cli_usage(cmd, "--device must be cpu, cuda, cuda:N or auto, not '%s'",
                             arg);
        in->device = arg;
        return CLI_OK;
    default:
        return CLI_NOT_MINE;
    }
}

int cli_input_check(const char *cmd, const cli_input *in, int required)
{
    if (in->tokens && in->prompt)
        return cli_usage(cmd, "--tokens and --prompt are mutually exclusive");
    if (required && !in->tokens && !in->prompt)
        return cli_usage(cmd, "one of --tokens or --prompt is required");
    if (in->tokens) {
        /* Syntax errors are usage errors: report them before the (slow,
         * fallible) model load; ids are range-checked after it. */
        char why[160];
        int32_t *ids = NULL, n = 0;
        if (cli_parse_token_list(in->tokens, &ids, &n, why, sizeof why) != 0)
            return cli_usage(cmd, "invalid value for --tokens: %s", why);
        free(ids);
    }
    return CLI_OK;
}

/* ---- model ---------------------------------------------------------------------------- */

static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* --model, else $KVLAB_MODEL, else the bundled model of the source tree. */
static int resolve_model_path(const char *given, char *out, size_t cap)
{
    const char *env = getenv("KVLAB_MODEL");
    const char *path = given;
    if (!path && env && *env)
        path = env;
    if (!path) {
        snprintf(out, cap, "%s/models/default", KVL_SOURCE_DIR);
        if (!path_exists(out))
            return cli_failf("no model given and the bundled default model "
                             "'%s' does not exist: pass --model PATH (or "
                             "set KVLAB_MODEL)",
                             out);
        return CLI_OK;
    }
    if ((size_t)snprintf(out, cap, "%s", path) >= cap)
        return cli_failf("model path too long: '%.64s...'", path);
    return CLI_OK;
}

int cli_model_open(const char *model_path, const char *device, cli_model *m)
{
    memset(m, 0, sizeof *m);
    int rc = resolve_model_path(model_path, m->path, sizeof m->path);
    if (rc != CLI_OK)
        return rc;
    kvl_error err = {0};
    /* --device, else $KVLAB_DEVICE, else auto (a GPU when there is one). */
    const char *env = getenv("KVLAB_DEVICE");
    kvl_model_options mo = {device ? device : env && *env ? env : "auto"};
    if (kvl_model_load(m->path, &mo, &m->model, &err) != KVL_OK) {
        /* The user must see which path failed, whatever the loader said. */
        if (strstr(err.message, m->path))
            return cli_fail(&err);
        return cli_failf("cannot load model '%s': %s", m->path,
                         err.message[0] ? err.message
                                        : kvl_status_name(err.code));
    }
    kvl_model_get_info(m->model, &m->info);
    return CLI_OK;
}

void cli_model_close(cli_model *m)
{
    kvl_model_free(m->model);
    m->model = NULL;
}

/* ---- tokenizer ------------------------------------------------------------------------ */

int cli_tokenizer_open(const cli_input *in, const cli_model *m, int required,
                       kvl_tokenizer **out)
{
    char path[4096 + 64];
    *out = NULL;
    if (in->tokenizer_path) {
        snprintf(path, sizeof path, "%s", in->tokenizer_path);
    } else if (!m) {
        return cli_failf("no tokenizer given: pass --tokenizer PATH");
    } else {
        char *found = NULL;
        kvl_error ferr = {0};
        if (kvl_tokenizer_find(m->path, m->info.vocab_size, &found, &ferr) != KVL_OK) {
            if (!required)
                return CLI_OK;
            return cli_failf("%s: pass --tokenizer PATH", ferr.message);
        }
        snprintf(path, sizeof path, "%s", found);
        kvl_free(found);
    }
    kvl_error err = {0};
    /* The model's vocabulary size sizes a llama2.c tokenizer.bin (which
     * does not store it); without a model the file is read to its end. */
    int32_t vocab = m ? m->info.vocab_size : 0;
    if (kvl_tokenizer_load(path, vocab, out, &err) != KVL_OK) {
        if (strstr(err.message, path))
            return cli_fail(&err);
        return cli_failf("cannot load tokenizer '%s': %s", path,
                         err.message[0] ? err.message
                                        : kvl_status_name(err.code));
    }
    return CLI_OK;
}

/* ---- prompt ids ----------------------------------------------------------------------- */

static int32_t bos_id(const cli_model *m, const kvl_tokenizer *tok)
{
    if (m->info.bos_token_id >= 0)
        return m->info.bos_token_id;
    return tok ? kvl_tokenizer_bos(tok) : -1;
}

static int encode_prompt(const char *text, kvl_tokenizer *tok, int add_bos,
                         int32_t **ids, int32_t *n)
{
    /* One id per byte plus BOS is an upper bound for byte-fallback
     * tokenizers; retry with the size the encoder asks for otherwise. */
    size_t len = strlen(text);
    if (len > INT32_MAX - 16)
        return cli_failf("--prompt is too long");
    int32_t cap = (int32_t)len + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        int32_t *v = malloc((size_t)cap * sizeof *v);
        if (!v)
            return cli_failf("out of memory encoding the prompt");
        kvl_error err = {0};
        int32_t need = 0;
        kvl_status st = kvl_tokenizer_encode(
            tok, text, add_bos ? KVL_ENCODE_ADD_SPECIAL : 0u, v, cap, &need,
            &err);
        if (st == KVL_OK) {
            *ids = v;
            *n = need;
            return CLI_OK;
        }
        free(v);
        if (st != KVL_ERR_RANGE || need <= cap)
            return cli_fail(&err);
        cap = need;
    }
    return cli_failf("the tokenizer could not size the prompt");
}

static int check_ids(const char *cmd, const int32_t *ids, int32_t n,
                     const cli_model *m)
{
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->info.vocab_size)
            return cli_usage(cmd,
                             "token id %" PRId32 " (item %" PRId32
                             " of --tokens) is out of range: the model's "
                             "vocabulary has %" PRId32 " tokens",
                             ids[i], i + 1, m->info.vocab_size);
    if (n > m->info.max_seq_len)
        return cli_usage(cmd,
                         "%" PRId32 " prompt tokens exceed the model's "
                         "max_seq_len %" PRId32,
                         n, m->info.max_seq_len);
    return CLI_OK;
}

int cli_input_ids(const char *cmd, const cli_input *in, const cli_model *m,
                  kvl_tokenizer *tok, int add_bos, int allow_bos_only,
                  int32_t **ids, int32_t *n)
{
    char why[160];
    int rc = CLI_OK;
    *ids = NULL;
    *n = 0;
    if (in->tokens) {
        if (cli_parse_token_list(in->tokens, ids, n, why, sizeof why) != 0)
            return cli_usage(cmd, "invalid value for --tokens: %s", why);
    } else if (in->prompt) {
        if (!tok)
            return cli_failf("--prompt needs a tokenizer");
        rc = encode_prompt(in->prompt, tok, add_bos, ids, n);
    } else if (allow_bos_only) {
        int32_t bos = bos_id(m, tok);
        if (bos < 0)
            return cli_failf("the model has no BOS token: give --tokens");
        *ids = malloc(sizeof **ids);
        if (!*ids)
            return cli_failf("out of memory");
        (*ids)[0] = bos;
        *n = 1;
    }
    if (rc == CLI_OK)
        rc = check_ids(cmd, *ids, *n, m);
    if (rc != CLI_OK) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}

int cli_prompt_open(const char *cmd, const cli_input *in, cli_prompt *p)
{
    p->tok = NULL;
    p->ids = NULL;
    p->n = 0;
    int rc = cli_model_open(in->model_path, in->device, &p->model);
    if (rc != CLI_OK)
        return rc;
    rc = cli_tokenizer_open(in, &p->model, in->prompt != NULL, &p->tok);
    if (rc == CLI_OK)
        rc = cli_input_ids(cmd, in, &p->model, p->tok, !in->no_bos, 0,
                           &p->ids, &p->n);
    if (rc == CLI_OK && p->n == 0)
        rc = cli_failf("the prompt encodes to no tokens");
    if (rc != CLI_OK)
        cli_prompt_close(p);
    return rc;
}

void cli_prompt_close(cli_prompt *p)
{
    free(p->ids);
    p->ids = NULL;
    p->n = 0;
    kvl_tokenizer_free(p->tok);
    p->tok = NULL;
    cli_model_close(&p->model);
}

int cli_session_open(const cli_model *m, const cli_input *in, int64_t tokens,
                     kvl_session **out)
{
    kvl_session_options so = {0};
    /* A capacity hint, not a limit: avoids reserving max_seq_len tokens
     * (gigabytes for long-context models) for a short run. */
    if (tokens < 1)
        tokens = 1;
    so.max_tokens = (int32_t)(tokens < m->info.max_seq_len
                                  ? tokens
                                  : m->info.max_seq_len);
    so.n_threads = in->threads;
    kvl_error err = {0};
    if (kvl_session_new(m->model, &so, out, &err) != KVL_OK)
        return cli_fail(&err);
    return CLI_OK;
}
