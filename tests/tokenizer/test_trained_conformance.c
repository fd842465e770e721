/*
 * A tokenizer trained by `kvlab tokenizer train` encodes identically in
 * kvlab and in Hugging Face `tokenizers`.
 *
 * tests/fixtures/tokenizers/trained/ holds the tokenizer (vocab 1024 on the
 * first 2 MB of shared/corpus/train-00.txt.zst, see
 * tests/reference/check_trained_tokenizer.py), the texts (texts.json:
 * validation-corpus paragraphs the tokenizer never saw and torture strings)
 * and expected.json, written by that script with `tokenizers` 0.23: for
 * every text, Tokenizer.encode(text).ids (special tokens recognised; the
 * ByteLevel post-processor adds nothing), the same with
 * encode_special_tokens = True, and decode(ids) with and without
 * skip_special_tokens.  No ../shared needed.
 */
#include "test_util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int show = 5; /* mismatches printed in full */

static int same_ids(const int32_t *ids, size_t n, json_t *want)
{
    if (json_array_size(want) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != ids[i])
            return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, size_t n, json_t *want)
{
    fprintf(stderr, "  %s kvlab:", label);
    for (size_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n  %s HF:   ", label);
    for (size_t i = 0; i < json_array_size(want) && i < 40; i++)
        fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, i)));
    fputc('\n', stderr);
}

static void check_encode(const kvl_tokenizer *tok, size_t rec, const char *text,
                         size_t len, unsigned flags, json_t *want, const char *label)
{
    kvl_error err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    kvl_status st = kvl_tokenizer_encode_alloc(tok, text, len, flags, &ids, &n, &err);
    CHECK(st == KVL_OK, "record %zu %s: %s", rec, label, err.message);
    int ok = st == KVL_OK && same_ids(ids, n, want);
    CHECK(ok, "record %zu: %s differs (%zu ids, HF %zu) for %.40s", rec, label, n,
          json_array_size(want), text);
    if (!ok && show-- > 0)
        print_ids(label, ids, n, want);
    kvl_free(ids);
}

static void check_decode(const kvl_tokenizer *tok, size_t rec, json_t *ids_json,
                         unsigned flags, json_t *want, const char *label)
{
    size_t n = json_array_size(ids_json);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(ids_json, i));
    kvl_error err = {0};
    char *text = NULL;
    size_t len = 0;
    kvl_status st = kvl_tokenizer_decode(tok, ids, n, flags, &text, &len, &err);
    CHECK(st == KVL_OK, "record %zu %s: %s", rec, label, err.message);
    CHECK(st == KVL_OK && len == json_string_length(want) &&
              memcmp(text, json_string_value(want), len) == 0,
          "record %zu: %s differs: '%.60s' vs HF '%.60s'", rec, label,
          text ? text : "", json_string_value(want));
    kvl_free(text);
    free(ids);
}

int main(void)
{
    const char *dir = kvt_source_path("tests/fixtures/tokenizers/trained");
    const char *exp_path = kvt_source_path("tests/fixtures/tokenizers/trained/expected.json");
    json_error_t je;
    json_t *exp = json_load_file(exp_path, JSON_ALLOW_NUL, &je);
    CHECK(exp != NULL, "%s: %s", exp_path, je.text);
    kvl_error err = {0};
    kvl_tokenizer *tok = NULL;
    kvl_status st = kvl_tokenizer_load(dir, 0, &tok, &err);
    CHECK(st == KVL_OK, "load %s: %s", dir, err.message);
    if (!exp || !tok) {
        json_decref(exp);
        kvl_tokenizer_free(tok);
        return kvt_finish();
    }
    /* 1021 model tokens (256 bytes + 765 merges) + 3 special tokens; EOS
     * is <|endoftext|>, the first special token; there is no BOS. */
    CHECK(kvl_tokenizer_get_kind(tok) == KVL_TOKENIZER_HF, "kind");
    CHECK(kvl_tokenizer_vocab_size(tok) == 1024, "vocab %d", kvl_tokenizer_vocab_size(tok));
    CHECK(kvl_tokenizer_eos(tok) == 1021, "eos %d", kvl_tokenizer_eos(tok));
    CHECK(kvl_tokenizer_bos(tok) == -1, "bos %d", kvl_tokenizer_bos(tok));
    CHECK(kvl_tokenizer_token_to_id(tok, "<|im_end|>") == 1023, "<|im_end|>");
    const char *sp = kvl_tokenizer_id_to_token(tok, 32);
    CHECK(sp && strcmp(sp, "\xc4\xa0") == 0, "id 32 is the space byte U+0120");

    json_t *recs = json_object_get(exp, "records");
    CHECK(json_array_size(recs) == 60, "%zu records", json_array_size(recs));
    size_t n_ids = 0;
    for (size_t i = 0; i < json_array_size(recs); i++) {
        json_t *r = json_array_get(recs, i);
        json_t *t = json_object_get(r, "text");
        const char *text = json_string_value(t);
        size_t len = json_string_length(t);
        json_t *ids = json_object_get(r, "ids");
        CHECK(text && json_is_array(ids), "record %zu malformed", i);
        if (!text || !ids)
            continue;
        n_ids += json_array_size(ids);
        check_encode(tok, i, text, len, KVL_ENCODE_ADD_SPECIAL, ids, "ids");
        check_encode(tok, i, text, len, 0, ids, "ids (no ADD_SPECIAL)");
        check_encode(tok, i, text, len, KVL_ENCODE_PLAIN_SPECIAL,
                     json_object_get(r, "ids_plain"), "ids_plain");
        check_decode(tok, i, ids, 0, json_object_get(r, "decoded"), "decoded");
        check_decode(tok, i, ids, KVL_DECODE_SKIP_SPECIAL,
                     json_object_get(r, "decoded_skip"), "decoded_skip");
    }
    printf("compared %zu texts, %zu ids\n", json_array_size(recs), n_ids);
    kvl_tokenizer_free(tok);
    json_decref(exp);
    return kvt_finish();
}
