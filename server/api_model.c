/*
 * api_model.c: the routes that run the model: /v1/tokenize, /v1/embed,
 * /v1/similarity, /v1/generate and /v1/info, and embed(), the embedding
 * that every route of the API uses (openai.c's /v1/embeddings, the
 * collections' upserts and searches).
 *
 * Embedding goes through the batcher; generation takes a slot of app.h
 * and reserves its cost first.  Requests are checked with api_json.c.
 */
#include "api.h"
#include "api_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../model/embed.h"
#include "../model/generate.h"
#include "../model/tokenizer.h"
#include "../model/vec.h"
#include "metrics.h"

#ifndef ROSIM_VERSION
#define ROSIM_VERSION "0.1.0"
#endif

/* --- running the model ---------------------------------------------------- */

/* The encoder of the pipeline in rosimd: the batcher, which merges the
 * sequences of concurrent requests. */
static int
through_batcher(void *arg, const int32_t *const *ids, const int *lens, int n, float *out,
                struct rs_error *e)
{
    struct app *a = arg;

    return batcher_encode(a->batcher, ids, lens, n, out, a->conf->request_timeout, e);
}

int
embed(struct app *a, const struct emb_text *texts, int n, int normalize, struct embedded *out,
      struct api_reply *rp)
{
    const int H = rf_model_config(a->model)->d_model;
    struct emb_options o = emb_default_options();
    struct emb_usage u;
    struct rs_error e;
    int rc;

    o.max_length = a->conf->max_length;
    o.normalize = normalize;
    o.encode = through_batcher;
    o.encode_arg = a;
    memset(out, 0, sizeof(*out));
    out->vecs = malloc((size_t)n * (size_t)H * sizeof(float));
    rc = out->vecs == NULL ? rs_error_set(&e, RS_ENOMEM, "out of memory")
                           : emb_texts(a->model, texts, n, &o, out->vecs, &u, &e);
    if (rc != RS_OK) {
        free(out->vecs);
        out->vecs = NULL;
        error_reply(rp, &e);
        return -1;
    }
    out->tokens = u.tokens;
    out->truncated = u.truncated;
    return 0;
}

/* --- routes ---------------------------------------------------------------- */

void
api_tokenize(struct app *a, const struct api_request *rq, const struct route_args *arg,
             struct api_reply *rp)
{
    static const char *const allowed[] = { "texts", NULL };
    json_t *body = body_object(rq, rp, allowed), *tokens, *ids;
    struct emb_text *texts = NULL;
    struct tok_output out = { 0 };
    struct rs_error e;
    int n;

    (void)arg;
    if (body == NULL || texts_field(a, body, "texts", 0, &texts, &n, rp)) {
        json_decref(body);
        return;
    }
    tokens = json_array();
    ids = json_array();
    for (int i = 0; i < n; i++) {
        json_t *t = json_array(), *d = json_array();
        if (tok_encode(rf_model_vocab(a->model), texts[i].s, texts[i].len, 0, &out, &e) != RS_OK) {
            json_decref(t);
            json_decref(d);
            json_decref(tokens);
            json_decref(ids);
            error_reply(rp, &e);
            goto done;
        }
        for (int k = 0; k < out.n; k++) {
            json_array_append_new(t, json_string(out.pieces[k]));
            json_array_append_new(d, json_integer(out.ids[k]));
        }
        json_array_append_new(tokens, t);
        json_array_append_new(ids, d);
    }
    reply(rp, 200, json_pack("{s:o,s:o}", "tokens", tokens, "ids", ids));
done:
    tok_output_free(&out);
    free(texts);
    json_decref(body);
}

void
api_embed(struct app *a, const struct api_request *rq, const struct route_args *arg,
          struct api_reply *rp)
{
    static const char *const allowed[] = { "texts", "normalize", NULL };
    const int H = rf_model_config(a->model)->d_model;
    json_t *body = body_object(rq, rp, allowed), *list, *norm;
    struct emb_text *texts = NULL;
    struct embedded em;
    int n;

    (void)arg;
    if (body == NULL || texts_field(a, body, "texts", 0, &texts, &n, rp))
        goto done;
    norm = json_object_get(body, "normalize");
    if (norm != NULL && !json_is_boolean(norm)) {
        api_error(rp, 400, "invalid_type", "'normalize' must be true or false");
        goto done;
    }
    if (embed(a, texts, n, norm == NULL || json_is_true(norm), &em, rp))
        goto done;
    list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, vector_json(em.vecs + (size_t)i * (size_t)H, H));
    free(em.vecs);
    if (!complete(list, n, rp))
        goto done;
    reply(rp, 200, json_pack("{s:i,s:o,s:{s:I,s:i}}", "dim", H, "embeddings", list, "usage",
                             "tokens", (json_int_t)em.tokens, "truncated_texts", em.truncated));
done:
    free(texts);
    json_decref(body);
}

void
api_similarity(struct app *a, const struct api_request *rq, const struct route_args *arg,
               struct api_reply *rp)
{
    static const char *const allowed[] = { "source", "targets", NULL };
    const int H = rf_model_config(a->model)->d_model;
    json_t *body = body_object(rq, rp, allowed), *src, *scores;
    struct emb_text *texts = NULL, *all = NULL;
    struct embedded em;
    int n;

    (void)arg;
    if (body == NULL)
        goto done;
    src = json_object_get(body, "source");
    if (src == NULL) {
        api_error(rp, 400, "missing_field", "'source' is required");
        goto done;
    }
    if (check_text(a, src, "'source'", rp) || texts_field(a, body, "targets", 0, &texts, &n, rp))
        goto done;
    all = malloc(((size_t)n + 1) * sizeof(*all));
    if (all == NULL) {
        api_error(rp, 503, "busy", "out of memory");
        goto done;
    }
    all[0] = text_of(src);
    memcpy(all + 1, texts, (size_t)n * sizeof(*all));
    if (embed(a, all, n + 1, 1, &em, rp))
        goto done;
    scores = json_array();
    for (int i = 1; i <= n; i++)
        json_array_append_new(scores, json_real(vec_dot(em.vecs, em.vecs + (size_t)i * (size_t)H,
                                                        H)));
    free(em.vecs);
    if (complete(scores, n, rp))
        reply(rp, 200, json_pack("{s:o,s:{s:I,s:i}}", "scores", scores, "usage", "tokens",
                                 (json_int_t)em.tokens, "truncated_texts", em.truncated));
done:
    free(all);
    free(texts);
    json_decref(body);
}

static json_t *
paraphrase_json(struct emb_text text, const struct gen_paraphrases *out)
{
    json_t *list = json_array();
    for (int i = 0; i < out->n; i++)
        json_array_append_new(list, json_pack("{s:s,s:f}", "text", out->items[i].text,
                                              "score", (double)out->items[i].score));
    return json_pack("{s:s%,s:i,s:o}", "text", text.s, text.len, "candidates", out->n_candidates,
                     "paraphrases", list);
}

/* The seed of a generation that names none: from the kernel, so seedless
 * requests differ from each other and from those of earlier runs. */
static uint64_t
fresh_seed(void)
{
    uint64_t seed;
    struct timespec t;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        return seed;
    clock_gettime(CLOCK_REALTIME, &t);  /* entropy pool not ready yet */
    return (uint64_t)t.tv_sec * 1000000007u ^ (uint64_t)t.tv_nsec ^ (uint64_t)(uintptr_t)&seed;
}

/* x in the fewest digits that read back as x: 1.0000001, not 1. */
static const char *
shortest(double x, char buf[32])
{
    for (int digits = 1; digits <= 17; digits++)
        if (snprintf(buf, 32, "%.*g", digits, x) > 0 && strtod(buf, NULL) == x)
            break;
    return buf;
}

void
api_generate(struct app *a, const struct api_request *rq, const struct route_args *arg,
             struct api_reply *rp)
{
    static const char *const allowed[] = { "text", "texts", "n", "k", "top_p", "top_k",
                                           "temperature", "max_length", "seed", "beam", NULL };
    const struct conf *c = a->conf;
    json_t *body = body_object(rq, rp, allowed), *results = NULL;
    struct emb_text *texts = NULL;
    struct gen_params p = gen_default_params();
    struct app_watch watch = { rq->cancelled, rq->cancel_arg, { 0, 0 } };
    long long n = p.n, k = 5, top_k = 0, max_length = 64, seed = -1, beam = 0;
    double top_p = p.top_p, temperature = 1.0;
    char num[32];
    int count, single;
    long cost;

    (void)arg;
    if (body == NULL)
        goto done;
    single = json_object_get(body, "text") != NULL;
    if (single == (json_object_get(body, "texts") != NULL)) {
        api_error(rp, 400, "missing_field", "give either 'text' (a string) or 'texts' (a list)");
        goto done;
    }
    if (single ? (check_text(a, json_object_get(body, "text"), "'text'", rp) ||
                  texts_field(a, body, "text", 1, &texts, &count, rp))
               : texts_field(a, body, "texts", 0, &texts, &count, rp))
        goto done;
    if (max_length > c->max_new_tokens)
        max_length = c->max_new_tokens;
    if (int_field(body, "n", 1, c->max_n, &n, rp) || int_field(body, "k", 1, c->max_k, &k, rp) ||
        int_field(body, "top_k", 0, 1000000, &top_k, rp) ||
        int_field(body, "max_length", 1, c->max_new_tokens, &max_length, rp) ||
        int_field(body, "seed", 0, (1LL << 53), &seed, rp) ||
        int_field(body, "beam", 0, c->max_n, &beam, rp) ||
        num_field(body, "top_p", &top_p, rp) || num_field(body, "temperature", &temperature, rp))
        goto done;
    /* checked before they become floats (1e-46 would become 0) */
    if (!(top_p >= GEN_MIN_REAL && top_p <= 1)) {
        api_error(rp, 422, "out_of_range", "'top_p' must be in (0, 1] (at least %g), not %s",
                  GEN_MIN_REAL, shortest(top_p, num));
        goto done;
    }
    if (!(temperature >= GEN_MIN_REAL && temperature <= 100)) {
        api_error(rp, 422, "out_of_range", "'temperature' must be in (0, 100] (at least %g), "
                  "not %s", GEN_MIN_REAL, shortest(temperature, num));
        goto done;
    }
    if (!rf_model_can_generate(a->model)) {
        api_error(rp, 422, "cannot_generate", "the loaded model has no MLM head, so it cannot "
                  "generate; load a RoFormer-Sim checkpoint");
        goto done;
    }
    p.n = (int)n;
    p.top_k = (int)top_k;
    p.top_p = (float)top_p;
    p.temperature = (float)temperature;
    p.max_new = (int)max_length;
    p.beam = (int)beam;
    p.src_maxlen = c->max_length;
    p.cancel = app_watch_stop;    /* client gone, server stopping, deadline */
    p.cancel_arg = &watch;
    if (beam > 0 && json_object_get(body, "k") == NULL)
        k = 1;
    /* generation holds a slot and reserves its cost while it runs: source
     * tokens (after truncation), generated tokens and re-ranking */
    {
        struct tok_output tok = { 0 };
        struct rs_error e;
        int rc = RS_OK;
        cost = 0;
        for (int i = 0; i < count && rc == RS_OK; i++)
            if ((rc = tok_encode(rf_model_vocab(a->model), texts[i].s, texts[i].len,
                                 c->max_length, &tok, &e)) == RS_OK)
                cost += gen_cost(tok.n, &p);
        tok_output_free(&tok);
        if (rc != RS_OK) {
            error_reply(rp, &e);
            goto done;
        }
        rc = app_acquire(a, cost, &watch.deadline, &e);
        if (rc == RS_EINVAL) {
            api_error(rp, 422, "too_costly", "%s", e.msg);
            metrics_rejected("too_costly");
            goto done;
        }
        if (rc != RS_OK) {
            error_reply(rp, &e);
            goto done;
        }
    }
    results = json_array();
    for (int i = 0; i < count; i++) {
        struct gen_paraphrases out = { 0 };
        struct rs_error e;
        p.seed = seed >= 0 ? (uint64_t)seed + (uint64_t)i
                           : fresh_seed();
        if (gen_paraphrase(a->model, texts[i].s, texts[i].len, &p, (int)k, &out, &e) != RS_OK) {
            app_release(a, cost);
            json_decref(results);
            error_reply(rp, &e);
            goto done;
        }
        json_array_append_new(results, paraphrase_json(texts[i], &out));
        metrics_generated(out.n_generated);
        gen_paraphrases_free(&out);
    }
    app_release(a, cost);
    if (single)
        reply(rp, 200, json_incref(json_array_get(results, 0)));
    else
        reply(rp, 200, json_pack("{s:O}", "results", results));
    json_decref(results);
done:
    free(texts);
    json_decref(body);
}

void
api_info(struct app *a, const struct api_request *rq, const struct route_args *arg,
         struct api_reply *rp)
{
    const struct rf_config *c = rf_model_config(a->model);
    char **names;
    int n;
    json_t *list = json_array();

    (void)rq;
    (void)arg;
    if (store_names(a->store, &names, &n) == RS_OK) {
        for (int i = 0; i < n; i++)
            json_array_append_new(list, json_string(names[i]));
        store_names_free(names, n);
    }
    reply(rp, 200, json_pack(
        "{s:s,s:{s:s,s:i,s:i,s:i,s:i,s:i,s:s,s:s,s:b,s:b,s:s,s:s,s:s,s:s?},s:o}",
        "version", ROSIM_VERSION,
        "model", "arch", c->arch == RF_ARCH_BERT ? "bert" : "roformer", "layers", c->n_layer,
        "hidden", c->d_model, "heads", c->n_head, "vocab", c->n_vocab,
        "max_length", a->conf->max_length, "format", rf_model_format(a->model),
        "fingerprint", rf_model_fingerprint(a->model), "can_generate",
        rf_model_can_generate(a->model), "demo", c->demo,
        "precision", mm_precision_name(rf_model_precision(a->model)), "isa", mm_isa(),
        "kernel", rf_model_kernel(a->model),
        "warning", c->demo ? "this is a random demo model: its vectors and generations are "
                             "meaningless; set [model] dir to a real checkpoint" : NULL,
        "collections", list));
}
