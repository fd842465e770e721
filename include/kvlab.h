/*
 * kvlab — the KV cache of transformer language models as a first-class object.
 *
 * Public C API. One header; everything here is stable within a major version.
 *
 * Conventions
 * -----------
 *  - Handles are opaque (kvl_model, kvl_session, kvl_cache, kvl_tokenizer).
 *    Whoever creates a handle with *_load / *_new / *_copy / *_slice owns it
 *    and releases it with the matching *_free.  *_free(NULL) is a no-op.
 *  - Every fallible call returns a kvl_status.  KVL_OK (0) is success.  When
 *    the caller passes a non-NULL kvl_error*, a human-readable message that
 *    names the file / argument and the problem is written there.  Passing
 *    NULL is allowed; the status code is still returned.
 *  - The library never prints, never calls exit() and never aborts on bad
 *    input.  Out-of-memory is reported as KVL_ERR_NOMEM.
 *  - All tensors handed across the API are fp32, row-major, host memory.
 *  - Token positions are absolute (the RoPE position index), int32.
 *  - Handles are not thread-safe; distinct handles may be used from distinct
 *    threads.  A kvl_model is read-only after loading and may be shared by
 *    several sessions in several threads.
 */
#ifndef KVLAB_H
#define KVLAB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; everything declared in this
 * header is exported. */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC visibility push(default)
#endif

#define KVL_VERSION_MAJOR 0
#define KVL_VERSION_MINOR 1
#define KVL_VERSION_PATCH 0
#define KVL_VERSION_STRING "0.1.0"

/* Version of the library actually linked (may differ from the header). */
const char *kvl_version(void);

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                   */
/* ------------------------------------------------------------------------ */

typedef enum kvl_status {
    KVL_OK = 0,
    KVL_ERR_ARG = 1,         /* invalid argument from the caller            */
    KVL_ERR_IO = 2,          /* a file could not be opened, read, written   */
    KVL_ERR_FORMAT = 3,      /* malformed file: bad JSON, truncated, shape  */
    KVL_ERR_UNSUPPORTED = 4, /* well-formed but not supported (arch, rope)  */
    KVL_ERR_NOMEM = 5,       /* allocation failed                           */
    KVL_ERR_MISMATCH = 6,    /* cache and model (or two caches) incompatible */
    KVL_ERR_RANGE = 7,       /* index / position / capacity out of range    */
    KVL_ERR_INTERNAL = 8     /* a bug in kvlab: please report it            */
} kvl_status;

#define KVL_ERROR_MESSAGE_MAX 1024

typedef struct kvl_error {
    kvl_status code;
    char message[KVL_ERROR_MESSAGE_MAX];
} kvl_error;

/* Static, never-NULL name of a status ("KVL_ERR_FORMAT", ...). */
const char *kvl_status_name(kvl_status status);

/* ------------------------------------------------------------------------ */
/* Data types                                                                */
/* ------------------------------------------------------------------------ */

typedef enum kvl_dtype {
    KVL_DTYPE_F32 = 0,
    KVL_DTYPE_F16 = 1,
    KVL_DTYPE_BF16 = 2,
    KVL_DTYPE_I32 = 3,
    KVL_DTYPE_I64 = 4,
    KVL_DTYPE_COUNT
} kvl_dtype;

/* "F32", "F16", "BF16", "I32", "I64" (safetensors spelling), or "?". */
const char *kvl_dtype_name(kvl_dtype dtype);
/* Bytes per element; 0 for an invalid dtype. */
size_t kvl_dtype_size(kvl_dtype dtype);
/* Parses "F32"/"f32"/"float32", "F16"/"float16", "BF16"/"bfloat16". */
kvl_status kvl_dtype_parse(const char *name, kvl_dtype *out);

/* ------------------------------------------------------------------------ */
/* Models                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct kvl_model kvl_model;

typedef enum kvl_arch {
    KVL_ARCH_LLAMA = 0, /* LlamaForCausalLM (Llama 2/3.x, TinyLlama)        */
    KVL_ARCH_QWEN2 = 1, /* Qwen2ForCausalLM (Qwen2, Qwen2.5): q/k/v bias    */
    KVL_ARCH_QWEN3 = 2, /* Qwen3ForCausalLM: per-head q_norm / k_norm       */
    KVL_ARCH_LLAMA2C = 3 /* karpathy llama2.c .bin checkpoint (Llama graph) */
} kvl_arch;

/* How RoPE pairs the dimensions of a head. */
typedef enum kvl_rope_layout {
    KVL_ROPE_ROTATE_HALF = 0, /* HF: pairs (i, i + head_dim/2)             */
    KVL_ROPE_INTERLEAVED = 1  /* Meta / llama2.c: pairs (2i, 2i + 1)       */
} kvl_rope_layout;

typedef enum kvl_rope_scaling_type {
    KVL_ROPE_SCALING_NONE = 0,
    KVL_ROPE_SCALING_LINEAR = 1,
    KVL_ROPE_SCALING_LLAMA3 = 2
} kvl_rope_scaling_type;

/* Everything needed to (re-)rotate keys: stored in every cache too. */
typedef struct kvl_rope {
    double theta;                  /* base, e.g. 10000 or 500000          */
    kvl_rope_layout layout;
    kvl_rope_scaling_type scaling;
    double factor;                 /* linear and llama3                    */
    double low_freq_factor;        /* llama3                               */
    double high_freq_factor;       /* llama3                               */
    int32_t original_max_position; /* llama3                               */
    int32_t rotary_dim;            /* dims rotated per head (= head_dim)   */
} kvl_rope;

typedef struct kvl_model_info {
    kvl_arch arch;
    const char *arch_name;   /* "LlamaForCausalLM", ...; owned by model     */
    int32_t n_layers;
    int32_t dim;             /* hidden size                                 */
    int32_t hidden_dim;      /* MLP intermediate size                       */
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t head_dim;
    int32_t vocab_size;
    int32_t max_seq_len;     /* max_position_embeddings                     */
    double norm_eps;
    kvl_rope rope;
    int32_t tied_embeddings; /* 1 when lm_head shares the embedding         */
    int32_t qkv_bias;        /* 1 when q/k/v projections carry a bias       */
    int32_t qk_norm;         /* 1 for Qwen3-style q_norm / k_norm           */
    kvl_dtype weight_dtype;  /* dtype of the stored projection weights      */
    int32_t bos_token_id;    /* -1 when unknown                             */
    int32_t eos_token_id;    /* -1 when unknown (first, if several)         */
    int64_t n_params;
    int64_t weight_bytes;    /* bytes of all weights as stored              */
    const char *fingerprint; /* 64 hex chars; owned by model                */
    const char *path;        /* as given to kvl_model_load; owned by model  */
    /* Every id that ends generation: config.json's eos_token_id (an int or
     * a list), replaced by generation_config.json's when the folder has
     * one.  eos_token_id above is the first.  Owned by the model. */
    int32_t n_eos_token_ids;
    const int32_t *eos_token_ids;
    /* "cpu" or "cuda:N" (kvl_model_options.device); owned by the model. */
    const char *device;
} kvl_model_info;

typedef struct kvl_model_options {
    /* Where the model runs.  NULL, "" or "cpu": the CPU engine (the
     * default).  "cuda" or "cuda:N": the weights are copied to GPU N (0 by
     * default) in their stored dtype and every session of the model runs
     * there, its KV cache resident on the GPU.  "auto": "cuda:0" when a GPU
     * is present (and kvlab was built with CUDA), else "cpu".
     * Zero-initialise; NULL options mean defaults. */
    const char *device;
} kvl_model_options;

/* Number of CUDA GPUs usable by kvlab: 0 without a GPU, a driver, or when
 * kvlab was built without CUDA. */
int32_t kvl_cuda_device_count(void);

/*
 * Loads a model.  `path` is either
 *   - a Hugging Face model folder: config.json plus model.safetensors, or
 *     model.safetensors.index.json with its shards; or
 *   - a llama2.c checkpoint file (*.bin, v0 "legacy" header).
 * Weights are memory-mapped and stay mapped until kvl_model_free.
 * On success *out receives a new model owned by the caller.
 */
kvl_status kvl_model_load(const char *path, const kvl_model_options *options,
                          kvl_model **out, kvl_error *err);
void kvl_model_free(kvl_model *model);
/* Fills *info; the strings inside stay valid while the model lives. */
void kvl_model_get_info(const kvl_model *model, kvl_model_info *info);
const char *kvl_arch_name(kvl_arch arch);

/* ------------------------------------------------------------------------ */
/* KV caches                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct kvl_cache kvl_cache;

/*
 * Geometry and identity of a cache.  K and V of layer l are stored as
 * [n_kv_heads][n_tokens][head_dim] fp32, keys after RoPE (the content of
 * Hugging Face past_key_values), with token ids and absolute positions
 * kept beside them.
 */
typedef struct kvl_cache_info {
    int32_t n_layers;
    int32_t n_kv_heads;
    int32_t head_dim;
    int32_t n_tokens;
    int32_t capacity;            /* tokens that fit without reallocation  */
    kvl_rope rope;
    const char *arch_name;       /* owned by the cache                    */
    const char *fingerprint;     /* model fingerprint (64 hex); may be "" */
} kvl_cache_info;

typedef enum kvl_kv { KVL_K = 0, KVL_V = 1 } kvl_kv;

/* An empty cache shaped for `model` (capacity grows as needed). */
kvl_status kvl_cache_new(const kvl_model *model, int32_t capacity,
                         kvl_cache **out, kvl_error *err);
void kvl_cache_free(kvl_cache *cache);
void kvl_cache_get_info(const kvl_cache *cache, kvl_cache_info *info);
int32_t kvl_cache_n_tokens(const kvl_cache *cache);

/* Deep copy. */
kvl_status kvl_cache_copy(const kvl_cache *src, kvl_cache **out,
                          kvl_error *err);

/*
 * Reads K or V of one layer and kv head for tokens [tok0, tok0 + n) into
 * out[n][head_dim].
 */
kvl_status kvl_cache_read(const kvl_cache *cache, kvl_kv which, int32_t layer,
                          int32_t kv_head, int32_t tok0, int32_t n,
                          float *out, kvl_error *err);
/* Borrowed pointer to the K or V rows of (layer, kv_head): n_tokens rows of
 * head_dim floats, contiguous.  Valid until the cache is modified. */
const float *kvl_cache_data(const kvl_cache *cache, kvl_kv which,
                            int32_t layer, int32_t kv_head);
/* Token ids / positions of all n_tokens entries (borrowed). */
const int32_t *kvl_cache_token_ids(const kvl_cache *cache);
const int32_t *kvl_cache_positions(const kvl_cache *cache);

/*
 * Appends one token's entries.  k and v are [n_layers][n_kv_heads][head_dim]
 * (keys already rotated for `position`).
 */
kvl_status kvl_cache_append(kvl_cache *cache, int32_t token_id,
                            int32_t position, const float *k, const float *v,
                            kvl_error *err);
/* Keeps the first n tokens. */
kvl_status kvl_cache_truncate(kvl_cache *cache, int32_t n_tokens,
                              kvl_error *err);
/* New cache holding layers [layer0, layer1) and tokens [tok0, tok1). */
kvl_status kvl_cache_slice(const kvl_cache *src, int32_t layer0,
                           int32_t layer1, int32_t tok0, int32_t tok1,
                           kvl_cache **out, kvl_error *err);
/* New cache = a's tokens followed by b's (same geometry and rope). */
kvl_status kvl_cache_concat(const kvl_cache *a, const kvl_cache *b,
                            kvl_cache **out, kvl_error *err);
/*
 * Re-positions every token: keys are de-rotated from their stored positions
 * and rotated to new_positions[i] (values untouched).  new_positions holds
 * n_tokens entries.  kvl_cache_shift is the common case new = old + delta.
 */
kvl_status kvl_cache_reposition(kvl_cache *cache, const int32_t *new_positions,
                                kvl_error *err);
kvl_status kvl_cache_shift(kvl_cache *cache, int32_t delta, kvl_error *err);

/*
 * Checks that the cache can be used with the model: same geometry and rope
 * always (KVL_ERR_MISMATCH saying what differs); same fingerprint unless
 * `force` is non-zero or the cache's fingerprint is empty ("": a cache
 * built by hand, not by a model).
 */
kvl_status kvl_cache_check_model(const kvl_cache *cache,
                                 const kvl_model *model, int force,
                                 kvl_error *err);

/*
 * Cache files (format v1, docs/cache-format.md): a safetensors file with
 * layers.{i}.k / layers.{i}.v [n_kv_heads, n_tokens, head_dim], token_ids
 * and positions (I32), and metadata.  `dtype` is F32, F16 or BF16.
 */
kvl_status kvl_cache_save(const kvl_cache *cache, const char *path,
                          kvl_dtype dtype, kvl_error *err);
kvl_status kvl_cache_load(const char *path, kvl_cache **out, kvl_error *err);

/* ------------------------------------------------------------------------ */
/* Sessions: a model, a cache and the scratch space to run forward passes    */
/* ------------------------------------------------------------------------ */

typedef struct kvl_session kvl_session;

typedef struct kvl_session_options {
    int32_t max_tokens;       /* cache capacity hint; 0 = model max_seq_len */
    int32_t n_threads;        /* 0 = OpenMP default                         */
    int32_t keep_activations; /* 1: keep per-layer activations of the last
                                 forward call (see kvl_session_activation);
                                 CPU sessions only                          */
} kvl_session_options;

kvl_status kvl_session_new(const kvl_model *model,
                           const kvl_session_options *options,
                           kvl_session **out, kvl_error *err);
void kvl_session_free(kvl_session *session);

/*
 * Runs tokens[0..n) after the tokens already in the session's cache, at
 * positions following the last cached position (0 for an empty cache), and
 * appends their K/V to the cache.  When `logits` is non-NULL it receives
 * [n][vocab] logits if all_logits is non-zero, else [vocab] for the last
 * token only.
 */
kvl_status kvl_session_forward(kvl_session *session, const int32_t *tokens,
                               int32_t n, float *logits, int all_logits,
                               kvl_error *err);
/* The same with explicit absolute positions (n entries). */
kvl_status kvl_session_forward_at(kvl_session *session, const int32_t *tokens,
                                  const int32_t *positions, int32_t n,
                                  float *logits, int all_logits,
                                  kvl_error *err);

/*
 * One decode step: `token` at the position after the last cached one, as
 * kvl_session_forward of one token, giving the logits ([vocab]; optional)
 * and/or `next`, the greedy choice (the logits' argmax, lowest id on
 * ties; optional).  On a GPU session the argmax is taken on the device, so
 * asking for `next` alone copies 4 bytes instead of the logits.
 */
kvl_status kvl_session_decode(kvl_session *session, int32_t token,
                              float *logits, int32_t *next, kvl_error *err);

/* The session's cache (borrowed; valid until the session is freed).  For
 * a GPU session this is a host copy, brought up to date by this call
 * (export): a change made to it is copied back to the GPU (import) before
 * the session's next operation, so call it when the host needs the cache,
 * not between every step. */
kvl_cache *kvl_session_cache(kvl_session *session);
/* Replaces the session cache by a copy of `cache` (injection; an import to
 * the GPU for a GPU session).  Checks it with
 * kvl_cache_check_model(cache, model, force). */
kvl_status kvl_session_set_cache(kvl_session *session, const kvl_cache *cache,
                                 int force, kvl_error *err);
/* Empties the cache. */
void kvl_session_reset(kvl_session *session);
/* Keeps cached tokens [tok0, tok1) (their positions unchanged), on the
 * GPU for a GPU session; kvl_session_slice(s, 0, n) truncates to n. */
kvl_status kvl_session_slice(kvl_session *session, int32_t tok0, int32_t tok1,
                             kvl_error *err);
/* Re-positions every cached token (RoPE re-rotation of the keys, as
 * kvl_cache_reposition) to new_positions[n_tokens], on the GPU for a GPU
 * session. */
kvl_status kvl_session_reposition(kvl_session *session,
                                  const int32_t *new_positions, kvl_error *err);
const kvl_model *kvl_session_model(const kvl_session *session);

/*
 * Batched decoding: one decode step for several sessions of one model at
 * once (batteries, sweeps, sampling several continuations).  Session i
 * takes tokens[i] at its next position, exactly as kvl_session_decode
 * would, and gets its own logits row and greedy choice.  On a GPU model
 * the n steps run as one: the weights are read once per 8 sessions and the
 * step is replayed as one CUDA graph; on the CPU the sessions are stepped
 * in turn.  A kvl_batch holds the buffers for up to max_sessions sessions;
 * it borrows the model (free the batch first) and may be reused with any
 * sessions of that model.  Not for use by two threads at once.
 */
typedef struct kvl_batch kvl_batch;

kvl_status kvl_batch_new(const kvl_model *model, int32_t max_sessions,
                         kvl_batch **out, kvl_error *err);
void kvl_batch_free(kvl_batch *batch);
/* sessions[n] (distinct, of the batch's model), tokens[n]; logits
 * ([n][vocab]) and next ([n]) optional.  When the arguments are refused no
 * session has advanced; on the CPU a failure at session i leaves sessions
 * 0..i-1 advanced; after a failed GPU step the sessions' caches are
 * undefined (reset them). */
kvl_status kvl_batch_decode(kvl_batch *batch, kvl_session *const *sessions,
                            int32_t n, const int32_t *tokens, float *logits,
                            int32_t *next, kvl_error *err);

/*
 * Per-layer activations of the last forward call (keep_activations = 1).
 * Names: "x" (layer input residual), "attn_norm", "q", "k", "v" (q/k after
 * q/k-norm and RoPE), "attn_out" (before the output projection),
 * "attn_proj", "ffn_norm", "gate", "up", "ffn_act" (silu(gate)*up),
 * "ffn_out"; and with layer = -1: "final_norm".  *rows = tokens of the last
 * call, *cols = width.  The pointer is borrowed, valid until the next call.
 */
kvl_status kvl_session_activation(const kvl_session *session, int32_t layer,
                                  const char *name, const float **data,
                                  int32_t *rows, int32_t *cols,
                                  kvl_error *err);

/* ------------------------------------------------------------------------ */
/* Sampling                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct kvl_sampler kvl_sampler;

typedef struct kvl_sampler_options {
    float temperature; /* 0 = greedy (argmax)                               */
    int32_t top_k;     /* 0 = off                                           */
    float top_p;       /* 1.0 (or 0) = off                                  */
    uint64_t seed;
} kvl_sampler_options;

kvl_status kvl_sampler_new(const kvl_sampler_options *options,
                           int32_t vocab_size, kvl_sampler **out,
                           kvl_error *err);
void kvl_sampler_free(kvl_sampler *sampler);
/* Picks a token from logits[vocab_size].  Greedy ties go to the lowest id.
 * The logits buffer is not modified. */
int32_t kvl_sampler_sample(kvl_sampler *sampler, const float *logits);

/* ------------------------------------------------------------------------ */
/* Tokenizers                                                                */
/* ------------------------------------------------------------------------ */

typedef struct kvl_tokenizer kvl_tokenizer;

typedef enum kvl_tokenizer_kind {
    KVL_TOKENIZER_LLAMA2C = 0,      /* llama2.c tokenizer.bin                */
    KVL_TOKENIZER_HF = 1,           /* Hugging Face tokenizer.json           */
    KVL_TOKENIZER_SENTENCEPIECE = 2 /* SentencePiece tokenizer.model (BPE)   */
} kvl_tokenizer_kind;

/* Encode flags. */
#define KVL_ENCODE_ADD_SPECIAL 1u   /* add BOS/EOS as the tokenizer asks:
                                       tokenizer.json's post_processor,
                                       SentencePiece / llama2.c BOS         */
#define KVL_ENCODE_PLAIN_SPECIAL 2u /* special tokens written in the text
                                       (e.g. "<|im_start|>") are encoded as
                                       plain text, not as their ids          */
/* Decode flags. */
#define KVL_DECODE_SKIP_SPECIAL 1u  /* drop special (added) tokens          */

/*
 * Loads a tokenizer.  `path` is a model folder (tokenizer.json, else
 * tokenizer.model, else tokenizer.bin) or a file: a Hugging Face
 * tokenizer.json, a SentencePiece model (*.model), or a llama2.c
 * tokenizer.bin.  vocab_size is used only for tokenizer.bin (which does not
 * store it); pass 0 to read entries until the end of the file.
 */
kvl_status kvl_tokenizer_load(const char *path, int32_t vocab_size,
                              kvl_tokenizer **out, kvl_error *err);
/*
 * The tokenizer file that goes with a model: for a model folder its
 * tokenizer.json, tokenizer.model or tokenizer.bin (in that order); for a
 * llama2.c .bin file, beside the (symlink-resolved) file: tok<vocab>.bin
 * (stories260K.bin -> tok512.bin), tokenizer.bin, or the only tok*.bin.
 * *path is a new string owned by the caller (kvl_free); KVL_ERR_IO with
 * what was looked for when there is none.
 */
kvl_status kvl_tokenizer_find(const char *model_path, int32_t vocab_size,
                              char **path, kvl_error *err);
void kvl_tokenizer_free(kvl_tokenizer *tok);
kvl_tokenizer_kind kvl_tokenizer_get_kind(const kvl_tokenizer *tok);
/* Number of ids (added tokens included). */
int32_t kvl_tokenizer_vocab_size(const kvl_tokenizer *tok);
/* BOS / EOS ids, or -1 when the tokenizer has none. */
int32_t kvl_tokenizer_bos(const kvl_tokenizer *tok);
int32_t kvl_tokenizer_eos(const kvl_tokenizer *tok);

/*
 * Encodes NUL-terminated UTF-8 text with KVL_ENCODE_* flags.  Writes at
 * most `cap` ids and the number needed to *n_out; returns KVL_ERR_RANGE if
 * cap was too small (call again with a larger buffer).
 */
kvl_status kvl_tokenizer_encode(const kvl_tokenizer *tok, const char *text,
                                unsigned flags, int32_t *ids, int32_t cap,
                                int32_t *n_out, kvl_error *err);
/* The same for `len` bytes (may hold NULs) into a new array *ids of *n_ids
 * entries, owned by the caller (kvl_free). */
kvl_status kvl_tokenizer_encode_alloc(const kvl_tokenizer *tok,
                                      const char *text, size_t len,
                                      unsigned flags, int32_t **ids,
                                      size_t *n_ids, kvl_error *err);
/* Decodes ids to text (the tokenizer's decoders applied to the whole
 * sequence) into a new NUL-terminated string *text of *len bytes, owned by
 * the caller (kvl_free).  Out-of-range ids are KVL_ERR_RANGE. */
kvl_status kvl_tokenizer_decode(const kvl_tokenizer *tok, const int32_t *ids,
                                size_t n, unsigned flags, char **text,
                                size_t *len, kvl_error *err);
/*
 * Text of `id` when it follows `prev_id` (-1 for none), for streaming
 * output.  Borrowed string, valid until the next call on this tokenizer or
 * its free; NULL for an out-of-range id.  Byte-level tokenizers may return
 * an incomplete UTF-8 sequence: concatenating the pieces gives the text.
 */
const char *kvl_tokenizer_decode_piece(kvl_tokenizer *tok, int32_t prev_id,
                                       int32_t id);
/* The vocabulary entry of `id` as stored (e.g. "\u0120the", "<0x0A>"),
 * borrowed; NULL when out of range. */
const char *kvl_tokenizer_id_to_token(const kvl_tokenizer *tok, int32_t id);
/* The id of a vocabulary entry or added token, or -1. */
int32_t kvl_tokenizer_token_to_id(const kvl_tokenizer *tok, const char *token);

/* Frees memory that a kvl_* call returned to the caller. */
void kvl_free(void *ptr);

/*
 * Trains a byte-level BPE tokenizer (docs/tokenizer-training.md) on UTF-8
 * text files (plain or zstd-compressed) and writes out_dir/tokenizer.json
 * and out_dir/tokenizer_config.json, loadable by kvl_tokenizer_load and by
 * Hugging Face `tokenizers`.  Zero-initialised options give the defaults
 * except vocab_size, which is required.
 */
typedef struct kvl_bpe_train_options {
    int32_t vocab_size;       /* ids in all, special tokens included;
                                 >= 256 + number of special tokens         */
    const char *pretokenizer; /* split regex: "qwen" (NULL = default) or
                                 "gpt2"                                    */
    int64_t min_frequency;    /* stop when the best pair is seen fewer
                                 times (0 = no limit)                      */
    const char *const *special_tokens; /* NULL = <|endoftext|>,
                                 <|im_start|>, <|im_end|>                  */
    size_t n_special;         /* entries of special_tokens                 */
    int32_t n_threads;        /* 0 = OpenMP default                        */
    int32_t no_nfc;           /* 1: no NFC normaliser (default: NFC)       */
} kvl_bpe_train_options;

typedef struct kvl_bpe_train_stats {
    int64_t bytes;            /* corpus bytes read (after decompression)   */
    int64_t words;            /* pre-tokens counted                        */
    int64_t unique_words;
    int32_t vocab_size;       /* ids written (less than asked when the
                                 corpus ran out of pairs)                  */
    int32_t n_merges;
    double seconds_count;     /* reading + pre-tokenising + counting       */
    double seconds_merge;     /* the merge loop                            */
} kvl_bpe_train_stats;

/* stats may be NULL. */
kvl_status kvl_tokenizer_train_bpe(const kvl_bpe_train_options *options,
                                   const char *const *files, size_t n_files,
                                   const char *out_dir,
                                   kvl_bpe_train_stats *stats,
                                   kvl_error *err);

/* ------------------------------------------------------------------------ */
/* Chat templates                                                            */
/* ------------------------------------------------------------------------ */

/* The template families kvlab renders (no general Jinja engine). */
typedef enum kvl_chat_family {
    KVL_CHAT_AUTO = 0,   /* detect from tokenizer_config.json              */
    KVL_CHAT_CHATML = 1, /* <|im_start|>role\n...<|im_end|> (Qwen2/2.5)    */
    KVL_CHAT_QWEN3 = 2,  /* ChatML with Qwen3's thinking conventions        */
    KVL_CHAT_LLAMA2 = 3, /* <s>[INST] <<SYS>> ... [/INST]                   */
    KVL_CHAT_LLAMA3 = 4, /* <|start_header_id|>role<|end_header_id|> ...    */
    KVL_CHAT_ZEPHYR = 5  /* <|user|>\n...</s> (Zephyr, TinyLlama chat)     */
} kvl_chat_family;

typedef struct kvl_chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content;
} kvl_chat_message;

/* "chatml", "qwen3", "llama2", "llama3", "zephyr" (and "auto"). */
kvl_status kvl_chat_family_parse(const char *name, kvl_chat_family *out);
const char *kvl_chat_family_name(kvl_chat_family family);

/*
 * Renders a conversation as transformers' apply_chat_template(messages,
 * add_generation_prompt=...) renders it with the template of the
 * tokenizer_config.json at `config_path` (the file or its model folder).
 * With family KVL_CHAT_AUTO the template is recognised from its text, and
 * an unknown template is KVL_ERR_UNSUPPORTED; another family forces that
 * rendering (config_path may then be NULL: BOS/EOS strings default to the
 * family's own).  *out is a new NUL-terminated string owned by the caller
 * (kvl_free).  Encode the result without KVL_ENCODE_ADD_SPECIAL: templates
 * write BOS themselves where the family uses one.
 */
kvl_status kvl_chat_render(const char *config_path, kvl_chat_family family,
                           const kvl_chat_message *messages, size_t n,
                           int add_generation_prompt, char **out,
                           kvl_error *err);

/* ------------------------------------------------------------------------ */
/* The experiment program (docs/experiments.md)                              */
/* ------------------------------------------------------------------------ */

/* Progress of a long task: `done` of `total` units of the task named
 * `task` (e.g. "modes: demo-receiver").  Called on the thread that called
 * kvl_experiment_run, at most about 20 times a second. */
typedef void (*kvl_progress_fn)(void *user, const char *task, int64_t done,
                                int64_t total);

typedef struct kvl_run_options {
    const char *phase;      /* NULL or "all": the config's phases; else one
                               of "structure", "modes", "transfer",
                               "identity", "sweep"                        */
    const char *output_dir; /* NULL: <config output>/<config name>        */
    int32_t n_threads;      /* 0 = every core (OpenMP default)            */
    const char *revision;   /* source revision for the provenance block
                               (e.g. `git describe`), may be NULL         */
    const char *const *models; /* n_models paths replacing the config's
                                  models (and the sweep's), or NULL       */
    int32_t n_models;
    kvl_progress_fn progress; /* may be NULL */
    void *progress_user;
} kvl_run_options;

/*
 * Runs the experiment program described by the JSON configuration at
 * `config_path` and writes its results folder: runs.jsonl, summary.json,
 * report.md with plots under plots/, and the provenance (in summary.json
 * and report.md).  On success *report_path (if non-NULL) receives the
 * report's path, owned by the caller (kvl_free).  Same config and seed give
 * the same numbers whatever the thread count.
 */
kvl_status kvl_experiment_run(const char *config_path,
                              const kvl_run_options *options,
                              char **report_path, kvl_error *err);

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* KVLAB_H */
