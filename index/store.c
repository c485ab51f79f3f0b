/*
 * store.c: a table of named collections with reference counts.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct entry {
    char *name;
    struct coll *coll;
    int refs;           /* users, plus one for the table itself */
    struct entry *next;
};

struct store {
    char *dir;
    struct store_options opts;
    char fingerprint[256], factory[128];
    pthread_mutex_t mu;
    struct entry *entries;
    struct entry *dropped;   /* dropped but still in use */
};

int
store_valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 64)
        return 0;
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
          (name[0] >= '0' && name[0] <= '9')))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return 0;
    }
    return 1;
}

static int
open_one(struct store *s, const char *name, const char *factory, int create, struct rs_error *e)
{
    char path[4200];
    struct coll_options o = { create, factory, s->opts.dim, s->fingerprint, s->opts.fsync,
                              s->opts.snapshot_every };
    struct entry *en;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", s->dir, name);
    en = calloc(1, sizeof(*en));
    if (en == NULL || (en->name = strdup(name)) == NULL) {
        free(en);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    if ((rc = coll_open(&en->coll, path, &o, e)) != RS_OK) {
        free(en->name);
        free(en);
        return rc;
    }
    en->refs = 1;
    en->next = s->entries;
    s->entries = en;
    return RS_OK;
}

int
store_open(struct store **out, const char *dir, const struct store_options *o, struct rs_error *e)
{
    struct store *s;
    DIR *d;
    struct dirent *de;
    int rc = RS_OK;

    *out = NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return rs_error_set(e, RS_EIO, "%s: cannot create: %s", dir, strerror(errno));
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->dir = strdup(dir)) == NULL) {
        free(s);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    s->opts = *o;
    snprintf(s->fingerprint, sizeof(s->fingerprint), "%s", o->fingerprint ? o->fingerprint : "");
    snprintf(s->factory, sizeof(s->factory), "%s", o->default_factory ? o->default_factory : "Flat");
    pthread_mutex_init(&s->mu, NULL);
    d = opendir(dir);
    if (d == NULL) {
        store_close(s);
        return rs_error_set(e, RS_EIO, "%s: %s", dir, strerror(errno));
    }
    while (rc == RS_OK && (de = readdir(d)) != NULL) {
        char db[4400];
        struct stat st;
        if (!store_valid_name(de->d_name))
            continue;
        snprintf(db, sizeof(db), "%s/%s/docs.db", dir, de->d_name);
        if (stat(db, &st) != 0)
            continue;
        if ((rc = open_one(s, de->d_name, NULL, 0, e)) != RS_OK)
            rs_error_prefix(e, "collection '%s'", de->d_name);
    }
    closedir(d);
    if (rc != RS_OK) {
        store_close(s);
        return rc;
    }
    *out = s;
    return RS_OK;
}

static void
remove_files(const char *dir, const char *name)
{
    static const char *const files[] = { "docs.db", "docs.db-wal", "docs.db-shm", "index.snap",
                                         "index.snap.tmp" };
    char path[4400];

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s/%s", dir, name, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    rmdir(path);
}

void
store_close(struct store *s)
{
    if (s == NULL)
        return;
    for (struct entry *en = s->entries, *next; en != NULL; en = next) {
        next = en->next;
        coll_close(en->coll);
        free(en->name);
        free(en);
    }
    for (struct entry *en = s->dropped, *next; en != NULL; en = next) {
        next = en->next;
        coll_close(en->coll);
        remove_files(s->dir, en->name);
        free(en->name);
        free(en);
    }
    pthread_mutex_destroy(&s->mu);
    free(s->dir);
    free(s);
}

static struct entry *
find(struct store *s, const char *name)
{
    for (struct entry *en = s->entries; en != NULL; en = en->next)
        if (strcmp(en->name, name) == 0)
            return en;
    return NULL;
}

int
store_create(struct store *s, const char *name, const char *factory, int *created,
             struct rs_error *e)
{
    struct entry *en;
    int rc = RS_OK;

    *created = 0;
    if (!store_valid_name(name))
        return rs_error_set(e, RS_EINVAL, "'%s' is not a collection name (1 to 64 letters, "
                            "digits, '_', '-' or '.', starting with a letter or digit)", name);
    if (factory == NULL)
        factory = s->factory;
    pthread_mutex_lock(&s->mu);
    en = find(s, name);
    for (struct entry *d = s->dropped; d != NULL && rc == RS_OK; d = d->next)
        if (strcmp(d->name, name) == 0)
            rc = rs_error_set(e, RS_EBUSY, "collection '%s' is still being dropped; retry", name);
    if (rc != RS_OK) {
        /* reported above */
    } else if (en != NULL) {
        struct coll_stats st;
        coll_get_stats(en->coll, &st);
        if (strcmp(st.factory, factory) != 0)
            rc = rs_error_set(e, RS_EEXIST, "collection '%s' exists with index type '%s'",
                              name, st.factory);
    } else if ((rc = open_one(s, name, factory, 1, e)) == RS_OK) {
        *created = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

struct coll *
store_acquire(struct store *s, const char *name)
{
    struct entry *en;
    struct coll *c = NULL;

    pthread_mutex_lock(&s->mu);
    if ((en = find(s, name)) != NULL) {
        en->refs++;
        c = en->coll;
    }
    pthread_mutex_unlock(&s->mu);
    return c;
}

static void
unref(struct store *s, struct entry **list, struct coll *c)
{
    for (struct entry **p = list; *p != NULL; p = &(*p)->next) {
        struct entry *en = *p;
        if (en->coll != c)
            continue;
        if (--en->refs == 0) {   /* only dropped entries reach zero */
            *p = en->next;
            coll_close(en->coll);
            remove_files(s->dir, en->name);
            free(en->name);
            free(en);
        }
        return;
    }
}

void
store_release(struct store *s, struct coll *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    unref(s, &s->entries, c);
    unref(s, &s->dropped, c);
    pthread_mutex_unlock(&s->mu);
}

int
store_drop(struct store *s, const char *name, struct rs_error *e)
{
    struct entry **p, *en = NULL;

    pthread_mutex_lock(&s->mu);
    for (p = &s->entries; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->name, name) == 0) {
            en = *p;
            *p = en->next;
            break;
        }
    }
    if (en == NULL) {
        pthread_mutex_unlock(&s->mu);
        return rs_error_set(e, RS_ENOTFOUND, "no collection '%s'", name);
    }
    en->next = s->dropped;
    s->dropped = en;
    unref(s, &s->dropped, en->coll);   /* the table's own reference */
    pthread_mutex_unlock(&s->mu);
    return RS_OK;
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
store_names(struct store *s, char ***names, int *n)
{
    int count = 0, i = 0;
    char **out;

    pthread_mutex_lock(&s->mu);
    for (struct entry *en = s->entries; en != NULL; en = en->next)
        count++;
    out = calloc((size_t)count + 1, sizeof(*out));
    for (struct entry *en = s->entries; out != NULL && en != NULL; en = en->next)
        if ((out[i] = strdup(en->name)) != NULL)
            i++;
    pthread_mutex_unlock(&s->mu);
    if (out == NULL)
        return RS_ENOMEM;
    qsort(out, (size_t)i, sizeof(*out), by_name);
    *names = out;
    *n = i;
    return RS_OK;
}

void
store_names_free(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
