/*
 * wt_torch.c: PyTorch files written by torch.save (zip format, torch >= 1.6).
 *
 * The zip is read through its central directory (ZIP64 aware); entries must
 * be stored, not compressed, as torch writes them.  <prefix>/data.pkl is run
 * through a small pickle machine that knows the opcodes torch.save emits and
 * builds only what a state dict needs: dicts, lists, tuples, strings,
 * numbers, and tensors from torch._utils._rebuild_tensor_v2 over storages
 * named by persistent ids ('storage', <Type>Storage, key, location, numel).
 * Any other callable yields an opaque value, so unusual objects elsewhere in
 * the file do no harm.  Nested dicts are flattened with '.'; the memo may
 * name one dict many times, so the walk stops after WALK_LIMIT objects.
 * Pickle protocols 2 to 5 as torch.save writes them (MEMOIZE included).
 * The legacy (pre-1.6, non-zip) format is refused with a clear message.
 */
#include "weights_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- zip ------------------------------------------------------------------ */

struct zip_entry {
    const char *name;   /* not NUL-terminated */
    size_t name_len;
    uint64_t lho, csize, usize;
    int method;
};

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint64_t
le64(const unsigned char *p)
{
    return wt_le32(p) | (uint64_t)wt_le32(p + 4) << 32;
}

static int
entry_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int
by_entry_name(const void *x, const void *y)
{
    const struct zip_entry *a = x, *b = y;
    return entry_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int
zip_directory(const struct wt_file *f, struct zip_entry **out, int *n_out, struct rs_error *e)
{
    const unsigned char *m = f->map;
    size_t size = f->size, eocd = 0;
    uint64_t n, cd_off, cd_size, pos;
    struct zip_entry *ents = NULL;
    int found = 0;

    if (size < 22)
        goto bad;
    for (size_t i = size - 22 + 1; i-- > 0 && size - i <= 22 + 65535;) {
        if (wt_le32(m + i) == 0x06054b50) {
            eocd = i;
            found = 1;
            break;
        }
    }
    if (!found)
        goto bad;
    n = le16(m + eocd + 10);
    cd_size = wt_le32(m + eocd + 12);
    cd_off = wt_le32(m + eocd + 16);
    if (eocd >= 20 && wt_le32(m + eocd - 20) == 0x07064b50) {   /* ZIP64 locator */
        uint64_t z = le64(m + eocd - 20 + 8);
        if (z > size || size - z < 56 || wt_le32(m + z) != 0x06064b50)
            goto bad;
        n = le64(m + z + 32);
        cd_size = le64(m + z + 40);
        cd_off = le64(m + z + 48);
    }
    if (cd_off > size || cd_size > size - cd_off || n > cd_size / 46)
        goto bad;
    ents = calloc(n ? n : 1, sizeof(*ents));
    if (ents == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    pos = cd_off;
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *h = m + pos;
        size_t name_len, extra_len, comment_len;
        struct zip_entry *z = &ents[i];
        if (cd_off + cd_size - pos < 46 || wt_le32(h) != 0x02014b50)
            goto bad;
        name_len = le16(h + 28);
        extra_len = le16(h + 30);
        comment_len = le16(h + 32);
        if (cd_off + cd_size - pos - 46 < name_len + extra_len + comment_len)
            goto bad;
        z->method = le16(h + 10);
        z->csize = wt_le32(h + 20);
        z->usize = wt_le32(h + 24);
        z->lho = wt_le32(h + 42);
        z->name = (const char *)h + 46;
        z->name_len = name_len;
        /* ZIP64 extended information replaces saturated fields, in order */
        for (const unsigned char *x = h + 46 + name_len, *xe = x + extra_len; xe - x >= 4;) {
            uint16_t id = le16(x), len = le16(x + 2);
            const unsigned char *v = x + 4, *ve = v + len;
            if (len > xe - v)
                goto bad;
            if (id == 0x0001) {
                if (z->usize == 0xffffffffu && ve - v >= 8) { z->usize = le64(v); v += 8; }
                if (z->csize == 0xffffffffu && ve - v >= 8) { z->csize = le64(v); v += 8; }
                if (z->lho == 0xffffffffu && ve - v >= 8) { z->lho = le64(v); v += 8; }
            }
            x = ve;
        }
        pos += 46 + name_len + extra_len + comment_len;
    }
    qsort(ents, (size_t)n, sizeof(*ents), by_entry_name);
    *out = ents;
    *n_out = (int)n;
    return RS_OK;
bad:
    free(ents);
    return rs_error_set(e, RS_EFORMAT, "%s: not a readable zip archive (truncated or "
                        "corrupt central directory)", f->path);
}

/* Data of an entry: offset and length, checked; -1 on error. */
static int
zip_data(const struct wt_file *f, const struct zip_entry *z, uint64_t *off)
{
    const unsigned char *h;

    if (z->method != 0 || z->csize != z->usize || z->lho > f->size || f->size - z->lho < 30)
        return -1;
    h = f->map + z->lho;
    if (wt_le32(h) != 0x04034b50)
        return -1;
    *off = z->lho + 30 + le16(h + 26) + le16(h + 28);
    if (*off > f->size || z->usize > f->size - *off)
        return -1;
    return 0;
}

/* The entry prefix + rest of ents[0..n) sorted by name, or NULL: a lookup
 * costs log n, however many tensors a file names. */
static const struct zip_entry *
zip_find(const struct zip_entry *ents, int n, const char *prefix, size_t plen, const char *rest)
{
    char key[512];
    size_t klen = plen + strlen(rest);
    int lo = 0, hi = n;

    if (klen > sizeof(key))
        return NULL;
    memcpy(key, prefix, plen);
    memcpy(key + plen, rest, klen - plen);
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = entry_cmp(ents[mid].name, ents[mid].name_len, key, klen);
        if (c == 0)
            return &ents[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* --- pickle --------------------------------------------------------------- */

enum otype { O_NONE, O_BOOL, O_INT, O_FLOAT, O_STR, O_TUPLE, O_LIST, O_DICT, O_GLOBAL,
             O_STORAGE, O_TENSOR, O_OPAQUE };

struct obj {
    enum otype type;
    int64_t i;              /* INT, BOOL; STORAGE: numel */
    const char *s, *s2;     /* STR: text; GLOBAL: module, name; STORAGE: key */
    size_t len, len2;
    int *items;             /* TUPLE, LIST, DICT (k0 v0 k1 v1 ...) */
    int n, cap;
    enum wt_dtype dtype;    /* STORAGE */
    int storage;            /* TENSOR */
    int64_t offset;
    int ndim;
    int64_t shape[WT_MAX_DIMS], stride[WT_MAX_DIMS];
};

struct vm {
    struct obj *o;
    int n_o, cap_o;
    int *stack, sp, cap_stack;
    int *marks, n_marks, cap_marks;
    int *memo;              /* memo[i]: object id, -1 when unset */
    size_t cap_memo;
    size_t n_memo;          /* entries set: Python's len(memo), where MEMOIZE stores */
    const char *err;
};

#define MEMO_LIMIT (1u << 22)

static int
grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int
new_obj(struct vm *v, enum otype t)
{
    if (grow((void **)&v->o, &v->cap_o, v->n_o + 1, sizeof(*v->o)))
        return -1;
    memset(&v->o[v->n_o], 0, sizeof(*v->o));
    v->o[v->n_o].type = t;
    return v->n_o++;
}

static int
push(struct vm *v, int id)
{
    if (id < 0 || grow((void **)&v->stack, &v->cap_stack, v->sp + 1, sizeof(int)))
        return -1;
    v->stack[v->sp++] = id;
    return 0;
}

static int
append_item(struct vm *v, int container, int item)
{
    struct obj *c = &v->o[container];
    if (grow((void **)&c->items, &c->cap, c->n + 1, sizeof(int)))
        return -1;
    c->items[c->n++] = item;
    return 0;
}

static int
pop_mark(struct vm *v)
{
    if (v->n_marks == 0)
        return -1;
    return v->marks[--v->n_marks];
}

/* Pop everything above the last mark into a new container. */
static int
collect(struct vm *v, enum otype t)
{
    int m = pop_mark(v), id;

    if (m < 0 || m > v->sp || (id = new_obj(v, t)) < 0)
        return -1;
    for (int i = m; i < v->sp; i++)
        if (append_item(v, id, v->stack[i]))
            return -1;
    v->sp = m;
    return push(v, id);
}

static int
str_is(const struct obj *o, const char *s)
{
    return o->type == O_STR && o->len == strlen(s) && memcmp(o->s, s, o->len) == 0;
}

static int
global_is(const struct obj *o, const char *module, const char *name)
{
    return o->type == O_GLOBAL && o->len == strlen(module) && memcmp(o->s, module, o->len) == 0 &&
           o->len2 == strlen(name) && memcmp(o->s2, name, o->len2) == 0;
}

static enum wt_dtype
storage_dtype(const struct obj *g)
{
    static const struct { const char *name; enum wt_dtype d; } map[] = {
        { "FloatStorage", WT_F32 }, { "DoubleStorage", WT_F64 }, { "HalfStorage", WT_F16 },
        { "BFloat16Storage", WT_BF16 }, { "LongStorage", WT_I64 }, { "IntStorage", WT_I32 },
        { "ShortStorage", WT_I16 }, { "CharStorage", WT_I8 }, { "ByteStorage", WT_U8 },
        { "BoolStorage", WT_BOOL },
    };
    if (g->type != O_GLOBAL)
        return WT_UNSUPPORTED;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (global_is(g, "torch", map[i].name))
            return map[i].d;
    return WT_UNSUPPORTED;
}

static int
int_tuple(struct vm *v, int id, int64_t *out, int *n)
{
    const struct obj *t = &v->o[id];

    if (t->type != O_TUPLE || t->n > WT_MAX_DIMS)
        return -1;
    for (int i = 0; i < t->n; i++) {
        if (v->o[t->items[i]].type != O_INT)
            return -1;
        out[i] = v->o[t->items[i]].i;
    }
    *n = t->n;
    return 0;
}

/* REDUCE: callable(*args) for the callables torch.save uses. */
static int
reduce(struct vm *v, int fn, int args)
{
    const struct obj *f = &v->o[fn], *a = &v->o[args];
    int id;

    if (a->type != O_TUPLE)
        return -1;
    if (global_is(f, "collections", "OrderedDict"))
        return new_obj(v, O_DICT);
    if ((global_is(f, "torch._utils", "_rebuild_tensor_v2") ||
         global_is(f, "torch._utils", "_rebuild_tensor")) && a->n >= 4) {
        int ndim_stride;
        if ((id = new_obj(v, O_TENSOR)) < 0)
            return -1;
        a = &v->o[args];  /* o may have moved */
        struct obj *t = &v->o[id];
        t->storage = a->items[0];
        if (v->o[t->storage].type != O_STORAGE || v->o[a->items[1]].type != O_INT ||
            int_tuple(v, a->items[2], t->shape, &t->ndim) ||
            int_tuple(v, a->items[3], t->stride, &ndim_stride) || ndim_stride != t->ndim) {
            v->err = "malformed tensor";
            return -1;
        }
        t->offset = v->o[a->items[1]].i;
        return id;
    }
    if (global_is(f, "torch._utils", "_rebuild_parameter") && a->n >= 1)
        return a->items[0];
    return new_obj(v, O_OPAQUE);
}

static int
run_pickle(struct vm *v, const unsigned char *p, size_t n)
{
    const unsigned char *end = p + n;

#define NEED(k) do { if ((size_t)(end - p) < (size_t)(k)) return -1; } while (0)
#define POP(x) do { if (v->sp <= 0) return -1; (x) = v->stack[--v->sp]; } while (0)
    while (p < end) {
        unsigned char op = *p++;
        int a, b, c, id;
        uint64_t len;
        switch (op) {
        case 0x80: NEED(1); p++; break;                            /* PROTO */
        case 0x95: NEED(8); p += 8; break;                         /* FRAME */
        case '.': return v->sp > 0 ? v->stack[v->sp - 1] : -1;      /* STOP */
        case '(':                                                  /* MARK */
            if (grow((void **)&v->marks, &v->cap_marks, v->n_marks + 1, sizeof(int)))
                return -1;
            v->marks[v->n_marks++] = v->sp;
            break;
        case '0': POP(a); break;                                   /* POP */
        case '1': if ((a = pop_mark(v)) < 0 || a > v->sp) return -1; v->sp = a; break;
        case '2': if (v->sp <= 0 || push(v, v->stack[v->sp - 1])) return -1; break;
        case 'N': if (push(v, new_obj(v, O_NONE))) return -1; break;
        case 0x88: case 0x89:
            if ((id = new_obj(v, O_BOOL)) < 0) return -1;
            v->o[id].i = op == 0x88;
            if (push(v, id)) return -1;
            break;
        case 'J': case 'K': case 'M': {
            int k = op == 'J' ? 4 : op == 'K' ? 1 : 2;
            NEED(k);
            if ((id = new_obj(v, O_INT)) < 0) return -1;
            v->o[id].i = op == 'J' ? (int32_t)wt_le32(p) : op == 'K' ? p[0] : le16(p);
            p += k;
            if (push(v, id)) return -1;
            break;
        }
        case 0x8a: case 0x8b: {                                    /* LONG1, LONG4 */
            int64_t val = 0;
            if (op == 0x8a) { NEED(1); len = *p++; } else { NEED(4); len = wt_le32(p); p += 4; }
            NEED(len);
            if (len > 8) return -1;
            for (uint64_t i = 0; i < len; i++)
                val |= (int64_t)((uint64_t)p[i] << (8 * i));
            if (len > 0 && len < 8 && (p[len - 1] & 0x80))
                val -= (int64_t)((uint64_t)1 << (8 * len));
            p += len;
            if ((id = new_obj(v, O_INT)) < 0) return -1;
            v->o[id].i = val;
            if (push(v, id)) return -1;
            break;
        }
        case 'G': NEED(8); p += 8;                                 /* BINFLOAT */
            if (push(v, new_obj(v, O_FLOAT))) return -1;
            break;
        case 'X': case 0x8c: case 0x8d: case 'T': case 'U': case 'B': case 'C': case 0x8e:
            if (op == 0x8c || op == 'U' || op == 'C') { NEED(1); len = *p++; }
            else if (op == 0x8d || op == 0x8e) { NEED(8); len = le64(p); p += 8; }
            else { NEED(4); len = wt_le32(p); p += 4; }
            NEED(len);
            if ((id = new_obj(v, O_STR)) < 0) return -1;
            v->o[id].s = (const char *)p;
            v->o[id].len = (size_t)len;
            p += len;
            if (push(v, id)) return -1;
            break;
        case ')': if (push(v, new_obj(v, O_TUPLE))) return -1; break;
        case ']': if (push(v, new_obj(v, O_LIST))) return -1; break;
        case '}': if (push(v, new_obj(v, O_DICT))) return -1; break;
        case 't': if (collect(v, O_TUPLE)) return -1; break;
        case 'l': if (collect(v, O_LIST)) return -1; break;
        case 'd': if (collect(v, O_DICT)) return -1; break;
        case 0x85: case 0x86: case 0x87: {                         /* TUPLE1..3 */
            int k = op - 0x84;
            if (v->sp < k || (id = new_obj(v, O_TUPLE)) < 0) return -1;
            for (int i = v->sp - k; i < v->sp; i++)
                if (append_item(v, id, v->stack[i])) return -1;
            v->sp -= k;
            if (push(v, id)) return -1;
            break;
        }
        case 'a':                                                  /* APPEND */
            POP(a);
            if (v->sp <= 0 || v->o[v->stack[v->sp - 1]].type != O_LIST) return -1;
            if (append_item(v, v->stack[v->sp - 1], a)) return -1;
            break;
        case 'e': case 'u': {                                      /* APPENDS, SETITEMS */
            int m = pop_mark(v), target;
            if (m < 1 || m > v->sp) return -1;
            target = v->stack[m - 1];
            if (v->o[target].type != (op == 'e' ? O_LIST : O_DICT) ||
                (op == 'u' && (v->sp - m) % 2 != 0))
                return -1;
            for (int i = m; i < v->sp; i++)
                if (append_item(v, target, v->stack[i])) return -1;
            v->sp = m;
            break;
        }
        case 's':                                                  /* SETITEM */
            POP(b); POP(a);
            if (v->sp <= 0 || v->o[v->stack[v->sp - 1]].type != O_DICT) return -1;
            if (append_item(v, v->stack[v->sp - 1], a) || append_item(v, v->stack[v->sp - 1], b))
                return -1;
            break;
        case 'q': case 'r': case 0x94: {                           /* BINPUT, LONG_BINPUT, MEMOIZE */
            uint64_t idx;
            if (op == 'q') { NEED(1); idx = *p++; }
            else if (op == 'r') { NEED(4); idx = wt_le32(p); p += 4; }
            else idx = v->n_memo;
            if (v->sp <= 0 || idx >= MEMO_LIMIT) return -1;
            if (idx >= v->cap_memo) {
                size_t nn = idx + 1 > 2 * v->cap_memo ? idx + 1 : 2 * v->cap_memo;
                int *mm = realloc(v->memo, nn * sizeof(int));
                if (mm == NULL) return -1;
                for (size_t i = v->cap_memo; i < nn; i++) mm[i] = -1;
                v->memo = mm;
                v->cap_memo = nn;
            }
            if (v->memo[idx] < 0)
                v->n_memo++;
            v->memo[idx] = v->stack[v->sp - 1];
            break;
        }
        case 'h': case 'j': {                                      /* BINGET, LONG_BINGET */
            uint64_t idx;
            if (op == 'h') { NEED(1); idx = *p++; } else { NEED(4); idx = wt_le32(p); p += 4; }
            if (idx >= v->cap_memo || v->memo[idx] < 0 || push(v, v->memo[idx])) return -1;
            break;
        }
        case 'c': {                                                /* GLOBAL */
            const unsigned char *nl1 = memchr(p, '\n', (size_t)(end - p)), *nl2;
            if (nl1 == NULL) return -1;
            nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1));
            if (nl2 == NULL || (id = new_obj(v, O_GLOBAL)) < 0) return -1;
            v->o[id].s = (const char *)p;
            v->o[id].len = (size_t)(nl1 - p);
            v->o[id].s2 = (const char *)nl1 + 1;
            v->o[id].len2 = (size_t)(nl2 - nl1 - 1);
            p = nl2 + 1;
            if (push(v, id)) return -1;
            break;
        }
        case 0x93:                                                 /* STACK_GLOBAL */
            POP(b); POP(a);
            if (v->o[a].type != O_STR || v->o[b].type != O_STR || (id = new_obj(v, O_GLOBAL)) < 0)
                return -1;
            v->o[id].s = v->o[a].s; v->o[id].len = v->o[a].len;
            v->o[id].s2 = v->o[b].s; v->o[id].len2 = v->o[b].len;
            if (push(v, id)) return -1;
            break;
        case 'R':                                                  /* REDUCE */
            POP(b); POP(a);
            if ((id = reduce(v, a, b)) < 0 || push(v, id)) return -1;
            break;
        case 0x81:                                                 /* NEWOBJ */
            POP(b); POP(a);
            if (push(v, new_obj(v, O_OPAQUE))) return -1;
            break;
        case 'b': POP(a); break;                                   /* BUILD: state ignored */
        case 'Q': {                                                /* BINPERSID */
            const struct obj *t;
            POP(a);
            t = &v->o[a];
            if (t->type != O_TUPLE || t->n < 5 || !str_is(&v->o[t->items[0]], "storage") ||
                v->o[t->items[2]].type != O_STR || v->o[t->items[4]].type != O_INT) {
                v->err = "unknown persistent id";
                return -1;
            }
            if ((c = new_obj(v, O_STORAGE)) < 0) return -1;
            t = &v->o[a];
            v->o[c].dtype = storage_dtype(&v->o[t->items[1]]);
            v->o[c].s = v->o[t->items[2]].s;
            v->o[c].len = v->o[t->items[2]].len;
            v->o[c].i = v->o[t->items[4]].i;
            if (push(v, c)) return -1;
            break;
        }
        default:
            v->err = "unsupported pickle opcode";
            return -1;
        }
    }
#undef NEED
#undef POP
    return -1;
}

/* --- tensors out of the object graph ------------------------------------- */

struct torch_ctx {
    struct wt_set *w;
    struct vm *v;
    int file;
    const struct zip_entry *ents;
    int n_ents;
    const char *prefix;
    size_t plen;
    int big_endian;
    const char *path;
    int visits;             /* objects walked so far */
};

#define WALK_LIMIT (1 << 16)

static int
add_tensor(struct torch_ctx *x, const char *name, const struct obj *t, struct rs_error *e)
{
    const struct obj *st = &x->v->o[t->storage];
    const struct wt_file *f = &x->w->files[x->file];
    const struct zip_entry *z;
    struct wt_tensor *wt;
    char rest[300];
    uint64_t off;
    size_t es = wt_dtype_size(st->dtype);
    int64_t last = t->offset;

    if (st->len > 200)
        return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': bad storage key", x->path, name);
    snprintf(rest, sizeof(rest), "data/%.*s", (int)st->len, st->s);
    z = zip_find(x->ents, x->n_ents, x->prefix, x->plen, rest);
    if (z == NULL || zip_data(f, z, &off))
        return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': storage record %s%s is "
                            "missing, compressed or truncated", x->path, name,
                            x->prefix, rest);
    if (st->dtype == WT_UNSUPPORTED)
        es = 1;
    if (st->i < 0 || (uint64_t)st->i > z->usize / es || (uint64_t)st->i * es != z->usize)
        return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': storage of %lld elements in "
                            "a record of %llu bytes", x->path, name, (long long)st->i,
                            (unsigned long long)z->usize);
    /* every element the tensor can touch must lie inside its storage */
    if (t->offset < 0 || wt_checked_numel(t->shape, t->ndim) < 0)
        goto outside;
    if (wt_checked_numel(t->shape, t->ndim) > 0) {
        for (int d = 0; d < t->ndim; d++) {
            int64_t reach;
            if (t->stride[d] < 0 || (t->shape[d] > 0 && t->stride[d] > INT64_MAX / t->shape[d]))
                goto outside;
            reach = (t->shape[d] - 1) * t->stride[d];
            if (reach > INT64_MAX - last)    /* checked before the sum, not after */
                goto outside;
            last += reach;
        }
        if (last >= st->i)
            goto outside;
    }
    wt = wt_set_add(x->w, name, strlen(name));
    if (wt == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    wt->dtype = st->dtype;
    wt->ndim = t->ndim;
    memcpy(wt->shape, t->shape, sizeof(wt->shape));
    memcpy(wt->stride, t->stride, sizeof(wt->stride));
    wt->file = x->file;
    wt->data = f->map + off + (uint64_t)t->offset * es;
    wt->big_endian = x->big_endian;
    return RS_OK;
outside:
    return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s' reaches outside its storage",
                        x->path, name);
}

static int
walk(struct torch_ctx *x, int id, char *name, size_t name_len, int depth, struct rs_error *e)
{
    const struct obj *o = &x->v->o[id];

    if (depth > 16)
        return RS_OK;
    /* the memo lets a small file name one dict many times at every level:
     * the work is bounded by visits, not by the file's size */
    if (++x->visits > WALK_LIMIT)
        return rs_error_set(e, RS_EFORMAT, "%s: data.pkl reaches more than %d objects "
                            "(a state dict has far fewer)", x->path, WALK_LIMIT);
    if (o->type == O_TENSOR)
        return add_tensor(x, name, o, e);
    if (o->type != O_DICT)
        return RS_OK;
    for (int i = 0; i + 1 < o->n; i += 2) {
        const struct obj *k = &x->v->o[o->items[i]];
        size_t n = name_len;
        int rc;
        if (k->type != O_STR || name_len + k->len + 2 > 1024)
            continue;
        if (n > 0)
            name[n++] = '.';
        memcpy(name + n, k->s, k->len);
        name[n + k->len] = '\0';
        rc = walk(x, o->items[i + 1], name, n + k->len, depth + 1, e);
        name[name_len] = '\0';
        if (rc != RS_OK)
            return rc;
    }
    return RS_OK;
}

static void
vm_free(struct vm *v)
{
    for (int i = 0; i < v->n_o; i++)
        free(v->o[i].items);
    free(v->o);
    free(v->stack);
    free(v->marks);
    free(v->memo);
}

int
wt_open_torch(struct wt_set **out, const char *path, struct rs_error *e)
{
    struct wt_set *w;
    struct zip_entry *ents = NULL;
    const struct zip_entry *pkl = NULL, *bo;
    struct vm v;
    struct torch_ctx x;
    char name[1100] = "";
    uint64_t off;
    int fi, rc, n_ents = 0, root;

    *out = NULL;
    memset(&v, 0, sizeof(v));
    w = wt_set_new("pytorch");
    if (w == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    if ((fi = wt_set_map(w, path, e)) < 0) {
        rc = fi;
        goto fail;
    }
    if (w->files[fi].size >= 2 && w->files[fi].map[0] == 0x80 && w->files[fi].map[1] == 0x02) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: legacy (pre-1.6) PyTorch format; re-save it "
                          "with a recent torch, or convert it to safetensors", path);
        goto fail;
    }
    if (w->files[fi].size < 4 || wt_le32(w->files[fi].map) != 0x04034b50) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: not a PyTorch zip file", path);
        goto fail;
    }
    if ((rc = zip_directory(&w->files[fi], &ents, &n_ents, e)) != RS_OK)
        goto fail;
    for (int i = 0; i < n_ents && pkl == NULL; i++)
        if (ents[i].name_len >= 8 &&
            memcmp(ents[i].name + ents[i].name_len - 8, "data.pkl", 8) == 0 &&
            (ents[i].name_len == 8 || ents[i].name[ents[i].name_len - 9] == '/'))
            pkl = &ents[i];
    if (pkl == NULL || zip_data(&w->files[fi], pkl, &off)) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: no readable data.pkl record", path);
        goto fail;
    }
    x = (struct torch_ctx){ w, &v, fi, ents, n_ents, pkl->name, pkl->name_len - 8, 0, path, 0 };
    bo = zip_find(ents, n_ents, x.prefix, x.plen, "byteorder");
    if (bo != NULL && zip_data(&w->files[fi], bo, &off) == 0 && bo->usize == 3 &&
        memcmp(w->files[fi].map + off, "big", 3) == 0)
        x.big_endian = 1;
    zip_data(&w->files[fi], pkl, &off);
    root = run_pickle(&v, w->files[fi].map + off, pkl->usize);
    if (root < 0) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: cannot read data.pkl (%s)", path,
                          v.err ? v.err : "malformed or truncated pickle");
        goto fail;
    }
    if ((rc = walk(&x, root, name, 0, 0, e)) != RS_OK)
        goto fail;
    if ((rc = wt_set_finish(w, path, e)) != RS_OK)
        goto fail;
    vm_free(&v);
    free(ents);
    *out = w;
    return RS_OK;
fail:
    vm_free(&v);
    free(ents);
    wt_close(w);
    return rc;
}
