/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers shared by every layer: scoped cleanup in the manner of systemd's macro.h. */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

/* Takes ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                                                                                         \
        ({                                                                                                  \
                __typeof__(p) _taken_ = (p);                                                                \
                (p) = NULL;                                                                                 \
                _taken_;                                                                                    \
        })
#define TAKE_FD(fd)                                                                                         \
        ({                                                                                                  \
                int _taken_fd_ = (fd);                                                                      \
                (fd) = -1;                                                                                  \
                _taken_fd_;                                                                                 \
        })

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(x, y) (((x) + (y) -1) / (y))
#define IS_POWER_OF_2(x) ((x) != 0 && ((x) & ((x) -1)) == 0)

/* Negative errno of the last failed call, never 0. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
