/*
 * bench_tokenizer: single-thread encode throughput of a kvlab tokenizer.
 *
 *   1. Reads a text file, plain or zstd-compressed (recognised by its magic
 *      bytes), optionally cut to --max-mb MB at a line end.
 *   2. Loads the tokenizer (a file or a model folder, as kvl_tokenizer_load
 *      takes it) --load-reps times and reports the first and the best load
 *      time (the first includes reading the file from disk or page cache).
 *   3. Encodes the text on this thread, as a user would:
 *      - line by line: one kvl_tokenizer_encode_alloc call per line, the
 *        line's '\n' included (as `for line in file` gives it), ids freed
 *        after each call;
 *      - the whole text in one kvl_tokenizer_encode_alloc call.
 *      Each pass is repeated --reps times; the best and the median pass are
 *      reported as MB/s (10^6 bytes of input text per second) and tokens/s.
 *      CPU time / wall time of the passes is printed as a check that the
 *      encode used one thread (1.00).
 *
 * Optional outputs, for comparing against another tokenizer (see
 * bench/tokenizer_vs_hf.py): --ids-out FILE (ids of the whole text) and
 * --line-ids-out FILE (the per-line ids, concatenated), both as int32
 * little-endian; --json FILE (the numbers); --save-text FILE writes the
 * (decompressed, cut) text that would be measured and exits, so another
 * program can measure exactly the same bytes.
 *
 * The last thing printed is a Markdown table of the results.
 */
#include "kvlab.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#define MAX_REPS 50

typedef struct bench_opts {
    const char *tokenizer;
    const char *text;
    int32_t vocab;
    int reps;
    int load_reps;
    double max_mb;       /* 0 = all */
    unsigned flags;      /* KVL_ENCODE_* */
    int do_lines, do_whole;
    const char *save_text;
    const char *ids_out;
    const char *line_ids_out;
    const char *json;
} bench_opts;

typedef struct pass_stats {
    double best_s, median_s;
    double cpu_ratio;    /* CPU time / wall time over all passes */
    size_t n_tokens;     /* of one pass */
} pass_stats;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die_err(const char *what, const kvl_error *err)
{
    fprintf(stderr, "bench_tokenizer: %s: %s\n", what, err->message);
    exit(1);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_tokenizer --tokenizer PATH --text FILE [options]\n"
            "\n"
            "  --tokenizer PATH    tokenizer file or model folder\n"
            "  --text FILE         UTF-8 text, plain or .zst\n"
            "  --vocab N           vocabulary size (llama2.c tokenizer.bin "
            "only; default 0)\n"
            "  --reps N            timed passes of each encode (default 3)\n"
            "  --load-reps N       loads of the tokenizer (default 3)\n"
            "  --max-mb MB         use the first MB megabytes of the text, "
            "cut at a line end\n"
            "  --special           encode with KVL_ENCODE_ADD_SPECIAL "
            "(default: no BOS/EOS)\n"
            "  --no-lines          skip the line-by-line encode\n"
            "  --no-whole          skip the whole-text encode\n"
            "  --ids-out FILE      write the whole-text ids (int32 LE)\n"
            "  --line-ids-out FILE write the per-line ids, concatenated "
            "(int32 LE)\n"
            "  --json FILE         write the results as JSON\n"
            "  --save-text FILE    write the text that would be measured and "
            "exit\n"
            "  --help              this text\n");
}

static long parse_long(const char *opt, const char *v, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "bench_tokenizer: bad %s '%s' (%ld..%ld)\n", opt, v, lo, hi);
        exit(2);
    }
    return n;
}

static void parse_args(int argc, char **argv, bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->reps = 3;
    o->load_reps = 3;
    o->do_lines = o->do_whole = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--special") == 0) {
            o->flags |= KVL_ENCODE_ADD_SPECIAL;
            continue;
        }
        if (strcmp(a, "--no-lines") == 0) {
            o->do_lines = 0;
            continue;
        }
        if (strcmp(a, "--no-whole") == 0) {
            o->do_whole = 0;
            continue;
        }
        static const char *const with_value[] = {
            "--tokenizer", "--text", "--vocab", "--reps", "--load-reps", "--max-mb",
            "--ids-out", "--line-ids-out", "--json", "--save-text"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            known |= strcmp(a, with_value[k]) == 0;
        if (!known || i + 1 >= argc) {
            fprintf(stderr, "bench_tokenizer: %s: %s\n",
                    known ? "missing value for" : "unknown option", a);
            usage(stderr);
            exit(2);
        }
        const char *v = argv[++i];
        if (strcmp(a, "--tokenizer") == 0) {
            o->tokenizer = v;
        } else if (strcmp(a, "--text") == 0) {
            o->text = v;
        } else if (strcmp(a, "--vocab") == 0) {
            o->vocab = (int32_t)parse_long(a, v, 0, INT32_MAX);
        } else if (strcmp(a, "--reps") == 0) {
            o->reps = (int)parse_long(a, v, 1, MAX_REPS);
        } else if (strcmp(a, "--load-reps") == 0) {
            o->load_reps = (int)parse_long(a, v, 1, MAX_REPS);
        } else if (strcmp(a, "--max-mb") == 0) {
            char *end = NULL;
            double mb = strtod(v, &end);
            if (end == v || *end || !(mb > 0) || mb > 1e6) {
                fprintf(stderr, "bench_tokenizer: bad --max-mb '%s'\n", v);
                exit(2);
            }
            o->max_mb = mb;
        } else if (strcmp(a, "--ids-out") == 0) {
            o->ids_out = v;
        } else if (strcmp(a, "--line-ids-out") == 0) {
            o->line_ids_out = v;
        } else if (strcmp(a, "--json") == 0) {
            o->json = v;
        } else if (strcmp(a, "--save-text") == 0) {
            o->save_text = v;
        }
    }
    if (!o->text || (!o->tokenizer && !o->save_text)) {
        fprintf(stderr, "bench_tokenizer: --text and --tokenizer are required\n");
        usage(stderr);
        exit(2);
    }
}

/* ------------------------------------------------------------------------ */
/* Text                                                                     */
/* ------------------------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "bench_tokenizer: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return q;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_tokenizer: cannot open '%s': %s\n", path, strerror(errno));
        exit(1);
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = xrealloc(NULL, cap);
    for (;;) {
        if (n == cap)
            buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "bench_tokenizer: cannot read '%s'\n", path);
        exit(1);
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Decompresses every zstd frame of src into a new buffer. */
static char *zstd_decompress(const char *path, const char *src, size_t n, size_t *len)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    if (!ds) {
        fprintf(stderr, "bench_tokenizer: out of memory for zstd\n");
        exit(1);
    }
    size_t cap = n * 4 + (1 << 20), used = 0;
    char *out = xrealloc(NULL, cap);
    ZSTD_inBuffer in = {src, n, 0};
    size_t ret = 0;
    while (in.pos < in.size) {
        if (used == cap)
            out = xrealloc(out, cap *= 2);
        ZSTD_outBuffer ob = {out + used, cap - used, 0};
        ret = ZSTD_decompressStream(ds, &ob, &in);
        if (ZSTD_isError(ret)) {
            fprintf(stderr, "bench_tokenizer: '%s': zstd: %s\n", path,
                    ZSTD_getErrorName(ret));
            exit(1);
        }
        used += ob.pos;
    }
    /* Flush what the decoder still holds. */
    while (ret != 0) {
        if (used == cap)
            out = xrealloc(out, cap *= 2);
        ZSTD_outBuffer ob = {out + used, cap - used, 0};
        size_t before = used;
        ret = ZSTD_decompressStream(ds, &ob, &in);
        if (ZSTD_isError(ret)) {
            fprintf(stderr, "bench_tokenizer: '%s': zstd: %s\n", path,
                    ZSTD_getErrorName(ret));
            exit(1);
        }
        used += ob.pos;
        if (used == before && ob.pos < ob.size) {
            fprintf(stderr, "bench_tokenizer: '%s': truncated zstd frame\n", path);
            exit(1);
        }
    }
    ZSTD_freeDStream(ds);
    *len = used;
    return out;
}

static char *load_text(const char *path, double max_mb, size_t *len)
{
    size_t n = 0;
    char *raw = read_all(path, &n);
    static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    if (n >= 4 && memcmp(raw, magic, 4) == 0) {
        size_t m = 0;
        char *text = zstd_decompress(path, raw, n, &m);
        free(raw);
        raw = text;
        n = m;
    }
    if (max_mb > 0 && (double)n > max_mb * 1e6) {
        size_t cut = (size_t)(max_mb * 1e6);
        while (cut > 0 && raw[cut - 1] != '\n')
            cut--;
        n = cut ? cut : (size_t)(max_mb * 1e6);
    }
    raw = xrealloc(raw, n + 1);
    raw[n] = '\0';
    *len = n;
    return raw;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "bench_tokenizer: cannot write '%s'\n", path);
        exit(1);
    }
}

/* int32 little-endian, whatever the host. */
static void write_ids(const char *path, const int32_t *ids, size_t n)
{
    unsigned char *b = xrealloc(NULL, n * 4);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)ids[i];
        b[4 * i] = (unsigned char)u;
        b[4 * i + 1] = (unsigned char)(u >> 8);
        b[4 * i + 2] = (unsigned char)(u >> 16);
        b[4 * i + 3] = (unsigned char)(u >> 24);
    }
    write_file(path, b, n * 4);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Measurements                                                             */
/* ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summarise(double *t, int n, double cpu, pass_stats *ps)
{
    double wall = 0;
    for (int i = 0; i < n; i++)
        wall += t[i];
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    ps->best_s = t[0];
    ps->median_s = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    ps->cpu_ratio = wall > 0 ? cpu / wall : 0;
}

typedef struct line_span {
    size_t off, len;
} line_span;

static line_span *split_lines(const char *text, size_t n, size_t *n_lines)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += text[i] == '\n';
    count += n > 0 && text[n - 1] != '\n';
    line_span *v = xrealloc(NULL, count * sizeof *v);
    size_t k = 0, start = 0;
    for (size_t i = 0; i < n; i++)
        if (text[i] == '\n') {
            v[k++] = (line_span){start, i + 1 - start};
            start = i + 1;
        }
    if (start < n)
        v[k++] = (line_span){start, n - start};
    *n_lines = k;
    return v;
}

/* One pass of line-by-line encoding; returns the number of ids.  When
 * keep is non-NULL the ids are appended to it (outside the timed passes). */
static size_t encode_lines(const kvl_tokenizer *tok, const char *text,
                           const line_span *lines, size_t n_lines,
                           unsigned flags, int32_t **keep, size_t *keep_cap)
{
    size_t total = 0;
    kvl_error err;
    for (size_t i = 0; i < n_lines; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (kvl_tokenizer_encode_alloc(tok, text + lines[i].off, lines[i].len,
                                       flags, &ids, &n, &err) != KVL_OK) {
            fprintf(stderr, "bench_tokenizer: encoding line %zu: %s\n", i + 1,
                    err.message);
            exit(1);
        }
        if (keep) {
            if (total + n > *keep_cap) {
                while (total + n > *keep_cap)
                    *keep_cap = *keep_cap ? *keep_cap * 2 : 1 << 16;
                *keep = xrealloc(*keep, *keep_cap * sizeof **keep);
            }
            if (n)
                memcpy(*keep + total, ids, n * sizeof *ids);
        }
        total += n;
        kvl_free(ids);
    }
    return total;
}

static void bench_lines(const bench_opts *o, const kvl_tokenizer *tok,
                        const char *text, size_t len, pass_stats *ps)
{
    size_t n_lines = 0;
    line_span *lines = split_lines(text, len, &n_lines);
    double t[MAX_REPS];
    /* Warm-up pass (page faults, caches), which also gives the ids. */
    int32_t *keep = NULL;
    size_t keep_cap = 0;
    size_t n0 = encode_lines(tok, text, lines, n_lines, o->flags,
                             o->line_ids_out ? &keep : NULL, &keep_cap);
    if (o->line_ids_out)
        write_ids(o->line_ids_out, keep, n0);
    free(keep);
    double c0 = cpu_s();
    for (int r = 0; r < o->reps; r++) {
        double t0 = now_s();
        size_t n = encode_lines(tok, text, lines, n_lines, o->flags, NULL, NULL);
        t[r] = now_s() - t0;
        if (n != n0) {
            fprintf(stderr, "bench_tokenizer: pass %d gave %zu ids, the first %zu\n",
                    r + 1, n, n0);
            exit(1);
        }
        printf("  lines pass %d: %.3f s, %.2f MB/s\n", r + 1, t[r],
               (double)len / 1e6 / t[r]);
        fflush(stdout);
    }
    summarise(t, o->reps, cpu_s() - c0, ps);
    ps->n_tokens = n0;
    free(lines);
}

static void bench_whole(const bench_opts *o, const kvl_tokenizer *tok,
                        const char *text, size_t len, pass_stats *ps)
{
    double t[MAX_REPS];
    kvl_error err;
    size_t n0 = 0;
    double c0 = 0;
    /* Pass 0 is the warm-up; passes 1..reps are timed. */
    for (int r = 0; r <= o->reps; r++) {
        if (r == 1)
            c0 = cpu_s();
        int32_t *ids = NULL;
        size_t n = 0;
        double t0 = now_s();
        if (kvl_tokenizer_encode_alloc(tok, text, len, o->flags, &ids, &n, &err) != KVL_OK)
            die_err("encoding the whole text", &err);
        double dt = now_s() - t0;
        if (r == 0) {
            n0 = n;
            if (o->ids_out)
                write_ids(o->ids_out, ids, n);
        } else {
            t[r - 1] = dt;
            if (n != n0) {
                fprintf(stderr, "bench_tokenizer: pass %d gave %zu ids, the first %zu\n",
                        r, n, n0);
                exit(1);
            }
            printf("  whole pass %d: %.3f s, %.2f MB/s\n", r, dt, (double)len / 1e6 / dt);
            fflush(stdout);
        }
        kvl_free(ids);
    }
    summarise(t, o->reps, cpu_s() - c0, ps);
    ps->n_tokens = n0;
}

static const char *kind_name(kvl_tokenizer_kind k)
{
    switch (k) {
    case KVL_TOKENIZER_LLAMA2C: return "llama2.c tokenizer.bin";
    case KVL_TOKENIZER_HF: return "tokenizer.json";
    case KVL_TOKENIZER_SENTENCEPIECE: return "SentencePiece";
    }
    return "?";
}

static void json_pass(FILE *f, const char *name, const pass_stats *ps, size_t len)
{
    fprintf(f,
            "  \"%s\": {\"best_s\": %.6f, \"median_s\": %.6f, \"best_mb_s\": %.4f, "
            "\"median_mb_s\": %.4f, \"tokens\": %zu, \"cpu_per_wall\": %.3f},\n",
            name, ps->best_s, ps->median_s, (double)len / 1e6 / ps->best_s,
            (double)len / 1e6 / ps->median_s, ps->n_tokens, ps->cpu_ratio);
}

int main(int argc, char **argv)
{
    bench_opts o;
    parse_args(argc, argv, &o);

    size_t len = 0;
    char *text = load_text(o.text, o.max_mb, &len);
    if (o.save_text) {
        write_file(o.save_text, text, len);
        free(text);
        return 0;
    }
    if (len == 0) {
        fprintf(stderr, "bench_tokenizer: '%s' holds no text\n", o.text);
        return 1;
    }
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++)
        n_lines += text[i] == '\n';
    n_lines += len > 0 && text[len - 1] != '\n';
    printf("kvlab %s bench_tokenizer\n", kvl_version());
    printf("text: %s, %zu bytes, %zu lines\n", o.text, len, n_lines);

    kvl_tokenizer *tok = NULL;
    kvl_error err;
    double load_first = 0, load_best = 0;
    for (int r = 0; r < o.load_reps; r++) {
        if (tok)
            kvl_tokenizer_free(tok);
        tok = NULL;
        double t0 = now_s();
        if (kvl_tokenizer_load(o.tokenizer, o.vocab, &tok, &err) != KVL_OK)
            die_err("loading the tokenizer", &err);
        double dt = now_s() - t0;
        if (r == 0)
            load_first = load_best = dt;
        else if (dt < load_best)
            load_best = dt;
    }
    printf("tokenizer: %s (%s, %d ids), load %.2f ms first, %.2f ms best of %d\n",
           o.tokenizer, kind_name(kvl_tokenizer_get_kind(tok)),
           (int)kvl_tokenizer_vocab_size(tok), 1e3 * load_first, 1e3 * load_best,
           o.load_reps);
    fflush(stdout);

    pass_stats lines = {0}, whole = {0};
    if (o.do_lines)
        bench_lines(&o, tok, text, len, &lines);
    if (o.do_whole)
        bench_whole(&o, tok, text, len, &whole);

    if (o.json) {
        FILE *f = fopen(o.json, "w");
        if (!f) {
            fprintf(stderr, "bench_tokenizer: cannot write '%s'\n", o.json);
            return 1;
        }
        fprintf(f, "{\n  \"version\": \"%s\",\n  \"bytes\": %zu,\n  \"n_lines\": %zu,\n",
                kvl_version(), len, n_lines);
        fprintf(f, "  \"reps\": %d,\n  \"vocab_size\": %d,\n", o.reps,
                (int)kvl_tokenizer_vocab_size(tok));
        if (o.do_lines)
            json_pass(f, "lines", &lines, len);
        if (o.do_whole)
            json_pass(f, "whole", &whole, len);
        fprintf(f, "  \"load_first_s\": %.6f,\n  \"load_best_s\": %.6f\n}\n",
                load_first, load_best);
        if (fclose(f) != 0) {
            fprintf(stderr, "bench_tokenizer: cannot write '%s'\n", o.json);
            return 1;
        }
    }

    printf("\n| kvlab, 1 thread | value |\n| --- | ---: |\n");
    printf("| text | %zu bytes, %zu lines |\n", len, n_lines);
    printf("| load (ms), first / best of %d | %.2f / %.2f |\n", o.load_reps,
           1e3 * load_first, 1e3 * load_best);
    const struct {
        const char *name;
        const pass_stats *ps;
        int on;
    } rows[] = {{"encode line by line", &lines, o.do_lines},
                {"encode whole text", &whole, o.do_whole}};
    for (size_t i = 0; i < 2; i++) {
        if (!rows[i].on)
            continue;
        const pass_stats *ps = rows[i].ps;
        printf("| %s (MB/s), best / median of %d | %.2f / %.2f |\n", rows[i].name,
               o.reps, (double)len / 1e6 / ps->best_s, (double)len / 1e6 / ps->median_s);
        printf("| %s (tokens/s, best) | %.0f |\n", rows[i].name,
               (double)ps->n_tokens / ps->best_s);
        printf("| %s: ids, CPU/wall | %zu, %.2f |\n", rows[i].name, ps->n_tokens,
               ps->cpu_ratio);
    }
    kvl_tokenizer_free(tok);
    free(text);
    return 0;
}
