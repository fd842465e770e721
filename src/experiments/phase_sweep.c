/* The battery across models: each model's full battery statistics, then a
 * comparison on the headline features normalised per model (z-scores over
 * that model's prompts), which makes models of different size and
 * architecture comparable. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "experiments/phase_util.h"
#include "experiments/phases.h"
#include "report/plot.h"
#include "stats/classify.h"
#include "stats/stats.h"

enum { TAG_SWEEP = 7000 };

/* Mode means of the z-scores: [n_modes][KVL_HL_COUNT]. */
static void mode_profile(const kvl_exp_battery_data *b, const double *z,
                         double *prof)
{
    for (int32_t m = 0; m < b->n_modes; m++)
        for (int h = 0; h < KVL_HL_COUNT; h++) {
            double s = 0;
            int32_t n = 0;
            for (int32_t p = 0; p < b->n_prompts; p++)
                if (b->mode[p] == m) {
                    s += z[(size_t)p * KVL_HL_COUNT + h];
                    n++;
                }
            prof[m * KVL_HL_COUNT + h] = n ? s / n : NAN;
        }
}

/* Spearman correlation of two vectors (Pearson on average ranks). */
static kvl_status spearman(const double *a, const double *b, int32_t n,
                           double *rho, kvl_error *err)
{
    double *ra = malloc((size_t)n * sizeof *ra), *rb = malloc((size_t)n * sizeof *rb);
    kvl_status st = ra && rb ? kvl_stats_rank(a, (size_t)n, ra, NULL, err)
                             : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (st == KVL_OK)
        st = kvl_stats_rank(b, (size_t)n, rb, NULL, err);
    if (st == KVL_OK) {
        double ma = kvl_stats_mean(ra, (size_t)n), mb = kvl_stats_mean(rb, (size_t)n);
        double sab = 0, saa = 0, sbb = 0;
        for (int32_t i = 0; i < n; i++) {
            sab += (ra[i] - ma) * (rb[i] - mb);
            saa += (ra[i] - ma) * (ra[i] - ma);
            sbb += (rb[i] - mb) * (rb[i] - mb);
        }
        *rho = saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : NAN;
    }
    free(ra);
    free(rb);
    return st;
}

typedef struct sweep_model {
    const kvl_exp_model *m;
    kvl_exp_battery_data data;
    int borrowed; /* data is r->modes_data */
    double *z, *prof;
} sweep_model;

static kvl_status profiles_plot(kvl_exp_run *r, sweep_model *sm, int32_t n,
                                kvl_error *err)
{
    for (int32_t i = 0; i < n; i++) {
        const kvl_exp_battery_data *b = &sm[i].data;
        const char *mn[1024];
        for (int32_t m = 0; m < b->n_modes && m < 1024; m++)
            mn[m] = b->mode_names[m];
        char path[1024], name[256], title[256];
        snprintf(name, sizeof name, "sweep-%s-profile", sm[i].m->label);
        snprintf(title, sizeof title, "%s: mean z-score of each feature by mode",
                 sm[i].m->label);
        kvl_plot_style ps = {title, "feature", "mode", 1000, 650};
        kvl_status st = kvl_plot_heatmap(kvl_exp_plot_path(r, name, path, sizeof path),
                                         sm[i].prof, b->n_modes, KVL_HL_COUNT,
                                         mn, kvl_headline_names, &ps, err);
        if (st != KVL_OK)
            return st;
        fprintf(r->md, "![%s](plots/%s.png)\n", title, name);
    }
    fprintf(r->md, "\n");
    return KVL_OK;
}

static kvl_status agreement(kvl_exp_run *r, sweep_model *sm, int32_t n,
                            json_t *out, kvl_error *err)
{
    const int32_t M = sm[0].data.n_modes;
    double *a = malloc((size_t)M * sizeof *a), *b = malloc((size_t)M * sizeof *b);
    if (!a || !b) {
        free(a), free(b);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
    fprintf(r->md, "Agreement of the mode profiles between models: Spearman "
                   "correlation, over the %d modes, of the per-mode mean "
                   "z-scores of each feature:\n\n| models |", (int)M);
    for (int h = 0; h < KVL_HL_COUNT; h++)
        fprintf(r->md, " %s |", kvl_headline_names[h]);
    fprintf(r->md, "\n| --- |");
    for (int h = 0; h < KVL_HL_COUNT; h++)
        fprintf(r->md, " ---: |");
    fprintf(r->md, "\n");
    kvl_status st = KVL_OK;
    for (int32_t i = 0; st == KVL_OK && i < n; i++)
        for (int32_t j = i + 1; st == KVL_OK && j < n; j++) {
            char key[512];
            snprintf(key, sizeof key, "%s vs %s", sm[i].m->label, sm[j].m->label);
            fprintf(r->md, "| %s |", key);
            json_t *row = json_object();
            for (int h = 0; st == KVL_OK && h < KVL_HL_COUNT; h++) {
                for (int32_t m = 0; m < M; m++) {
                    a[m] = sm[i].prof[m * KVL_HL_COUNT + h];
                    b[m] = sm[j].prof[m * KVL_HL_COUNT + h];
                }
                double rho = NAN;
                st = spearman(a, b, M, &rho, err);
                fprintf(r->md, " %.2f |", rho);
                json_object_set_new(row, kvl_headline_names[h], kvl_exp_json_real(rho));
            }
            fprintf(r->md, "\n");
            json_object_set_new(out, key, row);
        }
    fprintf(r->md, "\n");
    free(a);
    free(b);
    return st;
}

/* A mode classifier trained on one model's normalised headline features
 * and tested on another's. */
static kvl_status transfer_classifier(kvl_exp_run *r, sweep_model *sm,
                                      int32_t n, json_t *out, kvl_error *err)
{
    fprintf(r->md, "A random forest trained to predict the mode from one "
                   "model's normalised headline features, tested on another "
                   "model's:\n\n| trained on | tested on | accuracy | chance |\n"
                   "| --- | --- | ---: | ---: |\n");
    kvl_status st = KVL_OK;
    for (int32_t i = 0; st == KVL_OK && i < n; i++)
        for (int32_t j = 0; st == KVL_OK && j < n; j++) {
            if (i == j)
                continue;
            kvl_dataset tr = {sm[i].z, sm[i].data.mode, sm[i].data.n_prompts,
                              KVL_HL_COUNT, sm[i].data.n_modes};
            kvl_dataset te = {sm[j].z, sm[j].data.mode, sm[j].data.n_prompts,
                              KVL_HL_COUNT, sm[j].data.n_modes};
            kvl_cv_options o;
            memset(&o, 0, sizeof o);
            o.kind = KVL_CLF_FOREST;
            o.seed = kvl_rng_derive(r->cfg->seed, TAG_SWEEP + (uint64_t)(i * n + j));
            o.forest.n_trees = r->cfg->modes.trees;
            o.forest.seed = o.seed;
            o.forest.n_threads = r->n_threads;
            o.n_threads = r->n_threads;
            kvl_cv_result res;
            memset(&res, 0, sizeof res);
            st = kvl_train_test(&tr, &te, &o, &res, err);
            if (st == KVL_OK) {
                fprintf(r->md, "| %s | %s | %.3f | %.3f |\n", sm[i].m->label,
                        sm[j].m->label, res.accuracy, res.chance);
                char key[512];
                snprintf(key, sizeof key, "%s -> %s", sm[i].m->label, sm[j].m->label);
                json_object_set_new(out, key, json_pack("{s:f, s:f}", "accuracy",
                                                        res.accuracy, "chance",
                                                        res.chance));
            }
            kvl_cv_result_free(&res);
        }
    fprintf(r->md, "\n");
    return st;
}

static kvl_status same_battery(const sweep_model *sm, int32_t n, kvl_error *err)
{
    for (int32_t i = 1; i < n; i++)
        if (sm[i].data.n_modes != sm[0].data.n_modes ||
            sm[i].data.n_prompts != sm[0].data.n_prompts)
            return kvl_fail(err, KVL_ERR_INTERNAL, "battery data differ across models");
    return KVL_OK;
}

static kvl_status compare(kvl_exp_run *r, sweep_model *sm, int32_t n,
                          json_t *summary, kvl_error *err)
{
    kvl_status st = same_battery(sm, n, err);
    for (int32_t i = 0; st == KVL_OK && i < n; i++) {
        const kvl_exp_battery_data *b = &sm[i].data;
        sm[i].z = malloc((size_t)b->n_prompts * KVL_HL_COUNT * sizeof *sm[i].z);
        sm[i].prof = malloc((size_t)b->n_modes * KVL_HL_COUNT * sizeof *sm[i].prof);
        if (!sm[i].z || !sm[i].prof) {
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
            break;
        }
        kvl_exp_zscore_columns(b->hl, b->n_prompts, KVL_HL_COUNT, sm[i].z);
        mode_profile(b, sm[i].z, sm[i].prof);
    }
    fprintf(r->md, "### Comparison\n\n");
    if (st == KVL_OK)
        st = profiles_plot(r, sm, n, err);
    json_t *agree = json_object(), *xfer = json_object();
    if (st == KVL_OK && n >= 2)
        st = agreement(r, sm, n, agree, err);
    if (st == KVL_OK && n >= 2)
        st = transfer_classifier(r, sm, n, xfer, err);
    json_object_set_new(summary, "profile_agreement_spearman", agree);
    json_object_set_new(summary, "cross_model_mode_classifier", xfer);
    return st;
}

kvl_status kvl_exp_phase_sweep(kvl_exp_run *r, kvl_error *err)
{
    const kvl_exp_config *c = r->cfg;
    const int own = c->sweep.n_models > 0 && !(r->opt && r->opt->models);
    const int32_t n = own ? c->sweep.n_models : r->n_models;
    kvl_exp_model *loaded = calloc((size_t)n, sizeof *loaded);
    sweep_model *sm = calloc((size_t)n, sizeof *sm);
    kvl_exp_groups bat;
    memset(&bat, 0, sizeof bat);
    kvl_status st = loaded && sm ? kvl_exp_groups_load(c->modes.battery,
                                                       KVL_EXP_BATTERY, &bat, err)
                                 : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    fprintf(r->md, "## Scale sweep: the battery across %d models\n\n", (int)n);
    json_t *summary = json_object(), *per = json_object();
    for (int32_t i = 0; st == KVL_OK && i < n; i++) {
        if (own) {
            st = kvl_exp_model_load(c->sweep.models[i], c->sweep.model_labels[i],
                                    &loaded[i], err);
            sm[i].m = &loaded[i];
        } else {
            sm[i].m = &r->models[i];
        }
        fprintf(r->md, "### %s (%s, %lld parameters)\n\n", sm[i].m->label,
                sm[i].m->info.arch_name, (long long)sm[i].m->info.n_params);
        if (st == KVL_OK && !own && i == 0 && r->modes_data) {
            sm[i].data = *r->modes_data;
            sm[i].borrowed = 1;
            fprintf(r->md, "The battery statistics of this model are in the "
                           "modes phase above.\n\n");
            continue;
        }
        if (st == KVL_OK)
            st = kvl_exp_battery_run(r, "sweep", sm[i].m, &bat, &sm[i].data, err);
        json_t *ms = NULL;
        char prefix[256];
        snprintf(prefix, sizeof prefix, "sweep-%s", sm[i].m->label);
        if (st == KVL_OK)
            st = kvl_exp_battery_analyze(r, sm[i].m->label, prefix, &sm[i].data,
                                         &ms, err);
        if (ms)
            json_object_set_new(per, sm[i].m->label, ms);
    }
    if (st == KVL_OK)
        st = compare(r, sm, n, summary, err);
    json_object_set_new(summary, "models", per);
    json_object_set_new(r->summary, "sweep", summary);
    for (int32_t i = 0; sm && i < n; i++) {
        if (!sm[i].borrowed)
            kvl_exp_battery_data_free(&sm[i].data);
        free(sm[i].z);
        free(sm[i].prof);
    }
    for (int32_t i = 0; loaded && i < n; i++)
        kvl_exp_model_free(&loaded[i]);
    free(loaded);
    free(sm);
    kvl_exp_groups_free(&bat);
    return st;
}
