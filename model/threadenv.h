/*
 * threadenv.h: the OpenMP environment the inference core needs, set
 * before OpenMP starts; rosimd and rosim both begin with it.
 *
 * libgomp reads its environment once, when the program is loaded, before
 * main() runs: a setenv() in main changes nothing for it.  So the very
 * first thing rosimd (and rosim) does is check its environment and, when it must
 * change, execute itself again with the corrected one (same program, same
 * arguments), before any thread, file or socket of its own exists:
 *
 *  - OMP_WAIT_POLICY unset becomes passive: OpenMP threads between two
 *    products sleep instead of spinning on the cores the HTTP and batcher
 *    threads (or FAISS's own threads) need (set it to active to keep the
 *    spinning);
 *  - OMP_THREAD_LIMIT, and OMP_DYNAMIC other than false, are removed:
 *    either lets the runtime run a parallel region on fewer threads than
 *    asked for, and oneDNN's kernels, planned for the full team, then
 *    return wrong vectors without an error.  [model] threads (rosim:
 *    --threads) sizes the teams.
 *
 *     char removed[128];
 *     if (threadenv_fix(removed, sizeof(removed)))
 *         threadenv_reexec(argv);     // returns only when exec failed
 *     ...
 *     threadenv_removed()             // after the re-exec: what was removed
 */
#ifndef ROSIM_THREADENV_H
#define ROSIM_THREADENV_H

#include <stddef.h>

/* Correct the process environment (setenv, unsetenv) as above.  Returns 1
 * when it changed and the program must be executed again for OpenMP to
 * see it, 0 when it is right already (or the program was executed again
 * once already: never twice).  removed (len bytes) gets the settings
 * removed, "NAME=value NAME=value", or "". */
int threadenv_fix(char *removed, size_t len);

/* Execute this program again with argv in the corrected environment.
 * Returns only on failure (errno set). */
void threadenv_reexec(char *const argv[]);

/* In the program executed again: the settings threadenv_fix removed ("" for
 * none), or NULL when it did not run again. */
const char *threadenv_removed(void);

#endif
