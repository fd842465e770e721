/* Which tokenizer file goes with a model path. */
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int has_tok_bin_name(const char *name)
{
    size_t n = strlen(name);
    return n > 7 && strncmp(name, "tok", 3) == 0 && strcmp(name + n - 4, ".bin") == 0;
}

/* The only tok*.bin in dir (other than the model file itself). */
static int find_unique_tok_bin(const char *dir, const char *model_base,
                               char *out, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!has_tok_bin_name(e->d_name) || strcmp(e->d_name, model_base) == 0)
            continue;
        if (found++ == 0)
            snprintf(out, cap, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    return found == 1;
}

static int in_folder(const char *model, char *out, size_t cap)
{
    /* The order of kvl_tokenizer_load for a folder. */
    static const char *const names[] = {"tokenizer.json", "tokenizer.model",
                                        "tokenizer.bin"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(out, cap, "%s/%s", model, names[i]);
        if (path_exists(out))
            return 1;
    }
    return 0;
}

/* Beside the real file: a link such as models/default may point at
 * models/stories260K/stories260K.bin. */
static int beside_file(const char *model, int32_t vocab, char *out, size_t cap)
{
    char dir[PATH_MAX];
    if (!realpath(model, dir))
        snprintf(dir, sizeof dir, "%s", model);
    char *slash = strrchr(dir, '/');
    char base[PATH_MAX];
    memcpy(base, slash ? slash + 1 : dir, strlen(slash ? slash + 1 : dir) + 1);
    if (slash)
        *slash = '\0';
    /* "x.bin" lies in "."; "/x.bin" in "/" (dir is then ""). */
    const char *d = !slash ? "." : dir[0] ? dir : "/";
    /* stories260K.bin -> tok512.bin: the llama2.c naming convention. */
    snprintf(out, cap, "%s/tok%" PRId32 ".bin", d, vocab);
    if (path_exists(out))
        return 1;
    snprintf(out, cap, "%s/tokenizer.bin", d);
    if (path_exists(out))
        return 1;
    return find_unique_tok_bin(d, base, out, cap);
}

kvl_status kvl_tokenizer_find(const char *model_path, int32_t vocab_size,
                              char **path, kvl_error *err)
{
    if (!model_path || !path)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_tokenizer_find: model path and output are required");
    *path = NULL;
    char buf[PATH_MAX + 64];
    const int dir = is_directory(model_path);
    if (dir ? !in_folder(model_path, buf, sizeof buf)
            : !beside_file(model_path, vocab_size, buf, sizeof buf)) {
        if (dir)
            return kvl_fail(err, KVL_ERR_IO,
                            "no tokenizer found for model '%s' (looked for "
                            "tokenizer.json, tokenizer.model and tokenizer.bin "
                            "in it)", model_path);
        return kvl_fail(err, KVL_ERR_IO,
                        "no tokenizer found for model '%s' (looked for "
                        "tok%" PRId32 ".bin, tokenizer.bin or a single "
                        "tok*.bin beside it)", model_path, vocab_size);
    }
    *path = strdup(buf);
    return *path ? KVL_OK : kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
}
