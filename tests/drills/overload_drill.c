/*
 * overload_drill.c: rosimd with 4x more clients than its queue admits, and
 * under a few hundred slow (slowloris-style) connections.
 *
 * Phase 1: 32 clients loop on /v1/generate for 10 s against workers=1 and
 * max_queue=8: turned-away requests get 429 at once, admitted ones succeed,
 * nothing else happens; when the load stops the next request succeeds.
 * Phase 2: 300 connections from 127.0.0.1 trickle header bytes while a
 * client on 127.0.0.2 embeds sentences: it must be served, and quickly.
 *
 *   build/drill_overload          (run from the repository)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"

static struct tu_daemon d;
static atomic_int stop;
static atomic_int n_ok, n_busy, n_other;
static double busy_worst;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *
client(void *arg)
{
    static const char body[] = "{\"text\":\"我喜欢北京\",\"n\":48,\"max_length\":32,\"k\":3}";
    (void)arg;
    while (!atomic_load(&stop)) {
        struct tu_response r;
        double t0 = tu_now(), dt;
        int rc = tu_http(d.port, "POST", "/v1/generate", "application/json", body,
                         sizeof(body) - 1, &r);
        dt = tu_now() - t0;
        if (rc == 0 && r.status == 200) {
            atomic_fetch_add(&n_ok, 1);
        } else if (rc == 0 && r.status == 429 && strstr(r.headers, "Retry-After")) {
            atomic_fetch_add(&n_busy, 1);
            pthread_mutex_lock(&mu);
            if (dt > busy_worst)
                busy_worst = dt;
            pthread_mutex_unlock(&mu);
        } else {
            atomic_fetch_add(&n_other, 1);
        }
        tu_response_free(&r);
    }
    return NULL;
}

/* One request from 127.0.0.2 with a raw socket; returns the status. */
static int
request_from_other_address(const char *body, double *secs)
{
    struct sockaddr_in src = { 0 }, dst = { 0 };
    char req[512], resp[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1, n;
    double t0 = tu_now();

    src.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)d.port);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0)
        goto done;
    n = snprintf(req, sizeof(req), "POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(body), body);
    if (write(fd, req, (size_t)n) != n)
        goto done;
    n = (int)read(fd, resp, sizeof(resp) - 1);
    if (n > 12) {
        resp[n] = '\0';
        status = atoi(resp + 9);
    }
done:
    if (fd >= 0)
        close(fd);
    *secs = tu_now() - t0;
    return status;
}

int
main(void)
{
    char data[] = "/tmp/rosim-drill-XXXXXX";
    const char *extra[] = { "--model", "tests/fixtures/roformer-sim-tiny", "--data", data,
                            "-o", "model.workers=1", "-o", "limits.max_queue=8",
                            "-o", "limits.max_generate_cost=1000000",
                            NULL };
    pthread_t t[32];
    int fds[300], opened = 0, served = 0, fails = 0;
    double worst = 0, t0, recovery;
    struct tu_response r;

    signal(SIGPIPE, SIG_IGN);   /* the server closes slow connections */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (mkdtemp(data) == NULL || tu_daemon_start(&d, extra) != 0)
        return 1;

    /* phase 1: 32 clients against 1 worker and a queue of 8 */
    for (int i = 0; i < 32; i++)
        pthread_create(&t[i], NULL, client, NULL);
    sleep(10);
    atomic_store(&stop, 1);
    for (int i = 0; i < 32; i++)
        pthread_join(t[i], NULL);
    t0 = tu_now();
    {
        static const char small[] = "{\"text\":\"好\",\"n\":2,\"max_length\":4}";
        if (tu_http(d.port, "POST", "/v1/generate", "application/json", small,
                    sizeof(small) - 1, &r) != 0 || r.status != 200)
            fails++;
    }
    recovery = tu_now() - t0;
    tu_response_free(&r);
    printf("overload: %d served, %d turned away with 429 (slowest answer %.1f ms), %d other; "
           "first request after the load %.1f ms\n", atomic_load(&n_ok), atomic_load(&n_busy),
           busy_worst * 1e3, atomic_load(&n_other), recovery * 1e3);
    if (atomic_load(&n_other) != 0 || atomic_load(&n_busy) == 0 || atomic_load(&n_ok) == 0 ||
        busy_worst > 0.5)
        fails++;

    /* phase 2: slow connections, and a normal client beside them */
    for (int i = 0; i < 300; i++) {
        struct sockaddr_in a = { 0 };
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)d.port);
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        fds[opened] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[opened] >= 0 && connect(fds[opened], (struct sockaddr *)&a, sizeof(a)) == 0 &&
            write(fds[opened], "POST /v1/embed HTTP/1.1\r\n", 25) == 25)
            opened++;
        else if (fds[opened] >= 0)
            close(fds[opened]);
    }
    for (int round = 0; round < 10; round++) {
        double secs;
        for (int i = 0; i < opened; i++)   /* one more header byte each */
            if (write(fds[i], "X", 1) != 1)
                continue;
        if (request_from_other_address("{\"texts\":[\"我喜欢北京\"]}", &secs) == 200)
            served++;
        if (secs > worst)
            worst = secs;
        sleep(1);
    }
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    printf("slowloris: %d slow connections opened; normal client served %d of 10, "
           "slowest %.1f ms\n", opened, served, worst * 1e3);
    if (served != 10 || worst > 1.0)
        fails++;
    {
        int rc = tu_daemon_stop(&d);
        if (rc != 0) {
            printf("rosimd exited with %d\n", rc);
            fails++;
        }
    }
    {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", data);
        if (system(cmd) != 0)
            fails++;
    }
    printf("%s\n", fails == 0 ? "overload drill passed" : "overload drill FAILED");
    return fails == 0 ? 0 : 1;
}
