/*
 * tokenizer.json engine against the Hugging Face `tokenizers` library on 26
 * setups beyond Qwen3 as shipped (tests/fixtures/tokenizers/hf_extended/,
 * made by tests/reference/make_hf_extended_fixtures.py with tokenizers
 * 0.23.2; its README says what every setup covers): Qwen3 and a
 * Llama-3-like patch of it (built from ../shared/tokenizers/qwen3/
 * tokenizer.json: those two are skipped when it is absent), small trained
 * BPE tokenizers with Metaspace / byte fallback / Split behaviours / BERT
 * components / added-token flags, and hand-written probes (duplicate merges
 * and vocabulary keys, regexes that match the empty string).
 *
 * For every recorded case (setup, text, add, plain, ids[, dec, dec_skip]):
 *   kvl_tokenizer_encode_alloc(text, (add ? KVL_ENCODE_ADD_SPECIAL : 0) |
 *       (plain ? KVL_ENCODE_PLAIN_SPECIAL : 0)) == ids, where the reference
 *       is Tokenizer.encode(text, add_special_tokens=add) with
 *       encode_special_tokens=plain;
 *   kvl_tokenizer_decode(ids, 0) == dec and (ids, KVL_DECODE_SKIP_SPECIAL)
 *       == dec_skip, where the reference is Tokenizer.decode(ids,
 *       skip_special_tokens=False / True) (recorded for plain = false).
 *
 * Decodings are compared only where the reference is well-defined: a
 * `tokenizers` decoder turns a byte sequence that is not valid UTF-8 (a
 * character split across tokens with nothing to complete it) into U+FFFD,
 * while kvl_tokenizer_decode returns the raw bytes, so a case whose
 * reference decoding holds more U+FFFD than its text does is not compared
 * (counted as "skipped" per setup; U+FFFD written in the text itself, as in
 * torture.json, is compared).  Nothing else is left out.
 *
 * The fixture is committed: its absence, a malformed record or a setup
 * whose case count differs from setups.json fails.  The first mismatches of
 * each setup are printed in full (setup, text, flags, expected and actual
 * ids from the first difference); every setup prints its counts.
 */
#include "tokenizer_fixture.h"

#include <unistd.h>

#define HX_DIR "tests/fixtures/tokenizers/hf_extended"
/* Mismatches printed in full per setup and kind. */
#define HX_SHOW 8

/* ---- the JSON patch of a shared setup ------------------------------------ */

/* RFC 6902 "replace" of the JSON Pointer `path` in doc by a copy of value.
 * Returns 0, or -1 when the path does not name an existing member. */
static int hx_pointer_replace(json_t *doc, const char *path, json_t *value)
{
    if (path[0] != '/')
        return -1;
    json_t *node = doc;
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char key[256];
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (k + 1 >= sizeof key)
                return -1;
            if (p[i] == '~' && i + 1 < n &&
                (p[i + 1] == '0' || p[i + 1] == '1')) {
                key[k++] = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                key[k++] = p[i];
            }
        }
        key[k] = '\0';
        json_t *child;
        size_t index = 0;
        if (json_is_array(node)) {
            char *end;
            index = (size_t)strtoul(key, &end, 10);
            if (!*key || *end || index >= json_array_size(node))
                return -1;
            child = json_array_get(node, index);
        } else if (json_is_object(node)) {
            child = json_object_get(node, key);
            if (!child)
                return -1;
        } else {
            return -1;
        }
        if (!slash) {
            json_t *copy = json_deep_copy(value);
            if (!copy)
                return -1;
            return json_is_array(node) ? json_array_set_new(node, index, copy)
                                       : json_object_set_new(node, key, copy);
        }
        node = child;
        p = slash + 1;
    }
}

/* ---- setups -------------------------------------------------------------- */

typedef struct hx_setup {
    const char *name;
    size_t cases_expected;
    kvl_tokenizer *tok; /* NULL: skipped (or failed to load) */
    int skipped;        /* the shared file is absent */
    size_t cases, enc_checked, enc_failed, dec_checked, dec_failed,
        dec_skipped, mismatch_shown[2];
    double seconds;
} hx_setup;

/* Loads the tokenizer of setup s (entry j of setups.json). */
static void hx_open(hx_setup *s, const json_t *j)
{
    kvl_error err = {0};
    const char *file = json_string_value(json_object_get(j, "tokenizer"));
    const char *shared = json_string_value(json_object_get(j, "shared"));
    CHECK(!file != !shared, "%s: needs exactly one of tokenizer / shared",
          s->name);
    if (file) {
        char rel[512];
        snprintf(rel, sizeof rel, "%s/%s", HX_DIR, file);
        const char *path = kvt_source_path(rel);
        CHECK_OK(kvl_tokenizer_load(path, 0, &s->tok, &err), &err);
        return;
    }
    if (!shared)
        return;
    const char *path = kvt_shared_path(shared);
    if (!kvt_file_exists(path)) {
        s->skipped = 1;
        return;
    }
    /* The fixture was recorded on this very file: check its size and hash. */
    size_t len = 0;
    char *data = tf_read_file(path, &len);
    CHECK(data != NULL, "%s: cannot read %s", s->name, path);
    if (!data)
        return;
    int64_t want_len = tf_int(j, "shared_bytes");
    int64_t want_fnv = tf_int(j, "shared_fnv1a");
    uint32_t fnv = tf_fnv1a(data, len);
    free(data);
    CHECK((int64_t)len == want_len && (int64_t)fnv == want_fnv,
          "%s: %s is %zu bytes, FNV-1a %08x; the fixture was recorded on "
          "%lld bytes, %08llx", s->name, path, len, fnv, (long long)want_len,
          (unsigned long long)want_fnv);
    if ((int64_t)len != want_len || (int64_t)fnv != want_fnv)
        return;
    const json_t *patch = json_object_get(j, "patch");
    if (!patch) {
        CHECK_OK(kvl_tokenizer_load(path, 0, &s->tok, &err), &err);
        return;
    }
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_ALLOW_NUL, &je);
    CHECK(doc != NULL, "%s: %s:%d: %s", s->name, path, je.line, je.text);
    if (!doc)
        return;
    int ok = json_is_array(patch);
    CHECK(ok, "%s: the patch is not a list of operations", s->name);
    for (size_t i = 0; ok && i < json_array_size(patch); i++) {
        const json_t *op = json_array_get(patch, i);
        const char *kind = json_string_value(json_object_get(op, "op"));
        const char *ptr = json_string_value(json_object_get(op, "path"));
        json_t *value = json_object_get(op, "value");
        ok = kind && strcmp(kind, "replace") == 0 && ptr && value &&
             hx_pointer_replace(doc, ptr, value) == 0;
        CHECK(ok, "%s: patch operation %zu (%s) does not apply", s->name, i,
              ptr ? ptr : "?");
    }
    const char *tmp = kvt_temp_path(".json");
    if (ok) {
        ok = json_dump_file(doc, tmp, JSON_COMPACT) == 0;
        CHECK(ok, "%s: cannot write %s", s->name, tmp);
    }
    json_decref(doc);
    if (ok)
        CHECK_OK(kvl_tokenizer_load(tmp, 0, &s->tok, &err), &err);
    unlink(tmp);
}

/* Number of U+FFFD (EF BF BD) in s. */
static size_t hx_count_fffd(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i + 2 < n; i++)
        if ((unsigned char)s[i] == 0xef && (unsigned char)s[i + 1] == 0xbf &&
            (unsigned char)s[i + 2] == 0xbd)
            c++;
    return c;
}

static const char *hx_flags(unsigned flags)
{
    static const char *const names[4] = {"0", "ADD_SPECIAL", "PLAIN_SPECIAL",
                                         "ADD_SPECIAL|PLAIN_SPECIAL"};
    return names[flags & 3];
}

static void hx_head(const hx_setup *s, const json_t *text, unsigned flags)
{
    fprintf(stderr, "MISMATCH %s encode, flags %s, text (%zu bytes) ", s->name,
            hx_flags(flags), json_string_length(text));
    tf_print_text(stderr, json_string_value(text), json_string_length(text));
    fputc('\n', stderr);
}

static void hx_check_encode(hx_setup *s, const json_t *text, unsigned flags,
                            const json_t *ref)
{
    size_t n_want = 0, n = 0;
    int32_t *want = tf_ids(ref, &n_want), *ids = NULL;
    kvl_error err = {0};
    double t0 = tf_now();
    kvl_status st = kvl_tokenizer_encode_alloc(
        s->tok, json_string_value(text), json_string_length(text), flags, &ids,
        &n, &err);
    s->seconds += tf_now() - t0;
    int same = want && st == KVL_OK && n == n_want &&
               (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    s->enc_checked++;
    if (!same) {
        s->enc_failed++;
        if (s->mismatch_shown[0]++ < HX_SHOW) {
            hx_head(s, text, flags);
            if (st != KVL_OK) {
                fprintf(stderr, "  error %s: %s\n", kvl_status_name(st),
                        err.message);
            } else {
                size_t first = 0;
                while (first < n && first < n_want && ids[first] == want[first])
                    first++;
                size_t from = first > 4 ? first - 4 : 0;
                fprintf(stderr, "  first difference at index %zu; from index "
                        "%zu:\n  expected (%zu ids) ", first, from, n_want);
                tf_print_ids(stderr, want + from, n_want - from);
                fprintf(stderr, "\n  actual   (%zu ids) ", n);
                tf_print_ids(stderr, ids + from, n > from ? n - from : 0);
                fputc('\n', stderr);
            }
        }
    }
    free(want);
    kvl_free(ids);
}

static void hx_check_decode(hx_setup *s, const json_t *text, const json_t *ref,
                            unsigned flags, const json_t *want)
{
    const char *w = json_string_value(want);
    size_t wl = json_string_length(want);
    if (hx_count_fffd(w, wl) >
        hx_count_fffd(json_string_value(text), json_string_length(text))) {
        s->dec_skipped++; /* see the comment at the top */
        return;
    }
    size_t n = 0, len = 0;
    int32_t *ids = tf_ids(ref, &n);
    char *got = NULL;
    kvl_error err = {0};
    kvl_status st = ids ? kvl_tokenizer_decode(s->tok, ids, n, flags, &got,
                                               &len, &err)
                        : KVL_ERR_NOMEM;
    int same = st == KVL_OK && got && len == wl && memcmp(got, w, wl) == 0;
    s->dec_checked++;
    if (!same) {
        s->dec_failed++;
        if (s->mismatch_shown[1]++ < HX_SHOW) {
            fprintf(stderr, "MISMATCH %s decode%s of the reference ids ",
                    s->name, flags ? " SKIP_SPECIAL" : "");
            if (ids)
                tf_print_ids(stderr, ids, n);
            fprintf(stderr, " of text ");
            tf_print_text(stderr, json_string_value(text),
                          json_string_length(text));
            if (st != KVL_OK) {
                fprintf(stderr, "\n  error %s: %s\n", kvl_status_name(st),
                        err.message);
            } else {
                fprintf(stderr, "\n  expected ");
                tf_print_text(stderr, w, wl);
                fprintf(stderr, "\n  actual   ");
                tf_print_text(stderr, got, len);
                fputc('\n', stderr);
            }
        }
    }
    free(ids);
    kvl_free(got);
}

/* One case record. */
static void hx_case(hx_setup *s, const json_t *r)
{
    const json_t *text = json_object_get(r, "text");
    const json_t *ids = json_object_get(r, "ids");
    const json_t *add = json_object_get(r, "add");
    const json_t *plain = json_object_get(r, "plain");
    const json_t *dec = json_object_get(r, "dec");
    const json_t *dec_skip = json_object_get(r, "dec_skip");
    int good = json_is_string(text) && tf_is_id_array(ids) &&
               json_is_boolean(add) && json_is_boolean(plain) &&
               !dec == !dec_skip && (!dec || json_is_string(dec)) &&
               (!dec_skip || json_is_string(dec_skip)) &&
               (!dec || json_is_false(plain));
    CHECK(good, "%s: malformed case %zu", s->name, s->cases);
    if (!good || !s->tok)
        return;
    unsigned flags = (json_is_true(add) ? KVL_ENCODE_ADD_SPECIAL : 0u) |
                     (json_is_true(plain) ? KVL_ENCODE_PLAIN_SPECIAL : 0u);
    hx_check_encode(s, text, flags, ids);
    if (dec) {
        hx_check_decode(s, text, ids, 0, dec);
        hx_check_decode(s, text, ids, KVL_DECODE_SKIP_SPECIAL, dec_skip);
    }
}

/* Counts of setup s, its CHECKs, and its tokenizer freed. */
static void hx_close(hx_setup *s)
{
    CHECK(s->cases == s->cases_expected, "%s: %zu cases, setups.json says %zu",
          s->name, s->cases, s->cases_expected);
    if (s->skipped) {
        printf("%-27s %5zu cases: skipped (shared tokenizer absent)\n",
               s->name, s->cases);
    } else {
        printf("%-27s %5zu cases: encode %zu/%zu agree, decode %zu/%zu agree "
               "(%zu not compared: U+FFFD), %.3f s\n",
               s->name, s->cases, s->enc_checked - s->enc_failed,
               s->enc_checked, s->dec_checked - s->dec_failed, s->dec_checked,
               s->dec_skipped, s->seconds);
        CHECK(s->tok != NULL, "%s: no tokenizer", s->name);
        CHECK(s->enc_failed == 0, "%s: %zu of %zu encodings differ from "
              "`tokenizers`", s->name, s->enc_failed, s->enc_checked);
        CHECK(s->dec_failed == 0, "%s: %zu of %zu decodings differ from "
              "`tokenizers`", s->name, s->dec_failed, s->dec_checked);
    }
    kvl_tokenizer_free(s->tok);
    s->tok = NULL;
}

int main(void)
{
    json_error_t je;
    const char *setups_path = kvt_source_path(HX_DIR "/setups.json");
    json_t *meta = json_load_file(setups_path, 0, &je);
    CHECK(meta != NULL, "%s:%d: %s", setups_path, je.line, je.text);
    const json_t *list = json_object_get(meta, "setups");
    CHECK(tf_int(meta, "kvlab_hf_extended_fixture") == 1 &&
              json_is_array(list) && json_array_size(list) > 0,
          "%s: not a format-1 setup list", setups_path);
    size_t n_setups = json_array_size(list);
    hx_setup *setups = calloc(n_setups ? n_setups : 1, sizeof *setups);
    for (size_t i = 0; setups && i < n_setups; i++) {
        const json_t *j = json_array_get(list, i);
        setups[i].name = json_string_value(json_object_get(j, "name"));
        setups[i].cases_expected = (size_t)tf_int(j, "cases");
        CHECK(setups[i].name && tf_int(j, "cases") > 0, "%s: setup %zu",
              setups_path, i);
    }

    size_t len = 0;
    const char *cases_path = kvt_source_path(HX_DIR "/cases.jsonl.zst");
    char *text = tf_read_zst(cases_path, &len);
    CHECK(text != NULL, "cannot read %s", cases_path);
    if (!text || !setups || kvt_failed)
        goto done;

    /* Line 1 is the header; then the cases, grouped by setup in the order
     * of setups.json. */
    size_t line_no = 0, cur = (size_t)-1, n_cases = 0;
    json_t *header = NULL;
    double t_all = tf_now();
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        json_t *r = json_loadb(p, (size_t)(e - p), JSON_ALLOW_NUL, &je);
        p = e + 1;
        line_no++;
        if (!json_is_object(r)) {
            CHECK(0, "%s line %zu: not a JSON object: %s", cases_path,
                  line_no, je.text);
            json_decref(r);
            break;
        }
        if (line_no == 1) {
            header = r;
            CHECK(tf_int(header, "kvlab_hf_extended_fixture") == 1 &&
                      tf_int(header, "setups") == (int64_t)n_setups,
                  "%s: header does not match setups.json", cases_path);
            const char *v = json_string_value(
                json_object_get(header, "tokenizers_version"));
            printf("%s: reference tokenizers %s, %zu setups, %lld cases\n",
                   HX_DIR, v ? v : "?", n_setups,
                   (long long)tf_int(header, "cases"));
            continue;
        }
        const char *name = json_string_value(json_object_get(r, "setup"));
        if (cur == (size_t)-1 || !name || strcmp(name, setups[cur].name) != 0) {
            if (cur != (size_t)-1)
                hx_close(&setups[cur]);
            cur = cur == (size_t)-1 ? 0 : cur + 1;
            int in_order = cur < n_setups && name &&
                           strcmp(name, setups[cur].name) == 0;
            CHECK(in_order, "%s line %zu: setup %s out of order", cases_path,
                  line_no, name ? name : "(none)");
            if (!in_order) {
                json_decref(r);
                break;
            }
            hx_open(&setups[cur], json_array_get(list, cur));
        }
        hx_case(&setups[cur], r);
        setups[cur].cases++;
        n_cases++;
        json_decref(r);
    }
    if (cur != (size_t)-1 && cur < n_setups)
        hx_close(&setups[cur]);
    CHECK(cur + 1 == n_setups, "%s: %zu of %zu setups have cases", cases_path,
          cur + 1, n_setups);
    CHECK(header && tf_int(header, "cases") == (int64_t)n_cases,
          "%s: %zu cases, header says %lld", cases_path, n_cases,
          header ? (long long)tf_int(header, "cases") : -1LL);
    json_decref(header);

    size_t ran = 0, skipped = 0, enc = 0, dec = 0, dec_skipped = 0;
    for (size_t i = 0; i < n_setups; i++) {
        if (setups[i].skipped) {
            skipped++;
        } else {
            ran++;
            enc += setups[i].enc_checked;
            dec += setups[i].dec_checked;
            dec_skipped += setups[i].dec_skipped;
        }
    }
    printf("%zu setups compared (%zu encodings, %zu decodings, %zu decodings "
           "not compared), %zu skipped without ../shared; %.2f s\n",
           ran, enc, dec, dec_skipped, skipped, tf_now() - t_all);
    if (ran == 0 && !kvt_failed) {
        free(text);
        free(setups);
        json_decref(meta);
        return kvt_skip("no setup could run");
    }

done:
    free(text);
    free(setups);
    json_decref(meta);
    return kvt_finish();
}
