/* kvlab tokenizer train: byte-level BPE training (docs/tokenizer-training.md). */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/bpe_train.h"

static const char tokenizer_help[] =
    "Usage: kvlab tokenizer SUBCOMMAND [OPTIONS]\n"
    "\n"
    "Subcommands:\n"
    "  train --vocab N --out DIR CORPUS...   train a byte-level BPE tokenizer\n"
    "\n"
    "Run 'kvlab tokenizer train --help' for its options.\n";

static const char train_help[] =
    "Usage: kvlab tokenizer train --vocab N --out DIR [--pretokenizer qwen|gpt2]\n"
    "                             [--min-frequency F] [--special TOKEN ...]\n"
    "                             [--no-nfc] [--threads N] CORPUS...\n"
    "\n"
    "Trains a byte-level BPE tokenizer on UTF-8 text files (plain, or\n"
    "zstd-compressed: recognised by their content) and writes\n"
    "DIR/tokenizer.json and DIR/tokenizer_config.json, which kvlab and\n"
    "Hugging Face `tokenizers` / `transformers` load.  Text is NFC-normalised,\n"
    "split with the pre-tokenizer regex and mapped to GPT-2's byte alphabet;\n"
    "the most frequent adjacent pair is merged until the vocabulary has N\n"
    "ids (ties: the pair of smallest ids).  Each file is one text: no\n"
    "pre-token spans two files.  Special tokens found in the corpus are cut\n"
    "out of it, not learned.\n"
    "\n"
    "Options:\n"
    "  --vocab N            ids in all: 256 byte tokens + merged tokens +\n"
    "                       special tokens (required).\n"
    "  -o, --out DIR        output folder, created if missing (required).\n"
    "  --pretokenizer P     split regex: qwen (Qwen2/3, default: single\n"
    "                       digits) or gpt2 (GPT-2: digit runs).\n"
    "  --min-frequency F    stop early when the best pair occurs fewer than\n"
    "                       F times (default 0: no limit).\n"
    "  --special TOKEN      a special token; repeat for several.  Replaces\n"
    "                       the default <|endoftext|> <|im_start|> <|im_end|>.\n"
    "                       Ids follow the merged tokens, in this order; the\n"
    "                       first is the EOS and padding token.\n"
    "  --no-special         no special tokens at all.\n"
    "  --no-nfc             no NFC normaliser (text is used as given).\n"
    "  --threads N          counting threads (default 0 = OpenMP default).\n"
    "  -h, --help           show this help.\n"
    "\n"
    "Example:\n"
    "  kvlab tokenizer train --vocab 8192 --out tok8k train.txt.zst\n"
    "  kvlab generate ... --tokenizer tok8k   # or load it in Python:\n"
    "  python3 -c \"import tokenizers as t; "
    "print(t.Tokenizer.from_file('tok8k/tokenizer.json'))\"\n";

enum {
    OPT_VOCAB = 1000,
    OPT_OUT,
    OPT_PRETOKENIZER,
    OPT_MIN_FREQ,
    OPT_SPECIAL,
    OPT_NO_SPECIAL,
    OPT_NO_NFC,
    OPT_TRAIN_THREADS
};

static int train_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"vocab", required_argument, NULL, OPT_VOCAB},
        {"out", required_argument, NULL, 'o'},
        {"pretokenizer", required_argument, NULL, OPT_PRETOKENIZER},
        {"min-frequency", required_argument, NULL, OPT_MIN_FREQ},
        {"special", required_argument, NULL, OPT_SPECIAL},
        {"no-special", no_argument, NULL, OPT_NO_SPECIAL},
        {"no-nfc", no_argument, NULL, OPT_NO_NFC},
        {"threads", required_argument, NULL, OPT_TRAIN_THREADS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *cmd = argv[0];
    kvl_bpe_train_options o;
    memset(&o, 0, sizeof o);
    const char *out = NULL;
    const char **specials = calloc((size_t)argc + 1, sizeof *specials);
    if (!specials)
        return cli_failf("out of memory");
    int no_special = 0, vocab_given = 0, rc = CLI_OK, opt;
    size_t n_special = 0;
    int64_t minf = 0;
    cli_getopt_reset();
    while (rc == CLI_OK && (opt = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_VOCAB:
            rc = cli_opt_i32(cmd, "--vocab", optarg, 1, INT32_MAX / 2, &o.vocab_size);
            vocab_given = 1;
            break;
        case 'o':
            out = optarg;
            break;
        case OPT_PRETOKENIZER:
            if (!kvl_bpe_pretokenizer_pattern(optarg))
                rc = cli_usage(cmd, "--pretokenizer must be qwen or gpt2, not '%s'", optarg);
            o.pretokenizer = optarg;
            break;
        case OPT_MIN_FREQ:
            if (cli_parse_i64(optarg, 0, INT64_MAX, &minf) != 0)
                rc = cli_usage(cmd, "--min-frequency needs an integer >= 0, not '%s'",
                               optarg);
            o.min_frequency = minf;
            break;
        case OPT_SPECIAL:
            if (!*optarg)
                rc = cli_usage(cmd, "--special needs a non-empty token");
            specials[n_special++] = optarg;
            break;
        case OPT_NO_SPECIAL:
            no_special = 1;
            break;
        case OPT_NO_NFC:
            o.no_nfc = 1;
            break;
        case OPT_TRAIN_THREADS:
            rc = cli_opt_i32(cmd, "--threads", optarg, 0, 4096, &o.n_threads);
            break;
        case 'h':
            fputs(train_help, stdout);
            free(specials);
            return CLI_OK;
        default:
            rc = cli_try_help(cmd);
            break;
        }
    }
    if (rc == CLI_OK && !vocab_given)
        rc = cli_usage(cmd, "--vocab N is required");
    if (rc == CLI_OK && !out)
        rc = cli_usage(cmd, "--out DIR is required");
    if (rc == CLI_OK && no_special && n_special)
        rc = cli_usage(cmd, "--special and --no-special are mutually exclusive");
    size_t n_sp = n_special || no_special ? n_special : 3; /* 3 defaults */
    if (rc == CLI_OK && (int64_t)o.vocab_size < 256 + (int64_t)n_sp)
        rc = cli_usage(cmd, "--vocab %d is too small: it must hold the 256 byte "
                            "tokens and the %zu special tokens",
                       (int)o.vocab_size, n_sp);
    if (rc == CLI_OK && optind >= argc)
        rc = cli_usage(cmd, "missing the CORPUS file(s)");
    if (rc != CLI_OK) {
        free(specials);
        return rc;
    }
    if (n_special || no_special) {
        o.special_tokens = specials;
        o.n_special = n_special;
    }
    kvl_error err = {0};
    kvl_bpe_train_stats s;
    kvl_status st = kvl_tokenizer_train_bpe(&o, (const char *const *)(argv + optind),
                                            (size_t)(argc - optind), out, &s, &err);
    free(specials);
    if (st != KVL_OK)
        return cli_fail(&err);
    double mb = (double)s.bytes / 1e6;
    printf("corpus      %.1f MB in %d file(s), %lld pre-tokens (%lld distinct)\n", mb,
           argc - optind, (long long)s.words, (long long)s.unique_words);
    printf("vocabulary  %d ids (%d merges)%s\n", (int)s.vocab_size, (int)s.n_merges,
           s.vocab_size < o.vocab_size ? ": the corpus ran out of pairs first" : "");
    printf("time        counting %.2f s (%.1f MB/s), merging %.2f s\n", s.seconds_count,
           s.seconds_count > 0 ? mb / s.seconds_count : 0.0, s.seconds_merge);
    printf("wrote       %s/tokenizer.json, %s/tokenizer_config.json\n", out, out);
    return CLI_OK;
}

int cmd_tokenizer(int argc, char **argv)
{
    const char *cmd = argv[0];
    if (argc < 2)
        return cli_usage(cmd, "missing subcommand (train)");
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        fputs(tokenizer_help, stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "train") == 0) {
        char name[64];
        snprintf(name, sizeof name, "kvlab tokenizer %s", sub);
        argv[1] = name;
        return train_main(argc - 1, argv + 1);
    }
    return cli_usage(cmd, "unknown subcommand '%s'", sub);
}
