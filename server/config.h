/*
 * config.h: rosimd's configuration, read from an INI file (libinih) and
 * overridable from the command line.
 *
 * Every option lives in one table in config.c with its type, bounds and
 * default; conf/rosimd.conf documents each of them.  Loading is strict: an
 * unknown section or key, a duplicate, a malformed or out-of-range value is
 * an error naming the file, the line and the key, e.g.
 *     conf/rosimd.conf:12: [model] threads: 0 is out of range (1..256)
 * Nothing is half-applied by a failed load as far as the caller is
 * concerned: on error the struct must be discarded.
 *
 * Layers, each over the one before: built-in defaults, the file, the
 * environment (ROSIM_<SECTION>_<KEY>, e.g. ROSIM_MODEL_THREADS=4), the
 * command line (-o section.key=value).  The *_traced variants record in a
 * struct conf_origins where each value came from, which conf_print() shows
 * (rosimd -t).
 *
 * Paths: a relative path written in a configuration file is relative to the
 * directory of that file (conf_load stores it joined to that directory); a
 * relative path given to conf_set (the command line) or left at its
 * default is relative to the working directory.
 */
#ifndef ROSIM_CONFIG_H
#define ROSIM_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "../index/collection.h"
#include "../model/error.h"

#define CONF_PATH_MAX 1024

struct conf_addr {
    char host[64];  /* numeric IPv4 or IPv6 address, without brackets */
    int port;       /* 0 asks the kernel for a free port */
};

struct conf {
    /* [server] */
    struct conf_addr listen;
    int max_connections;       /* open connections in all */
    int per_ip_connections;    /* open connections from one address */
    int connection_timeout;    /* seconds a connection may stay idle */
    int read_timeout;          /* seconds to receive a whole request */
    size_t max_body_bytes;     /* request bodies larger than this get 413 */
    int log_level;             /* enum log_level */
    char api_key_file[CONF_PATH_MAX];  /* "" = no authentication */
    int metrics_auth;          /* /metrics needs a key too */
    int shutdown_timeout;      /* seconds to finish requests on SIGTERM */

    /* [model] */
    char model_dir[CONF_PATH_MAX];
    int compute_threads;       /* oneDNN and OpenBLAS threads for inference; 0 = auto */
    int precision;             /* 0 fp32, 1 bf16, 2 int8 (enum mm_precision), 3 auto */
    int workers;               /* model runs at the same time */
    int max_length;            /* tokens per text when embedding (bert4keras maxlen) */
    int demo_if_missing;       /* create a random demo model when dir is absent */
    int batch_tokens;          /* tokens per encoder batch, across requests */
    int batch_wait_us;         /* how long after a batch the next waits for its clients */
    char demo_vocab[CONF_PATH_MAX];

    /* [limits] */
    int max_texts;             /* texts per request */
    size_t max_text_bytes;     /* bytes per text */
    int max_n;                 /* generation: candidates */
    int max_k;                 /* generation: paraphrases returned */
    int max_new_tokens;        /* generation: max_length */
    int max_documents;         /* documents per upsert */
    int max_search_k;          /* hits per search */
    int request_timeout;       /* seconds a request may wait for the model */
    int max_queue;             /* requests waiting for the model; more get 429 */
    int max_generate_cost;     /* sum of n x max_length of generations running */

    /* [storage] */
    char data_dir[CONF_PATH_MAX];
    int fsync;                 /* enum coll_fsync */
    char default_index[128];   /* FAISS factory string for new collections */
    int snapshot_every;        /* writes between index snapshots */
    int backend;               /* enum conf_backend: where documents live */
    char dsn[CONF_PATH_MAX];   /* backend postgresql: a libpq connection string */
};

enum conf_backend { CONF_BACKEND_SQLITE, CONF_BACKEND_POSTGRESQL };

/* Fill c with the documented defaults. */
void conf_defaults(struct conf *c);

/* Read the INI file at path over the values already in c.  Returns RS_OK,
 * or an error (RS_EIO: cannot read, or a directory; RS_EINVAL: bad
 * content, including a [section] header of no known section) with a
 * message "path:line: [section] key: reason". */
int conf_load(struct conf *c, const char *path, struct rs_error *e);

/* Set one option by its full name "section.key" (e.g. "server.listen"),
 * with the same validation as the file.  Returns RS_OK or RS_EINVAL. */
int conf_set(struct conf *c, const char *name, const char *value,
             struct rs_error *e);

/* Name of an fsync policy ("always", "batch", "off"). */
const char *conf_fsync_name(int policy);

/* --- layers and where each value came from ---------------------------- */

enum conf_source {
    CONF_SRC_DEFAULT,   /* the built-in default (a zeroed struct says this) */
    CONF_SRC_FILE,      /* the configuration file, at line[] */
    CONF_SRC_ENV,       /* a ROSIM_<SECTION>_<KEY> environment variable */
    CONF_SRC_ARG,       /* the command line */
    CONF_SRC_AUTO       /* "auto", resolved by rosimd (threads) */
};

#define CONF_MAX_OPTIONS 64

/* Per option, in the order of the table (and of conf_print). */
struct conf_origins {
    unsigned char source[CONF_MAX_OPTIONS];   /* enum conf_source */
    int line[CONF_MAX_OPTIONS];               /* CONF_SRC_FILE: its line */
};

/* conf_load and conf_set that also record origins (o may be NULL). */
int conf_load_traced(struct conf *c, const char *path, struct conf_origins *o,
                     struct rs_error *e);
int conf_set_traced(struct conf *c, const char *name, const char *value,
                    enum conf_source src, struct conf_origins *o, struct rs_error *e);

/* Apply every ROSIM_<SECTION>_<KEY>=VALUE of env (a NULL-terminated
 * environ-style array) whose SECTION is one of the file's sections, e.g.
 * ROSIM_SERVER_LISTEN or ROSIM_LIMITS_MAX_TEXTS; other ROSIM_* names are
 * not ours and are ignored.  An unknown KEY or a bad value is an error
 * naming the variable.  Returns RS_OK or RS_EINVAL. */
int conf_env(struct conf *c, char *const *env, struct conf_origins *o,
             struct rs_error *e);

/* Write the effective configuration as an INI file that conf_load reads
 * back, each value followed by where it came from as a ; comment
 * ("; default", "; FILE:LINE", "; environment ROSIM_..", "; command line",
 * "; auto: ..."). */
void conf_print(FILE *out, const struct conf *c, const struct conf_origins *o,
                const char *path);

#endif
