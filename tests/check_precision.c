/*
 * check_precision.c: the bf16 and int8 paths against fp32.
 *
 * - every fixture model and a random mid-size model (the demo
 *   architecture: 6 layers, hidden 384, FFN 1536, normal(0, 0.02) weights;
 *   base size is left to `make bench`, which prints the same cosines):
 *   cosine of each test sentence's vector to its fp32 vector >= 0.999 in
 *   bf16 and >= 0.99 in int8, alone and in one batch;
 * - greedy decoding on the goldens, teacher-forced: the share of steps
 *   whose top token agrees with fp32 is printed, and must be at least half;
 * - sampling with a seed gives the same paraphrases twice in each precision;
 * - four threads encoding at once with one bf16 model (shared primitives,
 *   their own scratch) get exactly the vectors of one thread alone;
 * - the fingerprint does not depend on the precision, the weights shrink,
 *   and /v1/info reports the precision and oneDNN's ISA.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model/decoder.h"
#include "../model/demo.h"
#include "../model/generate.h"
#include "../model/roformer.h"
#include "suites.h"
#include "testutil.h"

#define TINY "tests/fixtures/roformer-sim-tiny"
#define BERT "tests/fixtures/tf-checkpoint-bert-tiny"

static const char *const sentences[] = {
    "我喜欢北京", "今天天气怎么样？", "How are you doing today?", "微信和支付宝哪个好用",
    "RoFormer-Sim 是一个模型!", "ＡＢＣ１２３ 你好", "手机坏了怎么办，能不能修好",
    "长江大桥上的车流一直排到了城外，司机们只能慢慢等待", "a", "北京欢迎你",
};
#define N_SENT (int)(sizeof(sentences) / sizeof(sentences[0]))

static struct rf_model *
load(const char *dir, enum mm_precision p)
{
    struct rf_model *m;
    struct rs_error e;

    ck_assert_msg(rf_model_load_as(&m, dir, p, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(rf_model_precision(m), p);
    return m;
}

/* The linear-pooled vectors of every test sentence: one at a time when
 * batch is 0, else all in one batch. */
static float *
encode_all(const struct rf_model *m, int batch)
{
    const struct rf_config *c = rf_model_config(m);
    const int H = c->d_model, maxlen = c->arch == RF_ARCH_BERT && c->max_pos < 64 ? c->max_pos : 64;
    struct tok_output tok[N_SENT];
    const int32_t *ids[N_SENT];
    int lens[N_SENT];
    float *out = malloc((size_t)N_SENT * (size_t)H * sizeof(float));
    struct rf_state *s = rf_state_new(m, N_SENT, 64);
    struct rs_error e;

    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(s);
    memset(tok, 0, sizeof(tok));
    for (int i = 0; i < N_SENT; i++) {
        ck_assert_int_eq(tok_encode(rf_model_vocab(m), sentences[i], strlen(sentences[i]),
                                    maxlen, &tok[i], &e), RS_OK);
        ids[i] = tok[i].ids;
        lens[i] = tok[i].n;
    }
    if (batch) {
        ck_assert_msg(rf_encode(m, s, ids, lens, N_SENT, RF_POOL_LINEAR, out, &e) == RS_OK,
                      "%s", e.msg);
    } else {
        for (int i = 0; i < N_SENT; i++)
            ck_assert_msg(rf_encode(m, s, ids + i, lens + i, 1, RF_POOL_LINEAR,
                                    out + (size_t)i * (size_t)H, &e) == RS_OK, "%s", e.msg);
    }
    for (int i = 0; i < N_SENT; i++)
        tok_output_free(&tok[i]);
    rf_state_free(s);
    return out;
}

static double
cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

/* Every sentence's cosine to fp32 in precision p is at least min. */
static void
check_cosines(const char *dir, enum mm_precision p, double min)
{
    struct rf_model *ref = load(dir, MM_FP32), *m = load(dir, p);
    const int H = rf_model_config(m)->d_model;
    float *want = encode_all(ref, 0);

    ck_assert_str_eq(rf_model_fingerprint(m), rf_model_fingerprint(ref));
    /* below hidden 64 the blocked layouts' padding outweighs the savings */
    ck_assert_msg(H < 64 || rf_model_weight_bytes(m) < rf_model_weight_bytes(ref),
                  "%s weighs %zu bytes, fp32 %zu", mm_precision_name(p),
                  rf_model_weight_bytes(m), rf_model_weight_bytes(ref));
    for (int batch = 0; batch < 2; batch++) {
        float *got = encode_all(m, batch);
        double worst = 1;
        for (int i = 0; i < N_SENT; i++) {
            double c = cosine(got + (size_t)i * (size_t)H, want + (size_t)i * (size_t)H, H);
            ck_assert_msg(c >= min, "%s %s '%s'%s: cosine %.6f to fp32 < %.3f", dir,
                          mm_precision_name(p), sentences[i], batch ? " in a batch" : "", c, min);
            worst = c < worst ? c : worst;
        }
        if (batch)
            fprintf(stderr, "precision: %s %s: lowest cosine to fp32 %.6f\n", dir,
                    mm_precision_name(p), worst);
        free(got);
    }
    free(want);
    rf_model_free(ref);
    rf_model_free(m);
}

START_TEST(test_cosine_fixtures)
{
    check_cosines(TINY, MM_BF16, 0.999);
    check_cosines(TINY, MM_INT8, 0.99);
    check_cosines(BERT, MM_BF16, 0.999);
    check_cosines(BERT, MM_INT8, 0.99);
}
END_TEST

START_TEST(test_cosine_random_model)
{
    char dir[64];
    struct rs_error e;

    snprintf(dir, sizeof(dir), "/tmp/rosim-prec-%d", (int)getpid());
    ck_assert_msg(rf_demo_write(dir, "share/vocab.txt", 7, &e) == RS_OK, "%s", e.msg);
    check_cosines(dir, MM_BF16, 0.999);
    check_cosines(dir, MM_INT8, 0.99);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
    }
}
END_TEST

static int
argmax(const float *p, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[best])
            best = i;
    return best;
}

/* Teacher-forced greedy decoding of every golden case: steps whose top
 * token equals the fp32 one (the goldens' greedy_ids). */
static void
greedy_agreement(const char *dir, enum mm_precision p, int *agree, int *total)
{
    struct rf_model *m = load(dir, p);
    const int V = rf_model_config(m)->n_vocab;
    char path[256];
    json_error_t je;
    json_t *exp, *g;
    size_t gi;

    snprintf(path, sizeof(path), "%s/expected.json", dir);
    exp = json_load_file(path, JSON_ALLOW_NUL, &je);
    ck_assert_ptr_nonnull(exp);
    json_array_foreach(json_object_get(exp, "generation"), gi, g) {
        json_t *src = json_object_get(g, "src_ids"), *want = json_object_get(g, "greedy_ids");
        int src_len = (int)json_array_size(src), steps = (int)json_array_size(want);
        int32_t ids[64];
        struct dec *d = dec_new(m, src_len, steps, 1);
        struct rs_error e;
        ck_assert_ptr_nonnull(d);
        for (int i = 0; i < src_len; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(src, (size_t)i));
        ck_assert_msg(dec_start(d, ids, src_len, &e) == RS_OK, "%s", e.msg);
        ck_assert_int_eq(dec_fork(d, 1, &e), RS_OK);
        for (int t = 0; t < steps; t++) {
            int32_t tok = (int32_t)json_integer_value(json_array_get(want, (size_t)t));
            *agree += argmax(dec_probs(d), V) == tok;
            ++*total;
            if (t + 1 < steps)
                ck_assert_msg(dec_step(d, &tok, &e) == RS_OK, "%s", e.msg);
        }
        dec_free(d);
    }
    json_decref(exp);
    rf_model_free(m);
}

START_TEST(test_greedy_agreement)
{
    static const enum mm_precision precs[] = { MM_BF16, MM_INT8 };
    for (int i = 0; i < 2; i++) {
        int agree = 0, total = 0;
        greedy_agreement(TINY, precs[i], &agree, &total);
        greedy_agreement(BERT, precs[i], &agree, &total);
        fprintf(stderr, "precision: %s greedy top-1 agrees with fp32 at %d of %d golden steps\n",
                mm_precision_name(precs[i]), agree, total);
        ck_assert_int_gt(total, 0);
        ck_assert_msg(2 * agree >= total, "%s: %d of %d", mm_precision_name(precs[i]), agree,
                      total);
    }
}
END_TEST

/* Seeded sampling in one precision: the same paraphrases twice. */
START_TEST(test_seeded_sampling_reproducible)
{
    static const enum mm_precision precs[] = { MM_BF16, MM_INT8 };
    for (int i = 0; i < 2; i++) {
        struct rf_model *m = load(TINY, precs[i]);
        struct gen_paraphrases a = { 0 }, b = { 0 };
        struct gen_params p = gen_default_params();
        struct rs_error e;
        p.n = 16;
        p.max_new = 12;
        p.seed = 42;
        ck_assert_msg(gen_paraphrase(m, "我喜欢北京", strlen("我喜欢北京"), &p, 8, &a, &e) == RS_OK,
                      "%s", e.msg);
        ck_assert_msg(gen_paraphrase(m, "我喜欢北京", strlen("我喜欢北京"), &p, 8, &b, &e) == RS_OK,
                      "%s", e.msg);
        ck_assert_int_gt(a.n, 0);
        ck_assert_int_eq(a.n, b.n);
        for (int j = 0; j < a.n; j++) {
            ck_assert_str_eq(a.items[j].text, b.items[j].text);
            ck_assert(a.items[j].score == b.items[j].score);
        }
        gen_paraphrases_free(&a);
        gen_paraphrases_free(&b);
        rf_model_free(m);
    }
}
END_TEST

struct enc_job {
    const struct rf_model *m;
    float *vecs;
};

static void *
encode_job(void *arg)
{
    struct enc_job *j = arg;
    for (int r = 0; r < 3; r++) {
        float *v = encode_all(j->m, r % 2);
        if (r == 2)
            j->vecs = v;
        else
            free(v);
    }
    return NULL;
}

START_TEST(test_threads_share_the_engine)
{
    struct rf_model *m = load(TINY, MM_BF16);
    const int H = rf_model_config(m)->d_model;
    float *want = encode_all(m, 0);
    struct enc_job jobs[4];
    pthread_t t[4];

    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct enc_job){ m, NULL };
        ck_assert_int_eq(pthread_create(&t[i], NULL, encode_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_ptr_nonnull(jobs[i].vecs);
        ck_assert_msg(memcmp(jobs[i].vecs, want, (size_t)N_SENT * (size_t)H * sizeof(float)) == 0,
                      "thread %d got other vectors", i);
        free(jobs[i].vecs);
    }
    free(want);
    rf_model_free(m);
}
END_TEST

START_TEST(test_precision_parse)
{
    ck_assert_int_eq(mm_precision_parse("fp32"), MM_FP32);
    ck_assert_int_eq(mm_precision_parse("bf16"), MM_BF16);
    ck_assert_int_eq(mm_precision_parse("int8"), MM_INT8);
    ck_assert_int_eq(mm_precision_parse("auto"), mm_bf16_native() ? MM_BF16 : MM_FP32);
    ck_assert_int_eq(mm_precision_parse("fp16"), -1);
    ck_assert_int_eq(mm_precision_parse(""), -1);
}
END_TEST

/* rosim embed --precision: the vector stays close to fp32's; a bad value
 * is refused. */
START_TEST(test_cli_precision)
{
    char *argv[] = { (char *)tu_program("ROSIM", "build/rosim"), "embed", "--model", TINY,
                     "--precision", "bf16", NULL };
    char *out32, *out16, *err;
    json_t *a, *b;
    json_error_t je;
    float va[64], vb[64];

    ck_assert_int_eq(tu_run(argv, "我喜欢北京\n", &out16, &err), 0);
    free(err);
    argv[5] = "fp32";
    ck_assert_int_eq(tu_run(argv, "我喜欢北京\n", &out32, &err), 0);
    free(err);
    a = json_loads(out32, 0, &je);
    b = json_loads(out16, 0, &je);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(json_array_size(a), 64);
    ck_assert_int_eq(json_array_size(b), 64);
    for (int i = 0; i < 64; i++) {
        va[i] = (float)json_number_value(json_array_get(a, (size_t)i));
        vb[i] = (float)json_number_value(json_array_get(b, (size_t)i));
    }
    ck_assert(strcmp(out32, out16) != 0);
    ck_assert_double_ge(cosine(va, vb, 64), 0.999);
    json_decref(a);
    json_decref(b);
    free(out32);
    free(out16);
    argv[5] = "fp16";
    ck_assert_int_eq(tu_run(argv, "x\n", &out16, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--precision: 'fp16' is not fp32, bf16, int8 or auto"));
    free(out16);
    free(err);
}
END_TEST

/* rosimd with [model] precision = int8: /v1/info says so and names the
 * ISA; a collection made in fp32 is served by the int8 daemon. */
START_TEST(test_daemon_precision)
{
    char data[64], cmd[128];
    const char *const extra32[] = { "--model", TINY, "--data", data, NULL };
    const char *const extra8[] = { "--model", TINY, "--data", data, "-o", "model.precision=int8",
                                   NULL };
    static const char doc[] = "{\"documents\":[{\"id\":\"a\",\"text\":\"我喜欢北京\"}]}";
    static const char query[] = "{\"text\":\"我喜欢北京\",\"k\":1}";
    struct tu_daemon d;
    struct tu_response r;
    json_t *j, *hit;
    json_error_t je;

    strcpy(data, "/tmp/rosim-prec-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data));
    ck_assert_int_eq(tu_daemon_start(&d, extra32), 0);
    ck_assert_int_eq(tu_http(d.port, "PUT", "/v1/collections/c", NULL, NULL, 0, &r), 0);
    ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/collections/c/documents", "application/json",
                             doc, strlen(doc), &r), 0);
    ck_assert_msg(r.status == 200 || r.status == 201, "%ld %s", r.status, r.body);
    tu_response_free(&r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);

    ck_assert_int_eq(tu_daemon_start(&d, extra8), 0);
    ck_assert_int_eq(tu_http(d.port, "GET", "/v1/info", NULL, NULL, 0, &r), 0);
    j = json_loads(r.body, 0, &je);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "model"),
                                                       "precision")), "int8");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "model"), "isa")),
                     mm_isa());
    ck_assert_ptr_nonnull(json_string_value(json_object_get(json_object_get(j, "model"),
                                                            "kernel")));
    json_decref(j);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/collections/c/search", "application/json",
                             query, strlen(query), &r), 0);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    j = json_loads(r.body, 0, &je);
    ck_assert_ptr_nonnull(j);
    hit = json_array_get(json_object_get(j, "hits"), 0);
    ck_assert_msg(hit != NULL, "%s", r.body);
    ck_assert_str_eq(json_string_value(json_object_get(hit, "id")), "a");
    ck_assert_double_ge(json_number_value(json_object_get(hit, "score")), 0.99);
    json_decref(j);
    tu_response_free(&r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *
precision_suite(void)
{
    Suite *s = suite_create("precision");
    TCase *tc = tcase_create("precision");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_precision_parse);
    tcase_add_test(tc, test_cosine_fixtures);
    tcase_add_test(tc, test_cosine_random_model);
    tcase_add_test(tc, test_greedy_agreement);
    tcase_add_test(tc, test_seeded_sampling_reproducible);
    tcase_add_test(tc, test_threads_share_the_engine);
    tcase_add_test(tc, test_cli_precision);
    tcase_add_test(tc, test_daemon_precision);
    suite_add_tcase(s, tc);
    return s;
}
