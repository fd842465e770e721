/* Phase 1.5: the cognitive-mode battery on the first model; the sweep
 * reuses battery_run for every model. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "experiments/battery_stats.h"
#include "experiments/phases.h"
#include "experiments/phase_util.h"

/* One record per generation. */
static kvl_status record_gens(kvl_exp_run *r, const char *phase,
                              const kvl_exp_model *m, const kvl_exp_groups *bat,
                              const kvl_exp_prompt *prompts,
                              const kvl_exp_gen *gens, int64_t n,
                              kvl_error *err)
{
    int32_t d = kvl_features_count(&gens[0].feat);
    double *v = malloc((size_t)d * sizeof *v);
    const char **names = malloc((size_t)d * sizeof *names);
    char *buf = malloc((size_t)d * 64);
    kvl_status st = v && names && buf
                        ? kvl_features_flatten(&gens[0].feat, v, names, buf,
                                               (size_t)d * 64, err)
                        : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; st == KVL_OK && i < n; i++) {
        const kvl_exp_gen *g = &gens[i];
        const kvl_exp_prompt *p = &prompts[g->prompt];
        st = kvl_features_flatten(&g->feat, v, NULL, NULL, 0, err);
        json_t *feat = json_object();
        for (int32_t k = 0; st == KVL_OK && k < d; k++)
            json_object_set_new(feat, names[k], kvl_exp_json_real(v[k]));
        json_t *rec = json_pack(
            "{s:s, s:s, s:i, s:s, s:i, s:I, s:i, s:i, s:b, s:o, s:o}", "model",
            m->label, "mode", bat->g[p->group].name, "prompt_index", p->index,
            "prompt", p->user, "replication", g->replication, "seed",
            (json_int_t)g->seed, "prompt_tokens", g->n_prompt_tokens,
            "generated_tokens", g->n_generated, "stopped_at_eos",
            g->stopped_at_eos, "text", kvl_exp_json_text(g->text), "features", feat);
        if (st == KVL_OK)
            st = kvl_exp_record(r, phase, rec, err);
        else
            json_decref(rec);
    }
    free(v);
    free(names);
    free(buf);
    return st;
}

kvl_status kvl_exp_battery_run(kvl_exp_run *r, const char *phase,
                               const kvl_exp_model *m, const kvl_exp_groups *bat,
                               kvl_exp_battery_data *out, kvl_error *err)
{
    int32_t n = 0;
    for (int32_t g = 0; g < bat->n; g++)
        n += bat->g[g].n_prompts;
    kvl_exp_prompt *prompts = calloc((size_t)n, sizeof *prompts);
    if (!prompts)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    int32_t k = 0;
    for (int32_t g = 0; g < bat->n; g++)
        for (int32_t j = 0; j < bat->g[g].n_prompts; j++, k++)
            prompts[k] = (kvl_exp_prompt){bat->g[g].system, bat->g[g].prompts[j], g, j, 0};
    const int32_t reps = r->cfg->modes.replications;
    char task[256];
    snprintf(task, sizeof task, "%s: %s", phase, m->label);
    kvl_exp_progress_start(&r->progress, task, (int64_t)n * reps);
    kvl_exp_gen *gens = NULL;
    kvl_status st = kvl_exp_generate_all(m, prompts, n, reps,
                                         &r->cfg->modes.sampling, r->cfg->seed,
                                         r->n_threads, &r->progress, &gens, err);
    kvl_exp_progress_end(&r->progress);
    if (st == KVL_OK)
        st = record_gens(r, phase, m, bat, prompts, gens, (int64_t)n * reps, err);
    if (st == KVL_OK)
        st = kvl_exp_battery_collect(bat, gens, reps, out, err);
    if (st == KVL_OK)
        kvl_exp_sample_replies(r->md, bat, prompts, gens, n, reps);
    kvl_exp_gens_free(gens, (int64_t)n * reps);
    free(prompts);
    return st;
}

kvl_status kvl_exp_phase_modes(kvl_exp_run *r, kvl_error *err)
{
    const kvl_exp_model *m = &r->models[0];
    kvl_exp_groups bat;
    kvl_status st = kvl_exp_groups_load(r->cfg->modes.battery, KVL_EXP_BATTERY,
                                        &bat, err);
    if (st != KVL_OK)
        return st;
    fprintf(r->md, "## Phase 1.5: cognitive modes (%s)\n\nBattery `%s`: %d modes, "
                   "each prompt asked as the user turn of a chat and generated "
                   "%d times (temperature %.2g, top-p %.2g, at most %d new "
                   "tokens, seeds derived from %llu).\n\n",
            m->label, bat.name ? bat.name : r->cfg->modes.battery, (int)bat.n,
            (int)r->cfg->modes.replications,
            (double)r->cfg->modes.sampling.temperature,
            (double)r->cfg->modes.sampling.top_p,
            (int)r->cfg->modes.sampling.max_new_tokens,
            (unsigned long long)r->cfg->seed);
    kvl_exp_battery_data data;
    json_t *summary = NULL;
    st = kvl_exp_battery_run(r, "modes", m, &bat, &data, err);
    if (st == KVL_OK) {
        char prefix[256];
        snprintf(prefix, sizeof prefix, "modes-%s", m->label);
        st = kvl_exp_battery_analyze(r, m->label, prefix, &data, &summary, err);
        /* Kept for the sweep. */
        r->modes_data = malloc(sizeof *r->modes_data);
        if (r->modes_data)
            *r->modes_data = data;
        else
            kvl_exp_battery_data_free(&data);
    }
    if (st == KVL_OK) {
        json_object_set_new(summary, "model", json_string(m->label));
        json_object_set_new(r->summary, "modes", summary);
    }
    kvl_exp_groups_free(&bat);
    return st;
}
