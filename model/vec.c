/*
 * vec.c: normalization, cosine and the finiteness check of sentence
 * vectors, shared by the API and the generator (see vec.h).
 */
#include "vec.h"

#include <math.h>

void
vec_normalize(float *v, int n)
{
    double norm = 0;

    for (int j = 0; j < n; j++)
        norm += (double)v[j] * v[j];
    norm = sqrt(norm);
    for (int j = 0; j < n && norm > 0; j++)
        v[j] = (float)(v[j] / norm);
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
