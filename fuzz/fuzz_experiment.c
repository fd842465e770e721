/* Any bytes as an experiment config, battery, personas or prompt-set file:
 * parsed or refused, never a crash. */
#include <jansson.h>

#include "experiments/battery.h"
#include "experiments/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvl_error err;
    kvl_exp_config cfg;
    if (kvl_exp_config_parse((const char *)data, size, "fuzz.json", "/fuzz",
                             &cfg, &err) == KVL_OK) {
        json_t *j = kvl_exp_config_to_json(&cfg);
        json_decref(j);
        kvl_exp_config_free(&cfg);
    }
    for (int k = 0; k < 3; k++) {
        kvl_exp_groups g;
        if (kvl_exp_groups_parse((const char *)data, size, "fuzz.json",
                                 (kvl_exp_file_kind)k, &g, &err) == KVL_OK)
            kvl_exp_groups_free(&g);
    }
    return 0;
}
