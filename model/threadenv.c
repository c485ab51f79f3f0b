/*
 * threadenv.c: the OpenMP environment rosimd and rosim run under (see
 * threadenv.h).
 *
 * The program executed again finds ROSIM_THREADENV in its environment,
 * holding what was removed: that both stops a second execution and lets
 * the program say what it removed once it can (rosimd once logging is up).
 */
#include "threadenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MARK "ROSIM_THREADENV"

/* Remove name from the environment when it is set (and, with keep_false,
 * not "false"), noting "name=value" in removed.  1 when removed. */
static int
drop(const char *name, int keep_false, char *removed, size_t len)
{
    const char *v = getenv(name);
    size_t at = strlen(removed);

    if (v == NULL || (keep_false && strcasecmp(v, "false") == 0))
        return 0;
    snprintf(removed + at, len - at, "%s%s=%s", at > 0 ? " " : "", name, v);
    unsetenv(name);
    return 1;
}

int
threadenv_fix(char *removed, size_t len)
{
    int changed = 0;

    removed[0] = '\0';
    if (getenv(MARK) != NULL)
        return 0;
    changed |= drop("OMP_THREAD_LIMIT", 0, removed, len);
    changed |= drop("OMP_DYNAMIC", 1, removed, len);
    if (getenv("OMP_WAIT_POLICY") == NULL) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        changed = 1;
    }
    if (changed)
        setenv(MARK, removed, 1);
    return changed;
}

void
threadenv_reexec(char *const argv[])
{
    execv("/proc/self/exe", argv);
}

const char *
threadenv_removed(void)
{
    return getenv(MARK);
}
