/*
 * store.h: the collections of a data directory, by name.
 *
 *     struct store *s;
 *     store_open(&s, "data", &opts, &err);        // opens every collection found
 *     store_create(s, "faq", "HNSW32,Flat", &created, &err);
 *     struct coll *c = store_acquire(s, "faq");   // NULL when there is none
 *     ... coll_search(c, ...) ...
 *     store_release(s, c);
 *     store_close(s);
 *
 * Names are 1 to 64 characters of [A-Za-z0-9_.-] starting with a letter or
 * digit, so a name is always one directory inside the data directory.  A
 * dropped collection disappears from lookups at once; its files are removed
 * when the last user releases it.  All functions are thread-safe.
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
};

struct store;

/* Open the data directory (created when missing) and every collection in
 * it.  A collection that fails to open is an error naming it. */
int store_open(struct store **out, const char *dir, const struct store_options *o,
               struct rs_error *e);
/* Close every collection (each writes its snapshot). */
void store_close(struct store *s);

int store_valid_name(const char *name);

/* Create a collection; *created is 0 when it already exists with the same
 * index type.  RS_EEXIST when it exists with another; RS_EINVAL for a bad
 * name or index type. */
int store_create(struct store *s, const char *name, const char *factory, int *created,
                 struct rs_error *e);

/* A reference to the named collection, or NULL. */
struct coll *store_acquire(struct store *s, const char *name);
void store_release(struct store *s, struct coll *c);

/* RS_ENOTFOUND when there is no such collection. */
int store_drop(struct store *s, const char *name, struct rs_error *e);

/* The names, sorted (new array of new strings; free with store_names_free). */
int store_names(struct store *s, char ***names, int *n);
void store_names_free(char **names, int n);

#endif
