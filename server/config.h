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
 */
#ifndef ROSIM_CONFIG_H
#define ROSIM_CONFIG_H

#include <stddef.h>

#include "../model/error.h"

#define CONF_PATH_MAX 1024

enum conf_fsync { CONF_FSYNC_ALWAYS, CONF_FSYNC_BATCH, CONF_FSYNC_OFF };

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
    size_t max_body_bytes;     /* request bodies larger than this get 413 */
    int log_level;             /* enum log_level */
    char api_key_file[CONF_PATH_MAX];  /* "" = no authentication */
    int metrics_auth;          /* /metrics needs a key too */
    int shutdown_timeout;      /* seconds to finish requests on SIGTERM */

    /* [model] */
    char model_dir[CONF_PATH_MAX];
    int compute_threads;       /* OpenBLAS and oneDNN threads for inference */
    int precision;             /* 0 fp32, 1 bf16, 2 int8 (enum mm_precision), 3 auto */
    int workers;               /* model runs at the same time */
    int max_length;            /* tokens per text when embedding (bert4keras maxlen) */
    int demo_if_missing;       /* create a random demo model when dir is absent */
    int batch_tokens;          /* tokens per encoder batch, across requests */
    int batch_wait_us;         /* how long a batch waits to fill */
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
    int fsync;                 /* enum conf_fsync */
    char default_index[128];   /* FAISS factory string for new collections */
    int snapshot_every;        /* writes between index snapshots */
};

/* Fill c with the documented defaults. */
void conf_defaults(struct conf *c);

/* Read the INI file at path over the values already in c.  Returns RS_OK,
 * or an error (RS_EIO: cannot read; RS_EINVAL: bad content) with a message
 * "path:line: [section] key: reason". */
int conf_load(struct conf *c, const char *path, struct rs_error *e);

/* Set one option by its full name "section.key" (e.g. "server.listen"),
 * with the same validation as the file.  Returns RS_OK or RS_EINVAL. */
int conf_set(struct conf *c, const char *name, const char *value,
             struct rs_error *e);

/* Name of an fsync policy ("always", "batch", "off"). */
const char *conf_fsync_name(int policy);

#endif
