/*
 * main.c: rosimd, the rosim daemon.
 *
 *     rosimd [-c FILE] [-t] [--listen ADDR:PORT] [--model DIR] [--data DIR]
 *            [-o section.key=value]...
 *
 * Startup order: configuration (file, then command-line overrides), logging,
 * the HTTP listener (answering 503 on /readyz and /v1 while loading), the
 * model (a random demo model is created first when the configured directory
 * is absent and demo_if_missing is on), the collections; then ready.  The
 * main thread waits for SIGTERM or SIGINT, stops accepting, lets the
 * requests in flight finish (up to shutdown_timeout), writes the index
 * snapshots and exits 0.  Under systemd it reports READY=1 once ready,
 * STOPPING=1 when stopping, and WATCHDOG=1 keep-alives when a watchdog is
 * set.  This is the only file that may exit().
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "../model/demo.h"
#include "app.h"
#include "config.h"
#include "http.h"
#include "log.h"

#ifndef ROSIM_VERSION
#define ROSIM_VERSION "0.1.0"
#endif
#ifndef ROSIM_CONF_PATH
#define ROSIM_CONF_PATH "/etc/rosim/rosimd.conf"
#endif

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: rosimd [-c FILE] [-t] [--listen ADDR:PORT] [--model DIR] [--data DIR]\n"
            "              [-o section.key=value]...\n"
            "  -c, --config FILE   configuration file (default conf/rosimd.conf if present,\n"
            "                      else " ROSIM_CONF_PATH ")\n"
            "  -t, --test          check the configuration and exit\n"
            "  --listen ADDR:PORT  same as -o server.listen=ADDR:PORT\n"
            "  --model DIR         same as -o model.dir=DIR\n"
            "  --data DIR          same as -o storage.data=DIR\n"
            "  -o NAME=VALUE       set any option of the configuration file\n"
            "  -h, --help          this text;  -V, --version  the version\n");
}

static const char *
default_config_path(void)
{
    struct stat st;

    if (stat("conf/rosimd.conf", &st) == 0)
        return "conf/rosimd.conf";
    return ROSIM_CONF_PATH;
}

static atomic_int stopping;

/* WATCHDOG=1 at half the interval systemd asked for. */
static void *
watchdog(void *arg)
{
    uint64_t usec = *(uint64_t *)arg;
    struct timespec nap = { (time_t)(usec / 2 / 1000000), (long)(usec / 2 % 1000000) * 1000 };

    while (!atomic_load(&stopping)) {
        sd_notify(0, "WATCHDOG=1");
        nanosleep(&nap, NULL);
    }
    return NULL;
}

/* Load the model (creating the demo model when allowed and needed) and
 * the collections, and set up app.  0, or -1 after logging why. */
static int
load(const struct conf *conf, struct app *app, struct rf_model **model, struct store **store)
{
    struct rs_error err;
    struct stat st;
    struct store_options so;

    if (stat(conf->model_dir, &st) != 0) {
        if (!conf->demo_if_missing) {
            log_msg(LOG_ERROR, "model directory %s does not exist", conf->model_dir);
            return -1;
        }
        log_msg(LOG_WARN, "model directory %s does not exist: creating a RANDOM DEMO MODEL "
                "there; its vectors and generations are meaningless (set [model] dir to a "
                "real RoFormer-Sim checkpoint)", conf->model_dir);
        if (rf_demo_write(conf->model_dir, conf->demo_vocab, 20261129, &err) != RS_OK) {
            log_msg(LOG_ERROR, "cannot create the demo model: %s", err.msg);
            return -1;
        }
    }
    rf_set_threads(conf->compute_threads);
    if (rf_model_load_as(model, conf->model_dir, conf->precision == 3
                                                     ? mm_precision_parse("auto")
                                                     : conf->precision, &err) != RS_OK) {
        log_msg(LOG_ERROR, "cannot load the model: %s", err.msg);
        return -1;
    }
    if (rf_model_config(*model)->demo)
        log_msg(LOG_WARN, "serving a RANDOM DEMO MODEL from %s: outputs are meaningless",
                conf->model_dir);
    log_msg(LOG_INFO, "model %s (%s) from %s, %s on %s", rf_model_fingerprint(*model),
            rf_model_format(*model), conf->model_dir,
            mm_precision_name(rf_model_precision(*model)), mm_isa());
    so = (struct store_options){ rf_model_config(*model)->d_model, rf_model_fingerprint(*model),
                                 conf->fsync, conf->snapshot_every, conf->default_index };
    if (store_open(store, conf->data_dir, &so, &err) != RS_OK) {
        log_msg(LOG_ERROR, "cannot open the collections: %s", err.msg);
        rf_model_free(*model);
        return -1;
    }
    if (app_init(app, conf, *model, *store, &err) != RS_OK) {
        log_msg(LOG_ERROR, "%s", err.msg);
        store_close(*store);
        rf_model_free(*model);
        return -1;
    }
    return 0;
}

/* Record an override; applied after the file so the command line wins. */
struct override {
    const char *name;
    const char *value;
};

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "test", no_argument, NULL, 't' },
        { "listen", required_argument, NULL, 'L' },
        { "model", required_argument, NULL, 'M' },
        { "data", required_argument, NULL, 'D' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct override *ov;
    int n_ov = 0, test_only = 0, opt, sig;
    const char *config_path = NULL;
    struct rs_error err;
    struct conf conf;
    struct http_server *http;
    pthread_t dog;
    uint64_t dog_usec = 0;
    int left, have_dog = 0;
    struct app app;
    struct rf_model *model = NULL;
    struct store *store = NULL;
    sigset_t sigs;

    ov = calloc((size_t)argc, sizeof(*ov));
    if (ov == NULL) {
        fprintf(stderr, "rosimd: out of memory\n");
        return 1;
    }
    while ((opt = getopt_long(argc, argv, "c:to:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 't': test_only = 1; break;
        case 'L': ov[n_ov++] = (struct override){ "server.listen", optarg }; break;
        case 'M': ov[n_ov++] = (struct override){ "model.dir", optarg }; break;
        case 'D': ov[n_ov++] = (struct override){ "storage.data", optarg }; break;
        case 'o': {
            char *eq = strchr(optarg, '=');
            if (eq == NULL) {
                fprintf(stderr, "rosimd: -o %s: expected section.key=value\n", optarg);
                return 2;
            }
            *eq = '\0';
            ov[n_ov++] = (struct override){ optarg, eq + 1 };
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf("rosimd %s\n", ROSIM_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rosimd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    memset(&app, 0, sizeof(app));
    app.conf = &conf;
    conf_defaults(&conf);
    if (config_path == NULL)
        config_path = default_config_path();
    if (conf_load(&conf, config_path, &err) != RS_OK) {
        fprintf(stderr, "rosimd: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < n_ov; i++) {
        if (conf_set(&conf, ov[i].name, ov[i].value, &err) != RS_OK) {
            fprintf(stderr, "rosimd: command line: %s\n", err.msg);
            return 1;
        }
    }
    free(ov);
    if (test_only) {
        printf("rosimd: configuration %s is valid\n", config_path);
        return 0;
    }
    log_threshold = conf.log_level;

    /* Signals are taken synchronously by the main thread; every other
     * thread inherits the blocked mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_msg(LOG_INFO, "rosimd %s starting with %s", ROSIM_VERSION, config_path);
    if (sd_watchdog_enabled(0, &dog_usec) > 0 && dog_usec > 0)
        have_dog = pthread_create(&dog, NULL, watchdog, &dog_usec) == 0;
    http = http_server_start(&conf, &app, &err);
    if (http == NULL) {
        log_msg(LOG_ERROR, "%s", err.msg);
        return 1;
    }
    log_msg(LOG_INFO, "listening on %s:%d", conf.listen.host, http_server_port(http));
    if (load(&conf, &app, &model, &store) != 0) {
        http_server_stop(http);
        atomic_store(&stopping, 1);
        if (have_dog)
            pthread_join(dog, NULL);
        return 1;
    }
    atomic_store(&app.ready, 1);
    log_msg(LOG_INFO, "ready");
    sd_notify(0, "READY=1\nSTATUS=serving");

    do {
        if (sigwait(&sigs, &sig) != 0)
            sig = 0;
    } while (sig != SIGTERM && sig != SIGINT);
    log_msg(LOG_INFO, "%s received: finishing the requests in flight",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sd_notify(0, "STOPPING=1");
    left = http_server_drain(http, conf.shutdown_timeout);
    if (left > 0)
        log_msg(LOG_WARN, "%d requests still running after %d s; closing them", left,
                conf.shutdown_timeout);
    http_server_stop(http);
    app_deinit(&app);
    store_close(store);
    rf_model_free(model);
    atomic_store(&stopping, 1);
    if (have_dog)
        pthread_join(dog, NULL);
    log_msg(LOG_INFO, "stopped");
    return 0;
}
