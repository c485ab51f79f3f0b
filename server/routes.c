/*
 * routes.c: the route table (see routes.h) and the dispatch of the API
 * from it.
 *
 * A path is split into percent-decoded segments once; a row matches when
 * its pattern has as many segments and every literal one is equal.  The
 * order of the checks is the order of the answers a client sees: the path
 * (414, 400, 404), its parameters (422: a bad name or id is refused
 * whatever the method), the method (405), loading (503), then the handler.
 */
#include "api.h"
#include "routes.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../index/store.h"
#include "api_internal.h"
#include "openai.h"

static void healthz(struct app *a, const struct api_request *rq, const struct route_args *arg,
                    struct api_reply *rp);

/* One row per method of a path; the rows of a path are together, their
 * methods in the order Allow lists them.  Every row is documented in
 * docs/openapi.json, and every path and method there is a row. */
static const struct route routes[] = {
    { "GET",    "/healthz",                              healthz,              ROUTE_OPEN },
    { "GET",    "/readyz",                               api_readyz,           ROUTE_OPEN | ROUTE_LOADED },
    { "GET",    "/metrics",                              NULL,                 ROUTE_OPEN | ROUTE_METRICS },
    { "GET",    "/",                                     NULL,                 ROUTE_OPEN | ROUTE_FILE },
    { "GET",    "/playground.js",                        NULL,                 ROUTE_OPEN | ROUTE_FILE },
    { "GET",    "/playground.css",                       NULL,                 ROUTE_OPEN | ROUTE_FILE },
    { "GET",    "/openapi.json",                         NULL,                 ROUTE_OPEN | ROUTE_FILE },
    { "GET",    "/v1/info",                              api_info,             ROUTE_LOADED },
    { "POST",   "/v1/tokenize",                          api_tokenize,         ROUTE_LOADED },
    { "POST",   "/v1/embed",                             api_embed,            ROUTE_LOADED },
    { "POST",   "/v1/similarity",                        api_similarity,       ROUTE_LOADED },
    { "POST",   "/v1/generate",                          api_generate,         ROUTE_LOADED },
    { "POST",   "/v1/embeddings",                        openai_embeddings,    ROUTE_LOADED | ROUTE_OPENAI },
    { "GET",    "/v1/models",                            openai_models,        ROUTE_LOADED | ROUTE_OPENAI },
    { "GET",    "/v1/models/{model}",                    openai_model,         ROUTE_LOADED | ROUTE_OPENAI },
    { "GET",    "/v1/collections",                       api_collections_list, ROUTE_LOADED },
    { "GET",    "/v1/collections/{name}",                api_collection_get,   ROUTE_LOADED },
    { "PUT",    "/v1/collections/{name}",                api_collection_put,   ROUTE_LOADED },
    { "DELETE", "/v1/collections/{name}",                api_collection_drop,  ROUTE_LOADED },
    { "POST",   "/v1/collections/{name}/documents",      api_documents_upsert, ROUTE_LOADED },
    { "GET",    "/v1/collections/{name}/documents/{id}", api_document_get,     ROUTE_LOADED },
    { "DELETE", "/v1/collections/{name}/documents/{id}", api_document_delete,  ROUTE_LOADED },
    { "POST",   "/v1/collections/{name}/search",         api_search,           ROUTE_LOADED },
};
#define N_ROUTES (int)(sizeof(routes) / sizeof(routes[0]))

const struct route *
route_table(int *n)
{
    *n = N_ROUTES;
    return routes;
}

/* allow[i]: the methods of the path of row i, built once. */
static char allow[N_ROUTES][32];
static pthread_once_t allow_once = PTHREAD_ONCE_INIT;

static void
build_allow(void)
{
    for (int i = 0; i < N_ROUTES; i++)
        for (int j = 0; j < N_ROUTES; j++)
            if (strcmp(routes[i].pattern, routes[j].pattern) == 0)
                snprintf(allow[i] + strlen(allow[i]), sizeof(allow[i]) - strlen(allow[i]), "%s%s",
                         allow[i][0] != '\0' ? ", " : "", routes[j].method);
}

/* --- matching ------------------------------------------------------------- */

static int
hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* Split the raw path into percent-decoded segments (in m->buf, each also
 * NUL-terminated).  -1 when an escape is malformed or there are too many
 * segments. */
static int
split_path(const char *path, struct route_match *m)
{
    size_t o = 0;

    m->n = 0;
    if (path[0] != '/')
        return -1;
    for (const char *p = path + 1;;) {
        if (m->n == ROUTE_MAX_SEGMENTS)
            return -1;
        m->seg[m->n++] = m->buf + o;
        while (*p != '\0' && *p != '/') {
            char ch = *p++;
            if (ch == '%') {
                int hi = hexval(p[0]), lo = hi < 0 ? -1 : hexval(p[1]);
                if (lo < 0)
                    return -1;
                ch = (char)(hi * 16 + lo);
                p += 2;
            }
            if (o + 2 >= sizeof(m->buf))
                return -1;
            m->buf[o++] = ch;
        }
        m->len[m->n - 1] = (size_t)(m->buf + o - m->seg[m->n - 1]);
        m->buf[o++] = '\0';
        if (*p == '\0')
            break;
        p++;
    }
    /* a trailing slash leaves an empty last segment: ignore it */
    if (m->n > 1 && m->len[m->n - 1] == 0)
        m->n--;
    return 0;
}

/* Whether the segments of m match pattern; its parameters go to args. */
static int
matches(const char *pattern, struct route_match *m, struct route_args *args)
{
    const char *p = pattern + 1;

    memset(args, 0, sizeof(*args));
    for (int i = 0; i < m->n; i++) {
        const char *end = strchr(p, '/');
        size_t plen = end != NULL ? (size_t)(end - p) : strlen(p);
        if (p[0] == '{') {
            const char **slot = strncmp(p, "{name}", 6) == 0 ? &args->name
                              : strncmp(p, "{id}", 4) == 0 ? &args->id : &args->model;
            *slot = m->seg[i];
        } else if (plen != m->len[i] || memcmp(p, m->seg[i], plen) != 0) {
            return 0;
        }
        if ((end == NULL) != (i == m->n - 1))
            return 0;
        p = end != NULL ? end + 1 : p + plen;
    }
    return 1;
}

enum route_result
route_match(const char *method, const char *path, struct route_match *m)
{
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;

    m->route = NULL;
    m->allow = NULL;
    if (strlen(path) >= sizeof(m->buf))
        return ROUTE_TOO_LONG;
    if (split_path(path, m) != 0)
        return ROUTE_MALFORMED;
    pthread_once(&allow_once, build_allow);
    for (int i = 0; i < N_ROUTES; i++) {
        struct route_args args;
        if (!matches(routes[i].pattern, m, &args))
            continue;
        if (m->route == NULL || strcmp(routes[i].method, want) == 0) {
            m->route = &routes[i];
            m->allow = allow[i];
            m->args = args;
        }
        if (strcmp(routes[i].method, want) == 0)
            return ROUTE_FOUND;
    }
    return m->route != NULL ? ROUTE_BAD_METHOD : ROUTE_NONE;
}

/* --- dispatch ------------------------------------------------------------- */

static void
healthz(struct app *a, const struct api_request *rq, const struct route_args *arg,
        struct api_reply *rp)
{
    (void)a;
    (void)rq;
    (void)arg;
    reply(rp, 200, json_pack("{s:s}", "status", "ok"));
}

/* 1 when the {name} and {id} of m are valid; else 0 with a 422 in rp. */
static int
valid_args(const struct route_match *m, struct api_reply *rp)
{
    const char *name = m->args.name, *id = m->args.id;

    for (int i = 0; i < m->n; i++) {
        if (name != NULL && m->seg[i] == name &&
            (strlen(name) != m->len[i] || !store_valid_name(name))) {
            api_error(rp, 422, "invalid_name", "'%s'%s is not a collection name (%s)", name,
                      strlen(name) != m->len[i] ? " followed by U+0000" : "", STORE_NAME_RULE);
            return 0;
        }
        if (id != NULL && m->seg[i] == id && !valid_id(id, m->len[i], "the document id", rp))
            return 0;
    }
    return 1;
}

void
api_handle(struct app *a, const struct api_request *rq, struct api_reply *rp)
{
    struct route_match m;
    enum route_result r = route_match(rq->method, rq->path, &m);

    rp->status = 0;
    rp->json = NULL;
    rp->retry_after = 0;
    rp->allow = NULL;
    rp->route = m.route != NULL ? m.route->pattern : "other";
    if (r == ROUTE_TOO_LONG) {
        api_error(rp, 414, "uri_too_long", "the path has %zu bytes; the limit is %zu",
                  strlen(rq->path), sizeof(m.buf) - 1);
        return;
    }
    if (r == ROUTE_MALFORMED) {
        api_error(rp, 400, "invalid_path", "the path is malformed");
        return;
    }
    if (r == ROUTE_NONE || (r == ROUTE_FOUND && m.route->handler == NULL)) {
        api_error(rp, 404, "not_found", "no route %s", rq->path);
        return;
    }
    if (valid_args(&m, rp)) {
        if (r == ROUTE_BAD_METHOD) {
            api_error(rp, 405, "method_not_allowed", "%s is not allowed here; use %s",
                      rq->method, m.allow);
            rp->allow = m.allow;
        } else if ((m.route->flags & ROUTE_LOADED) && !atomic_load(&a->ready)) {
            api_error(rp, 503, "not_ready", "the model and collections are still loading");
            rp->retry_after = 1;
        } else {
            m.route->handler(a, rq, &m.args, rp);
            return;
        }
    }
    /* the handlers of OpenAI's routes answer in its shape; these errors too */
    if (m.route->flags & ROUTE_OPENAI)
        openai_error(rp, NULL);
}
