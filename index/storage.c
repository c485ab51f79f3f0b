/*
 * storage.c: choosing a storage backend by name (storage.h).
 */
#include "storage.h"

#include <stdlib.h>
#include <string.h>

int
st_open(struct st_db **out, const char *backend, const char *where, int fsync,
        struct rs_error *e)
{
    *out = NULL;
    if (strcmp(backend, "sqlite") == 0)
        return st_sqlite_open(out, where, fsync, e);
    if (strcmp(backend, "postgresql") == 0)
        return st_pg_open(out, where, e);
    return rs_error_set(e, RS_EINVAL, "unknown storage backend '%s' (sqlite, postgresql)",
                        backend);
}

void
st_close(struct st_db *db)
{
    if (db != NULL)
        db->ops->db_close(db);
}

void
st_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
