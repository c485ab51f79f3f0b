/*
 * faissidx.h: the FAISS index behind a collection; the only code of rosim's
 * that includes FAISS headers (but for the benchmark's reference, which calls
 * FAISS directly: cli/bench_search.c).
 *
 *     struct fx_index *x;
 *     fx_new(&type, 384, 0, &x, &err);            // the real index, untrained
 *     if (!fx_is_trained(x)) fx_train(x, n, vecs, &err);
 *     fx_add(x, n, vecs, labels, &err);
 *     fx_search(x, q, k, dist, labels, &err);     // -1 labels pad a short answer
 *     fx_free(x);
 *
 * Vectors are L2-normalized by the caller; the metric is inner product
 * (cosine).  The search effort of HNSW and IVF indexes is set with
 * fx_set_param (FAISS's low defaults otherwise).
 * Errors carry FAISS's own sentence without its C++ function names and
 * source paths.
 *
 * Threads: concurrent fx_search calls on one index are safe; everything
 * else needs exclusive access (the collection's write lock).  FAISS's
 * process-wide settings are made once, on the first fx_new.
 */
#ifndef ROSIM_FAISSIDX_H
#define ROSIM_FAISSIDX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../model/error.h"
#include "itype.h"

struct fx_index;

/* A new, empty index of type t for dim-dimensional vectors, or when
 * interim an exact flat one that takes labels (used until t can train).
 * New; free with fx_free. */
int fx_new(const struct itype *t, int dim, int interim, struct fx_index **out,
           struct rs_error *e);
void fx_free(struct fx_index *x);

/* Set FAISS parameter name ("efConstruction", "efSearch" on an HNSW
 * index, "nprobe" on an IVF one, through any wrappers); an error when
 * the index has no such parameter. */
int fx_set_param(struct fx_index *x, const char *name, int value, struct rs_error *e);

int fx_is_trained(const struct fx_index *x);
int fx_train(struct fx_index *x, size_t n, const float *vecs, struct rs_error *e);
int fx_add(struct fx_index *x, size_t n, const float *vecs, const int64_t *labels,
           struct rs_error *e);
/* Remove labels; -1 when the index type cannot (nothing changed then). */
int fx_remove(struct fx_index *x, const int64_t *labels, size_t n);
long fx_ntotal(const struct fx_index *x);
int fx_dim(const struct fx_index *x);

/* The k best labels and scores for one query, best first; label -1 fills
 * places the index could not. */
int fx_search(const struct fx_index *x, const float *query, long k, float *dist,
              int64_t *labels, struct rs_error *e);

/* Serialize to / read from a stream (FAISS's own format). */
int fx_write(const struct fx_index *x, FILE *f, struct rs_error *e);
int fx_read(FILE *f, struct fx_index **out);

#endif
