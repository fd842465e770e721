/*
 * The binary heap of merge candidates shared by the SentencePiece-style
 * BPE encoders (llama2c_tokenizer.c, sp_tokenizer.c): adjacent pairs whose
 * concatenation is a piece, popped best first, where best is the highest
 * score and, among equal scores, the leftmost pair (the smallest `left`).
 * Scores compare as floats (!=, >).
 *
 * Invalidation is lazy: a merge does not remove the candidates it makes
 * stale; the caller recognises them when they are popped, from what it
 * recorded in the candidate at push time.  That differs per encoder
 * (llama2c: versions of both sides, 24 bytes; sp: the merged size, 16
 * bytes, where wider entries cost ~8% of encode throughput), so the heap
 * is written once here for any candidate type with the members
 *     float score;  int32_t left;
 * and instantiated per type with KVL_MERGE_HEAP_DEFINE(name, type), which
 * defines (static inline)
 *     int name_before(const type *a, const type *b);
 *         a pops before b
 *     void name_push(type *heap, size_t *n, type c);
 *         heap[0..*n) + c; the caller guarantees room for *n + 1
 *     type name_pop(type *heap, size_t *n);
 *         removes and returns the best candidate (*n > 0)
 */
#ifndef KVL_TOKENIZER_MERGE_HEAP_H
#define KVL_TOKENIZER_MERGE_HEAP_H

#include <stddef.h>

#define KVL_MERGE_HEAP_DEFINE(name, type)                                    \
    /* higher score first, then the leftmost */                              \
    static inline int name##_before(const type *a, const type *b)            \
    {                                                                        \
        if (a->score != b->score)                                            \
            return a->score > b->score;                                      \
        return a->left < b->left;                                            \
    }                                                                        \
                                                                             \
    static inline void name##_push(type *heap, size_t *n, type c)            \
    {                                                                        \
        size_t i = (*n)++;                                                   \
        while (i > 0) {                                                      \
            size_t parent = (i - 1) / 2;                                     \
            if (!name##_before(&c, &heap[parent]))                           \
                break;                                                       \
            heap[i] = heap[parent];                                          \
            i = parent;                                                      \
        }                                                                    \
        heap[i] = c;                                                         \
    }                                                                        \
                                                                             \
    static inline type name##_pop(type *heap, size_t *n)                     \
    {                                                                        \
        type top = heap[0];                                                  \
        type last = heap[--*n];                                              \
        size_t i = 0, m = *n;                                                \
        for (;;) {                                                           \
            size_t c = 2 * i + 1;                                            \
            if (c >= m)                                                      \
                break;                                                       \
            if (c + 1 < m && name##_before(&heap[c + 1], &heap[c]))          \
                c++;                                                         \
            if (!name##_before(&heap[c], &last))                             \
                break;                                                       \
            heap[i] = heap[c];                                               \
            i = c;                                                           \
        }                                                                    \
        if (m > 0)                                                           \
            heap[i] = last;                                                  \
        return top;                                                          \
    }

#endif
