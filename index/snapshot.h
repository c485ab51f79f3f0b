/*
 * snapshot.h: index.snap, a collection's FAISS index saved with the state
 * that goes with it.
 *
 *     struct snap_state s = { dim, seq, trained, removable, &filter, index };
 *     snap_encode(&s, &buf, &len, &err);   // under the index's read lock
 *     snap_save(dir, buf, len, &err);      // without it
 *
 *     if (snap_load(dir, dim, max_seq, &s) == RS_OK) ... s.index, s.filter ...
 *
 * Layout (little-endian, as the host): "ROSIMSNP", u32 version, u32 dim,
 * i64 seq, u32 trained, u32 removable, u64 n_filter, n_filter x i64
 * labels, u64 faiss_len, the FAISS index, u32 CRC32C of everything before
 * it.  Saving writes index.snap.tmp, fsyncs it, renames it over
 * index.snap and fsyncs the directory, so a crash leaves the old snapshot
 * or the new one.  Loading refuses anything damaged, of another
 * dimension, or newer than the database (max_seq); the caller rebuilds
 * from its documents then.
 */
#ifndef ROSIM_SNAPSHOT_H
#define ROSIM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "../model/error.h"
#include "faissidx.h"
#include "labels.h"

struct snap_state {
    int dim;
    int64_t seq;               /* the last write the index covers */
    int trained;               /* the real index (not the interim flat one) */
    int removable;
    struct label_set *filter;  /* retired labels still in the index (borrowed) */
    struct fx_index *index;    /* borrowed by snap_encode; new from snap_load */
};

/* Serialize s into *buf (new; free()) of *len bytes. */
int snap_encode(const struct snap_state *s, char **buf, size_t *len, struct rs_error *e);

/* Write an encoded snapshot durably as dir/index.snap. */
int snap_save(const char *dir, const char *buf, size_t len, struct rs_error *e);

/* Load dir/index.snap into s (s->filter must point to an empty set; it is
 * filled).  RS_OK, or RS_EFORMAT / RS_ENOTFOUND / RS_ENOMEM when it cannot
 * be used (s->filter is empty again then). */
int snap_load(const char *dir, int dim, int64_t max_seq, struct snap_state *s);

/* fsync the directory dir and its parent, so that a new directory and the
 * files made in it are on disk (a new collection, a new data directory).
 * 0, or -1 with errno. */
int snap_sync_new_dir(const char *dir);

#endif
