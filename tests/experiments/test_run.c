/* The experiment program end to end on the bundled demo pair with a small
 * configuration: every phase writes its files; the numbers do not depend
 * on the thread count; the transplant phase's prefix condition reproduces
 * the text condition (the property the phase is built on), and its
 * re-positioned transplant beats the raw one. */
#include "test_util.h"

#include <ftw.h>
#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sizes: smaller under the sanitizers (an unoptimised build generates
 * about 20 times slower). */
#if defined(__SANITIZE_ADDRESS__)
#define KVT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KVT_SANITIZED 1
#endif
#endif
#ifdef KVT_SANITIZED
enum { N_MODES = 3, N_MODE_PROMPTS = 5, N_ITEMS = 3, N_ID_PROMPTS = 5 };
#else
enum { N_MODES = 7, N_MODE_PROMPTS = 10, N_ITEMS = 6, N_ID_PROMPTS = 10 };
#endif

/* A copy of a shipped prompt file keeping the first n entries of `key`
 * (and, for a battery, the first n_prompts prompts of each mode). */
static const char *small_copy(const char *shipped, const char *key, int n,
                              int n_prompts)
{
    static char paths[3][1024];
    static int k;
    char *path = paths[k++ % 3];
    snprintf(path, 1024, "%s", kvt_temp_path(".json"));
    json_error_t je;
    json_t *j = json_load_file(kvt_source_path(shipped), 0, &je);
    json_t *p = json_object_get(j, key);
    while (p && json_array_size(p) > (size_t)n)
        json_array_remove(p, json_array_size(p) - 1);
    for (size_t i = 0; p && n_prompts && i < json_array_size(p); i++) {
        json_t *q = json_object_get(json_array_get(p, i), "prompts");
        while (q && json_array_size(q) > (size_t)n_prompts)
            json_array_remove(q, json_array_size(q) - 1);
    }
    int bad = !p || json_dump_file(j, path, 0) != 0;
    json_decref(j);
    return bad ? NULL : path;
}

static const char *small_set(const char *shipped, int n)
{
    return small_copy(shipped, "prompts", n, 0);
}

static const char *write_config(void)
{
    static char path[1024];
    const char *pa = small_set("experiments/prompts/identity-a.json", N_ID_PROMPTS);
    const char *pb = small_set("experiments/prompts/identity-b.json", N_ID_PROMPTS);
    const char *bat = small_copy("experiments/batteries/default.json", "modes",
                                 N_MODES, N_MODE_PROMPTS);
    if (!pa || !pb || !bat)
        return NULL;
    snprintf(path, sizeof path, "%s", kvt_temp_path(".json"));
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    const char *src = kvt_source_path("");
    fprintf(f,
            "{\"name\": \"t\", \"seed\": 5,\n"
            " \"models\": [\"%s/models/demo-receiver\", \"%s/models/demo-sharer\"],\n"
            " \"structure\": {\"max_tokens\": 256},\n"
            " \"modes\": {\"battery\": \"%s\", \"folds\": %d,\n"
            "   \"replications\": 2, \"max_new_tokens\": 8, \"bootstrap\": 200,\n"
            "   \"permutations\": 5, \"trees\": 10},\n"
            " \"transfer\": {\"facts\": \"%s/experiments/transfer/facts.jsonl\",\n"
            "   \"items\": %d, \"max_new_tokens\": 8, \"continuation\": 6},\n"
            " \"identity\": {\"personas\": \"%s/experiments/personas/default.json\",\n"
            "   \"prompts\": \"%s\",\n"
            "   \"prompts_b\": \"%s\",\n"
            "   \"max_new_tokens\": 6, \"permutations\": 5, \"trees\": 10}}\n",
            src, src, bat, N_MODE_PROMPTS < 5 ? N_MODE_PROMPTS : 5, src,
            N_ITEMS, src, pa, pb);
    fclose(f);
    return path;
}

static int count_lines(const char *path, const char *phase)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    char key[64];
    snprintf(key, sizeof key, "\"phase\":\"%s\"", phase);
    while (getline(&line, &cap, f) > 0)
        n += strstr(line, key) != NULL;
    free(line);
    fclose(f);
    return n;
}

static json_t *load_summary(const char *dir)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/summary.json", dir);
    json_error_t je;
    return json_load_file(p, 0, &je);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

/* Results folders are removed when the test ends. */
static char made[8][1024];
static int n_made;

static void remove_made(void)
{
    for (int i = 0; i < n_made; i++)
        nftw(made[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *run(const char *cfg, const char *phase, int threads, char *dir)
{
    snprintf(dir, 1024, "%s", kvt_temp_path(""));
    if (n_made < 8)
        snprintf(made[n_made++], sizeof made[0], "%s", dir);
    kvl_run_options o = {phase, dir, threads, "test", NULL, 0, NULL, NULL};
    kvl_error e = {0};
    char *report = NULL;
    kvl_status st = kvl_experiment_run(cfg, &o, &report, &e);
    CHECK(st == KVL_OK, "run %s: %s", phase ? phase : "all", e.message);
    CHECK(report && strstr(report, "report.md"), "report path");
    kvl_free(report);
    return dir;
}

/* "a.b.c" lookup through nested objects. */
static json_t *json_path(json_t *root, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *j = root;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && j;
         k = strtok_r(NULL, ".", &save))
        j = json_object_get(j, k);
    return j;
}

static double num(json_t *root, const char *path)
{
    json_t *j = json_path(root, path);
    return json_is_number(j) ? json_number_value(j) : -1e300;
}

/* Every number of two summaries equal, provenance and timings aside. */
static int same_numbers(json_t *a, json_t *b, const char *where)
{
    if (json_typeof(a) != json_typeof(b)) {
        fprintf(stderr, "type differs at %s\n", where);
        return 0;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v) {
            if (!strcmp(k, "provenance") || !strcmp(k, "wall_seconds"))
                continue;
            char w[1024];
            snprintf(w, sizeof w, "%s.%s", where, k);
            json_t *o = json_object_get(b, k);
            if (!o || !same_numbers(v, o, w)) {
                if (!o)
                    fprintf(stderr, "missing %s\n", w);
                return 0;
            }
        }
        return json_object_size(a) == json_object_size(b);
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_numbers(json_array_get(a, i), json_array_get(b, i), where))
                return 0;
        return 1;
    }
    if (!json_equal(a, b)) {
        fprintf(stderr, "value differs at %s\n", where);
        return 0;
    }
    return 1;
}

static void test_all_phases(const char *cfg)
{
    char dir[1024];
    run(cfg, NULL, 2, dir);
    char p[2048];
    snprintf(p, sizeof p, "%s/runs.jsonl", dir);
    /* 2 structure records; modes x prompts x 2 replications; items x 3 tasks x
     * 7 conditions; 2 models x 2 sets x 4 personas x 10 prompts; the sweep
     * generates only the sharer's battery (the receiver's is reused). */
    CHECK(count_lines(p, "structure") == 2, "structure records");
    const int n_battery = N_MODES * N_MODE_PROMPTS * 2;
    CHECK(count_lines(p, "modes") == n_battery, "modes records %d", count_lines(p, "modes"));
    CHECK(count_lines(p, "transfer") == N_ITEMS * 3 * 7, "transfer records");
    CHECK(count_lines(p, "identity") == 2 * 2 * 4 * N_ID_PROMPTS, "identity records");
    CHECK(count_lines(p, "sweep") == n_battery, "sweep records");
    json_t *s = load_summary(dir);
    CHECK(s != NULL, "summary.json parses");
    if (!s)
        return;
    const char *keys[] = {"structure", "modes", "transfer", "identity", "sweep",
                          "provenance"};
    for (int i = 0; i < 6; i++)
        CHECK(json_object_get(s, keys[i]) != NULL, "summary has %s", keys[i]);
    CHECK(num(s, "structure.demo-receiver.bytes_per_token_bf16") == 2.0 * 8 * 2 * 64 * 2,
          "receiver bytes per token (2 x 8 layers x 2 kv heads x 64 x 2 bytes)");
    CHECK(num(s, "structure.demo-sharer.bytes_per_token_bf16") == 2.0 * 10 * 2 * 32 * 2,
          "sharer bytes per token");
    /* The prefix cache is the text condition computed in two calls. */
    double tacc = num(s, "transfer.conditions.text.accuracy");
    double pacc = num(s, "transfer.conditions.prefix.accuracy");
    double dl = num(s, "transfer.conditions.prefix.max_abs_dlogit_vs_text");
    CHECK(tacc == pacc, "prefix accuracy %g equals text %g", pacc, tacc);
    CHECK(dl >= 0 && dl < 1e-3, "prefix logits within 1e-3 of text: %g", dl);
    CHECK(num(s, "transfer.conditions.prefix.same_reply_as_text") == N_ITEMS * 3,
          "prefix replies identical to text");
    CHECK(num(s, "transfer.conditions.text.kl_mean") == 0, "text KL from itself");
    CHECK(num(s, "transfer.conditions.corrected.accuracy") >
              num(s, "transfer.conditions.raw.accuracy"),
          "RoPE-corrected transplant beats the raw one");
    CHECK(num(s, "transfer.conditions.none.kl_mean") > 0.01, "no context differs");
    double ch = num(s, "modes.classifiers.random_forest.chance");
    CHECK(fabs(ch - 1.0 / N_MODES) < 1e-12, "mode chance level 1/%d: %g", N_MODES, ch);
    CHECK(num(s, "identity.demo-receiver.random_forest.chance") == 0.25,
          "persona chance level");
    json_decref(s);
    snprintf(p, sizeof p, "%s/report.md", dir);
    FILE *f = fopen(p, "r");
    CHECK(f != NULL, "report.md exists");
    if (f) {
        char buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        const char *want[] = {"## Provenance", "## Phase 1:", "## Phase 1.5:",
                              "## Phase 2a:", "## Phase 3:", "## Scale sweep",
                              "](plots/"};
        for (int i = 0; i < 7; i++)
            CHECK(strstr(buf, want[i]) != NULL, "report has '%s'", want[i]);
    }
    /* Every plot the report names exists. */
    snprintf(p, sizeof p, "%s/plots/transfer-accuracy.png", dir);
    CHECK(kvt_file_exists(p), "transfer plot");
}

static void test_threads(const char *cfg)
{
    char d1[1024], d2[1024];
    run(cfg, "modes", 1, d1);
    run(cfg, "modes", 2, d2);
    json_t *a = load_summary(d1), *b = load_summary(d2);
    CHECK(a && b && same_numbers(a, b, "summary"),
          "modes summary identical with 1 and 2 threads");
    json_decref(a);
    json_decref(b);
}

static void test_errors(const char *cfg)
{
    kvl_error e = {0};
    kvl_run_options o = {"nope", NULL, 1, NULL, NULL, 0, NULL, NULL};
    CHECK(kvl_experiment_run(cfg, &o, NULL, &e) == KVL_ERR_ARG &&
              strstr(e.message, "unknown phase"), "bad phase: %s", e.message);
    o.phase = "structure";
    const char *bad_model[] = {"/nonexistent/model"};
    o.models = bad_model;
    o.n_models = 1;
    o.output_dir = kvt_temp_path("");
    snprintf(made[n_made++], sizeof made[0], "%s", o.output_dir);
    CHECK(kvl_experiment_run(cfg, &o, NULL, &e) != KVL_OK &&
              strstr(e.message, "/nonexistent/model"), "bad model: %s", e.message);
    CHECK(kvl_experiment_run(NULL, NULL, NULL, &e) == KVL_ERR_ARG, "NULL config");
}

int main(void)
{
    atexit(remove_made);
    const char *cfg = write_config();
    CHECK(cfg != NULL, "config written");
    if (!cfg)
        return kvt_finish();
    test_errors(cfg);
    test_all_phases(cfg);
    test_threads(cfg);
    return kvt_finish();
}
