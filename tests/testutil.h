/*
 * testutil.h: helpers shared by the suites: running programs, starting a
 * rosimd on a free loopback port, and HTTP requests through libcurl
 * (with ROSIM_API_LOG set, each exchange is appended to that file, for
 * tests/web/validate.mjs).
 */
#ifndef ROSIM_TESTUTIL_H
#define ROSIM_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Seconds on a monotonic clock. */
double tu_now(void);

/* Path of a built program from the environment (ROSIMD, ROSIM), with a
 * default under build/. */
const char *tu_program(const char *env, const char *fallback);

/* Run argv with stdin_data on standard input; capture stdout and stderr
 * (malloc'd, NUL-terminated, caller frees).  Returns the exit status, or
 * -1 when the program did not exit normally. */
int tu_run(char *const argv[], const char *stdin_data, char **out, char **err);

struct tu_daemon {
    pid_t pid;
    int port;
    char log_path[64];   /* the daemon's stderr, removed by tu_daemon_stop */
};

/* Start rosimd with the given extra arguments (NULL-terminated) on
 * 127.0.0.1:0 and wait until it logs its port and that it is ready.
 * Returns 0 or -1. */
int tu_daemon_start(struct tu_daemon *d, const char *const extra[]);

/* The same; with wait_ready 0 it returns once the port is known. */
int tu_daemon_start_ex(struct tu_daemon *d, const char *const extra[], int wait_ready);

/* tu_daemon_start as user and group uid (the caller must be root), so
 * that file permissions apply to the daemon. */
int tu_daemon_start_as(struct tu_daemon *d, const char *const extra[], uid_t uid);

/* Send SIGTERM and wait; returns the exit status (or -1). */
int tu_daemon_stop(struct tu_daemon *d);

/* Wait for the daemon to exit; its exit status (or -1). */
int tu_daemon_wait(struct tu_daemon *d);

struct tu_response {
    long status;
    char *body;        /* malloc'd, NUL-terminated */
    size_t body_len;
    char *headers;     /* raw header block, malloc'd */
};

/* One HTTP request to 127.0.0.1:port.  content_type may be NULL.
 * Returns 0 when an HTTP response arrived. */
int tu_http(int port, const char *method, const char *path, const char *content_type,
            const char *body, size_t body_len, struct tu_response *r);

/* The same with one extra header line ("Name: value"), or NULL. */
int tu_http_with(int port, const char *method, const char *path, const char *content_type,
                 const char *body, size_t body_len, const char *header, struct tu_response *r);

void tu_response_free(struct tu_response *r);

/* POST body with Transfer-Encoding: chunked (no Content-Length). */
int tu_http_chunked(int port, const char *path, const char *body, size_t len,
                    struct tu_response *r);

/* Send a POST that promises content_length bytes but carries only body,
 * then close the connection.  0 when the bytes were sent. */
int tu_http_truncated(int port, const char *path, const char *body, size_t content_length);

/* Send exactly req[0..len) on a new connection, then keep sending fill
 * (fill_len bytes, 0: nothing) over and over, while reading everything
 * the server sends until it closes the connection or timeout_s passes.
 * *reply (malloc'd, NUL-terminated) gets what was read.  Returns 0 when
 * the server closed the connection, 1 on timeout, -1 when no connection.
 * *sent (may be NULL) gets the bytes of fill sent. */
int tu_raw(int port, const char *req, size_t len, const char *fill, size_t fill_len,
           double timeout_s, char **reply, size_t *sent);

/* tu_raw, but with every_s > 0 fill is sent whole once every every_s
 * seconds (a slow client). */
int tu_raw_paced(int port, const char *req, size_t len, const char *fill, size_t fill_len,
                 double every_s, double timeout_s, char **reply, size_t *sent);

/* A new directory /tmp/rosim-NAME-XXXXXX, mode 0755 (a daemon run as
 * another user walks through it); a new string.  Exits the test process
 * (a test error) when it cannot be made. */
char *tu_temp_dir(const char *name);

/* Remove path and everything under it; exits the test process when that
 * fails. */
void tu_remove_tree(const char *path);

#endif
