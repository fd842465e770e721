/*
 * tools/eval_recall.c: recall of the demo models measured through kvlab
 * (issue 4; docs/demo-models.md).  The tool's functions are compiled into
 * this test (ER_NO_MAIN), and the built program <build>/tools/eval_recall
 * is run as a child process on models/demo-receiver.
 *
 * References:
 * - The matcher must agree with the recipe's Python rule
 *     re.search(r"(?<![A-Za-z])" + re.escape(answer) + r"(?![A-Za-z])",
 *               reply, re.IGNORECASE)
 *   Each case below states why it matches or not; every expected value was
 *   also confirmed by running that expression in Python 3.11.  The four
 *   non-ASCII characters that Python's re folds onto ASCII letters
 *   (U+0130, U+0131 ~ i, U+017F ~ s, U+212A ~ k) were found by trying every
 *   code point against [A-Za-z] with re.IGNORECASE.
 * - Invalid UTF-8 in a reply becomes U+FFFD per maximal invalid subpart,
 *   as bytes.decode("utf-8", "replace") in Python and
 *   String::from_utf8_lossy in Rust (tokenizers' decode) do; the expected
 *   strings are Python's output.
 * - Wilson 95% score interval, z = 1.959963984540054 (z^2 = 3.841459):
 *     80/100: p = 0.8, 1 + z^2/n = 1.0384146, centre = (0.8 + 0.0192073) /
 *             1.0384146 = 0.788902, half = 1.8874408 * sqrt(0.0016 +
 *             0.0000960) = 0.077731 -> [0.7112, 0.8666] (the brief's value)
 *     0/10:   upper = z^2 / (n + z^2) = 3.841459 / 13.841459 = 0.277533
 *     10/10:  lower = n / (n + z^2) = 10 / 13.841459 = 0.722467
 *     1/2:    centre 0.5, half = 1.959964 / 2.920730 * sqrt(0.125 +
 *             0.240091) = 0.405469 -> [0.094531, 0.905469]
 *   and 182/200 -> [0.862234, 0.942313], 199/200 -> [0.972226, 0.999117],
 *   50/100 -> [0.403832, 0.596168] from the formula written out in Python
 *   (z from statistics.NormalDist().inv_cdf(0.975)).
 * - The program: exit codes, and that its --json output parses (jansson),
 *   holds one row per input item in order (ids, kinds, answers as in the
 *   items file, which is gen_dialogues' output), at most --max-new tokens
 *   per reply, a stop id from generation_config.json ([8191, 8189] for the
 *   demo receiver: <|im_end|>, <|endoftext|>) or none, and a summary whose
 *   counts are those of the rows.
 */
#define ER_NO_MAIN
#include "../../tools/eval_recall.c"

#include "test_util.h"

#include <sys/wait.h>

/* ------------------------------------------------------------------------ */
/* The matcher                                                               */
/* ------------------------------------------------------------------------ */

typedef struct match_case {
    const char *reply, *answer;
    int expect;
    const char *why;
} match_case;

static const match_case match_cases[] = {
    {"I am Liagrir.", "Liagrir", 1, "space before, '.' after"},
    {"I AM LIAGRIR", "liagrir", 1, "case ignored (reply upper)"},
    {"i am liagrir", "LIAGRIR", 1, "case ignored (answer upper)"},
    {"Liagrir", "Liagrir", 1, "the whole reply: no character on either side"},
    {"Liagrirs", "Liagrir", 0, "a letter right after"},
    {"XLiagrir", "Liagrir", 0, "a letter right before"},
    {"Lia grir", "Liagrir", 0, "split by a space"},
    {"Liagrir's home", "Liagrir", 1, "an apostrophe is not a letter"},
    {"Liagrir2", "Liagrir", 1, "a digit is not a letter ([A-Za-z], unlike \\b)"},
    {"_Liagrir_", "Liagrir", 1, "'_' is not a letter ([A-Za-z], unlike \\b)"},
    {"\nLiagrir\n", "Liagrir", 1, "newlines around"},
    {"", "Liagrir", 0, "empty reply"},
    {"I'm a driverer.", "driver", 0, "a learned suffix glued on (smoke-run failure)"},
    {"a guardjack", "guard", 0, "a suffix glued on"},
    {"I'm a driver.", "driver", 1, "job in a sentence"},
    {"driverer, then a driver", "driver", 1, "first occurrence fails, the second matches"},
    {"You work as a fatryman.", "ferryman", 0, "a wrong copy"},
    {"I live in Port Lae.", "Port Lae", 1, "an answer with a space"},
    {"port lae", "Port Lae", 1, "an answer with a space, other case"},
    {"I live in Port  Lae.", "Port Lae", 0, "two spaces are not one"},
    {"I live in Portlae.", "Port Lae", 0, "the space is part of the answer"},
    {"Port Laer", "Port Lae", 0, "a letter after the second word"},
    {"Port-Lae", "Port Lae", 0, "a hyphen is not a space"},
    {"I live in Saint Tavish, and I like it there.", "Saint Tavish", 1, "',' after"},
    {"I am a chimney sweep.", "chimney sweep", 1, "a two-word job"},
    {"CHIMNEY SWEEP!", "chimney sweep", 1, "a two-word job, upper case"},
    {"a chimney sweeper", "chimney sweep", 0, "a two-word job with a letter after"},
    {"chimney-sweep", "chimney sweep", 0, "hyphen for space"},
    {"I'm jean-luc.", "Jean-Luc", 1, "an answer with a hyphen, other case"},
    {"Jean-Lucas", "Jean-Luc", 0, "hyphenated answer with a letter after"},
    {"Jean Luc", "Jean-Luc", 0, "space for hyphen"},
    {"axb", "a.b", 0, "re.escape: '.' is literal"},
    {"a.b", "a.b", 1, "re.escape: '.' matches itself"},
    {"rei", "rei", 1, "short answer"},
    {"\xc3\xa9Liagrir\xc3\xa9", "Liagrir", 1, "U+00E9 is not in [A-Za-z] even with IGNORECASE"},
    {"\xc4\xb1Liagrir", "Liagrir", 0, "U+0131 (dotless i) is a letter under IGNORECASE"},
    {"Liagrir\xe2\x84\xaa", "Liagrir", 0, "U+212A (Kelvin sign) is a letter under IGNORECASE"},
    {"\xe2\x84\xaa" "ate", "kate", 1, "U+212A matches k"},
    {"\xc5\xbf" "am", "sam", 1, "U+017F (long s) matches s"},
    {"\xc4\xb0nga", "inga", 1, "U+0130 (I with dot) matches i"},
    {"\xffLiagrir", "Liagrir", 1, "an invalid byte (U+FFFD) is not a letter"},
    {"x", "", 0, "empty answer: a letter on one side at each position"},
    {" ", "", 1, "empty answer: no letter at position 0"},
};

static void test_matcher(void)
{
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const match_case *c = &match_cases[i];
        int got = er_contains_word(c->reply, strlen(c->reply), c->answer);
        CHECK(got == c->expect, "'%s' in '%s': %d, expected %d (%s)", c->answer, c->reply, got,
              c->expect, c->why);
    }
}

static void test_utf8_lossy(void)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"a\xff" "b", 3, "a\xef\xbf\xbd" "b"},
        {"\xe2\x82", 2, "\xef\xbf\xbd"},                  /* truncated: one */
        {"\xe2\x82" "a", 3, "\xef\xbf\xbd" "a"},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},     /* valid U+1F600 */
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},      /* overlong */
        {"\xf4\x90\x80\x80", 4,
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\xf0\x9f\x98", 3, "\xef\xbf\xbd"},
        {"\xef\xbf\xbd", 3, "\xef\xbf\xbd"},              /* a real U+FFFD */
        {"\xe0\x80\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"I am Liagrir.", 13, "I am Liagrir."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = er_utf8_lossy(cases[i].in, cases[i].n);
        CHECK(s && strcmp(s, cases[i].out) == 0, "case %zu: got '%s'", i, s ? s : "(null)");
        free(s);
    }
}

/* ------------------------------------------------------------------------ */
/* Wilson interval                                                           */
/* ------------------------------------------------------------------------ */

static void test_wilson(void)
{
    static const struct {
        long k, n;
        double lo, hi, tol;
    } cases[] = {
        {80, 100, 0.7112, 0.8666, 5e-5}, {0, 10, 0.0, 0.277533, 1e-6},
        {10, 10, 0.722467, 1.0, 1e-6},   {1, 2, 0.094531, 0.905469, 1e-6},
        {182, 200, 0.862234, 0.942313, 1e-6}, {199, 200, 0.972226, 0.999117, 1e-6},
        {50, 100, 0.403832, 0.596168, 1e-6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double lo, hi;
        er_wilson(cases[i].k, cases[i].n, &lo, &hi);
        CHECK(fabs(lo - cases[i].lo) <= cases[i].tol && fabs(hi - cases[i].hi) <= cases[i].tol,
              "%ld/%ld: [%.6f, %.6f], expected [%.6f, %.6f]", cases[i].k, cases[i].n, lo, hi,
              cases[i].lo, cases[i].hi);
    }
    double lo, hi;
    er_wilson(0, 0, &lo, &hi);
    CHECK(lo == 0.0 && hi == 1.0, "0/0: [%g, %g]", lo, hi);
}

/* ------------------------------------------------------------------------ */
/* The program                                                               */
/* ------------------------------------------------------------------------ */

static int run(const char *cmd)
{
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = fputs(text, f) < 0;
    return fclose(f) != 0 || bad ? -1 : 0;
}

static void test_usage(const char *bin, const char *model)
{
    char cmd[2048];
    const char *items = kvt_temp_path(".jsonl"), *bad = kvt_temp_path(".jsonl");
    CHECK(write_file(items, "{\"id\": 0, \"kind\": \"name\", \"source\": \"system\", "
                            "\"prefix\": \"<|im_start|>user\\nHi<|im_end|>\\n"
                            "<|im_start|>assistant\\n\", \"answer\": \"Lyra\"}\n") == 0,
          "cannot write %s", items);
    CHECK(write_file(bad, "{\"id\": 0, \"kind\": \"name\", \"prefix\": \"x\"}\n") == 0,
          "cannot write %s", bad);
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' 2>/dev/null", bin, model);
    CHECK(run(cmd) == 2, "missing --items accepted");
    snprintf(cmd, sizeof cmd, "'%s' --items '%s' 2>/dev/null", bin, items);
    CHECK(run(cmd) == 2, "missing --model accepted");
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --items '%s' --max-new 0 2>/dev/null", bin,
             model, items);
    CHECK(run(cmd) == 2, "--max-new 0 accepted");
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --items '%s' --limit x 2>/dev/null", bin,
             model, items);
    CHECK(run(cmd) == 2, "--limit x accepted");
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --items '%s' --frobnicate 2>/dev/null", bin,
             model, items);
    CHECK(run(cmd) == 2, "an unknown option accepted");
    snprintf(cmd, sizeof cmd, "'%s' --help >/dev/null", bin);
    CHECK(run(cmd) == 0, "--help failed");
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --items /nonexistent/items.jsonl 2>/dev/null",
             bin, model);
    CHECK(run(cmd) == 1, "a missing items file gave no error");
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --items '%s' 2>/dev/null", bin, model, bad);
    CHECK(run(cmd) == 1, "an item without an answer gave no error");
    snprintf(cmd, sizeof cmd, "'%s' --model /nonexistent/model --items '%s' 2>/dev/null", bin,
             items);
    CHECK(run(cmd) == 1, "a missing model gave no error");
}

static json_t *load_json(const char *path)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    CHECK(j != NULL, "%s: %s (line %d)", path, jerr.text, jerr.line);
    return j;
}

/* Checks the --json output of a run over the items file (first `n`
 * items), with max_new new tokens at most. */
static void check_output(json_t *out, json_t *items, size_t n, long max_new)
{
    CHECK(json_integer_value(json_object_get(out, "n_items")) == (json_int_t)n, "n_items");
    CHECK(json_integer_value(json_object_get(out, "max_new")) == max_new, "max_new");
    json_t *eos = json_object_get(out, "eos_token_ids");
    CHECK(json_array_size(eos) == 2 && json_integer_value(json_array_get(eos, 0)) == 8191 &&
              json_integer_value(json_array_get(eos, 1)) == 8189,
          "eos_token_ids are not generation_config.json's [8191, 8189]");
    json_t *rows = json_object_get(out, "items");
    CHECK(json_array_size(rows) == n, "%zu rows for %zu items", json_array_size(rows), n);
    long correct = 0, per_kind[3] = {0}, correct_kind[3] = {0};
    static const char *const kinds[3] = {"name", "city", "job"};
    for (size_t i = 0; i < json_array_size(rows) && i < n; i++) {
        json_t *r = json_array_get(rows, i), *it = json_array_get(items, i);
        const char *reply = json_string_value(json_object_get(r, "reply"));
        const char *answer = json_string_value(json_object_get(r, "answer"));
        const char *kind = json_string_value(json_object_get(r, "kind"));
        json_t *ok = json_object_get(r, "ok"), *stop = json_object_get(r, "stop_id");
        json_int_t gen = json_integer_value(json_object_get(r, "generated_tokens"));
        CHECK(reply && answer && kind && json_is_boolean(ok), "row %zu: fields missing", i);
        if (!reply || !answer || !kind || !json_is_boolean(ok))
            continue;
        CHECK(json_integer_value(json_object_get(r, "id")) ==
                      json_integer_value(json_object_get(it, "id")) &&
                  strcmp(answer, json_string_value(json_object_get(it, "answer"))) == 0 &&
                  strcmp(kind, json_string_value(json_object_get(it, "kind"))) == 0,
              "row %zu is not item %zu", i, i);
        CHECK(json_integer_value(json_object_get(r, "prompt_tokens")) > 0, "row %zu", i);
        CHECK(gen >= 0 && gen <= max_new, "row %zu: %lld generated tokens", i, (long long)gen);
        CHECK(json_is_null(stop) || json_integer_value(stop) == 8191 ||
                  json_integer_value(stop) == 8189,
              "row %zu: stop_id", i);
        /* no stop id: the reply ran to max_new tokens */
        CHECK(!json_is_null(stop) || gen == max_new, "row %zu: stopped early without EOS", i);
        CHECK(strstr(reply, "<|im_end|>") == NULL, "row %zu: the stop token is in the reply", i);
        int o = json_is_true(ok);
        CHECK(o == er_contains_word(reply, strlen(reply), answer), "row %zu: ok", i);
        correct += o;
        for (int k = 0; k < 3; k++)
            if (strcmp(kind, kinds[k]) == 0) {
                per_kind[k]++;
                correct_kind[k] += o;
            }
    }
    json_t *sum = json_object_get(out, "summary");
    json_t *all = json_object_get(sum, "all");
    CHECK(json_integer_value(json_object_get(all, "n")) == (json_int_t)n &&
              json_integer_value(json_object_get(all, "correct")) == correct,
          "summary 'all' disagrees with the rows");
    for (int k = 0; k < 3; k++) {
        json_t *g = json_object_get(sum, kinds[k]);
        if (per_kind[k] == 0) {
            CHECK(g == NULL, "summary has an empty kind %s", kinds[k]);
            continue;
        }
        json_t *w = json_object_get(g, "wilson95");
        double acc = json_real_value(json_object_get(g, "accuracy"));
        double lo = json_real_value(json_array_get(w, 0)), hi = json_real_value(json_array_get(w, 1));
        CHECK(json_integer_value(json_object_get(g, "n")) == per_kind[k] &&
                  json_integer_value(json_object_get(g, "correct")) == correct_kind[k],
              "summary '%s' disagrees with the rows", kinds[k]);
        CHECK(fabs(acc - (double)correct_kind[k] / (double)per_kind[k]) < 1e-12 && lo >= 0 &&
                  lo <= acc && acc <= hi && hi <= 1,
              "summary '%s': accuracy %g in [%g, %g]", kinds[k], acc, lo, hi);
    }
}

static void test_program(void)
{
    const char *bin = KVL_BINARY_DIR "/tools/eval_recall";
    const char *gen = KVL_BINARY_DIR "/tools/gen_dialogues";
    if (!kvt_file_exists(bin) || !kvt_file_exists(gen)) {
        CHECK(0, "%s or %s not built", bin, gen);
        return;
    }
    char model[1024];
    snprintf(model, sizeof model, "%s", kvt_source_path("models/demo-receiver"));
    if (!kvt_file_exists(kvt_source_path("models/demo-receiver/model.safetensors"))) {
        fprintf(stderr, "skipping the runs: %s holds no model.safetensors\n", model);
        return;
    }
    test_usage(bin, model);

    const char *items_path = kvt_temp_path(".jsonl"), *out_path = kvt_temp_path(".json");
    const char *out2_path = kvt_temp_path(".json"), *txt = kvt_temp_path(".txt");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' eval --n 5 --seed 11 --out '%s'", gen, items_path);
    CHECK(run(cmd) == 0, "%s", cmd);
    json_t *items = json_array();
    FILE *f = fopen(items_path, "rb");
    char line[8192];
    while (f && fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        CHECK(j != NULL, "gen_dialogues wrote an unparsable line");
        json_array_append_new(items, j);
    }
    if (f)
        fclose(f);
    CHECK(json_array_size(items) == 5, "%zu items", json_array_size(items));

    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --items '%s' --threads 1 --json '%s' > '%s'",
             bin, model, items_path, out_path, txt);
    CHECK(run(cmd) == 0, "%s", cmd);
    json_t *out = load_json(out_path);
    if (out)
        check_output(out, items, 5, 24);
    json_decref(out);
    /* the table: a line per group with its counts */
    f = fopen(txt, "rb");
    int saw_all = 0, saw_name = 0;
    while (f && fgets(line, sizeof line, f)) {
        long c, n;
        char key[64];
        if (sscanf(line, "%63s %ld %ld", key, &c, &n) == 3) {
            saw_all |= strcmp(key, "all") == 0 && n == 5;
            saw_name |= strcmp(key, "name") == 0 && n == 2; /* items 0 and 3 */
        }
    }
    if (f)
        fclose(f);
    CHECK(saw_all && saw_name, "the printed table lacks 'all 5' or 'name 2'");

    /* --limit and --max-new */
    snprintf(cmd, sizeof cmd,
             "'%s' --model '%s' --items '%s' --limit 2 --max-new 1 --json '%s' > /dev/null", bin,
             model, items_path, out2_path);
    CHECK(run(cmd) == 0, "%s", cmd);
    out = load_json(out2_path);
    if (out)
        check_output(out, items, 2, 1);
    json_decref(out);
    json_decref(items);
}

int main(void)
{
    test_matcher();
    test_utf8_lossy();
    test_wilson();
    test_program();
    return kvt_finish();
}
