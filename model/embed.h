/*
 * embed.h: the one embedding pipeline of rosim: texts are tokenized and
 * truncated to max_length tokens the bert4keras way (tokenizer.h), encoded
 * in batches, pooled (RoFormer-Sim's linear pooler on [CLS] by default),
 * checked finite and L2-normalized with vec_normalize (vec.h).  Every
 * vector rosim gives or stores comes from here: /v1/embed, /v1/similarity,
 * /v1/embeddings, `rosim embed`, the re-ranking of generated paraphrases,
 * and the collections' texts and queries (rosimd, `rosim import`, `rosim
 * search`; those are passed on not normalized, and the collection
 * normalizes them once, with vec.h); so the same text gives the same bits
 * everywhere.
 *
 *     struct emb_options o = emb_default_options();    // 64 tokens, normalized
 *     struct emb_text t = { "今天天气不错", strlen("今天天气不错") };
 *     float v[768];
 *     if (emb_texts(m, &t, 1, &o, v, NULL, &err) != RS_OK) ...
 *
 * Encoding runs here, on the calling thread (in a state of its own, or
 * o.state), unless o.encode hands the sequences to another encoder (the
 * server's batcher), which must pool the same way.  Thread-safe as far as
 * the model is (roformer.h): o.state is for one thread at a time.
 */
#ifndef ROSIM_EMBED_H
#define ROSIM_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "roformer.h"

#define EMB_MAX_LENGTH 64      /* RoFormer-Sim was trained on 64 tokens */
#define EMB_BATCH 32           /* default sequences per rf_encode here */

/* A text, len bytes of UTF-8 (U+0000 allowed: the tokenizer drops it). */
struct emb_text {
    const char *s;
    size_t len;
};

/* Pooled (not normalized) vectors of n tokenized sequences into out
 * (n x d_model).  Returns RS_OK or an error in e. */
typedef int emb_encode_fn(void *arg, const int32_t *const *ids, const int *lens, int n,
                          float *out, struct rs_error *e);

struct emb_options {
    int max_length;            /* tokens, [CLS] and [SEP] included; >= 2 */
    enum rf_pooler pooler;     /* RF_POOL_LINEAR for RoFormer-Sim's vectors */
    int normalize;             /* 1: unit L2 norm (vec_normalize) */
    int batch;                 /* sequences per rf_encode here, >= 1 */
    struct rf_state *state;    /* NULL: a state per batch; else one of at least
                                * batch x max_length (borrowed) */
    emb_encode_fn *encode;     /* NULL: rf_encode here; else it encodes (pooler is
                                * then the encoder's, which must be linear) */
    void *encode_arg;
};

/* max_length EMB_MAX_LENGTH, the linear pooler, normalized, encoded here
 * in batches of EMB_BATCH. */
struct emb_options emb_default_options(void);

/* What the texts cost. */
struct emb_usage {
    long tokens;               /* after truncation */
    int truncated;             /* texts cut to max_length */
    int failed;                /* the text the tokenizer refused, or -1 */
};

/* Vectors of n texts into vecs (n x d_model floats, caller's), and their
 * usage when u is not NULL (u->failed also on failure).  RS_EINVAL (invalid UTF-8, or what rf_encode
 * refuses), RS_ENOMEM, the encoder's error, or RS_EINTERNAL when the model
 * produced a value that is not finite (vecs is then undefined). */
int emb_texts(const struct rf_model *m, const struct emb_text *texts, int n,
              const struct emb_options *o, float *vecs, struct emb_usage *u, struct rs_error *e);

/* The same from tokens already truncated (ids[i][0..lens[i])). */
int emb_tokens(const struct rf_model *m, const int32_t *const *ids, const int *lens, int n,
               const struct emb_options *o, float *vecs, struct rs_error *e);

#endif
