/*
 * app.h: what the daemon's request handlers share: configuration, the
 * model, the collections, and the pool of inference slots.
 *
 * The model and store are set once at startup (then `ready` becomes 1) and
 * never change while requests run.  A request that runs the model takes
 * one of conf.workers slots (scratch state for the encoder) and gives it
 * back; when none frees up within conf.request_timeout seconds it gets 503.
 */
#ifndef ROSIM_APP_H
#define ROSIM_APP_H

#include <pthread.h>
#include <stdatomic.h>

#include "../index/store.h"
#include "../model/roformer.h"
#include "config.h"

#define APP_SLOT_BATCH 32      /* sequences per encoder call */

struct app {
    const struct conf *conf;
    struct rf_model *model;
    struct store *store;
    atomic_int ready;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rf_state **slots;  /* free slots */
    int n_free, n_slots;
};

/* Set up the slot pool for a loaded model.  RS_OK or RS_ENOMEM. */
int app_init(struct app *a, const struct conf *conf, struct rf_model *m, struct store *s,
             struct rs_error *e);
void app_deinit(struct app *a);

/* A free slot, waiting up to the configured timeout; NULL when none came. */
struct rf_state *app_acquire(struct app *a);
void app_release(struct app *a, struct rf_state *s);

#endif
