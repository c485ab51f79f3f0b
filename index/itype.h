/*
 * itype.h: an index type (a FAISS index_factory string) parsed once into a
 * description, with every number bounded.
 *
 *     struct itype t;
 *     if (itype_parse("PCA64,IVF256,Flat", 384, &t, &err) != RS_OK) ... 422 ...
 *     t.ivf_nlist;     // 256
 *     t.train_min;     // 9984: the index trains once that many vectors exist
 *
 * The accepted grammar, components separated by commas:
 *
 *     [IDMap | IDMap2]  transform*  core
 *     transform  PCA<d> | PCAR<d> | OPQ<m>[_<d>] | L2norm
 *     core       Flat | SQ4 | SQ6 | SQ8 | SQfp16 | PQ<m>[x<bits>]
 *                | HNSW<M>[,Flat | ,SQ4 | ,SQ6 | ,SQ8 | ,SQfp16]
 *                | IVF<n>,(Flat | SQ4 | SQ6 | SQ8 | SQfp16 | PQ<m>[x<bits>])
 *
 * with 1 <= d <= the input dimension, m dividing the dimension it codes,
 * 1 <= bits <= ITYPE_MAX_PQ_BITS, 2 <= M <= ITYPE_MAX_HNSW_M,
 * 1 <= n <= ITYPE_MAX_NLIST.  Everything FAISS would refuse for these
 * reasons, or would answer with an allocation out of proportion to the
 * data, is refused here with a sentence a user can act on.  Refinements
 * (RFlat, Refine(Flat)) are refused: FAISS cannot give them labels.
 *
 * Training: a component that learns from data (a quantizer with k
 * centroids or levels) needs ITYPE_TRAIN_FACTOR x k vectors, a PCA
 * ITYPE_TRAIN_FACTOR x its input dimension; train_min is the largest of
 * these (0 when nothing trains).  Until the collection holds train_min vectors it
 * searches exactly with a flat index.
 *
 * Pure functions; thread-safe.
 */
#ifndef ROSIM_ITYPE_H
#define ROSIM_ITYPE_H

#include "../model/error.h"

#define ITYPE_MAX_NLIST 65536
#define ITYPE_MAX_HNSW_M 256
#define ITYPE_MAX_PQ_BITS 8     /* FAISS's IVF-PQ takes no more */
#define ITYPE_TRAIN_FACTOR 39   /* vectors per centroid, FAISS's own advice */
#define ITYPE_MAX_DIM 65536     /* the bound used while the dimension is unknown */

struct itype {
    char factory[128];   /* as given */
    char canon[256];     /* the same index spelled one way: defaults written out
                            (HNSW32 -> HNSW32,Flat; PQ8 -> PQ8x8; OPQ8 -> OPQ8_<d>
                            when d is known), numbers without leading zeros, in
                            the wrapper build adds; see itype_same */
    char build[160];     /* what index_factory builds: wrapped in IDMap2 when the
                            outermost index cannot take labels itself */
    long train_min;      /* vectors needed to train; 0: nothing to train */
    int ivf_nlist;       /* inverted lists; 0 when not an IVF index */
    int hnsw_m;          /* graph degree; 0 when not an HNSW index */
    int removable;       /* remove_ids works (not on an HNSW graph) */
};

/* Parse factory for vectors of dimension dim into *t.  RS_EINVAL with a
 * message naming the offending component otherwise.  With dim 0 (not known
 * yet, e.g. before a model is loaded) everything but what depends on the
 * dimension is checked. */
int itype_parse(const char *factory, int dim, struct itype *t, struct rs_error *e);

/* Whether a and b are valid for dimension dim and build the same index
 * (their canonical spellings are equal): "HNSW32" and "HNSW32,Flat" are,
 * "Flat" and "HNSW32,Flat" are not. */
int itype_same(const char *a, const char *b, int dim);

#endif
