/*
 * store.h: the collections of a data directory, by name.
 *
 *     struct store *s;
 *     store_open(&s, "data", &opts, &err);        // locks it, opens every collection
 *     store_create(s, "faq", "HNSW32,Flat", &created, &err);
 *     struct coll *c;
 *     store_get(s, "faq", &c, &err);              // RS_ENOTFOUND, or RS_EEXIST: failed
 *     ... coll_search(c, ...) ...
 *     store_release(s, c);
 *     store_close(s);
 *
 * Names are 1 to 64 characters of [A-Za-z0-9_.-] starting with a letter or
 * digit, so a name is always one directory inside the data directory.
 *
 * One process owns a data directory: store_open takes an exclusive flock
 * on the directory itself and a second store_open (another rosimd, rosim
 * import) fails at once with RS_EBUSY until store_close.
 *
 * A collection that cannot be opened (another model or dimension, a
 * damaged database, files this process may not read and write) does not
 * stop the others: it stays in the table as "failed" with its reason, is
 * listed by store_list, answers RS_EEXIST to store_get and store_create,
 * and store_drop removes it.  Reasons and every error the store returns
 * name files relative to the data directory (store_scrub does the same to
 * a collection's own errors), so they can be shown to clients.
 *
 * Creating is durable when store_create returns with fsync always (the new
 * directory and the data directory are synced).  A collection whose
 * creation never finished (a crash before its settings were committed: it
 * was never acknowledged) is removed by store_open, and reported.
 *
 * Dropping is durable when store_drop returns: the directory is renamed to
 * a tombstone (".dropped-NAME-N", never a collection name) and the data
 * directory is fsynced.  The tombstone's files are removed when the last
 * user releases the collection, and tombstones left by a crash at the next
 * store_open.  All functions are thread-safe.
 */
#ifndef ROSIM_STORE_H
#define ROSIM_STORE_H

#include "collection.h"

struct store_options {
    int dim;
    const char *fingerprint;
    int fsync;              /* enum coll_fsync */
    int snapshot_every;
    const char *default_factory;
    /* Told what the store cannot return to its caller, one sentence at a
     * time: a collection that failed to open (collection set), an index
     * rebuilt because its snapshot was missing or unusable, a snapshot that
     * failed at close, an unwritable data directory or leftover files
     * (collection NULL when it is about the directory).  Messages name
     * files relative to the data directory.  May be NULL; it may be called
     * with the store's lock held, so it must not call the store. */
    void (*report)(void *arg, const char *collection, const char *what);
    void *report_arg;
    /* NULL: the embedded backend, SQLite, in the data directory.  Else a
     * libpq connection string: the collections live in PostgreSQL, shared
     * by every process with the same one, and the data directory keeps
     * this process's index snapshots (one directory per collection
     * incarnation). */
    const char *dsn;
};

struct store;

/* Lock and open the data directory (created when missing) and every
 * collection in it.  Fails only for the directory itself: RS_EBUSY when
 * another process holds it, RS_EIO when it cannot be created or read. */
int store_open(struct store **out, const char *dir, const struct store_options *o,
               struct rs_error *e);
/* Snapshot and close every collection (a failed snapshot is reported),
 * then unlock.  NULL is a no-op. */
void store_close(struct store *s);

/* Whether name is a collection name: STORE_NAME_RULE. */
#define STORE_NAME_RULE "1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit"
int store_valid_name(const char *name);

/* NULL when the data directory is writable by this process, else a
 * sentence without paths saying it is not (constant while s is open).
 * Checked when asked (cheap: the directory's mode, owner, flags and mount),
 * and a write in it refused since the last one that succeeded counts. */
const char *store_problem(struct store *s);

/* Whether the database (shared storage) answered the last call: 1, or 0
 * with its error in why (len bytes).  Always 1 for the embedded backend. */
int store_reachable(struct store *s, char *why, size_t len);

/* "sqlite" or "postgresql". */
const char *store_backend(struct store *s);

/* Create a collection of index type factory (NULL: the default; for an
 * existing collection, whatever type it has).  *created is 0 when it
 * already exists with the same index, however spelled (itype_same:
 * HNSW32 is HNSW32,Flat).  RS_EINVAL for a bad name or index type (checked
 * first); RS_EEXIST when it exists with another or failed to open; RS_EIO
 * when the data directory is not writable. */
int store_create(struct store *s, const char *name, const char *factory, int *created,
                 struct rs_error *e);
/* The same, then the non-zero fields of effort made the collection's
 * defaults (coll_set_effort; NULL: none).  RS_EINVAL before anything is
 * created when a field does not apply to the index type; for an existing
 * collection, ef_search and nprobe are replaced and ef_construction is
 * RS_EEXIST when it differs once documents were written. */
int store_create_effort(struct store *s, const char *name, const char *factory,
                        const struct coll_effort *effort, int *created, struct rs_error *e);

/* A reference to the named collection in *c (release it with
 * store_release).  RS_ENOTFOUND when there is none; RS_EEXIST when it
 * failed to open (the message gives the reason). */
int store_get(struct store *s, const char *name, struct coll **c, struct rs_error *e);
/* The same without the reason: NULL when absent or failed. */
struct coll *store_acquire(struct store *s, const char *name);
void store_release(struct store *s, struct coll *c);

/* Drop an open or failed collection, durably.  RS_ENOTFOUND when there is
 * no such collection; RS_EIO when it could not be renamed (it is still
 * there) or the rename could not be synced (it is gone, but a power loss
 * might bring it back). */
int store_drop(struct store *s, const char *name, struct rs_error *e);

struct store_info {
    char name[65];
    int failed;              /* 1: could not be opened, reason says why */
    char reason[512];        /* paths relative to the data directory */
};

/* Every collection, open or failed, sorted by name (new array; free()). */
int store_list(struct store *s, struct store_info **list, int *n);

/* The names of every collection, sorted (new array of new strings; free
 * with store_names_free). */
int store_names(struct store *s, char ***names, int *n);
void store_names_free(char **names, int n);

/* Rewrite msg in place so that paths inside the data directory are
 * relative to it and the directory itself is called "data". */
void store_scrub(struct store *s, char *msg);

#endif
