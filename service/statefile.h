/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * lvssd's small text state files (the catalog, the backup history): a header line, then one
 * record per line, read whole, parsed strictly, and replaced atomically. The format of the
 * records is each file's own; this is the part they share. Every function returns a negative
 * errno on failure and >= 0 on success.
 */

#include <stddef.h>
#include <stdio.h>

/* Reads PATH whole (a regular file, not followed if a symbolic link, at most MAX bytes: -EFBIG)
 * into *RET_BUF (malloc'd, NUL-terminated) and *RET_LEN; *RET_BUF is NULL if PATH does not
 * exist. -EBADMSG if PATH is not a regular file. */
int statefile_read(const char *path, size_t max, char **ret_buf, size_t *ret_len);

/* Checks that BUF starts with HEADER (a whole line, "...\n") and calls LINE with a NUL-terminated
 * copy of each following line (without its '\n'); stops at the first negative return and returns
 * it. -EBADMSG if the header differs, a line holds a NUL, or the last line has no newline (a file
 * statefile_write() wrote always ends with one). */
int statefile_foreach_line(const char *buf, size_t len, const char *header,
                           int (*line)(char *l, void *userdata), void *userdata);

/* Replaces PATH atomically with what WRITE writes to its FILE: PATH.new written, flushed and
 * fsync'd, renamed over PATH, the directory fsync'd. PATH is untouched on failure. */
int statefile_write(const char *path, int (*write)(FILE *f, void *userdata), void *userdata);
