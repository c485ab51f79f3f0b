/*
 * suites.h: every libcheck suite of rosim, run together by check_main.c.
 */
#ifndef ROSIM_SUITES_H
#define ROSIM_SUITES_H

#include <check.h>

Suite *config_suite(void);
Suite *faiss_suite(void);
Suite *daemon_suite(void);
Suite *lifecycle_suite(void);
Suite *tokenizer_suite(void);
Suite *model_suite(void);
Suite *cli_suite(void);
Suite *generate_suite(void);
Suite *collection_suite(void);
Suite *api_suite(void);
Suite *production_suite(void);
Suite *store_suite(void);
Suite *storage_suite(void);
Suite *env_suite(void);
Suite *openai_suite(void);
Suite *web_suite(void);
Suite *routes_suite(void);
Suite *precision_suite(void);
Suite *search_suite(void);
Suite *shared_suite(void);
Suite *replicas_suite(void);

#endif
