/* Phase 3: persona identity signatures.  Each persona's system prompt
 * starts a conversation; features are taken from the tokens after the
 * system turn (the user turn and the reply), so a classifier must find the
 * persona's trace in the rest of the cache, not in its own tokens. */
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

enum { TAG_ID = 5000 };

/* Run-level data of one prompt set on one model. */
typedef struct id_set {
    int32_t n, d;
    double *x;          /* [n][d]            */
    double *hl;         /* [n][KVL_HL_COUNT] */
    int32_t *y;         /* persona           */
    const char **names; /* [d]               */
    char *name_buf;
} id_set;

static void id_set_free(id_set *s)
{
    free(s->x);
    free(s->hl);
    free(s->y);
    free(s->names);
    free(s->name_buf);
    memset(s, 0, sizeof *s);
}

static kvl_status record(kvl_exp_run *r, const kvl_exp_model *m,
                         const char *set, const kvl_exp_groups *personas,
                         const kvl_exp_prompt *pr, const kvl_exp_gen *g,
                         const double *x, const id_set *s, kvl_error *err)
{
    json_t *feat = json_object();
    for (int32_t k = 0; k < s->d; k++)
        json_object_set_new(feat, s->names[k], kvl_exp_json_real(x[k]));
    json_t *rec = json_pack(
        "{s:s, s:s, s:s, s:i, s:s, s:I, s:i, s:i, s:i, s:o, s:o}", "model",
        m->label, "set", set, "persona", personas->g[pr->group].name,
        "prompt_index", pr->index, "prompt", pr->user, "seed",
        (json_int_t)g->seed, "prompt_tokens", g->n_prompt_tokens,
        "feature_from_token", g->feature_from, "generated_tokens",
        g->n_generated, "text", kvl_exp_json_text(g->text), "features", feat);
    return kvl_exp_record(r, "identity", rec, err);
}

static kvl_status run_set(kvl_exp_run *r, const kvl_exp_model *m,
                          const kvl_exp_groups *personas,
                          const kvl_exp_groups *prompts, const char *set,
                          uint64_t seed, id_set *s, kvl_error *err)
{
    memset(s, 0, sizeof *s);
    const int32_t P = personas->n, Q = prompts->g[0].n_prompts;
    const int32_t reps = r->cfg->identity.replications;
    kvl_exp_prompt *pr = calloc((size_t)P * Q, sizeof *pr);
    if (!pr)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    for (int32_t p = 0; p < P; p++)
        for (int32_t q = 0; q < Q; q++)
            pr[p * Q + q] = (kvl_exp_prompt){personas->g[p].system,
                                             prompts->g[0].prompts[q], p, q, 1};
    char task[256];
    snprintf(task, sizeof task, "identity %s: %s", set, m->label);
    kvl_exp_progress_start(&r->progress, task, (int64_t)P * Q * reps);
    kvl_exp_gen *gens = NULL;
    kvl_status st = kvl_exp_generate_all(m, pr, P * Q, reps,
                                         &r->cfg->identity.sampling, seed,
                                         r->n_threads, &r->progress, &gens, err);
    kvl_exp_progress_end(&r->progress);
    const int32_t n = P * Q * reps;
    if (st == KVL_OK) {
        s->n = n;
        s->d = kvl_features_count(&gens[0].feat);
        s->x = malloc((size_t)n * s->d * sizeof *s->x);
        s->hl = malloc((size_t)n * KVL_HL_COUNT * sizeof *s->hl);
        s->y = malloc((size_t)n * sizeof *s->y);
        s->names = malloc((size_t)s->d * sizeof *s->names);
        s->name_buf = malloc((size_t)s->d * 64);
        if (!s->x || !s->hl || !s->y || !s->names || !s->name_buf)
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; st == KVL_OK && i < n; i++) {
        double *x = s->x + (size_t)i * s->d;
        st = kvl_features_flatten(&gens[i].feat, x, i == 0 ? s->names : NULL,
                                  i == 0 ? s->name_buf : NULL,
                                  i == 0 ? (size_t)s->d * 64 : 0, err);
        s->y[i] = pr[gens[i].prompt].group;
        kvl_exp_headline(&gens[i].feat, gens[i].n_generated,
                         s->hl + (size_t)i * KVL_HL_COUNT);
        if (st == KVL_OK)
            st = record(r, m, set, personas, &pr[gens[i].prompt], &gens[i], x, s, err);
    }
    if (st == KVL_OK && strcmp(set, "A") == 0)
        kvl_exp_sample_replies(r->md, personas, pr, gens, P * Q, reps);
    kvl_exp_gens_free(gens, n);
    free(pr);
    if (st != KVL_OK)
        id_set_free(s);
    return st;
}

static kvl_cv_options cv_options(const kvl_exp_run *r, kvl_classifier_kind kind,
                                 uint64_t tag)
{
    kvl_cv_options o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.k_folds = r->cfg->identity.folds;
    o.n_permutations = r->cfg->identity.permutations;
    o.seed = kvl_rng_derive(r->cfg->seed, TAG_ID + tag);
    o.forest.n_trees = r->cfg->identity.trees;
    o.forest.seed = o.seed;
    o.forest.n_threads = r->n_threads;
    o.n_threads = r->n_threads;
    return o;
}

static json_t *cv_json(const kvl_cv_result *c)
{
    json_t *conf = json_array();
    for (int32_t i = 0; i < c->n_classes * c->n_classes; i++)
        json_array_append_new(conf, json_integer(c->confusion[i]));
    return json_pack("{s:f, s:f, s:o, s:o}", "accuracy", c->accuracy, "chance",
                     c->chance, "perm_p", kvl_exp_json_real(c->perm_p),
                     "confusion", conf);
}

/* Importance summed per layer ("L<l>." prefix) and, for attention entropy,
 * per (layer, head). */
static kvl_status importance_plots(kvl_exp_run *r, const kvl_exp_model *m,
                                   const id_set *s, const double *imp,
                                   json_t *out, kvl_error *err)
{
    const int32_t L = m->info.n_layers, H = m->info.n_heads;
    double *per_layer = calloc((size_t)L, sizeof *per_layer);
    double *heads = calloc((size_t)L * H, sizeof *heads);
    char **labels = calloc((size_t)L, sizeof *labels);
    if (!per_layer || !heads || !labels) {
        free(per_layer), free(heads), free(labels);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
    double gen = 0;
    for (int32_t j = 0; j < s->d; j++) {
        int l, h;
        if (sscanf(s->names[j], "L%d.H%d.", &l, &h) == 2 && l < L && h < H)
            heads[l * H + h] += imp[j];
        if (sscanf(s->names[j], "L%d.", &l) == 1 && l < L)
            per_layer[l] += imp[j];
        else
            gen += imp[j];
    }
    json_t *jl = json_array();
    for (int32_t l = 0; l < L; l++) {
        json_array_append_new(jl, json_real(per_layer[l]));
        labels[l] = malloc(16);
        if (labels[l])
            snprintf(labels[l], 16, "L%d", (int)l);
    }
    json_object_set_new(out, "importance_by_layer", jl);
    json_object_set_new(out, "importance_generation", json_real(gen));
    char path[1024], name[256], title[256];
    snprintf(name, sizeof name, "identity-%s-importance-layers", m->label);
    snprintf(title, sizeof title, "%s: random-forest importance by layer", m->label);
    kvl_plot_style ps = {title, "layer", "summed Gini importance", 0, 0};
    kvl_status st = kvl_plot_bars(kvl_exp_plot_path(r, name, path, sizeof path),
                                  per_layer, NULL, NULL, L,
                                  (const char *const *)labels, &ps, err);
    if (st == KVL_OK) {
        fprintf(r->md, "![%s](plots/%s.png)\n", title, name);
        snprintf(name, sizeof name, "identity-%s-importance-heads", m->label);
        snprintf(title, sizeof title,
                 "%s: importance of attention entropy by layer and head", m->label);
        kvl_plot_style ph = {title, "query head", "layer", 0, 0};
        st = kvl_plot_heatmap(kvl_exp_plot_path(r, name, path, sizeof path),
                              heads, L, H, NULL, NULL, &ph, err);
        if (st == KVL_OK)
            fprintf(r->md, "![%s](plots/%s.png)\n\n", title, name);
    }
    for (int32_t l = 0; l < L; l++)
        free(labels[l]);
    free(labels);
    free(per_layer);
    free(heads);
    return st;
}

static kvl_status one_model(kvl_exp_run *r, const kvl_exp_model *m,
                            const kvl_exp_groups *personas, const id_set *a,
                            const id_set *b, json_t *out, kvl_error *err)
{
    kvl_dataset da = {a->x, a->y, a->n, a->d, personas->n};
    kvl_dataset db = {b->x, b->y, b->n, b->d, personas->n};
    kvl_cv_result cv[2], tt[2];
    memset(cv, 0, sizeof cv);
    memset(tt, 0, sizeof tt);
    kvl_status st = KVL_OK;
    for (int c = 0; st == KVL_OK && c < 2; c++) {
        kvl_cv_options o = cv_options(r, c == 0 ? KVL_CLF_FOREST : KVL_CLF_LOGREG,
                                      (uint64_t)c);
        st = kvl_cross_validate(&da, &o, &cv[c], err);
        o.n_permutations = 0;
        if (st == KVL_OK)
            st = kvl_train_test(&da, &db, &o, &tt[c], err);
    }
    if (st == KVL_OK) {
        fprintf(r->md, "| classifier | CV accuracy (set A) | chance | "
                       "permutation p | trained on A, tested on B |\n| --- | "
                       "---: | ---: | ---: | ---: |\n");
        for (int c = 0; c < 2; c++) {
            kvl_classifier_kind kind = c == 0 ? KVL_CLF_FOREST : KVL_CLF_LOGREG;
            fprintf(r->md, "| %s | %.3f | %.3f | %.3g | %.3f |\n",
                    kvl_classifier_name(kind), cv[c].accuracy, cv[c].chance,
                    cv[c].perm_p, tt[c].accuracy);
            json_t *j = cv_json(&cv[c]);
            json_object_set_new(j, "train_a_test_b_accuracy", json_real(tt[c].accuracy));
            json_object_set_new(out, kvl_classifier_name(kind), j);
        }
        const char *pnames[1024];
        for (int32_t p = 0; p < personas->n && p < 1024; p++)
            pnames[p] = personas->g[p].name;
        char path[1024], name[256], title[256];
        snprintf(name, sizeof name, "identity-%s-confusion", m->label);
        snprintf(title, sizeof title, "%s: persona confusion, random forest "
                                      "(cross-validated, set A)", m->label);
        kvl_plot_style ps = {title, "predicted", "true", 800, 700};
        st = kvl_plot_confusion(kvl_exp_plot_path(r, name, path, sizeof path),
                                cv[0].confusion, personas->n, pnames, &ps, err);
        if (st == KVL_OK) {
            fprintf(r->md, "\n![%s](plots/%s.png)\n", title, name);
            st = importance_plots(r, m, a, cv[0].importance, out, err);
        }
    }
    for (int c = 0; c < 2; c++) {
        kvl_cv_result_free(&cv[c]);
        kvl_cv_result_free(&tt[c]);
    }
    return st;
}

/* Headline features z-scored within the set (kvl_free). */
static double *zscored(const id_set *s)
{
    double *z = malloc((size_t)s->n * KVL_HL_COUNT * sizeof *z);
    if (z)
        kvl_exp_zscore_columns(s->hl, s->n, KVL_HL_COUNT, z);
    return z;
}

/* Cross-model: personas across models on normalised headline features, and
 * telling the models apart on raw headline features. */
static kvl_status cross_model(kvl_exp_run *r, const kvl_exp_groups *personas,
                              const id_set *sets, json_t *out, kvl_error *err)
{
    const kvl_exp_model *m0 = &r->models[0], *m1 = &r->models[1];
    double *z0 = zscored(&sets[0]), *z1 = zscored(&sets[1]);
    const int32_t n0 = sets[0].n, n1 = sets[1].n;
    double *both = malloc((size_t)(n0 + n1) * KVL_HL_COUNT * sizeof *both);
    int32_t *which = malloc((size_t)(n0 + n1) * sizeof *which);
    kvl_status st = z0 && z1 && both && which
                        ? KVL_OK
                        : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    fprintf(r->md, "### Across models\n\nOn the %d headline features (%s, ...), "
                   "z-scored within each model:\n\n| classifier | trained on | "
                   "tested on | persona accuracy | chance |\n| --- | --- | --- | "
                   "---: | ---: |\n", KVL_HL_COUNT, kvl_headline_names[0]);
    for (int c = 0; st == KVL_OK && c < 2; c++) {
        kvl_classifier_kind kind = c == 0 ? KVL_CLF_FOREST : KVL_CLF_LOGREG;
        for (int dir = 0; st == KVL_OK && dir < 2; dir++) {
            kvl_dataset tr = {dir ? z1 : z0, dir ? sets[1].y : sets[0].y,
                              dir ? n1 : n0, KVL_HL_COUNT, personas->n};
            kvl_dataset te = {dir ? z0 : z1, dir ? sets[0].y : sets[1].y,
                              dir ? n0 : n1, KVL_HL_COUNT, personas->n};
            kvl_cv_options o = cv_options(r, kind, 10 + (uint64_t)(2 * c + dir));
            o.n_permutations = 0;
            kvl_cv_result res;
            memset(&res, 0, sizeof res);
            st = kvl_train_test(&tr, &te, &o, &res, err);
            if (st == KVL_OK) {
                const char *a = dir ? m1->label : m0->label, *b = dir ? m0->label : m1->label;
                fprintf(r->md, "| %s | %s | %s | %.3f | %.3f |\n",
                        kvl_classifier_name(kind), a, b, res.accuracy, res.chance);
                char key[512];
                snprintf(key, sizeof key, "%s: %s -> %s", kvl_classifier_name(kind), a, b);
                json_object_set_new(out, key, json_pack("{s:f, s:f}", "accuracy",
                                                        res.accuracy, "chance", res.chance));
            }
            kvl_cv_result_free(&res);
        }
    }
    if (st == KVL_OK) {
        memcpy(both, sets[0].hl, (size_t)n0 * KVL_HL_COUNT * sizeof *both);
        memcpy(both + (size_t)n0 * KVL_HL_COUNT, sets[1].hl,
               (size_t)n1 * KVL_HL_COUNT * sizeof *both);
        for (int32_t i = 0; i < n0 + n1; i++)
            which[i] = i >= n0;
        kvl_dataset dm = {both, which, n0 + n1, KVL_HL_COUNT, 2};
        kvl_cv_options o = cv_options(r, KVL_CLF_FOREST, 20);
        kvl_cv_result res;
        memset(&res, 0, sizeof res);
        st = kvl_cross_validate(&dm, &o, &res, err);
        if (st == KVL_OK) {
            fprintf(r->md, "\nTelling the two models apart from the raw headline "
                           "features of their caches (random forest, %d-fold "
                           "CV): accuracy %.3f (chance %.3f, permutation p %.3g).\n\n",
                    (int)o.k_folds, res.accuracy, res.chance, res.perm_p);
            json_object_set_new(out, "model_discrimination", cv_json(&res));
        }
        kvl_cv_result_free(&res);
    }
    free(z0), free(z1), free(both), free(which);
    return st;
}

kvl_status kvl_exp_phase_identity(kvl_exp_run *r, kvl_error *err)
{
    const kvl_exp_config *c = r->cfg;
    kvl_exp_groups personas, pa, pb;
    memset(&pa, 0, sizeof pa);
    memset(&pb, 0, sizeof pb);
    kvl_status st = kvl_exp_groups_load(c->identity.personas, KVL_EXP_PERSONAS,
                                        &personas, err);
    if (st != KVL_OK)
        return st;
    st = kvl_exp_groups_load(c->identity.prompts, KVL_EXP_PROMPTS, &pa, err);
    if (st == KVL_OK)
        st = kvl_exp_groups_load(c->identity.prompts_b, KVL_EXP_PROMPTS, &pb, err);
    fprintf(r->md, "## Phase 3: identity signatures\n\n%d personas (system "
                   "prompts), prompt set A (%d prompts) and set B (%d other "
                   "prompts), %d generation(s) per persona and prompt. "
                   "Features are taken from the tokens after the system turn "
                   "(the user turn and the reply): a classifier has to find "
                   "the persona's trace in the rest of the cache.\n\n",
            (int)personas.n, st == KVL_OK ? (int)pa.g[0].n_prompts : 0,
            st == KVL_OK ? (int)pb.g[0].n_prompts : 0,
            (int)c->identity.replications);
    json_t *summary = json_object();
    id_set *sets = calloc((size_t)r->n_models * 2, sizeof *sets);
    if (st == KVL_OK && !sets)
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; st == KVL_OK && i < r->n_models; i++) {
        const kvl_exp_model *m = &r->models[i];
        fprintf(r->md, "### %s\n\n", m->label);
        st = run_set(r, m, &personas, &pa, "A", kvl_rng_derive(c->seed, TAG_ID + 100 + (uint64_t)i),
                     &sets[2 * i], err);
        if (st == KVL_OK)
            st = run_set(r, m, &personas, &pb, "B",
                         kvl_rng_derive(c->seed, TAG_ID + 200 + (uint64_t)i),
                         &sets[2 * i + 1], err);
        json_t *mj = json_object();
        if (st == KVL_OK)
            st = one_model(r, m, &personas, &sets[2 * i], &sets[2 * i + 1], mj, err);
        json_object_set_new(summary, m->label, mj);
    }
    if (st == KVL_OK && r->n_models >= 2) {
        id_set two[2] = {sets[0], sets[2]};
        json_t *cm = json_object();
        st = cross_model(r, &personas, two, cm, err);
        json_object_set_new(summary, "cross_model", cm);
    }
    json_object_set_new(r->summary, "identity", summary);
    for (int32_t i = 0; sets && i < r->n_models * 2; i++)
        id_set_free(&sets[i]);
    free(sets);
    kvl_exp_groups_free(&personas);
    kvl_exp_groups_free(&pa);
    kvl_exp_groups_free(&pb);
    return st;
}
