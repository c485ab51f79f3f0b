/*
 * generate.c: sampling, beam search and the paraphrase pipeline.
 *
 * The sampler never sorts the vocabulary: top-k is a quickselect and top-p
 * a weighted quickselect (three-way partitions around a pivot probability,
 * keeping the prefix whose mass first reaches p), both linear in the
 * vocabulary on average.  The kept set is exactly the one bert4keras keeps
 * (ties at the boundary aside, whose order numpy leaves unspecified too);
 * the draw walks it in its own order, which changes which token a given
 * uniform number picks, not the distribution.
 */
#include "generate.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "matmul.h"
#include "tokenizer.h"
#include "vec.h"

struct gen_params
gen_default_params(void)
{
    struct gen_params p = { 20, 0, 0.95f, 1.0f, 64, 64, 0, 0, NULL, NULL };
    return p;
}

int
gen_check_params(const struct gen_params *p, struct rs_error *e)
{
    if (p->n < 1 || p->n > GEN_MAX_N)
        return rs_error_set(e, RS_EINVAL, "n must be from 1 to %d, not %d", GEN_MAX_N, p->n);
    if (p->top_k < 0)
        return rs_error_set(e, RS_EINVAL, "top_k must be 0 (off) or positive, not %d", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return rs_error_set(e, RS_EINVAL, "top_p must be in (0, 1], not %.9g", (double)p->top_p);
    if (!(p->temperature > 0.0f) || !isfinite(p->temperature))
        return rs_error_set(e, RS_EINVAL, "temperature must be positive, not %.9g",
                            (double)p->temperature);
    if (p->max_new < 1 || p->max_new > GEN_MAX_NEW)
        return rs_error_set(e, RS_EINVAL, "max_length must be from 1 to %d, not %d",
                            GEN_MAX_NEW, p->max_new);
    if (p->src_maxlen < 2 || p->src_maxlen > 100000)
        return rs_error_set(e, RS_EINVAL, "source max length must be at least 2, not %d",
                            p->src_maxlen);
    if (p->beam < 0 || p->beam > GEN_MAX_N)
        return rs_error_set(e, RS_EINVAL, "beam width must be from 0 to %d, not %d",
                            GEN_MAX_N, p->beam);
    return RS_OK;
}

/* --- random numbers: xoshiro256** seeded by splitmix64 ------------------- */

static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void
gen_rng_seed(struct gen_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

double
gen_rng_uniform(struct gen_rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return (double)(out >> 11) * 0x1.0p-53;
}

/* --- the sampler ---------------------------------------------------------- */

/* Three-way partition of (idx, w)[lo, hi) around pivot value pv:
 * [lo, *a) > pv, [*a, *b) == pv, [*b, hi) < pv. */
static void
partition3(int *idx, float *w, int lo, int hi, float pv, int *a, int *b)
{
    int lt = lo, i = lo, gt = hi;

    while (i < gt) {
        if (w[i] > pv) {
            float tw = w[i]; w[i] = w[lt]; w[lt] = tw;
            int ti = idx[i]; idx[i] = idx[lt]; idx[lt] = ti;
            lt++;
            i++;
        } else if (w[i] < pv) {
            gt--;
            float tw = w[i]; w[i] = w[gt]; w[gt] = tw;
            int ti = idx[i]; idx[i] = idx[gt]; idx[gt] = ti;
        } else {
            i++;
        }
    }
    *a = lt;
    *b = gt;
}

static float
median3(const float *w, int lo, int hi)
{
    float x = w[lo], y = w[lo + (hi - lo) / 2], z = w[hi - 1];
    if (x > y) { float t = x; x = y; y = t; }
    if (y > z) { y = z; }
    return x > y ? x : y;
}

/* Move the k largest to [0, k). */
static void
select_top_k(int *idx, float *w, int n, int k)
{
    int lo = 0, hi = n, a, b;

    while (hi - lo > 1) {
        partition3(idx, w, lo, hi, median3(w, lo, hi), &a, &b);
        if (k <= a)
            hi = a;
        else if (k <= b)
            return;
        else
            lo = b;
    }
}

/* Move the nucleus to the front and return its size: the smallest set of
 * the largest entries whose mass reaches target (always at least one). */
static int
select_nucleus(int *idx, float *w, int n, double target)
{
    int lo = 0, hi = n, a, b;
    double acc = 0;

    while (lo < hi) {
        double mass = 0;
        partition3(idx, w, lo, hi, median3(w, lo, hi), &a, &b);
        for (int i = lo; i < a; i++)
            mass += w[i];
        if (a > lo && acc + mass >= target) {
            hi = a;
            continue;
        }
        acc += mass;
        for (int i = a; i < b; i++) {
            acc += w[i];
            if (acc >= target)
                return i + 1;
        }
        lo = b;
    }
    return lo > 0 ? lo : 1;
}

/* Whether a draw from probs takes a uniform number: not when top-k is 1
 * or no weight is left after the temperature (then it is the argmax). */
static int
sample_draws(const float *probs, int V, const struct gen_params *p)
{
    if (p->top_k == 1)
        return 0;
    for (int i = 0; i < V; i++)
        if (probs[i] > 0 && (p->temperature == 1.0f || powf(probs[i], 1.0f / p->temperature) > 0))
            return 1;
    return 0;
}

/* The token of probs that u (in [0, 1), unused when sample_draws says
 * so) picks. */
static int
sample_with(const float *probs, int V, const struct gen_params *p, double u, int *idx,
            float *w)
{
    int n = 0, best = 0;
    double total = 0, acc = 0;

    for (int i = 0; i < V; i++) {
        float v = probs[i];
        if (v > probs[best])
            best = i;
        if (p->temperature != 1.0f && v > 0)
            v = powf(v, 1.0f / p->temperature);
        if (v > 0) {
            idx[n] = i;
            w[n++] = v;
            total += v;
        }
    }
    if (n == 0 || p->top_k == 1)
        return best;
    if (p->top_k > 0 && p->top_k < n) {
        select_top_k(idx, w, n, p->top_k);
        n = p->top_k;
        total = 0;
        for (int i = 0; i < n; i++)
            total += w[i];
    }
    if (p->top_p < 1.0f) {
        n = select_nucleus(idx, w, n, (double)p->top_p * total);
        total = 0;
        for (int i = 0; i < n; i++)
            total += w[i];
    }
    u *= total;
    for (int i = 0; i < n; i++) {
        acc += w[i];
        if (acc > u)
            return idx[i];
    }
    return idx[n - 1];
}

int
gen_sample_token(const float *probs, int V, const struct gen_params *p,
                 struct gen_rng *rng, int *idx, float *w)
{
    return sample_with(probs, V, p, sample_draws(probs, V, p) ? gen_rng_uniform(rng) : 0, idx,
                       w);
}

/* One token for each of rows rows of probs (V each) into tok, the same
 * tokens as gen_sample_token row after row: the uniform numbers are drawn
 * in row order first, then the rows are sampled in parallel, each thread
 * with its own scratch (V ints and V floats per thread in idx, w). */
static void
sample_rows(const float *probs, int rows, int V, const struct gen_params *p,
            struct gen_rng *rng, double *u, int threads, int *idx, float *w, int32_t *tok)
{
    for (int r = 0; r < rows; r++)
        u[r] = sample_draws(probs + (size_t)r * (size_t)V, V, p) ? gen_rng_uniform(rng) : 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic)
    for (int r = 0; r < rows; r++) {
        const size_t t = (size_t)omp_get_thread_num() * (size_t)V;
        tok[r] = sample_with(probs + (size_t)r * (size_t)V, V, p, u[r], idx + t, w + t);
    }
}

/* --- the decoding loops --------------------------------------------------- */

void
gen_sequences_free(struct gen_sequences *s)
{
    free(s->ids);
    free(s->off);
    free(s->len);
    memset(s, 0, sizeof(*s));
}

static int
seq_alloc(struct gen_sequences *out, int n, int max_new)
{
    memset(out, 0, sizeof(*out));
    out->ids = malloc((size_t)n * (size_t)max_new * sizeof(int32_t));
    out->off = malloc((size_t)n * sizeof(int));
    out->len = malloc((size_t)n * sizeof(int));
    return out->ids && out->off && out->len ? RS_OK : RS_ENOMEM;
}

static void
seq_add(struct gen_sequences *out, const int32_t *ids, int len, int max_new)
{
    out->off[out->n] = out->n * max_new;
    out->len[out->n] = len;
    memcpy(out->ids + (size_t)out->n * (size_t)max_new, ids, (size_t)len * sizeof(int32_t));
    out->n++;
}

/* The next-token distributions of the first rows rows are numbers: a model
 * that overflows must fail, not sample from garbage. */
static int
probs_finite(const struct dec *d, int rows, int V, struct rs_error *e)
{
    if (vec_finite(dec_probs(d), (size_t)rows * (size_t)V))
        return RS_OK;
    return rs_error_set(e, RS_EINTERNAL, "model produced non-finite values");
}

/* RS_ECANCELED or RS_ETIMEOUT when the caller asks to stop, else RS_OK. */
static int
check_cancel(const struct gen_params *p, struct rs_error *e)
{
    int why = p->cancel != NULL ? p->cancel(p->cancel_arg) : 0;

    if (why == GEN_STOP_DEADLINE)
        return rs_error_set(e, RS_ETIMEOUT, "generation stopped: it ran past the request's "
                            "deadline (request_timeout); ask for fewer or shorter candidates "
                            "or a narrower beam, or retry");
    if (why != 0)
        return rs_error_set(e, RS_ECANCELED, "generation stopped: the client went away or "
                            "the server is stopping");
    return RS_OK;
}

/* bert4keras random_sample, min_ends = 1, minlen = 1. */

static int
run_sampling(const struct rf_model *m, struct dec *d, const struct gen_params *p,
             struct gen_sequences *out, struct rs_error *e)
{
    const int V = rf_model_config(m)->n_vocab, sep = tok_specials(rf_model_vocab(m)).sep;
    const int n = p->n, N = p->max_new;
    int32_t *hist = malloc((size_t)n * (size_t)N * sizeof(int32_t));
    int32_t *tok = malloc((size_t)n * sizeof(int32_t));
    int *sample = malloc((size_t)n * sizeof(int)), *keep = malloc((size_t)n * sizeof(int));
    const int threads = mm_threads();
    int *work_idx = malloc((size_t)threads * (size_t)V * sizeof(int));
    float *work_p = malloc((size_t)threads * (size_t)V * sizeof(float));
    double *u = malloc((size_t)n * sizeof(double));
    struct gen_rng rng;
    int rc = RS_OK, rows = n;

    if (!hist || !tok || !sample || !keep || !work_idx || !work_p || !u ||
        seq_alloc(out, n, N) != RS_OK) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
        goto done;
    }
    gen_rng_seed(&rng, p->seed);
    if ((rc = dec_fork(d, n, e)) != RS_OK)
        goto done;
    for (int r = 0; r < n; r++)
        sample[r] = r;
    for (int step = 0; step < N && rows > 0; step++) {
        int kept = 0;
        if ((rc = probs_finite(d, rows, V, e)) != RS_OK)
            goto done;
        sample_rows(dec_probs(d), rows, V, p, &rng, u, threads, work_idx, work_p, tok);
        for (int r = 0; r < rows; r++)
            hist[(size_t)sample[r] * (size_t)N + (size_t)step] = tok[r];
        for (int r = 0; r < rows; r++) {
            if (tok[r] == sep)
                seq_add(out, hist + (size_t)sample[r] * (size_t)N, step + 1, N);
            else
                keep[kept++] = r;
        }
        if (kept == 0 || step == N - 1) {
            for (int i = 0; i < kept; i++)
                seq_add(out, hist + (size_t)sample[keep[i]] * (size_t)N, step + 1, N);
            break;
        }
        for (int i = 0; i < kept; i++) {
            sample[i] = sample[keep[i]];
            tok[i] = tok[keep[i]];
        }
        if ((rc = check_cancel(p, e)) != RS_OK || (rc = dec_select(d, keep, kept, e)) != RS_OK ||
            (rc = dec_step(d, tok, e)) != RS_OK)
            goto done;
        rows = kept;
    }
done:
    if (rc != RS_OK)
        gen_sequences_free(out);
    free(hist);
    free(tok);
    free(sample);
    free(keep);
    free(work_idx);
    free(work_p);
    free(u);
    return rc;
}

/* True when a ranks before b: higher score, then lower row, then lower
 * token (the order bert4keras's argsort gives, ties made deterministic). */
static int
beam_before(const struct gen_beam_cand *a, const struct gen_beam_cand *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    if (a->row != b->row)
        return a->row < b->row;
    return a->token < b->token;
}

/* Restore the heap below i: heap[0] is the candidate ranked last. */
static void
beam_sift_down(struct gen_beam_cand *heap, int n, int i)
{
    for (;;) {
        int c = 2 * i + 1;
        struct gen_beam_cand t;
        if (c >= n)
            return;
        if (c + 1 < n && beam_before(&heap[c], &heap[c + 1]))
            c++;
        if (!beam_before(&heap[i], &heap[c]))
            return;
        t = heap[i];
        heap[i] = heap[c];
        heap[c] = t;
        i = c;
    }
}

static void
beam_sift_up(struct gen_beam_cand *heap, int i)
{
    while (i > 0 && beam_before(&heap[(i - 1) / 2], &heap[i])) {
        struct gen_beam_cand t = heap[i];
        heap[i] = heap[(i - 1) / 2];
        heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/*
 * The candidates are visited in (row, token) order, so a newcomer ranks
 * after every kept candidate of equal score: it enters only with a
 * strictly higher score than the last kept.  Once the heap is full, a
 * token can enter only if p + 1e-12 > exp(last - score[r]); the test
 * against that bound, loosened by a relative 1e-9 (far above the rounding
 * of either side), skips the logarithm of nearly every token, and the
 * exact comparison decides the rest.
 */
int
gen_beam_select(const float *probs, const double *score, int rows, int V, int width,
                struct gen_beam_cand *best)
{
    int n = 0;

    for (int r = 0; r < rows; r++) {
        const float *pr = probs + (size_t)r * (size_t)V;
        double bound = n == width ? exp(best[0].score - score[r]) * (1 - 1e-9) : 0;
        for (int v = 0; v < V; v++) {
            struct gen_beam_cand c;
            if (n == width && (double)pr[v] + 1e-12 <= bound)
                continue;
            c = (struct gen_beam_cand){ score[r] + log((double)pr[v] + 1e-12), r, v };
            if (n < width) {
                best[n] = c;
                beam_sift_up(best, n++);
            } else if (c.score > best[0].score) {
                best[0] = c;
                beam_sift_down(best, n, 0);
            } else {
                continue;
            }
            if (n == width)
                bound = exp(best[0].score - score[r]) * (1 - 1e-9);
        }
    }
    /* heap sort: the last-ranked to the end, best first */
    for (int i = n - 1; i > 0; i--) {
        struct gen_beam_cand t = best[0];
        best[0] = best[i];
        best[i] = t;
        beam_sift_down(best, i, 0);
    }
    return n;
}

/* bert4keras beam_search, min_ends = 1, minlen = 1: the best of topk beams
 * by summed log(p + 1e-12); ended beams leave unless one is the best. */
static int
run_beam(const struct rf_model *m, struct dec *d, const struct gen_params *p,
         struct gen_sequences *out, struct rs_error *e)
{
    const int V = rf_model_config(m)->n_vocab, sep = tok_specials(rf_model_vocab(m)).sep;
    const int N = p->max_new;
    int topk = p->beam, rows = 1;
    int32_t *hist = malloc((size_t)topk * (size_t)N * sizeof(int32_t));
    int32_t *hist2 = malloc((size_t)topk * (size_t)N * sizeof(int32_t));
    double *score = calloc((size_t)topk, sizeof(double));
    struct gen_beam_cand *cand = malloc((size_t)topk * sizeof(*cand));
    int32_t *tok = malloc((size_t)topk * sizeof(int32_t));
    int *parent = malloc((size_t)topk * sizeof(int));
    int rc = RS_OK, best = 0;

    if (!hist || !hist2 || !score || !cand || !tok || !parent || seq_alloc(out, 1, N) != RS_OK) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int step = 0; step < N; step++) {
        int nc, kept = 0;
        if ((rc = probs_finite(d, rows, V, e)) != RS_OK)
            goto done;
        nc = gen_beam_select(dec_probs(d), score, rows, V, topk, cand);
        /* the best candidate ended: that is the answer */
        if (cand[0].token == sep) {
            memcpy(out->ids, hist + (size_t)cand[0].row * (size_t)N, (size_t)step * sizeof(int32_t));
            out->ids[step] = sep;
            out->off[0] = 0;
            out->len[0] = step + 1;
            out->n = 1;
            goto done;
        }
        for (int i = 0; i < nc; i++) {
            if (cand[i].token == sep)
                continue;
            memcpy(hist2 + (size_t)kept * (size_t)N, hist + (size_t)cand[i].row * (size_t)N,
                   (size_t)step * sizeof(int32_t));
            hist2[(size_t)kept * (size_t)N + (size_t)step] = cand[i].token;
            score[kept] = cand[i].score;
            parent[kept] = cand[i].row;
            tok[kept] = cand[i].token;
            kept++;
        }
        memcpy(hist, hist2, (size_t)kept * (size_t)N * sizeof(int32_t));
        topk = kept;
        best = 0;   /* candidates are sorted: the best kept one is first */
        if (step == N - 1)
            break;
        if (step == 0) {
            if ((rc = dec_fork(d, kept, e)) != RS_OK)
                goto done;
        } else if ((rc = dec_select(d, parent, kept, e)) != RS_OK) {
            goto done;
        }
        if ((rc = check_cancel(p, e)) != RS_OK || (rc = dec_step(d, tok, e)) != RS_OK)
            goto done;
        rows = kept;
    }
    memcpy(out->ids, hist + (size_t)best * (size_t)N, (size_t)N * sizeof(int32_t));
    out->off[0] = 0;
    out->len[0] = N;
    out->n = 1;
done:
    if (rc != RS_OK)
        gen_sequences_free(out);
    free(hist);
    free(hist2);
    free(score);
    free(cand);
    free(tok);
    free(parent);
    return rc;
}

int
gen_run(const struct rf_model *m, struct dec *d, const int32_t *src, int src_len,
        const struct gen_params *p, struct gen_sequences *out, struct rs_error *e)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = gen_check_params(p, e)) != RS_OK)
        return rc;
    if ((rc = dec_start(d, src, src_len, e)) != RS_OK)
        return rc;
    return p->beam > 0 ? run_beam(m, d, p, out, e) : run_sampling(m, d, p, out, e);
}

/* --- gen_synonyms --------------------------------------------------------- */

void
gen_paraphrases_free(struct gen_paraphrases *out)
{
    for (int i = 0; i < out->n; i++)
        free(out->items[i].text);
    free(out->items);
    memset(out, 0, sizeof(*out));
}

struct ranked {
    char *text;
    double score;
    int order;
};

static int
by_rank(const void *x, const void *y)
{
    const struct ranked *a = x, *b = y;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->order - b->order;
}

/* Normalized sentence vectors of n tokenized texts into vecs[n * H], by
 * the pipeline of embed.h: the vectors /v1/similarity gives for the same
 * tokens. */
static int
embed_tokens(const struct rf_model *m, const struct tok_output *toks, int n, float *vecs,
             struct rs_error *e)
{
    const struct emb_options o = emb_default_options();
    const int32_t **ids = malloc((size_t)n * sizeof(*ids));
    int *lens = malloc((size_t)n * sizeof(*lens)), rc;

    if (ids == NULL || lens == NULL) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    } else {
        for (int i = 0; i < n; i++) {
            ids[i] = toks[i].ids;
            lens[i] = toks[i].n;
        }
        rc = emb_tokens(m, ids, lens, n, &o, vecs, e);
    }
    free(ids);
    free(lens);
    return rc;
}

long
gen_cost(int src_tokens, const struct gen_params *p)
{
    const long S = src_tokens, N = p->max_new;
    long rows = p->beam > 0 ? p->beam : p->n;
    long ranked = p->beam > 0 ? 1 : p->n;
    long cand = N + 2 < p->src_maxlen ? N + 2 : p->src_maxlen;
    /* token t of a row attends to S + t keys: sum over t = 1..N */
    long decode = rows * N + rows * N * (2 * S + N + 1) / (2 * GEN_COST_CONTEXT);

    if (p->beam > 0)
        decode += rows * N * N / GEN_COST_BEAM_COPY;
    return 2 * S + GEN_COST_STEP * N + decode + ranked * cand;
}

int
gen_paraphrase(const struct rf_model *m, const char *text, size_t len,
               const struct gen_params *p, int k, struct gen_paraphrases *out,
               struct rs_error *e)
{
    const int H = rf_model_config(m)->d_model;
    const struct tok_vocab *vocab = rf_model_vocab(m);
    struct tok_output *toks = NULL;    /* toks[0]: the source; then the candidates */
    struct gen_sequences seqs = { 0 };
    struct dec *d = NULL;
    char **texts = NULL;               /* texts[i]: candidate i, toks[i + 1] */
    struct ranked *r = NULL;
    float *vecs = NULL;
    int rc, n_texts = 0, n_toks = 1;

    memset(out, 0, sizeof(*out));
    if ((rc = gen_check_params(p, e)) != RS_OK)
        return rc;
    if (k < 1)
        return rs_error_set(e, RS_EINVAL, "k must be at least 1, not %d", k);
    if (p->beam > 0 && k > 1)
        return rs_error_set(e, RS_EINVAL, "beam search yields one paraphrase, the most likely "
                            "sequence (as bert4keras beam_search); ask for k = 1, or sample "
                            "(beam 0) for several");
    if (!rf_model_can_generate(m))
        return rs_error_set(e, RS_EINVAL, "this model has no MLM head, so it cannot generate");
    toks = calloc(1, sizeof(*toks));
    if (toks == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    /* the source as the model was trained: truncated to src_maxlen, the
     * same tokens the decoder starts from and the input's vector uses */
    if ((rc = tok_encode(vocab, text, len, p->src_maxlen, &toks[0], e)) != RS_OK)
        goto done;
    if (toks[0].n <= 2) {
        rc = rs_error_set(e, RS_EINVAL, "text is empty (no tokens)");
        goto done;
    }
    d = dec_new(m, toks[0].n, p->max_new, p->beam > 0 ? p->beam : p->n);
    if (d == NULL) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory for the decoder");
        goto done;
    }
    if ((rc = gen_run(m, d, toks[0].ids, toks[0].n, p, &seqs, e)) != RS_OK)
        goto done;
    dec_free(d);
    d = NULL;
    for (int i = 0; i < seqs.n; i++)
        out->n_generated += seqs.len[i];

    /* decode, de-duplicate, drop the input itself */
    texts = calloc((size_t)seqs.n + 1, sizeof(*texts));
    if (texts == NULL)
        goto oom;
    for (int i = 0; i < seqs.n; i++) {
        char *t = tok_decode(vocab, seqs.ids + seqs.off[i], seqs.len[i]);
        int dup = t != NULL && strlen(t) == len && memcmp(t, text, len) == 0;
        if (t == NULL)
            goto oom;
        for (int j = 0; j < n_texts && !dup; j++)
            dup = strcmp(texts[j], t) == 0;
        if (dup)
            free(t);
        else
            texts[n_texts++] = t;
    }
    out->n_candidates = n_texts;
    if (n_texts > 0) {
        struct tok_output *more = realloc(toks, ((size_t)n_texts + 1) * sizeof(*toks));
        if (more == NULL)
            goto oom;
        toks = more;
        memset(toks + 1, 0, (size_t)n_texts * sizeof(*toks));
        n_toks = n_texts + 1;
        vecs = malloc(((size_t)n_texts + 1) * (size_t)H * sizeof(float));
        r = malloc((size_t)n_texts * sizeof(*r));
        if (vecs == NULL || r == NULL)
            goto oom;
        for (int i = 0; i < n_texts; i++)
            if ((rc = tok_encode(vocab, texts[i], strlen(texts[i]), p->src_maxlen, &toks[i + 1],
                                 e)) != RS_OK)
                goto done;
        if ((rc = embed_tokens(m, toks, n_texts + 1, vecs, e)) != RS_OK)
            goto done;
        for (int i = 0; i < n_texts; i++)
            r[i] = (struct ranked){ texts[i], vec_dot(vecs, vecs + (size_t)(i + 1) * (size_t)H, H),
                                    i };
        qsort(r, (size_t)n_texts, sizeof(*r), by_rank);
        out->n = n_texts < k ? n_texts : k;
        out->items = calloc((size_t)out->n, sizeof(*out->items));
        if (out->items == NULL)
            goto oom;
        for (int i = 0; i < out->n; i++) {
            out->items[i].text = r[i].text;   /* ownership moves to out */
            out->items[i].score = r[i].score;
            texts[r[i].order] = NULL;
        }
    }
    rc = RS_OK;
    goto done;
oom:
    rc = rs_error_set(e, RS_ENOMEM, "out of memory");
done:
    if (rc != RS_OK)
        gen_paraphrases_free(out);
    for (int i = 0; texts != NULL && i < n_texts; i++)
        free(texts[i]);
    free(texts);
    free(r);
    free(vecs);
    dec_free(d);
    gen_sequences_free(&seqs);
    for (int i = 0; toks != NULL && i < n_toks; i++)
        tok_output_free(&toks[i]);
    free(toks);
    return rc;
}
