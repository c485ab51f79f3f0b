/*
 * search_params.h: the request fields that steer a collection, parsed from
 * JSON into collection.h's structs with rosimd's native error replies:
 * metadata filters, search effort, and vectors given by the client.
 *
 *     struct sp_filter f;
 *     if (sp_filter_parse(body, &f, rp)) return;          // 400 / 422 filled in
 *     struct coll_query q = { k, min_score, sp_filter_get(&f), 0, 0 };
 *     ...
 *     sp_filter_free(&f);
 *
 * The filter grammar (README, docs/openapi.json):
 *
 *     "filter": { KEY: VALUE | [VALUE, ...] | {"$exists": true|false}, ... }
 *
 * with VALUE a string, number, true, false or null; keys ANDed, a list
 * meaning any of its values.  Wrong types, an object other than $exists
 * and keys starting with '$' get 400; bounds (collection.h's
 * COLL_FILTER_MAX_*) and an empty list get 422.
 */
#ifndef ROSIM_SEARCH_PARAMS_H
#define ROSIM_SEARCH_PARAMS_H

#include <jansson.h>

#include "../index/collection.h"
#include "api.h"

struct sp_filter {
    struct coll_filter f;
    struct coll_clause *clauses;   /* owned; keys and strings borrowed from the body */
    struct coll_value *values;     /* owned */
};

/* The optional "filter" field of body into *out, which borrows from body
 * (keep it alive).  0, or -1 with rp filled.  Free with sp_filter_free
 * either way. */
int sp_filter_parse(json_t *body, struct sp_filter *out, struct api_reply *rp);
/* The filter to search with: NULL when none was given (or {}). */
const struct coll_filter *sp_filter_get(const struct sp_filter *f);
void sp_filter_free(struct sp_filter *f);

/* The optional fields "ef_search", "nprobe" and, when construction,
 * "ef_construction" of body into *out (0 where absent).  0, or -1 with rp
 * filled: 400 not an integer, 422 out of bounds.  Whether they apply to the
 * index type is the collection's to say (RS_EINVAL: 422). */
int sp_effort_parse(json_t *body, int construction, struct coll_effort *out,
                    struct api_reply *rp);

/* Add the effort fields that apply (non-zero in eff) to the object j. */
void sp_effort_json(json_t *j, const struct coll_effort *eff);

/* v (what names it in messages) as dim floats into out.  0, or -1 with rp
 * filled: 400 not a list of numbers, 422 another length or a number that
 * is no finite float.  Not normalized (the collection does it). */
int sp_vector(json_t *v, int dim, float *out, const char *what, struct api_reply *rp);

#endif
