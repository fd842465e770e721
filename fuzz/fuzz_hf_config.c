/* Any bytes as config.json: parsed or refused, never a crash. */
#include "model/hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, 0, &jerr);
    if (!root)
        return 0;
    kvl_config cfg;
    kvl_error err;
    (void)kvl_hf_config_parse(root, "fuzz/config.json", &cfg, NULL, &err);
    json_decref(root);
    return 0;
}
