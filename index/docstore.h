/*
 * docstore.h: where a collection's documents live, the source of truth.
 *
 *     struct docstore *ds;
 *     ds_open(&ds, "data/faq", 1, COLL_FSYNC_ALWAYS, &err);
 *     ds_settings_get(ds, &set, &err);           // RS_ENOTFOUND: a new store
 *     ds_upsert(ds, docs, vecs, n, first_label, &retired, &err);
 *     ds_vectors(ds, after_seq, fn, arg, &err);  // each (label, vector)
 *     ds_close(ds);
 *
 * What a store keeps: each document's id, text (with its length: any
 * bytes), metadata (JSON text), normalized vector, label and the sequence
 * number of the write that stored it; the labels retired (replaced or
 * deleted) since the last snapshot, with the write that retired them; the
 * last sequence number; the settings (index type, dimension, model
 * fingerprint, search effort).  Labels are sequence numbers: the write with sequence s
 * stores its i-th document under label first + i, and its sequence is the
 * last label it used (a delete uses one number).  "Changes since seq" are
 * the documents with a greater sequence and the labels retired by writes
 * with a greater sequence: what a snapshot taken at seq lacks.
 *
 * This implementation is SQLite in WAL mode (docs.db), one writer
 * connection and one reader connection.  A store on another database
 * (PostgreSQL) implements this header, with the same meaning.
 *
 * Threads: write functions (ds_upsert, ds_delete, ds_settings_init,
 * ds_prune_retired) are called by one thread at a time (the collection's
 * writer mutex); read functions from any thread, concurrently.
 */
#ifndef ROSIM_DOCSTORE_H
#define ROSIM_DOCSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "../model/error.h"
#include "collection.h"

struct docstore;

struct ds_settings {
    char factory[128];
    int dim;
    char fingerprint[256];
    struct coll_effort effort;   /* 0: rosim's default (stores made before effort
                                    settings existed read as all 0) */
};

/* Open the store in directory dir (which exists), creating its files when
 * create.  fsync is an enum coll_fsync. */
int ds_open(struct docstore **out, const char *dir, int create, int fsync,
            struct rs_error *e);
void ds_close(struct docstore *ds);

/* Remove the store's files from dir (a store that failed to come into
 * being). */
void ds_remove_files(const char *dir);

/* The settings of an initialized store; RS_ENOTFOUND for a new one. */
int ds_settings_get(struct docstore *ds, struct ds_settings *s, struct rs_error *e);
/* Initialize a new store with s (sequence 0). */
int ds_settings_init(struct docstore *ds, const struct ds_settings *s, struct rs_error *e);

/* Replace the stored effort settings. */
int ds_settings_set_effort(struct docstore *ds, const struct coll_effort *eff,
                           struct rs_error *e);

int ds_seq(struct docstore *ds, int64_t *seq, struct rs_error *e);
int ds_count(struct docstore *ds, long *n, struct rs_error *e);

/* Store docs[i] with vector vecs[i] (dim floats, normalized) under label
 * first + i, in one transaction with sequence first + n - 1.  The labels
 * the write retires (earlier versions of the ids, in the store or in the
 * batch itself) go to retired[] (room for n), their count to *n_retired;
 * *new_docs counts the ids that did not exist. */
int ds_upsert(struct docstore *ds, const struct coll_doc *docs, const float *vecs, int n,
              int64_t first, int64_t *retired, size_t *n_retired, long *new_docs,
              struct rs_error *e);

/* Delete id by the write with sequence seq; its label goes to *label.
 * RS_ENOTFOUND when there is no such document. */
int ds_delete(struct docstore *ds, const char *id, int64_t seq, int64_t *label,
              struct rs_error *e);

/* ds_upsert and ds_delete with the numbers allocated by the store, inside
 * the write's transaction: first (seq) = the store's sequence + 1, so that
 * several connections (processes) writing one store never share a label.
 * The first label (the delete's sequence) goes to *first (*seq). */
int ds_upsert_next(struct docstore *ds, const struct coll_doc *docs, const float *vecs, int n,
                   int64_t *first, int64_t *retired, size_t *n_retired, long *new_docs,
                   struct rs_error *e);
int ds_delete_next(struct docstore *ds, const char *id, int64_t *seq, int64_t *label,
                   struct rs_error *e);

/* One document by id or by label into out (new strings; coll_hit_clear),
 * by label also its vector into vec (dim floats).  RS_ENOTFOUND when
 * absent. */
int ds_get(struct docstore *ds, const char *id, struct coll_hit *out, struct rs_error *e);
int ds_get_label(struct docstore *ds, int64_t label, struct coll_hit *out, float *vec,
                 struct rs_error *e);

/* fn(label, vector, arg) for each document stored by a write after seq
 * (0: all); a non-zero return from fn stops with that status. */
int ds_vectors(struct docstore *ds, int64_t after_seq,
               int (*fn)(int64_t label, const float *vec, void *arg), void *arg,
               struct rs_error *e);

/* fn(label, arg) for each label <= max_label retired by a write after
 * seq. */
int ds_retired(struct docstore *ds, int64_t after_seq, int64_t max_label,
               int (*fn)(int64_t label, void *arg), void *arg, struct rs_error *e);

/* Everything a snapshot taken at after_seq lacks, as of one moment: each
 * label retired by a later write (f->retired), then each document stored
 * by a later write (f->doc, with its vector); *upto gets the sequence that
 * moment covers.  A non-zero return from a callback stops with that
 * status.  RS_EINVAL when 0 < after_seq < a seq given to ds_prune_retired:
 * retirements after it are forgotten; rebuild from changes after 0. */
struct ds_row {
    int64_t label, seq;
    const char *id, *text, *meta;   /* text: text_len bytes */
    size_t text_len;
    const float *vec;
};
struct ds_feed {
    int (*retired)(int64_t label, void *arg);
    int (*doc)(int64_t label, const float *vec, void *arg);
    void *arg;
    /* Optional, for a copy of the store (ds_apply): when set, called
     * instead of retired (with the sequence of the write that retired the
     * label) and of doc (with the whole document). */
    int (*retired_at)(int64_t label, int64_t seq, void *arg);
    int (*row)(const struct ds_row *r, void *arg);
};
int ds_changes(struct docstore *ds, int64_t after_seq, const struct ds_feed *f, int64_t *upto,
               struct rs_error *e);

/* Make this store a copy of another one, brought up to date: pull(f,
 * &upto, arg, e) is called once, inside one write transaction, with a
 * feed whose retired_at and row write here; it passes the feed to the
 * other store's changes after this one's sequence (ds_seq) and returns
 * their status.  On RS_OK this store takes the sequence *upto and the
 * transaction commits; else nothing changed.  The other store's labels and
 * sequence numbers are kept, so this one's changes (ds_changes) are the
 * other's. */
int ds_apply(struct docstore *ds,
             int (*pull)(const struct ds_feed *f, int64_t *upto, void *arg, struct rs_error *e),
             void *arg, struct rs_error *e);

/* Filters (struct coll_filter, collection.h, which defines what matches).
 * ds_match_labels sets match[i] to 1 when a document is stored under
 * labels[i] and its meta satisfies f, else 0.  ds_match_vectors calls
 * fn(label, vector, arg) for each stored document whose meta satisfies f
 * (a non-zero return stops with that status); it reads every document's
 * meta (SQLite: json_each over docs.meta, no index; PostgreSQL would use
 * jsonb operators).  f has been checked (coll_filter_check). */
int ds_match_labels(struct docstore *ds, const struct coll_filter *f, const int64_t *labels,
                    size_t n, unsigned char *match, struct rs_error *e);
int ds_match_vectors(struct docstore *ds, const struct coll_filter *f,
                     int (*fn)(int64_t label, const float *vec, void *arg), void *arg,
                     struct rs_error *e);

/* Forget the retired labels of writes up to seq (a snapshot covers them),
 * remembering seq (see ds_changes). */
int ds_prune_retired(struct docstore *ds, int64_t seq, struct rs_error *e);

#endif
