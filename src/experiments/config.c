/* Experiment configuration: strict JSON reading with defaults. */
#include "experiments/config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const char *const phase_names[] = {"structure", "modes", "transfer",
                                          "identity", "sweep"};
enum { N_PHASES = 5 };

kvl_status kvl_exp_phase_parse(const char *name, int32_t *bit, kvl_error *err)
{
    if (!name || !bit)
        return kvl_fail(err, KVL_ERR_ARG, "phase name is required");
    if (strcmp(name, "all") == 0) {
        *bit = KVL_PHASE_ALL;
        return KVL_OK;
    }
    for (int i = 0; i < N_PHASES; i++)
        if (strcmp(name, phase_names[i]) == 0) {
            *bit = 1 << i;
            return KVL_OK;
        }
    return kvl_fail(err, KVL_ERR_ARG,
                    "unknown phase '%s' (structure, modes, transfer, identity, "
                    "sweep or all)", name);
}

const char *kvl_exp_phase_name(int32_t bit)
{
    for (int i = 0; i < N_PHASES; i++)
        if (bit == (1 << i))
            return phase_names[i];
    return bit == KVL_PHASE_ALL ? "all" : "?";
}

/* ---- strict readers ------------------------------------------------------ */

typedef struct reader {
    const char *file;   /* for messages */
    const char *dir;    /* base of relative paths */
    kvl_error *err;
} reader;

static kvl_status check_keys(const reader *r, const char *where, json_t *obj,
                             const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(key, *a) == 0)
                ok = 1;
        if (!ok) {
            char list[512] = "";
            for (const char *const *a = allowed; *a; a++) {
                strncat(list, *a, sizeof list - strlen(list) - 1);
                if (a[1])
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            return kvl_fail(r->err, KVL_ERR_FORMAT,
                            "%s: unknown key '%s' in %s (known: %s)", r->file,
                            key, where, list);
        }
    }
    return KVL_OK;
}

static kvl_status get_int(const reader *r, json_t *obj, const char *where,
                          const char *key, int64_t lo, int64_t hi,
                          int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return KVL_OK;
    if (!json_is_integer(v) || json_integer_value(v) < lo ||
        json_integer_value(v) > hi)
        return kvl_fail(r->err, KVL_ERR_FORMAT,
                        "%s: %s.%s must be an integer in [%lld, %lld]", r->file,
                        where, key, (long long)lo, (long long)hi);
    *out = json_integer_value(v);
    return KVL_OK;
}

static kvl_status get_i32(const reader *r, json_t *obj, const char *where,
                          const char *key, int32_t lo, int32_t hi,
                          int32_t *out)
{
    int64_t v = *out;
    kvl_status st = get_int(r, obj, where, key, lo, hi, &v);
    *out = (int32_t)v;
    return st;
}

static kvl_status get_float(const reader *r, json_t *obj, const char *where,
                            const char *key, double lo, double hi, float *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return KVL_OK;
    if (!json_is_number(v) || !(json_number_value(v) >= lo) ||
        !(json_number_value(v) <= hi))
        return kvl_fail(r->err, KVL_ERR_FORMAT,
                        "%s: %s.%s must be a number in [%g, %g]", r->file,
                        where, key, lo, hi);
    *out = (float)json_number_value(v);
    return KVL_OK;
}

static kvl_status set_string(const reader *r, char **dst, const char *s)
{
    char *c = strdup(s);
    if (!c)
        return kvl_fail(r->err, KVL_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = c;
    return KVL_OK;
}

static kvl_status resolve(const reader *r, const char *rel, char **dst)
{
    if (rel[0] == '/' || !r->dir || !r->dir[0])
        return set_string(r, dst, rel);
    size_t n = strlen(r->dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (!p)
        return kvl_fail(r->err, KVL_ERR_NOMEM, "out of memory");
    snprintf(p, n, "%s/%s", r->dir, rel);
    free(*dst);
    *dst = p;
    return KVL_OK;
}

static kvl_status get_string(const reader *r, json_t *obj, const char *where,
                             const char *key, int is_path, char **dst)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return KVL_OK;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return kvl_fail(r->err, KVL_ERR_FORMAT,
                        "%s: %s.%s must be a non-empty string", r->file, where,
                        key);
    return is_path ? resolve(r, json_string_value(v), dst)
                   : set_string(r, dst, json_string_value(v));
}

/* A label from a model path: its last non-empty component. */
static kvl_status label_of(const reader *r, const char *path, char **dst)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/')
        b--;
    char *l = strndup(path + b, n - b);
    if (!l)
        return kvl_fail(r->err, KVL_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = l;
    return KVL_OK;
}

/* "models": ["path", ...] or [{"path": ..., "label": ...}, ...]. */
static kvl_status get_models(const reader *r, json_t *obj, const char *where,
                             int32_t *n_out, char **paths, char **labels)
{
    json_t *arr = json_object_get(obj, "models");
    if (!arr)
        return KVL_OK;
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > KVL_EXP_MAX_MODELS)
        return kvl_fail(r->err, KVL_ERR_FORMAT,
                        "%s: %s.models must be a list of 1 to %d model paths",
                        r->file, where, KVL_EXP_MAX_MODELS);
    for (int32_t i = 0; i < *n_out; i++) {
        free(paths[i]);
        free(labels[i]);
        paths[i] = labels[i] = NULL;
    }
    *n_out = 0;
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) {
        kvl_status st;
        if (json_is_string(m) && json_string_length(m) > 0) {
            st = resolve(r, json_string_value(m), &paths[i]);
            if (st == KVL_OK)
                st = label_of(r, json_string_value(m), &labels[i]);
        } else if (json_is_object(m)) {
            static const char *const keys[] = {"path", "label", NULL};
            st = check_keys(r, "a models entry", m, keys);
            if (st == KVL_OK && !json_object_get(m, "path"))
                st = kvl_fail(r->err, KVL_ERR_FORMAT,
                              "%s: %s.models[%zu] needs a \"path\"", r->file,
                              where, i);
            if (st == KVL_OK)
                st = get_string(r, m, "models[]", "path", 1, &paths[i]);
            if (st == KVL_OK)
                st = label_of(r, json_string_value(json_object_get(m, "path")),
                              &labels[i]);
            if (st == KVL_OK)
                st = get_string(r, m, "models[]", "label", 0, &labels[i]);
            if (st == KVL_OK && strchr(labels[i], '/'))
                st = kvl_fail(r->err, KVL_ERR_FORMAT,
                              "%s: %s.models[%zu].label '%s' names files: no '/'",
                              r->file, where, i, labels[i]);
        } else {
            st = kvl_fail(r->err, KVL_ERR_FORMAT,
                          "%s: %s.models[%zu] must be a path or "
                          "{\"path\": ..., \"label\": ...}", r->file, where, i);
        }
        *n_out = (int32_t)i + 1;
        if (st != KVL_OK)
            return st;
    }
    return KVL_OK;
}

static kvl_status get_sampling(const reader *r, json_t *obj, const char *where,
                               kvl_exp_sampling *s)
{
    kvl_status st = get_i32(r, obj, where, "max_new_tokens", 1, 4096,
                            &s->max_new_tokens);
    if (st == KVL_OK)
        st = get_float(r, obj, where, "temperature", 0.0, 10.0, &s->temperature);
    if (st == KVL_OK)
        st = get_float(r, obj, where, "top_p", 0.0, 1.0, &s->top_p);
    if (st == KVL_OK)
        st = get_i32(r, obj, where, "top_k", 0, 1 << 24, &s->top_k);
    return st;
}

/* ---- sections --------------------------------------------------------------- */

static kvl_status section(const reader *r, json_t *root, const char *name,
                          const char *const *keys, json_t **out)
{
    *out = json_object_get(root, name);
    if (!*out)
        return KVL_OK;
    if (!json_is_object(*out))
        return kvl_fail(r->err, KVL_ERR_FORMAT, "%s: \"%s\" must be an object",
                        r->file, name);
    return check_keys(r, name, *out, keys);
}

static kvl_status read_structure(const reader *r, json_t *root,
                                 kvl_exp_config *c)
{
    static const char *const keys[] = {"max_tokens", "prompt", NULL};
    json_t *o;
    kvl_status st = section(r, root, "structure", keys, &o);
    if (st != KVL_OK || !o)
        return st;
    st = get_i32(r, o, "structure", "max_tokens", 16, 1 << 24,
                 &c->structure.max_tokens);
    if (st == KVL_OK)
        st = get_string(r, o, "structure", "prompt", 0, &c->structure.prompt);
    return st;
}

static kvl_status read_modes(const reader *r, json_t *root, kvl_exp_config *c)
{
    static const char *const keys[] = {
        "battery", "replications", "max_new_tokens", "temperature", "top_p",
        "top_k", "bootstrap", "folds", "permutations", "trees", NULL};
    json_t *o;
    kvl_status st = section(r, root, "modes", keys, &o);
    if (st != KVL_OK || !o)
        return st;
    st = get_string(r, o, "modes", "battery", 1, &c->modes.battery);
    if (st == KVL_OK)
        st = get_i32(r, o, "modes", "replications", 1, 100000,
                     &c->modes.replications);
    if (st == KVL_OK)
        st = get_sampling(r, o, "modes", &c->modes.sampling);
    if (st == KVL_OK)
        st = get_i32(r, o, "modes", "bootstrap", 100, 1000000,
                     &c->modes.bootstrap);
    if (st == KVL_OK)
        st = get_i32(r, o, "modes", "folds", 2, 100, &c->modes.folds);
    if (st == KVL_OK)
        st = get_i32(r, o, "modes", "permutations", 0, 100000,
                     &c->modes.permutations);
    if (st == KVL_OK)
        st = get_i32(r, o, "modes", "trees", 1, 10000, &c->modes.trees);
    return st;
}

static kvl_status read_transfer(const reader *r, json_t *root,
                                kvl_exp_config *c)
{
    static const char *const keys[] = {"facts", "items", "max_new_tokens",
                                       "continuation", "preamble", NULL};
    json_t *o;
    kvl_status st = section(r, root, "transfer", keys, &o);
    if (st != KVL_OK || !o)
        return st;
    st = get_string(r, o, "transfer", "facts", 1, &c->transfer.facts);
    if (st == KVL_OK)
        st = get_i32(r, o, "transfer", "items", 2, 100000, &c->transfer.items);
    if (st == KVL_OK)
        st = get_i32(r, o, "transfer", "max_new_tokens", 1, 4096,
                     &c->transfer.max_new_tokens);
    if (st == KVL_OK)
        st = get_i32(r, o, "transfer", "continuation", 1, 4096,
                     &c->transfer.continuation);
    if (st == KVL_OK)
        st = get_string(r, o, "transfer", "preamble", 0, &c->transfer.preamble);
    return st;
}

static kvl_status read_identity(const reader *r, json_t *root,
                                kvl_exp_config *c)
{
    static const char *const keys[] = {
        "personas", "prompts", "prompts_b", "replications", "max_new_tokens",
        "temperature", "top_p", "top_k", "folds", "permutations", "trees",
        NULL};
    json_t *o;
    kvl_status st = section(r, root, "identity", keys, &o);
    if (st != KVL_OK || !o)
        return st;
    st = get_string(r, o, "identity", "personas", 1, &c->identity.personas);
    if (st == KVL_OK)
        st = get_string(r, o, "identity", "prompts", 1, &c->identity.prompts);
    if (st == KVL_OK)
        st = get_string(r, o, "identity", "prompts_b", 1,
                        &c->identity.prompts_b);
    if (st == KVL_OK)
        st = get_i32(r, o, "identity", "replications", 1, 100000,
                     &c->identity.replications);
    if (st == KVL_OK)
        st = get_sampling(r, o, "identity", &c->identity.sampling);
    if (st == KVL_OK)
        st = get_i32(r, o, "identity", "folds", 2, 100, &c->identity.folds);
    if (st == KVL_OK)
        st = get_i32(r, o, "identity", "permutations", 0, 100000,
                     &c->identity.permutations);
    if (st == KVL_OK)
        st = get_i32(r, o, "identity", "trees", 1, 10000, &c->identity.trees);
    return st;
}

static kvl_status read_sweep(const reader *r, json_t *root, kvl_exp_config *c)
{
    static const char *const keys[] = {"models", NULL};
    json_t *o;
    kvl_status st = section(r, root, "sweep", keys, &o);
    if (st != KVL_OK || !o)
        return st;
    return get_models(r, o, "sweep", &c->sweep.n_models, c->sweep.models,
                      c->sweep.model_labels);
}

static kvl_status read_phases(const reader *r, json_t *root, kvl_exp_config *c)
{
    json_t *arr = json_object_get(root, "phases");
    if (!arr)
        return KVL_OK;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return kvl_fail(r->err, KVL_ERR_FORMAT,
                        "%s: \"phases\" must be a non-empty list of phase names",
                        r->file);
    c->phases = 0;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        int32_t bit = 0;
        if (!json_is_string(v) ||
            kvl_exp_phase_parse(json_string_value(v), &bit, r->err) != KVL_OK)
            return kvl_fail(r->err, KVL_ERR_FORMAT,
                            "%s: phases[%zu] is not one of structure, modes, "
                            "transfer, identity, sweep, all", r->file, i);
        c->phases |= bit;
    }
    return KVL_OK;
}

/* ---- defaults and entry points ------------------------------------------------ */

static kvl_status set_defaults(const reader *r, kvl_exp_config *c)
{
    c->output = strdup("results");
    c->seed = 1;
    c->phases = KVL_PHASE_ALL;
    c->structure.max_tokens = 4096;
    c->structure.prompt = strdup(
        "Once upon a time, in a small village by the sea, there lived an old "
        "fisherman who told stories to anyone who would listen.");
    kvl_exp_sampling s = {32, 0.8f, 0.95f, 0};
    c->modes.replications = 30;
    c->modes.sampling = s;
    c->modes.bootstrap = 2000;
    c->modes.folds = 5;
    c->modes.permutations = 100;
    c->modes.trees = 100;
    c->transfer.items = 100;
    c->transfer.max_new_tokens = 24;
    c->transfer.continuation = 16;
    c->transfer.preamble = strdup(
        "The following notes were found in an old notebook. Some pages were "
        "torn and some were written in a hurry.");
    c->identity.replications = 1;
    c->identity.sampling = s;
    c->identity.folds = 5;
    c->identity.permutations = 100;
    c->identity.trees = 100;
    if (!c->output || !c->structure.prompt || !c->transfer.preamble)
        return kvl_fail(r->err, KVL_ERR_NOMEM, "out of memory");
    kvl_status st = resolve(r, "../models/demo-receiver", &c->models[0]);
    if (st == KVL_OK)
        st = resolve(r, "../models/demo-sharer", &c->models[1]);
    if (st == KVL_OK)
        st = set_string(r, &c->model_labels[0], "demo-receiver");
    if (st == KVL_OK)
        st = set_string(r, &c->model_labels[1], "demo-sharer");
    c->n_models = 2;
    if (st == KVL_OK)
        st = resolve(r, "batteries/default.json", &c->modes.battery);
    if (st == KVL_OK)
        st = resolve(r, "transfer/facts.jsonl", &c->transfer.facts);
    if (st == KVL_OK)
        st = resolve(r, "personas/default.json", &c->identity.personas);
    if (st == KVL_OK)
        st = resolve(r, "prompts/identity-a.json", &c->identity.prompts);
    if (st == KVL_OK)
        st = resolve(r, "prompts/identity-b.json", &c->identity.prompts_b);
    return st;
}

static kvl_status read_root(const reader *r, json_t *root, kvl_exp_config *c)
{
    static const char *const keys[] = {
        "name", "output", "seed", "models", "phases", "structure", "modes",
        "transfer", "identity", "sweep", "description", NULL};
    if (!json_is_object(root))
        return kvl_fail(r->err, KVL_ERR_FORMAT,
                        "%s: the configuration must be a JSON object", r->file);
    kvl_status st = check_keys(r, "the configuration", root, keys);
    int64_t seed = (int64_t)c->seed;
    if (st == KVL_OK)
        st = get_string(r, root, "config", "name", 0, &c->name);
    if (st == KVL_OK && c->name &&
        (strchr(c->name, '/') || strcmp(c->name, ".") == 0 ||
         strcmp(c->name, "..") == 0))
        st = kvl_fail(r->err, KVL_ERR_FORMAT,
                      "%s: name '%s' must be a plain folder name (no '/')",
                      r->file, c->name);
    if (st == KVL_OK)
        st = get_string(r, root, "config", "output", 0, &c->output);
    if (st == KVL_OK)
        st = get_int(r, root, "config", "seed", 0, INT64_MAX, &seed);
    c->seed = (uint64_t)seed;
    if (st == KVL_OK)
        st = get_models(r, root, "config", &c->n_models, c->models,
                        c->model_labels);
    if (st == KVL_OK)
        st = read_phases(r, root, c);
    if (st == KVL_OK)
        st = read_structure(r, root, c);
    if (st == KVL_OK)
        st = read_modes(r, root, c);
    if (st == KVL_OK)
        st = read_transfer(r, root, c);
    if (st == KVL_OK)
        st = read_identity(r, root, c);
    if (st == KVL_OK)
        st = read_sweep(r, root, c);
    return st;
}

/* Default name: the config file's base name without ".json". */
static kvl_status default_name(const reader *r, const char *path,
                               kvl_exp_config *c)
{
    if (c->name)
        return KVL_OK;
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && strcmp(b + n - 5, ".json") == 0)
        n -= 5;
    c->name = strndup(b, n ? n : 1);
    if (!c->name)
        return kvl_fail(r->err, KVL_ERR_NOMEM, "out of memory");
    if (n == 0)
        c->name[0] = 'x';
    return KVL_OK;
}

kvl_status kvl_exp_config_parse(const char *text, size_t len, const char *path,
                                const char *dir, kvl_exp_config *cfg,
                                kvl_error *err)
{
    if (!text || !cfg)
        return kvl_fail(err, KVL_ERR_ARG, "config text and output are required");
    memset(cfg, 0, sizeof *cfg);
    const char *name = path ? path : "<config>";
    reader r = {name, dir, err};
    kvl_status st = set_defaults(&r, cfg);
    if (st == KVL_OK) {
        json_error_t je;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!root)
            st = kvl_fail(err, KVL_ERR_FORMAT, "%s:%d:%d: %s", name, je.line,
                          je.column, je.text);
        else
            st = read_root(&r, root, cfg);
        json_decref(root);
    }
    if (st == KVL_OK)
        st = set_string(&r, &cfg->path, name);
    if (st == KVL_OK)
        st = set_string(&r, &cfg->dir, dir ? dir : ".");
    if (st == KVL_OK)
        st = default_name(&r, name, cfg);
    if (st != KVL_OK)
        kvl_exp_config_free(cfg);
    return st;
}

kvl_status kvl_exp_config_load(const char *path, kvl_exp_config *cfg,
                               kvl_error *err)
{
    if (!path || !cfg)
        return kvl_fail(err, KVL_ERR_ARG, "config path and output are required");
    memset(cfg, 0, sizeof *cfg);
    char *abs = realpath(path, NULL);
    if (!abs)
        return kvl_fail(err, KVL_ERR_IO, "cannot open config '%s': %s", path,
                        strerror(errno));
    FILE *f = fopen(abs, "rb");
    char *text = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && n <= (16l << 20))
        text = malloc((size_t)n + 1);
    kvl_status st = KVL_OK;
    if (!f)
        st = kvl_fail(err, KVL_ERR_IO, "cannot open config '%s': %s", path,
                      strerror(errno));
    else if (n > (16l << 20))
        st = kvl_fail(err, KVL_ERR_FORMAT, "config '%s' is larger than 16 MiB",
                      path);
    else if (!text || fread(text, 1, (size_t)n, f) != (size_t)n)
        st = kvl_fail(err, text ? KVL_ERR_IO : KVL_ERR_NOMEM,
                      "cannot read config '%s'", path);
    if (f)
        fclose(f);
    if (st == KVL_OK) {
        char *slash = strrchr(abs, '/');
        char *dir = strndup(abs, slash && slash != abs ? (size_t)(slash - abs) : 1);
        st = dir ? kvl_exp_config_parse(text, (size_t)n, abs, dir, cfg, err)
                 : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        free(dir);
    }
    free(text);
    free(abs);
    return st;
}

/* Every slot: the arrays start zeroed, and unused ones stay NULL. */
static void free_models(char **paths, char **labels)
{
    for (int32_t i = 0; i < KVL_EXP_MAX_MODELS; i++) {
        free(paths[i]);
        free(labels[i]);
    }
}

void kvl_exp_config_free(kvl_exp_config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->dir);
    free(c->name);
    free(c->output);
    free_models(c->models, c->model_labels);
    free_models(c->sweep.models, c->sweep.model_labels);
    free(c->structure.prompt);
    free(c->modes.battery);
    free(c->transfer.preamble);
    free(c->transfer.facts);
    free(c->identity.personas);
    free(c->identity.prompts);
    free(c->identity.prompts_b);
    memset(c, 0, sizeof *c);
}

static json_t *sampling_json(const kvl_exp_sampling *s)
{
    return json_pack("{s:i, s:f, s:f, s:i}", "max_new_tokens",
                     (json_int_t)s->max_new_tokens, "temperature",
                     (double)s->temperature, "top_p", (double)s->top_p, "top_k",
                     (json_int_t)s->top_k);
}

static json_t *models_json(int32_t n, char *const *paths, char *const *labels)
{
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s}", "path", paths[i],
                                           "label", labels[i]));
    return a;
}

json_t *kvl_exp_config_to_json(const kvl_exp_config *c)
{
    json_t *phases = json_array();
    for (int i = 0; i < N_PHASES; i++)
        if (c->phases & (1 << i))
            json_array_append_new(phases, json_string(phase_names[i]));
    json_t *modes = json_pack(
        "{s:s, s:i, s:o, s:i, s:i, s:i, s:i}", "battery", c->modes.battery,
        "replications", (json_int_t)c->modes.replications, "sampling",
        sampling_json(&c->modes.sampling), "bootstrap",
        (json_int_t)c->modes.bootstrap, "folds", (json_int_t)c->modes.folds,
        "permutations", (json_int_t)c->modes.permutations, "trees",
        (json_int_t)c->modes.trees);
    json_t *identity = json_pack(
        "{s:s, s:s, s:s, s:i, s:o, s:i, s:i, s:i}", "personas",
        c->identity.personas, "prompts", c->identity.prompts, "prompts_b",
        c->identity.prompts_b, "replications",
        (json_int_t)c->identity.replications, "sampling",
        sampling_json(&c->identity.sampling), "folds",
        (json_int_t)c->identity.folds, "permutations",
        (json_int_t)c->identity.permutations, "trees",
        (json_int_t)c->identity.trees);
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:o, s:o, s:{s:i, s:s}, s:o, s:{s:s, s:i, s:i, "
        "s:i, s:s}, s:o, s:{s:o}}",
        "path", c->path, "name", c->name, "output", c->output, "seed",
        (json_int_t)c->seed, "models",
        models_json(c->n_models, c->models, c->model_labels), "phases", phases,
        "structure", "max_tokens", (json_int_t)c->structure.max_tokens,
        "prompt", c->structure.prompt, "modes", modes, "transfer", "facts",
        c->transfer.facts, "items",
        (json_int_t)c->transfer.items, "max_new_tokens",
        (json_int_t)c->transfer.max_new_tokens, "continuation",
        (json_int_t)c->transfer.continuation, "preamble",
        c->transfer.preamble, "identity", identity, "sweep", "models",
        c->sweep.n_models
            ? models_json(c->sweep.n_models, c->sweep.models,
                          c->sweep.model_labels)
            : models_json(c->n_models, c->models, c->model_labels));
}
