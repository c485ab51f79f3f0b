/*
 * bench_search.c: `rosim bench --search`, recall and speed of collections.
 *
 * Two data sets of o->count vectors of the model's dimension, and 200
 * queries drawn from the same distribution (never stored vectors), all from
 * a fixed seed (splitmix64, normals by Box-Muller):
 *
 *   clustered  64 Gaussian clusters with Zipf sizes (cluster c is drawn
 *              with probability proportional to 1 / (c + 1)): a centre
 *              drawn from N(0, I) and normalized, plus N(0, s^2 I) noise
 *              with s = 0.75 / sqrt(dim) (noise of norm about 0.75), the
 *              sum normalized.  Sentence embeddings look like this: dense
 *              topics of very different sizes.
 *   uniform    every coordinate uniform in [-0.5, 0.5], normalized: no
 *              structure at all.  In high dimension every pair of such
 *              vectors has a cosine near 0, so the true nearest neighbours
 *              are barely nearer than the rest: the worst case for
 *              approximate indexes, and unlike real data.
 *
 * Each set goes into a Flat, an HNSW32,Flat and an IVF<n>,Flat collection
 * (n the largest power of two <= sqrt(count), so that it trains), through
 * rosim's own collection code (coll_upsert, coll_search_q: SQLite, hit
 * lookup and exact rescoring included), searched one query at a time at
 * two efforts each (HNSW ef_search 32 and 128, IVF nprobe 4 and 16).  The
 * reference is FAISS itself through its C API (IndexFlatIP over the same
 * normalized vectors, one query at a time, same process, after rosim's own
 * FAISS settings are made), the figure Flat's speed is compared with.
 * Recall@10 is against brute force (sgemm).  One JSON line per
 * measurement.
 */
#include <cblas.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../index/collection.h"
#include "bench.h"
#include "cli.h"

#define QUERIES 200
#define K 10
#define CLUSTERS 64

static uint64_t
next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double
uniform01(uint64_t *s)
{
    return (double)(next(s) >> 11) * 0x1.0p-53;
}

static float
normal(uint64_t *s)
{
    double u1 = uniform01(s) + 0x1.0p-53, u2 = uniform01(s);
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

static void
normalize(float *v, int dim)
{
    double n = 0;
    for (int j = 0; j < dim; j++)
        n += (double)v[j] * v[j];
    n = sqrt(n);
    for (int j = 0; j < dim; j++)
        v[j] = (float)(v[j] / n);
}

/* n vectors (n, dim) of the named distribution; centres (CLUSTERS, dim)
 * are shared by data and queries. */
static void
generate(int clustered, const float *centres, int n, int dim, uint64_t seed, float *out)
{
    double total = 0;
    const float s = 0.75f / sqrtf((float)dim);

    for (int c = 0; c < CLUSTERS; c++)
        total += 1.0 / (c + 1);
    for (int i = 0; i < n; i++) {
        float *v = out + (size_t)i * (size_t)dim;
        if (clustered) {
            double u = uniform01(&seed) * total;
            int c = 0;
            while (c < CLUSTERS - 1 && (u -= 1.0 / (c + 1)) > 0)
                c++;
            for (int j = 0; j < dim; j++)
                v[j] = centres[(size_t)c * (size_t)dim + j] + s * normal(&seed);
        } else {
            for (int j = 0; j < dim; j++)
                v[j] = (float)uniform01(&seed) - 0.5f;
        }
        normalize(v, dim);
    }
}

/* The K best of each query by brute force into truth (QUERIES, K). */
static int
ground_truth(const float *data, int n, const float *queries, int dim, int64_t *truth)
{
    const int chunk = 20;
    float *scores = malloc((size_t)chunk * (size_t)n * sizeof(float));

    if (scores == NULL)
        return -1;
    for (int q0 = 0; q0 < QUERIES; q0 += chunk) {
        /* Q (chunk, dim) @ X (n, dim)^T -> scores (chunk, n) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                    chunk, n, dim,
                    1.0f, queries + (size_t)q0 * (size_t)dim, dim,
                    data, dim,
                    0.0f, scores, n);
        for (int q = 0; q < chunk; q++) {
            const float *sc = scores + (size_t)q * (size_t)n;
            int64_t *best = truth + (size_t)(q0 + q) * K;
            float bs[K];
            for (int k = 0; k < K; k++) {
                bs[k] = -INFINITY;
                best[k] = -1;
            }
            for (int i = 0; i < n; i++) {
                int k = K - 1;
                if (sc[i] <= bs[K - 1])
                    continue;
                while (k > 0 && bs[k - 1] < sc[i]) {
                    bs[k] = bs[k - 1];
                    best[k] = best[k - 1];
                    k--;
                }
                bs[k] = sc[i];
                best[k] = i;
            }
        }
    }
    free(scores);
    return 0;
}

static int
in_truth(const int64_t *truth, int64_t id)
{
    for (int k = 0; k < K; k++)
        if (truth[k] == id)
            return 1;
    return 0;
}

struct bench_set {
    const char *name;
    const float *data, *queries;
    const int64_t *truth;
    int n, dim;
};

static void
report(const struct bench_set *b, const char *index, const char *effort, int value,
       double found, double seconds)
{
    printf("{\"data\":\"%s\",\"vectors\":%d,\"dim\":%d,\"index\":\"%s\"", b->name, b->n, b->dim,
           index);
    if (effort != NULL)
        printf(",\"%s\":%d", effort, value);
    printf(",\"recall_at_10\":%.4f,\"qps\":%.1f}\n", found / (QUERIES * K), QUERIES / seconds);
    fflush(stdout);
}

/* Fill a collection of type factory with b's data, then search it at each
 * effort (0: the default). */
static int
bench_collection(const struct bench_set *b, const char *factory, const char *effort,
                 const int *values, int n_values)
{
    char dir[] = "/tmp/rosim-bench-XXXXXX", path[64], cmd[128];
    struct coll_options co = { 1, factory, b->dim, "bench", COLL_FSYNC_OFF, 0, NULL, NULL };
    struct coll *c = NULL;
    struct rs_error e;
    double t0;
    int rc = 1;

    if (mkdtemp(dir) == NULL) {
        perror("rosim: mkdtemp");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/c", dir);
    if (coll_open(&c, path, &co, &e) != RS_OK)
        goto fail;
    t0 = cli_now();
    for (int i = 0; i < b->n; i += 1000) {
        struct coll_doc docs[1000];
        static char ids[1000][16];
        int k = b->n - i < 1000 ? b->n - i : 1000;
        for (int j = 0; j < k; j++) {
            snprintf(ids[j], sizeof(ids[j]), "%d", i + j);
            docs[j] = (struct coll_doc){ ids[j], "", NULL,
                                         b->data + (size_t)(i + j) * (size_t)b->dim, 0 };
        }
        if (coll_upsert(c, docs, k, NULL, &e) != RS_OK)
            goto fail;
    }
    fprintf(stderr, "rosim: %s %s: %d vectors stored in %.1f s\n", b->name, factory, b->n,
            cli_now() - t0);
    for (int v = 0; v < n_values; v++) {
        struct coll_query q = { K, -2.0f, NULL, 0, 0 };
        double found = 0, seconds = 0;
        if (effort != NULL && strcmp(effort, "ef_search") == 0)
            q.ef_search = values[v];
        else if (effort != NULL)
            q.nprobe = values[v];
        for (int i = -5; i < QUERIES; i++) {   /* 5 unmeasured: the effort is set */
            const float *query = b->queries + (size_t)(i < 0 ? 0 : i) * (size_t)b->dim;
            struct coll_hit *hits;
            int nh;
            t0 = cli_now();
            if (coll_search_q(c, query, &q, &hits, &nh, &e) != RS_OK)
                goto fail;
            if (i >= 0) {
                seconds += cli_now() - t0;
                for (int h = 0; h < nh; h++)
                    found += in_truth(b->truth + (size_t)i * K, atoll(hits[h].id));
            }
            coll_hits_free(hits, nh);
        }
        report(b, factory, effort, effort ? values[v] : 0, found, seconds);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "rosim: %s: %s\n", factory, e.msg);
done:
    coll_close(c);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}

/* FAISS's IndexFlatIP over the same vectors, through its C API. */
static int
bench_faiss_flat(const struct bench_set *b)
{
    FaissIndexFlatIP *idx = NULL;
    float dist[K];
    idx_t labels[K];
    double found = 0, seconds = 0;

    if (faiss_IndexFlatIP_new_with(&idx, b->dim) != 0 ||
        faiss_Index_add((FaissIndex *)idx, b->n, b->data) != 0) {
        fprintf(stderr, "rosim: FAISS IndexFlatIP failed\n");
        faiss_Index_free((FaissIndex *)idx);
        return 1;
    }
    for (int i = -5; i < QUERIES; i++) {
        const float *query = b->queries + (size_t)(i < 0 ? 0 : i) * (size_t)b->dim;
        double t0 = cli_now();
        faiss_Index_search((FaissIndex *)idx, 1, query, K, dist, labels);
        if (i < 0)
            continue;
        seconds += cli_now() - t0;
        for (int h = 0; h < K; h++)
            found += labels[h] >= 0 && in_truth(b->truth + (size_t)i * K, labels[h]);
    }
    report(b, "faiss IndexFlatIP (direct)", NULL, 0, found, seconds);
    faiss_Index_free((FaissIndex *)idx);
    return 0;
}

static int
bench_set(const char *name, int clustered, int n, int dim)
{
    static const int ef[] = { 32, 128 };
    int np[2];
    float *data = malloc((size_t)n * (size_t)dim * sizeof(float));
    float *queries = malloc((size_t)QUERIES * (size_t)dim * sizeof(float));
    float *centres = malloc((size_t)CLUSTERS * (size_t)dim * sizeof(float));
    int64_t *truth = malloc((size_t)QUERIES * K * sizeof(int64_t));
    struct bench_set b = { name, data, queries, truth, n, dim };
    uint64_t seed = 20240917;
    char ivf[32];
    int nlist = 1, rc = 1;

    if (data == NULL || queries == NULL || centres == NULL || truth == NULL) {
        fprintf(stderr, "rosim: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < (size_t)CLUSTERS * (size_t)dim; i++)
        centres[i] = normal(&seed);
    for (int c = 0; c < CLUSTERS; c++)
        normalize(centres + (size_t)c * (size_t)dim, dim);
    generate(clustered, centres, n, dim, seed + 1, data);
    generate(clustered, centres, QUERIES, dim, seed + 2, queries);
    if (ground_truth(data, n, queries, dim, truth) != 0) {
        fprintf(stderr, "rosim: out of memory\n");
        goto done;
    }
    while ((long)(2 * nlist) * (2 * nlist) <= n && 2 * nlist * 39 <= n)
        nlist *= 2;
    snprintf(ivf, sizeof(ivf), "IVF%d,Flat", nlist);
    np[0] = nlist < 4 ? nlist : 4;
    np[1] = nlist < 16 ? nlist : 16;
    rc = bench_collection(&b, "Flat", NULL, NULL, 1) || bench_faiss_flat(&b) ||
         bench_collection(&b, "HNSW32,Flat", "ef_search", ef, 2) ||
         bench_collection(&b, ivf, "nprobe", np, 2);
done:
    free(data);
    free(queries);
    free(centres);
    free(truth);
    return rc;
}

int
bench_search(const struct rf_model *m, const struct bench_options *o)
{
    const int dim = rf_model_config(m)->d_model;

    if (o->count < 2 * K) {
        fprintf(stderr, "rosim: bench --search needs --count of at least %d vectors\n", 2 * K);
        return 2;
    }
    return bench_set("clustered", 1, o->count, dim) || bench_set("uniform", 0, o->count, dim);
}
