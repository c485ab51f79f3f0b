/*
 * collection.c: SQLite as the source of truth, a FAISS index beside it.
 * See collection.h for the design; the invariants the code keeps:
 *
 *   - labels are the sequence numbers of the writes that stored them, so a
 *     label > snapshot_seq was never in the snapshot;
 *   - docs holds exactly the acknowledged documents, `deleted` the labels
 *     retired since the last snapshot (pruned once a snapshot covers them);
 *   - the index holds the labels of docs, plus, for index types that cannot
 *     remove, retired labels listed in the filter set.
 */
#include "collection.h"

#include <errno.h>
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/utils/distances_c.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model/weights.h"

#define SNAP_MAGIC "ROSIMSNP"
#define SNAP_VERSION 1u
#define SCHEMA_VERSION "1"
#define IVF_TRAIN_FACTOR 39      /* vectors per list before IVF training */
#define HNSW_EF_SEARCH 128
#define IVF_NPROBE 16

/* --- a set of labels (open addressing, never shrinks) --------------------- */

struct label_set {
    int64_t *slots;   /* -1 = empty */
    size_t cap, n;
};

static int
set_has(const struct label_set *s, int64_t x)
{
    if (s->cap == 0)
        return 0;
    for (size_t i = (size_t)x * 0x9E3779B97F4A7C15ULL & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == x)
            return 1;
        if (s->slots[i] == -1)
            return 0;
    }
}

static int
set_add(struct label_set *s, int64_t x)
{
    if (set_has(s, x))
        return 0;
    if (2 * (s->n + 1) > s->cap) {
        struct label_set t = { NULL, s->cap ? 2 * s->cap : 64, 0 };
        t.slots = malloc(t.cap * sizeof(int64_t));
        if (t.slots == NULL)
            return -1;
        memset(t.slots, 0xff, t.cap * sizeof(int64_t));
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i] != -1)
                set_add(&t, s->slots[i]);
        free(s->slots);
        *s = t;
    }
    for (size_t i = (size_t)x * 0x9E3779B97F4A7C15ULL & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == -1) {
            s->slots[i] = x;
            s->n++;
            return 0;
        }
    }
}

static void
set_clear(struct label_set *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

/* --- the collection ------------------------------------------------------- */

struct coll {
    char *dir;
    char factory[128];
    char fingerprint[256];
    int dim, fsync, snapshot_every;
    sqlite3 *wdb;              /* writer connection (under wmu) */
    sqlite3 *rdb;              /* reader connection (serialized by SQLite) */
    pthread_mutex_t wmu;       /* one writer at a time */
    pthread_rwlock_t lock;     /* the index */
    FaissIndex *index;
    int ivf_nlist;             /* > 0 for IVF factories */
    int trained;               /* the real index is in use (always, but IVF early) */
    int removable;             /* remove_ids works on this index */
    struct label_set filter;   /* retired labels still in the index */
    int64_t seq, snapshot_seq;
    long writes_since_snapshot;
    long documents;
};

static int
db_error(sqlite3 *db, struct rs_error *e, const char *what, const char *dir)
{
    int code = sqlite3_extended_errcode(db) & 0xff;
    int rc = code == SQLITE_FULL ? RS_ENOSPC
           : code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? RS_EFORMAT
           : code == SQLITE_BUSY || code == SQLITE_LOCKED ? RS_EBUSY : RS_EIO;
    return rs_error_set(e, rc, "%s: %s: %s", dir, what, sqlite3_errmsg(db));
}

static int
faiss_error(struct rs_error *e, const char *what)
{
    const char *msg = faiss_get_last_error();
    return rs_error_set(e, RS_EINTERNAL, "faiss: %s: %s", what, msg ? msg : "failed");
}

static int
exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static void
normalize(const float *in, float *out, int dim)
{
    double norm = 0;

    for (int i = 0; i < dim; i++)
        norm += (double)in[i] * in[i];
    norm = sqrt(norm);
    for (int i = 0; i < dim; i++)
        out[i] = norm > 0 ? (float)(in[i] / norm) : 0.0f;
}

/* Index types this service builds: comma-separated components from a known
 * set, each number bounded, so a request cannot ask FAISS for an absurd
 * allocation (IVF100000000 would allocate billions of list heads). */
static int
factory_allowed(const char *f, char *why, size_t why_len)
{
    static const struct { const char *prefix; long max; } parts[] = {
        { "IVF", 65536 }, { "HNSW", 256 }, { "PQ", 768 }, { "OPQ", 768 }, { "PCA", 8192 },
        { "PCAR", 8192 }, { "SQ", 16 }, { "Flat", 0 }, { "IDMap2", 0 }, { "IDMap", 0 },
        { "L2norm", 0 }, { "SQfp16", 0 }, { "RFlat", 0 }, { "Refine(Flat)", 0 },
    };
    char buf[128], *save = NULL;

    if (strlen(f) == 0 || strlen(f) >= sizeof(buf)) {
        snprintf(why, why_len, "the index type must have 1 to %zu characters", sizeof(buf) - 1);
        return 0;
    }
    strcpy(buf, f);
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        int ok = 0;
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && !ok; i++) {
            size_t n = strlen(parts[i].prefix);
            const char *rest = tok + n;
            if (strncmp(tok, parts[i].prefix, n) != 0)
                continue;
            if (parts[i].max == 0) {
                ok = *rest == '\0';
            } else {
                /* digits, optionally "x" or "_" and more digits (PQ16x8, OPQ16_64) */
                char *end;
                long v = strtol(rest, &end, 10);
                if (end != rest && v >= 1 && v <= parts[i].max) {
                    if ((*end == 'x' || *end == '_') && end[1] >= '0' && end[1] <= '9') {
                        long w = strtol(end + 1, &end, 10);
                        ok = *end == '\0' && w >= 1 && w <= parts[i].max;
                    } else {
                        ok = *end == '\0';
                    }
                }
            }
        }
        if (!ok) {
            snprintf(why, why_len, "'%s' in index type '%s' is not a supported component "
                     "(Flat, HNSW<M>, IVF<n>, PQ<m>, SQ<bits>, PCA<d>, ..., numbers bounded)",
                     tok, f);
            return 0;
        }
    }
    return 1;
}

int
coll_index_type_check(const char *factory, struct rs_error *e)
{
    char why[256];

    if (!factory_allowed(factory, why, sizeof(why)))
        return rs_error_set(e, RS_EINVAL, "%s", why);
    return RS_OK;
}

static int
is_ivf_factory(const char *f)
{
    return strstr(f, "IVF") != NULL;
}

/* A new, empty index: the real one, or an exact interim one while an IVF
 * index waits for enough vectors to train. */
static int
new_index(struct coll *c, int interim, FaissIndex **out, struct rs_error *e)
{
    char spec[160];
    FaissIndex *idx = NULL;
    FaissParameterSpace *ps = NULL;

    if (interim)
        snprintf(spec, sizeof(spec), "IDMap2,Flat");
    else if (is_ivf_factory(c->factory) || strncmp(c->factory, "IDMap", 5) == 0)
        snprintf(spec, sizeof(spec), "%s", c->factory);
    else
        snprintf(spec, sizeof(spec), "IDMap2,%s", c->factory);
    if (faiss_index_factory(&idx, c->dim, spec, METRIC_INNER_PRODUCT) != 0)
        return faiss_error(e, c->factory);
    if (!interim && faiss_ParameterSpace_new(&ps) == 0) {
        /* raise HNSW's and IVF's search effort from their low defaults; an
         * index without the parameter refuses it, which is fine */
        if (strstr(c->factory, "HNSW") != NULL)
            faiss_ParameterSpace_set_index_parameter(ps, idx, "efSearch", HNSW_EF_SEARCH);
        if (is_ivf_factory(c->factory))
            faiss_ParameterSpace_set_index_parameter(ps, idx, "nprobe", IVF_NPROBE);
        faiss_ParameterSpace_free(ps);
    }
    *out = idx;
    return RS_OK;
}

/* Whether remove_ids can work on the index type (FAISS's HNSW throws, and
 * its C API prints every exception, so it is not even tried there). */
static int
removable_type(const struct coll *c)
{
    return strstr(c->factory, "HNSW") == NULL;
}

/* Remove labels from the index, or filter them when it cannot remove. */
static int
retire_labels(struct coll *c, const int64_t *labels, size_t n)
{
    FaissIDSelectorBatch *sel = NULL;
    size_t removed;

    if (n == 0)
        return 0;
    if (c->removable && faiss_IDSelectorBatch_new(&sel, n, labels) == 0) {
        int rc = faiss_Index_remove_ids(c->index, (FaissIDSelector *)sel, &removed);
        faiss_IDSelector_free((FaissIDSelector *)sel);
        if (rc == 0)
            return 0;
        c->removable = 0;   /* e.g. HNSW: "remove_ids not implemented" */
    }
    for (size_t i = 0; i < n; i++)
        if (set_add(&c->filter, labels[i]) != 0)
            return -1;
    return 0;
}

/* Build the index from every stored vector. */
static int
rebuild(struct coll *c, struct rs_error *e)
{
    sqlite3_stmt *st = NULL;
    float *vecs = NULL;
    int64_t *labels = NULL;
    size_t n = 0, cap = 0;
    FaissIndex *idx = NULL;
    int rc, interim;

    if (sqlite3_prepare_v2(c->rdb, "SELECT label, vector FROM docs", -1, &st, NULL) != SQLITE_OK)
        return db_error(c->rdb, e, "read vectors", c->dir);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 1) != c->dim * (int)sizeof(float)) {
            sqlite3_finalize(st);
            free(vecs);
            free(labels);
            return rs_error_set(e, RS_EFORMAT, "%s: a stored vector has the wrong size", c->dir);
        }
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 1024;
            float *v = realloc(vecs, nc * (size_t)c->dim * sizeof(float));
            int64_t *l = v ? realloc(labels, nc * sizeof(int64_t)) : NULL;
            if (v) vecs = v;
            if (l) labels = l;
            if (v == NULL || l == NULL) {
                sqlite3_finalize(st);
                free(vecs);
                free(labels);
                return rs_error_set(e, RS_ENOMEM, "out of memory");
            }
            cap = nc;
        }
        labels[n] = sqlite3_column_int64(st, 0);
        memcpy(vecs + n * (size_t)c->dim, sqlite3_column_blob(st, 1), (size_t)c->dim * sizeof(float));
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(vecs);
        free(labels);
        return db_error(c->rdb, e, "read vectors", c->dir);
    }
    interim = c->ivf_nlist > 0 && n < (size_t)c->ivf_nlist * IVF_TRAIN_FACTOR;
    rc = new_index(c, interim, &idx, e);
    if (rc == RS_OK && !interim && !faiss_Index_is_trained(idx) &&
        faiss_Index_train(idx, (idx_t)n, vecs) != 0)
        rc = faiss_error(e, "train");
    if (rc == RS_OK && n > 0 && faiss_Index_add_with_ids(idx, (idx_t)n, vecs, labels) != 0)
        rc = faiss_error(e, "add");
    free(vecs);
    free(labels);
    if (rc != RS_OK) {
        faiss_Index_free(idx);
        return rc;
    }
    faiss_Index_free(c->index);
    c->index = idx;
    c->trained = !interim;
    c->removable = removable_type(c);
    set_clear(&c->filter);
    c->documents = (long)n;
    return RS_OK;
}

/* --- snapshots ------------------------------------------------------------- */

static int
fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int rc;

    if (fd < 0)
        return -1;
    rc = fsync(fd);
    close(fd);
    return rc;
}

struct crc_writer {
    FILE *f;
    uint32_t crc;
    int failed;
};

static void
put(struct crc_writer *w, const void *p, size_t n)
{
    if (w->failed || fwrite(p, 1, n, w->f) != n) {
        w->failed = 1;
        return;
    }
    w->crc = wt_crc32c(w->crc, p, n);
}

int
coll_snapshot(struct coll *c, struct rs_error *e)
{
    char path[4200], tmp[4300];
    char *buf = NULL;
    size_t len = 0;
    FILE *mem;
    struct crc_writer w = { NULL, 0, 0 };
    uint32_t u32;
    uint64_t u64;
    int64_t seq;
    int rc = RS_OK, saved_errno;

    /* writers wait: the snapshot must pair an index with the seq it covers */
    pthread_mutex_lock(&c->wmu);
    pthread_rwlock_rdlock(&c->lock);
    seq = c->seq;
    mem = open_memstream(&buf, &len);
    if (mem == NULL || faiss_write_index(c->index, mem) != 0) {
        pthread_rwlock_unlock(&c->lock);
        pthread_mutex_unlock(&c->wmu);
        if (mem)
            fclose(mem);
        free(buf);
        return faiss_error(e, "serialize the index");
    }
    fclose(mem);
    snprintf(path, sizeof(path), "%s/index.snap", c->dir);
    snprintf(tmp, sizeof(tmp), "%s/index.snap.tmp", c->dir);
    w.f = fopen(tmp, "wb");
    if (w.f == NULL) {
        pthread_rwlock_unlock(&c->lock);
        pthread_mutex_unlock(&c->wmu);
        free(buf);
        return rs_error_set(e, errno == ENOSPC ? RS_ENOSPC : RS_EIO, "%s: %s", tmp, strerror(errno));
    }
    put(&w, SNAP_MAGIC, 8);
    u32 = SNAP_VERSION; put(&w, &u32, 4);
    u32 = (uint32_t)c->dim; put(&w, &u32, 4);
    put(&w, &seq, 8);
    u32 = (uint32_t)c->trained; put(&w, &u32, 4);
    u32 = (uint32_t)c->removable; put(&w, &u32, 4);
    u64 = c->filter.n; put(&w, &u64, 8);
    for (size_t i = 0; i < c->filter.cap; i++)
        if (c->filter.slots[i] != -1)
            put(&w, &c->filter.slots[i], 8);
    pthread_rwlock_unlock(&c->lock);
    u64 = len; put(&w, &u64, 8);
    put(&w, buf, len);
    u32 = w.crc;
    if (!w.failed && fwrite(&u32, 1, 4, w.f) != 4)
        w.failed = 1;
    free(buf);
    if (w.failed || fflush(w.f) != 0 || fsync(fileno(w.f)) != 0)
        w.failed = 1;
    saved_errno = errno;
    if (fclose(w.f) != 0)
        w.failed = 1;
    if (w.failed) {
        unlink(tmp);
        pthread_mutex_unlock(&c->wmu);
        return rs_error_set(e, saved_errno == ENOSPC ? RS_ENOSPC : RS_EIO,
                            "%s: cannot write the snapshot: %s", tmp, strerror(saved_errno));
    }
    if (rename(tmp, path) != 0 || fsync_dir(c->dir) != 0) {
        rc = rs_error_set(e, RS_EIO, "%s: %s", path, strerror(errno));
        unlink(tmp);
        pthread_mutex_unlock(&c->wmu);
        return rc;
    }
    /* retired labels up to seq are now in the snapshot's own state */
    {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(c->wdb, "DELETE FROM deleted WHERE seq <= ?", -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, seq);
            sqlite3_step(st);
            sqlite3_finalize(st);
        }
    }
    c->snapshot_seq = seq;
    c->writes_since_snapshot = 0;
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

/* Load index.snap if it is intact and not newer than the database. */
static int
load_snapshot(struct coll *c)
{
    char path[4200];
    FILE *f, *mem;
    unsigned char *buf = NULL;
    long size;
    size_t off = 0;
    uint32_t u32, crc, dim, trained, removable;
    uint64_t n_filter, faiss_len;
    int64_t seq;
    FaissIndex *idx = NULL;
    int ok = 0;

    snprintf(path, sizeof(path), "%s/index.snap", c->dir);
    f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 52 || fseek(f, 0, SEEK_SET) != 0 ||
        (buf = malloc((size_t)size)) == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size)
        goto out;
    memcpy(&crc, buf + size - 4, 4);
    if (wt_crc32c(0, buf, (size_t)size - 4) != crc || memcmp(buf, SNAP_MAGIC, 8) != 0)
        goto out;
    off = 8;
#define TAKE(dst, n) do { if (off + (n) > (size_t)size - 4) goto out; memcpy((dst), buf + off, (n)); off += (n); } while (0)
    TAKE(&u32, 4);
    if (u32 != SNAP_VERSION)
        goto out;
    TAKE(&dim, 4);
    TAKE(&seq, 8);
    TAKE(&trained, 4);
    TAKE(&removable, 4);
    TAKE(&n_filter, 8);
    if ((int)dim != c->dim || seq > c->seq || seq < 0 || n_filter > (uint64_t)size / 8)
        goto out;
    set_clear(&c->filter);
    for (uint64_t i = 0; i < n_filter; i++) {
        int64_t label;
        TAKE(&label, 8);
        if (set_add(&c->filter, label) != 0)
            goto out;
    }
    TAKE(&faiss_len, 8);
#undef TAKE
    if (faiss_len != (uint64_t)size - 4 - off)
        goto out;
    mem = fmemopen(buf + off, (size_t)faiss_len, "rb");
    if (mem == NULL)
        goto out;
    if (faiss_read_index(mem, 0, &idx) == 0 && faiss_Index_d(idx) == c->dim) {
        faiss_Index_free(c->index);
        c->index = idx;
        idx = NULL;
        c->snapshot_seq = seq;
        c->trained = (int)trained;
        c->removable = (int)removable;
        ok = 1;
    }
    fclose(mem);
    faiss_Index_free(idx);
out:
    if (!ok)
        set_clear(&c->filter);
    free(buf);
    fclose(f);
    return ok;
}

/* Bring a snapshot up to date with the rows written after it. */
static int
replay(struct coll *c, struct rs_error *e)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (sqlite3_prepare_v2(c->rdb, "SELECT label FROM deleted WHERE seq > ? AND label <= ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(c->rdb, e, "replay", c->dir);
    sqlite3_bind_int64(st, 1, c->snapshot_seq);
    sqlite3_bind_int64(st, 2, c->snapshot_seq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t label = sqlite3_column_int64(st, 0);
        if (retire_labels(c, &label, 1) != 0) {
            sqlite3_finalize(st);
            return rs_error_set(e, RS_ENOMEM, "out of memory");
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_error(c->rdb, e, "replay", c->dir);
    if (sqlite3_prepare_v2(c->rdb, "SELECT label, vector FROM docs WHERE seq > ?", -1, &st,
                           NULL) != SQLITE_OK)
        return db_error(c->rdb, e, "replay", c->dir);
    sqlite3_bind_int64(st, 1, c->snapshot_seq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t label = sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) != c->dim * (int)sizeof(float) ||
            faiss_Index_add_with_ids(c->index, 1, sqlite3_column_blob(st, 1), &label) != 0) {
            sqlite3_finalize(st);
            return rs_error_set(e, RS_EFORMAT, "%s: cannot replay document with label %lld",
                                c->dir, (long long)label);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return db_error(c->rdb, e, "replay", c->dir);
    return RS_OK;
}

/* --- opening -------------------------------------------------------------- */

static const char *
meta_get(sqlite3 *db, const char *key, char *buf, size_t len)
{
    sqlite3_stmt *st;
    const char *r = NULL;

    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL) {
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
        r = buf;
    }
    sqlite3_finalize(st);
    return r;
}

static int
meta_put(sqlite3 *db, const char *key, const char *value)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", -1,
                           &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, label INTEGER NOT NULL UNIQUE,"
    " text TEXT NOT NULL, meta TEXT NOT NULL, vector BLOB NOT NULL, seq INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS docs_seq ON docs (seq);"
    "CREATE TABLE IF NOT EXISTS deleted (label INTEGER PRIMARY KEY, seq INTEGER NOT NULL);";

static int
open_db(struct coll *c, sqlite3 **db, int create, struct rs_error *e)
{
    char path[4200];
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    static const char *const sync[] = { "PRAGMA synchronous=FULL", "PRAGMA synchronous=NORMAL",
                                        "PRAGMA synchronous=OFF" };

    snprintf(path, sizeof(path), "%s/docs.db", c->dir);
    if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK)
        return db_error(*db, e, "open docs.db", c->dir);
    sqlite3_busy_timeout(*db, 5000);
    if (exec(*db, "PRAGMA journal_mode=WAL") != SQLITE_OK || exec(*db, sync[c->fsync]) != SQLITE_OK)
        return db_error(*db, e, "open docs.db", c->dir);
    return RS_OK;
}

/* Release everything c holds (databases closed without a snapshot). */
static void
coll_free(struct coll *c)
{
    sqlite3_close(c->wdb);
    sqlite3_close(c->rdb);
    faiss_Index_free(c->index);
    set_clear(&c->filter);
    pthread_mutex_destroy(&c->wmu);
    pthread_rwlock_destroy(&c->lock);
    free(c->dir);
    free(c);
}

int
coll_open(struct coll **out, const char *dir, const struct coll_options *o, struct rs_error *e)
{
    struct coll *c;
    struct stat st;
    char buf[512];
    int rc, exists;

    *out = NULL;
    /* exact search of one query through sgemm rather than FAISS's scalar
     * loop: 2.5x faster on Debian's generic build (a process-wide setting) */
    faiss_set_distance_compute_blas_threshold(1);
    exists = stat(dir, &st) == 0;
    if (!exists && !o->create)
        return rs_error_set(e, RS_ENOTFOUND, "%s: no such collection", dir);
    if (!exists && mkdir(dir, 0700) != 0)
        return rs_error_set(e, errno == ENOSPC ? RS_ENOSPC : RS_EIO, "%s: %s", dir, strerror(errno));
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->dir = strdup(dir)) == NULL) {
        free(c);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&c->wmu, NULL);
    pthread_rwlock_init(&c->lock, NULL);
    c->dim = o->dim;
    c->fsync = o->fsync;
    c->snapshot_every = o->snapshot_every;
    snprintf(c->fingerprint, sizeof(c->fingerprint), "%s", o->fingerprint ? o->fingerprint : "");
    snprintf(c->factory, sizeof(c->factory), "%s", o->factory ? o->factory : "Flat");

    if ((rc = open_db(c, &c->wdb, 1, e)) != RS_OK || (rc = open_db(c, &c->rdb, 0, e)) != RS_OK)
        goto fail;
    if (exec(c->wdb, schema) != SQLITE_OK) {
        rc = db_error(c->wdb, e, "create tables", dir);
        goto fail;
    }
    if (meta_get(c->wdb, "schema", buf, sizeof(buf)) == NULL) {
        char dim[32];
        FaissIndex *probe = NULL;
        /* a new collection: the factory string must be one we allow and
         * make an index */
        if (!factory_allowed(c->factory, buf, sizeof(buf))) {
            rc = rs_error_set(e, RS_EINVAL, "%s", buf);
            goto fail;
        }
        if ((rc = new_index(c, 0, &probe, e)) != RS_OK) {
            rc = rs_error_set(e, RS_EINVAL, "index type '%s' is not valid: %s", c->factory, e->msg);
            goto fail;
        }
        faiss_Index_free(probe);
        snprintf(dim, sizeof(dim), "%d", c->dim);
        if (exec(c->wdb, "BEGIN") != SQLITE_OK || meta_put(c->wdb, "schema", SCHEMA_VERSION) ||
            meta_put(c->wdb, "factory", c->factory) || meta_put(c->wdb, "dim", dim) ||
            meta_put(c->wdb, "fingerprint", c->fingerprint) || meta_put(c->wdb, "seq", "0") ||
            exec(c->wdb, "COMMIT") != SQLITE_OK) {
            rc = db_error(c->wdb, e, "initialize", dir);
            goto fail;
        }
    } else {
        char f[128], fp[256];
        if (meta_get(c->wdb, "factory", f, sizeof(f)) == NULL ||
            meta_get(c->wdb, "dim", buf, sizeof(buf)) == NULL) {
            rc = rs_error_set(e, RS_EFORMAT, "%s: docs.db lacks its settings", dir);
            goto fail;
        }
        if (o->factory != NULL && strcmp(f, o->factory) != 0) {
            rc = rs_error_set(e, RS_EEXIST, "%s exists with index type '%s', not '%s'", dir, f,
                              o->factory);
            goto fail;
        }
        snprintf(c->factory, sizeof(c->factory), "%s", f);
        if (atoi(buf) != c->dim) {
            rc = rs_error_set(e, RS_EINVAL, "%s holds %s-dimensional vectors; the model makes %d",
                              dir, buf, c->dim);
            goto fail;
        }
        if (meta_get(c->wdb, "fingerprint", fp, sizeof(fp)) != NULL && o->fingerprint != NULL &&
            strcmp(fp, o->fingerprint) != 0) {
            rc = rs_error_set(e, RS_EINVAL, "%s was built with model %s, but the loaded model "
                              "is %s; use the same model or a new collection", dir, fp,
                              o->fingerprint);
            goto fail;
        }
    }
    c->seq = meta_get(c->wdb, "seq", buf, sizeof(buf)) ? atoll(buf) : 0;
    if (is_ivf_factory(c->factory)) {
        FaissIndex *probe = NULL;
        if ((rc = new_index(c, 0, &probe, e)) != RS_OK)
            goto fail;
        c->ivf_nlist = faiss_IndexIVF_cast(probe) ? (int)faiss_IndexIVF_nlist(faiss_IndexIVF_cast(probe)) : 1;
        faiss_Index_free(probe);
    }
    {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(c->rdb, "SELECT count(*) FROM docs", -1, &q, NULL) != SQLITE_OK ||
            sqlite3_step(q) != SQLITE_ROW) {
            sqlite3_finalize(q);
            rc = db_error(c->rdb, e, "count documents", dir);
            goto fail;
        }
        c->documents = (long)sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
    c->removable = removable_type(c);
    if (load_snapshot(c)) {
        if ((rc = replay(c, e)) != RS_OK)
            goto fail;
    } else if ((rc = rebuild(c, e)) != RS_OK) {
        goto fail;
    }
    c->writes_since_snapshot = c->seq - c->snapshot_seq;
    /* an IVF index that has since gathered enough vectors trains now */
    if (c->ivf_nlist > 0 && !c->trained && c->documents >= (long)c->ivf_nlist * IVF_TRAIN_FACTOR &&
        (rc = rebuild(c, e)) != RS_OK)
        goto fail;
    *out = c;
    return RS_OK;
fail:
    sqlite3_close(c->wdb);
    sqlite3_close(c->rdb);
    c->wdb = c->rdb = NULL;
    if (!exists) {   /* a collection that failed to come into being leaves nothing */
        static const char *const files[] = { "docs.db", "docs.db-wal", "docs.db-shm" };
        char path[4200];
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
            unlink(path);
        }
        rmdir(dir);
    }
    coll_free(c);
    return rc;
}

void
coll_close(struct coll *c)
{
    if (c == NULL)
        return;
    if (c->seq != c->snapshot_seq)
        coll_snapshot(c, NULL);
    coll_free(c);
}

/* --- writes --------------------------------------------------------------- */

static int
set_seq(sqlite3 *db, int64_t seq)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)seq);
    return meta_put(db, "seq", buf);
}

/* After a successful commit: apply the change to the index (write lock)
 * and snapshot when enough writes have gathered. */
static int
after_commit(struct coll *c, const int64_t *retired, size_t n_retired, const float *vecs,
             const int64_t *labels, size_t n_added, long doc_delta, struct rs_error *e)
{
    int rc = RS_OK, retrain;

    pthread_rwlock_wrlock(&c->lock);
    if (retire_labels(c, retired, n_retired) != 0)
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    if (rc == RS_OK && n_added > 0 &&
        faiss_Index_add_with_ids(c->index, (idx_t)n_added, vecs, labels) != 0)
        rc = faiss_error(e, "add");
    c->documents += doc_delta;
    retrain = (c->ivf_nlist > 0 && !c->trained &&
               c->documents >= (long)c->ivf_nlist * IVF_TRAIN_FACTOR) ||
              (!c->removable && c->filter.n > 1000 && (long)c->filter.n > c->documents / 4);
    /* an index that failed to follow the database, one that must train,
     * or one with too many filtered labels is rebuilt from the stored vectors */
    if (rc != RS_OK || retrain) {
        struct rs_error e2;
        if (rebuild(c, &e2) == RS_OK)
            rc = RS_OK;
    }
    pthread_rwlock_unlock(&c->lock);
    c->writes_since_snapshot += (long)(n_added + (n_added ? 0 : 1));
    return rc;
}

static int
validate_doc(const struct coll_doc *d, int dim, struct rs_error *e)
{
    size_t n;

    if (d->id == NULL || (n = strlen(d->id)) == 0 || n > 256)
        return rs_error_set(e, RS_EINVAL, "a document id must have 1 to 256 bytes");
    if (d->text == NULL || d->vec == NULL)
        return rs_error_set(e, RS_EINVAL, "document '%s' has no text or vector", d->id);
    for (int i = 0; i < dim; i++)
        if (!isfinite(d->vec[i]))
            return rs_error_set(e, RS_EINVAL, "document '%s' has a non-finite vector", d->id);
    return RS_OK;
}

int
coll_upsert(struct coll *c, const struct coll_doc *docs, int n, struct rs_error *e)
{
    sqlite3_stmt *find = NULL, *ret = NULL, *put = NULL;
    float *vecs = NULL;
    int64_t *labels = NULL, *retired = NULL, seq;
    size_t n_retired = 0;
    long new_docs = 0;
    int rc = RS_OK;

    if (n < 1)
        return rs_error_set(e, RS_EINVAL, "no documents");
    for (int i = 0; i < n; i++)
        if ((rc = validate_doc(&docs[i], c->dim, e)) != RS_OK)
            return rc;
    vecs = malloc((size_t)n * (size_t)c->dim * sizeof(float));
    labels = malloc((size_t)n * sizeof(int64_t));
    retired = malloc((size_t)n * sizeof(int64_t));
    if (vecs == NULL || labels == NULL || retired == NULL) {
        free(vecs);
        free(labels);
        free(retired);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&c->wmu);
    seq = c->seq;
    if (exec(c->wdb, "BEGIN IMMEDIATE") != SQLITE_OK ||
        sqlite3_prepare_v2(c->wdb, "SELECT label FROM docs WHERE id = ?", -1, &find, NULL) ||
        sqlite3_prepare_v2(c->wdb, "INSERT OR REPLACE INTO deleted (label, seq) VALUES (?, ?)",
                           -1, &ret, NULL) ||
        sqlite3_prepare_v2(c->wdb, "INSERT OR REPLACE INTO docs (id, label, text, meta, vector, seq)"
                           " VALUES (?, ?, ?, ?, ?, ?)", -1, &put, NULL)) {
        rc = db_error(c->wdb, e, "upsert", c->dir);
        goto rollback;
    }
    for (int i = 0; i < n; i++) {
        float *v = vecs + (size_t)i * (size_t)c->dim;
        int found = 0;
        normalize(docs[i].vec, v, c->dim);
        labels[i] = ++seq;
        sqlite3_bind_text(find, 1, docs[i].id, -1, SQLITE_STATIC);
        if (sqlite3_step(find) == SQLITE_ROW) {
            found = 1;
            retired[n_retired] = sqlite3_column_int64(find, 0);
            sqlite3_bind_int64(ret, 1, retired[n_retired]);
            sqlite3_bind_int64(ret, 2, seq);
            if (sqlite3_step(ret) != SQLITE_DONE)
                goto db_fail;
            sqlite3_reset(ret);
            n_retired++;
        }
        sqlite3_reset(find);
        /* an id repeated within the batch retires its earlier label too */
        for (int j = 0; j < i && !found; j++)
            if (strcmp(docs[j].id, docs[i].id) == 0)
                found = 1;
        new_docs += !found;
        sqlite3_bind_text(put, 1, docs[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(put, 2, labels[i]);
        sqlite3_bind_text(put, 3, docs[i].text, -1, SQLITE_STATIC);
        sqlite3_bind_text(put, 4, docs[i].meta ? docs[i].meta : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_blob(put, 5, v, c->dim * (int)sizeof(float), SQLITE_STATIC);
        sqlite3_bind_int64(put, 6, seq);
        if (sqlite3_step(put) != SQLITE_DONE)
            goto db_fail;
        sqlite3_reset(put);
    }
    if (set_seq(c->wdb, seq) != SQLITE_OK || exec(c->wdb, "COMMIT") != SQLITE_OK)
        goto db_fail;
    c->seq = seq;
    sqlite3_finalize(find);
    sqlite3_finalize(ret);
    sqlite3_finalize(put);
    /* labels retired inside this batch were never added */
    {
        size_t k = 0;
        for (size_t i = 0; i < n_retired; i++)
            if (retired[i] <= c->seq - n)
                retired[k++] = retired[i];
        n_retired = k;
    }
    {
        /* only the last version of an id repeated in the batch is added */
        size_t k = 0;
        for (int i = 0; i < n; i++) {
            int later = 0;
            for (int j = i + 1; j < n && !later; j++)
                later = strcmp(docs[j].id, docs[i].id) == 0;
            if (later)
                continue;
            memmove(vecs + k * (size_t)c->dim, vecs + (size_t)i * (size_t)c->dim,
                    (size_t)c->dim * sizeof(float));
            labels[k++] = labels[i];
        }
        rc = after_commit(c, retired, n_retired, vecs, labels, k, new_docs, e);
    }
    if (c->snapshot_every > 0 && c->writes_since_snapshot >= c->snapshot_every) {
        pthread_mutex_unlock(&c->wmu);
        coll_snapshot(c, NULL);   /* a failed snapshot loses nothing: replay covers it */
        goto done;
    }
    pthread_mutex_unlock(&c->wmu);
    goto done;
db_fail:
    rc = db_error(c->wdb, e, "upsert", c->dir);
rollback:
    sqlite3_finalize(find);
    sqlite3_finalize(ret);
    sqlite3_finalize(put);
    exec(c->wdb, "ROLLBACK");
    pthread_mutex_unlock(&c->wmu);
done:
    free(vecs);
    free(labels);
    free(retired);
    return rc;
}

int
coll_delete(struct coll *c, const char *id, struct rs_error *e)
{
    sqlite3_stmt *st = NULL;
    int64_t label, seq;
    int rc;

    pthread_mutex_lock(&c->wmu);
    seq = c->seq + 1;
    if (exec(c->wdb, "BEGIN IMMEDIATE") != SQLITE_OK ||
        sqlite3_prepare_v2(c->wdb, "SELECT label FROM docs WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        goto db_fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        exec(c->wdb, "ROLLBACK");
        pthread_mutex_unlock(&c->wmu);
        return rs_error_set(e, RS_ENOTFOUND, "no document '%s'", id);
    }
    label = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(c->wdb, "DELETE FROM docs WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        goto db_fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto db_fail;
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(c->wdb, "INSERT OR REPLACE INTO deleted (label, seq) VALUES (?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        goto db_fail;
    sqlite3_bind_int64(st, 1, label);
    sqlite3_bind_int64(st, 2, seq);
    if (sqlite3_step(st) != SQLITE_DONE || set_seq(c->wdb, seq) != SQLITE_OK ||
        exec(c->wdb, "COMMIT") != SQLITE_OK)
        goto db_fail;
    sqlite3_finalize(st);
    c->seq = seq;
    rc = after_commit(c, &label, 1, NULL, NULL, 0, -1, e);
    pthread_mutex_unlock(&c->wmu);
    return rc;
db_fail:
    rc = db_error(c->wdb, e, "delete", c->dir);
    sqlite3_finalize(st);
    exec(c->wdb, "ROLLBACK");
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

/* --- reads ---------------------------------------------------------------- */

void
coll_hit_clear(struct coll_hit *h)
{
    free(h->id);
    free(h->text);
    free(h->meta);
    memset(h, 0, sizeof(*h));
}

void
coll_hits_free(struct coll_hit *hits, int n)
{
    for (int i = 0; hits != NULL && i < n; i++)
        coll_hit_clear(&hits[i]);
    free(hits);
}

static int
fill_hit(sqlite3_stmt *st, int col, struct coll_hit *h)
{
    h->id = strdup((const char *)sqlite3_column_text(st, col));
    h->text = strdup((const char *)sqlite3_column_text(st, col + 1));
    h->meta = strdup((const char *)sqlite3_column_text(st, col + 2));
    if (h->id == NULL || h->text == NULL || h->meta == NULL) {
        coll_hit_clear(h);
        return -1;
    }
    return 0;
}

int
coll_get(struct coll *c, const char *id, struct coll_hit *out, struct rs_error *e)
{
    sqlite3_stmt *st;
    int rc;

    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(c->rdb, "SELECT id, text, meta FROM docs WHERE id = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return db_error(c->rdb, e, "get", c->dir);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rc = fill_hit(st, 0, out) == 0 ? RS_OK : rs_error_set(e, RS_ENOMEM, "out of memory");
        out->score = 1.0f;
    } else if (rc == SQLITE_DONE) {
        rc = rs_error_set(e, RS_ENOTFOUND, "no document '%s'", id);
    } else {
        rc = db_error(c->rdb, e, "get", c->dir);
    }
    sqlite3_finalize(st);
    return rc;
}

int
coll_search(struct coll *c, const float *query, int k, float min_score,
            struct coll_hit **hits, int *n_hits, struct rs_error *e)
{
    float *q = NULL, *dist = NULL;
    idx_t *labels = NULL, want, ntotal;
    sqlite3_stmt *st = NULL;
    struct coll_hit *out = NULL;
    int n = 0, rc = RS_OK;

    *hits = NULL;
    *n_hits = 0;
    if (k < 1)
        return rs_error_set(e, RS_EINVAL, "k must be at least 1");
    for (int i = 0; i < c->dim; i++)
        if (!isfinite(query[i]))
            return rs_error_set(e, RS_EINVAL, "the query vector is not finite");
    q = malloc((size_t)c->dim * sizeof(float));
    if (q == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    normalize(query, q, c->dim);
    pthread_rwlock_rdlock(&c->lock);
    ntotal = faiss_Index_ntotal(c->index);
    want = (idx_t)k + (idx_t)c->filter.n;   /* filtered labels may take places */
    if (want > ntotal)
        want = ntotal;
    if (want == 0) {
        pthread_rwlock_unlock(&c->lock);
        free(q);
        return RS_OK;
    }
    dist = malloc((size_t)want * sizeof(float));
    labels = malloc((size_t)want * sizeof(idx_t));
    out = calloc((size_t)k, sizeof(*out));
    if (dist == NULL || labels == NULL || out == NULL) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    } else if (faiss_Index_search(c->index, 1, q, want, dist, labels) != 0) {
        rc = faiss_error(e, "search");
    } else {
        /* drop filtered labels while the lock guarantees the set is stable */
        idx_t m = 0;
        for (idx_t i = 0; i < want; i++) {
            if (labels[i] < 0 || set_has(&c->filter, labels[i]))
                continue;
            labels[m] = labels[i];
            dist[m++] = dist[i];
        }
        want = m;
    }
    pthread_rwlock_unlock(&c->lock);
    if (rc == RS_OK &&
        sqlite3_prepare_v2(c->rdb, "SELECT id, text, meta FROM docs WHERE label = ?", -1, &st,
                           NULL) != SQLITE_OK)
        rc = db_error(c->rdb, e, "search", c->dir);
    for (idx_t i = 0; rc == RS_OK && i < want && n < k; i++) {
        if (dist[i] < min_score)
            break;
        sqlite3_bind_int64(st, 1, labels[i]);
        if (sqlite3_step(st) == SQLITE_ROW) {  /* a label replaced meanwhile is skipped */
            if (fill_hit(st, 0, &out[n]) != 0)
                rc = rs_error_set(e, RS_ENOMEM, "out of memory");
            else
                out[n++].score = dist[i];
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    free(q);
    free(dist);
    free(labels);
    if (rc != RS_OK) {
        coll_hits_free(out, n);
        return rc;
    }
    *hits = out;
    *n_hits = n;
    return RS_OK;
}

void
coll_get_stats(struct coll *c, struct coll_stats *s)
{
    memset(s, 0, sizeof(*s));
    pthread_rwlock_rdlock(&c->lock);
    s->documents = c->documents;
    s->index_vectors = (long)faiss_Index_ntotal(c->index) - (long)c->filter.n;
    s->filtered = (long)c->filter.n;
    s->seq = c->seq;
    s->snapshot_seq = c->snapshot_seq;
    s->trained = c->trained;
    s->dim = c->dim;
    snprintf(s->factory, sizeof(s->factory), "%s", c->factory);
    pthread_rwlock_unlock(&c->lock);
}
