/*
 * Chat templates: kvl_chat_render against transformers.
 *
 * tests/fixtures/chat/expected.json holds what transformers'
 * apply_chat_template(messages, tokenize=False, add_generation_prompt=...)
 * renders (or which exception it raises) for 25 conversations, each with and
 * without the generation prompt, with the template, bos_token and eos_token
 * of every tests/fixtures/chat/<config>/ folder (real Qwen2.5, Qwen3,
 * SmolLM2, Llama 2, Llama 3, 3.1, 3.2 and Zephyr/TinyLlama templates, a
 * plain ChatML one, a list of named templates, a chat_template.jinja beside
 * a config, configs without bos_token).  It is written by
 * tests/reference/make_chat_fixtures.py.  Every rendering must match byte
 * for byte, through detection (KVL_CHAT_AUTO), through the family forced by
 * name, and (where the config holds the family's own defaults) with no
 * config at all.
 *
 * The rest (errors, forcing a family onto another family's config, role
 * checks) uses expectations derived by hand, explained where they appear.
 */
#include "test_util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The family each fixture folder's template belongs to (by how the
 * template is written: see docs/chat-templates.md). */
static const struct {
    const char *config;
    kvl_chat_family family;
} FIXTURE_FAMILY[] = {
    {"qwen25", KVL_CHAT_CHATML},      {"smollm2", KVL_CHAT_CHATML},
    {"chatml_plain", KVL_CHAT_CHATML}, {"chatml_list", KVL_CHAT_CHATML},
    {"qwen3", KVL_CHAT_QWEN3},        {"llama2", KVL_CHAT_LLAMA2},
    {"llama3", KVL_CHAT_LLAMA3},      {"llama3_nobos", KVL_CHAT_LLAMA3},
    {"llama31", KVL_CHAT_LLAMA3},     {"llama31_nobos", KVL_CHAT_LLAMA3},
    {"llama32", KVL_CHAT_LLAMA3},     {"zephyr", KVL_CHAT_ZEPHYR},
    /* config.json holds a Llama 3 template, chat_template.jinja a Zephyr
     * one: transformers reads the .jinja file. */
    {"jinja_file", KVL_CHAT_ZEPHYR},
};

/* Configs whose bos/eos equal the family's defaults and whose template is
 * the family's base form: rendering with config_path NULL must give the
 * same text. */
static const struct {
    const char *config;
    kvl_chat_family family;
} NO_CONFIG_SAME[] = {
    {"qwen25", KVL_CHAT_CHATML}, {"qwen3", KVL_CHAT_QWEN3}, {"llama2", KVL_CHAT_LLAMA2},
    {"llama3", KVL_CHAT_LLAMA3}, {"zephyr", KVL_CHAT_ZEPHYR},
};

static kvl_chat_family fixture_family(const char *config)
{
    for (size_t i = 0; i < sizeof FIXTURE_FAMILY / sizeof FIXTURE_FAMILY[0]; i++)
        if (strcmp(FIXTURE_FAMILY[i].config, config) == 0)
            return FIXTURE_FAMILY[i].family;
    return KVL_CHAT_AUTO;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* Prints s with C escapes (for failure messages). */
static void show(const char *label, const char *s)
{
    fprintf(stderr, "  %s: \"", label);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            fputs("\\n", stderr);
        else if (*p == '"' || *p == '\\')
            fprintf(stderr, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
    fputs("\"\n", stderr);
}

/* Today's date as transformers' strftime_now("%d %b %Y") writes it (the
 * C locale's abbreviated English month names, as in Python's default). */
static void today(char *out, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(out, cap, "%d %b %Y", &tm);
}

/* expected with "{{TODAY}}" replaced by day (newly allocated). */
static char *with_today(const char *expected, const char *day)
{
    const char *mark = strstr(expected, "{{TODAY}}");
    if (!mark)
        return strdup(expected);
    size_t n = strlen(expected) + strlen(day) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    snprintf(s, n, "%.*s%s%s", (int)(mark - expected), expected, day, mark + strlen("{{TODAY}}"));
    return s;
}

static const char *fixture_dir(const char *config)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", kvt_source_path("tests/fixtures/chat"), config);
    return buf;
}

typedef struct conv {
    const char *name;
    kvl_chat_message m[8];
    size_t n;
} conv;

/* Renders and compares with one expectation (an object {"text", "today"?}
 * or {"error"}). */
static void check_case(const char *what, const char *config_path, kvl_chat_family family,
                       const conv *c, int agp, json_t *expect)
{
    kvl_error err = {0};
    char *got = NULL;
    char day0[32], day1[32];
    today(day0, sizeof day0);
    kvl_status st = kvl_chat_render(config_path, family, c->m, c->n, agp, &got, &err);
    today(day1, sizeof day1);
    json_t *text = json_object_get(expect, "text");
    if (text) {
        CHECK(st == KVL_OK, "%s %s agp=%d: %s: %s", what, c->name, agp, kvl_status_name(st),
              err.message);
        if (st == KVL_OK) {
            char *e0 = with_today(json_string_value(text), day0);
            char *e1 = with_today(json_string_value(text), day1);
            int same = (e0 && strcmp(got, e0) == 0) || (e1 && strcmp(got, e1) == 0);
            CHECK(same, "%s %s agp=%d: rendering differs from transformers", what, c->name, agp);
            if (!same && e0) {
                show("expected", e0);
                show("kvlab   ", got);
            }
            free(e0);
            free(e1);
        }
    } else {
        /* transformers raised.  raise_exception(...) in the template
         * (TemplateError) and transformers' own refusal of an empty
         * conversation (ValueError) are the caller's fault: KVL_ERR_ARG with
         * the same wording.  Otherwise a special token the template needs
         * is undefined (UndefinedError): the config's fault,
         * KVL_ERR_FORMAT. */
        const char *msg = json_string_value(json_object_get(expect, "error"));
        kvl_status want = KVL_ERR_FORMAT;
        const char *wording = NULL;
        if (msg && strncmp(msg, "TemplateError: ", 15) == 0) {
            want = KVL_ERR_ARG;
            wording = msg + 15;
        } else if (msg && strncmp(msg, "ValueError: ", 12) == 0) {
            want = KVL_ERR_ARG;
            wording = msg + 12;
        } else {
            CHECK(msg && strncmp(msg, "UndefinedError: ", 16) == 0 &&
                      strstr(msg, "_token' is undefined"),
                  "%s %s: unexpected exception kind \"%s\"", what, c->name, msg ? msg : "?");
        }
        CHECK(st == want, "%s %s agp=%d: transformers raised \"%s\"; kvlab gave %s (%s)", what,
              c->name, agp, msg ? msg : "?", kvl_status_name(st), err.message);
        if (wording)
            CHECK(strstr(err.message, wording) != NULL, "%s %s: message \"%s\" lacks \"%s\"",
                  what, c->name, err.message, wording);
        CHECK(got == NULL, "%s %s: *out set on failure", what, c->name);
    }
    kvl_free(got);
}

/* ------------------------------------------------------------------------ */
/* Against transformers                                                      */
/* ------------------------------------------------------------------------ */

static int load_conversations(json_t *root, conv **out, size_t *n_out)
{
    json_t *arr = json_object_get(root, "conversations");
    size_t n = json_array_size(arr);
    conv *cs = calloc(n ? n : 1, sizeof *cs);
    if (!cs)
        return 0;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(arr, i);
        json_t *msgs = json_object_get(c, "messages");
        cs[i].name = json_string_value(json_object_get(c, "name"));
        cs[i].n = json_array_size(msgs);
        if (!cs[i].name || cs[i].n > 8) {
            free(cs);
            return 0;
        }
        for (size_t k = 0; k < cs[i].n; k++) {
            json_t *m = json_array_get(msgs, k);
            cs[i].m[k].role = json_string_value(json_object_get(m, "role"));
            cs[i].m[k].content = json_string_value(json_object_get(m, "content"));
        }
    }
    *out = cs;
    *n_out = n;
    return 1;
}

static void test_against_transformers(json_t *root)
{
    conv *cs = NULL;
    size_t n_conv = 0;
    CHECK(load_conversations(root, &cs, &n_conv), "expected.json: bad conversations");
    if (!cs)
        return;
    CHECK(n_conv >= 20, "only %zu conversations", n_conv);
    json_t *configs = json_object_get(root, "configs");
    CHECK(json_object_size(configs) == sizeof FIXTURE_FAMILY / sizeof FIXTURE_FAMILY[0],
          "expected.json has %zu configs", json_object_size(configs));
    const char *name;
    json_t *cfg;
    size_t renderings = 0;
    json_object_foreach(configs, name, cfg) {
        json_t *results = json_object_get(cfg, "results");
        kvl_chat_family family = fixture_family(name);
        CHECK(family != KVL_CHAT_AUTO, "config %s is not in FIXTURE_FAMILY", name);
        CHECK(json_array_size(results) == n_conv, "%s: %zu results", name,
              json_array_size(results));
        char dir[4096], file[4200], what[256];
        snprintf(dir, sizeof dir, "%s", fixture_dir(name));
        snprintf(file, sizeof file, "%s/tokenizer_config.json", dir);
        for (size_t i = 0; i < n_conv && i < json_array_size(results); i++) {
            for (int agp = 0; agp < 2; agp++) {
                json_t *expect = json_array_get(json_array_get(results, i), (size_t)agp);
                /* The folder, detected. */
                snprintf(what, sizeof what, "%s (auto)", name);
                check_case(what, dir, KVL_CHAT_AUTO, &cs[i], agp, expect);
                /* The family named: the same template rules apply (not
                 * for configs without bos_token, where a named family
                 * supplies its own: see test_forcing). */
                if (!strstr(name, "_nobos")) {
                    snprintf(what, sizeof what, "%s (forced %s)", name,
                             kvl_chat_family_name(family));
                    check_case(what, dir, family, &cs[i], agp, expect);
                }
                /* The config file itself rather than its folder (except
                 * where the folder's chat_template.jinja matters). */
                if (strcmp(name, "jinja_file") != 0) {
                    snprintf(what, sizeof what, "%s (file)", name);
                    check_case(what, file, KVL_CHAT_AUTO, &cs[i], agp, expect);
                }
                renderings++;
            }
        }
    }
    /* No config: the family's own defaults (Qwen2.5's system prompt for
     * chatml, <s>/</s> for llama2 and zephyr, <|begin_of_text|> for llama3,
     * whose base form is Llama 3.0's) give the same text as these configs. */
    for (size_t k = 0; k < sizeof NO_CONFIG_SAME / sizeof NO_CONFIG_SAME[0]; k++) {
        json_t *results = json_object_get(json_object_get(configs, NO_CONFIG_SAME[k].config),
                                          "results");
        char what[128];
        snprintf(what, sizeof what, "no config, %s like %s",
                 kvl_chat_family_name(NO_CONFIG_SAME[k].family), NO_CONFIG_SAME[k].config);
        for (size_t i = 0; i < n_conv && i < json_array_size(results); i++)
            for (int agp = 0; agp < 2; agp++)
                check_case(what, NULL, NO_CONFIG_SAME[k].family, &cs[i], agp,
                           json_array_get(json_array_get(results, i), (size_t)agp));
    }
    printf("checked %zu transformers renderings (x3 ways) over %zu configs\n", renderings,
           json_object_size(configs));
    free(cs);
}

/* ------------------------------------------------------------------------ */
/* Hand-derived cases                                                        */
/* ------------------------------------------------------------------------ */

static char tmpdir[256];

static const char *write_config(const char *name, const char *json)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(json, f);
        fclose(f);
    }
    return path;
}

static void expect_status(const char *what, const char *config, kvl_chat_family family,
                          const kvl_chat_message *m, size_t n, kvl_status want,
                          const char *needle)
{
    kvl_error err = {0};
    char *out = NULL;
    kvl_status st = kvl_chat_render(config, family, m, n, 1, &out, &err);
    CHECK(st == want, "%s: got %s (%s), want %s", what, kvl_status_name(st), err.message,
          kvl_status_name(want));
    if (needle)
        CHECK(strstr(err.message, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what,
              err.message, needle);
    CHECK(out == NULL, "%s: *out set on failure", what);
    kvl_free(out);
}

static void expect_text(const char *what, const char *config, kvl_chat_family family,
                        const kvl_chat_message *m, size_t n, int agp, const char *want)
{
    kvl_error err = {0};
    char *out = NULL;
    CHECK_OK(kvl_chat_render(config, family, m, n, agp, &out, &err), &err);
    CHECK(out && strcmp(out, want) == 0, "%s: wrong rendering", what);
    if (out && strcmp(out, want) != 0) {
        show("expected", want);
        show("kvlab   ", out);
    }
    kvl_free(out);
}

static void test_family_names(void)
{
    static const char *names[] = {"auto", "chatml", "qwen3", "llama2", "llama3", "zephyr"};
    static const kvl_chat_family fams[] = {KVL_CHAT_AUTO,   KVL_CHAT_CHATML, KVL_CHAT_QWEN3,
                                           KVL_CHAT_LLAMA2, KVL_CHAT_LLAMA3, KVL_CHAT_ZEPHYR};
    for (size_t i = 0; i < 6; i++) {
        kvl_chat_family f = (kvl_chat_family)99;
        CHECK(kvl_chat_family_parse(names[i], &f) == KVL_OK && f == fams[i], "parse %s",
              names[i]);
        CHECK(strcmp(kvl_chat_family_name(fams[i]), names[i]) == 0, "name of %d", (int)fams[i]);
    }
    kvl_chat_family f = KVL_CHAT_AUTO;
    CHECK(kvl_chat_family_parse("ChatML", &f) == KVL_OK && f == KVL_CHAT_CHATML,
          "names are case-insensitive");
    CHECK(kvl_chat_family_parse("mistral", &f) == KVL_ERR_ARG, "unknown name");
    CHECK(kvl_chat_family_parse("", &f) == KVL_ERR_ARG, "empty name");
    CHECK(kvl_chat_family_parse(NULL, &f) == KVL_ERR_ARG, "NULL name");
    CHECK(strcmp(kvl_chat_family_name((kvl_chat_family)42), "unknown") == 0, "name of 42");
}

static void test_arguments(void)
{
    kvl_chat_message ok[] = {{"user", "hi"}};
    kvl_error err = {0};
    char *out = (char *)1;
    CHECK(kvl_chat_render(NULL, KVL_CHAT_CHATML, ok, 1, 0, NULL, &err) == KVL_ERR_ARG,
          "NULL out");
    CHECK(kvl_chat_render(NULL, KVL_CHAT_CHATML, NULL, 1, 0, &out, &err) == KVL_ERR_ARG,
          "NULL messages");
    CHECK(out == NULL, "*out cleared");
    expect_status("auto without config", NULL, KVL_CHAT_AUTO, ok, 1, KVL_ERR_ARG,
                  "tokenizer_config.json");
    expect_status("bad family", NULL, (kvl_chat_family)17, ok, 1, KVL_ERR_ARG, "family");

    /* Roles other than system/user/assistant are refused, by name. */
    kvl_chat_message tool[] = {{"user", "q"}, {"tool", "42"}};
    expect_status("tool role", NULL, KVL_CHAT_CHATML, tool, 2, KVL_ERR_ARG, "'tool'");
    kvl_chat_message upper[] = {{"User", "q"}};
    expect_status("roles are case-sensitive", NULL, KVL_CHAT_LLAMA3, upper, 1, KVL_ERR_ARG,
                  "'User'");
    kvl_chat_message null_content[] = {{"user", NULL}};
    expect_status("NULL content", NULL, KVL_CHAT_ZEPHYR, null_content, 1, KVL_ERR_ARG,
                  "content");
    kvl_chat_message null_role[] = {{NULL, "x"}};
    expect_status("NULL role", NULL, KVL_CHAT_ZEPHYR, null_role, 1, KVL_ERR_ARG, "role");
    /* Content must be UTF-8: a lone continuation byte, an overlong "/" and
     * a UTF-16 surrogate encoded in UTF-8 are not. */
    const char *bad[] = {"a\x80", "\xc0\xaf", "\xed\xa0\x80"};
    for (size_t i = 0; i < 3; i++) {
        kvl_chat_message m[] = {{"user", bad[i]}};
        expect_status("invalid UTF-8", NULL, KVL_CHAT_CHATML, m, 1, KVL_ERR_ARG, "UTF-8");
    }
}

static void test_configs(void)
{
    kvl_chat_message m[] = {{"user", "Hello!"}};
    /* Files that are not usable configs. */
    expect_status("missing file", "/nonexistent/kvlab/tokenizer_config.json", KVL_CHAT_AUTO,
                  m, 1, KVL_ERR_IO, "/nonexistent/kvlab/tokenizer_config.json");
    expect_status("folder without config", tmpdir, KVL_CHAT_AUTO, m, 1, KVL_ERR_IO,
                  "tokenizer_config.json");
    const char *p = write_config("broken.json", "{\"chat_template\": ");
    expect_status("bad JSON", p, KVL_CHAT_AUTO, m, 1, KVL_ERR_FORMAT, "broken.json");
    p = write_config("array.json", "[1, 2]");
    expect_status("not an object", p, KVL_CHAT_AUTO, m, 1, KVL_ERR_FORMAT, "array.json");
    p = write_config("numtpl.json", "{\"chat_template\": 5}");
    expect_status("template of the wrong type", p, KVL_CHAT_AUTO, m, 1, KVL_ERR_FORMAT,
                  "chat_template");
    p = write_config("numbos.json",
                     "{\"chat_template\": \"{{ bos_token }}<|start_header_id|><|end_header_id|>"
                     "<|eot_id|>\", \"bos_token\": 1}");
    expect_status("bos_token of the wrong type", p, KVL_CHAT_AUTO, m, 1, KVL_ERR_FORMAT,
                  "bos_token");
    /* A list of named templates without "default": transformers refuses to
     * choose. */
    p = write_config("nodefault.json",
                     "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}");
    expect_status("no default template", p, KVL_CHAT_AUTO, m, 1, KVL_ERR_UNSUPPORTED,
                  "default");

    /* No template at all: detection has nothing to go on and says how to
     * name a family; naming one works. */
    p = write_config("notemplate.json", "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}");
    expect_status("no template", p, KVL_CHAT_AUTO, m, 1, KVL_ERR_UNSUPPORTED, "llama2");
    /* zephyr with this config's eos "</s>": "<|user|>\n" + "Hello!" + "</s>"
     * + "\n", then the generation prompt "<|assistant|>\n". */
    expect_text("forced zephyr, config without template", p, KVL_CHAT_ZEPHYR, m, 1, 1,
                "<|user|>\nHello!</s>\n<|assistant|>\n");

    /* Templates of other families are not guessed at.  Mistral v0.1's
     * [INST] without <<SYS>>; Phi-3's <|user|> closed by <|end|>, not
     * eos_token; a ChatML template that opens <think> in its generation
     * prompt (not Qwen3's); a ChatML template that writes bos_token. */
    static const char *others[] = {
        "{\"chat_template\": \"{{ bos_token }}{% for message in messages %}{% if message['role'] "
        "== 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ "
        "message['content'] + eos_token}}{% endif %}{% endfor %}\"}",
        "{\"chat_template\": \"{% for message in messages %}{% if message['role'] == 'system' "
        "%}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == "
        "'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif "
        "message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + "
        "'<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ "
        "'<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}\"}",
        "{\"chat_template\": \"{% for message in messages %}{{'<|im_start|>' + message['role'] "
        "+ '\\n' + message['content'] + '<|im_end|>\\n'}}{% endfor %}{% if "
        "add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}\"}",
        "{\"chat_template\": \"{{bos_token}}{% for message in messages %}{{'<|im_start|>' + "
        "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor "
        "%}\"}",
        "{\"chat_template\": \"{{ messages }}\"}",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "other%zu.json", i);
        p = write_config(name, others[i]);
        expect_status("unknown template", p, KVL_CHAT_AUTO, m, 1, KVL_ERR_UNSUPPORTED,
                      "--chat-template");
        /* The message lists every family it could force. */
        kvl_error err = {0};
        char *out = NULL;
        kvl_chat_render(p, KVL_CHAT_AUTO, m, 1, 0, &out, &err);
        for (size_t k = 1; k <= 5; k++)
            CHECK(strstr(err.message, kvl_chat_family_name((kvl_chat_family)k)) != NULL,
                  "unsupported message lacks %s: %s", kvl_chat_family_name((kvl_chat_family)k),
                  err.message);
        kvl_free(out);
    }

    /* A ChatML template whose default system prompt is written with Jinja
     * escapes: '\\u00e9' is "é", '\\x41' is "A", '\\'' a quote, '\\\\' one
     * backslash, '\\q' (not an escape) stays as written. */
    p = write_config("escapes.json",
                     "{\"chat_template\": \"{% for message in messages %}{% if loop.first and "
                     "messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\\\nCaf\\\\u00e9 "
                     "\\\\x41 it\\\\'s a \\\\\\\\ b \\\\q<|im_end|>\\\\n' }}{% endif %}{{"
                     "'<|im_start|>' + message['role'] + '\\\\n' + message['content'] + "
                     "'<|im_end|>' + '\\\\n'}}{% endfor %}\"}");
    expect_text("default system prompt with escapes", p, KVL_CHAT_AUTO, m, 1, 0,
                "<|im_start|>system\nCaf\xc3\xa9 A it's a \\ b \\q<|im_end|>\n"
                "<|im_start|>user\nHello!<|im_end|>\n");
}

static void test_forcing(void)
{
    kvl_chat_message m[] = {{"system", " Be brief. "}, {"user", "Hello!"}};
    /* zephyr forced onto the Llama 3 config: Zephyr's layout with that
     * config's eos_token "<|eot_id|>": each message is "<|role|>\n" +
     * content + eos + "\n" (contents are not trimmed in Zephyr's template). */
    expect_text("zephyr on a llama3 config", fixture_dir("llama3"), KVL_CHAT_ZEPHYR, m, 2, 1,
                "<|system|>\n Be brief. <|eot_id|>\n<|user|>\nHello!<|eot_id|>\n"
                "<|assistant|>\n");
    /* chatml forced onto the Llama 3.1 config: the config's template is not
     * ChatML, so the family's own default system prompt applies (Qwen2.5's)
     * when the first message is not a system message. */
    expect_text("chatml on a llama31 config", fixture_dir("llama31"), KVL_CHAT_CHATML, m + 1, 1,
                1,
                "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                "assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n"
                "<|im_start|>assistant\n");
    /* llama3 forced onto the Zephyr config: Llama 3.0's layout (the base
     * form) with that config's bos "<s>"; contents trimmed. */
    expect_text("llama3 on a zephyr config", fixture_dir("zephyr"), KVL_CHAT_LLAMA3, m, 2, 0,
                "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>");
    /* llama2 forced onto the Qwen2.5 config, which has no bos_token: the
     * family's "<s>", the config's eos "<|im_end|>" (unused here). */
    expect_text("llama2 on a qwen25 config", fixture_dir("qwen25"), KVL_CHAT_LLAMA2, m, 2, 1,
                "<s>[INST] <<SYS>>\n Be brief. \n<</SYS>>\n\nHello! [/INST]");
    /* llama3 named for a config without bos_token: the family's
     * "<|begin_of_text|>" (detected, the template would fail instead). */
    expect_text("llama3 on llama3_nobos", fixture_dir("llama3_nobos"), KVL_CHAT_LLAMA3, m + 1,
                1, 0, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!"
                "<|eot_id|>");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kvlab-chat-XXXXXX");
    if (!mkdtemp(tmpdir))
        return kvt_skip("cannot create a temporary folder");

    test_family_names();
    test_arguments();
    test_configs();
    test_forcing();

    const char *path = kvt_source_path("tests/fixtures/chat/expected.json");
    if (!kvt_file_exists(path)) {
        printf("SKIP part: %s is absent (tests/reference/make_chat_fixtures.py)\n", path);
    } else {
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        CHECK(root != NULL, "%s: line %d: %s", path, jerr.line, jerr.text);
        if (root) {
            const char *engine = json_string_value(json_object_get(root, "engine"));
            CHECK(engine && strcmp(engine, "transformers") == 0,
                  "expected.json was not made with transformers");
            test_against_transformers(root);
            json_decref(root);
        }
    }

    static const char *files[] = {"broken.json", "array.json", "numtpl.json", "numbos.json",
                                  "nodefault.json", "notemplate.json", "other0.json",
                                  "other1.json", "other2.json", "other3.json", "other4.json",
                                  "escapes.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char f[600];
        snprintf(f, sizeof f, "%s/%s", tmpdir, files[i]);
        unlink(f);
    }
    rmdir(tmpdir);
    return kvt_finish();
}
