/*
 * batcher.c: the queue and its worker thread (see batcher.h).
 *
 * Lingering.  Clients that wait for their vectors before they send again
 * (the usual HTTP client, wrk, a pool of them) come back a few milliseconds
 * after their batch ends.  Without a pause the next batch would start with
 * only the jobs that queued during the last one, and the clients would split
 * into cohorts that alternate in half-full batches.  So when a batch ends
 * the worker notes how many requests it had in hand (the batch's jobs plus
 * those queued meanwhile): that is how many it expects back.  The next
 * batch waits on the condition variable, never spinning, while it holds
 * fewer jobs than that, has room for the next, the previous batch ended
 * less than wait_us ago, and requests keep coming: answered clients return
 * in a burst far denser than a quarter of wait_us, so a quarter of it
 * without an arrival (counted from the end of the batch or the last
 * arrival) means the missing ones are not coming, as with independent
 * clients whose requests are answered and done.  A lone client is expected
 * back alone, so its requests never wait; a request arriving at an idle
 * batcher long after the last batch does not wait either.  The pause ends
 * at once when the expected jobs are in, when the token budget is reached
 * or on shutdown.  Jobs taken during it are no longer queued, so their
 * deadlines no longer apply (as for a running batch); the pause is bounded
 * by wait_us.
 */
#include "batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"

#define BATCH_SEQUENCES 64   /* sequences per encoder call */
#define BATCH_JOBS 1024      /* jobs the worker takes at once */

struct job {
    const int32_t *const *ids;
    const int *lens;
    int n;
    long tokens;
    float *out;
    int taken, done, rc;
    struct rs_error err;
    struct job *next;
};

struct batcher {
    const struct rf_model *m;
    int max_tokens, wait_us, max_queue, max_len;
    pthread_mutex_t mu;
    pthread_cond_t work;     /* the worker waits for jobs */
    pthread_cond_t done;     /* requests wait for their job */
    struct job *head, *tail;
    int depth, stopping;
    int running;             /* a batch is being encoded */
    unsigned long batches;   /* batches finished */
    int expected;            /* jobs in hand when the last batch ended */
    struct timespec ended;   /* when it ended (CLOCK_MONOTONIC, as `work` waits) */
    struct timespec arrived; /* when the last job was queued (CLOCK_MONOTONIC) */
    pthread_t thread;
    struct rf_state *state;
    float *scratch;          /* [BATCH_SEQUENCES, H] vectors of one call */
};

unsigned long
batcher_progress(struct batcher *b, int *busy)
{
    unsigned long n;
    pthread_mutex_lock(&b->mu);
    n = b->batches;
    *busy = b->running || b->head != NULL;
    pthread_mutex_unlock(&b->mu);
    return n;
}

int
batcher_depth(struct batcher *b)
{
    int d;
    pthread_mutex_lock(&b->mu);
    d = b->depth;
    pthread_mutex_unlock(&b->mu);
    return d;
}

/* us microseconds after *ts, in place */
static void
add_us(struct timespec *ts, long us)
{
    ts->tv_sec += us / 1000000;
    ts->tv_nsec += (us % 1000000) * 1000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static void
deadline_in(struct timespec *ts, long us)
{
    clock_gettime(CLOCK_REALTIME, ts);
    add_us(ts, us);
}

static int
before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* When the batch being formed stops waiting for more (see the top). */
static struct timespec
linger_end(const struct batcher *b)
{
    struct timespec bound = b->ended;
    struct timespec quiet = before(&b->ended, &b->arrived) ? b->arrived : b->ended;

    add_us(&bound, b->wait_us);
    add_us(&quiet, b->wait_us / 4);
    return before(&quiet, &bound) ? quiet : bound;
}

/* Run the encoder over every sequence of jobs[0..n). */
static void
run(struct batcher *b, struct job **jobs, int n)
{
    const int H = rf_model_config(b->m)->d_model;
    const int32_t *ids[BATCH_SEQUENCES];
    int lens[BATCH_SEQUENCES], k = 0, seqs = 0;
    float *outs[BATCH_SEQUENCES];
    long tokens = 0;

    for (int j = 0; j < n; j++) {
        for (int i = 0; i < jobs[j]->n; i++) {
            ids[k] = jobs[j]->ids[i];
            lens[k] = jobs[j]->lens[i];
            outs[k] = jobs[j]->out + (size_t)i * (size_t)H;
            tokens += lens[k];
            k++;
            if (k == BATCH_SEQUENCES || (j == n - 1 && i == jobs[j]->n - 1)) {
                struct rs_error e;
                int rc = rf_encode(b->m, b->state, ids, lens, k, RF_POOL_LINEAR, b->scratch, &e);
                for (int q = 0; rc == RS_OK && q < k; q++)
                    memcpy(outs[q], b->scratch + (size_t)q * (size_t)H, (size_t)H * sizeof(float));
                if (rc != RS_OK) {
                    for (int q = 0; q < n; q++) {
                        jobs[q]->rc = rc;
                        jobs[q]->err = e;
                    }
                }
                seqs += k;
                k = 0;
            }
        }
    }
    metrics_batch(seqs, tokens);
}

static void *
worker(void *arg)
{
    struct batcher *b = arg;
    struct job *batch[BATCH_JOBS];

    pthread_mutex_lock(&b->mu);
    for (;;) {
        long tokens = 0;
        int n = 0;
        struct timespec until;
        while (b->head == NULL && !b->stopping)
            pthread_cond_wait(&b->work, &b->mu);
        if (b->head == NULL && b->stopping)
            break;
        /* take jobs in order while they fit; linger for those expected back */
        for (;;) {
            while (b->head != NULL && n < BATCH_JOBS &&
                   (n == 0 || tokens + b->head->tokens <= b->max_tokens)) {
                struct job *j = b->head;
                b->head = j->next;
                if (b->head == NULL)
                    b->tail = NULL;
                b->depth--;
                j->taken = 1;
                batch[n++] = j;
                tokens += j->tokens;
            }
            if (tokens >= b->max_tokens || n == BATCH_JOBS || b->head != NULL ||
                n >= b->expected || b->stopping)
                break;
            until = linger_end(b);
            if (pthread_cond_timedwait(&b->work, &b->mu, &until) == ETIMEDOUT)
                break;
        }
        metrics_queue_depth(b->depth);
        b->running = 1;
        pthread_mutex_unlock(&b->mu);
        run(b, batch, n);
        pthread_mutex_lock(&b->mu);
        b->running = 0;
        b->batches++;
        b->expected = n + b->depth;
        clock_gettime(CLOCK_MONOTONIC, &b->ended);
        for (int i = 0; i < n; i++)
            batch[i]->done = 1;
        pthread_cond_broadcast(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void
destroy(struct batcher *b)
{
    rf_state_free(b->state);
    free(b->scratch);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->done);
    free(b);
}

struct batcher *
batcher_new(const struct rf_model *m, int max_tokens, int wait_us, int max_queue, int max_len)
{
    struct batcher *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->m = m;
    b->max_tokens = max_tokens;
    b->wait_us = wait_us;
    b->max_queue = max_queue;
    b->max_len = max_len;
    b->state = rf_state_new(m, BATCH_SEQUENCES, max_len);
    b->scratch = malloc((size_t)BATCH_SEQUENCES * (size_t)rf_model_config(m)->d_model *
                        sizeof(float));
    pthread_mutex_init(&b->mu, NULL);
    {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&b->work, &attr);
        pthread_condattr_destroy(&attr);
    }
    pthread_cond_init(&b->done, NULL);
    if (b->state == NULL || b->scratch == NULL ||
        pthread_create(&b->thread, NULL, worker, b) != 0) {
        destroy(b);
        return NULL;
    }
    return b;
}

void
batcher_free(struct batcher *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    b->stopping = 1;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    destroy(b);
}

int
batcher_encode(struct batcher *b, const int32_t *const *ids, const int *lens, int n, float *out,
               int timeout_s, struct rs_error *e)
{
    struct job j = { ids, lens, n, 0, out, 0, 0, RS_OK, { 0, "" }, NULL };
    struct timespec until;

    for (int i = 0; i < n; i++) {
        if (lens[i] < 1 || lens[i] > b->max_len)
            return rs_error_set(e, RS_EINVAL, "sequence of %d tokens (at most %d)", lens[i],
                                b->max_len);
        j.tokens += lens[i];
    }
    deadline_in(&until, (long)timeout_s * 1000000);
    pthread_mutex_lock(&b->mu);
    if (b->depth >= b->max_queue || b->stopping) {
        pthread_mutex_unlock(&b->mu);
        return rs_error_set(e, RS_EBUSY, "%d requests are waiting for the model; retry",
                            b->depth);
    }
    if (b->tail)
        b->tail->next = &j;
    else
        b->head = &j;
    b->tail = &j;
    b->depth++;
    clock_gettime(CLOCK_MONOTONIC, &b->arrived);
    metrics_queue_depth(b->depth);
    pthread_cond_signal(&b->work);
    while (!j.taken && pthread_cond_timedwait(&b->done, &b->mu, &until) != ETIMEDOUT)
        ;
    if (!j.taken) {
        /* still queued at the deadline: take it out and give up */
        struct job **p = &b->head, *prev = NULL;
        while (*p != &j) {
            prev = *p;
            p = &(*p)->next;
        }
        *p = j.next;
        if (b->tail == &j)
            b->tail = prev;
        b->depth--;
        metrics_queue_depth(b->depth);
        pthread_mutex_unlock(&b->mu);
        return rs_error_set(e, RS_ETIMEOUT, "the model stayed busy for %d s; retry", timeout_s);
    }
    /* taken: the encoder is running it, and the deadline no longer applies */
    while (!j.done)
        pthread_cond_wait(&b->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    if (j.rc != RS_OK && e != NULL)
        *e = j.err;
    return j.rc;
}
