/*
 * http.h: the HTTP listener of rosimd (libmicrohttpd, a thread per connection).
 *
 * http_server_start() binds the configured address and serves requests on
 * its own threads.  For a graceful stop, http_server_drain() stops
 * accepting and waits for the requests in flight; http_server_stop() then
 * closes what is left and joins the threads.  With [server] api_key_file,
 * every route but /healthz and /readyz (and /metrics unless metrics_auth)
 * needs a Bearer key.  Request bodies are
 * read incrementally up to server.max_body_bytes; larger ones get 413 as
 * soon as the limit (or a larger Content-Length) is seen.  Every error
 * response has the shape {"error":{"code":"...","message":"..."}}.
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

/* Stop accepting connections and wait up to timeout_s seconds for the
 * requests in flight to finish.  Returns how many are still running. */
int http_server_drain(struct http_server *s, int timeout_s);

/* Close every connection and free s.  NULL is a no-op. */
void http_server_stop(struct http_server *s);

#endif
