/*
 * docstore_pg.c: the storage of storage.h on PostgreSQL (libpq).
 *
 * Schema (created when missing, in one transaction under an advisory
 * lock; rosim_schema holds its version, a newer one is refused and an
 * older one upgraded, in that same transaction: version 1 lacked the
 * effort columns):
 *   rosim_collections (id, name UNIQUE, factory, dim, fingerprint, seq,
 *                 pruned: retired labels up to it are forgotten,
 *                 ef_construction, ef_search, nprobe: 0 = rosim's default)
 *   rosim_docs    (coll, id, label, text bytea, meta json, meta_jsonb jsonb
 *                  generated from meta, vector bytea, seq)
 *                 PRIMARY KEY (coll, id), UNIQUE (coll, label), index on
 *                 (coll, seq), GIN index on meta_jsonb (jsonb_path_ops)
 *   rosim_retired (coll, label, seq)  PRIMARY KEY (coll, label), index on
 *                 (coll, seq)
 * Texts are bytea: any bytes round-trip, U+0000 too (PostgreSQL text
 * cannot hold it).  Metadata is kept as json (the text as given, as on
 * SQLite) with a jsonb copy for filtering on keys; JSON that jsonb refuses
 * (a \u0000 escape) is refused with RS_EINVAL.  Vectors are bytea of
 * little-endian float32.
 *
 * Numbers: a write first does UPDATE rosim_collections SET seq = seq + n
 * ... RETURNING seq: that locks the collection's row until COMMIT, so
 * writers of one collection (in any process) take turns, get consecutive
 * numbers, and commit in the order of their numbers; the same statement
 * queues a NOTIFY rosim_changes "NAME SEQ", delivered at COMMIT (create
 * sends "NAME 0", drop "NAME -1", set_effort "NAME SEQ" with the
 * sequence unchanged).  A write returns RS_OK after COMMIT
 * succeeded.
 *
 * Connections: a pool of POOL connections serves the calls (a call holds
 * one for its duration; more callers wait), plus one that LISTENs.  A
 * pooled connection found broken (a readable socket when idle: the server
 * said goodbye, or PQstatus) is reset before use; when the server cannot
 * be reached the call fails with RS_EUNAVAIL and the next one tries again.
 * Waiters share the listening connection: one of them polls its socket,
 * the others sleep on a condition variable, and any notification (or a
 * reconnection, which may have lost some) wakes all of them to re-read
 * their collection's sequence.
 *
 * Messages say what failed and PostgreSQL's reason; never the connection
 * string (which may hold a password).
 */
#include "storage.h"

#include <endian.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

#include "store.h"

#define POOL 4
#define SCHEMA_VERSION 2
#define CHANNEL "rosim_changes"
#define SCHEMA_LOCK "7302551"   /* pg_advisory_xact_lock key for schema setup */

struct pg_db {
    struct st_db base;
    char *dsn;
    pthread_mutex_t mu;         /* the pool */
    pthread_cond_t freed;
    PGconn *conn[POOL];
    int busy[POOL];
    int prepared[POOL];         /* the upsert statement is prepared on it */
    pthread_mutex_t lmu;        /* the listener */
    pthread_cond_t woke;
    PGconn *listen;             /* used only by the one polling */
    int polling;
    unsigned long gen;          /* bumped at each wake-up */
};

struct pg_coll {
    struct st_coll base;
    struct pg_db *db;
    int64_t id;
    int dim;
    char name[80];
};

static const struct st_ops pg_ops;

/* --- errors --------------------------------------------------------------- */

/* The first line of a libpq message, without its "ERROR:  " prefix. */
static const char *
first_line(const char *msg, int *len)
{
    const char *nl;

    if (msg == NULL || *msg == '\0')
        msg = "no reason given";
    if (strncmp(msg, "ERROR:  ", 8) == 0 || strncmp(msg, "FATAL:  ", 8) == 0)
        msg += 8;
    nl = strchr(msg, '\n');
    *len = nl ? (int)(nl - msg) : (int)strlen(msg);
    return msg;
}

static int
unavailable(const char *what, const char *why, struct rs_error *e)
{
    int n;
    const char *m = first_line(why, &n);
    return rs_error_set(e, RS_EUNAVAIL, "PostgreSQL is unavailable (%s): %.*s", what, n, m);
}

/* The status for a failed statement (res may be NULL). */
static int
pg_fail(PGconn *c, PGresult *res, const char *what, struct rs_error *e)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *why = res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                                       : PQerrorMessage(c);
    int n, rc;
    const char *m;

    if (PQstatus(c) != CONNECTION_OK || state == NULL || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0)
        return unavailable(what, why, e);
    rc = strcmp(state, "53100") == 0 ? RS_ENOSPC
       : strncmp(state, "53", 2) == 0 || strncmp(state, "40", 2) == 0 ? RS_EBUSY
       : strncmp(state, "22", 2) == 0 ? RS_EINVAL
       : strcmp(state, "23505") == 0 ? RS_EEXIST : RS_EIO;
    m = first_line(why, &n);
    return rs_error_set(e, rc, "PostgreSQL: %s: %.*s", what, n, m);
}

/* --- connections ---------------------------------------------------------- */

static void
no_notices(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* A new connection in *out, or RS_EUNAVAIL.  Defaults come first: the
 * connection string overrides them. */
static int
pg_connect(struct pg_db *db, PGconn **out, struct rs_error *e)
{
    static const char *const keys[] = { "connect_timeout", "application_name",
                                        "client_encoding", "dbname", NULL };
    const char *values[] = { "5", "rosim", "UTF8", db->dsn, NULL };
    PGconn *c = PQconnectdbParams(keys, values, 1);
    int rc;

    *out = NULL;
    if (c == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        rc = unavailable("connect", PQerrorMessage(c), e);
        PQfinish(c);
        return rc;
    }
    PQsetNoticeProcessor(c, no_notices, NULL);
    *out = c;
    return RS_OK;
}

/* Make c usable: reset it when the server hung up (an idle connection
 * has nothing to read unless it is going away) or it broke.  1 when it
 * was reset (a new session: nothing prepared), RS_OK, or an error. */
static int
pg_heal(PGconn *c, const char *what, struct rs_error *e)
{
    struct pollfd p = { PQsocket(c), POLLIN, 0 };

    /* readable while idle: the server is going away (reading what it
     * sent, its FATAL message then the end of the stream, may take more
     * than one read before libpq calls the connection broken) */
    if (PQstatus(c) != CONNECTION_OK || (p.fd >= 0 && poll(&p, 1, 0) > 0) ||
        PQtransactionStatus(c) != PQTRANS_IDLE) {
        PQreset(c);
        if (PQstatus(c) != CONNECTION_OK)
            return unavailable(what, PQerrorMessage(c), e);
        PQsetNoticeProcessor(c, no_notices, NULL);
        return 1;
    }
    return RS_OK;
}

/* Take a connection of the pool (waiting for one), healthy. */
static int
conn_get(struct pg_db *db, int *slot, struct rs_error *e)
{
    int i, rc;

    pthread_mutex_lock(&db->mu);
    for (;;) {
        for (i = 0; i < POOL && db->busy[i]; i++)
            ;
        if (i < POOL)
            break;
        pthread_cond_wait(&db->freed, &db->mu);
    }
    db->busy[i] = 1;
    pthread_mutex_unlock(&db->mu);
    rc = db->conn[i] == NULL ? pg_connect(db, &db->conn[i], e)
                             : pg_heal(db->conn[i], "reconnect", e);
    if (db->conn[i] == NULL || rc > 0) {
        db->prepared[i] = 0;
        rc = rc > 0 ? RS_OK : rc;
    }
    if (rc != RS_OK) {
        pthread_mutex_lock(&db->mu);
        db->busy[i] = 0;
        pthread_cond_signal(&db->freed);
        pthread_mutex_unlock(&db->mu);
        return rc;
    }
    *slot = i;
    return RS_OK;
}

static void
conn_put(struct pg_db *db, int slot)
{
    pthread_mutex_lock(&db->mu);
    db->busy[slot] = 0;
    pthread_cond_signal(&db->freed);
    pthread_mutex_unlock(&db->mu);
}

/* --- statements ----------------------------------------------------------- */

/* Parameters of one statement: int8 and bytea in binary, strings as text.
 * Room for a filter's: the collection, the labels, 5 per clause. */
#define P_MAX (2 + 5 * COLL_FILTER_MAX_CLAUSES)
struct params {
    int n;
    const char *v[P_MAX];
    int len[P_MAX], fmt[P_MAX];
    uint64_t be[P_MAX];
};

static void
p_i64(struct params *p, int64_t x)
{
    p->be[p->n] = htobe64((uint64_t)x);
    p->v[p->n] = (const char *)&p->be[p->n];
    p->len[p->n] = 8;
    p->fmt[p->n++] = 1;
}

static void
p_str(struct params *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

static void
p_bytes(struct params *p, const void *b, size_t n)
{
    p->v[p->n] = b;
    p->len[p->n] = (int)n;
    p->fmt[p->n++] = 1;
}

/* Run sql with p; binary results.  *res is new (PQclear) when RS_OK: rows
 * (PGRES_TUPLES_OK) or done (PGRES_COMMAND_OK). */
static int
run(PGconn *c, const char *sql, const struct params *p, PGresult **res, const char *what,
    struct rs_error *e)
{
    PGresult *r = PQexecParams(c, sql, p ? p->n : 0, NULL, p ? p->v : NULL,
                               p ? p->len : NULL, p ? p->fmt : NULL, 1);
    ExecStatusType st = PQresultStatus(r);
    int rc;

    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *res = r;
        return RS_OK;
    }
    rc = pg_fail(c, r, what, e);
    PQclear(r);
    *res = NULL;
    return rc;
}

/* Several statements, no parameters. */
static int
run_script(PGconn *c, const char *sql, const char *what, struct rs_error *e)
{
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? RS_OK : pg_fail(c, r, what, e);

    PQclear(r);
    return rc;
}

/* run() when only success matters. */
static int
run0(PGconn *c, const char *sql, const struct params *p, const char *what, struct rs_error *e)
{
    PGresult *r;
    int rc = run(c, sql, p, &r, what, e);

    PQclear(r);
    return rc;
}

static int64_t
get_i64(const PGresult *r, int row, int col)
{
    uint64_t x;

    memcpy(&x, PQgetvalue(r, row, col), 8);
    return (int64_t)be64toh(x);
}

static int
get_i32(const PGresult *r, int row, int col)
{
    uint32_t x;

    memcpy(&x, PQgetvalue(r, row, col), 4);
    return (int)be32toh(x);
}

/* A copy of a text column (binary format: the bytes themselves). */
static char *
get_str(const PGresult *r, int row, int col, size_t *len)
{
    size_t n = (size_t)PQgetlength(r, row, col);
    char *s = malloc(n + 1);

    if (s != NULL) {
        memcpy(s, PQgetvalue(r, row, col), n);
        s[n] = '\0';
    }
    if (len != NULL)
        *len = n;
    return s;
}

static void
vec_to_le(const float *v, int dim, uint32_t *out)
{
    for (int i = 0; i < dim; i++) {
        uint32_t x;
        memcpy(&x, &v[i], 4);
        out[i] = htole32(x);
    }
}

static void
vec_from_le(const char *b, int dim, float *out)
{
    for (int i = 0; i < dim; i++) {
        uint32_t x;
        memcpy(&x, b + 4 * (size_t)i, 4);
        x = le32toh(x);
        memcpy(&out[i], &x, 4);
    }
}

/* --- the schema ----------------------------------------------------------- */

/* Version 1; migrations[] brings it up to date. */
static const char schema[] =
    "CREATE TABLE rosim_collections (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,"
    " factory text NOT NULL, dim integer NOT NULL, fingerprint text NOT NULL,"
    " seq bigint NOT NULL DEFAULT 0, pruned bigint NOT NULL DEFAULT 0,"
    " created timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE rosim_docs (coll bigint NOT NULL REFERENCES rosim_collections (id)"
    " ON DELETE CASCADE, id text NOT NULL, label bigint NOT NULL, text bytea NOT NULL,"
    " meta json NOT NULL, meta_jsonb jsonb GENERATED ALWAYS AS (meta::jsonb) STORED,"
    " vector bytea NOT NULL, seq bigint NOT NULL, PRIMARY KEY (coll, id),"
    " UNIQUE (coll, label));"
    "ALTER TABLE rosim_docs ALTER COLUMN vector SET STORAGE EXTERNAL;"
    "CREATE INDEX rosim_docs_seq ON rosim_docs (coll, seq);"
    "CREATE INDEX rosim_docs_meta ON rosim_docs USING gin (meta_jsonb jsonb_path_ops);"
    "CREATE TABLE rosim_retired (coll bigint NOT NULL REFERENCES rosim_collections (id)"
    " ON DELETE CASCADE, label bigint NOT NULL, seq bigint NOT NULL,"
    " PRIMARY KEY (coll, label));"
    "CREATE INDEX rosim_retired_seq ON rosim_retired (coll, seq);";

/* migrations[v - 1] takes the schema from version v to v + 1. */
static const char *const migrations[] = {
    "ALTER TABLE rosim_collections ADD COLUMN ef_construction integer NOT NULL DEFAULT 0,"
    " ADD COLUMN ef_search integer NOT NULL DEFAULT 0,"
    " ADD COLUMN nprobe integer NOT NULL DEFAULT 0",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == SCHEMA_VERSION - 1,
               "one migration per version");

/* Create the schema of version 1 when there is none, then upgrade it to
 * SCHEMA_VERSION: one transaction under the advisory lock, so replicas
 * starting together neither race nor see half of it. */
static int
schema_setup(PGconn *c, struct rs_error *e)
{
    PGresult *r = NULL;
    char sql[64];
    int rc, version;

    if ((rc = run0(c, "BEGIN", NULL, "create the schema", e)) != RS_OK)
        return rc;
    if ((rc = run0(c, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ")", NULL,
                   "create the schema", e)) != RS_OK ||
        (rc = run0(c, "CREATE TABLE IF NOT EXISTS rosim_schema (version integer NOT NULL)",
                   NULL, "create the schema", e)) != RS_OK ||
        (rc = run(c, "SELECT version FROM rosim_schema", NULL, &r, "read the schema version",
                  e)) != RS_OK)
        goto out;
    version = PQntuples(r) == 0 ? 0 : get_i32(r, 0, 0);
    if (version < 0 || version > SCHEMA_VERSION) {
        rc = rs_error_set(e, RS_EFORMAT, "PostgreSQL: the database has rosim schema version %d;"
                          " this rosim knows versions 1 to %d", version, SCHEMA_VERSION);
        goto out;
    }
    if (version == 0) {
        if ((rc = run_script(c, schema, "create the schema", e)) != RS_OK ||
            (rc = run0(c, "INSERT INTO rosim_schema VALUES (1)", NULL, "create the schema",
                       e)) != RS_OK)
            goto out;
        version = 1;
    }
    for (; version < SCHEMA_VERSION; version++)
        if ((rc = run_script(c, migrations[version - 1], "upgrade the schema", e)) != RS_OK)
            goto out;
    snprintf(sql, sizeof(sql), "UPDATE rosim_schema SET version = %d", SCHEMA_VERSION);
    if ((rc = run0(c, sql, NULL, "upgrade the schema", e)) != RS_OK)
        goto out;
    rc = run0(c, "COMMIT", NULL, "create the schema", e);
out:
    PQclear(r);
    if (rc != RS_OK)
        PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

/* --- the database --------------------------------------------------------- */

static void pg_db_close(struct st_db *base);

int
st_pg_open(struct st_db **out, const char *dsn, struct rs_error *e)
{
    struct pg_db *db = calloc(1, sizeof(*db));
    int rc, slot;

    *out = NULL;
    if (db == NULL || (db->dsn = strdup(dsn)) == NULL) {
        free(db);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    db->base.ops = &pg_ops;
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->freed, NULL);
    pthread_mutex_init(&db->lmu, NULL);
    pthread_cond_init(&db->woke, NULL);
    if ((rc = conn_get(db, &slot, e)) != RS_OK) {
        pg_db_close(&db->base);
        return rc;
    }
    rc = schema_setup(db->conn[slot], e);
    conn_put(db, slot);
    if (rc != RS_OK) {
        pg_db_close(&db->base);
        return rc;
    }
    *out = &db->base;
    return RS_OK;
}

static void
pg_db_close(struct st_db *base)
{
    struct pg_db *db = (struct pg_db *)base;

    for (int i = 0; i < POOL; i++)
        PQfinish(db->conn[i]);
    PQfinish(db->listen);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->freed);
    pthread_mutex_destroy(&db->lmu);
    pthread_cond_destroy(&db->woke);
    free(db->dsn);
    free(db);
}

/* One statement on a pooled connection; *res as run(). */
static int
db_run(struct pg_db *db, const char *sql, const struct params *p, PGresult **res,
       const char *what, struct rs_error *e)
{
    int slot, rc;

    *res = NULL;
    if ((rc = conn_get(db, &slot, e)) != RS_OK)
        return rc;
    rc = run(db->conn[slot], sql, p, res, what, e);
    conn_put(db, slot);
    return rc;
}

/* One statement on a pooled connection, counting the rows it returned. */
static int
db_rows(struct pg_db *db, const char *sql, const struct params *p, const char *what, int *rows,
        struct rs_error *e)
{
    PGresult *r;
    int rc = db_run(db, sql, p, &r, what, e);

    if (rc == RS_OK) {
        *rows = PQntuples(r);
        PQclear(r);
    }
    return rc;
}

static int
pg_ping(struct st_db *base, struct rs_error *e)
{
    PGresult *r;
    int rc = db_run((struct pg_db *)base, "SELECT 1", NULL, &r, "SELECT 1", e);

    PQclear(r);
    return rc;
}

static int
pg_list(struct st_db *base, char ***names, size_t *n, struct rs_error *e)
{
    PGresult *r;
    char **v = NULL;
    int rc, rows;

    *names = NULL;
    *n = 0;
    if ((rc = db_run((struct pg_db *)base, "SELECT name FROM rosim_collections"
                     " ORDER BY name COLLATE \"C\"", NULL, &r, "list collections", e)) != RS_OK)
        return rc;
    rows = PQntuples(r);
    if (rows > 0 && (v = calloc((size_t)rows, sizeof(*v))) == NULL)
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    for (int i = 0; rc == RS_OK && i < rows; i++)
        if ((v[i] = get_str(r, i, 0, NULL)) == NULL)
            rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    PQclear(r);
    if (rc != RS_OK) {
        st_names_free(v, (size_t)rows);
        return rc;
    }
    *names = v;
    *n = (size_t)rows;
    return RS_OK;
}

static int
pg_create(struct st_db *base, const char *name, const struct ds_settings *s,
          struct rs_error *e)
{
    struct params p = { 0 };
    char dim[16], eff[3][16];
    int rc, rows;

    if (!store_valid_name(name))
        return rs_error_set(e, RS_EINVAL, "'%s' is not a collection name", name);
    snprintf(dim, sizeof(dim), "%d", s->dim);
    p_str(&p, name);
    p_str(&p, s->factory);
    p_str(&p, dim);
    p_str(&p, s->fingerprint);
    snprintf(eff[0], sizeof(eff[0]), "%d", s->effort.ef_construction);
    snprintf(eff[1], sizeof(eff[1]), "%d", s->effort.ef_search);
    snprintf(eff[2], sizeof(eff[2]), "%d", s->effort.nprobe);
    for (int i = 0; i < 3; i++)
        p_str(&p, eff[i]);
    rc = db_rows((struct pg_db *)base,
                 "WITH ins AS (INSERT INTO rosim_collections (name, factory, dim, fingerprint,"
                 " ef_construction, ef_search, nprobe) VALUES ($1, $2, $3::integer, $4,"
                 " $5::integer, $6::integer, $7::integer) ON CONFLICT (name) DO NOTHING"
                 " RETURNING name)"
                 " SELECT pg_notify('" CHANNEL "', name || ' 0') FROM ins",
                 &p, "create a collection", &rows, e);
    return rc == RS_OK && rows == 0 ? rs_error_set(e, RS_EEXIST, "collection '%s' exists", name)
                                    : rc;
}

static int
pg_drop(struct st_db *base, const char *name, struct rs_error *e)
{
    struct params p = { 0 };
    int rc, rows;

    p_str(&p, name);
    rc = db_rows((struct pg_db *)base,
                 "WITH del AS (DELETE FROM rosim_collections WHERE name = $1 RETURNING name)"
                 " SELECT pg_notify('" CHANNEL "', name || ' -1') FROM del",
                 &p, "drop a collection", &rows, e);
    return rc == RS_OK && rows == 0 ? rs_error_set(e, RS_ENOTFOUND, "no collection '%s'", name)
                                    : rc;
}

static int
pg_open(struct st_db *base, const char *name, struct st_coll **out, struct rs_error *e)
{
    struct pg_db *db = (struct pg_db *)base;
    struct params p = { 0 };
    struct pg_coll *c;
    PGresult *r;
    int rc;

    *out = NULL;
    p_str(&p, name);
    if ((rc = db_run(db, "SELECT id, dim FROM rosim_collections WHERE name = $1", &p, &r,
                     "open a collection", e)) != RS_OK)
        return rc;
    if (PQntuples(r) == 0)
        rc = rs_error_set(e, RS_ENOTFOUND, "no collection '%s'", name);
    else if ((c = calloc(1, sizeof(*c))) == NULL)
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    else {
        c->base.ops = &pg_ops;
        c->db = db;
        c->id = get_i64(r, 0, 0);
        c->dim = get_i32(r, 0, 1);
        snprintf(c->name, sizeof(c->name), "%s", name);
        *out = &c->base;
    }
    PQclear(r);
    return rc;
}

/* --- a collection --------------------------------------------------------- */

#define PC(c) ((struct pg_coll *)(c))

static void
pg_close(struct st_coll *c)
{
    free(c);
}

static int
gone(struct st_coll *c, struct rs_error *e)
{
    return rs_error_set(e, RS_ENOTFOUND, "collection '%s' was dropped", PC(c)->name);
}

/* Run sql with the collection's id as $1: RS_OK with its result in *r
 * (at least one row; PQclear it), or an error (the collection gone when
 * there is no row). */
static int
coll_query(struct st_coll *c, const char *sql, const char *what, PGresult **r,
           struct rs_error *e)
{
    struct params p = { 0 };
    int rc;

    p_i64(&p, PC(c)->id);
    if ((rc = db_run(PC(c)->db, sql, &p, r, what, e)) != RS_OK)
        return rc;
    if (PQntuples(*r) == 0) {
        PQclear(*r);
        return gone(c, e);
    }
    return RS_OK;
}

static int
pg_settings(struct st_coll *c, struct ds_settings *s, struct rs_error *e)
{
    PGresult *r;
    int rc;

    memset(s, 0, sizeof(*s));
    if ((rc = coll_query(c, "SELECT factory, dim, fingerprint, ef_construction, ef_search,"
                         " nprobe FROM rosim_collections WHERE id = $1", "read settings", &r,
                         e)) != RS_OK)
        return rc;
    snprintf(s->factory, sizeof(s->factory), "%.*s", PQgetlength(r, 0, 0), PQgetvalue(r, 0, 0));
    s->dim = get_i32(r, 0, 1);
    snprintf(s->fingerprint, sizeof(s->fingerprint), "%.*s", PQgetlength(r, 0, 2),
             PQgetvalue(r, 0, 2));
    s->effort.ef_construction = get_i32(r, 0, 3);
    s->effort.ef_search = get_i32(r, 0, 4);
    s->effort.nprobe = get_i32(r, 0, 5);
    PQclear(r);
    return RS_OK;
}

/* The other replicas are told (a notification with the sequence as it
 * is): their copy of the settings is stale. */
static int
pg_set_effort(struct st_coll *c, const struct coll_effort *eff, struct rs_error *e)
{
    struct params p = { 0 };
    char v[3][16];
    int rc, rows;

    snprintf(v[0], sizeof(v[0]), "%d", eff->ef_construction);
    snprintf(v[1], sizeof(v[1]), "%d", eff->ef_search);
    snprintf(v[2], sizeof(v[2]), "%d", eff->nprobe);
    p_i64(&p, PC(c)->id);
    for (int i = 0; i < 3; i++)
        p_str(&p, v[i]);
    rc = db_rows(PC(c)->db, "UPDATE rosim_collections SET ef_construction = $2::integer,"
                 " ef_search = $3::integer, nprobe = $4::integer WHERE id = $1"
                 " RETURNING pg_notify('" CHANNEL "', name || ' ' || seq)", &p,
                 "store the search effort", &rows, e);
    return rc == RS_OK && rows == 0 ? gone(c, e) : rc;
}

static int64_t
pg_uid(struct st_coll *c)
{
    return PC(c)->id;
}

/* The number a one-column query on the collection answers. */
static int
coll_int64(struct st_coll *c, const char *sql, const char *what, int64_t *v, struct rs_error *e)
{
    PGresult *r;
    int rc;

    if ((rc = coll_query(c, sql, what, &r, e)) != RS_OK)
        return rc;
    *v = get_i64(r, 0, 0);
    PQclear(r);
    return RS_OK;
}

static int
pg_seq(struct st_coll *c, int64_t *seq, struct rs_error *e)
{
    return coll_int64(c, "SELECT seq FROM rosim_collections WHERE id = $1",
                      "read the sequence", seq, e);
}

static int
pg_count(struct st_coll *c, long *n, struct rs_error *e)
{
    int64_t v;
    int rc = coll_int64(c, "SELECT count(*) FROM rosim_docs WHERE coll = $1",
                        "count documents", &v, e);

    if (rc == RS_OK)
        *n = (long)v;
    return rc;
}

/* --- writes --------------------------------------------------------------- */

/* BEGIN, then take n numbers: *last gets the write's sequence.  The row
 * lock this takes holds other writers of the collection until COMMIT. */
static int
begin_write(PGconn *k, struct st_coll *c, int64_t n, int64_t *last, struct rs_error *e)
{
    struct params p = { 0 };
    PGresult *r;
    int rc;

    if ((rc = run0(k, "BEGIN", NULL, "begin a write", e)) != RS_OK)
        return rc;
    p_i64(&p, PC(c)->id);
    p_i64(&p, n);
    if ((rc = run(k, "UPDATE rosim_collections SET seq = seq + $2 WHERE id = $1"
                  " RETURNING seq, pg_notify('" CHANNEL "', name || ' ' || seq)",
                  &p, &r, "allocate labels", e)) != RS_OK)
        return rc;
    if (PQntuples(r) == 0)
        rc = gone(c, e);
    else
        *last = get_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

/* COMMIT; the write is acknowledged only when this succeeds. */
static int
end_write(PGconn *k, int rc, struct rs_error *e)
{
    if (rc == RS_OK)
        return run0(k, "COMMIT", NULL, "commit", e);
    if (PQstatus(k) == CONNECTION_OK)
        PQclear(PQexec(k, "ROLLBACK"));
    return rc;
}

/* One document: its earlier version's label is retired (returned as a
 * row), the new version stored. */
#define UPSERT "rosim_upsert"   /* upsert_sql, prepared once per session */
static const char upsert_sql[] =
    "WITH old AS (SELECT label FROM rosim_docs WHERE coll = $1 AND id = $2),"
    " ret AS (INSERT INTO rosim_retired (coll, label, seq) SELECT $1, label, $7 FROM old"
    "  ON CONFLICT (coll, label) DO UPDATE SET seq = EXCLUDED.seq),"
    " put AS (INSERT INTO rosim_docs (coll, id, label, text, meta, vector, seq)"
    "  VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (coll, id) DO UPDATE SET"
    "  label = EXCLUDED.label, text = EXCLUDED.text, meta = EXCLUDED.meta,"
    "  vector = EXCLUDED.vector, seq = EXCLUDED.seq)"
    " SELECT label FROM old";

/* Send docs[from..to) as upsert statements in one pipeline (one round
 * trip), then read their results in order.  A failed statement aborts the
 * rest; the caller rolls back. */
static int
put_docs(PGconn *k, struct st_coll *c, const struct coll_doc *docs, const float *vecs,
         int from, int to, int64_t first, int64_t seq, uint32_t *le, int64_t *retired,
         size_t *n_retired, long *new_docs, struct rs_error *e)
{
    int dim = PC(c)->dim, rc = RS_OK, sent = 0;
    PGresult *r;

    if (!PQenterPipelineMode(k))
        return pg_fail(k, NULL, "upsert", e);
    for (int i = from; i < to; i++, sent++) {
        struct params p = { 0 };
        const struct coll_doc *d = &docs[i];

        /* libpq copies the parameters into its buffer: le is reused */
        vec_to_le(vecs + (size_t)i * (size_t)dim, dim, le);
        p_i64(&p, PC(c)->id);
        p_str(&p, d->id);
        p_i64(&p, first + i);
        p_bytes(&p, d->text, d->text_len ? d->text_len : strlen(d->text));
        p_str(&p, d->meta ? d->meta : "{}");
        p_bytes(&p, le, (size_t)dim * 4);
        p_i64(&p, seq);
        if (!PQsendQueryPrepared(k, UPSERT, p.n, p.v, p.len, p.fmt, 1))
            break;
    }
    if (sent < to - from || !PQpipelineSync(k))
        rc = pg_fail(k, NULL, "upsert", e);
    /* each statement: its result, then NULL; then the sync */
    for (int i = 0; i < sent && PQstatus(k) == CONNECTION_OK; i++) {
        while ((r = PQgetResult(k)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_TUPLES_OK && rc == RS_OK && PQntuples(r) > 0)
                retired[(*n_retired)++] = get_i64(r, 0, 0);
            else if (st == PGRES_TUPLES_OK && rc == RS_OK)
                ++*new_docs;
            else if (st != PGRES_TUPLES_OK && rc == RS_OK)
                rc = pg_fail(k, r, "upsert", e);
            PQclear(r);
        }
    }
    while (PQstatus(k) == CONNECTION_OK && (r = PQgetResult(k)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_PIPELINE_SYNC)
            break;
    }
    if (!PQexitPipelineMode(k) && rc == RS_OK)
        rc = pg_fail(k, NULL, "upsert", e);
    return rc;
}

/* Statements per pipeline: their results (a few bytes each) must fit in
 * the socket buffers while the rest is sent, or both sides would wait. */
#define PIPELINE 256

static int
pg_upsert(struct st_coll *c, const struct coll_doc *docs, const float *vecs, int n,
          int64_t *first, int64_t *retired, size_t *n_retired, long *new_docs,
          struct rs_error *e)
{
    struct pg_db *db = PC(c)->db;
    uint32_t *le = malloc((size_t)PC(c)->dim * 4);
    int64_t last = 0;
    int slot, rc;
    PGconn *k;

    *n_retired = 0;
    *new_docs = 0;
    if (le == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    if ((rc = conn_get(db, &slot, e)) != RS_OK) {
        free(le);
        return rc;
    }
    k = db->conn[slot];
    if (!db->prepared[slot]) {
        PGresult *r = PQprepare(k, UPSERT, upsert_sql, 0, NULL);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? RS_OK : pg_fail(k, r, "upsert", e);
        db->prepared[slot] = rc == RS_OK;
        PQclear(r);
    }
    if (rc == RS_OK)
        rc = begin_write(k, c, n, &last, e);
    for (int i = 0; rc == RS_OK && i < n; i += PIPELINE)
        rc = put_docs(k, c, docs, vecs, i, i + PIPELINE < n ? i + PIPELINE : n, last - n + 1,
                      last, le, retired, n_retired, new_docs, e);
    rc = end_write(k, rc, e);
    conn_put(db, slot);
    free(le);
    if (rc == RS_OK)
        *first = last - n + 1;
    return rc;
}

static int
pg_del(struct st_coll *c, const char *id, int64_t *seq, int64_t *label, struct rs_error *e)
{
    struct pg_db *db = PC(c)->db;
    struct params p = { 0 };
    PGresult *r = NULL;
    int slot, rc;
    PGconn *k;

    if ((rc = conn_get(db, &slot, e)) != RS_OK)
        return rc;
    k = db->conn[slot];
    if ((rc = begin_write(k, c, 1, seq, e)) == RS_OK) {
        p_i64(&p, PC(c)->id);
        p_str(&p, id);
        p_i64(&p, *seq);
        rc = run(k, "WITH d AS (DELETE FROM rosim_docs WHERE coll = $1 AND id = $2"
                 " RETURNING label) INSERT INTO rosim_retired (coll, label, seq)"
                 " SELECT $1, label, $3 FROM d ON CONFLICT (coll, label) DO UPDATE"
                 " SET seq = EXCLUDED.seq RETURNING label", &p, &r, "delete", e);
    }
    if (rc == RS_OK && PQntuples(r) == 0)
        rc = rs_error_set(e, RS_ENOTFOUND, "no document '%s'", id);
    else if (rc == RS_OK)
        *label = get_i64(r, 0, 0);
    PQclear(r);
    rc = end_write(k, rc, e);
    conn_put(db, slot);
    return rc;
}

static int
pg_prune_retired(struct st_coll *c, int64_t seq, struct rs_error *e)
{
    struct params p = { 0 };
    PGresult *r;
    int rc;

    p_i64(&p, PC(c)->id);
    p_i64(&p, seq);
    rc = db_run(PC(c)->db, "WITH u AS (UPDATE rosim_collections SET pruned ="
                " greatest(pruned, $2) WHERE id = $1)"
                " DELETE FROM rosim_retired WHERE coll = $1 AND seq <= $2", &p, &r, "prune", e);
    PQclear(r);
    return rc;
}

/* --- reads ---------------------------------------------------------------- */

static int
get_by(struct st_coll *c, const char *sql, struct params *p, const char *id, int64_t label,
       struct coll_hit *out, float *vec, struct rs_error *e)
{
    PGresult *r;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = db_run(PC(c)->db, sql, p, &r, "get", e)) != RS_OK)
        return rc;
    if (PQntuples(r) == 0)
        rc = id ? rs_error_set(e, RS_ENOTFOUND, "no document '%s'", id)
                : rs_error_set(e, RS_ENOTFOUND, "no document with label %lld",
                               (long long)label);
    else if (vec != NULL && PQgetlength(r, 0, 3) != PC(c)->dim * 4)
        rc = rs_error_set(e, RS_EFORMAT, "PostgreSQL: the vector of label %lld has the wrong"
                          " size", (long long)label);
    else {
        out->id = get_str(r, 0, 0, NULL);
        out->text = get_str(r, 0, 1, &out->text_len);
        out->meta = get_str(r, 0, 2, NULL);
        if (out->id == NULL || out->text == NULL || out->meta == NULL) {
            coll_hit_clear(out);
            rc = rs_error_set(e, RS_ENOMEM, "out of memory");
        } else if (vec != NULL)
            vec_from_le(PQgetvalue(r, 0, 3), PC(c)->dim, vec);
    }
    PQclear(r);
    return rc;
}

static int
pg_get(struct st_coll *c, const char *id, struct coll_hit *out, struct rs_error *e)
{
    struct params p = { 0 };

    p_i64(&p, PC(c)->id);
    p_str(&p, id);
    return get_by(c, "SELECT id, text, meta FROM rosim_docs WHERE coll = $1 AND id = $2", &p,
                  id, 0, out, NULL, e);
}

static int
pg_get_label(struct st_coll *c, int64_t label, struct coll_hit *out, float *vec,
             struct rs_error *e)
{
    struct params p = { 0 };

    p_i64(&p, PC(c)->id);
    p_i64(&p, label);
    return get_by(c, "SELECT id, text, meta, vector FROM rosim_docs WHERE coll = $1"
                  " AND label = $2", &p, NULL, label, out, vec, e);
}

/* What a streamed query's columns are, and the callback they go to. */
enum feed_kind {
    F_RETIRED,      /* label: f->retired */
    F_RETIRED_AT,   /* label, seq: f->retired_at */
    F_DOC,          /* label, vector: f->doc */
    F_ROW           /* label, vector, seq, id, text, meta: f->row */
};

/* Give the current row of r to the feed. */
static int
feed_row(const PGresult *r, enum feed_kind kind, const struct ds_feed *f, float *v)
{
    struct ds_row row;

    switch (kind) {
    case F_RETIRED: return f->retired(get_i64(r, 0, 0), f->arg);
    case F_RETIRED_AT: return f->retired_at(get_i64(r, 0, 0), get_i64(r, 0, 1), f->arg);
    case F_DOC: return f->doc(get_i64(r, 0, 0), v, f->arg);
    case F_ROW:
        row = (struct ds_row){ get_i64(r, 0, 0), get_i64(r, 0, 2), PQgetvalue(r, 0, 3),
                               PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5),
                               (size_t)PQgetlength(r, 0, 4), v };
        return f->row(&row, f->arg);
    }
    return RS_EINVAL;
}

/* Stream the rows of sql (one at a time: a catch-up of a large collection
 * does not hold all of it in memory) to the feed, their columns as kind
 * says (libpq ends each value with a NUL, so texts are strings). */
static int
stream(PGconn *k, struct st_coll *c, const char *sql, const struct params *p,
       enum feed_kind kind, const struct ds_feed *f, const char *what, struct rs_error *e)
{
    int dim = PC(c)->dim, rc = RS_OK;
    float *v = malloc((size_t)dim * sizeof(float));
    PGresult *r;

    if (v == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    if (!PQsendQueryParams(k, sql, p->n, NULL, p->v, p->len, p->fmt, 1) ||
        !PQsetSingleRowMode(k)) {
        free(v);
        return pg_fail(k, NULL, what, e);
    }
    while ((r = PQgetResult(k)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE && rc == RS_OK) {
            int64_t label = get_i64(r, 0, 0);
            int cb;
            if (kind >= F_DOC && PQgetlength(r, 0, 1) != dim * 4)
                cb = rs_error_set(e, RS_EFORMAT, "PostgreSQL: the vector of label %lld has"
                                  " the wrong size", (long long)label);
            else {
                if (kind >= F_DOC)
                    vec_from_le(PQgetvalue(r, 0, 1), dim, v);
                cb = feed_row(r, kind, f, v);
            }
            if (cb != 0)   /* the rest is drained, unused */
                rc = cb == RS_EFORMAT ? cb
                   : rs_error_set(e, cb, "%s: stopped at label %lld", what,
                                  (long long)label);
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == RS_OK)
            rc = pg_fail(k, r, what, e);
        PQclear(r);
    }
    free(v);
    return rc;
}

static int
pg_changes(struct st_coll *c, int64_t after_seq, const struct ds_feed *f, int64_t *upto,
           struct rs_error *e)
{
    struct pg_db *db = PC(c)->db;
    struct params p = { 0 };
    PGresult *r = NULL;
    int slot, rc;
    PGconn *k;

    if ((rc = conn_get(db, &slot, e)) != RS_OK)
        return rc;
    k = db->conn[slot];
    p_i64(&p, PC(c)->id);
    if ((rc = run0(k, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL,
                   "read changes", e)) == RS_OK &&
        (rc = run(k, "SELECT seq, pruned FROM rosim_collections WHERE id = $1", &p, &r,
                  "read changes", e)) == RS_OK) {
        if (PQntuples(r) == 0)
            rc = gone(c, e);
        else if (after_seq > 0 && after_seq < get_i64(r, 0, 1))
            rc = rs_error_set(e, RS_EINVAL, "collection '%s': the labels retired after %lld "
                              "are forgotten (pruned up to %lld): rebuild from changes after 0",
                              PC(c)->name, (long long)after_seq, (long long)get_i64(r, 0, 1));
        else
            *upto = get_i64(r, 0, 0);
        PQclear(r);
    }
    p_i64(&p, after_seq);
    if (rc == RS_OK && f->retired_at != NULL)
        rc = stream(k, c, "SELECT label, seq FROM rosim_retired WHERE coll = $1 AND seq > $2",
                    &p, F_RETIRED_AT, f, "read changes", e);
    else if (rc == RS_OK)
        rc = stream(k, c, "SELECT label FROM rosim_retired WHERE coll = $1 AND seq > $2",
                    &p, F_RETIRED, f, "read changes", e);
    if (rc == RS_OK && f->row != NULL)
        rc = stream(k, c, "SELECT label, vector, seq, id, text, meta FROM rosim_docs"
                    " WHERE coll = $1 AND seq > $2", &p, F_ROW, f, "read changes", e);
    else if (rc == RS_OK)
        rc = stream(k, c, "SELECT label, vector FROM rosim_docs WHERE coll = $1 AND seq > $2",
                    &p, F_DOC, f, "read changes", e);
    if (PQstatus(k) == CONNECTION_OK)
        PQclear(PQexec(k, rc == RS_OK ? "COMMIT" : "ROLLBACK"));
    conn_put(db, slot);
    return rc;
}

/* --- filters -------------------------------------------------------------- */

/*
 * A filter is a condition on rosim_docs d over meta_jsonb, with the
 * answers of docstore.c's filters on SQLite (json_each over the text):
 *   - a key is present when d.meta_jsonb -> key is not NULL (a member of
 *     an object; an array or a scalar has no keys);
 *   - strings compare byte for byte (text equality in a deterministic
 *     collation); null, true and false equal only themselves (their jsonb
 *     text); arrays and objects equal nothing;
 *   - numbers compare as SQLite compares JSON atoms: an integral value
 *     within int64 exactly (as SQLite reads an integer literal), any other
 *     as the double nearest to it (as it reads a real literal); so 1
 *     equals 1.0, 0.1 equals 0.10000000000000001, 2^53 + 1 not 2^53.
 *     jsonb keeps no literal: a real literal with an integral value beyond
 *     2^53 that no double holds (1.2345678901234567e+18) is compared
 *     exactly here, as a double on SQLite.  A document whose meta repeats
 *     a key (rosim's API never stores one: it writes meta with jansson)
 *     has the last value here, any of them on SQLite.
 * A COLL_MATCH clause's values go as four array parameters (binary, the
 * format of array_recv): the atoms null/true/false as text, the strings,
 * the numbers as int8 (those integral within int64) and as float8 (those
 * a double holds).  A key or string PostgreSQL text cannot hold (U+0000,
 * invalid UTF-8) is in no document.
 */
enum { A_ATOMS, A_STRINGS, A_INTS, A_DOUBLES, N_ARRAYS };
static const uint32_t array_oid[N_ARRAYS] = { 25, 25, 20, 701 };   /* text, int8, float8 */

/* Whether PostgreSQL text can hold s (len bytes): UTF-8 without U+0000. */
static int
text_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0 || cp == 0)
            return 0;
        i += (size_t)k;
    }
    return 1;
}

/* x as an element of array a: its length and bytes (*s, or out: 8
 * bytes), or -1 when x is not one. */
static int
element(int a, const struct coll_value *x, unsigned char *out, const char **s)
{
    static const char *const atoms[] = { "null", "true", "false" };
    uint64_t bits;
    double d;

    *s = (const char *)out;
    switch (a) {
    case A_ATOMS:
        if (x->type != COLL_V_NULL && x->type != COLL_V_TRUE && x->type != COLL_V_FALSE)
            return -1;
        *s = atoms[x->type == COLL_V_NULL ? 0 : x->type == COLL_V_TRUE ? 1 : 2];
        return (int)strlen(*s);
    case A_STRINGS:
        if (x->type != COLL_V_STRING || !text_ok(x->s, x->len))
            return -1;
        *s = x->s;
        return (int)x->len;
    case A_INTS:
        if (x->type == COLL_V_INT)
            bits = (uint64_t)x->i;
        else if (x->type == COLL_V_REAL && x->r == trunc(x->r) && x->r >= -0x1p63 &&
                 x->r < 0x1p63)
            bits = (uint64_t)(int64_t)x->r;
        else
            return -1;
        break;
    default:
        if (x->type == COLL_V_REAL)
            d = x->r;
        else if (x->type == COLL_V_INT && (d = (double)x->i) < 0x1p63 && (long long)d == x->i)
            ;
        else
            return -1;
        memcpy(&bits, &d, 8);
    }
    bits = htobe64(bits);
    memcpy(out, &bits, 8);
    return 8;
}

static unsigned char *
put_be32(unsigned char *p, uint32_t x)
{
    x = htobe32(x);
    memcpy(p, &x, 4);
    return p + 4;
}

/* The head of a one-dimensional array of n elements of type oid. */
static unsigned char *
array_head(unsigned char *p, uint32_t oid, size_t n)
{
    p = put_be32(p, n > 0);           /* dimensions (an empty array has none) */
    p = put_be32(p, 0);               /* no NULL */
    p = put_be32(p, oid);
    if (n > 0) {
        p = put_be32(p, (uint32_t)n);
        p = put_be32(p, 1);           /* lower bound */
    }
    return p;
}

/* Array a of cl's values at p; the end. */
static unsigned char *
put_values(unsigned char *p, int a, const struct coll_clause *cl)
{
    unsigned char el[8];
    const char *s;
    size_t n = 0;
    int len;

    for (int v = 0; v < cl->n_values; v++)
        n += element(a, &cl->values[v], el, &s) >= 0;
    p = array_head(p, array_oid[a], n);
    for (int v = 0; v < cl->n_values; v++)
        if ((len = element(a, &cl->values[v], el, &s)) >= 0) {
            p = put_be32(p, (uint32_t)len);
            memcpy(p, s, (size_t)len);
            p += len;
        }
    return p;
}

/* f (NULL: no clause) as a condition on rosim_docs d in *cond, its
 * parameters appended to p, their bytes in *buf: both new (free). */
static int
filter_sql(const struct coll_filter *f, struct params *p, char **cond, unsigned char **buf,
           struct rs_error *e)
{
    size_t size = 1, len;
    unsigned char *at;
    FILE *m;

    *cond = NULL;
    /* at most: the arrays' heads, and each value in two of them */
    for (int i = 0; f != NULL && i < f->n; i++) {
        size += N_ARRAYS * 20;
        for (int v = 0; v < f->clauses[i].n_values; v++)
            size += 32 + f->clauses[i].values[v].len;
    }
    if ((at = *buf = malloc(size)) == NULL || (m = open_memstream(cond, &len)) == NULL) {
        free(*buf);
        *buf = NULL;
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    fputs("true", m);
    for (int i = 0; f != NULL && i < f->n; i++) {
        const struct coll_clause *cl = &f->clauses[i];
        int k = p->n + 1;
        if (!text_ok(cl->key, strlen(cl->key))) {
            fputs(cl->cond == COLL_ABSENT ? "" : " AND false", m);
            continue;
        }
        p_str(p, cl->key);
        if (cl->cond != COLL_MATCH) {
            fprintf(m, " AND d.meta_jsonb -> $%d::text IS %sNULL", k,
                    cl->cond == COLL_EXISTS ? "NOT " : "");
            continue;
        }
        for (int a = 0; a < N_ARRAYS; a++) {
            unsigned char *start = at;
            at = put_values(at, a, cl);
            p_bytes(p, start, (size_t)(at - start));
        }
        fprintf(m, " AND EXISTS (SELECT 1 FROM (SELECT d.meta_jsonb -> $%1$d::text AS v) x"
                " WHERE CASE jsonb_typeof(x.v)"
                " WHEN 'string' THEN x.v #>> '{}' = ANY($%3$d::text[])"
                " WHEN 'number' THEN (SELECT CASE"
                "  WHEN n = trunc(n) AND n BETWEEN -9223372036854775808 AND 9223372036854775807"
                "  THEN n::int8 = ANY($%4$d::int8[])"
                "  WHEN abs(n) >= 1.797693134862315807e308 THEN false"
                "  WHEN abs(n) <= 2.4703282292062327e-324 THEN 0::float8 = ANY($%5$d::float8[])"
                "  ELSE n::float8 = ANY($%5$d::float8[]) END FROM (SELECT x.v::numeric AS n) y)"
                " WHEN 'boolean' THEN x.v::text = ANY($%2$d::text[])"
                " WHEN 'null' THEN x.v::text = ANY($%2$d::text[])"
                " ELSE false END)", k, k + 1, k + 2, k + 3, k + 4);
    }
    if (fclose(m) != 0) {
        free(*cond);
        free(*buf);
        *cond = NULL;
        *buf = NULL;
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    return RS_OK;
}

static int
cmp_label(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int
pg_match_labels(struct st_coll *c, const struct coll_filter *f, const int64_t *labels,
                size_t n, unsigned char *match, struct rs_error *e)
{
    struct params p = { 0 };
    unsigned char *arr = malloc(20 + 12 * n), *at, *buf = NULL;
    char *cond = NULL, *sql = NULL;
    int64_t *found = NULL;
    PGresult *r = NULL;
    int rc, rows = 0;

    memset(match, 0, n);
    if (arr == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    at = array_head(arr, 20, n);
    for (size_t i = 0; i < n; i++) {
        uint64_t be = htobe64((uint64_t)labels[i]);
        at = put_be32(at, 8);
        memcpy(at, &be, 8);
        at += 8;
    }
    p_i64(&p, PC(c)->id);
    p_bytes(&p, arr, (size_t)(at - arr));
    if ((rc = filter_sql(f, &p, &cond, &buf, e)) != RS_OK)
        goto out;
    if (asprintf(&sql, "SELECT d.label FROM rosim_docs d WHERE d.coll = $1"
                 " AND d.label = ANY($2::int8[]) AND (%s)", cond) < 0) {
        sql = NULL;
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = db_run(PC(c)->db, sql, &p, &r, "filter", e)) != RS_OK)
        goto out;
    rows = PQntuples(r);
    if (rows > 0 && (found = malloc((size_t)rows * sizeof(*found))) == NULL) {
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < rows; i++)
        found[i] = get_i64(r, i, 0);
    if (rows > 0)
        qsort(found, (size_t)rows, sizeof(*found), cmp_label);
    for (size_t i = 0; i < n && rows > 0; i++)
        match[i] = bsearch(&labels[i], found, (size_t)rows, sizeof(*found), cmp_label) != NULL;
out:
    PQclear(r);
    free(found);
    free(sql);
    free(cond);
    free(buf);
    free(arr);
    return rc;
}

static int
pg_match_vectors(struct st_coll *c, const struct coll_filter *f,
                 int (*fn)(int64_t label, const float *vec, void *arg), void *arg,
                 struct rs_error *e)
{
    const struct ds_feed feed = { .doc = fn, .arg = arg };
    struct params p = { 0 };
    unsigned char *buf = NULL;
    char *cond = NULL, *sql = NULL;
    int slot, rc;

    p_i64(&p, PC(c)->id);
    if ((rc = filter_sql(f, &p, &cond, &buf, e)) != RS_OK)
        return rc;
    if (asprintf(&sql, "SELECT d.label, d.vector FROM rosim_docs d WHERE d.coll = $1"
                 " AND (%s)", cond) < 0) {
        sql = NULL;
        rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    } else if ((rc = conn_get(PC(c)->db, &slot, e)) == RS_OK) {
        rc = stream(PC(c)->db->conn[slot], c, sql, &p, F_DOC, &feed, "filter", e);
        conn_put(PC(c)->db, slot);
    }
    free(sql);
    free(cond);
    free(buf);
    return rc;
}

/* --- the change feed ------------------------------------------------------ */

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Poll the listening connection up to ms: 1 when something woke it
 * (notifications; a new connection, which may have missed some; the
 * server hanging up, which the next call repairs), 0 on timeout, or an
 * error (the server cannot be reached). */
static int
listen_poll(struct pg_db *db, int ms, struct rs_error *e)
{
    struct pollfd p;
    PGnotify *n;
    int woke = 0, rc;

    if (db->listen != NULL &&
        (PQstatus(db->listen) != CONNECTION_OK || !PQconsumeInput(db->listen))) {
        PQfinish(db->listen);
        db->listen = NULL;
    }
    if (db->listen == NULL) {
        if ((rc = pg_connect(db, &db->listen, e)) == RS_OK &&
            (rc = run0(db->listen, "LISTEN " CHANNEL, NULL, "listen", e)) != RS_OK) {
            PQfinish(db->listen);
            db->listen = NULL;
        }
        return rc == RS_OK ? 1 : rc;
    }
    if ((n = PQnotifies(db->listen)) == NULL) {
        p.fd = PQsocket(db->listen);
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, ms) <= 0)
            return 0;
        if (!PQconsumeInput(db->listen))
            return 1;
        n = PQnotifies(db->listen);
    }
    for (; n != NULL; n = PQnotifies(db->listen)) {
        PQfreemem(n);
        woke = 1;
    }
    return woke;
}

/* Wait until the wake-up count passes gen, up to deadline (now_ms). */
static int
listen_wait(struct pg_db *db, unsigned long gen, double deadline, struct rs_error *e)
{
    int rc = RS_OK;

    pthread_mutex_lock(&db->lmu);
    while (db->gen == gen && rc == RS_OK) {
        double left = deadline - now_ms();
        if (left <= 0)
            break;
        if (!db->polling) {
            db->polling = 1;
            pthread_mutex_unlock(&db->lmu);
            int r = listen_poll(db, (int)left + 1, e);
            pthread_mutex_lock(&db->lmu);
            db->polling = 0;
            if (r > 0)
                db->gen++;
            else if (r < 0)
                rc = r;
            pthread_cond_broadcast(&db->woke);
        } else {
            struct timespec ts;
            double at;
            clock_gettime(CLOCK_REALTIME, &ts);
            at = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6 + left;
            ts.tv_sec = (time_t)(at / 1e3);
            ts.tv_nsec = (long)((at - (double)ts.tv_sec * 1e3) * 1e6);
            pthread_cond_timedwait(&db->woke, &db->lmu, &ts);
        }
    }
    pthread_mutex_unlock(&db->lmu);
    return rc;
}

static int
pg_wait(struct st_coll *c, int64_t after_seq, int timeout_ms, int64_t *seq, struct rs_error *e)
{
    struct pg_db *db = PC(c)->db;
    double deadline = now_ms() + timeout_ms;
    unsigned long gen;
    int rc;

    for (;;) {
        /* the count first: a write committed after it wakes listen_wait */
        pthread_mutex_lock(&db->lmu);
        gen = db->gen;
        pthread_mutex_unlock(&db->lmu);
        if ((rc = pg_seq(c, seq, e)) != RS_OK)
            return rc;
        if (*seq > after_seq)
            return RS_OK;
        if (now_ms() >= deadline)
            return rs_error_set(e, RS_ETIMEOUT, "no write after %lld", (long long)after_seq);
        if ((rc = listen_wait(db, gen, deadline, e)) != RS_OK)
            return rc;
    }
}

#define RETRY_MS 100    /* between attempts to reach a server that is down */

/* listen_wait fails at once when the server cannot be reached: try again
 * every RETRY_MS until the deadline (a reconnection counts as a change).
 * A server that cannot be reached over TCP may hold one attempt up to
 * connect_timeout past the deadline. */
static int
pg_changed(struct st_db *base, unsigned long *gen, int timeout_ms, struct rs_error *e)
{
    struct pg_db *db = (struct pg_db *)base;
    double deadline = now_ms() + timeout_ms, left;
    int rc;

    while ((rc = listen_wait(db, *gen, deadline, e)) != RS_OK &&
           (left = deadline - now_ms()) > 0) {
        struct timespec ts = { 0, (long)((left < RETRY_MS ? left : RETRY_MS) * 1e6) };
        nanosleep(&ts, NULL);
        if (now_ms() >= deadline)
            break;
    }
    pthread_mutex_lock(&db->lmu);
    *gen = db->gen;
    pthread_mutex_unlock(&db->lmu);
    return rc;
}

/* --- connection strings --------------------------------------------------- */

int
st_pg_dsn_check(const char *dsn, struct rs_error *e)
{
    char *why = NULL;
    PQconninfoOption *o = PQconninfoParse(dsn, &why);

    /* libpq's reason may quote a piece of the string: a password */
    PQfreemem(why);
    if (o == NULL)
        return rs_error_set(e, RS_EINVAL, "not a libpq connection string (key=value pairs, "
                            "or a postgresql:// URI)");
    PQconninfoFree(o);
    return RS_OK;
}

void
st_pg_dsn_redact(const char *dsn, char *buf, size_t len)
{
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    size_t at = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    if (opts == NULL)
        return;
    for (PQconninfoOption *o = opts; o->keyword != NULL && at < len; o++) {
        const char *v = o->val;
        if (v == NULL)
            continue;
        if (strcmp(o->keyword, "password") == 0)
            v = "********";
        at += (size_t)snprintf(buf + at, len - at, "%s%s='", at ? " " : "", o->keyword);
        for (; *v != '\0' && at + 2 < len; v++) {
            if (*v == '\'' || *v == '\\')
                buf[at++] = '\\';
            buf[at++] = *v;
        }
        if (at < len)
            at += (size_t)snprintf(buf + at, len - at, "'");
    }
    PQconninfoFree(opts);
}

int
st_pg_ping_dsn(const char *dsn, struct rs_error *e)
{
    struct pg_db db = { .dsn = (char *)dsn };
    PGconn *c;
    int rc;

    if ((rc = st_pg_dsn_check(dsn, e)) != RS_OK || (rc = pg_connect(&db, &c, e)) != RS_OK)
        return rc;
    rc = run0(c, "SELECT 1", NULL, "SELECT 1", e);
    PQfinish(c);
    return rc;
}

static const struct st_ops pg_ops = {
    .backend = "postgresql",
    .db_close = pg_db_close,
    .ping = pg_ping,
    .changed = pg_changed,
    .list = pg_list,
    .create = pg_create,
    .drop = pg_drop,
    .open = pg_open,
    .close = pg_close,
    .uid = pg_uid,
    .settings = pg_settings,
    .set_effort = pg_set_effort,
    .seq = pg_seq,
    .count = pg_count,
    .upsert = pg_upsert,
    .del = pg_del,
    .get = pg_get,
    .get_label = pg_get_label,
    .match_labels = pg_match_labels,
    .match_vectors = pg_match_vectors,
    .changes = pg_changes,
    .prune_retired = pg_prune_retired,
    .wait = pg_wait,
};
