/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The org.lvss.Error names and the sentences that go with them. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "service/bus-util.h"

const char *bus_error_name_from_errno(int r) {
        switch (-r) {
        case ENOENT:
                return LVSS_ERROR_NOT_FOUND;
        case EEXIST:
                return LVSS_ERROR_EXISTS;
        case EBUSY:
                return LVSS_ERROR_BUSY;
        case ENOSPC:
        case EDQUOT:
                return LVSS_ERROR_NO_SPACE;
        case ETIMEDOUT:
                return LVSS_ERROR_TIMEOUT;
        case EACCES:
        case EPERM:
                return LVSS_ERROR_ACCESS_DENIED;
        case EINVAL:
                return LVSS_ERROR_INVALID_ARGUMENT;
        default:
                return LVSS_ERROR_FAILED;
        }
}

int bus_error_setf(sd_bus_error *error, int r, const char *name, const char *fmt, ...) {
        if (r >= 0)
                r = -EIO;
        if (!error || sd_bus_error_is_set(error))
                return r;
        va_list ap;
        va_start(ap, fmt);
        char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        sd_bus_error_set(error, name ? name : bus_error_name_from_errno(r), msg ? msg : "out of memory");
        free(msg);
        return r;
}
