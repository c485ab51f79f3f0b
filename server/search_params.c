/*
 * search_params.c: filters, effort and client vectors from JSON
 * (search_params.h).  Only shapes and bounds are checked here; what they
 * mean for a given collection is checked by the collection itself.
 */
#include "search_params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One scalar JSON value as a filter value; -1 when it is not a scalar. */
static int
scalar(json_t *j, struct coll_value *v)
{
    memset(v, 0, sizeof(*v));
    switch (json_typeof(j)) {
    case JSON_STRING:
        v->type = COLL_V_STRING;
        v->s = json_string_value(j);
        v->len = json_string_length(j);
        return 0;
    case JSON_INTEGER: v->type = COLL_V_INT; v->i = json_integer_value(j); return 0;
    case JSON_REAL: v->type = COLL_V_REAL; v->r = json_real_value(j); return 0;
    case JSON_TRUE: v->type = COLL_V_TRUE; return 0;
    case JSON_FALSE: v->type = COLL_V_FALSE; return 0;
    case JSON_NULL: v->type = COLL_V_NULL; return 0;
    default: return -1;
    }
}

/* The clause for key: value, its values appended at values[*nv]. */
static int
clause(const char *key, json_t *val, struct coll_clause *cl, struct coll_value *values,
       size_t *nv, struct api_reply *rp)
{
    json_t *x;
    size_t i;

    if (strlen(key) > COLL_FILTER_MAX_KEY) {
        api_error(rp, 422, "out_of_range", "filter keys have at most %d bytes",
                  COLL_FILTER_MAX_KEY);
        return -1;
    }
    if (key[0] == '$') {
        api_error(rp, 400, "invalid_filter", "filter key '%s': keys starting with '$' are "
                  "operators, and only {\"$exists\": true|false} is one", key);
        return -1;
    }
    cl->key = key;
    cl->cond = COLL_MATCH;
    cl->values = values + *nv;
    if (json_is_object(val)) {
        json_t *ex = json_object_get(val, "$exists");
        if (json_object_size(val) != 1 || !json_is_boolean(ex)) {
            api_error(rp, 400, "invalid_filter", "filter key '%s': an object must be "
                      "{\"$exists\": true} or {\"$exists\": false}", key);
            return -1;
        }
        cl->cond = json_is_true(ex) ? COLL_EXISTS : COLL_ABSENT;
        cl->values = NULL;
        return 0;
    }
    if (!json_is_array(val)) {   /* a scalar: objects and lists are handled apart */
        cl->n_values = 1;
        scalar(val, &values[(*nv)++]);
        return 0;
    }
    if (json_array_size(val) == 0 || json_array_size(val) > COLL_FILTER_MAX_VALUES) {
        api_error(rp, 422, "out_of_range", "filter key '%s' lists %zu values; a list has 1 "
                  "to %d", key, json_array_size(val), COLL_FILTER_MAX_VALUES);
        return -1;
    }
    json_array_foreach(val, i, x) {
        if (scalar(x, &values[*nv]) != 0) {
            api_error(rp, 400, "invalid_filter", "filter key '%s': item %zu of the list is "
                      "not a string, number, true, false or null", key, i);
            return -1;
        }
        ++*nv;
    }
    cl->n_values = (int)json_array_size(val);
    return 0;
}

int
sp_filter_parse(json_t *body, struct sp_filter *out, struct api_reply *rp)
{
    json_t *f = json_object_get(body, "filter"), *val;
    const char *key;
    size_t nv = 0, n = 0;
    struct rs_error e;

    memset(out, 0, sizeof(*out));
    if (f == NULL || json_is_null(f))
        return 0;
    if (!json_is_object(f)) {
        api_error(rp, 400, "invalid_type", "'filter' must be an object such as "
                  "{\"category\": \"billing\"}");
        return -1;
    }
    if (json_object_size(f) > COLL_FILTER_MAX_CLAUSES) {
        api_error(rp, 422, "out_of_range", "'filter' has %zu keys; the limit is %d",
                  json_object_size(f), COLL_FILTER_MAX_CLAUSES);
        return -1;
    }
    if (json_object_size(f) == 0)
        return 0;
    out->clauses = calloc(json_object_size(f), sizeof(*out->clauses));
    out->values = calloc(json_object_size(f) * COLL_FILTER_MAX_VALUES, sizeof(*out->values));
    if (out->clauses == NULL || out->values == NULL) {
        api_error(rp, 503, "busy", "out of memory");
        return -1;
    }
    json_object_foreach(f, key, val) {
        if (clause(key, val, &out->clauses[n], out->values, &nv, rp) != 0)
            return -1;
        n++;
    }
    out->f.clauses = out->clauses;
    out->f.n = (int)n;
    if (coll_filter_check(&out->f, &e) != RS_OK) {   /* string lengths, for one */
        api_error(rp, 422, "out_of_range", "%s", e.msg);
        return -1;
    }
    return 0;
}

const struct coll_filter *
sp_filter_get(const struct sp_filter *f)
{
    return f->f.n > 0 ? &f->f : NULL;
}

void
sp_filter_free(struct sp_filter *f)
{
    free(f->clauses);
    free(f->values);
    memset(f, 0, sizeof(*f));
}

static int
effort_field(json_t *body, const char *key, int max, int *out, struct api_reply *rp)
{
    json_t *v = json_object_get(body, key);

    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        api_error(rp, 400, "invalid_type", "'%s' must be an integer", key);
        return -1;
    }
    if (json_integer_value(v) < 1 || json_integer_value(v) > max) {
        api_error(rp, 422, "out_of_range", "'%s' must be from 1 to %d, not %lld", key, max,
                  (long long)json_integer_value(v));
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

int
sp_effort_parse(json_t *body, int construction, struct coll_effort *out, struct api_reply *rp)
{
    memset(out, 0, sizeof(*out));
    return (construction && effort_field(body, "ef_construction", COLL_MAX_EF_CONSTRUCTION,
                                         &out->ef_construction, rp)) ||
           effort_field(body, "ef_search", COLL_MAX_EF_SEARCH, &out->ef_search, rp) ||
           effort_field(body, "nprobe", COLL_MAX_NPROBE, &out->nprobe, rp)
               ? -1 : 0;
}

void
sp_effort_json(json_t *j, const struct coll_effort *eff)
{
    if (j == NULL)
        return;
    if (eff->ef_construction)
        json_object_set_new(j, "ef_construction", json_integer(eff->ef_construction));
    if (eff->ef_search)
        json_object_set_new(j, "ef_search", json_integer(eff->ef_search));
    if (eff->nprobe)
        json_object_set_new(j, "nprobe", json_integer(eff->nprobe));
}

int
sp_vector(json_t *v, int dim, float *out, const char *what, struct api_reply *rp)
{
    json_t *x;
    size_t i;

    if (!json_is_array(v)) {
        api_error(rp, 400, "invalid_type", "%s must be a list of numbers", what);
        return -1;
    }
    if (json_array_size(v) != (size_t)dim) {
        api_error(rp, 422, "wrong_dimension", "%s has %zu numbers; the model's vectors have %d",
                  what, json_array_size(v), dim);
        return -1;
    }
    json_array_foreach(v, i, x) {
        if (!json_is_number(x)) {
            api_error(rp, 400, "invalid_type", "%s[%zu] is not a number", what, i);
            return -1;
        }
        out[i] = (float)json_number_value(x);
        if (!isfinite(out[i])) {
            api_error(rp, 422, "out_of_range", "%s[%zu] does not fit a float", what, i);
            return -1;
        }
    }
    return 0;
}
