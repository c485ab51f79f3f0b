/*
 * roformer.c: loading the encoder's weights and running it.
 *
 * Weights are converted once to float32 in the layout the forward pass
 * wants: dense kernels as [in, out] (TF's layout; Hugging Face [out, in]
 * matrices are transposed), q, k and v fused into one [H, 3H] kernel so a
 * layer's projections are one sgemm.  Tensors are looked up by their
 * bert4keras/Google names and, failing that, by the Hugging Face names the
 * converters produce (roformer.* / bert.* / no prefix).
 *
 * A batch is packed, not padded: the rows of all its sequences follow each
 * other, so dense layers (nearly all the work) spend nothing on padding;
 * only attention looks at sequence boundaries.  The forward pass:
 *     x = LN(E_tok[id] + E_seg[seg] (+ E_pos[t]))
 *     per layer:  qkv = x Wqkv + b;  rotate q, k;  a = softmax(q k^T / sqrt(d) + mask) v
 *                 x = LN(x + a Wo + bo);  x = LN(x + gelu(x W1 + b1) W2 + b2)
 *     pool = f(x[CLS] Wp + bp)
 */
#include "roformer_impl.h"

#include <cblas.h>
#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "kernels.h"
#include "weights.h"

/* --- configuration -------------------------------------------------------- */

static int
cfg_int(json_t *root, const char *key, int def, int lo, int hi, int *out, const char *path,
        struct rs_error *e)
{
    json_t *v = json_object_get(root, key);

    if (v == NULL || json_is_null(v)) {
        if (def < 0)
            return rs_error_set(e, RS_EFORMAT, "%s: missing \"%s\"", path, key);
        *out = def;
        return RS_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return rs_error_set(e, RS_EFORMAT, "%s: \"%s\" must be an integer from %d to %d",
                            path, key, lo, hi);
    *out = (int)json_integer_value(v);
    return RS_OK;
}

static int
load_config(struct rf_config *c, const char *dir, struct rs_error *e)
{
    char path[4200];
    json_t *root;
    json_error_t je;
    const char *act = "gelu";
    int rc, emb;

    snprintf(path, sizeof(path), "%s/bert_config.json", dir);
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(path, sizeof(path), "%s/config.json", dir);
        root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    }
    if (root == NULL)
        return rs_error_set(e, RS_ENOTFOUND, "%s: no readable bert_config.json or "
                            "config.json (%s)", dir, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return rs_error_set(e, RS_EFORMAT, "%s: not a JSON object", path);
    }
    if ((rc = cfg_int(root, "vocab_size", -1, 1, 10000000, &c->n_vocab, path, e)) ||
        (rc = cfg_int(root, "hidden_size", -1, 1, 65536, &c->d_model, path, e)) ||
        (rc = cfg_int(root, "num_hidden_layers", -1, 1, 1000, &c->n_layer, path, e)) ||
        (rc = cfg_int(root, "num_attention_heads", -1, 1, 1024, &c->n_head, path, e)) ||
        (rc = cfg_int(root, "intermediate_size", -1, 1, 1 << 20, &c->d_ff, path, e)) ||
        (rc = cfg_int(root, "type_vocab_size", 2, 1, 1000, &c->n_type, path, e)) ||
        (rc = cfg_int(root, "max_position_embeddings", 512, 1, 1 << 20, &c->max_pos, path, e)) ||
        (rc = cfg_int(root, "embedding_size", c->d_model, 1, 65536, &emb, path, e))) {
        json_decref(root);
        return rc;
    }
    if (json_is_string(json_object_get(root, "hidden_act")))
        act = json_string_value(json_object_get(root, "hidden_act"));
    c->ln_eps = 1e-12f;
    c->demo = json_is_true(json_object_get(root, "rosim_demo"));
    if (json_is_number(json_object_get(root, "layer_norm_eps")))
        c->ln_eps = (float)json_number_value(json_object_get(root, "layer_norm_eps"));
    if (strcmp(act, "gelu") != 0) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: hidden_act \"%s\" is not supported (gelu is)",
                          path, act);
    } else if (emb != c->d_model) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: embedding_size %d differs from hidden_size "
                          "%d, which is not supported", path, emb, c->d_model);
    } else if (c->d_model % c->n_head != 0) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: hidden_size %d is not a multiple of "
                          "num_attention_heads (%d)", path, c->d_model, c->n_head);
    }
    json_decref(root);
    return rc;
}

/* --- weights -------------------------------------------------------------- */

static float *
owned_alloc(struct rf_model *m, size_t n)
{
    float *p;

    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        float **o = realloc(m->owned, (size_t)cap * sizeof(*o));
        size_t *l;
        if (o == NULL)
            return NULL;
        m->owned = o;
        l = realloc(m->owned_len, (size_t)cap * sizeof(*l));
        if (l == NULL)
            return NULL;
        m->owned_len = l;
        m->cap_owned = cap;
    }
    p = malloc((n ? n : 1) * sizeof(float));
    if (p != NULL) {
        m->owned_len[m->n_owned] = n;
        m->owned[m->n_owned++] = p;
    }
    return p;
}

/* The Hugging Face name for a bert4keras/Google name, with prefix pfx; sets
 * *transpose for dense kernels.  alt selects gamma/beta over weight/bias. */
static void
hf_name(const char *tf, const char *pfx, int alt, char *out, size_t out_len, int *transpose)
{
    char buf[256];
    size_t n = 0;
    const char *p = tf;

    *transpose = 0;
    if (strncmp(p, "bert/", 5) == 0) {
        n = (size_t)snprintf(buf, sizeof(buf), "%s", pfx);
        p += 5;
    }
    while (*p && n < sizeof(buf) - 32) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        int last = slash == NULL;
        if (len > 6 && strncmp(p, "layer_", 6) == 0) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "layer.%.*s", (int)len - 6, p + 6);
        } else if (last && len == 6 && strncmp(p, "kernel", 6) == 0) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "weight");
            *transpose = 1;
        } else if (last && len == 5 && strncmp(p, "gamma", 5) == 0) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, alt ? "gamma" : "weight");
        } else if (last && len == 4 && strncmp(p, "beta", 4) == 0) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, alt ? "beta" : "bias");
        } else if (last && len == 11 && strncmp(p, "output_bias", 11) == 0) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "bias");
        } else if (last && len > 11 && strncmp(p + len - 11, "_embeddings", 11) == 0) {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%.*s.weight", (int)len, p);
        } else {
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%.*s", (int)len, p);
        }
        if (slash) {
            buf[n++] = '.';
            p = slash + 1;
        } else {
            break;
        }
    }
    buf[n] = '\0';
    snprintf(out, out_len, "%s", buf);
}

static const struct wt_tensor *
find_tensor(const struct wt_set *w, const char *tf, int *transpose)
{
    static const char *const prefixes[] = { "roformer.", "bert.", "" };
    const struct wt_tensor *t = wt_find(w, tf);
    char name[300];

    *transpose = 0;
    if (t != NULL)
        return t;
    for (int alt = 0; alt < 2; alt++) {
        for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
            hf_name(tf, prefixes[i], alt, name, sizeof(name), transpose);
            if ((t = wt_find(w, name)) != NULL)
                return t;
        }
    }
    return NULL;
}

/* Load tensor tf (shape rows x cols in TF layout; cols 0 for a vector) into
 * dst at column offset col0 of a matrix with ld columns. */
static int
load_into(const struct wt_set *w, const char *tf, int rows, int cols, float *dst, int ld,
          int col0, struct rs_error *e)
{
    int transpose;
    const struct wt_tensor *t = find_tensor(w, tf, &transpose);
    int64_t want0 = cols ? (transpose ? cols : rows) : rows, want1 = transpose ? rows : cols;
    float *buf;
    int rc;

    if (t == NULL)
        return rs_error_set(e, RS_EFORMAT, "weights (%s): tensor '%s' is missing",
                            wt_format(w), tf);
    if (t->ndim != (cols ? 2 : 1) || t->shape[0] != want0 || (cols && t->shape[1] != want1))
        return rs_error_set(e, RS_EFORMAT, "weights (%s): tensor '%s' has shape [%lld%s%lld], "
                            "expected [%lld%s%lld]", wt_format(w), t->name,
                            (long long)t->shape[0], t->ndim > 1 ? "," : "",
                            t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)want0,
                            cols ? "," : "", cols ? (long long)want1 : 0LL);
    buf = malloc((size_t)rows * (size_t)(cols ? cols : 1) * sizeof(float));
    if (buf == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    rc = wt_read_f32(w, t, buf, e);
    if (rc == RS_OK) {
        if (!cols) {
            memcpy(dst + col0, buf, (size_t)rows * sizeof(float));
        } else {
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    dst[(size_t)r * (size_t)ld + (size_t)(col0 + c)] =
                        transpose ? buf[(size_t)c * (size_t)rows + (size_t)r]
                                  : buf[(size_t)r * (size_t)cols + (size_t)c];
        }
    }
    free(buf);
    return rc;
}

/* Allocate and load a [rows, cols] matrix or [rows] vector. */
static int
load_new(struct rf_model *m, const struct wt_set *w, const char *tf, int rows, int cols,
         float **dst, struct rs_error *e)
{
    *dst = owned_alloc(m, (size_t)rows * (size_t)(cols ? cols : 1));
    if (*dst == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    return load_into(w, tf, rows, cols, *dst, cols, 0, e);
}

static int
load_weights(struct rf_model *m, const struct wt_set *w, struct rs_error *e)
{
    const struct rf_config *c = &m->cfg;
    const int H = c->d_model, F = c->d_ff;
    char name[256];
    int rc, tr;

    m->layers = calloc((size_t)c->n_layer, sizeof(*m->layers));
    m->pool.in = m->pool.out = H;
    if (m->layers == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    if ((rc = load_new(m, w, "bert/embeddings/word_embeddings", c->n_vocab, H, &m->tok_emb, e)) ||
        (rc = load_new(m, w, "bert/embeddings/token_type_embeddings", c->n_type, H, &m->seg_emb, e)) ||
        (rc = load_new(m, w, "bert/embeddings/LayerNorm/gamma", H, 0, &m->emb_ln_g, e)) ||
        (rc = load_new(m, w, "bert/embeddings/LayerNorm/beta", H, 0, &m->emb_ln_b, e)) ||
        (rc = load_new(m, w, "bert/pooler/dense/kernel", H, H, &m->pool.w, e)) ||
        (rc = load_new(m, w, "bert/pooler/dense/bias", H, 0, &m->pool.b, e)))
        return rc;
    if (find_tensor(w, "bert/embeddings/position_embeddings", &tr) != NULL) {
        m->cfg.arch = RF_ARCH_BERT;
        if ((rc = load_new(m, w, "bert/embeddings/position_embeddings", c->max_pos, H,
                           &m->pos_emb, e)))
            return rc;
    } else {
        m->cfg.arch = RF_ARCH_ROFORMER;
        if ((H / c->n_head) % 2 != 0)
            return rs_error_set(e, RS_EFORMAT, "rotary positions need an even head size, "
                                "not %d", H / c->n_head);
    }
    if (find_tensor(w, "cls/predictions/transform/dense/kernel", &tr) != NULL) {
        m->has_mlm = 1;
        m->mlm.in = m->mlm.out = H;
        if ((rc = load_new(m, w, "cls/predictions/transform/dense/kernel", H, H, &m->mlm.w, e)) ||
            (rc = load_new(m, w, "cls/predictions/transform/dense/bias", H, 0, &m->mlm.b, e)) ||
            (rc = load_new(m, w, "cls/predictions/transform/LayerNorm/gamma", H, 0, &m->mlm_ln_g, e)) ||
            (rc = load_new(m, w, "cls/predictions/transform/LayerNorm/beta", H, 0, &m->mlm_ln_b, e)) ||
            (rc = load_new(m, w, "cls/predictions/output_bias", c->n_vocab, 0, &m->mlm_bias, e)))
            return rc;
    }
    for (int l = 0; l < c->n_layer; l++) {
        struct rf_layer *L = &m->layers[l];
        static const char *const qkv[] = { "query", "key", "value" };
        L->qkv = (struct rf_dense){ owned_alloc(m, (size_t)H * 3 * (size_t)H),
                                    owned_alloc(m, 3 * (size_t)H), NULL, H, 3 * H };
        L->o = (struct rf_dense){ .in = H, .out = H };
        L->ffn1 = (struct rf_dense){ .in = H, .out = F };
        L->ffn2 = (struct rf_dense){ .in = F, .out = H };
        if (L->qkv.w == NULL || L->qkv.b == NULL)
            return rs_error_set(e, RS_ENOMEM, "out of memory");
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof(name), "bert/encoder/layer_%d/attention/self/%s/kernel", l, qkv[k]);
            if ((rc = load_into(w, name, H, H, L->qkv.w, 3 * H, k * H, e)))
                return rc;
            snprintf(name, sizeof(name), "bert/encoder/layer_%d/attention/self/%s/bias", l, qkv[k]);
            if ((rc = load_into(w, name, H, 0, L->qkv.b, 0, k * H, e)))
                return rc;
        }
#define LOAD(field, suffix, rows, cols)                                              \
        snprintf(name, sizeof(name), "bert/encoder/layer_%d/%s", l, suffix);         \
        if ((rc = load_new(m, w, name, rows, cols, &L->field, e)))                   \
            return rc;
        LOAD(o.w, "attention/output/dense/kernel", H, H)
        LOAD(o.b, "attention/output/dense/bias", H, 0)
        LOAD(ln1_g, "attention/output/LayerNorm/gamma", H, 0)
        LOAD(ln1_b, "attention/output/LayerNorm/beta", H, 0)
        LOAD(ffn1.w, "intermediate/dense/kernel", H, F)
        LOAD(ffn1.b, "intermediate/dense/bias", F, 0)
        LOAD(ffn2.w, "output/dense/kernel", F, H)
        LOAD(ffn2.b, "output/dense/bias", H, 0)
        LOAD(ln2_g, "output/LayerNorm/gamma", H, 0)
        LOAD(ln2_b, "output/LayerNorm/beta", H, 0)
#undef LOAD
    }
    return RS_OK;
}

/* "roformer-L12-H768-A12-V12000-" and a 64-bit hash of every weight, in
 * load order (the CRC32C of each buffer, folded FNV-style). */
static void
set_fingerprint(struct rf_model *m)
{
    uint64_t h = FNV64_OFFSET;

    for (int i = 0; i < m->n_owned; i++)
        h = fnv64_step(h, wt_crc32c(0, m->owned[i], m->owned_len[i] * sizeof(float)));
    snprintf(m->fingerprint, sizeof(m->fingerprint), "%s-L%d-H%d-A%d-V%d-%016llx",
             m->cfg.arch == RF_ARCH_BERT ? "bert" : "roformer", m->cfg.n_layer, m->cfg.d_model,
             m->cfg.n_head, m->cfg.n_vocab, (unsigned long long)h);
}

static int convert_weights(struct rf_model *m, enum mm_precision p, struct rs_error *e);

int
rf_model_load(struct rf_model **out, const char *dir, struct rs_error *e)
{
    return rf_model_load_as(out, dir, MM_FP32, e);
}

int
rf_model_load_as(struct rf_model **out, const char *dir, enum mm_precision p,
                 struct rs_error *e)
{
    struct rf_model *m;
    struct wt_set *w = NULL;
    char path[4200];
    int rc;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    if ((rc = load_config(&m->cfg, dir, e)) != RS_OK)
        goto fail;
    snprintf(path, sizeof(path), "%s/vocab.txt", dir);
    if ((rc = tok_vocab_load(&m->vocab, path, e)) != RS_OK)
        goto fail;
    if (tok_vocab_size(m->vocab) > m->cfg.n_vocab) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: %d tokens, but the model has vocab_size %d",
                          path, tok_vocab_size(m->vocab), m->cfg.n_vocab);
        goto fail;
    }
    if ((rc = wt_open_dir(&w, dir, e)) != RS_OK)
        goto fail;
    m->format = wt_format(w);
    if ((rc = load_weights(m, w, e)) != RS_OK)
        goto fail;
    wt_close(w);
    w = NULL;
    set_fingerprint(m);
    if ((rc = convert_weights(m, p, e)) != RS_OK)
        goto fail;
    *out = m;
    return RS_OK;
fail:
    wt_close(w);
    rf_model_free(m);
    return rc;
}

void
rf_model_free(struct rf_model *m)
{
    if (m == NULL)
        return;
    for (int l = 0; m->layers != NULL && l < m->cfg.n_layer; l++) {
        mm_weight_free(m->layers[l].qkv.mm);
        mm_weight_free(m->layers[l].o.mm);
        mm_weight_free(m->layers[l].ffn1.mm);
        mm_weight_free(m->layers[l].ffn2.mm);
    }
    mm_weight_free(m->pool.mm);
    mm_weight_free(m->mlm.mm);
    mm_weight_free(m->logits);
    mm_engine_free(m->mm);
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->owned_len);
    free(m->layers);
    tok_vocab_free(m->vocab);
    free(m);
}

const struct rf_config *rf_model_config(const struct rf_model *m) { return &m->cfg; }
const struct tok_vocab *rf_model_vocab(const struct rf_model *m) { return m->vocab; }
const char *rf_model_format(const struct rf_model *m) { return m->format; }
int rf_model_can_generate(const struct rf_model *m) { return m->has_mlm; }
const char *rf_model_fingerprint(const struct rf_model *m) { return m->fingerprint; }

int
rf_pooler_parse(const char *name)
{
    static const char *const names[] = { "linear", "tanh", "cls", "mean" };
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void
rf_set_threads(int n)
{
    openblas_set_num_threads(n);
    mm_set_threads(n);
}

/* --- precision -------------------------------------------------------------- */

/* Free an fp32 buffer the engine has replaced. */
static void
owned_release(struct rf_model *m, float **p)
{
    for (int i = 0; i < m->n_owned; i++) {
        if (m->owned[i] == *p) {
            free(m->owned[i]);
            m->owned[i] = NULL;
            m->owned_len[i] = 0;
        }
    }
    *p = NULL;
}

static int
convert_dense(struct rf_model *m, struct rf_dense *d, int gelu, struct rs_error *e)
{
    int rc = mm_weight_new(m->mm, d->w, 0, d->in, d->out, d->b, gelu, &d->mm, e);

    if (rc == RS_OK)
        owned_release(m, &d->w);
    return rc;
}

/* Hand the dense layers to the engine in precision p; the fp32 copies go
 * (and their memory back to the system). */
static int
convert_weights(struct rf_model *m, enum mm_precision p, struct rs_error *e)
{
    int rc;

    if ((rc = mm_engine_new(&m->mm, p, e)) != RS_OK)
        return rc;
    m->prec = p;
    if ((rc = convert_dense(m, &m->pool, 0, e)) != RS_OK)
        return rc;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        struct rf_layer *L = &m->layers[l];
        if ((rc = convert_dense(m, &L->qkv, 0, e)) || (rc = convert_dense(m, &L->o, 0, e)) ||
            (rc = convert_dense(m, &L->ffn1, 1, e)) || (rc = convert_dense(m, &L->ffn2, 0, e)))
            return rc;
    }
    if (m->has_mlm &&
        ((rc = convert_dense(m, &m->mlm, 0, e)) ||
         (rc = mm_weight_new(m->mm, m->tok_emb, 1, m->cfg.d_model, m->cfg.n_vocab,
                             m->mlm_bias, 0, &m->logits, e))))
        return rc;
    malloc_trim(0);
    return RS_OK;
}

enum mm_precision rf_model_precision(const struct rf_model *m) { return m->prec; }

const char *
rf_model_kernel(const struct rf_model *m)
{
    return mm_engine_kernel(m->mm);
}

size_t
rf_model_weight_bytes(const struct rf_model *m)
{
    size_t n = 0;

    for (int i = 0; i < m->n_owned; i++)
        n += m->owned_len[i] * sizeof(float);
    n += mm_weight_bytes(m->pool.mm);
    for (int l = 0; l < m->cfg.n_layer; l++)
        n += mm_weight_bytes(m->layers[l].qkv.mm) + mm_weight_bytes(m->layers[l].o.mm) +
             mm_weight_bytes(m->layers[l].ffn1.mm) + mm_weight_bytes(m->layers[l].ffn2.mm);
    if (m->has_mlm)
        n += mm_weight_bytes(m->mlm.mm) + mm_weight_bytes(m->logits);
    return n;
}

int
rf_dense(const struct rf_dense *d, struct mm_ctx *c, const float *x, int n, float *y,
         struct rs_error *e)
{
    return mm_dense(c, d->mm, x, n, y, e);
}

int
rf_ffn(const struct rf_layer *L, struct mm_ctx *c, const float *x, int n, float *y,
       struct rs_error *e)
{
    return mm_ffn(c, L->ffn1.mm, L->ffn2.mm, x, n, y, e);
}

struct mm_ctx *
rf_mm_ctx_new(const struct rf_model *m, int rows)
{
    const int k = m->cfg.d_ff > m->cfg.d_model ? m->cfg.d_ff : m->cfg.d_model;
    return mm_ctx_new(m->mm, rows, k);
}

/* --- scratch -------------------------------------------------------------- */

struct rf_state *
rf_state_new(const struct rf_model *m, int max_batch, int max_len)
{
    const struct rf_config *c = &m->cfg;
    const size_t H = (size_t)c->d_model, d = H / (size_t)c->n_head;
    size_t rows = (size_t)max_batch * (size_t)max_len;
    struct rf_state *s = calloc(1, sizeof(*s));

    if (s == NULL || max_batch < 1 || max_len < 1)
        goto fail;
    s->max_batch = max_batch;
    s->max_len = max_len;
    s->d_model = (int)H;
    s->x = malloc(rows * H * sizeof(float));
    s->qkv = malloc(rows * 3 * H * sizeof(float));
    s->att = malloc(rows * H * sizeof(float));
    s->tmp = malloc(rows * H * sizeof(float));
    s->n_scores = mm_threads();
    s->scores = malloc((size_t)s->n_scores * (size_t)max_len * (size_t)max_len * sizeof(float));
    s->rope_sin = malloc((size_t)max_len * d / 2 * sizeof(float));
    s->rope_cos = malloc((size_t)max_len * d / 2 * sizeof(float));
    s->tokens = malloc(rows * sizeof(int32_t));
    s->pos = malloc(rows * sizeof(int));
    s->cum_seg = malloc(rows * sizeof(int));
    s->start = malloc(((size_t)max_batch + 1) * sizeof(int));
    s->mm = rf_mm_ctx_new(m, (int)rows);
    if (!s->mm || !s->x || !s->qkv || !s->att || !s->tmp || !s->scores || !s->rope_sin ||
        !s->rope_cos || !s->tokens || !s->pos || !s->cum_seg || !s->start)
        goto fail;
    k_rope_tables(s->rope_sin, s->rope_cos, max_len, (int)d);
    return s;
fail:
    rf_state_free(s);
    return NULL;
}

void
rf_state_free(struct rf_state *s)
{
    if (s == NULL)
        return;
    free(s->x);
    free(s->qkv);
    free(s->att);
    free(s->tmp);
    free(s->scores);
    free(s->rope_sin);
    free(s->rope_cos);
    free(s->tokens);
    free(s->pos);
    free(s->cum_seg);
    free(s->start);
    mm_ctx_free(s->mm);
    free(s);
}

const float *
rf_state_hidden(const struct rf_state *s, int i)
{
    return s->x + (size_t)s->start[i] * (size_t)(s->d_model);
}

/* --- the encoder ---------------------------------------------------------- */

/* Rotate q and k of every row by its position. */
static void
rope_rows(struct rf_state *s, int rows, int H, int d)
{
#pragma omp parallel for num_threads(mm_threads()) schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *sn = s->rope_sin + (size_t)s->pos[r] * (size_t)d / 2;
        const float *cs = s->rope_cos + (size_t)s->pos[r] * (size_t)d / 2;
        float *qk = s->qkv + (size_t)r * 3 * (size_t)H;
        k_rope(qk, H, d, sn, cs);
        k_rope(qk + H, H, d, sn, cs);
    }
}

/* Mask the scores of query i of a sequence (row of T keys) as bert4keras
 * does: [PAD] keys after position 0, and keys later in the UniLM order. */
static void
mask_row(float *row, int i, const int32_t *tok, const int *cum, int T)
{
    for (int j = 0; j < T; j++)
        if ((tok[j] == 0 && j != 0) || cum[j] > cum[i])
            row[j] = -INFINITY;
}

/* att = softmax(q k^T / sqrt(d) + mask) v for every sequence and head:
 * two small sgemms per head over strided views of the qkv rows, and the
 * masked softmax in between.  The (sequence, head) pairs are spread over
 * the threads, each with its own scores. */
static void
attention(struct rf_state *s, int B, int H, int n_head)
{
    const int d = H / n_head, ld = 3 * H, threads = mm_threads();
    const float scale = 1.0f / sqrtf((float)d);

#pragma omp parallel for num_threads(threads < s->n_scores ? threads : s->n_scores) \
    schedule(dynamic)
    for (int bh = 0; bh < B * n_head; bh++) {
        const int b = bh / n_head, h = bh % n_head;
        const int T = s->start[b + 1] - s->start[b];
        const int32_t *tok = s->tokens + s->start[b];
        const float *q = s->qkv + (size_t)s->start[b] * (size_t)ld + (size_t)h * (size_t)d;
        const float *k = q + H, *v = q + 2 * H;
        float *out = s->att + (size_t)s->start[b] * (size_t)H + (size_t)h * (size_t)d;
        float *sc = s->scores + (size_t)omp_get_thread_num() * (size_t)s->max_len *
                                    (size_t)s->max_len;
        /* S (T,T) = scale * Q (T,d) K^T (d,T) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                    T, T, d,
                    scale, q, ld,
                    k, ld,
                    0.0f, sc, T);
        for (int i = 0; i < T; i++) {
            mask_row(sc + (size_t)i * (size_t)T, i, tok, s->cum_seg + s->start[b], T);
            k_softmax(sc + (size_t)i * (size_t)T, T);
        }
        /* O (T,d) = P (T,T) V (T,d) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                    T, d, T,
                    1.0f, sc, T,
                    v, ld,
                    0.0f, out, H);
    }
}

void
rf_layer_norm(float *x, const float *r, int n, int H, const float *g, const float *b,
              float eps)
{
    const int threads = mm_threads();

#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) {
        const int lo = (int)((long)n * t / threads), hi = (int)((long)n * (t + 1) / threads);
        if (hi > lo)
            k_add_layer_norm(x + (size_t)lo * (size_t)H, r ? r + (size_t)lo * (size_t)H : NULL,
                             hi - lo, H, g, b, eps);
    }
}

void
rf_gelu(float *x, int n, int cols)
{
    const int threads = mm_threads();

#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) {
        const int lo = (int)((long)n * t / threads), hi = (int)((long)n * (t + 1) / threads);
        if (hi > lo)
            k_gelu(x + (size_t)lo * (size_t)cols, (size_t)(hi - lo) * (size_t)cols);
    }
}

/* --- the forward pass ------------------------------------------------------ */

int
rf_forward(const struct rf_model *m, struct rf_state *s, const int32_t *const *ids,
           const int32_t *const *segs, const int *lens, int n, float *cache_k,
           float *cache_v, struct rs_error *e)
{
    const struct rf_config *c = &m->cfg;
    const int H = c->d_model, d = H / c->n_head;
    int rows = 0, rc;

    if (n < 1 || n > s->max_batch)
        return rs_error_set(e, RS_EINVAL, "batch of %d sequences (capacity %d)", n, s->max_batch);
    for (int b = 0; b < n; b++) {
        if (lens[b] < 1 || lens[b] > s->max_len)
            return rs_error_set(e, RS_EINVAL, "sequence of %d tokens (capacity %d)",
                                lens[b], s->max_len);
        if (c->arch == RF_ARCH_BERT && lens[b] > c->max_pos)
            return rs_error_set(e, RS_EINVAL, "sequence of %d tokens is longer than the "
                                "model's %d positions", lens[b], c->max_pos);
        for (int t = 0; t < lens[b]; t++) {
            if (ids[b][t] < 0 || ids[b][t] >= c->n_vocab)
                return rs_error_set(e, RS_EINVAL, "token id %d outside the vocabulary",
                                    ids[b][t]);
            if (segs != NULL && (segs[b][t] < 0 || segs[b][t] >= c->n_type))
                return rs_error_set(e, RS_EINVAL, "segment id %d outside 0..%d",
                                    segs[b][t], c->n_type - 1);
        }
    }

    /* embeddings of the packed batch */
    for (int b = 0; b < n; b++) {
        int cum = 0;
        s->start[b] = rows;
        for (int t = 0; t < lens[b]; t++, rows++) {
            int seg = segs != NULL ? segs[b][t] : 0;
            float *x = s->x + (size_t)rows * (size_t)H;
            const float *te = m->tok_emb + (size_t)ids[b][t] * (size_t)H;
            const float *se = m->seg_emb + (size_t)seg * (size_t)H;
            s->tokens[rows] = ids[b][t];
            s->pos[rows] = t;
            s->cum_seg[rows] = cum += seg;
            for (int j = 0; j < H; j++)
                x[j] = te[j] + se[j];
            if (m->pos_emb != NULL)
                for (int j = 0; j < H; j++)
                    x[j] += m->pos_emb[(size_t)t * (size_t)H + (size_t)j];
        }
    }
    s->start[n] = rows;
    rf_layer_norm(s->x, NULL, rows, H, m->emb_ln_g, m->emb_ln_b, c->ln_eps);

    for (int l = 0; l < c->n_layer; l++) {
        const struct rf_layer *L = &m->layers[l];
        if ((rc = rf_dense(&L->qkv, s->mm, s->x, rows, s->qkv, e)))
            return rc;
        if (c->arch == RF_ARCH_ROFORMER)
            rope_rows(s, rows, H, d);
        if (cache_k != NULL) {
            for (int r = 0; r < rows; r++) {
                size_t at = ((size_t)l * (size_t)rows + (size_t)r) * (size_t)H;
                const float *qkv = s->qkv + (size_t)r * 3 * (size_t)H;
                memcpy(cache_k + at, qkv + H, (size_t)H * sizeof(float));
                memcpy(cache_v + at, qkv + 2 * H, (size_t)H * sizeof(float));
            }
        }
        attention(s, n, H, c->n_head);
        if ((rc = rf_dense(&L->o, s->mm, s->att, rows, s->tmp, e)))
            return rc;
        rf_layer_norm(s->x, s->tmp, rows, H, L->ln1_g, L->ln1_b, c->ln_eps);
        if ((rc = rf_ffn(L, s->mm, s->x, rows, s->tmp, e)))
            return rc;
        rf_layer_norm(s->x, s->tmp, rows, H, L->ln2_g, L->ln2_b, c->ln_eps);
    }
    return RS_OK;
}

int
rf_mlm_probs(const struct rf_model *m, struct mm_ctx *c, const float *x, int n, float *h,
             float *probs, struct rs_error *e)
{
    const int H = m->cfg.d_model, V = m->cfg.n_vocab;
    int rc;

    if ((rc = rf_dense(&m->mlm, c, x, n, h, e)))
        return rc;
    rf_gelu(h, n, H);
    rf_layer_norm(h, NULL, n, H, m->mlm_ln_g, m->mlm_ln_b, m->cfg.ln_eps);
    /* logits (n, V) = h (n, H) E_tok^T (H, V) + bias: the tied embeddings */
    if ((rc = mm_dense(c, m->logits, h, n, probs, e)))
        return rc;
#pragma omp parallel for num_threads(mm_threads()) schedule(static)
    for (int r = 0; r < n; r++)
        k_softmax(probs + (size_t)r * (size_t)V, V);
    return RS_OK;
}

int
rf_encode(const struct rf_model *m, struct rf_state *s, const int32_t *const *ids,
          const int *lens, int n, enum rf_pooler pooler, float *out, struct rs_error *e)
{
    const int H = m->cfg.d_model;
    int rc = rf_forward(m, s, ids, NULL, lens, n, NULL, NULL, e);

    if (rc != RS_OK)
        return rc;
    if (pooler == RF_POOL_LINEAR || pooler == RF_POOL_TANH) {
        /* the [CLS] rows, gathered, through the pooler's dense layer */
        for (int b = 0; b < n; b++)
            memcpy(s->tmp + (size_t)b * (size_t)H, s->x + (size_t)s->start[b] * (size_t)H,
                   (size_t)H * sizeof(float));
        if ((rc = rf_dense(&m->pool, s->mm, s->tmp, n, out, e)) != RS_OK)
            return rc;
        for (size_t j = 0; pooler == RF_POOL_TANH && j < (size_t)n * (size_t)H; j++)
            out[j] = tanhf(out[j]);
        return RS_OK;
    }
    for (int b = 0; b < n; b++) {
        const float *cls = s->x + (size_t)s->start[b] * (size_t)H;
        float *o = out + (size_t)b * (size_t)H;
        if (pooler == RF_POOL_CLS) {
            memcpy(o, cls, (size_t)H * sizeof(float));
        } else if (pooler == RF_POOL_MEAN) {
            memset(o, 0, (size_t)H * sizeof(float));
            for (int t = 0; t < lens[b]; t++)
                for (int j = 0; j < H; j++)
                    o[j] += cls[(size_t)t * (size_t)H + (size_t)j];
            for (int j = 0; j < H; j++)
                o[j] /= (float)lens[b];
        }
    }
    return RS_OK;
}
