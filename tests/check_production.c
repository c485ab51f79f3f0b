/*
 * check_production.c: what rosimd does as a service: API keys, metrics
 * (parsed by the reference Prometheus parser), backpressure and deadlines
 * (also the batcher's, in process), a graceful SIGTERM, readiness while
 * loading, and the systemd unit.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../server/batcher.h"
#include "../server/metrics.h"
#include "suites.h"
#include "testutil.h"

#define TINY "tests/fixtures/roformer-sim-tiny"
#define JSON "application/json"
#define SLOW_GENERATE "{\"text\":\"我喜欢北京\",\"n\":256,\"max_length\":128,\"k\":3,\"seed\":1}"
/* three times as long; needs limits.max_generate_cost >= 380000 (the cost of LONG_GENERATE) */
#define LONG_GENERATE "{\"texts\":[\"我喜欢北京\",\"手机坏了怎么办\",\"今天天气不错\"],\"n\":256," \
                      "\"max_length\":128,\"k\":3,\"seed\":1}"

static char data_dir[64];

static void
start(struct tu_daemon *d, const char *const more[], int wait_ready)
{
    const char *extra[32] = { "--model", TINY, "--data", data_dir };
    int n = 4;

    strcpy(data_dir, "/tmp/rosim-prod-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(data_dir));
    for (int i = 0; more != NULL && more[i] != NULL; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    ck_assert_int_eq(tu_daemon_start_ex(d, extra, wait_ready), 0);
}

static void
cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static long
status_of(int port, const char *method, const char *path, const char *body, const char *header)
{
    struct tu_response r;
    long st;
    ck_assert_int_eq(tu_http_with(port, method, path, body ? JSON : NULL, body,
                                  body ? strlen(body) : 0, header, &r), 0);
    st = r.status;
    tu_response_free(&r);
    return st;
}

START_TEST(test_api_keys)
{
    static const struct { const char *method, *path, *body; } routes[] = {
        { "GET", "/v1/info", NULL },
        { "POST", "/v1/tokenize", "{\"texts\":[\"好\"]}" },
        { "POST", "/v1/embed", "{\"texts\":[\"好\"]}" },
        { "POST", "/v1/embeddings", "{\"input\":\"好\"}" },
        { "POST", "/v1/similarity", "{\"source\":\"好\",\"targets\":[\"好\"]}" },
        { "POST", "/v1/generate", "{\"text\":\"好\",\"n\":1,\"max_length\":2}" },
        { "GET", "/v1/collections", NULL },
        { "PUT", "/v1/collections/k", NULL },
        { "GET", "/v1/collections/k", NULL },
        { "POST", "/v1/collections/k/documents", "{\"documents\":[{\"id\":\"a\",\"text\":\"好\"}]}" },
        { "GET", "/v1/collections/k/documents/a", NULL },
        { "POST", "/v1/collections/k/search", "{\"text\":\"好\"}" },
        { "DELETE", "/v1/collections/k/documents/a", NULL },
        { "DELETE", "/v1/collections/k", NULL },
    };
    char keys[] = "/tmp/rosim-keys-XXXXXX", opt[64];
    const char *more[] = { "-o", opt, NULL, NULL, NULL };
    struct tu_daemon d;
    struct tu_response r;
    FILE *f;
    int fd = mkstemp(keys);

    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    fputs("# keys\nfirst-key-123\n  second-key-456  \n", f);
    fclose(f);
    snprintf(opt, sizeof(opt), "server.api_key_file=%s", keys);
    start(&d, more, 1);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const char *m = routes[i].method, *p = routes[i].path, *b = routes[i].body;
        ck_assert_int_eq(tu_http_with(d.port, m, p, b ? JSON : NULL, b, b ? strlen(b) : 0,
                                      NULL, &r), 0);
        ck_assert_msg(r.status == 401, "%s %s without a key: %ld", m, p, r.status);
        ck_assert_ptr_nonnull(strstr(r.headers, "WWW-Authenticate: Bearer"));
        ck_assert_ptr_nonnull(strstr(r.body, "\"unauthorized\""));
        tu_response_free(&r);
        ck_assert_int_eq(status_of(d.port, m, p, b, "Authorization: Bearer second-key-45"), 401);
        ck_assert_int_eq(status_of(d.port, m, p, b, "Authorization: Bearer second-key-4567"), 401);
        ck_assert_int_eq(status_of(d.port, m, p, b, "Authorization: Basic second-key-456"), 401);
        ck_assert_msg(status_of(d.port, m, p, b, "Authorization: Bearer second-key-456") / 100 == 2,
                      "%s %s with the right key", m, p);
    }
    ck_assert_int_eq(status_of(d.port, "GET", "/healthz", NULL, NULL), 200);
    ck_assert_int_eq(status_of(d.port, "GET", "/readyz", NULL, NULL), 200);
    ck_assert_int_eq(status_of(d.port, "GET", "/metrics", NULL, NULL), 200);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    cleanup();
    /* with metrics_auth, /metrics needs the key too */
    more[2] = "-o";
    more[3] = "server.metrics_auth=yes";
    start(&d, more, 1);
    ck_assert_int_eq(status_of(d.port, "GET", "/metrics", NULL, NULL), 401);
    ck_assert_int_eq(status_of(d.port, "GET", "/metrics", NULL, "Authorization: Bearer first-key-123"), 200);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    cleanup();
    unlink(keys);
}
END_TEST

/* /metrics through prometheus_client's parser, as JSON samples. */
static json_t *
scrape(int port)
{
    struct tu_response r;
    char *argv[] = { "/usr/bin/python3", "tests/tools/parse_metrics.py", NULL };
    char *out, *err;
    json_error_t je;
    json_t *j;

    ck_assert_int_eq(tu_http(port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.headers, "text/plain; version=0.0.4"));
    ck_assert_msg(tu_run(argv, r.body, &out, &err) == 0, "the Prometheus parser refused: %s", err);
    j = json_loads(out, 0, &je);
    ck_assert_ptr_nonnull(j);
    tu_response_free(&r);
    free(out);
    free(err);
    return j;
}

static double
sample(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return v ? json_number_value(v) : 0;
}

START_TEST(test_metrics)
{
    struct tu_daemon d;
    json_t *a, *b;

    start(&d, NULL, 1);
    a = scrape(d.port);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(status_of(d.port, "POST", "/v1/embed", "{\"texts\":[\"我喜欢北京\"]}", NULL), 200);
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/embed", "{\"texts\":[]}", NULL), 422);
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/generate", "{\"text\":\"好\",\"n\":2,\"max_length\":5,\"seed\":3}", NULL), 200);
    ck_assert_int_eq(status_of(d.port, "PUT", "/v1/collections/m", NULL, NULL), 201);
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/collections/m/documents",
                               "{\"documents\":[{\"id\":\"a\",\"text\":\"好\"},{\"id\":\"b\",\"text\":\"坏\"}]}", NULL), 200);
    b = scrape(d.port);
    ck_assert_double_eq(sample(b, "rosim_requests_total{code=200,route=/v1/embed}") -
                        sample(a, "rosim_requests_total{code=200,route=/v1/embed}"), 3);
    ck_assert_double_eq(sample(b, "rosim_requests_total{code=422,route=/v1/embed}"), 1);
    ck_assert_double_eq(sample(b, "rosim_request_duration_seconds_count{route=/v1/embed}"), 4);
    ck_assert_double_eq(sample(b, "rosim_tokens_total{}") - sample(a, "rosim_tokens_total{}"),
                        3 * 7 + 2 * 3);
    ck_assert(sample(b, "rosim_generated_tokens_total{}") >= 2);
    ck_assert(sample(b, "rosim_batch_size_count{}") >= 4);
    ck_assert_double_eq(sample(b, "rosim_collection_documents{collection=m}"), 2);
    /* the scrape itself; the request before it leaves the gauge once its
     * reply is sent, which its client may see first: scrape again */
    for (double t0 = tu_now(); sample(b, "rosim_inflight_requests{}") != 1 && tu_now() - t0 < 3;) {
        json_decref(b);
        b = scrape(d.port);
    }
    ck_assert_double_eq(sample(b, "rosim_inflight_requests{}"), 1);
    json_decref(a);
    json_decref(b);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    cleanup();
}
END_TEST

/* Every reply is counted under its route's pattern, those http.c makes
 * before the API runs (413 here) too; a path no route has is "other". */
START_TEST(test_metrics_labels)
{
    static char big[2048];
    const char *more[] = { "-o", "server.max_body_bytes=1k", NULL };
    struct tu_daemon d;
    json_t *m;

    memset(big, 'x', sizeof(big) - 1);
    start(&d, more, 1);
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/embed", big, NULL), 413);
    ck_assert_int_eq(status_of(d.port, "GET", "/v1/embed", NULL, NULL), 405);
    ck_assert_int_eq(status_of(d.port, "GET", "/v1/collections/c/documents/d%20e", NULL, NULL),
                     404);
    ck_assert_int_eq(status_of(d.port, "GET", "/v1/nothing", NULL, NULL), 404);
    m = scrape(d.port);
    ck_assert_double_eq(sample(m, "rosim_requests_total{code=413,route=/v1/embed}"), 1);
    ck_assert_double_eq(sample(m, "rosim_requests_total{code=405,route=/v1/embed}"), 1);
    ck_assert_double_eq(sample(m, "rosim_requests_total{code=404,route=/v1/collections/{name}/"
                                  "documents/{id}}"), 1);
    ck_assert_double_eq(sample(m, "rosim_requests_total{code=404,route=other}"), 1);
    json_decref(m);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    cleanup();
}
END_TEST

struct caller {
    int port;
    const char *body;
    long status;
    int retry_after;
};

static void *
call_generate(void *arg)
{
    struct caller *c = arg;
    struct tu_response r;

    if (tu_http(c->port, "POST", "/v1/generate", JSON, c->body, strlen(c->body), &r) == 0) {
        c->status = r.status;
        c->retry_after = strstr(r.headers, "Retry-After: 1") != NULL;
        tu_response_free(&r);
    }
    return NULL;
}

START_TEST(test_backpressure)
{
    /* request_timeout long enough that the one waiting is never timed out
     * (a slow build, e.g. under ThreadSanitizer) */
    static const char *const more[] = { "-o", "model.workers=1", "-o", "limits.max_queue=1",
                                        "-o", "limits.max_generate_cost=300000",
                                        "-o", "limits.request_timeout=600", NULL };
    struct tu_daemon d;
    pthread_t t[12];
    struct caller c[12];
    int ok = 0, busy = 0;

    start(&d, more, 1);
    /* one alone over the budget is refused as such */
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/generate",
                               "{\"text\":\"好\",\"texts\":null}", NULL), 400);
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/generate",
                               "{\"texts\":[\"好\",\"坏\",\"我\"],\"n\":256,\"max_length\":128}", NULL), 422);
    /* a flood: one runs, one waits, the rest are told to come back */
    for (int i = 0; i < 12; i++) {
        c[i] = (struct caller){ d.port, SLOW_GENERATE, 0, 0 };
        pthread_create(&t[i], NULL, call_generate, &c[i]);
    }
    for (int i = 0; i < 12; i++) {
        pthread_join(t[i], NULL);
        if (c[i].status == 200) {
            ok++;
        } else {
            ck_assert_msg(c[i].status == 429, "status %ld", c[i].status);
            ck_assert(c[i].retry_after);
            busy++;
        }
    }
    ck_assert_int_ge(ok, 1);
    ck_assert_int_ge(busy, 6);
    /* and it recovers at once */
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/generate", "{\"text\":\"好\",\"n\":2,\"max_length\":4}", NULL), 200);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    cleanup();
}
END_TEST

/* A generation still running at request_timeout (counted from its request
 * for the slot) stops with 503 and Retry-After and is counted as a timeout;
 * the request waiting behind it then gets the slot and is served.  */
START_TEST(test_timeout)
{
    static const char *const more[] = { "-o", "model.workers=1", "-o", "limits.request_timeout=1",
                                        "-o", "limits.max_generate_cost=10000000", NULL };
    struct tu_daemon d;
    pthread_t t;
    struct caller c;
    struct timespec nap = { 0, 600 * 1000000 };
    json_t *m;

    start(&d, more, 1);
    c = (struct caller){ d.port, LONG_GENERATE, 0, 0 };
    pthread_create(&t, NULL, call_generate, &c);
    nanosleep(&nap, NULL);        /* it holds the only slot */
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/generate", "{\"text\":\"好\",\"n\":1}", NULL),
                     200);
    pthread_join(t, NULL);
    ck_assert_int_eq(c.status, 503);
    ck_assert(c.retry_after);
    m = scrape(d.port);
    ck_assert_double_eq(sample(m, "rosim_rejected_total{reason=timeout}"), 1);
    ck_assert_double_eq(sample(m, "rosim_queue_depth{}"), 0);
    json_decref(m);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    cleanup();
}
END_TEST

/* --- the batcher's deadlines, in process ---------------------------------- */

struct enc_call {
    struct batcher *b;
    int n, timeout_s;
    int rc;
    double cpu;            /* CPU seconds of the waiting thread */
    double secs;           /* wall seconds */
};

static void *
encode_call(void *arg)
{
    struct enc_call *c = arg;
    int32_t seq[64];
    const int32_t **ids = malloc((size_t)c->n * sizeof(*ids));
    int *lens = malloc((size_t)c->n * sizeof(*lens));
    float *out = malloc((size_t)c->n * 64 * sizeof(float));
    struct timespec t0, t1;
    struct rs_error e;
    double w0 = tu_now();

    ck_assert(ids != NULL && lens != NULL && out != NULL);
    for (int i = 0; i < 64; i++)
        seq[i] = 5 + i;
    for (int i = 0; i < c->n; i++) {
        ids[i] = seq;
        lens[i] = 64;
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    c->rc = batcher_encode(c->b, ids, lens, c->n, out, c->timeout_s, &e);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    c->cpu = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    c->secs = tu_now() - w0;
    free(ids);
    free(lens);
    free(out);
    return NULL;
}

/* Sequences for a job of about secs seconds through b on this machine
 * (timed with one of 256; b runs it). */
static int
sequences_for(struct batcher *b, double secs)
{
    struct enc_call cal = { b, 256, 60, -1, 0, 0 };
    int n;

    encode_call(&cal);
    ck_assert_int_eq(cal.rc, RS_OK);
    n = (int)(256 * secs / (cal.secs > 1e-3 ? cal.secs : 1e-3));
    return n > 200000 ? 200000 : n < 256 ? 256 : n;
}

static void
sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

/* A job still queued at its deadline is taken out (RS_ETIMEOUT) and the
 * queue-depth gauge follows; a job taken before its deadline is waited
 * for without spinning. */
START_TEST(test_batcher_deadlines)
{
    struct rf_model *m;
    struct rs_error e;
    struct batcher *b;
    struct enc_call big, late;
    pthread_t t;
    char *text;
    struct timespec nap = { 0, 200 * 1000000 };

    ck_assert_int_eq(rf_model_load(&m, TINY, &e), RS_OK);
    b = batcher_new(m, 4096, 0, 4, 64);
    ck_assert_ptr_nonnull(b);
    big = (struct enc_call){ b, sequences_for(b, 5.0), 1, -1, 0, 0 };
    pthread_create(&t, NULL, encode_call, &big);
    nanosleep(&nap, NULL);               /* taken by the worker by now */
    late = (struct enc_call){ b, 1, 1, -1, 0, 0 };
    encode_call(&late);
    ck_assert_msg(late.rc == RS_ETIMEOUT, "rc %d after %.2f s (big job of %d)", late.rc,
                  late.secs, big.n);
    ck_assert(late.secs > 0.9 && late.secs < 2.5);
    ck_assert_int_eq(batcher_depth(b), 0);
    text = metrics_render(NULL);
    ck_assert_ptr_nonnull(strstr(text, "\nrosim_queue_depth 0\n"));
    free(text);
    pthread_join(t, NULL);
    ck_assert_int_eq(big.rc, RS_OK);     /* taken in time: it gets its vectors */
    ck_assert_msg(big.secs > 1.5, "the big job took %.2f s only", big.secs);
    ck_assert_msg(big.cpu < 0.3, "the waiting thread used %.2f CPU-s in %.2f s", big.cpu,
                  big.secs);
    batcher_free(b);
    rf_model_free(m);
}
END_TEST

/* --- the batcher's linger, in process -------------------------------------- */

#define LINGER_US 1000000  /* [model] batch_wait_us at its maximum: easy to tell apart */
#define CLIENTS 8
#define STAGGER 0.02       /* s between the clients' second requests */

/* A client that sends one request, waits at the barrier twice (the test
 * counts batches in between), sleeps `i` staggers and sends another. */
struct client {
    struct batcher *b;
    int i;
    pthread_barrier_t *bar;
    struct enc_call call[2];
};

static void *
client_run(void *arg)
{
    struct client *c = arg;

    c->call[0] = (struct enc_call){ c->b, 1, 60, -1, 0, 0 };
    encode_call(&c->call[0]);
    pthread_barrier_wait(c->bar);
    pthread_barrier_wait(c->bar);
    sleep_s(c->i * STAGGER);
    c->call[1] = (struct enc_call){ c->b, 1, 60, -1, 0, 0 };
    encode_call(&c->call[1]);
    return NULL;
}

/* CLIENTS requests queue behind a long job and run as one batch; their
 * clients send again, STAGGER apart: the batches their second requests
 * make, and the longest wait among them. */
static unsigned long
returning_clients(int wait_us, double *longest)
{
    struct rf_model *m;
    struct rs_error e;
    struct batcher *b;
    struct enc_call big;
    struct client c[CLIENTS];
    pthread_t tb, tc[CLIENTS];
    pthread_barrier_t bar;
    unsigned long before, after;
    int busy;

    ck_assert_int_eq(rf_model_load(&m, TINY, &e), RS_OK);
    b = batcher_new(m, 4096, wait_us, 64, 64);
    ck_assert_ptr_nonnull(b);
    big = (struct enc_call){ b, sequences_for(b, 0.5), 60, -1, 0, 0 };
    before = batcher_progress(b, &busy);
    pthread_create(&tb, NULL, encode_call, &big);
    sleep_s(0.1);                        /* taken by the worker by now */
    pthread_barrier_init(&bar, NULL, CLIENTS + 1);
    for (int i = 0; i < CLIENTS; i++) {
        c[i] = (struct client){ b, i, &bar, { { 0 } } };
        pthread_create(&tc[i], NULL, client_run, &c[i]);
    }
    pthread_barrier_wait(&bar);
    after = batcher_progress(b, &busy);
    ck_assert_msg(after - before == 2, "setup: the first requests took %lu batches, not 1",
                  after - before - 1);
    pthread_barrier_wait(&bar);
    *longest = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(tc[i], NULL);
        ck_assert_int_eq(c[i].call[0].rc, RS_OK);
        ck_assert_int_eq(c[i].call[1].rc, RS_OK);
        if (c[i].call[1].secs > *longest)
            *longest = c[i].call[1].secs;
    }
    pthread_join(tb, NULL);
    ck_assert_int_eq(big.rc, RS_OK);
    before = after;
    after = batcher_progress(b, &busy);
    pthread_barrier_destroy(&bar);
    batcher_free(b);
    rf_model_free(m);
    return after - before;
}

/* Clients answered by one batch come back a little apart; with a linger
 * their requests meet in one batch again, which starts as soon as the last
 * is in (long before the bound); without, each runs alone. */
START_TEST(test_batcher_linger_regroups)
{
    double longest;
    unsigned long batches;

    batches = returning_clients(LINGER_US, &longest);
    ck_assert_msg(batches == 1, "%lu batches with a linger", batches);
    ck_assert_msg(longest < 0.5 * LINGER_US / 1e6 && longest >= (CLIENTS - 1) * STAGGER,
                  "the first request back waited %.3f s", longest);
    batches = returning_clients(0, &longest);
    ck_assert_msg(batches > 1, "%lu batch without a linger", batches);
}
END_TEST

/* A client alone is expected back alone: its requests never linger. */
START_TEST(test_batcher_lone_client_waits_not)
{
    struct rf_model *m;
    struct rs_error e;
    struct batcher *b;

    ck_assert_int_eq(rf_model_load(&m, TINY, &e), RS_OK);
    b = batcher_new(m, 4096, LINGER_US, 64, 64);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 5; i++) {
        struct enc_call one = { b, 1, 60, -1, 0, 0 };
        encode_call(&one);
        ck_assert_int_eq(one.rc, RS_OK);
        ck_assert_msg(one.secs < 0.25 * LINGER_US / 1e6, "request %d took %.3f s", i,
                      one.secs);
        sleep_s(i % 2 ? 0.01 : 0);       /* straight back, or a little later */
    }
    batcher_free(b);
    rf_model_free(m);
}
END_TEST

/* Two requests queue behind a long job that three were in hand for, so
 * they linger for a third that never comes; returns when the long job
 * ended (tu_now), with the two still waiting. */
static double
two_lingering(struct batcher *b, struct enc_call two[2], pthread_t t[2])
{
    struct enc_call big = { b, sequences_for(b, 0.3), 60, -1, 0, 0 };
    pthread_t tb;
    unsigned long first;
    int busy;
    double ended;

    first = batcher_progress(b, &busy);
    pthread_create(&tb, NULL, encode_call, &big);
    sleep_s(0.1);
    for (int i = 0; i < 2; i++) {
        two[i] = (struct enc_call){ b, 1, 60, -1, 0, 0 };
        pthread_create(&t[i], NULL, encode_call, &two[i]);
    }
    pthread_join(tb, NULL);
    ended = tu_now();
    ck_assert_int_eq(big.rc, RS_OK);
    sleep_s(0.02);
    /* the batch of the two (milliseconds of work) has not run: it lingers */
    ck_assert_msg(batcher_progress(b, &busy) == first + 1, "setup: the two did not linger");
    return ended;
}

/* A linger ends when requests stop coming: a quarter of the bound after
 * the last arrival (here, the end of the long job), not the whole bound. */
START_TEST(test_batcher_linger_ends_when_quiet)
{
    struct rf_model *m;
    struct rs_error e;
    struct batcher *b;
    struct enc_call two[2];
    pthread_t t[2];
    double ended, waited;

    ck_assert_int_eq(rf_model_load(&m, TINY, &e), RS_OK);
    b = batcher_new(m, 4096, LINGER_US, 64, 64);
    ck_assert_ptr_nonnull(b);
    ended = two_lingering(b, two, t);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(two[i].rc, RS_OK);
    }
    waited = tu_now() - ended;
    ck_assert_msg(waited > 0.2 * LINGER_US / 1e6 && waited < 0.6 * LINGER_US / 1e6,
                  "the two waited %.3f s after the long job", waited);
    batcher_free(b);
    rf_model_free(m);
}
END_TEST

START_TEST(test_sigterm_finishes_requests)
{
    /* room for the slow request however slow the build (ThreadSanitizer) */
    static const char *const more[] = { "-o", "server.shutdown_timeout=3600", "-o",
                                        "limits.max_generate_cost=1000000", NULL };
    struct tu_daemon d;
    pthread_t t;
    struct caller c;
    struct timespec nap = { 0, 300 * 1000000 };

    start(&d, more, 1);
    c = (struct caller){ d.port, SLOW_GENERATE, 0, 0 };
    pthread_create(&t, NULL, call_generate, &c);
    nanosleep(&nap, NULL);        /* the request is running */
    kill(d.pid, SIGTERM);
    pthread_join(t, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_int_eq(tu_daemon_wait(&d), 0);
    cleanup();
}
END_TEST

/* A generation whose client goes away stops at its next decode step: the
 * only slot is free again at once. */
START_TEST(test_client_gone)
{
    static const char *const more[] = { "-o", "model.workers=1", "-o",
                                        "limits.max_generate_cost=1000000", NULL };
    char raw[512], *reply;
    struct tu_daemon d;
    double t0;

    start(&d, more, 1);
    snprintf(raw, sizeof(raw), "POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(LONG_GENERATE),
             LONG_GENERATE);
    ck_assert_int_eq(tu_raw(d.port, raw, strlen(raw), NULL, 0, 0.5, &reply, NULL), 1);
    ck_assert_str_eq(reply, "");      /* still generating when the client left */
    free(reply);
    t0 = tu_now();
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/generate",
                               "{\"text\":\"好\",\"n\":1,\"max_length\":2}", NULL), 200);
    ck_assert_msg(tu_now() - t0 < 2.0, "the slot was free after %.1f s", tu_now() - t0);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    cleanup();
}
END_TEST

/* shutdown_timeout bounds a stop: a long generation is stopped when it
 * passes, and its client hears so. */
START_TEST(test_sigterm_deadline)
{
    static const char *const more[] = { "-o", "server.shutdown_timeout=2", "-o",
                                        "limits.max_generate_cost=1000000", NULL };
    struct tu_daemon d;
    pthread_t t;
    struct caller c;
    struct timespec nap = { 0, 300 * 1000000 };
    double t0;

    start(&d, more, 1);
    c = (struct caller){ d.port, LONG_GENERATE, 0, 0 };
    pthread_create(&t, NULL, call_generate, &c);
    nanosleep(&nap, NULL);        /* the request is running */
    t0 = tu_now();
    kill(d.pid, SIGTERM);
    ck_assert_int_eq(tu_daemon_wait(&d), 0);
    ck_assert_msg(tu_now() - t0 < 3.5, "stopped after %.1f s", tu_now() - t0);
    pthread_join(t, NULL);
    ck_assert_msg(c.status == 503, "status %ld", c.status);
    ck_assert(c.retry_after);
    cleanup();
}
END_TEST

START_TEST(test_readiness)
{
    char model[80];
    const char *more[] = { "--model", model, "-o", "model.demo_if_missing=yes", NULL };
    struct tu_daemon d;
    struct tu_response r;
    int saw_503 = 0, ready = 0;
    time_t until = time(NULL) + 120;

    snprintf(model, sizeof(model), "/tmp/rosim-demo-%d/models/roformer-sim", (int)getpid());
    start(&d, more, 0);           /* the demo model is being written */
    while (!ready && time(NULL) < until) {
        long embed;
        ck_assert_int_eq(status_of(d.port, "GET", "/healthz", NULL, NULL), 200);
        embed = status_of(d.port, "POST", "/v1/embed", "{\"texts\":[\"好\"]}", NULL);
        ck_assert_int_eq(tu_http(d.port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
        ck_assert(embed == 503 || embed == 200);
        ck_assert(r.status == 503 || r.status == 200);
        if (embed == 200)               /* readiness never goes back */
            ck_assert_int_eq(r.status, 200);
        if (r.status == 503)
            ck_assert_ptr_nonnull(strstr(r.headers, "Retry-After"));
        saw_503 |= embed == 503;
        ready = r.status == 200;
        tu_response_free(&r);
    }
    ck_assert(saw_503);
    ck_assert(ready);
    ck_assert_int_eq(tu_http(d.port, "GET", "/v1/info", NULL, NULL, 0, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "\"demo\":true"));
    ck_assert_ptr_nonnull(strstr(r.body, "meaningless"));
    tu_response_free(&r);
    ck_assert_int_eq(status_of(d.port, "POST", "/v1/generate", "{\"text\":\"好\",\"n\":2,\"max_length\":4}", NULL), 200);
    ck_assert_int_eq(tu_daemon_stop(&d), 0);
    {
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "rm -rf /tmp/rosim-demo-%d", (int)getpid());
        ck_assert_int_eq(system(cmd), 0);
    }
    cleanup();
}
END_TEST

START_TEST(test_systemd_unit_verifies)
{
    char dir[] = "/tmp/rosim-unit-XXXXXX", cmd[1200], cwd[512];
    char *argv[] = { "/usr/bin/systemd-analyze", "verify", NULL, NULL };
    char unit[600], *out, *err;
    int rc;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    /* installed layout: PREFIX/bin/rosimd */
    snprintf(cmd, sizeof(cmd), "mkdir -p %s/bin && ln -s %s/%s %s/bin/rosimd && "
             "sed 's|@PREFIX@|%s|g' systemd/rosimd.service > %s/rosimd.service",
             dir, cwd, tu_program("ROSIMD", "build/rosimd"), dir, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(unit, sizeof(unit), "%s/rosimd.service", dir);
    argv[2] = unit;
    rc = tu_run(argv, NULL, &out, &err);
    ck_assert_msg(rc == 0, "systemd-analyze verify: %s%s", out, err);
    ck_assert_msg(strstr(err, "rosimd.service:") == NULL, "warnings: %s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *
production_suite(void)
{
    Suite *s = suite_create("production");
    TCase *tc = tcase_create("service");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_api_keys);
    tcase_add_test(tc, test_metrics);
    tcase_add_test(tc, test_metrics_labels);
    tcase_add_test(tc, test_backpressure);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_batcher_deadlines);
    tcase_add_test(tc, test_batcher_linger_regroups);
    tcase_add_test(tc, test_batcher_lone_client_waits_not);
    tcase_add_test(tc, test_batcher_linger_ends_when_quiet);
    tcase_add_test(tc, test_sigterm_finishes_requests);
    tcase_add_test(tc, test_client_gone);
    tcase_add_test(tc, test_sigterm_deadline);
    tcase_add_test(tc, test_readiness);
    tcase_add_test(tc, test_systemd_unit_verifies);
    suite_add_tcase(s, tc);
    return s;
}
