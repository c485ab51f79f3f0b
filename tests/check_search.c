/*
 * check_search.c: what a search can ask of a collection beyond its query
 * vector: metadata filters, search effort, and documents brought with
 * their own vectors.
 *
 * Filters are checked against a brute-force oracle over a mirror of random
 * metadata (with updates and deletes) for Flat, HNSW, a trained IVF index
 * and untrained IVF and PQ ones: every hit matches, a search returns min(k, matching) hits, and
 * Flat and an exhaustive IVF return exactly the oracle's best.  Effort is
 * checked by what it does to recall on clustered data, and by what is
 * stored (a docs.db of schema version 1 still opens).
 */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../index/collection.h"
#include "suites.h"
#include "testutil.h"

#define DIM 16
#define NDOCS 400

static unsigned rng = 7;

static unsigned
urand(unsigned n)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) % n;
}

static float
frand(void)
{
    return (float)urand(65536) / 65536.0f - 0.5f;
}

static void
random_vec(float *v)
{
    for (int i = 0; i < DIM; i++)
        v[i] = frand();
}

static float
cosine(const float *a, const float *b)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < DIM; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return (float)(ab / sqrt(aa * bb));
}

static struct coll *
open_in(const char *dir, const char *factory, int create, int *rc, struct rs_error *e)
{
    struct coll_options o = { create, factory, DIM, "test-model", COLL_FSYNC_OFF, 0, NULL, NULL };
    struct coll *c = NULL;
    char path[600];

    snprintf(path, sizeof(path), "%s/c", dir);
    *rc = coll_open(&c, path, &o, e);
    return c;
}

static struct coll *
open_coll(const char *dir, const char *factory)
{
    struct rs_error e;
    int rc;
    struct coll *c = open_in(dir, factory, 1, &rc, &e);

    ck_assert_msg(rc == RS_OK, "%s", e.msg);
    return c;
}

/* --- random metadata and its oracle ---------------------------------------- */

/* What a document's meta holds: cat "c0".."c4"; n an integer 0..5, the
 * same number as a real (2.0), the string "2", null, or absent; flag true,
 * false, the number 1, or absent; tag present on about 1 in 20. */
struct dmeta {
    int alive, cat, nkind, n, flag, tag;
    float vec[DIM];
};

enum { N_ABSENT, N_INT, N_REAL, N_STRING, N_NULL };
enum { F_ABSENT, F_TRUE, F_FALSE, F_ONE };

static void
random_meta(struct dmeta *m, char *json, size_t len)
{
    static const char *const flags[] = { "", ",\"flag\":true", ",\"flag\":false", ",\"flag\":1" };
    char n[32] = "";

    m->alive = 1;
    m->cat = (int)urand(5);
    m->nkind = (int)urand(5);
    m->n = (int)urand(6);
    m->flag = (int)urand(4);
    m->tag = urand(20) == 0;
    random_vec(m->vec);
    if (m->nkind == N_INT)
        snprintf(n, sizeof(n), ",\"n\":%d", m->n);
    else if (m->nkind == N_REAL)
        snprintf(n, sizeof(n), ",\"n\":%d.0", m->n);
    else if (m->nkind == N_STRING)
        snprintf(n, sizeof(n), ",\"n\":\"%d\"", m->n);
    else if (m->nkind == N_NULL)
        snprintf(n, sizeof(n), ",\"n\":null");
    snprintf(json, len, "{\"cat\":\"c%d\"%s%s%s,\"deep\":{\"cat\":\"c0\"}}", m->cat, n,
             flags[m->flag], m->tag ? ",\"tag\":[1,2]" : "");
}

/* The filters under test, as structs and as oracles. */
static const struct coll_value v_c0[] = { { COLL_V_STRING, 0, 0, "c0", 2 } };
static const struct coll_value v_c1c2[] = { { COLL_V_STRING, 0, 0, "c1", 2 },
                                            { COLL_V_STRING, 0, 0, "c2", 2 } };
static const struct coll_value v_n2[] = { { COLL_V_INT, 2, 0, NULL, 0 },
                                          { COLL_V_REAL, 0, 3.0, NULL, 0 } };
static const struct coll_value v_true[] = { { COLL_V_TRUE, 0, 0, NULL, 0 } };
static const struct coll_value v_false_null[] = { { COLL_V_FALSE, 0, 0, NULL, 0 },
                                                  { COLL_V_NULL, 0, 0, NULL, 0 } };
static const struct coll_value v_s2[] = { { COLL_V_STRING, 0, 0, "2", 1 } };

static const struct coll_clause f0[] = { { "cat", COLL_MATCH, v_c0, 1 } };
static const struct coll_clause f1[] = { { "cat", COLL_MATCH, v_c1c2, 2 },
                                         { "n", COLL_MATCH, v_n2, 2 } };
static const struct coll_clause f2[] = { { "tag", COLL_EXISTS, NULL, 0 } };
static const struct coll_clause f3[] = { { "flag", COLL_MATCH, v_true, 1 },
                                         { "tag", COLL_ABSENT, NULL, 0 } };
static const struct coll_clause f4[] = { { "n", COLL_MATCH, v_false_null, 2 },
                                         { "flag", COLL_MATCH, v_false_null, 2 } };
static const struct coll_clause f5[] = { { "n", COLL_MATCH, v_s2, 1 } };
static const struct coll_clause f6[] = { { "missing", COLL_EXISTS, NULL, 0 } };
static const struct coll_clause f7[] = { { "n", COLL_ABSENT, NULL, 0 } };

static const struct coll_filter filters[] = { { f0, 1 }, { f1, 2 }, { f2, 1 }, { f3, 2 },
                                              { f4, 2 }, { f5, 1 }, { f6, 1 }, { f7, 1 } };
#define N_FILTERS ((int)(sizeof(filters) / sizeof(filters[0])))

static int
oracle(int f, const struct dmeta *m)
{
    int num = m->nkind == N_INT || m->nkind == N_REAL;

    switch (f) {
    case 0: return m->cat == 0;
    case 1: return (m->cat == 1 || m->cat == 2) && num && (m->n == 2 || m->n == 3);
    case 2: return m->tag;
    case 3: return m->flag == F_TRUE && !m->tag;
    case 4: return m->nkind == N_NULL && m->flag == F_FALSE;
    case 5: return m->nkind == N_STRING && m->n == 2;
    case 6: return 0;
    default: return m->nkind == N_ABSENT;
    }
}

static void
put(struct coll *c, struct dmeta *docs, int i)
{
    char id[32], meta[256];
    struct coll_doc d;
    struct rs_error e;

    random_meta(&docs[i], meta, sizeof(meta));
    snprintf(id, sizeof(id), "doc-%d", i);
    d = (struct coll_doc){ id, "t", meta, docs[i].vec, 0 };
    ck_assert_msg(coll_upsert(c, &d, 1, NULL, &e) == RS_OK, "%s", e.msg);
}

static int
cmp_desc(const void *a, const void *b)
{
    float x = ((const float *)a)[0], y = ((const float *)b)[0];
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Every filter on a few queries against the oracle; exact says whether
 * the hits must be the oracle's best (else recall is counted). */
static void
check_filters(struct coll *c, const struct dmeta *docs, int k, int exact, double *found,
              double *wanted)
{
    float (*all)[2] = malloc(NDOCS * sizeof(*all));

    for (int f = 0; f < N_FILTERS; f++) {
        for (int q = 0; q < 5; q++) {
            struct coll_query cq = { k, -2.0f, &filters[f], 0, 0 };
            struct coll_hit *hits;
            struct rs_error e;
            float query[DIM];
            int n, match = 0, want;
            random_vec(query);
            for (int i = 0; i < NDOCS; i++) {
                if (!docs[i].alive || !oracle(f, &docs[i]))
                    continue;
                all[match][0] = cosine(query, docs[i].vec);
                all[match++][1] = (float)i;
            }
            qsort(all, (size_t)match, sizeof(all[0]), cmp_desc);
            want = match < k ? match : k;
            ck_assert_msg(coll_search_q(c, query, &cq, &hits, &n, &e) == RS_OK, "%s", e.msg);
            ck_assert_msg(n == want, "filter %d: %d hits, %d matching documents for k %d", f,
                          n, match, k);
            for (int h = 0; h < n; h++) {
                int id = atoi(hits[h].id + 4), in_top = 0;
                ck_assert_msg(docs[id].alive && oracle(f, &docs[id]),
                              "filter %d returned %s (meta %s)", f, hits[h].id, hits[h].meta);
                ck_assert(fabsf(hits[h].score - cosine(query, docs[id].vec)) < 1e-4f);
                for (int t = 0; t < want; t++)
                    in_top |= (int)all[t][1] == id;
                if (exact)
                    ck_assert_msg(in_top, "filter %d: %s is not among the best", f, hits[h].id);
                *found += in_top;
            }
            *wanted += want;
            coll_hits_free(hits, n);
        }
    }
    free(all);
}

static void
filters_for(const char *factory, int exact, int trained)
{
    char *dir = tu_temp_dir("search");
    struct coll *c = open_coll(dir, factory);
    struct dmeta *docs = calloc(NDOCS, sizeof(*docs));
    double found = 0, wanted = 0;
    struct coll_stats st;

    for (int i = 0; i < NDOCS; i++)
        put(c, docs, i);
    check_filters(c, docs, 10, exact, &found, &wanted);
    /* updates (new metadata and vector) and deletes */
    for (int round = 0; round < 3; round++) {
        for (int j = 0; j < 60; j++) {
            int i = (int)urand(NDOCS);
            struct rs_error e;
            char id[32];
            if (urand(3) == 0 && docs[i].alive) {
                snprintf(id, sizeof(id), "doc-%d", i);
                ck_assert_int_eq(coll_delete(c, id, NULL, &e), RS_OK);
                docs[i].alive = 0;
            } else {
                put(c, docs, i);
            }
        }
        check_filters(c, docs, 10, exact, &found, &wanted);
        check_filters(c, docs, 50, exact, &found, &wanted);
    }
    coll_get_stats(c, &st);
    ck_assert_msg(st.trained == trained, "%s: trained %d", factory, st.trained);
    ck_assert_msg(found >= 0.95 * wanted, "%s: filtered recall %.3f", factory, found / wanted);
    coll_close(c);
    free(docs);
    tu_remove_tree(dir);
    free(dir);
}

START_TEST(test_filters_flat)
{
    filters_for("Flat", 1, 1);
}
END_TEST

START_TEST(test_filters_hnsw)
{
    filters_for("HNSW16", 0, 1);
}
END_TEST

START_TEST(test_filters_ivf)
{
    /* IVF4 trains at 156 vectors; nprobe 4 of 4 lists is exhaustive */
    filters_for("IVF4,Flat", 1, 1);
}
END_TEST

START_TEST(test_filters_untrained)
{
    /* IVF64 and PQ4 train at 2496 and 9984 vectors: exact until then */
    filters_for("IVF64,Flat", 1, 0);
    filters_for("PQ4", 1, 0);
}
END_TEST

START_TEST(test_filters_refused)
{
    char *dir = tu_temp_dir("search");
    struct coll *c = open_coll(dir, "Flat");
    struct coll_value bad_real = { COLL_V_REAL, 0, NAN, NULL, 0 };
    struct coll_value many[COLL_FILTER_MAX_VALUES + 1];
    struct coll_clause cl[COLL_FILTER_MAX_CLAUSES + 1];
    struct coll_filter f = { cl, 1 };
    struct coll_query q = { 5, -2.0f, &f, 0, 0 };
    struct coll_hit *hits;
    struct rs_error e;
    float v[DIM];
    int n;

    random_vec(v);
    for (int i = 0; i <= COLL_FILTER_MAX_VALUES; i++)
        many[i] = (struct coll_value){ COLL_V_INT, i, 0, NULL, 0 };
    for (int i = 0; i <= COLL_FILTER_MAX_CLAUSES; i++)
        cl[i] = (struct coll_clause){ "k", COLL_EXISTS, NULL, 0 };
    ck_assert_int_eq(coll_search_q(c, v, &q, &hits, &n, &e), RS_OK);
    f.n = COLL_FILTER_MAX_CLAUSES + 1;
    ck_assert_int_eq(coll_search_q(c, v, &q, &hits, &n, &e), RS_EINVAL);
    f.n = 1;
    cl[0] = (struct coll_clause){ "k", COLL_MATCH, many, COLL_FILTER_MAX_VALUES + 1 };
    ck_assert_int_eq(coll_search_q(c, v, &q, &hits, &n, &e), RS_EINVAL);
    cl[0] = (struct coll_clause){ "k", COLL_MATCH, many, 0 };
    ck_assert_int_eq(coll_search_q(c, v, &q, &hits, &n, &e), RS_EINVAL);
    cl[0] = (struct coll_clause){ "k", COLL_MATCH, &bad_real, 1 };
    ck_assert_int_eq(coll_search_q(c, v, &q, &hits, &n, &e), RS_EINVAL);
    cl[0] = (struct coll_clause){ "", COLL_EXISTS, NULL, 0 };
    ck_assert_int_eq(coll_search_q(c, v, &q, &hits, &n, &e), RS_EINVAL);
    coll_close(c);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* --- effort ---------------------------------------------------------------- */

/* Gaussian clusters (sigma 0.1 around random centres): what real
 * embeddings look like to an IVF index. */
static void
clustered(float (*vecs)[DIM], int n, int clusters)
{
    float (*centre)[DIM] = malloc((size_t)clusters * sizeof(*centre));

    for (int c = 0; c < clusters; c++)
        random_vec(centre[c]);
    for (int i = 0; i < n; i++) {
        int c = (int)urand((unsigned)clusters);
        for (int j = 0; j < DIM; j++) {
            double u1 = (urand(65535) + 1) / 65536.0, u2 = urand(65536) / 65536.0;
            vecs[i][j] = centre[c][j] + 0.1f * (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
        }
    }
    free(centre);
}

static double
recall_at(struct coll *c, float (*vecs)[DIM], int n, int ef, int nprobe)
{
    float (*all)[2] = malloc((size_t)n * sizeof(*all));
    double found = 0;
    unsigned saved = rng;
    const int k = 10, queries = 50;

    rng = 99;   /* the same queries at every effort */
    for (int q = 0; q < queries; q++) {
        struct coll_query cq = { k, -2.0f, NULL, ef, nprobe };
        struct coll_hit *hits;
        struct rs_error e;
        float query[DIM];
        int nh;
        /* a query near the data: a stored vector, perturbed */
        memcpy(query, vecs[urand((unsigned)n)], sizeof(query));
        for (int j = 0; j < DIM; j++)
            query[j] += 0.1f * frand();
        for (int i = 0; i < n; i++) {
            all[i][0] = cosine(query, vecs[i]);
            all[i][1] = (float)i;
        }
        qsort(all, (size_t)n, sizeof(all[0]), cmp_desc);
        ck_assert_msg(coll_search_q(c, query, &cq, &hits, &nh, &e) == RS_OK, "%s", e.msg);
        ck_assert_int_eq(nh, k);
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < k; t++)
                found += atoi(hits[h].id + 4) == (int)all[t][1];
        coll_hits_free(hits, nh);
    }
    rng = saved;
    free(all);
    return found / (queries * k);
}

static void
fill(struct coll *c, float (*vecs)[DIM], int n)
{
    for (int i = 0; i < n; i += 100) {
        struct coll_doc d[100];
        char ids[100][32];
        struct rs_error e;
        int m = n - i < 100 ? n - i : 100;
        for (int j = 0; j < m; j++) {
            snprintf(ids[j], sizeof(ids[j]), "doc-%d", i + j);
            d[j] = (struct coll_doc){ ids[j], "", NULL, vecs[i + j], 0 };
        }
        ck_assert_msg(coll_upsert(c, d, m, NULL, &e) == RS_OK, "%s", e.msg);
    }
}

START_TEST(test_effort_changes_recall)
{
    const int n = 3000;
    float (*vecs)[DIM] = malloc((size_t)n * sizeof(*vecs));
    char *dir = tu_temp_dir("search"), *dir2 = tu_temp_dir("search");
    struct coll *ivf = open_coll(dir, "IVF32,Flat"), *hnsw = open_coll(dir2, "HNSW4");
    double low, high;
    struct coll_stats st;

    clustered(vecs, n, 8);   /* a cluster spans several lists */
    fill(ivf, vecs, n);
    coll_get_stats(ivf, &st);
    ck_assert(st.trained);
    low = recall_at(ivf, vecs, n, 0, 1);
    high = recall_at(ivf, vecs, n, 0, 32);
    ck_assert_msg(high == 1.0 && low < 0.95, "IVF32 recall: nprobe 1 %.3f, nprobe 32 %.3f",
                  low, high);
    /* the default (16) is between, and asking 0 means the default */
    ck_assert_double_ge(recall_at(ivf, vecs, n, 0, 0), low);
    fill(hnsw, vecs, n);
    low = recall_at(hnsw, vecs, n, 1, 0);
    high = recall_at(hnsw, vecs, n, 512, 0);
    ck_assert_msg(high >= 0.99 && low < high - 0.02, "HNSW4 recall: ef 1 %.3f, ef 512 %.3f",
                  low, high);
    coll_close(ivf);
    coll_close(hnsw);
    tu_remove_tree(dir);
    tu_remove_tree(dir2);
    free(dir);
    free(dir2);
    free(vecs);
}
END_TEST

START_TEST(test_effort_settings)
{
    char *dir = tu_temp_dir("search"), *dir2 = tu_temp_dir("search");
    struct coll *flat = open_coll(dir, "Flat"), *hnsw = open_coll(dir2, "HNSW8,Flat");
    struct coll_effort ef_search = { 0, 64, 0 }, nprobe = { 0, 0, 4 }, cons = { 80, 0, 0 };
    struct coll_effort too_big = { 0, COLL_MAX_EF_SEARCH + 1, 0 };
    struct coll_query q = { 3, -2.0f, NULL, 64, 0 };
    struct coll_hit *hits;
    struct coll_stats st;
    struct rs_error e;
    float v[DIM];
    int n, rc;

    random_vec(v);
    /* what does not apply to the index type is refused */
    ck_assert_int_eq(coll_set_effort(flat, &ef_search, &e), RS_EINVAL);
    ck_assert_int_eq(coll_set_effort(hnsw, &nprobe, &e), RS_EINVAL);
    ck_assert_int_eq(coll_set_effort(hnsw, &too_big, &e), RS_EINVAL);
    ck_assert_int_eq(coll_search_q(flat, v, &q, &hits, &n, &e), RS_EINVAL);
    ck_assert_int_eq(coll_effort_check("IVF8,Flat", &nprobe, &e), RS_OK);
    nprobe.nprobe = 9;
    ck_assert_int_eq(coll_effort_check("IVF8,Flat", &nprobe, &e), RS_EINVAL);
    ck_assert_int_eq(coll_effort_check("HNSW32", &cons, &e), RS_OK);
    /* defaults, then stored ones, kept across a reopen */
    coll_get_stats(hnsw, &st);
    ck_assert_int_eq(st.effort.ef_construction, COLL_DEFAULT_EF_CONSTRUCTION);
    ck_assert_int_eq(st.effort.ef_search, COLL_DEFAULT_EF_SEARCH);
    ck_assert_int_eq(st.effort.nprobe, 0);
    ck_assert_int_eq(coll_set_effort(hnsw, &cons, &e), RS_OK);   /* empty: allowed */
    ck_assert_int_eq(coll_set_effort(hnsw, &ef_search, &e), RS_OK);
    fill(hnsw, (float (*)[DIM])v, 1);
    cons.ef_construction = 100;
    ck_assert_int_eq(coll_set_effort(hnsw, &cons, &e), RS_EEXIST);
    ck_assert_int_eq(coll_search_q(hnsw, v, &q, &hits, &n, &e), RS_OK);
    ck_assert_int_eq(n, 1);
    coll_hits_free(hits, n);
    coll_close(hnsw);
    hnsw = open_in(dir2, NULL, 0, &rc, &e);
    ck_assert_int_eq(rc, RS_OK);
    coll_get_stats(hnsw, &st);
    ck_assert_int_eq(st.effort.ef_construction, 80);
    ck_assert_int_eq(st.effort.ef_search, 64);
    coll_close(hnsw);
    coll_close(flat);
    tu_remove_tree(dir);
    tu_remove_tree(dir2);
    free(dir);
    free(dir2);
}
END_TEST

static void
sql(const char *dir, const char *stmt)
{
    char path[600];
    sqlite3 *db;

    snprintf(path, sizeof(path), "%s/c/docs.db", dir);
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_msg(sqlite3_exec(db, stmt, NULL, NULL, NULL) == SQLITE_OK, "%s",
                  sqlite3_errmsg(db));
    sqlite3_close(db);
}

START_TEST(test_schema_1_still_opens)
{
    char *dir = tu_temp_dir("search");
    struct coll *c = open_coll(dir, "IVF4,Flat");
    struct coll_stats st;
    struct rs_error e;
    float v[DIM];
    int rc;

    random_vec(v);
    fill(c, (float (*)[DIM])v, 1);
    coll_close(c);
    /* what rosim wrote before effort settings existed */
    sql(dir, "DELETE FROM meta WHERE key IN ('ef_construction', 'ef_search', 'nprobe');"
             "UPDATE meta SET value = '1' WHERE key = 'schema'");
    c = open_in(dir, NULL, 0, &rc, &e);
    ck_assert_msg(rc == RS_OK, "%s", e.msg);
    coll_get_stats(c, &st);
    ck_assert_int_eq(st.documents, 1);
    ck_assert_int_eq(st.effort.nprobe, 4);   /* min(16, nlist) */
    coll_close(c);
    /* it was upgraded; a later schema is refused */
    sql(dir, "UPDATE meta SET value = '3' WHERE key = 'schema' AND "
             "(SELECT count(*) FROM meta WHERE key = 'nprobe') = 1");
    c = open_in(dir, NULL, 0, &rc, &e);
    ck_assert_int_eq(rc, RS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "schema version 3"));
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* --- documents with their own vectors -------------------------------------- */

START_TEST(test_vector_round_trip)
{
    char *dir = tu_temp_dir("search");
    struct coll *c = open_coll(dir, "HNSW8");
    float v[DIM], w[DIM], zero[DIM] = { 0 };
    struct coll_doc d = { "mine", "", "{\"src\":\"elsewhere\"}", v, 0 };
    struct coll_hit *hits, got;
    struct rs_error e;
    int n;

    random_vec(v);
    for (int i = 0; i < DIM; i++)
        w[i] = 7.5f * v[i];   /* any length: normalized on the way in */
    d.vec = w;
    ck_assert_int_eq(coll_upsert(c, &d, 1, NULL, &e), RS_OK);
    ck_assert_int_eq(coll_get(c, "mine", &got, &e), RS_OK);
    ck_assert_uint_eq(got.text_len, 0);
    ck_assert_str_eq(got.meta, "{\"src\":\"elsewhere\"}");
    coll_hit_clear(&got);
    ck_assert_int_eq(coll_search(c, v, 1, -2.0f, &hits, &n, &e), RS_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_float_eq_tol(hits[0].score, 1.0f, 1e-5f);
    coll_hits_free(hits, n);
    d.vec = zero;
    ck_assert_int_eq(coll_upsert(c, &d, 1, NULL, &e), RS_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "zero vector"));
    coll_close(c);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

Suite *
search_suite(void)
{
    Suite *s = suite_create("search");
    TCase *tc = tcase_create("filters");

    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_filters_flat);
    tcase_add_test(tc, test_filters_hnsw);
    tcase_add_test(tc, test_filters_ivf);
    tcase_add_test(tc, test_filters_untrained);
    tcase_add_test(tc, test_filters_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("effort");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_effort_changes_recall);
    tcase_add_test(tc, test_effort_settings);
    tcase_add_test(tc, test_schema_1_still_opens);
    tcase_add_test(tc, test_vector_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
