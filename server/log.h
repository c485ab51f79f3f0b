/*
 * log.h: leveled logging for the daemon, one line per event on stderr.
 *
 * Lines look like
 *     2026-11-29T14:05:45.123Z rosimd[4242] INFO listening on 127.0.0.1:8080
 * which journald and `docker logs` keep as they are.  log_msg() checks the
 * level before its arguments are evaluated, so debug calls cost nothing when
 * debug logging is off.  Only the daemon logs: model/ and index/ return
 * errors instead.  Safe to call from any thread.
 */
#ifndef ROSIM_LOG_H
#define ROSIM_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

extern int log_threshold;  /* messages below this level are dropped */

#define log_msg(level, ...)                      \
    do {                                         \
        if ((level) >= log_threshold)            \
            log_write((level), __VA_ARGS__);     \
    } while (0)

void log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parse "debug", "info", "warn" or "error"; -1 if none of them. */
int log_level_parse(const char *name);

#endif
