/* kvlab: command dispatch, top-level help and version. */
#include "cli/cli.h"

#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"run", cmd_run, "the experiment program: structure, cognitive modes, "
                     "transplant, identity, sweep (report + plots)"},
    {"forward", cmd_forward, "one forward pass: top-5 next tokens, or dump "
                             "all logits and the cache"},
    {"generate", cmd_generate, "generate text (or ids) from a prompt or a "
                               "saved cache"},
    {"inspect", cmd_inspect, "run a prompt and report the cache's structure "
                             "and K/V norms"},
    {"cache", cmd_cache, "work with cache files (.kvc): info, save, load, "
                         "slice, reposition"},
    {"tokenizer", cmd_tokenizer, "train a byte-level BPE tokenizer "
                                 "(tokenizer train)"},
    {"tokenize", cmd_tokenize, "text on stdin to token ids"},
    {"detokenize", cmd_detokenize, "token ids on stdin to text"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char main_help[] =
    "Usage: kvlab COMMAND [OPTIONS]\n"
    "       kvlab --help | --version | help COMMAND\n"
    "\n"
    "Runs Llama / Qwen checkpoints on the CPU and treats their KV cache as\n"
    "a first-class object: look inside it, save it, slice it, move it to\n"
    "other positions, continue generating from it, and run the experiment\n"
    "program on it ('kvlab run': the whole program on the demo pair).\n"
    "\n"
    "Commands:\n";

static const char main_help_tail[] =
    "\n"
    "Cache subcommands: kvlab cache info | save | load | slice | reposition\n"
    "\n"
    "Options:\n"
    "  -h, --help       show this help (kvlab COMMAND --help for a command)\n"
    "  -V, --version    print the program and library versions\n"
    "\n"
    "Model: commands that take --model default to $KVLAB_MODEL, then to the\n"
    "bundled model <source>/models/default (the demo receiver).\n"
    "\n"
    "Exit status: 0 success; 1 failure (the message follows 'kvlab: ' on\n"
    "stderr); 2 bad usage (unknown option, missing or malformed value).\n"
    "\n"
    "Examples:\n"
    "  kvlab generate -m stories260K.bin --prompt 'Once upon a time' -n 50\n"
    "  kvlab cache save -m stories260K.bin --prompt 'Once upon' -o a.kvc\n"
    "  kvlab cache load -m stories260K.bin a.kvc -n 20 --temp 0\n"
    "  printf 'Once upon a time' | kvlab tokenize --tokenizer tok512.bin\n"
    "\n"
    "Reference: docs/cli.md\n";

static void print_main_help(FILE *out)
{
    fputs(main_help, out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs(main_help_tail, out);
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int unknown_command(const char *name)
{
    fprintf(stderr, "kvlab: unknown command '%s'\n", name);
    return cli_try_help("kvlab");
}

/* Runs cmd with argv[0] replaced by its display name, so that getopt's
 * own messages read "kvlab generate: unrecognized option ...". */
static int run_command(const command *cmd, int argc, char **argv)
{
    char name[64];
    snprintf(name, sizeof name, "kvlab %s", cmd->name);
    argv[0] = name;
    return cmd->run(argc, argv);
}

/* `kvlab help [COMMAND [SUB]]` = `kvlab COMMAND [SUB] --help`. */
static int help_command(int argc, char **argv)
{
    if (argc < 2) {
        print_main_help(stdout);
        return CLI_OK;
    }
    const command *cmd = find_command(argv[1]);
    if (!cmd)
        return unknown_command(argv[1]);
    char help[] = "--help";
    char *args[4] = {argv[1], NULL, NULL, NULL};
    int n = 1;
    if (argc > 2)
        args[n++] = argv[2];
    args[n++] = help;
    return run_command(cmd, n, args);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("kvlab: missing command\n", stderr);
        return cli_try_help("kvlab");
    }
    const char *a = argv[1];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
        print_main_help(stdout);
        return CLI_OK;
    }
    if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
        printf("kvlab %s (library %s)\n", KVL_VERSION_STRING, kvl_version());
        return CLI_OK;
    }
    if (strcmp(a, "help") == 0)
        return help_command(argc - 1, argv + 1);
    if (a[0] == '-') {
        fprintf(stderr, "kvlab: unknown option '%s'\n", a);
        return cli_try_help("kvlab");
    }
    const command *cmd = find_command(a);
    if (!cmd)
        return unknown_command(a);
    return run_command(cmd, argc - 1, argv + 1);
}
