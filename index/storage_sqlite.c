/*
 * storage_sqlite.c: the storage of storage.h on SQLite: a data directory
 * with one subdirectory per collection, holding its docs.db (docstore.c).
 *
 * The directory is the database: the collections are the subdirectories
 * with a docs.db whose settings are written.  Numbers are allocated by
 * docstore.c inside each write's transaction (BEGIN IMMEDIATE holds the
 * file's write lock), so two connections on one directory cannot share a
 * label.  SQLite has no notifications: wait() polls the committed
 * sequence every POLL_MS.
 */
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"
#include "store.h"

#define POLL_MS 10

struct sq_db {
    struct st_db base;
    char *dir;
    int fsync;
};

struct sq_coll {
    struct st_coll base;
    struct docstore *ds;
};

static const struct st_ops sq_ops;

static int
coll_path(struct sq_db *db, const char *name, char *path, size_t len, struct rs_error *e)
{
    if (!store_valid_name(name))
        return rs_error_set(e, RS_EINVAL, "'%s' is not a collection name", name);
    if ((size_t)snprintf(path, len, "%s/%s", db->dir, name) >= len)
        return rs_error_set(e, RS_EINVAL, "%s: path too long", db->dir);
    return RS_OK;
}

/* Whether path holds a docs.db. */
static int
has_store(const char *path)
{
    char file[4200];

    snprintf(file, sizeof(file), "%s/docs.db", path);
    return access(file, F_OK) == 0;
}

/* --- the database --------------------------------------------------------- */

int
st_sqlite_open(struct st_db **out, const char *dir, int fsync, struct rs_error *e)
{
    struct sq_db *db;

    *out = NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return rs_error_set(e, RS_EIO, "mkdir(\"%s\") failed: %s", dir, strerror(errno));
    if ((db = calloc(1, sizeof(*db))) == NULL || (db->dir = strdup(dir)) == NULL) {
        free(db);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    db->base.ops = &sq_ops;
    db->fsync = fsync;
    *out = &db->base;
    return RS_OK;
}

static void
sq_db_close(struct st_db *base)
{
    struct sq_db *db = (struct sq_db *)base;

    free(db->dir);
    free(db);
}

static int
sq_ping(struct st_db *base, struct rs_error *e)
{
    struct sq_db *db = (struct sq_db *)base;

    if (access(db->dir, R_OK | W_OK | X_OK) != 0)
        return rs_error_set(e, RS_EIO, "%s: %s", db->dir, strerror(errno));
    return RS_OK;
}

static int
sq_changed(struct st_db *base, unsigned long *gen, int timeout_ms, struct rs_error *e)
{
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };

    (void)base;
    (void)e;
    nanosleep(&ts, NULL);
    ++*gen;
    return RS_OK;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
sq_list(struct st_db *base, char ***names, size_t *n, struct rs_error *e)
{
    struct sq_db *db = (struct sq_db *)base;
    char path[4096], **v = NULL, **bigger;
    size_t cap = 0;
    struct dirent *de;
    DIR *d = opendir(db->dir);

    *names = NULL;
    *n = 0;
    if (d == NULL)
        return rs_error_set(e, RS_EIO, "opendir(\"%s\") failed: %s", db->dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        if (!store_valid_name(de->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", db->dir, de->d_name);
        if (!has_store(path))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            if ((bigger = realloc(v, cap * sizeof(*v))) == NULL)
                goto nomem;
            v = bigger;
        }
        if ((v[*n] = strdup(de->d_name)) == NULL)
            goto nomem;
        ++*n;
    }
    closedir(d);
    if (*n > 0)
        qsort(v, *n, sizeof(*v), cmp_names);
    *names = v;
    return RS_OK;
nomem:
    closedir(d);
    st_names_free(v, *n);
    *n = 0;
    return rs_error_set(e, RS_ENOMEM, "out of memory");
}

static int
sq_create(struct st_db *base, const char *name, const struct ds_settings *s,
          struct rs_error *e)
{
    struct sq_db *db = (struct sq_db *)base;
    struct docstore *ds = NULL;
    struct ds_settings old;
    char path[4096];
    int rc;

    if ((rc = coll_path(db, name, path, sizeof(path), e)) != RS_OK)
        return rc;
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return rs_error_set(e, RS_EIO, "mkdir(\"%s\") failed: %s", path, strerror(errno));
    if ((rc = ds_open(&ds, path, 1, db->fsync, e)) != RS_OK)
        return rc;
    rc = ds_settings_get(ds, &old, e);
    if (rc == RS_OK)
        rc = rs_error_set(e, RS_EEXIST, "collection '%s' exists", name);
    else if (rc == RS_ENOTFOUND)
        rc = ds_settings_init(ds, s, e);
    ds_close(ds);
    return rc;
}

static int
sq_drop(struct st_db *base, const char *name, struct rs_error *e)
{
    struct sq_db *db = (struct sq_db *)base;
    char path[4096];
    int rc;

    if ((rc = coll_path(db, name, path, sizeof(path), e)) != RS_OK)
        return rc;
    if (!has_store(path))
        return rs_error_set(e, RS_ENOTFOUND, "no collection '%s'", name);
    ds_remove_files(path);
    if (rmdir(path) != 0 && errno != ENOTEMPTY && errno != EEXIST)
        return rs_error_set(e, RS_EIO, "rmdir(\"%s\") failed: %s", path, strerror(errno));
    return RS_OK;
}

/* A store without settings met by an open: see st_sqlite_coll_open. */
static int
unfinished(struct docstore *ds, const char *dir, struct rs_error *e)
{
    long n;
    int rc = ds_count(ds, &n, e);

    if (rc != RS_OK)
        return rc;
    if (n > 0)
        return rs_error_set(e, RS_EFORMAT, "%s: docs.db holds %ld documents but no settings "
                            "(index type, dimension, model)", dir, n);
    return rs_error_set(e, RS_ENOTFOUND, "%s: its creation never finished (no settings were "
                        "committed), so it was never acknowledged", dir);
}

int
st_sqlite_coll_open(struct st_coll **out, const char *dir, const struct ds_settings *create,
                    int fsync, struct rs_error *e)
{
    struct sq_coll *c;
    struct ds_settings s;
    int rc;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    c->base.ops = &sq_ops;
    if ((rc = ds_open(&c->ds, dir, create != NULL, fsync, e)) == RS_OK &&
        (rc = ds_settings_get(c->ds, &s, e)) == RS_ENOTFOUND) {
        if (create == NULL)
            rc = unfinished(c->ds, dir, e);
        else if ((rc = ds_settings_init(c->ds, create, e)) == RS_OK &&
                 fsync == COLL_FSYNC_ALWAYS && snap_sync_new_dir(dir) != 0)
            rc = rs_error_set(e, RS_EIO, "%s: cannot sync the new collection to disk: %s", dir,
                              strerror(errno));
    }
    if (rc != RS_OK) {
        ds_close(c->ds);
        free(c);
        return rc;
    }
    *out = &c->base;
    return RS_OK;
}

static int
sq_open(struct st_db *base, const char *name, struct st_coll **out, struct rs_error *e)
{
    struct sq_db *db = (struct sq_db *)base;
    char path[4096];
    int rc;

    *out = NULL;
    if ((rc = coll_path(db, name, path, sizeof(path), e)) != RS_OK)
        return rc;
    if (!has_store(path))
        return rs_error_set(e, RS_ENOTFOUND, "no collection '%s'", name);
    if ((rc = st_sqlite_coll_open(out, path, NULL, db->fsync, e)) == RS_ENOTFOUND)
        rs_error_set(e, rc, "no collection '%s'", name);
    return rc;
}

/* --- a collection: docstore.c --------------------------------------------- */

#define DS(c) (((struct sq_coll *)(c))->ds)

static void
sq_close(struct st_coll *c)
{
    ds_close(DS(c));
    free(c);
}

static int64_t
sq_uid(struct st_coll *c)
{
    (void)c;
    return 0;
}

static int
sq_settings(struct st_coll *c, struct ds_settings *s, struct rs_error *e)
{
    return ds_settings_get(DS(c), s, e);
}

static int
sq_set_effort(struct st_coll *c, const struct coll_effort *eff, struct rs_error *e)
{
    return ds_settings_set_effort(DS(c), eff, e);
}

static int
sq_seq(struct st_coll *c, int64_t *seq, struct rs_error *e)
{
    return ds_seq(DS(c), seq, e);
}

static int
sq_count(struct st_coll *c, long *n, struct rs_error *e)
{
    return ds_count(DS(c), n, e);
}

static int
sq_upsert(struct st_coll *c, const struct coll_doc *docs, const float *vecs, int n,
          int64_t *first, int64_t *retired, size_t *n_retired, long *new_docs,
          struct rs_error *e)
{
    return ds_upsert_next(DS(c), docs, vecs, n, first, retired, n_retired, new_docs, e);
}

static int
sq_del(struct st_coll *c, const char *id, int64_t *seq, int64_t *label, struct rs_error *e)
{
    return ds_delete_next(DS(c), id, seq, label, e);
}

static int
sq_get(struct st_coll *c, const char *id, struct coll_hit *out, struct rs_error *e)
{
    return ds_get(DS(c), id, out, e);
}

static int
sq_get_label(struct st_coll *c, int64_t label, struct coll_hit *out, float *vec,
             struct rs_error *e)
{
    return ds_get_label(DS(c), label, out, vec, e);
}

static int
sq_match_labels(struct st_coll *c, const struct coll_filter *f, const int64_t *labels, size_t n,
                unsigned char *match, struct rs_error *e)
{
    return ds_match_labels(DS(c), f, labels, n, match, e);
}

static int
sq_match_vectors(struct st_coll *c, const struct coll_filter *f,
                 int (*fn)(int64_t label, const float *vec, void *arg), void *arg,
                 struct rs_error *e)
{
    return ds_match_vectors(DS(c), f, fn, arg, e);
}

static int
sq_changes(struct st_coll *c, int64_t after_seq, const struct ds_feed *f, int64_t *upto,
           struct rs_error *e)
{
    return ds_changes(DS(c), after_seq, f, upto, e);
}

static int
sq_prune_retired(struct st_coll *c, int64_t seq, struct rs_error *e)
{
    return ds_prune_retired(DS(c), seq, e);
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
sq_wait(struct st_coll *c, int64_t after_seq, int timeout_ms, int64_t *seq, struct rs_error *e)
{
    double deadline = now_ms() + timeout_ms;
    int rc;

    for (;;) {
        if ((rc = ds_seq(DS(c), seq, e)) != RS_OK)
            return rc;
        if (*seq > after_seq)
            return RS_OK;
        double left = deadline - now_ms();
        if (left <= 0)
            return rs_error_set(e, RS_ETIMEOUT, "no write after %lld", (long long)after_seq);
        struct timespec ts = { 0, (long)((left < POLL_MS ? left : POLL_MS) * 1e6) };
        nanosleep(&ts, NULL);
    }
}

static const struct st_ops sq_ops = {
    .backend = "sqlite",
    .db_close = sq_db_close,
    .ping = sq_ping,
    .changed = sq_changed,
    .list = sq_list,
    .create = sq_create,
    .drop = sq_drop,
    .open = sq_open,
    .close = sq_close,
    .uid = sq_uid,
    .settings = sq_settings,
    .set_effort = sq_set_effort,
    .seq = sq_seq,
    .count = sq_count,
    .upsert = sq_upsert,
    .del = sq_del,
    .get = sq_get,
    .get_label = sq_get_label,
    .match_labels = sq_match_labels,
    .match_vectors = sq_match_vectors,
    .changes = sq_changes,
    .prune_retired = sq_prune_retired,
    .wait = sq_wait,
};
