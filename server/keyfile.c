/*
 * keyfile.c: the API key file, read whole line by whole line (see keyfile.h).
 */
#include "keyfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

_Static_assert(KEYFILE_KEY_MAX == 512, "the message below says 512");

static void
drop(char **keys, int *n)
{
    for (int i = 0; i < *n; i++) {
        memset(keys[i], 0, strlen(keys[i]));
        free(keys[i]);
        keys[i] = NULL;
    }
    *n = 0;
}

/* NULL when p[0..len) is a valid key, else why not. */
static const char *
bad_key(const char *p, size_t len)
{
    if (len > KEYFILE_KEY_MAX)
        return "key longer than 512 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 127)
            return "a key may hold only visible ASCII characters (no spaces inside)";
    return NULL;
}

int
keyfile_load(const char *path, char **keys, int max_keys, int *n_keys, struct rs_error *e)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    struct stat st;
    int lineno = 0, rc = RS_OK;

    *n_keys = 0;
    if (f == NULL)
        return rs_error_set(e, RS_EIO, "%s: cannot read the API keys: %s", path,
                            strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return rs_error_set(e, RS_EIO, "%s: cannot read the API keys: is a directory", path);
    }
    while (rc == RS_OK && (got = getline(&line, &cap, f)) >= 0) {
        char *p = line, *end = line + got;
        const char *why;
        lineno++;
        while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
            end--;
        if (end == p)
            continue;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (p < end && *p == '#')
            continue;
        if (end == p)
            why = "a line of only spaces (an empty key)";
        else
            why = bad_key(p, (size_t)(end - p));
        if (why != NULL) {
            rc = rs_error_set(e, RS_EINVAL, "%s:%d: %s", path, lineno, why);
        } else if (*n_keys == max_keys) {
            rc = rs_error_set(e, RS_EINVAL, "%s:%d: more than %d keys", path, lineno, max_keys);
        } else if ((keys[*n_keys] = strndup(p, (size_t)(end - p))) == NULL) {
            rc = rs_error_set(e, RS_ENOMEM, "out of memory for the API keys");
        } else {
            (*n_keys)++;
        }
    }
    if (rc == RS_OK && ferror(f))
        rc = rs_error_set(e, RS_EIO, "%s: cannot read the API keys", path);
    if (rc == RS_OK && *n_keys == 0)
        rc = rs_error_set(e, RS_EINVAL, "%s: no API keys in the file", path);
    if (line != NULL)
        memset(line, 0, cap);
    free(line);
    fclose(f);
    if (rc != RS_OK)
        drop(keys, n_keys);
    return rc;
}
