/* kvl_tokenizer_find: which tokenizer file goes with a model path. */
#include "test_util.h"

#include <string.h>

static void expect_found(const char *model, int32_t vocab, const char *suffix)
{
    kvl_error err = {0};
    char *path = NULL;
    CHECK_OK(kvl_tokenizer_find(model, vocab, &path, &err), &err);
    size_t n = path ? strlen(path) : 0, m = strlen(suffix);
    CHECK(path && n >= m && strcmp(path + n - m, suffix) == 0, "%s -> %s (want *%s)",
          model, path ? path : "(null)", suffix);
    kvl_free(path);
}

int main(void)
{
    /* a Hugging Face folder: its tokenizer.json */
    expect_found(kvt_source_path("models/demo-receiver"), 8192,
                 "models/demo-receiver/tokenizer.json");
    /* a llama2.c checkpoint: tok<vocab>.bin beside it */
    expect_found(kvt_source_path("models/stories260K/stories260K.bin"), 512,
                 "stories260K/tok512.bin");
    /* through a symlink (models/default may point at a .bin elsewhere) */
    expect_found(kvt_source_path("models/default"), 8192, "tokenizer.json");
    /* none: a folder without any tokenizer file */
    kvl_error err = {0};
    char *path = NULL;
    kvl_status st = kvl_tokenizer_find(kvt_source_path("tests/fixtures/llama_gqa_f32"), 0,
                                       &path, &err);
    CHECK(st == KVL_ERR_IO && !path && strstr(err.message, "tokenizer.json"),
          "no tokenizer: %s", err.message);
    st = kvl_tokenizer_find(NULL, 0, &path, &err);
    CHECK(st == KVL_ERR_ARG, "NULL model path");
    return kvt_finish();
}
