/*
 * fuzz_weights.c: a weight reader on arbitrary files; built once per reader
 * with WEIGHTS_FORMAT 0 (TF index, with the tiny model's real data shard
 * beside it), 1 (safetensors) or 2 (PyTorch zip).  The first byte of an
 * input names the format its seed was made for and is skipped.  Every
 * tensor that opens is read.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../model/weights.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *dir;

static void
setup(void)
{
    char cmd[256];
    dir = fuzz_scratch_path("w");
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp tests/fixtures/roformer-sim-tiny/"
             "bert_model.ckpt.data-00000-of-00001 %s/m.data-00000-of-00001", dir, dir);
    if (system(cmd) != 0)
        abort();
}

static void
write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    struct wt_set *w = NULL;
    struct rs_error e;
    int rc;

    if (dir == NULL)
        setup();
    if (size == 0)
        return 0;
    switch (WEIGHTS_FORMAT) {
    case 0:
        snprintf(path, sizeof(path), "%s/m.index", dir);
        write_file(path, data + 1, size - 1);
        snprintf(path, sizeof(path), "%s/m", dir);
        rc = wt_open_tf(&w, path, &e);
        break;
    case 1:
        snprintf(path, sizeof(path), "%s/m.safetensors", dir);
        write_file(path, data + 1, size - 1);
        rc = wt_open_safetensors(&w, path, &e);
        break;
    default:
        snprintf(path, sizeof(path), "%s/m.bin", dir);
        write_file(path, data + 1, size - 1);
        rc = wt_open_torch(&w, path, &e);
        break;
    }
    if (rc == RS_OK) {
        for (int i = 0; i < wt_count(w); i++) {
            const struct wt_tensor *t = wt_at(w, i);
            int64_t n = wt_numel(t);
            if (n >= 0 && n < (1 << 22)) {
                float *buf = malloc((size_t)(n ? n : 1) * sizeof(float));
                if (buf != NULL)
                    wt_read_f32(w, t, buf, &e);
                free(buf);
            }
        }
        wt_close(w);
    }
    return 0;
}
