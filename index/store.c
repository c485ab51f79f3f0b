/*
 * store.c: a table of named collections with reference counts, on a
 * locked data directory.
 *
 * Entries are open (coll set) or failed (coll NULL, reason set).  The
 * table holds one reference to each open entry; store_get adds one per
 * user.  A dropped entry leaves the table at once (its directory already
 * renamed to a tombstone and the rename synced) and waits on the dropped
 * list until its last user releases it; then it is closed and its
 * tombstone removed.  A name stays busy while its dropped entry lives, so
 * the closing collection (which may still write a snapshot into its old
 * directory name) never meets a new collection of the same name.
 *
 * On PostgreSQL (a dsn given) the collections are the database's, shared
 * with other processes; the data directory holds this process's snapshots,
 * one directory "NAME.UID" per collection incarnation (storage.h uid), so a
 * collection dropped and created again elsewhere never meets the old
 * snapshot.  A follower thread waits for the database's change
 * notifications (or a second) and then opens the collections created
 * elsewhere, forgets those dropped elsewhere, and brings every index up to
 * date (coll_catch_up).  Whether the database answered last is kept for
 * store_reachable.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "itype.h"
#include "snapshot.h"
#include "storage.h"

#define TOMB_PREFIX ".dropped-"
#define FOLLOW_MS 500   /* the follower's longest sleep: a stop waits up to this */

struct entry {
    char *name;
    struct coll *coll;    /* NULL when failed */
    char *reason;         /* why it failed (scrubbed), or NULL */
    char *tomb;           /* tombstone directory name once dropped */
    int refs;             /* users, plus one for the table itself */
    int64_t uid;          /* shared storage: the incarnation (storage.h) */
    struct entry *next;
};

struct store {
    char *dir;
    int dirfd;            /* open and flocked while the store lives */
    struct store_options opts;
    char fingerprint[256], factory[128];
    /* what store_problem says (constant while the store lives) */
    char unwritable[160], read_only[160];
    atomic_int refused;   /* errno of the last write in the directory refused
                             (EACCES, EPERM, EROFS); 0 once one succeeds */
    unsigned long tombs;  /* tombstone names handed out */
    pthread_mutex_t mu;
    pthread_mutex_t open_mu; /* shared storage: one opener (follower, create) at a time */
    struct entry *entries;
    struct entry *dropped;   /* dropped but still in use */
    /* shared storage (NULL: the data directory is the database) */
    struct st_db *db;
    atomic_int reachable;    /* the database answered the last call */
    char unreachable[512];   /* why not (under mu) */
    pthread_t follower;
    int following;           /* the thread runs */
    atomic_int stop;
};

static void
report(struct store *s, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
report(struct store *s, const char *name, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (s->opts.report == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    store_scrub(s, msg);
    s->opts.report(s->opts.report_arg, name, msg);
}

/* What a collection reports goes the same way (arg is the store). */
static void
coll_report(void *arg, const char *collection, const char *what)
{
    report(arg, collection, "%s", what);
}

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

/* --- paths in messages ---------------------------------------------------- */

/* Replace every occurrence of from in msg by to (no longer than from). */
static void
replace_all(char *msg, const char *from, const char *to)
{
    size_t lf = strlen(from), lt = strlen(to);
    char *p = msg;

    if (lf == 0 || lt > lf)
        return;
    while ((p = strstr(p, from)) != NULL) {
        memmove(p + lt, p + lf, strlen(p + lf) + 1);
        memcpy(p, to, lt);
        p += lt;
    }
}

void
store_scrub(struct store *s, char *msg)
{
    char with_slash[4200];

    snprintf(with_slash, sizeof(with_slash), "%s/", s->dir);
    replace_all(msg, with_slash, "");
    replace_all(msg, s->dir, "data");
}

/* --- writability ---------------------------------------------------------- */

/* Whether this process may write in the data directory now, as the
 * kernel would decide (mode, owner, ACLs, an immutable flag, a read-only
 * mount): NULL, or the sentence saying why not. */
static const char *
live_problem(struct store *s)
{
    struct statvfs vfs;

    if (fstatvfs(s->dirfd, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
        return s->read_only;
    if (faccessat(s->dirfd, ".", R_OK | W_OK | X_OK, AT_EACCESS) != 0)
        return errno == EROFS ? s->read_only : s->unwritable;
    return NULL;
}

const char *
store_problem(struct store *s)
{
    const char *live = live_problem(s);
    int refused = atomic_load(&s->refused);

    if (live != NULL || refused == 0)
        return live;
    return refused == EROFS ? s->read_only : s->unwritable;
}

/* Note how a write in the data directory went (err: its errno).  A write
 * refused while the kernel says the directory is writable (a security
 * module, say) marks it unwritable until a write succeeds. */
static void
note_write(struct store *s, int err)
{
    if (err == 0)
        atomic_store(&s->refused, 0);
    else if ((err == EACCES || err == EPERM || err == EROFS) && live_problem(s) == NULL)
        atomic_store(&s->refused, err);
}

/* --- files ---------------------------------------------------------------- */

/* Remove the directory name inside the data directory and the files in
 * it (a collection holds no subdirectories).  0, or -1 with errno. */
static int
remove_dir(struct store *s, const char *name)
{
    int fd = openat(s->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d;
    struct dirent *de;
    int rc = 0, saved = 0;

    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    if ((d = fdopendir(fd)) == NULL) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0 && rc == 0) {
            rc = -1;
            saved = errno;
        }
    }
    closedir(d);
    if (rc == 0 && unlinkat(s->dirfd, name, AT_REMOVEDIR) != 0) {
        rc = -1;
        saved = errno;
    }
    errno = saved;
    return rc;
}

static void
remove_tomb(struct store *s, const char *tomb, const char *name)
{
    if (tomb != NULL && remove_dir(s, tomb) != 0)
        report(s, name, "dropped, but its files in %s/%s could not be removed: %s (they are "
               "removed at the next start)", s->dir, tomb, strerror(errno));
}

/* Why this process cannot use the collection directory name, or "" when
 * it can: the directory and each file of the collection must be readable
 * and writable (SQLite writes its -wal and -shm files beside docs.db). */
static void
check_access(struct store *s, const char *name, char *why, size_t len)
{
    static const char *const files[] = { "", "docs.db", "docs.db-wal", "docs.db-shm",
                                         "index.snap" };
    char path[200];
    struct stat st;

    why[0] = '\0';
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        int dir = files[i][0] == '\0', mode = dir ? R_OK | W_OK | X_OK : R_OK | W_OK;
        snprintf(path, sizeof(path), "%s%s%s", name, dir ? "" : "/", files[i]);
        if (faccessat(s->dirfd, path, mode, AT_EACCESS) == 0)
            continue;
        if (errno == ENOENT && !dir)
            continue;
        if (fstatat(s->dirfd, path, &st, 0) == 0)
            snprintf(why, len, "%s is not readable and writable by this process (uid %d): it "
                     "belongs to uid %d with mode %04o; give the collection to the user the "
                     "server runs as", path, (int)geteuid(), (int)st.st_uid, (unsigned)(st.st_mode & 07777));
        else
            snprintf(why, len, "%s: %s", path, strerror(errno));
        return;
    }
}

/* --- the table ------------------------------------------------------------ */

static struct entry *
entry_new(const char *name)
{
    struct entry *en = calloc(1, sizeof(*en));

    if (en != NULL && (en->name = strdup(name)) == NULL) {
        free(en);
        en = NULL;
    }
    return en;
}

static void
entry_free(struct entry *en)
{
    free(en->name);
    free(en->reason);
    free(en->tomb);
    free(en);
}

static struct entry *
find(struct store *s, const char *name)
{
    for (struct entry *en = s->entries; en != NULL; en = en->next)
        if (strcmp(en->name, name) == 0)
            return en;
    return NULL;
}

static int
open_coll(struct store *s, const char *name, const char *factory, int create,
          struct coll **c, struct rs_error *e)
{
    char path[4200];
    struct coll_options o = { create, factory, s->opts.dim, s->fingerprint, s->opts.fsync,
                              s->opts.snapshot_every, coll_report, s };

    snprintf(path, sizeof(path), "%s/%s", s->dir, name);
    return coll_open(c, path, &o, e);
}

/* Add the collection found at start: open, or failed with its reason. */
static int
add_found(struct store *s, const char *name)
{
    struct entry *en = entry_new(name);
    struct rs_error e;
    char why[600];
    int rc;

    if (en == NULL)
        return RS_ENOMEM;
    en->refs = 1;
    check_access(s, name, why, sizeof(why));
    if (why[0] != '\0') {
        report(s, name, "cannot be opened, serving the others: %s", why);
    } else if ((rc = open_coll(s, name, NULL, 0, &en->coll, &e)) == RS_ENOTFOUND) {
        /* a creation cut short: it was never acknowledged, nothing is lost */
        entry_free(en);
        if (remove_dir(s, name) != 0) {
            report(s, name, "%s; its directory could not be removed: %s", e.msg,
                   strerror(errno));
            return RS_OK;
        }
        report(s, name, "%s; removed", e.msg);
        return RS_OK;
    } else if (rc != RS_OK) {
        report(s, name, "cannot be opened, serving the others: %s", e.msg);
        store_scrub(s, e.msg);
        snprintf(why, sizeof(why), "%s", e.msg);
    } else {
        struct coll_stats st;
        coll_get_stats(en->coll, &st);
        /* a snapshot covers seq >= 1 whenever one was loaded */
        if (st.seq > 0 && st.snapshot_seq == 0)
            report(s, name, "no usable index snapshot: the index was rebuilt from its %ld "
                   "stored vectors", st.documents);
    }
    if (en->coll == NULL && (en->reason = strdup(why)) == NULL) {
        entry_free(en);
        return RS_ENOMEM;
    }
    en->next = s->entries;
    s->entries = en;
    return RS_OK;
}

/* --- shared storage (PostgreSQL) ------------------------------------------- */

static void unref(struct store *s, struct entry **list, struct coll *c);

/* Remember how the last call to the database went. */
static void
note_db(struct store *s, int rc, const struct rs_error *e)
{
    if (rc != RS_EUNAVAIL) {
        if (rc == RS_OK)
            atomic_store(&s->reachable, 1);
        return;
    }
    pthread_mutex_lock(&s->mu);
    snprintf(s->unreachable, sizeof(s->unreachable), "%s", e->msg);
    pthread_mutex_unlock(&s->mu);
    if (atomic_exchange(&s->reachable, 0))
        report(s, NULL, "the database cannot be reached: writes are refused until it answers; "
               "searches are served from the indexes: %s", e->msg);
}

/* Open the shared collection name into a new entry and add it to the
 * table (open, or failed with its reason).  RS_OK also when it is gone
 * (dropped meanwhile) or already in the table; open_mu held. */
static int
add_shared(struct store *s, const char *name, struct rs_error *e)
{
    struct coll_options o = { 0, NULL, s->opts.dim, s->fingerprint, s->opts.fsync,
                              s->opts.snapshot_every, coll_report, s };
    struct st_coll *sc;
    struct entry *en;
    char path[4200];
    int rc;

    pthread_mutex_lock(&s->mu);
    en = find(s, name);
    pthread_mutex_unlock(&s->mu);
    if (en != NULL)
        return RS_OK;
    if ((rc = s->db->ops->open(s->db, name, &sc, e)) != RS_OK)
        return rc == RS_ENOTFOUND ? RS_OK : rc;
    if ((en = entry_new(name)) == NULL) {
        sc->ops->close(sc);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    en->refs = 1;
    en->uid = sc->ops->uid(sc);
    snprintf(path, sizeof(path), "%s/%s.%lld", s->dir, name, (long long)en->uid);
    if ((rc = st_mirror_open(&sc, sc, path, s->opts.fsync, e)) == RS_OK)
        rc = coll_open_storage(&en->coll, sc, path, &o, e);
    if (rc == RS_EUNAVAIL || rc == RS_ENOTFOUND || rc == RS_ENOMEM) {
        entry_free(en);   /* tried again at the next change */
        return rc == RS_ENOTFOUND ? RS_OK : rc;
    }
    if (rc != RS_OK) {
        report(s, name, "cannot be opened, serving the others: %s", e->msg);
        store_scrub(s, e->msg);
        if ((en->reason = strdup(e->msg)) == NULL) {
            entry_free(en);
            return rs_error_set(e, RS_ENOMEM, "out of memory");
        }
    }
    pthread_mutex_lock(&s->mu);
    en->next = s->entries;
    s->entries = en;
    pthread_mutex_unlock(&s->mu);
    return RS_OK;
}

/* Take the entry of a collection that is no longer in the database out of
 * the table: its snapshot directory goes with its last user.  mu held. */
static void
forget(struct store *s, struct entry *en)
{
    char dir[200];

    for (struct entry **p = &s->entries; *p != NULL; p = &(*p)->next)
        if (*p == en) {
            *p = en->next;
            break;
        }
    snprintf(dir, sizeof(dir), "%s.%lld", en->name, (long long)en->uid);
    if (en->coll == NULL) {
        remove_tomb(s, dir, en->name);
        entry_free(en);
        return;
    }
    en->tomb = strdup(dir);   /* NULL: left for the next start */
    en->next = s->dropped;
    s->dropped = en;
    unref(s, &s->dropped, en->coll);   /* the table's own reference */
}

static int
has_name(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

/* Make the table the database's collections: add the new, forget the
 * gone.  RS_OK or the database's error. */
static int
sync_table(struct store *s, struct rs_error *e)
{
    char **names;
    size_t n;
    int rc;

    /* listed under open_mu: a collection this process creates meanwhile is
     * in the list or not yet in the table */
    pthread_mutex_lock(&s->open_mu);
    if ((rc = s->db->ops->list(s->db, &names, &n, e)) != RS_OK) {
        pthread_mutex_unlock(&s->open_mu);
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    for (struct entry *en = s->entries, *next; en != NULL; en = next) {
        next = en->next;
        if (!has_name(names, n, en->name)) {
            report(s, en->name, "dropped by another process");
            forget(s, en);
        }
    }
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n && rc == RS_OK; i++)
        rc = add_shared(s, names[i], e);
    pthread_mutex_unlock(&s->open_mu);
    st_names_free(names, n);
    return rc;
}

/* Bring every open collection up to date; one found dropped is forgotten
 * (a new one of its name comes at the next sync). */
static int
catch_up_all(struct store *s, struct rs_error *e)
{
    char **names;
    int n, rc = RS_OK;

    if (store_names(s, &names, &n) != RS_OK)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    for (int i = 0; i < n && rc != RS_EUNAVAIL; i++) {
        struct coll *c = store_acquire(s, names[i]);
        struct entry *en;
        int r;
        if (c == NULL)
            continue;
        if ((r = coll_catch_up(c, e)) == RS_ENOTFOUND) {
            pthread_mutex_lock(&s->mu);
            if ((en = find(s, names[i])) != NULL && en->coll == c)
                forget(s, en);
            pthread_mutex_unlock(&s->mu);
        } else if (r != RS_OK) {
            if (r != RS_EUNAVAIL)
                report(s, names[i], "could not apply the writes of other processes (retried "
                       "at the next change): %s", e->msg);
            rc = r;
        }
        store_release(s, c);
    }
    store_names_free(names, n);
    return rc;
}

static void *
follow(void *arg)
{
    struct store *s = arg;
    unsigned long gen = 0;
    struct rs_error e;
    int rc;

    while (!atomic_load(&s->stop)) {
        if ((rc = s->db->ops->changed(s->db, &gen, FOLLOW_MS, &e)) == RS_OK &&
            (rc = sync_table(s, &e)) == RS_OK)
            rc = catch_up_all(s, &e);
        note_db(s, rc, &e);
    }
    return NULL;
}

/* Remove the snapshot directories of collections the database no longer
 * has (dropped while this process was away), and tombstones. */
static void
remove_stale(struct store *s)
{
    DIR *d;
    struct dirent *de;
    int fd = dup(s->dirfd), keep;

    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char name[200];
        const char *dot = strrchr(de->d_name, '.');
        if (de->d_name[0] == '.' || dot == NULL || (size_t)(dot - de->d_name) >= sizeof(name) ||
            dot[1] == '\0' || strspn(dot + 1, "0123456789") != strlen(dot + 1))
            continue;   /* not NAME.UID */
        memcpy(name, de->d_name, (size_t)(dot - de->d_name));
        name[dot - de->d_name] = '\0';
        pthread_mutex_lock(&s->mu);
        keep = 0;
        for (struct entry *en = s->entries; en != NULL && !keep; en = en->next) {
            char mine[200];
            snprintf(mine, sizeof(mine), "%s.%lld", en->name, (long long)en->uid);
            keep = strcmp(mine, de->d_name) == 0;
        }
        pthread_mutex_unlock(&s->mu);
        if (!keep && store_valid_name(name))
            remove_tomb(s, de->d_name, name);
    }
    closedir(d);
}

/* Connect to the database, open its collections and start following. */
static int
open_shared(struct store *s, const char *dsn, struct rs_error *e)
{
    int rc;

    if ((rc = st_open(&s->db, "postgresql", dsn, s->opts.fsync, e)) != RS_OK)
        return rc;
    atomic_store(&s->reachable, 1);
    if ((rc = sync_table(s, e)) != RS_OK)
        return rc;
    remove_stale(s);
    if (pthread_create(&s->follower, NULL, follow, s) != 0)
        return rs_error_set(e, RS_ENOMEM, "cannot start the follower thread");
    s->following = 1;
    return RS_OK;
}

/* A new collection in the database (or one another process just made),
 * then opened here: *created says which.  open_mu held. */
static int
create_shared(struct store *s, const char *name, const char *factory,
              const struct coll_effort *effort, int *created, struct rs_error *e)
{
    struct coll_options o = { 1, factory, s->opts.dim, s->fingerprint, s->opts.fsync, 0,
                              NULL, NULL };
    struct ds_settings set;
    int rc;

    if ((effort != NULL && (rc = coll_effort_check(factory, effort, e)) != RS_OK) ||
        (rc = coll_new_settings(&o, &set, e)) != RS_OK)
        return rc;
    rc = s->db->ops->create(s->db, name, &set, e);
    note_db(s, rc, e);
    if (rc != RS_OK && rc != RS_EEXIST)
        return rc;
    *created = rc == RS_OK;
    if ((rc = add_shared(s, name, e)) == RS_OK) {
        pthread_mutex_lock(&s->mu);
        if (find(s, name) == NULL)
            rc = rs_error_set(e, RS_EBUSY, "collection '%s' was dropped by another process "
                              "as it was created; retry", name);
        pthread_mutex_unlock(&s->mu);
    }
    note_db(s, rc, e);
    return rc;
}

int
store_reachable(struct store *s, char *why, size_t len)
{
    int ok = s->db == NULL || atomic_load(&s->reachable);

    if (!ok && why != NULL) {
        pthread_mutex_lock(&s->mu);
        snprintf(why, len, "%s", s->unreachable);
        pthread_mutex_unlock(&s->mu);
    }
    return ok;
}

const char *
store_backend(struct store *s)
{
    return s->db != NULL ? "postgresql" : "sqlite";
}

/* Is this directory entry a collection?  Its docs.db exists, or cannot be
 * looked at (then check_access says why). */
static int
is_collection(struct store *s, const char *name)
{
    char path[200];
    struct stat st;

    if (fstatat(s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    snprintf(path, sizeof(path), "%s/docs.db", name);
    return fstatat(s->dirfd, path, &st, 0) == 0 || errno != ENOENT;
}

int
store_open(struct store **out, const char *dir, const struct store_options *o, struct rs_error *e)
{
    struct store *s;
    DIR *d;
    struct dirent *de;
    const char *problem;
    int rc = RS_OK, fd;

    *out = NULL;
    if (mkdir(dir, 0700) == 0) {
        if (o->fsync == COLL_FSYNC_ALWAYS && snap_sync_new_dir(dir) != 0)
            return rs_error_set(e, RS_EIO, "%s: cannot sync to disk: %s", dir, strerror(errno));
    } else if (errno != EEXIST) {
        return rs_error_set(e, RS_EIO, "%s: cannot create: %s", dir, strerror(errno));
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->dir = strdup(dir)) == NULL) {
        free(s);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    s->opts = *o;
    snprintf(s->fingerprint, sizeof(s->fingerprint), "%s", o->fingerprint ? o->fingerprint : "");
    snprintf(s->factory, sizeof(s->factory), "%s", o->default_factory ? o->default_factory : "Flat");
    snprintf(s->unwritable, sizeof(s->unwritable), "the data directory is not writable by the "
             "server (uid %d): collections cannot be created or dropped", (int)geteuid());
    snprintf(s->read_only, sizeof(s->read_only), "the data directory is on a read-only "
             "filesystem: collections cannot be created or dropped");
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->open_mu, NULL);
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        rc = rs_error_set(e, RS_EIO, "%s: %s", dir, strerror(errno));
        store_close(s);
        return rc;
    }
    if (flock(s->dirfd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
           ? rs_error_set(e, RS_EBUSY, "%s is in use by another process (a running rosimd or "
                          "rosim import); one process at a time may open a data directory", dir)
           : rs_error_set(e, RS_EIO, "%s: cannot lock: %s", dir, strerror(errno));
        close(s->dirfd);
        s->dirfd = -1;
        store_close(s);
        return rc;
    }
    if ((problem = live_problem(s)) != NULL)
        report(s, NULL, "%s", problem);
    if (o->dsn != NULL) {
        if ((rc = open_shared(s, o->dsn, e)) != RS_OK) {
            store_close(s);
            return rc;
        }
        *out = s;
        return RS_OK;
    }
    if ((fd = dup(s->dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
        rc = rs_error_set(e, RS_EIO, "%s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        store_close(s);
        return rc;
    }
    while (rc == RS_OK && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, TOMB_PREFIX, strlen(TOMB_PREFIX)) == 0)
            remove_tomb(s, de->d_name, NULL);
        else if (store_valid_name(de->d_name) && is_collection(s, de->d_name))
            rc = add_found(s, de->d_name);
    }
    closedir(d);
    if (rc != RS_OK) {
        store_close(s);
        return rs_error_set(e, rc, "out of memory");
    }
    *out = s;
    return RS_OK;
}

/* Close an open collection at shutdown, reporting a failed snapshot. */
static void
close_coll(struct store *s, const char *name, struct coll *c)
{
    struct coll_stats st;
    struct rs_error e;

    coll_get_stats(c, &st);
    if (st.seq != st.snapshot_seq && coll_snapshot(c, &e) != RS_OK)
        report(s, name, "the index snapshot could not be written (the next start replays or "
               "rebuilds it): %s", e.msg);
    coll_close(c);
}

void
store_close(struct store *s)
{
    if (s == NULL)
        return;
    if (s->following) {
        atomic_store(&s->stop, 1);
        pthread_join(s->follower, NULL);
    }
    for (struct entry *en = s->entries, *next; en != NULL; en = next) {
        next = en->next;
        if (en->coll != NULL)
            close_coll(s, en->name, en->coll);
        entry_free(en);
    }
    for (struct entry *en = s->dropped, *next; en != NULL; en = next) {
        next = en->next;
        coll_close(en->coll);
        remove_tomb(s, en->tomb, en->name);
        entry_free(en);
    }
    st_close(s->db);   /* after the collections, which use it */
    if (s->dirfd >= 0)
        close(s->dirfd);   /* releases the lock */
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->open_mu);
    free(s->dir);
    free(s);
}

/* Make the directory of the collection name and create the collection in
 * it, into a new entry (*out).  A directory made here goes again when the
 * collection cannot be created. */
static int
create_coll(struct store *s, const char *name, const char *factory, struct entry **out,
            struct rs_error *e)
{
    struct entry *en;
    int made = mkdirat(s->dirfd, name, 0700) == 0, err = made ? 0 : errno, rc;

    *out = NULL;
    if (!made && err != EEXIST) {   /* EEXIST: a directory without a database */
        note_write(s, err);
        return rs_error_set(e, err == ENOSPC ? RS_ENOSPC : RS_EIO, "collection '%s' could not "
                            "be created: %s", name, strerror(err));
    }
    note_write(s, 0);
    if ((en = entry_new(name)) == NULL)
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    else
        rc = open_coll(s, name, factory, 1, &en->coll, e);
    if (rc != RS_OK) {
        store_scrub(s, e->msg);
        if (en != NULL)
            entry_free(en);
        if (made)
            remove_dir(s, name);
        return rc;
    }
    en->refs = 1;
    *out = en;
    return RS_OK;
}

int
store_create(struct store *s, const char *name, const char *factory, int *created,
             struct rs_error *e)
{
    return store_create_effort(s, name, factory, NULL, created, e);
}

int
store_create_effort(struct store *s, const char *name, const char *factory,
                    const struct coll_effort *effort, int *created, struct rs_error *e)
{
    struct entry *en;
    struct itype type;
    const char *problem;
    struct coll *held = NULL;
    int rc = RS_OK;

    *created = 0;
    if (effort != NULL && effort->ef_construction == 0 && effort->ef_search == 0 &&
        effort->nprobe == 0)
        effort = NULL;   /* nothing to set: the collection is left as it is */
    if (!store_valid_name(name))
        return rs_error_set(e, RS_EINVAL, "'%s' is not a collection name (%s)", name,
                            STORE_NAME_RULE);
    /* an invalid type is refused as such, whether the collection exists or not */
    if (factory != NULL && (rc = itype_parse(factory, s->opts.dim, &type, e)) != RS_OK)
        return rc;
    if (s->db != NULL) {   /* made in the database unless there; then as an existing one */
        pthread_mutex_lock(&s->open_mu);
        pthread_mutex_lock(&s->mu);
        en = find(s, name);
        pthread_mutex_unlock(&s->mu);
        if (en == NULL)
            rc = create_shared(s, name, factory ? factory : s->factory, effort, created, e);
        pthread_mutex_unlock(&s->open_mu);
        if (rc != RS_OK)
            return rc;
    }
    pthread_mutex_lock(&s->mu);
    en = find(s, name);
    for (struct entry *d = s->dropped; d != NULL && rc == RS_OK && s->db == NULL; d = d->next)
        if (strcmp(d->name, name) == 0)
            rc = rs_error_set(e, RS_EBUSY, "collection '%s' is still being dropped; retry", name);
    if (rc != RS_OK) {
        /* reported above */
    } else if (en != NULL && en->coll == NULL) {
        rc = rs_error_set(e, RS_EEXIST, "collection '%s' exists but cannot be opened (%s); "
                          "it is left as it is: repair it and restart, or DELETE it", name,
                          en->reason);
    } else if (en != NULL) {
        struct coll_stats st;
        coll_get_stats(en->coll, &st);
        /* without a type, whatever it has; else the same index, however spelled */
        if (factory != NULL && !itype_same(st.factory, factory, s->opts.dim))
            rc = rs_error_set(e, RS_EEXIST, "collection '%s' exists with index type '%s'",
                              name, st.factory);
    } else if (s->db != NULL) {
        rc = rs_error_set(e, RS_EBUSY, "collection '%s' was dropped by another process as it "
                          "was created; retry", name);
    } else if ((problem = live_problem(s)) != NULL) {
        rc = rs_error_set(e, RS_EIO, "%s", problem);
    } else if (effort != NULL &&
               (rc = coll_effort_check(factory ? factory : s->factory, effort, e)) != RS_OK) {
        /* a new collection's effort must suit its type (an existing one's
         * is checked by coll_set_effort) */
    } else if ((rc = create_coll(s, name, factory ? factory : s->factory, &en, e)) == RS_OK) {
        en->next = s->entries;
        s->entries = en;
        *created = 1;
    }
    if (rc == RS_OK && effort != NULL) {
        en->refs++;   /* set below, outside the store's lock: it waits for the writer */
        held = en->coll;
    }
    pthread_mutex_unlock(&s->mu);
    if (held != NULL) {
        rc = coll_set_effort(held, effort, e);
        store_release(s, held);
    }
    return rc;
}

int
store_get(struct store *s, const char *name, struct coll **c, struct rs_error *e)
{
    struct entry *en;
    int rc = RS_OK;

    *c = NULL;
    pthread_mutex_lock(&s->mu);
    if ((en = find(s, name)) == NULL) {
        rc = rs_error_set(e, RS_ENOTFOUND, "no collection '%s'", name);
    } else if (en->coll == NULL) {
        rc = rs_error_set(e, RS_EEXIST, "collection '%s' is unavailable: it could not be "
                          "opened: %s", name, en->reason);
    } else {
        en->refs++;
        *c = en->coll;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

struct coll *
store_acquire(struct store *s, const char *name)
{
    struct coll *c;

    store_get(s, name, &c, NULL);
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
            remove_tomb(s, en->tomb, en->name);
            entry_free(en);
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

/* Rename the collection's directory to a fresh tombstone name (kept in
 * en->tomb) and sync the data directory.  RS_OK, or RS_EIO with *renamed
 * saying whether the rename happened (then only the sync failed). */
static int
bury(struct store *s, struct entry *en, int *renamed, struct rs_error *e)
{
    char tomb[128];
    const char *problem;
    int rc, err;

    do {
        snprintf(tomb, sizeof(tomb), TOMB_PREFIX "%s-%lu", en->name, s->tombs++);
        rc = renameat(s->dirfd, en->name, s->dirfd, tomb);
    } while (rc != 0 && (errno == EEXIST || errno == ENOTEMPTY));
    *renamed = rc == 0;
    err = rc == 0 ? 0 : errno;
    note_write(s, err);
    if (rc != 0) {
        problem = store_problem(s);
        return rs_error_set(e, RS_EIO, "collection '%s' could not be dropped: %s%s%s", en->name,
                            strerror(err), problem ? "; " : "", problem ? problem : "");
    }
    if ((en->tomb = strdup(tomb)) == NULL) {
        /* a tombstone without a record is removed at the next start */
        report(s, en->name, "out of memory: %s/%s is left for the next start", s->dir, tomb);
    }
    if (fsync(s->dirfd) != 0)
        return rs_error_set(e, RS_EIO, "collection '%s' was dropped, but the drop could not "
                            "be synced to disk: %s", en->name, strerror(errno));
    return RS_OK;
}

int
store_drop(struct store *s, const char *name, struct rs_error *e)
{
    struct entry **p, *en = NULL;
    int rc, renamed;

    pthread_mutex_lock(&s->mu);
    for (p = &s->entries; *p != NULL; p = &(*p)->next)
        if (strcmp((*p)->name, name) == 0)
            break;
    if ((en = *p) == NULL) {
        pthread_mutex_unlock(&s->mu);
        return rs_error_set(e, RS_ENOTFOUND, "no collection '%s'", name);
    }
    if (s->db != NULL) {
        /* the database's drop is the drop; the other processes follow */
        pthread_mutex_unlock(&s->mu);
        rc = s->db->ops->drop(s->db, name, e);
        note_db(s, rc, e);
        pthread_mutex_lock(&s->mu);
        if ((rc == RS_OK || rc == RS_ENOTFOUND) && (en = find(s, name)) != NULL)
            forget(s, en);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    rc = bury(s, en, &renamed, e);
    if (!renamed) {   /* still in place */
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    *p = en->next;
    if (en->coll == NULL) {
        remove_tomb(s, en->tomb, en->name);
        entry_free(en);
    } else {
        en->next = s->dropped;
        s->dropped = en;
        unref(s, &s->dropped, en->coll);   /* the table's own reference */
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* --- listing -------------------------------------------------------------- */

static int
by_name(const void *a, const void *b)
{
    return strcmp(((const struct store_info *)a)->name, ((const struct store_info *)b)->name);
}

int
store_list(struct store *s, struct store_info **list, int *n)
{
    struct store_info *out;
    int count = 0, i = 0;

    pthread_mutex_lock(&s->mu);
    for (struct entry *en = s->entries; en != NULL; en = en->next)
        count++;
    out = calloc((size_t)count + 1, sizeof(*out));
    for (struct entry *en = s->entries; out != NULL && en != NULL; en = en->next, i++) {
        snprintf(out[i].name, sizeof(out[i].name), "%s", en->name);
        out[i].failed = en->coll == NULL;
        snprintf(out[i].reason, sizeof(out[i].reason), "%s", en->reason ? en->reason : "");
    }
    pthread_mutex_unlock(&s->mu);
    if (out == NULL)
        return RS_ENOMEM;
    qsort(out, (size_t)count, sizeof(*out), by_name);
    *list = out;
    *n = count;
    return RS_OK;
}

int
store_names(struct store *s, char ***names, int *n)
{
    struct store_info *list;
    char **out;
    int count, i;

    if (store_list(s, &list, &count) != RS_OK)
        return RS_ENOMEM;
    out = calloc((size_t)count + 1, sizeof(*out));
    for (i = 0; out != NULL && i < count; i++) {
        if ((out[i] = strdup(list[i].name)) == NULL) {
            store_names_free(out, i);
            out = NULL;
        }
    }
    free(list);
    if (out == NULL)
        return RS_ENOMEM;
    *names = out;
    *n = count;
    return RS_OK;
}

void
store_names_free(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
