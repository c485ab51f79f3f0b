/*
 * collection.c: a collection is a document store (storage.h, the source
 * of truth) with a FAISS index beside it (faissidx.h), kept in step with
 * the store's change feed and snapshotted (snapshot.h).  This file opens,
 * writes, follows and snapshots it and sets its search effort; search.c
 * reads it (collection_impl.h is what the two share).  See collection.h
 * for the design; the invariants the code keeps:
 *
 *   - labels are the sequence numbers of the writes that stored them, so a
 *     label > snapshot_seq was never in the snapshot;
 *   - the store holds exactly the acknowledged documents, and the labels
 *     retired since the last snapshot (pruned once a snapshot covers them);
 *   - the index holds the labels of the stored documents, plus, for index
 *     types that cannot remove, retired labels listed in the filter set.
 *
 * Locks: wmu serializes writers, catch-ups (which apply other processes'
 * writes) and snapshots (which must pair an index with the sequence it
 * covers); the rwlock guards index, filter, trained,
 * removable, documents and the effort fields: searches take it shared, a
 * writer exclusively and only while it changes them.  FAISS keeps the
 * search effort (efSearch, nprobe) in the index itself, so a search that
 * needs other values than the index has takes the lock exclusively to set
 * them: searches at one effort run in parallel, a change of effort waits
 * for them.  seq and snapshot_seq are atomics:
 * written under wmu, read anywhere.
 */
#include "collection.h"
#include "collection_impl.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../model/vec.h"
#include "faissidx.h"
#include "itype.h"
#include "labels.h"
#include "snapshot.h"
#include "storage.h"

#define FILTER_REBUILD_MIN 1000   /* filtered labels before a rebuild is considered */

/* --- search effort --------------------------------------------------------- */

int
coll_effort_check_type(const struct itype *t, const struct coll_effort *eff, struct rs_error *e)
{
    static const char *const names[] = { "ef_construction", "ef_search" };
    const int hnsw[] = { eff->ef_construction, eff->ef_search };
    const int max[] = { COLL_MAX_EF_CONSTRUCTION, COLL_MAX_EF_SEARCH };

    for (int i = 0; i < 2; i++) {
        if (hnsw[i] == 0)
            continue;
        if (t->hnsw_m == 0)
            return rs_error_set(e, RS_EINVAL, "'%s' applies to HNSW index types, not '%s'",
                                names[i], t->factory);
        if (hnsw[i] < 1 || hnsw[i] > max[i])
            return rs_error_set(e, RS_EINVAL, "'%s' must be from 1 to %d, not %d", names[i],
                                max[i], hnsw[i]);
    }
    if (eff->nprobe != 0 && t->ivf_nlist == 0)
        return rs_error_set(e, RS_EINVAL, "'nprobe' applies to IVF index types, not '%s'",
                            t->factory);
    if (eff->nprobe != 0 && (eff->nprobe < 1 || eff->nprobe > t->ivf_nlist))
        return rs_error_set(e, RS_EINVAL, "'nprobe' must be from 1 to %d (the lists of '%s'), "
                            "not %d", t->ivf_nlist, t->factory, eff->nprobe);
    return RS_OK;
}

int
coll_effort_check(const char *factory, const struct coll_effort *eff, struct rs_error *e)
{
    struct itype t;
    int rc = itype_parse(factory, 0, &t, e);

    return rc == RS_OK ? coll_effort_check_type(&t, eff, e) : rc;
}

/* The effort in use: the stored values, rosim's defaults for those left 0,
 * and 0 for what the index type does not have. */
static void
resolve_effort(const struct itype *t, const struct coll_effort *stored, struct coll_effort *out)
{
    memset(out, 0, sizeof(*out));
    if (t->hnsw_m > 0) {
        out->ef_construction = stored->ef_construction ? stored->ef_construction
                                                       : COLL_DEFAULT_EF_CONSTRUCTION;
        out->ef_search = stored->ef_search ? stored->ef_search : COLL_DEFAULT_EF_SEARCH;
    }
    if (t->ivf_nlist > 0)
        out->nprobe = stored->nprobe ? stored->nprobe
                    : t->ivf_nlist < COLL_DEFAULT_NPROBE ? t->ivf_nlist : COLL_DEFAULT_NPROBE;
}

/* Whether the index searches with ef_search and nprobe (an interim flat
 * index has no effort).  Under the lock. */
int
coll_effort_in_place(const struct coll *c, int ef_search, int nprobe)
{
    return !c->trained || ((c->type.hnsw_m == 0 || c->cur_ef == ef_search) &&
                           (c->type.ivf_nlist == 0 || c->cur_nprobe == nprobe));
}

/* Set the index's search effort.  Under the write lock. */
int
coll_apply_effort(struct coll *c, int ef_search, int nprobe, struct rs_error *e)
{
    int rc = RS_OK;

    if (!c->trained)
        return RS_OK;
    if (c->type.hnsw_m > 0 && (rc = fx_set_param(c->index, "efSearch", ef_search, e)) == RS_OK)
        c->cur_ef = ef_search;
    if (rc == RS_OK && c->type.ivf_nlist > 0 &&
        (rc = fx_set_param(c->index, "nprobe", nprobe, e)) == RS_OK)
        c->cur_nprobe = nprobe;
    return rc;
}

int
coll_set_effort(struct coll *c, const struct coll_effort *eff, struct rs_error *e)
{
    struct coll_effort next;
    int rc;

    if ((rc = coll_effort_check_type(&c->type, eff, e)) != RS_OK)
        return rc;
    pthread_mutex_lock(&c->wmu);
    next = c->stored;
    if (eff->ef_construction)
        next.ef_construction = eff->ef_construction;
    if (eff->ef_search)
        next.ef_search = eff->ef_search;
    if (eff->nprobe)
        next.nprobe = eff->nprobe;
    if (eff->ef_construction && eff->ef_construction != c->effort.ef_construction &&
        atomic_load(&c->seq) != 0)
        rc = rs_error_set(e, RS_EEXIST, "the collection was built with ef_construction %d; "
                          "it cannot change once documents were written",
                          c->effort.ef_construction);
    else if (memcmp(&next, &c->stored, sizeof(next)) != 0)
        rc = c->sc->ops->set_effort(c->sc, &next, e);
    if (rc == RS_OK) {
        pthread_rwlock_wrlock(&c->lock);
        c->stored = next;
        resolve_effort(&c->type, &next, &c->effort);
        /* an empty graph takes its construction effort now */
        if (c->trained && c->type.hnsw_m > 0)
            rc = fx_set_param(c->index, "efConstruction", c->effort.ef_construction, e);
        c->cur_ef = c->cur_nprobe = 0;
        pthread_rwlock_unlock(&c->lock);
    }
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

/* --- the index ------------------------------------------------------------- */

/* Remove labels from the index, or filter them when it cannot remove. */
static int
retire_labels(struct fx_index *index, int *removable, struct label_set *filter,
              const int64_t *labels, size_t n)
{
    if (n == 0)
        return 0;
    if (*removable && fx_remove(index, labels, n) == 0)
        return 0;
    *removable = 0;
    for (size_t i = 0; i < n; i++)
        if (label_set_add(filter, labels[i]) != 0)
            return -1;
    return 0;
}

/* Every stored vector, gathered for a rebuild. */
struct gathered {
    float *vecs;
    int64_t *labels;
    size_t n, cap;
    int dim;
};

static int
gather(int64_t label, const float *v, void *arg)
{
    struct gathered *g = arg;

    if (g->n == g->cap) {
        size_t nc = g->cap ? 2 * g->cap : 1024;
        float *vv = realloc(g->vecs, nc * (size_t)g->dim * sizeof(float));
        int64_t *l;
        if (vv == NULL)
            return RS_ENOMEM;
        g->vecs = vv;
        if ((l = realloc(g->labels, nc * sizeof(int64_t))) == NULL)
            return RS_ENOMEM;
        g->labels = l;
        g->cap = nc;
    }
    g->labels[g->n] = label;
    memcpy(g->vecs + g->n * (size_t)g->dim, v, (size_t)g->dim * sizeof(float));
    g->n++;
    return 0;
}

static int
no_retired(int64_t label, void *arg)
{
    (void)label;
    (void)arg;
    return 0;
}

int
coll_all_vectors(struct coll *c, int (*fn)(int64_t label, const float *vec, void *arg),
                 void *arg, int64_t *upto, struct rs_error *e)
{
    struct ds_feed f = { .retired = no_retired, .doc = fn, .arg = arg };
    int64_t at;

    return c->sc->ops->changes(c->sc, 0, &f, upto != NULL ? upto : &at, e);
}

/* Build a new index from every stored vector, off to the side: the caller
 * swaps it in.  The real index when enough vectors exist to train it,
 * else the interim flat one.  *upto: the last write it covers. */
static int
build_index(struct coll *c, struct fx_index **out, int *trained, long *documents,
            int64_t *upto, struct rs_error *e)
{
    struct gathered g = { NULL, NULL, 0, 0, c->dim };
    struct fx_index *idx = NULL;
    int rc, interim;

    *out = NULL;
    rc = coll_all_vectors(c, gather, &g, upto, e);
    interim = (long)g.n < c->type.train_min;
    if (rc == RS_OK)
        rc = fx_new(&c->type, c->dim, interim, &idx, e);
    if (rc == RS_OK && !interim && c->type.hnsw_m > 0)
        rc = fx_set_param(idx, "efConstruction", c->effort.ef_construction, e);
    if (rc == RS_OK && !fx_is_trained(idx))
        rc = fx_train(idx, g.n, g.vecs, e);
    if (rc == RS_OK)
        rc = fx_add(idx, g.n, g.vecs, g.labels, e);
    free(g.vecs);
    free(g.labels);
    if (rc != RS_OK) {
        fx_free(idx);
        return rc;
    }
    *out = idx;
    *trained = !interim;
    *documents = (long)g.n;
    return RS_OK;
}

/* Rebuild from the store as it is now and swap the new index in; the
 * write lock is held only for the swap.  Called by the writer (wmu held)
 * or while opening. */
static int
rebuild(struct coll *c, struct rs_error *e)
{
    struct fx_index *idx, *old;
    int trained, rc;
    long documents;
    int64_t upto;

    if ((rc = build_index(c, &idx, &trained, &documents, &upto, e)) != RS_OK)
        return rc;
    pthread_rwlock_wrlock(&c->lock);
    old = c->index;
    c->index = idx;
    c->trained = trained;
    c->removable = c->type.removable;
    c->documents = documents;
    c->cur_ef = c->cur_nprobe = 0;
    label_set_clear(&c->filter);
    pthread_rwlock_unlock(&c->lock);
    atomic_store(&c->seq, upto);
    fx_free(old);
    return RS_OK;
}

/* Whether the index should be rebuilt: it can train now, or too many
 * filtered labels take places in results.  Under the lock. */
static int
needs_rebuild(const struct coll *c)
{
    return (!c->trained && c->documents >= c->type.train_min) ||
           (c->filter.n > FILTER_REBUILD_MIN && (long)c->filter.n > c->documents / 4);
}

/* --- snapshots ------------------------------------------------------------- */

int
coll_snapshot(struct coll *c, struct rs_error *e)
{
    struct snap_state s;
    char *buf = NULL;
    size_t len = 0;
    int rc;

    pthread_mutex_lock(&c->wmu);
    pthread_rwlock_rdlock(&c->lock);
    s = (struct snap_state){ c->dim, atomic_load(&c->seq), c->trained, c->removable, &c->filter,
                             c->index };
    rc = snap_encode(&s, &buf, &len, e);
    pthread_rwlock_unlock(&c->lock);
    if (rc == RS_OK)
        rc = snap_save(c->dir, buf, len, e);
    free(buf);
    if (rc == RS_OK) {
        /* retired labels up to seq are now in the snapshot's own state; a
         * failed prune only keeps rows that replay skips */
        c->sc->ops->prune_retired(c->sc, s.seq, NULL);
        atomic_store(&c->snapshot_seq, s.seq);
        c->writes_since_snapshot = 0;
    }
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

/* --- following the store ---------------------------------------------------- */

/* A batch of changes on its way into the index (apply_changes). */
#define APPLY_BATCH 1024

struct applying {
    struct coll *c;
    int64_t after;              /* labels above it were never in the index */
    int64_t retired[APPLY_BATCH];
    size_t n_retired;
    float *vecs;                /* APPLY_BATCH vectors */
    int64_t labels[APPLY_BATCH];
    size_t n_docs;
    int failed;                 /* the index could not take a change */
};

/* Apply what is gathered under the write lock; searches see the index
 * between two batches (a hit is read by label, so never stale). */
static int
apply_batch(struct applying *a)
{
    struct coll *c = a->c;
    struct rs_error e;

    pthread_rwlock_wrlock(&c->lock);
    if (retire_labels(c->index, &c->removable, &c->filter, a->retired, a->n_retired) != 0 ||
        fx_add(c->index, a->n_docs, a->vecs, a->labels, &e) != RS_OK)
        a->failed = 1;
    c->documents += (long)a->n_docs - (long)a->n_retired;
    pthread_rwlock_unlock(&c->lock);
    a->n_retired = a->n_docs = 0;
    return 0;
}

static int
apply_retired(int64_t label, void *arg)
{
    struct applying *a = arg;

    if (label > a->after)
        return 0;
    a->retired[a->n_retired++] = label;
    return a->n_retired == APPLY_BATCH ? apply_batch(a) : 0;
}

static int
apply_doc(int64_t label, const float *v, void *arg)
{
    struct applying *a = arg;

    memcpy(a->vecs + a->n_docs * (size_t)a->c->dim, v, (size_t)a->c->dim * sizeof(float));
    a->labels[a->n_docs++] = label;
    return a->n_docs == APPLY_BATCH ? apply_batch(a) : 0;
}

/* Bring the index, which holds the writes up to after, up to the store's
 * present (the writes of any process), and set seq.  wmu held (or the
 * collection not yet shared).  The index is rebuilt when it could not
 * take a change or should be rebuilt (needs_rebuild); RS_EINVAL when the
 * store forgot retirements after after (the caller rebuilds). */
static int
apply_changes(struct coll *c, int64_t after, struct rs_error *e)
{
    struct applying *a = calloc(1, sizeof(*a));
    struct ds_feed f = { .retired = apply_retired, .doc = apply_doc, .arg = a };
    int64_t upto;
    int rc, again;

    if (a == NULL || (a->vecs = malloc(APPLY_BATCH * (size_t)c->dim * sizeof(float))) == NULL) {
        free(a);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    a->c = c;
    a->after = after;
    if ((rc = c->sc->ops->changes(c->sc, after, &f, &upto, e)) == RS_OK)
        apply_batch(a);
    again = a->failed;
    free(a->vecs);
    free(a);
    if (rc != RS_OK)
        return again ? rebuild(c, e) : rc;   /* a half-applied feed is rebuilt */
    atomic_store(&c->seq, upto);
    pthread_rwlock_rdlock(&c->lock);
    again = again || needs_rebuild(c);
    pthread_rwlock_unlock(&c->lock);
    return again ? rebuild(c, e) : RS_OK;
}

/* Load the snapshot and bring it up to date with the writes after it;
 * 0 when there is no usable snapshot. */
static int
load_snapshot(struct coll *c, struct rs_error *e, int *rc)
{
    struct snap_state s = { .filter = &c->filter };
    int64_t seq;

    *rc = RS_OK;
    if (c->sc->ops->seq(c->sc, &seq, e) != RS_OK || snap_load(c->dir, c->dim, seq, &s) != RS_OK)
        return 0;
    c->index = s.index;
    c->trained = s.trained;
    c->removable = s.removable;
    c->documents = fx_ntotal(c->index) - (long)c->filter.n;
    atomic_store(&c->snapshot_seq, s.seq);
    if ((*rc = apply_changes(c, s.seq, e)) == RS_EINVAL) {
        /* the store forgot what happened since (pruned for a newer snapshot) */
        fx_free(c->index);
        c->index = NULL;
        label_set_clear(&c->filter);
        atomic_store(&c->snapshot_seq, 0);
        return 0;
    }
    return 1;
}

/* --- opening --------------------------------------------------------------- */

/* Release everything c holds (no snapshot). */
static void
coll_free(struct coll *c)
{
    if (c->sc != NULL)
        c->sc->ops->close(c->sc);
    fx_free(c->index);
    label_set_clear(&c->filter);
    pthread_mutex_destroy(&c->wmu);
    pthread_rwlock_destroy(&c->lock);
    free(c->dir);
    free(c);
}

int
coll_new_settings(const struct coll_options *o, struct ds_settings *set, struct rs_error *e)
{
    const char *factory = o->factory ? o->factory : "Flat";
    struct itype t;
    struct fx_index *probe;
    int rc;

    if ((rc = itype_parse(factory, o->dim, &t, e)) != RS_OK)
        return rc;
    /* the real index is built only once it can train: try it now */
    if ((rc = fx_new(&t, o->dim, 0, &probe, e)) != RS_OK) {
        rs_error_prefix(e, "index type '%s' is not valid", factory);
        if (e != NULL)
            e->code = RS_EINVAL;
        return RS_EINVAL;
    }
    fx_free(probe);
    memset(set, 0, sizeof(*set));
    snprintf(set->factory, sizeof(set->factory), "%s", factory);
    set->dim = o->dim;
    snprintf(set->fingerprint, sizeof(set->fingerprint), "%s", o->fingerprint ? o->fingerprint : "");
    return RS_OK;
}

/* Check the stored settings against o (index type when o->factory, the
 * dimension, the model) and take the type and effort from them. */
static int
settle(struct coll *c, const struct coll_options *o, struct rs_error *e)
{
    struct ds_settings set;
    int rc = c->sc->ops->settings(c->sc, &set, e);

    if (rc != RS_OK)
        return rc;
    if (o->factory != NULL && !itype_same(set.factory, o->factory, c->dim))
        return rs_error_set(e, RS_EEXIST, "%s exists with index type '%s', not '%s'", c->dir,
                            set.factory, o->factory);
    if (set.dim != c->dim)
        return rs_error_set(e, RS_EINVAL, "%s holds %d-dimensional vectors; the model makes %d",
                            c->dir, set.dim, c->dim);
    if (set.fingerprint[0] != '\0' && o->fingerprint != NULL &&
        strcmp(set.fingerprint, o->fingerprint) != 0)
        return rs_error_set(e, RS_EINVAL, "%s was built with model %s, but the loaded model "
                            "is %s; use the same model or a new collection", c->dir,
                            set.fingerprint, o->fingerprint);
    if ((rc = itype_parse(set.factory, c->dim, &c->type, e)) != RS_OK) {
        rs_error_prefix(e, "%s", c->dir);
        return rc;
    }
    c->stored = set.effort;
    resolve_effort(&c->type, &c->stored, &c->effort);
    return RS_OK;
}

int
coll_index_type_check(const char *factory, struct rs_error *e)
{
    struct itype t;

    return itype_parse(factory, 0, &t, e);
}

/* The collection over sc (owned from now on) with its snapshot in dir
 * (which exists): settings checked, the index loaded and brought up to
 * date, or rebuilt. */
static int
attach(struct coll **out, struct st_coll *sc, const char *dir, const struct coll_options *o,
       struct rs_error *e)
{
    struct coll *c = calloc(1, sizeof(*c));
    int rc;

    *out = NULL;
    if (c == NULL || (c->dir = strdup(dir)) == NULL) {
        free(c);
        sc->ops->close(sc);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    c->sc = sc;
    pthread_mutex_init(&c->wmu, NULL);
    pthread_rwlock_init(&c->lock, NULL);
    c->dim = o->dim;
    c->snapshot_every = o->snapshot_every;
    c->report = o->report;
    c->report_arg = o->report_arg;
    if ((rc = settle(c, o, e)) == RS_OK && !load_snapshot(c, e, &rc))
        rc = rebuild(c, e);
    if (rc != RS_OK) {
        coll_free(c);
        return rc;
    }
    c->writes_since_snapshot = (long)(atomic_load(&c->seq) - atomic_load(&c->snapshot_seq));
    *out = c;
    return RS_OK;
}

int
coll_open(struct coll **out, const char *dir, const struct coll_options *o, struct rs_error *e)
{
    struct ds_settings set;
    struct st_coll *sc;
    struct stat st;
    int rc, exists;

    *out = NULL;
    exists = stat(dir, &st) == 0;
    if (!exists && !o->create)
        return rs_error_set(e, RS_ENOTFOUND, "%s: no such collection", dir);
    if (o->create && (rc = coll_new_settings(o, &set, e)) != RS_OK)
        return rc;
    if (!exists && mkdir(dir, 0700) != 0)
        return rs_error_set(e, errno == ENOSPC ? RS_ENOSPC : RS_EIO, "%s: %s", dir, strerror(errno));
    if ((rc = st_sqlite_coll_open(&sc, dir, o->create ? &set : NULL, o->fsync, e)) == RS_OK)
        rc = attach(out, sc, dir, o, e);
    if (rc != RS_OK && !exists) {   /* a collection that failed to come into being leaves nothing */
        ds_remove_files(dir);
        rmdir(dir);
    }
    return rc;
}

int
coll_open_storage(struct coll **out, struct st_coll *sc, const char *dir,
                  const struct coll_options *o, struct rs_error *e)
{
    *out = NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        sc->ops->close(sc);
        return rs_error_set(e, errno == ENOSPC ? RS_ENOSPC : RS_EIO, "%s: %s", dir,
                            strerror(errno));
    }
    return attach(out, sc, dir, o, e);
}

void
coll_close(struct coll *c)
{
    if (c == NULL)
        return;
    if (atomic_load(&c->seq) != atomic_load(&c->snapshot_seq))
        coll_snapshot(c, NULL);
    coll_free(c);
}

/* A periodic snapshot.  One that fails loses nothing (the next start
 * replays the writes after the last one), so it is reported, not returned. */
static void
snapshot_or_report(struct coll *c)
{
    struct rs_error e;
    const char *slash = strrchr(c->dir, '/');
    char msg[sizeof(e.msg) + 96];

    if (coll_snapshot(c, &e) == RS_OK || c->report == NULL)
        return;
    snprintf(msg, sizeof(msg), "the index snapshot could not be written (the next start "
             "replays the writes since the last one): %s", e.msg);
    c->report(c->report_arg, slash != NULL ? slash + 1 : c->dir, msg);
}

/* --- writes ---------------------------------------------------------------- */

/* After a commit (wmu held): apply the change to the index under the
 * write lock; rebuild aside when the index failed to follow the store,
 * can train now, or filters too much. */
static int
after_commit(struct coll *c, const int64_t *retired, size_t n_retired, const float *vecs,
             const int64_t *labels, size_t n_added, long doc_delta, struct rs_error *e)
{
    int rc = RS_OK, again;

    pthread_rwlock_wrlock(&c->lock);
    if (retire_labels(c->index, &c->removable, &c->filter, retired, n_retired) != 0)
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    if (rc == RS_OK)
        rc = fx_add(c->index, n_added, vecs, labels, e);
    c->documents += doc_delta;
    again = rc != RS_OK || needs_rebuild(c);
    pthread_rwlock_unlock(&c->lock);
    if (again) {
        struct rs_error e2;
        /* the write is committed: it stands even when the rebuild fails */
        if (rebuild(c, &e2) == RS_OK)
            rc = RS_OK;
    }
    c->writes_since_snapshot += (long)(n_added ? n_added : 1);
    return rc;
}

static int
validate_doc(const struct coll_doc *d, int dim, struct rs_error *e)
{
    size_t n;
    double norm = 0;

    if (d->id == NULL || (n = strlen(d->id)) == 0 || n > COLL_MAX_ID_BYTES)
        return rs_error_set(e, RS_EINVAL, "a document id must have 1 to %d bytes",
                            COLL_MAX_ID_BYTES);
    if (d->text == NULL || d->vec == NULL)
        return rs_error_set(e, RS_EINVAL, "document '%s' has no text or vector", d->id);
    for (int i = 0; i < dim; i++) {
        if (!isfinite(d->vec[i]))
            return rs_error_set(e, RS_EINVAL, "document '%s' has a non-finite vector", d->id);
        norm += (double)d->vec[i] * d->vec[i];
    }
    if (norm == 0)
        return rs_error_set(e, RS_EINVAL, "document '%s' has a zero vector, which has no "
                            "direction to compare", d->id);
    return RS_OK;
}

/* Keep only the last version of each id in the batch (labels and vectors
 * compacted in place); the count kept. */
static size_t
last_versions(const struct coll_doc *docs, int n, float *vecs, int64_t *labels, int dim)
{
    size_t k = 0;

    for (int i = 0; i < n; i++) {
        int later = 0;
        for (int j = i + 1; j < n && !later; j++)
            later = strcmp(docs[j].id, docs[i].id) == 0;
        if (later)
            continue;
        memmove(vecs + k * (size_t)dim, vecs + (size_t)i * (size_t)dim,
                (size_t)dim * sizeof(float));
        labels[k++] = labels[i];
    }
    return k;
}

/* Whether a periodic snapshot is due.  wmu held. */
static int
snapshot_due(const struct coll *c)
{
    return c->snapshot_every > 0 && c->writes_since_snapshot >= c->snapshot_every;
}

int
coll_upsert(struct coll *c, const struct coll_doc *docs, int n, int64_t *seq,
            struct rs_error *e)
{
    float *vecs = NULL;
    int64_t *labels = NULL, *retired = NULL, first;
    size_t n_retired = 0, k = 0;
    long new_docs = 0;
    int rc = RS_OK, snapshot = 0;

    if (n < 1)
        return rs_error_set(e, RS_EINVAL, "no documents");
    for (int i = 0; i < n; i++)
        if ((rc = validate_doc(&docs[i], c->dim, e)) != RS_OK)
            return rc;
    vecs = malloc((size_t)n * (size_t)c->dim * sizeof(float));
    labels = malloc((size_t)n * sizeof(int64_t));
    retired = malloc((size_t)n * sizeof(int64_t));
    if (vecs == NULL || labels == NULL || retired == NULL) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        vec_normalize_to(docs[i].vec, vecs + (size_t)i * (size_t)c->dim, c->dim);
    pthread_mutex_lock(&c->wmu);
    rc = c->sc->ops->upsert(c->sc, docs, vecs, n, &first, retired, &n_retired, &new_docs, e);
    if (rc == RS_OK && seq != NULL)
        *seq = first + n - 1;
    if (rc == RS_OK && first != atomic_load(&c->seq) + 1) {
        /* another process wrote since the index was last brought up to
         * date: the feed brings its writes and this one */
        int64_t after = atomic_load(&c->seq);
        rc = apply_changes(c, after, e);
        c->writes_since_snapshot += (long)(atomic_load(&c->seq) - after);
        snapshot = snapshot_due(c);
    } else if (rc == RS_OK) {
        atomic_store(&c->seq, first + n - 1);
        /* labels retired inside this batch were never added */
        for (size_t i = 0; i < n_retired; i++)
            if (retired[i] < first)
                retired[k++] = retired[i];
        n_retired = k;
        for (int i = 0; i < n; i++)
            labels[i] = first + i;
        k = last_versions(docs, n, vecs, labels, c->dim);
        rc = after_commit(c, retired, n_retired, vecs, labels, k, new_docs, e);
        snapshot = snapshot_due(c);
    }
    pthread_mutex_unlock(&c->wmu);
    if (snapshot)
        snapshot_or_report(c);
out:
    free(vecs);
    free(labels);
    free(retired);
    return rc;
}

int
coll_delete(struct coll *c, const char *id, int64_t *seq, struct rs_error *e)
{
    int64_t label, at, after;
    int rc;

    pthread_mutex_lock(&c->wmu);
    after = atomic_load(&c->seq);
    rc = c->sc->ops->del(c->sc, id, &at, &label, e);
    if (rc == RS_OK && seq != NULL)
        *seq = at;
    if (rc == RS_OK && at != after + 1) {   /* others wrote meanwhile: as in coll_upsert */
        rc = apply_changes(c, after, e);
        c->writes_since_snapshot += (long)(atomic_load(&c->seq) - after);
    } else if (rc == RS_OK) {
        atomic_store(&c->seq, at);
        rc = after_commit(c, &label, 1, NULL, NULL, 0, -1, e);
    }
    pthread_mutex_unlock(&c->wmu);
    return rc;
}

int
coll_catch_up(struct coll *c, struct rs_error *e)
{
    int64_t stored, after;
    int rc, snapshot = 0;

    pthread_mutex_lock(&c->wmu);
    after = atomic_load(&c->seq);
    if ((rc = c->sc->ops->seq(c->sc, &stored, e)) == RS_OK && stored > after) {
        if ((rc = apply_changes(c, after, e)) == RS_EINVAL)
            rc = rebuild(c, e);   /* the store forgot retirements since: start over */
        c->writes_since_snapshot += (long)(atomic_load(&c->seq) - after);
        snapshot = rc == RS_OK && snapshot_due(c);
    }
    pthread_mutex_unlock(&c->wmu);
    if (snapshot)
        snapshot_or_report(c);
    return rc;
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int
coll_wait_seq(struct coll *c, int64_t seq, int timeout_ms, struct rs_error *e)
{
    double deadline = now_ms() + timeout_ms;
    int64_t stored;
    int rc;

    for (;;) {
        if (atomic_load(&c->seq) >= seq)
            return RS_OK;
        if ((rc = coll_catch_up(c, e)) != RS_OK)
            return rc;
        if (atomic_load(&c->seq) >= seq)
            return RS_OK;
        double left = deadline - now_ms();
        if (left <= 0)
            return rs_error_set(e, RS_ETIMEOUT, "the index has applied the writes up to "
                                "sequence %lld, not yet %lld", (long long)atomic_load(&c->seq),
                                (long long)seq);
        rc = c->sc->ops->wait(c->sc, atomic_load(&c->seq), left < 1000 ? (int)left + 1 : 1000,
                              &stored, e);
        if (rc != RS_OK && rc != RS_ETIMEOUT)
            return rc;
    }
}

void
coll_get_stats(struct coll *c, struct coll_stats *s)
{
    memset(s, 0, sizeof(*s));
    pthread_rwlock_rdlock(&c->lock);
    s->documents = c->documents;
    s->index_vectors = fx_ntotal(c->index) - (long)c->filter.n;
    s->filtered = (long)c->filter.n;
    s->trained = c->trained;
    s->effort = c->effort;
    pthread_rwlock_unlock(&c->lock);
    s->seq = atomic_load(&c->seq);
    s->snapshot_seq = atomic_load(&c->snapshot_seq);
    s->dim = c->dim;
    snprintf(s->factory, sizeof(s->factory), "%s", c->type.factory);
}
