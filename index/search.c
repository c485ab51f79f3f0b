/*
 * search.c: the reads of a collection (collection.h): a document by id,
 * and searches.  A search asks the FAISS index for candidates at the
 * query's effort, drops the labels the index still holds but the store
 * retired, keeps those whose documents match the filter, and scores them
 * exactly against their stored vectors; when the index comes short of the
 * documents that exist (or, filtered, of k matches after growing the
 * candidate list), it scans the stored vectors exactly.  Hits are read
 * from the store by label: a label never changes its document, so a hit
 * is never stale.
 */
#include "collection.h"
#include "collection_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../model/vec.h"

/* --- reads ----------------------------------------------------------------- */

void
coll_hit_clear(struct coll_hit *h)
{
    free(h->id);
    free(h->text);
    free(h->meta);
    memset(h, 0, sizeof(*h));
}

void
coll_hits_free(struct coll_hit *hits, int n)
{
    for (int i = 0; hits != NULL && i < n; i++)
        coll_hit_clear(&hits[i]);
    free(hits);
}

int
coll_get(struct coll *c, const char *id, struct coll_hit *out, struct rs_error *e)
{
    int rc = c->sc->ops->get(c->sc, id, out, e);

    if (rc == RS_OK)
        out->score = 1.0f;
    return rc;
}

/* Candidates for a search: labels and scores, best first. */
struct ranked {
    float *dist;     /* (cap) */
    int64_t *labels; /* (cap) */
    long n, cap;
};

static int
cmp_score_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

struct scored {
    float score;
    int64_t label;
};

struct exact {
    struct scored *all;
    size_t n, cap;
    const float *query;
    int dim;
};

static int
score_one(int64_t label, const float *v, void *arg)
{
    struct exact *x = arg;
    float dot = 0;

    if (x->n == x->cap) {
        size_t nc = x->cap ? 2 * x->cap : 1024;
        struct scored *a = realloc(x->all, nc * sizeof(*a));
        if (a == NULL)
            return RS_ENOMEM;
        x->all = a;
        x->cap = nc;
    }
    for (int i = 0; i < x->dim; i++)
        dot += x->query[i] * v[i];
    x->all[x->n].score = dot;
    x->all[x->n++].label = label;
    return 0;
}

/* Exact search over the stored vectors (those matching f, when not
 * NULL): the r->cap best into r (more than k, for documents replaced while
 * the hits are read). */
static int
search_exact(struct coll *c, const float *q, const struct coll_filter *f, struct ranked *r,
             struct rs_error *e)
{
    struct exact x = { NULL, 0, 0, q, c->dim };
    int rc = f != NULL ? c->sc->ops->match_vectors(c->sc, f, score_one, &x, e)
                       : coll_all_vectors(c, score_one, &x, NULL, e);

    if (rc == RS_OK) {
        if (x.n > 0)   /* none may match a filter */
            qsort(x.all, x.n, sizeof(*x.all), cmp_score_desc);
        r->n = 0;
        for (size_t i = 0; i < x.n && r->n < r->cap; i++, r->n++) {
            r->dist[r->n] = x.all[i].score;
            r->labels[r->n] = x.all[i].label;
        }
    }
    free(x.all);
    return rc;
}

/* Search the index for fetch live labels at the given effort: over-fetch
 * by at most fetch places for filtered labels (and not more than the index
 * holds or r has room for). */
static int
search_index(struct coll *c, const float *q, long fetch, const struct coll_query *qr,
             struct ranked *r, long *live, struct rs_error *e)
{
    long want, m = 0;
    int rc = RS_OK, ef, nprobe;

    pthread_rwlock_rdlock(&c->lock);
    ef = qr->ef_search ? qr->ef_search : c->effort.ef_search;
    nprobe = qr->nprobe ? qr->nprobe : c->effort.nprobe;
    if (!coll_effort_in_place(c, ef, nprobe)) {
        /* re-checked under the write lock: another search may have set it */
        pthread_rwlock_unlock(&c->lock);
        pthread_rwlock_wrlock(&c->lock);
        if (!coll_effort_in_place(c, ef, nprobe))
            rc = coll_apply_effort(c, ef, nprobe, e);
    }
    *live = c->documents;
    want = fetch + ((long)c->filter.n < fetch ? (long)c->filter.n : fetch);
    if (want > fx_ntotal(c->index))
        want = fx_ntotal(c->index);
    if (want > r->cap)
        want = r->cap;
    if (rc == RS_OK && want > 0)
        rc = fx_search(c->index, q, want, r->dist, r->labels, e);
    /* drop filtered labels while the lock keeps the set stable */
    for (long i = 0; rc == RS_OK && i < want; i++) {
        if (r->labels[i] < 0 || label_set_has(&c->filter, r->labels[i]))
            continue;
        r->labels[m] = r->labels[i];
        r->dist[m++] = r->dist[i];
    }
    pthread_rwlock_unlock(&c->lock);
    r->n = m;
    return rc;
}

/* Keep the candidates of r whose documents match f (labels never change
 * their document, so this holds however late it is asked), in rank order,
 * looking them up in chunks until 2k match (room for documents replaced
 * while the hits are read). */
static int
keep_matching(struct coll *c, const struct coll_filter *f, long k, struct ranked *r,
              struct rs_error *e)
{
    const long chunk = 256;
    unsigned char match[256];
    long m = 0, done = 0;
    int rc = RS_OK;

    while (rc == RS_OK && done < r->n && m < 2 * k) {
        long len = r->n - done < chunk ? r->n - done : chunk;
        rc = c->sc->ops->match_labels(c->sc, f, r->labels + done, (size_t)len, match, e);
        for (long i = 0; rc == RS_OK && i < len; i++) {
            if (!match[i])
                continue;
            r->labels[m] = r->labels[done + i];
            r->dist[m++] = r->dist[done + i];
        }
        done += len;
    }
    if (rc == RS_OK)
        r->n = m;
    return rc;
}

/* Room in r for cap candidates. */
static int
ranked_reserve(struct ranked *r, long cap, struct rs_error *e)
{
    float *d;
    int64_t *l;

    if (cap <= r->cap)
        return RS_OK;
    if ((d = realloc(r->dist, (size_t)cap * sizeof(float))) == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    r->dist = d;
    if ((l = realloc(r->labels, (size_t)cap * sizeof(int64_t))) == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    r->labels = l;
    r->cap = cap;
    return RS_OK;
}

static int
cmp_hit_desc(const void *a, const void *b)
{
    float x = ((const struct coll_hit *)a)->score, y = ((const struct coll_hit *)b)->score;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Turn ranked labels into at most k hits with score >= min_score, scored
 * exactly against their stored vectors (a compressed index only ranks) and
 * sorted; *cut says whether a candidate fell below min_score. */
static int
fill_hits(struct coll *c, const float *q, const struct ranked *r, long k, float min_score,
          struct coll_hit *out, int *n, int *cut, struct rs_error *e)
{
    float *v = malloc((size_t)c->dim * sizeof(float));

    *cut = 0;
    if (v == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    for (long i = 0; i < r->n && *n < k; i++) {
        int rc = c->sc->ops->get_label(c->sc, r->labels[i], &out[*n], v, e);
        float dot = 0;
        if (rc == RS_ENOTFOUND)   /* a label replaced meanwhile is skipped */
            continue;
        if (rc != RS_OK) {
            free(v);
            return rc;
        }
        for (int j = 0; j < c->dim; j++)
            dot += q[j] * v[j];
        /* rounding can take the cosine of unit vectors past +-1 */
        dot = dot > 1.0f ? 1.0f : dot < -1.0f ? -1.0f : dot;
        if (dot < min_score) {
            coll_hit_clear(&out[*n]);
            *cut = 1;
            continue;
        }
        out[(*n)++].score = dot;
    }
    free(v);
    qsort(out, (size_t)*n, sizeof(*out), cmp_hit_desc);
    return RS_OK;
}

int
coll_filter_check(const struct coll_filter *f, struct rs_error *e)
{
    if (f->n < 1 || f->n > COLL_FILTER_MAX_CLAUSES)
        return rs_error_set(e, RS_EINVAL, "a filter has 1 to %d keys, not %d",
                            COLL_FILTER_MAX_CLAUSES, f->n);
    for (int i = 0; i < f->n; i++) {
        const struct coll_clause *cl = &f->clauses[i];
        size_t len = cl->key != NULL ? strlen(cl->key) : 0;
        if (len < 1 || len > COLL_FILTER_MAX_KEY)
            return rs_error_set(e, RS_EINVAL, "a filter key has 1 to %d bytes",
                                COLL_FILTER_MAX_KEY);
        if (cl->cond != COLL_MATCH && cl->cond != COLL_EXISTS && cl->cond != COLL_ABSENT)
            return rs_error_set(e, RS_EINVAL, "filter key '%s': unknown condition", cl->key);
        if (cl->cond != COLL_MATCH)
            continue;
        if (cl->n_values < 1 || cl->n_values > COLL_FILTER_MAX_VALUES)
            return rs_error_set(e, RS_EINVAL, "filter key '%s' has %d values; it may have 1 "
                                "to %d", cl->key, cl->n_values, COLL_FILTER_MAX_VALUES);
        for (int v = 0; v < cl->n_values; v++) {
            const struct coll_value *x = &cl->values[v];
            if (x->type < COLL_V_NULL || x->type > COLL_V_STRING ||
                (x->type == COLL_V_REAL && !isfinite(x->r)) ||
                (x->type == COLL_V_STRING && (x->s == NULL || x->len > COLL_FILTER_MAX_STRING)))
                return rs_error_set(e, RS_EINVAL, "filter key '%s': value %d is not a string "
                                    "of at most %d bytes, a finite number, true, false or "
                                    "null", cl->key, v, COLL_FILTER_MAX_STRING);
        }
    }
    return RS_OK;
}

int
coll_search_q(struct coll *c, const float *query, const struct coll_query *qr,
              struct coll_hit **hits, int *n_hits, struct rs_error *e)
{
    const struct coll_filter *f = qr->filter != NULL && qr->filter->n > 0 ? qr->filter : NULL;
    const struct coll_effort asked = { 0, qr->ef_search, qr->nprobe };
    struct ranked r = { 0 };
    struct coll_hit *out = NULL;
    float *q = NULL;
    long live = 0, fetch, k = qr->k;
    int n = 0, cut = 0, rc;

    *hits = NULL;
    *n_hits = 0;
    if (k < 1)
        return rs_error_set(e, RS_EINVAL, "k must be at least 1");
    if (vec_dot(query, query, c->dim) == 0)
        return rs_error_set(e, RS_EINVAL, "the query vector is zero: it has no direction to "
                            "compare with");
    for (int i = 0; i < c->dim; i++)
        if (!isfinite(query[i]))
            return rs_error_set(e, RS_EINVAL, "the query vector is not finite");
    if ((f != NULL && (rc = coll_filter_check(f, e)) != RS_OK) ||
        (rc = coll_effort_check_type(&c->type, &asked, e)) != RS_OK)
        return rc;
    q = malloc((size_t)c->dim * sizeof(float));
    if (q == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    vec_normalize_to(query, q, c->dim);
    /* unfiltered: k candidates, then an exact search when the index came
     * short of the documents that exist (an HNSW graph, IVF lists,
     * filtered places); filtered: 4k, 32k, ... candidates, then an exact
     * scan of the matching documents */
    fetch = f != NULL ? 4 * k : k;
    for (;;) {
        if ((rc = ranked_reserve(&r, 2 * fetch, e)) != RS_OK)
            break;
        if ((out = calloc((size_t)k, sizeof(*out))) == NULL) {
            rc = rs_error_set(e, RS_ENOMEM, "out of memory");
            break;
        }
        rc = search_index(c, q, fetch, qr, &r, &live, e);
        if (rc == RS_OK && f != NULL)
            rc = keep_matching(c, f, k, &r, e);
        if (rc == RS_OK)
            rc = fill_hits(c, q, &r, k, qr->min_score, out, &n, &cut, e);
        if (rc != RS_OK || cut || n >= k || (f == NULL && n >= live))
            break;
        coll_hits_free(out, n);
        out = NULL;
        n = 0;
        if (f == NULL || fetch >= live || fetch >= COLL_FILTER_MAX_FETCH) {
            r.cap = 2 * k;   /* ranked_reserve made room for at least that */
            if ((out = calloc((size_t)k, sizeof(*out))) == NULL)
                rc = rs_error_set(e, RS_ENOMEM, "out of memory");
            else if ((rc = search_exact(c, q, f, &r, e)) == RS_OK)
                rc = fill_hits(c, q, &r, k, qr->min_score, out, &n, &cut, e);
            break;
        }
        fetch = 8 * fetch < COLL_FILTER_MAX_FETCH ? 8 * fetch : COLL_FILTER_MAX_FETCH;
    }
    free(q);
    free(r.dist);
    free(r.labels);
    if (rc != RS_OK || n == 0) {
        coll_hits_free(out, n);
        return rc;
    }
    *hits = out;
    *n_hits = n;
    return RS_OK;
}

int
coll_search(struct coll *c, const float *query, int k, float min_score,
            struct coll_hit **hits, int *n_hits, struct rs_error *e)
{
    const struct coll_query q = { k, min_score, NULL, 0, 0 };

    return coll_search_q(c, query, &q, hits, n_hits, e);
}
