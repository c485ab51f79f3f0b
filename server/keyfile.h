/*
 * keyfile.h: reading the API key file ([server] api_key_file).
 *
 * One key per line; empty lines and lines starting with # are skipped,
 * spaces and tabs around a key are ignored.  A key is 1 to KEYFILE_KEY_MAX
 * visible ASCII characters (no spaces or control characters inside).
 * Whole lines are read whatever their length, so a long line is one key
 * (and refused when over the limit), never several.  A line of only spaces
 * or tabs, an over-long key, a key with inner whitespace, or a file with no
 * key is an error naming the file and line: the file is meant to admit
 * exactly the keys written in it.
 */
#ifndef ROSIM_KEYFILE_H
#define ROSIM_KEYFILE_H

#include "../model/error.h"

#define KEYFILE_KEY_MAX 512   /* bytes in one key */
#define KEYFILE_MAX_KEYS 256  /* keys in one file */

/* Read the keys of path into keys[0..*n_keys) (each malloc'd; the caller
 * frees them, after zeroing them if it likes).  At most max_keys.  RS_OK;
 * RS_EIO when the file cannot be read; RS_EINVAL for bad content;
 * RS_ENOMEM.  On error no key is left in keys and *n_keys is 0. */
int keyfile_load(const char *path, char **keys, int max_keys, int *n_keys, struct rs_error *e);

#endif
