/*
 * app.c: generation slots and cost budget (mutex, condition variable,
 * timeout), generation deadlines, and the batcher's life.  The deadlines
 * are on the monotonic clock, so a change of the wall clock neither stops
 * a generation nor lets one run on.
 */
#include "app.h"

#include "../model/generate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int
app_init(struct app *a, const struct conf *conf, struct rf_model *m, struct store *s,
         struct rs_error *e)
{
    a->conf = conf;
    a->model = m;
    a->store = s;
    pthread_mutex_init(&a->mu, NULL);
    {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&a->cv, &attr);
        pthread_condattr_destroy(&attr);
    }
    a->n_free = conf->workers;
    a->batcher = batcher_new(m, conf->batch_tokens, conf->batch_wait_us, conf->max_queue,
                             conf->max_length);
    if (a->batcher == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory for the batcher");
    return RS_OK;
}

void
app_deinit(struct app *a)
{
    batcher_free(a->batcher);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    memset(a, 0, sizeof(*a));
}

int
app_acquire(struct app *a, long cost, struct timespec *deadline, struct rs_error *e)
{
    int rc = 0, got = 0;

    if (cost > a->conf->max_generate_cost)
        return rs_error_set(e, RS_EINVAL, "the generation would cost %ld tokens, over the "
                            "budget of %d; ask for fewer or shorter candidates or texts",
                            cost, a->conf->max_generate_cost);
    clock_gettime(CLOCK_MONOTONIC, deadline);
    deadline->tv_sec += a->conf->request_timeout;
    pthread_mutex_lock(&a->mu);
    if (a->gen_cost + cost > a->conf->max_generate_cost || a->waiting >= a->conf->max_queue) {
        pthread_mutex_unlock(&a->mu);
        return rs_error_set(e, RS_EBUSY, "generation is at capacity; retry");
    }
    a->gen_cost += cost;
    a->waiting++;
    while (a->n_free == 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&a->cv, &a->mu, deadline);
    a->waiting--;
    if (a->n_free > 0) {
        a->n_free--;
        got = 1;
    } else {
        a->gen_cost -= cost;
    }
    pthread_mutex_unlock(&a->mu);
    if (!got)
        return rs_error_set(e, RS_ETIMEOUT, "the model stayed busy for %d s; retry",
                            a->conf->request_timeout);
    return RS_OK;
}

void
app_release(struct app *a, long cost)
{
    pthread_mutex_lock(&a->mu);
    a->n_free++;
    a->gen_cost -= cost;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

int
app_watch_stop(void *watch)
{
    const struct app_watch *w = watch;
    struct timespec now;

    if (w->cancelled != NULL && w->cancelled(w->cancel_arg))
        return GEN_STOP_CANCEL;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > w->deadline.tv_sec ||
        (now.tv_sec == w->deadline.tv_sec && now.tv_nsec >= w->deadline.tv_nsec))
        return GEN_STOP_DEADLINE;
    return 0;
}
