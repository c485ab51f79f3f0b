/*
 * testutil.c: process and HTTP helpers for the suites (see testutil.h).
 */
#include "testutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double
tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *
tu_program(const char *env, const char *fallback)
{
    const char *p = getenv(env);
    return p != NULL && *p != '\0' ? p : fallback;
}

struct buf {
    char *data;
    size_t len, cap;
};

static void
buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (b->data == NULL)
            abort();
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

int
tu_run(char *const argv[], const char *stdin_data, char **out, char **err)
{
    int in[2], o[2], e[2], status;
    struct buf bo = { 0 }, be = { 0 };
    size_t in_len = stdin_data ? strlen(stdin_data) : 0, in_off = 0;
    pid_t pid;

    if (pipe(in) || pipe(o) || pipe(e))
        return -1;
    pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(o[1], 1);
        dup2(e[1], 2);
        /* only 0, 1 and 2: a daemon the program leaves behind (pg_ctl
         * start) must not hold the pipes open */
        close(in[0]);
        close(in[1]);
        close(o[0]);
        close(o[1]);
        close(e[0]);
        close(e[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    close(e[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    buf_add(&bo, "", 0);
    buf_add(&be, "", 0);
    if (in_len == 0) {
        close(in[1]);
        in[1] = -1;
    }
    for (int open_fds = 2; open_fds > 0;) {
        struct pollfd p[3] = { { o[0], POLLIN, 0 }, { e[0], POLLIN, 0 },
                               { in[1], POLLOUT, 0 } };
        char tmp[65536];
        if (poll(p, in[1] >= 0 ? 3 : 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP))) {
                ssize_t n = read(p[i].fd, tmp, sizeof(tmp));
                if (n > 0) {
                    buf_add(i == 0 ? &bo : &be, tmp, (size_t)n);
                } else {
                    close(p[i].fd);
                    if (i == 0) o[0] = -1; else e[0] = -1;
                    open_fds--;
                }
            }
        }
        if (in[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR))) {
            ssize_t n = write(in[1], stdin_data + in_off, in_len - in_off);
            if (n > 0)
                in_off += (size_t)n;
            if (n < 0 || in_off == in_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
    }
    if (in[1] >= 0)
        close(in[1]);
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    if (out) *out = bo.data; else free(bo.data);
    if (err) *err = be.data; else free(be.data);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
tu_daemon_start(struct tu_daemon *d, const char *const extra[])
{
    return tu_daemon_start_ex(d, extra, 1);
}

static int start(struct tu_daemon *d, const char *const extra[], int wait_ready, uid_t uid);

int
tu_daemon_start_ex(struct tu_daemon *d, const char *const extra[], int wait_ready)
{
    return start(d, extra, wait_ready, (uid_t)-1);
}

int
tu_daemon_start_as(struct tu_daemon *d, const char *const extra[], uid_t uid)
{
    return start(d, extra, 1, uid);
}

static int
start(struct tu_daemon *d, const char *const extra[], int wait_ready, uid_t uid)
{
    const char *argv[64];
    int n = 0, fd;
    char log[8192];
    time_t deadline = time(NULL) + 60;

    argv[n++] = tu_program("ROSIMD", "build/rosimd");
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    /* the log goes to a file, so a busy daemon never blocks on a full pipe */
    snprintf(d->log_path, sizeof(d->log_path), "/tmp/rosimd-test-%d-XXXXXX", (int)getpid());
    fd = mkstemp(d->log_path);
    if (fd < 0)
        return -1;
    d->pid = fork();
    if (d->pid == 0) {
        dup2(fd, 2);
        if (uid != (uid_t)-1 && (setgroups(0, NULL) != 0 || setgid((gid_t)uid) != 0 ||
                                 setuid(uid) != 0))
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd);
    d->port = 0;
    while (time(NULL) < deadline) {
        struct timespec nap = { 0, 20 * 1000000 };
        FILE *f = fopen(d->log_path, "r");
        size_t len = f ? fread(log, 1, sizeof(log) - 1, f) : 0;
        char *at;
        if (f)
            fclose(f);
        log[len] = '\0';
        at = strstr(log, "listening on 127.0.0.1:");
        if (at != NULL && strchr(at, '\n') != NULL)
            d->port = atoi(at + strlen("listening on 127.0.0.1:"));
        if (d->port != 0 && (!wait_ready || strstr(log, " INFO ready\n") != NULL))
            return 0;
        if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
            fprintf(stderr, "rosimd exited:\n%s\n", log);
            unlink(d->log_path);
            return -1;
        }
        nanosleep(&nap, NULL);
    }
    fprintf(stderr, "rosimd did not start:\n%s\n", log);
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    unlink(d->log_path);
    return -1;
}

int
tu_daemon_stop(struct tu_daemon *d)
{
    kill(d->pid, SIGTERM);
    return tu_daemon_wait(d);
}

int
tu_daemon_wait(struct tu_daemon *d)
{
    int status;

    if (waitpid(d->pid, &status, 0) < 0)
        return -1;
    unlink(d->log_path);
    if (WIFSIGNALED(status))
        fprintf(stderr, "rosimd ended by signal %d\n", WTERMSIG(status));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t
on_data(char *p, size_t size, size_t n, void *user)
{
    buf_add(user, p, size * n);
    return size * n;
}

int
tu_http(int port, const char *method, const char *path, const char *content_type,
        const char *body, size_t body_len, struct tu_response *r)
{
    return tu_http_with(port, method, path, content_type, body, body_len, NULL, r);
}

/* With ROSIM_API_LOG set, append the exchange to that file for
 * tests/web/validate.mjs, which checks each reply against
 * docs/openapi.json: a line "method\tstatus\tpath bytes\theader bytes\tbody
 * bytes", then the path, the reply's raw header block and its body, then a
 * newline.  One write(2) in append mode, so concurrent tests (threads,
 * forked cases) do not mix. */
static void
log_exchange(const char *method, const char *path, const struct tu_response *r)
{
    const char *file = getenv("ROSIM_API_LOG");
    char *rec = NULL;
    size_t len;
    int fd, n;

    if (file == NULL || *file == '\0' || r->status == 0)
        return;
    n = asprintf(&rec, "%s\t%ld\t%zu\t%zu\t%zu\n%s%s", method, r->status, strlen(path),
                 strlen(r->headers), r->body_len, path, r->headers);
    if (n < 0)
        abort();
    rec = realloc(rec, (size_t)n + r->body_len + 1);
    if (rec == NULL)
        abort();
    memcpy(rec + n, r->body, r->body_len);
    rec[(size_t)n + r->body_len] = '\n';
    len = (size_t)n + r->body_len + 1;
    fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, rec, len) != (ssize_t)len) {
        fprintf(stderr, "ROSIM_API_LOG=%s: cannot append: %s\n", file, strerror(errno));
        abort();
    }
    close(fd);
    free(rec);
}

/* Send the request prepared on c (method, as sent) to path with headers
 * hdrs (both consumed) and collect the reply in r.  Returns curl's
 * result. */
static CURLcode
perform(CURL *c, const char *method, int port, const char *path, struct curl_slist *hdrs,
        struct tu_response *r)
{
    struct buf b = { 0 }, h = { 0 };
    char url[1024];
    CURLcode rc;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    buf_add(&b, "", 0);
    buf_add(&h, "", 0);
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);   /* send /../ as it is */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    rc = curl_easy_perform(c);
    r->status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    r->body = b.data;
    r->body_len = b.len;
    r->headers = h.data;
    if (rc == CURLE_OK)
        log_exchange(method, path, r);
    return rc;
}

int
tu_http_with(int port, const char *method, const char *path, const char *content_type,
             const char *body, size_t body_len, const char *header, struct tu_response *r)
{
    struct curl_slist *hdrs = NULL;
    char ct[256];
    CURL *c = curl_easy_init();

    if (c == NULL)
        return -1;
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (content_type != NULL) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, ct);
    }
    if (header != NULL)
        hdrs = curl_slist_append(hdrs, header);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    return perform(c, method, port, path, hdrs, r) == CURLE_OK ? 0 : -1;
}

void
tu_response_free(struct tu_response *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

struct reader {
    const char *p;
    size_t left;
};

static size_t
on_read(char *dst, size_t size, size_t n, void *user)
{
    struct reader *rd = user;
    size_t k = size * n < rd->left ? size * n : rd->left;
    if (k > 1000)
        k = 1000;   /* several chunks */
    memcpy(dst, rd->p, k);
    rd->p += k;
    rd->left -= k;
    return k;
}

int
tu_http_chunked(int port, const char *path, const char *body, size_t len, struct tu_response *r)
{
    struct reader rd = { body, len };
    struct curl_slist *hdrs = NULL;
    CURL *c = curl_easy_init();
    CURLcode rc;

    if (c == NULL)
        return -1;
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &rd);
    rc = perform(c, "POST", port, path, hdrs, r);
    /* the server may answer 413 and close before the upload ends */
    return rc == CURLE_OK || r->status != 0 ? 0 : -1;
}

int
tu_raw(int port, const char *req, size_t len, const char *fill, size_t fill_len,
       double timeout_s, char **reply, size_t *sent)
{
    return tu_raw_paced(port, req, len, fill, fill_len, 0, timeout_s, reply, sent);
}

int
tu_raw_paced(int port, const char *req, size_t len, const char *fill, size_t fill_len,
             double every_s, double timeout_s, char **reply, size_t *sent)
{
    struct sockaddr_in a = { 0 };
    struct buf got = { 0 };
    size_t off = 0, fill_off = 0, filled = 0;
    double until = tu_now() + timeout_s, next_fill = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc = 1, writing = 1;

    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    buf_add(&got, "", 0);
    while (tu_now() < until) {
        int out = writing && (off < len || every_s <= 0 || tu_now() >= next_fill);
        struct pollfd p = { fd, POLLIN | (out ? POLLOUT : 0), 0 };
        if (poll(&p, 1, 50) < 0 && errno != EINTR)
            break;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            char tmp[65536];
            ssize_t n = read(fd, tmp, sizeof(tmp));
            if (n > 0) {
                buf_add(&got, tmp, (size_t)n);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                rc = 0;       /* closed (or reset) by the server */
                break;
            }
        }
        if (out && (p.revents & POLLOUT)) {
            ssize_t n;
            if (off < len) {
                n = send(fd, req + off, len - off, MSG_NOSIGNAL);
                if (n > 0)
                    off += (size_t)n;
            } else if (fill_len > 0 && every_s > 0) {
                n = send(fd, fill, fill_len, MSG_NOSIGNAL);
                if (n > 0)
                    filled += (size_t)n;
                next_fill = tu_now() + every_s;
            } else if (fill_len > 0) {
                n = send(fd, fill + fill_off, fill_len - fill_off, MSG_NOSIGNAL);
                if (n > 0) {
                    fill_off = (fill_off + (size_t)n) % fill_len;
                    filled += (size_t)n;
                }
            } else {
                writing = 0;
                continue;
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                writing = 0;  /* the server stopped reading */
        }
    }
    close(fd);
    *reply = got.data;
    if (sent != NULL)
        *sent = filled;
    return rc;
}

int
tu_http_truncated(int port, const char *path, const char *body, size_t content_length)
{
    struct sockaddr_in a = { 0 };
    char head[512];
    int fd = socket(AF_INET, SOCK_STREAM, 0), n, rc = -1;

    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: localhost\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     path, content_length);
        if (write(fd, head, (size_t)n) == n &&
            write(fd, body, strlen(body)) == (ssize_t)strlen(body))
            rc = 0;
    }
    close(fd);
    return rc;
}

char *
tu_temp_dir(const char *name)
{
    char *d = NULL;

    if (asprintf(&d, "/tmp/rosim-%s-XXXXXX", name) < 0 || mkdtemp(d) == NULL ||
        chmod(d, 0755) != 0) {
        fprintf(stderr, "cannot make a temporary directory for %s\n", name);
        exit(1);
    }
    return d;
}

void
tu_remove_tree(const char *path)
{
    char *cmd = NULL;

    if (asprintf(&cmd, "rm -rf '%s'", path) < 0 || system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", path);
        exit(1);
    }
    free(cmd);
}
