/*
 * check_config.c: the configuration loader against tests/conf/{good,bad}.
 *
 * Each bad file starts with "# expect: TEXT"; loading it must fail with a
 * message that contains the file's path followed by TEXT (so the line
 * number is checked too).  Good files must load; defaults.conf spells out
 * the documented defaults and must equal conf_defaults(), and so must the
 * shipped conf/rosimd.conf (but for its paths, relative to the repository
 * root); relative paths in a file are taken from the file's directory.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/config.h"
#include "suites.h"

/* Check that loaded path field f is base/want, then set it to the default
 * so that the structs can be compared whole. */
static void
expect_path(char *f, const char *base, const char *want, const char *def)
{
    char joined[CONF_PATH_MAX];

    snprintf(joined, sizeof(joined), "%s/%s", base, want);
    ck_assert_str_eq(f, joined);
    memset(f, 0, CONF_PATH_MAX);
    strcpy(f, def);
}

START_TEST(test_defaults_file_equals_table)
{
    struct conf a, b;
    struct rs_error e;

    conf_defaults(&a);
    conf_defaults(&b);
    ck_assert_int_eq(conf_load(&b, "tests/conf/good/defaults.conf", &e), RS_OK);
    expect_path(b.model_dir, "tests/conf/good", a.model_dir, a.model_dir);
    expect_path(b.demo_vocab, "tests/conf/good", a.demo_vocab, a.demo_vocab);
    expect_path(b.data_dir, "tests/conf/good", a.data_dir, a.data_dir);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
    conf_defaults(&b);
    ck_assert_msg(conf_load(&b, "conf/rosimd.conf", &e) == RS_OK, "%s", e.msg);
    expect_path(b.model_dir, "conf", "../models/roformer-sim", a.model_dir);
    expect_path(b.demo_vocab, "conf", "../share/vocab.txt", a.demo_vocab);
    expect_path(b.data_dir, "conf", "../data", a.data_dir);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
}
END_TEST

/* Paths from a file are relative to its directory; from conf_set (the
 * command line), to the working directory; absolute paths stay as they are. */
START_TEST(test_relative_paths)
{
    struct conf c;
    struct rs_error e;

    conf_defaults(&c);
    ck_assert_msg(conf_load(&c, "tests/conf/good/paths.conf", &e) == RS_OK, "%s", e.msg);
    ck_assert_str_eq(c.demo_vocab, "tests/conf/good/vocab/v.txt");
    ck_assert_str_eq(c.api_key_file, "tests/conf/good/../keys");
    ck_assert_str_eq(c.model_dir, "/srv/model");
    ck_assert_str_eq(c.data_dir, "data");  /* untouched default */
    ck_assert_int_eq(conf_set(&c, "model.demo_vocab", "share/vocab.txt", &e), RS_OK);
    ck_assert_str_eq(c.demo_vocab, "share/vocab.txt");
}
END_TEST

/* A directory is not a configuration (reading it gave an empty file). */
START_TEST(test_directory)
{
    struct conf c;
    struct rs_error e;

    conf_defaults(&c);
    ck_assert_int_eq(conf_load(&c, "tests/conf", &e), RS_EIO);
    ck_assert_str_eq(e.msg, "tests/conf: is a directory");
}
END_TEST

START_TEST(test_good_files)
{
    struct conf c;
    struct rs_error e;

    conf_defaults(&c);
    ck_assert_int_eq(conf_load(&c, "tests/conf/good/empty.conf", &e), RS_OK);
    conf_defaults(&c);
    ck_assert_msg(conf_load(&c, "tests/conf/good/ipv6.conf", &e) == RS_OK, "%s", e.msg);
    ck_assert_str_eq(c.listen.host, "::1");
    ck_assert_int_eq(c.listen.port, 0);
    ck_assert_uint_eq(c.max_body_bytes, 64 * 1024);
    ck_assert_int_eq(c.fsync, COLL_FSYNC_OFF);
    ck_assert_int_eq(c.connection_timeout, 30);  /* untouched default */
}
END_TEST

START_TEST(test_bad_files)
{
    DIR *d = opendir("tests/conf/bad");
    struct dirent *ent;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((ent = readdir(d)) != NULL) {
        char path[512], line[512], want[1100];
        struct conf c;
        struct rs_error e;
        FILE *fp;

        if (strstr(ent->d_name, ".conf") == NULL)
            continue;
        snprintf(path, sizeof(path), "tests/conf/bad/%s", ent->d_name);
        fp = fopen(path, "r");
        ck_assert_ptr_nonnull(fp);
        ck_assert_ptr_nonnull(fgets(line, sizeof(line), fp));
        fclose(fp);
        ck_assert_msg(strncmp(line, "# expect: ", 10) == 0, "%s: no expect line", path);
        line[strcspn(line, "\n")] = '\0';
        snprintf(want, sizeof(want), "%s%s", path, line + 10);
        conf_defaults(&c);
        ck_assert_msg(conf_load(&c, path, &e) == RS_EINVAL, "%s loaded", path);
        ck_assert_msg(strstr(e.msg, want) != NULL, "%s: got '%s', want '%s'", path,
                      e.msg, want);
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 15);
}
END_TEST

START_TEST(test_missing_file)
{
    struct conf c;
    struct rs_error e;

    conf_defaults(&c);
    ck_assert_int_eq(conf_load(&c, "tests/conf/no-such.conf", &e), RS_EIO);
    ck_assert_ptr_nonnull(strstr(e.msg, "tests/conf/no-such.conf: cannot open"));
}
END_TEST

START_TEST(test_overrides)
{
    struct conf c;
    struct rs_error e;

    conf_defaults(&c);
    ck_assert_int_eq(conf_set(&c, "server.listen", "0.0.0.0:9000", &e), RS_OK);
    ck_assert_str_eq(c.listen.host, "0.0.0.0");
    ck_assert_int_eq(c.listen.port, 9000);
    ck_assert_int_eq(conf_set(&c, "model.threads", "300", &e), RS_EINVAL);
    ck_assert_str_eq(e.msg, "[model] threads: 300 is out of range (1..256)");
    ck_assert_int_eq(conf_set(&c, "model.colour", "red", &e), RS_EINVAL);
    ck_assert_str_eq(e.msg, "unknown option 'model.colour'");
    ck_assert_int_eq(conf_set(&c, "threads", "2", &e), RS_EINVAL);
    ck_assert_int_eq(c.compute_threads, 0);  /* untouched: auto */
}
END_TEST

Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");

    tcase_add_test(tc, test_defaults_file_equals_table);
    tcase_add_test(tc, test_good_files);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_relative_paths);
    tcase_add_test(tc, test_directory);
    tcase_add_test(tc, test_overrides);
    suite_add_tcase(s, tc);
    return s;
}
