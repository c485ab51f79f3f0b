/*
 * cli.h: what the rosim subcommands share: their options and line I/O.
 */
#ifndef ROSIM_CLI_H
#define ROSIM_CLI_H

#include <jansson.h>
#include <stdio.h>
#include <sys/types.h>

#include "../model/generate.h"
#include "../model/roformer.h"

struct options {
    const char *model;
    int max_length;     /* tokenize: 0 = none; embed: default 64 */
    int batch;
    int raw;
    int pooler;
    int threads;
    struct gen_params gen;
    int k;              /* paraphrases or hits to return */
    int seeded;
    const char *data;   /* import, search: the data directory */
    const char *collection;
    const char *index;  /* import: FAISS index type for a new collection */
    float min_score;
    const char *dsn;    /* import, search: PostgreSQL (NULL: SQLite in data) */
};

/* Print a JSON value on its own line, without ASCII escaping; steals j.
 * Returns 0 or -1 when stdout fails. */
int emit(json_t *j);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* getline from stdin (or f) without the line end (\n or \r\n); -1 at
 * the end. */
ssize_t read_line(char **line, size_t *cap);
ssize_t read_line_from(FILE *f, char **line, size_t *cap);

/* rosim import / rosim search (collections.c). */
int cmd_import(const struct rf_model *m, const struct options *o);
int cmd_search(const struct rf_model *m, const struct options *o);

#endif
