/*
 * web.c: looking up the files compiled into rosimd (see web.h; the table
 * itself is generated into the build tree).
 */
#include "web.h"

#include <string.h>

const struct web_file *
web_find(const char *path)
{
    for (const struct web_file *f = web_files; f->path != NULL; f++)
        if (strcmp(f->path, path) == 0)
            return f;
    return NULL;
}
