/*
 * watchdog.h: systemd watchdog keep-alives tied to the request path.
 *
 * When systemd sets a watchdog (WatchdogSec=, seen as WATCHDOG_USEC), a
 * thread checks the daemon every half interval and sends WATCHDOG=1 only
 * when both parts of the request path make progress:
 *   - the HTTP listener answers GET /healthz on the bound address (a real
 *     connection through libmicrohttpd, with a timeout), or every one of
 *     its connection slots is taken (a flood, which read_timeout clears:
 *     restarting would not help);
 *   - the batcher is idle or has finished a batch since the last check (a
 *     batcher busy with the same batch at two checks in a row is stuck).
 * So a daemon whose listener or encoder hangs stops sending keep-alives
 * and systemd restarts it after WatchdogSec, while a busy but working one
 * keeps them coming.  Generation is not checked: a long generation is
 * legitimate and bounded by the request limits.
 *
 * watchdog_stop() wakes the thread (condition variable) and returns at
 * once: the keep-alive period never delays a stop or a failed start.
 */
#ifndef ROSIM_WATCHDOG_H
#define ROSIM_WATCHDOG_H

#include <stdint.h>

#include "app.h"
#include "http.h"

struct watchdog;

/* Start checking every usec/2 microseconds; http, listening on host (a
 * wildcard host is probed on loopback): a probe that fails while every
 * connection slot is taken (http_server_full) does not count against it,
 * since clients, not a hang, hold the slots.  app: its batcher is checked
 * once app->ready is 1.  NULL when the thread cannot start. */
struct watchdog *watchdog_start(uint64_t usec, struct app *app, struct http_server *http,
                                const char *host);

/* Stop the thread and free w at once.  NULL is a no-op. */
void watchdog_stop(struct watchdog *w);

#endif
