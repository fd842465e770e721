/* Statistics of a battery run: prompt-level data, tests, classifiers,
 * plots and the report section. */
#include "experiments/battery_stats.h"
#include "experiments/phase_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "report/plot.h"
#include "stats/classify.h"
#include "stats/stats.h"

const char *const kvl_headline_names[KVL_HL_COUNT] = {
    "k_norm", "v_norm", "k_eff_rank", "v_eff_rank", "attn_entropy",
    "next_token_entropy", "self_nll", "gen_tokens"};

/* Seed tags: one stream per use, all derived from the config seed. */
enum { TAG_BOOT = 1000, TAG_FOREST = 2000, TAG_LOGREG = 3000, TAG_FEAT = 1u << 20 };

static double layer_mean(const double *v, int32_t n)
{
    double s = 0;
    for (int32_t i = 0; i < n; i++)
        s += v[i];
    return n ? s / n : NAN;
}

void kvl_exp_headline(const kvl_features *f, int32_t n_generated, double *h)
{
    const int32_t L = f->n_layers;
    h[KVL_HL_K_NORM] = layer_mean(f->k_norm_mean, L);
    h[KVL_HL_V_NORM] = layer_mean(f->v_norm_mean, L);
    h[KVL_HL_K_RANK] = layer_mean(f->k_eff_rank, L);
    h[KVL_HL_V_RANK] = layer_mean(f->v_eff_rank, L);
    h[KVL_HL_ATTN_ENT] = layer_mean(f->attn_entropy, L * f->n_heads);
    h[KVL_HL_NEXT_ENT] = f->next_token_entropy;
    h[KVL_HL_SELF_NLL] = f->self_nll;
    h[KVL_HL_GEN_TOKENS] = n_generated;
}

void kvl_exp_zscore_columns(const double *x, int32_t n, int32_t d, double *z)
{
    for (int32_t j = 0; j < d; j++) {
        double s = 0, s2 = 0;
        int32_t m = 0;
        for (int32_t i = 0; i < n; i++) {
            const double v = x[(size_t)i * d + j];
            if (isfinite(v)) {
                s += v;
                m++;
            }
        }
        const double mu = m ? s / m : 0;
        for (int32_t i = 0; i < n; i++) {
            const double v = x[(size_t)i * d + j];
            if (isfinite(v))
                s2 += (v - mu) * (v - mu);
        }
        const double sd = m ? sqrt(s2 / m) : 0;
        for (int32_t i = 0; i < n; i++) {
            const double v = x[(size_t)i * d + j];
            z[(size_t)i * d + j] = sd > 0 && isfinite(v) ? (v - mu) / sd : 0;
        }
    }
}

kvl_status kvl_exp_battery_collect(const kvl_exp_groups *battery,
                                   const kvl_exp_gen *gens, int32_t reps,
                                   kvl_exp_battery_data *b, kvl_error *err)
{
    memset(b, 0, sizeof *b);
    b->n_modes = battery->n;
    b->reps = reps;
    for (int32_t m = 0; m < battery->n; m++)
        b->n_prompts += battery->g[m].n_prompts;
    b->d = kvl_features_count(&gens[0].feat);
    const size_t name_cap = (size_t)b->d * 64;
    b->mode_names = calloc((size_t)b->n_modes, sizeof *b->mode_names);
    b->mode = malloc((size_t)b->n_prompts * sizeof *b->mode);
    b->x = calloc((size_t)b->n_prompts * b->d, sizeof *b->x);
    b->hl = calloc((size_t)b->n_prompts * KVL_HL_COUNT, sizeof *b->hl);
    b->names = malloc((size_t)b->d * sizeof *b->names);
    b->name_buf = malloc(name_cap);
    double *tmp = malloc((size_t)b->d * sizeof *tmp);
    kvl_status st = KVL_OK;
    if (!b->mode_names || !b->mode || !b->x || !b->hl || !b->names ||
        !b->name_buf || !tmp)
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (st == KVL_OK)
        st = kvl_features_flatten(&gens[0].feat, tmp, b->names, b->name_buf,
                                  name_cap, err);
    int32_t p = 0;
    for (int32_t m = 0; st == KVL_OK && m < battery->n; m++) {
        b->mode_names[m] = strdup(battery->g[m].name);
        if (!b->mode_names[m]) {
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
            break;
        }
        for (int32_t j = 0; st == KVL_OK && j < battery->g[m].n_prompts; j++, p++) {
            b->mode[p] = m;
            for (int32_t r = 0; st == KVL_OK && r < reps; r++) {
                const kvl_exp_gen *g = &gens[(int64_t)p * reps + r];
                double h[KVL_HL_COUNT];
                st = kvl_features_flatten(&g->feat, tmp, NULL, NULL, 0, err);
                kvl_exp_headline(&g->feat, g->n_generated, h);
                for (int32_t k = 0; k < b->d; k++)
                    b->x[(size_t)p * b->d + k] += tmp[k] / reps;
                for (int32_t k = 0; k < KVL_HL_COUNT; k++)
                    b->hl[(size_t)p * KVL_HL_COUNT + k] += h[k] / reps;
            }
        }
    }
    free(tmp);
    if (st != KVL_OK)
        kvl_exp_battery_data_free(b);
    return st;
}

void kvl_exp_battery_data_free(kvl_exp_battery_data *b)
{
    for (int32_t m = 0; b->mode_names && m < b->n_modes; m++)
        free(b->mode_names[m]);
    free(b->mode_names);
    free(b->mode);
    free(b->x);
    free(b->hl);
    free(b->names);
    free(b->name_buf);
    memset(b, 0, sizeof *b);
}

/* ---- helpers ------------------------------------------------------------------ */

/* Values of column `col` (stride `stride`) for the prompts of mode m. */
static int32_t mode_values(const kvl_exp_battery_data *b, const double *mat,
                           int32_t stride, int32_t col, int32_t m, double *out)
{
    int32_t n = 0;
    for (int32_t p = 0; p < b->n_prompts; p++)
        if (b->mode[p] == m)
            out[n++] = mat[(size_t)p * stride + col];
    return n;
}

static int all_equal(const double *v, int32_t n)
{
    for (int32_t i = 1; i < n; i++)
        if (v[i] != v[0])
            return 0;
    return 1;
}

static int any_nan(const double *v, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (isnan(v[i]))
            return 1;
    return 0;
}

/* Kruskal-Wallis on one column; a constant column gives H = 0, p = 1. */
static kvl_status kw_column(const kvl_exp_battery_data *b, const double *mat,
                            int32_t stride, int32_t col, double *buf,
                            kvl_kruskal_result *kw, kvl_error *err)
{
    for (int32_t p = 0; p < b->n_prompts; p++)
        buf[p] = mat[(size_t)p * stride + col];
    if (any_nan(buf, b->n_prompts)) {
        *kw = (kvl_kruskal_result){NAN, b->n_modes - 1, NAN, NAN};
        return KVL_OK;
    }
    if (all_equal(buf, b->n_prompts)) {
        *kw = (kvl_kruskal_result){0, b->n_modes - 1, 1, 0};
        return KVL_OK;
    }
    return kvl_stats_kruskal_wallis(buf, b->mode, (size_t)b->n_prompts,
                                    b->n_modes, kw, err);
}

/* ---- per-mode headline means ----------------------------------------------------- */

typedef struct hl_stats {
    double mean[KVL_HL_COUNT];
    kvl_interval ci[KVL_HL_COUNT];
} hl_stats;

/* Mean of column `col` over the prompts of mode m, with its percentile
 * bootstrap interval (NaN when fewer than 2 values or any is NaN). */
static kvl_status mode_mean_ci(const kvl_exp_run *r, const kvl_exp_battery_data *b,
                               const double *mat, int32_t stride, int32_t col,
                               int32_t m, uint64_t tag, double *v, double *mean,
                               kvl_interval *ci, kvl_error *err)
{
    const int32_t n = mode_values(b, mat, stride, col, m, v);
    *mean = kvl_stats_mean(v, (size_t)n);
    *ci = (kvl_interval){NAN, NAN};
    if (n < 2 || any_nan(v, n))
        return KVL_OK;
    return kvl_stats_bootstrap_mean_ci(v, (size_t)n, r->cfg->modes.bootstrap, 0.95,
                                       kvl_rng_derive(r->cfg->seed, tag), ci, err);
}

static kvl_status mode_means(kvl_exp_run *r, const kvl_exp_battery_data *b,
                             hl_stats *hs, kvl_error *err)
{
    double *v = malloc((size_t)b->n_prompts * sizeof *v);
    if (!v)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    kvl_status st = KVL_OK;
    for (int32_t m = 0; st == KVL_OK && m < b->n_modes; m++)
        for (int32_t h = 0; st == KVL_OK && h < KVL_HL_COUNT; h++)
            st = mode_mean_ci(r, b, b->hl, KVL_HL_COUNT, h, m,
                              TAG_BOOT + (uint64_t)(m * KVL_HL_COUNT + h), v,
                              &hs[m].mean[h], &hs[m].ci[h], err);
    free(v);
    return st;
}

/* Per-mode means and bootstrap intervals of every feature (summary.json). */
static kvl_status feature_means_json(kvl_exp_run *r, const kvl_exp_battery_data *b,
                                     json_t *out, kvl_error *err)
{
    double *v = malloc((size_t)b->n_prompts * sizeof *v);
    if (!v)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    kvl_status st = KVL_OK;
    for (int32_t j = 0; st == KVL_OK && j < b->d; j++) {
        json_t *fj = json_object();
        for (int32_t m = 0; st == KVL_OK && m < b->n_modes; m++) {
            double mean;
            kvl_interval ci;
            st = mode_mean_ci(r, b, b->x, b->d, j, m,
                              TAG_FEAT + (uint64_t)j * (uint64_t)b->n_modes + (uint64_t)m,
                              v, &mean, &ci, err);
            json_object_set_new(fj, b->mode_names[m],
                                json_pack("{s:o, s:o, s:o}", "mean", kvl_exp_json_real(mean),
                                          "ci_lo", kvl_exp_json_real(ci.lo), "ci_hi",
                                          kvl_exp_json_real(ci.hi)));
        }
        json_object_set_new(out, b->names[j], fj);
    }
    free(v);
    return st;
}

static void write_mode_table(FILE *md, const kvl_exp_battery_data *b,
                             const hl_stats *hs)
{
    fprintf(md, "Per-mode means over prompts (each prompt averaged over its %d "
                "replications) with 95 %% percentile-bootstrap intervals:\n\n"
                "| mode |", (int)b->reps);
    for (int h = 0; h < KVL_HL_COUNT; h++)
        fprintf(md, " %s |", kvl_headline_names[h]);
    fprintf(md, "\n| --- |");
    for (int h = 0; h < KVL_HL_COUNT; h++)
        fprintf(md, " ---: |");
    fprintf(md, "\n");
    for (int32_t m = 0; m < b->n_modes; m++) {
        fprintf(md, "| %s |", b->mode_names[m]);
        for (int h = 0; h < KVL_HL_COUNT; h++)
            fprintf(md, " %.4g [%.4g, %.4g] |", hs[m].mean[h], hs[m].ci[h].lo,
                    hs[m].ci[h].hi);
        fprintf(md, "\n");
    }
    fprintf(md, "\n");
}

static json_t *mode_means_json(const kvl_exp_battery_data *b, const hl_stats *hs)
{
    json_t *o = json_object();
    for (int32_t m = 0; m < b->n_modes; m++) {
        json_t *mo = json_object();
        for (int h = 0; h < KVL_HL_COUNT; h++)
            json_object_set_new(mo, kvl_headline_names[h],
                                json_pack("{s:o, s:o, s:o}", "mean",
                                          kvl_exp_json_real(hs[m].mean[h]), "ci_lo",
                                          kvl_exp_json_real(hs[m].ci[h].lo), "ci_hi",
                                          kvl_exp_json_real(hs[m].ci[h].hi)));
        json_object_set_new(o, b->mode_names[m], mo);
    }
    return o;
}

/* Bars of two headline features with intervals, and all headlines z-scored
 * (over the model's prompts) grouped by mode. */
static kvl_status mode_plots(kvl_exp_run *r, const char *label,
                             const char *prefix, const kvl_exp_battery_data *b,
                             const hl_stats *hs, kvl_error *err)
{
    const int32_t M = b->n_modes;
    double *val = malloc(sizeof(double) * (size_t)M * KVL_HL_COUNT * 3);
    if (!val)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    double *lo = val + M * KVL_HL_COUNT, *hi = lo + M * KVL_HL_COUNT;
    const char *mnames[1024];
    for (int32_t m = 0; m < M && m < 1024; m++)
        mnames[m] = b->mode_names[m];
    char path[1024], name[256], title[256];
    kvl_status st = KVL_OK;
    const int shown[2] = {KVL_HL_ATTN_ENT, KVL_HL_NEXT_ENT};
    for (int s = 0; st == KVL_OK && s < 2; s++) {
        const int h = shown[s];
        for (int32_t m = 0; m < M; m++) {
            val[m] = hs[m].mean[h];
            lo[m] = hs[m].ci[h].lo;
            hi[m] = hs[m].ci[h].hi;
        }
        snprintf(name, sizeof name, "%s-%s", prefix, kvl_headline_names[h]);
        snprintf(title, sizeof title, "%s: %s by mode (95%% bootstrap CI)",
                 label, kvl_headline_names[h]);
        kvl_plot_style ps = {title, "mode", kvl_headline_names[h], 0, 0};
        st = kvl_plot_bars(kvl_exp_plot_path(r, name, path, sizeof path), val,
                           lo, hi, M, mnames, &ps, err);
        if (st == KVL_OK)
            fprintf(r->md, "![%s](plots/%s.png)\n", title, name);
    }
    /* z-scores: series = modes, groups = headline features. */
    for (int h = 0; st == KVL_OK && h < KVL_HL_COUNT; h++) {
        double *col = malloc((size_t)b->n_prompts * sizeof *col);
        if (!col) {
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
            break;
        }
        for (int32_t p = 0; p < b->n_prompts; p++)
            col[p] = b->hl[(size_t)p * KVL_HL_COUNT + h];
        double mu = kvl_stats_mean(col, (size_t)b->n_prompts);
        double sd = sqrt(kvl_stats_var(col, (size_t)b->n_prompts, 1));
        if (!(sd > 0))
            sd = 1;
        for (int32_t m = 0; m < M; m++) {
            val[m * KVL_HL_COUNT + h] = (hs[m].mean[h] - mu) / sd;
            lo[m * KVL_HL_COUNT + h] = (hs[m].ci[h].lo - mu) / sd;
            hi[m * KVL_HL_COUNT + h] = (hs[m].ci[h].hi - mu) / sd;
        }
        free(col);
    }
    if (st == KVL_OK) {
        snprintf(name, sizeof name, "%s-profile", prefix);
        snprintf(title, sizeof title, "%s: mode profiles (z-scores over prompts, 95%% CI)", label);
        kvl_plot_style ps = {title, "feature", "z-score", 1100, 600};
        st = kvl_plot_grouped_bars(kvl_exp_plot_path(r, name, path, sizeof path),
                                   val, lo, hi, M, KVL_HL_COUNT, mnames,
                                   kvl_headline_names, &ps, err);
        if (st == KVL_OK)
            fprintf(r->md, "![%s](plots/%s.png)\n\n", title, name);
    }
    free(val);
    return st;
}

/* ---- Kruskal-Wallis over every feature ---------------------------------------------- */

typedef struct kw_all {
    kvl_kruskal_result *kw; /* [d] */
    double *p_holm;         /* [d] */
    int32_t n_sig, n_tested;
} kw_all;

static kvl_status kw_features(const kvl_exp_battery_data *b, kw_all *k,
                              kvl_error *err)
{
    k->kw = calloc((size_t)b->d, sizeof *k->kw);
    k->p_holm = calloc((size_t)b->d, sizeof *k->p_holm);
    double *buf = malloc((size_t)b->n_prompts * sizeof *buf);
    double *ps = malloc((size_t)b->d * sizeof *ps);
    int32_t *idx = malloc((size_t)b->d * sizeof *idx);
    kvl_status st = k->kw && k->p_holm && buf && ps && idx
                        ? KVL_OK
                        : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    int32_t n = 0;
    for (int32_t j = 0; st == KVL_OK && j < b->d; j++) {
        st = kw_column(b, b->x, b->d, j, buf, &k->kw[j], err);
        k->p_holm[j] = NAN;
        if (st == KVL_OK && !isnan(k->kw[j].p)) {
            ps[n] = k->kw[j].p;
            idx[n++] = j;
        }
    }
    if (st == KVL_OK) {
        st = n ? kvl_stats_holm(ps, (size_t)n, ps, err) : KVL_OK;
        k->n_tested = n;
        for (int32_t i = 0; i < n; i++) {
            k->p_holm[idx[i]] = ps[i];
            k->n_sig += ps[i] < 0.05;
        }
    }
    free(buf);
    free(ps);
    free(idx);
    return st;
}

/* Layer x feature-type heatmap of epsilon-squared. */
static kvl_status kw_heatmap(kvl_exp_run *r, const char *label,
                             const char *prefix, const kvl_exp_battery_data *b,
                             const kw_all *k, kvl_error *err)
{
    static const char *const types[] = {"k_norm_mean", "k_norm_var", "v_norm_mean",
                                        "v_norm_var", "k_eff_rank", "v_eff_rank",
                                        "k_spec_entropy", "v_spec_entropy"};
    enum { NT = 8 };
    int32_t layers = 0;
    for (int32_t j = 0; j < b->d; j++) {
        int l;
        if (sscanf(b->names[j], "L%d.", &l) == 1 && l + 1 > layers)
            layers = l + 1;
    }
    if (layers == 0)
        return KVL_OK;
    double *z = malloc((size_t)layers * NT * sizeof *z);
    if (!z)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < layers * NT; i++)
        z[i] = NAN;
    for (int32_t j = 0; j < b->d; j++) {
        int l, used = 0;
        if (sscanf(b->names[j], "L%d.%n", &l, &used) != 1 || used == 0)
            continue;
        for (int t = 0; t < NT; t++)
            if (strcmp(b->names[j] + used, types[t]) == 0)
                z[l * NT + t] = k->kw[j].epsilon_sq;
    }
    char path[1024], name[256], title[256];
    snprintf(name, sizeof name, "%s-kw-layers", prefix);
    snprintf(title, sizeof title,
             "%s: Kruskal-Wallis effect size (epsilon^2) across modes", label);
    kvl_plot_style ps = {title, "feature", "layer", 1000, 600};
    kvl_status st = kvl_plot_heatmap(kvl_exp_plot_path(r, name, path, sizeof path),
                                     z, layers, NT, NULL, types, &ps, err);
    free(z);
    if (st == KVL_OK)
        fprintf(r->md, "![%s](plots/%s.png)\n\n", title, name);
    return st;
}

static int cmp_desc_h(const void *a, const void *b, void *ctx)
{
    const kvl_kruskal_result *kw = ctx;
    double x = kw[*(const int32_t *)a].h, y = kw[*(const int32_t *)b].h;
    if (isnan(x))
        x = -1;
    if (isnan(y))
        y = -1;
    return (x < y) - (x > y);
}

static void kw_table(FILE *md, const kvl_exp_battery_data *b, const kw_all *k)
{
    int32_t *order = malloc((size_t)b->d * sizeof *order);
    if (!order)
        return;
    for (int32_t j = 0; j < b->d; j++)
        order[j] = j;
    qsort_r(order, (size_t)b->d, sizeof *order, cmp_desc_h, k->kw);
    fprintf(md, "Kruskal-Wallis across the %d modes for each of the %d "
                "features (%d testable): **%d** with a Holm-adjusted p < 0.05. "
                "The ten largest H:\n\n| feature | H | p | Holm p | epsilon^2 |\n"
                "| --- | ---: | ---: | ---: | ---: |\n",
            (int)b->n_modes, (int)b->d, (int)k->n_tested, (int)k->n_sig);
    for (int32_t i = 0; i < b->d && i < 10; i++) {
        const int32_t j = order[i];
        fprintf(md, "| %s | %.3f | %.3g | %.3g | %.3f |\n", b->names[j],
                k->kw[j].h, k->kw[j].p, k->p_holm[j], k->kw[j].epsilon_sq);
    }
    fprintf(md, "\n");
    free(order);
}

static json_t *kw_json(const kvl_exp_battery_data *b, const kw_all *k)
{
    json_t *o = json_object();
    for (int32_t j = 0; j < b->d; j++)
        json_object_set_new(o, b->names[j],
                            json_pack("{s:o, s:o, s:o, s:o}", "h", kvl_exp_json_real(k->kw[j].h),
                                      "p", kvl_exp_json_real(k->kw[j].p), "p_holm",
                                      kvl_exp_json_real(k->p_holm[j]), "epsilon_sq",
                                      kvl_exp_json_real(k->kw[j].epsilon_sq)));
    return json_pack("{s:i, s:i, s:o}", "n_features", b->d, "n_significant_holm",
                     k->n_sig, "features", o);
}

/* ---- pairwise Mann-Whitney on the headline features -------------------------------- */

/* Mann-Whitney of every pair of modes on headline column h: p, r, d. */
static kvl_status pairs_of(const kvl_exp_battery_data *b, int h, double *x,
                           double *y, double *p, double *rb, double *d,
                           kvl_error *err)
{
    int32_t k = 0;
    for (int32_t a = 0; a < b->n_modes; a++)
        for (int32_t c = a + 1; c < b->n_modes; c++, k++) {
            const int32_t nx = mode_values(b, b->hl, KVL_HL_COUNT, h, a, x);
            const int32_t ny = mode_values(b, b->hl, KVL_HL_COUNT, h, c, y);
            kvl_mwu_result mw = {NAN, 1, 0, 0};
            if (!any_nan(x, nx) && !any_nan(y, ny)) {
                kvl_status st = kvl_stats_mann_whitney(x, (size_t)nx, y,
                                                       (size_t)ny, &mw, err);
                if (st != KVL_OK)
                    return st;
            }
            p[k] = mw.p;
            rb[k] = mw.rank_biserial;
            d[k] = kvl_stats_cohens_d(x, (size_t)nx, y, (size_t)ny);
        }
    return KVL_OK;
}

/* One headline feature: Kruskal-Wallis, the pairs with Holm, a table row
 * and the summary entry; its rank-biserial values stay in rb. */
static kvl_status headline_tests(kvl_exp_run *r, const kvl_exp_battery_data *b,
                                 int h, double *buf, double *p, double *rb,
                                 double *ph, double *H, json_t *out,
                                 kvl_error *err)
{
    const int32_t M = b->n_modes, P = M * (M - 1) / 2;
    double *d = malloc((size_t)P * sizeof *d);
    double *y = malloc((size_t)b->n_prompts * sizeof *y);
    if (!d || !y) {
        free(d), free(y);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
    kvl_kruskal_result kw;
    kvl_status st = kw_column(b, b->hl, KVL_HL_COUNT, h, buf, &kw, err);
    if (st == KVL_OK)
        st = pairs_of(b, h, buf, y, p, rb, d, err);
    if (st == KVL_OK)
        st = kvl_stats_holm(p, (size_t)P, ph, err);
    if (st == KVL_OK) {
        json_t *pairs = json_array();
        int32_t k = 0, nsig = 0, best = 0, ba = 0, bc = 1;
        for (int32_t a = 0; a < M; a++)
            for (int32_t c = a + 1; c < M; c++, k++) {
                nsig += ph[k] < 0.05;
                if (fabs(rb[k]) > fabs(rb[best]))
                    best = k, ba = a, bc = c;
                json_array_append_new(pairs, json_pack(
                    "{s:s, s:s, s:o, s:o, s:o, s:o}", "a", b->mode_names[a], "b",
                    b->mode_names[c], "p", kvl_exp_json_real(p[k]), "p_holm",
                    kvl_exp_json_real(ph[k]), "rank_biserial", kvl_exp_json_real(rb[k]),
                    "cohens_d", kvl_exp_json_real(d[k])));
            }
        fprintf(r->md, "| %s | %.3f | %.3g | %.3f | %d / %d | %.2f (%s vs %s) |\n",
                kvl_headline_names[h], kw.h, kw.p, kw.epsilon_sq, (int)nsig,
                (int)P, rb[best], b->mode_names[ba], b->mode_names[bc]);
        json_object_set_new(out, kvl_headline_names[h], json_pack(
            "{s:o, s:o, s:o, s:i, s:o}", "kruskal_h", kvl_exp_json_real(kw.h),
            "kruskal_p", kvl_exp_json_real(kw.p), "epsilon_sq",
            kvl_exp_json_real(kw.epsilon_sq), "pairs_significant_holm", nsig,
            "pairs", pairs));
        *H = kw.h;
    }
    free(d);
    free(y);
    return st;
}

/* Matrix plot of the rank-biserial r of one feature (row vs column). */
static kvl_status pairwise_plot(kvl_exp_run *r, const char *label,
                                const char *prefix, const kvl_exp_battery_data *b,
                                int h, const double *rb, kvl_error *err)
{
    const int32_t M = b->n_modes;
    double *mat = malloc((size_t)M * M * sizeof *mat);
    if (!mat)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    int32_t k = 0;
    for (int32_t a = 0; a < M; a++) {
        mat[a * M + a] = 0;
        for (int32_t c = a + 1; c < M; c++, k++) {
            mat[a * M + c] = rb[k];
            mat[c * M + a] = -rb[k];
        }
    }
    const char *mnames[1024];
    for (int32_t m = 0; m < M && m < 1024; m++)
        mnames[m] = b->mode_names[m];
    char path[1024], name[256], title[256];
    snprintf(name, sizeof name, "%s-pairwise", prefix);
    snprintf(title, sizeof title, "%s: rank-biserial r of %s (row vs column)",
             label, kvl_headline_names[h]);
    kvl_plot_style ps = {title, "mode", "mode", 900, 750};
    kvl_status st = kvl_plot_heatmap(kvl_exp_plot_path(r, name, path, sizeof path),
                                     mat, M, M, mnames, mnames, &ps, err);
    if (st == KVL_OK)
        fprintf(r->md, "![%s](plots/%s.png)\n\n", title, name);
    free(mat);
    return st;
}

static kvl_status pairwise(kvl_exp_run *r, const char *label,
                           const char *prefix, const kvl_exp_battery_data *b,
                           json_t *out, kvl_error *err)
{
    const int32_t M = b->n_modes, P = M * (M - 1) / 2;
    double *buf = malloc((size_t)b->n_prompts * sizeof *buf);
    double *p = malloc((size_t)P * sizeof *p), *ph = malloc((size_t)P * sizeof *ph);
    double *rb = malloc((size_t)P * KVL_HL_COUNT * sizeof *rb);
    kvl_status st = buf && p && ph && rb ? KVL_OK
                                         : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (st == KVL_OK)
        fprintf(r->md, "Headline features: Kruskal-Wallis across modes, and "
                       "Mann-Whitney U for each of the %d pairs of modes "
                       "(two-sided, Holm-adjusted over the pairs):\n\n| feature "
                       "| H | p | epsilon^2 | pairs with Holm p < 0.05 | largest "
                       "absolute rank-biserial r (pair) |\n| --- | ---: | ---: | "
                       "---: | ---: | --- |\n", (int)P);
    int best = 0;
    double best_H = -1;
    for (int h = 0; st == KVL_OK && h < KVL_HL_COUNT; h++) {
        double H = NAN;
        st = headline_tests(r, b, h, buf, p, rb + (size_t)h * P, ph, &H, out, err);
        if (st == KVL_OK && H > best_H)
            best_H = H, best = h;
    }
    if (st == KVL_OK) {
        fprintf(r->md, "\n");
        st = pairwise_plot(r, label, prefix, b, best, rb + (size_t)best * P, err);
    }
    free(buf), free(p), free(ph), free(rb);
    return st;
}

/* ---- classifiers ----------------------------------------------------------------- */

/* Columns without NaN (a feature undefined for some prompt is left out). */
static double *usable_columns(const kvl_exp_battery_data *b, int32_t *d_out)
{
    int32_t d = 0;
    int32_t *keep = malloc((size_t)b->d * sizeof *keep);
    double *x = keep ? malloc((size_t)b->n_prompts * b->d * sizeof *x) : NULL;
    if (!x) {
        free(keep);
        return NULL;
    }
    for (int32_t j = 0; j < b->d; j++) {
        int ok = 1;
        for (int32_t p = 0; p < b->n_prompts && ok; p++)
            ok = !isnan(b->x[(size_t)p * b->d + j]);
        if (ok)
            keep[d++] = j;
    }
    for (int32_t p = 0; p < b->n_prompts; p++)
        for (int32_t j = 0; j < d; j++)
            x[(size_t)p * d + j] = b->x[(size_t)p * b->d + keep[j]];
    free(keep);
    *d_out = d;
    return x;
}

static kvl_status classify(kvl_exp_run *r, const char *label,
                           const char *prefix, const kvl_exp_battery_data *b,
                           json_t *out, kvl_error *err)
{
    int32_t d = 0;
    double *x = usable_columns(b, &d);
    if (!x)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    kvl_dataset ds = {x, b->mode, b->n_prompts, d, b->n_modes};
    kvl_cv_result res[2];
    memset(res, 0, sizeof res);
    kvl_status st = KVL_OK;
    for (int c = 0; st == KVL_OK && c < 2; c++) {
        kvl_cv_options o;
        memset(&o, 0, sizeof o);
        o.kind = c == 0 ? KVL_CLF_FOREST : KVL_CLF_LOGREG;
        o.k_folds = r->cfg->modes.folds;
        o.n_permutations = r->cfg->modes.permutations;
        o.seed = kvl_rng_derive(r->cfg->seed, c == 0 ? TAG_FOREST : TAG_LOGREG);
        o.forest.n_trees = r->cfg->modes.trees;
        o.forest.seed = o.seed;
        o.n_threads = r->n_threads;
        o.forest.n_threads = r->n_threads;
        st = kvl_cross_validate(&ds, &o, &res[c], err);
    }
    if (st == KVL_OK) {
        fprintf(r->md, "Predicting the mode from all %d features of a prompt "
                       "(stratified %d-fold cross-validation over the %d prompts; "
                       "p-value from %d label permutations):\n\n| classifier | "
                       "accuracy | chance | permutation p |\n| --- | ---: | ---: | "
                       "---: |\n", (int)d, (int)r->cfg->modes.folds,
                (int)b->n_prompts, (int)r->cfg->modes.permutations);
        for (int c = 0; c < 2; c++) {
            const kvl_classifier_kind kind = c == 0 ? KVL_CLF_FOREST : KVL_CLF_LOGREG;
            fprintf(r->md, "| %s | %.3f | %.3f | %.3g |\n", kvl_classifier_name(kind),
                    res[c].accuracy, res[c].chance, res[c].perm_p);
            json_t *conf = json_array();
            for (int32_t i = 0; i < b->n_modes * b->n_modes; i++)
                json_array_append_new(conf, json_integer(res[c].confusion[i]));
            json_object_set_new(out, kvl_classifier_name(kind), json_pack(
                "{s:f, s:f, s:o, s:i, s:i, s:o}", "accuracy", res[c].accuracy,
                "chance", res[c].chance, "perm_p", kvl_exp_json_real(res[c].perm_p),
                "folds", r->cfg->modes.folds, "features", d, "confusion", conf));
        }
        const char *mnames[1024];
        for (int32_t m = 0; m < b->n_modes && m < 1024; m++)
            mnames[m] = b->mode_names[m];
        char path[1024], name[256], title[256];
        snprintf(name, sizeof name, "%s-confusion", prefix);
        snprintf(title, sizeof title, "%s: random forest, mode confusion "
                                      "(cross-validated)", label);
        kvl_plot_style ps = {title, "predicted", "true", 900, 750};
        st = kvl_plot_confusion(kvl_exp_plot_path(r, name, path, sizeof path),
                                res[0].confusion, b->n_modes, mnames, &ps, err);
        if (st == KVL_OK)
            fprintf(r->md, "\n![%s](plots/%s.png)\n\n", title, name);
    }
    kvl_cv_result_free(&res[0]);
    kvl_cv_result_free(&res[1]);
    free(x);
    return st;
}

kvl_status kvl_exp_battery_analyze(kvl_exp_run *r, const char *label,
                                   const char *prefix,
                                   const kvl_exp_battery_data *b,
                                   json_t **summary, kvl_error *err)
{
    hl_stats *hs = calloc((size_t)b->n_modes, sizeof *hs);
    kw_all k = {0};
    json_t *s = json_object(), *pw = json_object(), *clf = json_object();
    kvl_status st = hs ? mode_means(r, b, hs, err)
                       : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (st == KVL_OK) {
        write_mode_table(r->md, b, hs);
        st = mode_plots(r, label, prefix, b, hs, err);
    }
    if (st == KVL_OK)
        st = pairwise(r, label, prefix, b, pw, err);
    if (st == KVL_OK)
        st = kw_features(b, &k, err);
    if (st == KVL_OK) {
        kw_table(r->md, b, &k);
        st = kw_heatmap(r, label, prefix, b, &k, err);
    }
    if (st == KVL_OK)
        st = classify(r, label, prefix, b, clf, err);
    json_t *fm = json_object();
    if (st == KVL_OK)
        st = feature_means_json(r, b, fm, err);
    if (st == KVL_OK) {
        json_object_set_new(s, "feature_means", fm);
        json_object_set_new(s, "mode_means", mode_means_json(b, hs));
        json_object_set_new(s, "headline_tests", pw);
        json_object_set_new(s, "kruskal_all_features", kw_json(b, &k));
        json_object_set_new(s, "classifiers", clf);
        json_object_set_new(s, "n_prompts", json_integer(b->n_prompts));
        json_object_set_new(s, "replications", json_integer(b->reps));
        *summary = s;
    } else {
        json_decref(fm);
        json_decref(pw);
        json_decref(clf);
        json_decref(s);
    }
    free(hs);
    free(k.kw);
    free(k.p_holm);
    return st;
}
