/*
 * decoder.c: incremental UniLM decoding over a key/value cache.
 *
 * Cache layout: the source's keys and values per layer, [L, src_len, H],
 * shared by every row; each row's generated keys and values live in a
 * slot, [L, slot, max_new, H].  Rows map to slots, so dropping finished
 * rows moves no data; only a row kept twice (beam search) copies a slot.
 *
 * One step for R live rows, per layer:
 *     qkv = x Wqkv + b, rotate q and k at position src_len + t
 *     store k, v in the rows' slots at t
 *     per head: S = [q K_src^T | q k_gen^T] / sqrt(d), masked, softmax
 *               o = P_src V_src (one sgemm for all rows) + sum_t p_t v_t
 *     then the output projection, LayerNorm, feed-forward as in the encoder.
 */
#include "decoder.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "roformer_impl.h"

struct dec {
    const struct rf_model *m;
    int max_src, max_new, max_rows;
    int src_len, gen_len, rows;
    struct rf_state *src_state;   /* for the source pass */
    int32_t *src_tok;    /* [max_src] */
    float *src_k, *src_v;         /* [L, max_src, H] after dec_start: [L, src_len, H] */
    float *gen_k, *gen_v;         /* [L, max_rows (slots), max_new, H] */
    int32_t *gen_tok;    /* [max_rows (slots), max_new] */
    int *slot;           /* [max_rows] row -> slot */
    int *slot_used;      /* [max_rows] */
    int *new_slot;       /* [max_rows] scratch for dec_select */
    float *x, *qkv, *att, *tmp, *h;   /* activations of the live rows */
    float *scores;       /* [n_scores, max_rows, max_src + max_new]: one per thread */
    int n_scores;
    float *probs;        /* [max_rows, V] */
    float *rope_sin, *rope_cos;   /* [max_src + max_new, d/2] */
    struct mm_ctx *mm;   /* engine scratch for the live rows (bf16, int8) */
};

struct dec *
dec_new(const struct rf_model *m, int max_src, int max_new, int max_rows)
{
    const struct rf_config *c = rf_model_config(m);
    const size_t H = (size_t)c->d_model, L = (size_t)c->n_layer, V = (size_t)c->n_vocab;
    const size_t d = H / (size_t)c->n_head, R = (size_t)max_rows, N = (size_t)max_new;
    struct dec *d_ = NULL;

    if (!rf_model_can_generate(m) || c->n_type < 2 || max_src < 1 || max_new < 1 ||
        max_rows < 1)
        return NULL;
    d_ = calloc(1, sizeof(*d_));
    if (d_ == NULL)
        return NULL;
    d_->m = m;
    d_->max_src = max_src;
    d_->max_new = max_new;
    d_->max_rows = max_rows;
    d_->src_state = rf_state_new(m, 1, max_src);
    d_->src_tok = malloc((size_t)max_src * sizeof(int32_t));
    d_->src_k = malloc(L * (size_t)max_src * H * sizeof(float));
    d_->src_v = malloc(L * (size_t)max_src * H * sizeof(float));
    d_->gen_k = malloc(L * R * N * H * sizeof(float));
    d_->gen_v = malloc(L * R * N * H * sizeof(float));
    d_->gen_tok = malloc(R * N * sizeof(int32_t));
    d_->slot = malloc(R * sizeof(int));
    d_->slot_used = malloc(R * sizeof(int));
    d_->new_slot = malloc(R * sizeof(int));
    d_->x = malloc(R * H * sizeof(float));
    d_->qkv = malloc(R * 3 * H * sizeof(float));
    d_->att = malloc(R * H * sizeof(float));
    d_->tmp = malloc(R * H * sizeof(float));
    d_->h = malloc(R * H * sizeof(float));
    d_->n_scores = mm_threads();
    d_->scores = malloc((size_t)d_->n_scores * R * ((size_t)max_src + N) * sizeof(float));
    d_->probs = malloc(R * V * sizeof(float));
    d_->rope_sin = malloc(((size_t)max_src + N) * d / 2 * sizeof(float));
    d_->rope_cos = malloc(((size_t)max_src + N) * d / 2 * sizeof(float));
    d_->mm = rf_mm_ctx_new(m, max_rows);
    if (!d_->mm || !d_->src_state || !d_->src_tok || !d_->src_k || !d_->src_v || !d_->gen_k ||
        !d_->gen_v || !d_->gen_tok || !d_->slot || !d_->slot_used || !d_->new_slot ||
        !d_->x || !d_->qkv || !d_->att || !d_->tmp || !d_->h || !d_->scores ||
        !d_->probs || !d_->rope_sin || !d_->rope_cos) {
        dec_free(d_);
        return NULL;
    }
    k_rope_tables(d_->rope_sin, d_->rope_cos, max_src + max_new, (int)d);
    return d_;
}

void
dec_free(struct dec *d)
{
    if (d == NULL)
        return;
    rf_state_free(d->src_state);
    free(d->src_tok);
    free(d->src_k);
    free(d->src_v);
    free(d->gen_k);
    free(d->gen_v);
    free(d->gen_tok);
    free(d->slot);
    free(d->slot_used);
    free(d->new_slot);
    free(d->x);
    free(d->qkv);
    free(d->att);
    free(d->tmp);
    free(d->h);
    free(d->scores);
    free(d->probs);
    free(d->rope_sin);
    free(d->rope_cos);
    mm_ctx_free(d->mm);
    free(d);
}

int dec_rows(const struct dec *d) { return d->rows; }
int dec_generated(const struct dec *d) { return d->gen_len; }
const float *dec_probs(const struct dec *d) { return d->probs; }

int
dec_start(struct dec *d, const int32_t *src, int src_len, struct rs_error *e)
{
    const struct rf_config *c = rf_model_config(d->m);
    const int H = c->d_model;
    int rc;

    if (src_len < 1 || src_len > d->max_src)
        return rs_error_set(e, RS_EINVAL, "source of %d tokens (capacity %d)", src_len,
                            d->max_src);
    rc = rf_forward(d->m, d->src_state, &src, NULL, &src_len, 1, d->src_k, d->src_v, e);
    if (rc != RS_OK)
        return rc;
    memcpy(d->src_tok, src, (size_t)src_len * sizeof(int32_t));
    d->src_len = src_len;
    d->gen_len = 0;
    d->rows = 1;
    d->slot[0] = 0;
    return rf_mlm_probs(d->m, d->mm,
                        rf_state_hidden(d->src_state, 0) + (size_t)(src_len - 1) * (size_t)H,
                        1, d->h, d->probs, e);
}

int
dec_fork(struct dec *d, int n, struct rs_error *e)
{
    const size_t V = (size_t)rf_model_config(d->m)->n_vocab;

    if (d->rows != 1 || d->gen_len != 0)
        return rs_error_set(e, RS_EINVAL, "fork needs a started decoder with one row");
    if (n < 1 || n > d->max_rows)
        return rs_error_set(e, RS_EINVAL, "%d rows (capacity %d)", n, d->max_rows);
    for (int r = 1; r < n; r++)
        memcpy(d->probs + (size_t)r * V, d->probs, V * sizeof(float));
    for (int r = 0; r < n; r++)
        d->slot[r] = r;
    d->rows = n;
    return RS_OK;
}

int
dec_select(struct dec *d, const int *keep, int n, struct rs_error *e)
{
    const struct rf_config *c = rf_model_config(d->m);
    const size_t H = (size_t)c->d_model, V = (size_t)c->n_vocab, N = (size_t)d->max_new;
    int free_slot = 0, increasing = 1;

    if (n < 0 || n > d->max_rows)
        return rs_error_set(e, RS_EINVAL, "%d rows (capacity %d)", n, d->max_rows);
    for (int i = 0; i < n; i++) {
        if (keep[i] < 0 || keep[i] >= d->rows)
            return rs_error_set(e, RS_EINVAL, "row %d does not exist", keep[i]);
        if (i > 0 && keep[i] <= keep[i - 1])
            increasing = 0;
    }
    memset(d->slot_used, 0, (size_t)d->max_rows * sizeof(int));
    /* first use of a slot keeps it; a second use needs a copy */
    for (int i = 0; i < n; i++) {
        int s = d->slot[keep[i]];
        if (!d->slot_used[s]) {
            d->slot_used[s] = 1;
            d->new_slot[i] = s;
        } else {
            d->new_slot[i] = -1 - s;
        }
    }
    for (int i = 0; i < n; i++) {
        int from;
        if (d->new_slot[i] >= 0)
            continue;
        from = -1 - d->new_slot[i];
        while (d->slot_used[free_slot])
            free_slot++;
        d->slot_used[free_slot] = 1;
        for (int l = 0; l < c->n_layer; l++) {
            size_t src = (((size_t)l * (size_t)d->max_rows + (size_t)from) * N) * H;
            size_t dst = (((size_t)l * (size_t)d->max_rows + (size_t)free_slot) * N) * H;
            memcpy(d->gen_k + dst, d->gen_k + src, (size_t)d->gen_len * H * sizeof(float));
            memcpy(d->gen_v + dst, d->gen_v + src, (size_t)d->gen_len * H * sizeof(float));
        }
        memcpy(d->gen_tok + (size_t)free_slot * N, d->gen_tok + (size_t)from * N,
               (size_t)d->gen_len * sizeof(int32_t));
        d->new_slot[i] = free_slot;
    }
    /* the probabilities follow their rows when keep is increasing (then
     * keep[i] >= i and moving them in place is safe) */
    for (int i = 0; increasing && i < n; i++)
        if (keep[i] != i)
            memcpy(d->probs + (size_t)i * V, d->probs + (size_t)keep[i] * V, V * sizeof(float));
    memcpy(d->slot, d->new_slot, (size_t)n * sizeof(int));
    d->rows = n;
    return RS_OK;
}

/* Attention of the R live rows, one new query each, at layer l; the heads
 * are spread over the threads, each with its own scores. */
static void
step_attention(struct dec *d, int l)
{
    const struct rf_config *c = rf_model_config(d->m);
    const int H = c->d_model, n_head = c->n_head, hd = H / n_head, ld = 3 * H;
    const int S = d->src_len, T = d->gen_len + 1, W = S + T, R = d->rows;
    const int threads = mm_threads();
    const size_t N = (size_t)d->max_new;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *sk = d->src_k + (size_t)l * (size_t)S * (size_t)H;
    const float *sv = d->src_v + (size_t)l * (size_t)S * (size_t)H;

#pragma omp parallel for num_threads(threads < d->n_scores ? threads : d->n_scores) \
    schedule(dynamic)
    for (int h = 0; h < n_head; h++) {
        float *scores = d->scores + (size_t)omp_get_thread_num() * (size_t)d->max_rows *
                                        (size_t)(d->max_src + d->max_new);
        /* scores against the shared source: (R, S) = Q_h (R, hd) K_src_h^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                    R, S, hd,
                    scale, d->qkv + (size_t)h * (size_t)hd, ld,
                    sk + (size_t)h * (size_t)hd, H,
                    0.0f, scores, W);
        for (int r = 0; r < R; r++) {
            float *sc = scores + (size_t)r * (size_t)W;
            const float *q = d->qkv + (size_t)r * (size_t)ld + (size_t)h * (size_t)hd;
            const size_t base = ((size_t)l * (size_t)d->max_rows + (size_t)d->slot[r]) * N;
            const int32_t *gt = d->gen_tok + (size_t)d->slot[r] * N;
            for (int j = 1; j < S; j++)
                if (d->src_tok[j] == 0)
                    sc[j] = -INFINITY;
            k_dots(q, d->gen_k + base * (size_t)H + (size_t)h * (size_t)hd, (size_t)H, T, hd,
                   scale, sc + S);
            for (int t = 0; t < T; t++)
                if (gt[t] == 0)
                    sc[S + t] = -INFINITY;
            k_softmax(sc, W);
        }
        /* output: (R, hd) = P_src (R, S) V_src_h, then the rows' own tokens */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                    R, hd, S,
                    1.0f, scores, W,
                    sv + (size_t)h * (size_t)hd, H,
                    0.0f, d->att + (size_t)h * (size_t)hd, H);
        for (int r = 0; r < R; r++) {
            const size_t base = ((size_t)l * (size_t)d->max_rows + (size_t)d->slot[r]) * N;
            k_mix(d->att + (size_t)r * (size_t)H + (size_t)h * (size_t)hd,
                  scores + (size_t)r * (size_t)W + S,
                  d->gen_v + base * (size_t)H + (size_t)h * (size_t)hd, (size_t)H, T, hd);
        }
    }
}

int
dec_step(struct dec *d, const int32_t *tokens, struct rs_error *e)
{
    const struct rf_model *m = d->m;
    const struct rf_config *c = rf_model_config(m);
    const int H = c->d_model, hd = H / c->n_head, R = d->rows;
    const int pos = d->src_len + d->gen_len, t = d->gen_len;
    const size_t N = (size_t)d->max_new;
    int rc;

    if (R < 1)
        return rs_error_set(e, RS_EINVAL, "no rows left");
    if (t >= d->max_new)
        return rs_error_set(e, RS_EINVAL, "more than %d generated tokens", d->max_new);
    if (c->arch == RF_ARCH_BERT && pos >= c->max_pos)
        return rs_error_set(e, RS_EINVAL, "position %d is past the model's %d positions",
                            pos, c->max_pos);
    for (int r = 0; r < R; r++)
        if (tokens[r] < 0 || tokens[r] >= c->n_vocab)
            return rs_error_set(e, RS_EINVAL, "token id %d outside the vocabulary", tokens[r]);

    /* embeddings: token + segment 1 (+ position) */
#pragma omp parallel for num_threads(mm_threads()) schedule(static)
    for (int r = 0; r < R; r++) {
        float *x = d->x + (size_t)r * (size_t)H;
        const float *te = m->tok_emb + (size_t)tokens[r] * (size_t)H, *se = m->seg_emb + H;
        d->gen_tok[(size_t)d->slot[r] * N + (size_t)t] = tokens[r];
        for (int j = 0; j < H; j++)
            x[j] = te[j] + se[j];
        if (m->pos_emb != NULL)
            for (int j = 0; j < H; j++)
                x[j] += m->pos_emb[(size_t)pos * (size_t)H + (size_t)j];
    }
    rf_layer_norm(d->x, NULL, R, H, m->emb_ln_g, m->emb_ln_b, c->ln_eps);

    for (int l = 0; l < c->n_layer; l++) {
        const struct rf_layer *L = &m->layers[l];
        if ((rc = rf_dense(&L->qkv, d->mm, d->x, R, d->qkv, e)))
            return rc;
#pragma omp parallel for num_threads(mm_threads()) schedule(static)
        for (int r = 0; r < R; r++) {
            float *qkv = d->qkv + (size_t)r * 3 * (size_t)H;
            size_t at = (((size_t)l * (size_t)d->max_rows + (size_t)d->slot[r]) * N + (size_t)t) * (size_t)H;
            if (c->arch == RF_ARCH_ROFORMER) {
                const float *sn = d->rope_sin + (size_t)pos * (size_t)(hd / 2);
                const float *cs = d->rope_cos + (size_t)pos * (size_t)(hd / 2);
                k_rope(qkv, H, hd, sn, cs);
                k_rope(qkv + H, H, hd, sn, cs);
            }
            memcpy(d->gen_k + at, qkv + H, (size_t)H * sizeof(float));
            memcpy(d->gen_v + at, qkv + 2 * H, (size_t)H * sizeof(float));
        }
        step_attention(d, l);
        if ((rc = rf_dense(&L->o, d->mm, d->att, R, d->tmp, e)))
            return rc;
        rf_layer_norm(d->x, d->tmp, R, H, L->ln1_g, L->ln1_b, c->ln_eps);
        if ((rc = rf_ffn(L, d->mm, d->x, R, d->tmp, e)))
            return rc;
        rf_layer_norm(d->x, d->tmp, R, H, L->ln2_g, L->ln2_b, c->ln_eps);
    }
    d->gen_len++;
    return rf_mlm_probs(m, d->mm, d->x, R, d->h, d->probs, e);
}

int
dec_recompute(const struct rf_model *m, const int32_t *src, int src_len,
              const int32_t *const *gen, int gen_len, int n, float *probs,
              struct rs_error *e)
{
    const int H = rf_model_config(m)->d_model, len = src_len + gen_len;
    struct rf_state *s = rf_state_new(m, n, len);
    int32_t *ids = malloc((size_t)n * (size_t)len * sizeof(int32_t));
    int32_t *segs = malloc((size_t)n * (size_t)len * sizeof(int32_t));
    const int32_t **idp = malloc((size_t)n * sizeof(*idp));
    const int32_t **segp = malloc((size_t)n * sizeof(*segp));
    int *lens = malloc((size_t)n * sizeof(int));
    float *h = malloc((size_t)H * sizeof(float));
    int rc = RS_OK;

    if (!s || !ids || !segs || !idp || !segp || !lens || !h) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int r = 0; r < n; r++) {
        int32_t *row = ids + (size_t)r * (size_t)len, *sg = segs + (size_t)r * (size_t)len;
        memcpy(row, src, (size_t)src_len * sizeof(int32_t));
        if (gen_len > 0)
            memcpy(row + src_len, gen[r], (size_t)gen_len * sizeof(int32_t));
        for (int i = 0; i < len; i++)
            sg[i] = i >= src_len;
        idp[r] = row;
        segp[r] = sg;
        lens[r] = len;
    }
    rc = rf_forward(m, s, idp, segp, lens, n, NULL, NULL, e);
    if (rc != RS_OK)
        goto done;
    for (int r = 0; r < n && rc == RS_OK; r++)
        rc = rf_mlm_probs(m, s->mm, rf_state_hidden(s, r) + (size_t)(len - 1) * (size_t)H, 1, h,
                          probs + (size_t)r * (size_t)rf_model_config(m)->n_vocab, e);
done:
    rf_state_free(s);
    free(ids);
    free(segs);
    free(idp);
    free(segp);
    free(lens);
    free(h);
    return rc;
}
