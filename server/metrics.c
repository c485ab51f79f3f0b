/*
 * metrics.c: a small fixed-size registry; routes and status codes are few
 * and known, so a linear table under one mutex is enough.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../index/store.h"

#define MAX_SERIES 128
#define N_LAT 12

static const double lat_bounds[N_LAT] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                          1, 2.5, 5, 10 };
static const int batch_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128 };
#define N_BATCH (int)(sizeof(batch_bounds) / sizeof(batch_bounds[0]))
/* the reasons of rosim_rejected_total, in the order they are shown */
static const char *const reasons[] = { "queue_full", "too_costly", "timeout", "unauthorized",
                                       "read_timeout", "busy", "storage_unavailable" };
#define N_REASONS (int)(sizeof(reasons) / sizeof(reasons[0]))

struct series {
    char route[64];
    int status;
    unsigned long count;
};

struct latency {
    char route[64];
    unsigned long buckets[N_LAT], count;
    double sum;
};

static struct {
    pthread_mutex_t mu;
    struct series req[MAX_SERIES];
    int n_req;
    struct latency lat[MAX_SERIES];
    int n_lat;
    unsigned long batch_buckets[N_BATCH], batches;
    double batch_sum;
    unsigned long tokens, generated;
    unsigned long rejected[N_REASONS];
    long inflight, queue_depth;
} m = { .mu = PTHREAD_MUTEX_INITIALIZER };

void
metrics_request(const char *route, int status, double seconds)
{
    int i;

    pthread_mutex_lock(&m.mu);
    for (i = 0; i < m.n_req; i++)
        if (m.req[i].status == status && strcmp(m.req[i].route, route) == 0)
            break;
    if (i == m.n_req && m.n_req < MAX_SERIES) {
        snprintf(m.req[i].route, sizeof(m.req[i].route), "%s", route);
        m.req[i].status = status;
        m.n_req++;
    }
    if (i < m.n_req)
        m.req[i].count++;
    for (i = 0; i < m.n_lat; i++)
        if (strcmp(m.lat[i].route, route) == 0)
            break;
    if (i == m.n_lat && m.n_lat < MAX_SERIES) {
        snprintf(m.lat[i].route, sizeof(m.lat[i].route), "%s", route);
        m.n_lat++;
    }
    if (i < m.n_lat) {
        for (int b = 0; b < N_LAT; b++)
            if (seconds <= lat_bounds[b])
                m.lat[i].buckets[b]++;
        m.lat[i].count++;
        m.lat[i].sum += seconds;
    }
    pthread_mutex_unlock(&m.mu);
}

void
metrics_batch(int sequences, long tokens)
{
    pthread_mutex_lock(&m.mu);
    for (int b = 0; b < N_BATCH; b++)
        if (sequences <= batch_bounds[b])
            m.batch_buckets[b]++;
    m.batches++;
    m.batch_sum += sequences;
    m.tokens += (unsigned long)tokens;
    pthread_mutex_unlock(&m.mu);
}

void
metrics_generated(long tokens)
{
    pthread_mutex_lock(&m.mu);
    m.generated += (unsigned long)tokens;
    pthread_mutex_unlock(&m.mu);
}

void
metrics_rejected(const char *reason)
{
    pthread_mutex_lock(&m.mu);
    for (int i = 0; i < N_REASONS; i++)
        if (strcmp(reason, reasons[i]) == 0)
            m.rejected[i]++;
    pthread_mutex_unlock(&m.mu);
}

void
metrics_inflight(int delta)
{
    pthread_mutex_lock(&m.mu);
    m.inflight += delta;
    pthread_mutex_unlock(&m.mu);
}

void
metrics_queue_depth(int depth)
{
    pthread_mutex_lock(&m.mu);
    m.queue_depth = depth;
    pthread_mutex_unlock(&m.mu);
}

struct out {
    char *p;
    size_t len, cap;
    int failed;
};

static void
emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
emit(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (size_t)n + 64;
        char *q = realloc(o->p, o->cap);
        if (q == NULL) {
            o->failed = 1;
            return;
        }
        o->p = q;
    }
}

/* Documents per open collection, one series per failed collection (the
 * reason is in /v1/collections and the log), and whether the data
 * directory is writable. */
static void
emit_collections(struct out *o, struct store *store)
{
    struct store_info *info;
    int n;

    if (store_list(store, &info, &n) != 0)
        return;
    emit(o, "# HELP rosim_collection_documents Documents per collection.\n"
            "# TYPE rosim_collection_documents gauge\n");
    for (int i = 0; i < n; i++) {
        struct coll *c = info[i].failed ? NULL : store_acquire(store, info[i].name);
        struct coll_stats st;
        if (c == NULL)
            continue;
        coll_get_stats(c, &st);
        store_release(store, c);
        emit(o, "rosim_collection_documents{collection=\"%s\"} %ld\n", info[i].name,
             st.documents);
    }
    emit(o, "# HELP rosim_collection_failed Collections that could not be opened (1 each; "
            "the reason is in the log and GET /v1/collections).\n"
            "# TYPE rosim_collection_failed gauge\n");
    for (int i = 0; i < n; i++)
        if (info[i].failed)
            emit(o, "rosim_collection_failed{collection=\"%s\"} 1\n", info[i].name);
    emit(o, "# HELP rosim_data_dir_writable Whether the data directory is writable (0 or 1).\n"
            "# TYPE rosim_data_dir_writable gauge\nrosim_data_dir_writable %d\n",
         store_problem(store) == NULL);
    free(info);
}

char *
metrics_render(struct store *store)
{
    struct out o = { malloc(8192), 0, 8192, 0 };

    if (o.p == NULL)
        return NULL;
    o.p[0] = '\0';
    pthread_mutex_lock(&m.mu);
    emit(&o, "# HELP rosim_requests_total HTTP requests served, by route and status.\n"
             "# TYPE rosim_requests_total counter\n");
    for (int i = 0; i < m.n_req; i++)
        emit(&o, "rosim_requests_total{route=\"%s\",code=\"%d\"} %lu\n", m.req[i].route,
             m.req[i].status, m.req[i].count);
    emit(&o, "# HELP rosim_request_duration_seconds Time from request to reply.\n"
             "# TYPE rosim_request_duration_seconds histogram\n");
    for (int i = 0; i < m.n_lat; i++) {
        for (int b = 0; b < N_LAT; b++)
            emit(&o, "rosim_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n",
                 m.lat[i].route, lat_bounds[b], m.lat[i].buckets[b]);
        emit(&o, "rosim_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n"
                 "rosim_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                 "rosim_request_duration_seconds_count{route=\"%s\"} %lu\n",
             m.lat[i].route, m.lat[i].count, m.lat[i].route, m.lat[i].sum, m.lat[i].route,
             m.lat[i].count);
    }
    emit(&o, "# HELP rosim_batch_size Sequences per encoder batch.\n"
             "# TYPE rosim_batch_size histogram\n");
    for (int b = 0; b < N_BATCH; b++)
        emit(&o, "rosim_batch_size_bucket{le=\"%d\"} %lu\n", batch_bounds[b], m.batch_buckets[b]);
    emit(&o, "rosim_batch_size_bucket{le=\"+Inf\"} %lu\nrosim_batch_size_sum %.0f\n"
             "rosim_batch_size_count %lu\n", m.batches, m.batch_sum, m.batches);
    emit(&o, "# HELP rosim_tokens_total Tokens run through the encoder.\n"
             "# TYPE rosim_tokens_total counter\nrosim_tokens_total %lu\n", m.tokens);
    emit(&o, "# HELP rosim_generated_tokens_total Tokens generated.\n"
             "# TYPE rosim_generated_tokens_total counter\nrosim_generated_tokens_total %lu\n",
         m.generated);
    emit(&o, "# HELP rosim_rejected_total Requests refused, or stopped at their deadline, by reason.\n"
             "# TYPE rosim_rejected_total counter\n");
    for (int i = 0; i < N_REASONS; i++)
        emit(&o, "rosim_rejected_total{reason=\"%s\"} %lu\n", reasons[i], m.rejected[i]);
    emit(&o, "# HELP rosim_inflight_requests Requests being served.\n"
             "# TYPE rosim_inflight_requests gauge\nrosim_inflight_requests %ld\n", m.inflight);
    emit(&o, "# HELP rosim_queue_depth Requests waiting for the model.\n"
             "# TYPE rosim_queue_depth gauge\nrosim_queue_depth %ld\n", m.queue_depth);
    pthread_mutex_unlock(&m.mu);
    if (store != NULL)
        emit_collections(&o, store);
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    return o.p;
}
