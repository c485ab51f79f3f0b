/*
 * check_cli.c: the rosim command line as users run it: tokenize and embed
 * over stdin against the golden fixture, output order, --raw, and the
 * one-line errors for bad models, arguments and input; that rosim and
 * rosimd embed through one pipeline (the same bits for the same text); and
 * rosim import into PostgreSQL while a rosimd replica serves the database.
 */
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgserver.h"
#include "suites.h"
#include "testutil.h"

#define TINY "tests/fixtures/roformer-sim-tiny"

/* The fixture's texts (those without NUL or newlines), one per line. */
static char *
case_lines(json_t *cases, size_t *which, size_t *n)
{
    json_t *c;
    size_t i, len = 0;
    char *buf = malloc(65536);

    *n = 0;
    json_array_foreach(cases, i, c) {
        json_t *t = json_object_get(c, "text");
        if (strlen(json_string_value(t)) != json_string_length(t) ||
            strchr(json_string_value(t), '\n'))
            continue;
        len += (size_t)sprintf(buf + len, "%s\n", json_string_value(t));
        which[(*n)++] = i;
    }
    return buf;
}

static void
check_embed_output(const char *out, json_t *cases, const size_t *which, size_t n,
                   const char *key)
{
    const char *p = out;

    for (size_t k = 0; k < n; k++) {
        const char *nl = strchr(p, '\n');
        json_error_t je;
        json_t *got, *want = json_object_get(json_array_get(cases, which[k]), key);
        ck_assert_ptr_nonnull(nl);
        got = json_loadb(p, (size_t)(nl - p), 0, &je);
        ck_assert_msg(got != NULL, "line %zu is not JSON", k + 1);
        ck_assert_uint_eq(json_array_size(got), json_array_size(want));
        for (size_t j = 0; j < json_array_size(want); j++)
            ck_assert_msg(fabs(json_number_value(json_array_get(got, j)) -
                               json_number_value(json_array_get(want, j))) <= 1e-4,
                          "line %zu, %s[%zu]", k + 1, key, j);
        json_decref(got);
        p = nl + 1;
    }
    ck_assert_str_eq(p, "");
}

START_TEST(test_embed_and_tokenize)
{
    json_error_t je;
    json_t *exp = json_load_file(TINY "/expected.json", JSON_ALLOW_NUL, &je);
    json_t *cases = json_object_get(exp, "cases");
    size_t which[64], n;
    char *in = case_lines(cases, which, &n), *out, *err;
    char *embed[] = { (char *)tu_program("ROSIM", "build/rosim"), "embed", "--model", TINY,
                      "--max-length", "32", "--batch", "3", NULL, NULL };
    char *tok[] = { embed[0], "tokenize", "--model", TINY, "--max-length", "32", NULL };
    const char *p;

    ck_assert_int_ge(n, 9);
    ck_assert_int_eq(tu_run(embed, in, &out, &err), 0);
    check_embed_output(out, cases, which, n, "embedding");
    free(out);
    free(err);
    embed[8] = "--raw";
    ck_assert_int_eq(tu_run(embed, in, &out, &err), 0);
    check_embed_output(out, cases, which, n, "pooled");
    free(out);
    free(err);

    ck_assert_int_eq(tu_run(tok, in, &out, &err), 0);
    p = out;
    for (size_t k = 0; k < n; k++) {
        const char *nl = strchr(p, '\n');
        json_t *got = json_loadb(p, (size_t)(nl - p), 0, &je);
        json_t *c = json_array_get(cases, which[k]);
        ck_assert_ptr_nonnull(got);
        ck_assert(json_equal(json_object_get(got, "ids"), json_object_get(c, "ids")));
        ck_assert(json_equal(json_object_get(got, "tokens"), json_object_get(c, "tokens")));
        json_decref(got);
        p = nl + 1;
    }
    /* UTF-8 is written as is, not escaped */
    ck_assert_ptr_nonnull(strstr(out, "\"喜\""));
    free(out);
    free(err);
    free(in);
    json_decref(exp);
}
END_TEST

START_TEST(test_errors)
{
    char *argv[] = { (char *)tu_program("ROSIM", "build/rosim"), "embed", "--model",
                     "/nonexistent/model", NULL, NULL };
    char *out, *err;

    ck_assert_int_eq(tu_run(argv, "hello\n", &out, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/model"));
    ck_assert_ptr_eq(strchr(err, '\n'), err + strlen(err) - 1);  /* one line */
    free(out);
    free(err);

    argv[3] = TINY;
    ck_assert_int_eq(tu_run(argv, "fine\nbad \xff byte\n", &out, &err), 1);
    ck_assert_str_eq(err, "rosim: line 2: text is not valid UTF-8\n");
    free(out);
    free(err);

    argv[4] = "--batch=0";
    ck_assert_int_eq(tu_run(argv, "", &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--batch"));
    free(out);
    free(err);

    argv[1] = "paint";
    argv[4] = NULL;
    ck_assert_int_eq(tu_run(argv, "", &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "unknown command 'paint'"));
    free(out);
    free(err);
}
END_TEST

START_TEST(test_import_and_search)
{
    /* cases 0 and 2 stored; case 1 as the query: scores are the golden
     * cosines sim(0,1) and sim(1,2) */
    json_error_t je;
    json_t *exp = json_load_file(TINY "/expected.json", JSON_ALLOW_NUL, &je), *pair;
    json_t *cases = json_object_get(exp, "cases");
    char dir[] = "/tmp/rosim-cli-XXXXXX", docs[1024], query[256], *out, *err;
    double sim01 = 0, sim12 = 0;
    size_t i;
    char *imp[] = { (char *)tu_program("ROSIM", "build/rosim"), "import", "--model", TINY,
                    "--data", dir, "--collection", "faq", NULL };
    char *srch[] = { imp[0], "search", "--model", TINY, "--data", dir, "--collection", "faq",
                     "--k", "5", NULL };
    json_t *got, *hits;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    json_array_foreach(json_object_get(exp, "similarity"), i, pair) {
        long a = (long)json_integer_value(json_array_get(pair, 0));
        long b = (long)json_integer_value(json_array_get(pair, 1));
        if (a == 0 && b == 1) sim01 = json_number_value(json_array_get(pair, 2));
        if (a == 1 && b == 2) sim12 = json_number_value(json_array_get(pair, 2));
    }
    snprintf(docs, sizeof(docs),
             "{\"id\":\"zero\",\"text\":\"%s\",\"meta\":{\"lang\":\"zh\"}}\n"
             "{\"id\":\"two\",\"text\":\"%s\"}\n",
             json_string_value(json_object_get(json_array_get(cases, 0), "text")),
             json_string_value(json_object_get(json_array_get(cases, 2), "text")));
    ck_assert_int_eq(tu_run(imp, docs, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "2 docs"));
    free(out);
    free(err);
    snprintf(query, sizeof(query), "%s\n",
             json_string_value(json_object_get(json_array_get(cases, 1), "text")));
    ck_assert_int_eq(tu_run(srch, query, &out, &err), 0);
    got = json_loads(out, 0, &je);
    ck_assert_ptr_nonnull(got);
    hits = json_object_get(got, "hits");
    ck_assert_int_eq(json_array_size(hits), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(hits, 0), "id")), "zero");
    ck_assert(fabs(json_number_value(json_object_get(json_array_get(hits, 0), "score")) - sim01) < 1e-4);
    ck_assert(fabs(json_number_value(json_object_get(json_array_get(hits, 1), "score")) - sim12) < 1e-4);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(hits, 0),
                                                                        "meta"), "lang")), "zh");
    json_decref(got);
    free(out);
    free(err);

    /* a bad line or an unknown field stops the import with its number
     * before anything is stored */
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"x\",\"text\":\"好\"}\n{\"id\":5}\n", &out, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "line 2: expected"));
    ck_assert_ptr_nonnull(strstr(err, "nothing was imported"));
    free(out);
    free(err);
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"x\",\"text\":\"好\"}\n\n"
                                 "{\"id\":\"y\",\"text\":\"好\",\"tags\":[1]}\n", &out, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "line 3: unknown field 'tags'"));
    free(out);
    free(err);
    ck_assert_int_eq(tu_run(srch, "好\n", &out, &err), 0);
    ck_assert_ptr_null(strstr(out, "\"id\":\"x\""));
    ck_assert_ptr_nonnull(strstr(out, "\"id\":\"zero\""));
    free(out);
    free(err);
    imp[7] = "../escape";
    ck_assert_int_eq(tu_run(imp, "", &out, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "is not a collection name"));
    free(out);
    free(err);
    snprintf(docs, sizeof(docs), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(docs), 0);
    json_decref(exp);
}
END_TEST

/* --- one embedding pipeline ------------------------------------------------ */

#define SHORT "我喜欢北京"
#define LONG "今天天气怎么样？我不喜欢北京，微信和支付宝哪个好用？电脑电脑电脑电脑电脑电脑" \
             "电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑电脑" \
             "电脑电脑电脑电脑手机坏了怎么办"
#define DIM_MAX 1024

/* The floats of a JSON list of numbers (as float32, what they were). */
static int
floats_of(json_t *list, float *out)
{
    for (size_t i = 0; i < json_array_size(list) && i < DIM_MAX; i++)
        out[i] = (float)json_number_value(json_array_get(list, i));
    return (int)json_array_size(list);
}

/* The vector a collection stored for document id, read from its docs.db. */
static int
stored_vector(const char *dir, const char *coll, const char *id, float *out)
{
    char path[256];
    sqlite3 *db;
    sqlite3_stmt *st;
    int n = -1;

    snprintf(path, sizeof(path), "%s/%s/docs.db", dir, coll);
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT vector FROM docs WHERE id = ?", -1, &st,
                                        NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_bytes(st, 0) / (int)sizeof(float);
        ck_assert_int_le(n, DIM_MAX);
        memcpy(out, sqlite3_column_blob(st, 0), (size_t)n * sizeof(float));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A text, and one longer than max_length (64) tokens: `rosim embed`,
 * /v1/embed, the vector rosimd stores for it in a collection and the one
 * `rosim import` stores are the same bits. */
START_TEST(test_one_pipeline)
{
    static const char *const texts[] = { SHORT, LONG };
    char dir[] = "/tmp/rosim-pipe-XXXXXX", cmd[128], *out, *err;
    const char *extra[] = { "--model", TINY, "--data", dir, NULL };
    char *emb[] = { (char *)tu_program("ROSIM", "build/rosim"), "embed", "--model", TINY, NULL };
    char *imp[] = { emb[0], "import", "--model", TINY, "--data", dir, "--collection", "cli",
                    NULL };
    static float cli[2][DIM_MAX], http[2][DIM_MAX], kept[2][DIM_MAX], imported[2][DIM_MAX];
    struct tu_daemon d;
    struct tu_response r;
    json_error_t je;
    json_t *j;
    const char *p;
    int H = 0;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(tu_run(emb, SHORT "\n" LONG "\n", &out, &err), 0);
    p = out;
    for (int i = 0; i < 2; i++) {
        j = json_loadb(p, (size_t)(strchr(p, '\n') - p), 0, &je);
        ck_assert_ptr_nonnull(j);
        H = floats_of(j, cli[i]);
        json_decref(j);
        p = strchr(p, '\n') + 1;
    }
    free(out);
    free(err);

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/embed", "application/json",
                             "{\"texts\":[\"" SHORT "\",\"" LONG "\"]}",
                             strlen("{\"texts\":[\"" SHORT "\",\"" LONG "\"]}"), &r), 0);
    ck_assert_int_eq(r.status, 200);
    j = json_loads(r.body, 0, &je);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "truncated_texts")), 1);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(floats_of(json_array_get(json_object_get(j, "embeddings"), (size_t)i),
                                   http[i]), H);
    json_decref(j);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(d.port, "PUT", "/v1/collections/http", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 201);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/collections/http/documents", "application/json",
                             "{\"documents\":[{\"id\":\"0\",\"text\":\"" SHORT "\"},"
                             "{\"id\":\"1\",\"text\":\"" LONG "\"}]}",
                             strlen("{\"documents\":[{\"id\":\"0\",\"text\":\"" SHORT "\"},"
                                    "{\"id\":\"1\",\"text\":\"" LONG "\"}]}"), &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_response_free(&r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);

    ck_assert_int_eq(tu_run(imp, "{\"id\":\"0\",\"text\":\"" SHORT "\"}\n"
                                 "{\"id\":\"1\",\"text\":\"" LONG "\"}\n", &out, &err), 0);
    free(out);
    free(err);
    ck_assert_int_eq(stored_vector(dir, "http", "0", kept[0]), H);
    ck_assert_int_eq(stored_vector(dir, "http", "1", kept[1]), H);
    ck_assert_int_eq(stored_vector(dir, "cli", "0", imported[0]), H);
    ck_assert_int_eq(stored_vector(dir, "cli", "1", imported[1]), H);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(memcmp(cli[i], http[i], (size_t)H * sizeof(float)) == 0,
                      "%s: rosim embed and /v1/embed differ", texts[i]);
        ck_assert_msg(memcmp(http[i], kept[i], (size_t)H * sizeof(float)) == 0,
                      "%s: /v1/embed and the collection's vector differ", texts[i]);
        ck_assert_msg(memcmp(http[i], imported[i], (size_t)H * sizeof(float)) == 0,
                      "%s: /v1/embed and rosim import's vector differ", texts[i]);
    }
    ck_assert_msg(memcmp(cli[0], cli[1], (size_t)H * sizeof(float)) != 0, "texts not told apart");
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Documents with their own vectors: case 1's golden embedding stored
 * without text is what case 1's text finds, with score 1. */
START_TEST(test_import_vectors)
{
    json_error_t je;
    json_t *exp = json_load_file(TINY "/expected.json", JSON_ALLOW_NUL, &je);
    json_t *c1 = json_array_get(json_object_get(exp, "cases"), 1), *got, *hit;
    char dir[] = "/tmp/rosim-cli-XXXXXX", *docs, *vec, *short_vec, query[256], *out, *err;
    char *imp[] = { (char *)tu_program("ROSIM", "build/rosim"), "import", "--model", TINY,
                    "--data", dir, "--collection", "own", NULL };
    char *srch[] = { imp[0], "search", "--model", TINY, "--data", dir, "--collection", "own",
                     "--k", "2", NULL };
    json_t *shorter = json_deep_copy(json_object_get(c1, "embedding"));

    ck_assert_ptr_nonnull(mkdtemp(dir));
    vec = json_dumps(json_object_get(c1, "embedding"), JSON_COMPACT);
    json_array_remove(shorter, 0);
    short_vec = json_dumps(shorter, JSON_COMPACT);
    ck_assert_int_gt(asprintf(&docs, "{\"id\":\"own\",\"vector\":%s,\"meta\":{\"src\":\"x\"}}\n"
                              "{\"id\":\"text\",\"text\":\"%s\"}\n", vec,
                              json_string_value(json_object_get(
                                  json_array_get(json_object_get(exp, "cases"), 0), "text"))), 0);
    ck_assert_int_eq(tu_run(imp, docs, &out, &err), 0);
    free(out);
    free(err);
    snprintf(query, sizeof(query), "%s\n", json_string_value(json_object_get(c1, "text")));
    ck_assert_int_eq(tu_run(srch, query, &out, &err), 0);
    got = json_loads(out, 0, &je);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(json_array_size(json_object_get(got, "hits")), 2);
    hit = json_array_get(json_object_get(got, "hits"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(hit, "id")), "own");
    ck_assert_str_eq(json_string_value(json_object_get(hit, "text")), "");
    ck_assert(fabs(json_number_value(json_object_get(hit, "score")) - 1) < 1e-4);
    json_decref(got);
    free(out);
    free(err);
    free(docs);
    /* a vector of another dimension stops the import before anything is stored */
    ck_assert_int_gt(asprintf(&docs, "{\"id\":\"a\",\"text\":\"好\"}\n{\"id\":\"b\",\"vector\":%s}\n",
                              short_vec), 0);
    ck_assert_int_eq(tu_run(imp, docs, &out, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "line 2: \"vector\" must be a list of"));
    ck_assert_ptr_nonnull(strstr(err, "nothing was imported"));
    free(out);
    free(err);
    free(docs);
    snprintf(query, sizeof(query), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(query), 0);
    free(vec);
    free(short_vec);
    json_decref(shorter);
    json_decref(exp);
}
END_TEST

/* rosim ran with OMP_DYNAMIC or OMP_THREAD_LIMIT as the shell had them:
 * OpenMP then gave oneDNN fewer threads than it planned for and `rosim
 * embed` printed wrong vectors without a word.  It removes them (saying
 * so), as rosimd does. */
START_TEST(test_omp_env_cannot_shrink_teams)
{
    static const char *const vars[][2] = { { "OMP_DYNAMIC", "true" },
                                           { "OMP_THREAD_LIMIT", "1" } };
    json_error_t je;
    json_t *exp = json_load_file(TINY "/expected.json", JSON_ALLOW_NUL, &je);
    json_t *c0 = json_array_get(json_object_get(exp, "cases"), 0), *want, *got;
    char *argv[] = { (char *)tu_program("ROSIM", "build/rosim"), "embed", "--model", TINY,
                     "--threads", "2", NULL };
    char input[256], *out, *err;

    ck_assert_msg(c0 != NULL, "expected.json: %s", je.text);
    want = json_object_get(c0, "embedding");
    snprintf(input, sizeof(input), "%s\n", json_string_value(json_object_get(c0, "text")));
    for (int v = 0; v < 2; v++) {
        double worst = 0;
        setenv(vars[v][0], vars[v][1], 1);
        ck_assert_int_eq(tu_run(argv, input, &out, &err), 0);
        unsetenv(vars[v][0]);
        got = json_loads(out, JSON_DISABLE_EOF_CHECK, &je);
        ck_assert_msg(got != NULL, "%s", out);
        ck_assert_uint_eq(json_array_size(got), json_array_size(want));
        for (size_t i = 0; i < json_array_size(want); i++) {
            double d = fabs(json_number_value(json_array_get(got, i)) -
                            json_number_value(json_array_get(want, i)));
            worst = d > worst ? d : worst;
        }
        ck_assert_msg(worst < 1e-4, "%s=%s: the vector is off by %g", vars[v][0], vars[v][1],
                      worst);
        ck_assert_msg(strstr(err, "ignoring") != NULL && strstr(err, vars[v][0]) != NULL,
                      "no warning: %s", err);
        json_decref(got);
        free(out);
        free(err);
    }
    json_decref(exp);
}
END_TEST

/* rosim import --dsn while a rosimd replica serves the same database: the
 * replica reads every document at the seq the import printed.  Without
 * --data the import leaves nothing behind; with it, the directory keeps
 * its index snapshots.  A malformed --dsn is refused without repeating it. */
static struct tu_pg pg;
static int pg_state = -1;   /* tu_pg_start's result */

static void
pg_setup(void)
{
    pg_state = tu_pg_start(&pg);
}

static void
pg_teardown(void)
{
    if (pg_state == 0)
        tu_pg_destroy(&pg);
}

START_TEST(test_import_into_postgresql)
{
    char *data, *tmp, *kept, dsn[sizeof(pg.dsn) + 16], path[160], *out, *err, *at;
    char *imp[] = { (char *)tu_program("ROSIM", "build/rosim"), "import", "--model", TINY,
                    "--dsn", pg.dsn, "--collection", "imported", NULL, NULL, NULL };
    const char *extra[] = { "--model", TINY, "--data", NULL, "-o", "storage.backend=postgresql",
                            "-o", dsn, NULL };
    struct tu_daemon d;
    struct tu_response r;
    long long seq;
    json_t *j;

    if (pg_state == 1) {
        fprintf(stderr, "check_cli: skipping the import into PostgreSQL: %s\n", pg.why);
        return;
    }
    ck_assert_msg(pg_state == 0, "PostgreSQL did not start: %s", pg.why);
    data = tu_temp_dir("cli-replica");
    tmp = tu_temp_dir("cli-tmp");
    kept = tu_temp_dir("cli-kept");
    snprintf(dsn, sizeof(dsn), "storage.dsn=%s", pg.dsn);
    extra[3] = data;
    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);

    setenv("TMPDIR", tmp, 1);
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"a\",\"text\":\"怎么开通花呗\"}\n"
                                 "{\"id\":\"b\",\"text\":\"花呗怎么还款\",\"meta\":{\"n\":2}}\n"
                                 "{\"id\":\"c\",\"text\":\"借呗额度\"}\n", &out, &err), 0);
    unsetenv("TMPDIR");
    at = strstr(err, "stored through seq ");
    ck_assert_msg(at != NULL, "%s", err);
    seq = atoll(at + strlen("stored through seq "));
    ck_assert_int_ge(seq, 3);
    free(out);
    free(err);
    ck_assert_msg(rmdir(tmp) == 0, "the import left files in its temporary directory");

    snprintf(path, sizeof(path), "/v1/collections/imported/documents/b?min_seq=%lld", seq);
    ck_assert_int_eq(tu_http(d.port, "GET", path, NULL, NULL, 0, &r), 0);
    ck_assert_msg(r.status == 200, "GET %s: %ld %s", path, r.status, r.body);
    j = json_loads(r.body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "text")), "花呗怎么还款");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "meta"), "n")), 2);
    json_decref(j);
    tu_response_free(&r);

    /* again with --data: appended, and the snapshots stay there */
    imp[8] = "--data";
    imp[9] = kept;
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"d\",\"text\":\"余额宝怎么转出\"}\n", &out, &err), 0);
    at = strstr(err, "stored through seq ");
    ck_assert_msg(at != NULL, "%s", err);
    ck_assert_int_gt(atoll(at + strlen("stored through seq ")), seq);
    seq = atoll(at + strlen("stored through seq "));
    free(out);
    free(err);
    ck_assert_msg(rmdir(kept) != 0, "nothing was kept in --data");
    snprintf(path, sizeof(path), "{\"text\":\"花呗\",\"k\":10,\"min_seq\":%lld}", seq);
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/collections/imported/search",
                             "application/json", path, strlen(path), &r), 0);
    ck_assert_msg(r.status == 200, "search: %ld %s", r.status, r.body);
    j = json_loads(r.body, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(j, "hits")), 4);
    json_decref(j);
    tu_response_free(&r);

    imp[5] = "password=hunter2 nonsense";
    ck_assert_int_eq(tu_run(imp, "", &out, &err), 2);
    ck_assert_msg(strstr(err, "rosim: --dsn: ") != NULL && strstr(err, "hunter2") == NULL,
                  "%s", err);
    free(out);
    free(err);

    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    tu_remove_tree(data);
    tu_remove_tree(kept);
    free(data);
    free(tmp);
    free(kept);
}
END_TEST

Suite *
cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("rosim"), *pgc = tcase_create("postgresql");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_embed_and_tokenize);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_import_and_search);
    tcase_add_test(tc, test_one_pipeline);
    tcase_add_test(tc, test_import_vectors);
    tcase_add_test(tc, test_omp_env_cannot_shrink_teams);
    suite_add_tcase(s, tc);
    tcase_add_unchecked_fixture(pgc, pg_setup, pg_teardown);
    tcase_set_timeout(pgc, 120);
    tcase_add_test(pgc, test_import_into_postgresql);
    suite_add_tcase(s, pgc);
    return s;
}
