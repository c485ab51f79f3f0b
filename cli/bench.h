/*
 * bench.h: `rosim bench`, the encoder benchmark.
 */
#ifndef ROSIM_BENCH_H
#define ROSIM_BENCH_H

#include "../model/roformer.h"

struct bench_options {
    const char *input;  /* one sentence per line; NULL: standard input */
    int count;          /* sentences to use */
};

/* Measure the machine's sgemm rate and the encoder at batch 1 and 32; print
 * the figures as JSON lines.  Returns 0, or 1 on error (message printed). */
int bench_encoder(const struct rf_model *m, const struct bench_options *o);

#endif
