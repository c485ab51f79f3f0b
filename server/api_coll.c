/*
 * api_coll.c: the routes of the collections: /v1/collections (list, put,
 * get, drop), their documents (upsert, get, delete) and search, and
 * /readyz, which reports the collections that failed to open.
 *
 * Texts are embedded with api_model.c's embed(); the collection stores and
 * searches them (index/store.h, index/collection.h).  Errors of the store
 * name files relative to the data directory, never by absolute path.
 */
#include "api.h"
#include "api_internal.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../index/collection.h"
#include "../index/store.h"
#include "metrics.h"
#include "search_params.h"

/* --- collections ---------------------------------------------------------- */

/* The reply for an error from a collection or the store: files are named
 * relative to the data directory, never by absolute path.  A busy
 * collection (being dropped) is counted as such, not as a full queue. */
static void
coll_fail(struct app *a, struct api_reply *rp, struct rs_error *e)
{
    store_scrub(a->store, e->msg);
    if (e->code == RS_EIO) {
        api_error(rp, 500, "storage_error", "%s", e->msg);
    } else if (e->code == RS_EBUSY) {
        api_error(rp, 429, "busy", "%s", e->msg);
        rp->retry_after = 1;
        metrics_rejected("busy");
    } else if (e->code == RS_EUNAVAIL) {
        /* libpq's reason names sockets and hosts: it goes to the log only */
        api_error(rp, 503, "storage_unavailable", "the database cannot be reached; retry "
                  "later");
        rp->retry_after = 2;
        metrics_rejected("storage_unavailable");
    } else {
        error_reply(rp, e);
    }
}

/* Wait until c's index applied the writes up to min_seq (-1: no wait), up
 * to the request timeout: 0, or -1 with 503 and Retry-After in rp. */
static int
wait_min_seq(struct app *a, struct coll *c, long long min_seq, struct api_reply *rp)
{
    struct rs_error e;
    int rc;

    if (min_seq < 0)
        return 0;
    rc = coll_wait_seq(c, (int64_t)min_seq, a->conf->request_timeout * 1000, &e);
    if (rc == RS_OK)
        return 0;
    if (rc == RS_ETIMEOUT) {
        api_error(rp, 503, "not_applied_yet", "min_seq %lld: %s", min_seq, e.msg);
        rp->retry_after = 1;
        metrics_rejected("timeout");
    } else {
        coll_fail(a, rp, &e);
    }
    return -1;
}

/* ?min_seq= of a GET: -1 when absent; 0, or -1 with 400 in rp when it is
 * not a non-negative integer. */
static int
query_min_seq(const struct api_request *rq, long long *out, struct api_reply *rp)
{
    const char *v = rq->query != NULL ? rq->query(rq->query_arg, "min_seq") : NULL;
    char *end;

    *out = -1;
    if (v == NULL)
        return 0;
    errno = 0;
    *out = strtoll(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0) {
        api_error(rp, 400, "invalid_type", "'min_seq' must be a non-negative integer");
        return -1;
    }
    return 0;
}

/* A reference to the named collection, or NULL with 404 (none) or 409
 * (it failed to open: the reason is in the message). */
static struct coll *
find_collection(struct app *a, const char *name, struct api_reply *rp)
{
    struct coll *c;
    struct rs_error e;
    int rc = store_get(a->store, name, &c, &e);

    if (rc == RS_EEXIST)
        api_error(rp, 409, "collection_unavailable", "%s", e.msg);
    else if (rc != RS_OK)
        coll_fail(a, rp, &e);
    return c;
}

static json_t *
coll_json(const char *name, struct coll *c)
{
    struct coll_stats st;
    json_t *j;

    coll_get_stats(c, &st);
    j = json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:b,s:I}", "name", name, "state", "open",
                  "index", st.factory,
                  "dim", st.dim, "documents", (json_int_t)st.documents, "index_vectors",
                  (json_int_t)st.index_vectors, "trained", st.trained, "seq",
                  (json_int_t)st.seq);
    sp_effort_json(j, &st.effort);
    return j;
}

/* A failed collection: its name, state and reason (no absolute paths). */
static json_t *
failed_json(const struct store_info *f)
{
    return json_pack("{s:s,s:s,s:s}", "name", f->name, "state", "failed", "reason", f->reason);
}

void
api_collections_list(struct app *a, const struct api_request *rq, const struct route_args *arg,
                     struct api_reply *rp)
{
    struct store_info *info;
    int n;
    json_t *list;

    (void)rq;
    (void)arg;
    if (store_list(a->store, &info, &n) != RS_OK) {
        api_error(rp, 503, "busy", "out of memory");
        return;
    }
    list = json_array();
    for (int i = 0; i < n; i++) {
        struct coll *c = info[i].failed ? NULL : store_acquire(a->store, info[i].name);
        if (c != NULL) {
            json_array_append_new(list, coll_json(info[i].name, c));
            store_release(a->store, c);
        } else if (info[i].failed) {
            json_array_append_new(list, failed_json(&info[i]));
        }
    }
    free(info);
    reply(rp, 200, json_pack("{s:o}", "collections", list));
}

/* /readyz, once loaded (503 before: routes.c): failed collections, an
 * unwritable data directory and an unreachable database are listed but do
 * not make the server unready (the rest is served: searches go on from
 * the indexes).  Only names: this route needs no key, the reasons
 * are in /v1/collections and the log. */
void
api_readyz(struct app *a, const struct api_request *rq, const struct route_args *arg,
           struct api_reply *rp)
{
    struct store_info *info;
    int n, open = 0;
    json_t *failed = json_array(), *j;
    const char *problem = store_problem(a->store);
    char why[300];
    int reachable;

    (void)rq;
    (void)arg;
    if (store_list(a->store, &info, &n) != RS_OK) {
        json_decref(failed);
        api_error(rp, 503, "busy", "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (info[i].failed)
            json_array_append_new(failed, json_string(info[i].name));
        else
            open++;
    }
    free(info);
    reachable = store_reachable(a->store, why, sizeof(why));
    j = json_pack("{s:s,s:i,s:o,s:b,s:s,s:b}", "status", "ready", "collections_open", open,
                  "collections_failed", failed, "data_dir_writable", problem == NULL,
                  "storage", store_backend(a->store), "storage_reachable", reachable);
    if (j != NULL && problem != NULL)
        json_object_set_new(j, "warning", json_string(problem));
    else if (j != NULL && !reachable)
        json_object_set_new(j, "warning", json_string("the database cannot be reached: "
                                                      "writes are refused"));
    reply(rp, 200, j);
}

void
api_collection_put(struct app *a, const struct api_request *rq, const struct route_args *arg,
                   struct api_reply *rp)
{
    const char *name = arg->name;
    static const char *const allowed[] = { "index", "ef_construction", "ef_search", "nprobe",
                                           NULL };
    json_t *body = NULL, *idx;
    const char *factory = NULL;
    struct coll_effort effort = { 0 };
    struct rs_error e;
    struct coll *c;
    int created;

    if (rq->body_len > 0) {
        if ((body = body_object(rq, rp, allowed)) == NULL)
            return;
        idx = json_object_get(body, "index");
        if (idx != NULL && !json_is_string(idx)) {
            api_error(rp, 400, "invalid_type", "'index' must be a string such as \"Flat\"");
            goto done;
        }
        if (idx != NULL) {
            factory = json_string_value(idx);
            if (strlen(factory) == 0 || strlen(factory) > 100) {
                api_error(rp, 422, "invalid", "'index' must be a FAISS index factory string");
                goto done;
            }
        }
        if (sp_effort_parse(body, 1, &effort, rp))
            goto done;
    }
    if (store_create_effort(a->store, name, factory, &effort, &created, &e) != RS_OK) {
        coll_fail(a, rp, &e);
        goto done;
    }
    c = store_acquire(a->store, name);
    if (c == NULL) {
        api_error(rp, 409, "conflict", "collection '%s' was dropped meanwhile", name);
        goto done;
    }
    reply(rp, created ? 201 : 200, coll_json(name, c));
    store_release(a->store, c);
done:
    json_decref(body);
}


void
api_collection_get(struct app *a, const struct api_request *rq, const struct route_args *arg,
                   struct api_reply *rp)
{
    struct coll *c = find_collection(a, arg->name, rp);

    (void)rq;
    if (c != NULL) {
        reply(rp, 200, coll_json(arg->name, c));
        store_release(a->store, c);
    }
}

void
api_collection_drop(struct app *a, const struct api_request *rq, const struct route_args *arg,
                    struct api_reply *rp)
{
    struct rs_error e;

    (void)rq;
    if (store_drop(a->store, arg->name, &e) != RS_OK)
        coll_fail(a, rp, &e);
    else
        reply(rp, 200, json_pack("{s:s}", "deleted", arg->name));
}

/* --- documents ------------------------------------------------------------- */

/* A document as a reply; with its score when it is a hit of a search. */
static json_t *
hit_json(const struct coll_hit *h, int with_score)
{
    json_error_t je;
    json_t *meta = json_loads(h->meta, JSON_ALLOW_NUL, &je);

    if (meta == NULL)
        meta = json_object();
    if (with_score)
        return json_pack("{s:s,s:f,s:s%,s:o}", "id", h->id, "score", (double)h->score, "text",
                         h->text, h->text_len, "meta", meta);
    return json_pack("{s:s,s:s%,s:o}", "id", h->id, "text", h->text, h->text_len, "meta", meta);
}

void
api_documents_upsert(struct app *a, const struct api_request *rq, const struct route_args *arg,
                     struct api_reply *rp)
{
    const char *name = arg->name;
    static const char *const allowed[] = { "documents", NULL };
    static const char *const doc_keys[] = { "id", "text", "meta", "vector" };
    const int H = rf_model_config(a->model)->d_model;
    json_t *body = body_object(rq, rp, allowed), *docs, *d;
    struct emb_text *texts = NULL;
    size_t *to_embed = NULL, n_embed = 0;   /* documents without a vector */
    float *given = NULL;                    /* (n, H): vectors of the request */
    char **metas = NULL;
    struct coll_doc *cd = NULL;
    struct embedded em = { 0 };
    struct coll *c = NULL;
    struct rs_error e;
    int64_t seq;
    size_t i, n = 0;

    if (body == NULL)
        return;
    docs = json_object_get(body, "documents");
    if (!json_is_array(docs)) {
        api_error(rp, 400, docs ? "invalid_type" : "missing_field",
                  "'documents' must be a list of {\"id\", \"text\", \"meta\"}");
        goto done;
    }
    n = json_array_size(docs);
    if (n == 0) {
        api_error(rp, 422, "empty", "'documents' is empty");
        goto done;
    }
    if (n > (size_t)a->conf->max_documents) {
        api_error(rp, 413, "too_many_documents", "%zu documents; the limit is %d per request",
                  n, a->conf->max_documents);
        goto done;
    }
    texts = calloc(n, sizeof(*texts));
    metas = calloc(n, sizeof(*metas));
    cd = calloc(n, sizeof(*cd));
    to_embed = calloc(n, sizeof(*to_embed));
    given = malloc(n * (size_t)H * sizeof(float));
    if (texts == NULL || metas == NULL || cd == NULL || to_embed == NULL || given == NULL) {
        api_error(rp, 503, "busy", "out of memory");
        goto done;
    }
    json_array_foreach(docs, i, d) {
        json_t *id = json_object_get(d, "id"), *text = json_object_get(d, "text");
        json_t *meta = json_object_get(d, "meta"), *vec = json_object_get(d, "vector");
        const char *key;
        json_t *v;
        char what[64];
        if (!json_is_object(d)) {
            api_error(rp, 400, "invalid_type", "documents[%zu] must be an object", i);
            goto done;
        }
        json_object_foreach(d, key, v) {
            int ok = 0;
            for (int k = 0; k < 4; k++)
                ok |= strcmp(key, doc_keys[k]) == 0;
            if (!ok) {
                api_error(rp, 400, "unknown_field", "documents[%zu]: unknown field '%s'", i, key);
                goto done;
            }
        }
        if (id == NULL) {
            api_error(rp, 400, "missing_field", "documents[%zu].id is required", i);
            goto done;
        }
        if (!json_is_string(id)) {
            api_error(rp, 400, "invalid_type", "documents[%zu].id must be a string", i);
            goto done;
        }
        snprintf(what, sizeof(what), "documents[%zu].id", i);
        if (!valid_id(json_string_value(id), json_string_length(id), what, rp))
            goto done;
        snprintf(what, sizeof(what), "documents[%zu].text", i);
        if (text == NULL && vec == NULL) {
            api_error(rp, 400, "missing_field", "%s or .vector is required", what);
            goto done;
        }
        if (text != NULL && check_text(a, text, what, rp))
            goto done;
        snprintf(what, sizeof(what), "documents[%zu].vector", i);
        if (vec != NULL && sp_vector(vec, H, given + i * (size_t)H, what, rp))
            goto done;
        if (meta != NULL && !json_is_null(meta) && !json_is_object(meta)) {
            api_error(rp, 400, "invalid_type", "documents[%zu].meta must be an object", i);
            goto done;
        }
        texts[i] = text != NULL ? text_of(text) : (struct emb_text){ "", 0 };
        if (vec != NULL)
            cd[i].vec = given + i * (size_t)H;
        else
            to_embed[n_embed++] = i;
        metas[i] = meta && json_is_object(meta) ? json_dumps(meta, JSON_COMPACT) : strdup("{}");
        if (metas[i] == NULL) {
            api_error(rp, 503, "busy", "out of memory");
            goto done;
        }
        cd[i].id = json_string_value(id);
        cd[i].text = texts[i].s;
        cd[i].text_len = texts[i].len;
        cd[i].meta = metas[i];
    }
    if ((c = find_collection(a, name, rp)) == NULL)
        goto done;
    for (i = 0; i < n_embed; i++)   /* in place: to_embed[i] >= i */
        texts[i] = texts[to_embed[i]];
    if (n_embed > 0 && embed(a, texts, (int)n_embed, 0, &em, rp))
        goto done;
    for (i = 0; i < n_embed; i++)
        cd[to_embed[i]].vec = em.vecs + i * (size_t)H;
    if (coll_upsert(c, cd, (int)n, &seq, &e) != RS_OK) {
        coll_fail(a, rp, &e);
        goto done;
    }
    reply(rp, 200, json_pack("{s:I,s:I}", "upserted", (json_int_t)n, "seq", (json_int_t)seq));
done:
    store_release(a->store, c);
    for (i = 0; metas != NULL && i < n; i++)
        free(metas[i]);
    free(metas);
    free(texts);
    free(cd);
    free(to_embed);
    free(given);
    free(em.vecs);
    json_decref(body);
}

void
api_document_get(struct app *a, const struct api_request *rq, const struct route_args *arg,
                 struct api_reply *rp)
{
    struct coll *c;
    struct coll_hit h;
    struct rs_error e;
    long long min_seq;

    if (query_min_seq(rq, &min_seq, rp) || (c = find_collection(a, arg->name, rp)) == NULL)
        return;
    if (wait_min_seq(a, c, min_seq, rp)) {
        /* answered */
    } else if (coll_get(c, arg->id, &h, &e) != RS_OK) {
        coll_fail(a, rp, &e);
    } else {
        reply(rp, 200, hit_json(&h, 0));
        coll_hit_clear(&h);
    }
    store_release(a->store, c);
}

void
api_document_delete(struct app *a, const struct api_request *rq, const struct route_args *arg,
                    struct api_reply *rp)
{
    struct coll *c = find_collection(a, arg->name, rp);
    struct rs_error e;
    int64_t seq;

    (void)rq;
    if (c == NULL)
        return;
    if (coll_delete(c, arg->id, &seq, &e) != RS_OK)
        coll_fail(a, rp, &e);
    else
        reply(rp, 200, json_pack("{s:s,s:I}", "deleted", arg->id, "seq", (json_int_t)seq));
    store_release(a->store, c);
}

/* --- search ---------------------------------------------------------------- */

void
api_search(struct app *a, const struct api_request *rq, const struct route_args *arg,
           struct api_reply *rp)
{
    const char *name = arg->name;
    static const char *const allowed[] = { "text", "vector", "k", "min_score", "filter",
                                           "ef_search", "nprobe", "min_seq", NULL };
    const int H = rf_model_config(a->model)->d_model;
    json_t *body = body_object(rq, rp, allowed), *text, *vec, *list;
    long long k = 10, min_seq = -1;
    double min_score = -1.0;
    float *q = NULL;
    struct sp_filter filter = { 0 };
    struct coll_effort effort;
    struct coll_query cq;
    struct embedded em = { 0 };
    struct coll *c = NULL;
    struct coll_hit *hits = NULL;
    struct rs_error e;
    int n = 0;

    if (body == NULL)
        return;
    text = json_object_get(body, "text");
    vec = json_object_get(body, "vector");
    if ((text == NULL) == (vec == NULL)) {
        api_error(rp, 400, "missing_field", "give either 'text' or 'vector'");
        goto done;
    }
    if (int_field(body, "k", 1, a->conf->max_search_k, &k, rp) ||
        num_field(body, "min_score", &min_score, rp) || sp_filter_parse(body, &filter, rp) ||
        sp_effort_parse(body, 0, &effort, rp) ||
        int_field(body, "min_seq", 0, INT64_MAX, &min_seq, rp))
        goto done;
    if (text != NULL && check_text(a, text, "'text'", rp))
        goto done;
    if (vec != NULL) {
        if ((q = malloc((size_t)H * sizeof(float))) == NULL) {
            api_error(rp, 503, "busy", "out of memory");
            goto done;
        }
        if (sp_vector(vec, H, q, "'vector'", rp))
            goto done;
    }
    if ((c = find_collection(a, name, rp)) == NULL || wait_min_seq(a, c, min_seq, rp))
        goto done;
    if (text != NULL) {
        struct emb_text t = text_of(text);
        if (embed(a, &t, 1, 0, &em, rp))
            goto done;
    }
    cq = (struct coll_query){ (int)k, (float)min_score, sp_filter_get(&filter), effort.ef_search,
                              effort.nprobe };
    if (coll_search_q(c, q ? q : em.vecs, &cq, &hits, &n, &e) != RS_OK) {
        coll_fail(a, rp, &e);
        goto done;
    }
    list = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(list, hit_json(&hits[i], 1));
    reply(rp, 200, json_pack("{s:o}", "hits", list));
done:
    coll_hits_free(hits, n);
    store_release(a->store, c);
    free(q);
    free(em.vecs);
    sp_filter_free(&filter);
    json_decref(body);
}
