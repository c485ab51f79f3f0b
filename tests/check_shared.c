/*
 * check_shared.c: collections above the storage interface, on both
 * backends, through the store as rosimd uses it: writes, updates,
 * deletes, filters and effort answer the same on SQLite and PostgreSQL
 * (checked against a brute-force oracle kept by the test); on PostgreSQL,
 * several stores in one process stand for replicas: they see each other's
 * collections and writes (with min_seq waits and without), never return a
 * deleted or replaced document, catch up from a snapshot or from nothing,
 * refuse a collection of another model, and refuse writes while the
 * database is away, losing nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../index/store.h"
#include "pgserver.h"
#include "suites.h"
#include "testutil.h"

#define DIM 16
#define NDOCS 120

static struct tu_pg pg;
static int pg_state = 1;        /* 0 running, 1 not installed, -1 failed */

static void
pg_up(void)
{
    pg_state = tu_pg_start(&pg);
    if (pg_state == 1)
        fprintf(stderr, "check_shared: PostgreSQL tests skipped: %s\n", pg.why);
}

static void
pg_down(void)
{
    if (pg_state == 0)
        tu_pg_destroy(&pg);
}

/* 1 when a PostgreSQL test must be skipped (not installed). */
static int
no_pg(void)
{
    if (pg_state == 1)
        return 1;
    ck_assert_msg(pg_state == 0, "PostgreSQL did not start: %s", pg.why);
    return 0;
}

/* A store on data (its snapshots) and, for pg, the test server. */
static struct store *
open_store(const char *data, int pg_backed, const char *fingerprint)
{
    struct store_options o = { DIM, fingerprint, COLL_FSYNC_OFF, 0, "Flat", NULL, NULL,
                               pg_backed ? pg.dsn : NULL };
    struct store *s;
    struct rs_error e;

    ck_assert_msg(store_open(&s, data, &o, &e) == RS_OK, "%s", e.msg);
    return s;
}

static struct coll *
get(struct store *s, const char *name)
{
    struct coll *c;
    struct rs_error e;

    ck_assert_msg(store_get(s, name, &c, &e) == RS_OK, "%s: %s", name, e.msg);
    return c;
}

/* Wait up to seconds for store_get(name) to return want. */
static int
wait_get(struct store *s, const char *name, int want, double seconds)
{
    double until = tu_now() + seconds;
    struct coll *c;
    int rc;

    while ((rc = store_get(s, name, &c, NULL)) != want && tu_now() < until)
        usleep(20000);
    store_release(s, c);
    return rc;
}

/* --- the oracle ----------------------------------------------------------- */

struct doc {
    char id[16];
    int live;
    float v[DIM];
    int tag;
    char text[32];
};

static struct doc docs[NDOCS];

static void
random_vec(float *v, unsigned *seed)
{
    for (int i = 0; i < DIM; i++)
        v[i] = (float)rand_r(seed) / RAND_MAX - 0.5f;
}

/* Write docs[from..to) as they are in the oracle, in one upsert. */
static int64_t
put(struct coll *c, int from, int to)
{
    struct coll_doc d[NDOCS];
    char meta[NDOCS][32];
    struct rs_error e;
    int64_t seq;

    for (int i = from; i < to; i++) {
        snprintf(meta[i - from], sizeof(meta[0]), "{\"tag\":%d}", docs[i].tag);
        d[i - from] = (struct coll_doc){ docs[i].id, docs[i].text, meta[i - from], docs[i].v, 0 };
        docs[i].live = 1;
    }
    ck_assert_msg(coll_upsert(c, d, to - from, &seq, &e) == RS_OK, "%s", e.msg);
    return seq;
}

static void
make_docs(unsigned seed)
{
    for (int i = 0; i < NDOCS; i++) {
        snprintf(docs[i].id, sizeof(docs[i].id), "d%d", i);
        snprintf(docs[i].text, sizeof(docs[i].text), "文本 %d v0", i);
        random_vec(docs[i].v, &seed);
        docs[i].tag = i % 3;
        docs[i].live = 0;
    }
}

static double
cosine(const float *a, const float *b)
{
    double ab = 0, aa = 0, bb = 0;

    for (int i = 0; i < DIM; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

/* The collection answers as the oracle: every live document by id with its
 * text, no deleted one; for a few queries, exact search (Flat) gives the
 * oracle's best documents in order, filtered or not. */
static void
check_matches(struct coll *c, const char *who)
{
    struct rs_error e;
    struct coll_hit h, *hits;
    long live = 0;
    int n;
    unsigned seed = 99;

    for (int i = 0; i < NDOCS; i++) {
        int rc = coll_get(c, docs[i].id, &h, &e);
        if (!docs[i].live) {
            ck_assert_msg(rc == RS_ENOTFOUND, "%s: %s should be gone", who, docs[i].id);
            continue;
        }
        live++;
        ck_assert_msg(rc == RS_OK, "%s: %s: %s", who, docs[i].id, e.msg);
        ck_assert_str_eq(h.text, docs[i].text);
        coll_hit_clear(&h);
    }
    for (int t = 0; t < 6; t++) {
        float q[DIM];
        int tag = t % 3, filtered = t >= 3, best = -1, k = 5;
        struct coll_value val = { COLL_V_INT, tag, 0, NULL, 0 };
        struct coll_clause cl = { "tag", COLL_MATCH, &val, 1 };
        struct coll_filter f = { &cl, 1 };
        struct coll_query cq = { k, -1.0f, filtered ? &f : NULL, 0, 0 };
        random_vec(q, &seed);
        ck_assert_msg(coll_search_q(c, q, &cq, &hits, &n, &e) == RS_OK, "%s", e.msg);
        for (int r = 0; r < n; r++) {
            /* the r-th hit is the oracle's r-th best */
            double want = -2, got;
            int at = atoi(hits[r].id + 1);
            for (int i = 0; i < NDOCS; i++) {
                double s = cosine(q, docs[i].v);
                int taken = 0;
                if (!docs[i].live || (filtered && docs[i].tag != tag))
                    continue;
                for (int p = 0; p < r; p++)
                    taken |= atoi(hits[p].id + 1) == i;
                if (!taken && s > want) {
                    want = s;
                    best = i;
                }
            }
            ck_assert_msg(at == best || fabs(cosine(q, docs[at].v) - want) < 1e-6,
                          "%s: query %d hit %d is %s, the oracle says d%d", who, t, r,
                          hits[r].id, best);
            ck_assert_int_eq(docs[at].live, 1);
            ck_assert(!filtered || docs[at].tag == tag);
            got = hits[r].score;
            ck_assert_msg(fabs(got - want) < 1e-4, "%s: score %f, oracle %f", who, got, want);
        }
        ck_assert_int_eq(n, live < k && !filtered ? live : n);
        coll_hits_free(hits, n);
    }
}

/* Replace some documents (new vectors and texts) and delete others. */
static int64_t
churn(struct coll *c, unsigned seed, int round)
{
    struct rs_error e;
    int64_t seq = 0;

    for (int i = 0; i < NDOCS; i += 7) {
        if (!docs[i].live)
            continue;
        random_vec(docs[i].v, &seed);
        snprintf(docs[i].text, sizeof(docs[i].text), "文本 %d v%d", i, round);
        seq = put(c, i, i + 1);
    }
    for (int i = round % 5; i < NDOCS; i += 11) {
        if (!docs[i].live)
            continue;
        ck_assert_msg(coll_delete(c, docs[i].id, &seq, &e) == RS_OK, "%s", e.msg);
        docs[i].live = 0;
    }
    return seq;
}

/* --- both backends ------------------------------------------------------- */

/* Writes, updates, deletes, filters and a restart answer as the oracle,
 * on either backend; sequence numbers only grow. */
START_TEST(test_same_answers_on_both_backends)
{
    char *data = tu_temp_dir("shared");
    char name[32];
    struct store *s;
    struct coll *c;
    struct rs_error e;
    int created;
    int64_t s1, s2, s3;

    if (_i == 1 && no_pg()) {
        tu_remove_tree(data);
        free(data);
        return;
    }
    snprintf(name, sizeof(name), "same%d", _i);
    make_docs(7);
    s = open_store(data, _i, "m1");
    ck_assert_msg(store_create(s, name, "Flat", &created, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(created, 1);
    c = get(s, name);
    s1 = put(c, 0, NDOCS / 2);
    s2 = put(c, NDOCS / 2, NDOCS);
    ck_assert(s2 > s1);
    check_matches(c, "written");
    s3 = churn(c, 11, 1);
    ck_assert(s3 > s2);
    check_matches(c, "churned");
    store_release(s, c);
    store_close(s);

    /* a restart: the snapshot, then the store as it is */
    s = open_store(data, _i, "m1");
    c = get(s, name);
    check_matches(c, "reopened");
    ck_assert_int_gt(churn(c, 13, 2), s3);
    check_matches(c, "churned again");
    store_release(s, c);
    ck_assert_int_eq(store_drop(s, name, &e), RS_OK);
    ck_assert_int_eq(wait_get(s, name, RS_ENOTFOUND, 0), RS_ENOTFOUND);
    store_close(s);
    tu_remove_tree(data);
    free(data);
}
END_TEST

/* A wait for a sequence never written ends at its timeout. */
START_TEST(test_wait_seq_times_out)
{
    char *data = tu_temp_dir("shared");
    char name[32];
    struct store *s;
    struct coll *c;
    struct rs_error e;
    int created;
    int64_t seq;
    double t0;

    if (_i == 1 && no_pg()) {
        tu_remove_tree(data);
        free(data);
        return;
    }
    snprintf(name, sizeof(name), "wait%d", _i);
    make_docs(3);
    s = open_store(data, _i, "m1");
    ck_assert_int_eq(store_create(s, name, NULL, &created, &e), RS_OK);
    c = get(s, name);
    seq = put(c, 0, 1);
    ck_assert_int_eq(coll_wait_seq(c, seq, 0, &e), RS_OK);
    t0 = tu_now();
    ck_assert_int_eq(coll_wait_seq(c, seq + 1, 300, &e), RS_ETIMEOUT);
    ck_assert_msg(tu_now() - t0 >= 0.25 && tu_now() - t0 < 2.0, "waited %.2f s", tu_now() - t0);
    store_release(s, c);
    ck_assert_int_eq(store_drop(s, name, &e), RS_OK);
    store_close(s);
    tu_remove_tree(data);
    free(data);
}
END_TEST

/* --- replicas on PostgreSQL ----------------------------------------------- */

/* Two stores on one database: a collection created through one is served
 * by the other; writes through either are seen by both, with min_seq at
 * once and without within the follower's second; a drop is seen too. */
START_TEST(test_replicas_follow_each_other)
{
    char *da, *db;
    struct store *a, *b;
    struct coll *ca, *cb;
    struct rs_error e;
    struct coll_hit h;
    int created;
    int64_t seq;
    double t0;

    if (no_pg())
        return;
    da = tu_temp_dir("replica-a");
    db = tu_temp_dir("replica-b");
    make_docs(21);
    a = open_store(da, 1, "m1");
    b = open_store(db, 1, "m1");
    ck_assert_int_eq(store_create(a, "follow", "Flat", &created, &e), RS_OK);
    ck_assert_msg(wait_get(b, "follow", RS_OK, 2.0) == RS_OK, "b never saw the collection");
    ca = get(a, "follow");
    cb = get(b, "follow");

    /* read-your-writes across replicas with a sequence wait */
    seq = put(ca, 0, NDOCS / 2);
    ck_assert_msg(coll_wait_seq(cb, seq, 5000, &e) == RS_OK, "%s", e.msg);
    check_matches(cb, "b after a's write");

    /* both write, interleaved: each one's index takes the other's writes */
    for (int round = 0; round < 4; round++) {
        seq = put(round % 2 ? cb : ca, NDOCS / 2 + round * 10, NDOCS / 2 + round * 10 + 10);
        seq = churn(round % 2 ? ca : cb, 31 + round, round + 1);
    }
    ck_assert_int_eq(coll_wait_seq(ca, seq, 5000, &e), RS_OK);
    ck_assert_int_eq(coll_wait_seq(cb, seq, 5000, &e), RS_OK);
    check_matches(ca, "a after both wrote");
    check_matches(cb, "b after both wrote");

    /* without a wait: the follower brings it within a second or so */
    snprintf(docs[1].text, sizeof(docs[1].text), "seen without waiting");
    put(ca, 1, 2);
    t0 = tu_now();
    for (;;) {
        int rc = coll_get(cb, "d1", &h, &e), seen = 0;
        ck_assert_msg(rc == RS_OK || rc == RS_ENOTFOUND, "%s", e.msg);
        if (rc == RS_OK) {
            seen = strcmp(h.text, "seen without waiting") == 0;
            coll_hit_clear(&h);
        }
        if (seen)
            break;
        ck_assert_msg(tu_now() - t0 < 1.5, "b did not follow within 1.5 s");
        usleep(10000);
    }
    check_matches(cb, "b following");

    store_release(a, ca);
    store_release(b, cb);
    ck_assert_int_eq(store_drop(b, "follow", &e), RS_OK);
    ck_assert_msg(wait_get(a, "follow", RS_ENOTFOUND, 2.0) == RS_ENOTFOUND,
                  "a still has the dropped collection");
    store_close(a);
    store_close(b);
    tu_remove_tree(da);
    tu_remove_tree(db);
    free(da);
    free(db);
}
END_TEST

/* A replica with an empty data directory builds every index from the
 * database; one restarted with its snapshot replays only what is newer. */
START_TEST(test_replica_catches_up)
{
    char *da, *dc;
    struct store *a, *c;
    struct coll *ca, *cc;
    struct coll_stats st;
    struct rs_error e;
    int created;
    int64_t seq;

    if (no_pg())
        return;
    da = tu_temp_dir("replica-a");
    dc = tu_temp_dir("replica-c");
    make_docs(41);
    a = open_store(da, 1, "m1");
    ck_assert_int_eq(store_create(a, "catch", "HNSW16", &created, &e), RS_OK);
    ca = get(a, "catch");
    put(ca, 0, NDOCS);
    seq = churn(ca, 43, 1);

    c = open_store(dc, 1, "m1");   /* nothing local */
    cc = get(c, "catch");
    ck_assert_int_eq(coll_wait_seq(cc, seq, 0, &e), RS_OK);
    check_matches(cc, "fresh replica");
    store_release(c, cc);
    store_close(c);               /* leaves its snapshot */

    seq = churn(ca, 47, 2);
    c = open_store(dc, 1, "m1");
    cc = get(c, "catch");
    coll_get_stats(cc, &st);
    ck_assert_msg(st.snapshot_seq > 0 && st.snapshot_seq < seq,
                  "snapshot at %lld, writes up to %lld", (long long)st.snapshot_seq, (long long)seq);
    ck_assert_int_eq(coll_wait_seq(cc, seq, 0, &e), RS_OK);
    check_matches(cc, "replica restarted");
    store_release(c, cc);
    store_release(a, ca);
    ck_assert_int_eq(store_drop(a, "catch", &e), RS_OK);
    store_close(c);
    store_close(a);
    tu_remove_tree(da);
    tu_remove_tree(dc);
    free(da);
    free(dc);
}
END_TEST

/* A replica with another model refuses the collections made with the
 * first, and only those; it serves the one it makes itself. */
START_TEST(test_other_model_refused)
{
    char *da, *db;
    struct store *a, *b;
    struct store_info *list;
    struct coll *c;
    struct rs_error e;
    int created, n, found = 0;

    if (no_pg())
        return;
    da = tu_temp_dir("replica-a");
    db = tu_temp_dir("replica-b");
    a = open_store(da, 1, "model-one");
    ck_assert_int_eq(store_create(a, "one", NULL, &created, &e), RS_OK);
    b = open_store(db, 1, "model-two");
    ck_assert_int_eq(store_get(b, "one", &c, &e), RS_EEXIST);
    ck_assert_msg(strstr(e.msg, "model-one") != NULL && strstr(e.msg, "model-two") != NULL,
                  "%s", e.msg);
    ck_assert_int_eq(store_list(b, &list, &n), RS_OK);
    for (int i = 0; i < n; i++)
        if (strcmp(list[i].name, "one") == 0)
            found = list[i].failed;
    free(list);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(store_create(b, "two", NULL, &created, &e), RS_OK);
    store_release(b, get(b, "two"));
    ck_assert_int_eq(store_drop(a, "one", &e), RS_OK);
    ck_assert_int_eq(store_drop(b, "two", &e), RS_OK);
    store_close(a);
    store_close(b);
    tu_remove_tree(da);
    tu_remove_tree(db);
    free(da);
    free(db);
}
END_TEST

/* The database away: writes fail with RS_EUNAVAIL (not acknowledged),
 * reads are answered from the replica's copy, the store says the database
 * is unreachable, then reconnects by itself; what was acknowledged is all
 * there. */
START_TEST(test_database_away)
{
    char *da = NULL, why[512];
    struct store *a;
    struct coll *ca;
    struct rs_error e;
    struct coll_doc d;
    int created, rc = RS_OK;
    double t0;

    if (no_pg())
        return;
    da = tu_temp_dir("replica-a");
    make_docs(51);
    a = open_store(da, 1, "m1");
    ck_assert_int_eq(store_create(a, "away", NULL, &created, &e), RS_OK);
    ca = get(a, "away");
    put(ca, 0, NDOCS / 2);
    ck_assert_int_eq(tu_pg_stop(&pg), 0);
    d = (struct coll_doc){ docs[NDOCS - 1].id, "never", "{\"tag\":2}", docs[NDOCS - 1].v, 0 };
    ck_assert_int_eq(docs[NDOCS - 1].tag, 2);
    ck_assert_int_eq(coll_upsert(ca, &d, 1, NULL, &e), RS_EUNAVAIL);
    t0 = tu_now();
    while (store_reachable(a, why, sizeof(why)) && tu_now() - t0 < 3)
        usleep(20000);
    ck_assert_int_eq(store_reachable(a, why, sizeof(why)), 0);
    ck_assert_ptr_null(strstr(why, pg.dsn));
    check_matches(ca, "reads while the database is away");
    ck_assert_int_eq(tu_pg_restart(&pg), 0);
    t0 = tu_now();
    while (tu_now() - t0 < 10 &&
           (rc = coll_upsert(ca, &d, 1, NULL, &e)) == RS_EUNAVAIL)
        usleep(100000);
    ck_assert_msg(rc == RS_OK, "%s", e.msg);
    docs[NDOCS - 1].live = 1;
    snprintf(docs[NDOCS - 1].text, sizeof(docs[0].text), "never");
    t0 = tu_now();
    while (!store_reachable(a, NULL, 0) && tu_now() - t0 < 3)
        usleep(20000);
    ck_assert_int_eq(store_reachable(a, NULL, 0), 1);
    check_matches(ca, "after the outage");
    store_release(a, ca);
    ck_assert_int_eq(store_drop(a, "away", &e), RS_OK);
    store_close(a);
    tu_remove_tree(da);
    free(da);
}
END_TEST

Suite *
shared_suite(void)
{
    Suite *s = suite_create("shared");
    TCase *tc = tcase_create("collections");

    tcase_add_unchecked_fixture(tc, pg_up, pg_down);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_same_answers_on_both_backends, 0, 2);
    tcase_add_loop_test(tc, test_wait_seq_times_out, 0, 2);
    tcase_add_test(tc, test_replicas_follow_each_other);
    tcase_add_test(tc, test_replica_catches_up);
    tcase_add_test(tc, test_other_model_refused);
    tcase_add_test(tc, test_database_away);
    suite_add_tcase(s, tc);
    return s;
}
