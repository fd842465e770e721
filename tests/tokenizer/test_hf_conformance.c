/*
 * tokenizer.json conformance: the real Qwen3 tokenizer
 * (shared/tokenizers/qwen3/tokenizer.json: byte-level BPE, 151,643 tokens +
 * 26 added tokens, NFC normaliser, Qwen2 split regex) against ids recorded
 * with the Hugging Face `tokenizers` Python library by
 * tests/reference/make_tokenizer_fixtures.py:
 *
 *   tests/fixtures/tokenizers/qwen3_val.jsonl.zst      >= 1 MB of prose
 *       (the lines the script selected from shared/corpus/val.txt.zst; this
 *       test rebuilds the same selection and checks each line's length and
 *       hash against the fixture before comparing ids)
 *   tests/fixtures/tokenizers/qwen3_torture.jsonl.zst  the texts of
 *       tests/fixtures/tokenizers/torture.json
 *
 * Checked for every text (see tf_run_set): encode == Tokenizer.encode(text,
 * add_special_tokens=False); with KVL_ENCODE_PLAIN_SPECIAL == the same with
 * encode_special_tokens=True (torture); with KVL_ENCODE_ADD_SPECIAL ==
 * add_special_tokens=True (torture and the first 64 val lines; Qwen3's
 * ByteLevel post-processor adds nothing); decode == Tokenizer.decode(ids,
 * skip_special_tokens=False) and, with KVL_DECODE_SKIP_SPECIAL, ==
 * skip_special_tokens=True; decode(encode(x)) == x wherever the reference
 * round-trips (the NFC normaliser makes e.g. "e\u0301" come back as
 * "\u00e9"); decode_piece concatenated == decode.
 *
 * The fixtures are committed: their absence or a malformed record fails.
 * Without ../shared (the tokenizer and the corpus) the test checks the
 * fixtures against torture.json and skips the rest.
 */
#include "tokenizer_fixture.h"

/* Ids of Qwen3's added tokens, read from its tokenizer.json by hand. */
static void check_added_tokens(kvl_tokenizer *tok)
{
    static const struct {
        const char *s;
        int32_t id;
    } added[] = {{"<|endoftext|>", 151643}, {"<|im_start|>", 151644},
                 {"<|im_end|>", 151645},    {"<tool_call>", 151657},
                 {"<think>", 151667},       {"</think>", 151668}};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; i++) {
        CHECK(kvl_tokenizer_token_to_id(tok, added[i].s) == added[i].id,
              "token_to_id(%s) = %d", added[i].s,
              kvl_tokenizer_token_to_id(tok, added[i].s));
        const char *s = kvl_tokenizer_id_to_token(tok, added[i].id);
        CHECK(s && strcmp(s, added[i].s) == 0, "id_to_token(%d) = %s",
              added[i].id, s ? s : "(null)");
    }
    /* A byte-level vocabulary entry as stored: " the" is "\u0120the". */
    CHECK(kvl_tokenizer_token_to_id(tok, "\xc4\xa0the") >= 0, "\\u0120the");
    CHECK(kvl_tokenizer_token_to_id(tok, "no such token \x01") == -1,
          "unknown token");
}

int main(void)
{
    tf_sets sets;
    tf_sets_load("qwen3", &sets);

    const char *path = kvt_shared_path("tokenizers/qwen3/tokenizer.json");
    const char *corpus = kvt_shared_path("corpus/val.txt.zst");
    int rc = -1;
    if (!kvt_file_exists(path) || !kvt_file_exists(corpus)) {
        rc = tf_sets_skip(path, corpus);
        goto done;
    }

    kvl_tokenizer *tok = NULL;
    kvl_error err = {0};
    double t0 = tf_now();
    CHECK_OK(kvl_tokenizer_load(path, 0, &tok, &err), &err);
    if (!tok)
        goto done;
    printf("loaded %s in %.3f s\n", path, tf_now() - t0);
    CHECK(kvl_tokenizer_get_kind(tok) == KVL_TOKENIZER_HF, "kind %d",
          (int)kvl_tokenizer_get_kind(tok));
    if (sets.fv.header)
        CHECK(kvl_tokenizer_vocab_size(tok) ==
                  tf_int(sets.fv.header, "vocab_size"),
              "vocab %d, reference %lld", kvl_tokenizer_vocab_size(tok),
              (long long)tf_int(sets.fv.header, "vocab_size"));
    /* tokenizer.json has no BOS: Qwen3's tokenizer_config.json says
     * "bos_token": null and "add_bos_token": false. */
    CHECK(kvl_tokenizer_bos(tok) == -1, "bos %d", kvl_tokenizer_bos(tok));
    check_added_tokens(tok);

    tf_spec spec = {"qwen3", "ids_special", NULL, 0, -1};
    tf_sets_run(tok, &spec, corpus, &sets);
    kvl_tokenizer_free(tok);

done:
    tf_sets_free(&sets);
    return rc >= 0 ? rc : kvt_finish();
}
