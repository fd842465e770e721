/* libFuzzer helpers: the parsers under test read files, so each input is
 * written to an anonymous memory file and handed over as /proc/self/fd/N;
 * the tokenizer harnesses share how they open and exercise a tokenizer. */
#ifndef KVL_FUZZ_COMMON_H
#define KVL_FUZZ_COMMON_H

#include "kvlab.h"
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Returns the fd (>= 0) and fills path, or -1. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path,
                               size_t cap)
{
    int fd = memfd_create("kvl-fuzz", 0);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* The body of an LLVMFuzzerTestOneInput: the input as a memory file whose
 * path goes to run (with the input itself); nothing when the file cannot
 * be made.  Returns 0 (libFuzzer: keep the input). */
static inline int fuzz_with_file(const uint8_t *data, size_t size,
                                 void (*run)(const char *path,
                                             const uint8_t *data,
                                             size_t size))
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    run(path, data, size);
    close(fd);
    return 0;
}

/* A format's loader called directly (kvl_tokenizer_load picks the format
 * from the path, which a memfd path lacks); a tokenizer that loads is
 * handed to exercise.  Everything is freed. */
static inline void fuzz_tokenizer(const char *path, const uint8_t *data,
                                  size_t size,
                                  kvl_status (*open)(const char *path,
                                                     kvl_tokenizer *t,
                                                     kvl_error *err),
                                  void (*exercise)(kvl_tokenizer *t,
                                                   const uint8_t *data,
                                                   size_t size))
{
    kvl_error err;
    kvl_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return;
    t->bos_id = t->eos_id = -1;
    if (open(path, t, &err) == KVL_OK)
        exercise(t, data, size);
    kvl_tokenizer_free(t);
}

/* Up to 64 ids taken from the input (big-endian byte pairs modulo the
 * vocabulary) into ids[]; each decoded with flags 0 and 1.  Returns their
 * count. */
static inline size_t fuzz_decode_input_ids(kvl_tokenizer *t,
                                           const uint8_t *data, size_t size,
                                           int32_t ids[64])
{
    kvl_error err;
    int32_t vocab = kvl_tokenizer_vocab_size(t);
    size_t n = 0;
    for (size_t i = 0; i + 1 < size && n < 64; i += 2)
        ids[n++] = (int32_t)(((uint32_t)data[i] << 8 | data[i + 1]) % (uint32_t)vocab);
    for (unsigned flags = 0; flags < 2; flags++) {
        char *text = NULL;
        if (kvl_tokenizer_decode(t, ids, n, flags, &text, NULL, &err) == KVL_OK)
            kvl_free(text);
    }
    return n;
}

/* id_to_token then token_to_id of the first 300 ids. */
static inline void fuzz_id_lookups(kvl_tokenizer *t)
{
    int32_t vocab = kvl_tokenizer_vocab_size(t);
    for (int32_t id = 0; id < vocab && id < 300; id++) {
        const char *piece = kvl_tokenizer_id_to_token(t, id);
        if (piece)
            (void)kvl_tokenizer_token_to_id(t, piece);
    }
}

#endif
