/*
 * Shared pieces of the kvlab program: exit codes, error printing, strict
 * parsing of option values, model / tokenizer / prompt resolution, the
 * generation loop and the cache reports.  Every command is a function
 * `int cmd_x(int argc, char **argv)` whose argv[0] is the display name
 * ("kvlab generate"), returning the process exit code.
 */
#ifndef KVL_CLI_CLI_H
#define KVL_CLI_CLI_H

#include "kvlab.h"

#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* Process exit codes (documented in docs/cli.md). */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Returned by cli_input_option for an option it does not handle. */
#define CLI_NOT_MINE (-1)

/* Codes of long-only options; above any character getopt may return. */
enum cli_opt {
    OPT_MODEL = 256,
    OPT_TOKENS,
    OPT_PROMPT,
    OPT_TOKENIZER,
    OPT_NO_BOS,
    OPT_THREADS,
    OPT_TEMP,
    OPT_TOP_P,
    OPT_TOP_K,
    OPT_SEED,
    OPT_IDS,
    OPT_IGNORE_EOS,
    OPT_CACHE,
    OPT_SAVE_CACHE,
    OPT_SAVE_DTYPE,
    OPT_FORCE,
    OPT_DUMP,
    OPT_JSON,
    OPT_DTYPE,
    OPT_LAYERS,
    OPT_DELTA,
    OPT_START,
    OPT_CHAT,
    OPT_SYSTEM,
    OPT_CHAT_TEMPLATE,
    OPT_DEVICE
};

/* getopt_long entries shared by every command that runs a prompt. */
#define CLI_INPUT_LONG_OPTIONS                                               \
    {"model", required_argument, NULL, OPT_MODEL},                           \
        {"tokens", required_argument, NULL, OPT_TOKENS},                     \
        {"prompt", required_argument, NULL, OPT_PROMPT},                     \
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER},               \
        {"no-bos", no_argument, NULL, OPT_NO_BOS},                           \
        {"threads", required_argument, NULL, OPT_THREADS},                   \
        {"device", required_argument, NULL, OPT_DEVICE}

/* Help text for the options above, shared so that it reads the same. */
#define CLI_INPUT_HELP                                                       \
    "  -m, --model PATH     model: a Hugging Face folder (config.json +\n"   \
    "                       *.safetensors) or a llama2.c .bin file.\n"       \
    "                       Default: $KVLAB_MODEL, else the bundled model\n" \
    "                       <source>/models/default.\n"                      \
    "  --tokens LIST        comma-separated token ids, e.g. 1,403,407\n"     \
    "                       (used as given: no BOS is added).\n"             \
    "  --prompt TEXT        text, encoded with the tokenizer; BOS is\n"      \
    "                       prepended unless --no-bos.\n"                    \
    "  --tokenizer PATH     tokenizer file (tokenizer.json, *.model,\n"      \
    "                       llama2.c tokenizer.bin) or a folder holding\n"   \
    "                       one.  Default: the model folder's tokenizer.json,\n" \
    "                       tokenizer.model or tokenizer.bin; for a .bin\n"  \
    "                       model the tok<vocab>.bin (or only tok*.bin)\n"   \
    "                       beside it.\n"                                    \
    "  --no-bos             do not prepend BOS to --prompt.\n"               \
    "  --threads N          worker threads (default 0 = OpenMP default).\n"   \
    "  --device D           cpu, cuda, cuda:N or auto (default: $KVLAB_DEVICE,\n" \
    "                       else auto: the first GPU when one is present).\n"

/* ---- errors and usage (cli_util.c) ------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_PRINTF(a, b)
#endif

/* "kvlab CMD: message" + the Try line on stderr; returns CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);
/* Only the Try line (getopt already printed the problem); CLI_USAGE. */
int cli_try_help(const char *cmd);
/* "kvlab: <err->message>" on stderr; returns CLI_FAIL. */
int cli_fail(const kvl_error *err);
int cli_failf(const char *fmt, ...) CLI_PRINTF(1, 2);
/* Resets getopt for a fresh argument vector. */
void cli_getopt_reset(void);
/* Usage error for positional arguments beyond the first `allowed`. */
int cli_check_positionals(const char *cmd, int argc, char **argv,
                          int allowed);

/* Handles one option of a command (ctx: its parsed arguments): CLI_OK, an
 * exit code, or CLI_NOT_MINE for an option it does not take. */
typedef int (*cli_option_fn)(const char *cmd, int opt, const char *arg,
                             void *ctx);
/* Returned by cli_parse_options after printing the help: exit with CLI_OK. */
#define CLI_HELP_SHOWN (-2)
/* The getopt_long loop of a command (argv[0] is its display name): every
 * option goes to fn.  An option fn does not take is either 'h' (the help
 * text is printed on stdout; returns CLI_HELP_SHOWN) or one getopt has
 * already reported (the Try line; CLI_USAGE).  Returns CLI_OK once every
 * option is taken, or fn's exit code as soon as it gives one. */
int cli_parse_options(int argc, char **argv, const char *shortopts,
                      const struct option *longopts, const char *help,
                      cli_option_fn fn, void *ctx);

/* ---- strict value parsing (cli_util.c) ------------------------------------
 * The cli_opt_* helpers parse one option value; on a malformed value they
 * print a usage error naming the option and return CLI_USAGE. */

int cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int cli_parse_f64(const char *s, double min, double max, double *out);
int cli_parse_u64(const char *s, uint64_t *out);

int cli_opt_i32(const char *cmd, const char *opt, const char *s, int32_t min,
                int32_t max, int32_t *out);
int cli_opt_f32(const char *cmd, const char *opt, const char *s, double min,
                double max, float *out);
int cli_opt_u64(const char *cmd, const char *opt, const char *s,
                uint64_t *out);
/* F32, F16 or BF16 (any case, float32 etc. too). */
int cli_opt_dtype(const char *cmd, const char *opt, const char *s,
                  kvl_dtype *out);

/* "1,2,3" -> malloc'ed ids.  Returns 0, or -1 with a reason in why. */
int cli_parse_token_list(const char *s, int32_t **ids, int32_t *n,
                         char *why, size_t why_cap);

/* A Python-like slice "A:B" (either side may be empty, negatives count
 * from the end) or a single index "A". */
typedef struct cli_range {
    int single;
    int has_start, has_stop;
    int64_t start, stop;
} cli_range;

int cli_opt_range(const char *cmd, const char *opt, const char *s,
                  cli_range *out);
/* Resolves against a length as Python does (clamping slices); returns 0
 * with [*begin, *end), or -1 when a single index is out of range. */
int cli_range_resolve(const cli_range *r, int32_t len, int32_t *begin,
                      int32_t *end);

/* ---- model, tokenizer and prompt (cli_input.c) ------------------------- */

typedef struct cli_input {
    const char *model_path;     /* --model; NULL = default               */
    const char *tokens;         /* --tokens LIST or NULL                 */
    const char *prompt;         /* --prompt TEXT or NULL                 */
    const char *tokenizer_path; /* --tokenizer or NULL = default         */
    int no_bos;
    int32_t threads;
    const char *device;         /* --device; NULL = "auto"              */
} cli_input;

/* Handles the CLI_INPUT_LONG_OPTIONS (and -m); CLI_NOT_MINE otherwise. */
int cli_input_option(const char *cmd, int opt, const char *arg,
                     cli_input *in);
/* --tokens / --prompt are exclusive; `required`: one must be given. */
int cli_input_check(const char *cmd, const cli_input *in, int required);

typedef struct cli_model {
    kvl_model *model;
    kvl_model_info info;
    char path[4096]; /* resolved path                                 */
} cli_model;

/* Resolves --model / $KVLAB_MODEL / the bundled default and loads it.
 * Returns CLI_OK or CLI_FAIL (message printed). */
/* device: "cpu", "cuda[:N]", "auto" or NULL (= auto). */
int cli_model_open(const char *model_path, const char *device, cli_model *m);
void cli_model_close(cli_model *m);

/* The tokenizer named by --tokenizer (a file, or a folder holding
 * tokenizer.json, tokenizer.model or tokenizer.bin), else the default of
 * the model (m may be NULL when --tokenizer is given).  With required == 0
 * a missing default gives *out = NULL and CLI_OK. */
int cli_tokenizer_open(const cli_input *in, const cli_model *m, int required,
                       kvl_tokenizer **out);

/* Prompt ids from --tokens or --prompt (add_bos: prepend BOS to the
 * prompt), validated against the model's vocabulary (a bad id is a usage
 * error).  With neither given and allow_bos_only, the ids are [BOS].
 * *ids is malloc'ed (may be NULL when *n == 0). */
int cli_input_ids(const char *cmd, const cli_input *in, const cli_model *m,
                  kvl_tokenizer *tok, int add_bos, int allow_bos_only,
                  int32_t **ids, int32_t *n);

/* What `forward`, `inspect` and `cache save` run on: the model, its
 * tokenizer (required when --prompt is given) and the prompt's ids (BOS
 * prepended unless --no-bos; no ids is a failure). */
typedef struct cli_prompt {
    cli_model model;
    kvl_tokenizer *tok; /* NULL when not needed and not found           */
    int32_t *ids;
    int32_t n;
} cli_prompt;

/* CLI_OK with everything open, else the exit code (message printed) with
 * nothing left open. */
int cli_prompt_open(const char *cmd, const cli_input *in, cli_prompt *p);
void cli_prompt_close(cli_prompt *p);

/* A session whose capacity hint is `tokens` capped at max_seq_len. */
int cli_session_open(const cli_model *m, const cli_input *in, int64_t tokens,
                     kvl_session **out);

/* ---- generation (cmd_generate.c) ---------------------------------------- */

typedef struct cli_generate_args {
    cli_input in;
    int32_t n_new;             /* -n                                     */
    kvl_sampler_options sampling;
    int seed_given;
    int ids;                   /* --ids                                  */
    int ignore_eos;
    int verbose;
    const char *cache_path;    /* --cache / cache load FILE              */
    int force;
    const char *save_cache;    /* --save-cache                           */
    kvl_dtype save_dtype;
    const char *chat;          /* --chat TEXT: one user turn (generate)   */
    const char *system;        /* --system TEXT (with --chat)             */
    kvl_chat_family chat_family; /* --chat-template (default: auto)      */
    int chat_family_given;
} cli_generate_args;

void cli_generate_defaults(cli_generate_args *a);
/* Handles the input options (cli_input_option), -n and the sampling /
 * output options; CLI_NOT_MINE otherwise. */
int cli_generate_option(const char *cmd, int opt, const char *arg,
                        cli_generate_args *a);
/* Runs a parsed generate (also `cache load`). */
int cli_generate_run(const char *cmd, cli_generate_args *a);

#define CLI_SAMPLING_LONG_OPTIONS                                            \
    {"max-new-tokens", required_argument, NULL, 'n'},                        \
        {"temp", required_argument, NULL, OPT_TEMP},                         \
        {"top-p", required_argument, NULL, OPT_TOP_P},                       \
        {"top-k", required_argument, NULL, OPT_TOP_K},                       \
        {"seed", required_argument, NULL, OPT_SEED},                         \
        {"ids", no_argument, NULL, OPT_IDS},                                 \
        {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},                   \
        {"save-cache", required_argument, NULL, OPT_SAVE_CACHE},             \
        {"save-dtype", required_argument, NULL, OPT_SAVE_DTYPE},             \
        {"verbose", no_argument, NULL, 'v'}

#define CLI_SAMPLING_HELP                                                    \
    "  -n, --max-new-tokens N  tokens to generate (default 64); generation\n" \
    "                       also stops at EOS and at the model's\n"          \
    "                       max_seq_len.\n"                                  \
    "  --temp T             temperature (default 1.0); 0 = greedy.\n"        \
    "  --top-p P            nucleus sampling mass in [0, 1] (default 0.9;\n" \
    "                       1 or 0 = off).\n"                                \
    "  --top-k K            keep the K most likely tokens (default 0 = off).\n" \
    "  --seed S             sampler seed, 0..2^64-1 (default: from the\n"    \
    "                       clock; printed to stderr with --verbose).\n"     \
    "  --ids                print comma-separated token ids, not text.\n"    \
    "  --ignore-eos         do not stop at the EOS token.\n"                 \
    "  --save-cache FILE    save the session's cache (prompt + generated\n"  \
    "                       tokens) to FILE.kvc at the end.\n"               \
    "  --save-dtype D       dtype of --save-cache: F32 (default), F16, BF16.\n" \
    "  -v, --verbose        seed, token counts and speed on stderr.\n"

/* ---- cache reports (cli_report.c) --------------------------------------- */

/* Statistics of the L2 norms of rows over tokens (population std). */
typedef struct cli_stats {
    double mean, std, min, max;
    int64_t count;
} cli_stats;

typedef struct cli_head_norms {
    cli_stats k, v;
} cli_head_norms;

/* Per (layer, kv head) norms: out[layer * n_kv_heads + head]. */
int cli_cache_norms(const kvl_cache *cache, cli_head_norms **out);
/* Combines the per-head statistics of one layer (equal counts). */
cli_stats cli_stats_merge(const cli_stats *parts, int n, size_t stride);

/* Aligned table of per-layer / per-head norms on `out`. */
void cli_print_norm_table(FILE *out, const kvl_cache_info *ci,
                          const cli_head_norms *norms, int per_head);

/* JSON helpers (jansson).  A NULL value marks the builder as failed so
 * that callers check once at the end. */
typedef struct cli_json {
    int failed;
} cli_json;
void cli_json_set(cli_json *b, json_t *obj, const char *key, json_t *val);
json_t *cli_json_real(double v); /* null for a non-finite value */
json_t *cli_json_rope(cli_json *b, const kvl_rope *rope);
json_t *cli_json_i32_array(cli_json *b, const int32_t *v, int32_t n);
json_t *cli_json_layers(cli_json *b, const kvl_cache_info *ci,
                        const cli_head_norms *norms);
/* Writes root to path ("-" = stdout) with 2-space indent. */
int cli_json_write(json_t *root, const char *path);

/* Storage dtype of a cache file (that of its layers.0.k; F32 when it has
 * no layers).  CLI_OK or CLI_FAIL (printed).  In cmd_cache.c. */
int cli_cache_file_dtype(const char *path, kvl_dtype *out);

/* ---- commands ------------------------------------------------------------ */

int cmd_forward(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_cache_info(int argc, char **argv);
int cmd_cache_save(int argc, char **argv);
int cmd_cache_load(int argc, char **argv);
int cmd_cache_slice(int argc, char **argv);
int cmd_cache_reposition(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv); /* cmd_tokenizer_train.c */
int cmd_tokenize(int argc, char **argv);   /* cmd_tokenize.c */
int cmd_run(int argc, char **argv);        /* cmd_run.c */
int cmd_detokenize(int argc, char **argv); /* cmd_tokenize.c */

#endif
