/*
 * End-to-end check against a published output: greedy decoding of the real
 * stories260K checkpoint (llama2.c format) must reproduce the sample that
 * karpathy/llama2.c publishes in doc/stories260K.md
 * (tests/engine/stories260k_reference.txt; see README.stories260k.md).
 *
 * As llama2.c's run.c does: start from BOS (1) at position 0, feed one token
 * at a time, take the argmax of the logits (temperature 0), and stop when
 * the model emits BOS again (the end of a story).  Pieces are decoded with
 * the previous token (the piece after BOS loses its leading space).  The
 * published text is BOS + 255 tokens (run.c's default of 256 steps); this
 * test generates GEN_TOKENS = 200 and compares every complete word (text
 * split on whitespace) of the result with the reference; the last word,
 * possibly cut by the token limit, must be a prefix of its reference word.
 * (run.c's safe_printf also hides unprintable single-byte pieces; none
 * occur here, and whitespace splitting ignores them anyway.)
 */
#include "test_util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define GEN_TOKENS 200
#define MAX_WORDS 4096

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* Splits s in place on whitespace; returns the number of words. */
static int split_words(char *s, char **words, int max)
{
    int n = 0;
    char *p = s;
    while (*p && n < max) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        words[n++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

int main(void)
{
    const char *model_path =
        kvt_source_path("models/stories260K/stories260K.bin");
    const char *tok_path = kvt_source_path("models/stories260K/tok512.bin");
    const char *ref_path =
        kvt_source_path("tests/engine/stories260k_reference.txt");
    if (!kvt_file_exists(model_path) || !kvt_file_exists(tok_path))
        return kvt_skip("stories260K absent (%s, %s)", model_path, tok_path);

    char *ref = read_text(ref_path);
    CHECK(ref != NULL, "cannot read %s", ref_path);
    if (!ref)
        return kvt_finish();

    kvl_error err = {0};
    kvl_model *model = NULL;
    kvl_tokenizer *tok = NULL;
    kvl_session *sess = NULL;
    kvl_sampler *sampler = NULL;
    float *logits = NULL;
    char *text = NULL;

    CHECK_OK(kvl_model_load(model_path, NULL, &model, &err), &err);
    CHECK_OK(kvl_tokenizer_load(tok_path, 512, &tok, &err), &err);
    if (!model || !tok)
        goto out;

    /* The shape stated in llama2.c's doc/stories260K.md. */
    kvl_model_info info;
    kvl_model_get_info(model, &info);
    CHECK(info.arch == KVL_ARCH_LLAMA2C, "arch %d", (int)info.arch);
    CHECK(info.dim == 64 && info.n_layers == 5 && info.n_heads == 8 &&
              info.n_kv_heads == 4 && info.vocab_size == 512 &&
              info.max_seq_len == 512,
          "shape dim %d layers %d heads %d/%d vocab %d seq %d", info.dim,
          info.n_layers, info.n_heads, info.n_kv_heads, info.vocab_size,
          info.max_seq_len);
    if (info.vocab_size != kvl_tokenizer_vocab_size(tok))
        goto out;

    kvl_session_options so = {0};
    so.max_tokens = GEN_TOKENS + 1;
    CHECK_OK(kvl_session_new(model, &so, &sess, &err), &err);
    kvl_sampler_options sopt = {0};
    sopt.temperature = 0.0f;
    CHECK_OK(kvl_sampler_new(&sopt, info.vocab_size, &sampler, &err), &err);
    logits = malloc((size_t)info.vocab_size * sizeof *logits);
    size_t text_cap = (size_t)GEN_TOKENS * 64 + 1, text_len = 0;
    text = malloc(text_cap);
    if (!sess || !sampler || !logits || !text)
        goto out;
    text[0] = '\0';

    int32_t token = kvl_tokenizer_bos(tok);
    int generated = 0, stopped_at_bos = 0;
    for (int step = 0; step < GEN_TOKENS; step++) {
        kvl_status st = kvl_session_forward(sess, &token, 1, logits, 0, &err);
        CHECK(st == KVL_OK, "forward at %d: %s: %s", step,
              kvl_status_name(st), err.message);
        if (st != KVL_OK)
            goto out;
        int32_t next = kvl_sampler_sample(sampler, logits);
        CHECK(next >= 0 && next < info.vocab_size, "sampled %d", next);
        if (next < 0 || next >= info.vocab_size)
            goto out;
        if (next == kvl_tokenizer_bos(tok)) {
            stopped_at_bos = 1; /* run.c: BOS ends the story */
            break;
        }
        const char *piece = kvl_tokenizer_decode_piece(tok, token, next);
        size_t len = piece ? strlen(piece) : 0;
        if (text_len + len < text_cap) {
            memcpy(text + text_len, piece, len);
            text_len += len;
            text[text_len] = '\0';
        }
        token = next;
        generated++;
    }
    CHECK(kvl_cache_n_tokens(kvl_session_cache(sess)) == generated +
                                                            stopped_at_bos,
          "cache holds %d tokens after %d steps",
          kvl_cache_n_tokens(kvl_session_cache(sess)), generated);
    /* The published sample runs 255 tokens without a BOS. */
    CHECK(!stopped_at_bos, "stopped at a BOS after %d tokens", generated);
    printf("generated %d tokens:\n%s\n", generated, text);

    char *gen_words[MAX_WORDS], *ref_words[MAX_WORDS];
    int n_gen = split_words(text, gen_words, MAX_WORDS);
    int n_ref = split_words(ref, ref_words, MAX_WORDS);
    /* Complete words: all but the last unless generation ended at BOS. */
    int n_full = stopped_at_bos ? n_gen : n_gen - 1;
    CHECK(n_full >= 60 && n_full <= n_ref,
          "%d complete words from %d tokens (reference %d words)", n_full,
          generated, n_ref);
    int matched = 0;
    for (int i = 0; i < n_full && i < n_ref; i++) {
        if (strcmp(gen_words[i], ref_words[i]) != 0) {
            CHECK(0, "word %d: got '%s', published '%s'", i, gen_words[i],
                  ref_words[i]);
            break;
        }
        matched++;
    }
    CHECK(matched == n_full, "%d of %d words match", matched, n_full);
    if (!stopped_at_bos && n_gen > 0 && n_gen <= n_ref) {
        const char *last = gen_words[n_gen - 1];
        CHECK(strncmp(ref_words[n_gen - 1], last, strlen(last)) == 0,
              "last word '%s' is no prefix of '%s'", last,
              ref_words[n_gen - 1]);
    }
    printf("%d of %d complete words match the published sample\n", matched,
           n_full);

out:
    free(text);
    free(logits);
    free(ref);
    kvl_sampler_free(sampler);
    kvl_session_free(sess);
    kvl_tokenizer_free(tok);
    kvl_model_free(model);
    return kvt_finish();
}
