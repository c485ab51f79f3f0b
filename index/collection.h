/*
 * collection.h: one collection of documents, searchable by vector.
 *
 *     struct coll *c;
 *     coll_open(&c, "data/faq", &opts, &err);      // creates it when opts.create
 *     struct coll_doc d = { "q1", "怎么开发票", "{\"tag\":1}", vec, 0 };
 *     int64_t seq;
 *     coll_upsert(c, &d, 1, &seq, &err);           // durable when it returns RS_OK
 *     struct coll_hit *hits; int n;
 *     coll_search(c, query, 10, -1.0f, &hits, &n, &err);
 *     coll_hits_free(hits, n);
 *     coll_close(c);
 *
 * Storage (storage.h) is the source of truth: each document's id, text,
 * metadata (JSON text, stored as given), normalized vector, its FAISS
 * label and the sequence number of the write that made it: a docs.db in
 * the collection's directory (SQLite in WAL mode, docstore.h), or, for a
 * collection shared by several processes, PostgreSQL, of which this
 * process reads a copy (st_mirror_open).  An update gives the document a
 * new label and records the old one as retired, with the sequence number.
 * The FAISS index (faissidx.h; inner product over L2-normalized vectors:
 * cosine) lives in memory, follows the storage's change feed (its own
 * writes at once, other processes' when caught up: coll_catch_up,
 * coll_wait_seq) and is snapshotted to index.snap (snapshot.h) with the
 * sequence number it covers.  Opening loads the snapshot and replays newer
 * changes, or rebuilds the index from the stored vectors when the snapshot
 * is missing, stale or corrupt; the model never runs again.  Index types
 * that cannot remove vectors (HNSW) filter retired labels out of results
 * and are rebuilt when too many pile up.  Index types that learn from
 * data (IVF, PQ, SQ, PCA, OPQ: itype.h) are trained once enough vectors
 * exist; until then search is exact over a flat index.  A search returns
 * min(k, documents) hits (fewer only below min_score): when the
 * approximate index comes short, it searches exactly.  Hits are read from
 * the storage by label, so a replaced or deleted document is never one.
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

/* Search effort of an approximate index (0: the collection's default, or
 * rosim's for a new collection).  ef_construction and ef_search apply to
 * HNSW index types only, nprobe to IVF types only; any other use is
 * RS_EINVAL.  ef_construction shapes the graph as vectors are added, so it
 * is fixed when the collection is created; ef_search and nprobe are
 * defaults that a search may override (coll_query).  The search itself
 * looks at no fewer than k candidates whatever ef_search says. */
#define COLL_DEFAULT_EF_CONSTRUCTION 40   /* FAISS's own */
#define COLL_DEFAULT_EF_SEARCH 128
#define COLL_DEFAULT_NPROBE 16            /* bounded by the index's lists */
#define COLL_MAX_EF_CONSTRUCTION 1024
#define COLL_MAX_EF_SEARCH 4096
#define COLL_MAX_NPROBE 65536             /* the most lists an IVF index has */

struct coll_effort {
    int ef_construction, ef_search, nprobe;
};

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

/* A metadata filter: the documents whose meta (a JSON object) satisfies
 * every clause.  A clause names a top-level key of meta (compared byte
 * for byte) and holds when
 *   COLL_MATCH   the key is present and its value equals one of values[]
 *                (JSON equality of scalars: a string equals the same
 *                string, a number the same number, 1 and 1.0 alike, true,
 *                false and null only themselves; an array or object
 *                value equals nothing);
 *   COLL_EXISTS  the key is present (whatever its value, null too);
 *   COLL_ABSENT  the key is absent.
 * Bounds: 1..COLL_FILTER_MAX_CLAUSES clauses, keys of 1..COLL_FILTER_MAX_KEY
 * bytes, 1..COLL_FILTER_MAX_VALUES values per COLL_MATCH clause, strings
 * of at most COLL_FILTER_MAX_STRING bytes; coll_search refuses more with
 * RS_EINVAL. */
#define COLL_FILTER_MAX_CLAUSES 16
#define COLL_FILTER_MAX_VALUES 64
#define COLL_FILTER_MAX_KEY 256
#define COLL_FILTER_MAX_STRING 1024

enum coll_cond { COLL_MATCH, COLL_EXISTS, COLL_ABSENT };
enum coll_vtype { COLL_V_NULL, COLL_V_TRUE, COLL_V_FALSE, COLL_V_INT, COLL_V_REAL, COLL_V_STRING };

struct coll_value {
    int type;                 /* enum coll_vtype */
    long long i;              /* COLL_V_INT */
    double r;                 /* COLL_V_REAL */
    const char *s;            /* COLL_V_STRING: len bytes (borrowed) */
    size_t len;
};

struct coll_clause {
    const char *key;          /* NUL-terminated (borrowed) */
    int cond;                 /* enum coll_cond */
    const struct coll_value *values;   /* COLL_MATCH: n_values of them (borrowed) */
    int n_values;
};

struct coll_filter {
    const struct coll_clause *clauses;
    int n;
};

/* Check f against the bounds and types above: RS_OK or RS_EINVAL. */
int coll_filter_check(const struct coll_filter *f, struct rs_error *e);

/* What a search asks beyond its query vector. */
struct coll_query {
    int k;                    /* >= 1 */
    float min_score;          /* -1 (or less): no bound */
    const struct coll_filter *filter;   /* NULL: every document */
    int ef_search, nprobe;    /* 0: the collection's defaults */
};

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
    int64_t seq;              /* sequence number of the last write the index applied */
    int64_t snapshot_seq;
    int trained;
    char factory[128];
    int dim;
    struct coll_effort effort;   /* the defaults in use; 0 where they do not apply */
};

struct coll;
struct st_coll;
struct ds_settings;

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

/* Open the collection whose documents are in sc (storage.h: any backend,
 * read and pruned by this process alone: for a shared collection, its copy,
 * st_mirror_open; the collection owns sc from now on, and closes it when
 * this fails), keeping its index snapshot in directory dir (created when
 * missing).
 * opts->create and opts->factory are not used: a collection on shared
 * storage is created there (st_ops.create).  Errors as coll_open; and
 * RS_EUNAVAIL when the database cannot be reached. */
int coll_open_storage(struct coll **out, struct st_coll *sc, const char *dir,
                      const struct coll_options *opts, struct rs_error *e);

/* The settings of a new collection made with o (o->factory, NULL for
 * Flat; o->dim; o->fingerprint), the index type checked by building one:
 * what a collection on shared storage is created with (st_ops.create).
 * RS_OK or RS_EINVAL. */
int coll_new_settings(const struct coll_options *o, struct ds_settings *set,
                      struct rs_error *e);

/* Whether factory is an index type a collection can have, as far as can
 * be told before a model is loaded (its dimension is not known yet; see
 * itype.h).  RS_OK, or RS_EINVAL with the reason. */
int coll_index_type_check(const char *factory, struct rs_error *e);

/* Write a snapshot if the index changed since the last one, then free.
 * NULL is a no-op. */
void coll_close(struct coll *c);

/* Insert or replace n documents in one transaction, acknowledged (RS_OK)
 * only after it commits; the write's sequence number goes to *seq (may be
 * NULL).  RS_ENOSPC when the disk is full, RS_EUNAVAIL when the database
 * cannot be reached (then the write may or may not have committed); nothing
 * is half-written in any case. */
int coll_upsert(struct coll *c, const struct coll_doc *docs, int n, int64_t *seq,
                struct rs_error *e);

/* Delete by id, the write's sequence number to *seq (may be NULL).
 * RS_ENOTFOUND when there is no such document. */
int coll_delete(struct coll *c, const char *id, int64_t *seq, struct rs_error *e);

/* Bring the index up to date with the writes other processes committed
 * (shared storage): cheap when there are none.  Any thread. */
int coll_catch_up(struct coll *c, struct rs_error *e);

/* Return once the index has applied every write up to sequence seq,
 * catching up as needed, waiting up to timeout_ms for writes not yet
 * committed: RS_OK, RS_ETIMEOUT, RS_EUNAVAIL or RS_ENOTFOUND (dropped). */
int coll_wait_seq(struct coll *c, int64_t seq, int timeout_ms, struct rs_error *e);

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

/* The same with a filter and search effort.  With a filter, the index is
 * asked for 4k candidates, then 32k, ... up to COLL_FILTER_MAX_FETCH, and
 * the matching ones are kept; when fewer than k match, the documents that
 * match are scanned exactly.  So a filtered search returns min(k, matching
 * documents) hits, as an unfiltered one does. */
#define COLL_FILTER_MAX_FETCH 8192
int coll_search_q(struct coll *c, const float *query, const struct coll_query *q,
                  struct coll_hit **hits, int *n, struct rs_error *e);

void coll_hits_free(struct coll_hit *hits, int n);
void coll_hit_clear(struct coll_hit *h);

/* Whether the non-zero fields of eff apply to index type factory and are
 * in bounds: RS_OK, or RS_EINVAL saying which does not. */
int coll_effort_check(const char *factory, const struct coll_effort *eff, struct rs_error *e);

/* Make the non-zero fields of eff the collection's defaults, durably.
 * RS_EINVAL as coll_effort_check; RS_EEXIST for an ef_construction other
 * than the stored one once the collection has been written to. */
int coll_set_effort(struct coll *c, const struct coll_effort *eff, struct rs_error *e);

/* Write a snapshot now. */
int coll_snapshot(struct coll *c, struct rs_error *e);

void coll_get_stats(struct coll *c, struct coll_stats *s);

#endif
