/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The org.lvss.Error names of docs/dbus-api.md, and a helper to set one with a sentence. */

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-bus.h>

#define LVSS_ERROR_INVALID_ARGUMENT "org.lvss.Error.InvalidArgument"
#define LVSS_ERROR_NOT_FOUND "org.lvss.Error.NotFound"
#define LVSS_ERROR_EXISTS "org.lvss.Error.Exists"
#define LVSS_ERROR_BUSY "org.lvss.Error.Busy"
#define LVSS_ERROR_FAILED "org.lvss.Error.Failed"
#define LVSS_ERROR_WRITER_FAILED "org.lvss.Error.WriterFailed"
#define LVSS_ERROR_TIMEOUT "org.lvss.Error.Timeout"
#define LVSS_ERROR_NO_SPACE "org.lvss.Error.NoSpace"
#define LVSS_ERROR_ACCESS_DENIED "org.lvss.Error.AccessDenied"

/* Sets ERROR (if not set yet) to NAME and the formatted sentence; returns R if R < 0, else -EIO. */
int bus_error_setf(sd_bus_error *error, int r, const char *name, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* The error name for a negative errno: -ENOENT NotFound, -EEXIST Exists, -EBUSY Busy, -ENOSPC and
 * -EDQUOT NoSpace, -ETIMEDOUT Timeout, -EACCES and -EPERM AccessDenied, -EINVAL InvalidArgument,
 * anything else Failed. */
const char *bus_error_name_from_errno(int r);

/* Reads an array of strings (signature "as", or the keys and values of "a{ss}" one after the other
 * when PAIRS) into a new NULL-terminated vector (NULL if empty), in time linear in its length;
 * -E2BIG, having read no further, past MAX strings: a huge array must not hold the main loop. */
int bus_read_strv_max(sd_bus_message *m, bool pairs, size_t max, char ***ret);

/* Replaces in place every byte of S that is not part of a valid UTF-8 sequence (a sequence cut by
 * truncation included) with '?': sd-bus refuses invalid UTF-8 in a string, and a reply that cannot
 * be sent leaves its caller waiting. */
void utf8_scrub(char *s);
