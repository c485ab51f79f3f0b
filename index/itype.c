/*
 * itype.c: the index-type parser of itype.h.  A recursive-descent reading
 * of the comma-separated components, tracking the dimension each one sees
 * (a PCA or OPQ changes it for what follows).  Each component accepted is
 * also written down in its canonical spelling (itype.canon), so that two
 * spellings of one index compare equal.
 */
#include "itype.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 8

struct parse {
    char *part[MAX_PARTS];
    int n, at;           /* components, the next one */
    int dim;             /* the dimension the next component sees */
    int dim_unknown;     /* dim is only a bound: what divides it is not known */
    const char *factory;
    struct itype *t;
    struct rs_error *e;
};

static int refuse(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void spell(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
refuse(struct parse *p, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return rs_error_set(p->e, RS_EINVAL, "index type '%s': %s", p->factory, why);
}

/* Append a component, in its canonical spelling, to t->canon, leaving
 * room for a wrapper in front ("IDMap2,").  There is room for the longest:
 * a component grows by at most 6 characters. */
#define WRAPPER_ROOM 8

static void
spell(struct parse *p, const char *fmt, ...)
{
    size_t n = strlen(p->t->canon), room = sizeof(p->t->canon) - WRAPPER_ROOM;
    va_list ap;

    if (n > 0 && n < room - 1)
        p->t->canon[n++] = ',';
    va_start(ap, fmt);
    vsnprintf(p->t->canon + n, room - n, fmt, ap);
    va_end(ap);
}

/* When s is prefix followed by a number, that number (-1 when it is out of
 * [lo, hi]) and *end after it; 0 when s does not start so. */
static long
number_after(const char *s, const char *prefix, long lo, long hi, const char **end)
{
    size_t n = strlen(prefix);
    char *e;
    long v;

    if (strncmp(s, prefix, n) != 0 || s[n] < '0' || s[n] > '9')
        return 0;
    v = strtol(s + n, &e, 10);
    *end = e;
    return v < lo || v > hi ? -1 : v;
}

static void
need_training(struct parse *p, long vectors)
{
    if (vectors > p->t->train_min)
        p->t->train_min = vectors;
}

/* PQ<m>[x<bits>]: m must divide the dimension. */
static int
pq(struct parse *p, const char *s)
{
    const char *end;
    long m = number_after(s, "PQ", 1, p->dim, &end), bits = 8;

    if (m < 0)
        return refuse(p, "%s: the number of sub-quantizers must be 1 to %ld", s, (long)p->dim);
    if (*end == 'x') {
        char *e2;
        bits = strtol(end + 1, &e2, 10);
        if (e2 == end + 1 || *e2 != '\0' || bits < 1 || bits > ITYPE_MAX_PQ_BITS)
            return refuse(p, "%s: bits per code must be 1 to %ld", s, (long)ITYPE_MAX_PQ_BITS);
    } else if (*end != '\0') {
        return refuse(p, "'%s' is not PQ<m> or PQ<m>x<bits>", s);
    }
    if (!p->dim_unknown && p->dim % m != 0)
        return refuse(p, "%s: %ld sub-quantizers do not divide dimension %ld", s, m, (long)p->dim);
    need_training(p, ITYPE_TRAIN_FACTOR * (1L << bits));
    spell(p, "PQ%ldx%ld", m, bits);
    return RS_OK;
}

/* Flat, SQ4/6/8/fp16 or (when pq_ok) PQ: how vectors are stored. */
static int
storage(struct parse *p, const char *s, int pq_ok)
{
    if (strcmp(s, "Flat") == 0 || strcmp(s, "SQfp16") == 0) {
        spell(p, "%s", s);
        return RS_OK;
    }
    if (strcmp(s, "SQ4") == 0 || strcmp(s, "SQ6") == 0 || strcmp(s, "SQ8") == 0) {
        need_training(p, ITYPE_TRAIN_FACTOR * (1L << atoi(s + 2)));
        spell(p, "%s", s);
        return RS_OK;
    }
    if (pq_ok && strncmp(s, "PQ", 2) == 0)
        return pq(p, s);
    return refuse(p, "'%s' is not a storage (Flat, SQ4, SQ6, SQ8, SQfp16%s)", s,
                  pq_ok ? ", PQ<m>" : "");
}

static const char *
next(struct parse *p)
{
    return p->at < p->n ? p->part[p->at++] : NULL;
}

static int
transform(struct parse *p, const char *s)
{
    const char *end;
    long v;

    if (strcmp(s, "L2norm") == 0) {
        spell(p, "%s", s);
        return RS_OK;
    }
    if ((v = number_after(s, "PCAR", 1, p->dim, &end)) != 0 ||
        (v = number_after(s, "PCA", 1, p->dim, &end)) != 0) {
        if (v < 0 || *end != '\0')
            return refuse(p, "%s: the output dimension must be 1 to %ld", s, (long)p->dim);
        need_training(p, ITYPE_TRAIN_FACTOR * (long)p->dim);
        spell(p, "%s%ld", s[3] == 'R' ? "PCAR" : "PCA", v);
        p->dim = (int)v;
        p->dim_unknown = 0;
        return RS_OK;
    }
    v = number_after(s, "OPQ", 1, p->dim, &end);
    if (v == 0)
        return refuse(p, "'%s' is not a transform (PCA<d>, PCAR<d>, OPQ<m>[_<d>], L2norm)", s);
    if (v < 0)
        return refuse(p, "%s: the number of sub-quantizers must be 1 to %ld", s, (long)p->dim);
    {
        long out = p->dim;
        if (*end == '_') {
            char *e2;
            out = strtol(end + 1, &e2, 10);
            if (e2 == end + 1 || *e2 != '\0' || out < 1 || out > p->dim)
                return refuse(p, "%s: the output dimension must be 1 to %ld", s, (long)p->dim);
        } else if (*end != '\0') {
            return refuse(p, "'%s' is not OPQ<m> or OPQ<m>_<d>", s);
        }
        if (*end == '_')
            p->dim_unknown = 0;
        if (!p->dim_unknown && out % v != 0)
            return refuse(p, "%s: %ld sub-quantizers do not divide dimension %ld", s, v, out);
        need_training(p, ITYPE_TRAIN_FACTOR * 256L);
        if (p->dim_unknown)
            spell(p, "OPQ%ld", v);
        else
            spell(p, "OPQ%ld_%ld", v, out);
        p->dim = (int)out;
    }
    return RS_OK;
}

static int
is_transform(const char *s)
{
    return strcmp(s, "L2norm") == 0 || strncmp(s, "PCA", 3) == 0 || strncmp(s, "OPQ", 3) == 0;
}

static int
core(struct parse *p, const char *s)
{
    const char *end;
    long v;

    if ((v = number_after(s, "HNSW", 2, ITYPE_MAX_HNSW_M, &end)) != 0) {
        if (v < 0 || *end != '\0')
            return refuse(p, "%s: the graph degree must be 2 to %ld", s, (long)ITYPE_MAX_HNSW_M);
        p->t->hnsw_m = (int)v;
        p->t->removable = 0;
        spell(p, "HNSW%ld", v);
        if (p->at < p->n)
            return storage(p, next(p), 0);
        spell(p, "Flat");
        return RS_OK;
    }
    if ((v = number_after(s, "IVF", 1, ITYPE_MAX_NLIST, &end)) != 0) {
        const char *fine;
        if (v < 0 || *end != '\0')
            return refuse(p, "%s: the number of lists must be 1 to %ld", s, (long)ITYPE_MAX_NLIST);
        p->t->ivf_nlist = (int)v;
        need_training(p, ITYPE_TRAIN_FACTOR * v);
        spell(p, "IVF%ld", v);
        if ((fine = next(p)) == NULL)
            return refuse(p, "%s must be followed by a storage (Flat, SQ8, PQ<m>, ...)", s);
        return storage(p, fine, 1);
    }
    if (strncmp(s, "PQ", 2) == 0 || strncmp(s, "SQ", 2) == 0 || strcmp(s, "Flat") == 0)
        return storage(p, s, 1);
    return rs_error_set(p->e, RS_EINVAL, "index type '%s': '%s' is not a supported component; "
                        "the grammar is [IDMap2,] [PCA<d>|PCAR<d>|OPQ<m>[_<d>]|L2norm,]... "
                        "(Flat|SQ4|SQ6|SQ8|SQfp16|PQ<m>[x<bits>]|HNSW<M>[,Flat|,SQ8...]"
                        "|IVF<n>,(Flat|SQ8|PQ<m>...))", p->factory, s);
}

int
itype_parse(const char *factory, int dim, struct itype *t, struct rs_error *e)
{
    char buf[128];
    struct parse p = { .dim = dim > 0 ? dim : ITYPE_MAX_DIM, .dim_unknown = dim <= 0,
                       .factory = factory, .t = t, .e = e };
    const char *s, *wrapper = "";
    int rc, wrapped = 0;

    memset(t, 0, sizeof(*t));
    t->removable = 1;
    if (strlen(factory) == 0 || strlen(factory) >= sizeof(buf))
        return rs_error_set(e, RS_EINVAL, "the index type must have 1 to %zu characters",
                            sizeof(buf) - 1);
    strcpy(buf, factory);
    strcpy(t->factory, factory);
    for (char *tok = buf, *comma;; tok = comma + 1) {
        if (p.n == MAX_PARTS)
            return rs_error_set(e, RS_EINVAL, "index type '%s': more than %d components",
                                factory, MAX_PARTS);
        p.part[p.n++] = tok;
        if ((comma = strchr(tok, ',')) == NULL)
            break;
        *comma = '\0';
    }
    for (int i = 0; i < p.n; i++)
        if (p.part[i][0] == '\0')
            return rs_error_set(e, RS_EINVAL, "index type '%s' has an empty component", factory);
    s = next(&p);
    if (strcmp(s, "IDMap") == 0 || strcmp(s, "IDMap2") == 0) {
        wrapped = 1;
        wrapper = strcmp(s, "IDMap") == 0 ? "IDMap," : "IDMap2,";
        s = next(&p);
        if (s == NULL)
            return rs_error_set(e, RS_EINVAL, "index type '%s' wraps nothing", factory);
    }
    for (; is_transform(s); s = next(&p)) {
        if ((rc = transform(&p, s)) != RS_OK)
            return rc;
        if (p.at == p.n)
            return rs_error_set(e, RS_EINVAL, "index type '%s' ends with a transform; "
                                "add a storage such as Flat", factory);
    }
    if ((rc = core(&p, s)) != RS_OK)
        return rc;
    if ((s = next(&p)) != NULL)
        return rs_error_set(e, RS_EINVAL, "index type '%s': '%s' cannot follow %s%s", factory,
                            s, p.part[p.at - 2], strcmp(s, "RFlat") == 0 ||
                            strncmp(s, "Refine", 6) == 0
                            ? " (a refinement cannot keep document labels)" : "");
    /* IVF takes labels itself (through transforms too); the others are
     * given an IDMap2 */
    if (wrapped || (t->ivf_nlist > 0 && t->removable)) {
        snprintf(t->build, sizeof(t->build), "%s", factory);
    } else {
        snprintf(t->build, sizeof(t->build), "IDMap2,%s", factory);
        wrapper = "IDMap2,";
    }
    memmove(t->canon + strlen(wrapper), t->canon, strlen(t->canon) + 1);
    memcpy(t->canon, wrapper, strlen(wrapper));
    return RS_OK;
}

int
itype_same(const char *a, const char *b, int dim)
{
    struct itype ta, tb;

    return itype_parse(a, dim, &ta, NULL) == RS_OK && itype_parse(b, dim, &tb, NULL) == RS_OK &&
           strcmp(ta.canon, tb.canon) == 0;
}
