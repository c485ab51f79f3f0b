/*
 * wt_safetensors.c: Hugging Face safetensors files.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"},
 * then the data.  Validation follows the reference implementation: no
 * duplicate keys, sizes that match shape x dtype, tensors that tile the data
 * section exactly with no holes or overlaps.
 */
#include "weights_impl.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER 100000000u

static enum wt_dtype
st_dtype(const char *s, size_t *bits)
{
    static const struct { const char *name; enum wt_dtype d; size_t bits; } map[] = {
        { "F32", WT_F32, 32 }, { "F16", WT_F16, 16 }, { "BF16", WT_BF16, 16 },
        { "F64", WT_F64, 64 }, { "I64", WT_I64, 64 }, { "I32", WT_I32, 32 },
        { "I16", WT_I16, 16 }, { "I8", WT_I8, 8 }, { "U8", WT_U8, 8 },
        { "BOOL", WT_BOOL, 8 }, { "U16", WT_UNSUPPORTED, 16 }, { "U32", WT_UNSUPPORTED, 32 },
        { "U64", WT_UNSUPPORTED, 64 }, { "C64", WT_UNSUPPORTED, 64 },
        { "F8_E5M2", WT_UNSUPPORTED, 8 }, { "F8_E4M3", WT_UNSUPPORTED, 8 },
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(s, map[i].name) == 0) {
            *bits = map[i].bits;
            return map[i].d;
        }
    }
    *bits = 0;
    return WT_UNSUPPORTED;
}

struct span {
    uint64_t begin, end;
    int tensor;
};

static int
by_begin(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

int
wt_open_safetensors(struct wt_set **out, const char *path, struct rs_error *e)
{
    struct wt_set *w;
    const struct wt_file *f;
    json_t *root = NULL, *val;
    json_error_t je;
    struct span *spans = NULL;
    const char *name;
    uint64_t n_header = 0, data_len, expect;
    int fi, rc, n = 0;

    *out = NULL;
    w = wt_set_new("safetensors");
    if (w == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    if ((fi = wt_set_map(w, path, e)) < 0) {
        rc = fi;
        goto fail;
    }
    f = &w->files[fi];
    if (f->size < 8)
        goto truncated;
    for (int i = 7; i >= 0; i--)
        n_header = n_header << 8 | f->map[i];
    if (n_header > MAX_HEADER || n_header > f->size - 8)
        goto truncated;
    root = json_loadb((const char *)f->map + 8, (size_t)n_header, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(root)) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: header is not a JSON object: %s", path,
                          root == NULL ? je.text : "wrong type");
        goto fail;
    }
    data_len = f->size - 8 - n_header;
    spans = malloc((json_object_size(root) + 1) * sizeof(*spans));
    if (spans == NULL) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
        goto fail;
    }
    json_object_foreach(root, name, val) {
        json_t *dtype, *shape, *offs, *d;
        struct wt_tensor *t;
        size_t bits, i;
        int64_t numel;
        uint64_t begin, end;

        if (strcmp(name, "__metadata__") == 0)
            continue;
        dtype = json_object_get(val, "dtype");
        shape = json_object_get(val, "shape");
        offs = json_object_get(val, "data_offsets");
        if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offs) ||
            json_array_size(offs) != 2 || json_array_size(shape) > WT_MAX_DIMS) {
            rc = rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': malformed header entry",
                              path, name);
            goto fail;
        }
        t = wt_set_add(w, name, strlen(name));
        if (t == NULL) {
            rc = rs_error_set(e, RS_ENOMEM, "out of memory");
            goto fail;
        }
        t->dtype = st_dtype(json_string_value(dtype), &bits);
        if (bits == 0) {
            rc = rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", path,
                              name, json_string_value(dtype));
            goto fail;
        }
        t->ndim = (int)json_array_size(shape);
        json_array_foreach(shape, i, d) {
            if (!json_is_integer(d) || json_integer_value(d) < 0) {
                rc = rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': bad shape", path, name);
                goto fail;
            }
            t->shape[i] = json_integer_value(d);
        }
        if (!json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)) ||
            json_integer_value(json_array_get(offs, 0)) < 0 ||
            json_integer_value(json_array_get(offs, 1)) < json_integer_value(json_array_get(offs, 0))) {
            rc = rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': bad data_offsets", path, name);
            goto fail;
        }
        begin = (uint64_t)json_integer_value(json_array_get(offs, 0));
        end = (uint64_t)json_integer_value(json_array_get(offs, 1));
        numel = wt_checked_numel(t->shape, t->ndim);
        if (numel < 0 || (uint64_t)numel > UINT64_MAX / bits ||
            ((uint64_t)numel * bits) % 8 != 0 || (uint64_t)numel * bits / 8 != end - begin) {
            rc = rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': %llu bytes for its shape "
                              "and dtype", path, name, (unsigned long long)(end - begin));
            goto fail;
        }
        if (end > data_len) {
            rc = rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': data past the end of the "
                              "file (truncated?)", path, name);
            goto fail;
        }
        rc = wt_tensor_place(w, t, fi, 8 + n_header + begin, end - begin, e);
        if (rc != RS_OK)
            goto fail;
        spans[n] = (struct span){ begin, end, w->n - 1 };
        n++;
    }
    qsort(spans, (size_t)n, sizeof(*spans), by_begin);
    expect = 0;
    for (int i = 0; i < n; i++) {
        if (spans[i].begin != expect) {
            rc = rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': data at %llu, expected %llu "
                              "(overlap or hole)", path, w->t[spans[i].tensor].name,
                              (unsigned long long)spans[i].begin, (unsigned long long)expect);
            goto fail;
        }
        expect = spans[i].end;
    }
    if (expect != data_len) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: %llu bytes of data but tensors cover %llu",
                          path, (unsigned long long)data_len, (unsigned long long)expect);
        goto fail;
    }
    if ((rc = wt_set_finish(w, path, e)) != RS_OK)
        goto fail;
    json_decref(root);
    free(spans);
    *out = w;
    return RS_OK;
truncated:
    rc = rs_error_set(e, RS_EFORMAT, "%s: header length past the end of the file "
                      "(truncated, or not a safetensors file)", path);
fail:
    json_decref(root);
    free(spans);
    wt_close(w);
    return rc;
}
