/*
 * collections.c: `rosim import` and `rosim search`, collections from the
 * shell.
 *
 *     rosim import --model DIR --data DIR --collection NAME [--index F] < docs.jsonl
 *         one {"id": "...", "text": "...", "meta": {...}} per line; meta is
 *         optional.  Texts are embedded in batches and each batch is one
 *         acknowledged write; progress goes to stderr.
 *     rosim search --model DIR --data DIR --collection NAME [--k 10] [--min-score S]
 *         one query text per line -> {"hits":[{"id","score","text","meta"}]}
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../index/store.h"
#include "cli.h"

static int
open_collection(const struct rf_model *m, const struct options *o, int create,
                struct store **s, struct coll **c)
{
    struct store_options so = { rf_model_config(m)->d_model, rf_model_fingerprint(m),
                                COLL_FSYNC_ALWAYS, 10000, o->index };
    struct rs_error e;
    int created;

    if (o->data == NULL || o->collection == NULL) {
        fprintf(stderr, "rosim: --data DIR and --collection NAME are required\n");
        return 2;
    }
    if (store_open(s, o->data, &so, &e) != RS_OK) {
        fprintf(stderr, "rosim: %s\n", e.msg);
        return 1;
    }
    if (create && store_create(*s, o->collection, o->index, &created, &e) != RS_OK) {
        fprintf(stderr, "rosim: %s\n", e.msg);
        store_close(*s);
        return 1;
    }
    *c = store_acquire(*s, o->collection);
    if (*c == NULL) {
        fprintf(stderr, "rosim: no collection '%s' in %s\n", o->collection, o->data);
        store_close(*s);
        return 1;
    }
    return 0;
}

/* Embed n texts (truncated to max_length tokens) into vecs. */
static int
embed(const struct rf_model *m, struct rf_state *st, char **texts, int n, int max_length,
      float *vecs, struct rs_error *e)
{
    struct tok_output tok[64];
    const int32_t *ids[64];
    int lens[64], rc = RS_OK;

    memset(tok, 0, sizeof(tok));
    for (int i = 0; i < n && rc == RS_OK; i++) {
        rc = tok_encode(rf_model_vocab(m), texts[i], strlen(texts[i]), max_length, &tok[i], e);
        ids[i] = tok[i].ids;
        lens[i] = tok[i].n;
    }
    if (rc == RS_OK)
        rc = rf_encode(m, st, ids, lens, n, RF_POOL_LINEAR, vecs, e);
    for (int i = 0; i < n; i++)
        tok_output_free(&tok[i]);
    return rc;
}

static void
progress(long done, double t0, long bytes, long total)
{
    double rate = done / (cli_now() - t0 + 1e-9);

    if (total > 0) {
        int width = 30, fill = (int)(width * (double)bytes / (double)total);
        fprintf(stderr, "\r[%.*s%*s] %3d%% %ld docs, %.0f docs/s ", fill,
                "##############################", width - fill, "",
                (int)(100.0 * (double)bytes / (double)total), done, rate);
    } else {
        fprintf(stderr, "\r%ld docs, %.0f docs/s ", done, rate);
    }
}

int
cmd_import(const struct rf_model *m, const struct options *o)
{
    const int H = rf_model_config(m)->d_model, B = o->batch > 64 ? 64 : o->batch;
    struct store *s;
    struct coll *c;
    struct rf_state *st = NULL;
    struct coll_doc docs[64];
    char *ids[64] = { 0 }, *texts[64] = { 0 }, *metas[64] = { 0 };
    float *vecs = malloc((size_t)64 * (size_t)H * sizeof(float));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, done = 0, bytes = 0, total = 0;
    double t0 = cli_now(), last = 0;
    struct stat sb;
    int n = 0, rc;

    if ((rc = open_collection(m, o, 1, &s, &c)) != 0) {
        free(vecs);
        return rc;
    }
    if (fstat(STDIN_FILENO, &sb) == 0 && S_ISREG(sb.st_mode))
        total = (long)sb.st_size;
    st = rf_state_new(m, B, o->max_length);
    if (st == NULL || vecs == NULL) {
        fprintf(stderr, "rosim: out of memory\n");
        rc = 1;
        goto done;
    }
    for (;;) {
        int flush;
        len = read_line(&line, &cap);
        if (len > 0) {
            json_error_t je;
            json_t *j = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &je);
            json_t *id = json_object_get(j, "id"), *text = json_object_get(j, "text");
            json_t *meta = json_object_get(j, "meta");
            lineno++;
            bytes += len + 1;
            if (!json_is_string(id) || !json_is_string(text) || (meta && !json_is_object(meta))) {
                /* what came before is still stored; then the import stops */
                fprintf(stderr, "\nrosim: line %ld: %s\n", lineno, j == NULL ? je.text :
                        "expected {\"id\": string, \"text\": string, \"meta\": object}");
                rc = 1;
                len = -1;
            } else {
                ids[n] = strdup(json_string_value(id));
                texts[n] = strdup(json_string_value(text));
                metas[n] = meta ? json_dumps(meta, JSON_COMPACT) : strdup("{}");
                if (ids[n] == NULL || texts[n] == NULL || metas[n] == NULL) {
                    fprintf(stderr, "\nrosim: out of memory\n");
                    json_decref(j);
                    rc = 1;
                    break;
                }
                n++;
            }
            json_decref(j);
        } else if (len == 0) {
            lineno++;
            bytes++;
            continue;
        }
        flush = n == B || (len < 0 && n > 0);
        if (flush) {
            struct rs_error e;
            if (embed(m, st, texts, n, o->max_length, vecs, &e) != RS_OK) {
                fprintf(stderr, "\nrosim: near line %ld: %s\n", lineno, e.msg);
                rc = 1;
                break;
            }
            for (int i = 0; i < n; i++)
                docs[i] = (struct coll_doc){ ids[i], texts[i], metas[i], vecs + (size_t)i * (size_t)H, 0 };
            if (coll_upsert(c, docs, n, &e) != RS_OK) {
                fprintf(stderr, "\nrosim: near line %ld: %s\n", lineno, e.msg);
                rc = 1;
                break;
            }
            done += n;
            for (int i = 0; i < n; i++) {
                free(ids[i]);
                free(texts[i]);
                free(metas[i]);
                ids[i] = texts[i] = metas[i] = NULL;
            }
            n = 0;
            if (len >= 0 && cli_now() - last > 0.2) {
                progress(done, t0, bytes, total);
                last = cli_now();
            }
        }
        if (len < 0)
            break;
    }
    if (rc == 0) {
        progress(done, t0, total ? total : bytes, total);
        fprintf(stderr, "\n");
    }
done:
    for (int i = 0; i < 64; i++) {
        free(ids[i]);
        free(texts[i]);
        free(metas[i]);
    }
    free(line);
    free(vecs);
    rf_state_free(st);
    store_release(s, c);
    store_close(s);
    return rc;
}

int
cmd_search(const struct rf_model *m, const struct options *o)
{
    const int H = rf_model_config(m)->d_model;
    struct store *s;
    struct coll *c;
    struct rf_state *st = rf_state_new(m, 1, o->max_length);
    float *vec = malloc((size_t)H * sizeof(float));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc;

    if (st == NULL || vec == NULL) {
        fprintf(stderr, "rosim: out of memory\n");
        rf_state_free(st);
        free(vec);
        return 1;
    }
    if ((rc = open_collection(m, o, 0, &s, &c)) != 0) {
        rf_state_free(st);
        free(vec);
        return rc;
    }
    while (rc == 0 && (len = read_line(&line, &cap)) >= 0) {
        struct coll_hit *hits;
        struct rs_error e;
        json_t *list;
        int n;
        lineno++;
        if (embed(m, st, &line, 1, o->max_length, vec, &e) != RS_OK ||
            coll_search(c, vec, o->k, o->min_score, &hits, &n, &e) != RS_OK) {
            fprintf(stderr, "rosim: line %ld: %s\n", lineno, e.msg);
            rc = 1;
            break;
        }
        list = json_array();
        for (int i = 0; i < n; i++) {
            json_error_t je;
            json_t *meta = json_loads(hits[i].meta, 0, &je);
            json_array_append_new(list, json_pack("{s:s,s:f,s:s,s:o}", "id", hits[i].id,
                                                  "score", (double)hits[i].score, "text",
                                                  hits[i].text, "meta",
                                                  meta ? meta : json_object()));
        }
        coll_hits_free(hits, n);
        if (emit(json_pack("{s:o}", "hits", list)) != 0)
            rc = 1;
    }
    free(line);
    free(vec);
    rf_state_free(st);
    store_release(s, c);
    store_close(s);
    return rc;
}
