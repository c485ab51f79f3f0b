/*
 * check_replicas.c: several rosimd on one PostgreSQL database, seen from
 * their clients: read-your-writes across replicas with min_seq and writes
 * seen by all within a second without it; a replica killed (SIGKILL) under
 * write load through all of them; PostgreSQL restarted under write load;
 * a replica with an empty data directory catching up without running the
 * model; a collection of another model refused by that collection only.
 *
 * Writers own their document ids and remember the last acknowledged state
 * of each (its text, or deleted); an attempt that got no reply, or a 503,
 * is repeated on the next replica until acknowledged (an upsert by id and
 * a delete are idempotent: a repeated delete may answer 404), so at the end
 * every replica must hold exactly the acknowledged state once it applied
 * the highest acknowledged seq.
 *
 * One throw-away PostgreSQL server (pgserver.h) serves the test case; the
 * tests are skipped only when PostgreSQL is not installed.  The replicas
 * answer within limits.request_timeout = DEADLINE seconds.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgserver.h"
#include "suites.h"
#include "testutil.h"

#define MODEL "tests/fixtures/roformer-sim-tiny"
#define DEADLINE 3          /* seconds: the replicas' limits.request_timeout */
#define SEEN_WITHIN 1.5     /* seconds: a write reaches the others without min_seq */

static struct tu_pg pg;
static int pg_state = -1;   /* tu_pg_start's result */

static void
pg_setup(void)
{
    pg_state = tu_pg_start(&pg);
}

static void
pg_teardown(void)
{
    if (pg_state == 0)
        tu_pg_destroy(&pg);
}

/* In each test: 1 when it must be skipped (no PostgreSQL here); fails
 * the test when the server did not start. */
static int
no_postgresql(void)
{
    if (pg_state == 1) {
        fprintf(stderr, "check_replicas: skipped: %s\n", pg.why);
        return 1;
    }
    ck_assert_msg(pg_state == 0, "PostgreSQL did not start: %s", pg.why);
    return 0;
}

static void
nap(double secs)
{
    struct timespec ts = { (time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9) };
    nanosleep(&ts, NULL);
}

/* --- replicas ---------------------------------------------------------------- */

struct replica {
    struct tu_daemon d;
    char *data;             /* its own data directory (its snapshots) */
    const char *model;
    int up;
};

/* Start rosimd on the test's database with r's model and data directory.
 * Snapshots every 20 writes, so that a restart has one to start from. */
static void
replica_start(struct replica *r)
{
    char dsn[sizeof(pg.dsn) + 16], deadline[48];
    const char *extra[] = { "--model", r->model, "--data", r->data,
                            "-o", "storage.backend=postgresql", "-o", dsn,
                            "-o", deadline, "-o", "storage.snapshot_every=20", NULL };

    snprintf(dsn, sizeof(dsn), "storage.dsn=%s", pg.dsn);
    snprintf(deadline, sizeof(deadline), "limits.request_timeout=%d", DEADLINE);
    ck_assert_msg(tu_daemon_start(&r->d, extra) == 0, "a replica on %s did not start", r->data);
    r->up = 1;
}

/* n replicas of model, each with a new data directory. */
static void
replicas_start(struct replica *r, int n, const char *model)
{
    for (int i = 0; i < n; i++) {
        r[i] = (struct replica){ .data = tu_temp_dir("replica"), .model = model };
        replica_start(&r[i]);
    }
}

static void
replica_kill(struct replica *r)
{
    kill(r->d.pid, SIGKILL);
    tu_daemon_wait(&r->d);
    r->up = 0;
}

/* Stop (cleanly) every replica still up and remove the data directories. */
static void
replicas_stop(struct replica *r, int n)
{
    for (int i = 0; i < n; i++) {
        if (r[i].up)
            ck_assert_int_eq(tu_daemon_stop(&r[i].d), 0);
        r[i].up = 0;
        tu_remove_tree(r[i].data);
        free(r[i].data);
    }
}

/* --- requests ------------------------------------------------------------------ */

struct reply {
    long status;            /* 0: no reply (refused, reset, timed out) */
    json_t *j;              /* the body, when JSON */
    int retry_after;        /* a Retry-After header came with it */
    double secs;            /* how long it took */
    char text[240];         /* the start of the body, for messages */
    int names_a_path;       /* the body contains an absolute path under /tmp */
};

static void
reply_clear(struct reply *r)
{
    json_decref(r->j);
    r->j = NULL;
}

/* One request; body is stolen (NULL: none).  r->status 0 when no reply
 * arrived. */
static void
request(int port, const char *method, const char *path, json_t *body, struct reply *r)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    struct tu_response resp = { 0 };
    double t0 = tu_now();

    memset(r, 0, sizeof(*r));
    json_decref(body);
    if (tu_http(port, method, path, text ? "application/json" : NULL, text,
                text ? strlen(text) : 0, &resp) == 0) {
        r->status = resp.status;
        r->j = json_loads(resp.body, 0, NULL);
        r->retry_after = strcasestr(resp.headers, "\nRetry-After:") != NULL;
        snprintf(r->text, sizeof(r->text), "%s", resp.body);
    }
    r->secs = tu_now() - t0;
    /* no reply names a file of this machine (a socket of PostgreSQL's
     * too: its directory is where the data directories are) */
    r->names_a_path = resp.body != NULL && strstr(resp.body, "/tmp/") != NULL;
    tu_response_free(&resp);
    free(text);
}

/* A request that must answer want; its JSON body (the caller frees). */
static json_t *
call(int port, const char *method, const char *path, json_t *body, long want)
{
    struct reply r;

    request(port, method, path, body, &r);
    ck_assert_msg(r.status == want, "%s %s: %ld (want %ld): %s", method, path, r.status, want,
                  r.text);
    return r.j;
}

static int64_t
seq_of(const json_t *j)
{
    json_t *s = json_object_get(j, "seq");
    ck_assert_msg(json_is_integer(s), "no \"seq\" in the reply");
    return json_integer_value(s);
}

/* Upsert {id, text} (text NULL: delete id) in collection coll. */
static void
write_doc(int port, const char *coll, const char *id, const char *text, struct reply *r)
{
    char path[200];

    if (text != NULL) {
        snprintf(path, sizeof(path), "/v1/collections/%s/documents", coll);
        request(port, "POST", path, json_pack("{s:[{s:s,s:s}]}", "documents", "id", id,
                                              "text", text), r);
    } else {
        snprintf(path, sizeof(path), "/v1/collections/%s/documents/%s", coll, id);
        request(port, "DELETE", path, NULL, r);
    }
}

/* An upsert or delete that must succeed; its seq. */
static int64_t
write_ok(int port, const char *coll, const char *id, const char *text)
{
    struct reply r;
    int64_t seq;

    write_doc(port, coll, id, text, &r);
    ck_assert_msg(r.status == 200, "%s %s on :%d: %ld %s", text ? "upsert" : "delete", id, port,
                  r.status, r.text);
    if (text != NULL)
        ck_assert_int_eq(json_integer_value(json_object_get(r.j, "upserted")), 1);
    else
        ck_assert_str_eq(json_string_value(json_object_get(r.j, "deleted")), id);
    seq = seq_of(r.j);
    reply_clear(&r);
    return seq;
}

/* GET document id with min_seq (0: none). */
static void
get_doc(int port, const char *coll, const char *id, int64_t min_seq, struct reply *r)
{
    char path[240];

    if (min_seq > 0)
        snprintf(path, sizeof(path), "/v1/collections/%s/documents/%s?min_seq=%lld", coll, id,
                 (long long)min_seq);
    else
        snprintf(path, sizeof(path), "/v1/collections/%s/documents/%s", coll, id);
    request(port, "GET", path, NULL, r);
}

/* The hits of a search for text (k 1000: the whole of a small Flat
 * collection) with min_seq (0: none). */
static void
search(int port, const char *coll, const char *text, int64_t min_seq, struct reply *r)
{
    char path[200];
    json_t *body = json_pack("{s:s,s:i}", "text", text, "k", 1000);

    if (min_seq > 0)
        json_object_set_new(body, "min_seq", json_integer(min_seq));
    snprintf(path, sizeof(path), "/v1/collections/%s/search", coll);
    request(port, "POST", path, body, r);
}

/* The hit of id in a search reply, or NULL. */
static json_t *
hit_of(const json_t *reply, const char *id)
{
    json_t *h;
    size_t i;

    json_array_foreach(json_object_get(reply, "hits"), i, h)
        if (strcmp(json_string_value(json_object_get(h, "id")), id) == 0)
            return h;
    return NULL;
}

/* Poll GET path on port until it answers want; the seconds it took, or
 * -1 after limit seconds. */
static double
until_status(int port, const char *path, long want, double limit)
{
    double t0 = tu_now();
    struct reply r;

    for (;;) {
        request(port, "GET", path, NULL, &r);
        reply_clear(&r);
        if (r.status == want)
            return tu_now() - t0;
        if (tu_now() - t0 > limit)
            return -1;
        nap(0.02);
    }
}

/* --- writers: load with a record of what was acknowledged ------------------------ */

#define IDS 6               /* documents per writer */

struct writer {
    int t;                  /* ids "w<t>-0" .. "w<t>-<IDS-1>" */
    struct replica *reps;
    int n_reps;
    const char *coll;
    const _Atomic int *stop;
    double give_up;         /* an attempt is repeated until then (tu_now) */
    char text[IDS][64];     /* the acknowledged text; "" when absent */
    int64_t max_seq;        /* the highest acknowledged */
    int acked, no_reply, unavailable;
    double slowest;         /* seconds, of any reply */
    char error[600];        /* the first contract violation */
    char path_reply[240];   /* the first 503 naming a path (checked last) */
};

/* Apply (id i, text; NULL: delete) until acknowledged, starting with
 * replica *at and moving on when one does not answer or is unavailable.
 * 0, or -1 with w->error set. */
static int
writer_apply(struct writer *w, int i, const char *text, int *at)
{
    char id[32];
    int repeated = 0;

    snprintf(id, sizeof(id), "w%d-%d", w->t, i);
    while (tu_now() < w->give_up) {
        struct replica *r = &w->reps[*at % w->n_reps];
        struct reply rp;
        write_doc(r->d.port, w->coll, id, text, &rp);
        w->slowest = rp.secs > w->slowest ? rp.secs : w->slowest;
        if (rp.status == 200) {
            int64_t s = json_integer_value(json_object_get(rp.j, "seq"));
            reply_clear(&rp);
            if (s <= 0) {
                snprintf(w->error, sizeof(w->error), "%s %s: no seq in the reply",
                         text ? "upsert" : "delete", id);
                return -1;
            }
            w->max_seq = s > w->max_seq ? s : w->max_seq;
            break;
        }
        reply_clear(&rp);
        if (rp.status == 404 && text == NULL && repeated)
            break;      /* the attempt that got no reply had deleted it */
        if (rp.status == 0) {
            w->no_reply++;
        } else if (rp.status == 503 && rp.retry_after) {
            w->unavailable++;
            if (rp.names_a_path && w->path_reply[0] == '\0')
                snprintf(w->path_reply, sizeof(w->path_reply), "%s", rp.text);
            nap(0.05);
        } else {
            snprintf(w->error, sizeof(w->error), "%s %s on :%d: %ld%s: %s",
                     text ? "upsert" : "delete", id, r->d.port, rp.status,
                     rp.status == 503 ? " without Retry-After" : "", rp.text);
            return -1;
        }
        repeated = 1;
        (*at)++;
    }
    if (tu_now() >= w->give_up) {
        snprintf(w->error, sizeof(w->error), "%s %s: never acknowledged", text ? "upsert" : "delete",
                 id);
        return -1;
    }
    snprintf(w->text[i], sizeof(w->text[i]), "%s", text ? text : "");
    w->acked++;
    return 0;
}

/* Upserts (new texts) and deletes of the writer's ids, through replica
 * t, t + 1, ... in turn, until *stop. */
static void *
writer_run(void *arg)
{
    struct writer *w = arg;
    unsigned seed = (unsigned)w->t * 7919u + 1;
    int at = w->t;

    for (int v = 0; !*w->stop; v++, at++) {
        int i = (int)(rand_r(&seed) % IDS);
        char text[64];
        snprintf(text, sizeof(text), "第%d位作者的第%d号文档，版本%d", w->t, i, v);
        if (writer_apply(w, i, w->text[i][0] != '\0' && rand_r(&seed) % 3 == 0 ? NULL : text,
                         &at) != 0)
            break;
    }
    return NULL;
}

/* Run n writers on coll through reps while during(arg) runs; their
 * records in w. */
static void
writers_run(struct writer *w, int n, struct replica *reps, int n_reps, const char *coll,
            void (*during)(void *), void *arg)
{
    pthread_t t[8];
    _Atomic int stop = 0;

    for (int i = 0; i < n; i++) {
        w[i] = (struct writer){ .t = i, .reps = reps, .n_reps = n_reps, .coll = coll,
                                .stop = &stop, .give_up = tu_now() + 60 };
        ck_assert_int_eq(pthread_create(&t[i], NULL, writer_run, &w[i]), 0);
    }
    during(arg);
    stop = 1;
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(w[i].error[0] == '\0', "writer %d: %s", i, w[i].error);
        ck_assert_msg(w[i].slowest < DEADLINE + 2.0, "writer %d waited %.1f s for a reply", i,
                      w[i].slowest);
        ck_assert_msg(w[i].acked > 0, "writer %d wrote nothing", i);
    }
}

/* Replica r, once it applied the highest acknowledged seq, holds exactly
 * what the writers acknowledged: each document with its last text (GET),
 * no deleted one, and a search over the whole collection returns exactly
 * the present ones (of the writers' ids) with those texts. */
static void
assert_holds(struct replica *r, const char *coll, const struct writer *w, int n)
{
    int64_t seq = 0;
    int present = 0, hits = 0;
    struct reply s;
    json_t *h;
    size_t k;

    for (int t = 0; t < n; t++)
        seq = w[t].max_seq > seq ? w[t].max_seq : seq;
    search(r->d.port, coll, "文档", seq, &s);
    ck_assert_msg(s.status == 200, "search with min_seq %lld on :%d: %ld %s", (long long)seq,
                  r->d.port, s.status, s.text);
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < IDS; i++) {
            char id[32];
            struct reply g;
            snprintf(id, sizeof(id), "w%d-%d", t, i);
            get_doc(r->d.port, coll, id, seq, &g);
            h = hit_of(s.j, id);
            if (w[t].text[i][0] == '\0') {
                ck_assert_msg(g.status == 404, "deleted %s on :%d: %ld %s", id, r->d.port,
                              g.status, g.text);
                ck_assert_msg(h == NULL, "deleted %s is a hit on :%d", id, r->d.port);
            } else {
                present++;
                ck_assert_msg(g.status == 200, "%s on :%d: %ld %s", id, r->d.port, g.status,
                              g.text);
                ck_assert_str_eq(json_string_value(json_object_get(g.j, "text")), w[t].text[i]);
                ck_assert_msg(h != NULL, "%s is not a hit on :%d", id, r->d.port);
                ck_assert_str_eq(json_string_value(json_object_get(h, "text")), w[t].text[i]);
            }
            reply_clear(&g);
        }
    }
    json_array_foreach(json_object_get(s.j, "hits"), k, h)
        hits += json_string_value(json_object_get(h, "id"))[0] == 'w';
    ck_assert_int_eq(hits, present);
    reply_clear(&s);
}

/* Create coll through r[0] and wait until all n replicas have it. */
static void
create_everywhere(struct replica *r, int n, const char *coll)
{
    char path[128];

    snprintf(path, sizeof(path), "/v1/collections/%s", coll);
    json_decref(call(r[0].d.port, "PUT", path, json_pack("{s:s}", "index", "Flat"), 201));
    for (int i = 1; i < n; i++) {
        double took = until_status(r[i].d.port, path, 200, SEEN_WITHIN);
        ck_assert_msg(took >= 0, "replica %d did not see the new collection within %.1f s", i,
                      SEEN_WITHIN);
    }
}

/* --- tests ------------------------------------------------------------------------ */

/* A write through one replica is read through another with min_seq =
 * its seq, at once; without min_seq within SEEN_WITHIN; a delete or an
 * update never leaves a stale hit; a drop is seen by all. */
START_TEST(test_read_your_writes)
{
    struct replica r[3];
    struct reply g;
    int64_t s1, s2, s3, s4;
    json_t *h;
    double t0;

    if (no_postgresql())
        return;
    replicas_start(r, 3, MODEL);
    create_everywhere(r, 3, "ryw");

    /* an upsert through 2, read through 3 */
    {
        struct reply u;
        request(r[1].d.port, "POST", "/v1/collections/ryw/documents",
                json_pack("{s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}]}", "documents",
                          "id", "a", "text", "怎么开通花呗", "id", "b", "text", "花呗怎么还款",
                          "id", "c", "text", "借呗额度"), &u);
        ck_assert_msg(u.status == 200, "%ld %s", u.status, u.text);
        ck_assert_int_eq(json_integer_value(json_object_get(u.j, "upserted")), 3);
        s1 = seq_of(u.j);
        ck_assert(s1 > 0);
        reply_clear(&u);
    }
    get_doc(r[2].d.port, "ryw", "a", s1, &g);
    ck_assert_msg(g.status == 200, "%ld %s", g.status, g.text);
    ck_assert_str_eq(json_string_value(json_object_get(g.j, "text")), "怎么开通花呗");
    reply_clear(&g);
    search(r[2].d.port, "ryw", "怎么开通花呗", s1, &g);
    ck_assert_msg(g.status == 200, "%ld %s", g.status, g.text);
    ck_assert_int_eq(json_array_size(json_object_get(g.j, "hits")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
                         json_object_get(g.j, "hits"), 0), "id")), "a");
    reply_clear(&g);

    /* a delete through 1: never a hit again, on 2 and 3 */
    s2 = write_ok(r[0].d.port, "ryw", "a", NULL);
    ck_assert_msg(s2 > s1, "seq went from %lld to %lld", (long long)s1, (long long)s2);
    for (int i = 1; i < 3; i++) {
        search(r[i].d.port, "ryw", "怎么开通花呗", s2, &g);
        ck_assert_msg(g.status == 200, "%ld %s", g.status, g.text);
        ck_assert_msg(hit_of(g.j, "a") == NULL, "the deleted document is a hit on replica %d",
                      i + 1);
        ck_assert_int_eq(json_array_size(json_object_get(g.j, "hits")), 2);
        reply_clear(&g);
        get_doc(r[i].d.port, "ryw", "a", s2, &g);
        ck_assert_msg(g.status == 404, "%ld %s", g.status, g.text);
        reply_clear(&g);
    }

    /* an update through 3: the new text everywhere, never the old */
    s3 = write_ok(r[2].d.port, "ryw", "b", "花呗的还款日是哪天");
    ck_assert(s3 > s2);
    for (int i = 0; i < 2; i++) {
        search(r[i].d.port, "ryw", "花呗怎么还款", s3, &g);
        ck_assert_msg(g.status == 200, "%ld %s", g.status, g.text);
        h = hit_of(g.j, "b");
        ck_assert_ptr_nonnull(h);
        ck_assert_str_eq(json_string_value(json_object_get(h, "text")), "花呗的还款日是哪天");
        reply_clear(&g);
    }

    /* without min_seq: seen by the others within SEEN_WITHIN */
    s4 = write_ok(r[0].d.port, "ryw", "d", "余额宝怎么转出");
    ck_assert(s4 > s3);
    t0 = tu_now();
    for (int i = 1; i < 3; i++)
        ck_assert_msg(until_status(r[i].d.port, "/v1/collections/ryw/documents/d", 200,
                                   SEEN_WITHIN) >= 0,
                      "replica %d did not see an upsert within %.1f s", i + 1, SEEN_WITHIN);
    ck_assert(tu_now() - t0 < 2 * SEEN_WITHIN);
    write_ok(r[1].d.port, "ryw", "d", NULL);
    for (int i = 0; i < 3; i += 2)
        ck_assert_msg(until_status(r[i].d.port, "/v1/collections/ryw/documents/d", 404,
                                   SEEN_WITHIN) >= 0,
                      "replica %d did not see a delete within %.1f s", i + 1, SEEN_WITHIN);

    /* a seq not written yet: 503 with Retry-After once the deadline passed */
    search(r[1].d.port, "ryw", "花呗", s4 + 1000, &g);
    ck_assert_msg(g.status == 503 && g.retry_after, "min_seq ahead: %ld %s", g.status, g.text);
    ck_assert_msg(g.secs < DEADLINE + 1.5, "answered after %.1f s", g.secs);
    reply_clear(&g);
    get_doc(r[2].d.port, "ryw", "b", s4 + 1000, &g);
    ck_assert_msg(g.status == 503 && g.retry_after, "min_seq ahead: %ld %s", g.status, g.text);
    reply_clear(&g);

    /* a drop through 2: gone on all */
    json_decref(call(r[1].d.port, "DELETE", "/v1/collections/ryw", NULL, 200));
    for (int i = 0; i < 3; i += 2)
        ck_assert_msg(until_status(r[i].d.port, "/v1/collections/ryw", 404, SEEN_WITHIN) >= 0,
                      "replica %d still has a dropped collection after %.1f s", i + 1,
                      SEEN_WITHIN);
    replicas_stop(r, 3);
}
END_TEST

struct kill_plan {
    struct replica *victim;
};

static void
kill_midway(void *arg)
{
    struct kill_plan *k = arg;

    nap(1.0);
    replica_kill(k->victim);
    nap(1.5);
}

/* kill -9 of one of three replicas while three writers write through
 * all three: what was acknowledged is on the survivors, and on the
 * killed one restarted on its data directory. */
START_TEST(test_replica_killed_under_load)
{
    struct replica r[3];
    struct writer w[3];
    struct kill_plan k = { &r[1] };
    long acked = 0;

    if (no_postgresql())
        return;
    replicas_start(r, 3, MODEL);
    create_everywhere(r, 3, "killed");
    writers_run(w, 3, r, 3, "killed", kill_midway, &k);
    for (int i = 0; i < 3; i++)
        acked += w[i].acked;
    fprintf(stderr, "check_replicas: %ld writes acknowledged around a kill -9\n", acked);
    assert_holds(&r[0], "killed", w, 3);
    assert_holds(&r[2], "killed", w, 3);
    replica_start(&r[1]);
    assert_holds(&r[1], "killed", w, 3);
    replicas_stop(r, 3);
}
END_TEST

struct outage {
    struct replica *reps;
    int n;
    _Atomic int stop;
    /* the reader's */
    int reads[2], reads_ok[2], reads_unavailable[2];   /* [0] GET, [1] search */
    double slowest_read;
    char read_error[600];
    char path_reply[240];   /* the first reply naming a path */
    /* the main thread's */
    char readyz_error[600];
    char error[600];
};

/* GET /readyz on r: its storage_reachable (0 or 1), or -1 (with
 * o->readyz_error) when the reply is not 200 with "storage":
 * "postgresql" and that field. */
static int
reachable(struct outage *o, struct replica *r)
{
    struct reply g;
    json_t *v;
    const char *backend;
    int rc = -1;

    request(r->d.port, "GET", "/readyz", NULL, &g);
    v = json_object_get(g.j, "storage_reachable");
    backend = json_string_value(json_object_get(g.j, "storage"));
    if (g.status != 200 || !json_is_boolean(v) || backend == NULL ||
        strcmp(backend, "postgresql") != 0) {
        if (o->readyz_error[0] == '\0')
            snprintf(o->readyz_error, sizeof(o->readyz_error), "/readyz: %ld %s", g.status, g.text);
    } else {
        rc = json_is_true(v);
    }
    reply_clear(&g);
    return rc;
}

/* Wait until every replica's /readyz says storage_reachable is want;
 * 0, or -1 (with o->readyz_error) after limit seconds. */
static int
until_reachable(struct outage *o, int want, double limit)
{
    double until = tu_now() + limit;

    while (tu_now() < until) {
        int all = 1;
        for (int i = 0; i < o->n; i++) {
            int got = reachable(o, &o->reps[i]);
            if (got < 0)
                return -1;
            all &= got == want;
        }
        if (all)
            return 0;
        nap(0.05);
    }
    if (o->readyz_error[0] == '\0')
        snprintf(o->readyz_error, sizeof(o->readyz_error),
                 "/readyz did not say storage_reachable %s within %.0f s",
                 want ? "true" : "false", limit);
    return -1;
}

/* Searches and GETs on every replica until o->stop: each answers in
 * time; counted by status (200, or 503 with Retry-After; anything else
 * is an error). */
static void *
reader_run(void *arg)
{
    struct outage *o = arg;

    for (int i = 0; !o->stop && o->read_error[0] == '\0'; i++) {
        struct replica *r = &o->reps[i % o->n];
        struct reply g;
        if (i % 2)
            search(r->d.port, "outage", "文档", 0, &g);
        else
            get_doc(r->d.port, "outage", "seed", 0, &g);
        o->reads[i % 2]++;
        o->slowest_read = g.secs > o->slowest_read ? g.secs : o->slowest_read;
        if (g.status == 200)
            o->reads_ok[i % 2]++;
        else if (g.status == 503 && g.retry_after)
            o->reads_unavailable[i % 2]++;
        else
            snprintf(o->read_error, sizeof(o->read_error), "%s on :%d: %ld %s",
                     i % 2 ? "search" : "GET", r->d.port, g.status, g.text);
        if (g.names_a_path && o->path_reply[0] == '\0')
            snprintf(o->path_reply, sizeof(o->path_reply), "%s", g.text);
        reply_clear(&g);
        nap(0.02);
    }
    return NULL;
}

/* PostgreSQL stopped for two seconds, then started again, while the
 * writers write and a reader reads; /readyz followed on the way. */
static void
restart_postgresql(void *arg)
{
    struct outage *o = arg;
    pthread_t reader;

    ck_assert_int_eq(pthread_create(&reader, NULL, reader_run, o), 0);
    nap(0.7);
    until_reachable(o, 1, 1);     /* a failure is recorded; the outage goes on */
    if (tu_pg_stop(&pg) != 0) {
        snprintf(o->error, sizeof(o->error), "PostgreSQL did not stop: %s", pg.why);
    } else {
        until_reachable(o, 0, 5);
        nap(2.0);
        if (tu_pg_restart(&pg) != 0)
            snprintf(o->error, sizeof(o->error), "PostgreSQL did not start again: %s", pg.why);
        else
            until_reachable(o, 1, 15);
    }
    nap(1.0);
    o->stop = 1;
    pthread_join(reader, NULL);
}

/* PostgreSQL restarted under write load: writes during the outage get
 * 503 with Retry-After (never another error, never late, never naming a
 * path), reads answer 200, /readyz says so; afterwards writes succeed and
 * nothing acknowledged is lost. */
START_TEST(test_postgresql_restarted)
{
    struct replica r[2];
    struct writer w[2];
    struct outage o = { .reps = r, .n = 2 };
    int unavailable = 0;

    if (no_postgresql())
        return;
    replicas_start(r, 2, MODEL);
    create_everywhere(r, 2, "outage");
    write_ok(r[0].d.port, "outage", "seed", "停电之前写下的文档");
    writers_run(w, 2, r, 2, "outage", restart_postgresql, &o);
    ck_assert_msg(o.error[0] == '\0', "%s", o.error);
    ck_assert_msg(o.read_error[0] == '\0', "a read while PostgreSQL restarted: %s",
                  o.read_error);
    for (int i = 0; i < 2; i++)
        unavailable += w[i].unavailable;
    fprintf(stderr, "check_replicas: PostgreSQL restart: %d writes acknowledged, %d answered "
            "503; %d GETs: %d 200, %d 503; %d searches: %d 200, %d 503\n",
            w[0].acked + w[1].acked, unavailable, o.reads[0], o.reads_ok[0],
            o.reads_unavailable[0], o.reads[1], o.reads_ok[1], o.reads_unavailable[1]);
    ck_assert_msg(unavailable > 0, "no write met the outage");
    ck_assert_msg(o.slowest_read < DEADLINE + 2.0, "a read took %.1f s", o.slowest_read);
    /* reads are served from each replica's own copy */
    ck_assert_msg(o.reads_unavailable[0] == 0 && o.reads_unavailable[1] == 0,
                  "reads answered 503 while PostgreSQL was away");
    ck_assert_msg(o.readyz_error[0] == '\0', "%s", o.readyz_error);
    for (int i = 0; i < 2; i++) {
        struct reply g;
        assert_holds(&r[i], "outage", w, 2);
        get_doc(r[i].d.port, "outage", "seed", 0, &g);
        ck_assert_int_eq(g.status, 200);
        reply_clear(&g);
    }
    write_ok(r[1].d.port, "outage", "after", "恢复之后写下的文档");
    replicas_stop(r, 2);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(w[i].path_reply[0] == '\0', "a write's reply names a path: %s",
                      w[i].path_reply);
    ck_assert_msg(o.path_reply[0] == '\0', "a read's reply names a path: %s", o.path_reply);
}
END_TEST

/* A counter or gauge of /metrics (without labels) on port. */
static double
metric(int port, const char *name)
{
    struct tu_response resp;
    char key[128];
    const char *at;
    double v;

    ck_assert_int_eq(tu_http(port, "GET", "/metrics", NULL, NULL, 0, &resp), 0);
    snprintf(key, sizeof(key), "\n%s ", name);
    at = strstr(resp.body, key);
    ck_assert_msg(at != NULL, "no %s in /metrics", name);
    v = strtod(at + strlen(key), NULL);
    tu_response_free(&resp);
    return v;
}

/* A replica started with an empty data directory serves every document
 * (updates and deletes included) and searches as the others do, and
 * never ran its model to get there. */
START_TEST(test_fresh_replica_catches_up)
{
    struct replica r[2];
    char id[32], text[64];
    int64_t seq = 0;
    struct reply a, b;
    json_t *ha, *hb;
    size_t i;

    if (no_postgresql())
        return;
    replicas_start(r, 1, MODEL);
    create_everywhere(r, 1, "fresh");
    for (int d = 0; d < 40; d++) {
        snprintf(id, sizeof(id), "f%d", d);
        snprintf(text, sizeof(text), "第%d个问题：花呗%s", d, d % 2 ? "怎么还款" : "如何开通");
        seq = write_ok(r[0].d.port, "fresh", id, text);
    }
    for (int d = 0; d < 40; d += 10) {   /* 4 deletes, 4 updates */
        snprintf(id, sizeof(id), "f%d", d);
        write_ok(r[0].d.port, "fresh", id, NULL);
        snprintf(id, sizeof(id), "f%d", d + 1);
        snprintf(text, sizeof(text), "改过的第%d个问题", d + 1);
        seq = write_ok(r[0].d.port, "fresh", id, text);
    }

    r[1] = (struct replica){ .data = tu_temp_dir("replica"), .model = MODEL };
    replica_start(&r[1]);
    get_doc(r[1].d.port, "fresh", "f1", seq, &a);
    ck_assert_msg(a.status == 200, "%ld %s", a.status, a.text);
    ck_assert_str_eq(json_string_value(json_object_get(a.j, "text")), "改过的第1个问题");
    reply_clear(&a);
    get_doc(r[1].d.port, "fresh", "f0", seq, &a);
    ck_assert_int_eq(a.status, 404);
    reply_clear(&a);
    a.j = call(r[1].d.port, "GET", "/v1/collections/fresh", NULL, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(a.j, "documents")), 36);
    ck_assert_int_eq(json_integer_value(json_object_get(a.j, "index_vectors")), 36);
    reply_clear(&a);
    /* the vectors came from the database, not from the model */
    ck_assert_int_eq((long)metric(r[1].d.port, "rosim_tokens_total"), 0);
    ck_assert_int_eq((long)metric(r[1].d.port, "rosim_batch_size_count"), 0);

    /* the same hits and scores as the replica that embedded them */
    search(r[0].d.port, "fresh", "花呗如何开通", seq, &a);
    search(r[1].d.port, "fresh", "花呗如何开通", seq, &b);
    ck_assert_int_eq(a.status, 200);
    ck_assert_int_eq(b.status, 200);
    ck_assert_int_eq(json_array_size(json_object_get(b.j, "hits")), 36);
    json_array_foreach(json_object_get(a.j, "hits"), i, ha) {
        hb = hit_of(b.j, json_string_value(json_object_get(ha, "id")));
        ck_assert_ptr_nonnull(hb);
        ck_assert_double_eq_tol(json_real_value(json_object_get(ha, "score")),
                                json_real_value(json_object_get(hb, "score")), 1e-5);
    }
    reply_clear(&a);
    reply_clear(&b);
    replicas_stop(r, 2);
}
END_TEST

/* A copy of the test model with one weight changed in its last bit: the
 * same shape, another fingerprint.  A new directory (the caller removes
 * it). */
static char *
other_model(void)
{
    char *dir = tu_temp_dir("model"), cmd[600], path[400];
    FILE *f;
    long size;
    int c;

    snprintf(cmd, sizeof(cmd), "cp %s/config.json %s/vocab.txt %s/model.safetensors %s/",
             MODEL, MODEL, MODEL, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    /* the lowest byte of the last float32 (little-endian) */
    ck_assert_int_eq(fseek(f, size - 4, SEEK_SET), 0);
    c = fgetc(f);
    ck_assert_int_eq(fseek(f, size - 4, SEEK_SET), 0);
    ck_assert_int_eq(fputc(c ^ 1, f), c ^ 1);
    ck_assert_int_eq(fclose(f), 0);
    return dir;
}

static char *
fingerprint(int port)
{
    json_t *j = call(port, "GET", "/v1/info", NULL, 200);
    const char *fp = json_string_value(json_object_get(json_object_get(j, "model"), "fingerprint"));
    char *s;

    ck_assert_ptr_nonnull(fp);
    s = strdup(fp);
    json_decref(j);
    return s;
}

/* On r, collection name is listed as failed with a reason naming the
 * model that built it (fp), answers 409, and /readyz lists it. */
static void
assert_refused(struct replica *r, const char *name, const char *fp)
{
    json_t *j = call(r->d.port, "GET", "/v1/collections", NULL, 200), *c;
    size_t i;
    int seen = 0;
    char path[128];

    json_array_foreach(json_object_get(j, "collections"), i, c) {
        const char *reason = json_string_value(json_object_get(c, "reason"));
        if (strcmp(json_string_value(json_object_get(c, "name")), name) != 0)
            continue;
        seen = 1;
        ck_assert_str_eq(json_string_value(json_object_get(c, "state")), "failed");
        ck_assert_msg(reason != NULL && strstr(reason, fp) != NULL,
                      "the reason does not name model %s: %s", fp, reason ? reason : "none");
    }
    json_decref(j);
    ck_assert_msg(seen, "%s is not listed", name);
    snprintf(path, sizeof(path), "/v1/collections/%s/search", name);
    json_decref(call(r->d.port, "POST", path, json_pack("{s:s}", "text", "花呗"), 409));
    j = call(r->d.port, "GET", "/readyz", NULL, 200);
    seen = 0;
    json_array_foreach(json_object_get(j, "collections_failed"), i, c)
        seen |= strcmp(json_string_value(c), name) == 0;
    json_decref(j);
    ck_assert_msg(seen, "/readyz does not list %s as failed", name);
}

/* Two replicas with different models on one database: each serves the
 * collection its model built and refuses the other's, saying why. */
START_TEST(test_other_model_refused)
{
    struct replica r[2];
    char *model, *fp0, *fp1;
    struct reply g;

    if (no_postgresql())
        return;
    model = other_model();
    r[0] = (struct replica){ .data = tu_temp_dir("replica"), .model = MODEL };
    r[1] = (struct replica){ .data = tu_temp_dir("replica"), .model = model };
    replica_start(&r[0]);
    replica_start(&r[1]);
    fp0 = fingerprint(r[0].d.port);
    fp1 = fingerprint(r[1].d.port);
    ck_assert_str_ne(fp0, fp1);
    json_decref(call(r[0].d.port, "PUT", "/v1/collections/mine", NULL, 201));
    write_ok(r[0].d.port, "mine", "m", "我的模型写的文档");
    json_decref(call(r[1].d.port, "PUT", "/v1/collections/theirs", NULL, 201));
    write_ok(r[1].d.port, "theirs", "t", "另一个模型写的文档");
    /* each sees the other's collection within SEEN_WITHIN, refused */
    nap(SEEN_WITHIN);
    assert_refused(&r[1], "mine", fp0);
    assert_refused(&r[0], "theirs", fp1);
    for (int i = 0; i < 2; i++) {
        search(r[i].d.port, i ? "theirs" : "mine", "文档", 0, &g);
        ck_assert_msg(g.status == 200, "%ld %s", g.status, g.text);
        ck_assert_int_eq(json_array_size(json_object_get(g.j, "hits")), 1);
        reply_clear(&g);
    }
    free(fp0);
    free(fp1);
    replicas_stop(r, 2);
    tu_remove_tree(model);
    free(model);
}
END_TEST

Suite *
replicas_suite(void)
{
    Suite *s = suite_create("replicas");
    TCase *tc = tcase_create("postgresql");

    tcase_add_unchecked_fixture(tc, pg_setup, pg_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_read_your_writes);
    tcase_add_test(tc, test_fresh_replica_catches_up);
    tcase_add_test(tc, test_other_model_refused);
    tcase_add_test(tc, test_replica_killed_under_load);
    /* last: it stops the server */
    tcase_add_test(tc, test_postgresql_restarted);
    suite_add_tcase(s, tc);
    return s;
}
