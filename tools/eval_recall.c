/*
 * eval_recall: in-context recall of the demo models measured through kvlab
 * (issue 4; docs/demo-models.md, "Recall measured through kvlab").
 *
 *   eval_recall --model DIR [--tokenizer PATH] --items FILE.jsonl
 *               [--max-new N] [--threads N] [--json OUT] [--limit N]
 *
 * FILE.jsonl holds the items of `gen_dialogues eval`: one JSON object a
 * line with "prefix" (a ChatML conversation ending in
 * "<|im_start|>assistant\n"), "answer", "kind" (name|city|job), "source"
 * (system|user) and "id".  For each item, exactly as recall_eval in
 * models/recipe/train_demo.py does it in PyTorch:
 *
 *   - the prefix is encoded without added special tokens (the ChatML
 *     markers written in the text are recognised as their ids);
 *   - greedy decoding (kvl_sampler, temperature 0) from an emptied session,
 *     up to --max-new tokens (default 24, the recipe's --eval-max-new),
 *     stopping at any of the model's end-of-generation ids
 *     (kvl_model_info.eos_token_ids: generation_config.json's eos_token_id,
 *     [<|im_end|>, <|endoftext|>] for the demo models, as in the recipe);
 *     the stop token itself is not part of the reply;
 *   - the reply is decoded with special tokens kept (skip_special_tokens=
 *     False) and invalid UTF-8 replaced by U+FFFD as `tokenizers` does
 *     (String::from_utf8_lossy: one U+FFFD per maximal invalid subpart);
 *   - correct iff Python's
 *       re.search(r"(?<![A-Za-z])" + re.escape(answer) + r"(?![A-Za-z])",
 *                 reply, re.IGNORECASE)
 *     finds a match (er_contains_word below).
 *
 * It prints the accuracy per kind, per kind/source and overall, with the
 * counts and Wilson 95% score intervals, and the time taken; --json OUT
 * writes the per-item replies and the summary.  Only the public kvlab API
 * is used.  Exit status: 0 done, 1 an error (files, model, a malformed
 * item), 2 bad usage.
 *
 * The matcher and the interval have external linkage so that
 * tests/tools/test_eval_recall.c can include this file with ER_NO_MAIN.
 */
#include "kvlab.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ER_DEFAULT_MAX_NEW 24 /* train_demo.py --eval-max-new */

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

/* Decodes the code point at s[i] (i < n) into *cp and returns the bytes it
 * takes.  An invalid sequence gives U+FFFD for its maximal subpart (the
 * longest prefix of a well-formed sequence, at least one byte), as Rust's
 * String::from_utf8_lossy and Python's errors="replace" do. */
size_t er_utf8_next(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
    unsigned b = s[i];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    uint32_t v;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        v = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        v = b & 0x0F;
        if (b == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (b == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        v = b & 0x07;
        if (b == 0xF0)
            lo = 0x90;
        else if (b == 0xF4)
            hi = 0x8F; /* <= U+10FFFF */
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    size_t k = 1;
    for (; k <= need; k++) {
        if (i + k >= n)
            break;
        unsigned c = s[i + k];
        unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (c < l || c > h)
            break;
        v = (v << 6) | (c & 0x3F);
    }
    if (k <= need) {
        *cp = 0xFFFD;
        return k; /* the lead byte and the valid continuations seen */
    }
    *cp = v;
    return need + 1;
}

/* s[0..n) as a new array of code points (*out, *n_out); -1 out of memory. */
static int er_utf8_decode_all(const char *s, size_t n, uint32_t **out, size_t *n_out)
{
    uint32_t *cps = malloc((n + 1) * sizeof *cps);
    if (!cps)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n;)
        i += er_utf8_next((const unsigned char *)s, n, i, &cps[m++]);
    *out = cps;
    *n_out = m;
    return 0;
}

/* s[0..n) with every invalid subpart replaced by U+FFFD, as a new
 * NUL-terminated string; NULL out of memory. */
char *er_utf8_lossy(const char *s, size_t n)
{
    char *out = malloc(3 * n + 1); /* one byte may become 3 (U+FFFD) */
    if (!out)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = er_utf8_next((const unsigned char *)s, n, i, &cp);
        if (cp == 0xFFFD && !(k == 3 && memcmp(s + i, "\xEF\xBF\xBD", 3) == 0)) {
            memcpy(out + m, "\xEF\xBF\xBD", 3);
            m += 3;
        } else {
            memcpy(out + m, s + i, k);
            m += k;
        }
        i += k;
    }
    out[m] = '\0';
    return out;
}

/* ------------------------------------------------------------------------ */
/* The recipe's whole-word, case-insensitive match                           */
/* ------------------------------------------------------------------------ */

/* Python's re with IGNORECASE on str: an ASCII letter matches its other
 * case and, through sre's special folds, i ~ U+0130 (I with dot) and
 * U+0131 (dotless i), s ~ U+017F (long s), k ~ U+212A (Kelvin sign).
 * Found by trying every code point against each ASCII letter and against
 * [A-Za-z] with Python 3.11's re (the class matches exactly these 52 + 4
 * characters).  Other code points are compared as they are (the
 * generator's answers are ASCII; a non-ASCII letter in an answer would be
 * matched without case folding). */
static uint32_t er_fold(uint32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + ('a' - 'A');
    if (c == 0x130 || c == 0x131)
        return 'i';
    if (c == 0x17F)
        return 's';
    if (c == 0x212A)
        return 'k';
    return c;
}

/* [A-Za-z] under re.IGNORECASE. */
static int er_is_letter(uint32_t c)
{
    c = er_fold(c);
    return c >= 'a' && c <= 'z';
}

/* 1 when `answer` occurs in reply[0..reply_len) case-insensitively with no
 * letter right before or right after it (the recipe's regex
 * (?<![A-Za-z])ANSWER(?![A-Za-z]) with re.IGNORECASE), 0 when not, -1 out
 * of memory.  Both are UTF-8 (invalid bytes read as U+FFFD). */
int er_contains_word(const char *reply, size_t reply_len, const char *answer)
{
    uint32_t *r = NULL, *a = NULL;
    size_t nr = 0, na = 0;
    if (er_utf8_decode_all(reply, reply_len, &r, &nr) != 0 ||
        er_utf8_decode_all(answer, strlen(answer), &a, &na) != 0) {
        free(r);
        return -1;
    }
    int found = 0;
    for (size_t s = 0; !found && s + na <= nr; s++) {
        if (s > 0 && er_is_letter(r[s - 1]))
            continue;
        if (s + na < nr && er_is_letter(r[s + na]))
            continue;
        size_t j = 0;
        while (j < na && er_fold(r[s + j]) == er_fold(a[j]))
            j++;
        found = j == na;
    }
    free(r);
    free(a);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Wilson score interval                                                     */
/* ------------------------------------------------------------------------ */

/* The two-sided 95% Wilson score interval of k successes in n trials:
 *   centre = (p + z^2/2n) / (1 + z^2/n)
 *   half   = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2)
 * with p = k/n and z = 1.959963984540054 (the 97.5% normal quantile).
 * n = 0 gives [0, 1]. */
void er_wilson(long k, long n, double *lo, double *hi)
{
    if (n <= 0 || k < 0 || k > n) {
        *lo = 0.0;
        *hi = 1.0;
        return;
    }
    const double z = 1.959963984540054;
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double den = 1.0 + z2 / nn;
    double centre = (p + z2 / (2.0 * nn)) / den;
    double half = z / den * sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
    *lo = centre - half;
    *hi = centre + half;
    /* exact at the ends (k = 0: lo = 0; k = n: hi = 1), clamped against
     * rounding */
    if (k == 0 || *lo < 0.0)
        *lo = 0.0;
    if (k == n || *hi > 1.0)
        *hi = 1.0;
}

#ifndef ER_NO_MAIN

/* ------------------------------------------------------------------------ */
/* Items and per-group counts                                                */
/* ------------------------------------------------------------------------ */

typedef struct er_item {
    json_int_t id;
    char *kind, *source, *prefix, *answer;
    /* results */
    int32_t *ids; /* the encoded prefix */
    size_t n_ids;
    char *reply;   /* valid UTF-8 */
    int ok;
    int32_t n_generated;
    int32_t stop_id; /* the end-of-generation id met, or -1 (max_new) */
} er_item;

typedef struct er_items {
    er_item *v;
    size_t n, cap;
} er_items;

static void er_items_free(er_items *it)
{
    for (size_t i = 0; i < it->n; i++) {
        er_item *x = &it->v[i];
        free(x->kind);
        free(x->source);
        free(x->prefix);
        free(x->answer);
        kvl_free(x->ids);
        free(x->reply);
    }
    free(it->v);
    it->v = NULL;
    it->n = it->cap = 0;
}

/* A required string member of an item; NULL after printing the problem. */
static char *er_item_string(json_t *j, const char *key, const char *path, long line,
                            int required)
{
    json_t *v = json_object_get(j, key);
    if (!v && !required)
        return strdup("");
    if (!json_is_string(v)) {
        fprintf(stderr, "eval_recall: %s:%ld: \"%s\" is %s (a string is needed)\n", path,
                line, key, v ? "not a string" : "missing");
        return NULL;
    }
    char *s = strdup(json_string_value(v));
    if (!s)
        fprintf(stderr, "eval_recall: out of memory\n");
    return s;
}

/* Reads up to `limit` items (0: all) of a JSONL file.  Returns 0 or 1 after
 * printing the problem. */
static int er_read_items(const char *path, long limit, er_items *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "eval_recall: cannot open the items file %s: %s\n", path,
                strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    while (rc == 0 && (limit <= 0 || (long)out->n < limit) &&
           (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        size_t k = 0;
        while (k < (size_t)len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' ||
                                   line[k] == '\n'))
            k++;
        if (k == (size_t)len)
            continue; /* blank line */
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)len, 0, &jerr);
        if (!j || !json_is_object(j)) {
            fprintf(stderr, "eval_recall: %s:%ld: %s\n", path, lineno,
                    j ? "not a JSON object" : jerr.text);
            json_decref(j);
            rc = 1;
            break;
        }
        if (out->n == out->cap) {
            size_t cap = out->cap ? 2 * out->cap : 256;
            er_item *v = realloc(out->v, cap * sizeof *v);
            if (!v) {
                fprintf(stderr, "eval_recall: out of memory\n");
                json_decref(j);
                rc = 1;
                break;
            }
            out->v = v;
            out->cap = cap;
        }
        er_item *it = &out->v[out->n++];
        memset(it, 0, sizeof *it);
        it->stop_id = -1;
        json_t *id = json_object_get(j, "id");
        if (id && !json_is_integer(id)) {
            fprintf(stderr, "eval_recall: %s:%ld: \"id\" is not an integer\n", path,
                    lineno);
            rc = 1;
        }
        it->id = id ? json_integer_value(id) : (json_int_t)(out->n - 1);
        if (rc == 0 && (!(it->prefix = er_item_string(j, "prefix", path, lineno, 1)) ||
                        !(it->answer = er_item_string(j, "answer", path, lineno, 1)) ||
                        !(it->kind = er_item_string(j, "kind", path, lineno, 1)) ||
                        !(it->source = er_item_string(j, "source", path, lineno, 0))))
            rc = 1;
        if (rc == 0 && it->prefix[0] == '\0') {
            fprintf(stderr, "eval_recall: %s:%ld: the prefix is empty\n", path, lineno);
            rc = 1;
        }
        json_decref(j);
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "eval_recall: cannot read %s: %s\n", path, strerror(errno));
        rc = 1;
    }
    free(line);
    fclose(f);
    if (rc == 0 && out->n == 0) {
        fprintf(stderr, "eval_recall: %s holds no items\n", path);
        rc = 1;
    }
    return rc;
}

typedef struct er_group {
    char *key; /* "name", "name/system", ..., "all" */
    long correct, n;
} er_group;

typedef struct er_groups {
    er_group *v;
    size_t n, cap;
} er_groups;

static int er_group_add(er_groups *g, const char *key, int ok)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->v[i].key, key) == 0) {
            g->v[i].correct += ok;
            g->v[i].n++;
            return 0;
        }
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        er_group *v = realloc(g->v, cap * sizeof *v);
        if (!v)
            return -1;
        g->v = v;
        g->cap = cap;
    }
    if (!(g->v[g->n].key = strdup(key)))
        return -1;
    g->v[g->n].correct = ok;
    g->v[g->n].n = 1;
    g->n++;
    return 0;
}

/* Kinds first, then "all", then kind/source; each part sorted. */
static int er_group_rank(const char *key)
{
    return strcmp(key, "all") == 0 ? 1 : strchr(key, '/') ? 2 : 0;
}

static int er_group_cmp(const void *pa, const void *pb)
{
    const er_group *a = pa, *b = pb;
    int ra = er_group_rank(a->key), rb = er_group_rank(b->key);
    return ra != rb ? ra - rb : strcmp(a->key, b->key);
}

static void er_groups_free(er_groups *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->v[i].key);
    free(g->v);
}

/* ------------------------------------------------------------------------ */
/* The program                                                               */
/* ------------------------------------------------------------------------ */

static const char usage[] =
    "Usage: eval_recall --model DIR [--tokenizer PATH] --items FILE.jsonl\n"
    "                   [--max-new N] [--threads N] [--json OUT] [--limit N]\n"
    "\n"
    "In-context recall of a chat model on `gen_dialogues eval` items, scored as\n"
    "models/recipe/train_demo.py does: greedy reply to each prefix (no special\n"
    "tokens added) up to N new tokens (default 24), stopping at the model's\n"
    "end-of-generation ids; correct when the answer occurs in the reply as a\n"
    "whole word, ignoring case.  Prints accuracy per kind and kind/source with\n"
    "Wilson 95% intervals.\n"
    "  --model DIR       model folder (or llama2.c .bin) for kvl_model_load\n"
    "  --tokenizer PATH  default: the model folder\n"
    "  --items FILE      JSON lines with prefix, answer, kind, source, id\n"
    "  --max-new N       new tokens at most per reply (default 24)\n"
    "  --threads N       threads for the forward passes (default: OpenMP's)\n"
    "  --json OUT        write per-item replies and the summary to OUT\n"
    "  --limit N         only the first N items\n"
    "Exit status: 0 done, 1 error, 2 bad usage.  See docs/demo-models.md.\n";

typedef struct er_args {
    const char *model, *tokenizer, *items, *json;
    long max_new, threads, limit;
} er_args;

static int er_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* 0 parsed, 2 bad usage, 3 --help printed. */
static int er_parse_args(int argc, char **argv, er_args *a)
{
    *a = (er_args){NULL, NULL, NULL, NULL, ER_DEFAULT_MAX_NEW, 0, 0};
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            fputs(usage, stdout);
            return 3;
        }
        const char **str = strcmp(o, "--model") == 0       ? &a->model
                           : strcmp(o, "--tokenizer") == 0 ? &a->tokenizer
                           : strcmp(o, "--items") == 0     ? &a->items
                           : strcmp(o, "--json") == 0      ? &a->json
                                                           : NULL;
        long *num = strcmp(o, "--max-new") == 0   ? &a->max_new
                    : strcmp(o, "--threads") == 0 ? &a->threads
                    : strcmp(o, "--limit") == 0   ? &a->limit
                                                  : NULL;
        if (!str && !num) {
            fprintf(stderr, "eval_recall: unknown option '%s'\n%s", o, usage);
            return 2;
        }
        if (!v || !*v) {
            fprintf(stderr, "eval_recall: %s needs a value\n", o);
            return 2;
        }
        if (str) {
            *str = v;
        } else {
            long min = num == &a->threads ? 0 : 1;
            long max = num == &a->threads ? 4096 : num == &a->max_new ? 1000000 : 1000000000;
            if (er_parse_long(v, min, max, num) != 0) {
                fprintf(stderr, "eval_recall: %s needs an integer in %ld..%ld, not '%s'\n", o,
                        min, max, v);
                return 2;
            }
        }
    }
    if (!a->model || !a->items) {
        fprintf(stderr, "eval_recall: --model and --items are required\n%s", usage);
        return 2;
    }
    if (!a->tokenizer)
        a->tokenizer = a->model;
    return 0;
}

static double er_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int er_kvl_fail(const char *what, const kvl_error *err)
{
    fprintf(stderr, "eval_recall: %s: %s\n", what, err->message[0] ? err->message : "failed");
    return 1;
}

typedef struct er_run {
    kvl_model *model;
    kvl_tokenizer *tok;
    kvl_model_info info;
    int32_t eos[16];
    int n_eos;
    kvl_session *session;
    kvl_sampler *sampler;
    float *logits;
    int32_t *gen;
    size_t prompt_tokens, generated_tokens;
    double seconds_prefill, seconds_decode;
} er_run;

static int er_is_eos(const er_run *r, int32_t id)
{
    for (int i = 0; i < r->n_eos; i++)
        if (r->eos[i] == id)
            return 1;
    return 0;
}

/* The greedy reply to one item (fills reply, ok, n_generated, stop_id). */
static int er_eval_item(er_run *r, const er_args *a, er_item *it)
{
    kvl_error err = {0};
    kvl_session_reset(r->session);
    double t0 = er_now();
    if (kvl_session_forward(r->session, it->ids, (int32_t)it->n_ids, r->logits, 0, &err) !=
        KVL_OK)
        return er_kvl_fail("forward pass over the prefix", &err);
    double t1 = er_now();
    int32_t n = 0;
    for (long i = 0; i < a->max_new; i++) {
        int32_t id = kvl_sampler_sample(r->sampler, r->logits);
        if (er_is_eos(r, id)) {
            it->stop_id = id;
            break;
        }
        r->gen[n++] = id;
        if (i + 1 == a->max_new)
            break;
        if (kvl_session_forward(r->session, &id, 1, r->logits, 0, &err) != KVL_OK)
            return er_kvl_fail("forward pass of a generated token", &err);
    }
    double t2 = er_now();
    r->seconds_prefill += t1 - t0;
    r->seconds_decode += t2 - t1;
    r->prompt_tokens += it->n_ids;
    r->generated_tokens += (size_t)n;
    it->n_generated = n;
    char *text = NULL;
    size_t len = 0;
    if (n > 0 && kvl_tokenizer_decode(r->tok, r->gen, (size_t)n, 0, &text, &len, &err) != KVL_OK)
        return er_kvl_fail("decoding a reply", &err);
    it->reply = er_utf8_lossy(text ? text : "", text ? len : 0);
    kvl_free(text);
    if (!it->reply) {
        fprintf(stderr, "eval_recall: out of memory\n");
        return 1;
    }
    int ok = er_contains_word(it->reply, strlen(it->reply), it->answer);
    if (ok < 0) {
        fprintf(stderr, "eval_recall: out of memory\n");
        return 1;
    }
    it->ok = ok;
    return 0;
}

static int er_setup(er_run *r, const er_args *a, er_items *items)
{
    kvl_error err = {0};
    if (kvl_model_load(a->model, NULL, &r->model, &err) != KVL_OK)
        return er_kvl_fail("loading the model", &err);
    kvl_model_get_info(r->model, &r->info);
    if (kvl_tokenizer_load(a->tokenizer, r->info.vocab_size, &r->tok, &err) != KVL_OK)
        return er_kvl_fail("loading the tokenizer", &err);
    if (kvl_tokenizer_vocab_size(r->tok) != r->info.vocab_size)
        fprintf(stderr, "eval_recall: warning: the tokenizer %s has %d ids and the model %d: "
                        "is it the model's tokenizer?\n",
                a->tokenizer, (int)kvl_tokenizer_vocab_size(r->tok), (int)r->info.vocab_size);
    for (int32_t i = 0; i < r->info.n_eos_token_ids && r->n_eos < 16; i++)
        r->eos[r->n_eos++] = r->info.eos_token_ids[i];
    if (r->n_eos == 0 && r->info.eos_token_id >= 0)
        r->eos[r->n_eos++] = r->info.eos_token_id;
    if (r->n_eos == 0)
        fprintf(stderr, "eval_recall: warning: the model names no end-of-generation id; "
                        "every reply runs to --max-new tokens\n");
    size_t longest = 0;
    for (size_t i = 0; i < items->n; i++) {
        er_item *it = &items->v[i];
        if (kvl_tokenizer_encode_alloc(r->tok, it->prefix, strlen(it->prefix), 0, &it->ids,
                                       &it->n_ids, &err) != KVL_OK) {
            fprintf(stderr, "eval_recall: encoding the prefix of item %" JSON_INTEGER_FORMAT
                            ": %s\n",
                    it->id, err.message);
            return 1;
        }
        for (size_t k = 0; k < it->n_ids; k++)
            if (it->ids[k] < 0 || it->ids[k] >= r->info.vocab_size) {
                fprintf(stderr, "eval_recall: item %" JSON_INTEGER_FORMAT ": token id %d is "
                                "outside the model's vocabulary (0..%d): wrong tokenizer?\n",
                        it->id, (int)it->ids[k], (int)r->info.vocab_size - 1);
                return 1;
            }
        if (it->n_ids == 0 || it->n_ids > (size_t)INT32_MAX / 2) {
            fprintf(stderr, "eval_recall: item %" JSON_INTEGER_FORMAT ": the prefix encodes "
                            "to %zu tokens\n",
                    it->id, it->n_ids);
            return 1;
        }
        if (it->n_ids > longest)
            longest = it->n_ids;
    }
    if ((int64_t)longest + a->max_new > r->info.max_seq_len)
        fprintf(stderr, "eval_recall: warning: %zu prefix tokens + %ld new exceed the model's "
                        "max_seq_len %d\n",
                longest, a->max_new, (int)r->info.max_seq_len);
    kvl_session_options so = {0};
    so.max_tokens = (int32_t)(longest + (size_t)a->max_new + 1);
    so.n_threads = (int32_t)a->threads;
    if (kvl_session_new(r->model, &so, &r->session, &err) != KVL_OK)
        return er_kvl_fail("creating a session", &err);
    kvl_sampler_options sp = {0};
    sp.temperature = 0.0f;
    if (kvl_sampler_new(&sp, r->info.vocab_size, &r->sampler, &err) != KVL_OK)
        return er_kvl_fail("creating the sampler", &err);
    r->logits = malloc((size_t)r->info.vocab_size * sizeof *r->logits);
    r->gen = malloc((size_t)a->max_new * sizeof *r->gen);
    if (!r->logits || !r->gen) {
        fprintf(stderr, "eval_recall: out of memory\n");
        return 1;
    }
    return 0;
}

static void er_release(er_run *r)
{
    free(r->gen);
    free(r->logits);
    kvl_sampler_free(r->sampler);
    kvl_session_free(r->session);
    kvl_tokenizer_free(r->tok);
    kvl_model_free(r->model);
}

static json_t *er_group_json(const er_group *g)
{
    double lo, hi;
    er_wilson(g->correct, g->n, &lo, &hi);
    return json_pack("{s:I, s:I, s:f, s:[f, f]}", "correct", (json_int_t)g->correct, "n",
                     (json_int_t)g->n, "accuracy", (double)g->correct / (double)g->n,
                     "wilson95", lo, hi);
}

static int er_write_json(const er_args *a, const er_run *r, const er_items *items,
                         const er_groups *g, double seconds)
{
    json_t *summary = json_object(), *rows = json_array(), *eos = json_array();
    int bad = !summary || !rows || !eos;
    for (int i = 0; !bad && i < r->n_eos; i++)
        bad |= json_array_append_new(eos, json_integer(r->eos[i]));
    for (size_t i = 0; !bad && i < g->n; i++) {
        json_t *v = er_group_json(&g->v[i]);
        bad |= !v || json_object_set_new(summary, g->v[i].key, v);
    }
    for (size_t i = 0; !bad && i < items->n; i++) {
        const er_item *it = &items->v[i];
        json_t *row = json_pack("{s:I, s:s, s:s, s:s, s:s, s:b, s:i, s:i, s:o}", "id", it->id,
                                "kind", it->kind, "source", it->source, "answer", it->answer,
                                "reply", it->reply, "ok", it->ok, "prompt_tokens",
                                (int)it->n_ids, "generated_tokens", (int)it->n_generated,
                                "stop_id",
                                it->stop_id >= 0 ? json_integer(it->stop_id) : json_null());
        bad |= !row || json_array_append_new(rows, row);
    }
    json_t *timing = json_pack(
        "{s:f, s:f, s:f, s:I, s:I}", "seconds", seconds, "seconds_prefill", r->seconds_prefill,
        "seconds_decode", r->seconds_decode, "prompt_tokens", (json_int_t)r->prompt_tokens,
        "generated_tokens", (json_int_t)r->generated_tokens);
    json_t *root = NULL;
    if (!bad && timing) /* "o" steals the references, also on failure */
        root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:s, s:o, s:o, s:o}",
                         "model", a->model, "arch", r->info.arch_name ? r->info.arch_name : "",
                         "fingerprint",
                         r->info.fingerprint ? r->info.fingerprint : "", "tokenizer",
                         a->tokenizer, "items_file", a->items,
                         "n_items", (json_int_t)items->n, "max_new", (json_int_t)a->max_new,
                         "eos_token_ids", eos, "kvlab_version", kvl_version(), "timing",
                         timing, "summary", summary, "items", rows);
    else {
        json_decref(eos);
        json_decref(timing);
        json_decref(summary);
        json_decref(rows);
    }
    if (!root) {
        fprintf(stderr, "eval_recall: out of memory building the JSON output\n");
        return 1;
    }
    int rc = json_dump_file(root, a->json, JSON_INDENT(1)) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "eval_recall: cannot write %s: %s\n", a->json, strerror(errno));
    json_decref(root);
    return rc;
}

static void er_print(const er_args *a, const er_run *r, const er_items *items,
                     const er_groups *g, double seconds)
{
    printf("model %s (%s, %.2fM parameters), tokenizer %s\n", a->model, r->info.arch_name,
           (double)r->info.n_params / 1e6, a->tokenizer);
    printf("%zu items from %s; greedy, at most %ld new tokens, stop at", items->n, a->items,
           a->max_new);
    for (int i = 0; i < r->n_eos; i++)
        printf(" %d", (int)r->eos[i]);
    printf("%s\n\n", r->n_eos ? "" : " (nothing)");
    printf("%-14s %8s %6s %9s   %s\n", "group", "correct", "n", "accuracy", "Wilson 95%");
    for (size_t i = 0; i < g->n; i++) {
        const er_group *x = &g->v[i];
        double lo, hi;
        er_wilson(x->correct, x->n, &lo, &hi);
        printf("%-14s %8ld %6ld %8.1f%%   [%.1f%%, %.1f%%]\n", x->key, x->correct, x->n,
               100.0 * (double)x->correct / (double)x->n, 100.0 * lo, 100.0 * hi);
    }
    printf("\ntime %.1f s (%.3f s per item): prefill %.1f s for %zu prompt tokens, "
           "decode %.1f s for %zu generated tokens\n",
           seconds, seconds / (double)items->n, r->seconds_prefill, r->prompt_tokens,
           r->seconds_decode, r->generated_tokens);
}

int main(int argc, char **argv)
{
    er_args a;
    int prc = er_parse_args(argc, argv, &a);
    if (prc != 0)
        return prc == 3 ? 0 : 2;
    er_items items = {0};
    er_run r = {0};
    er_groups g = {0};
    int rc = er_read_items(a.items, a.limit, &items);
    if (rc == 0)
        rc = er_setup(&r, &a, &items);
    double t0 = er_now();
    for (size_t i = 0; rc == 0 && i < items.n; i++)
        rc = er_eval_item(&r, &a, &items.v[i]);
    double seconds = er_now() - t0;
    for (size_t i = 0; rc == 0 && i < items.n; i++) {
        const er_item *it = &items.v[i];
        char key[512];
        snprintf(key, sizeof key, "%s/%s", it->kind, it->source[0] ? it->source : "?");
        if (er_group_add(&g, it->kind, it->ok) != 0 ||
            (it->source[0] && er_group_add(&g, key, it->ok) != 0) ||
            er_group_add(&g, "all", it->ok) != 0) {
            fprintf(stderr, "eval_recall: out of memory\n");
            rc = 1;
        }
    }
    if (rc == 0) {
        qsort(g.v, g.n, sizeof *g.v, er_group_cmp);
        er_print(&a, &r, &items, &g, seconds);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "eval_recall: cannot write to stdout\n");
            rc = 1;
        }
    }
    if (rc == 0 && a.json)
        rc = er_write_json(&a, &r, &items, &g, seconds);
    er_groups_free(&g);
    er_release(&r);
    er_items_free(&items);
    return rc;
}

#endif /* ER_NO_MAIN */
