/*
 * crash_drill.c: rosimd under concurrent upserts, killed with SIGKILL at
 * random moments, restarted, and checked: every acknowledged document is
 * there, store and index agree, and how long each restart took.
 *
 *   build/drill_crash [ROUNDS]        (default 50; run from the repository)
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../testutil.h"

#define WRITERS 8
#define MAX_DOCS 200000

static struct tu_daemon d;
static atomic_int stop_writers;
static atomic_int next_id;
static unsigned char acked[MAX_DOCS];

static void *
writer(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_writers)) {
        int id = atomic_fetch_add(&next_id, 1);
        char body[256];
        struct tu_response r;
        if (id >= MAX_DOCS)
            break;
        snprintf(body, sizeof(body),
                 "{\"documents\":[{\"id\":\"d%d\",\"text\":\"文档 %d 的内容\",\"meta\":{\"n\":%d}}]}",
                 id, id, id);
        if (tu_http(d.port, "POST", "/v1/collections/drill/documents", "application/json",
                    body, strlen(body), &r) == 0 && r.status == 200)
            acked[id] = 1;   /* acknowledged: must survive */
        tu_response_free(&r);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 50, failures = 0;
    char data[] = "/tmp/rosim-drill-XXXXXX";
    const char *extra[] = { "--model", "tests/fixtures/roformer-sim-tiny", "--data", data,
                            "-o", "storage.snapshot_every=500", NULL };
    double worst_start = 0, total_start = 0;

    if (mkdtemp(data) == NULL)
        return 1;
    srand((unsigned)time(NULL));
    for (int round = 0; round <= rounds; round++) {   /* the last start only checks */
        pthread_t t[WRITERS];
        struct tu_response r;
        struct timespec nap;
        double t0 = tu_now(), started;
        long documents = -1, vectors = -2;
        int missing = 0;

        if (tu_daemon_start(&d, extra) != 0) {
            fprintf(stderr, "round %d: rosimd did not start\n", round);
            return 1;
        }
        started = tu_now() - t0;
        total_start += started;
        if (started > worst_start)
            worst_start = started;
        /* every acknowledged document of earlier rounds is there */
        for (int id = 0; id < atomic_load(&next_id) && id < MAX_DOCS; id++) {
            char path[64];
            if (!acked[id])
                continue;
            snprintf(path, sizeof(path), "/v1/collections/drill/documents/d%d", id);
            if (tu_http(d.port, "GET", path, NULL, NULL, 0, &r) != 0 || r.status != 200)
                missing++;
            tu_response_free(&r);
        }
        if (tu_http(d.port, "GET", "/v1/collections/drill", NULL, NULL, 0, &r) == 0 && r.status == 200) {
            json_error_t je;
            json_t *j = json_loads(r.body, 0, &je);
            documents = (long)json_integer_value(json_object_get(j, "documents"));
            vectors = (long)json_integer_value(json_object_get(j, "index_vectors"));
            json_decref(j);
        } else if (round == 0) {
            tu_response_free(&r);
            tu_http(d.port, "PUT", "/v1/collections/drill", NULL, NULL, 0, &r);
            documents = vectors = 0;
        }
        tu_response_free(&r);
        if (missing > 0 || documents != vectors) {
            fprintf(stderr, "round %d: %d acknowledged documents missing; documents %ld, "
                    "index vectors %ld\n", round, missing, documents, vectors);
            failures++;
        }
        printf("round %2d: restart %.2f s, %ld documents, %d acknowledged missing\n", round,
               started, documents, missing);
        fflush(stdout);
        if (round == rounds) {
            if (tu_daemon_stop(&d) != 0)
                failures++;
            break;
        }
        /* write under load, then kill at a random moment */
        atomic_store(&stop_writers, 0);
        for (int i = 0; i < WRITERS; i++)
            pthread_create(&t[i], NULL, writer, NULL);
        nap.tv_sec = 0;
        nap.tv_nsec = (long)(100 + rand() % 900) * 1000000L;
        nanosleep(&nap, NULL);
        kill(d.pid, SIGKILL);
        waitpid(d.pid, NULL, 0);
        unlink(d.log_path);
        atomic_store(&stop_writers, 1);
        for (int i = 0; i < WRITERS; i++)
            pthread_join(t[i], NULL);
    }
    printf("%d kills, %d failed checks; restart mean %.2f s, worst %.2f s\n", rounds, failures,
           total_start / (rounds + 1), worst_start);
    {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", data);
        if (system(cmd) != 0)
            return 1;
    }
    return failures == 0 ? 0 : 1;
}
