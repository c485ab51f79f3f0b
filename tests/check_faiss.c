/*
 * check_faiss.c: the FAISS C API built by scripts/setup.sh links and works.
 *
 * Builds a Flat inner-product index over random unit vectors, adds them,
 * and checks that each vector's nearest neighbour is itself with score 1
 * and that the scores equal brute-force dot products.
 */
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <math.h>
#include <stdlib.h>

#include "suites.h"

START_TEST(test_flat_inner_product)
{
    enum { D = 16, N = 200, K = 5 };
    static float x[N * D];
    float dist[N * K];
    idx_t labels[N * K];
    FaissIndex *index = NULL;
    unsigned seed = 7;

    for (int i = 0; i < N; i++) {
        float norm = 0;
        for (int j = 0; j < D; j++) {
            x[i * D + j] = (float)rand_r(&seed) / RAND_MAX - 0.5f;
            norm += x[i * D + j] * x[i * D + j];
        }
        for (int j = 0; j < D; j++)
            x[i * D + j] /= sqrtf(norm);
    }
    ck_assert_int_eq(faiss_index_factory(&index, D, "Flat", METRIC_INNER_PRODUCT), 0);
    ck_assert_int_eq(faiss_Index_add(index, N, x), 0);
    ck_assert_int_eq(faiss_Index_ntotal(index), N);
    ck_assert_int_eq(faiss_Index_search(index, N, x, K, dist, labels), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(labels[i * K], i);
        ck_assert_float_eq_tol(dist[i * K], 1.0f, 1e-5f);
        for (int k = 1; k < K; k++) {
            float dot = 0;
            for (int j = 0; j < D; j++)
                dot += x[i * D + j] * x[labels[i * K + k] * D + j];
            ck_assert_float_eq_tol(dist[i * K + k], dot, 1e-5f);
            ck_assert(dist[i * K + k] <= dist[i * K + k - 1] + 1e-6f);
        }
    }
    faiss_Index_free(index);
}
END_TEST

START_TEST(test_factory_error_is_reported)
{
    FaissIndex *index = NULL;

    ck_assert_int_ne(faiss_index_factory(&index, 8, "NoSuchIndex", METRIC_L2), 0);
    ck_assert_ptr_nonnull(faiss_get_last_error());
}
END_TEST

Suite *
faiss_suite(void)
{
    Suite *s = suite_create("faiss");
    TCase *tc = tcase_create("c_api");

    tcase_add_test(tc, test_flat_inner_product);
    tcase_add_test(tc, test_factory_error_is_reported);
    suite_add_tcase(s, tc);
    return s;
}
