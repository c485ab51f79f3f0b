/*
 * api_json.c: the JSON of requests and replies, shared by every route file
 * (api_model.c, api_coll.c, openai.c, routes.c).
 *
 * Validation happens here, before anything runs: a body must be a JSON
 * object (duplicate keys, invalid UTF-8 and non-finite or overflowing
 * numbers are refused by the parser; nesting is limited to MAX_DEPTH),
 * every field must be known and of the right type, and every count and
 * size is checked against [limits] in the configuration.  Strings may hold
 * U+0000 (\u0000 is valid JSON), so texts travel with their lengths;
 * collection names and document ids may not (they are refused with 422).
 * Error messages that echo input are made valid UTF-8 (see api_error).
 */
#include "api.h"
#include "api_internal.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../index/collection.h"
#include "metrics.h"

#define MAX_DEPTH 32
#define MAX_MESSAGE 600      /* bytes of an error message */

/* Length of the UTF-8 sequence at s[0..n) as JSON allows it (no overlong
 * forms, surrogates or code points past U+10FFFF); 0 when s starts none. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (n == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1fu;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

static int
utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if ((k = utf8_seq((const unsigned char *)s + i, n - i)) == 0)
            return 0;
    return 1;
}

/* src as valid UTF-8 in dst[0..cap): bytes that start no character become
 * "\xNN"; when it does not fit, it is cut between characters and ends
 * with "...". */
static void
utf8_echo(char *dst, size_t cap, const char *src)
{
    const size_t n = strlen(src);
    size_t o = 0;

    for (size_t i = 0, k; i < n; i += k) {
        char esc[5];
        const char *piece = src + i;
        size_t plen = k = utf8_seq((const unsigned char *)src + i, n - i);
        if (k == 0) {
            snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)src[i]);
            piece = esc;
            plen = 4;
            k = 1;
        }
        if (o + plen + 4 > cap) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(dst + o, piece, plen);
        o += plen;
    }
    dst[o] = '\0';
}

void
api_error(struct api_reply *rp, int status, const char *code, const char *fmt, ...)
{
    char msg[MAX_MESSAGE], *full = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&full, fmt, ap) < 0)
        full = NULL;
    va_end(ap);
    utf8_echo(msg, sizeof(msg), full != NULL ? full : "out of memory");
    free(full);
    json_decref(rp->json);
    rp->status = status;
    rp->json = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

/* --- replies --------------------------------------------------------------- */

/* The reply for a library error. */
void
error_reply(struct api_reply *rp, const struct rs_error *e)
{
    switch (e->code) {
    case RS_EINVAL: api_error(rp, 422, "invalid", "%s", e->msg); break;
    case RS_ENOTFOUND: api_error(rp, 404, "not_found", "%s", e->msg); break;
    case RS_EEXIST: api_error(rp, 409, "conflict", "%s", e->msg); break;
    case RS_ENOSPC: api_error(rp, 507, "disk_full", "%s", e->msg); break;
    case RS_EBUSY:
        api_error(rp, 429, "busy", "%s", e->msg);
        rp->retry_after = 1;
        metrics_rejected("queue_full");
        break;
    case RS_ETIMEOUT:
        api_error(rp, 503, "timeout", "%s", e->msg);
        rp->retry_after = 1;
        metrics_rejected("timeout");
        break;
    case RS_ECANCELED:
        api_error(rp, 503, "cancelled", "%s", e->msg);
        rp->retry_after = 1;
        break;
    case RS_ENOMEM:
        api_error(rp, 503, "busy", "%s", e->msg);
        rp->retry_after = 1;
        break;
    default: api_error(rp, 500, "internal", "%s", e->msg); break;
    }
}

void
reply(struct api_reply *rp, int status, json_t *j)
{
    json_decref(rp->json);
    rp->status = status;
    rp->json = j;
}

/* --- request bodies ------------------------------------------------------- */

static int
depth(const json_t *j)
{
    int d = 0;
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, key, v) {
            int x = depth(v);
            if (x > d)
                d = x;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            int x = depth(v);
            if (x > d)
                d = x;
        }
        return d + 1;
    }
    return 0;
}

/* Parse the body as a JSON object whose keys are all in allowed
 * (NULL-terminated).  Returns the object, or NULL with rp filled. */
/* Whether a Content-Type says JSON in UTF-8: application/json, with
 * parameters that may only say charset=utf-8 (JSON is UTF-8, RFC 8259). */
static int
json_media_type(const char *ct)
{
    size_t n;

    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
        return 0;
    for (ct += 16; *ct == ' ' || *ct == '\t'; ct++)
        ;
    while (*ct == ';') {
        for (ct++; *ct == ' ' || *ct == '\t'; ct++)
            ;
        if (strncasecmp(ct, "charset=", 8) == 0) {
            ct += 8;
            n = ct[0] == '"' ? 1 : 0;
            if (strncasecmp(ct + n, "utf-8", 5) != 0 || (n && ct[n + 5] != '"'))
                return 0;
            ct += 5 + 2 * n;
        } else {
            ct += strcspn(ct, ";");   /* another parameter: ignored */
            continue;
        }
        for (; *ct == ' ' || *ct == '\t'; ct++)
            ;
    }
    return *ct == '\0';
}

json_t *
body_object(const struct api_request *rq, struct api_reply *rp, const char *const allowed[])
{
    json_error_t je;
    json_t *j;
    const char *key;
    json_t *v;

    if (!json_media_type(rq->content_type)) {
        api_error(rp, 415, "unsupported_media_type",
                  "the body must be JSON in UTF-8, sent with Content-Type: application/json");
        return NULL;
    }
    j = json_loadb(rq->body ? rq->body : "", rq->body_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                   &je);
    if (j == NULL) {
        api_error(rp, 400, "invalid_json", "the body is not valid JSON: %s (line %d, column %d)",
                  je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_error(rp, 400, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    if (depth(j) > MAX_DEPTH) {
        json_decref(j);
        api_error(rp, 400, "invalid_json", "the body is nested deeper than %d levels", MAX_DEPTH);
        return NULL;
    }
    json_object_foreach(j, key, v) {
        int ok = 0;
        for (int i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            api_error(rp, 400, "unknown_field", "unknown field '%s'", key);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* An optional integer field in [lo, hi]; 0 on success. */
int
int_field(json_t *o, const char *key, long long lo, long long hi, long long *out,
          struct api_reply *rp)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        api_error(rp, 400, "invalid_type", "'%s' must be an integer", key);
        return -1;
    }
    if (json_integer_value(v) < lo || json_integer_value(v) > hi) {
        api_error(rp, 422, "out_of_range", "'%s' must be from %lld to %lld, not %lld", key, lo,
                  hi, (long long)json_integer_value(v));
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* An optional number field; range checked by the caller. */
int
num_field(json_t *o, const char *key, double *out, struct api_reply *rp)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v)) {
        api_error(rp, 400, "invalid_type", "'%s' must be a number", key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

int
check_text(const struct app *a, json_t *t, const char *what, struct api_reply *rp)
{
    if (!json_is_string(t)) {
        api_error(rp, 400, "invalid_type", "%s must be a string", what);
        return -1;
    }
    if (json_string_length(t) > a->conf->max_text_bytes) {
        api_error(rp, 413, "text_too_long", "%s has %zu bytes; the limit is %zu", what,
                  json_string_length(t), a->conf->max_text_bytes);
        return -1;
    }
    return 0;
}

struct emb_text
text_of(json_t *str)
{
    return (struct emb_text){ json_string_value(str), json_string_length(str) };
}

/* A required list of 1..max_texts strings (or, with allow_string, one
 * string).  Fills texts (malloc'd, borrowing from o) and n. */
int
texts_field(const struct app *a, json_t *o, const char *key, int allow_string,
            struct emb_text **texts, int *n, struct api_reply *rp)
{
    json_t *v = json_object_get(o, key), *t;
    size_t i;

    if (v == NULL) {
        api_error(rp, 400, "missing_field", "'%s' is required", key);
        return -1;
    }
    if (allow_string && json_is_string(v)) {
        if (check_text(a, v, key, rp))
            return -1;
        *texts = malloc(sizeof(**texts));
        if (*texts == NULL)
            return api_error(rp, 503, "busy", "out of memory"), -1;
        (*texts)[0] = text_of(v);
        *n = 1;
        return 0;
    }
    if (!json_is_array(v)) {
        api_error(rp, 400, "invalid_type", "'%s' must be %s", key,
                  allow_string ? "a string or a list of strings" : "a list of strings");
        return -1;
    }
    if (json_array_size(v) == 0) {
        api_error(rp, 422, "empty", "'%s' is empty", key);
        return -1;
    }
    if (json_array_size(v) > (size_t)a->conf->max_texts) {
        api_error(rp, 413, "too_many_texts", "'%s' has %zu texts; the limit is %d", key,
                  json_array_size(v), a->conf->max_texts);
        return -1;
    }
    *texts = malloc(json_array_size(v) * sizeof(**texts));
    if (*texts == NULL)
        return api_error(rp, 503, "busy", "out of memory"), -1;
    json_array_foreach(v, i, t) {
        char what[64];
        snprintf(what, sizeof(what), "'%s'[%zu]", key, i);
        if (check_text(a, t, what, rp)) {
            free(*texts);
            *texts = NULL;
            return -1;
        }
        (*texts)[i] = text_of(t);
    }
    *n = (int)json_array_size(v);
    return 0;
}

/* The whole vector or NULL (out of memory): never a shorter array. */
json_t *
vector_json(const float *v, int n)
{
    json_t *arr = json_array();
    for (int i = 0; arr != NULL && i < n; i++) {
        if (json_array_append_new(arr, json_real(v[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* Whether list holds all n items it was built with; if not (a value jansson
 * refused, or memory), list is released and the reply is an error: a client
 * never gets a shorter array. */
int
complete(json_t *list, int n, struct api_reply *rp)
{
    if (list != NULL && json_array_size(list) == (size_t)n)
        return 1;
    json_decref(list);
    api_error(rp, 500, "internal", "model produced non-finite values or memory ran out");
    return 0;
}

/* --- names and ids ------------------------------------------------------- */

/* Document ids are 1 to COLL_MAX_ID_BYTES bytes of UTF-8 without U+0000 (they
 * are keys in SQLite and FAISS's id map, and path segments).  1, or 0 with
 * a 422 in rp; what names the id in the message. */
int
valid_id(const char *id, size_t len, const char *what, struct api_reply *rp)
{
    if (len == 0 || len > COLL_MAX_ID_BYTES) {
        api_error(rp, 422, "invalid_id", "%s has %zu bytes; a document id has 1 to %d", what,
                  len, COLL_MAX_ID_BYTES);
        return 0;
    }
    if (memchr(id, '\0', len) != NULL) {
        api_error(rp, 422, "invalid_id", "%s contains U+0000, which document ids cannot hold",
                  what);
        return 0;
    }
    if (!utf8_valid(id, len)) {
        api_error(rp, 422, "invalid_id", "%s is not valid UTF-8", what);
        return 0;
    }
    return 1;
}
