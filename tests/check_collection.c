/*
 * check_collection.c: the document store and its FAISS index.
 *
 * Results are checked against brute-force cosine over a mirror of what was
 * written; restarts, snapshots (missing, corrupt, truncated), a database
 * from another model, a full disk, and a writer killed with SIGKILL at
 * random moments are all exercised.  fsync and fdatasync are defined here
 * (forwarding to the system calls) so that the fsync policy is measured by
 * what it does: the binary's definitions take the place of libc's for
 * SQLite too.  fsync also notes the directories it syncs.
 */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../index/collection.h"
#include "../index/store.h"
#include "suites.h"
#include "testutil.h"

#define DIM 16

/* --- sync calls, counted --------------------------------------------------- */

static atomic_long syncs;

/* The inodes of the last directories synced (a ring). */
#define SYNCED_DIRS 64
static _Atomic unsigned long synced_dir[SYNCED_DIRS];
static atomic_long n_synced_dirs;

int
fsync(int fd)
{
    struct stat st;

    atomic_fetch_add(&syncs, 1);
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        atomic_store(&synced_dir[atomic_fetch_add(&n_synced_dirs, 1) % SYNCED_DIRS],
                     (unsigned long)st.st_ino);
    return (int)syscall(SYS_fsync, fd);
}

int
fdatasync(int fd)
{
    atomic_fetch_add(&syncs, 1);
    return (int)syscall(SYS_fdatasync, fd);
}

static unsigned rng_state = 1;

static float
frand(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (float)((rng_state >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static void
random_vec(float *v)
{
    float n = 0;
    for (int i = 0; i < DIM; i++) {
        v[i] = frand();
        n += v[i] * v[i];
    }
    for (int i = 0; i < DIM; i++)
        v[i] /= sqrtf(n);
}

static struct coll *
open_coll(const char *dir, const char *factory, int create)
{
    struct coll_options o = { create, factory, DIM, "test-model", COLL_FSYNC_ALWAYS, 0, NULL, NULL };
    struct coll *c;
    struct rs_error e;
    char path[600];

    snprintf(path, sizeof(path), "%s/c", dir);
    ck_assert_msg(coll_open(&c, path, &o, &e) == RS_OK, "%s", e.msg);
    return c;
}

/* A mirror of the collection: vectors by numeric id, alive flags. */
struct mirror {
    int n;
    float (*vec)[DIM];
    int *alive;
};

static void
put_docs(struct coll *c, struct mirror *m, int from, int to)
{
    struct coll_doc d[64];
    char ids[64][32], texts[64][48];
    int k = 0;

    for (int i = from; i < to; i++) {
        random_vec(m->vec[i]);
        m->alive[i] = 1;
        snprintf(ids[k], sizeof(ids[k]), "doc-%d", i);
        snprintf(texts[k], sizeof(texts[k]), "text of %d", i);
        d[k] = (struct coll_doc){ ids[k], texts[k], "{\"n\":1}", m->vec[i], 0 };
        if (++k == 64 || i == to - 1) {
            struct rs_error e;
            ck_assert_msg(coll_upsert(c, d, k, NULL, &e) == RS_OK, "%s", e.msg);
            k = 0;
        }
    }
}

static int
cmp_float_desc(const void *a, const void *b)
{
    float x = ((const float *)a)[0], y = ((const float *)b)[0];
    return x < y ? 1 : x > y ? -1 : 0;
}

/* recall@k of c against brute force over the live mirror; also checks
 * every hit's score is its current vector's cosine (no stale hit). */
static double
recall(struct coll *c, const struct mirror *m, int queries, int k)
{
    float (*all)[2] = malloc((size_t)m->n * sizeof(*all));
    double found = 0, wanted = 0;

    for (int q = 0; q < queries; q++) {
        float query[DIM];
        struct coll_hit *hits;
        int n, live = 0;
        struct rs_error e;
        random_vec(query);
        for (int i = 0; i < m->n; i++) {
            float dot = 0;
            if (!m->alive[i])
                continue;
            for (int j = 0; j < DIM; j++)
                dot += query[j] * m->vec[i][j];
            all[live][0] = dot;
            all[live++][1] = (float)i;
        }
        qsort(all, (size_t)live, sizeof(all[0]), cmp_float_desc);
        ck_assert_int_eq(coll_search(c, query, k, -2.0f, &hits, &n, &e), RS_OK);
        ck_assert_int_eq(n, live < k ? live : k);
        for (int h = 0; h < n; h++) {
            int id = atoi(hits[h].id + 4);
            float dot = 0;
            ck_assert_msg(m->alive[id], "deleted document %s returned", hits[h].id);
            for (int j = 0; j < DIM; j++)
                dot += query[j] * m->vec[id][j];
            ck_assert_msg(fabsf(dot - hits[h].score) < 1e-4f, "stale hit %s: score %f, cosine %f",
                          hits[h].id, hits[h].score, dot);
            if (h > 0)
                ck_assert(hits[h].score <= hits[h - 1].score + 1e-6f);
            for (int t = 0; t < (live < k ? live : k); t++)
                if ((int)all[t][1] == id) {
                    found++;
                    break;
                }
        }
        wanted += live < k ? live : k;
        coll_hits_free(hits, n);
    }
    free(all);
    return wanted > 0 ? found / wanted : 1.0;
}

static struct mirror
mirror_new(int n)
{
    struct mirror m = { n, calloc((size_t)n, sizeof(float[DIM])), calloc((size_t)n, sizeof(int)) };
    return m;
}

static void
mirror_free(struct mirror *m)
{
    free(m->vec);
    free(m->alive);
}

static void
crud_and_stale(const char *factory, int n_docs, double min_recall)
{
    char *dir = tu_temp_dir("coll");
    struct coll *c = open_coll(dir, factory, 1);
    struct mirror m = mirror_new(n_docs);
    struct coll_hit h;
    struct rs_error e;
    struct coll_stats st;
    double r;

    put_docs(c, &m, 0, n_docs);
    r = recall(c, &m, 50, 10);
    ck_assert_msg(r >= min_recall, "%s: recall@10 %f", factory, r);
    /* update a fifth, delete a tenth; search with their old vectors too */
    put_docs(c, &m, 0, n_docs / 5);
    for (int i = n_docs / 5; i < n_docs / 5 + n_docs / 10; i++) {
        char id[32];
        snprintf(id, sizeof(id), "doc-%d", i);
        ck_assert_int_eq(coll_delete(c, id, NULL, &e), RS_OK);
        m.alive[i] = 0;
        ck_assert_int_eq(coll_delete(c, id, NULL, &e), RS_ENOTFOUND);
        ck_assert_int_eq(coll_get(c, id, &h, &e), RS_ENOTFOUND);
    }
    r = recall(c, &m, 50, 10);
    ck_assert_msg(r >= min_recall, "%s after updates: recall@10 %f", factory, r);
    ck_assert_int_eq(coll_get(c, "doc-0", &h, &e), RS_OK);
    ck_assert_str_eq(h.text, "text of 0");
    ck_assert_str_eq(h.meta, "{\"n\":1}");
    coll_hit_clear(&h);
    coll_get_stats(c, &st);
    ck_assert_int_eq(st.documents, n_docs - n_docs / 10);
    ck_assert_int_eq(st.index_vectors, n_docs - n_docs / 10);

    /* restart: same answers, from the snapshot and from a rebuild */
    coll_close(c);
    c = open_coll(dir, factory, 0);
    ck_assert(recall(c, &m, 20, 10) >= min_recall);
    coll_get_stats(c, &st);
    ck_assert_int_eq(st.documents, n_docs - n_docs / 10);
    coll_close(c);
    {
        char snap[600];
        snprintf(snap, sizeof(snap), "%s/c/index.snap", dir);
        ck_assert_int_eq(unlink(snap), 0);
    }
    c = open_coll(dir, NULL, 0);
    ck_assert(recall(c, &m, 20, 10) >= min_recall);
    coll_close(c);
    mirror_free(&m);
    tu_remove_tree(dir);
    free(dir);
}

START_TEST(test_flat)
{
    crud_and_stale("Flat", 2000, 1.0);
}
END_TEST

START_TEST(test_hnsw)
{
    crud_and_stale("HNSW32,Flat", 10000, 0.95);
}
END_TEST

START_TEST(test_ivf)
{
    /* 39 x 16 = 624 vectors train it; the interim flat index is exact */
    char *dir = tu_temp_dir("coll");
    struct coll *c = open_coll(dir, "IVF16,Flat", 1);
    struct mirror m = mirror_new(2000);
    struct coll_stats st;

    put_docs(c, &m, 0, 300);
    coll_get_stats(c, &st);
    ck_assert_int_eq(st.trained, 0);
    ck_assert(recall(c, &m, 20, 10) == 1.0);
    coll_close(c);
    mirror_free(&m);
    tu_remove_tree(dir);
    free(dir);
    crud_and_stale("IVF16,Flat", 2000, 0.9);
}
END_TEST

START_TEST(test_snapshot_replay_and_damage)
{
    char *dir = tu_temp_dir("coll"), snap[600], db[600];
    struct coll *c = open_coll(dir, "HNSW32,Flat", 1);
    struct mirror m = mirror_new(1500);
    struct coll_stats st;
    struct rs_error e;
    struct stat sb;
    int fd;

    put_docs(c, &m, 0, 1000);
    ck_assert_int_eq(coll_snapshot(c, &e), RS_OK);
    /* writes after the snapshot, including deletes on a non-removable index */
    put_docs(c, &m, 1000, 1500);
    put_docs(c, &m, 0, 100);
    for (int i = 100; i < 150; i++) {
        char id[32];
        snprintf(id, sizeof(id), "doc-%d", i);
        ck_assert_int_eq(coll_delete(c, id, NULL, &e), RS_OK);
        m.alive[i] = 0;
    }
    /* simulate a crash: drop the handle without its closing snapshot by
     * copying the files aside while it is open */
    snprintf(snap, sizeof(snap), "cp -r '%s/c' '%s/crashed'", dir, dir);
    ck_assert_int_eq(system(snap), 0);
    coll_close(c);
    {
        struct coll_options o = { 0, NULL, DIM, "test-model", COLL_FSYNC_ALWAYS, 0, NULL, NULL };
        snprintf(snap, sizeof(snap), "%s/crashed", dir);
        ck_assert_msg(coll_open(&c, snap, &o, &e) == RS_OK, "%s", e.msg);
        coll_get_stats(c, &st);
        ck_assert_int_eq(st.snapshot_seq < st.seq, 1);   /* really replayed */
        ck_assert(recall(c, &m, 30, 10) >= 0.95);
        ck_assert_int_eq(st.documents, 1450);
        coll_close(c);
    }
    /* a corrupt snapshot, then a truncated one: rebuilt, same answers */
    snprintf(snap, sizeof(snap), "%s/c/index.snap", dir);
    fd = open(snap, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, "XXXX", 4, 100), 4);
    close(fd);
    c = open_coll(dir, NULL, 0);
    ck_assert(recall(c, &m, 20, 10) >= 0.95);
    coll_close(c);
    ck_assert_int_eq(stat(snap, &sb), 0);
    ck_assert_int_eq(truncate(snap, sb.st_size / 2), 0);
    c = open_coll(dir, NULL, 0);
    ck_assert(recall(c, &m, 20, 10) >= 0.95);
    coll_close(c);

    /* a truncated database is reported, not trusted */
    snprintf(db, sizeof(db), "cp -r '%s/c' '%s/t' && rm -f '%s/t/docs.db-wal' '%s/t/docs.db-shm'",
             dir, dir, dir, dir);
    ck_assert_int_eq(system(db), 0);
    snprintf(db, sizeof(db), "%s/t/docs.db", dir);
    ck_assert_int_eq(stat(db, &sb), 0);
    ck_assert_int_eq(truncate(db, sb.st_size / 3), 0);
    {
        struct coll_options o = { 0, NULL, DIM, "test-model", COLL_FSYNC_ALWAYS, 0, NULL, NULL };
        snprintf(snap, sizeof(snap), "%s/t", dir);
        ck_assert_int_eq(coll_open(&c, snap, &o, &e), RS_EFORMAT);
        ck_assert_ptr_nonnull(strstr(e.msg, "docs.db"));
    }
    /* a corrupt database is reported, not trusted */
    snprintf(db, sizeof(db), "%s/c/docs.db", dir);
    fd = open(db, O_RDWR);
    ck_assert_int_eq(pwrite(fd, "garbage garbage garbage garbage!", 32, 0), 32);
    close(fd);
    {
        struct coll_options o = { 0, NULL, DIM, "test-model", COLL_FSYNC_ALWAYS, 0, NULL, NULL };
        snprintf(snap, sizeof(snap), "%s/c", dir);
        ck_assert_int_eq(coll_open(&c, snap, &o, &e), RS_EFORMAT);
        ck_assert_ptr_nonnull(strstr(e.msg, "docs.db"));
    }
    mirror_free(&m);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_refuses_other_model)
{
    char *dir = tu_temp_dir("coll"), path[600];
    struct coll *c = open_coll(dir, "Flat", 1);
    struct coll_options o = { 0, NULL, DIM, "another-model", COLL_FSYNC_ALWAYS, 0, NULL, NULL };
    struct rs_error e;

    coll_close(c);
    snprintf(path, sizeof(path), "%s/c", dir);
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "was built with model test-model"));
    o.fingerprint = "test-model";
    o.dim = DIM + 1;
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EINVAL);
    o.dim = DIM;
    o.factory = "HNSW32,Flat";
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EEXIST);
    o.factory = "NoSuchIndex";
    o.create = 1;
    snprintf(path, sizeof(path), "%s/bad", dir);
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "'NoSuchIndex' is not a supported component"));
    /* absurd sizes are refused before FAISS allocates anything */
    o.factory = "IVF100000000,Flat";
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EINVAL);
    o.factory = "HNSW100000,Flat";
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EINVAL);
    o.factory = "Flat,";
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EINVAL);
    /* a type FAISS cannot build for this dimension is refused, saying why */
    o.factory = "PQ5";
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "PQ5: 5 sub-quantizers do not divide dimension 16"));
    snprintf(path, sizeof(path), "%s/none", dir);
    o.create = 0;
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_ENOTFOUND);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

START_TEST(test_disk_full)
{
    char *dir = tu_temp_dir("coll");
    struct coll *c;
    struct mirror m = mirror_new(20000);
    struct rs_error e;
    int full = 0, acked = 0;

    ck_assert_msg(mount("tmpfs", dir, "tmpfs", 0, "size=256k") == 0,
                  "cannot mount a small tmpfs (the suite runs as root)");
    c = open_coll(dir, "Flat", 1);
    for (int i = 0; i < 20000 && !full; i++) {
        char id[32], text[200];
        struct coll_doc d;
        random_vec(m.vec[i]);
        snprintf(id, sizeof(id), "doc-%d", i);
        snprintf(text, sizeof(text), "%0150d", i);
        d = (struct coll_doc){ id, text, NULL, m.vec[i], 0 };
        if (coll_upsert(c, &d, 1, NULL, &e) == RS_OK) {
            m.alive[i] = 1;
            acked++;
        } else {
            ck_assert_msg(e.code == RS_ENOSPC, "%s", e.msg);
            full = 1;
        }
    }
    ck_assert(full);
    m.n = acked;
    /* reads still work and see every acknowledged write */
    ck_assert(recall(c, &m, 10, 10) == 1.0);
    coll_close(c);
    c = open_coll(dir, NULL, 0);
    {
        struct coll_stats st;
        coll_get_stats(c, &st);
        ck_assert_int_eq(st.documents, acked);
    }
    coll_close(c);
    umount(dir);
    mirror_free(&m);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* The writer of the crash test: upserts doc-N (and rewrites older ones),
 * reporting each acknowledged write on fd. */
static void
crash_writer(const char *path, int fd, int start)
{
    struct coll_options o = { 1, "Flat", DIM, "test-model", COLL_FSYNC_ALWAYS, 50, NULL, NULL };
    struct coll *c;
    struct rs_error e;

    if (coll_open(&c, path, &o, &e) != RS_OK)
        _exit(3);
    for (int i = start;; i++) {
        char id[32], text[64], line[64];
        float v[DIM];
        struct coll_doc d;
        int n = i % 5 == 4 ? i / 2 : i;   /* every fifth write rewrites an older doc */
        for (int j = 0; j < DIM; j++)
            v[j] = (float)((n * 31 + j * 7) % 97) + 1.0f;
        snprintf(id, sizeof(id), "doc-%d", n);
        snprintf(text, sizeof(text), "version %d of %d", i, n);
        d = (struct coll_doc){ id, text, NULL, v, 0 };
        if (coll_upsert(c, &d, 1, NULL, &e) != RS_OK)
            _exit(4);
        snprintf(line, sizeof(line), "%d %d\n", n, i);
        if (write(fd, line, strlen(line)) < 0)
            _exit(5);
    }
}

START_TEST(test_sigkill_never_loses_acknowledged_writes)
{
    char *dir = tu_temp_dir("coll"), path[600];
    static int version[100000];
    int next = 0, rounds = 24;

    snprintf(path, sizeof(path), "%s/c", dir);
    memset(version, 0xff, sizeof(version));
    srand(4242);
    for (int round = 0; round < rounds; round++) {
        int p[2], status;
        pid_t pid;
        char buf[65536];
        size_t len = 0;
        ssize_t r;
        struct timespec ts = { 0, (long)(5 + rand() % 120) * 1000000L };
        ck_assert_int_eq(pipe(p), 0);
        pid = fork();
        if (pid == 0) {
            close(p[0]);
            crash_writer(path, p[1], next);
        }
        close(p[1]);
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        while ((r = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
            len += (size_t)r;
        close(p[0]);
        buf[len] = '\0';
        for (char *s = buf; *s;) {
            char *nl = strchr(s, '\n');
            int n, i;
            if (nl == NULL)
                break;   /* a line cut by the kill */
            if (sscanf(s, "%d %d", &n, &i) == 2) {
                version[n] = i;
                if (i + 1 > next)
                    next = i + 1;
            }
            s = nl + 1;
        }
        /* reopen: every acknowledged version is there (or a newer one) */
        {
            struct coll *c = open_coll(dir, NULL, 0);
            struct coll_stats st;
            coll_get_stats(c, &st);
            ck_assert_int_eq(st.documents, st.index_vectors);
            for (int n = 0; n < next; n++) {
                struct coll_hit h;
                struct rs_error e;
                char id[32];
                int got_i, got_n;
                if (version[n] < 0)
                    continue;
                snprintf(id, sizeof(id), "doc-%d", n);
                ck_assert_msg(coll_get(c, id, &h, &e) == RS_OK, "round %d: acknowledged %s lost",
                              round, id);
                ck_assert_int_eq(sscanf(h.text, "version %d of %d", &got_i, &got_n), 2);
                ck_assert_int_eq(got_n, n);
                ck_assert_msg(got_i >= version[n], "round %d: %s went back in time", round, id);
                coll_hit_clear(&h);
            }
            next += 1;   /* the writer may have committed one unacknowledged write */
            coll_close(c);
        }
    }
    ck_assert_int_gt(next, rounds);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* Every type the grammar advertises works from an empty collection on:
 * exact search until it can train, reopening at every stage. */
START_TEST(test_index_types)
{
    /* recall floors: random 16-d data is hard for coarse codes (PQ8x4 is
     * 32 bits a vector) and for a PCA that drops half the dimensions */
    static const struct { const char *factory; int trains_at_700; double min_recall; } types[] = {
        { "SQ8", 0, 1.0 }, { "SQ4", 1, 0.8 }, { "SQfp16", 1, 0.95 }, { "HNSW32,SQ8", 0, 1.0 },
        { "PQ8", 0, 1.0 }, { "PQ8x4", 1, 0.6 }, { "PCA8,Flat", 1, 0.15 },
        { "PCAR12,SQ4", 1, 0.3 }, { "PCA12,IVF16,Flat", 1, 0.3 },
        { "OPQ4,IVF16,PQ4x4", 0, 1.0 }, { "IVF16,SQ8", 0, 1.0 }, { "L2norm,Flat", 1, 1.0 },
        { "IDMap2,Flat", 1, 1.0 }, { "HNSW16", 1, 0.9 },
    };

    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        char *dir = tu_temp_dir("coll");
        struct coll *c = open_coll(dir, types[t].factory, 1);
        struct mirror m = mirror_new(700);
        struct coll_stats st;
        float q[DIM];
        struct coll_hit *hits;
        struct rs_error e;
        double r;
        int n;

        random_vec(q);
        ck_assert_int_eq(coll_search(c, q, 5, -2.0f, &hits, &n, &e), RS_OK);
        ck_assert_int_eq(n, 0);
        coll_close(c);
        c = open_coll(dir, NULL, 0);   /* an empty one reopens */
        put_docs(c, &m, 0, 100);
        ck_assert_msg(recall(c, &m, 10, 10) == 1.0, "%s: not exact before training",
                      types[t].factory);
        coll_close(c);
        c = open_coll(dir, NULL, 0);
        ck_assert(recall(c, &m, 10, 10) == 1.0);
        put_docs(c, &m, 100, 700);
        coll_get_stats(c, &st);
        ck_assert_msg(st.trained == types[t].trains_at_700, "%s: trained %d", types[t].factory,
                      st.trained);
        ck_assert_int_eq(st.index_vectors, 700);
        r = recall(c, &m, 20, 10);
        ck_assert_msg(r >= types[t].min_recall, "%s: recall %f", types[t].factory, r);
        coll_close(c);
        c = open_coll(dir, NULL, 0);
        coll_get_stats(c, &st);
        ck_assert_int_eq(st.trained, types[t].trains_at_700);
        ck_assert(recall(c, &m, 20, 10) >= types[t].min_recall);
        coll_close(c);
        mirror_free(&m);
        tu_remove_tree(dir);
        free(dir);
    }
}
END_TEST

/* Types FAISS would crash on, allocate without bound for, or cannot give
 * labels: refused before anything is built, with a sentence and no FAISS
 * internals. */
START_TEST(test_index_types_refused)
{
    static const char *const bad[] = {
        "PQ1x22", "PQ8x9", "PQ3", "PQ32", "PCA64,Flat", "PCA0,Flat", "PCA8", "OPQ3,PQ4",
        "OPQ-W64,Flat", "PCAx,Flat", "OPQ,Flat",   /* a fuzz finding: read a NULL */
        "OPQ4_64,Flat", "IVF16,Flat,RFlat", "HNSW32,Flat,RFlat", "Flat,Refine(Flat)",
        "IVF16", "IVF0,Flat", "IVF65537,Flat", "HNSW1", "HNSW257", "HNSW32,PQ4", "SQ16",
        "SQ8x", "Flat,Flat", "IDMap2", "IVF16,IVF16,Flat", "LSH", ",Flat", "",
    };
    char *dir = tu_temp_dir("coll"), path[600];
    struct coll_options o = { 1, NULL, DIM, "test-model", COLL_FSYNC_ALWAYS, 0, NULL, NULL };
    struct coll *c;
    struct rs_error e;
    struct stat sb;

    snprintf(path, sizeof(path), "%s/c", dir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.factory = bad[i];
        ck_assert_msg(coll_open(&c, path, &o, &e) == RS_EINVAL, "'%s' accepted", bad[i]);
        ck_assert_msg(strstr(e.msg, ".cpp") == NULL && strstr(e.msg, "faiss::") == NULL,
                      "'%s': %s", bad[i], e.msg);
        ck_assert_int_ne(stat(path, &sb), 0);   /* nothing left behind */
    }
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* A search returns min(k, documents) hits whatever the index's recall, and
 * however many replaced labels an HNSW index filters. */
START_TEST(test_search_returns_min_k_live)
{
    char *dir = tu_temp_dir("coll");
    struct coll *c = open_coll(dir, "HNSW32,Flat", 1);
    struct mirror m = mirror_new(1051);
    struct coll_stats st;

    put_docs(c, &m, 0, 1051);
    ck_assert(recall(c, &m, 3, 1000) >= 0.99);   /* recall() asserts the count */
    /* replace 1000 of them: 1000 filtered labels, below the rebuild point */
    put_docs(c, &m, 0, 1000);
    coll_get_stats(c, &st);
    ck_assert_int_eq(st.filtered, 1000);
    ck_assert(recall(c, &m, 20, 10) >= 0.95);
    ck_assert(recall(c, &m, 3, 1051) >= 0.99);
    coll_close(c);
    mirror_free(&m);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* Text is any bytes, U+0000 included, and comes back with its length. */
START_TEST(test_text_with_nul)
{
    static const char text[] = "a\0b\0\xe5\xa4\xa9";   /* 7 bytes */
    char *dir = tu_temp_dir("coll");
    struct coll *c = open_coll(dir, "Flat", 1);
    float v[DIM];
    struct coll_doc d = { "nul", text, NULL, v, sizeof(text) - 1 };
    struct coll_hit h, *hits;
    struct rs_error e;
    int n;

    random_vec(v);
    ck_assert_int_eq(coll_upsert(c, &d, 1, NULL, &e), RS_OK);
    ck_assert_int_eq(coll_get(c, "nul", &h, &e), RS_OK);
    ck_assert_uint_eq(h.text_len, sizeof(text) - 1);
    ck_assert(memcmp(h.text, text, sizeof(text)) == 0);   /* with the NUL after it */
    coll_hit_clear(&h);
    coll_close(c);
    c = open_coll(dir, NULL, 0);
    ck_assert_int_eq(coll_search(c, v, 1, -2.0f, &hits, &n, &e), RS_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(hits[0].text_len, sizeof(text) - 1);
    ck_assert(memcmp(hits[0].text, text, sizeof(text) - 1) == 0);
    coll_hits_free(hits, n);
    /* a NUL-terminated text (length 0) is stored up to its NUL */
    d.text = "plain";
    d.text_len = 0;
    ck_assert_int_eq(coll_upsert(c, &d, 1, NULL, &e), RS_OK);
    ck_assert_int_eq(coll_get(c, "nul", &h, &e), RS_OK);
    ck_assert_uint_eq(h.text_len, 5);
    ck_assert_str_eq(h.text, "plain");
    coll_hit_clear(&h);
    coll_close(c);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* Writers, readers and statistics at once (run under ThreadSanitizer too):
 * every search sees min(k, documents) live hits. */
struct race {
    struct coll *c, *flat;
    const char *dir;
    int id;
    atomic_int stop;
};

static void *
race_writer(void *arg)
{
    struct race *r = arg;
    unsigned seed = (unsigned)r->id;

    for (int i = 0; i < 300; i++) {
        char id[32];
        float v[DIM];
        struct coll_doc d = { id, "t", NULL, v, 0 };
        struct rs_error e;
        for (int j = 0; j < DIM; j++)
            v[j] = (float)rand_r(&seed) / RAND_MAX - 0.5f;
        snprintf(id, sizeof(id), "w%d-%d", r->id, i % 40);
        ck_assert_int_eq(coll_upsert(r->c, &d, 1, NULL, &e), RS_OK);
        if (i % 7 == 6)
            ck_assert_int_eq(coll_delete(r->c, id, NULL, &e), RS_OK);
    }
    return NULL;
}

static void *
race_reader(void *arg)
{
    struct race *r = arg;
    float q[DIM] = { 1, -1, 0.5f };

    while (!atomic_load(&r->stop)) {
        struct coll_hit *hits;
        struct coll_stats st;
        struct rs_error e;
        int n;
        ck_assert_int_eq(coll_search(r->c, q, 10, -2.0f, &hits, &n, &e), RS_OK);
        ck_assert_int_le(n, 10);
        coll_hits_free(hits, n);
        ck_assert_int_eq(coll_search(r->flat, q, 3, -2.0f, &hits, &n, &e), RS_OK);
        ck_assert_int_eq(n, 1);
        coll_hits_free(hits, n);
        coll_get_stats(r->c, &st);
        ck_assert_int_ge(st.seq, st.snapshot_seq);
    }
    return NULL;
}

/* Collections opened while others search (FAISS has process-wide
 * settings). */
static void *
race_opener(void *arg)
{
    struct race *r = arg;

    for (int i = 0; i < 20; i++) {
        char path[600];
        struct coll_options o = { 1, "Flat", DIM, "test-model", COLL_FSYNC_OFF, 0, NULL, NULL };
        struct coll *c;
        struct rs_error e;
        snprintf(path, sizeof(path), "%s/o%d", r->dir, i);
        ck_assert_msg(coll_open(&c, path, &o, &e) == RS_OK, "%s", e.msg);
        coll_close(c);
    }
    return NULL;
}

START_TEST(test_concurrent_writes_and_reads)
{
    char *dir = tu_temp_dir("coll"), path[600];
    struct coll_options o = { 1, "HNSW16", DIM, "test-model", COLL_FSYNC_OFF, 50, NULL, NULL };
    struct race w[2], rd = { 0 };
    pthread_t tw[2], tr[2], to;
    struct coll_stats st;
    struct rs_error e;
    float v[DIM] = { 1 };
    struct coll_doc d = { "one", "t", NULL, v, 0 };

    snprintf(path, sizeof(path), "%s/c", dir);
    ck_assert_msg(coll_open(&rd.c, path, &o, &e) == RS_OK, "%s", e.msg);
    snprintf(path, sizeof(path), "%s/flat", dir);
    o.factory = "Flat";
    ck_assert_msg(coll_open(&rd.flat, path, &o, &e) == RS_OK, "%s", e.msg);
    ck_assert_int_eq(coll_upsert(rd.flat, &d, 1, NULL, &e), RS_OK);
    rd.dir = dir;
    atomic_init(&rd.stop, 0);
    for (int i = 0; i < 2; i++) {
        w[i].c = rd.c;
        w[i].id = i;
        ck_assert_int_eq(pthread_create(&tr[i], NULL, race_reader, &rd), 0);
    }
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&tw[i], NULL, race_writer, &w[i]), 0);
    ck_assert_int_eq(pthread_create(&to, NULL, race_opener, &rd), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(tw[i], NULL);
    pthread_join(to, NULL);
    atomic_store(&rd.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(tr[i], NULL);
    coll_get_stats(rd.c, &st);
    ck_assert_int_eq(st.documents, 2 * 40 - 2 * 5);   /* ids 6, 13, ..., 34 end deleted */
    ck_assert_int_eq(st.seq, 2 * (300 + 300 / 7));
    coll_close(rd.c);
    coll_close(rd.flat);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct slow_reader {
    struct coll *c;
    atomic_int stop;
    double max_latency;
    long searches;
};

static void *
timed_reader(void *arg)
{
    struct slow_reader *r = arg;
    float q[DIM] = { 0.5f, 1, -1 };

    while (!atomic_load(&r->stop)) {
        struct coll_hit *hits;
        struct rs_error e;
        double t0 = now_s();
        int n;
        ck_assert_int_eq(coll_search(r->c, q, 10, -2.0f, &hits, &n, &e), RS_OK);
        ck_assert_int_eq(n, 10);
        coll_hits_free(hits, n);
        if (now_s() - t0 > r->max_latency)
            r->max_latency = now_s() - t0;
        r->searches++;
    }
    return NULL;
}

/* An HNSW index rebuilt for its filtered labels is built aside: searches
 * go on meanwhile instead of waiting for the whole rebuild. */
START_TEST(test_rebuild_does_not_block_searches)
{
    char *dir = tu_temp_dir("coll"), path[600];
    struct coll_options o = { 1, "HNSW32,Flat", DIM, "test-model", COLL_FSYNC_OFF, 0, NULL, NULL };
    struct mirror m = mirror_new(8000);
    struct slow_reader r = { 0 };
    struct coll_stats st;
    struct rs_error e;
    pthread_t t;
    double slowest = 0;

    snprintf(path, sizeof(path), "%s/c", dir);
    ck_assert_msg(coll_open(&r.c, path, &o, &e) == RS_OK, "%s", e.msg);
    put_docs(r.c, &m, 0, 8000);
    atomic_init(&r.stop, 0);
    ck_assert_int_eq(pthread_create(&t, NULL, timed_reader, &r), 0);
    /* replacing 2001 documents passes the rebuild point (> 1000 and > 1/4) */
    for (int i = 0; i < 2048; i += 64) {
        double t0 = now_s();
        put_docs(r.c, &m, i, i + 64);
        if (now_s() - t0 > slowest)
            slowest = now_s() - t0;
    }
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
    coll_get_stats(r.c, &st);
    ck_assert_int_lt(st.filtered, 100);   /* it was rebuilt */
    ck_assert_int_gt(r.searches, 0);
    ck_assert_msg(r.max_latency < slowest / 2, "a search waited %.3f s; the rebuild took %.3f s",
                  r.max_latency, slowest);
    ck_assert(recall(r.c, &m, 20, 10) >= 0.95);
    coll_close(r.c);
    mirror_free(&m);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* The fsync policy by what it does: sync calls per acknowledged write. */
static double
syncs_per_write(int policy, int writes)
{
    char *dir = tu_temp_dir("coll"), path[600];
    struct coll_options o = { 1, "Flat", DIM, "test-model", policy, 0, NULL, NULL };
    struct coll *c;
    struct rs_error e;
    long before;

    snprintf(path, sizeof(path), "%s/c", dir);
    ck_assert_msg(coll_open(&c, path, &o, &e) == RS_OK, "%s", e.msg);
    before = atomic_load(&syncs);
    for (int i = 0; i < writes; i++) {
        char id[32];
        float v[DIM];
        struct coll_doc d = { id, "some text", NULL, v, 0 };
        random_vec(v);
        snprintf(id, sizeof(id), "d%d", i % 50);
        ck_assert_int_eq(coll_upsert(c, &d, 1, NULL, &e), RS_OK);
    }
    before = atomic_load(&syncs) - before;
    coll_close(c);
    tu_remove_tree(dir);
    free(dir);
    return (double)before / writes;
}

START_TEST(test_fsync_policy)
{
    double always = syncs_per_write(COLL_FSYNC_ALWAYS, 400);
    double batch = syncs_per_write(COLL_FSYNC_BATCH, 400);
    double off = syncs_per_write(COLL_FSYNC_OFF, 400);

    fprintf(stderr, "syncs per acknowledged write: always %.3f, batch %.3f, off %.3f\n",
            always, batch, off);
    ck_assert_msg(always >= 1.0, "always: %.3f syncs per write", always);
    ck_assert_msg(batch <= 0.05, "batch: %.3f syncs per write", batch);
    ck_assert_msg(off == 0.0, "off: %.3f syncs per write", off);
}
END_TEST

START_TEST(test_store)
{
    static const char *const bad[] = { "", "../x", ".hidden", "a/b", "-x", "x y",
        "0123456789012345678901234567890123456789012345678901234567890123456789" };
    char *dir = tu_temp_dir("coll"), path[600];
    struct store_options o = { DIM, "test-model", COLL_FSYNC_ALWAYS, 0, "Flat", NULL, NULL, NULL };
    struct store *s;
    struct coll *c;
    struct coll_stats cs;
    struct store_info *info;
    struct rs_error e;
    struct stat st;
    char **names;
    int created, n;

    snprintf(path, sizeof(path), "%s/data", dir);
    ck_assert_int_eq(store_open(&s, path, &o, &e), RS_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(store_create(s, bad[i], NULL, &created, &e), RS_EINVAL);
    ck_assert_int_eq(store_create(s, "faq", NULL, &created, &e), RS_OK);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(store_create(s, "faq", "Flat", &created, &e), RS_OK);
    ck_assert_int_eq(created, 0);
    ck_assert_int_eq(store_create(s, "faq", "HNSW32,Flat", &created, &e), RS_EEXIST);
    ck_assert_int_eq(store_create(s, "q.a_2-b", "HNSW32,Flat", &created, &e), RS_OK);
    ck_assert_int_eq(store_names(s, &names, &n), RS_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(names[0], "faq");
    store_names_free(names, n);
    ck_assert_ptr_null(store_acquire(s, "nope"));
    c = store_acquire(s, "faq");
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(store_drop(s, "faq", &e), RS_OK);
    ck_assert_int_eq(store_drop(s, "faq", &e), RS_ENOTFOUND);
    ck_assert_ptr_null(store_acquire(s, "faq"));
    ck_assert_int_eq(store_create(s, "faq", NULL, &created, &e), RS_EBUSY);
    /* durable when store_drop returns, even while in use */
    snprintf(path, sizeof(path), "%s/data/faq", dir);
    ck_assert_int_ne(stat(path, &st), 0);
    coll_get_stats(c, &cs);                   /* still usable by its holder */
    ck_assert_str_eq(cs.factory, "Flat");
    store_release(s, c);
    store_close(s);
    snprintf(path, sizeof(path), "%s/data", dir);
    ck_assert_int_eq(store_open(&s, path, &o, &e), RS_OK);
    ck_assert_int_eq(store_names(s, &names, &n), RS_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(names[0], "q.a_2-b");
    store_names_free(names, n);
    store_close(s);
    /* another model opens the data directory; the collection is failed */
    o.fingerprint = "other";
    ck_assert_int_eq(store_open(&s, path, &o, &e), RS_OK);
    ck_assert_int_eq(store_list(s, &info, &n), RS_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(info[0].failed, 1);
    ck_assert_ptr_nonnull(strstr(info[0].reason, "built with model test-model"));
    free(info);
    ck_assert_int_eq(store_get(s, "q.a_2-b", &c, &e), RS_EEXIST);
    store_close(s);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* A periodic snapshot that cannot be written loses nothing, but is said. */
static char periodic_report[1200];

static void
note_report(void *arg, const char *collection, const char *what)
{
    (void)arg;
    snprintf(periodic_report, sizeof(periodic_report), "%s: %s", collection, what);
}

START_TEST(test_periodic_snapshot_failure_is_reported)
{
    char *dir = tu_temp_dir("coll"), path[600], tmp[700];
    struct coll_options o = { 1, "Flat", DIM, "test-model", COLL_FSYNC_OFF, 1, note_report,
                              NULL };
    struct coll *c;
    struct rs_error e;
    float v[DIM];
    struct coll_doc d = { "a", "text", NULL, v, 0 };

    snprintf(path, sizeof(path), "%s/faq", dir);
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_OK);
    /* a directory where the snapshot's temporary file goes */
    snprintf(tmp, sizeof(tmp), "%s/index.snap.tmp", path);
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    random_vec(v);
    periodic_report[0] = '\0';
    ck_assert_int_eq(coll_upsert(c, &d, 1, NULL, &e), RS_OK);
    ck_assert_msg(strncmp(periodic_report, "faq: the index snapshot could not be written", 44)
                  == 0, "%s", periodic_report);
    ck_assert_int_eq(rmdir(tmp), 0);
    coll_close(c);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* Whether the directory path was synced since n_synced_dirs was 0. */
static int
was_synced(const char *path)
{
    struct stat st;
    long n = atomic_load(&n_synced_dirs);

    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_lt(n, SYNCED_DIRS);
    for (long i = 0; i < n; i++)
        if (atomic_load(&synced_dir[i]) == (unsigned long)st.st_ino)
            return 1;
    return 0;
}

/* With fsync = always a new collection is on disk when it is created:
 * its directory's entries and its own entry in the data directory, as a
 * drop is. */
START_TEST(test_creation_is_durable)
{
    char *dir = tu_temp_dir("coll"), data[600], path[700];
    struct coll_options co = { 1, "Flat", DIM, "test-model", COLL_FSYNC_ALWAYS, 0, NULL, NULL };
    struct store_options so = { DIM, "test-model", COLL_FSYNC_ALWAYS, 0, "Flat", NULL, NULL, NULL };
    struct store *s;
    struct coll *c;
    struct rs_error e;
    int created;

    snprintf(path, sizeof(path), "%s/c", dir);
    atomic_store(&n_synced_dirs, 0);
    ck_assert_msg(coll_open(&c, path, &co, &e) == RS_OK, "%s", e.msg);
    ck_assert(was_synced(path));
    ck_assert(was_synced(dir));
    coll_close(c);
    /* through the store, the data directory made too */
    snprintf(data, sizeof(data), "%s/data", dir);
    atomic_store(&n_synced_dirs, 0);
    ck_assert_msg(store_open(&s, data, &so, &e) == RS_OK, "%s", e.msg);
    ck_assert(was_synced(dir));
    atomic_store(&n_synced_dirs, 0);
    ck_assert_msg(store_create(s, "faq", "HNSW32", &created, &e) == RS_OK, "%s", e.msg);
    snprintf(path, sizeof(path), "%s/faq", data);
    ck_assert(was_synced(path));
    ck_assert(was_synced(data));
    store_close(s);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* A zero vector has no direction: a search with it is refused, not
 * answered with scores of 0. */
START_TEST(test_zero_query_refused)
{
    char *dir = tu_temp_dir("coll");
    struct coll *c = open_coll(dir, "Flat", 1);
    float v[DIM], zero[DIM] = { 0 };
    struct coll_doc d = { "a", "text", NULL, v, 0 };
    struct coll_hit *hits = NULL;
    struct rs_error e;
    int n = -1;

    random_vec(v);
    ck_assert_int_eq(coll_upsert(c, &d, 1, NULL, &e), RS_OK);
    ck_assert_int_eq(coll_search(c, zero, 5, -2.0f, &hits, &n, &e), RS_EINVAL);
    ck_assert_msg(strstr(e.msg, "zero") != NULL, "%s", e.msg);
    ck_assert_ptr_null(hits);
    ck_assert_int_eq(n, 0);
    zero[3] = -0.0f;   /* a negative zero is no better */
    ck_assert_int_eq(coll_search(c, zero, 5, -2.0f, &hits, &n, &e), RS_EINVAL);
    coll_close(c);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* Scores are cosines: never above 1 or below -1, whatever the rounding
 * of a document searched with its own vector (or its opposite). */
START_TEST(test_scores_within_unit_range)
{
    char *dir = tu_temp_dir("coll");
    struct coll *c = open_coll(dir, "Flat", 1);
    struct mirror m = mirror_new(200);
    float top = -2, bottom = 2;

    put_docs(c, &m, 0, m.n);
    for (int i = 0; i < m.n; i++) {
        float neg[DIM];
        struct coll_hit *hits;
        struct rs_error e;
        int n;
        ck_assert_int_eq(coll_search(c, m.vec[i], 1, -2.0f, &hits, &n, &e), RS_OK);
        ck_assert_int_eq(n, 1);
        ck_assert_msg(hits[0].score <= 1.0f && hits[0].score > 0.9999f, "doc-%d: %.9g", i,
                      (double)hits[0].score);
        top = fmaxf(top, hits[0].score);
        coll_hits_free(hits, n);
        for (int j = 0; j < DIM; j++)
            neg[j] = -m.vec[i][j];
        ck_assert_int_eq(coll_search(c, neg, m.n, -2.0f, &hits, &n, &e), RS_OK);
        ck_assert_msg(hits[n - 1].score >= -1.0f, "doc-%d: %.9g", i, (double)hits[n - 1].score);
        bottom = fminf(bottom, hits[n - 1].score);
        coll_hits_free(hits, n);
    }
    fprintf(stderr, "self-similarity scores up to %.9g, opposite down to %.9g\n", (double)top,
            (double)bottom);
    coll_close(c);
    mirror_free(&m);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

/* Opening with an index type compares what the types build, not how
 * they are spelled. */
START_TEST(test_open_with_equivalent_index_type)
{
    char *dir = tu_temp_dir("coll"), path[600];
    struct coll_options o = { 0, "HNSW32", DIM, "test-model", COLL_FSYNC_OFF, 0, NULL, NULL };
    struct coll *c = open_coll(dir, "HNSW32,Flat", 1);
    struct rs_error e;

    coll_close(c);
    snprintf(path, sizeof(path), "%s/c", dir);
    ck_assert_msg(coll_open(&c, path, &o, &e) == RS_OK, "%s", e.msg);
    coll_close(c);
    o.factory = "IDMap2,HNSW32,Flat";
    ck_assert_msg(coll_open(&c, path, &o, &e) == RS_OK, "%s", e.msg);
    coll_close(c);
    o.factory = "Flat";
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EEXIST);
    o.factory = "HNSW16";
    ck_assert_int_eq(coll_open(&c, path, &o, &e), RS_EEXIST);
    tu_remove_tree(dir);
    free(dir);
}
END_TEST

Suite *
collection_suite(void)
{
    Suite *s = suite_create("collection");
    TCase *tc = tcase_create("store");

    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_flat);
    tcase_add_test(tc, test_hnsw);
    tcase_add_test(tc, test_ivf);
    tcase_add_test(tc, test_snapshot_replay_and_damage);
    tcase_add_test(tc, test_refuses_other_model);
    tcase_add_test(tc, test_disk_full);
    tcase_add_test(tc, test_sigkill_never_loses_acknowledged_writes);
    tcase_add_test(tc, test_store);
    tcase_add_test(tc, test_index_types);
    tcase_add_test(tc, test_index_types_refused);
    tcase_add_test(tc, test_search_returns_min_k_live);
    tcase_add_test(tc, test_text_with_nul);
    tcase_add_test(tc, test_fsync_policy);
    tcase_add_test(tc, test_periodic_snapshot_failure_is_reported);
    tcase_add_test(tc, test_creation_is_durable);
    tcase_add_test(tc, test_zero_query_refused);
    tcase_add_test(tc, test_scores_within_unit_range);
    tcase_add_test(tc, test_open_with_equivalent_index_type);
    suite_add_tcase(s, tc);
    /* threads: alone with CK_RUN_CASE=threads (e.g. under ThreadSanitizer) */
    tc = tcase_create("threads");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_concurrent_writes_and_reads);
    tcase_add_test(tc, test_rebuild_does_not_block_searches);
    suite_add_tcase(s, tc);
    return s;
}
