/*
 * check_lifecycle.c: rosimd's life as a process, checked from outside:
 * the API key file, the explicit demo model, log priorities under the
 * journal, the systemd watchdog (keep-alives only while the request path
 * makes progress, no delay on stop, a full listener is not a hung one),
 * seedless generation across restarts, a stop signal taken by any thread,
 * other signals ignored, slow clients cut at read_timeout, and a stop that
 * does not wait for requests still arriving.
 *
 * The watchdog tests play systemd: a datagram socket named by
 * NOTIFY_SOCKET receives what sd_notify() sends, and WATCHDOG_USEC sets the
 * interval.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "../model/demo.h"
#include "../server/log.h"  /* with <syslog.h>: the level names must not collide */
#include "suites.h"
#include "testutil.h"

#define TINY "tests/fixtures/roformer-sim-tiny"

static char *
rosimd(void)
{
    return (char *)tu_program("ROSIMD", "build/rosimd");
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void
rm_rf(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
}

/* `rosimd -t` with the API key file path; its status, stderr in *err. */
static int
config_test(const char *path, char **err)
{
    char opt[128];
    char *argv[] = { rosimd(), "-t", "-c", "conf/rosimd.conf", "--model", TINY, "-o", opt,
                     NULL };

    snprintf(opt, sizeof(opt), "server.api_key_file=%s", path);
    return tu_run(argv, NULL, NULL, err);
}

/* --- the API key file ----------------------------------------------------- */

/* A 1024-byte line was read as two keys, its last byte alone making
 * "Bearer z" valid; whole lines are keys now, and over-long or blank ones
 * are refused at load, naming the line. */
START_TEST(test_key_file_lines)
{
    char dir[] = "/tmp/rosim-keys-XXXXXX", path[64], text[2048], key[513], *err = NULL;
    char opt[128];
    const char *extra[] = { "--model", TINY, "--data", dir, "-o", opt, NULL };
    struct tu_daemon d;
    struct tu_response r;
    char auth[600];

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/keys", dir);
    snprintf(opt, sizeof(opt), "server.api_key_file=%s", path);

    memset(text, 'a', 1023);
    strcpy(text + 1023, "z\n");
    write_file(path, text);
    ck_assert_int_eq(config_test(path, &err), 1);
    ck_assert_msg(strstr(err, ":1: key longer than 512 bytes") != NULL, "%s", err);
    free(err);
    ck_assert_int_ne(tu_daemon_start(&d, extra), 0);  /* refuses to start */

    write_file(path, "good-key\n \t \n");
    ck_assert_int_eq(config_test(path, &err), 1);
    ck_assert_msg(strstr(err, ":2: a line of only spaces") != NULL, "%s", err);
    free(err);

    write_file(path, "key with-space\n");
    ck_assert_int_eq(config_test(path, &err), 1);
    ck_assert_msg(strstr(err, ":1: a key may hold only visible ASCII") != NULL, "%s", err);
    free(err);

    /* the longest key allowed, a comment, an empty line, a CRLF line */
    memset(key, 'k', 512);
    key[512] = '\0';
    snprintf(text, sizeof(text), "# keys\n%s\n\n  other\r\n  # indented comment\n", key);
    write_file(path, text);
    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    ck_assert_int_eq(tu_http_with(d.port, "GET", "/v1/info", NULL, NULL, 0, auth, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http_with(d.port, "GET", "/v1/info", NULL, NULL, 0,
                                  "Authorization: Bearer other", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tu_response_free(&r);
    ck_assert_int_eq(tu_http_with(d.port, "GET", "/v1/info", NULL, NULL, 0,
                                  "Authorization: Bearer z", &r), 0);
    ck_assert_int_eq(r.status, 401);
    tu_response_free(&r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    rm_rf(dir);
}
END_TEST

/* --- the demo model is a choice ------------------------------------------- */

/* A model directory that does not exist used to become a random demo
 * model; now it stops rosimd, and `rosimd -t` says so, unless the demo is
 * asked for. */
START_TEST(test_demo_is_explicit)
{
    char dir[] = "/tmp/rosim-nodemo-XXXXXX", model[64], *err = NULL;
    char *check[] = { rosimd(), "-t", "-c", "conf/rosimd.conf", "--model", model, NULL, NULL,
                      NULL };
    char *run[] = { rosimd(), "-c", "conf/rosimd.conf", "--listen", "127.0.0.1:0", "--model",
                    model, "--data", dir, NULL };
    struct stat st;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(model, sizeof(model), "%s/modle", dir);  /* a typo */
    ck_assert_int_eq(tu_run(check, NULL, NULL, &err), 1);
    ck_assert_msg(strstr(err, "[model] dir: ") != NULL && strstr(err, "/modle: No such file")
                  != NULL, "%s", err);
    free(err);
    ck_assert_int_eq(tu_run(run, NULL, NULL, &err), 1);
    ck_assert_msg(strstr(err, "/modle: No such file") != NULL, "%s", err);
    free(err);
    ck_assert_int_ne(stat(model, &st), 0);  /* nothing was written there */

    check[6] = "-o";
    check[7] = "model.demo_if_missing=yes";
    ck_assert_int_eq(tu_run(check, NULL, NULL, NULL), 0);
    rm_rf(dir);
}
END_TEST

/* --- log priorities under the journal ------------------------------------- */

/* Run rosimd on an empty model directory (it logs, then fails to load)
 * with stderr a file; JOURNAL_STREAM names that file when journal is 1.
 * The file's text. */
static char *
failed_start_log(int journal)
{
    char dir[] = "/tmp/rosim-journal-XXXXXX", log[80], model[80], env[64];
    struct stat st;
    pid_t pid;
    int fd, status;
    FILE *f;
    char *text = calloc(1, 65536);

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(log, sizeof(log), "%s/log", dir);
    snprintf(model, sizeof(model), "%s/model", dir);
    ck_assert_int_eq(mkdir(model, 0700), 0);
    fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    snprintf(env, sizeof(env), "%ju:%ju", (uintmax_t)st.st_dev,
             (uintmax_t)st.st_ino + (journal ? 0 : 1));
    pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        setenv("JOURNAL_STREAM", env, 1);
        execl(rosimd(), rosimd(), "-c", "conf/rosimd.conf", "--listen", "127.0.0.1:0",
              "--model", model, "--data", dir, (char *)NULL);
        _exit(127);
    }
    close(fd);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_gt(fread(text, 1, 65535, f), 0);
    fclose(f);
    rm_rf(dir);
    return text;
}

/* Under journald every line had priority 6: now each line starts with its
 * syslog priority and leaves the timestamp and pid to the journal. */
START_TEST(test_journal_priorities)
{
    char want[64], *text = failed_start_log(1);

    snprintf(want, sizeof(want), "<%d>INFO rosimd ", LOG_INFO);
    ck_assert_msg(strncmp(text, want, strlen(want)) == 0, "%s", text);
    snprintf(want, sizeof(want), "\n<%d>ERROR cannot load the model", LOG_ERR);
    ck_assert_msg(strstr(text, want) != NULL, "%s", text);
    ck_assert_msg(strstr(text, "rosimd[") == NULL, "%s", text);
    for (char *line = text; *line != '\0'; line = strchr(line, '\n') + 1)
        ck_assert_msg(line[0] == '<' && line[2] == '>', "%s", line);
    free(text);

    text = failed_start_log(0);  /* stderr is not the journal */
    ck_assert_msg(strstr(text, "Z rosimd[") != NULL && text[0] != '<', "%s", text);
    ck_assert_int_eq(log_level_parse("warn"), RS_LOG_WARN);
    free(text);
}
END_TEST

/* --- the watchdog ---------------------------------------------------------- */

struct notify {
    int fd;
    char path[108];
};

static void
notify_open(struct notify *n, const char *usec)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };

    snprintf(n->path, sizeof(n->path), "/tmp/rosim-notify-%d.sock", (int)getpid());
    unlink(n->path);
    n->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(n->fd, 0);
    strcpy(a.sun_path, n->path);
    ck_assert_int_eq(bind(n->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setenv("NOTIFY_SOCKET", n->path, 1);
    setenv("WATCHDOG_USEC", usec, 1);
    unsetenv("WATCHDOG_PID");
}

static void
notify_close(struct notify *n)
{
    close(n->fd);
    unlink(n->path);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
}

/* WATCHDOG=1 datagrams received in the next seconds s. */
static int
keepalives(struct notify *n, double s)
{
    double until = tu_now() + s;
    int count = 0;

    for (double now = tu_now(); now < until; now = tu_now()) {
        struct pollfd p = { n->fd, POLLIN, 0 };
        char buf[512];
        ssize_t got;
        if (poll(&p, 1, (int)((until - now) * 1000) + 1) <= 0)
            continue;
        got = recv(n->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (got <= 0)
            continue;
        buf[got] = '\0';
        count += strstr(buf, "WATCHDOG=1") != NULL;
    }
    return count;
}

/* POST body to path on a connection left open; the socket. */
static int
post_and_leave(int port, const char *path, const char *body, size_t len)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    char head[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0), n;

    ck_assert_int_ge(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\n\r\n", path, len);
    ck_assert_int_eq(write(fd, head, (size_t)n), n);
    ck_assert_int_eq(write(fd, body, len), (ssize_t)len);
    return fd;
}

/* The keep-alive thread slept half the interval without a way to wake it:
 * with WatchdogSec=20 every stop and failed start took up to 10 s more. */
START_TEST(test_watchdog_stop_is_immediate)
{
    char dir[] = "/tmp/rosim-dog-XXXXXX", model[64];
    const char *extra[] = { "--model", TINY, "--data", dir, NULL };
    char *bad[] = { rosimd(), "-c", "conf/rosimd.conf", "--listen", "127.0.0.1:0", "--model",
                    model, "--data", dir, NULL };
    struct notify n;
    struct tu_daemon d;
    double t0;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    notify_open(&n, "20000000");
    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    ck_assert_int_ge(keepalives(&n, 0.5), 1);
    t0 = tu_now();
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_msg(tu_now() - t0 < 3.0, "stop took %.1f s", tu_now() - t0);

    snprintf(model, sizeof(model), "%s/empty-model", dir);  /* exists, fails to load */
    ck_assert_int_eq(mkdir(model, 0700), 0);
    t0 = tu_now();
    ck_assert_int_eq(tu_run(bad, NULL, NULL, NULL), 1);
    ck_assert_msg(tu_now() - t0 < 3.0, "failed start took %.1f s", tu_now() - t0);
    notify_close(&n);
    rm_rf(dir);
}
END_TEST

/* The keep-alives came from a timer whatever the request path did; now an
 * encoder busy with the same batch for a whole check interval gets none
 * (systemd would restart it), while an idle daemon gets them steadily. */
START_TEST(test_watchdog_silent_when_batcher_stuck)
{
    char dir[] = "/tmp/rosim-stuck-XXXXXX", model[64], data[64];
    const char *extra[] = { "--model", model, "--data", data, "-o", "model.max_length=512",
                            "-o", "model.threads=1", NULL };
    static char body[64 * 1024];
    struct rs_error e;
    struct notify n;
    struct tu_daemon d;
    size_t len = 0;
    struct pollfd p;
    int fd, quiet;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(model, sizeof(model), "%s/model", dir);
    snprintf(data, sizeof(data), "%s/data", dir);
    /* the demo model's size: a 510-token text takes a good fraction of a second */
    ck_assert_int_eq(rf_demo_write(model, "share/vocab.txt", 7, &e), RS_OK);
    notify_open(&n, "600000");
    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    ck_assert_int_ge(keepalives(&n, 1.0), 2);   /* idle: every 0.3 s */

    len += (size_t)snprintf(body, sizeof(body), "{\"texts\":[");
    for (int t = 0; t < 24; t++) {
        len += (size_t)snprintf(body + len, sizeof(body) - len, "%s\"", t ? "," : "");
        for (int i = 0; i < 510; i++)
            len += (size_t)snprintf(body + len, sizeof(body) - len, "天");
        len += (size_t)snprintf(body + len, sizeof(body) - len, "\"");
    }
    len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
    fd = post_and_leave(d.port, "/v1/embed", body, len);
    keepalives(&n, 1.0);                       /* the batch has been running a while */
    quiet = keepalives(&n, 1.5) == 0;
    p = (struct pollfd){ fd, POLLIN, 0 };
    ck_assert_msg(poll(&p, 1, 0) == 0, "the batch finished too soon to tell");
    ck_assert_msg(quiet, "keep-alives while the batcher made no progress");
    kill(d.pid, SIGKILL);
    tu_daemon_wait(&d);
    close(fd);
    notify_close(&n);
    rm_rf(dir);
}
END_TEST

/* --- seedless generation --------------------------------------------------- */

static char *
generate_once(const char *dir)
{
    const char *extra[] = { "--model", TINY, "--data", dir, NULL };
    static const char req[] = "{\"text\":\"你好吗\",\"n\":8,\"k\":8,\"max_length\":12}";
    struct tu_daemon d;
    struct tu_response r;
    char *body;

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    ck_assert_int_eq(tu_http(d.port, "POST", "/v1/generate", "application/json", req,
                             strlen(req), &r), 0);
    ck_assert_int_eq(r.status, 200);
    body = r.body;
    r.body = NULL;
    tu_response_free(&r);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    return body;
}

/* random() was never seeded: the first seedless generation of every run
 * was the same. */
START_TEST(test_seedless_generation_differs_across_runs)
{
    char dir[] = "/tmp/rosim-seed-XXXXXX";
    char *a, *b;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    a = generate_once(dir);
    b = generate_once(dir);
    ck_assert_msg(strcmp(a, b) != 0, "two runs generated %s", a);
    free(a);
    free(b);
    rm_rf(dir);
}
END_TEST

/* A thread that does not block SIGTERM (OpenBLAS starts its threads before
 * main) took a SIGTERM meant for the process and the default action killed
 * rosimd: a stop right after "ready" was sometimes a kill.  Such a thread
 * is sent SIGTERM directly; rosimd must still stop cleanly. */
START_TEST(test_sigterm_to_any_thread_stops_cleanly)
{
    static const char *const extra[] = { "--model", TINY, "-o", "model.threads=2", NULL };
    struct tu_daemon d;
    char path[64], line[256];
    pid_t victim = 0;
    DIR *tasks;
    struct dirent *t;

    /* OpenBLAS starts its threads before main; make sure it starts one
     * whatever the environment of the suite says (OMP_NUM_THREADS=1) */
    setenv("OPENBLAS_NUM_THREADS", "2", 1);
    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    unsetenv("OPENBLAS_NUM_THREADS");
    snprintf(path, sizeof(path), "/proc/%d/task", (int)d.pid);
    tasks = opendir(path);
    ck_assert_ptr_nonnull(tasks);
    while (victim == 0 && (t = readdir(tasks)) != NULL) {
        char status[128];
        FILE *f;
        /* not the main thread: in sigwait() it shows SIGTERM unblocked */
        if (t->d_name[0] == '.' || atoi(t->d_name) == (int)d.pid)
            continue;
        snprintf(status, sizeof(status), "/proc/%d/task/%.20s/status", (int)d.pid, t->d_name);
        if ((f = fopen(status, "r")) == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            unsigned long long blocked;
            if (sscanf(line, "SigBlk: %llx", &blocked) == 1 &&
                !(blocked & 1ULL << (SIGTERM - 1)))
                victim = (pid_t)atoi(t->d_name);
        }
        fclose(f);
    }
    closedir(tasks);
    ck_assert_msg(victim != 0, "every thread blocks SIGTERM: nothing to test");
    ck_assert_int_eq(syscall(SYS_tgkill, d.pid, victim, SIGTERM), 0);
    ck_assert_int_eq(tu_daemon_wait(&d), 0);
}
END_TEST

/* --- slow clients, stop and signals ---------------------------------------- */

/* The number after name in /metrics ("rosim_x{a=\"b\"}"), -1 when absent. */
static double
metric(int port, const char *name)
{
    struct tu_response r;
    double v = -1;
    const char *at;

    ck_assert_int_eq(tu_http(port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    if ((at = strstr(r.body, name)) != NULL)
        v = atof(at + strlen(name));
    tu_response_free(&r);
    return v;
}

/* libmicrohttpd's timeout is an idle one: a client sending a header line
 * every half second held its connection (and a thread) for ever, so a few
 * addresses could take every slot.  A request must now arrive whole within
 * read_timeout: headers or body trickled get 408 and the connection ends. */
START_TEST(test_slow_request_gets_408)
{
    static const char *const extra[] = { "--model", TINY, "-o", "server.read_timeout=2", NULL };
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n";
    static const char post[] = "POST /v1/embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                               "application/json\r\nContent-Length: 1000\r\n\r\n{\"texts\":[\"";
    struct tu_daemon d;
    char *reply;
    double t0;

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    t0 = tu_now();
    ck_assert_int_eq(tu_raw_paced(d.port, head, sizeof(head) - 1, "X-Slow: 1\r\n", 11, 0.4, 10,
                                  &reply, NULL), 0);
    ck_assert_msg(tu_now() - t0 < 4.5, "closed after %.1f s", tu_now() - t0);
    ck_assert_msg(strncmp(reply, "HTTP/1.1 408", 12) == 0, "reply: %.80s", reply);
    ck_assert_ptr_nonnull(strstr(reply, "\"request_timeout\""));
    free(reply);

    t0 = tu_now();   /* the body trickled, a byte at a time */
    ck_assert_int_eq(tu_raw_paced(d.port, post, sizeof(post) - 1, "a", 1, 0.3, 10, &reply, NULL),
                     0);
    ck_assert_msg(tu_now() - t0 < 4.5, "closed after %.1f s", tu_now() - t0);
    ck_assert_msg(strncmp(reply, "HTTP/1.1 408", 12) == 0, "reply: %.80s", reply);
    free(reply);
    ck_assert_double_eq(metric(d.port, "rosim_rejected_total{reason=\"read_timeout\"} "), 2);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* A client that had sent half its headers counted as a request in flight:
 * every stop waited the whole shutdown_timeout for it.  Now a stop does not
 * wait for requests still arriving; one whose body is arriving gets 503. */
START_TEST(test_stop_does_not_wait_for_arriving_requests)
{
    static const char *const extra[] = { "--model", TINY, "-o", "server.shutdown_timeout=10",
                                         NULL };
    static const char half[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    static const char body[] = "POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Type: "
                               "application/json\r\nContent-Length: 100\r\n\r\n{\"te";
    struct sockaddr_in a = { .sin_family = AF_INET };
    struct tu_daemon d;
    char reply[256] = "";
    int fd[2];
    double t0;
    ssize_t n;

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    a.sin_port = htons((uint16_t)d.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 2; i++) {
        const char *what = i == 0 ? half : body;
        fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_eq(connect(fd[i], (struct sockaddr *)&a, sizeof(a)), 0);
        ck_assert_int_eq(write(fd[i], what, strlen(what)), (ssize_t)strlen(what));
    }
    usleep(300 * 1000);
    t0 = tu_now();
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    ck_assert_msg(tu_now() - t0 < 3.0, "stop took %.1f s", tu_now() - t0);
    n = read(fd[1], reply, sizeof(reply) - 1);
    ck_assert_int_gt(n, 0);
    ck_assert_msg(strncmp(reply, "HTTP/1.1 503", 12) == 0, "reply: %.80s", reply);
    close(fd[0]);
    close(fd[1]);
}
END_TEST

/* SIGHUP, SIGUSR1 and SIGUSR2 had their default action: a log rotation
 * script's HUP killed rosimd mid-request.  They are logged and ignored. */
START_TEST(test_hup_and_usr_signals_are_ignored)
{
    static const char *const extra[] = { "--model", TINY, NULL };
    static const int sigs[] = { SIGHUP, SIGUSR1, SIGUSR2 };
    struct tu_daemon d;
    struct tu_response r;
    char *log = NULL, *argv[] = { "/bin/cat", NULL, NULL };

    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(kill(d.pid, sigs[i]), 0);
        usleep(100 * 1000);
        ck_assert_int_eq(tu_http(d.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
        ck_assert_int_eq(r.status, 200);
        tu_response_free(&r);
    }
    argv[1] = d.log_path;
    ck_assert_int_eq(tu_run(argv, NULL, &log, NULL), 0);
    ck_assert_ptr_nonnull(strstr(log, "SIGHUP ignored"));
    ck_assert_ptr_nonnull(strstr(log, "SIGUSR2 ignored"));
    free(log);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
}
END_TEST

/* With every connection slot taken by clients, the watchdog's probe could
 * not get in and keep-alives stopped: systemd restarted a daemon that was
 * only busy (or flooded), which helps nobody.  A full listener counts as
 * alive; the batcher is still checked. */
START_TEST(test_watchdog_alive_when_slots_full)
{
    static const char *const extra[] = { "--model", TINY, "-o", "server.max_connections=3",
                                         "-o", "server.per_ip_connections=0",
                                         "-o", "server.read_timeout=60", NULL };
    struct sockaddr_in a = { .sin_family = AF_INET };
    struct notify n;
    struct tu_daemon d;
    int fd[3];

    notify_open(&n, "2000000");
    ck_assert_int_eq(tu_daemon_start(&d, extra), 0);
    a.sin_port = htons((uint16_t)d.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 3; i++) {
        fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_eq(connect(fd[i], (struct sockaddr *)&a, sizeof(a)), 0);
    }
    keepalives(&n, 1.5);   /* the check under way when the slots filled */
    ck_assert_int_ge(keepalives(&n, 3.0), 2);
    for (int i = 0; i < 3; i++)
        close(fd[i]);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    notify_close(&n);
}
END_TEST

Suite *
lifecycle_suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("process");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_key_file_lines);
    tcase_add_test(tc, test_demo_is_explicit);
    tcase_add_test(tc, test_journal_priorities);
    tcase_add_test(tc, test_watchdog_stop_is_immediate);
    tcase_add_test(tc, test_watchdog_silent_when_batcher_stuck);
    tcase_add_test(tc, test_seedless_generation_differs_across_runs);
    tcase_add_test(tc, test_sigterm_to_any_thread_stops_cleanly);
    tcase_add_test(tc, test_slow_request_gets_408);
    tcase_add_test(tc, test_stop_does_not_wait_for_arriving_requests);
    tcase_add_test(tc, test_hup_and_usr_signals_are_ignored);
    tcase_add_test(tc, test_watchdog_alive_when_slots_full);
    suite_add_tcase(s, tc);
    return s;
}
