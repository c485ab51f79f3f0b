/*
 * matmul.h: dense layers on oneDNN in fp32, bf16 or int8.
 *
 *     struct mm_engine *g;  mm_engine_new(&g, MM_BF16, &err);     // per model
 *     struct mm_weight *w;  mm_weight_new(g, W, 0, K, N, b, &w, &err);   // at load
 *     struct mm_ctx *c = mm_ctx_new(g, max_rows, max_k);          // per thread
 *     mm_dense(c, w, x, n, y, &err);                              // y = x W + b
 *
 * Activations come in and go out as float32; the engine converts them.
 * fp32: oneDNN's f32 kernels (faster than OpenBLAS's sgemm at every shape
 * of the model on AVX-512, and one thread pool for the whole forward pass).
 * bf16: x and W rounded to bfloat16, products accumulated in float32.
 * int8: W quantized once per output column (symmetric, scale max|W_j|/127),
 * x per row at each call (max|x_i|/127); int32 products scaled back to
 * float32 before the bias is added.
 *
 * Weights are reordered once into the blocked layout oneDNN's kernels want.
 * Primitives are made per weight shape and row count class and cached in
 * the engine: counts 1..64 exactly, larger ones in chunks of multiples of
 * 64 (up to 4096) plus an exact tail, so a product never pads rows.
 *
 * Threads: the engine and weights are shared (the primitive cache takes a
 * lock); an mm_ctx (stream, scratchpad, converted activations) belongs to
 * one thread at a time.  Execution uses mm_set_threads() OpenMP threads.
 */
#ifndef ROSIM_MATMUL_H
#define ROSIM_MATMUL_H

#include <stddef.h>

#include "error.h"

enum mm_precision { MM_FP32, MM_BF16, MM_INT8 };

/* "fp32", "bf16", "int8"; "auto" is bf16 where the CPU runs it natively
 * (AVX512_BF16 or AMX), fp32 elsewhere.  -1 for anything else. */
int mm_precision_parse(const char *name);
const char *mm_precision_name(enum mm_precision p);
/* Whether the CPU has native bf16 (AVX512_BF16 or AMX). */
int mm_bf16_native(void);
/* The instruction set oneDNN dispatches to on this CPU ("avx512_core_amx",
 * "avx512_core_bf16", "avx2", ...). */
const char *mm_isa(void);

/* Threads of every later execution, process-wide (default: all cores). */
void mm_set_threads(int n);
/* Make the calling thread's OpenMP team the mm_set_threads() size and
 * return that size: for callers parallelizing their own loops. */
int mm_threads(void);

struct mm_engine;
struct mm_weight;
struct mm_ctx;

int mm_engine_new(struct mm_engine **out, enum mm_precision p, struct rs_error *e);
void mm_engine_free(struct mm_engine *g);
/* The oneDNN kernel the engine's products run on, e.g.
 * "brg:avx512_core_bf16" (after the first product; "" before). */
const char *mm_engine_kernel(const struct mm_engine *g);

/* Prepare W (K x N, row-major, or N x K when transposed: y = x W^T) and
 * bias b (N floats, or NULL for none); with gelu, products end with the
 * exact GELU (y = gelu(x W + b)).  The engine must outlive it. */
int mm_weight_new(struct mm_engine *g, const float *w, int transposed, int K, int N,
                  const float *b, int gelu, struct mm_weight **out, struct rs_error *e);
void mm_weight_free(struct mm_weight *w);
/* Bytes the prepared weight occupies. */
size_t mm_weight_bytes(const struct mm_weight *w);

/* Scratch for products of up to max_rows rows and max_k inputs.  NULL
 * when out of memory. */
struct mm_ctx *mm_ctx_new(struct mm_engine *g, int max_rows, int max_k);
void mm_ctx_free(struct mm_ctx *c);

/* y (n x N) = x (n x K) W + b; rows of x and y are contiguous.  RS_EINVAL
 * when n or K exceed the context's capacity. */
int mm_dense(struct mm_ctx *c, const struct mm_weight *w, const float *x, int n, float *y,
             struct rs_error *e);

/* y = (x W1 + b1) W2 + b2 where w1 was made with gelu: a feed-forward
 * block, its middle kept in the context (in bf16, never converted back to
 * float32).  W1's outputs count against max_k. */
int mm_ffn(struct mm_ctx *c, const struct mm_weight *w1, const struct mm_weight *w2,
           const float *x, int n, float *y, struct rs_error *e);

#endif
