/* Experiment configuration and prompt files: defaults, path resolution,
 * strictness (unknown keys, bad values), and the shipped files. */
#include "test_util.h"

#include <jansson.h>
#include <string.h>

#include "experiments/battery.h"
#include "experiments/config.h"

static kvl_status parse(const char *text, kvl_exp_config *c, kvl_error *e)
{
    return kvl_exp_config_parse(text, strlen(text), "t.json", "/base", c, e);
}

static void expect_bad(const char *text, const char *needle)
{
    kvl_exp_config c;
    kvl_error e = {0};
    kvl_status st = parse(text, &c, &e);
    CHECK(st == KVL_ERR_FORMAT, "'%s' gave %s", text, kvl_status_name(st));
    CHECK(strstr(e.message, needle) != NULL, "message '%s' lacks '%s'", e.message,
          needle);
}

static void test_defaults(void)
{
    kvl_exp_config c;
    kvl_error e = {0};
    CHECK_OK(parse("{}", &c, &e), &e);
    CHECK(strcmp(c.name, "t") == 0, "name from the file: %s", c.name);
    CHECK(strcmp(c.output, "results") == 0, "output %s", c.output);
    CHECK(c.seed == 1 && c.phases == KVL_PHASE_ALL, "seed/phases");
    CHECK(c.n_models == 2, "two default models");
    CHECK(strcmp(c.models[0], "/base/../models/demo-receiver") == 0, "%s", c.models[0]);
    CHECK(strcmp(c.model_labels[1], "demo-sharer") == 0, "%s", c.model_labels[1]);
    CHECK(c.modes.replications == 30 && c.modes.sampling.max_new_tokens == 32,
          "modes defaults");
    CHECK(strcmp(c.modes.battery, "/base/batteries/default.json") == 0, "%s",
          c.modes.battery);
    CHECK(strcmp(c.transfer.facts, "/base/transfer/facts.jsonl") == 0, "%s",
          c.transfer.facts);
    CHECK(c.transfer.items == 100, "items");
    json_t *j = kvl_exp_config_to_json(&c);
    CHECK(j != NULL && json_integer_value(json_object_get(j, "seed")) == 1,
          "config as JSON");
    json_decref(j);
    kvl_exp_config_free(&c);
}

static void test_values(void)
{
    kvl_exp_config c;
    kvl_error e = {0};
    CHECK_OK(parse("{\"name\": \"x\", \"seed\": 7, \"models\": [\"/abs/m\", "
                   "{\"path\": \"rel/q\", \"label\": \"Q\"}], \"phases\": "
                   "[\"modes\", \"sweep\"], \"modes\": {\"replications\": 3, "
                   "\"temperature\": 0.5, \"battery\": \"b.json\"}, \"sweep\": "
                   "{\"models\": [\"a/b/\"]}}", &c, &e), &e);
    CHECK(strcmp(c.name, "x") == 0 && c.seed == 7, "name/seed");
    CHECK(c.n_models == 2 && strcmp(c.models[0], "/abs/m") == 0 &&
              strcmp(c.model_labels[0], "m") == 0, "absolute model kept");
    CHECK(strcmp(c.models[1], "/base/rel/q") == 0 && strcmp(c.model_labels[1], "Q") == 0,
          "relative model resolved, label given");
    CHECK(c.phases == (KVL_PHASE_MODES | KVL_PHASE_SWEEP), "phases %d", (int)c.phases);
    CHECK(c.modes.replications == 3 && c.modes.sampling.temperature == 0.5f,
          "modes values");
    CHECK(strcmp(c.modes.battery, "/base/b.json") == 0, "battery path");
    CHECK(c.sweep.n_models == 1 && strcmp(c.sweep.model_labels[0], "b") == 0,
          "sweep label from a path with a trailing slash: %s", c.sweep.model_labels[0]);
    kvl_exp_config_free(&c);
}

static void test_bad(void)
{
    expect_bad("[]", "must be a JSON object");
    expect_bad("{\"nmae\": \"x\"}", "unknown key 'nmae'");
    expect_bad("{\"modes\": {\"replicatoins\": 3}}", "unknown key 'replicatoins'");
    expect_bad("{\"seed\": -1}", "seed");
    expect_bad("{\"seed\": 1.5}", "seed");
    expect_bad("{\"modes\": {\"replications\": 0}}", "replications");
    expect_bad("{\"modes\": {\"top_p\": 1.5}}", "top_p");
    expect_bad("{\"modes\": 3}", "must be an object");
    expect_bad("{\"models\": []}", "models");
    expect_bad("{\"models\": [3]}", "models[0]");
    expect_bad("{\"models\": [{\"label\": \"x\"}]}", "needs a \"path\"");
    expect_bad("{\"phases\": [\"modez\"]}", "phases[0]");
    expect_bad("{\"models\": [{\"path\": \"m\", \"label\": \"a/b\"}]}", "no '/'");
    expect_bad("{\"name\": \"a/b\"}", "plain folder name");
    expect_bad("{\"name\": \"\"}", "non-empty string");
    expect_bad("{\"seed\": 1, \"seed\": 2}", "duplicate");
    expect_bad("{", "t.json:");
    int32_t bit = 0;
    kvl_error e = {0};
    CHECK(kvl_exp_phase_parse("identity", &bit, &e) == KVL_OK &&
              bit == KVL_PHASE_IDENTITY, "phase parse");
    CHECK(kvl_exp_phase_parse("nope", &bit, &e) == KVL_ERR_ARG &&
              strstr(e.message, "unknown phase") != NULL, "bad phase");
    kvl_exp_config c;
    CHECK(kvl_exp_config_load("/nonexistent/x.json", &c, &e) == KVL_ERR_IO,
          "missing file is an I/O error");
}

static void groups_bad(kvl_exp_file_kind k, const char *text, const char *needle)
{
    kvl_exp_groups g;
    kvl_error e = {0};
    kvl_status st = kvl_exp_groups_parse(text, strlen(text), "g.json", k, &g, &e);
    CHECK(st == KVL_ERR_FORMAT, "'%s' gave %s", text, kvl_status_name(st));
    CHECK(strstr(e.message, needle) != NULL, "message '%s' lacks '%s'", e.message,
          needle);
}

static void test_groups(void)
{
    kvl_exp_groups g;
    kvl_error e = {0};
    const char *bat = "{\"name\": \"b\", \"modes\": [{\"name\": \"a\", \"prompts\": "
                      "[\"p1\", \"p2\"]}, {\"name\": \"c\", \"system\": \"S\", "
                      "\"prompts\": [\"q\"]}]}";
    CHECK_OK(kvl_exp_groups_parse(bat, strlen(bat), "b.json", KVL_EXP_BATTERY, &g, &e), &e);
    CHECK(g.n == 2 && g.g[0].n_prompts == 2 && strcmp(g.g[0].prompts[1], "p2") == 0 &&
              g.g[0].system == NULL && strcmp(g.g[1].system, "S") == 0,
          "battery content");
    kvl_exp_groups_free(&g);
    groups_bad(KVL_EXP_BATTERY, "{\"modes\": [{\"name\": \"a\", \"prompts\": [\"p\"]}]}",
               "2 to");
    groups_bad(KVL_EXP_BATTERY, "{\"modes\": [{\"name\": \"a\", \"prompts\": []}, "
               "{\"name\": \"b\", \"prompts\": [\"x\"]}]}", "prompts");
    groups_bad(KVL_EXP_BATTERY, "{\"modes\": [{\"name\": \"a\", \"prompts\": [\"x\"]}, "
               "{\"name\": \"a\", \"prompts\": [\"y\"]}]}", "used twice");
    groups_bad(KVL_EXP_BATTERY, "{\"modes\": [{\"prompts\": [\"x\"]}, "
               "{\"name\": \"a\", \"prompts\": [\"y\"]}]}", "needs \"name\"");
    groups_bad(KVL_EXP_PERSONAS, "{\"personas\": [{\"name\": \"A\"}, {\"name\": \"B\", "
               "\"system\": \"s\"}]}", "needs \"system\"");
    groups_bad(KVL_EXP_PERSONAS, "{\"personas\": [{\"name\": \"A\", \"system\": \"s\", "
               "\"prompts\": [\"x\"]}, {\"name\": \"B\", \"system\": \"s\"}]}",
               "take no prompts");
    groups_bad(KVL_EXP_PROMPTS, "{\"prompts\": [\"a\", 3]}", "prompts[1]");
    groups_bad(KVL_EXP_PROMPTS, "{\"prompt\": [\"a\"]}", "unknown key");
}

/* The files shipped under experiments/ load and have the sizes the issue
 * asks for: 7 modes x 10 prompts, 4 personas, 40 prompts per set. */
static void test_shipped(void)
{
    kvl_exp_config c;
    kvl_error e = {0};
    CHECK_OK(kvl_exp_config_load(kvt_source_path("experiments/default.json"), &c, &e), &e);
    if (e.code != KVL_OK)
        return;
    kvl_exp_groups g;
    CHECK_OK(kvl_exp_groups_load(c.modes.battery, KVL_EXP_BATTERY, &g, &e), &e);
    CHECK(g.n >= 7, "battery modes %d", (int)g.n);
    for (int32_t i = 0; i < g.n; i++)
        CHECK(g.g[i].n_prompts >= 10, "mode %s has %d prompts", g.g[i].name,
              (int)g.g[i].n_prompts);
    kvl_exp_groups_free(&g);
    CHECK_OK(kvl_exp_groups_load(c.identity.personas, KVL_EXP_PERSONAS, &g, &e), &e);
    CHECK(g.n == 4, "personas %d", (int)g.n);
    kvl_exp_groups_free(&g);
    const char *sets[2] = {c.identity.prompts, c.identity.prompts_b};
    for (int s = 0; s < 2; s++) {
        CHECK_OK(kvl_exp_groups_load(sets[s], KVL_EXP_PROMPTS, &g, &e), &e);
        CHECK(g.n == 1 && g.g[0].n_prompts >= 40, "prompt set %d", s);
        kvl_exp_groups_free(&g);
    }
    kvl_exp_config_free(&c);
}

int main(void)
{
    test_defaults();
    test_values();
    test_bad();
    test_groups();
    test_shipped();
    return kvt_finish();
}
