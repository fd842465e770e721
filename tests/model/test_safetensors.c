/*
 * Safetensors reading and writing.  The independent references are byte
 * strings typed here: a whole file written by hand for the reader, and the
 * exact bytes the writer must produce for a one-tensor file.
 */
#include "test_util.h"

#include "core/dtype.h"
#include "model/safetensors.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_bytes(const char *path, const void *a, size_t na,
                        const void *b, size_t nb)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return;
    fwrite(a, 1, na, fp);
    if (nb)
        fwrite(b, 1, nb, fp);
    fclose(fp);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size + 1);
    *n = fread(buf, 1, (size_t)size, fp);
    fclose(fp);
    return buf;
}

/* A file typed byte by byte: the reader's view must match it. */
static void test_hand_written(void)
{
    static const char header[] =
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]},"
        "\"s\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[11,13]},"
        "\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"}}";
    const size_t hlen = sizeof header - 1;
    unsigned char buf[512];
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, header, hlen);
    static const unsigned char data[13] = {
        0x00, 0x00, 0xc0, 0x3f, /* 1.5f  */
        0x00, 0x00, 0x00, 0xc0, /* -2.0f */
        7,    8,    9,          /* U8    */
        0x00, 0x3c              /* f16 1.0 */
    };
    const char *path = kvt_temp_path(".safetensors");
    write_bytes(path, buf, 8 + hlen, data, sizeof data);

    kvl_st_file f;
    kvl_error err = {0};
    CHECK_OK(kvl_st_open(path, &f, &err), &err);
    CHECK(f.n_tensors == 3 && f.n_meta == 2, "%d tensors, %d meta",
          f.n_tensors, f.n_meta);
    if (f.n_tensors != 3) {
        kvl_st_close(&f);
        return;
    }
    const uint8_t *base = (const uint8_t *)f.map + 8 + hlen;
    const kvl_st_tensor *w = kvl_st_find(&f, "w");
    CHECK(w && w == &f.tensors[0], "w first");
    CHECK(w && w->dtype == KVL_DTYPE_F32 && w->ndim == 1 &&
              w->shape[0] == 2 && w->nbytes == 8 && w->data == base,
          "w entry");
    if (w) {
        float v[2];
        memcpy(v, w->data, 8);
        CHECK(v[0] == 1.5f && v[1] == -2.0f, "w values %g %g", v[0], v[1]);
    }
    const kvl_st_tensor *b = kvl_st_find(&f, "b");
    CHECK(b && b->dtype == KVL_DTYPE_COUNT &&
              strcmp(b->dtype_name, "U8") == 0 && b->nbytes == 3 &&
              b->data == base + 8 && b->data[0] == 7 && b->data[2] == 9,
          "b entry");
    const kvl_st_tensor *s = kvl_st_find(&f, "s");
    if (s) {
        uint16_t h;
        memcpy(&h, s->data, 2);
        CHECK(s->ndim == 0 && s->dtype == KVL_DTYPE_F16 && s->nbytes == 2 &&
                  kvl_f16_to_f32(h) == 1.0f,
              "scalar entry");
    } else {
        CHECK(0, "scalar s missing");
    }
    CHECK(kvl_st_find(&f, "nope") == NULL, "find nope");
    CHECK(kvl_st_find(&f, "__metadata__") == NULL, "metadata is no tensor");
    const char *k = kvl_st_meta_get(&f, "k");
    CHECK(k && strcmp(k, "v") == 0, "meta k");
    CHECK(kvl_st_meta_get(&f, "missing") == NULL, "meta missing");
    kvl_st_close(&f);
    CHECK(f.map == NULL && f.tensors == NULL, "closed");
    kvl_st_close(&f); /* twice is harmless */
}

/* The writer's bytes for one F32 scalar-vector, typed out. */
static void test_writer_bytes(void)
{
    static const char json[] =
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    const size_t jlen = sizeof json - 1; /* 54 -> padded to 56 */
    const size_t padded = (jlen + 7) / 8 * 8;
    unsigned char want[128];
    memset(want, ' ', sizeof want);
    for (int i = 0; i < 8; i++)
        want[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(want + 8, json, jlen);
    static const unsigned char one[4] = {0x00, 0x00, 0x80, 0x3f};
    memcpy(want + 8 + padded, one, 4);
    const size_t want_n = 8 + padded + 4;

    float x = 1.0f;
    kvl_st_write_tensor t = {"x", KVL_DTYPE_F32, 1, {1}, &x};
    const char *path = kvt_temp_path(".safetensors");
    kvl_error err = {0};
    CHECK_OK(kvl_st_write(path, &t, 1, NULL, 0, &err), &err);
    size_t n = 0;
    unsigned char *got = read_all(path, &n);
    CHECK(got && n == want_n && memcmp(got, want, n) == 0,
          "writer bytes differ (%zu vs %zu bytes)", n, want_n);
    free(got);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "mode %o",
          (unsigned)(sb.st_mode & 0777));
}

static void test_round_trip(void)
{
    float a[6] = {1, -2, 3.25f, 4, 5, 1e-3f};
    uint16_t bf[5];
    kvl_convert_from_f32(bf, KVL_DTYPE_BF16, a, 5);
    int64_t big[2] = {INT64_MIN, 1234567890123LL};
    int32_t ints[4] = {-1, 0, 1, 2147483647};
    kvl_st_write_tensor t[5] = {
        {"a", KVL_DTYPE_F32, 2, {2, 3}, a},
        {"bf", KVL_DTYPE_BF16, 1, {5}, bf}, /* 10 bytes: next is unaligned */
        {"big", KVL_DTYPE_I64, 1, {2}, big},
        {"layers.0.ints", KVL_DTYPE_I32, 2, {2, 2}, ints},
        {"empty", KVL_DTYPE_F16, 1, {0}, NULL},
    };
    kvl_st_meta meta[2] = {{"format", "pt"}, {"kvlab.note", "h\xc3\xa9llo"}};
    const char *path = kvt_temp_path(".safetensors");
    kvl_error err = {0};
    CHECK_OK(kvl_st_write(path, t, 5, meta, 2, &err), &err);

    kvl_st_file f;
    CHECK_OK(kvl_st_open(path, &f, &err), &err);
    CHECK(f.n_tensors == 5 && f.n_meta == 2, "counts");
    if (f.n_tensors != 5) {
        kvl_st_close(&f);
        return;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | ((const uint8_t *)f.map)[i];
    CHECK((8 + hlen) % 8 == 0, "data start %llu not 8-aligned",
          (unsigned long long)(8 + hlen));
    CHECK(((const char *)f.map)[8] == '{' &&
              ((const char *)f.map)[8 + hlen - 1] != '\0',
          "header text");
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        const kvl_st_tensor *r = &f.tensors[i];
        size_t nb = kvl_dtype_size(t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++)
            nb *= (size_t)t[i].shape[d];
        CHECK(strcmp(r->name, t[i].name) == 0, "order %d: %s", i, r->name);
        CHECK(r->dtype == t[i].dtype && r->ndim == t[i].ndim &&
                  r->shape[0] == t[i].shape[0] &&
                  r->shape[1] == t[i].shape[1],
              "%s meta", t[i].name);
        CHECK(r->nbytes == nb && (nb == 0 || memcmp(r->data, t[i].data, nb) == 0),
              "%s data", t[i].name);
        CHECK(r->data == (const uint8_t *)f.map + 8 + hlen + off,
              "%s laid out in order", t[i].name);
        CHECK(strcmp(r->dtype_name, kvl_dtype_name(t[i].dtype)) == 0,
              "%s dtype name", t[i].name);
        off += nb;
    }
    const char *note = kvl_st_meta_get(&f, "kvlab.note");
    CHECK(note && strcmp(note, "h\xc3\xa9llo") == 0, "utf-8 metadata");
    /* Reference writers put __metadata__ first; so do we. */
    CHECK(strncmp((const char *)f.map + 8, "{\"__metadata__\"", 15) == 0,
          "metadata first");
    kvl_st_close(&f);
}

static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void test_write_errors(void)
{
    float x[2] = {1, 2};
    kvl_error err = {0};
    const char *bad_dir = "/nonexistent-kvlab-dir/x.safetensors";
    kvl_st_write_tensor t = {"x", KVL_DTYPE_F32, 1, {2}, x};
    CHECK(kvl_st_write(bad_dir, &t, 1, NULL, 0, &err) == KVL_ERR_IO &&
              strstr(err.message, bad_dir),
          "missing folder: %s", err.message);

    char dir[] = "/tmp/kvlab-st-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[128];
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    kvl_st_write_tensor two[2] = {t, t};
    CHECK(kvl_st_write(path, two, 2, NULL, 0, &err) == KVL_ERR_ARG &&
              strstr(err.message, "duplicate"),
          "duplicate: %s", err.message);
    kvl_st_write_tensor bad = t;
    bad.dtype = KVL_DTYPE_COUNT;
    CHECK(kvl_st_write(path, &bad, 1, NULL, 0, &err) == KVL_ERR_ARG,
          "bad dtype");
    bad = t;
    bad.data = NULL;
    CHECK(kvl_st_write(path, &bad, 1, NULL, 0, &err) == KVL_ERR_ARG,
          "NULL data");
    bad = t;
    bad.name = "__metadata__";
    CHECK(kvl_st_write(path, &bad, 1, NULL, 0, &err) == KVL_ERR_ARG,
          "reserved name");
    bad = t;
    bad.shape[0] = -1;
    CHECK(kvl_st_write(path, &bad, 1, NULL, 0, &err) == KVL_ERR_ARG,
          "negative shape");
    struct stat sb;
    CHECK(stat(path, &sb) != 0, "failed writes created the file");
    CHECK_OK(kvl_st_write(path, &t, 1, NULL, 0, &err), &err);
    CHECK_OK(kvl_st_write(path, &t, 1, NULL, 0, &err), &err); /* replace */
    CHECK(count_temp_files(dir) == 0, "temporary files left behind");

    kvl_st_file f;
    CHECK(kvl_st_open(dir, &f, &err) == KVL_ERR_IO, "folder as file");
    CHECK(kvl_st_open("/nonexistent-kvlab", &f, &err) == KVL_ERR_IO &&
              strstr(err.message, "/nonexistent-kvlab"),
          "missing file");
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_hand_written();
    test_writer_bytes();
    test_round_trip();
    test_write_errors();
    return kvt_finish();
}
