/* kvlab tokenize / kvlab detokenize: text <-> token ids on stdin/stdout. */
#include "cli/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char tokenize_help[] =
    "Usage: kvlab tokenize [--tokenizer PATH | --model PATH] [--no-special]\n"
    "                      [--plain-special] [--jsonl]\n"
    "\n"
    "Reads UTF-8 text from standard input and prints its token ids.\n"
    "\n"
    "Without --jsonl the whole input, exactly as read (a final newline\n"
    "included: use printf '%s' rather than echo to leave it out), is one\n"
    "text and the ids are printed comma-separated on one line.  With\n"
    "--jsonl every input line is a JSON string (e.g. \"Hello\\nworld\") and\n"
    "every output line the JSON array of its ids.\n"
    "\n"
    "Options:\n"
    "  --tokenizer PATH     a tokenizer file (Hugging Face tokenizer.json,\n"
    "                       SentencePiece *.model, llama2.c tokenizer.bin) or\n"
    "                       a folder holding one (tokenizer.json, else\n"
    "                       tokenizer.model, else tokenizer.bin).  Default:\n"
    "                       the tokenizer of the model (below).\n"
    "  -m, --model PATH     model whose tokenizer to use when --tokenizer is\n"
    "                       not given.  Default: $KVLAB_MODEL, else the\n"
    "                       bundled model <source>/models/default.\n"
    "  --no-special         do not add BOS/EOS (default: add them as the\n"
    "                       tokenizer asks: tokenizer.json's post-processor,\n"
    "                       BOS for SentencePiece and llama2.c).\n"
    "  --plain-special      special tokens written in the text (e.g.\n"
    "                       \"<|im_start|>\") are encoded as plain text, not\n"
    "                       as their ids.\n"
    "  --jsonl              one JSON string per input line, one JSON array\n"
    "                       per output line.\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Exit status: 0 success; 1 failure (tokenizer not loadable, output not\n"
    "writable); 2 bad usage (unknown option, a --jsonl line that is not a\n"
    "JSON string).\n"
    "\n"
    "Examples:\n"
    "  printf 'Once upon a time' | kvlab tokenize\n"
    "  printf '\"hi\"\\n\"<|im_start|>\"\\n' | kvlab tokenize --tokenizer Qwen3-0.6B --jsonl\n";

static const char detokenize_help[] =
    "Usage: kvlab detokenize [--tokenizer PATH | --model PATH] [--skip-special]\n"
    "                        [--jsonl]\n"
    "\n"
    "Reads token ids from standard input and prints the text they decode to\n"
    "(the tokenizer's decoders applied to the whole sequence).\n"
    "\n"
    "Without --jsonl the input is one sequence of ids separated by commas\n"
    "and/or blanks (spaces, tabs, newlines), e.g. \"1,403,407\" or \"1 403\n"
    "407\", and the text is printed exactly, with no newline added (so\n"
    "`kvlab tokenize --no-special | kvlab detokenize` gives back the input\n"
    "where the tokenizer round-trips).  With --jsonl every input line is a\n"
    "JSON array of ids and every output line a JSON string; bytes that do\n"
    "not form valid UTF-8 (a sequence cut inside a character) are written\n"
    "as U+FFFD there.\n"
    "\n"
    "Options:\n"
    "  --tokenizer PATH     as for kvlab tokenize (a file or a folder).\n"
    "  -m, --model PATH     model whose tokenizer to use by default.\n"
    "  --skip-special       drop special tokens (BOS, EOS, <|im_end|>, ...).\n"
    "  --jsonl              one JSON array per input line, one JSON string\n"
    "                       per output line.\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Exit status: 0 success; 1 failure; 2 bad usage (unknown option, an item\n"
    "that is not a non-negative integer, an id outside the tokenizer's\n"
    "vocabulary, a --jsonl line that is not an array of ids).\n"
    "\n"
    "Examples:\n"
    "  echo 1,403,407,261,378 | kvlab detokenize\n"
    "  echo '[9707, 11, 1879]' | kvlab detokenize --tokenizer Qwen3-0.6B --jsonl\n";

typedef struct tok_args {
    const char *tokenizer_path;
    const char *model_path;
    int no_special, plain_special, skip_special, jsonl;
} tok_args;

enum { OPT_NO_SPECIAL = 1000, OPT_PLAIN_SPECIAL, OPT_SKIP_SPECIAL,
       OPT_JSONL };

static int parse_args(int argc, char **argv, int detok, tok_args *a)
{
    static const struct option tok_opts[] = {
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
        {"model", required_argument, NULL, OPT_MODEL},
        {"no-special", no_argument, NULL, OPT_NO_SPECIAL},
        {"plain-special", no_argument, NULL, OPT_PLAIN_SPECIAL},
        {"jsonl", no_argument, NULL, OPT_JSONL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const struct option detok_opts[] = {
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
        {"model", required_argument, NULL, OPT_MODEL},
        {"skip-special", no_argument, NULL, OPT_SKIP_SPECIAL},
        {"jsonl", no_argument, NULL, OPT_JSONL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *cmd = argv[0];
    memset(a, 0, sizeof *a);
    cli_getopt_reset();
    int opt;
    while ((opt = getopt_long(argc, argv, "hm:", detok ? detok_opts : tok_opts,
                              NULL)) != -1) {
        switch (opt) {
        case 'h':
            fputs(detok ? detokenize_help : tokenize_help, stdout);
            return -1;
        case OPT_TOKENIZER:
            a->tokenizer_path = optarg;
            break;
        case 'm':
        case OPT_MODEL:
            a->model_path = optarg;
            break;
        case OPT_NO_SPECIAL:
            a->no_special = 1;
            break;
        case OPT_PLAIN_SPECIAL:
            a->plain_special = 1;
            break;
        case OPT_SKIP_SPECIAL:
            a->skip_special = 1;
            break;
        case OPT_JSONL:
            a->jsonl = 1;
            break;
        default:
            return cli_try_help(cmd); /* getopt printed the problem */
        }
    }
    if (a->tokenizer_path && a->model_path)
        return cli_usage(cmd, "--tokenizer and --model are mutually exclusive");
    return cli_check_positionals(cmd, argc, argv, 0);
}

/* --tokenizer, else the default tokenizer of --model / $KVLAB_MODEL / the
 * bundled model. */
static int open_tokenizer(const tok_args *a, kvl_tokenizer **tok)
{
    cli_input in;
    memset(&in, 0, sizeof in);
    in.tokenizer_path = a->tokenizer_path;
    if (a->tokenizer_path)
        return cli_tokenizer_open(&in, NULL, 1, tok);
    cli_model m;
    int rc = cli_model_open(a->model_path, "cpu", &m); /* only its tokenizer */
    if (rc == CLI_OK)
        rc = cli_tokenizer_open(&in, &m, 1, tok);
    cli_model_close(&m);
    return rc;
}

/* All of standard input into a malloc'ed NUL-terminated buffer. */
static int read_stdin(char **out, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return cli_failf("out of memory reading standard input");
    for (;;) {
        if (cap - n < 2) {
            char *b = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!b) {
                free(buf);
                return cli_failf("out of memory reading standard input");
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return cli_failf("cannot read standard input: %s", strerror(errno));
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return CLI_OK;
}

/* Calls fn(line, len, line_no, ctx) for every line of buf ('\n' removed,
 * and a '\r' before it); a final line without '\n' counts, an empty
 * remainder after the last '\n' does not. */
static int each_line(char *buf, size_t len,
                     int (*fn)(const char *line, size_t n, size_t line_no,
                               void *ctx),
                     void *ctx)
{
    size_t line_no = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        size_t n = (size_t)(e - p);
        if (n && p[n - 1] == '\r')
            n--;
        int rc = fn(p, n, ++line_no, ctx);
        if (rc != CLI_OK)
            return rc;
        p = e + 1;
    }
    return CLI_OK;
}

static int finish_output(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return cli_failf("cannot write to standard output");
    return CLI_OK;
}

/* ---- tokenize ------------------------------------------------------------------- */

typedef struct tok_ctx {
    const char *cmd;
    kvl_tokenizer *tok;
    unsigned flags;
    int jsonl;
} tok_ctx;

static int encode_print(const tok_ctx *c, const char *text, size_t len)
{
    int32_t *ids = NULL;
    size_t n = 0;
    kvl_error err = {0};
    if (kvl_tokenizer_encode_alloc(c->tok, text, len, c->flags, &ids, &n,
                                   &err) != KVL_OK)
        return cli_fail(&err);
    if (c->jsonl)
        putchar('[');
    for (size_t i = 0; i < n; i++)
        printf(i ? (c->jsonl ? ", %" PRId32 : ",%" PRId32) : "%" PRId32,
               ids[i]);
    if (c->jsonl)
        putchar(']');
    putchar('\n');
    kvl_free(ids);
    return CLI_OK;
}

static int tokenize_line(const char *line, size_t n, size_t line_no,
                         void *ctx)
{
    const tok_ctx *c = ctx;
    json_error_t je;
    json_t *v = json_loadb(line, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!json_is_string(v)) {
        json_decref(v);
        if (!v)
            return cli_usage(c->cmd, "input line %zu is not valid JSON: %s",
                             line_no, je.text);
        return cli_usage(c->cmd, "input line %zu is not a JSON string",
                         line_no);
    }
    int rc = encode_print(c, json_string_value(v), json_string_length(v));
    json_decref(v);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    tok_args a;
    int rc = parse_args(argc, argv, 0, &a);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    tok_ctx c = {argv[0], NULL, 0, a.jsonl};
    if (!a.no_special)
        c.flags |= KVL_ENCODE_ADD_SPECIAL;
    if (a.plain_special)
        c.flags |= KVL_ENCODE_PLAIN_SPECIAL;
    char *buf = NULL;
    size_t len = 0;
    if ((rc = open_tokenizer(&a, &c.tok)) == CLI_OK &&
        (rc = read_stdin(&buf, &len)) == CLI_OK) {
        rc = a.jsonl ? each_line(buf, len, tokenize_line, &c)
                     : encode_print(&c, buf, len);
        if (rc == CLI_OK)
            rc = finish_output();
    }
    free(buf);
    kvl_tokenizer_free(c.tok);
    return rc;
}

/* ---- detokenize ----------------------------------------------------------------- */

typedef struct detok_ctx {
    const char *cmd;
    kvl_tokenizer *tok;
    unsigned flags;
    int32_t *ids;
    size_t n, cap;
} detok_ctx;

static int push_id(detok_ctx *c, int64_t v)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        int32_t *ids = realloc(c->ids, cap * sizeof *ids);
        if (!ids)
            return cli_failf("out of memory");
        c->ids = ids;
        c->cap = cap;
    }
    c->ids[c->n++] = (int32_t)v;
    return CLI_OK;
}

/* A token id (>= 0, < vocabulary size): the caller's wording of where. */
static int check_id(const detok_ctx *c, int64_t v, const char *where)
{
    int32_t vocab = kvl_tokenizer_vocab_size(c->tok);
    if (v < 0 || v >= vocab)
        return cli_usage(c->cmd,
                         "token id %" PRId64 " (%s) is outside the "
                         "tokenizer's vocabulary 0..%" PRId32,
                         v, where, vocab - 1);
    return CLI_OK;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* "1,2 3\n4": items separated by a comma and/or blanks; an empty item
 * (",," or a comma at either end) is an error. */
static int parse_plain_ids(detok_ctx *c, const char *s)
{
    size_t item = 0;
    const char *p = s;
    int need_item = 0; /* after a comma */
    for (;;) {
        while (is_blank(*p))
            p++;
        if (!*p) {
            if (need_item)
                return cli_usage(c->cmd, "the input ends with a comma");
            return CLI_OK;
        }
        if (*p == ',')
            return cli_usage(c->cmd, "empty item %zu (two commas, or a comma "
                             "first)", item + 1);
        const char *q = p;
        while (*q && !is_blank(*q) && *q != ',')
            q++;
        item++;
        size_t len = (size_t)(q - p);
        int64_t v = 0;
        int digits = len <= 10;
        for (size_t i = 0; digits && i < len; i++)
            digits = p[i] >= '0' && p[i] <= '9';
        if (digits) {
            char tmp[16];
            memcpy(tmp, p, len);
            tmp[len] = '\0';
            digits = cli_parse_i64(tmp, 0, INT32_MAX, &v) == 0;
        }
        if (!digits)
            return cli_usage(c->cmd,
                             "item %zu ('%.*s') is not a token id (a "
                             "non-negative integer)",
                             item, (int)(len > 32 ? 32 : len), p);
        char where[48];
        snprintf(where, sizeof where, "item %zu", item);
        int rc = check_id(c, v, where);
        if (rc == CLI_OK)
            rc = push_id(c, v);
        if (rc != CLI_OK)
            return rc;
        p = q;
        while (is_blank(*p))
            p++;
        need_item = *p == ',';
        if (need_item)
            p++;
    }
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF are). */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* s[0..n) as a JSON string on stdout: ", \ and control characters
 * escaped, valid UTF-8 as is, each invalid byte as U+FFFD. */
static void print_json_string(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    putchar('"');
    for (size_t i = 0; i < n;) {
        unsigned char ch = u[i];
        if (ch == '"' || ch == '\\') {
            putchar('\\');
            putchar(ch);
        } else if (ch == '\n') {
            fputs("\\n", stdout);
        } else if (ch == '\r') {
            fputs("\\r", stdout);
        } else if (ch == '\t') {
            fputs("\\t", stdout);
        } else if (ch < 0x20 || ch == 0x7f) {
            printf("\\u%04x", ch);
        } else if (ch >= 0x80) {
            size_t len = utf8_valid_len(u + i, n - i);
            if (len == 0) {
                fputs("\xef\xbf\xbd", stdout);
                i++;
                continue;
            }
            fwrite(u + i, 1, len, stdout);
            i += len;
            continue;
        } else {
            putchar(ch);
        }
        i++;
    }
    fputs("\"\n", stdout);
}

static int decode_ids(detok_ctx *c, char **text, size_t *len)
{
    kvl_error err = {0};
    if (kvl_tokenizer_decode(c->tok, c->ids, c->n, c->flags, text, len,
                             &err) != KVL_OK)
        return cli_fail(&err);
    return CLI_OK;
}

static int detokenize_line(const char *line, size_t n, size_t line_no,
                           void *ctx)
{
    detok_ctx *c = ctx;
    json_error_t je;
    json_t *v = json_loadb(line, n, JSON_DECODE_ANY, &je);
    int rc = CLI_OK;
    if (!json_is_array(v)) {
        rc = v ? cli_usage(c->cmd, "input line %zu is not a JSON array",
                           line_no)
               : cli_usage(c->cmd, "input line %zu is not valid JSON: %s",
                           line_no, je.text);
        json_decref(v);
        return rc;
    }
    c->n = 0;
    for (size_t i = 0; rc == CLI_OK && i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e)) {
            rc = cli_usage(c->cmd, "input line %zu, item %zu is not an "
                           "integer", line_no, i + 1);
            break;
        }
        char where[64];
        snprintf(where, sizeof where, "line %zu, item %zu", line_no, i + 1);
        rc = check_id(c, (int64_t)json_integer_value(e), where);
        if (rc == CLI_OK)
            rc = push_id(c, (int64_t)json_integer_value(e));
    }
    json_decref(v);
    char *text = NULL;
    size_t len = 0;
    if (rc == CLI_OK && (rc = decode_ids(c, &text, &len)) == CLI_OK)
        print_json_string(text, len);
    kvl_free(text);
    return rc;
}

int cmd_detokenize(int argc, char **argv)
{
    tok_args a;
    int rc = parse_args(argc, argv, 1, &a);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    detok_ctx c = {argv[0], NULL, a.skip_special ? KVL_DECODE_SKIP_SPECIAL : 0,
                   NULL, 0, 0};
    char *buf = NULL, *text = NULL;
    size_t len = 0, text_len = 0;
    if ((rc = open_tokenizer(&a, &c.tok)) == CLI_OK &&
        (rc = read_stdin(&buf, &len)) == CLI_OK) {
        if (a.jsonl) {
            rc = each_line(buf, len, detokenize_line, &c);
        } else if (strlen(buf) != len) {
            rc = cli_usage(argv[0], "the input holds a NUL byte");
        } else if ((rc = parse_plain_ids(&c, buf)) == CLI_OK &&
                   (rc = decode_ids(&c, &text, &text_len)) == CLI_OK) {
            fwrite(text, 1, text_len, stdout);
        }
        if (rc == CLI_OK)
            rc = finish_output();
    }
    kvl_free(text);
    free(buf);
    free(c.ids);
    kvl_tokenizer_free(c.tok);
    return rc;
}
