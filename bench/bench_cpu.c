/*
 * bench_cpu: CPU throughput of kvlab on this machine.
 *
 *   1. Memory bandwidth, STREAM style: OpenMP-parallel copy (c = a) and
 *      triad (a = b + s*c) over arrays of --stream-mb MB of doubles, best
 *      of 20, counting bytes read + bytes written (as STREAM does; the
 *      write-allocate reads are not counted), and a read-only sum over one
 *      array, read as 4 streams per thread (the access pattern of decoding,
 *      which only reads weights, several rows at a time).
 *   2. A model: --model PATH, or else a random-weight LlamaForCausalLM of a
 *      real shape written to a fresh /tmp folder (config.json +
 *      model.safetensors through the internal safetensors writer): dim 768,
 *      12 layers, 12 heads, 12 kv heads, intermediate 2048, vocab 32000,
 *      untied embeddings (134M parameters), BF16 unless --dtype F32.
 *      - prefill tokens/s: 128 and 512 tokens in one kvl_session_forward
 *        call (logits of the last token), best of several runs;
 *      - decode tokens/s: 64 single-token calls (logits each step) after a
 *        128-token prefill, best of 2 runs;
 *      - the decode bandwidth bound: copy bandwidth / bytes of weights read
 *        per token (all weights, less the embedding table when it is not
 *        the lm_head: a step reads one row of it); also the same with the
 *        read-only bandwidth, the tighter bound for a read-only workload.
 *   3. kvl_cache_save (F32 and BF16) and kvl_cache_load of the 512-token
 *      cache, file bytes per second (to /tmp, so mostly the page cache).
 *
 * The last thing printed is a Markdown table of the results.
 */
#include "kvlab.h"
#include "core/dtype.h"
#include "model/model.h"
#include "model/safetensors.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_ROWS_MAX 40
#define STREAM_REPS 20

typedef struct bench_opts {
    int threads;        /* 0 = OpenMP default */
    const char *model;  /* NULL = generate    */
    kvl_dtype dtype;
    int stream_mb;
    int layers;
} bench_opts;

typedef struct row {
    char name[96];
    char value[32];
} row;

typedef struct results {
    row rows[N_ROWS_MAX];
    int n;
} results;

static void add_row(results *r, const char *name, const char *fmt, double v)
{
    if (r->n >= N_ROWS_MAX)
        return;
    snprintf(r->rows[r->n].name, sizeof r->rows[r->n].name, "%s", name);
    snprintf(r->rows[r->n].value, sizeof r->rows[r->n].value, fmt, v);
    r->n++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const kvl_error *err)
{
    fprintf(stderr, "bench_cpu: %s: %s\n", what, err ? err->message : "");
    exit(1);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_cpu [--threads N] [--model PATH] [--dtype BF16|F32]\n"
            "                 [--layers N] [--stream-mb MB]\n"
            "\n"
            "  --threads N     OpenMP threads for STREAM and the model "
            "(default: all)\n"
            "  --model PATH    benchmark this model (HF folder or llama2.c "
            ".bin); default:\n"
            "                  a random-weight LlamaForCausalLM, dim 768, 12 "
            "layers,\n"
            "                  12 heads, intermediate 2048, vocab 32000 "
            "(134M params),\n"
            "                  written to /tmp and removed afterwards\n"
            "  --dtype D       weights of the generated model: BF16 (default) "
            "or F32\n"
            "                  (ignored with --model)\n"
            "  --layers N      layers of the generated model (default 12)\n"
            "  --stream-mb MB  size of each STREAM array (default 256)\n"
            "  --help          this text\n");
}

static void parse_args(int argc, char **argv, bench_opts *o)
{
    o->threads = 0;
    o->model = NULL;
    o->dtype = KVL_DTYPE_BF16;
    o->stream_mb = 256;
    o->layers = 12;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        static const char *const known[] = {"--threads", "--model", "--dtype",
                                            "--layers", "--stream-mb"};
        int is_known = 0;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            is_known |= strcmp(a, known[k]) == 0;
        if (!is_known || !v) {
            fprintf(stderr, "bench_cpu: %s: %s\n",
                    is_known ? "missing value for" : "unknown option", a);
            usage(stderr);
            exit(2);
        }
        char *end = NULL;
        if (strcmp(a, "--threads") == 0) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 1024) {
                fprintf(stderr, "bench_cpu: bad --threads '%s'\n", v);
                exit(2);
            }
            o->threads = (int)n;
        } else if (strcmp(a, "--model") == 0) {
            o->model = v;
        } else if (strcmp(a, "--dtype") == 0) {
            if (kvl_dtype_parse(v, &o->dtype) != KVL_OK ||
                (o->dtype != KVL_DTYPE_BF16 && o->dtype != KVL_DTYPE_F32)) {
                fprintf(stderr, "bench_cpu: --dtype must be BF16 or F32\n");
                exit(2);
            }
        } else if (strcmp(a, "--layers") == 0) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 256) {
                fprintf(stderr, "bench_cpu: bad --layers '%s'\n", v);
                exit(2);
            }
            o->layers = (int)n;
        } else if (strcmp(a, "--stream-mb") == 0) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 65536) {
                fprintf(stderr, "bench_cpu: bad --stream-mb '%s'\n", v);
                exit(2);
            }
            o->stream_mb = (int)n;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* 1. Memory bandwidth                                                      */
/* ------------------------------------------------------------------------ */

typedef struct stream_result {
    double copy_gbs, triad_gbs, read_gbs;
} stream_result;

static stream_result run_stream(int mb)
{
    /* n is a multiple of 4 (mb >= 1). */
    const size_t n = (size_t)mb * 1024 * 1024 / sizeof(double);
    double *a = aligned_alloc(64, n * sizeof(double));
    double *b = aligned_alloc(64, n * sizeof(double));
    double *c = aligned_alloc(64, n * sizeof(double));
    uint64_t *d = aligned_alloc(64, n * sizeof(uint64_t));
    if (!a || !b || !c || !d) {
        fprintf(stderr, "bench_cpu: cannot allocate 3 x %d MB\n", mb);
        exit(1);
    }
    const long ln = (long)n;
    const long lq = ln / 4; /* read: 4 streams per thread */
#pragma omp parallel for schedule(static)
    for (long i = 0; i < ln; i++) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.0;
        d[i] = (uint64_t)i;
    }
    const double s = 3.0;
    double best_copy = INFINITY, best_triad = INFINITY, best_read = INFINITY;
    uint64_t total = 0;
    for (int rep = 0; rep < STREAM_REPS; rep++) {
        double t0 = now_s();
#pragma omp parallel for schedule(static)
        for (long i = 0; i < ln; i++)
            c[i] = a[i];
        double t1 = now_s();
#pragma omp parallel for schedule(static)
        for (long i = 0; i < ln; i++)
            a[i] = b[i] + s * c[i];
        double t2 = now_s();
        uint64_t acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
        for (long i = 0; i < lq; i++)
            acc += d[i] + d[i + lq] + d[i + 2 * lq] + d[i + 3 * lq];
        double t3 = now_s();
        total += acc;
        if (t3 - t2 < best_read)
            best_read = t3 - t2;
        if (t1 - t0 < best_copy)
            best_copy = t1 - t0;
        if (t2 - t1 < best_triad)
            best_triad = t2 - t1;
    }
    /* Every pass leaves a = 2 + 3 * a_old; d sums to n(n-1)/2 each pass:
     * checks that the loops ran. */
    double sum = a[0] + a[n / 2] + a[n - 1] + c[n - 1];
    uint64_t want = (uint64_t)n * ((uint64_t)n - 1) / 2 * STREAM_REPS;
    if (!(sum > 0) || total != want) {
        fprintf(stderr, "bench_cpu: STREAM check failed\n");
        exit(1);
    }
    free(a);
    free(b);
    free(c);
    free(d);
    stream_result r;
    r.copy_gbs = 2.0 * (double)n * sizeof(double) / best_copy / 1e9;
    r.triad_gbs = 3.0 * (double)n * sizeof(double) / best_triad / 1e9;
    r.read_gbs = (double)n * sizeof(uint64_t) / best_read / 1e9;
    return r;
}

/* ------------------------------------------------------------------------ */
/* 2. A random-weight model                                                  */
/* ------------------------------------------------------------------------ */

typedef struct shape {
    int dim, layers, heads, kv_heads, hidden, vocab, max_pos;
} shape;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [-1, 1). */
static float rng_uniform(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) * (2.0 / 9007199254740992.0) -
                   1.0);
}

/* A [rows, cols] tensor, uniform in +-scale (or all `fill` if scale is 0). */
static void *make_tensor(kvl_st_write_tensor *t, const char *name,
                         kvl_dtype dtype, int64_t rows, int64_t cols,
                         float scale, float fill, uint64_t *rng)
{
    size_t n = (size_t)rows * (size_t)cols;
    size_t es = kvl_dtype_size(dtype);
    void *data = malloc(n * es);
    if (!data) {
        fprintf(stderr, "bench_cpu: out of memory for %s\n", name);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        float v = scale != 0.0f ? scale * rng_uniform(rng) : fill;
        if (dtype == KVL_DTYPE_BF16) {
            uint16_t h = kvl_f32_to_bf16(v);
            memcpy((char *)data + 2 * i, &h, 2);
        } else {
            memcpy((char *)data + 4 * i, &v, 4);
        }
    }
    char *copy = strdup(name);
    if (!copy) {
        fprintf(stderr, "bench_cpu: out of memory\n");
        exit(1);
    }
    t->name = copy;
    t->dtype = dtype;
    if (rows == 1) {
        t->ndim = 1;
        t->shape[0] = cols;
    } else {
        t->ndim = 2;
        t->shape[0] = rows;
        t->shape[1] = cols;
    }
    t->data = data;
    return data;
}

static void write_random_model(const char *dir, const shape *sh,
                               kvl_dtype dtype)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_cpu: cannot write %s: %s\n", path,
                strerror(errno));
        exit(1);
    }
    fprintf(f,
            "{\n"
            "  \"architectures\": [\"LlamaForCausalLM\"],\n"
            "  \"model_type\": \"llama\",\n"
            "  \"hidden_size\": %d,\n"
            "  \"intermediate_size\": %d,\n"
            "  \"num_hidden_layers\": %d,\n"
            "  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n"
            "  \"vocab_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n"
            "  \"rms_norm_eps\": 1e-05,\n"
            "  \"rope_theta\": 10000.0,\n"
            "  \"hidden_act\": \"silu\",\n"
            "  \"tie_word_embeddings\": false,\n"
            "  \"torch_dtype\": \"%s\",\n"
            "  \"bos_token_id\": 1,\n"
            "  \"eos_token_id\": 2\n"
            "}\n",
            sh->dim, sh->hidden, sh->layers, sh->heads, sh->kv_heads,
            sh->vocab, sh->max_pos,
            dtype == KVL_DTYPE_BF16 ? "bfloat16" : "float32");
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_cpu: cannot write %s\n", path);
        exit(1);
    }

    const int n_tensors = 3 + 9 * sh->layers;
    kvl_st_write_tensor *t = calloc((size_t)n_tensors, sizeof *t);
    void **bufs = calloc((size_t)n_tensors, sizeof *bufs);
    if (!t || !bufs) {
        fprintf(stderr, "bench_cpu: out of memory\n");
        exit(1);
    }
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    const int hd = sh->dim / sh->heads;
    const float s_dim = 1.0f / sqrtf((float)sh->dim);
    const float s_hid = 1.0f / sqrtf((float)sh->hidden);
    int k = 0;
    bufs[k] = make_tensor(&t[k], "model.embed_tokens.weight", dtype, sh->vocab,
                          sh->dim, 1.0f, 0, &rng);
    k++;
    for (int l = 0; l < sh->layers; l++) {
        struct {
            const char *name;
            int64_t rows, cols;
            float scale, fill;
        } spec[9] = {
            {"input_layernorm.weight", 1, sh->dim, 0, 1},
            {"self_attn.q_proj.weight", (int64_t)sh->heads * hd, sh->dim,
             s_dim, 0},
            {"self_attn.k_proj.weight", (int64_t)sh->kv_heads * hd, sh->dim,
             s_dim, 0},
            {"self_attn.v_proj.weight", (int64_t)sh->kv_heads * hd, sh->dim,
             s_dim, 0},
            {"self_attn.o_proj.weight", sh->dim, (int64_t)sh->heads * hd,
             s_dim, 0},
            {"post_attention_layernorm.weight", 1, sh->dim, 0, 1},
            {"mlp.gate_proj.weight", sh->hidden, sh->dim, s_dim, 0},
            {"mlp.up_proj.weight", sh->hidden, sh->dim, s_dim, 0},
            {"mlp.down_proj.weight", sh->dim, sh->hidden, s_hid, 0},
        };
        for (int j = 0; j < 9; j++) {
            char name[256];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, spec[j].name);
            bufs[k] = make_tensor(&t[k], name, dtype, spec[j].rows,
                                  spec[j].cols, spec[j].scale, spec[j].fill,
                                  &rng);
            k++;
        }
    }
    bufs[k] = make_tensor(&t[k], "model.norm.weight", dtype, 1, sh->dim, 0, 1,
                          &rng);
    k++;
    bufs[k] = make_tensor(&t[k], "lm_head.weight", dtype, sh->vocab, sh->dim,
                          s_dim, 0, &rng);
    k++;

    kvl_st_meta meta = {(char *)"format", (char *)"pt"};
    kvl_error err = {0};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (kvl_st_write(path, t, n_tensors, &meta, 1, &err) != KVL_OK)
        die("writing the random model", &err);
    for (int i = 0; i < n_tensors; i++) {
        free(bufs[i]);
        free((char *)t[i].name);
    }
    free(bufs);
    free(t);
}

static void remove_model_dir(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* Model timings                                                             */
/* ------------------------------------------------------------------------ */

/* Best time of `reps` prefills of n tokens into an empty cache. */
static double time_prefill(kvl_session *s, const int32_t *tokens, int32_t n,
                           float *logits, int reps)
{
    double best = INFINITY;
    kvl_error err = {0};
    for (int r = 0; r < reps; r++) {
        kvl_session_reset(s);
        double t0 = now_s();
        if (kvl_session_forward(s, tokens, n, logits, 0, &err) != KVL_OK)
            die("prefill", &err);
        double t = now_s() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

/* Best time of `reps` runs of n_steps single-token steps after a prefill. */
static double time_decode(kvl_session *s, const int32_t *tokens,
                          int32_t n_prefill, int32_t n_steps, float *logits,
                          int reps)
{
    double best = INFINITY;
    kvl_error err = {0};
    for (int r = 0; r < reps; r++) {
        kvl_session_reset(s);
        if (kvl_session_forward(s, tokens, n_prefill, logits, 0, &err) !=
            KVL_OK)
            die("prefill before decode", &err);
        double t0 = now_s();
        for (int32_t i = 0; i < n_steps; i++) {
            if (kvl_session_forward(s, &tokens[n_prefill + i], 1, logits, 0,
                                    &err) != KVL_OK)
                die("decode step", &err);
        }
        double t = now_s() - t0;
        if (t < best)
            best = t;
    }
    return best;
}

static double file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size : 0.0;
}

static void run_cache_io(const kvl_cache *cache, results *res)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/kvlab-bench-cache-%d.safetensors",
             (int)getpid());
    kvl_error err = {0};
    const kvl_dtype dts[2] = {KVL_DTYPE_F32, KVL_DTYPE_BF16};
    for (int d = 0; d < 2; d++) {
        double best_save = INFINITY, best_load = INFINITY;
        for (int r = 0; r < 3; r++) {
            double t0 = now_s();
            if (kvl_cache_save(cache, path, dts[d], &err) != KVL_OK)
                die("kvl_cache_save", &err);
            double t1 = now_s();
            kvl_cache *loaded = NULL;
            if (kvl_cache_load(path, &loaded, &err) != KVL_OK)
                die("kvl_cache_load", &err);
            double t2 = now_s();
            if (kvl_cache_n_tokens(loaded) != kvl_cache_n_tokens(cache)) {
                fprintf(stderr, "bench_cpu: reloaded cache has %d tokens, "
                                "not %d\n",
                        kvl_cache_n_tokens(loaded), kvl_cache_n_tokens(cache));
                exit(1);
            }
            kvl_cache_free(loaded);
            if (t1 - t0 < best_save)
                best_save = t1 - t0;
            if (t2 - t1 < best_load)
                best_load = t2 - t1;
        }
        double bytes = file_size(path);
        char name[96];
        printf("cache file %s: %.1f MB, save %.1f ms, load %.1f ms\n",
               kvl_dtype_name(dts[d]), bytes / 1e6, best_save * 1e3,
               best_load * 1e3);
        snprintf(name, sizeof name, "cache file size, %s (MB)",
                 kvl_dtype_name(dts[d]));
        add_row(res, name, "%.1f", bytes / 1e6);
        snprintf(name, sizeof name, "kvl_cache_save %s (MB/s)",
                 kvl_dtype_name(dts[d]));
        add_row(res, name, "%.0f", bytes / best_save / 1e6);
        snprintf(name, sizeof name, "kvl_cache_load %s (MB/s)",
                 kvl_dtype_name(dts[d]));
        add_row(res, name, "%.0f", bytes / best_load / 1e6);
    }
    unlink(path);
}

static void run_model(const bench_opts *o, const stream_result *sr,
                      results *res)
{
    char dir[64] = "";
    const char *model_path = o->model;
    shape sh = {768, o->layers, 12, 12, 2048, 32000, 2048};
    if (!model_path) {
        snprintf(dir, sizeof dir, "/tmp/kvlab-bench-XXXXXX");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "bench_cpu: mkdtemp: %s\n", strerror(errno));
            exit(1);
        }
        double t0 = now_s();
        write_random_model(dir, &sh, o->dtype);
        printf("wrote a random %s model to %s in %.1f s\n",
               kvl_dtype_name(o->dtype), dir, now_s() - t0);
        model_path = dir;
    }

    kvl_error err = {0};
    kvl_model *model = NULL;
    double t0 = now_s();
    if (kvl_model_load(model_path, NULL, &model, &err) != KVL_OK) {
        if (dir[0])
            remove_model_dir(dir);
        die("kvl_model_load", &err);
    }
    double t_load = now_s() - t0;
    kvl_model_info info;
    kvl_model_get_info(model, &info);
    /* One row of the embedding is read per token; the rest of the table
     * only when it doubles as the lm_head. */
    double emb_bytes = (double)model->tok_emb.rows *
                       (double)model->tok_emb.cols *
                       (double)kvl_dtype_size(model->tok_emb.dtype);
    double step_bytes = (double)info.weight_bytes -
                        (info.tied_embeddings ? 0.0 : emb_bytes);
    printf("model: %s, %s, %d layers, dim %d, hidden %d, heads %d/%d, vocab "
           "%d, %.1fM params, %s weights %.1f MB (%.1f MB read per decode "
           "step), loaded in %.2f s\n",
           o->model ? o->model : "(random)", info.arch_name, info.n_layers,
           info.dim, info.hidden_dim, info.n_heads, info.n_kv_heads,
           info.vocab_size, (double)info.n_params / 1e6,
           kvl_dtype_name(info.weight_dtype), (double)info.weight_bytes / 1e6,
           step_bytes / 1e6, t_load);
    add_row(res, "parameters (M)", "%.1f", (double)info.n_params / 1e6);
    add_row(res, "weight bytes read per decode token (MB)", "%.1f",
            step_bytes / 1e6);

    /* 512-token prefills and 128 + 64 decode steps need that many
     * positions. */
    const int32_t max_pos = info.max_seq_len > 0 ? info.max_seq_len : 640;
    if (max_pos < 192) {
        fprintf(stderr, "bench_cpu: the model's max_seq_len %d is below the "
                        "192 positions the decode test needs\n",
                info.max_seq_len);
        exit(1);
    }
    const int long_ok = max_pos >= 512;
    kvl_session_options so = {0};
    so.max_tokens = max_pos < 640 ? max_pos : 640;
    so.n_threads = o->threads;
    kvl_session *s = NULL;
    if (kvl_session_new(model, &so, &s, &err) != KVL_OK)
        die("kvl_session_new", &err);
    int32_t *tokens = malloc(640 * sizeof *tokens);
    float *logits = malloc((size_t)info.vocab_size * sizeof *logits);
    if (!tokens || !logits) {
        fprintf(stderr, "bench_cpu: out of memory\n");
        exit(1);
    }
    uint64_t rng = 12345;
    for (int i = 0; i < 640; i++)
        tokens[i] = info.vocab_size > 3
                        ? 3 + (int32_t)(rng_next(&rng) %
                                        (uint64_t)(info.vocab_size - 3))
                        : 0;

    /* Warm-up: pages in the mapped weights. */
    time_prefill(s, tokens, 16, logits, 1);

    double t128 = time_prefill(s, tokens, 128, logits, 3);
    printf("prefill 128: %.3f s, %.1f tokens/s\n", t128, 128 / t128);
    double t512 = long_ok ? time_prefill(s, tokens, 512, logits, 2) : NAN;
    if (long_ok)
        printf("prefill 512: %.3f s, %.1f tokens/s\n", t512, 512 / t512);
    else
        printf("prefill 512: skipped, max_seq_len %d\n", info.max_seq_len);
    double tdec = time_decode(s, tokens, 128, 64, logits, 2);
    double dec_tps = 64 / tdec;
    double bound_tps = sr->copy_gbs * 1e9 / step_bytes;
    double read_bound_tps = sr->read_gbs * 1e9 / step_bytes;
    printf("decode: 64 steps after 128 tokens in %.3f s, %.2f tokens/s "
           "(%.1f ms/token, %.1f GB/s of weights); bound by copy bandwidth "
           "%.2f tokens/s -> %.0f%%, by read bandwidth %.2f tokens/s -> "
           "%.0f%%\n",
           tdec, dec_tps, 1e3 * tdec / 64, step_bytes * dec_tps / 1e9,
           bound_tps, 100 * dec_tps / bound_tps, read_bound_tps,
           100 * dec_tps / read_bound_tps);
    add_row(res, "prefill 128 tokens (tokens/s)", "%.1f", 128 / t128);
    if (long_ok)
        add_row(res, "prefill 512 tokens (tokens/s)", "%.1f", 512 / t512);
    add_row(res, "decode after 128 (tokens/s)", "%.2f", dec_tps);
    add_row(res, "decode weight traffic (GB/s)", "%.2f",
            step_bytes * dec_tps / 1e9);
    add_row(res, "decode bound = copy BW / bytes per token (tokens/s)",
            "%.2f", bound_tps);
    add_row(res, "decode / copy bound (%)", "%.0f",
            100 * dec_tps / bound_tps);
    add_row(res, "decode bound = read BW / bytes per token (tokens/s)",
            "%.2f", read_bound_tps);
    add_row(res, "decode / read bound (%)", "%.0f",
            100 * dec_tps / read_bound_tps);

    /* 3. Cache files: the 512-token cache (128 if 512 does not fit). */
    kvl_session_reset(s);
    if (kvl_session_forward(s, tokens, long_ok ? 512 : 128, logits, 0,
                            &err) != KVL_OK)
        die("prefill", &err);
    run_cache_io(kvl_session_cache(s), res);

    free(tokens);
    free(logits);
    kvl_session_free(s);
    kvl_model_free(model);
    if (dir[0])
        remove_model_dir(dir);
}

int main(int argc, char **argv)
{
    bench_opts o;
    parse_args(argc, argv, &o);
    if (o.threads > 0)
        omp_set_num_threads(o.threads);
    int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
    printf("kvlab %s bench_cpu, %d threads\n", kvl_version(), threads);

    results res = {0};
    add_row(&res, "threads", "%.0f", threads);

    stream_result sr = run_stream(o.stream_mb);
    printf("STREAM (%d MB arrays): copy %.2f GB/s, triad %.2f GB/s, read "
           "%.2f GB/s\n",
           o.stream_mb, sr.copy_gbs, sr.triad_gbs, sr.read_gbs);
    add_row(&res, "STREAM copy (GB/s)", "%.2f", sr.copy_gbs);
    add_row(&res, "STREAM triad (GB/s)", "%.2f", sr.triad_gbs);
    add_row(&res, "read-only sum (GB/s)", "%.2f", sr.read_gbs);

    run_model(&o, &sr, &res);

    printf("\n| metric | value |\n| --- | ---: |\n");
    for (int i = 0; i < res.n; i++)
        printf("| %s | %s |\n", res.rows[i].name, res.rows[i].value);
    return 0;
}
