/*
 * storage_mirror.c: a collection on shared storage (PostgreSQL) with a
 * copy of its documents in this process's data directory (a docs.db, as
 * docstore.c keeps them), behind the same operations (storage.h).
 *
 * Writes go to the shared store, then the copy is brought up to date;
 * every read (documents by id or label, filters, the change feed the
 * index follows) is answered by the copy.  So searches never wait on the
 * database, and go on while it is away; only writes and catching up need
 * it.  The copy keeps the shared store's labels and sequence numbers
 * (ds_apply), so its change feed is the shared one's, up to its sequence.
 *
 * "Bringing up to date" (pull) reads the shared changes after the copy's
 * sequence into the copy, in one transaction: seq() pulls first, so the
 * collection above, which asks seq() before following the feed, catches
 * up with the database in one step.  The copy is a cache: one that cannot
 * be opened is removed and made again from the database.
 */
#include "storage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mirror {
    struct st_coll base;
    struct st_coll *shared;
    struct docstore *copy;
};

static const struct st_ops mirror_ops;

#define M(c) ((struct mirror *)(c))

/* --- the copy ------------------------------------------------------------- */

static int
pull_shared(const struct ds_feed *f, int64_t *upto, void *arg, struct rs_error *e)
{
    struct mirror *m = arg;
    int64_t after;
    int rc;

    if ((rc = ds_seq(m->copy, &after, e)) != RS_OK)
        return rc;
    return m->shared->ops->changes(m->shared, after, f, upto, e);
}

/* Bring the copy up to date with the shared store, when it is behind. */
static int
pull(struct mirror *m, struct rs_error *e)
{
    int64_t mine, theirs;
    int rc;

    if ((rc = ds_seq(m->copy, &mine, e)) != RS_OK ||
        (rc = m->shared->ops->seq(m->shared, &theirs, e)) != RS_OK)
        return rc;
    return theirs > mine ? ds_apply(m->copy, pull_shared, m, e) : RS_OK;
}

/* Open the copy in dir, made from the shared store's settings when new;
 * one that is damaged or of another collection is made again. */
static int
open_copy(struct mirror *m, const char *dir, int fsync, struct rs_error *e)
{
    struct ds_settings want, have;
    int rc;

    if ((rc = m->shared->ops->settings(m->shared, &want, e)) != RS_OK)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = ds_open(&m->copy, dir, 1, fsync, e);
        if (rc == RS_OK && (rc = ds_settings_get(m->copy, &have, e)) == RS_ENOTFOUND)
            return ds_settings_init(m->copy, &want, e);
        if (rc == RS_OK && have.dim == want.dim && strcmp(have.factory, want.factory) == 0 &&
            strcmp(have.fingerprint, want.fingerprint) == 0)
            return RS_OK;
        if (rc == RS_ENOMEM || rc == RS_ENOSPC)
            break;
        ds_close(m->copy);   /* not a copy of this collection: start again */
        m->copy = NULL;
        ds_remove_files(dir);
    }
    return rc != RS_OK ? rc : rs_error_set(e, RS_EFORMAT, "%s: the copy of the documents "
                                           "cannot be made", dir);
}

int
st_mirror_open(struct st_coll **out, struct st_coll *shared, const char *dir, int fsync,
               struct rs_error *e)
{
    struct mirror *m = calloc(1, sizeof(*m));
    int rc;

    *out = NULL;
    if (m == NULL) {
        shared->ops->close(shared);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    m->base.ops = &mirror_ops;
    m->shared = shared;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        rc = rs_error_set(e, errno == ENOSPC ? RS_ENOSPC : RS_EIO, "%s: %s", dir,
                          strerror(errno));
    else
        rc = open_copy(m, dir, fsync, e);
    if (rc != RS_OK) {
        mirror_ops.close(&m->base);
        return rc;
    }
    *out = &m->base;
    return RS_OK;
}

/* --- operations ----------------------------------------------------------- */

static void
mirror_close(struct st_coll *c)
{
    ds_close(M(c)->copy);
    M(c)->shared->ops->close(M(c)->shared);
    free(c);
}

static int64_t
mirror_uid(struct st_coll *c)
{
    return M(c)->shared->ops->uid(M(c)->shared);
}

static int
mirror_settings(struct st_coll *c, struct ds_settings *s, struct rs_error *e)
{
    return ds_settings_get(M(c)->copy, s, e);
}

static int
mirror_set_effort(struct st_coll *c, const struct coll_effort *eff, struct rs_error *e)
{
    int rc = M(c)->shared->ops->set_effort(M(c)->shared, eff, e);

    return rc == RS_OK ? ds_settings_set_effort(M(c)->copy, eff, e) : rc;
}

/* The copy's sequence, after a pull: the database's, when it answers. */
static int
mirror_seq(struct st_coll *c, int64_t *seq, struct rs_error *e)
{
    int rc = pull(M(c), e);

    return rc == RS_OK ? ds_seq(M(c)->copy, seq, e) : rc;
}

static int
mirror_count(struct st_coll *c, long *n, struct rs_error *e)
{
    return ds_count(M(c)->copy, n, e);
}

/* A write is acknowledged once the database committed it; the copy
 * follows at once when it can, else at the next pull (the write stands). */
static int
mirror_upsert(struct st_coll *c, const struct coll_doc *docs, const float *vecs, int n,
              int64_t *first, int64_t *retired, size_t *n_retired, long *new_docs,
              struct rs_error *e)
{
    int rc = M(c)->shared->ops->upsert(M(c)->shared, docs, vecs, n, first, retired, n_retired,
                                       new_docs, e);

    if (rc == RS_OK)
        pull(M(c), NULL);
    return rc;
}

static int
mirror_del(struct st_coll *c, const char *id, int64_t *seq, int64_t *label, struct rs_error *e)
{
    int rc = M(c)->shared->ops->del(M(c)->shared, id, seq, label, e);

    if (rc == RS_OK)
        pull(M(c), NULL);
    return rc;
}

static int
mirror_get(struct st_coll *c, const char *id, struct coll_hit *out, struct rs_error *e)
{
    return ds_get(M(c)->copy, id, out, e);
}

static int
mirror_get_label(struct st_coll *c, int64_t label, struct coll_hit *out, float *vec,
                 struct rs_error *e)
{
    return ds_get_label(M(c)->copy, label, out, vec, e);
}

static int
mirror_match_labels(struct st_coll *c, const struct coll_filter *f, const int64_t *labels,
                    size_t n, unsigned char *match, struct rs_error *e)
{
    return ds_match_labels(M(c)->copy, f, labels, n, match, e);
}

static int
mirror_match_vectors(struct st_coll *c, const struct coll_filter *f,
                     int (*fn)(int64_t label, const float *vec, void *arg), void *arg,
                     struct rs_error *e)
{
    return ds_match_vectors(M(c)->copy, f, fn, arg, e);
}

static int
mirror_changes(struct st_coll *c, int64_t after_seq, const struct ds_feed *f, int64_t *upto,
               struct rs_error *e)
{
    return ds_changes(M(c)->copy, after_seq, f, upto, e);
}

/* The copy's retired labels only: the database keeps them for the others. */
static int
mirror_prune_retired(struct st_coll *c, int64_t seq, struct rs_error *e)
{
    return ds_prune_retired(M(c)->copy, seq, e);
}

static int
mirror_wait(struct st_coll *c, int64_t after_seq, int timeout_ms, int64_t *seq,
            struct rs_error *e)
{
    return M(c)->shared->ops->wait(M(c)->shared, after_seq, timeout_ms, seq, e);
}

static const struct st_ops mirror_ops = {
    .backend = "postgresql",
    .close = mirror_close,
    .uid = mirror_uid,
    .settings = mirror_settings,
    .set_effort = mirror_set_effort,
    .seq = mirror_seq,
    .count = mirror_count,
    .upsert = mirror_upsert,
    .del = mirror_del,
    .get = mirror_get,
    .get_label = mirror_get_label,
    .match_labels = mirror_match_labels,
    .match_vectors = mirror_match_vectors,
    .changes = mirror_changes,
    .prune_retired = mirror_prune_retired,
    .wait = mirror_wait,
};
