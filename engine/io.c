/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The real I/O table: system calls, with short transfers finished and
 * EINTR retried. Stateless, so one constant table serves every volume.
 */

#include "engine/io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"

static int posix_open(const struct eng_io *io, const char *path, int flags, mode_t mode) {
        int fd = open(path, flags | O_CLOEXEC, mode);
        return fd < 0 ? negative_errno() : fd;
}

static int posix_close(const struct eng_io *io, int fd) {
        return close(fd) < 0 ? negative_errno() : 0;
}

static int posix_pread(const struct eng_io *io, int fd, void *buf, size_t len, uint64_t off) {
        uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = pread(fd, p, len, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0) {
                        memset(p, 0, len);
                        return 0;
                }
                p += n;
                len -= (size_t) n;
                off += (uint64_t) n;
        }
        return 0;
}

static int posix_pwrite(const struct eng_io *io, int fd, const void *buf, size_t len, uint64_t off) {
        const uint8_t *p = buf;
        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                off += (uint64_t) n;
        }
        return 0;
}

static int posix_sync(const struct eng_io *io, int fd) {
        return fdatasync(fd) < 0 ? negative_errno() : 0;
}

static int posix_truncate(const struct eng_io *io, int fd, uint64_t size) {
        return ftruncate(fd, (off_t) size) < 0 ? negative_errno() : 0;
}

static int posix_punch(const struct eng_io *io, int fd, uint64_t off, uint64_t len) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISBLK(st.st_mode)) {
                uint64_t range[2] = { off, len };
                if (ioctl(fd, BLKZEROOUT, range) == 0)
                        return 0;
        } else if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) off, (off_t) len) == 0)
                return 0;
        else if (errno != EOPNOTSUPP && errno != ENOSYS)
                return negative_errno();

        /* No way to deallocate: write zeros. */
        static const uint8_t zeros[64 * 1024];
        while (len > 0) {
                size_t n = (size_t) MIN(len, (uint64_t) sizeof zeros);
                int r = posix_pwrite(io, fd, zeros, n, off);
                if (r < 0)
                        return r;
                off += n;
                len -= n;
        }
        return 0;
}

static int posix_clone(const struct eng_io *io, int src, uint64_t soff, int dst, uint64_t doff,
                       uint64_t len) {
        struct file_clone_range fcr = {
                .src_fd = src,
                .src_offset = soff,
                .src_length = len,
                .dest_offset = doff,
        };
        if (ioctl(dst, FICLONERANGE, &fcr) < 0) {
                if (errno == EXDEV || errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP ||
                    errno == EBADF || errno == EPERM)
                        return -EOPNOTSUPP;
                return negative_errno();
        }
        return 0;
}

static int posix_rename(const struct eng_io *io, const char *from, const char *to) {
        if (rename(from, to) < 0)
                return negative_errno();

        /* Make the rename durable: sync the directory that holds TO. */
        char dir[4096];
        const char *slash = strrchr(to, '/');
        if (!slash)
                snprintf(dir, sizeof dir, ".");
        else if (slash == to)
                snprintf(dir, sizeof dir, "/");
        else
                snprintf(dir, sizeof dir, "%.*s", (int) (slash - to), to);
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        return fsync(dfd) < 0 ? negative_errno() : 0;
}

static int posix_size(const struct eng_io *io, int fd, uint64_t *ret_size) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISBLK(st.st_mode)) {
                uint64_t sz;
                if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
                        return negative_errno();
                *ret_size = sz;
                return 0;
        }
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        *ret_size = (uint64_t) st.st_size;
        return 0;
}

const struct eng_io eng_io_posix = {
        .open = posix_open,
        .close = posix_close,
        .pread = posix_pread,
        .pwrite = posix_pwrite,
        .sync = posix_sync,
        .truncate = posix_truncate,
        .punch = posix_punch,
        .clone = posix_clone,
        .rename = posix_rename,
        .size = posix_size,
};
