/*
 * tools/gen_dialogues.c: the demo models' dialogue generator (issue 4;
 * docs/demo-models.md).  The generator's functions are compiled into this
 * test (GD_NO_MAIN), and the built program <build>/tools/gen_dialogues is
 * run as a child process.
 *
 * References:
 * - FNV-1a-64: the published test vectors of the FNV reference
 *   (isthe.com/chongo/tech/comp/fnv): "" -> cbf29ce484222325 (the offset
 *   basis), "a" -> af63dc4c8601ec8c, "foobar" -> 85944171f73967e8.  The
 *   split of a few words was computed independently in Python:
 *     h = 0xcbf29ce484222325
 *     for c in v.lower().encode(): h = ((h ^ c) * 0x100000001b3) % 2**64
 *     held_out = h % 5 == 0
 *   baker 08c57d81f9b87b56 (1: train), brewer 719a0dd77356ebd6 (0: held
 *   out), teal fa23daef19afc4df (1: train), green 0f40f029637fecbc (0: held
 *   out), Lyra 48c619adb6dd2037 (3: train); 40 of the 224 jobs, 14 of the 54
 *   colours and 6 of the 40 pet kinds are held out.
 * - Held-out disjointness is checked on the TEXT: every value of 300
 *   evaluation items (answers and every other value in their dialogues)
 *   is looked up among the words (and word pairs) of 100,000 training
 *   documents; none may occur.
 * - ChatML well-formedness is checked by a parser written here from the
 *   ChatML layout transformers renders (<|im_start|>ROLE\nCONTENT<|im_end|>\n).
 */
#define GD_NO_MAIN
#include "../../tools/gen_dialogues.c"

#include "test_util.h"

#include <jansson.h>
#include <sys/wait.h>

/* ------------------------------------------------------------------------ */
/* A set of lower-case strings (open addressing)                             */
/* ------------------------------------------------------------------------ */

typedef struct strset {
    char **slot;
    size_t cap, n;
} strset;

static uint64_t set_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int set_find(const strset *t, const char *s, size_t n, size_t *at)
{
    size_t i = (size_t)(set_hash(s, n) & (t->cap - 1));
    while (t->slot[i]) {
        if (strlen(t->slot[i]) == n && memcmp(t->slot[i], s, n) == 0) {
            *at = i;
            return 1;
        }
        i = (i + 1) & (t->cap - 1);
    }
    *at = i;
    return 0;
}

static void set_init(strset *t, size_t cap)
{
    t->cap = cap;
    t->n = 0;
    t->slot = calloc(cap, sizeof *t->slot);
}

/* Adds s[0..n) lower-cased; returns 1 when new. */
static int set_add(strset *t, const char *s, size_t n)
{
    char buf[256];
    if (n >= sizeof buf || !t->slot || 2 * (t->n + 1) > t->cap)
        return 0;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)tolower((unsigned char)s[i]);
    size_t at;
    if (set_find(t, buf, n, &at))
        return 0;
    t->slot[at] = strndup(buf, n);
    t->n++;
    return 1;
}

static int set_has(const strset *t, const char *s, size_t n)
{
    char buf[256];
    size_t at;
    if (n >= sizeof buf || !t->slot)
        return 0;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)tolower((unsigned char)s[i]);
    return set_find(t, buf, n, &at);
}

static void set_free(strset *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slot[i]);
    free(t->slot);
}

/* ------------------------------------------------------------------------ */
/* ChatML                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct msg {
    char role[16];
    const char *content;
    size_t len;
} msg;

#define MAX_MSGS 64

/* Parses s[0..n) as ChatML messages.  With open_assistant the text must
 * end with "<|im_start|>assistant\n" (an evaluation prefix).  Checks:
 * roles system/user/assistant, the first message system, then user and
 * assistant alternating (user first), the last complete message assistant
 * (a document) or user (a prefix), no "<|", "{" or "}" in any content,
 * no empty content, no content beginning or ending with a blank.
 * Returns the number of messages or -1 (reason in why). */
static int parse_chatml(const char *s, size_t n, int open_assistant, msg *m, const char **why)
{
    static const char start[] = "<|im_start|>", end[] = "<|im_end|>\n";
    const char *p = s, *stop = s + n;
    int k = 0;
    if (open_assistant) {
        static const char tail[] = "<|im_start|>assistant\n";
        if (n < sizeof tail - 1 || memcmp(stop - (sizeof tail - 1), tail, sizeof tail - 1) != 0) {
            *why = "does not end with <|im_start|>assistant\\n";
            return -1;
        }
        stop -= sizeof tail - 1;
    }
    while (p < stop) {
        if ((size_t)(stop - p) < sizeof start - 1 || memcmp(p, start, sizeof start - 1) != 0) {
            *why = "text outside a message";
            return -1;
        }
        p += sizeof start - 1;
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        if (!nl || nl - p >= 16) {
            *why = "no role line";
            return -1;
        }
        if (k >= MAX_MSGS) {
            *why = "too many messages";
            return -1;
        }
        memcpy(m[k].role, p, (size_t)(nl - p));
        m[k].role[nl - p] = '\0';
        p = nl + 1;
        const char *e = memmem(p, (size_t)(stop - p), end, sizeof end - 1);
        if (!e) {
            *why = "message not closed by <|im_end|>\\n";
            return -1;
        }
        m[k].content = p;
        m[k].len = (size_t)(e - p);
        p = e + sizeof end - 1;
        const char *want = k == 0 ? "system" : (k % 2 ? "user" : "assistant");
        if (strcmp(m[k].role, want) != 0) {
            *why = "roles not system, then user/assistant alternating";
            return -1;
        }
        if (m[k].len == 0 || isspace((unsigned char)m[k].content[0]) ||
            isspace((unsigned char)m[k].content[m[k].len - 1])) {
            *why = "empty content or content with outer blanks";
            return -1;
        }
        for (size_t i = 0; i < m[k].len; i++) {
            char c = m[k].content[i];
            if (c == '{' || c == '}' || (c == '<' && i + 1 < m[k].len && m[k].content[i + 1] == '|')) {
                *why = "'{', '}' or '<|' inside a message";
                return -1;
            }
        }
        k++;
    }
    if (k < 2 || (open_assistant ? k % 2 != 0 : k % 2 != 1)) {
        *why = open_assistant ? "prefix does not end after a user message"
                              : "dialogue does not end with an assistant message";
        return -1;
    }
    return k;
}

/* Does the word w (whole, case-sensitive) occur in s[0..n)? */
static int has_word(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    const char *p = s, *stop = s + n;
    while (p < stop) {
        const char *f = memmem(p, (size_t)(stop - p), w, wl);
        if (!f)
            return 0;
        int left = f == s || !isalpha((unsigned char)f[-1]);
        int right = f + wl == stop || !isalpha((unsigned char)f[wl]);
        if (left && right)
            return 1;
        p = f + 1;
    }
    return 0;
}

/* Checks one training document (without its "<|endoftext|>\n"). */
static int check_doc(const char *s, size_t n, const char **why)
{
    msg m[MAX_MSGS];
    if (n == 0) {
        *why = "empty document";
        return -1;
    }
    if (memmem(s, n, "<|", 2) == NULL) {
        /* a plain story: prose ending with one newline, no braces */
        if (s[n - 1] != '\n' || memchr(s, '{', n) || memchr(s, '}', n) || memchr(s, '\n', n - 1)) {
            *why = "malformed plain story";
            return -1;
        }
        return 0;
    }
    return parse_chatml(s, n, 0, m, why) < 0 ? -1 : 1;
}

/* ------------------------------------------------------------------------ */

static void test_split_rule(void)
{
    CHECK(gd_fnv1a64_lower("") == 0xcbf29ce484222325ull, "offset basis");
    CHECK(gd_fnv1a64_lower("a") == 0xaf63dc4c8601ec8cull, "FNV-1a-64(a)");
    CHECK(gd_fnv1a64_lower("foobar") == 0x85944171f73967e8ull, "FNV-1a-64(foobar)");
    CHECK(gd_fnv1a64_lower("FooBAR") == 0x85944171f73967e8ull, "lower-cased first");
    CHECK(!gd_held_out("baker"), "baker is a training job");
    CHECK(gd_held_out("brewer"), "brewer is held out");
    CHECK(gd_held_out("Brewer"), "case does not matter");
    CHECK(!gd_held_out("teal") && gd_held_out("green"), "colours");
    CHECK(!gd_held_out("Lyra"), "Lyra");
    int jobs = 0, colours = 0, pets = 0;
    for (size_t i = 0; i < GD_COUNT(gd_jobs); i++)
        jobs += gd_held_out(gd_jobs[i]);
    for (size_t i = 0; i < GD_COUNT(gd_colours); i++)
        colours += gd_held_out(gd_colours[i]);
    for (size_t i = 0; i < GD_COUNT(gd_pet_kinds); i++)
        pets += gd_held_out(gd_pet_kinds[i]);
    CHECK(GD_COUNT(gd_jobs) == 224 && jobs == 40, "%zu jobs, %d held out", GD_COUNT(gd_jobs),
          jobs);
    CHECK(GD_COUNT(gd_colours) == 54 && colours == 14, "%d colours held out", colours);
    CHECK(GD_COUNT(gd_pet_kinds) == 40 && pets == 6, "%d pet kinds held out", pets);
}

static gd_gen g1, g2; /* large (the stop-word table): not on the stack */

static void test_determinism(void)
{
    gd_buf a = {0}, b = {0};
    gd_init(&g1, 42, GD_TRAIN);
    gd_init(&g2, 42, GD_TRAIN);
    int rc = 0;
    for (int i = 0; i < 2000; i++) {
        rc |= gd_train_doc(&g1, &a);
        rc |= gd_train_doc(&g2, &b);
    }
    CHECK(rc == 0, "generation failed");
    CHECK(a.n == b.n && a.n > 100000 && memcmp(a.s, b.s, a.n) == 0,
          "same seed, different text (%zu vs %zu bytes)", a.n, b.n);
    gd_buf_clear(&b);
    gd_init(&g2, 43, GD_TRAIN);
    for (int i = 0; i < 2000; i++)
        rc |= gd_train_doc(&g2, &b);
    CHECK(!(a.n == b.n && memcmp(a.s, b.s, a.n) == 0), "seeds 42 and 43 give the same text");

    /* eval items: same seed -> same items; different seed -> different */
    gd_eval_item x = {0}, y = {0};
    int same = 1, differ = 0;
    gd_init(&g1, 7, GD_EVAL);
    gd_init(&g2, 7, GD_EVAL);
    for (int i = 0; i < 300; i++) {
        rc |= gd_eval_item_make(&g1, i, &x);
        rc |= gd_eval_item_make(&g2, i, &y);
        same &= strcmp(x.prefix.s, y.prefix.s) == 0 && strcmp(x.answer, y.answer) == 0;
    }
    gd_init(&g1, 7, GD_EVAL);
    gd_init(&g2, 8, GD_EVAL);
    for (int i = 0; i < 20; i++) {
        rc |= gd_eval_item_make(&g1, i, &x);
        rc |= gd_eval_item_make(&g2, i, &y);
        differ += strcmp(x.prefix.s, y.prefix.s) != 0;
    }
    CHECK(rc == 0, "eval generation failed");
    CHECK(same, "same seed, different eval items");
    CHECK(differ >= 19, "seeds 7 and 8: only %d of 20 items differ", differ);
    gd_eval_item_free(&x);
    gd_eval_item_free(&y);
    gd_buf_free(&a);
    gd_buf_free(&b);
}

/* Value draws: training mode never yields a held-out value, eval mode only
 * held-out ones; the raw generator yields both (about 1 in 5 held out), so
 * the split is really applied; procedural values vary. */
static void test_draws(void)
{
    static const char *const slot_names[GD_NSLOTS] = {"name", "city", "job",
                                                      "pet kind", "pet name", "colour"};
    char v[GD_VAL];
    gd_init(&g1, 1, GD_TRAIN);
    gd_init(&g2, 1, GD_EVAL);
    for (int s = 0; s < GD_NSLOTS; s++) {
        int bad_train = 0, bad_eval = 0, raw_held = 0;
        strset distinct;
        set_init(&distinct, 1u << 18);
        for (int i = 0; i < 100000; i++) {
            gd_draw(&g1, (gd_slot)s, v);
            bad_train += gd_held_out(v);
            set_add(&distinct, v, strlen(v));
            gd_reset_used(&g1);
        }
        for (int i = 0; i < 20000; i++) {
            gd_draw(&g2, (gd_slot)s, v);
            bad_eval += !gd_held_out(v);
            gd_reset_used(&g2);
            gd_raw_value(&g1.rng, (gd_slot)s, v);
            raw_held += gd_held_out(v);
        }
        CHECK(bad_train == 0, "%s: %d held-out values in 100000 training draws", slot_names[s],
              bad_train);
        CHECK(bad_eval == 0, "%s: %d training values in 20000 eval draws", slot_names[s],
              bad_eval);
        /* 20000 raw draws at p ~ 0.2: the count lies in [3000, 5000]
         * unless the rule is broken (sd ~ 57, but list values are not
         * uniform over the hash so allow a wide band) */
        CHECK(raw_held > 2000 && raw_held < 6000, "%s: %d of 20000 raw draws held out",
              slot_names[s], raw_held);
        size_t want = (s == GD_NAME || s == GD_CITY) ? 50000 : s == GD_PET_NAME ? 10000 : 30;
        CHECK(distinct.n >= want, "%s: only %zu distinct values in 100000 draws", slot_names[s],
              distinct.n);
        set_free(&distinct);
    }
}

/* Adds every word of the text to the set, and every pair of adjacent
 * words ("new myport") whose first word is in `firsts`. */
static void add_words(strset *t, const strset *firsts, const char *s, size_t n)
{
    const char *p = s, *stop = s + n, *prev = NULL;
    size_t prev_len = 0;
    char pair[256];
    while (p < stop) {
        while (p < stop && !isalpha((unsigned char)*p)) {
            if (*p != ' ' && *p != '\'')
                prev = NULL; /* pairs only across one space */
            p++;
        }
        const char *w = p;
        while (p < stop && isalpha((unsigned char)*p))
            p++;
        size_t wl = (size_t)(p - w);
        if (!wl)
            break;
        set_add(t, w, wl);
        if (prev && w - (prev + prev_len) == 1 && prev_len + 1 + wl < sizeof pair &&
            set_has(firsts, prev, prev_len)) {
            memcpy(pair, prev, prev_len);
            pair[prev_len] = ' ';
            memcpy(pair + prev_len + 1, w, wl);
            set_add(t, pair, prev_len + 1 + wl);
        }
        prev = w;
        prev_len = wl;
    }
}

static void test_training_text(void)
{
    /* the values of 300 evaluation items */
    strset eval_values;
    set_init(&eval_values, 1u << 13);
    gd_eval_item it = {0};
    int not_held = 0, rc = 0;
    gd_init(&g1, 1, GD_EVAL);
    for (int i = 0; i < 300; i++) {
        gd_reset_used(&g1);
        rc |= gd_eval_item_make(&g1, i, &it);
        for (int u = 0; u < g1.n_used; u++) {
            not_held += !gd_held_out(g1.used[u]);
            set_add(&eval_values, g1.used[u], strlen(g1.used[u]));
        }
    }
    gd_eval_item_free(&it);
    CHECK(rc == 0, "eval generation failed");
    CHECK(not_held == 0, "%d training values in evaluation dialogues", not_held);
    CHECK(eval_values.n > 1000, "only %zu distinct evaluation values", eval_values.n);
    /* first words of the multi-word values ("New Myport", "chimney sweep") */
    strset firsts;
    set_init(&firsts, 1024);
    for (size_t i = 0; i < eval_values.cap; i++) {
        const char *v = eval_values.slot[i], *sp;
        if (v && (sp = strchr(v, ' ')) != NULL)
            set_add(&firsts, v, (size_t)(sp - v));
    }

    /* 100,000 training documents: each well-formed; their words and word
     * pairs collected */
    strset words;
    set_init(&words, 1u << 21);
    gd_buf b = {0};
    gd_init(&g2, 1, GD_TRAIN);
    int bad = 0, plain = 0, chat = 0, persona = 0, user_facts = 0;
    size_t bytes = 0;
    const char *why = "";
    for (int i = 0; i < 100000; i++) {
        gd_buf_clear(&b);
        rc |= gd_train_doc(&g2, &b);
        static const char eot[] = "<|endoftext|>\n";
        size_t n = b.n;
        if (n < sizeof eot - 1 || strcmp(b.s + n - (sizeof eot - 1), eot) != 0) {
            bad++;
            continue;
        }
        n -= sizeof eot - 1;
        const char *w = "";
        int kind = check_doc(b.s, n, &w);
        if (kind < 0) {
            if (bad++ < 3)
                fprintf(stderr, "document %d: %s:\n%.*s\n", i, w, (int)n, b.s);
            why = w;
        }
        plain += kind == 0;
        chat += kind == 1;
        persona += kind == 1 && strstr(b.s, "<|im_start|>system\nYou are a") == NULL &&
                   strstr(b.s, "<|im_start|>system\nBe helpful") == NULL;
        user_facts += kind == 1 && (strstr(b.s, "My name is") || strstr(b.s, "I live in"));
        bytes += b.n;
        add_words(&words, &firsts, b.s, n);
    }
    gd_buf_free(&b);
    CHECK(rc == 0, "training generation failed");
    CHECK(bad == 0, "%d malformed training documents (last: %s)", bad, why);
    /* mix: 20% stories of which 1/3 plain; the rest dialogues */
    CHECK(plain > 5000 && plain < 8500, "%d plain stories in 100000", plain);
    CHECK(chat > 90000, "%d ChatML documents", chat);
    CHECK(persona > 30000, "%d persona dialogues", persona);
    CHECK(user_facts > 20000, "%d dialogues with user facts", user_facts);
    CHECK(bytes > 30000000, "only %zu bytes", bytes);
    CHECK(words.n > 100000 && 2 * words.n < words.cap, "%zu distinct words and pairs",
          words.n);

    /* no evaluation value occurs in the training text */
    int leaked = 0;
    for (size_t i = 0; i < eval_values.cap; i++) {
        const char *v = eval_values.slot[i];
        if (v && set_has(&words, v, strlen(v))) {
            if (leaked++ < 10)
                fprintf(stderr, "held-out value in training text: %s\n", v);
        }
    }
    CHECK(leaked == 0, "%d of %zu evaluation values occur in 100000 training documents",
          leaked, eval_values.n);
    /* the check can fail: a training value is found */
    CHECK(set_has(&words, "baker", 5) && set_has(&words, "teal", 4), "word set incomplete");
    printf("training text: %zu bytes, %zu distinct words and pairs; %zu evaluation values\n",
           bytes, words.n, eval_values.n);
    set_free(&words);
    set_free(&firsts);
    set_free(&eval_values);
}

static void test_eval_items(void)
{
    gd_eval_item it = {0};
    msg m[MAX_MSGS];
    int rc = 0, malformed = 0, unanswerable = 0, ambiguous = 0, in_question = 0, no_ref = 0;
    int count[3][2] = {{0}}, turns[3] = {0};
    strset names;
    set_init(&names, 1024);
    gd_init(&g1, 1, GD_EVAL);
    for (int i = 0; i < 300; i++) {
        rc |= gd_eval_item_make(&g1, i, &it);
        const char *why = "";
        int k = parse_chatml(it.prefix.s, it.prefix.n, 1, m, &why);
        if (k < 0) {
            if (malformed++ < 3)
                fprintf(stderr, "item %d: %s:\n%s\n", i, why, it.prefix.s);
            continue;
        }
        int kind = strcmp(it.kind, "name") == 0 ? 0 : strcmp(it.kind, "city") == 0 ? 1 : 2;
        int user = strcmp(it.source, "user") == 0;
        count[kind][user]++;
        CHECK(kind == i % 3, "item %d: kind %s", i, it.kind);
        if (it.turns_before >= 0 && it.turns_before < 3)
            turns[it.turns_before]++;
        /* the fact is stated where the source says: in the system prompt
         * (persona) or in the first user message */
        const msg *src = user ? &m[1] : &m[0];
        if (!has_word(src->content, src->len, it.answer))
            unanswerable++;
        /* and only there among the other party's messages: a persona
         * answer is never in a user message, a user answer never in the
         * system prompt */
        for (int j = user ? 0 : 1; j < k; j += user ? k : 2)
            if (has_word(m[j].content, m[j].len, it.answer))
                ambiguous++;
        /* the question does not contain the answer */
        if (has_word(m[k - 1].content, m[k - 1].len, it.answer))
            in_question++;
        if (!has_word(it.reference.s, it.reference.n, it.answer))
            no_ref++;
        if (kind == 0)
            set_add(&names, it.answer, strlen(it.answer));
    }
    gd_eval_item_free(&it);
    CHECK(rc == 0, "eval generation failed");
    CHECK(malformed == 0, "%d malformed prefixes", malformed);
    CHECK(unanswerable == 0, "%d answers not stated in their prefix", unanswerable);
    CHECK(ambiguous == 0, "%d answers also stated by the other party", ambiguous);
    CHECK(in_question == 0, "%d questions contain their answer", in_question);
    CHECK(no_ref == 0, "%d references without the answer", no_ref);
    for (int kind = 0; kind < 3; kind++)
        CHECK(count[kind][0] == 75 && count[kind][1] == 25, "kind %d: %d persona, %d user",
              kind, count[kind][0], count[kind][1]);
    CHECK(turns[0] > 50 && turns[1] > 50 && turns[2] > 50, "turns before: %d %d %d", turns[0],
          turns[1], turns[2]);
    CHECK(names.n >= 95, "only %zu distinct names in 100 name items", names.n);
    set_free(&names);
}

/* ------------------------------------------------------------------------ */
/* The program                                                               */
/* ------------------------------------------------------------------------ */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    gd_buf b = {0};
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        gd_put(&b, chunk, r);
    fclose(f);
    if (!b.s)
        gd_put(&b, "", 0);
    *len = b.n;
    return b.s;
}

static int run(const char *cmd)
{
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_program(void)
{
    const char *bin = KVL_BINARY_DIR "/tools/gen_dialogues";
    if (!kvt_file_exists(bin)) {
        CHECK(0, "%s not built", bin);
        return;
    }
    const char *t1 = kvt_temp_path(".txt"), *t2 = kvt_temp_path(".txt");
    const char *ev = kvt_temp_path(".jsonl"), *sp = kvt_temp_path(".txt");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' train --n 300 --seed 7 --out '%s'", bin, t1);
    CHECK(run(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "'%s' train --seed 7 --n 300 > '%s'", bin, t2);
    CHECK(run(cmd) == 0, "%s", cmd);
    size_t n1 = 0, n2 = 0;
    char *a = slurp(t1, &n1), *b = slurp(t2, &n2);
    CHECK(a && b && n1 == n2 && n1 > 0 && memcmp(a, b, n1) == 0, "two runs differ");
    /* equal to the functions' output for the same seed */
    gd_buf ref = {0};
    gd_init(&g1, 7, GD_TRAIN);
    for (int i = 0; i < 300; i++)
        gd_train_doc(&g1, &ref);
    CHECK(a && ref.n == n1 && memcmp(ref.s, a, n1) == 0, "program and functions differ");
    gd_buf_free(&ref);
    free(a);
    free(b);

    snprintf(cmd, sizeof cmd, "'%s' eval --n 240 --seed 3 --out '%s'", bin, ev);
    CHECK(run(cmd) == 0, "%s", cmd);
    size_t ne = 0;
    char *e = slurp(ev, &ne);
    int lines = 0, ok = 0;
    gd_eval_item it = {0};
    gd_init(&g1, 3, GD_EVAL);
    for (char *p = e, *nl; p && (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        json_error_t jerr;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &jerr);
        gd_eval_item_make(&g1, lines, &it);
        const char *prefix = json_string_value(json_object_get(j, "prefix"));
        const char *answer = json_string_value(json_object_get(j, "answer"));
        const char *kind = json_string_value(json_object_get(j, "kind"));
        const char *source = json_string_value(json_object_get(j, "source"));
        json_int_t id = json_integer_value(json_object_get(j, "id"));
        ok += prefix && answer && kind && source && id == lines &&
              strcmp(prefix, it.prefix.s) == 0 && strcmp(answer, it.answer) == 0 &&
              strcmp(kind, it.kind) == 0 && strcmp(source, it.source) == 0 &&
              json_is_string(json_object_get(j, "reference"));
        json_decref(j);
        lines++;
    }
    gd_eval_item_free(&it);
    free(e);
    CHECK(lines == 240 && ok == 240, "eval JSONL: %d lines, %d matching the functions", lines,
          ok);

    snprintf(cmd, sizeof cmd, "'%s' split brewer baker > '%s'", bin, sp);
    CHECK(run(cmd) == 0, "%s", cmd);
    size_t ns = 0;
    char *s = slurp(sp, &ns);
    CHECK(s && strcmp(s, "brewer\theld-out\nbaker\ttrain\n") == 0, "split printed '%s'",
          s ? s : "(nothing)");
    free(s);
    snprintf(cmd, sizeof cmd, "'%s' train --n -3 2>/dev/null", bin);
    CHECK(run(cmd) == 2, "negative --n accepted");
    snprintf(cmd, sizeof cmd, "'%s' sample 2>/dev/null", bin);
    CHECK(run(cmd) == 2, "unknown command accepted");
    snprintf(cmd, sizeof cmd, "'%s' train --n 1 --out /nonexistent/dir/x 2>/dev/null", bin);
    CHECK(run(cmd) == 1, "unwritable output accepted");
}

int main(void)
{
    test_split_rule();
    test_determinism();
    test_draws();
    test_training_text();
    test_eval_items();
    test_program();
    return kvt_finish();
}
