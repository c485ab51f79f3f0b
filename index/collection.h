/*
 * collection.h: one collection of documents, searchable by vector.
 *
 *     struct coll *c;
 *     coll_open(&c, "data/faq", &opts, &err);      // creates it when opts.create
 *     struct coll_doc d = { "q1", "怎么开发票", "{\"tag\":1}", vec, 0 };
 *     coll_upsert(c, &d, 1, &err);                 // durable when it returns RS_OK
 *     struct coll_hit *hits; int n;
 *     coll_search(c, query, 10, -1.0f, &hits, &n, &err);
 *     coll_hits_free(hits, n);
 *     coll_close(c);
 *
 * Storage: SQLite in WAL mode (docs.db) is the source of truth: each
 * document's id, text, metadata (JSON text, stored as given), normalized
 * vector, its FAISS label and the sequence number of the write that made
 * it (docstore.h).  An update gives the document a new label and records
 * the old one as deleted, with the sequence number.  The FAISS index
 * (faissidx.h; inner product over
 * L2-normalized vectors: cosine) lives in memory and is snapshotted to
 * index.snap (snapshot.h) with the sequence number it covers.  Opening
 * loads the snapshot and replays newer rows, or rebuilds the index from the
 * stored vectors when the snapshot is missing, stale or corrupt; the model
 * never runs again.  Index types that cannot remove vectors (HNSW) filter
 * deleted labels out of results and are rebuilt when too many pile up.
 * Index types that learn from data (IVF, PQ, SQ, PCA, OPQ: itype.h) are
 * trained once enough vectors exist; until then search is exact over a
 * flat index.  A search returns min(k, documents) hits (fewer only below
 * min_score): when the approximate index comes short, it searches exactly.
 *
 * Threads: every function may be called from any thread.  Searches run in
 * parallel (the index's read lock); writes are serialized by a writer
 * mutex and hold the index's write lock only while they change it: a
 * rebuild (training, or too many filtered labels) is built aside, with
 * searches going on, and swapped in.  A snapshot holds the writer mutex
 * (writes wait) and the read lock while it encodes the index (searches go
 * on), then writes the file with the read lock released.
 */
#ifndef ROSIM_COLLECTION_H
#define ROSIM_COLLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "../model/error.h"

/* When an acknowledged write is on disk: ALWAYS, before the acknowledgement
 * (one sync per write); BATCH, at the next WAL checkpoint (syncs batched,
 * about one per 1000 WAL pages: safe from a crash of the process, not from
 * a power loss); OFF, when the OS writes it back (no sync). */
enum coll_fsync { COLL_FSYNC_ALWAYS, COLL_FSYNC_BATCH, COLL_FSYNC_OFF };

struct coll_options {
    int create;               /* create when missing */
    const char *factory;      /* index type (itype.h), e.g. "Flat", "HNSW32,Flat"; NULL:
                                 the stored one, or Flat for a new collection */
    int dim;                  /* vector dimension */
    const char *fingerprint;  /* the model's; a collection refuses another */
    int fsync;                /* enum coll_fsync */
    int snapshot_every;       /* writes between snapshots (0: only at close) */
    /* told about a problem that loses nothing, e.g. a periodic snapshot
     * that could not be written (replay covers it); may be NULL */
    void (*report)(void *arg, const char *collection, const char *what);
    void *report_arg;
};

#define COLL_MAX_ID_BYTES 256  /* a document id: 1 to this many bytes of UTF-8 */

struct coll_doc {
    const char *id;           /* 1..COLL_MAX_ID_BYTES bytes of UTF-8 */
    const char *text;         /* text_len bytes, any (U+0000 too) */
    const char *meta;         /* JSON text, or NULL for {} */
    const float *vec;         /* dim floats of any norm: stored L2-normalized (vec.h) */
    size_t text_len;          /* 0: text is NUL-terminated */
};

struct coll_hit {
    char *id, *text, *meta;   /* owned by the hit list; text has a NUL after */
    size_t text_len;          /* its text_len bytes */
    float score;              /* cosine similarity */
};

struct coll_stats {
    long documents;
    long index_vectors;       /* vectors in the FAISS index (deleted ones filtered) */
    long filtered;            /* deleted but still in a non-removable index */
    int64_t seq;              /* sequence number of the last write */
    int64_t snapshot_seq;
    int trained;
    char factory[128];
    int dim;
};

struct coll;

/* Open (or create) the collection in directory dir.  RS_ENOTFOUND when it
 * does not exist and opts->create is 0, or when its creation never
 * finished (no settings and no documents: it was never acknowledged, the
 * caller may remove it); RS_EEXIST when it exists with another index type
 * (itype_same); RS_EINVAL for an index type itype.h refuses, or a
 * collection built with another model or dimension; RS_EFORMAT when its
 * database is corrupt.  A collection created with COLL_FSYNC_ALWAYS is on
 * disk when it returns (its directory and the parent are synced). */
int coll_open(struct coll **out, const char *dir, const struct coll_options *opts,
              struct rs_error *e);

/* Whether factory is an index type a collection can have, as far as can
 * be told before a model is loaded (its dimension is not known yet; see
 * itype.h).  RS_OK, or RS_EINVAL with the reason. */
int coll_index_type_check(const char *factory, struct rs_error *e);

/* Write a snapshot if the index changed since the last one, then free.
 * NULL is a no-op. */
void coll_close(struct coll *c);

/* Insert or replace n documents in one transaction, acknowledged (RS_OK)
 * only after it commits.  RS_ENOSPC when the disk is full; nothing is
 * half-written in any case. */
int coll_upsert(struct coll *c, const struct coll_doc *docs, int n, struct rs_error *e);

/* Delete by id.  RS_ENOTFOUND when there is no such document. */
int coll_delete(struct coll *c, const char *id, struct rs_error *e);

/* One document (score 1); RS_ENOTFOUND when absent. */
int coll_get(struct coll *c, const char *id, struct coll_hit *out, struct rs_error *e);

/* The k documents most similar to query (dim floats of any norm,
 * L2-normalized here like the stored vectors) with score >= min_score,
 * best first: min(k, documents) of them unless min_score ends the list.
 * Scores are cosines, in [-1, 1].  RS_EINVAL for a query that is zero (it
 * has no direction) or not finite.  *hits is new (coll_hits_free), NULL
 * when *n is 0. */
int coll_search(struct coll *c, const float *query, int k, float min_score,
                struct coll_hit **hits, int *n, struct rs_error *e);

void coll_hits_free(struct coll_hit *hits, int n);
void coll_hit_clear(struct coll_hit *h);

/* Write a snapshot now. */
int coll_snapshot(struct coll *c, struct rs_error *e);

void coll_get_stats(struct coll *c, struct coll_stats *s);

#endif
