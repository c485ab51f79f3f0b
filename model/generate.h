/*
 * generate.h: similar-sentence generation, the gen_synonyms procedure of
 * RoFormer-Sim's release.
 *
 *     struct gen_params p = gen_default_params();
 *     p.n = 100; p.seed = 42;
 *     struct gen_paraphrases out = { 0 };
 *     if (gen_paraphrase(m, text, strlen(text), &p, 20, &out, &err) == RS_OK)
 *         for (int i = 0; i < out.n; i++)
 *             printf("%.3f %s\n", out.items[i].score, out.items[i].text);
 *     gen_paraphrases_free(&out);
 *
 * The source is tokenized and truncated to src_maxlen tokens, as the model
 * was trained (bert4keras gen_synonyms: tokenizer.encode(text, maxlen)), n
 * continuations are sampled in one batch over a shared source cache
 * (bert4keras random_sample: temperature, then top-k, then top-p, then one
 * draw per row; a row ends at [SEP] or after max_new tokens), decoded with
 * the bert4keras rules, de-duplicated, the input itself dropped, and the
 * rest ranked by the cosine similarity of their sentence vectors to the
 * input's.  Those vectors are the ones /v1/embed gives (every text
 * truncated to src_maxlen, normalized and compared with vec.h), so a score
 * equals the /v1/similarity of the two texts.  With beam > 0, bert4keras
 * beam_search replaces sampling and yields one deterministic candidate, the
 * most likely sequence, so k must be 1.  With top_k 1 (greedy) there is one
 * distinct candidate whatever n.  The same seed gives the same output.
 * Thread-safe for distinct outputs; the model may be shared.
 */
#ifndef ROSIM_GENERATE_H
#define ROSIM_GENERATE_H

#include <stdint.h>

#include "decoder.h"
#include "error.h"
#include "roformer.h"

#define GEN_MAX_N 1000        /* candidates per call */
#define GEN_MAX_NEW 512       /* generated tokens per candidate */
#define GEN_MIN_REAL 1e-38    /* smallest top_p and temperature callers should pass
                               * on: a smaller double becomes float 0 */

enum { GEN_STOP_CANCEL = 1, GEN_STOP_DEADLINE = 2 };   /* gen_params.cancel's answers */

struct gen_params {
    int n;              /* candidates to sample, 1..GEN_MAX_N */
    int top_k;          /* keep the k most likely tokens; 0: off */
    float top_p;        /* keep the smallest set reaching this mass, (0, 1]; 1: off */
    float temperature;  /* > 0; probabilities are raised to 1/temperature */
    int max_new;        /* tokens generated per candidate, [SEP] included, 1..GEN_MAX_NEW */
    int src_maxlen;     /* source truncation in tokens, >= 2 */
    uint64_t seed;
    int beam;           /* 0: sampling; > 0: beam search of this width */
    /* asked before each decode step: GEN_STOP_CANCEL stops the run with
     * RS_ECANCELED (client gone, server stopping), GEN_STOP_DEADLINE with
     * RS_ETIMEOUT (the request's time is up), 0 goes on.  NULL: never. */
    int (*cancel)(void *arg);
    void *cancel_arg;
};

/* n 20, top_p 0.95, top_k 0, temperature 1, max_new 64, src_maxlen 64,
 * seed 0, sampling, no cancel. */
struct gen_params gen_default_params(void);

/* RS_OK, or RS_EINVAL with a message naming the bad parameter. */
int gen_check_params(const struct gen_params *p, struct rs_error *e);

/* Generated id sequences; sequence i is ids[off[i] .. off[i] + len[i]),
 * its trailing [SEP] included when it ended.  Order as bert4keras returns
 * them: by the step they ended at, then unfinished ones. */
struct gen_sequences {
    int n;
    int32_t *ids;
    int *off, *len;
};
void gen_sequences_free(struct gen_sequences *s);

/* Sample (or beam-search) continuations of src[0..src_len) on decoder d
 * (made with room for src_len, p->max_new and p->n rows). */
int gen_run(const struct rf_model *m, struct dec *d, const int32_t *src, int src_len,
            const struct gen_params *p, struct gen_sequences *out, struct rs_error *e);

struct gen_candidate {
    char *text;
    double score;       /* cosine similarity to the input */
};

struct gen_paraphrases {
    long n_generated;   /* tokens generated in all */
    int n_candidates;   /* distinct candidates before taking the top k */
    int n;
    struct gen_candidate *items;   /* best first */
};
void gen_paraphrases_free(struct gen_paraphrases *out);

/* The whole procedure for one text: at most k paraphrases, best first.
 * RS_EINVAL for bad parameters or an empty text; RS_EINTERNAL when the
 * model produces values that are not finite. */
int gen_paraphrase(const struct rf_model *m, const char *text, size_t len,
                   const struct gen_params *p, int k, struct gen_paraphrases *out,
                   struct rs_error *e);

/* The work of gen_paraphrase for admission control, in units of one token
 * through the model with a short context, so that it is proportional to
 * run time (within some 2x on the demo model, sampling and beam search
 * alike): the source twice (decoder input and its vector); per decode
 * step GEN_COST_STEP (the weights are read once a step, however few the
 * rows); per generated token of each of the rows (n, or the beam width)
 * 1 + its context (source + tokens before it) / GEN_COST_CONTEXT (the
 * key/value reads); with beam search, the copies of duplicated beams'
 * caches, rows x max_new^2 / GEN_COST_BEAM_COPY; and the vectors of the
 * candidates (n, or 1 for beam search; each at most min(max_new + 2,
 * src_maxlen) tokens).  src_tokens: the source's length after truncation
 * to p->src_maxlen, [CLS] and [SEP] included. */
#define GEN_COST_STEP 24
#define GEN_COST_CONTEXT 32
#define GEN_COST_BEAM_COPY 256
long gen_cost(int src_tokens, const struct gen_params *p);

/* --- the sampler, exposed for tests ------------------------------------- */

struct gen_rng { uint64_t s[4]; };
void gen_rng_seed(struct gen_rng *r, uint64_t seed);
double gen_rng_uniform(struct gen_rng *r);    /* [0, 1) */

/* Draw a token from probs[0..V) after temperature, top-k and top-p.
 * work: scratch of V ints and V floats. */
int gen_sample_token(const float *probs, int V, const struct gen_params *p,
                     struct gen_rng *rng, int *work_idx, float *work_p);

/* A beam search candidate: row extended by token, with its summed score. */
struct gen_beam_cand {
    double score;
    int row, token;
};

/* The best min(width, rows x V) extensions of rows beams with summed
 * scores score[r] and next-token probabilities probs[r * V ..], scored
 * score[r] + log(p + 1e-12), into best[0..width), best first (ties: lower
 * row, then lower token); returns their number.  A heap of width
 * entries: O(rows x V) time, nothing allocated. */
int gen_beam_select(const float *probs, const double *score, int rows, int V, int width,
                    struct gen_beam_cand *best);

#endif
