/*
 * web.h: the files rosimd serves as they are: the playground (server/web/)
 * at / and the OpenAPI description of the API (docs/openapi.json) at
 * /openapi.json.
 *
 * The files are compiled into the binary (the Makefile runs
 * scripts/embed-files.sh into the build tree), so an installed rosimd
 * needs nothing beside it.  They are static and hold no secret: they are
 * served without an API key; the API calls the playground makes carry
 * the key the user gives it.
 */
#ifndef ROSIM_WEB_H
#define ROSIM_WEB_H

#include <stddef.h>

struct web_file {
    const char *path;          /* URL path, e.g. "/" */
    const char *type;          /* Content-Type */
    const char *etag;          /* quoted, from the content */
    const unsigned char *data;
    size_t len;
};

/* The generated table, ended by an entry whose path is NULL. */
extern const struct web_file web_files[];

/* Headers sent with every file: nothing may be loaded from elsewhere (no
 * CDN, no inline script), and a cached copy is checked with its ETag
 * before use (the names carry no version). */
#define WEB_CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#define WEB_CACHE_CONTROL "no-cache"

/* The file served at path (exact match, no query string), or NULL.
 * Borrowed: the table lives as long as the program. */
const struct web_file *web_find(const char *path);

#endif
