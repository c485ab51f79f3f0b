/*
 * main.c: rosimd, the rosim daemon.
 *
 *     rosimd [-c FILE] [-t] [--listen ADDR:PORT] [--model DIR] [--data DIR]
 *            [--api-key-file FILE] [-o section.key=value]...
 *
 * Startup order: configuration (file, then ROSIM_<SECTION>_<KEY> environment
 * variables, then command-line overrides; threads = auto becomes the CPUs
 * available), the checks that need no model (check_start: the same ones
 * `rosimd -t` runs, so -t accepts exactly what gets a start that far),
 * logging, the HTTP listener (answering 503 on /readyz and /v1 while
 * loading), the model (a random demo model is created first when the
 * configured directory is absent and demo_if_missing is on), the
 * collections; then ready.  The
 * main thread waits for SIGTERM or SIGINT, stops accepting, lets the
 * requests in flight finish (up to shutdown_timeout), writes the index
 * snapshots and exits 0.  SIGHUP, SIGUSR1 and SIGUSR2 (sent by log
 * rotation and by habit) are logged and ignored: rosimd has nothing to
 * reload or reopen, and they must not kill it.  Under systemd it reports READY=1 once ready,
 * STOPPING=1 when stopping, and WATCHDOG=1 keep-alives while the request
 * path makes progress (watchdog.h).  This is the only file that may exit().
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "../index/collection.h"
#include "../index/storage.h"
#include "../model/demo.h"
#include "app.h"
#include "config.h"
#include "cpus.h"
#include "http.h"
#include "keyfile.h"
#include "log.h"
#include "../model/threadenv.h"
#include "watchdog.h"

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
            "              [--api-key-file FILE] [-o section.key=value]...\n"
            "  -c, --config FILE   configuration file (default conf/rosimd.conf if present,\n"
            "                      else " ROSIM_CONF_PATH ")\n"
            "  -t, --test          check the configuration, print the values in effect\n"
            "                      and where each came from, and exit\n"
            "  --listen ADDR:PORT  same as -o server.listen=ADDR:PORT\n"
            "  --model DIR         same as -o model.dir=DIR\n"
            "  --data DIR          same as -o storage.data=DIR\n"
            "  --api-key-file FILE same as -o server.api_key_file=FILE\n"
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

static pthread_t main_thread;

/* The signals the main thread takes (sigwait): the first two stop rosimd,
 * the others are ignored. */
static const int taken_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };
#define N_TAKEN (sizeof(taken_signals) / sizeof(taken_signals[0]))

/* A signal taken by a thread that does not block it: pending on the main
 * thread, where sigwait() collects it (pthread_kill is
 * async-signal-safe). */
static void
forward_to_main(int sig)
{
    pthread_kill(main_thread, sig);
}

/* What a start can get wrong before the model loads: the model directory
 * (missing without demo_if_missing, or not a directory), the demo
 * vocabulary when a demo model is to be made, the API key file, the default
 * index type.  RS_OK or an error naming the option. */
static int
check_start(const struct conf *c, struct rs_error *e)
{
    struct rs_error why;
    struct stat st;

    if (stat(c->model_dir, &st) != 0) {
        if (errno != ENOENT || !c->demo_if_missing)
            return rs_error_set(e, RS_ENOTFOUND, "[model] dir: %s: %s (download a checkpoint "
                                "with scripts/download-model.sh, or set [model] "
                                "demo_if_missing = yes for a random demo model)",
                                c->model_dir, strerror(errno));
        if (stat(c->demo_vocab, &st) != 0)
            return rs_error_set(e, RS_ENOTFOUND, "[model] demo_vocab: %s: %s", c->demo_vocab,
                                strerror(errno));
        if (!S_ISREG(st.st_mode))
            return rs_error_set(e, RS_EINVAL, "[model] demo_vocab: %s is not a regular file",
                                c->demo_vocab);
    } else if (!S_ISDIR(st.st_mode)) {
        return rs_error_set(e, RS_EINVAL, "[model] dir: %s is not a directory", c->model_dir);
    }
    if (c->api_key_file[0] != '\0') {
        char *keys[KEYFILE_MAX_KEYS];
        int n;
        if (keyfile_load(c->api_key_file, keys, KEYFILE_MAX_KEYS, &n, &why) != RS_OK)
            return rs_error_set(e, why.code, "[server] api_key_file: %s", why.msg);
        for (int i = 0; i < n; i++) {
            memset(keys[i], 0, strlen(keys[i]));
            free(keys[i]);
        }
    }
    if (coll_index_type_check(c->default_index, &why) != RS_OK)
        return rs_error_set(e, RS_EINVAL, "[storage] default_index: %s", why.msg);
    if (c->backend == CONF_BACKEND_POSTGRESQL && c->dsn[0] == '\0')
        return rs_error_set(e, RS_EINVAL, "[storage] backend = postgresql needs [storage] dsn "
                            "(a libpq connection string)");
    if (c->backend == CONF_BACKEND_POSTGRESQL && st_pg_ping_dsn(c->dsn, &why) != RS_OK)
        return rs_error_set(e, why.code, "[storage] dsn: %s", why.msg);
    return RS_OK;
}

/* What the store tells about its collections goes to the log. */
static void
log_store(void *arg, const char *collection, const char *what)
{
    (void)arg;
    if (collection != NULL)
        log_msg(RS_LOG_WARN, "collection '%s': %s", collection, what);
    else
        log_msg(RS_LOG_WARN, "%s", what);
}

/* A directory rosimd must write in (often a bind mount owned by root):
 * refused at startup, saying what to do, rather than at the first write.
 * 0, or -1 after logging why. */
static int
need_writable(const char *what, const char *dir)
{
    if (access(dir, W_OK | X_OK) == 0)
        return 0;
    if (errno == EROFS) {
        log_msg(RS_LOG_ERROR, "%s: %s is on a read-only filesystem: mount it read-write, or "
                "choose a directory on a writable one", what, dir);
        return -1;
    }
    log_msg(RS_LOG_ERROR, "%s: %s is not writable by uid %d (%s): make it writable by that "
            "user, e.g. chown -R %d:%d %s", what, dir, (int)geteuid(), strerror(errno),
            (int)geteuid(), (int)getegid(), dir);
    return -1;
}

/* The nearest existing directory above path (where mkdir -p starts). */
static void
existing_parent(const char *path, char *out, size_t len)
{
    struct stat st;
    char *slash;

    snprintf(out, len, "%s", path);
    do {
        slash = strrchr(out, '/');
        if (slash == NULL) {
            snprintf(out, len, ".");
            return;
        }
        slash[slash == out] = '\0';   /* keep "/" itself */
    } while (slash != out && stat(out, &st) != 0);
}

/* Load the model (creating the demo model when allowed and needed) and
 * the collections, and set up app.  0, or -1 after logging why. */
static int
load(const struct conf *conf, struct app *app, struct rf_model **model, struct store **store)
{
    struct rs_error err;
    struct stat st;
    struct store_options so;
    char parent[CONF_PATH_MAX];

    if (stat(conf->model_dir, &st) != 0) {  /* check_start allowed the demo */
        log_msg(RS_LOG_WARN, "model directory %s does not exist: creating a RANDOM DEMO MODEL "
                "there; its vectors and generations are meaningless (set [model] dir to a "
                "real RoFormer-Sim checkpoint)", conf->model_dir);
        existing_parent(conf->model_dir, parent, sizeof(parent));
        if (need_writable("cannot create the demo model", parent) != 0)
            return -1;
        if (rf_demo_write(conf->model_dir, conf->demo_vocab, 20261129, &err) != RS_OK) {
            log_msg(RS_LOG_ERROR, "cannot create the demo model: %s", err.msg);
            return -1;
        }
    }
    rf_set_threads(conf->compute_threads);
    if (rf_model_load_as(model, conf->model_dir, conf->precision == 3
                                                     ? mm_precision_parse("auto")
                                                     : conf->precision, &err) != RS_OK) {
        log_msg(RS_LOG_ERROR, "cannot load the model: %s", err.msg);
        return -1;
    }
    if (rf_model_config(*model)->demo)
        log_msg(RS_LOG_WARN, "serving a RANDOM DEMO MODEL from %s: outputs are meaningless",
                conf->model_dir);
    log_msg(RS_LOG_INFO, "model %s (%s) from %s, %s on %s", rf_model_fingerprint(*model),
            rf_model_format(*model), conf->model_dir,
            mm_precision_name(rf_model_precision(*model)), mm_isa());
    if (stat(conf->data_dir, &st) == 0 && need_writable("[storage] data", conf->data_dir) != 0) {
        rf_model_free(*model);
        return -1;
    }
    so = (struct store_options){ rf_model_config(*model)->d_model, rf_model_fingerprint(*model),
                                 conf->fsync, conf->snapshot_every, conf->default_index,
                                 log_store, NULL,
                                 conf->backend == CONF_BACKEND_POSTGRESQL ? conf->dsn : NULL };
    if (store_open(store, conf->data_dir, &so, &err) != RS_OK) {
        log_msg(RS_LOG_ERROR, "cannot open the %s: %s", so.dsn != NULL ? "collections"
                : "data directory", err.msg);
        rf_model_free(*model);
        return -1;
    }
    if (app_init(app, conf, *model, *store, &err) != RS_OK) {
        log_msg(RS_LOG_ERROR, "%s", err.msg);
        store_close(*store);
        rf_model_free(*model);
        return -1;
    }
    return 0;
}

/* [model] threads = auto: the CPUs this process may use. */
static void
resolve_threads(struct conf *conf, struct conf_origins *origins)
{
    char n[16];
    struct rs_error err;

    if (conf->compute_threads != 0)
        return;
    snprintf(n, sizeof(n), "%d", cpus_available(256));
    if (conf_set_traced(conf, "model.threads", n, CONF_SRC_AUTO, origins, &err) != RS_OK)
        abort();  /* 1..256 is always valid */
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
        { "api-key-file", required_argument, NULL, 'K' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    struct override *ov;
    char removed[256];
    int n_ov = 0, test_only = 0, opt, sig;
    const char *config_path = NULL;
    struct rs_error err;
    struct conf conf;
    struct conf_origins origins;
    struct http_server *http;
    struct watchdog *dog = NULL;
    uint64_t dog_usec = 0;
    int left;
    struct app app;
    struct rf_model *model = NULL;
    struct store *store = NULL;
    sigset_t sigs;

    /* before anything: the environment libgomp reads at load (threadenv.h) */
    if (threadenv_fix(removed, sizeof(removed))) {
        threadenv_reexec(argv);
        if (removed[0] != '\0') {
            fprintf(stderr, "rosimd: cannot execute itself again without %s (%s); unset it: "
                    "OpenMP teams smaller than [model] threads make oneDNN compute wrong "
                    "vectors\n", removed, strerror(errno));
            return 1;
        }
    }
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
        case 'K': ov[n_ov++] = (struct override){ "server.api_key_file", optarg }; break;
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
    memset(&origins, 0, sizeof(origins));
    if (config_path == NULL)
        config_path = default_config_path();
    if (conf_load_traced(&conf, config_path, &origins, &err) != RS_OK ||
        conf_env(&conf, environ, &origins, &err) != RS_OK) {
        fprintf(stderr, "rosimd: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < n_ov; i++) {
        if (conf_set_traced(&conf, ov[i].name, ov[i].value, CONF_SRC_ARG, &origins,
                            &err) != RS_OK) {
            fprintf(stderr, "rosimd: command line: %s\n", err.msg);
            return 1;
        }
    }
    free(ov);
    resolve_threads(&conf, &origins);
    if (check_start(&conf, &err) != RS_OK) {
        fprintf(stderr, "rosimd: %s\n", err.msg);
        return 1;
    }
    if (test_only) {
        printf("# rosimd: configuration %s is valid; in effect:\n", config_path);
        conf_print(stdout, &conf, &origins, config_path);
        return 0;
    }
    log_init();
    log_threshold = conf.log_level;

    /* Signals are taken synchronously by the main thread (sigwait); every
     * thread it starts inherits the blocked mask.  Threads that libraries
     * start before main (OpenBLAS's) do not block them: a handler sends a
     * signal delivered to one of those on to the main thread. */
    main_thread = pthread_self();
    sigemptyset(&sigs);
    for (size_t i = 0; i < N_TAKEN; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = forward_to_main;
        sigemptyset(&sa.sa_mask);
        sigaction(taken_signals[i], &sa, NULL);
        sigaddset(&sigs, taken_signals[i]);
    }
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_msg(RS_LOG_INFO, "rosimd %s starting with %s (%d compute threads)", ROSIM_VERSION,
            config_path, conf.compute_threads);
    if (threadenv_removed() != NULL && threadenv_removed()[0] != '\0')
        log_msg(RS_LOG_WARN, "ignoring %s from the environment: OpenMP teams smaller than "
                "[model] threads make oneDNN compute wrong vectors", threadenv_removed());
    http = http_server_start(&conf, &app, &err);
    if (http == NULL) {
        log_msg(RS_LOG_ERROR, "%s", err.msg);
        return 1;
    }
    log_msg(RS_LOG_INFO, "listening on %s:%d", conf.listen.host, http_server_port(http));
    if (sd_watchdog_enabled(0, &dog_usec) > 0 && dog_usec > 0) {
        dog = watchdog_start(dog_usec, &app, http, conf.listen.host);
        if (dog == NULL) {
            log_msg(RS_LOG_ERROR, "cannot start the watchdog thread");
            http_server_stop(http);
            return 1;
        }
    }
    if (load(&conf, &app, &model, &store) != 0) {
        watchdog_stop(dog);
        http_server_stop(http);
        return 1;
    }
    atomic_store(&app.ready, 1);
    log_msg(RS_LOG_INFO, "ready");
    sd_notify(0, "READY=1\nSTATUS=serving");

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT)
            break;
        log_msg(RS_LOG_INFO, "SIG%s ignored: rosimd reads its configuration at start only "
                "(restart it to apply changes) and logs to stderr", sigabbrev_np(sig));
    }
    log_msg(RS_LOG_INFO, "%s received: finishing the requests in flight",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sd_notify(0, "STOPPING=1");
    watchdog_stop(dog);
    left = http_server_drain(http, conf.shutdown_timeout);
    if (left > 0)
        log_msg(RS_LOG_WARN, "%d requests still running after %d s; closing them", left,
                conf.shutdown_timeout);
    http_server_stop(http);
    app_deinit(&app);
    store_close(store);
    rf_model_free(model);
    log_msg(RS_LOG_INFO, "stopped");
    return 0;
}
