/*
 * storage.h: where collections live, the source of truth, on one of two
 * backends behind one table of operations.
 *
 *     struct st_db *db;
 *     st_open(&db, "postgresql", "host=db dbname=rosim", 0, &err);
 *     db->ops->create(db, "faq", &settings, &err);    // RS_EEXIST: there already
 *     struct st_coll *c;
 *     db->ops->open(db, "faq", &c, &err);
 *     int64_t first;
 *     c->ops->upsert(c, docs, vecs, n, &first, retired, &n_retired, &new_docs, &err);
 *     c->ops->wait(c, seen, 1000, &seq, &err);        // another replica wrote?
 *     c->ops->changes(c, seen, &feed, &seq, &err);    // what it wrote
 *     c->ops->close(c);
 *     st_close(db);
 *
 * A database holds any number of named collections; a collection holds
 * documents with the meaning of docstore.h: id, text (any bytes), metadata
 * (JSON text, as given), normalized vector, label, the sequence number of
 * the write that stored it; the labels retired by later writes; the last
 * sequence number; the settings (index type, dimension, model
 * fingerprint).  The STORE allocates sequence numbers and labels, inside
 * the write's transaction: several processes ("replicas") may write one
 * collection at once and never share a label, and the writes commit in
 * the order of their numbers, so whoever sees sequence s committed also
 * sees every write before it.  A write returns RS_OK only after it
 * committed.
 *
 * Backends:
 *   "sqlite"      where = a data directory, one subdirectory per
 *                 collection with its docs.db (docstore.c); fsync is an
 *                 enum coll_fsync.  wait() polls (SQLite has no
 *                 notifications).
 *   "postgresql"  where = a libpq connection string (docstore_pg.c); all
 *                 collections in shared tables; a write NOTIFYs the
 *                 other connections, which wait() listens for.
 *
 * Errors: RS_EUNAVAIL when the database server cannot be reached or the
 * connection broke (the next call reconnects; a write that got it may or
 * may not have committed, and was not acknowledged); the other codes as in
 * docstore.h.  Messages never contain a password.
 *
 * Threads: every operation may be called from any thread, concurrently,
 * except that a collection's writes (upsert, delete, prune_retired) come
 * from one thread at a time per st_coll, and a st_coll is closed by one
 * thread when no call on it runs.
 */
#ifndef ROSIM_STORAGE_H
#define ROSIM_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../model/error.h"
#include "collection.h"
#include "docstore.h"

struct st_ops;

/* The first member of each backend's database handle and collection
 * handle: the operations that work on it. */
struct st_db {
    const struct st_ops *ops;
};

struct st_coll {
    const struct st_ops *ops;
};

struct st_ops {
    const char *backend;                  /* "sqlite", "postgresql" */

    /* --- the database ---------------------------------------------------- */
    void (*db_close)(struct st_db *db);
    /* Whether the database answers (PostgreSQL: SELECT 1). */
    int (*ping)(struct st_db *db, struct rs_error *e);
    /* Return once any collection may have changed (a write, a creation, a
     * drop, a set_effort, by any process) since *gen was read, or after timeout_ms;
     * *gen gets the count to pass next time (start from 0).  PostgreSQL:
     * the notifications of rosim_changes, and a reconnection (which may
     * have lost some) counts as a change.  SQLite: sleeps timeout_ms (a
     * data directory has one process, which knows its own writes).
     * RS_EUNAVAIL when the server cannot be reached (after waiting). */
    int (*changed)(struct st_db *db, unsigned long *gen, int timeout_ms, struct rs_error *e);
    /* The collections' names, sorted: *names is new (st_names_free). */
    int (*list)(struct st_db *db, char ***names, size_t *n, struct rs_error *e);
    /* A new empty collection with settings s (sequence 0); RS_EEXIST when
     * name is taken, RS_EINVAL for a name store_valid_name (store.h)
     * refuses. */
    int (*create)(struct st_db *db, const char *name, const struct ds_settings *s,
                  struct rs_error *e);
    /* Remove a collection and its documents; RS_ENOTFOUND when absent.
     * SQLite: only its docs.db (the directory goes when left empty). */
    int (*drop)(struct st_db *db, const char *name, struct rs_error *e);
    /* *out is new (ops->close); RS_ENOTFOUND when absent. */
    int (*open)(struct st_db *db, const char *name, struct st_coll **out, struct rs_error *e);

    /* --- a collection ---------------------------------------------------- */
    void (*close)(struct st_coll *c);
    /* A number naming this collection's incarnation: another after a drop
     * and a re-creation under the same name (SQLite: 0). */
    int64_t (*uid)(struct st_coll *c);
    int (*settings)(struct st_coll *c, struct ds_settings *s, struct rs_error *e);
    /* Replace the stored effort settings (as ds_settings_set_effort). */
    int (*set_effort)(struct st_coll *c, const struct coll_effort *eff, struct rs_error *e);
    /* The sequence of the last committed write. */
    int (*seq)(struct st_coll *c, int64_t *seq, struct rs_error *e);
    int (*count)(struct st_coll *c, long *n, struct rs_error *e);
    /* Store docs[i] (vector vecs[i]) under label *first + i, *first being
     * allocated by the store; the write's sequence is *first + n - 1.
     * retired[] (room for n) gets the labels the write retires (in the
     * store or earlier in the batch), *new_docs the ids that were new.
     * RS_ENOTFOUND when the collection was dropped meanwhile. */
    int (*upsert)(struct st_coll *c, const struct coll_doc *docs, const float *vecs, int n,
                  int64_t *first, int64_t *retired, size_t *n_retired, long *new_docs,
                  struct rs_error *e);
    /* Delete id by a write whose sequence goes to *seq, its label to
     * *label.  RS_ENOTFOUND when there is no such document. */
    int (*del)(struct st_coll *c, const char *id, int64_t *seq, int64_t *label,
               struct rs_error *e);
    /* As ds_get, ds_get_label (docstore.h). */
    int (*get)(struct st_coll *c, const char *id, struct coll_hit *out, struct rs_error *e);
    int (*get_label)(struct st_coll *c, int64_t label, struct coll_hit *out, float *vec,
                     struct rs_error *e);
    /* As ds_match_labels and ds_match_vectors (docstore.h): the same
     * matches on both backends (PostgreSQL: jsonb operators, with the
     * JSON equality of collection.h: 1 equals 1.0, strings byte for
     * byte; docstore_pg.c says where jsonb cannot tell what SQLite
     * does: a meta repeating a key, a real literal with an integral
     * value beyond 2^53). */
    int (*match_labels)(struct st_coll *c, const struct coll_filter *f, const int64_t *labels,
                        size_t n, unsigned char *match, struct rs_error *e);
    int (*match_vectors)(struct st_coll *c, const struct coll_filter *f,
                         int (*fn)(int64_t label, const float *vec, void *arg), void *arg,
                         struct rs_error *e);
    /* As ds_changes: what writes after after_seq did, as of one moment
     * whose sequence goes to *upto; RS_EINVAL when after_seq is older
     * than what prune_retired kept (rebuild from after_seq 0).  Rows are
     * streamed to the callbacks, which must not call the storage. */
    int (*changes)(struct st_coll *c, int64_t after_seq, const struct ds_feed *f,
                   int64_t *upto, struct rs_error *e);
    /* Forget the retired labels of writes up to seq (every reader's
     * snapshot covers them); changes after an older seq are refused. */
    int (*prune_retired)(struct st_coll *c, int64_t seq, struct rs_error *e);
    /* Return at once when the collection's committed sequence is past
     * after_seq, else wait up to timeout_ms for a write (a notification,
     * or a poll) that makes it so.  *seq gets the committed sequence;
     * RS_ETIMEOUT when it did not pass after_seq in time, RS_ENOTFOUND
     * when the collection was dropped. */
    int (*wait)(struct st_coll *c, int64_t after_seq, int timeout_ms, int64_t *seq,
                struct rs_error *e);
};

/* Open a database of backend ("sqlite" or "postgresql") at where (see
 * above); creates what is missing (a directory, PostgreSQL's tables).
 * RS_EINVAL for an unknown backend, RS_EUNAVAIL when the server cannot
 * be reached. */
int st_open(struct st_db **out, const char *backend, const char *where, int fsync,
            struct rs_error *e);
/* NULL is a no-op. */
void st_close(struct st_db *db);

int st_sqlite_open(struct st_db **out, const char *dir, int fsync, struct rs_error *e);
/* The collection whose docs.db is in directory dir (which exists), alone,
 * without its database handle: how the embedded backend's collections are
 * opened by their owner (collection.c).  With create non-NULL, a store
 * without settings is given them (the directory, its files and its entry
 * in the parent are synced when fsync is COLL_FSYNC_ALWAYS).  Without, a
 * store without settings is a creation that never finished: RS_ENOTFOUND
 * when it holds no documents (it was never acknowledged; the caller may
 * remove it), else RS_EFORMAT. */
int st_sqlite_coll_open(struct st_coll **out, const char *dir, const struct ds_settings *create,
                        int fsync, struct rs_error *e);
int st_pg_open(struct st_db **out, const char *dsn, struct rs_error *e);

/* The collection shared (on PostgreSQL; owned from now on, closed on
 * failure too) with a copy of its documents in directory dir (created when
 * missing): writes go to shared, reads to the copy, which follows shared
 * (storage_mirror.c).  What a replica serves a shared collection from. */
int st_mirror_open(struct st_coll **out, struct st_coll *shared, const char *dir, int fsync,
                   struct rs_error *e);

void st_names_free(char **names, size_t n);

/* --- PostgreSQL connection strings (no connection made unless said) --- */

/* Whether dsn parses as a libpq connection string (key=value pairs or a
 * postgresql:// URI).  RS_OK or RS_EINVAL; the message never repeats any
 * part of dsn. */
int st_pg_dsn_check(const char *dsn, struct rs_error *e);

/* dsn as key=value pairs, its password (if any) replaced by ********,
 * into buf (len bytes, NUL-terminated, cut if too small). */
void st_pg_dsn_redact(const char *dsn, char *buf, size_t len);

/* Connect to dsn and run SELECT 1, then disconnect: RS_OK, RS_EINVAL
 * (st_pg_dsn_check), RS_EUNAVAIL or another error from the server. */
int st_pg_ping_dsn(const char *dsn, struct rs_error *e);

#endif
