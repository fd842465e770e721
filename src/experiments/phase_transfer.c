/* Phase 2a: cache transplant within one model (the first).
 *
 * Each item is a held-out persona (experiments/transfer/facts.jsonl).  Its
 * context is the system turn "You are N. You live in C. You work as a J.";
 * the query is a user turn after it.  The context reaches the query in one
 * of seven conditions:
 *   none        no context: the query alone
 *   text        context and query as text in one pass (the upper bound)
 *   prefix      the context's cache computed alone at the same positions,
 *               injected, then the query (must equal text)
 *   raw         the context's cache computed after a preamble (so at
 *               positions p..p+s-1, and attending to the preamble), sliced
 *               out and injected as if it were at 0..s-1: the query runs at
 *               positions s.. against keys rotated for p..
 *   corrected   the same slice re-positioned (RoPE re-rotation) to 0..s-1
 *   noise       Gaussian noise with the per-layer mean and standard
 *               deviation of the context's K and of its V
 *   other       another item's context cache (a different persona)
 * Tasks: "What is your name?" (name), a question (city or job, alternating)
 * and a completion (the reply forced to start "I live in", city).
 * Metrics: fact accuracy (whole-word match in the greedy reply), KL
 * divergence of the first reply token's distribution from the text
 * condition's, degeneration (empty reply; no end of turn within the token
 * limit; repetition: a token 4 times in a row or fewer than half of the
 * reply's 3-grams distinct, in replies of 6+ tokens), and the perplexity of
 * a reference reply ("My name is N.") under teacher forcing. */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "core/error.h"
#include "core/rng.h"
#include "experiments/phase_util.h"
#include "experiments/phases.h"
#include "report/plot.h"
#include "stats/stats.h"

enum { C_NONE, C_TEXT, C_PREFIX, C_RAW, C_CORRECTED, C_NOISE, C_OTHER, N_COND };
static const char *const cond_names[N_COND] = {"none", "text", "prefix", "raw",
                                               "corrected", "noise", "other"};
enum { T_NAME, T_QUESTION, T_COMPLETION, N_TASK };
static const char *const task_names[N_TASK] = {"identity", "question", "completion"};
enum { TAG_NOISE = 9000 };

typedef struct item {
    char *name, *city, *job;
} item;

typedef struct outcome {
    int correct, other_fact, empty, no_eos, repetitive, n_tokens;
    double kl, nll; /* nll: mean over reference tokens */
    double max_abs_dlogit; /* prefix vs text only */
    char *reply;
} outcome;

/* ---- items -------------------------------------------------------------------- */

static kvl_status load_items(const char *path, int32_t want, item **out,
                             int32_t *n_out, kvl_error *err)
{
    json_error_t je;
    FILE *f = fopen(path, "r");
    if (!f)
        return kvl_fail(err, KVL_ERR_IO, "cannot open transfer items '%s'", path);
    item *it = calloc((size_t)want, sizeof *it);
    int32_t n = 0;
    kvl_status st = it ? KVL_OK : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    char line[4096];
    while (st == KVL_OK && n < want && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, &je);
        const char *a = json_string_value(json_object_get(o, "name"));
        const char *b = json_string_value(json_object_get(o, "city"));
        const char *c = json_string_value(json_object_get(o, "job"));
        if (!a || !b || !c || !*a || !*b || !*c)
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "%s: line %d needs string fields name, city, job",
                          path, (int)n + 1);
        else if (!(it[n].name = strdup(a)) || !(it[n].city = strdup(b)) ||
                 !(it[n].job = strdup(c)))
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        n++;
        json_decref(o);
    }
    fclose(f);
    if (st == KVL_OK && n < 2)
        st = kvl_fail(err, KVL_ERR_FORMAT, "%s: at least 2 items are needed", path);
    *out = it;
    *n_out = n;
    return st;
}

static void free_items(item *it, int32_t n)
{
    for (int32_t i = 0; it && i < n; i++) {
        free(it[i].name);
        free(it[i].city);
        free(it[i].job);
    }
    free(it);
}

/* ---- text matching and degeneration ------------------------------------------------ */

static int whole_word(const char *hay, const char *needle)
{
    const size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        if (strncasecmp(p, needle, n) != 0)
            continue;
        int before = p > hay && isalpha((unsigned char)p[-1]);
        int after = isalpha((unsigned char)p[n]);
        if (!before && !after)
            return 1;
    }
    return 0;
}

static int repetitive(const int32_t *ids, int32_t n)
{
    if (n < 6)
        return 0;
    for (int32_t i = 3; i < n; i++)
        if (ids[i] == ids[i - 1] && ids[i] == ids[i - 2] && ids[i] == ids[i - 3])
            return 1;
    int32_t distinct = 0, total = n - 2;
    for (int32_t i = 0; i < total; i++) {
        int seen = 0;
        for (int32_t j = 0; j < i && !seen; j++)
            seen = ids[j] == ids[i] && ids[j + 1] == ids[i + 1] && ids[j + 2] == ids[i + 2];
        distinct += !seen;
    }
    return 2 * distinct < total;
}

/* ---- per-thread work ---------------------------------------------------------------- */

typedef struct worker {
    const kvl_exp_model *m;
    kvl_session *s;     /* the condition's session          */
    kvl_session *aux;   /* computes context caches          */
    kvl_sampler *greedy;
    float *logits, *first, *text_first, *all;
    int32_t vocab, max_tokens;
} worker;

static void worker_free(worker *w)
{
    kvl_session_free(w->s);
    kvl_session_free(w->aux);
    kvl_sampler_free(w->greedy);
    free(w->logits);
    free(w->first);
    free(w->text_first);
    free(w->all);
}

static kvl_status worker_init(worker *w, const kvl_exp_model *m, int32_t max_tokens,
                              int32_t cont, kvl_error *err)
{
    memset(w, 0, sizeof *w);
    w->m = m;
    w->vocab = m->info.vocab_size;
    w->max_tokens = max_tokens;
    kvl_session_options so = {max_tokens, 1, 0};
    kvl_status st = kvl_session_new(m->model, &so, &w->s, err);
    if (st == KVL_OK)
        st = kvl_session_new(m->model, &so, &w->aux, err);
    const kvl_sampler_options greedy = {0};
    if (st == KVL_OK)
        st = kvl_sampler_new(&greedy, m->info.vocab_size, &w->greedy, err);
    const size_t v = (size_t)w->vocab;
    w->logits = malloc(v * sizeof(float));
    w->first = malloc(v * sizeof(float));
    w->text_first = malloc(v * sizeof(float));
    w->all = malloc(v * (size_t)(cont + 1) * sizeof(float));
    if (st == KVL_OK && (!w->logits || !w->first || !w->text_first || !w->all))
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    return st;
}

/* log-softmax value of `id` in logits[vocab]. */
static double log_prob(const float *l, int32_t vocab, int32_t id)
{
    double mx = l[0];
    for (int32_t i = 1; i < vocab; i++)
        if (l[i] > mx)
            mx = l[i];
    double s = 0;
    for (int32_t i = 0; i < vocab; i++)
        s += exp((double)l[i] - mx);
    return (double)l[id] - mx - log(s);
}

/* KL(p || q) of the softmaxes of two logit vectors. */
static double kl_div(const float *p, const float *q, int32_t vocab)
{
    double mp = p[0], mq = q[0];
    for (int32_t i = 1; i < vocab; i++) {
        if (p[i] > mp)
            mp = p[i];
        if (q[i] > mq)
            mq = q[i];
    }
    double zp = 0, zq = 0;
    for (int32_t i = 0; i < vocab; i++) {
        zp += exp((double)p[i] - mp);
        zq += exp((double)q[i] - mq);
    }
    const double lzp = log(zp) + mp, lzq = log(zq) + mq;
    double kl = 0;
    for (int32_t i = 0; i < vocab; i++) {
        const double lp = (double)p[i] - lzp, lq = (double)q[i] - lzq;
        kl += exp(lp) * (lp - lq);
    }
    return kl > 0 ? kl : 0;
}

/* After the query ran (w->first holds its last logits, the cache ends with
 * it): teacher-forced NLL of the reference, then a greedy reply. */
static kvl_status measure(worker *w, const int32_t *ref, int32_t n_ref,
                          int32_t max_new, outcome *o, kvl_error *err)
{
    kvl_cache *c = kvl_session_cache(w->s);
    const int32_t keep = kvl_cache_n_tokens(c);
    kvl_status st = kvl_session_forward(w->s, ref, n_ref, w->all, 1, err);
    if (st == KVL_OK) {
        double nll = -log_prob(w->first, w->vocab, ref[0]);
        for (int32_t i = 1; i < n_ref; i++)
            nll -= log_prob(w->all + (size_t)(i - 1) * w->vocab, w->vocab, ref[i]);
        o->nll = nll / n_ref;
        st = kvl_cache_truncate(c, keep, err);
    }
    int32_t *ids = malloc((size_t)max_new * sizeof *ids);
    if (st == KVL_OK && !ids)
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    int32_t n = 0, eos = 0;
    memcpy(w->logits, w->first, (size_t)w->vocab * sizeof(float));
    while (st == KVL_OK && n < max_new) {
        int32_t tok = kvl_sampler_sample(w->greedy, w->logits);
        if (kvl_exp_is_eos(w->m, tok)) {
            eos = 1;
            break;
        }
        ids[n++] = tok;
        if (n < max_new)
            st = kvl_session_forward(w->s, &tok, 1, w->logits, 0, err);
    }
    if (st == KVL_OK) {
        size_t len;
        st = kvl_tokenizer_decode(w->m->tok, ids, (size_t)n, 0, &o->reply, &len, err);
    }
    o->n_tokens = n;
    o->empty = n == 0;
    o->no_eos = !eos;
    o->repetitive = repetitive(ids, n);
    free(ids);
    return st;
}

/* Cache of `ids` computed in the aux session from empty; copied out. */
static kvl_status context_cache(worker *w, const int32_t *ids, int32_t n,
                                kvl_cache **out, kvl_error *err)
{
    kvl_session_reset(w->aux);
    kvl_status st = kvl_session_forward(w->aux, ids, n, NULL, 0, err);
    return st == KVL_OK ? kvl_cache_copy(kvl_session_cache(w->aux), out, err) : st;
}

/* Replaces K and V of every layer by Gaussian noise with the layer's mean
 * and standard deviation (K and V separately). */
static void to_noise(kvl_cache *c, uint64_t seed)
{
    kvl_rng rng;
    kvl_rng_seed(&rng, seed);
    for (int32_t l = 0; l < c->n_layers; l++)
        for (int w = 0; w < 2; w++) {
            double s = 0, s2 = 0;
            const double n = (double)c->n_kv_heads * c->n_tokens * c->head_dim;
            for (int32_t h = 0; h < c->n_kv_heads; h++)
                for (int32_t t = 0; t < c->n_tokens; t++) {
                    const float *row = kvl_cache_row(c, (kvl_kv)w, l, h, t);
                    for (int32_t i = 0; i < c->head_dim; i++) {
                        s += row[i];
                        s2 += (double)row[i] * row[i];
                    }
                }
            const double mu = s / n, sd = sqrt(fmax(s2 / n - mu * mu, 0));
            for (int32_t h = 0; h < c->n_kv_heads; h++)
                for (int32_t t = 0; t < c->n_tokens; t++) {
                    float *row = kvl_cache_row(c, (kvl_kv)w, l, h, t);
                    for (int32_t i = 0; i < c->head_dim; i++)
                        row[i] = (float)(mu + sd * kvl_rng_normal(&rng));
                }
        }
}

/* Encoded pieces of one item and task. */
typedef struct tokens {
    int32_t *full, n_full;     /* system + query (text condition)      */
    int32_t *bare, n_bare;     /* query without a system turn (none)    */
    int32_t *sys, n_sys;       /* the system turn alone                 */
    int32_t *pre, n_pre;       /* preamble + system turn                */
    int32_t *ref, n_ref;       /* reference reply                       */
} tokens;

static void tokens_free(tokens *t)
{
    kvl_free(t->full);
    kvl_free(t->bare);
    kvl_free(t->sys);
    kvl_free(t->pre);
    kvl_free(t->ref);
    memset(t, 0, sizeof *t);
}

static void fill_system(const item *it, char *buf, size_t cap)
{
    snprintf(buf, cap, "You are %s. You live in %s. You work as a %s.", it->name,
             it->city, it->job);
}

static const char *answer_of(const item *it, int task, int32_t index)
{
    if (task == T_NAME)
        return it->name;
    if (task == T_QUESTION)
        return index % 2 ? it->job : it->city;
    return it->city;
}

static kvl_status encode_item(const kvl_exp_model *m, const kvl_exp_config *cfg,
                              const item *it, int task, int32_t index,
                              int32_t cont, tokens *t, kvl_error *err)
{
    char sys[1024], ref[512];
    fill_system(it, sys, sizeof sys);
    const char *user = task == T_NAME       ? "What is your name?"
                       : task == T_COMPLETION ? "Tell me about your home."
                       : index % 2          ? "What do you do for work?"
                                            : "Where do you live?";
    const char *forced = task == T_COMPLETION ? "I live in" : NULL;
    if (task == T_NAME)
        snprintf(ref, sizeof ref, "My name is %s.", it->name);
    else if (task == T_COMPLETION)
        snprintf(ref, sizeof ref, " %s.", it->city);
    else if (index % 2)
        snprintf(ref, sizeof ref, "I work as a %s.", it->job);
    else
        snprintf(ref, sizeof ref, "I live in %s.", it->city);
    memset(t, 0, sizeof *t);
    kvl_status st = kvl_exp_encode_split(m, sys, user, forced, &t->full,
                                         &t->n_full, &t->n_sys, err);
    if (st == KVL_OK)
        st = kvl_exp_encode_chat(m, NULL, user, forced, &t->bare, &t->n_bare, err);
    if (st == KVL_OK) {
        t->sys = malloc((size_t)t->n_sys * sizeof(int32_t));
        if (!t->sys)
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        else
            memcpy(t->sys, t->full, (size_t)t->n_sys * sizeof(int32_t));
    }
    if (st == KVL_OK) {
        size_t n = strlen(cfg->transfer.preamble) + strlen(sys) + 64;
        char *pre_text = malloc(n);
        int32_t *pre = NULL, n_pre = 0;
        if (!pre_text)
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        snprintf(pre_text, n, "%s\n\n", cfg->transfer.preamble);
        st = kvl_exp_encode_text(m, pre_text, &pre, &n_pre, err);
        free(pre_text);
        /* preamble ids then the system turn's own ids, so the slice is
         * exactly the context's tokens */
        if (st == KVL_OK) {
            t->pre = malloc((size_t)(n_pre + t->n_sys) * sizeof(int32_t));
            if (!t->pre)
                st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
            else {
                memcpy(t->pre, pre, (size_t)n_pre * sizeof(int32_t));
                memcpy(t->pre + n_pre, t->sys, (size_t)t->n_sys * sizeof(int32_t));
                t->n_pre = n_pre + t->n_sys;
            }
        }
        kvl_free(pre);
    }
    if (st == KVL_OK)
        st = kvl_exp_encode_text(m, ref, &t->ref, &t->n_ref, err);
    if (st == KVL_OK && t->n_ref > cont)
        t->n_ref = cont;
    if (st == KVL_OK && t->n_ref == 0)
        st = kvl_fail(err, KVL_ERR_ARG, "empty reference reply");
    return st;
}

/* Runs one condition: sets up the session's cache, runs the query. */
static kvl_status run_condition(worker *w, int cond, const tokens *t,
                                const kvl_cache *ctx, const kvl_cache *raw,
                                const kvl_cache *other, uint64_t noise_seed,
                                kvl_error *err)
{
    const int32_t *q = t->full + t->n_sys;
    const int32_t nq = t->n_full - t->n_sys;
    kvl_session_reset(w->s);
    kvl_status st = KVL_OK;
    kvl_cache *tmp = NULL;
    switch (cond) {
    case C_NONE:
        return kvl_session_forward(w->s, t->bare, t->n_bare, w->first, 0, err);
    case C_TEXT:
        return kvl_session_forward(w->s, t->full, t->n_full, w->first, 0, err);
    case C_PREFIX:
        st = kvl_session_set_cache(w->s, ctx, 0, err);
        break;
    case C_RAW: {
        st = kvl_session_set_cache(w->s, raw, 0, err);
        int32_t *pos = malloc((size_t)nq * sizeof *pos);
        if (st == KVL_OK && !pos)
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        for (int32_t i = 0; st == KVL_OK && i < nq; i++)
            pos[i] = t->n_sys + i; /* as if the context sat at 0..s-1 */
        if (st == KVL_OK)
            st = kvl_session_forward_at(w->s, q, pos, nq, w->first, 0, err);
        free(pos);
        return st;
    }
    case C_CORRECTED:
        st = kvl_cache_copy(raw, &tmp, err);
        if (st == KVL_OK)
            st = kvl_cache_shift(tmp, -kvl_cache_positions(raw)[0], err);
        if (st == KVL_OK)
            st = kvl_session_set_cache(w->s, tmp, 0, err);
        break;
    case C_NOISE:
        st = kvl_cache_copy(ctx, &tmp, err);
        if (st == KVL_OK) {
            to_noise(tmp, noise_seed);
            st = kvl_session_set_cache(w->s, tmp, 0, err);
        }
        break;
    case C_OTHER:
        st = kvl_session_set_cache(w->s, other, 0, err);
        if (st == KVL_OK) {
            /* the other context may differ in length: the query follows it */
            kvl_cache_free(tmp);
            return kvl_session_forward(w->s, q, nq, w->first, 0, err);
        }
        break;
    }
    kvl_cache_free(tmp);
    if (st == KVL_OK)
        st = kvl_session_forward(w->s, q, nq, w->first, 0, err);
    return st;
}

typedef struct shared {
    const kvl_exp_model *m;
    const kvl_exp_config *cfg;
    const item *items;
    int32_t n_items;
    outcome *out; /* [item][task][cond] */
    kvl_exp_progress *progress;
    kvl_status st;
    kvl_error err;
} shared;

static kvl_status run_item(shared *sh, worker *w, int32_t i)
{
    const int32_t cont = sh->cfg->transfer.continuation;
    const int32_t max_new = sh->cfg->transfer.max_new_tokens;
    const item *it = &sh->items[i];
    const item *oth = &sh->items[(i + 1) % sh->n_items];
    kvl_error e = {0};
    kvl_status st = KVL_OK;
    for (int task = 0; st == KVL_OK && task < N_TASK; task++) {
        tokens t, to;
        kvl_cache *ctx = NULL, *pre = NULL, *raw = NULL, *other = NULL;
        st = encode_item(sh->m, sh->cfg, it, task, i, cont, &t, &e);
        if (st == KVL_OK)
            st = encode_item(sh->m, sh->cfg, oth, task, i, cont, &to, &e);
        if (st == KVL_OK)
            st = context_cache(w, t.sys, t.n_sys, &ctx, &e);
        if (st == KVL_OK)
            st = context_cache(w, t.pre, t.n_pre, &pre, &e);
        if (st == KVL_OK)
            st = kvl_cache_slice(pre, 0, pre->n_layers, t.n_pre - t.n_sys,
                                 t.n_pre, &raw, &e);
        if (st == KVL_OK)
            st = context_cache(w, to.sys, to.n_sys, &other, &e);
        /* text first: the other conditions are compared with it */
        static const int order[N_COND] = {C_TEXT, C_NONE, C_PREFIX, C_RAW,
                                          C_CORRECTED, C_NOISE, C_OTHER};
        for (int k = 0; st == KVL_OK && k < N_COND; k++) {
            const int c = order[k];
            outcome *o = &sh->out[((size_t)i * N_TASK + task) * N_COND + c];
            uint64_t seed = kvl_rng_derive(sh->cfg->seed, TAG_NOISE + (uint64_t)(i * N_TASK + task));
            st = run_condition(w, c, &t, ctx, raw, other, seed, &e);
            if (st != KVL_OK)
                break;
            if (c == C_TEXT)
                memcpy(w->text_first, w->first, (size_t)w->vocab * sizeof(float));
            o->kl = kl_div(w->text_first, w->first, w->vocab);
            o->max_abs_dlogit = NAN;
            if (c == C_PREFIX) {
                double mx = 0;
                for (int32_t v = 0; v < w->vocab; v++)
                    mx = fmax(mx, fabs((double)w->first[v] - w->text_first[v]));
                o->max_abs_dlogit = mx;
            }
            st = measure(w, t.ref, t.n_ref, max_new, o, &e);
            o->correct = o->reply && whole_word(o->reply, answer_of(it, task, i));
            o->other_fact = o->reply && whole_word(o->reply, answer_of(oth, task, i));
        }
        kvl_cache_free(ctx);
        kvl_cache_free(pre);
        kvl_cache_free(raw);
        kvl_cache_free(other);
        tokens_free(&t);
        tokens_free(&to);
        kvl_exp_progress_add(sh->progress, 1);
    }
    if (st != KVL_OK) {
#pragma omp critical(kvl_transfer_fail)
        if (sh->st == KVL_OK) {
            sh->st = st;
            sh->err = e;
        }
    }
    return st;
}

static void run_all(shared *sh, int32_t n_threads, int32_t max_tokens)
{
#pragma omp parallel num_threads(n_threads)
    {
        worker w;
        kvl_error e = {0};
        kvl_status st = worker_init(&w, sh->m, max_tokens,
                                    sh->cfg->transfer.continuation, &e);
        if (st != KVL_OK) {
#pragma omp critical(kvl_transfer_fail)
            if (sh->st == KVL_OK) {
                sh->st = st;
                sh->err = e;
            }
        }
#pragma omp for schedule(dynamic, 1)
        for (int32_t i = 0; i < sh->n_items; i++)
            if (st == KVL_OK && sh->st == KVL_OK)
                run_item(sh, &w, i);
        worker_free(&w);
    }
}

/* ---- summaries ------------------------------------------------------------------ */

typedef struct cond_stats {
    int64_t n, correct, other, empty, no_eos, rep, degenerate, same_as_text;
    kvl_interval acc_ci, kl_ci, nll_ci;
    double acc, kl, nll, max_dlogit;
} cond_stats;

static kvl_status summarise(const shared *sh, int task_filter, int cond,
                            uint64_t seed, cond_stats *cs, kvl_error *err)
{
    memset(cs, 0, sizeof *cs);
    const int32_t cap = sh->n_items * N_TASK;
    double *kl = malloc((size_t)cap * sizeof *kl), *nll = malloc((size_t)cap * sizeof *nll);
    if (!kl || !nll) {
        free(kl), free(nll);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
    cs->max_dlogit = 0;
    for (int32_t i = 0; i < sh->n_items; i++)
        for (int t = 0; t < N_TASK; t++) {
            if (task_filter >= 0 && t != task_filter)
                continue;
            const outcome *o = &sh->out[((size_t)i * N_TASK + t) * N_COND + cond];
            const outcome *tx = &sh->out[((size_t)i * N_TASK + t) * N_COND + C_TEXT];
            kl[cs->n] = o->kl;
            nll[cs->n] = o->nll;
            cs->n++;
            cs->correct += o->correct;
            cs->other += o->other_fact;
            cs->empty += o->empty;
            cs->no_eos += o->no_eos;
            cs->rep += o->repetitive;
            cs->degenerate += o->empty || o->no_eos || o->repetitive;
            cs->same_as_text += o->reply && tx->reply && strcmp(o->reply, tx->reply) == 0;
            if (cond == C_PREFIX)
                cs->max_dlogit = fmax(cs->max_dlogit, o->max_abs_dlogit);
        }
    cs->acc = (double)cs->correct / (double)cs->n;
    cs->acc_ci = kvl_stats_wilson(cs->correct, cs->n, 1.959964);
    cs->kl = kvl_stats_mean(kl, (size_t)cs->n);
    cs->nll = kvl_stats_mean(nll, (size_t)cs->n);
    kvl_status st = kvl_stats_bootstrap_mean_ci(kl, (size_t)cs->n, 2000, 0.95, seed,
                                                &cs->kl_ci, err);
    if (st == KVL_OK)
        st = kvl_stats_bootstrap_mean_ci(nll, (size_t)cs->n, 2000, 0.95, seed + 1,
                                         &cs->nll_ci, err);
    free(kl);
    free(nll);
    return st;
}

static json_t *cond_json(const cond_stats *c)
{
    return json_pack(
        "{s:I, s:f, s:[f,f], s:I, s:f, s:[f,f], s:f, s:[f,f], s:f, s:I, s:I, "
        "s:I, s:I, s:I, s:o}",
        "n", (json_int_t)c->n, "accuracy", c->acc, "accuracy_wilson95",
        c->acc_ci.lo, c->acc_ci.hi, "other_fact", (json_int_t)c->other, "kl_mean",
        c->kl, "kl_ci95", c->kl_ci.lo, c->kl_ci.hi, "ref_nll_mean", c->nll,
        "ref_nll_ci95", c->nll_ci.lo, c->nll_ci.hi, "ref_perplexity", exp(c->nll),
        "empty", (json_int_t)c->empty, "no_end_of_turn", (json_int_t)c->no_eos,
        "repetitive", (json_int_t)c->rep, "degenerate", (json_int_t)c->degenerate,
        "same_reply_as_text", (json_int_t)c->same_as_text, "max_abs_dlogit_vs_text",
        kvl_exp_json_real(c->max_dlogit));
}

static kvl_status report(kvl_exp_run *r, const shared *sh, json_t *summary,
                         kvl_error *err)
{
    cond_stats all[N_COND], per[N_TASK][N_COND];
    kvl_status st = KVL_OK;
    for (int c = 0; st == KVL_OK && c < N_COND; c++) {
        st = summarise(sh, -1, c, kvl_rng_derive(r->cfg->seed, 9500 + (uint64_t)c), &all[c], err);
        for (int t = 0; st == KVL_OK && t < N_TASK; t++)
            st = summarise(sh, t, c, kvl_rng_derive(r->cfg->seed, 9600 + (uint64_t)(t * N_COND + c)),
                           &per[t][c], err);
    }
    if (st != KVL_OK)
        return st;
    FILE *md = r->md;
    fprintf(md, "| condition | fact accuracy (Wilson 95%%) | other persona's fact | "
                "KL from text (95%% CI) | reference perplexity (95%% CI) | "
                "degenerate: empty / no end / repetitive | reply = text's |\n"
                "| --- | --- | ---: | --- | --- | --- | ---: |\n");
    json_t *jc = json_object(), *jt = json_object();
    for (int c = 0; c < N_COND; c++) {
        const cond_stats *x = &all[c];
        fprintf(md, "| %s | %.3f [%.3f, %.3f] | %lld | %.4g [%.4g, %.4g] | %.3g "
                    "[%.3g, %.3g] | %lld (%lld / %lld / %lld) | %lld / %lld |\n",
                cond_names[c], x->acc, x->acc_ci.lo, x->acc_ci.hi, (long long)x->other,
                x->kl, x->kl_ci.lo, x->kl_ci.hi, exp(x->nll), exp(x->nll_ci.lo),
                exp(x->nll_ci.hi), (long long)x->degenerate, (long long)x->empty,
                (long long)x->no_eos, (long long)x->rep, (long long)x->same_as_text,
                (long long)x->n);
        json_object_set_new(jc, cond_names[c], cond_json(x));
    }
    fprintf(md, "\nPrefix cache against text: largest |logit difference| at the "
                "first reply token %.3g; %lld of %lld greedy replies identical.\n\n",
            all[C_PREFIX].max_dlogit, (long long)all[C_PREFIX].same_as_text,
            (long long)all[C_PREFIX].n);
    fprintf(md, "Fact accuracy by task:\n\n| condition |");
    for (int t = 0; t < N_TASK; t++)
        fprintf(md, " %s |", task_names[t]);
    fprintf(md, "\n| --- |");
    for (int t = 0; t < N_TASK; t++)
        fprintf(md, " --- |");
    fprintf(md, "\n");
    double val[N_TASK * N_COND], lo[N_TASK * N_COND], hi[N_TASK * N_COND];
    for (int c = 0; c < N_COND; c++) {
        fprintf(md, "| %s |", cond_names[c]);
        for (int t = 0; t < N_TASK; t++) {
            fprintf(md, " %.3f [%.3f, %.3f] |", per[t][c].acc, per[t][c].acc_ci.lo,
                    per[t][c].acc_ci.hi);
            val[t * N_COND + c] = per[t][c].acc;
            lo[t * N_COND + c] = per[t][c].acc_ci.lo;
            hi[t * N_COND + c] = per[t][c].acc_ci.hi;
        }
        fprintf(md, "\n");
    }
    for (int t = 0; t < N_TASK; t++) {
        json_t *o = json_object();
        for (int c = 0; c < N_COND; c++)
            json_object_set_new(o, cond_names[c], cond_json(&per[t][c]));
        json_object_set_new(jt, task_names[t], o);
    }
    json_object_set_new(summary, "conditions", jc);
    json_object_set_new(summary, "by_task", jt);
    char path[1024], title[256];
    snprintf(title, sizeof title, "%s: fact accuracy by condition and task (Wilson 95%% CI)",
             sh->m->label);
    kvl_plot_style ps = {title, "condition", "accuracy", 1100, 600};
    st = kvl_plot_grouped_bars(kvl_exp_plot_path(r, "transfer-accuracy", path, sizeof path),
                               val, lo, hi, N_TASK, N_COND, task_names, cond_names,
                               &ps, err);
    if (st == KVL_OK)
        fprintf(md, "\n![%s](plots/transfer-accuracy.png)\n", title);
    double kv[N_COND], kl[N_COND], kh[N_COND];
    for (int c = 0; c < N_COND; c++) {
        kv[c] = all[c].kl;
        kl[c] = all[c].kl_ci.lo;
        kh[c] = all[c].kl_ci.hi;
    }
    snprintf(title, sizeof title, "%s: KL divergence from the text condition (95%% CI)",
             sh->m->label);
    kvl_plot_style pk = {title, "condition", "KL (nats), first reply token", 0, 0};
    if (st == KVL_OK)
        st = kvl_plot_bars(kvl_exp_plot_path(r, "transfer-kl", path, sizeof path), kv,
                           kl, kh, N_COND, cond_names, &pk, err);
    if (st == KVL_OK)
        fprintf(md, "![%s](plots/transfer-kl.png)\n\n", title);
    return st;
}

static kvl_status records(kvl_exp_run *r, const shared *sh, kvl_error *err)
{
    kvl_status st = KVL_OK;
    for (int32_t i = 0; st == KVL_OK && i < sh->n_items; i++)
        for (int t = 0; st == KVL_OK && t < N_TASK; t++)
            for (int c = 0; st == KVL_OK && c < N_COND; c++) {
                const outcome *o = &sh->out[((size_t)i * N_TASK + t) * N_COND + c];
                json_t *rec = json_pack(
                    "{s:s, s:i, s:s, s:s, s:s, s:b, s:b, s:o, s:o, s:i, s:b, s:b, s:b, s:o}",
                    "model", sh->m->label, "item", i, "persona", sh->items[i].name,
                    "task", task_names[t], "condition", cond_names[c], "correct",
                    o->correct, "other_fact", o->other_fact, "kl_from_text",
                    kvl_exp_json_real(o->kl), "ref_nll", kvl_exp_json_real(o->nll),
                    "reply_tokens", o->n_tokens, "empty", o->empty, "no_end_of_turn",
                    o->no_eos, "repetitive", o->repetitive, "reply",
                    kvl_exp_json_text(o->reply));
                st = kvl_exp_record(r, "transfer", rec, err);
            }
    return st;
}

kvl_status kvl_exp_phase_transfer(kvl_exp_run *r, kvl_error *err)
{
    const kvl_exp_model *m = &r->models[0];
    item *items = NULL;
    int32_t n = 0;
    kvl_status st = load_items(r->cfg->transfer.facts, r->cfg->transfer.items,
                               &items, &n, err);
    outcome *out = st == KVL_OK ? calloc((size_t)n * N_TASK * N_COND, sizeof *out) : NULL;
    if (st == KVL_OK && !out)
        st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    shared sh = {m, r->cfg, items, n, out, &r->progress, KVL_OK, {0}};
    if (st == KVL_OK) {
        fprintf(r->md, "## Phase 2a: cache transplant (%s)\n\n%d held-out personas "
                       "(`%s`), 3 tasks, 7 conditions; greedy "
                       "replies of at most %d tokens; reference replies scored over "
                       "at most %d tokens. Conditions: none (no context), text "
                       "(context as text: the upper bound), prefix (the context's "
                       "cache computed alone and injected), raw (computed after the "
                       "preamble \"%s\", spliced in without correction), "
                       "corrected (the same re-positioned by RoPE re-rotation), "
                       "noise (Gaussian, per-layer mean and deviation of K and V "
                       "matched), other (another persona's context cache).\n\n",
                m->label, (int)n, r->cfg->transfer.facts,
                (int)r->cfg->transfer.max_new_tokens,
                (int)r->cfg->transfer.continuation, r->cfg->transfer.preamble);
        char task[256];
        snprintf(task, sizeof task, "transfer: %s", m->label);
        kvl_exp_progress_start(&r->progress, task, (int64_t)n * N_TASK);
        const int32_t max_tokens = 1024 + r->cfg->transfer.max_new_tokens +
                                   r->cfg->transfer.continuation;
        run_all(&sh, r->n_threads, max_tokens);
        kvl_exp_progress_end(&r->progress);
        st = sh.st;
        if (st != KVL_OK && err)
            *err = sh.err;
    }
    if (st == KVL_OK)
        st = records(r, &sh, err);
    json_t *summary = json_object();
    json_object_set_new(summary, "model", json_string(m->label));
    json_object_set_new(summary, "items", json_integer(n));
    if (st == KVL_OK)
        st = report(r, &sh, summary, err);
    json_object_set_new(r->summary, "transfer", summary);
    for (int64_t i = 0; out && i < (int64_t)n * N_TASK * N_COND; i++)
        kvl_free(out[i].reply);
    free(out);
    free_items(items, n);
    return st;
}
