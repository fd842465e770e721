/*
 * Every malformed input must give the right status and a message that
 * names the file and says what is wrong.
 */
#include "test_util.h"
#include "tiny_hf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Loads `path` and checks the status and that the message contains each
 * of up to three fragments. */
static void expect_fail(const char *what, const char *path, kvl_status code,
                        const char *a, const char *b, const char *c)
{
    kvl_model *m = NULL;
    kvl_error err = {0};
    kvl_status st = kvl_model_load(path, NULL, &m, &err);
    CHECK(st == code, "%s: got %s, want %s (%s)", what, kvl_status_name(st),
          kvl_status_name(code), err.message);
    CHECK(m == NULL, "%s: model returned on failure", what);
    CHECK(err.code == code, "%s: err.code %d", what, err.code);
    const char *frags[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        CHECK(!frags[i] || strstr(err.message, frags[i]),
              "%s: message '%s' lacks '%s'", what, err.message, frags[i]);
    kvl_model_free(m);
}

/* Writes a spec into a new folder, runs expect_fail on it, removes it. */
static void expect_spec_fail(const char *what, const tiny_spec *s,
                             kvl_status code, const char *a, const char *b,
                             const char *c)
{
    const char *dir = tiny_mkdtemp();
    if (!dir || tiny_write(dir, s) != 0) {
        CHECK(0, "%s: could not write the model", what);
        return;
    }
    expect_fail(what, dir, code, a, b, c);
    tiny_rmdir(dir);
}

static void test_tensors(void)
{
    tiny_spec s = tiny_default();
    s.omit = "model.layers.1.mlp.up_proj.weight";
    expect_spec_fail("missing tensor", &s, KVL_ERR_FORMAT,
                     "model.layers.1.mlp.up_proj.weight", "model.safetensors",
                     "missing");
    s.n_shards = 2;
    expect_spec_fail("missing tensor (sharded)", &s, KVL_ERR_FORMAT,
                     "model.layers.1.mlp.up_proj.weight",
                     "model.safetensors.index.json", "missing");

    s = tiny_default();
    s.bad_shape = "model.layers.0.self_attn.k_proj.weight";
    expect_spec_fail("transposed k_proj", &s, KVL_ERR_FORMAT,
                     "tensor 'model.layers.0.self_attn.k_proj.weight' in '",
                     "model.safetensors' has shape [8, 4], expected [4, 8]",
                     NULL);
    s.bad_shape = "model.norm.weight";
    expect_spec_fail("long norm", &s, KVL_ERR_FORMAT, "model.norm.weight",
                     "has shape [9], expected [8]", NULL);

    s = tiny_default();
    s.bad_dtype = "model.layers.0.self_attn.q_proj.weight";
    expect_spec_fail("I32 weight", &s, KVL_ERR_UNSUPPORTED,
                     "model.layers.0.self_attn.q_proj.weight", "dtype I32",
                     "model.safetensors");

    s = tiny_default();
    s.tie = 0;
    s.lm_head = 0;
    expect_spec_fail("untied without lm_head", &s, KVL_ERR_FORMAT,
                     "lm_head.weight", "missing", NULL);

    s = tiny_default();
    s.arch = KVL_ARCH_QWEN3;
    s.omit = "model.layers.0.self_attn.k_norm.weight";
    expect_spec_fail("qwen3 without k_norm", &s, KVL_ERR_FORMAT,
                     "self_attn.k_norm.weight", "missing", NULL);
}

static void test_config(void)
{
    tiny_spec s = tiny_default();
    s.arch_json = "\"architectures\": [\"MistralForCausalLM\"]";
    expect_spec_fail("unknown architecture", &s, KVL_ERR_UNSUPPORTED,
                     "MistralForCausalLM", "config.json", "not supported");

    s = tiny_default();
    s.rope_json = "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}";
    expect_spec_fail("yarn rope", &s, KVL_ERR_UNSUPPORTED, "yarn",
                     "config.json", "rope");
    s.rope_json = "\"rope_parameters\": {\"rope_type\": \"dynamic\", "
                  "\"rope_theta\": 10000, \"factor\": 2}";
    expect_spec_fail("dynamic rope (5.x)", &s, KVL_ERR_UNSUPPORTED,
                     "dynamic", "config.json", NULL);
    s.rope_json = "\"rope_scaling\": {\"rope_type\": \"llama3\", "
                  "\"factor\": 8}";
    expect_spec_fail("llama3 rope without low_freq_factor", &s,
                     KVL_ERR_FORMAT, "low_freq_factor", "config.json", NULL);
    s.rope_json = "\"rope_theta\": -1";
    expect_spec_fail("negative theta", &s, KVL_ERR_FORMAT, "theta",
                     "config.json", NULL);

    s = tiny_default();
    s.extra_json = ",\n  \"hidden_act\": \"gelu\"";
    expect_spec_fail("gelu", &s, KVL_ERR_UNSUPPORTED, "gelu", "config.json",
                     NULL);
    s.extra_json = ",\n  \"num_key_value_heads\": 3";
    expect_spec_fail("heads not divisible", &s, KVL_ERR_FORMAT,
                     "num_key_value_heads 3", "config.json", NULL);
    s.extra_json = ",\n  \"hidden_size\": -8";
    expect_spec_fail("negative hidden_size", &s, KVL_ERR_FORMAT,
                     "hidden_size", "config.json", NULL);
    s.extra_json = ",\n  \"vocab_size\": \"ten\"";
    expect_spec_fail("string vocab_size", &s, KVL_ERR_FORMAT, "vocab_size",
                     "integer", NULL);

    s = tiny_default();
    s.arch = KVL_ARCH_QWEN2;
    s.extra_json = ",\n  \"use_sliding_window\": true";
    expect_spec_fail("sliding window", &s, KVL_ERR_UNSUPPORTED,
                     "use_sliding_window", "config.json", NULL);
}

/* A valid tiny folder whose file `name` is then replaced by `text`. */
static void expect_file_fail(const char *what, const char *name,
                             const char *text, kvl_status code,
                             const char *a, const char *b)
{
    tiny_spec s = tiny_default();
    const char *dir = tiny_mkdtemp();
    if (!dir || tiny_write(dir, &s) != 0) {
        CHECK(0, "%s: could not write the model", what);
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (text) {
        FILE *fp = fopen(path, "w");
        CHECK(fp != NULL, "%s: open", what);
        if (fp) {
            fputs(text, fp);
            fclose(fp);
        }
    } else {
        unlink(path);
    }
    expect_fail(what, dir, code, a, b, NULL);
    tiny_rmdir(dir);
}

static void test_files(void)
{
    expect_file_fail("bad JSON", "config.json",
                     "{\n  \"hidden_size\": 8,\n  \"vocab_size\": ,\n}\n",
                     KVL_ERR_FORMAT, "config.json", "line 3");
    expect_file_fail("missing config.json", "config.json", NULL, KVL_ERR_IO,
                     "config.json", NULL);
    expect_file_fail("no weights", "model.safetensors", NULL, KVL_ERR_IO,
                     "model.safetensors", NULL);
    expect_fail("nonexistent path", "/nonexistent/kvlab/model", KVL_ERR_IO,
                "/nonexistent/kvlab/model", NULL, NULL);

    /* Index naming a shard that is not there. */
    tiny_spec s = tiny_default();
    s.n_shards = 2;
    const char *dir = tiny_mkdtemp();
    if (dir && tiny_write(dir, &s) == 0) {
        char path[512];
        snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors",
                 dir);
        unlink(path);
        expect_fail("missing shard", dir, KVL_ERR_IO,
                    "model-00002-of-00002.safetensors", NULL, NULL);
        tiny_rmdir(dir);
    }

    /* An index without weight_map (and no single file). */
    s = tiny_default();
    dir = tiny_mkdtemp();
    if (dir && tiny_write(dir, &s) == 0) {
        char path[512];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        FILE *fp = fopen(path, "w");
        if (fp) {
            fputs("{\"metadata\": {}}", fp);
            fclose(fp);
        }
        expect_fail("index without weight_map", dir, KVL_ERR_FORMAT,
                    "model.safetensors.index.json", "weight_map", NULL);
        tiny_rmdir(dir);
    }
}

/* Truncating the single weight file cuts the last tensor short. */
static void test_truncated(void)
{
    tiny_spec s = tiny_default();
    const char *dir = tiny_mkdtemp();
    if (!dir || tiny_write(dir, &s) != 0) {
        CHECK(0, "could not write the model");
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fclose(fp);
    CHECK(truncate(path, size - 10) == 0, "truncate");
    expect_fail("truncated weights", dir, KVL_ERR_FORMAT, "model.safetensors",
                "past end", NULL);
    CHECK(truncate(path, 5) == 0, "truncate");
    expect_fail("5-byte weights", dir, KVL_ERR_FORMAT, "model.safetensors",
                "too short", NULL);
    tiny_rmdir(dir);
}

/* Raw safetensors files: header bytes typed by hand. */
static void write_raw(const char *path, uint64_t hlen, const char *json,
                      size_t data_bytes)
{
    FILE *fp = fopen(path, "wb");
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len, 1, 8, fp);
    fputs(json, fp);
    for (size_t i = 0; i < data_bytes; i++)
        fputc(0, fp);
    fclose(fp);
}

static void expect_st_fail(const char *what, uint64_t hlen, const char *json,
                           size_t data_bytes, const char *frag)
{
    const char *path = kvt_temp_path(".safetensors");
    write_raw(path, hlen, json, data_bytes);
    kvl_st_file f;
    kvl_error err = {0};
    kvl_status st = kvl_st_open(path, &f, &err);
    CHECK(st == KVL_ERR_FORMAT, "%s: got %s (%s)", what, kvl_status_name(st),
          err.message);
    CHECK(strstr(err.message, path) && strstr(err.message, frag),
          "%s: message '%s' lacks the path or '%s'", what, err.message, frag);
    CHECK(f.map == NULL && f.n_tensors == 0 && f.path == NULL,
          "%s: file not left empty", what);
    kvl_st_close(&f);
}

static void test_safetensors_headers(void)
{
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                     "\"data_offsets\":[0,8]}}";
    expect_st_fail("header length past end", 1000, ok, 8,
                   "header length 1000 past end of file (size ");
    expect_st_fail("huge header length", UINT64_MAX, ok, 8, "past end");
    expect_st_fail("data_offsets past end", strlen(ok), ok, 4,
                   "data_offsets [0, 8] past end");
    const char *three = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],"
                        "\"data_offsets\":[0,8]}}";
    expect_st_fail("offsets vs shape", strlen(three), three, 12,
                   "span 8 bytes but dtype F32 and shape [3] need 12");
    const char *bad_json = "{\"a\":{\"dtype\":\"F32\",,}}";
    expect_st_fail("bad header JSON", strlen(bad_json), bad_json, 0,
                   "column");
    const char *neg = "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],"
                      "\"data_offsets\":[0,8]}}";
    expect_st_fail("negative shape", strlen(neg), neg, 8, "shape");
    const char *q = "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],"
                    "\"data_offsets\":[0,8]}}";
    expect_st_fail("unknown dtype", strlen(q), q, 8, "unknown dtype 'Q4'");
    const char *rev = "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],"
                      "\"data_offsets\":[4,0]}}";
    expect_st_fail("reversed offsets", strlen(rev), rev, 8, "end before");
    const char *dup = "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],"
                      "\"data_offsets\":[0,0]},\"a\":{\"dtype\":\"U8\","
                      "\"shape\":[0],\"data_offsets\":[0,0]}}";
    expect_st_fail("duplicate name", strlen(dup), dup, 0, "duplicate");
    const char *meta = "{\"__metadata__\":{\"k\":1}}";
    expect_st_fail("non-string metadata", strlen(meta), meta, 0,
                   "__metadata__");
    const char *arr = "[1,2]";
    expect_st_fail("array header", strlen(arr), arr, 0, "not a JSON object");
    const char *dims = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                       "\"data_offsets\":[0,1]}}";
    expect_st_fail("9 dimensions", strlen(dims), dims, 1, "dimensions");
    const char *ovf = "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,"
                      "4294967296],\"data_offsets\":[0,8]}}";
    expect_st_fail("shape overflow", strlen(ovf), ovf, 8, "overflow");
}

int main(void)
{
    test_tensors();
    test_config();
    test_files();
    test_truncated();
    test_safetensors_headers();
    return kvt_finish();
}
