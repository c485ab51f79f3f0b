/*
 * app.c: the inference slot pool (mutex, condition variable, timeout).
 */
#include "app.h"

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
    pthread_cond_init(&a->cv, NULL);
    a->slots = calloc((size_t)conf->workers, sizeof(*a->slots));
    if (a->slots == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    for (int i = 0; i < conf->workers; i++) {
        a->slots[i] = rf_state_new(m, APP_SLOT_BATCH, conf->max_length);
        if (a->slots[i] == NULL)
            return rs_error_set(e, RS_ENOMEM, "out of memory for %d inference slots",
                                conf->workers);
        a->n_free = a->n_slots = i + 1;
    }
    return RS_OK;
}

void
app_deinit(struct app *a)
{
    for (int i = 0; i < a->n_free; i++)
        rf_state_free(a->slots[i]);
    free(a->slots);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    memset(a, 0, sizeof(*a));
}

struct rf_state *
app_acquire(struct app *a)
{
    struct timespec deadline;
    struct rf_state *s = NULL;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += a->conf->request_timeout;
    pthread_mutex_lock(&a->mu);
    while (a->n_free == 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&a->cv, &a->mu, &deadline);
    if (a->n_free > 0)
        s = a->slots[--a->n_free];
    pthread_mutex_unlock(&a->mu);
    return s;
}

void
app_release(struct app *a, struct rf_state *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->slots[a->n_free++] = s;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}
