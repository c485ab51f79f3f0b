/*
 * snapshot.c: encoding, durable saving and checked loading of index.snap
 * (format in snapshot.h).
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model/weights.h"

#define SNAP_MAGIC "ROSIMSNP"
#define SNAP_VERSION 1u
#define SNAP_MIN_SIZE 52   /* header, empty filter, faiss_len and CRC */

/* --- encoding -------------------------------------------------------------- */

struct writer {
    FILE *f;
    int failed;
};

static void
put(struct writer *w, const void *p, size_t n)
{
    if (!w->failed && fwrite(p, 1, n, w->f) != n)
        w->failed = 1;
}

static void
put_label(int64_t x, void *arg)
{
    put(arg, &x, 8);
}

int
snap_encode(const struct snap_state *s, char **out, size_t *out_len, struct rs_error *e)
{
    char *faiss_buf = NULL, *buf = NULL;
    size_t faiss_len = 0, len = 0;
    struct writer w = { NULL, 0 };
    uint32_t u32;
    uint64_t u64;
    int rc;

    *out = NULL;
    w.f = open_memstream(&faiss_buf, &faiss_len);
    if (w.f == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    rc = fx_write(s->index, w.f, e);
    if (fclose(w.f) != 0 && rc == RS_OK)
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    if (rc != RS_OK) {
        free(faiss_buf);
        return rc;
    }
    w.f = open_memstream(&buf, &len);
    if (w.f == NULL) {
        free(faiss_buf);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    put(&w, SNAP_MAGIC, 8);
    u32 = SNAP_VERSION; put(&w, &u32, 4);
    u32 = (uint32_t)s->dim; put(&w, &u32, 4);
    put(&w, &s->seq, 8);
    u32 = (uint32_t)s->trained; put(&w, &u32, 4);
    u32 = (uint32_t)s->removable; put(&w, &u32, 4);
    u64 = s->filter->n; put(&w, &u64, 8);
    label_set_each(s->filter, put_label, &w);
    u64 = faiss_len; put(&w, &u64, 8);
    put(&w, faiss_buf, faiss_len);
    free(faiss_buf);
    if (fflush(w.f) != 0)
        w.failed = 1;
    if (!w.failed) {
        u32 = wt_crc32c(0, buf, len);
        put(&w, &u32, 4);
    }
    if (fclose(w.f) != 0 || w.failed) {
        free(buf);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    *out = buf;
    *out_len = len;
    return RS_OK;
}

/* --- saving ---------------------------------------------------------------- */

static int
fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

int
snap_sync_new_dir(const char *dir)
{
    char up[4200];
    char *slash;

    if (fsync_dir(dir) != 0)
        return -1;
    snprintf(up, sizeof(up), "%s", dir);
    if ((slash = strrchr(up, '/')) == NULL)
        snprintf(up, sizeof(up), ".");
    else
        slash[slash == up] = '\0';   /* keep "/" itself */
    return fsync_dir(up);
}

int
snap_save(const char *dir, const char *buf, size_t len, struct rs_error *e)
{
    char path[4200], tmp[4300];
    int fd, err = 0;

    snprintf(path, sizeof(path), "%s/index.snap", dir);
    snprintf(tmp, sizeof(tmp), "%s/index.snap.tmp", dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return rs_error_set(e, errno == ENOSPC ? RS_ENOSPC : RS_EIO, "%s: %s", tmp,
                            strerror(errno));
    for (size_t off = 0; off < len && err == 0;) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno != EINTR)
            err = errno;
        else if (w > 0)
            off += (size_t)w;
    }
    if (err == 0 && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err == 0 && rename(tmp, path) != 0)
        err = errno;
    if (err != 0) {
        unlink(tmp);
        return rs_error_set(e, err == ENOSPC ? RS_ENOSPC : RS_EIO,
                            "%s: cannot write the snapshot: %s", tmp, strerror(err));
    }
    if (fsync_dir(dir) != 0)
        return rs_error_set(e, RS_EIO, "%s: %s", dir, strerror(errno));
    return RS_OK;
}

/* --- loading --------------------------------------------------------------- */

struct reader {
    const unsigned char *buf;
    size_t off, end;   /* end: where the CRC begins */
};

static int
take(struct reader *r, void *dst, size_t n)
{
    if (r->off + n > r->end)
        return -1;
    memcpy(dst, r->buf + r->off, n);
    r->off += n;
    return 0;
}

/* Decode buf (size bytes, CRC checked) into s. */
static int
decode(const unsigned char *buf, size_t size, int dim, int64_t max_seq, struct snap_state *s)
{
    struct reader r = { buf, 8, size - 4 };
    uint32_t version, d, trained, removable;
    uint64_t n_filter, faiss_len;
    int64_t seq;
    FILE *mem;
    int rc;

    if (take(&r, &version, 4) || version != SNAP_VERSION || take(&r, &d, 4) ||
        take(&r, &seq, 8) || take(&r, &trained, 4) || take(&r, &removable, 4) ||
        take(&r, &n_filter, 8))
        return RS_EFORMAT;
    if ((int)d != dim || seq > max_seq || seq < 0 || n_filter > size / 8)
        return RS_EFORMAT;
    for (uint64_t i = 0; i < n_filter; i++) {
        int64_t label;
        if (take(&r, &label, 8) || label < 0)
            return RS_EFORMAT;
        if (label_set_add(s->filter, label) != 0)
            return RS_ENOMEM;
    }
    if (take(&r, &faiss_len, 8) || faiss_len != r.end - r.off)
        return RS_EFORMAT;
    mem = fmemopen((void *)(buf + r.off), (size_t)faiss_len, "rb");
    if (mem == NULL)
        return RS_ENOMEM;
    rc = fx_read(mem, &s->index) == 0 && fx_dim(s->index) == dim ? RS_OK : RS_EFORMAT;
    fclose(mem);
    if (rc != RS_OK) {
        fx_free(s->index);
        s->index = NULL;
        return rc;
    }
    s->dim = dim;
    s->seq = seq;
    s->trained = (int)trained;
    s->removable = (int)removable;
    return RS_OK;
}

int
snap_load(const char *dir, int dim, int64_t max_seq, struct snap_state *s)
{
    char path[4200];
    unsigned char *buf = NULL;
    FILE *f;
    long size;
    uint32_t crc;
    int rc = RS_EFORMAT;

    s->index = NULL;
    snprintf(path, sizeof(path), "%s/index.snap", dir);
    f = fopen(path, "rb");
    if (f == NULL)
        return RS_ENOTFOUND;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < SNAP_MIN_SIZE ||
        fseek(f, 0, SEEK_SET) != 0)
        goto out;
    if ((buf = malloc((size_t)size)) == NULL) {
        rc = RS_ENOMEM;
        goto out;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size)
        goto out;
    memcpy(&crc, buf + size - 4, 4);
    if (wt_crc32c(0, buf, (size_t)size - 4) != crc || memcmp(buf, SNAP_MAGIC, 8) != 0)
        goto out;
    rc = decode(buf, (size_t)size, dim, max_seq, s);
out:
    if (rc != RS_OK)
        label_set_clear(s->filter);
    free(buf);
    fclose(f);
    return rc;
}
