/* Shared helpers of the phases. */
#include "experiments/phase_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

json_t *kvl_exp_json_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

void kvl_exp_sample_replies(FILE *md, const kvl_exp_groups *groups,
                            const kvl_exp_prompt *prompts,
                            const kvl_exp_gen *gens, int32_t n_prompts,
                            int32_t reps)
{
    fprintf(md, "Sample replies (first prompt of each group, first "
                "replication):\n\n| group | prompt | reply |\n| --- | --- | --- |\n");
    for (int32_t g = 0; g < groups->n; g++)
        for (int32_t p = 0; p < n_prompts; p++) {
            if (prompts[p].group != g || prompts[p].index != 0)
                continue;
            const kvl_exp_gen *x = &gens[(int64_t)p * reps];
            fprintf(md, "| %s | ", groups->g[g].name);
            kvl_exp_md_cell(md, prompts[p].user, 80);
            fprintf(md, " | ");
            kvl_exp_md_cell(md, x->text ? x->text : "", 160);
            fprintf(md, " |\n");
            break;
        }
    fprintf(md, "\n");
}

json_t *kvl_exp_json_text(const char *text)
{
    if (!text)
        return json_string("");
    const size_t n = strlen(text);
    char *out = malloc(3 * n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) { /* one bad byte -> U+FFFD */
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, text + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        }
    }
    json_t *s = json_stringn(out, o);
    free(out);
    return s;
}
