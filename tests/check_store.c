/*
 * check_store.c: the data directory as a whole: collections that cannot
 * open are kept as failed and reported while the others are served
 * (in-process and through rosimd), a drop is durable when acknowledged,
 * one process owns a data directory, and file permissions are checked at
 * start (rosimd run as an unprivileged user, since root ignores them).
 */
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../index/store.h"
#include "suites.h"
#include "testutil.h"

#define DIM 16
#define NOBODY 65534
#define MODEL "tests/fixtures/roformer-sim-tiny"

/* --- helpers -------------------------------------------------------------- */

static char reports[8192];

static void
collect(void *arg, const char *collection, const char *what)
{
    size_t len = strlen(reports);
    (void)arg;
    snprintf(reports + len, sizeof(reports) - len, "%s: %s\n", collection ? collection : "-",
             what);
}

static struct store *
open_store(const char *data, int dim, const char *fingerprint)
{
    struct store_options o = { dim, fingerprint, COLL_FSYNC_ALWAYS, 0, "Flat", collect, NULL, NULL };
    struct store *s;
    struct rs_error e;

    ck_assert_msg(store_open(&s, data, &o, &e) == RS_OK, "%s", e.msg);
    return s;
}

/* Create the collection name with one document. */
static void
make_coll(struct store *s, const char *name, int dim)
{
    float v[DIM] = { 1 };
    struct coll_doc d = { "d1", "文本", NULL, v, 0 };
    struct rs_error e;
    struct coll *c;
    int created;

    ck_assert_int_eq(dim <= DIM, 1);
    ck_assert_msg(store_create(s, name, NULL, &created, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(store_get(s, name, &c, &e), RS_OK);
    ck_assert_msg(coll_upsert(c, &d, 1, NULL, &e) == RS_OK, "%s", e.msg);
    store_release(s, c);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static int
exists(const char *dir, const char *name)
{
    char path[1300];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* The entry of list named name. */
static const struct store_info *
info_of(const struct store_info *list, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            return &list[i];
    return NULL;
}

/* --- in process ----------------------------------------------------------- */

START_TEST(test_failed_collections_are_kept)
{
    char *dir = tu_temp_dir("store"), data[600], path[700];
    struct store *s;
    struct store_info *list;
    const struct store_info *in;
    struct coll *c;
    struct rs_error e;
    int n, created;

    snprintf(data, sizeof(data), "%s/data", dir);
    s = open_store(data, DIM, "model-a");
    make_coll(s, "other", DIM);
    store_close(s);
    s = open_store(data, 8, "model-b");
    make_coll(s, "narrow", 8);
    store_close(s);
    s = open_store(data, DIM, "model-b");
    make_coll(s, "good", DIM);
    make_coll(s, "damaged", DIM);
    store_close(s);
    snprintf(path, sizeof(path), "%s/damaged/docs.db", data);
    write_file(path, "this is not an SQLite database, not even close to one...........");
    snprintf(path, sizeof(path), "%s/damaged/index.snap", data);
    unlink(path);

    reports[0] = '\0';
    s = open_store(data, DIM, "model-b");
    ck_assert_int_eq(store_list(s, &list, &n), RS_OK);
    ck_assert_int_eq(n, 4);
    ck_assert_str_eq(list[0].name, "damaged");   /* sorted */
    ck_assert_int_eq(info_of(list, n, "good")->failed, 0);
    in = info_of(list, n, "other");
    ck_assert_int_eq(in->failed, 1);
    ck_assert_msg(strstr(in->reason, "built with model model-a") != NULL, "%s", in->reason);
    in = info_of(list, n, "narrow");
    ck_assert_int_eq(in->failed, 1);
    ck_assert_msg(strstr(in->reason, "8-dimensional") != NULL, "%s", in->reason);
    ck_assert_int_eq(info_of(list, n, "damaged")->failed, 1);
    for (int i = 0; i < n; i++)   /* no absolute paths */
        ck_assert_msg(strstr(list[i].reason, dir) == NULL, "%s", list[i].reason);
    free(list);
    /* each failure reported once, by name */
    ck_assert_msg(strstr(reports, "other: cannot be opened") != NULL, "%s", reports);
    ck_assert_msg(strstr(reports, "narrow: cannot be opened") != NULL, "%s", reports);
    ck_assert_msg(strstr(reports, "damaged: cannot be opened") != NULL, "%s", reports);
    ck_assert_ptr_null(strstr(reports, "good:"));

    ck_assert_int_eq(store_get(s, "good", &c, &e), RS_OK);
    store_release(s, c);
    ck_assert_int_eq(store_get(s, "other", &c, &e), RS_EEXIST);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(e.msg, "model-a"));
    ck_assert_ptr_null(store_acquire(s, "other"));
    ck_assert_int_eq(store_get(s, "none", &c, &e), RS_ENOTFOUND);
    /* never overwritten by a create */
    ck_assert_int_eq(store_create(s, "damaged", NULL, &created, &e), RS_EEXIST);
    ck_assert_ptr_nonnull(strstr(e.msg, "cannot be opened"));
    snprintf(path, sizeof(path), "%s/damaged/docs.db", data);
    ck_assert_int_eq(access(path, F_OK), 0);
    /* but dropped on request, and then the name is free */
    ck_assert_int_eq(store_drop(s, "damaged", &e), RS_OK);
    ck_assert_int_eq(exists(data, "damaged"), 0);
    ck_assert_int_eq(store_create(s, "damaged", NULL, &created, &e), RS_OK);
    ck_assert_int_eq(created, 1);
    store_close(s);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_snapshot_problems_are_reported)
{
    char *dir = tu_temp_dir("store"), data[600], path[700];
    struct store *s;

    snprintf(data, sizeof(data), "%s/data", dir);
    s = open_store(data, DIM, "m");
    make_coll(s, "c", DIM);
    /* a directory where the snapshot's temporary file goes: the shutdown
     * snapshot fails whoever runs this */
    snprintf(path, sizeof(path), "%s/c/index.snap.tmp", data);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    reports[0] = '\0';
    store_close(s);
    ck_assert_msg(strstr(reports, "c: the index snapshot could not be written") != NULL,
                  "%s", reports);
    ck_assert_int_eq(rmdir(path), 0);
    /* no snapshot at all: the index is rebuilt, and that is said */
    reports[0] = '\0';
    s = open_store(data, DIM, "m");
    ck_assert_msg(strstr(reports, "c: no usable index snapshot: the index was rebuilt from its "
                                  "1 stored vectors") != NULL, "%s", reports);
    store_close(s);
    reports[0] = '\0';
    s = open_store(data, DIM, "m");   /* written at the last close */
    ck_assert_str_eq(reports, "");
    store_close(s);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_drop_is_durable)
{
    char *dir = tu_temp_dir("store"), data[600], path[700];
    struct store *s;
    struct coll *c;
    struct rs_error e;
    char **names;
    int n;

    snprintf(data, sizeof(data), "%s/data", dir);
    s = open_store(data, DIM, "m");
    make_coll(s, "a", DIM);
    make_coll(s, "b", DIM);
    /* in use while dropped: the name is gone from the disk at once (a
     * kill -9 now must not bring it back), the files go with the last user */
    ck_assert_int_eq(store_get(s, "a", &c, &e), RS_OK);
    ck_assert_int_eq(store_drop(s, "a", &e), RS_OK);
    ck_assert_int_eq(exists(data, "a"), 0);
    ck_assert_int_eq(exists(data, ".dropped-a-0"), 1);
    store_release(s, c);
    ck_assert_int_eq(exists(data, ".dropped-a-0"), 0);
    ck_assert_int_eq(store_drop(s, "b", &e), RS_OK);
    ck_assert_int_eq(exists(data, "b"), 0);
    store_close(s);
    /* tombstones left by a crash are removed at start and never opened */
    snprintf(path, sizeof(path), "%s/.dropped-z-7", data);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/.dropped-z-7/docs.db", data);
    write_file(path, "x");
    s = open_store(data, DIM, "m");
    ck_assert_int_eq(exists(data, ".dropped-z-7"), 0);
    ck_assert_int_eq(store_names(s, &names, &n), RS_OK);
    ck_assert_int_eq(n, 0);
    store_names_free(names, n);
    store_close(s);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_one_owner)
{
    char *dir = tu_temp_dir("store");
    struct store_options o = { DIM, "m", COLL_FSYNC_ALWAYS, 0, "Flat", NULL, NULL, NULL };
    struct store *s, *s2;
    struct rs_error e;

    s = open_store(dir, DIM, "m");
    ck_assert_int_eq(store_open(&s2, dir, &o, &e), RS_EBUSY);
    ck_assert_msg(strstr(e.msg, "is in use by another process") != NULL, "%s", e.msg);
    store_close(s);
    ck_assert_int_eq(store_open(&s2, dir, &o, &e), RS_OK);
    store_close(s2);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* --- rosimd --------------------------------------------------------------- */

static json_t *
get_json(int port, const char *method, const char *path, const char *body, long status)
{
    struct tu_response r;
    json_error_t je;
    json_t *j;

    ck_assert_int_eq(tu_http(port, method, path, body ? "application/json" : NULL, body,
                             body ? strlen(body) : 0, &r), 0);
    ck_assert_msg(r.status == status, "%s %s: %ld, expected %ld: %s", method, path, r.status,
                  status, r.body);
    j = json_loads(r.body, 0, &je);
    ck_assert_msg(j != NULL, "%s", r.body);
    tu_response_free(&r);
    return j;
}

static void
call(int port, const char *method, const char *path, const char *body, long status)
{
    json_decref(get_json(port, method, path, body, status));
}

static char *
read_log(const struct tu_daemon *d)
{
    static char buf[65536];
    FILE *f = fopen(d->log_path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The error code of a reply, checked to carry no absolute path. */
static void
assert_error(json_t *j, const char *code, const char *dir)
{
    const char *got = NULL, *msg = NULL;
    ck_assert_int_eq(json_unpack(j, "{s:{s:s,s:s}}", "error", "code", &got, "message", &msg), 0);
    ck_assert_str_eq(got, code);
    ck_assert_msg(strstr(msg, dir) == NULL, "absolute path in '%s'", msg);
    json_decref(j);
}

static void
sql(const char *db_path, const char *statement)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, statement, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

START_TEST(test_daemon_serves_the_rest)
{
    static const char doc[] = "{\"documents\":[{\"id\":\"a\",\"text\":\"今天天气不错\"}]}";
    static const char query[] = "{\"text\":\"天气\"}";
    char *dir = tu_temp_dir("store"), path[700], *log;
    const char *extra[] = { "--model", MODEL, "--data", dir, NULL };
    struct tu_daemon d;
    struct tu_response r;
    json_t *j, *list;
    size_t i;

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    for (i = 0; i < 3; i++) {
        static const char *const names[] = { "good", "other", "damaged" };
        char p[128];
        snprintf(p, sizeof(p), "/v1/collections/%s", names[i]);
        call(d.port, "PUT", p, NULL, 201);
        snprintf(p, sizeof(p), "/v1/collections/%s/documents", names[i]);
        call(d.port, "POST", p, doc, 200);
    }
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    snprintf(path, sizeof(path), "%s/other/docs.db", dir);
    sql(path, "UPDATE meta SET value = 'another-model' WHERE key = 'fingerprint'");
    snprintf(path, sizeof(path), "%s/damaged/docs.db", dir);
    write_file(path, "garbage where a database was, long enough to look like a header.....");

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    log = read_log(&d);
    ck_assert_msg(strstr(log, "WARN collection 'other': cannot be opened") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "another-model") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "WARN collection 'damaged': cannot be opened") != NULL, "%s", log);

    /* ready, but saying what failed */
    j = get_json(d.port, "GET", "/readyz", NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ready");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "collections_open")), 1);
    list = json_object_get(j, "collections_failed");
    ck_assert_int_eq(json_array_size(list), 2);
    ck_assert_str_eq(json_string_value(json_array_get(list, 0)), "damaged");
    ck_assert_str_eq(json_string_value(json_array_get(list, 1)), "other");
    json_decref(j);
    j = get_json(d.port, "GET", "/v1/collections", NULL, 200);
    list = json_object_get(j, "collections");
    ck_assert_int_eq(json_array_size(list), 3);
    for (i = 0; i < 3; i++) {
        json_t *c = json_array_get(list, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *state = json_string_value(json_object_get(c, "state"));
        const char *reason = json_string_value(json_object_get(c, "reason"));
        ck_assert_str_eq(state, strcmp(name, "good") == 0 ? "open" : "failed");
        if (strcmp(name, "good") != 0) {
            ck_assert_ptr_nonnull(reason);
            ck_assert_msg(strstr(reason, dir) == NULL, "absolute path in %s", reason);
        }
        if (strcmp(name, "other") == 0)
            ck_assert_ptr_nonnull(strstr(reason, "another-model"));
    }
    json_decref(j);
    ck_assert_int_eq(tu_http(d.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "rosim_collection_failed{collection=\"other\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "rosim_collection_failed{collection=\"damaged\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "rosim_collection_documents{collection=\"good\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "rosim_data_dir_writable 1\n"));
    tu_response_free(&r);

    /* the good one is served; the failed ones answer 409 */
    call(d.port, "POST", "/v1/collections/good/search", query, 200);
    assert_error(get_json(d.port, "POST", "/v1/collections/other/search", query, 409),
                 "collection_unavailable", dir);
    assert_error(get_json(d.port, "GET", "/v1/collections/other", NULL, 409),
                 "collection_unavailable", dir);
    assert_error(get_json(d.port, "POST", "/v1/collections/damaged/documents", doc, 409),
                 "collection_unavailable", dir);
    assert_error(get_json(d.port, "GET", "/v1/collections/damaged/documents/a", NULL, 409),
                 "collection_unavailable", dir);
    assert_error(get_json(d.port, "PUT", "/v1/collections/other", NULL, 409), "conflict", dir);
    snprintf(path, sizeof(path), "%s/other/docs.db", dir);
    ck_assert_int_eq(access(path, F_OK), 0);
    /* DELETE drops a failed collection; then the name is free */
    call(d.port, "DELETE", "/v1/collections/damaged", NULL, 200);
    call(d.port, "GET", "/v1/collections/damaged", NULL, 404);
    call(d.port, "PUT", "/v1/collections/damaged", NULL, 201);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_second_process_is_refused)
{
    char *dir = tu_temp_dir("store");
    const char *extra[] = { "--model", MODEL, "--data", dir, NULL };
    char *imp[] = { (char *)tu_program("ROSIM", "build/rosim"), "import", "--model", MODEL,
                    "--data", dir, "--collection", "x", NULL };
    char *second[] = { (char *)tu_program("ROSIMD", "build/rosimd"), "--listen", "127.0.0.1:0",
                       "--model", MODEL, "--data", dir, NULL };
    struct tu_daemon d;
    char *err = NULL;
    double t0;

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    t0 = tu_now();
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"a\",\"text\":\"好\"}\n", NULL, &err), 1);
    ck_assert_msg(strstr(err, "is in use by another process") != NULL, "%s", err);
    free(err);
    ck_assert_int_eq(exists(dir, "x"), 0);
    ck_assert_int_eq(tu_run(second, NULL, NULL, &err), 1);
    ck_assert_msg(strstr(err, "is in use by another process") != NULL, "%s", err);
    free(err);
    ck_assert(tu_now() - t0 < 30);
    call(d.port, "GET", "/readyz", NULL, 200);   /* the first is unharmed */
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    /* and once it is gone, the import runs */
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"a\",\"text\":\"好\"}\n", NULL, NULL), 0);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_permissions_checked_at_start)
{
    char *dir = tu_temp_dir("store"), data[600], *log;
    const char *extra[] = { "--model", MODEL, "--data", data, NULL };
    char *imp[] = { (char *)tu_program("ROSIM", "build/rosim"), "import", "--model", MODEL,
                    "--data", data, "--collection", "byroot", NULL };
    struct tu_daemon d;
    json_t *j;

    /* a collection imported by root into the service's data directory */
    snprintf(data, sizeof(data), "%s/data", dir);
    ck_assert_int_eq(mkdir(data, 0700), 0);
    ck_assert_int_eq(chown(data, NOBODY, NOBODY), 0);
    ck_assert_int_eq(tu_daemon_start_as(&d, extra, NOBODY), 0);
    call(d.port, "PUT", "/v1/collections/mine", NULL, 201);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"a\",\"text\":\"好\"}\n", NULL, NULL), 0);
    ck_assert_int_eq(tu_daemon_start_as(&d, extra, NOBODY), 0);
    log = read_log(&d);
    ck_assert_msg(strstr(log, "WARN collection 'byroot': cannot be opened") != NULL &&
                  strstr(log, "not readable and writable by this process (uid 65534)") != NULL,
                  "%s", log);
    j = get_json(d.port, "GET", "/v1/collections", NULL, 200);
    ck_assert_int_eq(json_array_size(json_object_get(j, "collections")), 2);
    json_decref(j);
    assert_error(get_json(d.port, "POST", "/v1/collections/byroot/search", "{\"text\":\"好\"}",
                          409), "collection_unavailable", dir);
    call(d.port, "POST", "/v1/collections/mine/search", "{\"text\":\"好\"}", 200);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_import_reads_a_file_twice)
{
    char *dir = tu_temp_dir("store"), file[700], cmd[2400], *out = NULL;
    const char *rosim = tu_program("ROSIM", "build/rosim");
    char *srch[] = { (char *)rosim, "search", "--model", MODEL, "--data", NULL, "--collection",
                     "f", NULL };
    char data[700];

    /* stdin a regular file: checked in a first pass, then read again */
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(file, sizeof(file), "%s/docs.jsonl", dir);
    write_file(file, "{\"id\":\"a\",\"text\":\"好\"}\n{\"id\":\"b\",\"text\":\"坏\"}\n"
                     "{\"id\":\"c\",\"text\":\"中\",\"meta\":[]}\n");
    snprintf(cmd, sizeof(cmd), "%s import --model %s --data %s --collection f < %s 2>/dev/null",
             rosim, MODEL, data, file);
    ck_assert_int_ne(system(cmd), 0);
    ck_assert_int_eq(exists(data, "f"), 0);   /* nothing stored, not even the collection */
    write_file(file, "{\"id\":\"a\",\"text\":\"好\"}\n{\"id\":\"b\",\"text\":\"坏\"}\n");
    ck_assert_int_eq(system(cmd), 0);
    srch[5] = data;
    ck_assert_int_eq(tu_run(srch, "好\n", &out, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"id\":\"a\""));
    ck_assert_ptr_nonnull(strstr(out, "\"id\":\"b\""));
    free(out);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* --- creation, writability, index types, messages ------------------------- */

/* A creation killed before its settings were committed was never
 * acknowledged: it is removed at start (and said), never served as a
 * collection of another type, and its name is free again. */
START_TEST(test_unfinished_creation_is_removed)
{
    char *dir = tu_temp_dir("store"), data[600], path[700];
    struct store *s;
    struct store_info *list;
    struct coll *c;
    struct coll_stats st;
    struct rs_error e;
    int n, created;

    snprintf(data, sizeof(data), "%s/data", dir);
    s = open_store(data, DIM, "m");
    make_coll(s, "good", DIM);
    store_close(s);
    /* killed after SQLite made the file, or its tables */
    snprintf(path, sizeof(path), "%s/empty", data);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/empty/docs.db", data);
    write_file(path, "");
    snprintf(path, sizeof(path), "%s/tables", data);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/tables/docs.db", data);
    sql(path, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    /* documents without settings are no creation cut short: kept, failed */
    snprintf(path, sizeof(path), "%s/orphan", data);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/orphan/docs.db", data);
    sql(path, "CREATE TABLE docs (id TEXT PRIMARY KEY, label INTEGER NOT NULL UNIQUE, text TEXT "
              "NOT NULL, meta TEXT NOT NULL, vector BLOB NOT NULL, seq INTEGER NOT NULL);"
              "INSERT INTO docs VALUES ('a', 1, 'text', '{}', zeroblob(64), 1)");

    reports[0] = '\0';
    s = open_store(data, DIM, "m");
    ck_assert_int_eq(store_list(s, &list, &n), RS_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(info_of(list, n, "good")->failed, 0);
    ck_assert_int_eq(info_of(list, n, "orphan")->failed, 1);
    ck_assert_msg(strstr(info_of(list, n, "orphan")->reason, "no settings") != NULL, "%s",
                  info_of(list, n, "orphan")->reason);
    free(list);
    ck_assert_int_eq(exists(data, "empty"), 0);
    ck_assert_int_eq(exists(data, "tables"), 0);
    ck_assert_msg(strstr(reports, "empty: empty: its creation never finished") != NULL, "%s",
                  reports);
    ck_assert_msg(strstr(reports, "tables: tables: its creation never finished") != NULL, "%s",
                  reports);
    ck_assert_msg(strstr(reports, dir) == NULL, "absolute path in %s", reports);
    /* the retried creation makes what it asks for */
    ck_assert_msg(store_create(s, "empty", "HNSW32", &created, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(created, 1);
    store_close(s);
    s = open_store(data, DIM, "m");
    ck_assert_int_eq(store_get(s, "empty", &c, &e), RS_OK);
    coll_get_stats(c, &st);
    ck_assert_str_eq(st.factory, "HNSW32");
    store_release(s, c);
    store_close(s);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* The data directory turning unwritable while the store is open is seen
 * when asked (a read-only remount, an immutable flag, which binds root
 * too), and goes when it is writable again.  rosimd started on a
 * read-only filesystem says so (a chown cannot help). */
START_TEST(test_data_dir_unwritable_later)
{
    char *dir = tu_temp_dir("store"), mnt[600], data[700], *err = NULL, cmd[800];
    char *argv[] = { (char *)tu_program("ROSIMD", "build/rosimd"), "--listen", "127.0.0.1:0",
                     "--model", MODEL, "--data", data, NULL };
    struct store *s;
    struct rs_error e;
    const char *why;
    int created;

    snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
    ck_assert_int_eq(mkdir(mnt, 0700), 0);
    ck_assert_msg(mount("tmpfs", mnt, "tmpfs", 0, "size=1m") == 0,
                  "cannot mount a small tmpfs (the suite runs as root)");
    snprintf(data, sizeof(data), "%s/data", mnt);
    s = open_store(data, DIM, "m");
    ck_assert_ptr_null(store_problem(s));
    ck_assert_int_eq(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    why = store_problem(s);
    ck_assert_msg(why != NULL && strstr(why, "read-only filesystem") != NULL, "%s",
                  why ? why : "(null)");
    ck_assert_int_eq(store_create(s, "a", NULL, &created, &e), RS_EIO);
    ck_assert_msg(strstr(e.msg, "read-only filesystem") != NULL, "%s", e.msg);
    ck_assert_int_eq(mount(NULL, mnt, NULL, MS_REMOUNT, NULL), 0);
    ck_assert_ptr_null(store_problem(s));
    ck_assert_int_eq(store_create(s, "a", NULL, &created, &e), RS_OK);
    snprintf(cmd, sizeof(cmd), "chattr +i '%s'", data);
    ck_assert_int_eq(system(cmd), 0);
    why = store_problem(s);
    ck_assert_msg(why != NULL && strstr(why, "not writable") != NULL, "%s", why ? why : "(null)");
    ck_assert_int_eq(store_drop(s, "a", &e), RS_EIO);
    snprintf(cmd, sizeof(cmd), "chattr -i '%s'", data);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_ptr_null(store_problem(s));
    store_close(s);

    ck_assert_int_eq(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    ck_assert_int_eq(tu_run(argv, NULL, NULL, &err), 1);
    ck_assert_msg(strstr(err, "read-only filesystem") != NULL && strstr(err, "chown") == NULL,
                  "%s", err);
    free(err);
    ck_assert_int_eq(umount(mnt), 0);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* The same through rosimd run as an unprivileged user: /readyz and
 * rosim_data_dir_writable follow the data directory's mode. */
START_TEST(test_daemon_sees_data_dir_turn_unwritable)
{
    char *dir = tu_temp_dir("store"), data[600];
    const char *extra[] = { "--model", MODEL, "--data", data, NULL };
    struct tu_daemon d;
    struct tu_response r;
    json_t *j;

    snprintf(data, sizeof(data), "%s/data", dir);
    ck_assert_int_eq(mkdir(data, 0700), 0);
    ck_assert_int_eq(chown(data, NOBODY, NOBODY), 0);
    ck_assert_int_eq(tu_daemon_start_as(&d, extra, NOBODY), 0);
    call(d.port, "PUT", "/v1/collections/a", NULL, 201);
    ck_assert_int_eq(chmod(data, 0500), 0);
    j = get_json(d.port, "GET", "/readyz", NULL, 200);
    ck_assert(json_is_false(json_object_get(j, "data_dir_writable")));
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "warning")),
                                 "not writable"));
    json_decref(j);
    ck_assert_int_eq(tu_http(d.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "rosim_data_dir_writable 0\n"));
    tu_response_free(&r);
    assert_error(get_json(d.port, "PUT", "/v1/collections/b", NULL, 500), "storage_error", dir);
    ck_assert_int_eq(chmod(data, 0700), 0);
    j = get_json(d.port, "GET", "/readyz", NULL, 200);
    ck_assert(json_is_true(json_object_get(j, "data_dir_writable")));
    json_decref(j);
    call(d.port, "PUT", "/v1/collections/b", NULL, 201);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* Creating an existing collection: no type, or the same index however
 * spelled, is fine; an invalid type is invalid before anything else; a
 * different index conflicts. */
START_TEST(test_create_is_idempotent)
{
    static const struct { const char *name, *factory; int rc; } cases[] = {
        { "h", "HNSW32,Flat", RS_OK }, { "h", NULL, RS_OK }, { "h", "HNSW32", RS_OK },
        { "h", "IDMap2,HNSW32,Flat", RS_OK }, { "h", "HNSW032", RS_OK },
        { "h", " Flat!", RS_EINVAL }, { "h", "PQ3", RS_EINVAL }, { "h", "Flat", RS_EEXIST },
        { "h", "HNSW16", RS_EEXIST }, { "h", "HNSW32,SQ8", RS_EEXIST },
        { "f", "IDMap2,Flat", RS_OK }, { "f", "Flat", RS_OK }, { "f", NULL, RS_OK },
        { "f", "IDMap,Flat", RS_EEXIST }, { "f", "SQfp16", RS_EEXIST },
        { "p", "PQ4", RS_OK }, { "p", "PQ4x8", RS_OK }, { "p", "PQ4x4", RS_EEXIST },
        { "o", "OPQ4,IVF1,PQ4", RS_OK }, { "o", "OPQ4_16,IVF1,PQ4x8", RS_OK },
        { "o", "OPQ4_8,IVF1,PQ4", RS_EEXIST }, { "n", " Flat!", RS_EINVAL },
    };
    char *dir = tu_temp_dir("store"), data[600];
    struct store *s;
    struct rs_error e;
    int created;

    snprintf(data, sizeof(data), "%s/data", dir);
    s = open_store(data, DIM, "m");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = store_create(s, cases[i].name, cases[i].factory, &created, &e);
        ck_assert_msg(rc == cases[i].rc, "%s with %s: %d, expected %d (%s)", cases[i].name,
                      cases[i].factory ? cases[i].factory : "no type", rc, cases[i].rc,
                      rc != RS_OK ? e.msg : "");
    }
    ck_assert_int_eq(exists(data, "n"), 0);
    store_close(s);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* The same over HTTP; and a search with a zero vector is refused (422). */
START_TEST(test_put_is_idempotent_over_http)
{
    static const char hnsw[] = "{\"index\":\"HNSW32,Flat\"}";
    char *dir = tu_temp_dir("store"), zero[512];
    const char *extra[] = { "--model", MODEL, "--data", dir, NULL };
    struct tu_daemon d;
    size_t len;

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    call(d.port, "PUT", "/v1/collections/idem", hnsw, 201);
    call(d.port, "PUT", "/v1/collections/idem", hnsw, 200);
    call(d.port, "PUT", "/v1/collections/idem", NULL, 200);
    call(d.port, "PUT", "/v1/collections/idem", "{}", 200);
    call(d.port, "PUT", "/v1/collections/idem", "{\"index\":\"HNSW32\"}", 200);
    assert_error(get_json(d.port, "PUT", "/v1/collections/idem", "{\"index\":\" Flat!\"}", 422),
                 "invalid", dir);
    assert_error(get_json(d.port, "PUT", "/v1/collections/idem", "{\"index\":\"Flat\"}", 409),
                 "conflict", dir);
    call(d.port, "POST", "/v1/collections/idem/documents",
         "{\"documents\":[{\"id\":\"a\",\"text\":\"今天天气不错\"}]}", 200);
    len = (size_t)snprintf(zero, sizeof(zero), "{\"vector\":[0");
    for (int i = 1; i < 64; i++)
        len += (size_t)snprintf(zero + len, sizeof(zero) - len, ",0");
    snprintf(zero + len, sizeof(zero) - len, "]}");
    assert_error(get_json(d.port, "POST", "/v1/collections/idem/search", zero, 422), "invalid",
                 dir);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* rosim import without --index appends to a collection of any type; with
 * one, the same index however spelled. */
START_TEST(test_import_appends_to_its_type)
{
    char *dir = tu_temp_dir("store"), data[700], *out = NULL, *err = NULL;
    char *imp[] = { (char *)tu_program("ROSIM", "build/rosim"), "import", "--model", MODEL,
                    "--data", data, "--collection", "faq", "--index", NULL, NULL };
    char *srch[] = { (char *)tu_program("ROSIM", "build/rosim"), "search", "--model", MODEL,
                     "--data", data, "--collection", "faq", NULL };

    snprintf(data, sizeof(data), "%s/data", dir);
    imp[9] = "HNSW16";
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"a\",\"text\":\"好\"}\n", NULL, NULL), 0);
    imp[8] = NULL;   /* no --index */
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"b\",\"text\":\"坏\"}\n", NULL, &err), 0);
    free(err);
    imp[8] = "--index";
    imp[9] = "HNSW16,Flat";
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"c\",\"text\":\"中\"}\n", NULL, NULL), 0);
    imp[9] = "Flat";
    ck_assert_int_eq(tu_run(imp, "{\"id\":\"d\",\"text\":\"大\"}\n", NULL, &err), 1);
    ck_assert_msg(strstr(err, "exists with index type 'HNSW16'") != NULL, "%s", err);
    free(err);
    ck_assert_int_eq(tu_run(srch, "好\n", &out, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"id\":\"a\""));
    ck_assert_ptr_nonnull(strstr(out, "\"id\":\"b\""));
    ck_assert_ptr_nonnull(strstr(out, "\"id\":\"c\""));
    ck_assert_ptr_null(strstr(out, "\"id\":\"d\""));
    free(out);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* What the store reports names files relative to the data directory: a
 * periodic snapshot that fails, and one at close. */
START_TEST(test_reports_name_no_absolute_path)
{
    char *dir = tu_temp_dir("store"), data[600], path[700];
    struct store_options o = { DIM, "m", COLL_FSYNC_OFF, 1, "Flat", collect, NULL, NULL };
    float v[DIM] = { 1 };
    struct coll_doc d = { "d1", "text", NULL, v, 0 };
    struct store *s;
    struct coll *c;
    struct rs_error e;
    int created;

    snprintf(data, sizeof(data), "%s/data", dir);
    ck_assert_msg(store_open(&s, data, &o, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(store_create(s, "f", NULL, &created, &e), RS_OK);
    snprintf(path, sizeof(path), "%s/f/index.snap.tmp", data);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(store_get(s, "f", &c, &e), RS_OK);
    reports[0] = '\0';
    ck_assert_int_eq(coll_upsert(c, &d, 1, NULL, &e), RS_OK);
    ck_assert_msg(strstr(reports, "f: the index snapshot could not be written") != NULL &&
                  strstr(reports, "f/index.snap.tmp") != NULL, "%s", reports);
    ck_assert_msg(strstr(reports, dir) == NULL, "absolute path in %s", reports);
    store_release(s, c);
    reports[0] = '\0';
    store_close(s);
    ck_assert_msg(strstr(reports, "f/index.snap.tmp") != NULL, "%s", reports);
    ck_assert_msg(strstr(reports, dir) == NULL, "absolute path in %s", reports);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

Suite *
store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("data directory");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_failed_collections_are_kept);
    tcase_add_test(tc, test_snapshot_problems_are_reported);
    tcase_add_test(tc, test_drop_is_durable);
    tcase_add_test(tc, test_one_owner);
    tcase_add_test(tc, test_daemon_serves_the_rest);
    tcase_add_test(tc, test_second_process_is_refused);
    tcase_add_test(tc, test_permissions_checked_at_start);
    tcase_add_test(tc, test_import_reads_a_file_twice);
    tcase_add_test(tc, test_unfinished_creation_is_removed);
    tcase_add_test(tc, test_data_dir_unwritable_later);
    tcase_add_test(tc, test_daemon_sees_data_dir_turn_unwritable);
    tcase_add_test(tc, test_create_is_idempotent);
    tcase_add_test(tc, test_put_is_idempotent_over_http);
    tcase_add_test(tc, test_import_appends_to_its_type);
    tcase_add_test(tc, test_reports_name_no_absolute_path);
    suite_add_tcase(s, tc);
    return s;
}
