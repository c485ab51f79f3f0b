/*
 * vec.c: normalization, cosine and the finiteness check of sentence
 * vectors, shared by the embedding pipeline, the collections and the
 * generator (see vec.h).
 */
#include "vec.h"

#include <math.h>

void
vec_normalize_to(const float *in, float *out, int n)
{
    double norm = 0;

    for (int j = 0; j < n; j++)
        norm += (double)in[j] * in[j];
    norm = sqrt(norm);
    for (int j = 0; j < n; j++)
        out[j] = norm > 0 ? (float)(in[j] / norm) : 0.0f;
}

void
vec_normalize(float *v, int n)
{
    vec_normalize_to(v, v, n);
}

double
vec_dot(const float *a, const float *b, int n)
{
    double dot = 0;

    for (int j = 0; j < n; j++)
        dot += (double)a[j] * b[j];
    return dot;
}

int
vec_finite(const float *v, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!isfinite(v[j]))
            return 0;
    return 1;
}
