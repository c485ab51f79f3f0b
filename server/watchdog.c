/*
 * watchdog.c: the keep-alive thread (see watchdog.h).
 */
#include "watchdog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define PROBE_TIMEOUT_MS 5000   /* at most; never more than a quarter interval */

struct watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* signalled by watchdog_stop */
    int stop;
    uint64_t usec;
    struct app *app;
    struct http_server *http;
    int was_full;               /* the last probe failed with every slot taken */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int probe_ms;
    /* the batcher at the last check */
    unsigned long batches;
    int was_busy;
};

/* The listener answers GET /healthz with 200 within w->probe_ms. */
static int
http_alive(struct watchdog *w)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
                              "X-Request-Id: watchdog\r\nConnection: close\r\n\r\n";
    struct timeval tv = { w->probe_ms / 1000, (w->probe_ms % 1000) * 1000 };
    char buf[16];
    size_t got = 0;
    int fd = socket(w->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = 0;

    if (fd < 0)
        return 0;
    /* SO_SNDTIMEO bounds connect() too */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
        connect(fd, (struct sockaddr *)&w->addr, w->addr_len) == 0 &&
        send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(req) - 1)) {
        while (got < 12) {
            ssize_t n = recv(fd, buf + got, 12 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        ok = got == 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0;
    }
    close(fd);
    return ok;
}

/* Every connection slot is taken: said once per episode in the log. */
static int
listener_full(struct watchdog *w)
{
    int full = http_server_full(w->http);

    if (full && !w->was_full)
        log_msg(RS_LOG_WARN, "watchdog: every connection slot is taken (max_connections); "
                "the listener's health probe cannot get in");
    w->was_full = full;
    return full;
}

/* The batcher is idle or moved on since the last check. */
static int
batcher_alive(struct watchdog *w)
{
    unsigned long batches;
    int busy, stuck;

    if (!atomic_load(&w->app->ready))
        return 1;  /* still loading: no batcher yet */
    batches = batcher_progress(w->app->batcher, &busy);
    stuck = busy && w->was_busy && batches == w->batches;
    w->batches = batches;
    w->was_busy = busy;
    return !stuck;
}

static void *
run(void *arg)
{
    struct watchdog *w = arg;
    struct timespec until;
    int rc;

    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        int http_ok, batcher_ok;
        pthread_mutex_unlock(&w->mu);
        http_ok = http_alive(w) || listener_full(w);
        batcher_ok = batcher_alive(w);
        if (http_ok && batcher_ok)
            sd_notify(0, "WATCHDOG=1");
        else
            log_msg(RS_LOG_WARN, "watchdog: %s not making progress: no keep-alive sent",
                    !http_ok ? "the HTTP listener is" : "the encoder batcher is");
        pthread_mutex_lock(&w->mu);
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(w->usec / 2 / 1000000);
        until.tv_nsec += (long)(w->usec / 2 % 1000000) * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        rc = 0;
        while (!w->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The address to probe: the listener's, with a wildcard made loopback. */
static int
probe_address(struct watchdog *w, const char *host, int port)
{
    memset(&w->addr, 0, sizeof(w->addr));
    if (strchr(host, ':') != NULL) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&w->addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return -1;
        if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
            a6->sin6_addr = in6addr_loopback;
        w->addr_len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&w->addr;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -1;
        if (a4->sin_addr.s_addr == htonl(INADDR_ANY))
            a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        w->addr_len = sizeof(*a4);
    }
    return 0;
}

struct watchdog *
watchdog_start(uint64_t usec, struct app *app, struct http_server *http, const char *host)
{
    struct watchdog *w = calloc(1, sizeof(*w));
    pthread_condattr_t ca;

    if (w == NULL)
        return NULL;
    w->usec = usec;
    w->app = app;
    w->http = http;
    w->probe_ms = (int)(usec / 4 / 1000);
    if (w->probe_ms > PROBE_TIMEOUT_MS)
        w->probe_ms = PROBE_TIMEOUT_MS;
    if (w->probe_ms < 1)
        w->probe_ms = 1;
    if (probe_address(w, host, http_server_port(http)) != 0) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    return w;
}

void
watchdog_stop(struct watchdog *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
