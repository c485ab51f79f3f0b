/*
 * pgserver.h: a throw-away PostgreSQL server for the suites.
 *
 *     struct tu_pg pg;
 *     if (tu_pg_start(&pg) == 1) skip(pg.why);    // no PostgreSQL installed
 *     ... connect with pg.dsn ...
 *     tu_pg_stop(&pg);  tu_pg_restart(&pg);       // the server going away
 *     tu_pg_destroy(&pg);                         // stopped and removed
 *
 * initdb and pg_ctl (PG_BIN, else /usr/lib/postgresql/NN/bin, the newest)
 * make a cluster in a new temporary directory, owned by user postgres when
 * we are root (PostgreSQL refuses to run as root; runuser drops to it),
 * with trust authentication for user rosim, listening only on a unix
 * socket in that directory.
 */
#ifndef ROSIM_PGSERVER_H
#define ROSIM_PGSERVER_H

struct tu_pg {
    char dir[64];       /* the temporary directory: data/, the socket, log */
    char bin[256];      /* where initdb and pg_ctl are */
    char dsn[160];      /* a libpq connection string to database postgres */
    char why[512];      /* what failed, or what is missing */
};

/* 0: running; 1: PostgreSQL is not installed (why says what is missing);
 * -1: it failed to start (why has its output; nothing is left behind). */
int tu_pg_start(struct tu_pg *pg);

/* pg_ctl stop -m fast (files kept) and start again.  0 or -1 (why). */
int tu_pg_stop(struct tu_pg *pg);
int tu_pg_restart(struct tu_pg *pg);

/* Stop the server (if running) and remove its directory. */
void tu_pg_destroy(struct tu_pg *pg);

#endif
