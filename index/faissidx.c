/*
 * faissidx.c: the FAISS C API behind faissidx.h.  struct fx_index is
 * FaissIndex itself (the opaque type is only a name for callers).
 */
#include "faissidx.h"

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/utils/distances_c.h>
#include <pthread.h>
#include <string.h>

#define IDX(x) ((FaissIndex *)(x))

/* FAISS's last error, minus "Error in <C++ signature> at <path>:<line>:"
 * and the failed assertion: the sentence meant for people. */
static int
fx_error(struct rs_error *e, const char *what)
{
    const char *msg = faiss_get_last_error(), *p;

    if (msg == NULL)
        return rs_error_set(e, RS_EINTERNAL, "%s failed", what);
    if ((p = strstr(msg, ".cpp:")) != NULL) {
        msg = p + 5;
        while (*msg >= '0' && *msg <= '9')
            msg++;
        while (*msg == ':' || *msg == ' ')
            msg++;
    }
    if ((p = strstr(msg, "' failed: ")) != NULL)
        msg = p + 10;
    else if (strncmp(msg, "Error: '", 8) == 0)
        msg = "an internal check failed";
    return rs_error_set(e, RS_EINTERNAL, "%s: %s", what, msg);
}

/* Exact search of one query through sgemm rather than FAISS's scalar loop:
 * 2.5x faster on Debian's generic build.  A process-wide setting, made
 * once. */
static void
set_process_settings(void)
{
    faiss_set_distance_compute_blas_threshold(1);
}

int
fx_new(const struct itype *t, int dim, int interim, struct fx_index **out, struct rs_error *e)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    FaissIndex *idx = NULL;

    pthread_once(&once, set_process_settings);
    *out = NULL;
    if (faiss_index_factory(&idx, dim, interim ? "IDMap2,Flat" : t->build,
                            METRIC_INNER_PRODUCT) != 0)
        return fx_error(e, t->factory);
    *out = (struct fx_index *)idx;
    return RS_OK;
}

int
fx_set_param(struct fx_index *x, const char *name, int value, struct rs_error *e)
{
    FaissParameterSpace *ps = NULL;
    int rc;

    if (faiss_ParameterSpace_new(&ps) != 0)
        return rs_error_set(e, RS_ENOMEM, "out of memory");
    rc = faiss_ParameterSpace_set_index_parameter(ps, IDX(x), name, value);
    faiss_ParameterSpace_free(ps);
    return rc == 0 ? RS_OK : fx_error(e, name);
}

void
fx_free(struct fx_index *x)
{
    faiss_Index_free(IDX(x));
}

int
fx_is_trained(const struct fx_index *x)
{
    return faiss_Index_is_trained(IDX(x));
}

int
fx_train(struct fx_index *x, size_t n, const float *vecs, struct rs_error *e)
{
    if (faiss_Index_train(IDX(x), (idx_t)n, vecs) != 0)
        return fx_error(e, "train the index");
    return RS_OK;
}

int
fx_add(struct fx_index *x, size_t n, const float *vecs, const int64_t *labels,
       struct rs_error *e)
{
    if (n > 0 && faiss_Index_add_with_ids(IDX(x), (idx_t)n, vecs, labels) != 0)
        return fx_error(e, "add to the index");
    return RS_OK;
}

int
fx_remove(struct fx_index *x, const int64_t *labels, size_t n)
{
    FaissIDSelectorBatch *sel = NULL;
    size_t removed;
    int rc;

    if (faiss_IDSelectorBatch_new(&sel, n, labels) != 0)
        return -1;
    rc = faiss_Index_remove_ids(IDX(x), (FaissIDSelector *)sel, &removed);
    faiss_IDSelector_free((FaissIDSelector *)sel);
    return rc == 0 ? 0 : -1;
}

long
fx_ntotal(const struct fx_index *x)
{
    return (long)faiss_Index_ntotal(IDX(x));
}

int
fx_dim(const struct fx_index *x)
{
    return faiss_Index_d(IDX(x));
}

int
fx_search(const struct fx_index *x, const float *query, long k, float *dist, int64_t *labels,
          struct rs_error *e)
{
    if (faiss_Index_search(IDX(x), 1, query, (idx_t)k, dist, labels) != 0)
        return fx_error(e, "search");
    return RS_OK;
}

int
fx_write(const struct fx_index *x, FILE *f, struct rs_error *e)
{
    if (faiss_write_index(IDX(x), f) != 0)
        return fx_error(e, "serialize the index");
    return RS_OK;
}

int
fx_read(FILE *f, struct fx_index **out)
{
    FaissIndex *idx = NULL;

    *out = NULL;
    if (faiss_read_index(f, 0, &idx) != 0)
        return -1;
    *out = (struct fx_index *)idx;
    return 0;
}
