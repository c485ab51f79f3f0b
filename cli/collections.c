/*
 * collections.c: `rosim import` and `rosim search`, collections from the
 * shell.
 *
 *     rosim import --model DIR --data DIR --collection NAME [--index F] < docs.jsonl
 *         one {"id": "...", "text": "...", "meta": {...}, "vector": [...]}
 *         per line; meta is optional, and so is text when a vector (of the
 *         model's dimension, any length: it is normalized) is given: such a
 *         document is not embedded.  Every line is checked before anything is stored (a
 *         second pass reads stdin again, or a temporary copy of it when it
 *         is a pipe).  Texts are embedded in batches and each batch is one
 *         acknowledged write; progress goes to stderr, then the seq of the
 *         last write, and a failure says which lines were stored.
 *     rosim import --model DIR --dsn DSN [--data DIR] --collection NAME ...
 *         the same into the collections on PostgreSQL (storage.h), while
 *         rosimd replicas on the same database serve them: they apply the
 *         writes within a second, or at once for a read with min_seq.  DIR
 *         then only keeps this process's cache (documents, index
 *         snapshots; kept between runs, it spares copying them from the
 *         database); without --data a temporary directory is used and
 *         removed at exit.
 *     rosim search --model DIR --data DIR --collection NAME [--k 10] [--min-score S]
 *         one query text per line -> {"hits":[{"id","score","text","meta"}]}
 *         (--dsn as for import)
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../index/storage.h"
#include "../index/store.h"
#include "../model/embed.h"
#include "cli.h"

/* What the store cannot return (a collection that failed to open, a
 * snapshot that failed at close) goes to stderr. */
static void
warn_store(void *arg, const char *collection, const char *what)
{
    (void)arg;
    if (collection != NULL)
        fprintf(stderr, "rosim: warning: collection '%s': %s\n", collection, what);
    else
        fprintf(stderr, "rosim: warning: %s\n", what);
}

/* The collections of --data, or of --dsn with --data (or a new temporary
 * directory: tmp) for the cache of their documents and indexes. */
struct opened {
    struct store *s;
    char *tmp;              /* removed by close_store; NULL: none */
};

static int
remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Open (and lock) the data directory.  0, or the exit status after saying
 * why. */
static int
open_store(const struct rf_model *m, const struct options *o, struct opened *op)
{
    struct store_options so = { rf_model_config(m)->d_model, rf_model_fingerprint(m),
                                COLL_FSYNC_ALWAYS, 10000, o->index, warn_store, NULL, o->dsn };
    const char *dir = o->data;
    struct rs_error e;

    op->s = NULL;
    op->tmp = NULL;
    if ((o->data == NULL && o->dsn == NULL) || o->collection == NULL) {
        fprintf(stderr, "rosim: --data DIR (or --dsn DSN) and --collection NAME are required\n");
        return 2;
    }
    if (o->dsn != NULL && st_pg_dsn_check(o->dsn, &e) != RS_OK) {
        fprintf(stderr, "rosim: --dsn: %s\n", e.msg);
        return 2;
    }
    if (dir == NULL) {
        const char *t = getenv("TMPDIR");
        if (asprintf(&op->tmp, "%s/rosim-import-XXXXXX", t != NULL && *t ? t : "/tmp") < 0 ||
            mkdtemp(op->tmp) == NULL) {
            fprintf(stderr, "rosim: cannot make a temporary directory: %s\n", strerror(errno));
            free(op->tmp);
            op->tmp = NULL;
            return 1;
        }
        dir = op->tmp;
    }
    if (store_open(&op->s, dir, &so, &e) != RS_OK) {
        fprintf(stderr, "rosim: %s\n", e.msg);
        return 1;
    }
    return 0;
}

/* Close the store, then remove the temporary directory (if any). */
static void
close_store(struct opened *op)
{
    store_close(op->s);
    if (op->tmp != NULL && nftw(op->tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "rosim: warning: cannot remove %s: %s\n", op->tmp, strerror(errno));
    free(op->tmp);
}

/* The collection named by --collection, created first when create is set.
 * 0, or 1 after saying why. */
static int
get_collection(struct store *s, const struct options *o, int create, struct coll **c)
{
    struct rs_error e;
    int created;

    if ((create && store_create(s, o->collection, o->index, &created, &e) != RS_OK) ||
        store_get(s, o->collection, c, &e) != RS_OK) {
        fprintf(stderr, "rosim: %s\n", e.msg);
        return 1;
    }
    return 0;
}

/* Vectors of n texts (n <= 64) into vecs by the pipeline of
 * model/embed.h, in st (batch x max_length), not normalized: the
 * collection normalizes what it stores and searches. */
static int
embed(const struct rf_model *m, struct rf_state *st, int batch, char **texts, int n,
      int max_length, float *vecs, struct rs_error *e)
{
    struct emb_options o = emb_default_options();
    struct emb_text t[64];

    o.max_length = max_length;
    o.normalize = 0;
    o.batch = batch;
    o.state = st;
    for (int i = 0; i < n; i++)
        t[i] = (struct emb_text){ texts[i], strlen(texts[i]) };
    return emb_texts(m, t, n, &o, vecs, NULL, e);
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

/* --- import --------------------------------------------------------------- */

/* One input line: the strings are borrowed from j. */
struct import_doc {
    json_t *j;
    const char *id, *text;
    json_t *meta;          /* NULL when absent */
    json_t *vector;        /* NULL when absent */
};

/* Whether v is a vector of dim finite floats, not all 0; -1 with the
 * reason in why if not. */
static int
check_vector(json_t *v, int dim, char *why, size_t wlen)
{
    json_t *x;
    size_t i;
    int nonzero = 0;

    if (!json_is_array(v) || json_array_size(v) != (size_t)dim) {
        snprintf(why, wlen, "\"vector\" must be a list of %d numbers (the model's dimension)",
                 dim);
        return -1;
    }
    json_array_foreach(v, i, x) {
        if (!json_is_number(x) || !isfinite((float)json_number_value(x))) {
            snprintf(why, wlen, "\"vector\"[%zu] is not a number that fits a float", i);
            return -1;
        }
        nonzero |= json_number_value(x) != 0;
    }
    if (!nonzero) {
        snprintf(why, wlen, "\"vector\" is all zeros");
        return -1;
    }
    return 0;
}

/* Parse {"id": 1..COLL_MAX_ID_BYTES bytes, "text": string, "meta": object, "vector":
 * [dim numbers]} (meta optional, text optional with a vector, nothing
 * else).  0, or -1 with the reason in why. */
static int
parse_doc(const char *line, size_t len, int dim, struct import_doc *d, char *why, size_t wlen)
{
    static const char shape[] = "expected {\"id\": string, \"text\": string, \"meta\": object, "
                                "\"vector\": [numbers]} with text or vector";
    json_error_t je;
    const char *key;
    json_t *v;

    memset(d, 0, sizeof(*d));
    if ((d->j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
        snprintf(why, wlen, "%s", je.text);
        return -1;
    }
    if (!json_is_object(d->j)) {
        snprintf(why, wlen, "%s", shape);
        goto bad;
    }
    json_object_foreach(d->j, key, v) {
        if (strcmp(key, "id") != 0 && strcmp(key, "text") != 0 && strcmp(key, "meta") != 0 &&
            strcmp(key, "vector") != 0) {
            snprintf(why, wlen, "unknown field '%.64s' (expected id, text, meta and vector)",
                     key);
            goto bad;
        }
    }
    d->meta = json_object_get(d->j, "meta");
    d->id = json_string_value(json_object_get(d->j, "id"));
    d->text = json_string_value(json_object_get(d->j, "text"));
    d->vector = json_object_get(d->j, "vector");
    if (d->id == NULL || (d->text == NULL && d->vector == NULL) ||
        (d->text == NULL && json_object_get(d->j, "text") != NULL) ||
        (d->meta != NULL && !json_is_object(d->meta))) {
        snprintf(why, wlen, "%s", shape);
        goto bad;
    }
    if (d->vector != NULL && check_vector(d->vector, dim, why, wlen) != 0)
        goto bad;
    if (strlen(d->id) == 0 || strlen(d->id) > COLL_MAX_ID_BYTES) {
        snprintf(why, wlen, "an id has 1 to %d bytes", COLL_MAX_ID_BYTES);
        goto bad;
    }
    return 0;
bad:
    json_decref(d->j);
    d->j = NULL;
    return -1;
}

/* The first pass: check every line of stdin before anything is stored.
 * The second pass reads *src: stdin rewound when it is a regular file,
 * else a temporary copy.  0, or 1 after naming the first bad line. */
static int
check_input(FILE **src, int dim, long *total)
{
    struct stat sb;
    off_t start = ftello(stdin);
    int seekable = fstat(STDIN_FILENO, &sb) == 0 && S_ISREG(sb.st_mode) && start >= 0;
    FILE *copy = seekable ? NULL : tmpfile();
    char *line = NULL, why[200];
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;

    *total = 0;
    if (!seekable && copy == NULL) {
        fprintf(stderr, "rosim: cannot make a temporary file: %s\n", strerror(errno));
        return 1;
    }
    while (rc == 0 && (len = read_line(&line, &cap)) >= 0) {
        struct import_doc d;
        lineno++;
        *total += len + 1;
        if (len > 0 && parse_doc(line, (size_t)len, dim, &d, why, sizeof(why)) != 0) {
            fprintf(stderr, "rosim: line %ld: %s; nothing was imported\n", lineno, why);
            rc = 1;
        } else if (len > 0) {
            json_decref(d.j);
        }
        if (rc == 0 && copy != NULL && fprintf(copy, "%s\n", line) < 0) {
            fprintf(stderr, "rosim: cannot write a temporary file: %s\n", strerror(errno));
            rc = 1;
        }
    }
    free(line);
    if (rc == 0 && seekable && fseeko(stdin, start, SEEK_SET) != 0) {
        fprintf(stderr, "rosim: cannot read the input again: %s\n", strerror(errno));
        rc = 1;
    }
    if (rc == 0 && copy != NULL && (fflush(copy) != 0 || fseeko(copy, 0, SEEK_SET) != 0)) {
        fprintf(stderr, "rosim: cannot write a temporary file: %s\n", strerror(errno));
        rc = 1;
    }
    if (rc != 0 && copy != NULL)
        fclose(copy);
    else
        *src = copy != NULL ? copy : stdin;
    return rc;
}

/* Free the batch of n documents. */
static void
batch_clear(char **ids, char **texts, char **metas, int n)
{
    for (int i = 0; i < n; i++) {
        free(ids[i]);
        free(texts[i]);
        free(metas[i]);
        ids[i] = texts[i] = metas[i] = NULL;
    }
}

int
cmd_import(const struct rf_model *m, const struct options *o)
{
    const int H = rf_model_config(m)->d_model, B = o->batch > 64 ? 64 : o->batch;
    struct opened op;
    struct store *s;
    struct coll *c = NULL;
    struct rf_state *st = NULL;
    struct coll_doc docs[64];
    char *ids[64] = { 0 }, *texts[64] = { 0 }, *metas[64] = { 0 }, *to_embed[64];
    int embed_at[64], n_embed = 0;   /* the documents of the batch without a vector */
    float *vecs = malloc((size_t)64 * (size_t)H * sizeof(float));
    float *embedded = malloc((size_t)64 * (size_t)H * sizeof(float));
    FILE *src = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, stored_through = 0, done = 0, bytes = 0, total = 0;
    double t0 = cli_now(), last = 0;
    int64_t seq = 0;
    int n = 0, rc;

    if ((rc = open_store(m, o, &op)) != 0) {
        free(vecs);
        free(embedded);
        close_store(&op);
        return rc;
    }
    s = op.s;
    st = rf_state_new(m, B, o->max_length);
    if (st == NULL || vecs == NULL || embedded == NULL) {
        fprintf(stderr, "rosim: out of memory\n");
        rc = 1;
        goto done;
    }
    /* nothing is stored unless every line is good */
    if ((rc = check_input(&src, H, &total)) != 0 || (rc = get_collection(s, o, 1, &c)) != 0)
        goto done;
    for (;;) {
        len = read_line_from(src, &line, &cap);
        if (len > 0) {
            struct import_doc d;
            char why[200];
            lineno++;
            bytes += len + 1;
            if (parse_doc(line, (size_t)len, H, &d, why, sizeof(why)) != 0) {   /* the file changed */
                fprintf(stderr, "\nrosim: line %ld: %s\n", lineno, why);
                rc = 1;
                break;
            }
            ids[n] = strdup(d.id);
            texts[n] = strdup(d.text != NULL ? d.text : "");
            metas[n] = d.meta ? json_dumps(d.meta, JSON_COMPACT) : strdup("{}");
            if (d.vector != NULL) {
                for (int j = 0; j < H; j++)
                    vecs[(size_t)n * (size_t)H + (size_t)j] =
                        (float)json_number_value(json_array_get(d.vector, (size_t)j));
            } else {
                embed_at[n_embed] = n;
                to_embed[n_embed++] = texts[n];
            }
            json_decref(d.j);
            if (ids[n] == NULL || texts[n] == NULL || metas[n] == NULL) {
                fprintf(stderr, "\nrosim: out of memory\n");
                n++;
                rc = 1;
                break;
            }
            n++;
        } else if (len == 0) {
            lineno++;
            bytes++;
            continue;
        }
        if (n == B || (len < 0 && n > 0)) {
            struct rs_error e;
            if (n_embed > 0 &&
                embed(m, st, B, to_embed, n_embed, o->max_length, embedded, &e) != RS_OK) {
                fprintf(stderr, "\nrosim: line %ld: %s\n", lineno, e.msg);
                rc = 1;
                break;
            }
            for (int i = 0; i < n_embed; i++)
                memcpy(vecs + (size_t)embed_at[i] * (size_t)H, embedded + (size_t)i * (size_t)H,
                       (size_t)H * sizeof(float));
            for (int i = 0; i < n; i++)
                docs[i] = (struct coll_doc){ ids[i], texts[i], metas[i], vecs + (size_t)i * (size_t)H, 0 };
            if (coll_upsert(c, docs, n, &seq, &e) != RS_OK) {
                fprintf(stderr, "\nrosim: line %ld: %s\n", lineno, e.msg);
                rc = 1;
                break;
            }
            done += n;
            stored_through = lineno;
            batch_clear(ids, texts, metas, n);
            n = n_embed = 0;
            if (len >= 0 && cli_now() - last > 0.2) {
                progress(done, t0, bytes, total);
                last = cli_now();
            }
        }
        if (len < 0)
            break;
    }
    if (rc == 0) {
        progress(done, t0, total, total);
        fprintf(stderr, "\n");
        if (done > 0)
            fprintf(stderr, "rosim: stored through seq %lld (a read with min_seq=%lld sees "
                    "every document)\n", (long long)seq, (long long)seq);
    } else if (done > 0) {
        fprintf(stderr, "rosim: lines 1 to %ld (%ld documents) were stored; the rest was not\n",
                stored_through, done);
    } else {
        fprintf(stderr, "rosim: no document was stored\n");
    }
done:
    batch_clear(ids, texts, metas, n);
    if (src != NULL && src != stdin)
        fclose(src);
    free(line);
    free(vecs);
    free(embedded);
    rf_state_free(st);
    store_release(s, c);
    close_store(&op);
    return rc;
}

int
cmd_search(const struct rf_model *m, const struct options *o)
{
    const int H = rf_model_config(m)->d_model;
    struct opened op;
    struct store *s;
    struct coll *c = NULL;
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
    if ((rc = open_store(m, o, &op)) != 0 || (rc = get_collection(op.s, o, 0, &c)) != 0) {
        rf_state_free(st);
        free(vec);
        close_store(&op);
        return rc;
    }
    s = op.s;
    while (rc == 0 && (len = read_line(&line, &cap)) >= 0) {
        struct coll_hit *hits;
        struct rs_error e;
        json_t *list;
        int n;
        lineno++;
        if (embed(m, st, 1, &line, 1, o->max_length, vec, &e) != RS_OK ||
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
    close_store(&op);
    return rc;
}
