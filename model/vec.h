/*
 * vec.h: the arithmetic on sentence vectors that every caller must do the
 * same way, so that a score means the same thing everywhere: /v1/embed,
 * /v1/similarity and the re-ranking of generated paraphrases normalize and
 * take cosines with these functions (sums in double, float vectors, double
 * scores).
 */
#ifndef ROSIM_VEC_H
#define ROSIM_VEC_H

#include <stddef.h>

/* Scale v[0..n) to unit L2 norm; a zero vector stays zero. */
void vec_normalize(float *v, int n);

/* Dot product of a[0..n) and b[0..n): the cosine of normalized vectors. */
double vec_dot(const float *a, const float *b, int n);

/* Whether every value of v[0..n) is finite (no NaN, no infinity). */
int vec_finite(const float *v, size_t n);

#endif
