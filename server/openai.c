/*
 * openai.c: the OpenAI-compatible routes (/v1/embeddings, /v1/models,
 * /v1/models/{model}) and OpenAI's error conventions on them.
 *
 * Requests are checked with api_json.c's helpers, which fill native error
 * replies; each route turns the native reply into OpenAI's shape once, at
 * the end, with the name of the field at fault.  routes.c does the same
 * with the errors it answers on these routes (405, 503).  The mapping is about retries: OpenAI clients retry 408, 409, 429
 * and 5xx, and LangChain every status but 400-407 and 409, so a request
 * that can never succeed must be 400 (a 413 or 422 would be retried for a
 * minute), while "busy" stays 429 or 503 with Retry-After.
 *
 * The model is listed under one name, the last component of [model] dir;
 * /v1/embeddings accepts any name in "model", as OpenAI-style gateways
 * send their own.
 */
#include "openai.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api_internal.h"

/* --- errors --------------------------------------------------------------- */

void
openai_error(struct api_reply *rp, const char *param)
{
    json_t *err = json_object_get(rp->json, "error");
    const char *type;
    int status = rp->status;

    if (status < 400 || err == NULL)
        return;
    if (status == 413 || status == 415 || status == 422)
        status = 400;
    if (status == 401)
        type = "authentication_error";
    else if (status == 429)
        type = "rate_limit_error";
    else if (status >= 500)
        type = "server_error";
    else
        type = "invalid_request_error";
    /* json_pack copies the strings before reply() drops the old body */
    reply(rp, status, json_pack("{s:{s:s,s:s,s:s?,s:s}}", "error", "message",
                                json_string_value(json_object_get(err, "message")), "type", type,
                                "param", param, "code",
                                json_string_value(json_object_get(err, "code"))));
}

void
openai_error_for_path(const char *path, struct api_reply *rp)
{
    struct route_match m;

    if (route_match("GET", path, &m) != ROUTE_NONE && m.route != NULL &&
        (m.route->flags & ROUTE_OPENAI))
        openai_error(rp, NULL);
}

/* --- /v1/models ----------------------------------------------------------- */

/* The name the model is listed under: the last component of [model] dir
 * (copied into buf), or "rosim" when that is not a usable name. */
static const char *
model_id(const struct app *a, char *buf, size_t len)
{
    const char *dir = a->conf->model_dir, *base;
    size_t n = strlen(dir);
    json_t *check;

    while (n > 1 && dir[n - 1] == '/')
        n--;
    for (base = dir + n; base > dir && base[-1] != '/'; base--)
        ;
    n = (size_t)(dir + n - base);
    if (n == 0 || n >= len || (n <= 2 && strncmp(base, "..", n) == 0))
        return "rosim";
    memcpy(buf, base, n);
    buf[n] = '\0';
    check = json_string(buf);   /* NULL unless valid UTF-8 */
    if (check == NULL)
        return "rosim";
    json_decref(check);
    return buf;
}

static json_t *
model_json(const struct app *a, const char *id)
{
    struct stat st;
    json_int_t created = stat(a->conf->model_dir, &st) == 0 ? (json_int_t)st.st_mtime : 0;

    return json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object", "model", "created", created,
                     "owned_by", "rosim");
}

void
openai_models(struct app *a, const struct api_request *rq, const struct route_args *arg,
              struct api_reply *rp)
{
    char buf[256];

    (void)rq;
    (void)arg;
    reply(rp, 200, json_pack("{s:s,s:[o]}", "object", "list", "data",
                             model_json(a, model_id(a, buf, sizeof(buf)))));
}

void
openai_model(struct app *a, const struct api_request *rq, const struct route_args *arg,
             struct api_reply *rp)
{
    char buf[256];
    const char *id = model_id(a, buf, sizeof(buf));

    (void)rq;
    if (strcmp(arg->model, id) == 0) {
        reply(rp, 200, model_json(a, id));
        return;
    }
    api_error(rp, 404, "model_not_found", "no model '%s' here; this server has '%s'", arg->model,
              id);
    openai_error(rp, "model");
}

/* --- /v1/embeddings ------------------------------------------------------- */

static char *
base64(const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* The vector as OpenAI's base64: its little-endian float32 bytes. */
static json_t *
base64_json(const float *v, int H)
{
    unsigned char *bytes = malloc((size_t)H * 4);
    char *s;
    json_t *j;

    for (int k = 0; bytes != NULL && k < H; k++) {
        uint32_t u;
        memcpy(&u, &v[k], 4);
        for (int b = 0; b < 4; b++)
            bytes[k * 4 + b] = (unsigned char)(u >> (8 * b));
    }
    s = bytes ? base64(bytes, (size_t)H * 4) : NULL;
    free(bytes);
    j = s ? json_string(s) : NULL;
    free(s);
    return j;
}

/* 1 when v is a list of integers. */
static int
is_int_list(const json_t *v)
{
    const json_t *x;
    size_t i;

    if (!json_is_array(v))
        return 0;
    json_array_foreach(v, i, x)
        if (!json_is_integer(x))
            return 0;
    return 1;
}

/* 1 when input is what OpenAI accepts as tokens: a list of token ids, or
 * a list of such lists. */
static int
is_token_ids(const json_t *input)
{
    const json_t *x;
    size_t i;

    if (!json_is_array(input) || json_array_size(input) == 0)
        return 0;
    if (is_int_list(input))
        return 1;
    json_array_foreach(input, i, x)
        if (!is_int_list(x))
            return 0;
    return 1;
}

/* OpenAI's /v1/embeddings, with native errors.  Returns the field at
 * fault when rp holds an error about one, else NULL. */
static const char *
embeddings(struct app *a, const struct api_request *rq, struct api_reply *rp)
{
    static const char *const allowed[] = { "input", "model", "encoding_format", "user",
                                           "dimensions", NULL };
    const int H = rf_model_config(a->model)->d_model;
    json_t *body = body_object(rq, rp, allowed), *data, *fmt, *model, *dims, *user;
    const char *param = NULL;
    struct emb_text *texts = NULL;
    struct embedded em;
    char buf[256];
    int n, b64 = 0;

    if (body == NULL)
        goto done;
    fmt = json_object_get(body, "encoding_format");
    model = json_object_get(body, "model");
    dims = json_object_get(body, "dimensions");
    user = json_object_get(body, "user");
    if (model != NULL && !json_is_null(model) && !json_is_string(model)) {
        param = "model";
        api_error(rp, 400, "invalid_type", "'model' must be a string");
        goto done;
    }
    if (fmt != NULL && !json_is_null(fmt)) {
        param = "encoding_format";
        if (!json_is_string(fmt)) {
            api_error(rp, 400, "invalid_type", "'encoding_format' must be a string");
            goto done;
        }
        if (strcmp(json_string_value(fmt), "base64") == 0) {
            b64 = 1;
        } else if (strcmp(json_string_value(fmt), "float") != 0) {
            api_error(rp, 400, "invalid", "'encoding_format' must be \"float\" or \"base64\"");
            goto done;
        }
    }
    if (dims != NULL && !json_is_null(dims) &&
        (!json_is_integer(dims) || json_integer_value(dims) != H)) {
        param = "dimensions";
        api_error(rp, 400, "invalid", "'dimensions' must be %d, the model's dimension, or left "
                  "out: RoFormer-Sim is not trained for shortened vectors", H);
        goto done;
    }
    if (user != NULL && !json_is_null(user) && !json_is_string(user)) {
        param = "user";
        api_error(rp, 400, "invalid_type", "'user' must be a string");
        goto done;
    }
    param = "input";
    if (is_token_ids(json_object_get(body, "input"))) {
        api_error(rp, 400, "token_ids", "'input' holds token ids, which rosimd does not "
                  "take: they come from the client's tokenizer, not this model's vocabulary; "
                  "send the texts instead");
        goto done;
    }
    if (texts_field(a, body, "input", 1, &texts, &n, rp))
        goto done;
    param = NULL;
    if (embed(a, texts, n, 1, &em, rp))
        goto done;
    data = json_array();
    for (int i = 0; i < n; i++) {
        const float *v = em.vecs + (size_t)i * (size_t)H;
        json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", i,
                                              "embedding",
                                              b64 ? base64_json(v, H) : vector_json(v, H)));
    }
    free(em.vecs);
    if (!complete(data, n, rp))
        goto done;
    reply(rp, 200, json_pack("{s:s,s:o,s:s,s:{s:I,s:I,s:i}}", "object", "list", "data", data,
                             "model", json_is_string(model) ? json_string_value(model)
                                                            : model_id(a, buf, sizeof(buf)),
                             "usage", "prompt_tokens", (json_int_t)em.tokens, "total_tokens",
                             (json_int_t)em.tokens, "truncated_texts", em.truncated));
done:
    free(texts);
    json_decref(body);
    return param;
}

void
openai_embeddings(struct app *a, const struct api_request *rq, const struct route_args *arg,
                  struct api_reply *rp)
{
    (void)arg;
    openai_error(rp, embeddings(a, rq, rp));
}
