/* Loading a model for experiments and encoding chat prompts with it. */
#include "experiments/exp_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

static char *tokenizer_config_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    size_t n = strlen(path) + sizeof "/tokenizer_config.json";
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s/tokenizer_config.json", path);
    if (stat(p, &st) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

kvl_status kvl_exp_model_load(const char *path, const char *label,
                              kvl_exp_model *m, kvl_error *err)
{
    if (!path || !m)
        return kvl_fail(err, KVL_ERR_ARG, "model path is required");
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    m->label = strdup(label ? label : path);
    if (!m->path || !m->label) {
        kvl_exp_model_free(m);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
    kvl_status st = kvl_model_load(path, NULL, &m->model, err);
    char *tok = NULL;
    if (st == KVL_OK) {
        kvl_model_get_info(m->model, &m->info);
        st = kvl_tokenizer_find(path, m->info.vocab_size, &tok, err);
    }
    if (st == KVL_OK)
        st = kvl_tokenizer_load(tok, m->info.vocab_size, &m->tok, err);
    kvl_free(tok);
    if (st == KVL_OK)
        m->chat_config = tokenizer_config_of(path);
    if (st != KVL_OK) {
        kvl_error_prefix(err, st, "model '%s'", path);
        kvl_exp_model_free(m);
    }
    return st;
}

void kvl_exp_model_free(kvl_exp_model *m)
{
    if (!m)
        return;
    kvl_tokenizer_free(m->tok);
    kvl_model_free(m->model);
    free(m->label);
    free(m->path);
    free(m->chat_config);
    memset(m, 0, sizeof *m);
}

static kvl_status encode(const kvl_exp_model *m, const char *text,
                         int32_t **ids, int32_t *n_ids, kvl_error *err)
{
    size_t n = 0;
    kvl_status st = kvl_tokenizer_encode_alloc(m->tok, text, strlen(text), 0,
                                               ids, &n, err);
    if (st == KVL_OK && n > (size_t)m->info.max_seq_len) {
        kvl_free(*ids);
        *ids = NULL;
        return kvl_fail(err, KVL_ERR_RANGE,
                        "prompt of %zu tokens is longer than the model's "
                        "context (%d)", n, (int)m->info.max_seq_len);
    }
    *n_ids = (int32_t)n;
    return st;
}

kvl_status kvl_exp_encode_text(const kvl_exp_model *m, const char *text,
                               int32_t **ids, int32_t *n_ids, kvl_error *err)
{
    if (!m || !text || !ids || !n_ids)
        return kvl_fail(err, KVL_ERR_ARG, "model, text and outputs are required");
    return encode(m, text, ids, n_ids, err);
}

/* The conversation as text (kvl_free). */
static kvl_status render(const kvl_exp_model *m, const char *system,
                         const char *user, const char *assistant, char **out,
                         kvl_error *err)
{
    kvl_chat_message msgs[2];
    size_t n = 0;
    if (system)
        msgs[n++] = (kvl_chat_message){"system", system};
    msgs[n++] = (kvl_chat_message){"user", user};
    char *text = NULL;
    kvl_status st = kvl_chat_render(m->chat_config,
                                    m->chat_config ? KVL_CHAT_AUTO : KVL_CHAT_CHATML,
                                    msgs, n, 1, &text, err);
    if (st != KVL_OK)
        return kvl_error_prefix(err, st, "chat template of '%s'", m->path);
    if (assistant) {
        size_t a = strlen(text), b = strlen(assistant);
        char *t = realloc(text, a + b + 1);
        if (!t) {
            kvl_free(text);
            return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        }
        memcpy(t + a, assistant, b + 1);
        text = t;
    }
    *out = text;
    return KVL_OK;
}

kvl_status kvl_exp_encode_chat(const kvl_exp_model *m, const char *system,
                               const char *user, const char *assistant,
                               int32_t **ids, int32_t *n_ids, kvl_error *err)
{
    if (!m || !user || !ids || !n_ids)
        return kvl_fail(err, KVL_ERR_ARG, "model, user text and outputs are required");
    char *text = NULL;
    kvl_status st = render(m, system, user, assistant, &text, err);
    if (st == KVL_OK)
        st = encode(m, text, ids, n_ids, err);
    kvl_free(text);
    return st;
}

static kvl_status render_system(const kvl_exp_model *m, const char *system,
                                char **out, kvl_error *err)
{
    kvl_chat_message msg = {"system", system};
    kvl_status st = kvl_chat_render(m->chat_config,
                                    m->chat_config ? KVL_CHAT_AUTO : KVL_CHAT_CHATML,
                                    &msg, 1, 0, out, err);
    return st == KVL_OK ? st : kvl_error_prefix(err, st, "chat template of '%s'", m->path);
}

/* sys ids + the rest of the text encoded alone. */
static kvl_status concat_split(const kvl_exp_model *m, const char *full,
                               const char *sys_text, const int32_t *sys,
                               int32_t ns, int32_t **ids, int32_t *n_ids,
                               kvl_error *err)
{
    const size_t ls = strlen(sys_text);
    if (strncmp(full, sys_text, ls) != 0 || full[ls] == '\0')
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "the chat template of '%s' does not render the system "
                        "turn as a prefix of the conversation, so the tokens "
                        "after it cannot be separated", m->path);
    int32_t *rest = NULL, nr = 0;
    kvl_status st = encode(m, full + ls, &rest, &nr, err);
    if (st == KVL_OK) {
        *ids = malloc((size_t)(ns + nr) * sizeof **ids);
        if (!*ids)
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        else {
            memcpy(*ids, sys, (size_t)ns * sizeof **ids);
            memcpy(*ids + ns, rest, (size_t)nr * sizeof **ids);
            *n_ids = ns + nr;
        }
    }
    kvl_free(rest);
    return st;
}

kvl_status kvl_exp_encode_split(const kvl_exp_model *m, const char *system,
                                const char *user, const char *assistant,
                                int32_t **ids, int32_t *n_ids,
                                int32_t *n_system, kvl_error *err)
{
    if (!m || !system || !user || !ids || !n_ids || !n_system)
        return kvl_fail(err, KVL_ERR_ARG,
                        "model, system and user texts and outputs are required");
    *ids = NULL;
    char *full = NULL, *sys_text = NULL;
    int32_t *sys = NULL, ns = 0, *all = NULL, na = 0;
    kvl_status st = render(m, system, user, assistant, &full, err);
    if (st == KVL_OK)
        st = render_system(m, system, &sys_text, err);
    if (st == KVL_OK)
        st = encode(m, sys_text, &sys, &ns, err);
    if (st == KVL_OK)
        st = encode(m, full, &all, &na, err);
    if (st == KVL_OK && ns < na && memcmp(sys, all, (size_t)ns * sizeof *sys) == 0) {
        *ids = all;
        *n_ids = na;
        all = NULL;
    } else if (st == KVL_OK) {
        st = concat_split(m, full, sys_text, sys, ns, ids, n_ids, err);
    }
    if (st == KVL_OK)
        *n_system = ns;
    kvl_free(full);
    kvl_free(sys_text);
    kvl_free(sys);
    kvl_free(all);
    return st;
}

int kvl_exp_is_eos(const kvl_exp_model *m, int32_t id)
{
    for (int32_t i = 0; i < m->info.n_eos_token_ids; i++)
        if (m->info.eos_token_ids[i] == id)
            return 1;
    return 0;
}
