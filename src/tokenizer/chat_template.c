/*
 * Chat templates without a Jinja engine.
 *
 * kvl_chat_render renders a conversation the way transformers'
 * apply_chat_template(messages, tokenize=False, add_generation_prompt=...)
 * renders it with the chat template of a tokenizer_config.json, for five
 * template families whose rendering is written out here by hand:
 *
 *   chatml  Qwen2 / Qwen2.5 and plain ChatML: <|im_start|>role\n...<|im_end|>\n,
 *           with the default system prompt the template writes when the
 *           first message is not a system message (read from the template
 *           text: Qwen2.5's "You are Qwen, created by Alibaba Cloud. You are a
 *           helpful assistant.", Qwen2's / SmolLM2's, or none).
 *   qwen3   Qwen3's ChatML: <think> blocks of assistant turns after the last
 *           user query are kept (re-formatted), earlier ones dropped.
 *   llama2  <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s>, roles
 *           must alternate.
 *   llama3  <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>, with
 *           Llama 3.1-3.3's "Cutting Knowledge Date" system block when the
 *           template has one (date from the template, or today's date for
 *           Llama 3.2's strftime_now).
 *   zephyr  <|user|>\n...</s>\n (Zephyr, TinyLlama chat).
 *
 * docs/chat-templates.md lists the detection rules; the renderings are
 * checked byte for byte against transformers by
 * tests/tokenizer/test_chat_template.c.  Python string semantics the
 * templates rely on (str.strip() and Jinja's |trim strip Unicode whitespace,
 * strip('\n'), split) are reproduced exactly.
 */
#include "core/buf.h"
#include "core/error.h"
#include "kvlab.h"
#include "tokenizer/hf_internal.h" /* hf_hexval */

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <utf8proc.h>

#define CHAT_MAX_TEMPLATE (16u << 20) /* chat_template.jinja larger: refused */

static const char QWEN25_SYSTEM[] =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

static const char FAMILY_LIST[] =
    "chatml (Qwen2, Qwen2.5, ChatML), qwen3, llama2, llama3 (Llama 3, 3.1, "
    "3.2, 3.3), zephyr (Zephyr, TinyLlama)";

/* ------------------------------------------------------------------------ */
/* Family names                                                              */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    kvl_chat_family family;
} FAMILY_NAMES[] = {
    {"auto", KVL_CHAT_AUTO},     {"chatml", KVL_CHAT_CHATML},
    {"qwen3", KVL_CHAT_QWEN3},   {"llama2", KVL_CHAT_LLAMA2},
    {"llama3", KVL_CHAT_LLAMA3}, {"zephyr", KVL_CHAT_ZEPHYR},
};

kvl_status kvl_chat_family_parse(const char *name, kvl_chat_family *out)
{
    if (!name || !out)
        return KVL_ERR_ARG;
    for (size_t i = 0; i < sizeof FAMILY_NAMES / sizeof FAMILY_NAMES[0]; i++)
        if (strcasecmp(name, FAMILY_NAMES[i].name) == 0) {
            *out = FAMILY_NAMES[i].family;
            return KVL_OK;
        }
    return KVL_ERR_ARG;
}

const char *kvl_chat_family_name(kvl_chat_family family)
{
    for (size_t i = 0; i < sizeof FAMILY_NAMES / sizeof FAMILY_NAMES[0]; i++)
        if (FAMILY_NAMES[i].family == family)
            return FAMILY_NAMES[i].name;
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* Python string helpers                                                     */
/* ------------------------------------------------------------------------ */

typedef struct span {
    const char *p;
    size_t n;
} span;

static span mkspan(const char *s) { return (span){s, strlen(s)}; }

/* Python's str.isspace() (Unicode White_Space minus U+180E: bidirectional
 * class WS, B or S, or category Zs), which str.strip() and Jinja's |trim
 * remove. */
static int py_isspace(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 ||
           c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* str.strip() of valid UTF-8. */
static span py_strip(span s)
{
    size_t i = 0, first = s.n, last = 0;
    while (i < s.n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s.p + i,
                                              (utf8proc_ssize_t)(s.n - i), &c);
        if (k <= 0) /* cannot happen: contents are validated */
            k = 1, c = 0;
        if (!py_isspace(c)) {
            if (first == s.n)
                first = i;
            last = i + (size_t)k;
        }
        i += (size_t)k;
    }
    if (first == s.n)
        return (span){s.p + s.n, 0};
    return (span){s.p + first, last - first};
}

/* str.lstrip(ch) / str.rstrip(ch) for one ASCII character. */
static span lstrip_ch(span s, char ch)
{
    while (s.n && s.p[0] == ch)
        s.p++, s.n--;
    return s;
}

static span rstrip_ch(span s, char ch)
{
    while (s.n && s.p[s.n - 1] == ch)
        s.n--;
    return s;
}

static const char *find(span s, const char *needle)
{
    return memmem(s.p, s.n, needle, strlen(needle));
}

/* Last occurrence of needle in s, or NULL. */
static const char *find_last(span s, const char *needle)
{
    size_t m = strlen(needle);
    const char *last = NULL, *p = s.p;
    size_t left = s.n;
    const char *q;
    while ((q = memmem(p, left, needle, m)) != NULL) {
        last = q;
        left -= (size_t)(q + 1 - p);
        p = q + 1;
    }
    return last;
}

static int starts_with(span s, const char *prefix)
{
    size_t m = strlen(prefix);
    return s.n >= m && memcmp(s.p, prefix, m) == 0;
}

static int ends_with(span s, const char *suffix)
{
    size_t m = strlen(suffix);
    return s.n >= m && memcmp(s.p + s.n - m, suffix, m) == 0;
}

static int has(const char *text, const char *needle)
{
    return strstr(text, needle) != NULL;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct out_t {
    kvl_strbuf b;
    kvl_error *err;
    kvl_status st;
} out_t;

static void put(out_t *o, span s)
{
    if (o->st == KVL_OK)
        o->st = kvl_strbuf_append(&o->b, s.p, s.n, o->err);
}

static void puts_(out_t *o, const char *s) { put(o, mkspan(s)); }

/* ------------------------------------------------------------------------ */
/* Jinja string literals in template text                                    */
/* ------------------------------------------------------------------------ */

static void put_utf8(kvl_strbuf *b, uint32_t c, kvl_status *st, kvl_error *err)
{
    utf8proc_uint8_t tmp[4];
    utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)c, tmp);
    if (*st == KVL_OK)
        *st = kvl_strbuf_append(b, (const char *)tmp, (size_t)k, err);
}

/*
 * Decodes the Jinja string literal whose opening quote is at *p into *b (the
 * lexer's rules: Python "unicode-escape" decoding, CR LF and CR as LF).
 * Returns 1 and moves *p past the closing quote, or 0 when the literal is
 * malformed or uses an escape kvlab does not decode (\N{...}).
 */
static int jinja_literal(const char **pp, kvl_strbuf *b, kvl_status *st,
                         kvl_error *err)
{
    const char *p = *pp;
    char q = *p++;
    b->n = 0;
    if (*st == KVL_OK)
        *st = kvl_strbuf_append(b, "", 0, err);
    while (*p && *p != q) {
        char c = *p;
        if (c == '\r') {
            p += p[1] == '\n' ? 2 : 1;
            if (*st == KVL_OK)
                *st = kvl_strbuf_append(b, "\n", 1, err);
            continue;
        }
        if (c != '\\') {
            if (*st == KVL_OK)
                *st = kvl_strbuf_append(b, p, 1, err);
            p++;
            continue;
        }
        char e = p[1];
        const char *simple = NULL;
        switch (e) {
        case '\n': p += 2; continue; /* line continuation */
        case '\\': simple = "\\"; break;
        case '\'': simple = "'"; break;
        case '"': simple = "\""; break;
        case 'a': simple = "\a"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'n': simple = "\n"; break;
        case 'r': simple = "\r"; break;
        case 't': simple = "\t"; break;
        case 'v': simple = "\v"; break;
        default: break;
        }
        if (simple) {
            if (*st == KVL_OK)
                *st = kvl_strbuf_append(b, simple, 1, err);
            p += 2;
            continue;
        }
        if (e >= '0' && e <= '7') {
            uint32_t v = 0;
            int k = 1;
            while (k <= 3 && p[k] >= '0' && p[k] <= '7')
                v = v * 8 + (uint32_t)(p[k] - '0'), k++;
            put_utf8(b, v, st, err);
            p += k;
            continue;
        }
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            uint32_t v = 0;
            for (int k = 0; k < digits; k++) {
                int h = hf_hexval(p[2 + k]);
                if (h < 0)
                    return 0;
                v = v * 16 + (uint32_t)h;
            }
            if (!utf8proc_codepoint_valid((utf8proc_int32_t)v))
                return 0;
            put_utf8(b, v, st, err);
            p += 2 + digits;
            continue;
        }
        if (e == 'N' || e == '\0')
            return 0;
        /* Unknown escapes stay as written. */
        if (*st == KVL_OK)
            *st = kvl_strbuf_append(b, p, 2, err);
        p += 2;
    }
    if (*p != q)
        return 0;
    *pp = p + 1;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* The rendering rules of one template                                       */
/* ------------------------------------------------------------------------ */

typedef struct chat_spec {
    kvl_chat_family family;
    const char *bos, *eos;  /* NULL: the template's variable is undefined  */
    char *default_system;   /* chatml: written when messages[0] is not
                               system; NULL for none                         */
    int llama3_system_block; /* Llama 3.1+: "Cutting Knowledge Date" block  */
    char *date;             /* its date; NULL: today (strftime_now)         */
} chat_spec;

typedef struct chat_config {
    char *path;             /* the tokenizer_config.json read              */
    char *template_src;     /* where the template came from (for messages) */
    char *template;         /* NULL when there is none                     */
    char *bos, *eos;        /* NULL when absent or null                    */
} chat_config;

static void config_free(chat_config *c)
{
    free(c->path);
    free(c->template_src);
    free(c->template);
    free(c->bos);
    free(c->eos);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char *join_path(const char *dir, size_t dir_len, const char *name)
{
    size_t m = strlen(name);
    char *s = malloc(dir_len + 1 + m + 1);
    if (!s)
        return NULL;
    memcpy(s, dir, dir_len);
    s[dir_len] = '/';
    memcpy(s + dir_len + 1, name, m + 1);
    return s;
}

static kvl_status read_text_file(const char *path, char **out, kvl_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kvl_fail(err, KVL_ERR_IO, "cannot open '%s'", path);
    kvl_strbuf b = {0};
    kvl_status st = kvl_strbuf_append(&b, "", 0, err);
    char chunk[65536];
    size_t k;
    while (st == KVL_OK && (k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.n + k > CHAT_MAX_TEMPLATE)
            st = kvl_fail(err, KVL_ERR_FORMAT, "'%s' is larger than %u bytes", path,
                          CHAT_MAX_TEMPLATE);
        else
            st = kvl_strbuf_append(&b, chunk, k, err);
    }
    if (st == KVL_OK && ferror(f))
        st = kvl_fail(err, KVL_ERR_IO, "error reading '%s'", path);
    fclose(f);
    if (st == KVL_OK && (strlen(b.s) != b.n ||
                         utf8proc_decompose((const utf8proc_uint8_t *)b.s,
                                            (utf8proc_ssize_t)b.n, NULL, 0, 0) < 0))
        st = kvl_fail(err, KVL_ERR_FORMAT, "'%s' is not UTF-8 text", path);
    if (st != KVL_OK) {
        kvl_strbuf_free(&b);
        return st;
    }
    *out = b.s;
    return KVL_OK;
}

/* bos_token / eos_token: a string, an AddedToken object {"content": ...},
 * null or absent. */
static kvl_status read_token(json_t *root, const char *key, const char *path,
                             char **out, kvl_error *err)
{
    json_t *v = json_object_get(root, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return KVL_OK;
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!v || !json_is_string(v))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "'%s': %s is neither a string nor an object with a string "
                        "\"content\"", path, key);
    *out = strdup(json_string_value(v));
    if (!*out)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    return KVL_OK;
}

/* chat_template: a string, or a list of {"name", "template"} of which the
 * one named "default" is used (as transformers does). */
static kvl_status read_template(json_t *root, const char *path, char **out,
                                kvl_error *err)
{
    json_t *v = json_object_get(root, "chat_template");
    *out = NULL;
    if (!v || json_is_null(v))
        return KVL_OK;
    if (json_is_array(v)) {
        size_t i;
        json_t *t, *found = NULL;
        json_array_foreach(v, i, t) {
            json_t *name = json_object_get(t, "name");
            json_t *text = json_object_get(t, "template");
            if (!json_is_string(name) || !json_is_string(text))
                return kvl_fail(err, KVL_ERR_FORMAT,
                                "'%s': chat_template[%zu] is not an object with "
                                "string \"name\" and \"template\"", path, i);
            if (strcmp(json_string_value(name), "default") == 0)
                found = text;
        }
        if (!found)
            return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                            "'%s': chat_template lists named templates but none is "
                            "named \"default\"", path);
        v = found;
    }
    if (!json_is_string(v))
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "'%s': chat_template is neither a string nor a list of named "
                        "templates", path);
    *out = strdup(json_string_value(v));
    if (!*out)
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    return KVL_OK;
}

/* Reads <folder>/tokenizer_config.json (or the file itself) and, when the
 * folder also holds chat_template.jinja, the template from that file (which
 * transformers prefers to the config's chat_template). */
static kvl_status load_config(const char *config_path, chat_config *c,
                              kvl_error *err)
{
    const char *slash;
    size_t dir_len;
    if (is_dir(config_path)) {
        dir_len = strlen(config_path);
        c->path = join_path(config_path, dir_len, "tokenizer_config.json");
    } else {
        slash = strrchr(config_path, '/');
        c->path = strdup(config_path);
        dir_len = slash ? (size_t)(slash - config_path) : 1;
        if (!slash)
            config_path = ".";
    }
    char *jinja = c->path ? join_path(config_path, dir_len, "chat_template.jinja") : NULL;
    if (!c->path || !jinja) {
        free(jinja);
        return kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
    kvl_status st = KVL_OK;
    if (!is_file(c->path)) {
        st = kvl_fail(err, KVL_ERR_IO, "'%s' does not exist or is not a file", c->path);
        goto out;
    }
    json_error_t jerr;
    json_t *root = json_load_file(c->path, 0, &jerr);
    if (!root) {
        st = kvl_fail(err, KVL_ERR_FORMAT, "'%s': invalid JSON at line %d: %s", c->path,
                      jerr.line, jerr.text);
        goto out;
    }
    if (!json_is_object(root))
        st = kvl_fail(err, KVL_ERR_FORMAT, "'%s' is not a JSON object", c->path);
    if (st == KVL_OK)
        st = read_template(root, c->path, &c->template, err);
    if (st == KVL_OK)
        st = read_token(root, "bos_token", c->path, &c->bos, err);
    if (st == KVL_OK)
        st = read_token(root, "eos_token", c->path, &c->eos, err);
    json_decref(root);
    if (st != KVL_OK)
        goto out;
    if (is_file(jinja)) {
        free(c->template);
        c->template = NULL;
        st = read_text_file(jinja, &c->template, err);
        c->template_src = jinja;
        jinja = NULL;
    } else {
        c->template_src = strdup(c->path);
        if (!c->template_src)
            st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
    }
out:
    free(jinja);
    return st;
}

/*
 * The default system prompt of a ChatML template: the text between
 * "<|im_start|>system\n" and "<|im_end|>\n" of a string literal that holds
 * the whole system turn (Qwen2.5: '<|im_start|>system\nYou are Qwen, ...
 * <|im_end|>\n'; Qwen2, SmolLM2: the same inside {% if loop.first %}).
 * Literals that only open the turn (followed by + messages[0]['content'])
 * do not match.  *out stays NULL when the template has none.
 */
static kvl_status chatml_default_system(const char *t, const char *src,
                                        char **out, kvl_error *err)
{
    static const char head[] = "<|im_start|>system\n", tail[] = "<|im_end|>\n";
    kvl_strbuf lit = {0};
    kvl_status st = KVL_OK;
    *out = NULL;
    for (const char *p = strstr(t, "<|im_start|>system"); p && st == KVL_OK;
         p = strstr(p + 1, "<|im_start|>system")) {
        if (p == t || (p[-1] != '\'' && p[-1] != '"'))
            continue;
        const char *q = p - 1;
        if (!jinja_literal(&q, &lit, &st, err) || st != KVL_OK)
            continue;
        span s = {lit.s, lit.n};
        if (s.n > strlen(head) + strlen(tail) && starts_with(s, head) && ends_with(s, tail)) {
            size_t n = s.n - strlen(head) - strlen(tail);
            if (*out) { /* two different defaults: not a template we know */
                if (strlen(*out) != n || memcmp(*out, s.p + strlen(head), n) != 0)
                    st = kvl_fail(err, KVL_ERR_UNSUPPORTED,
                                  "'%s': the ChatML template has two different default "
                                  "system prompts", src);
                continue;
            }
            *out = strndup(s.p + strlen(head), n);
            if (!*out)
                st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
        }
    }
    kvl_strbuf_free(&lit);
    if (st != KVL_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

/* Llama 3.1's date: {%- set date_string = "26 Jul 2024" %}. */
static kvl_status llama3_fixed_date(const char *t, const char *src, char **out,
                                    kvl_error *err)
{
    const char *p = strstr(t, "set date_string =");
    *out = NULL;
    if (p) {
        p += strlen("set date_string =");
        while (*p == ' ')
            p++;
    }
    if (!p || (*p != '"' && *p != '\''))
        return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                        "'%s': the Llama 3 template writes a \"Today Date\" but kvlab "
                        "found neither strftime_now nor a date_string literal in it; "
                        "name a family to force one: %s", src, FAMILY_LIST);
    kvl_strbuf lit = {0};
    kvl_status st = KVL_OK;
    if (!jinja_literal(&p, &lit, &st, err) && st == KVL_OK)
        st = kvl_fail(err, KVL_ERR_UNSUPPORTED, "'%s': cannot read the date_string "
                      "literal of the Llama 3 template", src);
    if (st == KVL_OK)
        *out = lit.s, lit.s = NULL;
    kvl_strbuf_free(&lit);
    return st;
}

static kvl_status unsupported(const char *src, kvl_error *err)
{
    return kvl_fail(err, KVL_ERR_UNSUPPORTED,
                    "'%s': chat template not recognised; kvlab renders these "
                    "families without a Jinja engine: %s; name the family to use "
                    "(kvlab: --chat-template FAMILY)", src, FAMILY_LIST);
}

/* Recognises the family of template t (see docs/chat-templates.md) and the
 * variant details the rendering needs. */
static kvl_status detect(const char *t, const char *src, chat_spec *s,
                         kvl_error *err)
{
    if (has(t, "<|im_start|>")) {
        if (has(t, "<think>") || has(t, "reasoning_content") || has(t, "enable_thinking")) {
            /* Qwen3's template; other thinking ChatML templates (e.g. ones
             * that always open <think> in the generation prompt) differ. */
            if (has(t, "</think>") && has(t, "last_query_index") &&
                has(t, "enable_thinking") && has(t, "<|im_end|>") && !has(t, "bos_token")) {
                s->family = KVL_CHAT_QWEN3;
                return KVL_OK;
            }
            return unsupported(src, err);
        }
        if (!has(t, "<|im_end|>") || has(t, "bos_token"))
            return unsupported(src, err);
        s->family = KVL_CHAT_CHATML;
        return chatml_default_system(t, src, &s->default_system, err);
    }
    if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>") && has(t, "<|eot_id|>")) {
        s->family = KVL_CHAT_LLAMA3;
        if (!has(t, "Cutting Knowledge Date"))
            return KVL_OK;
        if (!has(t, "\"Cutting Knowledge Date: December 2023\\n\""))
            return unsupported(src, err);
        s->llama3_system_block = 1;
        if (has(t, "strftime_now"))
            return KVL_OK; /* today's date */
        return llama3_fixed_date(t, src, &s->date, err);
    }
    if (has(t, "[INST]") && has(t, "<<SYS>>")) {
        s->family = KVL_CHAT_LLAMA2;
        return KVL_OK;
    }
    if (has(t, "<|user|>") && has(t, "<|assistant|>") && has(t, "eos_token") &&
        !has(t, "<|end|>")) {
        s->family = KVL_CHAT_ZEPHYR;
        return KVL_OK;
    }
    return unsupported(src, err);
}

/* ------------------------------------------------------------------------ */
/* Renderers                                                                 */
/* ------------------------------------------------------------------------ */

static int is_role(const kvl_chat_message *m, const char *role)
{
    return strcmp(m->role, role) == 0;
}

static kvl_status need_token(const char *tok, const char *name, const char *src,
                             kvl_error *err)
{
    if (tok)
        return KVL_OK;
    /* transformers passes only the special tokens that are set; the template
     * then fails on "'bos_token' is undefined". */
    return kvl_fail(err, KVL_ERR_FORMAT,
                    "'%s' has no %s, which its chat template needs ('%s' is undefined)",
                    src, name, name);
}

static void render_chatml(out_t *o, const chat_spec *s, const kvl_chat_message *m,
                          size_t n, int agp)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && !is_role(&m[0], "system") && s->default_system) {
            puts_(o, "<|im_start|>system\n");
            puts_(o, s->default_system);
            puts_(o, "<|im_end|>\n");
        }
        puts_(o, "<|im_start|>");
        puts_(o, m[i].role);
        puts_(o, "\n");
        puts_(o, m[i].content);
        puts_(o, "<|im_end|>\n");
    }
    if (agp)
        puts_(o, "<|im_start|>assistant\n");
}

static void render_qwen3(out_t *o, const kvl_chat_message *m, size_t n, int agp)
{
    if (is_role(&m[0], "system")) {
        puts_(o, "<|im_start|>system\n");
        puts_(o, m[0].content);
        puts_(o, "<|im_end|>\n");
    }
    /* The last user message that is not a tool response (a user turn that
     * starts with <tool_response> and ends with </tool_response>). */
    size_t last_query = n - 1;
    for (size_t k = n; k-- > 0;) {
        span c = mkspan(m[k].content);
        if (is_role(&m[k], "user") &&
            !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (is_role(&m[i], "user") || (is_role(&m[i], "system") && i > 0)) {
            puts_(o, "<|im_start|>");
            puts_(o, m[i].role);
            puts_(o, "\n");
            puts_(o, m[i].content);
            puts_(o, "<|im_end|>\n");
        } else if (is_role(&m[i], "assistant")) {
            span content = mkspan(m[i].content), reasoning = {"", 0};
            const char *end_think = find(content, "</think>");
            if (end_think) {
                /* content.split('</think>')[-1].lstrip('\n') */
                const char *last = find_last(content, "</think>") + strlen("</think>");
                span after = {last, (size_t)(content.p + content.n - last)};
                /* content.split('</think>')[0].rstrip('\n')
                 *        .split('<think>')[-1].lstrip('\n') */
                span before = rstrip_ch((span){content.p, (size_t)(end_think - content.p)}, '\n');
                const char *open = find_last(before, "<think>");
                if (open) {
                    open += strlen("<think>");
                    before = (span){open, (size_t)(before.p + before.n - open)};
                }
                reasoning = lstrip_ch(before, '\n');
                content = lstrip_ch(after, '\n');
            }
            puts_(o, "<|im_start|>assistant\n");
            if (i > last_query && (i == n - 1 || reasoning.n > 0)) {
                puts_(o, "<think>\n");
                put(o, rstrip_ch(lstrip_ch(reasoning, '\n'), '\n'));
                puts_(o, "\n</think>\n\n");
                put(o, lstrip_ch(content, '\n'));
            } else {
                put(o, content);
            }
            puts_(o, "<|im_end|>\n");
        }
    }
    if (agp)
        puts_(o, "<|im_start|>assistant\n");
}

static kvl_status render_llama2(out_t *o, const chat_spec *s, const char *src,
                                const kvl_chat_message *m, size_t n)
{
    const char *system = NULL;
    if (is_role(&m[0], "system")) {
        system = m[0].content;
        m++, n--;
    }
    kvl_strbuf tmp = {0};
    kvl_status st = KVL_OK;
    for (size_t j = 0; j < n && st == KVL_OK && o->st == KVL_OK; j++) {
        int user = is_role(&m[j], "user");
        if (user != (j % 2 == 0)) {
            st = kvl_fail(o->err, KVL_ERR_ARG,
                          "chat template (llama2): Conversation roles must alternate "
                          "user/assistant/user/assistant/... (message %zu is '%s')",
                          j + (system ? 1 : 0), m[j].role);
            break;
        }
        span content = mkspan(m[j].content);
        if (j == 0 && system) {
            tmp.n = 0;
            if ((st = kvl_strbuf_puts(&tmp, "<<SYS>>\n", o->err)) != KVL_OK ||
                (st = kvl_strbuf_puts(&tmp, system, o->err)) != KVL_OK ||
                (st = kvl_strbuf_puts(&tmp, "\n<</SYS>>\n\n", o->err)) != KVL_OK ||
                (st = kvl_strbuf_puts(&tmp, m[j].content, o->err)) != KVL_OK)
                break;
            content = (span){tmp.s, tmp.n};
        }
        if (user) {
            if ((st = need_token(s->bos, "bos_token", src, o->err)) != KVL_OK)
                break;
            puts_(o, s->bos);
            puts_(o, "[INST] ");
            put(o, py_strip(content));
            puts_(o, " [/INST]");
        } else if (is_role(&m[j], "assistant")) {
            if ((st = need_token(s->eos, "eos_token", src, o->err)) != KVL_OK)
                break;
            puts_(o, " ");
            put(o, py_strip(content));
            puts_(o, " ");
            puts_(o, s->eos);
        }
        /* A system message at an odd position passes the alternation test
         * and is written by neither branch of the template. */
    }
    kvl_strbuf_free(&tmp);
    return st;
}

static void today(char out[16])
{
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    if (!localtime_r(&now, &tm))
        memset(&tm, 0, sizeof tm);
    snprintf(out, 16, "%02d %s %04d", tm.tm_mday % 100, months[(unsigned)tm.tm_mon % 12],
             (tm.tm_year + 1900) % 10000);
}

static void llama3_turn(out_t *o, const char *role, span text)
{
    puts_(o, "<|start_header_id|>");
    puts_(o, role);
    puts_(o, "<|end_header_id|>\n\n");
    put(o, text);
    puts_(o, "<|eot_id|>");
}

static kvl_status render_llama3(out_t *o, const chat_spec *s, const char *src,
                                const kvl_chat_message *m, size_t n, int agp)
{
    if (s->llama3_system_block) {
        /* {{- bos_token }} prints nothing when it is undefined. */
        puts_(o, s->bos ? s->bos : "");
        span system = {"", 0};
        if (is_role(&m[0], "system")) {
            system = py_strip(mkspan(m[0].content));
            m++, n--;
        }
        char date[16];
        if (!s->date)
            today(date);
        puts_(o, "<|start_header_id|>system<|end_header_id|>\n\n");
        puts_(o, "Cutting Knowledge Date: December 2023\n");
        puts_(o, "Today Date: ");
        puts_(o, s->date ? s->date : date);
        puts_(o, "\n\n");
        put(o, system);
        puts_(o, "<|eot_id|>");
    } else {
        kvl_status st = need_token(s->bos, "bos_token", src, o->err);
        if (st != KVL_OK)
            return st;
        puts_(o, s->bos);
    }
    for (size_t i = 0; i < n; i++)
        llama3_turn(o, m[i].role, py_strip(mkspan(m[i].content)));
    if (agp)
        puts_(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return KVL_OK;
}

static kvl_status render_zephyr(out_t *o, const chat_spec *s, const char *src,
                                const kvl_chat_message *m, size_t n, int agp)
{
    for (size_t i = 0; i < n; i++) {
        kvl_status st = need_token(s->eos, "eos_token", src, o->err);
        if (st != KVL_OK)
            return st;
        puts_(o, "<|");
        puts_(o, m[i].role); /* user, system or assistant */
        puts_(o, "|>\n");
        puts_(o, m[i].content);
        puts_(o, s->eos);
        puts_(o, "\n");
        if (i == n - 1 && agp)
            puts_(o, "<|assistant|>\n");
    }
    return KVL_OK;
}

/* ------------------------------------------------------------------------ */
/* kvl_chat_render                                                           */
/* ------------------------------------------------------------------------ */

static kvl_status check_messages(const kvl_chat_message *m, size_t n,
                                 kvl_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!m[i].role || !m[i].content)
            return kvl_fail(err, KVL_ERR_ARG, "message %zu has a NULL %s", i,
                            m[i].role ? "content" : "role");
        if (!is_role(&m[i], "system") && !is_role(&m[i], "user") &&
            !is_role(&m[i], "assistant"))
            return kvl_fail(err, KVL_ERR_ARG,
                            "message %zu has role '%.64s'; kvlab's chat templates take "
                            "system, user and assistant", i, m[i].role);
        size_t len = strlen(m[i].content);
        if (utf8proc_decompose((const utf8proc_uint8_t *)m[i].content,
                               (utf8proc_ssize_t)len, NULL, 0, 0) < 0)
            return kvl_fail(err, KVL_ERR_ARG, "message %zu (%s): content is not valid UTF-8",
                            i, m[i].role);
    }
    return KVL_OK;
}

kvl_status kvl_chat_render(const char *config_path, kvl_chat_family family,
                           const kvl_chat_message *messages, size_t n,
                           int add_generation_prompt, char **out,
                           kvl_error *err)
{
    if (out)
        *out = NULL;
    if (!out || (!messages && n))
        return kvl_fail(err, KVL_ERR_ARG, "kvl_chat_render: NULL argument");
    if (family < KVL_CHAT_AUTO || family > KVL_CHAT_ZEPHYR)
        return kvl_fail(err, KVL_ERR_ARG, "kvl_chat_render: unknown family %d", (int)family);
    if (family == KVL_CHAT_AUTO && !config_path)
        return kvl_fail(err, KVL_ERR_ARG,
                        "kvl_chat_render: KVL_CHAT_AUTO needs the model's "
                        "tokenizer_config.json (or its folder)");
    /* transformers refuses an empty conversation before any template runs
     * (whose Qwen, Llama 2 and Llama 3.1 code would read messages[0]). */
    if (n == 0)
        return kvl_fail(err, KVL_ERR_ARG,
                        "Cannot apply chat template to an empty conversation. Provide at "
                        "least one message.");
    kvl_status st = check_messages(messages, n, err);
    if (st != KVL_OK)
        return st;

    chat_config cfg = {0};
    chat_spec spec = {0};
    const char *src = "(no config)";
    if (config_path) {
        if ((st = load_config(config_path, &cfg, err)) != KVL_OK)
            goto done;
        src = cfg.template_src;
    }
    if (family == KVL_CHAT_AUTO) {
        if (!cfg.template) {
            st = kvl_fail(err, KVL_ERR_UNSUPPORTED,
                          "'%s' has no chat_template (nor a chat_template.jinja beside "
                          "it); name the family to use: %s (kvlab: --chat-template "
                          "FAMILY)", cfg.path, FAMILY_LIST);
            goto done;
        }
        if ((st = detect(cfg.template, src, &spec, err)) != KVL_OK)
            goto done;
        spec.bos = cfg.bos;
        spec.eos = cfg.eos;
    } else {
        /* A forced family keeps the variant details of the config's template
         * when that template is of the same family; otherwise it renders the
         * family's base form with its own default tokens where the config
         * has none. */
        chat_spec found = {0};
        kvl_error ignored;
        if (cfg.template && detect(cfg.template, src, &found, &ignored) == KVL_OK &&
            found.family == family) {
            spec = found;
        } else {
            free(found.default_system);
            free(found.date);
            memset(&spec, 0, sizeof spec);
            spec.family = family;
            if (family == KVL_CHAT_CHATML) {
                spec.default_system = strdup(QWEN25_SYSTEM);
                if (!spec.default_system) {
                    st = kvl_fail(err, KVL_ERR_NOMEM, "out of memory");
                    goto done;
                }
            }
        }
        int l2 = family == KVL_CHAT_LLAMA2;
        spec.bos = cfg.bos ? cfg.bos : family == KVL_CHAT_LLAMA3 ? "<|begin_of_text|>"
                                     : (l2 || family == KVL_CHAT_ZEPHYR) ? "<s>" : NULL;
        spec.eos = cfg.eos ? cfg.eos : family == KVL_CHAT_LLAMA3 ? "<|eot_id|>"
                                     : (l2 || family == KVL_CHAT_ZEPHYR) ? "</s>"
                                                                         : "<|im_end|>";
    }

    out_t o = {.err = err};
    o.st = kvl_strbuf_append(&o.b, "", 0, err);
    int agp = add_generation_prompt != 0;
    switch (spec.family) {
    case KVL_CHAT_CHATML: render_chatml(&o, &spec, messages, n, agp); break;
    case KVL_CHAT_QWEN3: render_qwen3(&o, messages, n, agp); break;
    case KVL_CHAT_LLAMA2: st = render_llama2(&o, &spec, src, messages, n); break;
    case KVL_CHAT_LLAMA3: st = render_llama3(&o, &spec, src, messages, n, agp); break;
    case KVL_CHAT_ZEPHYR: st = render_zephyr(&o, &spec, src, messages, n, agp); break;
    default: st = kvl_fail(err, KVL_ERR_INTERNAL, "no renderer for family %d", (int)spec.family);
    }
    if (st == KVL_OK)
        st = o.st;
    if (st == KVL_OK)
        *out = o.b.s;
    else
        kvl_strbuf_free(&o.b);
done:
    free(spec.default_system);
    free(spec.date);
    config_free(&cfg);
    return st;
}
