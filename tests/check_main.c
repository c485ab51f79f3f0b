/*
 * check_main.c: runs every suite; exit status 0 only if all tests pass.
 * Run from the repository root (fixtures are found under tests/).
 */
#include <stdlib.h>

#include "suites.h"

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_add_suite(sr, env_suite());
    srunner_add_suite(sr, faiss_suite());
    srunner_add_suite(sr, tokenizer_suite());
    srunner_add_suite(sr, model_suite());
    srunner_add_suite(sr, cli_suite());
    srunner_add_suite(sr, generate_suite());
    srunner_add_suite(sr, collection_suite());
    srunner_add_suite(sr, store_suite());
    srunner_add_suite(sr, routes_suite());
    srunner_add_suite(sr, storage_suite());
    srunner_add_suite(sr, search_suite());
    srunner_add_suite(sr, shared_suite());
    srunner_add_suite(sr, api_suite());
    srunner_add_suite(sr, production_suite());
    srunner_add_suite(sr, openai_suite());
    srunner_add_suite(sr, precision_suite());
    srunner_add_suite(sr, daemon_suite());
    srunner_add_suite(sr, lifecycle_suite());
    srunner_add_suite(sr, replicas_suite());
    srunner_add_suite(sr, web_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
