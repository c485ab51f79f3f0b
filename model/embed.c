/*
 * embed.c: the embedding pipeline of embed.h: tokenize (truncated),
 * encode in batches (here or through the caller's encoder), check, and
 * normalize.
 */
#include "embed.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "vec.h"

struct emb_options
emb_default_options(void)
{
    return (struct emb_options){ .max_length = EMB_MAX_LENGTH, .pooler = RF_POOL_LINEAR,
                                 .normalize = 1, .batch = EMB_BATCH };
}

/* rf_encode over ids[0..n) in batches of o->batch, in o->state or in a
 * state sized for each batch. */
static int
encode_here(const struct rf_model *m, const struct emb_options *o, const int32_t *const *ids,
            const int *lens, int n, float *vecs, struct rs_error *e)
{
    const int H = rf_model_config(m)->d_model;
    int rc = RS_OK;

    for (int i = 0; i < n && rc == RS_OK; i += o->batch) {
        int k = n - i < o->batch ? n - i : o->batch, longest = 1;
        struct rf_state *s = o->state;
        for (int j = 0; j < k; j++)
            if (lens[i + j] > longest)
                longest = lens[i + j];
        if (s == NULL && (s = rf_state_new(m, k, longest)) == NULL)
            return rs_error_set(e, RS_ENOMEM, "out of memory");
        rc = rf_encode(m, s, ids + i, lens + i, k, o->pooler, vecs + (size_t)i * (size_t)H, e);
        if (s != o->state)
            rf_state_free(s);
    }
    return rc;
}

int
emb_tokens(const struct rf_model *m, const int32_t *const *ids, const int *lens, int n,
           const struct emb_options *o, float *vecs, struct rs_error *e)
{
    const int H = rf_model_config(m)->d_model;
    int rc = o->encode != NULL ? o->encode(o->encode_arg, ids, lens, n, vecs, e)
                               : encode_here(m, o, ids, lens, n, vecs, e);

    if (rc != RS_OK)
        return rc;
    if (!vec_finite(vecs, (size_t)n * (size_t)H))
        return rs_error_set(e, RS_EINTERNAL, "model produced non-finite values");
    for (int i = 0; o->normalize && i < n; i++)
        vec_normalize(vecs + (size_t)i * (size_t)H, H);
    return RS_OK;
}

int
emb_texts(const struct rf_model *m, const struct emb_text *texts, int n,
          const struct emb_options *o, float *vecs, struct emb_usage *u, struct rs_error *e)
{
    struct tok_output *tok = calloc((size_t)n, sizeof(*tok));
    const int32_t **ids = calloc((size_t)n, sizeof(*ids));
    int *lens = calloc((size_t)n, sizeof(*lens));
    struct emb_usage use = { 0, 0, -1 };
    int rc = RS_OK;

    if (tok == NULL || ids == NULL || lens == NULL) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n && rc == RS_OK; i++) {
        rc = tok_encode(rf_model_vocab(m), texts[i].s, texts[i].len, o->max_length, &tok[i], e);
        ids[i] = tok[i].ids;
        lens[i] = tok[i].n;
        use.tokens += tok[i].n;
        use.truncated += tok[i].truncated > 0;
        if (rc != RS_OK)
            use.failed = i;
    }
    if (rc == RS_OK)
        rc = emb_tokens(m, ids, lens, n, o, vecs, e);
done:
    if (u != NULL)
        *u = use;
    for (int i = 0; tok != NULL && i < n; i++)
        tok_output_free(&tok[i]);
    free(tok);
    free(ids);
    free(lens);
    return rc;
}
