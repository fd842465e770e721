/* PLACEHOLDER during development: replaced by the tokenizer.json engine. */
#include "core/error.h"
#include "tokenizer/tokenizer.h"

kvl_status kvl_hf_tokenizer_open(const char *path, kvl_tokenizer *t,
                                 kvl_error *err)
{
    (void)t;
    return kvl_fail(err, KVL_ERR_UNSUPPORTED, "'%s': tokenizer.json is not supported yet", path);
}
