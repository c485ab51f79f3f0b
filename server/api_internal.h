/*
 * api_internal.h: the parts of api.c that the other route files of the
 * API (openai.c) share: request bodies, text lists, embedding, replies and
 * paths.  Internal to server/: the errors they fill in are rosimd's native
 * {"error":{"code","message"}} replies.
 */
#ifndef ROSIM_API_INTERNAL_H
#define ROSIM_API_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "api.h"

#define MAX_SEGMENTS 8

/* Replace rp's body with j (stolen) and set its status. */
void reply(struct api_reply *rp, int status, json_t *j);

/* The body as a JSON object whose keys are all in allowed (NULL-terminated).
 * Returns a new reference, or NULL with rp filled (400, 415). */
json_t *body_object(const struct api_request *rq, struct api_reply *rp,
                    const char *const allowed[]);

/* A text of a request, borrowed from its JSON; may hold U+0000. */
struct text {
    const char *s;
    size_t len;
};

/* The text of a JSON string (borrowed). */
struct text text_of(json_t *str);

/* The required field key of o: a list of 1..max_texts strings of at most
 * max_text_bytes each (or, with allow_string, one string).  Fills *texts
 * (malloc'd array of texts borrowed from o; caller frees the array) and
 * *n.  Returns 0, or -1 with rp filled (400, 413, 422, 503). */
int texts_field(const struct app *a, json_t *o, const char *key, int allow_string,
                struct text **texts, int *n, struct api_reply *rp);

struct embedded {
    float *vecs;          /* (n, d_model), malloc'd; caller frees */
    long tokens;
    int truncated;        /* texts cut to max_length tokens */
};

/* Embed n texts through the batcher (normalized when asked).  Returns 0,
 * or -1 with rp filled (429, 503, ...) and out->vecs NULL. */
int embed(struct app *a, const struct text *texts, int n, int normalize, struct embedded *out,
          struct api_reply *rp);

/* A new JSON array of the n floats of v, or NULL (a non-finite value, or
 * out of memory): never a shorter array. */
json_t *vector_json(const float *v, int n);

/* 1 when list holds n items; else 0 with rp filled (500) and list freed:
 * what a reply that lost an item (non-finite value) answers. */
int complete(json_t *list, int n, struct api_reply *rp);

/* Split a raw path into at most MAX_SEGMENTS percent-decoded segments,
 * stored in buf, with their lengths (a segment may hold %00).  Returns 0,
 * or -1 when the path is malformed or too long. */
int split_path(const char *path, char *buf, size_t buf_len, char *seg[], size_t len[], int *n);

/* 1 when rq's method is m (HEAD counts as GET); else 0, and rp is filled
 * with 405 and allow (unless rp already holds a reply). */
int method_is(const struct api_request *rq, const char *m, struct api_reply *rp,
              const char *allow);

#endif
