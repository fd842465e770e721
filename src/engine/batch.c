/* kvl_batch: one decode step for several sessions of one model. */
#include <stdlib.h>

#include "core/error.h"
#include "engine/session.h"
#ifdef KVL_HAVE_CUDA
#include "engine/cuda/cuda_engine.h"
#endif

struct kvl_batch {
    const kvl_model *model;
    int32_t max;
    int32_t *pos;                 /* [max] positions of the step        */
#ifdef KVL_HAVE_CUDA
    kvl_cuda_step *step;          /* GPU models: the batched step       */
    kvl_cuda_session **dev;       /* [max]                              */
#endif
};

kvl_status kvl_batch_new(const kvl_model *model, int32_t max_sessions, kvl_batch **out,
                         kvl_error *err)
{
    if (!model || !out)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_batch_new: model and out are required");
    *out = NULL;
    if (max_sessions < 1 || max_sessions > 4096)
        return kvl_fail(err, KVL_ERR_RANGE, "kvl_batch_new: max_sessions %d outside 1..4096",
                        (int)max_sessions);
    kvl_batch *b = calloc(1, sizeof *b);
    if (!b || !(b->pos = calloc((size_t)max_sessions, sizeof *b->pos))) {
        free(b);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a batch");
    }
    b->model = model;
    b->max = max_sessions;
#ifdef KVL_HAVE_CUDA
    if (model->cuda) {
        kvl_status st = KVL_OK;
        if (!(b->dev = calloc((size_t)max_sessions, sizeof *b->dev)))
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory for a batch");
        if (st == KVL_OK)
            st = kvl_cuda_batch_new(model->cuda, max_sessions, &b->step, err);
        if (st != KVL_OK) {
            kvl_batch_free(b);
            return st;
        }
    }
#endif
    *out = b;
    return KVL_OK;
}

void kvl_batch_free(kvl_batch *b)
{
    if (!b)
        return;
#ifdef KVL_HAVE_CUDA
    kvl_cuda_step_free(b->step);
    free(b->dev);
#endif
    free(b->pos);
    free(b);
}

static kvl_status check(const kvl_batch *b, kvl_session *const *ss, int32_t n,
                        const int32_t *tokens, kvl_error *err)
{
    if (!b || !ss || !tokens)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_batch_decode: batch, sessions and tokens are required");
    if (n < 1 || n > b->max)
        return kvl_fail(err, KVL_ERR_RANGE, "kvl_batch_decode: %d sessions (1..%d)", (int)n,
                        (int)b->max);
    for (int32_t i = 0; i < n; i++) {
        if (!ss[i] || ss[i]->model != b->model)
            return kvl_fail(err, KVL_ERR_ARG,
                            "kvl_batch_decode: session %d is NULL or of another model", (int)i);
        for (int32_t j = 0; j < i; j++)
            if (ss[j] == ss[i])
                return kvl_fail(err, KVL_ERR_ARG, "kvl_batch_decode: session %d appears twice",
                                (int)i);
    }
    return KVL_OK;
}

kvl_status kvl_batch_decode(kvl_batch *b, kvl_session *const *ss, int32_t n,
                            const int32_t *tokens, float *logits, int32_t *next, kvl_error *err)
{
    kvl_status st = check(b, ss, n, tokens, err);
    if (st != KVL_OK)
        return st;
    const int32_t V = b->model->cfg.vocab_size;
#ifdef KVL_HAVE_CUDA
    if (b->step) {
        for (int32_t i = 0; i < n && st == KVL_OK; i++) {
            st = kvl_session_device_current(ss[i], err);
            b->dev[i] = ss[i]->cuda;
            b->pos[i] = kvl_session_next_position_internal(ss[i]);
        }
        if (st == KVL_OK)
            st = kvl_cuda_step_run(b->step, b->dev, n, tokens, b->pos, logits, next, err);
        for (int32_t i = 0; i < n && st == KVL_OK; i++) {
            ss[i]->host_stale = 1;
            ss[i]->last_rows = 1;
        }
        return st;
    }
#endif
    for (int32_t i = 0; i < n && st == KVL_OK; i++)
        st = kvl_session_decode(ss[i], tokens[i], logits ? logits + (size_t)i * V : NULL,
                                next ? next + i : NULL, err);
    return st;
}
