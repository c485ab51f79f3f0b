/*
 * api.c: routes, request validation and the JSON of every reply.
 *
 * Validation happens here, before anything runs: a body must be a JSON
 * object (duplicate keys, invalid UTF-8 and non-finite or overflowing
 * numbers are refused by the parser; nesting is limited to MAX_DEPTH),
 * every field must be known and of the right type, and every count and
 * size is checked against [limits] in the configuration.  Strings may hold
 * U+0000 (\u0000 is valid JSON), so texts travel with their lengths;
 * collection names and document ids may not (they are refused with 422).
 * Error messages that echo input are made valid UTF-8 (see api_error).
 */
#include "api.h"
#include "api_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../model/generate.h"
#include "../model/tokenizer.h"
#include "../model/vec.h"
#include "metrics.h"
#include "openai.h"
#include "search_params.h"

#ifndef ROSIM_VERSION
#define ROSIM_VERSION "0.1.0"
#endif

#define MAX_DEPTH 32
#define MAX_MESSAGE 600      /* bytes of an error message */
#define MAX_ID_BYTES 256     /* a document id */

/* Length of the UTF-8 sequence at s[0..n) as JSON allows it (no overlong
 * forms, surrogates or code points past U+10FFFF); 0 when s starts none. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (n == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1fu;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

static int
utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if ((k = utf8_seq((const unsigned char *)s + i, n - i)) == 0)
            return 0;
    return 1;
}

/* src as valid UTF-8 in dst[0..cap): bytes that start no character become
 * "\xNN"; when it does not fit, it is cut between characters and ends
 * with "...". */
static void
utf8_echo(char *dst, size_t cap, const char *src)
{
    const size_t n = strlen(src);
    size_t o = 0;

    for (size_t i = 0, k; i < n; i += k) {
        char esc[5];
        const char *piece = src + i;
        size_t plen = k = utf8_seq((const unsigned char *)src + i, n - i);
        if (k == 0) {
            snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)src[i]);
            piece = esc;
            plen = 4;
            k = 1;
        }
        if (o + plen + 4 > cap) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(dst + o, piece, plen);
        o += plen;
    }
    dst[o] = '\0';
}

void
api_error(struct api_reply *rp, int status, const char *code, const char *fmt, ...)
{
    char msg[MAX_MESSAGE], *full = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&full, fmt, ap) < 0)
        full = NULL;
    va_end(ap);
    utf8_echo(msg, sizeof(msg), full != NULL ? full : "out of memory");
    free(full);
    json_decref(rp->json);
    rp->status = status;
    rp->json = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

/* The reply for a library error. */
static void
fail(struct api_reply *rp, const struct rs_error *e)
{
    switch (e->code) {
    case RS_EINVAL: api_error(rp, 422, "invalid", "%s", e->msg); break;
    case RS_ENOTFOUND: api_error(rp, 404, "not_found", "%s", e->msg); break;
    case RS_EEXIST: api_error(rp, 409, "conflict", "%s", e->msg); break;
    case RS_ENOSPC: api_error(rp, 507, "disk_full", "%s", e->msg); break;
    case RS_EBUSY:
        api_error(rp, 429, "busy", "%s", e->msg);
        rp->retry_after = 1;
        metrics_rejected("queue_full");
        break;
    case RS_ETIMEOUT:
        api_error(rp, 503, "timeout", "%s", e->msg);
        rp->retry_after = 1;
        metrics_rejected("timeout");
        break;
    case RS_ECANCELED:
        api_error(rp, 503, "cancelled", "%s", e->msg);
        rp->retry_after = 1;
        break;
    case RS_ENOMEM:
        api_error(rp, 503, "busy", "%s", e->msg);
        rp->retry_after = 1;
        break;
    default: api_error(rp, 500, "internal", "%s", e->msg); break;
    }
}

/* The reply for an error from a collection or the store: files are named
 * relative to the data directory, never by absolute path. */
static void
coll_fail(struct app *a, struct api_reply *rp, struct rs_error *e)
{
    store_scrub(a->store, e->msg);
    if (e->code == RS_EIO)
        api_error(rp, 500, "storage_error", "%s", e->msg);
    else
        fail(rp, e);
}

void
reply(struct api_reply *rp, int status, json_t *j)
{
    json_decref(rp->json);
    rp->status = status;
    rp->json = j;
}

/* --- request bodies ------------------------------------------------------- */

static int
depth(const json_t *j)
{
    int d = 0;
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, key, v) {
            int x = depth(v);
            if (x > d)
                d = x;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            int x = depth(v);
            if (x > d)
                d = x;
        }
        return d + 1;
    }
    return 0;
}

/* Parse the body as a JSON object whose keys are all in allowed
 * (NULL-terminated).  Returns the object, or NULL with rp filled. */
json_t *
body_object(const struct api_request *rq, struct api_reply *rp, const char *const allowed[])
{
    json_error_t je;
    json_t *j;
    const char *key;
    json_t *v;

    if (rq->content_type == NULL ||
        strncasecmp(rq->content_type, "application/json", 16) != 0 ||
        (rq->content_type[16] != '\0' && rq->content_type[16] != ';' &&
         rq->content_type[16] != ' ')) {
        api_error(rp, 415, "unsupported_media_type",
                  "the body must be JSON, sent with Content-Type: application/json");
        return NULL;
    }
    j = json_loadb(rq->body ? rq->body : "", rq->body_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                   &je);
    if (j == NULL) {
        api_error(rp, 400, "invalid_json", "the body is not valid JSON: %s (line %d, column %d)",
                  je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_error(rp, 400, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    if (depth(j) > MAX_DEPTH) {
        json_decref(j);
        api_error(rp, 400, "invalid_json", "the body is nested deeper than %d levels", MAX_DEPTH);
        return NULL;
    }
    json_object_foreach(j, key, v) {
        int ok = 0;
        for (int i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            api_error(rp, 400, "unknown_field", "unknown field '%s'", key);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* An optional integer field in [lo, hi]; 0 on success. */
static int
int_field(json_t *o, const char *key, long long lo, long long hi, long long *out,
          struct api_reply *rp)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        api_error(rp, 400, "invalid_type", "'%s' must be an integer", key);
        return -1;
    }
    if (json_integer_value(v) < lo || json_integer_value(v) > hi) {
        api_error(rp, 422, "out_of_range", "'%s' must be from %lld to %lld, not %lld", key, lo,
                  hi, (long long)json_integer_value(v));
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* An optional number field; range checked by the caller. */
static int
num_field(json_t *o, const char *key, double *out, struct api_reply *rp)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v)) {
        api_error(rp, 400, "invalid_type", "'%s' must be a number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int
check_text(const struct app *a, json_t *t, const char *what, struct api_reply *rp)
{
    if (!json_is_string(t)) {
        api_error(rp, 400, "invalid_type", "%s must be a string", what);
        return -1;
    }
    if (json_string_length(t) > a->conf->max_text_bytes) {
        api_error(rp, 413, "text_too_long", "%s has %zu bytes; the limit is %zu", what,
                  json_string_length(t), a->conf->max_text_bytes);
        return -1;
    }
    return 0;
}

struct text
text_of(json_t *str)
{
    return (struct text){ json_string_value(str), json_string_length(str) };
}

/* A required list of 1..max_texts strings (or, with allow_string, one
 * string).  Fills texts (malloc'd, borrowing from o) and n. */
int
texts_field(const struct app *a, json_t *o, const char *key, int allow_string,
            struct text **texts, int *n, struct api_reply *rp)
{
    json_t *v = json_object_get(o, key), *t;
    size_t i;

    if (v == NULL) {
        api_error(rp, 400, "missing_field", "'%s' is required", key);
        return -1;
    }
    if (allow_string && json_is_string(v)) {
        if (check_text(a, v, key, rp))
            return -1;
        *texts = malloc(sizeof(**texts));
        if (*texts == NULL)
            return api_error(rp, 503, "busy", "out of memory"), -1;
        (*texts)[0] = text_of(v);
        *n = 1;
        return 0;
    }
    if (!json_is_array(v)) {
        api_error(rp, 400, "invalid_type", "'%s' must be %s", key,
                  allow_string ? "a string or a list of strings" : "a list of strings");
        return -1;
    }
    if (json_array_size(v) == 0) {
        api_error(rp, 422, "empty", "'%s' is empty", key);
        return -1;
    }
    if (json_array_size(v) > (size_t)a->conf->max_texts) {
        api_error(rp, 413, "too_many_texts", "'%s' has %zu texts; the limit is %d", key,
                  json_array_size(v), a->conf->max_texts);
        return -1;
    }
    *texts = malloc(json_array_size(v) * sizeof(**texts));
    if (*texts == NULL)
        return api_error(rp, 503, "busy", "out of memory"), -1;
    json_array_foreach(v, i, t) {
        char what[64];
        snprintf(what, sizeof(what), "'%s'[%zu]", key, i);
        if (check_text(a, t, what, rp)) {
            free(*texts);
            *texts = NULL;
            return -1;
        }
        (*texts)[i] = text_of(t);
    }
    *n = (int)json_array_size(v);
    return 0;
}

/* --- running the model ---------------------------------------------------- */

/* Embed texts (truncated to max_length the bert4keras way) through the
 * batcher; normalized when asked. */
int
embed(struct app *a, const struct text *texts, int n, int normalize, struct embedded *out,
      struct api_reply *rp)
{
    const int H = rf_model_config(a->model)->d_model, maxlen = a->conf->max_length;
    struct tok_output *tok = calloc((size_t)n, sizeof(*tok));
    const int32_t **ids = malloc((size_t)n * sizeof(*ids));
    int *lens = malloc((size_t)n * sizeof(*lens));
    struct rs_error e;
    int rc = RS_OK;

    memset(out, 0, sizeof(*out));
    out->vecs = malloc((size_t)n * (size_t)H * sizeof(float));
    if (tok == NULL || ids == NULL || lens == NULL || out->vecs == NULL) {
        rc = rs_error_set(&e, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n && rc == RS_OK; i++) {
        rc = tok_encode(rf_model_vocab(a->model), texts[i].s, texts[i].len, maxlen, &tok[i], &e);
        out->truncated += tok[i].truncated > 0;
        ids[i] = tok[i].ids;
        lens[i] = tok[i].n;
        out->tokens += tok[i].n;
    }
    if (rc == RS_OK)
        rc = batcher_encode(a->batcher, ids, lens, n, out->vecs, a->conf->request_timeout, &e);
    if (rc == RS_OK && !vec_finite(out->vecs, (size_t)n * (size_t)H))
        rc = rs_error_set(&e, RS_EINTERNAL, "model produced non-finite values");
done:
    for (int i = 0; tok != NULL && i < n; i++)
        tok_output_free(&tok[i]);
    free(tok);
    free(ids);
    free(lens);
    if (rc != RS_OK) {
        free(out->vecs);
        out->vecs = NULL;
        fail(rp, &e);
        return -1;
    }
    for (int i = 0; normalize && i < n; i++)
        vec_normalize(out->vecs + (size_t)i * (size_t)H, H);
    return 0;
}

/* The whole vector or NULL (out of memory): never a shorter array. */
json_t *
vector_json(const float *v, int n)
{
    json_t *arr = json_array();
    for (int i = 0; arr != NULL && i < n; i++) {
        if (json_array_append_new(arr, json_real(v[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* Whether list holds all n items it was built with; if not (a value jansson
 * refused, or memory), list is released and the reply is an error: a client
 * never gets a shorter array. */
int
complete(json_t *list, int n, struct api_reply *rp)
{
    if (list != NULL && json_array_size(list) == (size_t)n)
        return 1;
    json_decref(list);
    api_error(rp, 500, "internal", "model produced non-finite values or memory ran out");
    return 0;
}

/* --- routes --------------------------------------------------------------- */

static void
route_tokenize(struct app *a, const struct api_request *rq, struct api_reply *rp)
{
    static const char *const allowed[] = { "texts", NULL };
    json_t *body = body_object(rq, rp, allowed), *tokens, *ids;
    struct text *texts = NULL;
    struct tok_output out = { 0 };
    struct rs_error e;
    int n;

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
            fail(rp, &e);
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

static void
route_embed(struct app *a, const struct api_request *rq, struct api_reply *rp)
{
    static const char *const allowed[] = { "texts", "normalize", NULL };
    const int H = rf_model_config(a->model)->d_model;
    json_t *body = body_object(rq, rp, allowed), *list, *norm;
    struct text *texts = NULL;
    struct embedded em;
    int n;

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

static void
route_similarity(struct app *a, const struct api_request *rq, struct api_reply *rp)
{
    static const char *const allowed[] = { "source", "targets", NULL };
    const int H = rf_model_config(a->model)->d_model;
    json_t *body = body_object(rq, rp, allowed), *src, *scores;
    struct text *texts = NULL, *all = NULL;
    struct embedded em;
    int n;

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
paraphrase_json(struct text text, const struct gen_paraphrases *out)
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

static void
route_generate(struct app *a, const struct api_request *rq, struct api_reply *rp)
{
    static const char *const allowed[] = { "text", "texts", "n", "k", "top_p", "top_k",
                                           "temperature", "max_length", "seed", "beam", NULL };
    const struct conf *c = a->conf;
    json_t *body = body_object(rq, rp, allowed), *results = NULL;
    struct text *texts = NULL;
    struct gen_params p = gen_default_params();
    long long n = p.n, k = 5, top_k = 0, max_length = 64, seed = -1, beam = 0;
    double top_p = p.top_p, temperature = 1.0;
    int count, single;
    long cost;

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
    if (!(top_p > 0 && top_p <= 1)) {
        api_error(rp, 422, "out_of_range", "'top_p' must be in (0, 1], not %g", top_p);
        goto done;
    }
    if (!(temperature > 0 && temperature <= 100)) {
        api_error(rp, 422, "out_of_range", "'temperature' must be in (0, 100], not %g", temperature);
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
    p.cancel = rq->cancelled;
    p.cancel_arg = rq->cancel_arg;
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
            fail(rp, &e);
            goto done;
        }
        rc = app_acquire(a, cost, &e);
        if (rc == RS_EINVAL) {
            api_error(rp, 422, "too_costly", "%s", e.msg);
            metrics_rejected("too_costly");
            goto done;
        }
        if (rc != RS_OK) {
            fail(rp, &e);
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
            fail(rp, &e);
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

/* --- collections ---------------------------------------------------------- */

static json_t *
coll_json(const char *name, struct coll *c)
{
    struct coll_stats st;

    json_t *j;

    coll_get_stats(c, &st);
    j = json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:b,s:I}", "name", name, "state", "open",
                  "index", st.factory,
                  "dim", st.dim, "documents", (json_int_t)st.documents, "index_vectors",
                  (json_int_t)st.index_vectors, "trained", st.trained, "seq",
                  (json_int_t)st.seq);
    sp_effort_json(j, &st.effort);
    return j;
}

/* A failed collection: its name, state and reason (no absolute paths). */
static json_t *
failed_json(const struct store_info *f)
{
    return json_pack("{s:s,s:s,s:s}", "name", f->name, "state", "failed", "reason", f->reason);
}

static void
route_collections_list(struct app *a, struct api_reply *rp)
{
    struct store_info *info;
    int n;
    json_t *list;

    if (store_list(a->store, &info, &n) != RS_OK) {
        api_error(rp, 503, "busy", "out of memory");
        return;
    }
    list = json_array();
    for (int i = 0; i < n; i++) {
        struct coll *c = info[i].failed ? NULL : store_acquire(a->store, info[i].name);
        if (c != NULL) {
            json_array_append_new(list, coll_json(info[i].name, c));
            store_release(a->store, c);
        } else if (info[i].failed) {
            json_array_append_new(list, failed_json(&info[i]));
        }
    }
    free(info);
    reply(rp, 200, json_pack("{s:o}", "collections", list));
}

/* /readyz: ready once loaded; failed collections and an unwritable data
 * directory are listed but do not make the server unready (the rest is
 * served).  Only names: this route needs no key, the reasons are in
 * /v1/collections and the log. */
static void
route_readyz(struct app *a, struct api_reply *rp)
{
    struct store_info *info;
    int n, open = 0;
    json_t *failed = json_array(), *j;
    const char *problem = store_problem(a->store);

    if (store_list(a->store, &info, &n) != RS_OK) {
        json_decref(failed);
        api_error(rp, 503, "busy", "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (info[i].failed)
            json_array_append_new(failed, json_string(info[i].name));
        else
            open++;
    }
    free(info);
    j = json_pack("{s:s,s:i,s:o,s:b}", "status", "ready", "collections_open", open,
                  "collections_failed", failed, "data_dir_writable", problem == NULL);
    if (j != NULL && problem != NULL)
        json_object_set_new(j, "warning", json_string(problem));
    reply(rp, 200, j);
}

static void
route_collection_put(struct app *a, const struct api_request *rq, const char *name,
                     struct api_reply *rp)
{
    static const char *const allowed[] = { "index", "ef_construction", "ef_search", "nprobe",
                                           NULL };
    json_t *body = NULL, *idx;
    const char *factory = NULL;
    struct coll_effort effort = { 0 };
    struct rs_error e;
    struct coll *c;
    int created;

    if (rq->body_len > 0) {
        if ((body = body_object(rq, rp, allowed)) == NULL)
            return;
        idx = json_object_get(body, "index");
        if (idx != NULL && !json_is_string(idx)) {
            api_error(rp, 400, "invalid_type", "'index' must be a string such as \"Flat\"");
            goto done;
        }
        if (idx != NULL) {
            factory = json_string_value(idx);
            if (strlen(factory) == 0 || strlen(factory) > 100) {
                api_error(rp, 422, "invalid", "'index' must be a FAISS index factory string");
                goto done;
            }
        }
        if (sp_effort_parse(body, 1, &effort, rp))
            goto done;
    }
    if (store_create_effort(a->store, name, factory, &effort, &created, &e) != RS_OK) {
        coll_fail(a, rp, &e);
        goto done;
    }
    c = store_acquire(a->store, name);
    if (c == NULL) {
        api_error(rp, 409, "conflict", "collection '%s' was dropped meanwhile", name);
        goto done;
    }
    reply(rp, created ? 201 : 200, coll_json(name, c));
    store_release(a->store, c);
done:
    json_decref(body);
}

/* A reference to the named collection, or NULL with 404 (none) or 409
 * (it failed to open: the reason is in the message). */
static struct coll *
find_collection(struct app *a, const char *name, struct api_reply *rp)
{
    struct coll *c;
    struct rs_error e;
    int rc = store_get(a->store, name, &c, &e);

    if (rc == RS_EEXIST)
        api_error(rp, 409, "collection_unavailable", "%s", e.msg);
    else if (rc != RS_OK)
        coll_fail(a, rp, &e);
    return c;
}

/* Document ids are 1 to MAX_ID_BYTES bytes of UTF-8 without U+0000 (they
 * are keys in SQLite and FAISS's id map, and path segments).  1, or 0 with
 * a 422 in rp; what names the id in the message. */
static int
valid_id(const char *id, size_t len, const char *what, struct api_reply *rp)
{
    if (len == 0 || len > MAX_ID_BYTES) {
        api_error(rp, 422, "invalid_id", "%s has %zu bytes; a document id has 1 to %d", what,
                  len, MAX_ID_BYTES);
        return 0;
    }
    if (memchr(id, '\0', len) != NULL) {
        api_error(rp, 422, "invalid_id", "%s contains U+0000, which document ids cannot hold",
                  what);
        return 0;
    }
    if (!utf8_valid(id, len)) {
        api_error(rp, 422, "invalid_id", "%s is not valid UTF-8", what);
        return 0;
    }
    return 1;
}

static void
route_documents_upsert(struct app *a, const struct api_request *rq, const char *name,
                       struct api_reply *rp)
{
    static const char *const allowed[] = { "documents", NULL };
    static const char *const doc_keys[] = { "id", "text", "meta", "vector" };
    const int H = rf_model_config(a->model)->d_model;
    json_t *body = body_object(rq, rp, allowed), *docs, *d;
    struct text *texts = NULL;
    size_t *to_embed = NULL, n_embed = 0;   /* documents without a vector */
    float *given = NULL;                    /* (n, H): vectors of the request */
    char **metas = NULL;
    struct coll_doc *cd = NULL;
    struct embedded em = { 0 };
    struct coll *c = NULL;
    struct rs_error e;
    size_t i, n = 0;

    if (body == NULL)
        return;
    docs = json_object_get(body, "documents");
    if (!json_is_array(docs)) {
        api_error(rp, 400, docs ? "invalid_type" : "missing_field",
                  "'documents' must be a list of {\"id\", \"text\", \"meta\"}");
        goto done;
    }
    n = json_array_size(docs);
    if (n == 0) {
        api_error(rp, 422, "empty", "'documents' is empty");
        goto done;
    }
    if (n > (size_t)a->conf->max_documents) {
        api_error(rp, 413, "too_many_documents", "%zu documents; the limit is %d per request",
                  n, a->conf->max_documents);
        goto done;
    }
    texts = calloc(n, sizeof(*texts));
    metas = calloc(n, sizeof(*metas));
    cd = calloc(n, sizeof(*cd));
    to_embed = calloc(n, sizeof(*to_embed));
    given = malloc(n * (size_t)H * sizeof(float));
    if (texts == NULL || metas == NULL || cd == NULL || to_embed == NULL || given == NULL) {
        api_error(rp, 503, "busy", "out of memory");
        goto done;
    }
    json_array_foreach(docs, i, d) {
        json_t *id = json_object_get(d, "id"), *text = json_object_get(d, "text");
        json_t *meta = json_object_get(d, "meta"), *vec = json_object_get(d, "vector");
        const char *key;
        json_t *v;
        char what[64];
        if (!json_is_object(d)) {
            api_error(rp, 400, "invalid_type", "documents[%zu] must be an object", i);
            goto done;
        }
        json_object_foreach(d, key, v) {
            int ok = 0;
            for (int k = 0; k < 4; k++)
                ok |= strcmp(key, doc_keys[k]) == 0;
            if (!ok) {
                api_error(rp, 400, "unknown_field", "documents[%zu]: unknown field '%s'", i, key);
                goto done;
            }
        }
        if (id == NULL) {
            api_error(rp, 400, "missing_field", "documents[%zu].id is required", i);
            goto done;
        }
        if (!json_is_string(id)) {
            api_error(rp, 400, "invalid_type", "documents[%zu].id must be a string", i);
            goto done;
        }
        snprintf(what, sizeof(what), "documents[%zu].id", i);
        if (!valid_id(json_string_value(id), json_string_length(id), what, rp))
            goto done;
        snprintf(what, sizeof(what), "documents[%zu].text", i);
        if (text == NULL && vec == NULL) {
            api_error(rp, 400, "missing_field", "%s or .vector is required", what);
            goto done;
        }
        if (text != NULL && check_text(a, text, what, rp))
            goto done;
        snprintf(what, sizeof(what), "documents[%zu].vector", i);
        if (vec != NULL && sp_vector(vec, H, given + i * (size_t)H, what, rp))
            goto done;
        if (meta != NULL && !json_is_null(meta) && !json_is_object(meta)) {
            api_error(rp, 400, "invalid_type", "documents[%zu].meta must be an object", i);
            goto done;
        }
        texts[i] = text != NULL ? text_of(text) : (struct text){ "", 0 };
        if (vec != NULL)
            cd[i].vec = given + i * (size_t)H;
        else
            to_embed[n_embed++] = i;
        metas[i] = meta && json_is_object(meta) ? json_dumps(meta, JSON_COMPACT) : strdup("{}");
        if (metas[i] == NULL) {
            api_error(rp, 503, "busy", "out of memory");
            goto done;
        }
        cd[i].id = json_string_value(id);
        cd[i].text = texts[i].s;
        cd[i].text_len = texts[i].len;
        cd[i].meta = metas[i];
    }
    if ((c = find_collection(a, name, rp)) == NULL)
        goto done;
    for (i = 0; i < n_embed; i++)   /* in place: to_embed[i] >= i */
        texts[i] = texts[to_embed[i]];
    if (n_embed > 0 && embed(a, texts, (int)n_embed, 1, &em, rp))
        goto done;
    for (i = 0; i < n_embed; i++)
        cd[to_embed[i]].vec = em.vecs + i * (size_t)H;
    if (coll_upsert(c, cd, (int)n, &e) != RS_OK) {
        coll_fail(a, rp, &e);
        goto done;
    }
    reply(rp, 200, json_pack("{s:I}", "upserted", (json_int_t)n));
done:
    store_release(a->store, c);
    for (i = 0; metas != NULL && i < n; i++)
        free(metas[i]);
    free(metas);
    free(texts);
    free(cd);
    free(to_embed);
    free(given);
    free(em.vecs);
    json_decref(body);
}

static json_t *
hit_json(const struct coll_hit *h, int with_score)
{
    json_error_t je;
    json_t *meta = json_loads(h->meta, JSON_ALLOW_NUL, &je);

    if (meta == NULL)
        meta = json_object();
    if (with_score)
        return json_pack("{s:s,s:f,s:s%,s:o}", "id", h->id, "score", (double)h->score, "text",
                         h->text, h->text_len, "meta", meta);
    return json_pack("{s:s,s:s%,s:o}", "id", h->id, "text", h->text, h->text_len, "meta", meta);
}

static void
route_search(struct app *a, const struct api_request *rq, const char *name, struct api_reply *rp)
{
    static const char *const allowed[] = { "text", "vector", "k", "min_score", "filter",
                                           "ef_search", "nprobe", NULL };
    const int H = rf_model_config(a->model)->d_model;
    json_t *body = body_object(rq, rp, allowed), *text, *vec, *list;
    long long k = 10;
    double min_score = -1.0;
    float *q = NULL;
    struct sp_filter filter = { 0 };
    struct coll_effort effort;
    struct coll_query cq;
    struct embedded em = { 0 };
    struct coll *c = NULL;
    struct coll_hit *hits = NULL;
    struct rs_error e;
    int n = 0;

    if (body == NULL)
        return;
    text = json_object_get(body, "text");
    vec = json_object_get(body, "vector");
    if ((text == NULL) == (vec == NULL)) {
        api_error(rp, 400, "missing_field", "give either 'text' or 'vector'");
        goto done;
    }
    if (int_field(body, "k", 1, a->conf->max_search_k, &k, rp) ||
        num_field(body, "min_score", &min_score, rp) || sp_filter_parse(body, &filter, rp) ||
        sp_effort_parse(body, 0, &effort, rp))
        goto done;
    if (text != NULL && check_text(a, text, "'text'", rp))
        goto done;
    if (vec != NULL) {
        if ((q = malloc((size_t)H * sizeof(float))) == NULL) {
            api_error(rp, 503, "busy", "out of memory");
            goto done;
        }
        if (sp_vector(vec, H, q, "'vector'", rp))
            goto done;
    }
    if ((c = find_collection(a, name, rp)) == NULL)
        goto done;
    if (text != NULL) {
        struct text t = text_of(text);
        if (embed(a, &t, 1, 1, &em, rp))
            goto done;
    }
    cq = (struct coll_query){ (int)k, (float)min_score, sp_filter_get(&filter), effort.ef_search,
                              effort.nprobe };
    if (coll_search_q(c, q ? q : em.vecs, &cq, &hits, &n, &e) != RS_OK) {
        coll_fail(a, rp, &e);
        goto done;
    }
    list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, hit_json(&hits[i], 1));
    reply(rp, 200, json_pack("{s:o}", "hits", list));
done:
    coll_hits_free(hits, n);
    store_release(a->store, c);
    free(q);
    free(em.vecs);
    sp_filter_free(&filter);
    json_decref(body);
}

/* --- routing -------------------------------------------------------------- */

static int
hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* Split the raw path into percent-decoded segments (in buf, each also
 * NUL-terminated; len[i] counts a decoded %00, strlen does not).  -1 when
 * an escape is malformed or there are too many segments. */
int
split_path(const char *path, char *buf, size_t buf_len, char *seg[], size_t len[], int *n)
{
    size_t o = 0;

    *n = 0;
    if (path[0] != '/')
        return -1;
    for (const char *p = path + 1;;) {
        if (*n == MAX_SEGMENTS)
            return -1;
        seg[(*n)++] = buf + o;
        while (*p != '\0' && *p != '/') {
            char ch = *p++;
            if (ch == '%') {
                int hi = hexval(p[0]), lo = hi < 0 ? -1 : hexval(p[1]);
                if (lo < 0)
                    return -1;
                ch = (char)(hi * 16 + lo);
                p += 2;
            }
            if (o + 2 >= buf_len)
                return -1;
            buf[o++] = ch;
        }
        len[*n - 1] = (size_t)(buf + o - seg[*n - 1]);
        buf[o++] = '\0';
        if (*p == '\0')
            break;
        p++;
    }
    /* a trailing slash leaves an empty last segment: ignore it */
    if (*n > 1 && len[*n - 1] == 0)
        (*n)--;
    return 0;
}

int
method_is(const struct api_request *rq, const char *m, struct api_reply *rp, const char *allow)
{
    if (strcmp(rq->method, m) == 0 || (strcmp(m, "GET") == 0 && strcmp(rq->method, "HEAD") == 0))
        return 1;
    if (rp->status == 0) {
        api_error(rp, 405, "method_not_allowed", "%s is not allowed here; use %s", rq->method,
                  allow);
        rp->allow = allow;
    }
    return 0;
}

static void
route_info(struct app *a, struct api_reply *rp)
{
    const struct rf_config *c = rf_model_config(a->model);
    char **names;
    int n;
    json_t *list = json_array();

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

void
api_handle(struct app *a, const struct api_request *rq, struct api_reply *rp)
{
    char buf[2048], *seg[MAX_SEGMENTS];
    size_t len[MAX_SEGMENTS];
    int n;

    rp->status = 0;
    rp->json = NULL;
    rp->retry_after = 0;
    rp->allow = NULL;
    rp->route = "other";
    if (strlen(rq->path) >= sizeof(buf)) {
        api_error(rp, 414, "uri_too_long", "the path has %zu bytes; the limit is %zu",
                  strlen(rq->path), sizeof(buf) - 1);
        return;
    }
    if (split_path(rq->path, buf, sizeof(buf), seg, len, &n) != 0) {
        api_error(rp, 400, "invalid_path", "the path is malformed");
        return;
    }
    if (n == 1 && strcmp(seg[0], "healthz") == 0) {
        rp->route = "/healthz";
        if (method_is(rq, "GET", rp, "GET"))
            reply(rp, 200, json_pack("{s:s}", "status", "ok"));
        return;
    }
    if (n == 1 && strcmp(seg[0], "readyz") == 0) {
        rp->route = "/readyz";
        if (!method_is(rq, "GET", rp, "GET"))
            return;
        if (atomic_load(&a->ready)) {
            route_readyz(a, rp);
        } else {
            api_error(rp, 503, "not_ready", "the model and collections are still loading");
            rp->retry_after = 1;
        }
        return;
    }
    if (n < 2 || strcmp(seg[0], "v1") != 0) {
        api_error(rp, 404, "not_found", "no route %s", rq->path);
        return;
    }
    if (openai_handle(a, rq, seg, n, rp))
        return;
    if (!atomic_load(&a->ready)) {
        api_error(rp, 503, "not_ready", "the model and collections are still loading");
        rp->retry_after = 1;
        return;
    }
    if (n == 2 && strcmp(seg[1], "info") == 0) {
        rp->route = "/v1/info";
        if (method_is(rq, "GET", rp, "GET"))
            route_info(a, rp);
    } else if (n == 2 && strcmp(seg[1], "tokenize") == 0) {
        rp->route = "/v1/tokenize";
        if (method_is(rq, "POST", rp, "POST"))
            route_tokenize(a, rq, rp);
    } else if (n == 2 && strcmp(seg[1], "embed") == 0) {
        rp->route = "/v1/embed";
        if (method_is(rq, "POST", rp, "POST"))
            route_embed(a, rq, rp);
    } else if (n == 2 && strcmp(seg[1], "similarity") == 0) {
        rp->route = "/v1/similarity";
        if (method_is(rq, "POST", rp, "POST"))
            route_similarity(a, rq, rp);
    } else if (n == 2 && strcmp(seg[1], "generate") == 0) {
        rp->route = "/v1/generate";
        if (method_is(rq, "POST", rp, "POST"))
            route_generate(a, rq, rp);
    } else if (n == 2 && strcmp(seg[1], "collections") == 0) {
        rp->route = "/v1/collections";
        if (method_is(rq, "GET", rp, "GET"))
            route_collections_list(a, rp);
    } else if (n >= 3 && strcmp(seg[1], "collections") == 0) {
        const char *name = seg[2];
        struct coll *c;
        struct rs_error e;
        if (strlen(name) != len[2] || !store_valid_name(name)) {
            api_error(rp, 422, "invalid_name", "'%s'%s is not a collection name (1 to 64 "
                      "letters, digits, '_', '-' or '.', starting with a letter or digit)", name,
                      strlen(name) != len[2] ? " followed by U+0000" : "");
            return;
        }
        if (n == 3) {
            rp->route = "/v1/collections/{name}";
            if (strcmp(rq->method, "PUT") == 0) {
                route_collection_put(a, rq, name, rp);
            } else if (strcmp(rq->method, "DELETE") == 0) {
                if (store_drop(a->store, name, &e) != RS_OK)
                    coll_fail(a, rp, &e);
                else
                    reply(rp, 200, json_pack("{s:s}", "deleted", name));
            } else if (method_is(rq, "GET", rp, "GET, PUT, DELETE")) {
                if ((c = find_collection(a, name, rp)) != NULL) {
                    reply(rp, 200, coll_json(name, c));
                    store_release(a->store, c);
                }
            }
        } else if (n == 4 && strcmp(seg[3], "documents") == 0) {
            rp->route = "/v1/collections/{name}/documents";
            if (method_is(rq, "POST", rp, "POST"))
                route_documents_upsert(a, rq, name, rp);
        } else if (n == 4 && strcmp(seg[3], "search") == 0) {
            rp->route = "/v1/collections/{name}/search";
            if (method_is(rq, "POST", rp, "POST"))
                route_search(a, rq, name, rp);
        } else if (n == 5 && strcmp(seg[3], "documents") == 0) {
            const char *id = seg[4];
            rp->route = "/v1/collections/{name}/documents/{id}";
            struct coll_hit h;
            if (!valid_id(id, len[4], "the document id", rp))
                return;
            if (strcmp(rq->method, "DELETE") == 0) {
                if ((c = find_collection(a, name, rp)) == NULL)
                    return;
                if (coll_delete(c, id, &e) != RS_OK)
                    coll_fail(a, rp, &e);
                else
                    reply(rp, 200, json_pack("{s:s}", "deleted", id));
                store_release(a->store, c);
            } else if (method_is(rq, "GET", rp, "GET, DELETE")) {
                if ((c = find_collection(a, name, rp)) == NULL)
                    return;
                if (coll_get(c, id, &h, &e) != RS_OK) {
                    coll_fail(a, rp, &e);
                } else {
                    reply(rp, 200, hit_json(&h, 0));
                    coll_hit_clear(&h);
                }
                store_release(a->store, c);
            }
        } else {
            api_error(rp, 404, "not_found", "no route %s", rq->path);
        }
    } else {
        api_error(rp, 404, "not_found", "no route %s", rq->path);
    }
}
