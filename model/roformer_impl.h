/*
 * roformer_impl.h: the model's internals shared by the encoder (roformer.c)
 * and the decoder (decoder.c).  Not part of the library's interface.
 */
#ifndef ROSIM_ROFORMER_IMPL_H
#define ROSIM_ROFORMER_IMPL_H

#include "matmul.h"
#include "roformer.h"

/* A dense layer y = x W + b.  In fp32, w is used (OpenBLAS); in bf16 and
 * int8, mm holds the converted weights and w is freed (NULL). */
struct rf_dense {
    float *w, *b;          /* [in, out], [out] */
    struct mm_weight *mm;
    int in, out;
};

struct rf_layer {
    struct rf_dense qkv;   /* [H, 3H]: q, k and v fused */
    struct rf_dense o;     /* [H, H] */
    float *ln1_g, *ln1_b;  /* [H] */
    struct rf_dense ffn1;  /* [H, I], GELU after */
    struct rf_dense ffn2;  /* [I, H] */
    float *ln2_g, *ln2_b;  /* [H] */
};

struct rf_model {
    struct rf_config cfg;
    struct tok_vocab *vocab;
    const char *format;
    float *tok_emb;        /* [V, H] */
    float *seg_emb;        /* [n_type, H] */
    float *pos_emb;        /* [max_pos, H], BERT only */
    float *emb_ln_g, *emb_ln_b;
    struct rf_layer *layers;
    struct rf_dense pool;    /* [H, H] */
    int has_mlm;             /* the MLM head below was in the weights */
    struct rf_dense mlm;     /* [H, H] */
    float *mlm_ln_g, *mlm_ln_b;
    float *mlm_bias;         /* [V]; logits = LN(gelu(x W + b)) E_tok^T + bias */
    enum mm_precision prec;
    struct mm_engine *mm;    /* bf16 and int8 */
    struct mm_weight *logits;  /* E_tok^T and mlm_bias on the engine */
    float **owned;         /* every float buffer above, for freeing */
    size_t *owned_len;     /* their lengths, in floats */
    int n_owned, cap_owned;
    char fingerprint[96];
};

struct rf_state {
    int max_batch, max_len, d_model;
    float *x;        /* [B*T, H] hidden states */
    float *qkv;      /* [B*T, 3H] */
    float *att;      /* [B*T, H] attention output before Wo */
    float *tmp;      /* [B*T, H] */
    float *scores;   /* [n_scores, T, T]: one head per thread */
    int n_scores;
    float *rope_sin, *rope_cos;   /* [T, d/2] */
    int32_t *tokens; /* [rows] ids of the packed batch */
    int *cum_seg;    /* [rows] running sum of segment ids (UniLM mask) */
    int *pos;        /* [rows] position of each row in its sequence */
    int *start;      /* [B + 1] first row of each sequence */
    struct mm_ctx *mm;   /* the engine's scratch (bf16, int8) */
};

/* y (n, d->out) = x (n, d->in) W + b in the model's precision; c is the
 * caller's engine scratch. */
int rf_dense(const struct rf_dense *d, struct mm_ctx *c, const float *x, int n, float *y,
             struct rs_error *e);

/* y (n, H) = gelu(x W1 + b1) W2 + b2: layer L's feed-forward block. */
int rf_ffn(const struct rf_layer *L, struct mm_ctx *c, const float *x, int n, float *y,
           struct rs_error *e);

/* An engine scratch for n rows of any layer of m; NULL when out of memory. */
struct mm_ctx *rf_mm_ctx_new(const struct rf_model *m, int rows);

/* k_add_layer_norm and k_gelu with the rows split across the engine's
 * threads. */
void rf_layer_norm(float *x, const float *r, int n, int H, const float *g, const float *b,
                   float eps);
void rf_gelu(float *x, int n, int cols);

/* Run the layers over a packed batch: sequence b is ids[b][0..lens[b]) with
 * segment ids segs[b] (NULL: all 0).  Query i may attend key j of its own
 * sequence iff cumsum(seg)[j] <= cumsum(seg)[i] (the UniLM mask: segment-0
 * source bidirectional, segment-1 target causal) and key j is not [PAD]
 * (id 0, j > 0).  Leaves the last hidden states in s->x.  When cache_k and
 * cache_v are given, each layer's keys (after rotation) and values are
 * copied there: [n_layer, rows, H] with rows = sum of lens. */
int rf_forward(const struct rf_model *m, struct rf_state *s, const int32_t *const *ids,
               const int32_t *const *segs, const int *lens, int n, float *cache_k,
               float *cache_v, struct rs_error *e);

/* Next-token probabilities of n hidden rows x: softmax(LN(gelu(x Wm + bm))
 * E_tok^T + bias).  h: scratch of n * H floats; probs: n * V floats; c: the
 * engine scratch. */
int rf_mlm_probs(const struct rf_model *m, struct mm_ctx *c, const float *x, int n, float *h,
                 float *probs, struct rs_error *e);

#endif
