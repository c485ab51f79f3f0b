/*
 * http.h: the HTTP listener of rosimd (libmicrohttpd, a thread per connection).
 *
 * http_server_start() binds the configured address and serves requests on
 * its own threads.  For a graceful stop, http_server_drain() stops
 * accepting and waits for the requests in flight, which are asked to stop
 * (generation between steps) when its timeout passes;
 * http_server_stop() then closes what is left and joins the threads.  A
 * generation also stops when its client goes away.
 *
 * Requests are dispatched by the route table (routes.h): /metrics and the
 * files of web.h are served here, every other request by api_handle().
 * With [server] api_key_file, every route needs a Bearer key but those the
 * table marks open (/healthz, /readyz, the files of web.h, and /metrics
 * unless metrics_auth).  Request bodies are read incrementally up to
 * server.max_body_bytes: a Content-Length over it gets 413 before the body
 * is read, a chunked body gets 413 as soon as it passes it; either way the
 * connection ends.  Framing that could be read two ways (several
 * Content-Length headers, one with Transfer-Encoding, a coding other than
 * chunked) gets 400 and the connection ends.  A request must arrive whole
 * (headers and body) within server.read_timeout, else 408 and the
 * connection ends: a client sending a byte now and then cannot hold a
 * connection.  A stop does not wait for requests still arriving (those with
 * a body under way get 503).  Every error response has
 * the shape {"error":{"code":"...","message":"..."}} (OpenAI's shape and
 * status on its routes, see openai.h: a 413 is a 400 there), but for the
 * few that libmicrohttpd makes before a request line is read (see http.c).
 */
#ifndef ROSIM_HTTP_H
#define ROSIM_HTTP_H

#include "app.h"
#include "config.h"

struct http_server;

/* Start serving the API of app.  Returns NULL and fills e when the address
 * cannot be bound or the library fails to start.  conf and app must
 * outlive the server; app may still be loading (it answers 503 then). */
struct http_server *http_server_start(const struct conf *conf, struct app *app,
                                      struct rs_error *e);

/* The port actually bound (useful when the configured port is 0). */
int http_server_port(const struct http_server *s);

/* 1 when every connection slot (max_connections) is taken: new clients
 * wait in the listen queue until one is freed. */
int http_server_full(const struct http_server *s);

/* Stop accepting connections and wait up to timeout_s seconds for the
 * requests in flight to finish; then ask them to stop and give them half a
 * second more.  Returns how many are still running. */
int http_server_drain(struct http_server *s, int timeout_s);

/* Close every connection and free s.  NULL is a no-op. */
void http_server_stop(struct http_server *s);

#endif
