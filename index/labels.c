/*
 * labels.c: the label set of labels.h (open addressing, Fibonacci hashing).
 */
#include "labels.h"

#include <stdlib.h>
#include <string.h>

static size_t
slot_of(const struct label_set *s, int64_t x)
{
    return (size_t)((uint64_t)x * 0x9E3779B97F4A7C15ULL) & (s->cap - 1);
}

int
label_set_has(const struct label_set *s, int64_t x)
{
    if (s->cap == 0)
        return 0;
    for (size_t i = slot_of(s, x);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == x)
            return 1;
        if (s->slots[i] == -1)
            return 0;
    }
}

/* Insert x, known absent, into a set with room for it. */
static void
insert(struct label_set *s, int64_t x)
{
    size_t i = slot_of(s, x);

    while (s->slots[i] != -1)
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = x;
    s->n++;
}

int
label_set_add(struct label_set *s, int64_t x)
{
    if (label_set_has(s, x))
        return 0;
    if (2 * (s->n + 1) > s->cap) {
        struct label_set t = { NULL, s->cap ? 2 * s->cap : 64, 0 };
        t.slots = malloc(t.cap * sizeof(int64_t));
        if (t.slots == NULL)
            return -1;
        memset(t.slots, 0xff, t.cap * sizeof(int64_t));
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i] != -1)
                insert(&t, s->slots[i]);
        free(s->slots);
        *s = t;
    }
    insert(s, x);
    return 0;
}

void
label_set_clear(struct label_set *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

void
label_set_each(const struct label_set *s, void (*fn)(int64_t x, void *arg), void *arg)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i] != -1)
            fn(s->slots[i], arg);
}
