/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The org.lvss.Error names and the sentences that go with them. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The length of the valid UTF-8 sequence at S (1-4), or 0 if none starts there. */
static size_t utf8_seq_len(const unsigned char *s) {
        unsigned char c = s[0];
        if (c < 0x80)
                return 1;
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
                n = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
                n = 3;
                if (c == 0xE0)
                        lo = 0xA0; /* no overlong forms */
                else if (c == 0xED)
                        hi = 0x9F; /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
                n = 4;
                if (c == 0xF0)
                        lo = 0x90;
                else if (c == 0xF4)
                        hi = 0x8F;
        } else
                return 0;
        if (s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (s[i] < 0x80 || s[i] > 0xBF)
                        return 0;
        return n;
}

void utf8_scrub(char *s) {
        unsigned char *p = (unsigned char *) s;
        while (p && *p) {
                size_t n = utf8_seq_len(p);
                if (n == 0) {
                        *p++ = '?';
                        continue;
                }
                p += n;
        }
}

int bus_read_strv_max(sd_bus_message *m, bool pairs, size_t max, char ***ret) {
        char **l = NULL;
        size_t n = 0, cap = 0;
        const char *a, *b;
        int r = sd_bus_message_enter_container(m, 'a', pairs ? "{ss}" : "s");
        while (r >= 0 && (r = pairs ? sd_bus_message_read(m, "{ss}", &a, &b) : sd_bus_message_read(m, "s", &a)) > 0) {
                if (n + (pairs ? 2 : 1) > max) {
                        r = -E2BIG;
                        break;
                }
                if (n + 3 > cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        char **nl = realloc(l, ncap * sizeof *nl);
                        if (!nl) {
                                r = -ENOMEM;
                                break;
                        }
                        l = nl;
                        cap = ncap;
                }
                l[n] = strdup(a);
                l[n + 1] = pairs ? strdup(b) : NULL;
                l[n + 2] = NULL;
                if (!l[n] || (pairs && !l[n + 1])) {
                        n += 2; /* freed below */
                        r = -ENOMEM;
                        break;
                }
                n += pairs ? 2 : 1;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r < 0) {
                for (size_t i = 0; l && i < n; i++)
                        free(l[i]);
                free(l);
                return r;
        }
        *ret = l; /* NULL for an empty array */
        return 0;
}
