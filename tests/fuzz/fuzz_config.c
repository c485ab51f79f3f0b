/*
 * fuzz_config.c: the INI configuration loader on arbitrary files, then an
 * override built from the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../server/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[64], value[64], path[160];
    struct conf c;
    struct rs_error e;
    FILE *f;
    size_t half = size / 2;

    snprintf(path, sizeof(path), "%s", fuzz_scratch_path("c"));
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    conf_defaults(&c);
    conf_load(&c, path, &e);
    snprintf(name, sizeof(name), "%.*s", (int)(half < 60 ? half : 60), (const char *)data);
    snprintf(value, sizeof(value), "%.*s", (int)(size - half < 60 ? size - half : 60),
             (const char *)data + half);
    conf_defaults(&c);
    conf_set(&c, name, value, &e);
    return 0;
}
