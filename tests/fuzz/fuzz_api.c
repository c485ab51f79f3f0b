/*
 * fuzz_api.c: the HTTP API handler on arbitrary requests, in process with
 * the tiny model: "METHOD PATH\n" then the body.  The first byte picks the
 * content type.  Collections made along the way are dropped after each run.
 *
 * Oracles (abort on failure): no reply is a 500 or a status the API does
 * not document; every reply serializes to JSON (http.c would answer 500
 * otherwise); an error is exactly {"error":{"code","message"}} with two
 * non-empty strings, 429 and 503 carry Retry-After and 405 carries Allow;
 * a success is a JSON object.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../server/api.h"
#include "../../server/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct app app;
static struct conf conf;

static void
check(int ok, const char *what, const struct api_request *rq, const struct api_reply *rp)
{
    if (ok)
        return;
    fprintf(stderr, "oracle: %s: %s %s -> %d\n", what, rq->method, rq->path, rp->status);
    abort();
}

static void
check_reply(const struct api_request *rq, const struct api_reply *rp)
{
    static const int documented[] = { 200, 201, 400, 404, 405, 409, 413, 414, 415, 422, 429,
                                      503, 507 };
    json_t *err = json_object_get(rp->json, "error");
    char *text = rp->json != NULL ? json_dumps(rp->json, JSON_COMPACT) : NULL;
    int known = 0;

    for (size_t i = 0; i < sizeof(documented) / sizeof(documented[0]); i++)
        known |= rp->status == documented[i];
    check(known, "status not documented", rq, rp);
    check(text != NULL, "reply does not serialize", rq, rp);
    free(text);
    check(json_is_object(rp->json), "reply is not an object", rq, rp);
    if (rp->status < 400)
        return;
    if (json_object_get(err, "type") != NULL) {
        /* OpenAI's shape, on its routes only (README: OpenAI compatibility) */
        json_t *param = json_object_get(err, "param");
        check(strncmp(rq->path, "/v1/embeddings", 14) == 0 ||
              strncmp(rq->path, "/v1/models", 10) == 0, "OpenAI error shape elsewhere", rq, rp);
        check(json_object_size(rp->json) == 1 && json_object_size(err) == 4 &&
              json_is_string(json_object_get(err, "type")) &&
              (json_is_null(param) || json_is_string(param)), "OpenAI error shape", rq, rp);
    } else {
        check(json_object_size(rp->json) == 1 && json_is_object(err) &&
              json_object_size(err) == 2, "error shape", rq, rp);
    }
    check(json_is_string(json_object_get(err, "code")) &&
          json_string_length(json_object_get(err, "code")) > 0, "error code", rq, rp);
    check(json_is_string(json_object_get(err, "message")) &&
          json_string_length(json_object_get(err, "message")) > 0, "error message", rq, rp);
    check((rp->status != 429 && rp->status != 503) || rp->retry_after > 0, "Retry-After", rq, rp);
    check(rp->status != 405 || rp->allow != NULL, "Allow", rq, rp);
}

static void
setup(void)
{
    struct rs_error e;
    struct rf_model *m;
    struct store *s;
    const char *dir = fuzz_scratch_path("api");
    struct store_options so;

    conf_defaults(&conf);
    if (conf_set(&conf, "storage.data", dir, &e) || conf_set(&conf, "limits.max_n", "3", &e) ||
        conf_set(&conf, "limits.max_k", "3", &e) || conf_set(&conf, "limits.max_texts", "4", &e) ||
        conf_set(&conf, "limits.max_new_tokens", "4", &e) ||
        conf_set(&conf, "limits.max_documents", "4", &e) ||
        conf_set(&conf, "limits.max_search_k", "5", &e) ||
        conf_set(&conf, "limits.request_timeout", "5", &e) ||
        conf_set(&conf, "storage.fsync", "off", &e) ||
        rf_model_load(&m, "tests/fixtures/roformer-sim-tiny", &e))
        abort();
    so = (struct store_options){ rf_model_config(m)->d_model, rf_model_fingerprint(m),
                                 COLL_FSYNC_OFF, 0, "Flat", NULL, NULL };
    if (store_open(&s, dir, &so, &e) || app_init(&app, &conf, m, s, &e))
        abort();
    atomic_store(&app.ready, 1);
    {
        int created;
        if (store_create(s, "keep", NULL, &created, &e))
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = { "application/json", "application/json; charset=utf-8",
                                         "text/plain", NULL };
    char line[512], method[16], path[496];
    const uint8_t *nl;
    struct api_request rq;
    struct api_reply rp;
    char **names;
    int n;

    if (app.model == NULL)
        setup();
    if (size < 2)
        return 0;
    nl = memchr(data + 1, '\n', size - 1);
    if (nl == NULL || (size_t)(nl - data - 1) >= sizeof(line))
        return 0;
    memcpy(line, data + 1, (size_t)(nl - data - 1));
    line[nl - data - 1] = '\0';
    if (sscanf(line, "%15s %495s", method, path) != 2)
        return 0;
    {
        size_t blen = size - (size_t)(nl + 1 - data);
        char *body = malloc(blen + 1);
        if (body == NULL)
            return 0;
        memcpy(body, nl + 1, blen);
        body[blen] = '\0';
        rq = (struct api_request){ method, path, types[data[0] % 4], body, blen, NULL, NULL };
        api_handle(&app, &rq, &rp);
        check_reply(&rq, &rp);
        json_decref(rp.json);
        free(body);
    }
    if (store_names(app.store, &names, &n) == RS_OK) {
        for (int i = 0; i < n; i++) {
            struct rs_error e;
            if (strcmp(names[i], "keep") != 0)
                store_drop(app.store, names[i], &e);
        }
        store_names_free(names, n);
    }
    return 0;
}
