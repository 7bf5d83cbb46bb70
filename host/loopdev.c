/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Loop devices by ioctl and sysfs. A device is always attached with LO_FLAGS_AUTOCLEAR, so that
 * whatever happens to lvssd its loop devices go away with their last user instead of pinning
 * dead FUSE files (loopdev_keep clears it for a device a person attaches on purpose). The free-device
 * protocol (LOOP_CTL_GET_FREE, then bind) races with other processes doing the same; binding a device
 * someone else took fails with EBUSY, and we retry with a new one. No locking: nothing is shared.
 */

#include "host/loopdev.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "common/macro.h"
#include "host/mounts.h"

#define LOOPDEV_ATTACH_TRIES 16

static void loopdev_sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* Binds the backing file open as BACKING_FD to the loop device open as FD. */
static int loopdev_bind(int fd, int backing_fd, bool read_only, bool direct_io) {
        struct loop_config config = {
                .fd = (unsigned) backing_fd,
                .info.lo_flags = LO_FLAGS_AUTOCLEAR | (read_only ? LO_FLAGS_READ_ONLY : 0) |
                                 (direct_io ? LO_FLAGS_DIRECT_IO : 0),
        };
        if (ioctl(fd, LOOP_CONFIGURE, &config) == 0)
                return 0;
        int r = negative_errno();
        if (r == -EINVAL && direct_io) {
                /* Direct I/O refused (the backing file cannot do it, or its alignment is off). */
                config.info.lo_flags &= ~(unsigned) LO_FLAGS_DIRECT_IO;
                if (ioctl(fd, LOOP_CONFIGURE, &config) == 0)
                        return 0;
                r = negative_errno();
        }
        if (r != -EINVAL && r != -ENOTTY)
                return r;

        /* Kernels before 5.8: no LOOP_CONFIGURE. Read-only follows BACKING_FD's open mode. */
        if (ioctl(fd, LOOP_SET_FD, backing_fd) < 0)
                return negative_errno();
        struct loop_info64 info = { .lo_flags = LO_FLAGS_AUTOCLEAR };
        if (ioctl(fd, LOOP_SET_STATUS64, &info) < 0) {
                r = negative_errno();
                (void) ioctl(fd, LOOP_CLR_FD);
                return r;
        }
        if (direct_io)
                (void) ioctl(fd, LOOP_SET_DIRECT_IO, 1UL);
        return 0;
}

int loopdev_attach(const char *path, bool read_only, bool direct_io, char **ret_device, int *ret_fd) {
        if (!path || !ret_fd)
                return -EINVAL;

        _cleanup_close_ int backing_fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (backing_fd < 0)
                return negative_errno();

        _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
                return negative_errno();

        int r = -EBUSY;
        for (unsigned attempt = 0; attempt < LOOPDEV_ATTACH_TRIES; attempt++) {
                int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (nr < 0)
                        return negative_errno();

                char device[32];
                snprintf(device, sizeof device, "/dev/loop%d", nr);
                _cleanup_close_ int fd = open(device, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
                if (fd < 0) {
                        /* A device just created may not have its node yet. */
                        r = negative_errno();
                        if (r != -ENOENT && r != -ENXIO)
                                return r;
                        loopdev_sleep_ms(10);
                        continue;
                }

                r = loopdev_bind(fd, backing_fd, read_only, direct_io);
                if (r == -EBUSY)
                        continue; /* someone else took it between GET_FREE and now */
                if (r < 0)
                        return r;

                if (ret_device) {
                        char *d = strdup(device);
                        if (!d)
                                return -ENOMEM; /* closing FD detaches (autoclear) */
                        *ret_device = d;
                }
                *ret_fd = TAKE_FD(fd);
                return 0;
        }
        return r;
}

int loopdev_keep(int fd) {
        struct loop_info64 info;
        if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
                return negative_errno();
        info.lo_flags &= ~(__u32) LO_FLAGS_AUTOCLEAR;
        if (ioctl(fd, LOOP_SET_STATUS64, &info) < 0)
                return negative_errno();
        return 0;
}

int loopdev_detach(const char *device) {
        if (!device)
                return -EINVAL;

        _cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (ioctl(fd, LOOP_CLR_FD) < 0)
                return negative_errno();
        return 0;
}

/* Reads the one-line sysfs attribute at PATH, without its newline. */
static int loopdev_read_attr(const char *path, char **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();

        /* sysfs attributes are at most a page; a path may be PATH_MAX plus " (deleted)". */
        size_t cap = PATH_MAX + 64;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        size_t len = 0;
        for (;;) {
                ssize_t k = read(fd, buf + len, cap - 1 - len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0 || (len += (size_t) k) == cap - 1)
                        break;
        }
        while (len > 0 && buf[len - 1] == '\n')
                len--;
        buf[len] = 0;
        if (len == 0)
                return -ENXIO; /* an unbound device may show an empty attribute */
        *ret = TAKE_PTR(buf);
        return 0;
}

/* The backing file of the block device whose sysfs directory is DIR. */
static int loopdev_backing_file_at(const char *dir, char **ret) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/loop/backing_file", dir) < 0)
                return -ENOMEM;
        int r = loopdev_read_attr(path, ret);
        if (r == -ENOENT) {
                /* No loop/ (not a loop device) or no backing_file (not bound); or no device. */
                if (access(dir, F_OK) < 0)
                        return negative_errno();
                return -ENXIO;
        }
        return r;
}

int loopdev_backing_file_by_devnum(dev_t devnum, char **ret) {
        if (!ret)
                return -EINVAL;

        char dir[64];
        snprintf(dir, sizeof dir, "/sys/dev/block/%u:%u", major(devnum), minor(devnum));
        int r = loopdev_backing_file_at(dir, ret);
        return r == -ENOENT ? -ENXIO : r;
}

int loopdev_backing_file(const char *loopdev_or_sysname, char **ret) {
        if (!loopdev_or_sysname || !ret)
                return -EINVAL;

        if (loopdev_or_sysname[0] == '/') {
                struct stat st;
                if (stat(loopdev_or_sysname, &st) < 0)
                        return negative_errno();
                if (!S_ISBLK(st.st_mode))
                        return -ENOTBLK;
                return loopdev_backing_file_by_devnum(st.st_rdev, ret);
        }

        if (strchr(loopdev_or_sysname, '/') || strcmp(loopdev_or_sysname, ".") == 0 ||
            strcmp(loopdev_or_sysname, "..") == 0 || loopdev_or_sysname[0] == 0)
                return -EINVAL;
        _cleanup_free_ char *dir = NULL;
        if (asprintf(&dir, "/sys/block/%s", loopdev_or_sysname) < 0)
                return -ENOMEM;
        return loopdev_backing_file_at(dir, ret);
}

int loopdev_node_by_devnum(dev_t devnum, char **ret) {
        if (!ret)
                return -EINVAL;

        char link[64], target[PATH_MAX];
        snprintf(link, sizeof link, "/sys/dev/block/%u:%u", major(devnum), minor(devnum));
        ssize_t k = readlink(link, target, sizeof target - 1);
        if (k < 0)
                return errno == ENOENT ? -ENODEV : negative_errno();
        target[k] = 0;

        const char *name = strrchr(target, '/');
        name = name ? name + 1 : target;
        char *node = NULL;
        if (asprintf(&node, "/dev/%s", name) < 0)
                return -ENOMEM;
        *ret = node;
        return 0;
}

/* N if NAME is "loopN", else -1. */
static long loopdev_parse_sysname(const char *name) {
        if (strncmp(name, "loop", 4) != 0 || name[4] < '0' || name[4] > '9')
                return -1;
        char *end;
        errno = 0;
        long n = strtol(name + 4, &end, 10);
        if (errno != 0 || *end != 0 || n < 0)
                return -1;
        return n;
}

static int loopdev_cmp(const void *a, const void *b) {
        long x = loopdev_parse_sysname(strrchr(*(char *const *) a, '/') + 1);
        long y = loopdev_parse_sysname(strrchr(*(char *const *) b, '/') + 1);
        return (x > y) - (x < y);
}

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

int loopdev_list_for_backing(const char *backing, char ***ret_devices, size_t *ret_n) {
        if (!backing || !ret_devices)
                return -EINVAL;

        /* A file that no longer resolves (deleted, or on a dead FUSE mount) is compared as given. */
        _cleanup_free_ char *canonical = realpath(backing, NULL);
        const char *want = canonical ? canonical : backing;

        _cleanup_(closedirp) DIR *d = opendir("/sys/block");
        if (!d)
                return negative_errno();

        _cleanup_(strv_freep) char **list = calloc(1, sizeof *list);
        if (!list)
                return -ENOMEM;
        size_t n = 0;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return negative_errno();
                        break;
                }
                if (loopdev_parse_sysname(de->d_name) < 0)
                        continue;

                _cleanup_free_ char *file = NULL;
                int r = loopdev_backing_file(de->d_name, &file);
                if (r == -ENXIO || r == -ENOENT)
                        continue; /* unbound, or went away meanwhile */
                if (r < 0)
                        return r;
                if (strcmp(file, want) != 0)
                        continue;

                char **l = realloc(list, (n + 2) * sizeof *l);
                if (!l)
                        return -ENOMEM;
                list = l;
                if (asprintf(&list[n], "/dev/%s", de->d_name) < 0) {
                        list[n] = NULL;
                        return -ENOMEM;
                }
                list[++n] = NULL;
        }
        qsort(list, n, sizeof *list, loopdev_cmp);

        *ret_devices = TAKE_PTR(list);
        if (ret_n)
                *ret_n = n;
        return (int) MIN(n, (size_t) INT_MAX);
}
