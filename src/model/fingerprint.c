/*
 * Model fingerprint: BLAKE2b-256 over a canonical text of the config and,
 * for every weight in the walker's fixed order, its name, dtype, shape and
 * a sample of its bytes.  Hashing a sample keeps loading O(1) in the model
 * size while still telling apart different checkpoints (and different
 * dtypes of one checkpoint); it depends only on what the model computes,
 * never on how the files were split or named, so a sharded and a single
 * file copy of one model agree.
 */
#include "model/model.h"

#include "core/rope.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define FP_SAMPLE 64

/* Everything that changes the K/V a model produces.  max_seq_len and the
 * bos/eos ids are left out on purpose: they do not, and caches should stay
 * compatible across e.g. a context-length edit of config.json. */
static int config_text(const kvl_config *c, char *buf, size_t cap)
{
    const kvl_rope *r = &c->rope;
    return snprintf(
        buf, cap,
        "kvlab-fingerprint-v1\n"
        "arch=%s\nn_layers=%d\ndim=%d\nhidden_dim=%d\nn_heads=%d\n"
        "n_kv_heads=%d\nhead_dim=%d\nvocab_size=%d\nnorm_eps=%.9g\n"
        "rope.theta=%.9g\nrope.layout=%s\nrope.scaling=%s\n"
        "rope.factor=%.9g\nrope.low_freq_factor=%.9g\n"
        "rope.high_freq_factor=%.9g\nrope.original_max_position=%d\n"
        "rope.rotary_dim=%d\n"
        "tied=%d\nqkv_bias=%d\no_bias=%d\nmlp_bias=%d\nqk_norm=%d\n",
        kvl_arch_name(c->arch), (int)c->n_layers, (int)c->dim,
        (int)c->hidden_dim, (int)c->n_heads, (int)c->n_kv_heads,
        (int)c->head_dim, (int)c->vocab_size, c->norm_eps, r->theta,
        kvl_rope_layout_name(r->layout), kvl_rope_scaling_name(r->scaling),
        r->factor, r->low_freq_factor, r->high_freq_factor,
        (int)r->original_max_position, (int)r->rotary_dim,
        (int)c->tied_embeddings, (int)c->qkv_bias, (int)c->o_bias,
        (int)c->mlp_bias, (int)c->qk_norm);
}

static void hash_bytes(crypto_generichash_state *st, const void *p, size_t n)
{
    crypto_generichash_update(st, (const unsigned char *)p,
                              (unsigned long long)n);
}

/* Name, dtype, shape; then all bytes of a small weight, or its first,
 * middle and last FP_SAMPLE bytes. */
static int hash_slot(const kvl_weight_slot *s, void *p)
{
    crypto_generichash_state *st = p;
    const kvl_weight *w = s->w;
    if (!w->data)
        return 0;
    const size_t nbytes = (size_t)w->rows * (size_t)w->cols *
                          kvl_dtype_size(w->dtype);
    char line[128];
    int n = snprintf(line, sizeof line, "%s %s %lld %lld\n", s->name,
                     kvl_dtype_name(w->dtype), (long long)w->rows,
                     (long long)w->cols);
    hash_bytes(st, line, (size_t)n < sizeof line ? (size_t)n : sizeof line);
    const unsigned char *b = w->data;
    if (nbytes <= 3 * FP_SAMPLE) {
        hash_bytes(st, b, nbytes);
    } else {
        hash_bytes(st, b, FP_SAMPLE);
        hash_bytes(st, b + nbytes / 2 - FP_SAMPLE / 2, FP_SAMPLE);
        hash_bytes(st, b + nbytes - FP_SAMPLE, FP_SAMPLE);
    }
    return 0;
}

void kvl_model_compute_fingerprint(kvl_model *m)
{
    /* Only picks the fastest implementation; hashing works regardless, so
     * a failure here is not an error.  Safe to call repeatedly. */
    if (sodium_init() < 0) {
        /* nothing to do: the portable implementation is used */
    }
    crypto_generichash_state st;
    unsigned char digest[32];
    char text[2048];
    int n = config_text(&m->cfg, text, sizeof text);
    crypto_generichash_init(&st, NULL, 0, sizeof digest);
    hash_bytes(&st, text, (size_t)n < sizeof text ? (size_t)n : sizeof text);
    kvl_model_walk_weights(m, hash_slot, &st);
    crypto_generichash_final(&st, digest, sizeof digest);
    sodium_bin2hex(m->fingerprint, sizeof m->fingerprint, digest,
                   sizeof digest);
}
