/*
 * http.c: libmicrohttpd glue, request bodies, routing and JSON replies.
 *
 * libmicrohttpd calls on_request() several times per request: first with
 * the headers (we allocate a struct request and check Content-Length), then
 * once per chunk of body (appended up to the size cap), then a last time
 * with no data, when the route runs and a reply is queued.  The struct
 * request is freed in on_completed(), the only place that owns it.
 */
#include "http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api.h"
#include "log.h"

struct http_server {
    struct MHD_Daemon *daemon;
    const struct conf *conf;
    struct app *app;
    int port;
};

struct request {
    char *body;            /* NUL-terminated, body_len bytes */
    size_t body_len;
    size_t body_cap;
    int too_large;         /* body over the cap: answer 413 at its end */
    int answered;          /* a reply is queued already (413 on Content-Length) */
};

/* --- replies -------------------------------------------------------------- */

static enum MHD_Result
send_reply(struct MHD_Connection *c, struct api_reply *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    char *text = NULL, num[16];

    if (r->json != NULL)
        text = json_dumps(r->json, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(r->json);
    r->json = NULL;
    if (text == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
                                               MHD_RESPMEM_PERSISTENT);
        r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else {
        resp = MHD_create_response_from_buffer_with_free_callback(strlen(text), text, free);
    }
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (r->retry_after > 0) {
        snprintf(num, sizeof(num), "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    if (r->allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* --- libmicrohttpd callbacks ---------------------------------------------- */

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size,
           void **req_cls)
{
    struct http_server *s = cls;
    struct request *req = *req_cls;
    struct api_reply r = { 0, NULL, 0, NULL };
    enum MHD_Result ret;

    (void)version;
    if (req == NULL) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        req = calloc(1, sizeof(*req));
        if (req == NULL)
            return MHD_NO;
        *req_cls = req;
        if (cl != NULL && strtoull(cl, NULL, 10) > s->conf->max_body_bytes) {
            req->answered = 1;
            api_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                      "request body of %s bytes is over the limit of %zu bytes",
                      cl, s->conf->max_body_bytes);
            return send_reply(c, &r);
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
        return send_reply(c, &r);
    }
    {
        struct api_request rq = {
            method, url,
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
            req->body, req->body_len,
        };
        api_handle(s->app, &rq, &r);
    }
    ret = send_reply(c, &r);
    return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct request *req = *req_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (req == NULL)
        return;
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

struct http_server *
http_server_start(const struct conf *conf, struct app *app, struct rs_error *e)
{
    struct sockaddr_storage ss;
    struct http_server *s;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

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
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)conf->listen.port, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)conf->http_threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)conf->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)conf->per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)conf->connection_timeout,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, s,
        MHD_OPTION_END);
    if (s->daemon == NULL) {
        rs_error_set(e, RS_EIO, "cannot listen on %s:%d (address in use, or not "
                     "an address of this machine?)", conf->listen.host, conf->listen.port);
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

void
http_server_stop(struct http_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
