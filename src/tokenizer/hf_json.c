/*
 * Reading tokenizer.json.
 *
 * A real file is mostly the BPE vocabulary (an object of ~150k members)
 * and merges (an array of ~150k pairs); building jansson values for those
 * dominates the load time.  So the whole file is first checked by a small
 * validating scanner (RFC 8259 grammar, UTF-8, escapes, nesting) that also
 * records where the top-level "model" object's "vocab" object and "merges"
 * array lie.  Those two values are replaced by {} / [] in a copy that
 * jansson parses (everything else: added tokens, normalizer, ...), and are
 * read straight from the file bytes by hf_file_each_vocab / _merge.
 * Duplicate keys behave as in jansson and serde: the last one wins.
 */
#include "core/error.h"
#include "tokenizer/hf_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HF_MAX_FILE (1ll << 30)
#define HF_MAX_DEPTH 1000

/* ------------------------------------------------------------------------ */
/* Validating scanner                                                        */
/* ------------------------------------------------------------------------ */

typedef struct scanner {
    const char *s;
    size_t n, i;
    const char *msg;      /* first error, static text */
    hf_file *f;
} scanner;

enum { ROLE_ANY, ROLE_ROOT, ROLE_MODEL };

static int fail_at(scanner *sc, const char *msg)
{
    if (!sc->msg)
        sc->msg = msg;
    return 0;
}

static void skip_ws(scanner *sc)
{
    while (sc->i < sc->n) {
        char c = sc->s[sc->i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            break;
        sc->i++;
    }
}

static int hex4(const char *p, uint32_t *v)
{
    uint32_t r = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return 0;
        r = r * 16 + d;
    }
    *v = r;
    return 1;
}

/* Validates a string starting at the opening quote.  When key is non-NULL
 * the decoded text is stored there (up to cap - 1 bytes; *klen = length,
 * or cap when longer). */
static int scan_string(scanner *sc, char *key, size_t cap, size_t *klen)
{
    size_t w = 0;
    sc->i++; /* opening quote */
    for (;;) {
        if (sc->i >= sc->n)
            return fail_at(sc, "unterminated string");
        unsigned char c = (unsigned char)sc->s[sc->i];
        char dec[4];
        size_t dn = 0;
        if (c == '"') {
            sc->i++;
            break;
        }
        if (c < 0x20)
            return fail_at(sc, "control character in a string");
        if (c == '\\') {
            if (sc->i + 1 >= sc->n)
                return fail_at(sc, "unterminated string");
            char e = sc->s[sc->i + 1];
            sc->i += 2;
            switch (e) {
            case '"': dec[0] = '"'; dn = 1; break;
            case '\\': dec[0] = '\\'; dn = 1; break;
            case '/': dec[0] = '/'; dn = 1; break;
            case 'b': dec[0] = '\b'; dn = 1; break;
            case 'f': dec[0] = '\f'; dn = 1; break;
            case 'n': dec[0] = '\n'; dn = 1; break;
            case 'r': dec[0] = '\r'; dn = 1; break;
            case 't': dec[0] = '\t'; dn = 1; break;
            case 'u': {
                uint32_t v;
                if (sc->n - sc->i < 4 || !hex4(sc->s + sc->i, &v))
                    return fail_at(sc, "bad \\u escape");
                sc->i += 4;
                if (v >= 0xDC00 && v <= 0xDFFF)
                    return fail_at(sc, "lone low surrogate in a \\u escape");
                if (v >= 0xD800 && v <= 0xDBFF) {
                    uint32_t lo;
                    if (sc->n - sc->i < 6 || sc->s[sc->i] != '\\' ||
                        sc->s[sc->i + 1] != 'u' ||
                        !hex4(sc->s + sc->i + 2, &lo) || lo < 0xDC00 ||
                        lo > 0xDFFF)
                        return fail_at(sc, "lone high surrogate in a \\u "
                                           "escape");
                    sc->i += 6;
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                }
                dn = hf_utf8_put(v, dec);
                break;
            }
            default:
                return fail_at(sc, "invalid escape in a string");
            }
        } else if (c < 0x80) {
            dec[0] = (char)c;
            dn = 1;
            sc->i++;
        } else {
            int32_t cp;
            size_t len = hf_utf8_next(sc->s, sc->n, sc->i, &cp);
            if (cp < 0)
                return fail_at(sc, "invalid UTF-8 in a string");
            memcpy(dec, sc->s + sc->i, len);
            dn = len;
            sc->i += len;
        }
        if (key) {
            if (w + dn < cap)
                memcpy(key + w, dec, dn);
            w += dn;
        }
    }
    if (key) {
        if (w < cap)
            key[w] = '\0';
        *klen = w < cap ? w : cap;
    }
    return 1;
}

static int scan_number(scanner *sc)
{
    const char *s = sc->s;
    size_t i = sc->i, n = sc->n;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return fail_at(sc, "bad number");
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return fail_at(sc, "bad number");
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return fail_at(sc, "bad number");
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return fail_at(sc, "bad number");
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    sc->i = i;
    return 1;
}

static int scan_literal(scanner *sc, const char *word)
{
    size_t len = strlen(word);
    if (sc->n - sc->i < len || memcmp(sc->s + sc->i, word, len) != 0)
        return fail_at(sc, "unexpected character");
    sc->i += len;
    return 1;
}

static int scan_value(scanner *sc, int depth, int role);

static int scan_object(scanner *sc, int depth, int role)
{
    sc->i++; /* '{' */
    skip_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == '}') {
        sc->i++;
        return 1;
    }
    for (;;) {
        if (sc->i >= sc->n || sc->s[sc->i] != '"')
            return fail_at(sc, "expected a member name (a string)");
        char key[16];
        size_t klen = 0;
        if (!scan_string(sc, key, sizeof key, &klen))
            return 0;
        skip_ws(sc);
        if (sc->i >= sc->n || sc->s[sc->i] != ':')
            return fail_at(sc, "expected ':' after a member name");
        sc->i++;
        skip_ws(sc);
        int child = ROLE_ANY;
        int is_vocab = 0, is_merges = 0;
        if (role == ROLE_ROOT && klen == 5 && memcmp(key, "model", 5) == 0) {
            child = ROLE_MODEL;
            /* a later "model" member replaces an earlier one */
            sc->f->vocab_b = sc->f->vocab_e = 0;
            sc->f->merges_b = sc->f->merges_e = 0;
        } else if (role == ROLE_MODEL && klen == 5 &&
                   memcmp(key, "vocab", 5) == 0) {
            is_vocab = 1;
        } else if (role == ROLE_MODEL && klen == 6 &&
                   memcmp(key, "merges", 6) == 0) {
            is_merges = 1;
        }
        size_t vb = sc->i;
        if (!scan_value(sc, depth + 1, child))
            return 0;
        if (is_vocab) {
            int obj = sc->s[vb] == '{';
            sc->f->vocab_b = obj ? vb : 0;
            sc->f->vocab_e = obj ? sc->i : 0;
        }
        if (is_merges) {
            int arr = sc->s[vb] == '[';
            sc->f->merges_b = arr ? vb : 0;
            sc->f->merges_e = arr ? sc->i : 0;
        }
        skip_ws(sc);
        if (sc->i >= sc->n)
            return fail_at(sc, "unterminated object");
        if (sc->s[sc->i] == ',') {
            sc->i++;
            skip_ws(sc);
            continue;
        }
        if (sc->s[sc->i] == '}') {
            sc->i++;
            return 1;
        }
        return fail_at(sc, "expected ',' or '}' in an object");
    }
}

static int scan_array(scanner *sc, int depth)
{
    sc->i++; /* '[' */
    skip_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == ']') {
        sc->i++;
        return 1;
    }
    for (;;) {
        if (!scan_value(sc, depth + 1, ROLE_ANY))
            return 0;
        skip_ws(sc);
        if (sc->i >= sc->n)
            return fail_at(sc, "unterminated array");
        if (sc->s[sc->i] == ',') {
            sc->i++;
            skip_ws(sc);
            continue;
        }
        if (sc->s[sc->i] == ']') {
            sc->i++;
            return 1;
        }
        return fail_at(sc, "expected ',' or ']' in an array");
    }
}

static int scan_value(scanner *sc, int depth, int role)
{
    if (depth > HF_MAX_DEPTH)
        return fail_at(sc, "nesting too deep");
    if (sc->i >= sc->n)
        return fail_at(sc, "unexpected end of file");
    switch (sc->s[sc->i]) {
    case '{':
        return scan_object(sc, depth, role);
    case '[':
        return scan_array(sc, depth);
    case '"':
        return scan_string(sc, NULL, 0, NULL);
    case 't':
        return scan_literal(sc, "true");
    case 'f':
        return scan_literal(sc, "false");
    case 'n':
        return scan_literal(sc, "null");
    default:
        return scan_number(sc);
    }
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

static kvl_status read_file(const char *path, char **data, size_t *size,
                            kvl_error *err)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kvl_fail(err, KVL_ERR_IO, "file '%s': cannot open: %s", path,
                        strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return kvl_fail(err, KVL_ERR_IO, "file '%s': not a regular file",
                        path);
    }
    if ((long long)st.st_size > HF_MAX_FILE) {
        fclose(f);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': %lld bytes is too large for a tokenizer "
                        "(limit %lld)",
                        path, (long long)st.st_size, HF_MAX_FILE);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return kvl_fail(err, KVL_ERR_NOMEM,
                        "file '%s': cannot allocate %zu bytes", path, n);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (got != n || bad) {
        free(buf);
        return kvl_fail(err, KVL_ERR_IO, "file '%s': read %zu of %zu bytes",
                        path, got, n);
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return KVL_OK;
}

static void line_col(const char *s, size_t at, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < at; i++) {
        if (s[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

kvl_status hf_file_load(const char *path, hf_file *f, kvl_error *err)
{
    memset(f, 0, sizeof *f);
    kvl_status st = read_file(path, &f->data, &f->size, err);
    if (st != KVL_OK)
        return st;

    scanner sc = {f->data, f->size, 0, NULL, f};
    skip_ws(&sc);
    if (sc.i < sc.n && sc.s[sc.i] != '{') {
        hf_file_free(f);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': a tokenizer.json must be a JSON object",
                        path);
    }
    int ok = scan_value(&sc, 0, ROLE_ROOT);
    if (ok) {
        skip_ws(&sc);
        if (sc.i != sc.n)
            ok = fail_at(&sc, "data after the end of the JSON value");
    }
    if (!ok) {
        int line, col;
        line_col(f->data, sc.i, &line, &col);
        const char *msg = sc.msg ? sc.msg : "malformed";
        hf_file_free(f);
        return kvl_fail(err, KVL_ERR_FORMAT,
                        "file '%s': invalid JSON at line %d, column %d: %s",
                        path, line, col, msg);
    }

    /* The copy for jansson: the two big values replaced by {} and []. */
    char *copy = malloc(f->size + 8);
    if (!copy) {
        hf_file_free(f);
        return kvl_fail(err, KVL_ERR_NOMEM, "file '%s': out of memory", path);
    }
    struct {
        size_t b, e;
        const char *with;
    } cut[2] = {{f->vocab_b, f->vocab_e, "{}"}, {f->merges_b, f->merges_e, "[]"}};
    if (cut[1].e && (!cut[0].e || cut[1].b < cut[0].b)) {
        cut[0].b = f->merges_b, cut[0].e = f->merges_e, cut[0].with = "[]";
        cut[1].b = f->vocab_b, cut[1].e = f->vocab_e, cut[1].with = "{}";
    }
    size_t w = 0, at = 0;
    for (int k = 0; k < 2; k++) {
        if (!cut[k].e)
            continue;
        memcpy(copy + w, f->data + at, cut[k].b - at);
        w += cut[k].b - at;
        memcpy(copy + w, cut[k].with, 2);
        w += 2;
        at = cut[k].e;
    }
    memcpy(copy + w, f->data + at, f->size - at);
    w += f->size - at;

    json_error_t jerr;
    f->root = json_loadb(copy, w, JSON_ALLOW_NUL, &jerr);
    free(copy);
    if (!f->root) {
        hf_file_free(f);
        return kvl_fail(err, KVL_ERR_FORMAT, "file '%s': invalid JSON: %s",
                        path, jerr.text);
    }
    return KVL_OK;
}

void hf_file_free(hf_file *f)
{
    if (!f)
        return;
    free(f->data);
    if (f->root)
        json_decref(f->root);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------------ */
/* Reading the two big values (already validated)                            */
/* ------------------------------------------------------------------------ */

static void ws(const char *s, size_t *i)
{
    while (s[*i] == ' ' || s[*i] == '\n' || s[*i] == '\r' || s[*i] == '\t')
        (*i)++;
}

/* Decodes the validated string at s[*i] (the opening quote) into out. */
static kvl_status decode_string(const char *s, size_t *i, kvl_strbuf *out,
                                kvl_error *err)
{
    out->n = 0;
    size_t p = *i + 1;
    for (;;) {
        size_t q = p;
        while (s[q] != '"' && s[q] != '\\')
            q++;
        kvl_status st = kvl_strbuf_append(out, s + p, q - p, err);
        if (st != KVL_OK)
            return st;
        p = q;
        if (s[p] == '"')
            break;
        char e = s[p + 1];
        char dec[4];
        size_t dn = 1;
        p += 2;
        switch (e) {
        case 'b': dec[0] = '\b'; break;
        case 'f': dec[0] = '\f'; break;
        case 'n': dec[0] = '\n'; break;
        case 'r': dec[0] = '\r'; break;
        case 't': dec[0] = '\t'; break;
        case 'u': {
            uint32_t v = 0, lo = 0;
            hex4(s + p, &v);
            p += 4;
            if (v >= 0xD800 && v <= 0xDBFF) {
                hex4(s + p + 2, &lo);
                p += 6;
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            }
            dn = hf_utf8_put(v, dec);
            break;
        }
        default: dec[0] = e; break; /* " \ / */
        }
        if ((st = kvl_strbuf_append(out, dec, dn, err)) != KVL_OK)
            return st;
    }
    *i = p + 1;
    if (!out->s)
        return kvl_strbuf_append(out, "", 0, err);
    return KVL_OK;
}

kvl_status hf_file_each_vocab(const hf_file *f, const char *path,
                              hf_vocab_fn fn, void *ctx, kvl_error *err)
{
    const char *s = f->data;
    size_t i = f->vocab_b + 1;
    kvl_strbuf key = {0};
    kvl_status st = KVL_OK;
    ws(s, &i);
    if (s[i] == '}')
        goto done;
    for (;;) {
        if ((st = decode_string(s, &i, &key, err)) != KVL_OK)
            goto done;
        ws(s, &i);
        i++; /* ':' */
        ws(s, &i);
        size_t b = i;
        int64_t v = 0;
        int integer = 1;
        while (s[i] >= '0' && s[i] <= '9') {
            if (v < HF_MAX_ID)
                v = v * 10 + (s[i] - '0');
            i++;
        }
        if (i == b || s[i] == '.' || s[i] == 'e' || s[i] == 'E')
            integer = 0;
        if (!integer || v >= HF_MAX_ID) {
            size_t e = i;
            while (e < f->vocab_e && s[e] != ',' && s[e] != '}' &&
                   e - b < 40)
                e++;
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "file '%s': model.vocab: token \"%.*s\" has id "
                          "%.*s; ids must be integers in 0..%d",
                          path, (int)(key.n > 60 ? 60 : key.n), key.s,
                          (int)(e - b), s + b, HF_MAX_ID - 1);
            goto done;
        }
        if ((st = fn(ctx, key.s, key.n, v, err)) != KVL_OK)
            goto done;
        ws(s, &i);
        if (s[i] == ',') {
            i++;
            ws(s, &i);
            continue;
        }
        break; /* '}' */
    }
done:
    kvl_strbuf_free(&key);
    return st;
}

kvl_status hf_file_each_merge(const hf_file *f, const char *path,
                              hf_merge_fn fn, void *ctx, kvl_error *err)
{
    const char *s = f->data;
    size_t i = f->merges_b + 1, index = 0, element = 0;
    kvl_strbuf a = {0}, b = {0};
    kvl_status st = KVL_OK;
    char form = 0; /* '"' or '[': tokenizers refuses a mix of the two */
    ws(s, &i);
    if (s[i] == ']')
        goto done;
    for (;; element++) {
        if (!form)
            form = s[i];
        if ((s[i] == '"' || s[i] == '[') && s[i] != form) {
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "file '%s': model.merges[%zu]: merges must all be "
                          "\"a b\" strings or all [\"a\", \"b\"] pairs, not a mix",
                          path, element);
            goto done;
        }
        if (s[i] == '"') {
            /* "a b": exactly one space (tokenizers' legacy format) */
            if ((st = decode_string(s, &i, &a, err)) != KVL_OK)
                goto done;
            if (a.n >= 8 && memcmp(a.s, "#version", 8) == 0)
                goto next;
            char *sp = memchr(a.s, ' ', a.n);
            if (!sp || memchr(sp + 1, ' ', a.n - (size_t)(sp + 1 - a.s))) {
                st = kvl_fail(err, KVL_ERR_FORMAT,
                              "file '%s': model.merges[%zu] \"%.*s\" is not "
                              "two tokens separated by one space",
                              path, element, (int)(a.n > 60 ? 60 : a.n), a.s);
                goto done;
            }
            size_t la = (size_t)(sp - a.s);
            if ((st = fn(ctx, index, a.s, la, sp + 1, a.n - la - 1, err)) !=
                KVL_OK)
                goto done;
        } else if (s[i] == '[') {
            i++;
            ws(s, &i);
            int good = s[i] == '"';
            if (good && (st = decode_string(s, &i, &a, err)) != KVL_OK)
                goto done;
            ws(s, &i);
            good = good && s[i] == ',';
            if (good) {
                i++;
                ws(s, &i);
                good = s[i] == '"';
            }
            if (good && (st = decode_string(s, &i, &b, err)) != KVL_OK)
                goto done;
            ws(s, &i);
            good = good && s[i] == ']';
            if (!good) {
                st = kvl_fail(err, KVL_ERR_FORMAT,
                              "file '%s': model.merges[%zu] must be a pair "
                              "of strings [\"a\", \"b\"] or a string \"a b\"",
                              path, element);
                goto done;
            }
            i++;
            if ((st = fn(ctx, index, a.s, a.n, b.s, b.n, err)) != KVL_OK)
                goto done;
        } else {
            st = kvl_fail(err, KVL_ERR_FORMAT,
                          "file '%s': model.merges[%zu] must be a pair of "
                          "strings [\"a\", \"b\"] or a string \"a b\"",
                          path, element);
            goto done;
        }
        index++;
    next:
        ws(s, &i);
        if (s[i] == ',') {
            i++;
            ws(s, &i);
            continue;
        }
        break; /* ']' */
    }
done:
    kvl_strbuf_free(&a);
    kvl_strbuf_free(&b);
    return st;
}
