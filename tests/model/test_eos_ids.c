/*
 * The ids that end generation: config.json's eos_token_id (an int or a
 * list), replaced by generation_config.json's when the folder has one, as
 * transformers' generate() reads them.  Expectations are the values this
 * test writes into the files.
 */
#include "test_util.h"
#include "tiny_hf.h"

#include <stdio.h>
#include <string.h>

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static void check_ids(const char *dir, int n, const int32_t *want, const char *what)
{
    kvl_error err;
    kvl_model *m = NULL;
    CHECK_OK(kvl_model_load(dir, NULL, &m, &err), &err);
    if (!m)
        return;
    kvl_model_info info;
    kvl_model_get_info(m, &info);
    CHECK(info.n_eos_token_ids == n, "%s: %d eos ids, want %d", what,
          (int)info.n_eos_token_ids, n);
    for (int i = 0; i < n && i < info.n_eos_token_ids; i++)
        CHECK(info.eos_token_ids[i] == want[i], "%s: eos[%d] = %d, want %d", what, i,
              (int)info.eos_token_ids[i], (int)want[i]);
    CHECK(n == 0 || info.eos_token_id == want[0], "%s: eos_token_id is the first", what);
    kvl_model_free(m);
}

int main(void)
{
    tiny_spec s = tiny_default();
    const char *dir = tiny_mkdtemp();
    CHECK(tiny_write(dir, &s) == 0, "tiny model written");

    /* config.json alone: "eos_token_id": 2. */
    check_ids(dir, 1, (const int32_t[]){2}, "config.json");

    /* generation_config.json's list replaces it. */
    CHECK(write_text(dir, "generation_config.json",
                     "{\"bos_token_id\": 1, \"eos_token_id\": [7, 2]}") == 0, "written");
    check_ids(dir, 2, (const int32_t[]){7, 2}, "generation_config.json list");

    /* A generation_config.json without the key keeps config.json's. */
    CHECK(write_text(dir, "generation_config.json", "{\"do_sample\": false}") == 0, "written");
    check_ids(dir, 1, (const int32_t[]){2}, "generation_config.json without eos");

    /* A malformed one is an error naming the file. */
    kvl_error err;
    kvl_model *m = NULL;
    CHECK(write_text(dir, "generation_config.json", "{\"eos_token_id\": [\"x\"]}") == 0, "written");
    CHECK(kvl_model_load(dir, NULL, &m, &err) == KVL_ERR_FORMAT && !m, "bad eos refused");
    CHECK(strstr(err.message, "generation_config.json") != NULL, "message names the file: %s",
          err.message);
    CHECK(write_text(dir, "generation_config.json", "{\"eos_token_id\": [1,2,3,4,5,6,7,8,9]}") == 0,
          "written");
    CHECK(kvl_model_load(dir, NULL, &m, &err) == KVL_ERR_UNSUPPORTED && !m, "9 ids refused");
    CHECK(write_text(dir, "generation_config.json", "[1]") == 0, "written");
    CHECK(kvl_model_load(dir, NULL, &m, &err) == KVL_ERR_FORMAT && !m, "non-object refused");
    tiny_rmdir(dir);

    /* llama2.c checkpoints end at </s> (2). */
    const char *st = kvt_source_path("models/stories260K/stories260K.bin");
    if (kvt_file_exists(st))
        check_ids(st, 1, (const int32_t[]){2}, "llama2.c");
    return kvt_finish();
}
