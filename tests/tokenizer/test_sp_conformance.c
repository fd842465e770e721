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
    const char *torture_path =
        kvt_source_path("tests/fixtures/tokenizers/torture.json");
    tf_texts torture;
    int torture_ok = tf_torture_load(torture_path, &torture) == 0;
    CHECK(torture_ok, "cannot read %s", torture_path);

    tf_fixture ft, fv;
    int ft_ok = tf_fixture_load(
                    kvt_source_path(
                        "tests/fixtures/tokenizers/llama2_torture.jsonl.zst"),
                    "llama2", "torture", &ft) == 0;
    int fv_ok = tf_fixture_load(
                    kvt_source_path(
                        "tests/fixtures/tokenizers/llama2_val.jsonl.zst"),
                    "llama2", "val", &fv) == 0;
    if (ft_ok && torture_ok)
        ft_ok = tf_match_texts(&ft, &torture) == 0;
    printf("fixtures: %zu torture records, %zu val records (%s)\n", ft.n, fv.n,
           fv.header ? json_string_value(json_object_get(fv.header, "library"))
                     : "?");

    const char *model = kvt_shared_path("tokenizers/llama2/tokenizer.model");
    const char *corpus = kvt_shared_path("corpus/val.txt.zst");
    int rc = -1;
    if (!kvt_file_exists(model) || !kvt_file_exists(corpus)) {
        if (!kvt_failed)
            rc = kvt_skip("%s or %s absent (fixtures read and matched to "
                          "torture.json: %d checks passed)",
                          model, corpus, kvt_passed);
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
    if (fv.header) {
        CHECK(kvl_tokenizer_vocab_size(tok) == tf_int(fv.header, "vocab_size"),
              "vocab %d, reference %lld", kvl_tokenizer_vocab_size(tok),
              (long long)tf_int(fv.header, "vocab_size"));
        CHECK(kvl_tokenizer_bos(tok) == tf_int(fv.header, "bos"), "bos %d",
              kvl_tokenizer_bos(tok));
        CHECK(kvl_tokenizer_eos(tok) == tf_int(fv.header, "eos"), "eos %d",
              kvl_tokenizer_eos(tok));
    }
    tf_spec spec = {"llama2", "ids_bos", text_flags, 1,
                    kvl_tokenizer_bos(tok)};

    if (ft_ok) {
        tf_run_set(tok, &spec, "torture", &ft, &torture);
    }
    if (fv_ok) {
        tf_texts val;
        double t0 = tf_now();
        int val_ok = tf_val_select(corpus, &val) == 0;
        CHECK(val_ok, "cannot rebuild the val selection from %s", corpus);
        if (val_ok) {
            printf("val selection: %zu lines, %zu bytes (%.2f s)\n", val.n,
                   val.bytes, tf_now() - t0);
            if (tf_match_texts(&fv, &val) == 0)
                tf_run_set(tok, &spec, "val", &fv, &val);
        }
        tf_texts_free(&val);
    }
    kvl_tokenizer_free(tok);

done:
    tf_fixture_free(&ft);
    tf_fixture_free(&fv);
    tf_texts_free(&torture);
    return rc >= 0 ? rc : kvt_finish();
}
