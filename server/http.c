/*
 * http.c: libmicrohttpd glue: request bodies, authentication, request ids,
 * the access log, metrics, and a graceful stop.
 *
 * Each connection has its own thread (libmicrohttpd's thread-per-connection
 * mode), since a handler waits while the model works for it.
 *
 * libmicrohttpd calls on_request() several times per request: first with
 * the headers (we allocate a struct request, check the API key and
 * Content-Length, and may answer 401 or 413 at once), then once per chunk
 * of body (appended up to the size cap), then a last time with no data,
 * when the API runs and the reply is queued.  on_completed() logs the
 * request, records its metrics and frees the struct request, the only
 * place that owns it.
 */
#include "http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "log.h"
#include "metrics.h"
#include "openai.h"

#define MAX_KEYS 256

struct http_server {
    struct MHD_Daemon *daemon;
    const struct conf *conf;
    struct app *app;
    int port;
    atomic_int inflight;
    atomic_uint next_id;
    char *keys[MAX_KEYS];     /* API keys; none: no authentication */
    int n_keys;
};

struct request {
    char *body;            /* NUL-terminated, body_len bytes */
    size_t body_len;
    size_t body_cap;
    int too_large;         /* body over the cap: answer 413 at its end */
    int answered;          /* a reply is queued already (401, or 413 on Content-Length) */
    char id[72];           /* request id, echoed in X-Request-Id */
    struct timespec start;
    const char *route;     /* route template, for metrics */
    char line[208];        /* method and path, printable, for the log */
    int status;
    struct http_server *server;
};

static double
since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* --- replies -------------------------------------------------------------- */

static enum MHD_Result
queue(struct MHD_Connection *c, struct request *req, int status, const char *type, char *text,
      const struct api_reply *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char num[16];

    resp = MHD_create_response_from_buffer_with_free_callback(strlen(text), text, free);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    if (r != NULL && r->retry_after > 0) {
        snprintf(num, sizeof(num), "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    if (r != NULL && r->allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    req->status = status;
    ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
send_reply(struct MHD_Connection *c, struct request *req, struct api_reply *r)
{
    char *text = NULL;

    if (r->json != NULL)
        text = json_dumps(r->json, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(r->json);
    r->json = NULL;
    if (r->route != NULL)
        req->route = r->route;
    if (text == NULL) {
        text = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
        if (text == NULL)
            return MHD_NO;
        r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    return queue(c, req, r->status, "application/json", text, r);
}

/* --- authentication -------------------------------------------------------- */

/* Compare in time that depends on the key's length only. */
static int
key_matches(const char *tok, size_t tlen, const char *key)
{
    size_t klen = strlen(key);
    unsigned diff = (unsigned)(tlen != klen);

    for (size_t i = 0; i < klen; i++)
        diff |= (unsigned)((unsigned char)key[i] ^ (unsigned char)(i < tlen ? tok[i] : 0));
    return diff == 0;
}

static int
authorized(const struct http_server *s, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    int ok = 0;

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    for (int i = 0; i < s->n_keys; i++)   /* no early exit: every key is compared */
        ok |= key_matches(h, strlen(h), s->keys[i]);
    return ok;
}

static int
load_keys(struct http_server *s, const char *path, struct rs_error *e)
{
    FILE *f = fopen(path, "r");
    char line[1024];

    if (f == NULL)
        return rs_error_set(e, RS_EIO, "%s: cannot read the API keys", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line, *end;
        while (*p == ' ' || *p == '\t')
            p++;
        end = p + strcspn(p, " \t\r\n");
        *end = '\0';
        if (*p == '\0' || *p == '#')
            continue;
        if (s->n_keys == MAX_KEYS || (s->keys[s->n_keys] = strdup(p)) == NULL) {
            fclose(f);
            return rs_error_set(e, RS_EINVAL, "%s: more than %d keys", path, MAX_KEYS);
        }
        s->n_keys++;
    }
    fclose(f);
    if (s->n_keys == 0)
        return rs_error_set(e, RS_EINVAL, "%s: no API keys in the file", path);
    return RS_OK;
}

/* --- libmicrohttpd callbacks ---------------------------------------------- */

/* The client's X-Request-Id when it is short printable ASCII, else a new one. */
static void
set_request_id(struct http_server *s, struct MHD_Connection *c, struct request *req)
{
    const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = id ? strlen(id) : 0;
    int ok = n > 0 && n < sizeof(req->id);

    for (size_t i = 0; ok && i < n; i++)
        ok = id[i] > ' ' && id[i] < 127;
    if (ok)
        memcpy(req->id, id, n + 1);
    else
        snprintf(req->id, sizeof(req->id), "%08x%08x", (unsigned)time(NULL) ^ (unsigned)getpid(),
                 atomic_fetch_add(&s->next_id, 1));
}

static enum MHD_Result
serve_metrics(struct http_server *s, struct MHD_Connection *c, struct request *req,
              const char *method)
{
    struct api_reply r = { 0, NULL, 0, NULL, "/metrics" };
    char *text;

    req->route = "/metrics";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        api_error(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                  "%s is not allowed here; use GET", method);
        r.allow = "GET";
        return send_reply(c, req, &r);
    }
    text = metrics_render(atomic_load(&s->app->ready) ? s->app->store : NULL);
    if (text == NULL)
        return MHD_NO;
    return queue(c, req, MHD_HTTP_OK, "text/plain; version=0.0.4", text, NULL);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size,
           void **req_cls)
{
    struct http_server *s = cls;
    struct request *req = *req_cls;
    struct api_reply r = { 0, NULL, 0, NULL, NULL };

    (void)version;
    if (req == NULL) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        int open_route = strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 ||
                         (strcmp(url, "/metrics") == 0 && !s->conf->metrics_auth);
        req = calloc(1, sizeof(*req));
        if (req == NULL)
            return MHD_NO;
        *req_cls = req;
        req->server = s;
        req->route = "other";
        clock_gettime(CLOCK_MONOTONIC, &req->start);
        atomic_fetch_add(&s->inflight, 1);
        metrics_inflight(1);
        set_request_id(s, c, req);
        {
            size_t n = (size_t)snprintf(req->line, sizeof(req->line), "%.16s %.180s", method, url);
            for (size_t i = 0; i < n && i < sizeof(req->line); i++)
                if ((unsigned char)req->line[i] < ' ' || req->line[i] == 127)
                    req->line[i] = '?';
        }
        if (s->n_keys > 0 && !open_route && !authorized(s, c)) {
            req->answered = 1;
            metrics_rejected("unauthorized");
            api_error(&r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                      "this route needs \"Authorization: Bearer <API key>\"");
            openai_error_for_path(url, &r);
            return send_reply(c, req, &r);
        }
        if (cl != NULL && strtoull(cl, NULL, 10) > s->conf->max_body_bytes) {
            req->answered = 1;
            api_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                      "request body of %s bytes is over the limit of %zu bytes",
                      cl, s->conf->max_body_bytes);
            openai_error_for_path(url, &r);
            return send_reply(c, req, &r);
        }
        return MHD_YES;
    }
    if (req->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->too_large)
            return MHD_YES;
        if (n > s->conf->max_body_bytes - req->body_len) {
            /* drop what came and what comes; 413 once the upload ends
             * (libmicrohttpd cannot answer in the middle of a body) */
            req->too_large = 1;
            free(req->body);
            req->body = NULL;
            req->body_len = req->body_cap = 0;
            return MHD_YES;
        }
        if (req->body_len + n + 1 > req->body_cap) {
            size_t cap = req->body_cap ? req->body_cap : 4096;
            char *p;
            while (cap < req->body_len + n + 1)
                cap *= 2;
            p = realloc(req->body, cap);
            if (p == NULL)
                return MHD_NO;
            req->body = p;
            req->body_cap = cap;
        }
        memcpy(req->body + req->body_len, upload_data, n);
        req->body_len += n;
        req->body[req->body_len] = '\0';
        return MHD_YES;
    }
    if (req->too_large) {
        api_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                  "request body is over the limit of %zu bytes", s->conf->max_body_bytes);
        openai_error_for_path(url, &r);
        return send_reply(c, req, &r);
    }
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(s, c, req, method);
    {
        struct api_request rq = {
            method, url,
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
            req->body, req->body_len,
        };
        api_handle(s->app, &rq, &r);
    }
    return send_reply(c, req, &r);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct request *req = *req_cls;
    struct http_server *s = cls;
    const union MHD_ConnectionInfo *ci;
    char addr[INET6_ADDRSTRLEN] = "-";
    double secs;

    if (req == NULL)
        return;
    secs = since(&req->start);
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL) {
        if (ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, addr,
                      sizeof(addr));
        else if (ci->client_addr->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr,
                      addr, sizeof(addr));
    }
    metrics_request(req->route, req->status, secs);
    log_msg(LOG_INFO, "req=%s %s %s %d %.1fms%s", req->id, addr, req->line, req->status,
            secs * 1e3, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
    metrics_inflight(-1);
    atomic_fetch_sub(&s->inflight, 1);
    free(req->body);
    free(req);
    *req_cls = NULL;
}

/* Keep URLs as they came: the API splits the path before decoding each
 * segment, so an encoded '/' stays inside a document id. */
static size_t
keep_escapes(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void
on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_msg(LOG_WARN, "http: %s", msg);
}

/* --- lifecycle ------------------------------------------------------------ */

static void
free_keys(struct http_server *s)
{
    for (int i = 0; i < s->n_keys; i++) {
        memset(s->keys[i], 0, strlen(s->keys[i]));
        free(s->keys[i]);
    }
}

struct http_server *
http_server_start(const struct conf *conf, struct app *app, struct rs_error *e)
{
    struct sockaddr_storage ss;
    struct http_server *s;
    const union MHD_DaemonInfo *info;
    /* a thread per connection: handlers block while the model works (the
     * batcher merges their work), and one slow request must not hold up
     * other connections; max_connections bounds the threads */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;

    memset(&ss, 0, sizeof(ss));
    if (strchr(conf->listen.host, ':') != NULL) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)conf->listen.port);
        inet_pton(AF_INET6, conf->listen.host, &a6->sin6_addr);
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)conf->listen.port);
        inet_pton(AF_INET, conf->listen.host, &a4->sin_addr);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rs_error_set(e, RS_ENOMEM, "out of memory");
        return NULL;
    }
    s->conf = conf;
    s->app = app;
    if (conf->api_key_file[0] != '\0' && load_keys(s, conf->api_key_file, e) != RS_OK) {
        free_keys(s);
        free(s);
        return NULL;
    }
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)conf->listen.port, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)conf->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)conf->per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)conf->connection_timeout,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, s,
        MHD_OPTION_END);
    if (s->daemon == NULL) {
        rs_error_set(e, RS_EIO, "cannot listen on %s:%d (address in use, or not "
                     "an address of this machine?)", conf->listen.host, conf->listen.port);
        free_keys(s);
        free(s);
        return NULL;
    }
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info != NULL ? info->port : conf->listen.port;
    return s;
}

int
http_server_port(const struct http_server *s)
{
    return s->port;
}

int
http_server_drain(struct http_server *s, int timeout_s)
{
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    struct timespec t0, nap = { 0, 10 * 1000000 };

    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&s->inflight) > 0 && since(&t0) < timeout_s)
        nanosleep(&nap, NULL);
    return atomic_load(&s->inflight);
}

void
http_server_stop(struct http_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    free_keys(s);
    free(s);
}
