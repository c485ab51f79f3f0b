/*
 * docstore.c: the document store of docstore.h on SQLite.
 *
 * Schema (docs.db), version 2:
 *   meta    (key TEXT PRIMARY KEY, value TEXT)      schema, factory, dim,
 *                                                   fingerprint, seq, pruned,
 *                                                   ef_construction,
 *                                                   ef_search, nprobe
 *   docs    (id TEXT PRIMARY KEY, label INTEGER UNIQUE, text TEXT,
 *            meta TEXT, vector BLOB, seq INTEGER)  index on seq
 *   deleted (label INTEGER PRIMARY KEY, seq INTEGER)
 * Text is bound and read with its length, so any bytes (U+0000 too)
 * round-trip.  The fsync policy maps to PRAGMA synchronous: always = FULL
 * (the WAL is synced at every commit), batch = NORMAL (synced at
 * checkpoints only: a power loss may lose the last commits, a crash of the
 * process loses nothing), off = OFF.
 *
 * Version 1 lacked the three effort keys; opening such a store adds them
 * (0: rosim's defaults, what it was searched with) and records version 2.
 * A store of a later version is refused.
 *
 * Filters are SQL over json_each(docs.meta): one EXISTS per clause, the
 * value compared by JSON type and atom, so "1" never equals 1 and true
 * never equals 1.
 */
#include "docstore.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCHEMA_VERSION 2

struct docstore {
    char *dir;
    int dim;
    int fsync;      /* enum coll_fsync */
    sqlite3 *wdb;   /* writes (one writer at a time, by contract) */
    sqlite3 *rdb;   /* reads (serialized by SQLite: SQLITE_OPEN_FULLMUTEX) */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS docs (id TEXT PRIMARY KEY, label INTEGER NOT NULL UNIQUE,"
    " text TEXT NOT NULL, meta TEXT NOT NULL, vector BLOB NOT NULL, seq INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS docs_seq ON docs (seq);"
    "CREATE TABLE IF NOT EXISTS deleted (label INTEGER PRIMARY KEY, seq INTEGER NOT NULL);";

static int
db_error(struct docstore *ds, sqlite3 *db, struct rs_error *e, const char *what)
{
    int code = sqlite3_extended_errcode(db) & 0xff;
    int rc = code == SQLITE_FULL ? RS_ENOSPC
           : code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? RS_EFORMAT
           : code == SQLITE_BUSY || code == SQLITE_LOCKED ? RS_EBUSY : RS_EIO;
    return rs_error_set(e, rc, "%s: %s: %s", ds->dir, what, sqlite3_errmsg(db));
}

static int
exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int
open_db(struct docstore *ds, sqlite3 **db, int create, int fsync, struct rs_error *e)
{
    char path[4200];
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    static const char *const sync[] = { "PRAGMA synchronous=FULL", "PRAGMA synchronous=NORMAL",
                                        "PRAGMA synchronous=OFF" };

    snprintf(path, sizeof(path), "%s/docs.db", ds->dir);
    if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK)
        return db_error(ds, *db, e, "open docs.db");
    sqlite3_busy_timeout(*db, 5000);
    if (exec(*db, "PRAGMA journal_mode=WAL") != SQLITE_OK || exec(*db, sync[fsync]) != SQLITE_OK)
        return db_error(ds, *db, e, "open docs.db");
    return RS_OK;
}

int
ds_open(struct docstore **out, const char *dir, int create, int fsync, struct rs_error *e)
{
    struct docstore *ds = calloc(1, sizeof(*ds));
    int rc;

    *out = NULL;
    if (ds == NULL || (ds->dir = strdup(dir)) == NULL) {
        free(ds);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    ds->fsync = fsync;
    if ((rc = open_db(ds, &ds->wdb, create, fsync, e)) != RS_OK ||
        (rc = open_db(ds, &ds->rdb, 0, fsync, e)) != RS_OK) {
        ds_close(ds);
        return rc;
    }
    if (exec(ds->wdb, schema) != SQLITE_OK) {
        rc = db_error(ds, ds->wdb, e, "create tables");
        ds_close(ds);
        return rc;
    }
    *out = ds;
    return RS_OK;
}

void
ds_close(struct docstore *ds)
{
    if (ds == NULL)
        return;
    sqlite3_close(ds->wdb);
    sqlite3_close(ds->rdb);
    free(ds->dir);
    free(ds);
}

void
ds_remove_files(const char *dir)
{
    static const char *const files[] = { "docs.db", "docs.db-wal", "docs.db-shm" };
    char path[4200];

    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
}

/* --- settings and counters ------------------------------------------------- */

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


static int
meta_put_int(sqlite3 *db, const char *key, long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", v);
    return meta_put(db, key, buf);
}

static int
set_seq(sqlite3 *db, int64_t seq)
{
    return meta_put_int(db, "seq", (long long)seq);
}

static int
put_effort(sqlite3 *db, const struct coll_effort *eff)
{
    return meta_put_int(db, "ef_construction", eff->ef_construction) ||
           meta_put_int(db, "ef_search", eff->ef_search) || meta_put_int(db, "nprobe", eff->nprobe);
}

/* Bring a store of an earlier schema version up to this one. */
static int
migrate(struct docstore *ds, int version, struct rs_error *e)
{
    static const struct coll_effort defaults = { 0, 0, 0 };

    if (version == SCHEMA_VERSION)
        return RS_OK;
    if (version < 1 || version > SCHEMA_VERSION)
        return rs_error_set(e, RS_EFORMAT, "%s: docs.db has schema version %d; this rosim "
                            "reads 1 to %d", ds->dir, version, SCHEMA_VERSION);
    if (exec(ds->wdb, "BEGIN IMMEDIATE") != SQLITE_OK || put_effort(ds->wdb, &defaults) ||
        meta_put_int(ds->wdb, "schema", SCHEMA_VERSION) || exec(ds->wdb, "COMMIT") != SQLITE_OK) {
        int rc = db_error(ds, ds->wdb, e, "upgrade the schema");
        exec(ds->wdb, "ROLLBACK");
        return rc;
    }
    return RS_OK;
}

static int
meta_int(sqlite3 *db, const char *key)
{
    char buf[32];
    return meta_get(db, key, buf, sizeof(buf)) ? atoi(buf) : 0;
}

int
ds_settings_get(struct docstore *ds, struct ds_settings *s, struct rs_error *e)
{
    char buf[64];
    int rc;

    memset(s, 0, sizeof(*s));
    if (meta_get(ds->wdb, "schema", buf, sizeof(buf)) == NULL)
        return rs_error_set(e, RS_ENOTFOUND, "%s: a new collection", ds->dir);
    if ((rc = migrate(ds, atoi(buf), e)) != RS_OK)
        return rc;
    if (meta_get(ds->wdb, "factory", s->factory, sizeof(s->factory)) == NULL ||
        meta_get(ds->wdb, "dim", buf, sizeof(buf)) == NULL)
        return rs_error_set(e, RS_EFORMAT, "%s: docs.db lacks its settings", ds->dir);
    s->dim = ds->dim = atoi(buf);
    meta_get(ds->wdb, "fingerprint", s->fingerprint, sizeof(s->fingerprint));
    s->effort.ef_construction = meta_int(ds->wdb, "ef_construction");
    s->effort.ef_search = meta_int(ds->wdb, "ef_search");
    s->effort.nprobe = meta_int(ds->wdb, "nprobe");
    return RS_OK;
}

int
ds_settings_init(struct docstore *ds, const struct ds_settings *s, struct rs_error *e)
{
    char dim[32];

    snprintf(dim, sizeof(dim), "%d", s->dim);
    if (exec(ds->wdb, "BEGIN") != SQLITE_OK || meta_put_int(ds->wdb, "schema", SCHEMA_VERSION) ||
        meta_put(ds->wdb, "factory", s->factory) || meta_put(ds->wdb, "dim", dim) ||
        meta_put(ds->wdb, "fingerprint", s->fingerprint) || put_effort(ds->wdb, &s->effort) ||
        set_seq(ds->wdb, 0) || exec(ds->wdb, "COMMIT") != SQLITE_OK) {
        int rc = db_error(ds, ds->wdb, e, "initialize");
        exec(ds->wdb, "ROLLBACK");
        return rc;
    }
    ds->dim = s->dim;
    return RS_OK;
}

int
ds_settings_set_effort(struct docstore *ds, const struct coll_effort *eff, struct rs_error *e)
{
    if (exec(ds->wdb, "BEGIN IMMEDIATE") != SQLITE_OK || put_effort(ds->wdb, eff) ||
        exec(ds->wdb, "COMMIT") != SQLITE_OK) {
        int rc = db_error(ds, ds->wdb, e, "store the search effort");
        exec(ds->wdb, "ROLLBACK");
        return rc;
    }
    return RS_OK;
}

int
ds_seq(struct docstore *ds, int64_t *seq, struct rs_error *e)
{
    char buf[32];

    (void)e;
    *seq = meta_get(ds->rdb, "seq", buf, sizeof(buf)) ? atoll(buf) : 0;
    return RS_OK;
}

int
ds_count(struct docstore *ds, long *n, struct rs_error *e)
{
    sqlite3_stmt *q;
    int rc = RS_OK;

    if (sqlite3_prepare_v2(ds->rdb, "SELECT count(*) FROM docs", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW)
        rc = db_error(ds, ds->rdb, e, "count documents");
    else
        *n = (long)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc;
}

/* --- writes ---------------------------------------------------------------- */

static size_t
text_len(const struct coll_doc *d)
{
    return d->text_len ? d->text_len : strlen(d->text);
}

/* The sequence number of the last write, read inside the write transaction
 * (BEGIN IMMEDIATE holds the database's write lock: no other connection can
 * allocate the same numbers). */
static int
locked_seq(sqlite3 *db, int64_t *seq)
{
    char buf[32];

    if (meta_get(db, "seq", buf, sizeof(buf)) == NULL)
        return SQLITE_ERROR;
    *seq = atoll(buf);
    return SQLITE_OK;
}

/* When *n is 0, *n = the store's sequence + 1, read inside the write
 * transaction. */
static int
next_number(sqlite3 *db, int64_t *n)
{
    if (*n != 0)
        return SQLITE_OK;
    if (locked_seq(db, n) != SQLITE_OK)
        return SQLITE_ERROR;
    ++*n;
    return SQLITE_OK;
}

/* ds_upsert with first = the store's sequence + 1 when *first is 0. */
static int
upsert(struct docstore *ds, const struct coll_doc *docs, const float *vecs, int n,
       int64_t *first_io, int64_t *retired, size_t *n_retired, long *new_docs,
       struct rs_error *e)
{
    sqlite3_stmt *find = NULL, *ret = NULL, *put = NULL;
    int64_t first = *first_io;
    int rc = RS_OK;

    *n_retired = 0;
    *new_docs = 0;
    if (exec(ds->wdb, "BEGIN IMMEDIATE") != SQLITE_OK || next_number(ds->wdb, &first))
        goto fail;
    if (sqlite3_prepare_v2(ds->wdb, "SELECT label FROM docs WHERE id = ?", -1, &find, NULL) ||
        sqlite3_prepare_v2(ds->wdb, "INSERT OR REPLACE INTO deleted (label, seq) VALUES (?, ?)",
                           -1, &ret, NULL) ||
        sqlite3_prepare_v2(ds->wdb, "INSERT OR REPLACE INTO docs (id, label, text, meta, vector,"
                           " seq) VALUES (?, ?, ?, ?, ?, ?)", -1, &put, NULL))
        goto fail;
    for (int i = 0; i < n; i++) {
        int64_t label = first + i, seq = first + n - 1;
        sqlite3_bind_text(find, 1, docs[i].id, -1, SQLITE_STATIC);
        if (sqlite3_step(find) == SQLITE_ROW) {
            /* an earlier version, in the store or earlier in this batch */
            int64_t old = sqlite3_column_int64(find, 0);
            sqlite3_bind_int64(ret, 1, old);
            sqlite3_bind_int64(ret, 2, seq);
            if (sqlite3_step(ret) != SQLITE_DONE)
                goto fail;
            sqlite3_reset(ret);
            retired[(*n_retired)++] = old;
        } else {
            ++*new_docs;
        }
        sqlite3_reset(find);
        sqlite3_bind_text(put, 1, docs[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(put, 2, label);
        sqlite3_bind_text64(put, 3, docs[i].text, text_len(&docs[i]), SQLITE_STATIC, SQLITE_UTF8);
        sqlite3_bind_text(put, 4, docs[i].meta ? docs[i].meta : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_blob(put, 5, vecs + (size_t)i * (size_t)ds->dim,
                          ds->dim * (int)sizeof(float), SQLITE_STATIC);
        sqlite3_bind_int64(put, 6, seq);
        if (sqlite3_step(put) != SQLITE_DONE)
            goto fail;
        sqlite3_reset(put);
    }
    if (set_seq(ds->wdb, first + n - 1) != SQLITE_OK || exec(ds->wdb, "COMMIT") != SQLITE_OK)
        goto fail;
    *first_io = first;
    goto out;
fail:
    rc = db_error(ds, ds->wdb, e, "upsert");
    exec(ds->wdb, "ROLLBACK");
out:
    sqlite3_finalize(find);
    sqlite3_finalize(ret);
    sqlite3_finalize(put);
    return rc;
}

int
ds_upsert(struct docstore *ds, const struct coll_doc *docs, const float *vecs, int n,
          int64_t first, int64_t *retired, size_t *n_retired, long *new_docs,
          struct rs_error *e)
{
    return upsert(ds, docs, vecs, n, &first, retired, n_retired, new_docs, e);
}

int
ds_upsert_next(struct docstore *ds, const struct coll_doc *docs, const float *vecs, int n,
               int64_t *first, int64_t *retired, size_t *n_retired, long *new_docs,
               struct rs_error *e)
{
    *first = 0;
    return upsert(ds, docs, vecs, n, first, retired, n_retired, new_docs, e);
}

/* ds_delete with seq = the store's sequence + 1 when *seq_io is 0. */
static int
delete(struct docstore *ds, const char *id, int64_t *seq_io, int64_t *label, struct rs_error *e)
{
    sqlite3_stmt *st = NULL;
    int64_t seq = *seq_io;
    int rc;

    if (exec(ds->wdb, "BEGIN IMMEDIATE") != SQLITE_OK || next_number(ds->wdb, &seq))
        goto fail;
    if (sqlite3_prepare_v2(ds->wdb, "DELETE FROM docs WHERE id = ? RETURNING label", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        exec(ds->wdb, "ROLLBACK");
        return rs_error_set(e, RS_ENOTFOUND, "no document '%s'", id);
    }
    if (rc != SQLITE_ROW)
        goto fail;
    *label = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(ds->wdb, "INSERT OR REPLACE INTO deleted (label, seq) VALUES (?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, *label);
    sqlite3_bind_int64(st, 2, seq);
    if (sqlite3_step(st) != SQLITE_DONE || set_seq(ds->wdb, seq) != SQLITE_OK ||
        exec(ds->wdb, "COMMIT") != SQLITE_OK)
        goto fail;
    sqlite3_finalize(st);
    *seq_io = seq;
    return RS_OK;
fail:
    rc = db_error(ds, ds->wdb, e, "delete");
    sqlite3_finalize(st);
    exec(ds->wdb, "ROLLBACK");
    return rc;
}

int
ds_delete(struct docstore *ds, const char *id, int64_t seq, int64_t *label, struct rs_error *e)
{
    return delete(ds, id, &seq, label, e);
}

int
ds_delete_next(struct docstore *ds, const char *id, int64_t *seq, int64_t *label,
               struct rs_error *e)
{
    *seq = 0;
    return delete(ds, id, seq, label, e);
}

/* The sequence up to which retired labels were forgotten (meta "pruned"). */
static int64_t
pruned_seq(sqlite3 *db)
{
    char buf[32];

    return meta_get(db, "pruned", buf, sizeof(buf)) ? atoll(buf) : 0;
}

int
ds_prune_retired(struct docstore *ds, int64_t seq, struct rs_error *e)
{
    sqlite3_stmt *st = NULL;
    char buf[32];
    int rc = RS_OK;

    snprintf(buf, sizeof(buf), "%lld", (long long)seq);
    if (exec(ds->wdb, "BEGIN IMMEDIATE") != SQLITE_OK ||
        sqlite3_prepare_v2(ds->wdb, "DELETE FROM deleted WHERE seq <= ?", -1, &st, NULL) !=
        SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, seq);
    if (sqlite3_step(st) != SQLITE_DONE ||
        (seq > pruned_seq(ds->wdb) && meta_put(ds->wdb, "pruned", buf) != SQLITE_OK) ||
        exec(ds->wdb, "COMMIT") != SQLITE_OK)
        goto fail;
    goto out;
fail:
    rc = db_error(ds, ds->wdb, e, "prune");
    exec(ds->wdb, "ROLLBACK");
out:
    sqlite3_finalize(st);
    return rc;
}

/* --- reads ----------------------------------------------------------------- */

/* Copy columns col.. (id, text, meta) of st into h. */
static int
fill_hit(sqlite3_stmt *st, int col, struct coll_hit *h)
{
    const void *text = sqlite3_column_text(st, col + 1);
    size_t n = (size_t)sqlite3_column_bytes(st, col + 1);

    h->id = strdup((const char *)sqlite3_column_text(st, col));
    h->text = malloc(n + 1);
    h->meta = strdup((const char *)sqlite3_column_text(st, col + 2));
    if (h->id == NULL || h->text == NULL || h->meta == NULL || text == NULL) {
        coll_hit_clear(h);
        return -1;
    }
    memcpy(h->text, text, n);
    h->text[n] = '\0';
    h->text_len = n;
    return 0;
}

static int
get_by(struct docstore *ds, const char *sql, const char *id, int64_t label,
       struct coll_hit *out, float *vec, struct rs_error *e)
{
    sqlite3_stmt *st;
    int rc;

    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(ds->rdb, sql, -1, &st, NULL) != SQLITE_OK)
        return db_error(ds, ds->rdb, e, "get");
    if (id != NULL)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, label);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && vec != NULL &&
        sqlite3_column_bytes(st, 3) != ds->dim * (int)sizeof(float))
        rc = rs_error_set(e, RS_EFORMAT, "%s: the vector of label %lld has the wrong size",
                          ds->dir, (long long)label);
    else if (rc == SQLITE_ROW && fill_hit(st, 0, out) != 0)
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    else if (rc == SQLITE_ROW) {
        if (vec != NULL)
            memcpy(vec, sqlite3_column_blob(st, 3), (size_t)ds->dim * sizeof(float));
        rc = RS_OK;
    } else if (rc == SQLITE_DONE)
        rc = id ? rs_error_set(e, RS_ENOTFOUND, "no document '%s'", id)
                : rs_error_set(e, RS_ENOTFOUND, "no document with label %lld", (long long)label);
    else
        rc = db_error(ds, ds->rdb, e, "get");
    sqlite3_finalize(st);
    return rc;
}

int
ds_get(struct docstore *ds, const char *id, struct coll_hit *out, struct rs_error *e)
{
    return get_by(ds, "SELECT id, text, meta FROM docs WHERE id = ?", id, 0, out, NULL, e);
}

int
ds_get_label(struct docstore *ds, int64_t label, struct coll_hit *out, float *vec,
             struct rs_error *e)
{
    return get_by(ds, "SELECT id, text, meta, vector FROM docs WHERE label = ?", NULL, label,
                  out, vec, e);
}

static int
vectors_on(struct docstore *ds, sqlite3 *db, int64_t after_seq,
           int (*fn)(int64_t label, const float *vec, void *arg), void *arg, struct rs_error *e)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db, "SELECT label, vector FROM docs WHERE seq > ?", -1, &st,
                           NULL) != SQLITE_OK)
        return db_error(ds, db, e, "read vectors");
    sqlite3_bind_int64(st, 1, after_seq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t label = sqlite3_column_int64(st, 0);
        const float *v = sqlite3_column_blob(st, 1);
        if (sqlite3_column_bytes(st, 1) != ds->dim * (int)sizeof(float)) {
            sqlite3_finalize(st);
            return rs_error_set(e, RS_EFORMAT, "%s: the vector of label %lld has the wrong size",
                                ds->dir, (long long)label);
        }
        if ((rc = fn(label, v, arg)) != 0) {
            sqlite3_finalize(st);
            return rs_error_set(e, rc, "%s: cannot use the vector of label %lld", ds->dir,
                                (long long)label);
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? RS_OK : db_error(ds, db, e, "read vectors");
}

int
ds_vectors(struct docstore *ds, int64_t after_seq,
           int (*fn)(int64_t label, const float *vec, void *arg), void *arg, struct rs_error *e)
{
    return vectors_on(ds, ds->rdb, after_seq, fn, arg, e);
}

static int
retired_on(struct docstore *ds, sqlite3 *db, int64_t after_seq, int64_t max_label,
           int (*fn)(int64_t label, void *arg), void *arg, struct rs_error *e)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db, "SELECT label FROM deleted WHERE seq > ? AND label <= ?",
                           -1, &st, NULL) != SQLITE_OK)
        return db_error(ds, db, e, "read retired labels");
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, max_label);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = fn(sqlite3_column_int64(st, 0), arg)) != 0) {
            sqlite3_finalize(st);
            return rs_error_set(e, rc, "out of memory");
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? RS_OK : db_error(ds, db, e, "read retired labels");
}

int
ds_retired(struct docstore *ds, int64_t after_seq, int64_t max_label,
           int (*fn)(int64_t label, void *arg), void *arg, struct rs_error *e)
{
    return retired_on(ds, ds->rdb, after_seq, max_label, fn, arg, e);
}

/* The feed's optional forms (ds_feed.retired_at, .row). */
static int
retired_at_on(struct docstore *ds, sqlite3 *db, int64_t after_seq, const struct ds_feed *f,
              struct rs_error *e)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db, "SELECT label, seq FROM deleted WHERE seq > ?", -1, &st,
                           NULL) != SQLITE_OK)
        return db_error(ds, db, e, "read retired labels");
    sqlite3_bind_int64(st, 1, after_seq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((rc = f->retired_at(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                                f->arg)) != 0) {
            sqlite3_finalize(st);
            return rs_error_set(e, rc, "%s: cannot use a retired label", ds->dir);
        }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? RS_OK : db_error(ds, db, e, "read retired labels");
}

static int
rows_on(struct docstore *ds, sqlite3 *db, int64_t after_seq, const struct ds_feed *f,
        struct rs_error *e)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db, "SELECT id, label, text, meta, vector, seq FROM docs"
                           " WHERE seq > ?", -1, &st, NULL) != SQLITE_OK)
        return db_error(ds, db, e, "read documents");
    sqlite3_bind_int64(st, 1, after_seq);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ds_row r = {
            sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 5),
            (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 2),
            (const char *)sqlite3_column_text(st, 3), (size_t)sqlite3_column_bytes(st, 2),
            sqlite3_column_blob(st, 4),
        };
        if (sqlite3_column_bytes(st, 4) != ds->dim * (int)sizeof(float))
            rc = rs_error_set(e, RS_EFORMAT, "%s: the vector of label %lld has the wrong size",
                              ds->dir, (long long)r.label);
        else if ((rc = f->row(&r, f->arg)) != 0)
            rc = rs_error_set(e, rc, "%s: cannot use the document of label %lld", ds->dir,
                              (long long)r.label);
        if (rc != 0) {
            sqlite3_finalize(st);
            return rc;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? RS_OK : db_error(ds, db, e, "read documents");
}

/* On a connection of its own, so that its read transaction (one snapshot
 * for the three reads) is not shared with other readers. */
int
ds_changes(struct docstore *ds, int64_t after_seq, const struct ds_feed *f, int64_t *upto,
           struct rs_error *e)
{
    sqlite3 *db = NULL;
    int rc;

    if ((rc = open_db(ds, &db, 0, ds->fsync, e)) != RS_OK)
        goto out;
    if (exec(db, "BEGIN") != SQLITE_OK || locked_seq(db, upto) != SQLITE_OK) {
        rc = db_error(ds, db, e, "read changes");
        goto out;
    }
    if (after_seq > 0 && after_seq < pruned_seq(db))
        rc = rs_error_set(e, RS_EINVAL, "%s: the labels retired after %lld are forgotten "
                          "(pruned up to %lld): rebuild from changes after 0", ds->dir,
                          (long long)after_seq, (long long)pruned_seq(db));
    else if ((rc = f->retired_at != NULL ? retired_at_on(ds, db, after_seq, f, e)
                   : retired_on(ds, db, after_seq, INT64_MAX, f->retired, f->arg, e)) == RS_OK)
        rc = f->row != NULL ? rows_on(ds, db, after_seq, f, e)
           : vectors_on(ds, db, after_seq, f->doc, f->arg, e);
    exec(db, "COMMIT");
out:
    sqlite3_close(db);
    return rc;
}

/* --- a copy of another store ------------------------------------------------ */

struct copying {
    struct docstore *ds;
    sqlite3_stmt *drop, *retire, *put;
    int failed;                 /* a statement failed: the message is in wdb */
};

static int
copy_failed(struct copying *k)
{
    k->failed = 1;
    return (sqlite3_extended_errcode(k->ds->wdb) & 0xff) == SQLITE_FULL ? RS_ENOSPC : RS_EIO;
}

static int
copy_retired(int64_t label, int64_t seq, void *arg)
{
    struct copying *k = arg;

    sqlite3_bind_int64(k->drop, 1, label);
    sqlite3_bind_int64(k->retire, 1, label);
    sqlite3_bind_int64(k->retire, 2, seq);
    if (sqlite3_step(k->drop) != SQLITE_DONE || sqlite3_step(k->retire) != SQLITE_DONE)
        return copy_failed(k);
    sqlite3_reset(k->drop);
    sqlite3_reset(k->retire);
    return 0;
}

static int
copy_row(const struct ds_row *r, void *arg)
{
    struct copying *k = arg;

    sqlite3_bind_text(k->put, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(k->put, 2, r->label);
    sqlite3_bind_text64(k->put, 3, r->text, r->text_len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_text(k->put, 4, r->meta, -1, SQLITE_STATIC);
    sqlite3_bind_blob(k->put, 5, r->vec, k->ds->dim * (int)sizeof(float), SQLITE_STATIC);
    sqlite3_bind_int64(k->put, 6, r->seq);
    if (sqlite3_step(k->put) != SQLITE_DONE)
        return copy_failed(k);
    sqlite3_reset(k->put);
    return 0;
}

int
ds_apply(struct docstore *ds,
         int (*pull)(const struct ds_feed *f, int64_t *upto, void *arg, struct rs_error *e),
         void *arg, struct rs_error *e)
{
    struct copying k = { ds, NULL, NULL, NULL, 0 };
    struct ds_feed f = { .arg = &k, .retired_at = copy_retired, .row = copy_row };
    int64_t upto;
    int rc;

    if (exec(ds->wdb, "BEGIN IMMEDIATE") != SQLITE_OK ||
        sqlite3_prepare_v2(ds->wdb, "DELETE FROM docs WHERE label = ?", -1, &k.drop, NULL) ||
        sqlite3_prepare_v2(ds->wdb, "INSERT OR REPLACE INTO deleted (label, seq) VALUES (?, ?)",
                           -1, &k.retire, NULL) ||
        sqlite3_prepare_v2(ds->wdb, "INSERT OR REPLACE INTO docs (id, label, text, meta, vector,"
                           " seq) VALUES (?, ?, ?, ?, ?, ?)", -1, &k.put, NULL)) {
        rc = db_error(ds, ds->wdb, e, "copy changes");
        goto out;
    }
    if ((rc = pull(&f, &upto, arg, e)) != RS_OK) {
        if (k.failed)
            rc = db_error(ds, ds->wdb, e, "copy changes");
        goto out;
    }
    if (set_seq(ds->wdb, upto) != SQLITE_OK || exec(ds->wdb, "COMMIT") != SQLITE_OK)
        rc = db_error(ds, ds->wdb, e, "copy changes");
out:
    sqlite3_finalize(k.drop);
    sqlite3_finalize(k.retire);
    sqlite3_finalize(k.put);
    if (rc != RS_OK)
        exec(ds->wdb, "ROLLBACK");
    return rc;
}

/* --- filters --------------------------------------------------------------- */

/* The SQL condition on docs.meta for f ("1" when f has no clause), with
 * '?' where filter_bind puts the keys and values.  New; free(). */
static char *
filter_sql(const struct coll_filter *f)
{
    char *sql = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&sql, &len);

    if (m == NULL)
        return NULL;
    fputs("1", m);
    for (int i = 0; f != NULL && i < f->n; i++) {
        const struct coll_clause *cl = &f->clauses[i];
        fprintf(m, " AND %sEXISTS (SELECT 1 FROM json_each(docs.meta) AS j WHERE j.key = ?",
                cl->cond == COLL_ABSENT ? "NOT " : "");
        if (cl->cond == COLL_MATCH) {
            fputs(" AND (0", m);
            for (int v = 0; v < cl->n_values; v++) {
                switch (cl->values[v].type) {
                case COLL_V_NULL: fputs(" OR j.type = 'null'", m); break;
                case COLL_V_TRUE: fputs(" OR j.type = 'true'", m); break;
                case COLL_V_FALSE: fputs(" OR j.type = 'false'", m); break;
                case COLL_V_STRING: fputs(" OR (j.type = 'text' AND j.atom = ?)", m); break;
                default: fputs(" OR (j.type IN ('integer', 'real') AND j.atom = ?)", m); break;
                }
            }
            fputs(")", m);
        }
        fputs(")", m);
    }
    if (fclose(m) != 0) {
        free(sql);
        return NULL;
    }
    return sql;
}

/* Bind f's keys and values to st from parameter first on, in filter_sql's
 * order. */
static void
filter_bind(sqlite3_stmt *st, const struct coll_filter *f, int first)
{
    int p = first;

    for (int i = 0; f != NULL && i < f->n; i++) {
        const struct coll_clause *cl = &f->clauses[i];
        sqlite3_bind_text(st, p++, cl->key, -1, SQLITE_STATIC);
        for (int v = 0; cl->cond == COLL_MATCH && v < cl->n_values; v++) {
            const struct coll_value *x = &cl->values[v];
            if (x->type == COLL_V_STRING)
                sqlite3_bind_text64(st, p++, x->s, x->len, SQLITE_STATIC, SQLITE_UTF8);
            else if (x->type == COLL_V_INT)
                sqlite3_bind_int64(st, p++, x->i);
            else if (x->type == COLL_V_REAL)
                sqlite3_bind_double(st, p++, x->r);
        }
    }
}

/* Prepare "SELECT cols FROM docs WHERE <f> AND tail" on the reader, with
 * f's parameters bound after the tail's own (n_tail of them, first). */
static int
prepare_filtered(struct docstore *ds, const char *cols, const char *tail, int n_tail,
                 const struct coll_filter *f, sqlite3_stmt **st, struct rs_error *e)
{
    char *cond = filter_sql(f), *sql = NULL;
    int rc = RS_OK;

    *st = NULL;
    if (cond == NULL || asprintf(&sql, "SELECT %s FROM docs WHERE %s AND (%s)", cols, tail,
                                 cond) < 0) {
        free(cond);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    if (sqlite3_prepare_v2(ds->rdb, sql, -1, st, NULL) != SQLITE_OK)
        rc = db_error(ds, ds->rdb, e, "filter");
    else
        filter_bind(*st, f, n_tail + 1);
    free(cond);
    free(sql);
    return rc;
}

int
ds_match_labels(struct docstore *ds, const struct coll_filter *f, const int64_t *labels,
                size_t n, unsigned char *match, struct rs_error *e)
{
    sqlite3_stmt *st;
    int rc = prepare_filtered(ds, "1", "label = ?1", 1, f, &st, e);

    for (size_t i = 0; rc == RS_OK && i < n; i++) {
        int step;
        sqlite3_bind_int64(st, 1, labels[i]);
        step = sqlite3_step(st);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            rc = db_error(ds, ds->rdb, e, "filter");
        match[i] = step == SQLITE_ROW;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

int
ds_match_vectors(struct docstore *ds, const struct coll_filter *f,
                 int (*fn)(int64_t label, const float *vec, void *arg), void *arg,
                 struct rs_error *e)
{
    sqlite3_stmt *st;
    int rc = prepare_filtered(ds, "label, vector", "1", 0, f, &st, e), step;

    if (rc != RS_OK)
        return rc;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t label = sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) != ds->dim * (int)sizeof(float)) {
            rc = rs_error_set(e, RS_EFORMAT, "%s: the vector of label %lld has the wrong size",
                              ds->dir, (long long)label);
            break;
        }
        if ((rc = fn(label, sqlite3_column_blob(st, 1), arg)) != 0) {
            rs_error_set(e, rc, "out of memory");
            break;
        }
    }
    if (rc == RS_OK && step != SQLITE_DONE)
        rc = db_error(ds, ds->rdb, e, "filter");
    sqlite3_finalize(st);
    return rc;
}
