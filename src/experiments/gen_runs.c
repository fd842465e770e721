/* Batched, seeded chat generations with feature collection. */
#include "experiments/gen_runs.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

/* Per-thread working state. */
typedef struct gen_worker {
    kvl_session *session;
    float *logits;      /* [vocab] current step            */
    float *prompt_last; /* [vocab] logits after the prompt */
    kvl_features base;  /* attention sums of the prompt    */
    int have_base;
} gen_worker;

static void worker_free(gen_worker *w)
{
    kvl_session_free(w->session);
    free(w->logits);
    free(w->prompt_last);
    if (w->have_base)
        kvl_features_free(&w->base);
    memset(w, 0, sizeof *w);
}

static kvl_status worker_init(gen_worker *w, const kvl_exp_model *m,
                              int32_t max_tokens, kvl_error *err)
{
    memset(w, 0, sizeof *w);
    kvl_session_options so = {max_tokens, 1, 1};
    kvl_status st = kvl_session_new(m->model, &so, &w->session, err);
    size_t v = (size_t)m->info.vocab_size;
    if (st == KVL_OK) {
        w->logits = malloc(v * sizeof(float));
        w->prompt_last = malloc(v * sizeof(float));
        if (!w->logits || !w->prompt_last)
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
    if (st == KVL_OK) {
        st = kvl_features_init(&w->base, m->model, err);
        w->have_base = st == KVL_OK;
    }
    return st;
}

/* Attention sums of the prompt rows, shared by every replication. */
static void add_base(kvl_features *f, const kvl_features *base)
{
    const int32_t n = f->n_layers * f->n_heads;
    for (int32_t i = 0; i < n; i++)
        f->attn_entropy[i] += base->attn_entropy[i];
    f->attn_rows += base->attn_rows;
}

/* The prompt's cache; attention rows from token `from` on are accumulated
 * (the part before is run as its own call, which gives the same cache). */
static kvl_status prefill(gen_worker *w, const int32_t *ids, int32_t n,
                          int32_t from, kvl_error *err)
{
    kvl_session_reset(w->session);
    kvl_features_free(&w->base);
    w->have_base = 0;
    kvl_status st = kvl_features_init(&w->base, kvl_session_model(w->session),
                                      err);
    w->have_base = st == KVL_OK;
    if (st == KVL_OK && from > 0)
        st = kvl_session_forward(w->session, ids, from, NULL, 0, err);
    if (st == KVL_OK)
        st = kvl_session_forward(w->session, ids + from, n - from,
                                 w->prompt_last, 0, err);
    if (st == KVL_OK)
        st = kvl_features_add_attention(&w->base, w->session, err);
    return st;
}

static kvl_status generate_one(gen_worker *w, const kvl_exp_model *m,
                               int32_t n_prompt, int32_t from,
                               const kvl_exp_sampling *s, kvl_exp_gen *g,
                               kvl_error *err)
{
    const int32_t vocab = m->info.vocab_size;
    kvl_status st = kvl_cache_truncate(kvl_session_cache(w->session), n_prompt,
                                       err);
    if (st == KVL_OK)
        st = kvl_features_init(&g->feat, m->model, err);
    if (st != KVL_OK)
        return st;
    add_base(&g->feat, &w->base);
    g->ids = malloc((size_t)s->max_new_tokens * sizeof(int32_t));
    kvl_sampler_options so = {s->temperature, s->top_k, s->top_p, g->seed};
    kvl_sampler *sampler = NULL;
    st = g->ids ? kvl_sampler_new(&so, vocab, &sampler, err)
                : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    memcpy(w->logits, w->prompt_last, (size_t)vocab * sizeof(float));
    for (int32_t t = 0; st == KVL_OK && t < s->max_new_tokens; t++) {
        const int32_t tok = kvl_sampler_sample(sampler, w->logits);
        kvl_features_add_step(&g->feat, w->logits, vocab, tok);
        if (kvl_exp_is_eos(m, tok)) {
            g->stopped_at_eos = 1;
            break;
        }
        g->ids[g->n_generated++] = tok;
        if (t + 1 == s->max_new_tokens)
            break; /* no need for the logits after the last token */
        st = kvl_session_forward(w->session, &tok, 1, w->logits, 0, err);
        if (st == KVL_OK)
            st = kvl_features_add_attention(&g->feat, w->session, err);
    }
    kvl_sampler_free(sampler);
    const kvl_cache *c = kvl_session_cache(w->session);
    if (st == KVL_OK)
        st = kvl_features_add_cache(&g->feat, c, from, kvl_cache_n_tokens(c), err);
    if (st == KVL_OK) {
        size_t len;
        st = kvl_tokenizer_decode(m->tok, g->ids, (size_t)g->n_generated, 0,
                                  &g->text, &len, err);
    }
    kvl_features_finish(&g->feat);
    return st;
}

/* Encodes every prompt up front (single-threaded). */
static kvl_status encode_all(const kvl_exp_model *m,
                             const kvl_exp_prompt *prompts, int32_t n,
                             int32_t **ids, int32_t *lens, int32_t *from,
                             int32_t *max_len, kvl_error *err)
{
    *max_len = 0;
    for (int32_t p = 0; p < n; p++) {
        from[p] = 0;
        kvl_status st =
            prompts[p].after_system && prompts[p].system
                ? kvl_exp_encode_split(m, prompts[p].system, prompts[p].user,
                                       NULL, &ids[p], &lens[p], &from[p], err)
                : kvl_exp_encode_chat(m, prompts[p].system, prompts[p].user,
                                      NULL, &ids[p], &lens[p], err);
        if (st != KVL_OK)
            return st;
        if (lens[p] > *max_len)
            *max_len = lens[p];
    }
    return KVL_OK;
}

typedef struct gen_shared {
    const kvl_exp_model *m;
    const kvl_exp_sampling *s;
    int32_t *const *ids;
    const int32_t *lens;
    const int32_t *from;
    int32_t n_prompts, reps, max_tokens;
    uint64_t seed;
    kvl_exp_gen *gens;
    kvl_exp_progress *progress;
    kvl_status st; /* first failure */
    kvl_error err;
} gen_shared;

static void fail_once(gen_shared *sh, kvl_status st, const kvl_error *e)
{
#pragma omp critical(kvl_gen_fail)
    if (sh->st == KVL_OK) {
        sh->st = st;
        sh->err = *e;
    }
}

static void run_prompt(gen_shared *sh, gen_worker *w, int32_t p)
{
    kvl_error e = {0};
    kvl_status st = prefill(w, sh->ids[p], sh->lens[p], sh->from[p], &e);
    for (int32_t r = 0; st == KVL_OK && r < sh->reps; r++) {
        kvl_exp_gen *g = &sh->gens[(int64_t)p * sh->reps + r];
        g->prompt = p;
        g->replication = r;
        g->n_prompt_tokens = sh->lens[p];
        g->feature_from = sh->from[p];
        g->seed = kvl_rng_derive(sh->seed, (uint64_t)p * (uint64_t)sh->reps + (uint64_t)r);
        st = generate_one(w, sh->m, sh->lens[p], sh->from[p], sh->s, g, &e);
        kvl_exp_progress_add(sh->progress, 1);
    }
    if (st != KVL_OK)
        fail_once(sh, st, &e);
}

static void run_parallel(gen_shared *sh, int32_t n_threads)
{
#pragma omp parallel num_threads(n_threads)
    {
        gen_worker w;
        kvl_error e = {0};
        kvl_status st = worker_init(&w, sh->m, sh->max_tokens, &e);
        if (st != KVL_OK)
            fail_once(sh, st, &e);
#pragma omp for schedule(dynamic, 1)
        for (int32_t p = 0; p < sh->n_prompts; p++)
            if (st == KVL_OK && sh->st == KVL_OK)
                run_prompt(sh, &w, p);
        worker_free(&w);
    }
}

kvl_status kvl_exp_generate_all(const kvl_exp_model *m,
                                const kvl_exp_prompt *prompts,
                                int32_t n_prompts, int32_t reps,
                                const kvl_exp_sampling *sampling,
                                uint64_t seed, int32_t n_threads,
                                kvl_exp_progress *progress, kvl_exp_gen **out,
                                kvl_error *err)
{
    if (!m || !prompts || n_prompts <= 0 || reps <= 0 || !sampling || !out ||
        sampling->max_new_tokens <= 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "generation needs a model, prompts, reps > 0 and "
                        "max_new_tokens > 0");
    *out = NULL;
    const int64_t n = (int64_t)n_prompts * reps;
    int32_t **ids = calloc((size_t)n_prompts, sizeof *ids);
    int32_t *lens = calloc((size_t)n_prompts, sizeof *lens);
    int32_t *from = calloc((size_t)n_prompts, sizeof *from);
    kvl_exp_gen *gens = calloc((size_t)n, sizeof *gens);
    int32_t max_len = 0;
    kvl_status st = ids && lens && from && gens
                        ? encode_all(m, prompts, n_prompts, ids, lens, from,
                                     &max_len, err)
                        : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    if (st == KVL_OK) {
        gen_shared sh = {m, sampling, ids, lens, from, n_prompts, reps,
                         max_len + sampling->max_new_tokens, seed, gens,
                         progress, KVL_OK, {0}};
        run_parallel(&sh, n_threads > 0 ? n_threads : omp_get_max_threads());
        st = sh.st;
        if (st != KVL_OK && err)
            *err = sh.err;
    }
    for (int32_t p = 0; ids && p < n_prompts; p++)
        kvl_free(ids[p]);
    free(ids);
    free(lens);
    free(from);
    if (st != KVL_OK) {
        kvl_exp_gens_free(gens, n);
        return st;
    }
    *out = gens;
    return KVL_OK;
}

void kvl_exp_gens_free(kvl_exp_gen *g, int64_t n)
{
    if (!g)
        return;
    for (int64_t i = 0; i < n; i++) {
        kvl_free(g[i].text);
        free(g[i].ids);
        kvl_features_free(&g[i].feat);
    }
    free(g);
}
