/*
 * SentencePiece conformance: the real Llama 2 tokenizer.model
 * (shared/tokenizers/llama2/tokenizer.model, 32,000 pieces, byte fallback)
 * against ids recorded with the `sentencepiece` Python library by
 * tests/reference/make_tokenizer_fixtures.py:
 *
 *   tests/fixtures/tokenizers/llama2_val.jsonl.zst      >= 1 MB of prose
 *       (the lines the script selected from shared/corpus/val.txt.zst; this
 *       test rebuilds the same selection and checks each line's length and
 *       hash against the fixture before comparing ids)
 *   tests/fixtures/tokenizers/llama2_torture.jsonl.zst  the texts of
 *       tests/fixtures/tokenizers/torture.json
 *
 * Every line's ids must be identical (encode(text) = SentencePiece's
 * encode(text), no BOS; with KVL_ENCODE_ADD_SPECIAL = encode(text,
 * add_bos=True)), decode must give SentencePiece's decode, and
 * decode(encode(x)) == x wherever SentencePiece round-trips.
 *
 * SentencePiece reads "<s>", "</s>" and "<unk>" written in a text as plain
 * text; kvlab does that with KVL_ENCODE_PLAIN_SPECIAL, so texts holding them
 * are compared with that flag (and every other text with and without it).
 * What kvlab does with them without the flag has no reference here.
 *
 * The fixtures are committed: their absence or a malformed record fails.
 * Without ../shared (the tokenizer and the corpus) the test checks the
 * fixtures against torture.json and skips the rest.
 */
#include "tokenizer_fixture.h"

static int has_literal_special(const tf_text *t)
{
    return strstr(t->s, "<s>") || strstr(t->s, "</s>") ||
           strstr(t->s, "<unk>");
}

static unsigned text_flags(const tf_text *t)
{
    return has_literal_special(t) ? KVL_ENCODE_PLAIN_SPECIAL : 0;
}

int main(void)
{
    tf_sets sets;
    tf_sets_load("llama2", &sets);

    const char *model = kvt_shared_path("tokenizers/llama2/tokenizer.model");
    const char *corpus = kvt_shared_path("corpus/val.txt.zst");
    int rc = -1;
    if (!kvt_file_exists(model) || !kvt_file_exists(corpus)) {
        rc = tf_sets_skip(model, corpus);
        goto done;
    }

    kvl_tokenizer *tok = NULL;
    kvl_error err = {0};
    CHECK_OK(kvl_tokenizer_load(model, 0, &tok, &err), &err);
    if (!tok)
        goto done;
    CHECK(kvl_tokenizer_get_kind(tok) == KVL_TOKENIZER_SENTENCEPIECE, "kind %d",
          (int)kvl_tokenizer_get_kind(tok));
    /* The folder resolves to the same file (no tokenizer.json there). */
    {
        kvl_tokenizer *t2 = NULL;
        CHECK_OK(kvl_tokenizer_load(kvt_shared_path("tokenizers/llama2"), 0,
                                    &t2, &err),
                 &err);
        CHECK(t2 && kvl_tokenizer_get_kind(t2) == KVL_TOKENIZER_SENTENCEPIECE,
              "folder load");
        kvl_tokenizer_free(t2);
    }
    if (sets.fv.header) {
        CHECK(kvl_tokenizer_vocab_size(tok) ==
                  tf_int(sets.fv.header, "vocab_size"),
              "vocab %d, reference %lld", kvl_tokenizer_vocab_size(tok),
              (long long)tf_int(sets.fv.header, "vocab_size"));
        CHECK(kvl_tokenizer_bos(tok) == tf_int(sets.fv.header, "bos"),
              "bos %d", kvl_tokenizer_bos(tok));
        CHECK(kvl_tokenizer_eos(tok) == tf_int(sets.fv.header, "eos"),
              "eos %d", kvl_tokenizer_eos(tok));
    }
    tf_spec spec = {"llama2", "ids_bos", text_flags, 1,
                    kvl_tokenizer_bos(tok)};
    tf_sets_run(tok, &spec, corpus, &sets);
    kvl_tokenizer_free(tok);

done:
    tf_sets_free(&sets);
    return rc >= 0 ? rc : kvt_finish();
}
