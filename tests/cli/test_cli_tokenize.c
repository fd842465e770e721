/*
 * `kvlab tokenize` and `kvlab detokenize` (and `generate --chat`'s
 * options), run as a child process (path in $KVL_KVLAB_BIN) with text on
 * standard input, on the bundled llama2.c tokenizer
 * models/stories260K/tok512.bin.
 *
 * The expected ids are those derived by hand from tok512's pieces and
 * scores in tests/tokenizer/test_llama2c_tokenizer.c (the derivations are
 * written out there):
 *   "Once upon a time" -> 403 " Once", 407 " upon", 261 " a", 378 " time"
 *   "Hello, world!"    -> 346 " He", 306 "ll", 414 "o", 432 ",", 263 " w",
 *                         304 "or", 341 "ld", 443 "!"
 *   "caf\u00e9 na\u00efve" -> 280 " c", 412 "a", 431 "f", 485 "\u00e9",
 *                         297 " n", 412 "a", 198 (byte C3), 178 (byte AF),
 *                         360 "ve"
 * BOS is id 1; byte pieces are ids 3 + byte (so "\n" is 13).  Decoding
 * follows llama2.c: BOS prints nothing and the first piece after it loses
 * its leading space.
 */
#include "cli_run.h"
#include "test_util.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *g_tok;
static char g_in_path[256];

/* Runs kvlab with `input` (len bytes) on stdin and the NULL-terminated
 * arguments; `env` ("NAME=VALUE" or NULL) is set in the child, where
 * KVLAB_MODEL is otherwise unset. */
static run_result run_v(const char *env, const char *input, size_t len,
                        va_list ap)
{
    FILE *f = fopen(g_in_path, "wb");
    if (f) {
        fwrite(input, 1, len, f);
        fclose(f);
    }
    return run_args(env, g_in_path, ap);
}

static run_result run_env(const char *env, const char *input, ...)
{
    va_list ap;
    va_start(ap, input);
    run_result r = run_v(env, input, strlen(input), ap);
    va_end(ap);
    return r;
}

#define RUN(input, ...) run_env(NULL, input, __VA_ARGS__, (const char *)NULL)

/* The command exits 0 and prints exactly `want`. */
#define EXPECT_OUT(r, want, what)                                            \
    do {                                                                     \
        CHECK((r).status == 0, "%s: exit %d; stderr: %s", what, (r).status,  \
              (r).err);                                                      \
        CHECK(strlen(want) == (r).out_len && strcmp((r).out, want) == 0,     \
              "%s:\n  got  [%s]\n  want [%s]", what, (r).out, want);         \
    } while (0)

/* ---- tokenize --------------------------------------------------------------- */

static void test_tokenize(void)
{
    run_result r = RUN("Once upon a time", "tokenize", "--tokenizer", g_tok);
    EXPECT_OUT(r, "1,403,407,261,378\n", "tokenize adds BOS");
    run_free(&r);

    r = RUN("Once upon a time", "tokenize", "--tokenizer", g_tok,
            "--no-special");
    EXPECT_OUT(r, "403,407,261,378\n", "--no-special");
    run_free(&r);

    r = RUN("Hello, world!", "tokenize", "--no-special", "--tokenizer", g_tok);
    EXPECT_OUT(r, "346,306,414,432,263,304,341,443\n", "Hello, world!");
    run_free(&r);

    /* The whole input is one text: the newline is a byte piece (13). */
    r = RUN("Once upon a time\n", "tokenize", "--tokenizer", g_tok);
    EXPECT_OUT(r, "1,403,407,261,378,13\n", "final newline kept");
    run_free(&r);

    /* Empty text: no dummy prefix, BOS alone (or nothing). */
    r = RUN("", "tokenize", "--tokenizer", g_tok);
    EXPECT_OUT(r, "1\n", "empty input");
    run_free(&r);
    r = RUN("", "tokenize", "--tokenizer", g_tok, "--no-special");
    EXPECT_OUT(r, "\n", "empty input, no special");
    run_free(&r);

    /* llama2.c tokenizers have no special-token matching: --plain-special
     * changes nothing. */
    r = RUN("Once upon a time", "tokenize", "--tokenizer", g_tok,
            "--plain-special");
    EXPECT_OUT(r, "1,403,407,261,378\n", "--plain-special");
    run_free(&r);

    /* --jsonl: JSON strings in (escapes decoded, CRLF and a last line
     * without newline accepted), arrays out. */
    r = RUN("\"Once upon a time\"\n\"Hello, world!\"\r\n"
            "\"caf\\u00e9 na\\u00efve\"\n\"\"",
            "tokenize", "--tokenizer", g_tok, "--jsonl");
    EXPECT_OUT(r,
               "[1, 403, 407, 261, 378]\n"
               "[1, 346, 306, 414, 432, 263, 304, 341, 443]\n"
               "[1, 280, 412, 431, 485, 297, 412, 198, 178, 360]\n"
               "[1]\n",
               "tokenize --jsonl");
    run_free(&r);

    /* The default tokenizer: the one beside the model (--model or
     * $KVLAB_MODEL), tok512.bin beside stories260K.bin. */
    static char model[4096];
    snprintf(model, sizeof model, "%s",
             kvt_source_path("models/stories260K/stories260K.bin"));
    r = RUN("Once upon a time", "tokenize", "--model", model, "--no-special");
    EXPECT_OUT(r, "403,407,261,378\n", "tokenizer of --model");
    run_free(&r);
    static char env[4200];
    snprintf(env, sizeof env, "KVLAB_MODEL=%s", model);
    r = run_env(env, "Once upon a time", "tokenize", (const char *)NULL);
    EXPECT_OUT(r, "1,403,407,261,378\n", "tokenizer of $KVLAB_MODEL");
    run_free(&r);

    /* --tokenizer FOLDER: tokenizer.bin inside it. */
    char dir[] = "/tmp/kvlab-test-tokdir-XXXXXX";
    if (mkdtemp(dir)) {
        char path[256];
        snprintf(path, sizeof path, "%s/tokenizer.bin", dir);
        size_t n = 0;
        char *data = slurp(g_tok, &n);
        FILE *f = fopen(path, "wb");
        if (f && data) {
            fwrite(data, 1, n, f);
            fclose(f);
            r = RUN("Once upon a time", "tokenize", "--tokenizer", dir);
            EXPECT_OUT(r, "1,403,407,261,378\n", "--tokenizer FOLDER");
            run_free(&r);
        }
        free(data);
        unlink(path);
        rmdir(dir);
    }
}

/* ---- detokenize ------------------------------------------------------------- */

static void test_detokenize(void)
{
    run_result r = RUN("1,403,407,261,378\n", "detokenize", "--tokenizer",
                       g_tok);
    EXPECT_OUT(r, "Once upon a time", "detokenize (no newline added)");
    run_free(&r);

    /* Blanks and commas both separate. */
    r = RUN(" 1 403\n407,\t261 , 378 ", "detokenize", "--tokenizer", g_tok);
    EXPECT_OUT(r, "Once upon a time", "mixed separators");
    run_free(&r);

    r = RUN("", "detokenize", "--tokenizer", g_tok);
    EXPECT_OUT(r, "", "no ids");
    run_free(&r);

    /* Byte pieces: "caf\u00e9 na\u00efve" from its hand-derived ids; the
     * bytes C3 AF (198, 178) join into one character. */
    r = RUN("1,280,412,431,485,297,412,198,178,360", "detokenize",
            "--tokenizer", g_tok);
    EXPECT_OUT(r, "caf\xc3\xa9 na\xc3\xafve", "byte pieces");
    run_free(&r);

    /* --jsonl: one array per line, one JSON string per line; "\n" (13) is
     * escaped; a lone C3 byte (198) is no valid UTF-8 and becomes U+FFFD. */
    r = RUN("[1, 403, 407, 261, 378]\n[]\n[1, 346, 306, 414, 432, 13]\r\n"
            "[198]",
            "detokenize", "--tokenizer", g_tok, "--jsonl");
    EXPECT_OUT(r,
               "\"Once upon a time\"\n\"\"\n\"Hello,\\n\"\n"
               "\"\xef\xbf\xbd\"\n",
               "detokenize --jsonl");
    run_free(&r);

    /* tokenize | detokenize gives the text back (BOS added and dropped). */
    const char *text = "Lily's mom said, \"Don't worry.\"\nThey played.\n";
    r = RUN(text, "tokenize", "--tokenizer", g_tok);
    CHECK(r.status == 0, "tokenize for the round trip: %s", r.err);
    run_result back = RUN(r.out, "detokenize", "--tokenizer", g_tok);
    EXPECT_OUT(back, text, "round trip");
    run_free(&back);
    run_free(&r);
}

/* ---- usage and failures ------------------------------------------------------- */

static void test_errors(void)
{
    static const struct {
        const char *input;
        const char *cmd;
        const char *opt; /* one extra option or NULL */
        const char *needle;
    } bad[] = {
        {"1,,2", "detokenize", NULL, "empty item 2"},
        {",1", "detokenize", NULL, "empty item 1"},
        {"1,", "detokenize", NULL, "ends with a comma"},
        {"1,abc", "detokenize", NULL, "item 2 ('abc')"},
        {"-1", "detokenize", NULL, "item 1 ('-1')"},
        {"1.5", "detokenize", NULL, "item 1 ('1.5')"},
        {"99999999999", "detokenize", NULL, "item 1"},
        {"1 512", "detokenize", NULL, "token id 512 (item 2)"},
        {"[1]\n[1, \"a\"]", "detokenize", "--jsonl", "line 2, item 2"},
        {"{}", "detokenize", "--jsonl", "line 1 is not a JSON array"},
        {"[1]\nnot json", "detokenize", "--jsonl", "line 2 is not valid JSON"},
        {"[600]", "detokenize", "--jsonl", "token id 600"},
        {"[-3]", "detokenize", "--jsonl", "token id -3"},
        {"5", "tokenize", "--jsonl", "line 1 is not a JSON string"},
        {"\"a\"\n\"unterminated", "tokenize", "--jsonl",
         "line 2 is not valid JSON"},
        {"\"a\"\n\n\"b\"", "tokenize", "--jsonl", "line 2 is not valid JSON"},
        {"x", "tokenize", "--skip-special", "unrecognized option"},
        {"1", "detokenize", "--no-special", "unrecognized option"},
        {"x", "tokenize", "positional", "unexpected argument 'positional'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_result r = RUN(bad[i].input, bad[i].cmd, "--tokenizer", g_tok,
                           bad[i].opt);
        EXPECT_STATUS(r, 2, bad[i].input);
        CHECK(strstr(r.err, bad[i].needle) != NULL,
              "%s <<< '%s': stderr lacks '%s': %s", bad[i].cmd, bad[i].input,
              bad[i].needle, r.err);
        CHECK(strstr(r.err, "--help") != NULL, "no Try line: %s", r.err);
        run_free(&r);
    }

    run_result r = RUN("x", "tokenize", "--tokenizer", "/nonexistent/tok.bin");
    EXPECT_STATUS(r, 1, "missing tokenizer");
    CHECK(strstr(r.err, "kvlab: ") && strstr(r.err, "/nonexistent/tok.bin"),
          "message names the file: %s", r.err);
    run_free(&r);

    r = RUN("x", "tokenize", "--tokenizer", g_tok, "--model", "m");
    EXPECT_STATUS(r, 2, "--tokenizer with --model");
    run_free(&r);

    r = RUN("", "tokenize", "--help");
    EXPECT_STATUS(r, 0, "tokenize --help");
    CHECK(strstr(r.out, "--plain-special") && strstr(r.out, "--jsonl"),
          "tokenize --help: %s", r.out);
    run_free(&r);
    r = RUN("", "help", "detokenize");
    EXPECT_STATUS(r, 0, "help detokenize");
    CHECK(strstr(r.out, "--skip-special") != NULL, "%s", r.out);
    run_free(&r);
    r = RUN("", "--help");
    CHECK(strstr(r.out, "tokenize") && strstr(r.out, "detokenize"),
          "kvlab --help lists the commands: %s", r.out);
    run_free(&r);
}

/* ---- generate --chat ------------------------------------------------------------ */

static void test_chat(void)
{
    static char model[4096];
    snprintf(model, sizeof model, "%s",
             kvt_source_path("models/stories260K/stories260K.bin"));
    run_result r = RUN("", "generate", "-m", model, "--system", "x",
                       "--prompt", "y");
    EXPECT_STATUS(r, 2, "--system without --chat");
    run_free(&r);
    r = RUN("", "generate", "-m", model, "--chat", "x", "--prompt", "y");
    EXPECT_STATUS(r, 2, "--chat with --prompt");
    run_free(&r);
    r = RUN("", "generate", "-m", model, "--chat", "x", "--chat-template",
            "jinja");
    EXPECT_STATUS(r, 2, "unknown --chat-template");
    CHECK(strstr(r.err, "'jinja'") != NULL, "%s", r.err);
    run_free(&r);
    /* stories260K has no tokenizer_config.json: a failure naming the
     * remedy. */
    r = RUN("", "generate", "-m", model, "--chat", "hi", "-n", "1");
    EXPECT_STATUS(r, 1, "--chat without a template");
    CHECK(strstr(r.err, "--chat-template") != NULL, "%s", r.err);
    run_free(&r);

    /* A forced family renders without a config; the rendered text is
     * encoded without BOS: the llama2 template writes "<s>" itself (as
     * text here: llama2.c tokenizers do not match special tokens), so the
     * prompt holds exactly as many ids as `tokenize --no-special` gives for
     * the rendered text, which transformers' Llama 2 template makes
     * "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nhi [/INST]". */
    const char *rendered = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nhi [/INST]";
    r = RUN("", "generate", "-m", model, "--chat", "hi", "--system",
            "Be brief.", "--chat-template", "llama2", "-n", "1", "--temp",
            "0", "--ids", "-v");
    EXPECT_STATUS(r, 0, "--chat --chat-template llama2");
    CHECK(strstr(r.err, rendered) != NULL, "rendered prompt: %s", r.err);
    run_result t = RUN(rendered, "tokenize", "--tokenizer", g_tok,
                       "--no-special");
    size_t n_ids = t.out_len > 1 ? 1 : 0;
    for (size_t i = 0; i < t.out_len; i++)
        n_ids += t.out[i] == ',';
    char want[64];
    snprintf(want, sizeof want, "prompt %zu tokens", n_ids);
    CHECK(n_ids > 10 && strstr(r.err, want) != NULL,
          "chat prompt is not the rendered text without BOS (%s): %s", want,
          r.err);
    run_free(&t);
    run_free(&r);
}

int main(void)
{
    g_bin = getenv("KVL_KVLAB_BIN");
    if (!g_bin || !*g_bin)
        return kvt_skip("KVL_KVLAB_BIN is not set (run through ctest)");
    static char tok[4096];
    snprintf(tok, sizeof tok, "%s",
             kvt_source_path("models/stories260K/tok512.bin"));
    g_tok = tok;
    if (!kvt_file_exists(g_tok))
        return kvt_skip("%s absent", g_tok);
    snprintf(g_in_path, sizeof g_in_path, "%s", kvt_temp_path(".in"));
    snprintf(g_out_path, sizeof g_out_path, "%s", kvt_temp_path(".out"));
    snprintf(g_err_path, sizeof g_err_path, "%s", kvt_temp_path(".err"));
    test_tokenize();
    test_detokenize();
    test_errors();
    test_chat();
    return kvt_finish();
}
