/*
 * check_storage.c: the storage contract (index/storage.h), the same tests
 * on each backend: SQLite in a temporary directory, and PostgreSQL 15 on a
 * server the suite starts itself (pgserver.h; skipped, saying so, only
 * when PostgreSQL is not installed).  Then what only a server can do:
 * go away and come back; and rosimd -t checking [storage] backend and dsn.
 *
 * Expectations are written out by hand from the contract (labels are the
 * write's numbers, a write's sequence is its last label, the labels a
 * write retires are reported with its sequence), not computed by the code
 * under test.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "../index/storage.h"
#include "pgserver.h"
#include "suites.h"
#include "testutil.h"

#define DIM 8

static const char *const backends[] = { "sqlite", "postgresql" };

/* --- the server, once per test case (unchecked fixture) ------------------- */

static struct tu_pg pg;
static int pg_state = 1;        /* 0 running, 1 not installed, -1 failed */

static void
pg_up(void)
{
    pg_state = tu_pg_start(&pg);
    if (pg_state == 1)
        fprintf(stderr, "check_storage: PostgreSQL tests skipped: %s\n", pg.why);
}

static void
pg_down(void)
{
    if (pg_state == 0)
        tu_pg_destroy(&pg);
}

/* --- this test's database ------------------------------------------------- */

static char where[256];         /* a directory (sqlite) or a DSN */

/* Open another connection to this test's database on backend i: NULL when
 * the test is skipped (PostgreSQL not installed). */
static struct st_db *
db_open(int i)
{
    struct rs_error e = { 0 };
    struct st_db *db;

    if (where[0] == '\0' && i == 0) {
        snprintf(where, sizeof(where), "/tmp/rosim-storage-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(where));
    } else if (where[0] == '\0') {
        if (pg_state == 1)
            return NULL;
        ck_assert_msg(pg_state == 0, "PostgreSQL did not start: %s", pg.why);
        snprintf(where, sizeof(where), "%s", pg.dsn);
    }
    ck_assert_msg(st_open(&db, backends[i], where, COLL_FSYNC_ALWAYS, &e) == RS_OK, "%s",
                  e.msg);
    ck_assert_str_eq(db->ops->backend, backends[i]);
    return db;
}

static void
db_cleanup(void)
{
    char cmd[300];

    if (strncmp(where, "/tmp/", 5) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", where);
        ck_assert_int_eq(system(cmd), 0);
    }
    where[0] = '\0';
}

/* A collection name of its own (tests share the PostgreSQL server). */
static const char *
coll_name(const char *base)
{
    static char name[64];
    snprintf(name, sizeof(name), "%s-%d", base, (int)getpid());
    return name;
}

static const struct ds_settings settings = { .factory = "Flat", .dim = DIM,
                                             .fingerprint = "roformer-sim-tiny:sha256:0123abcd" };

static struct st_coll *
new_coll(struct st_db *db, const char *name)
{
    struct rs_error e = { 0 };
    struct st_coll *c;

    ck_assert_msg(db->ops->create(db, name, &settings, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(db->ops->open(db, name, &c, &e) == RS_OK, "%s", e.msg);
    return c;
}

/* A document's vector: a function of its id and version. */
static void
vector_of(const char *id, int version, float *v)
{
    unsigned h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (int k = 0; k < DIM; k++)
        v[k] = (float)((h >> (k % 24)) & 0xff) / 255.0f + (float)version + (float)k * 0.01f;
}

/* Upsert n docs ids[i] (text "<id> v<version>") as one write; the first
 * label goes to *first, the retired ones to retired[] (room for n). */
static int
put(struct st_coll *c, const char *const ids[], int n, int version, int64_t *first,
    int64_t *retired, size_t *n_retired, long *new_docs, struct rs_error *e)
{
    struct coll_doc docs[16];
    char texts[16][64];
    float vecs[16 * DIM];

    ck_assert_int_le(n, 16);
    for (int i = 0; i < n; i++) {
        snprintf(texts[i], sizeof(texts[i]), "%s v%d", ids[i], version);
        vector_of(ids[i], version, vecs + i * DIM);
        docs[i] = (struct coll_doc){ ids[i], texts[i], NULL, vecs + i * DIM, 0 };
    }
    return c->ops->upsert(c, docs, vecs, n, first, retired, n_retired, new_docs, e);
}

static void
put_ok(struct st_coll *c, const char *const ids[], int n, int version, int64_t want_first,
       const int64_t *want_retired, size_t want_n_retired, long want_new)
{
    struct rs_error e = { 0 };
    int64_t first = -1, retired[16];
    size_t n_retired = 99;
    long new_docs = -1;

    ck_assert_msg(put(c, ids, n, version, &first, retired, &n_retired, &new_docs, &e) ==
                  RS_OK, "%s", e.msg);
    ck_assert_int_eq(first, want_first);
    ck_assert_uint_eq(n_retired, want_n_retired);
    for (size_t i = 0; i < want_n_retired; i++)
        ck_assert_int_eq(retired[i], want_retired[i]);
    ck_assert_int_eq(new_docs, want_new);
}

static int64_t
seq_of(struct st_coll *c)
{
    struct rs_error e = { 0 };
    int64_t seq = -1;

    ck_assert_msg(c->ops->seq(c, &seq, &e) == RS_OK, "%s", e.msg);
    return seq;
}

/* --- changes, gathered as sets of labels ---------------------------------- */

#define MAX_LABELS 4096

struct gathered {
    int64_t docs[MAX_LABELS], retired[MAX_LABELS];
    size_t n_docs, n_retired;
    float vec_of_7[DIM];        /* the vector delivered for label 7 */
};

static int
on_doc(int64_t label, const float *vec, void *arg)
{
    struct gathered *g = arg;
    ck_assert_uint_lt(g->n_docs, MAX_LABELS);
    g->docs[g->n_docs++] = label;
    if (label == 7)
        memcpy(g->vec_of_7, vec, sizeof(g->vec_of_7));
    return 0;
}

static int
on_retired(int64_t label, void *arg)
{
    struct gathered *g = arg;
    ck_assert_uint_lt(g->n_retired, MAX_LABELS);
    g->retired[g->n_retired++] = label;
    return 0;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The changes after after into g (sorted); the status. */
static int
changes_rc(struct st_coll *c, int64_t after, struct gathered *g, int64_t *upto,
           struct rs_error *e)
{
    struct ds_feed f = { .retired = on_retired, .doc = on_doc, .arg = g };
    int rc;

    memset(g, 0, sizeof(*g));
    rc = c->ops->changes(c, after, &f, upto, e);
    qsort(g->docs, g->n_docs, sizeof(int64_t), cmp_i64);
    qsort(g->retired, g->n_retired, sizeof(int64_t), cmp_i64);
    return rc;
}

/* The same, which must succeed; the sequence they cover. */
static int64_t
changes(struct st_coll *c, int64_t after, struct gathered *g)
{
    struct rs_error e = { 0 };
    int64_t upto = -1;

    ck_assert_msg(changes_rc(c, after, g, &upto, &e) == RS_OK, "%s", e.msg);
    return upto;
}

static void
labels_eq(const int64_t *got, size_t n, const int64_t *want, size_t n_want, const char *what)
{
    ck_assert_msg(n == n_want, "%s: %zu labels, expected %zu", what, n, n_want);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s: [%zu] = %lld, expected %lld", what, i,
                      (long long)got[i], (long long)want[i]);
}

/* --- the contract --------------------------------------------------------- */

START_TEST(test_settings_and_list)
{
    struct st_db *db = db_open(_i);
    struct rs_error e = { 0 };
    struct ds_settings s;
    struct st_coll *c, *none = (struct st_coll *)1;
    char **names, other[64];
    size_t n;
    long count = -1;
    int found = 0;

    if (db == NULL)
        return;
    snprintf(other, sizeof(other), "%s", coll_name("other"));
    c = new_coll(db, coll_name("settings"));
    ck_assert_int_eq(db->ops->create(db, coll_name("settings"), &settings, &e), RS_EEXIST);
    ck_assert_int_eq(db->ops->create(db, "../escape", &settings, &e), RS_EINVAL);
    ck_assert_int_eq(db->ops->create(db, other, &settings, &e), RS_OK);

    ck_assert_msg(c->ops->settings(c, &s, &e) == RS_OK, "%s", e.msg);
    ck_assert_str_eq(s.factory, "Flat");
    ck_assert_int_eq(s.dim, DIM);
    ck_assert_str_eq(s.fingerprint, "roformer-sim-tiny:sha256:0123abcd");
    ck_assert_int_eq(seq_of(c), 0);
    ck_assert_int_eq(c->ops->count(c, &count, &e), RS_OK);
    ck_assert_int_eq(count, 0);

    ck_assert_msg(db->ops->list(db, &names, &n, &e) == RS_OK, "%s", e.msg);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            ck_assert_int_lt(strcmp(names[i - 1], names[i]), 0);   /* sorted */
        found += strcmp(names[i], coll_name("settings")) == 0 || strcmp(names[i], other) == 0;
    }
    ck_assert_int_eq(found, 2);
    st_names_free(names, n);

    ck_assert_int_eq(db->ops->drop(db, other, &e), RS_OK);
    ck_assert_int_eq(db->ops->drop(db, other, &e), RS_ENOTFOUND);
    ck_assert_int_eq(db->ops->open(db, other, &none, &e), RS_ENOTFOUND);
    ck_assert_ptr_null(none);
    ck_assert_msg(db->ops->list(db, &names, &n, &e) == RS_OK, "%s", e.msg);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_ne(names[i], other);
    st_names_free(names, n);
    ck_assert_int_eq(db->ops->ping(db, &e), RS_OK);
    c->ops->close(c);
    st_close(db);
    db_cleanup();
}
END_TEST

/* The scenario behind the next tests:
 *   w1 upsert a b c   labels 1 2 3, seq 3
 *   w2 upsert b a     labels 4 5, seq 5, retires 2 (b) and 1 (a)
 *   w3 upsert x x     labels 6 7, seq 7, retires 6 (the first x)
 *   w4 delete a       seq 8, retires 5
 * Live: c 3 (seq 3), b 4 (seq 5), x 7 (seq 7); retired 1 2 (5), 6 (7), 5 (8). */
static struct st_coll *
scenario(struct st_db *db, const char *name)
{
    static const char *const abc[] = { "a", "b", "c" }, *const ba[] = { "b", "a" },
                             *const xx[] = { "x", "x" };
    static const int64_t r2[] = { 2, 1 }, r3[] = { 6 };
    struct st_coll *c = new_coll(db, name);
    struct rs_error e = { 0 };
    int64_t seq = -1, label = -1;

    put_ok(c, abc, 3, 1, 1, NULL, 0, 3);
    ck_assert_int_eq(seq_of(c), 3);
    put_ok(c, ba, 2, 2, 4, r2, 2, 0);
    ck_assert_int_eq(seq_of(c), 5);
    put_ok(c, xx, 2, 3, 6, r3, 1, 1);
    ck_assert_int_eq(seq_of(c), 7);
    ck_assert_msg(c->ops->del(c, "a", &seq, &label, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(seq, 8);
    ck_assert_int_eq(label, 5);
    return c;
}

START_TEST(test_upsert_delete_labels)
{
    struct st_db *db = db_open(_i);
    struct rs_error e = { 0 };
    struct coll_hit h;
    struct st_coll *c;
    float v[DIM], want[DIM];
    int64_t seq = -1, label = -1;
    long count = -1;

    if (db == NULL)
        return;
    c = scenario(db, coll_name("labels"));
    /* a delete of nothing takes no number */
    ck_assert_int_eq(c->ops->del(c, "a", &seq, &label, &e), RS_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "'a'"));
    ck_assert_int_eq(seq_of(c), 8);
    ck_assert_int_eq(c->ops->count(c, &count, &e), RS_OK);
    ck_assert_int_eq(count, 3);

    ck_assert_msg(c->ops->get(c, "b", &h, &e) == RS_OK, "%s", e.msg);
    ck_assert_str_eq(h.id, "b");
    ck_assert_str_eq(h.text, "b v2");
    ck_assert_uint_eq(h.text_len, 4);
    ck_assert_str_eq(h.meta, "{}");
    coll_hit_clear(&h);
    ck_assert_int_eq(c->ops->get(c, "a", &h, &e), RS_ENOTFOUND);

    ck_assert_msg(c->ops->get_label(c, 7, &h, v, &e) == RS_OK, "%s", e.msg);
    ck_assert_str_eq(h.id, "x");
    ck_assert_str_eq(h.text, "x v3");
    vector_of("x", 3, want);
    ck_assert_mem_eq(v, want, sizeof(v));
    coll_hit_clear(&h);
    ck_assert_int_eq(c->ops->get_label(c, 6, &h, v, &e), RS_ENOTFOUND);
    ck_assert_int_eq(c->ops->get_label(c, 2, &h, v, &e), RS_ENOTFOUND);
    c->ops->close(c);
    st_close(db);
    db_cleanup();
}
END_TEST

/* Any bytes of text (U+0000 too) and the metadata's JSON text as given. */
START_TEST(test_text_and_meta_as_given)
{
    static const char text[] = "a\0b\xe4\xb8\xad\n";
    static const char meta[] = "{\"z\": [1, 2.50],  \"a\":{\"k\":\"\\u4e2d\"}}";
    struct st_db *db = db_open(_i);
    struct rs_error e = { 0 };
    struct coll_doc d = { "t", text, meta, NULL, sizeof(text) - 1 };
    struct coll_hit h;
    struct st_coll *c;
    float vec[DIM];
    int64_t first, retired[1];
    size_t n_retired;
    long new_docs;

    if (db == NULL)
        return;
    c = new_coll(db, coll_name("bytes"));
    vector_of("t", 1, vec);
    d.vec = vec;
    ck_assert_msg(c->ops->upsert(c, &d, vec, 1, &first, retired, &n_retired, &new_docs, &e) ==
                  RS_OK, "%s", e.msg);
    ck_assert_msg(c->ops->get(c, "t", &h, &e) == RS_OK, "%s", e.msg);
    ck_assert_uint_eq(h.text_len, sizeof(text) - 1);
    ck_assert_mem_eq(h.text, text, sizeof(text) - 1);
    ck_assert_int_eq(h.text[h.text_len], '\0');
    ck_assert_str_eq(h.meta, meta);
    coll_hit_clear(&h);
    c->ops->close(c);
    st_close(db);
    db_cleanup();
}
END_TEST

START_TEST(test_changes_after_seq)
{
    static const int64_t live[] = { 3, 4, 7 }, retired_all[] = { 1, 2, 5, 6 },
                         live_after3[] = { 4, 7 }, live_after5[] = { 7 },
                         retired_after5[] = { 5, 6 };
    struct st_db *db = db_open(_i);
    struct rs_error e = { 0 };
    struct gathered *g = calloc(1, sizeof(*g));
    struct st_coll *c;
    float want[DIM];
    int64_t upto;

    if (db == NULL) {
        free(g);
        return;
    }
    c = scenario(db, coll_name("changes"));
    ck_assert_int_eq(changes(c, 0, g), 8);
    labels_eq(g->docs, g->n_docs, live, 3, "docs after 0");
    labels_eq(g->retired, g->n_retired, retired_all, 4, "retired after 0");
    vector_of("x", 3, want);
    ck_assert_mem_eq(g->vec_of_7, want, sizeof(want));

    ck_assert_int_eq(changes(c, 3, g), 8);
    labels_eq(g->docs, g->n_docs, live_after3, 2, "docs after 3");
    labels_eq(g->retired, g->n_retired, retired_all, 4, "retired after 3");
    ck_assert_int_eq(changes(c, 5, g), 8);
    labels_eq(g->docs, g->n_docs, live_after5, 1, "docs after 5");
    labels_eq(g->retired, g->n_retired, retired_after5, 2, "retired after 5");
    ck_assert_int_eq(changes(c, 8, g), 8);
    ck_assert_uint_eq(g->n_docs + g->n_retired, 0);

    /* a snapshot at 5 covers the retirements of w2; one older than 5 can
     * no longer catch up (it would miss them) */
    ck_assert_msg(c->ops->prune_retired(c, 5, &e) == RS_OK, "%s", e.msg);
    changes(c, 0, g);
    labels_eq(g->retired, g->n_retired, retired_after5, 2, "retired after pruning");
    ck_assert_int_eq(changes(c, 5, g), 8);
    labels_eq(g->retired, g->n_retired, retired_after5, 2, "retired after 5, pruned");
    ck_assert_int_eq(changes_rc(c, 3, g, &upto, &e), RS_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "rebuild"));
    /* pruning less does not move the horizon back */
    ck_assert_msg(c->ops->prune_retired(c, 2, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(changes_rc(c, 4, g, &upto, &e), RS_EINVAL);
    c->ops->close(c);
    st_close(db);
    free(g);
    db_cleanup();
}
END_TEST

/* Whatever happens (writes, deletes of nothing, re-opening), the sequence
 * never goes back, and each write moves it to its own number. */
START_TEST(test_seq_only_grows)
{
    struct st_db *db = db_open(_i), *db2;
    struct rs_error e = { 0 };
    struct st_coll *c, *c2;
    int64_t last = 0, first, retired[4], seq, label;
    size_t n_retired;
    long new_docs;
    char id[16];

    if (db == NULL)
        return;
    c = new_coll(db, coll_name("grows"));
    for (int i = 0; i < 40; i++) {
        const char *ids[2] = { id, "same" };
        snprintf(id, sizeof(id), "d%d", i % 7);
        if (i % 5 == 4) {
            int rc = c->ops->del(c, id, &seq, &label, &e);
            ck_assert(rc == RS_OK || rc == RS_ENOTFOUND);
            if (rc == RS_OK) {
                ck_assert_int_eq(seq, last + 1);
                last = seq;
            }
        } else {
            ck_assert_msg(put(c, ids, 1 + i % 2, i, &first, retired, &n_retired, &new_docs,
                              &e) == RS_OK, "%s", e.msg);
            ck_assert_int_eq(first, last + 1);
            last = first + i % 2;
        }
        ck_assert_int_eq(seq_of(c), last);
    }
    db2 = db_open(_i);
    ck_assert_msg(db2->ops->open(db2, coll_name("grows"), &c2, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(seq_of(c2), last);
    c2->ops->close(c2);
    st_close(db2);
    c->ops->close(c);
    st_close(db);
    db_cleanup();
}
END_TEST

/* --- two replicas writing one collection ---------------------------------- */

#define WRITES 25
#define BATCH 3

struct writer {
    struct st_db *db;
    struct st_coll *c;
    int who;
    int64_t labels[WRITES * BATCH];
    char ids[WRITES * BATCH][40];  /* the id written under labels[k] */
    int failed;
    char why[512];
};

static void *
write_some(void *arg)
{
    struct writer *w = arg;
    struct rs_error e = { 0 };

    for (int i = 0; i < WRITES && !w->failed; i++) {
        const char *ids[BATCH];
        int64_t first, retired[BATCH];
        size_t n_retired;
        long new_docs;
        for (int j = 0; j < BATCH; j++) {
            char *id = w->ids[i * BATCH + j];
            /* j 0: shared by both writers; others: this writer's */
            if (j == 0)
                snprintf(id, 40, "s%d", i % 5);
            else
                snprintf(id, 40, "w%d-%d-%d", w->who, i, j);
            ids[j] = id;
        }
        if (put(w->c, ids, BATCH, i, &first, retired, &n_retired, &new_docs, &e) != RS_OK) {
            w->failed = 1;
            snprintf(w->why, sizeof(w->why), "%s", e.msg);
        }
        for (int j = 0; j < BATCH; j++)
            w->labels[i * BATCH + j] = first + j;
    }
    return NULL;
}

struct follower {
    struct st_coll *c;
    atomic_int stop;
    int64_t upto;
    unsigned char *present;     /* [label]: in the follower's index */
    int rounds, failed;
    char why[512];
};

static int
follow_doc(int64_t label, const float *vec, void *arg)
{
    struct follower *f = arg;
    (void)vec;
    if (label < 1 || label > 2 * WRITES * BATCH || f->present[label])
        return RS_EINTERNAL;     /* out of range, or added twice */
    f->present[label] = 1;
    return 0;
}

static int
follow_retired(int64_t label, void *arg)
{
    struct follower *f = arg;
    if (label < 1 || label > 2 * WRITES * BATCH)
        return RS_EINTERNAL;
    f->present[label] = 0;
    return 0;
}

/* Apply the changes after f->upto, as a replica's index would. */
static int
follow_once(struct follower *f)
{
    struct ds_feed feed = { .retired = follow_retired, .doc = follow_doc, .arg = f };
    struct rs_error e = { 0 };
    int64_t upto;

    if (f->c->ops->changes(f->c, f->upto, &feed, &upto, &e) != RS_OK) {
        snprintf(f->why, sizeof(f->why), "%s", e.msg);
        return -1;
    }
    if (upto < f->upto) {
        snprintf(f->why, sizeof(f->why), "went back from %lld to %lld", (long long)f->upto,
                 (long long)upto);
        return -1;
    }
    f->upto = upto;
    f->rounds++;
    return 0;
}

static void *
follow(void *arg)
{
    struct follower *f = arg;

    while (!atomic_load(&f->stop) && !f->failed)
        if (follow_once(f) != 0)
            f->failed = 1;
    return NULL;
}

START_TEST(test_two_writers_one_collection)
{
    struct writer *w = calloc(2, sizeof(*w));
    struct follower f = { 0 };
    struct st_db *db = db_open(_i);
    struct rs_error e = { 0 };
    struct st_coll *c;
    pthread_t t[3];
    int total = 2 * WRITES * BATCH;
    unsigned char *used = calloc((size_t)total + 1, 1);

    if (db == NULL) {
        free(w);
        free(used);
        return;
    }
    c = new_coll(db, coll_name("two"));
    f.c = c;
    f.present = calloc((size_t)total + 1, 1);
    for (int k = 0; k < 2; k++) {
        w[k].who = k;
        w[k].db = db_open(_i);
        ck_assert_msg(w[k].db->ops->open(w[k].db, coll_name("two"), &w[k].c, &e) == RS_OK,
                      "%s", e.msg);
    }
    ck_assert_int_eq(pthread_create(&t[2], NULL, follow, &f), 0);
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&t[k], NULL, write_some, &w[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    atomic_store(&f.stop, 1);
    pthread_join(t[2], NULL);
    for (int k = 0; k < 2; k++)
        ck_assert_msg(!w[k].failed, "writer %d: %s", k, w[k].why);
    ck_assert_msg(!f.failed, "follower: %s", f.why);

    /* every label once, 1..total, and the sequence at the last one */
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < WRITES * BATCH; j++) {
            int64_t l = w[k].labels[j];
            ck_assert_msg(l >= 1 && l <= total, "label %lld", (long long)l);
            ck_assert_msg(!used[l], "label %lld given twice", (long long)l);
            used[l] = 1;
        }
    ck_assert_int_eq(seq_of(c), total);

    /* the store keeps, per id, its version with the greatest label */
    ck_assert_int_eq(follow_once(&f), 0);
    ck_assert_int_eq(f.upto, total);
    for (int l = 1; l <= total; l++) {
        const char *id = NULL;
        int latest = 1;
        for (int k = 0; k < 2 && id == NULL; k++)
            for (int j = 0; j < WRITES * BATCH; j++)
                if (w[k].labels[j] == l)
                    id = w[k].ids[j];
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < WRITES * BATCH; j++)
                if (strcmp(w[k].ids[j], id) == 0 && w[k].labels[j] > l)
                    latest = 0;
        ck_assert_msg(f.present[l] == latest, "label %d (%s): followed %d, expected %d", l, id,
                      f.present[l], latest);
    }
    ck_assert_int_gt(f.rounds, 1);
    for (int k = 0; k < 2; k++) {
        w[k].c->ops->close(w[k].c);
        st_close(w[k].db);
    }
    c->ops->close(c);
    st_close(db);
    free(f.present);
    free(used);
    free(w);
    db_cleanup();
}
END_TEST

/* --- the change feed ------------------------------------------------------ */

struct later {
    struct st_coll *c;
    int delay_ms;
    int rc;
};

static void *
write_later(void *arg)
{
    static const char *const ids[] = { "late" };
    struct later *l = arg;
    struct rs_error e = { 0 };
    int64_t first, retired[1];
    size_t n_retired;
    long new_docs;

    usleep((useconds_t)l->delay_ms * 1000);
    l->rc = put(l->c, ids, 1, l->delay_ms, &first, retired, &n_retired, &new_docs, &e);
    return NULL;
}

struct waiter {
    struct st_coll *c;
    int64_t after, seq;
    int rc;
};

static void *
wait_for(void *arg)
{
    struct waiter *w = arg;
    w->rc = w->c->ops->wait(w->c, w->after, 5000, &w->seq, NULL);
    return NULL;
}

START_TEST(test_write_wakes_other_connection)
{
    struct st_db *a = db_open(_i), *b;
    struct rs_error e = { 0 };
    struct st_coll *ca, *cb;
    struct later l;
    struct waiter ws[2];
    pthread_t t, tw[2];
    int64_t seq = -1;
    double t0, dt;

    if (a == NULL)
        return;
    ca = new_coll(a, coll_name("feed"));
    b = db_open(_i);
    ck_assert_msg(b->ops->open(b, coll_name("feed"), &cb, &e) == RS_OK, "%s", e.msg);

    /* nothing comes: a timeout */
    t0 = tu_now();
    ck_assert_int_eq(cb->ops->wait(cb, 0, 300, &seq, &e), RS_ETIMEOUT);
    dt = tu_now() - t0;
    ck_assert_msg(dt >= 0.29 && dt < 2.0, "timed out after %.3f s", dt);
    ck_assert_int_eq(seq, 0);

    /* a write on the other connection wakes the waiter */
    l = (struct later){ ca, 300, -1 };
    ck_assert_int_eq(pthread_create(&t, NULL, write_later, &l), 0);
    t0 = tu_now();
    ck_assert_msg(cb->ops->wait(cb, 0, 5000, &seq, &e) == RS_OK, "%s", e.msg);
    dt = tu_now() - t0;
    pthread_join(t, NULL);
    ck_assert_int_eq(l.rc, RS_OK);
    ck_assert_int_eq(seq, 1);
    ck_assert_msg(dt >= 0.25 && dt < 1.0, "woke after %.3f s", dt);

    /* a write already there: at once */
    t0 = tu_now();
    ck_assert_int_eq(cb->ops->wait(cb, 0, 5000, &seq, &e), RS_OK);
    ck_assert_msg(tu_now() - t0 < 0.2, "pending change took %.3f s", tu_now() - t0);

    /* two waiters on one connection both wake */
    for (int k = 0; k < 2; k++) {
        ws[k] = (struct waiter){ cb, 1, -1, -99 };
        ck_assert_int_eq(pthread_create(&tw[k], NULL, wait_for, &ws[k]), 0);
    }
    l = (struct later){ ca, 200, -1 };
    t0 = tu_now();
    write_later(&l);
    for (int k = 0; k < 2; k++)
        pthread_join(tw[k], NULL);
    dt = tu_now() - t0;
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(ws[k].rc, RS_OK);
        ck_assert_int_eq(ws[k].seq, 2);
    }
    ck_assert_msg(dt < 1.5, "waiters woke after %.3f s", dt);

    cb->ops->close(cb);
    st_close(b);
    ca->ops->close(ca);
    st_close(a);
    db_cleanup();
}
END_TEST

/* --- search effort, incarnations ----------------------------------------- */

/* The operations a backend must have (a NULL slot fails here, not in a
 * crash). */
static void
has_ops(const struct st_ops *ops)
{
    ck_assert_msg(ops->changed != NULL && ops->uid != NULL && ops->set_effort != NULL &&
                  ops->match_labels != NULL && ops->match_vectors != NULL,
                  "%s lacks changed, uid, set_effort or the filters", ops->backend);
}

START_TEST(test_effort_round_trip)
{
    static const struct coll_effort mine = { 64, 200, 0 }, later = { 64, 0, 12 };
    struct st_db *db = db_open(_i), *other;
    struct ds_settings s = settings, got;
    struct rs_error e = { 0 };
    struct st_coll *c, *oc;

    if (db == NULL)
        return;
    has_ops(db->ops);
    s.effort = mine;
    ck_assert_msg(db->ops->create(db, coll_name("effort"), &s, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(db->ops->open(db, coll_name("effort"), &c, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(c->ops->settings(c, &got, &e) == RS_OK, "%s", e.msg);
    ck_assert_str_eq(got.fingerprint, "roformer-sim-tiny:sha256:0123abcd");
    ck_assert_int_eq(got.effort.ef_construction, 64);
    ck_assert_int_eq(got.effort.ef_search, 200);
    ck_assert_int_eq(got.effort.nprobe, 0);

    ck_assert_msg(c->ops->set_effort(c, &later, &e) == RS_OK, "%s", e.msg);
    other = db_open(_i);
    ck_assert_msg(other->ops->open(other, coll_name("effort"), &oc, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(oc->ops->settings(oc, &got, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(got.effort.ef_construction, 64);
    ck_assert_int_eq(got.effort.ef_search, 0);
    ck_assert_int_eq(got.effort.nprobe, 12);
    ck_assert_str_eq(got.factory, "Flat");
    ck_assert_int_eq(got.dim, DIM);
    ck_assert_str_eq(got.fingerprint, "roformer-sim-tiny:sha256:0123abcd");
    oc->ops->close(oc);
    st_close(other);
    c->ops->close(c);
    st_close(db);
    db_cleanup();
}
END_TEST

/* A new incarnation under the same name has another uid (PostgreSQL);
 * SQLite says 0 (its collections are opened by one process). */
START_TEST(test_uid_after_recreate)
{
    struct st_db *db = db_open(_i), *other;
    struct rs_error e = { 0 };
    struct st_coll *c, *oc;
    int64_t first;

    if (db == NULL)
        return;
    has_ops(db->ops);
    c = new_coll(db, coll_name("uid"));
    other = db_open(_i);
    ck_assert_msg(other->ops->open(other, coll_name("uid"), &oc, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(c->ops->uid(c), oc->ops->uid(oc));
    first = c->ops->uid(c);
    oc->ops->close(oc);
    c->ops->close(c);
    ck_assert_int_eq(db->ops->drop(db, coll_name("uid"), &e), RS_OK);
    c = new_coll(db, coll_name("uid"));
    if (_i == 0)
        ck_assert_int_eq(c->ops->uid(c), 0);
    else
        ck_assert_int_ne(c->ops->uid(c), first);
    ck_assert_msg(other->ops->open(other, coll_name("uid"), &oc, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(c->ops->uid(c), oc->ops->uid(oc));
    oc->ops->close(oc);
    st_close(other);
    c->ops->close(c);
    st_close(db);
    db_cleanup();
}
END_TEST

/* --- filters: both backends against an evaluator of collection.h ---------- */

enum { T_NULL, T_TRUE, T_FALSE, T_INT, T_REAL, T_STR, T_OTHER };

/* A JSON value as written in a document, and what it means. */
struct jval {
    const char *json;
    int type;
    long long i;        /* T_INT */
    const char *s;      /* T_STR: the decoded bytes; T_REAL: none (strtod(json)) */
};

static const struct jval doc_values[] = {
    { "null", T_NULL, 0, NULL }, { "true", T_TRUE, 0, NULL }, { "false", T_FALSE, 0, NULL },
    { "0", T_INT, 0, NULL }, { "1", T_INT, 1, NULL }, { "-1", T_INT, -1, NULL },
    { "-0", T_INT, 0, NULL }, { "100", T_INT, 100, NULL },
    { "9007199254740993", T_INT, 9007199254740993LL, NULL },
    { "9007199254740992", T_INT, 9007199254740992LL, NULL },
    { "9223372036854775807", T_INT, 9223372036854775807LL, NULL },
    { "-9223372036854775808", T_INT, -9223372036854775807LL - 1, NULL },
    { "1.0", T_REAL, 0, NULL }, { "0.1", T_REAL, 0, NULL },
    { "0.10000000000000001", T_REAL, 0, NULL }, { "2.5", T_REAL, 0, NULL },
    { "-0.0", T_REAL, 0, NULL }, { "1e2", T_REAL, 0, NULL }, { "100.0", T_REAL, 0, NULL },
    { "0.30000000000000004", T_REAL, 0, NULL }, { "1e300", T_REAL, 0, NULL },
    { "-7.25", T_REAL, 0, NULL }, { "1.5e-3", T_REAL, 0, NULL },
    { "\"\"", T_STR, 0, "" }, { "\"a\"", T_STR, 0, "a" }, { "\"A\"", T_STR, 0, "A" },
    { "\"\xc3\xa9\"", T_STR, 0, "\xc3\xa9" }, { "\"\\u00e9\"", T_STR, 0, "\xc3\xa9" },
    { "\"e\\u0301\"", T_STR, 0, "e\xcc\x81" },
    { "\"say \\\"hi\\\"\"", T_STR, 0, "say \"hi\"" },
    { "\"back\\\\slash\"", T_STR, 0, "back\\slash" },
    { "\"\xe6\x97\xa5\xe6\x9c\xac\"", T_STR, 0, "\xe6\x97\xa5\xe6\x9c\xac" },
    { "\"1\"", T_STR, 0, "1" }, { "\"true\"", T_STR, 0, "true" },
    { "\"null\"", T_STR, 0, "null" }, { "\"it's\"", T_STR, 0, "it's" },
    { "\"'); DROP TABLE rosim_docs; --\"", T_STR, 0, "'); DROP TABLE rosim_docs; --" },
    { "\"\\ud83d\\ude00\"", T_STR, 0, "\xf0\x9f\x98\x80" },
    { "[1]", T_OTHER, 0, NULL }, { "[]", T_OTHER, 0, NULL }, { "{\"a\":1}", T_OTHER, 0, NULL },
    { "{}", T_OTHER, 0, NULL }, { "[\"a\"]", T_OTHER, 0, NULL }, { "[null]", T_OTHER, 0, NULL },
};
#define N_DOC_VALUES (sizeof(doc_values) / sizeof(doc_values[0]))

/* Keys: as written in a document, and the bytes a filter names. */
static const char *const key_json[] = { "\"k0\"", "\"k1\"", "\"k2\"", "\"\\u043a\"",
                                        "\"a b\"", "\"q\\\"k\"" };
static const char *const key_bytes[] = { "k0", "k1", "k2", "\xd0\xba", "a b", "q\"k",
                                         "missing", "\xff" };
#define N_DOC_KEYS 6
#define N_KEYS 8
#define N_DOCS 240

struct odoc {
    int val[N_DOC_KEYS];        /* index in doc_values, -1: absent */
    int shape;                  /* 0 an object of val; 1 "[\"k0\"]"; 2 "5" */
};

static int
int_is_real(long long i, double r)
{
    return r == trunc(r) && r >= -0x1p63 && r < 0x1p63 && (long long)r == i;
}

/* Whether document value d equals filter value f (collection.h). */
static int
value_eq(const struct jval *d, const struct coll_value *f)
{
    double dr = d->type == T_REAL ? strtod(d->json, NULL) : 0;

    switch (f->type) {
    case COLL_V_NULL: return d->type == T_NULL;
    case COLL_V_TRUE: return d->type == T_TRUE;
    case COLL_V_FALSE: return d->type == T_FALSE;
    case COLL_V_STRING:
        return d->type == T_STR && strlen(d->s) == f->len && memcmp(d->s, f->s, f->len) == 0;
    case COLL_V_INT:
        return d->type == T_INT ? d->i == f->i : d->type == T_REAL && int_is_real(f->i, dr);
    default:
        return d->type == T_INT ? int_is_real(d->i, f->r) : d->type == T_REAL && dr == f->r;
    }
}

static int
key_index(const char *key)
{
    for (int k = 0; k < N_DOC_KEYS; k++)
        if (strcmp(key, key_bytes[k]) == 0)
            return k;
    return -1;
}

static int
doc_matches(const struct odoc *d, const struct coll_filter *f)
{
    for (int i = 0; i < f->n; i++) {
        const struct coll_clause *cl = &f->clauses[i];
        int k = key_index(cl->key), v = k >= 0 && d->shape == 0 ? d->val[k] : -1, any = 0;
        if (cl->cond == COLL_EXISTS && v < 0)
            return 0;
        if (cl->cond == COLL_ABSENT && v >= 0)
            return 0;
        if (cl->cond != COLL_MATCH)
            continue;
        for (int j = 0; v >= 0 && j < cl->n_values; j++)
            any |= value_eq(&doc_values[v], &cl->values[j]);
        if (!any)
            return 0;
    }
    return 1;
}

/* A filter value from the documents' scalars, or one no document has. */
static struct coll_value
random_value(unsigned *seed)
{
    static const struct coll_value extra[] = {
        { COLL_V_INT, 3, 0, NULL, 0 }, { COLL_V_REAL, 0, 100.0, NULL, 0 },
        { COLL_V_REAL, 0, 1.0, NULL, 0 }, { COLL_V_REAL, 0, 0.1, NULL, 0 },
        { COLL_V_REAL, 0, 9007199254740992.0, NULL, 0 }, { COLL_V_REAL, 0, -0.0, NULL, 0 },
        { COLL_V_REAL, 0, -9223372036854775808.0, NULL, 0 },
        { COLL_V_REAL, 0, 1e300, NULL, 0 }, { COLL_V_INT, 9007199254740993LL, 0, NULL, 0 },
        { COLL_V_STRING, 0, 0, "zz", 2 }, { COLL_V_STRING, 0, 0, "\xff", 1 },
        { COLL_V_STRING, 0, 0, "a\0b", 3 }, { COLL_V_STRING, 0, 0, "A", 1 },
    };
    const struct jval *d;
    struct coll_value v = { 0 };

    if (rand_r(seed) % 4 == 0)
        return extra[rand_r(seed) % (sizeof(extra) / sizeof(extra[0]))];
    do
        d = &doc_values[rand_r(seed) % N_DOC_VALUES];
    while (d->type == T_OTHER);
    switch (d->type) {
    case T_NULL: v.type = COLL_V_NULL; break;
    case T_TRUE: v.type = COLL_V_TRUE; break;
    case T_FALSE: v.type = COLL_V_FALSE; break;
    case T_INT: v.type = COLL_V_INT; v.i = d->i; break;
    case T_REAL: v.type = COLL_V_REAL; v.r = strtod(d->json, NULL); break;
    default: v.type = COLL_V_STRING; v.s = d->s; v.len = strlen(d->s); break;
    }
    return v;
}

static int
gather_label(int64_t label, const float *vec, void *arg)
{
    unsigned char *seen = arg;
    (void)vec;
    ck_assert(label >= 1 && label <= N_DOCS);
    ck_assert_int_eq(seen[label], 0);
    seen[label] = 1;
    return 0;
}

START_TEST(test_filter_oracle)
{
    struct st_db *db = db_open(_i);
    static struct odoc docs[N_DOCS];
    struct coll_doc cd[N_DOCS];
    static char metas[N_DOCS][512], ids[N_DOCS][16];
    static float vecs[N_DOCS * DIM];
    struct rs_error e = { 0 };
    struct st_coll *c;
    unsigned seed = 20261202;
    int64_t first, retired[N_DOCS], labels[N_DOCS + 3];
    size_t n_retired;
    long new_docs;
    int n_match = 0;

    if (db == NULL)
        return;
    has_ops(db->ops);
    c = new_coll(db, coll_name("filter"));
    for (int d = 0; d < N_DOCS; d++) {
        size_t at = 0;
        docs[d].shape = d % 23 == 5 ? 1 : d % 23 == 11 ? 2 : 0;
        at += (size_t)snprintf(metas[d], sizeof(metas[d]), "{");
        for (int k = 0; k < N_DOC_KEYS; k++) {
            docs[d].val[k] = rand_r(&seed) % 5 < 2 ? (int)(rand_r(&seed) % N_DOC_VALUES) : -1;
            if (docs[d].val[k] >= 0)
                at += (size_t)snprintf(metas[d] + at, sizeof(metas[d]) - at, "%s%s: %s",
                                       at > 1 ? ", " : "", key_json[k],
                                       doc_values[docs[d].val[k]].json);
        }
        snprintf(metas[d] + at, sizeof(metas[d]) - at, "}");
        if (docs[d].shape)
            snprintf(metas[d], sizeof(metas[d]), "%s", docs[d].shape == 1 ? "[\"k0\"]" : "5");
        snprintf(ids[d], sizeof(ids[d]), "f%d", d);
        vector_of(ids[d], 1, vecs + d * DIM);
        cd[d] = (struct coll_doc){ ids[d], ids[d], metas[d], vecs + d * DIM, 0 };
    }
    ck_assert_msg(c->ops->upsert(c, cd, vecs, N_DOCS, &first, retired, &n_retired, &new_docs,
                                 &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(first, 1);
    for (int d = 0; d < N_DOCS; d++)
        labels[d] = N_DOCS - d;       /* label of document N_DOCS - d - 1 */
    labels[N_DOCS] = 0;
    labels[N_DOCS + 1] = N_DOCS + 7;
    labels[N_DOCS + 2] = 3;

    for (int t = 0; t < 300; t++) {
        struct coll_clause cl[3];
        struct coll_value vals[3][4];
        struct coll_filter f = { cl, 1 + (int)(rand_r(&seed) % 3) };
        unsigned char match[N_DOCS + 3], seen[N_DOCS + 1] = { 0 };
        for (int i = 0; i < f.n; i++) {
            int r = (int)(rand_r(&seed) % 6);
            cl[i].key = key_bytes[rand_r(&seed) % N_KEYS];
            cl[i].cond = r < 4 ? COLL_MATCH : r == 4 ? COLL_EXISTS : COLL_ABSENT;
            cl[i].n_values = cl[i].cond == COLL_MATCH ? 1 + (int)(rand_r(&seed) % 4) : 0;
            cl[i].values = vals[i];
            for (int v = 0; v < cl[i].n_values; v++)
                vals[i][v] = random_value(&seed);
        }
        ck_assert_msg(c->ops->match_labels(c, &f, labels, N_DOCS + 3, match, &e) == RS_OK,
                      "filter %d: %s", t, e.msg);
        ck_assert_msg(c->ops->match_vectors(c, &f, gather_label, seen, &e) == RS_OK,
                      "filter %d: %s", t, e.msg);
        for (int d = 0; d < N_DOCS; d++) {
            int want = doc_matches(&docs[d], &f);
            ck_assert_msg(match[N_DOCS - d - 1] == want && seen[d + 1] == want,
                          "filter %d, document %s: matched %d/%d, expected %d", t, metas[d],
                          match[N_DOCS - d - 1], seen[d + 1], want);
            n_match += want;
        }
        ck_assert_int_eq(match[N_DOCS], 0);
        ck_assert_int_eq(match[N_DOCS + 1], 0);
        ck_assert_int_eq(match[N_DOCS + 2], doc_matches(&docs[2], &f));
    }
    ck_assert_int_gt(n_match, 300 * N_DOCS / 50);    /* the filters do match some */
    c->ops->close(c);
    st_close(db);
    db_cleanup();
}
END_TEST

/* --- the database-wide change wait ---------------------------------------- */

struct poke {
    struct st_db *db;           /* another handle */
    int delay_ms;
    double done;                /* when its write committed (tu_now) */
    int rc;
};

/* After delay_ms, a write on another handle: a document in "feedall". */
static void *
poke_later(void *arg)
{
    static const char *const ids[] = { "poke" };
    struct poke *p = arg;
    struct rs_error e = { 0 };
    struct st_coll *c;
    int64_t first, retired[1];
    size_t n_retired;
    long new_docs;

    usleep((useconds_t)p->delay_ms * 1000);
    p->rc = p->db->ops->open(p->db, coll_name("feedall"), &c, &e);
    if (p->rc == RS_OK) {
        p->rc = put(c, ids, 1, 1, &first, retired, &n_retired, &new_docs, &e);
        c->ops->close(c);
    }
    p->done = tu_now();
    return NULL;
}

START_TEST(test_changed)
{
    struct st_db *db = db_open(_i), *other;
    struct rs_error e = { 0 };
    struct st_coll *c;
    unsigned long gen = 0, before;
    struct poke p;
    pthread_t t;
    double t0, dt;

    if (db == NULL)
        return;
    has_ops(db->ops);
    c = new_coll(db, coll_name("feedall"));
    other = db_open(_i);

    /* the first call may return at once (PostgreSQL: listening begins) */
    ck_assert_msg(db->ops->changed(db, &gen, 2000, &e) == RS_OK, "%s", e.msg);
    /* nothing happens: back after the timeout */
    before = gen;
    t0 = tu_now();
    ck_assert_msg(db->ops->changed(db, &gen, 300, &e) == RS_OK, "%s", e.msg);
    dt = tu_now() - t0;
    ck_assert_msg(dt >= 0.29 && dt < 1.0, "returned after %.3f s", dt);
    if (_i == 0) {              /* SQLite: nothing more to tell */
        c->ops->close(c);
        st_close(other);
        st_close(db);
        db_cleanup();
        return;
    }
    ck_assert_uint_eq(gen, before);

    /* a write through another handle: promptly */
    p = (struct poke){ other, 300, 0, -1 };
    ck_assert_int_eq(pthread_create(&t, NULL, poke_later, &p), 0);
    ck_assert_msg(db->ops->changed(db, &gen, 5000, &e) == RS_OK, "%s", e.msg);
    dt = tu_now();
    pthread_join(t, NULL);
    ck_assert_int_eq(p.rc, RS_OK);
    ck_assert_uint_ne(gen, before);
    ck_assert_msg(dt - p.done < 0.2, "returned %.3f s after the write", dt - p.done);

    /* a write while nobody waits: the next call returns at once */
    before = gen;
    p = (struct poke){ other, 0, 0, -1 };
    poke_later(&p);
    ck_assert_int_eq(p.rc, RS_OK);
    usleep(100 * 1000);
    t0 = tu_now();
    ck_assert_msg(db->ops->changed(db, &gen, 5000, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(tu_now() - t0 < 0.2, "pending change took %.3f s", tu_now() - t0);
    ck_assert_uint_ne(gen, before);

    /* a creation, a change of effort and a drop elsewhere count too */
    for (int k = 0; k < 3; k++) {
        static const struct coll_effort eff = { 0, 99, 0 };
        struct st_coll *oc;
        before = gen;
        if (k == 0)
            ck_assert_int_eq(other->ops->create(other, coll_name("feedall2"), &settings, &e),
                             RS_OK);
        else if (k == 2)
            ck_assert_int_eq(other->ops->drop(other, coll_name("feedall2"), &e), RS_OK);
        else {
            ck_assert_int_eq(other->ops->open(other, coll_name("feedall"), &oc, &e), RS_OK);
            ck_assert_int_eq(oc->ops->set_effort(oc, &eff, &e), RS_OK);
            oc->ops->close(oc);
        }
        t0 = tu_now();
        ck_assert_msg(db->ops->changed(db, &gen, 5000, &e) == RS_OK, "%s", e.msg);
        ck_assert_msg(tu_now() - t0 < 0.5, "change %d took %.3f s", k, tu_now() - t0);
        ck_assert_uint_ne(gen, before);
    }
    c->ops->close(c);
    st_close(other);
    st_close(db);
    db_cleanup();
}
END_TEST

static double
cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The server stops and starts: changed() returns (a change, or
 * RS_EUNAVAIL after its timeout) without spinning, then sees writes
 * again. */
START_TEST(test_pg_changed_across_restart)
{
    struct rs_error e = { 0 };
    struct st_db *db, *other;
    struct st_coll *c;
    unsigned long gen = 0, before;
    struct poke p;
    pthread_t t;
    double t0, cpu0, dt;
    int calls = 0, unavail = 0, rc;

    if (pg_state == 1)
        return;
    ck_assert_msg(pg_state == 0, "PostgreSQL did not start: %s", pg.why);
    ck_assert_msg(st_open(&db, "postgresql", pg.dsn, 0, &e) == RS_OK, "%s", e.msg);
    has_ops(db->ops);
    c = new_coll(db, coll_name("feedall"));
    ck_assert_msg(db->ops->changed(db, &gen, 2000, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(tu_pg_stop(&pg) == 0, "%s", pg.why);

    t0 = tu_now();
    cpu0 = cpu_now();
    while (tu_now() - t0 < 1.5) {
        double c0 = tu_now();
        rc = db->ops->changed(db, &gen, 400, &e);
        ck_assert_msg(rc == RS_OK || rc == RS_EUNAVAIL, "%d: %s", rc, e.msg);
        ck_assert_msg(tu_now() - c0 < 1.5, "a call took %.3f s", tu_now() - c0);
        if (rc == RS_EUNAVAIL) {
            ck_assert_msg(tu_now() - c0 >= 0.39, "unavailable after %.3f s", tu_now() - c0);
            ck_assert_ptr_nonnull(strstr(e.msg, "PostgreSQL is unavailable"));
        }
        unavail += rc == RS_EUNAVAIL;
        calls++;
    }
    dt = cpu_now() - cpu0;
    ck_assert_int_ge(unavail, 2);
    ck_assert_msg(calls <= 8, "%d calls in 1.5 s", calls);
    ck_assert_msg(dt < 0.3, "%.3f s of CPU while the server was down", dt);

    /* back: a change (the reconnection), then writes are seen again */
    ck_assert_msg(tu_pg_restart(&pg) == 0, "%s", pg.why);
    before = gen;
    t0 = tu_now();
    ck_assert_msg(db->ops->changed(db, &gen, 5000, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(tu_now() - t0 < 1.0, "reconnected after %.3f s", tu_now() - t0);
    ck_assert_uint_ne(gen, before);
    ck_assert_msg(st_open(&other, "postgresql", pg.dsn, 0, &e) == RS_OK, "%s", e.msg);
    p = (struct poke){ other, 300, 0, -1 };
    ck_assert_int_eq(pthread_create(&t, NULL, poke_later, &p), 0);
    before = gen;
    ck_assert_msg(db->ops->changed(db, &gen, 5000, &e) == RS_OK, "%s", e.msg);
    dt = tu_now();
    pthread_join(t, NULL);
    ck_assert_int_eq(p.rc, RS_OK);
    ck_assert_uint_ne(gen, before);
    ck_assert_msg(dt - p.done < 0.2, "returned %.3f s after the write", dt - p.done);
    st_close(other);
    ck_assert_msg(db->ops->drop(db, coll_name("feedall"), &e) == RS_OK, "%s", e.msg);
    c->ops->close(c);
    st_close(db);
}
END_TEST

/* --- schema version 1, as rosim wrote it before effort settings ---------- */

static const char pg_schema_v1[] =
    "CREATE TABLE rosim_schema (version integer NOT NULL);"
    "INSERT INTO rosim_schema VALUES (1);"
    "CREATE TABLE rosim_collections (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,"
    " factory text NOT NULL, dim integer NOT NULL, fingerprint text NOT NULL,"
    " seq bigint NOT NULL DEFAULT 0, pruned bigint NOT NULL DEFAULT 0,"
    " created timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE rosim_docs (coll bigint NOT NULL REFERENCES rosim_collections (id)"
    " ON DELETE CASCADE, id text NOT NULL, label bigint NOT NULL, text bytea NOT NULL,"
    " meta json NOT NULL, meta_jsonb jsonb GENERATED ALWAYS AS (meta::jsonb) STORED,"
    " vector bytea NOT NULL, seq bigint NOT NULL, PRIMARY KEY (coll, id),"
    " UNIQUE (coll, label));"
    "CREATE TABLE rosim_retired (coll bigint NOT NULL REFERENCES rosim_collections (id)"
    " ON DELETE CASCADE, label bigint NOT NULL, seq bigint NOT NULL,"
    " PRIMARY KEY (coll, label));"
    "INSERT INTO rosim_collections (name, factory, dim, fingerprint, seq)"
    " VALUES ('old', 'Flat', 8, 'roformer-sim-tiny:sha256:0123abcd', 1);"
    "INSERT INTO rosim_docs (coll, id, label, text, meta, vector, seq) SELECT id, 'd1', 1,"
    " 'hello', '{\"k\":1}', decode(repeat('0000803f', 8), 'hex'), 1 FROM rosim_collections;";

static const char sqlite_schema_v1[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
    "INSERT INTO meta VALUES ('schema', '1'), ('factory', 'Flat'), ('dim', '8'),"
    " ('fingerprint', 'roformer-sim-tiny:sha256:0123abcd'), ('seq', '1'), ('pruned', '0');"
    "CREATE TABLE docs (id TEXT PRIMARY KEY, label INTEGER UNIQUE, text TEXT, meta TEXT,"
    " vector BLOB, seq INTEGER);"
    "CREATE INDEX docs_seq ON docs (seq);"
    "CREATE TABLE deleted (label INTEGER PRIMARY KEY, seq INTEGER);"
    "INSERT INTO docs VALUES ('d1', 1, 'hello', '{\"k\":1}',"
    " x'0000803f0000803f0000803f0000803f0000803f0000803f0000803f0000803f', 1);";

static void
pg_exec_ok(PGconn *k, const char *sql)
{
    PGresult *r = PQexec(k, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static void *
open_v1(void *arg)
{
    struct rs_error e = { 0 };
    struct st_db *db;
    int *rc = arg;

    *rc = st_open(&db, "postgresql", where, 0, &e);
    if (*rc == RS_OK)
        st_close(db);
    return NULL;
}

/* A database of version 1 is upgraded when opened (by three processes at
 * once, here threads): its collections read effort 0 and keep the rest. */
START_TEST(test_schema_v1_upgraded)
{
    static const struct coll_effort eff = { 0, 77, 0 };
    struct rs_error e = { 0 };
    struct st_db *db;
    struct st_coll *c;
    struct ds_settings s;
    struct coll_hit h;
    char dbname[64], cmd[600];
    float v[DIM];
    int64_t seq = -1;

    if (_i == 0) {
        snprintf(where, sizeof(where), "/tmp/rosim-storage-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(where));
        sqlite3 *sq;
        snprintf(cmd, sizeof(cmd), "%s/old", where);
        ck_assert_int_eq(mkdir(cmd, 0700), 0);
        snprintf(cmd, sizeof(cmd), "%s/old/docs.db", where);
        ck_assert_int_eq(sqlite3_open(cmd, &sq), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(sq, sqlite_schema_v1, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(sq);
    } else {
        PGconn *k;
        if (pg_state == 1)
            return;
        ck_assert_msg(pg_state == 0, "PostgreSQL did not start: %s", pg.why);
        snprintf(dbname, sizeof(dbname), "rosim_v1_%d", (int)getpid());
        k = PQconnectdb(pg.dsn);
        ck_assert_int_eq(PQstatus(k), CONNECTION_OK);
        snprintf(cmd, sizeof(cmd), "CREATE DATABASE %s", dbname);
        pg_exec_ok(k, cmd);
        PQfinish(k);
        snprintf(where, sizeof(where), "%s dbname=%s", pg.dsn, dbname);
        k = PQconnectdb(where);
        ck_assert_int_eq(PQstatus(k), CONNECTION_OK);
        pg_exec_ok(k, pg_schema_v1);
        PQfinish(k);

        pthread_t t[3];
        int rc[3];
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(pthread_create(&t[i], NULL, open_v1, &rc[i]), 0);
        for (int i = 0; i < 3; i++) {
            pthread_join(t[i], NULL);
            ck_assert_int_eq(rc[i], RS_OK);
        }
    }
    ck_assert_msg(st_open(&db, backends[_i], where, 0, &e) == RS_OK, "%s", e.msg);
    has_ops(db->ops);
    ck_assert_msg(db->ops->open(db, "old", &c, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(c->ops->settings(c, &s, &e) == RS_OK, "%s", e.msg);
    ck_assert_str_eq(s.factory, "Flat");
    ck_assert_int_eq(s.dim, DIM);
    ck_assert_str_eq(s.fingerprint, "roformer-sim-tiny:sha256:0123abcd");
    ck_assert_int_eq(s.effort.ef_construction, 0);
    ck_assert_int_eq(s.effort.ef_search, 0);
    ck_assert_int_eq(s.effort.nprobe, 0);
    ck_assert_msg(c->ops->get_label(c, 1, &h, v, &e) == RS_OK, "%s", e.msg);
    ck_assert_str_eq(h.id, "d1");
    ck_assert_float_eq(v[DIM - 1], 1.0f);
    coll_hit_clear(&h);
    ck_assert_int_eq(c->ops->seq(c, &seq, &e), RS_OK);
    ck_assert_int_eq(seq, 1);
    ck_assert_msg(c->ops->set_effort(c, &eff, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(c->ops->settings(c, &s, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(s.effort.ef_search, 77);
    c->ops->close(c);
    st_close(db);

    if (_i == 1) {              /* version 2 recorded; a later one refused */
        PGconn *k = PQconnectdb(where);
        PGresult *r = PQexec(k, "SELECT version FROM rosim_schema");
        ck_assert_int_eq(PQntuples(r), 1);
        ck_assert_str_eq(PQgetvalue(r, 0, 0), "2");
        PQclear(r);
        pg_exec_ok(k, "UPDATE rosim_schema SET version = 3");
        ck_assert_int_eq(st_open(&db, "postgresql", where, 0, &e), RS_EFORMAT);
        ck_assert_ptr_nonnull(strstr(e.msg, "version 3"));
        PQfinish(k);
        k = PQconnectdb(pg.dsn);
        snprintf(cmd, sizeof(cmd), "DROP DATABASE %s", dbname);
        pg_exec_ok(k, cmd);
        PQfinish(k);
    }
    db_cleanup();
}
END_TEST

/* --- PostgreSQL only: the server goes away and comes back ----------------- */

START_TEST(test_pg_down_then_back)
{
    static const char *const first5[] = { "p0", "p1", "p2", "p3", "p4" },
                             *const more[] = { "p5", "p6" };
    struct rs_error e = { 0 };
    struct st_db *db, *other;
    struct st_coll *c, *oc;
    struct coll_hit h;
    struct later l;
    pthread_t t;
    double t0;
    char dsn[300];
    int64_t first, retired[8], seq, label;
    size_t n_retired;
    long new_docs, count;

    if (pg_state == 1)
        return;
    ck_assert_msg(pg_state == 0, "PostgreSQL did not start: %s", pg.why);
    /* trust authentication ignores the password; no message may show it */
    snprintf(dsn, sizeof(dsn), "%s password=sekrit-9f1c", pg.dsn);
    ck_assert_msg(st_open(&db, "postgresql", dsn, 0, &e) == RS_OK, "%s", e.msg);
    c = new_coll(db, coll_name("outage"));
    ck_assert_msg(put(c, first5, 5, 1, &first, retired, &n_retired, &new_docs, &e) == RS_OK,
                  "%s", e.msg);

    /* listening (a wait that times out) before the server goes */
    ck_assert_int_eq(c->ops->wait(c, 5, 200, &seq, &e), RS_ETIMEOUT);
    ck_assert_msg(tu_pg_stop(&pg) == 0, "%s", pg.why);
    ck_assert_int_eq(put(c, more, 2, 1, &first, retired, &n_retired, &new_docs, &e),
                     RS_EUNAVAIL);
    ck_assert_ptr_null(strstr(e.msg, "sekrit"));
    ck_assert_ptr_nonnull(strstr(e.msg, "PostgreSQL is unavailable"));
    ck_assert_int_eq(c->ops->get(c, "p0", &h, &e), RS_EUNAVAIL);
    ck_assert_int_eq(c->ops->del(c, "p0", &seq, &label, &e), RS_EUNAVAIL);
    ck_assert_int_eq(c->ops->wait(c, 5, 100, &seq, &e), RS_EUNAVAIL);
    ck_assert_int_eq(db->ops->ping(db, &e), RS_EUNAVAIL);
    ck_assert_int_eq(st_open(&other, "postgresql", dsn, 0, &e), RS_EUNAVAIL);
    ck_assert_ptr_null(strstr(e.msg, "sekrit"));
    ck_assert_ptr_null(other);

    /* back: the same handles work again at the first call */
    ck_assert_msg(tu_pg_restart(&pg) == 0, "%s", pg.why);
    ck_assert_msg(put(c, more, 2, 1, &first, retired, &n_retired, &new_docs, &e) == RS_OK,
                  "%s", e.msg);
    ck_assert_int_eq(first, 6);
    ck_assert_int_eq(seq_of(c), 7);
    ck_assert_int_eq(c->ops->count(c, &count, &e), RS_OK);
    ck_assert_int_eq(count, 7);
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(c->ops->get(c, first5[i], &h, &e) == RS_OK, "%s", e.msg);
        coll_hit_clear(&h);
    }
    ck_assert_int_eq(c->ops->wait(c, 5, 100, &seq, &e), RS_OK);
    ck_assert_int_eq(db->ops->ping(db, &e), RS_OK);

    /* the listening connection, broken by the restart, is replaced: a
     * write through another connection still wakes a waiter */
    ck_assert_msg(st_open(&other, "postgresql", dsn, 0, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(other->ops->open(other, coll_name("outage"), &oc, &e) == RS_OK, "%s", e.msg);
    l = (struct later){ oc, 300, -1 };
    ck_assert_int_eq(pthread_create(&t, NULL, write_later, &l), 0);
    t0 = tu_now();
    ck_assert_msg(c->ops->wait(c, 7, 5000, &seq, &e) == RS_OK, "%s", e.msg);
    ck_assert_msg(tu_now() - t0 < 1.5, "woke after %.3f s", tu_now() - t0);
    pthread_join(t, NULL);
    ck_assert_int_eq(l.rc, RS_OK);
    ck_assert_int_eq(seq, 8);
    oc->ops->close(oc);
    st_close(other);
    c->ops->close(c);
    st_close(db);
}
END_TEST

/* A batch is one transaction: a document PostgreSQL refuses (jsonb has no
 * U+0000) leaves nothing of the batch, and takes no number. */
START_TEST(test_pg_refused_batch_leaves_nothing)
{
    static const char *const ok[] = { "ok" };
    struct rs_error e = { 0 };
    struct st_db *db = db_open(1);
    struct st_coll *c;
    struct coll_hit h;
    struct coll_doc d[3];
    float vecs[3 * DIM];
    int64_t first = -1, retired[3];
    size_t n_retired;
    long new_docs, count = -1;

    if (db == NULL)
        return;
    c = new_coll(db, coll_name("refused"));
    for (int i = 0; i < 3; i++)
        vector_of("r", i, vecs + i * DIM);
    d[0] = (struct coll_doc){ "r0", "fine", "{}", vecs, 0 };
    d[1] = (struct coll_doc){ "r1", "bad meta", "{\"k\":\"a\\u0000b\"}", vecs + DIM, 0 };
    d[2] = (struct coll_doc){ "r2", "fine", "{}", vecs + 2 * DIM, 0 };
    ck_assert_int_eq(c->ops->upsert(c, d, vecs, 3, &first, retired, &n_retired, &new_docs, &e),
                     RS_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "PostgreSQL: upsert: "));
    ck_assert_int_eq(seq_of(c), 0);
    ck_assert_int_eq(c->ops->count(c, &count, &e), RS_OK);
    ck_assert_int_eq(count, 0);
    ck_assert_int_eq(c->ops->get(c, "r0", &h, &e), RS_ENOTFOUND);
    put_ok(c, ok, 1, 1, 1, NULL, 0, 1);
    c->ops->close(c);
    st_close(db);
    db_cleanup();
}
END_TEST

/* Connection strings carry passwords: an unreachable server's message
 * does not repeat it. */
START_TEST(test_pg_unreachable_hides_dsn)
{
    struct rs_error e = { 0 };
    struct st_db *db = (struct st_db *)1;

    ck_assert_int_eq(st_open(&db, "postgresql", "host=/nonexistent-dir port=1 user=u"
                             " password=sekrit-77 connect_timeout=2", 0, &e), RS_EUNAVAIL);
    ck_assert_ptr_null(db);
    ck_assert_ptr_null(strstr(e.msg, "sekrit"));
    ck_assert_ptr_nonnull(strstr(e.msg, "PostgreSQL is unavailable"));
    ck_assert_int_eq(st_open(&db, "mysql", "x", 0, &e), RS_EINVAL);
}
END_TEST

/* --- rosimd -t: [storage] backend and dsn --------------------------------- */

/* rosimd -t with extra arguments (NULL-terminated; env: one VAR=VALUE or
 * NULL); its exit status, output in *out and *err (new). */
static int
rosimd_t(const char *env, const char *const extra[], char **out, char **err)
{
    char *argv[16];
    int n = 0;

    argv[n++] = "/usr/bin/env";
    if (env != NULL)
        argv[n++] = (char *)env;
    argv[n++] = (char *)tu_program("ROSIMD", "build/rosimd");
    argv[n++] = "-c";
    argv[n++] = "conf/rosimd.conf";
    argv[n++] = "--model";
    argv[n++] = "tests/fixtures/roformer-sim-tiny";
    for (int i = 0; extra[i] != NULL; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    return tu_run(argv, NULL, out, err);
}

/* -t connects to the server, and shows the DSN without its password. */
START_TEST(test_rosimd_t_reaches_server)
{
    char dsn[300], env[320], *out, *err;
    const char *arg[] = { "-t", "-o", "storage.backend=postgresql", "-o", dsn, NULL };
    const char *env_only[] = { "-t", "-o", "storage.backend=postgresql", NULL };

    if (pg_state == 1)
        return;
    ck_assert_msg(pg_state == 0, "PostgreSQL did not start: %s", pg.why);
    snprintf(dsn, sizeof(dsn), "storage.dsn=%s password=sekrit-3", pg.dsn);
    ck_assert_msg(rosimd_t(NULL, arg, &out, &err) == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(out, "backend = postgresql"));
    ck_assert_ptr_nonnull(strstr(out, "password='********'"));
    ck_assert_ptr_null(strstr(out, "sekrit"));
    free(out);
    free(err);

    snprintf(env, sizeof(env), "ROSIM_STORAGE_DSN=%s", dsn + strlen("storage.dsn="));
    ck_assert_msg(rosimd_t(env, env_only, &out, &err) == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(out, "; environment ROSIM_STORAGE_DSN"));
    ck_assert_ptr_null(strstr(out, "sekrit"));
    free(out);
    free(err);
}
END_TEST

START_TEST(test_rosimd_t_refuses_bad_storage)
{
    const char *no_dsn[] = { "-t", "-o", "storage.backend=postgresql", NULL };
    const char *away[] = { "-t", "-o", "storage.backend=postgresql", "-o",
                           "storage.dsn=host=/nonexistent-dir password=sekrit-5", NULL };
    const char *bad[] = { "-t", "-o", "storage.dsn=host=x password=sekrit 6", NULL };
    const char *other[] = { "-t", "-o", "storage.backend=mysql", NULL };
    char *out, *err;

    ck_assert_int_eq(rosimd_t(NULL, no_dsn, &out, &err), 1);
    ck_assert_msg(strstr(err, "backend = postgresql needs [storage] dsn") != NULL, "%s", err);
    free(out);
    free(err);
    ck_assert_int_eq(rosimd_t(NULL, away, &out, &err), 1);
    ck_assert_msg(strstr(err, "[storage] dsn: PostgreSQL is unavailable") != NULL, "%s", err);
    ck_assert_ptr_null(strstr(err, "sekrit"));
    free(out);
    free(err);
    ck_assert_int_eq(rosimd_t(NULL, bad, &out, &err), 1);
    ck_assert_msg(strstr(err, "[storage] dsn: not a libpq connection string") != NULL, "%s",
                  err);
    ck_assert_ptr_null(strstr(err, "sekrit"));
    free(out);
    free(err);
    ck_assert_int_eq(rosimd_t(NULL, other, &out, &err), 1);
    ck_assert_msg(strstr(err, "'mysql' is not one of sqlite, postgresql") != NULL, "%s", err);
    free(out);
    free(err);
}
END_TEST

/* --- the harness ---------------------------------------------------------- */

/* pg_ctl start leaves the server running with its output in a log file:
 * tu_run must return when pg_ctl does, not when the server exits. */
START_TEST(test_run_returns_before_daemon)
{
    char *argv[] = { "/bin/sh", "-c", "sleep 3 </dev/null >/dev/null 2>&1 &", NULL };
    double t0 = tu_now();

    ck_assert_int_eq(tu_run(argv, NULL, NULL, NULL), 0);
    ck_assert_msg(tu_now() - t0 < 2.0, "tu_run took %.1f s", tu_now() - t0);
}
END_TEST

Suite *
storage_suite(void)
{
    Suite *s = suite_create("storage");
    TCase *tc = tcase_create("contract");
    TCase *pc = tcase_create("postgresql");

    tcase_add_unchecked_fixture(tc, pg_up, pg_down);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_settings_and_list, 0, 2);
    tcase_add_loop_test(tc, test_upsert_delete_labels, 0, 2);
    tcase_add_loop_test(tc, test_text_and_meta_as_given, 0, 2);
    tcase_add_loop_test(tc, test_changes_after_seq, 0, 2);
    tcase_add_loop_test(tc, test_seq_only_grows, 0, 2);
    tcase_add_loop_test(tc, test_two_writers_one_collection, 0, 2);
    tcase_add_loop_test(tc, test_write_wakes_other_connection, 0, 2);
    tcase_add_loop_test(tc, test_effort_round_trip, 0, 2);
    tcase_add_loop_test(tc, test_uid_after_recreate, 0, 2);
    tcase_add_loop_test(tc, test_filter_oracle, 0, 2);
    tcase_add_loop_test(tc, test_changed, 0, 2);
    tcase_add_loop_test(tc, test_schema_v1_upgraded, 0, 2);
    suite_add_tcase(s, tc);

    tcase_add_unchecked_fixture(pc, pg_up, pg_down);
    tcase_set_timeout(pc, 120);
    tcase_add_test(pc, test_pg_down_then_back);
    tcase_add_test(pc, test_pg_changed_across_restart);
    tcase_add_test(pc, test_pg_unreachable_hides_dsn);
    tcase_add_test(pc, test_pg_refused_batch_leaves_nothing);
    tcase_add_test(pc, test_run_returns_before_daemon);
    tcase_add_test(pc, test_rosimd_t_reaches_server);
    tcase_add_test(pc, test_rosimd_t_refuses_bad_storage);
    suite_add_tcase(s, pc);
    return s;
}
