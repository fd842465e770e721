/* kvl_experiment_run: configuration, models, phases, provenance. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "experiments/config.h"
#include "experiments/phases.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "model name" of /proc/cpuinfo, or "unknown". */
static json_t *cpu_name(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    json_t *out = NULL;
    while (f && !out && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *v = strchr(line, ':');
        if (!v)
            continue;
        v++;
        while (*v == ' ')
            v++;
        v[strcspn(v, "\n")] = '\0';
        out = json_string(v);
    }
    if (f)
        fclose(f);
    return out ? out : json_string("unknown");
}

static json_t *provenance(const kvl_exp_run *r, double wall_s, const char *phase)
{
    struct utsname u;
    char host[256] = "unknown";
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    gethostname(host, sizeof host - 1);
    time_t t = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    json_t *models = json_array();
    for (int32_t i = 0; i < r->n_models; i++) {
        const kvl_exp_model *m = &r->models[i];
        json_array_append_new(models, json_pack("{s:s, s:s, s:s, s:s, s:I}",
            "label", m->label, "path", m->path, "arch", m->info.arch_name,
            "fingerprint", m->info.fingerprint, "params",
            (json_int_t)m->info.n_params));
    }
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:I, s:o, s:i, s:s, s:s, s:f, s:o}",
        "kvlab_version", kvl_version(), "revision",
        r->opt && r->opt->revision ? r->opt->revision : "unknown", "date", date,
        "phase", phase, "config", kvl_exp_config_to_json(r->cfg), "seed",
        (json_int_t)r->cfg->seed, "models", models, "threads", r->n_threads,
        "machine", host, "os", u.sysname[0] ? u.sysname : "unknown",
        "wall_seconds", wall_s, "cpu", cpu_name());
}

static kvl_status load_models(kvl_exp_run *r, const kvl_run_options *o,
                              kvl_error *err)
{
    const kvl_exp_config *c = r->cfg;
    const int use_opt = o && o->models && o->n_models > 0;
    const int32_t n = use_opt ? o->n_models : c->n_models;
    if (n > KVL_EXP_MAX_MODELS)
        return kvl_fail(err, KVL_ERR_ARG, "at most %d models", KVL_EXP_MAX_MODELS);
    for (int32_t i = 0; i < n; i++) {
        const char *path = use_opt ? o->models[i] : c->models[i];
        const char *label = use_opt ? NULL : c->model_labels[i];
        char buf[256];
        if (!label) { /* the folder's base name, trailing '/' ignored */
            size_t end = strlen(path);
            while (end > 1 && path[end - 1] == '/')
                end--;
            size_t b = end;
            while (b > 0 && path[b - 1] != '/')
                b--;
            snprintf(buf, sizeof buf, "%.*s", (int)(end - b), path + b);
            label = buf;
        }
        kvl_status st = kvl_exp_model_load(path, label, &r->models[i], err);
        if (st != KVL_OK)
            return st;
        r->n_models = i + 1;
    }
    return KVL_OK;
}

typedef kvl_status (*phase_fn)(kvl_exp_run *, kvl_error *);

static kvl_status run_phases(kvl_exp_run *r, int32_t phases, kvl_error *err)
{
    static const struct {
        int32_t bit;
        phase_fn fn;
    } table[] = {
        {KVL_PHASE_STRUCTURE, kvl_exp_phase_structure},
        {KVL_PHASE_MODES, kvl_exp_phase_modes},
        {KVL_PHASE_TRANSFER, kvl_exp_phase_transfer},
        {KVL_PHASE_IDENTITY, kvl_exp_phase_identity},
        {KVL_PHASE_SWEEP, kvl_exp_phase_sweep},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (!(phases & table[i].bit))
            continue;
        double t0 = now_s();
        kvl_status st = table[i].fn(r, err);
        if (st != KVL_OK)
            return kvl_error_prefix(err, st, "phase %s",
                                    kvl_exp_phase_name(table[i].bit));
        json_t *ph = json_object_get(r->summary, kvl_exp_phase_name(table[i].bit));
        if (ph)
            json_object_set_new(ph, "wall_seconds", json_real(now_s() - t0));
    }
    return KVL_OK;
}

static char *results_dir(const kvl_exp_config *c, const kvl_run_options *o)
{
    if (o && o->output_dir)
        return strdup(o->output_dir);
    size_t n = strlen(c->output) + strlen(c->name) + 2;
    char *d = malloc(n);
    if (d)
        snprintf(d, n, "%s/%s", c->output, c->name);
    return d;
}

kvl_status kvl_experiment_run(const char *config_path,
                              const kvl_run_options *options,
                              char **report_path, kvl_error *err)
{
    if (report_path)
        *report_path = NULL;
    if (!config_path)
        return kvl_fail(err, KVL_ERR_ARG, "a configuration path is required");
    const double t0 = now_s();
    int32_t phases = KVL_PHASE_ALL;
    const char *phase = options && options->phase ? options->phase : "all";
    kvl_status st = kvl_exp_phase_parse(phase, &phases, err);
    kvl_exp_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (st == KVL_OK)
        st = kvl_exp_config_load(config_path, &cfg, err);
    if (st != KVL_OK)
        return st;
    if (phases == KVL_PHASE_ALL)
        phases = cfg.phases;
    char *dir = results_dir(&cfg, options);
    kvl_exp_run r;
    st = dir ? kvl_exp_run_open(&r, &cfg, options, dir, err)
             : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (st == KVL_OK) {
        r.n_threads = options && options->n_threads > 0 ? options->n_threads
                                                        : omp_get_max_threads();
        if (options) {
            r.progress.fn = options->progress;
            r.progress.user = options->progress_user;
        }
        st = load_models(&r, options, err);
        if (st == KVL_OK)
            st = run_phases(&r, phases, err);
        if (st == KVL_OK) {
            json_t *pv = provenance(&r, now_s() - t0, phase);
            st = kvl_exp_run_finish(&r, pv, report_path, err);
            json_decref(pv);
        }
        kvl_exp_run_close(&r);
    }
    free(dir);
    kvl_exp_config_free(&cfg);
    return st;
}
