/* Norm statistics of cached K/V rows, as tables and as JSON. */
#include "cli/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rope.h"

/* ---- statistics ------------------------------------------------------------------- */

/* Welford's update: one pass, no catastrophic cancellation for the std. */
typedef struct welford {
    double mean, m2, min, max;
    int64_t n;
} welford;

static void welford_add(welford *w, double x)
{
    w->n++;
    if (w->n == 1) {
        w->min = w->max = x;
    } else {
        w->min = x < w->min ? x : w->min;
        w->max = x > w->max ? x : w->max;
    }
    double d = x - w->mean;
    w->mean += d / (double)w->n;
    w->m2 += d * (x - w->mean);
}

static cli_stats welford_stats(const welford *w)
{
    cli_stats s = {0};
    s.count = w->n;
    if (w->n == 0)
        return s;
    s.mean = w->mean;
    s.std = sqrt(w->m2 / (double)w->n);
    s.min = w->min;
    s.max = w->max;
    return s;
}

static cli_stats row_norm_stats(const float *rows, int32_t n, int32_t dim)
{
    welford w = {0};
    for (int32_t t = 0; t < n; t++) {
        const float *r = rows + (size_t)t * (size_t)dim;
        double ss = 0.0;
        for (int32_t i = 0; i < dim; i++)
            ss += (double)r[i] * (double)r[i];
        welford_add(&w, sqrt(ss));
    }
    return welford_stats(&w);
}

int cli_cache_norms(const kvl_cache *cache, cli_head_norms **out)
{
    kvl_cache_info ci;
    kvl_cache_get_info(cache, &ci);
    size_t count = (size_t)ci.n_layers * (size_t)ci.n_kv_heads;
    cli_head_norms *v = calloc(count ? count : 1, sizeof *v);
    if (!v)
        return cli_failf("out of memory computing norms");
    for (int32_t l = 0; l < ci.n_layers; l++) {
        for (int32_t h = 0; h < ci.n_kv_heads; h++) {
            cli_head_norms *hn = &v[(size_t)l * (size_t)ci.n_kv_heads + (size_t)h];
            if (ci.n_tokens == 0)
                continue;
            const float *k = kvl_cache_data(cache, KVL_K, l, h);
            const float *vv = kvl_cache_data(cache, KVL_V, l, h);
            if (!k || !vv) {
                free(v);
                return cli_failf("cannot read layer %" PRId32 " head %" PRId32
                                 " of the cache", l, h);
            }
            hn->k = row_norm_stats(k, ci.n_tokens, ci.head_dim);
            hn->v = row_norm_stats(vv, ci.n_tokens, ci.head_dim);
        }
    }
    *out = v;
    return CLI_OK;
}

cli_stats cli_stats_merge(const cli_stats *parts, int n, size_t stride)
{
    /* Equal-size groups: mean of means; variance by the law of total
     * variance, E[var + mean^2] - mean^2. */
    cli_stats s = {0};
    double sq = 0.0;
    const char *p = (const char *)parts;
    for (int i = 0; i < n; i++) {
        const cli_stats *c = (const cli_stats *)(const void *)(p + (size_t)i * stride);
        if (c->count == 0)
            return s;
        s.mean += c->mean;
        sq += c->std * c->std + c->mean * c->mean;
        s.min = i == 0 || c->min < s.min ? c->min : s.min;
        s.max = i == 0 || c->max > s.max ? c->max : s.max;
        s.count += c->count;
    }
    if (n == 0)
        return s;
    s.mean /= n;
    double var = sq / n - s.mean * s.mean;
    s.std = sqrt(var > 0.0 ? var : 0.0);
    return s;
}

static cli_stats layer_stats(const cli_head_norms *layer, int n_heads, int v)
{
    const cli_stats *first = v ? &layer[0].v : &layer[0].k;
    return cli_stats_merge(first, n_heads, sizeof(cli_head_norms));
}

/* ---- table ----------------------------------------------------------------------- */

static void print_stats(FILE *out, const cli_stats *s)
{
    fprintf(out, " %10.4f %10.4f %10.4f %10.4f", s->mean, s->std, s->min,
            s->max);
}

static void print_row(FILE *out, int32_t layer, const char *head,
                      const cli_stats *k, const cli_stats *v)
{
    fprintf(out, "%5" PRId32 " %4s", layer, head);
    print_stats(out, k);
    fputs("  ", out);
    print_stats(out, v);
    fputc('\n', out);
}

void cli_print_norm_table(FILE *out, const kvl_cache_info *ci,
                          const cli_head_norms *norms, int per_head)
{
    if (ci->n_tokens == 0) {
        fputs("(no tokens: no norms)\n", out);
        return;
    }
    fputs("L2 norms of cached rows over tokens ('all' = all kv heads of the "
          "layer)\n",
          out);
    fprintf(out, "%10s %-43s  %s\n", "",
            "  ------------------ |K| ------------------",
            "  ------------------ |V| ------------------");
    fprintf(out, "%5s %4s %10s %10s %10s %10s  %10s %10s %10s %10s\n",
            "layer", "head", "mean", "std", "min", "max", "mean", "std", "min",
            "max");
    for (int32_t l = 0; l < ci->n_layers; l++) {
        const cli_head_norms *layer = norms + (size_t)l * (size_t)ci->n_kv_heads;
        cli_stats k = layer_stats(layer, ci->n_kv_heads, 0);
        cli_stats v = layer_stats(layer, ci->n_kv_heads, 1);
        print_row(out, l, "all", &k, &v);
        for (int32_t h = 0; per_head && h < ci->n_kv_heads; h++) {
            char name[16];
            snprintf(name, sizeof name, "%" PRId32, h);
            print_row(out, l, name, &layer[h].k, &layer[h].v);
        }
    }
}

/* ---- JSON ---------------------------------------------------------------------------- */

void cli_json_set(cli_json *b, json_t *obj, const char *key, json_t *val)
{
    /* json_object_set_new steals val even on failure. */
    if (!obj || !val || json_object_set_new(obj, key, val) != 0)
        b->failed = 1;
}

json_t *cli_json_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *cli_json_rope(cli_json *b, const kvl_rope *rope)
{
    json_t *o = json_object();
    cli_json_set(b, o, "theta", cli_json_real(rope->theta));
    cli_json_set(b, o, "layout", json_string(kvl_rope_layout_name(rope->layout)));
    cli_json_set(b, o, "scaling",
                 json_string(kvl_rope_scaling_name(rope->scaling)));
    cli_json_set(b, o, "factor", cli_json_real(rope->factor));
    cli_json_set(b, o, "low_freq_factor", cli_json_real(rope->low_freq_factor));
    cli_json_set(b, o, "high_freq_factor",
                 cli_json_real(rope->high_freq_factor));
    cli_json_set(b, o, "original_max_position",
                 json_integer(rope->original_max_position));
    cli_json_set(b, o, "rotary_dim", json_integer(rope->rotary_dim));
    return o;
}

json_t *cli_json_i32_array(cli_json *b, const int32_t *v, int32_t n)
{
    json_t *a = json_array();
    for (int32_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(v[i])) != 0)
            b->failed = 1;
    return a;
}

static json_t *json_stats(cli_json *b, const cli_stats *s)
{
    if (s->count == 0)
        return json_null();
    json_t *o = json_object();
    cli_json_set(b, o, "mean", cli_json_real(s->mean));
    cli_json_set(b, o, "std", cli_json_real(s->std));
    cli_json_set(b, o, "min", cli_json_real(s->min));
    cli_json_set(b, o, "max", cli_json_real(s->max));
    return o;
}

static json_t *json_layer(cli_json *b, int32_t l, const cli_head_norms *layer,
                          int32_t n_kv_heads)
{
    json_t *o = json_object();
    cli_stats k = layer_stats(layer, n_kv_heads, 0);
    cli_stats v = layer_stats(layer, n_kv_heads, 1);
    cli_json_set(b, o, "layer", json_integer(l));
    cli_json_set(b, o, "k_norm", json_stats(b, &k));
    cli_json_set(b, o, "v_norm", json_stats(b, &v));
    json_t *heads = json_array();
    for (int32_t h = 0; heads && h < n_kv_heads; h++) {
        json_t *ho = json_object();
        cli_json_set(b, ho, "kv_head", json_integer(h));
        cli_json_set(b, ho, "k_norm", json_stats(b, &layer[h].k));
        cli_json_set(b, ho, "v_norm", json_stats(b, &layer[h].v));
        if (!ho || json_array_append_new(heads, ho) != 0)
            b->failed = 1;
    }
    cli_json_set(b, o, "heads", heads);
    return o;
}

json_t *cli_json_layers(cli_json *b, const kvl_cache_info *ci,
                        const cli_head_norms *norms)
{
    json_t *a = json_array();
    for (int32_t l = 0; a && l < ci->n_layers; l++) {
        json_t *lo = json_layer(b, l, norms + (size_t)l * (size_t)ci->n_kv_heads,
                                ci->n_kv_heads);
        if (!lo || json_array_append_new(a, lo) != 0)
            b->failed = 1;
    }
    return a;
}

int cli_json_write(json_t *root, const char *path)
{
    const size_t flags = JSON_INDENT(2) | JSON_REAL_PRECISION(10);
    if (strcmp(path, "-") == 0) {
        if (json_dumpf(root, stdout, flags) != 0 || fputc('\n', stdout) == EOF)
            return cli_failf("cannot write JSON to stdout");
        return CLI_OK;
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return cli_failf("cannot open '%s' for writing: %s", path,
                         strerror(errno));
    int bad = json_dumpf(root, f, flags) != 0 || fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    if (bad)
        return cli_failf("cannot write JSON to '%s'", path);
    return CLI_OK;
}
