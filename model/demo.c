/*
 * demo.c: writing the random demo model (see demo.h).
 */
#include "demo.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define L 6
#define H 384
#define A 6
#define F 1536

struct tensor {
    char name[96];
    int rows, cols;   /* cols 0: a vector of rows */
    int kind;         /* 0 random, 1 ones, 2 zeros */
};

static uint64_t
next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float
normal(uint64_t *s)
{
    double u1 = ((double)(next(s) >> 11) + 1) * 0x1.0p-53, u2 = (double)(next(s) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

static int
count_lines(const char *path, int *n)
{
    FILE *f = fopen(path, "r");
    int ch, lines = 0, last = '\n';

    if (f == NULL)
        return -1;
    while ((ch = fgetc(f)) != EOF) {
        lines += ch == '\n';
        last = ch;
    }
    lines += last != '\n';
    fclose(f);
    *n = lines;
    return 0;
}

static int
copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = 0;

    if (in == NULL || out == NULL)
        rc = -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

int
rf_demo_write(const char *dir, const char *vocab_path, uint64_t seed, struct rs_error *e)
{
    struct tensor *t = calloc(16 * L + 16, sizeof(*t));
    char tmp[4200] = "", path[4300], *header = NULL;
    size_t hlen = 0, hcap = 1 << 16, off = 0;
    float *buf = NULL;
    FILE *f = NULL;
    int V, n = 0, rc = RS_OK;

    if (t == NULL || (header = malloc(hcap)) == NULL) {
        free(t);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    if (count_lines(vocab_path, &V) != 0 || V < 5) {
        rc = rs_error_set(e, RS_EIO, "%s: cannot read the vocabulary for the demo model",
                          vocab_path);
        goto done;
    }
#define ADD(r, c, k, ...) do { snprintf(t[n].name, sizeof(t[n].name), __VA_ARGS__); \
        t[n].rows = (r); t[n].cols = (c); t[n].kind = (k); n++; } while (0)
    ADD(V, H, 0, "roformer.embeddings.word_embeddings.weight");
    ADD(2, H, 0, "roformer.embeddings.token_type_embeddings.weight");
    ADD(H, 0, 1, "roformer.embeddings.LayerNorm.weight");
    ADD(H, 0, 2, "roformer.embeddings.LayerNorm.bias");
    for (int l = 0; l < L; l++) {
        static const char *const qkv[] = { "query", "key", "value" };
        for (int k = 0; k < 3; k++) {
            ADD(H, H, 0, "roformer.encoder.layer.%d.attention.self.%s.weight", l, qkv[k]);
            ADD(H, 0, 0, "roformer.encoder.layer.%d.attention.self.%s.bias", l, qkv[k]);
        }
        ADD(H, H, 0, "roformer.encoder.layer.%d.attention.output.dense.weight", l);
        ADD(H, 0, 0, "roformer.encoder.layer.%d.attention.output.dense.bias", l);
        ADD(H, 0, 1, "roformer.encoder.layer.%d.attention.output.LayerNorm.weight", l);
        ADD(H, 0, 2, "roformer.encoder.layer.%d.attention.output.LayerNorm.bias", l);
        ADD(F, H, 0, "roformer.encoder.layer.%d.intermediate.dense.weight", l);
        ADD(F, 0, 0, "roformer.encoder.layer.%d.intermediate.dense.bias", l);
        ADD(H, F, 0, "roformer.encoder.layer.%d.output.dense.weight", l);
        ADD(H, 0, 0, "roformer.encoder.layer.%d.output.dense.bias", l);
        ADD(H, 0, 1, "roformer.encoder.layer.%d.output.LayerNorm.weight", l);
        ADD(H, 0, 2, "roformer.encoder.layer.%d.output.LayerNorm.bias", l);
    }
    ADD(H, H, 0, "roformer.pooler.dense.weight");
    ADD(H, 0, 0, "roformer.pooler.dense.bias");
    ADD(H, H, 0, "cls.predictions.transform.dense.weight");
    ADD(H, 0, 0, "cls.predictions.transform.dense.bias");
    ADD(H, 0, 1, "cls.predictions.transform.LayerNorm.weight");
    ADD(H, 0, 2, "cls.predictions.transform.LayerNorm.bias");
    ADD(V, 0, 0, "cls.predictions.bias");
#undef ADD

    hlen = (size_t)snprintf(header, hcap, "{");
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1) * 4;
        if (t[i].cols)
            hlen += (size_t)snprintf(header + hlen, hcap - hlen,
                                     "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
                                     "\"data_offsets\":[%zu,%zu]}", i ? "," : "", t[i].name,
                                     t[i].rows, t[i].cols, off, off + bytes);
        else
            hlen += (size_t)snprintf(header + hlen, hcap - hlen,
                                     "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],"
                                     "\"data_offsets\":[%zu,%zu]}", i ? "," : "", t[i].name,
                                     t[i].rows, off, off + bytes);
        off += bytes;
    }
    hlen += (size_t)snprintf(header + hlen, hcap - hlen, "}");
    while (hlen % 8 != 0)
        header[hlen++] = ' ';

    /* parents first, as mkdir -p */
    snprintf(path, sizeof(path), "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp-%d", dir, (int)getpid());
    if (mkdir(tmp, 0755) != 0) {
        rc = rs_error_set(e, errno == ENOSPC ? RS_ENOSPC : RS_EIO, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", tmp);
    f = fopen(path, "wb");
    buf = malloc((size_t)V * H * sizeof(float));
    if (f == NULL || buf == NULL) {
        rc = rs_error_set(e, RS_EIO, "%s: cannot write", path);
        goto done;
    }
    {
        uint64_t len = hlen;
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (unsigned char)(len >> (8 * i));
        if (fwrite(le, 1, 8, f) != 8 || fwrite(header, 1, hlen, f) != hlen)
            rc = RS_EIO;
    }
    for (int i = 0; i < n && rc == RS_OK; i++) {
        size_t count = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        for (size_t k = 0; k < count; k++)
            buf[k] = t[i].kind == 1 ? 1.0f : t[i].kind == 2 ? 0.0f : 0.02f * normal(&seed);
        if (fwrite(buf, sizeof(float), count, f) != count)
            rc = RS_EIO;
    }
    if (fclose(f) != 0)
        rc = RS_EIO;
    f = NULL;
    if (rc != RS_OK) {
        rc = rs_error_set(e, RS_EIO, "%s: cannot write: %s", path, strerror(errno));
        goto done;
    }
    snprintf(path, sizeof(path), "%s/config.json", tmp);
    f = fopen(path, "w");
    if (f == NULL || fprintf(f, "{\"model_type\": \"roformer\", \"vocab_size\": %d, "
                             "\"hidden_size\": %d, \"num_hidden_layers\": %d, "
                             "\"num_attention_heads\": %d, \"intermediate_size\": %d, "
                             "\"hidden_act\": \"gelu\", \"type_vocab_size\": 2, "
                             "\"max_position_embeddings\": 512, \"layer_norm_eps\": 1e-12, "
                             "\"rosim_demo\": true}\n", V, H, L, A, F) < 0 || fclose(f) != 0) {
        f = NULL;
        rc = rs_error_set(e, RS_EIO, "%s: cannot write", path);
        goto done;
    }
    f = NULL;
    snprintf(path, sizeof(path), "%s/vocab.txt", tmp);
    if (copy_file(vocab_path, path) != 0) {
        rc = rs_error_set(e, RS_EIO, "%s: cannot copy the vocabulary", path);
        goto done;
    }
    if (rename(tmp, dir) != 0)
        rc = rs_error_set(e, RS_EIO, "%s: %s", dir, strerror(errno));
done:
    if (f)
        fclose(f);
    if (rc != RS_OK && tmp[0] != '\0') {
        static const char *const files[] = { "model.safetensors", "config.json", "vocab.txt" };
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof(path), "%s/%s", tmp, files[i]);
            unlink(path);
        }
        rmdir(tmp);
    }
    free(buf);
    free(header);
    free(t);
    return rc;
}
