/*
 * wt_tf.c: TensorFlow V2 checkpoints (tensor bundles), as written by Google
 * BERT and bert4keras.
 *
 * P.index is a LevelDB-style table: footer -> index block -> data blocks,
 * each block checked against its masked CRC32C.  Keys are tensor names; the
 * empty key holds the BundleHeaderProto, keys starting with NUL are slices
 * (skipped).  Values are BundleEntryProto messages: dtype, shape, shard,
 * offset, size and the tensor's masked CRC32C, checked when it is read.
 * Tensor bytes live in P.data-NNNNN-of-NNNNN, mapped read-only.
 */
#include "weights_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_MAGIC 0xdb4775248b80fb57ULL
#define FOOTER_LEN 48

struct cursor {
    const unsigned char *p, *end;
};

static int
varint(struct cursor *c, uint64_t *out)
{
    uint64_t r = 0;

    for (int shift = 0; shift <= 63 && c->p < c->end; shift += 7) {
        unsigned char b = *c->p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = r;
            return 0;
        }
    }
    return -1;
}

static uint32_t
crc_unmask(uint32_t m)
{
    uint32_t r = m - 0xa282ead8u;
    return (r >> 17) | (r << 15);
}

struct handle {
    uint64_t offset, size;
};

/* Read and check a block: contents [offset, offset+size), then a type byte
 * and a masked CRC over contents + type. */
static int
read_block(const struct wt_file *f, struct handle h, struct cursor *out, struct rs_error *e)
{
    const unsigned char *p;
    uint32_t crc;

    if (h.offset > f->size || h.size > f->size - h.offset || f->size - h.offset - h.size < 5)
        return rs_error_set(e, RS_EFORMAT, "%s: table block at %llu (+%llu) is past the "
                            "end of the file (truncated?)", f->path,
                            (unsigned long long)h.offset, (unsigned long long)h.size);
    p = f->map + h.offset;
    crc = wt_crc32c(0, p, h.size + 1);
    if (crc != crc_unmask(wt_le32(p + h.size + 1)))
        return rs_error_set(e, RS_EFORMAT, "%s: table block at %llu fails its CRC32C check "
                            "(the file is corrupt)", f->path, (unsigned long long)h.offset);
    if (p[h.size] != 0)
        return rs_error_set(e, RS_EFORMAT, "%s: table block at %llu is compressed (type %d); "
                            "only uncompressed checkpoints (TF >= 1.2) are supported",
                            f->path, (unsigned long long)h.offset, p[h.size]);
    out->p = p;
    out->end = p + h.size;
    return RS_OK;
}

/* Iterate the entries of a block, calling fn(key, value) for each. */
typedef int (*entry_fn)(void *ctx, const unsigned char *key, size_t key_len,
                        struct cursor value, struct rs_error *e);

static int
each_entry(const struct wt_file *f, struct cursor blk, entry_fn fn, void *ctx,
           struct rs_error *e)
{
    size_t len = (size_t)(blk.end - blk.p), limit;
    uint32_t n_restarts;
    unsigned char *key = NULL;
    size_t key_len = 0, key_cap = 0;
    struct cursor c;
    int rc = RS_OK;

    if (len < 4)
        goto corrupt;
    n_restarts = wt_le32(blk.end - 4);
    if (n_restarts > (len - 4) / 4)
        goto corrupt;
    limit = len - 4 * ((size_t)n_restarts + 1);
    c.p = blk.p;
    c.end = blk.p + limit;
    while (c.p < c.end) {
        uint64_t shared, non_shared, vlen;
        struct cursor value;
        if (varint(&c, &shared) || varint(&c, &non_shared) || varint(&c, &vlen) ||
            shared > key_len || non_shared > (uint64_t)(c.end - c.p) ||
            vlen > (uint64_t)(c.end - c.p) - non_shared)
            goto corrupt;
        if (shared + non_shared > key_cap) {
            unsigned char *k = realloc(key, key_cap = (size_t)(shared + non_shared) * 2 + 16);
            if (k == NULL) {
                rc = rs_error_set(e, RS_ENOMEM, "out of memory");
                goto done;
            }
            key = k;
        }
        if (non_shared > 0)
            memcpy(key + shared, c.p, (size_t)non_shared);
        key_len = (size_t)(shared + non_shared);
        c.p += non_shared;
        value.p = c.p;
        value.end = c.p + vlen;
        c.p += vlen;
        if ((rc = fn(ctx, key, key_len, value, e)) != RS_OK)
            goto done;
    }
    goto done;
corrupt:
    rc = rs_error_set(e, RS_EFORMAT, "%s: malformed table block (the file is corrupt)",
                      f->path);
done:
    free(key);
    return rc;
}

/* --- protobuf messages ---------------------------------------------------- */

struct entry_proto {
    uint64_t dtype, shard, offset, size;
    uint32_t crc;
    int has_crc, has_slices, unknown_rank;
    int ndim;
    int64_t shape[WT_MAX_DIMS];
};

/* Skip a field of the given wire type; -1 if it cannot be skipped. */
static int
skip_field(struct cursor *c, int wire)
{
    uint64_t v;

    switch (wire) {
    case 0: return varint(c, &v);
    case 1: if (c->end - c->p < 8) return -1; c->p += 8; return 0;
    case 2: if (varint(c, &v) || v > (uint64_t)(c->end - c->p)) return -1; c->p += v; return 0;
    case 5: if (c->end - c->p < 4) return -1; c->p += 4; return 0;
    default: return -1;
    }
}

static int
sub_message(struct cursor *c, struct cursor *sub)
{
    uint64_t len;

    if (varint(c, &len) || len > (uint64_t)(c->end - c->p))
        return -1;
    sub->p = c->p;
    sub->end = c->p + len;
    c->p += len;
    return 0;
}

static int
parse_shape(struct cursor c, struct entry_proto *ep)
{
    while (c.p < c.end) {
        uint64_t tag;
        if (varint(&c, &tag))
            return -1;
        if (tag == 0x12) {          /* Dim dim = 2 */
            struct cursor dim;
            int64_t size = 0;
            if (sub_message(&c, &dim) || ep->ndim >= WT_MAX_DIMS)
                return -1;
            while (dim.p < dim.end) {
                uint64_t dtag, v;
                if (varint(&dim, &dtag))
                    return -1;
                if (dtag == 0x08) {
                    if (varint(&dim, &v))
                        return -1;
                    size = (int64_t)v;
                } else if (skip_field(&dim, (int)(dtag & 7))) {
                    return -1;
                }
            }
            ep->shape[ep->ndim++] = size;
        } else if (tag == 0x18) {   /* bool unknown_rank = 3 */
            uint64_t v;
            if (varint(&c, &v))
                return -1;
            ep->unknown_rank = v != 0;
        } else if (skip_field(&c, (int)(tag & 7))) {
            return -1;
        }
    }
    return 0;
}

static int
parse_entry(struct cursor c, struct entry_proto *ep)
{
    memset(ep, 0, sizeof(*ep));
    while (c.p < c.end) {
        uint64_t tag, v;
        if (varint(&c, &tag))
            return -1;
        switch (tag) {
        case 0x08: if (varint(&c, &ep->dtype)) return -1; break;
        case 0x12: {
            struct cursor shape;
            ep->ndim = 0;
            if (sub_message(&c, &shape) || parse_shape(shape, ep))
                return -1;
            break;
        }
        case 0x18: if (varint(&c, &ep->shard)) return -1; break;
        case 0x20: if (varint(&c, &ep->offset)) return -1; break;
        case 0x28: if (varint(&c, &ep->size)) return -1; break;
        case 0x35:
            if (c.end - c.p < 4)
                return -1;
            ep->crc = wt_le32(c.p);
            ep->has_crc = 1;
            c.p += 4;
            break;
        case 0x3a: ep->has_slices = 1; if (skip_field(&c, 2)) return -1; break;
        default:
            if (skip_field(&c, (int)(tag & 7)))
                return -1;
            (void)v;
        }
    }
    return 0;
}

static enum wt_dtype
tf_dtype(uint64_t d)
{
    switch (d) {
    case 1: return WT_F32;
    case 2: return WT_F64;
    case 3: return WT_I32;
    case 4: return WT_U8;
    case 5: return WT_I16;
    case 6: return WT_I8;
    case 9: return WT_I64;
    case 10: return WT_BOOL;
    case 14: return WT_BF16;
    case 19: return WT_F16;
    default: return WT_UNSUPPORTED;
    }
}

/* --- reading the bundle --------------------------------------------------- */

struct tf_ctx {
    struct wt_set *w;
    const char *prefix;
    const struct wt_file *index;
    int have_header;
    uint64_t num_shards;
    int big_endian;
    /* entries are collected first: the shards are known only after the header */
    struct pending {
        char *name;
        struct entry_proto ep;
    } *pending;
    int n_pending, cap_pending;
};

static int
on_data_entry(void *vctx, const unsigned char *key, size_t key_len, struct cursor value,
              struct rs_error *e)
{
    struct tf_ctx *x = vctx;

    if (key_len == 0) {   /* BundleHeaderProto */
        x->have_header = 1;
        x->num_shards = 1;
        while (value.p < value.end) {
            uint64_t tag, v;
            if (varint(&value, &tag))
                goto corrupt;
            if (tag == 0x08) {
                if (varint(&value, &x->num_shards))
                    goto corrupt;
            } else if (tag == 0x10) {
                if (varint(&value, &v))
                    goto corrupt;
                x->big_endian = v == 1;
            } else if (skip_field(&value, (int)(tag & 7))) {
                goto corrupt;
            }
        }
        return RS_OK;
    }
    if (key[0] == 0)      /* slice of a partitioned variable */
        return RS_OK;
    if (x->n_pending == x->cap_pending) {
        int cap = x->cap_pending ? 2 * x->cap_pending : 256;
        struct pending *p = realloc(x->pending, (size_t)cap * sizeof(*p));
        if (p == NULL)
            return rs_error_set(e, RS_ENOMEM, "out of memory");
        x->pending = p;
        x->cap_pending = cap;
    }
    {
        struct pending *p = &x->pending[x->n_pending];
        p->name = strndup((const char *)key, key_len);
        if (p->name == NULL)
            return rs_error_set(e, RS_ENOMEM, "out of memory");
        x->n_pending++;
        if (parse_entry(value, &p->ep))
            return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': malformed entry "
                                "(the file is corrupt)", x->index->path, p->name);
    }
    return RS_OK;
corrupt:
    return rs_error_set(e, RS_EFORMAT, "%s: malformed bundle header", x->index->path);
}

static int
on_index_entry(void *vctx, const unsigned char *key, size_t key_len, struct cursor value,
               struct rs_error *e)
{
    struct tf_ctx *x = vctx;
    struct handle h;
    struct cursor blk;
    int rc;

    (void)key;
    (void)key_len;
    if (varint(&value, &h.offset) || varint(&value, &h.size))
        return rs_error_set(e, RS_EFORMAT, "%s: malformed index entry", x->index->path);
    if ((rc = read_block(x->index, h, &blk, e)) != RS_OK)
        return rc;
    return each_entry(x->index, blk, on_data_entry, x, e);
}

static int
add_tensors(struct tf_ctx *x, int first_shard_file, struct rs_error *e)
{
    for (int i = 0; i < x->n_pending; i++) {
        const struct pending *p = &x->pending[i];
        struct wt_tensor *t;
        int64_t numel;
        size_t es;
        int rc;

        if (p->ep.has_slices)
            return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s' is partitioned (sliced), "
                                "which is not supported", x->index->path, p->name);
        if (p->ep.shard >= x->num_shards)
            return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': shard %llu of %llu",
                                x->index->path, p->name, (unsigned long long)p->ep.shard,
                                (unsigned long long)x->num_shards);
        t = wt_set_add(x->w, p->name, strlen(p->name));
        if (t == NULL)
            return rs_error_set(e, RS_ENOMEM, "out of memory");
        t->dtype = tf_dtype(p->ep.dtype);
        t->ndim = p->ep.ndim;
        memcpy(t->shape, p->ep.shape, sizeof(t->shape));
        t->has_crc = p->ep.has_crc;
        t->crc32c = crc_unmask(p->ep.crc);
        t->big_endian = x->big_endian;
        numel = wt_checked_numel(t->shape, t->ndim);
        es = wt_dtype_size(t->dtype);
        if (numel < 0 || p->ep.unknown_rank)
            return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s' has an invalid shape",
                                x->index->path, p->name);
        if (es != 0 && (uint64_t)numel > UINT64_MAX / es)
            return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s' is too large",
                                x->index->path, p->name);
        if (es != 0 && (uint64_t)numel * es != p->ep.size)
            return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': %llu bytes stored for "
                                "%lld elements of %zu bytes", x->index->path, p->name,
                                (unsigned long long)p->ep.size, (long long)numel, es);
        if (es == 0)
            t->has_crc = 0;  /* strings etc.: never read */
        rc = wt_tensor_place(x->w, t, first_shard_file + (int)p->ep.shard, p->ep.offset,
                             p->ep.size, e);
        if (rc != RS_OK)
            return rc;
    }
    return RS_OK;
}

int
wt_open_tf(struct wt_set **out, const char *prefix, struct rs_error *e)
{
    struct tf_ctx x;
    struct wt_set *w;
    char path[4096];
    struct handle meta, index;
    struct cursor footer, blk;
    int rc, idx, first_shard = -1;

    *out = NULL;
    memset(&x, 0, sizeof(x));
    w = wt_set_new("tf-checkpoint");
    if (w == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    x.w = w;
    x.prefix = prefix;
    snprintf(path, sizeof(path), "%s.index", prefix);
    if ((idx = wt_set_map(w, path, e)) < 0) {
        rc = idx;
        goto fail;
    }
    x.index = &w->files[idx];
    if (x.index->size < FOOTER_LEN) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: too short for a checkpoint index (%zu bytes)",
                          path, x.index->size);
        goto fail;
    }
    footer.p = x.index->map + x.index->size - FOOTER_LEN;
    footer.end = footer.p + 40;
    {
        uint64_t magic = 0;
        for (int i = 7; i >= 0; i--)
            magic = magic << 8 | footer.p[40 + i];
        if (magic != TABLE_MAGIC) {
            rc = rs_error_set(e, RS_EFORMAT, "%s: not a TensorFlow checkpoint index (bad "
                              "magic; truncated?)", path);
            goto fail;
        }
    }
    if (varint(&footer, &meta.offset) || varint(&footer, &meta.size) ||
        varint(&footer, &index.offset) || varint(&footer, &index.size)) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: malformed footer", path);
        goto fail;
    }
    if ((rc = read_block(x.index, index, &blk, e)) != RS_OK)
        goto fail;
    if ((rc = each_entry(x.index, blk, on_index_entry, &x, e)) != RS_OK)
        goto fail;
    if (!x.have_header) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: no bundle header", path);
        goto fail;
    }
    if (x.num_shards < 1 || x.num_shards > 100000) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: %llu shards", path,
                          (unsigned long long)x.num_shards);
        goto fail;
    }
    for (uint64_t s = 0; s < x.num_shards; s++) {
        snprintf(path, sizeof(path), "%s.data-%05llu-of-%05llu", prefix,
                 (unsigned long long)s, (unsigned long long)x.num_shards);
        if ((rc = wt_set_map(w, path, e)) < 0)
            goto fail;
        if (first_shard < 0)
            first_shard = rc;
    }
    if ((rc = add_tensors(&x, first_shard, e)) != RS_OK)
        goto fail;
    snprintf(path, sizeof(path), "%s.index", prefix);
    if ((rc = wt_set_finish(w, path, e)) != RS_OK)
        goto fail;
    for (int i = 0; i < x.n_pending; i++)
        free(x.pending[i].name);
    free(x.pending);
    *out = w;
    return RS_OK;
fail:
    for (int i = 0; i < x.n_pending; i++)
        free(x.pending[i].name);
    free(x.pending);
    wt_close(w);
    return rc;
}
