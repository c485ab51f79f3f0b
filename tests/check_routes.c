/*
 * check_routes.c: the route table of server/routes.c against
 * docs/openapi.json, in process (no daemon):
 *
 * - the table's {method, pattern} rows and the document's paths and
 *   methods are the same set, each way;
 * - every row is found by route_match() for its own method, on a path
 *   made from its pattern;
 * - every other method on that path is answered 405 by api_handle(), with
 *   exactly the table's methods of the path, in table order, in Allow (an
 *   app that is not loaded: 405 comes before 503);
 * - a collection still being dropped answers a PUT 429 and is counted in
 *   rosim_rejected_total as "busy", not as a full queue.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../index/store.h"
#include "../server/api_internal.h"
#include "../server/metrics.h"
#include "../server/routes.h"
#include "suites.h"

static const char *const methods[] = { "GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS" };
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

static void
lower(const char *s, char *out, size_t cap)
{
    size_t i;

    for (i = 0; s[i] != '\0' && i + 1 < cap; i++)
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    out[i] = '\0';
}

static json_t *
paths_of_document(void)
{
    json_error_t je;
    json_t *doc = json_load_file("docs/openapi.json", 0, &je), *paths;

    ck_assert_msg(doc != NULL, "docs/openapi.json: %s", je.text);
    paths = json_incref(json_object_get(doc, "paths"));
    json_decref(doc);
    ck_assert_ptr_nonnull(paths);
    return paths;
}

/* Whether the table has a row {method, pattern}. */
static int
in_table(const char *method, const char *pattern)
{
    int n;
    const struct route *t = route_table(&n);

    for (int i = 0; i < n; i++)
        if (strcmp(t[i].method, method) == 0 && strcmp(t[i].pattern, pattern) == 0)
            return 1;
    return 0;
}

/* The pattern with its parameters filled in. */
static void
path_of(const char *pattern, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = pattern; *p != '\0';) {
        const char *open = strchr(p, '{');
        size_t n = open != NULL ? (size_t)(open - p) : strlen(p);
        snprintf(out + strlen(out), cap - strlen(out), "%.*s", (int)n, p);
        if (open == NULL)
            break;
        snprintf(out + strlen(out), cap - strlen(out), "%s",
                 strncmp(open, "{name}", 6) == 0 ? "c" : strncmp(open, "{id}", 4) == 0 ? "d" : "m");
        p = strchr(open, '}') + 1;
    }
}

START_TEST(test_table_is_document)
{
    json_t *paths = paths_of_document(), *item;
    const char *tmpl;
    int n, rows = 0;
    const struct route *t = route_table(&n);

    for (int i = 0; i < n; i++) {
        char m[16];
        lower(t[i].method, m, sizeof(m));
        ck_assert_msg(json_object_get(json_object_get(paths, t[i].pattern), m) != NULL,
                      "%s %s is in the route table but not in docs/openapi.json", t[i].method,
                      t[i].pattern);
    }
    json_object_foreach(paths, tmpl, item) {
        for (size_t k = 0; k < N_METHODS; k++) {
            char m[16];
            lower(methods[k], m, sizeof(m));
            if (json_object_get(item, m) == NULL)
                continue;
            ck_assert_msg(in_table(methods[k], tmpl),
                          "%s %s is in docs/openapi.json but not in the route table", methods[k],
                          tmpl);
            rows++;
        }
    }
    ck_assert_int_eq(rows, n);
    json_decref(paths);
}
END_TEST

START_TEST(test_methods_and_allow)
{
    int n;
    const struct route *t = route_table(&n);
    struct app a;

    memset(&a, 0, sizeof(a));       /* not loaded */
    for (int i = 0; i < n; i++) {
        char path[256], allow[64] = "";
        struct route_match m;
        path_of(t[i].pattern, path, sizeof(path));
        ck_assert_int_eq(route_match(t[i].method, path, &m), ROUTE_FOUND);
        ck_assert_ptr_eq(m.route, &t[i]);
        for (int j = 0; j < n; j++)
            if (strcmp(t[j].pattern, t[i].pattern) == 0)
                snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
                         allow[0] != '\0' ? ", " : "", t[j].method);
        for (size_t k = 0; k < N_METHODS; k++) {
            struct api_request rq = { .method = methods[k], .path = path };
            struct api_reply rp;
            if (in_table(methods[k], t[i].pattern))
                continue;
            api_handle(&a, &rq, &rp);
            ck_assert_msg(rp.status == 405, "%s %s: %d, not 405", methods[k], path, rp.status);
            ck_assert_ptr_nonnull(rp.allow);
            ck_assert_str_eq(rp.allow, allow);
            ck_assert_str_eq(rp.route, t[i].pattern);
            json_decref(rp.json);
        }
    }
}
END_TEST

/* Paths no row has: 404 in the native shape, counted as "other". */
START_TEST(test_unknown_paths)
{
    static const char *const paths[] = { "/v1", "/v1/nothing", "/v1/collections/c/x",
                                         "/v1/models/m/x", "/healthz/x", "/x/v1/info" };
    struct app a;

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct api_request rq = { .method = "GET", .path = paths[i] };
        struct api_reply rp;
        api_handle(&a, &rq, &rp);
        ck_assert_msg(rp.status == 404, "%s: %d", paths[i], rp.status);
        ck_assert_str_eq(rp.route, "other");
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rp.json, "error"),
                                                           "code")), "not_found");
        json_decref(rp.json);
    }
}
END_TEST

/* The value of series in the metrics text, -1 when absent. */
static double
series(const char *text, const char *name)
{
    const char *at = strstr(text, name);
    return at != NULL ? atof(at + strlen(name)) : -1;
}

/* A PUT on a collection still being dropped (a request still held it) was
 * counted as reason="queue_full", which alerts on capacity for no reason. */
START_TEST(test_busy_collection_is_not_a_full_queue)
{
    char dir[] = "/tmp/rosim-busy-XXXXXX", cmd[64];
    struct store_options o = { 4, "m", COLL_FSYNC_OFF, 0, "Flat", NULL, NULL, NULL };
    struct api_request rq = { "PUT", "/v1/collections/c", NULL, "", 0, NULL, NULL, NULL, NULL };
    struct api_reply rp = { 0, NULL, 0, NULL, NULL };
    struct app a;
    struct store *s;
    struct coll *held;
    struct rs_error e;
    char *before, *after;
    int created;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(store_open(&s, dir, &o, &e), RS_OK);
    ck_assert_int_eq(store_create(s, "c", NULL, &created, &e), RS_OK);
    held = store_acquire(s, "c");
    ck_assert_ptr_nonnull(held);
    ck_assert_int_eq(store_drop(s, "c", &e), RS_OK);   /* still held: being dropped */
    memset(&a, 0, sizeof(a));
    a.store = s;
    atomic_store(&a.ready, 1);
    before = metrics_render(NULL);
    api_handle(&a, &rq, &rp);
    after = metrics_render(NULL);
    ck_assert_int_eq(rp.status, 429);
    ck_assert_int_eq(rp.retry_after, 1);
    ck_assert_double_eq(series(after, "reason=\"busy\"} "),
                        series(before, "reason=\"busy\"} ") + 1);
    ck_assert_double_eq(series(after, "reason=\"queue_full\"} "),
                        series(before, "reason=\"queue_full\"} "));
    free(before);
    free(after);
    json_decref(rp.json);
    store_release(s, held);
    store_close(s);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *
routes_suite(void)
{
    Suite *s = suite_create("routes");
    TCase *tc = tcase_create("table");

    tcase_add_test(tc, test_table_is_document);
    tcase_add_test(tc, test_methods_and_allow);
    tcase_add_test(tc, test_unknown_paths);
    tcase_add_test(tc, test_busy_collection_is_not_a_full_queue);
    suite_add_tcase(s, tc);
    return s;
}
