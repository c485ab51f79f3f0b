/*
 * check_generate.c: UniLM decoding, sampling and the paraphrase pipeline.
 *
 * - greedy decoding of every "generation" case of both fixtures gives the
 *   golden ids, and each step's top-5 log-probabilities within 1e-4
 *   (independent float64 reference); `rosim generate` prints the golden text;
 * - cached decoding equals full recomputation, through row removal,
 *   duplication (beams) and a sampled [PAD];
 * - the sampler's draws follow the truncated distribution (chi-square);
 * - beam search at full width equals exhaustive search;
 * - bad parameters are clear errors; the same seed gives the same output;
 * - the source is truncated to src_maxlen (also for its vector): a
 *   paraphrase's score is the cosine of the two texts as /v1/similarity
 *   gives it, within 1e-6, from the library and through rosimd;
 * - the admission cost counts the source's tokens (a 5000-character text
 *   with n 1, max_length 1 is not cost 1); beam search gives one paraphrase
 *   and refuses k > 1; a source with NULs generates as without them.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/generate.h"
#include "../model/vec.h"
#include "suites.h"
#include "testutil.h"

#define TINY "tests/fixtures/roformer-sim-tiny"
#define BERT "tests/fixtures/tf-checkpoint-bert-tiny"

static struct rf_model *
load(const char *dir)
{
    struct rf_model *m;
    struct rs_error e;

    ck_assert_msg(rf_model_load(&m, dir, &e) == RS_OK, "%s", e.msg);
    return m;
}

static int
argmax(const float *p, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[best])
            best = i;
    return best;
}

static void
check_greedy_fixture(const char *dir)
{
    struct rf_model *m = load(dir);
    const int V = rf_model_config(m)->n_vocab;
    json_error_t je;
    char path[256];
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
        for (int i = 0; i < src_len; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(src, (size_t)i));
        ck_assert_ptr_nonnull(d);
        ck_assert_msg(dec_start(d, ids, src_len, &e) == RS_OK, "%s", e.msg);
        ck_assert_int_eq(dec_fork(d, 1, &e), RS_OK);
        for (int t = 0; t < steps; t++) {
            json_t *step = json_array_get(json_object_get(g, "steps"), (size_t)t);
            json_t *top_ids = json_object_get(step, "top_ids");
            json_t *top_lp = json_object_get(step, "top_logprobs");
            const float *p = dec_probs(d);
            int32_t tok = argmax(p, V);
            for (size_t k = 0; k < json_array_size(top_ids); k++) {
                int id = (int)json_integer_value(json_array_get(top_ids, k));
                double lp = log((double)p[id]);
                ck_assert_msg(fabs(lp - json_number_value(json_array_get(top_lp, k))) <= 1e-4,
                              "%s case %zu step %d: log p[%d] = %f, want %f", dir, gi, t, id,
                              lp, json_number_value(json_array_get(top_lp, k)));
            }
            ck_assert_int_eq(tok, json_integer_value(json_array_get(want, (size_t)t)));
            if (t + 1 < steps)
                ck_assert_int_eq(dec_step(d, &tok, &e), RS_OK);
        }
        dec_free(d);
    }
    json_decref(exp);
    rf_model_free(m);
}

START_TEST(test_greedy_roformer)
{
    check_greedy_fixture(TINY);
}
END_TEST

START_TEST(test_greedy_bert)
{
    check_greedy_fixture(BERT);
}
END_TEST

START_TEST(test_greedy_cli)
{
    static const char *const dirs[] = { TINY, BERT };
    for (int f = 0; f < 2; f++) {
        json_error_t je;
        char path[256], maxlen[16];
        json_t *exp, *g;
        size_t gi;
        snprintf(path, sizeof(path), "%s/expected.json", dirs[f]);
        exp = json_load_file(path, JSON_ALLOW_NUL, &je);
        json_array_foreach(json_object_get(exp, "generation"), gi, g) {
            char *argv[] = { (char *)tu_program("ROSIM", "build/rosim"), "generate", "--model",
                             (char *)dirs[f], "--top-k", "1", "--n", "1", "--k", "1",
                             "--max-length", maxlen, NULL };
            char in[256], *out, *err;
            json_t *got;
            snprintf(maxlen, sizeof(maxlen), "%d", (int)json_integer_value(json_object_get(g, "maxlen")));
            snprintf(in, sizeof(in), "%s\n", json_string_value(json_object_get(g, "source")));
            ck_assert_int_eq(tu_run(argv, in, &out, &err), 0);
            got = json_loads(out, 0, &je);
            ck_assert_msg(got != NULL, "%s", out);
            ck_assert_str_eq(json_string_value(json_object_get(got, "text")),
                             json_string_value(json_object_get(g, "source")));
            ck_assert_int_eq(json_array_size(json_object_get(got, "paraphrases")), 1);
            ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
                                 json_object_get(got, "paraphrases"), 0), "text")),
                             json_string_value(json_object_get(g, "greedy_text")));
            json_decref(got);
            free(out);
            free(err);
        }
        json_decref(exp);
    }
}
END_TEST

static double
max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > worst)
            worst = fabs((double)a[i] - b[i]);
    return worst;
}

START_TEST(test_cache_equals_recompute)
{
    static const char *const dirs[] = { TINY, BERT };
    for (int f = 0; f < 2; f++) {
        struct rf_model *m = load(dirs[f]);
        const int V = rf_model_config(m)->n_vocab, R = 5, steps = 6;
        const int32_t tiny_src[] = { 2, 14, 195, 53, 105, 125, 3 };
        const int32_t bert_src[] = { 2, 5, 6, 7, 8, 9, 3 };
        const int32_t *src = f == 0 ? tiny_src : bert_src;
        int32_t hist[8][8], tok[8];
        const int32_t *rows[8];
        float *want = malloc((size_t)8 * (size_t)V * sizeof(float));
        struct dec *d = dec_new(m, 7, steps, R);
        struct rs_error e;
        int n = R;

        ck_assert_int_eq(dec_start(d, src, 7, &e), RS_OK);
        ck_assert_int_eq(dec_fork(d, R, &e), RS_OK);
        for (int t = 0; t < steps; t++) {
            for (int r = 0; r < n; r++) {
                /* varied tokens; row 1 samples [PAD] at step 2 */
                tok[r] = (r == 1 && t == 2) ? 0 : (int32_t)((7 * r + 11 * t + 5) % (V - 5) + 5);
                if (f == 1 && r == 2 && t == 1)
                    tok[r] = 3;   /* [SEP] inside a row, as recompute sees it */
                hist[r][t] = tok[r];
            }
            ck_assert_int_eq(dec_step(d, tok, &e), RS_OK);
            for (int r = 0; r < n; r++)
                rows[r] = hist[r];
            ck_assert_int_eq(dec_recompute(m, src, 7, rows, t + 1, n, want, &e), RS_OK);
            ck_assert_msg(max_abs_diff(dec_probs(d), want, (size_t)n * (size_t)V) < 1e-5,
                          "%s step %d: cached and recomputed distributions differ by %g",
                          dirs[f], t, max_abs_diff(dec_probs(d), want, (size_t)n * (size_t)V));
            if (t == 2) {            /* drop rows 0 and 3 */
                int keep[] = { 1, 2, 4 };
                ck_assert_int_eq(dec_select(d, keep, 3, &e), RS_OK);
                for (int i = 0; i < 3; i++)
                    memcpy(hist[i], hist[keep[i]], sizeof(hist[0]));
                n = 3;
            } else if (t == 3) {     /* beams: row 2 twice, row 0 once, out of order */
                int keep[] = { 2, 0, 2 };
                int32_t copy[8][8];
                memcpy(copy, hist, sizeof(copy));
                ck_assert_int_eq(dec_select(d, keep, 3, &e), RS_OK);
                for (int i = 0; i < 3; i++)
                    memcpy(hist[i], copy[keep[i]], sizeof(hist[0]));
            }
        }
        free(want);
        dec_free(d);
        rf_model_free(m);
    }
}
END_TEST

/* The truncated distribution computed the plain way: sort, temperature,
 * top-k, cumulative mass up to and including the token reaching top-p. */
static int
cmp_desc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? 1 : a > b ? -1 : 0;
}

START_TEST(test_sampler_distribution)
{
    enum { V = 60, DRAWS = 200000 };
    float probs[V], wp[V];
    int wi[V], count[V] = { 0 };
    double sorted[V][2], expect[V] = { 0 }, total = 0, chi2 = 0, cum = 0;
    struct gen_params p = gen_default_params();
    struct gen_rng rng;
    int kept = 0;

    for (int i = 0; i < V; i++)    /* a shuffled, uneven distribution */
        probs[(i * 37) % V] = (float)(1.0 / (1 + i) + 0.002 * (i % 7));
    for (int i = 0; i < V; i++)
        total += probs[i];
    for (int i = 0; i < V; i++)
        probs[i] = (float)(probs[i] / total);
    p.temperature = 0.8f;
    p.top_k = 25;
    p.top_p = 0.7f;
    for (int i = 0; i < V; i++) {
        sorted[i][0] = pow(probs[i], 1.0 / 0.8);
        sorted[i][1] = i;
    }
    qsort(sorted, V, sizeof(sorted[0]), cmp_desc);
    total = 0;
    for (int i = 0; i < 25; i++)
        total += sorted[i][0];
    for (int i = 0; i < 25; i++) {
        cum += sorted[i][0] / total;
        kept++;
        if (cum >= 0.7)
            break;
    }
    total = 0;
    for (int i = 0; i < kept; i++)
        total += sorted[i][0];
    for (int i = 0; i < kept; i++)
        expect[(int)sorted[i][1]] = sorted[i][0] / total * DRAWS;
    ck_assert_int_gt(kept, 3);

    gen_rng_seed(&rng, 12345);
    for (int i = 0; i < DRAWS; i++)
        count[gen_sample_token(probs, V, &p, &rng, wi, wp)]++;
    for (int i = 0; i < V; i++) {
        if (expect[i] == 0) {
            ck_assert_msg(count[i] == 0, "token %d drawn %d times but outside the nucleus",
                          i, count[i]);
            continue;
        }
        ck_assert_msg(count[i] > 0, "token %d of the nucleus never drawn", i);
        chi2 += (count[i] - expect[i]) * (count[i] - expect[i]) / expect[i];
    }
    /* df = kept - 1; a bound about 6 standard deviations above the mean */
    ck_assert_msg(chi2 < (kept - 1) + 6 * sqrt(2.0 * (kept - 1)), "chi-square %f (df %d)",
                  chi2, kept - 1);

    /* top_p = 1 and top_k = 0 sample the whole distribution; top_k = 1 is argmax */
    p.top_p = 1.0f;
    p.top_k = 1;
    p.temperature = 1.0f;
    ck_assert_int_eq(gen_sample_token(probs, V, &p, &rng, wi, wp), argmax(probs, V));
}
END_TEST

START_TEST(test_beam_full_width_is_exact)
{
    struct rf_model *m = load(TINY);
    const int V = rf_model_config(m)->n_vocab, sep = tok_specials(rf_model_vocab(m)).sep;
    const int32_t src[] = { 2, 35, 290, 290, 287, 198, 216, 193, 54, 3 };
    struct dec *d = dec_new(m, 10, 2, V);
    struct gen_params p = gen_default_params();
    struct gen_sequences out;
    struct rs_error e;
    float *p1 = malloc((size_t)V * sizeof(float)), *p2 = malloc((size_t)V * (size_t)V * sizeof(float));
    int32_t firsts[1024];
    const int32_t *rows[1024];
    double best = -INFINITY;
    int b1 = -1, b2 = -1;

    p.beam = V;
    p.max_new = 2;
    ck_assert_int_eq(gen_run(m, d, src, 10, &p, &out, &e), RS_OK);
    ck_assert_int_eq(out.n, 1);
    /* exhaustive: all first tokens, then all second tokens */
    ck_assert_int_eq(dec_recompute(m, src, 10, rows, 0, 1, p1, &e), RS_OK);
    for (int a = 0; a < V; a++) {
        firsts[a] = a;
        rows[a] = &firsts[a];
    }
    ck_assert_int_eq(dec_recompute(m, src, 10, rows, 1, V, p2, &e), RS_OK);
    if (argmax(p1, V) == sep) {
        ck_assert_int_eq(out.len[0], 1);
    } else {
        for (int a = 0; a < V; a++) {
            if (a == sep)
                continue;
            for (int b = 0; b < V; b++) {
                double s = log(p1[a] + 1e-12) + log(p2[(size_t)a * (size_t)V + (size_t)b] + 1e-12);
                if (s > best) {
                    best = s;
                    b1 = a;
                    b2 = b;
                }
            }
        }
        ck_assert_int_eq(out.len[0], 2);
        ck_assert_int_eq(out.ids[0], b1);
        ck_assert_int_eq(out.ids[1], b2);
    }
    gen_sequences_free(&out);
    dec_free(d);
    free(p1);
    free(p2);
    rf_model_free(m);
}
END_TEST

START_TEST(test_paraphrase_and_seeds)
{
    struct rf_model *m = load(TINY);
    struct gen_params p = gen_default_params();
    struct gen_paraphrases a = { 0 }, b = { 0 };
    struct rs_error e;
    const char *text = "微信和支付宝哪个好用";

    p.n = 30;
    p.max_new = 12;
    p.seed = 7;
    ck_assert_int_eq(gen_paraphrase(m, text, strlen(text), &p, 10, &a, &e), RS_OK);
    ck_assert_int_eq(gen_paraphrase(m, text, strlen(text), &p, 10, &b, &e), RS_OK);
    ck_assert_int_gt(a.n, 1);
    ck_assert_int_le(a.n, 10);
    ck_assert_int_le(a.n_candidates, 30);
    ck_assert_int_eq(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        ck_assert_str_eq(a.items[i].text, b.items[i].text);
        ck_assert_str_ne(a.items[i].text, text);
        ck_assert(a.items[i].score <= 1.0001f);
        if (i > 0)
            ck_assert(a.items[i].score <= a.items[i - 1].score);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(a.items[i].text, a.items[j].text);
    }
    gen_paraphrases_free(&b);
    p.seed = 8;
    ck_assert_int_eq(gen_paraphrase(m, text, strlen(text), &p, 10, &b, &e), RS_OK);
    {
        int same = a.n == b.n;
        for (int i = 0; same && i < a.n; i++)
            same = strcmp(a.items[i].text, b.items[i].text) == 0;
        ck_assert_msg(!same, "another seed gave the same paraphrases");
    }
    gen_paraphrases_free(&a);
    gen_paraphrases_free(&b);
    rf_model_free(m);
}
END_TEST

START_TEST(test_bad_parameters)
{
    struct rf_model *m = load(TINY);
    struct gen_paraphrases out = { 0 };
    struct rs_error e;
    struct gen_params p;

#define BAD(field, value, text)                                                    \
    p = gen_default_params();                                                     \
    p.field = value;                                                              \
    ck_assert_int_eq(gen_paraphrase(m, "你好", strlen("你好"), &p, 5, &out, &e), RS_EINVAL); \
    ck_assert_msg(strstr(e.msg, text) != NULL, "%s", e.msg);
    BAD(n, 0, "n must be from 1")
    BAD(n, 100000, "n must be from 1")
    BAD(top_p, 0.0f, "top_p must be in (0, 1]")
    BAD(top_p, 1.5f, "top_p must be in (0, 1]")
    BAD(top_p, NAN, "top_p must be in (0, 1]")
    BAD(temperature, 0.0f, "temperature must be positive")
    BAD(max_new, 0, "max_length must be from 1")
    BAD(max_new, 1000000, "max_length must be from 1")
    BAD(top_k, -1, "top_k must be 0")
#undef BAD
    p = gen_default_params();
    ck_assert_int_eq(gen_paraphrase(m, "", 0, &p, 5, &out, &e), RS_EINVAL);
    ck_assert_str_eq(e.msg, "text is empty (no tokens)");
    ck_assert_int_eq(gen_paraphrase(m, "  \t ", 4, &p, 5, &out, &e), RS_EINVAL);
    ck_assert_int_eq(gen_paraphrase(m, "\xff", 1, &p, 5, &out, &e), RS_EINVAL);
    ck_assert_int_eq(gen_paraphrase(m, "你好", strlen("你好"), &p, 0, &out, &e), RS_EINVAL);
    rf_model_free(m);
    {
        char *argv[] = { (char *)tu_program("ROSIM", "build/rosim"), "generate", "--model", TINY,
                         "--top-p", "0", NULL };
        char *o, *err;
        ck_assert_int_eq(tu_run(argv, "你好\n", &o, &err), 2);
        ck_assert_ptr_nonnull(strstr(err, "top_p must be in (0, 1]"));
        free(o);
        free(err);
    }
}
END_TEST

/* The source truncated to src_maxlen tokens, as /v1/embed truncates. */
static char *
long_text(void)
{
    static const char unit[] = "微信和支付宝哪个好用";
    char *t = malloc(sizeof(unit) * 20);
    t[0] = '\0';
    for (int i = 0; i < 20; i++)
        strcat(t, unit);
    return t;
}

/* The cosine of two texts the library way: each truncated to maxlen,
 * encoded alone, normalized and compared with vec.h. */
static double
library_cosine(const struct rf_model *m, const char *a, const char *b, int maxlen)
{
    const int H = rf_model_config(m)->d_model;
    const char *texts[2] = { a, b };
    float vec[2][64];
    struct rf_state *s = rf_state_new(m, 1, maxlen);
    struct tok_output tok = { 0 };
    struct rs_error e;

    ck_assert_int_le(H, 64);
    for (int i = 0; i < 2; i++) {
        const int32_t *ids;
        ck_assert_int_eq(tok_encode(rf_model_vocab(m), texts[i], strlen(texts[i]), maxlen,
                                    &tok, &e), RS_OK);
        ids = tok.ids;
        ck_assert_int_eq(rf_encode(m, s, &ids, &tok.n, 1, RF_POOL_LINEAR, vec[i], &e), RS_OK);
        vec_normalize(vec[i], H);
    }
    tok_output_free(&tok);
    rf_state_free(s);
    return vec_dot(vec[0], vec[1], H);
}

START_TEST(test_scores_are_cosines_of_truncated_texts)
{
    struct rf_model *m = load(TINY);
    struct gen_params p = gen_default_params();
    struct gen_paraphrases out = { 0 };
    struct rs_error e;
    char *text = long_text();

    p.n = 20;
    p.max_new = 8;
    p.src_maxlen = 16;
    p.seed = 3;
    ck_assert_msg(gen_paraphrase(m, text, strlen(text), &p, 10, &out, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_gt(out.n, 1);
    for (int i = 0; i < out.n; i++) {
        double want = library_cosine(m, text, out.items[i].text, 16);
        ck_assert_msg(fabs(out.items[i].score - want) <= 1e-6, "'%s': score %.9f, cosine %.9f",
                      out.items[i].text, out.items[i].score, want);
    }
    gen_paraphrases_free(&out);
    free(text);
    rf_model_free(m);
}
END_TEST

START_TEST(test_nul_in_source)
{
    /* U+0000 is dropped by the tokenizer (bert4keras): a text with NULs
     * generates from the same tokens as the text without them */
    static const char with[] = "微信\0和支付宝\0哪个好用", without[] = "微信和支付宝哪个好用";
    struct rf_model *m = load(TINY);
    struct gen_params p = gen_default_params();
    struct gen_sequences a, b;
    struct tok_output ta = { 0 }, tb = { 0 };
    struct gen_paraphrases out = { 0 };
    struct rs_error e;
    struct dec *d;

    p.n = 6;
    p.max_new = 6;
    p.seed = 11;
    ck_assert_msg(gen_paraphrase(m, with, sizeof(with) - 1, &p, 3, &out, &e) == RS_OK, "%s",
                  e.msg);
    ck_assert_int_gt(out.n, 0);
    gen_paraphrases_free(&out);
    ck_assert_int_eq(tok_encode(rf_model_vocab(m), with, sizeof(with) - 1, 64, &ta, &e), RS_OK);
    ck_assert_int_eq(tok_encode(rf_model_vocab(m), without, sizeof(without) - 1, 64, &tb, &e), RS_OK);
    ck_assert_int_eq(ta.n, tb.n);
    d = dec_new(m, ta.n, p.max_new, p.n);
    ck_assert_int_eq(gen_run(m, d, ta.ids, ta.n, &p, &a, &e), RS_OK);
    ck_assert_int_eq(gen_run(m, d, tb.ids, tb.n, &p, &b, &e), RS_OK);
    ck_assert_int_eq(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        ck_assert_int_eq(a.len[i], b.len[i]);
        ck_assert_int_eq(memcmp(a.ids + a.off[i], b.ids + b.off[i],
                                (size_t)a.len[i] * sizeof(int32_t)), 0);
    }
    gen_sequences_free(&a);
    gen_sequences_free(&b);
    dec_free(d);
    tok_output_free(&ta);
    tok_output_free(&tb);
    rf_model_free(m);
}
END_TEST

/* Sampling draws the rows of a step on several threads: the sequences are
 * those of drawing row after row with gen_sample_token (the uniform
 * numbers taken in row order), rows ending at [SEP] leaving as they end. */
static void
sample_serially(const struct rf_model *m, const struct tok_output *src,
                const struct gen_params *p, struct gen_sequences *want)
{
    const int V = rf_model_config(m)->n_vocab, sep = tok_specials(rf_model_vocab(m)).sep;
    const int N = p->max_new;
    struct dec *d = dec_new(m, src->n, N, p->n);
    int32_t *hist = malloc((size_t)p->n * (size_t)N * sizeof(int32_t)), tok[64];
    int *wi = malloc((size_t)V * sizeof(int)), sample[64], keep[64], rows = p->n;
    float *wp = malloc((size_t)V * sizeof(float));
    struct gen_rng rng;
    struct rs_error e;

    ck_assert_int_le(p->n, 64);
    want->ids = malloc((size_t)p->n * (size_t)N * sizeof(int32_t));
    want->off = malloc((size_t)p->n * sizeof(int));
    want->len = malloc((size_t)p->n * sizeof(int));
    want->n = 0;
    gen_rng_seed(&rng, p->seed);
    ck_assert_int_eq(dec_start(d, src->ids, src->n, &e), RS_OK);
    ck_assert_int_eq(dec_fork(d, p->n, &e), RS_OK);
    for (int r = 0; r < rows; r++)
        sample[r] = r;
    for (int step = 0; step < N; step++) {
        int kept = 0;
        for (int r = 0; r < rows; r++) {
            tok[r] = gen_sample_token(dec_probs(d) + (size_t)r * (size_t)V, V, p, &rng, wi, wp);
            hist[sample[r] * N + step] = tok[r];
        }
        for (int r = 0; r < rows; r++) {
            if (tok[r] != sep && step < N - 1) {
                keep[kept++] = r;
                continue;
            }
            if (tok[r] != sep)
                continue;
            want->off[want->n] = want->n * N;
            want->len[want->n] = step + 1;
            memcpy(want->ids + want->n * N, hist + sample[r] * N, (size_t)(step + 1) * 4);
            want->n++;
        }
        if (step == N - 1) {
            for (int r = 0; r < rows; r++)
                if (tok[r] != sep) {
                    want->off[want->n] = want->n * N;
                    want->len[want->n] = N;
                    memcpy(want->ids + want->n * N, hist + sample[r] * N, (size_t)N * 4);
                    want->n++;
                }
            break;
        }
        if (kept == 0)
            break;
        for (int i = 0; i < kept; i++) {
            sample[i] = sample[keep[i]];
            tok[i] = tok[keep[i]];
        }
        ck_assert_int_eq(dec_select(d, keep, kept, &e), RS_OK);
        ck_assert_int_eq(dec_step(d, tok, &e), RS_OK);
        rows = kept;
    }
    dec_free(d);
    free(hist);
    free(wi);
    free(wp);
}

START_TEST(test_parallel_sampling_draws_as_serial)
{
    struct rf_model *m = load(TINY);
    struct tok_output src = { 0 };
    struct rs_error e;
    static const char text[] = "今天天气怎么样";

    rf_set_threads(2);
    ck_assert_int_eq(tok_encode(rf_model_vocab(m), text, sizeof(text) - 1, 64, &src, &e), RS_OK);
    for (int c = 0; c < 2; c++) {
        struct gen_params p = gen_default_params();
        struct gen_sequences got, want;
        struct dec *d;
        p.n = 40;
        p.max_new = 12;
        p.seed = 5 + (uint64_t)c;
        if (c == 1) {
            p.top_k = 7;
            p.temperature = 0.7f;
        }
        d = dec_new(m, src.n, p.max_new, p.n);
        ck_assert_int_eq(gen_run(m, d, src.ids, src.n, &p, &got, &e), RS_OK);
        dec_free(d);
        sample_serially(m, &src, &p, &want);
        ck_assert_int_eq(got.n, want.n);
        for (int i = 0; i < got.n; i++) {
            ck_assert_int_eq(got.len[i], want.len[i]);
            ck_assert_msg(memcmp(got.ids + got.off[i], want.ids + want.off[i],
                                 (size_t)got.len[i] * sizeof(int32_t)) == 0,
                          "case %d: sequence %d differs", c, i);
        }
        gen_sequences_free(&got);
        gen_sequences_free(&want);
    }
    tok_output_free(&src);
    rf_model_free(m);
}
END_TEST

START_TEST(test_beam_gives_one)
{
    struct rf_model *m = load(TINY);
    struct gen_params p = gen_default_params();
    struct gen_paraphrases out = { 0 };
    struct rs_error e;
    const char *text = "微信和支付宝哪个好用";

    p.beam = 4;
    p.max_new = 6;
    ck_assert_int_eq(gen_paraphrase(m, text, strlen(text), &p, 3, &out, &e), RS_EINVAL);
    ck_assert_msg(strstr(e.msg, "beam search yields one paraphrase") != NULL, "%s", e.msg);
    ck_assert_int_eq(gen_paraphrase(m, text, strlen(text), &p, 1, &out, &e), RS_OK);
    ck_assert_int_le(out.n, 1);
    gen_paraphrases_free(&out);
    rf_model_free(m);
}
END_TEST

START_TEST(test_cost)
{
    struct gen_params p = gen_default_params();

    /* 2 x source + 24 per step + per generated token 1 + context / 32
     * (contexts src + 1 .. src + max_new) + beam copies + re-ranked */
    p.n = 1;
    p.max_new = 1;
    p.src_maxlen = 64;
    ck_assert_int_eq(gen_cost(64, &p), 2 * 64 + 24 + 1 + 65 / 32 + 3);
    p.n = 256;
    p.max_new = 128;
    ck_assert_int_eq(gen_cost(7, &p),
                     14 + 24 * 128 + 256 * 128 + 256L * (128 * 7 + 128 * 129 / 2) / 32 + 256 * 64);
    p.beam = 4;
    ck_assert_int_eq(gen_cost(7, &p),
                     14 + 24 * 128 + 4 * 128 + 4L * (128 * 7 + 128 * 129 / 2) / 32 +
                     4 * 128 * 128 / 256 + 64);
}
END_TEST

/* --- through rosimd --------------------------------------------------------- */

static json_t *
post(int port, const char *path, const char *body, long want)
{
    struct tu_response r;
    json_error_t je;
    json_t *j;

    ck_assert_int_eq(tu_http(port, "POST", path, "application/json", body, strlen(body), &r), 0);
    ck_assert_msg(r.status == want, "%s: status %ld, want %ld: %.300s", path, r.status, want,
                  r.body);
    j = json_loads(r.body, 0, &je);
    ck_assert_msg(j != NULL, "%s: not JSON: %.300s", path, r.body);
    tu_response_free(&r);
    return j;
}

static void
start_daemon(struct tu_daemon *d, char *data, const char *opt1, const char *opt2)
{
    const char *extra[] = { "--model", TINY, "--data", data, "-o", opt1, "-o", opt2, NULL };

    strcpy(data, "/tmp/rosim-gen-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data));
    ck_assert_int_eq(tu_daemon_start(d, extra), 0);
}

static void
stop_daemon(struct tu_daemon *d, const char *data)
{
    char cmd[128];

    ck_assert_int_eq(tu_daemon_stop(d), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_api_scores_equal_similarity)
{
    struct tu_daemon d;
    char data[64], *text = long_text(), *body = malloc(8192);
    json_t *g, *sim, *targets = json_array(), *par, *req;
    size_t i;

    start_daemon(&d, data, "model.max_length=16", "limits.max_generate_cost=100000");
    snprintf(body, 8192, "{\"text\":\"%s\",\"n\":20,\"k\":10,\"max_length\":8,\"seed\":3}", text);
    g = post(d.port, "/v1/generate", body, 200);
    par = json_object_get(g, "paraphrases");
    ck_assert_int_gt(json_array_size(par), 1);
    json_array_foreach(par, i, req)
        json_array_append(targets, json_object_get(req, "text"));
    req = json_pack("{s:s,s:O}", "source", text, "targets", targets);
    free(body);
    body = json_dumps(req, 0);
    sim = post(d.port, "/v1/similarity", body, 200);
    for (i = 0; i < json_array_size(par); i++) {
        double got = json_number_value(json_object_get(json_array_get(par, i), "score"));
        double want = json_number_value(json_array_get(json_object_get(sim, "scores"), i));
        ck_assert_msg(fabs(got - want) <= 1e-6, "paraphrase %zu: score %.9f, similarity %.9f",
                      i, got, want);
    }
    json_decref(req);
    json_decref(sim);
    json_decref(targets);
    json_decref(g);
    free(body);
    free(text);
    stop_daemon(&d, data);
}
END_TEST

START_TEST(test_api_cost_and_beam)
{
    struct tu_daemon d;
    char data[64], *body = malloc(5000 * 3 + 64);
    json_t *j;

    /* source 64 tokens after truncation: 2 x 64 + 24 + 1 + 65 / 32 + 3 = 158 > 150;
     * "好": 34; the beam below: 137 */
    start_daemon(&d, data, "model.max_length=64", "limits.max_generate_cost=150");
    strcpy(body, "{\"text\":\"");
    for (int i = 0; i < 5000; i++)
        strcat(body + 9 + 3 * i, "天");
    strcat(body, "\",\"n\":1,\"max_length\":1}");
    j = post(d.port, "/v1/generate", body, 422);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                     "too_costly");
    json_decref(j);
    json_decref(post(d.port, "/v1/generate", "{\"text\":\"好\",\"n\":1,\"max_length\":1}", 200));
    /* beam: one paraphrase; k > 1 refused */
    j = post(d.port, "/v1/generate", "{\"text\":\"微信和支付宝哪个好用\",\"beam\":2,\"max_length\":4}", 200);
    ck_assert_int_le(json_array_size(json_object_get(j, "paraphrases")), 1);
    json_decref(j);
    json_decref(post(d.port, "/v1/generate",
                     "{\"text\":\"微信和支付宝哪个好用\",\"beam\":2,\"k\":3,\"max_length\":4}", 422));
    free(body);
    stop_daemon(&d, data);
}
END_TEST

/* --- beam selection ------------------------------------------------------------ */

/* Beam search gives, on both fixtures, the ids the sorting implementation
 * gave (tests/fixtures/beam-golden.tsv: fixture, text, width, max_new, ids). */
START_TEST(test_beam_golden)
{
    FILE *f = fopen("tests/fixtures/beam-golden.tsv", "r");
    char line[1024], dir[256] = "";
    struct rf_model *m = NULL;
    int cases = 0;

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        char *fixture = strtok(line, "\t"), *text = strtok(NULL, "\t");
        char *width = strtok(NULL, "\t"), *max_new = strtok(NULL, "\t"), *ids = strtok(NULL, "\n");
        struct gen_params p = gen_default_params();
        struct tok_output tok = { 0 };
        struct gen_sequences out;
        struct rs_error e;
        struct dec *d;
        int i = 0;

        if (line[0] == '#')
            continue;
        ck_assert_ptr_nonnull(ids);
        if (strcmp(dir + strlen("tests/fixtures/"), fixture) != 0) {
            if (m != NULL)
                rf_model_free(m);
            snprintf(dir, sizeof(dir), "tests/fixtures/%s", fixture);
            m = load(dir);
        }
        p.beam = atoi(width);
        p.max_new = atoi(max_new);
        ck_assert_int_eq(tok_encode(rf_model_vocab(m), text, strlen(text), 64, &tok, &e), RS_OK);
        d = dec_new(m, tok.n, p.max_new, p.beam);
        ck_assert_ptr_nonnull(d);
        ck_assert_msg(gen_run(m, d, tok.ids, tok.n, &p, &out, &e) == RS_OK, "%s", e.msg);
        ck_assert_int_eq(out.n, 1);
        for (char *s = strtok(ids, " "); s != NULL; s = strtok(NULL, " "), i++) {
            ck_assert_msg(i < out.len[0], "%s %s beam %d: %d ids, want more", fixture, text,
                          p.beam, out.len[0]);
            ck_assert_msg(out.ids[i] == atoi(s), "%s %s beam %d max_new %d: id %d is %d, want %s",
                          fixture, text, p.beam, p.max_new, i, out.ids[i], s);
        }
        ck_assert_int_eq(out.len[0], i);
        gen_sequences_free(&out);
        dec_free(d);
        tok_output_free(&tok);
        cases++;
    }
    fclose(f);
    rf_model_free(m);
    ck_assert_int_ge(cases, 60);
}
END_TEST

static int
cand_order(const void *x, const void *y)
{
    const struct gen_beam_cand *a = x, *b = y;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->row != b->row)
        return a->row - b->row;
    return a->token - b->token;
}

/* gen_beam_select equals sorting all rows x V candidates and taking the
 * first width, on random inputs full of ties (probabilities on a coarse
 * grid, zeros, rows with equal scores). */
START_TEST(test_beam_select_random)
{
    struct gen_rng rng;

    gen_rng_seed(&rng, 11);
    for (int trial = 0; trial < 400; trial++) {
        int rows = 1 + (int)(gen_rng_uniform(&rng) * 12), V = 1 + (int)(gen_rng_uniform(&rng) * 200);
        int width = 1 + (int)(gen_rng_uniform(&rng) * (rows * V + 4)), n;
        int grid = trial % 2 ? 8 : 1 << 20;
        float *probs = malloc((size_t)rows * (size_t)V * sizeof(float));
        double *score = malloc((size_t)rows * sizeof(double));
        struct gen_beam_cand *all = malloc((size_t)rows * (size_t)V * sizeof(*all));
        struct gen_beam_cand *best = malloc((size_t)width * sizeof(*best));

        for (int r = 0; r < rows; r++) {
            score[r] = trial % 3 ? -(double)(int)(gen_rng_uniform(&rng) * 4) : 0;
            for (int v = 0; v < V; v++) {
                float x = (float)((int)(gen_rng_uniform(&rng) * grid)) / (float)grid;
                probs[(size_t)r * (size_t)V + (size_t)v] = gen_rng_uniform(&rng) < 0.2 ? 0 : x;
                all[(size_t)r * (size_t)V + (size_t)v] = (struct gen_beam_cand){
                    score[r] + log((double)probs[(size_t)r * (size_t)V + (size_t)v] + 1e-12), r, v };
            }
        }
        qsort(all, (size_t)rows * (size_t)V, sizeof(*all), cand_order);
        n = gen_beam_select(probs, score, rows, V, width, best);
        ck_assert_int_eq(n, width < rows * V ? width : rows * V);
        for (int i = 0; i < n; i++)
            ck_assert_msg(best[i].score == all[i].score && best[i].row == all[i].row &&
                          best[i].token == all[i].token,
                          "trial %d (%d rows, V %d, width %d): #%d is (%d, %d, %g), want (%d, %d, %g)",
                          trial, rows, V, width, i, best[i].row, best[i].token, best[i].score,
                          all[i].row, all[i].token, all[i].score);
        free(probs);
        free(score);
        free(all);
        free(best);
    }
}
END_TEST

/* --- the deadline of a running generation ------------------------------------- */

/* A generation still running request_timeout after it asked for the model
 * stops between decode steps: 503 "timeout" with Retry-After, counted as a
 * timeout in /metrics; the next request is served at once. */
START_TEST(test_api_generation_deadline)
{
    /* some 8 s on a 2-core machine without the deadline */
    static const char big[] = "{\"texts\":[\"我喜欢北京\",\"手机坏了怎么办\",\"今天天气不错\",\"你好\"],"
                              "\"n\":256,\"max_length\":128,\"seed\":1}";
    struct tu_daemon d;
    struct tu_response r;
    char data[64];
    double t0;
    json_t *j;

    start_daemon(&d, data, "limits.request_timeout=1", "limits.max_generate_cost=10000000");
    t0 = tu_now();
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/generate", "application/json", big,
                             strlen(big), &r), 0);
    ck_assert_msg(r.status == 503, "status %ld after %.1f s: %.300s", r.status, tu_now() - t0,
                  r.body);
    ck_assert_msg(tu_now() - t0 < 6, "stopped after %.1f s", tu_now() - t0);
    ck_assert_ptr_nonnull(strstr(r.headers, "Retry-After: 1"));
    j = json_loads(r.body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                     "timeout");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_object_get(j, "error"),
                                                                   "message")),
                                 "ran past the request's deadline"));
    json_decref(j);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(d.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "rosim_rejected_total{reason=\"timeout\"} 1\n"));
    tu_response_free(&r);
    json_decref(post(d.port, "/v1/generate", "{\"text\":\"好\",\"n\":2,\"max_length\":4}", 200));
    stop_daemon(&d, data);
}
END_TEST

/* --- values at the edges of float ---------------------------------------------- */

/* A refused top_p or temperature is shown with the digits that tell it from
 * the bound (1.0000001 is not "1"); one so small that it would become float
 * 0 is out of range like 0, not an internal "invalid ... not 0". */
START_TEST(test_edge_values)
{
    struct rf_model *m = load(TINY);
    struct gen_paraphrases out = { 0 };
    struct gen_params p = gen_default_params();
    struct tu_daemon d;
    char data[64];
    struct rs_error e;
    static const char *const cases[][2] = {
        { "{\"text\":\"好\",\"top_p\":1.0000001}", "not 1.0000001\"" },
        { "{\"text\":\"好\",\"top_p\":1e-46}", "not 1e-46\"" },
        { "{\"text\":\"好\",\"temperature\":1e-46}", "not 1e-46\"" },
        { "{\"text\":\"好\",\"temperature\":100.00000000000001}", "not 100.00000000000001\"" },
    };

    p.top_p = 1.0000001f;
    ck_assert_int_eq(gen_paraphrase(m, "你好", strlen("你好"), &p, 5, &out, &e), RS_EINVAL);
    ck_assert_msg(strstr(e.msg, "not 1.00000012") != NULL, "%s", e.msg);
    rf_model_free(m);
    start_daemon(&d, data, "limits.max_n=8", "limits.max_k=8");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = post(d.port, "/v1/generate", cases[i][0], 422);
        char *text = json_dumps(j, 0);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                         "out_of_range");
        ck_assert_msg(strstr(text, cases[i][1]) != NULL, "%s: %s", cases[i][0], text);
        free(text);
        json_decref(j);
    }
    json_decref(post(d.port, "/v1/generate",
                     "{\"text\":\"好\",\"n\":2,\"max_length\":4,\"top_p\":1e-30,\"temperature\":1e-30}",
                     200));
    stop_daemon(&d, data);
}
END_TEST

/* --- the price of a generation -------------------------------------------------- */

/* Beam search is priced for its work: 256 beams of 128 tokens (minutes on
 * the 6-layer demo model, as long as sampling 256 x 128) are over the
 * default budget like the sampling, while the README's examples run. */
START_TEST(test_api_beam_priced)
{
    struct tu_daemon d;
    char data[64];
    json_t *j;

    start_daemon(&d, data, "limits.max_n=256", "limits.max_new_tokens=128");
    j = post(d.port, "/v1/generate", "{\"text\":\"我喜欢北京的天气，今天天气很好，适合出去玩\","
             "\"beam\":256,\"max_length\":128}", 422);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                     "too_costly");
    json_decref(j);
    json_decref(post(d.port, "/v1/generate", "{\"text\":\"我喜欢北京的天气，今天天气很好，适合出去玩\","
                     "\"n\":256,\"max_length\":128}", 422));
    json_decref(post(d.port, "/v1/generate", "{\"text\":\"我喜欢北京的天气，今天天气很好，适合出去玩\","
                     "\"n\":20,\"k\":5,\"top_p\":0.95,\"top_k\":0,\"temperature\":1,"
                     "\"max_length\":64,\"seed\":null,\"beam\":0}", 200));
    json_decref(post(d.port, "/v1/generate", "{\"texts\":[\"我喜欢北京\",\"手机坏了怎么办\"],"
                     "\"max_length\":64}", 200));
    json_decref(post(d.port, "/v1/generate", "{\"text\":\"微信和支付宝哪个好用\",\"beam\":8,"
                     "\"max_length\":64}", 200));
    stop_daemon(&d, data);
}
END_TEST

Suite *
generate_suite(void)
{
    Suite *s = suite_create("generate");
    TCase *tc = tcase_create("unilm");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_greedy_roformer);
    tcase_add_test(tc, test_greedy_bert);
    tcase_add_test(tc, test_greedy_cli);
    tcase_add_test(tc, test_cache_equals_recompute);
    tcase_add_test(tc, test_sampler_distribution);
    tcase_add_test(tc, test_beam_full_width_is_exact);
    tcase_add_test(tc, test_paraphrase_and_seeds);
    tcase_add_test(tc, test_parallel_sampling_draws_as_serial);
    tcase_add_test(tc, test_bad_parameters);
    tcase_add_test(tc, test_scores_are_cosines_of_truncated_texts);
    tcase_add_test(tc, test_nul_in_source);
    tcase_add_test(tc, test_beam_gives_one);
    tcase_add_test(tc, test_cost);
    tcase_add_test(tc, test_api_scores_equal_similarity);
    tcase_add_test(tc, test_api_cost_and_beam);
    tcase_add_test(tc, test_beam_golden);
    tcase_add_test(tc, test_beam_select_random);
    tcase_add_test(tc, test_api_generation_deadline);
    tcase_add_test(tc, test_edge_values);
    tcase_add_test(tc, test_api_beam_priced);
    suite_add_tcase(s, tc);
    return s;
}
