/* Minimal test harness: CHECK records failures and keeps going; each test
 * program ends with `return kvt_finish();` which prints
 * "N passed, N failed" and returns 0 or 1.  kvt_skip() prints the reason
 * and returns 77 (ctest reports the test as skipped). */
#ifndef KVL_TEST_UTIL_H
#define KVL_TEST_UTIL_H

#include "kvlab.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int kvt_passed, kvt_failed;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (cond) {                                                          \
            kvt_passed++;                                                    \
        } else {                                                             \
            kvt_failed++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/* CHECK that a kvlab call returned KVL_OK, printing the error otherwise. */
#define CHECK_OK(call, errp)                                                 \
    do {                                                                     \
        kvl_status st_ = (call);                                             \
        CHECK(st_ == KVL_OK, "%s: %s", kvl_status_name(st_),                 \
              (errp)->message);                                              \
    } while (0)

int kvt_finish(void);
int kvt_skip(const char *fmt, ...);

/* Path helpers: "<source>/rel", "<shared>/rel" into a static buffer set
 * (up to 8 live results). */
const char *kvt_source_path(const char *rel);
const char *kvt_shared_path(const char *rel);
int kvt_file_exists(const char *path);
/* A fresh temporary file path with the given suffix (unlinked at exit). */
const char *kvt_temp_path(const char *suffix);

/* ||a - b|| / ||b|| over n floats. */
double kvt_rel_err(const float *a, const float *b, size_t n);

/* Index of the first largest of x[0..n), n >= 1 (the tests' greedy choice). */
int32_t kvt_argmax(const float *x, int32_t n);

#endif
