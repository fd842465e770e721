/*
 * gen_dialogues: seeded generator of the demo models' dialogue data
 * (issue 4; the design is in docs/demo-models.md).
 *
 *   gen_dialogues train [--n N] [--seed S] [--out FILE]
 *       N training documents: ChatML dialogues (persona system prompts,
 *       user-stated facts, questions about them 1-3 turns later, answers
 *       that use them, distractor facts) and story continuations (in ChatML
 *       or as plain prose).  Every document is followed by "<|endoftext|>"
 *       and a newline.
 *   gen_dialogues eval [--n N] [--seed S] [--out FILE]
 *       N evaluation items as JSON lines: {"id", "kind" (name|city|job),
 *       "source" (system|user), "turns_before", "prefix" (the conversation
 *       up to and including "<|im_start|>assistant\n"), "answer" (the value
 *       asked for), "reference" (one answer sentence)}.
 *   gen_dialogues split VALUE...
 *       prints "train" or "held-out" for each value (the split rule below).
 *
 * Split rule: a value (a name, city, job, pet kind, pet name or colour) is
 * HELD OUT when FNV-1a-64 of its ASCII-lowercased bytes is 0 mod 5 (for a
 * city, without its place prefix "Port ", "New ", ...).  Every
 * value is drawn through gd_draw(), which redraws until the value is on the
 * side of the split that the mode asks for: training documents hold only
 * training values, evaluation items only held-out ones, so no held-out
 * value can appear in the training data.  Names, cities and pet names are
 * procedural (random syllables), so the only way to answer a question about
 * them is to copy from the context; jobs, pet kinds and colours come from
 * fixed word lists split by the same rule (and in training, half of the
 * jobs are procedural words like "velomar" or "torvasmith", so the job slot
 * too is learned as a copy).
 *
 * The output depends only on the seed, the mode and N (integer arithmetic
 * only; no global state: each gd_gen holds its own random state).  The
 * generator functions have external linkage so that
 * tests/tools/test_gen_dialogues.c can include this file with
 * GD_NO_MAIN defined.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GD_VAL 48      /* longest value + NUL */
#define GD_MAX_USED 64 /* values recorded per document */

/* ------------------------------------------------------------------------ */
/* Random numbers: xoshiro256** seeded by splitmix64                        */
/* ------------------------------------------------------------------------ */

typedef struct gd_rng {
    uint64_t s[4];
} gd_rng;

static uint64_t gd_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t gd_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t gd_next(gd_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = gd_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = gd_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n) (n > 0), by the multiply-shift of the top 32 bits. */
static uint32_t gd_below(gd_rng *r, uint32_t n)
{
    return (uint32_t)(((gd_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* True with probability pct / 100. */
static int gd_chance(gd_rng *r, uint32_t pct)
{
    return gd_below(r, 100) < pct;
}

#define GD_PICK(r, arr) ((arr)[gd_below((r), (uint32_t)(sizeof(arr) / sizeof((arr)[0])))])
#define GD_COUNT(arr) (sizeof(arr) / sizeof((arr)[0]))

/* ------------------------------------------------------------------------ */
/* The split rule                                                            */
/* ------------------------------------------------------------------------ */

uint64_t gd_fnv1a64_lower(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

int gd_held_out(const char *value); /* below the word lists */

/* ------------------------------------------------------------------------ */
/* Word lists (split by gd_held_out like every other value)                 */
/* ------------------------------------------------------------------------ */

static const char *const gd_jobs[] = {
    "baker", "carpenter", "teacher", "nurse", "doctor", "farmer",
    "fisherman", "blacksmith", "tailor", "potter", "weaver", "miller",
    "brewer", "butcher", "cobbler", "mason", "plumber", "electrician",
    "architect", "engineer", "painter", "sculptor", "musician", "singer",
    "dancer", "actor", "writer", "poet", "journalist", "editor",
    "librarian", "lawyer", "judge", "banker", "accountant", "clerk",
    "cashier", "merchant", "shopkeeper", "grocer", "florist", "gardener",
    "chef", "cook", "waiter", "bartender", "barber", "hairdresser",
    "jeweller", "watchmaker", "locksmith", "glassblower", "bookbinder",
    "printer", "photographer", "pilot", "sailor", "captain", "soldier",
    "firefighter", "detective", "guard", "postman", "courier", "driver",
    "mechanic", "welder", "miner", "lumberjack", "shepherd", "beekeeper",
    "vintner", "cheesemaker", "chemist", "pharmacist", "dentist", "surgeon",
    "veterinarian", "astronomer", "physicist", "biologist", "botanist",
    "geologist", "historian", "archaeologist", "mathematician", "economist",
    "philosopher", "professor", "tutor", "scientist", "programmer",
    "designer", "illustrator", "cartographer", "translator", "interpreter",
    "surveyor", "navigator", "diplomat", "politician", "mayor", "priest",
    "monk", "midwife", "therapist", "psychologist", "counsellor", "coach",
    "athlete", "jockey", "zookeeper", "ranger", "forester", "hunter",
    "trapper", "tanner", "saddler", "cooper", "wheelwright", "thatcher",
    "roofer", "glazier", "plasterer", "tiler", "upholsterer", "janitor",
    "caretaker", "housekeeper", "butler", "nanny", "secretary",
    "receptionist", "manager", "auditor", "broker", "auctioneer",
    "antiquarian", "curator", "archivist", "calligrapher", "engraver",
    "goldsmith", "silversmith", "clockmaker", "toymaker", "puppeteer",
    "magician", "juggler", "acrobat", "clown", "comedian", "composer",
    "conductor", "organist", "pianist", "violinist", "drummer", "guitarist",
    "harpist", "flautist", "cellist", "novelist", "playwright", "animator",
    "sommelier", "optician", "paramedic", "radiologist", "nutritionist",
    "stonemason", "bricklayer", "stevedore", "fishmonger", "greengrocer",
    "ironmonger", "haberdasher", "milliner", "dressmaker", "seamstress",
    "dyer", "ropemaker", "sailmaker", "shipwright", "boatbuilder",
    "ferryman", "innkeeper", "landlord", "gamekeeper", "falconer",
    "herbalist",
    "apothecary", "alchemist", "scribe", "herald", "courtier", "steward",
    "chandler", "cutler", "fletcher", "bowyer", "armourer", "farrier",
    "tinker", "peddler", "carter", "drover", "ploughman", "reaper",
    "glover", "hatter", "furrier", "lacemaker", "embroiderer", "quilter",
    "typesetter", "cryptographer", "statistician", "actuary", "lamplighter",
    "chimney sweep", "storyteller", "mapmaker", "rigger",
};

static const char *const gd_pet_kinds[] = {
    "cat", "dog", "parrot", "rabbit", "hamster", "tortoise", "goldfish",
    "ferret", "horse", "lizard", "owl", "canary", "pony", "goat",
    "hedgehog", "guinea pig", "snake", "frog", "duck", "hen", "pig",
    "donkey", "mouse", "rat", "gecko", "turtle", "cockatoo", "budgie",
    "iguana", "alpaca", "lamb", "crow", "raven", "beetle", "crab",
    "chinchilla", "gerbil", "axolotl", "newt", "magpie",
};

static const char *const gd_colours[] = {
    "red", "blue", "green", "yellow", "orange", "purple", "violet", "pink",
    "teal", "turquoise", "indigo", "crimson", "scarlet", "maroon", "amber",
    "gold", "silver", "grey", "black", "white", "brown", "beige", "ivory",
    "navy", "azure", "cyan", "magenta", "lavender", "lilac", "mauve",
    "olive", "lime", "mint", "emerald", "jade", "coral", "salmon", "peach",
    "apricot", "ochre", "rust", "copper", "bronze", "charcoal", "sapphire",
    "ruby", "cobalt", "cerulean", "plum", "burgundy", "tan", "khaki",
    "saffron", "cream",
};

/* Syllable parts for names, places and pet names (repeats weight them). */
static const char *const gd_onsets[] = {
    "b", "br", "c", "d", "dr", "f", "g", "h", "j", "k", "l", "l", "m", "m",
    "n", "n", "p", "qu", "r", "r", "s", "s", "sh", "st", "t", "t", "th",
    "tr", "v", "v", "w", "z", "ch", "gr", "kr",
};
static const char *const gd_vowels[] = {
    "a", "a", "a", "a", "e", "e", "e", "i", "i", "i", "o", "o", "o", "u",
    "y", "ai", "ei", "ou", "ia", "ae",
};
static const char *const gd_codas[] = {
    "", "", "", "", "", "n", "r", "l", "s", "th", "m", "nd", "rk", "x", "v",
    "sh", "lt", "rn", "ss",
};
static const char *const gd_mid_codas[] = {"n", "r", "l", "s", "m"};
static const char *const gd_place_suffixes[] = {
    "ford", "haven", "mouth", "vale", "wick", "by", "holm", "stead", "gard",
    "mere", "ton", "burg", "ridge", "moor", "fell", "crest", "port", "field",
    "brook", "bridge",
};
static const char *const gd_place_prefixes[] = {
    "Port ", "New ", "Old ", "North ", "East ", "Lake ", "Fort ", "Saint ",
    "West ", "South ", "Upper ", "Lower ",
};
static const size_t gd_n_place_prefixes = GD_COUNT(gd_place_prefixes);
static const char *const gd_job_suffixes[] = {
    "smith", "wright", "monger", "maker", "keeper", "binder", "er", "ist",
    "ward", "herd",
};

/* The split rule.  A place prefix ("Port ", "New ", ...) is skipped, so
 * that "Port Lae" is on the same side as "Lae" (else a held-out "Lae"
 * could appear inside a training "Port Lae"). */
int gd_held_out(const char *value)
{
    for (size_t i = 0; i < gd_n_place_prefixes; i++) {
        size_t n = strlen(gd_place_prefixes[i]);
        if (strncmp(value, gd_place_prefixes[i], n) == 0 && value[n]) {
            value += n;
            break;
        }
    }
    return gd_fnv1a64_lower(value) % 5 == 0;
}

/* ------------------------------------------------------------------------ */
/* Text buffer                                                              */
/* ------------------------------------------------------------------------ */

typedef struct gd_buf {
    char *s;
    size_t n, cap;
    int oom; /* set once an allocation failed; later appends do nothing */
} gd_buf;

void gd_buf_free(gd_buf *b)
{
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
    b->oom = 0;
}

void gd_buf_clear(gd_buf *b)
{
    b->n = 0;
    if (b->s)
        b->s[0] = '\0';
}

static void gd_put(gd_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void gd_puts(gd_buf *b, const char *s)
{
    gd_put(b, s, strlen(s));
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

typedef enum gd_mode { GD_TRAIN = 0, GD_EVAL = 1 } gd_mode;

typedef enum gd_slot {
    GD_NAME,
    GD_CITY,
    GD_JOB,
    GD_PET_KIND,
    GD_PET_NAME,
    GD_COLOUR,
    GD_NSLOTS
} gd_slot;

/* The lower-case words of the generator's fixed text (templates, small
 * talk, lists): a procedural value equal to one of them ("The", "Math") is
 * redrawn, so a held-out value can never turn up in training text as a
 * template word. Open addressing; words longer than 15 letters are not
 * needed (procedural words are shorter). */
#define GD_STOP_SLOTS 4096
#define GD_STOP_LEN 16

typedef struct gd_gen {
    gd_rng rng;
    gd_mode mode;
    char stop[GD_STOP_SLOTS][GD_STOP_LEN];
    /* every value drawn since the last gd_reset_used(): for tests */
    char used[GD_MAX_USED][GD_VAL];
    int n_used;
} gd_gen;

static uint64_t gd_word_hash(const char *w, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)w[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Is the lower-case word w[0..n) in the stop set? */
static int gd_stop_has(const gd_gen *g, const char *w, size_t n)
{
    if (n == 0 || n >= GD_STOP_LEN)
        return 0;
    size_t i = (size_t)(gd_word_hash(w, n) % GD_STOP_SLOTS);
    while (g->stop[i][0]) {
        if (strlen(g->stop[i]) == n && memcmp(g->stop[i], w, n) == 0)
            return 1;
        i = (i + 1) % GD_STOP_SLOTS;
    }
    return 0;
}

/* Adds every word (run of ASCII letters, lower-cased) of s. */
static void gd_stop_add_text(gd_gen *g, const char *s)
{
    while (s && *s) {
        while (*s && !isalpha((unsigned char)*s))
            s++;
        char w[GD_STOP_LEN];
        size_t n = 0;
        while (isalpha((unsigned char)*s)) {
            if (n < GD_STOP_LEN)
                w[n] = (char)tolower((unsigned char)*s);
            n++;
            s++;
        }
        if (n == 0 || n >= GD_STOP_LEN || gd_stop_has(g, w, n))
            continue;
        size_t i = (size_t)(gd_word_hash(w, n) % GD_STOP_SLOTS);
        while (g->stop[i][0])
            i = (i + 1) % GD_STOP_SLOTS;
        memcpy(g->stop[i], w, n);
        g->stop[i][n] = '\0';
    }
}

static void gd_stop_add_list(gd_gen *g, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gd_stop_add_text(g, list[i]);
}

static void gd_stop_build(gd_gen *g);

void gd_init(gd_gen *g, uint64_t seed, gd_mode mode)
{
    uint64_t x = seed ^ (mode == GD_EVAL ? 0x5EEDE7A1D00D5EEDull : 0);
    for (int i = 0; i < 4; i++)
        g->rng.s[i] = gd_splitmix64(&x);
    g->mode = mode;
    g->n_used = 0;
    memset(g->stop, 0, sizeof g->stop);
    gd_stop_build(g);
}

/* Is a procedural value acceptable: not a word of the fixed text? */
static int gd_fresh(const gd_gen *g, const char *v)
{
    char w[GD_STOP_LEN];
    size_t n = strlen(v);
    if (n >= GD_STOP_LEN)
        return 1;
    for (size_t i = 0; i < n; i++)
        w[i] = (char)tolower((unsigned char)v[i]);
    return !gd_stop_has(g, w, n);
}

void gd_reset_used(gd_gen *g)
{
    g->n_used = 0;
}

static void gd_cap(char *s)
{
    if (s[0] >= 'a' && s[0] <= 'z')
        s[0] = (char)(s[0] - 'a' + 'A');
}

static void gd_cat(char *out, const char *s)
{
    size_t n = strlen(out), m = strlen(s);
    if (n + m >= GD_VAL)
        m = GD_VAL - 1 - n;
    memcpy(out + n, s, m);
    out[n + m] = '\0';
}

/* A word of nsyl random syllables (lower case): the first syllable has
 * no onset 20% of the time, a coda ends the last syllable (or none) and
 * 15% of the inner ones. */
static void gd_word(gd_rng *r, int nsyl, char *out)
{
    out[0] = '\0';
    for (int i = 0; i < nsyl; i++) {
        const char *on = (i == 0 && gd_chance(r, 20)) ? "" : GD_PICK(r, gd_onsets);
        const char *vw = GD_PICK(r, gd_vowels);
        /* "qu" followed by "u..." reads badly */
        if (strcmp(on, "qu") == 0 && vw[0] == 'u')
            vw = "a";
        gd_cat(out, on);
        gd_cat(out, vw);
        if (i == nsyl - 1)
            gd_cat(out, GD_PICK(r, gd_codas));
        else if (gd_chance(r, 15))
            gd_cat(out, GD_PICK(r, gd_mid_codas));
    }
}

/* One raw value for a slot, ignoring the split (see gd_draw). */
void gd_raw_value(gd_rng *r, gd_slot slot, char *out)
{
    char w[GD_VAL];
    switch (slot) {
    case GD_NAME:
        do
            gd_word(r, gd_chance(r, 60) ? 2 : 3, out);
        while (strlen(out) < 4 || strlen(out) > 10);
        gd_cap(out);
        break;
    case GD_CITY:
        out[0] = '\0';
        if (gd_chance(r, 15))
            gd_cat(out, GD_PICK(r, gd_place_prefixes));
        do
            gd_word(r, gd_chance(r, 50) ? 1 : 2, w);
        while (strlen(w) < 3 || strlen(w) > 8);
        if (gd_chance(r, 55))
            gd_cat(w, GD_PICK(r, gd_place_suffixes));
        gd_cap(w);
        gd_cat(out, w);
        break;
    case GD_JOB:
        out[0] = '\0';
        gd_cat(out, GD_PICK(r, gd_jobs));
        break;
    case GD_PET_KIND:
        out[0] = '\0';
        gd_cat(out, GD_PICK(r, gd_pet_kinds));
        break;
    case GD_PET_NAME:
        do
            gd_word(r, gd_chance(r, 50) ? 1 : 2, out);
        while (strlen(out) < 3 || strlen(out) > 7);
        gd_cap(out);
        break;
    case GD_COLOUR:
    default:
        out[0] = '\0';
        gd_cat(out, GD_PICK(r, gd_colours));
        break;
    }
}

/* A procedural job word, training mode only: half the time a random word
 * ("velomar"), else a random stem and a job suffix ("torvasmith").  The
 * plain words make the job slot a pure copy; the suffixed ones look like
 * real job words (smoke run: with suffixed words alone the models copied a
 * held-out job's first tokens and then added a suffix: "driverer"). */
static void gd_nonce_job(gd_rng *r, char *out)
{
    if (gd_chance(r, 50)) {
        do
            gd_word(r, gd_chance(r, 50) ? 2 : 3, out);
        while (strlen(out) < 4 || strlen(out) > 10);
        return;
    }
    do
        gd_word(r, 2, out);
    while (strlen(out) < 3 || strlen(out) > 8);
    gd_cat(out, GD_PICK(r, gd_job_suffixes));
}

/* A value for the slot on the mode's side of the split, recorded in
 * g->used.  In training mode half of the jobs are procedural words. */
void gd_draw(gd_gen *g, gd_slot slot, char *out)
{
    int want_held = g->mode == GD_EVAL;
    for (;;) {
        int procedural = slot == GD_NAME || slot == GD_CITY || slot == GD_PET_NAME;
        if (slot == GD_JOB && !want_held && gd_chance(&g->rng, 50)) {
            gd_nonce_job(&g->rng, out);
            procedural = 1;
        } else {
            gd_raw_value(&g->rng, slot, out);
        }
        if (gd_held_out(out) == want_held && (!procedural || gd_fresh(g, out)))
            break;
    }
    if (g->n_used < GD_MAX_USED) {
        memcpy(g->used[g->n_used], out, GD_VAL);
        g->n_used++;
    }
}

/* ------------------------------------------------------------------------ */
/* Characters and template filling                                           */
/* ------------------------------------------------------------------------ */

/* A set of facts about one character (the assistant's persona, the user,
 * or the user's friend). */
typedef struct gd_person {
    char v[GD_NSLOTS][GD_VAL];
} gd_person;

/* Draws a person whose values all differ from those of the persons in
 * `others` (so that every question has exactly one answer). */
static void gd_draw_person(gd_gen *g, gd_person *p, const gd_person *const *others,
                           int n_others)
{
    for (int s = 0; s < GD_NSLOTS; s++) {
        int clash;
        do {
            gd_draw(g, (gd_slot)s, p->v[s]);
            clash = 0;
            for (int o = 0; o < n_others; o++)
                for (int t = 0; t < GD_NSLOTS; t++)
                    if (strcmp(others[o]->v[t], p->v[s]) == 0)
                        clash = 1;
            /* a pet called like its owner is confusing too */
            if (s == GD_PET_NAME && strcmp(p->v[GD_PET_NAME], p->v[GD_NAME]) == 0)
                clash = 1;
        } while (clash);
    }
}

static const char *gd_article(const char *word)
{
    return strchr("aeiouAEIOU", word[0]) && word[0] ? "an" : "a";
}

/* Template filling: "{key}" is replaced by a value.  Keys, with prefix ""
 * for the assistant's persona, "u" for the user and "f" for the friend:
 *   name city job ajob ("a baker") pet ajpet ("a cat") petname colour
 * Returns 0, or -1 for an unknown key (a bug in a template). */
typedef struct gd_ctx {
    const gd_person *who[3]; /* persona, user, friend; any may be NULL */
} gd_ctx;

static int gd_lookup(const gd_ctx *c, const char *key, size_t len, gd_buf *out)
{
    int w = 0; /* no persona key starts with 'u' or 'f' */
    if (len > 1 && key[0] == 'u') {
        w = 1, key++, len--;
    } else if (len > 1 && key[0] == 'f') {
        w = 2, key++, len--;
    }
    const gd_person *p = c->who[w];
    if (!p)
        return -1;
#define GD_KEY(k) (len == sizeof(k) - 1 && memcmp(key, k, len) == 0)
    if (GD_KEY("name"))
        gd_puts(out, p->v[GD_NAME]);
    else if (GD_KEY("city"))
        gd_puts(out, p->v[GD_CITY]);
    else if (GD_KEY("job"))
        gd_puts(out, p->v[GD_JOB]);
    else if (GD_KEY("ajob")) {
        gd_puts(out, gd_article(p->v[GD_JOB]));
        gd_puts(out, " ");
        gd_puts(out, p->v[GD_JOB]);
    } else if (GD_KEY("pet"))
        gd_puts(out, p->v[GD_PET_KIND]);
    else if (GD_KEY("apet")) {
        gd_puts(out, gd_article(p->v[GD_PET_KIND]));
        gd_puts(out, " ");
        gd_puts(out, p->v[GD_PET_KIND]);
    } else if (GD_KEY("petname"))
        gd_puts(out, p->v[GD_PET_NAME]);
    else if (GD_KEY("colour"))
        gd_puts(out, p->v[GD_COLOUR]);
    else
        return -1;
#undef GD_KEY
    return 0;
}

static int gd_fill(gd_buf *out, const char *tpl, const gd_ctx *c)
{
    const char *p = tpl;
    while (*p) {
        const char *open = strchr(p, '{');
        if (!open) {
            gd_puts(out, p);
            break;
        }
        gd_put(out, p, (size_t)(open - p));
        const char *close = strchr(open, '}');
        if (!close || gd_lookup(c, open + 1, (size_t)(close - open - 1), out) != 0)
            return -1;
        p = close + 1;
    }
    return 0;
}

/* gd_fill, then a lower-case first letter (a value that starts the text:
 * "{colour}, I love it.") made upper case. */
static int gd_fill_cap(gd_buf *out, const char *tpl, const gd_ctx *c)
{
    size_t start = out->n;
    int rc = gd_fill(out, tpl, c);
    if (!out->oom && out->n > start && out->s[start] >= 'a' && out->s[start] <= 'z')
        out->s[start] = (char)(out->s[start] - 'a' + 'A');
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Phrasings                                                                 */
/* ------------------------------------------------------------------------ */

/* Facts about the assistant, in its system prompt. */
static const char *const gd_sys_fact[GD_NSLOTS][5] = {
    [GD_NAME] = {"You are {name}.", "Your name is {name}.", "You're called {name}.",
                 "Your name is {name}.", "You are {name}."},
    [GD_CITY] = {"You live in {city}.", "Your home is in {city}.", "You come from {city}.",
                 "You live in the city of {city}.", "Home for you is {city}."},
    [GD_JOB] = {"You work as {ajob}.", "You are {ajob} by trade.", "Your job: {job}.",
                "You earn your living as {ajob}.", "You work as {ajob}."},
    [GD_PET_KIND] = {"You have {apet} named {petname}.", "You own {apet} called {petname}.",
                     "Your pet is {apet} named {petname}.",
                     "You keep {apet} whose name is {petname}.",
                     "You have {apet} named {petname}."},
    [GD_PET_NAME] = {NULL, NULL, NULL, NULL, NULL}, /* told with the pet kind */
    [GD_COLOUR] = {"Your favourite colour is {colour}.", "You like the colour {colour} best.",
                   "Your favorite color is {colour}.", "Your favourite colour is {colour}.",
                   "You love the colour {colour}."},
};

/* The same facts as a list ("- Name: Lyra"). */
static const char *const gd_sys_list[GD_NSLOTS] = {
    [GD_NAME] = "Name: {name}",      [GD_CITY] = "Home: {city}",
    [GD_JOB] = "Job: {job}",         [GD_PET_KIND] = "Pet: {apet} named {petname}",
    [GD_PET_NAME] = NULL,            [GD_COLOUR] = "Favourite colour: {colour}",
};

static const char *const gd_sys_intro[] = {
    "", "", "Stay in character. ", "You are a friendly assistant. ",
    "Role-play the following character. ", "Answer briefly and stay in character. ",
};

static const char *const gd_generic_system[] = {
    "You are a helpful assistant.",
    "You are a helpful assistant.",
    "You are a friendly assistant. Answer briefly.",
    "You are a helpful assistant who remembers what the user tells you.",
    "You are a kind and patient assistant.",
    "Be helpful and concise.",
};

/* Questions to the assistant about itself, and its answers. */
static const char *const gd_q_self[GD_NSLOTS][6] = {
    [GD_NAME] = {"What is your name?", "What's your name?", "Who are you?",
                 "May I ask your name?", "Tell me your name.", "What should I call you?"},
    [GD_CITY] = {"Where do you live?", "Which city do you live in?", "Where is your home?",
                 "Where are you from?", "What town do you live in?", "Where is home for you?"},
    [GD_JOB] = {"What do you do for a living?", "What is your job?", "What work do you do?",
                "What's your profession?", "What do you do?", "What is your trade?"},
    [GD_PET_KIND] = {"Do you have a pet?", "Tell me about your pet.", "Do you keep any animals?",
                     "What pet do you have?", "Do you have a pet?", "Tell me about your pet."},
    [GD_PET_NAME] = {"What is your pet's name?", "What's your pet called?",
                     "What did you name your pet?", "What is your pet's name?",
                     "What's your pet called?", "What do you call your pet?"},
    [GD_COLOUR] = {"What's your favourite colour?", "What is your favorite color?",
                   "Which colour do you like best?", "Do you have a favourite colour?",
                   "What's your favourite colour?", "What colour do you like most?"},
};
static const char *const gd_a_self[GD_NSLOTS][5] = {
    [GD_NAME] = {"My name is {name}.", "I'm {name}.", "I am {name}.",
                 "{name}. Nice to meet you!", "You can call me {name}."},
    [GD_CITY] = {"I live in {city}.", "My home is in {city}.", "I'm from {city}.",
                 "{city}.", "I live in {city}, and I like it there."},
    [GD_JOB] = {"I work as {ajob}.", "I'm {ajob}.", "I am {ajob} by trade.",
                "My job? I'm {ajob}.", "I earn my living as {ajob}."},
    [GD_PET_KIND] = {"Yes, I have {apet} named {petname}.", "I have {apet} called {petname}.",
                     "My pet is {apet} named {petname}.", "Yes! {petname}, my {pet}.",
                     "I keep {apet} whose name is {petname}."},
    [GD_PET_NAME] = {"My {pet} is called {petname}.", "{petname}.", "Its name is {petname}.",
                     "I named my {pet} {petname}.", "My pet's name is {petname}."},
    [GD_COLOUR] = {"My favourite colour is {colour}.", "{colour}, I love it.",
                   "I like {colour} best.", "My favorite color is {colour}.",
                   "It's {colour}."},
};

/* Facts the user states about themself. */
static const char *const gd_user_fact[GD_NSLOTS][4] = {
    [GD_NAME] = {"My name is {uname}.", "I'm {uname}.", "Call me {uname}.", "I am {uname}."},
    [GD_CITY] = {"I live in {ucity}.", "I'm from {ucity}.", "My home is in {ucity}.",
                 "I live in {ucity}."},
    [GD_JOB] = {"I work as {uajob}.", "I'm {uajob}.", "I am {uajob} by trade.",
                "I work as {uajob}."},
    [GD_PET_KIND] = {"I have {uapet} named {upetname}.", "I own {uapet} called {upetname}.",
                     "My pet is {uapet} named {upetname}.", "I have {uapet} named {upetname}."},
    [GD_PET_NAME] = {NULL, NULL, NULL, NULL},
    [GD_COLOUR] = {"My favourite colour is {ucolour}.", "I love the colour {ucolour}.",
                   "My favorite color is {ucolour}.", "I like {ucolour} best."},
};
static const char *const gd_user_greet[] = {
    "Hi! ", "Hello. ", "Hey there! ", "Good morning! ", "", "Hi, nice to meet you. ",
};
static const char *const gd_ack_named[] = {
    "Nice to meet you, {uname}!", "Hello, {uname}. How can I help you today?",
    "Thanks for telling me, {uname}.", "It's good to meet you, {uname}.",
    "Hi {uname}! What would you like to talk about?",
};
static const char *const gd_ack_plain[] = {
    "Thanks for telling me. How can I help?", "Good to know! What would you like to talk about?",
    "I'll remember that.", "Thank you for sharing.",
};

/* Questions about the user, and the answers. */
static const char *const gd_q_user[GD_NSLOTS][5] = {
    [GD_NAME] = {"What's my name?", "Do you remember my name?", "What is my name?",
                 "Can you tell me my name?", "What did I say my name was?"},
    [GD_CITY] = {"Where do I live?", "Which city am I from?", "Do you remember where I live?",
                 "Where is my home?", "What town did I say I live in?"},
    [GD_JOB] = {"What do I do for work?", "What is my job?", "Do you remember my job?",
                "What do I do for a living?", "What did I say my work was?"},
    [GD_PET_KIND] = {"What pet do I have?", "Do you remember my pet?", "Tell me about my pet.",
                     "What animal do I keep?", "What pet do I have?"},
    [GD_PET_NAME] = {"What is my pet's name?", "What's my pet called?",
                     "Do you remember my pet's name?", "What is my pet's name?",
                     "What did I name my pet?"},
    [GD_COLOUR] = {"What's my favourite colour?", "What is my favorite color?",
                   "Which colour do I like best?", "Do you remember my favourite colour?",
                   "What's my favourite colour?"},
};
static const char *const gd_a_user[GD_NSLOTS][5] = {
    [GD_NAME] = {"Your name is {uname}.", "You're {uname}.", "You told me your name is {uname}.",
                 "You are {uname}.", "{uname}."},
    [GD_CITY] = {"You live in {ucity}.", "You're from {ucity}.", "You said you live in {ucity}.",
                 "Your home is in {ucity}.", "{ucity}."},
    [GD_JOB] = {"You work as {uajob}.", "You're {uajob}.", "You told me you are {uajob}.",
                "You earn your living as {uajob}.", "You work as {uajob}."},
    [GD_PET_KIND] = {"You have {uapet} named {upetname}.", "You own {uapet} called {upetname}.",
                     "Your pet is {uapet} named {upetname}.", "{upetname}, your {upet}.",
                     "You have {uapet} named {upetname}."},
    [GD_PET_NAME] = {"Your {upet} is called {upetname}.", "{upetname}.",
                     "Its name is {upetname}.", "You named your {upet} {upetname}.",
                     "Your pet's name is {upetname}."},
    [GD_COLOUR] = {"Your favourite colour is {ucolour}.", "You like {ucolour} best.",
                   "You said your favorite color is {ucolour}.", "{ucolour}.",
                   "Your favourite colour is {ucolour}."},
};

/* The user's friend (a third-person distractor). */
static const char *const gd_friend_fact[] = {
    "My friend {fname} lives in {fcity}.", "My friend {fname} is {fajob} in {fcity}.",
    "My neighbour {fname} works as {fajob}.", "My friend {fname} has {fapet} named {fpetname}.",
};
static const char *const gd_q_friend[][2] = {
    {"What is my friend's name?", "Your friend is called {fname}."},
    {"Who is my friend?", "Your friend is {fname}."},
};

/* Small talk that involves no value. */
static const char *const gd_small_talk[][2] = {
    {"How are you today?", "I'm doing well, thank you for asking. How can I help you?"},
    {"What's the weather like?", "I can't see outside, but I hope it's pleasant where you are."},
    {"Can you tell me a joke?",
     "Why did the scarecrow win an award? Because he was outstanding in his field."},
    {"Thank you!", "You're welcome!"},
    {"Do you like music?", "I do. A quiet song can brighten a long day."},
    {"What should I have for dinner?", "Something warm, like a bowl of soup with fresh bread."},
    {"Tell me something interesting.", "Honey never spoils if it is kept sealed."},
    {"Count to five.", "One, two, three, four, five."},
    {"Is it a good day for a walk?", "If it is dry and mild, a walk is always a good idea."},
    {"I'm a bit tired.", "Then rest for a while. A short break can help a lot."},
    {"What day comes after Monday?", "Tuesday comes after Monday."},
    {"Name three animals.", "An elephant, a zebra and a sparrow."},
    {"Say something kind.", "You are doing better than you think."},
    {"What is the capital of France?", "The capital of France is Paris."},
    {"Goodbye for now.", "Goodbye! Come back any time."},
};
/* Text written by the code below outside the tables. */
static const char *const gd_fixed_text[] = {
    "You are playing this character:", "Your character:", "Answer as this character.",
    "Tell me a very short story.", "What is plus?", "endoftext im_start im_end system user assistant",
};
static const char *const gd_numbers[] = {
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
    "seventeen", "eighteen",
};

/* Stories: an opening and continuation sentences; keys as above, the hero
 * being the persona ("name"...) and the other character the user slot. */
static const char *const gd_story_open[] = {
    "Once upon a time, in the town of {city}, there lived {ajob} named {name}.",
    "{name} had lived in {city} for many years, working as {ajob}.",
    "In {city}, everyone knew {name}, the {job} with {apet} called {petname}.",
    "The morning {name} left {city}, the sky was pale and the roads were quiet.",
    "There was once {ajob} called {name} who lived at the edge of {city}.",
    "Long ago, {name} and {apet} named {petname} lived in a small house in {city}.",
};
static const char *const gd_story_more[] = {
    "Every morning, {name} woke early, fed {petname} the {pet}, and set off to work.",
    "Being {ajob} in {city} was not easy, but {name} loved the work.",
    "One day, a stranger named {uname} arrived in {city}. \"Are you {name}?\" asked {uname}. "
    "\"I am,\" said {name}. \"I am the {job} here.\"",
    "{name} painted the front door {colour}, because {colour} had always been "
    "{name}'s favourite colour.",
    "When winter came, {name} and {petname} stayed warm by the fire and told stories about "
    "{city}.",
    "{uname}, who lived in {ucity}, wrote to {name} every spring.",
    "\"{petname}, where are you?\" called {name}, but the {pet} was already asleep.",
    "People came from as far as {ucity} to meet the {job} of {city}.",
    "At night {name} dreamed of {ucity}, where {uname} was waiting.",
    "{name} smiled. There was no better place than {city}, and no better friend than "
    "{petname}.",
};
static const char *const gd_story_request[] = {
    "Continue this story: {opening}",
    "Please continue the story.\n\n{opening}",
    "Here is the start of a story. Continue it.\n\n{opening}",
    "Write what happens next: {opening}",
};
static const char *const gd_story_ask[] = {
    "Write a short story about {ajob} named {name}.",
    "Tell me a story about {name} from {city}.",
    "Write a very short story about {name} and a {pet} called {petname}.",
};

#define GD_ADD1(arr) gd_stop_add_list(g, (arr), GD_COUNT(arr))
#define GD_ADD2(arr)                                                          \
    for (size_t r_ = 0; r_ < GD_COUNT(arr); r_++)                             \
    gd_stop_add_list(g, (arr)[r_], GD_COUNT((arr)[0]))

static void gd_stop_build(gd_gen *g)
{
    GD_ADD1(gd_jobs);
    GD_ADD1(gd_pet_kinds);
    GD_ADD1(gd_colours);
    GD_ADD1(gd_place_suffixes);
    GD_ADD1(gd_place_prefixes);
    GD_ADD1(gd_job_suffixes);
    GD_ADD2(gd_sys_fact);
    GD_ADD1(gd_sys_list);
    GD_ADD1(gd_sys_intro);
    GD_ADD1(gd_generic_system);
    GD_ADD2(gd_q_self);
    GD_ADD2(gd_a_self);
    GD_ADD2(gd_user_fact);
    GD_ADD1(gd_user_greet);
    GD_ADD1(gd_ack_named);
    GD_ADD1(gd_ack_plain);
    GD_ADD2(gd_q_user);
    GD_ADD2(gd_a_user);
    GD_ADD1(gd_friend_fact);
    GD_ADD2(gd_q_friend);
    GD_ADD2(gd_small_talk);
    GD_ADD1(gd_numbers);
    GD_ADD1(gd_story_open);
    GD_ADD1(gd_story_more);
    GD_ADD1(gd_story_request);
    GD_ADD1(gd_story_ask);
    GD_ADD1(gd_fixed_text);
}

#undef GD_ADD1
#undef GD_ADD2

/* ------------------------------------------------------------------------ */
/* Building documents                                                        */
/* ------------------------------------------------------------------------ */

static void gd_open(gd_buf *b, const char *role)
{
    gd_puts(b, "<|im_start|>");
    gd_puts(b, role);
    gd_puts(b, "\n");
}

static void gd_close(gd_buf *b)
{
    gd_puts(b, "<|im_end|>\n");
}

/* A whole message: role, filled template, end. */
static int gd_msg(gd_buf *b, const char *role, const char *tpl, const gd_ctx *c)
{
    gd_open(b, role);
    int rc = gd_fill(b, tpl, c);
    gd_close(b);
    return rc;
}

/* Random permutation of the fact slots that can be stated (no PET_NAME:
 * stated with the pet kind). */
static int gd_fact_order(gd_rng *r, gd_slot *out)
{
    static const gd_slot all[] = {GD_NAME, GD_CITY, GD_JOB, GD_PET_KIND, GD_COLOUR};
    int n = (int)GD_COUNT(all);
    for (int i = 0; i < n; i++)
        out[i] = all[i];
    for (int i = n - 1; i > 0; i--) {
        int j = (int)gd_below(r, (uint32_t)(i + 1));
        gd_slot t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
    return n;
}

/* Which facts a character states: `must` is always included; the others
 * each with probability pct. Returns a bitmask over gd_slot. */
static unsigned gd_pick_facts(gd_rng *r, unsigned must, uint32_t pct)
{
    unsigned m = must;
    for (int s = 0; s < GD_NSLOTS; s++)
        if (s != GD_PET_NAME && gd_chance(r, pct))
            m |= 1u << s;
    if (m & (1u << GD_PET_KIND))
        m |= 1u << GD_PET_NAME;
    return m;
}

/* The persona system prompt stating the facts in mask. */
static int gd_persona_system(gd_gen *g, gd_buf *b, const gd_ctx *c, unsigned mask)
{
    gd_slot order[GD_NSLOTS];
    int n = gd_fact_order(&g->rng, order), rc = 0;
    gd_open(b, "system");
    if (gd_chance(&g->rng, 25)) {
        /* list form */
        gd_puts(b, gd_chance(&g->rng, 50) ? "You are playing this character:\n"
                                           : "Your character:\n");
        /* the name comes first in a list */
        if (mask & (1u << GD_NAME)) {
            gd_puts(b, "- ");
            rc |= gd_fill(b, gd_sys_list[GD_NAME], c);
            gd_puts(b, "\n");
        }
        for (int i = 0; i < n; i++) {
            if (order[i] == GD_NAME || !(mask & (1u << order[i])))
                continue;
            gd_puts(b, "- ");
            rc |= gd_fill(b, gd_sys_list[order[i]], c);
            gd_puts(b, "\n");
        }
        gd_puts(b, "Answer as this character.");
    } else {
        gd_puts(b, GD_PICK(&g->rng, gd_sys_intro));
        int first = 1;
        /* the name first 70% of the time, else in the shuffled order */
        int name_first = gd_chance(&g->rng, 70);
        if (name_first && (mask & (1u << GD_NAME))) {
            rc |= gd_fill(b, GD_PICK(&g->rng, gd_sys_fact[GD_NAME]), c);
            first = 0;
        }
        for (int i = 0; i < n; i++) {
            if (!(mask & (1u << order[i])) || (name_first && order[i] == GD_NAME))
                continue;
            if (!first)
                gd_puts(b, " ");
            rc |= gd_fill(b, GD_PICK(&g->rng, gd_sys_fact[order[i]]), c);
            first = 0;
        }
    }
    gd_close(b);
    return rc;
}

/* The user's message stating their facts in mask (and maybe a friend). */
static int gd_user_intro(gd_gen *g, gd_buf *b, const gd_ctx *c, unsigned mask, int friend_fact)
{
    gd_slot order[GD_NSLOTS];
    int n = gd_fact_order(&g->rng, order), rc = 0;
    gd_open(b, "user");
    gd_puts(b, GD_PICK(&g->rng, gd_user_greet));
    int first = 1;
    if (mask & (1u << GD_NAME)) {
        rc |= gd_fill(b, GD_PICK(&g->rng, gd_user_fact[GD_NAME]), c);
        first = 0;
    }
    for (int i = 0; i < n; i++) {
        if (order[i] == GD_NAME || !(mask & (1u << order[i])))
            continue;
        if (!first)
            gd_puts(b, " ");
        rc |= gd_fill(b, GD_PICK(&g->rng, gd_user_fact[order[i]]), c);
        first = 0;
    }
    if (friend_fact) {
        if (!first)
            gd_puts(b, " ");
        rc |= gd_fill(b, GD_PICK(&g->rng, gd_friend_fact), c);
    }
    gd_close(b);
    gd_open(b, "assistant");
    rc |= gd_fill(b,
                  (mask & (1u << GD_NAME)) ? GD_PICK(&g->rng, gd_ack_named)
                                           : GD_PICK(&g->rng, gd_ack_plain),
                  c);
    gd_close(b);
    return rc;
}

/* A filler exchange: small talk, arithmetic, or a short story about new
 * characters (whose values are drawn like all others). */
static int gd_filler(gd_gen *g, gd_buf *b)
{
    uint32_t k = gd_below(&g->rng, 10);
    if (k < 6) {
        const char *const *p = GD_PICK(&g->rng, gd_small_talk);
        gd_open(b, "user");
        gd_puts(b, p[0]);
        gd_close(b);
        gd_open(b, "assistant");
        gd_puts(b, p[1]);
        gd_close(b);
        return 0;
    }
    if (k < 8) {
        uint32_t x = gd_below(&g->rng, 10), y = gd_below(&g->rng, 9);
        char q[96], a[96];
        snprintf(q, sizeof q, "What is %s plus %s?", gd_numbers[x], gd_numbers[y]);
        snprintf(a, sizeof a, "%s plus %s is %s.", gd_numbers[x], gd_numbers[y],
                 gd_numbers[x + y]);
        a[0] = (char)toupper((unsigned char)a[0]);
        gd_open(b, "user");
        gd_puts(b, q);
        gd_close(b);
        gd_open(b, "assistant");
        gd_puts(b, a);
        gd_close(b);
        return 0;
    }
    gd_person hero, other;
    gd_draw_person(g, &hero, NULL, 0);
    const gd_person *h[1] = {&hero};
    gd_draw_person(g, &other, h, 1);
    gd_ctx c = {{&hero, &other, NULL}};
    int rc = gd_msg(b, "user", "Tell me a very short story.", &c);
    gd_open(b, "assistant");
    rc |= gd_fill(b, GD_PICK(&g->rng, gd_story_open), &c);
    gd_puts(b, " ");
    rc |= gd_fill(b, GD_PICK(&g->rng, gd_story_more), &c);
    gd_close(b);
    return rc;
}

/* A question turn about slot s of the persona (who = 0), the user (1) or
 * the friend (2); the answer when answer != 0. */
static int gd_question(gd_gen *g, gd_buf *b, const gd_ctx *c, int who, gd_slot s, int answer,
                       const char **ref_tpl)
{
    const char *q, *a;
    if (who == 0) {
        q = GD_PICK(&g->rng, gd_q_self[s]);
        a = GD_PICK(&g->rng, gd_a_self[s]);
    } else if (who == 1) {
        q = GD_PICK(&g->rng, gd_q_user[s]);
        a = GD_PICK(&g->rng, gd_a_user[s]);
    } else {
        const char *const *p = GD_PICK(&g->rng, gd_q_friend);
        q = p[0];
        a = p[1];
    }
    int rc = gd_msg(b, "user", q, c);
    if (ref_tpl)
        *ref_tpl = a;
    if (answer) {
        gd_open(b, "assistant");
        rc |= gd_fill_cap(b, a, c);
        gd_close(b);
    }
    return rc;
}

/* A story document: in ChatML (continuation or request) or plain prose. */
static int gd_story_doc(gd_gen *g, gd_buf *b)
{
    gd_person hero, other;
    gd_draw_person(g, &hero, NULL, 0);
    const gd_person *h[1] = {&hero};
    gd_draw_person(g, &other, h, 1);
    gd_ctx c = {{&hero, &other, NULL}};
    gd_buf open = {0}, more = {0};
    int rc = gd_fill(&open, GD_PICK(&g->rng, gd_story_open), &c);
    int n_more = 2 + (int)gd_below(&g->rng, 3);
    uint32_t used = 0;
    for (int i = 0; i < n_more; i++) {
        uint32_t k;
        do
            k = gd_below(&g->rng, (uint32_t)GD_COUNT(gd_story_more));
        while (used & (1u << k));
        used |= 1u << k;
        if (i)
            gd_puts(&more, " ");
        rc |= gd_fill(&more, gd_story_more[k], &c);
    }
    uint32_t form = gd_below(&g->rng, 3);
    if (open.oom || more.oom) {
        rc = -1;
    } else if (form == 0) {
        gd_puts(b, open.s);
        gd_puts(b, " ");
        gd_puts(b, more.s);
        gd_puts(b, "\n");
    } else {
        gd_open(b, "system");
        gd_puts(b, GD_PICK(&g->rng, gd_generic_system));
        gd_close(b);
        gd_open(b, "user");
        if (form == 1) {
            const char *req = GD_PICK(&g->rng, gd_story_request);
            const char *slot = strstr(req, "{opening}");
            gd_put(b, req, (size_t)(slot - req));
            gd_puts(b, open.s);
            gd_puts(b, slot + strlen("{opening}"));
            gd_close(b);
            gd_open(b, "assistant");
            gd_puts(b, more.s);
        } else {
            rc |= gd_fill(b, GD_PICK(&g->rng, gd_story_ask), &c);
            gd_close(b);
            gd_open(b, "assistant");
            gd_puts(b, open.s);
            gd_puts(b, " ");
            gd_puts(b, more.s);
        }
        gd_close(b);
    }
    gd_buf_free(&open);
    gd_buf_free(&more);
    return rc;
}

/* The facts of a dialogue: the persona (when has_persona), the user's
 * stated facts (umask), the friend. */
typedef struct gd_dialogue {
    gd_person persona, user, friend_;
    int has_persona, has_friend;
    unsigned pmask, umask;
} gd_dialogue;

static void gd_dialogue_draw(gd_gen *g, gd_dialogue *d)
{
    gd_draw_person(g, &d->persona, NULL, 0);
    const gd_person *o1[1] = {&d->persona};
    gd_draw_person(g, &d->user, o1, 1);
    const gd_person *o2[2] = {&d->persona, &d->user};
    gd_draw_person(g, &d->friend_, o2, 2);
}

/* Start of a dialogue: system prompt and, when umask != 0, the user's
 * introduction. */
static int gd_dialogue_start(gd_gen *g, gd_buf *b, const gd_dialogue *d, const gd_ctx *c)
{
    int rc = 0;
    if (d->has_persona)
        rc |= gd_persona_system(g, b, c, d->pmask);
    else
        rc |= gd_msg(b, "system", GD_PICK(&g->rng, gd_generic_system), c);
    if (d->umask)
        rc |= gd_user_intro(g, b, c, d->umask, d->has_friend);
    return rc;
}

/* One training document (appended to b, with its "<|endoftext|>\n").
 * Returns 0, or -1 on a template bug or allocation failure. */
int gd_train_doc(gd_gen *g, gd_buf *b)
{
    int rc = 0;
    uint32_t kind = gd_below(&g->rng, 100);
    if (kind < 20) {
        rc = gd_story_doc(g, b);
    } else {
        gd_dialogue d;
        gd_dialogue_draw(g, &d);
        /* 45%: persona (user facts as distractors 40% of the time);
         * 35%: user facts with a generic system prompt */
        d.has_persona = kind < 65;
        d.pmask = d.has_persona ? gd_pick_facts(&g->rng, 0, 75) : 0;
        if (d.has_persona && !d.pmask)
            d.pmask = 1u << GD_NAME;
        if (!d.has_persona || gd_chance(&g->rng, 40))
            d.umask = gd_pick_facts(&g->rng, 0, 60);
        else
            d.umask = 0;
        if (!d.has_persona && !d.umask)
            d.umask = 1u << GD_NAME;
        d.has_friend = d.umask && gd_chance(&g->rng, 15);
        gd_ctx c = {{&d.persona, &d.user, &d.friend_}};
        rc |= gd_dialogue_start(g, b, &d, &c);
        /* 1-3 questions, with 0-2 filler exchanges before each */
        int nq = 1 + (int)gd_below(&g->rng, 3);
        for (int i = 0; i < nq; i++) {
            int nf = (int)gd_below(&g->rng, 3) == 0 ? 1 : 0;
            if (gd_chance(&g->rng, 10))
                nf = 2;
            for (int f = 0; f < nf; f++)
                rc |= gd_filler(g, b);
            /* pick whom to ask about among those with facts */
            int who;
            if (d.has_friend && gd_chance(&g->rng, 15))
                who = 2;
            else if (d.has_persona && d.umask)
                who = gd_chance(&g->rng, 50) ? 0 : 1;
            else
                who = d.has_persona ? 0 : 1;
            unsigned m = who == 0 ? d.pmask : who == 1 ? d.umask : 1u << GD_NAME;
            gd_slot s;
            do
                s = (gd_slot)gd_below(&g->rng, GD_NSLOTS);
            while (!(m & (1u << s)));
            rc |= gd_question(g, b, &c, who, s, 1, NULL);
        }
    }
    gd_puts(b, "<|endoftext|>\n");
    return b->oom ? -1 : rc;
}

/* An evaluation item. */
typedef struct gd_eval_item {
    const char *kind;   /* "name", "city", "job" */
    const char *source; /* "system" (persona) or "user" (user-stated) */
    int turns_before;   /* filler/other-question exchanges before the question */
    char answer[GD_VAL];
    gd_buf prefix;    /* up to and including "<|im_start|>assistant\n" */
    gd_buf reference; /* one full answer sentence */
} gd_eval_item;

void gd_eval_item_free(gd_eval_item *it)
{
    gd_buf_free(&it->prefix);
    gd_buf_free(&it->reference);
}

/* Item `index` of an evaluation set: kind = index % 3 (name, city, job);
 * source = "user" when (index / 3) % 4 == 3, else "system", so 3 items in
 * 4 of each kind ask about the persona. Returns 0 or -1. */
int gd_eval_item_make(gd_gen *g, int index, gd_eval_item *it)
{
    static const gd_slot kinds[3] = {GD_NAME, GD_CITY, GD_JOB};
    static const char *const kind_names[3] = {"name", "city", "job"};
    gd_slot s = kinds[index % 3];
    int who = (index / 3) % 4 == 3 ? 1 : 0;
    gd_buf_clear(&it->prefix);
    gd_buf_clear(&it->reference);
    it->kind = kind_names[index % 3];
    it->source = who ? "user" : "system";

    gd_dialogue d;
    gd_dialogue_draw(g, &d);
    int rc = 0;
    if (who == 0) {
        d.has_persona = 1;
        d.pmask = gd_pick_facts(&g->rng, 1u << s, 75);
        d.umask = gd_chance(&g->rng, 40) ? gd_pick_facts(&g->rng, 0, 60) : 0;
    } else {
        d.has_persona = gd_chance(&g->rng, 40);
        d.pmask = d.has_persona ? gd_pick_facts(&g->rng, 0, 75) : 0;
        if (d.has_persona && !d.pmask)
            d.pmask = 1u << GD_NAME;
        d.umask = gd_pick_facts(&g->rng, 1u << s, 60);
    }
    d.has_friend = d.umask && gd_chance(&g->rng, 15);
    gd_ctx c = {{&d.persona, &d.user, &d.friend_}};
    rc |= gd_dialogue_start(g, &it->prefix, &d, &c);
    /* 0-2 exchanges before the question: filler or a question about
     * another fact (answered) */
    it->turns_before = (int)gd_below(&g->rng, 3);
    for (int i = 0; i < it->turns_before; i++) {
        unsigned m = who == 0 ? d.pmask : d.umask;
        m &= ~(1u << s);
        if (m && gd_chance(&g->rng, 50)) {
            gd_slot o;
            do
                o = (gd_slot)gd_below(&g->rng, GD_NSLOTS);
            while (!(m & (1u << o)));
            rc |= gd_question(g, &it->prefix, &c, who, o, 1, NULL);
        } else {
            rc |= gd_filler(g, &it->prefix);
        }
    }
    const char *ref_tpl = NULL;
    rc |= gd_question(g, &it->prefix, &c, who, s, 0, &ref_tpl);
    gd_open(&it->prefix, "assistant");
    rc |= gd_fill_cap(&it->reference, ref_tpl, &c);
    const gd_person *p = who == 0 ? &d.persona : &d.user;
    memcpy(it->answer, p->v[s], GD_VAL);
    if (it->prefix.oom || it->reference.oom)
        return -1;
    return rc;
}

/* JSON string (the values and templates are ASCII; control characters
 * other than \n never occur but are escaped anyway). */
void gd_json_string(gd_buf *b, const char *s)
{
    gd_puts(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"')
            gd_puts(b, "\\\"");
        else if (ch == '\\')
            gd_puts(b, "\\\\");
        else if (ch == '\n')
            gd_puts(b, "\\n");
        else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            gd_puts(b, esc);
        } else
            gd_put(b, (const char *)&ch, 1);
    }
    gd_puts(b, "\"");
}

/* One evaluation item as a JSON line. */
void gd_eval_item_json(gd_buf *b, int index, const gd_eval_item *it)
{
    char num[32];
    snprintf(num, sizeof num, "{\"id\": %d, ", index);
    gd_puts(b, num);
    gd_puts(b, "\"kind\": ");
    gd_json_string(b, it->kind);
    gd_puts(b, ", \"source\": ");
    gd_json_string(b, it->source);
    snprintf(num, sizeof num, ", \"turns_before\": %d", it->turns_before);
    gd_puts(b, num);
    gd_puts(b, ", \"prefix\": ");
    gd_json_string(b, it->prefix.s ? it->prefix.s : "");
    gd_puts(b, ", \"answer\": ");
    gd_json_string(b, it->answer);
    gd_puts(b, ", \"reference\": ");
    gd_json_string(b, it->reference.s ? it->reference.s : "");
    gd_puts(b, "}\n");
}

/* One held-out persona as a JSON line. */
void gd_facts_json(gd_gen *g, gd_buf *b, int index)
{
    static const char *const keys[GD_NSLOTS] = {"name", "city", "job",
                                                "pet_kind", "pet_name", "colour"};
    gd_person p;
    gd_draw_person(g, &p, NULL, 0);
    char num[32];
    snprintf(num, sizeof num, "{\"id\": %d", index);
    gd_puts(b, num);
    for (int s = 0; s < GD_NSLOTS; s++) {
        gd_puts(b, ", \"");
        gd_puts(b, keys[s]);
        gd_puts(b, "\": ");
        gd_json_string(b, p.v[s]);
    }
    gd_puts(b, "}\n");
}

#ifndef GD_NO_MAIN

static const char usage[] =
    "Usage: gen_dialogues train [--n N] [--seed S] [--out FILE]\n"
    "       gen_dialogues eval  [--n N] [--seed S] [--out FILE]\n"
    "       gen_dialogues facts [--n N] [--seed S] [--out FILE]\n"
    "       gen_dialogues split VALUE...\n"
    "\n"
    "train: N ChatML dialogues and stories for training (default N 1000), each\n"
    "       followed by \"<|endoftext|>\" and a newline; only training values.\n"
    "eval:  N held-out recall items as JSON lines (default N 300: name, city,\n"
    "       job in turn; 3 in 4 ask about the persona); only held-out values.\n"
    "facts: N held-out personas as JSON lines (default N 100): name, city,\n"
    "       job, pet_kind, pet_name, colour (kvlab run transfer's items).\n"
    "split: prints train or held-out for each value (held out when FNV-1a-64\n"
    "       of the ASCII-lowercased value is 0 mod 5).\n"
    "--seed S (default 1) fixes the output; --out FILE (default stdout).\n"
    "See docs/demo-models.md.\n";

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "split") == 0) {
        if (argc < 3) {
            fputs(usage, stderr);
            return 2;
        }
        for (int i = 2; i < argc; i++)
            printf("%s\t%s\n", argv[i], gd_held_out(argv[i]) ? "held-out" : "train");
        return 0;
    }
    gd_mode mode;
    const int facts = strcmp(cmd, "facts") == 0;
    if (strcmp(cmd, "train") == 0)
        mode = GD_TRAIN;
    else if (strcmp(cmd, "eval") == 0 || facts)
        mode = GD_EVAL;
    else {
        fprintf(stderr, "gen_dialogues: unknown command '%s'\n%s", cmd, usage);
        return 2;
    }
    uint64_t n = mode == GD_TRAIN ? 1000 : facts ? 100 : 300, seed = 1;
    const char *out_path = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--n") == 0 || strcmp(a, "-n") == 0) {
            if (parse_u64(v, &n) != 0 || n > 100000000ull) {
                fprintf(stderr, "gen_dialogues: --n needs a count up to 1e8\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_u64(v, &seed) != 0) {
                fprintf(stderr, "gen_dialogues: --seed needs a non-negative integer\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0) {
            if (!v) {
                fprintf(stderr, "gen_dialogues: --out needs a file name\n");
                return 2;
            }
            out_path = v;
            i++;
        } else {
            fprintf(stderr, "gen_dialogues: unknown option '%s'\n%s", a, usage);
            return 2;
        }
    }
    FILE *f = out_path ? fopen(out_path, "wb") : stdout;
    if (!f) {
        fprintf(stderr, "gen_dialogues: cannot open %s: %s\n", out_path, strerror(errno));
        return 1;
    }
    gd_gen g;
    gd_init(&g, seed, mode);
    gd_buf b = {0};
    gd_eval_item it = {0};
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        gd_buf_clear(&b);
        gd_reset_used(&g);
        if (mode == GD_TRAIN) {
            rc = gd_train_doc(&g, &b);
        } else if (facts) {
            gd_facts_json(&g, &b, (int)i);
        } else {
            rc = gd_eval_item_make(&g, (int)i, &it);
            if (rc == 0)
                gd_eval_item_json(&b, (int)i, &it);
        }
        if (b.oom)
            rc = -1;
        if (rc == 0 && fwrite(b.s, 1, b.n, f) != b.n)
            rc = -2;
    }
    if (rc == -1)
        fprintf(stderr, "gen_dialogues: out of memory or a template error\n");
    if (f != stdout ? fclose(f) != 0 : fflush(f) != 0)
        rc = -2;
    if (rc == -2)
        fprintf(stderr, "gen_dialogues: cannot write %s\n", out_path ? out_path : "stdout");
    gd_buf_free(&b);
    gd_eval_item_free(&it);
    return rc == 0 ? 0 : 1;
}

#endif
