/*
 * conns.h: the connections of the HTTP listener, and the deadline by which
 * each must deliver its request.
 *
 *     struct conns *t = conns_start(30, 30, respond, arg, &err);
 *     struct conn *k = conns_opened(t, fd);    // the library's "started"
 *     conn_arriving(t, k);                     // a request line came
 *     conn_handling(t, k);                     // it arrived whole
 *     conn_done(t, k, &status, &closed);       // its reply went out
 *     conns_closed(t, k);                      // the library's "closed"
 *     conns_stop(t);
 *
 * libmicrohttpd's connection timeout is an idle one: a client sending a
 * byte now and then holds its connection, and its thread, for ever.  So a
 * request must arrive whole (headers and body) within read_timeout of the
 * connection's opening, or, on a kept-alive connection, within
 * idle_timeout + read_timeout of the previous reply.  A reaper thread ends
 * the connections past their deadline: the reply respond() makes (408) in
 * one non-blocking send, unless one is queued already, then a shutdown of
 * the socket, which makes the library close the connection.  After
 * conns_stopping(), requests still arriving are ended the same way with
 * 503.
 *
 * The socket is never closed here: the library's "closed" notice comes
 * before it closes it, and the slot leaves the table under its lock then,
 * so the fd of a slot in the table is always its connection's own.
 */
#ifndef ROSIM_CONNS_H
#define ROSIM_CONNS_H

#include <stddef.h>

#include "../model/error.h"

struct conns;
struct conn;

/* The whole HTTP response that ends a connection with status (408 or 503),
 * as a new string of *len bytes; NULL when out of memory. */
typedef char *(*conns_respond_fn)(void *arg, int status, size_t *len);

/* Start the reaper.  NULL with e filled when the thread cannot start. */
struct conns *conns_start(int read_timeout_s, int idle_timeout_s, conns_respond_fn respond,
                          void *arg, struct rs_error *e);
/* Stop the reaper and free t: every connection must be closed (the
 * library stopped).  NULL is a no-op. */
void conns_stop(struct conns *t);
/* Stop the reaper only, leaving the table (the library may still report
 * connections closing). */
void conns_stop_reaper(struct conns *t);

/* A connection opened on socket fd; NULL when out of memory (it then has
 * no deadline but the idle timeout). */
struct conn *conns_opened(struct conns *t, int fd);
/* The connection closed: k leaves the table and is freed. */
void conns_closed(struct conns *t, struct conn *k);

/* The connection's request line came (a stop ends it with 503 now). */
void conn_arriving(struct conns *t, struct conn *k);
/* A reply is queued before the request's body ended: the reaper sends
 * none of its own. */
void conn_answered(struct conns *t, struct conn *k);
/* The request arrived whole and is being handled: no deadline until done. */
void conn_handling(struct conns *t, struct conn *k);
/* The request is done and the next one's deadline starts.  When the reaper
 * ended it, and *status is 0, *status becomes the status it sent, and
 * *closed 1. */
void conn_done(struct conns *t, struct conn *k, int *status, int *closed);

/* A stop began: requests still arriving are ended with 503. */
void conns_stopping(struct conns *t);

#endif
