/*
 * vec.h: the arithmetic on sentence vectors that every caller must do the
 * same way, so that a score means the same thing everywhere: the pipeline
 * of embed.h and the collections (what they store and the queries they
 * search) normalize with these functions, and /v1/similarity and the
 * re-ranking of generated paraphrases take cosines with vec_dot (sums in
 * double, float vectors, double scores).  The scores of a search are
 * FAISS's inner products of the normalized vectors, in float.
 */
#ifndef ROSIM_VEC_H
#define ROSIM_VEC_H

#include <stddef.h>

/* Scale v[0..n) to unit L2 norm; a zero vector stays zero. */
void vec_normalize(float *v, int n);

/* The same into out[0..n) (in and out may be the same), in left alone. */
void vec_normalize_to(const float *in, float *out, int n);

/* Dot product of a[0..n) and b[0..n): the cosine of normalized vectors. */
double vec_dot(const float *a, const float *b, int n);

/* Whether every value of v[0..n) is finite (no NaN, no infinity). */
int vec_finite(const float *v, size_t n);

#endif
