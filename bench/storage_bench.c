/*
 * storage_bench.c: write rate of each storage backend (index/storage.h),
 * documents/s for upserts of batch 1 and batch 100 of 768-d vectors with
 * short texts, on SQLite (fsync = always, in /tmp) and on a PostgreSQL
 * server started for the run (tests/pgserver.h, default settings: fsync
 * on, synchronous_commit on).  Each write is acknowledged (committed)
 * before the next.
 *
 *   usage: storage_bench [SECONDS_PER_CASE]     (default 5)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../index/storage.h"
#include "../tests/pgserver.h"
#include "../tests/testutil.h"

#define DIM 768

static int
run_case(struct st_db *db, const char *name, int batch, double seconds, double *rate)
{
    struct ds_settings s = { "Flat", DIM, "bench" };
    struct coll_doc *docs = calloc((size_t)batch, sizeof(*docs));
    float *vecs = malloc((size_t)batch * DIM * sizeof(float));
    int64_t *retired = malloc((size_t)batch * sizeof(int64_t)), first;
    char (*ids)[32] = malloc((size_t)batch * 32);
    struct rs_error e = { 0 };
    struct st_coll *c = NULL;
    size_t n_retired;
    long new_docs, done = 0;
    double t0, t;
    int rc;

    if (docs == NULL || vecs == NULL || retired == NULL || ids == NULL) {
        rc = RS_ENOMEM;
        goto out;
    }
    for (int i = 0; i < batch * DIM; i++)
        vecs[i] = (float)((i * 7919) % 1000) / 1000.0f;
    if ((rc = db->ops->create(db, name, &s, &e)) != RS_OK ||
        (rc = db->ops->open(db, name, &c, &e)) != RS_OK)
        goto out;
    t0 = tu_now();
    do {
        for (int i = 0; i < batch; i++) {
            snprintf(ids[i], 32, "doc-%ld", done + i);
            docs[i] = (struct coll_doc){ ids[i], "怎么开发票 a short text of a document",
                                         "{\"tag\":1}", vecs + (size_t)i * DIM, 0 };
        }
        if ((rc = c->ops->upsert(c, docs, vecs, batch, &first, retired, &n_retired, &new_docs,
                                 &e)) != RS_OK)
            goto out;
        done += batch;
    } while ((t = tu_now() - t0) < seconds);
    *rate = (double)done / t;
out:
    if (rc != RS_OK)
        fprintf(stderr, "storage_bench: %s: %s\n", name, e.msg);
    if (c != NULL)
        c->ops->close(c);
    free(docs);
    free(vecs);
    free(retired);
    free(ids);
    return rc;
}

static int
bench(const char *backend, const char *where, double seconds)
{
    static const int batches[] = { 1, 100 };
    struct rs_error e = { 0 };
    struct st_db *db;
    char name[32];

    if (st_open(&db, backend, where, COLL_FSYNC_ALWAYS, &e) != RS_OK) {
        fprintf(stderr, "storage_bench: %s: %s\n", backend, e.msg);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        double rate = 0;
        snprintf(name, sizeof(name), "bench-%d-%d", batches[i], (int)getpid());
        if (run_case(db, name, batches[i], seconds, &rate) != RS_OK) {
            st_close(db);
            return -1;
        }
        printf("%-10s batch %3d: %8.0f documents/s (%.1f writes/s)\n", backend, batches[i],
               rate, rate / batches[i]);
        fflush(stdout);
    }
    st_close(db);
    return 0;
}

int
main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    char dir[] = "/tmp/rosim-bench-XXXXXX", cmd[64];
    struct tu_pg pg;
    int rc = 0, st;

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    rc |= bench("sqlite", dir, seconds);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "storage_bench: could not remove %s\n", dir);
    if ((st = tu_pg_start(&pg)) == 1) {
        printf("postgresql: skipped: %s\n", pg.why);
    } else if (st != 0) {
        fprintf(stderr, "storage_bench: %s\n", pg.why);
        rc = -1;
    } else {
        rc |= bench("postgresql", pg.dsn, seconds);
        tu_pg_destroy(&pg);
    }
    return rc == 0 ? 0 : 1;
}
