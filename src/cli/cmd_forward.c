/* kvlab forward: one forward pass, summarised or dumped to safetensors. */
#include "cli/cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

static const char forward_help[] =
    "Usage: kvlab forward [--model PATH] (--tokens LIST | --prompt TEXT)\n"
    "                     [--dump OUT.safetensors]\n"
    "\n"
    "Runs one forward pass over the prompt from an empty cache, keeping the\n"
    "logits of every position.  Without --dump it prints one line: the\n"
    "number of tokens and the 5 most likely next tokens after the last\n"
    "position, as id=logit (with the decoded piece when a tokenizer is\n"
    "available).\n"
    "\n"
    "With --dump it writes a safetensors file instead (all F32 unless noted):\n"
    "  logits          [n_tokens, vocab]\n"
    "  layers.{i}.k    [n_kv_heads, n_tokens, head_dim]  keys after RoPE\n"
    "  layers.{i}.v    [n_kv_heads, n_tokens, head_dim]\n"
    "  token_ids       [n_tokens] I32\n"
    "  positions       [n_tokens] I32\n"
    "and __metadata__: format=kvlab.forward/1, kvlab_version, arch,\n"
    "model_fingerprint, n_layers, n_heads, n_kv_heads, head_dim, vocab_size,\n"
    "n_tokens.\n"
    "\n"
    "Options:\n" CLI_INPUT_HELP
    "  --dump FILE          write the safetensors dump to FILE.\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Examples:\n"
    "  kvlab forward -m stories260K.bin --prompt 'Once upon a time'\n"
    "  kvlab forward -m stories260K.bin --tokens 1,403,407 --dump out.safetensors\n";

/* ---- summary ------------------------------------------------------------------------ */

#define TOP_N 5

/* The TOP_N largest logits, best first; ties go to the lower id. */
static int top_n(const float *logits, int32_t vocab, int32_t *ids)
{
    int n = 0;
    for (int32_t i = 0; i < vocab; i++) {
        int at = n;
        while (at > 0 && logits[i] > logits[ids[at - 1]])
            at--;
        if (at >= TOP_N)
            continue;
        int last = n < TOP_N ? n : TOP_N - 1;
        memmove(ids + at + 1, ids + at, (size_t)(last - at) * sizeof *ids);
        ids[at] = i;
        if (n < TOP_N)
            n++;
    }
    return n;
}

/* Piece in double quotes with C escapes (pieces hold spaces, newlines). */
static void print_quoted(const char *p)
{
    putchar('"');
    for (; p && *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_summary(const float *last, int32_t n_tokens,
                          const cli_model *m, kvl_tokenizer *tok,
                          int32_t last_id)
{
    int32_t ids[TOP_N];
    int n = top_n(last, m->info.vocab_size, ids);
    printf("tokens=%" PRId32 " top%d:", n_tokens, TOP_N);
    for (int i = 0; i < n; i++) {
        printf(" %" PRId32 "=%.4f", ids[i], (double)last[ids[i]]);
        if (tok) {
            putchar(' ');
            print_quoted(kvl_tokenizer_decode_piece(tok, last_id, ids[i]));
        }
    }
    putchar('\n');
}

/* ---- dump ----------------------------------------------------------------------------- */

#define MAX_META 16

typedef struct meta_list {
    kvl_st_meta items[MAX_META];
    int n;
    int failed;
} meta_list;

static void meta_add(meta_list *ml, const char *key, const char *fmt, ...)
    CLI_PRINTF(3, 4);

static void meta_add(meta_list *ml, const char *key, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (ml->n >= MAX_META) {
        ml->failed = 1;
        return;
    }
    kvl_st_meta *e = &ml->items[ml->n];
    e->key = strdup(key);
    e->value = strdup(buf);
    ml->n++;
    if (!e->key || !e->value)
        ml->failed = 1;
}

static void meta_free(meta_list *ml)
{
    for (int i = 0; i < ml->n; i++) {
        free(ml->items[i].key);
        free(ml->items[i].value);
    }
}

static void dump_meta(meta_list *ml, const cli_model *m, int32_t n)
{
    const kvl_model_info *in = &m->info;
    meta_add(ml, "format", "kvlab.forward/1");
    meta_add(ml, "kvlab_version", "%s", kvl_version());
    meta_add(ml, "arch", "%s", in->arch_name ? in->arch_name : "");
    meta_add(ml, "model_fingerprint", "%s",
             in->fingerprint ? in->fingerprint : "");
    meta_add(ml, "n_layers", "%" PRId32, in->n_layers);
    meta_add(ml, "n_heads", "%" PRId32, in->n_heads);
    meta_add(ml, "n_kv_heads", "%" PRId32, in->n_kv_heads);
    meta_add(ml, "head_dim", "%" PRId32, in->head_dim);
    meta_add(ml, "vocab_size", "%" PRId32, in->vocab_size);
    meta_add(ml, "n_tokens", "%" PRId32, n);
}

/* K or V of one layer gathered as [n_kv_heads][n][head_dim]. */
static kvl_status gather(const kvl_cache *c, kvl_kv which, int32_t layer,
                         const kvl_model_info *in, int32_t n, float *out,
                         kvl_error *err)
{
    size_t head = (size_t)n * (size_t)in->head_dim;
    for (int32_t h = 0; h < in->n_kv_heads; h++) {
        kvl_status st = kvl_cache_read(c, which, layer, h, 0, n,
                                       out + (size_t)h * head, err);
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

static void set_tensor(kvl_st_write_tensor *t, const char *name,
                       kvl_dtype dtype, const void *data, int ndim,
                       int64_t d0, int64_t d1, int64_t d2)
{
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = dtype;
    t->data = data;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
}

typedef struct dump_buffers {
    kvl_st_write_tensor *tensors;
    char (*names)[32];
    float *kv;
} dump_buffers;

static int dump_alloc(dump_buffers *b, int32_t n_layers, size_t per_tensor)
{
    size_t nt = 2 * (size_t)n_layers + 3;
    b->tensors = calloc(nt, sizeof *b->tensors);
    b->names = calloc(nt, sizeof *b->names);
    b->kv = malloc(2 * (size_t)n_layers * per_tensor * sizeof(float) + 1);
    if (!b->tensors || !b->names || !b->kv)
        return cli_failf("out of memory preparing the dump");
    return CLI_OK;
}

static void dump_release(dump_buffers *b)
{
    free(b->tensors);
    free(b->names);
    free(b->kv);
}

/* Adds layers.{i}.k / layers.{i}.v tensors (data gathered into b->kv)
 * at b->tensors[*nt...]. */
static int add_kv_tensors(dump_buffers *b, int *nt, const kvl_cache *c,
                          const kvl_model_info *in, int32_t n, size_t per)
{
    kvl_error err = {0};
    for (int32_t l = 0; l < in->n_layers; l++) {
        for (int w = 0; w < 2; w++) {
            float *dst = b->kv + (2 * (size_t)l + (size_t)w) * per;
            char *name = b->names[*nt];
            snprintf(name, sizeof b->names[0], "layers.%" PRId32 ".%c", l,
                     w ? 'v' : 'k');
            if (gather(c, w ? KVL_V : KVL_K, l, in, n, dst, &err) != KVL_OK)
                return cli_fail(&err);
            set_tensor(&b->tensors[(*nt)++], name, KVL_DTYPE_F32, dst, 3,
                       in->n_kv_heads, n, in->head_dim);
        }
    }
    return CLI_OK;
}

static int write_dump(const char *path, kvl_session *s, const cli_model *m,
                      const float *logits, int32_t n)
{
    const kvl_model_info *in = &m->info;
    const kvl_cache *c = kvl_session_cache(s);
    size_t per = (size_t)in->n_kv_heads * (size_t)n * (size_t)in->head_dim;
    dump_buffers b = {0};
    meta_list ml = {0};
    int nt = 0;
    int rc = dump_alloc(&b, in->n_layers, per);
    if (rc == CLI_OK) {
        set_tensor(&b.tensors[nt++], "logits", KVL_DTYPE_F32, logits, 2, n,
                   in->vocab_size, 0);
        rc = add_kv_tensors(&b, &nt, c, in, n, per);
    }
    if (rc == CLI_OK) {
        set_tensor(&b.tensors[nt++], "token_ids", KVL_DTYPE_I32,
                   kvl_cache_token_ids(c), 1, n, 0, 0);
        set_tensor(&b.tensors[nt++], "positions", KVL_DTYPE_I32,
                   kvl_cache_positions(c), 1, n, 0, 0);
        dump_meta(&ml, m, n);
        if (ml.failed)
            rc = cli_failf("out of memory preparing the dump metadata");
    }
    kvl_error err = {0};
    if (rc == CLI_OK &&
        kvl_st_write(path, b.tensors, nt, ml.items, ml.n, &err) != KVL_OK)
        rc = cli_fail(&err);
    meta_free(&ml);
    dump_release(&b);
    return rc;
}

/* ---- command ------------------------------------------------------------------------ */

typedef struct forward_args {
    const char *cmd;
    cli_input in;
    const char *dump;
} forward_args;

static int run_forward(const forward_args *a, cli_model *m,
                       kvl_tokenizer *tok, const int32_t *ids, int32_t n)
{
    size_t vocab = (size_t)m->info.vocab_size;
    if ((size_t)n > SIZE_MAX / sizeof(float) / vocab)
        return cli_failf("too many tokens for the logits buffer");
    float *logits = malloc((size_t)n * vocab * sizeof(float));
    if (!logits)
        return cli_failf("out of memory: logits of %" PRId32 " tokens", n);
    kvl_session *s = NULL;
    kvl_error err = {0};
    int rc = cli_session_open(m, &a->in, n, &s);
    if (rc == CLI_OK &&
        kvl_session_forward(s, ids, n, logits, 1, &err) != KVL_OK)
        rc = cli_fail(&err);
    if (rc == CLI_OK && a->dump)
        rc = write_dump(a->dump, s, m, logits, n);
    else if (rc == CLI_OK)
        print_summary(logits + (size_t)(n - 1) * vocab, n, m, tok, ids[n - 1]);
    kvl_session_free(s);
    free(logits);
    return rc;
}

static int forward_main(const forward_args *a)
{
    cli_prompt p;
    int rc = cli_prompt_open(a->cmd, &a->in, &p);
    if (rc != CLI_OK)
        return rc;
    rc = run_forward(a, &p.model, p.tok, p.ids, p.n);
    cli_prompt_close(&p);
    return rc;
}

static int forward_option(const char *cmd, int opt, const char *arg,
                          void *ctx)
{
    forward_args *a = ctx;
    int rc = cli_input_option(cmd, opt, arg, &a->in);
    if (rc == CLI_NOT_MINE && opt == OPT_DUMP) {
        a->dump = arg;
        rc = CLI_OK;
    }
    return rc;
}

int cmd_forward(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_INPUT_LONG_OPTIONS,
        {"dump", required_argument, NULL, OPT_DUMP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *cmd = argv[0];
    forward_args a = {0};
    a.cmd = cmd;
    int rc = cli_parse_options(argc, argv, "hm:", longopts, forward_help,
                               forward_option, &a);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = cli_check_positionals(cmd, argc, argv, 0);
    if (rc == CLI_OK)
        rc = cli_input_check(cmd, &a.in, 1);
    return rc == CLI_OK ? forward_main(&a) : rc;
}
