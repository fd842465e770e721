/* Battery, persona and prompt-set files. */
#include "experiments/battery.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define MAX_GROUPS 1024
#define MAX_PROMPTS 100000

static const char *kind_name(kvl_exp_file_kind k)
{
    return k == KVL_EXP_BATTERY ? "battery" : k == KVL_EXP_PERSONAS ? "personas" : "prompts";
}

/* A non-empty string member, copied; absent is fine unless required. */
static kvl_status opt_string(json_t *o, const char *key, int required,
                             const char *file, const char *where, char **dst,
                             kvl_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return required ? kvl_fail(err, KVL_ERR_FORMAT, "%s: %s needs \"%s\"",
                                   file, where, key)
                        : KVL_OK;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "%s: %s.%s must be a non-empty string (no NUL)", file,
                        where, key);
    *dst = strdup(json_string_value(v));
    return *dst ? KVL_OK : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
}

static kvl_status read_prompts(json_t *o, const char *file, const char *where,
                               kvl_exp_group *g, kvl_error *err)
{
    json_t *arr = json_object_get(o, "prompts");
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > MAX_PROMPTS)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "%s: %s.prompts must be a list of 1 to %d strings", file,
                        where, MAX_PROMPTS);
    g->prompts = calloc(json_array_size(arr), sizeof *g->prompts);
    if (!g->prompts)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v))
            return kvl_fail(err, KVL_ERR_FORMAT,
                            "%s: %s.prompts[%zu] must be a non-empty string",
                            file, where, i);
        if (!(g->prompts[i] = strdup(json_string_value(v))))
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        g->n_prompts = (int32_t)i + 1;
    }
    return KVL_OK;
}

static kvl_status check_keys(json_t *o, const char *const *keys,
                             const char *file, const char *where,
                             kvl_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        const char *const *a = keys;
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a)
            return kvl_fail(err, KVL_ERR_FORMAT, "%s: unknown key '%s' in %s",
                            file, k, where);
    }
    return KVL_OK;
}

static kvl_status read_group(json_t *o, kvl_exp_file_kind kind,
                             const char *file, size_t i, kvl_exp_group *g,
                             kvl_error *err)
{
    static const char *const keys[] = {"name", "description", "system",
                                       "prompts", NULL};
    char where[64];
    snprintf(where, sizeof where, "%s[%zu]",
             kind == KVL_EXP_BATTERY ? "modes" : "personas", i);
    if (!json_is_object(o))
        return kvl_fail(err, KVL_ERR_FORMAT, "%s: %s must be an object", file,
                        where);
    kvl_status st = check_keys(o, keys, file, where, err);
    if (st == KVL_OK)
        st = opt_string(o, "name", 1, file, where, &g->name, err);
    if (st == KVL_OK)
        st = opt_string(o, "description", 0, file, where, &g->description, err);
    if (st == KVL_OK)
        st = opt_string(o, "system", kind == KVL_EXP_PERSONAS, file, where,
                        &g->system, err);
    if (st == KVL_OK && kind == KVL_EXP_BATTERY)
        st = read_prompts(o, file, where, g, err);
    if (st == KVL_OK && kind == KVL_EXP_PERSONAS && json_object_get(o, "prompts"))
        st = kvl_fail(err, KVL_ERR_FORMAT,
                      "%s: %s: personas take no prompts (they come from the "
                      "identity prompt sets)", file, where);
    return st;
}

static kvl_status read_list(json_t *root, kvl_exp_file_kind kind,
                            const char *file, kvl_exp_groups *out,
                            kvl_error *err)
{
    const char *key = kind == KVL_EXP_BATTERY ? "modes" : "personas";
    json_t *arr = json_object_get(root, key);
    if (!json_is_array(arr) || json_array_size(arr) < 2 ||
        json_array_size(arr) > MAX_GROUPS)
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "%s: \"%s\" must be a list of 2 to %d entries", file,
                        key, MAX_GROUPS);
    out->g = calloc(json_array_size(arr), sizeof *out->g);
    if (!out->g)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        out->n = (int32_t)i + 1;
        kvl_status st = read_group(o, kind, file, i, &out->g[i], err);
        if (st != KVL_OK)
            return st;
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->g[j].name, out->g[i].name) == 0)
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "%s: the name '%s' is used twice", file,
                                out->g[i].name);
    }
    return KVL_OK;
}

static kvl_status read_root(json_t *root, kvl_exp_file_kind kind,
                            const char *file, kvl_exp_groups *out,
                            kvl_error *err)
{
    static const char *const battery_keys[] = {"name", "description", "modes", NULL};
    static const char *const persona_keys[] = {"name", "description", "personas", NULL};
    static const char *const prompt_keys[] = {"name", "description", "prompts", NULL};
    const char *const *keys = kind == KVL_EXP_BATTERY    ? battery_keys
                              : kind == KVL_EXP_PERSONAS ? persona_keys
                                                         : prompt_keys;
    if (!json_is_object(root))
        return kvl_fail(err, KVL_ERR_FORMAT, "%s: a %s file must be a JSON object",
                        file, kind_name(kind));
    kvl_status st = check_keys(root, keys, file, "the file", err);
    if (st == KVL_OK)
        st = opt_string(root, "name", 0, file, "the file", &out->name, err);
    if (st != KVL_OK)
        return st;
    if (kind != KVL_EXP_PROMPTS)
        return read_list(root, kind, file, out, err);
    out->g = calloc(1, sizeof *out->g);
    if (!out->g)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    out->n = 1;
    out->g[0].name = strdup(out->name ? out->name : "prompts");
    if (!out->g[0].name)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    return read_prompts(root, file, "the file", &out->g[0], err);
}

kvl_status kvl_exp_groups_parse(const char *text, size_t len, const char *path,
                                kvl_exp_file_kind kind, kvl_exp_groups *out,
                                kvl_error *err)
{
    if (!text || !out)
        return kvl_fail(err, KVL_ERR_ARG, "text and output are required");
    memset(out, 0, sizeof *out);
    const char *file = path ? path : kind_name(kind);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    kvl_status st = root ? read_root(root, kind, file, out, err)
                         : kvl_fail(err, KVL_ERR_FORMAT, "%s:%d:%d: %s", file,
                                    je.line, je.column, je.text);
    json_decref(root);
    if (st != KVL_OK)
        kvl_exp_groups_free(out);
    return st;
}

kvl_status kvl_exp_groups_load(const char *path, kvl_exp_file_kind kind,
                               kvl_exp_groups *out, kvl_error *err)
{
    if (!path || !out)
        return kvl_fail(err, KVL_ERR_ARG, "path and output are required");
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return kvl_fail(err, KVL_ERR_IO, "cannot open %s file '%s': %s",
                        kind_name(kind), path, strerror(errno));
    char *text = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n <= (64l << 20) &&
        fseek(f, 0, SEEK_SET) == 0)
        text = malloc((size_t)n + 1);
    kvl_status st = text && fread(text, 1, (size_t)n, f) == (size_t)n
                        ? kvl_exp_groups_parse(text, (size_t)n, path, kind, out, err)
                        : kvl_fail(err, KVL_ERR_IO, "cannot read %s file '%s'",
                                   kind_name(kind), path);
    fclose(f);
    free(text);
    return st;
}

void kvl_exp_groups_free(kvl_exp_groups *g)
{
    if (!g)
        return;
    for (int32_t i = 0; g->g && i < g->n; i++) {
        free(g->g[i].name);
        free(g->g[i].description);
        free(g->g[i].system);
        for (int32_t j = 0; j < g->g[i].n_prompts; j++)
            free(g->g[i].prompts[j]);
        free(g->g[i].prompts);
    }
    free(g->g);
    free(g->name);
    memset(g, 0, sizeof *g);
}
