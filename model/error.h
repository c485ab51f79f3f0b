/*
 * error.h: the status codes and error record shared by every rosim library.
 *
 * Functions that can fail return an int status (RS_OK or a negative RS_E*
 * code) and, when the caller passes a struct rs_error, fill it with a
 * sentence a user can act on ("model/vocab.txt: line 7: ...").  Reporting
 * an error never allocates, so it works when memory is short.  Libraries
 * never print or exit; the programs above them decide what to do.
 */
#ifndef ROSIM_ERROR_H
#define ROSIM_ERROR_H

enum rs_status {
    RS_OK = 0,
    RS_EINVAL = -1,     /* bad argument or input */
    RS_ENOMEM = -2,     /* out of memory */
    RS_EIO = -3,        /* a system call failed (errno in the message) */
    RS_EFORMAT = -4,    /* a file is corrupt, truncated or of the wrong kind */
    RS_ENOTFOUND = -5,  /* a named thing does not exist */
    RS_EEXIST = -6,     /* a named thing exists with other properties */
    RS_ENOSPC = -7,     /* the disk is full */
    RS_EBUSY = -8,      /* a resource is exhausted; retry later */
    RS_EINTERNAL = -9,  /* a bug or a library failure */
    RS_ETIMEOUT = -10,  /* a wait passed its deadline; retry later */
    RS_ECANCELED = -11, /* the caller asked to stop */
    RS_EUNAVAIL = -12,  /* a server we depend on (the database) is unreachable; retry later */
};

struct rs_error {
    int code;
    char msg[512];
};

/* Record code and a printf-style message in e (which may be NULL).
 * Returns code, so callers can write `return rs_error_set(e, ...)`. */
int rs_error_set(struct rs_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend "prefix: " to the message already in e (e may be NULL). */
void rs_error_prefix(struct rs_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A short constant name for a status code ("invalid argument", ...). */
const char *rs_status_name(int code);

#endif
