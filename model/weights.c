/*
 * weights.c: the tensor set shared by the three readers: file mappings,
 * lookup by name, conversion to float32, CRC32C, format detection.
 */
#include "weights_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- CRC-32C -------------------------------------------------------------- */

/* The tables and the CPU check are set up once, by whichever thread needs
 * them first (models load on several threads at once in the tests and the
 * fingerprint hashes from any thread). */
static uint32_t crc_table[8][256];
static int crc_have_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    __builtin_cpu_init();
    crc_have_hw = __builtin_cpu_supports("sse4.2");
}

__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
    }
    c = (uint32_t)c64;
    for (; n > 0; p++, n--)
        c = __builtin_ia32_crc32qi(c, *p);
    return c;
}

/* slicing-by-8 in software */
static uint32_t
crc_sw(uint32_t c, const unsigned char *p, size_t n)
{
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = c ^ wt_le32(p);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
    }
    for (; n > 0; p++, n--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p) & 0xff];
    return c;
}

uint32_t
wt_crc32c(uint32_t crc, const void *buf, size_t n)
{
    uint32_t c = ~crc;

    pthread_once(&crc_once, crc_init);
    c = crc_have_hw ? crc_hw(c, buf, n) : crc_sw(c, buf, n);
    return ~c;
}

/* --- the set -------------------------------------------------------------- */

struct wt_set *
wt_set_new(const char *format)
{
    struct wt_set *w = calloc(1, sizeof(*w));
    if (w != NULL)
        w->format = format;
    return w;
}

int
wt_set_map(struct wt_set *w, const char *path, struct rs_error *e)
{
    struct wt_file *files, *f;
    struct stat st;
    int fd;

    files = realloc(w->files, (size_t)(w->n_files + 1) * sizeof(*files));
    if (files == NULL)
        return rs_error_set(e, RS_ENOMEM, "%s: out of memory", path);
    w->files = files;
    f = &files[w->n_files];
    memset(f, 0, sizeof(*f));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rs_error_set(e, errno == ENOENT ? RS_ENOTFOUND : RS_EIO,
                            "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rs_error_set(e, RS_EIO, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return rs_error_set(e, RS_EIO, "%s: mmap: %s", path, strerror(errno));
        }
        f->map = m;
    }
    close(fd);
    f->path = strdup(path);
    if (f->path == NULL) {
        if (f->map)
            munmap((void *)f->map, f->size);
        return rs_error_set(e, RS_ENOMEM, "%s: out of memory", path);
    }
    return w->n_files++;
}

struct wt_tensor *
wt_set_add(struct wt_set *w, const char *name, size_t name_len)
{
    struct wt_tensor *t;

    if (w->n == w->cap) {
        int cap = w->cap ? w->cap * 2 : 64;
        struct wt_tensor *p = realloc(w->t, (size_t)cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        w->t = p;
        w->cap = cap;
    }
    t = &w->t[w->n];
    memset(t, 0, sizeof(*t));
    t->name = malloc(name_len + 1);
    if (t->name == NULL)
        return NULL;
    memcpy(t->name, name, name_len);
    t->name[name_len] = '\0';
    w->n++;
    return t;
}

static int
by_name(const void *a, const void *b)
{
    return strcmp((*(struct wt_tensor *const *)a)->name, (*(struct wt_tensor *const *)b)->name);
}

int
wt_set_finish(struct wt_set *w, const char *path, struct rs_error *e)
{
    w->sorted = malloc((size_t)(w->n ? w->n : 1) * sizeof(*w->sorted));
    if (w->sorted == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    for (int i = 0; i < w->n; i++)
        w->sorted[i] = &w->t[i];
    qsort(w->sorted, (size_t)w->n, sizeof(*w->sorted), by_name);
    for (int i = 1; i < w->n; i++)
        if (strcmp(w->sorted[i - 1]->name, w->sorted[i]->name) == 0)
            return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s' appears twice", path,
                                w->sorted[i]->name);
    return RS_OK;
}

void
wt_close(struct wt_set *w)
{
    if (w == NULL)
        return;
    for (int i = 0; i < w->n; i++)
        free(w->t[i].name);
    for (int i = 0; i < w->n_files; i++) {
        if (w->files[i].map != NULL)
            munmap((void *)w->files[i].map, w->files[i].size);
        free(w->files[i].path);
    }
    free(w->files);
    free(w->t);
    free(w->sorted);
    free(w);
}

const char *wt_format(const struct wt_set *w) { return w->format; }
int wt_count(const struct wt_set *w) { return w->n; }
const struct wt_tensor *wt_at(const struct wt_set *w, int i) { return &w->t[i]; }

const struct wt_tensor *
wt_find(const struct wt_set *w, const char *name)
{
    struct wt_tensor key = { .name = (char *)name }, *kp = &key, **hit;

    if (w->sorted == NULL)
        return NULL;
    hit = bsearch(&kp, w->sorted, (size_t)w->n, sizeof(*w->sorted), by_name);
    return hit != NULL ? *hit : NULL;
}

size_t
wt_dtype_size(enum wt_dtype d)
{
    switch (d) {
    case WT_F64: case WT_I64: return 8;
    case WT_F32: case WT_I32: return 4;
    case WT_F16: case WT_BF16: case WT_I16: return 2;
    case WT_I8: case WT_U8: case WT_BOOL: return 1;
    default: return 0;
    }
}

int64_t
wt_checked_numel(const int64_t *shape, int ndim)
{
    int64_t n = 1;

    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > INT64_MAX / shape[i]))
            return -1;
        n *= shape[i];
    }
    return n;
}

int64_t
wt_numel(const struct wt_tensor *t)
{
    return wt_checked_numel(t->shape, t->ndim);
}

int
wt_tensor_place(struct wt_set *w, struct wt_tensor *t, int f, uint64_t data_off,
                uint64_t nbytes, struct rs_error *e)
{
    const struct wt_file *file = &w->files[f];

    if (data_off > file->size || nbytes > file->size - data_off)
        return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': bytes %llu..%llu are past "
                            "the end of the file (%zu bytes; truncated?)", file->path,
                            t->name, (unsigned long long)data_off,
                            (unsigned long long)(data_off + nbytes), file->size);
    t->file = f;
    t->data = file->map != NULL ? file->map + data_off : (const unsigned char *)"";
    {
        int64_t s = 1;
        for (int i = t->ndim - 1; i >= 0; i--) {
            t->stride[i] = s;
            s *= t->shape[i];
        }
    }
    return RS_OK;
}

/* --- conversion ----------------------------------------------------------- */

static float
half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    float f;

    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  /* subnormal: normalize */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | exp << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp - 15 + 127) << 23 | man << 13;
    }
    memcpy(&f, &bits, 4);
    return f;
}

static float
element(const unsigned char *p, enum wt_dtype d, int swap)
{
    unsigned char b[8] = { 0 };
    size_t n = wt_dtype_size(d);

    if (n == 0 || n > sizeof(b))
        return 0;
    for (size_t i = 0; i < n; i++)
        b[i] = swap ? p[n - 1 - i] : p[i];
    switch (d) {
    case WT_F32: { float v; memcpy(&v, b, 4); return v; }
    case WT_F64: { double v; memcpy(&v, b, 8); return (float)v; }
    case WT_F16: { uint16_t v; memcpy(&v, b, 2); return half_to_float(v); }
    case WT_BF16: { uint32_t v = (uint32_t)b[0] << 16 | (uint32_t)b[1] << 24; float f;
                    memcpy(&f, &v, 4); return f; }
    case WT_I64: { int64_t v; memcpy(&v, b, 8); return (float)v; }
    case WT_I32: { int32_t v; memcpy(&v, b, 4); return (float)v; }
    case WT_I16: { int16_t v; memcpy(&v, b, 2); return (float)v; }
    case WT_I8: return (float)(int8_t)b[0];
    case WT_U8: case WT_BOOL: return (float)b[0];
    default: return 0;
    }
}

static int
check_crc(const struct wt_set *w, const struct wt_tensor *t, struct rs_error *e)
{
    uint64_t nbytes = (uint64_t)wt_numel(t) * wt_dtype_size(t->dtype);

    if (t->has_crc && wt_crc32c(0, t->data, nbytes) != t->crc32c)
        return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': CRC32C mismatch (the file "
                            "is corrupt)", w->files[t->file].path, t->name);
    return RS_OK;
}

int
wt_read_f32(const struct wt_set *w, const struct wt_tensor *t, float *dst, struct rs_error *e)
{
    int64_t n = wt_numel(t), idx[WT_MAX_DIMS] = { 0 };
    size_t es = wt_dtype_size(t->dtype);
    int rc;

    if (t->dtype == WT_UNSUPPORTED)
        return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s' has a data type that is "
                            "not a number", w->files[t->file].path, t->name);
    if ((rc = check_crc(w, t, e)) != RS_OK)
        return rc;
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++)
            off += idx[d] * t->stride[d];
        dst[i] = element(t->data + off * (int64_t)es, t->dtype, t->big_endian);
        if (!isfinite(dst[i]))
            return rs_error_set(e, RS_EFORMAT, "%s: tensor '%s': element %lld is %s (the "
                                "weights are damaged)", w->files[t->file].path, t->name,
                                (long long)i, isnan(dst[i]) ? "NaN" : "infinite");
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
    return RS_OK;
}

int
wt_verify_all(const struct wt_set *w, struct rs_error *e)
{
    for (int i = 0; i < w->n; i++) {
        int rc = check_crc(w, &w->t[i], e);
        if (rc != RS_OK)
            return rc;
    }
    return RS_OK;
}

/* --- detection ------------------------------------------------------------ */

static int
exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The prefix named by a TF "checkpoint" file: model_checkpoint_path: "x". */
static int
checkpoint_prefix(const char *dir, char *out, size_t out_len)
{
    char path[4096], line[4096];
    FILE *fp;
    int found = 0;

    snprintf(path, sizeof(path), "%s/checkpoint", dir);
    fp = fopen(path, "r");
    if (fp == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), fp) != NULL) {
        char *q1, *q2;
        if (strncmp(line, "model_checkpoint_path:", 22) != 0)
            continue;
        q1 = strchr(line, '"');
        q2 = q1 ? strrchr(q1 + 1, '"') : NULL;
        if (q2 == NULL)
            continue;
        *q2 = '\0';
        if (q1[1] == '/')
            snprintf(out, out_len, "%s", q1 + 1);
        else
            snprintf(out, out_len, "%s/%s", dir, q1 + 1);
        found = 1;
    }
    fclose(fp);
    return found;
}

int
wt_open_dir(struct wt_set **out, const char *dir, struct rs_error *e)
{
    char path[4200], prefix[4096];

    *out = NULL;
    if (strlen(dir) > 3000)
        return rs_error_set(e, RS_EINVAL, "model directory path is too long");
    snprintf(prefix, sizeof(prefix), "%s/bert_model.ckpt", dir);
    snprintf(path, sizeof(path), "%s.index", prefix);
    if (exists(path))
        return wt_open_tf(out, prefix, e);
    if (checkpoint_prefix(dir, prefix, sizeof(prefix))) {
        snprintf(path, sizeof(path), "%s.index", prefix);
        if (exists(path))
            return wt_open_tf(out, prefix, e);
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (exists(path))
        return wt_open_safetensors(out, path, e);
    snprintf(path, sizeof(path), "%s/pytorch_model.bin", dir);
    if (exists(path))
        return wt_open_torch(out, path, e);
    return rs_error_set(e, RS_ENOTFOUND, "%s: no weights found (expected "
                        "bert_model.ckpt.index, model.safetensors or pytorch_model.bin)", dir);
}
