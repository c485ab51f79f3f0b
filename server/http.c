/*
 * http.c: libmicrohttpd glue: request framing and bodies, authentication,
 * request ids, the access log, metrics, cancellation and a bounded stop.
 *
 * Each connection has its own thread (libmicrohttpd's thread-per-connection
 * mode), since a handler waits while the model works for it.
 *
 * on_uri() allocates the struct request as soon as the request line is
 * read.  libmicrohttpd then calls on_request() several times: first with
 * the headers (we check the framing, the API key and Content-Length, and
 * may answer 400, 401 or 413 at once), then once per piece of body
 * (appended up to the size cap), then a last time with no data, when the
 * API runs and the reply is queued.  on_completed() logs the request,
 * records its metrics and frees the struct request, the only place that
 * owns it.
 *
 * libmicrohttpd 0.9.75 accepts framing that must be refused (several
 * Content-Length headers, Content-Length with Transfer-Encoding, transfer
 * codings other than chunked); it cannot queue a reply in the middle of a
 * body, so a chunked body over the cap would be read to its end; and the
 * replies it makes itself are HTML.  So a request whose connection must
 * end gets its JSON reply written on the socket here (reply_and_close),
 * and a reply the library is about to make is announced through its error
 * log, from the connection's own thread, before it is built: on_mhd_error
 * answers first and closes the write side, so the library's HTML cannot
 * follow.  What comes before the request line is read (414 for a line
 * over the connection's memory, 505, a malformed request line) stays the
 * library's.
 *
 * Each connection has a slot in conns.h from the library's "started"
 * notice to its "closed", through which its request is held to
 * read_timeout (408), and a stop ends requests still arriving (503).
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "conns.h"
#include "keyfile.h"
#include "log.h"
#include "metrics.h"
#include "openai.h"
#include "routes.h"
#include "web.h"

#define MAX_KEYS KEYFILE_MAX_KEYS
#define STOP_GRACE_MS 500     /* after the stop deadline, for cancelled work to unwind */
struct http_server {
    struct MHD_Daemon *daemon;
    const struct conf *conf;
    struct app *app;
    int port;
    atomic_int inflight;
    atomic_uint next_id;
    atomic_llong stop_at;     /* monotonic ms when work in flight must stop; 0: not stopping */
    char *keys[MAX_KEYS];     /* API keys; none: no authentication */
    int n_keys;
    struct conns *conns;      /* the connections and their deadlines */
};

struct request {
    char *body;            /* NUL-terminated, body_len bytes */
    size_t body_len;
    size_t body_cap;
    int begun;             /* on_request has seen the headers */
    int answered;          /* a reply is queued or sent already */
    int closed;            /* answered on the socket: the connection ends */
    int counted;           /* in the in-flight count (its headers came) */
    MHD_socket fd;
    struct conn *conn;
    char id[72];           /* request id, echoed in X-Request-Id */
    struct timespec start;
    const char *route;     /* route template, for metrics */
    char line[208];        /* method and path, printable, for the log */
    int status;
    struct http_server *server;
};

/* The request this connection thread is reading, and its connection, for
 * on_mhd_error (libmicrohttpd's log callback does not name the
 * connection).  Set by on_uri, cleared by on_completed. */
static _Thread_local struct request *thread_req;
static _Thread_local struct MHD_Connection *thread_conn;

static double
since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

static long long
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* --- replies -------------------------------------------------------------- */

/* Send resp with status and the request's id, and release it. */
static enum MHD_Result
send_response(struct MHD_Connection *c, struct request *req, int status,
              struct MHD_Response *resp)
{
    enum MHD_Result ret;

    MHD_add_response_header(resp, "X-Request-Id", req->id);
    req->status = status;
    ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
queue(struct MHD_Connection *c, struct request *req, int status, const char *type, char *text,
      const struct api_reply *r)
{
    struct MHD_Response *resp;
    char num[16];

    resp = MHD_create_response_from_buffer_with_free_callback(strlen(text), text, free);
    if (resp == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (r != NULL && r->retry_after > 0) {
        snprintf(num, sizeof(num), "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    if (r != NULL && r->allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    return send_response(c, req, status, resp);
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

/* Write all of buf on fd (non-blocking) within about a second. */
static void
write_all(MHD_socket fd, const char *buf, size_t len)
{
    long long until = now_ms() + 1000;

    while (len > 0 && now_ms() < until) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            struct pollfd p = { fd, POLLOUT, 0 };
            poll(&p, 1, 100);
        } else {
            return;
        }
    }
}

/* The whole HTTP response for r (an error reply, consumed), ending the
 * connection; NULL when out of memory.  Returns its length in *len. */
static char *
closing_response(struct api_reply *r, const char *id, size_t *len)
{
    const char *reason = MHD_get_reason_phrase_for((unsigned)r->status);
    char *text = r->json != NULL ? json_dumps(r->json, JSON_COMPACT) : NULL, *out = NULL;
    int n;

    json_decref(r->json);
    r->json = NULL;
    n = asprintf(&out, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                 "X-Request-Id: %s\r\nContent-Length: %zu\r\n\r\n%s", r->status,
                 reason != NULL && *reason != '\0' ? reason : "Error", id,
                 text != NULL ? strlen(text) : 0, text != NULL ? text : "");
    free(text);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return out;
}

/* The slot of connection c, or NULL (none could be made). */
static struct conn *
conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

/* Answer with an error written on the socket itself and end the
 * connection: our write side is closed at once, and libmicrohttpd closes
 * the rest when the caller returns MHD_NO (or when its own reply fails).
 * For errors after which the request's bytes cannot be trusted or need
 * not be read. */
static void
reply_and_close(struct MHD_Connection *c, struct request *req, const char *url, int status,
                const char *code, const char *msg)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct api_reply r = { 0, NULL, 0, NULL, NULL };
    char *out;
    size_t n;

    req->answered = req->closed = 1;
    conn_answered(req->server->conns, conn_of(c));   /* the reaper must not write too */
    api_error(&r, status, code, "%s", msg);
    if (url != NULL)
        openai_error_for_path(url, &r);   /* in OpenAI's shape on its routes */
    req->status = r.status;
    if (ci == NULL) {
        json_decref(r.json);
        return;
    }
    if ((out = closing_response(&r, req->id, &n)) != NULL)
        write_all(ci->connect_fd, out, n);
    shutdown(ci->connect_fd, SHUT_WR);
    free(out);
}

/* --- connection deadlines (conns.h) ---------------------------------------- */

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci != NULL ? conns_opened(s->conns, ci->connect_fd) : NULL;
    } else {
        conns_closed(s->conns, *socket_context);
        *socket_context = NULL;
    }
}

/* The reply that ends a connection whose request is late (408) or still
 * arriving at a stop (503). */
static char *
deadline_response(void *arg, int status, size_t *len)
{
    struct http_server *s = arg;
    struct api_reply r = { 0, NULL, 0, NULL, NULL };
    char id[32];

    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        api_error(&r, status, "unavailable", "the server is stopping; retry the request");
    else
        api_error(&r, status, "request_timeout", "the request did not arrive whole within "
                  "%d s", s->conf->read_timeout);
    snprintf(id, sizeof(id), "%08x%08x", (unsigned)time(NULL) ^ (unsigned)getpid(),
             atomic_fetch_add(&s->next_id, 1));
    return closing_response(&r, id, len);
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
    return keyfile_load(path, s->keys, MAX_KEYS, &s->n_keys, e);
}

/* --- libmicrohttpd callbacks ---------------------------------------------- */

struct framing {
    int content_length, transfer_encoding;
    const char *coding;
};

static enum MHD_Result
count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct framing *f = cls;

    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->content_length++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encoding++;
        f->coding = value;
    }
    return MHD_YES;
}

/* What is wrong with the body's framing, or NULL.  libmicrohttpd 0.9.75
 * uses the first Content-Length and ignores the others (the body of one
 * becomes the next request), prefers Transfer-Encoding to Content-Length
 * (where intermediaries may not), and waits forever for a body in a
 * coding other than chunked.  It refuses malformed values itself. */
static const char *
framing_error(struct MHD_Connection *c)
{
    struct framing f = { 0, 0, NULL };

    MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &f);
    if (f.content_length > 1)
        return "more than one Content-Length header";
    if (f.transfer_encoding > 1)
        return "more than one Transfer-Encoding header";
    if (f.content_length > 0 && f.transfer_encoding > 0)
        return "both Content-Length and Transfer-Encoding";
    if (f.transfer_encoding > 0 && strcasecmp(f.coding, "chunked") != 0)
        return "Transfer-Encoding must be chunked (no other coding is supported)";
    return NULL;
}

/* The body is in a content coding (gzip, ...): not read as JSON. */
static int
encoded(struct MHD_Connection *c)
{
    const char *ce = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_ENCODING);
    return ce != NULL && strcasecmp(ce, "identity") != 0;
}

/* Whether the request should stop working: the stop deadline passed, or
 * the client went away (its side of the connection is closed; a client
 * that half-closes after its request counts as gone). */
static int
request_cancelled(void *arg)
{
    struct request *req = arg;
    long long stop_at = atomic_load(&req->server->stop_at);
    struct pollfd p = { req->fd, POLLRDHUP, 0 };

    if (stop_at != 0 && now_ms() >= stop_at)
        return 1;
    return req->fd != MHD_INVALID_SOCKET && poll(&p, 1, 0) == 1 &&
           (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* "METHOD PATH" for the log, control characters made '?'. */
static void
set_line(struct request *req, const char *method, const char *url)
{
    size_t n = (size_t)snprintf(req->line, sizeof(req->line), "%.16s %.180s", method, url);

    for (size_t i = 0; i < n && i < sizeof(req->line); i++)
        if ((unsigned char)req->line[i] < ' ' || req->line[i] == 127)
            req->line[i] = '?';
}

/* The request line is read: the request begins (its method is not known
 * yet; on_request fills it in).  It counts as in flight once its headers
 * are in: a stop does not wait for a request still arriving. */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct http_server *s = cls;
    struct request *req = calloc(1, sizeof(*req));

    if (req == NULL)
        return NULL;
    req->server = s;
    req->route = "other";
    req->fd = MHD_INVALID_SOCKET;
    clock_gettime(CLOCK_MONOTONIC, &req->start);
    set_line(req, "-", uri);
    conn_arriving(s->conns, conn_of(c));
    thread_req = req;
    thread_conn = c;
    return req;
}

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

/* A file compiled in (web.h), or 304 when the client's copy is current. */
static enum MHD_Result
serve_file(struct MHD_Connection *c, struct request *req, const struct web_file *f)
{
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_IF_NONE_MATCH);
    int status = inm != NULL && strstr(inm, f->etag) != NULL ? MHD_HTTP_NOT_MODIFIED
                                                            : MHD_HTTP_OK;
    struct MHD_Response *resp;

    req->route = f->path;
    resp = MHD_create_response_from_buffer(status == MHD_HTTP_OK ? f->len : 0, (void *)f->data,
                                           MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    if (status == MHD_HTTP_OK)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, f->type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, f->etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, WEB_CACHE_CONTROL);
    MHD_add_response_header(resp, "Content-Security-Policy", WEB_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    return send_response(c, req, status, resp);
}

static enum MHD_Result
serve_metrics(struct http_server *s, struct MHD_Connection *c, struct request *req)
{
    char *text;

    req->route = "/metrics";
    text = metrics_render(atomic_load(&s->app->ready) ? s->app->store : NULL);
    if (text == NULL)
        return MHD_NO;
    return queue(c, req, MHD_HTTP_OK, "text/plain; version=0.0.4", text, NULL);
}

/* A query argument of the request on connection arg (api.h). */
static const char *
query_arg(void *arg, const char *key)
{
    return MHD_lookup_connection_value(arg, MHD_GET_ARGUMENT_KIND, key);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size,
           void **req_cls)
{
    struct http_server *s = cls;
    struct request *req = *req_cls;
    struct api_reply r = { 0, NULL, 0, NULL, NULL };
    struct route_match m;

    (void)version;
    if (req == NULL)
        return MHD_NO;     /* on_uri ran out of memory */
    if (!req->begun) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        int open_route = route_match(method, url, &m) != ROUTE_NONE && m.route != NULL &&
                         (m.route->flags & ROUTE_OPEN) &&
                         !((m.route->flags & ROUTE_METRICS) && s->conf->metrics_auth);
        const char *bad;
        req->begun = req->counted = 1;
        atomic_fetch_add(&s->inflight, 1);
        metrics_inflight(1);
        req->conn = conn_of(c);
        if (m.route != NULL)    /* the label of a reply made here (401, 413, 415) */
            req->route = m.route->pattern;
        req->fd = ci != NULL ? ci->connect_fd : MHD_INVALID_SOCKET;
        set_request_id(s, c, req);
        set_line(req, method, url);
        if ((bad = framing_error(c)) != NULL) {
            reply_and_close(c, req, url, MHD_HTTP_BAD_REQUEST, "bad_framing", bad);
            return MHD_NO;
        }
        if (encoded(c)) {
            req->answered = 1;
            conn_answered(s->conns, req->conn);
            api_error(&r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                      "Content-Encoding is not supported: send the body as it is");
            openai_error_for_path(url, &r);
            return send_reply(c, req, &r);
        }
        if (s->n_keys > 0 && !open_route && !authorized(s, c)) {
            req->answered = 1;
            conn_answered(s->conns, req->conn);
            metrics_rejected("unauthorized");
            api_error(&r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                      "this route needs \"Authorization: Bearer <API key>\"");
            openai_error_for_path(url, &r);
            return send_reply(c, req, &r);
        }
        if (cl != NULL && strtoull(cl, NULL, 10) > s->conf->max_body_bytes) {
            req->answered = 1;
            conn_answered(s->conns, req->conn);
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
        if (n > s->conf->max_body_bytes - req->body_len) {
            /* a chunked body passed the cap: answer now and read no more */
            char msg[128];
            snprintf(msg, sizeof(msg), "request body is over the limit of %zu bytes",
                     s->conf->max_body_bytes);
            reply_and_close(c, req, url, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", msg);
            return MHD_NO;
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
    conn_handling(s->conns, req->conn);
    if (route_match(method, url, &m) == ROUTE_FOUND) {
        if (m.route->flags & ROUTE_METRICS)
            return serve_metrics(s, c, req);
        if ((m.route->flags & ROUTE_FILE) && web_find(m.route->pattern) != NULL)
            return serve_file(c, req, web_find(m.route->pattern));
    }
    {
        struct api_request rq = {
            method, url,
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
            req->body, req->body_len, request_cancelled, req, query_arg, c,
        };
        api_handle(s->app, &rq, &r);
    }
    return send_reply(c, req, &r);
}

/* Health probes that succeed come every few seconds (Docker's HEALTHCHECK,
 * Kubernetes): logged at debug level so that they do not fill the log. */
static int
quiet_probe(const struct request *req)
{
    return req->status < 400 && req->route != NULL &&
           (strcmp(req->route, "/healthz") == 0 || strcmp(req->route, "/readyz") == 0);
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
    if (thread_req == req) {
        thread_req = NULL;
        thread_conn = NULL;
    }
    conn_done(s->conns, conn_of(c), &req->status, &req->closed);
    if (req->status == 0) {   /* a reply libmicrohttpd made, or none */
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        req->status = ci != NULL ? (int)ci->http_status : 0;
    }
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
    log_msg(quiet_probe(req) ? RS_LOG_DEBUG : RS_LOG_INFO, "req=%s %s %s %d %.1fms%s",
            req->id[0] ? req->id : "-", addr, req->line, req->status, secs * 1e3,
            req->closed ? " (closed)"
            : toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
    if (req->counted) {
        metrics_inflight(-1);
        atomic_fetch_sub(&s->inflight, 1);
    }
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

/* The library's own reply for the request this thread reads is about to be
 * built: answer first, in JSON (see the top of the file). */
static void
answer_for_library(struct http_server *s, unsigned status)
{
    struct request *req = thread_req;
    const char *code = "bad_request", *msg = "the request is not valid HTTP/1.1 (a header "
                       "line, Content-Length or the chunked framing)";

    if (req == NULL || req->answered || thread_conn == NULL)
        return;
    if (req->id[0] == '\0')
        set_request_id(s, thread_conn, req);
    if (status == MHD_HTTP_CONTENT_TOO_LARGE) {
        code = "body_too_large";
        msg = "Content-Length or a chunk size is too large";
    } else if (status == MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE) {
        code = "headers_too_large";
        msg = "the request headers are too large";
    } else if (status != MHD_HTTP_BAD_REQUEST) {
        code = "http_error";
        msg = MHD_get_reason_phrase_for(status);
    }
    reply_and_close(thread_conn, req, NULL, (int)status, code, msg);
}

static void
on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    static const char reply_notice[] = "Error processing request (HTTP response code is %u";
    char msg[512];
    size_t n;

    if (strncmp(fmt, reply_notice, sizeof(reply_notice) - 1) == 0) {
        va_list aq;
        va_copy(aq, ap);
        answer_for_library(cls, va_arg(aq, unsigned));
        va_end(aq);
    }
    if (thread_req != NULL && thread_req->closed)
        return;   /* answered and logged: the library's notes on it are noise */
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_msg(RS_LOG_WARN, "http: %s", msg);
}

/* --- lifecycle ------------------------------------------------------------ */

static void
free_server(struct http_server *s)
{
    for (int i = 0; i < s->n_keys; i++) {
        memset(s->keys[i], 0, strlen(s->keys[i]));
        free(s->keys[i]);
    }
    conns_stop(s->conns);
    free(s);
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
    if ((conf->api_key_file[0] != '\0' && load_keys(s, conf->api_key_file, e) != RS_OK) ||
        (s->conns = conns_start(conf->read_timeout, conf->connection_timeout,
                                deadline_response, s, e)) == NULL) {
        free_server(s);
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
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_END);
    if (s->daemon == NULL) {
        rs_error_set(e, RS_EIO, "cannot listen on %s:%d (address in use, or not "
                     "an address of this machine?)", conf->listen.host, conf->listen.port);
        free_server(s);
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
http_server_full(const struct http_server *s)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

    return info != NULL && info->num_connections >= (unsigned)s->conf->max_connections;
}

int
http_server_drain(struct http_server *s, int timeout_s)
{
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    struct timespec nap = { 0, 10 * 1000000 };
    long long stop_at = now_ms() + (long long)timeout_s * 1000;

    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    atomic_store(&s->stop_at, stop_at);
    conns_stopping(s->conns);   /* requests still arriving: 503 now */
    while (atomic_load(&s->inflight) > 0 && now_ms() < stop_at + STOP_GRACE_MS)
        nanosleep(&nap, NULL);
    return atomic_load(&s->inflight);
}

void
http_server_stop(struct http_server *s)
{
    if (s == NULL)
        return;
    conns_stop_reaper(s->conns);
    MHD_stop_daemon(s->daemon);   /* the connections close: conns_closed */
    free_server(s);
}
