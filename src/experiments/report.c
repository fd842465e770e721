/* Results folder writing. */
#include "experiments/report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "experiments/battery_stats.h"

static kvl_status make_dirs(const char *path, kvl_error *err)
{
    char *p = strdup(path);
    if (!p)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        const char c = *s;
        if (c == '/' || c == '\0') {
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                kvl_status st = kvl_fail(err, KVL_ERR_IO,
                                         "cannot create folder '%s': %s", p,
                                         strerror(errno));
                free(p);
                return st;
            }
            *s = c;
        }
        if (c == '\0')
            break;
    }
    free(p);
    return KVL_OK;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

kvl_status kvl_exp_run_open(kvl_exp_run *r, const kvl_exp_config *cfg,
                            const kvl_run_options *opt, const char *dir,
                            kvl_error *err)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->opt = opt;
    r->dir = strdup(dir);
    char *plots = r->dir ? join(dir, "plots") : NULL;
    char *runs = r->dir ? join(dir, "runs.jsonl") : NULL;
    kvl_status st = plots && runs ? make_dirs(plots, err)
                                  : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (st == KVL_OK && !(r->runs = fopen(runs, "w")))
        st = kvl_fail(err, KVL_ERR_IO, "cannot write '%s': %s", runs,
                      strerror(errno));
    if (st == KVL_OK && !(r->md = open_memstream(&r->body, &r->body_len)))
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (st == KVL_OK && !(r->summary = json_object()))
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    free(plots);
    free(runs);
    if (st != KVL_OK)
        kvl_exp_run_close(r);
    return st;
}

kvl_status kvl_exp_record(kvl_exp_run *r, const char *phase, json_t *rec,
                          kvl_error *err)
{
    if (!rec)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    json_object_set_new(rec, "phase", json_string(phase));
    int bad = json_dumpf(rec, r->runs, JSON_COMPACT | JSON_REAL_PRECISION(10) |
                                           JSON_SORT_KEYS) != 0 ||
              fputc('\n', r->runs) == EOF;
    json_decref(rec);
    if (bad)
        return kvl_fail(err, KVL_ERR_IO, "cannot write runs.jsonl in '%s'",
                        r->dir);
    return KVL_OK;
}

const char *kvl_exp_plot_path(const kvl_exp_run *r, const char *name,
                              char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/plots/%s.png", r->dir, name);
    return buf;
}

static kvl_status write_file(const char *dir, const char *name,
                             const char *a, size_t na, const char *b,
                             size_t nb, char **path_out, kvl_error *err)
{
    char *path = join(dir, name);
    if (!path)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "w");
    int ok = f && fwrite(a, 1, na, f) == na && (nb == 0 || fwrite(b, 1, nb, f) == nb);
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok) {
        kvl_status st = kvl_fail(err, KVL_ERR_IO, "cannot write '%s'", path);
        free(path);
        return st;
    }
    if (path_out)
        *path_out = path;
    else
        free(path);
    return KVL_OK;
}

kvl_status kvl_exp_run_finish(kvl_exp_run *r, json_t *provenance,
                              char **report_path, kvl_error *err)
{
    json_object_set(r->summary, "provenance", provenance);
    char *sum = json_dumps(r->summary, JSON_INDENT(2) | JSON_REAL_PRECISION(17) |
                                          JSON_SORT_KEYS);
    kvl_status st = sum ? write_file(r->dir, "summary.json", sum, strlen(sum),
                                     "\n", 1, NULL, err)
                        : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    free(sum);
    if (st == KVL_OK && fflush(r->runs) != 0)
        st = kvl_fail(err, KVL_ERR_IO, "cannot write runs.jsonl in '%s'", r->dir);
    /* The header: title and provenance, then the phases' sections. */
    char *head = NULL;
    size_t head_len = 0;
    FILE *h = st == KVL_OK ? open_memstream(&head, &head_len) : NULL;
    if (st == KVL_OK && !h)
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (h) {
        json_t *pv = provenance;
        fprintf(h, "# kvlab experiment report: %s\n\n", r->cfg->name);
        fprintf(h, "## Provenance\n\n| | |\n| --- | --- |\n");
        const char *key;
        json_t *v;
        json_object_foreach(pv, key, v) {
            char *s = json_is_string(v) ? strdup(json_string_value(v))
                                        : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            fprintf(h, "| %s | ", key);
            kvl_exp_md_cell(h, s ? s : "", 400);
            fprintf(h, " |\n");
            free(s);
        }
        fprintf(h, "\nRaw records: `runs.jsonl`; every number below: "
                   "`summary.json`.\n\n");
        fclose(h);
    }
    if (r->md) {
        fclose(r->md);
        r->md = NULL;
    }
    if (st == KVL_OK)
        st = write_file(r->dir, "report.md", head, head_len, r->body,
                        r->body_len, report_path, err);
    free(head);
    return st;
}

void kvl_exp_run_close(kvl_exp_run *r)
{
    if (r->md)
        fclose(r->md);
    free(r->body);
    if (r->runs)
        fclose(r->runs);
    json_decref(r->summary);
    for (int32_t i = 0; i < r->n_models; i++)
        kvl_exp_model_free(&r->models[i]);
    if (r->modes_data) {
        kvl_exp_battery_data_free(r->modes_data);
        free(r->modes_data);
    }
    free(r->dir);
    memset(r, 0, sizeof *r);
}

void kvl_exp_md_cell(FILE *f, const char *text, size_t max)
{
    size_t n = strlen(text);
    size_t cut = n;
    if (n > max) {
        cut = max;
        while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut--;
    }
    for (size_t i = 0; i < cut; i++) {
        const char c = text[i];
        if (c == '|')
            fputs("\\|", f);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r' || c == '\t')
            fputc(' ', f);
        else if (c == '`' || c == '<' || c == '*' || c == '_')
            fprintf(f, "\\%c", c);
        else
            fputc(c, f);
    }
    if (cut < n)
        fputs("…", f);
}
