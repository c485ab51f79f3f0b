/*
 * bench.h: `rosim bench`, the encoder benchmark.
 */
#ifndef ROSIM_BENCH_H
#define ROSIM_BENCH_H

#include "../model/roformer.h"

struct bench_options {
    const char *model;  /* the model's directory: the fp32 reference is loaded from it */
    const char *input;  /* one sentence per line; NULL: standard input */
    int count;          /* sentences to use */
    int generate;       /* benchmark generation instead of the encoder */
    int search;         /* benchmark collections instead */
};

/* Measure the machine's limits (OpenBLAS sgemm, oneDNN f32, bf16 and int8
 * matmul at the encoder's shapes, with the kernel each runs) and the
 * encoder at batch 1 and 32 in m's precision, against the limit of that
 * precision (sgemm for fp32); the resident memory; and, when m is not
 * fp32, the fp32 model's rate and each sentence's cosine to its vector.
 * Batch 32 runs three times, each right after its limit (and before the
 * fp32 model): the ratios are those of the best of each.
 * Every figure comes with the load average.  Prints JSON lines.  Returns
 * 0, or 1 on error (message printed). */
int bench_encoder(const struct rf_model *m, const struct bench_options *o);

/* gen_synonyms (n 100, k 20, 32 new tokens) over o->count sentences: time
 * per sentence, generated tokens/s, decode-step time against the machine's
 * limit, and the cost of recomputing every step as bert4keras does
 * (measured at a few steps and integrated). */
int bench_generate(const struct rf_model *m, const struct bench_options *o);

/* Collections of o->count vectors of the model's dimension, clustered and
 * uniform, Flat, HNSW32 and IVF at two efforts each, and FAISS's own flat
 * index as the reference: single-query QPS and recall@10 against brute
 * force (bench_search.c). */
int bench_search(const struct rf_model *m, const struct bench_options *o);

#endif
