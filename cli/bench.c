/*
 * bench.c: `rosim bench`: sentences/s of the encoder at batch 1 and batch
 * 32, and the achieved GFLOP/s against this machine's measured fp32 sgemm
 * rate.  FLOPs count real tokens only (padding is waste, not work):
 * per sentence of n tokens, 2n(4H^2 + 2HF) per layer for the dense layers
 * plus 4n^2 H per layer for attention scores and mixing.
 */
#include "bench.h"
#include "cli.h"

#include "../index/collection.h"
#include "../model/decoder.h"
#include "../model/generate.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Best-of-3 sgemm rate for an M x N x K product, in GFLOP/s. */
static double
sgemm_rate(int M, int N, int K)
{
    float *a = calloc((size_t)M * (size_t)K, sizeof(float));
    float *b = calloc((size_t)K * (size_t)N, sizeof(float));
    float *c = calloc((size_t)M * (size_t)N, sizeof(float));
    double best = 0;

    if (a == NULL || b == NULL || c == NULL)
        goto done;
    for (size_t i = 0; i < (size_t)M * (size_t)K; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)K * (size_t)N; i++)
        b[i] = (float)(i % 5) * 0.1f;
    for (int r = 0; r < 3; r++) {
        double t0 = cli_now(), t;
        int reps = 0;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N,
                        0.0f, c, N);
            reps++;
            t = cli_now() - t0;
        } while (t < 0.3);
        if (2.0 * M * N * K * reps / t / 1e9 > best)
            best = 2.0 * M * N * K * reps / t / 1e9;
    }
done:
    free(a);
    free(b);
    free(c);
    return best;
}

struct sent {
    int32_t *ids;
    int len;
};

static int
by_len(const void *x, const void *y)
{
    return ((const struct sent *)x)->len - ((const struct sent *)y)->len;
}

static double
run(const struct rf_model *m, struct sent *s, int n, int batch, double *secs)
{
    const int H = rf_model_config(m)->d_model;
    struct rf_state *st = rf_state_new(m, batch, 64);
    float *out = malloc((size_t)batch * (size_t)H * sizeof(float));
    const int32_t *ids[64];
    int lens[64];
    double t0;
    struct rs_error e;

    if (st == NULL || out == NULL) {
        rf_state_free(st);
        free(out);
        return -1;
    }
    t0 = cli_now();
    for (int i = 0; i < n; i += batch) {
        int k = n - i < batch ? n - i : batch;
        for (int j = 0; j < k; j++) {
            ids[j] = s[i + j].ids;
            lens[j] = s[i + j].len;
        }
        if (rf_encode(m, st, ids, lens, k, RF_POOL_LINEAR, out, &e) != RS_OK) {
            fprintf(stderr, "rosim: %s\n", e.msg);
            n = -1;
            break;
        }
    }
    *secs = cli_now() - t0;
    rf_state_free(st);
    free(out);
    return n;
}

int
bench_encoder(const struct rf_model *m, const struct bench_options *o)
{
    const struct rf_config *c = rf_model_config(m);
    const double H = c->d_model, F = c->d_ff, L = c->n_layer;
    FILE *fp = o->input ? fopen(o->input, "r") : stdin;
    struct sent *s = calloc((size_t)o->count, sizeof(*s));
    struct tok_output out = { 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0, rc = 1;
    long tokens = 0;
    double flops = 0, peak, rate1, rate32, t1, t32;

    if (fp == NULL || s == NULL) {
        fprintf(stderr, "rosim: cannot read %s\n", o->input ? o->input : "stdin");
        goto done;
    }
    while (n < o->count && (len = getline(&line, &cap, fp)) > 0) {
        struct rs_error e;
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0 || tok_encode(rf_model_vocab(m), line, (size_t)len, 64, &out, &e) != RS_OK)
            continue;
        s[n].ids = malloc((size_t)out.n * sizeof(int32_t));
        if (s[n].ids == NULL)
            goto done;
        memcpy(s[n].ids, out.ids, (size_t)out.n * sizeof(int32_t));
        s[n].len = out.n;
        tokens += out.n;
        flops += 2.0 * out.n * L * (4 * H * H + 2 * H * F) + 4.0 * out.n * out.n * H * L;
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "rosim: no sentences to benchmark\n");
        goto done;
    }
    peak = sgemm_rate(4096, (int)F, (int)H);
    rate1 = sgemm_rate((int)(tokens / n), (int)F, (int)H);
    rate32 = sgemm_rate(32 * (int)(tokens / n), (int)F, (int)H);
    printf("{\"sentences\":%d,\"tokens\":%ld,\"gflop\":%.1f,\"sgemm_gflops_m4096\":%.1f,"
           "\"sgemm_gflops_batch1_shape\":%.1f,\"sgemm_gflops_batch32_shape\":%.1f}\n",
           n, tokens, flops / 1e9, peak, rate1, rate32);
    run(m, s, n, 1, &t1);
    printf("{\"batch\":1,\"seconds\":%.3f,\"sentences_per_s\":%.1f,\"gflops\":%.1f,"
           "\"fraction_of_sgemm_peak\":%.3f,\"fraction_of_sgemm_at_batch1_shape\":%.3f}\n",
           t1, n / t1, flops / t1 / 1e9, flops / t1 / 1e9 / peak, flops / t1 / 1e9 / rate1);
    qsort(s, (size_t)n, sizeof(*s), by_len);
    run(m, s, n, 32, &t32);
    printf("{\"batch\":32,\"seconds\":%.3f,\"sentences_per_s\":%.1f,\"gflops\":%.1f,"
           "\"fraction_of_sgemm_peak\":%.3f}\n", t32, n / t32, flops / t32 / 1e9, flops / t32 / 1e9 / peak);
    rc = 0;
done:
    for (int i = 0; i < n; i++)
        free(s[i].ids);
    free(s);
    free(line);
    tok_output_free(&out);
    if (fp != NULL && fp != stdin)
        fclose(fp);
    return rc;
}

/* --- generation ----------------------------------------------------------- */

/* Best-of-3 single-thread read bandwidth over 512 MiB, in GB/s. */
static double
read_bandwidth(void)
{
    const size_t n = (size_t)128 << 20;
    float *a = malloc(n * sizeof(float));
    double best = 0;
    volatile float sink;

    if (a == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        a[i] = (float)(i & 7);
    for (int r = 0; r < 3; r++) {
        float acc[16] = { 0 };
        double t0 = cli_now(), t;
        for (size_t i = 0; i < n; i += 16)
            for (int u = 0; u < 16; u++)
                acc[u] += a[i + (size_t)u];
        t = cli_now() - t0;
        sink = acc[0] + acc[15];
        if (n * sizeof(float) / t / 1e9 > best)
            best = (double)(n * sizeof(float)) / t / 1e9;
    }
    (void)sink;
    free(a);
    return best;
}

int
bench_generate(const struct rf_model *m, const struct bench_options *o)
{
    const struct rf_config *c = rf_model_config(m);
    const double H = c->d_model, F = c->d_ff, L = c->n_layer, V = c->n_vocab;
    const int R = 100, N = 32;
    const double weight_bytes = 4 * (L * (4 * H * H + 2 * H * F) + H * H + H * V);
    FILE *fp = o->input ? fopen(o->input, "r") : stdin;
    char *line = NULL, **texts = calloc((size_t)o->count, sizeof(*texts));
    size_t cap = 0;
    ssize_t len;
    int n = 0, rc = 1;
    double bw, rate, total_s = 0, total_flops = 0;
    long total_tokens = 0;

    if (fp == NULL || texts == NULL) {
        fprintf(stderr, "rosim: cannot read %s\n", o->input ? o->input : "stdin");
        goto done;
    }
    while (n < o->count && (len = getline(&line, &cap, fp)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && (texts[n] = strdup(line)) != NULL)
            n++;
    }
    bw = read_bandwidth();
    rate = sgemm_rate(R, (int)F, (int)H);
    printf("{\"sentences\":%d,\"read_gb_per_s\":%.1f,\"sgemm_gflops_m100\":%.1f,"
           "\"weight_mb_per_step\":%.0f}\n", n, bw, rate, weight_bytes / 1e6);

    /* the whole procedure: n 100, k 20, 32 new tokens */
    for (int i = 0; i < n; i++) {
        struct gen_params p = gen_default_params();
        struct gen_paraphrases out = { 0 };
        struct tok_output src = { 0 };
        struct rs_error e;
        double t0;
        p.n = R;
        p.max_new = N;
        p.seed = (uint64_t)i + 1;
        tok_encode(rf_model_vocab(m), texts[i], strlen(texts[i]), p.src_maxlen, &src, &e);
        t0 = cli_now();
        if (gen_paraphrase(m, texts[i], strlen(texts[i]), &p, 20, &out, &e) != RS_OK) {
            fprintf(stderr, "rosim: %s\n", e.msg);
            tok_output_free(&src);
            goto done;
        }
        total_s += cli_now() - t0;
        total_tokens += out.n_generated;
        /* decode FLOPs of the generated tokens, source pass and ranking aside */
        total_flops += out.n_generated * (2 * L * (4 * H * H + 2 * H * F) + 2 * (H * H + H * V)) +
                       (double)out.n_generated * 4 * L * H * (src.n + N / 2.0);
        gen_paraphrases_free(&out);
        tok_output_free(&src);
    }
    printf("{\"gen_synonyms\":{\"n\":%d,\"k\":20,\"max_length\":%d,\"seconds_per_sentence\":%.2f,"
           "\"generated_tokens\":%ld,\"tokens_per_s\":%.0f,\"decode_gflops\":%.1f,"
           "\"fraction_of_sgemm_m100\":%.2f}}\n", R, N, total_s / n, total_tokens,
           total_tokens / total_s, total_flops / total_s / 1e9, total_flops / total_s / 1e9 / rate);

    /* one decode of 100 rows, step by step, against the step's limit */
    {
        struct tok_output src = { 0 };
        struct rs_error e;
        struct dec *d;
        int32_t tok[100];
        float *probs = NULL;
        double steps = 0, worst = 0, source_s, t0, recompute = 0, at[5], cost[5];
        static const int sample_t[5] = { 0, 8, 16, 24, 31 };

        tok_encode(rf_model_vocab(m), texts[0], strlen(texts[0]), 64, &src, &e);
        d = dec_new(m, src.n, N, R);
        if (d == NULL)
            goto done;
        t0 = cli_now();
        dec_start(d, src.ids, src.n, &e);
        source_s = cli_now() - t0;
        dec_fork(d, R, &e);
        for (int t = 0; t < N; t++) {
            double flops = R * (2 * L * (4 * H * H + 2 * H * F) + 2 * (H * H + H * V) +
                                4 * L * H * (src.n + t + 1));
            double limit = flops / (rate * 1e9) > weight_bytes / (bw * 1e9)
                               ? flops / (rate * 1e9) : weight_bytes / (bw * 1e9), dt;
            for (int r = 0; r < R; r++)
                tok[r] = (int32_t)(5 + (r * 131 + t * 17) % (c->n_vocab - 5));
            t0 = cli_now();
            if (dec_step(d, tok, &e) != RS_OK)
                break;
            dt = cli_now() - t0;
            steps += dt;
            if (dt / limit > worst)
                worst = dt / limit;
        }
        dec_free(d);
        printf("{\"decode\":{\"rows\":%d,\"source_ms\":%.1f,\"step_ms_mean\":%.1f,"
               "\"worst_step_over_limit\":%.2f}}\n", R, source_s * 1e3, steps / N * 1e3, worst);

        /* bert4keras recomputes [source + generated] for every row at every
         * step: measure at a few steps, integrate over the 32 */
        probs = malloc((size_t)R * (size_t)c->n_vocab * sizeof(float));
        for (int s = 0; s < 5 && probs != NULL; s++) {
            int t = sample_t[s], rows = t == 0 ? 1 : R;
            int32_t *gen = malloc((size_t)R * (size_t)N * sizeof(int32_t));
            const int32_t *gp[100];
            for (int r = 0; r < R; r++) {
                for (int k = 0; k < N; k++)
                    gen[r * N + k] = (int32_t)(5 + (r * 131 + k * 17) % (c->n_vocab - 5));
                gp[r] = gen + r * N;
            }
            t0 = cli_now();
            dec_recompute(m, src.ids, src.n, gp, t, rows, probs, &e);
            at[s] = t;
            cost[s] = cli_now() - t0;
            free(gen);
        }
        for (int s = 0; s + 1 < 5; s++)
            recompute += (cost[s] + cost[s + 1]) / 2 * (at[s + 1] - at[s]);
        recompute += cost[4];   /* the last step itself */
        free(probs);
        printf("{\"recompute\":{\"seconds_per_sentence_estimated\":%.1f,\"cached_seconds\":%.2f,"
               "\"speedup\":%.1f,\"step_seconds\":[%.3f,%.3f,%.3f,%.3f,%.3f]}}\n",
               recompute, source_s + steps, recompute / (source_s + steps),
               cost[0], cost[1], cost[2], cost[3], cost[4]);
        tok_output_free(&src);
    }
    rc = 0;
done:
    for (int i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(line);
    if (fp != NULL && fp != stdin)
        fclose(fp);
    return rc;
}

/* --- search --------------------------------------------------------------- */

static int
bench_one_index(const char *factory, int dim, int n, int queries)
{
    char dir[] = "/tmp/rosim-bench-XXXXXX", path[64], cmd[128];
    struct coll_options co = { 1, factory, dim, "bench", COLL_FSYNC_OFF, 0, NULL, NULL };
    struct coll *c;
    struct rs_error e;
    float *vecs = malloc((size_t)n * (size_t)dim * sizeof(float));
    float *scores = malloc((size_t)n * sizeof(float));
    unsigned seed = 99;
    double t0, t_insert, t_search = 0, found = 0;
    int rc = 1;

    if (vecs == NULL || scores == NULL || mkdtemp(dir) == NULL)
        goto done;
    snprintf(path, sizeof(path), "%s/c", dir);
    if (coll_open(&c, path, &co, &e) != RS_OK) {
        fprintf(stderr, "rosim: %s\n", e.msg);
        goto done;
    }
    for (size_t i = 0; i < (size_t)n * (size_t)dim; i++)
        vecs[i] = (float)rand_r(&seed) / RAND_MAX - 0.5f;
    for (int i = 0; i < n; i++) {       /* normalized, as the collection stores them */
        float *v = vecs + (size_t)i * (size_t)dim, norm = 0;
        for (int j = 0; j < dim; j++)
            norm += v[j] * v[j];
        for (int j = 0; j < dim; j++)
            v[j] /= sqrtf(norm);
    }
    t0 = cli_now();
    for (int i = 0; i < n; i += 1000) {
        struct coll_doc docs[1000];
        static char ids[1000][16];
        int k = n - i < 1000 ? n - i : 1000;
        for (int j = 0; j < k; j++) {
            snprintf(ids[j], sizeof(ids[j]), "%d", i + j);
            docs[j] = (struct coll_doc){ ids[j], "", NULL, vecs + (size_t)(i + j) * (size_t)dim, 0 };
        }
        if (coll_upsert(c, docs, k, &e) != RS_OK) {
            fprintf(stderr, "rosim: %s\n", e.msg);
            coll_close(c);
            goto done;
        }
    }
    t_insert = cli_now() - t0;
    for (int q = 0; q < queries; q++) {
        float query[4096], best[10];
        int best_id[10];
        struct coll_hit *hits;
        int nh;
        for (int j = 0; j < dim; j++)
            query[j] = (float)rand_r(&seed) / RAND_MAX - 0.5f;
        t0 = cli_now();
        coll_search(c, query, 10, -2.0f, &hits, &nh, &e);
        t_search += cli_now() - t0;
        /* brute force: the ten largest inner products */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, dim, 1.0f, vecs, dim, query, 1, 0.0f, scores, 1);
        for (int k = 0; k < 10; k++) {
            best[k] = -INFINITY;
            best_id[k] = -1;
        }
        for (int i = 0; i < n; i++) {
            if (scores[i] <= best[9])
                continue;
            int k = 9;
            while (k > 0 && best[k - 1] < scores[i]) {
                best[k] = best[k - 1];
                best_id[k] = best_id[k - 1];
                k--;
            }
            best[k] = scores[i];
            best_id[k] = i;
        }
        for (int h = 0; h < nh; h++)
            for (int k = 0; k < 10; k++)
                if (atoi(hits[h].id) == best_id[k])
                    found++;
        coll_hits_free(hits, nh);
    }
    printf("{\"index\":\"%s\",\"vectors\":%d,\"dim\":%d,\"insert_vectors_per_s\":%.0f,"
           "\"search_qps\":%.0f,\"recall_at_10\":%.4f}\n", factory, n, dim, n / t_insert,
           queries / t_search, found / (10.0 * queries));
    coll_close(c);
    rc = 0;
done:
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    free(vecs);
    free(scores);
    return rc;
}

int
bench_search(const struct rf_model *m, const struct bench_options *o)
{
    const int dim = rf_model_config(m)->d_model;

    if (bench_one_index("Flat", dim, o->count, 200) != 0 ||
        bench_one_index("HNSW32,Flat", dim, o->count, 200) != 0)
        return 1;
    return 0;
}
