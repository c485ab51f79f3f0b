/*
 * check_api.c: rosimd over real HTTP (libcurl), started on an ephemeral
 * loopback port with the tiny fixture model.
 *
 * - every route's success path: vectors equal the golden ones (1e-4), the
 *   greedy generation equals the golden text, collections behave;
 * - a battery of malformed requests, each with its expected status, after
 *   which the daemon still answers correctly;
 * - 16 client threads mixing embed, search, upsert and generate.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "suites.h"
#include "testutil.h"

#define TINY "tests/fixtures/roformer-sim-tiny"
#define JSON "application/json"

static json_t *expected;

static void
load_expected(void)
{
    json_error_t je;
    expected = json_load_file(TINY "/expected.json", JSON_ALLOW_NUL, &je);
    ck_assert_ptr_nonnull(expected);
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

/* Cases usable in a JSON body as plain C strings (no NUL). */
static int
usable(size_t i)
{
    json_t *t = json_object_get(case_at(i), "text");
    return strlen(json_string_value(t)) == json_string_length(t);
}

static struct tu_daemon daemon_;
static char data_dir[64];

static void
start(const char *const more[])
{
    const char *extra[32] = { "--model", TINY, "--data", data_dir, "-o",
                              "server.max_body_bytes=64k", "-o", "limits.max_texts=40",
                              "-o", "limits.max_text_bytes=2k" };
    int n = 10;

    strcpy(data_dir, "/tmp/rosim-api-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    for (int i = 0; more != NULL && more[i] != NULL; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    load_expected();
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

/* A request whose reply must have status want and be JSON; returns it. */
static json_t *
call(const char *method, const char *path, const char *body, long want)
{
    struct tu_response r;
    json_error_t je;
    json_t *j;

    ck_assert_int_eq(tu_http(daemon_.port, method, path, body ? JSON : NULL, body,
                             body ? strlen(body) : 0, &r), 0);
    ck_assert_msg(r.status == want, "%s %s: status %ld, want %ld: %s", method, path, r.status,
                  want, r.body);
    j = json_loads(r.body, 0, &je);
    ck_assert_msg(j != NULL || strcmp(method, "HEAD") == 0, "%s %s: not JSON: %s", method,
                  path, r.body);
    tu_response_free(&r);
    return j;
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

static char *
texts_body(const char *key, const char *extra)
{
    json_t *list = json_array(), *o;
    char *s;
    for (size_t i = 0; i < json_array_size(json_object_get(expected, "cases")); i++)
        if (usable(i))
            json_array_append_new(list, json_string(case_text(i)));
    o = json_pack("{s:o}", key, list);
    if (extra != NULL) {
        json_error_t je;
        json_t *x = json_loads(extra, 0, &je);
        json_object_update(o, x);
        json_decref(x);
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int
base64_value(char ch)
{
    const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(tbl, ch);
    return p && ch ? (int)(p - tbl) : -1;
}

START_TEST(test_routes)
{
    json_t *j, *list;
    char *body, buf[4096];
    size_t i, k;

    start(NULL);
    j = call("GET", "/healthz", NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    j = call("GET", "/readyz", NULL, 200);
    json_decref(j);
    j = call("GET", "/v1/info", NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "model"), "arch")), "roformer");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "model"), "hidden")), 64);
    ck_assert(json_is_false(json_object_get(json_object_get(j, "model"), "demo")));
    json_decref(j);

    /* tokenize */
    body = texts_body("texts", NULL);
    j = call("POST", "/v1/tokenize", body, 200);
    for (i = 0, k = 0; i < json_array_size(json_object_get(expected, "cases")); i++) {
        if (!usable(i))
            continue;
        if (json_array_size(json_object_get(case_at(i), "ids")) < 32)
            ck_assert(json_equal(json_array_get(json_object_get(j, "ids"), k),
                                 json_object_get(case_at(i), "ids")));
        k++;
    }
    json_decref(j);

    /* embed, normalized and raw */
    j = call("POST", "/v1/embed", body, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "dim")), 64);
    list = json_object_get(j, "embeddings");
    for (i = 0, k = 0; i < json_array_size(json_object_get(expected, "cases")); i++) {
        if (!usable(i))
            continue;
        /* the goldens were made with maxlen 32, the daemon's is 64 */
        if (json_array_size(json_object_get(case_at(i), "ids")) < 32)
            ck_assert_msg(max_diff(json_array_get(list, k), json_object_get(case_at(i), "embedding")) < 1e-4,
                          "embedding %zu", i);
        k++;
    }
    ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(j, "usage"), "tokens")), 20);
    json_decref(j);
    free(body);
    body = texts_body("texts", "{\"normalize\":false}");
    j = call("POST", "/v1/embed", body, 200);
    list = json_object_get(j, "embeddings");
    for (i = 0, k = 0; i < json_array_size(json_object_get(expected, "cases")); i++) {
        if (usable(i) && json_array_size(json_object_get(case_at(i), "ids")) < 32)
            ck_assert(max_diff(json_array_get(list, k), json_object_get(case_at(i), "pooled")) < 1e-4);
        if (usable(i))
            k++;
    }
    json_decref(j);
    free(body);

    /* a text over max_length (64) is cut the bert4keras way, and counted */
    {
        char lng[400] = "{\"texts\":[\"";
        for (int q = 0; q < 100; q++)
            strcat(lng, "好");
        strcat(lng, "\",\"好\"]}");
        j = call("POST", "/v1/embed", lng, 200);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"), "truncated_texts")), 1);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"), "tokens")), 64 + 3);
        json_decref(j);
    }

    /* OpenAI embeddings: float, and base64 of little-endian float32 */
    snprintf(buf, sizeof(buf), "{\"input\":\"%s\",\"model\":\"roformer-sim\"}", case_text(0));
    j = call("POST", "/v1/embeddings", buf, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "object")), "list");
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), "roformer-sim");
    ck_assert(max_diff(json_object_get(json_array_get(json_object_get(j, "data"), 0), "embedding"),
                       json_object_get(case_at(0), "embedding")) < 1e-4);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")), 7);
    json_decref(j);
    snprintf(buf, sizeof(buf), "{\"input\":[\"%s\",\"%s\"],\"encoding_format\":\"base64\"}",
             case_text(0), case_text(1));
    j = call("POST", "/v1/embeddings", buf, 200);
    for (k = 0; k < 2; k++) {
        const char *s = json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), k), "embedding"));
        unsigned char bytes[256];
        float v[64];
        json_t *got = json_array();
        size_t nb = 0;
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(strlen(s), 344);   /* 256 bytes -> 344 characters */
        for (size_t c = 0; c + 4 <= strlen(s); c += 4) {
            unsigned v24 = 0;
            int pad = 0;
            for (int q = 0; q < 4; q++) {
                int x = s[c + q] == '=' ? (pad++, 0) : base64_value(s[c + q]);
                ck_assert_int_ge(x, 0);
                v24 = v24 << 6 | (unsigned)x;
            }
            for (int q = 0; q < 3 - pad; q++)
                bytes[nb++] = (unsigned char)(v24 >> (16 - 8 * q));
        }
        ck_assert_uint_eq(nb, 256);
        for (int c = 0; c < 64; c++) {
            uint32_t u = (uint32_t)bytes[4 * c] | (uint32_t)bytes[4 * c + 1] << 8 |
                         (uint32_t)bytes[4 * c + 2] << 16 | (uint32_t)bytes[4 * c + 3] << 24;
            memcpy(&v[c], &u, 4);
            json_array_append_new(got, json_real(v[c]));
        }
        ck_assert(max_diff(got, json_object_get(case_at(k), "embedding")) < 1e-4);
        json_decref(got);
    }
    json_decref(j);

    /* similarity: golden cosines */
    snprintf(buf, sizeof(buf), "{\"source\":\"%s\",\"targets\":[\"%s\",\"%s\"]}", case_text(0),
             case_text(1), case_text(2));
    j = call("POST", "/v1/similarity", buf, 200);
    {
        json_t *pair;
        json_array_foreach(json_object_get(expected, "similarity"), i, pair) {
            if (json_integer_value(json_array_get(pair, 0)) != 0 ||
                json_integer_value(json_array_get(pair, 1)) > 2)
                continue;
            ck_assert(fabs(json_number_value(json_array_get(json_object_get(j, "scores"),
                                                            (size_t)json_integer_value(json_array_get(pair, 1)) - 1)) -
                           json_number_value(json_array_get(pair, 2))) < 1e-4);
        }
    }
    json_decref(j);

    /* generate: greedy equals the golden text; a list gives results */
    {
        json_t *g = json_array_get(json_object_get(expected, "generation"), 0);
        snprintf(buf, sizeof(buf), "{\"text\":\"%s\",\"top_k\":1,\"n\":1,\"k\":1,\"max_length\":%d}",
                 json_string_value(json_object_get(g, "source")),
                 (int)json_integer_value(json_object_get(g, "maxlen")));
        j = call("POST", "/v1/generate", buf, 200);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "paraphrases"), 0), "text")),
                         json_string_value(json_object_get(g, "greedy_text")));
        ck_assert_int_eq(json_integer_value(json_object_get(j, "candidates")), 1);
        json_decref(j);
        j = call("POST", "/v1/generate", "{\"texts\":[\"我喜欢北京\",\"手机坏了怎么办\"],\"n\":8,\"k\":3,\"max_length\":6,\"seed\":5}", 200);
        ck_assert_int_eq(json_array_size(json_object_get(j, "results")), 2);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "results"), 1), "text")),
                         "手机坏了怎么办");
        json_decref(j);
    }

    /* collections and documents */
    json_decref(call("PUT", "/v1/collections/faq", NULL, 201));
    json_decref(call("PUT", "/v1/collections/faq", "{\"index\":\"Flat\"}", 200));
    json_decref(call("PUT", "/v1/collections/faq", "{\"index\":\"HNSW32,Flat\"}", 409));
    json_decref(call("PUT", "/v1/collections/hnsw", "{\"index\":\"HNSW32,Flat\"}", 201));
    snprintf(buf, sizeof(buf), "{\"documents\":[{\"id\":\"zero/0\",\"text\":\"%s\",\"meta\":{\"n\":0}},"
             "{\"id\":\"one\",\"text\":\"%s\"},{\"id\":\"two\",\"text\":\"%s\"}]}",
             case_text(0), case_text(1), case_text(2));
    j = call("POST", "/v1/collections/faq/documents", buf, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "upserted")), 3);
    json_decref(j);
    j = call("GET", "/v1/collections/faq", NULL, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "documents")), 3);
    json_decref(j);
    j = call("GET", "/v1/collections", NULL, 200);
    ck_assert_int_eq(json_array_size(json_object_get(j, "collections")), 2);
    json_decref(j);
    j = call("GET", "/v1/collections/faq/documents/zero%2F0", NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "text")), case_text(0));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "meta"), "n")), 0);
    json_decref(j);
    snprintf(buf, sizeof(buf), "{\"text\":\"%s\",\"k\":2}", case_text(1));
    j = call("POST", "/v1/collections/faq/search", buf, 200);
    list = json_object_get(j, "hits");
    ck_assert_int_eq(json_array_size(list), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "id")), "one");
    ck_assert(fabs(json_number_value(json_object_get(json_array_get(list, 0), "score")) - 1.0) < 1e-4);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 1), "id")), "zero/0");
    json_decref(j);
    {
        char *vec = json_dumps(json_object_get(case_at(2), "embedding"), JSON_COMPACT);
        snprintf(buf, sizeof(buf), "{\"vector\":%s,\"k\":1,\"min_score\":0.5}", vec);
        free(vec);
        j = call("POST", "/v1/collections/faq/search", buf, 200);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "hits"), 0), "id")), "two");
        json_decref(j);
    }
    json_decref(call("DELETE", "/v1/collections/faq/documents/one", NULL, 200));
    json_decref(call("GET", "/v1/collections/faq/documents/one", NULL, 404));
    j = call("POST", "/v1/collections/faq/search", buf, 200);
    json_decref(j);
    snprintf(buf, sizeof(buf), "{\"text\":\"%s\",\"k\":5}", case_text(1));
    j = call("POST", "/v1/collections/faq/search", buf, 200);
    ck_assert_int_eq(json_array_size(json_object_get(j, "hits")), 2);   /* "one" is gone */
    json_decref(j);
    json_decref(call("DELETE", "/v1/collections/faq", NULL, 200));
    json_decref(call("GET", "/v1/collections/faq", NULL, 404));
    stop();
}
END_TEST

/* --- the malformed battery ------------------------------------------------ */

struct bad {
    const char *method, *path, *type, *body;
    size_t len;          /* 0: strlen(body) */
    long status;
    const char *code;    /* expected error code, or NULL */
};

#define B(m, p, t, b, s, c) { m, p, t, b, 0, s, c }
#define BN(m, p, t, b, s, c) { m, p, t, b, sizeof(b) - 1, s, c }

static const struct bad battery[] = {
    /* bodies that are not JSON */
    B("POST", "/v1/embed", JSON, "", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"a\"]", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"a\"]}}", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{texts:[\"a\"]}", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{'texts':['a']}", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "[\"a\"]", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "\"a\"", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "null", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"a\",]}", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"a\"],\"texts\":[\"b\"]}", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"a\"]} trailing", 400, "invalid_json"),
    B("POST", "/v1/search", JSON, "{}", 404, "not_found"),
    /* content types */
    B("POST", "/v1/embed", NULL, "{\"texts\":[\"a\"]}", 415, "unsupported_media_type"),
    B("POST", "/v1/embed", "text/plain", "{\"texts\":[\"a\"]}", 415, "unsupported_media_type"),
    B("POST", "/v1/embed", "application/x-www-form-urlencoded", "texts=a", 415, "unsupported_media_type"),
    B("POST", "/v1/embed", "application/jsonp", "{\"texts\":[\"a\"]}", 415, "unsupported_media_type"),
    B("POST", "/v1/embed", "application/json; charset=utf-8", "{\"texts\":[\"好\"]}", 200, NULL),
    /* depth */
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"a\"],\"normalize\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 400, "invalid_json"),
    /* wrong types and unknown fields */
    B("POST", "/v1/embed", JSON, "{\"texts\":\"a\"}", 400, "invalid_type"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[1]}", 400, "invalid_type"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[null]}", 400, "invalid_type"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[[\"a\"]]}", 400, "invalid_type"),
    B("POST", "/v1/embed", JSON, "{\"texts\":{\"a\":1}}", 400, "invalid_type"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"a\"],\"normalize\":\"yes\"}", 400, "invalid_type"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"a\"],\"colour\":1}", 400, "unknown_field"),
    B("POST", "/v1/embed", JSON, "{}", 400, "missing_field"),
    B("POST", "/v1/tokenize", JSON, "{\"text\":[\"a\"]}", 400, "unknown_field"),
    B("POST", "/v1/similarity", JSON, "{\"source\":1,\"targets\":[\"a\"]}", 400, "invalid_type"),
    B("POST", "/v1/similarity", JSON, "{\"targets\":[\"a\"]}", 400, "missing_field"),
    B("POST", "/v1/similarity", JSON, "{\"source\":\"a\",\"targets\":[]}", 422, "empty"),
    /* empty and oversized batches and texts */
    B("POST", "/v1/embed", JSON, "{\"texts\":[]}", 422, "empty"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}", 413, "too_many_texts"),
    /* invalid UTF-8 and NULs */
    BN("POST", "/v1/embed", JSON, "{\"texts\":[\"\xc0\xaf\"]}", 400, "invalid_json"),
    BN("POST", "/v1/embed", JSON, "{\"texts\":[\"\xed\xa0\x80\"]}", 400, "invalid_json"),
    BN("POST", "/v1/embed", JSON, "{\"texts\":[\"\xf4\x90\x80\x80\"]}", 400, "invalid_json"),
    BN("POST", "/v1/embed", JSON, "{\"texts\":[\"\xff\xfe\"]}", 400, "invalid_json"),
    BN("POST", "/v1/embed", JSON, "{\"texts\":[\"abc\xe4\xbd\"]}", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"\\ud800\"]}", 400, "invalid_json"),
    B("POST", "/v1/embed", JSON, "{\"texts\":[\"\\udc00x\"]}", 400, "invalid_json"),
    BN("POST", "/v1/embed", JSON, "{\"texts\":[\"a\0b\"]}", 400, "invalid_json"),
    BN("POST", "/v1/embed", JSON, "{\"texts\":[\"a\"]}\0", 400, "invalid_json"),
    /* numbers */
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"n\":1e999}", 400, "invalid_json"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"n\":99999999999999999999999}", 400, "invalid_json"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"n\":NaN}", 400, "invalid_json"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"top_p\":Infinity}", 400, "invalid_json"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"n\":2.5}", 400, "invalid_type"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"n\":true}", 400, "invalid_type"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"n\":0}", 422, "out_of_range"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"n\":-3}", 422, "out_of_range"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"n\":100000}", 422, "out_of_range"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"top_p\":0}", 422, "out_of_range"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"top_p\":1.5}", 422, "out_of_range"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"temperature\":0}", 422, "out_of_range"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"max_length\":100000}", 422, "out_of_range"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"好\",\"seed\":-1}", 422, "out_of_range"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"\"}", 422, "invalid"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"   \"}", 422, "invalid"),
    B("POST", "/v1/generate", JSON, "{\"n\":3}", 400, "missing_field"),
    B("POST", "/v1/generate", JSON, "{\"text\":\"a\",\"texts\":[\"b\"]}", 400, "missing_field"),
    B("POST", "/v1/generate", JSON, "{\"text\":[\"a\"]}", 400, "invalid_type"),
    B("POST", "/v1/embeddings", JSON, "{\"input\":5}", 400, "invalid_type"),
    /* collections, documents, search */
    B("GET", "/v1/collections/nope", NULL, NULL, 404, "not_found"),
    B("POST", "/v1/collections/nope/search", JSON, "{\"text\":\"a\"}", 404, "not_found"),
    B("POST", "/v1/collections/nope/documents", JSON, "{\"documents\":[{\"id\":\"a\",\"text\":\"b\"}]}", 404, "not_found"),
    B("GET", "/v1/collections/c/documents/nope", NULL, NULL, 404, "not_found"),
    B("DELETE", "/v1/collections/c/documents/nope", NULL, NULL, 404, "not_found"),
    B("DELETE", "/v1/collections/nope", NULL, NULL, 404, "not_found"),
    /* names and ids break their rules: 422 whatever the route or method */
    B("PUT", "/v1/collections/..", NULL, NULL, 422, "invalid_name"),
    B("PUT", "/v1/collections/%2e%2e", NULL, NULL, 422, "invalid_name"),
    B("PUT", "/v1/collections/..%2F..%2Fetc", NULL, NULL, 422, "invalid_name"),
    B("PUT", "/v1/collections/a%2Fb", NULL, NULL, 422, "invalid_name"),
    B("PUT", "/v1/collections/.hidden", NULL, NULL, 422, "invalid_name"),
    B("PUT", "/v1/collections/a%00b", NULL, NULL, 422, "invalid_name"),
    B("GET", "/v1/collections/a%00b", NULL, NULL, 422, "invalid_name"),
    B("PUT", "/v1/collections/%ff", NULL, NULL, 422, "invalid_name"),
    B("GET", "/v1/collections/c/documents/a%00b", NULL, NULL, 422, "invalid_id"),
    B("DELETE", "/v1/collections/c/documents/%ff", NULL, NULL, 422, "invalid_id"),
    B("GET", "/v1/collections/c/documents/%e4%bd", NULL, NULL, 422, "invalid_id"),
    B("GET", "/v1/collections/c/documents/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", NULL, NULL, 422, "invalid_id"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":[{\"id\":\"a\\u0000b\",\"text\":\"b\"}]}", 422, "invalid_id"),
    B("PUT", "/v1/collections/a%zz", NULL, NULL, 400, "invalid_path"),
    B("PUT", "/v1/collections/x", JSON, "{\"index\":\"NoSuchIndex\"}", 422, "invalid"),
    B("PUT", "/v1/collections/x", JSON, "{\"index\":\"IVF100000000,Flat\"}", 422, "invalid"),
    B("PUT", "/v1/collections/x", JSON, "{\"index\":5}", 400, "invalid_type"),
    B("PUT", "/v1/collections/x", "text/plain", "index=Flat", 415, "unsupported_media_type"),
    B("POST", "/v1/collections/c/search", JSON, "{\"vector\":[1,2,3]}", 422, "wrong_dimension"),
    B("POST", "/v1/collections/c/search", JSON, "{\"vector\":\"abc\"}", 400, "invalid_type"),
    B("POST", "/v1/collections/c/search", JSON, "{\"vector\":[1e39,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}", 422, "out_of_range"),
    B("POST", "/v1/collections/c/search", JSON, "{\"text\":\"a\",\"vector\":[1]}", 400, "missing_field"),
    B("POST", "/v1/collections/c/search", JSON, "{}", 400, "missing_field"),
    B("POST", "/v1/collections/c/search", JSON, "{\"text\":\"a\",\"k\":0}", 422, "out_of_range"),
    B("POST", "/v1/collections/c/search", JSON, "{\"text\":\"a\",\"k\":\"3\"}", 400, "invalid_type"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":[]}", 422, "empty"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":{}}", 400, "invalid_type"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":[{\"id\":1,\"text\":\"b\"}]}", 400, "invalid_type"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":[{\"text\":\"b\"}]}", 400, "missing_field"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":[{\"id\":\"\",\"text\":\"b\"}]}", 422, "invalid_id"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":[{\"id\":\"a\"}]}", 400, "missing_field"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":[{\"id\":\"a\",\"text\":\"b\",\"meta\":[1]}]}", 400, "invalid_type"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":[{\"id\":\"a\",\"text\":\"b\",\"x\":1}]}", 400, "unknown_field"),
    B("POST", "/v1/collections/c/documents", JSON, "{\"documents\":[5]}", 400, "invalid_type"),
    /* routes and methods */
    B("GET", "/index.html", NULL, NULL, 404, "not_found"),
    B("POST", "/", JSON, "{}", 405, "method_not_allowed"),
    B("GET", "/v2/info", NULL, NULL, 404, "not_found"),
    B("GET", "/v1/nothing", NULL, NULL, 404, "not_found"),
    B("GET", "/v1/collections/c/documents/a/b", NULL, NULL, 404, "not_found"),
    B("GET", "/v1/embed", NULL, NULL, 405, "method_not_allowed"),
    B("DELETE", "/v1/info", NULL, NULL, 405, "method_not_allowed"),
    B("PUT", "/v1/embeddings", JSON, "{}", 405, "method_not_allowed"),
    B("POST", "/healthz", JSON, "{}", 405, "method_not_allowed"),
    B("PATCH", "/v1/collections/c", JSON, "{}", 405, "method_not_allowed"),
    B("POST", "/v1/collections", JSON, "{}", 405, "method_not_allowed"),
};

START_TEST(test_malformed_battery)
{
    char big[70000];
    struct tu_response r;
    int n = 0;

    start(NULL);
    json_decref(call("PUT", "/v1/collections/c", NULL, 201));
    for (size_t i = 0; i < sizeof(battery) / sizeof(battery[0]); i++) {
        const struct bad *b = &battery[i];
        size_t len = b->body ? (b->len ? b->len : strlen(b->body)) : 0;
        json_error_t je;
        json_t *j;
        ck_assert_msg(tu_http(daemon_.port, b->method, b->path, b->type, b->body, len, &r) == 0,
                      "case %zu: no reply", i);
        ck_assert_msg(r.status == b->status, "case %zu (%s %s %s): status %ld, want %ld: %s", i,
                      b->method, b->path, b->body ? b->body : "", r.status, b->status, r.body);
        j = json_loads(r.body, 0, &je);
        ck_assert_msg(j != NULL, "case %zu: reply is not JSON", i);
        if (b->code != NULL) {
            json_t *err = json_object_get(j, "error");
            ck_assert_msg(err != NULL && json_is_string(json_object_get(err, "message")) &&
                          json_string_length(json_object_get(err, "message")) > 0,
                          "case %zu: no error message", i);
            ck_assert_msg(strcmp(json_string_value(json_object_get(err, "code")), b->code) == 0,
                          "case %zu: code %s, want %s", i,
                          json_string_value(json_object_get(err, "code")), b->code);
        }
        if (b->status == 405)
            ck_assert_ptr_nonnull(strstr(r.headers, "Allow:"));
        json_decref(j);
        tu_response_free(&r);
        n++;
    }
    /* oversized bodies: with Content-Length, and chunked without it */
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(tu_http(daemon_.port, "POST", "/v1/embed", JSON, big, sizeof(big), &r), 0);
    ck_assert_int_eq(r.status, 413);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http_chunked(daemon_.port, "/v1/embed", big, sizeof(big), &r), 0);
    ck_assert_int_eq(r.status, 413);
    tu_response_free(&r);
    /* a text over max_text_bytes */
    {
        char body[4000];
        snprintf(body, sizeof(body), "{\"texts\":[\"%03000d\"]}", 1);
        ck_assert_int_eq(tu_http(daemon_.port, "POST", "/v1/embed", JSON, body, strlen(body), &r), 0);
        ck_assert_int_eq(r.status, 413);
        tu_response_free(&r);
    }
    /* a truncated body: the client closes after promising more */
    ck_assert_int_eq(tu_http_truncated(daemon_.port, "/v1/embed", "{\"texts\":[\"a", 500), 0);
    n += 4;
    ck_assert_int_ge(n, 60);

    /* the daemon is alive and right */
    {
        char buf[256];
        json_t *j;
        snprintf(buf, sizeof(buf), "{\"texts\":[\"%s\"]}", case_text(0));
        j = call("POST", "/v1/embed", buf, 200);
        ck_assert(max_diff(json_array_get(json_object_get(j, "embeddings"), 0),
                           json_object_get(case_at(0), "embedding")) < 1e-4);
        json_decref(j);
    }
    stop();
}
END_TEST

/* The message of an error reply; the reply must be JSON of the documented
 * shape with status want and code. */
static char *
error_message(const char *method, const char *path, const char *body, long want,
              const char *code)
{
    json_t *j = call(method, path, body, want), *err = json_object_get(j, "error");
    char *msg;

    ck_assert_msg(json_is_string(json_object_get(err, "code")) &&
                  strcmp(json_string_value(json_object_get(err, "code")), code) == 0,
                  "%s %s: want code %s", method, path, code);
    ck_assert(json_is_string(json_object_get(err, "message")));
    msg = strdup(json_string_value(json_object_get(err, "message")));
    json_decref(j);
    return msg;
}

START_TEST(test_echo_nul_usage)
{
    char body[2048], *msg;
    json_t *j, *a, *b;

    start(NULL);
    /* echoed input that is not UTF-8 is escaped, not a 500 */
    msg = error_message("PUT", "/v1/collections/%ff", NULL, 422, "invalid_name");
    ck_assert_ptr_nonnull(strstr(msg, "\\xff"));
    free(msg);
    msg = error_message("GET", "/v1/nothing%e4%bd%a0%ff", NULL, 404, "not_found");
    ck_assert_ptr_nonnull(strstr(msg, "%e4%bd%a0%ff"));
    free(msg);
    /* a long echo is cut between characters */
    strcpy(body, "{\"texts\":[\"a\"],\"");
    for (int i = 0; i < 300; i++)
        strcat(body, "字");
    strcat(body, "\":1}");
    msg = error_message("POST", "/v1/embed", body, 400, "unknown_field");
    ck_assert_ptr_nonnull(strstr(msg, "unknown field '字字"));
    ck_assert_uint_le(strlen(msg), 600);
    ck_assert_str_eq(msg + strlen(msg) - 3, "...");
    free(msg);
    snprintf(body, sizeof(body), "{\"index\":\"%s\"}", "字字字字字字字字字字字字字字字字字字字字字字字字字字字字字字字字字");
    json_decref(call("PUT", "/v1/collections/idx", body, 422));

    /* \u0000 is valid JSON: texts may hold it, names and ids may not */
    j = call("POST", "/v1/tokenize", "{\"texts\":[\"我a\\u0000b\",\"我ab\"]}", 200);
    ck_assert(json_equal(json_array_get(json_object_get(j, "ids"), 0),
                         json_array_get(json_object_get(j, "ids"), 1)));
    json_decref(j);
    a = call("POST", "/v1/embed", "{\"texts\":[\"我a\\u0000b\"]}", 200);
    b = call("POST", "/v1/embed", "{\"texts\":[\"我ab\"]}", 200);
    ck_assert(max_diff(json_array_get(json_object_get(a, "embeddings"), 0),
                       json_array_get(json_object_get(b, "embeddings"), 0)) < 1e-6);
    json_decref(a);
    json_decref(b);
    json_decref(call("PUT", "/v1/collections/c", NULL, 201));
    msg = error_message("POST", "/v1/collections/c/documents",
                        "{\"documents\":[{\"id\":\"a\\u0000\",\"text\":\"b\"}]}", 422, "invalid_id");
    ck_assert_ptr_nonnull(strstr(msg, "U+0000"));
    free(msg);
    msg = error_message("DELETE", "/v1/collections/c/documents/a%00", NULL, 422, "invalid_id");
    ck_assert_ptr_nonnull(strstr(msg, "U+0000"));
    free(msg);
    msg = error_message("PUT", "/v1/collections/c%00d", NULL, 422, "invalid_name");
    ck_assert_ptr_nonnull(strstr(msg, "U+0000"));
    free(msg);

    /* /v1/similarity reports usage like /v1/embed */
    strcpy(body, "{\"source\":\"");
    for (int i = 0; i < 100; i++)
        strcat(body, "好");
    strcat(body, "\",\"targets\":[\"好\",\"坏\"]}");
    j = call("POST", "/v1/similarity", body, 200);
    ck_assert_int_eq(json_array_size(json_object_get(j, "scores")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"), "truncated_texts")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"), "tokens")), 64 + 3 + 3);
    json_decref(j);
    stop();
}
END_TEST

/* --- HTTP framing, on raw sockets ----------------------------------------- */

#define POST_HEAD "POST /v1/tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

/* Send raw on a new connection: the server must answer once with status
 * and a JSON error of code, and close the connection within 5 s. */
static void
raw_expect(const char *what, const char *raw, size_t len, const char *fill, size_t fill_len,
           int status, const char *code)
{
    char *reply, *p, *final = NULL, want[32];
    int replies = 0;
    json_error_t je;
    json_t *j;

    ck_assert_msg(tu_raw(daemon_.port, raw, len, fill, fill_len, 5.0, &reply, NULL) == 0,
                  "%s: the connection stayed open: %s", what, reply);
    for (p = reply; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++) {
        if ((p == reply || p[-1] == '\n') && strncmp(p + 9, "100 ", 4) != 0) {
            /* a status line, not of a 100 Continue */
            replies++;
            final = p;
        }
    }
    snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
    ck_assert_msg(replies == 1, "%s: %d replies: %s", what, replies, reply);
    ck_assert_msg(strncmp(final, want, strlen(want)) == 0, "%s: want %d: %s", what, status, reply);
    ck_assert_msg(strstr(final, "\r\nX-Request-Id: ") != NULL, "%s: no request id", what);
    p = strstr(final, "\r\n\r\n");
    ck_assert_ptr_nonnull(p);
    j = json_loads(p + 4, 0, &je);
    ck_assert_msg(j != NULL, "%s: not JSON: %s", what, p + 4);
    ck_assert_msg(strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                         code) == 0, "%s: %s", what, p + 4);
    json_decref(j);
    free(reply);
}

START_TEST(test_http_framing)
{
    static const struct { const char *what, *raw; int status; const char *code; } cases[] = {
        { "two Content-Length", POST_HEAD "Content-Length: 0\r\nContent-Length: 37\r\n\r\n"
          "GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_framing" },
        { "Content-Length and chunked", POST_HEAD "Content-Length: 5\r\n"
          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_framing" },
        { "gzip, chunked", POST_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400,
          "bad_framing" },
        { "identity", POST_HEAD "Transfer-Encoding: identity\r\n\r\n{}", 400, "bad_framing" },
        { "two Transfer-Encoding", POST_HEAD "Transfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_framing" },
        { "Content-Length 1x", POST_HEAD "Content-Length: 1x\r\n\r\n{}", 400, "bad_request" },
        { "Content-Length -1", POST_HEAD "Content-Length: -1\r\n\r\n{}", 400, "bad_request" },
        { "Content-Length +2", POST_HEAD "Content-Length: +2\r\n\r\n{}", 400, "bad_request" },
        { "Content-Length 2^64", POST_HEAD "Content-Length: 18446744073709551616\r\n\r\n{}",
          413, "body_too_large" },
        { "a header line without a colon", "GET /v1/info HTTP/1.1\r\nHost: x\r\nfoo\r\n\r\n",
          400, "bad_request" },
        { "a malformed chunk", POST_HEAD "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
          400, "bad_request" },
        { "Expect and a Content-Length over the cap", POST_HEAD "Expect: 100-continue\r\n"
          "Content-Length: 70000\r\n\r\n", 413, "body_too_large" },
        /* found by fuzz_api: echoed bytes that are not UTF-8 (were 500) */
        { "a path byte 0xff", "GET /nf\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          404, "not_found" },
        { "a method byte 0xe4", "P\xe4T /v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          405, "method_not_allowed" },
    };
    char big[40000], *reply;
    size_t sent;
    struct tu_response r;

    start(NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        raw_expect(cases[i].what, cases[i].raw, strlen(cases[i].raw), NULL, 0, cases[i].status,
                   cases[i].code);
    /* headers over the connection's memory */
    snprintf(big, sizeof(big), "GET /v1/info HTTP/1.1\r\nHost: x\r\nX-Big: %0*d\r\n\r\n", 36000, 0);
    raw_expect("36 kB of headers", big, strlen(big), NULL, 0, 431, "headers_too_large");
    snprintf(big, sizeof(big), "GET /v1/%0*d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             20000, 0);
    raw_expect("a path of 20 kB", big, strlen(big), NULL, 0, 414, "uri_too_long");
    /* with Expect and a Content-Length over the cap there is no 100 */
    ck_assert_int_eq(tu_raw(daemon_.port, POST_HEAD "Expect: 100-continue\r\nContent-Length: 70000\r\n\r\n",
                            strlen(POST_HEAD "Expect: 100-continue\r\nContent-Length: 70000\r\n\r\n"),
                            NULL, 0, 5.0, &reply, NULL), 0);
    ck_assert_ptr_null(strstr(reply, "100 Continue"));
    free(reply);
    /* an endless chunked body: 413 as soon as the cap (64 kB) is passed,
     * then the connection ends (with and without Expect) */
    {
        char fill[4096 + 8];
        double t0 = tu_now();
        size_t n = (size_t)snprintf(fill, sizeof(fill), "1000\r\n");
        memset(fill + n, '0', 4096);
        memcpy(fill + n + 4096, "\r\n", 2);
        n += 4096 + 2;
        raw_expect("endless chunked", POST_HEAD "Transfer-Encoding: chunked\r\n\r\n",
                   strlen(POST_HEAD "Transfer-Encoding: chunked\r\n\r\n"), fill, n, 413,
                   "body_too_large");
        raw_expect("endless chunked after 100", POST_HEAD "Expect: 100-continue\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n",
                   strlen(POST_HEAD "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"),
                   fill, n, 413, "body_too_large");
        ck_assert_msg(tu_now() - t0 < 4.0, "%.1f s", tu_now() - t0);
        ck_assert_int_eq(tu_raw(daemon_.port, POST_HEAD "Transfer-Encoding: chunked\r\n\r\n",
                                strlen(POST_HEAD "Transfer-Encoding: chunked\r\n\r\n"), fill, n,
                                5.0, &reply, &sent), 0);
        ck_assert_msg(sent < 64 * 1024 * 1024, "the server read %zu bytes", sent);
        free(reply);
    }
    /* a chunked body within the cap still works */
    ck_assert_int_eq(tu_http_chunked(daemon_.port, "/v1/tokenize", "{\"texts\":[\"好\"]}",
                                     strlen("{\"texts\":[\"好\"]}"), &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_response_free(&r);
    json_decref(call("GET", "/healthz", NULL, 200));
    stop();
}
END_TEST

/* --- concurrency ---------------------------------------------------------- */

struct worker {
    int id;
    int errors;
    int requests;
    double until;
};

static void *
work(void *arg)
{
    struct worker *w = arg;
    json_t *g = json_array_get(json_object_get(expected, "generation"), 0);
    char buf[1024];

    for (int i = 0; tu_now() < w->until; i++) {
        struct tu_response r;
        json_error_t je;
        json_t *j;
        int kind = (w->id + i) % 4, ok = 0;
        if (kind == 0) {
            snprintf(buf, sizeof(buf), "{\"texts\":[\"%s\"]}", case_text(0));
            if (tu_http(daemon_.port, "POST", "/v1/embed", JSON, buf, strlen(buf), &r) == 0 &&
                r.status == 200 && (j = json_loads(r.body, 0, &je)) != NULL) {
                ok = max_diff(json_array_get(json_object_get(j, "embeddings"), 0),
                              json_object_get(case_at(0), "embedding")) < 1e-4;
                json_decref(j);
            }
        } else if (kind == 1) {
            snprintf(buf, sizeof(buf), "{\"documents\":[{\"id\":\"w%d-%d\",\"text\":\"%s\"}]}",
                     w->id, i, case_text((size_t)(i % 3)));
            ok = tu_http(daemon_.port, "POST", "/v1/collections/c/documents", JSON, buf,
                         strlen(buf), &r) == 0 && r.status == 200;
        } else if (kind == 2) {
            snprintf(buf, sizeof(buf), "{\"text\":\"%s\",\"k\":3}", case_text(4));
            if (tu_http(daemon_.port, "POST", "/v1/collections/c/search", JSON, buf,
                        strlen(buf), &r) == 0 && r.status == 200 &&
                (j = json_loads(r.body, 0, &je)) != NULL) {
                /* the seeded document is always the best hit */
                json_t *hit = json_array_get(json_object_get(j, "hits"), 0);
                ok = hit != NULL && strcmp(json_string_value(json_object_get(hit, "id")), "seed") == 0;
                json_decref(j);
            }
        } else {
            snprintf(buf, sizeof(buf), "{\"text\":\"%s\",\"top_k\":1,\"n\":1,\"k\":1,\"max_length\":8}",
                     json_string_value(json_object_get(g, "source")));
            if (tu_http(daemon_.port, "POST", "/v1/generate", JSON, buf, strlen(buf), &r) == 0 &&
                r.status == 200 && (j = json_loads(r.body, 0, &je)) != NULL) {
                ok = strcmp(json_string_value(json_object_get(json_array_get(
                                json_object_get(j, "paraphrases"), 0), "text")),
                            json_string_value(json_object_get(g, "greedy_text"))) == 0;
                json_decref(j);
            }
        }
        if (!ok) {
            if (w->errors++ < 3)
                fprintf(stderr, "worker %d request %d (kind %d) failed: %ld %s\n", w->id, i,
                        kind, r.status, r.body);
        }
        tu_response_free(&r);
        w->requests++;
    }
    return NULL;
}

START_TEST(test_concurrency)
{
    static const char *const more[] = { "-o", "model.workers=2", NULL };
    pthread_t t[16];
    struct worker w[16];
    char buf[256];
    int total = 0, errors = 0;

    start(more);
    json_decref(call("PUT", "/v1/collections/c", NULL, 201));
    snprintf(buf, sizeof(buf), "{\"documents\":[{\"id\":\"seed\",\"text\":\"%s\"}]}", case_text(4));
    json_decref(call("POST", "/v1/collections/c/documents", buf, 200));
    for (int i = 0; i < 16; i++) {
        w[i] = (struct worker){ i, 0, 0, tu_now() + 4.0 };
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
        total += w[i].requests;
        errors += w[i].errors;
    }
    ck_assert_msg(errors == 0, "%d of %d requests failed", errors, total);
    ck_assert_int_gt(total, 100);
    {
        json_t *j = call("GET", "/v1/collections/c", NULL, 200);
        int upserts = 0;
        for (int i = 0; i < 16; i++)
            for (int k = 0; k < w[i].requests; k++)
                upserts += (i + k) % 4 == 1;
        ck_assert_int_eq(json_integer_value(json_object_get(j, "documents")), upserts + 1);
        json_decref(j);
    }
    stop();
}
END_TEST

START_TEST(test_openai_client)
{
    char port[16], *out, *err;
    char *argv[] = { "/usr/bin/env", "node", "tests/openai/embeddings.mjs", port,
                     (char *)NULL, (char *)NULL, NULL };
    json_error_t je;
    json_t *got;

    start(NULL);
    snprintf(port, sizeof(port), "%d", daemon_.port);
    argv[4] = (char *)case_text(0);
    argv[5] = (char *)case_text(2);
    ck_assert_msg(tu_run(argv, NULL, &out, &err) == 0, "node failed (run scripts/setup.sh "
                  "to install the openai package): %s", err);
    got = json_loads(out, 0, &je);
    ck_assert_msg(got != NULL, "%s", out);
    for (size_t k = 0; k < 2; k++) {
        json_t *want = json_object_get(case_at(k == 0 ? 0 : 2), "embedding");
        ck_assert(max_diff(json_array_get(json_object_get(got, "default"), k), want) < 1e-4);
        ck_assert(max_diff(json_array_get(json_object_get(got, "float"), k), want) < 1e-4);
    }
    ck_assert(max_diff(json_object_get(got, "single"), json_object_get(case_at(0), "embedding")) < 1e-4);
    ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(got, "usage"), "prompt_tokens")), 10);
    json_decref(got);
    free(out);
    free(err);
    stop();
}
END_TEST

/* A vector of the model's dimension h as JSON text: a one-hot of axis i
 * plus 0.1 on axis i + 1, scaled by scale. */
static char *
vector_text(int h, int i, double scale)
{
    json_t *v = json_array();
    char *s;
    for (int j = 0; j < h; j++)
        json_array_append_new(v, json_real(scale * (j == i % h ? 1.0 : j == (i + 1) % h ? 0.1 : 0)));
    s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

/* Filters, search effort and documents with their own vectors, over HTTP. */
START_TEST(test_search_steering)
{
    static const struct { const char *body; long status; const char *code; } bad[] = {
        { "\"filter\":\"cat\"", 400, "invalid_type" },
        { "\"filter\":{\"cat\":{\"$gt\":1}}", 400, "invalid_filter" },
        { "\"filter\":{\"cat\":{\"$exists\":1}}", 400, "invalid_filter" },
        { "\"filter\":{\"cat\":{\"$exists\":true,\"x\":1}}", 400, "invalid_filter" },
        { "\"filter\":{\"$or\":[1]}", 400, "invalid_filter" },
        { "\"filter\":{\"cat\":[[1]]}", 400, "invalid_filter" },
        { "\"filter\":{\"cat\":[{\"a\":1}]}", 400, "invalid_filter" },
        { "\"filter\":{\"cat\":[]}", 422, "out_of_range" },
        { "\"filter\":{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,\"i\":1,"
          "\"j\":1,\"k\":1,\"l\":1,\"m\":1,\"n\":1,\"o\":1,\"p\":1,\"q\":1}", 422, "out_of_range" },
        { "\"ef_search\":\"x\"", 400, "invalid_type" },
        { "\"ef_search\":0", 422, "out_of_range" },
        { "\"ef_search\":4097", 422, "out_of_range" },
        { "\"nprobe\":2", 422, "invalid" },     /* not an IVF index */
    };
    json_t *j, *hits, *info;
    char body[8192], *v0, *v1, *v2, *big, many[1024];
    int h, n_cat_a = 0;

    start(NULL);
    info = call("GET", "/v1/info", NULL, 200);
    h = (int)json_integer_value(json_object_get(json_object_get(info, "model"), "hidden"));
    json_decref(info);
    /* effort at PUT: shown, stored, refused where it does not apply */
    j = call("PUT", "/v1/collections/h", "{\"index\":\"HNSW8\",\"ef_search\":64,"
             "\"ef_construction\":60}", 201);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "ef_search")), 64);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "ef_construction")), 60);
    ck_assert_ptr_null(json_object_get(j, "nprobe"));
    json_decref(j);
    json_decref(call("PUT", "/v1/collections/f", "{\"index\":\"Flat\",\"ef_search\":10}", 422));
    json_decref(call("GET", "/v1/collections/f", NULL, 404));
    json_decref(call("PUT", "/v1/collections/i", "{\"index\":\"IVF4,Flat\",\"nprobe\":5}", 422));
    j = call("PUT", "/v1/collections/i", "{\"index\":\"IVF4,Flat\",\"nprobe\":2}", 201);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "nprobe")), 2);
    json_decref(j);
    j = call("PUT", "/v1/collections/h", "{\"index\":\"HNSW8\",\"ef_search\":32}", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "ef_search")), 32);
    json_decref(j);

    /* documents with their own vectors (any length), text or not, mixed
     * with embedded ones; metadata for filters */
    v0 = vector_text(h, 0, 3.0);
    v1 = vector_text(h, 1, 0.5);
    for (int i = 0; i < 24; i++) {
        char *v = vector_text(h, i, 1.0 + i);
        const char *cat = i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c";
        n_cat_a += i % 3 == 0;
        snprintf(body, sizeof(body), "{\"documents\":[{\"id\":\"d%d\",%s\"vector\":%s,"
                 "\"meta\":{\"cat\":\"%s\",\"i\":%d%s}}]}", i, i % 2 ? "\"text\":\"t\"," : "",
                 v, cat, i, i % 4 == 0 ? ",\"x\":null" : "");
        json_decref(call("POST", "/v1/collections/h/documents", body, 200));
        free(v);
    }
    snprintf(body, sizeof(body), "{\"documents\":[{\"id\":\"e1\",\"text\":\"%s\","
             "\"meta\":{\"cat\":\"a\"}},{\"id\":\"v1\",\"vector\":%s}]}", case_text(0), v1);
    json_decref(call("POST", "/v1/collections/h/documents", body, 200));
    n_cat_a++;
    j = call("GET", "/v1/collections/h/documents/d0", NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "text")), "");
    json_decref(j);
    /* search by the vector scores 1 */
    snprintf(body, sizeof(body), "{\"vector\":%s,\"k\":1}", v0);
    j = call("POST", "/v1/collections/h/search", body, 200);
    hits = json_object_get(j, "hits");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(hits, 0), "id")), "d0");
    ck_assert(fabs(json_real_value(json_object_get(json_array_get(hits, 0), "score")) - 1) < 1e-5);
    json_decref(j);
    /* filters: exactly the matching documents, however many k asks */
    snprintf(body, sizeof(body), "{\"vector\":%s,\"k\":50,\"filter\":{\"cat\":\"a\"},"
             "\"ef_search\":16}", v0);
    j = call("POST", "/v1/collections/h/search", body, 200);
    hits = json_object_get(j, "hits");
    ck_assert_int_eq((int)json_array_size(hits), n_cat_a);
    for (size_t k = 0; k < json_array_size(hits); k++)
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
                             json_array_get(hits, k), "meta"), "cat")), "a");
    json_decref(j);
    snprintf(body, sizeof(body), "{\"vector\":%s,\"k\":50,\"filter\":{\"cat\":[\"b\",\"c\"],"
             "\"x\":{\"$exists\":true},\"i\":[4,8.0,9]}}", v0);
    j = call("POST", "/v1/collections/h/search", body, 200);
    hits = json_object_get(j, "hits");   /* i 4 and 8 carry x: cat b (4) and c (8) */
    ck_assert_int_eq((int)json_array_size(hits), 2);
    json_decref(j);
    snprintf(body, sizeof(body), "{\"vector\":%s,\"k\":50,\"filter\":{\"cat\":\"a\","
             "\"x\":{\"$exists\":false}}}", v0);
    j = call("POST", "/v1/collections/h/search", body, 200);
    ck_assert_int_eq((int)json_array_size(json_object_get(j, "hits")), n_cat_a - 2);  /* 0, 12 */
    json_decref(j);
    /* malformed filters and effort */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *msg;
        snprintf(body, sizeof(body), "{\"vector\":%s,%s}", v0, bad[i].body);
        msg = error_message("POST", "/v1/collections/h/search", body, bad[i].status, bad[i].code);
        free(msg);
    }
    snprintf(many, sizeof(many), "\"filter\":{\"cat\":[");
    for (int i = 0; i < 65; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s%d", i ? "," : "", i);
    strcat(many, "]}");
    snprintf(body, sizeof(body), "{\"vector\":%s,%s}", v0, many);
    json_decref(call("POST", "/v1/collections/h/search", body, 422));
    /* malformed vectors */
    v2 = vector_text(h - 1, 0, 1.0);
    big = vector_text(h, 0, 1e39);
    snprintf(body, sizeof(body), "{\"documents\":[{\"id\":\"w\",\"vector\":%s}]}", v2);
    free(error_message("POST", "/v1/collections/h/documents", body, 422, "wrong_dimension"));
    snprintf(body, sizeof(body), "{\"documents\":[{\"id\":\"w\",\"vector\":%s}]}", big);
    free(error_message("POST", "/v1/collections/h/documents", body, 422, "out_of_range"));
    free(error_message("POST", "/v1/collections/h/documents",
                       "{\"documents\":[{\"id\":\"w\",\"vector\":\"x\"}]}", 400, "invalid_type"));
    free(error_message("POST", "/v1/collections/h/documents",
                       "{\"documents\":[{\"id\":\"w\",\"meta\":{}}]}", 400, "missing_field"));
    free(v2);
    v2 = vector_text(h, 0, 0.0);
    snprintf(body, sizeof(body), "{\"documents\":[{\"id\":\"w\",\"vector\":%s}]}", v2);
    free(error_message("POST", "/v1/collections/h/documents", body, 422, "invalid"));
    json_decref(call("GET", "/v1/collections/h/documents/w", NULL, 404));
    free(v0);
    free(v1);
    free(v2);
    free(big);
    stop();
}
END_TEST

/* Writes reply with their sequence number, which only grows; reads wait
 * for a min_seq, and one never written gets 503 with Retry-After once the
 * request timeout passes; /readyz names the storage. */
START_TEST(test_write_sequence)
{
    const char *more[] = { "-o", "limits.request_timeout=1", NULL };
    char body[512], path[128];
    struct tu_response r;
    json_t *j;
    long long s1, s2, s3;
    double t0;

    start(more);
    json_decref(call("PUT", "/v1/collections/s", NULL, 201));
    snprintf(body, sizeof(body), "{\"documents\":[{\"id\":\"a\",\"text\":\"%s\"},"
             "{\"id\":\"b\",\"text\":\"%s\"}]}", case_text(0), case_text(1));
    j = call("POST", "/v1/collections/s/documents", body, 200);
    s1 = json_integer_value(json_object_get(j, "seq"));
    json_decref(j);
    ck_assert_int_ge(s1, 1);
    snprintf(body, sizeof(body), "{\"documents\":[{\"id\":\"c\",\"text\":\"%s\"}]}",
             case_text(2));
    j = call("POST", "/v1/collections/s/documents", body, 200);
    s2 = json_integer_value(json_object_get(j, "seq"));
    json_decref(j);
    ck_assert_int_eq(s2, s1 + 1);
    j = call("DELETE", "/v1/collections/s/documents/a", NULL, 200);
    s3 = json_integer_value(json_object_get(j, "seq"));
    ck_assert_str_eq(json_string_value(json_object_get(j, "deleted")), "a");
    json_decref(j);
    ck_assert_int_eq(s3, s2 + 1);

    /* reads at a sequence applied */
    snprintf(body, sizeof(body), "{\"text\":\"%s\",\"k\":5,\"min_seq\":%lld}",
             case_text(0), s3);
    j = call("POST", "/v1/collections/s/search", body, 200);
    ck_assert_int_eq(json_array_size(json_object_get(j, "hits")), 2);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/collections/s/documents/c?min_seq=%lld", s3);
    json_decref(call("GET", path, NULL, 200));
    snprintf(path, sizeof(path), "/v1/collections/s/documents/a?min_seq=%lld", s3);
    json_decref(call("GET", path, NULL, 404));
    json_decref(call("GET", "/v1/collections/s/documents/c?min_seq=x", NULL, 400));
    json_decref(call("GET", "/v1/collections/s/documents/c?min_seq=-1", NULL, 400));
    json_decref(call("GET", "/v1/collections/s/documents/c?min_seq=99999999999999999999", NULL,
                     400));
    json_decref(call("POST", "/v1/collections/s/search", "{\"text\":\"x\",\"min_seq\":-1}",
                     422));
    json_decref(call("POST", "/v1/collections/s/search", "{\"text\":\"x\",\"min_seq\":\"1\"}",
                     400));

    /* a sequence not written: 503 after the request timeout */
    snprintf(body, sizeof(body), "{\"text\":\"x\",\"min_seq\":%lld}", s3 + 1);
    t0 = tu_now();
    ck_assert_int_eq(tu_http(daemon_.port, "POST", "/v1/collections/s/search", JSON, body,
                             strlen(body), &r), 0);
    ck_assert_msg(r.status == 503, "%ld %s", r.status, r.body);
    ck_assert_ptr_nonnull(strcasestr(r.headers, "Retry-After:"));
    ck_assert_ptr_nonnull(strstr(r.body, "not_applied_yet"));
    ck_assert_msg(tu_now() - t0 > 0.9 && tu_now() - t0 < 5, "%.2f s", tu_now() - t0);
    tu_response_free(&r);

    j = call("GET", "/readyz", NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "storage")), "sqlite");
    ck_assert(json_is_true(json_object_get(j, "storage_reachable")));
    json_decref(j);
    stop();
}
END_TEST

Suite *
api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("http");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_routes);
    tcase_add_test(tc, test_malformed_battery);
    tcase_add_test(tc, test_echo_nul_usage);
    tcase_add_test(tc, test_http_framing);
    tcase_add_test(tc, test_concurrency);
    tcase_add_test(tc, test_openai_client);
    tcase_add_test(tc, test_search_steering);
    tcase_add_test(tc, test_write_sequence);
    suite_add_tcase(s, tc);
    return s;
}
