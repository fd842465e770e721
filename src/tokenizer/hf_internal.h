/*
 * Internals of the Hugging Face tokenizer.json engine (hf_*.c).
 *
 * The engine follows the `tokenizers` library's pipeline for one sequence:
 *
 *   raw text
 *     -> added tokens with normalized=false matched in the raw text
 *        (leftmost-longest; special tokens skipped with
 *        KVL_ENCODE_PLAIN_SPECIAL)                       hf_added_tokens.c
 *     -> each remaining segment normalised               hf_normalizer.c
 *     -> added tokens with normalized=true matched in the normalised
 *        segment                                         hf_added_tokens.c
 *     -> pre-tokenizer steps cut each remaining piece    hf_pretokenizer.c
 *     -> the BPE model turns every piece into ids        hf_model_bpe.c
 *     -> the post-processor's ids around the result (KVL_ENCODE_ADD_SPECIAL)
 *
 * and decoding maps ids to token strings (added tokens: their content) and
 * runs the decoder steps (hf_decoder.c).  The file is read by hf_json.c:
 * a validating scanner locates model.vocab and model.merges (most of the
 * bytes) and parses them itself; jansson parses everything else.
 *
 * Everything built at load time is read-only afterwards; encode / decode
 * keep their scratch state in per-call structures, so one tokenizer may be
 * used by several threads at once.
 */
#ifndef KVL_TOKENIZER_HF_INTERNAL_H
#define KVL_TOKENIZER_HF_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "kvlab.h"

#define HF_MAX_ID (1 << 22)       /* ids from 4M on are refused (real vocabularies stay below 300k) */
#define HF_MAX_STEPS 32           /* normalizer / pre-tokenizer / decoder  */

/* ------------------------------------------------------------------------ */
/* Small helpers (hf_util.c)                                                 */
/* ------------------------------------------------------------------------ */

/* Length (1..4) of the UTF-8 character at s[i] (i < n) and its code point
 * in *cp; an invalid or truncated sequence is one byte with *cp = -1. */
size_t hf_utf8_next(const char *s, size_t n, size_t i, int32_t *cp);
/* Start of the character that ends at s[end] (end > 0). */
size_t hf_utf8_prev(const char *s, size_t end);
/* Encodes cp (valid scalar value) into out[4]; returns the length. */
size_t hf_utf8_put(uint32_t cp, char *out);
/* 1 when s[0..n) is exactly one valid UTF-8 character; its code point. */
int hf_utf8_single(const char *s, size_t n, int32_t *cp);
/* 0..15 for a hexadecimal digit (either case), else -1. */
int hf_hexval(char c);
/* Rust's char::is_whitespace (the Unicode White_Space property). */
int hf_is_whitespace(int32_t cp);
/* Rust regex's \w: Alphabetic, marks, decimal digits, connector
 * punctuation, joiners (approximated from general categories). */
int hf_is_word(int32_t cp);

uint64_t hf_hash(const char *s, size_t n);

/* GPT-2's bytes_to_unicode: the code point standing for each byte (below
 * U+0144, so 1 or 2 bytes of UTF-8).  Used by hf_bytemap_init and the BPE
 * trainer (bpe_train.c). */
void hf_byte_codepoints(uint32_t cp[256]);

/* GPT-2's byte <-> character map used by the ByteLevel components. */
typedef struct hf_bytemap {
    char utf8[256][2];     /* UTF-8 of the character for each byte        */
    uint8_t len[256];      /* 1 or 2                                      */
    uint16_t cp[256];      /* the code point                              */
    int16_t rev[324];      /* code point -> byte, or -1                   */
} hf_bytemap;
void hf_bytemap_init(hf_bytemap *m);

/* A compiled PCRE2 pattern (UTF, UCP, invalid UTF-8 tolerated; JIT when
 * available). */
typedef struct hf_regex {
    pcre2_code *code;
} hf_regex;

/* Compiles `pattern` (a regex, or a literal string when literal != 0). */
kvl_status hf_regex_compile(hf_regex *re, const char *pattern, size_t len,
                            int literal, const char *path, const char *what,
                            kvl_error *err);
void hf_regex_free(hf_regex *re);

/* Onig-style find_iter over s[0..n): non-overlapping matches left to
 * right; an empty match right after the previous match is skipped. */
typedef struct hf_finder {
    const pcre2_code *code;
    const char *s;
    size_t n;
    size_t pos;            /* where the next search starts                */
    int have_last;
    size_t last_end;
    pcre2_match_data *md;
} hf_finder;
void hf_finder_init(hf_finder *f, const hf_regex *re, const char *s,
                    size_t n, pcre2_match_data *md);
/* 1: a match [*b, *e); 0: no more; or an error status (negative of a
 * kvl_status) with err filled. */
int hf_finder_next(hf_finder *f, size_t *b, size_t *e, kvl_error *err);

/* Replaces every match of re in s[0..n) by content; appends to out. */
kvl_status hf_regex_replace(const hf_regex *re, pcre2_match_data *md,
                            const char *s, size_t n, const char *content,
                            size_t content_len, kvl_strbuf *out,
                            kvl_error *err);

/* Reads a JSON string member (NULL when absent or null); *len its length.
 * Fails when present and not a string (or null). */
kvl_status hf_json_opt_string(json_t *obj, const char *key, const char *path,
                              const char *where, const char **s, size_t *len,
                              kvl_error *err);
/* A required JSON string member (absent or null: "<where> needs \"key\""),
 * copied into a malloc'ed NUL-terminated *out of *len bytes. */
kvl_status hf_json_string_copy(json_t *obj, const char *key, const char *path,
                               const char *where, char **out, size_t *len,
                               kvl_error *err);
kvl_status hf_json_opt_bool(json_t *obj, const char *key, int dflt,
                            const char *path, const char *where, int *out,
                            kvl_error *err);
/* A "pattern": {"String": s} or {"Regex": r} member compiled into re. */
kvl_status hf_json_pattern(json_t *obj, const char *path, const char *where,
                           hf_regex *re, kvl_error *err);
/* A string holding exactly one character (serde's char), as UTF-8. */
kvl_status hf_json_char(json_t *obj, const char *key, const char *dflt,
                        const char *path, const char *where, char out[8],
                        size_t *len, kvl_error *err);
/* The "type" member of a component object, or NULL when absent. */
const char *hf_json_type(json_t *obj);

/* ------------------------------------------------------------------------ */
/* The file (hf_json.c)                                                      */
/* ------------------------------------------------------------------------ */

typedef struct hf_file {
    char *data;            /* the whole file                              */
    size_t size;
    json_t *root;          /* everything but model.vocab / model.merges   */
    /* byte ranges of the model's vocab object and merges array, or 0/0   */
    size_t vocab_b, vocab_e, merges_b, merges_e;
} hf_file;

kvl_status hf_file_load(const char *path, hf_file *f, kvl_error *err);
void hf_file_free(hf_file *f);

/* Iterates the vocab object: calls fn(ctx, key, key_len, id) for every
 * member (ids checked to be integers in 0..HF_MAX_ID-1). */
typedef kvl_status (*hf_vocab_fn)(void *ctx, const char *key, size_t len,
                                  int64_t id, kvl_error *err);
kvl_status hf_file_each_vocab(const hf_file *f, const char *path,
                              hf_vocab_fn fn, void *ctx, kvl_error *err);
/* Iterates the merges array (["a", "b"] pairs or "a b" strings). */
typedef kvl_status (*hf_merge_fn)(void *ctx, size_t index, const char *a,
                                  size_t la, const char *b, size_t lb,
                                  kvl_error *err);
kvl_status hf_file_each_merge(const hf_file *f, const char *path,
                              hf_merge_fn fn, void *ctx, kvl_error *err);

/* ------------------------------------------------------------------------ */
/* Normalizers (hf_normalizer.c)                                             */
/* ------------------------------------------------------------------------ */

typedef enum hf_norm_kind {
    HF_N_NFC, HF_N_NFD, HF_N_NFKC, HF_N_NFKD, HF_N_LOWERCASE, HF_N_STRIP,
    HF_N_PREPEND, HF_N_REPLACE, HF_N_STRIP_ACCENTS, HF_N_BYTELEVEL
} hf_norm_kind;

typedef struct hf_norm_step {
    hf_norm_kind kind;
    int left, right;       /* Strip                                       */
    char *str;             /* Prepend text / Replace content              */
    size_t str_len;
    hf_regex re;           /* Replace pattern                             */
} hf_norm_step;

typedef struct hf_normalizer {
    hf_norm_step step[HF_MAX_STEPS];
    int n;
} hf_normalizer;

kvl_status hf_normalizer_parse(json_t *j, const char *path,
                               hf_normalizer *out, kvl_error *err);
void hf_normalizer_free(hf_normalizer *n);
/* Normalises s[0..len): *out / *out_len point either at s (unchanged) or
 * into one of the two scratch buffers. */
kvl_status hf_normalize(const hf_normalizer *n, const hf_bytemap *bm,
                        pcre2_match_data *md, const char *s, size_t len,
                        kvl_strbuf scratch[2], const char **out,
                        size_t *out_len, kvl_error *err);

/* ------------------------------------------------------------------------ */
/* Pre-tokenizers (hf_pretokenizer.c)                                        */
/* ------------------------------------------------------------------------ */

typedef enum hf_pre_kind {
    HF_P_SPLIT,            /* regex split with a delimiter behaviour      */
    HF_P_PREFIX_SPACE,     /* ByteLevel add_prefix_space                  */
    HF_P_BYTEMAP,          /* ByteLevel bytes -> characters               */
    HF_P_METASPACE         /* ' ' -> replacement, prepend, split          */
} hf_pre_kind;

typedef enum hf_behavior {
    HF_B_REMOVED, HF_B_ISOLATED, HF_B_MERGED_PREV, HF_B_MERGED_NEXT,
    HF_B_CONTIGUOUS
} hf_behavior;

enum { HF_PREPEND_NEVER = 0, HF_PREPEND_ALWAYS = 1, HF_PREPEND_FIRST = 2 };

typedef struct hf_pre_step {
    hf_pre_kind kind;
    hf_regex re;
    hf_behavior behavior;
    int invert;
    char rep[8];           /* Metaspace replacement (UTF-8)               */
    size_t rep_len;
    int prepend;           /* HF_PREPEND_*                                */
    int split;
} hf_pre_step;

typedef struct hf_pretok {
    hf_pre_step step[HF_MAX_STEPS];
    int n;
} hf_pretok;

kvl_status hf_pretok_parse(json_t *j, const char *path, hf_pretok *out,
                           kvl_error *err);
void hf_pretok_free(hf_pretok *p);

/* Running the steps over a piece of normalised text (per-call state). */
typedef struct hf_span {
    size_t b, e;
    int match;
} hf_span;

typedef kvl_status (*hf_piece_fn)(void *ctx, const char *s, size_t n,
                                  kvl_error *err);

typedef struct hf_pre_run {
    const hf_pretok *p;
    int n_steps;           /* steps run here (a final ByteLevel byte map
                              is left to the model)                       */
    const hf_bytemap *bm;
    pcre2_match_data *md;
    kvl_strbuf buf[HF_MAX_STEPS];
    hf_span *span[HF_MAX_STEPS];
    size_t span_cap[HF_MAX_STEPS];
    hf_piece_fn emit;      /* receives every final piece (non-empty)      */
    void *ctx;
} hf_pre_run;

void hf_pre_run_init(hf_pre_run *r, const hf_pretok *p, int n_steps,
                     const hf_bytemap *bm, pcre2_match_data *md,
                     hf_piece_fn emit, void *ctx);
void hf_pre_run_free(hf_pre_run *r);
/* Runs steps k.. over s[0..n); at_origin: s starts at offset 0 of the
 * text given to encode (Metaspace prepend_scheme "first"). */
kvl_status hf_pre_run_piece(hf_pre_run *r, int k, const char *s, size_t n,
                            int at_origin, kvl_error *err);

/* ------------------------------------------------------------------------ */
/* The BPE model (hf_model_bpe.c)                                            */
/* ------------------------------------------------------------------------ */

typedef struct hf_merge_slot {
    uint64_t key;          /* (left id << 32) | right id; ~0 = empty      */
    uint32_t rank;
    int32_t id;            /* the merged token                            */
} hf_merge_slot;

typedef struct hf_bpe {
    int32_t n_ids;         /* max model id + 1                            */
    int32_t n_entries;     /* number of vocab entries (HF vocab.len())    */
    char *arena;           /* token strings, each NUL-terminated          */
    size_t arena_n, arena_cap;
    /* vocab entries in file order (e_id < 0: replaced by a later duplicate) */
    uint32_t *e_off, *e_len;
    int32_t *e_id;
    size_t n_e, cap_e;
    uint32_t *off;         /* [n_ids] offset in arena                     */
    int32_t *len;          /* [n_ids] length, -1 = no token with this id  */
    int32_t *table;        /* string hash: entry index + 1, 0 = empty     */
    size_t table_mask;
    hf_merge_slot *merges;
    size_t merges_mask;
    size_t n_merges;
    int32_t *cp_id;        /* [65536] id of a one-character token, or -1  */
    int32_t byte_id[256];  /* byte-level: id of byte b's character, or -1 */
    int bytes_complete;    /* all 256 byte_id present                     */
    int32_t fallback_id[256]; /* id of "<0xXX>", or -1                    */
    char *unk;             /* unk_token or NULL                           */
    size_t unk_len;
    int32_t unk_id;        /* -1 when unk is NULL or not in the vocab     */
    char *prefix, *suffix; /* continuing_subword_prefix / end_of_word_suffix */
    size_t prefix_len, suffix_len;
    int fuse_unk, byte_fallback, ignore_merges;
} hf_bpe;

kvl_status hf_bpe_load(const hf_file *f, json_t *model, const char *path,
                       const hf_bytemap *bm, hf_bpe *bpe, kvl_error *err);
void hf_bpe_free(hf_bpe *bpe);
int32_t hf_bpe_lookup(const hf_bpe *bpe, const char *s, size_t n);
static inline const char *hf_bpe_token(const hf_bpe *bpe, int32_t id)
{
    return bpe->arena + bpe->off[id];
}

/* Per-call state of the model: scratch arrays and the word cache. */
typedef struct hf_bpe_cache_entry {
    uint64_t hash;
    uint32_t key_off, key_len;
    uint32_t ids_off, ids_n;
} hf_bpe_cache_entry;

typedef struct hf_bpe_state {
    const hf_bpe *bpe;
    int bytelevel;         /* pieces arrive as raw bytes: map them first  */
    const hf_bytemap *bm;
    /* word cache (per call) */
    uint32_t *slots;       /* entry index + 1, 0 = empty                  */
    size_t slot_mask;
    hf_bpe_cache_entry *ent;
    size_t n_ent, cap_ent;
    kvl_strbuf keys;
    kvl_idbuf ids;
    /* scratch */
    int32_t *sym;
    uint32_t *rank;
    int32_t *newid;
    int32_t *next, *prev;
    uint32_t *ver;
    void *heap;
    size_t cap;            /* capacity of the arrays above (symbols)      */
    kvl_strbuf str;        /* mapped piece / concatenations               */
    kvl_strbuf tmp;
} hf_bpe_state;

void hf_bpe_state_init(hf_bpe_state *s, const hf_bpe *bpe, int bytelevel,
                       const hf_bytemap *bm);
void hf_bpe_state_free(hf_bpe_state *s);
/* Appends the ids of one pre-token to out. */
kvl_status hf_bpe_encode_piece(hf_bpe_state *s, const char *piece, size_t n,
                               kvl_idbuf *out, kvl_error *err);

/* ------------------------------------------------------------------------ */
/* Added tokens (hf_added_tokens.c)                                          */
/* ------------------------------------------------------------------------ */

typedef struct hf_added {
    char *content;
    size_t len;
    char *norm;            /* content after the normalizer (normalized=true) */
    size_t norm_len;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} hf_added;

typedef struct hf_trie_node {
    int32_t child, sibling; /* node indexes, -1 = none                    */
    int32_t term;           /* added-token index ending here, or -1       */
    uint8_t byte;
} hf_trie_node;

typedef struct hf_trie {
    hf_trie_node *node;
    size_t n, cap;
    uint8_t first[256];     /* 1 when some pattern starts with the byte   */
    int empty;              /* no patterns                                */
} hf_trie;

typedef struct hf_added_set {
    hf_added *tok;
    size_t n;
    hf_trie raw;            /* normalized=false tokens, on the raw text   */
    hf_trie norm;           /* normalized=true tokens, normalised form    */
    /* content -> index + 1 hash */
    int32_t *table;
    size_t table_mask;
} hf_added_set;

/* Reads "added_tokens" and assigns ids as tokenizers does (an existing
 * added token or model token with the same content keeps its id, others
 * get the next free id), then builds the tries (normalized tokens matched
 * in their normalised form). */
kvl_status hf_added_load(json_t *arr, const char *path, const hf_bpe *bpe,
                         const hf_normalizer *norm, const hf_bytemap *bm,
                         hf_added_set *out, kvl_error *err);
void hf_added_free(hf_added_set *a);
int32_t hf_added_find(const hf_added_set *a, const char *s, size_t n);

/* One matched added token in a text: [b, e) after lstrip/rstrip. */
typedef struct hf_added_match {
    size_t b, e;
    int32_t id;
} hf_added_match;

/* Finds the next added token in s[from..n) as tokenizers' find_matches
 * does (leftmost-longest; single_word; lstrip / rstrip; special tokens
 * skipped when plain_special).  start_offset: end of the previous split.
 * Returns 1 with *m, or 0. */
int hf_added_next(const hf_added_set *a, const hf_trie *t, const char *s,
                  size_t n, size_t *from, size_t start_offset,
                  int plain_special, hf_added_match *m);

/* ------------------------------------------------------------------------ */
/* Decoders (hf_decoder.c)                                                   */
/* ------------------------------------------------------------------------ */

typedef enum hf_dec_kind {
    HF_D_BYTELEVEL, HF_D_METASPACE, HF_D_BYTEFALLBACK, HF_D_FUSE,
    HF_D_STRIP, HF_D_REPLACE, HF_D_BPE
} hf_dec_kind;

typedef struct hf_dec_step {
    hf_dec_kind kind;
    char ch[8];            /* Metaspace replacement / Strip content       */
    size_t ch_len;
    int prepend;           /* Metaspace: HF_PREPEND_*                     */
    size_t start, stop;    /* Strip                                       */
    hf_regex re;           /* Replace                                     */
    char *str;             /* Replace content / BPEDecoder suffix         */
    size_t str_len;
} hf_dec_step;

typedef struct hf_decoder {
    hf_dec_step step[HF_MAX_STEPS];
    int n;
    int present;           /* 0: no decoder (tokens joined with ' ')      */
} hf_decoder;

kvl_status hf_decoder_parse(json_t *j, const char *path, hf_decoder *out,
                            kvl_error *err);
void hf_decoder_free(hf_decoder *d);

/* A list of byte strings (the decoder's tokens). */
typedef struct hf_toklist {
    kvl_strbuf data;
    size_t *off, *len;
    size_t n, cap;
} hf_toklist;

kvl_status hf_toklist_push(hf_toklist *l, const char *s, size_t n,
                           kvl_error *err);
void hf_toklist_free(hf_toklist *l);
/* Runs the decoder steps over *in and appends the concatenated result to
 * out. */
kvl_status hf_decode_tokens(const hf_decoder *d, const hf_bytemap *bm,
                            hf_toklist *in, kvl_strbuf *out, kvl_error *err);

#endif
