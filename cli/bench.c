/*
 * bench.c: `rosim bench`: sentences/s of the encoder at batch 1 and batch
 * 32, and the achieved GFLOP/s against this machine's measured fp32 sgemm
 * rate.  FLOPs count real tokens only (padding is waste, not work):
 * per sentence of n tokens, 2n(4H^2 + 2HF) per layer for the dense layers
 * plus 4n^2 H per layer for attention scores and mixing.
 */
#include "bench.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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
        double t0 = now(), t;
        int reps = 0;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N,
                        0.0f, c, N);
            reps++;
            t = now() - t0;
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
    t0 = now();
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
    *secs = now() - t0;
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
