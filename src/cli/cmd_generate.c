/* kvlab generate (and the engine of `kvlab cache load`). */
#include "cli/cli.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char generate_help[] =
    "Usage: kvlab generate [--model PATH] [--tokens LIST | --prompt TEXT |\n"
    "                      --chat TEXT [--system TEXT] [--chat-template F]]\n"
    "                      [-n N] [--temp T] [--top-p P] [--top-k K]\n"
    "                      [--seed S] [--ids] [--cache FILE.kvc [--force]]\n"
    "                      [--save-cache FILE.kvc]\n"
    "\n"
    "Generates a continuation of the prompt and prints it as text (pieces\n"
    "decoded with the tokenizer, streamed as they come) or, with --ids, as\n"
    "comma-separated token ids.  The prompt itself is not printed.\n"
    "\n"
    "Prompt: --tokens (ids as given) or --prompt (encoded; BOS prepended\n"
    "unless --no-bos).  With neither, generation starts from BOS alone.\n"
    "With --cache, generation continues after the saved cache: the tokens\n"
    "given (--prompt is then encoded without BOS) are run after it; with no\n"
    "tokens the cache's last token is re-run at its own position to get the\n"
    "next-token logits (see 'kvlab cache load --help').\n"
    "\n"
    "Chat: --chat TEXT renders a conversation of one user turn (after\n"
    "--system TEXT, if given) with the model's chat template, as\n"
    "transformers' apply_chat_template(..., add_generation_prompt=True)\n"
    "does, and encodes it as it stands (the template writes BOS itself where\n"
    "the family uses one).  The template is recognised from the\n"
    "tokenizer_config.json beside --tokenizer, else in the model folder (or\n"
    "beside the model file); --chat-template FAMILY forces one of chatml,\n"
    "qwen3, llama2, llama3, zephyr (then no tokenizer_config.json is\n"
    "needed).\n"
    "\n"
    "Options:\n" CLI_INPUT_HELP
    "  --chat TEXT          the user's message, rendered with the chat\n"
    "                       template (instead of --prompt / --tokens).\n"
    "  --system TEXT        a system message before it (with --chat).\n"
    "  --chat-template F    template family: auto (default: from\n"
    "                       tokenizer_config.json), chatml, qwen3, llama2,\n"
    "                       llama3, zephyr.\n"
    CLI_SAMPLING_HELP
    "  --cache FILE         start from a saved cache (its fingerprint must\n"
    "                       match the model's unless --force).\n"
    "  --force              skip the fingerprint check of --cache (geometry\n"
    "                       and rope must still match).\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Examples:\n"
    "  kvlab generate -m stories260K.bin --prompt 'Once upon a time' -n 40\n"
    "  kvlab generate -m stories260K.bin --tokens 1,403,407 --temp 0 --ids\n"
    "  kvlab generate -m stories260K.bin --cache a.kvc --prompt ' and' -n 20\n"
    "  kvlab generate -m Qwen3-0.6B --chat 'Name three colours.' -n 100\n";

void cli_generate_defaults(cli_generate_args *a)
{
    memset(a, 0, sizeof *a);
    a->n_new = 64;
    a->sampling.temperature = 1.0f;
    a->sampling.top_p = 0.9f;
    a->sampling.top_k = 0;
    a->save_dtype = KVL_DTYPE_F32;
}

int cli_generate_option(const char *cmd, int opt, const char *arg,
                        cli_generate_args *a)
{
    int rc = cli_input_option(cmd, opt, arg, &a->in);
    if (rc != CLI_NOT_MINE)
        return rc;
    kvl_sampler_options *s = &a->sampling;
    switch (opt) {
    case 'n':
        return cli_opt_i32(cmd, "-n", arg, 0, INT32_MAX, &a->n_new);
    case OPT_TEMP:
        return cli_opt_f32(cmd, "--temp", arg, 0.0, 1e6, &s->temperature);
    case OPT_TOP_P:
        return cli_opt_f32(cmd, "--top-p", arg, 0.0, 1.0, &s->top_p);
    case OPT_TOP_K:
        return cli_opt_i32(cmd, "--top-k", arg, 0, INT32_MAX, &s->top_k);
    case OPT_SEED:
        a->seed_given = 1;
        return cli_opt_u64(cmd, "--seed", arg, &s->seed);
    case OPT_IDS:
        a->ids = 1;
        return CLI_OK;
    case OPT_IGNORE_EOS:
        a->ignore_eos = 1;
        return CLI_OK;
    case OPT_SAVE_CACHE:
        a->save_cache = arg;
        return CLI_OK;
    case OPT_SAVE_DTYPE:
        return cli_opt_dtype(cmd, "--save-dtype", arg, &a->save_dtype);
    case 'v':
        a->verbose = 1;
        return CLI_OK;
    case OPT_FORCE:
        a->force = 1;
        return CLI_OK;
    default:
        return CLI_NOT_MINE;
    }
}

/* ---- the generation loop ------------------------------------------------------- */

#define KVL_GEN_MAX_EOS 9

typedef struct gen_state {
    kvl_session *session;
    kvl_sampler *sampler;
    kvl_tokenizer *tok; /* NULL with --ids                          */
    float *logits;      /* [vocab]                                   */
    int32_t prev_id;    /* last token for piece decoding; -1 none    */
    int32_t eos[KVL_GEN_MAX_EOS]; /* ids that end generation       */
    int32_t n_eos;
    int32_t generated;
    int first_out;
    /* Greedy decoding asks the engine for the argmax alone (on a GPU it
     * is taken there, and the logits stay on the device). */
    int greedy, have_next;
    int32_t next;
} gen_state;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Clock- and pid-based: distinct for runs started in the same second. */
static uint64_t time_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return s ^ ((uint64_t)getpid() << 32);
}

static int32_t next_position(kvl_session *s)
{
    const kvl_cache *c = kvl_session_cache(s);
    int32_t n = kvl_cache_n_tokens(c);
    return n == 0 ? 0 : kvl_cache_positions(c)[n - 1] + 1;
}

/* Printable piece: drops lone ASCII control bytes that byte-fallback
 * tokens may decode to (as llama2.c does), keeps newlines, tabs and
 * bytes >= 0x80 (parts of UTF-8 sequences). */
static void emit_piece(const char *p)
{
    if (!p)
        return;
    unsigned char c = (unsigned char)p[0];
    if (p[0] && !p[1] && (c < 0x20 || c == 0x7f) && c != '\n' && c != '\t' &&
        c != '\r')
        return;
    fputs(p, stdout);
}

static void emit(gen_state *g, int32_t id, int ids)
{
    if (ids) {
        printf(g->first_out ? "%" PRId32 : ",%" PRId32, id);
    } else {
        emit_piece(kvl_tokenizer_decode_piece(g->tok, g->prev_id, id));
        fflush(stdout); /* stream text as it is produced */
    }
    g->first_out = 0;
    g->prev_id = id;
}

static int is_eos(const gen_state *g, int32_t id)
{
    for (int32_t i = 0; i < g->n_eos; i++)
        if (g->eos[i] == id)
            return 1;
    return 0;
}

/* The model's end-of-generation ids (config / generation_config), else the
 * tokenizer's EOS. */
static void set_eos(gen_state *g, const kvl_model_info *info,
                    const kvl_tokenizer *tok)
{
    g->n_eos = 0;
    for (int32_t i = 0; i < info->n_eos_token_ids && g->n_eos < KVL_GEN_MAX_EOS; i++)
        g->eos[g->n_eos++] = info->eos_token_ids[i];
    if (g->n_eos == 0 && info->eos_token_id >= 0)
        g->eos[g->n_eos++] = info->eos_token_id;
    if (g->n_eos == 0 && tok && kvl_tokenizer_eos(tok) >= 0)
        g->eos[g->n_eos++] = kvl_tokenizer_eos(tok);
}

/* Samples up to n tokens.  Each emitted token is run through the model
 * when a later step (or the saved cache) needs it. */
static kvl_status gen_loop(gen_state *g, const cli_generate_args *a,
                           int32_t max_seq, kvl_error *err)
{
    for (int32_t i = 0; i < a->n_new; i++) {
        int32_t pos = next_position(g->session);
        if (pos >= max_seq) {
            if (a->verbose)
                fprintf(stderr, "stopped at max_seq_len %" PRId32 "\n",
                        max_seq);
            break;
        }
        int32_t id = g->have_next ? g->next : kvl_sampler_sample(g->sampler, g->logits);
        if (is_eos(g, id) && !a->ignore_eos) {
            if (a->verbose)
                fputs("stopped at EOS\n", stderr);
            break;
        }
        emit(g, id, a->ids);
        g->generated++;
        if (i + 1 == a->n_new && !a->save_cache)
            break;
        kvl_status st;
        if (g->greedy) {
            st = kvl_session_decode(g->session, id, NULL, &g->next, err);
            g->have_next = st == KVL_OK;
        } else {
            st = kvl_session_forward_at(g->session, &id, &pos, 1, g->logits, 0, err);
        }
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

/* ---- set-up ------------------------------------------------------------------------- */

/* Logits following a cache without stored logits: drop the last entry and
 * run its token again at its own position; the recomputed K/V replace the
 * dropped ones and the logits are those of the original run. */
static kvl_status logits_after_cache(kvl_session *s, float *logits,
                                     kvl_error *err)
{
    kvl_cache *c = kvl_session_cache(s);
    int32_t n = kvl_cache_n_tokens(c);
    if (n == 0)
        return KVL_ERR_ARG; /* caller checked; keeps the contract local */
    int32_t id = kvl_cache_token_ids(c)[n - 1];
    int32_t pos = kvl_cache_positions(c)[n - 1];
    kvl_status st = kvl_cache_truncate(c, n - 1, err);
    if (st != KVL_OK)
        return st;
    return kvl_session_forward_at(s, &id, &pos, 1, logits, 0, err);
}

static int load_start_cache(const cli_generate_args *a, kvl_session *s)
{
    kvl_error err = {0};
    kvl_cache *c = NULL;
    if (kvl_cache_load(a->cache_path, &c, &err) != KVL_OK)
        return cli_fail(&err);
    kvl_status st = kvl_session_set_cache(s, c, a->force, &err);
    kvl_cache_free(c);
    return st == KVL_OK ? CLI_OK : cli_fail(&err);
}

/* Runs the prompt (or re-runs the cache's last token) into logits. */
static int prefill(const cli_generate_args *a, gen_state *g,
                   const int32_t *ids, int32_t n)
{
    kvl_error err = {0};
    kvl_status st;
    if (n > 0) {
        st = kvl_session_forward(g->session, ids, n, g->logits, 0, &err);
        g->prev_id = ids[n - 1];
    } else {
        const kvl_cache *c = kvl_session_cache(g->session);
        int32_t nc = kvl_cache_n_tokens(c);
        if (nc == 0)
            return cli_failf("the cache '%s' holds no tokens: give --tokens "
                             "or --prompt to start from",
                             a->cache_path ? a->cache_path : "");
        g->prev_id = kvl_cache_token_ids(c)[nc - 1];
        st = logits_after_cache(g->session, g->logits, &err);
    }
    return st == KVL_OK ? CLI_OK : cli_fail(&err);
}

static int finish(const cli_generate_args *a, gen_state *g)
{
    if (a->ids || g->generated > 0)
        putchar('\n');
    if (fflush(stdout) != 0)
        return cli_failf("cannot write to stdout");
    if (!a->save_cache)
        return CLI_OK;
    kvl_error err = {0};
    if (kvl_cache_save(kvl_session_cache(g->session), a->save_cache,
                       a->save_dtype, &err) != KVL_OK)
        return cli_fail(&err);
    if (a->verbose)
        fprintf(stderr, "saved %" PRId32 " tokens to %s\n",
                kvl_cache_n_tokens(kvl_session_cache(g->session)),
                a->save_cache);
    return CLI_OK;
}

/* Session (with the starting cache), sampler and logits buffer. */
static int gen_setup(const cli_generate_args *a, const cli_model *m,
                     kvl_tokenizer *tok, int32_t n, gen_state *g)
{
    g->tok = tok;
    g->prev_id = -1;
    g->first_out = 1;
    g->greedy = a->sampling.temperature == 0.0f;
    set_eos(g, &m->info, tok);
    int rc = cli_session_open(m, &a->in, (int64_t)n + a->n_new + 1,
                              &g->session);
    if (rc == CLI_OK && a->cache_path)
        rc = load_start_cache(a, g->session);
    kvl_error err = {0};
    if (rc == CLI_OK && kvl_sampler_new(&a->sampling, m->info.vocab_size,
                                        &g->sampler, &err) != KVL_OK)
        rc = cli_fail(&err);
    if (rc == CLI_OK &&
        !(g->logits = malloc((size_t)m->info.vocab_size * sizeof(float))))
        rc = cli_failf("out of memory");
    return rc;
}

static void gen_release(gen_state *g)
{
    free(g->logits);
    kvl_sampler_free(g->sampler);
    kvl_session_free(g->session);
}

static int run_loaded(const cli_generate_args *a, const cli_model *m,
                      kvl_tokenizer *tok, const int32_t *ids, int32_t n)
{
    gen_state g = {0};
    kvl_error err = {0};
    int rc = gen_setup(a, m, tok, n, &g);
    double t0 = now_seconds(), t1 = t0;
    if (rc == CLI_OK)
        rc = prefill(a, &g, ids, n);
    if (rc == CLI_OK) {
        t1 = now_seconds();
        rc = gen_loop(&g, a, m->info.max_seq_len, &err) == KVL_OK
                 ? finish(a, &g)
                 : cli_fail(&err);
    }
    if (rc == CLI_OK && a->verbose) {
        double t2 = now_seconds();
        fprintf(stderr,
                "prompt %" PRId32 " tokens in %.3f s; generated %" PRId32
                " tokens in %.3f s (%.1f tokens/s)\n",
                n, t1 - t0, g.generated, t2 - t1,
                t2 > t1 ? g.generated / (t2 - t1) : 0.0);
    }
    gen_release(&g);
    return rc;
}

/* ---- chat ------------------------------------------------------------------------ */

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The tokenizer_config.json that holds the chat template: in (or beside)
 * --tokenizer, else in the model folder or beside the model file.
 * Returns 1 with its path in out, 0 when there is none (the folder looked
 * in is then in out). */
static int chat_config_path(const cli_generate_args *a, const cli_model *m,
                            char *out, size_t cap)
{
    const char *base = a->in.tokenizer_path ? a->in.tokenizer_path : m->path;
    char dir[PATH_MAX];
    if (is_dir(base)) {
        snprintf(dir, sizeof dir, "%s", base);
    } else {
        if (!realpath(base, dir))
            snprintf(dir, sizeof dir, "%s", base);
        char *slash = strrchr(dir, '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else if (slash == dir)
            dir[1] = '\0'; /* "/x" lies in "/" */
        else
            *slash = '\0';
    }
    snprintf(out, cap, "%s/tokenizer_config.json", dir);
    struct stat st;
    if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
        return 1;
    snprintf(out, cap, "%s", dir);
    return 0;
}

/* The --chat conversation rendered with the chat template: *text is
 * kvl_free'd by the caller. */
static int render_chat(const cli_generate_args *a, const cli_model *m,
                       char **text)
{
    char config[PATH_MAX + 32];
    int have = chat_config_path(a, m, config, sizeof config);
    if (!have && a->chat_family == KVL_CHAT_AUTO)
        return cli_failf("--chat: no tokenizer_config.json in '%s' to take "
                         "the chat template from: pass --chat-template "
                         "FAMILY (chatml, qwen3, llama2, llama3, zephyr)",
                         config);
    kvl_chat_message msgs[2];
    size_t n = 0;
    if (a->system)
        msgs[n++] = (kvl_chat_message){"system", a->system};
    msgs[n++] = (kvl_chat_message){"user", a->chat};
    kvl_error err = {0};
    if (kvl_chat_render(have ? config : NULL, a->chat_family, msgs, n, 1,
                        text, &err) != KVL_OK)
        return cli_fail(&err);
    if (a->verbose)
        fprintf(stderr, "chat prompt (%s template%s%s):\n%s\n",
                kvl_chat_family_name(a->chat_family), have ? " of " : "",
                have ? config : "", *text);
    return CLI_OK;
}

int cli_generate_run(const char *cmd, cli_generate_args *a)
{
    cli_model m;
    kvl_tokenizer *tok = NULL;
    int32_t *ids = NULL, n = 0;
    if (!a->seed_given)
        a->sampling.seed = time_seed();
    if (a->verbose)
        fprintf(stderr, "seed %" PRIu64 "\n", a->sampling.seed);
    int rc = cli_model_open(a->in.model_path, a->in.device, &m);
    if (rc != CLI_OK)
        return rc;
    /* Text output needs the tokenizer even when ids come from --tokens. */
    int need_tok = a->in.prompt != NULL || a->chat != NULL || !a->ids;
    rc = cli_tokenizer_open(&a->in, &m, need_tok, &tok);
    char *chat_text = NULL;
    if (rc == CLI_OK && a->chat) {
        /* The rendered conversation is the prompt, encoded without
         * KVL_ENCODE_ADD_SPECIAL: the template wrote BOS where its family
         * has one. */
        rc = render_chat(a, &m, &chat_text);
        if (rc == CLI_OK) {
            cli_input in = a->in;
            in.prompt = chat_text;
            rc = cli_input_ids(cmd, &in, &m, tok, 0, 0, &ids, &n);
        }
    } else if (rc == CLI_OK) {
        /* After a cache the prompt continues text: no BOS, and no BOS-only
         * start (the cache's last token is the start). */
        rc = cli_input_ids(cmd, &a->in, &m, tok,
                           !a->in.no_bos && !a->cache_path, !a->cache_path,
                           &ids, &n);
    }
    kvl_free(chat_text);
    if (rc == CLI_OK)
        rc = run_loaded(a, &m, tok, ids, n);
    free(ids);
    kvl_tokenizer_free(tok);
    cli_model_close(&m);
    return rc;
}

/* The input, sampling and output options, then generate's own. */
static int generate_option(const char *cmd, int opt, const char *arg,
                           void *ctx)
{
    cli_generate_args *a = ctx;
    int rc = cli_generate_option(cmd, opt, arg, a);
    if (rc != CLI_NOT_MINE)
        return rc;
    switch (opt) {
    case OPT_CACHE:
        a->cache_path = arg;
        return CLI_OK;
    case OPT_CHAT:
        a->chat = arg;
        return CLI_OK;
    case OPT_SYSTEM:
        a->system = arg;
        return CLI_OK;
    case OPT_CHAT_TEMPLATE:
        if (kvl_chat_family_parse(arg, &a->chat_family) != KVL_OK)
            return cli_usage(cmd,
                             "invalid value for --chat-template: "
                             "'%s' (auto, chatml, qwen3, llama2, "
                             "llama3 or zephyr)",
                             arg);
        a->chat_family_given = 1;
        return CLI_OK;
    default:
        return CLI_NOT_MINE;
    }
}

int cmd_generate(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_INPUT_LONG_OPTIONS,
        CLI_SAMPLING_LONG_OPTIONS,
        {"cache", required_argument, NULL, OPT_CACHE},
        {"force", no_argument, NULL, OPT_FORCE},
        {"chat", required_argument, NULL, OPT_CHAT},
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"chat-template", required_argument, NULL, OPT_CHAT_TEMPLATE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *cmd = argv[0];
    cli_generate_args a;
    cli_generate_defaults(&a);
    int rc = cli_parse_options(argc, argv, "hm:n:v", longopts, generate_help,
                               generate_option, &a);
    if (rc != CLI_OK)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    rc = cli_check_positionals(cmd, argc, argv, 0);
    if (rc == CLI_OK)
        rc = cli_input_check(cmd, &a.in, 0);
    if (rc == CLI_OK && a.force && !a.cache_path)
        rc = cli_usage(cmd, "--force only applies with --cache");
    if (rc == CLI_OK && a.chat && (a.in.prompt || a.in.tokens))
        rc = cli_usage(cmd, "--chat replaces --prompt and --tokens: give one "
                       "of them");
    if (rc == CLI_OK && a.chat && a.cache_path)
        rc = cli_usage(cmd, "--chat starts a new conversation: it cannot "
                       "follow --cache");
    if (rc == CLI_OK && !a.chat && (a.system || a.chat_family_given))
        rc = cli_usage(cmd, "%s only applies with --chat",
                       a.system ? "--system" : "--chat-template");
    return rc == CLI_OK ? cli_generate_run(cmd, &a) : rc;
}
