/*
 * config.c: a table of typed, bounded options and the INI reader over it.
 *
 * Design: each option is a row {section, key, type, offset, bounds,
 * default}; parsing a value and applying a default go through the same
 * setter, so a default that fails its own validation is caught by the tests.
 * libinih does the INI syntax; we feed it lines through our own reader so
 * that we know the line number of every key, can reject overlong lines
 * (inih would silently split them) and unknown [section] headers (inih
 * reports a section only through its keys, so an empty one went unseen).
 * Relative paths from a file are joined to the file's directory here.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../index/storage.h"

enum opt_type { OPT_ADDR, OPT_INT, OPT_SIZE, OPT_PATH, OPT_ENUM, OPT_BOOL, OPT_STRING,
                OPT_OPTIONAL_PATH,
                OPT_INT_AUTO,    /* OPT_INT, or "auto" stored as 0 */
                OPT_DSN };       /* a libpq connection string; printed without password */

struct option {
    const char *section;
    const char *key;
    enum opt_type type;
    size_t offset;
    long long min, max;            /* OPT_INT, OPT_SIZE */
    const char *def;
    const char *const *choices;    /* OPT_ENUM, NULL-terminated */
};

static const char *const log_levels[] = { "debug", "info", "warn", "error", NULL };
/* indexed by enum coll_fsync */
static const char *const fsync_policies[] = { "always", "batch", "off", NULL };
_Static_assert(COLL_FSYNC_ALWAYS == 0 && COLL_FSYNC_BATCH == 1 && COLL_FSYNC_OFF == 2,
               "fsync_policies follows enum coll_fsync");
static const char *const booleans[] = { "no", "yes", NULL };
static const char *const precisions[] = { "fp32", "bf16", "int8", "auto", NULL };
/* indexed by enum conf_backend */
static const char *const backends[] = { "sqlite", "postgresql", NULL };

#ifndef ROSIM_SHARE_DIR
#define ROSIM_SHARE_DIR "share"
#endif

#define OFF(field) offsetof(struct conf, field)
#define GIB (1024LL * 1024 * 1024)

static const struct option options[] = {
    { "server", "listen", OPT_ADDR, OFF(listen), 0, 0, "127.0.0.1:8080", NULL },
    { "server", "max_connections", OPT_INT, OFF(max_connections), 1, 100000, "1024", NULL },
    { "server", "per_ip_connections", OPT_INT, OFF(per_ip_connections), 0, 100000, "256", NULL },
    { "server", "connection_timeout", OPT_INT, OFF(connection_timeout), 1, 86400, "30", NULL },
    { "server", "read_timeout", OPT_INT, OFF(read_timeout), 1, 86400, "30", NULL },
    { "server", "max_body_bytes", OPT_SIZE, OFF(max_body_bytes), 1024, GIB, "1m", NULL },
    { "server", "log_level", OPT_ENUM, OFF(log_level), 0, 0, "info", log_levels },
    { "server", "api_key_file", OPT_OPTIONAL_PATH, OFF(api_key_file), 0, 0, "", NULL },
    { "server", "metrics_auth", OPT_BOOL, OFF(metrics_auth), 0, 0, "no", booleans },
    { "server", "shutdown_timeout", OPT_INT, OFF(shutdown_timeout), 1, 3600, "30", NULL },
    { "model", "dir", OPT_PATH, OFF(model_dir), 0, 0, "models/roformer-sim", NULL },
    { "model", "threads", OPT_INT_AUTO, OFF(compute_threads), 1, 256, "auto", NULL },
    { "model", "precision", OPT_ENUM, OFF(precision), 0, 0, "fp32", precisions },
    { "model", "workers", OPT_INT, OFF(workers), 1, 64, "1", NULL },
    { "model", "max_length", OPT_INT, OFF(max_length), 2, 4096, "64", NULL },
    { "model", "demo_if_missing", OPT_BOOL, OFF(demo_if_missing), 0, 0, "no", booleans },
    { "model", "demo_vocab", OPT_PATH, OFF(demo_vocab), 0, 0, ROSIM_SHARE_DIR "/vocab.txt", NULL },
    { "model", "batch_tokens", OPT_INT, OFF(batch_tokens), 64, 1 << 20, "4096", NULL },
    { "model", "batch_wait_us", OPT_INT, OFF(batch_wait_us), 0, 1000000, "20000", NULL },
    { "limits", "max_texts", OPT_INT, OFF(max_texts), 1, 100000, "256", NULL },
    { "limits", "max_text_bytes", OPT_SIZE, OFF(max_text_bytes), 16, 16 * 1024 * 1024, "16k", NULL },
    { "limits", "max_n", OPT_INT, OFF(max_n), 1, 1000, "256", NULL },
    { "limits", "max_k", OPT_INT, OFF(max_k), 1, 1000, "256", NULL },
    { "limits", "max_new_tokens", OPT_INT, OFF(max_new_tokens), 1, 512, "128", NULL },
    { "limits", "max_documents", OPT_INT, OFF(max_documents), 1, 100000, "1000", NULL },
    { "limits", "max_search_k", OPT_INT, OFF(max_search_k), 1, 100000, "1000", NULL },
    { "limits", "request_timeout", OPT_INT, OFF(request_timeout), 1, 3600, "30", NULL },
    { "limits", "max_queue", OPT_INT, OFF(max_queue), 1, 100000, "256", NULL },
    { "limits", "max_generate_cost", OPT_INT, OFF(max_generate_cost), 1, 100000000, "51200", NULL },
    { "storage", "data", OPT_PATH, OFF(data_dir), 0, 0, "data", NULL },
    { "storage", "fsync", OPT_ENUM, OFF(fsync), 0, 0, "always", fsync_policies },
    { "storage", "default_index", OPT_STRING, OFF(default_index), 0, 0, "Flat", NULL },
    { "storage", "snapshot_every", OPT_INT, OFF(snapshot_every), 0, 100000000, "10000", NULL },
    { "storage", "backend", OPT_ENUM, OFF(backend), 0, 0, "sqlite", backends },
    { "storage", "dsn", OPT_DSN, OFF(dsn), 0, 0, "", NULL },
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))
_Static_assert(N_OPTIONS <= CONF_MAX_OPTIONS, "struct conf_origins is too small");

static const struct option *
find_option(const char *section, const char *key)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].section, section) == 0 &&
            strcmp(options[i].key, key) == 0)
            return &options[i];
    return NULL;
}

static int
section_known(const char *section)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].section, section) == 0)
            return 1;
    return 0;
}

/* --- value parsers: each returns NULL or a reason for the error ---------- */

static const char *
parse_integer(const char *v, long long min, long long max, int with_suffix,
              long long *out, char *why, size_t why_len)
{
    char *end;
    long long n, mult = 1;

    errno = 0;
    if (*v == '\0')
        return "empty value";
    n = strtoll(v, &end, 10);
    if (end == v || errno == ERANGE || (*v == '-' && min >= 0 && n != 0)) {
        if (errno == ERANGE || *v == '-') {
            snprintf(why, why_len, "%s is out of range (%lld..%lld)", v, min, max);
            return why;
        }
        snprintf(why, why_len, "'%s' is not a whole number", v);
        return why;
    }
    if (with_suffix && *end != '\0' && end[1] == '\0') {
        switch (*end) {
        case 'k': case 'K': mult = 1024; end++; break;
        case 'm': case 'M': mult = 1024 * 1024; end++; break;
        case 'g': case 'G': mult = GIB; end++; break;
        default: break;
        }
    }
    if (*end != '\0') {
        snprintf(why, why_len, with_suffix
                 ? "'%s' is not a size (a number with optional k, m or g)"
                 : "'%s' is not a whole number", v);
        return why;
    }
    if (n > max / mult || n < min / mult || n * mult < min || n * mult > max) {
        snprintf(why, why_len, "%s is out of range (%lld..%lld)", v, min, max);
        return why;
    }
    *out = n * mult;
    return NULL;
}

static const char *
parse_addr(const char *v, struct conf_addr *a, char *why, size_t why_len)
{
    char host[sizeof(a->host)];
    unsigned char buf[sizeof(struct in6_addr)];
    const char *colon, *h = v;
    size_t hlen;
    long long port;

    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':')
            goto bad;
        h = v + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL)
            goto bad;
        hlen = (size_t)(colon - v);
    }
    if (hlen == 0 || hlen >= sizeof(host))
        goto bad;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (inet_pton(v[0] == '[' ? AF_INET6 : AF_INET, host, buf) != 1)
        goto bad;
    if (parse_integer(colon + 1, 0, 65535, 0, &port, why, why_len) != NULL) {
        snprintf(why, why_len, "port '%s' must be a number from 0 to 65535", colon + 1);
        return why;
    }
    memcpy(a->host, host, hlen + 1);
    a->port = (int)port;
    return NULL;
bad:
    snprintf(why, why_len, "'%s' is not an address (expected IPv4:PORT or [IPv6]:PORT, "
             "e.g. 127.0.0.1:8080)", v);
    return why;
}

/* Set option o from text v.  base: the directory relative paths are
 * joined to, or NULL to keep them as they are. */
static const char *
apply(struct conf *c, const struct option *o, const char *v, const char *base, char *why,
      size_t why_len)
{
    char *field = (char *)c + o->offset;
    struct rs_error bad;
    long long n;
    const char *err;

    switch (o->type) {
    case OPT_ADDR:
        return parse_addr(v, (struct conf_addr *)field, why, why_len);
    case OPT_INT_AUTO:
        if (strcmp(v, "auto") == 0) {
            *(int *)field = 0;
            return NULL;
        }
        /* fall through */
    case OPT_INT:
    case OPT_SIZE:
        err = parse_integer(v, o->min, o->max, o->type == OPT_SIZE, &n, why, why_len);
        if (err != NULL)
            return err;
        if (o->type != OPT_SIZE)
            *(int *)field = (int)n;
        else
            *(size_t *)field = (size_t)n;
        return NULL;
    case OPT_OPTIONAL_PATH:
    case OPT_PATH:
        if (*v == '\0' && o->type == OPT_PATH)
            return "empty path";
        if (*v != '\0' && *v != '/' && base != NULL) {
            if (snprintf(field, CONF_PATH_MAX, "%s/%s", base, v) >= CONF_PATH_MAX) {
                snprintf(why, why_len, "path longer than %d bytes once joined to %s",
                         CONF_PATH_MAX - 1, base);
                return why;
            }
            return NULL;
        }
        if (strlen(v) >= CONF_PATH_MAX) {
            snprintf(why, why_len, "path longer than %d bytes", CONF_PATH_MAX - 1);
            return why;
        }
        strcpy(field, v);
        return NULL;
    case OPT_DSN:
        if (strlen(v) >= CONF_PATH_MAX) {
            snprintf(why, why_len, "longer than %d bytes", CONF_PATH_MAX - 1);
            return why;
        }
        if (*v != '\0' && st_pg_dsn_check(v, &bad) != RS_OK) {
            snprintf(why, why_len, "%.200s", bad.msg);
            return why;
        }
        strcpy(field, v);
        return NULL;
    case OPT_STRING:
        if (*v == '\0')
            return "empty value";
        if (strlen(v) >= 128)
            return "longer than 127 bytes";
        strcpy(field, v);
        return NULL;
    case OPT_BOOL:
    case OPT_ENUM:
        for (int i = 0; o->choices[i] != NULL; i++) {
            if (strcmp(v, o->choices[i]) == 0) {
                *(int *)field = i;
                return NULL;
            }
        }
        {
            size_t len = (size_t)snprintf(why, why_len, "'%s' is not one of", v);
            for (int i = 0; o->choices[i] != NULL && len < why_len; i++)
                len += (size_t)snprintf(why + len, why_len - len, "%s %s",
                                        i ? "," : "", o->choices[i]);
        }
        return why;
    }
    return "unknown option type";
}

void
conf_defaults(struct conf *c)
{
    char why[256];

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *err = apply(c, &options[i], options[i].def, NULL, why, sizeof(why));
        if (err != NULL)  /* a bug in the table, caught by the tests */
            abort();
    }
}

int
conf_set(struct conf *c, const char *name, const char *value, struct rs_error *e)
{
    return conf_set_traced(c, name, value, CONF_SRC_ARG, NULL, e);
}

int
conf_set_traced(struct conf *c, const char *name, const char *value,
                enum conf_source src, struct conf_origins *origins, struct rs_error *e)
{
    char section[64], why[256];
    const char *dot = strchr(name, '.');
    const struct option *o;
    const char *err;

    if (dot == NULL || (size_t)(dot - name) >= sizeof(section))
        return rs_error_set(e, RS_EINVAL, "'%s' is not an option name "
                            "(expected section.key, e.g. server.listen)", name);
    memcpy(section, name, (size_t)(dot - name));
    section[dot - name] = '\0';
    o = find_option(section, dot + 1);
    if (o == NULL)
        return rs_error_set(e, RS_EINVAL, "unknown option '%s'", name);
    err = apply(c, o, value, NULL, why, sizeof(why));
    if (err != NULL)
        return rs_error_set(e, RS_EINVAL, "[%s] %s: %s", section, o->key, err);
    if (origins != NULL)
        origins->source[o - options] = (unsigned char)src;
    return RS_OK;
}

const char *
conf_fsync_name(int policy)
{
    return fsync_policies[policy];
}

/* --- the INI file --------------------------------------------------------- */

struct load_ctx {
    struct conf *conf;
    FILE *fp;
    char base[CONF_PATH_MAX];   /* directory of the file; "" when path has no '/' */
    int line;                   /* number of the line last read */
    int error_line;             /* 0 while no error */
    char error[400];
    unsigned char seen[N_OPTIONS];
    struct conf_origins *origins;   /* NULL: not recorded */
};

static void
load_fail(struct load_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
load_fail(struct load_ctx *x, const char *fmt, ...)
{
    va_list ap;

    if (x->error_line != 0)
        return;  /* keep the first error */
    x->error_line = x->line;
    va_start(ap, fmt);
    vsnprintf(x->error, sizeof(x->error), fmt, ap);
    va_end(ap);
}

/* A [section] header must name a known section, even with no keys. */
static void
check_section(struct load_ctx *x, const char *line)
{
    const char *p = line + strspn(line, " \t"), *end;
    char name[64];

    if (*p != '[' || (end = strchr(p, ']')) == NULL)
        return;  /* not a header, or one inih calls a syntax error */
    snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
    if (!section_known(name))
        load_fail(x, "unknown section [%.*s]", (int)(end - p - 1), p + 1);
}

/* inih's line reader: fgets that counts lines and refuses long ones. */
static char *
read_line(char *buf, int size, void *stream)
{
    struct load_ctx *x = stream;
    char *r = fgets(buf, size, x->fp);
    size_t len;

    if (r == NULL)
        return NULL;
    x->line++;
    check_section(x, buf);
    len = strlen(buf);
    if (len == (size_t)size - 1 && buf[len - 1] != '\n' && !feof(x->fp)) {
        int ch;
        load_fail(x, "line longer than %d characters", size - 2);
        while ((ch = fgetc(x->fp)) != EOF && ch != '\n')
            ;
        buf[0] = '\0';
    }
    return r;
}

static int
on_value(void *user, const char *section, const char *key, const char *value)
{
    struct load_ctx *x = user;
    const struct option *o;
    char why[256];
    const char *err;

    if (!section_known(section)) {  /* "" before the first header */
        load_fail(x, "unknown section [%s]", section);
        return 1;
    }
    o = find_option(section, key);
    if (o == NULL) {
        load_fail(x, "[%s] %s: unknown option", section, key);
        return 1;
    }
    if (x->seen[o - options]++) {
        load_fail(x, "[%s] %s: duplicate (already set above)", section, key);
        return 1;
    }
    err = apply(x->conf, o, value, x->base[0] ? x->base : NULL, why, sizeof(why));
    if (err != NULL)
        load_fail(x, "[%s] %s: %s", section, key, err);
    else if (x->origins != NULL) {
        x->origins->source[o - options] = CONF_SRC_FILE;
        x->origins->line[o - options] = x->line;
    }
    return 1;
}

int
conf_load(struct conf *c, const char *path, struct rs_error *e)
{
    return conf_load_traced(c, path, NULL, e);
}

int
conf_load_traced(struct conf *c, const char *path, struct conf_origins *origins,
                 struct rs_error *e)
{
    struct load_ctx x;
    const char *slash = strrchr(path, '/');
    struct stat st;
    int r;

    memset(&x, 0, sizeof(x));
    x.conf = c;
    x.origins = origins;
    if (slash != NULL && (size_t)(slash - path) >= sizeof(x.base))
        return rs_error_set(e, RS_EINVAL, "%s: path too long", path);
    if (slash != NULL)
        snprintf(x.base, sizeof(x.base), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    x.fp = fopen(path, "r");
    if (x.fp == NULL)
        return rs_error_set(e, RS_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(x.fp), &st) == 0 && S_ISDIR(st.st_mode)) {  /* reads as empty */
        fclose(x.fp);
        return rs_error_set(e, RS_EIO, "%s: is a directory", path);
    }
    r = ini_parse_stream(read_line, &x, on_value, &x);
    fclose(x.fp);
    if (r > 0 && (x.error_line == 0 || r < x.error_line))
        return rs_error_set(e, RS_EINVAL, "%s:%d: syntax error (expected [section], "
                            "key = value, or a # comment)", path, r);
    if (x.error_line != 0)
        return rs_error_set(e, RS_EINVAL, "%s:%d: %s", path, x.error_line, x.error);
    if (r != 0)
        return rs_error_set(e, RS_EIO, "%s: cannot read", path);
    return RS_OK;
}

/* --- the environment ------------------------------------------------------ */

#define ENV_PREFIX "ROSIM_"

/* One ROSIM_<SECTION>_<KEY>=VALUE entry: 1 applied, 0 not ours, -1 error. */
static int
env_entry(struct conf *c, const char *entry, struct conf_origins *origins,
          struct rs_error *e)
{
    char section[32], key[64], why[256];
    const char *p = entry + strlen(ENV_PREFIX), *eq = strchr(entry, '=');
    const struct option *o;
    const char *err;
    size_t i;

    if (eq == NULL)
        return 0;
    for (i = 0; p < eq && *p != '_' && i + 1 < sizeof(section); p++)
        section[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : '?');
    section[i] = '\0';
    if (p >= eq || *p != '_' || !section_known(section))
        return 0;
    for (i = 0, p++; p < eq && i + 1 < sizeof(key); p++)
        key[i++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a'
                          : (*p == '_' || (*p >= '0' && *p <= '9')) ? *p : '?');
    key[i] = '\0';
    o = p == eq ? find_option(section, key) : NULL;
    if (o == NULL) {
        rs_error_set(e, RS_EINVAL, "environment: %.*s: not an option of [%s]",
                     (int)(eq - entry), entry, section);
        return -1;
    }
    err = apply(c, o, eq + 1, NULL, why, sizeof(why));
    if (err != NULL) {
        rs_error_set(e, RS_EINVAL, "environment: %.*s: [%s] %s: %s", (int)(eq - entry),
                     entry, section, o->key, err);
        return -1;
    }
    if (origins != NULL)
        origins->source[o - options] = CONF_SRC_ENV;
    return 1;
}

int
conf_env(struct conf *c, char *const *env, struct conf_origins *origins, struct rs_error *e)
{
    for (; *env != NULL; env++)
        if (strncmp(*env, ENV_PREFIX, strlen(ENV_PREFIX)) == 0 &&
            env_entry(c, *env, origins, e) < 0)
            return RS_EINVAL;
    return RS_OK;
}

/* --- the effective configuration ----------------------------------------- */

/* The value of option o in c, written back as the file would spell it. */
static void
format_value(const struct conf *c, const struct option *o, char *buf, size_t len)
{
    const char *field = (const char *)c + o->offset;

    switch (o->type) {
    case OPT_ADDR: {
        const struct conf_addr *a = (const struct conf_addr *)field;
        snprintf(buf, len, strchr(a->host, ':') ? "[%s]:%d" : "%s:%d", a->host, a->port);
        return;
    }
    case OPT_INT_AUTO:
        if (*(const int *)field == 0) {
            snprintf(buf, len, "auto");
            return;
        }
        /* fall through */
    case OPT_INT:
        snprintf(buf, len, "%d", *(const int *)field);
        return;
    case OPT_SIZE: {
        static const char suffix[] = "gmk";
        unsigned long long n = *(const size_t *)field;
        for (int i = 0; i < 3; i++) {
            unsigned long long unit = 1ULL << (10 * (3 - i));
            if (n >= unit && n % unit == 0) {
                snprintf(buf, len, "%llu%c", n / unit, suffix[i]);
                return;
            }
        }
        snprintf(buf, len, "%llu", n);
        return;
    }
    case OPT_PATH:
    case OPT_OPTIONAL_PATH: {
        /* absolute, so that the printed file means the same wherever it is
         * put (relative paths in a file are relative to the file) */
        char cwd[CONF_PATH_MAX];
        if (field[0] != '\0' && field[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
            snprintf(buf, len, "%s/%s", cwd, field);
        else
            snprintf(buf, len, "%s", field);
        return;
    }
    case OPT_STRING:
        snprintf(buf, len, "%s", field);
        return;
    case OPT_DSN:
        st_pg_dsn_redact(field, buf, len);
        return;
    case OPT_ENUM:
    case OPT_BOOL:
        snprintf(buf, len, "%s", o->choices[*(const int *)field]);
        return;
    }
}

void
conf_print(FILE *out, const struct conf *c, const struct conf_origins *origins,
           const char *path)
{
    const char *section = "";

    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        char value[CONF_PATH_MAX + 16], left[CONF_PATH_MAX + 96], var[96], *v;

        if (strcmp(o->section, section) != 0) {
            fprintf(out, "%s[%s]\n", i ? "\n" : "", o->section);
            section = o->section;
        }
        format_value(c, o, value, sizeof(value));
        snprintf(left, sizeof(left), "%s =%s%s", o->key, *value ? " " : "", value);
        fprintf(out, "%-40s ; ", left);
        switch (origins->source[i]) {
        case CONF_SRC_FILE:
            fprintf(out, "%s:%d\n", path, origins->line[i]);
            break;
        case CONF_SRC_ENV:
            snprintf(var, sizeof(var), ENV_PREFIX "%s_%s", o->section, o->key);
            for (v = var; *v; v++)
                if (*v >= 'a' && *v <= 'z')
                    *v = (char)(*v - 'a' + 'A');
            fprintf(out, "environment %s\n", var);
            break;
        case CONF_SRC_ARG:
            fprintf(out, "command line\n");
            break;
        case CONF_SRC_AUTO:
            fprintf(out, "auto: the CPUs available to rosimd\n");
            break;
        default:
            fprintf(out, "default\n");
            break;
        }
    }
}
