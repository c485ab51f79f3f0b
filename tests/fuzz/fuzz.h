/*
 * fuzz.h: what the fuzz harnesses share: a scratch path removed at exit.
 */
#ifndef ROSIM_FUZZ_H
#define ROSIM_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char fuzz_scratch[96];

static void
fuzz_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fuzz_scratch);
    if (system(cmd) != 0)
        return;
}

/* /tmp/rosim-fuzz-<what>-<pid>, removed when the fuzzer exits. */
static inline const char *
fuzz_scratch_path(const char *what)
{
    if (fuzz_scratch[0] == '\0') {
        snprintf(fuzz_scratch, sizeof(fuzz_scratch), "/tmp/rosim-fuzz-%s-%d", what, (int)getpid());
        atexit(fuzz_cleanup);
    }
    return fuzz_scratch;
}

#endif
