/*
 * collection_impl.h: the inside of a collection, shared by the two files
 * that make it: collection.c (opening, the index, snapshots, writes, the
 * search effort) and search.c (reads: documents by id, searches with
 * filters).  The locks and invariants are described in collection.c.
 * Internal to index/.
 */
#ifndef ROSIM_COLLECTION_IMPL_H
#define ROSIM_COLLECTION_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "collection.h"
#include "docstore.h"
#include "faissidx.h"
#include "itype.h"
#include "labels.h"
#include "storage.h"

struct coll {
    char *dir;
    struct itype type;
    int dim, snapshot_every;
    void (*report)(void *arg, const char *collection, const char *what);
    void *report_arg;
    struct st_coll *sc;         /* the documents: the source of truth, or a copy of it */
    pthread_mutex_t wmu;        /* one writer (or catch-up) at a time */
    pthread_rwlock_t lock;      /* the fields below, up to documents */
    struct fx_index *index;
    int trained;                /* the real index is in use (not the interim flat one) */
    int removable;              /* remove_ids works on index */
    struct label_set filter;    /* retired labels still in the index */
    long documents;
    struct coll_effort stored;  /* as stored: 0 = rosim's default */
    struct coll_effort effort;  /* stored, defaults resolved; 0 where it does not apply */
    int cur_ef, cur_nprobe;     /* what index is set to; 0: not known */
    _Atomic int64_t seq;        /* the last write the index applied */
    _Atomic int64_t snapshot_seq;
    long writes_since_snapshot; /* under wmu */
};

/* Whether the non-zero fields of eff apply to index type t and are in
 * bounds: RS_OK, or RS_EINVAL saying which does not. */
int coll_effort_check_type(const struct itype *t, const struct coll_effort *eff, struct rs_error *e);

/* Whether the index searches with ef_search and nprobe already.  Under
 * c->lock (either way). */
int coll_effort_in_place(const struct coll *c, int ef_search, int nprobe);

/* Set the index's search effort.  Under c->lock held exclusively. */
int coll_apply_effort(struct coll *c, int ef_search, int nprobe, struct rs_error *e);

/* fn(label, vector, arg) for every stored document (a non-zero return
 * stops with that status); *upto (may be NULL) gets the sequence the
 * documents are as of. */
int coll_all_vectors(struct coll *c, int (*fn)(int64_t label, const float *vec, void *arg),
                     void *arg, int64_t *upto, struct rs_error *e);

#endif
