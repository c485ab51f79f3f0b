/*
 * app.h: what the daemon's request handlers share: configuration, the
 * model, the collections, and the pool of inference slots.
 *
 * The model and store are set once at startup (then `ready` becomes 1) and
 * never change while requests run.  Embedding goes through the batcher.
 * Generation takes one of conf.workers slots and reserves its cost
 * (gen_cost) against conf.max_generate_cost; at most conf.max_queue
 * requests may wait for a slot, and none longer than conf.request_timeout;
 * a generation that runs past request_timeout (counted from its request for
 * a slot) is stopped between decode steps.
 */
#ifndef ROSIM_APP_H
#define ROSIM_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "../index/store.h"
#include "../model/roformer.h"
#include "batcher.h"
#include "config.h"

struct app {
    const struct conf *conf;
    struct rf_model *model;
    struct store *store;
    atomic_int ready;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_free;               /* generation slots free (of conf.workers) */
    int waiting;              /* requests waiting for a slot */
    long gen_cost;            /* cost of the generations admitted */
    struct batcher *batcher;
};

/* Set up the slots and the batcher for a loaded model.  RS_OK or RS_ENOMEM. */
int app_init(struct app *a, const struct conf *conf, struct rf_model *m, struct store *s,
             struct rs_error *e);
void app_deinit(struct app *a);

/* Take a generation slot and reserve cost.  RS_OK; RS_EINVAL when the cost
 * alone passes the budget; RS_EBUSY when the budget is taken or max_queue
 * requests wait already (no wait then); RS_ETIMEOUT when no slot came
 * within request_timeout.  *deadline (CLOCK_MONOTONIC): request_timeout
 * from the call, the time the generation has to finish in. */
int app_acquire(struct app *a, long cost, struct timespec *deadline, struct rs_error *e);
void app_release(struct app *a, long cost);

/* What stops a running generation: its request's cancellation (client
 * gone, server stopping) or its deadline. */
struct app_watch {
    int (*cancelled)(void *arg);   /* may be NULL */
    void *cancel_arg;
    struct timespec deadline;      /* from app_acquire */
};

/* gen_params.cancel for a struct app_watch: GEN_STOP_CANCEL,
 * GEN_STOP_DEADLINE or 0. */
int app_watch_stop(void *watch);

#endif
