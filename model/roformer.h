/*
 * roformer.h: the RoFormer-Sim / SimBERT sentence encoder.
 *
 *     struct rf_model *m;
 *     if (rf_model_load(&m, "models/roformer-sim", &err) != RS_OK) ...
 *     struct rf_state *s = rf_state_new(m, 32, 64);       // batch <= 32, <= 64 tokens
 *     rf_encode(m, s, ids, lens, n, RF_POOL_LINEAR, vecs, &err);   // vecs[n * dim]
 *     rf_state_free(s);
 *     rf_model_free(m);
 *
 * The model is the bert4keras one: token + segment embeddings (+ learned
 * positions for BERT), LayerNorm, post-LN transformer layers with rotary
 * position embedding on q and k (RoFormer; interleaved pairs, base 10000),
 * erf-GELU feed-forward, and a pooler on [CLS].  The architecture is
 * detected from the weights (a position_embeddings tensor means BERT).
 * Sequences of a batch are packed, not padded, so a sentence gets the same
 * vector alone or in a batch.  Within a sequence, key j is masked when its
 * token is 0 ([PAD]) and j > 0, as in bert4keras.
 *
 * Threads: a model is immutable after loading and shared by all threads
 * (the matmul engine caches its primitives under a lock); an rf_state is
 * scratch space for one thread at a time.  In steady state rf_encode
 * allocates no buffers (oneDNN keeps small per-call records).
 *
 * Dependencies: model/ reads JSON with jansson in two places only, the
 * model's config.json (roformer.c) and the header of a .safetensors file
 * (wt_safetensors.c); it never logs or exits, and knows nothing of HTTP
 * (server/ is above it).
 */
#ifndef ROSIM_ROFORMER_H
#define ROSIM_ROFORMER_H

#include <stdint.h>

#include <stddef.h>

#include "error.h"
#include "matmul.h"
#include "tokenizer.h"

enum rf_arch { RF_ARCH_ROFORMER, RF_ARCH_BERT };
enum rf_pooler { RF_POOL_LINEAR, RF_POOL_TANH, RF_POOL_CLS, RF_POOL_MEAN };

struct rf_config {
    enum rf_arch arch;
    int n_vocab;
    int d_model;
    int n_layer;
    int n_head;
    int d_ff;
    int n_type;        /* segment vocabulary */
    int max_pos;       /* BERT: rows of the position table */
    float ln_eps;
    int demo;          /* config.json says "rosim_demo": random weights */
};

struct rf_model;
struct rf_state;

/* Load config (bert_config.json or config.json), vocab.txt and weights from
 * dir.  Returns RS_OK or an error naming the file (and tensor). */
int rf_model_load(struct rf_model **out, const char *dir, struct rs_error *e);
void rf_model_free(struct rf_model *m);

const struct rf_config *rf_model_config(const struct rf_model *m);
const struct tok_vocab *rf_model_vocab(const struct rf_model *m);
/* "tf-checkpoint", "safetensors" or "pytorch". */
const char *rf_model_format(const struct rf_model *m);
/* "roformer-L12-H768-A12-V12000-" plus a hash of all weights: the same
 * for the same model in any of its formats, different for other weights. */
const char *rf_model_fingerprint(const struct rf_model *m);
/* Whether the weights include the MLM head that generation needs. */
int rf_model_can_generate(const struct rf_model *m);

/* The same, with the dense layers (attention projections, feed-forward,
 * MLM head) in precision p on the oneDNN engine (rf_model_load: fp32).
 * The fingerprint is that of the weights as stored, in every precision. */
int rf_model_load_as(struct rf_model **out, const char *dir, enum mm_precision p,
                     struct rs_error *e);
enum mm_precision rf_model_precision(const struct rf_model *m);
/* The oneDNN kernel the dense layers run on ("brg:avx512_core_bf16", ...;
 * "" before the first product). */
const char *rf_model_kernel(const struct rf_model *m);
/* Bytes of weights held, in every precision. */
size_t rf_model_weight_bytes(const struct rf_model *m);

/* Parse "linear", "tanh", "cls" or "mean"; -1 if none. */
int rf_pooler_parse(const char *name);

/* Set the threads of the forward pass (process-wide): oneDNN's OpenMP team,
 * which also runs attention and the element-wise loops, and OpenBLAS (the
 * small attention products, run inside that team, stay single-threaded;
 * the index uses it).  Each caller thread gets a team of n. */
void rf_set_threads(int n);

/* Scratch for batches of up to max_batch sequences of up to max_len tokens.
 * NULL when out of memory. */
struct rf_state *rf_state_new(const struct rf_model *m, int max_batch, int max_len);
void rf_state_free(struct rf_state *s);

/* Encode n sequences: ids[i][0..lens[i]) (with [CLS] and [SEP]), segment 0.
 * Writes n pooled vectors of rf_model_config(m)->d_model floats to out (not
 * normalized).  RS_EINVAL when n or a length exceeds the state's capacity
 * or an id is outside the vocabulary. */
int rf_encode(const struct rf_model *m, struct rf_state *s, const int32_t *const *ids,
              const int *lens, int n, enum rf_pooler pooler, float *out, struct rs_error *e);

/* The last hidden states of sequence i of the previous rf_encode: lens[i]
 * rows of d_model floats (borrowed; valid until the next call). */
const float *rf_state_hidden(const struct rf_state *s, int i);

#endif
