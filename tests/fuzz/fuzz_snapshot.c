/*
 * fuzz_snapshot.c: opening a collection whose index snapshot is arbitrary
 * bytes.  The collection must open (from the snapshot or by a rebuild from
 * its database) and answer a search with all its documents.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../index/collection.h"
#include "fuzz.h"

#define DIM 16
#define DOCS 20

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *dir;

static void
setup(void)
{
    struct coll_options o = { 1, "Flat", DIM, "fuzz", COLL_FSYNC_OFF, 0, NULL, NULL };
    struct coll *c;
    struct rs_error e;

    dir = fuzz_scratch_path("s");
    if (coll_open(&c, dir, &o, &e) != RS_OK)
        abort();
    for (int i = 0; i < DOCS; i++) {
        char id[16];
        float v[DIM];
        struct coll_doc d = { id, "text", NULL, v, 0 };
        snprintf(id, sizeof(id), "d%d", i);
        for (int j = 0; j < DIM; j++)
            v[j] = (float)((i * 7 + j * 3) % 11) - 5.0f;
        if (coll_upsert(c, &d, 1, NULL, &e) != RS_OK)
            abort();
    }
    coll_close(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct coll_options o = { 0, NULL, DIM, "fuzz", COLL_FSYNC_OFF, 0, NULL, NULL };
    char path[128];
    struct coll *c;
    struct coll_hit *hits;
    struct rs_error e;
    float q[DIM] = { 1 };
    FILE *f;
    int n;

    if (dir == NULL)
        setup();
    snprintf(path, sizeof(path), "%s/index.snap", dir);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    if (coll_open(&c, dir, &o, &e) != RS_OK)
        abort();
    if (coll_search(c, q, DOCS, -2.0f, &hits, &n, &e) != RS_OK || n != DOCS)
        abort();   /* whatever the snapshot held, every document is found */
    coll_hits_free(hits, n);
    coll_close(c);
    return 0;
}
