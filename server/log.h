/*
 * log.h: leveled logging for the daemon, one line per event on stderr.
 *
 * Lines look like
 *     2026-11-29T14:05:45.123Z rosimd[4242] INFO listening on 127.0.0.1:8080
 * which `docker logs` and plain files keep as they are.  When stderr is
 * the systemd journal (JOURNAL_STREAM names stderr's device and inode),
 * log_init() switches to the sd-daemon form instead,
 *     <6>INFO listening on 127.0.0.1:8080
 * whose <N> prefix journald turns into the syslog priority (so that
 * `journalctl -p warning` finds the warnings) and which leaves the
 * timestamp and pid to the journal.  log_msg() checks the level before its
 * arguments are evaluated, so debug calls cost nothing when debug logging
 * is off.  Only the daemon logs: model/ and index/ return errors instead.
 * log_write() is safe to call from any thread; log_init() and
 * log_threshold are set once at startup, before other threads start.
 */
#ifndef ROSIM_LOG_H
#define ROSIM_LOG_H

/* RS_ prefixed: <syslog.h> defines LOG_DEBUG, LOG_INFO, ... */
enum log_level { RS_LOG_DEBUG, RS_LOG_INFO, RS_LOG_WARN, RS_LOG_ERROR };

extern int log_threshold;  /* messages below this level are dropped */

#define log_msg(level, ...)                      \
    do {                                         \
        if ((level) >= log_threshold)            \
            log_write((level), __VA_ARGS__);     \
    } while (0)

/* Choose the line format for stderr: the journal's when the environment
 * variable JOURNAL_STREAM ("DEV:INODE") matches stderr, else timestamped
 * lines.  Returns 1 when writing to the journal. */
int log_init(void);

void log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parse "debug", "info", "warn" or "error"; -1 if none of them. */
int log_level_parse(const char *name);

#endif
