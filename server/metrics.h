/*
 * metrics.h: counters, gauges and histograms of the daemon, exposed on
 * GET /metrics in the Prometheus text format (version 0.0.4).
 *
 * Requests are counted by route template (e.g. /v1/collections/{name}/search)
 * and status code, with a latency histogram per route.  The model side
 * reports batches, tokens and generated tokens.  All functions are
 * thread-safe and cheap (one short mutex hold).
 */
#ifndef ROSIM_METRICS_H
#define ROSIM_METRICS_H

#include <stddef.h>

struct store;

void metrics_request(const char *route, int status, double seconds);
void metrics_batch(int sequences, long tokens);
void metrics_generated(long tokens);
/* reason: "queue_full" (the queue is full now), "too_costly" (over the
 * cost budget), "timeout" (waited past request_timeout), "unauthorized",
 * "read_timeout" (the request did not arrive within read_timeout) or
 * "busy" (the collection is busy: being dropped). */
void metrics_rejected(const char *reason);
void metrics_inflight(int delta);
void metrics_queue_depth(int depth);

/* The exposition text (new string, caller frees), including per-collection
 * document counts from store (may be NULL). */
char *metrics_render(struct store *store);

#endif
