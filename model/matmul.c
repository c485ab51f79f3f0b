/*
 * matmul.c: the oneDNN matmul engine (see matmul.h).
 *
 * A shape (K, N, bias or not) gets its weight layout from a primitive
 * descriptor made with "any" weights at 64 rows; every row count class of
 * that shape then builds its primitive against exactly that layout, so one
 * reordered copy of each weight serves all of them.  Primitives use a
 * user scratchpad, which lives in the caller's mm_ctx: a primitive can run
 * on several threads at once, each with its own scratch.
 */
#include "matmul.h"

#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define SMALL_ROWS 64                  /* row counts 1..64 get their own class */
#define MAX_CHUNK 4096                 /* larger products run in chunks of this at most */
#define N_CLASSES (SMALL_ROWS + MAX_CHUNK / SMALL_ROWS - 1)

struct mm_shape {
    int K, N, has_bias;
    int gelu;                          /* GELU after the bias (a post-op) */
    dnnl_memory_desc_t wmd;            /* the weights' blocked layout */
    dnnl_primitive_t prim[N_CLASSES];  /* made on first use */
    dnnl_memory_desc_t scratch_md[N_CLASSES];
};

struct mm_engine {
    enum mm_precision prec;
    dnnl_engine_t eng;
    pthread_mutex_t lock;              /* guards shapes and their primitives */
    struct mm_shape **shapes;
    int n_shapes;
    char kernel[64];
};

struct mm_weight {
    struct mm_engine *g;
    struct mm_shape *shape;
    dnnl_memory_t w;                   /* reordered weights, owned */
    dnnl_memory_t bias;                /* bf16: the bias as a primitive argument */
    float *b;                          /* N floats, or NULL */
    float *col_scale;                  /* int8: N per-column scales */
    int gelu;                          /* int8: GELU applied with the scales */
};

struct mm_ctx {
    struct mm_engine *g;
    dnnl_stream_t stream;
    int max_rows, max_k;
    void *act;                         /* converted x: max_rows * max_k elements */
    void *hidden;                      /* mm_ffn's middle: max_rows * max_k floats */
    float *row_scale;                  /* int8: max_rows */
    void *scratch;                     /* grows to the largest scratchpad seen */
    size_t scratch_len;
};

static atomic_int n_threads;

/* --- precision and CPU ------------------------------------------------------ */

int
mm_precision_parse(const char *name)
{
    if (strcmp(name, "fp32") == 0)
        return MM_FP32;
    if (strcmp(name, "bf16") == 0)
        return MM_BF16;
    if (strcmp(name, "int8") == 0)
        return MM_INT8;
    if (strcmp(name, "auto") == 0)
        return mm_bf16_native() ? MM_BF16 : MM_FP32;
    return -1;
}

const char *
mm_precision_name(enum mm_precision p)
{
    return p == MM_BF16 ? "bf16" : p == MM_INT8 ? "int8" : "fp32";
}

int
mm_bf16_native(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx;
}

const char *
mm_isa(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "baseline";
    }
}

void
mm_set_threads(int n)
{
    atomic_store(&n_threads, n);
}

int
mm_threads(void)
{
    int n = atomic_load(&n_threads);

    if (n > 0 && omp_get_max_threads() != n)
        omp_set_num_threads(n);
    return omp_get_max_threads();
}

/* --- primitives ------------------------------------------------------------- */

static int
class_of(int rows)
{
    return rows <= SMALL_ROWS ? rows - 1 : SMALL_ROWS + rows / SMALL_ROWS - 2;
}

static int
rows_of(int cls)
{
    return cls < SMALL_ROWS ? cls + 1 : (cls - SMALL_ROWS + 2) * SMALL_ROWS;
}

static int
dnnl_fail(struct rs_error *e, dnnl_status_t st, const char *what)
{
    if (st == dnnl_out_of_memory)
        return rs_error_set(e, RS_ENOMEM, "out of memory (%s)", what);
    return rs_error_set(e, RS_EINTERNAL, "oneDNN cannot %s (status %d)", what, (int)st);
}

static dnnl_data_type_t
act_type(const struct mm_engine *g)
{
    return g->prec == MM_INT8 ? dnnl_s8 : g->prec == MM_BF16 ? dnnl_bf16 : dnnl_f32;
}

static size_t
act_size(const struct mm_engine *g)
{
    return g->prec == MM_INT8 ? 1 : g->prec == MM_BF16 ? 2 : 4;
}

/* The output type of a shape: bf16 after a GELU in bf16 (it feeds the
 * next product directly), else f32. */
static dnnl_data_type_t
dst_type(const struct mm_engine *g, const struct mm_shape *s)
{
    return s->gelu && g->prec == MM_BF16 ? dnnl_bf16 : dnnl_f32;
}

/* A matmul primitive descriptor for rows x K times the weights of shape s
 * (in layout wmd, or "any" when wmd is NULL). */
static dnnl_status_t
make_pd(const struct mm_engine *g, int rows, const struct mm_shape *s,
        const dnnl_memory_desc_t *wmd, dnnl_primitive_desc_t *pd)
{
    dnnl_memory_desc_t src, wei, bias, dst;
    dnnl_dims_t sd = { rows, s->K }, wd = { s->K, s->N }, bd = { 1, s->N }, dd = { rows, s->N };
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t ops = NULL;
    dnnl_status_t st;

    if ((st = dnnl_memory_desc_init_by_tag(&src, 2, sd, act_type(g), dnnl_ab)) ||
        (st = dnnl_memory_desc_init_by_tag(&bias, 2, bd, dnnl_f32, dnnl_ab)) ||
        (st = dnnl_memory_desc_init_by_tag(&dst, 2, dd, dst_type(g, s), dnnl_ab)))
        return st;
    if (wmd != NULL)
        wei = *wmd;
    else if ((st = dnnl_memory_desc_init_by_tag(&wei, 2, wd, act_type(g), dnnl_format_tag_any)))
        return st;
    if ((st = dnnl_matmul_desc_init(&md, &src, &wei, s->has_bias ? &bias : NULL, &dst)))
        return st;
    if ((st = dnnl_primitive_attr_create(&attr)))
        return st;
    st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && s->gelu) {
        if ((st = dnnl_post_ops_create(&ops)) == dnnl_success &&
            (st = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_gelu_erf, 0, 0)) ==
                dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(attr, ops);
        if (ops != NULL)
            dnnl_post_ops_destroy(ops);
    }
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &md, attr, g->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* The shape like key (K, N, has_bias, gelu), made on first use.  Call with
 * the lock held. */
static int
get_shape(struct mm_engine *g, const struct mm_shape *key, struct mm_shape **out,
          struct rs_error *e)
{
    struct mm_shape *s, **grown;
    dnnl_primitive_desc_t pd;
    const char *impl = "";
    dnnl_status_t st;

    for (int i = 0; i < g->n_shapes; i++) {
        s = g->shapes[i];
        if (s->K == key->K && s->N == key->N && s->has_bias == key->has_bias &&
            s->gelu == key->gelu) {
            *out = s;
            return RS_OK;
        }
    }
    if ((st = make_pd(g, SMALL_ROWS, key, NULL, &pd)))
        return dnnl_fail(e, st, "make a matrix product");
    s = calloc(1, sizeof(*s));
    grown = realloc(g->shapes, (size_t)(g->n_shapes + 1) * sizeof(*grown));
    if (s == NULL || grown == NULL) {
        free(s);
        dnnl_primitive_desc_destroy(pd);
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    }
    g->shapes = grown;
    s->K = key->K;
    s->N = key->N;
    s->has_bias = key->has_bias;
    s->gelu = key->gelu;
    s->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (g->kernel[0] == '\0')
        snprintf(g->kernel, sizeof(g->kernel), "%s", impl);
    dnnl_primitive_desc_destroy(pd);
    g->shapes[g->n_shapes++] = s;
    *out = s;
    return RS_OK;
}

/* The primitive of a row count class, made on first use. */
static int
get_prim(struct mm_engine *g, struct mm_shape *s, int cls, dnnl_primitive_t *out,
         dnnl_memory_desc_t *scratch_md, struct rs_error *e)
{
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_success;
    int rc = RS_OK;

    pthread_mutex_lock(&g->lock);
    if (s->prim[cls] == NULL) {
        st = make_pd(g, rows_of(cls), s, &s->wmd, &pd);
        if (st == dnnl_success) {
            if (!dnnl_memory_desc_equal(&s->wmd,
                                        dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)))
                st = dnnl_unimplemented;
            else
                s->scratch_md[cls] = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
            if (st == dnnl_success)
                st = dnnl_primitive_create(&s->prim[cls], pd);
            dnnl_primitive_desc_destroy(pd);
        }
        if (st != dnnl_success)
            rc = dnnl_fail(e, st, "make a matrix product");
    }
    *out = s->prim[cls];
    *scratch_md = s->scratch_md[cls];
    pthread_mutex_unlock(&g->lock);
    return rc;
}

/* --- engine ----------------------------------------------------------------- */

int
mm_engine_new(struct mm_engine **out, enum mm_precision p, struct rs_error *e)
{
    struct mm_engine *g;
    dnnl_status_t st;

    *out = NULL;
    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    g->prec = p;
    if ((st = dnnl_engine_create(&g->eng, dnnl_cpu, 0)) != dnnl_success) {
        free(g);
        return dnnl_fail(e, st, "start on this CPU");
    }
    pthread_mutex_init(&g->lock, NULL);
    *out = g;
    return RS_OK;
}

void
mm_engine_free(struct mm_engine *g)
{
    if (g == NULL)
        return;
    for (int i = 0; i < g->n_shapes; i++) {
        for (int c = 0; c < N_CLASSES; c++)
            if (g->shapes[i]->prim[c] != NULL)
                dnnl_primitive_destroy(g->shapes[i]->prim[c]);
        free(g->shapes[i]);
    }
    free(g->shapes);
    pthread_mutex_destroy(&g->lock);
    dnnl_engine_destroy(g->eng);
    free(g);
}

const char *
mm_engine_kernel(const struct mm_engine *g)
{
    return g->kernel;
}

/* --- weights ---------------------------------------------------------------- */

/* Reorder src (plain K x N, transposed or not, of type dt) into dst. */
static dnnl_status_t
reorder_in(struct mm_engine *g, const void *src, dnnl_data_type_t dt, int transposed, int K,
           int N, dnnl_memory_t dst)
{
    dnnl_memory_desc_t smd;
    dnnl_dims_t dims = { K, N };
    dnnl_memory_t sm = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_stream_t stream = NULL;
    const dnnl_memory_desc_t *dmd;
    dnnl_status_t st;

    if ((st = dnnl_memory_get_memory_desc(dst, &dmd)) ||
        (st = dnnl_memory_desc_init_by_tag(&smd, 2, dims, dt, transposed ? dnnl_ba : dnnl_ab)) ||
        (st = dnnl_memory_create(&sm, &smd, g->eng, (void *)src)) ||
        (st = dnnl_reorder_primitive_desc_create(&pd, &smd, g->eng, dmd, g->eng, NULL)) ||
        (st = dnnl_primitive_create(&r, pd)) ||
        (st = dnnl_stream_create(&stream, g->eng, dnnl_stream_default_flags)))
        goto done;
    {
        dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, sm }, { DNNL_ARG_TO, dst } };
        if ((st = dnnl_primitive_execute(r, stream, 2, args)) == dnnl_success)
            st = dnnl_stream_wait(stream);
    }
done:
    if (stream)
        dnnl_stream_destroy(stream);
    if (r)
        dnnl_primitive_destroy(r);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (sm)
        dnnl_memory_destroy(sm);
    return st;
}

int
mm_weight_new(struct mm_engine *g, const float *w, int transposed, int K, int N,
              const float *b, int gelu, struct mm_weight **out, struct rs_error *e)
{
    struct mm_weight *mw;
    /* int8 adds the bias and the GELU after scaling, outside the primitive */
    struct mm_shape key = { .K = K, .N = N, .has_bias = b != NULL && g->prec != MM_INT8,
                            .gelu = gelu && g->prec != MM_INT8 };
    int8_t *q = NULL;
    dnnl_status_t st;
    int rc;

    *out = NULL;
    mw = calloc(1, sizeof(*mw));
    if (mw == NULL)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    mw->g = g;
    mw->gelu = gelu && g->prec == MM_INT8;
    pthread_mutex_lock(&g->lock);
    rc = get_shape(g, &key, &mw->shape, e);
    pthread_mutex_unlock(&g->lock);
    if (rc != RS_OK)
        goto fail;
    if ((st = dnnl_memory_create(&mw->w, &mw->shape->wmd, g->eng, DNNL_MEMORY_ALLOCATE))) {
        rc = dnnl_fail(e, st, "hold the weights");
        goto fail;
    }
    if (b != NULL) {
        mw->b = malloc((size_t)N * sizeof(float));
        if (mw->b == NULL) {
            rc = rs_error_set(e, RS_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(mw->b, b, (size_t)N * sizeof(float));
    }
    if (mw->shape->has_bias) {
        dnnl_memory_desc_t bmd;
        dnnl_dims_t bd = { 1, N };
        if ((st = dnnl_memory_desc_init_by_tag(&bmd, 2, bd, dnnl_f32, dnnl_ab)) ||
            (st = dnnl_memory_create(&mw->bias, &bmd, g->eng, mw->b))) {
            rc = dnnl_fail(e, st, "hold the bias");
            goto fail;
        }
    }
    if (g->prec != MM_INT8) {
        st = reorder_in(g, w, dnnl_f32, transposed, K, N, mw->w);
    } else {
        mw->col_scale = malloc((size_t)N * sizeof(float));
        q = malloc((size_t)K * (size_t)N);
        if (mw->col_scale == NULL || q == NULL) {
            rc = rs_error_set(e, RS_ENOMEM, "out of memory");
            goto fail;
        }
        k_quantize_cols(w, transposed, K, N, q, mw->col_scale);
        st = reorder_in(g, q, dnnl_s8, transposed, K, N, mw->w);
    }
    if (st != dnnl_success) {
        rc = dnnl_fail(e, st, "convert the weights");
        goto fail;
    }
    free(q);
    *out = mw;
    return RS_OK;
fail:
    free(q);
    mm_weight_free(mw);
    return rc;
}

void
mm_weight_free(struct mm_weight *w)
{
    if (w == NULL)
        return;
    if (w->w)
        dnnl_memory_destroy(w->w);
    if (w->bias)
        dnnl_memory_destroy(w->bias);
    free(w->b);
    free(w->col_scale);
    free(w);
}

size_t
mm_weight_bytes(const struct mm_weight *w)
{
    return dnnl_memory_desc_get_size(&w->shape->wmd);
}

/* --- contexts and products -------------------------------------------------- */

struct mm_ctx *
mm_ctx_new(struct mm_engine *g, int max_rows, int max_k)
{
    struct mm_ctx *c = calloc(1, sizeof(*c));

    if (c == NULL || max_rows < 1 || max_k < 1)
        goto fail;
    c->g = g;
    c->max_rows = max_rows;
    c->max_k = max_k;
    /* fp32 reads x where it is */
    c->act = g->prec == MM_FP32 ? NULL : malloc((size_t)max_rows * (size_t)max_k * act_size(g));
    c->hidden = malloc((size_t)max_rows * (size_t)max_k * sizeof(float));
    c->row_scale = malloc((size_t)max_rows * sizeof(float));
    if ((g->prec != MM_FP32 && c->act == NULL) || c->hidden == NULL || c->row_scale == NULL ||
        dnnl_stream_create(&c->stream, g->eng, dnnl_stream_default_flags) != dnnl_success)
        goto fail;
    return c;
fail:
    mm_ctx_free(c);
    return NULL;
}

void
mm_ctx_free(struct mm_ctx *c)
{
    if (c == NULL)
        return;
    if (c->stream)
        dnnl_stream_destroy(c->stream);
    free(c->act);
    free(c->hidden);
    free(c->row_scale);
    free(c->scratch);
    free(c);
}

/* One primitive run over rows [r0, r0 + m) (m a class's row count) of the
 * activations a into y. */
static int
run_chunk(struct mm_ctx *c, const struct mm_weight *w, const void *a, int r0, int m, void *y,
          struct rs_error *e)
{
    const struct mm_shape *s = w->shape;
    const size_t elem = act_size(c->g), dst_elem = dst_type(c->g, s) == dnnl_bf16 ? 2 : 4;
    dnnl_memory_desc_t smd, dmd, scratch_md;
    dnnl_dims_t sd = { m, s->K }, dd = { m, s->N };
    dnnl_memory_t src = NULL, dst = NULL, scratch = NULL;
    dnnl_primitive_t prim;
    size_t need;
    dnnl_status_t st;
    int rc, n_args = 0;
    dnnl_exec_arg_t args[5];

    if ((rc = get_prim(c->g, (struct mm_shape *)s, class_of(m), &prim, &scratch_md, e)))
        return rc;
    need = dnnl_memory_desc_get_size(&scratch_md);
    if (need > c->scratch_len) {
        void *p = realloc(c->scratch, need);
        if (p == NULL)
            return rs_error_set(e, RS_ENOMEM, "out of memory");
        c->scratch = p;
        c->scratch_len = need;
    }
    if ((st = dnnl_memory_desc_init_by_tag(&smd, 2, sd, act_type(c->g), dnnl_ab)) ||
        (st = dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dst_type(c->g, s), dnnl_ab)) ||
        (st = dnnl_memory_create(&src, &smd, c->g->eng,
                                 (char *)a + (size_t)r0 * (size_t)s->K * elem)) ||
        (st = dnnl_memory_create(&dst, &dmd, c->g->eng,
                                 (char *)y + (size_t)r0 * (size_t)s->N * dst_elem)) ||
        (st = dnnl_memory_create(&scratch, &scratch_md, c->g->eng, c->scratch)))
        goto done;
    args[n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, src };
    args[n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, w->w };
    args[n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_DST, dst };
    args[n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_SCRATCHPAD, scratch };
    if (s->has_bias)
        args[n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, w->bias };
    if ((st = dnnl_primitive_execute(prim, c->stream, n_args, args)) == dnnl_success)
        st = dnnl_stream_wait(c->stream);
done:
    if (src)
        dnnl_memory_destroy(src);
    if (dst)
        dnnl_memory_destroy(dst);
    if (scratch)
        dnnl_memory_destroy(scratch);
    return st == dnnl_success ? RS_OK : dnnl_fail(e, st, "run a matrix product");
}

/* The product of the n rows of src (already in the engine's input type)
 * into y, in chunks of the row count classes. */
static int
run_rows(struct mm_ctx *c, const struct mm_weight *w, const void *src, int n, void *y,
         struct rs_error *e)
{
    int rc = RS_OK;

    for (int r0 = 0, m; r0 < n && rc == RS_OK; r0 += m) {
        int left = n - r0;
        m = left <= SMALL_ROWS ? left : left >= MAX_CHUNK ? MAX_CHUNK : left - left % SMALL_ROWS;
        rc = run_chunk(c, w, src, r0, m, y, e);
    }
    return rc;
}

/* x (n rows of K floats) in the engine's input type: x itself in fp32, else
 * converted into c->act (int8: with the row scales), rows split across the
 * threads. */
static const void *
convert_in(struct mm_ctx *c, const float *x, int n, int K, int threads)
{
    const enum mm_precision p = c->g->prec;

    if (p == MM_FP32)
        return x;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) {
        const int lo = (int)((long)n * t / threads), hi = (int)((long)n * (t + 1) / threads);
        const size_t at = (size_t)lo * (size_t)K;
        if (hi > lo && p == MM_INT8)
            k_quantize_rows(x + at, hi - lo, K, (int8_t *)c->act + at, c->row_scale + lo);
        else if (hi > lo)
            k_to_bf16(x + at, (size_t)(hi - lo) * (size_t)K, (uint16_t *)c->act + at);
    }
    return c->act;
}

/* int8: scale the products back (and add the bias, and the GELU). */
static void
scale_out(struct mm_ctx *c, const struct mm_weight *w, int n, float *y, int threads)
{
    const int N = w->shape->N;

#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) {
        const int lo = (int)((long)n * t / threads), hi = (int)((long)n * (t + 1) / threads);
        float *rows = y + (size_t)lo * (size_t)N;
        if (hi <= lo)
            continue;
        k_dequantize_rows(rows, hi - lo, N, c->row_scale + lo, w->col_scale, w->b);
        if (w->gelu)
            k_gelu(rows, (size_t)(hi - lo) * (size_t)N);
    }
}

int
mm_dense(struct mm_ctx *c, const struct mm_weight *w, const float *x, int n, float *y,
         struct rs_error *e)
{
    const int K = w->shape->K;
    int rc, threads;

    if (n < 1 || n > c->max_rows || K > c->max_k)
        return rs_error_set(e, RS_EINVAL, "product of %d x %d (capacity %d x %d)", n, K,
                            c->max_rows, c->max_k);
    threads = mm_threads();
    rc = run_rows(c, w, convert_in(c, x, n, K, threads), n, y, e);
    if (rc == RS_OK && c->g->prec == MM_INT8)
        scale_out(c, w, n, y, threads);
    return rc;
}

int
mm_ffn(struct mm_ctx *c, const struct mm_weight *w1, const struct mm_weight *w2,
       const float *x, int n, float *y, struct rs_error *e)
{
    int rc, threads;

    if (w1->shape->N > c->max_k || w1->shape->N != w2->shape->K)
        return rs_error_set(e, RS_EINVAL, "feed-forward of %d then %d inputs (capacity %d)",
                            w1->shape->N, w2->shape->K, c->max_k);
    if (c->g->prec == MM_FP32) {
        if ((rc = mm_dense(c, w1, x, n, c->hidden, e)) != RS_OK)
            return rc;
        return mm_dense(c, w2, c->hidden, n, y, e);
    }
    if (n < 1 || n > c->max_rows || w1->shape->K > c->max_k)
        return rs_error_set(e, RS_EINVAL, "product of %d x %d (capacity %d x %d)", n,
                            w1->shape->K, c->max_rows, c->max_k);
    threads = mm_threads();
    if ((rc = run_rows(c, w1, convert_in(c, x, n, w1->shape->K, threads), n, c->hidden,
                       e)) != RS_OK)
        return rc;
    if (c->g->prec == MM_BF16)   /* the GELU'd middle is already bf16 */
        return run_rows(c, w2, c->hidden, n, y, e);
    /* int8: scale, GELU and quantize the middle row by row, in cache */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) {
        const int lo = (int)((long)n * t / threads), hi = (int)((long)n * (t + 1) / threads);
        const size_t at = (size_t)lo * (size_t)w1->shape->N;
        if (hi > lo)
            k_requantize_gelu_rows((float *)c->hidden + at, hi - lo, w1->shape->N,
                                   c->row_scale + lo, w1->col_scale, w1->b,
                                   (int8_t *)c->act + at);
    }
    if ((rc = run_rows(c, w2, c->act, n, y, e)) == RS_OK)
        scale_out(c, w2, n, y, threads);
    return rc;
}
