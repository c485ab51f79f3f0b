/*
 * check_model.c: weight loaders and the encoder against golden outputs of
 * an independent float64 reference (expected.json of each fixture).
 *
 * - roformer-sim-tiny from each of its three weight formats: [CLS] hidden
 *   state, linear-pooled vector, normalized embedding, pairwise cosine, and
 *   the whole last hidden state of case 0, within 1e-4;
 * - tf-checkpoint-bert-tiny (a real TF-written BERT checkpoint): raw tensor
 *   values, every CRC, the BERT architecture with linear and tanh poolers;
 * - the same vectors alone and in a padded batch;
 * - truncated, corrupted and mismatched files, and a NaN weight in each
 *   format, fail with errors that name the file and tensor;
 * - PyTorch files: protocol-4 pickles (MEMOIZE) load; an overflowing index
 *   and an exponential memo walk are refused quickly;
 * - finite weights that overflow: rosimd answers 500, never short arrays;
 * - CRC32C from several threads at once (the first use sets up its tables).
 */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model/roformer.h"
#include "../model/weights.h"
#include "suites.h"
#include "testutil.h"

#define TINY "tests/fixtures/roformer-sim-tiny"
#define BERT "tests/fixtures/tf-checkpoint-bert-tiny"
#define TOL 1e-4

static json_t *
load_expected(const char *dir)
{
    char path[512];
    json_error_t je;
    json_t *j;

    snprintf(path, sizeof(path), "%s/expected.json", dir);
    j = json_load_file(path, JSON_ALLOW_NUL, &je);
    ck_assert_msg(j != NULL, "%s: %s", path, je.text);
    return j;
}

static double
max_diff(const float *got, json_t *want, size_t n)
{
    double worst = 0;

    ck_assert_uint_eq(json_array_size(want), n);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - json_number_value(json_array_get(want, i)));
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* A scratch directory holding links to the config, vocab and the named
 * weight files of src, so that one format is picked. */
static void
make_model_dir(char *dir, const char *src, const char *const files[])
{
    char cwd[1024], from[2048], to[2048];

    strcpy(dir, "/tmp/rosim-model-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    for (int i = 0; files[i] != NULL; i++) {
        snprintf(from, sizeof(from), "%s/%s/%s", cwd, src, files[i]);
        snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
        ck_assert_int_eq(symlink(from, to), 0);
    }
}

static void
remove_dir(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void
copy_file(const char *from, const char *to)
{
    char cmd[2200];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod u+w '%s'", from, to, to);
    ck_assert_int_eq(system(cmd), 0);
}

/* Encode every case alone; compare with the goldens. */
static void
check_cases(struct rf_model *m, json_t *exp, const char *pooled_key, enum rf_pooler pooler)
{
    const int H = rf_model_config(m)->d_model;
    json_t *cases = json_object_get(exp, "cases"), *c;
    int maxlen = (int)json_integer_value(json_object_get(exp, "maxlen"));
    struct rf_state *s = rf_state_new(m, 1, maxlen);
    struct tok_output tok = { 0 };
    float vec[4096], emb[4096][64];
    size_t i, n = json_array_size(cases);

    ck_assert_ptr_nonnull(s);
    ck_assert_uint_le(n, 64);
    json_array_foreach(cases, i, c) {
        json_t *text = json_object_get(c, "text"), *ids = json_object_get(c, "ids");
        const int32_t *idp;
        struct rs_error e;
        float norm = 0;

        ck_assert_int_eq(tok_encode(rf_model_vocab(m), json_string_value(text),
                                    json_string_length(text), maxlen, &tok, &e), RS_OK);
        ck_assert_int_eq(tok.n, (int)json_array_size(ids));
        for (int k = 0; k < tok.n; k++)
            ck_assert_int_eq(tok.ids[k], json_integer_value(json_array_get(ids, (size_t)k)));
        idp = tok.ids;
        ck_assert_msg(rf_encode(m, s, &idp, &tok.n, 1, pooler, vec, &e) == RS_OK, "%s", e.msg);
        ck_assert_msg(max_diff(rf_state_hidden(s, 0), json_object_get(c, "cls_hidden"), (size_t)H) <= TOL,
                      "case %zu: cls_hidden differs", i);
        if (i == 0 && json_object_get(exp, "last_hidden_case0") != NULL) {
            json_t *rows = json_object_get(exp, "last_hidden_case0"), *row;
            size_t t;
            json_array_foreach(rows, t, row)
                ck_assert_msg(max_diff(rf_state_hidden(s, 0) + t * (size_t)H, row, (size_t)H) <= TOL,
                              "case 0 row %zu differs", t);
        }
        ck_assert_msg(max_diff(vec, json_object_get(c, pooled_key), (size_t)H) <= TOL,
                      "case %zu: %s differs by %g", i, pooled_key,
                      max_diff(vec, json_object_get(c, pooled_key), (size_t)H));
        for (int k = 0; k < H; k++)
            norm += vec[k] * vec[k];
        for (int k = 0; k < H; k++)
            emb[k][i] = vec[k] / sqrtf(norm);
        if (pooler == RF_POOL_LINEAR) {
            float col[4096];
            for (int k = 0; k < H; k++)
                col[k] = emb[k][i];
            ck_assert(max_diff(col, json_object_get(c, "embedding"), (size_t)H) <= TOL);
        }
    }
    if (json_object_get(exp, "similarity") != NULL && pooler == RF_POOL_LINEAR) {
        json_t *pair;
        json_array_foreach(json_object_get(exp, "similarity"), i, pair) {
            size_t a = (size_t)json_integer_value(json_array_get(pair, 0));
            size_t b = (size_t)json_integer_value(json_array_get(pair, 1));
            double dot = 0;
            for (int k = 0; k < H; k++)
                dot += (double)emb[k][a] * emb[k][b];
            ck_assert_msg(fabs(dot - json_number_value(json_array_get(pair, 2))) <= TOL,
                          "similarity %zu,%zu", a, b);
        }
    }
    tok_output_free(&tok);
    rf_state_free(s);
}

static void
check_tiny_format(const char *const files[], const char *format)
{
    char dir[64];
    struct rf_model *m;
    struct rs_error e;
    json_t *exp = load_expected(TINY);

    make_model_dir(dir, TINY, files);
    ck_assert_msg(rf_model_load(&m, dir, &e) == RS_OK, "%s", e.msg);
    ck_assert_str_eq(rf_model_format(m), format);
    /* the same weights in any format have the same fingerprint */
    {
        struct rf_model *tf;
        ck_assert_int_eq(rf_model_load(&tf, TINY, &e), RS_OK);
        ck_assert_str_eq(rf_model_fingerprint(m), rf_model_fingerprint(tf));
        ck_assert_ptr_nonnull(strstr(rf_model_fingerprint(m), "roformer-L2-H64-A4-V304-"));
        rf_model_free(tf);
    }
    ck_assert_int_eq(rf_model_config(m)->arch, RF_ARCH_ROFORMER);
    check_cases(m, exp, "pooled", RF_POOL_LINEAR);
    rf_model_free(m);
    json_decref(exp);
    remove_dir(dir);
}

START_TEST(test_tiny_tf)
{
    static const char *const files[] = { "bert_config.json", "vocab.txt", "checkpoint",
        "bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001", NULL };
    check_tiny_format(files, "tf-checkpoint");
}
END_TEST

START_TEST(test_tiny_safetensors)
{
    static const char *const files[] = { "config.json", "vocab.txt", "model.safetensors", NULL };
    check_tiny_format(files, "safetensors");
}
END_TEST

START_TEST(test_tiny_pytorch)
{
    static const char *const files[] = { "config.json", "vocab.txt", "pytorch_model.bin", NULL };
    check_tiny_format(files, "pytorch");
}
END_TEST

START_TEST(test_batch_equals_single)
{
    const int maxlen = 32;
    struct rf_model *m;
    struct rs_error e;
    json_t *exp = load_expected(TINY), *c;
    struct tok_output tok = { 0 };
    struct rf_state *one, *many;
    static int32_t ids[16][32];
    const int32_t *idp[16];
    int lens[16], H, n = 0;
    static float batch[16 * 64], single[64];
    size_t i;

    ck_assert_int_eq(rf_model_load(&m, TINY, &e), RS_OK);
    H = rf_model_config(m)->d_model;
    one = rf_state_new(m, 1, maxlen);
    many = rf_state_new(m, 16, maxlen);
    json_array_foreach(json_object_get(exp, "cases"), i, c) {
        json_t *text = json_object_get(c, "text");
        ck_assert_int_eq(tok_encode(rf_model_vocab(m), json_string_value(text),
                                    json_string_length(text), maxlen, &tok, &e), RS_OK);
        memcpy(ids[n], tok.ids, (size_t)tok.n * sizeof(int32_t));
        lens[n] = tok.n;
        idp[n] = ids[n];
        n++;
    }
    ck_assert_int_eq(rf_encode(m, many, idp, lens, n, RF_POOL_LINEAR, batch, &e), RS_OK);
    for (int b = 0; b < n; b++) {
        ck_assert_int_eq(rf_encode(m, one, &idp[b], &lens[b], 1, RF_POOL_LINEAR, single, &e), RS_OK);
        for (int k = 0; k < H; k++)
            ck_assert_float_eq_tol(batch[b * H + k], single[k], 1e-5f);
    }
    /* capacity and id checks */
    lens[0] = maxlen + 1;
    ck_assert_int_eq(rf_encode(m, one, idp, lens, 1, RF_POOL_LINEAR, single, &e), RS_EINVAL);
    ck_assert_int_eq(rf_encode(m, one, idp, lens, 2, RF_POOL_LINEAR, single, &e), RS_EINVAL);
    ids[0][1] = 1000000;
    lens[0] = 3;
    ck_assert_int_eq(rf_encode(m, one, idp, lens, 1, RF_POOL_LINEAR, single, &e), RS_EINVAL);
    tok_output_free(&tok);
    rf_state_free(one);
    rf_state_free(many);
    rf_model_free(m);
    json_decref(exp);
}
END_TEST

START_TEST(test_cls_and_mean_poolers)
{
    /* cls = the [CLS] hidden state; mean = the average of the last hidden
     * states over the sentence's tokens (golden: last_hidden_case0) */
    struct rf_model *m;
    struct rs_error e;
    json_t *exp = load_expected(TINY), *c0 = json_array_get(json_object_get(exp, "cases"), 0);
    json_t *rows = json_object_get(exp, "last_hidden_case0");
    struct rf_state *s;
    int32_t ids[32];
    const int32_t *idp = ids;
    int n = (int)json_array_size(json_object_get(c0, "ids")), H;
    float vec[64], mean[64] = { 0 };

    ck_assert_int_eq(rf_model_load(&m, TINY, &e), RS_OK);
    H = rf_model_config(m)->d_model;
    s = rf_state_new(m, 1, 32);
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(json_object_get(c0, "ids"), (size_t)i));
    ck_assert_int_eq(rf_encode(m, s, &idp, &n, 1, RF_POOL_CLS, vec, &e), RS_OK);
    ck_assert(max_diff(vec, json_object_get(c0, "cls_hidden"), (size_t)H) <= TOL);
    ck_assert_int_eq((int)json_array_size(rows), n);
    for (int t = 0; t < n; t++)
        for (int k = 0; k < H; k++)
            mean[k] += (float)json_number_value(json_array_get(json_array_get(rows, (size_t)t),
                                                               (size_t)k)) / (float)n;
    ck_assert_int_eq(rf_encode(m, s, &idp, &n, 1, RF_POOL_MEAN, vec, &e), RS_OK);
    for (int k = 0; k < H; k++)
        ck_assert_float_eq_tol(vec[k], mean[k], 1e-4f);
    ck_assert_int_eq(rf_pooler_parse("mean"), RF_POOL_MEAN);
    ck_assert_int_eq(rf_pooler_parse("max"), -1);
    rf_state_free(s);
    rf_model_free(m);
    json_decref(exp);
}
END_TEST

START_TEST(test_bert_tiny)
{
    struct rf_model *m;
    struct rs_error e;
    json_t *exp = load_expected(BERT);

    ck_assert_msg(rf_model_load(&m, BERT, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(rf_model_config(m)->arch, RF_ARCH_BERT);
    ck_assert_ptr_nonnull(strstr(rf_model_fingerprint(m), "bert-L2-H4-A4-V15-"));
    check_cases(m, exp, "pooled_linear", RF_POOL_LINEAR);
    check_cases(m, exp, "pooled_tanh", RF_POOL_TANH);
    rf_model_free(m);
    json_decref(exp);
}
END_TEST

START_TEST(test_tf_raw_values)
{
    struct wt_set *w;
    struct rs_error e;
    const struct wt_tensor *t;
    float buf[64];
    static const float emb0[] = { -0.0062598074f, 0.0207726117f, 0.0252587255f, 0.0223204978f };
    static const float gamma[] = { 0.99999422f, 1.00000560f, 0.99999446f, 1.00000548f };
    static const float q0[] = { -0.0045214114f, 0.0197623856f, 0.0296053104f, -0.0152465831f };

    ck_assert_msg(wt_open_dir(&w, BERT, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(wt_count(w), 139);
    ck_assert_msg(wt_verify_all(w, &e) == RS_OK, "%s", e.msg);
    t = wt_find(w, "bert/embeddings/word_embeddings");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 15);
    ck_assert_int_eq(wt_read_f32(w, t, buf, &e), RS_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(buf[i], emb0[i], 1e-9f);
    ck_assert_int_eq(wt_read_f32(w, wt_find(w, "bert/embeddings/LayerNorm/gamma"), buf, &e), RS_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(buf[i], gamma[i], 1e-7f);
    ck_assert_int_eq(wt_read_f32(w, wt_find(w, "bert/encoder/layer_0/attention/self/query/kernel"),
                                 buf, &e), RS_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(buf[i], q0[i], 1e-9f);
    t = wt_find(w, "global_step");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, WT_I64);
    ck_assert_int_eq(wt_read_f32(w, t, buf, &e), RS_OK);
    ck_assert_float_eq(buf[0], 20.0f);
    ck_assert_ptr_nonnull(wt_find(w, "bert/embeddings/word_embeddings/adam_m"));
    wt_close(w);
    ck_assert_uint_eq(wt_crc32c(0, "123456789", 9), 0xE3069283u);
}
END_TEST

static void *
crc_worker(void *arg)
{
    *(uint32_t *)arg = wt_crc32c(0, "123456789", 9);
    return NULL;
}

START_TEST(test_crc_first_use_threads)
{
    /* the first calls of the process come from several threads at once;
     * under ThreadSanitizer a lazily built table shows as a race */
    pthread_t th[8];
    uint32_t got[8];

    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, crc_worker, &got[i]), 0);
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_uint_eq(got[i], 0xE3069283u);
    }
}
END_TEST

START_TEST(test_torch_protocol4)
{
    /* torch.save(..., pickle_protocol=4): MEMOIZE numbers the memo by its
     * size; a tensor reached twice, a transposed view, f16, i64, nesting */
    static const struct { const char *name; int n; float v[6]; } want[] = {
        { "w", 6, { 0, 0.25f, 0.5f, 0.75f, 1, 1.25f } },
        { "w_t", 6, { 0, 0.75f, 0.25f, 1, 0.5f, 1.25f } },
        { "tied", 6, { 0, 0.25f, 0.5f, 0.75f, 1, 1.25f } },
        { "h", 3, { 1.5f, -2.25f, 65504 } },
        { "sub.step", 2, { 7, -3 } },
    };
    struct wt_set *w;
    struct rs_error e;
    float buf[6];

    ck_assert_msg(wt_open_torch(&w, "tests/fixtures/torch-protocol4/pytorch_model.bin", &e) ==
                  RS_OK, "%s", e.msg);
    ck_assert_int_eq(wt_count(w), 5);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct wt_tensor *t = wt_find(w, want[i].name);
        ck_assert_msg(t != NULL, "%s missing", want[i].name);
        ck_assert_int_eq(wt_numel(t), want[i].n);
        ck_assert_int_eq(wt_read_f32(w, t, buf, &e), RS_OK);
        for (int k = 0; k < want[i].n; k++)
            ck_assert_float_eq(buf[k], want[i].v[k]);
    }
    wt_close(w);
}
END_TEST

START_TEST(test_torch_hostile)
{
    /* tests/tools/make_torch_hostile.py: an index that overflows int64
     * (checked before the sum: UBSan aborts otherwise), and a small file
     * whose memo makes the dict walk exponential (bounded by visits) */
    static const char *const cases[][2] = {
        { "tests/fixtures/torch-hostile/overflow.bin", "reaches outside its storage" },
        { "tests/fixtures/torch-hostile/fanout.bin", "reaches more than" },
    };
    for (int i = 0; i < 2; i++) {
        struct wt_set *w;
        struct rs_error e;
        double t0 = tu_now();
        ck_assert_int_eq(wt_open_torch(&w, cases[i][0], &e), RS_EFORMAT);
        ck_assert_msg(strstr(e.msg, cases[i][1]) != NULL, "%s", e.msg);
        ck_assert_msg(tu_now() - t0 < 5, "%s took %.1f s", cases[i][0], tu_now() - t0);
    }
}
END_TEST

START_TEST(test_formats_agree)
{
    /* every tensor of the TF checkpoint equals its counterpart in the other
     * two files, transposed where Hugging Face stores [out, in] */
    struct wt_set *tf, *st, *pt;
    struct rs_error e;
    float a[20000], b[20000];

    ck_assert_int_eq(wt_open_tf(&tf, TINY "/bert_model.ckpt", &e), RS_OK);
    ck_assert_int_eq(wt_open_safetensors(&st, TINY "/model.safetensors", &e), RS_OK);
    ck_assert_int_eq(wt_open_torch(&pt, TINY "/pytorch_model.bin", &e), RS_OK);
    ck_assert_int_eq(wt_count(st), wt_count(pt));
    for (int i = 0; i < wt_count(st); i++) {
        const struct wt_tensor *ts = wt_at(st, i), *tp = wt_find(pt, ts->name);
        int64_t n = wt_numel(ts);
        ck_assert_msg(tp != NULL, "%s missing from pytorch_model.bin", ts->name);
        ck_assert_int_le(n, 20000);
        ck_assert_int_eq(wt_numel(tp), n);
        ck_assert_int_eq(wt_read_f32(st, ts, a, &e), RS_OK);
        ck_assert_int_eq(wt_read_f32(pt, tp, b, &e), RS_OK);
        ck_assert_int_eq(memcmp(a, b, (size_t)n * sizeof(float)), 0);
    }
    {
        const struct wt_tensor *k = wt_find(tf, "bert/encoder/layer_1/intermediate/dense/kernel");
        const struct wt_tensor *hw = wt_find(st, "roformer.encoder.layer.1.intermediate.dense.weight");
        ck_assert_ptr_nonnull(k);
        ck_assert_ptr_nonnull(hw);
        ck_assert_int_eq(k->shape[0], hw->shape[1]);
        ck_assert_int_eq(wt_read_f32(tf, k, a, &e), RS_OK);
        ck_assert_int_eq(wt_read_f32(st, hw, b, &e), RS_OK);
        for (int r = 0; r < k->shape[0]; r++)
            for (int c = 0; c < k->shape[1]; c++)
                ck_assert_float_eq(a[r * k->shape[1] + c], b[c * k->shape[0] + r]);
    }
    wt_close(tf);
    wt_close(st);
    wt_close(pt);
}
END_TEST

/* Truncate a copy of one weight file at many lengths: loading must fail
 * with RS_EFORMAT and a message naming the file, never crash. */
static void
check_truncations(const char *const files[], const char *victim)
{
    char dir[64], path[256], src[256];
    struct stat st;

    make_model_dir(dir, TINY, files);
    snprintf(path, sizeof(path), "%s/%s", dir, victim);
    snprintf(src, sizeof(src), TINY "/%s", victim);
    ck_assert_int_eq(stat(src, &st), 0);
    unlink(path);
    for (int k = 0; k < 40; k++) {
        off_t len = k < 20 ? (off_t)k * 7 : st.st_size * (k - 20) / 20 + (k % 3);
        struct rf_model *m;
        struct rs_error e;
        int rc;
        copy_file(src, path);
        ck_assert_int_eq(truncate(path, len), 0);
        rc = rf_model_load(&m, dir, &e);
        ck_assert_msg(rc == RS_EFORMAT, "%s truncated to %lld: rc %d (%s)", victim,
                      (long long)len, rc, rc ? e.msg : "loaded");
        ck_assert_msg(strstr(e.msg, victim) != NULL, "message without the file: %s", e.msg);
        unlink(path);
    }
    remove_dir(dir);
}

START_TEST(test_truncated_files)
{
    static const char *const tf[] = { "bert_config.json", "vocab.txt",
        "bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001", NULL };
    static const char *const st[] = { "config.json", "vocab.txt", "model.safetensors", NULL };
    static const char *const pt[] = { "config.json", "vocab.txt", "pytorch_model.bin", NULL };

    check_truncations(tf, "bert_model.ckpt.index");
    check_truncations(tf, "bert_model.ckpt.data-00000-of-00001");
    check_truncations(st, "model.safetensors");
    check_truncations(pt, "pytorch_model.bin");
}
END_TEST

START_TEST(test_corrupted_files)
{
    static const char *const tf[] = { "bert_config.json", "vocab.txt",
        "bert_model.ckpt.index", NULL };
    char dir[64], path[256];
    struct rf_model *m;
    struct rs_error e;
    int fd;

    make_model_dir(dir, TINY, tf);
    snprintf(path, sizeof(path), "%s/bert_model.ckpt.data-00000-of-00001", dir);
    copy_file(TINY "/bert_model.ckpt.data-00000-of-00001", path);
    fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "\x55\xAA", 2, 1000), 2);  /* inside a tensor */
    close(fd);
    ck_assert_int_eq(rf_model_load(&m, dir, &e), RS_EFORMAT);
    ck_assert_msg(strstr(e.msg, "CRC32C mismatch") && strstr(e.msg, "tensor '"), "%s", e.msg);

    /* a flipped byte in the index fails its block CRC */
    copy_file(TINY "/bert_model.ckpt.data-00000-of-00001", path);
    snprintf(path, sizeof(path), "%s/bert_model.ckpt.index", dir);
    unlink(path);
    copy_file(TINY "/bert_model.ckpt.index", path);
    fd = open(path, O_RDWR);
    ck_assert_int_eq(pwrite(fd, "\xFF", 1, 100), 1);
    close(fd);
    ck_assert_int_eq(rf_model_load(&m, dir, &e), RS_EFORMAT);
    ck_assert_msg(strstr(e.msg, "CRC32C") != NULL, "%s", e.msg);
    remove_dir(dir);
}
END_TEST

/* Bytes [at, at + 4) of buf[0..n) chosen so that the CRC32C of buf is want:
 * the CRC is affine in the data, so the 32 bits there are solved for. */
static void
forge_crc(unsigned char *buf, size_t n, size_t at, uint32_t want)
{
    unsigned char *zero = calloc(n, 1);
    uint32_t rows[32], zcrc, need;
    int pivot_bit[32];

    ck_assert_ptr_nonnull(zero);
    memset(buf + at, 0, 4);
    zcrc = wt_crc32c(0, zero, n);
    need = wt_crc32c(0, buf, n) ^ want;
    for (int b = 0; b < 32; b++) {         /* the effect of each bit, alone */
        zero[at + (size_t)b / 8] = (unsigned char)(1u << (b % 8));
        rows[b] = wt_crc32c(0, zero, n) ^ zcrc;
        zero[at + (size_t)b / 8] = 0;
    }
    /* Gaussian elimination over GF(2); rows[b] also records which input
     * bits it combines, in combo[b] */
    {
        uint32_t combo[32];
        for (int b = 0; b < 32; b++)
            combo[b] = 1u << b;
        for (int col = 0, r = 0; col < 32; col++) {
            int piv = -1;
            for (int i = r; i < 32 && piv < 0; i++)
                if (rows[i] >> col & 1)
                    piv = i;
            ck_assert_int_ge(piv, 0);
            uint32_t tr = rows[piv], tc = combo[piv];
            rows[piv] = rows[r]; combo[piv] = combo[r];
            rows[r] = tr; combo[r] = tc;
            for (int i = 0; i < 32; i++)
                if (i != r && (rows[i] >> col & 1)) {
                    rows[i] ^= rows[r];
                    combo[i] ^= combo[r];
                }
            pivot_bit[r++] = col;
        }
        uint32_t x = 0;
        for (int r = 0; r < 32; r++)
            if (need >> pivot_bit[r] & 1)
                x ^= combo[r];
        for (int b = 0; b < 4; b++)
            buf[at + (size_t)b] = (unsigned char)(x >> (8 * b));
    }
    ck_assert_uint_eq(wt_crc32c(0, buf, n), want);
    free(zero);
}

/* One weight file of TINY copied with element 0 of tensor `name` set to
 * NaN (the CRC kept valid where the format has one): the model is refused
 * at load with a message naming the file and the tensor. */
static void
check_nan_refused(const char *const files[], const char *victim, const char *name)
{
    char dir[64], path[256], src[256];
    struct wt_set *w;
    struct rs_error e;
    const struct wt_tensor *t;
    unsigned char *data, *copy;
    size_t size, nbytes, off;
    struct rf_model *m;
    FILE *fp;
    int rc;

    make_model_dir(dir, TINY, files);
    snprintf(src, sizeof(src), TINY "/%s", victim);
    snprintf(path, sizeof(path), "%s/%s", dir, victim);
    /* where the tensor's bytes are: found by their contents */
    ck_assert_ptr_nonnull(fp = fopen(src, "rb"));
    fseek(fp, 0, SEEK_END);
    size = (size_t)ftell(fp);
    rewind(fp);
    ck_assert_ptr_nonnull(data = malloc(size));
    ck_assert_uint_eq(fread(data, 1, size, fp), size);
    fclose(fp);
    ck_assert_int_eq(strcmp(victim, "model.safetensors") == 0
                         ? wt_open_safetensors(&w, src, &e)
                     : strcmp(victim, "pytorch_model.bin") == 0 ? wt_open_torch(&w, src, &e)
                         : wt_open_tf(&w, TINY "/bert_model.ckpt", &e), RS_OK);
    ck_assert_ptr_nonnull(t = wt_find(w, name));
    nbytes = (size_t)wt_numel(t) * 4;
    copy = memmem(data, size, t->data, nbytes);
    ck_assert_ptr_nonnull(copy);
    off = (size_t)(copy - data);
    {
        const float nan = NAN;
        memcpy(data + off, &nan, 4);
        if (t->has_crc)
            forge_crc(data + off, nbytes, 4, t->crc32c);
    }
    wt_close(w);
    ck_assert_ptr_nonnull(fp = fopen(path, "wb"));
    ck_assert_uint_eq(fwrite(data, 1, size, fp), size);
    fclose(fp);
    free(data);
    rc = rf_model_load(&m, dir, &e);
    ck_assert_msg(rc == RS_EFORMAT, "%s with a NaN: rc %d (%s)", victim, rc, rc ? e.msg : "loaded");
    ck_assert_msg(strstr(e.msg, victim) && strstr(e.msg, name) && strstr(e.msg, "NaN"),
                  "%s", e.msg);
    remove_dir(dir);
}

START_TEST(test_nan_weights_refused)
{
    static const char *const tf[] = { "bert_config.json", "vocab.txt",
        "bert_model.ckpt.index", NULL };
    static const char *const st[] = { "config.json", "vocab.txt", NULL };

    check_nan_refused(tf, "bert_model.ckpt.data-00000-of-00001",
                      "bert/encoder/layer_0/attention/output/dense/bias");
    check_nan_refused(st, "model.safetensors",
                      "roformer.encoder.layer.0.attention.output.dense.bias");
    check_nan_refused(st, "pytorch_model.bin",
                      "roformer.encoder.layer.0.attention.output.dense.bias");
}
END_TEST

START_TEST(test_nonfinite_output_is_500)
{
    /* finite weights that overflow: the final LayerNorm's gain at 3e38
     * makes hidden states infinite and vectors NaN.  rosimd must answer 500,
     * never a shorter array or an empty list with 200 */
    static const char *const files[] = { "config.json", "vocab.txt", NULL };
    static const char *const bodies[][2] = {
        { "/v1/embed", "{\"texts\":[\"你好\"]}" },
        { "/v1/embeddings", "{\"input\":\"你好\"}" },
        { "/v1/similarity", "{\"source\":\"你好\",\"targets\":[\"再见\"]}" },
        { "/v1/generate", "{\"text\":\"你好\",\"n\":2,\"max_length\":3}" },
    };
    const char *name = "roformer.encoder.layer.1.output.LayerNorm.weight";
    char dir[64], path[256], data_dir[64] = "/tmp/rosim-nan-XXXXXX";
    const char *extra[] = { "--model", dir, "--data", data_dir, NULL };
    struct wt_set *w;
    const struct wt_tensor *t;
    struct rs_error e;
    struct tu_daemon d;
    unsigned char *bytes, *at;
    size_t size;
    FILE *fp;

    make_model_dir(dir, TINY, files);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    ck_assert_ptr_nonnull(fp = fopen(TINY "/model.safetensors", "rb"));
    fseek(fp, 0, SEEK_END);
    size = (size_t)ftell(fp);
    rewind(fp);
    ck_assert_ptr_nonnull(bytes = malloc(size));
    ck_assert_uint_eq(fread(bytes, 1, size, fp), size);
    fclose(fp);
    ck_assert_int_eq(wt_open_safetensors(&w, TINY "/model.safetensors", &e), RS_OK);
    ck_assert_ptr_nonnull(t = wt_find(w, name));
    ck_assert_ptr_nonnull(at = memmem(bytes, size, t->data, (size_t)wt_numel(t) * 4));
    for (int64_t i = 0; i < wt_numel(t); i++) {
        const float big = 3e38f;
        memcpy(at + i * 4, &big, 4);
    }
    wt_close(w);
    ck_assert_ptr_nonnull(fp = fopen(path, "wb"));
    ck_assert_uint_eq(fwrite(bytes, 1, size, fp), size);
    fclose(fp);
    free(bytes);

    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct tu_response r;
        ck_assert_int_eq(tu_http(d.port, "POST", bodies[i][0], "application/json", bodies[i][1],
                                 strlen(bodies[i][1]), &r), 0);
        ck_assert_msg(r.status == 500 && strstr(r.body, "model produced non-finite values"),
                      "%s: %ld %.300s", bodies[i][0], r.status, r.body);
        tu_response_free(&r);
    }
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    remove_dir(data_dir);
    remove_dir(dir);
}
END_TEST

START_TEST(test_mismatched_config)
{
    static const char *const files[] = { "vocab.txt", "model.safetensors", NULL };
    char dir[64], path[256];
    struct rf_model *m;
    struct rs_error e;
    FILE *fp;

    make_model_dir(dir, TINY, files);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    fp = fopen(path, "w");
    fputs("{\"vocab_size\":304,\"hidden_size\":64,\"num_hidden_layers\":3,"
          "\"num_attention_heads\":4,\"intermediate_size\":256}", fp);
    fclose(fp);
    ck_assert_int_eq(rf_model_load(&m, dir, &e), RS_EFORMAT);
    ck_assert_msg(strstr(e.msg, "'bert/encoder/layer_2/attention/self/query/kernel' is missing"),
                  "%s", e.msg);
    fp = fopen(path, "w");
    fputs("{\"vocab_size\":304,\"hidden_size\":64,\"num_hidden_layers\":2,"
          "\"num_attention_heads\":4,\"intermediate_size\":128}", fp);
    fclose(fp);
    ck_assert_int_eq(rf_model_load(&m, dir, &e), RS_EFORMAT);
    ck_assert_msg(strstr(e.msg, "has shape [256,64], expected [128,64]"), "%s", e.msg);
    fp = fopen(path, "w");
    fputs("{\"vocab_size\":304,\"hidden_size\":64}", fp);
    fclose(fp);
    ck_assert_int_eq(rf_model_load(&m, dir, &e), RS_EFORMAT);
    ck_assert_msg(strstr(e.msg, "missing \"num_hidden_layers\""), "%s", e.msg);
    remove_dir(dir);
}
END_TEST

Suite *
model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("golden");
    TCase *bad = tcase_create("bad_files");

    tcase_set_timeout(tc, 120);
    tcase_set_timeout(bad, 300);
    tcase_add_test(tc, test_tiny_tf);
    tcase_add_test(tc, test_tiny_safetensors);
    tcase_add_test(tc, test_tiny_pytorch);
    tcase_add_test(tc, test_batch_equals_single);
    tcase_add_test(tc, test_cls_and_mean_poolers);
    tcase_add_test(tc, test_bert_tiny);
    tcase_add_test(tc, test_tf_raw_values);
    tcase_add_test(tc, test_formats_agree);
    tcase_add_test(tc, test_crc_first_use_threads);
    tcase_add_test(tc, test_torch_protocol4);
    tcase_add_test(bad, test_torch_hostile);
    tcase_add_test(bad, test_truncated_files);
    tcase_add_test(bad, test_corrupted_files);
    tcase_add_test(bad, test_mismatched_config);
    tcase_add_test(bad, test_nan_weights_refused);
    tcase_add_test(bad, test_nonfinite_output_is_500);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, bad);
    return s;
}
