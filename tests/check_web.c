/*
 * check_web.c: what rosimd serves besides the API: the playground at / and
 * docs/openapi.json at /openapi.json, and that the document and the router
 * agree.
 *
 * - the files: served without a key (the API still needs one), the bytes
 *   of the repository's files, with their Content-Type, a CSP that allows
 *   nothing remote, an ETag that answers 304, GET only;
 * - routes: every documented path answers every documented method (never
 *   "no route") and 405 with the documented methods in Allow to the rest;
 * - the playground in headless Chromium (tests/web/playground.mjs), when
 *   /usr/bin/chromium is installed; its screenshot goes to $WEB_SCREENSHOT
 *   (make check: build/playground.png; docs/playground.png is a copy).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suites.h"
#include "testutil.h"

#define TINY "tests/fixtures/roformer-sim-tiny"
#define JSON "application/json"
#define KEY "web-test-key-0123"
#define AUTH "Authorization: Bearer " KEY
#define CT "Content-Type: application/json\r\n"   /* a header block, for the log */

static struct tu_daemon daemon_;
static char data_dir[64], keys[80];

static void
start(void)
{
    char opt[128];
    const char *extra[] = { "--model", TINY, "--data", data_dir, "-o", opt, NULL };
    FILE *f;

    strcpy(data_dir, "/tmp/rosim-web-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    snprintf(keys, sizeof(keys), "%s.keys", data_dir);
    f = fopen(keys, "w");
    ck_assert_ptr_nonnull(f);
    fputs(KEY "\n", f);
    fclose(f);
    snprintf(opt, sizeof(opt), "server.api_key_file=%s", keys);
    ck_assert_int_eq(tu_daemon_start(&daemon_, extra), 0);
}

static void
stop(void)
{
    char cmd[160];

    ck_assert_int_eq(tu_daemon_stop(&daemon_), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", data_dir, keys);
    ck_assert_int_eq(system(cmd), 0);
}

static long
status_of(const char *method, const char *path, const char *body, const char *header)
{
    struct tu_response r;
    long st;

    ck_assert_int_eq(tu_http_with(daemon_.port, method, path, body ? JSON : NULL, body,
                                  body ? strlen(body) : 0, header, &r), 0);
    st = r.status;
    tu_response_free(&r);
    return st;
}

/* The value of header name in a raw header block (copied to dst), or NULL. */
static const char *
header(const char *headers, const char *name, char *dst, size_t cap)
{
    size_t n = strlen(name);

    for (const char *h = headers; h != NULL; h = strchr(h, '\n'), h = h ? h + 1 : NULL) {
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            const char *v = h + n + 1 + strspn(h + n + 1, " ");
            snprintf(dst, cap, "%.*s", (int)strcspn(v, "\r\n"), v);
            return dst;
        }
    }
    return NULL;
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

START_TEST(test_files)
{
    static const struct { const char *path, *file, *type; } files[] = {
        { "/", "server/web/index.html", "text/html; charset=utf-8" },
        { "/playground.js", "server/web/playground.js", "text/javascript; charset=utf-8" },
        { "/playground.css", "server/web/playground.css", "text/css; charset=utf-8" },
        { "/openapi.json", "docs/openapi.json", "application/json" },
    };
    struct tu_response r;
    char v[512], etag[64], inm[128];

    start();
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len;
        char *want = read_file(files[i].file, &len);
        ck_assert_int_eq(tu_http(daemon_.port, "GET", files[i].path, NULL, NULL, 0, &r), 0);
        ck_assert_msg(r.status == 200, "%s without a key: %ld", files[i].path, r.status);
        ck_assert_msg(r.body_len == len && memcmp(r.body, want, len) == 0, "%s is not %s",
                      files[i].path, files[i].file);
        ck_assert_str_eq(header(r.headers, "Content-Type", v, sizeof(v)), files[i].type);
        ck_assert_ptr_nonnull(header(r.headers, "Content-Security-Policy", v, sizeof(v)));
        ck_assert_ptr_nonnull(strstr(v, "default-src 'none'"));
        ck_assert_ptr_null(strstr(v, "http"));        /* no remote origin */
        ck_assert_ptr_null(strstr(v, "unsafe"));
        ck_assert_str_eq(header(r.headers, "Cache-Control", v, sizeof(v)), "no-cache");
        ck_assert_str_eq(header(r.headers, "X-Content-Type-Options", v, sizeof(v)), "nosniff");
        ck_assert_ptr_nonnull(header(r.headers, "ETag", etag, sizeof(etag)));
        ck_assert_int_eq(etag[0], '"');
        tu_response_free(&r);
        /* the cached copy is current: 304 and no body */
        snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
        ck_assert_int_eq(tu_http_with(daemon_.port, "GET", files[i].path, NULL, NULL, 0, inm, &r), 0);
        ck_assert_int_eq(r.status, 304);
        ck_assert_uint_eq(r.body_len, 0);
        tu_response_free(&r);
        ck_assert_int_eq(status_of("GET", files[i].path, NULL, "If-None-Match: \"other\""), 200);
        ck_assert_int_eq(status_of("HEAD", files[i].path, NULL, NULL), 200);
        ck_assert_int_eq(tu_http(daemon_.port, "POST", files[i].path, JSON, "{}", 2, &r), 0);
        ck_assert_int_eq(r.status, 405);
        ck_assert_str_eq(header(r.headers, "Allow", v, sizeof(v)), "GET");
        tu_response_free(&r);
        free(want);
    }
    /* the API still needs the key; other paths are not files */
    ck_assert_int_eq(status_of("GET", "/v1/info", NULL, NULL), 401);
    ck_assert_int_eq(status_of("GET", "/v1/info", NULL, AUTH), 200);
    ck_assert_int_eq(status_of("GET", "/index.html", NULL, NULL), 401);
    ck_assert_int_eq(status_of("GET", "/index.html", NULL, AUTH), 404);
    ck_assert_int_eq(status_of("GET", "/openapi.json?x=1", NULL, AUTH), 200);
    stop();
}
END_TEST

/* The methods a path of the document has, upper case, in Allow's order. */
static void
documented_methods(json_t *item, char *dst, size_t cap)
{
    static const char *const order[] = { "GET", "PUT", "POST", "DELETE", "PATCH" };
    dst[0] = '\0';
    for (size_t i = 0; i < 5; i++) {
        char lower[8];
        for (size_t k = 0; k <= strlen(order[i]); k++)
            lower[k] = (char)(order[i][k] | (order[i][k] ? 0x20 : 0));
        if (json_object_get(item, lower) != NULL)
            snprintf(dst + strlen(dst), cap - strlen(dst), "%s%s", dst[0] ? ", " : "", order[i]);
    }
}

/* Every documented path, with a collection "c", a document "d" and the
 * loaded model's name standing in for its parameters: each documented
 * method is routed (whatever the status, never "no route"), every other
 * gets 405 with exactly the documented methods in Allow. */
START_TEST(test_routes_match_document)
{
    static const char *const methods[] = { "GET", "PUT", "POST", "DELETE", "PATCH" };
    json_error_t je;
    json_t *doc = json_load_file("docs/openapi.json", 0, &je), *item;
    const char *tmpl;
    struct tu_response r;
    char model[128] = "", allow[64], got[64];
    int paths = 0;

    ck_assert_msg(doc != NULL, "docs/openapi.json: %s", je.text);
    start();
    ck_assert_int_eq(status_of("PUT", "/v1/collections/c", NULL, AUTH), 201);
    ck_assert_int_eq(status_of("POST", "/v1/collections/c/documents",
                               "{\"documents\":[{\"id\":\"d\",\"text\":\"好\"}]}", AUTH), 200);
    ck_assert_int_eq(tu_http_with(daemon_.port, "GET", "/v1/models", NULL, NULL, 0, AUTH, &r), 0);
    if (r.status == 200) {
        json_t *j = json_loads(r.body, 0, &je);
        snprintf(model, sizeof(model), "%s", json_string_value(json_object_get(
            json_array_get(json_object_get(j, "data"), 0), "id")));
        json_decref(j);
    }
    tu_response_free(&r);
    json_object_foreach(json_object_get(doc, "paths"), tmpl, item) {
        char path[256] = "";
        for (const char *p = tmpl; *p != '\0';) {
            const char *end = strchr(p, '{');
            size_t n = end ? (size_t)(end - p) : strlen(p);
            snprintf(path + strlen(path), sizeof(path) - strlen(path), "%.*s", (int)n, p);
            if (end == NULL)
                break;
            snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s",
                     strncmp(end, "{name}", 6) == 0 ? "c" : strncmp(tmpl, "/v1/models/", 11) == 0
                     ? model : "d");
            p = strchr(end, '}') + 1;
        }
        documented_methods(item, allow, sizeof(allow));
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
            char lower[8];
            for (size_t k = 0; k <= strlen(methods[i]); k++)
                lower[k] = (char)(methods[i][k] | (methods[i][k] ? 0x20 : 0));
            ck_assert_int_eq(tu_http_with(daemon_.port, methods[i], path, NULL, NULL, 0, AUTH,
                                          &r), 0);
            if (json_object_get(item, lower) != NULL) {
                ck_assert_msg(r.status != 404 || strstr(r.body, "no route") == NULL,
                              "%s %s is documented but not routed", methods[i], path);
                ck_assert_msg(r.status != 405, "%s %s is documented but answers 405", methods[i],
                              path);
            } else {
                ck_assert_msg(r.status == 405, "%s %s is not documented but answers %ld: %s",
                              methods[i], path, r.status, r.body);
                ck_assert_ptr_nonnull(header(r.headers, "Allow", got, sizeof(got)));
                ck_assert_msg(strcmp(got, allow) == 0, "%s: Allow: %s, documented: %s", path,
                              got, allow);
            }
            tu_response_free(&r);
        }
        paths++;
    }
    ck_assert_int_ge(paths, 18);
    json_decref(doc);
    stop();
}
END_TEST

/* validate.mjs finds a reply that breaks the document: a wrong value, an
 * undocumented status, a wrong Content-Type, a missing header; and passes
 * a right one. */
START_TEST(test_validator_rejects)
{
    static const char *const cases[] = {
        "GET\t200\t8\t32\t15\n/healthz" CT "{\"status\":\"ok\"}",
        "GET\t200\t7\t32\t16\n/readyz" CT "{\"status\":\"bad\"}",
        "GET\t201\t9\t32\t15\n/healthz/" CT "{\"status\":\"ok\"}",
        "GET\t200\t8\t26\t15\n/healthzContent-Type: text/plain\r\n{\"status\":\"ok\"}",
        "POST\t405\t8\t32\t36\n/healthz" CT "{\"error\":{\"code\":\"x\",\"message\":\"y\"}}",
    };
    char log[] = "/tmp/rosim-web-log-XXXXXX", *out = NULL, *err = NULL;
    char *argv[] = { "/usr/bin/env", "node", "tests/web/validate.mjs", "docs/openapi.json", log,
                     NULL };
    int fd = mkstemp(log);
    FILE *f = fdopen(fd, "w");

    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        fprintf(f, "%s\n", cases[i]);
    fclose(f);
    ck_assert_int_eq(tu_run(argv, NULL, &out, &err), 1);
    ck_assert_msg(strstr(err, "does not conform: GET /healthz -> 200 application/json") == NULL,
                  "%s", err);
    ck_assert_msg(strstr(err, "does not conform: GET /readyz -> 200") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "does not conform: GET /healthz/ -> 201") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "does not conform: GET /healthz -> 200 text/plain") != NULL, "%s",
                  err);
    ck_assert_msg(strstr(err, "does not conform: POST /healthz -> 405 application/json:\n"
                              "    no Allow header") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "4 non-conforming replies") != NULL, "%s", err);
    free(out);
    free(err);
    unlink(log);
}
END_TEST

/* The document itself goes through the OpenAPI 3.1 validator: one without
 * info.version is refused before any reply is looked at. */
START_TEST(test_validator_checks_document)
{
    char doc[] = "/tmp/rosim-web-doc-XXXXXX", *out = NULL, *err = NULL;
    char *argv[] = { "/usr/bin/env", "node", "tests/web/validate.mjs", doc, "/dev/null", NULL };
    int fd = mkstemp(doc);
    FILE *f = fdopen(fd, "w");

    ck_assert_ptr_nonnull(f);
    fputs("{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"t\"},\"paths\":{\"/a\":{\"get\":"
          "{\"responses\":{\"200\":{}}}}}}", f);
    fclose(f);
    ck_assert_int_eq(tu_run(argv, NULL, &out, &err), 1);
    ck_assert_msg(strstr(err, "not a valid OpenAPI 3.1 document") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "required property 'version'") != NULL, "%s", err);
    free(out);
    free(err);
    unlink(doc);
}
END_TEST

START_TEST(test_playground_in_chromium)
{
    const char *docs = "{\"documents\":["
        "{\"id\":\"p1\",\"text\":\"这个手机多少钱\",\"meta\":{\"topic\":\"price\"}},"
        "{\"id\":\"p2\",\"text\":\"今天天气怎么样\",\"meta\":{\"topic\":\"weather\"}},"
        "{\"id\":\"p3\",\"text\":\"我想买一部新手机\",\"meta\":{\"topic\":\"shopping\",\"n\":3}}]}";
    char port[16], *out = NULL, *err = NULL;
    char *argv[] = { "/usr/bin/env", "node", "tests/web/playground.mjs", port, KEY, "faq",
                     (char *)tu_program("WEB_SCREENSHOT", "build/playground.png"), NULL };
    int rc;

    if (access("/usr/bin/chromium", X_OK) != 0) {
        fprintf(stderr, "web: /usr/bin/chromium is not installed (scripts/setup.sh installs "
                        "it): the playground test is skipped\n");
        return;
    }
    start();
    ck_assert_int_eq(status_of("PUT", "/v1/collections/faq", NULL, AUTH), 201);
    ck_assert_int_eq(status_of("POST", "/v1/collections/faq/documents", docs, AUTH), 200);
    snprintf(port, sizeof(port), "%d", daemon_.port);
    rc = tu_run(argv, NULL, &out, &err);
    ck_assert_msg(rc == 0, "tests/web/playground.mjs failed:\n%s%s", out, err);
    free(out);
    free(err);
    stop();
}
END_TEST

Suite *
web_suite(void)
{
    Suite *s = suite_create("web");
    TCase *tc = tcase_create("web");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_files);
    tcase_add_test(tc, test_routes_match_document);
    tcase_add_test(tc, test_validator_rejects);
    tcase_add_test(tc, test_validator_checks_document);
    tcase_add_test(tc, test_playground_in_chromium);
    suite_add_tcase(s, tc);
    return s;
}
