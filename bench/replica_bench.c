/*
 * replica_bench.c: what shared collections cost, measured through the
 * store as rosimd uses it (index/store.h), 768-d vectors with short texts:
 *   - write rate, documents/s, upserts of batch 1 and 100 acknowledged one
 *     after the other, on SQLite (fsync = always) and on PostgreSQL (a
 *     server started for the run: fsync on, synchronous_commit on; the
 *     replica's copy follows each write);
 *   - catch-up: a replica with an empty data directory opening a
 *     collection of N documents (its copy and index built from the
 *     database, no model), then the same replica restarted from its
 *     snapshot after 1,000 more writes elsewhere;
 *   - search latency (k = 10, Flat, one query at a time) on the SQLite
 *     collection and on the replica, same documents.
 *
 *   usage: replica_bench [DOCUMENTS]     (default 100000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../index/store.h"
#include "../tests/pgserver.h"
#include "../tests/testutil.h"

#define DIM 768
#define BATCH_LOAD 1000
#define QUERIES 200

static struct tu_pg pg;

static struct store *
open_store(const char *dir, const char *dsn)
{
    struct store_options o = { DIM, "bench", COLL_FSYNC_ALWAYS, 0, "Flat", NULL, NULL, dsn };
    struct store *s;
    struct rs_error e;

    if (store_open(&s, dir, &o, &e) != RS_OK) {
        fprintf(stderr, "replica_bench: %s\n", e.msg);
        exit(1);
    }
    return s;
}

static void
random_vecs(float *v, size_t n, unsigned *seed)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)rand_r(seed) / RAND_MAX - 0.5f;
}

/* Upsert documents from..from+n in batches of batch; the seconds taken. */
static double
load(struct coll *c, long from, long n, int batch, unsigned *seed)
{
    struct coll_doc *docs = calloc((size_t)batch, sizeof(*docs));
    float *vecs = malloc((size_t)batch * DIM * sizeof(float));
    char (*ids)[32] = malloc((size_t)batch * 32);
    struct rs_error e;
    double t0 = tu_now();

    if (docs == NULL || vecs == NULL || ids == NULL)
        exit(1);
    for (long done = 0; done < n; done += batch) {
        int k = n - done < batch ? (int)(n - done) : batch;
        random_vecs(vecs, (size_t)k * DIM, seed);
        for (int i = 0; i < k; i++) {
            snprintf(ids[i], 32, "doc-%ld", from + done + i);
            docs[i] = (struct coll_doc){ ids[i], "怎么开发票 a short text of a document",
                                         "{\"tag\":1}", vecs + (size_t)i * DIM, 0 };
        }
        if (coll_upsert(c, docs, k, NULL, &e) != RS_OK) {
            fprintf(stderr, "replica_bench: upsert: %s\n", e.msg);
            exit(1);
        }
    }
    free(docs);
    free(vecs);
    free(ids);
    return tu_now() - t0;
}

static struct coll *
create(struct store *s, const char *name)
{
    struct rs_error e;
    struct coll *c;
    int created;

    if (store_create(s, name, "Flat", &created, &e) != RS_OK ||
        store_get(s, name, &c, &e) != RS_OK) {
        fprintf(stderr, "replica_bench: %s\n", e.msg);
        exit(1);
    }
    return c;
}

/* Documents/s of upserts of batch for about seconds. */
static double
write_rate(struct coll *c, int batch, double seconds)
{
    unsigned seed = 5;
    long done = 0;
    double t = 0;

    while (t < seconds) {
        t += load(c, 10000000L + done, batch, batch, &seed);
        done += batch;
    }
    return (double)done / t;
}

/* Milliseconds per search, median of QUERIES. */
static double
search_ms(struct coll *c)
{
    float q[DIM];
    double ms[QUERIES];
    unsigned seed = 17;
    struct coll_hit *hits;
    struct rs_error e;
    int n;

    for (int i = 0; i < QUERIES; i++) {
        double t0;
        random_vecs(q, DIM, &seed);
        t0 = tu_now();
        if (coll_search(c, q, 10, -1.0f, &hits, &n, &e) != RS_OK || n != 10) {
            fprintf(stderr, "replica_bench: search: %s\n", e.msg);
            exit(1);
        }
        ms[i] = (tu_now() - t0) * 1e3;
        coll_hits_free(hits, n);
    }
    for (int i = 1; i < QUERIES; i++)   /* insertion sort: few */
        for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
            double x = ms[j];
            ms[j] = ms[j - 1];
            ms[j - 1] = x;
        }
    return ms[QUERIES / 2];
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    char *dl = tu_temp_dir("bench-local"), *da = tu_temp_dir("bench-a"),
         *dc = tu_temp_dir("bench-c");
    struct store *local, *a, *c;
    struct coll *cl, *ca, *cc;
    unsigned seed = 1;
    double t, lat_local, lat_replica;

    if (tu_pg_start(&pg) != 0) {
        fprintf(stderr, "replica_bench: PostgreSQL: %s\n", pg.why);
        return 1;
    }
    local = open_store(dl, NULL);
    a = open_store(da, pg.dsn);
    cl = create(local, "w");
    ca = create(a, "w");
    printf("write rate, documents/s (each upsert acknowledged before the next):\n");
    for (int batch = 1; batch <= 100; batch *= 100)
        printf("  batch %3d: sqlite %8.0f   postgresql %8.0f\n", batch,
               write_rate(cl, batch, 5), write_rate(ca, batch, 5));
    store_release(local, cl);
    store_release(a, ca);

    cl = create(local, "big");
    ca = create(a, "big");
    printf("loading %ld documents: sqlite %.1f s", n, load(cl, 0, n, BATCH_LOAD, &seed));
    seed = 1;
    printf(", postgresql %.1f s\n", load(ca, 0, n, BATCH_LOAD, &seed));

    t = tu_now();
    c = open_store(dc, pg.dsn);
    printf("fresh replica (empty data directory) ready: %.1f s for %ld documents\n",
           tu_now() - t, n);
    cc = store_acquire(c, "big");
    lat_local = search_ms(cl);
    lat_replica = search_ms(cc);
    printf("search k=10, Flat, median of %d: sqlite %.2f ms, replica on postgresql %.2f ms\n",
           QUERIES, lat_local, lat_replica);
    store_release(c, cc);
    store_close(c);
    load(ca, n, 1000, 100, &seed);
    t = tu_now();
    c = open_store(dc, pg.dsn);
    printf("replica restarted from its snapshot, 1000 writes behind: %.2f s\n", tu_now() - t);
    store_close(c);

    store_release(local, cl);
    store_release(a, ca);
    store_close(local);
    store_close(a);
    tu_pg_destroy(&pg);
    tu_remove_tree(dl);
    tu_remove_tree(da);
    tu_remove_tree(dc);
    free(dl);
    free(da);
    free(dc);
    return 0;
}
