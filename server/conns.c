/*
 * conns.c: connection deadlines and the reaper thread (see conns.h).
 *
 * One mutex guards the table and every slot's fields; the reaper wakes
 * every REAP_EVERY_MS (or at once on a stop) and walks the table.
 */
#include "conns.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "metrics.h"

#define REAP_EVERY_MS 250

struct conn {
    int fd;
    long long deadline;       /* monotonic ms by which a whole request must have come;
                                 0 while a request is being handled */
    int arriving;             /* its request line came */
    int answered;             /* a reply is queued before the body ended */
    int reaped;               /* ended by the reaper, with reaped_status */
    int reaped_status;
    struct conn *prev, *next;
};

struct conns {
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* wakes the reaper: a stop */
    struct conn *head;
    long long read_ms, idle_ms;
    conns_respond_fn respond;
    void *arg;
    int stopping;             /* conns_stopping was called */
    int stop;                 /* the reaper must return */
    int running;
    pthread_t reaper;
};

static long long
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* End k's connection: its reply (unless one is queued) in one
 * non-blocking send, since a client that does not read has its answer in
 * the close; then the shutdown.  Under t->mu. */
static void
reap(struct conns *t, struct conn *k)
{
    int status = t->stopping && k->arriving ? 503 : 408;
    size_t len;
    char *out;

    k->reaped = 1;
    k->reaped_status = status;
    if (!k->answered && (out = t->respond(t->arg, status, &len)) != NULL) {
        send(k->fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        free(out);
    }
    shutdown(k->fd, SHUT_RDWR);
    if (status == 408)
        metrics_rejected("read_timeout");
}

static void *
reaper_main(void *arg)
{
    struct conns *t = arg;

    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        long long now = now_ms();
        struct timespec until;

        for (struct conn *k = t->head; k != NULL; k = k->next)
            if (!k->reaped && k->deadline != 0 &&
                ((t->stopping && k->arriving) || now >= k->deadline))
                reap(t, k);
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += REAP_EVERY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->cv, &t->mu, &until);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

struct conns *
conns_start(int read_timeout_s, int idle_timeout_s, conns_respond_fn respond, void *arg,
            struct rs_error *e)
{
    struct conns *t = calloc(1, sizeof(*t));
    pthread_condattr_t ca;

    if (t == NULL) {
        rs_error_set(e, RS_ENOMEM, "out of memory");
        return NULL;
    }
    t->read_ms = (long long)read_timeout_s * 1000;
    t->idle_ms = (long long)idle_timeout_s * 1000;
    t->respond = respond;
    t->arg = arg;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t->reaper, NULL, reaper_main, t) != 0) {
        rs_error_set(e, RS_ENOMEM, "cannot start a thread");
        conns_stop(t);
        return NULL;
    }
    t->running = 1;
    return t;
}

void
conns_stop_reaper(struct conns *t)
{
    if (t == NULL || !t->running)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->reaper, NULL);
    t->running = 0;
}

void
conns_stop(struct conns *t)
{
    if (t == NULL)
        return;
    conns_stop_reaper(t);
    while (t->head != NULL) {   /* none are left once the library stopped */
        struct conn *k = t->head;
        t->head = k->next;
        free(k);
    }
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

struct conn *
conns_opened(struct conns *t, int fd)
{
    struct conn *k = calloc(1, sizeof(*k));

    if (k == NULL)
        return NULL;
    k->fd = fd;
    k->deadline = now_ms() + t->read_ms;
    pthread_mutex_lock(&t->mu);
    k->next = t->head;
    if (t->head != NULL)
        t->head->prev = k;
    t->head = k;
    pthread_mutex_unlock(&t->mu);
    return k;
}

void
conns_closed(struct conns *t, struct conn *k)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        t->head = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    pthread_mutex_unlock(&t->mu);
    free(k);
}

void
conn_arriving(struct conns *t, struct conn *k)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    k->arriving = 1;
    pthread_mutex_unlock(&t->mu);
}

void
conn_answered(struct conns *t, struct conn *k)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    k->answered = 1;
    pthread_mutex_unlock(&t->mu);
}

void
conn_handling(struct conns *t, struct conn *k)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    k->deadline = 0;
    pthread_mutex_unlock(&t->mu);
}

void
conn_done(struct conns *t, struct conn *k, int *status, int *closed)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    if (k->reaped && *status == 0) {
        *status = k->reaped_status;
        *closed = 1;
    }
    k->arriving = k->answered = 0;
    k->deadline = now_ms() + t->idle_ms + t->read_ms;
    pthread_mutex_unlock(&t->mu);
}

void
conns_stopping(struct conns *t)
{
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}
