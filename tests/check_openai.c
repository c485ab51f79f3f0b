/*
 * check_openai.c: the OpenAI-compatible routes as OpenAI clients use them.
 *
 * - LangChain's OpenAIEmbeddings (tests/openai/langchain.mjs) with its
 *   default retries: documents in several batches and a query equal the
 *   golden vectors; a refused parameter fails in one request, at once;
 * - the official openai client (tests/openai/models.mjs): models.list(),
 *   models.retrieve(), and refusals reported as BadRequestError or
 *   NotFoundError without a retry;
 * - over HTTP: OpenAI's error object (message, type, param, code) and
 *   statuses, including the 401 and body cap of http.c, next to the
 *   native routes that keep theirs;
 * - in process: the status mapping (429 and 503 keep Retry-After), and 503
 *   while the model loads.
 * The node packages come from scripts/setup.sh (npm ci in tests/openai).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../server/api.h"
#include "../server/openai.h"
#include "suites.h"
#include "testutil.h"

#define TINY "tests/fixtures/roformer-sim-tiny"
#define TINY_ID "roformer-sim-tiny"     /* the name the model is listed under */
#define TINY_DIM 64
#define JSON "application/json"

static struct tu_daemon daemon_;
static char data_dir[64];
static json_t *expected;

static void
start(const char *const more[])
{
    /* max_length 32: the goldens were made with it */
    const char *extra[16] = { "--model", TINY, "--data", data_dir, "-o",
                              "server.max_body_bytes=8k", "-o", "limits.max_texts=16", "-o",
                              "model.max_length=32" };
    int n = 10;
    json_error_t je;

    strcpy(data_dir, "/tmp/rosim-openai-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    for (int i = 0; more != NULL && more[i] != NULL; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    expected = json_load_file(TINY "/expected.json", JSON_ALLOW_NUL, &je);
    ck_assert_ptr_nonnull(expected);
    ck_assert_int_eq(tu_daemon_start(&daemon_, extra), 0);
}

static void
stop(void)
{
    char cmd[128];

    ck_assert_int_eq(tu_daemon_stop(&daemon_), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    ck_assert_int_eq(system(cmd), 0);
    json_decref(expected);
}

static json_t *
case_at(size_t i)
{
    return json_array_get(json_object_get(expected, "cases"), i);
}

static const char *
case_text(size_t i)
{
    return json_string_value(json_object_get(case_at(i), "text"));
}

static double
max_diff(json_t *got, json_t *want)
{
    double worst = 0;

    ck_assert_uint_eq(json_array_size(got), json_array_size(want));
    for (size_t i = 0; i < json_array_size(want); i++) {
        double d = fabs(json_number_value(json_array_get(got, i)) -
                        json_number_value(json_array_get(want, i)));
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* Run a script of tests/openai with node; its JSON output. */
static json_t *
run_node(char *argv[])
{
    char *out, *err;
    json_error_t je;
    json_t *j;

    ck_assert_msg(tu_run(argv, NULL, &out, &err) == 0, "node %s failed (run scripts/setup.sh "
                  "to install the npm packages): %s", argv[2], err);
    j = json_loads(out, 0, &je);
    ck_assert_msg(j != NULL, "%s", out);
    free(out);
    free(err);
    return j;
}

/* r must be status with OpenAI's error object, exactly
 * {"message","type","param","code"}; param NULL means null. */
static void
assert_openai_error(const struct tu_response *r, long status, const char *type,
                    const char *param, const char *code)
{
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je), *err = json_object_get(j, "error");

    ck_assert_msg(r->status == status, "status %ld, want %ld: %s", r->status, status, r->body);
    ck_assert_msg(json_is_object(err) && json_object_size(err) == 4, "%s", r->body);
    ck_assert(json_string_length(json_object_get(err, "message")) > 0);
    ck_assert_str_eq(json_string_value(json_object_get(err, "type")), type);
    if (param == NULL)
        ck_assert_msg(json_is_null(json_object_get(err, "param")), "%s", r->body);
    else
        ck_assert_str_eq(json_string_value(json_object_get(err, "param")), param);
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")), code);
    json_decref(j);
}

/* --- real clients --------------------------------------------------------- */

START_TEST(test_langchain)
{
    char port[16];
    char *argv[16] = { "/usr/bin/env", "node", "tests/openai/langchain.mjs", port, "4" };
    size_t cases[10];
    json_t *got, *refused;
    int n = 0;

    start(NULL);
    snprintf(port, sizeof(port), "%d", daemon_.port);
    /* ten texts that pass through argv unchanged, in batches of four */
    for (size_t i = 0; n < 10 && i < json_array_size(json_object_get(expected, "cases")); i++) {
        json_t *t = json_object_get(case_at(i), "text");
        if (strlen(json_string_value(t)) == json_string_length(t) &&
            strchr(json_string_value(t), '\n') == NULL) {
            cases[n] = i;
            argv[5 + n++] = (char *)json_string_value(t);
        }
    }
    ck_assert_int_eq(n, 10);
    got = run_node(argv);
    ck_assert_int_eq(json_array_size(json_object_get(got, "documents")), 10);
    for (int k = 0; k < n; k++)
        ck_assert(max_diff(json_array_get(json_object_get(got, "documents"), (size_t)k),
                           json_object_get(case_at(cases[k]), "embedding")) < 1e-4);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "documentRequests")), 3);
    ck_assert(max_diff(json_object_get(got, "query"),
                       json_object_get(case_at(cases[0]), "embedding")) < 1e-4);
    /* dimensions 32: refused once, not retried for a minute */
    refused = json_object_get(got, "refused");
    ck_assert_msg(json_is_object(refused), "dimensions 32 was not refused");
    ck_assert_int_eq(json_integer_value(json_object_get(refused, "status")), 400);
    ck_assert_str_eq(json_string_value(json_object_get(refused, "param")), "dimensions");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(refused, "message")), "64"));
    ck_assert_int_eq(json_integer_value(json_object_get(refused, "requests")), 1);
    ck_assert_msg(json_number_value(json_object_get(refused, "ms")) < 1000, "refused after %g ms",
                  json_number_value(json_object_get(refused, "ms")));
    json_decref(got);
    stop();
}
END_TEST

static void
assert_refusal(json_t *got, const char *what, const char *cls, long status, const char *param,
               const char *code)
{
    json_t *r = json_object_get(got, what);

    ck_assert_msg(json_is_object(r), "%s was not refused", what);
    ck_assert_str_eq(json_string_value(json_object_get(r, "class")), cls);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "status")), status);
    ck_assert_str_eq(json_string_value(json_object_get(r, "type")), "invalid_request_error");
    ck_assert_str_eq(json_string_value(json_object_get(r, "param")), param);
    ck_assert_str_eq(json_string_value(json_object_get(r, "code")), code);
    ck_assert_msg(json_integer_value(json_object_get(r, "requests")) == 1, "%s was retried", what);
}

START_TEST(test_openai_client_models)
{
    char port[16];
    char *argv[] = { "/usr/bin/env", "node", "tests/openai/models.mjs", port, NULL };
    json_t *got, *m;

    start(NULL);
    snprintf(port, sizeof(port), "%d", daemon_.port);
    got = run_node(argv);
    ck_assert_int_eq(json_array_size(json_object_get(got, "list")), 1);
    m = json_array_get(json_object_get(got, "list"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(m, "id")), TINY_ID);
    ck_assert_str_eq(json_string_value(json_object_get(m, "object")), "model");
    ck_assert_str_eq(json_string_value(json_object_get(m, "owned_by")), "rosim");
    ck_assert(json_integer_value(json_object_get(m, "created")) > 1600000000);
    ck_assert(json_equal(json_object_get(got, "retrieved"), m));
    assert_refusal(got, "missing", "NotFoundError", 404, "model", "model_not_found");
    assert_refusal(got, "dimensions", "BadRequestError", 400, "dimensions", "invalid");
    assert_refusal(got, "tokens", "BadRequestError", 400, "input", "token_ids");
    json_decref(got);
    stop();
}
END_TEST

/* --- over HTTP ------------------------------------------------------------ */

static const struct bad {
    const char *method, *path, *body;
    long status;
    const char *type, *param, *code;
} battery[] = {
    { "POST", "/v1/embeddings", "{\"input\":\"a\",\"dimensions\":32}", 400,
      "invalid_request_error", "dimensions", "invalid" },
    { "POST", "/v1/embeddings", "{\"input\":\"a\",\"dimensions\":\"64\"}", 400,
      "invalid_request_error", "dimensions", "invalid" },
    { "POST", "/v1/embeddings", "{\"input\":[101,2769,102]}", 400,
      "invalid_request_error", "input", "token_ids" },
    { "POST", "/v1/embeddings", "{\"input\":[[101,2769,102],[101,102]]}", 400,
      "invalid_request_error", "input", "token_ids" },
    { "POST", "/v1/embeddings", "{\"input\":[[]]}", 400,
      "invalid_request_error", "input", "token_ids" },
    { "POST", "/v1/embeddings", "{\"input\":[\"a\",[1]]}", 400,
      "invalid_request_error", "input", "invalid_type" },
    { "POST", "/v1/embeddings", "{\"input\":[]}", 400, "invalid_request_error", "input", "empty" },
    { "POST", "/v1/embeddings", "{\"input\":5}", 400,
      "invalid_request_error", "input", "invalid_type" },
    { "POST", "/v1/embeddings", "{\"model\":\"m\"}", 400,
      "invalid_request_error", "input", "missing_field" },
    { "POST", "/v1/embeddings", "{\"input\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
      "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}", 400,
      "invalid_request_error", "input", "too_many_texts" },
    { "POST", "/v1/embeddings", "{\"input\":\"a\",\"encoding_format\":\"hex\"}", 400,
      "invalid_request_error", "encoding_format", "invalid" },
    { "POST", "/v1/embeddings", "{\"input\":\"a\",\"model\":5}", 400,
      "invalid_request_error", "model", "invalid_type" },
    { "POST", "/v1/embeddings", "{\"input\":\"a\",\"user\":[]}", 400,
      "invalid_request_error", "user", "invalid_type" },
    { "POST", "/v1/embeddings", "{\"input\":\"a\",\"temperature\":1}", 400,
      "invalid_request_error", NULL, "unknown_field" },
    { "POST", "/v1/embeddings", "{\"input\":", 400, "invalid_request_error", NULL, "invalid_json" },
    { "GET", "/v1/embeddings", NULL, 405, "invalid_request_error", NULL, "method_not_allowed" },
    { "POST", "/v1/models", "{}", 405, "invalid_request_error", NULL, "method_not_allowed" },
    { "GET", "/v1/models/gpt-4o", NULL, 404, "invalid_request_error", "model", "model_not_found" },
};

START_TEST(test_errors_over_http)
{
    char text[600], big[9000];
    struct tu_response r;
    json_t *j;

    start(NULL);
    for (size_t i = 0; i < sizeof(battery) / sizeof(battery[0]); i++) {
        const struct bad *b = &battery[i];
        ck_assert_int_eq(tu_http(daemon_.port, b->method, b->path, b->body ? JSON : NULL, b->body,
                                 b->body ? strlen(b->body) : 0, &r), 0);
        assert_openai_error(&r, b->status, b->type, b->param, b->code);
        if (b->status == 405)
            ck_assert_ptr_nonnull(strstr(r.headers, "Allow:"));
        tu_response_free(&r);
    }
    /* not JSON: 415 natively, 400 here */
    ck_assert_int_eq(tu_http(daemon_.port, "POST", "/v1/embeddings", "text/plain", "a", 1, &r), 0);
    assert_openai_error(&r, 400, "invalid_request_error", NULL, "unsupported_media_type");
    tu_response_free(&r);
    /* a body over server.max_body_bytes, told by Content-Length or by its
     * data: 413 natively, 400 here */
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(tu_http(daemon_.port, "POST", "/v1/embeddings", JSON, big, sizeof(big), &r), 0);
    assert_openai_error(&r, 400, "invalid_request_error", NULL, "body_too_large");
    tu_response_free(&r);
    ck_assert_int_eq(tu_http_chunked(daemon_.port, "/v1/embeddings", big, sizeof(big), &r), 0);
    assert_openai_error(&r, 400, "invalid_request_error", NULL, "body_too_large");
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(daemon_.port, "POST", "/v1/embed", JSON, big, sizeof(big), &r), 0);
    ck_assert_int_eq(r.status, 413);
    tu_response_free(&r);
    /* the native routes keep their statuses and shape */
    ck_assert_int_eq(tu_http(daemon_.port, "POST", "/v1/embed", JSON, "{\"texts\":[]}", 12, &r), 0);
    ck_assert_int_eq(r.status, 422);
    ck_assert_ptr_nonnull(strstr(r.body, "{\"error\":{\"code\":\"empty\",\"message\":"));
    tu_response_free(&r);

    /* served: dimensions equal to the model's, the model's name by default,
     * a text over max_length counted in usage.truncated_texts */
    snprintf(text, sizeof(text), "{\"input\":[\"%s\",\"", case_text(0));
    for (int i = 0; i < 100; i++)
        strcat(text, "电");
    strcat(text, "\"],\"dimensions\":64}");
    ck_assert_int_eq(tu_http(daemon_.port, "POST", "/v1/embeddings", JSON, text, strlen(text),
                             &r), 0);
    ck_assert_msg(r.status == 200, "%s", r.body);
    j = json_loads(r.body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), TINY_ID);
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 2);
    ck_assert(max_diff(json_object_get(json_array_get(json_object_get(j, "data"), 0), "embedding"),
                       json_object_get(case_at(0), "embedding")) < 1e-4);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "truncated_texts")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "prompt_tokens")),
                     json_array_size(json_object_get(case_at(0), "ids")) + 32);
    ck_assert(json_equal(json_object_get(json_object_get(j, "usage"), "prompt_tokens"),
                         json_object_get(json_object_get(j, "usage"), "total_tokens")));
    json_decref(j);
    tu_response_free(&r);
    /* any model name is accepted, and echoed */
    ck_assert_int_eq(tu_http(daemon_.port, "POST", "/v1/embeddings", JSON,
                             "{\"input\":\"a\",\"model\":\"text-embedding-3-small\"}", 46, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"model\":\"text-embedding-3-small\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"truncated_texts\":0"));
    tu_response_free(&r);
    /* the listing, and the model under its name */
    ck_assert_int_eq(tu_http(daemon_.port, "GET", "/v1/models", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    j = json_loads(r.body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "list");
    ck_assert_str_eq(json_string_value(json_object_get(
        json_array_get(json_object_get(j, "data"), 0), "id")), TINY_ID);
    json_decref(j);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(daemon_.port, "GET", "/v1/models/" TINY_ID "/", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"object\":\"model\""));
    tu_response_free(&r);
    stop();
}
END_TEST

START_TEST(test_keys)
{
    static const char *const paths[] = { "/v1/embeddings", "/v1/models", "/v1/models/x" };
    char keys[] = "/tmp/rosim-openai-keys-XXXXXX", opt[80];
    const char *more[] = { "-o", opt, NULL };
    struct tu_response r;
    FILE *f;
    int fd = mkstemp(keys);

    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    fputs("the-key\n", f);
    fclose(f);
    snprintf(opt, sizeof(opt), "server.api_key_file=%s", keys);
    start(more);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        ck_assert_int_eq(tu_http_with(daemon_.port, "GET", paths[i], NULL, NULL, 0,
                                      "Authorization: Bearer wrong", &r), 0);
        assert_openai_error(&r, 401, "authentication_error", NULL, "unauthorized");
        ck_assert_ptr_nonnull(strstr(r.headers, "WWW-Authenticate: Bearer"));
        tu_response_free(&r);
    }
    ck_assert_int_eq(tu_http_with(daemon_.port, "GET", "/v1/models", NULL, NULL, 0,
                                  "Authorization: Bearer the-key", &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"id\":\"" TINY_ID "\""));
    tu_response_free(&r);
    /* the native routes keep their shape */
    ck_assert_int_eq(tu_http(daemon_.port, "GET", "/v1/info", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "{\"error\":{\"code\":\"unauthorized\",\"message\":"));
    tu_response_free(&r);
    stop();
    unlink(keys);
}
END_TEST

/* --- in process ----------------------------------------------------------- */

START_TEST(test_status_mapping)
{
    static const struct { int native, status; const char *type; } map[] = {
        { 400, 400, "invalid_request_error" }, { 404, 404, "invalid_request_error" },
        { 405, 405, "invalid_request_error" }, { 413, 400, "invalid_request_error" },
        { 415, 400, "invalid_request_error" }, { 422, 400, "invalid_request_error" },
        { 401, 401, "authentication_error" }, { 429, 429, "rate_limit_error" },
        { 503, 503, "server_error" }, { 500, 500, "server_error" },
    };
    struct api_reply rp = { 0 };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        api_error(&rp, map[i].native, "some_code", "message %d", map[i].native);
        rp.retry_after = 1;
        openai_error(&rp, i % 2 ? "input" : NULL);
        ck_assert_int_eq(rp.status, map[i].status);
        ck_assert_int_eq(rp.retry_after, 1);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rp.json, "error"),
                                                           "type")), map[i].type);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rp.json, "error"),
                                                           "code")), "some_code");
        ck_assert_int_eq(json_is_null(json_object_get(json_object_get(rp.json, "error"),
                                                      "param")), i % 2 == 0);
        json_decref(rp.json);
        rp.json = NULL;
    }
    /* a success is left alone */
    rp.status = 200;
    rp.json = json_pack("{s:s}", "object", "list");
    openai_error(&rp, NULL);
    ck_assert_int_eq(rp.status, 200);
    ck_assert_ptr_nonnull(json_object_get(rp.json, "object"));
    json_decref(rp.json);
}
END_TEST

START_TEST(test_not_ready)
{
    static const char *const paths[] = { "/v1/embeddings", "/v1/models", "/v1/models/x" };
    struct app a;
    struct api_reply rp;

    memset(&a, 0, sizeof(a));       /* no model yet: ready is 0 */
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct api_request rq = { .method = i ? "GET" : "POST", .path = paths[i],
                                  .content_type = JSON, .body = "{}", .body_len = 2 };
        api_handle(&a, &rq, &rp);
        ck_assert_int_eq(rp.status, 503);
        ck_assert_int_eq(rp.retry_after, 1);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rp.json, "error"),
                                                           "type")), "server_error");
        json_decref(rp.json);
    }
}
END_TEST

Suite *
openai_suite(void)
{
    Suite *s = suite_create("openai");
    TCase *clients = tcase_create("clients"), *http = tcase_create("http");

    /* long enough for a client that retries, so such a failure is reported */
    tcase_set_timeout(clients, 300);
    tcase_add_test(clients, test_langchain);
    tcase_add_test(clients, test_openai_client_models);
    suite_add_tcase(s, clients);
    tcase_set_timeout(http, 60);
    tcase_add_test(http, test_errors_over_http);
    tcase_add_test(http, test_keys);
    tcase_add_test(http, test_status_mapping);
    tcase_add_test(http, test_not_ready);
    suite_add_tcase(s, http);
    return s;
}
