/*
 * decoder.h: UniLM decoding with a key/value cache (the seq2seq half of
 * RoFormer-Sim).
 *
 *     struct dec *d = dec_new(m, 64, 32, 100);    // source <= 64, 32 new tokens, 100 rows
 *     dec_start(d, src, src_len, &err);           // source pass, once; 1 row
 *     dec_fork(d, 100, &err);                     // 100 rows share the source cache
 *     for (...) {
 *         ... choose tokens[r] from dec_probs(d) + r * V ...
 *         dec_step(d, tokens, &err);              // one token per row, next distributions
 *         dec_select(d, keep, n_keep, &err);      // drop finished rows (or reorder beams)
 *     }
 *
 * The source (segment 0) attends to itself both ways and is computed once;
 * every generated token (segment 1, positions continuing after the source)
 * attends to the source and to the tokens before it in its own row, which
 * is exactly bert4keras's UniLM mask over [source, generated], so the
 * distributions equal recomputing the whole sequence at every step
 * (dec_recompute does that, for tests and comparison).  A row whose
 * sampled token is [PAD] masks that key afterwards, as bert4keras does.
 *
 * Not thread-safe: one decoder per thread; the model may be shared.
 */
#ifndef ROSIM_DECODER_H
#define ROSIM_DECODER_H

#include <stdint.h>

#include "error.h"
#include "roformer.h"

struct dec;

/* NULL when out of memory or the model cannot generate (no MLM head or
 * one segment only). */
struct dec *dec_new(const struct rf_model *m, int max_src, int max_new, int max_rows);
void dec_free(struct dec *d);

int dec_start(struct dec *d, const int32_t *src, int src_len, struct rs_error *e);
int dec_fork(struct dec *d, int n, struct rs_error *e);
int dec_step(struct dec *d, const int32_t *tokens, struct rs_error *e);

/* Keep rows keep[0..n) of the current rows, in that order (a row may be
 * kept twice, as beam search needs).  The probabilities follow their rows
 * when keep is strictly increasing; otherwise they are undefined until the
 * next dec_step. */
int dec_select(struct dec *d, const int *keep, int n, struct rs_error *e);

int dec_rows(const struct dec *d);
int dec_generated(const struct dec *d);   /* tokens generated so far per row */
/* Next-token probabilities: dec_rows(d) rows of n_vocab floats (borrowed). */
const float *dec_probs(const struct dec *d);

/* The same distributions computed the bert4keras way: the whole sequence
 * src + gen[r][0..gen_len) through the model for each of n rows, the MLM
 * head at its last position.  probs: n * n_vocab floats. */
int dec_recompute(const struct rf_model *m, const int32_t *src, int src_len,
                  const int32_t *const *gen, int gen_len, int n, float *probs,
                  struct rs_error *e);

#endif
