/*
 * check_daemon.c: rosimd as a process: configuration checking (-t), the
 * listener, /healthz, JSON errors, the body size cap, clean SIGTERM exit.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "testutil.h"

static void
assert_error_reply(const struct tu_response *r, long status, const char *code)
{
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    const char *got = NULL, *msg = NULL;

    ck_assert_int_eq(r->status, status);
    ck_assert_msg(j != NULL, "reply is not JSON: %s", r->body);
    ck_assert_int_eq(json_unpack(j, "{s:{s:s,s:s}}", "error", "code", &got, "message", &msg), 0);
    ck_assert_str_eq(got, code);
    ck_assert(strlen(msg) > 0);
    json_decref(j);
}

START_TEST(test_config_check)
{
    char *argv[] = { (char *)tu_program("ROSIMD", "build/rosimd"), "-t", "-c",
                     "tests/conf/bad/out-of-range.conf", NULL, NULL, NULL };
    char *err = NULL;

    ck_assert_int_eq(tu_run(argv, NULL, NULL, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "tests/conf/bad/out-of-range.conf:3: [model] threads"));
    free(err);
    argv[3] = "conf/rosimd.conf";
    argv[4] = "--model";
    argv[5] = "tests/fixtures/roformer-sim-tiny";
    ck_assert_int_eq(tu_run(argv, NULL, NULL, NULL), 0);
    argv[4] = NULL;
    argv[1] = "-o";
    argv[2] = "model.threads=0";
    argv[3] = "-t";
    ck_assert_int_eq(tu_run(argv, NULL, NULL, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "command line: [model] threads: 0 is out of range"));
    free(err);
}
END_TEST

/* `rosimd -t -c conf/rosimd.conf --model TINY OPTION VALUE` (a later -c
 * wins): status 1 and a message containing want, as a start would fail. */
static void
refused(const char *option, const char *value, const char *want)
{
    char *argv[] = { (char *)tu_program("ROSIMD", "build/rosimd"), "-t", "-c", "conf/rosimd.conf",
                     "--model", "tests/fixtures/roformer-sim-tiny", (char *)option, (char *)value,
                     NULL };
    char *err = NULL;

    ck_assert_int_eq(tu_run(argv, NULL, NULL, &err), 1);
    ck_assert_msg(strstr(err, want) != NULL, "got '%s', want '%s'", err, want);
    free(err);
}

/* -t said "valid" for each of these, and a start then failed or served
 * something else than configured. */
START_TEST(test_config_check_catches_start_failures)
{
    char *ok[] = { (char *)tu_program("ROSIMD", "build/rosimd"), "-t", "--model",
                   "tests/fixtures/roformer-sim-tiny", "--api-key-file",
                   "tests/fixtures/api-keys", NULL };

    refused("-c", "tests/conf", "tests/conf: is a directory");
    refused("-c", "tests/conf/bad/unknown-empty-section.conf",
            "unknown-empty-section.conf:4: unknown section [gpu]");
    refused("-o", "server.api_key_file=/nonexistent/keys",
            "[server] api_key_file: /nonexistent/keys: cannot read the API keys");
    refused("-o", "storage.default_index=PQ1x22",
            "[storage] default_index: index type 'PQ1x22': PQ1x22: bits per code must be 1 to 8");
    refused("-o", "storage.default_index=Garbage",
            "[storage] default_index: index type 'Garbage': 'Garbage' is not a supported");
    refused("--model", "/nonexistent/model",
            "[model] dir: /nonexistent/model: No such file or directory");
    refused("--model", "conf/rosimd.conf", "[model] dir: conf/rosimd.conf is not a directory");
    /* the documented --api-key-file flag */
    ck_assert_int_eq(tu_run(ok, NULL, NULL, NULL), 0);
}
END_TEST

START_TEST(test_healthz_and_errors)
{
    static const char *const extra[] = { "-o", "server.max_body_bytes=2k", "--model",
                                         "tests/fixtures/roformer-sim-tiny", "--data",
                                         "/tmp/rosim-daemon-test-data", NULL };
    struct tu_daemon d;
    struct tu_response r;
    char big[4096];

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);

    ck_assert_int_eq(tu_http(d.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    ck_assert_ptr_nonnull(strstr(r.headers, "application/json"));
    tu_response_free(&r);

    ck_assert_int_eq(tu_http(d.port, "GET", "/no/such/route", NULL, NULL, 0, &r), 0);
    assert_error_reply(&r, 404, "not_found");
    tu_response_free(&r);

    ck_assert_int_eq(tu_http(d.port, "DELETE", "/healthz", NULL, NULL, 0, &r), 0);
    assert_error_reply(&r, 405, "method_not_allowed");
    tu_response_free(&r);

    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(tu_http(d.port, "POST", "/healthz", "application/json", big,
                             sizeof(big), &r), 0);
    assert_error_reply(&r, 413, "body_too_large");
    tu_response_free(&r);

    /* a body in a content coding was read as plain JSON (a gzip one got
     * "not valid JSON"): 415 now */
    ck_assert_int_eq(tu_http_with(d.port, "POST", "/v1/tokenize", "application/json",
                                  "{\"texts\":[\"a\"]}", 15, "Content-Encoding: gzip", &r), 0);
    assert_error_reply(&r, 415, "unsupported_media_type");
    tu_response_free(&r);
    ck_assert_int_eq(tu_http_with(d.port, "POST", "/v1/tokenize", "application/json",
                                  "{\"texts\":[\"a\"]}", 15, "Content-Encoding: identity", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_response_free(&r);

    /* JSON in another charset was read as UTF-8: 415 now; UTF-8 said
     * explicitly is fine */
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/tokenize", "application/json; charset=latin1",
                             "{\"texts\":[\"a\"]}", 15, &r), 0);
    assert_error_reply(&r, 415, "unsupported_media_type");
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/tokenize", "application/json; charset=UTF-8",
                             "{\"texts\":[\"a\"]}", 15, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/tokenize", "application/json;charset=\"utf-8\"",
                             "{\"texts\":[\"a\"]}", 15, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_response_free(&r);

    /* still serving after all that */
    ck_assert_int_eq(tu_http(d.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_response_free(&r);

    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_int_eq(system("rm -rf /tmp/rosim-daemon-test-data"), 0);
}
END_TEST

Suite *
daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("process");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_config_check);
    tcase_add_test(tc, test_config_check_catches_start_failures);
    tcase_add_test(tc, test_healthz_and_errors);
    suite_add_tcase(s, tc);
    return s;
}
