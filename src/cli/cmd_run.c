/* kvlab run: the experiment program. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "experiments/config.h"
#include "kvl_revision.h"

static const char run_help[] =
    "Usage: kvlab run [PHASE] [CONFIG.json] [--output DIR] [--model PATH]...\n"
    "                 [--threads N] [--quiet]\n"
    "\n"
    "Runs the experiment program described by CONFIG (default: the shipped\n"
    "<source>/experiments/default.json, on the bundled demo pair) and writes\n"
    "results/<name>/: runs.jsonl (one record per generation or measurement),\n"
    "summary.json (every statistic, and the provenance: kvlab revision,\n"
    "model fingerprints, config, seeds, machine, wall time), report.md with\n"
    "plots under plots/.  Prints the report's path when done.\n"
    "\n"
    "PHASE runs one phase instead of the config's list:\n"
    "  structure  cache geometry, bytes per token, K/V norms per layer/head\n"
    "  modes      cognitive-mode battery: cache and generation features,\n"
    "             bootstrap intervals, Kruskal-Wallis, Mann-Whitney + Holm,\n"
    "             effect sizes, cross-validated mode classifier\n"
    "  transfer   cache transplant within one model, with and without RoPE\n"
    "             correction, against text, noise and unrelated caches\n"
    "  identity   persona signatures: random forest and logistic regression\n"
    "             on cache features, permutation test, cross-model transfer\n"
    "  sweep      the battery over several models, normalised per model\n"
    "  all        every phase (the default)\n"
    "\n"
    "Options:\n"
    "  -o, --output DIR     results folder (default: <config output>/<name>,\n"
    "                       i.e. results/default for the default config).\n"
    "  -m, --model PATH     run on this model instead of the config's models\n"
    "                       (repeat for several: the sweep compares them).\n"
    "  --threads N          worker threads (default 0: every core).\n"
    "  -q, --quiet          no progress bar (it is drawn on stderr only when\n"
    "                       stderr is a terminal).\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Same config and seed give the same numbers whatever the thread count.\n"
    "The config format and every metric: docs/experiments.md.\n"
    "\n"
    "Examples:\n"
    "  kvlab run                                  # everything, demo pair\n"
    "  kvlab run modes                            # the battery only\n"
    "  kvlab run sweep -m ./Qwen2.5-0.5B -m ./Llama-3.2-1B\n"
    "  kvlab run experiments/default.json -o /tmp/r\n";

typedef struct run_args {
    const char *cmd;
    const char *output;
    const char **models;
    int32_t n_models;
    int32_t threads;
    int quiet;
} run_args;

enum { OPT_RUN_THREADS = 1000 };

static int run_option(const char *cmd, int opt, const char *arg, void *ctx)
{
    run_args *a = ctx;
    switch (opt) {
    case 'o':
        a->output = arg;
        return CLI_OK;
    case 'm':
        a->models[a->n_models++] = arg;
        return CLI_OK;
    case OPT_RUN_THREADS:
        return cli_opt_i32(cmd, "--threads", arg, 0, 4096, &a->threads);
    case 'q':
        a->quiet = 1;
        return CLI_OK;
    default:
        return CLI_NOT_MINE;
    }
}

/* A one-line bar on stderr: "modes: demo-receiver  [#####     ] 40% 840/2100  12s". */
typedef struct bar {
    time_t start;
    char task[128];
} bar;

static void draw_bar(void *user, const char *task, int64_t done, int64_t total)
{
    bar *b = user;
    if (strncmp(b->task, task, sizeof b->task - 1) != 0) {
        if (b->task[0])
            fputc('\n', stderr);
        snprintf(b->task, sizeof b->task, "%s", task);
        b->start = time(NULL);
    }
    const int width = 30;
    int fill = total > 0 ? (int)(width * done / total) : width;
    char cells[64];
    for (int i = 0; i < width; i++)
        cells[i] = i < fill ? '#' : ' ';
    cells[width] = '\0';
    fprintf(stderr, "\r%-28.28s [%s] %3d%% %lld/%lld %llds", task, cells,
            total > 0 ? (int)(100 * done / total) : 100, (long long)done,
            (long long)total, (long long)(time(NULL) - b->start));
    fflush(stderr);
}

static int positional(const char *cmd, int argc, char **argv,
                      const char **phase, const char **config)
{
    for (int i = optind; i < argc; i++) {
        int32_t bit = 0;
        if (!*phase && !*config && kvl_exp_phase_parse(argv[i], &bit, NULL) == KVL_OK) {
            *phase = argv[i];
        } else if (!*config) {
            *config = argv[i];
        } else {
            return cli_usage(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    return CLI_OK;
}

int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"model", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, OPT_RUN_THREADS},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    run_args a = {argv[0], NULL, NULL, 0, 0, 0};
    a.models = calloc((size_t)argc + 1, sizeof *a.models);
    if (!a.models)
        return cli_failf("out of memory");
    int rc = cli_parse_options(argc, argv, "o:m:qh", longopts, run_help,
                               run_option, &a);
    const char *phase = NULL, *config = NULL;
    if (rc == CLI_OK)
        rc = positional(a.cmd, argc, argv, &phase, &config);
    if (rc == CLI_OK && a.n_models > 16)
        rc = cli_usage(a.cmd, "at most 16 --model options");
    if (rc != CLI_OK) {
        free(a.models);
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    }
    char def[4096];
    if (!config) {
        snprintf(def, sizeof def, "%s/experiments/default.json", KVL_SOURCE_DIR);
        config = def;
    }
    bar b = {0, ""};
    kvl_run_options o = {phase, a.output, a.threads, KVL_REVISION,
                         a.n_models ? a.models : NULL, a.n_models, NULL, NULL};
    if (!a.quiet && isatty(2)) {
        o.progress = draw_bar;
        o.progress_user = &b;
    }
    kvl_error err = {0};
    char *report = NULL;
    kvl_status st = kvl_experiment_run(config, &o, &report, &err);
    if (b.task[0])
        fputc('\n', stderr);
    free(a.models);
    if (st != KVL_OK)
        return cli_fail(&err);
    printf("%s\n", report);
    kvl_free(report);
    return CLI_OK;
}
