/*
 * weights_impl.h: what the format readers (wt_tf.c, wt_safetensors.c,
 * wt_torch.c) share with weights.c.  Not part of the library's interface.
 */
#ifndef ROSIM_WEIGHTS_IMPL_H
#define ROSIM_WEIGHTS_IMPL_H

#include <stdint.h>

#include "weights.h"

/* The little-endian uint32 at p (the formats' headers, CRC words). */
static inline uint32_t
wt_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct wt_file {
    char *path;
    const unsigned char *map;   /* read-only mapping, or NULL when empty */
    size_t size;
};

struct wt_set {
    const char *format;
    struct wt_tensor *t;
    int n, cap;
    struct wt_file *files;
    int n_files;
    struct wt_tensor **sorted;  /* by name, for wt_find */
};

struct wt_set *wt_set_new(const char *format);

/* Map path read-only and append it to w->files; returns its index or a
 * negative status. */
int wt_set_map(struct wt_set *w, const char *path, struct rs_error *e);

/* Append a tensor (name is copied).  Returns a pointer to fill in, or NULL
 * when out of memory. */
struct wt_tensor *wt_set_add(struct wt_set *w, const char *name, size_t name_len);

/* Finish: check names are unique, sort for lookup.  Returns RS_OK or
 * RS_EFORMAT naming the file. */
int wt_set_finish(struct wt_set *w, const char *path, struct rs_error *e);

size_t wt_dtype_size(enum wt_dtype d);

/* Fill t->stride for a C-contiguous tensor and check the bytes it covers,
 * nbytes from data_off, fit inside file f.  Returns RS_OK or RS_EFORMAT. */
int wt_tensor_place(struct wt_set *w, struct wt_tensor *t, int f, uint64_t data_off,
                    uint64_t nbytes, struct rs_error *e);

/* numel with overflow checking; -1 on overflow or a negative dimension. */
int64_t wt_checked_numel(const int64_t *shape, int ndim);

#endif
