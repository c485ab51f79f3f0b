/*
 * weights.h: read named tensors from the weight files users have.
 *
 *     struct wt_set *w;
 *     if (wt_open_dir(&w, "models/roformer-sim", &err) != RS_OK) ...
 *     const struct wt_tensor *t = wt_find(w, "bert/pooler/dense/kernel");
 *     float *buf = malloc(wt_numel(t) * sizeof(float));
 *     wt_read_f32(w, t, buf, &err);      // checks CRC, converts, gathers, checks finite
 *     wt_close(w);
 *
 * Formats, detected from the directory (first match wins):
 *   - TF checkpoint: bert_model.ckpt.index + .data-NNNNN-of-NNNNN shards (or
 *     the prefix named by a "checkpoint" file): the LevelDB table, protobuf
 *     entries, block and tensor CRC32C checks;
 *   - safetensors: model.safetensors;
 *   - PyTorch: pytorch_model.bin, the zip format of torch >= 1.6 (data.pkl
 *     read by a small pickle machine that builds nothing but tensors).
 * Every length and offset read from a file is checked against the file
 * size before use; errors name the file and, where there is one, the tensor.
 * Files stay mapped read-only until wt_close().  A set is immutable after
 * opening and may be read from several threads.
 */
#ifndef ROSIM_WEIGHTS_H
#define ROSIM_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define WT_MAX_DIMS 8

enum wt_dtype {
    WT_F32, WT_F16, WT_BF16, WT_F64, WT_I64, WT_I32, WT_I16, WT_I8, WT_U8, WT_BOOL,
    WT_UNSUPPORTED,   /* present in the file, not convertible (strings, complex...) */
};

struct wt_tensor {
    char *name;
    enum wt_dtype dtype;
    int ndim;
    int64_t shape[WT_MAX_DIMS];
    int64_t stride[WT_MAX_DIMS];  /* in elements; row-major unless torch says otherwise */
    const unsigned char *data;    /* element 0 (inside a mapped file) */
    int file;                     /* index of the file it lives in */
    int has_crc;
    uint32_t crc32c;              /* TF: unmasked CRC32C of the stored bytes */
    int big_endian;
};

struct wt_set;

/* Open the weights of a model directory.  Returns RS_OK, RS_ENOTFOUND (no
 * known weight file), RS_EIO or RS_EFORMAT. */
int wt_open_dir(struct wt_set **out, const char *dir, struct rs_error *e);

/* Open one format explicitly.  prefix: e.g. "dir/bert_model.ckpt". */
int wt_open_tf(struct wt_set **out, const char *prefix, struct rs_error *e);
int wt_open_safetensors(struct wt_set **out, const char *path, struct rs_error *e);
int wt_open_torch(struct wt_set **out, const char *path, struct rs_error *e);

void wt_close(struct wt_set *w);

/* "tf-checkpoint", "safetensors" or "pytorch". */
const char *wt_format(const struct wt_set *w);
int wt_count(const struct wt_set *w);
const struct wt_tensor *wt_at(const struct wt_set *w, int i);
/* The tensor called name, or NULL. */
const struct wt_tensor *wt_find(const struct wt_set *w, const char *name);

int64_t wt_numel(const struct wt_tensor *t);

/* Convert t to float32, row-major, into dst[wt_numel(t)], verifying its
 * CRC when the format has one.  RS_EFORMAT on a CRC mismatch, a dtype
 * that is not a number, or an element that is NaN or infinite as float32
 * (one damaged weight would otherwise poison every vector). */
int wt_read_f32(const struct wt_set *w, const struct wt_tensor *t, float *dst,
                struct rs_error *e);

/* Check the CRC of every tensor that has one. */
int wt_verify_all(const struct wt_set *w, struct rs_error *e);

/* CRC-32C (Castagnoli) of buf, continuing from crc (0 to start). */
uint32_t wt_crc32c(uint32_t crc, const void *buf, size_t n);

#endif
