/*
 * routes.h: the route table of rosimd, the one list of what it serves.
 *
 * Each row is {method, pattern, handler, flags}; a pattern is written as in
 * docs/openapi.json ("/v1/collections/{name}/documents/{id}").  From the
 * table come
 *   - the dispatch (api_handle() in routes.c, and http.c for /metrics and
 *     the files of web.h, whose rows have no handler);
 *   - 404 for a path no row has, and 405 for a method no row of the path
 *     has, with those rows' methods, in table order, in Allow;
 *   - the route label of metrics and logs: the pattern;
 *   - which routes need no API key (ROUTE_OPEN) and which answer in
 *     OpenAI's conventions (ROUTE_OPENAI);
 *   - the check that docs/openapi.json documents exactly these paths and
 *     methods (tests/check_routes.c).
 *
 * Parameters are whole path segments, percent-decoded: {name} must be a
 * collection name and {id} a document id (else 422, whatever the method);
 * {model} is any segment.  HEAD is answered as GET.  The table is
 * constant: any thread may use it.
 */
#ifndef ROSIM_ROUTES_H
#define ROSIM_ROUTES_H

#include <stddef.h>

#include "api.h"

#define ROUTE_MAX_PATH 2048     /* bytes of a raw path, NUL included (414 beyond) */
#define ROUTE_MAX_SEGMENTS 8

enum {
    ROUTE_OPEN = 1,        /* served without an API key */
    ROUTE_OPENAI = 2,      /* errors in OpenAI's shape (openai.h) */
    ROUTE_LOADED = 4,      /* 503 until the model and collections are loaded */
    ROUTE_METRICS = 8,     /* served by http.c: the metrics text */
    ROUTE_FILE = 16,       /* served by http.c: the file of web.h at the pattern */
};

/* The decoded parameters of a path (NULL when the pattern has none);
 * borrowed from the struct route_match they came from. */
struct route_args {
    const char *name;      /* {name}: a valid collection name */
    const char *id;        /* {id}: a valid document id */
    const char *model;     /* {model} */
};

typedef void route_fn(struct app *a, const struct api_request *rq, const struct route_args *arg,
                      struct api_reply *rp);

struct route {
    const char *method;    /* "GET", "PUT", "POST" or "DELETE" */
    const char *pattern;
    route_fn *handler;     /* NULL for ROUTE_METRICS and ROUTE_FILE */
    int flags;
};

/* The table, n rows (borrowed, constant). */
const struct route *route_table(int *n);

enum route_result {
    ROUTE_FOUND,           /* route: the row of the method */
    ROUTE_BAD_METHOD,      /* route: a row of the path; allow: its methods */
    ROUTE_NONE,            /* no row has the path */
    ROUTE_TOO_LONG,        /* the path has ROUTE_MAX_PATH bytes or more */
    ROUTE_MALFORMED,       /* a bad percent escape, or too many segments */
};

struct route_match {
    const struct route *route;
    const char *allow;     /* the path's methods, e.g. "GET, PUT, DELETE" */
    struct route_args args;
    char buf[ROUTE_MAX_PATH];                 /* the decoded segments */
    char *seg[ROUTE_MAX_SEGMENTS];
    size_t len[ROUTE_MAX_SEGMENTS];           /* counts a decoded %00; strlen does not */
    int n;
};

/* Find the row for method (HEAD as GET) and path (raw, percent-encoded)
 * and fill m; the parameters are not checked yet (api_handle does). */
enum route_result route_match(const char *method, const char *path, struct route_match *m);

#endif
