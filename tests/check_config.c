/*
 * check_config.c: the configuration loader against tests/conf/{good,bad}.
 *
 * Each bad file starts with "# expect: TEXT"; loading it must fail with a
 * message that contains the file's path followed by TEXT (so the line
 * number is checked too).  Good files must load; defaults.conf spells out
 * the documented defaults and must equal conf_defaults(); the shipped
 * conf/rosimd.conf must load too.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/config.h"
#include "suites.h"

START_TEST(test_defaults_file_equals_table)
{
    struct conf a, b;
    struct rs_error e;

    conf_defaults(&a);
    conf_defaults(&b);
    ck_assert_int_eq(conf_load(&b, "tests/conf/good/defaults.conf", &e), RS_OK);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
    ck_assert_int_eq(conf_load(&b, "conf/rosimd.conf", &e), RS_OK);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
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
    ck_assert_int_eq(c.fsync, CONF_FSYNC_OFF);
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
    tcase_add_test(tc, test_overrides);
    suite_add_tcase(s, tc);
    return s;
}
