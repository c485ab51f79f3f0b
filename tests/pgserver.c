/*
 * pgserver.c: a throw-away PostgreSQL server for the suites (pgserver.h).
 */
#include "pgserver.h"

#include <glob.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* The directory holding initdb and pg_ctl, or 0. */
static int
find_bin(struct tu_pg *pg)
{
    const char *env = getenv("PG_BIN");
    glob_t g;
    int found = 0;

    if (env != NULL && *env != '\0') {
        snprintf(pg->bin, sizeof(pg->bin), "%s", env);
        return 1;
    }
    /* sorted: the last is the newest (versions have two digits) */
    if (glob("/usr/lib/postgresql/*/bin/pg_ctl", 0, NULL, &g) == 0) {
        snprintf(pg->bin, sizeof(pg->bin), "%s", g.gl_pathv[g.gl_pathc - 1]);
        *strrchr(pg->bin, '/') = '\0';
        found = 1;
    }
    globfree(&g);
    return found;
}

/* Run bin/prog args... as the cluster's owner; its output in why on
 * failure. */
static int
pg_run(struct tu_pg *pg, const char *prog, const char *const args[])
{
    char path[300], *argv[24], *out = NULL, *err = NULL;
    int n = 0, rc;

    snprintf(path, sizeof(path), "%s/%s", pg->bin, prog);
    if (geteuid() == 0) {
        argv[n++] = "/usr/sbin/runuser";
        argv[n++] = "-u";
        argv[n++] = "postgres";
        argv[n++] = "--";
    }
    argv[n++] = path;
    for (int i = 0; args[i] != NULL && n < 23; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    rc = tu_run(argv, NULL, &out, &err);
    if (rc != 0)
        snprintf(pg->why, sizeof(pg->why), "%s failed (%d): %s%s", prog, rc, out ? out : "",
                 err ? err : "");
    free(out);
    free(err);
    return rc == 0 ? 0 : -1;
}

static int
pg_ctl(struct tu_pg *pg, const char *action)
{
    char data[96], log[96], opts[160];
    const char *start[] = { "-D", data, "-l", log, "-w", "-t", "60", "-o", opts, action, NULL };
    const char *stop[] = { "-D", data, "-w", "-t", "60", "-m", "fast", action, NULL };

    snprintf(data, sizeof(data), "%s/data", pg->dir);
    snprintf(log, sizeof(log), "%s/log", pg->dir);
    snprintf(opts, sizeof(opts), "-k %s -c listen_addresses= -p 5432", pg->dir);
    return pg_run(pg, "pg_ctl", strcmp(action, "start") == 0 ? start : stop);
}

int
tu_pg_start(struct tu_pg *pg)
{
    char data[96];
    const char *initdb[] = { "-D", data, "-A", "trust", "-U", "rosim", "-E", "UTF8",
                             "--no-sync", NULL };
    struct passwd *pw = NULL;

    memset(pg, 0, sizeof(*pg));
    if (!find_bin(pg)) {
        snprintf(pg->why, sizeof(pg->why), "PostgreSQL is not installed (no "
                 "/usr/lib/postgresql/*/bin/pg_ctl; PG_BIN names another place)");
        return 1;
    }
    if (geteuid() == 0 && (pw = getpwnam("postgres")) == NULL) {
        snprintf(pg->why, sizeof(pg->why), "PostgreSQL is not installed (no user postgres)");
        return 1;
    }
    snprintf(pg->dir, sizeof(pg->dir), "/tmp/rosim-pg-XXXXXX");
    if (mkdtemp(pg->dir) == NULL) {
        snprintf(pg->why, sizeof(pg->why), "mkdtemp failed");
        return -1;
    }
    if (pw != NULL && chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0) {
        snprintf(pg->why, sizeof(pg->why), "chown %s failed", pg->dir);
        tu_pg_destroy(pg);
        return -1;
    }
    snprintf(data, sizeof(data), "%s/data", pg->dir);
    snprintf(pg->dsn, sizeof(pg->dsn), "host=%s port=5432 user=rosim dbname=postgres",
             pg->dir);
    if (pg_run(pg, "initdb", initdb) != 0 || pg_ctl(pg, "start") != 0) {
        char why[sizeof(pg->why)];
        memcpy(why, pg->why, sizeof(why));
        tu_pg_destroy(pg);
        memcpy(pg->why, why, sizeof(why));
        return -1;
    }
    return 0;
}

int
tu_pg_stop(struct tu_pg *pg)
{
    return pg_ctl(pg, "stop");
}

int
tu_pg_restart(struct tu_pg *pg)
{
    return pg_ctl(pg, "start");
}

void
tu_pg_destroy(struct tu_pg *pg)
{
    char pid[96], cmd[128];

    if (pg->dir[0] == '\0')
        return;
    snprintf(pid, sizeof(pid), "%s/data/postmaster.pid", pg->dir);
    if (access(pid, F_OK) == 0)
        tu_pg_stop(pg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pg->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "pgserver: could not remove %s\n", pg->dir);
    pg->dir[0] = '\0';
}
