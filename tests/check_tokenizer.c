/*
 * check_tokenizer.c: the tokenizer against goldens made by bert4keras's
 * rules in an independent implementation: 6000 tokenizations with the
 * released vocabulary (tests/fixtures/tokenizer/golden-{fortunes,fuzz}),
 * 2500 decodings (golden-decode), and the fixtures' own token lists; NULs
 * inside a text (passed with its length) are dropped as bert4keras does.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model/tokenizer.h"
#include "suites.h"

#define VOCAB "tests/fixtures/roformer-sim-char/vocab.txt"

static struct tok_vocab *
load_vocab(const char *path)
{
    struct tok_vocab *v;
    struct rs_error e;

    ck_assert_msg(tok_vocab_load(&v, path, &e) == RS_OK, "%s", e.msg);
    return v;
}

static void
check_golden_file(const char *path)
{
    struct tok_vocab *v = load_vocab(VOCAB);
    struct tok_output out = { 0 };
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int n = 0, bad = 0;

    ck_assert_ptr_nonnull(fp);
    while (getline(&line, &cap, fp) > 0) {
        json_error_t je;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &je), *ids;
        json_t *text = json_object_get(j, "text"), *maxlen = json_object_get(j, "maxlen");
        struct rs_error e;
        int ok;

        ck_assert_ptr_nonnull(j);
        ids = json_object_get(j, "ids");
        ck_assert_int_eq(tok_encode(v, json_string_value(text), json_string_length(text),
                                    json_is_integer(maxlen) ? (int)json_integer_value(maxlen) : 0,
                                    &out, &e), RS_OK);
        ok = out.n == (int)json_array_size(ids);
        for (int i = 0; ok && i < out.n; i++)
            ok = out.ids[i] == json_integer_value(json_array_get(ids, (size_t)i));
        if (!ok && bad++ < 5) {
            fprintf(stderr, "%s:%d: mismatch for %s:", path, n + 1, json_string_value(text));
            for (int i = 0; i < out.n; i++)
                fprintf(stderr, " %d", out.ids[i]);
            fprintf(stderr, "\n");
        }
        json_decref(j);
        n++;
    }
    free(line);
    fclose(fp);
    tok_output_free(&out);
    tok_vocab_free(v);
    ck_assert_int_eq(n, 3000);
    ck_assert_msg(bad == 0, "%d of %d tokenizations differ", bad, n);
}

START_TEST(test_golden_fortunes)
{
    check_golden_file("tests/fixtures/tokenizer/golden-fortunes.jsonl");
}
END_TEST

START_TEST(test_golden_fuzz)
{
    check_golden_file("tests/fixtures/tokenizer/golden-fuzz.jsonl");
}
END_TEST

START_TEST(test_golden_decode)
{
    struct tok_vocab *v = load_vocab(VOCAB);
    FILE *fp = fopen("tests/fixtures/tokenizer/golden-decode.jsonl", "r");
    char *line = NULL;
    size_t cap = 0;
    int n = 0, bad = 0;

    ck_assert_ptr_nonnull(fp);
    while (getline(&line, &cap, fp) > 0) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je), *ids = json_object_get(j, "ids");
        int32_t buf[512];
        char *got;

        ck_assert_ptr_nonnull(j);
        ck_assert_uint_le(json_array_size(ids), 512);
        for (size_t i = 0; i < json_array_size(ids); i++)
            buf[i] = (int32_t)json_integer_value(json_array_get(ids, i));
        got = tok_decode(v, buf, (int)json_array_size(ids));
        ck_assert_ptr_nonnull(got);
        if (strcmp(got, json_string_value(json_object_get(j, "text"))) != 0 && bad++ < 5)
            fprintf(stderr, "decode line %d: got '%s' want '%s'\n", n + 1, got,
                    json_string_value(json_object_get(j, "text")));
        free(got);
        json_decref(j);
        n++;
    }
    free(line);
    fclose(fp);
    tok_vocab_free(v);
    ck_assert_int_eq(n, 2500);
    ck_assert_msg(bad == 0, "%d of %d decodings differ", bad, n);
}
END_TEST

START_TEST(test_fixture_pieces)
{
    struct tok_vocab *v = load_vocab("tests/fixtures/roformer-sim-tiny/vocab.txt");
    struct tok_output out = { 0 };
    json_error_t je;
    json_t *root = json_load_file("tests/fixtures/roformer-sim-tiny/expected.json", JSON_ALLOW_NUL, &je);
    json_t *cases = json_object_get(root, "cases"), *c;
    size_t i;

    ck_assert_ptr_nonnull(root);
    json_array_foreach(cases, i, c) {
        json_t *text = json_object_get(c, "text"), *tokens = json_object_get(c, "tokens");
        struct rs_error e;
        ck_assert_int_eq(tok_encode(v, json_string_value(text), json_string_length(text),
                                    32, &out, &e), RS_OK);
        ck_assert_int_eq(out.n, (int)json_array_size(tokens));
        for (int k = 0; k < out.n; k++)
            ck_assert_str_eq(out.pieces[k], json_string_value(json_array_get(tokens, (size_t)k)));
    }
    json_decref(root);
    tok_output_free(&out);
    tok_vocab_free(v);
}
END_TEST

START_TEST(test_invalid_utf8_and_limits)
{
    static const char *const bad[] = {
        "\xc0\xaf",              /* overlong '/' */
        "\xed\xa0\x80",          /* surrogate U+D800 */
        "\xf4\x90\x80\x80",      /* above U+10FFFF */
        "abc\xe4\xbd",           /* truncated sequence */
        "\xff",
    };
    struct tok_vocab *v = load_vocab(VOCAB);
    struct tok_output out = { 0 };
    struct rs_error e;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(tok_encode(v, bad[i], strlen(bad[i]), 0, &out, &e), RS_EINVAL);
        ck_assert_str_eq(e.msg, "text is not valid UTF-8");
    }
    ck_assert_int_eq(tok_encode(v, "abc", 3, 1, &out, &e), RS_EINVAL);
    /* empty text is [CLS] [SEP]; maxlen 2 keeps exactly those */
    ck_assert_int_eq(tok_encode(v, "", 0, 0, &out, &e), RS_OK);
    ck_assert_int_eq(out.n, 2);
    ck_assert_int_eq(out.truncated, 0);
    ck_assert_int_eq(tok_encode(v, "我喜欢北京", strlen("我喜欢北京"), 2, &out, &e), RS_OK);
    ck_assert_int_eq(out.n, 2);
    ck_assert_int_eq(out.truncated, 5);
    ck_assert_str_eq(out.pieces[0], "[CLS]");
    ck_assert_str_eq(out.pieces[1], "[SEP]");
    /* special tokens cannot be injected through text */
    ck_assert_int_eq(tok_encode(v, "[MASK]", 6, 0, &out, &e), RS_OK);
    ck_assert_int_ge(out.n, 5);
    ck_assert_str_eq(out.pieces[1], "[");
    for (int i = 1; i < out.n - 1; i++)
        ck_assert_int_ne(out.ids[i], tok_specials(v).mask);
    tok_output_free(&out);
    tok_vocab_free(v);
}
END_TEST

/* bert4keras drops U+0000 (and U+FFFD, Cc, Cf) before splitting: a text
 * with embedded NULs, passed with its length, tokenizes as without them;
 * a NUL does not separate words. */
START_TEST(test_nul_dropped)
{
    static const struct { const char *with; size_t len; const char *without; } cases[] = {
        { "你\0好", 7, "你好" },
        { "hel\0lo world", 12, "hello world" },
        { "\0\0abc\0", 6, "abc" },
        { "\0", 1, "" },
        { "a\0\xef\xbf\xbd\0b", 7, "ab" },
    };
    struct tok_vocab *v = load_vocab(VOCAB);
    struct tok_output a = { 0 }, b = { 0 };
    struct rs_error e;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(tok_encode(v, cases[i].with, cases[i].len, 0, &a, &e), RS_OK);
        ck_assert_int_eq(tok_encode(v, cases[i].without, strlen(cases[i].without), 0, &b, &e),
                         RS_OK);
        ck_assert_int_eq(a.n, b.n);
        for (int k = 0; k < a.n; k++) {
            ck_assert_int_eq(a.ids[k], b.ids[k]);
            ck_assert_str_eq(a.pieces[k], b.pieces[k]);
        }
    }
    tok_output_free(&a);
    tok_output_free(&b);
    tok_vocab_free(v);
}
END_TEST

START_TEST(test_vocab_rules)
{
    /* bert4keras load_vocab: first word of a line; a repeated token takes
     * id len(dict) again, which the next new token shares */
    static const char text[] =
        "[PAD]\n[UNK] ignored\r\n[CLS]\r[SEP]\n[MASK]\na\nb\na\nc\n";
    char path[] = "/tmp/rosim-vocab-XXXXXX";
    int fd = mkstemp(path);
    struct tok_vocab *v;
    struct rs_error e;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (int)sizeof(text) - 1);
    close(fd);
    ck_assert_int_eq(tok_vocab_load(&v, path, &e), RS_OK);
    ck_assert_int_eq(tok_id(v, "[UNK]"), 1);
    ck_assert_int_eq(tok_id(v, "[SEP]"), 3);
    ck_assert_int_eq(tok_id(v, "b"), 6);
    ck_assert_int_eq(tok_id(v, "a"), 7);
    ck_assert_int_eq(tok_id(v, "c"), 7);
    ck_assert_str_eq(tok_token(v, 7), "c");
    ck_assert_int_eq(tok_vocab_size(v), 8);
    tok_vocab_free(v);

    /* a vocabulary without [MASK] is refused by name */
    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_eq(write(fd, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n", 24), 24);
    close(fd);
    ck_assert_int_eq(tok_vocab_load(&v, path, &e), RS_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "no [MASK] token"));
    unlink(path);
    ck_assert_int_eq(tok_vocab_load(&v, path, &e), RS_EIO);
}
END_TEST

Suite *
tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("bert4keras");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_golden_fortunes);
    tcase_add_test(tc, test_golden_fuzz);
    tcase_add_test(tc, test_golden_decode);
    tcase_add_test(tc, test_fixture_pieces);
    tcase_add_test(tc, test_invalid_utf8_and_limits);
    tcase_add_test(tc, test_vocab_rules);
    tcase_add_test(tc, test_nul_dropped);
    suite_add_tcase(s, tc);
    return s;
}
