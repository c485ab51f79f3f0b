/*
 * api.h: the HTTP API v1 of rosimd, independent of the HTTP library.
 *
 * http.c hands each complete request to api_handle() (routes.c: the route
 * table) and sends back what it fills in.  Every error reply is {"error":{"code","message"}} with the
 * status of DESIGN.md: 400 malformed JSON or wrong types, 404 unknown route
 * or thing, 405 wrong method, 409 conflicting collection, 413 over a
 * limit, 414 path too long, 415 not JSON, 422 valid JSON that cannot be
 * processed (and a collection name or document id that breaks its rules),
 * 503 not ready, no room for the request within request_timeout, or work
 * cancelled (with Retry-After), 429 queue full or over capacity (with
 * Retry-After), 507 disk full.  Messages that echo input are valid UTF-8.
 */
#ifndef ROSIM_API_H
#define ROSIM_API_H

#include <jansson.h>
#include <stddef.h>

#include "app.h"

struct api_request {
    const char *method;
    const char *path;          /* raw, still percent-encoded */
    const char *content_type;  /* NULL when absent */
    const char *body;          /* NUL-terminated; may hold NULs before body_len */
    size_t body_len;
    /* nonzero when the work should stop (client gone, server stopping);
     * asked between generation steps.  NULL: never. */
    int (*cancelled)(void *arg);
    void *cancel_arg;
    /* the value of the query argument key (?key=value, decoded), NULL when
     * absent; query NULL: there are none */
    const char *(*query)(void *arg, const char *key);
    void *query_arg;
};

struct api_reply {
    int status;
    json_t *json;              /* owned; the body */
    int retry_after;           /* seconds; 0: no header */
    const char *allow;         /* for 405: the methods allowed */
    const char *route;         /* route template, for metrics and logs */
};

/* Answer rq into rp (all of whose fields it sets): the route table's
 * 414, 400, 404, 405 with Allow, 422 for a bad name or id, 503 while
 * loading, else the route's reply.  rp->route is the route's pattern, or
 * "other". */
void api_handle(struct app *a, const struct api_request *rq, struct api_reply *rp);

/* Fill rp with an error reply. */
void api_error(struct api_reply *rp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
