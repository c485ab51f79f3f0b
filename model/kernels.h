/*
 * kernels.h: the numeric building blocks of the encoder and decoder.
 *
 * All work on row-major arrays, allocate nothing and run on the calling
 * thread (callers split rows across threads).  The dense layers are in
 * matmul.c.  The kernels are written to be vectorized and are compiled for
 * AVX-512, AVX2 and the x86-64 baseline, the best one picked at startup.
 */
#ifndef ROSIM_KERNELS_H
#define ROSIM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Per row of H: x = LayerNorm(x + r) * g + b, population variance; r may
 * be NULL. */
void k_add_layer_norm(float *x, const float *r, int n, int H, const float *g, const float *b,
                      float eps);

/* x = 0.5 x (1 + erf(x / sqrt 2)), the exact GELU (|error| < 5e-7). */
void k_gelu(float *x, size_t n);

/* bert4keras's rotary tables for positions 0..n_pos-1 and head size d:
 * sin/cos[p * d/2 + i] of angle p * 10000^(-2i/d), computed in float32. */
void k_rope_tables(float *sin_t, float *cos_t, int n_pos, int d);

/* Rotate the interleaved pairs (2i, 2i+1) of every head (size d) of one
 * row v[0..H) by the angles of one position (sin_p, cos_p: d/2 each). */
void k_rope(float *v, int H, int d, const float *sin_p, const float *cos_p);

/* In-place softmax of x[0..n); entries equal to -INFINITY get weight 0. */
void k_softmax(float *x, int n);

/* out[t] = scale * (q . k_t) for the T vectors k_t = k + t * stride of d
 * floats (a query against cached keys). */
void k_dots(const float *q, const float *k, size_t stride, int T, int d, float scale,
            float *out);

/* o += sum of p[t] v_t over the T vectors v_t = v + t * stride of d floats
 * (zero weights skipped). */
void k_mix(float *o, const float *p, const float *v, size_t stride, int T, int d);

/* y[i] = x[i] rounded to bfloat16 (to nearest, ties to even). */
void k_to_bf16(const float *x, size_t n, uint16_t *y);

/* Quantize each row i of x (n x K) to q = round(x / s_i), s_i = max|x_i| /
 * 127 (1 for a zero row); scale[i] = s_i. */
void k_quantize_rows(const float *x, int n, int K, int8_t *q, float *scale);

/* Quantize each column j of W (K x N, or N x K when transposed) the same
 * way, into q in W's own layout; scale[j] = s_j. */
void k_quantize_cols(const float *w, int transposed, int K, int N, int8_t *q, float *scale);

/* Per row i of y (n x N): y = gelu(y * rs[i] * cs[j] + b[j]), then
 * quantized into q as k_quantize_rows does (rs[i] becomes the new scale; b
 * may be NULL):
 * the middle of an int8 feed-forward block in one pass over each row. */
void k_requantize_gelu_rows(float *y, int n, int N, float *rs, const float *cs, const float *b,
                            int8_t *q);

/* y[i][j] = y[i][j] * rs[i] * cs[j] + b[j] over n rows of N (b may be NULL). */
void k_dequantize_rows(float *y, int n, int N, const float *rs, const float *cs,
                       const float *b);

#endif
