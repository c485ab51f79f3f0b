/*
 * log.c: log lines written with one write(2) each, so lines from
 * different threads never interleave; timestamped, or prefixed with the
 * syslog priority when stderr is the journal (see log.h).
 */
#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_threshold = RS_LOG_INFO;

static int to_journal;

static const char *const level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

/* syslog priorities of the levels: debug 7, info 6, warning 4, err 3 */
static const int level_priority[] = { 7, 6, 4, 3 };

int
log_init(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    uintmax_t dev, ino;
    struct stat st;
    char tail;

    to_journal = 0;
    if (js != NULL && sscanf(js, "%ju:%ju%c", &dev, &ino, &tail) == 2 &&
        fstat(STDERR_FILENO, &st) == 0 && (uintmax_t)st.st_dev == dev &&
        (uintmax_t)st.st_ino == ino)
        to_journal = 1;
    return to_journal;
}

void
log_write(int level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    size_t n;
    int r;

    if (to_journal) {
        n = (size_t)snprintf(line, sizeof(line), "<%d>%s ", level_priority[level],
                             level_names[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        r = snprintf(line + n, sizeof(line) - n, ".%03ldZ rosimd[%d] %s ",
                     ts.tv_nsec / 1000000, (int)getpid(), level_names[level]);
        n += (size_t)r;
    }
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (r < 0)
        r = 0;
    n += (size_t)r;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;  /* truncated: keep the newline */
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
}

int
log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}
