/*
 * api_internal.h: what the route files of the API share, internal to
 * server/:
 *
 *   api_json.c    request bodies, fields, texts, ids; replies and errors
 *   api_model.c   embed(), and the routes that run the model
 *   api_coll.c    the routes of the collections, and /readyz
 *   openai.c      the OpenAI-compatible routes (openai.h)
 *   routes.c      the route table and the dispatch (routes.h)
 *
 * A handler (route_fn of routes.h) reads the request with these helpers
 * and fills the reply; the errors they fill in are rosimd's native
 * {"error":{"code","message"}} replies (openai.c reshapes its own).
 */
#ifndef ROSIM_API_INTERNAL_H
#define ROSIM_API_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "../model/embed.h"
#include "../model/error.h"
#include "api.h"
#include "routes.h"

/* --- api_json.c: replies -------------------------------------------------- */

/* Replace rp's body with j (stolen) and set its status. */
void reply(struct api_reply *rp, int status, json_t *j);

/* The reply for an error of the libraries: its status from e->code (422,
 * 404, 409, 507, 429 and 503 with Retry-After, else 500). */
void error_reply(struct api_reply *rp, const struct rs_error *e);

/* A new JSON array of the n floats of v, or NULL (a non-finite value, or
 * out of memory): never a shorter array. */
json_t *vector_json(const float *v, int n);

/* 1 when list holds n items; else 0 with rp filled (500) and list freed:
 * what a reply that lost an item (non-finite value) answers. */
int complete(json_t *list, int n, struct api_reply *rp);

/* --- api_json.c: requests ------------------------------------------------- */

/* The body as a JSON object whose keys are all in allowed (NULL-terminated).
 * Returns a new reference, or NULL with rp filled (400, 415). */
json_t *body_object(const struct api_request *rq, struct api_reply *rp,
                    const char *const allowed[]);

/* The optional field key of o (absent or null: *out unchanged): an integer
 * in [lo, hi], or any number.  0, or -1 with rp filled (400, 422). */
int int_field(json_t *o, const char *key, long long lo, long long hi, long long *out,
              struct api_reply *rp);
int num_field(json_t *o, const char *key, double *out, struct api_reply *rp);

/* The text of a JSON string (borrowed from it; may hold U+0000). */
struct emb_text text_of(json_t *str);

/* 0 when t is a string of at most max_text_bytes; else -1 with rp filled
 * (400, 413), what naming t in the message. */
int check_text(const struct app *a, json_t *t, const char *what, struct api_reply *rp);

/* The required field key of o: a list of 1..max_texts strings of at most
 * max_text_bytes each (or, with allow_string, one string).  Fills *texts
 * (malloc'd array of texts borrowed from o; caller frees the array) and
 * *n.  Returns 0, or -1 with rp filled (400, 413, 422, 503). */
int texts_field(const struct app *a, json_t *o, const char *key, int allow_string,
                struct emb_text **texts, int *n, struct api_reply *rp);

/* 1 when id[0..len) is a document id (1 to COLL_MAX_ID_BYTES bytes of
 * UTF-8 without U+0000); else 0 with a 422 in rp, what naming the id. */
int valid_id(const char *id, size_t len, const char *what, struct api_reply *rp);

/* --- api_model.c ---------------------------------------------------------- */

struct embedded {
    float *vecs;          /* (n, d_model), malloc'd; caller frees */
    long tokens;
    int truncated;        /* texts cut to max_length tokens */
};

/* Vectors of n texts by the pipeline of model/embed.h, truncated to
 * [model] max_length, encoded by the batcher, normalized when asked (the
 * collections take them as they are: they normalize what they store and
 * search).  Returns 0, or -1 with rp filled (429, 503, ...) and out->vecs
 * NULL. */
int embed(struct app *a, const struct emb_text *texts, int n, int normalize, struct embedded *out,
          struct api_reply *rp);

route_fn api_tokenize, api_embed, api_similarity, api_generate, api_info;

/* --- api_coll.c ----------------------------------------------------------- */

route_fn api_readyz, api_collections_list, api_collection_get, api_collection_put,
    api_collection_drop, api_documents_upsert, api_document_get, api_document_delete,
    api_search;

#endif
