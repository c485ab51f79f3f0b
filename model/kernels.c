/*
 * kernels.c: LayerNorm, GELU, rotary embedding, softmax, and the
 * conversions of the bf16 and int8 matrix products.
 */
#include "kernels.h"

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

VECTOR_KERNEL void
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

VECTOR_KERNEL void
k_to_bf16(const float *x, size_t n, uint16_t *y)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof(u));
        y[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}

/* The largest |x[j]| of x[0..n), as the largest bit pattern of |x[j]|: the
 * patterns of non-negative floats sort as their values, and an integer
 * maximum vectorizes where a float one (fmaxf, or a comparison, which
 * must keep NaN and signed-zero semantics) does not. */
static inline float
abs_max(const float *x, int n)
{
    uint32_t mx = 0;
    float f;

    for (int j = 0; j < n; j++) {
        uint32_t u;
        memcpy(&u, &x[j], sizeof(u));
        u &= 0x7fffffffu;
        mx = u > mx ? u : mx;
    }
    memcpy(&f, &mx, sizeof(f));
    return f;
}

/* round(v) for |v| <= 127.5, in a form the compiler vectorizes */
static inline int8_t
round_s8(float v)
{
    return (int8_t)(int)(v + (v >= 0 ? 0.5f : -0.5f));
}

VECTOR_KERNEL void
k_quantize_rows(const float *x, int n, int K, int8_t *q, float *scale)
{
    for (int i = 0; i < n; i++) {
        const float *row = x + (size_t)i * (size_t)K;
        int8_t *out = q + (size_t)i * (size_t)K;
        const float mx = abs_max(row, K);
        float inv;
        scale[i] = mx > 0 ? mx / 127.0f : 1.0f;
        inv = 1.0f / scale[i];
        for (int k = 0; k < K; k++)
            out[k] = round_s8(row[k] * inv);
    }
}

void
k_quantize_cols(const float *w, int transposed, int K, int N, int8_t *q, float *scale)
{
    /* element (k, j) of W is at at(k, j) in w and in q */
#define AT(k, j) (transposed ? (size_t)(j) * (size_t)K + (size_t)(k) \
                             : (size_t)(k) * (size_t)N + (size_t)(j))
    for (int j = 0; j < N; j++)
        scale[j] = 0;
    for (int k = 0; k < K; k++) {
        for (int j = 0; j < N; j++) {
            float a = fabsf(w[AT(k, j)]);
            scale[j] = a > scale[j] ? a : scale[j];
        }
    }
    for (int j = 0; j < N; j++)
        scale[j] = scale[j] > 0 ? scale[j] / 127.0f : 1.0f;
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            q[AT(k, j)] = round_s8(w[AT(k, j)] / scale[j]);
#undef AT
}

VECTOR_KERNEL void
k_dequantize_rows(float *y, int n, int N, const float *rs, const float *cs, const float *b)
{
    for (int i = 0; i < n; i++) {
        float *row = y + (size_t)i * (size_t)N;
        const float s = rs[i];
        if (b != NULL)    /* outside the loop, which then vectorizes */
            for (int j = 0; j < N; j++)
                row[j] = row[j] * s * cs[j] + b[j];
        else
            for (int j = 0; j < N; j++)
                row[j] = row[j] * s * cs[j];
    }
}

VECTOR_KERNEL void
k_dots(const float *q, const float *k, size_t stride, int T, int d, float scale, float *out)
{
    for (int t = 0; t < T; t++) {
        const float *kt = k + (size_t)t * stride;
        float acc[16] = { 0 }, dot = 0;   /* 16 partial sums: one vector */
        int i = 0;
        for (; i + 16 <= d; i += 16)
            for (int u = 0; u < 16; u++)
                acc[u] += q[i + u] * kt[i + u];
        for (; i < d; i++)
            dot += q[i] * kt[i];
        for (int u = 0; u < 16; u++)
            dot += acc[u];
        out[t] = dot * scale;
    }
}

VECTOR_KERNEL void
k_mix(float *o, const float *p, const float *v, size_t stride, int T, int d)
{
    for (int t = 0; t < T; t++) {
        const float *vt = v + (size_t)t * stride;
        if (p[t] == 0.0f)
            continue;
        for (int i = 0; i < d; i++)
            o[i] += p[t] * vt[i];
    }
}

VECTOR_KERNEL void
k_requantize_gelu_rows(float *y, int n, int N, float *rs, const float *cs, const float *b,
                       int8_t *q)
{
    for (int i = 0; i < n; i++) {
        float *row = y + (size_t)i * (size_t)N;
        int8_t *out = q + (size_t)i * (size_t)N;
        const float s = rs[i];
        float mx, inv;
        /* the bias test outside the loops: a load under a condition keeps
         * the compiler from vectorizing */
        if (b != NULL)
            for (int j = 0; j < N; j++)
                row[j] = row[j] * s * cs[j] + b[j];
        else
            for (int j = 0; j < N; j++)
                row[j] = row[j] * s * cs[j];
        for (int j = 0; j < N; j++)
            row[j] = 0.5f * row[j] * (1.0f + erf_rational(row[j] * 0.70710678118654752f));
        mx = abs_max(row, N);
        rs[i] = mx > 0 ? mx / 127.0f : 1.0f;
        inv = 1.0f / rs[i];
        for (int j = 0; j < N; j++)
            out[j] = round_s8(row[j] * inv);
    }
}
