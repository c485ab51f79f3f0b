/*
 * bench.c: `rosim bench`: sentences/s of the encoder at batch 1 and batch
 * 32 in the model's precision, and the achieved GFLOP/s against this
 * machine's measured limit for it (OpenBLAS sgemm for fp32, oneDNN's bf16
 * or int8 matmul, at the same shapes), each ratio measured back to back
 * on a machine whose load the figures report.  FLOPs count real tokens only (padding is waste, not work):
 * per sentence of n tokens, 2n(4H^2 + 2HF) per layer for the dense layers
 * plus 4n^2 H per layer for attention scores and mixing.
 */
#include "bench.h"
#include "cli.h"

#include "../index/collection.h"
#include "../model/decoder.h"
#include "../model/generate.h"

#include <cblas.h>
#include <dnnl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Best-of-3 rate of fn(arg) doing flops each call, in G/s. */
static double
best_rate(void (*fn)(void *), void *arg, double flops)
{
    double best = 0;

    for (int r = 0; r < 3; r++) {
        double t0 = cli_now(), t;
        int reps = 0;
        do {
            fn(arg);
            reps++;
            t = cli_now() - t0;
        } while (t < 0.3);
        if (flops * reps / t / 1e9 > best)
            best = flops * reps / t / 1e9;
    }
    return best;
}

struct sgemm_args {
    int M, N, K;
    float *a, *b, *c;
};

static void
sgemm_once(void *p)
{
    struct sgemm_args *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->M, g->N, g->K, 1.0f, g->a, g->K,
                g->b, g->N, 0.0f, g->c, g->N);
}

/* OpenBLAS sgemm for an M x N x K product, in GFLOP/s. */
static double
sgemm_rate(int M, int N, int K)
{
    struct sgemm_args g = { M, N, K, calloc((size_t)M * (size_t)K, sizeof(float)),
                            calloc((size_t)K * (size_t)N, sizeof(float)),
                            calloc((size_t)M * (size_t)N, sizeof(float)) };
    double rate = 0;

    if (g.a != NULL && g.b != NULL && g.c != NULL) {
        for (size_t i = 0; i < (size_t)M * (size_t)K; i++)
            g.a[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)K * (size_t)N; i++)
            g.b[i] = (float)(i % 5) * 0.1f;
        rate = best_rate(sgemm_once, &g, 2.0 * M * N * K);
    }
    free(g.a);
    free(g.b);
    free(g.c);
    return rate;
}

struct dnnl_args {
    dnnl_primitive_t prim;
    dnnl_stream_t stream;
    dnnl_exec_arg_t args[4];
};

static void
dnnl_once(void *p)
{
    struct dnnl_args *g = p;
    dnnl_primitive_execute(g->prim, g->stream, 4, g->args);
    dnnl_stream_wait(g->stream);
}

/* oneDNN matmul, M x K in dt times K x N in dt (weights in the layout it
 * prefers) into f32, in G(FL)OP/s; impl gets the kernel's name.  0 when
 * oneDNN cannot run it. */
static double
dnnl_rate(dnnl_data_type_t dt, int M, int N, int K, char *impl, size_t impl_len)
{
    dnnl_engine_t eng = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t ad = { M, K }, bd = { K, N }, cd = { M, N };
    dnnl_matmul_desc_t md;
    dnnl_memory_t mem[4] = { NULL, NULL, NULL, NULL };
    struct dnnl_args g = { NULL, NULL, { { 0, NULL } } };
    const char *name = "";
    double rate = 0;

    snprintf(impl, impl_len, "unavailable");
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) ||
        dnnl_memory_desc_init_by_tag(&a, 2, ad, dt, dnnl_ab) ||
        dnnl_memory_desc_init_by_tag(&b, 2, bd, dt, dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&c, 2, cd, dnnl_f32, dnnl_ab) ||
        dnnl_matmul_desc_init(&md, &a, &b, NULL, &c) ||
        dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) ||
        dnnl_primitive_create(&g.prim, pd) ||
        dnnl_stream_create(&g.stream, eng, dnnl_stream_default_flags) ||
        dnnl_memory_create(&mem[0], &a, eng, DNNL_MEMORY_ALLOCATE) ||
        dnnl_memory_create(&mem[1], dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                           eng, DNNL_MEMORY_ALLOCATE) ||
        dnnl_memory_create(&mem[2], &c, eng, DNNL_MEMORY_ALLOCATE) ||
        dnnl_memory_create(&mem[3], dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0),
                           eng, DNNL_MEMORY_ALLOCATE))
        goto done;
    for (int i = 0; i < 2; i++) {
        void *h;
        dnnl_memory_get_data_handle(mem[i], &h);
        memset(h, 0, dnnl_memory_desc_get_size(i ? dnnl_primitive_desc_query_md(
                                                       pd, dnnl_query_weights_md, 0) : &a));
    }
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    snprintf(impl, impl_len, "%s", name);
    g.args[0] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, mem[0] };
    g.args[1] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, mem[1] };
    g.args[2] = (dnnl_exec_arg_t){ DNNL_ARG_DST, mem[2] };
    g.args[3] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, mem[3] };
    rate = best_rate(dnnl_once, &g, 2.0 * M * N * K);
done:
    for (int i = 0; i < 4; i++)
        if (mem[i])
            dnnl_memory_destroy(mem[i]);
    if (g.stream)
        dnnl_stream_destroy(g.stream);
    if (g.prim)
        dnnl_primitive_destroy(g.prim);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (eng)
        dnnl_engine_destroy(eng);
    return rate;
}

/* The 1-minute load average, or -1: printed with every figure (the
 * figures mean little on a loaded machine). */
static double
load_avg(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double l = -1;

    if (f != NULL) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* The machine's limits at an M x F x H product, printed; returns the one
 * of precision p (sgemm for fp32). */
static double
limits(int M, int N, int K, enum mm_precision p)
{
    char f32[64], bf16[64], s8[64];
    double sg = sgemm_rate(M, N, K), df = dnnl_rate(dnnl_f32, M, N, K, f32, sizeof(f32));
    double db = dnnl_rate(dnnl_bf16, M, N, K, bf16, sizeof(bf16));
    double di = dnnl_rate(dnnl_s8, M, N, K, s8, sizeof(s8));

    printf("{\"limits\":{\"m\":%d,\"n\":%d,\"k\":%d,\"openblas_sgemm_gflops\":%.1f,"
           "\"onednn_f32_gflops\":%.1f,\"onednn_bf16_gflops\":%.1f,\"onednn_int8_gops\":%.1f,"
           "\"openblas_core\":\"%s\",\"openblas_coretype_env\":\"%s\",\"onednn_isa\":\"%s\","
           "\"kernels\":{\"f32\":\"%s\",\"bf16\":\"%s\",\"int8\":\"%s\"},\"load\":%.2f}}\n",
           M, N, K, sg, df, db, di, openblas_get_corename(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset", mm_isa(), f32,
           bf16, s8, load_avg());
    return p == MM_BF16 ? db : p == MM_INT8 ? di : sg;
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

/* Encode s[0..n) in batches; the vectors go to vecs (n * H) when given.
 * Returns n, or -1 on error. */
static int
run(const struct rf_model *m, struct sent *s, int n, int batch, float *vecs, double *secs)
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
        if (rf_encode(m, st, ids, lens, k, RF_POOL_LINEAR, vecs ? vecs + (size_t)i * (size_t)H
                                                                 : out, &e) != RS_OK) {
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

/* Resident memory of this process, in MB. */
static double
rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %lf kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb / 1024;
}

/* Each sentence's cosine between vecs and want (the fp32 model's). */
static void
cosines(const char *pn, int n, const float *vecs, const float *want, int H)
{
    double lo = 1, sum = 0;

    for (int i = 0; i < n; i++) {
        const float *a = vecs + (size_t)i * (size_t)H, *b = want + (size_t)i * (size_t)H;
        double ab = 0, aa = 0, bb = 0, c;
        for (int j = 0; j < H; j++) {
            ab += (double)a[j] * b[j];
            aa += (double)a[j] * a[j];
            bb += (double)b[j] * b[j];
        }
        c = ab / sqrt(aa * bb);
        sum += c;
        lo = c < lo ? c : lo;
    }
    printf("{\"precision\":\"%s\",\"cosine_to_fp32\":{\"min\":%.6f,\"mean\":%.6f}}\n",
           pn, lo, sum / n);
}

int
bench_encoder(const struct rf_model *m, const struct bench_options *o)
{
    const struct rf_config *c = rf_model_config(m);
    const enum mm_precision p = rf_model_precision(m);
    const char *pn = mm_precision_name(p);
    const double H = c->d_model, F = c->d_ff, L = c->n_layer;
    FILE *fp = o->input ? fopen(o->input, "r") : stdin;
    struct sent *s = calloc((size_t)o->count, sizeof(*s));
    struct tok_output out = { 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0, rc = 1;
    long tokens = 0;
    double flops = 0, peak, lim1, lim32 = 0, t1, t32 = 0, tf32 = 0;
    float *vecs = NULL, *want = NULL;
    struct rf_model *ref = NULL;

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
    vecs = malloc((size_t)n * (size_t)H * sizeof(float));
    if (vecs == NULL)
        goto done;
    printf("{\"sentences\":%d,\"tokens\":%ld,\"gflop\":%.1f}\n", n, tokens, flops / 1e9);
    peak = limits(4096, (int)F, (int)H, p);
    lim1 = limits((int)(tokens / n), (int)F, (int)H, p);
    if (run(m, s, n, 1, NULL, &t1) < 0)
        goto done;
    printf("{\"precision\":\"%s\",\"kernel\":\"%s\",\"batch\":1,\"seconds\":%.3f,"
           "\"sentences_per_s\":%.1f,\"gflops\":%.1f,\"fraction_of_limit_m4096\":%.3f,"
           "\"fraction_of_limit_at_shape\":%.3f,\"load\":%.2f}\n", pn, rf_model_kernel(m), t1,
           n / t1, flops / t1 / 1e9, flops / t1 / 1e9 / peak, flops / t1 / 1e9 / lim1,
           load_avg());
    printf("{\"precision\":\"%s\",\"rss_mb\":%.0f,\"weight_mb\":%.0f}\n", pn, rss_mb(),
           rf_model_weight_bytes(m) / 1e6);
    /* the fp32 model beside another precision: its vectors, and its rate
     * measured right after this one's */
    if (p != MM_FP32) {
        struct rs_error e;
        want = malloc((size_t)n * (size_t)H * sizeof(float));
        if (want == NULL || rf_model_load(&ref, o->model, &e) != RS_OK) {
            fprintf(stderr, "rosim: %s\n", want == NULL ? "out of memory" : e.msg);
            goto done;
        }
    }
    /* batch 32, three times, each right after the limit at its shape (and
     * before the fp32 model): the ratios of the best of each */
    qsort(s, (size_t)n, sizeof(*s), by_len);
    for (int r = 0; r < 3; r++) {
        double lim = limits(32 * (int)(tokens / n), (int)F, (int)H, p), t, tf = 0;
        if (run(m, s, n, 32, vecs, &t) < 0 || (ref != NULL && run(ref, s, n, 32, want, &tf) < 0))
            goto done;
        printf("{\"precision\":\"%s\",\"batch32_try\":%d,\"seconds\":%.3f,\"gflops\":%.1f,"
               "\"limit_gflops\":%.1f,\"fraction\":%.3f,\"fp32_seconds\":%.3f,\"load\":%.2f}\n",
               pn, r + 1, t, flops / t / 1e9, lim, flops / t / 1e9 / lim, tf, load_avg());
        t32 = r == 0 || t < t32 ? t : t32;
        tf32 = r == 0 || tf < tf32 ? tf : tf32;
        lim32 = r == 0 || lim > lim32 ? lim : lim32;
    }
    printf("{\"precision\":\"%s\",\"kernel\":\"%s\",\"batch\":32,\"seconds\":%.3f,"
           "\"sentences_per_s\":%.1f,\"gflops\":%.1f,\"limit_gflops_at_shape\":%.1f,"
           "\"fraction_of_limit_m4096\":%.3f,\"fraction_of_limit_at_shape\":%.3f,"
           "\"speedup_vs_fp32_interleaved\":%.2f,\"load\":%.2f}\n", pn, rf_model_kernel(m), t32,
           n / t32, flops / t32 / 1e9, lim32, flops / t32 / 1e9 / peak,
           flops / t32 / 1e9 / lim32, ref != NULL ? tf32 / t32 : 1.0, load_avg());
    if (ref != NULL)
        cosines(pn, n, vecs, want, (int)H);
    rc = 0;
done:
    for (int i = 0; i < n; i++)
        free(s[i].ids);
    free(s);
    free(vecs);
    free(want);
    rf_model_free(ref);
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
    const double weight_bytes = (double)rf_model_weight_bytes(m);   /* read once per step */
    FILE *fp = o->input ? fopen(o->input, "r") : stdin;
    char *line = NULL, **texts = calloc((size_t)o->count, sizeof(*texts));
    size_t cap = 0;
    ssize_t len;
    int n = 0, rc = 1;
    double bw, rate, total_s = 0, total_flops = 0, best_s = 0;
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
    rate = limits(R, (int)F, (int)H, rf_model_precision(m));
    printf("{\"sentences\":%d,\"precision\":\"%s\",\"read_gb_per_s\":%.1f,"
           "\"limit_gflops_m100\":%.1f,\"weight_mb_per_step\":%.0f}\n", n,
           mm_precision_name(rf_model_precision(m)), bw, rate, weight_bytes / 1e6);

    /* the whole procedure: n 100, k 20, 32 new tokens */
    for (int i = 0; i < n; i++) {
        struct gen_params p = gen_default_params();
        struct gen_paraphrases out = { 0 };
        struct tok_output src = { 0 };
        struct rs_error e;
        double t0, dt;
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
        dt = cli_now() - t0;
        best_s = i == 0 || dt < best_s ? dt : best_s;
        total_s += dt;
        total_tokens += out.n_generated;
        /* decode FLOPs of the generated tokens, source pass and ranking aside */
        total_flops += out.n_generated * (2 * L * (4 * H * H + 2 * H * F) + 2 * (H * H + H * V)) +
                       (double)out.n_generated * 4 * L * H * (src.n + N / 2.0);
        gen_paraphrases_free(&out);
        tok_output_free(&src);
    }
    printf("{\"gen_synonyms\":{\"n\":%d,\"k\":20,\"max_length\":%d,\"seconds_per_sentence\":%.2f,"
           "\"best_seconds\":%.2f,\"generated_tokens\":%ld,\"tokens_per_s\":%.0f,\"decode_gflops\":%.1f,"
           "\"fraction_of_limit_m100\":%.2f,\"load\":%.2f}}\n", R, N, total_s / n, best_s, total_tokens,
           total_tokens / total_s, total_flops / total_s / 1e9, total_flops / total_s / 1e9 / rate,
           load_avg());

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
