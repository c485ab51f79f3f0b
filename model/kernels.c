/*
 * kernels.c: dense layers, LayerNorm, GELU, rotary embedding, softmax.
 */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Compiled for AVX-512, AVX2 and the baseline; chosen when the program
 * starts (GCC; clang, used for fuzzing only, builds the baseline).  Not
 * under ThreadSanitizer: its instrumented ifunc resolvers would run before
 * the sanitizer's runtime is up, and crash the program at load. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define VECTOR_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_KERNEL
#endif

void
k_dense(const float *x, int n, int in, const float *w, const float *b, int out, float *y)
{
    for (int r = 0; r < n; r++)
        memcpy(y + (size_t)r * (size_t)out, b, (size_t)out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                n, out, in,
                1.0f, x, in,
                w, out,
                1.0f, y, out);
}

VECTOR_KERNEL void
k_add_layer_norm(float *x, const float *r, int n, int H, const float *g, const float *b,
                 float eps)
{
    for (int i = 0; i < n; i++) {
        float *row = x + (size_t)i * (size_t)H;
        const float *res = r ? r + (size_t)i * (size_t)H : NULL;
        float mean = 0, var = 0, inv;
        if (res)
            for (int j = 0; j < H; j++)
                row[j] += res[j];
        for (int j = 0; j < H; j++)
            mean += row[j];
        mean /= (float)H;
        for (int j = 0; j < H; j++) {
            float dv = row[j] - mean;
            var += dv * dv;
        }
        var /= (float)H;
        inv = 1.0f / sqrtf(var + eps);
        for (int j = 0; j < H; j++)
            row[j] = (row[j] - mean) * inv * g[j] + b[j];
    }
}

/* erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (|error| < 5e-7 in float32; |erf(4)
 * - 1| < 2e-8): a rational least-squares fit that, unlike erff(), the
 * compiler turns into SIMD code.  The coefficients were fitted to math.erf
 * in double precision over 20001 points of [0, 4] with Lawson reweighting. */
static inline float
erf_rational(float x)
{
    float x2, p, q;

    x = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x;
    x2 = x * x;
    p = 1.9218911e-08f;
    p = p * x2 - 1.9910090e-06f;
    p = p * x2 + 1.5565545e-04f;
    p = p * x2 + 4.2974860e-03f;
    p = p * x2 + 5.2447159e-02f;
    p = p * x2 + 2.1404447e-01f;
    p = p * x2 + 1.1283786e+00f;
    q = 1.0991531e-03f;
    q = q * x2 + 1.5559933e-02f;
    q = q * x2 + 1.2084131e-01f;
    q = q * x2 + 5.2301961e-01f;
    q = q * x2 + 1.0f;
    return x * p / q;
}

VECTOR_KERNEL void
k_gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erf_rational(x[i] * 0.70710678118654752f));
}

void
k_rope_tables(float *sin_t, float *cos_t, int n_pos, int d)
{
    for (int p = 0; p < n_pos; p++) {
        for (int i = 0; i < d / 2; i++) {
            float inv = powf(10000.0f, -2.0f * (float)i / (float)d);
            float angle = (float)p * inv;
            sin_t[(size_t)p * (size_t)(d / 2) + (size_t)i] = sinf(angle);
            cos_t[(size_t)p * (size_t)(d / 2) + (size_t)i] = cosf(angle);
        }
    }
}

void
k_rope(float *v, int H, int d, const float *sin_p, const float *cos_p)
{
    for (int h = 0; h < H; h += d) {
        for (int i = 0; i < d / 2; i++) {
            float a = v[h + 2 * i], b = v[h + 2 * i + 1];
            v[h + 2 * i] = a * cos_p[i] - b * sin_p[i];
            v[h + 2 * i + 1] = b * cos_p[i] + a * sin_p[i];
        }
    }
}

void
k_softmax(float *x, int n)
{
    float mx = -INFINITY, sum = 0;

    for (int j = 0; j < n; j++)
        if (x[j] > mx)
            mx = x[j];
    for (int j = 0; j < n; j++) {
        x[j] = x[j] == -INFINITY ? 0.0f : expf(x[j] - mx);
        sum += x[j];
    }
    for (int j = 0; j < n; j++)
        x[j] /= sum;
}
