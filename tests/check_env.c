/*
 * check_env.c: configuration layers and deployment defaults.
 *
 * - ROSIM_<SECTION>_<KEY> environment variables: every option can be set
 *   that way; precedence default < file < environment < command line; the
 *   errors name the variable; other ROSIM_* names are left alone.
 * - conf_print (rosimd -t): the values in effect with their origin, in a
 *   form the loader reads back to the same configuration.
 * - threads = auto: the CPU quota read from fake cgroup v1 and v2 trees,
 *   and rosimd under taskset.
 * - health probes are not logged at info level.
 * - directories rosimd cannot write in (a bind mount owned by root) stop
 *   it at startup with what to do, not at the first write.
 * - `sh scripts/setup.sh && make` runs the setup once: the script writes
 *   the stamp the Makefile checks.
 */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../server/config.h"
#include "../server/cpus.h"
#include "suites.h"
#include "testutil.h"

/* conf_print's output, malloc'd. */
static char *
printed(const struct conf *c, const struct conf_origins *o, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    conf_print(f, c, o, path);
    fclose(f);
    return buf;
}

/* Two configurations are the same when they print the same (paths are
 * printed absolute, so "data" and "$PWD/data" are the same path). */
static void
assert_same_conf(const struct conf *c, const struct conf *d)
{
    struct conf_origins none;
    char *a, *b;

    memset(&none, 0, sizeof(none));
    a = printed(c, &none, "x");
    b = printed(d, &none, "x");
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
}

/* The printed line of one key, without the padding: "key = value ; origin". */
static void
line_of(const char *text, const char *key, char *out, size_t len)
{
    char want[80];
    const char *p = text;
    size_t n;

    snprintf(want, sizeof(want), "\n%s =", key);
    p = strstr(text, want);
    ck_assert_msg(p != NULL, "no line for %s in\n%s", key, text);
    p++;
    n = strcspn(p, "\n");
    ck_assert_uint_lt(n, len);
    out[0] = '\0';
    for (size_t i = 0, j = 0; i < n; i++)   /* squeeze the alignment spaces */
        if (p[i] != ' ' || (j > 0 && out[j - 1] != ' ')) {
            out[j++] = p[i];
            out[j] = '\0';
        }
}

START_TEST(test_precedence)
{
    char *const env[] = {
        "PATH=/usr/bin",
        "ROSIM_SERVER_LISTEN=127.0.0.1:9000",   /* over the file */
        "ROSIM_LIMITS_MAX_TEXTS=7",              /* over the default */
        "ROSIM_STORAGE_FSYNC=batch",             /* under the command line */
        "ROSIMD=build/rosimd",                   /* not ours */
        "ROSIM_TEST_CACHE=/var/cache/x",         /* not a section: not ours */
        NULL,
    };
    const char *path = "tests/conf/good/ipv6.conf";
    struct conf c;
    struct conf_origins o;
    struct rs_error e;
    char line[200], *text;

    conf_defaults(&c);
    memset(&o, 0, sizeof(o));
    ck_assert_int_eq(conf_load_traced(&c, path, &o, &e), RS_OK);
    ck_assert_msg(conf_env(&c, env, &o, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(conf_set_traced(&c, "storage.fsync", "always", CONF_SRC_ARG, &o, &e),
                     RS_OK);

    ck_assert_str_eq(c.listen.host, "127.0.0.1");
    ck_assert_int_eq(c.listen.port, 9000);
    ck_assert_int_eq(c.max_texts, 7);
    ck_assert_int_eq(c.fsync, COLL_FSYNC_ALWAYS);
    ck_assert_uint_eq(c.max_body_bytes, 64 * 1024);   /* from the file */
    ck_assert_int_eq(c.connection_timeout, 30);       /* default */

    text = printed(&c, &o, path);
    line_of(text, "listen", line, sizeof(line));
    ck_assert_str_eq(line, "listen = 127.0.0.1:9000 ; environment ROSIM_SERVER_LISTEN");
    line_of(text, "max_texts", line, sizeof(line));
    ck_assert_str_eq(line, "max_texts = 7 ; environment ROSIM_LIMITS_MAX_TEXTS");
    line_of(text, "fsync", line, sizeof(line));
    ck_assert_str_eq(line, "fsync = always ; command line");
    line_of(text, "max_body_bytes", line, sizeof(line));
    ck_assert_str_eq(line, "max_body_bytes = 64k ; tests/conf/good/ipv6.conf:3");
    line_of(text, "connection_timeout", line, sizeof(line));
    ck_assert_str_eq(line, "connection_timeout = 30 ; default");
    free(text);
}
END_TEST

START_TEST(test_env_errors)
{
    char *unknown[] = { "ROSIM_MODEL_COLOUR=red", NULL };
    char *bad[] = { "ROSIM_MODEL_THREADS=0", NULL };
    char *lower[] = { "ROSIM_MODEL_threads=2", NULL };
    char *ignored[] = { "ROSIM_model_THREADS=0", "ROSIM_=1", "ROSIM_MODEL", "ROSIMX=1", NULL };
    struct conf c;
    struct rs_error e;

    conf_defaults(&c);
    ck_assert_int_eq(conf_env(&c, unknown, NULL, &e), RS_EINVAL);
    ck_assert_str_eq(e.msg, "environment: ROSIM_MODEL_COLOUR: not an option of [model]");
    ck_assert_int_eq(conf_env(&c, bad, NULL, &e), RS_EINVAL);
    ck_assert_str_eq(e.msg, "environment: ROSIM_MODEL_THREADS: [model] threads: "
                     "0 is out of range (1..256)");
    ck_assert_int_eq(conf_env(&c, lower, NULL, &e), RS_EINVAL);
    ck_assert_int_eq(conf_env(&c, ignored, NULL, &e), RS_OK);
    ck_assert_int_eq(c.compute_threads, 0);
}
END_TEST

/* Every option of the printed configuration, set through its variable,
 * is taken from the environment. */
START_TEST(test_every_option_from_env)
{
    struct conf c, d;
    struct conf_origins o, oe;
    struct rs_error e;
    char *text, *p, *line, *save = NULL;
    char section[32] = "";
    char *env[80];
    int n = 0;

    conf_defaults(&c);
    ck_assert_int_eq(conf_load(&c, "tests/conf/good/ipv6.conf", &e), RS_OK);
    memset(&o, 0, sizeof(o));
    text = printed(&c, &o, "x");
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char key[64], value[300], var[420];

        if (sscanf(line, "[%31[a-z]]", section) == 1)
            continue;
        ck_assert_int_ge(sscanf(line, "%63s = %299s", key, value), 1);
        if (strchr(value, ';') != NULL)
            value[0] = '\0';   /* an empty value: "key =   ; origin" */
        snprintf(var, sizeof(var), "ROSIM_%s_%s=%s", section, key, value);
        for (p = var; *p != '='; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        ck_assert_int_lt(n, 79);
        env[n] = strdup(var);
        ck_assert_ptr_nonnull(env[n]);
        n++;
    }
    env[n] = NULL;
    free(text);
    ck_assert_int_ge(n, 30);

    conf_defaults(&d);
    memset(&oe, 0, sizeof(oe));
    ck_assert_msg(conf_env(&d, env, &oe, &e) == RS_OK, "%s", e.msg);
    assert_same_conf(&c, &d);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(oe.source[i] == CONF_SRC_ENV, "%s not taken", env[i]);
        free(env[i]);
    }
}
END_TEST

/* What rosimd -t prints is a configuration file that loads back to the
 * same configuration. */
START_TEST(test_print_reloads)
{
    const char *tmp = "/tmp/rosim-check-env-print.conf";
    struct conf c, d;
    struct conf_origins o;
    struct rs_error e;
    char *text;
    FILE *f;

    conf_defaults(&c);
    ck_assert_int_eq(conf_load(&c, "tests/conf/good/ipv6.conf", &e), RS_OK);
    ck_assert_int_eq(conf_set(&c, "server.api_key_file", "/etc/keys", &e), RS_OK);
    ck_assert_int_eq(conf_set(&c, "model.threads", "3", &e), RS_OK);
    ck_assert_int_eq(conf_set(&c, "limits.max_text_bytes", "1000", &e), RS_OK);
    memset(&o, 0, sizeof(o));
    text = printed(&c, &o, "x");
    f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    free(text);
    conf_defaults(&d);
    ck_assert_msg(conf_load(&d, tmp, &e) == RS_OK, "%s", e.msg);
    unlink(tmp);
    assert_same_conf(&c, &d);
}
END_TEST

START_TEST(test_threads_auto_in_config)
{
    struct conf c;
    struct rs_error e;

    conf_defaults(&c);
    ck_assert_int_eq(c.compute_threads, 0);   /* the default is auto */
    ck_assert_int_eq(conf_set(&c, "model.threads", "4", &e), RS_OK);
    ck_assert_int_eq(c.compute_threads, 4);
    ck_assert_int_eq(conf_set(&c, "model.threads", "auto", &e), RS_OK);
    ck_assert_int_eq(c.compute_threads, 0);
    ck_assert_int_eq(conf_set(&c, "model.threads", "0", &e), RS_EINVAL);
}
END_TEST

/* --- fake cgroup trees ---------------------------------------------------- */

static const char *fake = "/tmp/rosim-check-env-cgroup";

static void
put(const char *rel, const char *text)
{
    char path[512], cmd[600];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", fake, rel);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
    ck_assert_int_eq(system(cmd), 0);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static int
quota(void)
{
    char cg[256], mi[256];

    snprintf(cg, sizeof(cg), "%s/cgroup", fake);
    snprintf(mi, sizeof(mi), "%s/mountinfo", fake);
    return cpus_quota(cg, mi);
}

static void
fake_reset(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fake);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_quota_v2)
{
    char mi[512];

    fake_reset();
    /* a systemd service under a slice with CPUQuota=150% */
    snprintf(mi, sizeof(mi), "22 1 0:20 / /proc rw - proc proc rw\n"
             "30 1 0:26 / %s/cg2 rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n", fake);
    put("mountinfo", mi);
    put("cgroup", "0::/rosim.slice/rosimd.service\n");
    put("cg2/cpu.max", "max 100000\n");
    put("cg2/rosim.slice/cpu.max", "150000 100000\n");
    put("cg2/rosim.slice/rosimd.service/cpu.max", "max 100000\n");
    ck_assert_int_eq(quota(), 2);
    /* a tighter limit on the service itself wins */
    put("cg2/rosim.slice/rosimd.service/cpu.max", "50000 100000\n");
    ck_assert_int_eq(quota(), 1);
    /* no limit anywhere */
    put("cg2/rosim.slice/cpu.max", "max 100000\n");
    put("cg2/rosim.slice/rosimd.service/cpu.max", "max 100000\n");
    ck_assert_int_eq(quota(), 0);
    fake_reset();
}
END_TEST

START_TEST(test_quota_v1_container)
{
    char mi[512];

    fake_reset();
    /* docker --cpus=3 on cgroup v1: the mount shows the container's cgroup */
    snprintf(mi, sizeof(mi),
             "40 31 0:30 /docker/abc %s/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
             "41 31 0:31 /docker/abc %s/memory ro - cgroup cgroup rw,memory\n", fake, fake);
    put("mountinfo", mi);
    put("cgroup", "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n");
    put("cpu,cpuacct/cpu.cfs_quota_us", "300000\n");
    put("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    put("memory/cpu.cfs_quota_us", "100000\n");   /* not the cpu hierarchy */
    put("memory/cpu.cfs_period_us", "100000\n");
    ck_assert_int_eq(quota(), 3);
    put("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    ck_assert_int_eq(quota(), 0);
    /* a mount that does not show our cgroup is not read */
    put("cpu,cpuacct/cpu.cfs_quota_us", "100000\n");
    put("cgroup", "4:cpu,cpuacct:/elsewhere\n");
    ck_assert_int_eq(quota(), 0);
    fake_reset();
}
END_TEST

START_TEST(test_available)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus_available(256);

    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, online);
    ck_assert_int_eq(cpus_available(1), 1);
}
END_TEST

/* rosimd -t under taskset: threads = auto follows the affinity mask. */
START_TEST(test_taskset)
{
    char *argv[] = { "/usr/bin/taskset", "-c", "0", (char *)tu_program("ROSIMD", "build/rosimd"),
                     "-t", "-c", "conf/rosimd.conf", "--model", "tests/fixtures/roformer-sim-tiny",
                     NULL };
    char *out = NULL, line[200];

    if (access(argv[0], X_OK) != 0) {
        fprintf(stderr, "check_env: no taskset, skipping the affinity check\n");
        return;
    }
    ck_assert_int_eq(tu_run(argv, NULL, &out, NULL), 0);
    line_of(out, "threads", line, sizeof(line));
    ck_assert_str_eq(line, "threads = 1 ; auto: the CPUs available to rosimd");
    free(out);
}
END_TEST

/* The daemon reads the environment; the command line wins over it. */
START_TEST(test_daemon_env)
{
    char *argv[] = { "/usr/bin/env", "ROSIM_MODEL_THREADS=3", "ROSIM_LIMITS_MAX_K=9",
                     (char *)tu_program("ROSIMD", "build/rosimd"), "-t",
                     "-c", "conf/rosimd.conf", "-o", "limits.max_k=8", "--model",
                     "tests/fixtures/roformer-sim-tiny", NULL };
    char *out = NULL, *err = NULL, line[200], want[200];
    FILE *conf = fopen("conf/rosimd.conf", "r");
    int at = 0;

    /* the line of conf/rosimd.conf that sets max_n */
    ck_assert_ptr_nonnull(conf);
    for (int n = 1; at == 0 && fgets(line, sizeof(line), conf) != NULL; n++)
        if (strncmp(line, "max_n ", 6) == 0 || strncmp(line, "max_n=", 6) == 0)
            at = n;
    fclose(conf);
    ck_assert_int_gt(at, 0);
    snprintf(want, sizeof(want), "max_n = 256 ; conf/rosimd.conf:%d", at);

    ck_assert_int_eq(tu_run(argv, NULL, &out, NULL), 0);
    line_of(out, "threads", line, sizeof(line));
    ck_assert_str_eq(line, "threads = 3 ; environment ROSIM_MODEL_THREADS");
    line_of(out, "max_k", line, sizeof(line));
    ck_assert_str_eq(line, "max_k = 8 ; command line");
    line_of(out, "max_n", line, sizeof(line));
    ck_assert_str_eq(line, want);
    free(out);
    argv[1] = "ROSIM_SERVER_LISTEN=nowhere";
    ck_assert_int_eq(tu_run(argv, NULL, NULL, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "rosimd: environment: ROSIM_SERVER_LISTEN: "
                                      "[server] listen: 'nowhere' is not an address"));
    free(err);
}
END_TEST

/* Successful health probes are debug lines; other requests are info. */
static int
probe_lines(const char *level, int *health, int *info)
{
    const char *const extra[] = { "--model", "tests/fixtures/roformer-sim-tiny", "--data",
                                  "/tmp/rosim-check-env-data", "-o", level, NULL };
    struct tu_daemon d;
    struct tu_response r;
    char buf[8192];
    size_t n;
    FILE *f;

    if (tu_daemon_start(&d, extra) != 0)
        return -1;
    ck_assert_int_eq(tu_http(d.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(d.port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http(d.port, "GET", "/v1/info", NULL, NULL, 0, &r), 0);
    tu_response_free(&r);
    /* rosimd logs a request once it is answered: its "stopped" line comes
     * after all of them */
    kill(d.pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        f = fopen(d.log_path, "r");
        ck_assert_ptr_nonnull(f);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (strstr(buf, "stopped") != NULL)
            break;
        usleep(50000);
    }
    *health = (strstr(buf, "GET /healthz") != NULL) + (strstr(buf, "GET /readyz") != NULL);
    *info = strstr(buf, "INFO req=") != NULL && strstr(buf, "GET /v1/info") != NULL;
    return tu_daemon_wait(&d);
}

START_TEST(test_probes_not_logged_at_info)
{
    int health, info;

    ck_assert_int_eq(probe_lines("server.log_level=info", &health, &info), 0);
    ck_assert_int_eq(health, 0);
    ck_assert_int_eq(info, 1);
    ck_assert_int_eq(probe_lines("server.log_level=debug", &health, &info), 0);
    ck_assert_int_eq(health, 2);
    ck_assert_int_eq(system("rm -rf /tmp/rosim-check-env-data"), 0);
}
END_TEST

/* Run rosimd as nobody (when we are root) with a root-owned directory. */
START_TEST(test_unwritable_dirs)
{
    char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                     (char *)tu_program("ROSIMD", "build/rosimd"), "-c", "conf/rosimd.conf",
                     "-o", "server.listen=127.0.0.1:0", "-o", "model.demo_if_missing=yes",
                     "--model", NULL, "--data",
                     "/tmp/rosim-check-env-ro/data", NULL };
    char *const *run = geteuid() == 0 ? argv : argv + 4;
    char *err = NULL;

    ck_assert_int_eq(system("rm -rf /tmp/rosim-check-env-ro && "
                            "mkdir -m 0755 -p /tmp/rosim-check-env-ro/data"), 0);
    if (geteuid() == 0 && access(argv[0], X_OK) != 0) {
        fprintf(stderr, "check_env: no setpriv, skipping the unwritable directories\n");
        return;
    }
    /* the demo model cannot be made in a directory we cannot write */
    argv[12] = "/tmp/rosim-check-env-ro/models/roformer-sim";
    ck_assert_int_eq(tu_run(run, NULL, NULL, &err), 1);
    ck_assert_msg(strstr(err, "ERROR cannot create the demo model: /tmp/rosim-check-env-ro "
                              "is not writable by uid ") != NULL, "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "e.g. chown -R "));
    free(err);
    /* nor the collections: refused before ready */
    argv[12] = "tests/fixtures/roformer-sim-tiny";
    ck_assert_int_eq(tu_run(run, NULL, NULL, &err), 1);
    ck_assert_msg(strstr(err, "ERROR [storage] data: /tmp/rosim-check-env-ro/data is not "
                              "writable by uid ") != NULL, "%s", err);
    ck_assert_ptr_null(strstr(err, "ready"));
    free(err);
    ck_assert_int_eq(system("rm -rf /tmp/rosim-check-env-ro"), 0);
}
END_TEST

/* In a copy of the repository's setup inputs (with the FAISS library and
 * the npm packages already there, so that setup only checks the Debian
 * packages), make finds the setup done after setup.sh ran. */
START_TEST(test_setup_stamp)
{
    const char *t = "/tmp/rosim-check-env-setup";
    char cwd[512], cmd[2048];

    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    snprintf(cmd, sizeof(cmd),
             "rm -rf %s && mkdir -p %s/scripts %s/build/faiss %s/tests/openai/node_modules/openai"
             " %s/tests/web/node_modules/puppeteer-core"
             " && cp scripts/setup.sh %s/scripts/ && cp tests/openai/package-lock.json "
             "%s/tests/openai/ && cp tests/web/package-lock.json %s/tests/web/"
             " && touch %s/build/faiss/libfaiss_c.a "
             "%s/tests/openai/node_modules/.package-lock.json"
             " %s/tests/web/node_modules/.package-lock.json", t, t, t, t, t, t, t, t, t, t, t);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "make -s -q -C %s -f %s/Makefile build/.setup-done", t, cwd);
    ck_assert_int_ne(system(cmd), 0);   /* not done yet */
    snprintf(cmd, sizeof(cmd), "sh %s/scripts/setup.sh >/dev/null 2>&1", t);
    ck_assert_msg(system(cmd) == 0, "scripts/setup.sh failed (are its packages installed?)");
    snprintf(cmd, sizeof(cmd), "make -s -q -C %s -f %s/Makefile build/.setup-done", t, cwd);
    ck_assert_msg(system(cmd) == 0, "make would run scripts/setup.sh again");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A file's first len - 1 bytes, NULs as newlines, with a newline before:
 * /proc/PID/environ as lines "\nNAME=value". */
static void
read_lines(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n;

    ck_assert_ptr_nonnull(f);
    buf[0] = '\n';
    n = fread(buf + 1, 1, len - 2, f);
    fclose(f);
    buf[n + 1] = '\0';
    for (size_t i = 1; i <= n; i++)
        buf[i] = buf[i] == '\0' ? '\n' : buf[i];
}

/* rosimd started with name=value in its environment and [model] threads =
 * 2: its /v1/embed vector of the first golden case is the golden one
 * (1e-4), it runs without name and with passive waiting, and says so. */
static void
embed_with_env(const char *name, const char *value)
{
    const char *const extra[] = { "--model", "tests/fixtures/roformer-sim-tiny", "--data",
                                  "/tmp/rosim-check-env-omp", "-o", "model.threads=2", NULL };
    json_error_t je;
    json_t *gold = json_load_file("tests/fixtures/roformer-sim-tiny/expected.json",
                                  JSON_ALLOW_NUL, &je);
    json_t *c0 = json_array_get(json_object_get(gold, "cases"), 0), *reply, *got, *want;
    struct tu_daemon d;
    struct tu_response r;
    char body[256], path[64], env[8192], log[8192], set[64];
    double worst = 0;

    ck_assert_msg(c0 != NULL, "expected.json: %s", je.text);
    snprintf(body, sizeof(body), "{\"texts\":[\"%s\"]}",
             json_string_value(json_object_get(c0, "text")));
    setenv(name, value, 1);
    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    unsetenv(name);
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)d.pid);
    read_lines(path, env, sizeof(env));
    snprintf(set, sizeof(set), "\n%s=", name);
    ck_assert_msg(strstr(env, set) == NULL, "rosimd runs with %s set", name);
    ck_assert_msg(strstr(env, "\nOMP_WAIT_POLICY=passive\n") != NULL, "no passive waiting");
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/embed", "application/json", body,
                             strlen(body), &r), 0);
    ck_assert_int_eq(r.status, 200);
    reply = json_loads(r.body, 0, &je);
    got = json_array_get(json_object_get(reply, "embeddings"), 0);
    want = json_object_get(c0, "embedding");
    ck_assert_uint_eq(json_array_size(got), json_array_size(want));
    for (size_t i = 0; i < json_array_size(want); i++) {
        double dv = fabs(json_number_value(json_array_get(got, i)) -
                         json_number_value(json_array_get(want, i)));
        worst = dv > worst ? dv : worst;
    }
    ck_assert_msg(worst < 1e-4, "%s=%s: the vector is off by %g", name, value, worst);
    read_lines(d.log_path, log, sizeof(log));
    snprintf(set, sizeof(set), "ignoring %s=%s from the environment", name, value);
    ck_assert_msg(strstr(log, set) != NULL, "no warning: %s", log);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    tu_response_free(&r);
    json_decref(reply);
    json_decref(gold);
    ck_assert_int_eq(system("rm -rf /tmp/rosim-check-env-omp"), 0);
}

/* OMP_THREAD_LIMIT and OMP_DYNAMIC let OpenMP give oneDNN fewer threads
 * than it planned for: rosimd runs without them, and waits passively. */
START_TEST(test_omp_env_cannot_shrink_teams)
{
    embed_with_env("OMP_THREAD_LIMIT", "1");
    embed_with_env("OMP_DYNAMIC", "true");
}
END_TEST

Suite *
env_suite(void)
{
    Suite *s = suite_create("env");
    TCase *tc = tcase_create("layers");
    TCase *cpu = tcase_create("cpus");

    tcase_add_test(tc, test_precedence);
    tcase_add_test(tc, test_env_errors);
    tcase_add_test(tc, test_every_option_from_env);
    tcase_add_test(tc, test_print_reloads);
    tcase_add_test(tc, test_daemon_env);
    tcase_add_test(tc, test_probes_not_logged_at_info);
    tcase_add_test(tc, test_unwritable_dirs);
    tcase_add_test(tc, test_setup_stamp);
    tcase_add_test(tc, test_omp_env_cannot_shrink_teams);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tcase_add_test(cpu, test_threads_auto_in_config);
    tcase_add_test(cpu, test_quota_v2);
    tcase_add_test(cpu, test_quota_v1_container);
    tcase_add_test(cpu, test_available);
    tcase_add_test(cpu, test_taskset);
    suite_add_tcase(s, cpu);
    return s;
}
