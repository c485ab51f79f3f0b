/*
 * batcher.h: merges concurrent embedding requests into encoder batches.
 *
 * Requests hand over tokenized texts and wait; one thread takes the jobs
 * waiting in the queue, in arrival order, up to a budget of tokens per
 * batch (a batch that is not full waits a short while for the requests
 * expected back from the last one; see batcher.c), runs the
 * encoder once over all their sequences (batches are packed, so sequences
 * of different lengths cost nothing extra), and wakes each request with its
 * vectors.  Under concurrency this turns many one-sentence requests into
 * few large matrix products, which is where the machine is fast.
 *
 * The queue is bounded: a request that finds max_queue jobs waiting is
 * refused at once (RS_EBUSY, which the API turns into 429).  A job still
 * queued when its request's deadline passes is taken out (RS_ETIMEOUT,
 * 503); once the worker has taken it, the request waits for its vectors.
 */
#ifndef ROSIM_BATCHER_H
#define ROSIM_BATCHER_H

#include <stdint.h>

#include "../model/roformer.h"

struct batcher;

/* NULL when out of memory.  max_tokens: the token budget of a batch;
 * wait_us: how long after a batch ends the next may wait for the requests
 * expected back (0: never waits); max_len: the longest sequence accepted. */
struct batcher *batcher_new(const struct rf_model *m, int max_tokens, int wait_us, int max_queue,
                            int max_len);

/* Finish the jobs queued, stop the thread, free.  NULL is a no-op. */
void batcher_free(struct batcher *b);

/* Pooled (linear, not normalized) vectors of n sequences into out.
 * RS_EBUSY when the queue is full; RS_ETIMEOUT when the job was still
 * queued after timeout_s seconds. */
int batcher_encode(struct batcher *b, const int32_t *const *ids, const int *lens, int n,
                   float *out, int timeout_s, struct rs_error *e);

/* Jobs waiting now. */
int batcher_depth(struct batcher *b);

/* For liveness checks: the number of batches finished so far; *busy is 1
 * while jobs wait or a batch runs.  Busy twice with the same count, a
 * while apart, means the worker made no progress in between. */
unsigned long batcher_progress(struct batcher *b, int *busy);

#endif
