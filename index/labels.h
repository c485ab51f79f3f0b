/*
 * labels.h: a set of FAISS labels (int64, never negative).
 *
 *     struct label_set s = { 0 };
 *     if (label_set_add(&s, 42) != 0) ... out of memory ...
 *     label_set_has(&s, 42);                       // 1
 *     label_set_clear(&s);                         // frees; s is empty again
 *
 * Open addressing with linear probing at load <= 1/2; it grows and never
 * shrinks.  A collection keeps the labels it retired but could not remove
 * from its index here.  Not thread-safe: the owner locks.
 */
#ifndef ROSIM_LABELS_H
#define ROSIM_LABELS_H

#include <stddef.h>
#include <stdint.h>

struct label_set {
    int64_t *slots;   /* cap slots, -1 = empty; cap is 0 or a power of two */
    size_t cap, n;
};

/* 1 when x is in s. */
int label_set_has(const struct label_set *s, int64_t x);

/* Add x (x >= 0); 0, or -1 when out of memory (s unchanged). */
int label_set_add(struct label_set *s, int64_t x);

/* Free the slots; s is an empty set afterwards. */
void label_set_clear(struct label_set *s);

/* Call fn(x, arg) for every member, in no particular order. */
void label_set_each(const struct label_set *s, void (*fn)(int64_t x, void *arg), void *arg);

#endif
