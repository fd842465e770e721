/* The smallest kvlab program: load a model, run three tokens, and print the
 * shape of the resulting KV cache.  Build against an installed kvlab with
 *   cc hello_cache.c $(pkg-config --cflags --libs kvlab) -o hello_cache
 * or with CMake: find_package(kvlab) and link kvlab::kvlab_shared. */
#include <kvlab.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL\n", argv[0]);
        return 2;
    }
    kvl_error err;
    kvl_model *model = NULL;
    if (kvl_model_load(argv[1], NULL, &model, &err) != KVL_OK) {
        fprintf(stderr, "hello_cache: %s\n", err.message);
        return 1;
    }
    kvl_session *s = NULL;
    const int32_t tokens[] = {1, 2, 3};
    if (kvl_session_new(model, NULL, &s, &err) != KVL_OK ||
        kvl_session_forward(s, tokens, 3, NULL, 0, &err) != KVL_OK) {
        fprintf(stderr, "hello_cache: %s\n", err.message);
        kvl_session_free(s);
        kvl_model_free(model);
        return 1;
    }
    kvl_cache_info info;
    kvl_cache_get_info(kvl_session_cache(s), &info);
    printf("kvlab %s: %d layers x %d kv heads x %d tokens x %d dims\n",
           kvl_version(), (int)info.n_layers, (int)info.n_kv_heads,
           (int)info.n_tokens, (int)info.head_dim);
    kvl_session_free(s);
    kvl_model_free(model);
    return 0;
}
